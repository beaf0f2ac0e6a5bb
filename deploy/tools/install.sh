#!/usr/bin/env bash
# Installs the pinned tools Airlock's development environment and tests use,
# once, into $AIRLOCK_CACHE (default ~/.cache/airlock). Safe to run repeatedly:
# a tool already built at its pinned version is reused.
#
#   deploy/tools/install.sh            # everything
#   deploy/tools/install.sh temporal   # just the Temporal CLI (dev server + UI)
#   deploy/tools/install.sh bench      # also rclone and the AWS CLI (make bench)
#   deploy/tools/install.sh browser    # Debian's chromium and playwright-core (browser tests)
#
# What lands where: Go tools in $BIN; Azurite (npm) in $CACHE/azurite-$AZURITE_VERSION
# with a launcher $BIN/azurite; dlt (PyPI) in the virtualenv $CACHE/dlt-venv;
# playwright-core (npm) in $CACHE/playwright-core-$PLAYWRIGHT_CORE_VERSION, driving
# /usr/bin/chromium (Debian, apt).
set -euo pipefail

CACHE="${AIRLOCK_CACHE:-$HOME/.cache/airlock}"
BIN="$CACHE/bin"
TEMPORAL_CLI_VERSION=v1.5.1          # later versions cannot be go-installed
WORKFLOWCHECK_VERSION=v0.6.0
VERSITYGW_VERSION=v1.8.0             # S3 gateway the S3 tests run against
AZURITE_VERSION=3.35.0               # Azure Blob emulator the Azure tests run against
PLAYWRIGHT_CORE_VERSION=1.65.1       # drives Debian's chromium in the browser tests
HERE="$(cd "$(dirname "$0")" && pwd)"
DLT_REQUIREMENTS="$HERE/../../connectors/dlt/requirements.txt"
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
if [ "$want" = all ] || [ "$want" = versitygw ]; then
  install versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
fi
if [ "$want" = all ] || [ "$want" = azurite ]; then
  dir="$CACHE/azurite-$AZURITE_VERSION"
  if [ ! -x "$dir/node_modules/.bin/azurite-blob" ]; then
    echo "installing azurite $AZURITE_VERSION into $dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2
  fi
  printf '#!/bin/sh\nexec "%s/node_modules/.bin/azurite-blob" "$@"\n' "$dir" > "$BIN/azurite-blob"
  chmod +x "$BIN/azurite-blob"
fi
if [ "$want" = all ] || [ "$want" = dlt ]; then
  venv="$CACHE/dlt-venv" stamp="$CACHE/dlt-venv/.requirements"
  if ! cmp -s "$DLT_REQUIREMENTS" "$stamp"; then
    echo "installing dlt into $venv from $DLT_REQUIREMENTS" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$DLT_REQUIREMENTS" >&2
    cp "$DLT_REQUIREMENTS" "$stamp"
  fi
fi
if [ "$want" = all ] || [ "$want" = browser ]; then
  if ! command -v chromium >/dev/null; then
    echo "installing Debian's chromium (apt)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >&2
  fi
  dir="$CACHE/playwright-core-$PLAYWRIGHT_CORE_VERSION"
  if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
    echo "installing playwright-core $PLAYWRIGHT_CORE_VERSION into $dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "playwright-core@$PLAYWRIGHT_CORE_VERSION" >&2
  fi
fi
if [ "$want" = bench ]; then
  # Reference tools for make bench, from Debian.
  if ! command -v rclone >/dev/null || [ ! -x /usr/bin/aws ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone awscli >&2
  fi
fi
