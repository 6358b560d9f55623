-- test/rollups_fast_ownerkeep.sql: the owner dashboard's per-entity rows kept for the dashboard
-- period (crm.rollup_owner_kept, written at the end of crm.refresh_rollups by
-- crm._rollup_owner_keep, read by crm._fast_owner_dashboard while the bounds and
-- crm._owner_keep_fingerprint() match). The view equals the full computation (rollups = off)
-- after a full refresh, after seeded random rounds with incremental refreshes, after a change
-- before the period's end (rows rewritten) and one after it (rows left: same write moment),
-- after each input of the fingerprint is changed without a refresh, after the period moved,
-- and with a NaN amount both paths raise the same error.
BEGIN;
SELECT plan(31);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;
SELECT crm.set_dashboard_period('2025-12-01', '2025-12-31');

-- the rows of crm.v_owner_dashboard (and of a past month, not kept) from the rollups that
-- differ from the full computation; numerics compared as text (same scale), in order
CREATE FUNCTION pg_temp.diff() RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    q text;
    n bigint;
    bad text[] := '{}';
BEGIN
    FOREACH q IN ARRAY ARRAY['SELECT * FROM crm.v_owner_dashboard',
                             $$SELECT * FROM crm.owner_dashboard('2025-06-01', '2025-06-30')$$] LOOP
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        IF NOT crm._rollups_usable() THEN
            RAISE EXCEPTION 'the rollups are not usable';
        END IF;
        EXECUTE 'CREATE TEMP TABLE d_fast AS SELECT x::text AS r, row_number() OVER () AS ordinality FROM (' || q || ') x';
        PERFORM set_config('crm_analytics.rollups', 'off', true);
        EXECUTE 'CREATE TEMP TABLE d_full AS SELECT x::text AS r, row_number() OVER () AS ordinality FROM (' || q || ') x';
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        SELECT count(*) INTO n FROM ((TABLE d_fast EXCEPT ALL TABLE d_full) UNION ALL (TABLE d_full EXCEPT ALL TABLE d_fast)) d;
        IF n > 0 OR (SELECT count(*) FROM d_fast) < 30 THEN
            bad := bad || format('%s: %s rows differ', q, n);
        END IF;
        DROP TABLE d_fast;
        DROP TABLE d_full;
    END LOOP;
    RETURN bad;
END
$f$;
-- whether the kept rows are for the dashboard period and the inputs as they are
CREATE FUNCTION pg_temp.kept_current() RETURNS boolean LANGUAGE sql AS $f$
SELECT EXISTS (SELECT 1 FROM crm.rollup_owner_kept_key k, crm.dashboard_period() p
                WHERE k.cur_from = p.period_from::timestamptz AND k.cur_to = (p.period_to + 1)::timestamptz
                  AND k.fingerprint = crm._owner_keep_fingerprint())
   AND (SELECT count(*) FROM crm.rollup_owner_kept) > 20
$f$;
CREATE FUNCTION pg_temp.written() RETURNS timestamptz LANGUAGE sql AS $f$
SELECT written_at FROM crm.rollup_owner_kept_key
$f$;

-- 1-4: after a full refresh
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT ok(pg_temp.kept_current(), 'full refresh: the rows of the dashboard period are kept');
SELECT is((SELECT prev_from FROM crm.rollup_owner_kept_key), '2025-10-31'::timestamptz, 'full refresh: kept with the previous period''s start');
SELECT is(pg_temp.diff(), '{}'::text[], 'after a full refresh: v_owner_dashboard (kept rows) and a past month = the full computation');
-- the kept rows are what the report reads: one changed by hand shows (and is put back)
UPDATE crm.rollup_owner_kept SET cur = cur + 1000 WHERE metric = 'deals_won';
SELECT is((SELECT value FROM crm.v_owner_dashboard WHERE metric = 'deals_won'),
          (SELECT cur FROM crm.rollup_owner_kept WHERE metric = 'deals_won'), 'the report reads the kept rows');
UPDATE crm.rollup_owner_kept SET cur = cur - 1000 WHERE metric = 'deals_won';

-- 5-7: three seeded random rounds, incremental refreshes
\ir data/rollups_random_round.sql
SELECT setseed(0.21);
SELECT pg_temp.random_round(1);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(2);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(3);
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(pg_temp.kept_current(), 'after 3 random rounds: the rows kept are current');
SELECT is(pg_temp.diff(), '{}'::text[], 'after 3 random rounds, incremental refreshes: v_owner_dashboard = the full computation');
SELECT is((SELECT count(*) FROM crm.rollup_changes), 0::bigint, '(no change waiting)');

-- 8-10: a change before the period's end: the rows are rewritten
CREATE TEMP TABLE w AS SELECT pg_temp.written() AS at;
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT max(order_id) + 1, 5, '2025-12-20 10:00', 1, 1, 77.50, 10 FROM crm_demo.orders;
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(pg_temp.written() > (SELECT at FROM w), 'an order in the period: the kept rows are rewritten');
SELECT ok(pg_temp.kept_current(), 'an order in the period: the rows kept are current');
SELECT is(pg_temp.diff(), '{}'::text[], 'an order in the period: v_owner_dashboard = the full computation');

-- 11-13: changes after the period's end (an order, a deal event, an invoice paid, a lead in the
-- next month): the rows are left as they are
UPDATE w SET at = pg_temp.written();
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT max(order_id) + 1, 6, '2026-01-10 10:00', 1, 1, 55.25, 10 FROM crm_demo.orders;
INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
SELECT deal_id, '2026-01-05 12:00', 'lost' FROM crm_demo.deal_events GROUP BY 1 HAVING bool_and(stage NOT IN ('paid', 'lost')) ORDER BY 1 LIMIT 3;
INSERT INTO crm_demo.leads (lead_id, created_at, channel, manager_id, customer_id)
SELECT max(lead_id) + 1, '2026-01-03 09:00', 'ads', 1, NULL FROM crm_demo.leads;
SELECT count(*) FROM crm.refresh_rollups();
SELECT is(pg_temp.written(), (SELECT at FROM w), 'changes after the period''s end: the kept rows are not rewritten');
SELECT ok(pg_temp.kept_current(), 'changes after the period''s end: the rows kept are current');
SELECT is(pg_temp.diff(), '{}'::text[], 'changes after the period''s end: v_owner_dashboard = the full computation');

-- 14-21: each input of the fingerprint changed without a refresh: the report computes the rows
SAVEPOINT inputs;
INSERT INTO crm.coverage_policy (class, max_interval) VALUES ('A', '10 days')
    ON CONFLICT (class) DO UPDATE SET max_interval = '10 days';
SELECT ok(NOT pg_temp.kept_current(), 'class A''s contact interval changed: the kept rows are not current');
SELECT is(pg_temp.diff(), '{}'::text[], 'class A''s contact interval changed: v_owner_dashboard = the full computation');
ROLLBACK TO SAVEPOINT inputs;
UPDATE crm.pipeline_stages SET probability = probability / 2 WHERE outcome = 'open';
SELECT ok(NOT pg_temp.kept_current(), 'stage probabilities changed: the kept rows are not current');
SELECT is(pg_temp.diff(), '{}'::text[], 'stage probabilities changed: v_owner_dashboard = the full computation');
ROLLBACK TO SAVEPOINT inputs;
UPDATE crm.pipeline_stages SET max_days = coalesce(max_days, 30) + 5 WHERE outcome = 'open';
SELECT ok(NOT pg_temp.kept_current(), 'stage norms changed: the kept rows are not current');
SELECT is(pg_temp.diff(), '{}'::text[], 'stage norms changed: v_owner_dashboard = the full computation');
ROLLBACK TO SAVEPOINT inputs;
INSERT INTO crm.dashboard_settings (lead_sla) VALUES ('5 minutes')
    ON CONFLICT (singleton) DO UPDATE SET lead_sla = '5 minutes';
SELECT ok(NOT pg_temp.kept_current(), 'lead SLA changed: the kept rows are not current');
SELECT is(pg_temp.diff(), '{}'::text[], 'lead SLA changed: v_owner_dashboard = the full computation');
ROLLBACK TO SAVEPOINT inputs;

-- 22-24: the period moved: computed when read, kept again by the next refresh (no change waiting)
SELECT crm.set_dashboard_period('2025-11-01', '2025-11-30');
SELECT is(pg_temp.diff(), '{}'::text[], 'period moved, no refresh: v_owner_dashboard = the full computation');
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(pg_temp.kept_current() AND (SELECT cur_to FROM crm.rollup_owner_kept_key) = '2025-12-01'::timestamptz,
          'period moved: the next refresh keeps the rows of the new period');
SELECT is(pg_temp.diff(), '{}'::text[], 'period moved, refreshed: v_owner_dashboard = the full computation');
SELECT crm.set_dashboard_period('2025-12-01', '2025-12-31');

-- 25-28: a change dated after the end that still changes a figure as of the end: a class-A
-- customer never contacted loses its customers row (refreshed), then gets one created after
-- the end; the full computation's "customer since" reads every customers row, so the customer
-- leaves the overdue class-A count although the change is dated after the end
CREATE TEMP TABLE xa AS
SELECT k.customer_id FROM crm.rollup_customer_classes k
 WHERE k.end_at = '2026-01-01' AND k.abc_class = 'A' ORDER BY k.rev DESC, k.customer_id LIMIT 1;
DELETE FROM crm_demo.interactions WHERE customer_id::text IN (SELECT customer_id FROM xa);
CREATE TEMP TABLE xa_row AS SELECT c.* FROM crm_demo.customers c WHERE c.customer_id::text IN (SELECT customer_id FROM xa);
DELETE FROM crm_demo.customers WHERE customer_id::text IN (SELECT customer_id FROM xa);
SELECT count(*) FROM crm.refresh_rollups();
SELECT is(pg_temp.diff(), '{}'::text[], 'class-A customer without contacts and customers row: v_owner_dashboard = the full computation');
SELECT set_config('crm_analytics.rollups', 'off', true);
CREATE TEMP TABLE od_before AS SELECT value FROM crm.v_owner_dashboard WHERE metric = 'overdue_class_a_customers';
SELECT set_config('crm_analytics.rollups', 'fresh', true);
UPDATE xa_row SET created_at = '2026-02-01 10:00';
INSERT INTO crm_demo.customers SELECT * FROM xa_row;
SELECT count(*) FROM crm.refresh_rollups();
SELECT is(pg_temp.diff(), '{}'::text[], 'its customers row back, created after the end: v_owner_dashboard = the full computation');
SELECT set_config('crm_analytics.rollups', 'off', true);
SELECT is((SELECT value FROM crm.v_owner_dashboard WHERE metric = 'overdue_class_a_customers'),
          (SELECT value - 1 FROM od_before), 'its customers row back, created after the end: one overdue class-A customer less (full computation)');
SELECT set_config('crm_analytics.rollups', 'fresh', true);
SELECT ok(pg_temp.kept_current(), 'its customers row back: the kept rows are current again');

-- 29-31: an order with a NaN amount in the period: nothing kept, both paths raise the same error
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT max(order_id) + 1, 7, '2025-12-15 10:00', 1, 1, 'NaN', 1 FROM crm_demo.orders;
SELECT count(*) FROM crm.refresh_rollups();
SELECT is((SELECT count(*) FROM crm.rollup_owner_kept_key) + (SELECT count(*) FROM crm.rollup_owner_kept), 0::bigint,
          'NaN amount: nothing kept');
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

SELECT * FROM finish();
ROLLBACK;
