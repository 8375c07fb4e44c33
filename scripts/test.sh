#!/usr/bin/env bash
# The whole test suite on a fresh machine (README command 2).
#
# Installs and starts what the tests need by itself (Node's MCP Inspector included). Today the suite needs what Cargo builds
# (SQLite is bundled, the sandbox provider and the Discord fakes run in-process on 127.0.0.1)
# and util-linux's `unshare`: the full-disk, read-only and denied-storage tests mount a small
# tmpfs or a read-only bind in a private mount namespace. An S3-compatible server (moto) and
# PostgreSQL: see below. Both are stopped when this script ends.
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

s3_pid=""
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

# The OpenAPI tests (tests/it/openapi.rs): openapi-spec-validator checks the served document,
# and schemathesis fuzzes a real `atelier serve` with it. Both in a virtualenv under
# target/test-peers/ (installed once, from PyPI, at the versions the tests were written
# against); the tests read ATELIER_TEST_OPENAPI_TOOLS, its `bin` folder, and fail without it.
if [ -z "${ATELIER_TEST_OPENAPI_TOOLS:-}" ]; then
    peers=target/test-peers
    mkdir -p "$peers"
    if [ ! -x "$peers/openapi/bin/schemathesis" ] || [ ! -x "$peers/openapi/bin/openapi-spec-validator" ]; then
        rm -rf "$peers/openapi"
        if ! python3 -m venv "$peers/openapi" >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get install -y -q python3-venv >/dev/null
            fi
            rm -rf "$peers/openapi"
            python3 -m venv "$peers/openapi" || {
                echo "error: cannot make a Python virtualenv for the OpenAPI tools: install python3-venv" >&2
                exit 1
            }
        fi
        "$peers/openapi/bin/pip" install -q 'schemathesis==4.32.5' 'openapi-spec-validator==0.9.0' \
            >"$peers/openapi-install.log" 2>&1 || {
            rm -rf "$peers/openapi"
            echo "error: cannot install schemathesis and openapi-spec-validator from PyPI; see $peers/openapi-install.log" >&2
            exit 1
        }
    fi
    ATELIER_TEST_OPENAPI_TOOLS="$PWD/$peers/openapi/bin"
fi
export ATELIER_TEST_OPENAPI_TOOLS
# The MCP Inspector (the reference MCP client, npm) for the MCP tests: pinned to 0.15.0, the
# newest whose CLI runs on Debian's Node 20, installed once under target/test-peers/. The tests
# read ATELIER_TEST_MCP_INSPECTOR (the package's launcher, run as `node <it> --cli`).
if [ -z "${ATELIER_TEST_MCP_INSPECTOR:-}" ]; then
    peers=target/test-peers
    inspector="$peers/mcp-inspector/node_modules/@modelcontextprotocol/inspector/cli/build/cli.js"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -q nodejs npm >/dev/null
        else
            echo "error: Node.js and npm are needed by the MCP tests (the MCP Inspector); install nodejs and npm" >&2
            exit 1
        fi
    fi
    if [ ! -f "$inspector" ]; then
        mkdir -p "$peers/mcp-inspector"
        npm install --prefix "$peers/mcp-inspector" --no-audit --no-fund --loglevel=error \
            @modelcontextprotocol/inspector@0.15.0 >"$peers/mcp-inspector-install.log" 2>&1 || {
            rm -rf "$peers/mcp-inspector"
            echo "error: cannot install the MCP Inspector from npm; see $peers/mcp-inspector-install.log" >&2
            exit 1
        }
        if [ ! -f "$inspector" ]; then
            echo "error: the MCP Inspector installed without $inspector; see $peers/mcp-inspector-install.log" >&2
            exit 1
        fi
    fi
    ATELIER_TEST_MCP_INSPECTOR="$(pwd)/$inspector"
    export ATELIER_TEST_MCP_INSPECTOR
fi

# PostgreSQL for the catalogue tests: ATELIER_TEST_DATABASE_URL is an admin URL from which
# every test creates a database of its own (atelier_t_*), so tests run in parallel. Given
# ATELIER_TEST_DATABASE_URL is used as it is; else the server on 127.0.0.1:5432 when it
# accepts connections (these machines run one, trust auth, user postgres); else, or with
# ATELIER_TEST_PG=throwaway, a throw-away cluster in a temporary directory on a free loopback
# port (Debian's `postgresql` is installed when missing), stopped and removed on exit.
# Without TLS (`sslmode=disable`): on loopback it only costs every new connection ~100 ms.
# The Standard Webhooks reference library (Python, from PyPI): the webhook tests verify every
# delivery's signature with it, not only with their own HMAC.
if [ -z "${ATELIER_TEST_WEBHOOK_VERIFIER:-}" ]; then
    peers=target/test-peers
    mkdir -p "$peers"
    if [ ! -x "$peers/standardwebhooks/bin/python" ] \
        || ! "$peers/standardwebhooks/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
        rm -rf "$peers/standardwebhooks"
        python3 -m venv "$peers/standardwebhooks" || {
            echo "error: cannot make a Python virtualenv for the webhook verifier: install python3-venv" >&2
            exit 1
        }
        "$peers/standardwebhooks/bin/pip" install -q 'standardwebhooks>=1.1,<2' >"$peers/standardwebhooks-install.log" 2>&1 || {
            rm -rf "$peers/standardwebhooks"
            echo "error: cannot install standardwebhooks from PyPI; see $peers/standardwebhooks-install.log" >&2
            exit 1
        }
    fi
    ATELIER_TEST_WEBHOOK_VERIFIER="$(pwd)/$peers/standardwebhooks/bin/python"
    export ATELIER_TEST_WEBHOOK_VERIFIER
fi

# The official OpenAI Python client (from PyPI, unchanged): the OpenAI simulator's fidelity
# test (tests/it/openai/python.rs) runs it against the simulator. Installed once under
# target/test-peers/openai; the test reads ATELIER_TEST_OPENAI_PYTHON (that virtualenv's
# python) and fails without it.
if [ -z "${ATELIER_TEST_OPENAI_PYTHON:-}" ]; then
    peers=target/test-peers
    mkdir -p "$peers"
    if [ ! -x "$peers/openai/bin/python" ] \
        || ! "$peers/openai/bin/python" -c 'import openai' 2>/dev/null; then
        rm -rf "$peers/openai"
        python3 -m venv "$peers/openai" || {
            echo "error: cannot make a Python virtualenv for the OpenAI client: install python3-venv" >&2
            exit 1
        }
        "$peers/openai/bin/pip" install -q 'openai==2.54.0' >"$peers/openai-install.log" 2>&1 || {
            rm -rf "$peers/openai"
            echo "error: cannot install the openai client from PyPI; see $peers/openai-install.log" >&2
            exit 1
        }
    fi
    ATELIER_TEST_OPENAI_PYTHON="$(pwd)/$peers/openai/bin/python"
    export ATELIER_TEST_OPENAI_PYTHON
fi

# The official Replicate Python client (from PyPI, unchanged): the Replicate simulator's
# fidelity test (tests/it/replicate/python.rs) runs it against the simulator. Installed once
# under target/test-peers/replicate; the test reads ATELIER_TEST_REPLICATE_PYTHON (that
# virtualenv's python) and fails without it.
if [ -z "${ATELIER_TEST_REPLICATE_PYTHON:-}" ]; then
    peers=target/test-peers
    mkdir -p "$peers"
    if [ ! -x "$peers/replicate/bin/python" ] \
        || ! "$peers/replicate/bin/python" -c 'import replicate' 2>/dev/null; then
        rm -rf "$peers/replicate"
        python3 -m venv "$peers/replicate" || {
            echo "error: cannot make a Python virtualenv for the Replicate client: install python3-venv" >&2
            exit 1
        }
        "$peers/replicate/bin/pip" install -q 'replicate==1.0.7' >"$peers/replicate-install.log" 2>&1 || {
            rm -rf "$peers/replicate"
            echo "error: cannot install the replicate client from PyPI; see $peers/replicate-install.log" >&2
            exit 1
        }
    fi
    ATELIER_TEST_REPLICATE_PYTHON="$(pwd)/$peers/replicate/bin/python"
    export ATELIER_TEST_REPLICATE_PYTHON
fi

# Comfy-Org's official command line for ComfyUI, comfy-cli (from PyPI, unchanged; ComfyUI has
# no official client library): the ComfyUI simulator's fidelity test (tests/it/comfyui/
# python.rs) runs `comfy run` against the simulator. Installed once under
# target/test-peers/comfyui; the test reads ATELIER_TEST_COMFY_CLI (that virtualenv's comfy)
# and fails without it.
if [ -z "${ATELIER_TEST_COMFY_CLI:-}" ]; then
    peers=target/test-peers
    mkdir -p "$peers"
    if [ ! -x "$peers/comfyui/bin/comfy" ]; then
        rm -rf "$peers/comfyui"
        python3 -m venv "$peers/comfyui" || {
            echo "error: cannot make a Python virtualenv for comfy-cli: install python3-venv" >&2
            exit 1
        }
        "$peers/comfyui/bin/pip" install -q 'comfy-cli==1.23.0' >"$peers/comfyui-install.log" 2>&1 || {
            rm -rf "$peers/comfyui"
            echo "error: cannot install comfy-cli from PyPI; see $peers/comfyui-install.log" >&2
            exit 1
        }
    fi
    ATELIER_TEST_COMFY_CLI="$(pwd)/$peers/comfyui/bin/comfy"
    export ATELIER_TEST_COMFY_CLI
fi

# A client library of the midjourney-proxy protocol, unchanged: 302.AI's `@302ai/ai-sdk` for
# the Vercel AI SDK (npm; its Midjourney model submits, polls /mj/task/{id}/fetch, presses U1
# through /mj/submit/action and downloads imageUrl). The proxy tests (tests/it/mjproxy/
# client.rs) run it against `atelier serve`. Installed once under target/test-peers/mjproxy,
# pinned with the `ai` version it was written for; the test reads ATELIER_TEST_MJPROXY_SDK
# (that node_modules folder) and fails without it.
if [ -z "${ATELIER_TEST_MJPROXY_SDK:-}" ]; then
    peers=target/test-peers
    mkdir -p "$peers"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -q nodejs npm >/dev/null
        else
            echo "error: Node.js and npm are needed by the midjourney-proxy tests (@302ai/ai-sdk); install nodejs and npm" >&2
            exit 1
        fi
    fi
    sdk="$peers/mjproxy/node_modules/@302ai/ai-sdk/package.json"
    if [ ! -f "$sdk" ] || [ ! -f "$peers/mjproxy/node_modules/ai/package.json" ]; then
        rm -rf "$peers/mjproxy"
        mkdir -p "$peers/mjproxy"
        npm install --prefix "$peers/mjproxy" --no-audit --no-fund --loglevel=error \
            @302ai/ai-sdk@0.0.22 ai@4.3.16 zod@3.25.76 >"$peers/mjproxy-install.log" 2>&1 || {
            rm -rf "$peers/mjproxy"
            echo "error: cannot install @302ai/ai-sdk and ai from npm; see $peers/mjproxy-install.log" >&2
            exit 1
        }
    fi
    ATELIER_TEST_MJPROXY_SDK="$(pwd)/$peers/mjproxy/node_modules"
    export ATELIER_TEST_MJPROXY_SDK
fi

pg_dir=""
stop_postgres() {
    if [ -n "$pg_dir" ]; then
        pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
pg_as() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() {
    local p
    for p in $(seq 54329 54429); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
start_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -q postgresql >/dev/null
        else
            echo "error: PostgreSQL is needed by the catalogue tests: none accepts connections on 127.0.0.1:5432 and its binaries are not installed; run as root (apt-get install -y postgresql) or set ATELIER_TEST_DATABASE_URL" >&2
            exit 1
        fi
    fi
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/atelier-pg.XXXXXX")
    trap 'stop_postgres; if [ -n "$s3_pid" ]; then kill "$s3_pid" 2>/dev/null || true; fi' EXIT
    [ "$(id -u)" = 0 ] && chown postgres: "$pg_dir"
    local port
    port=$(free_port) || { echo "error: no free loopback port for PostgreSQL in 54329-54429" >&2; exit 1; }
    if ! pg_as "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync -E UTF8 >"$pg_dir/initdb.log" 2>&1; then
        echo "error: initdb of the throw-away PostgreSQL cluster failed:" >&2
        cat "$pg_dir/initdb.log" >&2
        exit 1
    fi
    if ! pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=300" \
        start >/dev/null; then
        echo "error: the throw-away PostgreSQL cluster did not start:" >&2
        cat "$pg_dir/log" >&2
        exit 1
    fi
    ATELIER_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}
if [ -z "${ATELIER_TEST_DATABASE_URL:-}" ]; then
    if [ "${ATELIER_TEST_PG:-}" != throwaway ] && command -v pg_isready >/dev/null \
        && pg_isready -q -h 127.0.0.1 -p 5432; then
        ATELIER_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    else
        start_postgres
    fi
fi
export ATELIER_TEST_DATABASE_URL
if ! command -v psql >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -q postgresql-client >/dev/null
    else
        echo "error: psql (postgresql-client) is needed to drop the tests' databases; install it" >&2
        exit 1
    fi
fi
# Databases (and roles) left by the tests: they do not drop their own.
drop_test_databases() {
    psql "$ATELIER_TEST_DATABASE_URL" -Atq -c "SELECT datname FROM pg_database WHERE datname LIKE 'atelier\_t\_%'" |
        while read -r name; do
            psql "$ATELIER_TEST_DATABASE_URL" -q -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
        done
    psql "$ATELIER_TEST_DATABASE_URL" -Atq -c "SELECT rolname FROM pg_roles WHERE rolname LIKE 'atelier\_t\_%'" |
        while read -r name; do
            psql "$ATELIER_TEST_DATABASE_URL" -q -c "DROP ROLE IF EXISTS \"$name\"" >/dev/null
        done
}
cleanup() {
    drop_test_databases >/dev/null 2>&1 || true
    stop_postgres
    if [ -n "$s3_pid" ]; then kill "$s3_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
if ! drop_test_databases; then
    echo "error: cannot reach PostgreSQL at $ATELIER_TEST_DATABASE_URL (ATELIER_TEST_DATABASE_URL)" >&2
    exit 1
fi
echo "PostgreSQL for the tests: $ATELIER_TEST_DATABASE_URL" >&2

# Nothing is skipped silently: every test binary runs, and the run fails on any failure.
cargo test --workspace --locked --all-targets "$@"

# The engine, crash, Midjourney, following and HTTP tests again, on a PostgreSQL catalogue.
# `--workspace` as above, not `-p atelier`: the same packages resolve the same features, so the
# build above serves again instead of a second one from tokio up (the other crates' `it`
# binaries run only what the filters name, a few catalogue-free Discord client tests).
ATELIER_TEST_CATALOGUE=postgres cargo test --workspace --locked --test it -- engine:: crash:: midjourney:: follow:: http:: webhooks:: video:: openai:: replicate:: comfyui:: mjproxy::
