#!/usr/bin/env bash
# Compares `atelier bench pipeline` with reference implementations of the same grid pipeline
# in sharp (libvips, Node) and Pillow (Python), on the very grid Atelier measures.
#
# Usage: bench/compare/run.sh [PATH_TO_ATELIER] [RUNS]
#   PATH_TO_ATELIER defaults to target/release/atelier (this script builds nothing).
#   RUNS defaults to 15 for every tool.
# Installs sharp (npm) and Pillow (PyPI, into .venv) here only when they are missing.
# Raw JSON of each run goes to bench/compare/results/ (git-ignored).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
atelier="$(realpath -m "${1:-$here/../../target/release/atelier}")"
runs="${2:-15}"
grid="/tmp/atelier-bench-grid.png"

[[ -x "$atelier" ]] || { echo "no atelier binary at $atelier (build it with cargo build --release)" >&2; exit 2; }
command -v node >/dev/null || { echo "node (20+) is required" >&2; exit 2; }
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3

cd "$here"
if [[ ! -f node_modules/sharp/package.json ]]; then
  echo "installing sharp..." >&2
  npm install --no-audit --no-fund >&2
fi
if ! .venv/bin/python -c 'import PIL' 2>/dev/null; then
  echo "installing Pillow into .venv..." >&2
  "$py" -m venv .venv
  .venv/bin/pip install -q -r requirements.txt >&2
fi

mkdir -p results
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="results/$stamp"
mkdir -p "$out"

echo "[$(date +%T)] atelier bench pipeline ($runs runs)..." >&2
work="$(mktemp -d)"
(cd "$work" && "$atelier" bench pipeline --runs "$runs" --save-grid "$grid" --json) > "$out/atelier.json"
rm -rf "$work"
{ echo "binary: $atelier"; ls -l --time-style=full-iso "$atelier"; sha256sum "$atelier"; } > "$out/atelier-binary.txt"
echo "[$(date +%T)] sharp ($runs runs)..." >&2
node sharp.mjs "$grid" "$runs" > "$out/sharp.json"
echo "[$(date +%T)] Pillow ($runs runs)..." >&2
.venv/bin/python pillow.py "$grid" "$runs" > "$out/pillow.json"
echo "[$(date +%T)] Pillow, 2 threads ($runs runs)..." >&2
.venv/bin/python pillow.py "$grid" "$runs" --threads 2 > "$out/pillow-threads2.json"

echo "[$(date +%T)] done" >&2
.venv/bin/python - "$out" <<'EOF'
import json, os, sys
d = sys.argv[1]
load = lambda n: json.load(open(os.path.join(d, n + ".json")))
a = load("atelier")["pipeline"]
rows = [("atelier", a)] + [(n, load(n)) for n in ("sharp", "pillow", "pillow-threads2")]
print(f"{'tool':<16}{'median ms':>11}{'min ms':>9}{'quad PNG B':>12}{'thumbs B':>10}{'output B':>11}")
for name, r in rows:
    print(f"{name:<16}{r['median_ms']:>11.1f}{r['min_ms']:>9.1f}{r['quadrant_png_bytes']:>12}"
          f"{r['thumbnail_webp_bytes']:>10}{r['output_bytes']:>11}")
print()
am, ab = a["median_ms"], a["output_bytes"]
for name, r in rows[1:]:
    print(f"{name}_ms/atelier_ms = {r['median_ms'] / am:.2f}   "
          f"atelier_bytes/{name}_bytes = {ab / r['output_bytes']:.3f}")
print(f"\n(raw JSON in {d}; grid {a['input_bytes']} bytes)")
EOF
