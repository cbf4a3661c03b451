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
repo_root="$(cd "$here/../.." && pwd)"

if ! command -v promtool >/dev/null; then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi

cd "$repo_root"
export LEDGER_GATEWAY_BIN="${LEDGER_GATEWAY_BIN:-target/debug/ledger-gateway}"
if [[ ! -x "$(realpath -m "$LEDGER_GATEWAY_BIN")" ]]; then
  echo "gateway binary not found: $LEDGER_GATEWAY_BIN (build it first, e.g. cargo build)" >&2
  exit 1
fi
exec node tests/metrics/workload.mjs
