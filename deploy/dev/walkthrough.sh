#!/usr/bin/env bash
# Runs README.md's walk-through as a newcomer would: `make dev` in the
# background, then the README's commands, checking each result; then Ctrl-C
# (SIGINT) and a check that make dev stopped everything it started.
# .ci/run runs it on a clean clone. It uses .airlock/ like make dev does, so do
# not run it while your own `make dev` is running.
set -euo pipefail
cd "$(dirname "$0")/../.."

log=$(mktemp)
rm -f .airlock/env
setsid make dev >"$log" 2>&1 &
devpid=$!
stop() {
  kill -INT -- -"$devpid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$devpid" 2>/dev/null || break; sleep 0.5; done
}
trap 'stop; echo "--- make dev output"; cat "$log"' EXIT
fail() { echo "walk-through FAILED: $*" >&2; exit 1; }

for _ in $(seq 1 1200); do
  grep -q "Airlock is running" "$log" && [ -f .airlock/env ] && break
  kill -0 "$devpid" 2>/dev/null || fail "make dev exited before it was ready"
  sleep 0.5
done
grep -q "Airlock is running" "$log" || fail "make dev did not become ready"
grep -o "Temporal UI: *http://[0-9.:]*" "$log"
ui=$(grep -o "http://127.0.0.1:[0-9]*" "$log" | head -1)
curl -fsS -o /dev/null "$ui" || fail "the Temporal UI at $ui does not answer"

# --- the README, step by step
source .airlock/env
bin/airlock validate -f examples/datasources/sample-file.yaml
start=$(date +%s.%N)
ID=$(bin/airlock import -f examples/datasources/sample-file.yaml --as rita --wait)
echo "request $ID"
bin/airlock status "$ID"
[ "$(bin/airlock status "$ID" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = AWAITING_APPROVAL ] || fail "not AWAITING_APPROVAL after import --wait"

for refused in "--stage data-engineering --as rita" "--stage data-engineering --as ian" "--stage information-governance --as ian"; do
  # shellcheck disable=SC2086
  if bin/airlock approve "$ID" $refused; then fail "airlock approve $refused was accepted"; fi
done

bin/airlock approve "$ID" --stage data-engineering --as dana --comment "schema and row counts checked"
bin/airlock list --awaiting-role information-governance
bin/airlock approve "$ID" --stage information-governance --as ian --comment "lawful basis confirmed"
for _ in $(seq 1 100); do
  state=$(bin/airlock status "$ID" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = COMPLETED ] && break
  sleep 0.2
done
end=$(date +%s.%N)
bin/airlock status "$ID"
[ "$state" = COMPLETED ] || fail "request ended $state, not COMPLETED"

released=.airlock/workspaces/advanced-generic-workspace/sample-clinic-extract/$ID
ls -R "$released"
python3 -m json.tool "$released/ro-crate-metadata.json" >/dev/null || fail "the crate is not JSON"
(cd examples/sample-data && sha256sum clinic/*.csv data-dictionary.md) > /tmp/walkthrough-src.sha
(cd "$released" && sha256sum -c /tmp/walkthrough-src.sha) || fail "released bytes differ from the sources"
[ ! -e ".airlock/staging/$ID" ] || fail "staging area still present"
printf 'walk-through passed: import to COMPLETED took %.1fs (including two CLI approvals)\n' "$(echo "$end - $start" | bc)"

# --- Ctrl-C stops everything make dev started
trap - EXIT
stop
if pgrep -f "start-dev.*$(pwd)/.airlock/temporal.db|start-dev.*--db-filename .airlock/temporal.db" >/dev/null || pgrep -f "\.airlock/bin/airlock-worker" >/dev/null; then
  cat "$log"; fail "make dev left processes running after Ctrl-C"
fi
echo "make dev stopped cleanly"
