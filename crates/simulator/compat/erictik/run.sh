#!/usr/bin/env bash
# Compatibility check: erictik/midjourney-api (npm `midjourney`) run unchanged against the
# simulator. Needs node >= 18 and npm; not part of CI. Usage: crates/simulator/compat/erictik/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
cd "$here"
[ -d node_modules/midjourney ] || npm install --no-audit --no-fund
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build -q --manifest-path "$root/Cargo.toml" -p atelier-simulator --example serve
info="$(mktemp)"
"$CARGO_TARGET_DIR/debug/examples/serve" "$@" >"$info" &
pid=$!
trap 'kill "$pid" 2>/dev/null; rm -f "$info"' EXIT
for _ in $(seq 1 100); do
  [ -s "$info" ] && break
  sleep 0.1
done
[ -s "$info" ] || { echo "the simulator did not start" >&2; exit 1; }
SIM_INFO="$(head -n 1 "$info")" node compat.mjs
