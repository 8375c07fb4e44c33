#!/usr/bin/env bash
# The whole test suite on a fresh machine (README command 2).
#
# Installs and starts what the tests need by itself. Today the suite needs only what Cargo
# builds (SQLite is bundled, the sandbox provider and the Discord fakes run in-process on
# 127.0.0.1), so there is nothing to start yet. PostgreSQL (TEST_DATABASE_URL) and an
# S3-compatible server join here with the issues that bring those backends.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed (Rust 1.94 or newer is needed)" >&2
    exit 1
fi

# Nothing is skipped silently: every test binary runs, and the run fails on any failure.
cargo test --workspace --locked --all-targets "$@"
