#!/usr/bin/env bash
# bench/status.sh [N_ENTITIES] [SECONDS]: automatic-status benchmarks on a throwaway cluster.
#  1. insert throughput into an event table with and without the attached trigger
#     (pgbench, one event per transaction, 8 clients and 1 client);
#  2. crm.apply_time_rules() over N_ENTITIES (default 1,000,000) entities with one
#     event each: 10% idle (moved), then again with 100% idle.
# The sweep case cannot use bench/run: a second run of an idempotent sweep has
# nothing to do, so every timed run here starts from a fresh copy.
source "$(dirname "$0")/../scripts/lib.sh"
# CRM_BENCH_DURABLE=1: run with the durable defaults (fsync, synchronous_commit and
# full_page_writes on) instead of the CPU-bound worst case (all three off)
durable=()
[ "${CRM_BENCH_DURABLE:-0}" = 1 ] && durable=(-c fsync=on -c synchronous_commit=on -c full_page_writes=on)

N=${1:-1000000}
SECS=${2:-20}
exec 9>/tmp/crm_bench.lock
flock 9
ensure_deps
bindir=$(private_pg_root)
build_install "$bindir"
start_cluster "$bindir" "${durable[@]}" -c shared_buffers=4GB -c work_mem=256MB -c maintenance_work_mem=1GB \
    -c max_parallel_workers_per_gather=0 -c jit=off -c max_wal_size=8GB -c checkpoint_timeout=30min
export PATH=$bindir:$PATH
q() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
work=$(mktemp -d /tmp/crm_bench.XXXXXX)
trap 'stop_cluster; rm -rf "$work"' EXIT
q -c "CREATE EXTENSION crm_analytics"

# ---- 1. insert throughput -------------------------------------------------
# STATUS_BENCH_PARTS=sweep runs only part 2
if [ "${STATUS_BENCH_PARTS:-all}" != sweep ]; then
q <<'SQL'
CREATE TABLE leads (lead_id bigint PRIMARY KEY, status text NOT NULL);
INSERT INTO leads SELECT g, 'new' FROM generate_series(1, 100000) g;
CREATE TABLE ev_plain (event_id bigserial PRIMARY KEY, lead_id bigint, kind text, at timestamptz DEFAULT now());
CREATE INDEX ON ev_plain (lead_id, at);
CREATE TABLE ev_attached (LIKE ev_plain INCLUDING ALL);
SELECT crm.attach_auto_status('leads', 'lead_id', 'status',
       ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost'],
       'ev_attached', 'lead_id', 'kind', 'at');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status) VALUES
  ('leads', 'email_sent', '{new}', 'contacted'),
  ('leads', 'email_opened', '{contacted,needs_recontact}', 'interested'),
  ('leads', 'paid', NULL, 'won'),
  ('leads', 'unsubscribed', NULL, 'lost');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES
  ('leads', 'contacted', '7 days', 'needs_recontact');
VACUUM ANALYZE;
SQL
for t in plain attached; do
    cat > "$work/$t.sql" <<EOF
\set lead random(1, 100000)
\set k random(1, 20)
INSERT INTO ev_$t (lead_id, kind) VALUES (:lead, CASE WHEN :k <= 6 THEN 'email_sent' WHEN :k <= 10 THEN 'email_opened' WHEN :k = 11 THEN 'paid' WHEN :k = 12 THEN 'unsubscribed' ELSE 'call' END);
EOF
done
declare -A tps
for clients in 8 1; do
    for t in plain attached plain attached; do
        r=$(pgbench -n -c $clients -j $(( clients > 1 ? 2 : 1 )) -T "$SECS" -f "$work/$t.sql" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "clients=$clients $t: $r tps"
        # keep the better of two runs of each
        k="$clients:$t"
        if [ -z "${tps[$k]:-}" ] || awk -v a="$r" -v b="${tps[$k]}" 'BEGIN { exit !(a > b) }'; then tps[$k]=$r; fi
    done
done
changes=$(q -At -c "SELECT count(*) FROM crm.status_history WHERE rule_id IS NOT NULL")
events=$(q -At -c "SELECT count(*) FROM ev_attached")
echo
echo "| clients | plain tps | attached tps | attached / plain |"
echo "|---:|---:|---:|---:|"
for clients in 8 1; do
    p=${tps["$clients:plain"]}; a=${tps["$clients:attached"]}
    echo "| $clients | $p | $a | $(awk -v a="$a" -v b="$p" 'BEGIN { printf "%.0f%%", 100 * a / b }') |"
done
echo "attached runs: $events events, $changes status changes by rules"
q -c "DROP TABLE ev_plain, ev_attached CASCADE; SELECT crm.detach_auto_status('leads'); DROP TABLE leads; TRUNCATE crm.status_history"
fi

# ---- 2. the sweep over N entities -----------------------------------------
# STATUS_BENCH_PARTS=insert runs only part 1
[ "${STATUS_BENCH_PARTS:-all}" = insert ] && exit 0
q -v N="$N" <<'SQL'
CREATE TABLE base_ent (id bigint, status text);
CREATE TABLE base_ev (id bigint, kind text, at timestamptz);
-- one event per entity; every 10th entity's event is 8 days old (idle)
INSERT INTO base_ent SELECT g, 'contacted' FROM generate_series(1, :N) g;
INSERT INTO base_ev SELECT g, 'email_sent',
       CASE WHEN g % 10 = 0 THEN now() - interval '8 days' ELSE now() - interval '1 day' END
  FROM generate_series(1, :N) g;
SQL
sweep() {  # sweep LABEL AGE_OF_RECENT_EVENTS
    q -v age="$2" <<'SQL' > /dev/null
DROP TABLE IF EXISTS ent, ev CASCADE;
CREATE TABLE ent AS SELECT * FROM base_ent;
ALTER TABLE ent ADD PRIMARY KEY (id);
CREATE TABLE ev AS SELECT id, kind, CASE WHEN id % 10 = 0 THEN at ELSE now() - :'age'::interval END AS at FROM base_ev;
SELECT crm.attach_auto_status('ent', 'id', 'status', ARRAY['new', 'contacted', 'needs_recontact', 'won'],
       'ev', 'id', 'kind', 'at');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
VALUES ('ent', 'contacted', '7 days', 'needs_recontact');
VACUUM ANALYZE ent, ev;
CHECKPOINT;
SQL
    # wall time, and the backend's CPU time (log_statement_stats): the machine may be shared
    out=$(q -At 2>&1 <<'SQL'
SET client_min_messages = log;
SET log_statement_stats = on;
\timing on
SELECT crm.apply_time_rules();
SQL
)
    moved=$(echo "$out" | grep -E '^[0-9]+$' | head -1)
    ms=$(echo "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
    cpu=$(echo "$out" | sed -n 's/^!\s*\([0-9.]*\) s user, \([0-9.]*\) s system.*/\1 \2/p' | tail -1 | awk '{ printf "%.2f", $1 + $2 }')
    echo "| $1 | $N | $moved | $(awk -v m="$ms" 'BEGIN { printf "%.2f", m / 1000 }') | $cpu |"
    q -c "SELECT crm.detach_auto_status('ent', keep_history => false)" > /dev/null
}
echo
echo "| sweep | entities | moved | seconds | backend CPU s |"
echo "|---|---:|---:|---:|---:|"
for i in 1 2 3; do sweep "10% idle (run $i)" '1 day'; done
for i in 1 2; do sweep "100% idle (run $i)" '9 days'; done
