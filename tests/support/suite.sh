# Shared steps of the JS test stages' run.sh scripts; source it, then call
# what the stage needs. Every stage runs from the repo root against a built
# gateway binary, and installs only what is missing.

support_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$support_dir/../.." && pwd)"

# Installs Debian package $1 (needs root, or sudo).
apt_install() {
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1"
}

# Installs the locked npm packages of the stage folder $1.
npm_install() {
  (cd "$1" && npm ci --no-audit --no-fund)
}

# Moves to the repo root and checks LEDGER_GATEWAY_BIN (default
# target/debug/ledger-gateway; relative to the repo root) is built.
require_gateway() {
  cd "$repo_root"
  export LEDGER_GATEWAY_BIN="${LEDGER_GATEWAY_BIN:-target/debug/ledger-gateway}"
  if [[ ! -x "$(realpath -m "$LEDGER_GATEWAY_BIN")" ]]; then
    echo "gateway binary not found: $LEDGER_GATEWAY_BIN (build it first, e.g. cargo build)" >&2
    exit 1
  fi
}
