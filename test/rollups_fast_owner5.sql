-- test/rollups_fast_owner5.sql: the owner dashboard and the channel report from the rollups
-- (crm._fast_owner_dashboard with crm._fast_owner_deals / _fast_owner_leads /
-- _fast_owner_customers, and crm._fast_channels) after their one-pass rewrite: the deal figures
-- of both periods from one grouped pass over the states at the current end (the deals open at
-- the previous end read from the earlier states only when they have an event between the two
-- ends), a lead's conversion read by index, the kept class-A check per slot, the channel
-- report's one pass over the per-customer table. Every row equals the full computation
-- (crm_analytics.rollups = off) for eight periods (the dashboard's, a past month with later
-- data, a quarter, a year, one day, a period after the data, a month whose previous period is
-- before the data, one whose previous period starts before it), after a full refresh, after
-- three seeded rounds of random changes with incremental refreshes and after a full rebuild;
-- then a hand-worked deal fixture.
BEGIN;
SELECT plan(11);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TEMP TABLE periods (f date, t date);
INSERT INTO periods VALUES ('2025-12-01', '2025-12-31'), ('2025-06-01', '2025-06-30'), ('2025-10-01', '2025-12-31'),
                           ('2025-01-01', '2025-12-31'), ('2025-03-15', '2025-03-15'), ('2026-02-01', '2026-02-28'),
                           ('2024-01-01', '2024-01-31'), ('2024-01-20', '2024-02-19');

-- per period, the rows of the report function fn (fast) that differ from the full computation
CREATE FUNCTION pg_temp.diff(fn text) RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    p record;
    n bigint;
    bad text[] := '{}';
BEGIN
    FOR p IN SELECT * FROM periods ORDER BY f, t LOOP
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        IF NOT crm._rollups_usable() THEN
            RAISE EXCEPTION 'the rollups are not usable';
        END IF;
        EXECUTE format('CREATE TEMP TABLE d_fast AS SELECT * FROM %s(%L, %L) WITH ORDINALITY', fn, p.f, p.t);
        PERFORM set_config('crm_analytics.rollups', 'off', true);
        EXECUTE format('CREATE TEMP TABLE d_full AS SELECT * FROM %s(%L, %L) WITH ORDINALITY', fn, p.f, p.t);
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        SELECT count(*) INTO n FROM ((TABLE d_fast EXCEPT ALL TABLE d_full) UNION ALL (TABLE d_full EXCEPT ALL TABLE d_fast)) d;
        IF n > 0 THEN
            bad := bad || format('%s %s..%s: %s rows differ', fn, p.f, p.t, n);
        END IF;
        DROP TABLE d_fast;
        DROP TABLE d_full;
    END LOOP;
    RETURN bad;
END
$f$;

CREATE FUNCTION pg_temp.check_all(what text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
BEGIN
    RETURN NEXT is(pg_temp.diff('crm.owner_dashboard'), '{}'::text[], what || ': owner_dashboard from the rollups = the full computation, 8 periods');
    RETURN NEXT is(pg_temp.diff('crm.dashboard_channels'), '{}'::text[], what || ': dashboard_channels from the rollups = the full computation, 8 periods');
END
$f$;

-- 1-2: after a full refresh
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT * FROM pg_temp.check_all('after a full refresh');

-- 3-4: the views, fast and full
CREATE FUNCTION pg_temp.view_diff(v text) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
    n bigint;
BEGIN
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    EXECUTE format('CREATE TEMP TABLE vd_fast AS SELECT * FROM crm.%I', v);
    PERFORM set_config('crm_analytics.rollups', 'off', true);
    EXECUTE format('CREATE TEMP TABLE vd_full AS SELECT * FROM crm.%I', v);
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    SELECT count(*) INTO n FROM ((TABLE vd_fast EXCEPT ALL TABLE vd_full) UNION ALL (TABLE vd_full EXCEPT ALL TABLE vd_fast)) d;
    DROP TABLE vd_fast;
    DROP TABLE vd_full;
    RETURN n;
END
$f$;
SELECT is(pg_temp.view_diff(v), 0::bigint, v || ': from the rollups = the full computation')
  FROM unnest(ARRAY['v_owner_dashboard', 'v_channels']) AS v;

-- 5-7: three seeded rounds of random changes, incremental refreshes
\ir data/rollups_random_round.sql
SELECT setseed(0.55);
SELECT pg_temp.random_round(1);
SELECT ok(NOT crm._rollups_usable(), 'changes waiting: the default (fresh) takes the full computation');
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(2);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(3);
SELECT count(*) FROM crm.refresh_rollups();
SELECT * FROM pg_temp.check_all('after 3 random rounds, incremental refreshes');

-- 8-9: a full rebuild gives the same
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT * FROM pg_temp.check_all('after a full rebuild');

-- 10-11: a hand-worked deal fixture (the only deal events; amounts from crm_demo.deals), for
-- April 2027 (previous period: 2027-03-02 .. 2027-03-31, 30 days):
--   A (amount 300): lead 03-10, proposal 04-10: open at both ends (an event between them)
--   B (amount 50):  lead 03-05, paid 06-01: open at both ends, same state (next event after the period)
--   C (amount 70):  lead 03-20, lost 04-15: open at the previous end, lost in the period
--   D (amount 200): lead 02-01, paid 03-15: won in the previous period
-- current end (05-01): open A, B: 2 deals, 350; A proposal 300 x 0.50 = 150.00 weighted;
--   B idle since 03-05 > 30 days (lead): stale, 50; won 0, lost 1 (C, 70, reached lead):
--   win rate 0.00
-- previous end (04-01): open A, B, C at lead, valued as of the current end: 3 deals, 420;
--   weighted 420 x 0.10 = 42.00; none idle > 30 days (03-02); won 1 (D), lost 0: 100.00
DELETE FROM crm_demo.deal_events;
INSERT INTO crm_demo.deals (deal_id, lead_id, customer_id, manager_id, channel, created_at, stage, amount)
SELECT 900000 + v.n, (SELECT min(lead_id) FROM crm_demo.leads), NULL, 1, 'ads', v.c, 'lead', v.a
  FROM (VALUES (1, timestamptz '2027-03-10', 300), (2, '2027-03-05', 50), (3, '2027-03-20', 70), (4, '2027-02-01', 200)) AS v(n, c, a);
INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage) VALUES
    (900001, '2027-03-10', 'lead'), (900001, '2027-04-10', 'proposal'),
    (900002, '2027-03-05', 'lead'), (900002, '2027-06-01', 'paid'),
    (900003, '2027-03-20', 'lead'), (900003, '2027-04-15', 'lost'),
    (900004, '2027-02-01', 'lead'), (900004, '2027-03-15', 'paid');
SELECT count(*) FROM crm.refresh_rollups();
SELECT results_eq(
    $$SELECT metric, value, previous_value FROM crm.owner_dashboard('2027-04-01', '2027-04-30')
       WHERE metric IN ('open_deals', 'open_pipeline_value', 'weighted_pipeline', 'stale_deals', 'stale_pipeline_value',
                        'deals_won', 'deals_lost', 'lost_deal_value', 'win_rate', 'lost_value_at_lead')
       ORDER BY metric$$,
    $$VALUES ('deals_lost', 1::numeric, 0::numeric), ('deals_won', 0, 1), ('lost_deal_value', 70, 0), ('lost_value_at_lead', 70, 0),
             ('open_deals', 2, 3), ('open_pipeline_value', 350, 420), ('stale_deals', 1, 0), ('stale_pipeline_value', 50, 0),
             ('weighted_pipeline', 150.00, 42.00), ('win_rate', 0.00, 100.00)$$,
    'hand-worked fixture: the deal rows of both periods from the rollups');
DELETE FROM periods;
INSERT INTO periods VALUES ('2027-04-01', '2027-04-30'), ('2027-04-05', '2027-04-12'), ('2027-03-01', '2027-06-30');
SELECT is(pg_temp.diff('crm.owner_dashboard'), '{}'::text[], 'hand-worked fixture: owner_dashboard from the rollups = the full computation, 3 periods');

SELECT * FROM finish();
ROLLBACK;
