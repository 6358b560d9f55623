#!/usr/bin/env bash
# rollups: 6 clients insert, update and delete orders, leads and customers while 2 clients run
# crm.refresh_rollups() over and over.  No client may fail (no deadlock, no serialization error);
# a refresh never waits for a writer's open transaction; after a last refresh the incrementally
# kept rollups equal a full rebuild and a plain GROUP BY over the tables.
set -euo pipefail
: "${PG_BINDIR:?}"
db=crm_rollup_conc
psql() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
export PGTZ=UTC
psql -d $db <<'SQL'
CREATE EXTENSION crm_analytics;
CREATE TABLE customers (customer_id int PRIMARY KEY, created_at timestamptz NOT NULL, channel text, manager_id int);
INSERT INTO customers SELECT g, '2024-01-01', (ARRAY['ads', 'seo', 'partner'])[1 + g % 3], 1 + g % 4 FROM generate_series(1, 200) g;
CREATE TABLE orders (order_id bigserial PRIMARY KEY, customer_id int NOT NULL, ordered_at timestamptz NOT NULL, amount numeric NOT NULL, cost numeric NOT NULL);
CREATE INDEX ON orders (ordered_at);
INSERT INTO orders (customer_id, ordered_at, amount, cost)
SELECT 1 + g % 200, timestamptz '2024-01-02' + (g * 7919 % 700) * interval '1 day', 10 + g % 90, 5 FROM generate_series(1, 5000) g;
CREATE TABLE leads (lead_id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, channel text, manager_id int);
INSERT INTO leads (created_at, channel, manager_id)
SELECT timestamptz '2024-01-01' + (g * 104729 % 700) * interval '1 day', (ARRAY['ads', 'seo'])[1 + g % 2], 1 + g % 4 FROM generate_series(1, 3000) g;
SELECT crm.register_source('customers', 'SELECT customer_id, created_at, channel, manager_id FROM customers');
SELECT crm.register_source('orders', 'SELECT order_id, customer_id, ordered_at, amount, cost, NULL::int FROM orders');
SELECT crm.register_source('leads', 'SELECT lead_id, created_at, channel, manager_id, NULL::int FROM leads');
SELECT count(*) FROM crm.refresh_rollups();
SQL

# a refresh does not wait for a writer's open transaction, and sees only committed changes
psql -d $db -c "BEGIN" -c "INSERT INTO orders (customer_id, ordered_at, amount, cost) VALUES (1, '2025-06-01', 1000000, 0)" \
     -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null &
writer=$!
sleep 1
start=$(date +%s%N)
psql -d $db -c "SELECT count(*) FROM crm.refresh_rollups()" >/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
seen=$(psql -d $db -At -c "SELECT count(*) FROM crm.v_daily WHERE metric = 'revenue' AND value >= 1000000")
wait $writer
echo "refresh during an open writer transaction took ${ms} ms and saw its row: $seen"
[ "$ms" -lt 2500 ] || { echo "FAIL: the refresh waited for the writer"; exit 1; }
[ "$seen" = 0 ] || { echo "FAIL: the refresh saw an uncommitted row"; exit 1; }
psql -d $db -c "SELECT count(*) FROM crm.refresh_rollups()" >/dev/null
seen=$(psql -d $db -At -c "SELECT count(*) FROM crm.v_daily WHERE metric = 'revenue' AND dimension = 'all' AND value >= 1000000")
[ "$seen" = 1 ] || { echo "FAIL: the committed row is missing after the next refresh"; exit 1; }

tmp=$(mktemp -d)
cat > "$tmp/write.sql" <<'SQL'
\set c random(1, 200)
\set d random(0, 700)
\set id random(1, 6000)
BEGIN;
INSERT INTO orders (customer_id, ordered_at, amount, cost) VALUES (:c, timestamptz '2024-01-02' + :d * interval '1 day', 10 + :d % 50, 3);
UPDATE orders SET ordered_at = ordered_at + interval '2 days', amount = amount + 1 WHERE order_id = :id;
DELETE FROM orders WHERE order_id = :id + 13;
INSERT INTO leads (created_at, channel, manager_id) VALUES (timestamptz '2024-01-01' + :d * interval '1 day', 'ads', 1 + :c % 4);
DELETE FROM leads WHERE lead_id = :id % 3000 + 1;
UPDATE customers SET channel = CASE channel WHEN 'ads' THEN 'seo' ELSE 'ads' END WHERE customer_id = :c;
COMMIT;
SQL
cat > "$tmp/refresh.sql" <<'SQL'
SELECT count(*) FROM crm.refresh_rollups();
SQL
"$PG_BINDIR/pgbench" -n -c 6 -j 2 -T 20 -f "$tmp/write.sql" $db > "$tmp/w" 2>&1 &
wpid=$!
"$PG_BINDIR/pgbench" -n -c 2 -j 1 -T 20 -f "$tmp/refresh.sql" $db > "$tmp/r" 2>&1 || { cat "$tmp/r"; exit 1; }
wait $wpid || { cat "$tmp/w"; exit 1; }
grep -E 'number of (transactions actually processed|failed)' "$tmp/w" "$tmp/r" || true
for f in "$tmp/w" "$tmp/r"; do
    if grep -qE 'number of failed transactions: [1-9]' "$f"; then cat "$f"; exit 1; fi
done
refreshes=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$tmp/r")
rm -rf "$tmp"
[ "${refreshes:-0}" -gt 5 ] || { echo "FAIL: too few refreshes ($refreshes)"; exit 1; }

# a last refresh, then: incremental = full rebuild = plain SQL
bad=$(psql -d $db -At <<'SQL'
SELECT count(*) FROM crm.refresh_rollups();
CREATE TABLE incr AS SELECT * FROM crm.v_daily;
CREATE TABLE plain AS
SELECT o.ordered_at::date AS day, m.metric, 'all' AS dimension, 'all' AS key, sum(m.v) AS value
  FROM orders o CROSS JOIN LATERAL (VALUES ('orders', 1::numeric), ('revenue', o.amount), ('gross_profit', o.amount - o.cost)) m(metric, v)
 GROUP BY 1, 2
UNION ALL
SELECT o.ordered_at::date, m.metric, 'channel', coalesce(c.channel, '(unknown)'), sum(m.v)
  FROM orders o LEFT JOIN customers c USING (customer_id)
 CROSS JOIN LATERAL (VALUES ('orders', 1::numeric), ('revenue', o.amount), ('gross_profit', o.amount - o.cost)) m(metric, v)
 GROUP BY 1, 2, 4
UNION ALL
SELECT f.day, 'new_buyers', 'all', 'all', count(*) FROM (SELECT customer_id, min(ordered_at)::date AS day FROM orders GROUP BY 1) f GROUP BY 1
UNION ALL
SELECT created_at::date, 'leads_in', 'all', 'all', count(*) FROM leads GROUP BY 1;
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT (SELECT count(*) FROM ((TABLE incr EXCEPT ALL SELECT * FROM crm.v_daily) UNION ALL (SELECT * FROM crm.v_daily EXCEPT ALL TABLE incr)) x)
     + (SELECT count(*) FROM ((TABLE plain EXCEPT ALL SELECT * FROM incr WHERE dimension = 'all' OR (dimension = 'channel' AND metric IN ('orders', 'revenue', 'gross_profit')))
                              UNION ALL (SELECT * FROM incr WHERE dimension = 'all' OR (dimension = 'channel' AND metric IN ('orders', 'revenue', 'gross_profit')) EXCEPT ALL TABLE plain)) y);
SQL
)
bad=$(echo "$bad" | tail -1)
echo "refreshes run concurrently with the writers: $refreshes; rows differing from a full rebuild or plain SQL: $bad"
[ "$bad" = 0 ] || { echo "FAIL: the incremental rollups differ"; exit 1; }
echo "ok"
