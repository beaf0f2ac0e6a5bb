#!/usr/bin/env bash
# Installs the pinned tools Airlock's development environment and tests use,
# once, into $AIRLOCK_CACHE (default ~/.cache/airlock). Safe to run repeatedly:
# a tool already built at its pinned version is reused.
#
#   deploy/tools/install.sh            # everything
#   deploy/tools/install.sh temporal   # just the Temporal CLI (dev server + UI)
set -euo pipefail

CACHE="${AIRLOCK_CACHE:-$HOME/.cache/airlock}"
BIN="$CACHE/bin"
TEMPORAL_CLI_VERSION=v1.5.1          # later versions cannot be go-installed
WORKFLOWCHECK_VERSION=v0.6.0
mkdir -p "$BIN"

# install NAME MODULE VERSION: go install MODULE@VERSION into $BIN unless the
# stamp file says that version is already there.
install() {
  local name=$1 module=$2 version=$3 stamp="$BIN/.$1.version"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  echo "installing $name $version into $BIN (once; the Temporal CLI takes about 5 minutes)" >&2
  GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "$module@$version"
  echo "$version" > "$stamp"
}

want=${1:-all}
if [ "$want" = all ] || [ "$want" = temporal ]; then
  install temporal github.com/temporalio/cli/cmd/temporal "$TEMPORAL_CLI_VERSION"
fi
if [ "$want" = all ] || [ "$want" = workflowcheck ]; then
  install workflowcheck go.temporal.io/sdk/contrib/tools/workflowcheck "$WORKFLOWCHECK_VERSION"
fi
