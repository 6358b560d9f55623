-- test/rollups_fast.sql: the reports answered from the rollups (crm._rollups_usable, the
-- crm._fast_* functions) equal the full computation (crm_analytics.rollups = off) -- every row,
-- in order -- for seven periods (the dashboard's month, a past month whose end later events
-- follow, a quarter, a year, one day, the first month, a month after the data), after a full
-- refresh, after five rounds of random INSERT / UPDATE / DELETE on every source table with an
-- incremental refresh, and after a full rebuild; the views likewise; the setting's three values.
BEGIN;
SELECT plan(49);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TEMP TABLE periods (f date, t date);
INSERT INTO periods VALUES ('2025-12-01', '2025-12-31'), ('2025-06-01', '2025-06-30'), ('2025-10-01', '2025-12-31'),
                           ('2025-01-01', '2025-12-31'), ('2025-03-15', '2025-03-15'), ('2024-01-01', '2024-01-31'),
                           ('2026-02-01', '2026-02-28');

-- rows of query q (placeholders %1$L, %2$L: the period) that differ between the fast
-- path and the full computation, both ways, per period: {'<from>: <n>'} or {}
CREATE FUNCTION pg_temp.fast_diff(q text) RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    p record;
    n bigint;
    bad text[] := '{}';
BEGIN
    FOR p IN SELECT * FROM periods ORDER BY f, t LOOP
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        IF NOT crm._rollups_usable() THEN
            RETURN ARRAY['the rollups are not usable'];
        END IF;
        EXECUTE 'CREATE TEMP TABLE fd_fast AS ' || format(q, p.f, p.t);
        PERFORM set_config('crm_analytics.rollups', 'off', true);
        EXECUTE 'CREATE TEMP TABLE fd_full AS ' || format(q, p.f, p.t);
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        SELECT count(*) INTO n FROM ((TABLE fd_fast EXCEPT ALL TABLE fd_full) UNION ALL (TABLE fd_full EXCEPT ALL TABLE fd_fast)) d;
        IF n > 0 THEN
            bad := bad || format('%s..%s: %s rows differ', p.f, p.t, n);
        END IF;
        DROP TABLE fd_fast;
        DROP TABLE fd_full;
    END LOOP;
    RETURN bad;
END
$f$;

-- every report, each row with its position
CREATE TEMP TABLE reports (name text, q text);
INSERT INTO reports VALUES
    ('owner_dashboard', $$SELECT * FROM crm.owner_dashboard(%L, %L) WITH ORDINALITY$$),
    ('dashboard_managers', $$SELECT * FROM crm.dashboard_managers(%L, %L) WITH ORDINALITY$$),
    ('dashboard_pipeline', $$SELECT * FROM crm.dashboard_pipeline(%L, %L) WITH ORDINALITY$$),
    ('dashboard_funnel', $$SELECT * FROM crm.dashboard_funnel(%L, %L) WITH ORDINALITY$$),
    ('dashboard_channels', $$SELECT * FROM crm.dashboard_channels(%L, %L) WITH ORDINALITY$$),
    ('dashboard_coverage', $$SELECT * FROM crm.dashboard_coverage((%2$L::date + 1)::timestamptz)$$);

CREATE FUNCTION pg_temp.check_all(what text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM reports ORDER BY name LOOP
        RETURN NEXT is(pg_temp.fast_diff(r.q), '{}'::text[], format('%s: %s from the rollups = the full computation, 7 periods', what, r.name));
    END LOOP;
END
$f$;

-- 1-6: after a full refresh
SELECT count(*) FROM crm.refresh_rollups();
SELECT * FROM pg_temp.check_all('after a full refresh');

-- 7-12: the views (the dashboard period), fast and full
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
  FROM unnest(ARRAY['v_owner_dashboard', 'v_managers', 'v_pipeline', 'v_funnel', 'v_channels', 'v_coverage']) AS v;

-- 13-24: random rounds with incremental refreshes
\ir data/rollups_random_round.sql
SELECT setseed(0.37);
SELECT pg_temp.random_round(1);
SELECT pg_temp.random_round(2);
SELECT ok(NOT crm._rollups_usable(), 'changes waiting: the default (fresh) takes the full computation');
SELECT count(*) FROM crm.refresh_rollups();
SELECT is((SELECT last_mode FROM crm.rollup_status), 'incremental', 'rounds 1 and 2: an incremental refresh');
SELECT * FROM pg_temp.check_all('rounds 1-2');
SELECT pg_temp.random_round(3);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(4);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(5);
SELECT count(*) FROM crm.refresh_rollups();
SELECT is((SELECT last_mode FROM crm.rollup_status), 'incremental', 'rounds 3-5: incremental refreshes');
SELECT * FROM pg_temp.check_all('rounds 3-5');

-- 25-30: a full rebuild gives the same
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT * FROM pg_temp.check_all('a full rebuild after the rounds');

-- 31-38: the setting
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
VALUES ((SELECT max(order_id) + 1 FROM crm_demo.orders), 1, '2025-12-15 10:00', 1, 1, 1000000, 1);
SET LOCAL crm_analytics.rollups = 'fresh';
SELECT ok(NOT crm._rollups_usable(), 'fresh: a change waiting, the rollups are not used');
SELECT cmp_ok((SELECT value FROM crm.owner_dashboard('2025-12-01', '2025-12-31') WHERE metric = 'revenue'), '>=', 1000000::numeric,
              'fresh: the report shows the live data (the new order)');
SET LOCAL crm_analytics.rollups = 'last_refresh';
SELECT ok(crm._rollups_usable(), 'last_refresh: the rollups are used with changes waiting');
SELECT cmp_ok((SELECT value FROM crm.owner_dashboard('2025-12-01', '2025-12-31') WHERE metric = 'revenue'), '<', 1000000::numeric,
              'last_refresh: the report shows the figures of the last refresh');
SET LOCAL crm_analytics.rollups = 'off';
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(NOT crm._rollups_usable(), 'off: never the rollups');
SELECT throws_ok($$SET LOCAL crm_analytics.rollups = 'bogus'$$, '22023', NULL, 'an unknown value: 22023');
SELECT is((SELECT enumvals FROM pg_settings WHERE name = 'crm_analytics.rollups'), ARRAY['fresh', 'last_refresh', 'off'],
          'the setting lists its values (pg_settings)');
SET LOCAL crm_analytics.rollups = 'last_refresh';
TRUNCATE crm_demo.spend;
SELECT ok(NOT crm._rollups_usable(), 'last_refresh: a TRUNCATE waiting (a full rebuild is due): not used');

-- 42-45: who may read the rollups
SET LOCAL crm_analytics.rollups = 'fresh';
SELECT count(*) FROM crm.refresh_rollups();
CREATE ROLE rollups_fast_reader;
GRANT USAGE ON SCHEMA crm, crm_demo TO rollups_fast_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA crm_demo TO rollups_fast_reader;
GRANT SELECT ON crm.sources TO rollups_fast_reader;  -- what the full computation needs
SET LOCAL ROLE rollups_fast_reader;
SELECT ok(NOT crm._rollups_usable(), 'a role that may not read the rollup tables: not used');
SELECT lives_ok($$SELECT * FROM crm.owner_dashboard('2025-12-01', '2025-12-31')$$, 'that role gets the full computation, no permission error');
RESET ROLE;
GRANT SELECT ON ALL TABLES IN SCHEMA crm TO rollups_fast_reader;
SET LOCAL ROLE rollups_fast_reader;
SELECT ok(crm._rollups_usable(), 'granted SELECT on them: used');
RESET ROLE;
ALTER TABLE crm_demo.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY rollups_fast_half ON crm_demo.orders USING (order_id % 2 = 0);
SELECT count(*) FROM crm.refresh_rollups();
SET LOCAL ROLE rollups_fast_reader;
SELECT ok(NOT crm._rollups_usable(), 'row-level security on a captured table applies to the role: not used (the rollups hold every row)');
RESET ROLE;

-- 46-49: rollups built without a source: the reports raise what the full computation raises
SELECT crm.unregister_source('invoices');
SELECT crm.unregister_source('stage_events');
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(crm._rollups_usable(), 'rollups built without the invoices and stage_events sources are usable');
SELECT throws_ok($$SELECT * FROM crm.owner_dashboard('2025-12-01', '2025-12-31')$$, '55000', 'source "invoices" is not registered',
                 'owner_dashboard: a source missing, the same error as the full computation');
SELECT throws_ok($$SELECT * FROM crm.dashboard_pipeline('2025-12-01', '2025-12-31')$$, '55000', 'source "stage_events" is not registered',
                 'dashboard_pipeline: likewise');
SELECT throws_ok($$SELECT * FROM crm.dashboard_managers('2025-12-01', '2025-12-31')$$, '55000', 'source "stage_events" is not registered',
                 'dashboard_managers: likewise');

SELECT * FROM finish();
ROLLBACK;
