-- pgTAP: crm.cohort_activity, crm.cohort_retention, crm.retention_metrics
-- against independent plain SQL on the demo orders and hand-worked cases.
BEGIN;
SELECT plan(87);

CREATE TEMP TABLE src AS SELECT customer_id AS e, ordered_at AS ts, amount FROM crm_demo.orders;

CREATE FUNCTION pg_temp.explain_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP RETURN NEXT l; END LOOP;
END $f$;

-- period index in plain SQL (session time zone, as date_trunc sees it)
CREATE FUNCTION pg_temp.pidx(ts timestamptz, period text) RETURNS int LANGUAGE sql STABLE AS $f$
    SELECT CASE period
        WHEN 'day'     THEN ts::date - date '2000-01-03'
        WHEN 'week'    THEN (date_trunc('week', ts)::date - date '2000-01-03') / 7
        WHEN 'month'   THEN (extract(year FROM ts) * 12 + extract(month FROM ts) - 1)::int
        WHEN 'quarter' THEN (extract(year FROM ts) * 4 + extract(quarter FROM ts) - 1)::int
        WHEN 'year'    THEN extract(year FROM ts)::int END
$f$;

-- the cohort report in plain SQL over table src(e, ts, amount):
-- first-purchase CTE + join + DISTINCT + GROUP BY, a grid of period numbers up to the data's last period
CREATE FUNCTION pg_temp.ref_cohorts(period text, periods int)
RETURNS TABLE(cohort date, period_no int, cohort_size bigint, active bigint, retention_rate numeric,
              revenue numeric, cumulative_ltv numeric) LANGUAGE sql AS $f$
    WITH o AS (SELECT e, ts, amount FROM src WHERE e IS NOT NULL AND ts IS NOT NULL),
    fc AS (SELECT e, date_trunc(period, min(ts))::date AS cohort, pg_temp.pidx(min(ts), period) AS c FROM o GROUP BY e),
    sizes AS (SELECT cohort, c, count(*) AS n FROM fc GROUP BY cohort, c),
    h AS (SELECT max(pg_temp.pidx(ts, period)) AS h FROM o),
    act AS (SELECT fc.cohort, pg_temp.pidx(o.ts, period) - fc.c AS k, count(DISTINCT o.e) AS active,
                   coalesce(sum(o.amount), 0) AS rev
              FROM o JOIN fc USING (e) GROUP BY 1, 2),
    grid AS (SELECT s.cohort, k, s.n FROM sizes s, h, generate_series(0, periods - 1) k WHERE s.c + k <= h.h)
    SELECT g.cohort, g.k, g.n, coalesce(a.active, 0), round(coalesce(a.active, 0)::numeric / g.n, 4),
           coalesce(a.rev, 0), round(sum(coalesce(a.rev, 0)) OVER (PARTITION BY g.cohort ORDER BY g.k) / g.n, 2)
      FROM grid g LEFT JOIN act a ON a.cohort = g.cohort AND a.k = g.k
$f$;

-- the period metrics in plain SQL over src
CREATE FUNCTION pg_temp.ref_metrics(period text)
RETURNS TABLE(p int, s bigint, n bigint, e bigint, retained bigint, churned bigint, churn_rate numeric,
              retention_rate numeric, orders bigint, revenue numeric, repeat_customers bigint,
              repeat_purchase_rate numeric, aov numeric) LANGUAGE sql AS $f$
    WITH o AS (SELECT e, ts, amount FROM src WHERE e IS NOT NULL AND ts IS NOT NULL),
    a AS (SELECT e, pg_temp.pidx(ts, period) AS p, count(*) AS n, coalesce(sum(amount), 0) AS rev FROM o GROUP BY 1, 2),
    c AS (SELECT a.*, min(p) OVER (PARTITION BY e) AS fp, sum(n) OVER (PARTITION BY e ORDER BY p) AS todate FROM a),
    per AS (SELECT p, count(*) AS e, count(*) FILTER (WHERE p = fp) AS n, sum(n)::bigint AS orders, sum(rev) AS rev,
                   count(*) FILTER (WHERE todate >= 2) AS rep FROM c GROUP BY p),
    ret AS (SELECT a2.p, count(*) AS r FROM a a1 JOIN a a2 ON a1.e = a2.e AND a2.p = a1.p + 1 GROUP BY a2.p),
    rng AS (SELECT generate_series(min(p), max(p)) AS p FROM a),
    full_ AS (SELECT rng.p, coalesce(per.e, 0) AS e, coalesce(per.n, 0) AS n, coalesce(ret.r, 0) AS r,
                     coalesce(per.orders, 0) AS orders, coalesce(per.rev, 0) AS rev, coalesce(per.rep, 0) AS rep
                FROM rng LEFT JOIN per USING (p) LEFT JOIN ret USING (p)),
    w AS (SELECT f.*, coalesce(lag(e) OVER (ORDER BY p), 0) AS s FROM full_ f)
    SELECT p, s, n, e, r, s - r, round((s - r)::numeric / nullif(s, 0), 4), round((e - n)::numeric / nullif(s, 0), 4),
           orders, rev, rep, round(rep::numeric / nullif(e, 0), 4), round(rev / nullif(orders, 0), 2)
      FROM w
$f$;

SELECT ok((SELECT count(*) FROM src) > 1000, 'demo orders are loaded');

-- ---- crm.cohort_activity: per-entity periods equal GROUP BY date_trunc --------
SELECT ok((SELECT aggcombinefn <> 0 AND p.proparallel = 's' AND aggtranstype = 'crm.cohort_activity_state'::regtype
             FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE aggfnoid = 'crm.cohort_activity(timestamptz, numeric, text)'::regprocedure),
          'crm.cohort_activity: combine function, parallel safe, real state type');
CREATE TEMP TABLE act_m AS SELECT e, crm.cohort_activity(ts, amount, 'month') AS a FROM src GROUP BY e;
SELECT set_eq($$SELECT e, p.* FROM act_m, crm.cohort_activity_periods(a) p$$,
              $$SELECT e, date_trunc('month', ts)::date, count(*), sum(amount) FROM src GROUP BY 1, 2$$,
              'demo, month: every customer''s periods, orders and revenue equal GROUP BY date_trunc');
SELECT is((SELECT count(*) FROM act_m WHERE a::text::crm.cohort_activity_state::text <> a::text), 0::bigint,
          'demo: state::text::crm.cohort_activity_state::text round-trips for every customer');
SELECT ok((SELECT count(*) FROM act_m WHERE a::text LIKE '%;%;%') > 100, 'demo: many customers have several periods');

SET LOCAL TimeZone = 'America/New_York';
SELECT set_eq($$SELECT e, p.* FROM (SELECT e, crm.cohort_activity(ts, amount, 'week') a FROM src GROUP BY e) s, crm.cohort_activity_periods(a) p$$,
              $$SELECT e, date_trunc('week', ts)::date, count(*), sum(amount) FROM src GROUP BY 1, 2$$,
              'demo, week, America/New_York (DST): equals date_trunc(''week'') in the session time zone');
SET LOCAL TimeZone = 'Etc/GMT-9';
SELECT set_eq($$SELECT e, p.* FROM (SELECT e, crm.cohort_activity(ts, amount, 'day') a FROM src GROUP BY e) s, crm.cohort_activity_periods(a) p$$,
              $$SELECT e, ts::date, count(*), sum(amount) FROM src GROUP BY 1, 2$$,
              'demo, day, UTC+9 (fixed offset): equals the local date');
SELECT set_eq($$SELECT e, p.* FROM (SELECT e, crm.cohort_activity(ts, amount, 'quarter') a FROM src GROUP BY e) s, crm.cohort_activity_periods(a) p$$,
              $$SELECT e, date_trunc('quarter', ts)::date, count(*), sum(amount) FROM src GROUP BY 1, 2$$,
              'demo, quarter, UTC+9: equals date_trunc(''quarter'')');
RESET TimeZone;

-- exact sums of mixed scales, refunds and big values
SELECT is((SELECT crm.cohort_activity(ts, amount, 'year')::text FROM (VALUES
            ('2024-05-01'::timestamptz, 1.5), ('2024-06-01', -0.125), ('2024-07-01', 12345678901234567890.1),
            ('2025-01-01', NULL), ('2025-02-01', 0.00001)) v(ts, amount)),
          'year;2024-01-01,3,12345678901234567891.47500;2025-01-01,2,0.00001',
          'exact revenue over mixed scales, a refund, a 20-digit amount and a NULL amount');
SELECT set_eq($$SELECT p.* FROM (SELECT crm.cohort_activity(ts, amount, 'year') a FROM (VALUES
            ('2024-05-01'::timestamptz, 1.5), ('2024-06-01', -0.125), ('2024-07-01', 12345678901234567890.1),
            ('2025-01-01', NULL), ('2025-02-01', 0.00001)) v(ts, amount)) s, crm.cohort_activity_periods(a) p$$,
              $$SELECT date_trunc('year', ts)::date, count(*), coalesce(sum(amount), 0) FROM (VALUES
            ('2024-05-01'::timestamptz, 1.5), ('2024-06-01', -0.125), ('2024-07-01', 12345678901234567890.1),
            ('2025-01-01', NULL), ('2025-02-01', 0.00001)) v(ts, amount) GROUP BY 1$$,
              'the same against sum(numeric)');

-- narrow and wide states: values that outgrow 16-byte entries (int64 revenue
-- at the state's scale, int32 orders) turn the state wide; results stay exact
CREATE TEMP TABLE big_amounts AS
SELECT i % 7 AS e, timestamptz '2024-01-01' + (i * 37 % 400) * interval '1 day' AS ts,
       CASE WHEN i % 5 = 0 THEN 40000000000000000.25                      -- 4e16: two of them pass int64 at scale 2
            WHEN i % 11 = 0 THEN round(1 / (i + 1.0), 6)                   -- a 6th decimal: rescales the state
            WHEN i % 13 = 0 THEN -39999999999999999.5                      -- refunds
            ELSE (i % 1000) * 0.01 END AS amount
  FROM generate_series(1, 3000) i;
SELECT set_eq($$SELECT e, p.* FROM (SELECT e, crm.cohort_activity(ts, amount, 'month') a FROM big_amounts GROUP BY e) s,
                                     crm.cohort_activity_periods(a) p$$,
              $$SELECT e, date_trunc('month', ts)::date, count(*), sum(amount) FROM big_amounts GROUP BY 1, 2$$,
              'wide states: values beyond 64 bits and rescaling equal sum(numeric) per entity and month');
SELECT is((SELECT count(*) FROM (SELECT e, crm.cohort_activity(ts, amount, 'month') a FROM big_amounts GROUP BY e) s
            WHERE a::text::crm.cohort_activity_state::text <> a::text), 0::bigint, 'wide states round-trip through text');
SELECT results_eq($$SELECT sum(revenue), sum(active)::bigint FROM crm.cohort_retention('SELECT e, ts, amount FROM big_amounts', 'month', 100)$$,
                  $$SELECT sum(amount), (SELECT count(DISTINCT (e, date_trunc('month', ts))) FROM big_amounts) FROM big_amounts$$,
                  'wide states through cohort_retention: total revenue and activity exact');
-- one entity with 400 daily periods: the state grows many times
SELECT set_eq($$SELECT p.* FROM (SELECT crm.cohort_activity(ts, amount, 'day') a
                                   FROM (SELECT * FROM big_amounts ORDER BY amount, ts) o) s, crm.cohort_activity_periods(a) p$$,
              $$SELECT ts::date, count(*), sum(amount) FROM big_amounts GROUP BY 1$$,
              'one state of 400 days built in an unsorted order equals GROUP BY day');
-- a period more than 32767 periods from the state's first one, and more than 65535 events in one period
SELECT set_eq($$SELECT p.* FROM (SELECT crm.cohort_activity(ts, amount, 'day') a FROM (VALUES
                ('2025-01-01'::timestamptz, 1.00), ('1900-01-01', 2.00), ('2025-01-02', 3.00), ('1900-01-01', 4.00)) v(ts, amount)) s,
                crm.cohort_activity_periods(a) p$$,
              $$VALUES ('1900-01-01'::date, 2::bigint, 6.00::numeric), ('2025-01-01', 1, 1.00), ('2025-01-02', 1, 3.00)$$,
              'periods 45,000 days apart in one state (day)');
SELECT set_eq($$SELECT p.* FROM (SELECT crm.cohort_activity(timestamptz '2025-01-01' + (i % 60) * interval '1 day', i % 100, 'month') a
                                   FROM generate_series(1, 70000) i) s, crm.cohort_activity_periods(a) p$$,
              $$SELECT date_trunc('month', timestamptz '2025-01-01' + (i % 60) * interval '1 day')::date, count(*), sum(i % 100)::numeric
                  FROM generate_series(1, 70000) i GROUP BY 1$$,
              'more than 65535 events of one entity in one period');
-- the combine function over narrow, wide and empty states (through text)
CREATE AGGREGATE pg_temp.cohort_merge(crm.cohort_activity_state) (
    SFUNC = crm.cohort_activity_combinefn, STYPE = crm.cohort_activity_state);
SELECT is((SELECT pg_temp.cohort_merge(s::crm.cohort_activity_state ORDER BY n)::text FROM (VALUES
            (1, 'month;2025-01-01,2,1.50;2025-03-01,1,2.00'),
            (2, 'month;2025-01-01,3000000000,90000000000000000.00'),
            (3, NULL),
            (4, 'month'),
            (5, 'month;2025-02-01,1,0.125')) v(n, s)),
          'month;2025-01-01,3000000002,90000000000000001.500;2025-02-01,1,0.125;2025-03-01,1,2.000',
          'combine: narrow + wide (3e9 orders, 9e16 revenue) + NULL + empty + a finer scale, exact');
SELECT is((SELECT pg_temp.cohort_merge(s::crm.cohort_activity_state ORDER BY n)::text FROM (VALUES
            (1, 'month;2025-01-01,2147483647,1'), (2, 'month;2025-01-01,1,1')) v(n, s)),
          'month;2025-01-01,2147483648,2', 'combine: orders past 2^31-1 in one period');

-- 0.1.0's binary states ("CHA1": 16-byte header, 32-byte entries), e.g. stored in a
-- table before the upgrade, are still read: built here byte by byte through a
-- binary-compatible cast (month 2025-01: 3 orders, 150.50; 2025-03: 1 order, -20.00)
CREATE TYPE pg_temp.raw_d;
CREATE FUNCTION pg_temp.raw_d_in(cstring) RETURNS pg_temp.raw_d LANGUAGE internal IMMUTABLE STRICT AS 'byteain';
CREATE FUNCTION pg_temp.raw_d_out(pg_temp.raw_d) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'byteaout';
CREATE TYPE pg_temp.raw_d (INPUT = pg_temp.raw_d_in, OUTPUT = pg_temp.raw_d_out, INTERNALLENGTH = VARIABLE, ALIGNMENT = double);
CREATE CAST (pg_temp.raw_d AS crm.cohort_activity_state) WITHOUT FUNCTION;
CREATE TEMP TABLE v1_states AS SELECT ('\x31414843' || '02000000' || '02000000' || '02000000' || '00000000'
    || 'ec5e0000' || '00000000' || '0300000000000000' || 'ca3a0000000000000000000000000000'
    || 'ee5e0000' || '00000000' || '0100000000000000' || '30f8ffffffffffffffffffffffffffff')::pg_temp.raw_d::crm.cohort_activity_state AS a;
SELECT is((SELECT a::text FROM v1_states), 'month;2025-01-01,3,150.50;2025-03-01,1,-20.00', '0.1.0 state: text form');
SELECT set_eq($$SELECT p.* FROM v1_states, crm.cohort_activity_periods(a) p$$,
              $$VALUES ('2025-01-01'::date, 3::bigint, 150.50::numeric), ('2025-03-01', 1, -20.00)$$, '0.1.0 state: its periods');
SELECT is((SELECT pg_temp.cohort_merge(s ORDER BY n)::text FROM (SELECT 1 AS n, a AS s FROM v1_states
            UNION ALL SELECT 2, 'month;2025-02-01,1,1.5'::crm.cohort_activity_state) v),
          'month;2025-01-01,3,150.50;2025-02-01,1,1.50;2025-03-01,1,-20.00', '0.1.0 state combined with a new one');
SELECT throws_ok($$SELECT ('\x31414843' || '02000000' || '02000000' || '02000000' || '00000000'
    || 'ec5e0000' || '00000000' || '0300000000000000' || 'ca3a0000000000000000000000000000')::pg_temp.raw_d::crm.cohort_activity_state::text$$,
                 'XX001', NULL, '0.1.0 state with a wrong entry count: XX001');

CREATE TABLE ret_cohort_orders AS SELECT customer_id % 20 AS g, customer_id AS e, ordered_at AS ts, amount FROM crm_demo.orders;
ANALYZE ret_cohort_orders;
CREATE TEMP TABLE act_g AS SELECT g, crm.cohort_activity(ts, amount, 'month')::text AS a FROM ret_cohort_orders GROUP BY 1;

-- ---- forced parallel: the per-entity aggregate runs in partial steps --------
SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
ALTER TABLE crm_demo.orders SET (parallel_workers = 2);
ALTER TABLE ret_cohort_orders SET (parallel_workers = 2);
SELECT ok((SELECT string_agg(l, E'\n') FROM pg_temp.explain_lines(
            $$SELECT g, crm.cohort_activity(ts, amount, 'month') FROM ret_cohort_orders GROUP BY g$$) l)
          ~ 'Partial (Hash|Group)Aggregate', 'forced parallel: cohort_activity over 20 groups of customers is a Partial Aggregate plan');
SELECT set_eq($$SELECT g, crm.cohort_activity(ts, amount, 'month')::text FROM ret_cohort_orders GROUP BY g$$,
              $$SELECT g, a FROM act_g$$, 'forced parallel: states of 20 groups of customers equal the serial ones');
SELECT set_eq($$SELECT customer_id, crm.cohort_activity(ordered_at, amount, 'month')::text FROM crm_demo.orders GROUP BY customer_id$$,
              $$SELECT e, a::text FROM act_m$$, 'forced parallel: per-customer states equal the serial ones');
SELECT ok((SELECT string_agg(l, E'\n') FROM pg_temp.explain_lines(
            $$SELECT crm.cohort_activity(ordered_at, amount, 'month') FROM crm_demo.orders$$) l)
          ~ 'Partial Aggregate', 'forced parallel: one state over all rows is a Partial Aggregate plan');
SELECT set_eq($$SELECT p.* FROM (SELECT crm.cohort_activity(ordered_at, amount, 'month') a FROM crm_demo.orders) s, crm.cohort_activity_periods(a) p$$,
              $$SELECT date_trunc('month', ts)::date, count(*), sum(amount) FROM src GROUP BY 1$$,
              'forced parallel, all rows in one state: the combine step merges periods exactly');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', 'month', 12) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'forced parallel: cohort_retention by month equals the plain SQL');
SET LOCAL crm_analytics.cohort_two_pass = off;
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', 'month', 12) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'forced parallel, cohort_two_pass off (the aggregate in partial steps): equals the plain SQL');
RESET crm_analytics.cohort_two_pass;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
ALTER TABLE crm_demo.orders RESET (parallel_workers);

-- ---- crm.cohort_retention against plain SQL on the demo orders --------------
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src') ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'demo, defaults (month, 12): equals the plain SQL');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'week', 30) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('week', 30) ORDER BY 1, 2$$,
                  'demo, week (ISO, Monday), 30 periods: equals the plain SQL');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'quarter', 8) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('quarter', 8) ORDER BY 1, 2$$,
                  'demo, quarter: equals the plain SQL');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'YEAR', 3) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('year', 3) ORDER BY 1, 2$$,
                  'demo, year (period name case-insensitive): equals the plain SQL');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'day', 60) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('day', 60) ORDER BY 1, 2$$,
                  'demo, day, 60 periods: equals the plain SQL');
SELECT is((SELECT max(c.cohort + (c.period_no || ' months')::interval)::date
             FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'month', 24) c),
          (SELECT max(date_trunc('month', ts))::date FROM src),
          'young cohorts: no period after the last month in the data');
SELECT is((SELECT count(*) FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'month', 24) WHERE period_no = 0),
          (SELECT count(DISTINCT date_trunc('month', ts)) FROM (SELECT min(ts) ts FROM src GROUP BY e) f),
          'one period_no 0 row per cohort');
SELECT results_eq($$SELECT cohort, period_no, cohort_size, active, retention_rate, revenue IS NULL, cumulative_ltv IS NULL
                      FROM crm.cohort_retention('SELECT e, ts::date FROM src', 'month', 6) ORDER BY 1, 2$$,
                  $$SELECT cohort, period_no, cohort_size, active, retention_rate, true, true
                      FROM pg_temp.ref_cohorts('month', 6) ORDER BY 1, 2$$,
                  'no amount column and a date ts: counts as with amounts, revenue and LTV NULL');

-- ---- crm.retention_metrics against plain SQL ---------------------------------
SELECT results_eq($$SELECT pg_temp.pidx(period_start, 'month'), customers_start, new_customers, active_customers, retained, churned,
                           churn_rate, retention_rate, orders, revenue, repeat_customers, repeat_purchase_rate, aov
                      FROM crm.retention_metrics('SELECT e, ts, amount FROM src') ORDER BY 1$$,
                  $$SELECT * FROM pg_temp.ref_metrics('month') ORDER BY 1$$,
                  'demo, month: churn, (E-N)/S, repeat purchase rate, AOV equal the plain SQL');
SELECT results_eq($$SELECT pg_temp.pidx(period_start, 'week'), customers_start, new_customers, active_customers, retained, churned,
                           churn_rate, retention_rate, orders, revenue, repeat_customers, repeat_purchase_rate, aov
                      FROM crm.retention_metrics('SELECT e, ts, amount FROM src', 'week') ORDER BY 1$$,
                  $$SELECT * FROM pg_temp.ref_metrics('week') ORDER BY 1$$,
                  'demo, week (with empty weeks filled): equals the plain SQL');

-- ---- hand-worked case: refunds, NULL rows ------------------------------------
CREATE TEMP TABLE hand(e int, ts timestamptz, amount numeric);
INSERT INTO hand VALUES (1, '2025-01-05', 10.5), (1, '2025-01-20', 5), (1, '2025-03-02', -2.25),
    (2, '2025-02-01', 100), (3, '2025-02-27', 1), (3, '2025-03-01', NULL),
    (NULL, '2025-01-01', 7), (4, NULL, 3);
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM hand', 'month', 4)$$,
                  $$VALUES ('2025-01-01'::date, 0, 1::bigint, 1::bigint, 1.0000, 15.50, 15.50),
                           ('2025-01-01', 1, 1, 0, 0.0000, 0.00, 15.50),
                           ('2025-01-01', 2, 1, 1, 1.0000, -2.25, 13.25),
                           ('2025-02-01', 0, 2, 2, 1.0000, 101.00, 50.50),
                           ('2025-02-01', 1, 2, 1, 0.5000, 0.00, 50.50)$$,
                  'hand-worked: a refund is net revenue and activity, NULL entity / ts rows are skipped, young cohort stops at March');
SELECT results_eq($$SELECT period_start, customers_start, new_customers, active_customers, retained, churned, churn_rate,
                           retention_rate, orders, revenue, repeat_customers, repeat_purchase_rate, aov
                      FROM crm.retention_metrics('SELECT e, ts, amount FROM hand')$$,
                  $$VALUES ('2025-01-01'::date, 0::bigint, 1::bigint, 1::bigint, 0::bigint, 0::bigint, NULL::numeric, NULL::numeric, 2::bigint, 15.50, 1::bigint, 1.0000, 7.75),
                           ('2025-02-01', 1, 2, 2, 0, 1, 1.0000, 0.0000, 2, 101.00, 0, 0.0000, 50.50),
                           ('2025-03-01', 2, 0, 2, 1, 1, 0.5000, 1.0000, 2, -2.25, 2, 1.0000, -1.13)$$,
                  'hand-worked metrics: S, N, E, churn, (E-N)/S, repeat rate, AOV');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM hand', 'month', 4)$$,
                  $$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM hand WHERE e IS NOT NULL AND ts IS NOT NULL', 'month', 4)$$,
                  'rows with a NULL entity or ts are skipped');
SELECT is((SELECT count(*) FROM crm.cohort_retention('SELECT e, ts, amount FROM hand WHERE false')), 0::bigint,
          'an empty inner query: no rows');

-- ---- as_of: report up to the period holding as_of -----------------------------
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM hand', 'month', 4, '2025-02-15')$$,
                  $$VALUES ('2025-01-01'::date, 0, 1::bigint, 1::bigint, 1.0000, 15.50, 15.50),
                           ('2025-01-01', 1, 1, 0, 0.0000, 0.00, 15.50),
                           ('2025-02-01', 0, 2, 2, 1.0000, 101.00, 50.50)$$,
                  'hand-worked, as_of in February: the March refund is ignored, no March rows');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM hand', 'month', 4, '2025-05-10')$$,
                  $$VALUES ('2025-01-01'::date, 0, 1::bigint, 1::bigint, 1.0000, 15.50, 15.50),
                           ('2025-01-01', 1, 1, 0, 0.0000, 0.00, 15.50),
                           ('2025-01-01', 2, 1, 1, 1.0000, -2.25, 13.25),
                           ('2025-01-01', 3, 1, 0, 0.0000, 0.00, 13.25),
                           ('2025-02-01', 0, 2, 2, 1.0000, 101.00, 50.50),
                           ('2025-02-01', 1, 2, 1, 0.5000, 0.00, 50.50),
                           ('2025-02-01', 2, 2, 0, 0.0000, 0.00, 50.50),
                           ('2025-02-01', 3, 2, 0, 0.0000, 0.00, 50.50)$$,
                  'hand-worked, as_of in May: empty April and May are reported');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM hand', 'month', 4, NULL)$$,
                  $$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM hand', 'month', 4)$$,
                  'as_of NULL: up to the last period with an event');
CREATE TEMP TABLE src_all AS SELECT * FROM src;
DELETE FROM src WHERE ts >= '2025-07-01';
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src_all', 'month', 12, '2025-06-15') ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'demo, as_of 2025-06-15: equals the plain SQL over the orders before July');
SELECT results_eq($$SELECT pg_temp.pidx(period_start, 'month'), customers_start, new_customers, active_customers, retained, churned,
                           churn_rate, retention_rate, orders, revenue, repeat_customers, repeat_purchase_rate, aov
                      FROM crm.retention_metrics('SELECT e, ts, amount FROM src_all', 'month', '2025-06-15') ORDER BY 1$$,
                  $$SELECT * FROM pg_temp.ref_metrics('month') ORDER BY 1$$,
                  'demo, retention_metrics as_of 2025-06-15: equals the plain SQL over the orders before July');
INSERT INTO src SELECT * FROM src_all WHERE ts >= '2025-07-01';

-- ---- the two-pass method (crm_analytics.cohort_two_pass) and its fallbacks ----
-- integer entities read the inner query twice; other entities, more than 64
-- periods, too little memory or a second run that differs from the first
-- take the aggregate path: every case must equal the plain SQL
SET LOCAL crm_analytics.cohort_two_pass = off;
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'month', 12) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'cohort_two_pass off (serial aggregate path): equals the plain SQL');
RESET crm_analytics.cohort_two_pass;
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e::text, ts, amount FROM src', 'month', 12) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'text entity (aggregate path): equals the plain SQL');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e::int, ts, amount FROM src', 'week', 64) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('week', 64) ORDER BY 1, 2$$,
                  'int4 entity, 64 weekly periods (two passes): equals the plain SQL');
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'week', 65) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('week', 65) ORDER BY 1, 2$$,
                  '65 weekly periods (aggregate path): equals the plain SQL');
CREATE TEMP TABLE src_keep AS SELECT * FROM src;
UPDATE src SET e = e % 97;
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e::smallint, ts, amount FROM src', 'month', 12) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'int2 entity (97 entities with many orders each): equals the plain SQL');
DELETE FROM src; INSERT INTO src SELECT * FROM src_keep;
SET LOCAL work_mem = '64kB'; SET LOCAL hash_mem_multiplier = 1;
SELECT results_eq($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src', 'month', 12) ORDER BY 1, 2$$,
                  $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'work_mem 64kB: the table of entities does not fit, the aggregate path answers the same');
RESET work_mem; RESET hash_mem_multiplier;
-- a second run that differs from the first: each run of these inner queries
-- takes the next value of a sequence; the report answers for its last run
CREATE TEMP SEQUENCE tp_seq;
CREATE TEMP TABLE tp_res AS
SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src WHERE e <= 40 * (SELECT nextval(''tp_seq''))', 'month', 12);
DELETE FROM src WHERE e > 40 * currval('tp_seq');
SELECT results_eq($$SELECT * FROM tp_res ORDER BY 1, 2$$, $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'more entities in the second run (rows added between the runs): the answer of the last run');
DELETE FROM src; INSERT INTO src SELECT * FROM src_keep;
DROP TABLE tp_res;
CREATE TEMP TABLE tp_res AS
SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM src WHERE e > 40 * (SELECT nextval(''tp_seq''))', 'month', 12);
DELETE FROM src WHERE e <= 40 * currval('tp_seq');
SELECT results_eq($$SELECT * FROM tp_res ORDER BY 1, 2$$, $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'entities missing from the second run (rows deleted between the runs): the answer of the last run');
DELETE FROM src; INSERT INTO src SELECT * FROM src_keep;
DROP TABLE tp_res;
CREATE TEMP TABLE tp_res AS
SELECT * FROM crm.cohort_retention('SELECT e, ts - (SELECT nextval(''tp_seq'')) * interval ''45 days'', amount FROM src', 'month', 12);
UPDATE src SET ts = ts - currval('tp_seq') * interval '45 days';
SELECT results_eq($$SELECT * FROM tp_res ORDER BY 1, 2$$, $$SELECT * FROM pg_temp.ref_cohorts('month', 12) ORDER BY 1, 2$$,
                  'events earlier than their cohort in the second run: the answer of the last run');
DELETE FROM src; INSERT INTO src SELECT * FROM src_keep;
-- the same entities and cohorts but a different latest period (it bounds the young cohorts)
CREATE TEMP TABLE tp_ev (id int, e bigint, ts timestamptz, amount numeric);
INSERT INTO tp_ev VALUES (1, 1, '2025-01-10', 10), (2, 1, '2025-01-20', 5), (3, 1, '2025-03-10', 7);
SELECT setval('tp_seq', 1, false);
SELECT results_eq($$SELECT period_no, active, revenue FROM crm.cohort_retention(
                        'SELECT e, ts, amount FROM tp_ev WHERE (SELECT nextval(''tp_seq'')) = 1 OR ts < ''2025-02-01''', 'month', 6)$$,
                  $$VALUES (0, 1::bigint, 15::numeric)$$,
                  'a later event gone in the second run: the answer of the last run');
SELECT setval('tp_seq', 1, false);
SELECT results_eq($$SELECT period_no, active, revenue FROM crm.cohort_retention(
                        'SELECT e, ts, amount FROM tp_ev WHERE (SELECT nextval(''tp_seq'')) >= 2 OR id = 1', 'month', 6)$$,
                  $$VALUES (0, 1::bigint, 15::numeric), (1, 0::bigint, 0::numeric), (2, 1::bigint, 7::numeric)$$,
                  'a later event added in the second run: the answer of the last run');
-- the revenue's scale is the largest amount scale of the reported entities,
-- counting their amounts after as_of (as the per-entity state does)
CREATE TEMP TABLE scales (e bigint, ts timestamptz, amount numeric);
INSERT INTO scales VALUES (1, '2025-01-10', 10.5), (1, '2025-03-10', 1.255), (2, '2025-03-20', 7.12345);
SELECT is((SELECT array_agg(revenue::text ORDER BY period_no)
             FROM crm.cohort_retention('SELECT e, ts, amount FROM scales', 'month', 4, '2025-02-15')),
          '{10.500,0.000}', 'as_of: an amount after as_of still sets the scale (two passes)');
SET LOCAL crm_analytics.cohort_two_pass = off;
SELECT is((SELECT array_agg(revenue::text ORDER BY period_no)
             FROM crm.cohort_retention('SELECT e, ts, amount FROM scales', 'month', 4, '2025-02-15')),
          '{10.500,0.000}', 'as_of: the same scale on the aggregate path');
RESET crm_analytics.cohort_two_pass;
SELECT throws_ok($$SET crm_analytics.cohort_two_pas = off$$, '42602', NULL, 'the crm_analytics. settings prefix is reserved: a misspelt setting is an error');

-- ---- bad input ---------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts FROM hand', 'fortnight')$$, '22023', 'unknown period "fortnight"', 'unknown period: 22023');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts FROM hand', 'month', 0)$$, '22023', NULL, 'periods = 0: 22023');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts FROM hand', 'month', -3)$$, '22023', NULL, 'periods < 0: 22023');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts FROM hand', 'month', 1001)$$, '22023', NULL, 'periods > 1000: 22023');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts FROM hand', 'month', NULL)$$, '22004', NULL, 'NULL periods: 22004');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts FROM hand', NULL)$$, '22004', NULL, 'NULL period: 22004');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention(NULL)$$, '22004', NULL, 'NULL inner query: 22004');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, amount FROM hand')$$, '42804', NULL, 'inner query with a numeric ts: 42804');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e FROM hand')$$, '42804', NULL, 'inner query with one column: 42804');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount, 1 FROM hand')$$, '42804', NULL, 'inner query with four columns: 42804');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts, ''x''::text FROM hand')$$, '42804', NULL, 'inner query with a text amount: 42804');
SELECT throws_ok($$SELECT * FROM crm.retention_metrics('SELECT e, ts FROM hand', 'decade')$$, '22023', NULL, 'retention_metrics, unknown period: 22023');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT 1, ''infinity''::timestamptz, 1.0')$$, '22008', NULL, 'an infinite timestamp: 22008');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT 1, now(), ''NaN''::numeric')$$, '22023', NULL, 'a NaN amount: 22023');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT 1, now(), 1e40::numeric')$$, '22003', NULL, 'an amount beyond the exact range: 22003');
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT 1, now(), 1::numeric / 3 ^ 40')$$, '22003', NULL, 'an amount with too many decimals: 22003');
SELECT throws_ok($$SELECT crm.cohort_activity(ts, 1, CASE WHEN ts > '2025-02-01' THEN 'week' ELSE 'month' END) FROM hand$$,
                 '22023', NULL, 'two periods in one group: 22023');
SELECT throws_ok($$SELECT 'month;2025-01-02,1,1'::crm.cohort_activity_state$$, '22P02', NULL, 'state text: not a period start: 22P02');
SELECT throws_ok($$SELECT 'month;2025-02-01,1,1;2025-01-01,1,1'::crm.cohort_activity_state$$, '22P02', NULL, 'state text: periods out of order: 22P02');
SELECT throws_ok($$SELECT 'month;2025-01-01,0,1'::crm.cohort_activity_state$$, '22P02', NULL, 'state text: zero orders: 22P02');
SELECT throws_ok($$SELECT 'month;2025-01-01,1,1.5;2025-02-01,1,2'::crm.cohort_activity_state$$, '22P02', NULL, 'state text: mixed scales: 22P02');
SELECT throws_ok($$SELECT 'fortnight;2025-01-01,1,1'::crm.cohort_activity_state$$, '22P02', NULL, 'state text: unknown period: 22P02');

-- rows with a NULL entity are skipped before aggregation: their ts and amount are never looked at
SELECT is((SELECT count(*) FROM crm.cohort_retention($q$SELECT * FROM (VALUES (1, '2025-01-05'::timestamptz, 10::numeric), (NULL, 'infinity', 5)) v$q$, 'month', 3)),
          1::bigint, 'a NULL-entity row with an infinite ts is skipped, not an error');
SELECT is((SELECT sum(revenue) FROM crm.cohort_retention($q$SELECT * FROM (VALUES (1, '2025-01-05'::timestamptz, 10::numeric), (NULL, '2025-01-05', 'NaN')) v$q$, 'month', 3)),
          10::numeric, 'a NULL-entity row with a NaN amount is skipped, not an error');
SELECT is((SELECT sum(active_customers) FROM crm.retention_metrics($q$SELECT * FROM (VALUES (1, '2025-01-05'::timestamptz), (NULL, 'infinity')) v$q$, 'month')),
          1::numeric, 'retention_metrics skips a NULL-entity row too');

SELECT * FROM finish();
ROLLBACK;
