-- pgTAP (hardening, issue 16 item 3): nothing of the extension resolves an
-- object through the caller's search_path.
--
-- A role with CREATE on a schema in the caller's path plants (in schema
-- sp_hostile; the calls below run with search_path "$user", public, sp_hostile:
-- pgTAP itself lives in public and is not hardened, so the hostile objects
-- get a schema of their own, which is in the path only while the extension
-- runs; where in the path it sits does not matter to an exact-type match)
--   * an operator public.<op>(l, r) for every binary operator name the
--     extension uses and every pair of common types for which pg_catalog has
--     no operator of exactly those types (pg_catalog's own would need an
--     implicit cast, so the planted exact match would win), and a prefix
--     public.-(t) likewise;
--   * a function public.<name>(...) for every pg_catalog function name the
--     extension's function bodies and views call, for every argument-type
--     combination (common types, implicit casts, polymorphic and "any"
--     arguments made concrete) that pg_catalog does not define exactly.
-- Every planted object raises SQLSTATE HJ001 and bumps a sequence (which a
-- subtransaction rollback cannot undo).  Then every function of the extension
-- (found from the catalog: a function without a sample call below fails the
-- test), every view and every trigger runs; none may touch a planted object.
-- Types cannot be planted over pg_catalog's (pg_catalog is searched first for
-- types) and casts need a superuser: neither is covered here.
BEGIN;
SELECT plan(9);
SET LOCAL client_min_messages = warning;
SET LOCAL search_path = "$user", public;
SET LOCAL TimeZone = 'UTC';

CREATE TEMP TABLE sp_ext_funcs AS
SELECT p.oid, p.oid::regprocedure AS fn, p.prokind, p.prorettype, p.proargtypes
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'crm_analytics');

CREATE TEMP TABLE sp_ext_views AS
SELECT c.oid::regclass AS v
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'crm_analytics') AND c.relkind IN ('v', 'm');

-- ---------------------------------------------------------------- sample calls
-- Run in order (seq), after the hostile objects are planted.  Fixtures used:
-- the demo data (crm.load_demo), sp_* tables created here.
CREATE TEMP TABLE sp_calls (seq serial, fn_name text, call text NOT NULL);
CREATE TABLE public.sp_deals (deal_id bigint PRIMARY KEY, stage text NOT NULL);
CREATE TABLE public.sp_deal_events (deal_id bigint, stage text, changed_at timestamptz);
INSERT INTO public.sp_deals SELECT deal_id, 'lead' FROM crm_demo.deals ORDER BY deal_id LIMIT 50;
INSERT INTO sp_calls (fn_name, call) VALUES
('crm.version()', $$SELECT crm.version()$$),
('crm._check_inner_query(text,text,text[])', $$SELECT crm._check_inner_query('t', 'SELECT 1::int, now()', ARRAY['a integer', 'b timestamptz'])$$),
('crm.abc_class(float8,float8,float8)', $$SELECT crm.abc_class(amount::float8) OVER () FROM crm_demo.orders LIMIT 5$$),
('crm.quantile_score(float8,int)', $$SELECT crm.quantile_score(amount::float8, 5) OVER () FROM crm_demo.orders LIMIT 5$$),
('crm.rfm_segment_default(int,int)', $$SELECT crm.rfm_segment_default(3, 4)$$),
('crm.rfm_segment(int,int)', $$SELECT crm.rfm_segment(3, 4)$$),
('crm.xyz_class(float8,float8,float8)', $$SELECT crm.xyz_class(0.2)$$),
('crm.rfm_report(text,timestamptz)', $$SELECT count(*) FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', '2025-12-31')$$),
('crm.rfm_report(text,timestamptz)', $$SELECT count(*) FROM crm.rfm_report('SELECT customer_id::int, ordered_at, amount::float8 FROM crm_demo.orders')$$),
('crm.abc_xyz_report(text,timestamptz,timestamptz,text,float8,float8,float8,float8)',
 $$SELECT count(*) FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2025-01-01', '2026-01-01')$$),
('crm.abc_xyz_report(text,timestamptz,timestamptz,text,float8,float8,float8,float8)',
 $$SELECT count(*) FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2025-01-01', '2026-01-01', 'week', 0.7, 0.9, 0.2, 0.4)$$),
('crm.bgnbd_expected_purchases(crm.bgnbd_model,float8,float8,float8,float8)',
 $$SELECT crm.bgnbd_expected_purchases(m, 10, 2, 30, 40) FROM (SELECT crm.bgnbd_fit(f, r, 39) AS m FROM (SELECT ((i * 7) % 9 / 2)::float8 AS f, CASE WHEN (i * 7) % 9 / 2 = 0 THEN 0 ELSE (5 + i % 30)::float8 END AS r FROM generate_series(1, 500) i) s) x$$),
('crm.bgnbd_p_alive(crm.bgnbd_model,float8,float8,float8)',
 $$SELECT crm.bgnbd_p_alive(m, 2, 30, 40) FROM (SELECT crm.bgnbd_fit(f, r, 39) AS m FROM (SELECT ((i * 7) % 9 / 2)::float8 AS f, CASE WHEN (i * 7) % 9 / 2 = 0 THEN 0 ELSE (5 + i % 30)::float8 END AS r FROM generate_series(1, 500) i) s) x$$),
('crm.gamma_gamma_expected_value(crm.gamma_gamma_model,float8,float8)',
 $$SELECT crm.gamma_gamma_expected_value(m, 2, 30) FROM (SELECT crm.gamma_gamma_fit((1 + i % 5)::float8, (10 + (i * 37 % 100))::float8 + (i % 5)::float8 * 3.5::float8) AS m FROM generate_series(1, 500) i) x$$),
('crm.clv(crm.bgnbd_model,crm.gamma_gamma_model,float8,float8,float8,float8,interval,int,float8)',
 $$SELECT crm.clv(b, g, 2, 30, 40, 20, '7 days', 12, 0.01)
     FROM (SELECT crm.bgnbd_fit(f, r, 39) AS b FROM (SELECT ((i * 7) % 9 / 2)::float8 AS f, CASE WHEN (i * 7) % 9 / 2 = 0 THEN 0 ELSE (5 + i % 30)::float8 END AS r FROM generate_series(1, 500) i) s) x,
          (SELECT crm.gamma_gamma_fit((1 + i % 5)::float8, (10 + (i * 37 % 100))::float8 + (i % 5)::float8 * 3.5::float8) AS g FROM generate_series(1, 500) i) y$$),
('crm.hyp2f1(float8,float8,float8,float8)', $$SELECT crm.hyp2f1(1, 1, 2, 0.5)$$),
('crm.clv_simulate(float8,float8,float8,float8,float8,float8,float8,bigint,float8,bigint)',
 $$SELECT count(*) FROM crm.clv_simulate(0.25, 4.0, 0.8, 2.5, 6.0, 4.0, 15.0, 100, 52, 7)$$),
('crm.historical_ltv(text,text,numeric)', $$SELECT * FROM crm.historical_ltv('SELECT customer_id, ordered_at, amount, cost FROM crm_demo.orders', 'SELECT month, amount FROM crm_demo.spend')$$),
('crm.historical_ltv(text,text,numeric)', $$SELECT * FROM crm.historical_ltv('SELECT customer_id::int, ordered_at, amount::float8 FROM crm_demo.orders', NULL, 0.4)$$),
-- coverage: attach (runs the rebuild), the policy triggers, the class and cycle queries
('crm.attach_coverage(regclass,regclass,name,name,name,name,text[],name,text[],name,name,name,text,name)',
 $$SELECT crm.attach_coverage('crm_demo.interactions', customers => 'crm_demo.customers')$$),
('crm.coverage_rebuild()', $$SELECT crm.coverage_rebuild()$$),
('crm.coverage_set_classes(text)', $$SELECT crm.coverage_set_classes('SELECT customer_id::int, CASE WHEN customer_id % 3::bigint = 0 THEN ''A'' ELSE ''B'' END FROM crm_demo.customers')$$),
('crm.coverage_set_purchase_cycles(text)', $$SELECT crm.coverage_set_purchase_cycles('SELECT customer_id::int, ordered_at FROM crm_demo.orders')$$),
('crm.coverage_rebuild()', $$SELECT crm.coverage_rebuild()$$),
('crm._coverage_check_classes(text)', $$SELECT crm._coverage_check_classes('SELECT ''A''::text')$$),
('crm._coverage_apply_classes(text)', $$SELECT crm._coverage_apply_classes('SELECT 1::int, ''A''::text')$$),
('crm._coverage_apply_purchases(text)', $$SELECT crm._coverage_apply_purchases('SELECT customer_id::int, ordered_at FROM crm_demo.orders')$$),
('crm._coverage_apply_policy()', $$SELECT crm._coverage_apply_policy()$$),
('crm._coverage_interval(text,interval,interval,interval)', $$SELECT crm._coverage_interval('purchase_cycle', '3 hours', '14 days', '1 month')$$),
('crm._coverage_column_type(regclass,name,text)', $$SELECT crm._coverage_column_type('crm_demo.interactions', 'customer_id', 'customer')$$),
('crm._coverage_require_type(regclass,name,text,regtype[],text)',
 $$SELECT crm._coverage_require_type('crm_demo.interactions', 'customer_id', 'customer', ARRAY['int8', 'int4']::regtype[], 'an integer')$$),
('crm._coverage_counted_filter(crm.coverage_config,text)', $$SELECT crm._coverage_counted_filter(c, 'i') FROM crm.coverage_config c$$),
('crm._coverage_recompute_sql(crm.coverage_config)', $$SELECT crm._coverage_recompute_sql(c) FROM crm.coverage_config c$$),
('crm.coverage_as_of()', $$SELECT crm.coverage_as_of()$$),
('crm.working_time(timestamptz,timestamptz,time,time,int[])', $$SELECT crm.working_time('2025-03-03 08:00', '2025-03-10 12:30')$$),
('crm.lead_first_response(text,text)',
 $$SELECT count(*) FROM crm.lead_first_response('SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads',
                                                'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions')$$),
('crm.lead_sla(text,text,interval,text,boolean,time,time,int[])',
 $$SELECT count(*) FROM crm.lead_sla('SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads',
                                     'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions',
                                     '30 minutes', 'SELECT channel, month, amount FROM crm_demo.spend')$$),
('crm.lead_sla(text,text,interval,text,boolean,time,time,int[])',
 $$SELECT count(*) FROM crm.lead_sla('SELECT lead_id::int, created_at, channel::varchar, manager_id FROM crm_demo.leads WHERE lead_id < 500',
                                     'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id < 500',
                                     working_hours => true)$$),
('crm._demo_random(int,int,bigint)', $$SELECT crm._demo_random(1, 2, 3)$$),
('crm.cohort_activity_periods(crm.cohort_activity_state)',
 $$SELECT count(*) FROM (SELECT crm.cohort_activity(ordered_at, amount, 'month') AS s FROM crm_demo.orders GROUP BY customer_id LIMIT 20) x, crm.cohort_activity_periods(x.s)$$),
('crm.cohort_retention(text,text,int)', $$SELECT count(*) FROM crm.cohort_retention('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', 'month', 12)$$),
('crm.cohort_retention(text,text,int,timestamptz)', $$SELECT count(*) FROM crm.cohort_retention('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', 'week', 8, '2025-12-31')$$),
('crm.retention_metrics(text,text)', $$SELECT count(*) FROM crm.retention_metrics('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', 'month')$$),
('crm.retention_metrics(text,text,timestamptz)', $$SELECT count(*) FROM crm.retention_metrics('SELECT customer_id, ordered_at, amount FROM crm_demo.orders', 'month', '2025-12-31')$$),
('crm._funnel_step_flags(text,text[])', $$SELECT crm._funnel_step_flags('b', ARRAY['a', 'b'])$$),
('crm.funnel_report(text,text[],interval,text)',
 $$SELECT count(*) FROM crm.funnel_report('SELECT deal_id, changed_at, stage FROM crm_demo.deal_events', ARRAY['lead', 'qualified', 'proposal', 'paid'])$$),
('crm.funnel_report(text,text[],interval,text)',
 $$SELECT count(*) FROM crm.funnel_report('SELECT e.deal_id::int, e.changed_at, e.stage::varchar, d.amount::float8 FROM crm_demo.deal_events e JOIN crm_demo.deals d USING (deal_id)',
                                          ARRAY['lead', 'qualified', 'proposal'], '60 days', 'strict_order')$$),
-- auto-status: attach, the rule triggers, the entity and event triggers, the sweep
('crm.attach_auto_status(regclass,name,name,text[],regclass,name,name,name,boolean,int,boolean)',
 $$SELECT crm.attach_auto_status('public.sp_deals', 'deal_id', 'stage', ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid', 'lost'],
                                 'public.sp_deal_events', 'deal_id', 'stage', 'changed_at')$$),
('crm._status_column(regclass,name,text)', $$SELECT (crm._status_column('public.sp_deals', 'stage', 'status')).attname$$),
('crm._status_check_table(regclass,text)', $$SELECT crm._status_check_table('public.sp_deals', 'entity')$$),
('crm.status_transition_allowed(regclass,text,text)', $$SELECT crm.status_transition_allowed('public.sp_deals', 'lead', 'qualified')$$),
('crm.apply_time_rules(timestamptz)', $$SELECT crm.apply_time_rules('2026-06-30')$$),
('crm.status_conversion(regclass)', $$SELECT count(*) FROM crm.status_conversion('public.sp_deals')$$),
-- the dashboard
('crm.source_columns(text)', $$SELECT crm.source_columns('leads')$$),
('crm._source_columns_text(text)', $$SELECT crm._source_columns_text('leads')$$),
('crm.register_source(text,text)', $$SELECT crm.register_source('spend', 'SELECT channel, month, amount FROM crm_demo.spend')$$),
('crm._source_sql(text,text)', $$SELECT crm._source_sql('orders')$$),
('crm.dashboard_period()', $$SELECT * FROM crm.dashboard_period()$$),
-- the period per session / role (each call sets the settings and clears them again)
('crm._period_setting_date(text)',
 $$DO $d$ BEGIN PERFORM pg_catalog.set_config('crm.period_from', '2025-11-01', true); PERFORM crm._period_setting_date('crm.period_from');
                PERFORM pg_catalog.set_config('crm.period_from', '', true); END $d$ $$),
('crm._dashboard_period()',
 $$DO $d$ BEGIN PERFORM pg_catalog.set_config('crm.period', 'last_quarter', true); PERFORM * FROM crm._dashboard_period();
                PERFORM pg_catalog.set_config('crm.period', '', true); END $d$ $$),
('crm.dashboard_period_source()',
 $$DO $d$ BEGIN PERFORM pg_catalog.set_config('crm.period_from', '2025-11-01', true); PERFORM pg_catalog.set_config('crm.period_to', '2025-11-30', true);
                PERFORM crm.dashboard_period_source();
                PERFORM pg_catalog.set_config('crm.period_from', '', true); PERFORM pg_catalog.set_config('crm.period_to', '', true); END $d$ $$),
('crm.id_number(text)', $$SELECT crm.id_number('42'), crm.id_number('M-7')$$),
('crm._progress(text,bigint,bigint)', $$SELECT crm._progress('security_search_path: sample', 1, 2)$$),
('crm._lead_sla()', $$SELECT crm._lead_sla()$$),
('crm._period_bounds(text,date,date)', $$SELECT * FROM crm._period_bounds('f', '2025-11-01', '2025-11-30')$$),
('crm._require_stages(text)', $$SELECT crm._require_stages('f')$$),
('crm._check_stages(numeric)', $$SELECT crm._check_stages(0)$$),
('crm._stage_case(text,text)', $$SELECT crm._stage_case('order', 'stage')$$),
('crm._stage_orders(text)', $$SELECT crm._stage_orders('won')$$),
('crm._stage_norm_case(text)', $$SELECT crm._stage_norm_case('open_cur')$$),
('crm._owner_dashboard_sql()', $$SELECT length(crm._owner_dashboard_sql())$$),
('crm.owner_dashboard(date,date)', $$SELECT count(*) FROM crm.owner_dashboard('2025-11-01', '2025-11-30')$$),
('crm._dashboard_coverage_interval(text)', $$SELECT crm._dashboard_coverage_interval('B')$$),
('crm.dashboard_coverage(timestamptz)', $$SELECT count(*) FROM crm.dashboard_coverage('2025-12-01')$$),
('crm.dashboard_channels(date,date)', $$SELECT count(*) FROM crm.dashboard_channels('2025-11-01', '2025-11-30')$$),
('crm.dashboard_managers(date,date)', $$SELECT count(*) FROM crm.dashboard_managers('2025-11-01', '2025-11-30')$$),
('crm.dashboard_pipeline(date,date)', $$SELECT count(*) FROM crm.dashboard_pipeline('2025-11-01', '2025-11-30')$$),
('crm.dashboard_funnel(date,date)', $$SELECT count(*) FROM crm.dashboard_funnel('2025-11-01', '2025-11-30')$$),
('crm.dashboard_retention(date)', $$SELECT count(*) FROM crm.dashboard_retention('2025-11-30')$$),
('crm.dashboard_rfm(date)', $$SELECT count(*) FROM crm.dashboard_rfm('2025-11-30')$$),
('crm.dashboard_abc_xyz(date)', $$SELECT count(*) FROM crm.dashboard_abc_xyz('2025-11-30')$$),
-- issue 20: the to-do list and its notifications (the crm_status trigger fires in section 6)
('crm._reactivation_after()', $$SELECT crm._reactivation_after()$$),
('crm.todo(timestamptz)', $$SELECT count(*) FROM crm.todo('2026-01-01')$$),
('crm.notify_todo(timestamptz)', $$SELECT crm.notify_todo('2026-01-01')$$),
('crm.dashboard_lead_sla(date,date,interval)', $$SELECT count(*) FROM crm.dashboard_lead_sla('2025-11-01', '2025-11-30', '2 hours')$$),
('crm._closed_deals_sql(boolean)', $$SELECT length(crm._closed_deals_sql(true))$$),
('crm.dashboard_closed_deals(date,date)', $$SELECT count(*) FROM crm.dashboard_closed_deals('2025-11-01', '2025-11-30')$$),
('crm.dashboard_losses(date,date)', $$SELECT count(*) FROM crm.dashboard_losses('2025-11-01', '2025-11-30')$$),
('crm.dashboard_followups(date,date)', $$SELECT count(*) FROM crm.dashboard_followups('2025-11-01', '2025-11-30')$$),
('crm._html(text)', $$SELECT crm._html('<a & "b">')$$),
('crm._fmt(numeric)', $$SELECT crm._fmt(1234567.891)$$),
('crm.dashboard_html(date,date)', $$SELECT length(crm.dashboard_html('2025-11-01', '2025-11-30'))$$),
('crm._dashboard_html(date,date,jsonb,jsonb,jsonb,jsonb,text)', $$SELECT length(crm._dashboard_html('2025-11-01', '2025-11-30', '[]', NULL, NULL, NULL, NULL))$$),
('crm._lead_cost_sql(text,text,text,text)', $$SELECT length(crm._lead_cost_sql('(SELECT 1) AS l', '(SELECT 1) AS s', 'now()', NULL))$$),
('crm._dashboard_html_sales(jsonb,jsonb,jsonb,jsonb,timestamptz)', $$SELECT length(crm._dashboard_html_sales((SELECT jsonb_agg(to_jsonb(l)) FROM crm.dashboard_losses('2025-11-01', '2025-11-30') l), NULL, NULL, (SELECT jsonb_agg(to_jsonb(t)) FROM crm.todo('2025-12-01') t), '2025-12-01'))$$),
-- rollups (issue 21): capture, a full and an incremental refresh, every part, reading
('crm._rollup_parts()', $$SELECT count(*) FROM crm._rollup_parts()$$),
('crm._query_relations(text,text)', $$SELECT crm._query_relations('orders', 'SELECT o.order_id, o.customer_id, o.ordered_at, o.amount, o.cost, c.channel FROM crm_demo.orders o JOIN crm_demo.customers c ON c.customer_id = o.customer_id')$$),
('crm._rollup_create_triggers(regclass)', $$SELECT crm._rollup_create_triggers('public.sp_deal_events')$$),
('crm._rollup_drop_triggers(regclass)', $$SELECT crm._rollup_drop_triggers('public.sp_deal_events')$$),
('crm.attach_rollup_capture()', $$SELECT count(*) FROM crm.attach_rollup_capture()$$),
('crm._rollup_capture_ok()', $$SELECT crm._rollup_capture_ok()$$),
('crm._rollup_config_hash()', $$SELECT crm._rollup_config_hash()$$),
('crm.refresh_rollups(boolean)', $$SELECT count(*) FROM crm.refresh_rollups(true)$$),
('crm._rollup_capture()', $$UPDATE crm_demo.orders SET amount = amount OPERATOR(pg_catalog.+) 1 WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY order_id DESC LIMIT 3)$$),
('crm._rollup_begin(boolean)', $$SELECT count(*) FROM crm._rollup_begin(false)$$),
('crm._rollup_take_changes(boolean)', $$SELECT count(*) FROM crm._rollup_take_changes(false)$$),
('crm._rollup_gsets(text,text[])', $$SELECT crm._rollup_gsets('x', 'channel', 'manager')$$),
('crm._rollup_leads(timestamptz)', $$SELECT crm._rollup_leads('2030-01-01'::timestamptz)$$),
('crm._rollup_orders(timestamptz)', $$SELECT crm._rollup_orders('2030-01-01'::timestamptz)$$),
('crm._rollup_deals(timestamptz)', $$SELECT crm._rollup_deals('2030-01-01'::timestamptz)$$),
('crm._rollup_spend(timestamptz)', $$SELECT crm._rollup_spend('2030-01-01'::timestamptz)$$),
('crm._rollup_invoices(timestamptz)', $$SELECT crm._rollup_invoices('2030-01-01'::timestamptz)$$),
('crm._rollup_contacts(timestamptz)', $$SELECT crm._rollup_contacts('2030-01-01'::timestamptz)$$),
('crm.daily_metrics(date,date)', $$SELECT count(*) FROM crm.daily_metrics('2025-11-01', '2025-11-30')$$),
('crm.rollups_fresh()', $$SELECT crm.rollups_fresh()$$),
('crm._rollups_usable()', $$SELECT crm._rollups_usable()$$),
('crm._rollups_built()', $$SELECT crm._rollups_built()$$),
('crm._fast_owner_dashboard(date,date)', $$SELECT count(*) FROM crm._fast_owner_dashboard('2025-11-01', '2025-11-30')$$),
('crm._fast_managers(date,date)', $$SELECT count(*) FROM crm._fast_managers('2025-11-01', '2025-11-30')$$),
-- the deal reports from the rollups' deal states (src/dashboard_fast_deals.sql)
('crm._rollup_deal_states(timestamptz)', $$SELECT crm._rollup_deal_states('2030-01-01'::timestamptz)$$),
('crm._deal_states_sql(text,text)', $$SELECT length(crm._deal_states_sql('now()', 'now()'))$$),
('crm._deal_check_stages(timestamptz)', $$SELECT crm._deal_check_stages('2025-12-01')$$),
('crm._fast_pipeline(timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_pipeline('2025-11-01', '2025-12-01')$$),
('crm._fast_funnel(timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_funnel('2025-11-01', '2025-12-01')$$),
('crm._fast_owner_deals(timestamptz,timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_owner_deals('2025-11-01', '2025-12-01', '2025-10-02')$$),
('crm._fast_managers_deals(timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_managers_deals('2025-11-01', '2025-12-01')$$),
-- the loss reports from the rollups (src/dashboard_fast_losses.sql)
('crm._rollup_deal_contacts(timestamptz)', $$SELECT crm._rollup_deal_contacts('2030-01-01'::timestamptz)$$),
('crm._fast_closed_deals(timestamptz,timestamptz,boolean)', $$SELECT count(*) FROM crm._fast_closed_deals('2025-11-01', '2025-12-01', true)$$),
('crm.owner_dashboard_rollup(date,date)', $$SELECT count(*) FROM crm.owner_dashboard_rollup('2025-11-01', '2025-11-30')$$),
-- fast paths: leads, invoices, contacts (src/dashboard_fast_leads.sql)
('crm._rollup_lead_state(timestamptz)', $$SELECT crm._rollup_lead_state('2025-11-01'::timestamptz)$$),
('crm._rollup_spend_months(timestamptz)', $$SELECT crm._rollup_spend_months('2025-11-01'::timestamptz)$$),
('crm._rollup_invoice_state(timestamptz)', $$SELECT crm._rollup_invoice_state('2025-11-01'::timestamptz)$$),
('crm._rollup_contact_days(timestamptz)', $$SELECT crm._rollup_contact_days('2025-11-01'::timestamptz)$$),
('crm._fast_owner_leads(timestamptz,timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_owner_leads('2025-11-01', '2025-12-01', '2025-10-01')$$),
('crm._fast_managers_leads(timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_managers_leads('2025-11-01', '2025-12-01')$$),
('crm._fast_managers_contacts(timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_managers_contacts('2025-11-01', '2025-12-01')$$),
-- fast paths, customers (docs/rollups.md "Customers")
('crm._rollup_fast_orders(timestamptz)', $$SELECT crm._rollup_fast_orders('2030-01-01'::timestamptz)$$),
('crm._rollup_fast_order_totals(timestamptz,text[],boolean)', $$SELECT crm._rollup_fast_order_totals('2030-01-01'::timestamptz, '{}', false)$$),
('crm._rollup_fast_contacts(timestamptz)', $$SELECT crm._rollup_fast_contacts('2030-01-01'::timestamptz)$$),
('crm._rollup_fast_contact_totals(timestamptz)', $$SELECT crm._rollup_fast_contact_totals('2030-01-01'::timestamptz)$$),
('crm._rollup_fast_classes(timestamptz)', $$SELECT crm._rollup_fast_classes('2030-01-01'::timestamptz)$$),
('crm._fast_classes_live(timestamptz)', $$SELECT count(*) FROM crm._fast_classes_live('2025-12-01')$$),
('crm._fast_coverage(timestamptz)', $$SELECT count(*) FROM crm._fast_coverage('2025-12-01')$$),
('crm._fast_customer_orders(timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_customer_orders('2025-11-01', '2025-12-01')$$),
('crm._fast_channels(date,date)', $$SELECT count(*) FROM crm._fast_channels('2025-11-01', '2025-11-30')$$),
('crm._fast_owner_customers(timestamptz,timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_owner_customers('2025-11-01', '2025-12-01', '2025-10-02')$$),
('crm._fast_managers_customers(timestamptz,timestamptz)', $$SELECT count(*) FROM crm._fast_managers_customers('2025-11-01', '2025-12-01')$$),
-- fast path of crm.todo (docs/rollups.md "To-do list")
('crm._fast_todo(timestamptz)', $$SELECT count(*) FROM crm._fast_todo('2025-12-01')$$),
('crm._fast_todo_sql(timestamptz)', $$SELECT length(crm._fast_todo_sql('2025-12-01'))$$),
('crm._todo_fingerprint()', $$SELECT length(crm._todo_fingerprint())$$),
('crm._todo_horizon(timestamptz)', $$SELECT crm._todo_horizon('2025-12-01') > '2025-11-30'$$),
('crm._todo_kept(timestamptz)', $$SELECT count(*) FROM crm._todo_kept('2025-12-01')$$),
('crm._todo_kept_for(timestamptz)', $$SELECT crm._todo_kept_for('2025-12-01') IS NOT NULL$$),
('crm._todo_may_keep()', $$SELECT crm._todo_may_keep() IS NOT NULL$$),
('crm._todo_keep(timestamptz)', $$SELECT crm._todo_keep('2025-12-01') IS NOT NULL$$),
('crm.keep_todo()', $$SELECT crm.keep_todo() >= 0$$),
('crm._fast_todo(timestamptz)', $$SELECT count(*) FROM crm._fast_todo(now())$$),
-- fast paths, plan against fact and RFM (src/dashboard_fast_planrfm.sql)
('crm._rfm_sql(text)', $$SELECT length(crm._rfm_sql('SELECT 1, now(), 1::bigint, 1::numeric'))$$),
('crm._fast_rfm_sql(integer, boolean)', $$SELECT length(crm._fast_rfm_sql(NULL, NULL)) + length(crm._fast_rfm_sql(1, false)) + length(crm._fast_rfm_sql(2, true))$$),
('crm._rollup_fast_rfm_scores()', $$SELECT crm._rollup_fast_rfm_scores() >= 0$$),
('crm._owner_keep_fingerprint()', $$SELECT length(crm._owner_keep_fingerprint())$$),
('crm._rollup_owner_keep(text[], timestamptz[])', $$SELECT crm._rollup_owner_keep(NULL, NULL) >= 0$$),
('crm._plan_rollup_metrics(text)', $$SELECT pg_catalog.cardinality(crm._plan_rollup_metrics('channel'))$$),
('crm._plan_rollup_ok(date,date,text)', $$SELECT crm._plan_rollup_ok('2025-11-01', '2025-11-30', NULL)$$),
('crm._fast_plan_owner(date,date)', $$SELECT pg_catalog.jsonb_array_length(crm._fast_plan_owner('2025-11-01', '2025-11-30'))$$),
('crm._fast_plan_channels(date,date)', $$SELECT pg_catalog.jsonb_array_length(crm._fast_plan_channels('2025-11-01', '2025-11-30'))$$),
-- the per-customer table (docs/rollups.md "Customers in one table")
('crm._rollup_fast_state(text[])', $$SELECT crm._rollup_fast_state(ARRAY['1', '2', NULL])$$),
('crm._rollup_fast_state_rebuild()', $$SELECT crm._rollup_fast_state_rebuild()$$),
('crm._rollup_fast_state_contacts(text[],timestamptz)', $$SELECT crm._rollup_fast_state_contacts(ARRAY['1', '2'], '2030-01-01')$$),
('crm._fast_coverage_sql(timestamptz,text)', $$SELECT length(crm._fast_coverage_sql('2025-12-01', 'SELECT count(*) FROM r'))$$),
('crm.detach_rollup_capture()', $$SELECT count(*) FROM crm.detach_rollup_capture()$$),
('crm.refresh_rollups(boolean)', $$SELECT count(*) FROM crm.refresh_rollups()$$),
('crm.refresh_rollups(boolean)', $$UPDATE crm_demo.leads SET channel = channel WHERE lead_id IN (SELECT lead_id FROM crm_demo.leads ORDER BY lead_id DESC LIMIT 3)$$),
('crm.refresh_rollups(boolean)', $$SELECT count(*) FROM crm.refresh_rollups()$$),
('crm.set_dashboard_period(date,date)', $$SELECT crm.set_dashboard_period('2025-11-01', '2025-11-30')$$),
('crm._register_demo_sources()', $$SELECT crm._register_demo_sources()$$),
-- plans (docs/sales.md)
('crm.plan_metrics()', $$SELECT count(*) FROM crm.plan_metrics()$$),
('crm._plan_check_key(text,text,text)', $$SELECT crm._plan_check_key('t', 'channel', 'organic')$$),
('crm.set_plan(text,date,date,numeric,text,text)', $$SELECT crm.set_plan('revenue', '2025-11-01', '2025-11-30', 120000)$$),
('crm.set_plan(text,date,date,numeric,text,text)', $$SELECT crm.set_plan('win_rate', '2025-11-01', '2025-11-30', 30, 'manager', '2')$$),
('crm.set_plan(text,date,date,numeric,text,text)', $$SELECT crm.set_plan('spend', '2025-11-01', '2025-11-30', 5000, 'channel', 'events')$$),
('crm._plan_fact_needs(date,date,date)', $$SELECT * FROM crm._plan_fact_needs('2025-11-01', '2025-11-30', '2025-11-20')$$),
('crm.dashboard_plan_fact(date,date,date)', $$SELECT count(*) FROM crm.dashboard_plan_fact('2025-11-01', '2025-11-30', '2025-11-20')$$),
('crm.dashboard_plan_fact(date,date)', $$SELECT count(*) FROM crm.dashboard_plan_fact('2025-11-01', '2025-11-30')$$),
('crm._plan_fact(date,date,date,jsonb,jsonb,jsonb)', $$SELECT count(*) FROM crm._plan_fact('2025-11-01', '2025-11-30', '2025-11-30', '[]', NULL, NULL)$$),
('crm.delete_plan(text,date,date,text,text)', $$SELECT crm.delete_plan('spend', '2025-11-01', '2025-11-30', 'channel', 'events')$$),
('crm._demo_plans(date)', $$SELECT crm._demo_plans('2025-12-31')$$),
('crm.unregister_source(text)', $$SELECT crm.unregister_source('spend')$$),
-- the ends: detach
('crm.detach_auto_status(regclass,boolean)', $$SELECT crm.detach_auto_status('public.sp_deals')$$),
('crm._coverage_drop_triggers(regclass)', $$SELECT crm._coverage_drop_triggers(c.interactions) FROM crm.coverage_config c$$),
('crm._coverage_create_triggers(crm.coverage_config)', $$SELECT crm._coverage_create_triggers(c) FROM crm.coverage_config c$$),
('crm.detach_coverage()', $$SELECT crm.detach_coverage()$$),
-- last: it recreates the demo tables (smaller) for the view and trigger sections
('crm.load_demo(int,int,date)', $$SELECT count(*) FROM crm.load_demo(300, 7, '2025-12-31')$$);

-- a sample for a function that is not installed is ignored
ALTER TABLE sp_calls ADD COLUMN fn regprocedure;
UPDATE sp_calls SET fn = pg_catalog.to_regprocedure(fn_name);

-- aggregates and window functions (C, no SQL of their own): one call each with
-- arguments made from their types
CREATE FUNCTION pg_temp.sp_agg_call(fn regprocedure) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    args text[] := '{}';
    t oid;
    i int := 0;
    types oid[] := (SELECT ARRAY(SELECT unnest(p.proargtypes)) FROM pg_catalog.pg_proc p WHERE p.oid = fn);
    name text := (SELECT p.proname FROM pg_catalog.pg_proc p WHERE p.oid = fn);
BEGIN
    IF name = 'cohort_activity' THEN
        RETURN $$SELECT crm.cohort_activity(ordered_at, amount, 'month') FROM crm_demo.orders GROUP BY customer_id LIMIT 5$$;
    END IF;
    FOREACH t IN ARRAY types LOOP
        i := i + 1;
        args := args || CASE t
            WHEN 'timestamptz'::regtype THEN $$timestamptz '2025-01-01' + (g * 7 % 500)::float8 * interval '1 hour'$$
            WHEN 'numeric'::regtype THEN $$(g % 100)::numeric + 0.5$$
            WHEN 'float8'::regtype THEN $$(g % 10)::float8$$
            WHEN 'int4'::regtype THEN $$g % 3 + 1$$
            WHEN 'bool'::regtype THEN $$g % 2 = 0$$
            WHEN 'bool[]'::regtype THEN $$ARRAY[g % 2 = 0, g % 3 = 0, g % 5 = 0]$$
            WHEN 'interval'::regtype THEN $$interval '1 day'$$
            WHEN 'text'::regtype THEN CASE WHEN i = 2 THEN $$''$$ ELSE $$(ARRAY['a', 'b', 'c'])[1 + g % 3]$$ END
            WHEN 'text[]'::regtype THEN $$ARRAY['a', 'b']$$
        END;
    END LOOP;
    IF name = 'funnel_counts' THEN
        args := ARRAY['g % 4', '3'];
    ELSIF name = 'demand_cv' THEN
        args := ARRAY['(g % 7)::float8', 'g % 12 + 1', '12'];
    ELSIF name IN ('bgnbd_fit') THEN
        args := ARRAY['((g * 7) % 9 / 2)::float8', 'CASE WHEN (g * 7) % 9 / 2 = 0 THEN 0 ELSE (5 + g % 30)::float8 END', '39'];
    ELSIF name IN ('clv_summary') THEN
        args[3] := $$timestamptz '2026-01-01'$$;
    END IF;
    IF array_position(args, NULL) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    IF (SELECT p.provariadic FROM pg_catalog.pg_proc p WHERE p.oid = fn) <> 0 THEN
        args[array_length(args, 1)] := 'VARIADIC ' || args[array_length(args, 1)];
    END IF;
    RETURN format('SELECT %s(%s)%s FROM generate_series(1, 300) g', fn::oid::regproc, array_to_string(args, ', '),
                  CASE WHEN (SELECT p.prokind FROM pg_catalog.pg_proc p WHERE p.oid = fn) = 'w' THEN ' OVER ()' ELSE '' END);
END
$f$;
INSERT INTO sp_calls (fn, fn_name, call)
SELECT f.fn, f.fn::text, pg_temp.sp_agg_call(f.fn) FROM sp_ext_funcs f
 WHERE f.prokind IN ('a', 'w') AND NOT EXISTS (SELECT 1 FROM sp_calls c WHERE c.fn = f.fn) ORDER BY f.fn::text;

-- 1: every function of the extension has a sample call (aggregate support
-- functions and type I/O run through their aggregate and type; trigger
-- functions run through the trigger section below)
SELECT is(ARRAY(SELECT f.fn::text FROM sp_ext_funcs f
                 WHERE NOT EXISTS (SELECT 1 FROM sp_calls c WHERE c.fn = f.fn AND c.call IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_aggregate a WHERE f.oid IN (a.aggtransfn, a.aggcombinefn, a.aggfinalfn))
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE f.oid IN (t.typinput, t.typoutput))
                   AND f.prorettype <> 'pg_catalog.trigger'::regtype
                 ORDER BY 1), '{}'::text[],
          'every function of the extension has a sample call in this test (add one for a new function)');

-- ---------------------------------------------------------------- the names in use
-- operator names: the fixed list plus every pg_catalog binary operator name
-- that appears in a function body or a view definition of the extension
CREATE TEMP TABLE sp_text AS
SELECT p.prosrc AS src FROM pg_catalog.pg_proc p WHERE p.oid IN (SELECT oid FROM sp_ext_funcs) AND p.prolang <> 13 AND p.prolang <> 12
UNION ALL
SELECT pg_catalog.pg_get_viewdef(v) FROM sp_ext_views
UNION ALL
SELECT pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) FROM pg_catalog.pg_attrdef ad
 WHERE ad.adrelid IN (SELECT objid FROM pg_catalog.pg_depend WHERE deptype = 'e' AND classid = 'pg_catalog.pg_class'::regclass
                         AND refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'crm_analytics'));

CREATE TEMP TABLE sp_opnames AS
SELECT DISTINCT o.oprname AS op
  FROM pg_catalog.pg_operator o
 WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprkind = 'b'
   AND (o.oprname IN ('+', '-', '*', '/', '%', '=', '<>', '<', '>', '<=', '>=', '||', '~~', '!~~', '~~*', '^')
        OR EXISTS (SELECT 1 FROM sp_text t, regexp_matches(t.src, '[-+*/<>=~!@#%^&|`?]+', 'g') m WHERE m[1] = o.oprname));

CREATE TEMP TABLE sp_types (t regtype);
INSERT INTO sp_types VALUES ('int2'), ('int4'), ('int8'), ('numeric'), ('float4'), ('float8'), ('text'), ('varchar'),
    ('bpchar'), ('name'), ('date'), ('timestamp'), ('timestamptz'), ('interval'), ('bool'), ('time');

-- function names: identifiers followed by "(" that are not schema-qualified
-- and name a pg_catalog function
CREATE TEMP TABLE sp_fnames AS
SELECT DISTINCT lower(m[1]) AS name
  FROM sp_text t, regexp_matches(t.src, '(?:^|[^.\w"])([A-Za-z_][A-Za-z0-9_]*)\s*\(', 'g') m
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = lower(m[1])
                  AND p.prokind IN ('f', 'a', 'w'));

-- ---------------------------------------------------------------- plant
CREATE SCHEMA sp_hostile;
CREATE SEQUENCE sp_hostile.hits;
CREATE FUNCTION pg_temp.sp_plant() RETURNS int LANGUAGE plpgsql AS $plant$
DECLARE
    o record; l regtype; r regtype; res regtype; n int := 0; k int := 0;
    f record; combo regtype[]; cand regtype[][]; sets text; q text;
BEGIN
    -- binary operators: every (l, r) pg_catalog reaches only through an implicit
    -- cast of l or r; the planted one returns what pg_catalog's would
    FOR o IN
        SELECT DISTINCT ON (n.op, l.t, r.t) n.op, l.t AS l, r.t AS r, x.oprresult::regtype AS res
          FROM sp_opnames n CROSS JOIN sp_types l CROSS JOIN sp_types r
          JOIN pg_catalog.pg_operator x ON x.oprnamespace = 'pg_catalog'::regnamespace AND x.oprname = n.op AND x.oprkind = 'b'
         WHERE (x.oprleft = l.t OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castsource = l.t AND c.casttarget = x.oprleft AND c.castcontext = 'i'))
           AND (x.oprright = r.t OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castsource = r.t AND c.casttarget = x.oprright AND c.castcontext = 'i'))
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator y WHERE y.oprnamespace = 'pg_catalog'::regnamespace
                              AND y.oprname = n.op AND y.oprleft = l.t AND y.oprright = r.t)
           AND x.oprresult::regtype::text NOT LIKE 'any%'
         ORDER BY n.op, l.t, r.t, (x.oprleft = l.t OR x.oprright = r.t) DESC
    LOOP
        k := k + 1;
        EXECUTE format($$CREATE FUNCTION sp_hostile.sp_op_%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS
                         'BEGIN PERFORM pg_catalog.nextval(''sp_hostile.hits''); RAISE EXCEPTION USING MESSAGE = ''hijacked by operator %s(%s, %s)'', ERRCODE = ''HJ001''; END'$$,
                       k, o.l, o.r, o.res, o.op, o.l, o.r);
        EXECUTE format('CREATE OPERATOR sp_hostile.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = sp_hostile.sp_op_%s)', o.op, o.l, o.r, k);
        n := n + 1;
    END LOOP;
    -- prefix minus
    FOR o IN
        SELECT DISTINCT ON (l.t) l.t AS l, x.oprresult::regtype AS res
          FROM sp_types l JOIN pg_catalog.pg_operator x ON x.oprnamespace = 'pg_catalog'::regnamespace AND x.oprname = '-' AND x.oprkind = 'l'
         WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castsource = l.t AND c.casttarget = x.oprright AND c.castcontext = 'i')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator y WHERE y.oprnamespace = 'pg_catalog'::regnamespace
                              AND y.oprname = '-' AND y.oprkind = 'l' AND y.oprright = l.t)
    LOOP
        k := k + 1;
        EXECUTE format($$CREATE FUNCTION sp_hostile.sp_op_%s(%s) RETURNS %s LANGUAGE plpgsql AS
                         'BEGIN PERFORM pg_catalog.nextval(''sp_hostile.hits''); RAISE EXCEPTION USING MESSAGE = ''hijacked by operator -(%s)'', ERRCODE = ''HJ001''; END'$$,
                       k, o.l, o.res, o.l);
        EXECUTE format('CREATE OPERATOR sp_hostile.- (RIGHTARG = %s, FUNCTION = sp_hostile.sp_op_%s)', o.l, k);
        n := n + 1;
    END LOOP;
    -- functions: for every pg_catalog overload (up to 3 arguments) of a name in
    -- use, every combination of argument types that reaches it by implicit
    -- casts or polymorphism from the common types, unless pg_catalog has it
    CREATE TEMP TABLE sp_overloads AS
    SELECT p.oid, p.proname, ARRAY(SELECT pg_catalog.unnest(p.proargtypes))::regtype[] AS args,
           p.prorettype::regtype AS ret, p.proretset, p.pronargs
      FROM pg_catalog.pg_proc p JOIN sp_fnames s ON s.name = p.proname
     WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.pronargs BETWEEN 1 AND 3 AND p.prokind IN ('f', 'a', 'w');
    -- the common types that reach each argument
    CREATE TEMP TABLE sp_cands AS
    SELECT ov.oid, a.i, c.t
      FROM sp_overloads ov CROSS JOIN LATERAL unnest(ov.args) WITH ORDINALITY AS a(at, i)
     CROSS JOIN LATERAL (
        SELECT s.t FROM sp_types s
         WHERE a.at::oid IN (2283, 2776, 5077, 5079, 2276)   -- anyelement anynonarray anycompatible anycompatiblenonarray "any"
            OR s.t = a.at
            OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castsource = s.t AND c.casttarget = a.at AND c.castcontext = 'i')
        UNION
        SELECT ty.typarray::regtype FROM sp_types s JOIN pg_catalog.pg_type ty ON ty.oid = s.t
         WHERE a.at::oid IN (2277, 5078, 2276)) c;       -- anyarray anycompatiblearray "any"
    FOR f IN
        WITH RECURSIVE combos AS (
            SELECT c.oid, 1::bigint AS i, ARRAY[c.t] AS ts FROM sp_cands c WHERE c.i = 1
            UNION ALL
            SELECT co.oid, co.i + 1, co.ts || c.t FROM combos co JOIN sp_cands c ON c.oid = co.oid AND c.i = co.i + 1)
        SELECT DISTINCT ON (ov.proname, co.ts) ov.proname, ov.args, ov.ret, ov.proretset, co.ts AS combo
          FROM combos co JOIN sp_overloads ov ON ov.oid = co.oid AND co.i = ov.pronargs
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc x WHERE x.proname = ov.proname AND x.pronamespace = 'pg_catalog'::regnamespace
                              AND x.proargtypes = pg_catalog.array_to_string(co.ts::oid[], ' ')::pg_catalog.oidvector)
    LOOP
        combo := f.combo;
        res := f.ret;
        IF res::oid IN (2283, 2776, 5077, 5079) THEN
            res := combo[1];
            IF f.args[1]::oid IN (2277, 5078) THEN
                res := (SELECT ty.typelem FROM pg_catalog.pg_type ty WHERE ty.oid = combo[1]);
            END IF;
        ELSIF res::oid IN (2277, 5078) THEN
            res := combo[1];
            IF f.args[1]::oid NOT IN (2277, 5078) THEN
                res := (SELECT ty.typarray FROM pg_catalog.pg_type ty WHERE ty.oid = combo[1]);
            END IF;
        END IF;
        CONTINUE WHEN res IS NULL OR res = 0 OR (SELECT ty.typtype FROM pg_catalog.pg_type ty WHERE ty.oid = res) = 'p';
        sets := (SELECT string_agg(x::text, ', ') FROM unnest(combo) x);
        q := format($$CREATE FUNCTION sp_hostile.%I(%s) RETURNS %s%s LANGUAGE plpgsql AS
                      'BEGIN PERFORM pg_catalog.nextval(''sp_hostile.hits''); RAISE EXCEPTION USING MESSAGE = ''hijacked by function %s(%s)'', ERRCODE = ''HJ001''; END'$$,
                    f.proname, sets, CASE WHEN f.proretset THEN 'SETOF ' ELSE '' END, res, f.proname, sets);
        EXECUTE q;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$plant$;

-- 2
SELECT cmp_ok(pg_temp.sp_plant(), '>', 500, 'hostile operators and functions are planted');
-- ---------------------------------------------------------------- run everything
CREATE TEMP TABLE sp_failures (what text, err text);
CREATE FUNCTION pg_temp.sp_run(what text, q text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE m text; st text;
BEGIN
    -- the caller's path: the default one plus the schema of the hostile objects
    PERFORM pg_catalog.set_config('search_path', '"$user", public, sp_hostile', true);
    BEGIN
        EXECUTE q;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
        PERFORM pg_catalog.set_config('search_path', '"$user", public', true);
        INSERT INTO sp_failures VALUES (what, st || ': ' || m);
    END;
    PERFORM pg_catalog.set_config('search_path', '"$user", public', true);
END
$f$;

-- 3: the harness bites: an unqualified mixed-type expression of the caller hits a planted operator
SELECT pg_temp.sp_run('probe', 'SELECT 1.5::float8 / 2');
SELECT is((SELECT err FROM sp_failures), 'HJ001: hijacked by operator /(double precision, integer)',
          'the planted float8 / int4 operator catches an unqualified expression resolved with the caller''s path');
TRUNCATE sp_failures;

SELECT pg_temp.sp_run(fn::text, call) FROM sp_calls WHERE fn IS NOT NULL AND call IS NOT NULL ORDER BY seq;
-- 4
SELECT is(ARRAY(SELECT what || ' -> ' || err FROM sp_failures ORDER BY 1), '{}'::text[],
          'every function of the extension runs with hostile objects in the caller''s path, and none of them is used');

-- 5: every view
TRUNCATE sp_failures;
SELECT pg_temp.sp_run(v::text, format('SELECT count(*) FROM (SELECT * FROM %s) v', v)) FROM sp_ext_views ORDER BY v::text;
SELECT is(ARRAY(SELECT what || ' -> ' || err FROM sp_failures ORDER BY 1), '{}'::text[],
          'every view of the extension reads with hostile objects in the caller''s path, and none of them is used');

-- 6: the triggers: coverage (insert, update, delete, truncate) and auto-status
-- (event and entity triggers, rule tables, configuration), policy triggers
TRUNCATE sp_failures;
SELECT pg_temp.sp_run('attach rollup capture', $$SELECT count(*) FROM crm.attach_rollup_capture()$$);
SELECT pg_temp.sp_run('attach coverage', $$SELECT crm.attach_coverage('crm_demo.interactions', customers => 'crm_demo.customers')$$);
SELECT pg_temp.sp_run('attach auto-status', $$SELECT crm.attach_auto_status('public.sp_deals', 'deal_id', 'stage', ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid', 'lost'],
                                 'public.sp_deal_events', 'deal_id', 'stage', 'changed_at')$$);
SELECT pg_temp.sp_run('status rules', $$INSERT INTO crm.status_event_rules (entity_table, event_type, to_status)
                                         SELECT 'public.sp_deals', s, s FROM pg_catalog.unnest(ARRAY['qualified', 'proposal', 'invoice', 'paid', 'lost']) s$$);
SELECT pg_temp.sp_run('status time rule', $$INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
                                            VALUES ('public.sp_deals', 'proposal', '30 days', 'lost')$$);
SELECT pg_temp.sp_run('status event trigger', $$INSERT INTO public.sp_deal_events
                                                SELECT e.deal_id, e.stage, e.changed_at FROM crm_demo.deal_events e JOIN public.sp_deals d USING (deal_id)
                                                 ORDER BY e.changed_at, e.deal_id$$);
SELECT pg_temp.sp_run('status entity trigger', $$UPDATE public.sp_deals SET stage = 'lost' WHERE stage = 'proposal'$$);
SELECT pg_temp.sp_run('status entity insert', $$INSERT INTO public.sp_deals VALUES (-1, 'lead')$$);
SELECT pg_temp.sp_run('status sweep', $$SELECT crm.apply_time_rules('2027-01-01')$$);
SELECT pg_temp.sp_run('coverage policy triggers', $$UPDATE crm.coverage_policy SET max_interval = max_interval + interval '1 day'$$);
SELECT pg_temp.sp_run('coverage insert trigger', $$INSERT INTO crm_demo.interactions
    SELECT interaction_id + 10000000, customer_id, lead_id, manager_id, 'call', 'outbound', false, occurred_at + interval '1 day'
      FROM crm_demo.interactions WHERE customer_id IS NOT NULL ORDER BY interaction_id LIMIT 50$$);
SELECT pg_temp.sp_run('coverage update trigger', $$UPDATE crm_demo.interactions SET occurred_at = occurred_at + interval '1 hour'
                                                   WHERE interaction_id > 10000000$$);
SELECT pg_temp.sp_run('coverage delete trigger', $$DELETE FROM crm_demo.interactions WHERE interaction_id > 10000000$$);
SELECT pg_temp.sp_run('coverage truncate trigger', $$TRUNCATE crm_demo.interactions$$);
SELECT pg_temp.sp_run('rollup refresh after the trigger DML', $$SELECT count(*) FROM crm.refresh_rollups()$$);
SELECT is(ARRAY(SELECT what || ' -> ' || err FROM sp_failures ORDER BY 1), '{}'::text[],
          'every trigger of the extension fires with hostile objects in the caller''s path, and none of them is used');
-- 7: the triggers did their work
SELECT ok((SELECT count(*) FROM crm.status_history WHERE entity_table = 'public.sp_deals'::regclass) > 0
          AND NOT EXISTS (SELECT 1 FROM crm.coverage WHERE last_contact IS NOT NULL)
          AND EXISTS (SELECT 1 FROM crm.coverage),
          'the status triggers wrote history, the truncate trigger cleared every contact');

-- 8: every trigger function of the extension was exercised: it is attached to
-- a table above (or to one of the extension's own tables)
SELECT is(ARRAY(SELECT f.fn::text FROM sp_ext_funcs f
                 WHERE f.prorettype = 'pg_catalog.trigger'::regtype
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg WHERE tg.tgfoid = f.oid) ORDER BY 1), '{}'::text[],
          'every trigger function of the extension is attached somewhere and fired above');

-- 9: nothing planted ever ran (even where an error was caught and swallowed)
SELECT is((SELECT last_value - CASE WHEN is_called THEN 0 ELSE 1 END FROM sp_hostile.hits), 1::bigint,
          'no hostile object ran, apart from the harness''s own check (test 3)');

SELECT * FROM finish();
ROLLBACK;
