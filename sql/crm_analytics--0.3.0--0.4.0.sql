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
    (211, 'manager', 'coverage', 'ratio', 'crm.dashboard_managers', 'coverage_pct')
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

CREATE FUNCTION crm.dashboard_plan_fact(period_from date, period_to date, as_of date DEFAULT NULL)
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
