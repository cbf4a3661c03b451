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
# shellcheck source=../support/suite.sh
source "$here/../support/suite.sh"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  if [[ -n "${CHROMIUM_PATH:-}" ]]; then
    echo "CHROMIUM_PATH=$CHROMIUM_PATH is not executable" >&2
    exit 1
  fi
  apt_install chromium
fi

npm_install "$here"

require_gateway
exec node --test tests/browser/*.test.mjs
