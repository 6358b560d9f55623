-- crm_analytics 0.3.0 -> 0.4.0
--
-- 0.4.0 answers the sales head's day (issue 20: losses by reason and stage,
-- follow-up depth, the to-do list, plans against facts, churn and the cost
-- of a lost opportunity, manager activity) and serves BI at scale (issue 21:
-- daily rollups refreshed incrementally, crm.v_daily, BI conventions).  Each
-- section below holds the DDL of one area; C-only changes need no SQL here.
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.4.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.4.0'::text $$;


-- ==== section owner: owner_dashboard metrics, manager activity ====
-- ==== end of section owner ====


-- ==== section losses: lost reasons, dashboard_losses, dashboard_followups ====
-- ==== end of section losses ====


-- ==== section todo: crm.todo, crm.v_todo, notifications ====
-- ==== end of section todo ====


-- ==== section plans: crm.plans, set_plan, dashboard_plan_fact ====
-- ==== end of section plans ====


-- ==== section rollups: daily rollups, refresh_rollups, v_daily ====
-- ==== end of section rollups ====


-- ==== section bi: BI conventions (column comments, sort order, period per session / role), progress ====
-- progress of long calls (src/bi.c)
CREATE FUNCTION crm._progress(phase text, done bigint, total bigint) RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'crm_progress';
COMMENT ON FUNCTION crm._progress(text, bigint, bigint) IS
'Reports the progress of a long call: phase (what runs), done of total (NULL = unknown) and the time since the statement started, in pg_stat_activity.query of this backend and, every crm_analytics.progress_interval (default 10 s, -1 = never), as a NOTICE. Call it between batches, not per row.';

-- the dashboard period per session, role or database (settings crm.period_from / crm.period_to, crm.period)
CREATE FUNCTION crm._period_setting_date(name text) RETURNS date
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := nullif(btrim(current_setting(name, true)), '');
    d date;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF v !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RAISE EXCEPTION 'invalid value for setting %: "%"', name, v
            USING ERRCODE = 'invalid_datetime_format',
                  HINT = pg_catalog.format('Use an ISO date, e.g. SET %s = ''2025-12-01'', or RESET %s.', name, name);
    END IF;
    BEGIN
        d := v::date;
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
        RAISE EXCEPTION 'invalid value for setting %: "%" is not a date', name, v
            USING ERRCODE = 'invalid_datetime_format',
                  HINT = pg_catalog.format('Use an ISO date, e.g. SET %s = ''2025-12-01'', or RESET %s.', name, name);
    END;
    RETURN d;
END
$$;
COMMENT ON FUNCTION crm._period_setting_date(text) IS
'The date in the setting name (crm.period_from or crm.period_to), NULL when unset or empty; a clear error (22007) naming the setting when it is not an ISO date.';

CREATE FUNCTION crm._dashboard_period(OUT period_from date, OUT period_to date, OUT source text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d_from date := crm._period_setting_date('crm.period_from');
    d_to   date := crm._period_setting_date('crm.period_to');
    rel    text := nullif(lower(btrim(current_setting('crm.period', true))), '');
    today  date := current_date;
    m      date := date_trunc('month', current_date)::date;
    q      date := date_trunc('quarter', current_date)::date;
BEGIN
    IF d_from IS NOT NULL OR d_to IS NOT NULL THEN
        IF d_from IS NULL OR d_to IS NULL THEN
            RAISE EXCEPTION 'setting % is set but % is not', CASE WHEN d_from IS NULL THEN 'crm.period_to' ELSE 'crm.period_from' END,
                                                          CASE WHEN d_from IS NULL THEN 'crm.period_from' ELSE 'crm.period_to' END
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Set both (SET crm.period_from = ''2025-12-01''; SET crm.period_to = ''2025-12-31'') or reset both.';
        END IF;
        IF NOT (isfinite(d_from) AND isfinite(d_to)) THEN
            RAISE EXCEPTION 'settings crm.period_from and crm.period_to must be finite dates, got % to %', d_from, d_to
                USING ERRCODE = 'datetime_field_overflow',
                      HINT = 'Use real dates, e.g. ''2025-12-01'' and ''2025-12-31''.';
        END IF;
        IF d_from > d_to THEN
            RAISE EXCEPTION 'setting crm.period_from % is after crm.period_to %', d_from, d_to
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Swap the two dates.';
        END IF;
        period_from := d_from;
        period_to := d_to;
        source := 'settings crm.period_from, crm.period_to';
        RETURN;
    END IF;
    IF rel IS NOT NULL THEN
        CASE rel
            WHEN 'last_month'   THEN period_from := (m - interval '1 month')::date;   period_to := m - 1;
            WHEN 'this_month'   THEN period_from := m;                                 period_to := today;
            WHEN 'last_quarter' THEN period_from := (q - interval '3 months')::date;  period_to := q - 1;
            WHEN 'this_quarter' THEN period_from := q;                                 period_to := today;
            WHEN 'last_7_days'  THEN period_from := today - 7;                         period_to := today - 1;
            WHEN 'last_30_days' THEN period_from := today - 30;                        period_to := today - 1;
            ELSE
                RAISE EXCEPTION 'invalid value for setting crm.period: "%"', current_setting('crm.period', true)
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use last_month, this_month, last_quarter, this_quarter, last_7_days or last_30_days, or RESET crm.period.';
        END CASE;
        source := 'setting crm.period = ' || rel;
        RETURN;
    END IF;
    SELECT s.period_from, s.period_to INTO period_from, period_to FROM crm.dashboard_settings s;
    IF period_from IS NOT NULL THEN
        source := 'crm.dashboard_settings';
        RETURN;
    END IF;
    period_from := (m - interval '1 month')::date;
    period_to := m - 1;
    source := 'default: the last complete calendar month';
END
$$;
COMMENT ON FUNCTION crm._dashboard_period() IS
'The dashboard period and where it comes from: the settings crm.period_from and crm.period_to, else the setting crm.period, else crm.dashboard_settings, else the last complete calendar month.';

CREATE OR REPLACE FUNCTION crm.dashboard_period(OUT period_from date, OUT period_to date)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT p.period_from, p.period_to FROM crm._dashboard_period() AS p
$$;
COMMENT ON FUNCTION crm.dashboard_period() IS
'The period the crm.v_* views show: the settings crm.period_from and crm.period_to (session, role or database), else the setting crm.period (last_month, this_month, last_quarter, this_quarter, last_7_days, last_30_days), else the one set with crm.set_dashboard_period, else the last complete calendar month.';

CREATE FUNCTION crm.dashboard_period_source() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT p.source FROM crm._dashboard_period() AS p
$$;
COMMENT ON FUNCTION crm.dashboard_period_source() IS
'Where the period of crm.dashboard_period() comes from: the settings crm.period_from and crm.period_to, the setting crm.period, crm.dashboard_settings or the default.';

COMMENT ON FUNCTION crm.set_dashboard_period(date, date) IS
'Sets the global period (inclusive dates) that the crm.v_* views show, for every session without the settings crm.period_from / crm.period_to or crm.period; NULL, NULL = the last complete calendar month.';

-- ids: a numeric twin of the text ids
CREATE FUNCTION crm.id_number(id text) RETURNS numeric
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_id_number';
COMMENT ON FUNCTION crm.id_number(text) IS
'An id as a number when it is written as one (optional minus, digits, optional decimals), else NULL: the numeric sort key beside the text ids of the crm.v_* views (''10'' sorts after ''9'').';

CREATE OR REPLACE VIEW crm.v_owner_dashboard WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, d.section, d.metric, d.value, d.previous_value, d.change_pct, d.unit,
       d.ordinality AS sort_order
  FROM crm.dashboard_period() AS p, LATERAL crm.owner_dashboard(p.period_from, p.period_to) WITH ORDINALITY AS d;
COMMENT ON COLUMN crm.v_owner_dashboard.period_from IS 'First day of the dashboard period (crm.dashboard_period()).';
COMMENT ON COLUMN crm.v_owner_dashboard.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_owner_dashboard.section IS 'Dashboard section: acquisition, sales, pipeline or money_lost.';
COMMENT ON COLUMN crm.v_owner_dashboard.metric IS 'Metric name, as in docs/metrics.md (revenue, new_buyers, cac, win_rate, ...).';
COMMENT ON COLUMN crm.v_owner_dashboard.value IS 'The metric for the period, as of its end; its unit is in the unit column.';
COMMENT ON COLUMN crm.v_owner_dashboard.previous_value IS 'The metric for the previous period of equal length, as of its end.';
COMMENT ON COLUMN crm.v_owner_dashboard.change_pct IS 'Change against the previous period, % of |previous_value|; NULL when the previous value is 0 or missing.';
COMMENT ON COLUMN crm.v_owner_dashboard.unit IS 'Unit of value: count, money, pct, days, money_per_day.';
COMMENT ON COLUMN crm.v_owner_dashboard.sort_order IS 'Position of the row in crm.owner_dashboard (1, 2, ...): sort by it to get the dashboard''s order.';

COMMENT ON COLUMN crm.v_funnel.period_from IS 'First day of the dashboard period: the funnel follows the deals whose first event falls in the period.';
COMMENT ON COLUMN crm.v_funnel.period_to IS 'Last day of the dashboard period, inclusive; stages reached are counted as of its end.';
COMMENT ON COLUMN crm.v_funnel.step_no IS 'Step number, 1 = first open stage (crm.pipeline_stages order, lost stages left out): sort by it.';
COMMENT ON COLUMN crm.v_funnel.stage IS 'Stage name of the step.';
COMMENT ON COLUMN crm.v_funnel.entered IS 'Deals that reached this step or a later one before the period end.';
COMMENT ON COLUMN crm.v_funnel.pct_of_first IS 'entered as % of the deals at step 1.';
COMMENT ON COLUMN crm.v_funnel.pct_of_prev IS 'entered as % of the deals at the previous step; NULL at step 1.';
COMMENT ON COLUMN crm.v_funnel.dropped IS 'Deals that reached this step but not the next: entered(k) - entered(k+1); 0 at the last step.';
COMMENT ON COLUMN crm.v_funnel.lost_deals IS 'Deals that stopped at this step and are lost.';
COMMENT ON COLUMN crm.v_funnel.lost_value IS 'Amount of the deals lost at this step (money).';

COMMENT ON COLUMN crm.v_pipeline.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_pipeline.period_to IS 'Last day of the dashboard period, inclusive; open deals are counted at its end.';
COMMENT ON COLUMN crm.v_pipeline.stage IS 'Stage name (crm.pipeline_stages).';
COMMENT ON COLUMN crm.v_pipeline.stage_order IS 'Order of the stage in the pipeline (crm.pipeline_stages.stage_order): sort by it.';
COMMENT ON COLUMN crm.v_pipeline.outcome IS 'Outcome of the stage: open, won or lost.';
COMMENT ON COLUMN crm.v_pipeline.probability IS 'Probability (0..1) that a deal in this stage is won, from crm.pipeline_stages.';
COMMENT ON COLUMN crm.v_pipeline.entered IS 'Deals that entered the stage in the period.';
COMMENT ON COLUMN crm.v_pipeline.open_deals IS 'Open deals whose most advanced stage is this one at the period end (stale deals included).';
COMMENT ON COLUMN crm.v_pipeline.open_value IS 'Amount of those open deals (money).';
COMMENT ON COLUMN crm.v_pipeline.weighted_value IS 'Probability-weighted amount of the open deals that are not stale (idle beyond the stage norm max_days); the stages add up to weighted_pipeline.';
COMMENT ON COLUMN crm.v_pipeline.lost_deals IS 'Deals lost in the period whose most advanced open stage was this one.';
COMMENT ON COLUMN crm.v_pipeline.lost_value IS 'Amount of those lost deals (money).';

COMMENT ON COLUMN crm.v_retention.cohort IS 'Cohort: first day of the month of the buyers'' first order (the 12 months up to the dashboard period end).';
COMMENT ON COLUMN crm.v_retention.period_no IS 'Months since the cohort month (0 = the cohort month itself).';
COMMENT ON COLUMN crm.v_retention.cohort_size IS 'Buyers whose first order fell in the cohort month.';
COMMENT ON COLUMN crm.v_retention.active IS 'Cohort buyers who ordered in month period_no.';
COMMENT ON COLUMN crm.v_retention.retention_pct IS 'active as % of cohort_size.';
COMMENT ON COLUMN crm.v_retention.revenue IS 'Revenue of the cohort''s orders in month period_no (money).';
COMMENT ON COLUMN crm.v_retention.cumulative_ltv IS 'Revenue of the cohort up to and including month period_no, per cohort buyer: the cohort LTV curve (money).';

CREATE OR REPLACE VIEW crm.v_rfm WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, r.customer_id, r.recency_days, r.frequency, r.monetary, r.r, r.f, r.m, r.segment,
       crm.id_number(r.customer_id) AS customer_id_num
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_rfm(p.period_to) AS r;
COMMENT ON COLUMN crm.v_rfm.as_of IS 'The day (end of) the scores are computed at: the dashboard period end.';
COMMENT ON COLUMN crm.v_rfm.customer_id IS 'Customer id as text (any source type); sort by customer_id_num for numeric order.';
COMMENT ON COLUMN crm.v_rfm.recency_days IS 'Whole days from the customer''s last order to the end of as_of.';
COMMENT ON COLUMN crm.v_rfm.frequency IS 'Orders of the customer up to as_of.';
COMMENT ON COLUMN crm.v_rfm.monetary IS 'Revenue of the customer up to as_of (money).';
COMMENT ON COLUMN crm.v_rfm.r IS 'Recency score 1..5 (5 = most recent buyers), crm.quantile_score.';
COMMENT ON COLUMN crm.v_rfm.f IS 'Frequency score 1..5 (5 = most orders).';
COMMENT ON COLUMN crm.v_rfm.m IS 'Monetary score 1..5 (5 = most revenue).';
COMMENT ON COLUMN crm.v_rfm.segment IS 'RFM segment (crm.rfm_segment: Champions, Loyal Customers, At Risk, ...).';
COMMENT ON COLUMN crm.v_rfm.customer_id_num IS 'customer_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';

CREATE OR REPLACE VIEW crm.v_abc_xyz WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, a.product_id, a.revenue, a.revenue_share_pct, a.abc_class, a.cv, a.xyz_class, a.abc_xyz,
       crm.id_number(a.product_id) AS product_id_num
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_abc_xyz(p.period_to) AS a;
COMMENT ON COLUMN crm.v_abc_xyz.as_of IS 'The dashboard period end: classes cover the 12 calendar months up to it.';
COMMENT ON COLUMN crm.v_abc_xyz.product_id IS 'Product id as text (any source type); sort by product_id_num for numeric order.';
COMMENT ON COLUMN crm.v_abc_xyz.revenue IS 'Revenue of the product over the 12 months (money).';
COMMENT ON COLUMN crm.v_abc_xyz.revenue_share_pct IS 'The product''s share of the revenue of all products, %.';
COMMENT ON COLUMN crm.v_abc_xyz.abc_class IS 'ABC class by revenue: A (top 80 % of revenue), B (next 15 %), C (the rest).';
COMMENT ON COLUMN crm.v_abc_xyz.cv IS 'Coefficient of variation of the monthly revenue, months without sales as zero.';
COMMENT ON COLUMN crm.v_abc_xyz.xyz_class IS 'XYZ class by cv: X (< 0.10, steady), Y (< 0.25), Z (erratic).';
COMMENT ON COLUMN crm.v_abc_xyz.abc_xyz IS 'abc_class and xyz_class together (AX .. CZ).';
COMMENT ON COLUMN crm.v_abc_xyz.product_id_num IS 'product_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';

COMMENT ON COLUMN crm.v_channels.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_channels.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_channels.channel IS 'Acquisition channel (of the lead or customer).';
COMMENT ON COLUMN crm.v_channels.metric IS 'Metric: leads, new_buyers, conversion, revenue, gross_profit, spend, cac, roi, ltv, ltv_cac (docs/metrics.md); filter on one.';
COMMENT ON COLUMN crm.v_channels.value IS 'The metric for the channel and period; NULL when it has no meaning (no spend, no buyers).';
COMMENT ON COLUMN crm.v_channels.unit IS 'Unit of value: count, pct, money, ratio.';

CREATE OR REPLACE VIEW crm.v_managers WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, m.manager_id, v.metric, v.value, v.unit,
       crm.id_number(m.manager_id) AS manager_id_num
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_managers(p.period_from, p.period_to) AS m,
  LATERAL (VALUES ('leads', m.leads::numeric, 'count'), ('answered_leads', m.answered_leads::numeric, 'count'),
                  ('unanswered_leads', m.unanswered_leads::numeric, 'count'),
                  ('median_response', m.median_response_minutes, 'minutes'),
                  ('deals_won', m.deals_won::numeric, 'count'), ('deals_lost', m.deals_lost::numeric, 'count'),
                  ('win_rate', m.win_rate_pct, 'pct'), ('revenue', m.revenue, 'money'),
                  ('customers', m.customers::numeric, 'count'), ('covered_customers', m.covered_customers::numeric, 'count'),
                  ('coverage', m.coverage_pct, 'pct')) AS v(metric, value, unit);
COMMENT ON COLUMN crm.v_managers.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_managers.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_managers.manager_id IS 'Manager id as text (any source type; NULL = no manager); sort by manager_id_num for numeric order.';
COMMENT ON COLUMN crm.v_managers.metric IS 'Metric: leads, answered_leads, unanswered_leads, median_response, deals_won, deals_lost, win_rate, revenue, customers, covered_customers, coverage (docs/metrics.md); filter on one.';
COMMENT ON COLUMN crm.v_managers.value IS 'The metric for the manager and period; NULL when it has no meaning.';
COMMENT ON COLUMN crm.v_managers.unit IS 'Unit of value: count, minutes, pct, money.';
COMMENT ON COLUMN crm.v_managers.manager_id_num IS 'manager_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';

COMMENT ON COLUMN crm.v_coverage.as_of IS 'The dashboard period end: coverage is judged at the end of this day.';
COMMENT ON COLUMN crm.v_coverage.abc_class IS 'ABC class of the customers by their revenue of the 12 months before (A, B, C).';
COMMENT ON COLUMN crm.v_coverage.customers IS 'Customers of the class created before the end of as_of.';
COMMENT ON COLUMN crm.v_coverage.covered IS 'Customers whose next due contact (class interval after the last real contact) is not before the end of as_of.';
COMMENT ON COLUMN crm.v_coverage.overdue IS 'Customers whose next due contact has passed: customers - covered.';
COMMENT ON COLUMN crm.v_coverage.coverage_pct IS 'covered as % of customers.';

COMMENT ON COLUMN crm.v_lead_sla.period_from IS 'First day of the dashboard period: leads created from then.';
COMMENT ON COLUMN crm.v_lead_sla.period_to IS 'Last day of the dashboard period, inclusive; responses are counted as of its end.';
COMMENT ON COLUMN crm.v_lead_sla.channel IS 'Lead channel, or all for the total row.';
COMMENT ON COLUMN crm.v_lead_sla.leads IS 'Leads created in the period.';
COMMENT ON COLUMN crm.v_lead_sla.answered IS 'Leads with a first response (a non-automated outbound interaction) before the period end.';
COMMENT ON COLUMN crm.v_lead_sla.within_sla IS 'Leads answered within the SLA (crm.dashboard_settings.lead_sla, default 1 hour).';
COMMENT ON COLUMN crm.v_lead_sla.never_answered IS 'Leads without a response by the period end: leads - answered.';
COMMENT ON COLUMN crm.v_lead_sla.within_sla_pct IS 'within_sla as % of leads; NULL without leads.';
COMMENT ON COLUMN crm.v_lead_sla.median_response_minutes IS 'Median minutes from lead creation to the first response, over the answered leads.';

-- column comments of the other capabilities' views
COMMENT ON COLUMN crm.coverage_status.customer_id IS 'Customer id (the key of the attached customers table, in its type).';
COMMENT ON COLUMN crm.coverage_status.class IS 'Customer class that sets the contact policy (e.g. A, B, C); NULL = unclassified.';
COMMENT ON COLUMN crm.coverage_status.manager_id IS 'The customer''s manager.';
COMMENT ON COLUMN crm.coverage_status.last_contact IS 'Time of the last real (non-automated) contact; NULL = never contacted.';
COMMENT ON COLUMN crm.coverage_status.contacts IS 'Real contacts counted for the customer.';
COMMENT ON COLUMN crm.coverage_status.contact_interval IS 'How often the customer must be contacted (the class policy, or the purchase cycle).';
COMMENT ON COLUMN crm.coverage_status.next_due IS 'When the next contact is due: last contact (or customer since) plus contact_interval.';
COMMENT ON COLUMN crm.coverage_status.status IS 'ok, due soon, overdue or unclassified at crm.coverage_as_of().';
COMMENT ON COLUMN crm.coverage_status.days_overdue IS 'Whole days past next_due at crm.coverage_as_of(); NULL when not overdue.';
COMMENT ON COLUMN crm.coverage_by_class.class IS 'Customer class; NULL = the unclassified customers.';
COMMENT ON COLUMN crm.coverage_by_class.customers IS 'Customers of the class.';
COMMENT ON COLUMN crm.coverage_by_class.covered IS 'Customers whose next contact is not yet due (ok or due soon).';
COMMENT ON COLUMN crm.coverage_by_class.due_soon IS 'Covered customers within the class''s due_soon window before next_due.';
COMMENT ON COLUMN crm.coverage_by_class.overdue IS 'Classified customers past next_due (or never contacted with no due date).';
COMMENT ON COLUMN crm.coverage_by_class.never_contacted IS 'Customers without any real contact.';
COMMENT ON COLUMN crm.coverage_by_class.coverage_pct IS 'covered as % of customers.';
COMMENT ON COLUMN crm.coverage_by_manager.manager_id IS 'Manager id; NULL = customers without a manager.';
COMMENT ON COLUMN crm.coverage_by_manager.customers IS 'Customers of the manager.';
COMMENT ON COLUMN crm.coverage_by_manager.covered IS 'Customers whose next contact is not yet due (ok or due soon).';
COMMENT ON COLUMN crm.coverage_by_manager.due_soon IS 'Covered customers within their class''s due_soon window before next_due.';
COMMENT ON COLUMN crm.coverage_by_manager.overdue IS 'Classified customers past next_due (or never contacted with no due date).';
COMMENT ON COLUMN crm.coverage_by_manager.never_contacted IS 'Customers without any real contact.';
COMMENT ON COLUMN crm.coverage_by_manager.coverage_pct IS 'covered as % of the manager''s classified customers.';
COMMENT ON COLUMN crm.coverage_overdue.customer_id IS 'Customer id (the key of the attached customers table, in its type).';
COMMENT ON COLUMN crm.coverage_overdue.class IS 'Customer class.';
COMMENT ON COLUMN crm.coverage_overdue.manager_id IS 'The customer''s manager: filter on it for one manager''s call list.';
COMMENT ON COLUMN crm.coverage_overdue.last_contact IS 'Time of the last real contact; NULL = never contacted.';
COMMENT ON COLUMN crm.coverage_overdue.next_due IS 'When the contact was due; NULL = never contacted and no customer-since date.';
COMMENT ON COLUMN crm.coverage_overdue.days_overdue IS 'Whole days past next_due at crm.coverage_as_of().';
COMMENT ON COLUMN crm.rfm_segment_map.r IS 'Recency score 1..5.';
COMMENT ON COLUMN crm.rfm_segment_map.f IS 'Frequency score 1..5.';
COMMENT ON COLUMN crm.rfm_segment_map.segment IS 'The segment of the R x F cell in force (crm.rfm_segment).';
COMMENT ON COLUMN crm.rfm_segment_map.overridden IS 'True when a row of crm.rfm_segment_overrides changed the cell from the default map.';
COMMENT ON COLUMN crm.status_stage_times.entity_table IS 'The attached table of the entity.';
COMMENT ON COLUMN crm.status_stage_times.entity_key IS 'Key of the entity, as text.';
COMMENT ON COLUMN crm.status_stage_times.status IS 'The status the entity stayed in.';
COMMENT ON COLUMN crm.status_stage_times.entered_at IS 'When the entity entered the status.';
COMMENT ON COLUMN crm.status_stage_times.left_at IS 'When it left the status; NULL while it is still in it.';
COMMENT ON COLUMN crm.status_stage_times.next_status IS 'The status it moved to; NULL while it is still in this one.';
COMMENT ON COLUMN crm.status_stage_times.time_in_stage IS 'left_at - entered_at; NULL while the entity is still in the status.';

-- crm.load_demo: progress steps; client_min_messages no longer pinned (only DROP SCHEMA's notice is silenced)
CREATE OR REPLACE FUNCTION crm.load_demo(customers int DEFAULT 5000, seed int DEFAULT 42, as_of date DEFAULT current_date)
RETURNS TABLE(relation text, row_count bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_n       int := customers;
    v_seed    int := seed;
    v_end     timestamptz;
    v_start   timestamptz;
    v_leads   int;
    v_mgrs    int;
    v_comment text;
    -- the caller's client_min_messages: DROP SCHEMA's notice is silenced,
    -- the progress notices are not (crm._progress, docs/demo.md)
    v_cmm     text := current_setting('client_min_messages');
    v_steps   constant int := 15;
BEGIN
    IF v_n IS NULL OR v_seed IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'customers, seed and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_n <= 0 OR v_n > 1000000 THEN
        RAISE EXCEPTION 'customers must be between 1 and 1000000, got %', v_n
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The demo is a small CRM: 5000 customers is the default, 100000 loads in well under a minute.';
    END IF;
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Only ever replace a crm_demo schema that load_demo made.
    SELECT obj_description(n.oid, 'pg_namespace') INTO v_comment
      FROM pg_namespace n WHERE n.nspname = 'crm_demo';
    IF FOUND THEN
        IF v_comment IS DISTINCT FROM 'crm_analytics demo data (crm.load_demo)' THEN
            RAISE EXCEPTION 'schema "crm_demo" exists and was not made by crm.load_demo'
                USING ERRCODE = 'duplicate_schema',
                      HINT = 'Rename or drop that schema first; load_demo replaces only its own.';
        END IF;
        PERFORM set_config('client_min_messages', 'warning', true);
        DROP SCHEMA crm_demo CASCADE;
        PERFORM set_config('client_min_messages', v_cmm, true);
    END IF;
    CREATE SCHEMA crm_demo;
    COMMENT ON SCHEMA crm_demo IS 'crm_analytics demo data (crm.load_demo)';

    IF to_regclass('pg_temp.demo_path') IS NOT NULL THEN
        DROP TABLE pg_temp.demo_path, pg_temp.demo_product_cdf, pg_temp.demo_orders, pg_temp.demo_touch;
    END IF;
    v_end   := as_of::timestamp AT TIME ZONE 'UTC';
    v_start := v_end - interval '730 days';
    v_leads := 3 * v_n;
    v_mgrs  := greatest(3, least(50, v_n / 400));

    -- channels and what one lead costs there
    CREATE TABLE crm_demo.channels (channel text PRIMARY KEY, cost_per_lead numeric NOT NULL);
    INSERT INTO crm_demo.channels VALUES
        ('search_ads', 45), ('social_ads', 28), ('organic', 0), ('referral', 12), ('events', 110);

    CREATE TABLE crm_demo.managers (manager_id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO crm_demo.managers
    SELECT m, 'Manager ' || m FROM generate_series(1, v_mgrs) m;

    PERFORM crm._progress('crm.load_demo: deal paths of the leads', 0, v_steps);
    -- one row per lead with its whole deal path; turned into the real tables below
    CREATE TEMP TABLE demo_path ON COMMIT DROP AS
    WITH l AS (
        SELECT id,
               CASE WHEN u_ch < 0.30 THEN 'search_ads' WHEN u_ch < 0.60 THEN 'social_ads'
                    WHEN u_ch < 0.80 THEN 'organic' WHEN u_ch < 0.90 THEN 'referral' ELSE 'events' END AS channel,
               -- two yearly seasons: more leads in spring and autumn
               v_start + interval '730 days' * (u_t - 0.35 * sin(4 * pi() * u_t) / (4 * pi())) AS created_at,
               1 + floor(crm._demo_random(v_seed, 3, id) * v_mgrs)::int AS manager_id,
               crm._demo_random(v_seed, 4, id) AS u_score,
               crm._demo_random(v_seed, 5, id) AS u_reach
          FROM (SELECT id, crm._demo_random(v_seed, 1, id) AS u_ch, crm._demo_random(v_seed, 2, id) AS u_t
                  FROM generate_series(1, v_leads) id) s
    ), scored AS (
        SELECT l.*,
               u_score * CASE channel WHEN 'referral' THEN 1.3 WHEN 'organic' THEN 1.15 WHEN 'search_ads' THEN 1.0
                                      WHEN 'events' THEN 0.95 ELSE 0.8 END AS score
          FROM l
    ), ranked AS (
        SELECT s.*,
               created_at <= v_end - interval '35 days'
               AND row_number() OVER (PARTITION BY created_at <= v_end - interval '35 days'
                                      ORDER BY score DESC, id) <= v_n AS converts
          FROM scored s
    ), gaps AS (
        SELECT r.*,
               -- days between stages: exponential, capped at 7 days for deals that close
               least(-ln(1 - crm._demo_random(v_seed, 12, id)) * 2, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g2,
               least(-ln(1 - crm._demo_random(v_seed, 13, id)) * 5, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g3,
               least(-ln(1 - crm._demo_random(v_seed, 14, id)) * 4, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g4,
               least(-ln(1 - crm._demo_random(v_seed, 15, id)) * 7, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g5,
               CASE WHEN converts THEN 5
                    WHEN u_reach < 0.45 THEN 1 WHEN u_reach < 0.70 THEN 2 WHEN u_reach < 0.87 THEN 3 ELSE 4 END AS reach,
               round((CASE channel WHEN 'events' THEN 1500 WHEN 'referral' THEN 1000 WHEN 'search_ads' THEN 700
                                   WHEN 'organic' THEN 800 ELSE 400 END
                      * exp(0.5 * sqrt(-2 * ln(1 - crm._demo_random(v_seed, 20, id)))
                                 * cos(2 * pi() * crm._demo_random(v_seed, 21, id))))::numeric, 2) AS amount
          FROM ranked r
    )
    SELECT id, channel, created_at, manager_id, converts, reach, amount,
           created_at + interval '1 day' * g2 AS t2,
           created_at + interval '1 day' * (g2 + g3) AS t3,
           created_at + interval '1 day' * (g2 + g3 + g4) AS t4,
           created_at + interval '1 day' * (g2 + g3 + g4 + g5) AS t5,
           crm._demo_random(v_seed, 22, id) AS u_lost,
           crm._demo_random(v_seed, 23, id) AS u_reason,
           crm._demo_random(v_seed, 24, id) AS u_lost_gap
      FROM gaps;

    -- stage times after as_of have not happened yet
    UPDATE demo_path SET reach = CASE WHEN t2 > v_end THEN 1 WHEN t3 > v_end THEN 2 WHEN t4 > v_end THEN 3 ELSE 4 END
     WHERE NOT converts AND ((reach >= 2 AND t2 > v_end) OR (reach >= 3 AND t3 > v_end) OR (reach >= 4 AND t4 > v_end));

    PERFORM crm._progress('crm.load_demo: crm_demo.customers', 1, v_steps);
    CREATE TABLE crm_demo.customers (
        customer_id bigint PRIMARY KEY, lead_id bigint NOT NULL, name text NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, created_at timestamptz NOT NULL);
    INSERT INTO crm_demo.customers
    SELECT row_number() OVER (ORDER BY t5, id), id, '', channel, manager_id, t5
      FROM demo_path WHERE converts;
    UPDATE crm_demo.customers SET name = 'Customer ' || customer_id;

    PERFORM crm._progress('crm.load_demo: crm_demo.leads', 2, v_steps);
    CREATE TABLE crm_demo.leads (
        lead_id bigint PRIMARY KEY, created_at timestamptz NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, customer_id bigint);
    INSERT INTO crm_demo.leads
    SELECT p.id, p.created_at, p.channel, p.manager_id, c.customer_id
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     ORDER BY p.id;

    PERFORM crm._progress('crm.load_demo: crm_demo.deals', 3, v_steps);
    CREATE TABLE crm_demo.deals (
        deal_id bigint PRIMARY KEY, lead_id bigint NOT NULL, customer_id bigint, manager_id int NOT NULL,
        channel text NOT NULL, created_at timestamptz NOT NULL, stage text NOT NULL, amount numeric NOT NULL,
        lost_reason text, closed_at timestamptz);
    INSERT INTO crm_demo.deals
    SELECT d.id, d.id, c.customer_id, d.manager_id, d.channel, d.created_at,
           CASE WHEN d.converts THEN 'paid' WHEN d.lost THEN 'lost'
                ELSE (ARRAY['lead','qualified','proposal','invoice'])[d.reach] END,
           d.amount,
           CASE WHEN d.lost THEN
                CASE WHEN d.reach = 4 THEN 'no payment'
                     ELSE (ARRAY['price','no budget','competitor','no response','not a fit'])[1 + floor(d.u_reason * 5)::int] END
           END,
           CASE WHEN d.converts THEN d.t5 WHEN d.lost THEN d.lost_at END
      FROM (SELECT p.*,
                   (ARRAY[p.created_at, p.t2, p.t3, p.t4])[least(p.reach, 4)]
                     + interval '1 day' * (5 + 25 * p.u_lost_gap) AS lost_at,
                   NOT p.converts
                   AND (ARRAY[p.created_at, p.t2, p.t3, p.t4])[least(p.reach, 4)]
                       + interval '1 day' * (5 + 25 * p.u_lost_gap) <= v_end
                   AND (p.reach < 4 OR p.u_lost < 0.6) AS lost
              FROM demo_path p) d
      LEFT JOIN crm_demo.customers c ON c.lead_id = d.id
     ORDER BY d.id;

    PERFORM crm._progress('crm.load_demo: crm_demo.deal_events', 4, v_steps);
    CREATE TABLE crm_demo.deal_events (deal_id bigint NOT NULL, changed_at timestamptz NOT NULL, stage text NOT NULL);
    INSERT INTO crm_demo.deal_events
    SELECT e.deal_id, e.changed_at, e.stage
      FROM (SELECT p.id AS deal_id, s.k, s.stage,
                   (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] AS changed_at
              FROM demo_path p
              JOIN LATERAL unnest(ARRAY['lead','qualified','proposal','invoice','paid']) WITH ORDINALITY AS s(stage, k)
                ON s.k <= p.reach
            UNION ALL
            SELECT d.deal_id, 6, 'lost', d.closed_at FROM crm_demo.deals d WHERE d.stage = 'lost') e
     ORDER BY e.deal_id, e.k;

    PERFORM crm._progress('crm.load_demo: crm_demo.invoices', 5, v_steps);
    CREATE TABLE crm_demo.invoices (
        invoice_id bigint PRIMARY KEY, deal_id bigint NOT NULL, customer_id bigint, issued_at timestamptz NOT NULL,
        due_at timestamptz NOT NULL, amount numeric NOT NULL, paid_at timestamptz);
    INSERT INTO crm_demo.invoices
    SELECT p.id, p.id, c.customer_id, p.t4, p.t4 + interval '14 days', p.amount,
           CASE WHEN p.converts THEN p.t5 END
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     WHERE p.reach >= 4
     ORDER BY p.id;

    PERFORM crm._progress('crm.load_demo: crm_demo.products', 6, v_steps);
    -- products: Zipf-like popularity (ABC), every third one seasonal (Nov-Dec), every third erratic (XYZ)
    CREATE TABLE crm_demo.products (
        product_id int PRIMARY KEY, name text NOT NULL, category text NOT NULL, price numeric NOT NULL,
        unit_cost numeric NOT NULL);
    INSERT INTO crm_demo.products
    SELECT p, 'Product ' || p, (ARRAY['software','hardware','services','training'])[1 + p % 4],
           round((20 + 480 * crm._demo_random(v_seed, 30, p) ^ 2)::numeric, 2),
           0
      FROM generate_series(1, 40) p;
    UPDATE crm_demo.products
       SET unit_cost = round(price * (0.4 + 0.3 * crm._demo_random(v_seed, 31, product_id))::numeric, 2);

    CREATE TEMP TABLE demo_product_cdf ON COMMIT DROP AS
    SELECT m, product_id,
           coalesce(sum(w) OVER (PARTITION BY m ORDER BY product_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
             / sum(w) OVER (PARTITION BY m) AS lo,
           sum(w) OVER (PARTITION BY m ORDER BY product_id) / sum(w) OVER (PARTITION BY m) AS hi
      FROM (SELECT m, product_id,
                   power(product_id, -1.1)
                   * CASE product_id % 3
                         WHEN 0 THEN CASE WHEN m IN (11, 12) THEN 4.0 ELSE 0.3 END
                         WHEN 2 THEN 0.2 + 1.6 * crm._demo_random(v_seed, 32, product_id * 100 + m)
                         ELSE 1.0 END AS w
              FROM crm_demo.products, generate_series(1, 12) m) s;

    PERFORM crm._progress('crm.load_demo: order dates', 7, v_steps);
    -- orders: the paid deal is the first order; repeat orders while the customer stays
    CREATE TEMP TABLE demo_orders ON COMMIT DROP AS
    SELECT c.customer_id, 0 AS j, c.created_at AS ordered_at, d.amount AS deal_amount,
           crm._demo_random(v_seed, 44, c.customer_id * 64) AS u_prod,
           crm._demo_random(v_seed, 45, c.customer_id * 64) AS u_qty
      FROM crm_demo.customers c JOIN crm_demo.deals d ON d.deal_id = c.lead_id
    UNION ALL
    SELECT r.customer_id, j.j,
           r.created_at + (r.span * crm._demo_random(v_seed, 43, r.customer_id * 64 + j.j)),
           NULL,
           crm._demo_random(v_seed, 44, r.customer_id * 64 + j.j),
           crm._demo_random(v_seed, 45, r.customer_id * 64 + j.j)
      FROM (SELECT c.customer_id, c.created_at, s.span,
                   least(60, floor(0.25 * -ln(1 - crm._demo_random(v_seed, 40, c.customer_id))
                                   * extract(epoch FROM s.span) / 2629800
                                   + crm._demo_random(v_seed, 42, c.customer_id)))::int AS k
              FROM crm_demo.customers c
              CROSS JOIN LATERAL (SELECT least(v_end - c.created_at,
                                               interval '1 day' * 30.44 * 10 * -ln(1 - crm._demo_random(v_seed, 41, c.customer_id))) AS span) s) r
      JOIN LATERAL generate_series(1, r.k) AS j(j) ON true;

    PERFORM crm._progress('crm.load_demo: crm_demo.orders', 8, v_steps);
    CREATE TABLE crm_demo.orders (
        order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, ordered_at timestamptz NOT NULL,
        product_id int NOT NULL, quantity int NOT NULL, amount numeric NOT NULL, cost numeric NOT NULL);
    INSERT INTO crm_demo.orders
    SELECT row_number() OVER (ORDER BY o.ordered_at, o.customer_id, o.j),
           o.customer_id, o.ordered_at, f.product_id, q.qty,
           coalesce(o.deal_amount, p.price * q.qty),
           round(coalesce(o.deal_amount, p.price * q.qty) * p.unit_cost / p.price, 2)
      FROM demo_orders o
      CROSS JOIN LATERAL (SELECT CASE WHEN o.deal_amount IS NULL THEN 1 + floor(-ln(1 - o.u_qty) * 1.5)::int ELSE 1 END AS qty) q
      JOIN demo_product_cdf f ON f.m = extract(month FROM o.ordered_at AT TIME ZONE 'UTC')::int
                             AND o.u_prod >= f.lo AND o.u_prod < f.hi
      JOIN crm_demo.products p ON p.product_id = f.product_id;

    PERFORM crm._progress('crm.load_demo: crm_demo.spend', 9, v_steps);
    -- marketing spend per channel and month: leads there x cost per lead, +-10 %
    CREATE TABLE crm_demo.spend (channel text NOT NULL, month date NOT NULL, amount numeric NOT NULL,
                                 PRIMARY KEY (channel, month));
    INSERT INTO crm_demo.spend
    SELECT l.channel, l.month,
           round(l.n * ch.cost_per_lead * (0.9 + 0.2 * crm._demo_random(v_seed, 50, hashtext(l.channel || l.month::text))))::numeric
      FROM (SELECT channel, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n
              FROM crm_demo.leads GROUP BY 1, 2) l
      JOIN crm_demo.channels ch USING (channel)
     WHERE ch.cost_per_lead > 0
     ORDER BY 1, 2;

    PERFORM crm._progress('crm.load_demo: interaction dates', 10, v_steps);
    -- interactions: first responses to leads, touches along deals, account care, mailings
    CREATE TEMP TABLE demo_touch ON COMMIT DROP AS
    -- (a) first response to a lead: lognormal delay (median 20 min); 8 % of non-buyers never answered
    SELECT NULL::bigint AS customer_id, p.id AS lead_id, p.manager_id, 'call' AS kind, 'outbound' AS direction,
           false AS automated,
           p.created_at + interval '1 minute'
               * least(4320, exp(ln(20) + 1.5 * sqrt(-2 * ln(1 - crm._demo_random(v_seed, 60, p.id)))
                                               * cos(2 * pi() * crm._demo_random(v_seed, 61, p.id)))) AS occurred_at,
           1 AS src, p.id AS key
      FROM demo_path p
     WHERE p.converts OR p.reach > 1 OR crm._demo_random(v_seed, 62, p.id) >= 0.15
    UNION ALL
    -- (b) a meeting or call before each stage change, an inbound email now and then
    SELECT NULL, p.id, p.manager_id,
           CASE WHEN crm._demo_random(v_seed, 63, p.id * 8 + s.k) < 0.5 THEN 'meeting' ELSE 'call' END,
           'outbound', false,
           (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] - interval '2 hours', 2, p.id * 8 + s.k
      FROM demo_path p JOIN generate_series(2, 5) s(k) ON s.k <= p.reach
    UNION ALL
    SELECT NULL, p.id, p.manager_id, 'email', 'inbound', false,
           (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] - interval '1 day', 3, p.id * 8 + s.k
      FROM demo_path p JOIN generate_series(2, 5) s(k) ON s.k <= p.reach
     WHERE crm._demo_random(v_seed, 64, p.id * 8 + s.k) < 0.5
    UNION ALL
    -- (c) account care after the first purchase, each customer at their own (sometimes neglected) cadence
    SELECT c.customer_id, NULL, c.manager_id,
           CASE WHEN crm._demo_random(v_seed, 71, c.customer_id * 256 + j) < 0.6 THEN 'call'
                WHEN crm._demo_random(v_seed, 71, c.customer_id * 256 + j) < 0.85 THEN 'email' ELSE 'meeting' END,
           CASE WHEN crm._demo_random(v_seed, 72, c.customer_id * 256 + j) < 0.8 THEN 'outbound' ELSE 'inbound' END,
           false,
           c.created_at + interval '1 day' * cad.days * (j + 0.3 * crm._demo_random(v_seed, 73, c.customer_id * 256 + j)),
           4, c.customer_id * 256 + j
      FROM crm_demo.customers c
      CROSS JOIN LATERAL (SELECT 20 + 160 * crm._demo_random(v_seed, 70, c.customer_id) AS days) cad
      JOIN LATERAL generate_series(1, least(200, floor(extract(epoch FROM v_end - c.created_at) / 86400 / cad.days)::int)) j ON true
    UNION ALL
    -- (d) the automated quarterly newsletter to every customer
    SELECT c.customer_id, NULL, c.manager_id, 'mailing', 'outbound', true,
           q.at + interval '9 hours', 5, c.customer_id * 16 + row_number() OVER (PARTITION BY c.customer_id ORDER BY q.at)
      FROM crm_demo.customers c
      JOIN generate_series(date_trunc('quarter', v_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', v_end, interval '3 months') q(at)
        ON q.at > c.created_at;

    PERFORM crm._progress('crm.load_demo: crm_demo.interactions', 11, v_steps);
    CREATE TABLE crm_demo.interactions (
        interaction_id bigint PRIMARY KEY, customer_id bigint, lead_id bigint, manager_id int NOT NULL,
        kind text NOT NULL, direction text NOT NULL, automated boolean NOT NULL, occurred_at timestamptz NOT NULL);
    INSERT INTO crm_demo.interactions
    SELECT row_number() OVER (ORDER BY occurred_at, src, key), customer_id, lead_id, manager_id, kind, direction,
           automated, occurred_at
      FROM demo_touch WHERE occurred_at <= v_end;

    PERFORM crm._progress('crm.load_demo: indexes', 12, v_steps);
    CREATE INDEX ON crm_demo.deal_events (deal_id, changed_at);
    CREATE INDEX ON crm_demo.orders (customer_id, ordered_at);
    CREATE INDEX ON crm_demo.interactions (customer_id, occurred_at);
    CREATE INDEX ON crm_demo.interactions (lead_id, occurred_at);
    -- the dashboard reads a period of interactions: a CRM indexes their time
    CREATE INDEX ON crm_demo.interactions (occurred_at);
    CREATE INDEX ON crm_demo.leads (created_at);
    CREATE INDEX ON crm_demo.invoices (deal_id);
    PERFORM crm._progress('crm.load_demo: ANALYZE', 13, v_steps);
    ANALYZE crm_demo.channels, crm_demo.managers, crm_demo.customers, crm_demo.leads, crm_demo.deals,
            crm_demo.deal_events, crm_demo.invoices, crm_demo.products, crm_demo.orders, crm_demo.spend,
            crm_demo.interactions;

    DROP TABLE pg_temp.demo_path, pg_temp.demo_product_cdf, pg_temp.demo_orders, pg_temp.demo_touch;

    PERFORM crm._progress('crm.load_demo: registering the demo sources', 14, v_steps);
    -- let the source registry (owner dashboard) know about the demo tables
    IF to_regprocedure('crm._register_demo_sources()') IS NOT NULL THEN
        EXECUTE 'SELECT crm._register_demo_sources()';
    END IF;

    PERFORM crm._progress('crm.load_demo: finished', 15, v_steps);
    RETURN QUERY
    SELECT t.rel, t.cnt FROM (
        SELECT 'crm_demo.channels' AS rel, (SELECT count(*) FROM crm_demo.channels) AS cnt, 1 AS o
        UNION ALL SELECT 'crm_demo.managers', (SELECT count(*) FROM crm_demo.managers), 2
        UNION ALL SELECT 'crm_demo.leads', (SELECT count(*) FROM crm_demo.leads), 3
        UNION ALL SELECT 'crm_demo.deals', (SELECT count(*) FROM crm_demo.deals), 4
        UNION ALL SELECT 'crm_demo.deal_events', (SELECT count(*) FROM crm_demo.deal_events), 5
        UNION ALL SELECT 'crm_demo.invoices', (SELECT count(*) FROM crm_demo.invoices), 6
        UNION ALL SELECT 'crm_demo.customers', (SELECT count(*) FROM crm_demo.customers), 7
        UNION ALL SELECT 'crm_demo.products', (SELECT count(*) FROM crm_demo.products), 8
        UNION ALL SELECT 'crm_demo.orders', (SELECT count(*) FROM crm_demo.orders), 9
        UNION ALL SELECT 'crm_demo.spend', (SELECT count(*) FROM crm_demo.spend), 10
        UNION ALL SELECT 'crm_demo.interactions', (SELECT count(*) FROM crm_demo.interactions), 11) t
    ORDER BY t.o;
END
$fn$;
COMMENT ON FUNCTION crm.load_demo(int, int, date) IS
'Creates (or replaces) schema crm_demo with a deterministic demo CRM of the given number of customers: leads from five channels with monthly spend, deals through lead -> qualified -> proposal -> invoice -> paid (or lost, with a reason), invoices (some never paid), repeat orders over 24 months before as_of, interactions, managers. Same arguments, same data.';
-- ==== end of section bi ====


-- ==== section html: the HTML report and the demo ====
-- ==== end of section html ====
