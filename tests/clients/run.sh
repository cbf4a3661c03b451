#!/usr/bin/env bash
# Client tests: Apollo Client and urql in Node against the running gateway
# (the README's operations, paging, partial failures in the normalized cache,
# Automatic Persisted Queries).
#
# Does NOT build the gateway: build it first and pass its path, e.g.
#   cargo build && LEDGER_GATEWAY_BIN=target/debug/ledger-gateway tests/clients/run.sh
# (LEDGER_GATEWAY_BIN defaults to target/debug/ledger-gateway; a relative path
# is taken relative to the repo root.)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"

(cd "$here" && npm ci --no-audit --no-fund)

cd "$repo_root"
export LEDGER_GATEWAY_BIN="${LEDGER_GATEWAY_BIN:-target/debug/ledger-gateway}"
if [[ ! -x "$(realpath -m "$LEDGER_GATEWAY_BIN")" ]]; then
  echo "gateway binary not found: $LEDGER_GATEWAY_BIN (build it first, e.g. cargo build)" >&2
  exit 1
fi
exec node --test tests/clients/*.test.mjs
