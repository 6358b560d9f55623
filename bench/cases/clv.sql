-- clv: per-customer summary, BG/NBD and Gamma-Gamma fits, predictions.
-- :N customers drawn from the published CDNOW parameters (BG/NBD r 0.2426, alpha 4.4136,
-- a 0.7929, b 2.4259; Gamma-Gamma p 6.25, q 3.74, gamma 15.44), weekly time unit,
-- observed up to 52 weeks; about 1.85 purchases per customer.
-- @setup
CREATE TABLE clv_tx AS
SELECT customer_id, timestamptz '2025-01-01' - (t_end - t_purchase) * interval '7 days' AS ts,
       round(amount::numeric, 2) AS amount
  FROM crm.clv_simulate(0.2426, 4.4136, 0.7929, 2.4259, 6.25, 3.74, 15.44, :N, 52, 42);
CREATE TABLE clv_sum AS
SELECT customer_id, (s).frequency, (s).recency, (s).t, (s).monetary
  FROM (SELECT customer_id, crm.clv_summary(ts, amount, '2025-01-01', '7 days') s FROM clv_tx GROUP BY customer_id) q;
CREATE TABLE clv_direct AS
SELECT customer_id, count(*) - 1 AS x, max(t_purchase) AS tx, max(t_end) AS tt
  FROM crm.clv_simulate(0.2426, 4.4136, 0.7929, 2.4259, 6.25, 3.74, 15.44, :N, 52, 42) GROUP BY customer_id;
CREATE TABLE clv_direct_days AS
SELECT customer_id, x, round(tx * 7) / 7 AS tx, round(tt * 7) / 7 AS tt FROM clv_direct;
CREATE TABLE clv_models AS
SELECT (SELECT crm.bgnbd_fit(frequency, recency, t) FROM clv_sum) AS bg,
       (SELECT crm.gamma_gamma_fit(frequency, monetary) FROM clv_sum) AS gg;
ANALYZE clv_tx; ANALYZE clv_sum; ANALYZE clv_direct; ANALYZE clv_direct_days; ANALYZE clv_models;
-- @floor groupby
SELECT sum(c) FROM (SELECT customer_id, count(*) c FROM clv_tx GROUP BY customer_id) s;
-- @plain summary
SELECT sum(f) FROM (
  SELECT customer_id, count(*) - 1 AS f, (max(d) - min(d)) / 7.0 AS recency, (date '2025-01-01' - min(d)) / 7.0 AS t,
         coalesce((sum(v) - (array_agg(v ORDER BY d))[1]) / nullif(count(*) - 1, 0), 0) AS monetary
    FROM (SELECT customer_id, ts::date AS d, sum(amount) AS v FROM clv_tx WHERE ts::date <= '2025-01-01' GROUP BY 1, 2) days
   GROUP BY customer_id) s;
-- @query summary
SELECT sum((s).frequency) FROM (SELECT crm.clv_summary(ts, amount, '2025-01-01', '7 days') s FROM clv_tx GROUP BY customer_id) q;
-- @query bgnbd_fit
SELECT (crm.bgnbd_fit(frequency, recency, t)).r FROM clv_sum;
-- @query gamma_gamma_fit
SELECT (crm.gamma_gamma_fit(frequency, monetary)).p FROM clv_sum;
-- @query summary_and_fits
SELECT (crm.bgnbd_fit((s).frequency, (s).recency, (s).t)).r, (crm.gamma_gamma_fit((s).frequency, (s).monetary)).p
  FROM (SELECT crm.clv_summary(ts, amount, '2025-01-01', '7 days') s FROM clv_tx GROUP BY customer_id) q;
-- @query bgnbd_fit_direct_days
SELECT (crm.bgnbd_fit(x, tx, tt)).r FROM clv_direct_days;
-- @query predict_39_weeks
SELECT sum(crm.bgnbd_expected_purchases(bg, 39, frequency, recency, t)) FROM clv_sum, clv_models;
-- @query clv_12_months_100k
SELECT sum(crm.clv(bg, gg, frequency, recency, t, monetary, '7 days', 12, 0.01))
  FROM clv_sum, clv_models WHERE customer_id <= 100000;
-- @set max_parallel_workers_per_gather = 2
-- @query summary_parallel
SELECT sum((s).frequency) FROM (SELECT crm.clv_summary(ts, amount, '2025-01-01', '7 days') s FROM clv_tx GROUP BY customer_id) q;
-- @query summary_and_fits_parallel
SELECT (crm.bgnbd_fit((s).frequency, (s).recency, (s).t)).r, (crm.gamma_gamma_fit((s).frequency, (s).monetary)).p
  FROM (SELECT crm.clv_summary(ts, amount, '2025-01-01', '7 days') s FROM clv_tx GROUP BY customer_id) q;
