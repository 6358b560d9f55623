-- pgTAP: exact revenue of the cohort functions through both ways of reading a
-- numeric (src/pg_numeric.c): the fast path, which reads numeric's stored form,
-- and the fallback through numeric_out (crm_analytics.numeric_fast_path = off).
-- Each is compared with plain SQL sums over the same rows, value and scale.
BEGIN;
SELECT plan(22);

-- amounts of every shape: scales 0 to 30 (one scale per group g), signs, up to
-- 35 significant digits, 1 to 9 base-10000 digits, trailing zero digits
CREATE TEMP TABLE amt AS
SELECT i, i % 31 AS g, i % 7 AS h,
       round(((hashint8(i)::numeric * hashint8(i + 7)) % (10::numeric ^ (35 - i % 31))) / (10::numeric ^ (i % 31)), i % 31) AS amount
  FROM generate_series(1, 3100) i;
-- a few fixed ones: zero at several scales, tiny, the largest that fits, round numbers
INSERT INTO amt(i, g, h, amount) VALUES
    (-1, 100, 0, 0), (-2, 100, 1, 0.000), (-3, 101, 2, 0.000000000000000000000000000001),
    (-4, 102, 3, 170141183460469231731687303715884105727), (-5, 103, 4, -170141183460469231731687303715884105727),
    (-6, 104, 5, 10000), (-7, 104, 6, 100000000.0000), (-8, 104, 0, 1.10), (-9, 104, 1, -0.5),
    (-10, 105, 2, 1e37), (-11, 106, 3, -9999.9999);
-- a mix of scales in one group: the state rescales as it goes (values small enough not to overflow)
CREATE TEMP TABLE amt_mixed AS
SELECT i, i % 7 AS h, round((hashint8(i) % 10000)::numeric / (10::numeric ^ (i % 31)), i % 31) AS amount
  FROM generate_series(1, 2000) i;

-- one row per group: the state's revenue as text (value and scale) and the plain SQL sum
CREATE FUNCTION pg_temp.by_state(mixed bool) RETURNS TABLE(g int, rev text) LANGUAGE sql AS $f$
    SELECT g, (SELECT p.revenue::text FROM crm.cohort_activity_periods(s) p)
      FROM (SELECT g, crm.cohort_activity(timestamptz '2025-06-01', amount, 'year') s FROM amt WHERE NOT mixed GROUP BY g
            UNION ALL
            SELECT h, crm.cohort_activity(timestamptz '2025-06-01', amount, 'year') FROM amt_mixed WHERE mixed GROUP BY h) q
$f$;
CREATE FUNCTION pg_temp.by_sql(mixed bool) RETURNS TABLE(g int, rev text) LANGUAGE sql AS $f$
    SELECT g, sum(amount)::text FROM amt WHERE NOT mixed GROUP BY g
    UNION ALL
    SELECT h, sum(amount)::text FROM amt_mixed WHERE mixed GROUP BY h
$f$;

SET LOCAL crm_analytics.numeric_fast_path = on;
SELECT set_eq('SELECT * FROM pg_temp.by_state(false)', 'SELECT * FROM pg_temp.by_sql(false)',
              'fast path: sums per scale 0..30 and fixed values equal plain SQL (value and scale)');
SELECT set_eq('SELECT * FROM pg_temp.by_state(true)', 'SELECT * FROM pg_temp.by_sql(true)',
              'fast path: mixed scales in one group equal plain SQL');
CREATE TEMP TABLE fast_rev AS SELECT * FROM pg_temp.by_state(false) UNION ALL SELECT * FROM pg_temp.by_state(true);
SELECT is((SELECT count(*) FROM fast_rev WHERE rev IS NOT NULL), 45::bigint, 'fast path: every group has a revenue');

SET LOCAL crm_analytics.numeric_fast_path = off;
SELECT set_eq('SELECT * FROM pg_temp.by_state(false)', 'SELECT * FROM pg_temp.by_sql(false)',
              'fallback: sums per scale 0..30 and fixed values equal plain SQL (value and scale)');
SELECT set_eq('SELECT * FROM pg_temp.by_state(true)', 'SELECT * FROM pg_temp.by_sql(true)',
              'fallback: mixed scales in one group equal plain SQL');
SELECT set_eq('SELECT * FROM pg_temp.by_state(false) UNION ALL SELECT * FROM pg_temp.by_state(true)',
              'SELECT * FROM fast_rev', 'fallback and fast path give the same states');

-- the report over float and numeric amounts, both ways, against plain SQL
CREATE TEMP TABLE fo AS SELECT i % 50 AS e, timestamptz '2025-01-01' + (i % 90) * interval '1 day' AS ts,
                               (hashint4(i) % 100000) / 100.0::float8 AS f, round((hashint4(i) % 100000) / 100.0, 2) AS n
                          FROM generate_series(1, 1000) i;
CREATE FUNCTION pg_temp.report_total(col text) RETURNS numeric LANGUAGE sql AS $f$
    SELECT sum(revenue) FROM crm.cohort_retention(pg_catalog.format('SELECT e, ts, %I FROM fo', col), 'month', 3)
$f$;
SELECT is(pg_temp.report_total('f'), (SELECT sum(f::numeric) FROM fo), 'fallback: float8 amounts in the report equal plain SQL');
SELECT is(pg_temp.report_total('n'), (SELECT sum(n) FROM fo), 'fallback: numeric amounts in the report equal plain SQL');
SET LOCAL crm_analytics.numeric_fast_path = on;
SELECT is(pg_temp.report_total('f'), (SELECT sum(f::numeric) FROM fo), 'fast path: float8 amounts in the report equal plain SQL');
SELECT is(pg_temp.report_total('n'), (SELECT sum(n) FROM fo), 'fast path: numeric amounts in the report equal plain SQL');

-- errors, the same both ways: not finite, too many decimals (short and long
-- stored form), beyond 128 bits (by digits, by weight)
CREATE FUNCTION pg_temp.one(a numeric) RETURNS text LANGUAGE sql AS $f$
    SELECT crm.cohort_activity(timestamptz '2025-06-01', a, 'year')::text
$f$;
SELECT throws_ok($$SELECT pg_temp.one('NaN')$$, '22023', 'amount must be a finite number', 'fast path: NaN: 22023');
SELECT throws_ok($$SELECT pg_temp.one('-Infinity')$$, '22023', 'amount must be a finite number', 'fast path: -Infinity: 22023');
SELECT throws_ok($$SELECT pg_temp.one(round(1, 31))$$, '22003', 'amount has 31 decimal places, the cohort functions keep at most 30',
                 'fast path: 31 decimals: 22003');
SELECT throws_ok($$SELECT pg_temp.one(round(1, 70))$$, '22003', 'amount has 70 decimal places, the cohort functions keep at most 30',
                 'fast path: 70 decimals (long stored form): 22003');
SELECT throws_ok($$SELECT pg_temp.one(170141183460469231731687303715884105728)$$, '22003', NULL, 'fast path: 2^127: 22003');
SELECT throws_ok($$SELECT pg_temp.one(1e300)$$, '22003', NULL, 'fast path: 1e300 (long stored form): 22003');
SET LOCAL crm_analytics.numeric_fast_path = off;
SELECT throws_ok($$SELECT pg_temp.one('NaN')$$, '22023', 'amount must be a finite number', 'fallback: NaN: 22023');
SELECT throws_ok($$SELECT pg_temp.one('-Infinity')$$, '22023', 'amount must be a finite number', 'fallback: -Infinity: 22023');
SELECT throws_ok($$SELECT pg_temp.one(round(1, 31))$$, '22003', 'amount has 31 decimal places, the cohort functions keep at most 30',
                 'fallback: 31 decimals: 22003');
SELECT throws_ok($$SELECT pg_temp.one(round(1, 70))$$, '22003', 'amount has 70 decimal places, the cohort functions keep at most 30',
                 'fallback: 70 decimals: 22003');
SELECT throws_ok($$SELECT pg_temp.one(170141183460469231731687303715884105728)$$, '22003', NULL, 'fallback: 2^127: 22003');
SELECT throws_ok($$SELECT pg_temp.one(1e300)$$, '22003', NULL, 'fallback: 1e300: 22003');

SELECT * FROM finish();
ROLLBACK;
