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
-- cost per lead, as crm.lead_sla: a channel's spend in a calendar month /
-- the channel's leads created in that month (every month the periods touch)
cpl AS (
    SELECT s.channel, s.month, s.amount OPERATOR(pg_catalog./) n.leads AS cost_per_lead
      FROM (SELECT channel, pg_catalog.date_trunc('month', spent_on) AS month, pg_catalog.sum(amount) AS amount
              FROM %3$s WHERE spent_on OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $3)
               AND spent_on OPERATOR(pg_catalog.<) (pg_catalog.date_trunc('month', $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval)
             GROUP BY 1, 2) AS s
      JOIN (SELECT channel, pg_catalog.date_trunc('month', created_at) AS month, pg_catalog.count(*) AS leads
              FROM %1$s WHERE created_at OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $3)
               AND created_at OPERATOR(pg_catalog.<) (pg_catalog.date_trunc('month', $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval)
             GROUP BY 1, 2) AS n
        ON n.channel OPERATOR(pg_catalog.=) s.channel AND n.month OPERATOR(pg_catalog.=) s.month),
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
        crm._source_sql('customers'));
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
-- ==== end of section losses ====


-- ==== section todo: crm.todo, crm.v_todo, notifications ====
-- ==== end of section todo ====


-- ==== section plans: crm.plans, set_plan, dashboard_plan_fact ====
-- ==== end of section plans ====


-- ==== section rollups: daily rollups, refresh_rollups, v_daily ====
-- ==== end of section rollups ====


-- ==== section bi: BI conventions (column comments, sort order, period per session / role), progress ====
-- ==== end of section bi ====


-- ==== section html: the HTML report and the demo ====
-- ==== end of section html ====
