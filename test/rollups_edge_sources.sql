-- test/rollups_edge_sources.sql: two shapes of source data the demo never has, where the daily
-- rollups must still add up to the reports (docs/rollups.md section 2):
--  * a customers source that gives some customer ids twice: each order counts once in the rows
--    of dimension all (as crm.owner_dashboard counts it) and once per customers row in the
--    channel rows (as crm.dashboard_channels joins the customers);
--  * an orders source with orders without a customer: they are one buyer, on the first of them
--    (as crm.owner_dashboard and crm.dashboard_channels group them);
--  * an order with a NaN amount inside the 12 months before the kept period ends: the refresh
--    keeps no classes for those ends instead of failing, and every report answers as the full
--    computation does (the same error, or the same rows).
-- Each is checked against the full computation (crm_analytics.rollups = off) for December 2025,
-- the quarter and the year, after a full refresh and after an incremental one.
BEGIN;
SELECT plan(25);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TEMP TABLE periods (f date, t date);
INSERT INTO periods VALUES ('2025-12-01', '2025-12-31'), ('2025-10-01', '2025-12-31'), ('2025-01-01', '2025-12-31');

-- v_daily (dimension all) against the full owner dashboard: metrics whose sums differ, per period
CREATE FUNCTION pg_temp.daily_vs_owner() RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    bad text[] := '{}';
    p record;
BEGIN
    PERFORM set_config('crm_analytics.rollups', 'off', true);
    FOR p IN SELECT * FROM periods ORDER BY f LOOP
        bad := bad || ARRAY(
            SELECT format('%s %s: daily %s, owner %s', p.f, o.metric, coalesce(d.v, 0), o.value)
              FROM crm.owner_dashboard(p.f, p.t) o
              LEFT JOIN (SELECT metric, sum(value) AS v FROM crm.v_daily
                          WHERE dimension = 'all' AND day BETWEEN p.f AND p.t GROUP BY 1) d ON d.metric = o.metric
             WHERE o.metric IN ('orders', 'revenue', 'gross_profit', 'new_buyers')
               AND coalesce(d.v, 0) IS DISTINCT FROM o.value);
    END LOOP;
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    RETURN bad;
END
$f$;

-- v_daily (dimension channel) against the full channels report
CREATE FUNCTION pg_temp.daily_vs_channels() RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    bad text[] := '{}';
    p record;
BEGIN
    PERFORM set_config('crm_analytics.rollups', 'off', true);
    FOR p IN SELECT * FROM periods ORDER BY f LOOP
        bad := bad || ARRAY(
            SELECT format('%s %s %s: daily %s, report %s', p.f, c.channel, m.metric, coalesce(d.v, 0), m.value)
              FROM crm.dashboard_channels(p.f, p.t) c
              CROSS JOIN LATERAL (VALUES ('revenue', c.revenue), ('gross_profit', c.gross_profit),
                                         ('new_buyers', c.new_buyers::numeric)) AS m(metric, value)
              LEFT JOIN (SELECT key, metric, sum(value) AS v FROM crm.v_daily
                          WHERE dimension = 'channel' AND day BETWEEN p.f AND p.t GROUP BY 1, 2) d
                     ON d.key = c.channel AND d.metric = m.metric
             WHERE coalesce(d.v, 0) IS DISTINCT FROM coalesce(m.value, 0));
    END LOOP;
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    RETURN bad;
END
$f$;

-- the owner dashboard and the channels report: fast rows = full rows, per period
CREATE FUNCTION pg_temp.fast_vs_full() RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    bad text[] := '{}';
    p record;
    n bigint;
    q text;
BEGIN
    FOR p IN SELECT * FROM periods ORDER BY f LOOP
        FOREACH q IN ARRAY ARRAY['SELECT * FROM crm.owner_dashboard(%L, %L)', 'SELECT * FROM crm.dashboard_channels(%L, %L)'] LOOP
            PERFORM set_config('crm_analytics.rollups', 'fresh', true);
            IF NOT crm._rollups_usable() THEN
                RETURN ARRAY['the rollups are not usable'];
            END IF;
            EXECUTE 'CREATE TEMP TABLE e_fast AS ' || format(q, p.f, p.t);
            PERFORM set_config('crm_analytics.rollups', 'off', true);
            EXECUTE 'CREATE TEMP TABLE e_full AS ' || format(q, p.f, p.t);
            PERFORM set_config('crm_analytics.rollups', 'fresh', true);
            SELECT count(*) INTO n FROM ((TABLE e_fast EXCEPT ALL TABLE e_full) UNION ALL (TABLE e_full EXCEPT ALL TABLE e_fast)) x;
            IF n > 0 THEN
                bad := bad || format('%s %s: %s rows differ', p.f, split_part(q, '(', 1), n);
            END IF;
            DROP TABLE e_fast;
            DROP TABLE e_full;
        END LOOP;
    END LOOP;
    RETURN bad;
END
$f$;

-- 1. a customers source that repeats every tenth customer (same channel and manager) and gives
--    every 25th a second row with another channel
SELECT crm.register_source('customers', $q$
SELECT customer_id, created_at, channel, manager_id FROM crm_demo.customers
UNION ALL
SELECT customer_id, created_at, channel, manager_id FROM crm_demo.customers WHERE customer_id % 10 = 0
UNION ALL
SELECT customer_id, created_at, 'partner', manager_id FROM crm_demo.customers WHERE customer_id % 25 = 0$q$);
SELECT lives_ok($$SELECT count(*) FROM crm.refresh_rollups(full => true)$$, 'repeated customer ids: full refresh');
SELECT is(pg_temp.daily_vs_owner(), '{}', 'repeated customer ids: v_daily (all) sums = owner_dashboard (orders, revenue, gross profit, new buyers)');
SELECT is(pg_temp.daily_vs_channels(), '{}', 'repeated customer ids: v_daily (channel) sums = dashboard_channels (revenue, gross profit, new buyers)');
SELECT is(pg_temp.fast_vs_full(), '{}', 'repeated customer ids: owner_dashboard and dashboard_channels from the rollups = full');
-- an incremental refresh: new orders of repeated customers, one order deleted, one moved
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT 9000000 + g, g * 10, timestamptz '2025-12-20 10:00' + g * interval '1 hour', 1, 1, 100 + g, 40
  FROM generate_series(1, 20) g;
DELETE FROM crm_demo.orders WHERE order_id = (SELECT min(order_id) FROM crm_demo.orders WHERE customer_id = 50 AND ordered_at >= '2025-10-01');
UPDATE crm_demo.orders SET ordered_at = ordered_at - interval '40 days'
 WHERE order_id = (SELECT max(order_id) FROM crm_demo.orders WHERE customer_id = 100 AND ordered_at >= '2025-11-01' AND order_id < 9000000);
SELECT lives_ok($$SELECT count(*) FROM crm.refresh_rollups()$$, 'repeated customer ids: incremental refresh');
SELECT is(pg_temp.daily_vs_owner(), '{}', 'repeated customer ids, after an incremental refresh: v_daily (all) = owner_dashboard');
SELECT is(pg_temp.daily_vs_channels(), '{}', 'repeated customer ids, after an incremental refresh: v_daily (channel) = dashboard_channels');
SELECT is(pg_temp.fast_vs_full(), '{}', 'repeated customer ids, after an incremental refresh: fast = full');

-- 2. back to one row per customer; an orders source without the customer of every 50th
--    customer's orders from 2025-12-05 on (so the group's first order is in December 2025)
SELECT crm.register_source('customers', 'SELECT customer_id, created_at, channel, manager_id FROM crm_demo.customers');
SELECT crm.register_source('orders', $q$
SELECT order_id, CASE WHEN customer_id % 50 = 0 AND ordered_at >= '2025-12-05' THEN NULL ELSE customer_id END AS customer_id,
       ordered_at, amount, cost, product_id FROM crm_demo.orders$q$);
SELECT lives_ok($$SELECT count(*) FROM crm.refresh_rollups(full => true)$$, 'orders without a customer: full refresh');
SELECT is(pg_temp.daily_vs_owner(), '{}', 'orders without a customer: v_daily (all) sums = owner_dashboard (new buyers: the group is one)');
SELECT is(pg_temp.daily_vs_channels(), '{}', 'orders without a customer: v_daily (channel) sums = dashboard_channels');
SELECT is(pg_temp.fast_vs_full(), '{}', 'orders without a customer: owner_dashboard and dashboard_channels from the rollups = full');
-- hand-worked: December 2025 has exactly one more new buyer in v_daily than customers with a
-- first order there, the group without a customer
SELECT is((SELECT sum(value) FROM crm.v_daily WHERE metric = 'new_buyers' AND dimension = 'all' AND day BETWEEN '2025-12-01' AND '2025-12-31'),
          (SELECT count(*) + 1 FROM (SELECT customer_id FROM crm_demo.orders WHERE NOT (customer_id % 50 = 0 AND ordered_at >= '2025-12-05')
                                       GROUP BY 1 HAVING min(ordered_at) >= '2025-12-01' AND min(ordered_at) < '2026-01-01') x)::numeric,
          'orders without a customer: new buyers of December 2025 = customers with a first order in it (plain SQL) + 1');
-- an incremental refresh that moves the group's first order earlier (an order of customer 50 before December)
UPDATE crm_demo.orders SET ordered_at = '2025-12-06 09:00'
 WHERE order_id = (SELECT max(order_id) FROM crm_demo.orders WHERE customer_id = 100 AND ordered_at < '2025-12-01');
SELECT lives_ok($$SELECT count(*) FROM crm.refresh_rollups()$$, 'orders without a customer: incremental refresh');
SELECT is(pg_temp.daily_vs_owner(), '{}', 'orders without a customer, after an incremental refresh: v_daily (all) = owner_dashboard');
SELECT is(pg_temp.fast_vs_full(), '{}', 'orders without a customer, after an incremental refresh: fast = full');

-- 3. an order with a NaN amount in December 2025, inside the 12 months before both ends of the
--    dashboard period (the kept classes' ends): crm.abc_class refuses NaN revenue
SELECT crm.register_source('orders', 'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM crm_demo.orders');
SELECT lives_ok($$SELECT count(*) FROM crm.refresh_rollups(full => true)$$, 'NaN amount: full refresh before it');
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT max(order_id) + 1, 7, '2025-12-15 10:00', 1, 1, 'NaN', 1 FROM crm_demo.orders;
SELECT lives_ok($$SELECT count(*) FROM crm.refresh_rollups()$$, 'NaN amount: the incremental refresh goes on');
SELECT ok(crm.rollups_fresh() AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends WHERE end_at > '2025-12-15 10:00'),
          'NaN amount: the rollups are fresh, with no classes kept for the ends after it');
-- the first error (SQLSTATE and message) of a query, or 'none', with the rollups or without
CREATE FUNCTION pg_temp.err(q text, mode text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('crm_analytics.rollups', mode, true);
    EXECUTE 'SELECT count(*) FROM (' || q || ') x';
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    RETURN 'none';
EXCEPTION WHEN OTHERS THEN
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    RETURN SQLSTATE || ' ' || SQLERRM;
END
$f$;
SELECT is(pg_temp.err('SELECT * FROM crm.v_owner_dashboard', 'fresh'), pg_temp.err('SELECT * FROM crm.v_owner_dashboard', 'off'),
          'NaN amount: the owner dashboard raises the full computation''s error from the rollups');
SELECT isnt(pg_temp.err('SELECT * FROM crm.v_owner_dashboard', 'off'), 'none', 'NaN amount: (the full owner dashboard does raise one)');
-- the reports that rank no NaN revenue: the same rows on both paths, in the same order
CREATE FUNCTION pg_temp.rows_of(q text, mode text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    PERFORM set_config('crm_analytics.rollups', mode, true);
    EXECUTE 'SELECT string_agg(x::text, E''\n'' ORDER BY n) FROM (SELECT y, row_number() OVER () AS n FROM (' || q || ') y) x(x, n)' INTO r;
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    RETURN r;
END
$f$;
SELECT is(pg_temp.rows_of(v, 'fresh'), pg_temp.rows_of(v, 'off'), 'NaN amount: ' || v || ' from the rollups = full')
  FROM unnest(ARRAY['SELECT * FROM crm.v_coverage', 'SELECT * FROM crm.v_channels', 'SELECT * FROM crm.v_managers']) AS v;
SELECT is(pg_temp.err('SELECT * FROM crm.v_rfm', 'fresh'), pg_temp.err('SELECT * FROM crm.v_rfm', 'off'),
          'NaN amount: RFM raises the full computation''s error from the rollups');

SELECT * FROM finish();
ROLLBACK;
