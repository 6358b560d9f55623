-- test/metrics_owner.sql (pgTAP): issue 20's owner metrics (buyers, churned_customers, churn_rate,
-- churned_revenue, lost_opportunity_cost of crm.owner_dashboard) and the manager activity of
-- crm.dashboard_managers / crm.v_managers (calls, meetings, emails, contacts, average_won_deal,
-- sales_cycle_days), against an independent plain-SQL computation over crm_demo.* (Q4 2025 and the
-- previous period, on the demo loaded by scripts/test) and against a small hand-worked set with
-- mid-month periods (where the channel-month cost of a lead differs from spend / leads).
-- Hand-worked values of the main fixture are in test/dashboard_fixture.sql.
BEGIN;
SELECT plan(22);
SET LOCAL TimeZone = 'UTC';

-- ===== demo: plain SQL, written with anti-joins and window functions =============================
CREATE TEMP TABLE od AS SELECT * FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
CREATE FUNCTION pg_temp.od(m text) RETURNS numeric LANGUAGE sql AS $$ SELECT value FROM od WHERE metric = m $$;
CREATE FUNCTION pg_temp.odp(m text) RETURNS numeric LANGUAGE sql AS $$ SELECT previous_value FROM od WHERE metric = m $$;

-- per customer and period: q4 = Q4, q3 = its previous period (Jul 1 .. Sep 30, 92 days), q2 = the
-- 92 days before that (2025-03-31 .. 06-30)
CREATE TEMP TABLE q AS
SELECT customer_id, CASE WHEN ordered_at >= '2025-10-01' THEN 'q4' WHEN ordered_at >= '2025-07-01' THEN 'q3' ELSE 'q2' END AS qtr,
       sum(amount) AS rev
  FROM crm_demo.orders WHERE ordered_at >= '2025-03-31' AND ordered_at < '2026-01-01' GROUP BY 1, 2;

SELECT is(ARRAY[pg_temp.od('buyers'), pg_temp.odp('buyers')],
          ARRAY[(SELECT count(*) FROM q WHERE qtr = 'q4'), (SELECT count(*) FROM q WHERE qtr = 'q3')]::numeric[],
          'metric buyers: demo Q4 and Q3 = plain SQL');
SELECT is(ARRAY[pg_temp.od('churned_customers'), pg_temp.od('churned_revenue')],
          (SELECT ARRAY[count(*), sum(a.rev)]::numeric[] FROM q a LEFT JOIN q b ON b.customer_id = a.customer_id AND b.qtr = 'q4'
            WHERE a.qtr = 'q3' AND b.customer_id IS NULL),
          'metric churned_customers, churned_revenue: demo Q4 = plain SQL (Q3 buyers without a Q4 order, their Q3 revenue)');
SELECT is(ARRAY[pg_temp.odp('churned_customers'), pg_temp.odp('churned_revenue')],
          (SELECT ARRAY[count(*), sum(a.rev)]::numeric[] FROM q a LEFT JOIN q b ON b.customer_id = a.customer_id AND b.qtr = 'q3'
            WHERE a.qtr = 'q2' AND b.customer_id IS NULL),
          'metric churned_customers, churned_revenue: demo previous period (Q2 -> Q3) = plain SQL');
SELECT is(ARRAY[pg_temp.od('churn_rate'), pg_temp.odp('churn_rate')],
          ARRAY[(SELECT round(100.0 * count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM q b WHERE b.customer_id = a.customer_id AND b.qtr = 'q4')) / count(*), 2)
                   FROM q a WHERE a.qtr = 'q3'),
                (SELECT round(100.0 * count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM q b WHERE b.customer_id = a.customer_id AND b.qtr = 'q3')) / count(*), 2)
                   FROM q a WHERE a.qtr = 'q2')],
          'metric churn_rate: demo Q4 and previous period = plain SQL');

-- the value of one lead: per lead, its channel-month cost through a window over the leads
CREATE TEMP TABLE lc AS
SELECT l.lead_id, l.created_at, l.customer_id,
       coalesce(s.amount, 0) / count(*) OVER (PARTITION BY l.channel, date_trunc('month', l.created_at)) AS cost
  FROM crm_demo.leads l
  LEFT JOIN (SELECT channel, date_trunc('month', month) AS m, sum(amount) AS amount FROM crm_demo.spend GROUP BY 1, 2) s
         ON s.channel = l.channel AND s.m = date_trunc('month', l.created_at);
CREATE FUNCTION pg_temp.loc(f timestamptz, t timestamptz) RETURNS numeric LANGUAGE sql AS $$
SELECT round(((SELECT sum(amount) FROM crm_demo.orders WHERE ordered_at >= f AND ordered_at < t)
              / (SELECT count(DISTINCT customer_id) FROM crm_demo.orders WHERE ordered_at >= f AND ordered_at < t)
              * (SELECT count(*) FROM lc JOIN (SELECT customer_id, min(ordered_at) AS first_at FROM crm_demo.orders GROUP BY 1) fo
                        USING (customer_id) WHERE lc.created_at >= f AND lc.created_at < t AND fo.first_at < t)
              - (SELECT sum(cost) FROM lc WHERE created_at >= f AND created_at < t))
             / (SELECT count(*) FROM lc WHERE created_at >= f AND created_at < t), 2) $$;
SELECT is(pg_temp.od('lost_opportunity_cost'), pg_temp.loc('2025-10-01', '2026-01-01'), 'metric lost_opportunity_cost: demo Q4 = plain SQL');
SELECT is(pg_temp.odp('lost_opportunity_cost'), pg_temp.loc('2025-07-01', '2025-10-01'), 'metric lost_opportunity_cost: demo previous period = plain SQL');

-- manager activity, per manager, plain SQL with correlated subqueries
CREATE FUNCTION pg_temp.act(f timestamptz, t timestamptz)
RETURNS TABLE (manager_id text, calls bigint, meetings bigint, emails bigint, contacts bigint, avg_won numeric, cycle numeric)
LANGUAGE sql AS $$
WITH won AS (
    SELECT d.deal_id, d.manager_id, d.amount,
           (SELECT min(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id) AS first_at,
           (SELECT min(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = 'paid') AS paid_at
      FROM crm_demo.deals d
     WHERE EXISTS (SELECT 1 FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = 'paid' AND e.changed_at >= f AND e.changed_at < t)
       AND NOT EXISTS (SELECT 1 FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = 'lost'
                          AND e.changed_at < (SELECT min(changed_at) FROM crm_demo.deal_events p WHERE p.deal_id = d.deal_id AND p.stage = 'paid')))
SELECT m.manager_id::text,
       (SELECT count(*) FROM crm_demo.interactions i WHERE i.manager_id = m.manager_id AND NOT i.automated AND i.kind = 'call' AND i.occurred_at >= f AND i.occurred_at < t),
       (SELECT count(*) FROM crm_demo.interactions i WHERE i.manager_id = m.manager_id AND NOT i.automated AND i.kind = 'meeting' AND i.occurred_at >= f AND i.occurred_at < t),
       (SELECT count(*) FROM crm_demo.interactions i WHERE i.manager_id = m.manager_id AND NOT i.automated AND i.kind = 'email' AND i.occurred_at >= f AND i.occurred_at < t),
       (SELECT count(*) FROM crm_demo.interactions i WHERE i.manager_id = m.manager_id AND NOT i.automated AND i.occurred_at >= f AND i.occurred_at < t),
       (SELECT round(avg(amount), 2) FROM won WHERE won.manager_id = m.manager_id),
       (SELECT round(avg(extract(epoch FROM paid_at - first_at) / 86400), 2) FROM won WHERE won.manager_id = m.manager_id)
  FROM crm_demo.managers m
$$;
SELECT set_eq($$SELECT manager_id, calls, meetings, emails, contacts, average_won_deal, sales_cycle_days FROM crm.dashboard_managers('2025-10-01', '2025-12-31')$$,
              $$SELECT * FROM pg_temp.act('2025-10-01', '2026-01-01')$$,
              'metric calls, meetings, emails, contacts, average_won_deal, sales_cycle (per manager): demo Q4 = plain SQL');
SELECT set_eq($$SELECT manager_id, calls, meetings, emails, contacts, average_won_deal, sales_cycle_days FROM crm.dashboard_managers('2025-07-01', '2025-09-30')$$,
              $$SELECT * FROM pg_temp.act('2025-07-01', '2025-10-01')$$,
              'metric calls, meetings, emails, contacts, average_won_deal, sales_cycle (per manager): demo previous period = plain SQL');
SELECT ok((SELECT bool_and(contacts >= calls + meetings + emails AND contacts > 0) FROM crm.dashboard_managers('2025-10-01', '2025-12-31')),
          'metric contacts: every demo manager has contacts, at least calls + meetings + emails');

-- ===== hand-worked set: mid-month periods ========================================================
-- Period 2025-03-01 .. 03-31 (31 days); previous 2025-01-29 .. 02-28; the one before 2024-12-29 .. 2025-01-28.
CREATE SCHEMA ofx;
CREATE TABLE ofx.customers(customer_id int, created_at timestamptz, channel text, manager_id int);
CREATE TABLE ofx.orders(order_id int, customer_id int, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
INSERT INTO ofx.orders VALUES
 (1, 1, '2025-01-05', 100, 0, 1), (2, 1, '2025-02-10', 200, 0, 1), (3, 1, '2025-03-05', 300, 0, 1),   -- c1 buys every period
 (4, 2, '2025-01-10', 50, 0, 1), (5, 2, '2025-02-15', 80, 0, 1),                                     -- c2 stops after the previous period
 (6, 3, '2025-02-01', 120, 0, 1), (7, 3, '2025-02-20', 30, 0, 1),                                    -- c3 too (2 orders there)
 (8, 4, '2025-01-20', 70, 0, 1), (9, 4, '2025-03-10', 1500, 0, 1),                                   -- c4 skips the previous period, comes back
 (10, 5, '2025-03-20', 40, 0, 1),                                                                    -- c5 new
 (11, 6, '2025-01-30', 60, 0, 1), (12, 6, '2025-03-31 23:00', 10, 0, 1),                             -- c6 (Jan 30 is in the previous period)
 (13, 7, '2025-01-28', 25, 0, 1),                                                                    -- c7 last day of the period before
 (14, 8, '2025-01-15', 45, 0, 1), (15, 8, '2025-02-05', 55, 0, 1);                                   -- c8 stops after the previous period
INSERT INTO ofx.customers SELECT customer_id, min(ordered_at), CASE WHEN customer_id IN (4, 6) THEN 'seo' ELSE 'ads' END, 1 FROM ofx.orders GROUP BY 1;
CREATE TABLE ofx.leads(lead_id int, created_at timestamptz, channel text, manager_id int, customer_id int);
INSERT INTO ofx.leads VALUES (1, '2025-03-02', 'ads', 1, 5), (2, '2025-03-15', 'ads', 1, NULL), (3, '2025-03-20', 'seo', 2, 4),
 (4, '2025-03-25', 'seo', 2, NULL), (5, '2025-01-30', 'ads', 1, 6), (6, '2025-02-10', 'ads', 1, NULL), (7, '2025-01-10', 'ads', 1, NULL);
CREATE TABLE ofx.spend(channel text, spent_on date, amount numeric);
INSERT INTO ofx.spend VALUES ('ads', '2025-01-01', 300), ('ads', '2025-02-01', 200), ('ads', '2025-03-01', 400), ('seo', '2025-03-01', 100);
CREATE TABLE ofx.interactions(interaction_id int, customer_id int, lead_id int, manager_id int, occurred_at timestamptz, kind text, direction text, automated boolean);
INSERT INTO ofx.interactions VALUES
 (1, 1, NULL, 1, '2025-03-03', 'Call', 'outbound', false), (2, 2, NULL, 1, '2025-03-04', 'e-mail', 'outbound', false),
 (3, NULL, NULL, 2, '2025-03-31 23:59', 'meeting', 'inbound', false), (4, NULL, NULL, 2, '2025-04-01', 'meeting', 'outbound', false),
 (5, 1, NULL, 1, '2025-03-05', 'sms', 'outbound', true), (6, NULL, NULL, NULL, '2025-03-06', 'call', 'outbound', false);
CREATE TABLE ofx.invoices(invoice_id int, customer_id int, issued_at timestamptz, due_at timestamptz, amount numeric, paid_at timestamptz);
CREATE TABLE ofx.deal_events(deal_id int, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
SELECT lives_ok($$SELECT crm.register_source('customers', 'SELECT * FROM ofx.customers'), crm.register_source('orders', 'SELECT * FROM ofx.orders'),
       crm.register_source('leads', 'SELECT * FROM ofx.leads'), crm.register_source('spend', 'SELECT * FROM ofx.spend'),
       crm.register_source('interactions', 'SELECT interaction_id, customer_id, lead_id, manager_id, occurred_at, kind, direction, automated FROM ofx.interactions'),
       crm.register_source('invoices', 'SELECT * FROM ofx.invoices'), crm.register_source('stage_events', 'SELECT * FROM ofx.deal_events')$$,
       'the hand-worked set registered as the sources');

-- Hand-worked (this period | previous):
--  buyers: c1, c4, c5, c6 = 4 | c1, c2, c3, c6, c8 = 5 (the one before: c1, c2, c4, c7, c8 = 5).
--  churned: previous buyers without an order now: c2, c3, c8 = 3, 100 x 3 / 5 = 60 %, their previous
--           revenue 80 + 150 + 55 = 285 | c4, c7 = 2 of 5 = 40 %, revenue 70 + 25 = 95 (c4 came back in March:
--           not churned now, it did not buy in the previous period).
--  revenue 300 + 1500 + 40 + 10 = 1850 | 200 + 80 + 150 + 60 + 55 = 545.
--  leads 1-4, converted 1 (c5) and 3 (c4) = 2 of 4 | leads 5 (c6, first order Jan 30), 6 = 1 of 2.
--  cost of the leads, channel-month rule: ads March 400 / 2 leads, seo March 100 / 2 = 200 + 200 + 50 + 50 = 500
--           | ads January 300 / 2 leads (5 and 7) = 150, ads February 200 / 1 = 200: 350 (marketing_spend of
--           Jan 29 .. Feb 28 is only 200: the January spend row is dated Jan 1).
--  lost_opportunity_cost = (1850 / 4 x 2 - 500) / 4 = 106.25 | (545 / 5 x 1 - 350) / 2 = -120.50.
SELECT results_eq(
  $$SELECT metric, value, previous_value FROM crm.owner_dashboard('2025-03-01', '2025-03-31')
     WHERE metric IN ('buyers', 'revenue', 'leads_in', 'marketing_spend', 'churned_customers', 'churn_rate', 'churned_revenue', 'lost_opportunity_cost')$$,
  $$VALUES ('leads_in', 4::numeric, 2::numeric), ('marketing_spend', 500, 200), ('revenue', 1850, 545), ('buyers', 4, 5),
           ('churned_customers', 3, 2), ('churn_rate', 60.00, 40.00), ('churned_revenue', 285, 95),
           ('lost_opportunity_cost', 106.25, -120.50)$$,
  'metric churn_rate, churned_customers, churned_revenue, lost_opportunity_cost, buyers: hand-worked, mid-month periods');
SELECT is((SELECT previous_value FROM crm.owner_dashboard('2025-03-01', '2025-03-31') WHERE metric = 'churn_rate'),
          (SELECT value FROM crm.owner_dashboard('2025-01-29', '2025-02-28') WHERE metric = 'churn_rate'),
          'metric churn_rate: previous_value = the figure of the previous period');
-- a period with no buyer before it: churn rate NULL, not 0 or an error
SELECT is((SELECT value FROM crm.owner_dashboard('2024-11-01', '2024-11-30') WHERE metric = 'churn_rate'), NULL,
          'metric churn_rate: NULL when the previous period had no buyer');
SELECT is((SELECT value FROM crm.owner_dashboard('2024-11-01', '2024-11-30') WHERE metric = 'lost_opportunity_cost'), NULL,
          'metric lost_opportunity_cost: NULL without leads or buyers');
-- one-day period: Mar 31 vs Mar 30 vs Mar 29: c6 bought on Mar 31 only
SELECT results_eq(
  $$SELECT metric, value, previous_value FROM crm.owner_dashboard('2025-03-31', '2025-03-31') WHERE metric IN ('buyers', 'churn_rate')$$,
  $$VALUES ('buyers', 1::numeric, 0::numeric), ('churn_rate', NULL, NULL)$$,
  'metric buyers, churn_rate: one-day periods');

-- manager activity: manager 1 the "Call" (any case) and the "e-mail", not the automated sms;
-- manager 2 the meeting at 23:59 on the last day, not the one of April 1; an interaction without a manager
SELECT results_eq(
  $$SELECT manager_id, calls, meetings, emails, contacts FROM crm.dashboard_managers('2025-03-01', '2025-03-31')$$,
  $$VALUES ('1', 1::bigint, 0::bigint, 1::bigint, 2::bigint), ('2', 0, 1, 0, 1), (NULL, 1, 0, 0, 1)$$,
  'metric calls, meetings, emails, contacts: hand-worked (kinds in any case, e-mail spelled both ways, no-manager row)');

-- bad input: the period errors every report shares
SELECT throws_ok($$SELECT * FROM crm.dashboard_managers('2025-03-31', '2025-03-01')$$, '22023',
                 'period start 2025-03-31 is after its end 2025-03-01', 'dashboard_managers: inverted period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_managers('2025-03-01', 'infinity')$$, '22008',
                 NULL, 'dashboard_managers: infinite period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_managers('2025-03-01', NULL)$$, '22004',
                 'period bounds must not be null', 'dashboard_managers: NULL bound');
SELECT throws_ok($$SELECT * FROM crm.owner_dashboard('-infinity', '2025-03-01')$$, '22008',
                 NULL, 'owner_dashboard: infinite period');
SELECT ok(crm.unregister_source('interactions'), 'unregister interactions');
SELECT throws_ok($$SELECT * FROM crm.dashboard_managers('2025-03-01', '2025-03-31')$$, '55000',
                 'source "interactions" is not registered', 'dashboard_managers: the activity needs the interactions source');

SELECT * FROM finish();
ROLLBACK;
