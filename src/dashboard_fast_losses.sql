-- dashboard_fast_losses.sql: the loss reports answer from the rollups (issue
-- 21).  crm.dashboard_losses, crm.dashboard_followups and
-- crm.dashboard_closed_deals read their closed deals through
-- crm._fast_closed_deals: the deals closed in the period and their state as
-- of its end from the deal states (crm.rollup_deal_now / rollup_deal_past,
-- src/dashboard_fast_deals.sql), the lost reason and the deal's lead and
-- customer from the deals source itself (read live, by deal id: its few
-- rows per call cost less than capturing it), and the real contacts from
-- crm.rollup_deal_contacts, a narrow copy of the real interactions kept by the
-- rollup part contacts (docs/rollups.md, "Reports from the rollups").

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
