#!/usr/bin/env bash
# The PostgreSQL claim at the SQL level, with pgbench: each script is one claim + finish of an
# empty job as `catalogue/postgres/queue.rs` sends it (a_current) or a variant; CLIENTS clients
# drain JOBS jobs; the variants run interleaved ROUNDS times. Prints jobs/s per round.
#   bench/claim-sql/run.sh [ROUNDS]   (BENCH_DATABASE: a server admin URL; SCRIPTS: which, default all)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rounds="${1:-3}"; clients="${CLIENTS:-4}"; jobs="${JOBS:-4800}"
server="${BENCH_DATABASE:-postgres://postgres@127.0.0.1:5432/postgres}"
pgbench="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)"
migrations="$here/../../crates/app/migrations/postgres"
db="atelier_claim_sql_$$"
psql "$server" -q -c "CREATE DATABASE $db"
trap 'psql "$server" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
url="${server%/*}/$db"
for m in "$migrations"/*.sql; do psql "$url" -q -v ON_ERROR_STOP=1 -f "$m"; done
psql "$url" -q -c "INSERT INTO generations (id, provider, kind, prompt, status, created_at)
  SELECT gen_random_uuid(), 'bench', 'imagine', 'x', 'queued', now() FROM generate_series(1, $jobs)"
for round in $(seq "$rounds"); do
    for script in ${SCRIPTS:-"$here"/[a-z]_*.sql}; do
        psql "$url" -q -f "$here/reset.sql"
        tps=$("$pgbench" -n -M prepared -c "$clients" -j 2 -t $((jobs / clients)) -f "$script" "$url" 2>&1 |
            sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "round $round $(basename "$script" .sql): ${tps:-failed} jobs/s (load $(cut -d' ' -f1 /proc/loadavg))"
    done
done
