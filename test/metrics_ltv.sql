-- metrics_ltv.sql (pgTAP): historical LTV (crm.historical_ltv) against plain SQL on the demo
-- data and on a small hand-worked data set; LTV is never below the LTV to date.
BEGIN;
SELECT plan(12);

-- ---- demo data (crm.load_demo(2000, 42, '2025-12-31')) ------------------------------
CREATE TEMP TABLE r AS
SELECT * FROM crm.historical_ltv('SELECT customer_id, ordered_at, amount, cost FROM crm_demo.orders',
                                 'SELECT month, amount FROM crm_demo.spend');
-- plain SQL: years counted back from the last order with interval arithmetic, churn by
-- LEFT JOIN of each customer-year to the customer's next year
CREATE TEMP TABLE p AS
WITH last AS (SELECT max(ordered_at) AS l FROM crm_demo.orders),
cy AS (SELECT DISTINCT o.customer_id AS c,
              floor(extract(epoch FROM (l.l - o.ordered_at)) / (365.25 * 86400)) AS y
         FROM crm_demo.orders o, last l),
churn AS (SELECT count(*) FILTER (WHERE n.c IS NULL)::numeric / count(*) AS churn
            FROM cy a LEFT JOIN cy n ON n.c = a.c AND n.y = a.y - 1 WHERE a.y >= 1),
gp AS (SELECT sum(amount - cost) AS gp, count(DISTINCT customer_id) AS customers FROM crm_demo.orders)
SELECT churn.churn, gp.gp / gp.customers AS to_date,
       gp.gp / (SELECT count(*) FROM cy) / churn.churn AS projected, 1 / churn.churn AS life
  FROM churn, gp;
SELECT is((SELECT annual_churn FROM r), (SELECT round(churn, 4) FROM p), 'demo: annual churn = plain SQL');
SELECT is((SELECT lifespan_years FROM r), (SELECT round(life, 4) FROM p), 'demo: lifespan = 1 / annual churn');
SELECT is((SELECT ltv_to_date FROM r), (SELECT round(to_date, 2) FROM p), 'demo: LTV to date = gross profit per customer (plain SQL)');
SELECT is((SELECT ltv FROM r), (SELECT round(greatest(to_date, projected), 2) FROM p),
          'demo: LTV = max(LTV to date, gross profit per active customer-year / churn)');
SELECT cmp_ok((SELECT ltv FROM r), '>=',
              (SELECT round(sum(amount - cost) / count(DISTINCT customer_id), 2) FROM crm_demo.orders),
              'demo: historical LTV >= realised gross profit per customer');
SELECT is((SELECT ltv_to_cac FROM r),
          (SELECT round(greatest(p.to_date, p.projected) / (s.spend / (SELECT count(DISTINCT customer_id) FROM crm_demo.orders)), 4)
             FROM p, (SELECT sum(amount) AS spend FROM crm_demo.spend) s),
          'demo: LTV/CAC = LTV / (spend / customers)');

-- ---- channel LTV (gross profit to date per buyer, by acquisition channel), Q4 2025 -------
SELECT crm.set_dashboard_period('2025-10-01', '2025-12-31');
SELECT set_eq(
  $$SELECT channel, ltv, ltv_cac FROM crm.dashboard_channels('2025-10-01', '2025-12-31') WHERE ltv IS NOT NULL$$,
  $$WITH b AS (SELECT o.customer_id, sum(o.amount - o.cost) AS gp, min(o.ordered_at) AS first_at
                 FROM crm_demo.orders o WHERE o.ordered_at < '2026-01-01' GROUP BY o.customer_id),
         c AS (SELECT coalesce(cu.channel, '(unknown)') AS channel, avg(b.gp) AS ltv,
                      count(*) FILTER (WHERE b.first_at >= '2025-10-01') AS new_buyers
                 FROM b LEFT JOIN crm_demo.customers cu USING (customer_id) GROUP BY 1),
         s AS (SELECT channel, sum(amount) AS spend FROM crm_demo.spend
                WHERE month >= '2025-10-01' AND month < '2026-01-01' GROUP BY 1)
    SELECT c.channel, round(c.ltv, 2) AS ltv, round(c.ltv / nullif(s.spend / nullif(c.new_buyers, 0), 0), 2) AS ltv_cac
      FROM c LEFT JOIN s USING (channel)$$,
  'channel LTV and LTV/CAC on the demo (Q4 2025) = plain SQL');
SELECT set_eq(
  $$SELECT channel, metric, value FROM crm.v_channels WHERE metric IN ('ltv', 'ltv_cac') AND value IS NOT NULL$$,
  $$SELECT channel, m, v FROM crm.dashboard_channels('2025-10-01', '2025-12-31'),
           LATERAL (VALUES ('ltv', ltv), ('ltv_cac', ltv_cac)) AS x(m, v) WHERE v IS NOT NULL$$,
  'v_channels shows the same channel LTV and LTV/CAC as dashboard_channels');

-- ---- second data set: hand-worked, no cost column, margin 0.5, last order 2025-12-31 ----
CREATE TEMP TABLE o2(c int, ts timestamptz, amount numeric);
INSERT INTO o2 VALUES (1, '2023-06-01', 100), (1, '2024-06-01', 100), (1, '2025-06-01', 100),
                      (2, '2023-06-01', 200), (2, '2024-06-01', 200),
                      (3, '2024-06-01', 100), (4, '2025-12-31', 400);
-- years back: 2025-06-01 -> 0, 2024-06-01 -> 1, 2023-06-01 -> 2.  Customer-years: 1:{0,1,2},
-- 2:{1,2}, 3:{1}, 4:{0} = 7; at risk (year >= 1): 5; lost (no order the next year): 2 in
-- year 1, 3 in year 1 = 2 -> churn 0.4, lifespan 2.5 years.  Gross profit 1200 x 0.5 = 600:
-- to date 600 / 4 = 150; per customer-year 600 / 7; LTV = 600 / 7 x 2.5 = 214.29.
CREATE TEMP TABLE r2 AS SELECT * FROM crm.historical_ltv('SELECT c, ts, amount FROM o2', NULL, 0.5);
SELECT is((SELECT (customers, orders, revenue, annual_churn, lifespan_years)::text FROM r2), '(4,7,1200,0.4000,2.5000)',
          'small set: customers, orders, revenue, churn 0.4, lifespan 2.5 years');
SELECT is((SELECT (ltv_to_date, ltv)::text FROM r2), '(150.00,214.29)', 'small set: LTV to date 150, LTV 600 / 7 x 2.5');
-- churn 1 (nobody orders in the next year): LTV falls back to the LTV to date, never below
CREATE TEMP TABLE r3 AS SELECT * FROM crm.historical_ltv('SELECT c, ts, amount FROM o2 WHERE c IN (3, 4)', NULL, 0.5);
SELECT is((SELECT (annual_churn, lifespan_years, ltv_to_date, ltv)::text FROM r3), '(1.0000,1.0000,125.00,125.00)',
          'churn 1: LTV = LTV to date (250 / 2)');
-- less than a year of data: no churn, LTV = LTV to date
CREATE TEMP TABLE r4 AS SELECT * FROM crm.historical_ltv('SELECT c, ts, amount FROM o2 WHERE ts > ''2025-01-01''', NULL, 0.5);
SELECT is((SELECT (annual_churn, lifespan_years, ltv_to_date, ltv)::text FROM r4), '(,,125.00,125.00)',
          'under a year of data: no churn, LTV = LTV to date');
SELECT * FROM finish();
ROLLBACK;
