#!/usr/bin/env bash
# bench/coverage.sh [N] [seconds]: OLTP insert throughput of an interactions table with the
# coverage trigger attached vs the same table without it, with pgbench (one interaction per
# transaction, 8 clients then 1 client, random customers among N, default 1,000,000), on a
# throwaway cluster configured like bench/run.  Prints tps of both (the better of two
# alternating runs of each, as bench/status.sh) and the ratio.
source "$(dirname "$0")/../scripts/lib.sh"
# CRM_BENCH_DURABLE=1: run with the durable defaults (fsync, synchronous_commit and
# full_page_writes on) instead of the CPU-bound worst case (all three off)
durable=()
[ "${CRM_BENCH_DURABLE:-0}" = 1 ] && durable=(-c fsync=on -c synchronous_commit=on -c full_page_writes=on)
N=${1:-1000000}; SECS=${2:-30}
exec 9>/tmp/crm_bench.lock
flock 9
ensure_deps
bindir=$(private_pg_root)
build_install "$bindir"
start_cluster "$bindir" "${durable[@]}" -c shared_buffers=4GB -c work_mem=256MB -c maintenance_work_mem=1GB \
    -c max_parallel_workers_per_gather=0 -c jit=off -c max_wal_size=8GB -c checkpoint_timeout=30min
work=$(mktemp -d /tmp/crm_bench.XXXXXX)
trap 'stop_cluster; rm -rf "$work"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<SQL
CREATE EXTENSION crm_analytics;
CREATE TABLE customers (customer_id bigint PRIMARY KEY, class text NOT NULL, manager_id int NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO customers SELECT g, CASE WHEN g % 10 = 0 THEN 'A' WHEN g % 10 < 4 THEN 'B' ELSE 'C' END, 1 + g % 50,
       '2024-01-01'::timestamptz + (g % 365) * interval '1 day' FROM generate_series(1, $N) g;
CREATE TABLE interactions (interaction_id bigserial PRIMARY KEY, customer_id bigint, kind text, direction text,
                           automated boolean NOT NULL, occurred_at timestamptz NOT NULL);
CREATE TABLE interactions_plain (LIKE interactions INCLUDING ALL);
INSERT INTO interactions (customer_id, kind, direction, automated, occurred_at)
SELECT 1 + (g::bigint * 7919) % $N, (ARRAY['call','email','meeting','mailing'])[1 + g % 4], 'outbound', g % 4 = 3,
       '2025-01-01'::timestamptz + (g % 360) * interval '1 day' FROM generate_series(1, 2 * $N) g;
INSERT INTO interactions_plain SELECT * FROM interactions;
SELECT crm.attach_coverage('interactions', customers => 'customers', class_column => 'class');
VACUUM ANALYZE;
CHECKPOINT;
SQL
for t in interactions_plain interactions; do
    cat > "$work/$t.sql" <<SQL
\set c random(1, $N)
\set m random(1, 100000)
INSERT INTO $t (customer_id, kind, direction, automated, occurred_at)
VALUES (:c, 'call', 'outbound', false, timestamptz '2025-12-01' + :m * interval '1 minute');
SQL
done
declare -A tps
for clients in 8 1; do
    for t in interactions_plain interactions interactions_plain interactions; do
        v=$("$bindir/pgbench" -n -c $clients -j $(( clients > 1 ? 2 : 1 )) -T "$SECS" -f "$work/$t.sql" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
        echo "clients=$clients  $t: $v tps"
        k="$clients:$t"
        if [ -z "${tps[$k]:-}" ] || awk -v a="$v" -v b="${tps[$k]}" 'BEGIN { exit !(a > b) }'; then tps[$k]=$v; fi
    done
done
echo
echo "| clients | plain tps | attached tps | attached / plain |"
echo "|---:|---:|---:|---:|"
for clients in 8 1; do
    p=${tps["$clients:interactions_plain"]}; a=${tps["$clients:interactions"]}
    echo "| $clients | $p | $a | $(awk -v a="$a" -v b="$p" 'BEGIN { printf "%.0f%%", 100 * a / b }') |"
done
bad=$(psql -X -At -d postgres -c "SELECT count(*) FROM crm.coverage c JOIN (SELECT customer_id, max(occurred_at) m, count(*) n FROM interactions WHERE kind IN ('call','meeting','email') AND NOT automated GROUP BY 1) i USING (customer_id) WHERE c.last_contact <> i.m OR c.contacts <> i.n")
echo "coverage rows differing from max()/count() after the run: $bad"
