#!/usr/bin/env bash
# The whole test suite on a fresh machine (README command 2).
#
# Installs and starts what the tests need by itself. Today the suite needs what Cargo builds
# (SQLite is bundled, the sandbox provider and the Discord fakes run in-process on 127.0.0.1)
# and util-linux's `unshare`: the full-disk, read-only and denied-storage tests mount a small
# tmpfs or a read-only bind in a private mount namespace; and an S3-compatible server for the
# S3 store's tests (moto's server mode, below). PostgreSQL (TEST_DATABASE_URL) joins here with
# the issue that brings that backend.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed (Rust 1.94 or newer is needed)" >&2
    exit 1
fi

if ! command -v unshare >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -q util-linux >/dev/null
    else
        echo "error: unshare (util-linux) is needed by the mount-namespace tests; install util-linux" >&2
        exit 1
    fi
fi

# S3: moto's server mode in a virtualenv under target/test-peers/ (installed once, from PyPI),
# on a free loopback port, stopped when this script ends. The tests read
# ATELIER_TEST_S3_ENDPOINT (set it yourself to use another S3-compatible server instead) and
# create a bucket each; moto accepts any keys.
if [ -z "${ATELIER_TEST_S3_ENDPOINT:-}" ]; then
    peers=target/test-peers
    mkdir -p "$peers"
    if [ ! -x "$peers/moto/bin/moto_server" ]; then
        if ! python3 -m venv "$peers/moto" >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get install -y -q python3-venv >/dev/null
            fi
            rm -rf "$peers/moto"
            python3 -m venv "$peers/moto" || {
                echo "error: cannot make a Python virtualenv for the S3 test server (moto): install python3-venv" >&2
                exit 1
            }
        fi
        "$peers/moto/bin/pip" install -q 'moto[server]' >"$peers/moto-install.log" 2>&1 || {
            rm -rf "$peers/moto"
            echo "error: cannot install moto (the S3 test server) from PyPI; see $peers/moto-install.log" >&2
            exit 1
        }
    fi
    s3_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$peers/moto/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$peers/moto.log" 2>&1 &
    s3_pid=$!
    trap 'kill "$s3_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        if ! kill -0 "$s3_pid" 2>/dev/null; then
            echo "error: the S3 test server (moto) stopped at start; see $peers/moto.log" >&2
            exit 1
        fi
        if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$s3_port/', timeout=1)" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    if ! python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3_port/', timeout=1)" 2>/dev/null; then
        echo "error: the S3 test server (moto) does not answer on 127.0.0.1:$s3_port after 20 s; see $peers/moto.log" >&2
        exit 1
    fi
    export ATELIER_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
fi

# Nothing is skipped silently: every test binary runs, and the run fails on any failure.
cargo test --workspace --locked --all-targets "$@"
