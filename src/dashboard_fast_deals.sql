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
