-- classes: crm.xyz_class, the crm.demand_cv aggregate (serial, parallel,
-- state round trip, malformed states) and crm.abc_xyz_report on the demo data.
BEGIN;
SELECT plan(44);

-- ---- xyz_class -------------------------------------------------------------------
SELECT results_eq(
  $$SELECT crm.xyz_class(0), crm.xyz_class(0.10), crm.xyz_class(0.1000001), crm.xyz_class(0.25), crm.xyz_class(0.2500001), crm.xyz_class(7)$$,
  $$VALUES ('X', 'X', 'Y', 'Y', 'Z', 'Z')$$,
  'xyz_class: X if cv <= 0.10, Y if cv <= 0.25, else Z');
SELECT results_eq(
  $$SELECT crm.xyz_class(0.3, 0.3, 0.5), crm.xyz_class(0.4, 0.3, 0.5), crm.xyz_class(0.6, 0.3, 0.5), crm.xyz_class(0.3, 0.3, 0.3), crm.xyz_class('Infinity')$$,
  $$VALUES ('X', 'Y', 'Z', 'X', 'Z')$$,
  'xyz_class: custom thresholds, x = y, infinite cv is Z');
SELECT is(crm.xyz_class(NULL), NULL, 'xyz_class: NULL cv gives NULL');
SELECT throws_ok($$SELECT crm.xyz_class(-0.1)$$, '22023',
  'coefficient of variation must be a non-negative number, got -0.1', 'xyz_class: negative cv is an error');
SELECT throws_ok($$SELECT crm.xyz_class('NaN')$$, '22023',
  'coefficient of variation must be a non-negative number, got NaN', 'xyz_class: NaN cv is an error');
SELECT throws_ok($$SELECT crm.xyz_class(0.1, 0.3, 0.2)$$, '22023',
  'threshold x (0.3) must not exceed threshold y (0.2)', 'xyz_class: x > y is an error');
SELECT throws_ok($$SELECT crm.xyz_class(0.1, -0.1, 0.2)$$, '22023',
  'thresholds must be finite and non-negative, got x = -0.1, y = 0.2', 'xyz_class: negative x is an error');

-- ---- demand_cv: hand-worked cases ---------------------------------------------
-- periods 4, sums [2,0,2,0]: mean 1, population sd 1 -> cv 1
SELECT is((SELECT crm.demand_cv(q, p, 4) FROM (VALUES (1.0, 1), (1, 1), (2, 3)) t(q, p)), 1::float8,
  'demand_cv: [2,0,2,0] -> 1 (empty periods count as 0)');
SELECT is((SELECT crm.demand_cv(q, p, 3) FROM (VALUES (3, 1), (3, 2), (3, 3)) t(q, p)), 0::float8,
  'demand_cv: constant demand -> 0');
-- [0,0,6]: mean 2, var (4+4+16)/3 = 8, sd 2*sqrt(2) -> cv sqrt(2)
SELECT ok(abs((SELECT crm.demand_cv(6, 3, 3)) - sqrt(2::float8)) < 1e-15, 'demand_cv: [0,0,6] -> sqrt(2)');
SELECT is((SELECT crm.demand_cv(q, p, 2) FROM (VALUES (5, 1), (-5, 2)) t(q, p)), NULL, 'demand_cv: mean 0 -> NULL');
SELECT is((SELECT crm.demand_cv(q, p, 2) FROM (VALUES (-5, 1)) t(q, p)), NULL, 'demand_cv: negative mean -> NULL');
SELECT is((SELECT crm.demand_cv(q, p, 2) FROM (VALUES (NULL::float8, 1), (4, NULL)) t(q, p)), NULL, 'demand_cv: only NULL rows -> NULL');
SELECT is((SELECT crm.demand_cv(q, p, 2) FROM (VALUES (NULL::float8, 1), (4, 1)) t(q, p)), 1::float8, 'demand_cv: NULL rows are ignored ([4,0] -> 1)');
SELECT is((SELECT crm.demand_cv(q, p, 1) FROM (VALUES (4, 1), (1, 1)) t(q, p)), 0::float8, 'demand_cv: one period -> 0');
SELECT is((SELECT crm.demand_cv(q, p, 2) FROM (VALUES (4, 1)) t(q, p) WHERE false), NULL, 'demand_cv: no rows -> NULL');

-- ---- demand_cv vs plain SQL (grid of periods filled with zeros) ------------------
CREATE TABLE public.classes_dq AS
SELECT (crm._demo_random(7, 1, i) * 50)::int AS item,
       1 + (crm._demo_random(7, 2, i) * crm._demo_random(7, 2, i) * 24)::int % 24 AS period_no,
       round((crm._demo_random(7, 3, i) * 10)::numeric)::int AS qty
  FROM generate_series(1, 20000) i;
ALTER TABLE classes_dq SET (parallel_workers = 2);
ANALYZE classes_dq;
CREATE TEMP VIEW dq_ref AS
SELECT g.item, CASE WHEN avg(coalesce(s.q, 0)) > 0 THEN stddev_pop(coalesce(s.q, 0)) / avg(coalesce(s.q, 0)) END AS cv
  FROM (SELECT DISTINCT item FROM classes_dq) g CROSS JOIN generate_series(1, 24) p
  LEFT JOIN (SELECT item, period_no, sum(qty) AS q FROM classes_dq GROUP BY 1, 2) s ON s.item = g.item AND s.period_no = p
 GROUP BY g.item;
SELECT results_eq(
  $$SELECT item, round(crm.demand_cv(qty, period_no, 24)::numeric, 12) FROM classes_dq GROUP BY item ORDER BY item$$,
  $$SELECT item, round(cv, 12) FROM dq_ref ORDER BY item$$,
  'demand_cv equals stddev_pop / avg over the zero-filled period grid (51 items, 24 periods)');
CREATE TEMP TABLE dq_serial AS SELECT item, crm.demand_cv(qty, period_no, 24) AS cv FROM classes_dq GROUP BY item;
CREATE TEMP TABLE dq_total_serial AS SELECT crm.demand_cv(qty, period_no, 24) AS cv FROM classes_dq;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
CREATE TEMP TABLE dq_plan(line text);
DO $$ DECLARE l text; BEGIN
  FOR l IN EXPLAIN (COSTS OFF) SELECT crm.demand_cv(qty, period_no, 24) FROM classes_dq LOOP INSERT INTO dq_plan VALUES (l); END LOOP;
END $$;
SELECT ok((SELECT bool_or(line ~ 'Partial Aggregate') FROM dq_plan), 'demand_cv: the parallel plan has a Partial Aggregate');
SELECT results_eq(
  $$SELECT crm.demand_cv(qty, period_no, 24) FROM classes_dq$$,
  $$SELECT cv FROM dq_total_serial$$,
  'demand_cv: forced-parallel result equals the serial one');
DELETE FROM dq_plan;
DO $$ DECLARE l text; BEGIN
  FOR l IN EXPLAIN (COSTS OFF) SELECT item, crm.demand_cv(qty, period_no, 24) FROM classes_dq GROUP BY item LOOP INSERT INTO dq_plan VALUES (l); END LOOP;
END $$;
SELECT ok((SELECT bool_or(line ~ 'Partial') FROM dq_plan), 'demand_cv GROUP BY: the parallel plan has a partial aggregate');
SELECT results_eq(
  $$SELECT item, crm.demand_cv(qty, period_no, 24) FROM classes_dq GROUP BY item ORDER BY item$$,
  $$SELECT item, cv FROM dq_serial ORDER BY item$$,
  'demand_cv GROUP BY: forced-parallel results equal the serial ones');
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- ---- the state type ------------------------------------------------------------------
CREATE AGGREGATE pg_temp.cv_state(float8, int, int) (SFUNC = crm.demand_cv_transfn, STYPE = crm.demand_cv_state);
SELECT is((SELECT pg_temp.cv_state(q, p, 5)::text FROM (VALUES (1.5, 1), (0.1, 4), (0.2, 4), (-2, 5)) t(q, p)),
  '5:1.5,0,0,0.30000000000000004,-2', 'state text form: periods and per-period float8 sums, shortest exact');
SELECT is((SELECT count(*)::int FROM (SELECT item, pg_temp.cv_state(qty, period_no, 24) AS s FROM classes_dq GROUP BY item) x
            WHERE s::text::crm.demand_cv_state::text = s::text), 51, 'state text form round-trips exactly (51 states)');
SELECT results_eq(
  $$SELECT item, crm.demand_cv_finalfn(pg_temp.cv_state(qty, period_no, 24)::text::crm.demand_cv_state) FROM classes_dq GROUP BY item ORDER BY item$$,
  $$SELECT item, cv FROM dq_serial ORDER BY item$$,
  'final function on a round-tripped state gives the aggregate''s result');
SELECT throws_ok($$SELECT '0:'::crm.demand_cv_state$$, '22P02', NULL, 'state input: 0 periods is an error');
SELECT throws_ok($$SELECT '10001:0'::crm.demand_cv_state$$, '22P02', NULL, 'state input: too many periods is an error');
SELECT throws_ok($$SELECT '3:1,2'::crm.demand_cv_state$$, '22P02', NULL, 'state input: too few sums is an error');
SELECT throws_ok($$SELECT '3:1,2,3,4'::crm.demand_cv_state$$, '22P02', NULL, 'state input: too many sums is an error');
SELECT throws_ok($$SELECT '2:1,NaN'::crm.demand_cv_state$$, '22P02', NULL, 'state input: NaN sum is an error');
SELECT throws_ok($$SELECT '2:1,1e999'::crm.demand_cv_state$$, '22P02', NULL, 'state input: overflowing sum is an error');
SELECT throws_ok($$SELECT 'x'::crm.demand_cv_state$$, '22P02', NULL, 'state input: garbage is an error');
SELECT throws_ok($$SELECT '99999999999999999999:1'::crm.demand_cv_state$$, '22P02', NULL, 'state input: huge count is an error');

-- ---- demand_cv bad input ----------------------------------------------------------------
SELECT throws_ok($$SELECT crm.demand_cv(1, 1, 0)$$, '22023', 'periods must be at least 1, got 0', 'demand_cv: 0 periods is an error');
SELECT throws_ok($$SELECT crm.demand_cv(1, 1, 10001)$$, '54000', 'at most 10000 periods are supported, got 10001', 'demand_cv: too many periods is an error');
SELECT throws_ok($$SELECT crm.demand_cv(1, 1, NULL)$$, '22004', 'periods must not be null', 'demand_cv: NULL periods is an error');
SELECT throws_ok($$SELECT crm.demand_cv(1, 13, 12)$$, '22023', 'period_no must be between 1 and 12, got 13', 'demand_cv: period_no past the range is an error');
SELECT throws_ok($$SELECT crm.demand_cv(1, 0, 12)$$, '22023', 'period_no must be between 1 and 12, got 0', 'demand_cv: period_no 0 is an error');
SELECT throws_ok($$SELECT crm.demand_cv('NaN', 1, 12)$$, '22023', 'quantity must be finite, got NaN', 'demand_cv: NaN quantity is an error');
SELECT throws_ok($$SELECT crm.demand_cv(q, 1, p) FROM (VALUES (1, 12), (1, 6)) t(q, p)$$, '22023',
  'periods must be the same on every row, got 12 and 6', 'demand_cv: varying periods is an error');

-- ---- abc_xyz_report on the demo data vs plain SQL ----------------------------------------
CREATE TEMP TABLE axr_ref AS
WITH per AS (
  SELECT product_id, sum(amount) AS revenue FROM crm_demo.orders
   WHERE ordered_at >= '2025-01-01' AND ordered_at < '2026-01-01' GROUP BY product_id
), grid AS (
  SELECT p.product_id, m, coalesce(sum(o.quantity), 0) AS q
    FROM per p CROSS JOIN generate_series(1, 12) m
    LEFT JOIN crm_demo.orders o ON o.product_id = p.product_id AND o.ordered_at >= '2025-01-01' AND o.ordered_at < '2026-01-01'
                               AND extract(month FROM o.ordered_at) = m
   GROUP BY 1, 2
), cvs AS (
  SELECT product_id, CASE WHEN avg(q) > 0 THEN stddev_pop(q) / avg(q) END AS cv FROM grid GROUP BY 1
), s AS (
  SELECT per.*, cvs.cv,
         coalesce(sum(revenue) OVER (ORDER BY revenue DESC RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP), 0) / sum(revenue) OVER () AS above,
         sum(revenue) OVER (ORDER BY revenue DESC, product_id ROWS UNBOUNDED PRECEDING) / sum(revenue) OVER () AS cum,
         revenue / sum(revenue) OVER () AS share
    FROM per JOIN cvs USING (product_id)
)
SELECT product_id::text AS item, revenue, round(share, 6) AS share, round(cum, 6) AS cum,
       CASE WHEN above < 0.8 THEN 'A' WHEN above < 0.95 THEN 'B' ELSE 'C' END AS abc, 12 AS periods,
       round(cv, 9) AS cv,
       CASE WHEN cv <= 0.10 THEN 'X' WHEN cv <= 0.25 THEN 'Y' ELSE 'Z' END AS xyz
  FROM s;
SELECT results_eq(
  $$SELECT item, revenue, share, cumulative_share, abc, periods, round(cv::numeric, 9), xyz, abc_xyz
      FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2025-01-01', '2026-01-01')$$,
  $$SELECT *, abc || xyz FROM axr_ref ORDER BY revenue DESC, item::int$$,
  'abc_xyz_report equals the plain-SQL ABC-XYZ of the demo products over the 12 months of 2025');
SELECT ok((SELECT count(DISTINCT abc) = 3 AND count(cv) = count(*) FROM axr_ref), 'the demo products span A, B and C, every product has a CV');
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2025-01-01', '2026-01-01', 'fortnight')$$,
  '22023', 'unknown period "fortnight"', 'abc_xyz_report: unknown period is an error');
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2026-01-01', '2025-01-01')$$,
  '22023', NULL, 'abc_xyz_report: from after to is an error');
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, amount FROM crm_demo.orders', '2025-01-01', '2026-01-01')$$,
  '42804', 'inner query returns 3 columns, expected (item, sold_at timestamptz, quantity numeric, revenue numeric)', 'abc_xyz_report: missing column is an error');
SELECT * FROM finish();
ROLLBACK;
