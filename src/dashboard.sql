-- dashboard.sql: the owner dashboard and the BI views (PRODUCT.md section 7).
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
                  CHECK (kind IN ('leads', 'customers', 'stage_events', 'orders', 'invoices', 'spend', 'interactions')),
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
    outcome     text NOT NULL DEFAULT 'open' CHECK (outcome IN ('open', 'won', 'lost'))
);
COMMENT ON TABLE crm.pipeline_stages IS
'Stages of the sales pipeline: order in the funnel, probability that a deal in the stage is won (weighted pipeline), and outcome (open, won or lost).';
SELECT pg_catalog.pg_extension_config_dump('crm.pipeline_stages', '');

-- Dashboard settings: one optional row.  No row = the defaults (see
-- crm.dashboard_period and crm._lead_sla).
CREATE TABLE crm.dashboard_settings (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    period_from date,
    period_to   date,
    lead_sla    interval NOT NULL DEFAULT '1 hour',
    CHECK (period_from IS NULL AND period_to IS NULL
           OR period_from IS NOT NULL AND period_to IS NOT NULL AND period_from <= period_to)
);
COMMENT ON TABLE crm.dashboard_settings IS
'Settings of the owner dashboard (at most one row): the period the crm.v_* views show (NULL = the last complete calendar month) and the lead first-response SLA.';
SELECT pg_catalog.pg_extension_config_dump('crm.dashboard_settings', '');

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
                  HINT = 'Source kinds are leads, customers, stage_events, orders, invoices, spend, interactions.';
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
CREATE FUNCTION crm._source_sql(kind text) RETURNS text
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
    SELECT s.query INTO q FROM crm.sources s WHERE s.kind = _source_sql.kind;
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
        RAISE EXCEPTION 'registered source "%" does not run: %', kind, m
            USING ERRCODE = st,
                  HINT = pg_catalog.format('Fix the tables it reads or register it again: SELECT crm.register_source(%L, ''...''); the query must return (%s).',
                                           kind, crm._source_columns_text(kind));
    END;
    SELECT pg_catalog.string_agg(pg_catalog.split_part(c, ' ', 1), ', ' ORDER BY n)
      INTO names FROM pg_catalog.unnest(cols) WITH ORDINALITY AS u(c, n);
    RETURN pg_catalog.format(E'(%s\n) AS src(%s)', q, names);
END
$$;
COMMENT ON FUNCTION crm._source_sql(text) IS
'The registered inner query of a source kind, checked, as a FROM item naming the documented columns; a clear error when it is not registered or no longer runs.';

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm.dashboard_period(OUT period_from date, OUT period_to date)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(s.period_from, (date_trunc('month', current_date) - interval '1 month')::date),
       coalesce(s.period_to, (date_trunc('month', current_date) - interval '1 day')::date)
  FROM (SELECT true) AS one
  LEFT JOIN crm.dashboard_settings s ON true
$$;
COMMENT ON FUNCTION crm.dashboard_period() IS
'The period the crm.v_* views show: the one set with crm.set_dashboard_period, else the last complete calendar month.';

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
    IF period_from > period_to THEN
        RAISE EXCEPTION 'period start % is after its end %', period_from, period_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO crm.dashboard_settings AS s (singleton, period_from, period_to)
    VALUES (true, set_dashboard_period.period_from, set_dashboard_period.period_to)
    ON CONFLICT (singleton) DO UPDATE SET period_from = excluded.period_from, period_to = excluded.period_to;
END
$$;
COMMENT ON FUNCTION crm.set_dashboard_period(date, date) IS
'Sets the period (inclusive dates) that the crm.v_* views show; NULL, NULL = the last complete calendar month.';

CREATE FUNCTION crm._lead_sla() RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce((SELECT s.lead_sla FROM crm.dashboard_settings s), interval '1 hour')
$$;
COMMENT ON FUNCTION crm._lead_sla() IS
'Lead first-response SLA used by crm.v_lead_sla (crm.dashboard_settings.lead_sla, default 1 hour).';

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
        RAISE EXCEPTION '%: period bounds must not be null', fname
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass both dates, e.g. (''2025-12-01'', ''2025-12-31'').';
    END IF;
    IF period_from > period_to THEN
        RAISE EXCEPTION '%: period start % is after its end %', fname, period_from, period_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Swap the two dates.';
    END IF;
    IF period_from = '-infinity'::date OR period_to = 'infinity'::date THEN
        RAISE EXCEPTION '%: period bounds must be finite', fname USING ERRCODE = 'invalid_parameter_value';
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
        RAISE EXCEPTION '%: crm.pipeline_stages has no won stage', fname
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'List your stages: INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome) VALUES (''lead'', 1, 0.1, ''open''), ..., (''won'', 9, 1, ''won''), (''lost'', 10, 0, ''lost'').';
    END IF;
END
$$;
COMMENT ON FUNCTION crm._require_stages(text) IS
'Raises a clear error when crm.pipeline_stages is not filled in.';

-- Raised from inside a report query (the data says the configuration is incomplete).
CREATE FUNCTION crm._unknown_stages(stages text[]) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(stages) > 0 THEN
        RAISE EXCEPTION 'source "stage_events" uses stages missing from crm.pipeline_stages: %',
                        array_to_string(stages, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Add them: INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome) VALUES (...).';
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION crm._unknown_stages(text[]) IS
'Raises an error naming the stage names of the stage_events source that crm.pipeline_stages does not list.';

-- ---------------------------------------------------------------------------
-- The owner dashboard
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm.owner_dashboard(period_from date, period_to date)
RETURNS TABLE (metric text, value numeric, unit text, previous_value numeric,
               change_pct numeric, section text)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    b record;
    q text;
BEGIN
    b := crm._period_bounds('crm.owner_dashboard', period_from, period_to);
    PERFORM crm._require_stages('crm.owner_dashboard');
    -- $1 cur_from, $2 cur_to, $3 prev_from, $4 prev_to (= $1); half-open.
    -- Every figure is "as of the end of its period": data after the end is
    -- ignored, so a past period always shows the same numbers.
    q := pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome FROM crm.pipeline_stages),
ld AS MATERIALIZED (
    SELECT lead_id, created_at, channel, customer_id, created_at >= $1 AS is_cur
      FROM %1$s WHERE created_at >= $3 AND created_at < $2),
od AS MATERIALIZED (
    SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at < $2),
-- per customer: first order, orders up to each period end, revenue of the
-- 12 months before each end (ABC class)
cu AS MATERIALIZED (
    SELECT customer_id, min(ordered_at) AS first_at,
           count(*) AS n_cur_end, count(*) FILTER (WHERE ordered_at < $4) AS n_prev_end,
           bool_or(ordered_at >= $1) AS in_cur,
           bool_or(ordered_at >= $3 AND ordered_at < $4) AS in_prev,
           sum(amount) FILTER (WHERE ordered_at >= $2 - interval '12 months') AS rev12_cur,
           sum(amount) FILTER (WHERE ordered_at >= $4 - interval '12 months' AND ordered_at < $4) AS rev12_prev
      FROM od GROUP BY customer_id),
om AS (
    SELECT sum(amount) FILTER (WHERE ordered_at >= $1) AS c_revenue,
           sum(amount) FILTER (WHERE ordered_at < $4) AS p_revenue,
           count(*) FILTER (WHERE ordered_at >= $1) AS c_orders,
           count(*) FILTER (WHERE ordered_at < $4) AS p_orders,
           sum(amount - cost) FILTER (WHERE ordered_at >= $1) AS c_gp,
           sum(amount - cost) FILTER (WHERE ordered_at < $4) AS p_gp
      FROM od WHERE ordered_at >= $3),
cm AS (
    SELECT count(*) FILTER (WHERE first_at >= $1) AS c_new,
           count(*) FILTER (WHERE first_at >= $3 AND first_at < $4) AS p_new,
           count(*) FILTER (WHERE in_cur) AS c_active,
           count(*) FILTER (WHERE in_cur AND n_cur_end >= 2) AS c_repeat,
           count(*) FILTER (WHERE in_prev) AS p_active,
           count(*) FILTER (WHERE in_prev AND n_prev_end >= 2) AS p_repeat
      FROM cu),
sp AS (
    SELECT channel, spent_on >= $1 AS is_cur, sum(amount) AS amount
      FROM %3$s WHERE spent_on >= $3 AND spent_on < $2 GROUP BY 1, 2),
spm AS (
    SELECT sum(amount) FILTER (WHERE is_cur) AS c_spend, sum(amount) FILTER (WHERE NOT is_cur) AS p_spend FROM sp),
ix AS MATERIALIZED (
    SELECT customer_id, lead_id, occurred_at FROM %4$s WHERE NOT automated AND occurred_at < $2),
lf AS (
    SELECT lead_id, min(occurred_at) AS first_contact FROM ix
     WHERE lead_id IN (SELECT lead_id FROM ld) GROUP BY lead_id),
lx AS (
    SELECT ld.channel, ld.is_cur, count(*) AS n,
           count(*) FILTER (WHERE cu.first_at < CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS converted,
           count(*) FILTER (WHERE lf.first_contact IS NULL
                               OR lf.first_contact >= CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS unanswered
      FROM ld LEFT JOIN cu ON cu.customer_id = ld.customer_id
              LEFT JOIN lf ON lf.lead_id = ld.lead_id
     GROUP BY 1, 2),
lm AS (
    SELECT sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           sum(unanswered * coalesce(sp.amount, 0) / lx.n) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           sum(unanswered * coalesce(sp.amount, 0) / lx.n) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost
      FROM lx LEFT JOIN sp ON sp.channel = lx.channel AND sp.is_cur = lx.is_cur),
iv AS (
    SELECT issued_at, due_at, amount, paid_at FROM %5$s
     WHERE issued_at < $2 AND (paid_at IS NULL OR paid_at >= $4)),
im AS (
    SELECT count(*) FILTER (WHERE paid_at IS NULL OR paid_at >= $2) AS c_unpaid,
           sum(amount) FILTER (WHERE paid_at IS NULL OR paid_at >= $2) AS c_unpaid_amt,
           avg(extract(epoch FROM $2 - issued_at) / 86400) FILTER (WHERE paid_at IS NULL OR paid_at >= $2) AS c_unpaid_age,
           count(*) FILTER (WHERE (paid_at IS NULL OR paid_at >= $2) AND due_at < $2) AS c_overdue,
           sum(amount) FILTER (WHERE (paid_at IS NULL OR paid_at >= $2) AND due_at < $2) AS c_overdue_amt,
           count(*) FILTER (WHERE issued_at < $4) AS p_unpaid,
           sum(amount) FILTER (WHERE issued_at < $4) AS p_unpaid_amt,
           avg(extract(epoch FROM $4 - issued_at) / 86400) FILTER (WHERE issued_at < $4) AS p_unpaid_age,
           count(*) FILTER (WHERE issued_at < $4 AND due_at < $4) AS p_overdue,
           sum(amount) FILTER (WHERE issued_at < $4 AND due_at < $4) AS p_overdue_amt
      FROM iv),
dl AS MATERIALIZED (
    SELECT e.deal_id, min(e.changed_at) AS created_at, max(e.amount) AS amount,
           min(e.changed_at) FILTER (WHERE st.outcome = 'won') AS won_at,
           min(e.changed_at) FILTER (WHERE st.outcome = 'lost') AS lost_at,
           max(st.stage_order) FILTER (WHERE st.outcome = 'open') AS open_cur,
           max(st.stage_order) FILTER (WHERE st.outcome = 'open' AND e.changed_at < $4) AS open_prev,
           array_agg(DISTINCT e.stage) FILTER (WHERE st.stage IS NULL) AS unknown
      FROM (SELECT * FROM %6$s) AS e LEFT JOIN st ON st.stage = e.stage
     WHERE e.changed_at < $2
     GROUP BY e.deal_id),
dc AS (
    SELECT dl.*, least(won_at, lost_at) AS closed_at,
           won_at IS NOT NULL AND won_at <= coalesce(lost_at, won_at) AS is_won
      FROM dl),
dm AS (
    SELECT count(*) FILTER (WHERE is_won AND closed_at >= $1) AS c_won,
           count(*) FILTER (WHERE NOT is_won AND closed_at >= $1) AS c_lost,
           count(*) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $4) AS p_won,
           count(*) FILTER (WHERE NOT is_won AND closed_at >= $3 AND closed_at < $4) AS p_lost,
           sum(amount) FILTER (WHERE NOT is_won AND closed_at >= $1) AS c_lost_amt,
           sum(amount) FILTER (WHERE NOT is_won AND closed_at >= $3 AND closed_at < $4) AS p_lost_amt,
           avg(amount) FILTER (WHERE is_won AND closed_at >= $1) AS c_avg_won,
           avg(amount) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $4) AS p_avg_won,
           avg(extract(epoch FROM won_at - created_at) / 86400) FILTER (WHERE is_won AND closed_at >= $1) AS c_cycle,
           avg(extract(epoch FROM won_at - created_at) / 86400) FILTER (WHERE is_won AND closed_at >= $3 AND closed_at < $4) AS p_cycle,
           count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open,
           count(*) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at >= $4)) AS p_open,
           sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open_amt,
           sum(amount) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at >= $4)) AS p_open_amt,
           sum(amount * sc.probability) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_weighted,
           sum(amount * sp2.probability) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at >= $4)) AS p_weighted,
           crm._unknown_stages(array(SELECT DISTINCT u FROM dl, unnest(dl.unknown) AS u ORDER BY u)) AS stages_ok
      FROM dc LEFT JOIN st sc ON sc.stage_order = dc.open_cur
              LEFT JOIN st sp2 ON sp2.stage_order = dc.open_prev),
-- lost deals by the most advanced open stage they reached
lost AS (
    SELECT st.stage, st.stage_order,
           coalesce(sum(dc.amount) FILTER (WHERE dc.closed_at >= $1), 0) AS c_amt,
           coalesce(sum(dc.amount) FILTER (WHERE dc.closed_at < $4), 0) AS p_amt
      FROM st LEFT JOIN dc ON dc.open_cur = st.stage_order AND NOT dc.is_won AND dc.closed_at >= $3
     WHERE st.outcome = 'open'
     GROUP BY st.stage, st.stage_order),
-- class A (crm.abc_class semantics, 0.80 / 0.95 of the revenue of the 12
-- months before the period end) customers without a real contact in the
-- last month before the end
-- TODO(classes): switch to crm.abc_class(rev12) OVER () once it lands.
-- TODO(coverage): switch to the coverage policy table once it lands.
lc AS (
    SELECT customer_id, max(occurred_at) AS last_cur, max(occurred_at) FILTER (WHERE occurred_at < $4) AS last_prev
      FROM ix WHERE customer_id IS NOT NULL GROUP BY customer_id),
abc AS (
    SELECT cu.customer_id, cu.rev12_cur, cu.rev12_prev,
           coalesce(sum(cu.rev12_cur) FILTER (WHERE cu.rev12_cur > 0) OVER (ORDER BY cu.rev12_cur DESC NULLS LAST
                    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP), 0)
             / nullif(sum(cu.rev12_cur) FILTER (WHERE cu.rev12_cur > 0) OVER (), 0) AS above_cur,
           coalesce(sum(cu.rev12_prev) FILTER (WHERE cu.rev12_prev > 0) OVER (ORDER BY cu.rev12_prev DESC NULLS LAST
                    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP), 0)
             / nullif(sum(cu.rev12_prev) FILTER (WHERE cu.rev12_prev > 0) OVER (), 0) AS above_prev
      FROM cu),
am AS (
    SELECT count(*) FILTER (WHERE abc.rev12_cur > 0 AND abc.above_cur < 0.80
                             AND (lc.last_cur IS NULL OR lc.last_cur < $2 - interval '1 month')) AS c_a_overdue,
           count(*) FILTER (WHERE abc.rev12_prev > 0 AND abc.above_prev < 0.80
                             AND (lc.last_prev IS NULL OR lc.last_prev < $4 - interval '1 month')) AS p_a_overdue
      FROM abc LEFT JOIN lc ON lc.customer_id = abc.customer_id),
rows AS (
    SELECT v.*
      FROM om, cm, spm, lm, im, dm, am,
      LATERAL (VALUES
        (1,  'acquisition', 'leads_in', coalesce(c_leads, 0), coalesce(p_leads, 0), 'count'),
        (2,  'acquisition', 'new_buyers', c_new::numeric, p_new::numeric, 'count'),
        (3,  'acquisition', 'lead_to_buyer_conversion', round(100.0 * c_conv / nullif(c_leads, 0), 2), round(100.0 * p_conv / nullif(p_leads, 0), 2), 'pct'),
        (4,  'acquisition', 'marketing_spend', coalesce(c_spend, 0), coalesce(p_spend, 0), 'money'),
        (5,  'acquisition', 'cac', round(coalesce(c_spend, 0) / nullif(c_new, 0), 2), round(coalesce(p_spend, 0) / nullif(p_new, 0), 2), 'money'),
        (6,  'sales', 'revenue', coalesce(c_revenue, 0), coalesce(p_revenue, 0), 'money'),
        (7,  'sales', 'orders', c_orders::numeric, p_orders::numeric, 'count'),
        (8,  'sales', 'average_check', round(c_revenue / nullif(c_orders, 0), 2), round(p_revenue / nullif(p_orders, 0), 2), 'money'),
        (9,  'sales', 'repeat_purchase_rate', round(100.0 * c_repeat / nullif(c_active, 0), 2), round(100.0 * p_repeat / nullif(p_active, 0), 2), 'pct'),
        (10, 'sales', 'gross_profit', coalesce(c_gp, 0), coalesce(p_gp, 0), 'money'),
        (11, 'sales', 'roi', round(100.0 * (coalesce(c_gp, 0) - c_spend) / nullif(c_spend, 0), 2),
                             round(100.0 * (coalesce(p_gp, 0) - p_spend) / nullif(p_spend, 0), 2), 'pct'),
        (12, 'pipeline', 'win_rate', round(100.0 * c_won / nullif(c_won + c_lost, 0), 2), round(100.0 * p_won / nullif(p_won + p_lost, 0), 2), 'pct'),
        (13, 'pipeline', 'deals_won', c_won::numeric, p_won::numeric, 'count'),
        (14, 'pipeline', 'average_won_deal', round(c_avg_won, 2), round(p_avg_won, 2), 'money'),
        (15, 'pipeline', 'sales_cycle', round(c_cycle, 2), round(p_cycle, 2), 'days'),
        (16, 'pipeline', 'open_deals', c_open::numeric, p_open::numeric, 'count'),
        (17, 'pipeline', 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0), 'money'),
        (18, 'pipeline', 'weighted_pipeline', round(coalesce(c_weighted, 0), 2), round(coalesce(p_weighted, 0), 2), 'money'),
        (19, 'pipeline', 'sales_velocity',
             round(c_open * (c_won::numeric / nullif(c_won + c_lost, 0)) * c_avg_won / nullif(c_cycle, 0), 2),
             round(p_open * (p_won::numeric / nullif(p_won + p_lost, 0)) * p_avg_won / nullif(p_cycle, 0), 2), 'money_per_day'),
        (20, 'money_lost', 'deals_lost', c_lost::numeric, p_lost::numeric, 'count'),
        (21, 'money_lost', 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0), 'money'),
        (1000, 'money_lost', 'unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric, 'count'),
        (1001, 'money_lost', 'unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0), 'money'),
        (1002, 'money_lost', 'unpaid_invoice_age', round(c_unpaid_age, 2), round(p_unpaid_age, 2), 'days'),
        (1003, 'money_lost', 'overdue_invoices', c_overdue::numeric, p_overdue::numeric, 'count'),
        (1004, 'money_lost', 'overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0), 'money'),
        (1005, 'money_lost', 'unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0), 'count'),
        (1006, 'money_lost', 'unanswered_leads_cost', round(coalesce(c_unans_cost, 0), 2), round(coalesce(p_unans_cost, 0), 2), 'money'),
        (1007, 'money_lost', 'overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric, 'count')
      ) AS v(ord, section, metric, cur, prev, unit)
     WHERE dm.stages_ok
    UNION ALL
    SELECT 100 + stage_order, 'money_lost', 'lost_value_at_' || stage, c_amt, p_amt, 'money' FROM lost)
SELECT metric, cur, unit, prev,
       round(100.0 * (cur - prev) / nullif(abs(prev), 0), 2), section
  FROM rows ORDER BY ord
$sql$,
        crm._source_sql('leads'), crm._source_sql('orders'), crm._source_sql('spend'),
        crm._source_sql('interactions'), crm._source_sql('invoices'), crm._source_sql('stage_events'));
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
    INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome) VALUES
        ('lead', 1, 0.10, 'open'), ('qualified', 2, 0.25, 'open'), ('proposal', 3, 0.50, 'open'),
        ('invoice', 4, 0.80, 'open'), ('paid', 5, 1, 'won'), ('lost', 6, 0, 'lost')
    ON CONFLICT DO NOTHING;
    -- the views show the last month of the demo data
    SELECT max(created_at)::date INTO last_day FROM crm_demo.leads;
    IF last_day IS NOT NULL THEN
        PERFORM crm.set_dashboard_period(date_trunc('month', last_day)::date, last_day);
    END IF;
END
$$;
COMMENT ON FUNCTION crm._register_demo_sources() IS
'Registers the crm_demo tables as the dashboard sources, the demo pipeline stages and the demo period; crm.load_demo calls it at its end.';
