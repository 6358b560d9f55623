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

CREATE FUNCTION crm.dashboard_losses(period_from date, period_to date)
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

CREATE FUNCTION crm.dashboard_followups(period_from date, period_to date)
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
