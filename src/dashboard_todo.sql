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
CREATE FUNCTION crm.todo(as_of timestamptz DEFAULT now())
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
COMMENT ON FUNCTION crm.todo(timestamptz) IS
'Who must be called today: one row per thing to do as of a moment (unanswered_lead, stale_deal, overdue_invoice, overdue_contact, reactivation) with its manager, since when it is due, the money at stake (value) and a short note; ordered by value (descending), then since.';

CREATE VIEW crm.v_todo WITH (security_invoker = true) AS
SELECT t.manager_id, t.kind, t.entity_id, t.since, t.value, t.note,
       row_number() OVER (PARTITION BY t.manager_id
                          ORDER BY t.value DESC NULLS LAST, t.since NULLS LAST, t.kind, t.entity_id) AS rank,
       crm.id_number(t.manager_id) AS manager_id_num, crm.id_number(t.entity_id) AS entity_id_num
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
COMMENT ON COLUMN crm.v_todo.manager_id_num IS 'manager_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';
COMMENT ON COLUMN crm.v_todo.entity_id_num IS 'entity_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';
GRANT SELECT ON crm.v_todo TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Telling a backend without polling
-- ---------------------------------------------------------------------------

-- Every status change of the automatic statuses (by a rule, the sweep, or a
-- manual change caught by the trigger) is written once to crm.status_history:
-- one notification per history row, sent when the writing transaction commits.
CREATE FUNCTION crm._status_notify() RETURNS trigger
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
