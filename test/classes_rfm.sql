-- classes: crm.rfm_segment (all 25 cells, overrides, pg_dump registration)
-- and crm.rfm_report against a plain-SQL computation on the demo data.
BEGIN;
SELECT plan(18);

-- the spec's map as ranges, written independently of the C table
CREATE TEMP TABLE spec_map(segment text, rmin int, rmax int, fmin int, fmax int);
INSERT INTO spec_map VALUES
  ('Hibernating', 1, 2, 1, 2), ('At Risk', 1, 2, 3, 4), ('Can''t Lose Them', 1, 2, 5, 5),
  ('About To Sleep', 3, 3, 1, 2), ('Need Attention', 3, 3, 3, 3), ('Loyal Customers', 3, 4, 4, 5),
  ('Promising', 4, 4, 1, 1), ('New Customers', 5, 5, 1, 1), ('Potential Loyalists', 4, 5, 2, 3),
  ('Champions', 5, 5, 4, 5);
CREATE TEMP VIEW spec_cells AS
SELECT r, f, s.segment, count(*) OVER (PARTITION BY r, f) AS n
  FROM generate_series(1, 5) r CROSS JOIN generate_series(1, 5) f
  LEFT JOIN spec_map s ON r BETWEEN s.rmin AND s.rmax AND f BETWEEN s.fmin AND s.fmax;

SELECT is((SELECT count(*)::int FROM spec_cells WHERE n = 1 AND segment IS NOT NULL), 25,
  'the spec map covers each of the 25 cells exactly once');
SELECT results_eq(
  $$SELECT r, f, crm.rfm_segment(r, f) FROM generate_series(1, 5) r CROSS JOIN generate_series(1, 5) f ORDER BY r, f$$,
  $$SELECT r, f, segment FROM spec_cells ORDER BY r, f$$,
  'rfm_segment: all 25 cells equal the spec map');
SELECT results_eq(
  $$SELECT r, f, segment, overridden FROM crm.rfm_segment_map ORDER BY r, f$$,
  $$SELECT r, f, segment, false FROM spec_cells ORDER BY r, f$$,
  'crm.rfm_segment_map lists the 25 cells, none overridden');
SELECT is((SELECT count(DISTINCT crm.rfm_segment(r, f))::int FROM generate_series(1, 5) r, generate_series(1, 5) f), 10,
  'rfm_segment: 10 segments');
SELECT is(crm.rfm_segment(NULL, 3), NULL, 'rfm_segment: NULL score gives NULL');

-- overrides
INSERT INTO crm.rfm_segment_overrides VALUES (5, 5, 'VIP'), (1, 1, 'Lost');
SELECT results_eq(
  $$SELECT crm.rfm_segment(5, 5), crm.rfm_segment(5, 4), crm.rfm_segment(1, 1), crm.rfm_segment(1, 2), crm.rfm_segment_default(5, 5)$$,
  $$VALUES ('VIP', 'Champions', 'Lost', 'Hibernating', 'Champions')$$,
  'rfm_segment: an override replaces only its cell');
SELECT results_eq(
  $$SELECT r, f FROM crm.rfm_segment_map WHERE overridden ORDER BY r, f$$,
  $$VALUES (1, 1), (5, 5)$$, 'crm.rfm_segment_map flags overridden cells');
SELECT throws_ok($$INSERT INTO crm.rfm_segment_overrides VALUES (6, 1, 'x')$$, '23514', NULL,
  'overrides: r outside 1..5 is refused');
DELETE FROM crm.rfm_segment_overrides;
SELECT ok((SELECT 'crm.rfm_segment_overrides'::regclass::oid = ANY (extconfig) FROM pg_extension WHERE extname = 'crm_analytics'),
  'crm.rfm_segment_overrides is registered with pg_extension_config_dump');

SELECT throws_ok($$SELECT crm.rfm_segment(0, 3)$$, '22023', 'R score must be between 1 and 5, got 0', 'rfm_segment: R = 0 is an error');
SELECT throws_ok($$SELECT crm.rfm_segment(3, 6)$$, '22023', 'F score must be between 1 and 5, got 6', 'rfm_segment: F = 6 is an error');

-- ---- rfm_report on the demo data vs plain SQL ----------------------------------
CREATE TEMP TABLE rfm_ref AS
WITH per AS (
  SELECT customer_id,
         floor(extract(epoch FROM timestamptz '2025-12-01' - max(ordered_at)) / 86400)::int AS rd,
         count(*) AS fr, sum(amount) AS mo
    FROM crm_demo.orders WHERE ordered_at <= '2025-12-01' GROUP BY customer_id
), sc AS (
  SELECT per.*, (1 + 5 * (rank() OVER (ORDER BY -rd) - 1) / count(*) OVER ())::int AS r,
         (1 + 5 * (rank() OVER (ORDER BY fr) - 1) / count(*) OVER ())::int AS f,
         (1 + 5 * (rank() OVER (ORDER BY mo) - 1) / count(*) OVER ())::int AS m
    FROM per
)
SELECT customer_id::text AS customer, rd, fr, mo, r, f, m, r::text || f::text || m::text AS code, c.segment
  FROM sc JOIN spec_cells c USING (r, f);
SELECT results_eq(
  $$SELECT * FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', '2025-12-01')$$,
  $$SELECT * FROM rfm_ref ORDER BY customer::bigint$$,
  'rfm_report equals the plain-SQL RFM on the demo data (as of 2025-12-01, later orders ignored)');
SELECT ok((SELECT count(DISTINCT segment) FROM rfm_ref) >= 8, 'the demo data fills at least 8 segments');
SELECT is((SELECT count(*)::int FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM crm_demo.orders WHERE false', now())), 0,
  'rfm_report: no orders, no rows');

SELECT throws_ok($$SELECT * FROM crm.rfm_report('SELECT customer_id, amount, ordered_at FROM crm_demo.orders', now())$$,
  '42804', 'column 2 ("amount") of the inner query has type numeric, expected timestamptz for ordered_at',
  'rfm_report: columns in the wrong order are an error');
SELECT throws_ok($$SELECT * FROM crm.rfm_report('SELECT customer_id FROM crm_demo.orders', now())$$,
  '42804', 'inner query returns 1 column, expected (customer, ordered_at timestamptz, amount numeric)',
  'rfm_report: missing columns are an error');
SELECT throws_ok($$SELECT * FROM crm.rfm_report(NULL, now())$$,
  '22004', 'orders_sql and as_of must not be null', 'rfm_report: NULL query is an error');
SET LOCAL search_path = crm_demo, public;
SELECT lives_ok($$SELECT * FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM orders', now())$$,
  'rfm_report: the inner query resolves with the caller''s search_path');
RESET search_path;
SELECT * FROM finish();
ROLLBACK;
