-- test/sales_losses.sql: crm.dashboard_losses, crm.dashboard_followups,
-- crm.dashboard_closed_deals and their views (docs/sales.md, section losses):
-- on the demo against an independent plain-SQL computation over crm_demo.*
-- and against crm.owner_dashboard; on a small hand-worked fixture; bad input;
-- a reporting role with USAGE on crm and SELECT grants only.
BEGIN;
SELECT plan(44);

-- ---------------------------------------------------------------------------
-- The demo (crm.load_demo(2000, 42, '2025-12-31')), Q4 2025
-- ---------------------------------------------------------------------------

-- Independent: per deal straight from crm_demo.deal_events / deals (stage
-- names written out, no crm function), closed in [f, t): closed at the first
-- paid or lost event, won if paid first; the most advanced open stage reached
-- by the period end; value = the deal's amount.
CREATE FUNCTION pg_temp.plain_closed(f timestamptz, t timestamptz)
RETURNS TABLE (deal_id bigint, is_won boolean, created_at timestamptz, closed_at timestamptz, amount numeric,
               stage text, reason text, lead_id bigint, customer_id bigint)
LANGUAGE sql AS $$
WITH ev AS (
    SELECT e.deal_id, e.changed_at, e.stage,
           CASE e.stage WHEN 'lead' THEN 1 WHEN 'qualified' THEN 2 WHEN 'proposal' THEN 3 WHEN 'invoice' THEN 4 END AS open_order
      FROM crm_demo.deal_events e WHERE e.changed_at < t),
d AS (
    SELECT ev.deal_id, min(ev.changed_at) AS created_at,
           min(ev.changed_at) FILTER (WHERE ev.stage = 'paid') AS won_at,
           min(ev.changed_at) FILTER (WHERE ev.stage = 'lost') AS lost_at,
           max(ev.open_order) AS open_order
      FROM ev GROUP BY ev.deal_id)
SELECT d.deal_id, d.won_at IS NOT NULL AND (d.lost_at IS NULL OR d.won_at <= d.lost_at), d.created_at,
       least(d.won_at, d.lost_at), x.amount,
       coalesce((ARRAY['lead', 'qualified', 'proposal', 'invoice'])[d.open_order], '(no open stage)'),
       coalesce(x.lost_reason, '(not recorded)'), x.lead_id, x.customer_id
  FROM d JOIN crm_demo.deals x ON x.deal_id = d.deal_id
 WHERE least(d.won_at, d.lost_at) >= f
$$;

CREATE TEMP TABLE pc AS SELECT * FROM pg_temp.plain_closed('2025-10-01', '2026-01-01');
-- contacts: real interactions of the deal's lead or customer from its first event to its close
CREATE TEMP TABLE pcx AS
SELECT pc.*, (SELECT count(*) FROM crm_demo.interactions i
               WHERE NOT i.automated AND (i.lead_id = pc.lead_id OR i.customer_id = pc.customer_id)
                 AND i.occurred_at >= pc.created_at AND i.occurred_at <= pc.closed_at) AS contacts
  FROM pc;
CREATE TEMP TABLE dl AS SELECT * FROM crm.dashboard_losses('2025-10-01', '2025-12-31');
CREATE TEMP TABLE df AS SELECT * FROM crm.dashboard_followups('2025-10-01', '2025-12-31');
CREATE TEMP TABLE od AS SELECT * FROM crm.owner_dashboard('2025-10-01', '2025-12-31');

SELECT ok((SELECT count(*) > 10 AND count(DISTINCT reason) >= 6 FROM dl), 'demo Q4: losses by several reasons and stages');
SELECT results_eq(
  $$SELECT reason, stage, deals, lost_value, share_pct FROM dl$$,
  $$SELECT reason, stage, count(*), sum(amount), round(100 * sum(amount) / sum(sum(amount)) OVER (), 2)
      FROM pc WHERE NOT is_won GROUP BY 1, 2 ORDER BY 4 DESC, 1, 2$$,
  'demo Q4: dashboard_losses = plain SQL over crm_demo (rows, order, shares)');
SELECT is((SELECT sum(deals)::numeric FROM dl), (SELECT value FROM od WHERE metric = 'deals_lost'),
          'demo Q4: dashboard_losses deals total = owner_dashboard deals_lost');
SELECT is((SELECT sum(lost_value) FROM dl), (SELECT value FROM od WHERE metric = 'lost_deal_value'),
          'demo Q4: dashboard_losses lost_value total = owner_dashboard lost_deal_value');
SELECT set_eq(
  $$SELECT 'lost_value_at_' || stage, sum(lost_value) FROM dl WHERE stage <> '(no open stage)' GROUP BY stage$$,
  $$SELECT metric, value FROM od WHERE metric LIKE 'lost\_value\_at\_%' AND value <> 0$$,
  'demo Q4: dashboard_losses per stage = owner_dashboard lost_value_at_<stage>');
SELECT ok((SELECT abs(sum(share_pct) - 100) <= 0.005 * count(*) FROM dl), 'demo Q4: shares add up to 100 % (per-row rounding)');
SELECT is((SELECT sum(deals)::numeric FROM dl WHERE reason = 'no payment'),
          (SELECT count(*)::numeric FROM pc WHERE NOT is_won AND stage = 'invoice'),
          'demo Q4: "no payment" is the reason of exactly the deals lost at invoice');
-- another period (a month) and its totals
SELECT is((SELECT (sum(deals), sum(lost_value))::text FROM crm.dashboard_losses('2025-11-01', '2025-11-30')),
          (SELECT (value, (SELECT value FROM crm.owner_dashboard('2025-11-01', '2025-11-30') WHERE metric = 'lost_deal_value'))::text
             FROM crm.owner_dashboard('2025-11-01', '2025-11-30') WHERE metric = 'deals_lost'),
          'demo November: totals = owner_dashboard deals_lost, lost_deal_value');

SELECT results_eq(
  $$SELECT contacts, deals, lost_value, won_deals, won_value, win_rate_pct FROM df$$,
  $$SELECT b.label, count(*) FILTER (WHERE NOT is_won), coalesce(sum(amount) FILTER (WHERE NOT is_won), 0),
           count(*) FILTER (WHERE is_won), coalesce(sum(amount) FILTER (WHERE is_won), 0),
           round(100.0 * count(*) FILTER (WHERE is_won) / nullif(count(pcx.deal_id), 0), 2)
      FROM (VALUES (0, '0'), (1, '1'), (2, '2'), (3, '3+')) b(k, label)
      LEFT JOIN pcx ON least(pcx.contacts, 3) = b.k
     GROUP BY b.k, b.label ORDER BY b.k$$,
  'demo Q4: dashboard_followups = plain SQL over crm_demo (interactions of the deal''s lead or customer)');
SELECT is((SELECT (sum(deals), sum(won_deals))::text FROM df),
          (SELECT ((SELECT value FROM od WHERE metric = 'deals_lost')::bigint, (SELECT value FROM od WHERE metric = 'deals_won')::bigint)::text),
          'demo Q4: dashboard_followups lost and won totals = owner_dashboard deals_lost, deals_won');
SELECT is((SELECT sum(lost_value) FROM df), (SELECT value FROM od WHERE metric = 'lost_deal_value'),
          'demo Q4: dashboard_followups lost_value total = owner_dashboard lost_deal_value');
SELECT is(ARRAY(SELECT contacts FROM df), ARRAY['0', '1', '2', '3+'], 'demo Q4: four buckets in order');
SELECT set_eq(
  $$SELECT deal_id, outcome, stage, lost_reason, contacts FROM crm.dashboard_closed_deals('2025-10-01', '2025-12-31')$$,
  $$SELECT deal_id::text, CASE WHEN is_won THEN 'won' ELSE 'lost' END AS o, stage, CASE WHEN NOT is_won THEN reason END AS r, contacts FROM pcx$$,
  'demo Q4: dashboard_closed_deals = plain SQL per deal');

-- the views show the dashboard period (crm._register_demo_sources set it to December 2025)
SELECT results_eq($$SELECT period_from, period_to, reason, stage, deals, lost_value, share_pct FROM crm.v_losses$$,
                  $$SELECT p.period_from, p.period_to, l.* FROM crm.dashboard_period() p, crm.dashboard_losses(p.period_from, p.period_to) l$$,
                  'v_losses = dashboard_losses over the dashboard period');
SELECT results_eq($$SELECT period_from, period_to, contacts, deals, lost_value, won_deals, won_value, win_rate_pct FROM crm.v_followups$$,
                  $$SELECT p.period_from, p.period_to, f.* FROM crm.dashboard_period() p, crm.dashboard_followups(p.period_from, p.period_to) f$$,
                  'v_followups = dashboard_followups over the dashboard period');
SELECT is((SELECT count(*)::int FROM crm.v_followups), 4, 'v_followups: four rows');

-- ---------------------------------------------------------------------------
-- Hand-worked fixture, December 2025 (cur = [Dec 1, Jan 1))
-- ---------------------------------------------------------------------------
CREATE SCHEMA lfx;
CREATE TABLE lfx.deal_events(deal_id bigint, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO lfx.deal_events VALUES
 (1,'2025-12-01','lead',100,1,'ads'),(1,'2025-12-03','qualified',100,1,'ads'),(1,'2025-12-10','lost',100,1,'ads'),
 (2,'2025-12-02','lead',200,1,'ads'),(2,'2025-12-04','lost',200,1,'ads'),
 (3,'2025-11-20','lead',300,1,'seo'),(3,'2025-11-25','qualified',300,1,'seo'),(3,'2025-12-01','proposal',300,1,'seo'),(3,'2025-12-15','lost',300,1,'seo'),
 (4,'2025-12-05','lead',500,1,'seo'),(4,'2025-12-20','paid',500,1,'seo'),
 (5,'2025-12-01','lead',50,1,'ads'),(5,'2025-12-02','invoice',50,1,'ads'),(5,'2025-12-03','paid',50,1,'ads'),
 (6,'2025-11-01','lead',999,1,'ads'),(6,'2025-11-10','paid',999,1,'ads'),(6,'2025-12-05','lost',999,1,'ads'),
 (7,'2025-11-01','lead',70,1,'ads'),(7,'2025-11-30','lost',70,1,'ads'),
 (8,'2025-12-20','lost',40,2,'ads'),
 (9,'2025-11-15','lead',90,2,'ads'),(9,'2026-01-02','lost',90,2,'ads'),
 (10,'2025-12-01','lead',250,2,'seo'),(10,'2025-12-05','invoice',250,2,'seo'),(10,'2025-12-28','lost',250,2,'seo'),
 (11,'2025-12-03','lead',60,2,'ads'),(11,'2025-12-04','qualified',60,2,'ads'),(11,'2025-12-06','lost',60,2,'ads');
CREATE TABLE lfx.deals(deal_id bigint, customer_id bigint, lead_id bigint, lost_reason text);
INSERT INTO lfx.deals VALUES (1,NULL,11,'price'),(2,NULL,12,NULL),(3,NULL,13,'price'),(4,104,14,NULL),(5,105,15,NULL),
 (6,106,16,'price'),(7,NULL,17,'price'),(8,NULL,18,'competitor'),(9,NULL,19,'price'),(10,NULL,20,'no payment'),(11,NULL,21,'price');
CREATE TABLE lfx.interactions(interaction_id bigint, customer_id bigint, lead_id bigint, manager_id int, occurred_at timestamptz, kind text, direction text, automated boolean);
INSERT INTO lfx.interactions VALUES
 (1,NULL,11,1,'2025-12-01 10:00','call','outbound',false),(2,NULL,11,1,'2025-12-05','meeting','outbound',false),
 (3,NULL,11,1,'2025-12-06','mailing','outbound',true),(4,NULL,11,1,'2025-12-11','call','outbound',false),
 (5,NULL,13,1,'2025-11-19','call','outbound',false),(6,NULL,13,1,'2025-11-21','call','outbound',false),
 (7,NULL,13,1,'2025-11-30','call','outbound',false),(8,NULL,13,1,'2025-12-14','email','inbound',false),
 (9,NULL,13,1,'2025-12-15','call','outbound',false),
 (10,NULL,14,1,'2025-12-06','call','outbound',false),(11,104,NULL,1,'2025-12-10','call','outbound',false),
 (12,104,14,1,'2025-12-12','meeting','outbound',false),(13,104,NULL,1,'2025-12-15','mailing','outbound',true),
 (14,104,NULL,1,'2025-12-21','call','outbound',false),
 (15,NULL,15,1,'2025-12-02','call','outbound',false),
 (16,NULL,18,2,'2025-12-19','call','outbound',false),(17,NULL,18,2,'2025-12-20','call','outbound',false),
 (18,NULL,20,2,'2025-12-02','call','outbound',false),(19,NULL,99,2,'2025-12-02','call','outbound',false);
CREATE TABLE lfx.empty(x int);
DELETE FROM crm.pipeline_stages;
INSERT INTO crm.pipeline_stages VALUES ('lead',1,0.10,'open'),('qualified',2,0.25,'open'),('proposal',3,0.50,'open'),
 ('invoice',4,0.80,'open'),('paid',5,1,'won'),('lost',6,0,'lost');
DO $$
BEGIN
    PERFORM crm.register_source('stage_events', 'SELECT * FROM lfx.deal_events');
    PERFORM crm.register_source('deals', 'SELECT * FROM lfx.deals');
    PERFORM crm.register_source('interactions', 'SELECT * FROM lfx.interactions');
    PERFORM crm.register_source('leads', 'SELECT NULL::bigint, NULL::timestamptz, NULL::text, NULL::int, NULL::bigint FROM lfx.empty');
    PERFORM crm.register_source('customers', 'SELECT NULL::bigint, NULL::timestamptz, NULL::text, NULL::int FROM lfx.empty');
    PERFORM crm.register_source('orders', 'SELECT NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::numeric, NULL::numeric, NULL::int FROM lfx.empty');
    PERFORM crm.register_source('invoices', 'SELECT NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::numeric, NULL::timestamptz FROM lfx.empty');
    PERFORM crm.register_source('spend', 'SELECT NULL::text, NULL::timestamptz, NULL::numeric FROM lfx.empty');
END
$$;

-- Hand-worked, December:
--  lost in December: 1 (price, reached qualified, 100), 2 (no reason, lead, 200), 3 (price, proposal, 300),
--    8 (competitor, only a lost event: no open stage, 40), 10 (no payment, invoice, 250), 11 (price, qualified, 60).
--    Not: 6 (won in November, lost after: won), 7 (lost in November), 9 (lost in January).  Total 950.
--  shares: 300/950 = 31.58, 250/950 = 26.32, 200/950 = 21.05, 160/950 = 16.84, 40/950 = 4.21.
SELECT results_eq(
  $$SELECT reason, stage, deals, lost_value, share_pct FROM crm.dashboard_losses('2025-12-01', '2025-12-31')$$,
  $$VALUES ('price', 'proposal', 1::bigint, 300::numeric, 31.58::numeric), ('no payment', 'invoice', 1, 250, 26.32),
           ('(not recorded)', 'lead', 1, 200, 21.05), ('price', 'qualified', 2, 160, 16.84),
           ('competitor', '(no open stage)', 1, 40, 4.21)$$,
  'fixture: dashboard_losses by reason and stage, hand-worked');
--  owner_dashboard: deals_lost 6, lost_deal_value 950; at lead 200, qualified 160, proposal 300, invoice 250
SELECT results_eq(
  $$SELECT metric, value FROM crm.owner_dashboard('2025-12-01', '2025-12-31')
     WHERE metric IN ('deals_lost', 'lost_deal_value', 'deals_won') OR metric LIKE 'lost\_value\_at\_%'$$,
  $$VALUES ('deals_won', 2::numeric), ('deals_lost', 6), ('lost_deal_value', 950),
           ('lost_value_at_lead', 200), ('lost_value_at_qualified', 160), ('lost_value_at_proposal', 300), ('lost_value_at_invoice', 250)$$,
  'fixture: owner_dashboard agrees (deals_lost 6, lost_deal_value 950, per stage)');
--  contacts (real, lead's or customer's, first event .. close, both included):
--    1: Dec 1 call, Dec 5 meeting (the Dec 6 mailing is automated, the Dec 11 call after the close) = 2
--    2: none = 0;  3: Nov 21, Nov 30, Dec 14 inbound e-mail, Dec 15 (= the close) = 4 (Nov 19 is before its first event)
--    4 (won): lead 14 Dec 6, customer 104 Dec 10, Dec 12 (lead and customer: once) = 3 (mailing automated, Dec 21 after)
--    5 (won): 1;  8: Dec 20 (= its only event) = 1 (Dec 19 before);  10: 1;  11: 0
--  buckets: 0: lost 2, 11 (260) | 1: lost 8, 10 (290), won 5 (50): 1/3 | 2: lost 1 (100) | 3+: lost 3 (300), won 4 (500): 1/2
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_followups('2025-12-01', '2025-12-31')$$,
  $$VALUES ('0', 2::bigint, 260::numeric, 0::bigint, 0::numeric, 0.00::numeric), ('1', 2, 290, 1, 50, 33.33),
           ('2', 1, 100, 0, 0, 0.00), ('3+', 1, 300, 1, 500, 50.00)$$,
  'fixture: dashboard_followups by contacts, hand-worked');
SELECT results_eq(
  $$SELECT deal_id, manager_id, outcome, stage, lost_reason, contacts, amount FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31')$$,
  $$VALUES ('5', '1', 'won', 'invoice', NULL, 1::bigint, 50::numeric), ('2', '1', 'lost', 'lead', '(not recorded)', 0, 200),
           ('11', '2', 'lost', 'qualified', 'price', 0, 60), ('1', '1', 'lost', 'qualified', 'price', 2, 100),
           ('3', '1', 'lost', 'proposal', 'price', 4, 300), ('4', '1', 'won', 'lead', NULL, 3, 500),
           ('8', '2', 'lost', '(no open stage)', 'competitor', 1, 40), ('10', '2', 'lost', 'invoice', 'no payment', 1, 250)$$,
  'fixture: dashboard_closed_deals per deal, ordered by close');
-- "which deals did a manager call at most once and give up on?" (the documented query)
SELECT results_eq(
  $$SELECT manager_id, string_agg(deal_id, ',' ORDER BY deal_id::bigint), sum(amount)
      FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31')
     WHERE outcome = 'lost' AND contacts <= 1 GROUP BY manager_id ORDER BY manager_id$$,
  $$VALUES ('1', '2', 200::numeric), ('2', '8,10,11', 350)$$,
  'fixture: the per-manager "called once and gave up" query');
-- a period without closed deals: no loss rows, four zero buckets
SELECT is((SELECT count(*)::int FROM crm.dashboard_losses('2025-10-01', '2025-10-31')), 0, 'fixture: no losses in October');
SELECT results_eq($$SELECT contacts, deals, won_deals, win_rate_pct FROM crm.dashboard_followups('2025-10-01', '2025-10-31')$$,
                  $$VALUES ('0', 0::bigint, 0::bigint, NULL::numeric), ('1', 0, 0, NULL), ('2', 0, 0, NULL), ('3+', 0, 0, NULL)$$,
                  'fixture: October, four empty buckets, no win rate');
-- a deals source that repeats a deal counts it once
INSERT INTO lfx.deals VALUES (1, NULL, 11, 'zzz duplicate');
SELECT is((SELECT sum(deals)::int FROM crm.dashboard_losses('2025-12-01', '2025-12-31')), 6, 'fixture: a repeated deal row counts once');
DELETE FROM lfx.deals WHERE lost_reason = 'zzz duplicate';

-- a reporting role: USAGE on crm, SELECT on the registry and the tables the sources read
CREATE ROLE crm_losses_bi;
GRANT USAGE ON SCHEMA crm, lfx TO crm_losses_bi;
GRANT SELECT ON crm.sources TO crm_losses_bi;
GRANT SELECT ON ALL TABLES IN SCHEMA lfx TO crm_losses_bi;
SELECT crm.set_dashboard_period('2025-12-01', '2025-12-31');
SET ROLE crm_losses_bi;
SELECT is((SELECT sum(lost_value) FROM crm.v_losses), 950::numeric, 'role with USAGE + SELECT grants: v_losses');
SELECT is((SELECT sum(won_deals)::int FROM crm.v_followups), 2, 'role with USAGE + SELECT grants: v_followups');
SELECT is((SELECT count(*)::int FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31')), 8, 'role with USAGE + SELECT grants: dashboard_closed_deals');
RESET ROLE;
REVOKE SELECT ON lfx.interactions FROM crm_losses_bi;
SET ROLE crm_losses_bi;
SELECT throws_ok($$SELECT * FROM crm.dashboard_followups('2025-12-01', '2025-12-31')$$, '42501', NULL,
                 'role without SELECT on the interactions table: followups refused');
RESET ROLE;
REVOKE SELECT ON crm.sources FROM crm_losses_bi;
SET ROLE crm_losses_bi;
SELECT throws_ok($$SELECT * FROM crm.v_losses$$, '42501', 'permission denied for the source registry crm.sources',
                 'role without SELECT on crm.sources: a clear error');
RESET ROLE;

-- bad input
SELECT throws_ok($$SELECT * FROM crm.dashboard_losses(NULL, '2025-12-31')$$, '22004', 'period bounds must not be null', 'losses: NULL period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_followups('2025-12-01', NULL)$$, '22004', 'period bounds must not be null', 'followups: NULL period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_losses('2025-12-31', '2025-12-01')$$, '22023', 'period start 2025-12-31 is after its end 2025-12-01', 'losses: inverted period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_followups('2025-12-31', '2025-12-01')$$, '22023', NULL, 'followups: inverted period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_losses('-infinity', '2025-12-31')$$, '22008', 'period bounds must be finite, got -infinity to 2025-12-31', 'losses: infinite period');
SELECT throws_ok($$SELECT * FROM crm.dashboard_closed_deals('2025-12-01', 'infinity')$$, '22008', NULL, 'closed_deals: infinite period');
SELECT throws_ok($$SELECT crm.register_source('deals', 'SELECT deal_id, lead_id, lost_reason FROM lfx.deals')$$, '42804', NULL,
                 'register_source deals: three columns refused');
INSERT INTO lfx.deal_events VALUES (12,'2025-12-02','negotiation',10,1,'ads');
SELECT throws_ok($$SELECT * FROM crm.dashboard_losses('2025-12-01', '2025-12-31')$$, '22023',
                 'source "stage_events" uses stages missing from crm.pipeline_stages: negotiation', 'losses: unknown stage named');
DELETE FROM lfx.deal_events WHERE deal_id = 12;
-- without the deals source: losses without reasons, follow-ups need it
SELECT is(crm.unregister_source('deals'), true, 'unregister the deals source');
SELECT results_eq(
  $$SELECT reason, stage, deals, lost_value FROM crm.dashboard_losses('2025-12-01', '2025-12-31')$$,
  $$VALUES ('(not recorded)', 'proposal', 1::bigint, 300::numeric), ('(not recorded)', 'invoice', 1, 250),
           ('(not recorded)', 'lead', 1, 200), ('(not recorded)', 'qualified', 2, 160), ('(not recorded)', '(no open stage)', 1, 40)$$,
  'no deals source: losses by stage with reason (not recorded)');
SELECT throws_ok($$SELECT * FROM crm.dashboard_followups('2025-12-01', '2025-12-31')$$, '55000', 'source "deals" is not registered',
                 'no deals source: followups name the source to register');
SELECT is(crm.unregister_source('stage_events'), true, 'unregister the stage_events source');
SELECT throws_ok($$SELECT * FROM crm.dashboard_losses('2025-12-01', '2025-12-31')$$, '55000', 'source "stage_events" is not registered',
                 'no stage_events source: the usual error');
SELECT crm.register_source('stage_events', 'SELECT * FROM lfx.deal_events');
DELETE FROM crm.pipeline_stages;
SELECT throws_ok($$SELECT * FROM crm.dashboard_losses('2025-12-01', '2025-12-31')$$, '55000', 'crm.pipeline_stages has no won stage',
                 'losses: stages not configured');
SELECT throws_ok($$SELECT * FROM crm.dashboard_followups('2025-12-01', '2025-12-31')$$, '55000', 'crm.pipeline_stages has no won stage',
                 'followups: stages not configured');

SELECT * FROM finish();
ROLLBACK;
