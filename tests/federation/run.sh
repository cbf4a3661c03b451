#!/usr/bin/env bash
# Federation tests: Apollo's own composition over the SDL the running gateway
# serves, `_entities` over HTTP, and the gateway behind real routers (Hive
# Gateway's CLI, @apollo/gateway in @apollo/server) next to a second subgraph.
#
# Does NOT build the gateway: build it first, e.g.
#   cargo build && tests/federation/run.sh
# LEDGER_GATEWAY_BIN defaults to target/debug/ledger-gateway; a relative path
# is taken relative to the repo root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../support/suite.sh
source "$here/../support/suite.sh"

npm_install "$here"

require_gateway
exec node --test tests/federation/*.test.mjs
