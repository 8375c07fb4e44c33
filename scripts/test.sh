#!/usr/bin/env bash
# The whole test suite on a fresh machine (README command 2).
#
# Installs and starts what the tests need by itself. Today the suite needs what Cargo builds
# (SQLite is bundled, the sandbox provider and the Discord fakes run in-process on 127.0.0.1)
# and util-linux's `unshare`: the full-disk, read-only and denied-storage tests mount a small
# tmpfs or a read-only bind in a private mount namespace. PostgreSQL (TEST_DATABASE_URL) and
# an S3-compatible server join here with the issues that bring those backends.
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

# Nothing is skipped silently: every test binary runs, and the run fails on any failure.
cargo test --workspace --locked --all-targets "$@"
