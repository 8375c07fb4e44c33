#!/usr/bin/env bash
# The HTTP benchmarks of BENCHMARKS.md, in one command, on loopback (127.0.0.1 only):
#
# 1. Status reads, GET /v1/generations/{id} with an API key: `atelier serve` (SQLite) against
#    the FastAPI + uvicorn peer (bench/http/peer.py) reading the same SQLite file.
#    - throughput: wrk (closed loop: as many requests as the server answers), ROUNDS rounds,
#      the two servers interleaved (which goes first alternates);
#    - latency at a constant 1,000 requests/s: `atelier bench rate` (open loop, wrk2-style:
#      a request late because the server is behind is timed from when it was due), both
#      servers, interleaved.
# 2. SSE: SUBSCRIBERS subscribers to GET /v1/events on one `atelier serve` (a fresh data
#    directory each round): its memory per subscriber and the time from an event's commit to
#    its arrival at the last subscriber (`atelier bench sse`).
#
# Usage: bench/http.sh [PATH_TO_ATELIER] [ROUNDS]
#   PATH_TO_ATELIER defaults to target/release/atelier (this script builds nothing: run
#   `cargo build --release` first). ROUNDS defaults to 5 (3 for SSE).
# Environment: TABLE_GENERATIONS (500: the catalogue read holds as many generations, five
#   images each), WRK_SECONDS (10), WRK_CONNECTIONS (64), RATE (1000), RATE_SECONDS (20),
#   SUBSCRIBERS (10000), SSE_GENERATIONS (20), SSE_ROUNDS (3), PEER_WORKERS (2: one uvicorn
#   process per core), ONLY (status | sse: one half), BASELINE (another atelier binary,
#   measured in the same rounds as a third server).
# Needs wrk (Debian: apt-get install wrk) and python3 (3.10+); the peer's packages are
# installed from bench/http/requirements.txt into target/bench-peers/fastapi.
# Raw results go to target/bench-results/http-<time>/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
atelier="$(realpath -m "${1:-$root/target/release/atelier}")"
rounds="${2:-5}"
wrk_seconds="${WRK_SECONDS:-10}"
wrk_connections="${WRK_CONNECTIONS:-64}"
rate="${RATE:-1000}"
rate_seconds="${RATE_SECONDS:-20}"
subscribers="${SUBSCRIBERS:-10000}"
sse_generations="${SSE_GENERATIONS:-20}"
sse_rounds="${SSE_ROUNDS:-3}"
table_generations="${TABLE_GENERATIONS:-500}"
peer_workers="${PEER_WORKERS:-2}"
only="${ONLY:-}"

[[ -x "$atelier" ]] || { echo "no atelier binary at $atelier (cargo build --release)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }
[[ -z ${BASELINE:-} || -x $BASELINE ]] || { echo "BASELINE is not an executable" >&2; exit 2; }

# The peer's virtual environment, made again when the requirements change.
venv="$root/target/bench-peers/fastapi"
if ! cmp -s "$here/http/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
    echo "installing the FastAPI peer into $venv..." >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/http/requirements.txt" >&2
    cp "$here/http/requirements.txt" "$venv/requirements.txt"
fi

# Ten thousand subscribers need as many sockets in the server and in the client.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < subscribers + 512)); then
    echo "the open-file limit ($(ulimit -n)) is too low for $subscribers subscribers" >&2
    exit 2
fi

out="$root/target/bench-results/http-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
scratch="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT
{ echo "binary: $atelier"; sha256sum "$atelier"; uptime; nproc; wrk --version 2>&1 | head -1 || true
  "$venv/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -Ei '^(fastapi|uvicorn|uvloop|httptools|pydantic) '; } > "$out/machine.txt"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() { # URL
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing answers at $1" >&2; exit 1
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
log() { echo "[$(date +%T)] $* (load $(cut -d' ' -f1 /proc/loadavg))" >&2; }

# The servers' settings: no rate limit (one key makes every request), small sandbox images.
export ATELIER_SERVER__RATE_LIMIT_PER_MINUTE=0
export ATELIER_PROVIDERS__SANDBOX__DELAY_MS=20
export ATELIER_PROVIDERS__SANDBOX__SIZE=256
export ATELIER_PROVIDERS__SANDBOX__CONCURRENCY=4
export ATELIER_LOG=warn
export PYTHONDONTWRITEBYTECODE=1
# A fresh data directory with one user, whose new key is in $key.
setup() { # DIR BINARY
    export ATELIER_DATA_DIR="$1"
    "$2" user add bench@example.com >/dev/null
    key="$("$2" key create --user bench@example.com 2>/dev/null)"
}
serve() { # BINARY PORT -> pid in $served
    "$1" serve --bind "127.0.0.1:$2" > "$scratch/serve-$2.log" 2>&1 &
    served=$!
    pids+=("$served")
    wait_up "http://127.0.0.1:$2/healthz"
}
stop() { # PID
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

if [[ $only != sse ]]; then
    setup "$scratch/status" "$atelier"
    port_a="$(free_port)"
    serve "$atelier" "$port_a"; atelier_pid=$served
    # A catalogue with some history: TABLE_GENERATIONS sandbox generations of five images
    # each, made through the API; the one read is in the middle.
    log "making $table_generations generations"
    seq "$table_generations" | xargs -P 4 -I N curl -fsS -o "$scratch/made-N.json" \
        -X POST "http://127.0.0.1:$port_a/v1/generations" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' -H 'Prefer: wait=60' \
        -d '{"prompt": "a lighthouse at dawn, number N --ar 3:2", "category": "scene"}'
    id="$(json 'd["id"]' < "$scratch/made-$(( (table_generations + 1) / 2 )).json")"
    [[ "$(json 'd["status"]' < "$scratch/made-$(( (table_generations + 1) / 2 )).json")" == succeeded ]] \
        || { echo "the generation to read did not succeed" >&2; exit 1; }
    path="/v1/generations/$id"
    port_p="$(free_port)"
    ATELIER_PEER_DB="$scratch/status/atelier.db" "$venv/bin/uvicorn" peer:app --app-dir "$here/http" \
        --host 127.0.0.1 --port "$port_p" --workers "$peer_workers" --no-access-log \
        --log-level warning > "$scratch/peer.log" 2>&1 &
    peer_pid=$!; pids+=("$peer_pid")
    wait_up "http://127.0.0.1:$port_p/docs"
    servers="atelier peer"
    declare -A port=([atelier]=$port_a [peer]=$port_p) pid=([atelier]=$atelier_pid [peer]=$peer_pid)
    if [[ -n ${BASELINE:-} ]]; then
        # The baseline binary serves the same data directory on a port of its own.
        port[baseline]="$(free_port)"
        serve "$BASELINE" "${port[baseline]}"; pid[baseline]=$served
        servers="$servers baseline"
    fi
    for s in $servers; do
        curl -fsS "http://127.0.0.1:${port[$s]}$path" -H "Authorization: Bearer $key" > "$out/answer-$s.json"
        curl -s -o /dev/null -w "$s without a key: %{http_code}\n" "http://127.0.0.1:${port[$s]}$path" >> "$out/answers.txt"
    done
    # The two answers carry the same fields for the generation and its images.
    python3 - "$out/answer-atelier.json" "$out/answer-peer.json" <<'EOF' >> "$out/answers.txt"
import json, sys
a, p = (json.load(open(f)) for f in sys.argv[1:3])
same = [k for k in p if k in a and a[k] == p[k] and k != "images"]
print("fields equal:", len(same), "of", len(p), "; images:", len(a["images"]), len(p["images"]),
      "; differing:", [k for k in p if k not in same and k != "images"])
EOF
    cat "$out/answers.txt" >&2

    declare -A rps p99
    for r in $(seq "$rounds"); do
        order="$servers"; ((r % 2)) || order="$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' ')"
        for s in $order; do
            log "wrk round $r: $s"
            wrk -t2 -c"$wrk_connections" -d"${wrk_seconds}s" --latency -H "Authorization: Bearer $key" \
                "http://127.0.0.1:${port[$s]}$path" > "$out/wrk-$s-$r.txt"
            errors="$(grep -E 'Non-2xx|Socket errors' "$out/wrk-$s-$r.txt" || true)"
            [[ -z $errors ]] || { echo "$s: $errors" >&2; exit 1; }
            rps[$s]="${rps[$s]:-} $(awk '/Requests\/sec/ {print $2}' "$out/wrk-$s-$r.txt")"
        done
    done
    for r in $(seq "$rounds"); do
        order="$servers"; ((r % 2)) || order="$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' ')"
        for s in $order; do
            log "constant ${rate}/s round $r: $s"
            # (uvicorn's CPU is in its worker processes: only Atelier's is reported.)
            cpu=(); [[ $s == peer ]] || cpu=(--server-pid "${pid[$s]}")
            "$atelier" --json bench rate --url "http://127.0.0.1:${port[$s]}" --path "$path" \
                --api-key "$key" --rate "$rate" --seconds "$rate_seconds" "${cpu[@]}" \
                > "$out/rate-$s-$r.json"
            p99[$s]="${p99[$s]:-} $(json 'round(d["rate"]["latency_ms"]["p99"], 3)' < "$out/rate-$s-$r.json")"
            echo "  $(json '"achieved %.0f/s, errors %d, p50 %.3f ms, p99 %.3f ms, max %.1f ms" % (d["rate"]["achieved_rate"], d["rate"]["errors"], d["rate"]["latency_ms"]["p50"], d["rate"]["latency_ms"]["p99"], d["rate"]["latency_ms"]["max"])' < "$out/rate-$s-$r.json")" >&2
        done
    done
    for s in $servers; do stop "${pid[$s]}"; done
    {
        echo "## status reads: $path"
        for s in $servers; do
            echo "$s: wrk requests/s [${rps[$s]# }] median $(echo "${rps[$s]}" | median);" \
                "p99 at ${rate}/s [${p99[$s]# }] ms median $(echo "${p99[$s]}" | median)"
        done
        a="$(echo "${rps[atelier]}" | median)"; p="$(echo "${rps[peer]}" | median)"
        echo "ratio atelier/peer (medians): $(python3 -c "print(round($a / $p, 2))")"
        per_round="$(paste -d/ <(echo "${rps[atelier]}" | tr ' ' '\n' | grep -v '^$') \
            <(echo "${rps[peer]}" | tr ' ' '\n' | grep -v '^$') | python3 -c \
            'import sys; print(" ".join(str(round(eval(l), 2)) for l in sys.stdin))')"
        echo "ratio per round: $per_round"
    } | tee "$out/status.txt"
fi

if [[ $only != status ]]; then
    declare -A kib to_last
    sse_binaries="atelier"; [[ -z ${BASELINE:-} ]] || sse_binaries="atelier baseline"
    declare -A binary=([atelier]=$atelier [baseline]=${BASELINE:-})
    for r in $(seq "$sse_rounds"); do
        for b in $sse_binaries; do
            log "SSE round $r: $b, $subscribers subscribers"
            setup "$scratch/sse-$b-$r" "${binary[$b]}"
            port_s="$(free_port)"
            serve "${binary[$b]}" "$port_s"; sse_pid=$served
            # Warm the server (its first requests open the catalogue's readers) before its
            # memory is read.
            for _ in $(seq 20); do
                curl -fsS -o /dev/null "http://127.0.0.1:$port_s/v1/me" -H "Authorization: Bearer $key"
            done
            "$atelier" --json bench sse --url "http://127.0.0.1:$port_s" --api-key "$key" \
                --subscribers "$subscribers" --sse-generations "$sse_generations" \
                --server-pid "$sse_pid" > "$out/sse-$b-$r.json"
            stop "$sse_pid"
            kib[$b]="${kib[$b]:-} $(json 'round(d["sse"]["kib_per_subscriber"]["connected"], 1)' < "$out/sse-$b-$r.json")"
            to_last[$b]="${to_last[$b]:-} $(json 'round(d["sse"]["commit_to_last_subscriber_ms"]["p99"], 1)' < "$out/sse-$b-$r.json")"
            echo "  $(json '"%d events, %d missed; KiB/subscriber %.1f connected, %.1f after; commit to last p50 %.1f ms, p99 %.1f ms; CPU server %.1f s, client %.1f s" % (d["sse"]["events"], d["sse"]["events_missed_by_some"], d["sse"]["kib_per_subscriber"]["connected"], d["sse"]["kib_per_subscriber"]["after_events"], d["sse"]["commit_to_last_subscriber_ms"]["p50"], d["sse"]["commit_to_last_subscriber_ms"]["p99"], d["sse"]["event_phase_cpu_secs"]["server"], d["sse"]["event_phase_cpu_secs"]["client"])' < "$out/sse-$b-$r.json")" >&2
        done
    done
    {
        echo "## SSE: $subscribers subscribers, $sse_generations generations"
        for b in $sse_binaries; do
            echo "$b: KiB per subscriber [${kib[$b]# }] median $(echo "${kib[$b]}" | median);" \
                "commit to last subscriber p99 [${to_last[$b]# }] ms median $(echo "${to_last[$b]}" | median)"
        done
    } | tee "$out/sse.txt"
fi
echo "raw results: $out" >&2
