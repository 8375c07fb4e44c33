#!/usr/bin/env bash
# Runs `atelier bench engine` with several binaries in turn, ROUNDS times, and prints each
# one's generations per second with the median. On a shared VM whose speed drifts by the
# hour, only binaries measured in the same minutes compare.
#
#   bench/interleave.sh ROUNDS tmpfs|disk BIN...
set -euo pipefail
rounds=${1:?rounds}; mode=${2:?tmpfs or disk}; shift 2
if [ "$mode" = tmpfs ]; then export TMPDIR=/dev/shm; fi
declare -A runs
for _ in $(seq "$rounds"); do
    for bin in "$@"; do
        rate=$("$bin" --json bench engine 2>/dev/null | python3 -c \
            'import json, sys; print(round(json.load(sys.stdin)["engine"]["generations_per_second"], 1))')
        runs[$bin]="${runs[$bin]:-} $rate"
    done
done
for bin in "$@"; do
    median=$(echo ${runs[$bin]} | tr ' ' '\n' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    echo "$bin:${runs[$bin]}  median $median"
done
