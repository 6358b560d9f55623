-- dashboard_plans.sql: plans (targets) and plan against fact (docs/sales.md).
--
-- crm.plans holds one target per metric, period and (optionally) channel or
-- manager; crm.set_plan / crm.delete_plan edit it.  crm.dashboard_plan_fact
-- computes every fact through the one implementation of the metric
-- (crm.owner_dashboard, crm.dashboard_channels, crm.dashboard_managers), once
-- per report and call, and adds a run-rate forecast for a running period.

-- ---------------------------------------------------------------------------
-- The plannable metrics
-- ---------------------------------------------------------------------------

-- One row per metric a plan may name: the dimension (NULL = the whole
-- business), the report that computes it, the report column and the kind:
--   flow  = summed over the days of the period (the forecast extrapolates it),
--   ratio = a rate or an average (the forecast is the fact so far),
--   stock = a level at the end of the period (the forecast is the fact so far).
-- Names: owner level as crm.owner_dashboard's metric column; per channel and
-- per manager as the metric column of crm.v_channels and crm.v_managers.
CREATE FUNCTION crm.plan_metrics()
RETURNS TABLE (dimension text, metric text, kind text, report text, report_column text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT v.dimension, v.metric, v.kind, v.report, v.report_column
  FROM (VALUES
    (1,  NULL, 'leads_in', 'flow', 'crm.owner_dashboard', 'value'),
    (2,  NULL, 'new_buyers', 'flow', 'crm.owner_dashboard', 'value'),
    (3,  NULL, 'lead_to_buyer_conversion', 'ratio', 'crm.owner_dashboard', 'value'),
    (4,  NULL, 'marketing_spend', 'flow', 'crm.owner_dashboard', 'value'),
    (5,  NULL, 'cac', 'ratio', 'crm.owner_dashboard', 'value'),
    (6,  NULL, 'revenue', 'flow', 'crm.owner_dashboard', 'value'),
    (7,  NULL, 'orders', 'flow', 'crm.owner_dashboard', 'value'),
    (8,  NULL, 'average_check', 'ratio', 'crm.owner_dashboard', 'value'),
    (9,  NULL, 'repeat_purchase_rate', 'ratio', 'crm.owner_dashboard', 'value'),
    (10, NULL, 'gross_profit', 'flow', 'crm.owner_dashboard', 'value'),
    (11, NULL, 'roi', 'ratio', 'crm.owner_dashboard', 'value'),
    (12, NULL, 'win_rate', 'ratio', 'crm.owner_dashboard', 'value'),
    (13, NULL, 'deals_won', 'flow', 'crm.owner_dashboard', 'value'),
    (14, NULL, 'average_won_deal', 'ratio', 'crm.owner_dashboard', 'value'),
    (15, NULL, 'sales_cycle', 'ratio', 'crm.owner_dashboard', 'value'),
    (16, NULL, 'open_deals', 'stock', 'crm.owner_dashboard', 'value'),
    (17, NULL, 'open_pipeline_value', 'stock', 'crm.owner_dashboard', 'value'),
    (18, NULL, 'weighted_pipeline', 'stock', 'crm.owner_dashboard', 'value'),
    (19, NULL, 'stale_deals', 'stock', 'crm.owner_dashboard', 'value'),
    (20, NULL, 'stale_pipeline_value', 'stock', 'crm.owner_dashboard', 'value'),
    (21, NULL, 'sales_velocity', 'ratio', 'crm.owner_dashboard', 'value'),
    (22, NULL, 'deals_lost', 'flow', 'crm.owner_dashboard', 'value'),
    (23, NULL, 'lost_deal_value', 'flow', 'crm.owner_dashboard', 'value'),
    (24, NULL, 'unpaid_invoices', 'stock', 'crm.owner_dashboard', 'value'),
    (25, NULL, 'unpaid_invoice_amount', 'stock', 'crm.owner_dashboard', 'value'),
    (26, NULL, 'unpaid_invoice_age', 'ratio', 'crm.owner_dashboard', 'value'),
    (27, NULL, 'overdue_invoices', 'stock', 'crm.owner_dashboard', 'value'),
    (28, NULL, 'overdue_invoice_amount', 'stock', 'crm.owner_dashboard', 'value'),
    (29, NULL, 'unanswered_leads', 'flow', 'crm.owner_dashboard', 'value'),
    (30, NULL, 'unanswered_leads_cost', 'flow', 'crm.owner_dashboard', 'value'),
    (31, NULL, 'overdue_class_a_customers', 'stock', 'crm.owner_dashboard', 'value'),
    (32, NULL, 'buyers', 'stock', 'crm.owner_dashboard', 'value'),
    (33, NULL, 'churned_customers', 'stock', 'crm.owner_dashboard', 'value'),
    (34, NULL, 'churn_rate', 'ratio', 'crm.owner_dashboard', 'value'),
    (35, NULL, 'churned_revenue', 'stock', 'crm.owner_dashboard', 'value'),
    (36, NULL, 'lost_opportunity_cost', 'ratio', 'crm.owner_dashboard', 'value'),
    (101, 'channel', 'leads', 'flow', 'crm.dashboard_channels', 'leads'),
    (102, 'channel', 'new_buyers', 'flow', 'crm.dashboard_channels', 'new_buyers'),
    (103, 'channel', 'conversion', 'ratio', 'crm.dashboard_channels', 'conversion_pct'),
    (104, 'channel', 'revenue', 'flow', 'crm.dashboard_channels', 'revenue'),
    (105, 'channel', 'gross_profit', 'flow', 'crm.dashboard_channels', 'gross_profit'),
    (106, 'channel', 'spend', 'flow', 'crm.dashboard_channels', 'spend'),
    (107, 'channel', 'cac', 'ratio', 'crm.dashboard_channels', 'cac'),
    (108, 'channel', 'roi', 'ratio', 'crm.dashboard_channels', 'roi_pct'),
    (109, 'channel', 'ltv', 'ratio', 'crm.dashboard_channels', 'ltv'),
    (110, 'channel', 'ltv_cac', 'ratio', 'crm.dashboard_channels', 'ltv_cac'),
    (201, 'manager', 'leads', 'flow', 'crm.dashboard_managers', 'leads'),
    (202, 'manager', 'answered_leads', 'flow', 'crm.dashboard_managers', 'answered_leads'),
    (203, 'manager', 'unanswered_leads', 'flow', 'crm.dashboard_managers', 'unanswered_leads'),
    (204, 'manager', 'median_response', 'ratio', 'crm.dashboard_managers', 'median_response_minutes'),
    (205, 'manager', 'deals_won', 'flow', 'crm.dashboard_managers', 'deals_won'),
    (206, 'manager', 'deals_lost', 'flow', 'crm.dashboard_managers', 'deals_lost'),
    (207, 'manager', 'win_rate', 'ratio', 'crm.dashboard_managers', 'win_rate_pct'),
    (208, 'manager', 'revenue', 'flow', 'crm.dashboard_managers', 'revenue'),
    (209, 'manager', 'customers', 'stock', 'crm.dashboard_managers', 'customers'),
    (210, 'manager', 'covered_customers', 'stock', 'crm.dashboard_managers', 'covered_customers'),
    (211, 'manager', 'coverage', 'ratio', 'crm.dashboard_managers', 'coverage_pct'),
    (212, 'manager', 'calls', 'flow', 'crm.dashboard_managers', 'calls'),
    (213, 'manager', 'meetings', 'flow', 'crm.dashboard_managers', 'meetings'),
    (214, 'manager', 'emails', 'flow', 'crm.dashboard_managers', 'emails'),
    (215, 'manager', 'contacts', 'flow', 'crm.dashboard_managers', 'contacts'),
    (216, 'manager', 'average_won_deal', 'ratio', 'crm.dashboard_managers', 'average_won_deal'),
    (217, 'manager', 'sales_cycle', 'ratio', 'crm.dashboard_managers', 'sales_cycle_days')
  ) AS v(ord, dimension, metric, kind, report, report_column)
 ORDER BY v.ord
$$;
COMMENT ON FUNCTION crm.plan_metrics() IS
'The metrics a plan may name, per dimension (NULL = the whole business, channel, manager): the report and column that compute the fact, and the kind (flow: summed over the days, forecast by run rate; ratio and stock: forecast = fact so far).';

-- ---------------------------------------------------------------------------
-- The plans table
-- ---------------------------------------------------------------------------

CREATE TABLE crm.plans (
    metric      text NOT NULL,
    period_from date NOT NULL,
    period_to   date NOT NULL,
    dimension   text CHECK (dimension IN ('channel', 'manager')),
    key         text,
    target      numeric NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by      name NOT NULL DEFAULT CURRENT_USER,
    CONSTRAINT plans_key UNIQUE NULLS NOT DISTINCT (metric, period_from, period_to, dimension, key),
    CHECK (period_from <= period_to AND isfinite(period_from) AND isfinite(period_to)),
    CHECK ((dimension IS NULL) = (key IS NULL)),
    CHECK (target NOT IN ('NaN', 'Infinity', '-Infinity'))
);
COMMENT ON TABLE crm.plans IS
'Plans (targets): one per metric (crm.plan_metrics), period [period_from, period_to] (inclusive dates) and, optionally, channel or manager (dimension, key). Edit with crm.set_plan and crm.delete_plan; crm.dashboard_plan_fact sets them against the facts.';
SELECT pg_catalog.pg_extension_config_dump('crm.plans', '');
-- readable by everyone (BI reads crm.v_plan_fact with its own rights), as
-- crm.pipeline_stages; only the owner (or whoever is granted more) edits them
GRANT SELECT ON crm.plans TO PUBLIC;

-- The dimension and key checks set_plan and delete_plan share.
CREATE FUNCTION crm._plan_check_key(fname text, dimension text, key text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF dimension IS NOT NULL AND dimension NOT IN ('channel', 'manager') THEN
        RAISE EXCEPTION '%: unknown plan dimension "%"', fname, dimension
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Dimensions are NULL (the whole business), ''channel'' and ''manager''.';
    END IF;
    IF dimension IS NULL AND key IS NOT NULL THEN
        RAISE EXCEPTION '%: a key (%) needs a dimension', fname, key
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass dimension => ''channel'' or ''manager'' with the key, or no key for a plan of the whole business.';
    END IF;
    IF dimension IS NOT NULL AND key IS NULL THEN
        RAISE EXCEPTION '%: a plan per % needs the % as key', fname, dimension, dimension
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = CASE dimension WHEN 'channel' THEN 'Pass key => the channel name, e.g. ''search_ads''.'
                                        ELSE 'Pass key => the manager_id as text, e.g. ''3''.' END;
    END IF;
END
$$;
COMMENT ON FUNCTION crm._plan_check_key(text, text, text) IS
'Raises a clear error for an unknown plan dimension, a key without a dimension or a dimension without a key.';

CREATE FUNCTION crm.set_plan(metric text, period_from date, period_to date, target numeric,
                             dimension text DEFAULT NULL, key text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    known text;
BEGIN
    IF metric IS NULL THEN
        RAISE EXCEPTION 'crm.set_plan: metric must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'See SELECT * FROM crm.plan_metrics() for the metrics a plan may name.';
    END IF;
    PERFORM crm._plan_check_key('crm.set_plan', dimension, key);
    IF NOT EXISTS (SELECT 1 FROM crm.plan_metrics() m
                    WHERE m.metric = set_plan.metric AND m.dimension IS NOT DISTINCT FROM set_plan.dimension) THEN
        SELECT string_agg(m.metric, ', ' ORDER BY m.ord) INTO known
          FROM crm.plan_metrics() WITH ORDINALITY AS m(dimension, metric, kind, report, report_column, ord)
         WHERE m.dimension IS NOT DISTINCT FROM set_plan.dimension;
        RAISE EXCEPTION 'crm.set_plan: unknown metric "%" for %', metric,
                        coalesce('dimension ' || dimension, 'a plan of the whole business')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = pg_catalog.format('Plannable metrics %s: %s.',
                                           coalesce('per ' || dimension, 'of the whole business'), known);
    END IF;
    PERFORM crm._period_bounds('crm.set_plan', period_from, period_to);
    IF target IS NULL THEN
        RAISE EXCEPTION 'crm.set_plan: target must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'To remove a plan, call crm.delete_plan(metric, period_from, period_to, dimension, key).';
    END IF;
    IF target IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'crm.set_plan: target must be a finite number, got %', target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO crm.plans AS p (metric, period_from, period_to, dimension, key, target)
    VALUES (set_plan.metric, set_plan.period_from, set_plan.period_to, set_plan.dimension, set_plan.key, set_plan.target)
    ON CONFLICT ON CONSTRAINT plans_key
    DO UPDATE SET target = excluded.target, set_at = now(), set_by = CURRENT_USER;
END
$$;
COMMENT ON FUNCTION crm.set_plan(text, date, date, numeric, text, text) IS
'Sets (or replaces) the target of a metric (crm.plan_metrics) for the period [from, to] (inclusive dates), for the whole business or per channel or manager (dimension, key).';

CREATE FUNCTION crm.delete_plan(metric text, period_from date, period_to date,
                                dimension text DEFAULT NULL, key text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF metric IS NULL THEN
        RAISE EXCEPTION 'crm.delete_plan: metric must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._plan_check_key('crm.delete_plan', dimension, key);
    PERFORM crm._period_bounds('crm.delete_plan', period_from, period_to);
    DELETE FROM crm.plans p
     WHERE p.metric = delete_plan.metric AND p.period_from = delete_plan.period_from AND p.period_to = delete_plan.period_to
       AND p.dimension IS NOT DISTINCT FROM delete_plan.dimension AND p.key IS NOT DISTINCT FROM delete_plan.key;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n > 0;
END
$$;
COMMENT ON FUNCTION crm.delete_plan(text, date, date, text, text) IS
'Removes the plan of a metric for the period [from, to] (and channel or manager); true if there was one.';

-- ---------------------------------------------------------------------------
-- Plan against fact
-- ---------------------------------------------------------------------------

-- What crm.dashboard_plan_fact needs: the last day the facts cover
-- (least(as_of, period_to); NULL when as_of is before the period) and which
-- reports the plans of exactly that period name.
CREATE FUNCTION crm._plan_fact_needs(period_from date, period_to date, as_of date,
                                     OUT fact_to date, OUT need_owner boolean,
                                     OUT need_channels boolean, OUT need_managers boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._period_bounds('crm.dashboard_plan_fact', period_from, period_to);
    IF as_of IS NOT NULL AND NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'crm.dashboard_plan_fact: as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass a real date, or NULL for today.';
    END IF;
    as_of := coalesce(as_of, current_date);
    fact_to := CASE WHEN as_of >= period_from THEN least(as_of, period_to) END;
    SELECT coalesce(bool_or(p.dimension IS NULL), false), coalesce(bool_or(p.dimension = 'channel'), false),
           coalesce(bool_or(p.dimension = 'manager'), false)
      INTO need_owner, need_channels, need_managers
      FROM crm.plans p
     WHERE p.period_from = _plan_fact_needs.period_from AND p.period_to = _plan_fact_needs.period_to;
    IF fact_to IS NULL THEN
        need_owner := false; need_channels := false; need_managers := false;
    END IF;
END
$$;
COMMENT ON FUNCTION crm._plan_fact_needs(date, date, date) IS
'For crm.dashboard_plan_fact: checks the period and as_of, returns the last day the facts cover (NULL before the period starts) and which reports the plans of the period need.';

-- The rows of crm.dashboard_plan_fact from the report rows (jsonb arrays of
-- row objects; NULL = not run): pinned, the arithmetic of plan against fact.
CREATE FUNCTION crm._plan_fact(period_from date, period_to date, fact_to date,
                               owner_rows jsonb, channel_rows jsonb, manager_rows jsonb)
RETURNS TABLE (metric text, dimension text, key text, plan numeric, fact numeric, pct numeric,
               forecast numeric, forecast_pct numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH
m AS (SELECT * FROM crm.plan_metrics() WITH ORDINALITY AS pm(dimension, metric, kind, report, report_column, ord)),
f AS (
    SELECT NULL::text AS dimension, NULL::text AS key, o ->> 'metric' AS metric, (o ->> 'value')::numeric AS fact
      FROM jsonb_array_elements(owner_rows) AS o
    UNION ALL
    SELECT 'channel', r ->> 'channel', m.metric, (r ->> m.report_column)::numeric
      FROM jsonb_array_elements(channel_rows) AS r JOIN m ON m.dimension = 'channel'
    UNION ALL
    SELECT 'manager', r ->> 'manager_id', m.metric, (r ->> m.report_column)::numeric
      FROM jsonb_array_elements(manager_rows) AS r JOIN m ON m.dimension = 'manager'),
j AS (
    SELECT p.metric, p.dimension, p.key, p.target, m.kind, m.ord, f.fact,
           CASE WHEN m.kind = 'flow' AND _plan_fact.fact_to < _plan_fact.period_to
                THEN round(f.fact * (_plan_fact.period_to - _plan_fact.period_from + 1) / (_plan_fact.fact_to - _plan_fact.period_from + 1), 2)
                ELSE f.fact END AS forecast
      FROM crm.plans p
      JOIN m ON m.metric = p.metric AND m.dimension IS NOT DISTINCT FROM p.dimension
      LEFT JOIN f ON f.metric = p.metric AND f.dimension IS NOT DISTINCT FROM p.dimension AND f.key IS NOT DISTINCT FROM p.key
     WHERE p.period_from = _plan_fact.period_from AND p.period_to = _plan_fact.period_to)
SELECT j.metric, j.dimension, j.key, j.target, j.fact,
       round(100 * j.fact / nullif(j.target, 0), 2), j.forecast,
       round(100 * j.forecast / nullif(j.target, 0), 2)
  FROM j
 ORDER BY j.dimension NULLS FIRST, j.key, j.ord
$$;
COMMENT ON FUNCTION crm._plan_fact(date, date, date, jsonb, jsonb, jsonb) IS
'For crm.dashboard_plan_fact: the plans of exactly the period [from, to] against the facts in the report rows (jsonb arrays of crm.owner_dashboard, crm.dashboard_channels, crm.dashboard_managers rows up to fact_to), with pct and the run-rate forecast.';

CREATE FUNCTION crm.dashboard_plan_fact(period_from date, period_to date, as_of date)
RETURNS TABLE (metric text, dimension text, key text, plan numeric, fact numeric, pct numeric,
               forecast numeric, forecast_pct numeric)
LANGUAGE plpgsql VOLATILE
-- no SET search_path: the reports run the registered sources with the
-- caller's path; everything here is qualified, the arithmetic is done by the
-- pinned crm._plan_fact
AS $$
DECLARE
    n record;
    o jsonb;
    c jsonb;
    m jsonb;
BEGIN
    n := crm._plan_fact_needs(period_from, period_to, as_of);
    -- from the rollups when they may stand in (crm._rollups_usable,
    -- docs/rollups.md) and every plan of the report names a metric they hold:
    -- the report's rows for those metrics, built after the report's own checks
    IF (n.need_owner OR n.need_channels) AND crm._rollups_usable() THEN
        IF n.need_owner AND crm._plan_rollup_ok(period_from, period_to, NULL) THEN
            PERFORM crm._require_stages('crm.owner_dashboard'), crm._owner_dashboard_sql();
            o := crm._fast_plan_owner(period_from, n.fact_to);
            n.need_owner := false;
        END IF;
        IF n.need_channels AND crm._plan_rollup_ok(period_from, period_to, 'channel') THEN
            c := crm._fast_plan_channels(period_from, n.fact_to);
            n.need_channels := false;
        END IF;
    END IF;
    -- each report once, only when a plan of the period needs it, over
    -- [period_from, fact_to]
    IF n.need_owner THEN
        SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)) INTO o FROM crm.owner_dashboard(period_from, n.fact_to) AS x;
    END IF;
    IF n.need_channels THEN
        SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)) INTO c FROM crm.dashboard_channels(period_from, n.fact_to) AS x;
    END IF;
    IF n.need_managers THEN
        SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)) INTO m FROM crm.dashboard_managers(period_from, n.fact_to) AS x;
    END IF;
    RETURN QUERY SELECT * FROM crm._plan_fact(period_from, period_to, n.fact_to, o, c, m);
END
$$;
COMMENT ON FUNCTION crm.dashboard_plan_fact(date, date, date) IS
'Plan against fact for the plans of exactly the period [from, to]: target, fact up to as_of (default today; the whole period once it is over) from crm.owner_dashboard, crm.dashboard_channels or crm.dashboard_managers, pct = 100 x fact / plan, and the forecast to the period end (run rate for flow metrics, the fact for ratios and stocks).';

-- The contract form (issue 20): the plans of the period, facts up to today.
CREATE FUNCTION crm.dashboard_plan_fact(period_from date, period_to date)
RETURNS TABLE (metric text, dimension text, key text, plan numeric, fact numeric, pct numeric,
               forecast numeric, forecast_pct numeric)
LANGUAGE sql VOLATILE
-- no SET search_path: the reports run the registered sources with the
-- caller's path (see the three-argument form)
AS $$ SELECT * FROM crm.dashboard_plan_fact(period_from, period_to, NULL::pg_catalog.date) $$;
COMMENT ON FUNCTION crm.dashboard_plan_fact(date, date) IS
'Plan against fact for the plans of exactly the period [from, to], facts up to today: crm.dashboard_plan_fact(period_from, period_to, NULL).';

CREATE VIEW crm.v_plan_fact WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, f.metric, f.dimension, f.key, f.plan, f.fact, f.pct, f.forecast, f.forecast_pct
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_plan_fact(p.period_from, p.period_to) AS f;
COMMENT ON VIEW crm.v_plan_fact IS
'Plan against fact for the plans of exactly the dashboard period (Metabase: bar chart of pct by metric, or a table).';
GRANT SELECT ON crm.v_plan_fact TO PUBLIC;

COMMENT ON COLUMN crm.v_plan_fact.period_from IS 'First day of the dashboard period (plans of exactly this period are shown).';
COMMENT ON COLUMN crm.v_plan_fact.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_plan_fact.metric IS 'The planned metric (crm.plan_metrics(): owner dashboard, channel or manager metric names).';
COMMENT ON COLUMN crm.v_plan_fact.dimension IS 'NULL for the whole business, else channel or manager.';
COMMENT ON COLUMN crm.v_plan_fact.key IS 'The channel or the manager id (as text) of the plan; NULL for the whole business.';
COMMENT ON COLUMN crm.v_plan_fact.plan IS 'The target set by crm.set_plan.';
COMMENT ON COLUMN crm.v_plan_fact.fact IS 'The metric from its report over the period up to today.';
COMMENT ON COLUMN crm.v_plan_fact.pct IS '100 x fact / plan; NULL when the plan is 0.';
COMMENT ON COLUMN crm.v_plan_fact.forecast IS 'Forecast to the period end: the run rate for flow metrics, the fact for ratios and stocks.';
COMMENT ON COLUMN crm.v_plan_fact.forecast_pct IS '100 x forecast / plan.';

-- ---------------------------------------------------------------------------
-- Demo plans (crm._register_demo_sources calls this)
-- ---------------------------------------------------------------------------

-- The demo's last quarter and its months: revenue, new_buyers, leads_in,
-- deals_won and revenue per channel, each planned at the figure of the
-- period before (the quarter before, the month before) + 10 %, computed by
-- plain SQL over crm_demo (revenue rounded to hundreds, counts up to whole).
CREATE FUNCTION crm._demo_plans(last_day date) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q_from date;
    pr record;
    r record;
BEGIN
    IF last_day IS NULL THEN
        RETURN;
    END IF;
    q_from := date_trunc('quarter', last_day)::date;
    FOR pr IN
        SELECT q_from AS pf, (q_from + interval '3 months - 1 day')::date AS pt,
               (q_from - interval '3 months')::date AS bf
        UNION ALL
        SELECT m::date, (m + interval '1 month - 1 day')::date, (m - interval '1 month')::date
          FROM generate_series(q_from, date_trunc('month', last_day)::date, interval '1 month') AS m
    LOOP
        -- the period before: [bf, pf)
        FOR r IN
            SELECT v.metric, v.dimension, v.key, v.base
              FROM (SELECT 'revenue' AS metric, NULL::text AS dimension, NULL::text AS key,
                           (SELECT coalesce(sum(o.amount), 0) FROM crm_demo.orders o
                             WHERE o.ordered_at >= pr.bf::timestamptz AND o.ordered_at < pr.pf::timestamptz) AS base
                    UNION ALL
                    SELECT 'new_buyers', NULL, NULL,
                           (SELECT count(*) FROM (SELECT min(o.ordered_at) AS first_at FROM crm_demo.orders o
                                                   WHERE o.ordered_at < pr.pf::timestamptz GROUP BY o.customer_id) AS b
                             WHERE b.first_at >= pr.bf::timestamptz)
                    UNION ALL
                    SELECT 'leads_in', NULL, NULL,
                           (SELECT count(*) FROM crm_demo.leads l
                             WHERE l.created_at >= pr.bf::timestamptz AND l.created_at < pr.pf::timestamptz)
                    UNION ALL
                    SELECT 'deals_won', NULL, NULL,
                           (SELECT count(*) FROM (SELECT min(e.changed_at) AS won_at FROM crm_demo.deal_events e
                                                   WHERE e.stage = 'paid' GROUP BY e.deal_id) AS w
                             WHERE w.won_at >= pr.bf::timestamptz AND w.won_at < pr.pf::timestamptz)
                    UNION ALL
                    SELECT 'revenue', 'channel', c.channel, coalesce(sum(o.amount), 0)
                      FROM crm_demo.orders o JOIN crm_demo.customers c ON c.customer_id = o.customer_id
                     WHERE o.ordered_at >= pr.bf::timestamptz AND o.ordered_at < pr.pf::timestamptz
                     GROUP BY c.channel) AS v
        LOOP
            PERFORM crm.set_plan(r.metric, pr.pf, pr.pt,
                                 CASE WHEN r.metric = 'revenue' THEN round(r.base * 1.1, -2) ELSE ceil(r.base * 1.1) END,
                                 r.dimension, r.key);
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._demo_plans(date) IS
'Sets the demo plans for the quarter of last_day and its months up to last_day: revenue, new_buyers, leads_in, deals_won and revenue per channel, each the figure of the quarter or month before (plain SQL over crm_demo) + 10 %.';
