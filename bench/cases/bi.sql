-- bi: the daily rollups (issue 21) on the demo CRM with N customers (bash bench/run 100000 bi:
-- 4.15M rows). Floor: one GROUP BY customer_id pass over crm_demo.orders. Targets: a refresh after
-- 1,000 new orders <= 0.25x the floor (insert_1000_orders_refresh minus insert_1000_orders, each
-- batch on a new day),
-- v_daily over a quarter <= 1.0x, each v_* view answered from the rollups <= 1.0x (vs_plain: against
-- the same view's full computation, crm_analytics.rollups = off).
-- @setup
SELECT count(*) FROM crm.load_demo(:N, 42, '2025-12-31');
-- the indexes a refresh reads changes through (docs/rollups.md; leads (created_at) and interactions (occurred_at) the demo has)
CREATE INDEX IF NOT EXISTS orders_ordered_at_idx ON crm_demo.orders (ordered_at);
CREATE INDEX IF NOT EXISTS deal_events_changed_at_idx ON crm_demo.deal_events (changed_at);
ANALYZE crm_demo.orders, crm_demo.deal_events;
SELECT count(*) FROM crm.refresh_rollups();
-- n new orders of random customers, on the day after the last order (each batch a new day: a
-- refresh recomputes whole days from the earliest change; the capture triggers record them)
CREATE OR REPLACE FUNCTION public.bench_new_orders(n int) RETURNS bigint LANGUAGE sql AS $$
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT m.id + g, 1 + floor(random() * m.nc)::bigint, m.day + interval '8 hours' + random() * interval '10 hours', 1, 1,
       round((20 + random() * 300)::numeric, 2), round((10 + random() * 100)::numeric, 2)
  FROM (SELECT (SELECT max(order_id) FROM crm_demo.orders) AS id, (SELECT count(*) FROM crm_demo.customers) AS nc,
               (SELECT max(ordered_at) FROM crm_demo.orders)::date + 1 AS day) m,
       generate_series(1, n) g;
SELECT count(*) FROM crm.rollup_changes;
$$;
CREATE OR REPLACE FUNCTION public.bench_new_orders_refresh(n int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.bench_new_orders(n);
    RETURN (SELECT count(*) FROM crm.refresh_rollups());
END
$$;
-- n new orders on the last day of the dashboard period (December 2025 in the demo): a refresh then
-- also rebuilds the customer classes kept for the period's end (docs/rollups.md, section 5.4)
CREATE OR REPLACE FUNCTION public.bench_period_orders(n int, refresh boolean) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
    SELECT m.id + g, 1 + floor(random() * m.nc)::bigint, timestamptz '2025-12-31 08:00' + random() * interval '10 hours', 1, 1,
           round((20 + random() * 300)::numeric, 2), round((10 + random() * 100)::numeric, 2)
      FROM (SELECT (SELECT max(order_id) FROM crm_demo.orders) AS id, (SELECT count(*) FROM crm_demo.customers) AS nc) m,
           generate_series(1, n) g;
    IF refresh THEN
        RETURN (SELECT count(*) FROM crm.refresh_rollups());
    END IF;
    RETURN 0;
END
$$;
-- the to-do list's first read after the rollups changed: nothing kept, so it is computed and kept
-- (docs/rollups.md 5.7); the query v_todo reads it kept
CREATE OR REPLACE FUNCTION public.bench_todo_first() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM crm.rollup_todo_kept_key;
    RETURN (SELECT count(*) FROM crm.v_todo);
END
$$;
-- (the visibility map set, as autovacuum leaves it: the owner dashboard reads leads and invoices index-only)
VACUUM ANALYZE crm.rollup_daily, crm.rollup_customers, crm.rollup_deals, crm.rollup_leads, crm.rollup_invoices;
-- @floor groupby_orders
SELECT sum(c), sum(s) FROM (SELECT customer_id, count(*) AS c, sum(amount) AS s FROM crm_demo.orders GROUP BY 1) x;
-- @query refresh_full
SELECT count(*) FROM crm.refresh_rollups(full => true);
-- @query refresh_no_change
SELECT count(*) FROM crm.refresh_rollups();
-- @query insert_1000_orders
SELECT public.bench_new_orders(1000);
-- @query insert_1000_orders_refresh
SELECT public.bench_new_orders_refresh(1000);
-- @query insert_1000_orders_in_period
SELECT public.bench_period_orders(1000, false);
-- @query insert_1000_orders_in_period_refresh
SELECT public.bench_period_orders(1000, true);
-- @query v_daily_q4
SELECT count(*), sum(value) FROM crm.v_daily WHERE day BETWEEN '2025-10-01' AND '2025-12-31';
-- @query v_daily_q4_by_metric
SELECT sum(v) FROM (SELECT metric, sum(value) AS v FROM crm.v_daily WHERE day BETWEEN '2025-10-01' AND '2025-12-31' AND dimension = 'all' GROUP BY 1) x;
-- @query daily_metrics_q4
SELECT count(*), sum(value) FROM crm.daily_metrics('2025-10-01', '2025-12-31');
-- @query daily_metrics_2025
SELECT count(*), sum(value) FROM crm.daily_metrics('2025-01-01', '2025-12-31');
-- @query owner_dashboard_rollup_q4
SELECT count(*) FROM crm.owner_dashboard_rollup('2025-10-01', '2025-12-31');
-- the views: the full computation first (the plain way, crm_analytics.rollups = off), then the
-- same views answered from the rollups (the default setting, fresh: the last query above refreshed)
-- @set crm_analytics.rollups = off
-- @plain v_owner_dashboard
SELECT count(*) FROM crm.v_owner_dashboard;
-- @plain v_managers
SELECT count(*) FROM crm.v_managers;
-- @plain v_pipeline
SELECT count(*) FROM crm.v_pipeline;
-- @plain v_funnel
SELECT count(*) FROM crm.v_funnel;
-- @plain v_coverage
SELECT count(*) FROM crm.v_coverage;
-- @plain v_channels
SELECT count(*) FROM crm.v_channels;
-- @plain v_losses
SELECT count(*) FROM crm.v_losses;
-- @plain v_followups
SELECT count(*) FROM crm.v_followups;
-- @plain v_plan_fact
SELECT count(*) FROM crm.v_plan_fact;
-- @plain v_todo
SELECT count(*) FROM crm.v_todo;
-- @plain v_rfm
SELECT count(*) FROM crm.v_rfm;
-- @set crm_analytics.rollups = fresh
-- @query v_owner_dashboard
SELECT count(*) FROM crm.v_owner_dashboard;
-- @query v_managers
SELECT count(*) FROM crm.v_managers;
-- @query v_pipeline
SELECT count(*) FROM crm.v_pipeline;
-- @query v_funnel
SELECT count(*) FROM crm.v_funnel;
-- @query v_coverage
SELECT count(*) FROM crm.v_coverage;
-- @query v_channels
SELECT count(*) FROM crm.v_channels;
-- @query v_losses
SELECT count(*) FROM crm.v_losses;
-- @query v_followups
SELECT count(*) FROM crm.v_followups;
-- @query v_plan_fact
SELECT count(*) FROM crm.v_plan_fact;
-- @query v_todo
SELECT count(*) FROM crm.v_todo;
-- @query v_todo_first_read
SELECT public.bench_todo_first();
-- @query v_rfm
SELECT count(*) FROM crm.v_rfm;
-- @query owner_dashboard_q4
SELECT count(*) FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
-- @query dashboard_managers_q4
SELECT count(*) FROM crm.dashboard_managers('2025-10-01', '2025-12-31');
-- for the record: views that read the sources directly (already below the floor)
-- @query v_lead_sla
SELECT count(*) FROM crm.v_lead_sla;
-- @query v_retention
SELECT count(*) FROM crm.v_retention;
-- @query v_abc_xyz
SELECT count(*) FROM crm.v_abc_xyz;
