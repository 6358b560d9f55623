-- test/rollups.sql: the daily rollups (crm.refresh_rollups, crm.v_daily, crm.daily_metrics)
-- against an independent plain-SQL computation over crm_demo.* and against the owner dashboard,
-- after a full refresh and after rounds of random INSERT / UPDATE / DELETE on every source table
-- (incremental refreshes), a TRUNCATE, a deal moved back, an order deleted, an invoice paid later.
BEGIN;
SELECT plan(61);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

-- ---------------------------------------------------------------- the plain-SQL computation
-- Every fact of the demo tables with its day and dimensions, then summed per
-- day, metric and dimension; written straight from the definitions in
-- docs/rollups.md (demo stages hard-coded: lead < qualified < proposal < invoice open, paid won, lost lost).
CREATE TEMP VIEW exp_daily AS
WITH cust AS (SELECT customer_id, channel, manager_id::text AS manager FROM crm_demo.customers),
fo AS (SELECT customer_id, min(ordered_at) AS first_at FROM crm_demo.orders GROUP BY 1),
ev AS (SELECT e.deal_id, e.changed_at, e.stage, d.amount, d.manager_id::text AS manager, d.channel
         FROM crm_demo.deal_events e JOIN crm_demo.deals d ON d.deal_id = e.deal_id),
dd AS (SELECT deal_id, min(changed_at) AS first_at, min(changed_at) FILTER (WHERE stage = 'paid') AS won_at,
              min(changed_at) FILTER (WHERE stage = 'lost') AS lost_at, min(manager) AS manager, min(channel) AS channel
         FROM ev GROUP BY 1),
dc AS (SELECT dd.*, least(won_at, lost_at) AS closed_at, won_at IS NOT NULL AND won_at <= coalesce(lost_at, won_at) AS is_won
         FROM dd WHERE least(won_at, lost_at) IS NOT NULL),
dv AS (SELECT dc.deal_id, dc.first_at, dc.closed_at, dc.is_won, dc.manager, dc.channel, max(ev.amount) AS amount,
              (ARRAY['lead', 'qualified', 'proposal', 'invoice'])[max(array_position(ARRAY['lead', 'qualified', 'proposal', 'invoice'], ev.stage))] AS lost_stage
         FROM dc JOIN ev ON ev.deal_id = dc.deal_id AND ev.changed_at <= dc.closed_at
        GROUP BY 1, 2, 3, 4, 5, 6),
facts (day, metric, v, channel, manager, stage) AS (
    SELECT l.created_at::date, 'leads_in', 1::numeric, l.channel, l.manager_id::text, NULL::text FROM crm_demo.leads l
    UNION ALL SELECT o.ordered_at::date, 'orders', 1, c.channel, c.manager, NULL FROM crm_demo.orders o LEFT JOIN cust c USING (customer_id)
    UNION ALL SELECT o.ordered_at::date, 'revenue', o.amount, c.channel, c.manager, NULL FROM crm_demo.orders o LEFT JOIN cust c USING (customer_id)
    UNION ALL SELECT o.ordered_at::date, 'gross_profit', o.amount - o.cost, c.channel, c.manager, NULL FROM crm_demo.orders o LEFT JOIN cust c USING (customer_id)
    UNION ALL SELECT fo.first_at::date, 'new_buyers', 1, c.channel, c.manager, NULL FROM fo LEFT JOIN cust c USING (customer_id)
    UNION ALL SELECT s.month, 'marketing_spend', s.amount, s.channel, NULL, NULL FROM crm_demo.spend s
    UNION ALL SELECT closed_at::date, 'deals_won', 1, channel, manager, NULL FROM dv WHERE is_won
    UNION ALL SELECT closed_at::date, 'won_value', amount, channel, manager, NULL FROM dv WHERE is_won
    UNION ALL SELECT closed_at::date, 'won_cycle_days', extract(epoch FROM closed_at - first_at) / 86400, channel, manager, NULL FROM dv WHERE is_won
    UNION ALL SELECT closed_at::date, 'deals_lost', 1, channel, manager, lost_stage FROM dv WHERE NOT is_won
    UNION ALL SELECT closed_at::date, 'lost_deal_value', amount, channel, manager, lost_stage FROM dv WHERE NOT is_won
    UNION ALL SELECT i.issued_at::date, 'invoices_issued', 1, c.channel, c.manager, NULL FROM crm_demo.invoices i LEFT JOIN cust c USING (customer_id)
    UNION ALL SELECT i.issued_at::date, 'invoices_issued_amount', i.amount, c.channel, c.manager, NULL FROM crm_demo.invoices i LEFT JOIN cust c USING (customer_id)
    UNION ALL SELECT i.paid_at::date, 'invoices_paid', 1, c.channel, c.manager, NULL FROM crm_demo.invoices i LEFT JOIN cust c USING (customer_id) WHERE i.paid_at IS NOT NULL
    UNION ALL SELECT i.paid_at::date, 'invoices_paid_amount', i.amount, c.channel, c.manager, NULL FROM crm_demo.invoices i LEFT JOIN cust c USING (customer_id) WHERE i.paid_at IS NOT NULL
    UNION ALL SELECT x.occurred_at::date, 'real_contacts', 1, NULL, x.manager_id::text, NULL FROM crm_demo.interactions x WHERE NOT x.automated)
SELECT day, metric, 'all' AS dimension, 'all' AS key, sum(v) AS value FROM facts GROUP BY 1, 2
UNION ALL
SELECT day, metric, 'channel', coalesce(channel, '(unknown)'), sum(v) FROM facts WHERE metric NOT IN ('real_contacts') AND metric NOT LIKE 'invoices%' GROUP BY 1, 2, 4
UNION ALL
SELECT day, metric, 'manager', coalesce(manager, '(unknown)'), sum(v) FROM facts WHERE metric <> 'marketing_spend' AND metric NOT LIKE 'invoices%' GROUP BY 1, 2, 4
UNION ALL
SELECT day, metric, 'stage', stage, sum(v) FROM facts WHERE stage IS NOT NULL GROUP BY 1, 2, 4;

-- rows of v_daily that differ from the plain computation (both ways)
CREATE FUNCTION pg_temp.daily_diff() RETURNS bigint LANGUAGE sql AS $$
SELECT count(*) FROM ((SELECT * FROM exp_daily EXCEPT ALL SELECT * FROM crm.v_daily)
                      UNION ALL (SELECT * FROM crm.v_daily EXCEPT ALL SELECT * FROM exp_daily)) d
$$;

-- the owner dashboard's additive figures vs the rollups' sums, for a period: mismatching metric names
CREATE FUNCTION pg_temp.dash_diff(f date, t date) RETURNS text[] LANGUAGE sql AS $$
WITH od AS (SELECT metric, value FROM crm.owner_dashboard(f, t)),
dm AS (SELECT metric, value FROM crm.daily_metrics(f, t) WHERE dimension = 'all'),
g AS (SELECT metric, coalesce(value, 0) AS value FROM (VALUES ('leads_in'), ('new_buyers'), ('orders'), ('revenue'), ('gross_profit'),
               ('marketing_spend'), ('deals_won'), ('deals_lost'), ('lost_deal_value'), ('won_value'), ('won_cycle_days')) m(metric)
        LEFT JOIN dm USING (metric)),
mine AS (
    SELECT metric, value FROM g WHERE metric NOT IN ('won_value', 'won_cycle_days')
    UNION ALL SELECT 'average_won_deal', round((SELECT value FROM g WHERE metric = 'won_value') / nullif((SELECT value FROM g WHERE metric = 'deals_won'), 0), 2)
    UNION ALL SELECT 'sales_cycle', round((SELECT value FROM g WHERE metric = 'won_cycle_days') / nullif((SELECT value FROM g WHERE metric = 'deals_won'), 0), 2)
    UNION ALL SELECT 'lost_value_at_' || ps.stage, coalesce((SELECT value FROM crm.daily_metrics(f, t) x WHERE x.metric = 'lost_deal_value' AND x.dimension = 'stage' AND x.key = ps.stage), 0)
      FROM crm.pipeline_stages ps WHERE ps.outcome = 'open')
SELECT coalesce(array_agg(mine.metric || ': ' || coalesce(mine.value::text, 'NULL') || ' vs ' || coalesce(od.value::text, 'NULL') ORDER BY mine.metric), '{}')
  FROM mine JOIN od USING (metric) WHERE mine.value IS DISTINCT FROM od.value
$$;

-- ---------------------------------------------------------------- full refresh
-- 1-3
SELECT ok((SELECT count(*) FROM crm.refresh_rollups(full => true)) = 6, 'a full refresh rebuilds all six parts (and attaches capture)');
SELECT is((SELECT last_mode FROM crm.rollup_status), 'full', 'it is recorded as a full one');
SELECT is(ARRAY(SELECT DISTINCT kind FROM crm.rollup_capture ORDER BY 1),
          ARRAY['customers', 'interactions', 'invoices', 'leads', 'orders', 'spend', 'stage_events'],
          'capture is attached to the tables of every source');
-- 4
SELECT is(ARRAY(SELECT relid::regclass::text FROM crm.rollup_capture WHERE kind = 'stage_events' ORDER BY 1),
          ARRAY['crm_demo.deal_events', 'crm_demo.deals'], 'the tables behind the stage_events join are both found');
-- 5
SELECT is(pg_temp.daily_diff(), 0::bigint, 'after a full refresh v_daily equals the plain-SQL computation over crm_demo.*');
-- 6-10: owner_dashboard for several periods
SELECT is(pg_temp.dash_diff('2025-10-01', '2025-12-31'), '{}'::text[], 'Q4 2025: daily sums equal owner_dashboard');
SELECT is(pg_temp.dash_diff('2025-12-01', '2025-12-31'), '{}'::text[], 'December 2025: daily sums equal owner_dashboard');
SELECT is(pg_temp.dash_diff('2025-12-15', '2025-12-15'), '{}'::text[], 'a single day: daily sums equal owner_dashboard');
SELECT is(pg_temp.dash_diff('2024-03-01', '2024-05-31'), '{}'::text[], 'spring 2024: daily sums equal owner_dashboard');
SELECT is(pg_temp.dash_diff('2025-01-01', '2025-12-31'), '{}'::text[], 'year 2025: daily sums equal owner_dashboard');
-- 11-12: per channel and per manager
SELECT results_eq(
    $$SELECT channel, leads::numeric, new_buyers::numeric, revenue, gross_profit, spend FROM crm.dashboard_channels('2025-10-01', '2025-12-31') ORDER BY 1$$,
    $$SELECT key, sum(value) FILTER (WHERE metric = 'leads_in'), coalesce(sum(value) FILTER (WHERE metric = 'new_buyers'), 0),
             coalesce(sum(value) FILTER (WHERE metric = 'revenue'), 0), coalesce(sum(value) FILTER (WHERE metric = 'gross_profit'), 0),
             coalesce(sum(value) FILTER (WHERE metric = 'marketing_spend'), 0)
        FROM crm.daily_metrics('2025-10-01', '2025-12-31') WHERE dimension = 'channel'
         AND metric IN ('leads_in', 'new_buyers', 'revenue', 'gross_profit', 'marketing_spend') GROUP BY 1 ORDER BY 1$$,
    'Q4 2025 per channel: leads, new buyers, revenue, gross profit, spend equal dashboard_channels');
SELECT results_eq(
    $$SELECT manager_id, leads::numeric, deals_won::numeric, deals_lost::numeric, revenue FROM crm.dashboard_managers('2025-10-01', '2025-12-31') ORDER BY 1$$,
    $$SELECT key, coalesce(sum(value) FILTER (WHERE metric = 'leads_in'), 0), coalesce(sum(value) FILTER (WHERE metric = 'deals_won'), 0),
             coalesce(sum(value) FILTER (WHERE metric = 'deals_lost'), 0), coalesce(sum(value) FILTER (WHERE metric = 'revenue'), 0)
        FROM crm.daily_metrics('2025-10-01', '2025-12-31') WHERE dimension = 'manager'
         AND metric IN ('leads_in', 'deals_won', 'deals_lost', 'revenue') GROUP BY 1 ORDER BY 1$$,
    'Q4 2025 per manager: leads, deals won and lost, revenue equal dashboard_managers');
-- progress through crm._progress: a full rebuild with notices at every step names each part
SET LOCAL crm_analytics.progress_interval = 0;
SELECT is((SELECT current_setting('application_name') FROM crm.refresh_rollups(true) LIMIT 1), current_setting('application_name'),
          'the refresh leaves application_name alone');
RESET crm_analytics.progress_interval;
-- 13: nothing changed: nothing to do
SELECT is((SELECT count(*) FROM crm.refresh_rollups()), 0::bigint, 'a refresh with no change recomputes nothing');

-- 14: the fast path gives owner_dashboard's rows (value, previous value, change) for every metric it holds
SELECT is(ARRAY(SELECT r.metric || ': ' || coalesce(r.value::text, 'NULL') || '/' || coalesce(r.previous_value::text, 'NULL') || '/' || coalesce(r.change_pct::text, 'NULL')
                       || ' vs ' || coalesce(o.value::text, 'NULL') || '/' || coalesce(o.previous_value::text, 'NULL') || '/' || coalesce(o.change_pct::text, 'NULL')
                  FROM crm.owner_dashboard_rollup('2025-10-01', '2025-12-31') r
                  LEFT JOIN crm.owner_dashboard('2025-10-01', '2025-12-31') o USING (metric)
                 WHERE (r.value, r.previous_value, r.change_pct, r.unit, r.section) IS DISTINCT FROM (o.value, o.previous_value, o.change_pct, o.unit, o.section)),
          '{}'::text[], 'owner_dashboard_rollup equals owner_dashboard on Q4 2025 (and Q3 as the previous period)');
SELECT is((SELECT count(*) FROM crm.owner_dashboard_rollup('2025-12-15', '2025-12-15') r
             JOIN crm.owner_dashboard('2025-12-15', '2025-12-15') o USING (metric)
            WHERE (r.value, r.previous_value, r.change_pct) IS NOT DISTINCT FROM (o.value, o.previous_value, o.change_pct)), 19::bigint,
          'owner_dashboard_rollup equals owner_dashboard on a single day, all 19 rows');

-- ---------------------------------------------------------------- targeted changes
-- 14-16: an order deleted (a customer's first one: new_buyers moves to the second order's day)
CREATE TEMP TABLE t_first AS
SELECT o.order_id, o.customer_id, o.ordered_at FROM crm_demo.orders o
 WHERE o.ordered_at >= '2025-06-01'
   AND (SELECT count(*) FROM crm_demo.orders o2 WHERE o2.customer_id = o.customer_id) >= 2
   AND o.ordered_at = (SELECT min(ordered_at) FROM crm_demo.orders o2 WHERE o2.customer_id = o.customer_id)
 ORDER BY o.order_id LIMIT 1;
DELETE FROM crm_demo.orders WHERE order_id = (SELECT order_id FROM t_first);
CREATE TEMP TABLE t_r AS SELECT * FROM crm.refresh_rollups();
SELECT is(ARRAY(SELECT part FROM t_r), ARRAY['orders'], 'an order deleted: only the orders part is recomputed');
SELECT is((SELECT from_day FROM t_r), (SELECT ordered_at::date FROM t_first), 'the bound is the deleted order''s day');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'an order deleted: v_daily equals the plain computation');
-- 17-18: a deal moved back: the won event of a deal won in December 2025 removed
CREATE TEMP TABLE t_won AS
SELECT e.deal_id, e.changed_at FROM crm_demo.deal_events e WHERE e.stage = 'paid' AND e.changed_at >= '2025-12-01' ORDER BY e.deal_id LIMIT 1;
SELECT is((SELECT value FROM crm.daily_metrics('2025-12-01', '2025-12-31') WHERE metric = 'deals_won' AND dimension = 'all')
          - (SELECT count(*) FROM crm_demo.deal_events e WHERE e.stage = 'paid' AND e.changed_at >= '2025-12-01' AND e.changed_at < '2026-01-01'),
          0::numeric, 'December''s deals_won counts the paid events of December');
DELETE FROM crm_demo.deal_events e USING t_won t WHERE e.deal_id = t.deal_id AND e.changed_at = t.changed_at;
SELECT is(ARRAY(SELECT part FROM crm.refresh_rollups()), ARRAY['deals'], 'a deal moved back: only the deals part is recomputed');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'a deal moved back: v_daily equals the plain computation');
-- 19-21: an invoice paid later
CREATE TEMP TABLE t_inv AS SELECT invoice_id, issued_at FROM crm_demo.invoices WHERE paid_at IS NULL ORDER BY invoice_id LIMIT 1;
SELECT ok((SELECT count(*) FROM t_inv) = 1, 'the demo has an unpaid invoice');
UPDATE crm_demo.invoices SET paid_at = '2025-12-30 10:00' WHERE invoice_id = (SELECT invoice_id FROM t_inv);
SELECT is(ARRAY(SELECT part || ' ' || from_day FROM crm.refresh_rollups()), ARRAY['invoices ' || (SELECT issued_at::date FROM t_inv)],
          'an invoice paid later: the invoices part from its issue day');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'an invoice paid later: v_daily equals the plain computation');
-- 22-24: a customer's channel changed (a dimension of orders and invoices)
UPDATE crm_demo.customers SET channel = 'partner' WHERE customer_id = (SELECT min(customer_id) FROM crm_demo.customers WHERE channel <> 'partner' AND created_at >= '2025-01-01');
SELECT is(ARRAY(SELECT part FROM crm.refresh_rollups() ORDER BY 1), ARRAY['orders'], 'a customer changed: the orders part is recomputed');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'a customer''s channel changed: v_daily equals the plain computation');
SELECT is(pg_temp.dash_diff('2025-10-01', '2025-12-31'), '{}'::text[], 'after the targeted changes: Q4 2025 equals owner_dashboard');

-- ---------------------------------------------------------------- random DML rounds
CREATE FUNCTION pg_temp.random_round(r int) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    -- orders: new ones (some before a customer's first order), changed, deleted
    INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
    SELECT (SELECT max(order_id) FROM crm_demo.orders) + g, c.customer_id,
           c.created_at + (random() * 200 - 20) * interval '1 day', 1, 1, round((random() * 500)::numeric, 2), round((random() * 200)::numeric, 2)
      FROM generate_series(1, 15) g
      JOIN LATERAL (SELECT customer_id, created_at FROM crm_demo.customers ORDER BY random() + g * 0 LIMIT 1) c ON true;
    UPDATE crm_demo.orders SET amount = amount + 10, ordered_at = ordered_at + (random() * 10 - 5) * interval '1 day'
     WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY random() LIMIT 10);
    DELETE FROM crm_demo.orders WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY random() LIMIT 8);
    -- leads
    INSERT INTO crm_demo.leads (lead_id, created_at, channel, manager_id, customer_id)
    SELECT (SELECT max(lead_id) FROM crm_demo.leads) + g, timestamptz '2025-01-01' + random() * interval '360 days',
           (ARRAY['ads', 'seo', 'partner', 'referral', 'events'])[1 + floor(random() * 5)::int], 1 + floor(random() * 12)::int, NULL
      FROM generate_series(1, 10) g;
    UPDATE crm_demo.leads SET manager_id = 1 + (manager_id % 12) WHERE lead_id IN (SELECT lead_id FROM crm_demo.leads ORDER BY random() LIMIT 5);
    DELETE FROM crm_demo.leads WHERE lead_id IN (SELECT lead_id FROM crm_demo.leads ORDER BY random() LIMIT 5);
    -- deal events: open deals advanced (won, lost or a stage further), deals moved back (last event removed), deals shifted in time
    INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
    SELECT d.deal_id, d.last_at + random() * interval '20 days', (ARRAY['paid', 'lost', 'proposal', 'invoice'])[1 + floor(random() * 4)::int]
      FROM (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1
             HAVING bool_and(stage NOT IN ('paid', 'lost')) ORDER BY random() LIMIT 12) d;
    DELETE FROM crm_demo.deal_events e USING (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1 ORDER BY random() LIMIT 8) x
     WHERE e.deal_id = x.deal_id AND e.changed_at = x.last_at;
    UPDATE crm_demo.deal_events SET changed_at = changed_at + (r - 2) * interval '3 days'
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals ORDER BY random() LIMIT 5);
    UPDATE crm_demo.deals SET manager_id = 1 + (manager_id % 12), amount = amount + 1
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals ORDER BY random() LIMIT 5);
    -- invoices: paid later, issued, deleted
    UPDATE crm_demo.invoices SET paid_at = issued_at + random() * interval '30 days'
     WHERE invoice_id IN (SELECT invoice_id FROM crm_demo.invoices WHERE paid_at IS NULL ORDER BY random() LIMIT 6);
    INSERT INTO crm_demo.invoices (invoice_id, deal_id, customer_id, issued_at, due_at, amount, paid_at)
    SELECT (SELECT max(invoice_id) FROM crm_demo.invoices) + g, 1, c.customer_id, c.t, c.t + interval '14 days', 100 + g, NULL
      FROM generate_series(1, 5) g
      JOIN LATERAL (SELECT customer_id, created_at + random() * interval '100 days' AS t FROM crm_demo.customers ORDER BY random() + g * 0 LIMIT 1) c ON true;
    DELETE FROM crm_demo.invoices WHERE invoice_id IN (SELECT invoice_id FROM crm_demo.invoices ORDER BY random() LIMIT 3);
    -- spend
    UPDATE crm_demo.spend SET amount = amount + 7 WHERE (channel, month) IN (SELECT channel, month FROM crm_demo.spend ORDER BY random() LIMIT 3);
    INSERT INTO crm_demo.spend VALUES ('events', date '2026-01-01' + r * interval '1 month', 100 * r) ON CONFLICT DO NOTHING;
    -- interactions
    INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
    SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + g, NULL, NULL, 1 + floor(random() * 12)::int, 'call', 'outbound',
           random() < 0.3, timestamptz '2025-06-01' + random() * interval '200 days'
      FROM generate_series(1, 20) g;
    UPDATE crm_demo.interactions SET automated = NOT automated WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions ORDER BY random() LIMIT 5);
    DELETE FROM crm_demo.interactions WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions ORDER BY random() LIMIT 5);
END
$f$;

SELECT setseed(0.21);
-- 25-32: four rounds, each followed by an incremental refresh
SELECT pg_temp.random_round(1);
SELECT is((SELECT count(*) FROM crm.refresh_rollups()), 6::bigint, 'round 1: every part is recomputed (every source table changed)');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'round 1: after the incremental refresh v_daily equals the plain computation');
SELECT pg_temp.random_round(2);
SELECT is((SELECT last_mode FROM crm.rollup_status, LATERAL (SELECT count(*) FROM crm.refresh_rollups()) x), 'incremental', 'round 2: the refresh is incremental');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'round 2: v_daily equals the plain computation');
SELECT pg_temp.random_round(3);
SELECT ok((SELECT bool_and(from_day IS NOT NULL) FROM crm.refresh_rollups()), 'round 3: every part recomputed from a day, not from the start');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'round 3: v_daily equals the plain computation');
SELECT pg_temp.random_round(4);
SELECT pg_temp.random_round(5);
SELECT is((SELECT count(*) FROM crm.refresh_rollups()), 6::bigint, 'rounds 4 and 5 in one refresh');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'rounds 4 and 5: v_daily equals the plain computation');
-- 33-34: the incremental result equals a full rebuild, and the dashboard
CREATE TEMP TABLE t_incr AS SELECT * FROM crm.v_daily;
SELECT lives_ok($$SELECT count(*) FROM crm.refresh_rollups(full => true)$$, 'a full rebuild runs');
SELECT is((SELECT count(*) FROM ((TABLE t_incr EXCEPT ALL SELECT * FROM crm.v_daily) UNION ALL (SELECT * FROM crm.v_daily EXCEPT ALL TABLE t_incr)) d),
          0::bigint, 'the incrementally maintained rollups equal a full rebuild');
-- 35
SELECT is(pg_temp.dash_diff('2025-10-01', '2025-12-31'), '{}'::text[], 'after the random rounds: Q4 2025 equals owner_dashboard');

-- ---------------------------------------------------------------- TRUNCATE, capture lost, sources changed
-- 36-37
TRUNCATE crm_demo.spend;
SELECT is((SELECT count(*) FROM crm.refresh_rollups()), 6::bigint, 'after a TRUNCATE the refresh is a full one');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'after a TRUNCATE: v_daily equals the plain computation');
-- 38-39: triggers dropped: the next refresh attaches them again and rebuilds
SELECT ok((SELECT count(*) FROM crm.detach_rollup_capture()) = 8, 'detach removes capture from the eight tables');
INSERT INTO crm_demo.spend VALUES ('ads', '2025-12-01', 1234);
SELECT is((SELECT count(*) FROM crm.refresh_rollups()), 6::bigint, 'without capture the refresh attaches it again and rebuilds in full');
SELECT is(pg_temp.daily_diff(), 0::bigint, 'after capture was lost: v_daily equals the plain computation');

-- ---------------------------------------------------------------- a writing role
-- the trigger runs as the writer: it needs USAGE on schema crm (INSERT on crm.rollup_changes is PUBLIC's)
CREATE ROLE rollup_writer_t;
GRANT USAGE ON SCHEMA crm_demo TO rollup_writer_t;
GRANT INSERT ON crm_demo.spend TO rollup_writer_t;
SELECT throws_ok($$SET LOCAL ROLE rollup_writer_t; INSERT INTO crm_demo.spend VALUES ('ads', '2025-11-01', 1)$$, '42501', NULL,
                 'a writer without USAGE on schema crm cannot write to a captured table (attach warns about it)');
RESET ROLE;
GRANT USAGE ON SCHEMA crm TO rollup_writer_t;
SET LOCAL ROLE rollup_writer_t;
INSERT INTO crm_demo.spend VALUES ('ads', '2025-11-01', 1);
RESET ROLE;
SELECT is(ARRAY(SELECT part || ' ' || from_day FROM crm.refresh_rollups()), ARRAY['spend 2025-10-31'],
          'with USAGE on crm the writer''s change is captured (a date column is read a day early)');

-- ---------------------------------------------------------------- freshness
SELECT ok(crm.rollups_fresh(), 'after a refresh the rollups are fresh');
INSERT INTO crm_demo.spend VALUES ('ads', '2025-09-01', 5);
SELECT ok(NOT crm.rollups_fresh(), 'a recorded change: not fresh');
SELECT is((SELECT count(*) FROM crm.refresh_rollups()), 1::bigint, 'the spend part is refreshed');
SELECT ok(crm.rollups_fresh(), 'refreshed: fresh again');
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT ok(NOT crm.rollups_fresh(), 'another session time zone: not fresh (days are cut in UTC)');
SET LOCAL TimeZone = 'UTC';
SELECT crm.register_source('spend', 'SELECT channel, month, amount FROM crm_demo.spend WHERE amount > 0');
SELECT ok(NOT crm.rollups_fresh(), 'a source registered anew: not fresh until the next (full) refresh');
SELECT is((SELECT count(*) FROM crm.refresh_rollups() WHERE from_day IS NULL), 6::bigint, 'the source changed: a full rebuild');

-- ---------------------------------------------------------------- reading and errors
-- 41-47
SELECT is((SELECT value FROM crm.daily_metrics('2025-12-01', '2025-12-31') WHERE metric = 'marketing_spend' AND dimension = 'all'), 1234::numeric,
          'daily_metrics sums over the period');
SELECT throws_ok($$SELECT * FROM crm.daily_metrics('2025-12-31', '2025-12-01')$$, '22023', NULL, 'inverted period: 22023');
SELECT throws_ok($$SELECT * FROM crm.daily_metrics(NULL, '2025-12-01')$$, '22004', NULL, 'NULL bound: 22004');
SELECT throws_ok($$SELECT * FROM crm.daily_metrics('-infinity', '2025-12-01')$$, '22008', NULL, 'infinite bound: 22008');
SELECT throws_ok($$SELECT * FROM crm.owner_dashboard_rollup('2025-12-31', '2025-12-01')$$, '22023', NULL, 'owner_dashboard_rollup: inverted period: 22023');
SELECT throws_ok($$SELECT * FROM crm.refresh_rollups(NULL)$$, '22004', NULL, 'full => NULL: 22004');
SELECT throws_ok($$SELECT crm._query_relations('spend', 'DELETE FROM crm_demo.spend')$$, '42601', NULL, 'only a SELECT is explained');
SELECT is(crm._query_relations('orders', 'SELECT o.order_id, o.customer_id, o.ordered_at, o.amount, o.cost, c.channel FROM crm_demo.orders o JOIN crm_demo.customers c USING (customer_id)'),
          ARRAY['crm_demo.customers', 'crm_demo.orders']::regclass[], '_query_relations finds the tables of a join');

SELECT * FROM finish();
ROLLBACK;
