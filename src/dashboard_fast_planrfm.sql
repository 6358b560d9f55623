-- dashboard_fast_planrfm.sql: plan against fact and RFM answered from the
-- rollups (issue 21; docs/rollups.md, "Plans and RFM").
--
-- Plan against fact: when every plan of the period on the whole business (or
-- on channels) names a metric the daily rollups and the order lines hold,
-- crm.dashboard_plan_fact builds the report rows crm._plan_fact reads from
-- them (crm._fast_plan_owner, crm._fast_plan_channels) instead of running
-- crm.owner_dashboard / crm.dashboard_channels whole.
--
-- RFM: per customer the first and last order, the number of orders and the sum of
-- their amounts (crm.rollup_customer_orders, kept by the rollup part orders from
-- crm.rollup_order_lines); the figures as of a moment E are the summaries of
-- the customers whose last order is at or before E, and for the others the
-- summary less their lines after E.  The scoring is crm.rfm_report's own
-- (crm._rfm_sql).

-- ---------------------------------------------------------------------------
-- RFM
-- ---------------------------------------------------------------------------

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

-- Rebuilds crm.rollup_rfm_scores from crm.rollup_customer_state (called by
-- crm._rollup_fast_state_rebuild).  A scoring error (a sum not finite) leaves
-- the slot out: the report then scores when read and raises the full path's error.
CREATE FUNCTION crm._rollup_fast_rfm_scores() RETURNS bigint
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

-- SQL text of crm.dashboard_rfm's rows as of $1 (orders at or before it) from
-- the rollups, ordered by customer: crm.rfm_report's scoring (crm._rfm_sql)
-- of the per-customer figures as of $1.  A customer whose last order is at
-- or before $1: its summary (crm.rollup_customer_orders).  The others: the
-- summary minus one pass over the lines after $1 grouped by customer, and the
-- last order at or before $1: the order before the last one (prev_at) for a
-- customer with one line after $1, else by one backward index probe.  The difference of
-- the sums has the scale of the sum of the lines up to $1 (what
-- crm.rfm_report sums) when one of those has the scale of the whole sum: when
-- the lines after $1 have smaller scales, or all the same scale and fewer of
-- them than the summary counts (scale_n); else, and for a sum not finite,
-- the lines up to $1 are summed by index.  Read in the order of the ids (the
-- unique index; crm._rfm_sql scores in the order of ord): no sort.
-- When $1 is the moment just before a kept end (slot 1 or 2 of
-- crm.rollup_customer_state_ends), the figures are read as they are from that
-- slot's columns of crm.rollup_customer_state (kN_last_order_at, kN_orders,
-- kN_amount: the orders before the end), in the order of the ids, no
-- subtraction and no probe.
-- When the slot's scores are kept too (scored: crm.rollup_rfm_scored), the
-- rows are read from crm.rollup_rfm_scores as they are (the segment computed).
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
-- crm._plan_rollup_metrics(NULL), from the daily rollups, as
-- crm.owner_dashboard computes them.
CREATE FUNCTION crm._fast_plan_owner(period_from date, period_to date) RETURNS jsonb
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
