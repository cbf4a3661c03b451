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
# shellcheck source=../support/suite.sh
source "$here/../support/suite.sh"

npm_install "$here"

require_gateway
exec node --test tests/clients/*.test.mjs
