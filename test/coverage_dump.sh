#!/usr/bin/env bash
# coverage: pg_dump / pg_restore keeps an edited policy (over the default rows), the
# configuration and the coverage rows, and the restored trigger keeps working.
set -euo pipefail
: "${PG_BINDIR:?}"
src=crm_cov_dump_src; dst=crm_cov_dump_dst
psql() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
tmp=$(mktemp -d); chmod 777 "$tmp"
cleanup() { psql -d postgres -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
psql -d postgres -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" -c "CREATE DATABASE $src" -c "CREATE DATABASE $dst"
psql -d $src <<'SQL'
CREATE EXTENSION crm_analytics;
UPDATE crm.coverage_policy SET max_interval = '2 months', due_soon = '10 days' WHERE class = 'A';
INSERT INTO crm.coverage_policy (class, max_interval, due_soon) VALUES ('VIP', '14 days', '3 days');
CREATE TABLE customers (customer_id bigint PRIMARY KEY, class text, created_at timestamptz);
INSERT INTO customers VALUES (1, 'VIP', '2025-01-01'), (2, 'A', '2025-01-01'), (3, 'C', '2025-01-01');
CREATE TABLE interactions (customer_id bigint, kind text, direction text, automated boolean, occurred_at timestamptz);
INSERT INTO interactions VALUES (1, 'call', 'outbound', false, '2025-12-01'), (2, 'email', 'outbound', false, '2025-11-01');
SELECT crm.attach_coverage('interactions', customers => 'customers', class_column => 'class', manager_column => NULL);
INSERT INTO interactions VALUES (3, 'meeting', 'inbound', false, '2025-10-01');
SQL
q_policy="SELECT string_agg(format('%s/%s/%s/%s', class, max_interval, due_soon, basis), ' ' ORDER BY class) FROM crm.coverage_policy"
q_cov="SELECT string_agg(format('%s/%s/%s/%s/%s', customer_id, class, last_contact, contacts, next_due), ' ' ORDER BY customer_id) FROM crm.coverage"
q_cfg="SELECT format('%s/%s/%s', interactions, customers, class_column) FROM crm.coverage_config"
before="$(psql -d $src -At -c "$q_policy")|$(psql -d $src -At -c "$q_cov")|$(psql -d $src -At -c "$q_cfg")"
"$PG_BINDIR/pg_dump" -Fc -d $src -f "$tmp/dump"
"$PG_BINDIR/pg_restore" --exit-on-error -d $dst "$tmp/dump"
after="$(psql -d $dst -At -c "$q_policy")|$(psql -d $dst -At -c "$q_cov")|$(psql -d $dst -At -c "$q_cfg")"
echo "before: $before"; echo "after:  $after"
[ "$before" = "$after" ] || { echo "FAIL: restore differs"; exit 1; }
psql -d $dst -c "INSERT INTO interactions VALUES (1, 'call', 'outbound', false, '2025-12-20')"
got=$(psql -d $dst -At -c "SELECT last_contact || ' ' || contacts || ' ' || next_due FROM crm.coverage WHERE customer_id = 1")
echo "restored trigger: $got"
[ "$got" = "2025-12-20 00:00:00+00 2 2026-01-03 00:00:00+00" ] || { echo "FAIL: trigger after restore"; exit 1; }
echo "ok: policy edits, configuration and coverage survive pg_dump/pg_restore"
