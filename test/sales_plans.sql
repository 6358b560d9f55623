-- test/sales_plans.sql: plans and plan against fact (docs/sales.md, section plans).
-- Part 1 runs on the demo (crm.load_demo(2000, 42, '2025-12-31'), whose demo plans
-- crm._demo_plans set): facts equal the reports and plain SQL over crm_demo.  Part 2 runs on
-- a tiny hand-made CRM whose every figure was worked out by hand.  Part 3: bad input.
BEGIN;
SELECT plan(70);
SET LOCAL TimeZone = 'UTC';

-- an error as 'SQLSTATE: message | hint', for the checks of hints
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || ' | ' || hint;
END
$$;

-- ---------------------------------------------------------------- the table
SELECT has_table('crm', 'plans', 'crm.plans exists');
SELECT columns_are('crm', 'plans', ARRAY['metric', 'period_from', 'period_to', 'dimension', 'key', 'target', 'set_at', 'set_by'],
                   'crm.plans: the documented columns');
SELECT ok((SELECT 'crm.plans'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'crm_analytics'),
          'crm.plans is a config table (pg_dump keeps its rows)');
SELECT ok(has_table_privilege('public', 'crm.plans', 'SELECT') AND NOT has_table_privilege('public', 'crm.plans', 'INSERT'),
          'crm.plans: readable by PUBLIC, not writable');
SELECT ok(has_table_privilege('public', 'crm.v_plan_fact', 'SELECT'), 'crm.v_plan_fact: readable by PUBLIC');

-- ---------------------------------------------------------------- part 1: the demo
-- crm._demo_plans: Q4 2025 and its three months, 4 plans of the business and revenue of 5 channels each
SELECT is((SELECT count(*) FROM crm.plans), 36::bigint, 'demo: 36 plans (Q4 and its 3 months, 9 each)');
SELECT is((SELECT array_agg(DISTINCT period_from || '..' || period_to ORDER BY period_from || '..' || period_to) FROM crm.plans),
          ARRAY['2025-10-01..2025-10-31', '2025-10-01..2025-12-31', '2025-11-01..2025-11-30', '2025-12-01..2025-12-31'],
          'demo: plans for Q4 2025 and its months');
-- the targets are the quarter before + 10 %: the plain SQL of _demo_plans agrees with the dashboard's figures
SELECT results_eq(
  $$SELECT p.metric, p.target FROM crm.plans p WHERE p.period_from = '2025-10-01' AND p.period_to = '2025-12-31' AND p.dimension IS NULL ORDER BY p.metric$$,
  $$SELECT d.metric, CASE WHEN d.metric = 'revenue' THEN round(d.previous_value * 1.1, -2) ELSE ceil(d.previous_value * 1.1) END
      FROM crm.owner_dashboard('2025-10-01', '2025-12-31') d WHERE d.metric IN ('revenue', 'new_buyers', 'leads_in', 'deals_won') ORDER BY d.metric$$,
  'demo: Q4 targets = the Q3 figures of crm.owner_dashboard + 10 %');
SELECT results_eq(
  $$SELECT p.key, p.target FROM crm.plans p WHERE p.period_from = '2025-10-01' AND p.period_to = '2025-12-31' AND p.dimension = 'channel' ORDER BY p.key$$,
  $$SELECT c.channel, round(c.revenue * 1.1, -2) FROM crm.dashboard_channels('2025-07-01', '2025-09-30') c WHERE c.revenue > 0 ORDER BY c.channel$$,
  'demo: Q4 channel revenue targets = Q3 channel revenue of crm.dashboard_channels + 10 %');

-- a complete period: facts = the reports over the whole period
SELECT results_eq(
  $$SELECT f.metric, f.fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') f WHERE f.dimension IS NULL ORDER BY f.metric$$,
  $$SELECT d.metric, d.value FROM crm.owner_dashboard('2025-10-01', '2025-12-31') d WHERE d.metric IN ('revenue', 'new_buyers', 'leads_in', 'deals_won') ORDER BY d.metric$$,
  'demo Q4: facts of the business plans = crm.owner_dashboard');
SELECT results_eq(
  $$SELECT f.key, f.fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') f WHERE f.dimension = 'channel' ORDER BY f.key$$,
  $$SELECT c.channel, c.revenue FROM crm.dashboard_channels('2025-10-01', '2025-12-31') c WHERE c.revenue > 0 ORDER BY c.channel$$,
  'demo Q4: facts of the channel plans = crm.dashboard_channels');
-- and plain SQL over crm_demo
SELECT is((SELECT fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') WHERE metric = 'revenue' AND dimension IS NULL),
          (SELECT sum(amount) FROM crm_demo.orders WHERE ordered_at >= '2025-10-01' AND ordered_at < '2026-01-01'),
          'demo Q4: revenue fact = plain SQL sum of the Q4 orders');
SELECT is((SELECT fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') WHERE metric = 'leads_in'),
          (SELECT count(*)::numeric FROM crm_demo.leads WHERE created_at >= '2025-10-01' AND created_at < '2026-01-01'),
          'demo Q4: leads_in fact = plain SQL count of the Q4 leads');
SELECT results_eq(
  $$SELECT f.key, f.fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') f WHERE f.dimension = 'channel' ORDER BY f.key$$,
  $$SELECT c.channel, sum(o.amount) FROM crm_demo.orders o JOIN crm_demo.customers c USING (customer_id)
     WHERE o.ordered_at >= '2025-10-01' AND o.ordered_at < '2026-01-01' GROUP BY c.channel ORDER BY c.channel$$,
  'demo Q4: channel revenue facts = plain SQL over crm_demo.orders and customers');
SELECT is((SELECT count(*) FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01')
            WHERE pct IS DISTINCT FROM round(100 * fact / plan, 2) OR forecast IS DISTINCT FROM fact
               OR forecast_pct IS DISTINCT FROM pct), 0::bigint,
          'demo Q4 (complete): pct = 100 x fact / plan, forecast = fact');

-- per manager: plans set here, facts = crm.dashboard_managers
SELECT crm.set_plan('deals_won', '2025-10-01', '2025-12-31', 40, 'manager', m::text) FROM generate_series(1, 5) m;
SELECT crm.set_plan('coverage', '2025-10-01', '2025-12-31', 80, 'manager', '2');
SELECT results_eq(
  $$SELECT f.key, f.metric, f.fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') f WHERE f.dimension = 'manager' ORDER BY f.key, f.metric$$,
  $$SELECT m.manager_id, v.metric, v.value FROM crm.dashboard_managers('2025-10-01', '2025-12-31') m,
           LATERAL (VALUES ('coverage', m.coverage_pct), ('deals_won', m.deals_won::numeric)) v(metric, value)
     WHERE m.manager_id IN ('1', '2', '3', '4', '5') AND (v.metric = 'deals_won' OR m.manager_id = '2') ORDER BY 1, 2$$,
  'demo Q4: facts of the manager plans = crm.dashboard_managers');
SELECT is((SELECT sum(fact) FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') WHERE dimension = 'manager' AND metric = 'deals_won'),
          (SELECT fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2026-02-01') WHERE dimension IS NULL AND metric = 'deals_won'),
          'demo Q4: the managers'' deals_won add up to the business''s');

-- a running period: Q4 as of 2025-11-15 (46 of 92 days)
SELECT is((SELECT fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2025-11-15') WHERE metric = 'revenue' AND dimension IS NULL),
          (SELECT value FROM crm.owner_dashboard('2025-10-01', '2025-11-15') WHERE metric = 'revenue'),
          'demo Q4 as of Nov 15: revenue fact = crm.owner_dashboard(Oct 1, Nov 15)');
SELECT is((SELECT fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2025-11-15') WHERE metric = 'revenue' AND dimension IS NULL),
          (SELECT sum(amount) FROM crm_demo.orders WHERE ordered_at >= '2025-10-01' AND ordered_at < '2025-11-16'),
          'demo Q4 as of Nov 15: revenue fact = plain SQL up to the end of Nov 15');
SELECT is((SELECT count(*) FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2025-11-15')
            WHERE metric <> 'coverage' AND (forecast IS DISTINCT FROM round(fact * 92 / 46, 2) OR forecast_pct IS DISTINCT FROM round(100 * forecast / plan, 2))),
          0::bigint, 'demo Q4 as of Nov 15: every flow forecast = fact x 92 / 46 days');
SELECT is((SELECT array_agg(fact ORDER BY metric) FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2025-11-15') WHERE dimension = 'manager' AND key = '2'),
          (SELECT ARRAY[coverage_pct, deals_won] FROM crm.dashboard_managers('2025-10-01', '2025-11-15') WHERE manager_id = '2'),
          'demo Q4 as of Nov 15: manager facts = crm.dashboard_managers(Oct 1, Nov 15)');
SELECT is((SELECT forecast FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2025-11-15') WHERE metric = 'coverage'),
          (SELECT fact FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2025-11-15') WHERE metric = 'coverage'),
          'demo Q4 as of Nov 15: a ratio''s forecast is its fact');

-- each report runs once per call, not once per plan
SET LOCAL track_functions = 'pl';
CREATE TEMP TABLE calls_before AS
SELECT p.proname, coalesce(pg_stat_get_xact_function_calls(p.oid), 0) AS n FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND p.proname IN ('owner_dashboard', 'dashboard_channels', 'dashboard_managers');
SELECT is((SELECT count(*) FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31', '2025-11-15')), 15::bigint,
          'demo Q4: 15 plans (9 demo, 6 manager)');
SELECT results_eq(
  $$SELECT b.proname::text COLLATE "default", coalesce(pg_stat_get_xact_function_calls(p.oid), 0) - b.n FROM calls_before b JOIN pg_proc p ON p.proname = b.proname AND p.pronamespace = 'crm'::regnamespace ORDER BY 1$$,
  $$VALUES ('dashboard_channels', 1::bigint), ('dashboard_managers', 1), ('owner_dashboard', 1)$$,
  'dashboard_plan_fact runs each report once for 15 plans');
CREATE TEMP TABLE calls_before2 AS
SELECT p.proname, coalesce(pg_stat_get_xact_function_calls(p.oid), 0) AS n FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace AND p.proname IN ('owner_dashboard', 'dashboard_channels', 'dashboard_managers');
SELECT is((SELECT count(*) FROM crm.dashboard_plan_fact('2025-11-01', '2025-11-30', '2025-11-15')), 9::bigint,
          'demo November: 9 plans');
SELECT results_eq(
  $$SELECT b.proname::text COLLATE "default", coalesce(pg_stat_get_xact_function_calls(p.oid), 0) - b.n FROM calls_before2 b JOIN pg_proc p ON p.proname = b.proname AND p.pronamespace = 'crm'::regnamespace ORDER BY 1$$,
  $$VALUES ('dashboard_channels', 1::bigint), ('dashboard_managers', 0), ('owner_dashboard', 1)$$,
  'dashboard_plan_fact runs only the reports its plans need (no manager plan for November)');

-- the view: the dashboard period of the demo is December 2025
SELECT results_eq(
  $$SELECT period_from, period_to, metric, dimension, key, plan, fact, pct, forecast, forecast_pct FROM crm.v_plan_fact$$,
  $$SELECT date '2025-12-01', date '2025-12-31', f.* FROM crm.dashboard_plan_fact('2025-12-01', '2025-12-31') f$$,
  'v_plan_fact = dashboard_plan_fact over the dashboard period');

-- ---------------------------------------------------------------- part 2: hand-worked fixture
-- March 2026 (31 days).  Leads: L1 Mar 2 ads (-> customer 201), L2 Mar 5 ads, L3 Mar 8 seo (-> 202),
-- L4 Mar 20 seo, L5 Mar 25 ads.  Customers 201 (ads, manager 1), 202 (seo, manager 2).
-- Orders: 201 Mar 3 100, 202 Mar 9 50, 201 Mar 15 300, 202 Mar 28 150.
-- Deals: D1 (m1, 100) lead Mar 2 -> paid Mar 3; D2 (m2, 50) lead Mar 8 -> paid Mar 9;
--        D3 (m1, 300) lead Mar 12 -> paid Mar 15; D4 (m2, 400) lead Mar 6 -> lost Mar 20.
CREATE SCHEMA pfx;
CREATE TABLE pfx.leads(lead_id bigint, created_at timestamptz, channel text, manager_id int, customer_id bigint);
INSERT INTO pfx.leads VALUES (1,'2026-03-02','ads',1,201),(2,'2026-03-05','ads',1,NULL),(3,'2026-03-08','seo',2,202),
                             (4,'2026-03-20','seo',2,NULL),(5,'2026-03-25','ads',1,NULL);
CREATE TABLE pfx.customers(customer_id bigint, created_at timestamptz, channel text, manager_id int);
INSERT INTO pfx.customers VALUES (201,'2026-03-03','ads',1),(202,'2026-03-09','seo',2);
CREATE TABLE pfx.orders(order_id bigint, customer_id bigint, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
INSERT INTO pfx.orders VALUES (1,201,'2026-03-03',100,40,1),(2,202,'2026-03-09',50,20,1),(3,201,'2026-03-15',300,100,2),(4,202,'2026-03-28',150,60,2);
CREATE TABLE pfx.spend(channel text, spent_on timestamptz, amount numeric);
INSERT INTO pfx.spend VALUES ('ads','2026-03-01',310),('seo','2026-03-01',62);
CREATE TABLE pfx.interactions(interaction_id bigint, customer_id bigint, lead_id bigint, manager_id int, occurred_at timestamptz, kind text, direction text, automated boolean);
INSERT INTO pfx.interactions VALUES (1,NULL,1,1,'2026-03-02 10:00','call','outbound',false),(2,NULL,3,2,'2026-03-08 11:00','call','outbound',false);
CREATE TABLE pfx.invoices(invoice_id bigint, customer_id bigint, issued_at timestamptz, due_at timestamptz, amount numeric, paid_at timestamptz);
CREATE TABLE pfx.deal_events(deal_id bigint, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO pfx.deal_events VALUES
 (1,'2026-03-02','lead',100,1,'ads'),(1,'2026-03-03','paid',100,1,'ads'),
 (2,'2026-03-08','lead',50,2,'seo'),(2,'2026-03-09','paid',50,2,'seo'),
 (3,'2026-03-12','lead',300,1,'ads'),(3,'2026-03-15','paid',300,1,'ads'),
 (4,'2026-03-06','lead',400,2,'seo'),(4,'2026-03-20','lost',400,2,'seo');
DO $$
BEGIN
    PERFORM crm.register_source('leads', 'SELECT * FROM pfx.leads');
    PERFORM crm.register_source('customers', 'SELECT * FROM pfx.customers');
    PERFORM crm.register_source('orders', 'SELECT * FROM pfx.orders');
    PERFORM crm.register_source('spend', 'SELECT * FROM pfx.spend');
    PERFORM crm.register_source('interactions', 'SELECT * FROM pfx.interactions');
    PERFORM crm.register_source('invoices', 'SELECT * FROM pfx.invoices');
    PERFORM crm.register_source('stage_events', 'SELECT * FROM pfx.deal_events');
END
$$;
SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 800);
SELECT crm.set_plan('leads_in', '2026-03-01', '2026-03-31', 4);
SELECT crm.set_plan('deals_won', '2026-03-01', '2026-03-31', 4);
SELECT crm.set_plan('win_rate', '2026-03-01', '2026-03-31', 80);
SELECT crm.set_plan('open_deals', '2026-03-01', '2026-03-31', 2);
SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 500, 'channel', 'ads');
SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 100, 'channel', 'seo');
SELECT crm.set_plan('new_buyers', '2026-03-01', '2026-03-31', 1, 'channel', 'seo');
SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 10, 'channel', 'tv');
SELECT crm.set_plan('deals_won', '2026-03-01', '2026-03-31', 2, 'manager', '1');
SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 100, 'manager', '2');
SELECT crm.set_plan('win_rate', '2026-03-01', '2026-03-31', 50, 'manager', '2');
-- a plan of another period (February, and all of 2026) is not shown for March
SELECT crm.set_plan('revenue', '2026-02-01', '2026-02-28', 999);
SELECT crm.set_plan('revenue', '2026-01-01', '2026-12-31', 9999);

-- the complete month (as of Apr 15):
--   revenue 100+50+300+150 = 600 of 800 = 75 %; leads 5 of 4 = 125 %; won D1-D3 = 3 of 4 = 75 %;
--   win rate 3/(3+1) = 75 of 80 = 93.75 %; open deals at the end 0 of 2;
--   ads = customer 201: 400 of 500 = 80 %; seo = 202: 200 of 100; seo new buyers 202 = 1 of 1; tv: no row;
--   manager 1 won D1, D3 = 2 of 2; manager 2 revenue (customer 202) 200 of 100, win rate D2/(D2+D4) 50 of 50.
--   Complete: forecast = fact.
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-04-15')$$,
  $$VALUES ('leads_in', NULL::text, NULL::text, 4::numeric, 5::numeric, 125.00::numeric, 5::numeric, 125.00::numeric),
           ('revenue', NULL, NULL, 800, 600, 75.00, 600, 75.00),
           ('win_rate', NULL, NULL, 80, 75.00, 93.75, 75.00, 93.75),
           ('deals_won', NULL, NULL, 4, 3, 75.00, 3, 75.00),
           ('open_deals', NULL, NULL, 2, 0, 0.00, 0, 0.00),
           ('revenue', 'channel', 'ads', 500, 400, 80.00, 400, 80.00),
           ('new_buyers', 'channel', 'seo', 1, 1, 100.00, 1, 100.00),
           ('revenue', 'channel', 'seo', 100, 200, 200.00, 200, 200.00),
           ('revenue', 'channel', 'tv', 10, NULL, NULL, NULL, NULL),
           ('deals_won', 'manager', '1', 2, 2, 100.00, 2, 100.00),
           ('win_rate', 'manager', '2', 50, 50.00, 100.00, 50.00, 100.00),
           ('revenue', 'manager', '2', 100, 200, 200.00, 200, 200.00)$$,
  'fixture, complete month: plan, fact, pct, forecast = fact (hand-worked)');
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-03-31')$$,
  $$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-04-15')$$,
  'fixture: as_of on the last day = as_of after the period');
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31')$$,
  $$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', current_date)$$,
  'fixture: as_of defaults to today');

-- running: as of Mar 10 (10 of 31 days elapsed; facts up to the end of Mar 10)
--   revenue 100+50 = 150 of 800 = 18.75 %, forecast 150 x 31/10 = 465 = 58.13 %;
--   leads L1-L3 = 3 (75 %), forecast 9.30 (232.50 %); won D1, D2 = 2 (50 %), forecast 6.20 (155 %);
--   win rate 2/2 = 100 (125 %), a ratio: forecast 100; open deals at the end of Mar 10: D4 = 1 (50 %), a stock: forecast 1;
--   ads 100 (20 %) -> 310 (62 %); seo 50 (50 %) -> 155 (155 %); seo new buyers 1 (100 %) -> 3.10 (310 %);
--   manager 1 won D1 = 1 (50 %) -> 3.10 (155 %); manager 2 revenue 50 (50 %) -> 155 (155 %),
--   win rate D2 won, D4 still open = 100 (200 %), forecast 100.
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-03-10')$$,
  $$VALUES ('leads_in', NULL::text, NULL::text, 4::numeric, 3::numeric, 75.00::numeric, 9.30::numeric, 232.50::numeric),
           ('revenue', NULL, NULL, 800, 150, 18.75, 465.00, 58.13),
           ('win_rate', NULL, NULL, 80, 100.00, 125.00, 100.00, 125.00),
           ('deals_won', NULL, NULL, 4, 2, 50.00, 6.20, 155.00),
           ('open_deals', NULL, NULL, 2, 1, 50.00, 1, 50.00),
           ('revenue', 'channel', 'ads', 500, 100, 20.00, 310.00, 62.00),
           ('new_buyers', 'channel', 'seo', 1, 1, 100.00, 3.10, 310.00),
           ('revenue', 'channel', 'seo', 100, 50, 50.00, 155.00, 155.00),
           ('revenue', 'channel', 'tv', 10, NULL, NULL, NULL, NULL),
           ('deals_won', 'manager', '1', 2, 1, 50.00, 3.10, 155.00),
           ('win_rate', 'manager', '2', 50, 100.00, 200.00, 100.00, 200.00),
           ('revenue', 'manager', '2', 100, 50, 50.00, 155.00, 155.00)$$,
  'fixture, running month as of Mar 10: fact so far, run-rate forecast for flows, fact for ratios and stocks (hand-worked)');
-- the first day: 1 of 31 days; nothing sold yet
SELECT results_eq(
  $$SELECT metric, fact, forecast FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-03-01') WHERE dimension IS NULL$$,
  $$VALUES ('leads_in', 0::numeric, 0.00::numeric), ('revenue', 0, 0.00), ('win_rate', NULL, NULL), ('deals_won', 0, 0.00), ('open_deals', 0, 0)$$,
  'fixture, first day: zero facts, zero forecasts, no win rate');
-- before the period: no facts
SELECT is((SELECT count(*) FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-02-15')
            WHERE fact IS NULL AND pct IS NULL AND forecast IS NULL AND forecast_pct IS NULL), 12::bigint,
          'fixture, before the period: every plan, no fact, pct or forecast');
SELECT is((SELECT count(*) FROM crm.dashboard_plan_fact('2026-03-02', '2026-03-31', '2026-04-15')), 0::bigint,
          'fixture: plans of exactly the period asked (none for Mar 2-31)');
SELECT results_eq(
  $$SELECT metric, plan, fact FROM crm.dashboard_plan_fact('2026-02-01', '2026-02-28', '2026-04-15')$$,
  $$VALUES ('revenue', 999::numeric, 0::numeric)$$,
  'fixture: February''s plan, no February revenue');
-- the view over a dashboard period set to March 2026
SELECT crm.set_dashboard_period('2026-03-01', '2026-03-31');
SELECT is((SELECT sum(fact) FROM crm.v_plan_fact WHERE metric = 'revenue' AND dimension IS NULL), 600::numeric,
          'fixture: v_plan_fact shows the dashboard period');
-- a plan with target 0: pct NULL, not a division error
SELECT crm.set_plan('open_deals', '2026-03-01', '2026-03-31', 0);
SELECT results_eq(
  $$SELECT plan, fact, pct, forecast_pct FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-04-15') WHERE metric = 'open_deals'$$,
  $$VALUES (0::numeric, 0::numeric, NULL::numeric, NULL::numeric)$$,
  'fixture: a zero target gives no pct');

-- ---------------------------------------------------------------- set_plan, delete_plan
SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 850);
SELECT results_eq(
  $$SELECT target, set_by FROM crm.plans WHERE metric = 'revenue' AND period_from = '2026-03-01' AND period_to = '2026-03-31' AND dimension IS NULL$$,
  $$VALUES (850::numeric, current_user::name)$$,
  'set_plan again replaces the target (one row: the key treats NULL dimension and key as equal)');
SELECT throws_ok($$INSERT INTO crm.plans (metric, period_from, period_to, target) VALUES ('revenue', '2026-03-01', '2026-03-31', 1)$$,
                 '23505', NULL, 'crm.plans: a second plan of the business for the same metric and period is a duplicate');
SELECT throws_ok($$INSERT INTO crm.plans (metric, period_from, period_to, key, target) VALUES ('revenue', '2026-03-01', '2026-03-31', 'x', 1)$$,
                 '23514', NULL, 'crm.plans: a key without a dimension violates a check');
SELECT is(crm.delete_plan('revenue', '2026-03-01', '2026-03-31', 'channel', 'tv'), true, 'delete_plan: true when it removed the plan');
SELECT is(crm.delete_plan('revenue', '2026-03-01', '2026-03-31', 'channel', 'tv'), false, 'delete_plan: false when there was none');
SELECT is((SELECT count(*) FROM crm.plans WHERE period_from = '2026-03-01' AND period_to = '2026-03-31'), 11::bigint,
          'delete_plan removed exactly one plan');
SELECT is((SELECT count(*) FROM crm.plan_metrics() GROUP BY dimension IS NULL ORDER BY dimension IS NULL LIMIT 1), 27::bigint,
          'plan_metrics: 10 channel + 17 manager metrics');
SELECT is((SELECT array_agg(metric ORDER BY metric) FROM crm.plan_metrics() WHERE dimension IS NULL),
          (SELECT array_agg(metric ORDER BY metric) FROM crm.owner_dashboard('2026-03-01', '2026-03-31') WHERE metric NOT LIKE 'lost\_value\_at\_%'),
          'plan_metrics: every metric of crm.owner_dashboard but the per-stage lost values');
SELECT is((SELECT count(*) FROM crm.plan_metrics() WHERE kind NOT IN ('flow', 'ratio', 'stock')), 0::bigint,
          'plan_metrics: kinds are flow, ratio, stock');

-- ---------------------------------------------------------------- part 3: bad input
SELECT throws_ok($$SELECT crm.set_plan('profit', '2026-03-01', '2026-03-31', 1)$$, '22023',
                 'crm.set_plan: unknown metric "profit" for a plan of the whole business', 'set_plan: unknown metric');
SELECT matches(pg_temp.err($$SELECT crm.set_plan('profit', '2026-03-01', '2026-03-31', 1)$$),
               '^22023: .* \| Plannable metrics of the whole business: leads_in, new_buyers, .*overdue_class_a_customers, buyers, churned_customers, churn_rate, churned_revenue, lost_opportunity_cost\.$',
               'set_plan: the hint lists the plannable metrics');
SELECT throws_ok($$SELECT crm.set_plan('leads_in', '2026-03-01', '2026-03-31', 1, 'channel', 'ads')$$, '22023',
                 'crm.set_plan: unknown metric "leads_in" for dimension channel', 'set_plan: a business metric per channel is unknown');
SELECT matches(pg_temp.err($$SELECT crm.set_plan('leads_in', '2026-03-01', '2026-03-31', 1, 'manager', '1')$$),
               '^22023: .* \| Plannable metrics per manager: leads, answered_leads, .*coverage, calls, meetings, emails, contacts, average_won_deal, sales_cycle\.$',
               'set_plan: the hint lists the metrics of the dimension');
SELECT throws_ok($$SELECT crm.set_plan(NULL, '2026-03-01', '2026-03-31', 1)$$, '22004', NULL, 'set_plan: NULL metric');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 1, 'region', 'north')$$, '22023',
                 'crm.set_plan: unknown plan dimension "region"', 'set_plan: unknown dimension');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 1, NULL, 'ads')$$, '22023',
                 'crm.set_plan: a key (ads) needs a dimension', 'set_plan: key without dimension');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 1, 'channel')$$, '22004',
                 'crm.set_plan: a plan per channel needs the channel as key', 'set_plan: dimension without key');
SELECT throws_ok($$SELECT crm.set_plan('revenue', NULL, '2026-03-31', 1)$$, '22004', 'period bounds must not be null', 'set_plan: NULL period start');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-01', 'infinity', 1)$$, '22008', NULL, 'set_plan: infinite period end');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '-infinity', '2026-03-31', 1)$$, '22008', NULL, 'set_plan: infinite period start');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-31', '2026-03-01', 1)$$, '22023',
                 'period start 2026-03-31 is after its end 2026-03-01', 'set_plan: inverted period');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', NULL)$$, '22004',
                 'crm.set_plan: target must not be null', 'set_plan: NULL target');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 'NaN')$$, '22023',
                 'crm.set_plan: target must be a finite number, got NaN', 'set_plan: NaN target');
SELECT throws_ok($$SELECT crm.set_plan('revenue', '2026-03-01', '2026-03-31', 'Infinity')$$, '22023', NULL, 'set_plan: infinite target');
SELECT throws_ok($$SELECT crm.delete_plan('revenue', '2026-03-01', '2026-03-31', 'channel')$$, '22004', NULL, 'delete_plan: dimension without key');
SELECT throws_ok($$SELECT crm.delete_plan('revenue', '2026-03-31', '2026-03-01')$$, '22023', NULL, 'delete_plan: inverted period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_plan_fact(NULL, '2026-03-31')$$, '22004', NULL, 'dashboard_plan_fact: NULL period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', 'infinity')$$, '22008', NULL, 'dashboard_plan_fact: infinite period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_plan_fact('2026-03-31', '2026-03-01')$$, '22023', NULL, 'dashboard_plan_fact: inverted period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', 'infinity')$$, '22008',
                 'crm.dashboard_plan_fact: as_of must be finite, got infinity', 'dashboard_plan_fact: infinite as_of');
-- a source the plans need is missing: the report's own error
SELECT ok(crm.unregister_source('spend'), 'the spend source is unregistered');
SELECT throws_ok($$SELECT * FROM crm.dashboard_plan_fact('2026-03-01', '2026-03-31', '2026-04-15')$$, '55000',
                 'source "spend" is not registered', 'dashboard_plan_fact: a missing source is named');
SELECT is((SELECT count(*) FROM crm.dashboard_plan_fact('2026-05-01', '2026-05-31', '2026-06-15')), 0::bigint,
          'dashboard_plan_fact: a period without plans runs no report (no error without the spend source)');

SELECT * FROM finish();
ROLLBACK;
