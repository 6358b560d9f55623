-- classes: RFM scoring and ABC classes over N customers.
--   rfm: three crm.quantile_score windows vs three ntile(5) windows (same tie-free intent)
--   abc: crm.abc_class vs the plain-SQL running-sum window with the same boundary rule
--   floor: one sort of the values (what any exact quantile/ABC computation must at least do);
--   sort_float8 is the same sort on the float8 values the functions take
-- @setup
SELECT setseed(0.42);
DROP TABLE IF EXISTS bench_classes;
CREATE TABLE bench_classes AS
SELECT i AS customer_id,
       (random() * 730)::int AS recency_days,
       1 + (-ln(1 - random()) * 2)::int AS frequency,
       round((random() ^ 3 * 5000)::numeric, 2) AS monetary
  FROM generate_series(1, :N) i;
VACUUM ANALYZE bench_classes;
-- @floor sort
SELECT sum(monetary) FROM (SELECT monetary FROM bench_classes ORDER BY monetary OFFSET 0) s;
-- @query sort_float8
SELECT sum(v) FROM (SELECT monetary::float8 AS v FROM bench_classes ORDER BY 1 OFFSET 0) s;
-- @plain rfm
SELECT sum(r + f + m) FROM (
  SELECT ntile(5) OVER (ORDER BY -recency_days) AS r, ntile(5) OVER (ORDER BY frequency) AS f,
         ntile(5) OVER (ORDER BY monetary) AS m
    FROM bench_classes) s;
-- @query rfm
SELECT sum(r + f + m) FROM (
  SELECT crm.quantile_score(-recency_days) OVER () AS r, crm.quantile_score(frequency) OVER () AS f,
         crm.quantile_score(monetary) OVER () AS m
    FROM bench_classes) s;
-- @plain abc
SELECT count(*) FILTER (WHERE c = 'A'), count(*) FILTER (WHERE c = 'B'), count(*) FILTER (WHERE c = 'C') FROM (
  SELECT CASE WHEN s < 0.80 THEN 'A' WHEN s < 0.95 THEN 'B' ELSE 'C' END AS c
    FROM (SELECT (sum(monetary) OVER (ORDER BY monetary DESC) - sum(monetary) OVER (PARTITION BY monetary))
                 / sum(monetary) OVER () AS s
            FROM bench_classes) w) x;
-- @query abc
SELECT count(*) FILTER (WHERE c = 'A'), count(*) FILTER (WHERE c = 'B'), count(*) FILTER (WHERE c = 'C') FROM (
  SELECT crm.abc_class(monetary) OVER () AS c FROM bench_classes) x;
