-- dashboard.sql: the owner dashboard and the BI views (docs/dashboard.md).
--
-- A source registry (crm.sources) maps the user's own CRM tables to the
-- documented columns once, as inner queries; crm.owner_dashboard, the channel,
-- manager and pipeline reports and the crm.v_* views read every figure through
-- it.  This file is concatenated last into the install script.
--
-- Functions that run a registered (user) query do not pin search_path: the
-- query resolves with the caller's search_path, as every inner query does.
-- They qualify every object of their own.

-- ---------------------------------------------------------------------------
-- Source registry
-- ---------------------------------------------------------------------------

CREATE TABLE crm.sources (
    kind          text PRIMARY KEY
                  CHECK (kind IN ('leads', 'customers', 'stage_events', 'orders', 'invoices', 'spend', 'interactions', 'deals')),
    query         text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by name NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE crm.sources IS
'Source registry of the owner dashboard: per kind, the inner query that maps the user''s own tables to the documented columns (see crm.source_columns). Fill it with crm.register_source.';
SELECT pg_catalog.pg_extension_config_dump('crm.sources', '');

-- Pipeline stages: order, win probability and outcome of every stage name
-- that the stage_events source uses.  Empty at install (so pg_dump keeps
-- exactly what the user put in); crm._register_demo_sources() fills it for
-- the demo.
CREATE TABLE crm.pipeline_stages (
    stage       text PRIMARY KEY,
    stage_order int NOT NULL UNIQUE,
    probability numeric NOT NULL CHECK (probability >= 0 AND probability <= 1),
    outcome     text NOT NULL DEFAULT 'open' CHECK (outcome IN ('open', 'won', 'lost')),
    max_days    int CHECK (max_days > 0)
);
COMMENT ON TABLE crm.pipeline_stages IS
'Stages of the sales pipeline: order in the funnel, probability that a deal in the stage is won (weighted pipeline), outcome (open, won or lost) and stage norm (max_days).';
COMMENT ON COLUMN crm.pipeline_stages.max_days IS
'Stage norm: the most days an open deal should sit idle (since its last stage change) in this stage; an open deal idle longer is stale and left out of the weighted pipeline.  NULL = no norm.';
SELECT pg_catalog.pg_extension_config_dump('crm.pipeline_stages', '');

-- Dashboard settings: one optional row.  No row = the defaults (see
-- crm.dashboard_period and crm._lead_sla).
CREATE TABLE crm.dashboard_settings (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    period_from date,
    period_to   date,
    lead_sla    interval NOT NULL DEFAULT '1 hour',
    CHECK (period_from IS NULL AND period_to IS NULL
           OR period_from IS NOT NULL AND period_to IS NOT NULL AND period_from <= period_to),
    -- issue 20 (todo): last, as ALTER TABLE ... ADD COLUMN puts it on an upgrade
    reactivation_after interval NOT NULL DEFAULT '90 days' CHECK (reactivation_after > interval '0')
);
COMMENT ON TABLE crm.dashboard_settings IS
'Settings of the owner dashboard (at most one row): the period the crm.v_* views show (NULL = the last complete calendar month) and the lead first-response SLA.';
SELECT pg_catalog.pg_extension_config_dump('crm.dashboard_settings', '');

-- BI users (Metabase's database user) read the views, which read these
-- tables with the caller's rights: the stages and the settings are readable by
-- everyone; only the owner (or whoever is granted more) edits them.
-- crm.sources holds SQL text (table names, filters): not readable by
-- everyone.  The reports run the registered queries as the caller, so a
-- reporting role needs SELECT on crm.sources granted by the administrator
-- (GRANT SELECT ON crm.sources TO reporting_role), and on the tables the
-- queries read.
GRANT SELECT ON crm.pipeline_stages, crm.dashboard_settings TO PUBLIC;
REVOKE SELECT ON crm.sources FROM PUBLIC;   -- explicit, as the 0.2.0 -> 0.3.0 upgrade does
-- the dashboard reads the coverage capability's contact policy too
DO $grant$
BEGIN
    IF pg_catalog.to_regclass('crm.coverage_policy') IS NOT NULL THEN
        GRANT SELECT ON crm.coverage_policy TO PUBLIC;
    END IF;
END
$grant$;

CREATE FUNCTION crm.source_columns(kind text) RETURNS text[]
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

-- "lead_id, created_at timestamptz, ..." for messages
CREATE FUNCTION crm._source_columns_text(kind text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT string_agg(CASE WHEN c LIKE '% any' THEN split_part(c, ' ', 1) ELSE c END, ', ' ORDER BY n)
  FROM unnest(crm.source_columns(kind)) WITH ORDINALITY AS u(c, n)
$$;
COMMENT ON FUNCTION crm._source_columns_text(text) IS
'The documented columns of a source kind as text, for error messages.';

CREATE FUNCTION crm.register_source(kind text, query text) RETURNS void
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

CREATE FUNCTION crm.unregister_source(kind text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
WITH d AS (DELETE FROM crm.sources s WHERE s.kind = unregister_source.kind RETURNING 1)
SELECT count(*) > 0 FROM d
$$;
COMMENT ON FUNCTION crm.unregister_source(text) IS
'Removes a registered source; true if it was registered.';

-- The registered query of a kind, checked, wrapped as a FROM item that names
-- the documented columns: "(<query>) AS src(lead_id, created_at, ...)".
-- Errors: not registered (55000, says which to register), the registered
-- query no longer runs or no longer returns the columns (names the source).
CREATE FUNCTION crm._source_sql(kind text, alias text DEFAULT 'src') RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    q     text;
    cols  text[] := crm.source_columns(kind);
    names text;
    m     text;
    st    text;
BEGIN
    IF cols IS NULL THEN
        RAISE EXCEPTION 'unknown source kind "%"', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_catalog.has_table_privilege('crm.sources', 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for the source registry crm.sources'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The reports run the registered source queries as the calling role, which must be able to read them.',
                  HINT = pg_catalog.format('An administrator can grant it: GRANT SELECT ON crm.sources TO %I; the role also needs SELECT on the tables the sources read.',
                                           CURRENT_USER);
    END IF;
    SELECT s.query INTO q FROM crm.sources s WHERE s.kind OPERATOR(pg_catalog.=) _source_sql.kind;
    IF q IS NULL THEN
        RAISE EXCEPTION 'source "%" is not registered', kind
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('Register it: SELECT crm.register_source(%L, ''SELECT ... FROM your_table''); the query must return (%s).',
                                           kind, crm._source_columns_text(kind));
    END IF;
    BEGIN
        PERFORM crm._check_inner_query(pg_catalog.format('source "%s"', kind), q, cols);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
        RAISE EXCEPTION 'registered source "%" is broken: %', kind, m
            USING ERRCODE = st,
                  HINT = pg_catalog.format('Fix the tables it reads or register it again: SELECT crm.register_source(%L, ''...''); the query must return (%s).',
                                           kind, crm._source_columns_text(kind));
    END;
    SELECT pg_catalog.string_agg(pg_catalog.split_part(c, ' ', 1), ', ' ORDER BY n)
      INTO names FROM pg_catalog.unnest(cols) WITH ORDINALITY AS u(c, n);
    RETURN pg_catalog.format(E'(%s\n) AS %I(%s)', q, alias, names);
END
$$;
COMMENT ON FUNCTION crm._source_sql(text, text) IS
'The registered inner query of a source kind, checked, as a FROM item naming the documented columns; a clear error when it is not registered or no longer runs.';

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------

-- The period of the crm.v_* views, first found of:
--   1. the settings crm.period_from and crm.period_to (ISO dates, both),
--   2. the setting crm.period (a period relative to current_date),
--   3. the row of crm.dashboard_settings (crm.set_dashboard_period),
--   4. the last complete calendar month.
-- A setting comes from SET (session, SET LOCAL), ALTER ROLE ... SET or ALTER
-- DATABASE ... SET, as every setting does; an empty value counts as unset.
CREATE FUNCTION crm._period_setting_date(name text) RETURNS date
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := nullif(btrim(current_setting(name, true)), '');
    d date;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF v !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RAISE EXCEPTION 'invalid value for setting %: "%"', name, v
            USING ERRCODE = 'invalid_datetime_format',
                  HINT = pg_catalog.format('Use an ISO date, e.g. SET %s = ''2025-12-01'', or RESET %s.', name, name);
    END IF;
    BEGIN
        d := v::date;
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
        RAISE EXCEPTION 'invalid value for setting %: "%" is not a date', name, v
            USING ERRCODE = 'invalid_datetime_format',
                  HINT = pg_catalog.format('Use an ISO date, e.g. SET %s = ''2025-12-01'', or RESET %s.', name, name);
    END;
    RETURN d;
END
$$;
COMMENT ON FUNCTION crm._period_setting_date(text) IS
'The date in the setting name (crm.period_from or crm.period_to), NULL when unset or empty; a clear error (22007) naming the setting when it is not an ISO date.';

CREATE FUNCTION crm._dashboard_period(OUT period_from date, OUT period_to date, OUT source text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d_from date := crm._period_setting_date('crm.period_from');
    d_to   date := crm._period_setting_date('crm.period_to');
    rel    text := nullif(lower(btrim(current_setting('crm.period', true))), '');
    today  date := current_date;
    m      date := date_trunc('month', current_date)::date;
    q      date := date_trunc('quarter', current_date)::date;
BEGIN
    IF d_from IS NOT NULL OR d_to IS NOT NULL THEN
        IF d_from IS NULL OR d_to IS NULL THEN
            RAISE EXCEPTION 'setting % is set but % is not', CASE WHEN d_from IS NULL THEN 'crm.period_to' ELSE 'crm.period_from' END,
                                                          CASE WHEN d_from IS NULL THEN 'crm.period_from' ELSE 'crm.period_to' END
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Set both (SET crm.period_from = ''2025-12-01''; SET crm.period_to = ''2025-12-31'') or reset both.';
        END IF;
        IF NOT (isfinite(d_from) AND isfinite(d_to)) THEN
            RAISE EXCEPTION 'settings crm.period_from and crm.period_to must be finite dates, got % to %', d_from, d_to
                USING ERRCODE = 'datetime_field_overflow',
                      HINT = 'Use real dates, e.g. ''2025-12-01'' and ''2025-12-31''.';
        END IF;
        IF d_from > d_to THEN
            RAISE EXCEPTION 'setting crm.period_from % is after crm.period_to %', d_from, d_to
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Swap the two dates.';
        END IF;
        period_from := d_from;
        period_to := d_to;
        source := 'settings crm.period_from, crm.period_to';
        RETURN;
    END IF;
    IF rel IS NOT NULL THEN
        CASE rel
            WHEN 'last_month'   THEN period_from := (m - interval '1 month')::date;   period_to := m - 1;
            WHEN 'this_month'   THEN period_from := m;                                 period_to := today;
            WHEN 'last_quarter' THEN period_from := (q - interval '3 months')::date;  period_to := q - 1;
            WHEN 'this_quarter' THEN period_from := q;                                 period_to := today;
            WHEN 'last_7_days'  THEN period_from := today - 7;                         period_to := today - 1;
            WHEN 'last_30_days' THEN period_from := today - 30;                        period_to := today - 1;
            ELSE
                RAISE EXCEPTION 'invalid value for setting crm.period: "%"', current_setting('crm.period', true)
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use last_month, this_month, last_quarter, this_quarter, last_7_days or last_30_days, or RESET crm.period.';
        END CASE;
        source := 'setting crm.period = ' || rel;
        RETURN;
    END IF;
    SELECT s.period_from, s.period_to INTO period_from, period_to FROM crm.dashboard_settings s;
    IF period_from IS NOT NULL THEN
        source := 'crm.dashboard_settings';
        RETURN;
    END IF;
    period_from := (m - interval '1 month')::date;
    period_to := m - 1;
    source := 'default: the last complete calendar month';
END
$$;
COMMENT ON FUNCTION crm._dashboard_period() IS
'The dashboard period and where it comes from: the settings crm.period_from and crm.period_to, else the setting crm.period, else crm.dashboard_settings, else the last complete calendar month.';

CREATE FUNCTION crm.dashboard_period(OUT period_from date, OUT period_to date)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT p.period_from, p.period_to FROM crm._dashboard_period() AS p
$$;
COMMENT ON FUNCTION crm.dashboard_period() IS
'The period the crm.v_* views show: the settings crm.period_from and crm.period_to (session, role or database), else the setting crm.period (last_month, this_month, last_quarter, this_quarter, last_7_days, last_30_days), else the one set with crm.set_dashboard_period, else the last complete calendar month.';

CREATE FUNCTION crm.dashboard_period_source() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT p.source FROM crm._dashboard_period() AS p
$$;
COMMENT ON FUNCTION crm.dashboard_period_source() IS
'Where the period of crm.dashboard_period() comes from: the settings crm.period_from and crm.period_to, the setting crm.period, crm.dashboard_settings or the default.';

CREATE FUNCTION crm.set_dashboard_period(period_from date, period_to date) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (period_from IS NULL) <> (period_to IS NULL) THEN
        RAISE EXCEPTION 'set both ends of the dashboard period or neither'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass NULL, NULL to go back to the default (the last complete calendar month).';
    END IF;
    IF NOT (isfinite(period_from) AND isfinite(period_to)) THEN
        RAISE EXCEPTION 'dashboard period bounds must be finite, got % to %', period_from, period_to
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass real dates, e.g. (''2025-12-01'', ''2025-12-31''), or NULL, NULL for the last complete calendar month.';
    END IF;
    IF period_from > period_to THEN
        RAISE EXCEPTION 'period start % is after its end %', period_from, period_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Swap the two dates.';
    END IF;
    INSERT INTO crm.dashboard_settings AS s (singleton, period_from, period_to)
    VALUES (true, set_dashboard_period.period_from, set_dashboard_period.period_to)
    ON CONFLICT (singleton) DO UPDATE SET period_from = excluded.period_from, period_to = excluded.period_to;
END
$$;
COMMENT ON FUNCTION crm.set_dashboard_period(date, date) IS
'Sets the global period (inclusive dates) that the crm.v_* views show, for every session without the settings crm.period_from / crm.period_to or crm.period; NULL, NULL = the last complete calendar month.';

-- Progress of long calls (crm.load_demo, crm.apply_time_rules, ...): a
-- NOTICE every crm_analytics.progress_interval and the progress line in
-- pg_stat_activity.query of the backend (src/bi.c; docs/demo.md).
CREATE FUNCTION crm._progress(phase text, done bigint, total bigint) RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'crm_progress';
COMMENT ON FUNCTION crm._progress(text, bigint, bigint) IS
'Reports the progress of a long call: phase (what runs), done of total (NULL = unknown) and the time since the statement started, in pg_stat_activity.query of this backend and, every crm_analytics.progress_interval (default 10 s, -1 = never), as a NOTICE. Call it between batches, not per row.';

CREATE FUNCTION crm._lead_sla() RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce((SELECT s.lead_sla FROM crm.dashboard_settings s), interval '1 hour')
$$;
COMMENT ON FUNCTION crm._lead_sla() IS
'The one lead first-response SLA default of crm.lead_sla, crm.dashboard_lead_sla and crm.v_lead_sla: crm.dashboard_settings.lead_sla, default 1 hour.';

-- [from, to] as dates -> half-open timestamptz bounds of this and the previous
-- period of equal length; the errors every report shares.
CREATE FUNCTION crm._period_bounds(fname text, period_from date, period_to date,
                                   OUT cur_from timestamptz, OUT cur_to timestamptz,
                                   OUT prev_from timestamptz, OUT prev_to timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF period_from IS NULL OR period_to IS NULL THEN
        RAISE EXCEPTION 'period bounds must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass both dates, e.g. (''2025-12-01'', ''2025-12-31'').';
    END IF;
    IF NOT (isfinite(period_from) AND isfinite(period_to)) THEN
        RAISE EXCEPTION 'period bounds must be finite, got % to %', period_from, period_to
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass real dates, e.g. (''2025-12-01'', ''2025-12-31'').';
    END IF;
    IF period_from > period_to THEN
        RAISE EXCEPTION 'period start % is after its end %', period_from, period_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Swap the two dates.';
    END IF;
    cur_from  := period_from::timestamptz;
    cur_to    := (period_to + 1)::timestamptz;
    prev_from := (period_from - (period_to - period_from + 1))::timestamptz;
    prev_to   := cur_from;
END
$$;
COMMENT ON FUNCTION crm._period_bounds(text, date, date) IS
'Half-open timestamptz bounds of the period [from, to] (inclusive dates, session time zone) and of the previous period of equal length.';

-- Stage configuration must exist before pipeline figures mean anything.
CREATE FUNCTION crm._require_stages(fname text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.pipeline_stages WHERE outcome = 'won') THEN
        RAISE EXCEPTION 'crm.pipeline_stages has no won stage'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'List your stages: INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome) VALUES (''lead'', 1, 0.1, ''open''), ..., (''won'', 9, 1, ''won''), (''lost'', 10, 0, ''lost'').';
    END IF;
END
$$;
COMMENT ON FUNCTION crm._require_stages(text) IS
'Raises a clear error when crm.pipeline_stages is not filled in.';

-- Raised from inside a report query when some stage_events rows name a stage
-- that crm.pipeline_stages does not list (unknown > 0): names those stages.
CREATE FUNCTION crm._check_stages(unknown numeric) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
AS $$
DECLARE
    names text;
BEGIN
    IF coalesce(unknown, 0) OPERATOR(pg_catalog.>) 0 THEN
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.string_agg(DISTINCT src.stage, '', '') FROM %s
              WHERE NOT EXISTS (SELECT 1 FROM crm.pipeline_stages ps WHERE ps.stage OPERATOR(pg_catalog.=) src.stage)',
            crm._source_sql('stage_events')) INTO names;
        RAISE EXCEPTION 'source "stage_events" uses stages missing from crm.pipeline_stages: %', names
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Add them: INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome) VALUES (...).';
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION crm._check_stages(numeric) IS
'Raises an error naming the stages of the stage_events source that crm.pipeline_stages does not list, when there are any (unknown > 0).';

-- ---------------------------------------------------------------------------
-- The owner dashboard
-- ---------------------------------------------------------------------------

-- A CASE expression (SQL text) mapping the stage names of crm.pipeline_stages
-- to their order, outcome or probability (what = 'order', 'outcome',
-- 'probability'), or a stage_order to its probability ('order_probability'):
-- spliced into the report queries so a million events need no join.
-- Unknown stage -> NULL.
CREATE FUNCTION crm._stage_case(what text, expr text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- the text runs inside the report queries, which resolve with the caller's
-- search_path: every operator and type in it is qualified
SELECT CASE WHEN count(*) = 0 THEN 'NULL' ELSE
       format('(CASE %s END)',
              string_agg(CASE what
                  WHEN 'order' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s', expr, stage, stage_order)
                  WHEN 'outcome' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %L::pg_catalog.text', expr, stage, outcome)
                  WHEN 'probability' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s::pg_catalog.numeric', expr, stage, probability)
                  WHEN 'order_probability' THEN format('WHEN (%s) OPERATOR(pg_catalog.=) %s THEN %s::pg_catalog.numeric', expr, stage_order, probability)
                  WHEN 'rank' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s', expr, stage, rk)
                  WHEN 'step' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s', expr, stage, coalesce(step::text, 'NULL::pg_catalog.int4'))
              END, ' ' ORDER BY stage_order)) END
  FROM (SELECT ps.*, row_number() OVER (ORDER BY stage_order) AS rk,
               CASE WHEN outcome <> 'lost'
                    THEN row_number() OVER (PARTITION BY outcome = 'lost' ORDER BY stage_order) END AS step
          FROM crm.pipeline_stages ps) AS s
$$;
COMMENT ON FUNCTION crm._stage_case(text, text) IS
'SQL text of a CASE expression mapping a stage name (or stage_order) to its crm.pipeline_stages order, outcome, probability, rank (1..N by stage_order) or funnel step (rank among the open and won stages).';

-- The stage_order values of the stages with this outcome, as SQL text
-- ('1, 2, 3' or 'NULL'): spliced into IN (...) lists of the report queries.
CREATE FUNCTION crm._stage_orders(outcome text) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(string_agg(stage_order::text, ', ' ORDER BY stage_order), 'NULL')
  FROM crm.pipeline_stages WHERE pipeline_stages.outcome = _stage_orders.outcome
$$;
COMMENT ON FUNCTION crm._stage_orders(text) IS
'SQL text of the comma-separated stage_order values of the crm.pipeline_stages rows with this outcome (NULL when none), for IN lists in the report queries.';

-- The stage norm as SQL text: a CASE expression mapping a stage_order to its
-- crm.pipeline_stages.max_days as an interval (NULL when the stage has none).
-- A deal is stale at a moment t when it is open in stage s and its last stage
-- change is before t - norm(s); crm.owner_dashboard and crm.dashboard_pipeline
-- both use this one definition.
CREATE FUNCTION crm._stage_norm_case(expr text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN pg_catalog.count(*) FILTER (WHERE max_days IS NOT NULL) OPERATOR(pg_catalog.=) 0 THEN 'NULL::pg_catalog.interval'
            ELSE 'CASE ' OPERATOR(pg_catalog.||) pg_catalog.string_agg(pg_catalog.format('WHEN (%s) OPERATOR(pg_catalog.=) %s THEN %L::pg_catalog.interval', expr, stage_order, max_days::text OPERATOR(pg_catalog.||) ' days'), ' ' ORDER BY stage_order) FILTER (WHERE max_days IS NOT NULL) OPERATOR(pg_catalog.||) ' END' END
  FROM crm.pipeline_stages
$$;
COMMENT ON FUNCTION crm._stage_norm_case(text) IS
'SQL text of a CASE expression mapping a stage_order to its stage norm (crm.pipeline_stages.max_days as an interval; NULL = no norm), for the stale-deal test of the pipeline reports.';

-- The cost of a lead (docs/metrics.md): a channel's spend in a calendar month
-- / the channel's leads created in that month.  SQL text of a query returning
-- (channel, month, cost_per_lead), from FROM items of the leads source
-- (channel, created_at) and of the spend source (channel, spent_on, amount);
-- month_from / month_to (SQL expressions, NULL = unbounded) limit both to
-- [month_from, month_to).  crm.owner_dashboard and crm.todo splice it; a
-- channel-month without leads has no row.
CREATE FUNCTION crm._lead_cost_sql(leads text, spend text, month_from text DEFAULT NULL, month_to text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($q$
    SELECT s.channel, s.month, s.amount OPERATOR(pg_catalog./) n.leads AS cost_per_lead
      FROM (SELECT channel, pg_catalog.date_trunc('month', spent_on) AS month, pg_catalog.sum(amount) AS amount
              FROM %1$s WHERE %3$s GROUP BY 1, 2) AS s
      JOIN (SELECT channel, pg_catalog.date_trunc('month', created_at) AS month, pg_catalog.count(*) AS leads
              FROM %2$s WHERE %4$s GROUP BY 1, 2) AS n
        ON n.channel OPERATOR(pg_catalog.=) s.channel AND n.month OPERATOR(pg_catalog.=) s.month$q$,
    spend, leads,
    concat_ws(' AND ', 'true', 'spent_on OPERATOR(pg_catalog.>=) ' || month_from, 'spent_on OPERATOR(pg_catalog.<) ' || month_to),
    concat_ws(' AND ', 'true', 'created_at OPERATOR(pg_catalog.>=) ' || month_from, 'created_at OPERATOR(pg_catalog.<) ' || month_to))
$$;
COMMENT ON FUNCTION crm._lead_cost_sql(text, text, text, text) IS
'SQL text of the channel-month cost of a lead (spend of the channel in the month / its leads created in that month) as (channel, month, cost_per_lead), from FROM items of the leads and spend sources, optionally limited to [month_from, month_to); spliced by crm.owner_dashboard and crm.todo.';

-- The query behind crm.owner_dashboard, with the registered sources spliced
-- in; parameters $1 cur_from, $2 cur_to, $3 prev_from, $4 prev_to (= $1),
-- half-open.  (Separate so EXPLAIN and the benchmark can look at it.)
CREATE FUNCTION crm._owner_dashboard_sql() RETURNS text
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
-- cost per lead (channel-month rule, crm._lead_cost_sql), every month the
-- periods touch
cpl AS (%17$s),
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
        crm._source_sql('customers'),
        crm._lead_cost_sql(crm._source_sql('leads'), crm._source_sql('spend'),
                           'pg_catalog.date_trunc(''month'', $3)',
                           '(pg_catalog.date_trunc(''month'', $2 OPERATOR(pg_catalog.-) ''1 microsecond''::pg_catalog.interval) OPERATOR(pg_catalog.+) ''1 month''::pg_catalog.interval)'));
    RETURN q;
END
$$;
COMMENT ON FUNCTION crm._owner_dashboard_sql() IS
'The SQL text crm.owner_dashboard runs (registered sources spliced in; $1..$4 = current and previous period bounds).';

CREATE FUNCTION crm.owner_dashboard(period_from date, period_to date)
RETURNS TABLE (metric text, value numeric, unit text, previous_value numeric,
               change_pct numeric, section text)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard', period_from, period_to);
    PERFORM crm._require_stages('crm.owner_dashboard');
    -- $1 cur_from, $2 cur_to, $3 prev_from, $4 prev_to (= $1); half-open.
    -- Every figure is "as of the end of its period": data after the end is
    -- ignored, so a past period always shows the same numbers.  Built first
    -- on both paths: it checks the sources (the same errors either way).
    q := crm._owner_dashboard_sql();
    -- from the rollups when they may stand in (crm._rollups_usable, docs/rollups.md)
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_owner_dashboard(period_from, period_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to, b.prev_from, b.prev_to;
END
$$;
COMMENT ON FUNCTION crm.owner_dashboard(date, date) IS
'The owner''s one screen: one row per metric for the period [from, to] (inclusive dates) and the previous period of equal length, each figure as of the end of its period, computed from the registered sources.';

-- ---------------------------------------------------------------------------
-- Demo registration (called at the end of crm.load_demo)
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm._register_demo_sources() RETURNS void
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
COMMENT ON FUNCTION crm._register_demo_sources() IS
'Registers the crm_demo tables as the dashboard sources, the demo pipeline stages and the demo period; crm.load_demo calls it at its end.';

-- ---------------------------------------------------------------------------
-- Per customer: class and contact coverage as of a moment
-- ---------------------------------------------------------------------------

-- Contact policy per class: the coverage capability's crm.coverage_policy
-- (max_interval; for basis purchase_cycle too, as the fallback it documents),
-- else the expert defaults of docs/coverage.md (A every month, B every 3, C every 6).
CREATE FUNCTION crm._dashboard_coverage_interval(class text) RETURNS interval
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce((SELECT p.max_interval FROM crm.coverage_policy p WHERE p.class = _dashboard_coverage_interval.class),
                CASE class WHEN 'A' THEN interval '1 month' WHEN 'B' THEN interval '3 months' ELSE interval '6 months' END)
$$;
COMMENT ON FUNCTION crm._dashboard_coverage_interval(text) IS
'How often a customer of an ABC class must be contacted: crm.coverage_policy.max_interval, default A every month, B every 3 months, C every 6 months.';

CREATE FUNCTION crm.dashboard_coverage(as_of timestamptz)
RETURNS TABLE (customer_id text, manager_id text, channel text, revenue_12m numeric, abc_class text,
               last_contact timestamptz, next_due timestamptz, covered boolean)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real moment, e.g. ''2026-01-01''.';
    END IF;
    IF crm._rollups_usable() THEN
        -- the sources checked as the full path does (same errors)
        PERFORM crm._source_sql('customers'), crm._source_sql('orders'), crm._source_sql('interactions');
        RETURN QUERY SELECT * FROM crm._fast_coverage(as_of);
        RETURN;
    END IF;
    -- ABC by the revenue of the 12 months before as_of, crm.abc_class
    -- semantics (share held by strictly larger values < 0.80 -> A, < 0.95 -> B;
    -- the tests check it against crm.abc_class), computed here with one sort
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
c AS (SELECT customer_id, manager_id, channel, created_at FROM %1$s WHERE created_at OPERATOR(pg_catalog.<) $1),
r AS (SELECT customer_id, pg_catalog.sum(amount) AS rev FROM %2$s
       WHERE ordered_at OPERATOR(pg_catalog.>=) ($1 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval) AND ordered_at OPERATOR(pg_catalog.<) $1 GROUP BY customer_id),
x AS (SELECT customer_id, pg_catalog.max(occurred_at) AS last_at FROM %3$s
       WHERE NOT automated AND occurred_at OPERATOR(pg_catalog.<) $1 AND customer_id IS NOT NULL GROUP BY customer_id),
-- A / B thresholds: the smallest revenue whose running sum of the larger
-- ones (sorted descending) is < 0.80 / < 0.95 of the total (abc_class semantics)
rs AS (SELECT rev, pg_catalog.sum(rev) OVER (ORDER BY rev DESC ROWS UNBOUNDED PRECEDING) OPERATOR(pg_catalog.-) rev AS before,
              pg_catalog.sum(rev) OVER () AS total
         FROM r WHERE rev OPERATOR(pg_catalog.>) 0),
th AS MATERIALIZED (SELECT pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.80 OPERATOR(pg_catalog.*) total)) AS a, pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.95 OPERATOR(pg_catalog.*) total)) AS b
         FROM rs),
cl AS (
    SELECT c.customer_id, c.manager_id, c.channel, c.created_at, r.rev,
           CASE WHEN r.rev OPERATOR(pg_catalog.>=) th.a THEN 'A' WHEN r.rev OPERATOR(pg_catalog.>=) th.b THEN 'B' ELSE 'C' END AS cls
      FROM c CROSS JOIN th LEFT JOIN r ON r.customer_id OPERATOR(pg_catalog.=) c.customer_id),
pol AS MATERIALIZED (SELECT k.cls, crm._dashboard_coverage_interval(k.cls) AS iv FROM (VALUES ('A'), ('B'), ('C')) AS k(cls))
SELECT cl.customer_id::pg_catalog.text, cl.manager_id::pg_catalog.text, cl.channel::pg_catalog.text, coalesce(cl.rev, 0), cl.cls,
       -- next due as crm.coverage: last real contact, or (never contacted)
       -- customer since, plus the class interval; covered = not yet past it
       x.last_at, coalesce(x.last_at, cl.created_at) OPERATOR(pg_catalog.+) pol.iv,
       coalesce((coalesce(x.last_at, cl.created_at) OPERATOR(pg_catalog.+) pol.iv) OPERATOR(pg_catalog.>=) $1, false)
  FROM cl JOIN pol ON pol.cls OPERATOR(pg_catalog.=) cl.cls LEFT JOIN x ON x.customer_id OPERATOR(pg_catalog.=) cl.customer_id
$sql$, crm._source_sql('customers'), crm._source_sql('orders'), crm._source_sql('interactions'))
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm.dashboard_coverage(timestamptz) IS
'Per customer as of a moment: ABC class by the revenue of the 12 months before, last real (non-automated) contact, next due contact (the last contact, or the customer''s created_at when never contacted, plus the class interval, as crm.coverage) and whether the customer is covered (next due not before as_of).';

-- ---------------------------------------------------------------------------
-- Channel, manager and pipeline reports
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm.dashboard_channels(period_from date, period_to date)
RETURNS TABLE (channel text, leads bigint, new_buyers bigint, conversion_pct numeric, revenue numeric,
               gross_profit numeric, spend numeric, cac numeric, roi_pct numeric, ltv numeric, ltv_cac numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_channels(period_from, period_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
cu AS MATERIALIZED (SELECT customer_id, channel FROM %1$s),
od AS (SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at OPERATOR(pg_catalog.<) $2),
b AS MATERIALIZED (
    SELECT customer_id, pg_catalog.min(ordered_at) AS first_at, pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) AS gp_to_date,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS rev, pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS gp
      FROM od GROUP BY customer_id),
bc AS (
    SELECT coalesce(cu.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit,
           pg_catalog.avg(b.gp_to_date) AS ltv
      FROM b LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) b.customer_id GROUP BY 1),
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.<) $2) AS converted
      FROM %3$s LEFT JOIN b ON b.customer_id OPERATOR(pg_catalog.=) l.customer_id
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %4$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
ch AS (SELECT channel FROM bc UNION SELECT channel FROM ld UNION SELECT channel FROM sp)
SELECT ch.channel, coalesce(ld.leads, 0), coalesce(bc.new_buyers, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) ld.converted) OPERATOR(pg_catalog./) CASE WHEN ld.leads OPERATOR(pg_catalog.<>) 0 THEN ld.leads END, 2),
       coalesce(bc.revenue, 0), coalesce(bc.gross_profit, 0), coalesce(sp.spend, 0),
       pg_catalog.round(sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(bc.gross_profit, 0) OPERATOR(pg_catalog.-) sp.spend)) OPERATOR(pg_catalog./) CASE WHEN sp.spend OPERATOR(pg_catalog.<>) 0 THEN sp.spend END, 2),
       pg_catalog.round(bc.ltv, 2),
       pg_catalog.round(bc.ltv OPERATOR(pg_catalog./) CASE WHEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) OPERATOR(pg_catalog.<>) 0 THEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) END, 2)
  FROM ch LEFT JOIN bc ON bc.channel OPERATOR(pg_catalog.=) ch.channel LEFT JOIN ld ON ld.channel OPERATOR(pg_catalog.=) ch.channel
          LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) ch.channel
 ORDER BY ch.channel
$sql$, crm._source_sql('customers'), crm._source_sql('orders'),
       crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_channels(date, date) IS
'Per acquisition channel for the period [from, to]: leads, new buyers, lead-to-buyer conversion, revenue, gross profit, spend, CAC, ROI, LTV (gross profit per buyer to date) and LTV/CAC.';

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
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_managers', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_managers');
    -- the full query, built first on both paths: it checks the sources (the same errors either way)
    q := pg_catalog.format($sql$
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
       crm._source_sql('interactions', 'y'));
    -- from the rollups when they may stand in (crm._rollups_usable, docs/rollups.md)
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_managers(period_from, period_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_managers(date, date) IS
'Per manager for the period [from, to]: leads, answered and unanswered leads (as of the period end), median first-response time, deals won and lost, win rate, revenue of the manager''s customers, contact coverage of those customers at the period end, real contacts in the period (calls, meetings, e-mails, all kinds), average won deal and sales cycle in days.';

CREATE FUNCTION crm.dashboard_pipeline(period_from date, period_to date)
RETURNS TABLE (stage text, stage_order int, outcome text, probability numeric, entered bigint,
               open_deals bigint, open_value numeric, weighted_value numeric, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    nstages int;
    entered_sums text;
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_pipeline', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_pipeline');
    SELECT pg_catalog.count(*) INTO nstages FROM crm.pipeline_stages;
    IF nstages OPERATOR(pg_catalog.>) 62 THEN
        RAISE EXCEPTION 'at most 62 pipeline stages, crm.pipeline_stages has %', nstages
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- per deal, the stages entered in the period as a bit mask; then one sum per stage
    SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.sum((entered_mask OPERATOR(pg_catalog.>>) %s) OPERATOR(pg_catalog.&) 1::pg_catalog.int8)', k), ', ' ORDER BY k)
      INTO entered_sums FROM pg_catalog.generate_series(1, nstages) AS k;
    -- the full query, built first on both paths: it checks the source (the same errors either way)
    q := pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome, pg_catalog.row_number() OVER (ORDER BY stage_order)::int AS rk
         FROM crm.pipeline_stages),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS stage_order, %3$s AS outcome, %4$s AS rk
      FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.max(amount) AS amount, pg_catalog.max(changed_at) AS last_at,
           pg_catalog.max(stage_order) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'open') AS open_stage,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.bit_or(1::pg_catalog.int8 OPERATOR(pg_catalog.<<) rk) FILTER (WHERE changed_at OPERATOR(pg_catalog.>=) $1) AS entered_mask,
           pg_catalog.count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
en AS (SELECT ARRAY[%5$s] AS entered FROM dl WHERE entered_mask IS NOT NULL),
op AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt,
           -- stale deals (idle beyond the stage norm) are left out of the weighted value
           pg_catalog.sum(amount) FILTER (WHERE NOT coalesce(last_at OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) %6$s), false)) AS live_amt
      FROM dl WHERE won_at IS NULL AND lost_at IS NULL AND open_stage IS NOT NULL GROUP BY 1),
lo AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt
      FROM dl WHERE lost_at OPERATOR(pg_catalog.>=) $1 AND lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity') GROUP BY 1)
SELECT st.stage, st.stage_order, st.outcome, st.probability, coalesce((SELECT en.entered[st.rk] FROM en), 0)::bigint,
       coalesce(op.n, 0), coalesce(op.amt, 0), pg_catalog.round(coalesce(op.live_amt, 0) OPERATOR(pg_catalog.*) st.probability, 2),
       coalesce(lo.n, 0), coalesce(lo.amt, 0)
  FROM st LEFT JOIN op ON op.stage_order OPERATOR(pg_catalog.=) st.stage_order
          LEFT JOIN lo ON lo.stage_order OPERATOR(pg_catalog.=) st.stage_order
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY st.stage_order
$sql$, crm._source_sql('stage_events'), crm._stage_case('order', 'stage'), crm._stage_case('outcome', 'stage'),
       crm._stage_case('rank', 'stage'), entered_sums, crm._stage_norm_case('open_stage'));
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_pipeline(b.cur_from, b.cur_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_pipeline(date, date) IS
'Per pipeline stage for the period [from, to]: deals that entered it in the period, open deals sitting in it at the period end with their value and probability-weighted value (stale deals, idle beyond the stage norm max_days, left out), and deals lost in the period whose most advanced open stage it was, with their value.';

-- ---------------------------------------------------------------------------
-- Funnel, retention, RFM, ABC-XYZ and lead SLA for the BI views
-- ---------------------------------------------------------------------------

-- Deals whose first event falls in the period, through the open and won
-- stages in stage_order: a deal reached step k if it entered stage k or a
-- later one (as of the period end).
-- Deliberately not crm.funnel_report: that is a window_funnel chain (a deal
-- that skips a stage stops at the stage before the gap), while CRM stage logs
-- often skip stages; the owner's funnel counts the most advanced stage reached.
CREATE FUNCTION crm.dashboard_funnel(period_from date, period_to date)
RETURNS TABLE (step_no int, stage text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
               dropped bigint, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.dashboard_funnel', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_funnel');
    -- the full query, built first on both paths: it checks the source (the same errors either way)
    q := pg_catalog.format($sql$
WITH
steps AS (
    SELECT pg_catalog.row_number() OVER (ORDER BY stage_order)::int AS step_no, stage
      FROM crm.pipeline_stages WHERE outcome OPERATOR(pg_catalog.=) 'open' OR outcome OPERATOR(pg_catalog.=) 'won'),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS step, %3$s AS outcome FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.min(changed_at) AS started_at, pg_catalog.max(amount) AS amount, pg_catalog.max(step) AS level,
           pg_catalog.bool_or(outcome OPERATOR(pg_catalog.=) 'lost') AS lost, pg_catalog.count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
lv AS (
    SELECT level, pg_catalog.count(*) AS n, pg_catalog.count(*) FILTER (WHERE lost) AS lost_deals,
           coalesce(pg_catalog.sum(amount) FILTER (WHERE lost), 0) AS lost_value
      FROM dl WHERE started_at OPERATOR(pg_catalog.>=) $1 AND level IS NOT NULL GROUP BY level),
f AS (
    SELECT steps.step_no, steps.stage,
           coalesce(pg_catalog.sum(lv.n) OVER (ORDER BY steps.step_no DESC), 0)::bigint AS entered,
           coalesce(lv.lost_deals, 0) AS lost_deals, coalesce(lv.lost_value, 0) AS lost_value
      FROM steps LEFT JOIN lv ON lv.level OPERATOR(pg_catalog.=) steps.step_no)
SELECT f.step_no, f.stage, f.entered,
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) f.entered) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.first_value(f.entered) OVER w OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.first_value(f.entered) OVER w END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) f.entered) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.lag(f.entered) OVER w OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.lag(f.entered) OVER w END, 2),
       f.entered OPERATOR(pg_catalog.-) pg_catalog.lead(f.entered, 1, f.entered) OVER w,
       f.lost_deals, f.lost_value
  FROM f
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
WINDOW w AS (ORDER BY f.step_no)
 ORDER BY f.step_no
$sql$, crm._source_sql('stage_events'), crm._stage_case('step', 'stage'), crm._stage_case('outcome', 'stage'));
    IF crm._rollups_usable() THEN
        RETURN QUERY SELECT * FROM crm._fast_funnel(b.cur_from, b.cur_to);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE q USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_funnel(date, date) IS
'Sales funnel of the deals that started in the period [from, to]: per open or won stage, deals that reached it (as of the period end), share of the first step and of the previous one, deals dropped before the next step, and the deals lost there with their value.';

-- Monthly cohorts of buyers (month of the first order) for the 12 months up
-- to as_of, through the retention capability's crm.cohort_retention over the
-- registered orders placed up to the end of as_of; period_no 0..11.
CREATE FUNCTION crm.dashboard_retention(as_of date)
RETURNS TABLE (cohort date, period_no int, cohort_size bigint, active bigint, retention_pct numeric,
               revenue numeric, cumulative_ltv numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    RETURN QUERY
    SELECT x.cohort, x.period_no, x.cohort_size, x.active, pg_catalog.round(100 OPERATOR(pg_catalog.*) x.retention_rate, 2), x.revenue, x.cumulative_ltv
      FROM crm.cohort_retention(pg_catalog.format('SELECT customer_id, ordered_at, amount FROM %s WHERE ordered_at OPERATOR(pg_catalog.<) %L::pg_catalog.timestamptz',
                                                  crm._source_sql('orders'), (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz),
                                'month', 12) AS x
     WHERE x.cohort OPERATOR(pg_catalog.>) (pg_catalog.date_trunc('month', as_of) OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval)::pg_catalog.date
     ORDER BY x.cohort, x.period_no;
END
$$;
COMMENT ON FUNCTION crm.dashboard_retention(date) IS
'Monthly buyer cohorts (month of the first order) of the 12 months up to as_of, through crm.cohort_retention: per cohort and month since, cohort size, active buyers, retention %, revenue and cumulative revenue per cohort member (cohort LTV curve).';

-- RFM as of the end of a day, through the classes capability's
-- crm.rfm_report over the registered orders (R, F, M = crm.quantile_score,
-- segment = crm.rfm_segment).
CREATE FUNCTION crm.dashboard_rfm(as_of date)
RETURNS TABLE (customer_id text, recency_days int, frequency bigint, monetary numeric,
               r int, f int, m int, segment text)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    q text;
    e timestamptz;
    k integer;
    sc boolean;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    q := 'SELECT customer_id, ordered_at, amount FROM ' OPERATOR(pg_catalog.||) crm._source_sql('orders');
    e := (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval;
    -- from the rollups when they may stand in (crm._rollups_usable, docs/rollups.md);
    -- the orders query checked first as crm.rfm_report checks it (the same errors)
    IF crm._rollups_usable() THEN
        PERFORM crm._check_inner_query('rfm_report', q, ARRAY['customer any', 'ordered_at timestamptz', 'amount numeric']);
        -- a kept end of the per-customer table (the dashboard period's): its figures, and its
        -- scores when kept, as they are
        SELECT x.slot, EXISTS (SELECT 1 FROM crm.rollup_rfm_scored y
                                WHERE y.slot OPERATOR(pg_catalog.=) x.slot AND y.end_at OPERATOR(pg_catalog.=) x.end_at)
          INTO k, sc
          FROM crm.rollup_customer_state_ends x
         WHERE x.end_at OPERATOR(pg_catalog.=) (e OPERATOR(pg_catalog.+) '1 microsecond'::pg_catalog.interval);
        RETURN QUERY EXECUTE crm._fast_rfm_sql(k, sc) USING e;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
      FROM crm.rfm_report(q, e) AS x
     ORDER BY x.customer;
END
$$;
COMMENT ON FUNCTION crm.dashboard_rfm(date) IS
'RFM of every buyer as of the end of a day, from the orders source, through crm.rfm_report: days since the last order, orders, revenue, quantile scores 1..5 and the segment.';

-- ABC-XYZ per product over the 12 calendar months up to as_of, through the
-- classes capability's crm.abc_xyz_report over the registered orders: ABC
-- by revenue (crm.abc_class), XYZ by the coefficient of variation of the
-- monthly revenue with empty months as zero (crm.demand_cv, crm.xyz_class).
CREATE FUNCTION crm.dashboard_abc_xyz(as_of date)
RETURNS TABLE (product_id text, revenue numeric, revenue_share_pct numeric, abc_class text,
               cv numeric, xyz_class text, abc_xyz text)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    RETURN QUERY
    SELECT x.item, x.revenue, pg_catalog.round(100 OPERATOR(pg_catalog.*) x.share, 2), x.abc, pg_catalog.round(x.cv::numeric, 4), x.xyz, x.abc_xyz
      FROM crm.abc_xyz_report('SELECT product_id, ordered_at, amount, amount FROM ' OPERATOR(pg_catalog.||) crm._source_sql('orders'),
                              (pg_catalog.date_trunc('month', as_of) OPERATOR(pg_catalog.-) '11 months'::pg_catalog.interval)::pg_catalog.timestamptz,
                              (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz, 'month') AS x
     ORDER BY x.revenue DESC, x.item;
END
$$;
COMMENT ON FUNCTION crm.dashboard_abc_xyz(date) IS
'ABC class (revenue of the 12 calendar months up to as_of) and XYZ class (coefficient of variation of monthly revenue, empty months as zero) of every product, from the orders source, through crm.abc_xyz_report.';

-- Lead first-response SLA per channel for the period (as of its end).
-- Same first-response definition as the coverage capability's
-- crm.lead_first_response (first non-automated outbound interaction at or
-- after creation), over the registered sources and as of the period end;
-- crm.lead_sla adds per-manager rows and working-hours response times.
CREATE FUNCTION crm.dashboard_lead_sla(period_from date, period_to date, sla interval DEFAULT NULL)
RETURNS TABLE (channel text, leads bigint, answered bigint, within_sla bigint, never_answered bigint,
               within_sla_pct numeric, median_response_minutes numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_lead_sla', period_from, period_to);
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
ld AS MATERIALIZED (SELECT lead_id, created_at, coalesce(channel, '(unknown)') AS channel FROM %1$s
                     WHERE created_at OPERATOR(pg_catalog.>=) $1 AND created_at OPERATOR(pg_catalog.<) $2),
fc AS (SELECT x.lead_id, pg_catalog.min(x.occurred_at) AS first_contact
         FROM %2$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) x.lead_id
        WHERE NOT x.automated AND x.direction OPERATOR(pg_catalog.=) 'outbound' AND x.occurred_at OPERATOR(pg_catalog.>=) $1 AND x.occurred_at OPERATOR(pg_catalog.<) $2
          AND x.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
        GROUP BY x.lead_id),
j AS (SELECT ld.channel, fc.first_contact OPERATOR(pg_catalog.-) ld.created_at AS resp FROM ld LEFT JOIN fc ON fc.lead_id OPERATOR(pg_catalog.=) ld.lead_id)
SELECT channel, pg_catalog.count(*), pg_catalog.count(resp), pg_catalog.count(*) FILTER (WHERE resp OPERATOR(pg_catalog.<=) $3), pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(resp),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) pg_catalog.count(*) FILTER (WHERE resp OPERATOR(pg_catalog.<=) $3)) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.count(*) END, 2),
       pg_catalog.round((pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resp) OPERATOR(pg_catalog./) 60))::pg_catalog.numeric, 2)
  FROM j GROUP BY GROUPING SETS ((channel), ())
 ORDER BY GROUPING(channel), channel
$sql$, crm._source_sql('leads'), crm._source_sql('interactions', 'x'))
    USING b.cur_from, b.cur_to, coalesce(sla, crm._lead_sla());
END
$$;
COMMENT ON FUNCTION crm.dashboard_lead_sla(date, date, interval) IS
'Lead first-response SLA per channel (and a NULL-channel total row) for the period [from, to]: leads, answered, answered within the SLA (default crm.dashboard_settings.lead_sla), never answered, and the median time to the first real contact.';

-- ---------------------------------------------------------------------------
-- BI views: long format, plain types, over crm.dashboard_period()
--
-- Conventions (docs/dashboard.md, "Metabase"): every column has a COMMENT
-- (Metabase shows it as the field description); a text id (customer_id,
-- manager_id, product_id) has a numeric twin <id>_num = crm.id_number(id)
-- for numeric sorting; v_owner_dashboard has sort_order, the dashboard's row
-- order.
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm.id_number(id text) RETURNS numeric
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_id_number';
COMMENT ON FUNCTION crm.id_number(text) IS
'An id as a number when it is written as one (optional minus, digits, optional decimals), else NULL: the numeric sort key beside the text ids of the crm.v_* views (''10'' sorts after ''9'').';

CREATE VIEW crm.v_owner_dashboard WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, d.section, d.metric, d.value, d.previous_value, d.change_pct, d.unit,
       d.ordinality AS sort_order
  FROM crm.dashboard_period() AS p, LATERAL crm.owner_dashboard(p.period_from, p.period_to) WITH ORDINALITY AS d;
COMMENT ON VIEW crm.v_owner_dashboard IS
'crm.owner_dashboard for the dashboard period (crm.set_dashboard_period): one row per metric with the previous period''s value.';
COMMENT ON COLUMN crm.v_owner_dashboard.period_from IS 'First day of the dashboard period (crm.dashboard_period()).';
COMMENT ON COLUMN crm.v_owner_dashboard.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_owner_dashboard.section IS 'Dashboard section: acquisition, sales, pipeline or money_lost.';
COMMENT ON COLUMN crm.v_owner_dashboard.metric IS 'Metric name, as in docs/metrics.md (revenue, new_buyers, cac, win_rate, ...).';
COMMENT ON COLUMN crm.v_owner_dashboard.value IS 'The metric for the period, as of its end; its unit is in the unit column.';
COMMENT ON COLUMN crm.v_owner_dashboard.previous_value IS 'The metric for the previous period of equal length, as of its end.';
COMMENT ON COLUMN crm.v_owner_dashboard.change_pct IS 'Change against the previous period, % of |previous_value|; NULL when the previous value is 0 or missing.';
COMMENT ON COLUMN crm.v_owner_dashboard.unit IS 'Unit of value: count, money, pct, days, money_per_day.';
COMMENT ON COLUMN crm.v_owner_dashboard.sort_order IS 'Position of the row in crm.owner_dashboard (1, 2, ...): sort by it to get the dashboard''s order.';

CREATE VIEW crm.v_funnel WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, f.step_no, f.stage, f.entered, f.pct_of_first, f.pct_of_prev,
       f.dropped, f.lost_deals, f.lost_value
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_funnel(p.period_from, p.period_to) AS f;
COMMENT ON VIEW crm.v_funnel IS
'Sales funnel of the deals that started in the dashboard period: one row per step (Metabase: funnel chart of entered by stage).';
COMMENT ON COLUMN crm.v_funnel.period_from IS 'First day of the dashboard period: the funnel follows the deals whose first event falls in the period.';
COMMENT ON COLUMN crm.v_funnel.period_to IS 'Last day of the dashboard period, inclusive; stages reached are counted as of its end.';
COMMENT ON COLUMN crm.v_funnel.step_no IS 'Step number, 1 = first open stage (crm.pipeline_stages order, lost stages left out): sort by it.';
COMMENT ON COLUMN crm.v_funnel.stage IS 'Stage name of the step.';
COMMENT ON COLUMN crm.v_funnel.entered IS 'Deals that reached this step or a later one before the period end.';
COMMENT ON COLUMN crm.v_funnel.pct_of_first IS 'entered as % of the deals at step 1.';
COMMENT ON COLUMN crm.v_funnel.pct_of_prev IS 'entered as % of the deals at the previous step; NULL at step 1.';
COMMENT ON COLUMN crm.v_funnel.dropped IS 'Deals that reached this step but not the next: entered(k) - entered(k+1); 0 at the last step.';
COMMENT ON COLUMN crm.v_funnel.lost_deals IS 'Deals that stopped at this step and are lost.';
COMMENT ON COLUMN crm.v_funnel.lost_value IS 'Amount of the deals lost at this step (money).';

CREATE VIEW crm.v_pipeline WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, s.stage, s.stage_order, s.outcome, s.probability, s.entered,
       s.open_deals, s.open_value, s.weighted_value, s.lost_deals, s.lost_value
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_pipeline(p.period_from, p.period_to) AS s;
COMMENT ON VIEW crm.v_pipeline IS
'Pipeline per stage for the dashboard period: entered, open deals and (weighted) value at the period end, lost deals and value.';
COMMENT ON COLUMN crm.v_pipeline.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_pipeline.period_to IS 'Last day of the dashboard period, inclusive; open deals are counted at its end.';
COMMENT ON COLUMN crm.v_pipeline.stage IS 'Stage name (crm.pipeline_stages).';
COMMENT ON COLUMN crm.v_pipeline.stage_order IS 'Order of the stage in the pipeline (crm.pipeline_stages.stage_order): sort by it.';
COMMENT ON COLUMN crm.v_pipeline.outcome IS 'Outcome of the stage: open, won or lost.';
COMMENT ON COLUMN crm.v_pipeline.probability IS 'Probability (0..1) that a deal in this stage is won, from crm.pipeline_stages.';
COMMENT ON COLUMN crm.v_pipeline.entered IS 'Deals that entered the stage in the period.';
COMMENT ON COLUMN crm.v_pipeline.open_deals IS 'Open deals whose most advanced stage is this one at the period end (stale deals included).';
COMMENT ON COLUMN crm.v_pipeline.open_value IS 'Amount of those open deals (money).';
COMMENT ON COLUMN crm.v_pipeline.weighted_value IS 'Probability-weighted amount of the open deals that are not stale (idle beyond the stage norm max_days); the stages add up to weighted_pipeline.';
COMMENT ON COLUMN crm.v_pipeline.lost_deals IS 'Deals lost in the period whose most advanced open stage was this one.';
COMMENT ON COLUMN crm.v_pipeline.lost_value IS 'Amount of those lost deals (money).';

CREATE VIEW crm.v_retention WITH (security_invoker = true) AS
SELECT r.cohort, r.period_no, r.cohort_size, r.active, r.retention_pct, r.revenue, r.cumulative_ltv
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_retention(p.period_to) AS r;
COMMENT ON VIEW crm.v_retention IS
'Monthly buyer cohorts of the 12 months up to the dashboard period end, one row per cohort and month since (Metabase: pivot table cohort x period_no, conditional formatting = heat map).';
COMMENT ON COLUMN crm.v_retention.cohort IS 'Cohort: first day of the month of the buyers'' first order (the 12 months up to the dashboard period end).';
COMMENT ON COLUMN crm.v_retention.period_no IS 'Months since the cohort month (0 = the cohort month itself).';
COMMENT ON COLUMN crm.v_retention.cohort_size IS 'Buyers whose first order fell in the cohort month.';
COMMENT ON COLUMN crm.v_retention.active IS 'Cohort buyers who ordered in month period_no.';
COMMENT ON COLUMN crm.v_retention.retention_pct IS 'active as % of cohort_size.';
COMMENT ON COLUMN crm.v_retention.revenue IS 'Revenue of the cohort''s orders in month period_no (money).';
COMMENT ON COLUMN crm.v_retention.cumulative_ltv IS 'Revenue of the cohort up to and including month period_no, per cohort buyer: the cohort LTV curve (money).';

CREATE VIEW crm.v_rfm WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, r.customer_id, r.recency_days, r.frequency, r.monetary, r.r, r.f, r.m, r.segment,
       crm.id_number(r.customer_id) AS customer_id_num
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_rfm(p.period_to) AS r;
COMMENT ON VIEW crm.v_rfm IS
'RFM scores and segment of every buyer as of the dashboard period end (Metabase: bar chart of count by segment).';
COMMENT ON COLUMN crm.v_rfm.as_of IS 'The day (end of) the scores are computed at: the dashboard period end.';
COMMENT ON COLUMN crm.v_rfm.customer_id IS 'Customer id as text (any source type); sort by customer_id_num for numeric order.';
COMMENT ON COLUMN crm.v_rfm.recency_days IS 'Whole days from the customer''s last order to the end of as_of.';
COMMENT ON COLUMN crm.v_rfm.frequency IS 'Orders of the customer up to as_of.';
COMMENT ON COLUMN crm.v_rfm.monetary IS 'Revenue of the customer up to as_of (money).';
COMMENT ON COLUMN crm.v_rfm.r IS 'Recency score 1..5 (5 = most recent buyers), crm.quantile_score.';
COMMENT ON COLUMN crm.v_rfm.f IS 'Frequency score 1..5 (5 = most orders).';
COMMENT ON COLUMN crm.v_rfm.m IS 'Monetary score 1..5 (5 = most revenue).';
COMMENT ON COLUMN crm.v_rfm.segment IS 'RFM segment (crm.rfm_segment: Champions, Loyal Customers, At Risk, ...).';
COMMENT ON COLUMN crm.v_rfm.customer_id_num IS 'customer_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';

CREATE VIEW crm.v_abc_xyz WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, a.product_id, a.revenue, a.revenue_share_pct, a.abc_class, a.cv, a.xyz_class, a.abc_xyz,
       crm.id_number(a.product_id) AS product_id_num
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_abc_xyz(p.period_to) AS a;
COMMENT ON VIEW crm.v_abc_xyz IS
'ABC-XYZ class of every product as of the dashboard period end (Metabase: pivot abc_class x xyz_class, count or sum of revenue).';
COMMENT ON COLUMN crm.v_abc_xyz.as_of IS 'The dashboard period end: classes cover the 12 calendar months up to it.';
COMMENT ON COLUMN crm.v_abc_xyz.product_id IS 'Product id as text (any source type); sort by product_id_num for numeric order.';
COMMENT ON COLUMN crm.v_abc_xyz.revenue IS 'Revenue of the product over the 12 months (money).';
COMMENT ON COLUMN crm.v_abc_xyz.revenue_share_pct IS 'The product''s share of the revenue of all products, %.';
COMMENT ON COLUMN crm.v_abc_xyz.abc_class IS 'ABC class by revenue: A (top 80 % of revenue), B (next 15 %), C (the rest).';
COMMENT ON COLUMN crm.v_abc_xyz.cv IS 'Coefficient of variation of the monthly revenue, months without sales as zero.';
COMMENT ON COLUMN crm.v_abc_xyz.xyz_class IS 'XYZ class by cv: X (< 0.10, steady), Y (< 0.25), Z (erratic).';
COMMENT ON COLUMN crm.v_abc_xyz.abc_xyz IS 'abc_class and xyz_class together (AX .. CZ).';
COMMENT ON COLUMN crm.v_abc_xyz.product_id_num IS 'product_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';

CREATE VIEW crm.v_channels WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, c.channel, v.metric, v.value, v.unit
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_channels(p.period_from, p.period_to) AS c,
  LATERAL (VALUES ('leads', c.leads::numeric, 'count'), ('new_buyers', c.new_buyers::numeric, 'count'),
                  ('conversion', c.conversion_pct, 'pct'), ('revenue', c.revenue, 'money'),
                  ('gross_profit', c.gross_profit, 'money'), ('spend', c.spend, 'money'),
                  ('cac', c.cac, 'money'), ('roi', c.roi_pct, 'pct'), ('ltv', c.ltv, 'money'),
                  ('ltv_cac', c.ltv_cac, 'ratio')) AS v(metric, value, unit);
COMMENT ON VIEW crm.v_channels IS
'Per channel and metric for the dashboard period: leads, new buyers, conversion, revenue, gross profit, spend, CAC, ROI, LTV, LTV/CAC (Metabase: bar chart of value by channel, filtered on metric).';
COMMENT ON COLUMN crm.v_channels.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_channels.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_channels.channel IS 'Acquisition channel (of the lead or customer).';
COMMENT ON COLUMN crm.v_channels.metric IS 'Metric: leads, new_buyers, conversion, revenue, gross_profit, spend, cac, roi, ltv, ltv_cac (docs/metrics.md); filter on one.';
COMMENT ON COLUMN crm.v_channels.value IS 'The metric for the channel and period; NULL when it has no meaning (no spend, no buyers).';
COMMENT ON COLUMN crm.v_channels.unit IS 'Unit of value: count, pct, money, ratio.';

CREATE VIEW crm.v_managers WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, m.manager_id, v.metric, v.value, v.unit,
       crm.id_number(m.manager_id) AS manager_id_num
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
COMMENT ON COLUMN crm.v_managers.period_from IS 'First day of the dashboard period.';
COMMENT ON COLUMN crm.v_managers.period_to IS 'Last day of the dashboard period, inclusive.';
COMMENT ON COLUMN crm.v_managers.manager_id IS 'Manager id as text (any source type; NULL = no manager); sort by manager_id_num for numeric order.';
COMMENT ON COLUMN crm.v_managers.metric IS 'Metric: leads, answered_leads, unanswered_leads, median_response, deals_won, deals_lost, win_rate, revenue, customers, covered_customers, coverage, calls, meetings, emails, contacts, average_won_deal, sales_cycle (docs/metrics.md); filter on one.';
COMMENT ON COLUMN crm.v_managers.value IS 'The metric for the manager and period; NULL when it has no meaning.';
COMMENT ON COLUMN crm.v_managers.unit IS 'Unit of value: count, minutes, pct, money, days.';
COMMENT ON COLUMN crm.v_managers.manager_id_num IS 'manager_id as a number when it is one (crm.id_number), else NULL: sort by it so that 10 comes after 9.';

CREATE VIEW crm.v_coverage WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, c.abc_class, count(*) AS customers,
       count(*) FILTER (WHERE c.covered) AS covered, count(*) FILTER (WHERE NOT c.covered) AS overdue,
       round(100.0 * count(*) FILTER (WHERE c.covered) / count(*), 2) AS coverage_pct
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_coverage((p.period_to + 1)::timestamptz) AS c
 GROUP BY p.period_to, c.abc_class
 ORDER BY c.abc_class;
COMMENT ON VIEW crm.v_coverage IS
'Contact coverage per ABC class at the dashboard period end: customers, covered, overdue, coverage % (Metabase: bar chart of coverage_pct by abc_class).';
COMMENT ON COLUMN crm.v_coverage.as_of IS 'The dashboard period end: coverage is judged at the end of this day.';
COMMENT ON COLUMN crm.v_coverage.abc_class IS 'ABC class of the customers by their revenue of the 12 months before (A, B, C).';
COMMENT ON COLUMN crm.v_coverage.customers IS 'Customers of the class created before the end of as_of.';
COMMENT ON COLUMN crm.v_coverage.covered IS 'Customers whose next due contact (class interval after the last real contact) is not before the end of as_of.';
COMMENT ON COLUMN crm.v_coverage.overdue IS 'Customers whose next due contact has passed: customers - covered.';
COMMENT ON COLUMN crm.v_coverage.coverage_pct IS 'covered as % of customers.';

CREATE VIEW crm.v_lead_sla WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, coalesce(s.channel, 'all') AS channel, s.leads, s.answered, s.within_sla,
       s.never_answered, s.within_sla_pct, s.median_response_minutes
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_lead_sla(p.period_from, p.period_to) AS s;
COMMENT ON VIEW crm.v_lead_sla IS
'Lead first-response SLA per channel (and "all") for the dashboard period (Metabase: bar chart of within_sla_pct by channel; number card for the "all" row).';
COMMENT ON COLUMN crm.v_lead_sla.period_from IS 'First day of the dashboard period: leads created from then.';
COMMENT ON COLUMN crm.v_lead_sla.period_to IS 'Last day of the dashboard period, inclusive; responses are counted as of its end.';
COMMENT ON COLUMN crm.v_lead_sla.channel IS 'Lead channel, or all for the total row.';
COMMENT ON COLUMN crm.v_lead_sla.leads IS 'Leads created in the period.';
COMMENT ON COLUMN crm.v_lead_sla.answered IS 'Leads with a first response (a non-automated outbound interaction) before the period end.';
COMMENT ON COLUMN crm.v_lead_sla.within_sla IS 'Leads answered within the SLA (crm.dashboard_settings.lead_sla, default 1 hour).';
COMMENT ON COLUMN crm.v_lead_sla.never_answered IS 'Leads without a response by the period end: leads - answered.';
COMMENT ON COLUMN crm.v_lead_sla.within_sla_pct IS 'within_sla as % of leads; NULL without leads.';
COMMENT ON COLUMN crm.v_lead_sla.median_response_minutes IS 'Median minutes from lead creation to the first response, over the answered leads.';

-- the views read everything with the caller's rights (security_invoker), so
-- reading them grants nothing the caller could not already read
GRANT SELECT ON crm.v_owner_dashboard, crm.v_funnel, crm.v_pipeline, crm.v_retention, crm.v_rfm,
                crm.v_abc_xyz, crm.v_channels, crm.v_managers, crm.v_coverage, crm.v_lead_sla TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Column comments of the other capabilities' views (BI convention: every
-- column of every view in schema crm has one; test/bi_conventions.sql)
-- ---------------------------------------------------------------------------

COMMENT ON COLUMN crm.coverage_status.customer_id IS 'Customer id (the key of the attached customers table, in its type).';
COMMENT ON COLUMN crm.coverage_status.class IS 'Customer class that sets the contact policy (e.g. A, B, C); NULL = unclassified.';
COMMENT ON COLUMN crm.coverage_status.manager_id IS 'The customer''s manager.';
COMMENT ON COLUMN crm.coverage_status.last_contact IS 'Time of the last real (non-automated) contact; NULL = never contacted.';
COMMENT ON COLUMN crm.coverage_status.contacts IS 'Real contacts counted for the customer.';
COMMENT ON COLUMN crm.coverage_status.contact_interval IS 'How often the customer must be contacted (the class policy, or the purchase cycle).';
COMMENT ON COLUMN crm.coverage_status.next_due IS 'When the next contact is due: last contact (or customer since) plus contact_interval.';
COMMENT ON COLUMN crm.coverage_status.status IS 'ok, due soon, overdue or unclassified at crm.coverage_as_of().';
COMMENT ON COLUMN crm.coverage_status.days_overdue IS 'Whole days past next_due at crm.coverage_as_of(); NULL when not overdue.';
COMMENT ON COLUMN crm.coverage_by_class.class IS 'Customer class; NULL = the unclassified customers.';
COMMENT ON COLUMN crm.coverage_by_class.customers IS 'Customers of the class.';
COMMENT ON COLUMN crm.coverage_by_class.covered IS 'Customers whose next contact is not yet due (ok or due soon).';
COMMENT ON COLUMN crm.coverage_by_class.due_soon IS 'Covered customers within the class''s due_soon window before next_due.';
COMMENT ON COLUMN crm.coverage_by_class.overdue IS 'Classified customers past next_due (or never contacted with no due date).';
COMMENT ON COLUMN crm.coverage_by_class.never_contacted IS 'Customers without any real contact.';
COMMENT ON COLUMN crm.coverage_by_class.coverage_pct IS 'covered as % of customers.';
COMMENT ON COLUMN crm.coverage_by_manager.manager_id IS 'Manager id; NULL = customers without a manager.';
COMMENT ON COLUMN crm.coverage_by_manager.customers IS 'Customers of the manager.';
COMMENT ON COLUMN crm.coverage_by_manager.covered IS 'Customers whose next contact is not yet due (ok or due soon).';
COMMENT ON COLUMN crm.coverage_by_manager.due_soon IS 'Covered customers within their class''s due_soon window before next_due.';
COMMENT ON COLUMN crm.coverage_by_manager.overdue IS 'Classified customers past next_due (or never contacted with no due date).';
COMMENT ON COLUMN crm.coverage_by_manager.never_contacted IS 'Customers without any real contact.';
COMMENT ON COLUMN crm.coverage_by_manager.coverage_pct IS 'covered as % of the manager''s classified customers.';
COMMENT ON COLUMN crm.coverage_overdue.customer_id IS 'Customer id (the key of the attached customers table, in its type).';
COMMENT ON COLUMN crm.coverage_overdue.class IS 'Customer class.';
COMMENT ON COLUMN crm.coverage_overdue.manager_id IS 'The customer''s manager: filter on it for one manager''s call list.';
COMMENT ON COLUMN crm.coverage_overdue.last_contact IS 'Time of the last real contact; NULL = never contacted.';
COMMENT ON COLUMN crm.coverage_overdue.next_due IS 'When the contact was due; NULL = never contacted and no customer-since date.';
COMMENT ON COLUMN crm.coverage_overdue.days_overdue IS 'Whole days past next_due at crm.coverage_as_of().';
COMMENT ON COLUMN crm.rfm_segment_map.r IS 'Recency score 1..5.';
COMMENT ON COLUMN crm.rfm_segment_map.f IS 'Frequency score 1..5.';
COMMENT ON COLUMN crm.rfm_segment_map.segment IS 'The segment of the R x F cell in force (crm.rfm_segment).';
COMMENT ON COLUMN crm.rfm_segment_map.overridden IS 'True when a row of crm.rfm_segment_overrides changed the cell from the default map.';
COMMENT ON COLUMN crm.status_stage_times.entity_table IS 'The attached table of the entity.';
COMMENT ON COLUMN crm.status_stage_times.entity_key IS 'Key of the entity, as text.';
COMMENT ON COLUMN crm.status_stage_times.status IS 'The status the entity stayed in.';
COMMENT ON COLUMN crm.status_stage_times.entered_at IS 'When the entity entered the status.';
COMMENT ON COLUMN crm.status_stage_times.left_at IS 'When it left the status; NULL while it is still in it.';
COMMENT ON COLUMN crm.status_stage_times.next_status IS 'The status it moved to; NULL while it is still in this one.';
COMMENT ON COLUMN crm.status_stage_times.time_in_stage IS 'left_at - entered_at; NULL while the entity is still in the status.';

-- ---------------------------------------------------------------------------
-- Static HTML report: the dashboard, the funnel, the cohort heat map and the
-- channel table, drawn as inline SVG (no scripts, no external files)
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm._html(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT replace(replace(replace(replace(coalesce(t, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;')
$$;
COMMENT ON FUNCTION crm._html(text) IS
'Escapes text for HTML (&, <, >, ").';

-- a number for humans: thousands separated, 2 decimals where it has them
CREATE FUNCTION crm._fmt(v numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN v IS NULL THEN '-'
            WHEN v = trunc(v) THEN trim(to_char(v, 'FM999G999G999G999G990'))
            ELSE trim(to_char(v, 'FM999G999G999G999G990D00')) END
$$;
COMMENT ON FUNCTION crm._fmt(numeric) IS
'Formats a number for the HTML report (thousands separators, at most 2 decimals).';

-- The page, drawn from the four reports' rows (as jsonb arrays) by a function
-- that pins search_path; crm.dashboard_html below runs the reports (they run
-- the registered sources with the caller's search_path) and hands it the rows.
CREATE FUNCTION crm._dashboard_html(period_from date, period_to date,
                                    kpi_rows jsonb, funnel_rows jsonb, heat_rows jsonb, chan_rows jsonb,
                                    sales_html text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kpi    text;
    funnel text;
    heat   text;
    chan   text;
BEGIN
    SELECT string_agg(pg_catalog.format(
               '<tr class="%s"><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n %s">%s</td><td>%s</td></tr>',
               d.section, crm._html(replace(d.metric, '_', ' ')), crm._fmt(d.value), crm._fmt(d.previous_value),
               -- green when the change is good news: lower is better for costs and losses
               CASE WHEN coalesce(d.change_pct, 0) = 0 THEN ''
                    WHEN (d.change_pct > 0) <> (d.section = 'money_lost' OR d.metric IN ('cac', 'sales_cycle', 'marketing_spend'))
                    THEN 'up' ELSE 'down' END,
               CASE WHEN d.change_pct IS NULL THEN '' ELSE crm._fmt(d.change_pct) || '%' END,
               crm._html(d.unit)), E'\n' ORDER BY d.ord)
      INTO kpi
      FROM jsonb_to_recordset(kpi_rows) AS d(metric text, value numeric, unit text, previous_value numeric,
                                             change_pct numeric, section text, ord bigint);

    -- funnel: one bar per step, width proportional to the deals that reached it
    WITH f AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(funnel_rows)
                                AS f(step_no int, stage text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
                                     dropped bigint, lost_deals bigint, lost_value numeric)),
         g AS (SELECT f.*, max(f.entered) OVER () AS fmax, count(*) OVER () AS nfun FROM f),
         h AS (SELECT g.*, CASE WHEN g.fmax > 0 THEN greatest(440.0 * g.entered / g.fmax, 2) ELSE 2 END AS w FROM g)
    SELECT pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="760" height="%s" role="img" aria-label="sales funnel">%s</svg>',
                             max(h.nfun) * 44 + 10,
                             string_agg(pg_catalog.format(
                                 '<rect x="%s" y="%s" width="%s" height="34" fill="#2b6cb0" rx="3"/>'
                                 '<text x="10" y="%s" class="lbl">%s</text>'
                                 '<text x="380" y="%s" text-anchor="middle" class="%s">%s (%s%%)</text>'
                                 '<text x="750" y="%s" text-anchor="end" class="lost">%s</text>',
                                 round(380 - h.w / 2, 1), 5 + (h.step_no - 1) * 44, round(h.w, 1),
                                 27 + (h.step_no - 1) * 44, crm._html(h.stage),
                                 27 + (h.step_no - 1) * 44, CASE WHEN h.w >= 130 THEN 'in' ELSE 'out' END,
                                 crm._fmt(h.entered::numeric), crm._fmt(h.pct_of_first),
                                 27 + (h.step_no - 1) * 44,
                                 CASE WHEN h.lost_value > 0 THEN 'lost ' || crm._fmt(h.lost_value) ELSE '' END),
                                 '' ORDER BY h.step_no))
      INTO funnel
      FROM h;

    -- cohort heat map: rows = cohorts, columns = months since, colour = retention
    WITH t AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(heat_rows)
                                AS t(cohort date, period_no int, cohort_size bigint, active bigint, retention_pct numeric,
                                     revenue numeric, cumulative_ltv numeric)),
         r AS (SELECT t.*, 26 + (dense_rank() OVER (ORDER BY t.cohort) - 1) * 26 AS y FROM t)
    SELECT pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" role="img" aria-label="cohort retention heat map">'
                             '%s%s</svg>',
                             100 + 12 * 52, 30 + count(DISTINCT r.cohort) * 26,
                             (SELECT string_agg(pg_catalog.format('<text x="%s" y="18" text-anchor="middle" class="ax">%s</text>', 126 + p * 52, p), '')
                                FROM generate_series(0, 11) AS p),
                             string_agg(pg_catalog.format(
                                 '%s<rect x="%s" y="%s" width="50" height="24" fill="hsl(210,70%%,%s%%)"/>'
                                 '<text x="%s" y="%s" text-anchor="middle" class="%s">%s</text>',
                                 CASE WHEN r.period_no = 0 THEN pg_catalog.format('<text x="4" y="%s" class="ax">%s (%s)</text>',
                                                                              r.y + 17, to_char(r.cohort, 'YYYY-MM'), r.cohort_size) ELSE '' END,
                                 100 + r.period_no * 52, r.y, round(95 - 0.6 * r.retention_pct, 1),
                                 126 + r.period_no * 52, r.y + 17,
                                 CASE WHEN r.retention_pct > 55 THEN 'cw' ELSE 'cb' END, round(r.retention_pct) || '%'),
                                 '' ORDER BY r.cohort, r.period_no))
      INTO heat
      FROM r;

    -- channels: a table with an ROI bar
    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s%%</td><td class="n">%s</td>'
               '<td class="n">%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="160" height="14"><rect x="0" y="2" width="%s" height="10" fill="%s"/></svg> %s</td></tr>',
               crm._html(c.channel), crm._fmt(c.leads::numeric), crm._fmt(c.new_buyers::numeric), crm._fmt(c.conversion_pct),
               crm._fmt(c.revenue), crm._fmt(c.spend), crm._fmt(c.cac), crm._fmt(c.ltv_cac),
               CASE WHEN c.roi_pct IS NULL THEN 0 ELSE round(least(greatest(abs(c.roi_pct), 0), mx) / nullif(mx, 0) * 160, 1) END,
               CASE WHEN c.roi_pct < 0 THEN '#c53030' ELSE '#2f855a' END,
               CASE WHEN c.roi_pct IS NULL THEN 'no spend' ELSE crm._fmt(c.roi_pct) || '%' END), E'\n' ORDER BY c.revenue DESC)
      INTO chan
      FROM (SELECT c.*, max(abs(c.roi_pct)) OVER () AS mx
              FROM jsonb_to_recordset(chan_rows) AS c(channel text, leads bigint, new_buyers bigint, conversion_pct numeric,
                                                     revenue numeric, gross_profit numeric, spend numeric, cac numeric,
                                                     roi_pct numeric, ltv numeric, ltv_cac numeric)) AS c;

    RETURN pg_catalog.format($html$<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Owner dashboard %1$s .. %2$s</title>
<style>
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#1a202c;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} p.sub{color:#4a5568;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 10px;border-bottom:1px solid #e2e8f0;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums} td.up{color:#2f855a} td.down{color:#c53030}
tr.money_lost td:first-child{color:#c53030} th{background:#edf2f7}
svg text{font-family:DejaVu Sans,Arial,sans-serif;font-size:12px} .lbl{font-weight:bold} .in{fill:#fff;font-weight:bold}
.out{fill:#1a202c;font-weight:bold;paint-order:stroke;stroke:#fff;stroke-width:3px} .lost{fill:#c53030} .ax{fill:#4a5568} .cw{fill:#fff} .cb{fill:#1a202c}
.cols{display:flex;gap:40px;flex-wrap:wrap}
</style></head><body>
<h1>Owner dashboard</h1>
<p class="sub">%1$s .. %2$s, compared with the previous period of equal length. Generated by crm.dashboard_html.</p>
<div class="cols"><div>
<h2>Figures</h2>
<table><tr><th>metric</th><th>value</th><th>previous</th><th>change</th><th>unit</th></tr>
%3$s
</table></div><div>
<h2>Sales funnel (deals started in the period)</h2>
%4$s
<h2>Channels</h2>
<table><tr><th>channel</th><th>leads</th><th>new buyers</th><th>conversion</th><th>revenue</th><th>spend</th><th>CAC</th><th>LTV/CAC</th><th>ROI</th></tr>
%5$s
</table>
</div></div>
%7$s
<h2>Monthly buyer cohorts: share still buying, by months since the first order</h2>
%6$s
</body></html>
$html$, period_from, period_to, coalesce(kpi, ''), coalesce(funnel, ''), coalesce(chan, ''), coalesce(heat, ''),
         coalesce(sales_html, ''));
END
$$;
COMMENT ON FUNCTION crm._dashboard_html(date, date, jsonb, jsonb, jsonb, jsonb, text) IS
'Draws the page of crm.dashboard_html from the rows of crm.owner_dashboard (with their position as ord), crm.dashboard_funnel, crm.dashboard_retention and crm.dashboard_channels, each a jsonb array of row objects, and the sales head''s part drawn by crm._dashboard_html_sales.';

-- The sales head's part of the page (issue 20): where deals are lost, the
-- follow-up depth, plan against fact and the top of the to-do list, drawn
-- from the rows of crm.dashboard_losses, crm.dashboard_followups,
-- crm.dashboard_plan_fact and crm.todo (jsonb arrays of row objects).
CREATE FUNCTION crm._dashboard_html_sales(loss_rows jsonb, followup_rows jsonb, plan_rows jsonb, todo_rows jsonb,
                                          todo_as_of timestamptz) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    losses    text;
    followups text;
    plans     text;
    todo      text;
BEGIN
    -- the ten largest losses by reason and stage, with a bar of the share
    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="120" height="14"><rect x="0" y="2" width="%s" height="10" fill="#c53030"/></svg> %s%%</td></tr>',
               crm._html(l.reason), crm._html(l.stage), crm._fmt(l.deals::numeric), crm._fmt(l.lost_value),
               round(least(greatest(coalesce(l.share_pct, 0), 0), 100) * 1.2, 1), crm._fmt(l.share_pct)),
               E'\n' ORDER BY l.lost_value DESC, l.reason, l.stage)
      INTO losses
      FROM (SELECT * FROM jsonb_to_recordset(loss_rows)
                AS l(reason text, stage text, deals bigint, lost_value numeric, share_pct numeric)
             ORDER BY lost_value DESC, reason, stage LIMIT 10) AS l;

    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="120" height="14"><rect x="0" y="2" width="%s" height="10" fill="#2f855a"/></svg> %s</td></tr>',
               crm._html(f.contacts), crm._fmt(f.deals::numeric), crm._fmt(f.lost_value), crm._fmt(f.won_deals::numeric),
               round(least(greatest(coalesce(f.win_rate_pct, 0), 0), 100) * 1.2, 1),
               CASE WHEN f.win_rate_pct IS NULL THEN 'no closed deals' ELSE crm._fmt(f.win_rate_pct) || '%' END),
               E'\n' ORDER BY f.ord)
      INTO followups
      FROM jsonb_to_recordset(followup_rows)
               AS f(contacts text, deals bigint, lost_value numeric, won_deals bigint, won_value numeric,
                    win_rate_pct numeric, ord bigint);

    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="120" height="14"><rect x="0" y="2" width="%s" height="10" fill="%s"/></svg> %s</td>'
               '<td class="n">%s</td></tr>',
               crm._html(replace(p.metric, '_', ' ')),
               CASE WHEN p.dimension IS NULL THEN 'all' ELSE crm._html(p.dimension || ' ' || p.key) END,
               crm._fmt(p.plan), crm._fmt(p.fact),
               round(least(greatest(coalesce(p.pct, 0), 0), 100) * 1.2, 1),
               CASE WHEN p.pct >= 100 THEN '#2f855a' ELSE '#dd6b20' END,
               CASE WHEN p.pct IS NULL THEN '' ELSE crm._fmt(p.pct) || '%' END,
               crm._fmt(p.forecast)),
               E'\n' ORDER BY p.ord)
      INTO plans
      FROM jsonb_to_recordset(plan_rows)
               AS p(metric text, dimension text, key text, plan numeric, fact numeric, pct numeric,
                    forecast numeric, forecast_pct numeric, ord bigint);

    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class="n">%s</td><td>%s</td></tr>',
               crm._html(coalesce(t.manager_id, '-')), crm._html(replace(t.kind, '_', ' ')), crm._html(t.entity_id),
               crm._html(to_char(t.since, 'YYYY-MM-DD')), crm._fmt(t.value), crm._html(t.note)),
               E'\n' ORDER BY t.ord)
      INTO todo
      FROM jsonb_to_recordset(todo_rows)
               AS t(manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text, ord bigint)
     WHERE t.ord <= 15;

    RETURN pg_catalog.format($html$<div class="cols"><div>
<h2>Where deals are lost (reason and last open stage)</h2>
<table><tr><th>reason</th><th>stage</th><th>deals</th><th>lost value</th><th>share</th></tr>
%1$s
</table></div><div>
<h2>Follow-up depth of the deals closed</h2>
<table><tr><th>real contacts</th><th>lost deals</th><th>lost value</th><th>won deals</th><th>win rate</th></tr>
%2$s
</table></div></div>
<h2>Plan against fact</h2>
%3$s
<h2>To do first, as of %5$s (%6$s things in all)</h2>
<table><tr><th>manager</th><th>what</th><th>id</th><th>since</th><th>at stake</th><th>note</th></tr>
%4$s
</table>
$html$, coalesce(losses, '<tr><td colspan="5">no deals lost in the period</td></tr>'),
         coalesce(followups, ''),
         CASE WHEN plans IS NULL THEN '<p class="sub">No plan for exactly this period (crm.set_plan).</p>'
              ELSE '<table><tr><th>metric</th><th>for</th><th>plan</th><th>fact</th><th>done</th><th>forecast</th></tr>'
                   || E'\n' || plans || E'\n</table>' END,
         coalesce(todo, '<tr><td colspan="6">nothing to do</td></tr>'),
         to_char(todo_as_of, 'YYYY-MM-DD HH24:MI'), crm._fmt(coalesce(jsonb_array_length(todo_rows), 0)::numeric));
END
$$;
COMMENT ON FUNCTION crm._dashboard_html_sales(jsonb, jsonb, jsonb, jsonb, timestamptz) IS
'Draws the sales head''s part of the crm.dashboard_html page from the rows of crm.dashboard_losses, crm.dashboard_followups, crm.dashboard_plan_fact and crm.todo (jsonb arrays of row objects, in report order).';

CREATE FUNCTION crm.dashboard_html(period_from date, period_to date) RETURNS text
LANGUAGE plpgsql VOLATILE
-- no SET search_path: the reports run the registered sources with the
-- caller's path; everything here is qualified, the page is drawn by the
-- pinned crm._dashboard_html
AS $$
DECLARE
    kpi       jsonb;
    losses    jsonb;
    followups jsonb;
    plans     jsonb;
    todo      jsonb;
    -- the to-do list as of the end of the period, or now while it runs
    as_of     timestamptz;
BEGIN
    -- first: validates the period and the sources
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(o) ORDER BY o.ord) INTO kpi
      FROM crm.owner_dashboard(period_from, period_to) WITH ORDINALITY AS o(metric, value, unit, previous_value, change_pct, section, ord);
    as_of := (period_to OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz;
    IF pg_catalog.now() OPERATOR(pg_catalog.<) as_of THEN
        as_of := pg_catalog.now();
    END IF;
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(l)) INTO losses FROM crm.dashboard_losses(period_from, period_to) AS l;
    -- the follow-up depth needs the deals source (0.4.0), which an older
    -- registration may lack: the page then shows no follow-up rows
    BEGIN
        SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f) ORDER BY f.ord) INTO followups
          FROM crm.dashboard_followups(period_from, period_to)
               WITH ORDINALITY AS f(contacts, deals, lost_value, won_deals, won_value, win_rate_pct, ord);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        followups := NULL;
    END;
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p) ORDER BY p.ord) INTO plans
      FROM crm.dashboard_plan_fact(period_from, period_to)
           WITH ORDINALITY AS p(metric, dimension, key, plan, fact, pct, forecast, forecast_pct, ord);
    SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) ORDER BY t.ord) INTO todo FROM crm.todo(as_of)
           WITH ORDINALITY AS t(manager_id, kind, entity_id, since, value, note, ord);
    RETURN crm._dashboard_html(period_from, period_to, kpi,
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f)) FROM crm.dashboard_funnel(period_from, period_to) AS f),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r)) FROM crm.dashboard_retention(period_to) AS r),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c)) FROM crm.dashboard_channels(period_from, period_to) AS c),
        crm._dashboard_html_sales(losses, followups, plans, todo, as_of));
END
$$;
COMMENT ON FUNCTION crm.dashboard_html(date, date) IS
'A static HTML page (inline SVG, no scripts) with the owner dashboard figures, the sales funnel, the channel table, the losses by reason and stage, the follow-up depth, plan against fact, the top of the to-do list (as of the period end) and the cohort retention heat map for the period [from, to].';
