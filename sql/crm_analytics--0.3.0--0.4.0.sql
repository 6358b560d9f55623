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
-- crm.owner_dashboard: new rows buyers, churned_customers, churn_rate,
-- churned_revenue, lost_opportunity_cost (same signature: only its query changes)
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
    SELECT lead_id, created_at, channel, customer_id, created_at OPERATOR(pg_catalog.>=) $1 AS is_cur
      FROM %1$s WHERE created_at OPERATOR(pg_catalog.>=) $3 AND created_at OPERATOR(pg_catalog.<) $2),
od AS NOT MATERIALIZED (
    SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at OPERATOR(pg_catalog.<) $2),
-- per customer: first order, orders up to each period end, revenue of the
-- 12 months before each end (ABC class)
cu AS MATERIALIZED (
    SELECT customer_id, pg_catalog.min(ordered_at) AS first_at,
           pg_catalog.count(*) AS n_cur_end, pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS n_prev_end,
           pg_catalog.bool_or(ordered_at OPERATOR(pg_catalog.>=) $1) AS in_cur,
           pg_catalog.bool_or(ordered_at OPERATOR(pg_catalog.>=) $3 AND ordered_at OPERATOR(pg_catalog.<) $4) AS in_prev,
           -- churn: the period before the previous one (same length: dates, as crm._period_bounds)
           pg_catalog.bool_or(ordered_at OPERATOR(pg_catalog.>=) ($3::pg_catalog.date OPERATOR(pg_catalog.-) ($1::pg_catalog.date OPERATOR(pg_catalog.-) $3::pg_catalog.date))::pg_catalog.timestamptz
                              AND ordered_at OPERATOR(pg_catalog.<) $3) AS in_prev2,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $3 AND ordered_at OPERATOR(pg_catalog.<) $4) AS rev_prev,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) ($3::pg_catalog.date OPERATOR(pg_catalog.-) ($1::pg_catalog.date OPERATOR(pg_catalog.-) $3::pg_catalog.date))::pg_catalog.timestamptz
                                        AND ordered_at OPERATOR(pg_catalog.<) $3) AS rev_prev2,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) ($2 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval)) AS rev12_cur,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) ($4 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval) AND ordered_at OPERATOR(pg_catalog.<) $4) AS rev12_prev
      FROM od GROUP BY customer_id),
om AS (
    SELECT pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_revenue,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_revenue,
           pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_orders,
           pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_orders,
           pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_gp,
           pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_gp
      FROM od WHERE ordered_at OPERATOR(pg_catalog.>=) $3),
cm AS (
    SELECT pg_catalog.count(*) FILTER (WHERE first_at OPERATOR(pg_catalog.>=) $1) AS c_new,
           pg_catalog.count(*) FILTER (WHERE first_at OPERATOR(pg_catalog.>=) $3 AND first_at OPERATOR(pg_catalog.<) $4) AS p_new,
           pg_catalog.count(*) FILTER (WHERE in_cur) AS c_active,
           pg_catalog.count(*) FILTER (WHERE in_cur AND n_cur_end OPERATOR(pg_catalog.>=) 2) AS c_repeat,
           pg_catalog.count(*) FILTER (WHERE in_prev) AS p_active,
           pg_catalog.count(*) FILTER (WHERE in_prev AND n_prev_end OPERATOR(pg_catalog.>=) 2) AS p_repeat,
           -- churned: bought in the period before, not in this one; what they had brought in the period before
           pg_catalog.count(*) FILTER (WHERE in_prev AND NOT coalesce(in_cur, false)) AS c_churned,
           pg_catalog.count(*) FILTER (WHERE in_prev2 AND NOT coalesce(in_prev, false)) AS p_churned,
           pg_catalog.count(*) FILTER (WHERE in_prev2) AS p2_active,
           pg_catalog.sum(rev_prev) FILTER (WHERE in_prev AND NOT coalesce(in_cur, false)) AS c_churned_rev,
           pg_catalog.sum(rev_prev2) FILTER (WHERE in_prev2 AND NOT coalesce(in_prev, false)) AS p_churned_rev
      FROM cu),
sp AS (
    SELECT channel, spent_on OPERATOR(pg_catalog.>=) $1 AS is_cur, pg_catalog.sum(amount) AS amount
      FROM %3$s WHERE spent_on OPERATOR(pg_catalog.>=) $3 AND spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1, 2),
spm AS (
    SELECT pg_catalog.sum(amount) FILTER (WHERE is_cur) AS c_spend, pg_catalog.sum(amount) FILTER (WHERE NOT is_cur) AS p_spend FROM sp),
-- cost per lead (channel-month rule, crm._lead_cost_sql), every month the
-- periods touch
cpl AS (%17$s),
-- real (non-automated) contacts that can matter: from the start of the
-- previous period (first responses to its leads) or from a month before its
-- end (the class-A contact check), up to the end
-- a lead's first response: its first real outbound contact at or after its
-- creation (read straight from the source: an index on its time column helps)
lf AS (
    SELECT ix.lead_id, pg_catalog.min(ix.occurred_at) AS first_contact
      FROM %4$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) ix.lead_id
     WHERE NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.occurred_at OPERATOR(pg_catalog.>=) $3 AND ix.occurred_at OPERATOR(pg_catalog.<) $2 AND ix.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
     GROUP BY ix.lead_id),
lx AS (
    SELECT ld.channel, ld.is_cur, pg_catalog.date_trunc('month', ld.created_at) AS month, pg_catalog.count(*) AS n,
           pg_catalog.count(*) FILTER (WHERE cu.first_at OPERATOR(pg_catalog.<) CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS converted,
           pg_catalog.count(*) FILTER (WHERE lf.first_contact IS NULL
                               OR lf.first_contact OPERATOR(pg_catalog.>=) CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS unanswered
      FROM ld LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) ld.customer_id
              LEFT JOIN lf ON lf.lead_id OPERATOR(pg_catalog.=) ld.lead_id
     GROUP BY 1, 2, 3),
lm AS (
    SELECT pg_catalog.sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, pg_catalog.sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           pg_catalog.sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, pg_catalog.sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           pg_catalog.sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, pg_catalog.sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           pg_catalog.sum(unanswered OPERATOR(pg_catalog.*) coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           pg_catalog.sum(unanswered OPERATOR(pg_catalog.*) coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost,
           -- cost of all the period's leads (channel-month rule): lost_opportunity_cost
           pg_catalog.sum(lx.n OPERATOR(pg_catalog.*) coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_leads_cost,
           pg_catalog.sum(lx.n OPERATOR(pg_catalog.*) coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_leads_cost
      FROM lx LEFT JOIN cpl ON cpl.channel OPERATOR(pg_catalog.=) lx.channel AND cpl.month OPERATOR(pg_catalog.=) lx.month),
iv AS (
    SELECT issued_at, due_at, amount, paid_at FROM %5$s
     WHERE issued_at OPERATOR(pg_catalog.<) $2 AND (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $4)),
im AS (
    SELECT pg_catalog.count(*) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid,
           pg_catalog.sum(amount) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid_amt,
           pg_catalog.avg(extract(epoch FROM $2 OPERATOR(pg_catalog.-) issued_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid_age,
           pg_catalog.count(*) FILTER (WHERE (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AND due_at OPERATOR(pg_catalog.<) $2) AS c_overdue,
           pg_catalog.sum(amount) FILTER (WHERE (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AND due_at OPERATOR(pg_catalog.<) $2) AS c_overdue_amt,
           pg_catalog.count(*) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid,
           pg_catalog.sum(amount) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid_amt,
           pg_catalog.avg(extract(epoch FROM $4 OPERATOR(pg_catalog.-) issued_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid_age,
           pg_catalog.count(*) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4 AND due_at OPERATOR(pg_catalog.<) $4) AS p_overdue,
           pg_catalog.sum(amount) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4 AND due_at OPERATOR(pg_catalog.<) $4) AS p_overdue_amt
      FROM iv),
ev AS (
    SELECT deal_id, changed_at, amount, %7$s AS so
      FROM %6$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASE is computed once per row, not once per aggregate
-- per deal, with the stage names mapped once (to stage_order; NULL = a stage
-- crm.pipeline_stages does not list); deals closed before the previous
-- period matter to no figure (unknown stages are counted on all)
dl AS (
    SELECT deal_id, pg_catalog.min(changed_at) AS created_at, pg_catalog.max(amount) AS amount,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%8$s]::pg_catalog.int4[])) AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%9$s]::pg_catalog.int4[])) AS lost_at,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%10$s]::pg_catalog.int4[])) AS open_cur,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%10$s]::pg_catalog.int4[]) AND changed_at OPERATOR(pg_catalog.<) $4) AS open_prev,
           pg_catalog.max(changed_at) AS last_cur,
           pg_catalog.max(changed_at) FILTER (WHERE changed_at OPERATOR(pg_catalog.<) $4) AS last_prev,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(so) AS unknown
      FROM ev GROUP BY deal_id),
dc AS MATERIALIZED (
    SELECT dl.*, least(won_at, lost_at) AS closed_at,
           won_at IS NOT NULL AND won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at) AS is_won,
           %11$s AS p_cur, %12$s AS p_prev,
           coalesce(last_cur OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) %14$s), false) AS stale_cur,
           coalesce(last_prev OPERATOR(pg_catalog.<) ($4 OPERATOR(pg_catalog.-) %15$s), false) AS stale_prev
      FROM dl
     WHERE least(won_at, lost_at) IS NULL OR least(won_at, lost_at) OPERATOR(pg_catalog.>=) $3 OR unknown OPERATOR(pg_catalog.>) 0),
dm AS (
    SELECT pg_catalog.count(*) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_won,
           pg_catalog.count(*) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_lost,
           pg_catalog.count(*) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_won,
           pg_catalog.count(*) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_lost,
           pg_catalog.sum(amount) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_lost_amt,
           pg_catalog.sum(amount) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_lost_amt,
           pg_catalog.avg(amount) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_avg_won,
           pg_catalog.avg(amount) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_avg_won,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_cycle,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_cycle,
           pg_catalog.count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open,
           pg_catalog.count(*) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4)) AS p_open,
           pg_catalog.sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open_amt,
           pg_catalog.sum(amount) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4)) AS p_open_amt,
           pg_catalog.sum(amount OPERATOR(pg_catalog.*) p_cur) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND NOT stale_cur) AS c_weighted,
           pg_catalog.sum(amount OPERATOR(pg_catalog.*) p_prev) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4) AND NOT stale_prev) AS p_weighted,
           pg_catalog.count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND stale_cur) AS c_stale,
           pg_catalog.count(*) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4) AND stale_prev) AS p_stale,
           pg_catalog.sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND stale_cur) AS c_stale_amt,
           pg_catalog.sum(amount) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4) AND stale_prev) AS p_stale_amt,
           crm._check_stages(pg_catalog.sum(unknown)) AS stages_ok
      FROM dc),
-- lost deals by the most advanced open stage they reached
lost AS (
    SELECT st.stage, st.stage_order,
           coalesce(pg_catalog.sum(dc.amount) FILTER (WHERE dc.closed_at OPERATOR(pg_catalog.>=) $1), 0) AS c_amt,
           coalesce(pg_catalog.sum(dc.amount) FILTER (WHERE dc.closed_at OPERATOR(pg_catalog.<) $4), 0) AS p_amt
      FROM st LEFT JOIN dc ON dc.open_cur OPERATOR(pg_catalog.=) st.stage_order AND NOT dc.is_won AND dc.closed_at OPERATOR(pg_catalog.>=) $3
     WHERE st.outcome OPERATOR(pg_catalog.=) 'open'
     GROUP BY st.stage, st.stage_order),
-- class A (crm.abc_class semantics, 0.80 of the revenue of the 12 months
-- before the period end; the tests check it against crm.abc_class) customers
-- without a real contact within the class-A interval of crm.coverage_policy
-- (default 1 month) before the end
lc AS (
    SELECT customer_id, pg_catalog.max(occurred_at) AS last_cur, pg_catalog.max(occurred_at) FILTER (WHERE occurred_at OPERATOR(pg_catalog.<) $4) AS last_prev
      FROM %13$s
     WHERE customer_id IS NOT NULL AND NOT automated
       AND occurred_at OPERATOR(pg_catalog.>=) ($4 OPERATOR(pg_catalog.-) (SELECT a_int FROM pol)) AND occurred_at OPERATOR(pg_catalog.<) $2
     GROUP BY customer_id),
-- class A by crm.abc_class itself (a C window function over all customers,
-- no sort) at both period ends
ab AS (
    SELECT customer_id, first_at, crm.abc_class(rev12_cur::pg_catalog.float8) OVER () AS c_cls,
           crm.abc_class(rev12_prev::pg_catalog.float8) OVER () AS p_cls
      FROM cu),
-- overdue as crm.coverage judges it: next due = (last real contact, or, never
-- contacted, customer since: the customers source's created_at, else the first
-- order) + the interval, overdue when that is before the end.  Without a
-- contact in the window, a customer who became one within the last interval
-- is overdue only if contacted before it (before becoming a customer)
ax AS (
    SELECT ab.c_cls, ab.p_cls, lc.last_cur, lc.last_prev,
           coalesce(cs.since, ab.first_at) AS since, ab.customer_id
      FROM ab LEFT JOIN lc ON lc.customer_id OPERATOR(pg_catalog.=) ab.customer_id
              LEFT JOIN (SELECT customer_id, pg_catalog.min(created_at) AS since FROM %16$s GROUP BY 1) AS cs
                     ON cs.customer_id OPERATOR(pg_catalog.=) ab.customer_id
     WHERE ab.c_cls OPERATOR(pg_catalog.=) 'A' OR ab.p_cls OPERATOR(pg_catalog.=) 'A'),
am AS (
    SELECT pg_catalog.count(*) FILTER (WHERE ax.c_cls OPERATOR(pg_catalog.=) 'A'
                             AND CASE WHEN ax.last_cur IS NOT NULL THEN ax.last_cur OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) pol.a_int)
                                      WHEN ax.since OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) pol.a_int) THEN true
                                      ELSE EXISTS (SELECT FROM %13$s WHERE customer_id OPERATOR(pg_catalog.=) ax.customer_id AND NOT automated
                                                      AND occurred_at OPERATOR(pg_catalog.<) $2) END) AS c_a_overdue,
           pg_catalog.count(*) FILTER (WHERE ax.p_cls OPERATOR(pg_catalog.=) 'A'
                             AND CASE WHEN ax.last_prev IS NOT NULL THEN ax.last_prev OPERATOR(pg_catalog.<) ($4 OPERATOR(pg_catalog.-) pol.a_int)
                                      WHEN ax.since OPERATOR(pg_catalog.<) ($4 OPERATOR(pg_catalog.-) pol.a_int) THEN true
                                      ELSE EXISTS (SELECT FROM %13$s WHERE customer_id OPERATOR(pg_catalog.=) ax.customer_id AND NOT automated
                                                      AND occurred_at OPERATOR(pg_catalog.<) $4) END) AS p_a_overdue
      FROM ax CROSS JOIN pol),
rows AS (
    SELECT v.*
      FROM om, cm, spm, lm, im, dm, am,
      LATERAL (VALUES
        (1,  'acquisition', 'leads_in', coalesce(c_leads, 0), coalesce(p_leads, 0), 'count'),
        (2,  'acquisition', 'new_buyers', c_new::numeric, p_new::numeric, 'count'),
        (3,  'acquisition', 'lead_to_buyer_conversion', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_conv) OPERATOR(pg_catalog./) CASE WHEN c_leads OPERATOR(pg_catalog.<>) 0 THEN c_leads END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_conv) OPERATOR(pg_catalog./) CASE WHEN p_leads OPERATOR(pg_catalog.<>) 0 THEN p_leads END, 2), 'pct'),
        (4,  'acquisition', 'marketing_spend', coalesce(c_spend, 0), coalesce(p_spend, 0), 'money'),
        (5,  'acquisition', 'cac', pg_catalog.round(coalesce(c_spend, 0) OPERATOR(pg_catalog./) CASE WHEN c_new OPERATOR(pg_catalog.<>) 0 THEN c_new END, 2), pg_catalog.round(coalesce(p_spend, 0) OPERATOR(pg_catalog./) CASE WHEN p_new OPERATOR(pg_catalog.<>) 0 THEN p_new END, 2), 'money'),
        (6,  'sales', 'revenue', coalesce(c_revenue, 0), coalesce(p_revenue, 0), 'money'),
        (7,  'sales', 'orders', c_orders::numeric, p_orders::numeric, 'count'),
        (7.1, 'sales', 'buyers', c_active::numeric, p_active::numeric, 'count'),
        (8,  'sales', 'average_check', pg_catalog.round(c_revenue OPERATOR(pg_catalog./) CASE WHEN c_orders OPERATOR(pg_catalog.<>) 0 THEN c_orders END, 2), pg_catalog.round(p_revenue OPERATOR(pg_catalog./) CASE WHEN p_orders OPERATOR(pg_catalog.<>) 0 THEN p_orders END, 2), 'money'),
        (9,  'sales', 'repeat_purchase_rate', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_repeat) OPERATOR(pg_catalog./) CASE WHEN c_active OPERATOR(pg_catalog.<>) 0 THEN c_active END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_repeat) OPERATOR(pg_catalog./) CASE WHEN p_active OPERATOR(pg_catalog.<>) 0 THEN p_active END, 2), 'pct'),
        (10, 'sales', 'gross_profit', coalesce(c_gp, 0), coalesce(p_gp, 0), 'money'),
        (11, 'sales', 'roi', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(c_gp, 0) OPERATOR(pg_catalog.-) c_spend)) OPERATOR(pg_catalog./) CASE WHEN c_spend OPERATOR(pg_catalog.<>) 0 THEN c_spend END, 2),
                             pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(p_gp, 0) OPERATOR(pg_catalog.-) p_spend)) OPERATOR(pg_catalog./) CASE WHEN p_spend OPERATOR(pg_catalog.<>) 0 THEN p_spend END, 2), 'pct'),
        (12, 'pipeline', 'win_rate', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_won) OPERATOR(pg_catalog./) CASE WHEN (c_won OPERATOR(pg_catalog.+) c_lost) OPERATOR(pg_catalog.<>) 0 THEN (c_won OPERATOR(pg_catalog.+) c_lost) END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_won) OPERATOR(pg_catalog./) CASE WHEN (p_won OPERATOR(pg_catalog.+) p_lost) OPERATOR(pg_catalog.<>) 0 THEN (p_won OPERATOR(pg_catalog.+) p_lost) END, 2), 'pct'),
        (13, 'pipeline', 'deals_won', c_won::numeric, p_won::numeric, 'count'),
        (14, 'pipeline', 'average_won_deal', pg_catalog.round(c_avg_won, 2), pg_catalog.round(p_avg_won, 2), 'money'),
        (15, 'pipeline', 'sales_cycle', pg_catalog.round(c_cycle, 2), pg_catalog.round(p_cycle, 2), 'days'),
        (16, 'pipeline', 'open_deals', c_open::numeric, p_open::numeric, 'count'),
        (17, 'pipeline', 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0), 'money'),
        (18, 'pipeline', 'weighted_pipeline', pg_catalog.round(coalesce(c_weighted, 0), 2), pg_catalog.round(coalesce(p_weighted, 0), 2), 'money'),
        (18.1, 'pipeline', 'stale_deals', c_stale::numeric, p_stale::numeric, 'count'),
        (18.2, 'pipeline', 'stale_pipeline_value', coalesce(c_stale_amt, 0), coalesce(p_stale_amt, 0), 'money'),
        (19, 'pipeline', 'sales_velocity',
             pg_catalog.round(((c_open OPERATOR(pg_catalog.*) (c_won::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN (c_won OPERATOR(pg_catalog.+) c_lost) OPERATOR(pg_catalog.<>) 0 THEN (c_won OPERATOR(pg_catalog.+) c_lost) END)) OPERATOR(pg_catalog.*) c_avg_won) OPERATOR(pg_catalog./) CASE WHEN c_cycle OPERATOR(pg_catalog.<>) 0 THEN c_cycle END, 2),
             pg_catalog.round(((p_open OPERATOR(pg_catalog.*) (p_won::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN (p_won OPERATOR(pg_catalog.+) p_lost) OPERATOR(pg_catalog.<>) 0 THEN (p_won OPERATOR(pg_catalog.+) p_lost) END)) OPERATOR(pg_catalog.*) p_avg_won) OPERATOR(pg_catalog./) CASE WHEN p_cycle OPERATOR(pg_catalog.<>) 0 THEN p_cycle END, 2), 'money_per_day'),
        (20, 'money_lost', 'deals_lost', c_lost::numeric, p_lost::numeric, 'count'),
        (21, 'money_lost', 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0), 'money'),
        (900, 'money_lost', 'churned_customers', c_churned::numeric, p_churned::numeric, 'count'),
        (901, 'money_lost', 'churn_rate', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_churned) OPERATOR(pg_catalog./) CASE WHEN p_active OPERATOR(pg_catalog.<>) 0 THEN p_active END, 2),
                                          pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_churned) OPERATOR(pg_catalog./) CASE WHEN p2_active OPERATOR(pg_catalog.<>) 0 THEN p2_active END, 2), 'pct'),
        (902, 'money_lost', 'churned_revenue', coalesce(c_churned_rev, 0), coalesce(p_churned_rev, 0), 'money'),
        (1000, 'money_lost', 'unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric, 'count'),
        (1001, 'money_lost', 'unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0), 'money'),
        (1002, 'money_lost', 'unpaid_invoice_age', pg_catalog.round(c_unpaid_age, 2), pg_catalog.round(p_unpaid_age, 2), 'days'),
        (1003, 'money_lost', 'overdue_invoices', c_overdue::numeric, p_overdue::numeric, 'count'),
        (1004, 'money_lost', 'overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0), 'money'),
        (1005, 'money_lost', 'unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0), 'count'),
        (1006, 'money_lost', 'unanswered_leads_cost', pg_catalog.round(coalesce(c_unans_cost, 0), 2), pg_catalog.round(coalesce(p_unans_cost, 0), 2), 'money'),
        -- the value of one lead: revenue per buyer x lead-to-buyer conversion - cost per lead (channel-month rule)
        (1006.1, 'money_lost', 'lost_opportunity_cost',
             pg_catalog.round((c_revenue OPERATOR(pg_catalog./) CASE WHEN c_active OPERATOR(pg_catalog.<>) 0 THEN c_active END OPERATOR(pg_catalog.*) c_conv OPERATOR(pg_catalog.-) coalesce(c_leads_cost, 0)) OPERATOR(pg_catalog./) CASE WHEN c_leads OPERATOR(pg_catalog.<>) 0 THEN c_leads END, 2),
             pg_catalog.round((p_revenue OPERATOR(pg_catalog./) CASE WHEN p_active OPERATOR(pg_catalog.<>) 0 THEN p_active END OPERATOR(pg_catalog.*) p_conv OPERATOR(pg_catalog.-) coalesce(p_leads_cost, 0)) OPERATOR(pg_catalog./) CASE WHEN p_leads OPERATOR(pg_catalog.<>) 0 THEN p_leads END, 2), 'money'),
        (1007, 'money_lost', 'overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric, 'count')
      ) AS v(ord, section, metric, cur, prev, unit)
     WHERE dm.stages_ok
    UNION ALL
    SELECT 100 OPERATOR(pg_catalog.+) stage_order, 'money_lost', 'lost_value_at_' OPERATOR(pg_catalog.||) stage, c_amt, p_amt, 'money' FROM lost)
SELECT metric, cur, unit, prev,
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (cur OPERATOR(pg_catalog.-) prev)) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.abs(prev) OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.abs(prev) END, 2), section
  FROM rows ORDER BY ord
$sql$,
        crm._source_sql('leads'), crm._source_sql('orders'), crm._source_sql('spend'),
        crm._source_sql('interactions', 'ix'), crm._source_sql('invoices'), crm._source_sql('stage_events'),
        crm._stage_case('order', 'stage'), crm._stage_orders('won'), crm._stage_orders('lost'),
        crm._stage_orders('open'), crm._stage_case('order_probability', 'open_cur'),
        crm._stage_case('order_probability', 'open_prev'), crm._source_sql('interactions'),
        crm._stage_norm_case('open_cur'), crm._stage_norm_case('open_prev'),
        crm._source_sql('customers'),
        crm._lead_cost_sql(crm._source_sql('leads'), crm._source_sql('spend'),
                           'pg_catalog.date_trunc(''month'', $3)',
                           '(pg_catalog.date_trunc(''month'', $2 OPERATOR(pg_catalog.-) ''1 microsecond''::pg_catalog.interval) OPERATOR(pg_catalog.+) ''1 month''::pg_catalog.interval)'));
    RETURN q;
END
$$;
COMMENT ON FUNCTION crm._owner_dashboard_sql() IS
'The SQL text crm.owner_dashboard runs (registered sources spliced in; $1..$4 = current and previous period bounds).';

-- crm.dashboard_managers: manager activity columns appended (calls, meetings,
-- emails, contacts, average_won_deal, sales_cycle_days): a new return type,
-- so the view over it goes first and comes back after
DROP VIEW crm.v_managers;
DROP FUNCTION crm.dashboard_managers(date, date);
CREATE FUNCTION crm.dashboard_managers(period_from date, period_to date)
RETURNS TABLE (manager_id text, leads bigint, answered_leads bigint, unanswered_leads bigint,
               median_response_minutes numeric, deals_won bigint, deals_lost bigint, win_rate_pct numeric,
               revenue numeric, customers bigint, covered_customers bigint, coverage_pct numeric,
               calls bigint, meetings bigint, emails bigint, contacts bigint,
               average_won_deal numeric, sales_cycle_days numeric)
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
    SELECT lead_id, created_at, manager_id::pg_catalog.text AS manager_id FROM %1$s
     WHERE created_at OPERATOR(pg_catalog.>=) $1 AND created_at OPERATOR(pg_catalog.<) $2),
fc AS (
    SELECT x.lead_id, pg_catalog.min(x.occurred_at) AS first_contact
      FROM %2$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) x.lead_id
     WHERE NOT x.automated AND x.direction OPERATOR(pg_catalog.=) 'outbound' AND x.occurred_at OPERATOR(pg_catalog.>=) $1 AND x.occurred_at OPERATOR(pg_catalog.<) $2
       AND x.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
     GROUP BY x.lead_id),
lm AS (
    SELECT ld.manager_id, pg_catalog.count(*) AS leads, pg_catalog.count(fc.first_contact) AS answered,
           pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fc.first_contact OPERATOR(pg_catalog.-) ld.created_at) OPERATOR(pg_catalog./) 60) AS med
      FROM ld LEFT JOIN fc ON fc.lead_id OPERATOR(pg_catalog.=) ld.lead_id GROUP BY 1),
dl AS (
    SELECT e.deal_id, pg_catalog.min(e.manager_id::pg_catalog.text) AS manager_id,
           pg_catalog.min(e.changed_at) AS created_at, pg_catalog.max(e.amount) AS amount,
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.count(*) FILTER (WHERE e.outcome IS NULL) AS n_unknown
      -- OFFSET 0 fences the subquery: the stage CASE is computed once per row, not once per aggregate
      FROM (SELECT deal_id, changed_at, manager_id, amount, %6$s AS outcome FROM %3$s OFFSET 0) AS e
     WHERE e.changed_at OPERATOR(pg_catalog.<) $2 GROUP BY e.deal_id),
dm AS (
    SELECT manager_id,
           pg_catalog.count(*) FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS won,
           pg_catalog.count(*) FILTER (WHERE lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity')) AS lost,
           -- average_won_deal and sales_cycle of the owner dashboard, per manager
           pg_catalog.avg(amount) FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS avg_won,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400)
               FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS cycle
      FROM dl WHERE least(won_at, lost_at) OPERATOR(pg_catalog.>=) $1 GROUP BY 1),
-- real contacts (non-automated interactions, either direction) in the period, by the interaction's manager
ct AS (
    SELECT y.manager_id::pg_catalog.text AS manager_id,
           pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'call') AS calls,
           pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'meeting') AS meetings,
           pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) ANY (ARRAY['email', 'e-mail']::pg_catalog.text[])) AS emails,
           pg_catalog.count(*) AS contacts
      FROM %7$s
     WHERE NOT y.automated AND y.occurred_at OPERATOR(pg_catalog.>=) $1 AND y.occurred_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
cv AS (
    SELECT c.manager_id, pg_catalog.count(*) AS customers, pg_catalog.count(*) FILTER (WHERE c.covered) AS covered
      FROM crm.dashboard_coverage($2) c GROUP BY 1),
cu AS MATERIALIZED (SELECT customer_id, manager_id::pg_catalog.text AS manager_id FROM %4$s),
rv AS (
    SELECT cu.manager_id, pg_catalog.sum(o.amount) AS revenue
      FROM %5$s LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) o.customer_id
     WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
m AS (SELECT manager_id FROM lm UNION SELECT manager_id FROM dm UNION SELECT manager_id FROM cv
      UNION SELECT manager_id FROM rv UNION SELECT manager_id FROM ct)
SELECT m.manager_id, coalesce(lm.leads, 0), coalesce(lm.answered, 0), coalesce(lm.leads OPERATOR(pg_catalog.-) lm.answered, 0),
       pg_catalog.round(lm.med::numeric, 2), coalesce(dm.won, 0), coalesce(dm.lost, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) dm.won) OPERATOR(pg_catalog./) CASE WHEN (dm.won OPERATOR(pg_catalog.+) dm.lost) OPERATOR(pg_catalog.<>) 0 THEN (dm.won OPERATOR(pg_catalog.+) dm.lost) END, 2),
       coalesce(rv.revenue, 0), coalesce(cv.customers, 0), coalesce(cv.covered, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) cv.covered) OPERATOR(pg_catalog./) CASE WHEN cv.customers OPERATOR(pg_catalog.<>) 0 THEN cv.customers END, 2),
       coalesce(ct.calls, 0), coalesce(ct.meetings, 0), coalesce(ct.emails, 0), coalesce(ct.contacts, 0),
       pg_catalog.round(dm.avg_won, 2), pg_catalog.round(dm.cycle, 2)
  FROM m LEFT JOIN lm ON coalesce(pg_catalog.texteq(lm.manager_id, m.manager_id), lm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN dm ON coalesce(pg_catalog.texteq(dm.manager_id, m.manager_id), dm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN cv ON coalesce(pg_catalog.texteq(cv.manager_id, m.manager_id), cv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN rv ON coalesce(pg_catalog.texteq(rv.manager_id, m.manager_id), rv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN ct ON coalesce(pg_catalog.texteq(ct.manager_id, m.manager_id), ct.manager_id IS NULL AND m.manager_id IS NULL)
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY m.manager_id
$sql$, crm._source_sql('leads'), crm._source_sql('interactions', 'x'), crm._source_sql('stage_events'),
       crm._source_sql('customers'), crm._source_sql('orders', 'o'), crm._stage_case('outcome', 'stage'),
       crm._source_sql('interactions', 'y'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_managers(date, date) IS
'Per manager for the period [from, to]: leads, answered and unanswered leads (as of the period end), median first-response time, deals won and lost, win rate, revenue of the manager''s customers, contact coverage of those customers at the period end, real contacts in the period (calls, meetings, e-mails, all kinds), average won deal and sales cycle in days.';

CREATE VIEW crm.v_managers WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, m.manager_id, v.metric, v.value, v.unit
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_managers(p.period_from, p.period_to) AS m,
  LATERAL (VALUES ('leads', m.leads::numeric, 'count'), ('answered_leads', m.answered_leads::numeric, 'count'),
                  ('unanswered_leads', m.unanswered_leads::numeric, 'count'),
                  ('median_response', m.median_response_minutes, 'minutes'),
                  ('deals_won', m.deals_won::numeric, 'count'), ('deals_lost', m.deals_lost::numeric, 'count'),
                  ('win_rate', m.win_rate_pct, 'pct'), ('revenue', m.revenue, 'money'),
                  ('customers', m.customers::numeric, 'count'), ('covered_customers', m.covered_customers::numeric, 'count'),
                  ('coverage', m.coverage_pct, 'pct'),
                  ('calls', m.calls::numeric, 'count'), ('meetings', m.meetings::numeric, 'count'),
                  ('emails', m.emails::numeric, 'count'), ('contacts', m.contacts::numeric, 'count'),
                  ('average_won_deal', m.average_won_deal, 'money'), ('sales_cycle', m.sales_cycle_days, 'days')) AS v(metric, value, unit);
COMMENT ON VIEW crm.v_managers IS
'Per manager and metric for the dashboard period: leads, response, win rate, revenue, coverage, real contacts (calls, meetings, e-mails, all), average won deal, sales cycle (Metabase: bar chart of value by manager_id, filtered on metric).';
GRANT SELECT ON crm.v_managers TO PUBLIC;
-- ==== end of section owner ====


-- ==== section losses: lost reasons, dashboard_losses, dashboard_followups ====
-- the source kind "deals" (deal_id, customer_id, lead_id, lost_reason): the
-- lost reason of a deal and the link of its contacts (docs/sales.md)
ALTER TABLE crm.sources DROP CONSTRAINT sources_kind_check,
    ADD CONSTRAINT sources_kind_check CHECK (kind IN ('leads', 'customers', 'stage_events', 'orders', 'invoices', 'spend', 'interactions', 'deals'));

CREATE OR REPLACE FUNCTION crm.source_columns(kind text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE kind
    WHEN 'leads'        THEN ARRAY['lead_id any', 'created_at timestamptz', 'channel text', 'manager_id any', 'customer_id any']
    WHEN 'customers'    THEN ARRAY['customer_id any', 'created_at timestamptz', 'channel text', 'manager_id any']
    WHEN 'stage_events' THEN ARRAY['deal_id any', 'changed_at timestamptz', 'stage text', 'amount numeric', 'manager_id any', 'channel text']
    WHEN 'orders'       THEN ARRAY['order_id any', 'customer_id any', 'ordered_at timestamptz', 'amount numeric', 'cost numeric', 'product_id any']
    WHEN 'invoices'     THEN ARRAY['invoice_id any', 'customer_id any', 'issued_at timestamptz', 'due_at timestamptz', 'amount numeric', 'paid_at timestamptz']
    WHEN 'spend'        THEN ARRAY['channel text', 'spent_on timestamptz', 'amount numeric']
    WHEN 'interactions' THEN ARRAY['interaction_id any', 'customer_id any', 'lead_id any', 'manager_id any', 'occurred_at timestamptz', 'kind text', 'direction text', 'automated boolean']
    WHEN 'deals'        THEN ARRAY['deal_id any', 'customer_id any', 'lead_id any', 'lost_reason text']
END
$$;
COMMENT ON FUNCTION crm.source_columns(text) IS
'The columns (by position, "name kind") that the inner query of a source kind must return; NULL for an unknown kind.';

CREATE OR REPLACE FUNCTION crm.register_source(kind text, query text) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    cols text[];
BEGIN
    IF kind IS NULL THEN
        RAISE EXCEPTION 'source kind must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    cols := crm.source_columns(kind);
    IF cols IS NULL THEN
        RAISE EXCEPTION 'unknown source kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Source kinds are leads, customers, stage_events, orders, invoices, spend, interactions, deals.';
    END IF;
    IF query IS NULL THEN
        RAISE EXCEPTION 'query of source "%" must not be null', kind
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = pg_catalog.format('Pass a query returning (%s).', crm._source_columns_text(kind));
    END IF;
    -- runs the query with LIMIT 0 and checks its columns by position and type
    PERFORM crm._check_inner_query(pg_catalog.format('crm.register_source(%L)', kind), query, cols);
    INSERT INTO crm.sources AS s (kind, query) VALUES (kind, query)
        ON CONFLICT ON CONSTRAINT sources_pkey
        DO UPDATE SET query = excluded.query, registered_at = pg_catalog.now(), registered_by = CURRENT_USER;
END
$$;
COMMENT ON FUNCTION crm.register_source(text, text) IS
'Registers (or replaces) the inner query of a source kind after checking its columns with LIMIT 0; see crm.source_columns(kind) for the columns each kind must return.';

CREATE OR REPLACE FUNCTION crm._register_demo_sources() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_day date;
BEGIN
    PERFORM crm.register_source('leads',
        'SELECT lead_id, created_at, channel, manager_id, customer_id FROM crm_demo.leads');
    PERFORM crm.register_source('customers',
        'SELECT customer_id, created_at, channel, manager_id FROM crm_demo.customers');
    PERFORM crm.register_source('stage_events',
        'SELECT e.deal_id, e.changed_at, e.stage, d.amount, d.manager_id, d.channel FROM crm_demo.deal_events e JOIN crm_demo.deals d ON d.deal_id = e.deal_id');
    PERFORM crm.register_source('orders',
        'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM crm_demo.orders');
    PERFORM crm.register_source('invoices',
        'SELECT invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM crm_demo.invoices');
    PERFORM crm.register_source('spend',
        'SELECT channel, month, amount FROM crm_demo.spend');
    PERFORM crm.register_source('interactions',
        'SELECT interaction_id, customer_id, lead_id, manager_id, occurred_at, kind, direction, automated FROM crm_demo.interactions');
    PERFORM crm.register_source('deals', 'SELECT deal_id, customer_id, lead_id, lost_reason FROM crm_demo.deals');
    INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome, max_days) VALUES
        ('lead', 1, 0.10, 'open', 30), ('qualified', 2, 0.25, 'open', 30), ('proposal', 3, 0.50, 'open', 45),
        ('invoice', 4, 0.80, 'open', 60), ('paid', 5, 1, 'won', NULL), ('lost', 6, 0, 'lost', NULL)
    ON CONFLICT DO NOTHING;
    -- the views show the last calendar month of the demo data
    SELECT max(created_at)::date INTO last_day FROM crm_demo.leads;
    IF last_day IS NOT NULL THEN
        PERFORM crm.set_dashboard_period(date_trunc('month', last_day)::date,
                                         (date_trunc('month', last_day) + interval '1 month - 1 day')::date);
    END IF;
END
$$;
COMMENT ON FUNCTION crm._register_demo_sources() IS
'Registers the crm_demo tables as the dashboard sources, the demo pipeline stages and the demo period; crm.load_demo calls it at its end.';

-- dashboard_losses.sql: why deals are lost and at which stage, and how many
-- real contacts a deal had before it was lost or won (docs/sales.md).
--
-- Closed deals follow the definitions of docs/metrics.md (deals_won,
-- deals_lost, lost_deal_value, lost_value_at_<stage>): a deal is closed at
-- its first won- or lost-stage event; a deal won first is won; its value is
-- the largest amount of its events up to the period end; the stage it was
-- lost at is the most advanced open stage it reached.  The optional source
-- kind "deals" (deal_id, customer_id, lead_id, lost_reason) adds the lost
-- reason and ties interactions to deals (by the deal's lead or customer).
--
-- These functions run the registered (user) source queries: they do not pin
-- search_path and qualify every object of their own.

-- The SQL text behind the three reports: one row per deal closed (won or
-- lost) in the period [$1, $2) as (deal_id, manager_id, is_won, created_at,
-- closed_at, amount, stage, lost_reason, contacts).  Without the deals
-- source, lost_reason is '(not recorded)' for lost deals; contacts is NULL
-- unless with_contacts (which needs the deals source and the interactions
-- source).
CREATE OR REPLACE FUNCTION crm._closed_deals_sql(with_contacts boolean) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    ev_sql    text := crm._source_sql('stage_events');  -- first: checks the registry is readable
    has_deals boolean;
    deals_cte text;
    cx_cte    text;
    full_sql  text;
BEGIN
    IF with_contacts IS NULL THEN
        RAISE EXCEPTION 'with_contacts must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    has_deals := EXISTS (SELECT 1 FROM crm.sources s WHERE s.kind OPERATOR(pg_catalog.=) 'deals');
    IF with_contacts OR has_deals THEN
        -- one row per deal (the first by lost_reason when the source repeats a deal)
        deals_cte := pg_catalog.format($f$
dd AS MATERIALIZED (
    SELECT DISTINCT ON (d.deal_id) d.deal_id, d.customer_id, d.lead_id, d.lost_reason
      FROM %s
     WHERE EXISTS (SELECT 1 FROM dc WHERE dc.deal_id OPERATOR(pg_catalog.=) d.deal_id)
     ORDER BY d.deal_id, d.lost_reason),$f$, crm._source_sql('deals', 'd'));
    ELSE
        deals_cte := $f$
dd AS (SELECT dc.deal_id, NULL::pg_catalog.text AS customer_id, NULL::pg_catalog.text AS lead_id, NULL::pg_catalog.text AS lost_reason
         FROM dc WHERE false),$f$;
    END IF;
    IF with_contacts THEN
        -- real (non-automated) interactions of the deal's lead or customer
        -- from its first stage event to its close (both included), each once
        cx_cte := pg_catalog.format($f$
xs AS (
    SELECT x.interaction_id, x.customer_id, x.lead_id, x.occurred_at FROM %s
     WHERE NOT x.automated AND x.occurred_at OPERATOR(pg_catalog.<) $2
       AND x.occurred_at OPERATOR(pg_catalog.>=) (SELECT pg_catalog.min(dc.created_at) FROM dc)),
cx AS (
    SELECT m.deal_id, pg_catalog.count(DISTINCT m.interaction_id) AS n
      FROM (SELECT dc.deal_id, xs.interaction_id
              FROM dc JOIN dd ON dd.deal_id OPERATOR(pg_catalog.=) dc.deal_id
              JOIN xs ON xs.lead_id OPERATOR(pg_catalog.=) dd.lead_id
             WHERE xs.occurred_at OPERATOR(pg_catalog.>=) dc.created_at AND xs.occurred_at OPERATOR(pg_catalog.<=) dc.closed_at
            UNION ALL
            SELECT dc.deal_id, xs.interaction_id
              FROM dc JOIN dd ON dd.deal_id OPERATOR(pg_catalog.=) dc.deal_id
              JOIN xs ON xs.customer_id OPERATOR(pg_catalog.=) dd.customer_id
             WHERE xs.occurred_at OPERATOR(pg_catalog.>=) dc.created_at AND xs.occurred_at OPERATOR(pg_catalog.<=) dc.closed_at) AS m
     GROUP BY m.deal_id),$f$, crm._source_sql('interactions', 'x'));
    ELSE
        cx_cte := $f$
cx AS (SELECT dc.deal_id, NULL::pg_catalog.int8 AS n FROM dc WHERE false),$f$;
    END IF;
    full_sql := pg_catalog.format($sql$
WITH
ev AS (
    SELECT deal_id, changed_at, amount, manager_id, %2$s AS so
      FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASE is computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.min(changed_at) AS created_at, pg_catalog.max(amount) AS amount,
           pg_catalog.min(manager_id::pg_catalog.text) AS manager_id,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%3$s]::pg_catalog.int4[])) AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%4$s]::pg_catalog.int4[])) AS lost_at,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%5$s]::pg_catalog.int4[])) AS open_stage,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(so) AS unknown
      FROM ev GROUP BY deal_id),
dc AS MATERIALIZED (
    SELECT dl.deal_id, dl.created_at, dl.amount, dl.manager_id, dl.open_stage,
           least(dl.won_at, dl.lost_at) AS closed_at,
           dl.won_at IS NOT NULL AND dl.won_at OPERATOR(pg_catalog.<=) coalesce(dl.lost_at, dl.won_at) AS is_won
      FROM dl WHERE least(dl.won_at, dl.lost_at) OPERATOR(pg_catalog.>=) $1),%6$s%7$s
st AS (SELECT stage, stage_order FROM crm.pipeline_stages WHERE outcome OPERATOR(pg_catalog.=) 'open')
SELECT dc.deal_id::pg_catalog.text, dc.manager_id, dc.is_won, dc.created_at, dc.closed_at, dc.amount,
       coalesce(st.stage, '(no open stage)'),
       CASE WHEN NOT dc.is_won THEN coalesce(dd.lost_reason::pg_catalog.text, '(not recorded)') END,
       CASE WHEN %8$L::pg_catalog.bool THEN coalesce(cx.n, 0) END
  FROM dc LEFT JOIN st ON st.stage_order OPERATOR(pg_catalog.=) dc.open_stage
          LEFT JOIN dd ON dd.deal_id OPERATOR(pg_catalog.=) dc.deal_id
          LEFT JOIN cx ON cx.deal_id OPERATOR(pg_catalog.=) dc.deal_id
 WHERE crm._check_stages((SELECT pg_catalog.sum(dl.unknown) FROM dl))
$sql$, ev_sql, crm._stage_case('order', 'stage'), crm._stage_orders('won'), crm._stage_orders('lost'),
       crm._stage_orders('open'), deals_cte, cx_cte, with_contacts);
    -- built first (it checks the sources), so both paths raise the same errors;
    -- the same rows from the rollups when they may stand in (src/dashboard_fast_losses.sql)
    IF crm._rollups_usable() THEN
        RETURN pg_catalog.format('SELECT * FROM crm._fast_closed_deals($1, $2, %L::pg_catalog.bool)', with_contacts);
    END IF;
    RETURN full_sql;
END
$$;
COMMENT ON FUNCTION crm._closed_deals_sql(boolean) IS
'The SQL text behind crm.dashboard_losses, crm.dashboard_followups and crm.dashboard_closed_deals: one row per deal closed in the period [$1, $2) with its manager, outcome, value, the most advanced open stage it reached, its lost reason (deals source) and, with_contacts, its real contacts from creation to close. When the rollups may stand in (crm._rollups_usable()), after the sources are checked, the text reads the same rows from crm._fast_closed_deals.';

CREATE FUNCTION crm.dashboard_closed_deals(period_from date, period_to date)
RETURNS TABLE (deal_id text, manager_id text, outcome text, created_at timestamptz, closed_at timestamptz,
               amount numeric, stage text, lost_reason text, contacts bigint)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_closed_deals', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_closed_deals');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
SELECT c.deal_id, c.manager_id, CASE WHEN c.is_won THEN 'won' ELSE 'lost' END, c.created_at, c.closed_at,
       c.amount, c.stage, c.lost_reason, c.contacts
  FROM (%s) AS c(deal_id, manager_id, is_won, created_at, closed_at, amount, stage, lost_reason, contacts)
 ORDER BY c.closed_at, c.deal_id
$sql$, crm._closed_deals_sql(true))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_closed_deals(date, date) IS
'One row per deal won or lost in the period [from, to]: manager, outcome, first stage event, close, value, the most advanced open stage reached, lost reason and real (non-automated) contacts of the deal''s lead or customer from creation to close; needs the deals source. The rows behind crm.dashboard_losses and crm.dashboard_followups.';

CREATE FUNCTION crm.dashboard_losses(period_from date, period_to date)
RETURNS TABLE (reason text, stage text, deals bigint, lost_value numeric, share_pct numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_losses', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_losses');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH g AS (
    SELECT c.lost_reason AS reason, c.stage, pg_catalog.count(*) AS deals, coalesce(pg_catalog.sum(c.amount), 0) AS lost_value
      FROM (%s) AS c(deal_id, manager_id, is_won, created_at, closed_at, amount, stage, lost_reason, contacts)
     WHERE NOT c.is_won
     GROUP BY 1, 2)
SELECT g.reason, g.stage, g.deals, g.lost_value,
       pg_catalog.round((100 OPERATOR(pg_catalog.*) g.lost_value) OPERATOR(pg_catalog./)
                        CASE WHEN pg_catalog.sum(g.lost_value) OVER () OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.sum(g.lost_value) OVER () END, 2)
  FROM g
 ORDER BY g.lost_value DESC, g.reason, g.stage
$sql$, crm._closed_deals_sql(false))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_losses(date, date) IS
'Deals lost in the period [from, to] (first lost-stage event in the period, not won before) by lost reason (deals source; ''(not recorded)'' without it) and by the most advanced open stage reached: deals, their value and its share of the period''s lost value; totals equal owner_dashboard''s deals_lost and lost_deal_value.';

CREATE FUNCTION crm.dashboard_followups(period_from date, period_to date)
RETURNS TABLE (contacts text, deals bigint, lost_value numeric, won_deals bigint, won_value numeric, win_rate_pct numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_followups', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_followups');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH g AS (
    SELECT least(c.contacts, 3) AS k,
           pg_catalog.count(*) FILTER (WHERE NOT c.is_won) AS lost, pg_catalog.sum(c.amount) FILTER (WHERE NOT c.is_won) AS lost_value,
           pg_catalog.count(*) FILTER (WHERE c.is_won) AS won, pg_catalog.sum(c.amount) FILTER (WHERE c.is_won) AS won_value
      FROM (%s) AS c(deal_id, manager_id, is_won, created_at, closed_at, amount, stage, lost_reason, contacts)
     GROUP BY 1)
SELECT b.label, coalesce(g.lost, 0), coalesce(g.lost_value, 0), coalesce(g.won, 0), coalesce(g.won_value, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) g.won) OPERATOR(pg_catalog./)
                        CASE WHEN (g.won OPERATOR(pg_catalog.+) g.lost) OPERATOR(pg_catalog.<>) 0 THEN (g.won OPERATOR(pg_catalog.+) g.lost) END, 2)
  FROM (VALUES (0, '0'), (1, '1'), (2, '2'), (3, '3+')) AS b(k, label)
  LEFT JOIN g ON g.k OPERATOR(pg_catalog.=) b.k
 ORDER BY b.k
$sql$, crm._closed_deals_sql(true))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_followups(date, date) IS
'Deals closed in the period [from, to] by the number of real (non-automated) contacts of the deal''s lead or customer from its first stage event to its close (0, 1, 2, 3+; always four rows): lost deals and value, won deals and value, win rate; needs the deals source.';

CREATE VIEW crm.v_losses WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, l.reason, l.stage, l.deals, l.lost_value, l.share_pct
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_losses(p.period_from, p.period_to) AS l;
COMMENT ON VIEW crm.v_losses IS
'Deals lost in the dashboard period by lost reason and by the most advanced open stage reached: deals, value, share of the lost value (Metabase: stacked bar of lost_value by reason, split by stage).';

CREATE VIEW crm.v_followups WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, f.contacts, f.deals, f.lost_value, f.won_deals, f.won_value, f.win_rate_pct
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_followups(p.period_from, p.period_to) AS f;
COMMENT ON VIEW crm.v_followups IS
'Deals closed in the dashboard period by real contacts before the close (0, 1, 2, 3+): lost and won deals and value, win rate (Metabase: bar chart of win_rate_pct by contacts).';

GRANT SELECT ON crm.v_losses, crm.v_followups TO PUBLIC;
COMMENT ON COLUMN crm.v_losses.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_losses.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_losses.reason IS 'Lost reason from the deals source; (not recorded) when the deals source is not registered or gives none.';
COMMENT ON COLUMN crm.v_losses.stage IS 'The most advanced open stage the deal reached before it was lost; (no open stage) when it entered none.';
COMMENT ON COLUMN crm.v_losses.deals IS 'Deals lost in the period with this reason and stage (deals_lost, docs/metrics.md).';
COMMENT ON COLUMN crm.v_losses.lost_value IS 'Their amount (lost_deal_value, docs/metrics.md).';
COMMENT ON COLUMN crm.v_losses.share_pct IS '100 x lost_value / the lost value of the whole period.';
COMMENT ON COLUMN crm.v_followups.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_followups.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_followups.contacts IS 'Real (non-automated) contacts between the deal''s first stage event and its close: 0, 1, 2 or 3+.';
COMMENT ON COLUMN crm.v_followups.deals IS 'Deals lost in the period with this many contacts.';
COMMENT ON COLUMN crm.v_followups.lost_value IS 'Their amount.';
COMMENT ON COLUMN crm.v_followups.won_deals IS 'Deals won in the period with this many contacts.';
COMMENT ON COLUMN crm.v_followups.won_value IS 'Their amount.';
COMMENT ON COLUMN crm.v_followups.win_rate_pct IS '100 x won_deals / (won_deals + deals); NULL without closed deals.';

-- ==== end of section losses ====


-- ==== section todo: crm.todo, crm.v_todo, notifications ====
-- the reactivation period of crm.todo, the last column of crm.dashboard_settings
-- (as in src/dashboard.sql)
ALTER TABLE crm.dashboard_settings
    ADD COLUMN reactivation_after interval NOT NULL DEFAULT '90 days' CHECK (reactivation_after > interval '0');

-- src/dashboard_todo.sql, verbatim:
-- dashboard_todo.sql: who must be called today (crm.todo, crm.v_todo) and
-- telling a backend without polling (pg_notify on the channels crm_status and
-- crm_todo); docs/sales.md, section "todo".
--
-- crm.todo reads the registered sources (docs/dashboard.md) with the caller's
-- search_path, so it pins none and qualifies every object of its own; the
-- trigger function of crm.status_history runs no user SQL and pins it.

COMMENT ON COLUMN crm.dashboard_settings.reactivation_after IS
'crm.todo: a one-time buyer whose one order is older than this and who has had no real contact since it is listed for reactivation (default 90 days).';

-- The reactivation period of crm.todo: crm.dashboard_settings.reactivation_after,
-- default 90 days.
CREATE FUNCTION crm._reactivation_after() RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce((SELECT s.reactivation_after FROM crm.dashboard_settings s), interval '90 days')
$$;
COMMENT ON FUNCTION crm._reactivation_after() IS
'The reactivation period of crm.todo: crm.dashboard_settings.reactivation_after, default 90 days.';

-- ---------------------------------------------------------------------------
-- The to-do list
-- ---------------------------------------------------------------------------

-- One row per thing to do as of a moment; the definitions are those of
-- docs/metrics.md (first response, channel-month cost of a lead, stage norm,
-- overdue invoice, next due contact) applied to single items.
-- $1 = as_of.  Every source is read as of as_of (rows after it are ignored).
CREATE OR REPLACE FUNCTION crm.todo(as_of timestamptz DEFAULT now())
RETURNS TABLE (manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real moment, e.g. ''2026-01-01''.';
    END IF;
    PERFORM crm._require_stages('crm.todo');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
cfg AS MATERIALIZED (SELECT crm._lead_sla() AS sla, crm._reactivation_after() AS react),
cust AS MATERIALIZED (
    SELECT c.customer_id, pg_catalog.min(c.manager_id::pg_catalog.text) AS manager_id
      FROM %1$s WHERE c.customer_id IS NOT NULL GROUP BY c.customer_id),
-- unanswered_lead: created more than the SLA before as_of, no first response
-- (first real outbound contact at or after creation) before as_of
ua AS MATERIALIZED (
    SELECT l.lead_id, l.created_at, l.channel, l.manager_id::pg_catalog.text AS manager_id,
           l.created_at OPERATOR(pg_catalog.+) cfg.sla AS since, cfg.sla
      FROM %2$s CROSS JOIN cfg
     WHERE l.created_at OPERATOR(pg_catalog.+) cfg.sla OPERATOR(pg_catalog.<) $1
       AND NOT EXISTS (SELECT 1 FROM %3$s
                        WHERE ix.lead_id OPERATOR(pg_catalog.=) l.lead_id AND NOT ix.automated
                          AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
                          AND ix.occurred_at OPERATOR(pg_catalog.>=) l.created_at AND ix.occurred_at OPERATOR(pg_catalog.<) $1)),
-- cost of a lead (docs/metrics.md): the channel's spend in the lead's calendar
-- month / the channel's leads created in that month (whole months)
cpl AS (%4$s),
-- stale_deal: open at as_of (an open stage reached, no won or lost event) and
-- idle beyond the norm of its most advanced open stage (crm._stage_norm_case)
ev AS (
    SELECT deal_id, changed_at, amount, manager_id, %5$s AS so
      FROM %6$s WHERE changed_at OPERATOR(pg_catalog.<) $1
    OFFSET 0),  -- a fence: the stage CASE is computed once per row
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.max(amount) AS amount, pg_catalog.min(manager_id::pg_catalog.text) AS manager_id,
           pg_catalog.max(changed_at) AS last_at,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%7$s]::pg_catalog.int4[])) AS open_so,
           pg_catalog.count(*) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%8$s]::pg_catalog.int4[])) AS n_closed,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(so) AS unknown
      FROM ev GROUP BY deal_id),
sd AS (
    SELECT dl.*, %9$s AS norm FROM dl WHERE dl.open_so IS NOT NULL AND dl.n_closed OPERATOR(pg_catalog.=) 0),
-- overdue_invoice: issued before as_of, unpaid at as_of, due before as_of
oi AS (
    SELECT i.invoice_id, i.customer_id, i.issued_at, i.due_at, i.amount FROM %10$s
     WHERE i.issued_at OPERATOR(pg_catalog.<) $1 AND (i.paid_at IS NULL OR i.paid_at OPERATOR(pg_catalog.>=) $1)
       AND i.due_at OPERATOR(pg_catalog.<) $1),
-- reactivation: exactly one order before as_of, older than the period, no real
-- contact at or after it (before as_of)
one AS (
    SELECT o.customer_id, pg_catalog.min(o.ordered_at) AS ordered_at, pg_catalog.min(o.amount) AS amount
      FROM %11$s WHERE o.ordered_at OPERATOR(pg_catalog.<) $1 AND o.customer_id IS NOT NULL
     GROUP BY o.customer_id HAVING pg_catalog.count(*) OPERATOR(pg_catalog.=) 1),
ra AS (
    SELECT one.*, one.ordered_at OPERATOR(pg_catalog.+) cfg.react AS since
      FROM one CROSS JOIN cfg
     WHERE one.ordered_at OPERATOR(pg_catalog.+) cfg.react OPERATOR(pg_catalog.<) $1
       AND NOT EXISTS (SELECT 1 FROM %3$s
                        WHERE ix.customer_id OPERATOR(pg_catalog.=) one.customer_id AND NOT ix.automated
                          AND ix.occurred_at OPERATOR(pg_catalog.>=) one.ordered_at AND ix.occurred_at OPERATOR(pg_catalog.<) $1)),
items AS (
    SELECT ua.manager_id, 'unanswered_lead'::pg_catalog.text AS kind, ua.lead_id::pg_catalog.text AS entity_id, ua.since,
           pg_catalog.round(coalesce(cpl.cost_per_lead, 0), 2) AS value,
           pg_catalog.format('lead from %%s created %%s, no first response (SLA %%s)', coalesce(ua.channel, '(unknown channel)'),
                             pg_catalog.to_char(ua.created_at, 'YYYY-MM-DD HH24:MI'), ua.sla) AS note
      FROM ua LEFT JOIN cpl ON cpl.channel OPERATOR(pg_catalog.=) ua.channel
                           AND cpl.month OPERATOR(pg_catalog.=) pg_catalog.date_trunc('month', ua.created_at)
    UNION ALL
    SELECT sd.manager_id, 'stale_deal', sd.deal_id::pg_catalog.text, sd.last_at OPERATOR(pg_catalog.+) sd.norm, sd.amount,
           pg_catalog.format('stage %%s idle %%s days (norm %%s)', ps.stage,
                             extract(day FROM ($1 OPERATOR(pg_catalog.-) sd.last_at)), ps.max_days)
      FROM sd JOIN crm.pipeline_stages ps ON ps.stage_order OPERATOR(pg_catalog.=) sd.open_so
     WHERE sd.last_at OPERATOR(pg_catalog.<) ($1 OPERATOR(pg_catalog.-) sd.norm)
    UNION ALL
    SELECT cust.manager_id, 'overdue_invoice', oi.invoice_id::pg_catalog.text, oi.due_at, oi.amount,
           pg_catalog.format('invoice issued %%s, due %%s, %%s days overdue', oi.issued_at::pg_catalog.date, oi.due_at::pg_catalog.date,
                             extract(day FROM ($1 OPERATOR(pg_catalog.-) oi.due_at)))
      FROM oi LEFT JOIN cust ON cust.customer_id OPERATOR(pg_catalog.=) oi.customer_id
    UNION ALL
    SELECT cv.manager_id, 'overdue_contact', cv.customer_id, cv.next_due, cv.revenue_12m,
           pg_catalog.format('class %%s, last real contact %%s, next contact was due %%s', cv.abc_class,
                             coalesce(cv.last_contact::pg_catalog.date::pg_catalog.text, 'never'), cv.next_due::pg_catalog.date)
      FROM crm.dashboard_coverage($1) AS cv WHERE NOT cv.covered
    UNION ALL
    SELECT cust.manager_id, 'reactivation', ra.customer_id::pg_catalog.text, ra.since, ra.amount,
           pg_catalog.format('one order on %%s, no real contact since', ra.ordered_at::pg_catalog.date)
      FROM ra LEFT JOIN cust ON cust.customer_id OPERATOR(pg_catalog.=) ra.customer_id)
SELECT items.manager_id, items.kind, items.entity_id, items.since, items.value, items.note
  FROM items
 WHERE crm._check_stages((SELECT pg_catalog.sum(dl.unknown) FROM dl))
 ORDER BY items.value DESC NULLS LAST, items.since NULLS LAST, items.kind, items.entity_id
$sql$,
        crm._source_sql('customers', 'c'), crm._source_sql('leads', 'l'), crm._source_sql('interactions', 'ix'),
        crm._lead_cost_sql(crm._source_sql('leads'), crm._source_sql('spend')), crm._stage_case('order', 'stage'), crm._source_sql('stage_events'),
        crm._stage_orders('open'), crm._stage_orders('won') OPERATOR(pg_catalog.||) ', ' OPERATOR(pg_catalog.||) crm._stage_orders('lost'),
        crm._stage_norm_case('dl.open_so'), crm._source_sql('invoices', 'i'), crm._source_sql('orders', 'o'))
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm.todo(timestamptz) IS
'Who must be called today: one row per thing to do as of a moment (unanswered_lead, stale_deal, overdue_invoice, overdue_contact, reactivation) with its manager, since when it is due, the money at stake (value) and a short note; ordered by value (descending), then since.';

CREATE VIEW crm.v_todo WITH (security_invoker = true) AS
SELECT t.manager_id, t.kind, t.entity_id, t.since, t.value, t.note,
       row_number() OVER (PARTITION BY t.manager_id
                          ORDER BY t.value DESC NULLS LAST, t.since NULLS LAST, t.kind, t.entity_id) AS rank
  FROM crm.todo() AS t;
COMMENT ON VIEW crm.v_todo IS
'Today''s to-do list (crm.todo as of now()) with each item''s rank in its manager''s list (1 = most money at stake): SELECT * FROM crm.v_todo WHERE manager_id = ''3'' ORDER BY rank LIMIT 20.';
COMMENT ON COLUMN crm.v_todo.manager_id IS 'The manager of the lead, deal or customer (text; NULL when unknown): filter on it to page one manager''s list.';
COMMENT ON COLUMN crm.v_todo.kind IS 'What to do: unanswered_lead, stale_deal, overdue_invoice, overdue_contact or reactivation.';
COMMENT ON COLUMN crm.v_todo.entity_id IS 'The lead, deal, invoice or customer id (text), by kind.';
COMMENT ON COLUMN crm.v_todo.since IS 'Since when the item is due (SLA missed, deal became stale, invoice due, contact due, reactivation due).';
COMMENT ON COLUMN crm.v_todo.value IS 'The money at stake: lead cost, deal amount, invoice amount, customer''s 12-month revenue, or the one order''s amount.';
COMMENT ON COLUMN crm.v_todo.note IS 'A short human sentence about the item.';
COMMENT ON COLUMN crm.v_todo.rank IS 'Position in the manager''s list: 1 = most money at stake (then the oldest since).';
GRANT SELECT ON crm.v_todo TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Telling a backend without polling
-- ---------------------------------------------------------------------------

-- Every status change of the automatic statuses (by a rule, the sweep, or a
-- manual change caught by the trigger) is written once to crm.status_history:
-- one notification per history row, sent when the writing transaction commits.
CREATE OR REPLACE FUNCTION crm._status_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    payload text;
BEGIN
    -- SET crm_analytics.notify_status = off silences it (e.g. around a mass sweep)
    IF NOT coalesce(current_setting('crm_analytics.notify_status', true)::boolean, true) THEN
        RETURN NULL;
    END IF;
    payload := json_build_object('entity_table', NEW.entity_table::text, 'entity_key', NEW.entity_key,
                                 'from_status', NEW.from_status, 'to_status', NEW.to_status,
                                 'actor', NEW.actor, 'history_id', NEW.history_id)::text;
    -- a notification payload must stay under 8000 bytes
    IF octet_length(payload) > 7999 THEN
        payload := json_build_object('entity_table', left(NEW.entity_table::text, 200), 'entity_key', left(NEW.entity_key, 200),
                                     'from_status', left(NEW.from_status, 200), 'to_status', left(NEW.to_status, 200),
                                     'actor', left(NEW.actor, 200), 'history_id', NEW.history_id, 'truncated', true)::text;
    END IF;
    PERFORM pg_notify('crm_status', payload);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION crm._status_notify() IS
'AFTER INSERT row trigger on crm.status_history: sends pg_notify(''crm_status'', {entity_table, entity_key, from_status, to_status, actor, history_id}) for every status change (text fields cut to 200 characters and "truncated": true when the payload would reach 8000 bytes).';
CREATE TRIGGER crm_status_notify AFTER INSERT ON crm.status_history
    FOR EACH ROW EXECUTE FUNCTION crm._status_notify();

-- The items of crm.todo already announced on the channel crm_todo.
CREATE TABLE crm.todo_announced (
    kind         text NOT NULL,
    entity_id    text NOT NULL,
    announced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, entity_id)
);
COMMENT ON TABLE crm.todo_announced IS
'The to-do items (kind, entity_id) that crm.notify_todo has announced on the channel crm_todo and that are still on the list; an item that leaves the list is forgotten, and announced again if it comes back.';
SELECT pg_catalog.pg_extension_config_dump('crm.todo_announced', '');

CREATE FUNCTION crm.notify_todo(as_of timestamptz DEFAULT now()) RETURNS int
LANGUAGE plpgsql VOLATILE
-- no SET search_path: crm.todo runs the registered sources with the caller's
-- path; everything here is qualified
AS $$
DECLARE
    r record;
    n int := 0;
    payload text;
BEGIN
    FOR r IN
        WITH t AS MATERIALIZED (SELECT * FROM crm.todo(as_of)),
        gone AS (
            DELETE FROM crm.todo_announced a
             WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.kind OPERATOR(pg_catalog.=) a.kind
                                                 AND t.entity_id OPERATOR(pg_catalog.=) a.entity_id)),
        fresh AS (
            INSERT INTO crm.todo_announced AS a (kind, entity_id, announced_at)
            SELECT t.kind, t.entity_id, pg_catalog.now() FROM t
            ON CONFLICT (kind, entity_id) DO NOTHING
            RETURNING a.kind, a.entity_id)
        SELECT t.* FROM t JOIN fresh ON fresh.kind OPERATOR(pg_catalog.=) t.kind AND fresh.entity_id OPERATOR(pg_catalog.=) t.entity_id
         ORDER BY t.value DESC NULLS LAST, t.since NULLS LAST, t.kind, t.entity_id
    LOOP
        payload := pg_catalog.json_build_object('manager_id', r.manager_id, 'kind', r.kind, 'entity_id', r.entity_id,
                                                'since', r.since, 'value', r.value, 'note', r.note)::text;
        IF pg_catalog.octet_length(payload) OPERATOR(pg_catalog.>) 7999 THEN
            payload := pg_catalog.json_build_object('manager_id', pg_catalog.left(r.manager_id, 200), 'kind', r.kind,
                                                    'entity_id', pg_catalog.left(r.entity_id, 200), 'since', r.since,
                                                    'value', r.value, 'note', pg_catalog.left(r.note, 200), 'truncated', true)::text;
        END IF;
        PERFORM pg_catalog.pg_notify('crm_todo', payload);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.notify_todo(timestamptz) IS
'Announces the new items of crm.todo(as_of): one pg_notify(''crm_todo'', <the row as json>) per item not yet in crm.todo_announced (most money first), records them there, forgets the items no longer on the list; returns the number announced.  Schedule it with pg_cron.';
-- ==== end of section todo ====


-- ==== section plans: crm.plans, set_plan, dashboard_plan_fact ====
-- src/dashboard_plans.sql as is, then crm._register_demo_sources with its
-- call of crm._demo_plans (the lead merges that one line into the function's
-- final definition).

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
CREATE OR REPLACE FUNCTION crm.plan_metrics()
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

CREATE OR REPLACE FUNCTION crm._register_demo_sources() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_day date;
BEGIN
    PERFORM crm.register_source('leads',
        'SELECT lead_id, created_at, channel, manager_id, customer_id FROM crm_demo.leads');
    PERFORM crm.register_source('customers',
        'SELECT customer_id, created_at, channel, manager_id FROM crm_demo.customers');
    PERFORM crm.register_source('stage_events',
        'SELECT e.deal_id, e.changed_at, e.stage, d.amount, d.manager_id, d.channel FROM crm_demo.deal_events e JOIN crm_demo.deals d ON d.deal_id = e.deal_id');
    PERFORM crm.register_source('orders',
        'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM crm_demo.orders');
    PERFORM crm.register_source('invoices',
        'SELECT invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM crm_demo.invoices');
    PERFORM crm.register_source('spend',
        'SELECT channel, month, amount FROM crm_demo.spend');
    PERFORM crm.register_source('interactions',
        'SELECT interaction_id, customer_id, lead_id, manager_id, occurred_at, kind, direction, automated FROM crm_demo.interactions');
    PERFORM crm.register_source('deals', 'SELECT deal_id, customer_id, lead_id, lost_reason FROM crm_demo.deals');
    INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome, max_days) VALUES
        ('lead', 1, 0.10, 'open', 30), ('qualified', 2, 0.25, 'open', 30), ('proposal', 3, 0.50, 'open', 45),
        ('invoice', 4, 0.80, 'open', 60), ('paid', 5, 1, 'won', NULL), ('lost', 6, 0, 'lost', NULL)
    ON CONFLICT DO NOTHING;
    -- the views show the last calendar month of the demo data
    SELECT max(created_at)::date INTO last_day FROM crm_demo.leads;
    IF last_day IS NOT NULL THEN
        PERFORM crm.set_dashboard_period(date_trunc('month', last_day)::date,
                                         (date_trunc('month', last_day) + interval '1 month - 1 day')::date);
    END IF;
    PERFORM crm._demo_plans(last_day);
END
$$;
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

-- ==== end of section plans ====


-- ==== section rollups: daily rollups, refresh_rollups, v_daily ====
-- dashboard_rollups.sql: daily rollups of the additive dashboard metrics,
-- maintained incrementally by crm.refresh_rollups, read through crm.v_daily
-- and crm.daily_metrics (docs/rollups.md).
--
-- Change capture: statement-level triggers with transition tables on every
-- table the registered sources read (found by EXPLAIN of the source queries)
-- record the earliest date/time value of the changed rows in
-- crm.rollup_changes; a refresh recomputes, per part (a group of metrics and
-- the sources it reads), every day at or after the earliest recorded change.
-- The rollup tables are derived data: not dumped; a refresh after a restore
-- rebuilds them in full.

CREATE TABLE crm.rollup_daily (
    day       date NOT NULL,
    metric    text NOT NULL,
    dimension text NOT NULL,
    key       text NOT NULL,
    value     numeric NOT NULL,
    PRIMARY KEY (day, metric, dimension, key)
);
COMMENT ON TABLE crm.rollup_daily IS
'Daily rollups of the additive dashboard metrics (derived data, rebuilt by crm.refresh_rollups, not dumped); read it through crm.v_daily or crm.daily_metrics.';

-- per customer: the first order (new_buyers)
CREATE TABLE crm.rollup_customers (
    customer_id text PRIMARY KEY,
    first_at    timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_customers IS
'Rollup state per customer (derived, not dumped): the moment of the first order, which makes the customer a new buyer on that day.';
CREATE INDEX ON crm.rollup_customers (first_at);

-- per deal: as of its close (the first won or lost event)
CREATE TABLE crm.rollup_deals (
    deal_id    text PRIMARY KEY,
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    closed_at  timestamptz,
    is_won     boolean,
    amount     numeric,
    lost_stage text,
    manager_id text,
    channel    text
);
COMMENT ON TABLE crm.rollup_deals IS
'Rollup state per deal (derived, not dumped): first and last event, close (first won or lost event), won or lost, amount and most advanced open stage up to the close, manager and channel.';
CREATE INDEX ON crm.rollup_deals (closed_at);
CREATE INDEX ON crm.rollup_deals (last_at);

-- changes recorded by the capture triggers: per statement, the earliest
-- date/time value of the changed rows (old and new); bound NULL = TRUNCATE
-- (a full refresh is needed)
CREATE TABLE crm.rollup_changes (
    id          bigserial PRIMARY KEY,
    relid       oid NOT NULL,
    bound       timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE crm.rollup_changes IS
'Changes not yet rolled up, written by the capture triggers: the table, the earliest date/time value of the changed rows (NULL after a TRUNCATE: a full refresh follows); crm.refresh_rollups consumes them.';
-- every role that writes to a captured table writes here (the trigger runs as it);
-- relid and bound only: a role choosing ids could take the ids the sequence hands
-- out next and make the writes of every other role to a captured table fail
GRANT INSERT (relid, bound) ON crm.rollup_changes TO PUBLIC;
GRANT USAGE ON SEQUENCE crm.rollup_changes_id_seq TO PUBLIC;

-- the tables the registered sources read, and by which source kinds
CREATE TABLE crm.rollup_capture (
    relid oid NOT NULL,
    kind  text NOT NULL,
    PRIMARY KEY (relid, kind)
);
COMMENT ON TABLE crm.rollup_capture IS
'The tables the registered sources read (by source kind), each with the rollup capture triggers; written by crm.attach_rollup_capture.';

CREATE TABLE crm.rollup_status (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    built_at       timestamptz,
    time_zone      text,
    config_hash    text,
    needs_full     boolean NOT NULL DEFAULT true,
    phase          text,
    done           int,
    total          int,
    started_at     timestamptz,
    finished_at    timestamptz,
    last_mode      text,
    last_rows      bigint
);
COMMENT ON TABLE crm.rollup_status IS
'State of the rollups (one row): when and in which time zone they were last built in full, the hash of the sources and stages they were built from, and the last refresh (phase, parts done of total, start, end, mode, rows written).';
GRANT SELECT ON crm.rollup_status TO PUBLIC;
INSERT INTO crm.rollup_status (singleton) VALUES (true);

-- ---------------------------------------------------------------------------
-- Parts: which metrics, from which source kinds
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm._rollup_parts(OUT part text, OUT kinds text[], OUT metrics text[])
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
VALUES ('leads',    ARRAY['leads'], ARRAY['leads_in']),
       ('orders',   ARRAY['orders', 'customers'], ARRAY['orders', 'revenue', 'gross_profit', 'new_buyers']),
       ('deals',    ARRAY['stage_events'], ARRAY['deals_won', 'won_value', 'won_cycle_days', 'deals_lost', 'lost_deal_value']),
       ('spend',    ARRAY['spend'], ARRAY['marketing_spend']),
       ('invoices', ARRAY['invoices'], ARRAY['invoices_issued', 'invoices_issued_amount', 'invoices_paid', 'invoices_paid_amount']),
       ('contacts', ARRAY['interactions'], ARRAY['real_contacts'])
$$;
COMMENT ON FUNCTION crm._rollup_parts() IS
'The parts of the rollups: per part, the source kinds it reads and the metrics it writes to crm.rollup_daily.';

-- ---------------------------------------------------------------------------
-- Change capture
-- ---------------------------------------------------------------------------

-- The tables a source query reads (views resolved to their tables), by the
-- planner: EXPLAIN (VERBOSE, FORMAT JSON) names every scanned relation.
CREATE FUNCTION crm._query_relations(kind text, query text) RETURNS regclass[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    plan jsonb;
    cols text[] := crm.source_columns(kind);
BEGIN
    IF cols IS NULL THEN
        RAISE EXCEPTION 'unknown source kind "%"', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one SELECT returning the kind's columns (run with LIMIT 0)
    PERFORM crm._check_inner_query(pg_catalog.format('source "%s"', kind), query, cols);
    EXECUTE 'EXPLAIN (VERBOSE, FORMAT JSON) ' OPERATOR(pg_catalog.||) query INTO plan;
    RETURN ARRAY(
        SELECT DISTINCT pg_catalog.format('%I.%I', n OPERATOR(pg_catalog.->>) 'Schema', n OPERATOR(pg_catalog.->>) 'Relation Name')::pg_catalog.regclass
          FROM pg_catalog.jsonb_path_query(plan, 'strict $.**') AS n
         WHERE pg_catalog.jsonb_typeof(n) OPERATOR(pg_catalog.=) 'object' AND n OPERATOR(pg_catalog.?) 'Relation Name'
         ORDER BY 1);
END
$$;
COMMENT ON FUNCTION crm._query_relations(text, text) IS
'The tables a source query of a kind (one SELECT returning the kind''s columns, checked by crm._check_inner_query) reads, views resolved to their tables, from its EXPLAIN plan.';

-- The capture trigger: per statement, the earliest date/time value found in
-- any date, timestamp or timestamptz column of the changed rows (old and new).
-- date and timestamp columns are read a day early (their moment depends on a
-- time zone); rows without any date/time value record -infinity.
CREATE FUNCTION crm._rollup_capture() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text;
    q    text;
    n    bigint;
    b    timestamptz;
    n2   bigint;
    b2   timestamptz;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO crm.rollup_changes (relid, bound) VALUES (TG_RELID, NULL);
        RETURN NULL;
    END IF;
    -- a domain counts as its base type (a time column may be a domain over date)
    SELECT string_agg(CASE WHEN a.typ = 'timestamptz'::regtype THEN format('%I', a.attname)
                           ELSE format('(%I::timestamp - interval ''1 day'')::timestamptz', a.attname) END, ', ' ORDER BY a.attnum)
      INTO cols
      FROM (SELECT a.attname, a.attnum, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS typ
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS a
     WHERE a.typ IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype);
    q := format('SELECT count(*), min(%s) FROM %%I', CASE WHEN cols IS NULL THEN 'NULL::timestamptz' ELSE 'least(' || cols || ')' END);
    n := 0;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE format(q, 'crm_rollup_old') INTO n, b;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        EXECUTE format(q, 'crm_rollup_new') INTO n2, b2;
        n := n + n2;
        b := least(b, b2);
    END IF;
    IF n > 0 THEN
        -- changed rows without any date/time value: every day may change
        INSERT INTO crm.rollup_changes (relid, bound) VALUES (TG_RELID, coalesce(b, '-infinity'));
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION crm._rollup_capture() IS
'Capture trigger of the rollups (statement level, transition tables crm_rollup_old / crm_rollup_new): records in crm.rollup_changes the earliest date/time value of the changed rows, or a TRUNCATE.';

-- Creates the capture triggers on one table (missing ones only).
CREATE FUNCTION crm._rollup_create_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('crm_rollup_ins', 'AFTER INSERT ON %s REFERENCING NEW TABLE AS crm_rollup_new FOR EACH STATEMENT'),
        ('crm_rollup_upd', 'AFTER UPDATE ON %s REFERENCING OLD TABLE AS crm_rollup_old NEW TABLE AS crm_rollup_new FOR EACH STATEMENT'),
        ('crm_rollup_del', 'AFTER DELETE ON %s REFERENCING OLD TABLE AS crm_rollup_old FOR EACH STATEMENT'),
        ('crm_rollup_trunc', 'AFTER TRUNCATE ON %s FOR EACH STATEMENT')) AS v(name, spec)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = rel AND g.tgname = t.name) THEN
            EXECUTE format('CREATE TRIGGER %I ', t.name) || format(t.spec, rel) || ' EXECUTE FUNCTION crm._rollup_capture()';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._rollup_create_triggers(regclass) IS
'Creates the four rollup capture triggers (insert, update, delete, truncate) on a table where they are missing.';

-- true when every table of crm.rollup_capture still has its four triggers
CREATE OR REPLACE FUNCTION crm._rollup_capture_ok() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT EXISTS (SELECT 1 FROM crm.rollup_capture)
   AND NOT EXISTS (SELECT 1 FROM (SELECT DISTINCT relid FROM crm.rollup_capture) c
                    WHERE (SELECT count(*) FROM pg_trigger g
                            WHERE g.tgrelid = c.relid AND g.tgfoid = 'crm._rollup_capture()'::regprocedure
                              -- a disabled trigger (ALTER TABLE ... DISABLE TRIGGER) captures nothing
                              AND g.tgenabled <> 'D') <> 4)
$$;
COMMENT ON FUNCTION crm._rollup_capture_ok() IS
'True when the tables the sources read (crm.rollup_capture) all still carry the four rollup capture triggers.';

CREATE OR REPLACE FUNCTION crm.attach_rollup_capture() RETURNS SETOF regclass
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    s   record;
    rel regclass;
    who text;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS crm_rollup_rels (relid oid, kind text) ON COMMIT DROP;
    DELETE FROM pg_temp.crm_rollup_rels;
    -- the kinds the rollups read (crm._rollup_parts), not every registered one
    FOR s IN SELECT src.kind, src.query FROM crm.sources src
              WHERE src.kind OPERATOR(pg_catalog.=) ANY ((SELECT pg_catalog.array_agg(k) FROM crm._rollup_parts() p, pg_catalog.unnest(p.kinds) k)::pg_catalog.text[])
              ORDER BY src.kind LOOP
        INSERT INTO pg_temp.crm_rollup_rels
        SELECT DISTINCT a.relid::pg_catalog.oid, s.kind
          FROM pg_catalog.unnest(crm._query_relations(s.kind, s.query)) AS r,
               -- a partition and its partitioned ancestors: a write through the parent
               -- fires the parent's statement triggers only, not the partition's
               LATERAL (SELECT r UNION SELECT pg_catalog.pg_partition_ancestors(r)) AS a(relid);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_temp.crm_rollup_rels) THEN
        RAISE EXCEPTION 'no registered source reads a table'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register the sources first: SELECT crm.register_source(kind, query).';
    END IF;
    FOR rel IN SELECT DISTINCT r.relid::pg_catalog.regclass FROM pg_temp.crm_rollup_rels r ORDER BY 1 LOOP
        PERFORM crm._rollup_create_triggers(rel);
        RETURN NEXT rel;
    END LOOP;
    -- triggers left on tables no source reads any more
    FOR rel IN SELECT DISTINCT c.relid::pg_catalog.regclass FROM crm.rollup_capture c
                WHERE NOT EXISTS (SELECT 1 FROM pg_temp.crm_rollup_rels r WHERE r.relid OPERATOR(pg_catalog.=) c.relid)
                  AND EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) c.relid) LOOP
        PERFORM crm._rollup_drop_triggers(rel);
    END LOOP;
    DELETE FROM crm.rollup_capture;
    INSERT INTO crm.rollup_capture SELECT DISTINCT r.relid, r.kind FROM pg_temp.crm_rollup_rels r;
    -- a disabled capture trigger records nothing: every refresh then rebuilds in
    -- full (exact, slow) until it is enabled again
    SELECT pg_catalog.string_agg(DISTINCT g.tgrelid::pg_catalog.regclass::pg_catalog.text, ', ') INTO who
      FROM crm.rollup_capture c JOIN pg_catalog.pg_trigger g ON g.tgrelid OPERATOR(pg_catalog.=) c.relid
     WHERE g.tgfoid OPERATOR(pg_catalog.=) 'crm._rollup_capture()'::pg_catalog.regprocedure
       AND g.tgenabled OPERATOR(pg_catalog.=) 'D';
    IF who IS NOT NULL THEN
        RAISE WARNING 'capture triggers are disabled on %: changes there are not recorded, so every refresh rebuilds the rollups in full', who
            USING HINT = 'Enable them: ALTER TABLE ... ENABLE TRIGGER crm_rollup_ins (and crm_rollup_upd, crm_rollup_del, crm_rollup_trunc).';
    END IF;
    who := NULL;
    -- the trigger runs as the writing role, which must reach crm.rollup_changes
    SELECT pg_catalog.string_agg(DISTINCT ro.rolname::pg_catalog.text, ', ') INTO who
      FROM pg_temp.crm_rollup_rels r, pg_catalog.pg_roles ro
     WHERE NOT ro.rolsuper AND ro.rolname::pg_catalog.text NOT LIKE 'pg\_%'
       AND (pg_catalog.has_table_privilege(ro.oid, r.relid, 'INSERT') OR pg_catalog.has_table_privilege(ro.oid, r.relid, 'UPDATE')
            OR pg_catalog.has_table_privilege(ro.oid, r.relid, 'DELETE') OR pg_catalog.has_table_privilege(ro.oid, r.relid, 'TRUNCATE'))
       AND NOT pg_catalog.has_schema_privilege(ro.oid, 'crm', 'USAGE');
    IF who IS NOT NULL THEN
        RAISE WARNING 'roles that write to tables the rollups capture have no USAGE on schema crm: %', who
            USING DETAIL = 'The capture triggers run as the writing role and record the change in crm.rollup_changes; without USAGE on schema crm its writes fail.',
                  HINT = pg_catalog.format('GRANT USAGE ON SCHEMA crm TO %s;', who);
    END IF;
    INSERT INTO crm.rollup_status AS st (singleton, needs_full) VALUES (true, true)
        ON CONFLICT (singleton) DO UPDATE SET needs_full = true;
    DROP TABLE pg_temp.crm_rollup_rels;
END
$$;
COMMENT ON FUNCTION crm.attach_rollup_capture() IS
'Finds the tables the registered sources read (views resolved) and puts the rollup capture triggers on each (the caller must own them); returns the tables. The next crm.refresh_rollups is a full one.';

CREATE FUNCTION crm._rollup_drop_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['crm_rollup_ins', 'crm_rollup_upd', 'crm_rollup_del', 'crm_rollup_trunc'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', t, rel);
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._rollup_drop_triggers(regclass) IS
'Drops the four rollup capture triggers of a table.';

CREATE FUNCTION crm.detach_rollup_capture() RETURNS SETOF regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN SELECT DISTINCT c.relid::regclass FROM crm.rollup_capture c
                WHERE EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = c.relid) ORDER BY 1 LOOP
        PERFORM crm._rollup_drop_triggers(rel);
        RETURN NEXT rel;
    END LOOP;
    DELETE FROM crm.rollup_capture;
    DELETE FROM crm.rollup_changes;
    UPDATE crm.rollup_status SET needs_full = true;
END
$$;
COMMENT ON FUNCTION crm.detach_rollup_capture() IS
'Drops the rollup capture triggers from the tables the sources read; returns those tables. Rollups can then only be refreshed after capture is attached again (crm.refresh_rollups does it).';

-- ---------------------------------------------------------------------------
-- Refresh
-- ---------------------------------------------------------------------------

-- What the rollups were built from: the registered queries and the stages.
CREATE OR REPLACE FUNCTION crm._rollup_config_hash() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT md5(coalesce((SELECT string_agg(kind || ':' || query, E'\n' ORDER BY kind) FROM crm.sources
                      WHERE kind IN (SELECT unnest(p.kinds) FROM crm._rollup_parts() p)), '')
           || E'\n--\n' ||
           coalesce((SELECT string_agg(format('%s|%s|%s', stage, stage_order, outcome), E'\n' ORDER BY stage_order)
                       FROM crm.pipeline_stages), ''))
$$;
COMMENT ON FUNCTION crm._rollup_config_hash() IS
'A hash of the registered source queries and the pipeline stages: when it changes, the rollups are rebuilt in full.';

-- Consumes the recorded changes (committed ones: the DELETE sees those) and
-- returns per part the bound to recompute from (-infinity = everything); no
-- row = the part is unchanged.  Parts whose sources are not all registered
-- are left out (and their rows removed).
CREATE FUNCTION crm._rollup_take_changes(want_full boolean, OUT part text, OUT bound timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    any_truncate boolean;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS crm_rollup_taken (relid oid, bound timestamptz) ON COMMIT DROP;
    DELETE FROM pg_temp.crm_rollup_taken;
    WITH d AS (DELETE FROM crm.rollup_changes c RETURNING c.relid, c.bound)
    INSERT INTO pg_temp.crm_rollup_taken SELECT d.relid, d.bound FROM d;
    SELECT bool_or(t.bound IS NULL) INTO any_truncate FROM pg_temp.crm_rollup_taken t;
    want_full := want_full OR coalesce(any_truncate, false);
    DELETE FROM crm.rollup_daily r
     WHERE r.metric IN (SELECT unnest(p.metrics) FROM crm._rollup_parts() p
                         WHERE EXISTS (SELECT 1 FROM unnest(p.kinds) k WHERE k NOT IN (SELECT s.kind FROM crm.sources s)));
    RETURN QUERY
    SELECT p.part, CASE WHEN want_full THEN '-infinity'::timestamptz ELSE b.bound END
      FROM crm._rollup_parts() p
      LEFT JOIN LATERAL (SELECT min(t.bound) AS bound FROM pg_temp.crm_rollup_taken t
                          WHERE t.relid IN (SELECT c.relid FROM crm.rollup_capture c WHERE c.kind = ANY (p.kinds))) b ON true
     WHERE NOT EXISTS (SELECT 1 FROM unnest(p.kinds) k WHERE k NOT IN (SELECT s.kind FROM crm.sources s))
       AND (want_full OR b.bound IS NOT NULL)
     ORDER BY p.part;
END
$$;
COMMENT ON FUNCTION crm._rollup_take_changes(boolean) IS
'Consumes the recorded changes and returns, per rollup part to recompute, the earliest moment to recompute from (-infinity for a full refresh or after a TRUNCATE).';

-- How a part groups its rows by day and dimension (SQL text, for the columns
-- day and the named dimension columns of alias x): {dimension expression, key
-- expression, GROUPING SETS clause}; one pass builds the 'all' row and one row
-- per key of every dimension, a NULL key reading '(unknown)'.
CREATE FUNCTION crm._rollup_gsets(alias text, VARIADIC dims text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT ARRAY[
    'CASE ' || string_agg(format('WHEN GROUPING(%I.%I) OPERATOR(pg_catalog.=) 0 THEN %L::pg_catalog.text', alias, d, d), ' ' ORDER BY n)
        || ' ELSE ''all''::pg_catalog.text END',
    'CASE ' || string_agg(format('WHEN GROUPING(%I.%I) OPERATOR(pg_catalog.=) 0 THEN coalesce(%I.%I::pg_catalog.text, ''(unknown)'')', alias, d, alias, d), ' ' ORDER BY n)
        || ' ELSE ''all''::pg_catalog.text END',
    format('GROUPING SETS ((%I.day)', alias) || string_agg(format(', (%I.day, %I.%I)', alias, alias, d), '' ORDER BY n) || ')']
  FROM unnest(dims) WITH ORDINALITY AS u(d, n)
$$;
COMMENT ON FUNCTION crm._rollup_gsets(text, text[]) IS
'SQL text of the dimension and key expressions and the GROUPING SETS clause that group a part''s rows by day into ''all'' and one row per key of every named dimension column (NULL key = ''(unknown)'').';

-- leads_in (all, channel, manager)
CREATE FUNCTION crm._rollup_leads(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('l', 'channel', 'manager');
BEGIN
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT l.day, 'leads_in', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.created_at::pg_catalog.date AS day, src.channel::pg_catalog.text AS channel,
               src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.created_at OPERATOR(pg_catalog.>=) $1) AS l
 GROUP BY %4$s
$sql$, crm._source_sql('leads'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_leads(timestamptz) IS
'Rollup part leads: writes leads_in per day (all, channel, manager) from the leads source, for the days from the given moment on.';

-- orders, revenue, gross_profit and new_buyers (all, channel, manager of the
-- customer); keeps crm.rollup_customers (first order per customer)
CREATE FUNCTION crm._rollup_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    src_o text := crm._source_sql('orders', 'o');
    go text[] := crm._rollup_gsets('o', 'channel', 'manager');
    gn text[] := crm._rollup_gsets('nb', 'channel', 'manager');
BEGIN
    -- first orders at or after the bound may have changed; earlier ones did not
    DELETE FROM crm.rollup_customers rc WHERE rc.first_at OPERATOR(pg_catalog.>=) from_ts;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customers AS rc (customer_id, first_at)
SELECT f.cid, f.first_at
  FROM (SELECT o.customer_id::pg_catalog.text AS cid, pg_catalog.min(o.ordered_at) AS first_at
          FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.customer_id IS NOT NULL GROUP BY 1) AS f
 -- customers whose first order is before the bound keep it
 WHERE NOT EXISTS (SELECT 1 FROM crm.rollup_customers x WHERE x.customer_id OPERATOR(pg_catalog.=) f.cid)
$sql$, src_o) USING from_ts;
    EXECUTE pg_catalog.format($sql$
WITH o AS MATERIALIZED (
    SELECT o.customer_id::pg_catalog.text AS cid, o.ordered_at::pg_catalog.date AS day, o.amount, o.cost,
           c.channel::pg_catalog.text AS channel, c.manager_id::pg_catalog.text AS manager
      FROM %1$s LEFT JOIN %2$s ON c.customer_id OPERATOR(pg_catalog.=) o.customer_id
     WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1),
nb AS (
    SELECT rc.first_at::pg_catalog.date AS day, d.channel, d.manager
      FROM crm.rollup_customers rc
      JOIN (SELECT DISTINCT o.cid, o.channel, o.manager FROM o) AS d ON d.cid OPERATOR(pg_catalog.=) rc.customer_id
     WHERE rc.first_at OPERATOR(pg_catalog.>=) $1),
a AS (
    SELECT o.day, %3$s AS dimension, %4$s AS key, pg_catalog.count(*) AS n, pg_catalog.sum(o.amount) AS revenue,
           pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) AS gp, NULL::pg_catalog.int8 AS nb
      FROM o GROUP BY %5$s
    UNION ALL
    SELECT nb.day, %6$s, %7$s, NULL, NULL, NULL, pg_catalog.count(*)
      FROM nb GROUP BY %8$s)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, a.dimension, a.key, m.value
  FROM a CROSS JOIN LATERAL (VALUES ('orders'::pg_catalog.text, a.n::pg_catalog.numeric), ('revenue', a.revenue),
                                    ('gross_profit', a.gp), ('new_buyers', a.nb::pg_catalog.numeric)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, src_o, crm._source_sql('customers', 'c'), go[1], go[2], go[3], gn[1], gn[2], gn[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_orders(timestamptz) IS
'Rollup part orders: keeps the first order per customer (crm.rollup_customers) and writes orders, revenue, gross_profit and new_buyers per day (all, and channel and manager of the customer) for the days from the given moment on.';

-- deals_won, won_value, won_cycle_days, deals_lost, lost_deal_value (all,
-- channel, manager; the lost ones also by stage); keeps crm.rollup_deals
CREATE FUNCTION crm._rollup_deals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n       bigint;
    old_ids text[];
    idtype  text;
    src     text := crm._source_sql('stage_events', 'e');
BEGIN
    PERFORM crm._require_stages('crm.refresh_rollups');
    -- every deal with an event at or after the bound, before or after the
    -- change, is recomputed from all its events
    WITH d AS (DELETE FROM crm.rollup_deals rd WHERE rd.last_at OPERATOR(pg_catalog.>=) from_ts RETURNING rd.deal_id)
    SELECT pg_catalog.array_agg(d.deal_id) INTO old_ids FROM d;
    EXECUTE pg_catalog.format('SELECT pg_catalog.pg_typeof(e.deal_id)::pg_catalog.text FROM %s LIMIT 1', src) INTO idtype;
    IF idtype IS NOT NULL THEN
        EXECUTE pg_catalog.format($sql$
WITH t AS (
    SELECT e.deal_id FROM %1$s WHERE e.changed_at OPERATOR(pg_catalog.>=) $1
    UNION
    SELECT pg_catalog.unnest($2::pg_catalog.text[])::%2$s),
dl AS (
    SELECT ev.deal_id, pg_catalog.min(ev.changed_at) AS first_at, pg_catalog.max(ev.changed_at) AS last_at,
           pg_catalog.min(ev.changed_at) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(ev.changed_at) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.min(ev.manager_id) AS manager_id, pg_catalog.min(ev.channel) AS channel,
           pg_catalog.max(ev.amount) AS amount, pg_catalog.max(ev.so) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'open') AS open_so,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(ev.so) AS unknown
      FROM (SELECT e.deal_id, e.changed_at, e.amount, e.manager_id::pg_catalog.text AS manager_id, e.channel::pg_catalog.text AS channel,
                   %3$s AS so, %4$s AS oc
              FROM %1$s WHERE %5$s
            OFFSET 0) AS ev  -- a fence: the stage CASEs are computed once per row
     GROUP BY ev.deal_id),
dc AS MATERIALIZED (
    SELECT dl.*, least(dl.won_at, dl.lost_at) AS closed_at,
           dl.won_at IS NOT NULL AND dl.won_at OPERATOR(pg_catalog.<=) coalesce(dl.lost_at, dl.won_at) AS is_won
      FROM dl),
-- deals with events after their close (rare): amount and most advanced open
-- stage up to the close, from their events read again
late AS (
    SELECT e.deal_id,
           pg_catalog.max(e.amount) FILTER (WHERE e.changed_at OPERATOR(pg_catalog.<=) dc.closed_at) AS amount,
           pg_catalog.max(%3$s) FILTER (WHERE %4$s OPERATOR(pg_catalog.=) 'open' AND e.changed_at OPERATOR(pg_catalog.<=) dc.closed_at) AS open_so
      FROM %1$s JOIN dc ON dc.deal_id OPERATOR(pg_catalog.=) e.deal_id
     WHERE e.deal_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT dc2.deal_id FROM dc AS dc2 WHERE dc2.last_at OPERATOR(pg_catalog.>) dc2.closed_at))
     GROUP BY e.deal_id)
INSERT INTO crm.rollup_deals (deal_id, first_at, last_at, closed_at, is_won, amount, lost_stage, manager_id, channel)
SELECT dc.deal_id::pg_catalog.text, dc.first_at, dc.last_at, dc.closed_at, dc.is_won,
       CASE WHEN late.deal_id IS NULL THEN dc.amount ELSE late.amount END,
       CASE WHEN NOT dc.is_won THEN (SELECT ps.stage FROM crm.pipeline_stages ps
                                      WHERE ps.stage_order OPERATOR(pg_catalog.=) CASE WHEN late.deal_id IS NULL THEN dc.open_so ELSE late.open_so END) END,
       dc.manager_id, dc.channel
  FROM dc LEFT JOIN late ON late.deal_id OPERATOR(pg_catalog.=) dc.deal_id
 WHERE crm._check_stages((SELECT pg_catalog.sum(dc2.unknown) FROM dc AS dc2))
$sql$, src, idtype, crm._stage_case('order', 'e.stage'), crm._stage_case('outcome', 'e.stage'),
       -- a full refresh reads every event once
       CASE WHEN pg_catalog.isfinite(from_ts) THEN 'e.deal_id OPERATOR(pg_catalog.=) ANY (SELECT t.deal_id FROM t)' ELSE 'true' END)
        USING from_ts, coalesce(old_ids, '{}');
    END IF;
    INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
    SELECT a.day, m.metric, a.dimension, a.key, m.value
      FROM (SELECT d.day,
                   CASE WHEN GROUPING(d.channel) OPERATOR(pg_catalog.=) 0 THEN 'channel'::pg_catalog.text
                        WHEN GROUPING(d.manager_id) OPERATOR(pg_catalog.=) 0 THEN 'manager'
                        WHEN GROUPING(d.stage) OPERATOR(pg_catalog.=) 0 THEN 'stage' ELSE 'all' END AS dimension,
                   CASE WHEN GROUPING(d.channel) OPERATOR(pg_catalog.=) 0 THEN coalesce(d.channel, '(unknown)')
                        WHEN GROUPING(d.manager_id) OPERATOR(pg_catalog.=) 0 THEN coalesce(d.manager_id, '(unknown)')
                        WHEN GROUPING(d.stage) OPERATOR(pg_catalog.=) 0 THEN d.stage ELSE 'all'::pg_catalog.text END AS key,
                   pg_catalog.count(*) FILTER (WHERE d.is_won) AS won,
                   pg_catalog.sum(d.amount) FILTER (WHERE d.is_won) AS won_value,
                   pg_catalog.sum(EXTRACT(epoch FROM d.closed_at OPERATOR(pg_catalog.-) d.first_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE d.is_won) AS cycle,
                   pg_catalog.count(*) FILTER (WHERE NOT d.is_won) AS lost,
                   pg_catalog.sum(d.amount) FILTER (WHERE NOT d.is_won) AS lost_value
              FROM (SELECT rd.closed_at::pg_catalog.date AS day, rd.closed_at, rd.first_at, rd.is_won, rd.amount, rd.channel, rd.manager_id,
                           CASE WHEN NOT rd.is_won THEN rd.lost_stage END AS stage
                      FROM crm.rollup_deals rd WHERE rd.closed_at OPERATOR(pg_catalog.>=) from_ts) AS d
             GROUP BY GROUPING SETS ((d.day), (d.day, d.channel), (d.day, d.manager_id), (d.day, d.stage))
            -- lost deals by stage only (a lost deal without an open stage has none)
            HAVING GROUPING(d.stage) OPERATOR(pg_catalog.<>) 0 OR d.stage IS NOT NULL) AS a
     CROSS JOIN LATERAL (VALUES ('deals_won'::pg_catalog.text, (CASE WHEN a.won OPERATOR(pg_catalog.>) 0 THEN a.won END)::pg_catalog.numeric),
                                ('won_value', a.won_value), ('won_cycle_days', a.cycle),
                                ('deals_lost', (CASE WHEN a.lost OPERATOR(pg_catalog.>) 0 THEN a.lost END)::pg_catalog.numeric),
                                ('lost_deal_value', a.lost_value)) AS m(metric, value)
     WHERE m.value IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_deals(timestamptz) IS
'Rollup part deals: recomputes the state of every deal with an event at or after the given moment (crm.rollup_deals) and writes deals_won, won_value, won_cycle_days, deals_lost and lost_deal_value per day of the close (all, channel, manager; lost ones also by the most advanced open stage).';

-- marketing_spend (all, channel)
CREATE FUNCTION crm._rollup_spend(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('s', 'channel');
BEGIN
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT s.day, 'marketing_spend', %2$s, %3$s, pg_catalog.sum(s.amount)
  FROM (SELECT src.spent_on::pg_catalog.date AS day, src.channel::pg_catalog.text AS channel, src.amount
          FROM %1$s WHERE src.spent_on OPERATOR(pg_catalog.>=) $1) AS s
 GROUP BY %4$s
HAVING pg_catalog.sum(s.amount) IS NOT NULL
$sql$, crm._source_sql('spend'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_spend(timestamptz) IS
'Rollup part spend: writes marketing_spend per day (all, channel) from the spend source, for the days from the given moment on.';

-- invoices_issued(_amount) by the issue day, invoices_paid(_amount) by the
-- payment day (dimension all only: a customer's channel or manager would tie
-- an invoice to a customers row dated after it, against the guarantee)
CREATE FUNCTION crm._rollup_invoices(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE pg_catalog.format($sql$
WITH ev AS (
    SELECT i.issued_at::pg_catalog.date AS day, 'invoices_issued'::pg_catalog.text AS what, i.amount
      FROM %1$s WHERE i.issued_at OPERATOR(pg_catalog.>=) $1
    UNION ALL
    SELECT i.paid_at::pg_catalog.date, 'invoices_paid', i.amount
      FROM %1$s WHERE i.paid_at OPERATOR(pg_catalog.>=) $1),
a AS (SELECT ev.day, ev.what, pg_catalog.count(*) AS n, pg_catalog.sum(ev.amount) AS amount FROM ev GROUP BY 1, 2)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, 'all', 'all', m.value
  FROM a CROSS JOIN LATERAL (VALUES (a.what, a.n::pg_catalog.numeric),
                                    (a.what OPERATOR(pg_catalog.||) '_amount', a.amount)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, crm._source_sql('invoices', 'i')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_invoices(timestamptz) IS
'Rollup part invoices: writes invoices_issued and invoices_issued_amount per issue day, invoices_paid and invoices_paid_amount per payment day (dimension all), for the days from the given moment on.';

-- real_contacts: non-automated interactions (all, manager)
CREATE FUNCTION crm._rollup_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('x', 'manager');
BEGIN
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT x.day, 'real_contacts', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.occurred_at::pg_catalog.date AS day, src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT src.automated) AS x
 GROUP BY %4$s
$sql$, crm._source_sql('interactions'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_contacts(timestamptz) IS
'Rollup part contacts: writes real_contacts (non-automated interactions) per day (all, manager) from the interactions source, for the days from the given moment on.';

-- Bookkeeping before the parts run: decides full or incremental, attaches
-- capture where it is missing, returns the parts to recompute with their
-- bounds and the time zone to compute in.
CREATE FUNCTION crm._rollup_begin(want_full boolean, OUT part text, OUT bound timestamptz, OUT time_zone text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    st   record;
    hash text := crm._rollup_config_hash();
    tz   text := pg_catalog.current_setting('TimeZone');
BEGIN
    IF want_full IS NULL THEN
        RAISE EXCEPTION 'full must not be null' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Pass true for a full rebuild, false (the default) for an incremental refresh.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM crm.sources) THEN
        RAISE EXCEPTION 'no source is registered'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register the sources first: SELECT crm.register_source(kind, query).';
    END IF;
    SELECT * INTO st FROM crm.rollup_status;
    -- capture missing (never attached, a table recreated, triggers dropped)
    -- or the sources changed: attach again and rebuild
    IF st.config_hash IS DISTINCT FROM hash OR NOT crm._rollup_capture_ok() THEN
        PERFORM crm.attach_rollup_capture();
        SELECT * INTO st FROM crm.rollup_status;
    END IF;
    -- a rebuild the caller did not ask for keeps the time zone the days are cut
    -- in (a pg_cron session runs in the server's time zone)
    IF NOT want_full AND st.time_zone IS NOT NULL THEN
        tz := st.time_zone;
    END IF;
    want_full := want_full OR st.needs_full OR st.built_at IS NULL OR st.config_hash IS DISTINCT FROM hash;
    IF want_full THEN
        TRUNCATE crm.rollup_daily, crm.rollup_customers, crm.rollup_deals;
        UPDATE crm.rollup_status s
           SET built_at = pg_catalog.now(), time_zone = tz, config_hash = hash, needs_full = false;
    ELSE
        tz := st.time_zone;
    END IF;
    FOR part, bound IN SELECT c.part, c.bound FROM crm._rollup_take_changes(want_full) c LOOP
        time_zone := tz;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._rollup_begin(boolean) IS
'First step of crm.refresh_rollups: decides between a full and an incremental refresh (full when asked, never built, the sources or stages changed, capture had to be attached, or a captured table was truncated), attaches capture where missing, consumes the recorded changes; returns the parts to recompute with their bounds and the time zone of the rollups.';

CREATE OR REPLACE FUNCTION crm.refresh_rollups(full boolean DEFAULT false)
RETURNS TABLE (part text, from_day date, rows_written bigint)
LANGUAGE plpgsql VOLATILE
-- big scans and hash aggregates on a full refresh
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    names   text[];
    bounds  timestamptz[];
    tz      text;
    old_tz  text := pg_catalog.current_setting('TimeZone');
    t0      timestamptz;
    nrows   bigint := 0;
    nparts  int;
    ts_from timestamptz;
    is_full boolean;
    rel     regclass;
BEGIN
    -- one refresh at a time; writers are never blocked
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('crm.refresh_rollups'), 21);
    UPDATE crm.rollup_status s SET started_at = pg_catalog.clock_timestamp(), finished_at = NULL, phase = 'changes';
    SELECT pg_catalog.array_agg(b.part ORDER BY b.part), pg_catalog.array_agg(b.bound ORDER BY b.part), pg_catalog.min(b.time_zone)
      INTO names, bounds, tz FROM crm._rollup_begin(refresh_rollups.full) AS b;
    nparts := coalesce(pg_catalog.cardinality(names), 0);
    is_full := coalesce((SELECT pg_catalog.bool_and(x OPERATOR(pg_catalog.=) '-infinity') FROM pg_catalog.unnest(bounds) AS x), false);
    IF tz IS NOT NULL THEN
        -- days are cut in the time zone the rollups were built in
        PERFORM pg_catalog.set_config('TimeZone', tz, true);
    END IF;
    FOR i IN 1 .. nparts LOOP
        t0 := pg_catalog.clock_timestamp();
        UPDATE crm.rollup_status s SET phase = names[i], done = i OPERATOR(pg_catalog.-) 1, total = nparts;
        -- progress as every long call of the extension reports it: in
        -- pg_stat_activity.query for other sessions, as a NOTICE at intervals
        PERFORM crm._progress(pg_catalog.format('crm.refresh_rollups: part %s from %s', names[i],
                                  CASE WHEN pg_catalog.isfinite(bounds[i]) THEN bounds[i]::pg_catalog.date::pg_catalog.text ELSE 'the start' END),
                              (i OPERATOR(pg_catalog.-) 1)::pg_catalog.int8, nparts::pg_catalog.int8);
        -- whole days from the day of the bound
        ts_from := CASE WHEN bounds[i] OPERATOR(pg_catalog.=) '-infinity' THEN bounds[i]
                        ELSE bounds[i]::pg_catalog.date::pg_catalog.timestamptz END;
        DELETE FROM crm.rollup_daily r
         WHERE r.day OPERATOR(pg_catalog.>=) ts_from::pg_catalog.date
           AND r.metric OPERATOR(pg_catalog.=) ANY ((SELECT p.metrics FROM crm._rollup_parts() p WHERE p.part OPERATOR(pg_catalog.=) names[i])::pg_catalog.text[]);
        part := names[i];
        from_day := CASE WHEN pg_catalog.isfinite(ts_from) THEN ts_from::pg_catalog.date END;
        rows_written := CASE names[i]
            WHEN 'leads' THEN crm._rollup_leads(ts_from)
            WHEN 'orders' THEN crm._rollup_orders(ts_from)
            WHEN 'deals' THEN crm._rollup_deals(ts_from)
            WHEN 'spend' THEN crm._rollup_spend(ts_from)
            WHEN 'invoices' THEN crm._rollup_invoices(ts_from)
            WHEN 'contacts' THEN crm._rollup_contacts(ts_from) END;
        nrows := nrows OPERATOR(pg_catalog.+) rows_written;
        IF is_full OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0 OPERATOR(pg_catalog.>) '5 seconds'::pg_catalog.interval THEN
            RAISE NOTICE 'crm.refresh_rollups: part % (% of %) from %: % rows in % s', names[i], i, nparts,
                coalesce(from_day::pg_catalog.text, 'the start'), rows_written,
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0)::pg_catalog.numeric, 1);
        END IF;
        RETURN NEXT;
    END LOOP;
    PERFORM pg_catalog.set_config('TimeZone', old_tz, true);
    -- after a full rebuild the planner must know the rollup tables at once (the
    -- reports join them; autovacuum comes too late for the first dashboard):
    -- the ones this role owns
    IF is_full AND nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: analyzing the rollup tables', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
        FOR rel IN SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c
                    WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::pg_catalog.regnamespace AND c.relkind OPERATOR(pg_catalog.=) 'r'
                      AND c.relname OPERATOR(pg_catalog.~~) 'rollup\_%' AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
                    ORDER BY c.relname LOOP
            EXECUTE pg_catalog.format('ANALYZE %s', rel);
        END LOOP;
    END IF;
    IF nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: finished', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
    END IF;
    UPDATE crm.rollup_status s
       SET phase = 'done', done = nparts, total = nparts,
           finished_at = pg_catalog.clock_timestamp(), last_mode = CASE WHEN is_full THEN 'full' ELSE 'incremental' END,
           last_rows = nrows;
END
$$;
COMMENT ON FUNCTION crm.refresh_rollups(boolean) IS
'Brings the daily rollups (crm.rollup_daily, crm.v_daily) up to date: recomputes, per part, every day at or after the earliest change the capture triggers recorded (committed changes only), or everything when full => true or a full rebuild is needed; one row per part recomputed. One refresh runs at a time.';

-- ---------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------

CREATE VIEW crm.v_daily WITH (security_invoker = true) AS
SELECT r.day, r.metric, r.dimension, r.key, r.value FROM crm.rollup_daily r;
COMMENT ON VIEW crm.v_daily IS
'Daily rollups in long format for BI (a date filter on day gives any period): one row per day, additive metric, dimension and key; sums over a period equal crm.owner_dashboard for that period. Kept up to date by crm.refresh_rollups.';
COMMENT ON COLUMN crm.v_daily.day IS 'The day (in the time zone of the last full refresh, crm.rollup_status.time_zone) the figure belongs to.';
COMMENT ON COLUMN crm.v_daily.metric IS 'Additive metric: leads_in, new_buyers, orders, revenue, gross_profit, marketing_spend, deals_won, won_value, won_cycle_days, deals_lost, lost_deal_value, invoices_issued, invoices_issued_amount, invoices_paid, invoices_paid_amount, real_contacts.';
COMMENT ON COLUMN crm.v_daily.dimension IS 'How the metric is split: all (one row, key ''all''), channel, manager, or stage (lost deals by their most advanced open stage).';
COMMENT ON COLUMN crm.v_daily.key IS 'The channel, manager id or stage name (''(unknown)'' when the source gives none); ''all'' for dimension all.';
COMMENT ON COLUMN crm.v_daily.value IS 'The figure for that day: a count or a sum of money (won_cycle_days: the sum of the won deals'' cycle lengths in days).';
GRANT SELECT ON crm.v_daily TO PUBLIC;

-- Whether the rollups can stand in for the full computation right now, in
-- this session: built, no change waiting, built from the registered sources
-- and stages as they are, capture in place, days cut in the session's time zone.
CREATE FUNCTION crm._rollups_built() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce((SELECT s.built_at IS NOT NULL AND NOT s.needs_full
                        AND s.config_hash = crm._rollup_config_hash()
                        AND s.time_zone = current_setting('TimeZone')
                   FROM crm.rollup_status s), false)
   AND crm._rollup_capture_ok()
$$;
COMMENT ON FUNCTION crm._rollups_built() IS
'True when the rollups are built from the registered sources and stages as they are now, in the session''s time zone, with the capture triggers in place (changes may be waiting).';

CREATE OR REPLACE FUNCTION crm.rollups_fresh() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT crm._rollups_built() AND NOT EXISTS (SELECT 1 FROM crm.rollup_changes)
$$;
COMMENT ON FUNCTION crm.rollups_fresh() IS
'True when the daily rollups equal the full computation for this session: built, no recorded change waiting for crm.refresh_rollups, built from the registered sources and stages as they are now, capture triggers in place, and days cut in the session''s time zone.';

CREATE FUNCTION crm.daily_metrics(period_from date, period_to date)
RETURNS TABLE (metric text, dimension text, key text, value numeric)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._period_bounds('crm.daily_metrics', period_from, period_to);
    IF NOT EXISTS (SELECT 1 FROM crm.rollup_status s WHERE s.built_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the rollups have not been built'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Build them: SELECT * FROM crm.refresh_rollups();';
    END IF;
    RETURN QUERY
    SELECT r.metric, r.dimension, r.key, sum(r.value)
      FROM crm.rollup_daily r
     WHERE r.day BETWEEN period_from AND period_to
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION crm.daily_metrics(date, date) IS
'Sums of the daily rollups over the period [from, to] (inclusive dates): one row per metric, dimension and key. As fresh as the last crm.refresh_rollups.';

-- The owner dashboard's figures that the rollups hold or derive (sums and
-- ratios of sums), for a period and the previous one of equal length, in the
-- shape of crm.owner_dashboard: the fast path for BI (the full computation,
-- crm.owner_dashboard, stays the reference; test/rollups.sql compares them).
CREATE FUNCTION crm.owner_dashboard_rollup(period_from date, period_to date)
RETURNS TABLE (metric text, value numeric, unit text, previous_value numeric, change_pct numeric, section text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard_rollup', period_from, period_to);
    IF NOT EXISTS (SELECT 1 FROM crm.rollup_status s WHERE s.built_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the rollups have not been built'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Build them: SELECT * FROM crm.refresh_rollups();';
    END IF;
    RETURN QUERY
    WITH s AS (
        SELECT r.metric AS m, r.dimension AS dim, r.key AS k,
               sum(r.value) FILTER (WHERE r.day >= period_from) AS c,
               sum(r.value) FILTER (WHERE r.day < period_from) AS p
          FROM crm.rollup_daily r
         WHERE r.day >= b.prev_from::date AND r.day <= period_to AND r.dimension IN ('all', 'stage')
         GROUP BY 1, 2, 3),
    a AS (
        SELECT sum(s.c) FILTER (WHERE s.m = 'leads_in') AS c_leads, sum(s.p) FILTER (WHERE s.m = 'leads_in') AS p_leads,
               sum(s.c) FILTER (WHERE s.m = 'new_buyers') AS c_new, sum(s.p) FILTER (WHERE s.m = 'new_buyers') AS p_new,
               sum(s.c) FILTER (WHERE s.m = 'marketing_spend') AS c_spend, sum(s.p) FILTER (WHERE s.m = 'marketing_spend') AS p_spend,
               sum(s.c) FILTER (WHERE s.m = 'revenue') AS c_rev, sum(s.p) FILTER (WHERE s.m = 'revenue') AS p_rev,
               sum(s.c) FILTER (WHERE s.m = 'orders') AS c_ord, sum(s.p) FILTER (WHERE s.m = 'orders') AS p_ord,
               sum(s.c) FILTER (WHERE s.m = 'gross_profit') AS c_gp, sum(s.p) FILTER (WHERE s.m = 'gross_profit') AS p_gp,
               sum(s.c) FILTER (WHERE s.m = 'deals_won') AS c_won, sum(s.p) FILTER (WHERE s.m = 'deals_won') AS p_won,
               sum(s.c) FILTER (WHERE s.m = 'won_value') AS c_wv, sum(s.p) FILTER (WHERE s.m = 'won_value') AS p_wv,
               sum(s.c) FILTER (WHERE s.m = 'won_cycle_days') AS c_cyc, sum(s.p) FILTER (WHERE s.m = 'won_cycle_days') AS p_cyc,
               sum(s.c) FILTER (WHERE s.m = 'deals_lost') AS c_lost, sum(s.p) FILTER (WHERE s.m = 'deals_lost') AS p_lost,
               sum(s.c) FILTER (WHERE s.m = 'lost_deal_value') AS c_lv, sum(s.p) FILTER (WHERE s.m = 'lost_deal_value') AS p_lv
          FROM s WHERE s.dim = 'all'),
    z AS (
        SELECT coalesce(c_leads, 0) AS c_leads, coalesce(p_leads, 0) AS p_leads, coalesce(c_new, 0) AS c_new, coalesce(p_new, 0) AS p_new,
               c_spend, p_spend, c_rev, p_rev, coalesce(c_ord, 0) AS c_ord, coalesce(p_ord, 0) AS p_ord, c_gp, p_gp,
               coalesce(c_won, 0) AS c_won, coalesce(p_won, 0) AS p_won, c_wv, p_wv, c_cyc, p_cyc,
               coalesce(c_lost, 0) AS c_lost, coalesce(p_lost, 0) AS p_lost, c_lv, p_lv
          FROM a),
    rows AS (
        SELECT v.* FROM z, LATERAL (VALUES
            (1, 'acquisition', 'leads_in', c_leads, p_leads, 'count'),
            (2, 'acquisition', 'new_buyers', c_new, p_new, 'count'),
            (4, 'acquisition', 'marketing_spend', coalesce(c_spend, 0), coalesce(p_spend, 0), 'money'),
            (5, 'acquisition', 'cac', round(coalesce(c_spend, 0) / nullif(c_new, 0), 2), round(coalesce(p_spend, 0) / nullif(p_new, 0), 2), 'money'),
            (6, 'sales', 'revenue', coalesce(c_rev, 0), coalesce(p_rev, 0), 'money'),
            (7, 'sales', 'orders', c_ord, p_ord, 'count'),
            (8, 'sales', 'average_check', round(c_rev / nullif(c_ord, 0), 2), round(p_rev / nullif(p_ord, 0), 2), 'money'),
            (10, 'sales', 'gross_profit', coalesce(c_gp, 0), coalesce(p_gp, 0), 'money'),
            (11, 'sales', 'roi', round(100.0 * (coalesce(c_gp, 0) - c_spend) / nullif(c_spend, 0), 2),
                                 round(100.0 * (coalesce(p_gp, 0) - p_spend) / nullif(p_spend, 0), 2), 'pct'),
            (12, 'pipeline', 'win_rate', round(100.0 * c_won / nullif(c_won + c_lost, 0), 2), round(100.0 * p_won / nullif(p_won + p_lost, 0), 2), 'pct'),
            (13, 'pipeline', 'deals_won', c_won, p_won, 'count'),
            (14, 'pipeline', 'average_won_deal', round(c_wv / nullif(c_won, 0), 2), round(p_wv / nullif(p_won, 0), 2), 'money'),
            (15, 'pipeline', 'sales_cycle', round(c_cyc / nullif(c_won, 0), 2), round(p_cyc / nullif(p_won, 0), 2), 'days'),
            (20, 'money_lost', 'deals_lost', c_lost, p_lost, 'count'),
            (21, 'money_lost', 'lost_deal_value', coalesce(c_lv, 0), coalesce(p_lv, 0), 'money')
          ) AS v(ord, sec, name, cur, prev, u)
        UNION ALL
        SELECT 100 + ps.stage_order, 'money_lost', 'lost_value_at_' || ps.stage,
               coalesce((SELECT s.c FROM s WHERE s.m = 'lost_deal_value' AND s.dim = 'stage' AND s.k = ps.stage), 0),
               coalesce((SELECT s.p FROM s WHERE s.m = 'lost_deal_value' AND s.dim = 'stage' AND s.k = ps.stage), 0), 'money'
          FROM crm.pipeline_stages ps WHERE ps.outcome = 'open')
    SELECT rows.name, rows.cur, rows.u, rows.prev,
           round(100.0 * (rows.cur - rows.prev) / nullif(abs(rows.prev), 0), 2), rows.sec
      FROM rows ORDER BY rows.ord;
END
$$;
COMMENT ON FUNCTION crm.owner_dashboard_rollup(date, date) IS
'The owner dashboard figures the daily rollups hold or derive (leads, new buyers, spend, CAC, revenue, orders, average check, gross profit, ROI, win rate, deals won and lost, average won deal, sales cycle, lost value, lost value per stage) for the period [from, to] and the previous period of equal length, in the shape of crm.owner_dashboard, read from the rollups (as fresh as the last crm.refresh_rollups).';
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
                  ('coverage', m.coverage_pct, 'pct'),
                  ('calls', m.calls::numeric, 'count'), ('meetings', m.meetings::numeric, 'count'),
                  ('emails', m.emails::numeric, 'count'), ('contacts', m.contacts::numeric, 'count'),
                  ('average_won_deal', m.average_won_deal, 'money'), ('sales_cycle', m.sales_cycle_days, 'days')) AS v(metric, value, unit);
COMMENT ON COLUMN crm.v_managers.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_managers.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_managers.manager_id IS 'Manager id as text (any source type; NULL = no manager); sort by manager_id_num for numeric order.';
COMMENT ON COLUMN crm.v_managers.metric IS 'Metric: leads, answered_leads, unanswered_leads, median_response, deals_won, deals_lost, win_rate, revenue, customers, covered_customers, coverage, calls, meetings, emails, contacts, average_won_deal, sales_cycle (docs/metrics.md); filter on one.';
COMMENT ON COLUMN crm.v_managers.value IS 'The metric for the manager and period; NULL when it has no meaning.';
COMMENT ON COLUMN crm.v_managers.unit IS 'Unit of value: count, minutes, pct, money, days.';
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
-- the page gets the sales head's part (losses, follow-ups, plan against fact,
-- the top of the to-do list): the renderer takes one more argument
DROP FUNCTION crm._dashboard_html(date, date, jsonb, jsonb, jsonb, jsonb);
CREATE FUNCTION crm._dashboard_html(period_from date, period_to date,
                                    kpi_rows jsonb, funnel_rows jsonb, heat_rows jsonb, chan_rows jsonb,
                                    sales_html text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kpi    text;
    funnel text;
    heat   text;
    chan   text;
BEGIN
    SELECT string_agg(pg_catalog.format(
               '<tr class="%s"><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n %s">%s</td><td>%s</td></tr>',
               d.section, crm._html(replace(d.metric, '_', ' ')), crm._fmt(d.value), crm._fmt(d.previous_value),
               -- green when the change is good news: lower is better for costs and losses
               CASE WHEN coalesce(d.change_pct, 0) = 0 THEN ''
                    WHEN (d.change_pct > 0) <> (d.section = 'money_lost' OR d.metric IN ('cac', 'sales_cycle', 'marketing_spend'))
                    THEN 'up' ELSE 'down' END,
               CASE WHEN d.change_pct IS NULL THEN '' ELSE crm._fmt(d.change_pct) || '%' END,
               crm._html(d.unit)), E'\n' ORDER BY d.ord)
      INTO kpi
      FROM jsonb_to_recordset(kpi_rows) AS d(metric text, value numeric, unit text, previous_value numeric,
                                             change_pct numeric, section text, ord bigint);

    -- funnel: one bar per step, width proportional to the deals that reached it
    WITH f AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(funnel_rows)
                                AS f(step_no int, stage text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
                                     dropped bigint, lost_deals bigint, lost_value numeric)),
         g AS (SELECT f.*, max(f.entered) OVER () AS fmax, count(*) OVER () AS nfun FROM f),
         h AS (SELECT g.*, CASE WHEN g.fmax > 0 THEN greatest(440.0 * g.entered / g.fmax, 2) ELSE 2 END AS w FROM g)
    SELECT pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="760" height="%s" role="img" aria-label="sales funnel">%s</svg>',
                             max(h.nfun) * 44 + 10,
                             string_agg(pg_catalog.format(
                                 '<rect x="%s" y="%s" width="%s" height="34" fill="#2b6cb0" rx="3"/>'
                                 '<text x="10" y="%s" class="lbl">%s</text>'
                                 '<text x="380" y="%s" text-anchor="middle" class="%s">%s (%s%%)</text>'
                                 '<text x="750" y="%s" text-anchor="end" class="lost">%s</text>',
                                 round(380 - h.w / 2, 1), 5 + (h.step_no - 1) * 44, round(h.w, 1),
                                 27 + (h.step_no - 1) * 44, crm._html(h.stage),
                                 27 + (h.step_no - 1) * 44, CASE WHEN h.w >= 130 THEN 'in' ELSE 'out' END,
                                 crm._fmt(h.entered::numeric), crm._fmt(h.pct_of_first),
                                 27 + (h.step_no - 1) * 44,
                                 CASE WHEN h.lost_value > 0 THEN 'lost ' || crm._fmt(h.lost_value) ELSE '' END),
                                 '' ORDER BY h.step_no))
      INTO funnel
      FROM h;

    -- cohort heat map: rows = cohorts, columns = months since, colour = retention
    WITH t AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(heat_rows)
                                AS t(cohort date, period_no int, cohort_size bigint, active bigint, retention_pct numeric,
                                     revenue numeric, cumulative_ltv numeric)),
         r AS (SELECT t.*, 26 + (dense_rank() OVER (ORDER BY t.cohort) - 1) * 26 AS y FROM t)
    SELECT pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" role="img" aria-label="cohort retention heat map">'
                             '%s%s</svg>',
                             100 + 12 * 52, 30 + count(DISTINCT r.cohort) * 26,
                             (SELECT string_agg(pg_catalog.format('<text x="%s" y="18" text-anchor="middle" class="ax">%s</text>', 126 + p * 52, p), '')
                                FROM generate_series(0, 11) AS p),
                             string_agg(pg_catalog.format(
                                 '%s<rect x="%s" y="%s" width="50" height="24" fill="hsl(210,70%%,%s%%)"/>'
                                 '<text x="%s" y="%s" text-anchor="middle" class="%s">%s</text>',
                                 CASE WHEN r.period_no = 0 THEN pg_catalog.format('<text x="4" y="%s" class="ax">%s (%s)</text>',
                                                                              r.y + 17, to_char(r.cohort, 'YYYY-MM'), r.cohort_size) ELSE '' END,
                                 100 + r.period_no * 52, r.y, round(95 - 0.6 * r.retention_pct, 1),
                                 126 + r.period_no * 52, r.y + 17,
                                 CASE WHEN r.retention_pct > 55 THEN 'cw' ELSE 'cb' END, round(r.retention_pct) || '%'),
                                 '' ORDER BY r.cohort, r.period_no))
      INTO heat
      FROM r;

    -- channels: a table with an ROI bar
    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s%%</td><td class="n">%s</td>'
               '<td class="n">%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="160" height="14"><rect x="0" y="2" width="%s" height="10" fill="%s"/></svg> %s</td></tr>',
               crm._html(c.channel), crm._fmt(c.leads::numeric), crm._fmt(c.new_buyers::numeric), crm._fmt(c.conversion_pct),
               crm._fmt(c.revenue), crm._fmt(c.spend), crm._fmt(c.cac), crm._fmt(c.ltv_cac),
               CASE WHEN c.roi_pct IS NULL THEN 0 ELSE round(least(greatest(abs(c.roi_pct), 0), mx) / nullif(mx, 0) * 160, 1) END,
               CASE WHEN c.roi_pct < 0 THEN '#c53030' ELSE '#2f855a' END,
               CASE WHEN c.roi_pct IS NULL THEN 'no spend' ELSE crm._fmt(c.roi_pct) || '%' END), E'\n' ORDER BY c.revenue DESC)
      INTO chan
      FROM (SELECT c.*, max(abs(c.roi_pct)) OVER () AS mx
              FROM jsonb_to_recordset(chan_rows) AS c(channel text, leads bigint, new_buyers bigint, conversion_pct numeric,
                                                     revenue numeric, gross_profit numeric, spend numeric, cac numeric,
                                                     roi_pct numeric, ltv numeric, ltv_cac numeric)) AS c;

    RETURN pg_catalog.format($html$<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Owner dashboard %1$s .. %2$s</title>
<style>
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#1a202c;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} p.sub{color:#4a5568;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 10px;border-bottom:1px solid #e2e8f0;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums} td.up{color:#2f855a} td.down{color:#c53030}
tr.money_lost td:first-child{color:#c53030} th{background:#edf2f7}
svg text{font-family:DejaVu Sans,Arial,sans-serif;font-size:12px} .lbl{font-weight:bold} .in{fill:#fff;font-weight:bold}
.out{fill:#1a202c;font-weight:bold;paint-order:stroke;stroke:#fff;stroke-width:3px} .lost{fill:#c53030} .ax{fill:#4a5568} .cw{fill:#fff} .cb{fill:#1a202c}
.cols{display:flex;gap:40px;flex-wrap:wrap}
</style></head><body>
<h1>Owner dashboard</h1>
<p class="sub">%1$s .. %2$s, compared with the previous period of equal length. Generated by crm.dashboard_html.</p>
<div class="cols"><div>
<h2>Figures</h2>
<table><tr><th>metric</th><th>value</th><th>previous</th><th>change</th><th>unit</th></tr>
%3$s
</table></div><div>
<h2>Sales funnel (deals started in the period)</h2>
%4$s
<h2>Channels</h2>
<table><tr><th>channel</th><th>leads</th><th>new buyers</th><th>conversion</th><th>revenue</th><th>spend</th><th>CAC</th><th>LTV/CAC</th><th>ROI</th></tr>
%5$s
</table>
</div></div>
%7$s
<h2>Monthly buyer cohorts: share still buying, by months since the first order</h2>
%6$s
</body></html>
$html$, period_from, period_to, coalesce(kpi, ''), coalesce(funnel, ''), coalesce(chan, ''), coalesce(heat, ''),
         coalesce(sales_html, ''));
END
$$;
COMMENT ON FUNCTION crm._dashboard_html(date, date, jsonb, jsonb, jsonb, jsonb, text) IS
'Draws the page of crm.dashboard_html from the rows of crm.owner_dashboard (with their position as ord), crm.dashboard_funnel, crm.dashboard_retention and crm.dashboard_channels, each a jsonb array of row objects, and the sales head''s part drawn by crm._dashboard_html_sales.';

CREATE FUNCTION crm._dashboard_html_sales(loss_rows jsonb, followup_rows jsonb, plan_rows jsonb, todo_rows jsonb,
                                          todo_as_of timestamptz) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    losses    text;
    followups text;
    plans     text;
    todo      text;
BEGIN
    -- the ten largest losses by reason and stage, with a bar of the share
    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="120" height="14"><rect x="0" y="2" width="%s" height="10" fill="#c53030"/></svg> %s%%</td></tr>',
               crm._html(l.reason), crm._html(l.stage), crm._fmt(l.deals::numeric), crm._fmt(l.lost_value),
               round(least(greatest(coalesce(l.share_pct, 0), 0), 100) * 1.2, 1), crm._fmt(l.share_pct)),
               E'\n' ORDER BY l.lost_value DESC, l.reason, l.stage)
      INTO losses
      FROM (SELECT * FROM jsonb_to_recordset(loss_rows)
                AS l(reason text, stage text, deals bigint, lost_value numeric, share_pct numeric)
             ORDER BY lost_value DESC, reason, stage LIMIT 10) AS l;

    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="120" height="14"><rect x="0" y="2" width="%s" height="10" fill="#2f855a"/></svg> %s</td></tr>',
               crm._html(f.contacts), crm._fmt(f.deals::numeric), crm._fmt(f.lost_value), crm._fmt(f.won_deals::numeric),
               round(least(greatest(coalesce(f.win_rate_pct, 0), 0), 100) * 1.2, 1),
               CASE WHEN f.win_rate_pct IS NULL THEN 'no closed deals' ELSE crm._fmt(f.win_rate_pct) || '%' END),
               E'\n' ORDER BY f.ord)
      INTO followups
      FROM jsonb_to_recordset(followup_rows)
               AS f(contacts text, deals bigint, lost_value numeric, won_deals bigint, won_value numeric,
                    win_rate_pct numeric, ord bigint);

    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="120" height="14"><rect x="0" y="2" width="%s" height="10" fill="%s"/></svg> %s</td>'
               '<td class="n">%s</td></tr>',
               crm._html(replace(p.metric, '_', ' ')),
               CASE WHEN p.dimension IS NULL THEN 'all' ELSE crm._html(p.dimension || ' ' || p.key) END,
               crm._fmt(p.plan), crm._fmt(p.fact),
               round(least(greatest(coalesce(p.pct, 0), 0), 100) * 1.2, 1),
               CASE WHEN p.pct >= 100 THEN '#2f855a' ELSE '#dd6b20' END,
               CASE WHEN p.pct IS NULL THEN '' ELSE crm._fmt(p.pct) || '%' END,
               crm._fmt(p.forecast)),
               E'\n' ORDER BY p.ord)
      INTO plans
      FROM jsonb_to_recordset(plan_rows)
               AS p(metric text, dimension text, key text, plan numeric, fact numeric, pct numeric,
                    forecast numeric, forecast_pct numeric, ord bigint);

    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class="n">%s</td><td>%s</td></tr>',
               crm._html(coalesce(t.manager_id, '-')), crm._html(replace(t.kind, '_', ' ')), crm._html(t.entity_id),
               crm._html(to_char(t.since, 'YYYY-MM-DD')), crm._fmt(t.value), crm._html(t.note)),
               E'\n' ORDER BY t.ord)
      INTO todo
      FROM jsonb_to_recordset(todo_rows)
               AS t(manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text, ord bigint)
     WHERE t.ord <= 15;

    RETURN pg_catalog.format($html$<div class="cols"><div>
<h2>Where deals are lost (reason and last open stage)</h2>
<table><tr><th>reason</th><th>stage</th><th>deals</th><th>lost value</th><th>share</th></tr>
%1$s
</table></div><div>
<h2>Follow-up depth of the deals closed</h2>
<table><tr><th>real contacts</th><th>lost deals</th><th>lost value</th><th>won deals</th><th>win rate</th></tr>
%2$s
</table></div></div>
<h2>Plan against fact</h2>
%3$s
<h2>To do first, as of %5$s (%6$s things in all)</h2>
<table><tr><th>manager</th><th>what</th><th>id</th><th>since</th><th>at stake</th><th>note</th></tr>
%4$s
</table>
$html$, coalesce(losses, '<tr><td colspan="5">no deals lost in the period</td></tr>'),
         coalesce(followups, ''),
         CASE WHEN plans IS NULL THEN '<p class="sub">No plan for exactly this period (crm.set_plan).</p>'
              ELSE '<table><tr><th>metric</th><th>for</th><th>plan</th><th>fact</th><th>done</th><th>forecast</th></tr>'
                   || E'\n' || plans || E'\n</table>' END,
         coalesce(todo, '<tr><td colspan="6">nothing to do</td></tr>'),
         to_char(todo_as_of, 'YYYY-MM-DD HH24:MI'), crm._fmt(coalesce(jsonb_array_length(todo_rows), 0)::numeric));
END
$$;
COMMENT ON FUNCTION crm._dashboard_html_sales(jsonb, jsonb, jsonb, jsonb, timestamptz) IS
'Draws the sales head''s part of the crm.dashboard_html page from the rows of crm.dashboard_losses, crm.dashboard_followups, crm.dashboard_plan_fact and crm.todo (jsonb arrays of row objects, in report order).';

CREATE OR REPLACE FUNCTION crm.dashboard_html(period_from date, period_to date) RETURNS text
LANGUAGE plpgsql VOLATILE
-- no SET search_path: the reports run the registered sources with the
-- caller's path; everything here is qualified, the page is drawn by the
-- pinned crm._dashboard_html
AS $$
DECLARE
    kpi       jsonb;
    losses    jsonb;
    followups jsonb;
    plans     jsonb;
    todo      jsonb;
    -- the to-do list as of the end of the period, or now while it runs
    as_of     timestamptz;
BEGIN
    -- first: validates the period and the sources
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(o) ORDER BY o.ord) INTO kpi
      FROM crm.owner_dashboard(period_from, period_to) WITH ORDINALITY AS o(metric, value, unit, previous_value, change_pct, section, ord);
    as_of := (period_to OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz;
    IF pg_catalog.now() OPERATOR(pg_catalog.<) as_of THEN
        as_of := pg_catalog.now();
    END IF;
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(l)) INTO losses FROM crm.dashboard_losses(period_from, period_to) AS l;
    -- the follow-up depth needs the deals source (0.4.0), which an older
    -- registration may lack: the page then shows no follow-up rows
    BEGIN
        SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f) ORDER BY f.ord) INTO followups
          FROM crm.dashboard_followups(period_from, period_to)
               WITH ORDINALITY AS f(contacts, deals, lost_value, won_deals, won_value, win_rate_pct, ord);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        followups := NULL;
    END;
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p) ORDER BY p.ord) INTO plans
      FROM crm.dashboard_plan_fact(period_from, period_to)
           WITH ORDINALITY AS p(metric, dimension, key, plan, fact, pct, forecast, forecast_pct, ord);
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) ORDER BY t.ord) INTO todo FROM crm.todo(as_of)
           WITH ORDINALITY AS t(manager_id, kind, entity_id, since, value, note, ord);
    RETURN crm._dashboard_html(period_from, period_to, kpi,
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f)) FROM crm.dashboard_funnel(period_from, period_to) AS f),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r)) FROM crm.dashboard_retention(period_to) AS r),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c)) FROM crm.dashboard_channels(period_from, period_to) AS c),
        crm._dashboard_html_sales(losses, followups, plans, todo, as_of));
END
$$;
COMMENT ON FUNCTION crm.dashboard_html(date, date) IS
'A static HTML page (inline SVG, no scripts) with the owner dashboard figures, the sales funnel, the channel table, the losses by reason and stage, the follow-up depth, plan against fact, the top of the to-do list (as of the period end) and the cohort retention heat map for the period [from, to].';


-- crm.v_todo gets numeric twins of its ids (crm.id_number, section bi)
CREATE OR REPLACE VIEW crm.v_todo WITH (security_invoker = true) AS
SELECT t.manager_id, t.kind, t.entity_id, t.since, t.value, t.note,
       row_number() OVER (PARTITION BY t.manager_id
                          ORDER BY t.value DESC NULLS LAST, t.since NULLS LAST, t.kind, t.entity_id) AS rank,
       crm.id_number(t.manager_id) AS manager_id_num, crm.id_number(t.entity_id) AS entity_id_num
  FROM crm.todo() AS t;
COMMENT ON COLUMN crm.v_todo.manager_id_num IS 'manager_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';
COMMENT ON COLUMN crm.v_todo.entity_id_num IS 'entity_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';

-- ==== end of section html ====


-- ==== section review: fixes from the review of issues 20 and 21 ====
-- one builder of the channel-month cost of a lead for crm.owner_dashboard and crm.todo
CREATE FUNCTION crm._lead_cost_sql(leads text, spend text, month_from text DEFAULT NULL, month_to text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($q$
    SELECT s.channel, s.month, s.amount OPERATOR(pg_catalog./) n.leads AS cost_per_lead
      FROM (SELECT channel, pg_catalog.date_trunc('month', spent_on) AS month, pg_catalog.sum(amount) AS amount
              FROM %1$s WHERE %3$s GROUP BY 1, 2) AS s
      JOIN (SELECT channel, pg_catalog.date_trunc('month', created_at) AS month, pg_catalog.count(*) AS leads
              FROM %2$s WHERE %4$s GROUP BY 1, 2) AS n
        ON n.channel OPERATOR(pg_catalog.=) s.channel AND n.month OPERATOR(pg_catalog.=) s.month$q$,
    spend, leads,
    concat_ws(' AND ', 'true', 'spent_on OPERATOR(pg_catalog.>=) ' || month_from, 'spent_on OPERATOR(pg_catalog.<) ' || month_to),
    concat_ws(' AND ', 'true', 'created_at OPERATOR(pg_catalog.>=) ' || month_from, 'created_at OPERATOR(pg_catalog.<) ' || month_to))
$$;
COMMENT ON FUNCTION crm._lead_cost_sql(text, text, text, text) IS
'SQL text of the channel-month cost of a lead (spend of the channel in the month / its leads created in that month) as (channel, month, cost_per_lead), from FROM items of the leads and spend sources, optionally limited to [month_from, month_to); spliced by crm.owner_dashboard and crm.todo.';

-- crm.notify_todo: an item without an entity_id is not announced (it made
-- the INSERT into crm.todo_announced fail)
CREATE OR REPLACE FUNCTION crm.notify_todo(as_of timestamptz DEFAULT now()) RETURNS int
LANGUAGE plpgsql VOLATILE
-- no SET search_path: crm.todo runs the registered sources with the caller's
-- path; everything here is qualified
AS $$
DECLARE
    r record;
    n int := 0;
    payload text;
BEGIN
    FOR r IN
        -- an item without an id (a NULL lead, deal, invoice or customer id
        -- in a source) cannot be told apart from another: not announced
        WITH t AS MATERIALIZED (SELECT * FROM crm.todo(as_of) AS x WHERE x.entity_id IS NOT NULL),
        gone AS (
            DELETE FROM crm.todo_announced a
             WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.kind OPERATOR(pg_catalog.=) a.kind
                                                 AND t.entity_id OPERATOR(pg_catalog.=) a.entity_id)),
        fresh AS (
            INSERT INTO crm.todo_announced AS a (kind, entity_id, announced_at)
            SELECT t.kind, t.entity_id, pg_catalog.now() FROM t
            ON CONFLICT (kind, entity_id) DO NOTHING
            RETURNING a.kind, a.entity_id)
        SELECT t.* FROM t JOIN fresh ON fresh.kind OPERATOR(pg_catalog.=) t.kind AND fresh.entity_id OPERATOR(pg_catalog.=) t.entity_id
         ORDER BY t.value DESC NULLS LAST, t.since NULLS LAST, t.kind, t.entity_id
    LOOP
        payload := pg_catalog.json_build_object('manager_id', r.manager_id, 'kind', r.kind, 'entity_id', r.entity_id,
                                                'since', r.since, 'value', r.value, 'note', r.note)::text;
        IF pg_catalog.octet_length(payload) OPERATOR(pg_catalog.>) 7999 THEN
            payload := pg_catalog.json_build_object('manager_id', pg_catalog.left(r.manager_id, 200), 'kind', r.kind,
                                                    'entity_id', pg_catalog.left(r.entity_id, 200), 'since', r.since,
                                                    'value', r.value, 'note', pg_catalog.left(r.note, 200), 'truncated', true)::text;
        END IF;
        PERFORM pg_catalog.pg_notify('crm_todo', payload);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.notify_todo(timestamptz) IS
'Announces the new items of crm.todo(as_of): one pg_notify(''crm_todo'', <the row as json>) per item not yet in crm.todo_announced (most money first), records them there, forgets the items no longer on the list; returns the number announced.  Items without an entity_id are not announced.  Schedule it with pg_cron.';
-- ==== end of section review ====


-- ==== section fast: the reports answer from the rollups (issue 21) ====
-- Whether a report may answer from the rollups instead of the full
-- computation, by the setting crm_analytics.rollups (per session, role or
-- database): fresh (default: only when the rollups equal the live data,
-- crm.rollups_fresh()), last_refresh (whenever they are built for the
-- registered sources, stages and time zone: as of the last refresh, changes
-- waiting or not), off (always the full computation).
CREATE OR REPLACE FUNCTION crm._rollups_usable() RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mode text := coalesce(nullif(current_setting('crm_analytics.rollups', true), ''), 'fresh');
BEGIN
    IF mode NOT IN ('fresh', 'last_refresh', 'off') THEN
        RAISE EXCEPTION 'invalid value for parameter "crm_analytics.rollups": "%"', mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Available values: fresh, last_refresh, off.';
    END IF;
    IF mode = 'off' THEN
        RETURN false;
    END IF;
    -- The full computation runs the sources with the caller's privileges and
    -- row-level security; the rollups hold every row.  A role that may not
    -- read every rollup table, or that row-level security of a captured table
    -- applies to, gets the full computation.
    IF EXISTS (SELECT 1 FROM pg_class c
                WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'rollup\_%'
                  AND NOT has_table_privilege(c.oid, 'SELECT')) THEN
        RETURN false;
    END IF;
    -- (a statement of its own: crm.rollup_capture is readable now)
    IF EXISTS (SELECT 1 FROM crm.rollup_capture rc JOIN pg_class c ON c.oid = rc.relid
                WHERE c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
                  AND NOT (SELECT r.rolbypassrls OR r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RETURN false;
    END IF;
    IF mode = 'fresh' THEN
        RETURN crm.rollups_fresh();
    ELSIF mode = 'last_refresh' THEN
        -- a TRUNCATE waiting means a full rebuild: not the last refresh's figures any more
        RETURN crm._rollups_built() AND NOT EXISTS (SELECT 1 FROM crm.rollup_changes c WHERE c.bound IS NULL);
    END IF;
    RETURN false;
END
$$;
COMMENT ON FUNCTION crm._rollups_usable() IS
'Whether the reports may answer from the rollups, by the setting crm_analytics.rollups: fresh (default; only when crm.rollups_fresh()), last_refresh (whenever built for the current sources, stages and time zone), off (never); never for a role that may not read every rollup table or that row-level security of a captured table applies to.';
CREATE FUNCTION crm._fast_owner_dashboard(period_from date, period_to date)
RETURNS TABLE (metric text, value numeric, unit text, previous_value numeric, change_pct numeric, section text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard', period_from, period_to);
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
    -- the figures kept per entity
    x AS MATERIALIZED (
        SELECT d.metric, d.cur, d.prev FROM crm._fast_owner_deals(b.cur_from, b.cur_to, b.prev_from) d
        UNION ALL
        SELECT c.metric, c.cur, c.prev FROM crm._fast_owner_customers(b.cur_from, b.cur_to, b.prev_from) c
        UNION ALL
        SELECT l.metric, l.cur, l.prev FROM crm._fast_owner_leads(b.cur_from, b.cur_to, b.prev_from) l),
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
CREATE OR REPLACE FUNCTION crm.owner_dashboard(period_from date, period_to date)
RETURNS TABLE (metric text, value numeric, unit text, previous_value numeric,
               change_pct numeric, section text)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard', period_from, period_to);
    PERFORM crm._require_stages('crm.owner_dashboard');
    -- $1 cur_from, $2 cur_to, $3 prev_from, $4 prev_to (= $1); half-open.
    -- Every figure is "as of the end of its period": data after the end is
    -- ignored, so a past period always shows the same numbers.  Built first
    -- on both paths: it checks the sources (the same errors either way).
    q := crm._owner_dashboard_sql();
    -- from the rollups when they may stand in (crm._rollups_usable, docs/rollups.md)
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_owner_dashboard(period_from, period_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to, b.prev_from, b.prev_to;
END
$$;
CREATE OR REPLACE FUNCTION crm.dashboard_managers(period_from date, period_to date)
RETURNS TABLE (manager_id text, leads bigint, answered_leads bigint, unanswered_leads bigint,
               median_response_minutes numeric, deals_won bigint, deals_lost bigint, win_rate_pct numeric,
               revenue numeric, customers bigint, covered_customers bigint, coverage_pct numeric,
               calls bigint, meetings bigint, emails bigint, contacts bigint,
               average_won_deal numeric, sales_cycle_days numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_managers', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_managers');
    -- the full query, built first on both paths: it checks the sources (the same errors either way)
    q := pg_catalog.format($sql$
WITH
ld AS MATERIALIZED (
    SELECT lead_id, created_at, manager_id::pg_catalog.text AS manager_id FROM %1$s
     WHERE created_at OPERATOR(pg_catalog.>=) $1 AND created_at OPERATOR(pg_catalog.<) $2),
fc AS (
    SELECT x.lead_id, pg_catalog.min(x.occurred_at) AS first_contact
      FROM %2$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) x.lead_id
     WHERE NOT x.automated AND x.direction OPERATOR(pg_catalog.=) 'outbound' AND x.occurred_at OPERATOR(pg_catalog.>=) $1 AND x.occurred_at OPERATOR(pg_catalog.<) $2
       AND x.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
     GROUP BY x.lead_id),
lm AS (
    SELECT ld.manager_id, pg_catalog.count(*) AS leads, pg_catalog.count(fc.first_contact) AS answered,
           pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fc.first_contact OPERATOR(pg_catalog.-) ld.created_at) OPERATOR(pg_catalog./) 60) AS med
      FROM ld LEFT JOIN fc ON fc.lead_id OPERATOR(pg_catalog.=) ld.lead_id GROUP BY 1),
dl AS (
    SELECT e.deal_id, pg_catalog.min(e.manager_id::pg_catalog.text) AS manager_id,
           pg_catalog.min(e.changed_at) AS created_at, pg_catalog.max(e.amount) AS amount,
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.count(*) FILTER (WHERE e.outcome IS NULL) AS n_unknown
      -- OFFSET 0 fences the subquery: the stage CASE is computed once per row, not once per aggregate
      FROM (SELECT deal_id, changed_at, manager_id, amount, %6$s AS outcome FROM %3$s OFFSET 0) AS e
     WHERE e.changed_at OPERATOR(pg_catalog.<) $2 GROUP BY e.deal_id),
dm AS (
    SELECT manager_id,
           pg_catalog.count(*) FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS won,
           pg_catalog.count(*) FILTER (WHERE lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity')) AS lost,
           -- average_won_deal and sales_cycle of the owner dashboard, per manager
           pg_catalog.avg(amount) FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS avg_won,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400)
               FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS cycle
      FROM dl WHERE least(won_at, lost_at) OPERATOR(pg_catalog.>=) $1 GROUP BY 1),
-- real contacts (non-automated interactions, either direction) in the period, by the interaction's manager
ct AS (
    SELECT y.manager_id::pg_catalog.text AS manager_id,
           pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'call') AS calls,
           pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'meeting') AS meetings,
           pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) ANY (ARRAY['email', 'e-mail']::pg_catalog.text[])) AS emails,
           pg_catalog.count(*) AS contacts
      FROM %7$s
     WHERE NOT y.automated AND y.occurred_at OPERATOR(pg_catalog.>=) $1 AND y.occurred_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
cv AS (
    SELECT c.manager_id, pg_catalog.count(*) AS customers, pg_catalog.count(*) FILTER (WHERE c.covered) AS covered
      FROM crm.dashboard_coverage($2) c GROUP BY 1),
cu AS MATERIALIZED (SELECT customer_id, manager_id::pg_catalog.text AS manager_id FROM %4$s),
rv AS (
    SELECT cu.manager_id, pg_catalog.sum(o.amount) AS revenue
      FROM %5$s LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) o.customer_id
     WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
m AS (SELECT manager_id FROM lm UNION SELECT manager_id FROM dm UNION SELECT manager_id FROM cv
      UNION SELECT manager_id FROM rv UNION SELECT manager_id FROM ct)
SELECT m.manager_id, coalesce(lm.leads, 0), coalesce(lm.answered, 0), coalesce(lm.leads OPERATOR(pg_catalog.-) lm.answered, 0),
       pg_catalog.round(lm.med::numeric, 2), coalesce(dm.won, 0), coalesce(dm.lost, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) dm.won) OPERATOR(pg_catalog./) CASE WHEN (dm.won OPERATOR(pg_catalog.+) dm.lost) OPERATOR(pg_catalog.<>) 0 THEN (dm.won OPERATOR(pg_catalog.+) dm.lost) END, 2),
       coalesce(rv.revenue, 0), coalesce(cv.customers, 0), coalesce(cv.covered, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) cv.covered) OPERATOR(pg_catalog./) CASE WHEN cv.customers OPERATOR(pg_catalog.<>) 0 THEN cv.customers END, 2),
       coalesce(ct.calls, 0), coalesce(ct.meetings, 0), coalesce(ct.emails, 0), coalesce(ct.contacts, 0),
       pg_catalog.round(dm.avg_won, 2), pg_catalog.round(dm.cycle, 2)
  FROM m LEFT JOIN lm ON coalesce(pg_catalog.texteq(lm.manager_id, m.manager_id), lm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN dm ON coalesce(pg_catalog.texteq(dm.manager_id, m.manager_id), dm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN cv ON coalesce(pg_catalog.texteq(cv.manager_id, m.manager_id), cv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN rv ON coalesce(pg_catalog.texteq(rv.manager_id, m.manager_id), rv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN ct ON coalesce(pg_catalog.texteq(ct.manager_id, m.manager_id), ct.manager_id IS NULL AND m.manager_id IS NULL)
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY m.manager_id
$sql$, crm._source_sql('leads'), crm._source_sql('interactions', 'x'), crm._source_sql('stage_events'),
       crm._source_sql('customers'), crm._source_sql('orders', 'o'), crm._stage_case('outcome', 'stage'),
       crm._source_sql('interactions', 'y'));
    -- from the rollups when they may stand in (crm._rollups_usable, docs/rollups.md)
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_managers(period_from, period_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to;
END
$$;
-- ==== end of section fast ====
-- ==== section fast_deals ====
-- dashboard_fast_deals.sql: the deal reports answer from the rollups (issue 21).
-- Per deal, its state after every distinct event time (crm.rollup_deal_now:
-- after all its events; crm.rollup_deal_past: the earlier states, each valid
-- from its event time to the next one), kept by crm._rollup_deal_states from
-- the rollup part deals; crm.dashboard_pipeline and crm.dashboard_funnel read
-- it through crm._fast_pipeline / crm._fast_funnel, and the owner dashboard
-- and the manager report get their deal figures from crm._fast_owner_deals /
-- crm._fast_managers_deals (docs/rollups.md, "Reports from the rollups").
--
-- The state of a deal AS OF a moment E (its events with changed_at < E) is
-- its crm.rollup_deal_now row when last_at < E, else its crm.rollup_deal_past
-- row with from_at < E <= to_at; no row = no event before E.

CREATE TABLE crm.rollup_deal_now (
    deal_id    text PRIMARY KEY,
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    won_at     timestamptz,
    lost_at    timestamptz,
    closed_at  timestamptz,
    amount     numeric,
    open_so    int,
    step       int,
    manager_id text,
    channel    text,
    mask       bigint NOT NULL,
    unknown_at timestamptz
);
COMMENT ON TABLE crm.rollup_deal_now IS
'Rollup state per deal after all its events (derived, not dumped): first and last event, first won and first lost event, close (the earlier of the two), largest amount, most advanced open stage (stage_order), furthest funnel step, smallest manager id and channel, the stages (bits by rank) of its events at last_at, and its first event with a stage crm.pipeline_stages does not list.';
CREATE INDEX ON crm.rollup_deal_now ((coalesce(closed_at, 'infinity'::timestamptz)));
CREATE INDEX ON crm.rollup_deal_now (last_at);
CREATE INDEX ON crm.rollup_deal_now (unknown_at) WHERE unknown_at IS NOT NULL;

CREATE TABLE crm.rollup_deal_past (
    deal_id    text NOT NULL,
    from_at    timestamptz NOT NULL,
    to_at      timestamptz NOT NULL,
    first_at   timestamptz NOT NULL,
    won_at     timestamptz,
    lost_at    timestamptz,
    closed_at  timestamptz,
    amount     numeric,
    open_so    int,
    step       int,
    manager_id text,
    channel    text,
    mask       bigint NOT NULL,
    PRIMARY KEY (deal_id, from_at)
);
COMMENT ON TABLE crm.rollup_deal_past IS
'Earlier rollup states per deal (derived, not dumped): one row per distinct event time but the last, the state after the events up to from_at, valid until the next event time to_at (columns as crm.rollup_deal_now; last_at = from_at).';
CREATE INDEX ON crm.rollup_deal_past (to_at);
CREATE INDEX ON crm.rollup_deal_past (from_at);

-- Recomputes the state of every deal with an event at or after from_ts
-- (before or after the change) from all its events; -infinity = everything.
-- Called by crm._rollup_deals (which has checked the stages).
CREATE FUNCTION crm._rollup_deal_states(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n       bigint;
    ids     text[];
    new_ids text[];
    idtype  text;
    src     text := crm._source_sql('stage_events', 'e');
BEGIN
    EXECUTE pg_catalog.format('SELECT pg_catalog.pg_typeof(e.deal_id)::pg_catalog.text FROM %s LIMIT 1', src) INTO idtype;
    IF NOT pg_catalog.isfinite(from_ts) THEN
        TRUNCATE crm.rollup_deal_now, crm.rollup_deal_past;
    ELSE
        -- the deals with an event at or after the bound before the change
        -- (their last event is) or after it (the source has one); their
        -- states before the bound stay as they are, but are rebuilt with the rest
        WITH d AS (DELETE FROM crm.rollup_deal_now n WHERE n.last_at OPERATOR(pg_catalog.>=) from_ts RETURNING n.deal_id)
        SELECT pg_catalog.array_agg(d.deal_id) INTO ids FROM d;
        IF idtype IS NOT NULL THEN
            EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT e.deal_id::pg_catalog.text) FROM %s WHERE e.changed_at OPERATOR(pg_catalog.>=) $1', src)
                INTO new_ids USING from_ts;
        END IF;
        ids := coalesce(ids, '{}') OPERATOR(pg_catalog.||) coalesce(new_ids, '{}');
        DELETE FROM crm.rollup_deal_now n WHERE n.deal_id OPERATOR(pg_catalog.=) ANY (ids);
        DELETE FROM crm.rollup_deal_past p WHERE p.deal_id OPERATOR(pg_catalog.=) ANY (ids);
        IF pg_catalog.cardinality(ids) OPERATOR(pg_catalog.=) 0 THEN
            RETURN 0;
        END IF;
    END IF;
    IF idtype IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE pg_catalog.format($sql$
WITH ev AS (
    SELECT e.deal_id::pg_catalog.text AS deal_id, e.changed_at, e.amount, e.manager_id::pg_catalog.text AS manager_id,
           e.channel::pg_catalog.text AS channel, %2$s AS so, %3$s AS oc, %4$s AS step, %5$s AS rk
      FROM %1$s%6$s
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row
-- per deal and distinct event time
g AS (
    SELECT ev.deal_id, ev.changed_at AS at, pg_catalog.max(ev.amount) AS amount,
           pg_catalog.bool_or(ev.oc OPERATOR(pg_catalog.=) 'won') AS won, pg_catalog.bool_or(ev.oc OPERATOR(pg_catalog.=) 'lost') AS lost,
           pg_catalog.max(ev.so) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'open') AS open_so, pg_catalog.max(ev.step) AS step,
           pg_catalog.min(ev.manager_id) AS manager_id, pg_catalog.min(ev.channel) AS channel,
           coalesce(pg_catalog.bit_or(1::pg_catalog.int8 OPERATOR(pg_catalog.<<) ev.rk) FILTER (WHERE ev.rk OPERATOR(pg_catalog.<=) 62), 0) AS mask,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(ev.so) AS unknown
      FROM ev GROUP BY 1, 2),
-- the state after each event time: running first / min / max over the earlier times
w AS MATERIALIZED (
    SELECT g.deal_id, g.at AS from_at, pg_catalog.lead(g.at) OVER d AS to_at, pg_catalog.min(g.at) OVER d AS first_at,
           pg_catalog.min(g.at) FILTER (WHERE g.won) OVER d AS won_at, pg_catalog.min(g.at) FILTER (WHERE g.lost) OVER d AS lost_at,
           pg_catalog.max(g.amount) OVER d AS amount, pg_catalog.max(g.open_so) OVER d AS open_so, pg_catalog.max(g.step) OVER d AS step,
           pg_catalog.min(g.manager_id) OVER d AS manager_id, pg_catalog.min(g.channel) OVER d AS channel, g.mask,
           pg_catalog.min(g.at) FILTER (WHERE g.unknown OPERATOR(pg_catalog.>) 0) OVER d AS unknown_at
      FROM g WINDOW d AS (PARTITION BY g.deal_id ORDER BY g.at)),
past AS (
    INSERT INTO crm.rollup_deal_past (deal_id, from_at, to_at, first_at, won_at, lost_at, closed_at, amount, open_so, step, manager_id, channel, mask)
    SELECT w.deal_id, w.from_at, w.to_at, w.first_at, w.won_at, w.lost_at, least(w.won_at, w.lost_at), w.amount, w.open_so, w.step,
           w.manager_id, w.channel, w.mask
      FROM w WHERE w.to_at IS NOT NULL
     -- stored in the order the reads go (recent states together: few pages per read)
     ORDER BY w.to_at
    RETURNING 1)
INSERT INTO crm.rollup_deal_now (deal_id, first_at, last_at, won_at, lost_at, closed_at, amount, open_so, step, manager_id, channel, mask, unknown_at)
SELECT w.deal_id, w.first_at, w.from_at, w.won_at, w.lost_at, least(w.won_at, w.lost_at), w.amount, w.open_so, w.step,
       w.manager_id, w.channel, w.mask, w.unknown_at
  FROM w WHERE w.to_at IS NULL
 ORDER BY coalesce(least(w.won_at, w.lost_at), 'infinity'::pg_catalog.timestamptz)
$sql$, src, crm._stage_case('order', 'e.stage'), crm._stage_case('outcome', 'e.stage'), crm._stage_case('step', 'e.stage'),
       crm._stage_case('rank', 'e.stage'),
       -- a full refresh reads every event once; an incremental one the events
       -- of its deals, joined (the source's own joins then use the deal id too)
       CASE WHEN pg_catalog.isfinite(from_ts)
            THEN pg_catalog.format(' JOIN (SELECT DISTINCT k.id FROM pg_catalog.unnest($1::pg_catalog.text[]::%s[]) AS k(id)) AS k ON e.deal_id OPERATOR(pg_catalog.=) k.id', idtype)
            ELSE '' END)
        USING ids;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_deal_states(timestamptz) IS
'Keeps the deal states of the fast deal reports (crm.rollup_deal_now, crm.rollup_deal_past): recomputes, from all their events, every deal with an event at or after the given moment before or after the change (-infinity: all deals, tables emptied first); returns the deals written. Called by crm._rollup_deals.';

-- SQL text of a FROM item: the state AS OF the moment as_of (events with
-- changed_at < as_of) of every deal with an event before as_of that is open
-- then or closed at or after since (as_of and since: SQL expressions, e.g.
-- '$2'); run through EXECUTE so each call is planned for its moments.
CREATE FUNCTION crm._deal_states_sql(as_of text, since text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($q$(
SELECT n.deal_id, n.first_at, n.last_at, n.won_at, n.lost_at, n.closed_at, n.amount, n.open_so, n.step, n.manager_id, n.channel
  FROM crm.rollup_deal_now n
 WHERE n.last_at < %1$s AND coalesce(n.closed_at, 'infinity'::timestamptz) >= %2$s
UNION ALL
SELECT p.deal_id, p.first_at, p.from_at, p.won_at, p.lost_at, p.closed_at, p.amount, p.open_so, p.step, p.manager_id, p.channel
  FROM crm.rollup_deal_past p
 WHERE p.to_at >= %1$s AND p.from_at < %1$s AND coalesce(p.closed_at, 'infinity'::timestamptz) >= %2$s)$q$, as_of, since)
$$;
COMMENT ON FUNCTION crm._deal_states_sql(text, text) IS
'SQL text of the rollup state as of a moment (events before it) of every deal open at that moment or closed at or after since (both SQL expressions): deal_id, first and last event, first won and lost event, close, largest amount, most advanced open stage, furthest funnel step, manager and channel.';

-- The error of the full computations when the stage_events source named a
-- stage crm.pipeline_stages does not list before as_of.
CREATE FUNCTION crm._deal_check_stages(as_of timestamptz) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT crm._check_stages((SELECT count(*) FROM crm.rollup_deal_now n WHERE n.unknown_at < as_of))
$$;
COMMENT ON FUNCTION crm._deal_check_stages(timestamptz) IS
'Raises the error of crm._check_stages when a deal of the rollup state has an event with a stage crm.pipeline_stages does not list before the given moment; true otherwise.';

-- crm.dashboard_pipeline from the rollups: same rows.
CREATE FUNCTION crm._fast_pipeline(cur_from timestamptz, cur_to timestamptz)
RETURNS TABLE (stage text, stage_order int, outcome text, probability numeric, entered bigint,
               open_deals bigint, open_value numeric, weighted_value numeric, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql STABLE
-- small reads of the deal states: JIT compilation would cost more than the query
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._deal_check_stages(cur_to);
    RETURN QUERY EXECUTE format($sql$
    WITH st AS (
        SELECT s.stage, s.stage_order, s.probability, s.outcome, s.max_days, row_number() OVER (ORDER BY s.stage_order)::int AS rk
          FROM crm.pipeline_stages s),
    dl AS MATERIALIZED (SELECT * FROM %1$s AS d),
    -- per deal, the stages of its events in the period (bits by rank)
    em AS (
        SELECT x.deal_id, bit_or(x.mask) AS m
          FROM (SELECT n.deal_id, n.mask FROM crm.rollup_deal_now n WHERE n.last_at >= $1 AND n.last_at < $2
                UNION ALL
                SELECT p.deal_id, p.mask FROM crm.rollup_deal_past p WHERE p.from_at >= $1 AND p.from_at < $2) AS x
         GROUP BY 1),
    -- the few distinct stage sets, then per stage the deals whose set holds it
    es AS (SELECT em.m, count(*) AS n FROM em GROUP BY 1),
    en AS (
        SELECT st.rk, sum(es.n) FILTER (WHERE (es.m >> st.rk) & 1::int8 = 1) AS n
          FROM st CROSS JOIN es GROUP BY 1),
    op AS (
        SELECT dl.open_so AS so, count(*) AS n, sum(dl.amount) AS amt,
               -- stale deals (idle beyond the stage norm) are left out of the weighted value
               sum(dl.amount) FILTER (WHERE NOT coalesce(dl.last_at < ($2 - (SELECT (s.max_days::text || ' days')::interval FROM st s WHERE s.stage_order = dl.open_so)), false)) AS live_amt
          FROM dl WHERE dl.won_at IS NULL AND dl.lost_at IS NULL AND dl.open_so IS NOT NULL GROUP BY 1),
    lo AS (
        SELECT dl.open_so AS so, count(*) AS n, sum(dl.amount) AS amt
          FROM dl WHERE dl.lost_at >= $1 AND dl.lost_at < coalesce(dl.won_at, 'infinity') GROUP BY 1)
    SELECT st.stage, st.stage_order, st.outcome, st.probability, coalesce(en.n, 0)::bigint,
           coalesce(op.n, 0), coalesce(op.amt, 0), round(coalesce(op.live_amt, 0) * st.probability, 2),
           coalesce(lo.n, 0), coalesce(lo.amt, 0)
      FROM st LEFT JOIN op ON op.so = st.stage_order
              LEFT JOIN lo ON lo.so = st.stage_order
              LEFT JOIN en ON en.rk = st.rk
     ORDER BY st.stage_order
$sql$, crm._deal_states_sql('$2', '$1'))
        USING cur_from, cur_to;
END
$$;
COMMENT ON FUNCTION crm._fast_pipeline(timestamptz, timestamptz) IS
'crm.dashboard_pipeline for the half-open period [cur_from, cur_to) read from the deal states of the rollups (crm.rollup_deal_now, crm.rollup_deal_past): the same rows as the full computation.';

-- crm.dashboard_funnel from the rollups: same rows.
CREATE FUNCTION crm._fast_funnel(cur_from timestamptz, cur_to timestamptz)
RETURNS TABLE (step_no int, stage text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
               dropped bigint, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql STABLE
-- small reads of the deal states: JIT compilation would cost more than the query
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._deal_check_stages(cur_to);
    RETURN QUERY EXECUTE format($sql$
    WITH steps AS (
        SELECT row_number() OVER (ORDER BY s.stage_order)::int AS step_no, s.stage
          FROM crm.pipeline_stages s WHERE s.outcome = 'open' OR s.outcome = 'won'),
    -- deals whose first event is in the period (their close, if any, is too)
    lv AS (
        SELECT dl.step AS level, count(*) AS n, count(*) FILTER (WHERE dl.lost_at IS NOT NULL) AS lost_deals,
               coalesce(sum(dl.amount) FILTER (WHERE dl.lost_at IS NOT NULL), 0) AS lost_value
          FROM %1$s AS dl
         WHERE dl.first_at >= $1 AND dl.step IS NOT NULL GROUP BY 1),
    f AS (
        SELECT steps.step_no, steps.stage,
               coalesce(sum(lv.n) OVER (ORDER BY steps.step_no DESC), 0)::bigint AS entered,
               coalesce(lv.lost_deals, 0) AS lost_deals, coalesce(lv.lost_value, 0) AS lost_value
          FROM steps LEFT JOIN lv ON lv.level = steps.step_no)
    SELECT f.step_no, f.stage, f.entered,
           round((100.0 * f.entered) / CASE WHEN first_value(f.entered) OVER w <> 0 THEN first_value(f.entered) OVER w END, 2),
           round((100.0 * f.entered) / CASE WHEN lag(f.entered) OVER w <> 0 THEN lag(f.entered) OVER w END, 2),
           f.entered - lead(f.entered, 1, f.entered) OVER w,
           f.lost_deals, f.lost_value
      FROM f
    WINDOW w AS (ORDER BY f.step_no)
     ORDER BY f.step_no
$sql$, crm._deal_states_sql('$2', '$1'))
        USING cur_from, cur_to;
END
$$;
COMMENT ON FUNCTION crm._fast_funnel(timestamptz, timestamptz) IS
'crm.dashboard_funnel for the half-open period [cur_from, cur_to) read from the deal states of the rollups: the same rows as the full computation.';

-- The deal figures of the owner dashboard, for the current period
-- [cur_from, cur_to) and the previous one [prev_from, cur_from), exactly as
-- crm._owner_dashboard_sql computes them (same rounding; amounts as of the
-- current period's end, also for the previous period's figures, as there).
CREATE FUNCTION crm._fast_owner_deals(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE plpgsql STABLE
-- small reads of the deal states: JIT compilation would cost more than the query
SET jit = off
-- the per-deal join of the two states: hashed (a merge join sorts the text ids)
SET enable_mergejoin = off
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._deal_check_stages(cur_to);
    RETURN QUERY EXECUTE format($sql$
    WITH st AS (SELECT s.stage, s.stage_order, s.probability, s.outcome, (s.max_days::text || ' days')::interval AS norm
                  FROM crm.pipeline_stages s),
    dc AS MATERIALIZED (
        SELECT d.deal_id, d.first_at AS created_at, d.amount, d.won_at, d.closed_at, d.open_so AS open_cur,
               d.won_at IS NOT NULL AND d.won_at <= coalesce(d.lost_at, d.won_at) AS is_won,
               st.probability AS p_cur, coalesce(d.last_at < ($2 - st.norm), false) AS stale_cur
          FROM %1$s AS d LEFT JOIN st ON st.stage_order = d.open_so),
    -- open at the previous period's end (no close before it), valued at the amount as of the current end
    po AS MATERIALIZED (
        SELECT d.deal_id, d.open_so, d.last_at FROM %2$s AS d WHERE d.closed_at IS NULL AND d.open_so IS NOT NULL),
    pv AS (
        SELECT dc.amount, st.probability AS p_prev, coalesce(po.last_at < ($1 - st.norm), false) AS stale_prev
          FROM po JOIN dc ON dc.deal_id = po.deal_id
          LEFT JOIN st ON st.stage_order = po.open_so),
    dm AS (
        SELECT count(*) FILTER (WHERE is_won AND closed_at >= $1) AS c_won,
               count(*) FILTER (WHERE NOT is_won AND closed_at >= $1) AS c_lost,
               count(*) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $1) AS p_won,
               count(*) FILTER (WHERE NOT is_won AND closed_at >= $3 AND closed_at < $1) AS p_lost,
               sum(amount) FILTER (WHERE NOT is_won AND closed_at >= $1) AS c_lost_amt,
               sum(amount) FILTER (WHERE NOT is_won AND closed_at >= $3 AND closed_at < $1) AS p_lost_amt,
               avg(amount) FILTER (WHERE is_won AND closed_at >= $1) AS c_avg_won,
               avg(amount) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $1) AS p_avg_won,
               avg(extract(epoch FROM won_at - created_at) / 86400) FILTER (WHERE is_won AND closed_at >= $1) AS c_cycle,
               avg(extract(epoch FROM won_at - created_at) / 86400) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $1) AS p_cycle,
               count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open,
               sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open_amt,
               sum(amount * p_cur) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND NOT stale_cur) AS c_weighted,
               count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND stale_cur) AS c_stale,
               sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND stale_cur) AS c_stale_amt
          FROM dc),
    pm AS (
        SELECT count(*) AS p_open, sum(amount) AS p_open_amt,
               sum(amount * p_prev) FILTER (WHERE NOT stale_prev) AS p_weighted,
               count(*) FILTER (WHERE stale_prev) AS p_stale,
               sum(amount) FILTER (WHERE stale_prev) AS p_stale_amt
          FROM pv),
    -- lost deals by the most advanced open stage they reached (as of the current end)
    lost AS (
        SELECT st.stage, st.stage_order, coalesce(l.c_amt, 0) AS c_amt, coalesce(l.p_amt, 0) AS p_amt
          FROM st LEFT JOIN (SELECT dc.open_cur, sum(dc.amount) FILTER (WHERE dc.closed_at >= $1) AS c_amt,
                                    sum(dc.amount) FILTER (WHERE dc.closed_at < $1) AS p_amt
                               FROM dc WHERE NOT dc.is_won AND dc.closed_at >= $3 GROUP BY 1) AS l ON l.open_cur = st.stage_order
         WHERE st.outcome = 'open'),
    rows AS (
        SELECT v.*
          FROM dm, pm,
          LATERAL (VALUES
            (12, 'win_rate', round((100.0 * c_won) / CASE WHEN (c_won + c_lost) <> 0 THEN (c_won + c_lost) END, 2), round((100.0 * p_won) / CASE WHEN (p_won + p_lost) <> 0 THEN (p_won + p_lost) END, 2)),
            (13, 'deals_won', c_won::numeric, p_won::numeric),
            (14, 'average_won_deal', round(c_avg_won, 2), round(p_avg_won, 2)),
            (15, 'sales_cycle', round(c_cycle, 2), round(p_cycle, 2)),
            (16, 'open_deals', c_open::numeric, p_open::numeric),
            (17, 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0)),
            (18, 'weighted_pipeline', round(coalesce(c_weighted, 0), 2), round(coalesce(p_weighted, 0), 2)),
            (18.1, 'stale_deals', c_stale::numeric, p_stale::numeric),
            (18.2, 'stale_pipeline_value', coalesce(c_stale_amt, 0), coalesce(p_stale_amt, 0)),
            (19, 'sales_velocity',
                 round(((c_open * (c_won::numeric / CASE WHEN (c_won + c_lost) <> 0 THEN (c_won + c_lost) END)) * c_avg_won) / CASE WHEN c_cycle <> 0 THEN c_cycle END, 2),
                 round(((p_open * (p_won::numeric / CASE WHEN (p_won + p_lost) <> 0 THEN (p_won + p_lost) END)) * p_avg_won) / CASE WHEN p_cycle <> 0 THEN p_cycle END, 2)),
            (20, 'deals_lost', c_lost::numeric, p_lost::numeric),
            (21, 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0))
          ) AS v(ord, metric, cur, prev)
        UNION ALL
        SELECT 100 + lost.stage_order, 'lost_value_at_' || lost.stage, lost.c_amt, lost.p_amt FROM lost)
    SELECT rows.metric, rows.cur, rows.prev FROM rows ORDER BY rows.ord
$sql$, crm._deal_states_sql('$2', '$3'), crm._deal_states_sql('$1', '$1'))
        USING cur_from, cur_to, prev_from;
END
$$;
COMMENT ON FUNCTION crm._fast_owner_deals(timestamptz, timestamptz, timestamptz) IS
'The deal rows of the owner dashboard (win_rate, deals_won, average_won_deal, sales_cycle, open_deals, open_pipeline_value, weighted_pipeline, stale_deals, stale_pipeline_value, sales_velocity, deals_lost, lost_deal_value, lost_value_at_<stage>) for the current period [cur_from, cur_to) and the previous one [prev_from, cur_from), read from the deal states of the rollups, exactly as crm._owner_dashboard_sql computes them.';

-- The deal figures of crm.dashboard_managers (its dm part, unrounded) for
-- [period_from, period_to).
CREATE FUNCTION crm._fast_managers_deals(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, won bigint, lost bigint, avg_won numeric, cycle numeric)
LANGUAGE plpgsql STABLE
-- small reads of the deal states: JIT compilation would cost more than the query
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._deal_check_stages(period_to);
    RETURN QUERY EXECUTE format($sql$
    SELECT d.manager_id,
           count(*) FILTER (WHERE d.won_at <= coalesce(d.lost_at, d.won_at)),
           count(*) FILTER (WHERE d.lost_at < coalesce(d.won_at, 'infinity')),
           avg(d.amount) FILTER (WHERE d.won_at <= coalesce(d.lost_at, d.won_at)),
           avg(extract(epoch FROM d.won_at - d.first_at) / 86400) FILTER (WHERE d.won_at <= coalesce(d.lost_at, d.won_at))
      FROM %1$s AS d
     WHERE d.closed_at >= $1
     GROUP BY 1
$sql$, crm._deal_states_sql('$2', '$1'))
        USING period_from, period_to;
END
$$;
COMMENT ON FUNCTION crm._fast_managers_deals(timestamptz, timestamptz) IS
'Per manager, the deals won and lost in [period_from, period_to), the average won deal and the sales cycle in days (unrounded): the deal part of crm.dashboard_managers read from the deal states of the rollups.';

-- crm._rollup_deals keeps the deal states (one call), and replaces the row of a deal
-- whose last event was before the bound; the pipeline and funnel reports get their gates
CREATE OR REPLACE FUNCTION crm._rollup_deals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n       bigint;
    old_ids text[];
    idtype  text;
    src     text := crm._source_sql('stage_events', 'e');
BEGIN
    PERFORM crm._require_stages('crm.refresh_rollups');
    -- every deal with an event at or after the bound, before or after the
    -- change, is recomputed from all its events
    WITH d AS (DELETE FROM crm.rollup_deals rd WHERE rd.last_at OPERATOR(pg_catalog.>=) from_ts RETURNING rd.deal_id)
    SELECT pg_catalog.array_agg(d.deal_id) INTO old_ids FROM d;
    EXECUTE pg_catalog.format('SELECT pg_catalog.pg_typeof(e.deal_id)::pg_catalog.text FROM %s LIMIT 1', src) INTO idtype;
    IF idtype IS NOT NULL THEN
        EXECUTE pg_catalog.format($sql$
WITH t AS (
    SELECT e.deal_id FROM %1$s WHERE e.changed_at OPERATOR(pg_catalog.>=) $1
    UNION
    SELECT pg_catalog.unnest($2::pg_catalog.text[])::%2$s),
dl AS (
    SELECT ev.deal_id, pg_catalog.min(ev.changed_at) AS first_at, pg_catalog.max(ev.changed_at) AS last_at,
           pg_catalog.min(ev.changed_at) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(ev.changed_at) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.min(ev.manager_id) AS manager_id, pg_catalog.min(ev.channel) AS channel,
           pg_catalog.max(ev.amount) AS amount, pg_catalog.max(ev.so) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'open') AS open_so,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(ev.so) AS unknown
      FROM (SELECT e.deal_id, e.changed_at, e.amount, e.manager_id::pg_catalog.text AS manager_id, e.channel::pg_catalog.text AS channel,
                   %3$s AS so, %4$s AS oc
              FROM %1$s WHERE %5$s
            OFFSET 0) AS ev  -- a fence: the stage CASEs are computed once per row
     GROUP BY ev.deal_id),
dc AS MATERIALIZED (
    SELECT dl.*, least(dl.won_at, dl.lost_at) AS closed_at,
           dl.won_at IS NOT NULL AND dl.won_at OPERATOR(pg_catalog.<=) coalesce(dl.lost_at, dl.won_at) AS is_won
      FROM dl),
-- deals with events after their close (rare): amount and most advanced open
-- stage up to the close, from their events read again
late AS (
    SELECT e.deal_id,
           pg_catalog.max(e.amount) FILTER (WHERE e.changed_at OPERATOR(pg_catalog.<=) dc.closed_at) AS amount,
           pg_catalog.max(%3$s) FILTER (WHERE %4$s OPERATOR(pg_catalog.=) 'open' AND e.changed_at OPERATOR(pg_catalog.<=) dc.closed_at) AS open_so
      FROM %1$s JOIN dc ON dc.deal_id OPERATOR(pg_catalog.=) e.deal_id
     WHERE e.deal_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT dc2.deal_id FROM dc AS dc2 WHERE dc2.last_at OPERATOR(pg_catalog.>) dc2.closed_at))
     GROUP BY e.deal_id)
INSERT INTO crm.rollup_deals (deal_id, first_at, last_at, closed_at, is_won, amount, lost_stage, manager_id, channel)
SELECT dc.deal_id::pg_catalog.text, dc.first_at, dc.last_at, dc.closed_at, dc.is_won,
       CASE WHEN late.deal_id IS NULL THEN dc.amount ELSE late.amount END,
       CASE WHEN NOT dc.is_won THEN (SELECT ps.stage FROM crm.pipeline_stages ps
                                      WHERE ps.stage_order OPERATOR(pg_catalog.=) CASE WHEN late.deal_id IS NULL THEN dc.open_so ELSE late.open_so END) END,
       dc.manager_id, dc.channel
  FROM dc LEFT JOIN late ON late.deal_id OPERATOR(pg_catalog.=) dc.deal_id
 WHERE crm._check_stages((SELECT pg_catalog.sum(dc2.unknown) FROM dc AS dc2))
-- a deal whose last event was before the bound and that got one after it
-- still has its row: replaced
ON CONFLICT (deal_id) DO UPDATE
   SET first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at, closed_at = EXCLUDED.closed_at, is_won = EXCLUDED.is_won,
       amount = EXCLUDED.amount, lost_stage = EXCLUDED.lost_stage, manager_id = EXCLUDED.manager_id, channel = EXCLUDED.channel
$sql$, src, idtype, crm._stage_case('order', 'e.stage'), crm._stage_case('outcome', 'e.stage'),
       -- a full refresh reads every event once
       CASE WHEN pg_catalog.isfinite(from_ts) THEN 'e.deal_id OPERATOR(pg_catalog.=) ANY (SELECT t.deal_id FROM t)' ELSE 'true' END)
        USING from_ts, coalesce(old_ids, '{}');
    END IF;
    PERFORM crm._rollup_deal_states(from_ts);
    INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
    SELECT a.day, m.metric, a.dimension, a.key, m.value
      FROM (SELECT d.day,
                   CASE WHEN GROUPING(d.channel) OPERATOR(pg_catalog.=) 0 THEN 'channel'::pg_catalog.text
                        WHEN GROUPING(d.manager_id) OPERATOR(pg_catalog.=) 0 THEN 'manager'
                        WHEN GROUPING(d.stage) OPERATOR(pg_catalog.=) 0 THEN 'stage' ELSE 'all' END AS dimension,
                   CASE WHEN GROUPING(d.channel) OPERATOR(pg_catalog.=) 0 THEN coalesce(d.channel, '(unknown)')
                        WHEN GROUPING(d.manager_id) OPERATOR(pg_catalog.=) 0 THEN coalesce(d.manager_id, '(unknown)')
                        WHEN GROUPING(d.stage) OPERATOR(pg_catalog.=) 0 THEN d.stage ELSE 'all'::pg_catalog.text END AS key,
                   pg_catalog.count(*) FILTER (WHERE d.is_won) AS won,
                   pg_catalog.sum(d.amount) FILTER (WHERE d.is_won) AS won_value,
                   pg_catalog.sum(EXTRACT(epoch FROM d.closed_at OPERATOR(pg_catalog.-) d.first_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE d.is_won) AS cycle,
                   pg_catalog.count(*) FILTER (WHERE NOT d.is_won) AS lost,
                   pg_catalog.sum(d.amount) FILTER (WHERE NOT d.is_won) AS lost_value
              FROM (SELECT rd.closed_at::pg_catalog.date AS day, rd.closed_at, rd.first_at, rd.is_won, rd.amount, rd.channel, rd.manager_id,
                           CASE WHEN NOT rd.is_won THEN rd.lost_stage END AS stage
                      FROM crm.rollup_deals rd WHERE rd.closed_at OPERATOR(pg_catalog.>=) from_ts) AS d
             GROUP BY GROUPING SETS ((d.day), (d.day, d.channel), (d.day, d.manager_id), (d.day, d.stage))
            -- lost deals by stage only (a lost deal without an open stage has none)
            HAVING GROUPING(d.stage) OPERATOR(pg_catalog.<>) 0 OR d.stage IS NOT NULL) AS a
     CROSS JOIN LATERAL (VALUES ('deals_won'::pg_catalog.text, (CASE WHEN a.won OPERATOR(pg_catalog.>) 0 THEN a.won END)::pg_catalog.numeric),
                                ('won_value', a.won_value), ('won_cycle_days', a.cycle),
                                ('deals_lost', (CASE WHEN a.lost OPERATOR(pg_catalog.>) 0 THEN a.lost END)::pg_catalog.numeric),
                                ('lost_deal_value', a.lost_value)) AS m(metric, value)
     WHERE m.value IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
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
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_pipeline', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_pipeline');
    SELECT pg_catalog.count(*) INTO nstages FROM crm.pipeline_stages;
    IF nstages OPERATOR(pg_catalog.>) 62 THEN
        RAISE EXCEPTION 'at most 62 pipeline stages, crm.pipeline_stages has %', nstages
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- per deal, the stages entered in the period as a bit mask; then one sum per stage
    SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.sum((entered_mask OPERATOR(pg_catalog.>>) %s) OPERATOR(pg_catalog.&) 1::pg_catalog.int8)', k), ', ' ORDER BY k)
      INTO entered_sums FROM pg_catalog.generate_series(1, nstages) AS k;
    -- the full query, built first on both paths: it checks the source (the same errors either way)
    q := pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome, pg_catalog.row_number() OVER (ORDER BY stage_order)::int AS rk
         FROM crm.pipeline_stages),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS stage_order, %3$s AS outcome, %4$s AS rk
      FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.max(amount) AS amount, pg_catalog.max(changed_at) AS last_at,
           pg_catalog.max(stage_order) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'open') AS open_stage,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.bit_or(1::pg_catalog.int8 OPERATOR(pg_catalog.<<) rk) FILTER (WHERE changed_at OPERATOR(pg_catalog.>=) $1) AS entered_mask,
           pg_catalog.count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
en AS (SELECT ARRAY[%5$s] AS entered FROM dl WHERE entered_mask IS NOT NULL),
op AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt,
           -- stale deals (idle beyond the stage norm) are left out of the weighted value
           pg_catalog.sum(amount) FILTER (WHERE NOT coalesce(last_at OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) %6$s), false)) AS live_amt
      FROM dl WHERE won_at IS NULL AND lost_at IS NULL AND open_stage IS NOT NULL GROUP BY 1),
lo AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt
      FROM dl WHERE lost_at OPERATOR(pg_catalog.>=) $1 AND lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity') GROUP BY 1)
SELECT st.stage, st.stage_order, st.outcome, st.probability, coalesce((SELECT en.entered[st.rk] FROM en), 0)::bigint,
       coalesce(op.n, 0), coalesce(op.amt, 0), pg_catalog.round(coalesce(op.live_amt, 0) OPERATOR(pg_catalog.*) st.probability, 2),
       coalesce(lo.n, 0), coalesce(lo.amt, 0)
  FROM st LEFT JOIN op ON op.stage_order OPERATOR(pg_catalog.=) st.stage_order
          LEFT JOIN lo ON lo.stage_order OPERATOR(pg_catalog.=) st.stage_order
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY st.stage_order
$sql$, crm._source_sql('stage_events'), crm._stage_case('order', 'stage'), crm._stage_case('outcome', 'stage'),
       crm._stage_case('rank', 'stage'), entered_sums, crm._stage_norm_case('open_stage'));
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_pipeline(b.cur_from, b.cur_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to;
END
$$;
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
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_funnel', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_funnel');
    -- the full query, built first on both paths: it checks the source (the same errors either way)
    q := pg_catalog.format($sql$
WITH
steps AS (
    SELECT pg_catalog.row_number() OVER (ORDER BY stage_order)::int AS step_no, stage
      FROM crm.pipeline_stages WHERE outcome OPERATOR(pg_catalog.=) 'open' OR outcome OPERATOR(pg_catalog.=) 'won'),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS step, %3$s AS outcome FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.min(changed_at) AS started_at, pg_catalog.max(amount) AS amount, pg_catalog.max(step) AS level,
           pg_catalog.bool_or(outcome OPERATOR(pg_catalog.=) 'lost') AS lost, pg_catalog.count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
lv AS (
    SELECT level, pg_catalog.count(*) AS n, pg_catalog.count(*) FILTER (WHERE lost) AS lost_deals,
           coalesce(pg_catalog.sum(amount) FILTER (WHERE lost), 0) AS lost_value
      FROM dl WHERE started_at OPERATOR(pg_catalog.>=) $1 AND level IS NOT NULL GROUP BY level),
f AS (
    SELECT steps.step_no, steps.stage,
           coalesce(pg_catalog.sum(lv.n) OVER (ORDER BY steps.step_no DESC), 0)::bigint AS entered,
           coalesce(lv.lost_deals, 0) AS lost_deals, coalesce(lv.lost_value, 0) AS lost_value
      FROM steps LEFT JOIN lv ON lv.level OPERATOR(pg_catalog.=) steps.step_no)
SELECT f.step_no, f.stage, f.entered,
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) f.entered) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.first_value(f.entered) OVER w OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.first_value(f.entered) OVER w END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) f.entered) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.lag(f.entered) OVER w OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.lag(f.entered) OVER w END, 2),
       f.entered OPERATOR(pg_catalog.-) pg_catalog.lead(f.entered, 1, f.entered) OVER w,
       f.lost_deals, f.lost_value
  FROM f
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
WINDOW w AS (ORDER BY f.step_no)
 ORDER BY f.step_no
$sql$, crm._source_sql('stage_events'), crm._stage_case('step', 'stage'), crm._stage_case('outcome', 'stage'));
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_funnel(b.cur_from, b.cur_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to;
END
$$;
-- ==== end of section fast_deals ====
-- ==== section fast_customers ====
-- the report gates and the part hooks (full new text)
CREATE OR REPLACE FUNCTION crm.dashboard_coverage(as_of timestamptz)
RETURNS TABLE (customer_id text, manager_id text, channel text, revenue_12m numeric, abc_class text,
               last_contact timestamptz, next_due timestamptz, covered boolean)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real moment, e.g. ''2026-01-01''.';
    END IF;
    IF crm._rollups_usable() THEN
        -- the sources checked as the full path does (same errors)
        PERFORM crm._source_sql('customers'), crm._source_sql('orders'), crm._source_sql('interactions');
        RETURN QUERY SELECT * FROM crm._fast_coverage(as_of);
        RETURN;
    END IF;
    -- ABC by the revenue of the 12 months before as_of, crm.abc_class
    -- semantics (share held by strictly larger values < 0.80 -> A, < 0.95 -> B;
    -- the tests check it against crm.abc_class), computed here with one sort
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
c AS (SELECT customer_id, manager_id, channel, created_at FROM %1$s WHERE created_at OPERATOR(pg_catalog.<) $1),
r AS (SELECT customer_id, pg_catalog.sum(amount) AS rev FROM %2$s
       WHERE ordered_at OPERATOR(pg_catalog.>=) ($1 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval) AND ordered_at OPERATOR(pg_catalog.<) $1 GROUP BY customer_id),
x AS (SELECT customer_id, pg_catalog.max(occurred_at) AS last_at FROM %3$s
       WHERE NOT automated AND occurred_at OPERATOR(pg_catalog.<) $1 AND customer_id IS NOT NULL GROUP BY customer_id),
-- A / B thresholds: the smallest revenue whose running sum of the larger
-- ones (sorted descending) is < 0.80 / < 0.95 of the total (abc_class semantics)
rs AS (SELECT rev, pg_catalog.sum(rev) OVER (ORDER BY rev DESC ROWS UNBOUNDED PRECEDING) OPERATOR(pg_catalog.-) rev AS before,
              pg_catalog.sum(rev) OVER () AS total
         FROM r WHERE rev OPERATOR(pg_catalog.>) 0),
th AS MATERIALIZED (SELECT pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.80 OPERATOR(pg_catalog.*) total)) AS a, pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.95 OPERATOR(pg_catalog.*) total)) AS b
         FROM rs),
cl AS (
    SELECT c.customer_id, c.manager_id, c.channel, c.created_at, r.rev,
           CASE WHEN r.rev OPERATOR(pg_catalog.>=) th.a THEN 'A' WHEN r.rev OPERATOR(pg_catalog.>=) th.b THEN 'B' ELSE 'C' END AS cls
      FROM c CROSS JOIN th LEFT JOIN r ON r.customer_id OPERATOR(pg_catalog.=) c.customer_id),
pol AS MATERIALIZED (SELECT k.cls, crm._dashboard_coverage_interval(k.cls) AS iv FROM (VALUES ('A'), ('B'), ('C')) AS k(cls))
SELECT cl.customer_id::pg_catalog.text, cl.manager_id::pg_catalog.text, cl.channel::pg_catalog.text, coalesce(cl.rev, 0), cl.cls,
       -- next due as crm.coverage: last real contact, or (never contacted)
       -- customer since, plus the class interval; covered = not yet past it
       x.last_at, coalesce(x.last_at, cl.created_at) OPERATOR(pg_catalog.+) pol.iv,
       coalesce((coalesce(x.last_at, cl.created_at) OPERATOR(pg_catalog.+) pol.iv) OPERATOR(pg_catalog.>=) $1, false)
  FROM cl JOIN pol ON pol.cls OPERATOR(pg_catalog.=) cl.cls LEFT JOIN x ON x.customer_id OPERATOR(pg_catalog.=) cl.customer_id
$sql$, crm._source_sql('customers'), crm._source_sql('orders'), crm._source_sql('interactions'))
    USING as_of;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_channels(period_from date, period_to date)
RETURNS TABLE (channel text, leads bigint, new_buyers bigint, conversion_pct numeric, revenue numeric,
               gross_profit numeric, spend numeric, cac numeric, roi_pct numeric, ltv numeric, ltv_cac numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_channels(period_from, period_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
cu AS MATERIALIZED (SELECT customer_id, channel FROM %1$s),
od AS (SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at OPERATOR(pg_catalog.<) $2),
b AS MATERIALIZED (
    SELECT customer_id, pg_catalog.min(ordered_at) AS first_at, pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) AS gp_to_date,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS rev, pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS gp
      FROM od GROUP BY customer_id),
bc AS (
    SELECT coalesce(cu.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit,
           pg_catalog.avg(b.gp_to_date) AS ltv
      FROM b LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) b.customer_id GROUP BY 1),
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.<) $2) AS converted
      FROM %3$s LEFT JOIN b ON b.customer_id OPERATOR(pg_catalog.=) l.customer_id
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %4$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
ch AS (SELECT channel FROM bc UNION SELECT channel FROM ld UNION SELECT channel FROM sp)
SELECT ch.channel, coalesce(ld.leads, 0), coalesce(bc.new_buyers, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) ld.converted) OPERATOR(pg_catalog./) CASE WHEN ld.leads OPERATOR(pg_catalog.<>) 0 THEN ld.leads END, 2),
       coalesce(bc.revenue, 0), coalesce(bc.gross_profit, 0), coalesce(sp.spend, 0),
       pg_catalog.round(sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(bc.gross_profit, 0) OPERATOR(pg_catalog.-) sp.spend)) OPERATOR(pg_catalog./) CASE WHEN sp.spend OPERATOR(pg_catalog.<>) 0 THEN sp.spend END, 2),
       pg_catalog.round(bc.ltv, 2),
       pg_catalog.round(bc.ltv OPERATOR(pg_catalog./) CASE WHEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) OPERATOR(pg_catalog.<>) 0 THEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) END, 2)
  FROM ch LEFT JOIN bc ON bc.channel OPERATOR(pg_catalog.=) ch.channel LEFT JOIN ld ON ld.channel OPERATOR(pg_catalog.=) ch.channel
          LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) ch.channel
 ORDER BY ch.channel
$sql$, crm._source_sql('customers'), crm._source_sql('orders'),
       crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    USING b.cur_from, b.cur_to;
END
$$;

CREATE OR REPLACE FUNCTION crm._rollup_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    src_o text := crm._source_sql('orders', 'o');
    go text[] := crm._rollup_gsets('o', 'channel', 'manager');
    gn text[] := crm._rollup_gsets('nb', 'channel', 'manager');
BEGIN
    -- first orders at or after the bound may have changed; earlier ones did not
    DELETE FROM crm.rollup_customers rc WHERE rc.first_at OPERATOR(pg_catalog.>=) from_ts;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customers AS rc (customer_id, first_at)
SELECT f.cid, f.first_at
  FROM (SELECT o.customer_id::pg_catalog.text AS cid, pg_catalog.min(o.ordered_at) AS first_at
          FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.customer_id IS NOT NULL GROUP BY 1) AS f
 -- customers whose first order is before the bound keep it
 WHERE NOT EXISTS (SELECT 1 FROM crm.rollup_customers x WHERE x.customer_id OPERATOR(pg_catalog.=) f.cid)
$sql$, src_o) USING from_ts;
    EXECUTE pg_catalog.format($sql$
WITH o AS MATERIALIZED (
    SELECT o.customer_id::pg_catalog.text AS cid, o.ordered_at::pg_catalog.date AS day, o.amount, o.cost,
           c.channel::pg_catalog.text AS channel, c.manager_id::pg_catalog.text AS manager
      FROM %1$s LEFT JOIN %2$s ON c.customer_id OPERATOR(pg_catalog.=) o.customer_id
     WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1),
nb AS (
    SELECT rc.first_at::pg_catalog.date AS day, d.channel, d.manager
      FROM crm.rollup_customers rc
      JOIN (SELECT DISTINCT o.cid, o.channel, o.manager FROM o) AS d ON d.cid OPERATOR(pg_catalog.=) rc.customer_id
     WHERE rc.first_at OPERATOR(pg_catalog.>=) $1),
a AS (
    SELECT o.day, %3$s AS dimension, %4$s AS key, pg_catalog.count(*) AS n, pg_catalog.sum(o.amount) AS revenue,
           pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) AS gp, NULL::pg_catalog.int8 AS nb
      FROM o GROUP BY %5$s
    UNION ALL
    SELECT nb.day, %6$s, %7$s, NULL, NULL, NULL, pg_catalog.count(*)
      FROM nb GROUP BY %8$s)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, a.dimension, a.key, m.value
  FROM a CROSS JOIN LATERAL (VALUES ('orders'::pg_catalog.text, a.n::pg_catalog.numeric), ('revenue', a.revenue),
                                    ('gross_profit', a.gp), ('new_buyers', a.nb::pg_catalog.numeric)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, src_o, crm._source_sql('customers', 'c'), go[1], go[2], go[3], gn[1], gn[2], gn[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM crm._rollup_fast_orders(from_ts);
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION crm._rollup_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('x', 'manager');
BEGIN
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT x.day, 'real_contacts', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.occurred_at::pg_catalog.date AS day, src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT src.automated) AS x
 GROUP BY %4$s
$sql$, crm._source_sql('interactions'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM crm._rollup_fast_contacts(from_ts);
    RETURN n;
END
$$;

-- src/dashboard_fast_customers.sql
-- dashboard_fast_customers.sql: the customer figures of the reports from the
-- rollups (issue 21; docs/rollups.md, "Customers").
--
-- State per customer, kept by the rollup parts orders and contacts
-- (crm._rollup_orders, crm._rollup_contacts call crm._rollup_fast_orders /
-- crm._rollup_fast_contacts), from which every customer figure as of any
-- moment E is exact: narrow copies of the orders (customer, moment, amount,
-- cost), of the customers source (customer, created_at, channel, manager) and
-- of the real (non-automated) contacts with a customer (customer, moment),
-- plus per customer the first and last order with the gross profit of all
-- orders, and the last real contact.  A figure as of E reads the totals of the
-- customers whose last order / contact is before E as they are, and reads the
-- copies (by index) only for the customers with an order / contact at or
-- after E.  Derived data: not dumped, no grants to PUBLIC.

CREATE TABLE crm.rollup_order_lines (
    customer_id text,
    ordered_at  timestamptz NOT NULL,
    amount      numeric,
    cost        numeric
);
COMMENT ON TABLE crm.rollup_order_lines IS
'Rollup state (derived, not dumped): a narrow copy of the orders source (customer, moment, amount, cost; orders without a moment left out), by time and by customer.';
CREATE INDEX ON crm.rollup_order_lines (ordered_at);
CREATE INDEX ON crm.rollup_order_lines (customer_id, ordered_at);

CREATE TABLE crm.rollup_customer_orders (
    customer_id text,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    gp          numeric
);
COMMENT ON TABLE crm.rollup_customer_orders IS
'Rollup state per customer with orders (derived, not dumped; customer_id NULL = the orders without a customer): first and last order, gross profit (amount - cost) of all orders.';
CREATE INDEX ON crm.rollup_customer_orders (customer_id);
CREATE INDEX ON crm.rollup_customer_orders (last_at);

-- per end of the dashboard period (as of the refresh) and of the period before:
-- the class of every customer with revenue in the 12 months before it
CREATE TABLE crm.rollup_customer_classes (
    end_at      timestamptz NOT NULL,
    customer_id text,
    rev         numeric,
    cov_class   text NOT NULL,
    abc_class   text,
    since       timestamptz
);
COMMENT ON TABLE crm.rollup_customer_classes IS
'Rollup state (derived, not dumped): for the end of the dashboard period (crm.dashboard_period() as of the last refresh of the orders part) and for its start, per customer with orders in the 12 months before it (customer_id NULL = the orders without a customer): the revenue, the class by the thresholds of crm.dashboard_coverage and by crm.abc_class, and for class A by crm.abc_class the customer since (the earliest created_at of the customers copy, else the first order; NULL for the other classes).';
CREATE INDEX ON crm.rollup_customer_classes (end_at, customer_id);
CREATE TABLE crm.rollup_customer_class_ends (
    end_at timestamptz PRIMARY KEY
);
COMMENT ON TABLE crm.rollup_customer_class_ends IS
'Rollup state (derived, not dumped): the moments crm.rollup_customer_classes holds the classes for.';

CREATE TABLE crm.rollup_customer_info (
    customer_id text,
    created_at  timestamptz,
    channel     text,
    manager_id  text
);
COMMENT ON TABLE crm.rollup_customer_info IS
'Rollup state (derived, not dumped): a copy of the customers source (customer, created_at, channel, manager), every row as the source returns it.';
CREATE INDEX ON crm.rollup_customer_info (customer_id);
CREATE INDEX ON crm.rollup_customer_info (created_at);

CREATE TABLE crm.rollup_real_contacts (
    customer_id text NOT NULL,
    occurred_at timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_real_contacts IS
'Rollup state (derived, not dumped): the real (non-automated) interactions with a customer, narrow (customer, moment), by customer and by time.';
CREATE INDEX ON crm.rollup_real_contacts (customer_id, occurred_at);
CREATE INDEX ON crm.rollup_real_contacts (occurred_at);

CREATE TABLE crm.rollup_customer_contacts (
    customer_id text PRIMARY KEY,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_customer_contacts IS
'Rollup state per contacted customer (derived, not dumped): the first and the last real (non-automated) contact.';
CREATE INDEX ON crm.rollup_customer_contacts (last_at);

-- ---------------------------------------------------------------------------
-- Maintenance (called by the rollup parts)
-- ---------------------------------------------------------------------------

-- Part orders: the copies of the orders and customers sources from from_ts
-- on (every order row changed, before or after the change, is at or after
-- from_ts; so is every customers row changed, by its created_at, but rows
-- without a created_at are read again every time the customers changed), then the per-customer
-- totals of every customer with an order at or after from_ts before or after.
CREATE OR REPLACE FUNCTION crm._rollup_fast_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    m bigint;
    cust_ts timestamptz := from_ts;
    ids text[];
BEGIN
    -- during crm.refresh_rollups the changes it took are in pg_temp.crm_rollup_taken:
    -- the customers copy is read again only from the earliest change of a table the
    -- customers source reads (not at all when none changed)
    IF pg_catalog.isfinite(from_ts) AND pg_catalog.to_regclass('pg_temp.crm_rollup_taken') IS NOT NULL THEN
        SELECT pg_catalog.min(t.bound) INTO cust_ts FROM pg_temp.crm_rollup_taken t
         WHERE t.relid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.relid FROM crm.rollup_capture c WHERE c.kind OPERATOR(pg_catalog.=) 'customers'));
        IF cust_ts IS NOT NULL THEN
            cust_ts := greatest(cust_ts, from_ts);
        END IF;
    END IF;
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_order_lines, crm.rollup_customer_info;
    ELSE
        DELETE FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) from_ts;
        -- the customers whose rows are read again: their "since" in the kept classes is set again below
        WITH d AS (DELETE FROM crm.rollup_customer_info c WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL AND cust_ts IS NOT NULL
                   RETURNING c.customer_id)
        SELECT pg_catalog.array_agg(d.customer_id) INTO ids FROM d;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_order_lines (customer_id, ordered_at, amount, cost)
SELECT o.customer_id::pg_catalog.text, o.ordered_at, o.amount, o.cost FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1
$sql$, crm._source_sql('orders', 'o')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    m := 0;
    IF cust_ts IS NOT NULL THEN
        EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customer_info (customer_id, created_at, channel, manager_id)
SELECT c.customer_id::pg_catalog.text, c.created_at, c.channel::pg_catalog.text, c.manager_id::pg_catalog.text
  FROM %1$s WHERE c.created_at OPERATOR(pg_catalog.>=) $1 OR c.created_at IS NULL
        $sql$, crm._source_sql('customers', 'c')) USING cust_ts;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    n := n OPERATOR(pg_catalog.+) m OPERATOR(pg_catalog.+) crm._rollup_fast_order_totals(from_ts);
    IF cust_ts IS NOT NULL AND pg_catalog.isfinite(from_ts) THEN
        -- "since" of the class-A customers whose customers rows changed (the deleted and the
        -- inserted ones), at the kept ends; their first order (before the end) changes only
        -- with an order before the end, and then crm._rollup_fast_classes rebuilds the end
        ids := ids OPERATOR(pg_catalog.||) ARRAY(SELECT c.customer_id FROM crm.rollup_customer_info c
                                                   WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL);
        UPDATE crm.rollup_customer_classes k
           SET since = coalesce((SELECT pg_catalog.min(i.created_at) FROM crm.rollup_customer_info i
                                  WHERE i.customer_id OPERATOR(pg_catalog.=) k.customer_id),
                                (SELECT t.first_at FROM crm.rollup_customer_orders t
                                  WHERE t.customer_id OPERATOR(pg_catalog.=) k.customer_id))
         WHERE k.abc_class OPERATOR(pg_catalog.=) 'A' AND k.customer_id OPERATOR(pg_catalog.=) ANY (ids);
    END IF;
    RETURN n OPERATOR(pg_catalog.+) crm._rollup_fast_classes(from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_orders(timestamptz) IS
'Rollup state of the customer reports, part orders: the copies of the orders and customers sources (crm.rollup_order_lines, crm.rollup_customer_info), the per-customer order totals (crm.rollup_customer_orders) from the given moment on and the classes at the dashboard period''s ends (crm.rollup_customer_classes); rows written.';

CREATE FUNCTION crm._rollup_fast_order_totals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n    bigint;
    m    bigint := 0;
    ids  text[];
    nul  boolean;
BEGIN
    IF from_ts = '-infinity' THEN
        TRUNCATE crm.rollup_customer_orders;
        INSERT INTO crm.rollup_customer_orders (customer_id, first_at, last_at, gp)
        SELECT l.customer_id, min(l.ordered_at), max(l.ordered_at), sum(l.amount - l.cost)
          FROM crm.rollup_order_lines l GROUP BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    -- the customers with an order at or after from_ts, before or after the change
    ids := ARRAY(SELECT t.customer_id FROM crm.rollup_customer_orders t WHERE t.last_at >= from_ts AND t.customer_id IS NOT NULL
                 UNION
                 SELECT l.customer_id FROM crm.rollup_order_lines l WHERE l.ordered_at >= from_ts AND l.customer_id IS NOT NULL);
    nul := EXISTS (SELECT 1 FROM crm.rollup_customer_orders t WHERE t.last_at >= from_ts AND t.customer_id IS NULL)
        OR EXISTS (SELECT 1 FROM crm.rollup_order_lines l WHERE l.ordered_at >= from_ts AND l.customer_id IS NULL);
    DELETE FROM crm.rollup_customer_orders t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    INSERT INTO crm.rollup_customer_orders (customer_id, first_at, last_at, gp)
    SELECT l.customer_id, min(l.ordered_at), max(l.ordered_at), sum(l.amount - l.cost)
      FROM unnest(ids) AS u(id) JOIN crm.rollup_order_lines l ON l.customer_id = u.id GROUP BY 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF nul THEN
        DELETE FROM crm.rollup_customer_orders t WHERE t.customer_id IS NULL;
        INSERT INTO crm.rollup_customer_orders (customer_id, first_at, last_at, gp)
        SELECT NULL, min(l.ordered_at), max(l.ordered_at), sum(l.amount - l.cost)
          FROM crm.rollup_order_lines l WHERE l.customer_id IS NULL HAVING count(*) > 0;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_order_totals(timestamptz) IS
'Recomputes crm.rollup_customer_orders (first and last order, gross profit per customer) for every customer with an order at or after the given moment, before or after the change (everything for -infinity), from crm.rollup_order_lines; rows written.';

-- The classes at the ends of the dashboard period (crm.dashboard_period() of
-- the refreshing session, the days cut in the rollups' time zone): rebuilt for
-- an end when an order before it may have changed (from_ts before it) or when
-- the period moved; a report as of another moment computes them live.
CREATE OR REPLACE FUNCTION crm._rollup_fast_classes(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p    record;
    ends timestamptz[];
    e    timestamptz;
    n    bigint;
    nn   bigint := 0;
BEGIN
    BEGIN
        SELECT * INTO p FROM crm.dashboard_period();
        -- only ends already past: the end of a running period (this month) would
        -- be rebuilt by every refresh after new orders; its classes are computed
        -- when read
        ends := ARRAY(SELECT x FROM unnest(ARRAY[(p.period_to + 1)::timestamptz, p.period_from::timestamptz]) AS x
                       WHERE x <= now());
    EXCEPTION WHEN OTHERS THEN
        ends := '{}';   -- a bad period setting: no classes kept, the reports compute them
    END;
    FOR e IN SELECT x.end_at FROM crm.rollup_customer_class_ends x WHERE x.end_at <> ALL (ends) LOOP
        DELETE FROM crm.rollup_customer_classes c WHERE c.end_at = e;
        DELETE FROM crm.rollup_customer_class_ends x WHERE x.end_at = e;
    END LOOP;
    FOREACH e IN ARRAY ends LOOP
        IF from_ts < e OR NOT EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = e) THEN
            DELETE FROM crm.rollup_customer_classes c WHERE c.end_at = e;
            INSERT INTO crm.rollup_customer_class_ends (end_at) VALUES (e) ON CONFLICT DO NOTHING;
            -- class A: the customer since as the owner dashboard's overdue rule reads it
            -- (the earliest created_at of the customers copy, else the first order)
            INSERT INTO crm.rollup_customer_classes (end_at, customer_id, rev, cov_class, abc_class, since)
            SELECT e, k.customer_id, k.rev, k.cls, k.abc,
                   CASE WHEN k.abc = 'A' THEN coalesce(ci.created_at, t.first_at,
                        CASE WHEN k.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL) END) END
              FROM crm._fast_classes_live(e) k
              LEFT JOIN (SELECT i.customer_id, min(i.created_at) AS created_at FROM crm.rollup_customer_info i GROUP BY 1) ci
                     ON ci.customer_id = k.customer_id AND k.abc = 'A'
              LEFT JOIN crm.rollup_customer_orders t ON t.customer_id = k.customer_id AND k.abc = 'A';
            GET DIAGNOSTICS n = ROW_COUNT;
            nn := nn + n;
        END IF;
    END LOOP;
    RETURN nn;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_classes(timestamptz) IS
'Keeps crm.rollup_customer_classes for the end and the start of the dashboard period: rebuilt for an end when the orders changed before it (the given moment is before it) or the period moved; rows written.';

-- Part contacts: the copy of the real contacts from from_ts on, then the last
-- real contact of every customer with one at or after from_ts before or after.
CREATE FUNCTION crm._rollup_fast_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_real_contacts;
    ELSE
        DELETE FROM crm.rollup_real_contacts x WHERE x.occurred_at OPERATOR(pg_catalog.>=) from_ts;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_real_contacts (customer_id, occurred_at)
SELECT x.customer_id::pg_catalog.text, x.occurred_at FROM %1$s
 WHERE x.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT x.automated AND x.customer_id IS NOT NULL
$sql$, crm._source_sql('interactions', 'x')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n OPERATOR(pg_catalog.+) crm._rollup_fast_contact_totals(from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_contacts(timestamptz) IS
'Rollup state of the customer reports, part contacts: the copy of the real contacts (crm.rollup_real_contacts) and the last real contact per customer (crm.rollup_customer_contacts) from the given moment on; rows written.';

CREATE FUNCTION crm._rollup_fast_contact_totals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n   bigint;
    ids text[];
BEGIN
    IF from_ts = '-infinity' THEN
        TRUNCATE crm.rollup_customer_contacts;
        INSERT INTO crm.rollup_customer_contacts (customer_id, first_at, last_at)
        SELECT x.customer_id, min(x.occurred_at), max(x.occurred_at) FROM crm.rollup_real_contacts x GROUP BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    ids := ARRAY(SELECT t.customer_id FROM crm.rollup_customer_contacts t WHERE t.last_at >= from_ts
                 UNION
                 SELECT x.customer_id FROM crm.rollup_real_contacts x WHERE x.occurred_at >= from_ts);
    DELETE FROM crm.rollup_customer_contacts t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    INSERT INTO crm.rollup_customer_contacts (customer_id, first_at, last_at)
    SELECT x.customer_id, min(x.occurred_at), max(x.occurred_at)
      FROM unnest(ids) AS u(id) JOIN crm.rollup_real_contacts x ON x.customer_id = u.id GROUP BY 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_contact_totals(timestamptz) IS
'Recomputes crm.rollup_customer_contacts (first and last real contact per customer) for every customer with a real contact at or after the given moment, before or after the change (everything for -infinity), from crm.rollup_real_contacts; rows written.';

-- ---------------------------------------------------------------------------
-- Reading: figures as of a moment
-- ---------------------------------------------------------------------------

-- Per customer with orders in the 12 months before a moment (NULL = the
-- orders without a customer): the revenue, the class by crm.dashboard_coverage's
-- thresholds (crm.abc_class semantics over the positive revenues) and by
-- crm.abc_class itself (as crm.owner_dashboard), computed from the order lines.
CREATE FUNCTION crm._fast_classes_live(end_at timestamptz)
RETURNS TABLE (customer_id text, rev numeric, cls text, abc text)
LANGUAGE sql STABLE
ROWS 100000   -- per customer: the planner hashes it
SET search_path = pg_catalog, pg_temp
AS $$
WITH
r AS (SELECT l.customer_id, sum(l.amount) AS rev FROM crm.rollup_order_lines l
       WHERE l.ordered_at >= (end_at - '12 months'::interval) AND l.ordered_at < end_at GROUP BY l.customer_id),
rs AS (SELECT rev, sum(rev) OVER (ORDER BY rev DESC ROWS UNBOUNDED PRECEDING) - rev AS before, sum(rev) OVER () AS total
         FROM r WHERE rev > 0),
th AS MATERIALIZED (SELECT min(rev) FILTER (WHERE before < (0.80 * total)) AS a, min(rev) FILTER (WHERE before < (0.95 * total)) AS b
         FROM rs)
SELECT r.customer_id, r.rev, CASE WHEN r.rev >= th.a THEN 'A' WHEN r.rev >= th.b THEN 'B' ELSE 'C' END,
       crm.abc_class(r.rev::float8) OVER ()
  FROM r CROSS JOIN th
$$;
COMMENT ON FUNCTION crm._fast_classes_live(timestamptz) IS
'From the order lines: per customer with orders in the 12 months before the moment, the revenue, the class by crm.dashboard_coverage''s thresholds and by crm.abc_class.';

-- crm.dashboard_coverage from the rollups: the same rows, the same query
-- shape over the copies.
CREATE OR REPLACE FUNCTION crm._fast_coverage(as_of timestamptz)
RETURNS TABLE (customer_id text, manager_id text, channel text, revenue_12m numeric, abc_class text,
               last_contact timestamptz, next_due timestamptz, covered boolean)
LANGUAGE sql STABLE
ROWS 100000   -- per customer: the planner hashes it
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
SET enable_nestloop = off
AS $$
WITH
c AS (SELECT i.customer_id, i.manager_id, i.channel, i.created_at FROM crm.rollup_customer_info i WHERE i.created_at < as_of),
-- the classes: kept for the ends of the dashboard period (read here as a
-- table, joined by hash), else computed from the order lines
k AS (
    SELECT k.customer_id, k.rev, k.cov_class AS cls FROM crm.rollup_customer_classes k
     WHERE k.end_at = as_of AND k.customer_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = as_of)
    UNION ALL
    SELECT k.customer_id, k.rev, k.cls FROM crm._fast_classes_live(as_of) k
     WHERE k.customer_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = as_of)),
cl AS (
    SELECT c.customer_id, c.manager_id, c.channel, c.created_at, k.rev, coalesce(k.cls, 'C') AS cls
      FROM c LEFT JOIN k ON k.customer_id = c.customer_id),
pol AS MATERIALIZED (SELECT k.cls, crm._dashboard_coverage_interval(k.cls) AS iv FROM (VALUES ('A'), ('B'), ('C')) AS k(cls))
SELECT cl.customer_id, cl.manager_id, cl.channel, coalesce(cl.rev, 0), cl.cls,
       x.last_at, coalesce(x.last_at, cl.created_at) + pol.iv,
       coalesce((coalesce(x.last_at, cl.created_at) + pol.iv) >= as_of, false)
  FROM cl JOIN pol ON pol.cls = cl.cls
  -- the last real contact before as_of: the state
  -- when the last contact is before, the copy by index for the others
  LEFT JOIN crm.rollup_customer_contacts s ON s.customer_id = cl.customer_id,
  LATERAL (SELECT CASE WHEN s.last_at < as_of THEN s.last_at
                       WHEN s.first_at < as_of THEN (SELECT max(r.occurred_at) FROM crm.rollup_real_contacts r
                                                      WHERE r.customer_id = s.customer_id AND r.occurred_at < as_of) END AS last_at) AS x
$$;
COMMENT ON FUNCTION crm._fast_coverage(timestamptz) IS
'crm.dashboard_coverage(as_of) computed from the rollups (crm.rollup_customer_info, crm.rollup_customer_classes or crm.rollup_order_lines, crm.rollup_customer_contacts, crm.rollup_real_contacts): the same rows.';

-- Per customer with an order before period_to, for [period_from, period_to):
-- first order, revenue and gross profit in the period, gross profit to date
-- (orders before period_to).  Customers whose last order is before the end
-- take their totals; the others are summed from the copy by index.
CREATE FUNCTION crm._fast_customer_orders(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (customer_id text, first_at timestamptz, rev numeric, gp numeric, gp_to_date numeric)
LANGUAGE sql STABLE
ROWS 100000   -- per customer: the planner hashes it
SET search_path = pg_catalog, pg_temp
AS $$
WITH p AS (
    SELECT l.customer_id, sum(l.amount) AS rev, sum(l.amount - l.cost) AS gp
      FROM crm.rollup_order_lines l WHERE l.ordered_at >= period_from AND l.ordered_at < period_to GROUP BY 1)
SELECT t.customer_id, t.first_at, p.rev, p.gp,
       CASE WHEN t.last_at < period_to THEN t.gp
            ELSE (SELECT sum(l.amount - l.cost) FROM crm.rollup_order_lines l
                   WHERE l.customer_id = t.customer_id AND l.ordered_at < period_to) END
  FROM crm.rollup_customer_orders t LEFT JOIN p ON p.customer_id = t.customer_id
 WHERE t.first_at < period_to AND t.customer_id IS NOT NULL
UNION ALL
-- the orders without a customer: one group, as in the full query
SELECT NULL, t.first_at, p.rev, p.gp,
       CASE WHEN t.last_at < period_to THEN t.gp
            ELSE (SELECT sum(l.amount - l.cost) FROM crm.rollup_order_lines l
                   WHERE l.customer_id IS NULL AND l.ordered_at < period_to) END
  FROM crm.rollup_customer_orders t LEFT JOIN p ON p.customer_id IS NULL
 WHERE t.first_at < period_to AND t.customer_id IS NULL
$$;
COMMENT ON FUNCTION crm._fast_customer_orders(timestamptz, timestamptz) IS
'From the rollups: per customer with an order before the end (customer_id NULL = the orders without a customer), the first order, revenue and gross profit in [from, to), gross profit of the orders before the end.';

-- crm.dashboard_channels from the rollups: the buyers' figures from the
-- state, leads and spend of the period from their sources (as the full query).
CREATE FUNCTION crm._fast_channels(period_from date, period_to date)
RETURNS TABLE (channel text, leads bigint, new_buyers bigint, conversion_pct numeric, revenue numeric,
               gross_profit numeric, spend numeric, cac numeric, roi_pct numeric, ltv numeric, ltv_cac numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    -- the sources the state comes from checked as the full path does (same errors)
    PERFORM crm._source_sql('customers'), crm._source_sql('orders');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
cu AS MATERIALIZED (SELECT i.customer_id, i.channel FROM crm.rollup_customer_info i),
b AS MATERIALIZED (SELECT f.customer_id, f.first_at, f.gp_to_date, f.rev, f.gp FROM crm._fast_customer_orders($1, $2) f),
bc AS (
    SELECT coalesce(cu.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit,
           pg_catalog.avg(b.gp_to_date) AS ltv
      FROM b LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) b.customer_id GROUP BY 1),
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.<) $2) AS converted
      FROM %1$s LEFT JOIN b ON b.customer_id OPERATOR(pg_catalog.=) l.customer_id::pg_catalog.text
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %2$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
ch AS (SELECT channel FROM bc UNION SELECT channel FROM ld UNION SELECT channel FROM sp)
SELECT ch.channel, coalesce(ld.leads, 0), coalesce(bc.new_buyers, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) ld.converted) OPERATOR(pg_catalog./) CASE WHEN ld.leads OPERATOR(pg_catalog.<>) 0 THEN ld.leads END, 2),
       coalesce(bc.revenue, 0), coalesce(bc.gross_profit, 0), coalesce(sp.spend, 0),
       pg_catalog.round(sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(bc.gross_profit, 0) OPERATOR(pg_catalog.-) sp.spend)) OPERATOR(pg_catalog./) CASE WHEN sp.spend OPERATOR(pg_catalog.<>) 0 THEN sp.spend END, 2),
       pg_catalog.round(bc.ltv, 2),
       pg_catalog.round(bc.ltv OPERATOR(pg_catalog./) CASE WHEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) OPERATOR(pg_catalog.<>) 0 THEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) END, 2)
  FROM ch LEFT JOIN bc ON bc.channel OPERATOR(pg_catalog.=) ch.channel LEFT JOIN ld ON ld.channel OPERATOR(pg_catalog.=) ch.channel
          LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) ch.channel
 ORDER BY ch.channel
$sql$, crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm._fast_channels(date, date) IS
'crm.dashboard_channels(from, to) with the buyers'' figures (new buyers, revenue, gross profit, LTV, conversion) from the rollups (crm.rollup_customer_orders, crm.rollup_order_lines, crm.rollup_customer_info) and leads and spend of the period from their sources: the same rows.';

-- The owner dashboard's customer rows (buyers, repeat_purchase_rate,
-- churned_customers, churn_rate, churned_revenue, overdue_class_a_customers)
-- from the rollups, exactly as crm._owner_dashboard_sql computes them, for the
-- current period [cur_from, cur_to) and the previous one [prev_from, cur_from).
CREATE OR REPLACE FUNCTION crm._fast_owner_customers(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
WITH
-- the period before the previous one (same length: dates, as the full query)
pp AS MATERIALIZED (SELECT (prev_from::date - (cur_from::date - prev_from::date))::timestamptz AS p2_from,
                           crm._dashboard_coverage_interval('A') AS a_int),
-- per customer: orders of the three periods
po AS (
    SELECT l.customer_id,
           count(*) FILTER (WHERE l.ordered_at >= cur_from) AS n_cur,
           count(*) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS n_prev,
           count(*) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS n_prev2,
           sum(l.amount) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS rev_prev,
           sum(l.amount) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS rev_prev2
      FROM crm.rollup_order_lines l, pp
     WHERE l.ordered_at >= least(pp.p2_from, prev_from) AND l.ordered_at < cur_to
     GROUP BY 1),
-- the buyers of the three periods (every customer of the full query's cu
-- without an order in them counts in none of the figures below)
cf AS (
    SELECT po.*, po.n_cur > 0 AS in_cur, po.n_prev > 0 AS in_prev, po.n_prev2 > 0 AS in_prev2,
           -- orders up to the end >= 2: two in the period, or one and an earlier (first) one
           po.n_cur >= 2 OR (po.n_cur > 0 AND f.first_at < cur_from) AS rep_cur,
           po.n_prev >= 2 OR (po.n_prev > 0 AND f.first_at < prev_from) AS rep_prev
      FROM po LEFT JOIN crm.rollup_customer_orders t ON t.customer_id = po.customer_id,
           -- the orders without a customer: their group's first order
           LATERAL (SELECT coalesce(t.first_at, (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)) AS first_at) AS f),
cm AS (
    SELECT count(*) FILTER (WHERE in_cur) AS c_active, count(*) FILTER (WHERE rep_cur) AS c_repeat,
           count(*) FILTER (WHERE in_prev) AS p_active, count(*) FILTER (WHERE rep_prev) AS p_repeat,
           count(*) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned,
           count(*) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned,
           count(*) FILTER (WHERE in_prev2) AS p2_active,
           sum(rev_prev) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned_rev,
           sum(rev_prev2) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned_rev
      FROM cf),
-- class A by crm.abc_class over the revenue of the 12 months before each end
-- (customers without revenue there are NULL to it: no class, no effect on the
-- others); overdue as the full query judges it: the last real contact before
-- the end, or (never contacted) customer since (the customers source's
-- created_at, else the first order), before the end minus the class-A
-- interval; that is: contacted before the end and not within the interval,
-- or never contacted and customer since before end minus the interval
-- (the classes kept for the ends of the dashboard period read as a table,
-- computed from the order lines for other ends)
e AS (SELECT e.is_cur, e.end_at, EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = e.end_at) AS kept
        FROM (VALUES (true, cur_to), (false, cur_from)) AS e(is_cur, end_at)),
ae AS (
    SELECT e.is_cur, e.end_at, k.customer_id, true AS kept, k.since
      FROM e JOIN crm.rollup_customer_classes k ON k.end_at = e.end_at
     WHERE e.kept AND k.abc_class = 'A'
    UNION ALL
    SELECT e.is_cur, e.end_at, k.customer_id, false, NULL
      FROM e, LATERAL crm._fast_classes_live(e.end_at) AS k
     WHERE NOT e.kept AND k.abc = 'A'),
am AS (
    SELECT count(*) FILTER (WHERE ae.is_cur AND o.overdue) AS c_a_overdue,
           count(*) FILTER (WHERE NOT ae.is_cur AND o.overdue) AS p_a_overdue
      FROM ae CROSS JOIN pp
      LEFT JOIN crm.rollup_customer_contacts s ON s.customer_id = ae.customer_id,
      LATERAL (SELECT CASE
          WHEN s.first_at < ae.end_at THEN
              NOT CASE WHEN s.last_at < ae.end_at THEN s.last_at >= (ae.end_at - pp.a_int)
                       ELSE EXISTS (SELECT 1 FROM crm.rollup_real_contacts x
                                     WHERE x.customer_id = ae.customer_id AND x.occurred_at >= (ae.end_at - pp.a_int)
                                       AND x.occurred_at < ae.end_at) END
          -- customer since: kept with the classes, else from the copies
          WHEN ae.kept THEN ae.since < (ae.end_at - pp.a_int)
          ELSE coalesce((SELECT min(i.created_at) FROM crm.rollup_customer_info i WHERE i.customer_id = ae.customer_id),
                        CASE WHEN ae.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)
                             ELSE (SELECT t1.first_at FROM crm.rollup_customer_orders t1 WHERE t1.customer_id = ae.customer_id) END)
               < (ae.end_at - pp.a_int) END AS overdue) AS o)
SELECT v.metric, v.cur, v.prev
  FROM cm, am, LATERAL (VALUES
    ('buyers', c_active::numeric, p_active::numeric),
    ('repeat_purchase_rate', round((100.0 * c_repeat) / CASE WHEN c_active <> 0 THEN c_active END, 2),
                             round((100.0 * p_repeat) / CASE WHEN p_active <> 0 THEN p_active END, 2)),
    ('churned_customers', c_churned::numeric, p_churned::numeric),
    ('churn_rate', round((100.0 * c_churned) / CASE WHEN p_active <> 0 THEN p_active END, 2),
                   round((100.0 * p_churned) / CASE WHEN p2_active <> 0 THEN p2_active END, 2)),
    ('churned_revenue', coalesce(c_churned_rev, 0), coalesce(p_churned_rev, 0)),
    ('overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric)) AS v(metric, cur, prev)
$$;
COMMENT ON FUNCTION crm._fast_owner_customers(timestamptz, timestamptz, timestamptz) IS
'From the rollups: the owner dashboard''s rows buyers, repeat_purchase_rate, churned_customers, churn_rate, churned_revenue and overdue_class_a_customers for the current period [cur_from, cur_to) and the previous one [prev_from, cur_from), exactly as crm.owner_dashboard computes them.';

-- crm.dashboard_managers' revenue of the manager's customers in the period
-- (rv) and contact coverage at its end (cv), from the rollups: one row per
-- manager in either (revenue NULL: no order; customers / covered NULL: no customer).
CREATE OR REPLACE FUNCTION crm._fast_managers_customers(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, revenue numeric, customers bigint, covered bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
SET enable_nestloop = off
AS $$
WITH
-- crm._fast_coverage(period_to) counted per manager, without handing its rows over
cls AS (
    SELECT k.customer_id, k.cov_class AS cls FROM crm.rollup_customer_classes k
     WHERE k.end_at = period_to AND k.customer_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = period_to)
    UNION ALL
    SELECT k.customer_id, k.cls FROM crm._fast_classes_live(period_to) k
     WHERE k.customer_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = period_to)),
pol AS MATERIALIZED (SELECT k.cls, crm._dashboard_coverage_interval(k.cls) AS iv FROM (VALUES ('A'), ('B'), ('C')) AS k(cls)),
cv AS (
    SELECT c.manager_id, count(*) AS customers,
           count(*) FILTER (WHERE coalesce((coalesce(x.last_at, c.created_at) + pol.iv) >= period_to, false)) AS covered
      FROM crm.rollup_customer_info c
      LEFT JOIN cls ON cls.customer_id = c.customer_id
      JOIN pol ON pol.cls = coalesce(cls.cls, 'C')
      LEFT JOIN crm.rollup_customer_contacts s ON s.customer_id = c.customer_id,
      LATERAL (SELECT CASE WHEN s.last_at < period_to THEN s.last_at
                           WHEN s.first_at < period_to THEN (SELECT max(r.occurred_at) FROM crm.rollup_real_contacts r
                                                              WHERE r.customer_id = s.customer_id AND r.occurred_at < period_to) END AS last_at) AS x
     WHERE c.created_at < period_to
     GROUP BY 1),
-- the period's revenue per customer first, then by the manager of each customers row
po AS (
    SELECT o.customer_id, sum(o.amount) AS revenue
      FROM crm.rollup_order_lines o WHERE o.ordered_at >= period_from AND o.ordered_at < period_to GROUP BY 1),
rv AS (
    SELECT cu.manager_id, sum(po.revenue) AS revenue
      FROM po LEFT JOIN crm.rollup_customer_info cu ON cu.customer_id = po.customer_id GROUP BY 1),
m AS (SELECT rv.manager_id FROM rv UNION SELECT cv.manager_id FROM cv)
SELECT m.manager_id, rv.revenue, cv.customers, cv.covered
  FROM m LEFT JOIN rv ON coalesce(texteq(rv.manager_id, m.manager_id), rv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN cv ON coalesce(texteq(cv.manager_id, m.manager_id), cv.manager_id IS NULL AND m.manager_id IS NULL)
 ORDER BY 1
$$;
COMMENT ON FUNCTION crm._fast_managers_customers(timestamptz, timestamptz) IS
'From the rollups: per manager, the revenue of the manager''s customers in [from, to) and the number of customers and covered customers at the end (crm.dashboard_managers'' rv and cv): one row per manager with either (revenue NULL = no order in the period; customers and covered NULL = no customer).';
-- the new state is empty: the next refresh rebuilds in full
UPDATE crm.rollup_status SET needs_full = true;
-- ==== end of section fast_customers ====
-- ==== section fast_leads ====
-- (src/dashboard_fast_leads.sql, whole)
-- dashboard_fast_leads.sql: per-entity rollup state for leads (first
-- response), the channel-month cost of a lead, invoices and real contacts per
-- day, manager and kind, and the building blocks the owner dashboard and the
-- manager report answer from when the rollups are usable (docs/rollups.md,
-- "Leads, invoices, contacts").  The state is derived data: not dumped,
-- rebuilt by crm.refresh_rollups (parts leads, invoices, contacts).

-- per lead (rows of the leads source with a created_at): its first response,
-- the first real (non-automated) outbound interaction at or after its creation
CREATE TABLE crm.rollup_leads (
    lead_id        text,
    created_at     timestamptz NOT NULL,
    month          timestamptz NOT NULL,
    channel        text,
    manager_id     text,
    customer_id    text,
    first_response timestamptz,
    response_min   numeric
);
COMMENT ON TABLE crm.rollup_leads IS
'Rollup state per lead (derived, not dumped): creation (and its calendar month in the rollups'' time zone), channel, manager, customer and first response (the first real outbound interaction at or after the creation, NULL = none yet) with the minutes to it, from which unanswered leads, conversion and response times as of any moment follow.';
CREATE INDEX ON crm.rollup_leads (created_at);
CREATE INDEX ON crm.rollup_leads (first_response);
CREATE INDEX ON crm.rollup_leads (lead_id);

-- the channel-month cost of a lead (crm._lead_cost_sql: spend of the channel
-- in the month / leads of the channel created in that month), from its two
-- halves, each kept by the part that reads it
CREATE TABLE crm.rollup_lead_months (
    channel text NOT NULL,
    month   timestamptz NOT NULL,
    leads   bigint NOT NULL,
    PRIMARY KEY (channel, month)
);
COMMENT ON TABLE crm.rollup_lead_months IS
'Rollup state (derived, not dumped): leads per channel and calendar month of their creation (leads without a channel left out), the divisor of the cost of a lead (crm._lead_cost_sql).';

CREATE TABLE crm.rollup_spend_months (
    channel text NOT NULL,
    month   timestamptz NOT NULL,
    amount  numeric,
    PRIMARY KEY (channel, month)
);
COMMENT ON TABLE crm.rollup_spend_months IS
'Rollup state (derived, not dumped): marketing spend per channel and calendar month (spend without a channel left out), the dividend of the cost of a lead (crm._lead_cost_sql).';

-- per invoice of the invoices source: the four figures the unpaid and overdue
-- counts as of any moment need
CREATE TABLE crm.rollup_invoices (
    invoice_id  text,
    customer_id text,
    issued_at timestamptz,
    due_at    timestamptz,
    amount    numeric,
    paid_at   timestamptz,
    low_at    timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_invoices IS
'Rollup state per invoice (derived, not dumped): invoice and customer ids (for crm.todo), issue, due and payment moments and amount, from which the unpaid and overdue invoices as of any moment follow; low_at is the earliest of the three moments (what a refresh from a moment on replaces).';
CREATE INDEX ON crm.rollup_invoices (low_at);

-- real contacts (non-automated interactions, either direction) per day and
-- manager of the interaction, by kind as crm.dashboard_managers classifies it
CREATE TABLE crm.rollup_contact_days (
    day        date NOT NULL,
    manager_id text,
    calls      bigint NOT NULL,
    meetings   bigint NOT NULL,
    emails     bigint NOT NULL,
    contacts   bigint NOT NULL
);
COMMENT ON TABLE crm.rollup_contact_days IS
'Rollup state (derived, not dumped): real contacts (non-automated interactions) per day and manager (NULL = none), as calls, meetings, e-mails (kind e-mail or email) and all kinds.';
CREATE INDEX ON crm.rollup_contact_days (day);

-- ---------------------------------------------------------------------------
-- Maintenance (hooked into the rollup parts)
-- ---------------------------------------------------------------------------

-- Part leads: the leads created at or after from_ts are replaced, with their
-- first response from the interactions as they are (a lead's first response
-- is at or after its creation); a changed lead has its creation at or after
-- from_ts.  Then the leads per channel-month from the month of from_ts on.
-- (The leads part runs without the interactions source too: no responses.)
CREATE FUNCTION crm._rollup_lead_state(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    m bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_leads, crm.rollup_lead_months;
    ELSE
        DELETE FROM crm.rollup_leads l WHERE l.created_at OPERATOR(pg_catalog.>=) from_ts;
        DELETE FROM crm.rollup_lead_months c WHERE c.month OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts);
    END IF;
    -- without an interactions source (a partial registration) no lead has a response
    EXECUTE pg_catalog.format($sql$
WITH l AS MATERIALIZED (
    SELECT pg_catalog.row_number() OVER () AS rn, src.lead_id::pg_catalog.text AS lead_id, src.created_at,
           src.channel::pg_catalog.text AS channel, src.manager_id::pg_catalog.text AS manager_id,
           src.customer_id::pg_catalog.text AS customer_id
      FROM %2$s WHERE src.created_at OPERATOR(pg_catalog.>=) $1),
x AS (
    SELECT ix.lead_id::pg_catalog.text AS lead_id, ix.occurred_at
      FROM %1$s
     WHERE ix.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.lead_id IS NOT NULL),
f AS (
    SELECT l.rn, pg_catalog.min(x.occurred_at) AS fr
      FROM l JOIN x ON x.lead_id OPERATOR(pg_catalog.=) l.lead_id AND x.occurred_at OPERATOR(pg_catalog.>=) l.created_at
     GROUP BY l.rn)
INSERT INTO crm.rollup_leads (lead_id, created_at, month, channel, manager_id, customer_id, first_response, response_min)
SELECT l.lead_id, l.created_at, pg_catalog.date_trunc('month', l.created_at), l.channel, l.manager_id, l.customer_id, f.fr,
       EXTRACT(epoch FROM f.fr OPERATOR(pg_catalog.-) l.created_at) OPERATOR(pg_catalog./) 60
  FROM l LEFT JOIN f ON f.rn OPERATOR(pg_catalog.=) l.rn
$sql$, CASE WHEN EXISTS (SELECT 1 FROM crm.sources s WHERE s.kind OPERATOR(pg_catalog.=) 'interactions')
            THEN crm._source_sql('interactions', 'ix')
            ELSE '(SELECT NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.bool, NULL::pg_catalog.text LIMIT 0) AS ix(lead_id, occurred_at, automated, direction)' END,
       crm._source_sql('leads')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the months from the month of from_ts on, from the state (every lead with a creation is in it)
    INSERT INTO crm.rollup_lead_months (channel, month, leads)
    SELECT l.channel, l.month, pg_catalog.count(*)
      FROM crm.rollup_leads l
     WHERE l.created_at OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts) AND l.channel IS NOT NULL
     GROUP BY 1, 2;
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n OPERATOR(pg_catalog.+) m;
END
$$;
COMMENT ON FUNCTION crm._rollup_lead_state(timestamptz) IS
'Rollup part leads, state: replaces the leads created from the given moment on in crm.rollup_leads (with their first responses) and the leads per channel-month (crm.rollup_lead_months) from its month on; returns the rows written.';

-- Part spend: spend per channel-month from the month of from_ts on.
CREATE FUNCTION crm._rollup_spend_months(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM crm.rollup_spend_months s WHERE s.month OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts);
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_spend_months (channel, month, amount)
SELECT channel, pg_catalog.date_trunc('month', spent_on), pg_catalog.sum(amount)
  FROM %1$s
 WHERE spent_on OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $1) AND channel IS NOT NULL
 GROUP BY 1, 2
$sql$, crm._source_sql('spend')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_spend_months(timestamptz) IS
'Rollup part spend, state: rewrites the spend per channel-month (crm.rollup_spend_months) from the month of the given moment on; returns the rows written.';

-- Part invoices: the invoices with any of their moments at or after from_ts
-- are replaced (a changed invoice has all its moments at or after it).
CREATE OR REPLACE FUNCTION crm._rollup_invoice_state(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_invoices;
    ELSE
        DELETE FROM crm.rollup_invoices i WHERE i.low_at OPERATOR(pg_catalog.>=) from_ts;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_invoices (invoice_id, customer_id, issued_at, due_at, amount, paid_at, low_at)
SELECT i.invoice_id::pg_catalog.text, i.customer_id::pg_catalog.text, i.issued_at, i.due_at, i.amount, i.paid_at,
       least(i.issued_at, i.due_at, i.paid_at)
  FROM %1$s WHERE least(i.issued_at, i.due_at, i.paid_at) OPERATOR(pg_catalog.>=) $1
$sql$, crm._source_sql('invoices', 'i')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_invoice_state(timestamptz) IS
'Rollup part invoices, state: replaces in crm.rollup_invoices the invoices with an issue, due or payment moment at or after the given moment; returns the rows written.';

-- Part contacts: real contacts per day, manager and kind, for the days from
-- the day of from_ts on; and the first responses of the leads in
-- crm.rollup_leads: a lead answered before from_ts keeps its answer (the
-- interactions before from_ts did not change), the others get it again from
-- the interactions at or after from_ts.  (The contacts part runs before the
-- leads part; the leads part then replaces the leads that changed.)
CREATE FUNCTION crm._rollup_contact_days(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n  bigint;
    m  bigint := 0;
    d0 timestamptz := CASE WHEN pg_catalog.isfinite(from_ts) THEN from_ts::pg_catalog.date::pg_catalog.timestamptz ELSE from_ts END;
BEGIN
    IF NOT pg_catalog.isfinite(from_ts) THEN
        TRUNCATE crm.rollup_contact_days;
    ELSE
        DELETE FROM crm.rollup_contact_days c WHERE c.day OPERATOR(pg_catalog.>=) d0::pg_catalog.date;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_contact_days (day, manager_id, calls, meetings, emails, contacts)
SELECT y.occurred_at::pg_catalog.date, y.manager_id::pg_catalog.text,
       pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'call'),
       pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'meeting'),
       pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) ANY (ARRAY['email', 'e-mail']::pg_catalog.text[])),
       pg_catalog.count(*)
  FROM %1$s
 WHERE NOT y.automated AND y.occurred_at OPERATOR(pg_catalog.>=) $1
 GROUP BY 1, 2
$sql$, crm._source_sql('interactions', 'y')) USING d0;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- a full rebuild (crm._rollup_begin emptied crm.rollup_daily; the leads part
    -- follows and rebuilds every lead with its first response): drop the leads now
    -- rather than recompute them twice
    IF NOT pg_catalog.isfinite(from_ts)
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_daily r WHERE r.metric OPERATOR(pg_catalog.=) 'leads_in') THEN
        TRUNCATE crm.rollup_leads;
    ELSIF EXISTS (SELECT 1 FROM crm.rollup_leads) THEN
        UPDATE crm.rollup_leads l SET first_response = NULL, response_min = NULL WHERE l.first_response OPERATOR(pg_catalog.>=) from_ts;
        EXECUTE pg_catalog.format($sql$
WITH x AS MATERIALIZED (
    SELECT ix.lead_id::pg_catalog.text AS lead_id, ix.occurred_at
      FROM %1$s
     WHERE ix.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.lead_id IS NOT NULL),
f AS (
    SELECT o.lead_id, o.created_at, pg_catalog.min(x.occurred_at) AS fr
      FROM x JOIN crm.rollup_leads o ON o.lead_id OPERATOR(pg_catalog.=) x.lead_id AND x.occurred_at OPERATOR(pg_catalog.>=) o.created_at
     WHERE o.first_response IS NULL
     GROUP BY o.lead_id, o.created_at)
UPDATE crm.rollup_leads u SET first_response = f.fr,
       response_min = EXTRACT(epoch FROM f.fr OPERATOR(pg_catalog.-) u.created_at) OPERATOR(pg_catalog./) 60
  FROM f
 WHERE u.lead_id OPERATOR(pg_catalog.=) f.lead_id AND u.created_at OPERATOR(pg_catalog.=) f.created_at AND u.first_response IS NULL
$sql$, crm._source_sql('interactions', 'ix')) USING from_ts;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    RETURN n OPERATOR(pg_catalog.+) m;
END
$$;
COMMENT ON FUNCTION crm._rollup_contact_days(timestamptz) IS
'Rollup part contacts, state: rewrites crm.rollup_contact_days (real contacts per day, manager and kind) for the days from the day of the given moment on, and recomputes the first response of the leads in crm.rollup_leads not answered before it; returns the rows written.';

-- ---------------------------------------------------------------------------
-- Building blocks of the reports (read only crm.rollup_* tables)
-- ---------------------------------------------------------------------------

-- The owner dashboard's lead and invoice rows for [cur_from, cur_to) and
-- [prev_from, cur_from), exactly as crm._owner_dashboard_sql computes them,
-- plus the unrounded helpers _leads_converted and _leads_cost.
CREATE FUNCTION crm._fast_owner_leads(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH
ld AS (
    SELECT l.month, l.channel, l.customer_id, l.first_response, l.created_at >= cur_from AS is_cur
      FROM crm.rollup_leads l WHERE l.created_at >= prev_from AND l.created_at < cur_to),
-- cost per lead (channel-month rule, crm._lead_cost_sql)
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
lx AS (
    SELECT ld.channel, ld.is_cur, ld.month, count(*) AS n,
           count(*) FILTER (WHERE rc.first_at < CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS converted,
           count(*) FILTER (WHERE ld.first_response IS NULL
                               OR ld.first_response >= CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS unanswered
      FROM ld LEFT JOIN crm.rollup_customers rc ON rc.customer_id = ld.customer_id
     GROUP BY 1, 2, 3),
lm AS (
    SELECT sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_leads_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_leads_cost
      FROM lx LEFT JOIN cpl ON cpl.channel = lx.channel AND cpl.month = lx.month),
iv AS (
    SELECT i.issued_at, i.due_at, i.amount, i.paid_at FROM crm.rollup_invoices i
     WHERE i.issued_at < cur_to AND (i.paid_at IS NULL OR i.paid_at >= cur_from)),
im AS (
    SELECT count(*) FILTER (WHERE paid_at IS NULL OR paid_at >= cur_to) AS c_unpaid,
           sum(amount) FILTER (WHERE paid_at IS NULL OR paid_at >= cur_to) AS c_unpaid_amt,
           avg(extract(epoch FROM cur_to - issued_at) / 86400) FILTER (WHERE paid_at IS NULL OR paid_at >= cur_to) AS c_unpaid_age,
           count(*) FILTER (WHERE (paid_at IS NULL OR paid_at >= cur_to) AND due_at < cur_to) AS c_overdue,
           sum(amount) FILTER (WHERE (paid_at IS NULL OR paid_at >= cur_to) AND due_at < cur_to) AS c_overdue_amt,
           count(*) FILTER (WHERE issued_at < cur_from) AS p_unpaid,
           sum(amount) FILTER (WHERE issued_at < cur_from) AS p_unpaid_amt,
           avg(extract(epoch FROM cur_from - issued_at) / 86400) FILTER (WHERE issued_at < cur_from) AS p_unpaid_age,
           count(*) FILTER (WHERE issued_at < cur_from AND due_at < cur_from) AS p_overdue,
           sum(amount) FILTER (WHERE issued_at < cur_from AND due_at < cur_from) AS p_overdue_amt
      FROM iv)
SELECT v.metric, v.cur, v.prev
  FROM lm, im, LATERAL (VALUES
    ('lead_to_buyer_conversion', round((100.0 * c_conv) / CASE WHEN c_leads <> 0 THEN c_leads END, 2),
                                 round((100.0 * p_conv) / CASE WHEN p_leads <> 0 THEN p_leads END, 2)),
    ('unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0)),
    ('unanswered_leads_cost', round(coalesce(c_unans_cost, 0), 2), round(coalesce(p_unans_cost, 0), 2)),
    ('unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric),
    ('unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0)),
    ('unpaid_invoice_age', round(c_unpaid_age, 2), round(p_unpaid_age, 2)),
    ('overdue_invoices', c_overdue::numeric, p_overdue::numeric),
    ('overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0)),
    ('_leads_converted', c_conv, p_conv),
    ('_leads_cost', c_leads_cost, p_leads_cost)) AS v(metric, cur, prev)
$$;
COMMENT ON FUNCTION crm._fast_owner_leads(timestamptz, timestamptz, timestamptz) IS
'Fast path of crm.owner_dashboard from the rollups: its rows lead_to_buyer_conversion, unanswered_leads, unanswered_leads_cost, unpaid_invoices, unpaid_invoice_amount, unpaid_invoice_age, overdue_invoices and overdue_invoice_amount for [cur_from, cur_to) and [prev_from, cur_from), plus the unrounded _leads_converted and _leads_cost (for lost_opportunity_cost).';

-- The leads, answered leads and median first-response minutes per manager
-- (the ld / fc / lm CTEs of crm.dashboard_managers) for [period_from, period_to).
CREATE FUNCTION crm._fast_managers_leads(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, leads bigint, answered bigint, med double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT l.manager_id, count(*), count(*) FILTER (WHERE l.first_response < period_to),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN l.first_response < period_to THEN l.response_min END)
  FROM crm.rollup_leads l
 WHERE l.created_at >= period_from AND l.created_at < period_to
 GROUP BY 1
$$;
COMMENT ON FUNCTION crm._fast_managers_leads(timestamptz, timestamptz) IS
'Fast path of crm.dashboard_managers from the rollups: per manager (NULL = none), the leads created in [period_from, period_to), those answered before period_to and the median first-response time in minutes (unrounded).';

-- Real contacts per manager and kind (the ct CTE of crm.dashboard_managers)
-- for [period_from, period_to), bounds at midnight in the rollups' time zone.
CREATE FUNCTION crm._fast_managers_contacts(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, calls bigint, meetings bigint, emails bigint, contacts bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT c.manager_id, sum(c.calls)::bigint, sum(c.meetings)::bigint, sum(c.emails)::bigint, sum(c.contacts)::bigint
  FROM crm.rollup_contact_days c
 WHERE c.day >= period_from::date AND c.day < period_to::date
 GROUP BY 1
$$;
COMMENT ON FUNCTION crm._fast_managers_contacts(timestamptz, timestamptz) IS
'Fast path of crm.dashboard_managers from the rollups: real contacts per manager (NULL = none) in [period_from, period_to) (midnights, as crm._period_bounds gives them): calls, meetings, e-mails and all kinds.';

-- the parts leads, spend, invoices and contacts keep the state above
-- (one hook line each, src/dashboard_rollups.sql)
CREATE OR REPLACE FUNCTION crm._rollup_leads(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('l', 'channel', 'manager');
BEGIN
    PERFORM crm._rollup_lead_state(from_ts);  -- per-lead state, leads per channel-month (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT l.day, 'leads_in', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.created_at::pg_catalog.date AS day, src.channel::pg_catalog.text AS channel,
               src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.created_at OPERATOR(pg_catalog.>=) $1) AS l
 GROUP BY %4$s
$sql$, crm._source_sql('leads'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
CREATE OR REPLACE FUNCTION crm._rollup_spend(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('s', 'channel');
BEGIN
    PERFORM crm._rollup_spend_months(from_ts);  -- spend per channel-month (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT s.day, 'marketing_spend', %2$s, %3$s, pg_catalog.sum(s.amount)
  FROM (SELECT src.spent_on::pg_catalog.date AS day, src.channel::pg_catalog.text AS channel, src.amount
          FROM %1$s WHERE src.spent_on OPERATOR(pg_catalog.>=) $1) AS s
 GROUP BY %4$s
HAVING pg_catalog.sum(s.amount) IS NOT NULL
$sql$, crm._source_sql('spend'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
CREATE OR REPLACE FUNCTION crm._rollup_invoices(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM crm._rollup_invoice_state(from_ts);  -- per-invoice state (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
WITH ev AS (
    SELECT i.issued_at::pg_catalog.date AS day, 'invoices_issued'::pg_catalog.text AS what, i.amount
      FROM %1$s WHERE i.issued_at OPERATOR(pg_catalog.>=) $1
    UNION ALL
    SELECT i.paid_at::pg_catalog.date, 'invoices_paid', i.amount
      FROM %1$s WHERE i.paid_at OPERATOR(pg_catalog.>=) $1),
a AS (SELECT ev.day, ev.what, pg_catalog.count(*) AS n, pg_catalog.sum(ev.amount) AS amount FROM ev GROUP BY 1, 2)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, 'all', 'all', m.value
  FROM a CROSS JOIN LATERAL (VALUES (a.what, a.n::pg_catalog.numeric),
                                    (a.what OPERATOR(pg_catalog.||) '_amount', a.amount)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, crm._source_sql('invoices', 'i')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
CREATE OR REPLACE FUNCTION crm._rollup_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('x', 'manager');
BEGIN
    PERFORM crm._rollup_contact_days(from_ts);  -- contacts per day, manager, kind; first responses (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT x.day, 'real_contacts', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.occurred_at::pg_catalog.date AS day, src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT src.automated) AS x
 GROUP BY %4$s
$sql$, crm._source_sql('interactions'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM crm._rollup_fast_contacts(from_ts);
    RETURN n;
END
$$;
-- rollups built before this version hold none of the state above: the next
-- refresh rebuilds them in full
UPDATE crm.rollup_status SET needs_full = true;
-- ==== end of section fast_leads ====
-- ==== section losses_fast ====
-- crm.dashboard_losses, crm.dashboard_followups and crm.dashboard_closed_deals answer from the
-- rollups (src/dashboard_fast_losses.sql); the rollup part contacts keeps crm.rollup_deal_contacts.
CREATE TABLE crm.rollup_deal_contacts (
    interaction_id text COLLATE "C" NOT NULL,
    lead_id        text COLLATE "C",
    customer_id    text COLLATE "C",
    occurred_at    timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_deal_contacts IS
'Rollup state of the loss reports (derived, not dumped): the real (non-automated) interactions with an id and a lead or a customer, narrow (id, lead, customer, moment), by lead, by customer and by time.';
-- (named: a full refresh drops them and builds them again after the copy)
CREATE INDEX rollup_deal_contacts_lead_idx ON crm.rollup_deal_contacts (lead_id, occurred_at) INCLUDE (interaction_id) WHERE lead_id IS NOT NULL;
CREATE INDEX rollup_deal_contacts_customer_idx ON crm.rollup_deal_contacts (customer_id, occurred_at) INCLUDE (interaction_id) WHERE customer_id IS NOT NULL;
CREATE INDEX rollup_deal_contacts_time_idx ON crm.rollup_deal_contacts (occurred_at);

-- Part contacts: the copy of the real interactions from from_ts on (every
-- interaction changed, before or after the change, is at or after from_ts);
-- -infinity = everything: the table emptied and, when this role owns it, its
-- indexes built after the copy (a third of the time of filling them row by row).
CREATE FUNCTION crm._rollup_deal_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n     bigint;
    bulk  boolean := false;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_deal_contacts;
        bulk := pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c
                                         WHERE c.oid OPERATOR(pg_catalog.=) 'crm.rollup_deal_contacts'::pg_catalog.regclass), 'USAGE');
        IF bulk THEN
            DROP INDEX IF EXISTS crm.rollup_deal_contacts_lead_idx, crm.rollup_deal_contacts_customer_idx, crm.rollup_deal_contacts_time_idx;
        END IF;
    ELSE
        DELETE FROM crm.rollup_deal_contacts x WHERE x.occurred_at OPERATOR(pg_catalog.>=) from_ts;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_deal_contacts (interaction_id, lead_id, customer_id, occurred_at)
SELECT x.interaction_id::pg_catalog.text, x.lead_id::pg_catalog.text, x.customer_id::pg_catalog.text, x.occurred_at FROM %1$s
 WHERE x.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT x.automated AND x.interaction_id IS NOT NULL
   AND (x.lead_id IS NOT NULL OR x.customer_id IS NOT NULL)
$sql$, crm._source_sql('interactions', 'x')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF bulk THEN
        CREATE INDEX rollup_deal_contacts_lead_idx ON crm.rollup_deal_contacts (lead_id, occurred_at) INCLUDE (interaction_id) WHERE lead_id IS NOT NULL;
        CREATE INDEX rollup_deal_contacts_customer_idx ON crm.rollup_deal_contacts (customer_id, occurred_at) INCLUDE (interaction_id) WHERE customer_id IS NOT NULL;
        CREATE INDEX rollup_deal_contacts_time_idx ON crm.rollup_deal_contacts (occurred_at);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_deal_contacts(timestamptz) IS
'Rollup state of the loss reports, part contacts: the copy of the real interactions with an id and a lead or a customer (crm.rollup_deal_contacts) from the given moment on (-infinity: all, the table emptied first and its indexes built after the copy when this role owns it); rows written.';

-- crm._closed_deals_sql from the rollups: the same rows for [cur_from, cur_to).
CREATE FUNCTION crm._fast_closed_deals(cur_from timestamptz, cur_to timestamptz, with_contacts boolean)
RETURNS TABLE (deal_id text, manager_id text, is_won boolean, created_at timestamptz, closed_at timestamptz,
               amount numeric, stage text, lost_reason text, contacts bigint)
LANGUAGE plpgsql VOLATILE
-- small reads of the deal states: JIT compilation would cost more than the query
SET jit = off
AS $$
DECLARE
    src    text;
    idtype text;
    dd_cte text;
    cx_cte text;
BEGIN
    IF with_contacts IS NULL THEN
        RAISE EXCEPTION 'with_contacts must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._deal_check_stages(cur_to);
    IF with_contacts OR EXISTS (SELECT 1 FROM crm.sources s WHERE s.kind OPERATOR(pg_catalog.=) 'deals') THEN
        src := crm._source_sql('deals', 'd');
        EXECUTE pg_catalog.format('SELECT pg_catalog.pg_typeof(d.deal_id)::pg_catalog.text FROM %s LIMIT 1', src) INTO idtype;
    END IF;
    IF idtype IS NOT NULL THEN
        -- the deals source read live, for the period's closed deals only (by
        -- their ids: the source's own index on the deal id serves it); one row
        -- per deal, the first by lost_reason, as the full computation takes it
        dd_cte := pg_catalog.format($f$
dd AS MATERIALIZED (
    SELECT DISTINCT ON (d.deal_id) d.deal_id::pg_catalog.text AS deal_id, d.customer_id::pg_catalog.text AS customer_id,
           d.lead_id::pg_catalog.text AS lead_id, d.lost_reason::pg_catalog.text AS lost_reason
      FROM %1$s
     WHERE d.deal_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT dc.deal_id FROM dc)::pg_catalog.text[]::%2$s[])
     ORDER BY d.deal_id, d.lost_reason),$f$, src, idtype);
    ELSE
        dd_cte := $f$
dd AS (SELECT dc.deal_id, NULL::pg_catalog.text AS customer_id, NULL::pg_catalog.text AS lead_id, NULL::pg_catalog.text AS lost_reason
         FROM dc WHERE false),$f$;
    END IF;
    IF with_contacts THEN
        -- real interactions of the deal's lead or customer from its first
        -- event to its close (both included), each once
        cx_cte := $f$
dj AS MATERIALIZED (
    SELECT dc.deal_id, dc.created_at, dc.closed_at, dd.lead_id, dd.customer_id
      FROM dc JOIN dd ON dd.deal_id OPERATOR(pg_catalog.=) dc.deal_id),
cx AS (
    SELECT u.deal_id, pg_catalog.count(*) AS n
      FROM (SELECT DISTINCT m.deal_id, m.interaction_id
              FROM (SELECT dj.deal_id, x.interaction_id
                      FROM dj JOIN crm.rollup_deal_contacts x
                        ON x.lead_id OPERATOR(pg_catalog.=) dj.lead_id
                       AND x.occurred_at OPERATOR(pg_catalog.>=) dj.created_at AND x.occurred_at OPERATOR(pg_catalog.<=) dj.closed_at
                     WHERE x.lead_id IS NOT NULL
                    UNION ALL
                    SELECT dj.deal_id, x.interaction_id
                      FROM dj JOIN crm.rollup_deal_contacts x
                        ON x.customer_id OPERATOR(pg_catalog.=) dj.customer_id
                       AND x.occurred_at OPERATOR(pg_catalog.>=) dj.created_at AND x.occurred_at OPERATOR(pg_catalog.<=) dj.closed_at
                     WHERE x.customer_id IS NOT NULL) AS m) AS u
     GROUP BY u.deal_id),$f$;
    ELSE
        cx_cte := $f$
cx AS (SELECT dc.deal_id, NULL::pg_catalog.int8 AS n FROM dc WHERE false),$f$;
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
-- the deals closed in [$1, $2) (their close is the same as of $2 as now),
-- with their state as of $2: the current one when their last event is
-- before $2, else the earlier state valid at $2
cl AS (
    SELECT n.deal_id, n.first_at, n.last_at, n.won_at, n.lost_at, n.closed_at, n.amount, n.open_so, n.manager_id
      FROM crm.rollup_deal_now n
     WHERE coalesce(n.closed_at, 'infinity'::pg_catalog.timestamptz) OPERATOR(pg_catalog.>=) $1
       AND coalesce(n.closed_at, 'infinity'::pg_catalog.timestamptz) OPERATOR(pg_catalog.<) $2),
dc AS MATERIALIZED (
    SELECT s.deal_id, s.first_at AS created_at, s.amount, s.manager_id, s.open_so, s.closed_at,
           s.won_at IS NOT NULL AND s.won_at OPERATOR(pg_catalog.<=) coalesce(s.lost_at, s.won_at) AS is_won
      FROM (SELECT cl.deal_id, cl.first_at, cl.won_at, cl.lost_at, cl.closed_at, cl.amount, cl.open_so, cl.manager_id
              FROM cl WHERE cl.last_at OPERATOR(pg_catalog.<) $2
            UNION ALL
            SELECT p.deal_id, p.first_at, p.won_at, p.lost_at, p.closed_at, p.amount, p.open_so, p.manager_id
              FROM cl JOIN crm.rollup_deal_past p ON p.deal_id OPERATOR(pg_catalog.=) cl.deal_id
             WHERE cl.last_at OPERATOR(pg_catalog.>=) $2
               AND p.from_at OPERATOR(pg_catalog.<) $2 AND p.to_at OPERATOR(pg_catalog.>=) $2) AS s),%1$s%2$s
st AS (SELECT ps.stage, ps.stage_order FROM crm.pipeline_stages ps WHERE ps.outcome OPERATOR(pg_catalog.=) 'open')
SELECT dc.deal_id, dc.manager_id, dc.is_won, dc.created_at, dc.closed_at, dc.amount,
       coalesce(st.stage, '(no open stage)'),
       CASE WHEN NOT dc.is_won THEN coalesce(dd.lost_reason, '(not recorded)') END,
       CASE WHEN %3$L::pg_catalog.bool THEN coalesce(cx.n, 0) END
  FROM dc LEFT JOIN st ON st.stage_order OPERATOR(pg_catalog.=) dc.open_so
          LEFT JOIN dd ON dd.deal_id OPERATOR(pg_catalog.=) dc.deal_id
          LEFT JOIN cx ON cx.deal_id OPERATOR(pg_catalog.=) dc.deal_id
$sql$, dd_cte, cx_cte, with_contacts)
        USING cur_from, cur_to;
END
$$;
COMMENT ON FUNCTION crm._fast_closed_deals(timestamptz, timestamptz, boolean) IS
'crm._closed_deals_sql for the half-open period [cur_from, cur_to) from the rollups: the deals closed in it with their state as of its end from the deal states (crm.rollup_deal_now, crm.rollup_deal_past), the lost reason, lead and customer from the deals source (read live, by deal id) and, with_contacts, the real contacts from crm.rollup_deal_contacts; the same rows as the full computation.';

CREATE OR REPLACE FUNCTION crm._rollup_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('x', 'manager');
BEGIN
    PERFORM crm._rollup_contact_days(from_ts);  -- contacts per day, manager, kind; first responses (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT x.day, 'real_contacts', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.occurred_at::pg_catalog.date AS day, src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT src.automated) AS x
 GROUP BY %4$s
$sql$, crm._source_sql('interactions'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM crm._rollup_fast_contacts(from_ts);
    PERFORM crm._rollup_deal_contacts(from_ts);  -- real interactions by lead and customer (src/dashboard_fast_losses.sql)
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_contacts(timestamptz) IS
'Rollup part contacts: writes real_contacts (non-automated interactions) per day (all, manager) from the interactions source, for the days from the given moment on.';

CREATE OR REPLACE FUNCTION crm.dashboard_closed_deals(period_from date, period_to date)
RETURNS TABLE (deal_id text, manager_id text, outcome text, created_at timestamptz, closed_at timestamptz,
               amount numeric, stage text, lost_reason text, contacts bigint)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_closed_deals', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_closed_deals');
    -- the full computation, or the same rows from the rollups (crm._closed_deals_sql)
    q := crm._closed_deals_sql(true);
    RETURN QUERY EXECUTE pg_catalog.format($sql$
SELECT c.deal_id, c.manager_id, CASE WHEN c.is_won THEN 'won' ELSE 'lost' END, c.created_at, c.closed_at,
       c.amount, c.stage, c.lost_reason, c.contacts
  FROM (%s) AS c(deal_id, manager_id, is_won, created_at, closed_at, amount, stage, lost_reason, contacts)
 ORDER BY c.closed_at, c.deal_id
$sql$, q)
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_closed_deals(date, date) IS
'One row per deal won or lost in the period [from, to]: manager, outcome, first stage event, close, value, the most advanced open stage reached, lost reason and real (non-automated) contacts of the deal''s lead or customer from creation to close; needs the deals source. The rows behind crm.dashboard_losses and crm.dashboard_followups.';

CREATE OR REPLACE FUNCTION crm.dashboard_losses(period_from date, period_to date)
RETURNS TABLE (reason text, stage text, deals bigint, lost_value numeric, share_pct numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_losses', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_losses');
    -- the full computation, or the same rows from the rollups (crm._closed_deals_sql)
    q := crm._closed_deals_sql(false);
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH g AS (
    SELECT c.lost_reason AS reason, c.stage, pg_catalog.count(*) AS deals, coalesce(pg_catalog.sum(c.amount), 0) AS lost_value
      FROM (%s) AS c(deal_id, manager_id, is_won, created_at, closed_at, amount, stage, lost_reason, contacts)
     WHERE NOT c.is_won
     GROUP BY 1, 2)
SELECT g.reason, g.stage, g.deals, g.lost_value,
       pg_catalog.round((100 OPERATOR(pg_catalog.*) g.lost_value) OPERATOR(pg_catalog./)
                        CASE WHEN pg_catalog.sum(g.lost_value) OVER () OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.sum(g.lost_value) OVER () END, 2)
  FROM g
 ORDER BY g.lost_value DESC, g.reason, g.stage
$sql$, q)
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_losses(date, date) IS
'Deals lost in the period [from, to] (first lost-stage event in the period, not won before) by lost reason (deals source; ''(not recorded)'' without it) and by the most advanced open stage reached: deals, their value and its share of the period''s lost value; totals equal owner_dashboard''s deals_lost and lost_deal_value.';

CREATE OR REPLACE FUNCTION crm.dashboard_followups(period_from date, period_to date)
RETURNS TABLE (contacts text, deals bigint, lost_value numeric, won_deals bigint, won_value numeric, win_rate_pct numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_followups', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_followups');
    -- the full computation, or the same rows from the rollups (crm._closed_deals_sql)
    q := crm._closed_deals_sql(true);
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH g AS (
    SELECT least(c.contacts, 3) AS k,
           pg_catalog.count(*) FILTER (WHERE NOT c.is_won) AS lost, pg_catalog.sum(c.amount) FILTER (WHERE NOT c.is_won) AS lost_value,
           pg_catalog.count(*) FILTER (WHERE c.is_won) AS won, pg_catalog.sum(c.amount) FILTER (WHERE c.is_won) AS won_value
      FROM (%s) AS c(deal_id, manager_id, is_won, created_at, closed_at, amount, stage, lost_reason, contacts)
     GROUP BY 1)
SELECT b.label, coalesce(g.lost, 0), coalesce(g.lost_value, 0), coalesce(g.won, 0), coalesce(g.won_value, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) g.won) OPERATOR(pg_catalog./)
                        CASE WHEN (g.won OPERATOR(pg_catalog.+) g.lost) OPERATOR(pg_catalog.<>) 0 THEN (g.won OPERATOR(pg_catalog.+) g.lost) END, 2)
  FROM (VALUES (0, '0'), (1, '1'), (2, '2'), (3, '3+')) AS b(k, label)
  LEFT JOIN g ON g.k OPERATOR(pg_catalog.=) b.k
 ORDER BY b.k
$sql$, q)
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_followups(date, date) IS
'Deals closed in the period [from, to] by the number of real (non-automated) contacts of the deal''s lead or customer from its first stage event to its close (0, 1, 2, 3+; always four rows): lost deals and value, won deals and value, win rate; needs the deals source.';
-- rollups built before this state existed: the next refresh rebuilds them in full
UPDATE crm.rollup_status SET needs_full = true;
-- ==== end of section losses_fast ====

-- ==== section todo_fast ====
-- crm.todo (and crm.v_todo) answer from the rollups: the state and crm._fast_todo of
-- src/dashboard_fast_todo.sql, the hooks in the parts orders and invoices, the gate in crm.todo.

-- dashboard_fast_todo.sql: crm.todo (and crm.v_todo) from the rollups (issue 21;
-- docs/rollups.md, "To-do list").
--
-- The five kinds of items as of any moment E, each from rollup state:
-- unanswered leads from crm.rollup_leads (first response) with the cost of a
-- lead from crm.rollup_lead_months / crm.rollup_spend_months; stale deals from
-- the deal states (crm._deal_states_sql) and the stage norms read when the
-- report runs; overdue invoices from crm.rollup_invoices (with their invoice
-- and customer ids); overdue contacts from crm._fast_coverage; reactivation from
-- crm.rollup_customer_firsts (kept here: each customer's first order and the
-- moment of its second) and the contact state.  Managers of customers from
-- crm.rollup_customer_info.  Derived data: not dumped, no grants to PUBLIC.

-- per customer with orders: the first order (moment, amount) and the moment
-- of the second (equal to the first when two orders share the first moment)
CREATE TABLE crm.rollup_customer_firsts (
    customer_id text PRIMARY KEY,
    first_at    timestamptz NOT NULL,
    amount      numeric,
    second_at   timestamptz
);
COMMENT ON TABLE crm.rollup_customer_firsts IS
'Rollup state per customer with orders for crm.todo (derived, not dumped): the first order''s moment and amount and the moment of the second order (NULL = one order; equal to first_at when two orders share the first moment): "exactly one order before E" is first_at < E and (second_at IS NULL or second_at >= E).';
CREATE INDEX ON crm.rollup_customer_firsts ((coalesce(second_at, first_at)));

-- ---------------------------------------------------------------------------
-- Maintenance (hooked into the rollup part orders)
-- ---------------------------------------------------------------------------

-- Part orders (after crm._rollup_fast_orders has replaced the order lines
-- from from_ts on): a customer's first two orders change only if one of them
-- is at or after from_ts (coalesce(second_at, first_at) >= from_ts before the
-- change) or the customer has an order at or after from_ts now and not two
-- orders before from_ts (a new first or second order); those customers are
-- read again from the order lines.
CREATE OR REPLACE FUNCTION crm._rollup_todo_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n   bigint;
    ids text[];
BEGIN
    -- a full rebuild reads everything: hash joins again (the SET above is for the few changed rows)
    IF NOT pg_catalog.isfinite(from_ts) THEN
        PERFORM pg_catalog.set_config('enable_hashjoin', 'on', true), pg_catalog.set_config('enable_mergejoin', 'on', true);
    END IF;
    IF from_ts = '-infinity' THEN
        TRUNCATE crm.rollup_customer_firsts;
        INSERT INTO crm.rollup_customer_firsts (customer_id, first_at, amount, second_at)
        SELECT o.customer_id, o.ordered_at, o.amount, o.next_at
          FROM (SELECT l.customer_id, l.ordered_at, l.amount, row_number() OVER w AS rn, lead(l.ordered_at) OVER w AS next_at
                  FROM crm.rollup_order_lines l WHERE l.customer_id IS NOT NULL
                WINDOW w AS (PARTITION BY l.customer_id ORDER BY l.ordered_at)) AS o
         WHERE o.rn = 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    WITH d AS (DELETE FROM crm.rollup_customer_firsts f WHERE coalesce(f.second_at, f.first_at) >= from_ts RETURNING f.customer_id)
    SELECT array_agg(d.customer_id) INTO ids FROM d;
    ids := ARRAY(SELECT DISTINCT u.id
                   FROM (SELECT unnest(coalesce(ids, '{}')) AS id
                         UNION ALL
                         -- an order at or after from_ts now; a customer kept with both its
                         -- first two orders (before from_ts) cannot have a new one among them
                         SELECT l.customer_id FROM crm.rollup_order_lines l
                          WHERE l.ordered_at >= from_ts AND l.customer_id IS NOT NULL
                            AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_firsts f
                                             WHERE f.customer_id = l.customer_id AND f.second_at IS NOT NULL)) AS u);
    DELETE FROM crm.rollup_customer_firsts f USING unnest(ids) AS u(id) WHERE f.customer_id = u.id;
    INSERT INTO crm.rollup_customer_firsts (customer_id, first_at, amount, second_at)
    SELECT u.id, x.ordered_at, x.amount, x.next_at
      FROM unnest(ids) AS u(id)
      CROSS JOIN LATERAL (SELECT l.ordered_at, l.amount, lead(l.ordered_at) OVER (ORDER BY l.ordered_at) AS next_at
                            FROM crm.rollup_order_lines l WHERE l.customer_id = u.id
                           ORDER BY l.ordered_at LIMIT 1) AS x;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_todo_orders(timestamptz) IS
'Rollup part orders, state of crm.todo: recomputes crm.rollup_customer_firsts (first order, its amount, the moment of the second) from crm.rollup_order_lines for every customer whose first two orders may have changed from the given moment on (everything for -infinity); returns the rows written.';

-- ---------------------------------------------------------------------------
-- The report
-- ---------------------------------------------------------------------------

-- crm.todo(as_of) from the rollups: the same rows in the same order.  The
-- caller (crm.todo) has checked as_of, the stages and the sources.
CREATE OR REPLACE FUNCTION crm._fast_todo(as_of timestamptz)
RETURNS TABLE (manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    -- the full path's error for an event with an unknown stage before as_of
    PERFORM crm._deal_check_stages(as_of);
    RETURN QUERY EXECUTE format($sql$
WITH
cfg AS MATERIALIZED (SELECT crm._lead_sla() AS sla, crm._reactivation_after() AS react),
-- unanswered: created more than the SLA before as_of, no first response before as_of
ua AS (
    SELECT l.lead_id, l.created_at, l.month, l.channel, l.manager_id, l.created_at + cfg.sla AS since, cfg.sla
      FROM crm.rollup_leads l CROSS JOIN cfg
     WHERE l.created_at + cfg.sla < $1 AND (l.first_response IS NULL OR l.first_response >= $1)),
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- open at as_of (no won or lost event before it) in an open stage
sd AS (
    SELECT d.deal_id, d.last_at, d.amount, d.manager_id, d.open_so, %2$s AS norm
      FROM %1$s AS d WHERE d.open_so IS NOT NULL AND d.closed_at IS NULL),
oi AS (
    SELECT i.invoice_id, i.customer_id, i.issued_at, i.due_at, i.amount FROM crm.rollup_invoices i
     WHERE i.issued_at < $1 AND (i.paid_at IS NULL OR i.paid_at >= $1) AND i.due_at < $1),
-- exactly one order before as_of, older than the period, no real contact at or
-- after it before as_of (the contact state; the contacts copy by index only
-- when the last contact is at or after as_of)
ra AS (
    SELECT f.customer_id, f.first_at AS ordered_at, f.amount, f.first_at + cfg.react AS since
      FROM crm.rollup_customer_firsts f CROSS JOIN cfg
     WHERE f.first_at + cfg.react < $1 AND (f.second_at IS NULL OR f.second_at >= $1)
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_contacts s
                        WHERE s.customer_id = f.customer_id AND s.last_at >= f.first_at AND s.first_at < $1
                          AND (s.last_at < $1 OR EXISTS (SELECT 1 FROM crm.rollup_real_contacts r
                                                          WHERE r.customer_id = f.customer_id AND r.occurred_at >= f.first_at
                                                            AND r.occurred_at < $1)))),
items AS (
    SELECT ua.manager_id, 'unanswered_lead'::text AS kind, ua.lead_id AS entity_id, ua.since,
           round(coalesce(cpl.cost_per_lead, 0), 2) AS value,
           format('lead from %%s created %%s, no first response (SLA %%s)', coalesce(ua.channel, '(unknown channel)'),
                  to_char(ua.created_at, 'YYYY-MM-DD HH24:MI'), ua.sla) AS note
      FROM ua LEFT JOIN cpl ON cpl.channel = ua.channel AND cpl.month = ua.month
    UNION ALL
    SELECT sd.manager_id, 'stale_deal', sd.deal_id, sd.last_at + sd.norm, sd.amount,
           format('stage %%s idle %%s days (norm %%s)', ps.stage, extract(day FROM ($1 - sd.last_at)), ps.max_days)
      FROM sd JOIN crm.pipeline_stages ps ON ps.stage_order = sd.open_so
     WHERE sd.last_at < ($1 - sd.norm)
    UNION ALL
    SELECT cust.manager_id, 'overdue_invoice', oi.invoice_id, oi.due_at, oi.amount,
           format('invoice issued %%s, due %%s, %%s days overdue', oi.issued_at::date, oi.due_at::date,
                  extract(day FROM ($1 - oi.due_at)))
      FROM oi LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = oi.customer_id) AS cust ON true
    UNION ALL
    SELECT cv.manager_id, 'overdue_contact', cv.customer_id, cv.next_due, cv.revenue_12m,
           format('class %%s, last real contact %%s, next contact was due %%s', cv.abc_class,
                  coalesce(cv.last_contact::date::text, 'never'), cv.next_due::date)
      FROM crm._fast_coverage($1) AS cv WHERE NOT cv.covered
    UNION ALL
    SELECT cust.manager_id, 'reactivation', ra.customer_id, ra.since, ra.amount,
           format('one order on %%s, no real contact since', ra.ordered_at::date)
      FROM ra LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = ra.customer_id) AS cust ON true)
-- sorted by value first, then the ties (100,000 overdue contacts of value 0 as of now() on the
-- 100,000-customer demo) by the rest: an incremental sort, twice as fast as one sort by every key
SELECT i.manager_id, i.kind, i.entity_id, i.since, i.value, i.note
  FROM (SELECT * FROM items ORDER BY items.value DESC NULLS LAST OFFSET 0) AS i
 ORDER BY i.value DESC NULLS LAST, i.since NULLS LAST, i.kind, i.entity_id
$sql$, crm._deal_states_sql('$1', '''infinity''::timestamptz'), crm._stage_norm_case('d.open_so'))
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm._fast_todo(timestamptz) IS
'crm.todo(as_of) computed from the rollups (crm.rollup_leads, crm.rollup_lead_months, crm.rollup_spend_months, the deal states, crm.rollup_invoices, crm._fast_coverage, crm.rollup_customer_firsts, the contact state, crm.rollup_customer_info): the same rows in the same order.';

-- the parts orders and invoices keep the state of crm.todo (one hook line each)
CREATE OR REPLACE FUNCTION crm._rollup_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    src_o text := crm._source_sql('orders', 'o');
    go text[] := crm._rollup_gsets('o', 'channel', 'manager');
    gn text[] := crm._rollup_gsets('nb', 'channel', 'manager');
BEGIN
    -- first orders at or after the bound may have changed; earlier ones did not
    DELETE FROM crm.rollup_customers rc WHERE rc.first_at OPERATOR(pg_catalog.>=) from_ts;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customers AS rc (customer_id, first_at)
SELECT f.cid, f.first_at
  FROM (SELECT o.customer_id::pg_catalog.text AS cid, pg_catalog.min(o.ordered_at) AS first_at
          FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.customer_id IS NOT NULL GROUP BY 1) AS f
 -- customers whose first order is before the bound keep it
 WHERE NOT EXISTS (SELECT 1 FROM crm.rollup_customers x WHERE x.customer_id OPERATOR(pg_catalog.=) f.cid)
$sql$, src_o) USING from_ts;
    EXECUTE pg_catalog.format($sql$
WITH o AS MATERIALIZED (
    SELECT o.customer_id::pg_catalog.text AS cid, o.ordered_at::pg_catalog.date AS day, o.amount, o.cost,
           c.channel::pg_catalog.text AS channel, c.manager_id::pg_catalog.text AS manager
      FROM %1$s LEFT JOIN %2$s ON c.customer_id OPERATOR(pg_catalog.=) o.customer_id
     WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1),
nb AS (
    SELECT rc.first_at::pg_catalog.date AS day, d.channel, d.manager
      FROM crm.rollup_customers rc
      JOIN (SELECT DISTINCT o.cid, o.channel, o.manager FROM o) AS d ON d.cid OPERATOR(pg_catalog.=) rc.customer_id
     WHERE rc.first_at OPERATOR(pg_catalog.>=) $1),
a AS (
    SELECT o.day, %3$s AS dimension, %4$s AS key, pg_catalog.count(*) AS n, pg_catalog.sum(o.amount) AS revenue,
           pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) AS gp, NULL::pg_catalog.int8 AS nb
      FROM o GROUP BY %5$s
    UNION ALL
    SELECT nb.day, %6$s, %7$s, NULL, NULL, NULL, pg_catalog.count(*)
      FROM nb GROUP BY %8$s)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, a.dimension, a.key, m.value
  FROM a CROSS JOIN LATERAL (VALUES ('orders'::pg_catalog.text, a.n::pg_catalog.numeric), ('revenue', a.revenue),
                                    ('gross_profit', a.gp), ('new_buyers', a.nb::pg_catalog.numeric)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, src_o, crm._source_sql('customers', 'c'), go[1], go[2], go[3], gn[1], gn[2], gn[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM crm._rollup_fast_orders(from_ts);
    PERFORM crm._rollup_todo_orders(from_ts);  -- first two orders per customer (src/dashboard_fast_todo.sql)
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION crm._rollup_invoices(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM crm._rollup_invoice_state(from_ts);  -- per-invoice state (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
WITH ev AS (
    SELECT i.issued_at::pg_catalog.date AS day, 'invoices_issued'::pg_catalog.text AS what, i.amount
      FROM %1$s WHERE i.issued_at OPERATOR(pg_catalog.>=) $1
    UNION ALL
    SELECT i.paid_at::pg_catalog.date, 'invoices_paid', i.amount
      FROM %1$s WHERE i.paid_at OPERATOR(pg_catalog.>=) $1),
a AS (SELECT ev.day, ev.what, pg_catalog.count(*) AS n, pg_catalog.sum(ev.amount) AS amount FROM ev GROUP BY 1, 2)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, 'all', 'all', m.value
  FROM a CROSS JOIN LATERAL (VALUES (a.what, a.n::pg_catalog.numeric),
                                    (a.what OPERATOR(pg_catalog.||) '_amount', a.amount)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, crm._source_sql('invoices', 'i')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- crm.todo: the full query built first (same errors), then the gate
CREATE OR REPLACE FUNCTION crm.todo(as_of timestamptz DEFAULT now())
RETURNS TABLE (manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    q text;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real moment, e.g. ''2026-01-01''.';
    END IF;
    PERFORM crm._require_stages('crm.todo');
    -- the full query is built first (it checks every source), so both paths raise the same errors
    q := pg_catalog.format($sql$
WITH
cfg AS MATERIALIZED (SELECT crm._lead_sla() AS sla, crm._reactivation_after() AS react),
cust AS MATERIALIZED (
    SELECT c.customer_id, pg_catalog.min(c.manager_id::pg_catalog.text) AS manager_id
      FROM %1$s WHERE c.customer_id IS NOT NULL GROUP BY c.customer_id),
-- unanswered_lead: created more than the SLA before as_of, no first response
-- (first real outbound contact at or after creation) before as_of
ua AS MATERIALIZED (
    SELECT l.lead_id, l.created_at, l.channel, l.manager_id::pg_catalog.text AS manager_id,
           l.created_at OPERATOR(pg_catalog.+) cfg.sla AS since, cfg.sla
      FROM %2$s CROSS JOIN cfg
     WHERE l.created_at OPERATOR(pg_catalog.+) cfg.sla OPERATOR(pg_catalog.<) $1
       AND NOT EXISTS (SELECT 1 FROM %3$s
                        WHERE ix.lead_id OPERATOR(pg_catalog.=) l.lead_id AND NOT ix.automated
                          AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
                          AND ix.occurred_at OPERATOR(pg_catalog.>=) l.created_at AND ix.occurred_at OPERATOR(pg_catalog.<) $1)),
-- cost of a lead (docs/metrics.md): the channel's spend in the lead's calendar
-- month / the channel's leads created in that month (whole months)
cpl AS (%4$s),
-- stale_deal: open at as_of (an open stage reached, no won or lost event) and
-- idle beyond the norm of its most advanced open stage (crm._stage_norm_case)
ev AS (
    SELECT deal_id, changed_at, amount, manager_id, %5$s AS so
      FROM %6$s WHERE changed_at OPERATOR(pg_catalog.<) $1
    OFFSET 0),  -- a fence: the stage CASE is computed once per row
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.max(amount) AS amount, pg_catalog.min(manager_id::pg_catalog.text) AS manager_id,
           pg_catalog.max(changed_at) AS last_at,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%7$s]::pg_catalog.int4[])) AS open_so,
           pg_catalog.count(*) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%8$s]::pg_catalog.int4[])) AS n_closed,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(so) AS unknown
      FROM ev GROUP BY deal_id),
sd AS (
    SELECT dl.*, %9$s AS norm FROM dl WHERE dl.open_so IS NOT NULL AND dl.n_closed OPERATOR(pg_catalog.=) 0),
-- overdue_invoice: issued before as_of, unpaid at as_of, due before as_of
oi AS (
    SELECT i.invoice_id, i.customer_id, i.issued_at, i.due_at, i.amount FROM %10$s
     WHERE i.issued_at OPERATOR(pg_catalog.<) $1 AND (i.paid_at IS NULL OR i.paid_at OPERATOR(pg_catalog.>=) $1)
       AND i.due_at OPERATOR(pg_catalog.<) $1),
-- reactivation: exactly one order before as_of, older than the period, no real
-- contact at or after it (before as_of)
one AS (
    SELECT o.customer_id, pg_catalog.min(o.ordered_at) AS ordered_at, pg_catalog.min(o.amount) AS amount
      FROM %11$s WHERE o.ordered_at OPERATOR(pg_catalog.<) $1 AND o.customer_id IS NOT NULL
     GROUP BY o.customer_id HAVING pg_catalog.count(*) OPERATOR(pg_catalog.=) 1),
ra AS (
    SELECT one.*, one.ordered_at OPERATOR(pg_catalog.+) cfg.react AS since
      FROM one CROSS JOIN cfg
     WHERE one.ordered_at OPERATOR(pg_catalog.+) cfg.react OPERATOR(pg_catalog.<) $1
       AND NOT EXISTS (SELECT 1 FROM %3$s
                        WHERE ix.customer_id OPERATOR(pg_catalog.=) one.customer_id AND NOT ix.automated
                          AND ix.occurred_at OPERATOR(pg_catalog.>=) one.ordered_at AND ix.occurred_at OPERATOR(pg_catalog.<) $1)),
items AS (
    SELECT ua.manager_id, 'unanswered_lead'::pg_catalog.text AS kind, ua.lead_id::pg_catalog.text AS entity_id, ua.since,
           pg_catalog.round(coalesce(cpl.cost_per_lead, 0), 2) AS value,
           pg_catalog.format('lead from %%s created %%s, no first response (SLA %%s)', coalesce(ua.channel, '(unknown channel)'),
                             pg_catalog.to_char(ua.created_at, 'YYYY-MM-DD HH24:MI'), ua.sla) AS note
      FROM ua LEFT JOIN cpl ON cpl.channel OPERATOR(pg_catalog.=) ua.channel
                           AND cpl.month OPERATOR(pg_catalog.=) pg_catalog.date_trunc('month', ua.created_at)
    UNION ALL
    SELECT sd.manager_id, 'stale_deal', sd.deal_id::pg_catalog.text, sd.last_at OPERATOR(pg_catalog.+) sd.norm, sd.amount,
           pg_catalog.format('stage %%s idle %%s days (norm %%s)', ps.stage,
                             extract(day FROM ($1 OPERATOR(pg_catalog.-) sd.last_at)), ps.max_days)
      FROM sd JOIN crm.pipeline_stages ps ON ps.stage_order OPERATOR(pg_catalog.=) sd.open_so
     WHERE sd.last_at OPERATOR(pg_catalog.<) ($1 OPERATOR(pg_catalog.-) sd.norm)
    UNION ALL
    SELECT cust.manager_id, 'overdue_invoice', oi.invoice_id::pg_catalog.text, oi.due_at, oi.amount,
           pg_catalog.format('invoice issued %%s, due %%s, %%s days overdue', oi.issued_at::pg_catalog.date, oi.due_at::pg_catalog.date,
                             extract(day FROM ($1 OPERATOR(pg_catalog.-) oi.due_at)))
      FROM oi LEFT JOIN cust ON cust.customer_id OPERATOR(pg_catalog.=) oi.customer_id
    UNION ALL
    SELECT cv.manager_id, 'overdue_contact', cv.customer_id, cv.next_due, cv.revenue_12m,
           pg_catalog.format('class %%s, last real contact %%s, next contact was due %%s', cv.abc_class,
                             coalesce(cv.last_contact::pg_catalog.date::pg_catalog.text, 'never'), cv.next_due::pg_catalog.date)
      FROM crm.dashboard_coverage($1) AS cv WHERE NOT cv.covered
    UNION ALL
    SELECT cust.manager_id, 'reactivation', ra.customer_id::pg_catalog.text, ra.since, ra.amount,
           pg_catalog.format('one order on %%s, no real contact since', ra.ordered_at::pg_catalog.date)
      FROM ra LEFT JOIN cust ON cust.customer_id OPERATOR(pg_catalog.=) ra.customer_id)
SELECT items.manager_id, items.kind, items.entity_id, items.since, items.value, items.note
  FROM items
 WHERE crm._check_stages((SELECT pg_catalog.sum(dl.unknown) FROM dl))
 ORDER BY items.value DESC NULLS LAST, items.since NULLS LAST, items.kind, items.entity_id
$sql$,
        crm._source_sql('customers', 'c'), crm._source_sql('leads', 'l'), crm._source_sql('interactions', 'ix'),
        crm._lead_cost_sql(crm._source_sql('leads'), crm._source_sql('spend')), crm._stage_case('order', 'stage'), crm._source_sql('stage_events'),
        crm._stage_orders('open'), crm._stage_orders('won') OPERATOR(pg_catalog.||) ', ' OPERATOR(pg_catalog.||) crm._stage_orders('lost'),
        crm._stage_norm_case('dl.open_so'), crm._source_sql('invoices', 'i'), crm._source_sql('orders', 'o'));
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_todo(as_of);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING as_of;
END
$$;
-- ==== end of section todo_fast ====
-- ==== section planrfm_fast ====
-- the RFM scoring shared by crm.rfm_report and its answer from the rollups
CREATE FUNCTION crm._rfm_sql(per text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT format($q$
        WITH per AS (
            SELECT p.key,
                   pg_catalog.floor(pg_catalog.date_part('epoch', $1 OPERATOR(pg_catalog.-) p.last_at)
                       OPERATOR(pg_catalog./) 86400::pg_catalog.float8)::pg_catalog.int4 AS recency_days,
                   p.frequency, p.monetary, p.ord
              FROM (%s) AS p(key, last_at, frequency, monetary, ord)
        ), scored AS (
            SELECT per.*,
                   crm.quantile_score(OPERATOR(pg_catalog.-) per.recency_days::pg_catalog.float8) OVER () AS r,
                   crm.quantile_score(per.frequency::pg_catalog.float8) OVER () AS f,
                   crm.quantile_score(per.monetary::pg_catalog.float8) OVER () AS m
              FROM per
        )
        SELECT s.key::pg_catalog.text, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m,
               pg_catalog.concat(s.r, s.f, s.m), crm.rfm_segment(s.r, s.f)
          FROM scored AS s
         ORDER BY s.ord
        $q$, per)
$fn$;
COMMENT ON FUNCTION crm._rfm_sql(text) IS
'SQL text of the RFM scoring over a per-customer query (key, last order, frequency, monetary, ord; $1 = as_of): recency_days, R, F, M by crm.quantile_score, rfm_code and crm.rfm_segment, ordered by ord, as crm.rfm_report returns them.';
CREATE OR REPLACE FUNCTION crm.rfm_report(orders_sql text, as_of timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE(customer text, recency_days int, frequency bigint, monetary numeric,
              r int, f int, m int, rfm_code text, segment text)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
AS $fn$
BEGIN
    IF orders_sql IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'orders_sql and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._check_inner_query('rfm_report', orders_sql,
        ARRAY['customer any', 'ordered_at timestamptz', 'amount numeric']);
    RETURN QUERY EXECUTE crm._rfm_sql(pg_catalog.format($q$
            SELECT i.customer, pg_catalog.max(i.ordered_at::pg_catalog.timestamptz),
                   pg_catalog.count(*), pg_catalog.sum(i.amount::pg_catalog.numeric), i.customer
              FROM (%s) AS i(customer, ordered_at, amount)
             WHERE i.customer IS NOT NULL AND i.ordered_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<=) $1
             GROUP BY i.customer
        $q$, orders_sql))
    USING as_of;
END
$fn$;
-- plan against fact and RFM from the rollups (src/dashboard_fast_planrfm.sql)
CREATE TABLE crm.rollup_customer_rfm (
    customer_id text PRIMARY KEY,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    orders      bigint NOT NULL,
    amount      numeric
);
COMMENT ON TABLE crm.rollup_customer_rfm IS
'Rollup state per customer with orders (derived, not dumped; orders without a customer or a moment left out): the first and the last order, the number of orders and the sum of their amounts, from crm.rollup_order_lines.';
CREATE INDEX ON crm.rollup_customer_rfm (last_at);

-- ---------------------------------------------------------------------------
-- Maintenance (called by the rollup part orders after crm._rollup_fast_orders)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION crm._rollup_rfm_totals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n   bigint;
    m   bigint;
    ids text[];
BEGIN
    -- a full rebuild reads everything: hash joins again (the SET above is for the few changed rows)
    IF NOT pg_catalog.isfinite(from_ts) THEN
        PERFORM pg_catalog.set_config('enable_hashjoin', 'on', true), pg_catalog.set_config('enable_mergejoin', 'on', true);
    END IF;
    IF from_ts = '-infinity' THEN
        TRUNCATE crm.rollup_customer_rfm;
        INSERT INTO crm.rollup_customer_rfm (customer_id, first_at, last_at, orders, amount)
        SELECT l.customer_id, min(l.ordered_at), max(l.ordered_at), count(*), sum(l.amount)
          FROM crm.rollup_order_lines l WHERE l.customer_id IS NOT NULL GROUP BY 1
         -- in the order crm._fast_rfm_sql reads them (by the primary key)
         ORDER BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    -- every changed order is at or after from_ts, before and after the change.
    -- The customers with an order at or after from_ts before the change (their
    -- last order) are recomputed from all their lines (below); the others had
    -- only orders before from_ts, which did not change: their totals plus their
    -- lines at or after from_ts (the sum keeps the scale a sum of all gives)
    ids := ARRAY(SELECT t.customer_id FROM crm.rollup_customer_rfm t WHERE t.last_at >= from_ts);
    DELETE FROM crm.rollup_customer_rfm t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    INSERT INTO crm.rollup_customer_rfm AS t (customer_id, first_at, last_at, orders, amount)
    SELECT l.customer_id, min(l.ordered_at), max(l.ordered_at), count(*), sum(l.amount)
      FROM crm.rollup_order_lines l WHERE l.ordered_at >= from_ts AND l.customer_id IS NOT NULL GROUP BY 1
    ON CONFLICT (customer_id) DO UPDATE
       SET last_at = EXCLUDED.last_at, orders = t.orders + EXCLUDED.orders,
           amount = CASE WHEN t.amount IS NULL THEN EXCLUDED.amount WHEN EXCLUDED.amount IS NULL THEN t.amount
                         ELSE t.amount + EXCLUDED.amount END;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the customers recomputed from all their lines (those with lines at or
    -- after from_ts got a partial row above: replaced)
    INSERT INTO crm.rollup_customer_rfm AS t (customer_id, first_at, last_at, orders, amount)
    SELECT l.customer_id, min(l.ordered_at), max(l.ordered_at), count(*), sum(l.amount)
      FROM unnest(ids) AS u(id) JOIN crm.rollup_order_lines l ON l.customer_id = u.id GROUP BY 1
    ON CONFLICT (customer_id) DO UPDATE
       SET first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at, orders = EXCLUDED.orders, amount = EXCLUDED.amount;
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._rollup_rfm_totals(timestamptz) IS
'Keeps crm.rollup_customer_rfm (first and last order, orders, sum of amounts per customer) from crm.rollup_order_lines for every customer with an order at or after the given moment, before or after the change: those with one before the change recomputed from all their lines, the others their totals plus their new lines (everything again for -infinity); rows written.';

-- ---------------------------------------------------------------------------
-- RFM
-- ---------------------------------------------------------------------------

-- SQL text of crm.dashboard_rfm's rows as of $1 (orders at or before it) from
-- the rollups, ordered by customer: crm.rfm_report's scoring (crm._rfm_sql)
-- of the per-customer figures.
CREATE FUNCTION crm._fast_rfm_sql() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT format($q$
SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
  FROM (%s) AS x(customer, recency_days, frequency, monetary, r, f, m, rfm_code, segment)
$q$, crm._rfm_sql($per$
-- per customer with an order by the end: the totals, or for a customer with
-- an order after it the lines up to it (by index); numbered in the order of
-- the ids (the primary key gives it: no sort of the text ids)
SELECT t.customer_id,
       CASE WHEN t.last_at OPERATOR(pg_catalog.<=) $1 THEN t.last_at
            ELSE (SELECT pg_catalog.max(l.ordered_at) FROM crm.rollup_order_lines l
                   WHERE l.customer_id OPERATOR(pg_catalog.=) t.customer_id AND l.ordered_at OPERATOR(pg_catalog.<=) $1) END,
       CASE WHEN t.last_at OPERATOR(pg_catalog.<=) $1 THEN t.orders
            ELSE (SELECT pg_catalog.count(*) FROM crm.rollup_order_lines l
                   WHERE l.customer_id OPERATOR(pg_catalog.=) t.customer_id AND l.ordered_at OPERATOR(pg_catalog.<=) $1) END,
       CASE WHEN t.last_at OPERATOR(pg_catalog.<=) $1 THEN t.amount
            ELSE (SELECT pg_catalog.sum(l.amount) FROM crm.rollup_order_lines l
                   WHERE l.customer_id OPERATOR(pg_catalog.=) t.customer_id AND l.ordered_at OPERATOR(pg_catalog.<=) $1) END,
       pg_catalog.row_number() OVER (ORDER BY t.customer_id)
  FROM crm.rollup_customer_rfm t
 WHERE t.first_at OPERATOR(pg_catalog.<=) $1
$per$))
$fn$;
COMMENT ON FUNCTION crm._fast_rfm_sql() IS
'SQL text ($1 = the moment) of crm.dashboard_rfm''s rows from the rollups (crm.rollup_customer_rfm, and crm.rollup_order_lines for the customers with an order after the moment), scored by crm._rfm_sql: the same rows, ordered by customer.';

-- ---------------------------------------------------------------------------
-- Plan against fact
-- ---------------------------------------------------------------------------

-- The plan metrics answered from the rollups: owner level (dimension NULL)
-- and per channel.
CREATE FUNCTION crm._plan_rollup_metrics(dimension text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN dimension IS NULL
            THEN ARRAY['leads_in', 'new_buyers', 'marketing_spend', 'cac', 'revenue', 'orders', 'average_check',
                       'gross_profit', 'roi', 'deals_won', 'deals_lost']
            WHEN dimension = 'channel'
            THEN ARRAY['leads', 'new_buyers', 'revenue', 'gross_profit', 'spend']
            ELSE '{}'::text[] END
$$;
COMMENT ON FUNCTION crm._plan_rollup_metrics(text) IS
'The plan metrics of a dimension (NULL = the whole business, channel, manager) that crm.dashboard_plan_fact takes from the rollups when they may stand in.';

-- Whether every plan of exactly the period in the dimension names a metric
-- the rollups answer.
CREATE FUNCTION crm._plan_rollup_ok(period_from date, period_to date, dimension text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT NOT EXISTS (SELECT 1 FROM crm.plans p
                    WHERE p.period_from = _plan_rollup_ok.period_from AND p.period_to = _plan_rollup_ok.period_to
                      AND p.dimension IS NOT DISTINCT FROM _plan_rollup_ok.dimension
                      AND p.metric <> ALL (crm._plan_rollup_metrics(_plan_rollup_ok.dimension)))
$$;
COMMENT ON FUNCTION crm._plan_rollup_ok(date, date, text) IS
'True when every plan of exactly the period [from, to] in the dimension (NULL = the whole business) names a metric crm._plan_rollup_metrics lists.';

-- The owner rows crm._plan_fact reads (metric, value) for the metrics of
-- crm._plan_rollup_metrics(NULL), from the daily rollups (new buyers: and the
-- first order without a customer, which the full computation counts as one
-- buyer), as crm.owner_dashboard computes them.
CREATE OR REPLACE FUNCTION crm._fast_plan_owner(period_from date, period_to date) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
    res jsonb;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard', period_from, period_to);
    -- the error of the full computation for unknown stages
    PERFORM crm._deal_check_stages(b.cur_to);
    WITH s AS (
        SELECT r.metric AS m, sum(r.value) AS c
          FROM crm.rollup_daily r
         WHERE r.day >= period_from AND r.day <= period_to AND r.dimension = 'all'
           AND r.metric IN ('leads_in', 'new_buyers', 'marketing_spend', 'revenue', 'orders', 'gross_profit',
                            'deals_won', 'deals_lost')
         GROUP BY 1),
    a AS (
        SELECT max(s.c) FILTER (WHERE s.m = 'leads_in') AS c_leads,
               -- (new_buyers of the daily rollups count the orders without a customer as one buyer)
               coalesce(max(s.c) FILTER (WHERE s.m = 'new_buyers'), 0) AS c_new,
               max(s.c) FILTER (WHERE s.m = 'marketing_spend') AS c_spend,
               max(s.c) FILTER (WHERE s.m = 'revenue') AS c_rev,
               coalesce(max(s.c) FILTER (WHERE s.m = 'orders'), 0) AS c_ord,
               max(s.c) FILTER (WHERE s.m = 'gross_profit') AS c_gp,
               coalesce(max(s.c) FILTER (WHERE s.m = 'deals_won'), 0) AS c_won,
               coalesce(max(s.c) FILTER (WHERE s.m = 'deals_lost'), 0) AS c_lost
          FROM s)
    SELECT jsonb_agg(jsonb_build_object('metric', v.name, 'value', v.cur) ORDER BY v.ord) INTO res
      FROM a, LATERAL (VALUES
        (1, 'leads_in', coalesce(a.c_leads, 0)),
        (2, 'new_buyers', a.c_new),
        (4, 'marketing_spend', coalesce(a.c_spend, 0)),
        (5, 'cac', round(coalesce(a.c_spend, 0) / nullif(a.c_new, 0), 2)),
        (6, 'revenue', coalesce(a.c_rev, 0)),
        (7, 'orders', a.c_ord),
        (8, 'average_check', round(a.c_rev / nullif(a.c_ord, 0), 2)),
        (10, 'gross_profit', coalesce(a.c_gp, 0)),
        (11, 'roi', round((100.0 * (coalesce(a.c_gp, 0) - a.c_spend)) / nullif(a.c_spend, 0), 2)),
        (13, 'deals_won', a.c_won),
        (20, 'deals_lost', a.c_lost)) AS v(ord, name, cur);
    RETURN res;
END
$$;
COMMENT ON FUNCTION crm._fast_plan_owner(date, date) IS
'For crm.dashboard_plan_fact: the rows (metric, value) of crm.owner_dashboard(from, to) for the metrics of crm._plan_rollup_metrics(NULL), from the daily rollups, as a jsonb array.';

-- The channel rows crm._plan_fact reads (channel and the columns of
-- crm._plan_rollup_metrics('channel')), as crm._fast_channels computes them:
-- the buyers' figures from the order state, leads and spend of the period
-- from their sources.
CREATE FUNCTION crm._fast_plan_channels(period_from date, period_to date) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
DECLARE
    b record;
    res jsonb;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    -- the sources the state comes from checked as the full path does (same errors)
    PERFORM crm._source_sql('customers'), crm._source_sql('orders');
    EXECUTE pg_catalog.format($sql$
WITH
p AS (
    SELECT l.customer_id, pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
      FROM crm.rollup_order_lines l
     WHERE l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
b AS (
    SELECT t.customer_id, t.first_at, p.rev, p.gp
      FROM crm.rollup_customer_orders t LEFT JOIN p ON p.customer_id OPERATOR(pg_catalog.=) t.customer_id
     WHERE t.first_at OPERATOR(pg_catalog.<) $2 AND t.customer_id IS NOT NULL
    UNION ALL
    -- the orders without a customer: one group, as in the full query
    SELECT NULL, t.first_at, p.rev, p.gp
      FROM crm.rollup_customer_orders t LEFT JOIN p ON p.customer_id IS NULL
     WHERE t.first_at OPERATOR(pg_catalog.<) $2 AND t.customer_id IS NULL),
bc AS (
    SELECT coalesce(cu.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit
      FROM b LEFT JOIN crm.rollup_customer_info cu ON cu.customer_id OPERATOR(pg_catalog.=) b.customer_id GROUP BY 1),
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads
      FROM %1$s
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %2$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
ch AS (SELECT channel FROM bc UNION SELECT channel FROM ld UNION SELECT channel FROM sp)
SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'channel', ch.channel, 'leads', coalesce(ld.leads, 0), 'new_buyers', coalesce(bc.new_buyers, 0),
           'revenue', coalesce(bc.revenue, 0), 'gross_profit', coalesce(bc.gross_profit, 0), 'spend', coalesce(sp.spend, 0))
         ORDER BY ch.channel)
  FROM ch LEFT JOIN bc ON bc.channel OPERATOR(pg_catalog.=) ch.channel LEFT JOIN ld ON ld.channel OPERATOR(pg_catalog.=) ch.channel
          LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) ch.channel
$sql$, crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    INTO res USING b.cur_from, b.cur_to;
    RETURN res;
END
$$;
COMMENT ON FUNCTION crm._fast_plan_channels(date, date) IS
'For crm.dashboard_plan_fact: the rows of crm.dashboard_channels(from, to) with the columns of crm._plan_rollup_metrics(''channel'') (leads, new buyers, revenue, gross profit, spend), the buyers'' figures from the rollups, leads and spend from their sources, as a jsonb array.';
CREATE OR REPLACE FUNCTION crm.dashboard_rfm(as_of date)
RETURNS TABLE (customer_id text, recency_days int, frequency bigint, monetary numeric,
               r int, f int, m int, segment text)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    q text;
    e timestamptz;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    q := 'SELECT customer_id, ordered_at, amount FROM ' OPERATOR(pg_catalog.||) crm._source_sql('orders');
    e := (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval;
    -- from the rollups when they may stand in (crm._rollups_usable, docs/rollups.md);
    -- the orders query checked first as crm.rfm_report checks it (the same errors)
    IF crm._rollups_usable() THEN
        PERFORM crm._check_inner_query('rfm_report', q, ARRAY['customer any', 'ordered_at timestamptz', 'amount numeric']);
        RETURN QUERY EXECUTE crm._fast_rfm_sql() USING e;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
      FROM crm.rfm_report(q, e) AS x
     ORDER BY x.customer;
END
$$;
CREATE OR REPLACE FUNCTION crm.dashboard_plan_fact(period_from date, period_to date, as_of date)
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
CREATE OR REPLACE FUNCTION crm._rollup_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    src_o text := crm._source_sql('orders', 'o');
    go text[] := crm._rollup_gsets('o', 'channel', 'manager');
    gn text[] := crm._rollup_gsets('nb', 'channel', 'manager');
BEGIN
    -- first: the order lines and per-customer totals (src/dashboard_fast_customers.sql);
    -- the first order of the orders without a customer is read from them below
    PERFORM crm._rollup_fast_orders(from_ts);
    -- first orders at or after the bound may have changed; earlier ones did not
    DELETE FROM crm.rollup_customers rc WHERE rc.first_at OPERATOR(pg_catalog.>=) from_ts;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customers AS rc (customer_id, first_at)
SELECT f.cid, f.first_at
  FROM (SELECT o.customer_id::pg_catalog.text AS cid, pg_catalog.min(o.ordered_at) AS first_at
          FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.customer_id IS NOT NULL GROUP BY 1) AS f
 -- customers whose first order is before the bound keep it
 WHERE NOT EXISTS (SELECT 1 FROM crm.rollup_customers x WHERE x.customer_id OPERATOR(pg_catalog.=) f.cid)
$sql$, src_o) USING from_ts;
    -- an order counts once per customers row of its customer in the channel and
    -- manager rows (as crm.dashboard_channels and crm.dashboard_managers join
    -- them) and once in the rows of all (as crm.owner_dashboard counts it):
    -- first_row marks one of its rows
    EXECUTE pg_catalog.format($sql$
WITH od AS MATERIALIZED (
    SELECT o.customer_id AS cust, o.ordered_at, o.amount, o.cost FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1),
-- the customers rows of the changed orders' customers, numbered per customer
cc AS MATERIALIZED (
    SELECT c.customer_id AS cust, c.channel::pg_catalog.text AS channel, c.manager_id::pg_catalog.text AS manager,
           pg_catalog.row_number() OVER (PARTITION BY c.customer_id ORDER BY c.channel::pg_catalog.text, c.manager_id::pg_catalog.text) AS rn
      FROM %2$s WHERE EXISTS (SELECT 1 FROM od WHERE od.cust OPERATOR(pg_catalog.=) c.customer_id)),
o AS MATERIALIZED (
    SELECT od.cust::pg_catalog.text AS cid, od.ordered_at::pg_catalog.date AS day, od.amount, od.cost,
           cc.channel, cc.manager, cc.rn, coalesce(cc.rn OPERATOR(pg_catalog.=) 1, true) AS first_row
      FROM od LEFT JOIN cc ON cc.cust OPERATOR(pg_catalog.=) od.cust),
nb AS (
    SELECT rc.first_at::pg_catalog.date AS day, d.channel, d.manager, d.first_row
      FROM crm.rollup_customers rc
      -- one row per customers row of the customer (rn)
      JOIN (SELECT DISTINCT o.cid, o.rn, o.channel, o.manager, o.first_row FROM o) AS d ON d.cid OPERATOR(pg_catalog.=) rc.customer_id
     WHERE rc.first_at OPERATOR(pg_catalog.>=) $1
    UNION ALL
    -- the orders without a customer are one buyer (one group, as the full queries count them)
    SELECT t.first_at::pg_catalog.date, NULL, NULL, true
      FROM crm.rollup_customer_orders t
     WHERE t.customer_id IS NULL AND t.first_at OPERATOR(pg_catalog.>=) $1),
a AS (
    SELECT o.day, %3$s AS dimension, %4$s AS key,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.count(*) FILTER (WHERE o.first_row) ELSE pg_catalog.count(*) END AS n,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.sum(o.amount) FILTER (WHERE o.first_row) ELSE pg_catalog.sum(o.amount) END AS revenue,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) FILTER (WHERE o.first_row)
                ELSE pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) END AS gp,
           NULL::pg_catalog.int8 AS nb
      FROM o GROUP BY %5$s
    UNION ALL
    SELECT nb.day, %6$s, %7$s, NULL, NULL, NULL,
           CASE WHEN %6$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.count(*) FILTER (WHERE nb.first_row) ELSE pg_catalog.count(*) END
      FROM nb GROUP BY %8$s)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, a.dimension, a.key, m.value
  FROM a CROSS JOIN LATERAL (VALUES ('orders'::pg_catalog.text, a.n::pg_catalog.numeric), ('revenue', a.revenue),
                                    ('gross_profit', a.gp), ('new_buyers', a.nb::pg_catalog.numeric)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, src_o, crm._source_sql('customers', 'c'), go[1], go[2], go[3], gn[1], gn[2], gn[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM crm._rollup_todo_orders(from_ts);  -- first two orders per customer (src/dashboard_fast_todo.sql)
    PERFORM crm._rollup_rfm_totals(from_ts);  -- per-customer RFM totals (src/dashboard_fast_planrfm.sql)
    RETURN n;
END
$$;
-- rollups built before this version hold no RFM totals: the next refresh rebuilds them in full
UPDATE crm.rollup_status SET needs_full = true;
-- ==== end of section planrfm_fast ====
-- ==== section percust: the customer reports from one per-customer table ====
ALTER TABLE crm.rollup_customer_orders ADD COLUMN gp_n bigint;
COMMENT ON TABLE crm.rollup_customer_orders IS
'Rollup state per customer with orders (derived, not dumped; customer_id NULL = the orders without a customer): first and last order, gross profit (amount - cost) of all orders and the number of orders with one (gp_n).';
CREATE TABLE crm.rollup_customer_state (
    customer_id      text,
    info_n           integer NOT NULL,
    created_at       timestamptz,
    channel          text,
    manager_id       text,
    since            timestamptz,
    first_order_at   timestamptz,
    last_order_at    timestamptz,
    gp               numeric,
    gp_n             bigint,
    first_contact_at timestamptz,
    last_contact_at  timestamptz,
    k1_rev           numeric,
    k1_cls           text,
    k1_abc           text,
    k1_contact       timestamptz,
    k2_rev           numeric,
    k2_cls           text,
    k2_abc           text,
    k2_contact       timestamptz
);
COMMENT ON TABLE crm.rollup_customer_state IS
'Rollup state (derived, not dumped): one row per customer of the customers copy, the order totals or the contact totals (customer_id NULL = the customers rows without an id): the number of customers rows (info_n) and, when it is 1, that row''s created_at, channel and manager; the earliest created_at (since); first and last order and gross profit (crm.rollup_customer_orders) with the number of orders with a gross profit (gp_n); first and last real contact (crm.rollup_customer_contacts); for the ends of crm.rollup_customer_state_ends (slot 1: k1_*, slot 2: k2_*) the revenue and classes kept in crm.rollup_customer_classes and the last real contact before the end.';
CREATE UNIQUE INDEX ON crm.rollup_customer_state (customer_id) NULLS NOT DISTINCT;

CREATE TABLE crm.rollup_customer_state_ends (
    slot   integer PRIMARY KEY,
    end_at timestamptz NOT NULL UNIQUE
);
COMMENT ON TABLE crm.rollup_customer_state_ends IS
'Rollup state (derived, not dumped): the moment whose kept classes crm.rollup_customer_state holds in its columns k1_* (slot 1) and k2_* (slot 2).';

CREATE OR REPLACE FUNCTION crm._rollup_fast_state_rebuild() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB'
-- every customer: hash joins (a caller keeping a few customers turns them off)
SET enable_hashjoin = on
SET enable_mergejoin = on
AS $$
DECLARE
    n  bigint;
    e1 timestamptz;
    e2 timestamptz;
BEGIN
    TRUNCATE crm.rollup_customer_state, crm.rollup_customer_state_ends;
    INSERT INTO crm.rollup_customer_state_ends (slot, end_at)
    SELECT row_number() OVER (ORDER BY x.end_at DESC), x.end_at FROM crm.rollup_customer_class_ends x;
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    INSERT INTO crm.rollup_customer_state
    SELECT coalesce(i.customer_id, o.customer_id, c.customer_id), coalesce(i.n, 0), i.created_at, i.channel, i.manager_id, i.since,
           o.first_at, o.last_at, o.gp, o.gp_n, c.first_at, c.last_at,
           k1.rev, k1.cov_class, k1.abc_class,
           CASE WHEN c.last_at < e1 THEN c.last_at WHEN c.first_at < e1 THEN ce.k1_contact END,
           k2.rev, k2.cov_class, k2.abc_class,
           CASE WHEN c.last_at < e2 THEN c.last_at WHEN c.first_at < e2 THEN ce.k2_contact END
      FROM (SELECT ci.customer_id, count(*)::integer AS n,
                   CASE WHEN count(*) = 1 THEN min(ci.created_at) END AS created_at,
                   CASE WHEN count(*) = 1 THEN min(ci.channel) END AS channel,
                   CASE WHEN count(*) = 1 THEN min(ci.manager_id) END AS manager_id,
                   min(ci.created_at) AS since
              FROM crm.rollup_customer_info ci GROUP BY 1) i
      FULL JOIN (SELECT t.* FROM crm.rollup_customer_orders t WHERE t.customer_id IS NOT NULL) o ON o.customer_id = i.customer_id
      FULL JOIN crm.rollup_customer_contacts c ON c.customer_id = coalesce(i.customer_id, o.customer_id)
      LEFT JOIN crm.rollup_customer_classes k1 ON k1.end_at = e1 AND k1.customer_id = o.customer_id
      LEFT JOIN crm.rollup_customer_classes k2 ON k2.end_at = e2 AND k2.customer_id = o.customer_id
      -- the last real contact before each end, for the customers contacted at or after it
      LEFT JOIN (SELECT x.customer_id, max(x.occurred_at) FILTER (WHERE x.occurred_at < e1) AS k1_contact,
                        max(x.occurred_at) FILTER (WHERE x.occurred_at < e2) AS k2_contact
                   FROM crm.rollup_real_contacts x
                  WHERE x.customer_id IN (SELECT t.customer_id FROM crm.rollup_customer_contacts t WHERE t.last_at >= least(e1, e2))
                  GROUP BY 1) ce ON ce.customer_id = c.customer_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state_rebuild() IS
'Rebuilds crm.rollup_customer_state (one row per customer) and crm.rollup_customer_state_ends from the customers copy, the order and contact totals and the kept classes; rows written.';

CREATE FUNCTION crm._rollup_fast_state(ids text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the given customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n  bigint;
    m  bigint := 0;
    e1 timestamptz;
    e2 timestamptz;
    nul boolean := array_position(ids, NULL) IS NOT NULL;
BEGIN
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    ids := ARRAY(SELECT DISTINCT u.id FROM unnest(ids) AS u(id) WHERE u.id IS NOT NULL);
    DELETE FROM crm.rollup_customer_state s USING unnest(ids) AS u(id) WHERE s.customer_id = u.id;
    INSERT INTO crm.rollup_customer_state
    SELECT u.id, i.n, i.created_at, i.channel, i.manager_id, i.since,
           o.first_at, o.last_at, o.gp, o.gp_n, c.first_at, c.last_at,
           k1.rev, k1.cov_class, k1.abc_class,
           CASE WHEN c.last_at < e1 THEN c.last_at
                WHEN c.first_at < e1 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x WHERE x.customer_id = u.id AND x.occurred_at < e1) END,
           k2.rev, k2.cov_class, k2.abc_class,
           CASE WHEN c.last_at < e2 THEN c.last_at
                WHEN c.first_at < e2 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x WHERE x.customer_id = u.id AND x.occurred_at < e2) END
      FROM unnest(ids) AS u(id)
     CROSS JOIN LATERAL (
            SELECT count(*)::integer AS n,
                   CASE WHEN count(*) = 1 THEN min(ci.created_at) END AS created_at,
                   CASE WHEN count(*) = 1 THEN min(ci.channel) END AS channel,
                   CASE WHEN count(*) = 1 THEN min(ci.manager_id) END AS manager_id,
                   min(ci.created_at) AS since
              FROM crm.rollup_customer_info ci WHERE ci.customer_id = u.id) i
      LEFT JOIN crm.rollup_customer_orders o ON o.customer_id = u.id
      LEFT JOIN crm.rollup_customer_contacts c ON c.customer_id = u.id
      LEFT JOIN crm.rollup_customer_classes k1 ON k1.end_at = e1 AND k1.customer_id = u.id
      LEFT JOIN crm.rollup_customer_classes k2 ON k2.end_at = e2 AND k2.customer_id = u.id
     WHERE i.n > 0 OR o.customer_id IS NOT NULL OR c.customer_id IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF nul THEN
        DELETE FROM crm.rollup_customer_state s WHERE s.customer_id IS NULL;
        INSERT INTO crm.rollup_customer_state (customer_id, info_n, created_at, channel, manager_id, since)
        SELECT NULL, count(*), CASE WHEN count(*) = 1 THEN min(ci.created_at) END, CASE WHEN count(*) = 1 THEN min(ci.channel) END,
               CASE WHEN count(*) = 1 THEN min(ci.manager_id) END, min(ci.created_at)
          FROM crm.rollup_customer_info ci WHERE ci.customer_id IS NULL HAVING count(*) > 0;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state(text[]) IS
'Recomputes the rows of crm.rollup_customer_state of the given customers (a NULL element: the customers rows without an id) from the customers copy, the order and contact totals and the kept classes; rows written.';

CREATE FUNCTION crm._rollup_fast_state_part(part text, ids text[], from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the given customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n    bigint;
    e1   timestamptz;
    e2   timestamptz;
    rest text[];
    done text[];
BEGIN
    IF part = 'orders' THEN
        WITH w AS (
            UPDATE crm.rollup_customer_state s SET first_order_at = o.first_at, last_order_at = o.last_at, gp = o.gp, gp_n = o.gp_n
              FROM unnest(ids) AS u(id) JOIN crm.rollup_customer_orders o ON o.customer_id = u.id
             WHERE s.customer_id = u.id
            RETURNING s.customer_id)
        SELECT pg_catalog.array_agg(w.customer_id) INTO done FROM w;
    ELSE
        SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
          FROM crm.rollup_customer_state_ends x;
        WITH w AS (
            UPDATE crm.rollup_customer_state s SET first_contact_at = c.first_at, last_contact_at = c.last_at,
                   k1_contact = CASE WHEN from_ts >= e1 THEN s.k1_contact
                                     WHEN c.last_at < e1 THEN c.last_at
                                     WHEN c.first_at < e1 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x
                                                                 WHERE x.customer_id = u.id AND x.occurred_at < e1) END,
                   k2_contact = CASE WHEN from_ts >= e2 THEN s.k2_contact
                                     WHEN c.last_at < e2 THEN c.last_at
                                     WHEN c.first_at < e2 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x
                                                                 WHERE x.customer_id = u.id AND x.occurred_at < e2) END
              FROM unnest(ids) AS u(id) JOIN crm.rollup_customer_contacts c ON c.customer_id = u.id
             WHERE s.customer_id = u.id
            RETURNING s.customer_id)
        SELECT pg_catalog.array_agg(w.customer_id) INTO done FROM w;
    END IF;
    n := coalesce(cardinality(done), 0);
    -- the others: new to the table, or without orders / contacts now
    rest := ARRAY(SELECT unnest(ids) EXCEPT SELECT unnest(done));
    IF cardinality(rest) > 0 THEN
        n := n + crm._rollup_fast_state(rest);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state_part(text, text[], timestamptz) IS
'Sets in crm.rollup_customer_state the order totals (part orders) or the contact totals and last contacts before the kept ends (part contacts, changes from the given moment on) of the given customers, in place; customers new to the table or without orders / contacts any more through crm._rollup_fast_state; rows written.';

CREATE OR REPLACE FUNCTION crm._rollup_fast_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    m bigint;
    cust_ts timestamptz := from_ts;
    ids text[];
BEGIN
    -- during crm.refresh_rollups the changes it took are in pg_temp.crm_rollup_taken:
    -- the customers copy is read again only from the earliest change of a table the
    -- customers source reads (not at all when none changed)
    IF pg_catalog.isfinite(from_ts) AND pg_catalog.to_regclass('pg_temp.crm_rollup_taken') IS NOT NULL THEN
        SELECT pg_catalog.min(t.bound) INTO cust_ts FROM pg_temp.crm_rollup_taken t
         WHERE t.relid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.relid FROM crm.rollup_capture c WHERE c.kind OPERATOR(pg_catalog.=) 'customers'));
        IF cust_ts IS NOT NULL THEN
            cust_ts := greatest(cust_ts, from_ts);
        END IF;
    END IF;
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_order_lines, crm.rollup_customer_info;
    ELSE
        DELETE FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) from_ts;
        -- the customers whose rows are read again: their "since" in the kept classes is set again below
        WITH d AS (DELETE FROM crm.rollup_customer_info c WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL AND cust_ts IS NOT NULL
                   RETURNING c.customer_id)
        SELECT pg_catalog.array_agg(d.customer_id) INTO ids FROM d;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_order_lines (customer_id, ordered_at, amount, cost)
SELECT o.customer_id::pg_catalog.text, o.ordered_at, o.amount, o.cost FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1
$sql$, crm._source_sql('orders', 'o')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    m := 0;
    IF cust_ts IS NOT NULL THEN
        EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customer_info (customer_id, created_at, channel, manager_id)
SELECT c.customer_id::pg_catalog.text, c.created_at, c.channel::pg_catalog.text, c.manager_id::pg_catalog.text
  FROM %1$s WHERE c.created_at OPERATOR(pg_catalog.>=) $1 OR c.created_at IS NULL
        $sql$, crm._source_sql('customers', 'c')) USING cust_ts;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    n := n OPERATOR(pg_catalog.+) m OPERATOR(pg_catalog.+) crm._rollup_fast_order_totals(from_ts);
    IF cust_ts IS NOT NULL AND pg_catalog.isfinite(from_ts) THEN
        -- "since" of the class-A customers whose customers rows changed (the deleted and the
        -- inserted ones), at the kept ends; their first order (before the end) changes only
        -- with an order before the end, and then crm._rollup_fast_classes rebuilds the end
        ids := ids OPERATOR(pg_catalog.||) ARRAY(SELECT c.customer_id FROM crm.rollup_customer_info c
                                                   WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL);
        UPDATE crm.rollup_customer_classes k
           SET since = coalesce((SELECT pg_catalog.min(i.created_at) FROM crm.rollup_customer_info i
                                  WHERE i.customer_id OPERATOR(pg_catalog.=) k.customer_id),
                                (SELECT t.first_at FROM crm.rollup_customer_orders t
                                  WHERE t.customer_id OPERATOR(pg_catalog.=) k.customer_id))
         WHERE k.abc_class OPERATOR(pg_catalog.=) 'A' AND k.customer_id OPERATOR(pg_catalog.=) ANY (ids);
        -- their rows of the per-customer table
        n := n OPERATOR(pg_catalog.+) crm._rollup_fast_state(ids);
    END IF;
    RETURN n OPERATOR(pg_catalog.+) crm._rollup_fast_classes(from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_orders(timestamptz) IS
'Rollup state of the customer reports, part orders: the copies of the orders and customers sources (crm.rollup_order_lines, crm.rollup_customer_info), the per-customer order totals (crm.rollup_customer_orders) from the given moment on and the classes at the dashboard period''s ends (crm.rollup_customer_classes); rows written.';

CREATE OR REPLACE FUNCTION crm._rollup_fast_order_totals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n    bigint;
    m    bigint := 0;
    ids  text[];
    nul  boolean;
BEGIN
    -- a full rebuild reads everything: hash joins again (the SET above is for the few changed rows)
    IF NOT pg_catalog.isfinite(from_ts) THEN
        PERFORM pg_catalog.set_config('enable_hashjoin', 'on', true), pg_catalog.set_config('enable_mergejoin', 'on', true);
    END IF;
    IF from_ts = '-infinity' THEN
        TRUNCATE crm.rollup_customer_orders;
        INSERT INTO crm.rollup_customer_orders (customer_id, first_at, last_at, gp, gp_n)
        SELECT l.customer_id, min(l.ordered_at), max(l.ordered_at), sum(l.amount - l.cost), count(l.amount - l.cost)
          FROM crm.rollup_order_lines l GROUP BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    -- the customers with an order at or after from_ts, before or after the change
    ids := ARRAY(SELECT t.customer_id FROM crm.rollup_customer_orders t WHERE t.last_at >= from_ts AND t.customer_id IS NOT NULL
                 UNION
                 SELECT l.customer_id FROM crm.rollup_order_lines l WHERE l.ordered_at >= from_ts AND l.customer_id IS NOT NULL);
    nul := EXISTS (SELECT 1 FROM crm.rollup_customer_orders t WHERE t.last_at >= from_ts AND t.customer_id IS NULL)
        OR EXISTS (SELECT 1 FROM crm.rollup_order_lines l WHERE l.ordered_at >= from_ts AND l.customer_id IS NULL);
    DELETE FROM crm.rollup_customer_orders t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    INSERT INTO crm.rollup_customer_orders (customer_id, first_at, last_at, gp, gp_n)
    SELECT l.customer_id, min(l.ordered_at), max(l.ordered_at), sum(l.amount - l.cost), count(l.amount - l.cost)
      FROM unnest(ids) AS u(id) JOIN crm.rollup_order_lines l ON l.customer_id = u.id GROUP BY 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the per-customer table for the same customers
    n := n + crm._rollup_fast_state_part('orders', ids, from_ts);
    IF nul THEN
        DELETE FROM crm.rollup_customer_orders t WHERE t.customer_id IS NULL;
        INSERT INTO crm.rollup_customer_orders (customer_id, first_at, last_at, gp, gp_n)
        SELECT NULL, min(l.ordered_at), max(l.ordered_at), sum(l.amount - l.cost), count(l.amount - l.cost)
          FROM crm.rollup_order_lines l WHERE l.customer_id IS NULL HAVING count(*) > 0;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_order_totals(timestamptz) IS
'Recomputes crm.rollup_customer_orders (first and last order, gross profit per customer) for every customer with an order at or after the given moment, before or after the change (everything for -infinity), from crm.rollup_order_lines; rows written.';

CREATE OR REPLACE FUNCTION crm._rollup_fast_classes(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p    record;
    ends timestamptz[];
    e    timestamptz;
    n    bigint;
    nn   bigint := 0;
    -- a full refresh (-infinity) rebuilds the per-customer table here, once
    changed boolean := from_ts = '-infinity';
BEGIN
    BEGIN
        SELECT * INTO p FROM crm.dashboard_period();
        -- only ends already past: the end of a running period (this month) would
        -- be rebuilt by every refresh after new orders; its classes are computed
        -- when read
        ends := ARRAY(SELECT x FROM unnest(ARRAY[(p.period_to + 1)::timestamptz, p.period_from::timestamptz]) AS x
                       WHERE x <= now());
    EXCEPTION WHEN OTHERS THEN
        ends := '{}';   -- a bad period setting: no classes kept, the reports compute them
    END;
    FOR e IN SELECT x.end_at FROM crm.rollup_customer_class_ends x WHERE x.end_at <> ALL (ends) LOOP
        DELETE FROM crm.rollup_customer_classes c WHERE c.end_at = e;
        DELETE FROM crm.rollup_customer_class_ends x WHERE x.end_at = e;
        changed := true;
    END LOOP;
    FOREACH e IN ARRAY ends LOOP
        IF from_ts < e OR NOT EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = e) THEN
            DELETE FROM crm.rollup_customer_classes c WHERE c.end_at = e;
            changed := true;
            BEGIN
                INSERT INTO crm.rollup_customer_class_ends (end_at) VALUES (e) ON CONFLICT DO NOTHING;
                -- class A: the customer since as the owner dashboard's overdue rule reads it
                -- (the earliest created_at of the customers copy, else the first order)
                INSERT INTO crm.rollup_customer_classes (end_at, customer_id, rev, cov_class, abc_class, since)
                SELECT e, k.customer_id, k.rev, k.cls, k.abc,
                       CASE WHEN k.abc = 'A' THEN coalesce(ci.created_at, t.first_at,
                            CASE WHEN k.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL) END) END
                  FROM crm._fast_classes_live(e) k
                  LEFT JOIN (SELECT i.customer_id, min(i.created_at) AS created_at FROM crm.rollup_customer_info i GROUP BY 1) ci
                         ON ci.customer_id = k.customer_id AND k.abc = 'A'
                  LEFT JOIN crm.rollup_customer_orders t ON t.customer_id = k.customer_id AND k.abc = 'A';
                GET DIAGNOSTICS n = ROW_COUNT;
                nn := nn + n;
            EXCEPTION WHEN data_exception THEN
                -- revenue the classes cannot rank (a NaN amount: crm.abc_class refuses it): no
                -- classes kept for this end, so the refresh goes on and the reports compute them
                -- when read, raising the full computation's error where it raises one
                DELETE FROM crm.rollup_customer_class_ends x WHERE x.end_at = e;
            END;
        END IF;
    END LOOP;
    -- the classes the per-customer table holds changed: it is rebuilt
    IF changed THEN
        nn := nn + crm._rollup_fast_state_rebuild();
    END IF;
    RETURN nn;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_classes(timestamptz) IS
'Keeps crm.rollup_customer_classes for the end and the start of the dashboard period: rebuilt for an end when the orders changed before it (the given moment is before it) or the period moved; an end whose classes raise a data error (a NaN amount) is not kept (the reports compute it when read); rows written.';

CREATE OR REPLACE FUNCTION crm._rollup_fast_contact_totals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n   bigint;
    ids text[];
BEGIN
    -- a full rebuild reads everything: hash joins again (the SET above is for the few changed rows)
    IF NOT pg_catalog.isfinite(from_ts) THEN
        PERFORM pg_catalog.set_config('enable_hashjoin', 'on', true), pg_catalog.set_config('enable_mergejoin', 'on', true);
    END IF;
    IF from_ts = '-infinity' THEN
        TRUNCATE crm.rollup_customer_contacts;
        INSERT INTO crm.rollup_customer_contacts (customer_id, first_at, last_at)
        SELECT x.customer_id, min(x.occurred_at), max(x.occurred_at) FROM crm.rollup_real_contacts x GROUP BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n + crm._rollup_fast_state_rebuild();
    END IF;
    ids := ARRAY(SELECT t.customer_id FROM crm.rollup_customer_contacts t WHERE t.last_at >= from_ts
                 UNION
                 SELECT x.customer_id FROM crm.rollup_real_contacts x WHERE x.occurred_at >= from_ts);
    DELETE FROM crm.rollup_customer_contacts t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    INSERT INTO crm.rollup_customer_contacts (customer_id, first_at, last_at)
    SELECT x.customer_id, min(x.occurred_at), max(x.occurred_at)
      FROM unnest(ids) AS u(id) JOIN crm.rollup_real_contacts x ON x.customer_id = u.id GROUP BY 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the per-customer table for the same customers
    RETURN n + crm._rollup_fast_state_contacts(ids, from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_contact_totals(timestamptz) IS
'Recomputes crm.rollup_customer_contacts (first and last real contact per customer) for every customer with a real contact at or after the given moment, before or after the change (everything for -infinity), from crm.rollup_real_contacts; rows written.';

CREATE FUNCTION crm._fast_coverage_sql(as_of timestamptz, tail text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slot integer;
    rev  text;
    cls  text;
    lv   text := '';
BEGIN
    SELECT x.slot INTO slot FROM crm.rollup_customer_state_ends x WHERE x.end_at = as_of;
    IF slot IS NOT NULL THEN
        rev := format('s.k%s_rev', slot);
        cls := format('s.k%s_cls', slot);
    ELSE
        rev := 'lv.rev';
        cls := 'lv.cls';
        lv := 'LEFT JOIN lv ON lv.customer_id = s.customer_id';
    END IF;
    RETURN format($sql$
WITH
lv AS (SELECT k.customer_id, k.rev, k.cls FROM crm._fast_classes_live($1) k WHERE k.customer_id IS NOT NULL AND NOT %5$L),
pol AS MATERIALIZED (SELECT crm._dashboard_coverage_interval('A') AS a, crm._dashboard_coverage_interval('B') AS b,
                            crm._dashboard_coverage_interval('C') AS c),
-- per customers row: the customers with one row, those with more, the rows without an id
c AS (
    SELECT s.customer_id, s.manager_id, s.channel, s.created_at, %1$s AS rev, coalesce(%2$s, 'C') AS cls,
           %6$s AS kc, s.first_contact_at, s.last_contact_at
      FROM crm.rollup_customer_state s %3$s
     WHERE s.info_n = 1 AND s.created_at < $1 AND s.customer_id IS NOT NULL
    UNION ALL
    SELECT i.customer_id, i.manager_id, i.channel, i.created_at, %1$s, coalesce(%2$s, 'C'), %6$s, s.first_contact_at, s.last_contact_at
      FROM crm.rollup_customer_state s %3$s JOIN crm.rollup_customer_info i ON i.customer_id = s.customer_id
     WHERE s.info_n > 1 AND i.created_at < $1
    UNION ALL
    SELECT i.customer_id, i.manager_id, i.channel, i.created_at, NULL, 'C', NULL, NULL, NULL
      FROM crm.rollup_customer_info i WHERE i.customer_id IS NULL AND i.created_at < $1),
r AS (
    SELECT c.customer_id, c.manager_id, c.channel, c.rev, c.cls, x.last_at,
           coalesce(x.last_at, c.created_at) + x.iv AS due,
           coalesce((coalesce(x.last_at, c.created_at) + x.iv) >= $1, false) AS covered
      FROM c CROSS JOIN pol,
      LATERAL (SELECT CASE c.cls WHEN 'A' THEN pol.a WHEN 'B' THEN pol.b ELSE pol.c END AS iv,
                      CASE WHEN %5$L THEN c.kc
                           WHEN c.last_contact_at < $1 THEN c.last_contact_at
                           WHEN c.first_contact_at < $1 THEN (SELECT max(q.occurred_at) FROM crm.rollup_real_contacts q
                                                               WHERE q.customer_id = c.customer_id AND q.occurred_at < $1) END AS last_at) AS x)
%4$s
$sql$, rev, cls, lv, tail, slot IS NOT NULL, CASE WHEN slot IS NULL THEN 'NULL::timestamptz' ELSE format('s.k%s_contact', slot) END);
END
$$;
COMMENT ON FUNCTION crm._fast_coverage_sql(timestamptz, text) IS
'The query of crm._fast_coverage as of the moment ($1), with the given final SELECT over its rows r (customer_id, manager_id, channel, rev, cls, last_at, due, covered): from crm.rollup_customer_state, the classes kept there or computed from the order lines.';

CREATE OR REPLACE FUNCTION crm._fast_coverage(as_of timestamptz)
RETURNS TABLE (customer_id text, manager_id text, channel text, revenue_12m numeric, abc_class text,
               last_contact timestamptz, next_due timestamptz, covered boolean)
LANGUAGE plpgsql STABLE
ROWS 100000   -- per customer: the planner hashes it
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
BEGIN
    RETURN QUERY EXECUTE crm._fast_coverage_sql(as_of, 'SELECT r.customer_id, r.manager_id, r.channel, coalesce(r.rev, 0), r.cls, r.last_at, r.due, r.covered FROM r')
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm._fast_coverage(timestamptz) IS
'crm.dashboard_coverage(as_of) computed from the rollups (one pass over crm.rollup_customer_state; the classes computed from crm.rollup_order_lines and the contacts copy probed when as_of is not an end the state keeps): the same rows.';

CREATE OR REPLACE FUNCTION crm._fast_channels(period_from date, period_to date)
RETURNS TABLE (channel text, leads bigint, new_buyers bigint, conversion_pct numeric, revenue numeric,
               gross_profit numeric, spend numeric, cac numeric, roi_pct numeric, ltv numeric, ltv_cac numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    -- the sources the state comes from checked as the full path does (same errors)
    PERFORM crm._source_sql('customers'), crm._source_sql('orders');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
-- the period's revenue and gross profit per customer
p AS (
    SELECT l.customer_id, pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
      FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
-- the orders at or after the end per customer: gross profit to date is the total less these
-- (NULL when no order before the end has a gross profit)
a AS (
    SELECT l.customer_id, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp,
           pg_catalog.count(l.amount OPERATOR(pg_catalog.-) l.cost) AS n
      FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) $2 GROUP BY 1),
-- the buyers up to the end, one row per customers row (the channel): one pass over the
-- per-customer table
b AS (
    SELECT CASE WHEN s.info_n OPERATOR(pg_catalog.=) 1 THEN s.channel END AS channel, s.first_order_at AS first_at, p.rev, p.gp,
           CASE WHEN s.last_order_at OPERATOR(pg_catalog.<) $2 THEN s.gp
                WHEN s.gp_n OPERATOR(pg_catalog.>) coalesce(a.n, 0) THEN s.gp OPERATOR(pg_catalog.-) coalesce(a.gp, 0) END AS gp_to_date
      FROM crm.rollup_customer_state s LEFT JOIN p ON p.customer_id OPERATOR(pg_catalog.=) s.customer_id
      LEFT JOIN a ON a.customer_id OPERATOR(pg_catalog.=) s.customer_id
     WHERE s.first_order_at OPERATOR(pg_catalog.<) $2 AND s.info_n OPERATOR(pg_catalog.<=) 1
    UNION ALL
    SELECT i.channel, s.first_order_at, p.rev, p.gp,
           CASE WHEN s.last_order_at OPERATOR(pg_catalog.<) $2 THEN s.gp
                WHEN s.gp_n OPERATOR(pg_catalog.>) coalesce(a.n, 0) THEN s.gp OPERATOR(pg_catalog.-) coalesce(a.gp, 0) END
      FROM crm.rollup_customer_state s LEFT JOIN p ON p.customer_id OPERATOR(pg_catalog.=) s.customer_id
      LEFT JOIN a ON a.customer_id OPERATOR(pg_catalog.=) s.customer_id
      JOIN crm.rollup_customer_info i ON i.customer_id OPERATOR(pg_catalog.=) s.customer_id
     WHERE s.first_order_at OPERATOR(pg_catalog.<) $2 AND s.info_n OPERATOR(pg_catalog.>) 1
    UNION ALL
    -- the orders without a customer: one group without a customers row, as in the full query
    SELECT NULL, t.first_at, p.rev, p.gp,
           CASE WHEN t.last_at OPERATOR(pg_catalog.<) $2 THEN t.gp
                ELSE (SELECT pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) FROM crm.rollup_order_lines l
                       WHERE l.customer_id IS NULL AND l.ordered_at OPERATOR(pg_catalog.<) $2) END
      FROM crm.rollup_customer_orders t LEFT JOIN p ON p.customer_id IS NULL
     WHERE t.first_at OPERATOR(pg_catalog.<) $2 AND t.customer_id IS NULL),
bc AS (
    SELECT coalesce(b.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit,
           pg_catalog.avg(b.gp_to_date) AS ltv
      FROM b GROUP BY 1),
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads,
           pg_catalog.count(*) FILTER (WHERE s.first_order_at OPERATOR(pg_catalog.<) $2) AS converted
      FROM %1$s LEFT JOIN crm.rollup_customer_state s ON s.customer_id OPERATOR(pg_catalog.=) l.customer_id::pg_catalog.text
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %2$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
ch AS (SELECT channel FROM bc UNION SELECT channel FROM ld UNION SELECT channel FROM sp)
SELECT ch.channel, coalesce(ld.leads, 0), coalesce(bc.new_buyers, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) ld.converted) OPERATOR(pg_catalog./) CASE WHEN ld.leads OPERATOR(pg_catalog.<>) 0 THEN ld.leads END, 2),
       coalesce(bc.revenue, 0), coalesce(bc.gross_profit, 0), coalesce(sp.spend, 0),
       pg_catalog.round(sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(bc.gross_profit, 0) OPERATOR(pg_catalog.-) sp.spend)) OPERATOR(pg_catalog./) CASE WHEN sp.spend OPERATOR(pg_catalog.<>) 0 THEN sp.spend END, 2),
       pg_catalog.round(bc.ltv, 2),
       pg_catalog.round(bc.ltv OPERATOR(pg_catalog./) CASE WHEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) OPERATOR(pg_catalog.<>) 0 THEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) END, 2)
  FROM ch LEFT JOIN bc ON bc.channel OPERATOR(pg_catalog.=) ch.channel LEFT JOIN ld ON ld.channel OPERATOR(pg_catalog.=) ch.channel
          LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) ch.channel
 ORDER BY ch.channel
$sql$, crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm._fast_channels(date, date) IS
'crm.dashboard_channels(from, to) with the buyers'' figures (new buyers, revenue, gross profit, LTV, conversion) from the rollups (crm.rollup_customer_state, crm.rollup_order_lines) and leads and spend of the period from their sources: the same rows.';

CREATE OR REPLACE FUNCTION crm._fast_owner_customers(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
WITH
-- the period before the previous one (same length: dates, as the full query)
pp AS MATERIALIZED (SELECT (prev_from::date - (cur_from::date - prev_from::date))::timestamptz AS p2_from,
                           crm._dashboard_coverage_interval('A') AS a_int),
-- per customer: orders of the three periods
po AS (
    SELECT l.customer_id,
           count(*) FILTER (WHERE l.ordered_at >= cur_from) AS n_cur,
           count(*) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS n_prev,
           count(*) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS n_prev2,
           sum(l.amount) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS rev_prev,
           sum(l.amount) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS rev_prev2
      FROM crm.rollup_order_lines l, pp
     WHERE l.ordered_at >= least(pp.p2_from, prev_from) AND l.ordered_at < cur_to
     GROUP BY 1),
-- the buyers of the three periods (every customer of the full query's cu
-- without an order in them counts in none of the figures below)
cf AS (
    SELECT po.*, po.n_cur > 0 AS in_cur, po.n_prev > 0 AS in_prev, po.n_prev2 > 0 AS in_prev2,
           -- orders up to the end >= 2: two in the period, or one and an earlier (first) one
           po.n_cur >= 2 OR (po.n_cur > 0 AND f.first_at < cur_from) AS rep_cur,
           po.n_prev >= 2 OR (po.n_prev > 0 AND f.first_at < prev_from) AS rep_prev
      -- (every customer here has an order since the start of the window: the totals read by last_at)
      FROM po LEFT JOIN crm.rollup_customer_orders t ON t.customer_id = po.customer_id
                    AND t.last_at >= (SELECT least(pp.p2_from, prev_from) FROM pp),
           -- the orders without a customer: their group's first order
           LATERAL (SELECT coalesce(t.first_at, (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)) AS first_at) AS f),
cm AS (
    SELECT count(*) FILTER (WHERE in_cur) AS c_active, count(*) FILTER (WHERE rep_cur) AS c_repeat,
           count(*) FILTER (WHERE in_prev) AS p_active, count(*) FILTER (WHERE rep_prev) AS p_repeat,
           count(*) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned,
           count(*) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned,
           count(*) FILTER (WHERE in_prev2) AS p2_active,
           sum(rev_prev) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned_rev,
           sum(rev_prev2) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned_rev
      FROM cf),
-- class A by crm.abc_class over the revenue of the 12 months before each end
-- (customers without revenue there are NULL to it: no class, no effect on the
-- others); overdue as the full query judges it: the last real contact before
-- the end, or (never contacted) customer since (the customers source's
-- created_at, else the first order), before the end minus the class-A
-- interval; that is: contacted before the end and not within the interval,
-- or never contacted and customer since before end minus the interval
-- (the classes kept for the ends of the dashboard period read as a table,
-- computed from the order lines for other ends)
e AS MATERIALIZED (
    SELECT e.is_cur, e.end_at, x.slot
      FROM (VALUES (true, cur_to), (false, cur_from)) AS e(is_cur, end_at)
      LEFT JOIN crm.rollup_customer_state_ends x ON x.end_at = e.end_at),
sl AS MATERIALIZED (SELECT max(e.slot) FILTER (WHERE e.is_cur) AS c_slot, max(e.slot) FILTER (WHERE NOT e.is_cur) AS p_slot FROM e),
-- the ends whose classes the per-customer table keeps: one pass over it
-- (class, last real contact before the end, customer since in the row: overdue =
-- the last contact before the end, else the customer since, before end minus the interval)
amk AS (
    SELECT count(*) FILTER (WHERE CASE sl.c_slot WHEN 1 THEN s.k1_abc WHEN 2 THEN s.k2_abc END = 'A' AND
               coalesce(CASE sl.c_slot WHEN 1 THEN s.k1_contact WHEN 2 THEN s.k2_contact END, s.since, s.first_order_at) < (cur_to - pp.a_int)) AS c_a_overdue,
           count(*) FILTER (WHERE CASE sl.p_slot WHEN 1 THEN s.k1_abc WHEN 2 THEN s.k2_abc END = 'A' AND
               coalesce(CASE sl.p_slot WHEN 1 THEN s.k1_contact WHEN 2 THEN s.k2_contact END, s.since, s.first_order_at) < (cur_from - pp.a_int)) AS p_a_overdue
      FROM sl CROSS JOIN pp CROSS JOIN crm.rollup_customer_state s
     WHERE (sl.c_slot IS NOT NULL OR sl.p_slot IS NOT NULL) AND (s.k1_abc = 'A' OR s.k2_abc = 'A')),
-- there, the orders without a customer (never contacted): since kept with their class
amn AS (
    SELECT count(*) FILTER (WHERE e.is_cur) AS c_a_overdue, count(*) FILTER (WHERE NOT e.is_cur) AS p_a_overdue
      FROM e CROSS JOIN pp
      JOIN crm.rollup_customer_classes k ON k.end_at = e.end_at AND k.customer_id IS NULL
     WHERE e.slot IS NOT NULL AND k.abc_class = 'A' AND k.since < (e.end_at - pp.a_int)),
-- other ends: the classes computed from the order lines, the contact state and the copies
ae AS (
    SELECT e.is_cur, e.end_at, k.customer_id
      FROM e, LATERAL crm._fast_classes_live(e.end_at) AS k
     WHERE e.slot IS NULL AND k.abc = 'A'),
aml AS (
    SELECT count(*) FILTER (WHERE ae.is_cur AND o.overdue) AS c_a_overdue,
           count(*) FILTER (WHERE NOT ae.is_cur AND o.overdue) AS p_a_overdue
      FROM ae CROSS JOIN pp
      LEFT JOIN crm.rollup_customer_contacts s ON s.customer_id = ae.customer_id,
      LATERAL (SELECT CASE
          WHEN s.first_at < ae.end_at THEN
              NOT CASE WHEN s.last_at < ae.end_at THEN s.last_at >= (ae.end_at - pp.a_int)
                       ELSE EXISTS (SELECT 1 FROM crm.rollup_real_contacts x
                                     WHERE x.customer_id = ae.customer_id AND x.occurred_at >= (ae.end_at - pp.a_int)
                                       AND x.occurred_at < ae.end_at) END
          ELSE coalesce((SELECT min(i.created_at) FROM crm.rollup_customer_info i WHERE i.customer_id = ae.customer_id),
                        CASE WHEN ae.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)
                             ELSE (SELECT t1.first_at FROM crm.rollup_customer_orders t1 WHERE t1.customer_id = ae.customer_id) END)
               < (ae.end_at - pp.a_int) END AS overdue) AS o),
am AS (
    SELECT coalesce(amk.c_a_overdue, 0) + amn.c_a_overdue + aml.c_a_overdue AS c_a_overdue,
           coalesce(amk.p_a_overdue, 0) + amn.p_a_overdue + aml.p_a_overdue AS p_a_overdue
      FROM amk, amn, aml)
SELECT v.metric, v.cur, v.prev
  FROM cm, am, LATERAL (VALUES
    ('buyers', c_active::numeric, p_active::numeric),
    ('repeat_purchase_rate', round((100.0 * c_repeat) / CASE WHEN c_active <> 0 THEN c_active END, 2),
                             round((100.0 * p_repeat) / CASE WHEN p_active <> 0 THEN p_active END, 2)),
    ('churned_customers', c_churned::numeric, p_churned::numeric),
    ('churn_rate', round((100.0 * c_churned) / CASE WHEN p_active <> 0 THEN p_active END, 2),
                   round((100.0 * p_churned) / CASE WHEN p2_active <> 0 THEN p2_active END, 2)),
    ('churned_revenue', coalesce(c_churned_rev, 0), coalesce(p_churned_rev, 0)),
    ('overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric)) AS v(metric, cur, prev)
$$;
COMMENT ON FUNCTION crm._fast_owner_customers(timestamptz, timestamptz, timestamptz) IS
'From the rollups: the owner dashboard''s rows buyers, repeat_purchase_rate, churned_customers, churn_rate, churned_revenue and overdue_class_a_customers for the current period [cur_from, cur_to) and the previous one [prev_from, cur_from), exactly as crm.owner_dashboard computes them.';

CREATE OR REPLACE FUNCTION crm._fast_managers_customers(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, revenue numeric, customers bigint, covered bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
BEGIN
    -- crm._fast_coverage(period_to) counted per manager, without handing its rows over;
    -- the period's revenue per customer first, then by the manager of each customers row
    RETURN QUERY EXECUTE crm._fast_coverage_sql(period_to, $sql$,
cv AS (SELECT r.manager_id, count(*) AS customers, count(*) FILTER (WHERE r.covered) AS covered FROM r GROUP BY 1),
po AS (
    SELECT o.customer_id, sum(o.amount) AS revenue
      FROM crm.rollup_order_lines o WHERE o.ordered_at >= $2 AND o.ordered_at < $1 GROUP BY 1),
rv AS (
    SELECT x.manager_id, sum(x.revenue) AS revenue FROM (
        SELECT CASE WHEN s.info_n = 1 THEN s.manager_id END AS manager_id, po.revenue
          FROM po LEFT JOIN crm.rollup_customer_state s ON s.customer_id = po.customer_id
         WHERE s.info_n IS NULL OR s.info_n <= 1
        UNION ALL
        SELECT i.manager_id, po.revenue
          FROM po JOIN crm.rollup_customer_state s ON s.customer_id = po.customer_id
          JOIN crm.rollup_customer_info i ON i.customer_id = s.customer_id
         WHERE s.info_n > 1) x
     GROUP BY 1),
m AS (SELECT rv.manager_id FROM rv UNION SELECT cv.manager_id FROM cv)
SELECT m.manager_id, rv.revenue, cv.customers, cv.covered
  FROM m LEFT JOIN rv ON coalesce(texteq(rv.manager_id, m.manager_id), rv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN cv ON coalesce(texteq(cv.manager_id, m.manager_id), cv.manager_id IS NULL AND m.manager_id IS NULL)
 ORDER BY 1
$sql$) USING period_to, period_from;
END
$$;
COMMENT ON FUNCTION crm._fast_managers_customers(timestamptz, timestamptz) IS
'From the rollups: per manager, the revenue of the manager''s customers in [from, to) and the number of customers and covered customers at the end (crm.dashboard_managers'' rv and cv): one row per manager with either (revenue NULL = no order in the period; customers and covered NULL = no customer).';

-- rollups built before this section hold no per-customer table: the next
-- refresh rebuilds them in full
UPDATE crm.rollup_status SET needs_full = true;
-- ==== end of section percust ====

-- ==== section todo5 ====
-- crm.todo from the rollups: the overdue contacts straight from crm._fast_coverage_sql's rows,
-- the notes by concatenation; crm._fast_coverage_sql computes the classes inline.

CREATE OR REPLACE FUNCTION crm._fast_coverage_sql(as_of timestamptz, tail text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slot integer;
    rev  text;
    cls  text;
    lv   text := '';
BEGIN
    SELECT x.slot INTO slot FROM crm.rollup_customer_state_ends x WHERE x.end_at = as_of;
    IF slot IS NOT NULL THEN
        rev := format('s.k%s_rev', slot);
        cls := format('s.k%s_cls', slot);
    ELSE
        rev := 'lv.rev';
        cls := 'lv.cls';
        lv := 'LEFT JOIN lv ON lv.customer_id = s.customer_id';
    END IF;
    RETURN format($sql$
WITH
-- the classes as crm._fast_classes_live computes them (the orders without a customer count in the
-- thresholds), inline: the planner hashes the customers with revenue, not the per-customer table
lr AS MATERIALIZED (
    SELECT l.customer_id, sum(l.amount) AS rev FROM crm.rollup_order_lines l
     WHERE l.ordered_at >= ($1 - '12 months'::interval) AND l.ordered_at < $1 AND NOT %5$L GROUP BY l.customer_id),
th AS MATERIALIZED (
    SELECT min(rs.rev) FILTER (WHERE rs.before < (0.80 * rs.total)) AS a, min(rs.rev) FILTER (WHERE rs.before < (0.95 * rs.total)) AS b
      FROM (SELECT lr.rev, sum(lr.rev) OVER (ORDER BY lr.rev DESC ROWS UNBOUNDED PRECEDING) - lr.rev AS before, sum(lr.rev) OVER () AS total
              FROM lr WHERE lr.rev > 0) AS rs),
lv AS (SELECT lr.customer_id, lr.rev, CASE WHEN lr.rev >= th.a THEN 'A' WHEN lr.rev >= th.b THEN 'B' ELSE 'C' END AS cls
         FROM lr CROSS JOIN th WHERE lr.customer_id IS NOT NULL),
pol AS MATERIALIZED (SELECT crm._dashboard_coverage_interval('A') AS a, crm._dashboard_coverage_interval('B') AS b,
                            crm._dashboard_coverage_interval('C') AS c),
-- per customers row: the customers with one row, those with more, the rows without an id
c AS (
    SELECT s.customer_id, s.manager_id, s.channel, s.created_at, %1$s AS rev, coalesce(%2$s, 'C') AS cls,
           %6$s AS kc, s.first_contact_at, s.last_contact_at
      FROM crm.rollup_customer_state s %3$s
     WHERE s.info_n = 1 AND s.created_at < $1 AND s.customer_id IS NOT NULL
    UNION ALL
    SELECT i.customer_id, i.manager_id, i.channel, i.created_at, %1$s, coalesce(%2$s, 'C'), %6$s, s.first_contact_at, s.last_contact_at
      FROM crm.rollup_customer_state s %3$s JOIN crm.rollup_customer_info i ON i.customer_id = s.customer_id
     WHERE s.info_n > 1 AND i.created_at < $1
    UNION ALL
    SELECT i.customer_id, i.manager_id, i.channel, i.created_at, NULL, 'C', NULL, NULL, NULL
      FROM crm.rollup_customer_info i WHERE i.customer_id IS NULL AND i.created_at < $1),
r AS (
    SELECT c.customer_id, c.manager_id, c.channel, c.rev, c.cls, x.last_at,
           coalesce(x.last_at, c.created_at) + x.iv AS due,
           coalesce((coalesce(x.last_at, c.created_at) + x.iv) >= $1, false) AS covered
      FROM c CROSS JOIN pol,
      LATERAL (SELECT CASE c.cls WHEN 'A' THEN pol.a WHEN 'B' THEN pol.b ELSE pol.c END AS iv,
                      CASE WHEN %5$L THEN c.kc
                           WHEN c.last_contact_at < $1 THEN c.last_contact_at
                           WHEN c.first_contact_at < $1 THEN (SELECT max(q.occurred_at) FROM crm.rollup_real_contacts q
                                                               WHERE q.customer_id = c.customer_id AND q.occurred_at < $1) END AS last_at) AS x)
%4$s
$sql$, rev, cls, lv, tail, slot IS NOT NULL, CASE WHEN slot IS NULL THEN 'NULL::timestamptz' ELSE format('s.k%s_contact', slot) END);
END
$$;

COMMENT ON FUNCTION crm._fast_coverage_sql(timestamptz, text) IS
'The query of crm._fast_coverage as of the moment ($1), with the given final SELECT over its rows r (customer_id, manager_id, channel, rev, cls, last_at, due, covered): from crm.rollup_customer_state, the classes kept there or computed from the order lines.';

CREATE OR REPLACE FUNCTION crm._fast_todo(as_of timestamptz)
RETURNS TABLE (manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
BEGIN
    -- the full path's error for an event with an unknown stage before as_of
    PERFORM crm._deal_check_stages(as_of);
    -- the overdue contacts straight from the rows r of crm._fast_coverage's query (no function
    -- result in between); the notes by concatenation (the same text as format: every value
    -- through its output function, NULL as an empty string)
    RETURN QUERY EXECUTE crm._fast_coverage_sql(as_of, format($sql$,
cfg AS MATERIALIZED (SELECT crm._lead_sla() AS sla, crm._reactivation_after() AS react),
-- unanswered: created more than the SLA before as_of, no first response before as_of
ua AS (
    SELECT l.lead_id, l.created_at, l.month, l.channel, l.manager_id, l.created_at + cfg.sla AS since, cfg.sla
      FROM crm.rollup_leads l CROSS JOIN cfg
     WHERE l.created_at + cfg.sla < $1 AND (l.first_response IS NULL OR l.first_response >= $1)),
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- open at as_of (no won or lost event before it) in an open stage
sd AS (
    SELECT d.deal_id, d.last_at, d.amount, d.manager_id, d.open_so, %2$s AS norm
      FROM %1$s AS d WHERE d.open_so IS NOT NULL AND d.closed_at IS NULL),
oi AS (
    SELECT i.invoice_id, i.customer_id, i.issued_at, i.due_at, i.amount FROM crm.rollup_invoices i
     WHERE i.issued_at < $1 AND (i.paid_at IS NULL OR i.paid_at >= $1) AND i.due_at < $1),
-- exactly one order before as_of, older than the period, no real contact at or
-- after it before as_of (the contact state; the contacts copy by index only
-- when the last contact is at or after as_of)
ra AS (
    SELECT f.customer_id, f.first_at AS ordered_at, f.amount, f.first_at + cfg.react AS since
      FROM crm.rollup_customer_firsts f CROSS JOIN cfg
     WHERE f.first_at + cfg.react < $1 AND (f.second_at IS NULL OR f.second_at >= $1)
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_contacts s
                        WHERE s.customer_id = f.customer_id AND s.last_at >= f.first_at AND s.first_at < $1
                          AND (s.last_at < $1 OR EXISTS (SELECT 1 FROM crm.rollup_real_contacts r
                                                          WHERE r.customer_id = f.customer_id AND r.occurred_at >= f.first_at
                                                            AND r.occurred_at < $1)))),
items AS (
    SELECT ua.manager_id, 'unanswered_lead'::text AS kind, ua.lead_id AS entity_id, ua.since,
           round(coalesce(cpl.cost_per_lead, 0), 2) AS value,
           'lead from ' || coalesce(ua.channel, '(unknown channel)') || ' created '
           || coalesce(to_char(ua.created_at, 'YYYY-MM-DD HH24:MI'), '') || ', no first response (SLA '
           || coalesce(ua.sla::text, '') || ')' AS note
      FROM ua LEFT JOIN cpl ON cpl.channel = ua.channel AND cpl.month = ua.month
    UNION ALL
    SELECT sd.manager_id, 'stale_deal', sd.deal_id, sd.last_at + sd.norm, sd.amount,
           'stage ' || coalesce(ps.stage, '') || ' idle ' || coalesce(extract(day FROM ($1 - sd.last_at))::text, '')
           || ' days (norm ' || coalesce(ps.max_days::text, '') || ')'
      FROM sd JOIN crm.pipeline_stages ps ON ps.stage_order = sd.open_so
     WHERE sd.last_at < ($1 - sd.norm)
    UNION ALL
    SELECT cust.manager_id, 'overdue_invoice', oi.invoice_id, oi.due_at, oi.amount,
           'invoice issued ' || coalesce(oi.issued_at::date::text, '') || ', due ' || coalesce(oi.due_at::date::text, '')
           || ', ' || coalesce(extract(day FROM ($1 - oi.due_at))::text, '') || ' days overdue'
      FROM oi LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = oi.customer_id) AS cust ON true
    UNION ALL
    SELECT r.manager_id, 'overdue_contact', r.customer_id, r.due, coalesce(r.rev, 0),
           'class ' || coalesce(r.cls, '') || ', last real contact ' || coalesce(r.last_at::date::text, 'never')
           || ', next contact was due ' || coalesce(r.due::date::text, '')
      FROM r WHERE NOT r.covered
    UNION ALL
    SELECT cust.manager_id, 'reactivation', ra.customer_id, ra.since, ra.amount,
           'one order on ' || coalesce(ra.ordered_at::date::text, '') || ', no real contact since'
      FROM ra LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = ra.customer_id) AS cust ON true)
-- sorted by value first, then the ties (100,000 overdue contacts of value 0 as of now() on the
-- 100,000-customer demo) by the rest: an incremental sort, twice as fast as one sort by every key
SELECT i.manager_id, i.kind, i.entity_id, i.since, i.value, i.note
  FROM (SELECT * FROM items ORDER BY items.value DESC NULLS LAST OFFSET 0) AS i
 ORDER BY i.value DESC NULLS LAST, i.since NULLS LAST, i.kind, i.entity_id
$sql$, crm._deal_states_sql('$1', '''infinity''::timestamptz'), crm._stage_norm_case('d.open_so')))
    USING as_of;
END
$$;

COMMENT ON FUNCTION crm._fast_todo(timestamptz) IS
'crm.todo(as_of) computed from the rollups (crm.rollup_leads, crm.rollup_lead_months, crm.rollup_spend_months, the deal states, crm.rollup_invoices, crm._fast_coverage, crm.rollup_customer_firsts, the contact state, crm.rollup_customer_info): the same rows in the same order.';

-- ==== end of section todo5 ====
-- ==== section refresh5: one per-customer summary of the order lines ====
-- crm.rollup_customer_orders takes over the columns of crm.rollup_customer_rfm
-- and crm.rollup_customer_firsts (dropped with their functions); derived data,
-- rebuilt in full by the next refresh
DROP FUNCTION crm._rollup_rfm_totals(timestamptz);
DROP FUNCTION crm._rollup_todo_orders(timestamptz);
DROP FUNCTION crm._rollup_fast_order_totals(timestamptz);
DROP TABLE crm.rollup_customer_rfm;
DROP TABLE crm.rollup_customer_firsts;
TRUNCATE crm.rollup_customer_orders;
ALTER TABLE crm.rollup_customer_orders
    ADD COLUMN orders bigint, ADD COLUMN amount numeric, ADD COLUMN amount_n bigint, ADD COLUMN scale_n bigint,
    ADD COLUMN first_amount numeric, ADD COLUMN second_at timestamptz, ADD COLUMN prev_at timestamptz;
ALTER TABLE crm.rollup_customer_orders SET (fillfactor = 80);
COMMENT ON TABLE crm.rollup_customer_orders IS
'Rollup state per customer with orders (derived, not dumped; customer_id NULL = the orders without a customer), one summary of its order lines: first and last order, gross profit (amount - cost) of all orders and the number of orders with one (gp_n), the number of orders, the sum of their amounts, the number of non-NULL amounts (amount_n) and of amounts with the scale of that sum (scale_n), the first order''s amount (of the earliest by moment, amount, scale), the moment of the second order (NULL = one order; equal to first_at when two orders share the first moment) and of the order before the last one (prev_at: NULL = one order; equal to last_at when two orders share the last moment).';
DROP INDEX crm.rollup_customer_orders_customer_id_idx;
DROP INDEX crm.rollup_customer_orders_last_at_idx;
CREATE UNIQUE INDEX ON crm.rollup_customer_orders (customer_id) NULLS NOT DISTINCT;

CREATE OR REPLACE FUNCTION crm._rfm_sql(per text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT format($q$
        WITH per AS (
            SELECT p.key,
                   pg_catalog.floor(pg_catalog.date_part('epoch', $1 OPERATOR(pg_catalog.-) p.last_at)
                       OPERATOR(pg_catalog./) 86400::pg_catalog.float8)::pg_catalog.int4 AS recency_days,
                   p.frequency, p.monetary, p.ord
              FROM (%s) AS p(key, last_at, frequency, monetary, ord)
        ), scored AS (
            SELECT per.*,
                   crm.quantile_score(OPERATOR(pg_catalog.-) per.recency_days::pg_catalog.float8) OVER w AS r,
                   crm.quantile_score(per.frequency::pg_catalog.float8) OVER w AS f,
                   crm.quantile_score(per.monetary::pg_catalog.float8) OVER w AS m
              FROM per
            -- (a score depends on the whole partition only: the rows go through in the
            -- order of ord, so that a per-customer query already in that order is not sorted)
            WINDOW w AS (ORDER BY per.ord)
        )
        SELECT s.key::pg_catalog.text, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m,
               pg_catalog.concat(s.r, s.f, s.m), crm.rfm_segment(s.r, s.f)
          FROM scored AS s
         ORDER BY s.ord
        $q$, per)
$fn$;
COMMENT ON FUNCTION crm._rfm_sql(text) IS
'SQL text of the RFM scoring over a per-customer query (key, last order, frequency, monetary, ord; $1 = as_of): recency_days, R, F, M by crm.quantile_score, rfm_code and crm.rfm_segment, ordered by ord, as crm.rfm_report returns them.';

CREATE OR REPLACE FUNCTION crm._rollup_fast_order_totals(from_ts timestamptz, old_ids text[], old_nul boolean) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n    bigint;
    ids  text[];
    wids text[];
    done text[];
    nul  boolean;
BEGIN
    IF from_ts = '-infinity' THEN
        -- a full rebuild reads everything: hash joins again (the SET above is for the few changed rows)
        PERFORM pg_catalog.set_config('enable_hashjoin', 'on', true), pg_catalog.set_config('enable_mergejoin', 'on', true);
        TRUNCATE crm.rollup_customer_orders;
        DELETE FROM crm.rollup_customers;
        INSERT INTO crm.rollup_customer_orders
        SELECT x.customer_id, min(x.ordered_at), max(x.ordered_at), sum(x.amount - x.cost), count(x.amount - x.cost),
               count(*), sum(x.amount), count(x.amount),
               CASE WHEN scale(sum(x.amount)) IS NOT NULL THEN count(*) FILTER (WHERE scale(x.amount) = x.ms) ELSE 0 END,
               min(x.amount) FILTER (WHERE x.rn = 1), min(x.ordered_at) FILTER (WHERE x.rn = 2),
               max(x.ordered_at) FILTER (WHERE x.rn = x.cnt - 1)
          FROM (SELECT l.customer_id, l.ordered_at, l.amount, l.cost, max(scale(l.amount)) OVER (PARTITION BY l.customer_id) AS ms,
                       count(*) OVER (PARTITION BY l.customer_id) AS cnt,
                       row_number() OVER (PARTITION BY l.customer_id ORDER BY l.ordered_at, l.amount, scale(l.amount)) AS rn
                  FROM crm.rollup_order_lines l) AS x
         GROUP BY 1
         -- in the order crm._fast_rfm_sql reads them (by the unique index on the ids)
         ORDER BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        INSERT INTO crm.rollup_customers (customer_id, first_at)
        SELECT t.customer_id, t.first_at FROM crm.rollup_customer_orders t WHERE t.customer_id IS NOT NULL;
        RETURN n;
    END IF;
    -- the customers with an order at or after from_ts before the change (old_ids: the
    -- customers of the lines replaced): from all their lines
    ids := old_ids;
    nul := old_nul OR EXISTS (SELECT 1 FROM crm.rollup_order_lines l WHERE l.ordered_at >= from_ts AND l.customer_id IS NULL);
    IF cardinality(ids) > 0 THEN
        DELETE FROM crm.rollup_customer_orders t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    END IF;
    IF nul THEN
        DELETE FROM crm.rollup_customer_orders t WHERE t.customer_id IS NULL;
    END IF;
    -- first orders at or after from_ts may have changed; earlier ones did not (the
    -- new ones: the summaries written below with a first order at or after from_ts)
    DELETE FROM crm.rollup_customers rc WHERE rc.first_at >= from_ts;
    -- every line at or after from_ts, and the earlier lines of those customers;
    -- the others' summaries are added to (ON CONFLICT), and the per-customer
    -- table gets the new figures of the rows written (in place)
    WITH w AS (
        INSERT INTO crm.rollup_customer_orders AS t
        SELECT x.customer_id, min(x.ordered_at), max(x.ordered_at), sum(x.amount - x.cost), count(x.amount - x.cost),
               count(*), sum(x.amount), count(x.amount),
               CASE WHEN scale(sum(x.amount)) IS NOT NULL THEN count(*) FILTER (WHERE scale(x.amount) = x.ms) ELSE 0 END,
               min(x.amount) FILTER (WHERE x.rn = 1), min(x.ordered_at) FILTER (WHERE x.rn = 2),
               max(x.ordered_at) FILTER (WHERE x.rn = x.cnt - 1)
          FROM (SELECT l.customer_id, l.ordered_at, l.amount, l.cost, max(scale(l.amount)) OVER (PARTITION BY l.customer_id) AS ms,
                       count(*) OVER (PARTITION BY l.customer_id) AS cnt,
                       row_number() OVER (PARTITION BY l.customer_id ORDER BY l.ordered_at, l.amount, scale(l.amount)) AS rn
                  FROM (SELECT l.customer_id, l.ordered_at, l.amount, l.cost FROM crm.rollup_order_lines l
                         WHERE l.ordered_at >= from_ts AND l.customer_id IS NOT NULL
                        UNION ALL
                        SELECT l.customer_id, l.ordered_at, l.amount, l.cost
                          FROM unnest(ids) AS u(id) JOIN crm.rollup_order_lines l ON l.customer_id = u.id AND l.ordered_at < from_ts
                        UNION ALL
                        -- the orders without a customer, one group read again from all its lines
                        SELECT l.customer_id, l.ordered_at, l.amount, l.cost FROM crm.rollup_order_lines l
                         WHERE nul AND l.customer_id IS NULL) AS l) AS x
         GROUP BY 1
        ON CONFLICT (customer_id) DO UPDATE
           SET last_at = EXCLUDED.last_at,
               gp = CASE WHEN t.gp IS NULL THEN EXCLUDED.gp WHEN EXCLUDED.gp IS NULL THEN t.gp ELSE t.gp + EXCLUDED.gp END,
               gp_n = t.gp_n + EXCLUDED.gp_n,
               orders = t.orders + EXCLUDED.orders,
               amount = CASE WHEN t.amount IS NULL THEN EXCLUDED.amount WHEN EXCLUDED.amount IS NULL THEN t.amount
                             ELSE t.amount + EXCLUDED.amount END,
               amount_n = t.amount_n + EXCLUDED.amount_n,
               -- (a sum not finite (NaN, infinity) has no scale: 0)
               scale_n = CASE WHEN t.amount IS NOT NULL AND scale(t.amount) IS NULL
                                OR EXCLUDED.amount IS NOT NULL AND scale(EXCLUDED.amount) IS NULL THEN 0
                              WHEN t.amount IS NULL OR scale(EXCLUDED.amount) > scale(t.amount) THEN EXCLUDED.scale_n
                              WHEN scale(EXCLUDED.amount) = scale(t.amount) THEN t.scale_n + EXCLUDED.scale_n
                              ELSE t.scale_n END,
               second_at = coalesce(t.second_at, EXCLUDED.first_at),
               prev_at = CASE WHEN EXCLUDED.orders > 1 THEN EXCLUDED.prev_at ELSE t.last_at END
        RETURNING t.customer_id, t.first_at, t.last_at, t.gp, t.gp_n),
    f AS (
        INSERT INTO crm.rollup_customers (customer_id, first_at)
        SELECT w.customer_id, w.first_at FROM w WHERE w.first_at >= from_ts AND w.customer_id IS NOT NULL),
    s AS (
        UPDATE crm.rollup_customer_state s SET first_order_at = w.first_at, last_order_at = w.last_at, gp = w.gp, gp_n = w.gp_n
          FROM w WHERE s.customer_id = w.customer_id
        RETURNING s.customer_id)
    -- (the group without a customer has no row in the per-customer table, whose NULL row
    -- stands for the customers rows without an id)
    SELECT (SELECT array_agg(w.customer_id) FILTER (WHERE w.customer_id IS NOT NULL) FROM w), (SELECT count(*) FROM w),
           (SELECT array_agg(s.customer_id) FROM s)
      INTO wids, n, done;
    n := n + coalesce(cardinality(done), 0);
    -- the per-customer table for the others: new to it, or without orders now
    ids := ARRAY(SELECT unnest(wids) UNION SELECT unnest(ids) EXCEPT SELECT unnest(done));
    IF cardinality(ids) > 0 THEN
        n := n + crm._rollup_fast_state(ids);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_order_totals(timestamptz, text[], boolean) IS
'Keeps crm.rollup_customer_orders (the summary of each customer''s order lines), its columns in crm.rollup_customer_state and the first orders (crm.rollup_customers) for every customer with an order at or after the given moment, before or after the change: those with one before the change (the given customers whose lines were replaced; true: the orders without a customer among them) read again from all their lines, the others their summary plus their new lines (everything again for -infinity); rows written.';

CREATE OR REPLACE FUNCTION crm._rollup_fast_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    m bigint;
    cust_ts timestamptz := from_ts;
    ids text[];
    -- the customers of the order lines replaced (with an order at or after from_ts before the change)
    old_ids text[];
    old_nul boolean;
BEGIN
    -- during crm.refresh_rollups the changes it took are in pg_temp.crm_rollup_taken:
    -- the customers copy is read again only from the earliest change of a table the
    -- customers source reads (not at all when none changed)
    IF pg_catalog.isfinite(from_ts) AND pg_catalog.to_regclass('pg_temp.crm_rollup_taken') IS NOT NULL THEN
        SELECT pg_catalog.min(t.bound) INTO cust_ts FROM pg_temp.crm_rollup_taken t
         WHERE t.relid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.relid FROM crm.rollup_capture c WHERE c.kind OPERATOR(pg_catalog.=) 'customers'));
        IF cust_ts IS NOT NULL THEN
            cust_ts := greatest(cust_ts, from_ts);
        END IF;
    END IF;
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_order_lines, crm.rollup_customer_info;
    ELSE
        WITH d AS (DELETE FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) from_ts RETURNING l.customer_id)
        SELECT pg_catalog.array_agg(DISTINCT d.customer_id) FILTER (WHERE d.customer_id IS NOT NULL), pg_catalog.bool_or(d.customer_id IS NULL)
          INTO old_ids, old_nul FROM d;
        -- the customers whose rows are read again: their "since" in the kept classes is set again below
        WITH d AS (DELETE FROM crm.rollup_customer_info c WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL AND cust_ts IS NOT NULL
                   RETURNING c.customer_id)
        SELECT pg_catalog.array_agg(d.customer_id) INTO ids FROM d;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_order_lines (customer_id, ordered_at, amount, cost)
SELECT o.customer_id::pg_catalog.text, o.ordered_at, o.amount, o.cost FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1
$sql$, crm._source_sql('orders', 'o')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    m := 0;
    IF cust_ts IS NOT NULL THEN
        EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customer_info (customer_id, created_at, channel, manager_id)
SELECT c.customer_id::pg_catalog.text, c.created_at, c.channel::pg_catalog.text, c.manager_id::pg_catalog.text
  FROM %1$s WHERE c.created_at OPERATOR(pg_catalog.>=) $1 OR c.created_at IS NULL
        $sql$, crm._source_sql('customers', 'c')) USING cust_ts;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    n := n OPERATOR(pg_catalog.+) m OPERATOR(pg_catalog.+)
         crm._rollup_fast_order_totals(from_ts, coalesce(old_ids, '{}'), coalesce(old_nul, false));
    IF cust_ts IS NOT NULL AND pg_catalog.isfinite(from_ts) THEN
        -- "since" of the class-A customers whose customers rows changed (the deleted and the
        -- inserted ones), at the kept ends; their first order (before the end) changes only
        -- with an order before the end, and then crm._rollup_fast_classes rebuilds the end
        ids := ids OPERATOR(pg_catalog.||) ARRAY(SELECT c.customer_id FROM crm.rollup_customer_info c
                                                   WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL);
        UPDATE crm.rollup_customer_classes k
           SET since = coalesce((SELECT pg_catalog.min(i.created_at) FROM crm.rollup_customer_info i
                                  WHERE i.customer_id OPERATOR(pg_catalog.=) k.customer_id),
                                (SELECT t.first_at FROM crm.rollup_customer_orders t
                                  WHERE t.customer_id OPERATOR(pg_catalog.=) k.customer_id))
         WHERE k.abc_class OPERATOR(pg_catalog.=) 'A' AND k.customer_id OPERATOR(pg_catalog.=) ANY (ids);
        IF FOUND THEN
            -- a class-A customer's "since" counts as of the end whatever the moment of the
            -- change (the full computation reads every customers row): the owner dashboard's
            -- kept rows are written again at the end of the refresh (crm._rollup_owner_keep)
            DELETE FROM crm.rollup_owner_kept_key;
        END IF;
        -- their rows of the per-customer table
        n := n OPERATOR(pg_catalog.+) crm._rollup_fast_state(ids);
    END IF;
    RETURN n OPERATOR(pg_catalog.+) crm._rollup_fast_classes(from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_orders(timestamptz) IS
'Rollup state of the customer reports, part orders: the copies of the orders and customers sources (crm.rollup_order_lines, crm.rollup_customer_info), the per-customer order summaries (crm.rollup_customer_orders) and first orders (crm.rollup_customers) from the given moment on and the classes at the dashboard period''s ends (crm.rollup_customer_classes); rows written.';

CREATE OR REPLACE FUNCTION crm._rollup_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    src_o text := crm._source_sql('orders', 'o');
    go text[] := crm._rollup_gsets('o', 'channel', 'manager');
    gn text[] := crm._rollup_gsets('nb', 'channel', 'manager');
BEGIN
    -- first: the order lines, the per-customer summaries and the first order per customer
    -- (crm.rollup_customers, from the summaries: src/dashboard_fast_customers.sql); the
    -- first order of the orders without a customer is read from them below
    PERFORM crm._rollup_fast_orders(from_ts);
    -- an order counts once per customers row of its customer in the channel and
    -- manager rows (as crm.dashboard_channels and crm.dashboard_managers join
    -- them) and once in the rows of all (as crm.owner_dashboard counts it):
    -- first_row marks one of its rows
    EXECUTE pg_catalog.format($sql$
WITH od AS MATERIALIZED (
    SELECT o.customer_id AS cust, o.ordered_at, o.amount, o.cost FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1),
-- the customers rows of the changed orders' customers, numbered per customer
cc AS MATERIALIZED (
    SELECT c.customer_id AS cust, c.channel::pg_catalog.text AS channel, c.manager_id::pg_catalog.text AS manager,
           pg_catalog.row_number() OVER (PARTITION BY c.customer_id ORDER BY c.channel::pg_catalog.text, c.manager_id::pg_catalog.text) AS rn
      FROM %2$s WHERE EXISTS (SELECT 1 FROM od WHERE od.cust OPERATOR(pg_catalog.=) c.customer_id)),
o AS MATERIALIZED (
    SELECT od.cust::pg_catalog.text AS cid, od.ordered_at::pg_catalog.date AS day, od.amount, od.cost,
           cc.channel, cc.manager, cc.rn, coalesce(cc.rn OPERATOR(pg_catalog.=) 1, true) AS first_row
      FROM od LEFT JOIN cc ON cc.cust OPERATOR(pg_catalog.=) od.cust),
nb AS (
    SELECT rc.first_at::pg_catalog.date AS day, d.channel, d.manager, d.first_row
      FROM crm.rollup_customers rc
      -- one row per customers row of the customer (rn)
      JOIN (SELECT DISTINCT o.cid, o.rn, o.channel, o.manager, o.first_row FROM o) AS d ON d.cid OPERATOR(pg_catalog.=) rc.customer_id
     WHERE rc.first_at OPERATOR(pg_catalog.>=) $1
    UNION ALL
    -- the orders without a customer are one buyer (one group, as the full queries count them)
    SELECT t.first_at::pg_catalog.date, NULL, NULL, true
      FROM crm.rollup_customer_orders t
     WHERE t.customer_id IS NULL AND t.first_at OPERATOR(pg_catalog.>=) $1),
a AS (
    SELECT o.day, %3$s AS dimension, %4$s AS key,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.count(*) FILTER (WHERE o.first_row) ELSE pg_catalog.count(*) END AS n,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.sum(o.amount) FILTER (WHERE o.first_row) ELSE pg_catalog.sum(o.amount) END AS revenue,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) FILTER (WHERE o.first_row)
                ELSE pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) END AS gp,
           NULL::pg_catalog.int8 AS nb
      FROM o GROUP BY %5$s
    UNION ALL
    SELECT nb.day, %6$s, %7$s, NULL, NULL, NULL,
           CASE WHEN %6$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.count(*) FILTER (WHERE nb.first_row) ELSE pg_catalog.count(*) END
      FROM nb GROUP BY %8$s)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, a.dimension, a.key, m.value
  FROM a CROSS JOIN LATERAL (VALUES ('orders'::pg_catalog.text, a.n::pg_catalog.numeric), ('revenue', a.revenue),
                                    ('gross_profit', a.gp), ('new_buyers', a.nb::pg_catalog.numeric)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, src_o, crm._source_sql('customers', 'c'), go[1], go[2], go[3], gn[1], gn[2], gn[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_orders(timestamptz) IS
'Rollup part orders: keeps the first order per customer (crm.rollup_customers) and writes orders, revenue, gross_profit and new_buyers per day (all, and channel and manager of the customer) for the days from the given moment on.';

CREATE OR REPLACE FUNCTION crm._fast_rfm_sql() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT format($q$
SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
  FROM (%s) AS x(customer, recency_days, frequency, monetary, r, f, m, rfm_code, segment)
$q$, crm._rfm_sql($per$
SELECT t.customer_id,
       CASE WHEN a.n IS NULL THEN t.last_at
            -- one line after $1: it is the last, the one before it is the last up to $1
            WHEN a.n OPERATOR(pg_catalog.=) 1 THEN t.prev_at
            ELSE (SELECT l.ordered_at FROM crm.rollup_order_lines l
                   WHERE l.customer_id OPERATOR(pg_catalog.=) t.customer_id AND l.ordered_at OPERATOR(pg_catalog.<=) $1
                   ORDER BY l.ordered_at DESC LIMIT 1) END,
       t.orders OPERATOR(pg_catalog.-) coalesce(a.n, 0),
       CASE WHEN a.n IS NULL OR a.amount_n OPERATOR(pg_catalog.=) 0 THEN t.amount
            WHEN a.amount_n OPERATOR(pg_catalog.=) t.amount_n THEN NULL
            WHEN pg_catalog.scale(t.amount) IS NOT NULL
                 AND (a.sc_max OPERATOR(pg_catalog.<) pg_catalog.scale(t.amount)
                      OR a.sc_min OPERATOR(pg_catalog.=) a.sc_max AND t.scale_n OPERATOR(pg_catalog.>) a.amount_n)
            THEN t.amount OPERATOR(pg_catalog.-) a.amount
            ELSE (SELECT pg_catalog.sum(l.amount) FROM crm.rollup_order_lines l
                   WHERE l.customer_id OPERATOR(pg_catalog.=) t.customer_id AND l.ordered_at OPERATOR(pg_catalog.<=) $1) END,
       t.customer_id
  FROM crm.rollup_customer_orders t
  LEFT JOIN (
        -- the lines after $1 per customer (by time): count, sum, non-NULL amounts and
        -- the smallest and largest scale of an amount
        SELECT l.customer_id, pg_catalog.count(*) AS n, pg_catalog.sum(l.amount) AS amount, pg_catalog.count(l.amount) AS amount_n,
               pg_catalog.min(pg_catalog.scale(l.amount)) AS sc_min, pg_catalog.max(pg_catalog.scale(l.amount)) AS sc_max
          FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>) $1
         GROUP BY 1) AS a ON a.customer_id OPERATOR(pg_catalog.=) t.customer_id
 WHERE t.customer_id IS NOT NULL AND t.first_at OPERATOR(pg_catalog.<=) $1
 -- (a subquery of its own, each row's figures computed once; in the order of the ids: no sort after the scoring)
 ORDER BY t.customer_id
$per$))
$fn$;
COMMENT ON FUNCTION crm._fast_rfm_sql() IS
'SQL text ($1 = the moment) of crm.dashboard_rfm''s rows from the rollups (crm.rollup_customer_orders, less the lines of crm.rollup_order_lines after the moment), scored by crm._rfm_sql: the same rows, ordered by customer.';

CREATE OR REPLACE FUNCTION crm._fast_todo(as_of timestamptz)
RETURNS TABLE (manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
BEGIN
    -- the full path's error for an event with an unknown stage before as_of
    PERFORM crm._deal_check_stages(as_of);
    -- the overdue contacts straight from the rows r of crm._fast_coverage's query (no function
    -- result in between); the notes by concatenation (the same text as format: every value
    -- through its output function, NULL as an empty string)
    RETURN QUERY EXECUTE crm._fast_coverage_sql(as_of, format($sql$,
cfg AS MATERIALIZED (SELECT crm._lead_sla() AS sla, crm._reactivation_after() AS react),
-- unanswered: created more than the SLA before as_of, no first response before as_of
ua AS (
    SELECT l.lead_id, l.created_at, l.month, l.channel, l.manager_id, l.created_at + cfg.sla AS since, cfg.sla
      FROM crm.rollup_leads l CROSS JOIN cfg
     WHERE l.created_at + cfg.sla < $1 AND (l.first_response IS NULL OR l.first_response >= $1)),
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- open at as_of (no won or lost event before it) in an open stage
sd AS (
    SELECT d.deal_id, d.last_at, d.amount, d.manager_id, d.open_so, %2$s AS norm
      FROM %1$s AS d WHERE d.open_so IS NOT NULL AND d.closed_at IS NULL),
oi AS (
    SELECT i.invoice_id, i.customer_id, i.issued_at, i.due_at, i.amount FROM crm.rollup_invoices i
     WHERE i.issued_at < $1 AND (i.paid_at IS NULL OR i.paid_at >= $1) AND i.due_at < $1),
-- exactly one order before as_of, older than the period, no real contact at or
-- after it before as_of (the contact state; the contacts copy by index only
-- when the last contact is at or after as_of)
ra AS (
    SELECT f.customer_id, f.first_at AS ordered_at, f.first_amount AS amount, f.first_at + cfg.react AS since
      FROM crm.rollup_customer_orders f CROSS JOIN cfg
     WHERE f.customer_id IS NOT NULL AND f.first_at + cfg.react < $1 AND (f.second_at IS NULL OR f.second_at >= $1)
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_contacts s
                        WHERE s.customer_id = f.customer_id AND s.last_at >= f.first_at AND s.first_at < $1
                          AND (s.last_at < $1 OR EXISTS (SELECT 1 FROM crm.rollup_real_contacts r
                                                          WHERE r.customer_id = f.customer_id AND r.occurred_at >= f.first_at
                                                            AND r.occurred_at < $1)))),
items AS (
    SELECT ua.manager_id, 'unanswered_lead'::text AS kind, ua.lead_id AS entity_id, ua.since,
           round(coalesce(cpl.cost_per_lead, 0), 2) AS value,
           'lead from ' || coalesce(ua.channel, '(unknown channel)') || ' created '
           || coalesce(to_char(ua.created_at, 'YYYY-MM-DD HH24:MI'), '') || ', no first response (SLA '
           || coalesce(ua.sla::text, '') || ')' AS note
      FROM ua LEFT JOIN cpl ON cpl.channel = ua.channel AND cpl.month = ua.month
    UNION ALL
    SELECT sd.manager_id, 'stale_deal', sd.deal_id, sd.last_at + sd.norm, sd.amount,
           'stage ' || coalesce(ps.stage, '') || ' idle ' || coalesce(extract(day FROM ($1 - sd.last_at))::text, '')
           || ' days (norm ' || coalesce(ps.max_days::text, '') || ')'
      FROM sd JOIN crm.pipeline_stages ps ON ps.stage_order = sd.open_so
     WHERE sd.last_at < ($1 - sd.norm)
    UNION ALL
    SELECT cust.manager_id, 'overdue_invoice', oi.invoice_id, oi.due_at, oi.amount,
           'invoice issued ' || coalesce(oi.issued_at::date::text, '') || ', due ' || coalesce(oi.due_at::date::text, '')
           || ', ' || coalesce(extract(day FROM ($1 - oi.due_at))::text, '') || ' days overdue'
      FROM oi LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = oi.customer_id) AS cust ON true
    UNION ALL
    SELECT r.manager_id, 'overdue_contact', r.customer_id, r.due, coalesce(r.rev, 0),
           'class ' || coalesce(r.cls, '') || ', last real contact ' || coalesce(r.last_at::date::text, 'never')
           || ', next contact was due ' || coalesce(r.due::date::text, '')
      FROM r WHERE NOT r.covered
    UNION ALL
    SELECT cust.manager_id, 'reactivation', ra.customer_id, ra.since, ra.amount,
           'one order on ' || coalesce(ra.ordered_at::date::text, '') || ', no real contact since'
      FROM ra LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = ra.customer_id) AS cust ON true)
-- sorted by value first, then the ties (100,000 overdue contacts of value 0 as of now() on the
-- 100,000-customer demo) by the rest: an incremental sort, twice as fast as one sort by every key
SELECT i.manager_id, i.kind, i.entity_id, i.since, i.value, i.note
  FROM (SELECT * FROM items ORDER BY items.value DESC NULLS LAST OFFSET 0) AS i
 ORDER BY i.value DESC NULLS LAST, i.since NULLS LAST, i.kind, i.entity_id
$sql$, crm._deal_states_sql('$1', '''infinity''::timestamptz'), crm._stage_norm_case('d.open_so')))
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm._fast_todo(timestamptz) IS
'crm.todo(as_of) computed from the rollups (crm.rollup_leads, crm.rollup_lead_months, crm.rollup_spend_months, the deal states, crm.rollup_invoices, crm._fast_coverage, crm.rollup_customer_orders, the contact state, crm.rollup_customer_info): the same rows in the same order.';

UPDATE crm.rollup_status SET needs_full = true;
-- ==== end of section refresh5 ====

-- ==== section owner5: the owner dashboard and the channel report in fewer passes ====
CREATE OR REPLACE FUNCTION crm._fast_owner_deals(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE plpgsql STABLE
-- small reads of the deal states: JIT compilation would cost more than the query
SET jit = off
-- the per-deal join of the two states: hashed (a merge join sorts the text ids)
SET enable_mergejoin = off
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._deal_check_stages(cur_to);
    RETURN QUERY EXECUTE format($sql$
    WITH st AS (SELECT s.stage, s.stage_order, s.probability, s.outcome, (s.max_days::text || ' days')::interval AS norm
                  FROM crm.pipeline_stages s),
    -- one pass over the states at the current end, grouped by what the figures tell apart
    -- (k: 0 open, 1 closed in the current period, 2 in the previous one; won; open stage
    -- known; stale; the stage a lost deal reached; po: open at the previous end in the same
    -- state, no event between the two ends, and stale then): a few groups, whose counts and
    -- sums add up to the figures (an average is the sum over the count of its values, as avg
    -- computes it); the numeric products only on the rows they are for
    g AS (
        SELECT CASE WHEN d.closed_at IS NULL THEN 0 WHEN d.closed_at >= $1 THEN 1 ELSE 2 END AS k,
               d.won_at IS NOT NULL AND d.won_at <= coalesce(d.lost_at, d.won_at) AS won,
               d.open_so IS NOT NULL AS so_known,
               d.closed_at IS NULL AND coalesce(d.last_at < ($2 - st.norm), false) AS stale,
               CASE WHEN d.closed_at IS NOT NULL AND NOT (d.won_at IS NOT NULL AND d.won_at <= coalesce(d.lost_at, d.won_at))
                    THEN d.open_so END AS lost_so,
               d.last_at < $1 AND d.closed_at IS NULL AND d.open_so IS NOT NULL AS po,
               d.last_at < $1 AND d.closed_at IS NULL AND d.open_so IS NOT NULL AND coalesce(d.last_at < ($1 - st.norm), false) AS po_stale,
               count(*) AS n, sum(d.amount) AS amt, count(d.amount) AS n_amt,
               sum(CASE WHEN d.closed_at IS NULL THEN d.amount * st.probability END) AS w,
               sum(CASE WHEN d.won_at <= coalesce(d.lost_at, d.won_at) THEN extract(epoch FROM d.won_at - d.first_at) / 86400 END) AS cyc,
               count(CASE WHEN d.won_at <= coalesce(d.lost_at, d.won_at) THEN extract(epoch FROM d.won_at - d.first_at) / 86400 END) AS n_cyc
          FROM %1$s AS d LEFT JOIN st ON st.stage_order = d.open_so
         GROUP BY 1, 2, 3, 4, 5, 6, 7),
    dm AS (
        SELECT coalesce(sum(n) FILTER (WHERE won AND k = 1), 0)::bigint AS c_won,
               coalesce(sum(n) FILTER (WHERE NOT won AND k = 1), 0)::bigint AS c_lost,
               coalesce(sum(n) FILTER (WHERE won AND k = 2), 0)::bigint AS p_won,
               coalesce(sum(n) FILTER (WHERE NOT won AND k = 2), 0)::bigint AS p_lost,
               sum(amt) FILTER (WHERE NOT won AND k = 1) AS c_lost_amt,
               sum(amt) FILTER (WHERE NOT won AND k = 2) AS p_lost_amt,
               sum(amt) FILTER (WHERE won AND k = 1) / sum(n_amt) FILTER (WHERE won AND k = 1) AS c_avg_won,
               sum(amt) FILTER (WHERE won AND k = 2) / sum(n_amt) FILTER (WHERE won AND k = 2) AS p_avg_won,
               sum(cyc) FILTER (WHERE won AND k = 1) / sum(n_cyc) FILTER (WHERE won AND k = 1) AS c_cycle,
               sum(cyc) FILTER (WHERE won AND k = 2) / sum(n_cyc) FILTER (WHERE won AND k = 2) AS p_cycle,
               coalesce(sum(n) FILTER (WHERE k = 0 AND so_known), 0)::bigint AS c_open,
               sum(amt) FILTER (WHERE k = 0 AND so_known) AS c_open_amt,
               sum(w) FILTER (WHERE k = 0 AND so_known AND NOT stale) AS c_weighted,
               coalesce(sum(n) FILTER (WHERE k = 0 AND so_known AND stale), 0)::bigint AS c_stale,
               sum(amt) FILTER (WHERE k = 0 AND so_known AND stale) AS c_stale_amt,
               -- open at the previous end in the same state
               coalesce(sum(n) FILTER (WHERE po), 0)::bigint AS q_open, sum(amt) FILTER (WHERE po) AS q_open_amt,
               sum(w) FILTER (WHERE po AND NOT po_stale) AS q_weighted,
               coalesce(sum(n) FILTER (WHERE po_stale), 0)::bigint AS q_stale, sum(amt) FILTER (WHERE po_stale) AS q_stale_amt
          FROM g),
    -- open at the previous period's end (no close before it), valued at the amount as of the
    -- current end: a deal without an event between the two ends has the same state at both
    -- (counted above); the others (an event before the previous end and one before the
    -- current end, at or after the previous one) read their state at the previous end from
    -- the earlier states, joined to their state at the current end (read by its last event)
    pv AS (
        SELECT count(*) AS n, sum(c.amount) AS amt,
               sum(c.amount * st.probability) FILTER (WHERE NOT coalesce(p.from_at < ($1 - st.norm), false)) AS w,
               count(*) FILTER (WHERE coalesce(p.from_at < ($1 - st.norm), false)) AS n_stale,
               sum(c.amount) FILTER (WHERE coalesce(p.from_at < ($1 - st.norm), false)) AS stale_amt
          FROM crm.rollup_deal_past p
          JOIN (SELECT n.deal_id, n.amount FROM crm.rollup_deal_now n WHERE n.last_at >= $1 AND n.last_at < $2
                UNION ALL
                SELECT q.deal_id, q.amount FROM crm.rollup_deal_past q WHERE q.from_at >= $1 AND q.from_at < $2 AND q.to_at >= $2) AS c
            ON c.deal_id = p.deal_id
          LEFT JOIN st ON st.stage_order = p.open_so
         WHERE p.to_at >= $1 AND p.to_at < $2 AND p.from_at < $1 AND p.closed_at IS NULL AND p.open_so IS NOT NULL),
    -- the sum of two sums (NULL: no value in either)
    pm AS (
        SELECT dm.q_open + pv.n AS p_open,
               CASE WHEN dm.q_open_amt IS NULL THEN pv.amt WHEN pv.amt IS NULL THEN dm.q_open_amt ELSE dm.q_open_amt + pv.amt END AS p_open_amt,
               CASE WHEN dm.q_weighted IS NULL THEN pv.w WHEN pv.w IS NULL THEN dm.q_weighted ELSE dm.q_weighted + pv.w END AS p_weighted,
               dm.q_stale + pv.n_stale AS p_stale,
               CASE WHEN dm.q_stale_amt IS NULL THEN pv.stale_amt WHEN pv.stale_amt IS NULL THEN dm.q_stale_amt ELSE dm.q_stale_amt + pv.stale_amt END AS p_stale_amt
          FROM dm, pv),
    -- lost deals by the most advanced open stage they reached (as of the current end)
    lost AS (
        SELECT st.stage, st.stage_order, coalesce(l.c_amt, 0) AS c_amt, coalesce(l.p_amt, 0) AS p_amt
          FROM st LEFT JOIN (SELECT g.lost_so, sum(g.amt) FILTER (WHERE g.k = 1) AS c_amt, sum(g.amt) FILTER (WHERE g.k = 2) AS p_amt
                               FROM g WHERE g.lost_so IS NOT NULL GROUP BY 1) AS l ON l.lost_so = st.stage_order
         WHERE st.outcome = 'open'),
    rows AS (
        SELECT v.*
          FROM dm, pm,
          LATERAL (VALUES
            (12, 'win_rate', round((100.0 * c_won) / CASE WHEN (c_won + c_lost) <> 0 THEN (c_won + c_lost) END, 2), round((100.0 * p_won) / CASE WHEN (p_won + p_lost) <> 0 THEN (p_won + p_lost) END, 2)),
            (13, 'deals_won', c_won::numeric, p_won::numeric),
            (14, 'average_won_deal', round(c_avg_won, 2), round(p_avg_won, 2)),
            (15, 'sales_cycle', round(c_cycle, 2), round(p_cycle, 2)),
            (16, 'open_deals', c_open::numeric, p_open::numeric),
            (17, 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0)),
            (18, 'weighted_pipeline', round(coalesce(c_weighted, 0), 2), round(coalesce(p_weighted, 0), 2)),
            (18.1, 'stale_deals', c_stale::numeric, p_stale::numeric),
            (18.2, 'stale_pipeline_value', coalesce(c_stale_amt, 0), coalesce(p_stale_amt, 0)),
            (19, 'sales_velocity',
                 round(((c_open * (c_won::numeric / CASE WHEN (c_won + c_lost) <> 0 THEN (c_won + c_lost) END)) * c_avg_won) / CASE WHEN c_cycle <> 0 THEN c_cycle END, 2),
                 round(((p_open * (p_won::numeric / CASE WHEN (p_won + p_lost) <> 0 THEN (p_won + p_lost) END)) * p_avg_won) / CASE WHEN p_cycle <> 0 THEN p_cycle END, 2)),
            (20, 'deals_lost', c_lost::numeric, p_lost::numeric),
            (21, 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0))
          ) AS v(ord, metric, cur, prev)
        UNION ALL
        SELECT 100 + lost.stage_order, 'lost_value_at_' || lost.stage, lost.c_amt, lost.p_amt FROM lost)
    SELECT rows.metric, rows.cur, rows.prev FROM rows ORDER BY rows.ord
$sql$, crm._deal_states_sql('$2', '$3'))
        USING cur_from, cur_to, prev_from;
END
$$;

CREATE OR REPLACE FUNCTION crm._fast_owner_leads(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
-- the leads grouped by channel and month by hash (few groups), not sorted
SET enable_sort = off
AS $$
WITH
ld AS (
    SELECT l.month, l.channel, l.customer_id, l.first_response, l.created_at >= cur_from AS is_cur
      FROM crm.rollup_leads l WHERE l.created_at >= prev_from AND l.created_at < cur_to),
-- cost per lead (channel-month rule, crm._lead_cost_sql)
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- converted: the lead's customer bought before the end (few leads name a
-- customer: their first order read by index, not a pass over all customers)
lx AS (
    SELECT ld.channel, ld.is_cur, ld.month, count(*) AS n,
           count(*) FILTER (WHERE ld.customer_id IS NOT NULL
                              AND (SELECT rc.first_at FROM crm.rollup_customers rc WHERE rc.customer_id = ld.customer_id)
                                  < CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS converted,
           count(*) FILTER (WHERE ld.first_response IS NULL
                               OR ld.first_response >= CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS unanswered
      FROM ld
     GROUP BY 1, 2, 3),
lm AS (
    SELECT sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_leads_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_leads_cost
      FROM lx LEFT JOIN cpl ON cpl.channel = lx.channel AND cpl.month = lx.month),
iv AS (
    SELECT i.issued_at, i.due_at, i.amount, i.paid_at FROM crm.rollup_invoices i
     WHERE i.issued_at < cur_to AND (i.paid_at IS NULL OR i.paid_at >= cur_from)),
im AS (
    SELECT count(*) FILTER (WHERE paid_at IS NULL OR paid_at >= cur_to) AS c_unpaid,
           sum(amount) FILTER (WHERE paid_at IS NULL OR paid_at >= cur_to) AS c_unpaid_amt,
           avg(extract(epoch FROM cur_to - issued_at) / 86400) FILTER (WHERE paid_at IS NULL OR paid_at >= cur_to) AS c_unpaid_age,
           count(*) FILTER (WHERE (paid_at IS NULL OR paid_at >= cur_to) AND due_at < cur_to) AS c_overdue,
           sum(amount) FILTER (WHERE (paid_at IS NULL OR paid_at >= cur_to) AND due_at < cur_to) AS c_overdue_amt,
           count(*) FILTER (WHERE issued_at < cur_from) AS p_unpaid,
           sum(amount) FILTER (WHERE issued_at < cur_from) AS p_unpaid_amt,
           avg(extract(epoch FROM cur_from - issued_at) / 86400) FILTER (WHERE issued_at < cur_from) AS p_unpaid_age,
           count(*) FILTER (WHERE issued_at < cur_from AND due_at < cur_from) AS p_overdue,
           sum(amount) FILTER (WHERE issued_at < cur_from AND due_at < cur_from) AS p_overdue_amt
      FROM iv)
SELECT v.metric, v.cur, v.prev
  FROM lm, im, LATERAL (VALUES
    ('lead_to_buyer_conversion', round((100.0 * c_conv) / CASE WHEN c_leads <> 0 THEN c_leads END, 2),
                                 round((100.0 * p_conv) / CASE WHEN p_leads <> 0 THEN p_leads END, 2)),
    ('unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0)),
    ('unanswered_leads_cost', round(coalesce(c_unans_cost, 0), 2), round(coalesce(p_unans_cost, 0), 2)),
    ('unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric),
    ('unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0)),
    ('unpaid_invoice_age', round(c_unpaid_age, 2), round(p_unpaid_age, 2)),
    ('overdue_invoices', c_overdue::numeric, p_overdue::numeric),
    ('overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0)),
    ('_leads_converted', c_conv, p_conv),
    ('_leads_cost', c_leads_cost, p_leads_cost)) AS v(metric, cur, prev)
$$;

CREATE OR REPLACE FUNCTION crm._fast_channels(period_from date, period_to date)
RETURNS TABLE (channel text, leads bigint, new_buyers bigint, conversion_pct numeric, revenue numeric,
               gross_profit numeric, spend numeric, cac numeric, roi_pct numeric, ltv numeric, ltv_cac numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    -- the sources the state comes from checked as the full path does (same errors)
    PERFORM crm._source_sql('customers'), crm._source_sql('orders');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
-- the buyers up to the end, one row per customers row (the channel): one pass over the
-- per-customer table, probing the period's revenue and gross profit per customer (p) and the
-- orders at or after the end per customer (a: gross profit to date is the total less these;
-- NULL when no order before the end has a gross profit), both hashed (the small side: read
-- once, as subqueries whose grouping the planner knows unique)
b AS (
    SELECT CASE WHEN s.info_n OPERATOR(pg_catalog.=) 1 THEN s.channel END AS channel, s.first_order_at AS first_at, p.rev, p.gp,
           CASE WHEN s.last_order_at OPERATOR(pg_catalog.<) $2 THEN s.gp
                WHEN s.gp_n OPERATOR(pg_catalog.>) coalesce(a.n, 0) THEN s.gp OPERATOR(pg_catalog.-) coalesce(a.gp, 0) END AS gp_to_date
      FROM crm.rollup_customer_state s
      LEFT JOIN (SELECT l.customer_id, pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
                   FROM crm.rollup_order_lines l
                  WHERE l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1) AS p
             ON p.customer_id OPERATOR(pg_catalog.=) s.customer_id
      LEFT JOIN (SELECT l.customer_id, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp,
                        pg_catalog.count(l.amount OPERATOR(pg_catalog.-) l.cost) AS n
                   FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) $2 GROUP BY 1) AS a
             ON a.customer_id OPERATOR(pg_catalog.=) s.customer_id
     WHERE s.first_order_at OPERATOR(pg_catalog.<) $2 AND s.info_n OPERATOR(pg_catalog.<=) 1
    UNION ALL
    -- the customers with several customers rows (rare): their orders read by index
    SELECT i.channel, s.first_order_at, p.rev, p.gp,
           CASE WHEN s.last_order_at OPERATOR(pg_catalog.<) $2 THEN s.gp
                WHEN s.gp_n OPERATOR(pg_catalog.>) a.n THEN s.gp OPERATOR(pg_catalog.-) coalesce(a.gp, 0) END
      FROM crm.rollup_customer_state s
      JOIN crm.rollup_customer_info i ON i.customer_id OPERATOR(pg_catalog.=) s.customer_id,
      LATERAL (SELECT pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
                 FROM crm.rollup_order_lines l
                WHERE l.customer_id OPERATOR(pg_catalog.=) s.customer_id
                  AND l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2) AS p,
      LATERAL (SELECT pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp, pg_catalog.count(l.amount OPERATOR(pg_catalog.-) l.cost) AS n
                 FROM crm.rollup_order_lines l
                WHERE l.customer_id OPERATOR(pg_catalog.=) s.customer_id AND l.ordered_at OPERATOR(pg_catalog.>=) $2) AS a
     WHERE s.first_order_at OPERATOR(pg_catalog.<) $2 AND s.info_n OPERATOR(pg_catalog.>) 1
    UNION ALL
    -- the orders without a customer: one group without a customers row, as in the full query
    SELECT NULL, t.first_at, p.rev, p.gp,
           CASE WHEN t.last_at OPERATOR(pg_catalog.<) $2 THEN t.gp
                ELSE (SELECT pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) FROM crm.rollup_order_lines l
                       WHERE l.customer_id IS NULL AND l.ordered_at OPERATOR(pg_catalog.<) $2) END
      FROM crm.rollup_customer_orders t,
      LATERAL (SELECT pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
                 FROM crm.rollup_order_lines l
                WHERE l.customer_id IS NULL AND l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2) AS p
     WHERE t.first_at OPERATOR(pg_catalog.<) $2 AND t.customer_id IS NULL),
bc AS (
    SELECT coalesce(b.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit,
           pg_catalog.avg(b.gp_to_date) AS ltv
      FROM b GROUP BY 1),
-- converted: the lead's customer bought before the end (few leads name a customer:
-- their first order read by index, not a pass over all customers)
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads,
           pg_catalog.count(*) FILTER (WHERE l.customer_id IS NOT NULL
               AND (SELECT s.first_order_at FROM crm.rollup_customer_state s
                     WHERE s.customer_id OPERATOR(pg_catalog.=) l.customer_id::pg_catalog.text) OPERATOR(pg_catalog.<) $2) AS converted
      FROM %1$s
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %2$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
ch AS (SELECT channel FROM bc UNION SELECT channel FROM ld UNION SELECT channel FROM sp)
SELECT ch.channel, coalesce(ld.leads, 0), coalesce(bc.new_buyers, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) ld.converted) OPERATOR(pg_catalog./) CASE WHEN ld.leads OPERATOR(pg_catalog.<>) 0 THEN ld.leads END, 2),
       coalesce(bc.revenue, 0), coalesce(bc.gross_profit, 0), coalesce(sp.spend, 0),
       pg_catalog.round(sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(bc.gross_profit, 0) OPERATOR(pg_catalog.-) sp.spend)) OPERATOR(pg_catalog./) CASE WHEN sp.spend OPERATOR(pg_catalog.<>) 0 THEN sp.spend END, 2),
       pg_catalog.round(bc.ltv, 2),
       pg_catalog.round(bc.ltv OPERATOR(pg_catalog./) CASE WHEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) OPERATOR(pg_catalog.<>) 0 THEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) END, 2)
  FROM ch LEFT JOIN bc ON bc.channel OPERATOR(pg_catalog.=) ch.channel LEFT JOIN ld ON ld.channel OPERATOR(pg_catalog.=) ch.channel
          LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) ch.channel
 ORDER BY ch.channel
$sql$, crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    USING b.cur_from, b.cur_to;
END
$$;

CREATE OR REPLACE FUNCTION crm._fast_owner_customers(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
WITH
-- the period before the previous one (same length: dates, as the full query)
pp AS MATERIALIZED (SELECT (prev_from::date - (cur_from::date - prev_from::date))::timestamptz AS p2_from,
                           crm._dashboard_coverage_interval('A') AS a_int),
-- per customer: orders of the three periods
po AS (
    SELECT l.customer_id,
           count(*) FILTER (WHERE l.ordered_at >= cur_from) AS n_cur,
           count(*) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS n_prev,
           count(*) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS n_prev2,
           sum(l.amount) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS rev_prev,
           sum(l.amount) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS rev_prev2
      FROM crm.rollup_order_lines l, pp
     WHERE l.ordered_at >= least(pp.p2_from, prev_from) AND l.ordered_at < cur_to
     GROUP BY 1),
-- the buyers of the three periods (every customer of the full query's cu
-- without an order in them counts in none of the figures below)
cf AS (
    SELECT po.*, po.n_cur > 0 AS in_cur, po.n_prev > 0 AS in_prev, po.n_prev2 > 0 AS in_prev2,
           -- orders up to the end >= 2: two in the period, or one and an earlier (first) one
           po.n_cur >= 2 OR (po.n_cur > 0 AND f.first_at < cur_from) AS rep_cur,
           po.n_prev >= 2 OR (po.n_prev > 0 AND f.first_at < prev_from) AS rep_prev
      -- (every customer here has an order since the start of the window: the totals read by last_at)
      FROM po LEFT JOIN crm.rollup_customer_orders t ON t.customer_id = po.customer_id
                    AND t.last_at >= (SELECT least(pp.p2_from, prev_from) FROM pp),
           -- the orders without a customer: their group's first order
           LATERAL (SELECT coalesce(t.first_at, (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)) AS first_at) AS f),
cm AS (
    SELECT count(*) FILTER (WHERE in_cur) AS c_active, count(*) FILTER (WHERE rep_cur) AS c_repeat,
           count(*) FILTER (WHERE in_prev) AS p_active, count(*) FILTER (WHERE rep_prev) AS p_repeat,
           count(*) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned,
           count(*) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned,
           count(*) FILTER (WHERE in_prev2) AS p2_active,
           sum(rev_prev) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned_rev,
           sum(rev_prev2) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned_rev
      FROM cf),
-- class A by crm.abc_class over the revenue of the 12 months before each end
-- (customers without revenue there are NULL to it: no class, no effect on the
-- others); overdue as the full query judges it: the last real contact before
-- the end, or (never contacted) customer since (the customers source's
-- created_at, else the first order), before the end minus the class-A
-- interval; that is: contacted before the end and not within the interval,
-- or never contacted and customer since before end minus the interval
-- (the classes kept for the ends of the dashboard period read as a table,
-- computed from the order lines for other ends)
e AS MATERIALIZED (
    SELECT e.is_cur, e.end_at, x.slot
      FROM (VALUES (true, cur_to), (false, cur_from)) AS e(is_cur, end_at)
      LEFT JOIN crm.rollup_customer_state_ends x ON x.end_at = e.end_at),
sl AS MATERIALIZED (SELECT max(e.slot) FILTER (WHERE e.is_cur) AS c_slot, max(e.slot) FILTER (WHERE NOT e.is_cur) AS p_slot FROM e),
-- the ends whose classes the per-customer table keeps: one pass over it
-- (class, last real contact before the end, customer since in the row: overdue =
-- the last contact before the end, else the customer since, before end minus the interval)
amk AS (
    SELECT CASE sl.c_slot WHEN 1 THEN k.n1 WHEN 2 THEN k.n2 END AS c_a_overdue,
           CASE sl.p_slot WHEN 1 THEN k.n1 WHEN 2 THEN k.n2 END AS p_a_overdue
      FROM sl, (
        -- per kept end (slot), against that end minus the interval: the slot's own columns,
        -- no choice of column per row
        SELECT count(*) FILTER (WHERE s.k1_abc = 'A' AND coalesce(s.k1_contact, s.since, s.first_order_at) < x.e1) AS n1,
               count(*) FILTER (WHERE s.k2_abc = 'A' AND coalesce(s.k2_contact, s.since, s.first_order_at) < x.e2) AS n2
          FROM (SELECT max(y.end_at) FILTER (WHERE y.slot = 1) - pp.a_int AS e1, max(y.end_at) FILTER (WHERE y.slot = 2) - pp.a_int AS e2
                  FROM pp LEFT JOIN crm.rollup_customer_state_ends y ON true GROUP BY pp.a_int) AS x
          CROSS JOIN sl AS z CROSS JOIN crm.rollup_customer_state s
         WHERE (z.c_slot IS NOT NULL OR z.p_slot IS NOT NULL) AND (s.k1_abc = 'A' OR s.k2_abc = 'A')) AS k),
-- there, the orders without a customer (never contacted): since kept with their class
amn AS (
    SELECT count(*) FILTER (WHERE e.is_cur) AS c_a_overdue, count(*) FILTER (WHERE NOT e.is_cur) AS p_a_overdue
      FROM e CROSS JOIN pp
      JOIN crm.rollup_customer_classes k ON k.end_at = e.end_at AND k.customer_id IS NULL
     WHERE e.slot IS NOT NULL AND k.abc_class = 'A' AND k.since < (e.end_at - pp.a_int)),
-- other ends: the classes computed from the order lines, the contact state and the copies
ae AS (
    SELECT e.is_cur, e.end_at, k.customer_id
      FROM e, LATERAL crm._fast_classes_live(e.end_at) AS k
     WHERE e.slot IS NULL AND k.abc = 'A'),
aml AS (
    SELECT count(*) FILTER (WHERE ae.is_cur AND o.overdue) AS c_a_overdue,
           count(*) FILTER (WHERE NOT ae.is_cur AND o.overdue) AS p_a_overdue
      FROM ae CROSS JOIN pp
      LEFT JOIN crm.rollup_customer_contacts s ON s.customer_id = ae.customer_id,
      LATERAL (SELECT CASE
          WHEN s.first_at < ae.end_at THEN
              NOT CASE WHEN s.last_at < ae.end_at THEN s.last_at >= (ae.end_at - pp.a_int)
                       ELSE EXISTS (SELECT 1 FROM crm.rollup_real_contacts x
                                     WHERE x.customer_id = ae.customer_id AND x.occurred_at >= (ae.end_at - pp.a_int)
                                       AND x.occurred_at < ae.end_at) END
          ELSE coalesce((SELECT min(i.created_at) FROM crm.rollup_customer_info i WHERE i.customer_id = ae.customer_id),
                        CASE WHEN ae.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)
                             ELSE (SELECT t1.first_at FROM crm.rollup_customer_orders t1 WHERE t1.customer_id = ae.customer_id) END)
               < (ae.end_at - pp.a_int) END AS overdue) AS o),
am AS (
    SELECT coalesce(amk.c_a_overdue, 0) + amn.c_a_overdue + aml.c_a_overdue AS c_a_overdue,
           coalesce(amk.p_a_overdue, 0) + amn.p_a_overdue + aml.p_a_overdue AS p_a_overdue
      FROM amk, amn, aml)
SELECT v.metric, v.cur, v.prev
  FROM cm, am, LATERAL (VALUES
    ('buyers', c_active::numeric, p_active::numeric),
    ('repeat_purchase_rate', round((100.0 * c_repeat) / CASE WHEN c_active <> 0 THEN c_active END, 2),
                             round((100.0 * p_repeat) / CASE WHEN p_active <> 0 THEN p_active END, 2)),
    ('churned_customers', c_churned::numeric, p_churned::numeric),
    ('churn_rate', round((100.0 * c_churned) / CASE WHEN p_active <> 0 THEN p_active END, 2),
                   round((100.0 * p_churned) / CASE WHEN p2_active <> 0 THEN p2_active END, 2)),
    ('churned_revenue', coalesce(c_churned_rev, 0), coalesce(p_churned_rev, 0)),
    ('overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric)) AS v(metric, cur, prev)
$$;
-- ==== end of section owner5 ====

-- ==== section owner6: the owner dashboard's reads: leads and unpaid invoices by covering indexes, new buyers' first orders, deals grouped closed / open ====
-- the leads of a period and the invoices unpaid at a moment read from an index
-- alone; both tables written in that order
DROP INDEX crm.rollup_leads_created_at_idx;
CREATE INDEX ON crm.rollup_leads (created_at) INCLUDE (month, channel, customer_id, first_response);
CREATE INDEX ON crm.rollup_invoices ((coalesce(paid_at, 'infinity'::timestamptz))) INCLUDE (issued_at, due_at, amount, paid_at);

CREATE OR REPLACE FUNCTION crm._rollup_lead_state(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    m bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_leads, crm.rollup_lead_months;
    ELSE
        DELETE FROM crm.rollup_leads l WHERE l.created_at OPERATOR(pg_catalog.>=) from_ts;
        DELETE FROM crm.rollup_lead_months c WHERE c.month OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts);
    END IF;
    -- without an interactions source (a partial registration) no lead has a response
    EXECUTE pg_catalog.format($sql$
WITH l AS MATERIALIZED (
    SELECT pg_catalog.row_number() OVER () AS rn, src.lead_id::pg_catalog.text AS lead_id, src.created_at,
           src.channel::pg_catalog.text AS channel, src.manager_id::pg_catalog.text AS manager_id,
           src.customer_id::pg_catalog.text AS customer_id
      FROM %2$s WHERE src.created_at OPERATOR(pg_catalog.>=) $1),
x AS (
    SELECT ix.lead_id::pg_catalog.text AS lead_id, ix.occurred_at
      FROM %1$s
     WHERE ix.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.lead_id IS NOT NULL),
f AS (
    SELECT l.rn, pg_catalog.min(x.occurred_at) AS fr
      FROM l JOIN x ON x.lead_id OPERATOR(pg_catalog.=) l.lead_id AND x.occurred_at OPERATOR(pg_catalog.>=) l.created_at
     GROUP BY l.rn)
INSERT INTO crm.rollup_leads (lead_id, created_at, month, channel, manager_id, customer_id, first_response, response_min)
SELECT l.lead_id, l.created_at, pg_catalog.date_trunc('month', l.created_at), l.channel, l.manager_id, l.customer_id, f.fr,
       EXTRACT(epoch FROM f.fr OPERATOR(pg_catalog.-) l.created_at) OPERATOR(pg_catalog./) 60
  FROM l LEFT JOIN f ON f.rn OPERATOR(pg_catalog.=) l.rn
 ORDER BY l.created_at
$sql$, CASE WHEN EXISTS (SELECT 1 FROM crm.sources s WHERE s.kind OPERATOR(pg_catalog.=) 'interactions')
            THEN crm._source_sql('interactions', 'ix')
            ELSE '(SELECT NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.bool, NULL::pg_catalog.text LIMIT 0) AS ix(lead_id, occurred_at, automated, direction)' END,
       crm._source_sql('leads')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the months from the month of from_ts on, from the state (every lead with a creation is in it)
    INSERT INTO crm.rollup_lead_months (channel, month, leads)
    SELECT l.channel, l.month, pg_catalog.count(*)
      FROM crm.rollup_leads l
     WHERE l.created_at OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts) AND l.channel IS NOT NULL
     GROUP BY 1, 2;
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n OPERATOR(pg_catalog.+) m;
END
$$;

CREATE OR REPLACE FUNCTION crm._rollup_invoice_state(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_invoices;
    ELSE
        DELETE FROM crm.rollup_invoices i WHERE i.low_at OPERATOR(pg_catalog.>=) from_ts;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_invoices (invoice_id, customer_id, issued_at, due_at, amount, paid_at, low_at)
SELECT i.invoice_id::pg_catalog.text, i.customer_id::pg_catalog.text, i.issued_at, i.due_at, i.amount, i.paid_at,
       least(i.issued_at, i.due_at, i.paid_at)
  FROM %1$s WHERE least(i.issued_at, i.due_at, i.paid_at) OPERATOR(pg_catalog.>=) $1
 ORDER BY coalesce(i.paid_at, 'infinity'::pg_catalog.timestamptz)
$sql$, crm._source_sql('invoices', 'i')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION crm._fast_owner_leads(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
-- the leads grouped by channel and month by hash (few groups), not sorted
SET enable_sort = off
-- small reads by index: JIT compilation would cost more than the query
SET jit = off
AS $$
WITH
ld AS (
    SELECT l.month, l.channel, l.customer_id, l.first_response, l.created_at >= cur_from AS is_cur
      FROM crm.rollup_leads l WHERE l.created_at >= prev_from AND l.created_at < cur_to),
-- cost per lead (channel-month rule, crm._lead_cost_sql)
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- converted: the lead's customer bought before the end (few leads name a
-- customer: their first order read by index, not a pass over all customers)
lx AS (
    SELECT ld.channel, ld.is_cur, ld.month, count(*) AS n,
           count(*) FILTER (WHERE ld.customer_id IS NOT NULL
                              AND (SELECT rc.first_at FROM crm.rollup_customers rc WHERE rc.customer_id = ld.customer_id)
                                  < CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS converted,
           count(*) FILTER (WHERE ld.first_response IS NULL
                               OR ld.first_response >= CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS unanswered
      FROM ld
     GROUP BY 1, 2, 3),
lm AS (
    SELECT sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_leads_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_leads_cost
      FROM lx LEFT JOIN cpl ON cpl.channel = lx.channel AND cpl.month = lx.month),
iv AS (
    -- not paid before cur_from (NULL: never), read from the index on that alone;
    -- unpaid at cur_to (not paid before it) and at cur_from (issued before it) flagged once
    SELECT i.issued_at, i.due_at, i.amount, coalesce(i.paid_at, 'infinity'::timestamptz) >= cur_to AS u_cur,
           i.issued_at < cur_from AS u_prev
      FROM crm.rollup_invoices i
     WHERE i.issued_at < cur_to AND coalesce(i.paid_at, 'infinity'::timestamptz) >= cur_from),
im AS (
    SELECT count(*) FILTER (WHERE u_cur) AS c_unpaid,
           sum(amount) FILTER (WHERE u_cur) AS c_unpaid_amt,
           avg(extract(epoch FROM cur_to - issued_at) / 86400) FILTER (WHERE u_cur) AS c_unpaid_age,
           count(*) FILTER (WHERE u_cur AND due_at < cur_to) AS c_overdue,
           sum(amount) FILTER (WHERE u_cur AND due_at < cur_to) AS c_overdue_amt,
           count(*) FILTER (WHERE u_prev) AS p_unpaid,
           sum(amount) FILTER (WHERE u_prev) AS p_unpaid_amt,
           avg(extract(epoch FROM cur_from - issued_at) / 86400) FILTER (WHERE u_prev) AS p_unpaid_age,
           count(*) FILTER (WHERE u_prev AND due_at < cur_from) AS p_overdue,
           sum(amount) FILTER (WHERE u_prev AND due_at < cur_from) AS p_overdue_amt
      FROM iv)
SELECT v.metric, v.cur, v.prev
  FROM lm, im, LATERAL (VALUES
    ('lead_to_buyer_conversion', round((100.0 * c_conv) / CASE WHEN c_leads <> 0 THEN c_leads END, 2),
                                 round((100.0 * p_conv) / CASE WHEN p_leads <> 0 THEN p_leads END, 2)),
    ('unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0)),
    ('unanswered_leads_cost', round(coalesce(c_unans_cost, 0), 2), round(coalesce(p_unans_cost, 0), 2)),
    ('unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric),
    ('unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0)),
    ('unpaid_invoice_age', round(c_unpaid_age, 2), round(p_unpaid_age, 2)),
    ('overdue_invoices', c_overdue::numeric, p_overdue::numeric),
    ('overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0)),
    ('_leads_converted', c_conv, p_conv),
    ('_leads_cost', c_leads_cost, p_leads_cost)) AS v(metric, cur, prev)
$$;

CREATE OR REPLACE FUNCTION crm._fast_owner_customers(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
WITH
-- the period before the previous one (same length: dates, as the full query)
pp AS MATERIALIZED (SELECT (prev_from::date - (cur_from::date - prev_from::date))::timestamptz AS p2_from,
                           crm._dashboard_coverage_interval('A') AS a_int),
-- per customer: orders of the three periods
po AS (
    SELECT l.customer_id,
           count(*) FILTER (WHERE l.ordered_at >= cur_from) AS n_cur,
           count(*) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS n_prev,
           count(*) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS n_prev2,
           sum(l.amount) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS rev_prev,
           sum(l.amount) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS rev_prev2
      FROM crm.rollup_order_lines l, pp
     WHERE l.ordered_at >= least(pp.p2_from, prev_from) AND l.ordered_at < cur_to
     GROUP BY 1),
-- the buyers of the three periods (every customer of the full query's cu
-- without an order in them counts in none of the figures below)
cf AS (
    SELECT po.*, po.n_cur > 0 AS in_cur, po.n_prev > 0 AS in_prev, po.n_prev2 > 0 AS in_prev2,
           -- orders up to the end >= 2: two in the period, or one and an earlier (first) one
           po.n_cur >= 2 OR (po.n_cur > 0 AND f.first_at < cur_from) AS rep_cur,
           po.n_prev >= 2 OR (po.n_prev > 0 AND f.first_at < prev_from) AS rep_prev
      -- the first order matters only when it is at or after prev_from: the customers'
      -- first orders there read by index (crm.rollup_customers, kept with the summaries:
      -- every customer with an order has one), the others' first order is before it
      -- (-infinity stands for it); the orders without a customer: their group's first order
      -- (a customer here has an order before cur_to: first_at < cur_to, said for the
      -- planner, which then hashes these few first orders, not the customers of po)
      FROM po LEFT JOIN crm.rollup_customers nb ON nb.customer_id = po.customer_id AND nb.first_at >= prev_from
                                                AND nb.first_at < cur_to,
           LATERAL (SELECT CASE WHEN po.customer_id IS NULL
                                THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)
                                ELSE coalesce(nb.first_at, '-infinity'::timestamptz) END AS first_at) AS f),
cm AS (
    SELECT count(*) FILTER (WHERE in_cur) AS c_active, count(*) FILTER (WHERE rep_cur) AS c_repeat,
           count(*) FILTER (WHERE in_prev) AS p_active, count(*) FILTER (WHERE rep_prev) AS p_repeat,
           count(*) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned,
           count(*) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned,
           count(*) FILTER (WHERE in_prev2) AS p2_active,
           sum(rev_prev) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned_rev,
           sum(rev_prev2) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned_rev
      FROM cf),
-- class A by crm.abc_class over the revenue of the 12 months before each end
-- (customers without revenue there are NULL to it: no class, no effect on the
-- others); overdue as the full query judges it: the last real contact before
-- the end, or (never contacted) customer since (the customers source's
-- created_at, else the first order), before the end minus the class-A
-- interval; that is: contacted before the end and not within the interval,
-- or never contacted and customer since before end minus the interval
-- (the classes kept for the ends of the dashboard period read as a table,
-- computed from the order lines for other ends)
e AS MATERIALIZED (
    SELECT e.is_cur, e.end_at, x.slot
      FROM (VALUES (true, cur_to), (false, cur_from)) AS e(is_cur, end_at)
      LEFT JOIN crm.rollup_customer_state_ends x ON x.end_at = e.end_at),
sl AS MATERIALIZED (SELECT max(e.slot) FILTER (WHERE e.is_cur) AS c_slot, max(e.slot) FILTER (WHERE NOT e.is_cur) AS p_slot FROM e),
-- the ends whose classes the per-customer table keeps: one pass over it
-- (class, last real contact before the end, customer since in the row: overdue =
-- the last contact before the end, else the customer since, before end minus the interval)
amk AS (
    SELECT CASE sl.c_slot WHEN 1 THEN k.n1 WHEN 2 THEN k.n2 END AS c_a_overdue,
           CASE sl.p_slot WHEN 1 THEN k.n1 WHEN 2 THEN k.n2 END AS p_a_overdue
      FROM sl, (
        -- per kept end (slot), against that end minus the interval: the slot's own columns,
        -- no choice of column per row
        SELECT count(*) FILTER (WHERE s.k1_abc = 'A' AND coalesce(s.k1_contact, s.since, s.first_order_at) < x.e1) AS n1,
               count(*) FILTER (WHERE s.k2_abc = 'A' AND coalesce(s.k2_contact, s.since, s.first_order_at) < x.e2) AS n2
          FROM (SELECT max(y.end_at) FILTER (WHERE y.slot = 1) - pp.a_int AS e1, max(y.end_at) FILTER (WHERE y.slot = 2) - pp.a_int AS e2
                  FROM pp LEFT JOIN crm.rollup_customer_state_ends y ON true GROUP BY pp.a_int) AS x
          CROSS JOIN sl AS z CROSS JOIN crm.rollup_customer_state s
         WHERE (z.c_slot IS NOT NULL OR z.p_slot IS NOT NULL) AND (s.k1_abc = 'A' OR s.k2_abc = 'A')) AS k),
-- there, the orders without a customer (never contacted): since kept with their class
amn AS (
    SELECT count(*) FILTER (WHERE e.is_cur) AS c_a_overdue, count(*) FILTER (WHERE NOT e.is_cur) AS p_a_overdue
      FROM e CROSS JOIN pp
      JOIN crm.rollup_customer_classes k ON k.end_at = e.end_at AND k.customer_id IS NULL
     WHERE e.slot IS NOT NULL AND k.abc_class = 'A' AND k.since < (e.end_at - pp.a_int)),
-- other ends: the classes computed from the order lines, the contact state and the copies
ae AS (
    SELECT e.is_cur, e.end_at, k.customer_id
      FROM e, LATERAL crm._fast_classes_live(e.end_at) AS k
     WHERE e.slot IS NULL AND k.abc = 'A'),
aml AS (
    SELECT count(*) FILTER (WHERE ae.is_cur AND o.overdue) AS c_a_overdue,
           count(*) FILTER (WHERE NOT ae.is_cur AND o.overdue) AS p_a_overdue
      FROM ae CROSS JOIN pp
      LEFT JOIN crm.rollup_customer_contacts s ON s.customer_id = ae.customer_id,
      LATERAL (SELECT CASE
          WHEN s.first_at < ae.end_at THEN
              NOT CASE WHEN s.last_at < ae.end_at THEN s.last_at >= (ae.end_at - pp.a_int)
                       ELSE EXISTS (SELECT 1 FROM crm.rollup_real_contacts x
                                     WHERE x.customer_id = ae.customer_id AND x.occurred_at >= (ae.end_at - pp.a_int)
                                       AND x.occurred_at < ae.end_at) END
          ELSE coalesce((SELECT min(i.created_at) FROM crm.rollup_customer_info i WHERE i.customer_id = ae.customer_id),
                        CASE WHEN ae.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)
                             ELSE (SELECT t1.first_at FROM crm.rollup_customer_orders t1 WHERE t1.customer_id = ae.customer_id) END)
               < (ae.end_at - pp.a_int) END AS overdue) AS o),
am AS (
    SELECT coalesce(amk.c_a_overdue, 0) + amn.c_a_overdue + aml.c_a_overdue AS c_a_overdue,
           coalesce(amk.p_a_overdue, 0) + amn.p_a_overdue + aml.p_a_overdue AS p_a_overdue
      FROM amk, amn, aml)
SELECT v.metric, v.cur, v.prev
  FROM cm, am, LATERAL (VALUES
    ('buyers', c_active::numeric, p_active::numeric),
    ('repeat_purchase_rate', round((100.0 * c_repeat) / CASE WHEN c_active <> 0 THEN c_active END, 2),
                             round((100.0 * p_repeat) / CASE WHEN p_active <> 0 THEN p_active END, 2)),
    ('churned_customers', c_churned::numeric, p_churned::numeric),
    ('churn_rate', round((100.0 * c_churned) / CASE WHEN p_active <> 0 THEN p_active END, 2),
                   round((100.0 * p_churned) / CASE WHEN p2_active <> 0 THEN p2_active END, 2)),
    ('churned_revenue', coalesce(c_churned_rev, 0), coalesce(p_churned_rev, 0)),
    ('overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric)) AS v(metric, cur, prev)
$$;

CREATE OR REPLACE FUNCTION crm._fast_owner_deals(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE plpgsql STABLE
-- small reads of the deal states: JIT compilation would cost more than the query
SET jit = off
-- the per-deal join of the two states: hashed (a merge join sorts the text ids)
SET enable_mergejoin = off
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._deal_check_stages(cur_to);
    RETURN QUERY EXECUTE format($sql$
    WITH st AS (SELECT s.stage, s.stage_order, s.probability, s.outcome, (s.max_days::text || ' days')::interval AS norm
                  FROM crm.pipeline_stages s),
    -- the states at the current end (one scan), grouped by what the figures tell apart
    -- (k: 0 open, 1 closed in the current period, 2 in the previous one; won; open stage
    -- known; stale; the stage a lost deal reached; po: open at the previous end in the same
    -- state, no event between the two ends, and stale then): a few groups, whose counts and
    -- sums add up to the figures (an average is the sum over the count of its values, as avg
    -- computes it); the closed deals and the open ones grouped apart, each by what tells
    -- its own figures apart (the stage norms and probabilities only for the open ones)
    d AS MATERIALIZED (SELECT d.first_at, d.last_at, d.won_at, d.lost_at, d.closed_at, d.amount, d.open_so FROM %1$s AS d),
    g AS (
        SELECT CASE WHEN d.closed_at >= $1 THEN 1 ELSE 2 END AS k,
               d.won_at IS NOT NULL AND d.won_at <= coalesce(d.lost_at, d.won_at) AS won,
               d.open_so IS NOT NULL AS so_known, false AS stale,
               CASE WHEN NOT (d.won_at IS NOT NULL AND d.won_at <= coalesce(d.lost_at, d.won_at)) THEN d.open_so END AS lost_so,
               false AS po, false AS po_stale,
               count(*) AS n, sum(d.amount) AS amt, count(d.amount) AS n_amt, NULL::numeric AS w,
               sum(extract(epoch FROM d.won_at - d.first_at) / 86400) FILTER (WHERE d.won_at <= coalesce(d.lost_at, d.won_at)) AS cyc,
               count(*) FILTER (WHERE d.won_at <= coalesce(d.lost_at, d.won_at)) AS n_cyc
          FROM d WHERE d.closed_at IS NOT NULL
         GROUP BY 1, 2, 3, 5
        UNION ALL
        SELECT 0, false, d.open_so IS NOT NULL, coalesce(d.last_at < ($2 - st.norm), false), NULL::int,
               d.last_at < $1 AND d.open_so IS NOT NULL,
               d.last_at < $1 AND d.open_so IS NOT NULL AND coalesce(d.last_at < ($1 - st.norm), false),
               count(*), sum(d.amount), count(d.amount), sum(d.amount * st.probability), NULL::numeric, 0::bigint
          FROM d LEFT JOIN st ON st.stage_order = d.open_so WHERE d.closed_at IS NULL
         GROUP BY 3, 4, 6, 7),
    dm AS (
        SELECT coalesce(sum(n) FILTER (WHERE won AND k = 1), 0)::bigint AS c_won,
               coalesce(sum(n) FILTER (WHERE NOT won AND k = 1), 0)::bigint AS c_lost,
               coalesce(sum(n) FILTER (WHERE won AND k = 2), 0)::bigint AS p_won,
               coalesce(sum(n) FILTER (WHERE NOT won AND k = 2), 0)::bigint AS p_lost,
               sum(amt) FILTER (WHERE NOT won AND k = 1) AS c_lost_amt,
               sum(amt) FILTER (WHERE NOT won AND k = 2) AS p_lost_amt,
               sum(amt) FILTER (WHERE won AND k = 1) / sum(n_amt) FILTER (WHERE won AND k = 1) AS c_avg_won,
               sum(amt) FILTER (WHERE won AND k = 2) / sum(n_amt) FILTER (WHERE won AND k = 2) AS p_avg_won,
               sum(cyc) FILTER (WHERE won AND k = 1) / sum(n_cyc) FILTER (WHERE won AND k = 1) AS c_cycle,
               sum(cyc) FILTER (WHERE won AND k = 2) / sum(n_cyc) FILTER (WHERE won AND k = 2) AS p_cycle,
               coalesce(sum(n) FILTER (WHERE k = 0 AND so_known), 0)::bigint AS c_open,
               sum(amt) FILTER (WHERE k = 0 AND so_known) AS c_open_amt,
               sum(w) FILTER (WHERE k = 0 AND so_known AND NOT stale) AS c_weighted,
               coalesce(sum(n) FILTER (WHERE k = 0 AND so_known AND stale), 0)::bigint AS c_stale,
               sum(amt) FILTER (WHERE k = 0 AND so_known AND stale) AS c_stale_amt,
               -- open at the previous end in the same state
               coalesce(sum(n) FILTER (WHERE po), 0)::bigint AS q_open, sum(amt) FILTER (WHERE po) AS q_open_amt,
               sum(w) FILTER (WHERE po AND NOT po_stale) AS q_weighted,
               coalesce(sum(n) FILTER (WHERE po_stale), 0)::bigint AS q_stale, sum(amt) FILTER (WHERE po_stale) AS q_stale_amt
          FROM g),
    -- open at the previous period's end (no close before it), valued at the amount as of the
    -- current end: a deal without an event between the two ends has the same state at both
    -- (counted above); the others (an event before the previous end and one before the
    -- current end, at or after the previous one) read their state at the previous end from
    -- the earlier states, joined to their state at the current end (read by its last event)
    pv AS (
        SELECT count(*) AS n, sum(c.amount) AS amt,
               sum(c.amount * st.probability) FILTER (WHERE NOT coalesce(p.from_at < ($1 - st.norm), false)) AS w,
               count(*) FILTER (WHERE coalesce(p.from_at < ($1 - st.norm), false)) AS n_stale,
               sum(c.amount) FILTER (WHERE coalesce(p.from_at < ($1 - st.norm), false)) AS stale_amt
          FROM crm.rollup_deal_past p
          JOIN (SELECT n.deal_id, n.amount FROM crm.rollup_deal_now n WHERE n.last_at >= $1 AND n.last_at < $2
                UNION ALL
                SELECT q.deal_id, q.amount FROM crm.rollup_deal_past q WHERE q.from_at >= $1 AND q.from_at < $2 AND q.to_at >= $2) AS c
            ON c.deal_id = p.deal_id
          LEFT JOIN st ON st.stage_order = p.open_so
         WHERE p.to_at >= $1 AND p.to_at < $2 AND p.from_at < $1 AND p.closed_at IS NULL AND p.open_so IS NOT NULL),
    -- the sum of two sums (NULL: no value in either)
    pm AS (
        SELECT dm.q_open + pv.n AS p_open,
               CASE WHEN dm.q_open_amt IS NULL THEN pv.amt WHEN pv.amt IS NULL THEN dm.q_open_amt ELSE dm.q_open_amt + pv.amt END AS p_open_amt,
               CASE WHEN dm.q_weighted IS NULL THEN pv.w WHEN pv.w IS NULL THEN dm.q_weighted ELSE dm.q_weighted + pv.w END AS p_weighted,
               dm.q_stale + pv.n_stale AS p_stale,
               CASE WHEN dm.q_stale_amt IS NULL THEN pv.stale_amt WHEN pv.stale_amt IS NULL THEN dm.q_stale_amt ELSE dm.q_stale_amt + pv.stale_amt END AS p_stale_amt
          FROM dm, pv),
    -- lost deals by the most advanced open stage they reached (as of the current end)
    lost AS (
        SELECT st.stage, st.stage_order, coalesce(l.c_amt, 0) AS c_amt, coalesce(l.p_amt, 0) AS p_amt
          FROM st LEFT JOIN (SELECT g.lost_so, sum(g.amt) FILTER (WHERE g.k = 1) AS c_amt, sum(g.amt) FILTER (WHERE g.k = 2) AS p_amt
                               FROM g WHERE g.lost_so IS NOT NULL GROUP BY 1) AS l ON l.lost_so = st.stage_order
         WHERE st.outcome = 'open'),
    rows AS (
        SELECT v.*
          FROM dm, pm,
          LATERAL (VALUES
            (12, 'win_rate', round((100.0 * c_won) / CASE WHEN (c_won + c_lost) <> 0 THEN (c_won + c_lost) END, 2), round((100.0 * p_won) / CASE WHEN (p_won + p_lost) <> 0 THEN (p_won + p_lost) END, 2)),
            (13, 'deals_won', c_won::numeric, p_won::numeric),
            (14, 'average_won_deal', round(c_avg_won, 2), round(p_avg_won, 2)),
            (15, 'sales_cycle', round(c_cycle, 2), round(p_cycle, 2)),
            (16, 'open_deals', c_open::numeric, p_open::numeric),
            (17, 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0)),
            (18, 'weighted_pipeline', round(coalesce(c_weighted, 0), 2), round(coalesce(p_weighted, 0), 2)),
            (18.1, 'stale_deals', c_stale::numeric, p_stale::numeric),
            (18.2, 'stale_pipeline_value', coalesce(c_stale_amt, 0), coalesce(p_stale_amt, 0)),
            (19, 'sales_velocity',
                 round(((c_open * (c_won::numeric / CASE WHEN (c_won + c_lost) <> 0 THEN (c_won + c_lost) END)) * c_avg_won) / CASE WHEN c_cycle <> 0 THEN c_cycle END, 2),
                 round(((p_open * (p_won::numeric / CASE WHEN (p_won + p_lost) <> 0 THEN (p_won + p_lost) END)) * p_avg_won) / CASE WHEN p_cycle <> 0 THEN p_cycle END, 2)),
            (20, 'deals_lost', c_lost::numeric, p_lost::numeric),
            (21, 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0))
          ) AS v(ord, metric, cur, prev)
        UNION ALL
        SELECT 100 + lost.stage_order, 'lost_value_at_' || lost.stage, lost.c_amt, lost.p_amt FROM lost)
    SELECT rows.metric, rows.cur, rows.prev FROM rows ORDER BY rows.ord
$sql$, crm._deal_states_sql('$2', '$3'))
        USING cur_from, cur_to, prev_from;
END
$$;

-- ==== end of section owner6 ====

-- ==== section rfm6: RFM as of the dashboard period's end kept per customer ====
-- crm.rollup_customer_state keeps, per kept end, the RFM figures of the orders before it
-- (derived data: the next refresh rebuilds the rollups in full)
ALTER TABLE crm.rollup_customer_state
    ADD COLUMN k1_last_order_at timestamptz, ADD COLUMN k1_orders bigint, ADD COLUMN k1_amount numeric,
    ADD COLUMN k2_last_order_at timestamptz, ADD COLUMN k2_orders bigint, ADD COLUMN k2_amount numeric;
COMMENT ON TABLE crm.rollup_customer_state IS
'Rollup state (derived, not dumped): one row per customer of the customers copy, the order totals or the contact totals (customer_id NULL = the customers rows without an id): the number of customers rows (info_n) and, when it is 1, that row''s created_at, channel and manager; the earliest created_at (since); first and last order and gross profit (crm.rollup_customer_orders) with the number of orders with a gross profit (gp_n); first and last real contact (crm.rollup_customer_contacts); for the ends of crm.rollup_customer_state_ends (slot 1: k1_*, slot 2: k2_*) the revenue and classes kept in crm.rollup_customer_classes, the last real contact before the end and the RFM figures of the orders before the end (last order, number of orders, sum of the amounts with the scale of a sum over those orders; NULL without an order before it).';
-- The scores as of the kept end of the dashboard period (slot 1 of
-- crm.rollup_customer_state_ends; the start, slot 2, is scored when read):
-- crm._rfm_sql's rows over the figures kept in the slot's columns of
-- crm.rollup_customer_state, computed when that table is rebuilt (the only
-- time the figures before a kept end change: an order before it changed, or
-- the ends moved), in the order of the ids; the segment is not kept (it
-- follows crm.rfm_segment_overrides when read).
CREATE TABLE crm.rollup_rfm_scores (
    slot         integer NOT NULL,
    customer_id  text NOT NULL,
    recency_days integer,
    frequency    bigint,
    monetary     numeric,
    r            integer,
    f            integer,
    m            integer,
    PRIMARY KEY (slot, customer_id)
);
COMMENT ON TABLE crm.rollup_rfm_scores IS
'Rollup state (derived, not dumped): for the end of the dashboard period (slot 1 of crm.rollup_customer_state_ends) when listed in crm.rollup_rfm_scored, per customer with an order before that end, crm.rfm_report''s figures and scores as of the moment just before the end (recency days, orders, sum of the amounts, R, F, M), from the figures kept in crm.rollup_customer_state.';
CREATE TABLE crm.rollup_rfm_scored (
    slot   integer PRIMARY KEY,
    end_at timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_rfm_scored IS
'Rollup state (derived, not dumped): the slot (and its end) whose scores crm.rollup_rfm_scores holds (slot 1 at most); a slot whose scoring failed (an amount sum not finite: crm.quantile_score''s error) is left out and scored when read.';

CREATE OR REPLACE FUNCTION crm._rollup_fast_rfm_scores() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB'
AS $$
DECLARE
    x  record;
    n  bigint;
    nn bigint := 0;
BEGIN
    TRUNCATE crm.rollup_rfm_scores, crm.rollup_rfm_scored;
    -- the end of the dashboard period (what crm.v_rfm reads)
    FOR x IN SELECT e.slot, e.end_at FROM crm.rollup_customer_state_ends e WHERE e.slot = 1 LOOP
        BEGIN
            EXECUTE format($q$
INSERT INTO crm.rollup_rfm_scores (slot, customer_id, recency_days, frequency, monetary, r, f, m)
SELECT $2, x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m
  FROM (%s) AS x(customer, recency_days, frequency, monetary, r, f, m, rfm_code, segment)
$q$, crm._rfm_sql(format($per$
SELECT s.customer_id, s.k%1$s_last_order_at, s.k%1$s_orders, s.k%1$s_amount, s.customer_id
  FROM crm.rollup_customer_state s
 WHERE s.customer_id IS NOT NULL AND s.k%1$s_orders IS NOT NULL
 ORDER BY s.customer_id
$per$, x.slot)))
            USING x.end_at - '1 microsecond'::interval, x.slot;
            GET DIAGNOSTICS n = ROW_COUNT;
            INSERT INTO crm.rollup_rfm_scored (slot, end_at) VALUES (x.slot, x.end_at);
            nn := nn + n;
        EXCEPTION WHEN data_exception THEN
            NULL;   -- not kept: scored when read (the same error as the full path)
        END;
    END LOOP;
    RETURN nn;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_rfm_scores() IS
'Rebuilds crm.rollup_rfm_scores and crm.rollup_rfm_scored: for the kept end of the dashboard period (slot 1 of crm.rollup_customer_state_ends), the RFM rows (crm._rfm_sql) of the figures kept in crm.rollup_customer_state, as of the moment just before the end; a slot whose scoring raises a data exception is left out; rows written.';
CREATE OR REPLACE FUNCTION crm._rollup_fast_state_rebuild() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB'
-- every customer: hash joins (a caller keeping a few customers turns them off)
SET enable_hashjoin = on
SET enable_mergejoin = on
AS $$
DECLARE
    n  bigint;
    e1 timestamptz;
    e2 timestamptz;
BEGIN
    TRUNCATE crm.rollup_customer_state, crm.rollup_customer_state_ends;
    INSERT INTO crm.rollup_customer_state_ends (slot, end_at)
    SELECT row_number() OVER (ORDER BY x.end_at DESC), x.end_at FROM crm.rollup_customer_class_ends x;
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    INSERT INTO crm.rollup_customer_state
    SELECT coalesce(i.customer_id, o.customer_id, c.customer_id), coalesce(i.n, 0), i.created_at, i.channel, i.manager_id, i.since,
           o.first_at, o.last_at, o.gp, o.gp_n, c.first_at, c.last_at,
           k1.rev, k1.cov_class, k1.abc_class,
           CASE WHEN c.last_at < e1 THEN c.last_at WHEN c.first_at < e1 THEN ce.k1_contact END,
           k2.rev, k2.cov_class, k2.abc_class,
           CASE WHEN c.last_at < e2 THEN c.last_at WHEN c.first_at < e2 THEN ce.k2_contact END,
           -- the RFM figures before each end: the summary when every order is before it
           CASE WHEN o.last_at < e1 THEN o.last_at WHEN o.first_at < e1 THEN ro.k1_last END,
           CASE WHEN o.last_at < e1 THEN o.orders WHEN o.first_at < e1 THEN ro.k1_n END,
           CASE WHEN o.last_at < e1 THEN o.amount WHEN o.first_at < e1 THEN ro.k1_amount END,
           CASE WHEN o.last_at < e2 THEN o.last_at WHEN o.first_at < e2 THEN ro.k2_last END,
           CASE WHEN o.last_at < e2 THEN o.orders WHEN o.first_at < e2 THEN ro.k2_n END,
           CASE WHEN o.last_at < e2 THEN o.amount WHEN o.first_at < e2 THEN ro.k2_amount END
      FROM (SELECT ci.customer_id, count(*)::integer AS n,
                   CASE WHEN count(*) = 1 THEN min(ci.created_at) END AS created_at,
                   CASE WHEN count(*) = 1 THEN min(ci.channel) END AS channel,
                   CASE WHEN count(*) = 1 THEN min(ci.manager_id) END AS manager_id,
                   min(ci.created_at) AS since
              FROM crm.rollup_customer_info ci GROUP BY 1) i
      FULL JOIN (SELECT t.* FROM crm.rollup_customer_orders t WHERE t.customer_id IS NOT NULL) o ON o.customer_id = i.customer_id
      FULL JOIN crm.rollup_customer_contacts c ON c.customer_id = coalesce(i.customer_id, o.customer_id)
      LEFT JOIN crm.rollup_customer_classes k1 ON k1.end_at = e1 AND k1.customer_id = o.customer_id
      LEFT JOIN crm.rollup_customer_classes k2 ON k2.end_at = e2 AND k2.customer_id = o.customer_id
      -- the last real contact before each end, for the customers contacted at or after it
      LEFT JOIN (SELECT x.customer_id, max(x.occurred_at) FILTER (WHERE x.occurred_at < e1) AS k1_contact,
                        max(x.occurred_at) FILTER (WHERE x.occurred_at < e2) AS k2_contact
                   FROM crm.rollup_real_contacts x
                  WHERE x.customer_id IN (SELECT t.customer_id FROM crm.rollup_customer_contacts t WHERE t.last_at >= least(e1, e2))
                  GROUP BY 1) ce ON ce.customer_id = c.customer_id
      -- the orders before each end, for the customers with orders before it and at or after it
      LEFT JOIN (SELECT l.customer_id,
                        max(l.ordered_at) FILTER (WHERE l.ordered_at < e1) AS k1_last, count(*) FILTER (WHERE l.ordered_at < e1) AS k1_n,
                        sum(l.amount) FILTER (WHERE l.ordered_at < e1) AS k1_amount,
                        max(l.ordered_at) FILTER (WHERE l.ordered_at < e2) AS k2_last, count(*) FILTER (WHERE l.ordered_at < e2) AS k2_n,
                        sum(l.amount) FILTER (WHERE l.ordered_at < e2) AS k2_amount
                   FROM crm.rollup_order_lines l
                  WHERE l.ordered_at < greatest(e1, e2)
                    AND l.customer_id IN (SELECT t.customer_id FROM crm.rollup_customer_orders t
                                           WHERE t.last_at >= least(e1, e2) AND t.first_at < greatest(e1, e2))
                  GROUP BY 1) ro ON ro.customer_id = o.customer_id
     -- in the order of the ids: crm._fast_rfm_sql reads the table by its unique index
     ORDER BY 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the RFM scores as of the kept ends (src/dashboard_fast_planrfm.sql)
    RETURN n + crm._rollup_fast_rfm_scores();
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state_rebuild() IS
'Rebuilds crm.rollup_customer_state (one row per customer, in the order of the ids) and crm.rollup_customer_state_ends from the customers copy, the order and contact totals, the kept classes and the order lines before the kept ends; rows written.';
CREATE OR REPLACE FUNCTION crm._rollup_fast_state(ids text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the given customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n  bigint;
    m  bigint := 0;
    e1 timestamptz;
    e2 timestamptz;
    nul boolean := array_position(ids, NULL) IS NOT NULL;
BEGIN
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    ids := ARRAY(SELECT DISTINCT u.id FROM unnest(ids) AS u(id) WHERE u.id IS NOT NULL);
    DELETE FROM crm.rollup_customer_state s USING unnest(ids) AS u(id) WHERE s.customer_id = u.id;
    INSERT INTO crm.rollup_customer_state
    SELECT u.id, i.n, i.created_at, i.channel, i.manager_id, i.since,
           o.first_at, o.last_at, o.gp, o.gp_n, c.first_at, c.last_at,
           k1.rev, k1.cov_class, k1.abc_class,
           CASE WHEN c.last_at < e1 THEN c.last_at
                WHEN c.first_at < e1 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x WHERE x.customer_id = u.id AND x.occurred_at < e1) END,
           k2.rev, k2.cov_class, k2.abc_class,
           CASE WHEN c.last_at < e2 THEN c.last_at
                WHEN c.first_at < e2 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x WHERE x.customer_id = u.id AND x.occurred_at < e2) END,
           CASE WHEN o.last_at < e1 THEN o.last_at WHEN o.first_at < e1 THEN ro.k1_last END,
           CASE WHEN o.last_at < e1 THEN o.orders WHEN o.first_at < e1 THEN ro.k1_n END,
           CASE WHEN o.last_at < e1 THEN o.amount WHEN o.first_at < e1 THEN ro.k1_amount END,
           CASE WHEN o.last_at < e2 THEN o.last_at WHEN o.first_at < e2 THEN ro.k2_last END,
           CASE WHEN o.last_at < e2 THEN o.orders WHEN o.first_at < e2 THEN ro.k2_n END,
           CASE WHEN o.last_at < e2 THEN o.amount WHEN o.first_at < e2 THEN ro.k2_amount END
      FROM unnest(ids) AS u(id)
     CROSS JOIN LATERAL (
            SELECT count(*)::integer AS n,
                   CASE WHEN count(*) = 1 THEN min(ci.created_at) END AS created_at,
                   CASE WHEN count(*) = 1 THEN min(ci.channel) END AS channel,
                   CASE WHEN count(*) = 1 THEN min(ci.manager_id) END AS manager_id,
                   min(ci.created_at) AS since
              FROM crm.rollup_customer_info ci WHERE ci.customer_id = u.id) i
      LEFT JOIN crm.rollup_customer_orders o ON o.customer_id = u.id
      LEFT JOIN crm.rollup_customer_contacts c ON c.customer_id = u.id
      LEFT JOIN crm.rollup_customer_classes k1 ON k1.end_at = e1 AND k1.customer_id = u.id
      LEFT JOIN crm.rollup_customer_classes k2 ON k2.end_at = e2 AND k2.customer_id = u.id
      -- the orders before each end (by index), for a customer with orders before it and at or after it
      LEFT JOIN LATERAL (
            SELECT max(l.ordered_at) FILTER (WHERE l.ordered_at < e1) AS k1_last, count(*) FILTER (WHERE l.ordered_at < e1) AS k1_n,
                   sum(l.amount) FILTER (WHERE l.ordered_at < e1) AS k1_amount,
                   max(l.ordered_at) FILTER (WHERE l.ordered_at < e2) AS k2_last, count(*) FILTER (WHERE l.ordered_at < e2) AS k2_n,
                   sum(l.amount) FILTER (WHERE l.ordered_at < e2) AS k2_amount
              FROM crm.rollup_order_lines l
             WHERE o.last_at >= least(e1, e2) AND o.first_at < greatest(e1, e2)
               AND l.customer_id = u.id AND l.ordered_at < greatest(e1, e2)) ro ON true
     WHERE i.n > 0 OR o.customer_id IS NOT NULL OR c.customer_id IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF nul THEN
        DELETE FROM crm.rollup_customer_state s WHERE s.customer_id IS NULL;
        INSERT INTO crm.rollup_customer_state (customer_id, info_n, created_at, channel, manager_id, since)
        SELECT NULL, count(*), CASE WHEN count(*) = 1 THEN min(ci.created_at) END, CASE WHEN count(*) = 1 THEN min(ci.channel) END,
               CASE WHEN count(*) = 1 THEN min(ci.manager_id) END, min(ci.created_at)
          FROM crm.rollup_customer_info ci WHERE ci.customer_id IS NULL HAVING count(*) > 0;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state(text[]) IS
'Recomputes the rows of crm.rollup_customer_state of the given customers (a NULL element: the customers rows without an id) from the customers copy, the order and contact totals, the kept classes and the order lines before the kept ends; rows written.';
DROP FUNCTION crm._fast_rfm_sql();
CREATE FUNCTION crm._fast_rfm_sql(slot integer, scored boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT CASE WHEN slot IN (1, 2) AND scored THEN format($q$
SELECT s.customer_id, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m, crm.rfm_segment(s.r, s.f)
  FROM crm.rollup_rfm_scores s
 WHERE s.slot OPERATOR(pg_catalog.=) %s
 ORDER BY s.customer_id
$q$, slot) ELSE format($q$
SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
  FROM (%s) AS x(customer, recency_days, frequency, monetary, r, f, m, rfm_code, segment)
$q$, crm._rfm_sql(CASE WHEN slot IN (1, 2) THEN format($per$
SELECT s.customer_id, s.k%1$s_last_order_at, s.k%1$s_orders, s.k%1$s_amount, s.customer_id
  FROM crm.rollup_customer_state s
 WHERE s.customer_id IS NOT NULL AND s.k%1$s_orders IS NOT NULL
 ORDER BY s.customer_id
$per$, slot) ELSE $per$
SELECT t.customer_id,
       CASE WHEN a.n IS NULL THEN t.last_at
            -- one line after $1: it is the last, the one before it is the last up to $1
            WHEN a.n OPERATOR(pg_catalog.=) 1 THEN t.prev_at
            ELSE (SELECT l.ordered_at FROM crm.rollup_order_lines l
                   WHERE l.customer_id OPERATOR(pg_catalog.=) t.customer_id AND l.ordered_at OPERATOR(pg_catalog.<=) $1
                   ORDER BY l.ordered_at DESC LIMIT 1) END,
       t.orders OPERATOR(pg_catalog.-) coalesce(a.n, 0),
       CASE WHEN a.n IS NULL OR a.amount_n OPERATOR(pg_catalog.=) 0 THEN t.amount
            WHEN a.amount_n OPERATOR(pg_catalog.=) t.amount_n THEN NULL
            WHEN pg_catalog.scale(t.amount) IS NOT NULL
                 AND (a.sc_max OPERATOR(pg_catalog.<) pg_catalog.scale(t.amount)
                      OR a.sc_min OPERATOR(pg_catalog.=) a.sc_max AND t.scale_n OPERATOR(pg_catalog.>) a.amount_n)
            THEN t.amount OPERATOR(pg_catalog.-) a.amount
            ELSE (SELECT pg_catalog.sum(l.amount) FROM crm.rollup_order_lines l
                   WHERE l.customer_id OPERATOR(pg_catalog.=) t.customer_id AND l.ordered_at OPERATOR(pg_catalog.<=) $1) END,
       t.customer_id
  FROM crm.rollup_customer_orders t
  LEFT JOIN (
        -- the lines after $1 per customer (by time): count, sum, non-NULL amounts and
        -- the smallest and largest scale of an amount
        SELECT l.customer_id, pg_catalog.count(*) AS n, pg_catalog.sum(l.amount) AS amount, pg_catalog.count(l.amount) AS amount_n,
               pg_catalog.min(pg_catalog.scale(l.amount)) AS sc_min, pg_catalog.max(pg_catalog.scale(l.amount)) AS sc_max
          FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>) $1
         GROUP BY 1) AS a ON a.customer_id OPERATOR(pg_catalog.=) t.customer_id
 WHERE t.customer_id IS NOT NULL AND t.first_at OPERATOR(pg_catalog.<=) $1
 -- (a subquery of its own, each row's figures computed once; in the order of the ids: no sort after the scoring)
 ORDER BY t.customer_id
$per$ END)) END
$fn$;
COMMENT ON FUNCTION crm._fast_rfm_sql(integer, boolean) IS
'SQL text ($1 = the moment) of crm.dashboard_rfm''s rows from the rollups: the same rows, ordered by customer. Slot 1 or 2 (the moment is just before that kept end of crm.rollup_customer_state_ends): with scored true the rows kept in crm.rollup_rfm_scores (the segment by crm.rfm_segment), else crm._rfm_sql over the figures kept in that slot''s columns of crm.rollup_customer_state; slot NULL: crm._rfm_sql over crm.rollup_customer_orders less the lines of crm.rollup_order_lines after the moment.';
CREATE OR REPLACE FUNCTION crm.dashboard_rfm(as_of date)
RETURNS TABLE (customer_id text, recency_days int, frequency bigint, monetary numeric,
               r int, f int, m int, segment text)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    q text;
    e timestamptz;
    k integer;
    sc boolean;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    q := 'SELECT customer_id, ordered_at, amount FROM ' OPERATOR(pg_catalog.||) crm._source_sql('orders');
    e := (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval;
    -- from the rollups when they may stand in (crm._rollups_usable, docs/rollups.md);
    -- the orders query checked first as crm.rfm_report checks it (the same errors)
    IF crm._rollups_usable() THEN
        PERFORM crm._check_inner_query('rfm_report', q, ARRAY['customer any', 'ordered_at timestamptz', 'amount numeric']);
        -- a kept end of the per-customer table (the dashboard period's): its figures, and its
        -- scores when kept, as they are
        SELECT x.slot, EXISTS (SELECT 1 FROM crm.rollup_rfm_scored y
                                WHERE y.slot OPERATOR(pg_catalog.=) x.slot AND y.end_at OPERATOR(pg_catalog.=) x.end_at)
          INTO k, sc
          FROM crm.rollup_customer_state_ends x
         WHERE x.end_at OPERATOR(pg_catalog.=) (e OPERATOR(pg_catalog.+) '1 microsecond'::pg_catalog.interval);
        RETURN QUERY EXECUTE crm._fast_rfm_sql(k, sc) USING e;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
      FROM crm.rfm_report(q, e) AS x
     ORDER BY x.customer;
END
$$;
COMMENT ON FUNCTION crm.dashboard_rfm(date) IS
'RFM of every buyer as of the end of a day, from the orders source, through crm.rfm_report: days since the last order, orders, revenue, quantile scores 1..5 and the segment.';
TRUNCATE crm.rollup_customer_state, crm.rollup_customer_state_ends;
UPDATE crm.rollup_status SET needs_full = true;
-- ==== end of section rfm6 ====

-- ==== section ownerkeep: the owner dashboard's per-entity rows kept for the dashboard period ====
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
CREATE OR REPLACE FUNCTION crm._rollup_owner_keep(parts text[], bounds timestamptz[]) RETURNS bigint
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
CREATE OR REPLACE FUNCTION crm._fast_owner_dashboard(period_from date, period_to date)
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
CREATE OR REPLACE FUNCTION crm.refresh_rollups(full boolean DEFAULT false)
RETURNS TABLE (part text, from_day date, rows_written bigint)
LANGUAGE plpgsql VOLATILE
-- big scans and hash aggregates on a full refresh
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    names   text[];
    bounds  timestamptz[];
    tz      text;
    old_tz  text := pg_catalog.current_setting('TimeZone');
    t0      timestamptz;
    nrows   bigint := 0;
    nparts  int;
    ts_from timestamptz;
    is_full boolean;
    rel     regclass;
BEGIN
    -- one refresh at a time; writers are never blocked
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('crm.refresh_rollups'), 21);
    UPDATE crm.rollup_status s SET started_at = pg_catalog.clock_timestamp(), finished_at = NULL, phase = 'changes';
    SELECT pg_catalog.array_agg(b.part ORDER BY b.part), pg_catalog.array_agg(b.bound ORDER BY b.part), pg_catalog.min(b.time_zone)
      INTO names, bounds, tz FROM crm._rollup_begin(refresh_rollups.full) AS b;
    nparts := coalesce(pg_catalog.cardinality(names), 0);
    is_full := coalesce((SELECT pg_catalog.bool_and(x OPERATOR(pg_catalog.=) '-infinity') FROM pg_catalog.unnest(bounds) AS x), false);
    IF tz IS NOT NULL THEN
        -- days are cut in the time zone the rollups were built in
        PERFORM pg_catalog.set_config('TimeZone', tz, true);
    END IF;
    FOR i IN 1 .. nparts LOOP
        t0 := pg_catalog.clock_timestamp();
        UPDATE crm.rollup_status s SET phase = names[i], done = i OPERATOR(pg_catalog.-) 1, total = nparts;
        -- progress as every long call of the extension reports it: in
        -- pg_stat_activity.query for other sessions, as a NOTICE at intervals
        PERFORM crm._progress(pg_catalog.format('crm.refresh_rollups: part %s from %s', names[i],
                                  CASE WHEN pg_catalog.isfinite(bounds[i]) THEN bounds[i]::pg_catalog.date::pg_catalog.text ELSE 'the start' END),
                              (i OPERATOR(pg_catalog.-) 1)::pg_catalog.int8, nparts::pg_catalog.int8);
        -- whole days from the day of the bound
        ts_from := CASE WHEN bounds[i] OPERATOR(pg_catalog.=) '-infinity' THEN bounds[i]
                        ELSE bounds[i]::pg_catalog.date::pg_catalog.timestamptz END;
        DELETE FROM crm.rollup_daily r
         WHERE r.day OPERATOR(pg_catalog.>=) ts_from::pg_catalog.date
           AND r.metric OPERATOR(pg_catalog.=) ANY ((SELECT p.metrics FROM crm._rollup_parts() p WHERE p.part OPERATOR(pg_catalog.=) names[i])::pg_catalog.text[]);
        part := names[i];
        from_day := CASE WHEN pg_catalog.isfinite(ts_from) THEN ts_from::pg_catalog.date END;
        rows_written := CASE names[i]
            WHEN 'leads' THEN crm._rollup_leads(ts_from)
            WHEN 'orders' THEN crm._rollup_orders(ts_from)
            WHEN 'deals' THEN crm._rollup_deals(ts_from)
            WHEN 'spend' THEN crm._rollup_spend(ts_from)
            WHEN 'invoices' THEN crm._rollup_invoices(ts_from)
            WHEN 'contacts' THEN crm._rollup_contacts(ts_from) END;
        nrows := nrows OPERATOR(pg_catalog.+) rows_written;
        IF is_full OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0 OPERATOR(pg_catalog.>) '5 seconds'::pg_catalog.interval THEN
            RAISE NOTICE 'crm.refresh_rollups: part % (% of %) from %: % rows in % s', names[i], i, nparts,
                coalesce(from_day::pg_catalog.text, 'the start'), rows_written,
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0)::pg_catalog.numeric, 1);
        END IF;
        RETURN NEXT;
    END LOOP;
    PERFORM pg_catalog.set_config('TimeZone', old_tz, true);
    -- after a full rebuild the planner must know the rollup tables at once (the
    -- reports join them; autovacuum comes too late for the first dashboard):
    -- the ones this role owns
    IF is_full AND nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: analyzing the rollup tables', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
        FOR rel IN SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c
                    WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::pg_catalog.regnamespace AND c.relkind OPERATOR(pg_catalog.=) 'r'
                      AND c.relname OPERATOR(pg_catalog.~~) 'rollup\_%' AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
                    ORDER BY c.relname LOOP
            EXECUTE pg_catalog.format('ANALYZE %s', rel);
        END LOOP;
    END IF;
    -- the owner dashboard's per-entity rows for the dashboard period (when a part changed them)
    PERFORM crm._rollup_owner_keep(names, bounds);
    IF nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: finished', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
    END IF;
    UPDATE crm.rollup_status s
       SET phase = 'done', done = nparts, total = nparts,
           finished_at = pg_catalog.clock_timestamp(), last_mode = CASE WHEN is_full THEN 'full' ELSE 'incremental' END,
           last_rows = nrows;
END
$$;
COMMENT ON FUNCTION crm.refresh_rollups(boolean) IS
'Brings the daily rollups (crm.rollup_daily, crm.v_daily) up to date: recomputes, per part, every day at or after the earliest change the capture triggers recorded (committed changes only), or everything when full => true or a full rebuild is needed; one row per part recomputed. One refresh runs at a time.';
-- ==== end of section ownerkeep ====

-- ==== section review5: the per-customer table's contact columns kept by their own function ====
-- (crm._rollup_fast_state_part lost its part orders to crm._rollup_fast_order_totals)
DROP FUNCTION crm._rollup_fast_state_part(text, text[], timestamptz);

-- The contact columns, for the given customers, in place (part contacts; the
-- order columns are set by crm._rollup_fast_order_totals; the last contact
-- before a kept end changes only when from_ts is before that end).  A
-- customer new to the table or left without customers row, orders and
-- contacts goes through crm._rollup_fast_state.  The kept classes change only
-- with an order before a kept end, and then crm._rollup_fast_classes rebuilds
-- the whole table.
CREATE FUNCTION crm._rollup_fast_state_contacts(ids text[], from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the given customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n    bigint;
    e1   timestamptz;
    e2   timestamptz;
    rest text[];
    done text[];
BEGIN
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    WITH w AS (
        UPDATE crm.rollup_customer_state s SET first_contact_at = c.first_at, last_contact_at = c.last_at,
               k1_contact = CASE WHEN from_ts >= e1 THEN s.k1_contact
                                 WHEN c.last_at < e1 THEN c.last_at
                                 WHEN c.first_at < e1 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x
                                                             WHERE x.customer_id = u.id AND x.occurred_at < e1) END,
               k2_contact = CASE WHEN from_ts >= e2 THEN s.k2_contact
                                 WHEN c.last_at < e2 THEN c.last_at
                                 WHEN c.first_at < e2 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x
                                                             WHERE x.customer_id = u.id AND x.occurred_at < e2) END
          FROM unnest(ids) AS u(id) JOIN crm.rollup_customer_contacts c ON c.customer_id = u.id
         WHERE s.customer_id = u.id
        RETURNING s.customer_id)
    SELECT pg_catalog.array_agg(w.customer_id) INTO done FROM w;
    n := coalesce(cardinality(done), 0);
    -- the others: new to the table, or without contacts now
    rest := ARRAY(SELECT unnest(ids) EXCEPT SELECT unnest(done));
    IF cardinality(rest) > 0 THEN
        n := n + crm._rollup_fast_state(rest);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state_contacts(text[], timestamptz) IS
'Sets in crm.rollup_customer_state the contact totals and the last contacts before the kept ends (for changes from the given moment on) of the given customers, in place (part contacts); customers new to the table or without contacts any more through crm._rollup_fast_state; rows written.';
-- ==== end of section review5 ====

-- ==== section todokeep: the to-do list kept as of a moment with the moment until which it holds ====
-- (docs/rollups.md 5.7) crm.rollup_status.changed_at: when a refresh last recomputed a part
ALTER TABLE crm.rollup_status ADD COLUMN changed_at timestamptz;
UPDATE crm.rollup_status SET changed_at = finished_at;
COMMENT ON TABLE crm.rollup_status IS
'State of the rollups (one row): when and in which time zone they were last built in full, the hash of the sources and stages they were built from, the last refresh (phase, parts done of total, start, end, mode, rows written), and when a refresh last recomputed a part (changed_at: the rollups have not changed since).';
CREATE OR REPLACE FUNCTION crm.refresh_rollups(full boolean DEFAULT false)
RETURNS TABLE (part text, from_day date, rows_written bigint)
LANGUAGE plpgsql VOLATILE
-- big scans and hash aggregates on a full refresh
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    names   text[];
    bounds  timestamptz[];
    tz      text;
    old_tz  text := pg_catalog.current_setting('TimeZone');
    t0      timestamptz;
    nrows   bigint := 0;
    nparts  int;
    ts_from timestamptz;
    is_full boolean;
    rel     regclass;
BEGIN
    -- one refresh at a time; writers are never blocked
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('crm.refresh_rollups'), 21);
    UPDATE crm.rollup_status s SET started_at = pg_catalog.clock_timestamp(), finished_at = NULL, phase = 'changes';
    SELECT pg_catalog.array_agg(b.part ORDER BY b.part), pg_catalog.array_agg(b.bound ORDER BY b.part), pg_catalog.min(b.time_zone)
      INTO names, bounds, tz FROM crm._rollup_begin(refresh_rollups.full) AS b;
    nparts := coalesce(pg_catalog.cardinality(names), 0);
    is_full := coalesce((SELECT pg_catalog.bool_and(x OPERATOR(pg_catalog.=) '-infinity') FROM pg_catalog.unnest(bounds) AS x), false);
    IF tz IS NOT NULL THEN
        -- days are cut in the time zone the rollups were built in
        PERFORM pg_catalog.set_config('TimeZone', tz, true);
    END IF;
    FOR i IN 1 .. nparts LOOP
        t0 := pg_catalog.clock_timestamp();
        UPDATE crm.rollup_status s SET phase = names[i], done = i OPERATOR(pg_catalog.-) 1, total = nparts;
        -- progress as every long call of the extension reports it: in
        -- pg_stat_activity.query for other sessions, as a NOTICE at intervals
        PERFORM crm._progress(pg_catalog.format('crm.refresh_rollups: part %s from %s', names[i],
                                  CASE WHEN pg_catalog.isfinite(bounds[i]) THEN bounds[i]::pg_catalog.date::pg_catalog.text ELSE 'the start' END),
                              (i OPERATOR(pg_catalog.-) 1)::pg_catalog.int8, nparts::pg_catalog.int8);
        -- whole days from the day of the bound
        ts_from := CASE WHEN bounds[i] OPERATOR(pg_catalog.=) '-infinity' THEN bounds[i]
                        ELSE bounds[i]::pg_catalog.date::pg_catalog.timestamptz END;
        DELETE FROM crm.rollup_daily r
         WHERE r.day OPERATOR(pg_catalog.>=) ts_from::pg_catalog.date
           AND r.metric OPERATOR(pg_catalog.=) ANY ((SELECT p.metrics FROM crm._rollup_parts() p WHERE p.part OPERATOR(pg_catalog.=) names[i])::pg_catalog.text[]);
        part := names[i];
        from_day := CASE WHEN pg_catalog.isfinite(ts_from) THEN ts_from::pg_catalog.date END;
        rows_written := CASE names[i]
            WHEN 'leads' THEN crm._rollup_leads(ts_from)
            WHEN 'orders' THEN crm._rollup_orders(ts_from)
            WHEN 'deals' THEN crm._rollup_deals(ts_from)
            WHEN 'spend' THEN crm._rollup_spend(ts_from)
            WHEN 'invoices' THEN crm._rollup_invoices(ts_from)
            WHEN 'contacts' THEN crm._rollup_contacts(ts_from) END;
        nrows := nrows OPERATOR(pg_catalog.+) rows_written;
        IF is_full OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0 OPERATOR(pg_catalog.>) '5 seconds'::pg_catalog.interval THEN
            RAISE NOTICE 'crm.refresh_rollups: part % (% of %) from %: % rows in % s', names[i], i, nparts,
                coalesce(from_day::pg_catalog.text, 'the start'), rows_written,
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0)::pg_catalog.numeric, 1);
        END IF;
        RETURN NEXT;
    END LOOP;
    PERFORM pg_catalog.set_config('TimeZone', old_tz, true);
    -- after a full rebuild the planner must know the rollup tables at once (the
    -- reports join them; autovacuum comes too late for the first dashboard):
    -- the ones this role owns
    IF is_full AND nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: analyzing the rollup tables', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
        FOR rel IN SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c
                    WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::pg_catalog.regnamespace AND c.relkind OPERATOR(pg_catalog.=) 'r'
                      AND c.relname OPERATOR(pg_catalog.~~) 'rollup\_%' AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
                    ORDER BY c.relname LOOP
            EXECUTE pg_catalog.format('ANALYZE %s', rel);
        END LOOP;
    END IF;
    -- the owner dashboard's per-entity rows for the dashboard period (when a part changed them)
    PERFORM crm._rollup_owner_keep(names, bounds);
    IF nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: finished', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
    END IF;
    UPDATE crm.rollup_status s
       SET phase = 'done', done = nparts, total = nparts,
           finished_at = pg_catalog.clock_timestamp(), last_mode = CASE WHEN is_full THEN 'full' ELSE 'incremental' END,
           last_rows = nrows,
           -- a refresh that recomputed nothing leaves what was kept from the rollups valid
           changed_at = CASE WHEN nparts OPERATOR(pg_catalog.>) 0 THEN pg_catalog.clock_timestamp() ELSE s.changed_at END;
END
$$;
COMMENT ON FUNCTION crm.refresh_rollups(boolean) IS
'Brings the daily rollups (crm.rollup_daily, crm.v_daily) up to date: recomputes, per part, every day at or after the earliest change the capture triggers recorded (committed changes only), or everything when full => true or a full rebuild is needed; one row per part recomputed. One refresh runs at a time.';

CREATE FUNCTION crm._fast_todo_sql(as_of timestamptz) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN crm._fast_coverage_sql(as_of, format($sql$,
cfg AS MATERIALIZED (SELECT crm._lead_sla() AS sla, crm._reactivation_after() AS react),
-- unanswered: created more than the SLA before as_of, no first response before as_of
ua AS (
    SELECT l.lead_id, l.created_at, l.month, l.channel, l.manager_id, l.created_at + cfg.sla AS since, cfg.sla
      FROM crm.rollup_leads l CROSS JOIN cfg
     WHERE l.created_at + cfg.sla < $1 AND (l.first_response IS NULL OR l.first_response >= $1)),
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- open at as_of (no won or lost event before it) in an open stage
sd AS (
    SELECT d.deal_id, d.last_at, d.amount, d.manager_id, d.open_so, %2$s AS norm
      FROM %1$s AS d WHERE d.open_so IS NOT NULL AND d.closed_at IS NULL),
oi AS (
    SELECT i.invoice_id, i.customer_id, i.issued_at, i.due_at, i.amount FROM crm.rollup_invoices i
     WHERE i.issued_at < $1 AND (i.paid_at IS NULL OR i.paid_at >= $1) AND i.due_at < $1),
-- exactly one order before as_of, older than the period, no real contact at or
-- after it before as_of (the contact state; the contacts copy by index only
-- when the last contact is at or after as_of)
ra AS (
    SELECT f.customer_id, f.first_at AS ordered_at, f.first_amount AS amount, f.first_at + cfg.react AS since
      FROM crm.rollup_customer_orders f CROSS JOIN cfg
     WHERE f.customer_id IS NOT NULL AND f.first_at + cfg.react < $1 AND (f.second_at IS NULL OR f.second_at >= $1)
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_contacts s
                        WHERE s.customer_id = f.customer_id AND s.last_at >= f.first_at AND s.first_at < $1
                          AND (s.last_at < $1 OR EXISTS (SELECT 1 FROM crm.rollup_real_contacts r
                                                          WHERE r.customer_id = f.customer_id AND r.occurred_at >= f.first_at
                                                            AND r.occurred_at < $1)))),
items AS (
    SELECT ua.manager_id, 'unanswered_lead'::text AS kind, ua.lead_id AS entity_id, ua.since,
           round(coalesce(cpl.cost_per_lead, 0), 2) AS value,
           'lead from ' || coalesce(ua.channel, '(unknown channel)') || ' created '
           || coalesce(to_char(ua.created_at, 'YYYY-MM-DD HH24:MI'), '') || ', no first response (SLA '
           || coalesce(ua.sla::text, '') || ')' AS note, NULL::timestamptz AS day_from, NULL::text AS note_tail
      FROM ua LEFT JOIN cpl ON cpl.channel = ua.channel AND cpl.month = ua.month
    UNION ALL
    SELECT sd.manager_id, 'stale_deal', sd.deal_id, sd.last_at + sd.norm, sd.amount,
           'stage ' || coalesce(ps.stage, '') || ' idle ', sd.last_at, ' days (norm ' || coalesce(ps.max_days::text, '') || ')'
      FROM sd JOIN crm.pipeline_stages ps ON ps.stage_order = sd.open_so
     WHERE sd.last_at < ($1 - sd.norm)
    UNION ALL
    SELECT cust.manager_id, 'overdue_invoice', oi.invoice_id, oi.due_at, oi.amount,
           'invoice issued ' || coalesce(oi.issued_at::date::text, '') || ', due ' || coalesce(oi.due_at::date::text, '') || ', ',
           oi.due_at, ' days overdue'
      FROM oi LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = oi.customer_id) AS cust ON true
    UNION ALL
    SELECT r.manager_id, 'overdue_contact', r.customer_id, r.due, coalesce(r.rev, 0),
           'class ' || coalesce(r.cls, '') || ', last real contact ' || coalesce(r.last_at::date::text, 'never')
           || ', next contact was due ' || coalesce(r.due::date::text, ''), NULL, NULL
      FROM r WHERE NOT r.covered
    UNION ALL
    SELECT cust.manager_id, 'reactivation', ra.customer_id, ra.since, ra.amount,
           'one order on ' || coalesce(ra.ordered_at::date::text, '') || ', no real contact since', NULL, NULL
      FROM ra LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = ra.customer_id) AS cust ON true)
-- sorted by value first, then the ties (100,000 overdue contacts of value 0 as of now() on the
-- 100,000-customer demo) by the rest: an incremental sort, twice as fast as one sort by every key
SELECT i.manager_id, i.kind, i.entity_id, i.since, i.value, i.note, i.day_from, i.note_tail
  FROM (SELECT * FROM items ORDER BY items.value DESC NULLS LAST OFFSET 0) AS i
 ORDER BY i.value DESC NULLS LAST, i.since NULLS LAST, i.kind, i.entity_id
$sql$, crm._deal_states_sql('$1', '''infinity''::timestamptz'), crm._stage_norm_case('d.open_so')));
END
$$;
COMMENT ON FUNCTION crm._fast_todo_sql(timestamptz) IS
'SQL text of crm.todo($1) from the rollups: the items in crm.todo''s order as (manager_id, kind, entity_id, since, value, note, day_from, note_tail), a note with a day count split around it (note || the whole days from day_from to as_of || note_tail).';

CREATE TABLE crm.rollup_todo_kept (
    ord        bigint NOT NULL,   -- no index: read in one pass and sorted (cheaper to write)
    manager_id text,
    kind       text NOT NULL,
    entity_id  text,
    since      timestamptz,
    value      numeric,
    note       text,
    day_from   timestamptz,
    note_tail  text
);
COMMENT ON TABLE crm.rollup_todo_kept IS
'Rollup state (derived, not dumped): the items of crm.todo as of crm.rollup_todo_kept_key.as_of in their order (ord), each note split around its day count (note || the whole days from day_from to as_of || note_tail); read for any moment before valid_until while the key matches.';
CREATE TABLE crm.rollup_todo_kept_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    as_of       timestamptz NOT NULL,
    valid_until timestamptz NOT NULL,
    changed_at  timestamptz,
    fingerprint text NOT NULL,
    items       bigint NOT NULL,
    written_at  timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_todo_kept_key IS
'Rollup state (derived, not dumped): the moment the kept to-do list (crm.rollup_todo_kept) was computed for, the moment until which it is the list of every later moment (crm._todo_horizon), the rollups it was computed from (crm.rollup_status.changed_at), the fingerprint of its other inputs (crm._todo_fingerprint), its items and when it was written; no row = nothing kept.';

CREATE FUNCTION crm._todo_fingerprint() RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN md5(concat_ws(E'\x1f', current_setting('TimeZone'), current_setting('DateStyle'), current_setting('IntervalStyle'),
                     crm._lead_sla()::text, crm._reactivation_after()::text,
                     crm._dashboard_coverage_interval('A')::text, crm._dashboard_coverage_interval('B')::text,
                     crm._dashboard_coverage_interval('C')::text,
                     (SELECT string_agg(concat_ws(E'\x1e', s.stage_order::text, s.stage, s.outcome, s.max_days::text), E'\x1d' ORDER BY s.stage_order)
                        FROM crm.pipeline_stages s)));
END
$$;
COMMENT ON FUNCTION crm._todo_fingerprint() IS
'A hash of the inputs of crm.todo from the rollups besides the rollup tables: the session''s TimeZone, DateStyle and IntervalStyle, the lead SLA, the reactivation period, the contact intervals of classes A, B and C and the pipeline stages (order, name, outcome, norm); the kept list is read only while it equals the kept one.';

CREATE FUNCTION crm._todo_horizon(e timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    sla    interval := crm._lead_sla();
    react  interval := crm._reactivation_after();
    ivs    interval[] := ARRAY[crm._dashboard_coverage_interval('A'), crm._dashboard_coverage_interval('B'),
                               crm._dashboard_coverage_interval('C')];
    h      timestamptz;
    iv     interval;
    x      timestamptz;
BEGIN
    IF e IS NULL THEN
        RAISE EXCEPTION 'e must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(e) THEN
        RETURN e;
    END IF;
    h := least(e + interval '30 days',
        -- as_of - interval (12 months; each stage norm) computed in local time moves exactly with
        -- as_of except around a change of the UTC offset (in either year) and a 29 February: the
        -- horizon stops 2 hours before the first 15-minute step that is not 15 minutes
        (SELECT min(g) - interval '2 hours'
           FROM unnest(ARRAY[interval '12 months'] || ARRAY(SELECT DISTINCT make_interval(days => ps.max_days) FROM crm.pipeline_stages ps
                                                             WHERE ps.max_days IS NOT NULL)) AS s(iv),
                generate_series(e + interval '15 minutes', e + interval '31 days', interval '15 minutes') AS g
          WHERE (g - s.iv) - ((g - interval '15 minutes') - s.iv) <> interval '15 minutes'),
        -- rows that start to count at their moment
        (SELECT min(l.ordered_at) FROM crm.rollup_order_lines l WHERE l.ordered_at >= e),
        (SELECT min(i.created_at) FROM crm.rollup_customer_info i WHERE i.created_at >= e),
        (SELECT min(r.occurred_at) FROM crm.rollup_real_contacts r WHERE r.occurred_at >= e),
        (SELECT min(l.first_response) FROM crm.rollup_leads l WHERE l.first_response >= e),
        (SELECT min(n.last_at) FROM crm.rollup_deal_now n WHERE n.last_at >= e),
        (SELECT min(n.unknown_at) FROM crm.rollup_deal_now n WHERE n.unknown_at >= e),
        (SELECT min(p.from_at) FROM crm.rollup_deal_past p WHERE p.from_at >= e),
        (SELECT min(p.to_at) FROM crm.rollup_deal_past p WHERE p.to_at >= e),
        (SELECT min(x.end_at) FROM crm.rollup_customer_state_ends x WHERE x.end_at >= e),
        (SELECT least(min(i.issued_at) FILTER (WHERE i.issued_at >= e), min(i.paid_at) FILTER (WHERE i.paid_at >= e),
                      min(i.due_at) FILTER (WHERE i.due_at >= e))
           FROM crm.rollup_invoices i),
        (SELECT least(min(f.first_at + react) FILTER (WHERE f.first_at + react >= e), min(f.second_at) FILTER (WHERE f.second_at >= e))
           FROM crm.rollup_customer_orders f),
        (SELECT least(min(c.first_at) FILTER (WHERE c.first_at >= e), min(c.last_at) FILTER (WHERE c.last_at >= e))
           FROM crm.rollup_customer_contacts c),
        -- (and a contact falls due: creation or last real contact + the interval of any class)
        (SELECT least(min(s.created_at) FILTER (WHERE s.created_at >= e), min(s.first_contact_at) FILTER (WHERE s.first_contact_at >= e),
                      min(s.last_contact_at) FILTER (WHERE s.last_contact_at >= e),
                      min(s.created_at + ivs[1]) FILTER (WHERE s.created_at + ivs[1] >= e),
                      min(s.created_at + ivs[2]) FILTER (WHERE s.created_at + ivs[2] >= e),
                      min(s.created_at + ivs[3]) FILTER (WHERE s.created_at + ivs[3] >= e),
                      min(s.last_contact_at + ivs[1]) FILTER (WHERE s.last_contact_at + ivs[1] >= e),
                      min(s.last_contact_at + ivs[2]) FILTER (WHERE s.last_contact_at + ivs[2] >= e),
                      min(s.last_contact_at + ivs[3]) FILTER (WHERE s.last_contact_at + ivs[3] >= e))
           FROM crm.rollup_customer_state s),
        -- a lead passes its SLA
        (SELECT min(l.created_at + sla) FROM crm.rollup_leads l
          WHERE l.created_at >= e - sla - interval '1 day' AND l.created_at + sla >= e),
        -- an order in the 12 months at e leaves them (those after the first 32 days leave after the cap)
        (SELECT min(CASE WHEN (l.ordered_at + interval '12 months') - interval '12 months' <= l.ordered_at
                         THEN l.ordered_at + interval '12 months'
                         ELSE l.ordered_at + interval '12 months' - interval '3 hours' END)
           FROM crm.rollup_order_lines l
          WHERE l.ordered_at >= e - interval '12 months' AND l.ordered_at < e - interval '12 months' + interval '32 days'));
    -- a contact falls due (a real contact or a creation + the interval of any class)
    FOREACH iv IN ARRAY ivs LOOP
        CONTINUE WHEN iv IS NULL;
        h := least(h,
            (SELECT min(r.occurred_at + iv) FROM crm.rollup_real_contacts r
              WHERE r.occurred_at >= e - iv - interval '1 day' AND r.occurred_at + iv >= e),
            (SELECT min(i.created_at + iv) FROM crm.rollup_customer_info i
              WHERE i.created_at >= e - iv - interval '1 day' AND i.created_at + iv >= e));
    END LOOP;
    -- an open deal not stale at e turns stale: its last event + the norm of its stage (the deal states as of e)
    EXECUTE format($sql$
        SELECT min(CASE WHEN (d.last_at + d.norm) - d.norm <= d.last_at THEN d.last_at + d.norm
                        ELSE d.last_at + d.norm - interval '3 hours' END)
          FROM (SELECT d.last_at, %2$s AS norm FROM %1$s AS d
                 WHERE d.open_so IS NOT NULL AND d.closed_at IS NULL) AS d
         WHERE d.last_at >= $1 - d.norm$sql$,
        crm._deal_states_sql('$1', '''infinity''::timestamptz'), crm._stage_norm_case('d.open_so'))
      INTO x USING e;
    RETURN least(h, x);
END
$$;
COMMENT ON FUNCTION crm._todo_horizon(timestamptz) IS
'The first moment after e (at most e + 30 days; e itself when e is not finite; NULL: 22004) at which crm.todo from the rollups may differ from crm.todo(e) other than in the day counts of its notes: the least moment >= e that the list compares with its as_of (rows dated from then, a kept period end, created_at + SLA, first order + reactivation period, last contact or creation + a class''s interval, an order leaving the 12 months, an open deal turning stale), and 2 hours before as_of - 12 months or as_of - a stage norm, in local time, stops moving with as_of (a change of the UTC offset, a 29 February).';

CREATE FUNCTION crm._todo_kept(as_of timestamptz) RETURNS TABLE (items bigint, written_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (has_table_privilege('crm.rollup_todo_kept', 'SELECT') AND has_table_privilege('crm.rollup_todo_kept_key', 'SELECT')) THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT k.items, k.written_at FROM crm.rollup_todo_kept_key k, crm.rollup_status s
     WHERE k.as_of <= _todo_kept.as_of AND _todo_kept.as_of < k.valid_until
       AND k.changed_at IS NOT DISTINCT FROM s.changed_at AND k.fingerprint = crm._todo_fingerprint();
END
$$;
COMMENT ON FUNCTION crm._todo_kept(timestamptz) IS
'The items and the writing moment of the kept to-do list (crm.rollup_todo_kept_key) when it holds crm.todo(as_of) from the rollups: kept as of a moment at or before as_of with as_of before its valid_until, from the rollups as crm.rollup_status.changed_at says they are, crm._todo_fingerprint() unchanged, and both kept tables readable by this role; no row otherwise.';

CREATE FUNCTION crm._todo_kept_for(as_of timestamptz) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT EXISTS (SELECT 1 FROM crm._todo_kept(as_of))
$$;
COMMENT ON FUNCTION crm._todo_kept_for(timestamptz) IS
'True when crm.rollup_todo_kept holds crm.todo(as_of) from the rollups for this role (crm._todo_kept).';

CREATE FUNCTION crm._todo_keep(as_of timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
SET enable_mergejoin = off
AS $$
DECLARE
    v1  timestamptz;
    fp1 text;
    h   timestamptz;
    n   bigint;
BEGIN
    BEGIN
        -- the rollups and the settings as they are before the list is computed; the same after
        -- it, or nothing is kept (a refresh or a change of the settings committed in between)
        v1 := (SELECT s.changed_at FROM crm.rollup_status s);
        fp1 := crm._todo_fingerprint();
        -- never a list for a moment after an event with an unknown stage (the report raises there)
        PERFORM crm._deal_check_stages(as_of);
        h := crm._todo_horizon(as_of);
        IF h <= as_of THEN
            RETURN false;   -- what is kept stays (it holds for its own moments)
        END IF;
        DELETE FROM crm.rollup_todo_kept_key;
        DELETE FROM crm.rollup_todo_kept;
        EXECUTE format('INSERT INTO crm.rollup_todo_kept (ord, manager_id, kind, entity_id, since, value, note, day_from, note_tail)
                        SELECT row_number() OVER (ORDER BY t.value DESC NULLS LAST, t.since NULLS LAST, t.kind, t.entity_id),
                               t.manager_id, t.kind, t.entity_id, t.since, t.value, t.note, t.day_from, t.note_tail
                          FROM (%s) AS t', crm._fast_todo_sql(as_of))
          -- (the positions by the list's own order keys: the planner reads the query's sorted output)
          USING as_of;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF v1 IS DISTINCT FROM (SELECT s.changed_at FROM crm.rollup_status s) OR fp1 IS DISTINCT FROM crm._todo_fingerprint() THEN
            RAISE EXCEPTION 'the rollups or the settings changed' USING ERRCODE = 'serialization_failure';
        END IF;
        INSERT INTO crm.rollup_todo_kept_key (as_of, valid_until, changed_at, fingerprint, items, written_at)
        VALUES (as_of, h, v1, fp1, n, clock_timestamp());
        RETURN true;
    EXCEPTION WHEN OTHERS THEN
        RETURN false;
    END;
END
$$;
COMMENT ON FUNCTION crm._todo_keep(timestamptz) IS
'Writes crm.todo(as_of) from the rollups into crm.rollup_todo_kept and its key (valid until crm._todo_horizon(as_of)); false, leaving what was kept, when the list changes at once, the rollups (crm.rollup_status.changed_at) or the settings (crm._todo_fingerprint) changed meanwhile or an error occurred. The caller checks the rollups, the stages and the sources.';

CREATE FUNCTION crm._todo_may_keep() RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT NOT current_setting('transaction_read_only')::boolean
   AND has_table_privilege('crm.rollup_todo_kept', 'SELECT') AND has_table_privilege('crm.rollup_todo_kept_key', 'SELECT')
   AND has_table_privilege('crm.rollup_todo_kept', 'INSERT') AND has_table_privilege('crm.rollup_todo_kept_key', 'INSERT')
   AND has_table_privilege('crm.rollup_todo_kept', 'DELETE') AND has_table_privilege('crm.rollup_todo_kept_key', 'DELETE')
   AND pg_try_advisory_xact_lock(hashtext('crm.todo_keep'), 21)
$$;
COMMENT ON FUNCTION crm._todo_may_keep() IS
'True when this transaction may keep the to-do list: not read-only, SELECT, INSERT and DELETE on crm.rollup_todo_kept and crm.rollup_todo_kept_key, and the keeping lock (a transaction advisory lock, held to the end of the transaction) taken without waiting.';

CREATE OR REPLACE FUNCTION crm._fast_todo(as_of timestamptz)
RETURNS TABLE (manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
DECLARE
    -- the items of a list in its order, the notes' day counts as of $1
    items text := 'SELECT t.manager_id, t.kind, t.entity_id, t.since, t.value,
                          CASE WHEN t.day_from IS NULL THEN t.note
                               ELSE t.note || coalesce(extract(day FROM ($1 - t.day_from))::text, '''') || t.note_tail END
                     FROM (%s) AS t';
    n    bigint;
    w    timestamptz;
    got  bigint;
BEGIN
    FOR attempt IN 1 .. 2 LOOP
        -- the kept list, read in one statement with its key (by the moment it was written): a
        -- list another session wrote after the key was checked gives no row, and is computed
        SELECT k.items, k.written_at INTO n, w FROM crm._todo_kept(as_of) AS k;
        IF FOUND THEN
            RETURN QUERY EXECUTE format(items, 'SELECT x.* FROM crm.rollup_todo_kept x
                                                 WHERE EXISTS (SELECT 1 FROM crm.rollup_todo_kept_key k WHERE k.written_at = $2)
                                                 ORDER BY x.ord')
              USING as_of, w;
            GET DIAGNOSTICS got = ROW_COUNT;
            IF got = n THEN
                RETURN;
            ELSIF got > 0 THEN
                RAISE EXCEPTION 'crm.todo: the kept list changed while it was read' USING ERRCODE = 'serialization_failure';
            END IF;
        END IF;
        EXIT WHEN attempt = 2;
        -- the full path's error for an event with an unknown stage before as_of
        PERFORM crm._deal_check_stages(as_of);
        -- kept as of now() when this transaction may, then read as above
        EXIT WHEN as_of <> now();
        EXIT WHEN NOT crm._todo_may_keep();
        EXIT WHEN NOT crm._todo_keep(as_of);
    END LOOP;
    RETURN QUERY EXECUTE format(items, crm._fast_todo_sql(as_of)) USING as_of;
END
$$;
COMMENT ON FUNCTION crm._fast_todo(timestamptz) IS
'crm.todo(as_of) computed from the rollups (crm.rollup_leads, crm.rollup_lead_months, crm.rollup_spend_months, the deal states, crm.rollup_invoices, crm._fast_coverage, crm.rollup_customer_orders, the contact state, crm.rollup_customer_info): the same rows in the same order; read from the kept list (crm.rollup_todo_kept) while it holds for as_of, kept as of now() first when this transaction may (crm._todo_may_keep).';

CREATE FUNCTION crm.keep_todo() RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    IF NOT crm._rollups_usable() THEN
        RETURN 0;
    END IF;
    BEGIN
        IF NOT crm._todo_kept_for(pg_catalog.now()) THEN
            PERFORM crm.todo(pg_catalog.now());
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'crm.keep_todo: nothing kept: %', SQLERRM;
        RETURN 0;
    END;
    RETURN coalesce((SELECT k.items FROM crm._todo_kept(pg_catalog.now()) AS k), 0);
END
$$;
COMMENT ON FUNCTION crm.keep_todo() IS
'Keeps crm.todo() (as of now()) from the rollups in crm.rollup_todo_kept for the reads that follow, when it is not kept already; returns the items kept (0 when the rollups cannot answer, this role may not write the kept tables, another session is writing them, or the list changes at once; an error is a WARNING and 0). For a pg_cron job after crm.refresh_rollups. Runs crm.todo with the caller''s search_path (the sources'' names).';

CREATE OR REPLACE FUNCTION crm._rollups_usable() RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mode text := coalesce(nullif(current_setting('crm_analytics.rollups', true), ''), 'fresh');
BEGIN
    IF mode NOT IN ('fresh', 'last_refresh', 'off') THEN
        RAISE EXCEPTION 'invalid value for parameter "crm_analytics.rollups": "%"', mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Available values: fresh, last_refresh, off.';
    END IF;
    IF mode = 'off' THEN
        RETURN false;
    END IF;
    -- The full computation runs the sources with the caller's privileges and
    -- row-level security; the rollups hold every row.  A role that may not
    -- read every rollup table, or that row-level security of a captured table
    -- applies to, gets the full computation.
    -- (the kept to-do list excepted: a role that may not read it computes the list)
    IF EXISTS (SELECT 1 FROM pg_class c
                WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'rollup\_%'
                  AND c.relname NOT IN ('rollup_todo_kept', 'rollup_todo_kept_key')
                  AND NOT has_table_privilege(c.oid, 'SELECT')) THEN
        RETURN false;
    END IF;
    -- (a statement of its own: crm.rollup_capture is readable now)
    IF EXISTS (SELECT 1 FROM crm.rollup_capture rc JOIN pg_class c ON c.oid = rc.relid
                WHERE c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
                  AND NOT (SELECT r.rolbypassrls OR r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RETURN false;
    END IF;
    IF mode = 'fresh' THEN
        RETURN crm.rollups_fresh();
    ELSIF mode = 'last_refresh' THEN
        -- a TRUNCATE waiting means a full rebuild: not the last refresh's figures any more
        RETURN crm._rollups_built() AND NOT EXISTS (SELECT 1 FROM crm.rollup_changes c WHERE c.bound IS NULL);
    END IF;
    RETURN false;
END
$$;
COMMENT ON FUNCTION crm._rollups_usable() IS
'Whether the reports may answer from the rollups, by the setting crm_analytics.rollups: fresh (default; only when crm.rollups_fresh()), last_refresh (whenever built for the current sources, stages and time zone), off (never); never for a role that may not read every rollup table (the kept to-do list excepted) or that row-level security of a captured table applies to.';
-- ==== end of section todokeep ====
