#!/usr/bin/env bash
# coverage_paths: the coverage trigger updates crm.coverage directly in READ COMMITTED and
# through its kept SPI statements otherwise (REPEATABLE READ, SERIALIZABLE, row security on
# crm.coverage).  The same interactions, inserted one path at a time (single rows, statements
# under and over 8 customers, late older interactions, unknown customers), must give every
# customer last contact = max(occurred_at), contacts = count(*) and next_due = last + interval,
# computed here in plain SQL from the interactions table.
set -euo pipefail
: "${PG_BINDIR:?}"
db=crm_cov_paths
psql() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql -d $db <<'SQL'
CREATE EXTENSION crm_analytics;
CREATE TABLE customers (customer_id int PRIMARY KEY, class text, manager_id int, created_at timestamptz);
INSERT INTO customers SELECT g, (ARRAY['A','B','C'])[1 + g % 3], 1 + g % 4, '2024-01-01' FROM generate_series(1, 40) g;
CREATE TABLE interactions (id bigserial PRIMARY KEY, customer_id int, kind text, direction text,
                           automated boolean NOT NULL DEFAULT false, occurred_at timestamptz NOT NULL);
SELECT crm.attach_coverage('interactions', customers => 'customers', class_column => 'class');
CREATE FUNCTION batch(seed int, ncust int) RETURNS void LANGUAGE sql AS $$
INSERT INTO interactions (customer_id, kind, direction, automated, occurred_at)
SELECT 1 + (g * 7 + seed) % ncust + (seed % 3) * 15, (ARRAY['call','email','meeting','mailing'])[1 + (g + seed) % 4],
       'outbound', (g + seed) % 5 = 4, timestamptz '2025-01-01' + ((seed * 7919 + g * 104729) % 1000000) * interval '1 minute'
  FROM generate_series(1, 2 * ncust) g $$;
SQL
check() {  # check LABEL: coverage rows equal the plain-SQL fold of the interactions
    local bad
    bad=$(psql -d $db -At <<'SQL'
SELECT count(*) FROM crm.coverage c
  FULL JOIN (SELECT customer_id::bigint AS customer_id, max(occurred_at) AS last, count(*) AS n
               FROM interactions WHERE NOT automated AND kind IN ('call', 'meeting', 'email') GROUP BY 1) i USING (customer_id)
  LEFT JOIN crm.coverage_policy p ON p.class = c.class
 WHERE c.customer_id IS NULL
    OR c.last_contact IS DISTINCT FROM i.last OR c.contacts <> coalesce(i.n, 0)
    OR c.next_due IS DISTINCT FROM coalesce(i.last, timestamptz '2024-01-01') + p.max_interval
SQL
)
    if [ "$bad" = 0 ]; then echo "ok - $1"; else echo "not ok - $1 ($bad coverage rows differ from plain SQL)"; fi
}
run() {  # run LABEL ISOLATION [setup SQL]
    local seed
    for seed in 1 2 3 4 5 6; do
        psql -d $db <<SQL
BEGIN ISOLATION LEVEL $2;
${3:-}
SELECT batch($seed, 1);
SELECT batch($seed + 10, 4);
SELECT batch($seed + 20, 12);
INSERT INTO interactions (customer_id, kind, direction, occurred_at) VALUES ($seed, 'call', 'outbound', '2024-06-01');
COMMIT;
SQL
    done
    check "$1"
}
check "attach: coverage equals plain SQL"
run "read committed (direct updates)" "READ COMMITTED"
run "repeatable read (kept statements)" "REPEATABLE READ"
run "serializable (kept statements)" "SERIALIZABLE"
psql -d $db -c "ALTER TABLE crm.coverage ENABLE ROW LEVEL SECURITY"
run "row security on crm.coverage (kept statements, owner)" "READ COMMITTED"
psql -d $db -c "ALTER TABLE crm.coverage DISABLE ROW LEVEL SECURITY"
# an interaction for a customer without a coverage row is added (default unknown_customers => insert)
psql -d $db -c "INSERT INTO interactions (customer_id, kind, direction, occurred_at) VALUES (1000, 'call', 'outbound', '2025-03-01'), (1001, 'meeting', 'outbound', '2025-03-02')"
n=$(psql -d $db -At -c "SELECT count(*) FROM crm.coverage WHERE customer_id IN (1000, 1001) AND class IS NULL AND contacts = 1")
[ "$n" = 2 ] && echo "ok - unknown customers are added in READ COMMITTED" || echo "not ok - unknown customers are added ($n of 2)"
# a user without privileges on crm.coverage gets the UPDATE's permission error, not a silent update
psql -d $db <<'SQL'
CREATE ROLE crm_cov_paths_user;
GRANT USAGE ON SCHEMA crm TO crm_cov_paths_user;
GRANT INSERT, SELECT ON interactions TO crm_cov_paths_user;
GRANT USAGE ON SEQUENCE interactions_id_seq TO crm_cov_paths_user;
SQL
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; psql -d postgres -c "DROP ROLE IF EXISTS crm_cov_paths_user" >/dev/null 2>&1 || true' EXIT
if out=$(psql -d $db -c "SET ROLE crm_cov_paths_user" -c "INSERT INTO interactions (customer_id, kind, direction, occurred_at) VALUES (2, 'call', 'outbound', '2026-01-01')" 2>&1); then
    echo "not ok - an insert without privileges on crm.coverage succeeded"
else
    echo "$out" | grep -q 'permission denied' && echo "ok - no privileges on crm.coverage: permission denied" || { echo "not ok - unexpected error: $out"; }
fi
psql -d $db -c "REASSIGN OWNED BY crm_cov_paths_user TO postgres" -c "DROP OWNED BY crm_cov_paths_user" -c "DROP ROLE crm_cov_paths_user"
check "after all paths: coverage equals plain SQL"
