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
       to_regprocedure('crm.abc_class(double precision,double precision,double precision)') IS NOT NULL AS has_classes
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
