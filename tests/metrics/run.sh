#!/usr/bin/env bash
# `/metrics` of the real debug binary after a workload: `promtool check
# metrics` must pass, and the metric names must be exactly README's.
#
# Does NOT build the gateway: build it first, e.g.
#   cargo build && LEDGER_GATEWAY_BIN=target/debug/ledger-gateway tests/metrics/run.sh
# Installs Debian's prometheus package (for promtool) if promtool is missing
# (needs root).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../support/suite.sh
source "$here/../support/suite.sh"

if ! command -v promtool >/dev/null; then
  apt_install prometheus
fi

require_gateway
exec node tests/metrics/workload.mjs
