-- test/dashboard_demo.sql: every figure of the owner dashboard on the demo CRM
-- (crm.load_demo(2000, 42, '2025-12-31'), registered by crm._register_demo_sources)
-- equals an independent plain-SQL computation that reads the crm_demo tables
-- directly (not through the source registry), written another way: correlated
-- subqueries, EXISTS / NOT EXISTS, stage probabilities spelled out in CASE.
BEGIN;
SELECT plan(94);

-- the demo registered itself
SELECT is((SELECT array_agg(kind ORDER BY kind) FROM crm.sources),
          ARRAY['customers', 'deals', 'interactions', 'invoices', 'leads', 'orders', 'spend', 'stage_events'],
          'crm.load_demo registered all eight sources');
SELECT is((SELECT count(*) FROM crm.pipeline_stages), 6::bigint, 'crm.load_demo filled the demo pipeline stages');
SELECT is((SELECT row(period_from, period_to)::text FROM crm.dashboard_period()), '(2025-12-01,2025-12-31)',
          'the views show the last month of the demo');

-- The expected figures for the half-open period [f, t).
CREATE FUNCTION pg_temp.expected(f timestamptz, t timestamptz) RETURNS TABLE (metric text, value numeric)
LANGUAGE sql AS $fn$
WITH
spend AS (SELECT coalesce(sum(amount), 0) AS v FROM crm_demo.spend WHERE month >= f AND month < t),
newb AS (SELECT count(DISTINCT o.customer_id) AS v FROM crm_demo.orders o
          WHERE o.ordered_at >= f AND o.ordered_at < t
            AND NOT EXISTS (SELECT 1 FROM crm_demo.orders o2 WHERE o2.customer_id = o.customer_id AND o2.ordered_at < f)),
lds AS (SELECT * FROM crm_demo.leads WHERE created_at >= f AND created_at < t),
ord AS (SELECT * FROM crm_demo.orders WHERE ordered_at >= f AND ordered_at < t),
gp AS (SELECT coalesce(sum(amount - cost), 0) AS v FROM ord),
act AS (SELECT DISTINCT customer_id FROM ord),
-- churn: buyers of the period of equal length before [f, t) who did not buy in [f, t)
prevbuy AS (SELECT DISTINCT customer_id FROM crm_demo.orders WHERE ordered_at >= f - (t - f) AND ordered_at < f),
churned AS (SELECT p.customer_id FROM prevbuy p WHERE NOT EXISTS (SELECT 1 FROM act a WHERE a.customer_id = p.customer_id)),
-- every period lead's cost: its channel's spend in the lead's month / the channel's leads of that month
leadcost AS (SELECT coalesce(sum(
        coalesce((SELECT sum(s.amount) FROM crm_demo.spend s WHERE s.channel = l.channel
                     AND date_trunc('month', s.month) = date_trunc('month', l.created_at)), 0)
        / (SELECT count(*) FROM crm_demo.leads l2 WHERE l2.channel = l.channel
              AND date_trunc('month', l2.created_at) = date_trunc('month', l.created_at))), 0) AS v FROM lds l),
conv AS (SELECT count(*) AS v FROM lds l WHERE EXISTS (
        SELECT 1 FROM crm_demo.orders o WHERE o.customer_id = l.customer_id AND o.ordered_at < t)),
deal AS (
    SELECT d.deal_id, d.amount,
           (SELECT min(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id) AS first_at,
           (SELECT min(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = 'paid' AND e.changed_at < t) AS paid_at,
           (SELECT min(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = 'lost' AND e.changed_at < t) AS lost_at,
           (SELECT max(CASE e.stage WHEN 'lead' THEN 1 WHEN 'qualified' THEN 2 WHEN 'proposal' THEN 3 WHEN 'invoice' THEN 4 END)
              FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.changed_at < t) AS reached,
           (SELECT max(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.changed_at < t) AS last_at
      FROM crm_demo.deals d),
won AS (SELECT * FROM deal WHERE paid_at >= f),
lost AS (SELECT * FROM deal WHERE lost_at >= f),
opn AS (SELECT *, t - last_at > CASE reached WHEN 1 THEN 30 WHEN 2 THEN 30 WHEN 3 THEN 45 ELSE 60 END * interval '1 day' AS stale
          FROM deal WHERE first_at < t AND paid_at IS NULL AND lost_at IS NULL AND reached IS NOT NULL),
wr AS (SELECT (SELECT count(*) FROM won)::numeric / nullif((SELECT count(*) FROM won) + (SELECT count(*) FROM lost), 0) AS v),
cyc AS (SELECT avg(extract(epoch FROM paid_at - first_at) / 86400) AS v FROM won),
unpaid AS (SELECT * FROM crm_demo.invoices WHERE issued_at < t AND (paid_at IS NULL OR paid_at >= t)),
unans AS (SELECT l.* FROM lds l WHERE NOT EXISTS (
              SELECT 1 FROM crm_demo.interactions i
               WHERE i.lead_id = l.lead_id AND NOT i.automated AND i.direction = 'outbound'
                 AND i.occurred_at >= l.created_at AND i.occurred_at < t)),
rev12 AS (SELECT customer_id, sum(amount) AS rev FROM crm_demo.orders
           WHERE ordered_at >= t - interval '12 months' AND ordered_at < t GROUP BY customer_id HAVING sum(amount) > 0),
cls AS (SELECT customer_id,
               coalesce(sum(rev) OVER (ORDER BY rev DESC RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP), 0)
               / sum(rev) OVER () AS above
          FROM rev12)
SELECT * FROM (VALUES
  ('leads_in', (SELECT count(*) FROM lds)::numeric),
  ('new_buyers', (SELECT v FROM newb)::numeric),
  ('lead_to_buyer_conversion', round(100.0 * (SELECT count(*) FROM lds l WHERE EXISTS (
        SELECT 1 FROM crm_demo.orders o WHERE o.customer_id = l.customer_id AND o.ordered_at < t))
        / nullif((SELECT count(*) FROM lds), 0), 2)),
  ('marketing_spend', (SELECT v FROM spend)),
  ('cac', round((SELECT v FROM spend) / nullif((SELECT v FROM newb), 0), 2)),
  ('revenue', (SELECT coalesce(sum(amount), 0) FROM ord)),
  ('orders', (SELECT count(*) FROM ord)::numeric),
  ('buyers', (SELECT count(*) FROM act)::numeric),
  ('churned_customers', (SELECT count(*) FROM churned)::numeric),
  ('churn_rate', round(100.0 * (SELECT count(*) FROM churned) / nullif((SELECT count(*) FROM prevbuy), 0), 2)),
  ('churned_revenue', (SELECT coalesce(sum(o.amount), 0) FROM crm_demo.orders o JOIN churned c USING (customer_id)
                        WHERE o.ordered_at >= f - (t - f) AND o.ordered_at < f)),
  -- the value of one lead: revenue per buyer x converted leads - the leads' cost, per lead
  ('lost_opportunity_cost', round(((SELECT coalesce(sum(amount), 0) FROM ord) / nullif((SELECT count(*) FROM act), 0)
                                   * (SELECT v FROM conv) - (SELECT v FROM leadcost)) / nullif((SELECT count(*) FROM lds), 0), 2)),
  ('average_check', round((SELECT avg(amount) FROM ord), 2)),
  ('repeat_purchase_rate', round(100.0 * (SELECT count(*) FROM act a WHERE
        (SELECT count(*) FROM crm_demo.orders o WHERE o.customer_id = a.customer_id AND o.ordered_at < t) >= 2)
        / nullif((SELECT count(*) FROM act), 0), 2)),
  ('gross_profit', (SELECT v FROM gp)),
  ('roi', round(100.0 * ((SELECT v FROM gp) - (SELECT v FROM spend)) / nullif((SELECT v FROM spend), 0), 2)),
  ('win_rate', round(100 * (SELECT v FROM wr), 2)),
  ('deals_won', (SELECT count(*) FROM won)::numeric),
  ('average_won_deal', round((SELECT avg(amount) FROM won), 2)),
  ('sales_cycle', round((SELECT v FROM cyc), 2)),
  ('open_deals', (SELECT count(*) FROM opn)::numeric),
  ('open_pipeline_value', (SELECT coalesce(sum(amount), 0) FROM opn)),
  ('weighted_pipeline', round((SELECT coalesce(sum(amount * CASE reached WHEN 1 THEN 0.10 WHEN 2 THEN 0.25 WHEN 3 THEN 0.50 ELSE 0.80 END), 0) FROM opn WHERE NOT stale), 2)),
  ('stale_deals', (SELECT count(*) FROM opn WHERE stale)::numeric),
  ('stale_pipeline_value', (SELECT coalesce(sum(amount), 0) FROM opn WHERE stale)),
  ('sales_velocity', round((SELECT count(*) FROM opn) * (SELECT v FROM wr) * (SELECT avg(amount) FROM won) / (SELECT v FROM cyc), 2)),
  ('deals_lost', (SELECT count(*) FROM lost)::numeric),
  ('lost_deal_value', (SELECT coalesce(sum(amount), 0) FROM lost)),
  ('lost_value_at_lead', (SELECT coalesce(sum(amount), 0) FROM lost WHERE reached = 1)),
  ('lost_value_at_qualified', (SELECT coalesce(sum(amount), 0) FROM lost WHERE reached = 2)),
  ('lost_value_at_proposal', (SELECT coalesce(sum(amount), 0) FROM lost WHERE reached = 3)),
  ('lost_value_at_invoice', (SELECT coalesce(sum(amount), 0) FROM lost WHERE reached = 4)),
  ('unpaid_invoices', (SELECT count(*) FROM unpaid)::numeric),
  ('unpaid_invoice_amount', (SELECT coalesce(sum(amount), 0) FROM unpaid)),
  ('unpaid_invoice_age', round((SELECT avg(extract(epoch FROM t - issued_at) / 86400) FROM unpaid), 2)),
  ('overdue_invoices', (SELECT count(*) FROM unpaid WHERE due_at < t)::numeric),
  ('overdue_invoice_amount', (SELECT coalesce(sum(amount), 0) FROM unpaid WHERE due_at < t)),
  ('unanswered_leads', (SELECT count(*) FROM unans)::numeric),
  -- each unanswered lead costs its channel's spend in the lead's calendar
  -- month / that channel's leads created in that month (as crm.lead_sla)
  ('unanswered_leads_cost', round((SELECT coalesce(sum(
        coalesce((SELECT sum(s.amount) FROM crm_demo.spend s WHERE s.channel = u.channel
                     AND date_trunc('month', s.month) = date_trunc('month', u.created_at)), 0)
        / (SELECT count(*) FROM crm_demo.leads l WHERE l.channel = u.channel
              AND date_trunc('month', l.created_at) = date_trunc('month', u.created_at))), 0) FROM unans u), 2)),
  -- overdue: (last real contact before t, or, never contacted, customer since)
  -- + 1 month is before t (as crm.coverage)
  ('overdue_class_a_customers', (SELECT count(*) FROM cls c WHERE c.above < 0.80 AND
        coalesce((SELECT max(i.occurred_at) FROM crm_demo.interactions i
                   WHERE i.customer_id = c.customer_id AND NOT i.automated AND i.occurred_at < t),
                 (SELECT cu.created_at FROM crm_demo.customers cu WHERE cu.customer_id = c.customer_id))
        + interval '1 month' < t)::numeric)
) AS v(metric, value)
$fn$;

CREATE TEMP TABLE got AS SELECT * FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
-- previous period of equal length (92 days): 2025-07-01 .. 2025-09-30
CREATE TEMP TABLE want_cur AS SELECT * FROM pg_temp.expected('2025-10-01', '2026-01-01');
CREATE TEMP TABLE want_prev AS SELECT * FROM pg_temp.expected('2025-07-01', '2025-10-01');

SELECT is((SELECT count(*) FROM got), 40::bigint, 'owner_dashboard: 40 metrics on the demo');
SELECT is(g.value, w.value, 'demo Q4 2025: ' || g.metric || ' = plain SQL')
  FROM got g JOIN want_cur w USING (metric) ORDER BY g.metric;
SELECT is(g.previous_value, w.value, 'demo Q3 2025 (previous): ' || g.metric || ' = plain SQL')
  FROM got g JOIN want_prev w USING (metric) ORDER BY g.metric;
-- the demo is not degenerate: the figures that matter are non-zero
SELECT ok((SELECT bool_and(value > 0) FROM got WHERE metric IN ('leads_in', 'new_buyers', 'revenue', 'marketing_spend',
          'gross_profit', 'win_rate', 'weighted_pipeline', 'lost_deal_value', 'unpaid_invoice_amount', 'unanswered_leads',
          'overdue_class_a_customers')), 'demo figures are non-zero');

-- per channel, independently
SELECT results_eq(
  $$SELECT channel, leads, new_buyers, revenue, spend FROM crm.dashboard_channels('2025-10-01', '2025-12-31')$$,
  $$SELECT ch.channel,
           (SELECT count(*) FROM crm_demo.leads l WHERE l.channel = ch.channel
               AND l.created_at >= '2025-10-01' AND l.created_at < '2026-01-01'),
           (SELECT count(*) FROM crm_demo.customers c WHERE c.channel = ch.channel
               AND (SELECT min(ordered_at) FROM crm_demo.orders o WHERE o.customer_id = c.customer_id) >= '2025-10-01'
               AND (SELECT min(ordered_at) FROM crm_demo.orders o WHERE o.customer_id = c.customer_id) < '2026-01-01'),
           (SELECT coalesce(sum(o.amount), 0) FROM crm_demo.orders o JOIN crm_demo.customers c USING (customer_id)
             WHERE c.channel = ch.channel AND o.ordered_at >= '2025-10-01' AND o.ordered_at < '2026-01-01'),
           (SELECT coalesce(sum(s.amount), 0) FROM crm_demo.spend s WHERE s.channel = ch.channel
               AND s.month >= '2025-10-01' AND s.month < '2026-01-01')
      FROM crm_demo.channels ch ORDER BY ch.channel$$,
  'dashboard_channels on the demo = plain SQL');

-- per manager, independently
SELECT results_eq(
  $$SELECT manager_id, leads, unanswered_leads, deals_won, deals_lost, revenue
      FROM crm.dashboard_managers('2025-10-01', '2025-12-31')$$,
  $$SELECT m.manager_id::text,
           (SELECT count(*) FROM crm_demo.leads l WHERE l.manager_id = m.manager_id
               AND l.created_at >= '2025-10-01' AND l.created_at < '2026-01-01'),
           (SELECT count(*) FROM crm_demo.leads l WHERE l.manager_id = m.manager_id
               AND l.created_at >= '2025-10-01' AND l.created_at < '2026-01-01'
               AND NOT EXISTS (SELECT 1 FROM crm_demo.interactions i WHERE i.lead_id = l.lead_id AND NOT i.automated
                                  AND i.direction = 'outbound' AND i.occurred_at >= l.created_at
                                  AND i.occurred_at < '2026-01-01')),
           (SELECT count(*) FROM crm_demo.deals d WHERE d.manager_id = m.manager_id AND EXISTS (
               SELECT 1 FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = 'paid'
                  AND e.changed_at >= '2025-10-01' AND e.changed_at < '2026-01-01')),
           (SELECT count(*) FROM crm_demo.deals d WHERE d.manager_id = m.manager_id AND EXISTS (
               SELECT 1 FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = 'lost'
                  AND e.changed_at >= '2025-10-01' AND e.changed_at < '2026-01-01')),
           (SELECT coalesce(sum(o.amount), 0) FROM crm_demo.orders o JOIN crm_demo.customers c USING (customer_id)
             WHERE c.manager_id = m.manager_id AND o.ordered_at >= '2025-10-01' AND o.ordered_at < '2026-01-01')
      FROM crm_demo.managers m ORDER BY 1$$,
  'dashboard_managers on the demo = plain SQL');

-- pipeline at the end of 2025: open deals per current stage, independently
SELECT results_eq(
  $$SELECT stage, open_deals, open_value FROM crm.dashboard_pipeline('2025-10-01', '2025-12-31') WHERE outcome = 'open'$$,
  $$SELECT s.stage, count(d.deal_id), coalesce(sum(d.amount), 0)
      FROM (VALUES (1, 'lead'), (2, 'qualified'), (3, 'proposal'), (4, 'invoice')) AS s(n, stage)
      LEFT JOIN crm_demo.deals d ON d.stage = s.stage
     GROUP BY s.n, s.stage ORDER BY s.n$$,
  'dashboard_pipeline: open deals per stage = the demo deals'' current stage');

-- customer classes and coverage at the end of 2025, independently (abc_class semantics through
-- a window that excludes the row's peers; policy A 1 month, B 3 months, C 6 months)
SELECT results_eq(
  $$SELECT abc_class, count(*), count(*) FILTER (WHERE covered) FROM crm.dashboard_coverage('2026-01-01') GROUP BY 1 ORDER BY 1$$,
  $$WITH r AS (SELECT customer_id, sum(amount) AS rev FROM crm_demo.orders
                WHERE ordered_at >= '2025-01-01' AND ordered_at < '2026-01-01' GROUP BY 1 HAVING sum(amount) > 0),
         a AS (SELECT customer_id,
                      coalesce(sum(rev) OVER (ORDER BY rev DESC RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP), 0)
                      / sum(rev) OVER () AS above FROM r),
         k AS (SELECT c.customer_id, c.created_at, CASE WHEN a.above < 0.80 THEN 'A' WHEN a.above < 0.95 THEN 'B' ELSE 'C' END AS cls
                 FROM crm_demo.customers c LEFT JOIN a USING (customer_id))
    -- covered: (last real contact, or, never contacted, customer since) + interval not before the end
    SELECT cls, count(*), count(*) FILTER (WHERE
               coalesce((SELECT max(i.occurred_at) FROM crm_demo.interactions i
                          WHERE i.customer_id = k.customer_id AND NOT i.automated AND i.occurred_at < '2026-01-01'),
                        k.created_at)
               + CASE cls WHEN 'A' THEN interval '1 month' WHEN 'B' THEN interval '3 months' ELSE interval '6 months' END
               >= '2026-01-01'::timestamptz)
      FROM k GROUP BY 1 ORDER BY 1$$,
  'dashboard_coverage on the demo: customers and covered per ABC class = plain SQL');

-- the dashboard's own ABC (one running sum, numeric) agrees with the classes capability's crm.abc_class
SELECT results_eq(
  $$SELECT customer_id, abc_class FROM crm.dashboard_coverage('2026-01-01') ORDER BY customer_id::bigint$$,
  $$SELECT c.customer_id::text, coalesce(a.cls, 'C')
      FROM crm_demo.customers c
      LEFT JOIN (SELECT customer_id, crm.abc_class(sum(amount)::float8) OVER () AS cls FROM crm_demo.orders
                  WHERE ordered_at >= '2025-01-01' AND ordered_at < '2026-01-01' GROUP BY customer_id) a USING (customer_id)
     ORDER BY c.customer_id$$,
  'dashboard_coverage classes = crm.abc_class per customer');

-- views are there and in the documented shape
SELECT is((SELECT count(*) FROM crm.v_owner_dashboard), 40::bigint, 'v_owner_dashboard on the demo');
SELECT is((SELECT count(DISTINCT channel) FROM crm.v_channels), (SELECT count(*) FROM crm_demo.channels), 'v_channels: every channel');
SELECT is((SELECT count(*) FROM crm.v_retention WHERE period_no = 0), 12::bigint, 'v_retention: 12 monthly cohorts');
SELECT is((SELECT sum(customers) FROM crm.v_coverage), (SELECT count(*) FROM crm_demo.customers)::numeric,
          'v_coverage: every customer has a class');

SELECT * FROM finish();
ROLLBACK;
