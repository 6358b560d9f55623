-- scripts/demo.sql: what crm_analytics shows on the demo CRM (run by scripts/demo)
\pset footer off
\set QUIET on
CREATE EXTENSION crm_analytics;
\echo
\echo '== crm.load_demo: a deterministic demo CRM in schema crm_demo (as of 2025-12-31) =='
\timing on
SELECT * FROM crm.load_demo(:customers, 42, '2025-12-31');
\timing off

SELECT to_regprocedure('crm.owner_dashboard(date,date)') IS NOT NULL AS has_dashboard,
       to_regprocedure('crm.funnel_report(text,text[],interval,text)') IS NOT NULL AS has_funnel,
       to_regprocedure('crm.cohort_retention(text,text,integer)') IS NOT NULL AS has_retention,
       to_regprocedure('crm.abc_class(double precision,double precision,double precision)') IS NOT NULL AS has_classes,
       to_regprocedure('crm.rfm_report(text,timestamptz)') IS NOT NULL AS has_rfm,
       to_regprocedure('crm.bgnbd_fit(float8,float8,float8)') IS NOT NULL AS has_clv,
       to_regprocedure('crm.dashboard_channels(date,date)') IS NOT NULL AS has_channels,
       to_regprocedure('crm.dashboard_losses(date,date)') IS NOT NULL AS has_sales,
       to_regprocedure('crm.refresh_rollups(boolean)') IS NOT NULL AS has_rollups
\gset

\if :has_dashboard
\echo
\echo '== Owner dashboard, Q4 2025 against Q3 2025: crm.owner_dashboard(''2025-10-01'', ''2025-12-31'') =='
SELECT * FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
\else
\echo
\echo '== The demo CRM by channel (plain SQL; the owner dashboard is not built yet) =='
SELECT l.channel, count(*) AS leads, count(l.customer_id) AS buyers,
       round(100.0 * count(l.customer_id) / count(*), 1) AS conversion_pct,
       (SELECT sum(amount) FROM crm_demo.spend s WHERE s.channel = l.channel) AS spend,
       round((SELECT sum(amount) FROM crm_demo.spend s WHERE s.channel = l.channel) / nullif(count(l.customer_id), 0), 2) AS cac
  FROM crm_demo.leads l GROUP BY l.channel ORDER BY l.channel;
\endif

\if :has_channels
\echo
\echo '== Channels, Q4 2025: crm.dashboard_channels(''2025-10-01'', ''2025-12-31'') =='
SELECT * FROM crm.dashboard_channels('2025-10-01', '2025-12-31');
\endif

\if :has_sales
\echo
\echo '== Where deals are lost, Q4 2025: crm.dashboard_losses (top 8 of reason x last open stage) =='
SELECT * FROM crm.dashboard_losses('2025-10-01', '2025-12-31') LIMIT 8;
\echo
\echo '== Follow-up depth of the deals closed in Q4 2025 (real contacts before the close): crm.dashboard_followups =='
SELECT * FROM crm.dashboard_followups('2025-10-01', '2025-12-31');
\echo
\echo '== Plan against fact, Q4 2025 (demo plans: previous quarter + 10 %): crm.dashboard_plan_fact =='
SELECT * FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31');
\echo
\echo '== Who to call first on 2026-01-01: crm.todo (top 10 of the list, by money at stake) =='
SELECT kind, count(*) AS items, sum(value) AS at_stake FROM crm.todo('2026-01-01') GROUP BY kind ORDER BY at_stake DESC;
SELECT * FROM crm.todo('2026-01-01') LIMIT 10;
\endif

\if :has_rollups
\echo
\echo '== Daily rollups for BI: crm.refresh_rollups() builds them (then only what changed), crm.v_daily sums any period =='
SET client_min_messages = warning;
SELECT * FROM crm.refresh_rollups();
RESET client_min_messages;
SELECT metric, sum(value) FILTER (WHERE day BETWEEN '2025-10-01' AND '2025-12-31') AS q4_2025,
       sum(value) FILTER (WHERE day BETWEEN '2025-12-01' AND '2025-12-31') AS december
  FROM crm.v_daily WHERE dimension = 'all'
   AND metric IN ('leads_in', 'new_buyers', 'orders', 'revenue', 'marketing_spend', 'deals_won', 'deals_lost', 'lost_deal_value')
 GROUP BY metric ORDER BY metric;
\endif

\if :has_funnel
\echo
\echo '== Sales funnel of all deals: crm.funnel_report =='
SELECT * FROM crm.funnel_report('SELECT e.deal_id, e.changed_at, e.stage, d.amount
                                   FROM crm_demo.deal_events e JOIN crm_demo.deals d USING (deal_id)',
                                ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid'], '90 days');
\endif

\if :has_retention
\echo
\echo '== Quarterly cohort retention of buyers (% active), the heat map: crm.cohort_retention =='
SELECT cohort, max(cohort_size) AS size,
       max(round(100 * retention_rate)) FILTER (WHERE period_no = 1) AS q1,
       max(round(100 * retention_rate)) FILTER (WHERE period_no = 2) AS q2,
       max(round(100 * retention_rate)) FILTER (WHERE period_no = 3) AS q3,
       max(round(100 * retention_rate)) FILTER (WHERE period_no = 4) AS q4,
       max(round(100 * retention_rate)) FILTER (WHERE period_no = 5) AS q5,
       max(round(100 * retention_rate)) FILTER (WHERE period_no = 6) AS q6,
       max(round(cumulative_ltv)) AS ltv_to_date
  FROM crm.cohort_retention('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', 'quarter', 8)
 GROUP BY cohort ORDER BY cohort;
\endif

\if :has_classes
\echo
\echo '== ABC classes of customers by revenue: crm.abc_class =='
SELECT abc, count(*) AS customers, sum(revenue) AS revenue
  FROM (SELECT customer_id, sum(amount) AS revenue, crm.abc_class(sum(amount)::float8) OVER () AS abc
          FROM crm_demo.orders GROUP BY customer_id) s
 GROUP BY abc ORDER BY abc;
\endif

\if :has_rfm
\echo
\echo '== RFM segments on 2026-01-01: crm.rfm_report + crm.rfm_segment =='
SELECT segment, count(*) AS customers, round(avg(monetary), 2) AS avg_monetary, round(avg(recency_days)) AS avg_recency_days
  FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', '2026-01-01')
 GROUP BY segment ORDER BY customers DESC;
\endif

\if :has_clv
\echo
\echo '== Predicted CLV (BG/NBD + Gamma-Gamma fitted in C, weeks), next 12 months, 1 %/month discount =='
WITH s AS (SELECT customer_id, (crm.clv_summary(ordered_at, amount, '2025-12-31', '7 days')).*
             FROM crm_demo.orders GROUP BY customer_id),
     m AS (SELECT crm.bgnbd_fit(frequency, recency, t) AS bg,
                  crm.gamma_gamma_fit(frequency, monetary) FILTER (WHERE frequency > 0) AS gg FROM s)
SELECT round((bg).r::numeric, 3) AS r, round((bg).alpha::numeric, 2) AS alpha, round((bg).a::numeric, 3) AS a,
       round((bg).b::numeric, 3) AS b, (bg).converged AS bgnbd_converged,
       round(sum(crm.clv(bg, gg, frequency, recency, t, monetary, '7 days', 12, 0.01)), 0) AS clv_next_12_months_all_customers
  FROM s, m GROUP BY bg;
\endif
