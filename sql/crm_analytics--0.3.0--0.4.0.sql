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
-- ==== end of section plans ====


-- ==== section rollups: daily rollups, refresh_rollups, v_daily ====
-- ==== end of section rollups ====


-- ==== section bi: BI conventions (column comments, sort order, period per session / role), progress ====
-- ==== end of section bi ====


-- ==== section html: the HTML report and the demo ====
-- ==== end of section html ====
