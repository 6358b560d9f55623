-- dashboard_fast.sql: the owner dashboard and the manager report answered
-- from the rollups (issue 21, docs/rollups.md "Reports from the rollups"):
-- the additive figures from crm.rollup_daily, the others from the per-entity
-- state of src/dashboard_fast_deals.sql, dashboard_fast_customers.sql and
-- dashboard_fast_leads.sql.  crm.owner_dashboard and crm.dashboard_managers
-- call these when crm._rollups_usable(); the rows equal the full computation
-- (test/rollups_fast.sql compares them).

-- ---------------------------------------------------------------------------
-- The owner dashboard's per-entity figures kept for the dashboard period
-- ---------------------------------------------------------------------------

-- The rows (metric, cur, prev) of crm._fast_owner_deals, _fast_owner_customers
-- and _fast_owner_leads for the bounds of the dashboard period (crm.dashboard_period()
-- and its previous period, in the rollups' time zone), written at the end of
-- crm.refresh_rollups (crm._rollup_owner_keep) and read by
-- crm._fast_owner_dashboard when its bounds and the fingerprint of the other
-- inputs of those functions (crm._owner_keep_fingerprint) equal the kept ones.
CREATE TABLE crm.rollup_owner_kept (
    ord    integer PRIMARY KEY,
    metric text NOT NULL,
    cur    numeric,
    prev   numeric
);
COMMENT ON TABLE crm.rollup_owner_kept IS
'Rollup state (derived, not dumped): the owner dashboard''s per-entity rows (metric, current and previous value: crm._fast_owner_deals, crm._fast_owner_customers, crm._fast_owner_leads) for the bounds and fingerprint of crm.rollup_owner_kept_key, written by crm.refresh_rollups; empty when no row set is kept.';
CREATE TABLE crm.rollup_owner_kept_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    cur_from    timestamptz NOT NULL,
    cur_to      timestamptz NOT NULL,
    prev_from   timestamptz NOT NULL,
    fingerprint text NOT NULL,
    written_at  timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_owner_kept_key IS
'Rollup state (derived, not dumped): the bounds (current period [cur_from, cur_to), previous from prev_from) and the fingerprint (crm._owner_keep_fingerprint) the rows of crm.rollup_owner_kept were computed for, and when they were written; no row = nothing kept.';

-- Every input crm._fast_owner_deals, _fast_owner_customers and _fast_owner_leads
-- read besides the rollup tables and their arguments: the time zone, the
-- contact interval of class A (crm._dashboard_coverage_interval), the lead
-- SLA (crm._lead_sla), the pipeline stages with their order, outcome,
-- probability and norm.  (The registered sources and the stage list are
-- also checked by the gate, crm._rollups_built.)
CREATE FUNCTION crm._owner_keep_fingerprint() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT md5(concat_ws(E'\n', current_setting('TimeZone'), crm._dashboard_coverage_interval('A')::text, crm._lead_sla()::text,
                     coalesce((SELECT string_agg(format('%s|%s|%s|%s|%s', s.stage, s.stage_order, s.outcome, s.probability, s.max_days),
                                                 E'\n' ORDER BY s.stage_order, s.stage)
                                 FROM crm.pipeline_stages s), '')))
$$;
COMMENT ON FUNCTION crm._owner_keep_fingerprint() IS
'A hash of the inputs of the owner dashboard''s per-entity figures besides the rollup tables: the time zone, class A''s contact interval, the lead SLA and the pipeline stages (order, outcome, probability, norm); crm.rollup_owner_kept is read only while it equals the kept one.';

-- Called at the end of crm.refresh_rollups with the parts recomputed and their
-- bounds: rewrites the kept rows for the dashboard period when a part was
-- recomputed from a moment before the period's end (for leads and spend: from
-- a month starting before it, as the cost of a lead is per calendar month), the
-- period moved, the fingerprint changed or nothing is kept; a refresh of
-- changes at or after the end leaves them.  An error computing them keeps
-- nothing (the report then computes them and raises it).  Returns the rows written.
CREATE FUNCTION crm._rollup_owner_keep(parts text[], bounds timestamptz[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_tz text := current_setting('TimeZone');
    tz     text := (SELECT s.time_zone FROM crm.rollup_status s);
    k      record;
    b      record;
    fp     text;
    ok     boolean := false;
    n      bigint := 0;
BEGIN
    IF tz IS NOT NULL THEN
        PERFORM set_config('TimeZone', tz, true);
    END IF;
    BEGIN
        SELECT * INTO b FROM crm.dashboard_period() AS p, LATERAL crm._period_bounds('crm.owner_dashboard', p.period_from, p.period_to) AS x;
        fp := crm._owner_keep_fingerprint();
        -- only a period already past (as the kept classes): a running period's rows would be
        -- written again by every refresh after new orders; they are computed when read
        ok := b.cur_to <= now();
        SELECT * INTO k FROM crm.rollup_owner_kept_key;
        IF k.cur_to IS NOT NULL AND k.cur_from = b.cur_from AND k.cur_to = b.cur_to AND k.prev_from = b.prev_from
           AND k.fingerprint = fp
           AND NOT EXISTS (SELECT 1 FROM unnest(parts, bounds) AS u(part, bound)
                            WHERE CASE WHEN u.part IN ('leads', 'spend') THEN date_trunc('month', u.bound) ELSE u.bound END < b.cur_to) THEN
            PERFORM set_config('TimeZone', old_tz, true);
            RETURN 0;
        END IF;
    EXCEPTION WHEN data_exception OR invalid_parameter_value THEN
        -- no dashboard period (a setting the reports refuse): nothing kept
        ok := false;
    END;
    DELETE FROM crm.rollup_owner_kept;
    DELETE FROM crm.rollup_owner_kept_key;
    IF ok THEN
        BEGIN
            INSERT INTO crm.rollup_owner_kept (ord, metric, cur, prev)
            SELECT row_number() OVER (), x.metric, x.cur, x.prev FROM (
                SELECT d.metric, d.cur, d.prev FROM crm._fast_owner_deals(b.cur_from, b.cur_to, b.prev_from) d
                UNION ALL
                SELECT c.metric, c.cur, c.prev FROM crm._fast_owner_customers(b.cur_from, b.cur_to, b.prev_from) c
                UNION ALL
                SELECT l.metric, l.cur, l.prev FROM crm._fast_owner_leads(b.cur_from, b.cur_to, b.prev_from) l) AS x;
            GET DIAGNOSTICS n = ROW_COUNT;
            INSERT INTO crm.rollup_owner_kept_key (cur_from, cur_to, prev_from, fingerprint, written_at)
            VALUES (b.cur_from, b.cur_to, b.prev_from, fp, clock_timestamp());
        EXCEPTION WHEN OTHERS THEN
            n := 0;   -- not kept: computed when read (the same error as the full path)
        END;
    END IF;
    PERFORM set_config('TimeZone', old_tz, true);
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_owner_keep(text[], timestamptz[]) IS
'End of crm.refresh_rollups (parts recomputed and their bounds): rewrites crm.rollup_owner_kept and crm.rollup_owner_kept_key for the dashboard period (in the rollups'' time zone; only a period already past) when a part was recomputed from before the period''s end (leads and spend: from a month starting before it), the period or crm._owner_keep_fingerprint() changed, or nothing is kept (the orders part empties the key when a class-A customer''s customers rows change); an error computing the rows keeps nothing; rows written.';

CREATE FUNCTION crm._fast_owner_dashboard(period_from date, period_to date)
RETURNS TABLE (metric text, value numeric, unit text, previous_value numeric, change_pct numeric, section text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b    record;
    kept boolean;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard', period_from, period_to);
    -- the per-entity rows kept for these bounds (crm._rollup_owner_keep) while
    -- the other inputs are as they were then
    kept := EXISTS (SELECT 1 FROM crm.rollup_owner_kept_key k
                     WHERE k.cur_from = b.cur_from AND k.cur_to = b.cur_to AND k.prev_from = b.prev_from
                       AND k.fingerprint = crm._owner_keep_fingerprint());
    RETURN QUERY
    WITH
    -- the additive figures of both periods (days in the rollups' time zone,
    -- which crm._rollups_usable requires to be the session's)
    s AS (
        SELECT r.metric AS m, sum(r.value) FILTER (WHERE r.day >= period_from) AS c,
               sum(r.value) FILTER (WHERE r.day < period_from) AS p
          FROM crm.rollup_daily r
         WHERE r.day >= b.prev_from::date AND r.day <= period_to AND r.dimension = 'all'
           AND r.metric IN ('leads_in', 'new_buyers', 'marketing_spend', 'revenue', 'orders', 'gross_profit')
         GROUP BY 1),
    a AS (
        SELECT max(s.c) FILTER (WHERE s.m = 'leads_in') AS c_leads, max(s.p) FILTER (WHERE s.m = 'leads_in') AS p_leads,
               coalesce(max(s.c) FILTER (WHERE s.m = 'new_buyers'), 0) AS c_new, coalesce(max(s.p) FILTER (WHERE s.m = 'new_buyers'), 0) AS p_new,
               max(s.c) FILTER (WHERE s.m = 'marketing_spend') AS c_spend, max(s.p) FILTER (WHERE s.m = 'marketing_spend') AS p_spend,
               max(s.c) FILTER (WHERE s.m = 'revenue') AS c_rev, max(s.p) FILTER (WHERE s.m = 'revenue') AS p_rev,
               coalesce(max(s.c) FILTER (WHERE s.m = 'orders'), 0) AS c_ord, coalesce(max(s.p) FILTER (WHERE s.m = 'orders'), 0) AS p_ord,
               max(s.c) FILTER (WHERE s.m = 'gross_profit') AS c_gp, max(s.p) FILTER (WHERE s.m = 'gross_profit') AS p_gp
          FROM s),
    -- the figures kept per entity: the rows kept for the period, else computed
    x AS MATERIALIZED (
        SELECT k.metric, k.cur, k.prev FROM crm.rollup_owner_kept k WHERE kept
        UNION ALL
        SELECT d.metric, d.cur, d.prev FROM crm._fast_owner_deals(b.cur_from, b.cur_to, b.prev_from) d WHERE NOT kept
        UNION ALL
        SELECT c.metric, c.cur, c.prev FROM crm._fast_owner_customers(b.cur_from, b.cur_to, b.prev_from) c WHERE NOT kept
        UNION ALL
        SELECT l.metric, l.cur, l.prev FROM crm._fast_owner_leads(b.cur_from, b.cur_to, b.prev_from) l WHERE NOT kept),
    xv AS (
        SELECT max(x.cur) FILTER (WHERE x.metric = 'buyers') AS c_buyers, max(x.prev) FILTER (WHERE x.metric = 'buyers') AS p_buyers,
               max(x.cur) FILTER (WHERE x.metric = '_leads_converted') AS c_conv, max(x.prev) FILTER (WHERE x.metric = '_leads_converted') AS p_conv,
               max(x.cur) FILTER (WHERE x.metric = '_leads_cost') AS c_lcost, max(x.prev) FILTER (WHERE x.metric = '_leads_cost') AS p_lcost
          FROM x),
    rows AS (
        SELECT v.* FROM a, xv, LATERAL (VALUES
            (1::numeric, 'acquisition', 'leads_in', coalesce(a.c_leads, 0), coalesce(a.p_leads, 0), 'count'),
            (2, 'acquisition', 'new_buyers', a.c_new, a.p_new, 'count'),
            (4, 'acquisition', 'marketing_spend', coalesce(a.c_spend, 0), coalesce(a.p_spend, 0), 'money'),
            (5, 'acquisition', 'cac', round(coalesce(a.c_spend, 0) / nullif(a.c_new, 0), 2), round(coalesce(a.p_spend, 0) / nullif(a.p_new, 0), 2), 'money'),
            (6, 'sales', 'revenue', coalesce(a.c_rev, 0), coalesce(a.p_rev, 0), 'money'),
            (7, 'sales', 'orders', a.c_ord, a.p_ord, 'count'),
            (8, 'sales', 'average_check', round(a.c_rev / nullif(a.c_ord, 0), 2), round(a.p_rev / nullif(a.p_ord, 0), 2), 'money'),
            (10, 'sales', 'gross_profit', coalesce(a.c_gp, 0), coalesce(a.p_gp, 0), 'money'),
            (11, 'sales', 'roi', round((100.0 * (coalesce(a.c_gp, 0) - a.c_spend)) / nullif(a.c_spend, 0), 2),
                                 round((100.0 * (coalesce(a.p_gp, 0) - a.p_spend)) / nullif(a.p_spend, 0), 2), 'pct'),
            -- the value of one lead: revenue per buyer x lead-to-buyer conversion - cost per lead
            (1006.1, 'money_lost', 'lost_opportunity_cost',
                 round((a.c_rev / nullif(xv.c_buyers, 0) * xv.c_conv - coalesce(xv.c_lcost, 0)) / nullif(a.c_leads, 0), 2),
                 round((a.p_rev / nullif(xv.p_buyers, 0) * xv.p_conv - coalesce(xv.p_lcost, 0)) / nullif(a.p_leads, 0), 2), 'money')
          ) AS v(ord, sec, name, cur, prev, u)
        UNION ALL
        SELECT o.ord, o.sec, x.metric, x.cur, x.prev, o.u
          FROM x JOIN (VALUES
            (3::numeric, 'acquisition', 'lead_to_buyer_conversion', 'pct'),
            (7.1, 'sales', 'buyers', 'count'),
            (9, 'sales', 'repeat_purchase_rate', 'pct'),
            (12, 'pipeline', 'win_rate', 'pct'),
            (13, 'pipeline', 'deals_won', 'count'),
            (14, 'pipeline', 'average_won_deal', 'money'),
            (15, 'pipeline', 'sales_cycle', 'days'),
            (16, 'pipeline', 'open_deals', 'count'),
            (17, 'pipeline', 'open_pipeline_value', 'money'),
            (18, 'pipeline', 'weighted_pipeline', 'money'),
            (18.1, 'pipeline', 'stale_deals', 'count'),
            (18.2, 'pipeline', 'stale_pipeline_value', 'money'),
            (19, 'pipeline', 'sales_velocity', 'money_per_day'),
            (20, 'money_lost', 'deals_lost', 'count'),
            (21, 'money_lost', 'lost_deal_value', 'money'),
            (900, 'money_lost', 'churned_customers', 'count'),
            (901, 'money_lost', 'churn_rate', 'pct'),
            (902, 'money_lost', 'churned_revenue', 'money'),
            (1000, 'money_lost', 'unpaid_invoices', 'count'),
            (1001, 'money_lost', 'unpaid_invoice_amount', 'money'),
            (1002, 'money_lost', 'unpaid_invoice_age', 'days'),
            (1003, 'money_lost', 'overdue_invoices', 'count'),
            (1004, 'money_lost', 'overdue_invoice_amount', 'money'),
            (1005, 'money_lost', 'unanswered_leads', 'count'),
            (1006, 'money_lost', 'unanswered_leads_cost', 'money'),
            (1007, 'money_lost', 'overdue_class_a_customers', 'count')) AS o(ord, sec, name, u)
            ON o.name = x.metric
        UNION ALL
        SELECT 100 + ps.stage_order, 'money_lost', x.metric, x.cur, x.prev, 'money'
          FROM x JOIN crm.pipeline_stages ps ON ps.outcome = 'open' AND x.metric = 'lost_value_at_' || ps.stage)
    SELECT rows.name, rows.cur, rows.u, rows.prev,
           round((100.0 * (rows.cur - rows.prev)) / nullif(abs(rows.prev), 0), 2), rows.sec
      FROM rows ORDER BY rows.ord;
END
$$;
COMMENT ON FUNCTION crm._fast_owner_dashboard(date, date) IS
'crm.owner_dashboard answered from the rollups (the additive figures from crm.rollup_daily, the others from the per-entity rollups): the same rows, called when crm._rollups_usable().';

CREATE FUNCTION crm._fast_managers(period_from date, period_to date)
RETURNS TABLE (manager_id text, leads bigint, answered_leads bigint, unanswered_leads bigint,
               median_response_minutes numeric, deals_won bigint, deals_lost bigint, win_rate_pct numeric,
               revenue numeric, customers bigint, covered_customers bigint, coverage_pct numeric,
               calls bigint, meetings bigint, emails bigint, contacts bigint,
               average_won_deal numeric, sales_cycle_days numeric)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_managers', period_from, period_to);
    RETURN QUERY
    WITH
    lm AS MATERIALIZED (SELECT * FROM crm._fast_managers_leads(b.cur_from, b.cur_to)),
    dm AS MATERIALIZED (SELECT * FROM crm._fast_managers_deals(b.cur_from, b.cur_to)),
    cu AS MATERIALIZED (SELECT * FROM crm._fast_managers_customers(b.cur_from, b.cur_to)),
    ct AS MATERIALIZED (SELECT * FROM crm._fast_managers_contacts(b.cur_from, b.cur_to)),
    m AS (SELECT lm.manager_id FROM lm UNION SELECT dm.manager_id FROM dm UNION SELECT cu.manager_id FROM cu
          UNION SELECT ct.manager_id FROM ct)
    SELECT m.manager_id, coalesce(lm.leads, 0), coalesce(lm.answered, 0), coalesce(lm.leads - lm.answered, 0),
           round(lm.med::numeric, 2), coalesce(dm.won, 0), coalesce(dm.lost, 0),
           round((100.0 * dm.won) / nullif(dm.won + dm.lost, 0), 2),
           coalesce(cu.revenue, 0), coalesce(cu.customers, 0), coalesce(cu.covered, 0),
           round((100.0 * cu.covered) / nullif(cu.customers, 0), 2),
           coalesce(ct.calls, 0), coalesce(ct.meetings, 0), coalesce(ct.emails, 0), coalesce(ct.contacts, 0),
           round(dm.avg_won, 2), round(dm.cycle, 2)
      FROM m LEFT JOIN lm ON lm.manager_id IS NOT DISTINCT FROM m.manager_id
             LEFT JOIN dm ON dm.manager_id IS NOT DISTINCT FROM m.manager_id
             LEFT JOIN cu ON cu.manager_id IS NOT DISTINCT FROM m.manager_id
             LEFT JOIN ct ON ct.manager_id IS NOT DISTINCT FROM m.manager_id
     ORDER BY m.manager_id;
END
$$;
COMMENT ON FUNCTION crm._fast_managers(date, date) IS
'crm.dashboard_managers answered from the per-entity rollups (leads and first responses, deals, customers and coverage, contacts): the same rows, called when crm._rollups_usable().';
