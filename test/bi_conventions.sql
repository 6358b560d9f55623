-- pgTAP (issue 21, BI conventions): column comments of every crm.v_* view,
-- the numeric twins of the text ids, the sort order of v_owner_dashboard,
-- the dashboard period per session (SET / SET LOCAL; per role and database:
-- test/bi_period.sh) and its errors, and the progress line of crm._progress
-- in pg_stat_activity (the notices: test/bi_period.sh).
-- Demo: crm.load_demo(2000, 42, '2025-12-31'), which sets the global period
-- 2025-12-01 .. 2025-12-31.
BEGIN;
SELECT plan(48);
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$f$;

-- ---------------------------------------------------------------- comments
-- 1-3: every column of every view of schema crm (the other capabilities' views too) has a comment
SELECT is(ARRAY(SELECT c.relname || '.' || a.attname
                  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('v', 'm')
                   AND coalesce(btrim(col_description(c.oid, a.attnum)), '') = ''
                 ORDER BY 1), '{}'::text[],
          'every column of every view in schema crm has a non-empty COMMENT');
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
                 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('v', 'm')
                   AND coalesce(btrim(obj_description(c.oid, 'pg_class')), '') = '' ORDER BY 1), '{}'::text[],
          'every view in schema crm has a COMMENT');
SELECT cmp_ok((SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'v'
                  AND c.relname IN ('v_owner_dashboard', 'v_funnel', 'v_pipeline', 'v_retention', 'v_rfm', 'v_abc_xyz',
                                    'v_channels', 'v_managers', 'v_coverage', 'v_lead_sla')), '=', 10::bigint,
              'the ten dashboard views are there (the comment checks above do not pass vacuously)');

-- ---------------------------------------------------------------- ids
-- 4-9: crm.id_number, hand-worked
SELECT is(ARRAY(SELECT crm.id_number(x) FROM unnest(ARRAY['12', '-3.5', '007', '0']) x), ARRAY[12, -3.5, 7, 0]::numeric[],
          'crm.id_number: integers, a negative decimal, leading zeros');
SELECT is(ARRAY(SELECT crm.id_number(x) IS NULL FROM unnest(ARRAY['1.', '.5', 'a1', '', '-', '1e5', ' 1', '1-2', 'M-7']) x),
          ARRAY[true, true, true, true, true, true, true, true, true], 'crm.id_number: not a plain number -> NULL');
SELECT is(crm.id_number(NULL), NULL, 'crm.id_number(NULL) is NULL');
SELECT is(crm.id_number(repeat('9', 1001)), NULL, 'crm.id_number: more than 1000 characters -> NULL');
SELECT is(ARRAY(SELECT x FROM unnest(ARRAY['10', '9', '100', '2']) x ORDER BY crm.id_number(x)), ARRAY['2', '9', '10', '100'],
          'sorting on crm.id_number puts 10 after 9 (text order would not)');
SELECT is(ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                 WHERE a.attrelid IN ('crm.v_managers'::regclass, 'crm.v_rfm'::regclass, 'crm.v_abc_xyz'::regclass)
                   AND a.attname IN ('manager_id_num', 'customer_id_num', 'product_id_num') ORDER BY a.attname),
          ARRAY['numeric', 'numeric', 'numeric'], 'v_managers, v_rfm, v_abc_xyz have numeric id twins');

-- 10-13: the twins equal the demo's integer ids (plain SQL) and sort numerically
SELECT is((SELECT count(*) FROM crm.v_managers WHERE manager_id_num IS DISTINCT FROM manager_id::numeric), 0::bigint,
          'v_managers.manager_id_num = the demo''s integer manager_id on every row');
SELECT is((SELECT count(*) FROM crm.v_rfm r
            WHERE r.customer_id_num IS DISTINCT FROM (SELECT c.customer_id FROM crm_demo.customers c WHERE c.customer_id::text = r.customer_id)),
          0::bigint, 'v_rfm.customer_id_num = crm_demo.customers.customer_id (bigint) on every row');
SELECT is(ARRAY(SELECT customer_id FROM crm.v_rfm ORDER BY customer_id_num LIMIT 3), ARRAY['1', '2', '3'],
          'v_rfm sorted on customer_id_num: 1, 2, 3 (sorted on the text id: 1, 10, 100)');
SELECT is(ARRAY(SELECT product_id FROM crm.v_abc_xyz ORDER BY product_id_num),
          ARRAY(SELECT p.product_id::text FROM crm_demo.products p
                 WHERE EXISTS (SELECT 1 FROM crm.v_abc_xyz v WHERE v.product_id = p.product_id::text) ORDER BY p.product_id),
          'v_abc_xyz sorted on product_id_num = the demo products in integer order');

-- ---------------------------------------------------------------- sort order
-- 14-18
SELECT is((SELECT array_agg(sort_order ORDER BY sort_order) FROM crm.v_owner_dashboard),
          (SELECT array_agg(g::bigint) FROM generate_series(1, (SELECT count(*) FROM crm.v_owner_dashboard)) g),
          'v_owner_dashboard.sort_order is 1..N without gaps');
SELECT is((SELECT array_agg(metric ORDER BY sort_order) FROM crm.v_owner_dashboard),
          (SELECT array_agg(o.metric ORDER BY o.n) FROM crm.owner_dashboard('2025-12-01', '2025-12-31') WITH ORDINALITY AS o(metric, value, unit, previous_value, change_pct, section, n)),
          'v_owner_dashboard in sort_order = the row order of crm.owner_dashboard');
SELECT is((SELECT metric FROM crm.v_owner_dashboard WHERE sort_order = 1), 'leads_in', 'leads_in comes first');
SELECT is((SELECT s.sort_order - w.sort_order FROM crm.v_owner_dashboard s, crm.v_owner_dashboard w
            WHERE s.metric = 'stale_deals' AND w.metric = 'weighted_pipeline'), 1::bigint,
          'stale_deals (ord 18.1) comes right after weighted_pipeline (ord 18)');
SELECT ok((SELECT l.sort_order > d.sort_order AND l.sort_order < u.sort_order
             FROM crm.v_owner_dashboard l, crm.v_owner_dashboard d, crm.v_owner_dashboard u
            WHERE l.metric = 'lost_value_at_lead' AND d.metric = 'lost_deal_value' AND u.metric = 'unpaid_invoices'),
          'lost_value_at_lead (ord 100 + stage order) sits between lost_deal_value (21) and unpaid_invoices (1000)');

-- ---------------------------------------------------------------- the period
-- 19-21: no setting: the global row the demo set
SELECT is((SELECT row(period_from, period_to)::text FROM crm.dashboard_period()), '(2025-12-01,2025-12-31)',
          'no setting: the period of crm.dashboard_settings');
SELECT is(crm.dashboard_period_source(), 'crm.dashboard_settings', 'source: crm.dashboard_settings');
SELECT is((SELECT row(min(period_from), max(period_to))::text FROM crm.v_funnel), '(2025-12-01,2025-12-31)', 'v_funnel shows it');

-- 22-25: SET LOCAL crm.period_from / crm.period_to
SET LOCAL crm.period_from = '2025-10-01';
SET LOCAL crm.period_to = '2025-12-31';
SELECT is((SELECT row(period_from, period_to)::text FROM crm.dashboard_period()), '(2025-10-01,2025-12-31)',
          'SET LOCAL crm.period_from / crm.period_to: Q4 2025');
SELECT is(crm.dashboard_period_source(), 'settings crm.period_from, crm.period_to', 'source: the two settings');
SELECT is((SELECT value FROM crm.v_owner_dashboard WHERE metric = 'revenue'),
          (SELECT sum(amount) FROM crm_demo.orders WHERE ordered_at >= '2025-10-01' AND ordered_at < '2026-01-01'),
          'v_owner_dashboard revenue for the session period = plain SQL over crm_demo.orders (Q4 2025)');
SELECT is((SELECT value FROM crm.v_channels WHERE metric = 'leads' AND channel = 'referral'),
          (SELECT count(*)::numeric FROM crm_demo.leads WHERE channel = 'referral' AND created_at >= '2025-10-01' AND created_at < '2026-01-01'),
          'v_channels referral leads for the session period = plain SQL over crm_demo.leads');

-- 26: the two dates win over crm.period
SET LOCAL crm.period = 'last_7_days';
SELECT is((SELECT row(period_from, period_to)::text FROM crm.dashboard_period()), '(2025-10-01,2025-12-31)',
          'crm.period_from / crm.period_to win over crm.period');

-- 27-32: relative periods (computed from current_date, checked with independent expressions)
SET LOCAL crm.period_from = '';
SET LOCAL crm.period_to = '';
SET LOCAL crm.period = 'last_month';
SELECT ok((SELECT period_to + 1 = date_trunc('month', current_date)::date AND period_from = date_trunc('month', period_to)::date
             FROM crm.dashboard_period()), 'crm.period = last_month (empty dates count as unset)');
SET LOCAL crm.period = 'THIS_MONTH';
SELECT ok((SELECT period_from = date_trunc('month', current_date)::date AND period_to = current_date FROM crm.dashboard_period()),
          'crm.period = this_month (any case): month to date');
SET LOCAL crm.period = 'last_quarter';
SELECT ok((SELECT period_to + 1 = date_trunc('quarter', current_date)::date AND period_from = date_trunc('quarter', period_to)::date
                  AND extract(month FROM age(period_to + 1, period_from)) = 3 FROM crm.dashboard_period()),
          'crm.period = last_quarter: the last complete quarter');
SET LOCAL crm.period = 'this_quarter';
SELECT ok((SELECT period_from = date_trunc('quarter', current_date)::date AND period_to = current_date FROM crm.dashboard_period()),
          'crm.period = this_quarter: quarter to date');
SET LOCAL crm.period = 'last_7_days';
SELECT ok((SELECT period_to = current_date - 1 AND period_to - period_from = 6 FROM crm.dashboard_period()),
          'crm.period = last_7_days: 7 complete days up to yesterday');
SET LOCAL crm.period = 'last_30_days';
SELECT is((SELECT row(period_to - period_from + 1, current_date - period_to, crm.dashboard_period_source())::text FROM crm.dashboard_period()),
          '(30,1,"setting crm.period = last_30_days")', 'crm.period = last_30_days: 30 complete days up to yesterday, and its source');

-- 33-41: errors
SET LOCAL crm.period = 'last_year';
SELECT is(pg_temp.err('SELECT * FROM crm.dashboard_period()'), '22023: invalid value for setting crm.period: "last_year"',
          'unknown crm.period -> 22023 naming the setting');
SELECT is(pg_temp.err('SELECT count(*) FROM crm.v_funnel'), '22023: invalid value for setting crm.period: "last_year"',
          'the error reaches the views');
SET LOCAL crm.period = '';
SET LOCAL crm.period_from = '2025-12-01';
SELECT is(pg_temp.err('SELECT * FROM crm.dashboard_period()'), '22023: setting crm.period_from is set but crm.period_to is not',
          'only crm.period_from -> 22023');
SET LOCAL crm.period_from = '';
SET LOCAL crm.period_to = '2025-12-31';
SELECT is(pg_temp.err('SELECT * FROM crm.dashboard_period()'), '22023: setting crm.period_to is set but crm.period_from is not',
          'only crm.period_to -> 22023');
SET LOCAL crm.period_from = 'yesterday';
SELECT is(pg_temp.err('SELECT * FROM crm.dashboard_period()'), '22007: invalid value for setting crm.period_from: "yesterday"',
          'not an ISO date -> 22007 naming the setting');
SET LOCAL crm.period_from = '2025-12-01';
SET LOCAL crm.period_to = '2025-02-30';
SELECT is(pg_temp.err('SELECT * FROM crm.dashboard_period()'), '22007: invalid value for setting crm.period_to: "2025-02-30" is not a date',
          'an impossible date -> 22007 naming the setting');
SET LOCAL crm.period_to = 'infinity';
SELECT is(pg_temp.err('SELECT * FROM crm.dashboard_period()'), '22007: invalid value for setting crm.period_to: "infinity"',
          'infinity -> 22007');
SET LOCAL crm.period_to = '2025-11-30';
SELECT is(pg_temp.err('SELECT * FROM crm.dashboard_period()'), '22023: setting crm.period_from 2025-12-01 is after crm.period_to 2025-11-30',
          'start after end -> 22023');
SET LOCAL crm.period_from = '';
SET LOCAL crm.period_to = '';
SELECT is(crm.dashboard_period_source(), 'crm.dashboard_settings', 'all settings empty: back to the global period');

-- 42-43: no global row either: the default, the last complete month
SAVEPOINT nosettings;
DELETE FROM crm.dashboard_settings;
SELECT ok((SELECT period_to + 1 = date_trunc('month', current_date)::date AND period_from = date_trunc('month', period_to)::date
             FROM crm.dashboard_period()), 'no setting, no global row: the last complete calendar month');
SELECT is(crm.dashboard_period_source(), 'default: the last complete calendar month', 'source: the default');
ROLLBACK TO SAVEPOINT nosettings;

-- ---------------------------------------------------------------- progress
-- 44-48: the progress line in pg_stat_activity of this backend; bad input
-- (in one statement: the next statement would show its own text)
CREATE FUNCTION pg_temp.progress_activity() RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM crm._progress('bi_conventions: phase', 3, 10);
    PERFORM pg_stat_clear_snapshot();
    RETURN (SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid());
END
$f$;
SELECT alike(pg_temp.progress_activity(),
            'bi_conventions: phase: 3 of 10 done (30%), % s elapsed | %',
            'crm._progress puts "phase: done of total (pct), elapsed | statement" in pg_stat_activity.query');
-- the progress line changes only the query text: state, state_change, query_start and query_id
-- stay those of the running statement (pgstat_report_activity would start a new query: a fresh
-- state_change, query_id reset and then taken by the next nested statement)
SET LOCAL compute_query_id = on;
CREATE FUNCTION pg_temp.progress_keeps_state() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    a record;
    b record;
BEGIN
    PERFORM pg_stat_clear_snapshot();
    SELECT state, state_change, query_start, query_id INTO a FROM pg_stat_activity WHERE pid = pg_backend_pid();
    PERFORM pg_sleep(0.02);
    PERFORM crm._progress('bi_conventions: state', 1, 2);
    PERFORM pg_stat_clear_snapshot();
    SELECT state, state_change, query_start, query_id, query INTO b FROM pg_stat_activity WHERE pid = pg_backend_pid();
    RETURN format('state %s, state_change %s, query_start %s, query_id %s (%s)', a.state = b.state, a.state_change = b.state_change,
                  a.query_start = b.query_start, a.query_id IS NOT NULL AND a.query_id = b.query_id, b.query LIKE 'bi_conventions: state: 1 of 2%');
END
$f$;
SELECT is(pg_temp.progress_keeps_state(), 'state t, state_change t, query_start t, query_id t (t)',
          'crm._progress keeps state, state_change, query_start and query_id of the running statement');
SELECT is(pg_temp.err($$SELECT crm._progress(NULL, 1, 2)$$), '22004: crm._progress: phase and done must not be null', 'NULL phase -> 22004');
SELECT is(pg_temp.err($$SELECT crm._progress('', 1, 2)$$), '22023: crm._progress: phase must not be empty', 'empty phase -> 22023');
SELECT is(pg_temp.err($$SELECT crm._progress('x', -1, NULL)$$), '22023: crm._progress: done and total must not be negative, got -1 and 0',
          'negative done -> 22023');

SELECT * FROM finish();
ROLLBACK;
