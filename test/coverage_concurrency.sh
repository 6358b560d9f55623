#!/usr/bin/env bash
# coverage: 8 clients insert interactions at once, single rows for the same few customers
# and multi-row statements touching 20 customers in random order, while the same clients
# update (time, customer) and delete random interactions.  Afterwards every
# customer's last contact must be the true maximum and the count exact (no lost
# update), no client may fail (no deadlock), and a rebuild must agree.
set -euo pipefail
: "${PG_BINDIR:?}"
db=crm_cov_conc
psql() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql -d $db <<'SQL'
CREATE EXTENSION crm_analytics;
CREATE TABLE customers (customer_id int PRIMARY KEY, class text, manager_id int, created_at timestamptz);
INSERT INTO customers SELECT g, (ARRAY['A','B','C'])[1 + g % 3], 1 + g % 4, '2024-01-01' FROM generate_series(1, 20) g;
CREATE TABLE interactions (id bigserial PRIMARY KEY, customer_id int, kind text, direction text,
                           automated boolean NOT NULL DEFAULT false, occurred_at timestamptz NOT NULL);
SELECT crm.attach_coverage('interactions', customers => 'customers', class_column => 'class');
SQL
tmp=$(mktemp -d)
cat > "$tmp/single.sql" <<'SQL'
\set c random(1, 3)
\set t random(1, 100000000)
INSERT INTO interactions (customer_id, kind, direction, occurred_at)
VALUES (:c, 'call', 'outbound', timestamptz '2025-01-01' + :t * interval '1 second');
SQL
cat > "$tmp/multi.sql" <<'SQL'
\set t random(1, 100000000)
INSERT INTO interactions (customer_id, kind, direction, automated, occurred_at)
SELECT 1 + (g * 7 + :t) % 20, (ARRAY['call','email','meeting','mailing'])[1 + (g + :t) % 4], 'outbound',
       (g + :t) % 4 = 3, timestamptz '2025-01-01' + ((:t + g * 7777777) % 100000000) * interval '1 second'
  FROM generate_series(1, 12) g;
SQL
cat > "$tmp/change.sql" <<'SQL'
\set id random(1, 20000)
\set c random(1, 3)
\set t random(1, 100000000)
UPDATE interactions SET occurred_at = timestamptz '2025-01-01' + :t * interval '1 second' WHERE id = :id;
UPDATE interactions SET customer_id = :c WHERE id IN (:id + 1, :id + 7);
DELETE FROM interactions WHERE id IN (:id + 3, :id + 11);
SQL
"$PG_BINDIR/pgbench" -n -c 8 -j 2 -t 400 -f "$tmp/single.sql" -f "$tmp/multi.sql" -f "$tmp/change.sql" $db > "$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
grep -E 'number of (transactions actually processed|failed)|tps' "$tmp/out" || true
rm -rf "$tmp"
bad=$(psql -d $db -At <<'SQL'
SELECT count(*) FROM crm.coverage c
  FULL JOIN (SELECT customer_id::bigint AS customer_id, max(occurred_at) AS last, count(*) AS n
               FROM interactions WHERE NOT automated GROUP BY 1) i USING (customer_id)
 WHERE c.last_contact IS DISTINCT FROM i.last OR c.contacts IS DISTINCT FROM coalesce(i.n, 0);
SQL
)
total=$(psql -d $db -At -c "SELECT count(*) FROM interactions")
echo "interactions inserted: $total; customers whose coverage differs from max()/count(): $bad"
[ "$total" -gt 2000 ] || { echo "FAIL: too few rows"; exit 1; }
[ "$bad" = 0 ] || { echo "FAIL: lost updates"; exit 1; }
hot=$(psql -d $db -At -c "SELECT contacts FROM crm.coverage WHERE customer_id = 1")
echo "customer 1 contacts: $hot"
# the rebuild agrees with what the trigger kept
psql -d $db -At <<'SQL' > /dev/null
CREATE TABLE kept AS SELECT * FROM crm.coverage;
SELECT crm.coverage_rebuild();
SQL
diff=$(psql -d $db -At -c "SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM crm.coverage) d")
[ "$diff" = 0 ] || { echo "FAIL: rebuild differs from trigger-kept coverage in $diff rows"; exit 1; }
echo "ok: true maximum, exact counts, no failed client, rebuild agrees"
