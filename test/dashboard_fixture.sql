-- test/dashboard_fixture.sql: the owner dashboard, its reports and views on a tiny hand-made CRM
-- whose every figure was worked out by hand (see the comments); and every bad input.
BEGIN;
SELECT plan(57);

CREATE SCHEMA dfx;
CREATE TABLE dfx.leads(lead_id bigint, created_at timestamptz, channel text, manager_id int, customer_id bigint);
INSERT INTO dfx.leads VALUES
 (1,'2025-12-02','ads',1,101),(2,'2025-12-03','ads',1,NULL),(3,'2025-12-05','seo',2,102),(4,'2025-12-09','ads',2,NULL),
 (5,'2025-11-25','ads',1,103),(6,'2025-11-26','seo',2,NULL),(7,'2025-10-01','seo',1,104);
CREATE TABLE dfx.customers(customer_id bigint, created_at timestamptz, channel text, manager_id int);
INSERT INTO dfx.customers VALUES (101,'2025-12-04','ads',1),(102,'2025-12-11','seo',2),(103,'2025-11-27','ads',1),(104,'2025-10-05','seo',1);
CREATE TABLE dfx.orders(order_id bigint, customer_id bigint, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
INSERT INTO dfx.orders VALUES
 (1,104,'2025-10-05',1000,600,1),(2,103,'2025-11-27',200,120,1),(3,101,'2025-12-04',300,100,2),
 (4,104,'2025-12-06',500,300,1),(5,102,'2025-12-11',400,100,2),(6,103,'2025-12-08',100,50,2);
CREATE TABLE dfx.spend(channel text, month date, amount numeric);
INSERT INTO dfx.spend VALUES ('ads','2025-12-01',400),('seo','2025-12-01',100),('ads','2025-11-25',90),('seo','2025-11-01',1000);
CREATE TABLE dfx.interactions(interaction_id bigint, customer_id bigint, lead_id bigint, manager_id int, occurred_at timestamptz, kind text, direction text, automated boolean);
INSERT INTO dfx.interactions VALUES
 (1,NULL,1,1,'2025-12-02 10:00','call','outbound',false),(2,NULL,2,1,'2025-12-03 09:00','mailing','outbound',true),
 (3,NULL,3,2,'2025-12-12 09:00','call','outbound',false),(4,NULL,5,1,'2025-11-25 12:00','call','outbound',false),
 (5,104,NULL,1,'2025-11-20','call','outbound',false),(6,103,NULL,1,'2025-12-09','email','outbound',false),
 -- not responses: the lead's own inbound e-mail, and a call logged before the lead was created
 (7,NULL,4,2,'2025-12-09 08:00','email','inbound',false),(8,NULL,6,2,'2025-11-25 23:00','call','outbound',false),
 -- manager activity only (no lead, no customer): a meeting and a chat of manager 2 in the period;
 -- an automated call and a call just after the end, which are not counted
 (9,NULL,NULL,2,'2025-12-10 15:00','meeting','outbound',false),(10,NULL,NULL,2,'2025-12-05','chat','inbound',false),
 (11,NULL,NULL,1,'2025-12-05','call','outbound',true),(12,NULL,NULL,1,'2025-12-11 00:00','call','outbound',false);
CREATE TABLE dfx.invoices(invoice_id bigint, customer_id bigint, issued_at timestamptz, due_at timestamptz, amount numeric, paid_at timestamptz);
INSERT INTO dfx.invoices VALUES
 (1,101,'2025-12-03','2025-12-08',300,'2025-12-04'),(2,103,'2025-11-26','2025-12-05',100,NULL),
 (3,104,'2025-11-28','2025-11-29',500,'2025-12-06'),(4,102,'2025-12-09','2025-12-20',400,NULL);
CREATE TABLE dfx.deal_events(deal_id bigint, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO dfx.deal_events VALUES
 (1,'2025-12-02','lead',300,1,'ads'),(1,'2025-12-03','qualified',300,1,'ads'),(1,'2025-12-04','paid',300,1,'ads'),
 (2,'2025-12-03','lead',250,1,'ads'),(2,'2025-12-05','qualified',250,1,'ads'),(2,'2025-12-07','lost',250,1,'ads'),
 (3,'2025-12-05','lead',400,2,'seo'),(3,'2025-12-08','proposal',400,2,'seo'),
 (4,'2025-11-25','lead',200,1,'ads'),(4,'2025-11-26','invoice',200,1,'ads'),(4,'2025-11-27','paid',200,1,'ads'),
 (5,'2025-11-26','lead',150,2,'seo'),(5,'2025-11-28','lost',150,2,'seo'),
 (6,'2025-10-01','lead',1000,1,'seo'),(6,'2025-10-03','proposal',1000,1,'seo'),
 (7,'2025-11-29','lead',80,2,'seo'),(7,'2025-12-02','qualified',80,2,'seo');
DELETE FROM crm.pipeline_stages;
INSERT INTO crm.pipeline_stages VALUES ('lead',1,0.10,'open'),('qualified',2,0.25,'open'),('proposal',3,0.50,'open'),
 ('invoice',4,0.80,'open'),('paid',5,1,'won'),('lost',6,0,'lost');
DO $$
BEGIN
    PERFORM crm.register_source('leads','SELECT lead_id, created_at, channel, manager_id, customer_id FROM dfx.leads');
    PERFORM crm.register_source('customers','SELECT customer_id, created_at, channel, manager_id FROM dfx.customers');
    PERFORM crm.register_source('orders','SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM dfx.orders');
    PERFORM crm.register_source('spend','SELECT channel, month, amount FROM dfx.spend');
    PERFORM crm.register_source('interactions','SELECT * FROM dfx.interactions');
    PERFORM crm.register_source('invoices','SELECT * FROM dfx.invoices');
    PERFORM crm.register_source('stage_events','SELECT * FROM dfx.deal_events');
END
$$;

-- Period 2025-12-01..10 (cur = [Dec 1, Dec 11)); previous period of equal length 2025-11-21..30.
-- Hand-worked (cur | prev):
--  leads_in: leads 1-4 | 5,6.  new_buyers: 101 (first order Dec 4) | 103 (Nov 27); 102 buys Dec 11 = after the end.
--  conversion: lead 1 -> 101 bought before Dec 11 = 1/4 | lead 5 -> 103 = 1/2.
--  spend: ads 400 + seo 100 | ads 90 (the seo 1000 of Nov 1 is outside).  cac: 500/1 | 90/1.
--  revenue: orders 3,4,6 = 300+500+100 | order 2 = 200;  gross profit 200+200+50 | 80;  average check 900/3 | 200/1.
--  repeat rate: buyers in period 101 (1 order), 104 (2), 103 (2) = 2/3 | 103 had 1 order by Nov 30 = 0/1.
--  roi: (450-500)/500 | (80-90)/90.
--  deals: won deal 1 (300, Dec 2 -> Dec 4), lost deal 2 (250, at qualified) | won deal 4 (200, 2 days), lost deal 5 (150, at lead).
--  open at the end: deals 3 (proposal 400), 6 (proposal 1000), 7 (qualified 80) -> weighted 200+500+20
--                 | deals 6 (proposal 1000), 7 (lead 80) -> weighted 500+8.
--  velocity: 3 open * 50% * 300 / 2 days | 2 * 50% * 200 / 2.
--  invoices unpaid at Dec 11: 2 (100 issued Nov 26, 400 issued Dec 9): 500, age (15+2)/2; overdue: the 100 (due Dec 5)
--         | at Dec 1: 2 (100 issued Nov 26, 500 issued Nov 28 paid Dec 6): 600, age (5+3)/2; overdue: the 500 (due Nov 29).
--  unanswered leads: 2 (only a mailing), 3 (called Dec 12), 4 (only its own inbound e-mail)
--                  | 6 (called the day before it was created).
--    cost = the channel's spend in the lead's calendar month / its leads created that month:
--      ads Dec 400/3 leads (1, 2, 4) * 2 + seo Dec 100/1 lead (3) = 366.67 | lead 6: seo Nov 1000/1 lead (6) = 1000.
--  class A overdue: A = 104 (1500), 101 and 103 (300 each: 1500/2100 < 0.8 above them); 104 contacted Nov 20,
--    103 Dec 9, 101 never contacted but a customer only since Dec 4 (due Jan 4) = 0 | A = 104 only, contacted Nov 20.
--  buyers (customers with an order in the period): 101, 103, 104 | 103.
--  churn: the previous period's buyer 103 bought again (Dec 8): churned 0 of 1 = 0 %, churned revenue 0
--       | the period before the previous one (Nov 11..20) had no buyer: churned 0, churn rate NULL.
--  lost_opportunity_cost = (revenue / buyers x converted leads - cost of the period's leads) / leads:
--       (900 / 3 x 1 - (400 + 100)) / 4 = -50 | (200 / 1 x 1 - (90 + 1000)) / 2 = -445
--       (the leads cost more than the revenue they bring: a negative value).
SELECT results_eq(
  $$SELECT metric, value, unit, previous_value FROM crm.owner_dashboard('2025-12-01', '2025-12-10')$$,
  $$VALUES ('leads_in', 4::numeric, 'count', 2::numeric), ('new_buyers', 1, 'count', 1),
           ('lead_to_buyer_conversion', 25, 'pct', 50), ('marketing_spend', 500, 'money', 90),
           ('cac', 500, 'money', 90), ('revenue', 900, 'money', 200), ('orders', 3, 'count', 1),
           ('buyers', 3, 'count', 1),
           ('average_check', 300, 'money', 200), ('repeat_purchase_rate', 66.67, 'pct', 0),
           ('gross_profit', 450, 'money', 80), ('roi', -10, 'pct', -11.11),
           ('win_rate', 50, 'pct', 50), ('deals_won', 1, 'count', 1), ('average_won_deal', 300, 'money', 200),
           ('sales_cycle', 2, 'days', 2), ('open_deals', 3, 'count', 2), ('open_pipeline_value', 1480, 'money', 1080),
           ('weighted_pipeline', 720, 'money', 508), ('stale_deals', 0, 'count', 0), ('stale_pipeline_value', 0, 'money', 0),
           ('sales_velocity', 225, 'money_per_day', 100),
           ('deals_lost', 1, 'count', 1), ('lost_deal_value', 250, 'money', 150),
           ('lost_value_at_lead', 0, 'money', 150), ('lost_value_at_qualified', 250, 'money', 0),
           ('lost_value_at_proposal', 0, 'money', 0), ('lost_value_at_invoice', 0, 'money', 0),
           ('churned_customers', 0, 'count', 0), ('churn_rate', 0, 'pct', NULL), ('churned_revenue', 0, 'money', 0),
           ('unpaid_invoices', 2, 'count', 2), ('unpaid_invoice_amount', 500, 'money', 600),
           ('unpaid_invoice_age', 8.5, 'days', 4), ('overdue_invoices', 1, 'count', 1),
           ('overdue_invoice_amount', 100, 'money', 500), ('unanswered_leads', 3, 'count', 1),
           ('unanswered_leads_cost', 366.67, 'money', 1000), ('lost_opportunity_cost', -50, 'money', -445),
           ('overdue_class_a_customers', 0, 'count', 0)$$,
  'owner_dashboard: every figure and its previous-period value equal the hand-worked ones');

SELECT is((SELECT array_agg(DISTINCT section ORDER BY section) FROM crm.owner_dashboard('2025-12-01', '2025-12-10')),
          ARRAY['acquisition', 'money_lost', 'pipeline', 'sales'], 'owner_dashboard: sections');

-- the previous-period column is the same function run on the previous period
SELECT is((SELECT count(*) FROM crm.owner_dashboard('2025-12-01', '2025-12-10') c
             JOIN crm.owner_dashboard('2025-11-21', '2025-11-30') p USING (metric)
            WHERE c.previous_value IS NOT DISTINCT FROM p.value), 40::bigint,
          'owner_dashboard: previous_value = the figure of the previous period, for all 40 metrics');

SELECT is((SELECT change_pct FROM crm.owner_dashboard('2025-12-01', '2025-12-10') WHERE metric = 'revenue'),
          350.00, 'owner_dashboard: change_pct = (900 - 200) / 200');

-- ads: leads 1,2,4; lead 1 bought; buyers 101 (new) and 103; revenue 300+100, gp 200+50; spend 400;
--      ltv = gross profit to date per buyer (101: 200, 103: 80+50) = 165.
-- seo: lead 3 (bought after the end); 104 is not new; revenue 500 gp 200; spend 100; ltv 104: 400+200.
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_channels('2025-12-01', '2025-12-10')$$,
  $$VALUES ('ads', 3::bigint, 1::bigint, 33.33, 400::numeric, 250::numeric, 400::numeric, 400::numeric, -37.50, 165::numeric, 0.41),
           ('seo', 1, 0, 0, 500, 200, 100, NULL, 100, 600, NULL)$$,
  'dashboard_channels: hand-worked figures');

SELECT is((SELECT sum(revenue) FROM crm.dashboard_channels('2025-12-01', '2025-12-10')),
          (SELECT value FROM crm.owner_dashboard('2025-12-01', '2025-12-10') WHERE metric = 'revenue'),
          'dashboard_channels: revenue adds up to the dashboard revenue');

-- manager 1: leads 1 (called after 600 min), 2 (mailing only); won deal 1, lost deal 2;
--            customers 101, 103, 104 (revenue 900), all covered (101 never contacted, a customer since Dec 4: due Jan 4).
-- manager 2: leads 3, 4 unanswered; deals 3, 7 open; customer 102 created after the end.
-- activity (real contacts Dec 1..10, either direction): manager 1 the call to lead 1 (Dec 2) and the
-- e-mail to 103 (Dec 9), not the mailing, the automated call, nor the call at Dec 11 00:00;
-- manager 2 lead 4's inbound e-mail (Dec 9), a meeting (Dec 10) and a chat (other kind, Dec 5).
-- average won deal and sales cycle: manager 1 deal 1 (300, Dec 2 -> Dec 4 = 2 days); manager 2 won none.
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_managers('2025-12-01', '2025-12-10')$$,
  $$VALUES ('1', 2::bigint, 1::bigint, 1::bigint, 600::numeric, 1::bigint, 1::bigint, 50::numeric, 900::numeric, 3::bigint, 3::bigint, 100.00,
            1::bigint, 0::bigint, 1::bigint, 2::bigint, 300::numeric, 2::numeric),
           ('2', 2, 0, 2, NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, 1, 1, 3, NULL, NULL)$$,
  'dashboard_managers: hand-worked figures, manager activity included');
-- previous period Nov 21..30: manager 1 the call to lead 5 (Nov 25) and won deal 4 (200, Nov 25 -> 27);
-- manager 2 the call logged before lead 6 existed (still a real contact), lost deal 5
SELECT results_eq(
  $$SELECT manager_id, calls, meetings, emails, contacts, deals_won, average_won_deal, sales_cycle_days
      FROM crm.dashboard_managers('2025-11-21', '2025-11-30')$$,
  $$VALUES ('1', 1::bigint, 0::bigint, 0::bigint, 1::bigint, 1::bigint, 200::numeric, 2::numeric),
           ('2', 1, 0, 0, 1, 0, NULL, NULL)$$,
  'dashboard_managers, previous period: hand-worked activity, average won deal, cycle');

SELECT results_eq(
  $$SELECT stage, entered, open_deals, open_value, weighted_value, lost_deals, lost_value
      FROM crm.dashboard_pipeline('2025-12-01', '2025-12-10')$$,
  $$VALUES ('lead', 3::bigint, 0::bigint, 0::numeric, 0::numeric, 0::bigint, 0::numeric),
           ('qualified', 3, 1, 80, 20, 1, 250), ('proposal', 1, 2, 1400, 700, 0, 0),
           ('invoice', 0, 0, 0, 0, 0, 0), ('paid', 1, 0, 0, 0, 0, 0), ('lost', 1, 0, 0, 0, 0, 0)$$,
  'dashboard_pipeline: entered, open and weighted at the end, lost per stage');

-- deals starting in the period: 1 (reached paid), 2 (qualified, lost), 3 (proposal)
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_funnel('2025-12-01', '2025-12-10')$$,
  $$VALUES (1, 'lead', 3::bigint, 100::numeric, NULL::numeric, 0::bigint, 0::bigint, 0::numeric),
           (2, 'qualified', 3, 100, 100, 1, 1, 250), (3, 'proposal', 2, 66.67, 66.67, 1, 0, 0),
           (4, 'invoice', 1, 33.33, 50, 0, 0, 0), (5, 'paid', 1, 33.33, 100, 0, 0, 0)$$,
  'dashboard_funnel: hand-worked funnel');

-- cohorts: Oct (104: 1000 in Oct, 500 in Dec), Nov (103: 200, 100 in Dec), Dec (101: 300)
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_retention('2025-12-10')$$,
  $$VALUES ('2025-10-01'::date, 0, 1::bigint, 1::bigint, 100::numeric, 1000::numeric, 1000::numeric),
           ('2025-10-01', 1, 1, 0, 0, 0, 1000), ('2025-10-01', 2, 1, 1, 100, 500, 1500),
           ('2025-11-01', 0, 1, 1, 100, 200, 200), ('2025-11-01', 1, 1, 1, 100, 100, 300),
           ('2025-12-01', 0, 1, 1, 100, 300, 300)$$,
  'dashboard_retention: hand-worked cohorts');

-- recency (whole days to the end of Dec 10) 101: 6, 104: 4, 103: 2; crm.quantile_score =
-- 1 + floor(5 * (values strictly below) / 3): R (of -recency) 101: 1, 104: 2, 103: 4;
-- F (1, 2, 2): 1, 2, 2; M (300, 1500, 300): 1, 4, 1; segments R1F1 and R2F2 Hibernating, R4F2 Potential Loyalists
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_rfm('2025-12-10')$$,
  $$VALUES ('101', 6, 1::bigint, 300::numeric, 1, 1, 1, 'Hibernating'),
           ('103', 2, 2, 300, 4, 2, 1, 'Potential Loyalists'), ('104', 4, 2, 1500, 2, 2, 4, 'Hibernating')$$,
  'dashboard_rfm: hand-worked scores and segments');

-- product 1: 1000 (Oct) + 200 (Nov) + 500 (Dec) over 12 months; product 2: 300 + 100 (Dec)
SELECT results_eq(
  $$SELECT product_id, revenue, revenue_share_pct, abc_class, xyz_class FROM crm.dashboard_abc_xyz('2025-12-10')$$,
  $$VALUES ('1', 1700::numeric, 80.95, 'A', 'Z'), ('2', 400, 19.05, 'B', 'Z')$$,
  'dashboard_abc_xyz: revenue, share, classes');
SELECT is((SELECT cv FROM crm.dashboard_abc_xyz('2025-12-10') WHERE product_id = '1'),
          (SELECT round((stddev_pop(x) / avg(x))::numeric, 4)
             FROM unnest(ARRAY[1000, 200, 500, 0, 0, 0, 0, 0, 0, 0, 0, 0]::numeric[]) AS x),
          'dashboard_abc_xyz: cv over 12 months with empty months as zero');

SELECT results_eq(
  $$SELECT * FROM crm.dashboard_lead_sla('2025-12-01', '2025-12-10', '1 hour')$$,
  $$VALUES ('ads', 3::bigint, 1::bigint, 0::bigint, 2::bigint, 0::numeric, 600::numeric),
           ('seo', 1, 0, 0, 1, 0, NULL), (NULL, 4, 1, 0, 3, 0, 600)$$,
  'dashboard_lead_sla: per channel and total, SLA 1 hour');
SELECT is((SELECT within_sla FROM crm.dashboard_lead_sla('2025-12-01', '2025-12-10', '10 hours') WHERE channel IS NULL),
          1::bigint, 'dashboard_lead_sla: a 10 hour SLA counts the 600-minute answer');

SELECT results_eq(
  $$SELECT customer_id, abc_class, covered FROM crm.dashboard_coverage('2025-12-11') ORDER BY 1$$,
  $$VALUES ('101', 'A', true), ('103', 'A', true), ('104', 'A', true)$$,
  'dashboard_coverage: classes and coverage at the end');

-- the contact policy comes from the coverage capability's crm.coverage_policy:
-- with A every 10 days, 104 (last contact Nov 20) is overdue at Dec 11; 101 (never
-- contacted, a customer since Dec 4) is due Dec 14, not yet
UPDATE crm.coverage_policy SET max_interval = '10 days', due_soon = '1 day' WHERE class = 'A';
SELECT is((SELECT value FROM crm.owner_dashboard('2025-12-01', '2025-12-10') WHERE metric = 'overdue_class_a_customers'),
          1::numeric, 'overdue_class_a_customers follows crm.coverage_policy');
SELECT is((SELECT covered FROM crm.dashboard_coverage('2025-12-11') WHERE customer_id = '104'), false,
          'dashboard_coverage follows crm.coverage_policy');
UPDATE crm.coverage_policy SET max_interval = '1 month', due_soon = '7 days' WHERE class = 'A';

-- views
SELECT lives_ok($$SELECT crm.set_dashboard_period('2025-12-01', '2025-12-10')$$, 'set_dashboard_period');
SELECT results_eq($$SELECT metric, value, previous_value FROM crm.v_owner_dashboard$$,
                  $$SELECT metric, value, previous_value FROM crm.owner_dashboard('2025-12-01', '2025-12-10')$$,
                  'v_owner_dashboard shows the dashboard period');
SELECT is((SELECT value FROM crm.v_channels WHERE channel = 'ads' AND metric = 'roi'), -37.50, 'v_channels: long format');
SELECT is((SELECT value FROM crm.v_managers WHERE manager_id = '1' AND metric = 'coverage'), 100.00, 'v_managers: long format');
SELECT results_eq($$SELECT manager_id, metric, value, unit FROM crm.v_managers
                    WHERE metric IN ('calls', 'meetings', 'emails', 'contacts', 'average_won_deal', 'sales_cycle') ORDER BY 1, 2$$,
                  $$VALUES ('1', 'average_won_deal', 300::numeric, 'money'), ('1', 'calls', 1, 'count'), ('1', 'contacts', 2, 'count'),
                           ('1', 'emails', 1, 'count'), ('1', 'meetings', 0, 'count'), ('1', 'sales_cycle', 2, 'days'),
                           ('2', 'average_won_deal', NULL, 'money'), ('2', 'calls', 0, 'count'), ('2', 'contacts', 3, 'count'),
                           ('2', 'emails', 1, 'count'), ('2', 'meetings', 1, 'count'), ('2', 'sales_cycle', NULL, 'days')$$,
                  'v_managers: the manager activity metrics');
SELECT results_eq($$SELECT abc_class, customers, covered, overdue, coverage_pct FROM crm.v_coverage$$,
                  $$VALUES ('A', 3::bigint, 3::bigint, 0::bigint, 100.00)$$, 'v_coverage per class');
SELECT is((SELECT within_sla_pct FROM crm.v_lead_sla WHERE channel = 'all'), 0.00, 'v_lead_sla total row');
SELECT is((SELECT count(*) FROM crm.v_funnel), 5::bigint, 'v_funnel rows');
SELECT is((SELECT count(*) FROM crm.v_retention), 6::bigint, 'v_retention rows');
SELECT is((SELECT count(*) FROM crm.v_rfm), 3::bigint, 'v_rfm rows');
SELECT is((SELECT count(*) FROM crm.v_abc_xyz), 2::bigint, 'v_abc_xyz rows');
SELECT is((SELECT count(*) FROM crm.v_pipeline), 6::bigint, 'v_pipeline rows');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
            WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'v'
              AND c.relname LIKE 'v\_%' AND 'security_invoker=true' = ANY (c.reloptions)),
          ARRAY['v_abc_xyz', 'v_channels', 'v_coverage', 'v_daily', 'v_followups', 'v_funnel', 'v_lead_sla', 'v_losses', 'v_managers',
                'v_owner_dashboard', 'v_pipeline', 'v_plan_fact', 'v_retention', 'v_rfm', 'v_todo'],
          'every BI view is security_invoker');
SELECT is((SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'v' AND c.relname LIKE 'v\_%' AND a.attnum > 0
              AND a.atttypid NOT IN ('text'::regtype, 'numeric'::regtype, 'bigint'::regtype, 'integer'::regtype,
                                     'date'::regtype, 'boolean'::regtype, 'timestamptz'::regtype)),
          0::bigint, 'views use plain column types only');
SELECT ok((SELECT extconfig @> ARRAY['crm.sources'::regclass, 'crm.pipeline_stages'::regclass, 'crm.dashboard_settings'::regclass]::oid[]
             FROM pg_extension WHERE extname = 'crm_analytics'), 'config tables are dumped by pg_dump');

-- a BI user with read rights on the CRM tables reads the views; without them, the error names the source
CREATE ROLE crm_dash_bi_test;
GRANT USAGE ON SCHEMA crm, dfx TO crm_dash_bi_test;
GRANT SELECT ON crm.sources TO crm_dash_bi_test;   -- not readable by PUBLIC (0.3.0)
GRANT SELECT ON ALL TABLES IN SCHEMA dfx TO crm_dash_bi_test;
SET ROLE crm_dash_bi_test;
SELECT is((SELECT count(*) FROM crm.v_owner_dashboard), 40::bigint, 'a BI user reads v_owner_dashboard (security_invoker)');
RESET ROLE;
REVOKE SELECT ON dfx.orders FROM crm_dash_bi_test;
SET ROLE crm_dash_bi_test;
SELECT throws_ok($$SELECT * FROM crm.v_owner_dashboard$$, '42501',
                 'registered source "orders" is broken: permission denied for table orders',
                 'security_invoker: the caller''s rights apply, and the error names the source');
RESET ROLE;

-- static HTML report
SELECT is(crm._html('<a href="x">&</a>'), '&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;', '_html escapes');
SELECT ok((SELECT h LIKE '<!DOCTYPE html>%' AND h LIKE '%</html>%'
                  AND (length(h) - length(replace(h, 'role="img"', ''))) / 10 = 2   -- funnel, heat map
                  AND (length(h) - length(replace(h, 'width="160" height="14"', ''))) / 23 = 2   -- an ROI bar for each of 2 channels
                  AND h LIKE '%lost 250%' AND h LIKE '%366.67%'
             FROM crm.dashboard_html('2025-12-01', '2025-12-10') AS h),
          'dashboard_html: a page with the funnel, the heat map and the channel ROI bars, showing the figures');
INSERT INTO dfx.leads VALUES (8, '2025-12-03', '<script>x</script>', 1, NULL);
SELECT ok((SELECT h NOT LIKE '%<script>%' AND h LIKE '%&lt;script&gt;x&lt;/script&gt;%'
             FROM crm.dashboard_html('2025-12-01', '2025-12-10') AS h), 'dashboard_html escapes names from the data');
DELETE FROM dfx.leads WHERE lead_id = 8;

-- bad input
SELECT throws_ok($$SELECT crm.register_source('contracts', 'SELECT 1')$$, '22023',
                 'unknown source kind "contracts"', 'register_source: unknown kind');
SELECT throws_ok($$SELECT crm.register_source('spend', NULL)$$, '22004',
                 'query of source "spend" must not be null', 'register_source: null query');
SELECT throws_like($$SELECT crm.register_source('spend', 'SELECT channel, month FROM dfx.spend')$$,
                 '%returns 2 columns, expected (channel text, spent_on timestamptz, amount numeric)%',
                 'register_source: wrong column count names the expected columns');
SELECT throws_ok($$SELECT crm.register_source('spend', 'SELECT channel, month, amount::text FROM dfx.spend')$$, '42804',
                 NULL, 'register_source: wrong column type');
SELECT throws_ok($$SELECT * FROM crm.owner_dashboard('2025-12-10', '2025-12-01')$$, '22023',
                 'period start 2025-12-10 is after its end 2025-12-01', 'from > to');
SELECT throws_ok($$SELECT * FROM crm.dashboard_channels(NULL, '2025-12-01')$$, '22004',
                 'period bounds must not be null', 'null bound');
SELECT ok(crm.unregister_source('invoices'), 'unregister_source');
SELECT throws_ok($$SELECT * FROM crm.owner_dashboard('2025-12-01', '2025-12-10')$$, '55000',
                 'source "invoices" is not registered', 'unregistered source: says which to register');
SELECT lives_ok($$SELECT crm.register_source('invoices', 'SELECT * FROM dfx.invoices')$$, 're-register');
DROP TABLE dfx.invoices;
SELECT throws_ok($$SELECT * FROM crm.v_owner_dashboard$$, '42P01',
                 'registered source "invoices" is broken: relation "dfx.invoices" does not exist',
                 'a registered query that later breaks: error names the source');
ALTER TABLE dfx.spend ALTER COLUMN amount TYPE text;
SELECT throws_like($$SELECT * FROM crm.v_channels$$,
                   'registered source "spend" is broken: column 3 ("amount") of the inner query has type text, expected numeric%',
                   'a type change that breaks a source: error names the source and the column');
SELECT lives_ok($$SELECT crm.register_source('spend', 'SELECT channel, month, amount::numeric FROM dfx.spend')$$, 'a cast in the inner query fixes it');
INSERT INTO dfx.deal_events VALUES (99, '2025-12-01', 'negotiation', 10, 1, 'ads');
SELECT lives_ok($$SELECT crm.register_source('invoices', 'SELECT 1, 2, now(), now(), 1.0, now()')$$, 'register a constant query');
SELECT throws_ok($$SELECT * FROM crm.owner_dashboard('2025-12-01', '2025-12-10')$$, '22023',
                 'source "stage_events" uses stages missing from crm.pipeline_stages: negotiation',
                 'a stage missing from crm.pipeline_stages is an error, not a silently wrong number');
SELECT throws_like($$SELECT * FROM crm.dashboard_pipeline('2025-12-01', '2025-12-10')$$,
                   '%stages missing from crm.pipeline_stages: negotiation', 'dashboard_pipeline: unknown stage');
SELECT throws_like($$SELECT * FROM crm.dashboard_funnel('2025-12-01', '2025-12-10')$$,
                   '%stages missing from crm.pipeline_stages: negotiation', 'dashboard_funnel: unknown stage');
SELECT throws_like($$SELECT * FROM crm.dashboard_managers('2025-12-01', '2025-12-10')$$,
                   '%stages missing from crm.pipeline_stages: negotiation', 'dashboard_managers: unknown stage');
DELETE FROM crm.pipeline_stages;
SELECT throws_ok($$SELECT * FROM crm.dashboard_pipeline('2025-12-01', '2025-12-10')$$, '55000',
                 'crm.pipeline_stages has no won stage', 'empty stage table');

SELECT * FROM finish();
ROLLBACK;
