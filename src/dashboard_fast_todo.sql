-- dashboard_fast_todo.sql: crm.todo (and crm.v_todo) from the rollups (issue 21;
-- docs/rollups.md, "To-do list").
--
-- The five kinds of items as of any moment E, each from rollup state:
-- unanswered leads from crm.rollup_leads (first response) with the cost of a
-- lead from crm.rollup_lead_months / crm.rollup_spend_months; stale deals from
-- the deal states (crm._deal_states_sql) and the stage norms read when the
-- report runs; overdue invoices from crm.rollup_invoices (with their invoice
-- and customer ids); overdue contacts from crm._fast_coverage; reactivation from
-- crm.rollup_customer_orders (each customer's first order, its amount and the
-- moment of its second, kept by the part orders) and the contact state.  Managers of customers from
-- crm.rollup_customer_info.  Derived data: not dumped, no grants to PUBLIC.

-- ---------------------------------------------------------------------------
-- The report
-- ---------------------------------------------------------------------------

-- The query of crm.todo(as_of) from the rollups ($1 = as_of): the items in the
-- order of crm.todo, each as (manager_id, kind, entity_id, since, value, note,
-- day_from, note_tail).  A note with a day count (stale deals, overdue
-- invoices) is split around it: note || extract(day FROM ($1 - day_from)) ||
-- note_tail (note || the whole days from day_from to as_of || note_tail); the other notes are whole (day_from NULL).  The
-- overdue contacts come straight from the rows r of crm._fast_coverage's query
-- (no function result in between); the notes by concatenation, the same text
-- as format gives (every value through its output function, NULL as an empty
-- string).
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

-- ---------------------------------------------------------------------------
-- The list kept as of a moment, and how long it stays the same
-- ---------------------------------------------------------------------------

-- crm.todo(E) as of a moment E0, kept for every E in [E0, valid_until): no
-- input of the list crosses a moment in between (crm._todo_horizon), so the
-- items, their values and their order are those of E0; the day counts of the
-- notes are made when read.  Written by the first crm.todo() (as of now()) of a
-- role that may write these tables after the rollups changed (or by
-- crm.keep_todo()), read while the rollups, the settings the list reads and
-- the session's output settings are those it was written under.
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

-- Every input of crm._fast_todo_sql besides the rollup tables and the moment:
-- the lead SLA, the reactivation period, the contact intervals of the three
-- classes, the pipeline stages (names, order, outcome, norm), and the
-- session's settings the notes and the 12-month window are printed and cut
-- under (TimeZone, DateStyle, IntervalStyle).
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

-- The first moment after e at which crm.todo from the rollups may give other
-- items, values or order than at e (never later than e + 30 days): the least
-- moment >= e of every moment the list compares with as_of.  Each comparison
-- of the query is "X < as_of" or "X >= as_of" for a moment X of the data, or
-- "X < as_of - interval" / "X >= as_of - interval", and on [e, horizon) none
-- of those X lies, so every comparison keeps its value:
--   rows that start to count at their moment: orders, customers, real contacts,
--   deal events (state rows from and to, unknown stages), invoices issued,
--   paid, due, first responses, second orders, the contacts copy; a kept
--   period end (the coverage reads the classes kept there);
--   X computed by the query: created_at + SLA (unanswered leads), first order
--   + reactivation period, last contact or creation + a class's interval (a
--   contact falls due: the class is constant on [e, horizon), every class's
--   interval is taken, which is earlier or equal);
--   as_of - interval: an order in the 12 months at e leaves them when as_of -
--   12 months passes it, at ordered_at + 12 months; an open deal not stale at
--   e turns stale when as_of - norm passes its last event, at last_at + norm
--   (3 hours earlier, as a safety net, where that sum does not go back to the
--   moment).  That holds while as_of - interval, computed in local time, moves
--   exactly with as_of; it jumps (back or forward) around a change of the UTC
--   offset, now or an interval earlier, and on a 29 February (the 12 months
--   from the 29th start on the 28th): the horizon stops 2 hours before the
--   first such jump, found by 15-minute steps over the next 31 days.
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

-- The key of the kept list when it is crm.todo(as_of) from the rollups:
-- computed as of a moment at or before as_of, valid after it, from the rollups
-- as they are, under the same other inputs, and readable by this role (the kept
-- tables are not needed to answer from the rollups: a role that may not read
-- them computes the list).  No row otherwise.
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

-- Keeps crm.todo(as_of) from the rollups in crm.rollup_todo_kept with the
-- moment until which it holds.  The caller has checked that the rollups are
-- usable, the stages and the sources.  Keeps nothing new (false; what was kept
-- stays, valid for its own moments) when the list would change within the same
-- moment, when the rollups or the settings changed while it was computed (a
-- refresh or an UPDATE committed in between), or on any error (the report then
-- computes the list and raises it).
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

-- Whether this call may keep the list: a read-write transaction of a role
-- that may write the kept tables, and no other session keeping it now.
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

-- crm.todo(as_of) from the rollups: the same rows in the same order.  The
-- caller (crm.todo) has checked as_of, the stages and the sources.  The kept
-- list when it holds for as_of; else, as of now(), kept first when this role
-- may; else computed.
CREATE FUNCTION crm._fast_todo(as_of timestamptz)
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

-- Keeps the to-do list as of now() for the reads that follow (crm.v_todo,
-- crm.todo()): for a pg_cron job after crm.refresh_rollups, so that a BI role
-- that may only read finds it kept.  It runs crm.todo, which checks the
-- registered sources with the caller's search_path: no search_path of its own,
-- every object qualified.  An error keeps nothing and is reported as a WARNING
-- (a pg_cron job's refresh in the same transaction stays).
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
