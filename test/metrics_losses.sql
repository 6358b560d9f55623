-- test/metrics_losses.sql: the metrics of docs/metrics.md, section "losses"
-- (lost reasons and follow-up depth), through every surface that shows them
-- (crm.dashboard_losses, crm.v_losses, crm.dashboard_followups,
-- crm.v_followups, crm.dashboard_closed_deals), against an independent
-- plain-SQL computation over crm_demo.* and against crm.owner_dashboard's
-- totals, for Q4 2025, the previous quarter and the dashboard period.
BEGIN;
SELECT plan(14);

-- per deal closed in [f, t), straight from the demo tables (no crm function)
CREATE FUNCTION pg_temp.plain_deals(f timestamptz, t timestamptz)
RETURNS TABLE (deal_id bigint, is_won boolean, amount numeric, stage text, reason text, contacts bigint)
LANGUAGE sql AS $$
WITH ev AS (
    SELECT e.deal_id, e.changed_at, e.stage,
           array_position(ARRAY['lead', 'qualified', 'proposal', 'invoice'], e.stage) AS open_order
      FROM crm_demo.deal_events e WHERE e.changed_at < t),
d AS (
    SELECT ev.deal_id, min(ev.changed_at) AS created_at,
           min(ev.changed_at) FILTER (WHERE ev.stage = 'paid') AS won_at,
           min(ev.changed_at) FILTER (WHERE ev.stage = 'lost') AS lost_at,
           max(ev.open_order) AS open_order
      FROM ev GROUP BY ev.deal_id),
c AS (
    SELECT d.*, least(d.won_at, d.lost_at) AS closed_at, x.amount, x.lost_reason, x.lead_id, x.customer_id
      FROM d JOIN crm_demo.deals x ON x.deal_id = d.deal_id
     WHERE least(d.won_at, d.lost_at) >= f)
SELECT c.deal_id, c.won_at IS NOT NULL AND (c.lost_at IS NULL OR c.won_at <= c.lost_at), c.amount,
       coalesce((ARRAY['lead', 'qualified', 'proposal', 'invoice'])[c.open_order], '(no open stage)'),
       coalesce(c.lost_reason, '(not recorded)'),
       (SELECT count(*) FROM crm_demo.interactions i
         WHERE NOT i.automated AND (i.lead_id = c.lead_id OR i.customer_id = c.customer_id)
           AND i.occurred_at BETWEEN c.created_at AND c.closed_at)
  FROM c
$$;
CREATE FUNCTION pg_temp.plain_losses(f timestamptz, t timestamptz)
RETURNS TABLE (reason text, stage text, deals bigint, lost_value numeric, share_pct numeric)
LANGUAGE sql AS $$
SELECT reason, stage, count(*), sum(amount), round(100 * sum(amount) / sum(sum(amount)) OVER (), 2)
  FROM pg_temp.plain_deals(f, t) WHERE NOT is_won GROUP BY 1, 2 ORDER BY 4 DESC, 1, 2
$$;
CREATE FUNCTION pg_temp.plain_followups(f timestamptz, t timestamptz)
RETURNS TABLE (contacts text, deals bigint, lost_value numeric, won_deals bigint, won_value numeric, win_rate_pct numeric)
LANGUAGE sql AS $$
SELECT b.label, count(*) FILTER (WHERE NOT p.is_won), coalesce(sum(p.amount) FILTER (WHERE NOT p.is_won), 0),
       count(*) FILTER (WHERE p.is_won), coalesce(sum(p.amount) FILTER (WHERE p.is_won), 0),
       round(100.0 * count(*) FILTER (WHERE p.is_won) / nullif(count(p.deal_id), 0), 2)
  FROM (VALUES (0, '0'), (1, '1'), (2, '2'), (3, '3+')) b(k, label)
  LEFT JOIN pg_temp.plain_deals(f, t) p ON least(p.contacts, 3) = b.k
 GROUP BY b.k, b.label ORDER BY b.k
$$;

CREATE TEMP TABLE od AS SELECT * FROM crm.owner_dashboard('2025-10-01', '2025-12-31');

SELECT results_eq(
  $$SELECT reason, sum(deals), sum(lost_value) FROM crm.dashboard_losses('2025-10-01', '2025-12-31') GROUP BY 1 ORDER BY 1$$,
  $$SELECT reason, sum(deals), sum(lost_value) FROM pg_temp.plain_losses('2025-10-01', '2026-01-01') GROUP BY 1 ORDER BY 1$$,
  'metric lost_deals_by_reason, lost_value_by_reason: per reason, dashboard_losses = plain SQL (Q4)');
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_losses('2025-10-01', '2025-12-31')$$,
  $$SELECT * FROM pg_temp.plain_losses('2025-10-01', '2026-01-01')$$,
  'metric lost_deals_by_reason, lost_value_by_reason, lost_value_share: per reason and stage, dashboard_losses = plain SQL (Q4)');
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_losses('2025-07-01', '2025-09-30')$$,
  $$SELECT * FROM pg_temp.plain_losses('2025-07-01', '2025-10-01')$$,
  'metric lost_deals_by_reason, lost_value_by_reason, lost_value_share: dashboard_losses = plain SQL (Q3, the previous period)');
SELECT results_eq(
  $$SELECT reason, stage, deals, lost_value, share_pct FROM crm.v_losses$$,
  $$SELECT l.* FROM crm.dashboard_period() p, pg_temp.plain_losses(p.period_from, p.period_to + 1) l$$,
  'metric lost_deals_by_reason, lost_value_by_reason, lost_value_share: v_losses = plain SQL (dashboard period)');
SELECT is((SELECT (sum(deals)::numeric, sum(lost_value))::text FROM crm.dashboard_losses('2025-10-01', '2025-12-31')),
          (SELECT ((SELECT value FROM od WHERE metric = 'deals_lost'), (SELECT value FROM od WHERE metric = 'lost_deal_value'))::text),
          'metric lost_deals_by_reason, lost_value_by_reason: totals = owner_dashboard deals_lost, lost_deal_value (Q4)');
SELECT is((SELECT (sum(deals)::numeric, sum(lost_value))::text FROM crm.dashboard_losses('2025-07-01', '2025-09-30')),
          (SELECT ((SELECT previous_value FROM od WHERE metric = 'deals_lost'), (SELECT previous_value FROM od WHERE metric = 'lost_deal_value'))::text),
          'metric lost_deals_by_reason, lost_value_by_reason: totals = owner_dashboard previous deals_lost, lost_deal_value (Q3)');
SELECT ok((SELECT abs(sum(share_pct) - 100) <= 0.005 * count(*) FROM crm.dashboard_losses('2025-10-01', '2025-12-31')),
          'metric lost_value_share: the shares add up to 100 % (per-row rounding)');

SELECT set_eq(
  $$SELECT deal_id, contacts FROM crm.dashboard_closed_deals('2025-10-01', '2025-12-31')$$,
  $$SELECT deal_id::text, contacts FROM pg_temp.plain_deals('2025-10-01', '2026-01-01')$$,
  'metric deal_contacts: dashboard_closed_deals contacts = plain SQL per deal (Q4)');
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_followups('2025-10-01', '2025-12-31')$$,
  $$SELECT * FROM pg_temp.plain_followups('2025-10-01', '2026-01-01')$$,
  'metric lost_deals_by_contacts, lost_value_by_contacts, won_deals_by_contacts, won_value_by_contacts, win_rate_by_contacts: dashboard_followups = plain SQL (Q4)');
SELECT results_eq(
  $$SELECT * FROM crm.dashboard_followups('2025-07-01', '2025-09-30')$$,
  $$SELECT * FROM pg_temp.plain_followups('2025-07-01', '2025-10-01')$$,
  'metric lost_deals_by_contacts, lost_value_by_contacts, won_deals_by_contacts, won_value_by_contacts, win_rate_by_contacts: dashboard_followups = plain SQL (Q3)');
SELECT results_eq(
  $$SELECT contacts, deals, lost_value, won_deals, won_value, win_rate_pct FROM crm.v_followups$$,
  $$SELECT f.* FROM crm.dashboard_period() p, pg_temp.plain_followups(p.period_from, p.period_to + 1) f$$,
  'metric lost_deals_by_contacts, lost_value_by_contacts, won_deals_by_contacts, won_value_by_contacts, win_rate_by_contacts: v_followups = plain SQL (dashboard period)');
SELECT is((SELECT (sum(deals)::numeric, sum(lost_value), sum(won_deals)::numeric)::text FROM crm.dashboard_followups('2025-10-01', '2025-12-31')),
          (SELECT ((SELECT value FROM od WHERE metric = 'deals_lost'), (SELECT value FROM od WHERE metric = 'lost_deal_value'),
                   (SELECT value FROM od WHERE metric = 'deals_won'))::text),
          'metric lost_deals_by_contacts, lost_value_by_contacts, won_deals_by_contacts: totals = owner_dashboard deals_lost, lost_deal_value, deals_won (Q4)');
SELECT is((SELECT round(100.0 * sum(won_deals) / sum(won_deals + deals), 2) FROM crm.dashboard_followups('2025-10-01', '2025-12-31')),
          (SELECT value FROM od WHERE metric = 'win_rate'),
          'metric win_rate_by_contacts: pooled over the buckets = owner_dashboard win_rate (Q4)');
-- average_won_deal is rounded to cents: at most half a cent per deal apart
SELECT ok((SELECT abs(sum(won_value) / sum(won_deals) - (SELECT value FROM od WHERE metric = 'average_won_deal')) <= 0.005
             FROM crm.dashboard_followups('2025-10-01', '2025-12-31')),
          'metric won_value_by_contacts: total / won deals = owner_dashboard average_won_deal (Q4, to the cent)');

SELECT * FROM finish();
ROLLBACK;
