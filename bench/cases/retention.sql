-- retention: cohort retention by month over N orders of N/10 customers (two years of orders;
-- each customer starts in a random month of the first year and orders at random after that).
-- @setup
DROP TABLE IF EXISTS bench_ret_orders;
CREATE TABLE bench_ret_orders AS
SELECT i AS order_id,
       c AS customer_id,
       timestamptz '2024-01-01' + (s + (abs(hashint8(i + 1000000000)) % (730 - s))) * interval '1 day'
           + (abs(hashint8(i + 2000000000)) % 86400) * interval '1 second' AS ordered_at,
       round((abs(hashint8(i + 3000000000)) % 50000) / 100.0 + 5, 2) AS amount
  FROM (SELECT i, c, (abs(hashint8(c)) % 365)::int AS s
          FROM (SELECT i, 1 + abs(hashint8(i)) % greatest(:N / 10, 1) AS c
                  FROM generate_series(1, :N) i) q) r;
VACUUM ANALYZE bench_ret_orders;
-- @floor groupby
SELECT sum(c) FROM (SELECT customer_id, count(*) AS c FROM bench_ret_orders GROUP BY customer_id) s;
-- @plain cohort_month
WITH f AS (SELECT customer_id, date_trunc('month', min(ordered_at)) AS cohort
             FROM bench_ret_orders GROUP BY customer_id),
     s AS (SELECT cohort, count(*) AS n FROM f GROUP BY cohort),
     a AS (SELECT f.cohort, date_trunc('month', o.ordered_at) AS m,
                  count(DISTINCT o.customer_id) AS active, sum(o.amount) AS revenue
             FROM bench_ret_orders o JOIN f USING (customer_id) GROUP BY 1, 2),
     r AS (SELECT (extract(year FROM a.m) * 12 + extract(month FROM a.m))
                  - (extract(year FROM a.cohort) * 12 + extract(month FROM a.cohort)) AS k,
                  a.active, round(a.active::numeric / s.n, 4) AS rate, a.revenue,
                  round(sum(a.revenue) OVER (PARTITION BY a.cohort ORDER BY a.m) / s.n, 2) AS ltv
             FROM a JOIN s USING (cohort))
SELECT count(*), sum(active), sum(rate), sum(revenue), sum(ltv) FROM r WHERE k < 12;
-- @query cohort_month
SELECT count(*), sum(active), sum(retention_rate), sum(revenue), sum(cumulative_ltv)
  FROM crm.cohort_retention('SELECT customer_id, ordered_at, amount FROM bench_ret_orders', 'month', 12);
-- @plain retention_3
SELECT sum(r1), sum(r2), sum(r3) FROM (
    SELECT bool_or(ordered_at < '2024-02-01')::int AS r1,
           (bool_or(ordered_at < '2024-02-01') AND bool_or(ordered_at >= '2024-02-01' AND ordered_at < '2024-03-01'))::int AS r2,
           (bool_or(ordered_at < '2024-02-01') AND bool_or(ordered_at >= '2024-03-01' AND ordered_at < '2024-04-01'))::int AS r3
      FROM bench_ret_orders GROUP BY customer_id) s;
-- @query retention_3
SELECT sum(r[1]), sum(r[2]), sum(r[3]) FROM (
    SELECT crm.retention(ordered_at < '2024-02-01',
                         ordered_at >= '2024-02-01' AND ordered_at < '2024-03-01',
                         ordered_at >= '2024-03-01' AND ordered_at < '2024-04-01') AS r
      FROM bench_ret_orders GROUP BY customer_id) s;
-- @set max_parallel_workers_per_gather = 2
-- @floor groupby_parallel
SELECT sum(c) FROM (SELECT customer_id, count(*) AS c FROM bench_ret_orders GROUP BY customer_id) s;
-- @plain cohort_month_parallel
WITH f AS (SELECT customer_id, date_trunc('month', min(ordered_at)) AS cohort
             FROM bench_ret_orders GROUP BY customer_id),
     s AS (SELECT cohort, count(*) AS n FROM f GROUP BY cohort),
     a AS (SELECT f.cohort, date_trunc('month', o.ordered_at) AS m,
                  count(DISTINCT o.customer_id) AS active, sum(o.amount) AS revenue
             FROM bench_ret_orders o JOIN f USING (customer_id) GROUP BY 1, 2),
     r AS (SELECT (extract(year FROM a.m) * 12 + extract(month FROM a.m))
                  - (extract(year FROM a.cohort) * 12 + extract(month FROM a.cohort)) AS k,
                  a.active, round(a.active::numeric / s.n, 4) AS rate, a.revenue,
                  round(sum(a.revenue) OVER (PARTITION BY a.cohort ORDER BY a.m) / s.n, 2) AS ltv
             FROM a JOIN s USING (cohort))
SELECT count(*), sum(active), sum(rate), sum(revenue), sum(ltv) FROM r WHERE k < 12;
-- @query cohort_month_parallel
SELECT count(*), sum(active), sum(retention_rate), sum(revenue), sum(cumulative_ltv)
  FROM crm.cohort_retention('SELECT customer_id, ordered_at, amount FROM bench_ret_orders', 'month', 12);
