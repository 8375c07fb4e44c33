#!/usr/bin/env bash
# Sandbox generations per second on SQLite and on PostgreSQL, with the workers in the bench
# process and in 1, 2 and 4 worker processes (`atelier jobs run --until-idle`, each running
# CONCURRENCY jobs at once), all interleaved ROUNDS times; prints each configuration's runs,
# median, and its ratio to SQLite in one process.
#
# Usage: bench/engine-databases.sh [PATH_TO_ATELIER] [ROUNDS]
#   PATH_TO_ATELIER defaults to target/release/atelier; ROUNDS to 5.
# Environment: BENCH_DATABASE (default postgres://postgres@127.0.0.1:5432/postgres; each run
# makes a scratch database there and drops it), GENERATIONS (400), CONCURRENCY (4),
# CONFIGS (default "sqlite:0 sqlite:2 postgres:0 postgres:1 postgres:2 postgres:4"),
# TMPDIR (where the folder store and SQLite file go; /dev/shm for tmpfs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
atelier="$(realpath -m "${1:-$here/../target/release/atelier}")"
rounds="${2:-5}"
database="${BENCH_DATABASE:-postgres://postgres@127.0.0.1:5432/postgres}"
generations="${GENERATIONS:-400}"
concurrency="${CONCURRENCY:-4}"
configs="${CONFIGS:-sqlite:0 sqlite:2 postgres:0 postgres:1 postgres:2 postgres:4}"
[[ -x "$atelier" ]] || { echo "no atelier binary at $atelier (build it with cargo build --release)" >&2; exit 2; }

declare -A runs
for round in $(seq "$rounds"); do
    echo "[$(date +%T)] round $round (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    for config in $configs; do
        db="${config%%:*}"; processes="${config##*:}"
        args=(--json bench engine --generations "$generations" --concurrency "$concurrency" --processes "$processes")
        [[ $db == postgres ]] && args+=(--database "$database")
        rate=$("$atelier" "${args[@]}" | python3 -c \
            'import json, sys; print(round(json.load(sys.stdin)["engine"]["generations_per_second"], 1))')
        runs[$config]="${runs[$config]:-} $rate"
    done
done
python3 - $configs <<PY
import statistics
runs = {$(for c in $configs; do printf '"%s": [%s], ' "$c" "$(echo ${runs[$c]} | tr ' ' ',')"; done)}
base = statistics.median(runs["sqlite:0"]) if "sqlite:0" in runs else None
for config, rs in runs.items():
    db, p = config.split(":")
    where = "in the bench process" if p == "0" else f"{p} worker process{'es' if p != '1' else ''}"
    m = statistics.median(rs)
    ratio = f"  {m / base:.2f}x SQLite in one process" if base else ""
    print(f"{db:<10} {where:<22} median {m:6.1f} generations/s  {rs}{ratio}")
PY
echo "(load now $(cut -d' ' -f1-3 /proc/loadavg))" >&2
