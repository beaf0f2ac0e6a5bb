#!/usr/bin/env bash
# Runs README.md's walk-through as a newcomer would: `make dev` in the
# background, then the README's commands, checking each result; then the
# other examples (S3 through versitygw, Azure Blob through Azurite, a dlt
# pipeline; the Databricks ones are only validated: they need a workspace),
# each imported, approved and released; then Ctrl-C (SIGINT) and a check that
# make dev stopped everything it started.
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

# --- the other examples: S3, Azure Blob and dlt through make dev's servers
state_of() { bin/airlock status "$1" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }

# example FILE: the example's path, or, when make dev had to move a store off
# its usual port, a copy whose endpoint names the port it got.
example() {
  local f=examples/datasources/$1 s3=${AIRLOCK_DEV_S3_ENDPOINT:-} az=${AIRLOCK_DEV_AZURE_BLOB_URL:-}
  [ -n "$s3" ] || [ "$1" != s3.yaml ] || fail "make dev started no S3 server (no AIRLOCK_DEV_S3_ENDPOINT in .airlock/env)"
  [ -n "$az" ] || [ "$1" != azureblob.yaml ] || fail "make dev started no Azurite (no AIRLOCK_DEV_AZURE_BLOB_URL in .airlock/env)"
  local moved=
  case $1 in
  s3.yaml) [ "$s3" = http://127.0.0.1:7070 ] || moved=yes ;;
  azureblob.yaml) [ "$az" = http://127.0.0.1:10000/devstoreaccount1 ] || moved=yes ;;
  esac
  if [ -n "$moved" ]; then
    local copy; copy=$(mktemp --suffix=-"$1")
    sed -e "s#http://127.0.0.1:7070#$s3#" -e "s#http://127.0.0.1:10000/devstoreaccount1#$az#" "$f" > "$copy"
    echo "note: make dev moved the store off the port $1 names (it was taken): importing a copy that names its endpoint" >&2
    f=$copy
  fi
  echo "$f"
}

# release FILE DATASOURCE: import as rita, approve as dana then ian, wait for
# COMPLETED; prints the request id.
release() {
  local id state
  id=$(bin/airlock import -f "$1" --as rita --wait) || fail "airlock import -f $1"
  state=$(state_of "$id")
  [ "$state" = AWAITING_APPROVAL ] || { bin/airlock status "$id" >&2; fail "$1: $state, not AWAITING_APPROVAL, after import --wait"; }
  bin/airlock approve "$id" --stage data-engineering --as dana --comment "files checked" >&2 || fail "$1: dana's approval refused"
  bin/airlock approve "$id" --stage information-governance --as ian --comment "lawful basis confirmed" >&2 || fail "$1: ian's approval refused"
  for _ in $(seq 1 100); do
    state=$(state_of "$id")
    [ "$state" = COMPLETED ] && break
    sleep 0.2
  done
  [ "$state" = COMPLETED ] || { bin/airlock status "$id" >&2; fail "$1: request ended $state, not COMPLETED"; }
  [ -d ".airlock/workspaces/advanced-generic-workspace/$2/$id" ] || fail "$1: no released folder for $id"
  [ ! -e ".airlock/staging/$id" ] || fail "$1: staging area of $id still present"
  echo "$id"
}

bin/airlock validate -f examples/datasources/databricks-table.yaml -f examples/datasources/databricks-volume.yaml
(cd examples/sample-data && sha256sum clinic/*.csv) > /tmp/walkthrough-clinic.sha
for ex in s3.yaml:sample-clinic-s3 azureblob.yaml:sample-clinic-azureblob; do
  file=$(example "${ex%%:*}") ds=${ex#*:}
  bin/airlock validate -f "$file"
  t0=$(date +%s.%N)
  ID=$(release "$file" "$ds")
  (cd ".airlock/workspaces/advanced-generic-workspace/$ds/$ID" && sha256sum -c /tmp/walkthrough-clinic.sha) || fail "$ds: released bytes differ from examples/sample-data"
  printf '%s: import to COMPLETED took %.1fs\n' "${ex%%:*}" "$(echo "$(date +%s.%N) - $t0" | bc)"
done

bin/airlock validate -f examples/datasources/dlt-filesystem.yaml
t0=$(date +%s.%N)
ID=$(release examples/datasources/dlt-filesystem.yaml sample-clinic-dlt)
released=.airlock/workspaces/advanced-generic-workspace/sample-clinic-dlt/$ID
ls -R "$released"
for table in patients attendances; do
  ls "$released/$table/$table/"*.parquet >/dev/null || fail "dlt: no Parquet file for table $table"
  ls "$released/$table/_dlt_loads/"*.jsonl >/dev/null || fail "dlt: no load record for table $table"
  rows=$(($(wc -l < "examples/sample-data/clinic/$table.csv") - 1))
  grep -q "Tables: $table ($rows rows" "$released/ro-crate-metadata.json" || fail "dlt: the crate does not record $rows rows of $table"
done
printf 'dlt-filesystem.yaml: import to COMPLETED took %.1fs\n' "$(echo "$(date +%s.%N) - $t0" | bc)"

# --- the README's API section: upload through the API (tus), confirm, approve twice
curl -fsS "$AIRLOCK_API/readyz"
code=$(curl -s -o /dev/null -w '%{http_code}' "$AIRLOCK_API/api/v1/requests")
[ "$code" = 401 ] || fail "an anonymous GET /api/v1/requests answered $code, not 401"
U=$(curl -fsS -X POST "$AIRLOCK_API/api/v1/uploads" -H 'X-Airlock-Dev-User: rita' -H 'Content-Type: application/json' \
  -d '{"project": "d4e6", "workspace": "advanced-generic-workspace", "display_name": "Clinic survey", "description": "Synthetic survey answers", "license": "Demo only", "publisher": {"organisation": "Example Clinic"}}' | jq -r .id)
echo "upload request $U"
FILE=examples/sample-data/clinic/patients.csv
LOC=$(curl -fsS -i -X POST "$AIRLOCK_API/api/v1/files/" -H 'X-Airlock-Dev-User: rita' -H 'Tus-Resumable: 1.0.0' \
  -H "Upload-Length: $(stat -c %s $FILE)" \
  -H "Upload-Metadata: request $(printf %s "$U" | base64 -w0),filename $(printf patients.csv | base64 -w0)" |
  tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
curl -fsS -X PATCH "$LOC" -H 'X-Airlock-Dev-User: rita' -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
  -H 'Content-Type: application/offset+octet-stream' --data-binary @$FILE
curl -fsS "$AIRLOCK_API/api/v1/uploads/$U/files" -H 'X-Airlock-Dev-User: rita' | jq .
curl -fsS -X POST "$AIRLOCK_API/api/v1/uploads/$U/confirm" -H 'X-Airlock-Dev-User: rita'
for _ in $(seq 1 100); do
  state=$(curl -fsS "$AIRLOCK_API/api/v1/requests/$U" -H 'X-Airlock-Dev-User: dana' | jq -r .state)
  [ "$state" = AWAITING_APPROVAL ] && break
  sleep 0.2
done
[ "$state" = AWAITING_APPROVAL ] || fail "upload $U is $state, not AWAITING_APPROVAL after confirm"
DIGEST=$(curl -fsS "$AIRLOCK_API/api/v1/requests/$U" -H 'X-Airlock-Dev-User: dana' | jq -r .manifest_digest)
# ian holds no approve:data-engineering capability: the API refuses (403).
code=$(curl -s -o /tmp/walkthrough-refused.json -w '%{http_code}' -X POST "$AIRLOCK_API/api/v1/requests/$U/decisions" -H 'X-Airlock-Dev-User: ian' \
  -H 'Content-Type: application/json' -d "{\"stage\": \"data-engineering\", \"decision\": \"approve\", \"manifest_digest\": \"$DIGEST\"}")
[ "$code" = 403 ] || fail "ian's approval of the data-engineering stage answered $code, not 403"
jq -r .error.message /tmp/walkthrough-refused.json
# dana may decide, but not on other files than these: the workflow refuses (409).
code=$(curl -s -o /tmp/walkthrough-refused.json -w '%{http_code}' -X POST "$AIRLOCK_API/api/v1/requests/$U/decisions" -H 'X-Airlock-Dev-User: dana' \
  -H 'Content-Type: application/json' -d '{"stage": "data-engineering", "decision": "approve", "manifest_digest": "sha256:0000"}')
[ "$code" = 409 ] || fail "dana's approval of another manifest answered $code, not 409"
jq -r .error.message /tmp/walkthrough-refused.json
curl -fsS -X POST "$AIRLOCK_API/api/v1/requests/$U/decisions" -H 'X-Airlock-Dev-User: dana' -H 'Content-Type: application/json' \
  -d "{\"stage\": \"data-engineering\", \"decision\": \"approve\", \"comment\": \"columns as described\", \"manifest_digest\": \"$DIGEST\"}"
curl -fsS -X POST "$AIRLOCK_API/api/v1/requests/$U/decisions" -H 'X-Airlock-Dev-User: ian' -H 'Content-Type: application/json' \
  -d "{\"stage\": \"information-governance\", \"decision\": \"approve\", \"comment\": \"lawful basis confirmed\", \"manifest_digest\": \"$DIGEST\"}"
for _ in $(seq 1 100); do
  state=$(curl -fsS "$AIRLOCK_API/api/v1/requests/$U" -H 'X-Airlock-Dev-User: rita' | jq -r .state)
  [ "$state" = COMPLETED ] && break
  sleep 0.2
done
[ "$state" = COMPLETED ] || fail "upload $U ended $state, not COMPLETED"
ds=$(curl -fsS "$AIRLOCK_API/api/v1/requests/$U" -H 'X-Airlock-Dev-User: rita' | jq -r .datasource)
cmp "$FILE" ".airlock/workspaces/advanced-generic-workspace/$ds/$U/patients.csv" || fail "the released upload differs from $FILE"
curl -fsS "$AIRLOCK_API/api/v1/requests/$U/crate" -H 'X-Airlock-Dev-User: rita' | jq -e '."@graph" | length > 0' >/dev/null || fail "no crate for $U"
curl -fsS -o /dev/null "$AIRLOCK_API/" || fail "the console at $AIRLOCK_API does not answer"
echo "upload through the API: COMPLETED"

# --- the README's egress walk-through: request, two independent checks, release, verify, revoke
state_of() { bin/airlock status "$1" -o json | jq -r .state; }
mkdir -p .airlock/workspaces/advanced-generic-workspace/outputs
printf 'clinic,visits\nnorth,120\nsouth,98\n' > .airlock/workspaces/advanced-generic-workspace/outputs/visits-by-clinic.csv
printf '# Visits\n\nTwo clinics, 218 visits in 2024.\n' > .airlock/workspaces/advanced-generic-workspace/outputs/summary.md
EG=$(bin/airlock egress request --workspace advanced-generic-workspace --project d4e6 --destination outbox \
  --file outputs/visits-by-clinic.csv --file outputs/summary.md \
  --justification "Aggregate visit counts for the steering group" --as rita --wait)
echo "egress $EG"
bin/airlock status "$EG"
[ "$(state_of "$EG")" = AWAITING_APPROVAL ] || fail "egress $EG is not AWAITING_APPROVAL after --wait"
bin/airlock egress review "$EG" --as carol --approve-all --comment "aggregates only"
bin/airlock status "$EG"
[ "$(bin/airlock status "$EG" -o json | jq '.egress.reviews | length')" = 0 ] || fail "carol's review was revealed before chris reviewed"
if bin/airlock egress review "$EG" --as rita --approve-all; then fail "the requester reviewed her own egress"; fi
bin/airlock egress review "$EG" --as chris --approve-all
for _ in $(seq 1 100); do [ "$(state_of "$EG")" = RELEASED ] && break; sleep 0.2; done
bin/airlock status "$EG"
[ "$(state_of "$EG")" = RELEASED ] || fail "egress $EG is $(state_of "$EG"), not RELEASED"
ls .airlock/outbox/"$EG"
bin/airlock egress verify .airlock/outbox/"$EG" --public-key .airlock/egress-signing-key.pub.pem || fail "the release manifest of $EG does not verify"
base64 -d .airlock/outbox/"$EG"/release-manifest.json.sig > /tmp/walkthrough-manifest.sig
openssl pkeyutl -verify -pubin -inkey .airlock/egress-signing-key.pub.pem -rawin \
  -in .airlock/outbox/"$EG"/release-manifest.json -sigfile /tmp/walkthrough-manifest.sig || fail "openssl does not verify the manifest of $EG"
cmp .airlock/outbox/"$EG"/outputs/visits-by-clinic.csv .airlock/workspaces/advanced-generic-workspace/outputs/visits-by-clinic.csv || fail "released bytes differ"
# A tampered file is caught.
cp -r .airlock/outbox/"$EG" /tmp/walkthrough-tampered && echo "north,7" >> /tmp/walkthrough-tampered/outputs/visits-by-clinic.csv
if bin/airlock egress verify /tmp/walkthrough-tampered --public-key .airlock/egress-signing-key.pub.pem; then fail "a tampered release verified"; fi
rm -rf /tmp/walkthrough-tampered
bin/airlock revoke "$EG" --as carol --reason "the partner's data sharing agreement ended"
for _ in $(seq 1 100); do [ "$(state_of "$EG")" = REVOKED ] && break; sleep 0.2; done
[ "$(state_of "$EG")" = REVOKED ] || fail "egress $EG is not REVOKED"
[ ! -e .airlock/outbox/"$EG"/release-manifest.json ] || fail "revocation left the released copies of $EG"

# --- scheduled imports: create, list, pause, unpause, delete
bin/airlock schedule create -f examples/datasources/sample-file.yaml --cron "0 2 * * 1" --as rita --note "weekly refresh"
bin/airlock schedule list
bin/airlock schedule pause import-sample-clinic-extract --as dana --note "source under maintenance"
bin/airlock schedule unpause import-sample-clinic-extract --as dana
bin/airlock schedule delete import-sample-clinic-extract

# --- Ctrl-C stops everything make dev started
trap - EXIT
stop
if pgrep -f "start-dev.*$(pwd)/.airlock/temporal.db|start-dev.*--db-filename .airlock/temporal.db" >/dev/null || pgrep -f "\.airlock/bin/airlock-worker" >/dev/null || pgrep -f "\.airlock/bin/airlock-api" >/dev/null ||
  pgrep -f "versitygw .*posix \.airlock/s3" >/dev/null || pgrep -f "azurite-blob .*--location \.airlock/azurite" >/dev/null; then
  cat "$log"; fail "make dev left processes running after Ctrl-C"
fi
echo "make dev stopped cleanly"
