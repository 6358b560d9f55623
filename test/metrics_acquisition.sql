-- test/metrics_acquisition.sql: the acquisition, lead SLA and coverage numbers of issue 19 are
-- defined once.  Each one is read through every surface that shows it (crm.owner_dashboard,
-- crm.v_owner_dashboard, crm.dashboard_lead_sla, crm.v_lead_sla, crm.lead_sla,
-- crm.dashboard_coverage, crm.v_coverage, crm.coverage_by_class) and compared with the others
-- and with a plain-SQL computation written from the definition in docs/metrics.md, on the demo
-- data and on a small, differently shaped data set built below.
BEGIN;
SELECT plan(40);

-- The plain-SQL definitions read these temporary views; they point at the demo first, at the
-- small data set later.
CREATE TEMP VIEW t_leads AS SELECT lead_id::bigint, created_at, channel, manager_id::bigint, customer_id::bigint FROM crm_demo.leads;
CREATE TEMP VIEW t_ix AS SELECT customer_id::bigint, lead_id::bigint, occurred_at, kind, direction, automated FROM crm_demo.interactions;
CREATE TEMP VIEW t_spend AS SELECT channel, month::timestamptz AS spent_on, amount FROM crm_demo.spend;
CREATE TEMP VIEW t_orders AS SELECT customer_id::bigint, ordered_at, amount, cost FROM crm_demo.orders;
CREATE TEMP VIEW t_customers AS SELECT customer_id::bigint, created_at FROM crm_demo.customers;

-- Lead SLA per channel for leads created in [f, t): first response = the first non-automated
-- outbound interaction at or after creation and before t; within = response time <= sla.
CREATE FUNCTION pg_temp.p_sla(f timestamptz, t timestamptz, sla interval)
RETURNS TABLE (channel text, leads bigint, answered bigint, within_sla bigint, never_answered bigint)
LANGUAGE sql AS $$
WITH r AS (
    SELECT l.lead_id, l.channel, l.created_at, min(i.occurred_at) AS first_at
      FROM pg_temp.t_leads l
      LEFT JOIN pg_temp.t_ix i ON i.lead_id = l.lead_id AND NOT i.automated AND i.direction = 'outbound'
                              AND i.occurred_at >= l.created_at AND i.occurred_at < t
     WHERE l.created_at >= f AND l.created_at < t
     GROUP BY 1, 2, 3)
SELECT channel, count(*), count(first_at), count(*) FILTER (WHERE first_at - created_at <= sla),
       count(*) FILTER (WHERE first_at IS NULL)
  FROM r GROUP BY GROUPING SETS ((channel), ())
$$;

-- Cost of the leads of [f, t) unanswered at t: each costs its channel's spend in the lead's
-- calendar month divided by that channel's leads created in that month.
CREATE FUNCTION pg_temp.p_unanswered_cost(f timestamptz, t timestamptz) RETURNS numeric
LANGUAGE sql AS $$
SELECT round(coalesce(sum(
         (SELECT coalesce(sum(s.amount), 0) FROM pg_temp.t_spend s
           WHERE s.channel = u.channel AND date_trunc('month', s.spent_on) = date_trunc('month', u.created_at))
       / (SELECT count(*) FROM pg_temp.t_leads l2
           WHERE l2.channel = u.channel AND date_trunc('month', l2.created_at) = date_trunc('month', u.created_at))), 0), 2)
  FROM pg_temp.t_leads u
 WHERE u.created_at >= f AND u.created_at < t
   AND NOT EXISTS (SELECT 1 FROM pg_temp.t_ix i WHERE i.lead_id = u.lead_id AND NOT i.automated AND i.direction = 'outbound'
                      AND i.occurred_at >= u.created_at AND i.occurred_at < t)
$$;

-- Class A customers (crm.abc_class of the revenue of the 12 months before t) overdue at t:
-- (last non-automated contact before t, or, never contacted, customer since = created_at, else
-- the first order) + 1 month (the class-A interval) is before t.
CREATE FUNCTION pg_temp.p_overdue_a(t timestamptz) RETURNS bigint
LANGUAGE sql AS $$
WITH rv AS (SELECT customer_id, sum(amount) FILTER (WHERE ordered_at >= t - interval '12 months') AS rev,
                   min(ordered_at) AS first_at
              FROM pg_temp.t_orders WHERE ordered_at < t GROUP BY 1),
a AS (SELECT * FROM (SELECT customer_id, first_at, crm.abc_class(rev::float8) OVER () AS cls FROM rv) x WHERE cls = 'A')
SELECT count(*) FROM a
 WHERE coalesce((SELECT max(i.occurred_at) FROM pg_temp.t_ix i
                  WHERE i.customer_id = a.customer_id AND NOT i.automated AND i.occurred_at < t),
                (SELECT min(c.created_at) FROM pg_temp.t_customers c WHERE c.customer_id = a.customer_id),
                a.first_at) + interval '1 month' < t
$$;

CREATE FUNCTION pg_temp.dash(f date, t date, m text) RETURNS numeric LANGUAGE sql AS $$
SELECT value FROM crm.owner_dashboard(f, t) WHERE metric = m $$;
CREATE FUNCTION pg_temp.dash_prev(f date, t date, m text) RETURNS numeric LANGUAGE sql AS $$
SELECT previous_value FROM crm.owner_dashboard(f, t) WHERE metric = m $$;

-- ===================== the demo, Q4 2025 (previous period 2025-07-01 .. 09-30) ==============
SELECT crm.set_dashboard_period('2025-10-01', '2025-12-31');

-- 1. Lead SLA: one default (1 hour) on every surface
SELECT is((SELECT within_sla FROM crm.lead_sla(
              'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE created_at >= ''2025-10-01'' AND created_at < ''2026-01-01''',
              'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL')
            WHERE dimension = 'total'),
          (SELECT within_sla FROM pg_temp.p_sla('2025-10-01', '2026-01-01', '1 hour') WHERE channel IS NULL),
          'demo: crm.lead_sla with its default SLA = plain SQL with 1 hour');
SELECT is((SELECT within_sla FROM crm.dashboard_lead_sla('2025-10-01', '2025-12-31') WHERE channel IS NULL),
          (SELECT within_sla FROM pg_temp.p_sla('2025-10-01', '2026-01-01', '1 hour') WHERE channel IS NULL),
          'demo: crm.dashboard_lead_sla with its default SLA = plain SQL with 1 hour');
SELECT set_eq(
  $$SELECT key, leads, answered, within_sla, never_answered FROM crm.lead_sla(
       'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE created_at >= ''2025-10-01'' AND created_at < ''2026-01-01''',
       'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL')
     WHERE dimension <> 'manager'$$,
  $$SELECT coalesce(channel, 'all'), leads, answered, within_sla, never_answered FROM pg_temp.p_sla('2025-10-01', '2026-01-01', '1 hour')$$,
  'demo: crm.lead_sla per channel and total = plain SQL');
SELECT set_eq(
  $$SELECT channel, leads, answered, within_sla, never_answered FROM crm.v_lead_sla$$,
  $$SELECT coalesce(channel, 'all'), leads, answered, within_sla, never_answered FROM pg_temp.p_sla('2025-10-01', '2026-01-01', '1 hour')$$,
  'demo: crm.v_lead_sla per channel and total = plain SQL');
SELECT set_eq(
  $$SELECT coalesce(channel, 'all'), leads, answered, within_sla, never_answered FROM crm.dashboard_lead_sla('2025-10-01', '2025-12-31')$$,
  $$SELECT key, leads, answered, within_sla, never_answered FROM crm.lead_sla(
       'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE created_at >= ''2025-10-01'' AND created_at < ''2026-01-01''',
       'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL')
     WHERE dimension <> 'manager'$$,
  'demo: crm.dashboard_lead_sla = crm.lead_sla, per channel and total');
SELECT is((SELECT within_sla_pct FROM crm.v_lead_sla WHERE channel = 'all'),
          (SELECT within_sla_pct FROM crm.lead_sla(
              'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE created_at >= ''2025-10-01'' AND created_at < ''2026-01-01''',
              'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL')
            WHERE dimension = 'total'),
          'demo: share within SLA, v_lead_sla = lead_sla');
SELECT is(crm._lead_sla(), interval '1 hour', 'the one SLA default is 1 hour');

-- 2. Unanswered leads and their cost
SELECT is(pg_temp.dash('2025-10-01', '2025-12-31', 'unanswered_leads'),
          (SELECT never_answered::numeric FROM pg_temp.p_sla('2025-10-01', '2026-01-01', '1 hour') WHERE channel IS NULL),
          'demo: owner_dashboard unanswered_leads = plain SQL');
SELECT is(pg_temp.dash('2025-10-01', '2025-12-31', 'unanswered_leads'),
          (SELECT never_answered::numeric FROM crm.lead_sla(
              'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE created_at >= ''2025-10-01'' AND created_at < ''2026-01-01''',
              'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL')
            WHERE dimension = 'total'),
          'demo: owner_dashboard unanswered_leads = lead_sla never_answered');
SELECT is(pg_temp.dash('2025-10-01', '2025-12-31', 'unanswered_leads_cost'),
          pg_temp.p_unanswered_cost('2025-10-01', '2026-01-01'),
          'demo: owner_dashboard unanswered_leads_cost = plain SQL (cost per lead of the channel and calendar month)');
SELECT is(pg_temp.dash('2025-10-01', '2025-12-31', 'unanswered_leads_cost'),
          (SELECT never_answered_cost FROM crm.lead_sla(
              'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE created_at >= ''2025-10-01'' AND created_at < ''2026-01-01''',
              'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL',
              spend_sql => 'SELECT channel, month, amount FROM crm_demo.spend')
            WHERE dimension = 'total'),
          'demo: owner_dashboard unanswered_leads_cost = lead_sla never_answered_cost');
SELECT is((SELECT value FROM crm.v_owner_dashboard WHERE metric = 'unanswered_leads_cost'),
          pg_temp.p_unanswered_cost('2025-10-01', '2026-01-01'),
          'demo: v_owner_dashboard unanswered_leads_cost = plain SQL');
SELECT is(pg_temp.dash_prev('2025-10-01', '2025-12-31', 'unanswered_leads_cost'),
          pg_temp.p_unanswered_cost('2025-07-01', '2025-10-01'),
          'demo: previous-period unanswered_leads_cost = plain SQL');

-- 3. Overdue class A customers: the dashboard, its per-customer report and crm.coverage
SELECT is(pg_temp.dash('2025-10-01', '2025-12-31', 'overdue_class_a_customers'),
          pg_temp.p_overdue_a('2026-01-01')::numeric, 'demo: owner_dashboard overdue_class_a_customers = plain SQL');
SELECT is(pg_temp.dash_prev('2025-10-01', '2025-12-31', 'overdue_class_a_customers'),
          pg_temp.p_overdue_a('2025-10-01')::numeric, 'demo: previous-period overdue_class_a_customers = plain SQL');
SELECT is((SELECT count(*) FROM crm.dashboard_coverage('2026-01-01') WHERE abc_class = 'A' AND NOT covered),
          pg_temp.p_overdue_a('2026-01-01'), 'demo: dashboard_coverage class A not covered = plain SQL');
SELECT is((SELECT overdue FROM crm.v_coverage WHERE abc_class = 'A'),
          pg_temp.p_overdue_a('2026-01-01'), 'demo: v_coverage class A overdue = plain SQL');
-- crm.coverage tracking the same interactions, classes = the same 12-month ABC
SELECT ok(crm.attach_coverage('crm_demo.interactions', customers => 'crm_demo.customers') > 0, 'demo: coverage attached');
SELECT ok(crm.coverage_set_classes($$
    SELECT customer_id, crm.abc_class(rev::float8) OVER ()
      FROM (SELECT customer_id, sum(amount) FILTER (WHERE ordered_at >= '2025-01-01') AS rev
              FROM crm_demo.orders WHERE ordered_at < '2026-01-01' GROUP BY 1) r$$) > 0, 'demo: coverage classes set');
SET LOCAL crm.coverage_as_of = '2026-01-01';
SELECT is((SELECT overdue FROM crm.coverage_by_class WHERE class = 'A'),
          pg_temp.p_overdue_a('2026-01-01'), 'demo: coverage_by_class overdue class A = plain SQL');
SELECT is((SELECT overdue::numeric FROM crm.coverage_by_class WHERE class = 'A'),
          pg_temp.dash('2025-10-01', '2025-12-31', 'overdue_class_a_customers'),
          'demo: coverage_by_class overdue class A = owner_dashboard');
SELECT is(crm.detach_coverage(), true, 'demo: coverage detached');

-- ===================== a small data set: February 2026, previous period Jan 4 .. 31 ==========
CREATE SCHEMA mfx;
CREATE TABLE mfx.leads(lead_id bigint, created_at timestamptz, channel text, manager_id int, customer_id bigint);
INSERT INTO mfx.leads VALUES
 (1,'2026-01-02 10:00','web',1,NULL),   -- before the previous period, but a January web lead (cost per lead)
 (2,'2026-01-10 09:00','web',1,NULL),   -- never answered
 (3,'2026-01-20 12:00','fair',2,NULL),  -- answered Feb 3: unanswered at the previous period's end
 (4,'2026-02-02 08:00','web',1,NULL),   -- answered in 20 minutes
 (5,'2026-02-05 08:00','web',2,NULL),   -- answered in 2 hours
 (6,'2026-02-10 14:00','fair',2,NULL),  -- never answered
 (7,'2026-02-20 14:00','fair',1,NULL),  -- only an automated reply
 (8,'2026-02-27 23:30','web',1,NULL),   -- only its own inbound e-mail
 (9,'2026-03-01 09:00','web',1,NULL);   -- after the period
CREATE TABLE mfx.customers(customer_id bigint, created_at timestamptz, channel text, manager_id int);
INSERT INTO mfx.customers VALUES
 (11,'2025-03-01','web',1),(12,'2025-04-01','web',2),(13,'2026-02-15','fair',1),(14,'2025-05-01','fair',2),
 (15,'2026-02-10','web',1),(16,'2025-01-01','web',2),(17,'2025-01-01','fair',1);
CREATE TABLE mfx.orders(order_id bigint, customer_id bigint, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
INSERT INTO mfx.orders VALUES
 (1,11,'2025-06-01',5000,3000,1),(2,12,'2025-09-01',4000,2000,1),(3,13,'2026-02-16',6000,4000,2),
 (4,14,'2025-05-02',3000,1000,1),(5,15,'2026-02-11',3500,2000,2),(6,16,'2025-10-01',100,50,1),(7,17,'2025-11-01',50,20,1);
CREATE TABLE mfx.spend(channel text, month timestamptz, amount numeric);
INSERT INTO mfx.spend VALUES ('web','2026-01-15',300),('fair','2026-01-15',100),('web','2026-02-15',400),
 ('fair','2026-02-15',250),('web','2026-03-15',50);
CREATE TABLE mfx.interactions(interaction_id bigint, customer_id bigint, lead_id bigint, manager_id int,
                              occurred_at timestamptz, kind text, direction text, automated boolean);
INSERT INTO mfx.interactions VALUES
 (1,NULL,1,1,'2026-01-02 10:30','call','outbound',false),
 (2,NULL,3,2,'2026-02-03 10:00','call','outbound',false),
 (3,NULL,4,1,'2026-02-02 08:20','call','outbound',false),
 (4,NULL,5,2,'2026-02-05 10:00','email','outbound',false),
 (5,NULL,7,1,'2026-02-20 14:01','mailing','outbound',true),
 (6,NULL,8,1,'2026-02-27 23:40','email','inbound',false),
 (7,11,NULL,1,'2026-02-20','call','outbound',false),      -- 11 contacted in time
 (8,12,NULL,2,'2025-12-01','call','outbound',false),      -- 12 last contacted Dec 1: overdue
 (9,14,NULL,2,'2026-02-25','mailing','outbound',true),    -- 14 only mailed: never contacted, since 2025-05: overdue
 (10,15,NULL,1,'2026-01-20','meeting','inbound',false);   -- 15 met as a prospect Jan 20: due Feb 20, overdue
                                                           -- 13 never contacted, customer since Feb 15: due Mar 15
CREATE TABLE mfx.invoices(invoice_id bigint, customer_id bigint, issued_at timestamptz, due_at timestamptz, amount numeric, paid_at timestamptz);
CREATE TABLE mfx.deal_events(deal_id bigint, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
DO $$
BEGIN
    PERFORM crm.register_source('leads','SELECT lead_id, created_at, channel, manager_id, customer_id FROM mfx.leads');
    PERFORM crm.register_source('customers','SELECT customer_id, created_at, channel, manager_id FROM mfx.customers');
    PERFORM crm.register_source('orders','SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM mfx.orders');
    PERFORM crm.register_source('spend','SELECT channel, month, amount FROM mfx.spend');
    PERFORM crm.register_source('interactions','SELECT * FROM mfx.interactions');
    PERFORM crm.register_source('invoices','SELECT * FROM mfx.invoices');
    PERFORM crm.register_source('stage_events','SELECT * FROM mfx.deal_events');
END
$$;
CREATE OR REPLACE TEMP VIEW t_leads AS SELECT lead_id, created_at, channel, manager_id::bigint, customer_id FROM mfx.leads;
CREATE OR REPLACE TEMP VIEW t_ix AS SELECT customer_id, lead_id, occurred_at, kind, direction, automated FROM mfx.interactions;
CREATE OR REPLACE TEMP VIEW t_spend AS SELECT channel, month AS spent_on, amount FROM mfx.spend;
CREATE OR REPLACE TEMP VIEW t_orders AS SELECT customer_id, ordered_at, amount, cost FROM mfx.orders;
CREATE OR REPLACE TEMP VIEW t_customers AS SELECT customer_id, created_at FROM mfx.customers;
SELECT crm.set_dashboard_period('2026-02-01', '2026-02-28');

-- Hand-worked: February leads 4..8; answered 4 (20 min) and 5 (2 h); within 1 hour: 4 only
-- (within the old 15-minute default of crm.lead_sla: none).  Unanswered at Mar 1: 6, 7, 8.
-- Cost per lead: web Feb 400 / 3 leads (4, 5, 8), fair Feb 250 / 2 leads (6, 7):
-- 125 + 125 + 133.33 = 383.33.  Previous period: leads 2 and 3, both unanswered at Feb 1;
-- web Jan 300 / 2 leads (1, 2) + fair Jan 100 / 1 lead (3) = 250 (per period it would be
-- 300 / 1 + 100 / 1 = 400).
SELECT results_eq($$SELECT leads, answered, within_sla, never_answered FROM crm.dashboard_lead_sla('2026-02-01', '2026-02-28') WHERE channel IS NULL$$,
                  $$VALUES (5::bigint, 2::bigint, 1::bigint, 3::bigint)$$, 'small: dashboard_lead_sla total = hand-worked');
SELECT set_eq($$SELECT coalesce(channel, 'all'), leads, answered, within_sla, never_answered FROM crm.dashboard_lead_sla('2026-02-01', '2026-02-28')$$,
              $$SELECT coalesce(channel, 'all'), leads, answered, within_sla, never_answered FROM pg_temp.p_sla('2026-02-01', '2026-03-01', '1 hour')$$,
              'small: dashboard_lead_sla = plain SQL per channel');
SELECT set_eq($$SELECT channel, leads, answered, within_sla, never_answered FROM crm.v_lead_sla$$,
              $$SELECT coalesce(channel, 'all'), leads, answered, within_sla, never_answered FROM pg_temp.p_sla('2026-02-01', '2026-03-01', '1 hour')$$,
              'small: v_lead_sla = plain SQL per channel');
SELECT set_eq($$SELECT key, leads, answered, within_sla, never_answered FROM crm.lead_sla(
                   'SELECT lead_id::int, created_at, channel, manager_id FROM mfx.leads WHERE created_at >= ''2026-02-01'' AND created_at < ''2026-03-01''',
                   'SELECT lead_id::int, occurred_at, direction, automated FROM mfx.interactions WHERE lead_id IS NOT NULL')
                 WHERE dimension <> 'manager'$$,
              $$SELECT coalesce(channel, 'all'), leads, answered, within_sla, never_answered FROM pg_temp.p_sla('2026-02-01', '2026-03-01', '1 hour')$$,
              'small: lead_sla with its default = plain SQL per channel');
SELECT is(pg_temp.dash('2026-02-01', '2026-02-28', 'unanswered_leads'), 3::numeric, 'small: unanswered_leads = hand-worked');
SELECT is(pg_temp.dash('2026-02-01', '2026-02-28', 'unanswered_leads_cost'), 383.33, 'small: unanswered_leads_cost = hand-worked');
SELECT is(pg_temp.dash('2026-02-01', '2026-02-28', 'unanswered_leads_cost'), pg_temp.p_unanswered_cost('2026-02-01', '2026-03-01'),
          'small: unanswered_leads_cost = plain SQL');
SELECT is(pg_temp.dash('2026-02-01', '2026-02-28', 'unanswered_leads_cost'),
          (SELECT never_answered_cost FROM crm.lead_sla(
              'SELECT lead_id::int, created_at, channel, manager_id FROM mfx.leads WHERE created_at >= ''2026-02-01'' AND created_at < ''2026-03-01''',
              'SELECT lead_id::int, occurred_at, direction, automated FROM mfx.interactions WHERE lead_id IS NOT NULL',
              spend_sql => 'SELECT channel, month, amount FROM mfx.spend')
            WHERE dimension = 'total'),
          'small: unanswered_leads_cost = lead_sla never_answered_cost');
SELECT is(pg_temp.dash_prev('2026-02-01', '2026-02-28', 'unanswered_leads_cost'), 250::numeric,
          'small: previous-period unanswered_leads_cost = hand-worked (per calendar month, not per period)');
SELECT is(pg_temp.dash_prev('2026-02-01', '2026-02-28', 'unanswered_leads_cost'), pg_temp.p_unanswered_cost('2026-01-04', '2026-02-01'),
          'small: previous-period unanswered_leads_cost = plain SQL');

-- Class A at Mar 1 (12-month revenue 13: 6000, 11: 5000, 12: 4000, 15: 3500, 14: 3000 of 21650):
-- A holds the customers with less than 80 % of the revenue above them: 13, 11, 12, 15
-- (above 15: 15000 < 17320; above 14: 18500).  Overdue: 12 (last contact Dec 1) and 15 (met
-- Jan 20, before becoming a customer); 11 was contacted Feb 20; 13 is new (due Mar 15) = 2.
SELECT is(pg_temp.dash('2026-02-01', '2026-02-28', 'overdue_class_a_customers'), 2::numeric,
          'small: overdue_class_a_customers = hand-worked');
SELECT is(pg_temp.dash('2026-02-01', '2026-02-28', 'overdue_class_a_customers'), pg_temp.p_overdue_a('2026-03-01')::numeric,
          'small: overdue_class_a_customers = plain SQL');
SELECT is(pg_temp.dash_prev('2026-02-01', '2026-02-28', 'overdue_class_a_customers'), pg_temp.p_overdue_a('2026-02-01')::numeric,
          'small: previous-period overdue_class_a_customers = plain SQL');
SELECT set_eq($$SELECT customer_id::bigint FROM crm.dashboard_coverage('2026-03-01') WHERE abc_class = 'A' AND NOT covered$$,
              $$VALUES (12::bigint), (15)$$, 'small: dashboard_coverage class A not covered = 12 and 15');
SELECT is((SELECT overdue FROM crm.v_coverage WHERE abc_class = 'A'), 2::bigint, 'small: v_coverage class A overdue = 2');
SELECT is(crm.attach_coverage('mfx.interactions', customers => 'mfx.customers'), 7::bigint, 'small: coverage attached');
SELECT is(crm.coverage_set_classes($$
    SELECT customer_id, crm.abc_class(rev::float8) OVER ()
      FROM (SELECT customer_id, sum(amount) FILTER (WHERE ordered_at >= '2025-03-01') AS rev
              FROM mfx.orders WHERE ordered_at < '2026-03-01' GROUP BY 1) r$$), 7::bigint, 'small: coverage classes set');
SET LOCAL crm.coverage_as_of = '2026-03-01';
SELECT is((SELECT overdue::numeric FROM crm.coverage_by_class WHERE class = 'A'),
          pg_temp.dash('2026-02-01', '2026-02-28', 'overdue_class_a_customers'),
          'small: coverage_by_class overdue class A = owner_dashboard');

SELECT * FROM finish();
ROLLBACK;
