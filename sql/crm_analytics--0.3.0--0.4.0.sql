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
CREATE FUNCTION crm._closed_deals_sql(with_contacts boolean) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    ev_sql    text := crm._source_sql('stage_events');  -- first: checks the registry is readable
    has_deals boolean;
    deals_cte text;
    cx_cte    text;
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
    RETURN pg_catalog.format($sql$
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
END
$$;
COMMENT ON FUNCTION crm._closed_deals_sql(boolean) IS
'The SQL text behind crm.dashboard_losses, crm.dashboard_followups and crm.dashboard_closed_deals: one row per deal closed in the period [$1, $2) with its manager, outcome, value, the most advanced open stage it reached, its lost reason (deals source) and, with_contacts, its real contacts from creation to close.';

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
-- ==== end of section losses ====


-- ==== section todo: crm.todo, crm.v_todo, notifications ====
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
-- ==== end of section plans ====


-- ==== section rollups: daily rollups, refresh_rollups, v_daily ====
-- ==== end of section rollups ====


-- ==== section bi: BI conventions (column comments, sort order, period per session / role), progress ====
-- ==== end of section bi ====


-- ==== section html: the HTML report and the demo ====
-- ==== end of section html ====
