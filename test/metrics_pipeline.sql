-- test/metrics_pipeline.sql: the pipeline metrics of docs/metrics.md (section
-- "pipeline"): open pipeline, weighted pipeline without stale deals, stale
-- deals and their value, through every surface that shows them
-- (crm.owner_dashboard, crm.v_owner_dashboard, crm.dashboard_pipeline,
-- crm.v_pipeline), against a plain-SQL computation on the demo and against a
-- hand-worked second dataset.
BEGIN;
SELECT plan(36);

-- The independent computation: straight from the demo tables (not through the
-- registered sources nor any crm function), as of the moment t.
CREATE FUNCTION pg_temp.plain_pipe(t timestamptz,
    OUT open_n bigint, OUT open_amt numeric, OUT weighted numeric, OUT stale_n bigint, OUT stale_amt numeric)
LANGUAGE sql AS $$
WITH ev AS (
    SELECT e.deal_id, e.changed_at, d.amount, s.stage_order, s.outcome, s.probability, s.max_days
      FROM crm_demo.deal_events e JOIN crm_demo.deals d ON d.deal_id = e.deal_id
      JOIN crm.pipeline_stages s ON s.stage = e.stage
     WHERE e.changed_at < t),
deal AS (
    SELECT deal_id, max(amount) AS amount, max(changed_at) AS last_change,
           bool_or(outcome <> 'open') AS closed,
           max(stage_order) FILTER (WHERE outcome = 'open') AS open_stage
      FROM ev GROUP BY deal_id),
open_deal AS (
    SELECT deal.*, s.probability,
           s.max_days IS NOT NULL AND t - deal.last_change > s.max_days * interval '1 day' AS stale
      FROM deal JOIN crm.pipeline_stages s ON s.stage_order = deal.open_stage
     WHERE NOT deal.closed)
SELECT count(*), coalesce(sum(amount), 0),
       round(coalesce(sum(amount * probability) FILTER (WHERE NOT stale), 0), 2),
       count(*) FILTER (WHERE stale), coalesce(sum(amount) FILTER (WHERE stale), 0)
  FROM open_deal
$$;

CREATE TEMP TABLE od AS SELECT * FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
CREATE TEMP TABLE dp AS SELECT * FROM crm.dashboard_pipeline('2025-10-01', '2025-12-31');
CREATE TEMP TABLE pl AS SELECT * FROM pg_temp.plain_pipe('2026-01-01');
CREATE TEMP TABLE pl_prev AS SELECT * FROM pg_temp.plain_pipe('2025-10-01');

SELECT ok((SELECT stale_n > 0 AND weighted > 0 FROM pl), 'demo Q4 2025: the demo has stale deals and a live weighted pipeline');
SELECT is((SELECT value FROM od WHERE metric = 'weighted_pipeline'), (SELECT weighted FROM pl),
          'demo: owner_dashboard weighted_pipeline = plain SQL (stale deals left out)');
SELECT is((SELECT value FROM od WHERE metric = 'stale_deals'), (SELECT stale_n::numeric FROM pl),
          'demo: owner_dashboard stale_deals = plain SQL');
SELECT is((SELECT value FROM od WHERE metric = 'stale_pipeline_value'), (SELECT stale_amt FROM pl),
          'demo: owner_dashboard stale_pipeline_value = plain SQL');
SELECT is((SELECT value FROM od WHERE metric = 'open_deals'), (SELECT open_n::numeric FROM pl),
          'demo: owner_dashboard open_deals = plain SQL');
SELECT is((SELECT value FROM od WHERE metric = 'open_pipeline_value'), (SELECT open_amt FROM pl),
          'demo: owner_dashboard open_pipeline_value = plain SQL');
SELECT is((SELECT previous_value FROM od WHERE metric = 'weighted_pipeline'), (SELECT weighted FROM pl_prev),
          'demo: owner_dashboard previous weighted_pipeline (end of Q3) = plain SQL');
SELECT is((SELECT previous_value FROM od WHERE metric = 'stale_pipeline_value'), (SELECT stale_amt FROM pl_prev),
          'demo: owner_dashboard previous stale_pipeline_value (end of Q3) = plain SQL');
-- dashboard_pipeline rounds per stage: at most half a cent per stage apart
SELECT ok((SELECT abs(sum(weighted_value) - (SELECT weighted FROM pl)) <= 0.005 * count(*) FROM dp),
          'demo: sum of dashboard_pipeline weighted_value = plain SQL (per-stage rounding)');
SELECT is((SELECT sum(open_deals)::numeric FROM dp), (SELECT open_n::numeric FROM pl), 'demo: dashboard_pipeline open_deals = plain SQL');
SELECT is((SELECT sum(open_value) FROM dp), (SELECT open_amt FROM pl), 'demo: dashboard_pipeline open_value = plain SQL');
-- the views show the dashboard period: same figures as the functions for it
SELECT is((SELECT array_agg(value ORDER BY metric) FROM crm.v_owner_dashboard
            WHERE metric IN ('weighted_pipeline', 'stale_deals', 'stale_pipeline_value', 'open_pipeline_value')),
          (SELECT array_agg(o.value ORDER BY o.metric) FROM crm.dashboard_period() p, crm.owner_dashboard(p.period_from, p.period_to) o
            WHERE o.metric IN ('weighted_pipeline', 'stale_deals', 'stale_pipeline_value', 'open_pipeline_value')),
          'demo: v_owner_dashboard pipeline metrics = owner_dashboard for the dashboard period');
SELECT is((SELECT array_agg(weighted_value ORDER BY stage_order) FROM crm.v_pipeline),
          (SELECT array_agg(d.weighted_value ORDER BY d.stage_order) FROM crm.dashboard_period() p, crm.dashboard_pipeline(p.period_from, p.period_to) d),
          'demo: v_pipeline weighted_value = dashboard_pipeline for the dashboard period');
SELECT is((SELECT value FROM crm.v_owner_dashboard WHERE metric = 'weighted_pipeline'),
          (SELECT p.weighted FROM crm.dashboard_period() d, pg_temp.plain_pipe((d.period_to + 1)::timestamptz) p),
          'demo: v_owner_dashboard weighted_pipeline = plain SQL at the dashboard period end');

-- A second, differently shaped pipeline, worked out by hand.  Stages: new
-- (p 0.2, norm 10 days), demo (p 0.6, no norm), won, dead.  Period June 2024,
-- end = 2024-07-01 00:00 UTC.
CREATE SCHEMA mpx;
CREATE TABLE mpx.deal_events(deal_id bigint, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO mpx.deal_events VALUES
 (1, '2024-06-25', 'new', 100, 1, 'x'),                                   -- idle 6 days: live, 0.2*100 = 20
 (2, '2024-06-01', 'new', 200, 1, 'x'),                                   -- idle 30 days > 10: stale
 (3, '2024-01-01', 'new', 300, 1, 'x'), (3, '2024-02-01', 'demo', 300, 1, 'x'), -- demo has no norm: live, 180
 (4, '2024-06-10', 'new', 400, 1, 'x'), (4, '2024-06-15', 'won', 400, 1, 'x'),  -- closed
 (5, '2024-05-01', 'new', 500, 1, 'x'), (5, '2024-06-20', 'dead', 500, 1, 'x'), -- closed
 (6, '2024-06-21', 'new', 50, 1, 'x'),                                    -- idle exactly 10 days: not beyond, live, 10
 (7, '2024-07-05', 'new', 700, 1, 'x'),                                   -- after the end: not there yet
 (8, '2024-05-01', 'new', 80, 1, 'x');                                    -- stale at the end of June and of May
SELECT crm.register_source('stage_events', 'SELECT deal_id, changed_at, stage, amount, manager_id, channel FROM mpx.deal_events');
DELETE FROM crm.pipeline_stages;
INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome, max_days) VALUES
 ('new', 1, 0.2, 'open', 10), ('demo', 2, 0.6, 'open', NULL), ('won', 3, 1, 'won', NULL), ('dead', 4, 0, 'lost', NULL);
CREATE TEMP TABLE od2 AS SELECT * FROM crm.owner_dashboard('2024-06-01', '2024-06-30');
CREATE TEMP TABLE dp2 AS SELECT * FROM crm.dashboard_pipeline('2024-06-01', '2024-06-30');

SELECT is((SELECT value FROM od2 WHERE metric = 'weighted_pipeline'), 210.00, 'second set: weighted pipeline 20 + 180 + 10 = 210 (deals 2 and 8 stale)');
SELECT is((SELECT value FROM od2 WHERE metric = 'stale_deals'), 2::numeric, 'second set: 2 stale deals');
SELECT is((SELECT value FROM od2 WHERE metric = 'stale_pipeline_value'), 280::numeric, 'second set: stale value 200 + 80');
SELECT is((SELECT value FROM od2 WHERE metric = 'open_pipeline_value'), 730::numeric, 'second set: open value 100 + 200 + 300 + 50 + 80');
-- end of May (previous period): deals 1, 6 not yet there, 4 open since 06-10? no: not yet created;
-- 2 not yet created; 3 in demo (live, 180); 5 in new since 05-01 (idle 31 days: stale); 8 stale
SELECT is((SELECT previous_value FROM od2 WHERE metric = 'weighted_pipeline'), 180.00, 'second set, end of May: weighted pipeline 180');
SELECT is((SELECT previous_value FROM od2 WHERE metric = 'stale_pipeline_value'), 580::numeric, 'second set, end of May: stale value 500 + 80');
SELECT is((SELECT array_agg(weighted_value ORDER BY stage_order) FROM dp2), ARRAY[30.00, 180.00, 0.00, 0.00],
          'second set: dashboard_pipeline weighted_value per stage (new: 0.2 * (100 + 50))');
SELECT is((SELECT array_agg(open_value ORDER BY stage_order) FROM dp2), ARRAY[430, 300, 0, 0]::numeric[],
          'second set: dashboard_pipeline open_value per stage still counts stale deals');
SELECT is((SELECT sum(weighted_value) FROM dp2), (SELECT value FROM od2 WHERE metric = 'weighted_pipeline'),
          'second set: dashboard_pipeline and owner_dashboard agree');
SELECT throws_ok($$INSERT INTO crm.pipeline_stages VALUES ('bad', 9, 0.5, 'open', 0)$$, '23514', NULL,
          'a stage norm must be positive');

-- Contact cadence: the purchase cycle clamped to [min_interval, max_interval]
-- of the class, worked by hand (defaults A: 14 days .. 1 month).
SELECT is(crm._coverage_interval('purchase_cycle', interval '3 hours', interval '14 days', interval '1 month'), interval '14 days',
          'cadence: a 3-hour cycle is raised to the lower bound');
SELECT is(crm._coverage_interval('purchase_cycle', interval '567 days', interval '14 days', interval '1 month'), interval '1 month',
          'cadence: a 567-day cycle is cut to the expert upper bound');
SELECT is(crm._coverage_interval('purchase_cycle', interval '20 days', interval '14 days', interval '1 month'), interval '20 days',
          'cadence: a cycle within the bounds is kept');
SELECT is(crm._coverage_interval('purchase_cycle', interval '3 hours', NULL, interval '1 month'), interval '3 hours',
          'cadence: no lower bound when min_interval is NULL');
SELECT is(crm._coverage_interval('purchase_cycle', NULL, interval '14 days', interval '1 month'), interval '1 month',
          'cadence: unknown cycle -> max_interval');
SELECT is(crm._coverage_interval('fixed', interval '20 days', interval '14 days', interval '1 month'), interval '1 month',
          'cadence: basis fixed ignores the cycle');
SELECT is((SELECT array_agg(min_interval::text || ' .. ' || max_interval::text ORDER BY class) FROM crm.coverage_policy WHERE class IN ('A', 'B', 'C')),
          ARRAY['14 days .. 1 mon', '1 mon .. 3 mons', '2 mons .. 6 mons'],
          'cadence: default bounds, upper = the expert cadence (A monthly, B quarterly, C half-yearly)');
SELECT throws_ok($$UPDATE crm.coverage_policy SET min_interval = interval '0' WHERE class = 'A'$$, '22023', NULL,
          'cadence: a lower bound must be positive');
SELECT is(crm._coverage_interval('purchase_cycle', interval '3 hours', interval '2 months', interval '1 month'), interval '1 month',
          'cadence: max_interval wins over a larger min_interval');

-- through the coverage table on the demo: every class on purchase cycles
SELECT crm.attach_coverage('crm_demo.interactions', customers => 'crm_demo.customers');
SELECT crm.coverage_set_classes($$SELECT customer_id, (ARRAY['A', 'B', 'C'])[customer_id % 3 + 1] FROM crm_demo.customers$$);
SELECT crm.coverage_set_purchase_cycles('SELECT customer_id, ordered_at FROM crm_demo.orders');
UPDATE crm.coverage_policy SET basis = 'purchase_cycle';
SELECT ok((SELECT min(purchase_cycle) < interval '14 days' AND max(purchase_cycle) > interval '6 months' FROM crm.coverage),
          'demo: purchase cycles run outside every class''s bounds');
SELECT is((SELECT count(*) FROM crm.coverage c
              JOIN (VALUES ('A', interval '14 days', interval '1 month'), ('B', interval '1 month', interval '3 months'),
                           ('C', interval '2 months', interval '6 months')) AS m(class, lo, hi) ON m.class = c.class
            WHERE c.contact_interval IS DISTINCT FROM
                  CASE WHEN c.purchase_cycle IS NULL THEN m.hi
                       WHEN c.purchase_cycle < m.lo THEN m.lo WHEN c.purchase_cycle > m.hi THEN m.hi
                       ELSE c.purchase_cycle END), 0::bigint,
          'demo: every contact interval = the cycle clamped to its class bounds (plain SQL)');
SELECT is((SELECT count(*) FROM crm.coverage WHERE next_due <> coalesce(last_contact, customer_since) + contact_interval), 0::bigint,
          'demo: next due = last contact + clamped interval');

SELECT * FROM finish();
ROLLBACK;
