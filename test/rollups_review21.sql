-- test/rollups_review21.sql: review of the rollups' change capture (issue 21) as the CRM
-- application writing to its own tables and as a role with only USAGE on schema crm:
--   * a role with USAGE on crm must not be able to pick crm.rollup_changes ids (a row with the
--     id the sequence hands out next makes the CRM's next write to a captured table fail);
--   * a partitioned source table: a write through the parent must be captured (statement
--     triggers on the partitions do not fire for it) and the incremental refresh stays exact.
BEGIN;
SELECT plan(27);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

SELECT * FROM crm.refresh_rollups(full => true);

-- ---------------------------------------------------------------- a role with USAGE on crm only
CREATE ROLE rollup_attacker_t;
GRANT USAGE ON SCHEMA crm TO rollup_attacker_t;
SET LOCAL ROLE rollup_attacker_t;
SELECT throws_ok($$INSERT INTO crm.rollup_changes (id, relid, bound)
                   SELECT pg_catalog.nextval('crm.rollup_changes_id_seq') + g, 0, '2025-01-01' FROM pg_catalog.generate_series(1, 3) g$$,
                 '42501', NULL, 'a role with USAGE on crm cannot choose the ids of crm.rollup_changes');
SELECT throws_ok($$INSERT INTO crm.rollup_changes (relid, bound, recorded_at) VALUES (0, '2025-01-01', '2000-01-01')$$,
                 '42501', NULL, '... nor recorded_at');
RESET ROLE;
-- the CRM's own write (by the table owner) still records its change
INSERT INTO crm_demo.spend VALUES ('ads', '2025-11-02', 1);
SELECT is((SELECT count(*)::int FROM crm.rollup_changes WHERE relid = 'crm_demo.spend'::regclass), 1,
          'a write to a captured table records one change row');
-- a writing role with USAGE on crm and no other right on it still records its change
CREATE ROLE rollup_writer21_t;
GRANT USAGE ON SCHEMA crm, crm_demo TO rollup_writer21_t;
GRANT INSERT ON crm_demo.spend TO rollup_writer21_t;
SET LOCAL ROLE rollup_writer21_t;
INSERT INTO crm_demo.spend VALUES ('ads', '2025-11-03', 1);
RESET ROLE;
SELECT is((SELECT count(*)::int FROM crm.rollup_changes WHERE relid = 'crm_demo.spend'::regclass), 2,
          'a writing role with USAGE on crm records its change (INSERT on relid and bound is enough)');
SELECT * FROM crm.refresh_rollups();

-- ---------------------------------------------------------------- a partitioned source table
CREATE TABLE crm_demo.orders_p (LIKE crm_demo.orders) PARTITION BY RANGE (ordered_at);
CREATE TABLE crm_demo.orders_p_old PARTITION OF crm_demo.orders_p FOR VALUES FROM (MINVALUE) TO ('2025-07-01');
CREATE TABLE crm_demo.orders_p_new PARTITION OF crm_demo.orders_p FOR VALUES FROM ('2025-07-01') TO (MAXVALUE);
INSERT INTO crm_demo.orders_p SELECT * FROM crm_demo.orders;
SELECT crm.register_source('orders', 'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM crm_demo.orders_p');
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) > 0, 'the source moved to a partitioned table: a full rebuild');
SELECT ok(EXISTS (SELECT 1 FROM crm.rollup_capture WHERE relid = 'crm_demo.orders_p'::regclass),
          'the partitioned table itself is captured');
-- docs/rollups.md "Locks on your tables": the refresh that attached holds the trigger locks
SELECT ok(EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'crm_demo.orders'::regclass
                     AND mode = 'AccessExclusiveLock' AND granted),
          'the refresh that dropped the triggers of a table no source reads holds ACCESS EXCLUSIVE on it until it commits');
SELECT ok(EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'crm_demo.orders_p'::regclass
                     AND mode = 'ShareRowExclusiveLock' AND granted),
          '... and SHARE ROW EXCLUSIVE on a table it put triggers on');
-- the CRM writes through the parent table
CREATE TEMP TABLE new_orders AS SELECT * FROM crm_demo.orders ORDER BY order_id LIMIT 3;
UPDATE new_orders SET order_id = order_id + 1000000, ordered_at = '2025-11-20 12:00+00', amount = 1000, cost = 10;
INSERT INTO crm_demo.orders_p SELECT * FROM new_orders;
UPDATE crm_demo.orders_p SET amount = amount + 7 WHERE ordered_at >= '2025-08-01' AND ordered_at < '2025-08-03';
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) > 0, 'writes through the parent: an incremental refresh');
CREATE TEMP VIEW exp_orders AS
SELECT day, metric, value FROM (
    SELECT ordered_at::date AS day, 'orders' AS metric, count(*)::numeric AS value FROM crm_demo.orders_p GROUP BY 1
    UNION ALL SELECT ordered_at::date, 'revenue', sum(amount) FROM crm_demo.orders_p GROUP BY 1) x;
SELECT results_eq(
    $$SELECT day, metric, value FROM crm.v_daily WHERE dimension = 'all' AND metric IN ('orders', 'revenue') ORDER BY 1, 2$$,
    $$SELECT * FROM exp_orders ORDER BY 1, 2$$,
    'orders and revenue per day equal a plain count over the partitioned table after writes through the parent');
-- the CRM writes to a partition directly
DELETE FROM crm_demo.orders_p_old WHERE ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02';
SELECT is((SELECT array_agg(from_day) FROM crm.refresh_rollups()), ARRAY['2025-03-01'::date],
          'a write to a partition directly: an incremental refresh from the day of the deleted orders');
SELECT results_eq(
    $$SELECT day, metric, value FROM crm.v_daily WHERE dimension = 'all' AND metric IN ('orders', 'revenue') ORDER BY 1, 2$$,
    $$SELECT * FROM exp_orders ORDER BY 1, 2$$,
    '... and the figures equal the plain count again');

-- ---------------------------------------------------------------- a time column of a domain type
-- the fact's day is a domain over date; the row also has an entry time (later than the fact):
-- the capture must see the domain column, or a late-entered old fact is never rolled up
CREATE DOMAIN crm_demo.business_day AS date CHECK (VALUE > '2000-01-01');
CREATE TABLE crm_demo.spend_d (channel text, spent_on crm_demo.business_day, amount numeric,
                               entered_at timestamptz NOT NULL DEFAULT '2026-12-01 00:00+00');
INSERT INTO crm_demo.spend_d (channel, spent_on, amount) SELECT channel, month, amount FROM crm_demo.spend;
SELECT crm.register_source('spend', 'SELECT channel, spent_on, amount FROM crm_demo.spend_d');
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) > 0, 'the spend source moved to a table with a domain-typed day');
INSERT INTO crm_demo.spend_d (channel, spent_on, amount) VALUES ('ads', '2025-06-01', 500);
SELECT is((SELECT array_agg(part || ' ' || from_day) FROM crm.refresh_rollups()), ARRAY['spend 2025-05-31'],
          'a fact dated by a domain over date: the refresh recomputes from the day before it');
SELECT results_eq(
    $$SELECT day, value FROM crm.v_daily WHERE dimension = 'all' AND metric = 'marketing_spend' ORDER BY 1$$,
    $$SELECT spent_on::date, sum(amount) FROM crm_demo.spend_d GROUP BY 1 ORDER BY 1$$,
    'marketing_spend per day equals a plain sum over the table');

-- ---------------------------------------------------------------- time zone of a rebuild nobody asked for
-- a pg_cron session runs in the server's time zone: a full rebuild the refresh decides by itself
-- (a source registered anew) keeps the time zone the rollups are cut in
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT crm.register_source('spend', 'SELECT channel, spent_on, amount FROM crm_demo.spend_d WHERE amount > 0');
SELECT is((SELECT count(*) FROM crm.refresh_rollups() WHERE from_day IS NULL), 6::bigint, 'the source changed: a full rebuild');
SELECT is((SELECT time_zone FROM crm.rollup_status), 'UTC', '... in the time zone the rollups were cut in, not the session''s');
SET LOCAL TimeZone = 'UTC';
SELECT results_eq(
    $$SELECT day, value FROM crm.v_daily WHERE dimension = 'all' AND metric = 'orders' ORDER BY 1$$,
    $$SELECT ordered_at::date, count(*)::numeric FROM crm_demo.orders_p GROUP BY 1 ORDER BY 1$$,
    'orders per day still cut in UTC');
SELECT ok(crm.rollups_fresh(), 'and fresh for a UTC session');
-- asked for: the session's time zone
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT is((SELECT count(*) FROM crm.refresh_rollups(full => true)), 6::bigint, 'full => true in Asia/Tokyo');
SELECT is((SELECT time_zone FROM crm.rollup_status), 'Asia/Tokyo', '... cuts the days in Asia/Tokyo (docs: how to change the time zone)');
SET LOCAL TimeZone = 'UTC';

-- ---------------------------------------------------------------- a disabled capture trigger
-- ALTER TABLE ... DISABLE TRIGGER: changes there are not recorded, so the refresh must not
-- trust the recorded changes: it warns and rebuilds in full (exact) until it is enabled again
SELECT is((SELECT count(*) FROM crm.refresh_rollups(full => true)), 6::bigint, 'a full rebuild in UTC');
ALTER TABLE crm_demo.spend_d DISABLE TRIGGER crm_rollup_ins;
SELECT ok(NOT crm._rollup_capture_ok() AND NOT crm.rollups_fresh(), 'a disabled capture trigger: capture not ok, rollups not fresh');
INSERT INTO crm_demo.spend_d (channel, spent_on, amount) VALUES ('ads', '2024-03-05', 700);
SELECT is((SELECT count(*) FROM crm.refresh_rollups() WHERE from_day IS NULL), 6::bigint,
          'with the trigger disabled every refresh rebuilds in full');
SELECT results_eq(
    $$SELECT day, value FROM crm.v_daily WHERE dimension = 'all' AND metric = 'marketing_spend' ORDER BY 1$$,
    $$SELECT spent_on::date, sum(amount) FROM crm_demo.spend_d WHERE amount > 0 GROUP BY 1 ORDER BY 1$$,
    '... so the uncaptured insert is in the rollups');
ALTER TABLE crm_demo.spend_d ENABLE TRIGGER crm_rollup_ins;
INSERT INTO crm_demo.spend_d (channel, spent_on, amount) VALUES ('ads', '2024-03-06', 800);
SELECT is((SELECT array_agg(from_day) FROM crm.refresh_rollups()), ARRAY['2024-03-05'::date],
          'enabled again: incremental, from the day before the change (a date column is read a day early)');
SELECT results_eq(
    $$SELECT day, value FROM crm.v_daily WHERE dimension = 'all' AND metric = 'marketing_spend' ORDER BY 1$$,
    $$SELECT spent_on::date, sum(amount) FROM crm_demo.spend_d WHERE amount > 0 GROUP BY 1 ORDER BY 1$$,
    '... and exact');

SELECT * FROM finish();
ROLLBACK;
