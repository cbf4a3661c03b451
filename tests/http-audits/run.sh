#!/usr/bin/env bash
# GraphQL over HTTP conformance: graphql-http's server audits against the
# running gateway binary (the demo on a loopback port).
#
# Does NOT build the gateway: build it first, e.g.
#   cargo build && tests/http-audits/run.sh
# LEDGER_GATEWAY_BIN defaults to target/debug/ledger-gateway; a relative path
# is taken relative to the repo root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../support/suite.sh
source "$here/../support/suite.sh"

npm_install "$here"

require_gateway
exec node --test tests/http-audits/*.test.mjs
