#!/usr/bin/env bash
# The job queue alone against graphile-worker (npm), on the same PostgreSQL server: both drain
# JOBS empty jobs (claim + finish; graphile's task does nothing) with the same number of
# concurrent workers, each run in a scratch database of its own. The two run interleaved,
# ROUNDS times per configuration; prints each one's jobs per second, the medians and the ratio.
#
# Usage: bench/queue-vs-graphile.sh [PATH_TO_ATELIER] [ROUNDS]
#   PATH_TO_ATELIER defaults to target/release/atelier (this script builds nothing).
#   ROUNDS defaults to 5.
# Environment:
#   BENCH_DATABASE  the server (default postgres://postgres@127.0.0.1:5432/postgres)
#   JOBS            jobs per run (default 5000)
#   CONFIGS         workers:processes pairs (default "4:0 8:0 4:2"); processes 0 means the
#                   workers are tasks of one process, P > 0 means P processes of W workers each
#   BASELINE        another atelier binary (an older build) measured in the same rounds
# graphile-worker is installed from bench/graphile/package-lock.json into a temporary folder,
# removed at the end. Raw JSON goes to bench/graphile/results/ (git-ignored).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
atelier="$(realpath -m "${1:-$here/../target/release/atelier}")"
rounds="${2:-5}"
database="${BENCH_DATABASE:-postgres://postgres@127.0.0.1:5432/postgres}"
jobs="${JOBS:-5000}"
configs="${CONFIGS:-4:0 8:0 4:2}"

[[ -x "$atelier" ]] || { echo "no atelier binary at $atelier (build it with cargo build --release)" >&2; exit 2; }
command -v node >/dev/null || { echo "node (20+) is required" >&2; exit 2; }
command -v npm >/dev/null || { echo "npm is required" >&2; exit 2; }

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp "$here/graphile/package.json" "$here/graphile/package-lock.json" "$here/graphile/queue.mjs" "$scratch/"
echo "installing graphile-worker into $scratch..." >&2
(cd "$scratch" && npm ci --no-audit --no-fund --loglevel=error >&2)

out="$here/graphile/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
{ echo "binary: $atelier"; sha256sum "$atelier"; uptime; nproc; } > "$out/machine.txt"

rate() { python3 -c 'import json, sys; print(round(json.load(sys.stdin)["queue"]["jobs_per_second"], 1))'; }

for config in $configs; do
    workers="${config%%:*}"; processes="${config##*:}"
    a_runs=(); g_runs=(); b_runs=()
    for round in $(seq "$rounds"); do
        echo "[$(date +%T)] $config round $round (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        # Alternate which goes first, so neither always follows the other's writes.
        order=$( ((round % 2)) && echo "atelier graphile" || echo "graphile atelier")
        [[ -n ${BASELINE:-} ]] && order="$order baseline"
        for who in $order; do
            if [[ $who == baseline ]]; then
                json=$(cd "$scratch" && "$(realpath "$BASELINE")" --json bench queue --database "$database" \
                    --jobs "$jobs" --workers "$workers" --processes "$processes" --runs 1)
                b_runs+=("$(rate <<<"$json")")
            elif [[ $who == atelier ]]; then
                json=$(cd "$scratch" && "$atelier" --json bench queue --database "$database" \
                    --jobs "$jobs" --workers "$workers" --processes "$processes" --runs 1)
                a_runs+=("$(rate <<<"$json")")
            else
                json=$(cd "$scratch" && node queue.mjs --database "$database" \
                    --jobs "$jobs" --workers "$workers" --processes "$processes" --runs 1)
                g_runs+=("$(rate <<<"$json")")
            fi
            echo "$json" >> "$out/$who-$workers-$processes.jsonl"
        done
    done
    python3 - "$config" "${a_runs[*]}" "${g_runs[*]}" "${b_runs[*]}" <<'PY'
import statistics, sys
config, a, g = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
b = [float(x) for x in sys.argv[4].split()]
w, p = config.split(":")
who = f"{w} workers" + (f" in each of {p} processes" if p != "0" else " in one process")
ma, mg = statistics.median(a), statistics.median(g)
base = f"; baseline {statistics.median(b):.0f} jobs/s {b}" if b else ""
print(f"{who}: atelier {ma:.0f} jobs/s {a}; graphile-worker {mg:.0f} jobs/s {g}; atelier/graphile = {ma / mg:.2f}{base}")
PY
done
echo "(raw JSON in $out; load now $(cut -d' ' -f1-3 /proc/loadavg))" >&2
