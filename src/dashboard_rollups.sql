-- dashboard_rollups.sql: daily rollups of the additive dashboard metrics,
-- maintained incrementally by crm.refresh_rollups, read through crm.v_daily
-- and crm.daily_metrics (docs/rollups.md).
--
-- Change capture: statement-level triggers with transition tables on every
-- table the registered sources read (found by EXPLAIN of the source queries)
-- record the earliest date/time value of the changed rows in
-- crm.rollup_changes; a refresh recomputes, per part (a group of metrics and
-- the sources it reads), every day at or after the earliest recorded change.
-- The rollup tables are derived data: not dumped; a refresh after a restore
-- rebuilds them in full.

CREATE TABLE crm.rollup_daily (
    day       date NOT NULL,
    metric    text NOT NULL,
    dimension text NOT NULL,
    key       text NOT NULL,
    value     numeric NOT NULL,
    PRIMARY KEY (day, metric, dimension, key)
);
COMMENT ON TABLE crm.rollup_daily IS
'Daily rollups of the additive dashboard metrics (derived data, rebuilt by crm.refresh_rollups, not dumped); read it through crm.v_daily or crm.daily_metrics.';

-- per customer: the first order (new_buyers)
CREATE TABLE crm.rollup_customers (
    customer_id text PRIMARY KEY,
    first_at    timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_customers IS
'Rollup state per customer (derived, not dumped): the moment of the first order, which makes the customer a new buyer on that day.';
CREATE INDEX ON crm.rollup_customers (first_at);

-- per deal: as of its close (the first won or lost event)
CREATE TABLE crm.rollup_deals (
    deal_id    text PRIMARY KEY,
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    closed_at  timestamptz,
    is_won     boolean,
    amount     numeric,
    lost_stage text,
    manager_id text,
    channel    text
);
COMMENT ON TABLE crm.rollup_deals IS
'Rollup state per deal (derived, not dumped): first and last event, close (first won or lost event), won or lost, amount and most advanced open stage up to the close, manager and channel.';
CREATE INDEX ON crm.rollup_deals (closed_at);
CREATE INDEX ON crm.rollup_deals (last_at);

-- changes recorded by the capture triggers: per statement, the earliest
-- date/time value of the changed rows (old and new); bound NULL = TRUNCATE
-- (a full refresh is needed)
CREATE TABLE crm.rollup_changes (
    id          bigserial PRIMARY KEY,
    relid       oid NOT NULL,
    bound       timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE crm.rollup_changes IS
'Changes not yet rolled up, written by the capture triggers: the table, the earliest date/time value of the changed rows (NULL after a TRUNCATE: a full refresh follows); crm.refresh_rollups consumes them.';
-- every role that writes to a captured table writes here (the trigger runs as it);
-- relid and bound only: a role choosing ids could take the ids the sequence hands
-- out next and make the writes of every other role to a captured table fail
GRANT INSERT (relid, bound) ON crm.rollup_changes TO PUBLIC;
GRANT USAGE ON SEQUENCE crm.rollup_changes_id_seq TO PUBLIC;

-- the tables the registered sources read, and by which source kinds
CREATE TABLE crm.rollup_capture (
    relid oid NOT NULL,
    kind  text NOT NULL,
    PRIMARY KEY (relid, kind)
);
COMMENT ON TABLE crm.rollup_capture IS
'The tables the registered sources read (by source kind), each with the rollup capture triggers; written by crm.attach_rollup_capture.';

CREATE TABLE crm.rollup_status (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    built_at       timestamptz,
    time_zone      text,
    config_hash    text,
    needs_full     boolean NOT NULL DEFAULT true,
    phase          text,
    done           int,
    total          int,
    started_at     timestamptz,
    finished_at    timestamptz,
    last_mode      text,
    last_rows      bigint,
    changed_at     timestamptz
);
COMMENT ON TABLE crm.rollup_status IS
'State of the rollups (one row): when and in which time zone they were last built in full, the hash of the sources and stages they were built from, the last refresh (phase, parts done of total, start, end, mode, rows written), and when a refresh last recomputed a part (changed_at: the rollups have not changed since).';
GRANT SELECT ON crm.rollup_status TO PUBLIC;
INSERT INTO crm.rollup_status (singleton) VALUES (true);

-- ---------------------------------------------------------------------------
-- Parts: which metrics, from which source kinds
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm._rollup_parts(OUT part text, OUT kinds text[], OUT metrics text[])
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
VALUES ('leads',    ARRAY['leads'], ARRAY['leads_in']),
       ('orders',   ARRAY['orders', 'customers'], ARRAY['orders', 'revenue', 'gross_profit', 'new_buyers']),
       ('deals',    ARRAY['stage_events'], ARRAY['deals_won', 'won_value', 'won_cycle_days', 'deals_lost', 'lost_deal_value']),
       ('spend',    ARRAY['spend'], ARRAY['marketing_spend']),
       ('invoices', ARRAY['invoices'], ARRAY['invoices_issued', 'invoices_issued_amount', 'invoices_paid', 'invoices_paid_amount']),
       ('contacts', ARRAY['interactions'], ARRAY['real_contacts'])
$$;
COMMENT ON FUNCTION crm._rollup_parts() IS
'The parts of the rollups: per part, the source kinds it reads and the metrics it writes to crm.rollup_daily.';

-- ---------------------------------------------------------------------------
-- Change capture
-- ---------------------------------------------------------------------------

-- The tables a source query reads (views resolved to their tables), by the
-- planner: EXPLAIN (VERBOSE, FORMAT JSON) names every scanned relation.
CREATE FUNCTION crm._query_relations(kind text, query text) RETURNS regclass[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    plan jsonb;
    cols text[] := crm.source_columns(kind);
BEGIN
    IF cols IS NULL THEN
        RAISE EXCEPTION 'unknown source kind "%"', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one SELECT returning the kind's columns (run with LIMIT 0)
    PERFORM crm._check_inner_query(pg_catalog.format('source "%s"', kind), query, cols);
    EXECUTE 'EXPLAIN (VERBOSE, FORMAT JSON) ' OPERATOR(pg_catalog.||) query INTO plan;
    RETURN ARRAY(
        SELECT DISTINCT pg_catalog.format('%I.%I', n OPERATOR(pg_catalog.->>) 'Schema', n OPERATOR(pg_catalog.->>) 'Relation Name')::pg_catalog.regclass
          FROM pg_catalog.jsonb_path_query(plan, 'strict $.**') AS n
         WHERE pg_catalog.jsonb_typeof(n) OPERATOR(pg_catalog.=) 'object' AND n OPERATOR(pg_catalog.?) 'Relation Name'
         ORDER BY 1);
END
$$;
COMMENT ON FUNCTION crm._query_relations(text, text) IS
'The tables a source query of a kind (one SELECT returning the kind''s columns, checked by crm._check_inner_query) reads, views resolved to their tables, from its EXPLAIN plan.';

-- The capture trigger: per statement, the earliest date/time value found in
-- any date, timestamp or timestamptz column of the changed rows (old and new).
-- date and timestamp columns are read a day early (their moment depends on a
-- time zone); rows without any date/time value record -infinity.
CREATE FUNCTION crm._rollup_capture() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text;
    q    text;
    n    bigint;
    b    timestamptz;
    n2   bigint;
    b2   timestamptz;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO crm.rollup_changes (relid, bound) VALUES (TG_RELID, NULL);
        RETURN NULL;
    END IF;
    -- a domain counts as its base type (a time column may be a domain over date)
    SELECT string_agg(CASE WHEN a.typ = 'timestamptz'::regtype THEN format('%I', a.attname)
                           ELSE format('(%I::timestamp - interval ''1 day'')::timestamptz', a.attname) END, ', ' ORDER BY a.attnum)
      INTO cols
      FROM (SELECT a.attname, a.attnum, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS typ
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS a
     WHERE a.typ IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype);
    q := format('SELECT count(*), min(%s) FROM %%I', CASE WHEN cols IS NULL THEN 'NULL::timestamptz' ELSE 'least(' || cols || ')' END);
    n := 0;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE format(q, 'crm_rollup_old') INTO n, b;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        EXECUTE format(q, 'crm_rollup_new') INTO n2, b2;
        n := n + n2;
        b := least(b, b2);
    END IF;
    IF n > 0 THEN
        -- changed rows without any date/time value: every day may change
        INSERT INTO crm.rollup_changes (relid, bound) VALUES (TG_RELID, coalesce(b, '-infinity'));
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION crm._rollup_capture() IS
'Capture trigger of the rollups (statement level, transition tables crm_rollup_old / crm_rollup_new): records in crm.rollup_changes the earliest date/time value of the changed rows, or a TRUNCATE.';

-- Creates the capture triggers on one table (missing ones only).
CREATE FUNCTION crm._rollup_create_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('crm_rollup_ins', 'AFTER INSERT ON %s REFERENCING NEW TABLE AS crm_rollup_new FOR EACH STATEMENT'),
        ('crm_rollup_upd', 'AFTER UPDATE ON %s REFERENCING OLD TABLE AS crm_rollup_old NEW TABLE AS crm_rollup_new FOR EACH STATEMENT'),
        ('crm_rollup_del', 'AFTER DELETE ON %s REFERENCING OLD TABLE AS crm_rollup_old FOR EACH STATEMENT'),
        ('crm_rollup_trunc', 'AFTER TRUNCATE ON %s FOR EACH STATEMENT')) AS v(name, spec)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = rel AND g.tgname = t.name) THEN
            EXECUTE format('CREATE TRIGGER %I ', t.name) || format(t.spec, rel) || ' EXECUTE FUNCTION crm._rollup_capture()';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._rollup_create_triggers(regclass) IS
'Creates the four rollup capture triggers (insert, update, delete, truncate) on a table where they are missing.';

-- true when every table of crm.rollup_capture still has its four triggers
CREATE FUNCTION crm._rollup_capture_ok() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT EXISTS (SELECT 1 FROM crm.rollup_capture)
   AND NOT EXISTS (SELECT 1 FROM (SELECT DISTINCT relid FROM crm.rollup_capture) c
                    WHERE (SELECT count(*) FROM pg_trigger g
                            WHERE g.tgrelid = c.relid AND g.tgfoid = 'crm._rollup_capture()'::regprocedure
                              -- a disabled trigger (ALTER TABLE ... DISABLE TRIGGER) captures nothing
                              AND g.tgenabled <> 'D') <> 4)
$$;
COMMENT ON FUNCTION crm._rollup_capture_ok() IS
'True when the tables the sources read (crm.rollup_capture) all still carry the four rollup capture triggers.';

CREATE FUNCTION crm.attach_rollup_capture() RETURNS SETOF regclass
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    s   record;
    rel regclass;
    who text;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS crm_rollup_rels (relid oid, kind text) ON COMMIT DROP;
    DELETE FROM pg_temp.crm_rollup_rels;
    -- the kinds the rollups read (crm._rollup_parts), not every registered one
    FOR s IN SELECT src.kind, src.query FROM crm.sources src
              WHERE src.kind OPERATOR(pg_catalog.=) ANY ((SELECT pg_catalog.array_agg(k) FROM crm._rollup_parts() p, pg_catalog.unnest(p.kinds) k)::pg_catalog.text[])
              ORDER BY src.kind LOOP
        INSERT INTO pg_temp.crm_rollup_rels
        SELECT DISTINCT a.relid::pg_catalog.oid, s.kind
          FROM pg_catalog.unnest(crm._query_relations(s.kind, s.query)) AS r,
               -- a partition and its partitioned ancestors: a write through the parent
               -- fires the parent's statement triggers only, not the partition's
               LATERAL (SELECT r UNION SELECT pg_catalog.pg_partition_ancestors(r)) AS a(relid);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_temp.crm_rollup_rels) THEN
        RAISE EXCEPTION 'no registered source reads a table'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register the sources first: SELECT crm.register_source(kind, query).';
    END IF;
    FOR rel IN SELECT DISTINCT r.relid::pg_catalog.regclass FROM pg_temp.crm_rollup_rels r ORDER BY 1 LOOP
        PERFORM crm._rollup_create_triggers(rel);
        RETURN NEXT rel;
    END LOOP;
    -- triggers left on tables no source reads any more
    FOR rel IN SELECT DISTINCT c.relid::pg_catalog.regclass FROM crm.rollup_capture c
                WHERE NOT EXISTS (SELECT 1 FROM pg_temp.crm_rollup_rels r WHERE r.relid OPERATOR(pg_catalog.=) c.relid)
                  AND EXISTS (SELECT 1 FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) c.relid) LOOP
        PERFORM crm._rollup_drop_triggers(rel);
    END LOOP;
    DELETE FROM crm.rollup_capture;
    INSERT INTO crm.rollup_capture SELECT DISTINCT r.relid, r.kind FROM pg_temp.crm_rollup_rels r;
    -- a disabled capture trigger records nothing: every refresh then rebuilds in
    -- full (exact, slow) until it is enabled again
    SELECT pg_catalog.string_agg(DISTINCT g.tgrelid::pg_catalog.regclass::pg_catalog.text, ', ') INTO who
      FROM crm.rollup_capture c JOIN pg_catalog.pg_trigger g ON g.tgrelid OPERATOR(pg_catalog.=) c.relid
     WHERE g.tgfoid OPERATOR(pg_catalog.=) 'crm._rollup_capture()'::pg_catalog.regprocedure
       AND g.tgenabled OPERATOR(pg_catalog.=) 'D';
    IF who IS NOT NULL THEN
        RAISE WARNING 'capture triggers are disabled on %: changes there are not recorded, so every refresh rebuilds the rollups in full', who
            USING HINT = 'Enable them: ALTER TABLE ... ENABLE TRIGGER crm_rollup_ins (and crm_rollup_upd, crm_rollup_del, crm_rollup_trunc).';
    END IF;
    who := NULL;
    -- the trigger runs as the writing role, which must reach crm.rollup_changes
    SELECT pg_catalog.string_agg(DISTINCT ro.rolname::pg_catalog.text, ', ') INTO who
      FROM pg_temp.crm_rollup_rels r, pg_catalog.pg_roles ro
     WHERE NOT ro.rolsuper AND ro.rolname::pg_catalog.text NOT LIKE 'pg\_%'
       AND (pg_catalog.has_table_privilege(ro.oid, r.relid, 'INSERT') OR pg_catalog.has_table_privilege(ro.oid, r.relid, 'UPDATE')
            OR pg_catalog.has_table_privilege(ro.oid, r.relid, 'DELETE') OR pg_catalog.has_table_privilege(ro.oid, r.relid, 'TRUNCATE'))
       AND NOT pg_catalog.has_schema_privilege(ro.oid, 'crm', 'USAGE');
    IF who IS NOT NULL THEN
        RAISE WARNING 'roles that write to tables the rollups capture have no USAGE on schema crm: %', who
            USING DETAIL = 'The capture triggers run as the writing role and record the change in crm.rollup_changes; without USAGE on schema crm its writes fail.',
                  HINT = pg_catalog.format('GRANT USAGE ON SCHEMA crm TO %s;', who);
    END IF;
    INSERT INTO crm.rollup_status AS st (singleton, needs_full) VALUES (true, true)
        ON CONFLICT (singleton) DO UPDATE SET needs_full = true;
    DROP TABLE pg_temp.crm_rollup_rels;
END
$$;
COMMENT ON FUNCTION crm.attach_rollup_capture() IS
'Finds the tables the registered sources read (views resolved) and puts the rollup capture triggers on each (the caller must own them); returns the tables. The next crm.refresh_rollups is a full one.';

CREATE FUNCTION crm._rollup_drop_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['crm_rollup_ins', 'crm_rollup_upd', 'crm_rollup_del', 'crm_rollup_trunc'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', t, rel);
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._rollup_drop_triggers(regclass) IS
'Drops the four rollup capture triggers of a table.';

CREATE FUNCTION crm.detach_rollup_capture() RETURNS SETOF regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN SELECT DISTINCT c.relid::regclass FROM crm.rollup_capture c
                WHERE EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = c.relid) ORDER BY 1 LOOP
        PERFORM crm._rollup_drop_triggers(rel);
        RETURN NEXT rel;
    END LOOP;
    DELETE FROM crm.rollup_capture;
    DELETE FROM crm.rollup_changes;
    UPDATE crm.rollup_status SET needs_full = true;
END
$$;
COMMENT ON FUNCTION crm.detach_rollup_capture() IS
'Drops the rollup capture triggers from the tables the sources read; returns those tables. Rollups can then only be refreshed after capture is attached again (crm.refresh_rollups does it).';

-- ---------------------------------------------------------------------------
-- Refresh
-- ---------------------------------------------------------------------------

-- What the rollups were built from: the registered queries and the stages.
CREATE FUNCTION crm._rollup_config_hash() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT md5(coalesce((SELECT string_agg(kind || ':' || query, E'\n' ORDER BY kind) FROM crm.sources
                      WHERE kind IN (SELECT unnest(p.kinds) FROM crm._rollup_parts() p)), '')
           || E'\n--\n' ||
           coalesce((SELECT string_agg(format('%s|%s|%s', stage, stage_order, outcome), E'\n' ORDER BY stage_order)
                       FROM crm.pipeline_stages), ''))
$$;
COMMENT ON FUNCTION crm._rollup_config_hash() IS
'A hash of the registered source queries and the pipeline stages: when it changes, the rollups are rebuilt in full.';

-- Consumes the recorded changes (committed ones: the DELETE sees those) and
-- returns per part the bound to recompute from (-infinity = everything); no
-- row = the part is unchanged.  Parts whose sources are not all registered
-- are left out (and their rows removed).
CREATE FUNCTION crm._rollup_take_changes(want_full boolean, OUT part text, OUT bound timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    any_truncate boolean;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS crm_rollup_taken (relid oid, bound timestamptz) ON COMMIT DROP;
    DELETE FROM pg_temp.crm_rollup_taken;
    WITH d AS (DELETE FROM crm.rollup_changes c RETURNING c.relid, c.bound)
    INSERT INTO pg_temp.crm_rollup_taken SELECT d.relid, d.bound FROM d;
    SELECT bool_or(t.bound IS NULL) INTO any_truncate FROM pg_temp.crm_rollup_taken t;
    want_full := want_full OR coalesce(any_truncate, false);
    DELETE FROM crm.rollup_daily r
     WHERE r.metric IN (SELECT unnest(p.metrics) FROM crm._rollup_parts() p
                         WHERE EXISTS (SELECT 1 FROM unnest(p.kinds) k WHERE k NOT IN (SELECT s.kind FROM crm.sources s)));
    RETURN QUERY
    SELECT p.part, CASE WHEN want_full THEN '-infinity'::timestamptz ELSE b.bound END
      FROM crm._rollup_parts() p
      LEFT JOIN LATERAL (SELECT min(t.bound) AS bound FROM pg_temp.crm_rollup_taken t
                          WHERE t.relid IN (SELECT c.relid FROM crm.rollup_capture c WHERE c.kind = ANY (p.kinds))) b ON true
     WHERE NOT EXISTS (SELECT 1 FROM unnest(p.kinds) k WHERE k NOT IN (SELECT s.kind FROM crm.sources s))
       AND (want_full OR b.bound IS NOT NULL)
     ORDER BY p.part;
END
$$;
COMMENT ON FUNCTION crm._rollup_take_changes(boolean) IS
'Consumes the recorded changes and returns, per rollup part to recompute, the earliest moment to recompute from (-infinity for a full refresh or after a TRUNCATE).';

-- How a part groups its rows by day and dimension (SQL text, for the columns
-- day and the named dimension columns of alias x): {dimension expression, key
-- expression, GROUPING SETS clause}; one pass builds the 'all' row and one row
-- per key of every dimension, a NULL key reading '(unknown)'.
CREATE FUNCTION crm._rollup_gsets(alias text, VARIADIC dims text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT ARRAY[
    'CASE ' || string_agg(format('WHEN GROUPING(%I.%I) OPERATOR(pg_catalog.=) 0 THEN %L::pg_catalog.text', alias, d, d), ' ' ORDER BY n)
        || ' ELSE ''all''::pg_catalog.text END',
    'CASE ' || string_agg(format('WHEN GROUPING(%I.%I) OPERATOR(pg_catalog.=) 0 THEN coalesce(%I.%I::pg_catalog.text, ''(unknown)'')', alias, d, alias, d), ' ' ORDER BY n)
        || ' ELSE ''all''::pg_catalog.text END',
    format('GROUPING SETS ((%I.day)', alias) || string_agg(format(', (%I.day, %I.%I)', alias, alias, d), '' ORDER BY n) || ')']
  FROM unnest(dims) WITH ORDINALITY AS u(d, n)
$$;
COMMENT ON FUNCTION crm._rollup_gsets(text, text[]) IS
'SQL text of the dimension and key expressions and the GROUPING SETS clause that group a part''s rows by day into ''all'' and one row per key of every named dimension column (NULL key = ''(unknown)'').';

-- leads_in (all, channel, manager)
CREATE FUNCTION crm._rollup_leads(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('l', 'channel', 'manager');
BEGIN
    PERFORM crm._rollup_lead_state(from_ts);  -- per-lead state, leads per channel-month (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT l.day, 'leads_in', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.created_at::pg_catalog.date AS day, src.channel::pg_catalog.text AS channel,
               src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.created_at OPERATOR(pg_catalog.>=) $1) AS l
 GROUP BY %4$s
$sql$, crm._source_sql('leads'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_leads(timestamptz) IS
'Rollup part leads: writes leads_in per day (all, channel, manager) from the leads source, for the days from the given moment on.';

-- orders, revenue, gross_profit and new_buyers (all, channel, manager of the
-- customer); keeps crm.rollup_customers (first order per customer)
CREATE FUNCTION crm._rollup_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    src_o text := crm._source_sql('orders', 'o');
    go text[] := crm._rollup_gsets('o', 'channel', 'manager');
    gn text[] := crm._rollup_gsets('nb', 'channel', 'manager');
BEGIN
    -- first: the order lines, the per-customer summaries and the first order per customer
    -- (crm.rollup_customers, from the summaries: src/dashboard_fast_customers.sql); the
    -- first order of the orders without a customer is read from them below
    PERFORM crm._rollup_fast_orders(from_ts);
    -- an order counts once per customers row of its customer in the channel and
    -- manager rows (as crm.dashboard_channels and crm.dashboard_managers join
    -- them) and once in the rows of all (as crm.owner_dashboard counts it):
    -- first_row marks one of its rows
    EXECUTE pg_catalog.format($sql$
WITH od AS MATERIALIZED (
    SELECT o.customer_id AS cust, o.ordered_at, o.amount, o.cost FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1),
-- the customers rows of the changed orders' customers, numbered per customer
cc AS MATERIALIZED (
    SELECT c.customer_id AS cust, c.channel::pg_catalog.text AS channel, c.manager_id::pg_catalog.text AS manager,
           pg_catalog.row_number() OVER (PARTITION BY c.customer_id ORDER BY c.channel::pg_catalog.text, c.manager_id::pg_catalog.text) AS rn
      FROM %2$s WHERE EXISTS (SELECT 1 FROM od WHERE od.cust OPERATOR(pg_catalog.=) c.customer_id)),
o AS MATERIALIZED (
    SELECT od.cust::pg_catalog.text AS cid, od.ordered_at::pg_catalog.date AS day, od.amount, od.cost,
           cc.channel, cc.manager, cc.rn, coalesce(cc.rn OPERATOR(pg_catalog.=) 1, true) AS first_row
      FROM od LEFT JOIN cc ON cc.cust OPERATOR(pg_catalog.=) od.cust),
nb AS (
    SELECT rc.first_at::pg_catalog.date AS day, d.channel, d.manager, d.first_row
      FROM crm.rollup_customers rc
      -- one row per customers row of the customer (rn)
      JOIN (SELECT DISTINCT o.cid, o.rn, o.channel, o.manager, o.first_row FROM o) AS d ON d.cid OPERATOR(pg_catalog.=) rc.customer_id
     WHERE rc.first_at OPERATOR(pg_catalog.>=) $1
    UNION ALL
    -- the orders without a customer are one buyer (one group, as the full queries count them)
    SELECT t.first_at::pg_catalog.date, NULL, NULL, true
      FROM crm.rollup_customer_orders t
     WHERE t.customer_id IS NULL AND t.first_at OPERATOR(pg_catalog.>=) $1),
a AS (
    SELECT o.day, %3$s AS dimension, %4$s AS key,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.count(*) FILTER (WHERE o.first_row) ELSE pg_catalog.count(*) END AS n,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.sum(o.amount) FILTER (WHERE o.first_row) ELSE pg_catalog.sum(o.amount) END AS revenue,
           CASE WHEN %3$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) FILTER (WHERE o.first_row)
                ELSE pg_catalog.sum(o.amount OPERATOR(pg_catalog.-) o.cost) END AS gp,
           NULL::pg_catalog.int8 AS nb
      FROM o GROUP BY %5$s
    UNION ALL
    SELECT nb.day, %6$s, %7$s, NULL, NULL, NULL,
           CASE WHEN %6$s OPERATOR(pg_catalog.=) 'all' THEN pg_catalog.count(*) FILTER (WHERE nb.first_row) ELSE pg_catalog.count(*) END
      FROM nb GROUP BY %8$s)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, a.dimension, a.key, m.value
  FROM a CROSS JOIN LATERAL (VALUES ('orders'::pg_catalog.text, a.n::pg_catalog.numeric), ('revenue', a.revenue),
                                    ('gross_profit', a.gp), ('new_buyers', a.nb::pg_catalog.numeric)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, src_o, crm._source_sql('customers', 'c'), go[1], go[2], go[3], gn[1], gn[2], gn[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_orders(timestamptz) IS
'Rollup part orders: keeps the first order per customer (crm.rollup_customers) and writes orders, revenue, gross_profit and new_buyers per day (all, and channel and manager of the customer) for the days from the given moment on.';

-- deals_won, won_value, won_cycle_days, deals_lost, lost_deal_value (all,
-- channel, manager; the lost ones also by stage); keeps crm.rollup_deals
CREATE FUNCTION crm._rollup_deals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n       bigint;
    old_ids text[];
    idtype  text;
    src     text := crm._source_sql('stage_events', 'e');
BEGIN
    PERFORM crm._require_stages('crm.refresh_rollups');
    -- every deal with an event at or after the bound, before or after the
    -- change, is recomputed from all its events
    WITH d AS (DELETE FROM crm.rollup_deals rd WHERE rd.last_at OPERATOR(pg_catalog.>=) from_ts RETURNING rd.deal_id)
    SELECT pg_catalog.array_agg(d.deal_id) INTO old_ids FROM d;
    EXECUTE pg_catalog.format('SELECT pg_catalog.pg_typeof(e.deal_id)::pg_catalog.text FROM %s LIMIT 1', src) INTO idtype;
    IF idtype IS NOT NULL THEN
        EXECUTE pg_catalog.format($sql$
WITH t AS (
    SELECT e.deal_id FROM %1$s WHERE e.changed_at OPERATOR(pg_catalog.>=) $1
    UNION
    SELECT pg_catalog.unnest($2::pg_catalog.text[])::%2$s),
dl AS (
    SELECT ev.deal_id, pg_catalog.min(ev.changed_at) AS first_at, pg_catalog.max(ev.changed_at) AS last_at,
           pg_catalog.min(ev.changed_at) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(ev.changed_at) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.min(ev.manager_id) AS manager_id, pg_catalog.min(ev.channel) AS channel,
           pg_catalog.max(ev.amount) AS amount, pg_catalog.max(ev.so) FILTER (WHERE ev.oc OPERATOR(pg_catalog.=) 'open') AS open_so,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(ev.so) AS unknown
      FROM (SELECT e.deal_id, e.changed_at, e.amount, e.manager_id::pg_catalog.text AS manager_id, e.channel::pg_catalog.text AS channel,
                   %3$s AS so, %4$s AS oc
              FROM %1$s WHERE %5$s
            OFFSET 0) AS ev  -- a fence: the stage CASEs are computed once per row
     GROUP BY ev.deal_id),
dc AS MATERIALIZED (
    SELECT dl.*, least(dl.won_at, dl.lost_at) AS closed_at,
           dl.won_at IS NOT NULL AND dl.won_at OPERATOR(pg_catalog.<=) coalesce(dl.lost_at, dl.won_at) AS is_won
      FROM dl),
-- deals with events after their close (rare): amount and most advanced open
-- stage up to the close, from their events read again
late AS (
    SELECT e.deal_id,
           pg_catalog.max(e.amount) FILTER (WHERE e.changed_at OPERATOR(pg_catalog.<=) dc.closed_at) AS amount,
           pg_catalog.max(%3$s) FILTER (WHERE %4$s OPERATOR(pg_catalog.=) 'open' AND e.changed_at OPERATOR(pg_catalog.<=) dc.closed_at) AS open_so
      FROM %1$s JOIN dc ON dc.deal_id OPERATOR(pg_catalog.=) e.deal_id
     WHERE e.deal_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT dc2.deal_id FROM dc AS dc2 WHERE dc2.last_at OPERATOR(pg_catalog.>) dc2.closed_at))
     GROUP BY e.deal_id)
INSERT INTO crm.rollup_deals (deal_id, first_at, last_at, closed_at, is_won, amount, lost_stage, manager_id, channel)
SELECT dc.deal_id::pg_catalog.text, dc.first_at, dc.last_at, dc.closed_at, dc.is_won,
       CASE WHEN late.deal_id IS NULL THEN dc.amount ELSE late.amount END,
       CASE WHEN NOT dc.is_won THEN (SELECT ps.stage FROM crm.pipeline_stages ps
                                      WHERE ps.stage_order OPERATOR(pg_catalog.=) CASE WHEN late.deal_id IS NULL THEN dc.open_so ELSE late.open_so END) END,
       dc.manager_id, dc.channel
  FROM dc LEFT JOIN late ON late.deal_id OPERATOR(pg_catalog.=) dc.deal_id
 WHERE crm._check_stages((SELECT pg_catalog.sum(dc2.unknown) FROM dc AS dc2))
-- a deal whose last event was before the bound and that got one after it
-- still has its row: replaced
ON CONFLICT (deal_id) DO UPDATE
   SET first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at, closed_at = EXCLUDED.closed_at, is_won = EXCLUDED.is_won,
       amount = EXCLUDED.amount, lost_stage = EXCLUDED.lost_stage, manager_id = EXCLUDED.manager_id, channel = EXCLUDED.channel
$sql$, src, idtype, crm._stage_case('order', 'e.stage'), crm._stage_case('outcome', 'e.stage'),
       -- a full refresh reads every event once
       CASE WHEN pg_catalog.isfinite(from_ts) THEN 'e.deal_id OPERATOR(pg_catalog.=) ANY (SELECT t.deal_id FROM t)' ELSE 'true' END)
        USING from_ts, coalesce(old_ids, '{}');
    END IF;
    PERFORM crm._rollup_deal_states(from_ts);
    INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
    SELECT a.day, m.metric, a.dimension, a.key, m.value
      FROM (SELECT d.day,
                   CASE WHEN GROUPING(d.channel) OPERATOR(pg_catalog.=) 0 THEN 'channel'::pg_catalog.text
                        WHEN GROUPING(d.manager_id) OPERATOR(pg_catalog.=) 0 THEN 'manager'
                        WHEN GROUPING(d.stage) OPERATOR(pg_catalog.=) 0 THEN 'stage' ELSE 'all' END AS dimension,
                   CASE WHEN GROUPING(d.channel) OPERATOR(pg_catalog.=) 0 THEN coalesce(d.channel, '(unknown)')
                        WHEN GROUPING(d.manager_id) OPERATOR(pg_catalog.=) 0 THEN coalesce(d.manager_id, '(unknown)')
                        WHEN GROUPING(d.stage) OPERATOR(pg_catalog.=) 0 THEN d.stage ELSE 'all'::pg_catalog.text END AS key,
                   pg_catalog.count(*) FILTER (WHERE d.is_won) AS won,
                   pg_catalog.sum(d.amount) FILTER (WHERE d.is_won) AS won_value,
                   pg_catalog.sum(EXTRACT(epoch FROM d.closed_at OPERATOR(pg_catalog.-) d.first_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE d.is_won) AS cycle,
                   pg_catalog.count(*) FILTER (WHERE NOT d.is_won) AS lost,
                   pg_catalog.sum(d.amount) FILTER (WHERE NOT d.is_won) AS lost_value
              FROM (SELECT rd.closed_at::pg_catalog.date AS day, rd.closed_at, rd.first_at, rd.is_won, rd.amount, rd.channel, rd.manager_id,
                           CASE WHEN NOT rd.is_won THEN rd.lost_stage END AS stage
                      FROM crm.rollup_deals rd WHERE rd.closed_at OPERATOR(pg_catalog.>=) from_ts) AS d
             GROUP BY GROUPING SETS ((d.day), (d.day, d.channel), (d.day, d.manager_id), (d.day, d.stage))
            -- lost deals by stage only (a lost deal without an open stage has none)
            HAVING GROUPING(d.stage) OPERATOR(pg_catalog.<>) 0 OR d.stage IS NOT NULL) AS a
     CROSS JOIN LATERAL (VALUES ('deals_won'::pg_catalog.text, (CASE WHEN a.won OPERATOR(pg_catalog.>) 0 THEN a.won END)::pg_catalog.numeric),
                                ('won_value', a.won_value), ('won_cycle_days', a.cycle),
                                ('deals_lost', (CASE WHEN a.lost OPERATOR(pg_catalog.>) 0 THEN a.lost END)::pg_catalog.numeric),
                                ('lost_deal_value', a.lost_value)) AS m(metric, value)
     WHERE m.value IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_deals(timestamptz) IS
'Rollup part deals: recomputes the state of every deal with an event at or after the given moment (crm.rollup_deals) and writes deals_won, won_value, won_cycle_days, deals_lost and lost_deal_value per day of the close (all, channel, manager; lost ones also by the most advanced open stage).';

-- marketing_spend (all, channel)
CREATE FUNCTION crm._rollup_spend(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('s', 'channel');
BEGIN
    PERFORM crm._rollup_spend_months(from_ts);  -- spend per channel-month (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT s.day, 'marketing_spend', %2$s, %3$s, pg_catalog.sum(s.amount)
  FROM (SELECT src.spent_on::pg_catalog.date AS day, src.channel::pg_catalog.text AS channel, src.amount
          FROM %1$s WHERE src.spent_on OPERATOR(pg_catalog.>=) $1) AS s
 GROUP BY %4$s
HAVING pg_catalog.sum(s.amount) IS NOT NULL
$sql$, crm._source_sql('spend'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_spend(timestamptz) IS
'Rollup part spend: writes marketing_spend per day (all, channel) from the spend source, for the days from the given moment on.';

-- invoices_issued(_amount) by the issue day, invoices_paid(_amount) by the
-- payment day (dimension all only: a customer's channel or manager would tie
-- an invoice to a customers row dated after it, against the guarantee)
CREATE FUNCTION crm._rollup_invoices(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM crm._rollup_invoice_state(from_ts);  -- per-invoice state (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
WITH ev AS (
    SELECT i.issued_at::pg_catalog.date AS day, 'invoices_issued'::pg_catalog.text AS what, i.amount
      FROM %1$s WHERE i.issued_at OPERATOR(pg_catalog.>=) $1
    UNION ALL
    SELECT i.paid_at::pg_catalog.date, 'invoices_paid', i.amount
      FROM %1$s WHERE i.paid_at OPERATOR(pg_catalog.>=) $1),
a AS (SELECT ev.day, ev.what, pg_catalog.count(*) AS n, pg_catalog.sum(ev.amount) AS amount FROM ev GROUP BY 1, 2)
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT a.day, m.metric, 'all', 'all', m.value
  FROM a CROSS JOIN LATERAL (VALUES (a.what, a.n::pg_catalog.numeric),
                                    (a.what OPERATOR(pg_catalog.||) '_amount', a.amount)) AS m(metric, value)
 WHERE m.value IS NOT NULL
$sql$, crm._source_sql('invoices', 'i')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_invoices(timestamptz) IS
'Rollup part invoices: writes invoices_issued and invoices_issued_amount per issue day, invoices_paid and invoices_paid_amount per payment day (dimension all), for the days from the given moment on.';

-- real_contacts: non-automated interactions (all, manager)
CREATE FUNCTION crm._rollup_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    g text[] := crm._rollup_gsets('x', 'manager');
BEGIN
    PERFORM crm._rollup_contact_days(from_ts);  -- contacts per day, manager, kind; first responses (src/dashboard_fast_leads.sql)
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_daily (day, metric, dimension, key, value)
SELECT x.day, 'real_contacts', %2$s, %3$s, pg_catalog.count(*)
  FROM (SELECT src.occurred_at::pg_catalog.date AS day, src.manager_id::pg_catalog.text AS manager
          FROM %1$s WHERE src.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT src.automated) AS x
 GROUP BY %4$s
$sql$, crm._source_sql('interactions'), g[1], g[2], g[3]) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM crm._rollup_fast_contacts(from_ts);
    PERFORM crm._rollup_deal_contacts(from_ts);  -- real interactions by lead and customer (src/dashboard_fast_losses.sql)
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_contacts(timestamptz) IS
'Rollup part contacts: writes real_contacts (non-automated interactions) per day (all, manager) from the interactions source, for the days from the given moment on.';

-- Bookkeeping before the parts run: decides full or incremental, attaches
-- capture where it is missing, returns the parts to recompute with their
-- bounds and the time zone to compute in.
CREATE FUNCTION crm._rollup_begin(want_full boolean, OUT part text, OUT bound timestamptz, OUT time_zone text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    st   record;
    hash text := crm._rollup_config_hash();
    tz   text := pg_catalog.current_setting('TimeZone');
BEGIN
    IF want_full IS NULL THEN
        RAISE EXCEPTION 'full must not be null' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Pass true for a full rebuild, false (the default) for an incremental refresh.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM crm.sources) THEN
        RAISE EXCEPTION 'no source is registered'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register the sources first: SELECT crm.register_source(kind, query).';
    END IF;
    SELECT * INTO st FROM crm.rollup_status;
    -- capture missing (never attached, a table recreated, triggers dropped)
    -- or the sources changed: attach again and rebuild
    IF st.config_hash IS DISTINCT FROM hash OR NOT crm._rollup_capture_ok() THEN
        PERFORM crm.attach_rollup_capture();
        SELECT * INTO st FROM crm.rollup_status;
    END IF;
    -- a rebuild the caller did not ask for keeps the time zone the days are cut
    -- in (a pg_cron session runs in the server's time zone)
    IF NOT want_full AND st.time_zone IS NOT NULL THEN
        tz := st.time_zone;
    END IF;
    want_full := want_full OR st.needs_full OR st.built_at IS NULL OR st.config_hash IS DISTINCT FROM hash;
    IF want_full THEN
        TRUNCATE crm.rollup_daily, crm.rollup_customers, crm.rollup_deals;
        UPDATE crm.rollup_status s
           SET built_at = pg_catalog.now(), time_zone = tz, config_hash = hash, needs_full = false;
    ELSE
        tz := st.time_zone;
    END IF;
    FOR part, bound IN SELECT c.part, c.bound FROM crm._rollup_take_changes(want_full) c LOOP
        time_zone := tz;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._rollup_begin(boolean) IS
'First step of crm.refresh_rollups: decides between a full and an incremental refresh (full when asked, never built, the sources or stages changed, capture had to be attached, or a captured table was truncated), attaches capture where missing, consumes the recorded changes; returns the parts to recompute with their bounds and the time zone of the rollups.';

CREATE FUNCTION crm.refresh_rollups(full boolean DEFAULT false)
RETURNS TABLE (part text, from_day date, rows_written bigint)
LANGUAGE plpgsql VOLATILE
-- big scans and hash aggregates on a full refresh
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    names   text[];
    bounds  timestamptz[];
    tz      text;
    old_tz  text := pg_catalog.current_setting('TimeZone');
    t0      timestamptz;
    nrows   bigint := 0;
    nparts  int;
    ts_from timestamptz;
    is_full boolean;
    rel     regclass;
BEGIN
    -- one refresh at a time; writers are never blocked
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('crm.refresh_rollups'), 21);
    UPDATE crm.rollup_status s SET started_at = pg_catalog.clock_timestamp(), finished_at = NULL, phase = 'changes';
    SELECT pg_catalog.array_agg(b.part ORDER BY b.part), pg_catalog.array_agg(b.bound ORDER BY b.part), pg_catalog.min(b.time_zone)
      INTO names, bounds, tz FROM crm._rollup_begin(refresh_rollups.full) AS b;
    nparts := coalesce(pg_catalog.cardinality(names), 0);
    is_full := coalesce((SELECT pg_catalog.bool_and(x OPERATOR(pg_catalog.=) '-infinity') FROM pg_catalog.unnest(bounds) AS x), false);
    IF tz IS NOT NULL THEN
        -- days are cut in the time zone the rollups were built in
        PERFORM pg_catalog.set_config('TimeZone', tz, true);
    END IF;
    FOR i IN 1 .. nparts LOOP
        t0 := pg_catalog.clock_timestamp();
        UPDATE crm.rollup_status s SET phase = names[i], done = i OPERATOR(pg_catalog.-) 1, total = nparts;
        -- progress as every long call of the extension reports it: in
        -- pg_stat_activity.query for other sessions, as a NOTICE at intervals
        PERFORM crm._progress(pg_catalog.format('crm.refresh_rollups: part %s from %s', names[i],
                                  CASE WHEN pg_catalog.isfinite(bounds[i]) THEN bounds[i]::pg_catalog.date::pg_catalog.text ELSE 'the start' END),
                              (i OPERATOR(pg_catalog.-) 1)::pg_catalog.int8, nparts::pg_catalog.int8);
        -- whole days from the day of the bound
        ts_from := CASE WHEN bounds[i] OPERATOR(pg_catalog.=) '-infinity' THEN bounds[i]
                        ELSE bounds[i]::pg_catalog.date::pg_catalog.timestamptz END;
        DELETE FROM crm.rollup_daily r
         WHERE r.day OPERATOR(pg_catalog.>=) ts_from::pg_catalog.date
           AND r.metric OPERATOR(pg_catalog.=) ANY ((SELECT p.metrics FROM crm._rollup_parts() p WHERE p.part OPERATOR(pg_catalog.=) names[i])::pg_catalog.text[]);
        part := names[i];
        from_day := CASE WHEN pg_catalog.isfinite(ts_from) THEN ts_from::pg_catalog.date END;
        rows_written := CASE names[i]
            WHEN 'leads' THEN crm._rollup_leads(ts_from)
            WHEN 'orders' THEN crm._rollup_orders(ts_from)
            WHEN 'deals' THEN crm._rollup_deals(ts_from)
            WHEN 'spend' THEN crm._rollup_spend(ts_from)
            WHEN 'invoices' THEN crm._rollup_invoices(ts_from)
            WHEN 'contacts' THEN crm._rollup_contacts(ts_from) END;
        nrows := nrows OPERATOR(pg_catalog.+) rows_written;
        IF is_full OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0 OPERATOR(pg_catalog.>) '5 seconds'::pg_catalog.interval THEN
            RAISE NOTICE 'crm.refresh_rollups: part % (% of %) from %: % rows in % s', names[i], i, nparts,
                coalesce(from_day::pg_catalog.text, 'the start'), rows_written,
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0)::pg_catalog.numeric, 1);
        END IF;
        RETURN NEXT;
    END LOOP;
    PERFORM pg_catalog.set_config('TimeZone', old_tz, true);
    -- after a full rebuild the planner must know the rollup tables at once (the
    -- reports join them; autovacuum comes too late for the first dashboard):
    -- the ones this role owns
    IF is_full AND nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: analyzing the rollup tables', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
        FOR rel IN SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c
                    WHERE c.relnamespace OPERATOR(pg_catalog.=) 'crm'::pg_catalog.regnamespace AND c.relkind OPERATOR(pg_catalog.=) 'r'
                      AND c.relname OPERATOR(pg_catalog.~~) 'rollup\_%' AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
                    ORDER BY c.relname LOOP
            EXECUTE pg_catalog.format('ANALYZE %s', rel);
        END LOOP;
    END IF;
    -- the owner dashboard's per-entity rows for the dashboard period (when a part changed them)
    PERFORM crm._rollup_owner_keep(names, bounds);
    IF nparts OPERATOR(pg_catalog.>) 0 THEN
        PERFORM crm._progress('crm.refresh_rollups: finished', nparts::pg_catalog.int8, nparts::pg_catalog.int8);
    END IF;
    UPDATE crm.rollup_status s
       SET phase = 'done', done = nparts, total = nparts,
           finished_at = pg_catalog.clock_timestamp(), last_mode = CASE WHEN is_full THEN 'full' ELSE 'incremental' END,
           last_rows = nrows,
           -- a refresh that recomputed nothing leaves what was kept from the rollups valid
           changed_at = CASE WHEN nparts OPERATOR(pg_catalog.>) 0 THEN pg_catalog.clock_timestamp() ELSE s.changed_at END;
END
$$;
COMMENT ON FUNCTION crm.refresh_rollups(boolean) IS
'Brings the daily rollups (crm.rollup_daily, crm.v_daily) up to date: recomputes, per part, every day at or after the earliest change the capture triggers recorded (committed changes only), or everything when full => true or a full rebuild is needed; one row per part recomputed. One refresh runs at a time.';

-- ---------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------

CREATE VIEW crm.v_daily WITH (security_invoker = true) AS
SELECT r.day, r.metric, r.dimension, r.key, r.value FROM crm.rollup_daily r;
COMMENT ON VIEW crm.v_daily IS
'Daily rollups in long format for BI (a date filter on day gives any period): one row per day, additive metric, dimension and key; sums over a period equal crm.owner_dashboard for that period. Kept up to date by crm.refresh_rollups.';
COMMENT ON COLUMN crm.v_daily.day IS 'The day (in the time zone of the last full refresh, crm.rollup_status.time_zone) the figure belongs to.';
COMMENT ON COLUMN crm.v_daily.metric IS 'Additive metric: leads_in, new_buyers, orders, revenue, gross_profit, marketing_spend, deals_won, won_value, won_cycle_days, deals_lost, lost_deal_value, invoices_issued, invoices_issued_amount, invoices_paid, invoices_paid_amount, real_contacts.';
COMMENT ON COLUMN crm.v_daily.dimension IS 'How the metric is split: all (one row, key ''all''), channel, manager, or stage (lost deals by their most advanced open stage).';
COMMENT ON COLUMN crm.v_daily.key IS 'The channel, manager id or stage name (''(unknown)'' when the source gives none); ''all'' for dimension all.';
COMMENT ON COLUMN crm.v_daily.value IS 'The figure for that day: a count or a sum of money (won_cycle_days: the sum of the won deals'' cycle lengths in days).';
GRANT SELECT ON crm.v_daily TO PUBLIC;

-- Whether the rollups can stand in for the full computation right now, in
-- this session: built, no change waiting, built from the registered sources
-- and stages as they are, capture in place, days cut in the session's time zone.
CREATE FUNCTION crm._rollups_built() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce((SELECT s.built_at IS NOT NULL AND NOT s.needs_full
                        AND s.config_hash = crm._rollup_config_hash()
                        AND s.time_zone = current_setting('TimeZone')
                   FROM crm.rollup_status s), false)
   AND crm._rollup_capture_ok()
$$;
COMMENT ON FUNCTION crm._rollups_built() IS
'True when the rollups are built from the registered sources and stages as they are now, in the session''s time zone, with the capture triggers in place (changes may be waiting).';

CREATE FUNCTION crm.rollups_fresh() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT crm._rollups_built() AND NOT EXISTS (SELECT 1 FROM crm.rollup_changes)
$$;
COMMENT ON FUNCTION crm.rollups_fresh() IS
'True when the daily rollups equal the full computation for this session: built, no recorded change waiting for crm.refresh_rollups, built from the registered sources and stages as they are now, capture triggers in place, and days cut in the session''s time zone.';

-- Whether a report may answer from the rollups instead of the full
-- computation, by the setting crm_analytics.rollups (per session, role or
-- database): fresh (default: only when the rollups equal the live data,
-- crm.rollups_fresh()), last_refresh (whenever they are built for the
-- registered sources, stages and time zone: as of the last refresh, changes
-- waiting or not), off (always the full computation).
CREATE FUNCTION crm._rollups_usable() RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mode text := coalesce(nullif(current_setting('crm_analytics.rollups', true), ''), 'fresh');
BEGIN
    IF mode NOT IN ('fresh', 'last_refresh', 'off') THEN
        RAISE EXCEPTION 'invalid value for parameter "crm_analytics.rollups": "%"', mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Available values: fresh, last_refresh, off.';
    END IF;
    IF mode = 'off' THEN
        RETURN false;
    END IF;
    -- The full computation runs the sources with the caller's privileges and
    -- row-level security; the rollups hold every row.  A role that may not
    -- read every rollup table, or that row-level security of a captured table
    -- applies to, gets the full computation.
    -- (the kept to-do list excepted: a role that may not read it computes the list)
    IF EXISTS (SELECT 1 FROM pg_class c
                WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'rollup\_%'
                  AND c.relname NOT IN ('rollup_todo_kept', 'rollup_todo_kept_key')
                  AND NOT has_table_privilege(c.oid, 'SELECT')) THEN
        RETURN false;
    END IF;
    -- (a statement of its own: crm.rollup_capture is readable now)
    IF EXISTS (SELECT 1 FROM crm.rollup_capture rc JOIN pg_class c ON c.oid = rc.relid
                WHERE c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
                  AND NOT (SELECT r.rolbypassrls OR r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RETURN false;
    END IF;
    IF mode = 'fresh' THEN
        RETURN crm.rollups_fresh();
    ELSIF mode = 'last_refresh' THEN
        -- a TRUNCATE waiting means a full rebuild: not the last refresh's figures any more
        RETURN crm._rollups_built() AND NOT EXISTS (SELECT 1 FROM crm.rollup_changes c WHERE c.bound IS NULL);
    END IF;
    RETURN false;
END
$$;
COMMENT ON FUNCTION crm._rollups_usable() IS
'Whether the reports may answer from the rollups, by the setting crm_analytics.rollups: fresh (default; only when crm.rollups_fresh()), last_refresh (whenever built for the current sources, stages and time zone), off (never); never for a role that may not read every rollup table (the kept to-do list excepted) or that row-level security of a captured table applies to.';

CREATE FUNCTION crm.daily_metrics(period_from date, period_to date)
RETURNS TABLE (metric text, dimension text, key text, value numeric)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._period_bounds('crm.daily_metrics', period_from, period_to);
    IF NOT EXISTS (SELECT 1 FROM crm.rollup_status s WHERE s.built_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the rollups have not been built'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Build them: SELECT * FROM crm.refresh_rollups();';
    END IF;
    RETURN QUERY
    SELECT r.metric, r.dimension, r.key, sum(r.value)
      FROM crm.rollup_daily r
     WHERE r.day BETWEEN period_from AND period_to
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION crm.daily_metrics(date, date) IS
'Sums of the daily rollups over the period [from, to] (inclusive dates): one row per metric, dimension and key. As fresh as the last crm.refresh_rollups.';

-- The owner dashboard's figures that the rollups hold or derive (sums and
-- ratios of sums), for a period and the previous one of equal length, in the
-- shape of crm.owner_dashboard: the fast path for BI (the full computation,
-- crm.owner_dashboard, stays the reference; test/rollups.sql compares them).
CREATE FUNCTION crm.owner_dashboard_rollup(period_from date, period_to date)
RETURNS TABLE (metric text, value numeric, unit text, previous_value numeric, change_pct numeric, section text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard_rollup', period_from, period_to);
    IF NOT EXISTS (SELECT 1 FROM crm.rollup_status s WHERE s.built_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the rollups have not been built'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Build them: SELECT * FROM crm.refresh_rollups();';
    END IF;
    RETURN QUERY
    WITH s AS (
        SELECT r.metric AS m, r.dimension AS dim, r.key AS k,
               sum(r.value) FILTER (WHERE r.day >= period_from) AS c,
               sum(r.value) FILTER (WHERE r.day < period_from) AS p
          FROM crm.rollup_daily r
         WHERE r.day >= b.prev_from::date AND r.day <= period_to AND r.dimension IN ('all', 'stage')
         GROUP BY 1, 2, 3),
    a AS (
        SELECT sum(s.c) FILTER (WHERE s.m = 'leads_in') AS c_leads, sum(s.p) FILTER (WHERE s.m = 'leads_in') AS p_leads,
               sum(s.c) FILTER (WHERE s.m = 'new_buyers') AS c_new, sum(s.p) FILTER (WHERE s.m = 'new_buyers') AS p_new,
               sum(s.c) FILTER (WHERE s.m = 'marketing_spend') AS c_spend, sum(s.p) FILTER (WHERE s.m = 'marketing_spend') AS p_spend,
               sum(s.c) FILTER (WHERE s.m = 'revenue') AS c_rev, sum(s.p) FILTER (WHERE s.m = 'revenue') AS p_rev,
               sum(s.c) FILTER (WHERE s.m = 'orders') AS c_ord, sum(s.p) FILTER (WHERE s.m = 'orders') AS p_ord,
               sum(s.c) FILTER (WHERE s.m = 'gross_profit') AS c_gp, sum(s.p) FILTER (WHERE s.m = 'gross_profit') AS p_gp,
               sum(s.c) FILTER (WHERE s.m = 'deals_won') AS c_won, sum(s.p) FILTER (WHERE s.m = 'deals_won') AS p_won,
               sum(s.c) FILTER (WHERE s.m = 'won_value') AS c_wv, sum(s.p) FILTER (WHERE s.m = 'won_value') AS p_wv,
               sum(s.c) FILTER (WHERE s.m = 'won_cycle_days') AS c_cyc, sum(s.p) FILTER (WHERE s.m = 'won_cycle_days') AS p_cyc,
               sum(s.c) FILTER (WHERE s.m = 'deals_lost') AS c_lost, sum(s.p) FILTER (WHERE s.m = 'deals_lost') AS p_lost,
               sum(s.c) FILTER (WHERE s.m = 'lost_deal_value') AS c_lv, sum(s.p) FILTER (WHERE s.m = 'lost_deal_value') AS p_lv
          FROM s WHERE s.dim = 'all'),
    z AS (
        SELECT coalesce(c_leads, 0) AS c_leads, coalesce(p_leads, 0) AS p_leads, coalesce(c_new, 0) AS c_new, coalesce(p_new, 0) AS p_new,
               c_spend, p_spend, c_rev, p_rev, coalesce(c_ord, 0) AS c_ord, coalesce(p_ord, 0) AS p_ord, c_gp, p_gp,
               coalesce(c_won, 0) AS c_won, coalesce(p_won, 0) AS p_won, c_wv, p_wv, c_cyc, p_cyc,
               coalesce(c_lost, 0) AS c_lost, coalesce(p_lost, 0) AS p_lost, c_lv, p_lv
          FROM a),
    rows AS (
        SELECT v.* FROM z, LATERAL (VALUES
            (1, 'acquisition', 'leads_in', c_leads, p_leads, 'count'),
            (2, 'acquisition', 'new_buyers', c_new, p_new, 'count'),
            (4, 'acquisition', 'marketing_spend', coalesce(c_spend, 0), coalesce(p_spend, 0), 'money'),
            (5, 'acquisition', 'cac', round(coalesce(c_spend, 0) / nullif(c_new, 0), 2), round(coalesce(p_spend, 0) / nullif(p_new, 0), 2), 'money'),
            (6, 'sales', 'revenue', coalesce(c_rev, 0), coalesce(p_rev, 0), 'money'),
            (7, 'sales', 'orders', c_ord, p_ord, 'count'),
            (8, 'sales', 'average_check', round(c_rev / nullif(c_ord, 0), 2), round(p_rev / nullif(p_ord, 0), 2), 'money'),
            (10, 'sales', 'gross_profit', coalesce(c_gp, 0), coalesce(p_gp, 0), 'money'),
            (11, 'sales', 'roi', round(100.0 * (coalesce(c_gp, 0) - c_spend) / nullif(c_spend, 0), 2),
                                 round(100.0 * (coalesce(p_gp, 0) - p_spend) / nullif(p_spend, 0), 2), 'pct'),
            (12, 'pipeline', 'win_rate', round(100.0 * c_won / nullif(c_won + c_lost, 0), 2), round(100.0 * p_won / nullif(p_won + p_lost, 0), 2), 'pct'),
            (13, 'pipeline', 'deals_won', c_won, p_won, 'count'),
            (14, 'pipeline', 'average_won_deal', round(c_wv / nullif(c_won, 0), 2), round(p_wv / nullif(p_won, 0), 2), 'money'),
            (15, 'pipeline', 'sales_cycle', round(c_cyc / nullif(c_won, 0), 2), round(p_cyc / nullif(p_won, 0), 2), 'days'),
            (20, 'money_lost', 'deals_lost', c_lost, p_lost, 'count'),
            (21, 'money_lost', 'lost_deal_value', coalesce(c_lv, 0), coalesce(p_lv, 0), 'money')
          ) AS v(ord, sec, name, cur, prev, u)
        UNION ALL
        SELECT 100 + ps.stage_order, 'money_lost', 'lost_value_at_' || ps.stage,
               coalesce((SELECT s.c FROM s WHERE s.m = 'lost_deal_value' AND s.dim = 'stage' AND s.k = ps.stage), 0),
               coalesce((SELECT s.p FROM s WHERE s.m = 'lost_deal_value' AND s.dim = 'stage' AND s.k = ps.stage), 0), 'money'
          FROM crm.pipeline_stages ps WHERE ps.outcome = 'open')
    SELECT rows.name, rows.cur, rows.u, rows.prev,
           round(100.0 * (rows.cur - rows.prev) / nullif(abs(rows.prev), 0), 2), rows.sec
      FROM rows ORDER BY rows.ord;
END
$$;
COMMENT ON FUNCTION crm.owner_dashboard_rollup(date, date) IS
'The owner dashboard figures the daily rollups hold or derive (leads, new buyers, spend, CAC, revenue, orders, average check, gross profit, ROI, win rate, deals won and lost, average won deal, sales cycle, lost value, lost value per stage) for the period [from, to] and the previous period of equal length, in the shape of crm.owner_dashboard, read from the rollups (as fresh as the last crm.refresh_rollups).';
