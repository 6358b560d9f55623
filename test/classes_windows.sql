-- classes: crm.abc_class and crm.quantile_score window functions against
-- hand-worked cases and independent plain-SQL computations.
BEGIN;
SELECT plan(44);

-- ---- abc_class: hand-worked cases ---------------------------------------------
-- total of positive values 50+30+15+15+5 = 115; s = share held by strictly greater values:
-- 50: 0 -> A; 30: 50/115 = .435 -> A; 15: 80/115 = .696 -> A (both); 5: 110/115 = .957 -> C
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER () FROM (VALUES (1, 50.0), (2, 30), (3, 15), (4, 15), (5, 5), (6, NULL), (7, 0), (8, -3)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'A'), (3, 'A'), (4, 'A'), (5, 'C'), (6, NULL), (7, 'C'), (8, 'C')$$,
  'abc_class: ties share a class, non-positive -> C, NULL -> NULL');
-- exact boundaries: 0.15 has s = 0.80 exactly -> not < 0.80 -> B; 0.05 has s = 0.95 -> C
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER () FROM (VALUES (1, 0.80), (2, 0.15), (3, 0.05)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'B'), (3, 'C')$$,
  'abc_class: s exactly a -> B, s exactly b -> C (decimal values)');
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER () FROM (VALUES (1, 80), (2, 15), (3, 5)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'B'), (3, 'C')$$,
  'abc_class: s exactly a -> B, s exactly b -> C (integers)');
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER () FROM (VALUES (1, 0.4), (2, 0.4), (3, 0.1), (4, 0.1)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'A'), (3, 'B'), (4, 'B')$$,
  'abc_class: tied values at an exact boundary share B');
-- the item that crosses a threshold keeps the class it started in: 20 starts at 0.70 (< 0.80) and ends at 0.90
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER () FROM (VALUES (1, 70), (2, 20), (3, 10)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'A'), (3, 'B')$$,
  'abc_class: the crossing item keeps its class');
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER () FROM (VALUES (1, 99), (2, 1)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'C')$$,
  'abc_class: the largest value is always A');
SELECT results_eq(
  $$SELECT id, crm.abc_class(v, 0.5, 0.5) OVER () FROM (VALUES (1, 40), (2, 30), (3, 20), (4, 10)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'A'), (3, 'C'), (4, 'C')$$,
  'abc_class: a = b leaves no B');
SELECT results_eq(
  $$SELECT id, crm.abc_class(v, 1, 1) OVER () FROM (VALUES (1, 40), (2, 0.001), (3, 0)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'A'), (3, 'C')$$,
  'abc_class: a = b = 1 makes every positive value A');
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER (PARTITION BY g ORDER BY id) FROM (VALUES (1, 1, NULL::float8), (2, 1, NULL), (3, 2, 0), (4, 2, -1), (5, 3, 7)) t(id, g, v) ORDER BY id$$,
  $$VALUES (1, NULL), (2, NULL), (3, 'C'), (4, 'C'), (5, 'A')$$,
  'abc_class: all-NULL and all-non-positive partitions, ORDER BY in OVER does not matter');
SELECT results_eq(
  $$SELECT id, crm.abc_class(v, t, 0.95) OVER () FROM (VALUES (1, 50, 0.3), (2, 30, 0.3), (3, 20, 0.9)) t(id, v, t) ORDER BY id$$,
  $$VALUES (1, 'A'), (2, 'B'), (3, 'A')$$,
  'abc_class: thresholds are read per row');

-- ---- abc_class vs plain SQL (numeric, exact) on partitions with ties ---------
CREATE TEMP TABLE cw AS
SELECT i AS id, i % 7 AS g,
       CASE WHEN crm._demo_random(5, 1, i) < 0.05 THEN NULL
            ELSE round((crm._demo_random(5, 2, i) * 100)::numeric - 10) END AS v,
       round((crm._demo_random(5, 3, i) ^ 3 * 1000)::numeric, 2) AS w
  FROM generate_series(1, 2000) i;
CREATE TEMP VIEW cw_abc_ref AS
SELECT id, g, v,
       CASE WHEN v IS NULL THEN NULL
            WHEN v <= 0 THEN 'C'
            WHEN coalesce((SELECT sum(x.v) FROM cw x WHERE x.g = cw.g AND x.v > cw.v), 0)
                 / (SELECT sum(x.v) FROM cw x WHERE x.g = cw.g AND x.v > 0) < 0.80 THEN 'A'
            WHEN coalesce((SELECT sum(x.v) FROM cw x WHERE x.g = cw.g AND x.v > cw.v), 0)
                 / (SELECT sum(x.v) FROM cw x WHERE x.g = cw.g AND x.v > 0) < 0.95 THEN 'B'
            ELSE 'C' END AS cls
  FROM cw;
SELECT results_eq(
  $$SELECT id, crm.abc_class(v) OVER (PARTITION BY g) FROM cw ORDER BY id$$,
  $$SELECT id, cls FROM cw_abc_ref ORDER BY id$$,
  'abc_class equals the plain-SQL definition (7 partitions, integer values with many ties, NULLs, negatives)');
SELECT ok((SELECT count(DISTINCT cls) FROM cw_abc_ref WHERE cls IS NOT NULL) = 3, 'the reference data has all three classes');
SELECT results_eq(
  $$SELECT id, crm.abc_class(w, 0.5, 0.9) OVER (PARTITION BY g) FROM cw ORDER BY id$$,
  $$SELECT id, CASE WHEN w <= 0 THEN 'C'
                    WHEN coalesce((SELECT sum(x.w) FROM cw x WHERE x.g = cw.g AND x.w > cw.w), 0)
                         / (SELECT sum(x.w) FROM cw x WHERE x.g = cw.g AND x.w > 0) < 0.5 THEN 'A'
                    WHEN coalesce((SELECT sum(x.w) FROM cw x WHERE x.g = cw.g AND x.w > cw.w), 0)
                         / (SELECT sum(x.w) FROM cw x WHERE x.g = cw.g AND x.w > 0) < 0.9 THEN 'B'
                    ELSE 'C' END
      FROM cw ORDER BY id$$,
  'abc_class equals the plain-SQL definition (skewed 2-decimal values, a = 0.5, b = 0.9)');

-- ---- quantile_score: hand-worked cases ---------------------------------------
-- n = 7 non-NULL values; score = 1 + floor(5 * below / 7)
-- 50: below 6 -> 5; 30: below 5 -> 4; 15,15: below 3 -> 3; 5: below 2 -> 2; 0: below 1 -> 1; -3: below 0 -> 1
SELECT results_eq(
  $$SELECT id, crm.quantile_score(v) OVER () FROM (VALUES (1, 50.0), (2, 30), (3, 15), (4, 15), (5, 5), (6, NULL), (7, 0), (8, -3)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 5), (2, 4), (3, 3), (4, 3), (5, 2), (6, NULL), (7, 1), (8, 1)$$,
  'quantile_score: hand-worked case with ties and NULL');
-- 10 distinct values, 5 buckets: exactly two per score, like ntile
SELECT results_eq(
  $$SELECT i, crm.quantile_score(i) OVER () FROM generate_series(1, 10) i ORDER BY i$$,
  $$VALUES (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3), (7, 4), (8, 4), (9, 5), (10, 5)$$,
  'quantile_score: 10 distinct values in quintiles');
-- a tie group takes the score of its lowest member: 1,1,1,1,1,1,2,3,4,5 -> below 0 for the ones
SELECT results_eq(
  $$SELECT id, crm.quantile_score(v) OVER () FROM (VALUES (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 2), (8, 3), (9, 4), (10, 5)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 4), (8, 4), (9, 5), (10, 5)$$,
  'quantile_score: a large tie group at the bottom shares score 1 (one-time buyers get F = 1)');
SELECT results_eq(
  $$SELECT id, crm.quantile_score(v, 1) OVER (), crm.quantile_score(v, 1000) OVER () FROM (VALUES (1, 3), (2, 1), (3, 2)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 1, 667), (2, 1, 1), (3, 1, 334)$$,
  'quantile_score: 1 bucket -> all 1; 1000 buckets over 3 values -> 1, 334, 667');
SELECT results_eq(
  $$SELECT id, crm.quantile_score(v) OVER (PARTITION BY g ORDER BY v DESC) FROM (VALUES (1, 1, 7.0), (2, 2, NULL), (3, 2, 1), (4, 2, 1)) t(id, g, v) ORDER BY id$$,
  $$VALUES (1, 1), (2, NULL), (3, 1), (4, 1)$$,
  'quantile_score: one-row partition and all-tied partition score 1');
SELECT results_eq(
  $$SELECT id, crm.quantile_score(-v) OVER () FROM (VALUES (1, -0.0::float8), (2, 0.0::float8), (3, 1)) t(id, v) ORDER BY id$$,
  $$VALUES (1, 2), (2, 2), (3, 1)$$,
  'quantile_score: -0 and +0 tie');

-- ---- quantile_score vs plain SQL with the same tie rule ----------------------
SELECT results_eq(
  $$SELECT id, crm.quantile_score(v) OVER (PARTITION BY g), crm.quantile_score(w, 3) OVER (PARTITION BY g),
           crm.quantile_score(-v, 10) OVER (PARTITION BY g) FROM cw ORDER BY id$$,
  $$SELECT id,
           CASE WHEN v IS NOT NULL THEN 1 + (5 * (rank() OVER (PARTITION BY g ORDER BY v) - 1)) / count(v) OVER (PARTITION BY g) END::int,
           (1 + (3 * (rank() OVER (PARTITION BY g ORDER BY w) - 1)) / count(w) OVER (PARTITION BY g))::int,
           CASE WHEN v IS NOT NULL THEN 1 + (10 * (rank() OVER (PARTITION BY g ORDER BY -v) - 1)) / count(v) OVER (PARTITION BY g) END::int
      FROM cw ORDER BY id$$,
  'quantile_score equals 1 + floor(buckets * (rank - 1) / n) computed in plain SQL (7 partitions, ties, NULLs)');
SELECT results_eq(
  $$SELECT i, crm.quantile_score(crm._demo_random(5, 4, i)) OVER () FROM generate_series(1, 1000) i ORDER BY i$$,
  $$SELECT i, ntile(5) OVER (ORDER BY crm._demo_random(5, 4, i)) FROM generate_series(1, 1000) i ORDER BY i$$,
  'quantile_score equals ntile(5) on distinct values when n is a multiple of 5');

-- a partition larger than work_mem: the window's tuplestore spills to disk and is read back
SET LOCAL work_mem = '64kB';
CREATE TEMP TABLE cw_big_ref AS
WITH g AS (SELECT i % 997 AS v, sum(i % 997) AS sv FROM generate_series(1, 100000) i GROUP BY 1),
     s AS (SELECT v, coalesce(sum(sv) OVER (ORDER BY v DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                     / sum(sv) OVER () AS s FROM g)
SELECT v, CASE WHEN v <= 0 THEN 'C' WHEN s < 0.80 THEN 'A' WHEN s < 0.95 THEN 'B' ELSE 'C' END AS cls FROM s;
SELECT is((SELECT count(*)::int FROM (
             SELECT i % 997 AS v, crm.quantile_score(i % 997) OVER () AS q, crm.abc_class(i % 997) OVER () AS c,
                    (1 + 5 * (rank() OVER (ORDER BY i % 997) - 1) / count(*) OVER ())::int AS q_ref
               FROM generate_series(1, 100000) i) x JOIN cw_big_ref r USING (v)
            WHERE q IS DISTINCT FROM q_ref OR c IS DISTINCT FROM r.cls), 0,
  'quantile_score and abc_class on a 100,000-row partition spilled to disk (work_mem 64kB) equal plain SQL');
RESET work_mem;

-- ---- on the demo data (crm_demo.orders, loaded by the test runner) -----------
CREATE TEMP TABLE cw_rev AS
SELECT customer_id, sum(amount) AS revenue, count(*) AS orders FROM crm_demo.orders GROUP BY customer_id;
SELECT ok((SELECT count(*) FROM cw_rev) = 2000, 'demo data: 2000 customers with orders');
SELECT results_eq(
  $$SELECT customer_id, crm.abc_class(revenue) OVER () FROM cw_rev ORDER BY customer_id$$,
  $$SELECT customer_id,
           CASE WHEN coalesce(sum(revenue) OVER w, 0) / sum(revenue) OVER () < 0.80 THEN 'A'
                WHEN coalesce(sum(revenue) OVER w, 0) / sum(revenue) OVER () < 0.95 THEN 'B' ELSE 'C' END
      FROM cw_rev
    WINDOW w AS (ORDER BY revenue DESC RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP)
     ORDER BY customer_id$$,
  'demo data: ABC of customers by revenue equals the plain-SQL running sum of strictly larger revenues');
SELECT results_eq(
  $$SELECT customer_id, crm.quantile_score(orders) OVER (), crm.quantile_score(revenue) OVER () FROM cw_rev ORDER BY customer_id$$,
  $$SELECT customer_id, (1 + 5 * (rank() OVER (ORDER BY orders) - 1) / count(*) OVER ())::int,
           (1 + 5 * (rank() OVER (ORDER BY revenue) - 1) / count(*) OVER ())::int
      FROM cw_rev ORDER BY customer_id$$,
  'demo data: F and M quantile scores equal the plain-SQL rank formula');

-- ---- bad input ----------------------------------------------------------------
SELECT throws_ok($$SELECT crm.abc_class(v, 0, 0.95) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'thresholds must be in (0, 1], got a = 0, b = 0.95', 'abc_class: a = 0 is an error');
SELECT throws_ok($$SELECT crm.abc_class(v, 0.8, 1.5) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'thresholds must be in (0, 1], got a = 0.8, b = 1.5', 'abc_class: b > 1 is an error');
SELECT throws_ok($$SELECT crm.abc_class(v, -0.1, 0.5) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'thresholds must be in (0, 1], got a = -0.1, b = 0.5', 'abc_class: negative a is an error');
SELECT throws_ok($$SELECT crm.abc_class(v, 'NaN', 0.5) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'thresholds must be in (0, 1], got a = NaN, b = 0.5', 'abc_class: NaN threshold is an error');
SELECT throws_ok($$SELECT crm.abc_class(v, 0.9, 0.8) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'threshold a (0.9) must not exceed threshold b (0.8)', 'abc_class: a > b is an error');
SELECT throws_ok($$SELECT crm.abc_class(v, NULL, 0.8) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22004', 'thresholds must not be null', 'abc_class: NULL threshold is an error');
SELECT throws_ok($$SELECT crm.abc_class(v) OVER () FROM (VALUES (1.0::float8), ('NaN')) t(v)$$,
  '22023', 'value must be finite, got NaN', 'abc_class: NaN value is an error');
SELECT throws_ok($$SELECT crm.abc_class(v) OVER () FROM (VALUES (1.0::float8), ('Infinity')) t(v)$$,
  '22023', 'value must be finite, got Infinity', 'abc_class: infinite value is an error');
SELECT throws_ok($$SELECT crm.abc_class(v) OVER () FROM (VALUES (1.0::float8), ('-Infinity')) t(v)$$,
  '22023', 'value must be finite, got -Infinity', 'abc_class: -infinite value is an error');
SELECT throws_ok($$SELECT crm.quantile_score(v, 0) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'buckets must be between 1 and 1000, got 0', 'quantile_score: 0 buckets is an error');
SELECT throws_ok($$SELECT crm.quantile_score(v, 1001) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'buckets must be between 1 and 1000, got 1001', 'quantile_score: 1001 buckets is an error');
SELECT throws_ok($$SELECT crm.quantile_score(v, -5) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22023', 'buckets must be between 1 and 1000, got -5', 'quantile_score: negative buckets is an error');
SELECT throws_ok($$SELECT crm.quantile_score(v, NULL) OVER () FROM (VALUES (1.0)) t(v)$$,
  '22004', 'buckets must not be null', 'quantile_score: NULL buckets is an error');
SELECT throws_ok($$SELECT crm.quantile_score(v) OVER () FROM (VALUES ('NaN'::float8)) t(v)$$,
  '22023', 'value must be finite, got NaN', 'quantile_score: NaN value is an error');
SELECT throws_ok($$SELECT crm.quantile_score(v) OVER () FROM (VALUES ('-Infinity'::float8)) t(v)$$,
  '22023', 'value must be finite, got -Infinity', 'quantile_score: infinite value is an error');

-- ---- catalog properties ---------------------------------------------------------
SELECT ok((SELECT bool_and(prokind = 'w' AND provolatile = 'i' AND proparallel = 's')
             FROM pg_proc WHERE oid IN ('crm.abc_class(float8,float8,float8)'::regprocedure,
                                        'crm.quantile_score(float8,int)'::regprocedure)),
  'abc_class and quantile_score are immutable, parallel safe window functions');
SELECT is((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND prosecdef), 0, 'nothing is SECURITY DEFINER');
SELECT is((SELECT count(*)::int FROM pg_proc p WHERE pronamespace = 'crm'::regnamespace
             AND (proname ~ '^(abc_|quantile_|rfm_|xyz_|demand_cv)')
             AND obj_description(p.oid, 'pg_proc') IS NULL), 0, 'every classes function has a comment');
-- numeric and integer columns cast implicitly
SELECT results_eq(
  $$SELECT crm.abc_class(v) OVER (), crm.quantile_score(v) OVER () FROM (VALUES (5::bigint)) t(v)$$,
  $$VALUES ('A', 1)$$, 'integer input casts to float8');
SELECT * FROM finish();
ROLLBACK;
