#!/usr/bin/env bash
# Real-browser test of the self-hosted GraphiQL page.
#
# Does NOT build the gateway: build it first and pass its path, e.g.
#   cargo build && LEDGER_GATEWAY_BIN=target/debug/ledger-gateway tests/browser/run.sh
# (LEDGER_GATEWAY_BIN defaults to target/debug/ledger-gateway; a relative path
# is taken relative to the repo root.) Installs Debian's chromium if missing
# (needs root); set CHROMIUM_PATH to use another chromium binary.
# The screenshot goes to tests/browser/artifacts/graphiql.png.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  if [[ -n "${CHROMIUM_PATH:-}" ]]; then
    echo "CHROMIUM_PATH=$CHROMIUM_PATH is not executable" >&2
    exit 1
  fi
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

(cd "$here" && npm ci --no-audit --no-fund)

cd "$repo_root"
export LEDGER_GATEWAY_BIN="${LEDGER_GATEWAY_BIN:-target/debug/ledger-gateway}"
if [[ ! -x "$(realpath -m "$LEDGER_GATEWAY_BIN")" ]]; then
  echo "gateway binary not found: $LEDGER_GATEWAY_BIN (build it first, e.g. cargo build)" >&2
  exit 1
fi
exec node --test tests/browser/*.test.mjs
