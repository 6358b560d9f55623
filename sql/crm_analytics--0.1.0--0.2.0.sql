-- crm_analytics 0.1.0 -> 0.2.0
--
-- 0.2.0 changes:
--   * crm.version() reports 0.2.0;
--   * crm.clv_simulate bounds its work (C only, no catalog change): customers
--     at most 100,000,000 (22023) and at most 100,000 purchases per simulated
--     customer (54000), found by the fuzz test;
--   * crm.window_funnel and crm.window_funnel_times get fixed-arity overloads
--     of 1 to 12 separate boolean steps, with and without the mode (and their
--     transition functions crm._window_funnel_transfn), so that calls with
--     separate step arguments no longer build a boolean[] per row; the
--     VARIADIC aggregates are unchanged.  The window_funnel state's binary
--     layout changed (C only; its text form is unchanged and states of the
--     0.1.0 layout are still read);
--   * crm.retention(boolean, ...): fixed-arity overloads with 1 to 12
--     conditions and a by-value state type crm.retention_fixed_state (a call
--     with the conditions written out resolves to them; the VARIADIC contract
--     aggregate is unchanged);
--   * crm.cohort_activity: compact in-place state (C; 0.1.0 states are still
--     read) and SSPACE 160 instead of 512 (CREATE OR REPLACE AGGREGATE keeps
--     the aggregate's identity and whatever depends on it);
--   * automatic status: the row triggers are faster (no SET search_path
--     clause, the rule's change and history row in one statement);
--   * the release procedure (docs/releasing.md) and the upgrade test
--     (test/upgrade.sh: catalog of an upgraded install = a fresh install; the
--     pgTAP suite passes on the upgraded install).
--   * the owner dashboard is faster (issue 9): crm._stage_orders (new),
--     crm._owner_dashboard_sql, crm._dashboard_coverage_interval (PARALLEL
--     SAFE) and crm.load_demo (indexes crm_demo.interactions(occurred_at));
--     crm.dashboard_managers, crm.dashboard_pipeline and crm.dashboard_funnel
--     map the stage names once per event row.
--   * coverage: UPDATE, DELETE and TRUNCATE of the attached interactions
--     table are tracked (crm.coverage_change_trigger,
--     crm.coverage_truncate_trigger; attach creates four triggers, an
--     existing attachment gets them below);
--   * crm.cohort_retention reads an integer-keyed inner query in two passes
--     (C only, no catalog change; the setting crm_analytics.cohort_two_pass
--     turns it off).
--   * new aggregates crm.window_funnel_by_name and
--     crm.window_funnel_times_by_name (window, [mode,] ts, step text,
--     steps text[]): window_funnel with step names, with two transition
--     functions crm._window_funnel_transfn; crm.funnel_report uses them.  A
--     row matching no step no longer reads the group's state (C only).
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.2.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.2.0'::text $$;

-- owner dashboard speed (issue 9): stage names mapped once per event row,
-- class A by crm.abc_class, interactions read by time range; the demo
-- indexes crm_demo.interactions(occurred_at)
CREATE OR REPLACE FUNCTION crm._stage_orders(outcome text) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(string_agg(stage_order::text, ', ' ORDER BY stage_order), 'NULL')
  FROM crm.pipeline_stages WHERE pipeline_stages.outcome = _stage_orders.outcome
$$;
COMMENT ON FUNCTION crm._stage_orders(text) IS
'SQL text of the comma-separated stage_order values of the crm.pipeline_stages rows with this outcome (NULL when none), for IN lists in the report queries.';

CREATE OR REPLACE FUNCTION crm._owner_dashboard_sql() RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    q text;
BEGIN
    q := pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome FROM crm.pipeline_stages),
pol AS MATERIALIZED (SELECT crm._dashboard_coverage_interval('A') AS a_int),
ld AS MATERIALIZED (
    SELECT lead_id, created_at, channel, customer_id, created_at >= $1 AS is_cur
      FROM %1$s WHERE created_at >= $3 AND created_at < $2),
od AS NOT MATERIALIZED (
    SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at < $2),
-- per customer: first order, orders up to each period end, revenue of the
-- 12 months before each end (ABC class)
cu AS MATERIALIZED (
    SELECT customer_id, min(ordered_at) AS first_at,
           count(*) AS n_cur_end, count(*) FILTER (WHERE ordered_at < $4) AS n_prev_end,
           bool_or(ordered_at >= $1) AS in_cur,
           bool_or(ordered_at >= $3 AND ordered_at < $4) AS in_prev,
           sum(amount) FILTER (WHERE ordered_at >= $2 - interval '12 months') AS rev12_cur,
           sum(amount) FILTER (WHERE ordered_at >= $4 - interval '12 months' AND ordered_at < $4) AS rev12_prev
      FROM od GROUP BY customer_id),
om AS (
    SELECT sum(amount) FILTER (WHERE ordered_at >= $1) AS c_revenue,
           sum(amount) FILTER (WHERE ordered_at < $4) AS p_revenue,
           count(*) FILTER (WHERE ordered_at >= $1) AS c_orders,
           count(*) FILTER (WHERE ordered_at < $4) AS p_orders,
           sum(amount - cost) FILTER (WHERE ordered_at >= $1) AS c_gp,
           sum(amount - cost) FILTER (WHERE ordered_at < $4) AS p_gp
      FROM od WHERE ordered_at >= $3),
cm AS (
    SELECT count(*) FILTER (WHERE first_at >= $1) AS c_new,
           count(*) FILTER (WHERE first_at >= $3 AND first_at < $4) AS p_new,
           count(*) FILTER (WHERE in_cur) AS c_active,
           count(*) FILTER (WHERE in_cur AND n_cur_end >= 2) AS c_repeat,
           count(*) FILTER (WHERE in_prev) AS p_active,
           count(*) FILTER (WHERE in_prev AND n_prev_end >= 2) AS p_repeat
      FROM cu),
sp AS (
    SELECT channel, spent_on >= $1 AS is_cur, sum(amount) AS amount
      FROM %3$s WHERE spent_on >= $3 AND spent_on < $2 GROUP BY 1, 2),
spm AS (
    SELECT sum(amount) FILTER (WHERE is_cur) AS c_spend, sum(amount) FILTER (WHERE NOT is_cur) AS p_spend FROM sp),
-- real (non-automated) contacts that can matter: from the start of the
-- previous period (first responses to its leads) or from a month before its
-- end (the class-A contact check), up to the end
-- a lead's first response: its first real outbound contact at or after its
-- creation (read straight from the source: an index on its time column helps)
lf AS (
    SELECT ix.lead_id, min(ix.occurred_at) AS first_contact
      FROM %4$s JOIN ld ON ld.lead_id = ix.lead_id
     WHERE NOT ix.automated AND ix.direction = 'outbound'
       AND ix.occurred_at >= $3 AND ix.occurred_at < $2 AND ix.occurred_at >= ld.created_at
     GROUP BY ix.lead_id),
lx AS (
    SELECT ld.channel, ld.is_cur, count(*) AS n,
           count(*) FILTER (WHERE cu.first_at < CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS converted,
           count(*) FILTER (WHERE lf.first_contact IS NULL
                               OR lf.first_contact >= CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS unanswered
      FROM ld LEFT JOIN cu ON cu.customer_id = ld.customer_id
              LEFT JOIN lf ON lf.lead_id = ld.lead_id
     GROUP BY 1, 2),
lm AS (
    SELECT sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           sum(unanswered * coalesce(sp.amount, 0) / lx.n) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           sum(unanswered * coalesce(sp.amount, 0) / lx.n) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost
      FROM lx LEFT JOIN sp ON sp.channel = lx.channel AND sp.is_cur = lx.is_cur),
iv AS (
    SELECT issued_at, due_at, amount, paid_at FROM %5$s
     WHERE issued_at < $2 AND (paid_at IS NULL OR paid_at >= $4)),
im AS (
    SELECT count(*) FILTER (WHERE paid_at IS NULL OR paid_at >= $2) AS c_unpaid,
           sum(amount) FILTER (WHERE paid_at IS NULL OR paid_at >= $2) AS c_unpaid_amt,
           avg(extract(epoch FROM $2 - issued_at) / 86400) FILTER (WHERE paid_at IS NULL OR paid_at >= $2) AS c_unpaid_age,
           count(*) FILTER (WHERE (paid_at IS NULL OR paid_at >= $2) AND due_at < $2) AS c_overdue,
           sum(amount) FILTER (WHERE (paid_at IS NULL OR paid_at >= $2) AND due_at < $2) AS c_overdue_amt,
           count(*) FILTER (WHERE issued_at < $4) AS p_unpaid,
           sum(amount) FILTER (WHERE issued_at < $4) AS p_unpaid_amt,
           avg(extract(epoch FROM $4 - issued_at) / 86400) FILTER (WHERE issued_at < $4) AS p_unpaid_age,
           count(*) FILTER (WHERE issued_at < $4 AND due_at < $4) AS p_overdue,
           sum(amount) FILTER (WHERE issued_at < $4 AND due_at < $4) AS p_overdue_amt
      FROM iv),
ev AS (
    SELECT deal_id, changed_at, amount, %7$s AS so
      FROM %6$s WHERE changed_at < $2
    OFFSET 0),  -- a fence: the stage CASE is computed once per row, not once per aggregate
-- per deal, with the stage names mapped once (to stage_order; NULL = a stage
-- crm.pipeline_stages does not list); deals closed before the previous
-- period matter to no figure (unknown stages are counted on all)
dl AS (
    SELECT deal_id, min(changed_at) AS created_at, max(amount) AS amount,
           min(changed_at) FILTER (WHERE so IN (%8$s)) AS won_at,
           min(changed_at) FILTER (WHERE so IN (%9$s)) AS lost_at,
           max(so) FILTER (WHERE so IN (%10$s)) AS open_cur,
           max(so) FILTER (WHERE so IN (%10$s) AND changed_at < $4) AS open_prev,
           count(*) - count(so) AS unknown
      FROM ev GROUP BY deal_id),
dc AS MATERIALIZED (
    SELECT dl.*, least(won_at, lost_at) AS closed_at,
           won_at IS NOT NULL AND won_at <= coalesce(lost_at, won_at) AS is_won,
           %11$s AS p_cur, %12$s AS p_prev
      FROM dl
     WHERE least(won_at, lost_at) IS NULL OR least(won_at, lost_at) >= $3 OR unknown > 0),
dm AS (
    SELECT count(*) FILTER (WHERE is_won AND closed_at >= $1) AS c_won,
           count(*) FILTER (WHERE NOT is_won AND closed_at >= $1) AS c_lost,
           count(*) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $4) AS p_won,
           count(*) FILTER (WHERE NOT is_won AND closed_at >= $3 AND closed_at < $4) AS p_lost,
           sum(amount) FILTER (WHERE NOT is_won AND closed_at >= $1) AS c_lost_amt,
           sum(amount) FILTER (WHERE NOT is_won AND closed_at >= $3 AND closed_at < $4) AS p_lost_amt,
           avg(amount) FILTER (WHERE is_won AND closed_at >= $1) AS c_avg_won,
           avg(amount) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $4) AS p_avg_won,
           avg(extract(epoch FROM won_at - created_at) / 86400) FILTER (WHERE is_won AND closed_at >= $1) AS c_cycle,
           avg(extract(epoch FROM won_at - created_at) / 86400) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $4) AS p_cycle,
           count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open,
           count(*) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at >= $4)) AS p_open,
           sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open_amt,
           sum(amount) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at >= $4)) AS p_open_amt,
           sum(amount * p_cur) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_weighted,
           sum(amount * p_prev) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at >= $4)) AS p_weighted,
           crm._check_stages(sum(unknown)) AS stages_ok
      FROM dc),
-- lost deals by the most advanced open stage they reached
lost AS (
    SELECT st.stage, st.stage_order,
           coalesce(sum(dc.amount) FILTER (WHERE dc.closed_at >= $1), 0) AS c_amt,
           coalesce(sum(dc.amount) FILTER (WHERE dc.closed_at < $4), 0) AS p_amt
      FROM st LEFT JOIN dc ON dc.open_cur = st.stage_order AND NOT dc.is_won AND dc.closed_at >= $3
     WHERE st.outcome = 'open'
     GROUP BY st.stage, st.stage_order),
-- class A (crm.abc_class semantics, 0.80 of the revenue of the 12 months
-- before the period end; the tests check it against crm.abc_class) customers
-- without a real contact within the class-A interval of crm.coverage_policy
-- (default 1 month) before the end
lc AS (
    SELECT customer_id, max(occurred_at) AS last_cur, max(occurred_at) FILTER (WHERE occurred_at < $4) AS last_prev
      FROM %13$s
     WHERE customer_id IS NOT NULL AND NOT automated
       AND occurred_at >= $4 - (SELECT a_int FROM pol) AND occurred_at < $2
     GROUP BY customer_id),
-- class A by crm.abc_class itself (a C window function over all customers,
-- no sort) at both period ends
ab AS (
    SELECT customer_id, crm.abc_class(rev12_cur::float8) OVER () AS c_cls,
           crm.abc_class(rev12_prev::float8) OVER () AS p_cls
      FROM cu),
am AS (
    SELECT count(*) FILTER (WHERE ab.c_cls = 'A'
                             AND (lc.last_cur IS NULL OR lc.last_cur < $2 - pol.a_int)) AS c_a_overdue,
           count(*) FILTER (WHERE ab.p_cls = 'A'
                             AND (lc.last_prev IS NULL OR lc.last_prev < $4 - pol.a_int)) AS p_a_overdue
      FROM ab CROSS JOIN pol LEFT JOIN lc ON lc.customer_id = ab.customer_id
     WHERE ab.c_cls = 'A' OR ab.p_cls = 'A'),
rows AS (
    SELECT v.*
      FROM om, cm, spm, lm, im, dm, am,
      LATERAL (VALUES
        (1,  'acquisition', 'leads_in', coalesce(c_leads, 0), coalesce(p_leads, 0), 'count'),
        (2,  'acquisition', 'new_buyers', c_new::numeric, p_new::numeric, 'count'),
        (3,  'acquisition', 'lead_to_buyer_conversion', round(100.0 * c_conv / nullif(c_leads, 0), 2), round(100.0 * p_conv / nullif(p_leads, 0), 2), 'pct'),
        (4,  'acquisition', 'marketing_spend', coalesce(c_spend, 0), coalesce(p_spend, 0), 'money'),
        (5,  'acquisition', 'cac', round(coalesce(c_spend, 0) / nullif(c_new, 0), 2), round(coalesce(p_spend, 0) / nullif(p_new, 0), 2), 'money'),
        (6,  'sales', 'revenue', coalesce(c_revenue, 0), coalesce(p_revenue, 0), 'money'),
        (7,  'sales', 'orders', c_orders::numeric, p_orders::numeric, 'count'),
        (8,  'sales', 'average_check', round(c_revenue / nullif(c_orders, 0), 2), round(p_revenue / nullif(p_orders, 0), 2), 'money'),
        (9,  'sales', 'repeat_purchase_rate', round(100.0 * c_repeat / nullif(c_active, 0), 2), round(100.0 * p_repeat / nullif(p_active, 0), 2), 'pct'),
        (10, 'sales', 'gross_profit', coalesce(c_gp, 0), coalesce(p_gp, 0), 'money'),
        (11, 'sales', 'roi', round(100.0 * (coalesce(c_gp, 0) - c_spend) / nullif(c_spend, 0), 2),
                             round(100.0 * (coalesce(p_gp, 0) - p_spend) / nullif(p_spend, 0), 2), 'pct'),
        (12, 'pipeline', 'win_rate', round(100.0 * c_won / nullif(c_won + c_lost, 0), 2), round(100.0 * p_won / nullif(p_won + p_lost, 0), 2), 'pct'),
        (13, 'pipeline', 'deals_won', c_won::numeric, p_won::numeric, 'count'),
        (14, 'pipeline', 'average_won_deal', round(c_avg_won, 2), round(p_avg_won, 2), 'money'),
        (15, 'pipeline', 'sales_cycle', round(c_cycle, 2), round(p_cycle, 2), 'days'),
        (16, 'pipeline', 'open_deals', c_open::numeric, p_open::numeric, 'count'),
        (17, 'pipeline', 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0), 'money'),
        (18, 'pipeline', 'weighted_pipeline', round(coalesce(c_weighted, 0), 2), round(coalesce(p_weighted, 0), 2), 'money'),
        (19, 'pipeline', 'sales_velocity',
             round(c_open * (c_won::numeric / nullif(c_won + c_lost, 0)) * c_avg_won / nullif(c_cycle, 0), 2),
             round(p_open * (p_won::numeric / nullif(p_won + p_lost, 0)) * p_avg_won / nullif(p_cycle, 0), 2), 'money_per_day'),
        (20, 'money_lost', 'deals_lost', c_lost::numeric, p_lost::numeric, 'count'),
        (21, 'money_lost', 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0), 'money'),
        (1000, 'money_lost', 'unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric, 'count'),
        (1001, 'money_lost', 'unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0), 'money'),
        (1002, 'money_lost', 'unpaid_invoice_age', round(c_unpaid_age, 2), round(p_unpaid_age, 2), 'days'),
        (1003, 'money_lost', 'overdue_invoices', c_overdue::numeric, p_overdue::numeric, 'count'),
        (1004, 'money_lost', 'overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0), 'money'),
        (1005, 'money_lost', 'unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0), 'count'),
        (1006, 'money_lost', 'unanswered_leads_cost', round(coalesce(c_unans_cost, 0), 2), round(coalesce(p_unans_cost, 0), 2), 'money'),
        (1007, 'money_lost', 'overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric, 'count')
      ) AS v(ord, section, metric, cur, prev, unit)
     WHERE dm.stages_ok
    UNION ALL
    SELECT 100 + stage_order, 'money_lost', 'lost_value_at_' || stage, c_amt, p_amt, 'money' FROM lost)
SELECT metric, cur, unit, prev,
       round(100.0 * (cur - prev) / nullif(abs(prev), 0), 2), section
  FROM rows ORDER BY ord
$sql$,
        crm._source_sql('leads'), crm._source_sql('orders'), crm._source_sql('spend'),
        crm._source_sql('interactions', 'ix'), crm._source_sql('invoices'), crm._source_sql('stage_events'),
        crm._stage_case('order', 'stage'), crm._stage_orders('won'), crm._stage_orders('lost'),
        crm._stage_orders('open'), crm._stage_case('order_probability', 'open_cur'),
        crm._stage_case('order_probability', 'open_prev'), crm._source_sql('interactions'));
    RETURN q;
END
$$;
COMMENT ON FUNCTION crm._owner_dashboard_sql() IS
'The SQL text crm.owner_dashboard runs (registered sources spliced in; $1..$4 = current and previous period bounds).';

ALTER FUNCTION crm._dashboard_coverage_interval(text) PARALLEL SAFE;

CREATE OR REPLACE FUNCTION crm.load_demo(customers int DEFAULT 5000, seed int DEFAULT 42, as_of date DEFAULT current_date)
RETURNS TABLE(relation text, row_count bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
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
BEGIN
    IF v_n IS NULL OR v_seed IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'crm.load_demo: customers, seed and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_n <= 0 OR v_n > 1000000 THEN
        RAISE EXCEPTION 'crm.load_demo: customers must be between 1 and 1000000, got %', v_n
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The demo is a small CRM: 5000 customers is the default, 100000 loads in well under a minute.';
    END IF;
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'crm.load_demo: as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Only ever replace a crm_demo schema that load_demo made.
    SELECT obj_description(n.oid, 'pg_namespace') INTO v_comment
      FROM pg_namespace n WHERE n.nspname = 'crm_demo';
    IF FOUND THEN
        IF v_comment IS DISTINCT FROM 'crm_analytics demo data (crm.load_demo)' THEN
            RAISE EXCEPTION 'crm.load_demo: schema "crm_demo" exists and was not made by crm.load_demo'
                USING ERRCODE = 'duplicate_schema',
                      HINT = 'Rename or drop that schema first; load_demo replaces only its own.';
        END IF;
        DROP SCHEMA crm_demo CASCADE;
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

    CREATE TABLE crm_demo.customers (
        customer_id bigint PRIMARY KEY, lead_id bigint NOT NULL, name text NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, created_at timestamptz NOT NULL);
    INSERT INTO crm_demo.customers
    SELECT row_number() OVER (ORDER BY t5, id), id, '', channel, manager_id, t5
      FROM demo_path WHERE converts;
    UPDATE crm_demo.customers SET name = 'Customer ' || customer_id;

    CREATE TABLE crm_demo.leads (
        lead_id bigint PRIMARY KEY, created_at timestamptz NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, customer_id bigint);
    INSERT INTO crm_demo.leads
    SELECT p.id, p.created_at, p.channel, p.manager_id, c.customer_id
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     ORDER BY p.id;

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

    CREATE TABLE crm_demo.invoices (
        invoice_id bigint PRIMARY KEY, deal_id bigint NOT NULL, customer_id bigint, issued_at timestamptz NOT NULL,
        due_at timestamptz NOT NULL, amount numeric NOT NULL, paid_at timestamptz);
    INSERT INTO crm_demo.invoices
    SELECT p.id, p.id, c.customer_id, p.t4, p.t4 + interval '14 days', p.amount,
           CASE WHEN p.converts THEN p.t5 END
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     WHERE p.reach >= 4
     ORDER BY p.id;

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

    CREATE TABLE crm_demo.interactions (
        interaction_id bigint PRIMARY KEY, customer_id bigint, lead_id bigint, manager_id int NOT NULL,
        kind text NOT NULL, direction text NOT NULL, automated boolean NOT NULL, occurred_at timestamptz NOT NULL);
    INSERT INTO crm_demo.interactions
    SELECT row_number() OVER (ORDER BY occurred_at, src, key), customer_id, lead_id, manager_id, kind, direction,
           automated, occurred_at
      FROM demo_touch WHERE occurred_at <= v_end;

    CREATE INDEX ON crm_demo.deal_events (deal_id, changed_at);
    CREATE INDEX ON crm_demo.orders (customer_id, ordered_at);
    CREATE INDEX ON crm_demo.interactions (customer_id, occurred_at);
    CREATE INDEX ON crm_demo.interactions (lead_id, occurred_at);
    -- the dashboard reads a period of interactions: a CRM indexes their time
    CREATE INDEX ON crm_demo.interactions (occurred_at);
    CREATE INDEX ON crm_demo.leads (created_at);
    CREATE INDEX ON crm_demo.invoices (deal_id);
    ANALYZE crm_demo.channels, crm_demo.managers, crm_demo.customers, crm_demo.leads, crm_demo.deals,
            crm_demo.deal_events, crm_demo.invoices, crm_demo.products, crm_demo.orders, crm_demo.spend,
            crm_demo.interactions;

    DROP TABLE pg_temp.demo_path, pg_temp.demo_product_cdf, pg_temp.demo_orders, pg_temp.demo_touch;

    -- let the source registry (owner dashboard) know about the demo tables
    IF to_regprocedure('crm._register_demo_sources()') IS NOT NULL THEN
        EXECUTE 'SELECT crm._register_demo_sources()';
    END IF;

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

-- the manager, pipeline and funnel reports map stage names once per event row
CREATE OR REPLACE FUNCTION crm.dashboard_managers(period_from date, period_to date)
RETURNS TABLE (manager_id text, leads bigint, answered_leads bigint, unanswered_leads bigint,
               median_response_minutes numeric, deals_won bigint, deals_lost bigint, win_rate_pct numeric,
               revenue numeric, customers bigint, covered_customers bigint, coverage_pct numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_managers', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_managers');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
ld AS MATERIALIZED (
    SELECT lead_id, created_at, manager_id::text AS manager_id FROM %1$s
     WHERE created_at >= $1 AND created_at < $2),
fc AS (
    SELECT x.lead_id, min(x.occurred_at) AS first_contact
      FROM %2$s JOIN ld ON ld.lead_id = x.lead_id
     WHERE NOT x.automated AND x.direction = 'outbound' AND x.occurred_at >= $1 AND x.occurred_at < $2
       AND x.occurred_at >= ld.created_at
     GROUP BY x.lead_id),
lm AS (
    SELECT ld.manager_id, count(*) AS leads, count(fc.first_contact) AS answered,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fc.first_contact - ld.created_at) / 60) AS med
      FROM ld LEFT JOIN fc ON fc.lead_id = ld.lead_id GROUP BY 1),
dl AS (
    SELECT e.deal_id, min(e.manager_id::text) AS manager_id,
           min(e.changed_at) FILTER (WHERE e.outcome = 'won') AS won_at,
           min(e.changed_at) FILTER (WHERE e.outcome = 'lost') AS lost_at,
           count(*) FILTER (WHERE e.outcome IS NULL) AS n_unknown
      -- OFFSET 0 fences the subquery: the stage CASE is computed once per row, not once per aggregate
      FROM (SELECT deal_id, changed_at, manager_id, %6$s AS outcome FROM %3$s OFFSET 0) AS e
     WHERE e.changed_at < $2 GROUP BY e.deal_id),
dm AS (
    SELECT manager_id,
           count(*) FILTER (WHERE won_at <= coalesce(lost_at, won_at)) AS won,
           count(*) FILTER (WHERE lost_at < coalesce(won_at, 'infinity')) AS lost
      FROM dl WHERE least(won_at, lost_at) >= $1 GROUP BY 1),
cv AS (
    SELECT c.manager_id, count(*) AS customers, count(*) FILTER (WHERE c.covered) AS covered
      FROM crm.dashboard_coverage($2) c GROUP BY 1),
cu AS MATERIALIZED (SELECT customer_id, manager_id::text AS manager_id FROM %4$s),
rv AS (
    SELECT cu.manager_id, sum(o.amount) AS revenue
      FROM %5$s LEFT JOIN cu ON cu.customer_id = o.customer_id
     WHERE o.ordered_at >= $1 AND o.ordered_at < $2 GROUP BY 1),
m AS (SELECT manager_id FROM lm UNION SELECT manager_id FROM dm UNION SELECT manager_id FROM cv
      UNION SELECT manager_id FROM rv)
SELECT m.manager_id, coalesce(lm.leads, 0), coalesce(lm.answered, 0), coalesce(lm.leads - lm.answered, 0),
       round(lm.med::numeric, 2), coalesce(dm.won, 0), coalesce(dm.lost, 0),
       round(100.0 * dm.won / nullif(dm.won + dm.lost, 0), 2),
       coalesce(rv.revenue, 0), coalesce(cv.customers, 0), coalesce(cv.covered, 0),
       round(100.0 * cv.covered / nullif(cv.customers, 0), 2)
  FROM m LEFT JOIN lm ON lm.manager_id IS NOT DISTINCT FROM m.manager_id
         LEFT JOIN dm ON dm.manager_id IS NOT DISTINCT FROM m.manager_id
         LEFT JOIN cv ON cv.manager_id IS NOT DISTINCT FROM m.manager_id
         LEFT JOIN rv ON rv.manager_id IS NOT DISTINCT FROM m.manager_id
 WHERE crm._check_stages((SELECT sum(n_unknown) FROM dl))
 ORDER BY m.manager_id
$sql$, crm._source_sql('leads'), crm._source_sql('interactions', 'x'), crm._source_sql('stage_events'),
       crm._source_sql('customers'), crm._source_sql('orders', 'o'), crm._stage_case('outcome', 'stage'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_managers(date, date) IS
'Per manager for the period [from, to]: leads, answered and unanswered leads (as of the period end), median first-response time, deals won and lost, win rate, revenue of the manager''s customers, and contact coverage of those customers at the period end.';

CREATE OR REPLACE FUNCTION crm.dashboard_pipeline(period_from date, period_to date)
RETURNS TABLE (stage text, stage_order int, outcome text, probability numeric, entered bigint,
               open_deals bigint, open_value numeric, weighted_value numeric, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    nstages int;
    entered_sums text;
BEGIN
    b := crm._period_bounds('crm.dashboard_pipeline', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_pipeline');
    SELECT count(*) INTO nstages FROM crm.pipeline_stages;
    IF nstages > 62 THEN
        RAISE EXCEPTION 'crm.dashboard_pipeline: at most 62 pipeline stages, crm.pipeline_stages has %', nstages
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- per deal, the stages entered in the period as a bit mask; then one sum per stage
    SELECT string_agg(pg_catalog.format('sum((entered_mask >> %s) & 1)', k), ', ' ORDER BY k)
      INTO entered_sums FROM generate_series(1, nstages) AS k;
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome, row_number() OVER (ORDER BY stage_order)::int AS rk
         FROM crm.pipeline_stages),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS stage_order, %3$s AS outcome, %4$s AS rk
      FROM %1$s WHERE changed_at < $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, max(amount) AS amount,
           max(stage_order) FILTER (WHERE outcome = 'open') AS open_stage,
           min(changed_at) FILTER (WHERE outcome = 'won') AS won_at,
           min(changed_at) FILTER (WHERE outcome = 'lost') AS lost_at,
           bit_or(1::bigint << rk) FILTER (WHERE changed_at >= $1) AS entered_mask,
           count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
en AS (SELECT ARRAY[%5$s] AS entered FROM dl WHERE entered_mask IS NOT NULL),
op AS (
    SELECT open_stage AS stage_order, count(*) AS n, sum(amount) AS amt
      FROM dl WHERE won_at IS NULL AND lost_at IS NULL AND open_stage IS NOT NULL GROUP BY 1),
lo AS (
    SELECT open_stage AS stage_order, count(*) AS n, sum(amount) AS amt
      FROM dl WHERE lost_at >= $1 AND lost_at < coalesce(won_at, 'infinity') GROUP BY 1)
SELECT st.stage, st.stage_order, st.outcome, st.probability, coalesce((SELECT en.entered[st.rk] FROM en), 0)::bigint,
       coalesce(op.n, 0), coalesce(op.amt, 0), round(coalesce(op.amt, 0) * st.probability, 2),
       coalesce(lo.n, 0), coalesce(lo.amt, 0)
  FROM st LEFT JOIN op ON op.stage_order = st.stage_order
          LEFT JOIN lo ON lo.stage_order = st.stage_order
 WHERE crm._check_stages((SELECT sum(n_unknown) FROM dl))
 ORDER BY st.stage_order
$sql$, crm._source_sql('stage_events'), crm._stage_case('order', 'stage'), crm._stage_case('outcome', 'stage'),
       crm._stage_case('rank', 'stage'), entered_sums)
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_pipeline(date, date) IS
'Per pipeline stage for the period [from, to]: deals that entered it in the period, open deals sitting in it at the period end with their value and probability-weighted value, and deals lost in the period whose most advanced open stage it was, with their value.';

CREATE OR REPLACE FUNCTION crm.dashboard_funnel(period_from date, period_to date)
RETURNS TABLE (step_no int, stage text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
               dropped bigint, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_funnel', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_funnel');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
steps AS (
    SELECT row_number() OVER (ORDER BY stage_order)::int AS step_no, stage
      FROM crm.pipeline_stages WHERE outcome IN ('open', 'won')),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS step, %3$s AS outcome FROM %1$s WHERE changed_at < $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, min(changed_at) AS started_at, max(amount) AS amount, max(step) AS level,
           bool_or(outcome = 'lost') AS lost, count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
lv AS (
    SELECT level, count(*) AS n, count(*) FILTER (WHERE lost) AS lost_deals,
           coalesce(sum(amount) FILTER (WHERE lost), 0) AS lost_value
      FROM dl WHERE started_at >= $1 AND level IS NOT NULL GROUP BY level),
f AS (
    SELECT steps.step_no, steps.stage,
           coalesce(sum(lv.n) OVER (ORDER BY steps.step_no DESC), 0)::bigint AS entered,
           coalesce(lv.lost_deals, 0) AS lost_deals, coalesce(lv.lost_value, 0) AS lost_value
      FROM steps LEFT JOIN lv ON lv.level = steps.step_no)
SELECT f.step_no, f.stage, f.entered,
       round(100.0 * f.entered / nullif(first_value(f.entered) OVER w, 0), 2),
       round(100.0 * f.entered / nullif(lag(f.entered) OVER w, 0), 2),
       f.entered - lead(f.entered, 1, f.entered) OVER w,
       f.lost_deals, f.lost_value
  FROM f
 WHERE crm._check_stages((SELECT sum(n_unknown) FROM dl))
WINDOW w AS (ORDER BY f.step_no)
 ORDER BY f.step_no
$sql$, crm._source_sql('stage_events'), crm._stage_case('step', 'stage'), crm._stage_case('outcome', 'stage'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_funnel(date, date) IS
'Sales funnel of the deals that started in the period [from, to]: per open or won stage, deals that reached it (as of the period end), share of the first step and of the previous one, deals dropped before the next step, and the deals lost there with their value.';

-- ---- fixed-arity overloads (speed) -----------------------------------------------
-- window_funnel and window_funnel_times with 1 to 12 separate boolean step
-- arguments, with and without the mode.  PostgreSQL prefers a non-variadic
-- function over a variadic one with the same effective argument types in the
-- same schema, so a call such as window_funnel('3 days', ts, a, b, c) resolves
-- to the 3-step overload, whose C transition function reads the booleans
-- directly instead of building a boolean[] per row.  Same state, combine and
-- final functions, same results; the VARIADIC contract aggregates above stay
-- for VARIADIC ARRAY[...] calls and for 13 to 64 steps.
DO $do$
DECLARE
    n int;
    steps_decl text;
    steps_types text;
    m record;
    agg record;
BEGIN
    FOR n IN 1..12 LOOP
        SELECT pg_catalog.string_agg(pg_catalog.format('step%s boolean', i), ', ' ORDER BY i),
               pg_catalog.string_agg('boolean', ', ')
          INTO steps_decl, steps_types
          FROM pg_catalog.generate_series(1, n) AS i;
        FOR m IN SELECT * FROM (VALUES
                     ('', '', 'funnel_window_args_transfn', ''),
                     ('mode text, ', 'text, ', 'funnel_window_mode_args_transfn', ' with a mode')) AS v(decl, types, cname, what)
        LOOP
            EXECUTE pg_catalog.format($f$
                CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, %1$stimestamptz, %2$s)
                RETURNS crm.window_funnel_state
                LANGUAGE c IMMUTABLE PARALLEL SAFE
                AS 'MODULE_PATHNAME', %3$L$f$, m.types, steps_types, m.cname);
            EXECUTE pg_catalog.format($f$
                COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, %1$stimestamptz, %2$s) IS
                %3$L$f$, m.types, steps_types,
                pg_catalog.format('Transition function of the %s-step crm.window_funnel%s: reads the step booleans directly and appends the row in place.', n, m.what));
            FOR agg IN SELECT * FROM (VALUES
                           ('window_funnel', '_window_funnel_finalfn', 'crm.window_funnel'),
                           ('window_funnel_times', '_window_funnel_times_finalfn', 'crm.window_funnel_times')) AS a(name, finalfn, contract)
            LOOP
                EXECUTE pg_catalog.format($f$
                    CREATE AGGREGATE crm.%1$I("window" interval, %2$sts timestamptz, %3$s) (
                        SFUNC = crm._window_funnel_transfn,
                        STYPE = crm.window_funnel_state,
                        SSPACE = 128,
                        COMBINEFUNC = crm._window_funnel_combinefn,
                        FINALFUNC = crm.%4$I,
                        PARALLEL = SAFE
                    )$f$, agg.name, m.decl, steps_decl, agg.finalfn);
                EXECUTE pg_catalog.format($f$
                    COMMENT ON AGGREGATE crm.%1$I(interval, %2$stimestamptz, %3$s) IS %4$L$f$,
                    agg.name, m.types, steps_types,
                    pg_catalog.format('%s%s with %s separate step conditions: the same result as the VARIADIC form, without building a boolean[] per row.',
                                      agg.contract, m.what, n));
            END LOOP;
        END LOOP;
    END LOOP;
END
$do$;
-- ---------------------------------------------------------------------------
-- crm.retention(boolean, ...): 1 to 12 conditions as arguments
-- ---------------------------------------------------------------------------
-- Same result as crm.retention(VARIADIC boolean[]).  A call with the
-- conditions written out resolves to these overloads (PostgreSQL prefers a
-- non-variadic function to a variadic one with the same effective argument
-- types), which pass the conditions without building an array per row and
-- keep a 4-byte by-value state.  More conditions, or an explicit VARIADIC
-- array, use the VARIADIC aggregate.
CREATE TYPE crm.retention_fixed_state;

CREATE FUNCTION crm.retention_fixed_state_in(cstring) RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_state_in';
COMMENT ON FUNCTION crm.retention_fixed_state_in(cstring) IS
'Input function of crm.retention_fixed_state: one character per condition (1 to 12), 1 = held on some row, e.g. ''101''.';

CREATE FUNCTION crm.retention_fixed_state_out(crm.retention_fixed_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_state_out';
COMMENT ON FUNCTION crm.retention_fixed_state_out(crm.retention_fixed_state) IS
'Output function of crm.retention_fixed_state: one character per condition, 1 = held on some row.';

CREATE TYPE crm.retention_fixed_state (
    INPUT = crm.retention_fixed_state_in,
    OUTPUT = crm.retention_fixed_state_out,
    INTERNALLENGTH = 4,
    PASSEDBYVALUE,
    ALIGNMENT = int4,
    STORAGE = plain
);
COMMENT ON TYPE crm.retention_fixed_state IS
'Partial state of crm.retention with 1 to 12 conditions as arguments: the number of conditions and which of them held on some row, 4 bytes passed by value.';

CREATE FUNCTION crm.retention_fixed_combinefn(crm.retention_fixed_state, crm.retention_fixed_state)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_combinefn';
COMMENT ON FUNCTION crm.retention_fixed_combinefn(crm.retention_fixed_state, crm.retention_fixed_state) IS
'Combine function of crm.retention(boolean, ...): ORs two partial states.';

CREATE FUNCTION crm.retention_fixed_finalfn(crm.retention_fixed_state) RETURNS int[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_finalfn';
COMMENT ON FUNCTION crm.retention_fixed_finalfn(crm.retention_fixed_state) IS
'Final function of crm.retention(boolean, ...): r[1] = cond1 held, r[k] = cond1 and condk held (1/0).';


CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean) IS
'Transition function of crm.retention with 1 condition: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean) IS
'crm.retention with 1 condition as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean) IS
'Transition function of crm.retention with 2 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean) IS
'crm.retention with 2 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean) IS
'Transition function of crm.retention with 3 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean) IS
'crm.retention with 3 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 4 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean) IS
'crm.retention with 4 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 5 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 5 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 6 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 6 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 7 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 7 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 8 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 8 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 9 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 9 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 10 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 10 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 11 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean, cond11 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 11 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 12 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean, cond11 boolean, cond12 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 12 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

-- crm.cohort_activity: the state is now about 160 bytes per entity
CREATE OR REPLACE AGGREGATE crm.cohort_activity(ts timestamptz, amount numeric, period text) (
    SFUNC = crm.cohort_activity_transfn,
    STYPE = crm.cohort_activity_state,
    COMBINEFUNC = crm.cohort_activity_combinefn,
    SSPACE = 160,
    PARALLEL = SAFE
);
-- automatic status: the row triggers no longer pin search_path with a SET
-- clause (they qualify every name and pin it in C where they parse SQL)
ALTER FUNCTION crm.status_event_trigger() RESET search_path;
ALTER FUNCTION crm.status_entity_trigger() RESET search_path;

-- coverage: UPDATE, DELETE and TRUNCATE of interactions are tracked
-- (crm.coverage_change_trigger, triggers crm_coverage_update and
-- crm_coverage_delete; crm.coverage_truncate_trigger, trigger
-- crm_coverage_truncate)
CREATE FUNCTION crm.coverage_change_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_change_trigger';
COMMENT ON FUNCTION crm.coverage_change_trigger() IS
'AFTER UPDATE / AFTER DELETE FOR EACH STATEMENT trigger (OLD TABLE, and NEW TABLE for UPDATE) that crm.attach_coverage installs on the interactions table: recomputes the crm.coverage rows of every customer whose counted interactions changed (old and new customer of an updated row, customer of a deleted row) from the interactions table, as crm.coverage_rebuild() would.';

CREATE FUNCTION crm.coverage_truncate_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_truncate_trigger';
COMMENT ON FUNCTION crm.coverage_truncate_trigger() IS
'AFTER TRUNCATE FOR EACH STATEMENT trigger that crm.attach_coverage installs on the interactions table: runs crm.coverage_rebuild() (no counted contact is left).';

-- the three triggers on the interactions table, with the configuration as arguments
CREATE FUNCTION crm._coverage_create_triggers(cfg crm.coverage_config) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := format('%L, %L, %L, %L, %L, %L, %L, %L',
                        cfg.customer_column, cfg.time_column,
                        coalesce(cfg.kind_column, ''), coalesce(cfg.counted_kinds::text, ''),
                        coalesce(cfg.direction_column, ''), coalesce(cfg.counted_directions::text, ''),
                        coalesce(cfg.automated_column, ''), cfg.unknown_customers);
BEGIN
    EXECUTE format('CREATE TRIGGER crm_coverage AFTER INSERT ON %s REFERENCING NEW TABLE AS crm_coverage_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS crm_coverage_old NEW TABLE AS crm_coverage_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_change_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS crm_coverage_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_change_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_truncate_trigger()', cfg.interactions);
END
$$;
COMMENT ON FUNCTION crm._coverage_create_triggers(crm.coverage_config) IS
'Creates the coverage triggers crm_coverage (INSERT), crm_coverage_update, crm_coverage_delete and crm_coverage_truncate on the configured interactions table (used by crm.attach_coverage).';

CREATE FUNCTION crm._coverage_drop_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t name;
BEGIN
    FOR t IN SELECT g.tgname FROM pg_trigger g
              WHERE g.tgrelid = rel AND g.tgname IN ('crm_coverage', 'crm_coverage_update', 'crm_coverage_delete', 'crm_coverage_truncate')
              ORDER BY 1 LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, rel);
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._coverage_drop_triggers(regclass) IS
'Drops whichever coverage triggers exist on a table (used by crm.attach_coverage and crm.detach_coverage).';

CREATE OR REPLACE FUNCTION crm.attach_coverage(
    interactions       regclass,
    customers          regclass DEFAULT NULL,
    class_column       name DEFAULT NULL,
    customer_column    name DEFAULT 'customer_id',
    time_column        name DEFAULT 'occurred_at',
    kind_column        name DEFAULT 'kind',
    counted_kinds      text[] DEFAULT '{call,meeting,email}',
    direction_column   name DEFAULT 'direction',
    counted_directions text[] DEFAULT NULL,
    automated_column   name DEFAULT 'automated',
    manager_column     name DEFAULT 'manager_id',
    since_column       name DEFAULT 'created_at',
    unknown_customers  text DEFAULT 'insert',
    customer_key_column name DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ints constant regtype[] := ARRAY['smallint', 'integer', 'bigint']::regtype[];
    times constant regtype[] := ARRAY['timestamptz', 'timestamp', 'date']::regtype[];
    old crm.coverage_config;
    relkind "char";
BEGIN
    IF interactions IS NULL THEN
        RAISE EXCEPTION 'interactions table must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF customer_column IS NULL OR time_column IS NULL THEN
        RAISE EXCEPTION 'customer_column and time_column must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO old FROM crm.coverage_config;
    IF FOUND AND old.interactions <> interactions
       AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = old.interactions) THEN
        RAISE EXCEPTION 'coverage is already attached to %', old.interactions
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.detach_coverage() first.';
    END IF;
    SELECT c.relkind INTO relkind FROM pg_class c WHERE c.oid = interactions;
    IF relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', interactions
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Attach coverage to the table that interactions are inserted into.';
    END IF;
    IF unknown_customers IS NULL OR unknown_customers NOT IN ('insert', 'ignore', 'error') THEN
        RAISE EXCEPTION 'unknown_customers must be insert, ignore or error, got %', coalesce(unknown_customers, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF counted_kinds = '{}' OR counted_directions = '{}' THEN
        RAISE EXCEPTION 'counted_kinds and counted_directions must not be empty arrays'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL to count every kind or direction.';
    END IF;
    IF array_position(counted_kinds, NULL) IS NOT NULL OR array_position(counted_directions, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'counted_kinds and counted_directions must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    PERFORM crm._coverage_require_type(interactions, customer_column, 'customer', ints, 'smallint, integer or bigint');
    PERFORM crm._coverage_require_type(interactions, time_column, 'time', times, 'timestamptz, timestamp or date');
    IF kind_column IS NOT NULL THEN
        PERFORM crm._coverage_column_type(interactions, kind_column, 'kind');
    ELSIF counted_kinds IS NOT NULL THEN
        counted_kinds := NULL;
    END IF;
    IF direction_column IS NOT NULL THEN
        PERFORM crm._coverage_column_type(interactions, direction_column, 'direction');
    END IF;
    IF automated_column IS NOT NULL THEN
        PERFORM crm._coverage_require_type(interactions, automated_column, 'automated', ARRAY['boolean']::regtype[], 'boolean');
    END IF;
    IF customers IS NOT NULL THEN
        customer_key_column := coalesce(customer_key_column, customer_column);
        PERFORM crm._coverage_require_type(customers, customer_key_column, 'customer_key', ints, 'smallint, integer or bigint');
        IF class_column IS NOT NULL THEN
            PERFORM crm._coverage_column_type(customers, class_column, 'class');
        END IF;
        IF manager_column IS NOT NULL THEN
            PERFORM crm._coverage_require_type(customers, manager_column, 'manager', ints, 'smallint, integer or bigint');
        END IF;
        IF since_column IS NOT NULL THEN
            PERFORM crm._coverage_require_type(customers, since_column, 'since', times, 'timestamptz, timestamp or date');
        END IF;
    ELSIF class_column IS NOT NULL THEN
        RAISE EXCEPTION 'class_column needs the customers table'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass customers => ''my_customers'', or set classes later with crm.coverage_set_classes().';
    END IF;

    PERFORM crm._coverage_drop_triggers(interactions);
    DELETE FROM crm.coverage_config;
    INSERT INTO crm.coverage_config (interactions, customer_column, time_column, kind_column, counted_kinds,
                                     direction_column, counted_directions, automated_column, customers,
                                     customer_key_column, class_column, manager_column, since_column, unknown_customers)
    VALUES (interactions, customer_column, time_column, kind_column, counted_kinds,
            direction_column, CASE WHEN direction_column IS NULL THEN NULL ELSE counted_directions END,
            automated_column, customers, CASE WHEN customers IS NULL THEN NULL ELSE customer_key_column END,
            class_column, CASE WHEN customers IS NULL THEN NULL ELSE manager_column END,
            CASE WHEN customers IS NULL THEN NULL ELSE since_column END, unknown_customers);
    PERFORM crm._coverage_create_triggers(c) FROM crm.coverage_config c;
    RETURN crm.coverage_rebuild();
END
$$;
COMMENT ON FUNCTION crm.attach_coverage(regclass, regclass, name, name, name, name, text[], name, text[], name, name, name, text, name) IS
'Installs the coverage triggers on the interactions table (crm_coverage: crm.coverage_trigger after INSERT; crm_coverage_update and crm_coverage_delete: crm.coverage_change_trigger after UPDATE and DELETE), records the configuration and fills crm.coverage with crm.coverage_rebuild(); returns the number of customers tracked.';

CREATE OR REPLACE FUNCTION crm.detach_coverage() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel regclass;
BEGIN
    SELECT interactions INTO rel FROM crm.coverage_config;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- the table may have been dropped since (then its triggers went with it)
    PERFORM crm._coverage_drop_triggers(rel);
    DELETE FROM crm.coverage_config;
    RETURN true;
END
$$;
COMMENT ON FUNCTION crm.detach_coverage() IS
'Drops the coverage triggers and the configuration; crm.coverage keeps its rows.  Returns false when nothing was attached.';

-- the statement crm.coverage_change_trigger runs: recompute the customers $1
CREATE FUNCTION crm._coverage_recompute_sql(cfg crm.coverage_config) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format(
    'WITH a AS ('
    '  SELECT k.k, s.last, s.n'
    '    FROM (SELECT DISTINCT u.k FROM pg_catalog.unnest($1::pg_catalog.int8[]) AS u(k)) k'
    '   CROSS JOIN LATERAL (SELECT pg_catalog.max(i.%2$I::pg_catalog.timestamptz) AS last, pg_catalog.count(*) AS n'
    '                         FROM %3$s i WHERE i.%1$I OPERATOR(pg_catalog.=) k.k AND %4$s) s),'
    ' upd AS (UPDATE crm.coverage c SET last_contact = a.last, contacts = a.n,'
    '                next_due = coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval'
    '           FROM a WHERE c.customer_id OPERATOR(pg_catalog.=) a.k'
    '            AND (a.n OPERATOR(pg_catalog.>) 0 OR %5$s)'
    '            AND (c.last_contact IS DISTINCT FROM a.last OR c.contacts IS DISTINCT FROM a.n'
    '                 OR c.next_due IS DISTINCT FROM coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval)'
    '         RETURNING c.customer_id),'
    ' del AS (DELETE FROM crm.coverage c USING a WHERE c.customer_id OPERATOR(pg_catalog.=) a.k'
    '            AND a.n OPERATOR(pg_catalog.=) 0 AND NOT (%5$s) RETURNING c.customer_id)'
    '%6$s'
    ' SELECT pg_catalog.min(a.k) FROM a WHERE a.n OPERATOR(pg_catalog.>) 0'
    '    AND NOT EXISTS (SELECT 1 FROM crm.coverage c WHERE c.customer_id OPERATOR(pg_catalog.=) a.k)',
    cfg.customer_column, cfg.time_column, cfg.interactions, crm._coverage_counted_filter(cfg, 'i'),
    -- rows that crm.coverage_rebuild() keeps without any counted contact
    CASE WHEN cfg.customers IS NULL THEN 'c.class IS NOT NULL'
         ELSE format('c.class IS NOT NULL OR EXISTS (SELECT 1 FROM %s cu WHERE cu.%I OPERATOR(pg_catalog.=) c.customer_id)',
                     cfg.customers, cfg.customer_key_column) END,
    CASE WHEN cfg.unknown_customers = 'insert' THEN
        ', ins AS (INSERT INTO crm.coverage AS c (customer_id, last_contact, contacts)'
        '          SELECT a.k, a.last, a.n FROM a WHERE a.n OPERATOR(pg_catalog.>) 0'
        '             AND NOT EXISTS (SELECT 1 FROM crm.coverage c2 WHERE c2.customer_id OPERATOR(pg_catalog.=) a.k)'
        '          ON CONFLICT (customer_id) DO UPDATE'
        '             SET last_contact = GREATEST(c.last_contact, excluded.last_contact),'
        '                 contacts = c.contacts OPERATOR(pg_catalog.+) excluded.contacts,'
        '                 next_due = GREATEST(c.last_contact, excluded.last_contact) OPERATOR(pg_catalog.+) c.contact_interval'
        '          RETURNING c.customer_id)'
         ELSE '' END)
$$;
COMMENT ON FUNCTION crm._coverage_recompute_sql(crm.coverage_config) IS
'The statement crm.coverage_change_trigger runs for the customers $1 (int8[]): last contact, contacts and next due recomputed from the counted interactions as crm.coverage_rebuild() computes them; rows the rebuild would not keep (no counted contact left, not in the customers table, no class) are deleted, customers new to crm.coverage are added under unknown_customers = insert.  Returns the smallest customer with counted contacts and no coverage row.';

-- An interactions table attached under 0.1.0 gets the UPDATE, DELETE and
-- TRUNCATE triggers here, from its stored configuration, and crm.coverage is rebuilt
-- once so that changes made before the upgrade are reflected.
DO $$
DECLARE
    cfg crm.coverage_config;
BEGIN
    SELECT * INTO cfg FROM crm.coverage_config;
    IF FOUND AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                          WHERE t.tgrelid OPERATOR(pg_catalog.=) cfg.interactions AND t.tgname OPERATOR(pg_catalog.=) 'crm_coverage') THEN
        PERFORM crm._coverage_drop_triggers(cfg.interactions);
        PERFORM crm._coverage_create_triggers(cfg);
        PERFORM crm.coverage_rebuild();
    END IF;
END
$$;

-- ---- step-name form ---------------------------------------------------------------
-- window_funnel_by_name(window, [mode,] ts, step text, steps text[]): the row
-- matches step k when step = steps[k] (byte-wise, as = under a deterministic
-- collation).  The usual shape of a CRM funnel (one stage name per event);
-- one comparison per step in C instead of one boolean expression per step.
-- A name of its own: as an overload of window_funnel, (..., text, text[])
-- would make 2-step calls with untyped arguments (NULL, '...', unbound
-- parameters) ambiguous with the (..., boolean, boolean) overload.
CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, timestamptz, text, text[])
RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_names_transfn';
COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, timestamptz, text, text[]) IS
'Transition function of crm.window_funnel_by_name(window, ts, step, steps): matches the step name against the names and appends the row in place.';

CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, text, timestamptz, text, text[])
RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_mode_names_transfn';
COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, text, timestamptz, text, text[]) IS
'Transition function of crm.window_funnel_by_name(window, mode, ts, step, steps): matches the step name against the names and appends the row in place.';

CREATE AGGREGATE crm.window_funnel_by_name("window" interval, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_by_name(interval, timestamptz, text, text[]) IS
'crm.window_funnel with step names: the row matches step k when step = steps[k]; the same result as crm.window_funnel with step = steps[k] as condition k.';

CREATE AGGREGATE crm.window_funnel_by_name("window" interval, mode text, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_by_name(interval, text, timestamptz, text, text[]) IS
'crm.window_funnel with a mode and step names (see crm.window_funnel_by_name(interval, timestamptz, text, text[])).';

CREATE AGGREGATE crm.window_funnel_times_by_name("window" interval, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_times_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_times_by_name(interval, timestamptz, text, text[]) IS
'crm.window_funnel_times with step names: the row matches step k when step = steps[k] (see crm.window_funnel_by_name).';

CREATE AGGREGATE crm.window_funnel_times_by_name("window" interval, mode text, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_times_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_times_by_name(interval, text, timestamptz, text, text[]) IS
'crm.window_funnel_times with a mode and step names (see crm.window_funnel_by_name).';

-- funnel_report: window_funnel_times_by_name instead of _funnel_step_flags
COMMENT ON FUNCTION crm._funnel_step_flags(text, text[]) IS
'Element k = (step = steps[k]), byte-wise; a NULL step matches nothing.  The step conditions of the boolean window_funnel for a step name (crm.funnel_report now calls crm.window_funnel_times_by_name).';

CREATE OR REPLACE FUNCTION crm.funnel_report(events_sql text, steps text[], "window" interval DEFAULT '30 days',
                                  mode text DEFAULT '')
RETURNS TABLE(step_no int, step text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
              dropped bigint, median_time_from_prev interval, lost_value numeric)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No SET search_path: the inner query is the caller's SQL and must resolve
-- with the caller's search_path; everything used here is schema-qualified.
AS $fn$
DECLARE
    ncols int;
    nsteps int;
BEGIN
    IF steps IS NULL THEN
        RAISE EXCEPTION 'funnel_report steps must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    END IF;
    IF COALESCE(pg_catalog.array_ndims(steps), 1) OPERATOR(pg_catalog.>) 1 THEN
        RAISE EXCEPTION 'funnel_report steps must be a one-dimensional array'
            USING ERRCODE = 'array_subscript_error',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    END IF;
    nsteps := COALESCE(pg_catalog.cardinality(steps), 0);
    IF nsteps OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'funnel_report needs at least 1 step'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    ELSIF nsteps OPERATOR(pg_catalog.>) 64 THEN
        RAISE EXCEPTION 'funnel_report supports at most 64 steps, got %', nsteps
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Merge steps or split the funnel in two.';
    END IF;
    IF pg_catalog.array_position(steps, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'funnel_report steps must not contain null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF "window" IS NULL THEN
        RAISE EXCEPTION 'funnel_report window must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass an interval such as ''30 days''.';
    END IF;
    IF mode IS NULL THEN
        RAISE EXCEPTION 'funnel_report mode must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass '''' for the default mode.';
    END IF;
    -- window and mode are checked by the aggregate itself, even when the inner query returns no rows
    PERFORM crm.window_funnel("window", mode, NULL::pg_catalog.timestamptz, true);
    ncols := crm._check_inner_query('crm.funnel_report', events_sql,
                                    ARRAY['entity any', 'ts timestamptz', 'step text', 'value numeric?']);
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH per AS (
            SELECT crm.window_funnel_times_by_name($1, $2, e.ts::pg_catalog.timestamptz,
                                                   e.step::pg_catalog.text, $3) AS t,
                   %s AS v
              FROM (%s
                   ) AS e(entity, ts, step%s)
             GROUP BY e.entity
        ), lv AS (
            SELECT pg_catalog.cardinality(t) AS lvl, t, v FROM per
        ), agg AS (
            SELECT k,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) k) AS entered,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) 1) AS first_n,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) (k OPERATOR(pg_catalog.-) 1)) AS prev_n,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.=) k
                                                 AND k OPERATOR(pg_catalog.<) $4) AS dropped,
                   pg_catalog.percentile_cont(0.5::pg_catalog.float8) WITHIN GROUP
                       (ORDER BY (t[k] OPERATOR(pg_catalog.-) t[k OPERATOR(pg_catalog.-) 1]))
                       FILTER (WHERE lvl OPERATOR(pg_catalog.>=) k AND k OPERATOR(pg_catalog.>) 1) AS med,
                   pg_catalog.sum(v) FILTER (WHERE lvl OPERATOR(pg_catalog.=) k
                                               AND k OPERATOR(pg_catalog.<) $4) AS lost
              FROM lv CROSS JOIN pg_catalog.generate_series(1, $4) AS k
             GROUP BY k
        )
        SELECT k, $3[k], entered,
               pg_catalog.round((100::pg_catalog.numeric OPERATOR(pg_catalog.*) entered)
                                OPERATOR(pg_catalog./) NULLIF(first_n, 0), 2),
               CASE WHEN k OPERATOR(pg_catalog.>) 1 THEN
                   pg_catalog.round((100::pg_catalog.numeric OPERATOR(pg_catalog.*) entered)
                                    OPERATOR(pg_catalog./) NULLIF(prev_n, 0), 2) END,
               dropped,
               med,
               CASE WHEN %s THEN COALESCE(lost, 0) END
          FROM agg
         ORDER BY k
    $q$,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN 'pg_catalog.max(e.value::pg_catalog.numeric)'
             ELSE 'NULL::pg_catalog.numeric' END,
        events_sql,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN ', value' ELSE '' END,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN 'true' ELSE 'false' END)
    USING "window", mode, steps, nsteps;
END
$fn$;
COMMENT ON FUNCTION crm.funnel_report(text, text[], interval, text) IS
'Funnel report over an inner query (entity, ts timestamptz, step text [, value numeric]): per step the entities that entered it, % of step 1 and of the previous step, the entities that stopped there, the median time from the previous step and the value they held (lost_value).';
