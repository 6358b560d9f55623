-- clv_ltv.sql (pgTAP): crm.historical_ltv against hand-worked numbers.
BEGIN;
SELECT plan(8);
CREATE TEMP TABLE o(c int, ts timestamptz, amount numeric, cost numeric);
INSERT INTO o VALUES (1, '2024-01-01', 100, 60), (1, '2024-07-01', 50, 30), (2, '2024-03-01', 30, 10),
                     (1, '2025-01-01', 70, 40), (3, '2025-01-01', 10, 5);
CREATE TEMP TABLE sp(ts timestamptz, amount numeric);
INSERT INTO sp VALUES ('2024-01-01', 90), ('2024-06-01', 30);
-- by hand: span 366 days = 366/365.25 years; 3 customers, 5 orders, revenue 260, cost 145;
-- margin 115/260; spend 120 -> CAC 40; years back from the last order (2025-01-01):
-- customer 1 has orders in year 1 (2024-01-01, 366 days back) and year 0, 2 and 3 in year 0
-- only: one customer-year at risk (1 in year 1), kept -> annual churn 0, no lifespan,
-- LTV = LTV to date = 115 / 3
CREATE TEMP TABLE hand AS
SELECT 366 / 365.25 AS span, 115 / 260.0 AS gm;
CREATE TEMP TABLE r AS SELECT * FROM crm.historical_ltv('SELECT c, ts, amount, cost FROM o', 'SELECT ts, amount FROM sp');
SELECT is((SELECT (customers, orders, revenue, revenue_per_customer, aov)::text FROM r), '(3,5,260,86.67,52.00)',
          'customers, orders, revenue, revenue per customer, AOV');
SELECT is((SELECT purchase_frequency FROM r), (SELECT round(5 / 3.0 / span, 4) FROM hand), 'purchase frequency = orders / customers / observed years');
SELECT is((SELECT (lifespan_years, gross_margin, annual_churn)::text FROM r), (SELECT (NULL::numeric, round(gm, 4), 0.0000)::text FROM hand),
          'margin from cost; annual churn 0 gives no lifespan');
SELECT is((SELECT ltv_to_date FROM r), round(115 / 3.0, 2), 'LTV to date = gross profit / customers');
SELECT is((SELECT ltv FROM r), round(115 / 3.0, 2), 'without a lifespan LTV is the LTV to date');
SELECT is((SELECT (spend, cac, ltv_to_cac, cac_payback_months)::text FROM r),
          (SELECT (120, 40.00, round(round(115 / 3.0, 2) / 40, 4), round(40 / (260 * gm / 3 / (span * 12)), 2))::text FROM hand),
          'spend, CAC = spend / customers, LTV/CAC, CAC payback months = CAC / monthly gross profit per customer');
SELECT throws_ok($$SELECT * FROM crm.historical_ltv('SELECT c, ts FROM o')$$, '42804', NULL, 'orders query with missing columns is refused');
SELECT throws_ok($$SELECT * FROM crm.historical_ltv('SELECT c, ts, amount FROM o', NULL, 1.5)$$, '22023',
                 'margin must be between 0 and 1, got 1.5', 'margin outside 0..1 is refused');
SELECT * FROM finish();
ROLLBACK;
