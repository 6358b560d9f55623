-- crm_analytics 0.3.0: generated from src/core.sql src/classes.sql src/clv.sql src/coverage.sql src/demo.sql src/funnel.sql src/retention.sql src/status.sql src/dashboard.sql by make; do not edit
\echo Use "CREATE EXTENSION crm_analytics" to load this file. \quit

-- ==== src/core.sql ====
-- core.sql: what every capability of crm_analytics stands on.
--
-- Conventions (docs/security.md describes the trust model they give):
--   * everything in schema crm, created by CREATE EXTENSION (control: schema = crm);
--   * every function has COMMENT ON and pins search_path (or is fully qualified);
--   * nothing is SECURITY DEFINER; views are security_invoker;
--   * configuration / history tables are registered with pg_extension_config_dump.

-- Refuse to install into a schema "crm" that the user made for something else.
-- CREATE EXTENSION creates the schema itself when it is missing (control file:
-- schema = crm).  PostgreSQL does not make that schema a member of the
-- extension, so DROP EXTENSION removes every object but leaves the empty
-- schema behind; an empty schema "crm" is therefore accepted, one holding
-- anything is not.
DO $guard$
DECLARE
    n_objects int;
    made_now boolean;
BEGIN
    SELECT n.xmin::text = (pg_current_xact_id()::text::bigint % 4294967296)::text
      INTO made_now
      FROM pg_namespace n WHERE n.nspname = 'crm';
    SELECT (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'crm'::regnamespace)
         + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'crm'::regnamespace)
         + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = 'crm'::regnamespace)
      INTO n_objects;
    IF NOT made_now AND n_objects > 0 THEN
        RAISE EXCEPTION 'schema "crm" already exists and does not belong to crm_analytics'
            USING ERRCODE = 'duplicate_schema',
                  DETAIL = format('It holds %s objects and was not created by CREATE EXTENSION.', n_objects),
                  HINT = 'Rename the existing schema (ALTER SCHEMA crm RENAME TO ...) and run CREATE EXTENSION crm_analytics again.';
    END IF;
END
$guard$;

CREATE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.3.0'::text $$;
COMMENT ON FUNCTION crm.version() IS
'Version of the crm_analytics SQL objects installed in this database.';

CREATE FUNCTION crm._check_inner_query(fname text, query text, columns text[]) RETURNS int
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'crm_check_inner_query_sql';
-- No SET search_path here on purpose: the inner query is the caller's SQL and
-- must resolve its table names with the caller's search_path.  The C code
-- itself refers to nothing by an unqualified name.
COMMENT ON FUNCTION crm._check_inner_query(text, text, text[]) IS
'Accepts an inner query only if it is exactly one SELECT statement (parsed alone: no semicolon, no SELECT INTO, no data-modifying WITH, not ending inside a -- comment), then checks its columns by position and type ("name kind" per column, kind any/timestamptz/numeric/text/integer/boolean, "?" suffix = optional trailing column); returns the column count or raises an error naming the expected columns.';

-- ==== src/classes.sql ====
-- classes.sql: customer classes (docs/classes.md): ABC, XYZ, RFM.
-- C engine in src/classes.c; the report functions are thin PL/pgSQL wrappers.

-- ---- ABC class and quantile score: C window functions ----------------------

CREATE FUNCTION crm.abc_class(value float8, a float8 DEFAULT 0.80, b float8 DEFAULT 0.95)
RETURNS text
LANGUAGE c WINDOW IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_abc_class';
COMMENT ON FUNCTION crm.abc_class(float8, float8, float8) IS
'Window function: ABC class of value within its partition. s = share of the partition''s total of positive values held by values strictly greater than this one; ''A'' if s < a, ''B'' if s < b, else ''C''. Equal values share a class, non-positive values are ''C'', NULL gives NULL. Needs no ORDER BY in OVER.';

CREATE FUNCTION crm.quantile_score(value float8, buckets int DEFAULT 5)
RETURNS int
LANGUAGE c WINDOW IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_quantile_score';
COMMENT ON FUNCTION crm.quantile_score(float8, int) IS
'Window function: score 1..buckets of value within its partition, 1 + floor(buckets * (number of non-NULL values strictly smaller) / (number of non-NULL values)). Highest values score highest, equal values share a score, NULL gives NULL. RFM: R = quantile_score(-days_since_last), F and M directly.';

-- ---- RFM segments ------------------------------------------------------------

CREATE TABLE crm.rfm_segment_overrides (
    r       int  NOT NULL CHECK (r BETWEEN 1 AND 5),
    f       int  NOT NULL CHECK (f BETWEEN 1 AND 5),
    segment text NOT NULL CHECK (segment <> ''),
    PRIMARY KEY (r, f)
);
COMMENT ON TABLE crm.rfm_segment_overrides IS
'User overrides of the RFM segment map: a row (r, f, segment) replaces the built-in segment of that R x F cell in crm.rfm_segment. Empty by default; kept by pg_dump.';
SELECT pg_catalog.pg_extension_config_dump('crm.rfm_segment_overrides', '');
-- read-only configuration that crm.rfm_segment (and so crm.rfm_report, the
-- view crm.rfm_segment_map and the dashboard's crm.v_rfm) reads with the
-- caller's rights: everyone may read it, only its owner edits it
GRANT SELECT ON crm.rfm_segment_overrides TO PUBLIC;

CREATE FUNCTION crm.rfm_segment_default(r int, f int) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_rfm_segment_default';
COMMENT ON FUNCTION crm.rfm_segment_default(int, int) IS
'The built-in 10-segment RFM map on the R x F grid (1..5 each), ignoring crm.rfm_segment_overrides.';

CREATE FUNCTION crm.rfm_segment(r int, f int) RETURNS text
LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_rfm_segment';
COMMENT ON FUNCTION crm.rfm_segment(int, int) IS
'RFM segment of the R x F cell (scores 1..5): the row of crm.rfm_segment_overrides for the cell if there is one, else the built-in map: R1-2/F1-2 Hibernating, R1-2/F3-4 At Risk, R1-2/F5 Can''t Lose Them, R3/F1-2 About To Sleep, R3/F3 Need Attention, R3-4/F4-5 Loyal Customers, R4/F1 Promising, R5/F1 New Customers, R4-5/F2-3 Potential Loyalists, R5/F4-5 Champions.';

CREATE VIEW crm.rfm_segment_map WITH (security_invoker = true) AS
SELECT r.r, f.f, crm.rfm_segment(r.r, f.f) AS segment,
       crm.rfm_segment(r.r, f.f) IS DISTINCT FROM crm.rfm_segment_default(r.r, f.f) AS overridden
  FROM pg_catalog.generate_series(1, 5) AS r(r)
 CROSS JOIN pg_catalog.generate_series(1, 5) AS f(f);
COMMENT ON VIEW crm.rfm_segment_map IS
'The RFM segment map in force: all 25 R x F cells, and whether a row of crm.rfm_segment_overrides changed the cell.';

-- ---- XYZ class and demand coefficient of variation ---------------------------

CREATE FUNCTION crm.xyz_class(cv float8, x float8 DEFAULT 0.10, y float8 DEFAULT 0.25)
RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_xyz_class';
COMMENT ON FUNCTION crm.xyz_class(float8, float8, float8) IS
'XYZ class of a coefficient of variation of demand: ''X'' if cv <= x, ''Y'' if cv <= y, else ''Z''; NULL cv (no positive mean demand) gives NULL.';

CREATE TYPE crm.demand_cv_state;

CREATE FUNCTION crm.demand_cv_state_in(cstring) RETURNS crm.demand_cv_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_demand_cv_state_in';
COMMENT ON FUNCTION crm.demand_cv_state_in(cstring) IS
'Input function of crm.demand_cv_state: "periods:sum1,...,sumN".';

CREATE FUNCTION crm.demand_cv_state_out(crm.demand_cv_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_demand_cv_state_out';
COMMENT ON FUNCTION crm.demand_cv_state_out(crm.demand_cv_state) IS
'Output function of crm.demand_cv_state: "periods:sum1,...,sumN" with shortest exact float8 sums.';

CREATE TYPE crm.demand_cv_state (
    INPUT = crm.demand_cv_state_in,
    OUTPUT = crm.demand_cv_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.demand_cv_state IS
'State of crm.demand_cv: the number of periods and the demand summed per period.';

CREATE FUNCTION crm.demand_cv_transfn(crm.demand_cv_state, float8, int, int)
RETURNS crm.demand_cv_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_demand_cv_transfn';
COMMENT ON FUNCTION crm.demand_cv_transfn(crm.demand_cv_state, float8, int, int) IS
'Transition function of crm.demand_cv: adds qty to its period.';

CREATE FUNCTION crm.demand_cv_combinefn(crm.demand_cv_state, crm.demand_cv_state)
RETURNS crm.demand_cv_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_demand_cv_combinefn';
COMMENT ON FUNCTION crm.demand_cv_combinefn(crm.demand_cv_state, crm.demand_cv_state) IS
'Combine function of crm.demand_cv: adds the per-period sums of two partial states.';

CREATE FUNCTION crm.demand_cv_finalfn(crm.demand_cv_state) RETURNS float8
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'classes_demand_cv_finalfn';
COMMENT ON FUNCTION crm.demand_cv_finalfn(crm.demand_cv_state) IS
'Final function of crm.demand_cv: population standard deviation / mean of the per-period sums; NULL when the mean is not positive.';

CREATE AGGREGATE crm.demand_cv(qty float8, period_no int, periods int) (
    SFUNC = crm.demand_cv_transfn,
    STYPE = crm.demand_cv_state,
    SSPACE = 160,
    COMBINEFUNC = crm.demand_cv_combinefn,
    FINALFUNC = crm.demand_cv_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.demand_cv(float8, int, int) IS
'Coefficient of variation of demand over periods 1..periods: qty summed per period_no, periods without rows count as 0; population standard deviation / mean; NULL when the mean is not positive. Rows with NULL qty or period_no are ignored.';

-- ---- report functions ----------------------------------------------------------

-- RFM per customer.  Both report functions execute the caller's inner query:
-- they pin no search_path (the inner query resolves with the caller's) and
-- schema-qualify everything they use themselves.
CREATE FUNCTION crm.rfm_report(orders_sql text, as_of timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE(customer text, recency_days int, frequency bigint, monetary numeric,
              r int, f int, m int, rfm_code text, segment text)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
AS $fn$
BEGIN
    IF orders_sql IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'orders_sql and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._check_inner_query('rfm_report', orders_sql,
        ARRAY['customer any', 'ordered_at timestamptz', 'amount numeric']);
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH per AS (
            SELECT i.customer AS key,
                   pg_catalog.floor(pg_catalog.date_part('epoch',
                       $1 OPERATOR(pg_catalog.-) pg_catalog.max(i.ordered_at::pg_catalog.timestamptz))
                       OPERATOR(pg_catalog./) 86400::pg_catalog.float8)::pg_catalog.int4 AS recency_days,
                   pg_catalog.count(*) AS frequency,
                   pg_catalog.sum(i.amount::pg_catalog.numeric) AS monetary
              FROM (%s) AS i(customer, ordered_at, amount)
             WHERE i.customer IS NOT NULL AND i.ordered_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<=) $1
             GROUP BY i.customer
        ), scored AS (
            SELECT per.*,
                   crm.quantile_score(OPERATOR(pg_catalog.-) per.recency_days::pg_catalog.float8) OVER () AS r,
                   crm.quantile_score(per.frequency::pg_catalog.float8) OVER () AS f,
                   crm.quantile_score(per.monetary::pg_catalog.float8) OVER () AS m
              FROM per
        )
        SELECT s.key::pg_catalog.text, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m,
               pg_catalog.concat(s.r, s.f, s.m), crm.rfm_segment(s.r, s.f)
          FROM scored AS s
         ORDER BY s.key
        $q$, orders_sql)
    USING as_of;
END
$fn$;
COMMENT ON FUNCTION crm.rfm_report(text, timestamptz) IS
'RFM per customer from an inner query (customer, ordered_at timestamptz, amount numeric), one row per order; orders after as_of are ignored. recency_days = whole days from the last order to as_of, frequency = orders, monetary = sum of amounts; R, F, M = crm.quantile_score(-recency_days), (frequency), (monetary) with 5 buckets; rfm_code = R||F||M; segment = crm.rfm_segment(R, F).';

-- ABC-XYZ per item.
CREATE FUNCTION crm.abc_xyz_report(sales_sql text, from_ts timestamptz, to_ts timestamptz,
                                   period text DEFAULT 'month',
                                   a float8 DEFAULT 0.80, b float8 DEFAULT 0.95,
                                   x float8 DEFAULT 0.10, y float8 DEFAULT 0.25)
RETURNS TABLE(item text, revenue numeric, share numeric, cumulative_share numeric, abc text,
              periods int, cv float8, xyz text, abc_xyz text)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
AS $fn$
DECLARE
    step interval;
    nperiods int;
BEGIN
    IF sales_sql IS NULL OR from_ts IS NULL OR to_ts IS NULL OR period IS NULL
       OR a IS NULL OR b IS NULL OR x IS NULL OR y IS NULL THEN
        RAISE EXCEPTION 'arguments must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    step := CASE WHEN period OPERATOR(pg_catalog.=) 'day' THEN '1 day'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'week' THEN '1 week'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'month' THEN '1 month'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'quarter' THEN '3 months'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'year' THEN '1 year'::pg_catalog.interval END;
    IF step IS NULL THEN
        RAISE EXCEPTION 'unknown period "%"', period
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use day, week, month, quarter or year.';
    END IF;
    IF NOT (pg_catalog.isfinite(from_ts) AND pg_catalog.isfinite(to_ts)) THEN
        RAISE EXCEPTION 'from_ts and to_ts must be finite'
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass real moments, e.g. ''2025-01-01'' and ''2026-01-01'', not infinity.';
    END IF;
    IF from_ts OPERATOR(pg_catalog.>=) to_ts THEN
        RAISE EXCEPTION 'from_ts (%) must be before to_ts (%)', from_ts, to_ts
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Swap the two moments.';
    END IF;
    -- at most 10000 periods (crm.demand_cv's limit), checked before the period
    -- series is generated: first roughly (a month counts 30 days), then exactly
    IF pg_catalog.date_part('epoch', to_ts OPERATOR(pg_catalog.-) pg_catalog.date_trunc(period, from_ts))
       OPERATOR(pg_catalog./) pg_catalog.date_part('epoch', step) OPERATOR(pg_catalog.>) 11000::pg_catalog.float8 THEN
        nperiods := NULL;
    ELSE
        SELECT pg_catalog.count(*) INTO nperiods
          FROM pg_catalog.generate_series(pg_catalog.date_trunc(period, from_ts),
                                          to_ts OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval, step);
    END IF;
    IF nperiods IS NULL OR nperiods OPERATOR(pg_catalog.>) 10000 THEN
        RAISE EXCEPTION '[%, %) holds more than 10000 periods of one %', from_ts, to_ts, period
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Use a shorter range or a longer period (weeks or months instead of days).';
    END IF;
    PERFORM crm._check_inner_query('abc_xyz_report', sales_sql,
        ARRAY['item any', 'sold_at timestamptz', 'quantity numeric', 'revenue numeric']);
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH p AS (
            SELECT g.s AS period_start, (pg_catalog.row_number() OVER (ORDER BY g.s))::pg_catalog.int4 AS period_no
              FROM pg_catalog.generate_series(pg_catalog.date_trunc($3, $1),
                                              $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval, $4) AS g(s)
        ), per AS (
            SELECT i.item AS key,
                   pg_catalog.sum(i.revenue::pg_catalog.numeric) AS revenue,
                   crm.demand_cv(i.quantity::pg_catalog.float8, p.period_no, $5) AS cv
              FROM (%s) AS i(item, sold_at, quantity, revenue)
              JOIN p ON p.period_start OPERATOR(pg_catalog.=) pg_catalog.date_trunc($3, i.sold_at::pg_catalog.timestamptz)
             WHERE i.item IS NOT NULL
               AND i.sold_at::pg_catalog.timestamptz OPERATOR(pg_catalog.>=) $1
               AND i.sold_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<) $2
             GROUP BY i.item
        ), cls AS (
            SELECT per.*,
                   crm.abc_class(per.revenue::pg_catalog.float8, $6, $7) OVER () AS abc,
                   pg_catalog.sum(per.revenue) FILTER (WHERE per.revenue OPERATOR(pg_catalog.>) 0::pg_catalog.numeric) OVER () AS total,
                   pg_catalog.sum(GREATEST(per.revenue, 0::pg_catalog.numeric))
                       OVER (ORDER BY per.revenue DESC NULLS LAST, per.key ROWS UNBOUNDED PRECEDING) AS running
              FROM per
        )
        SELECT c.key::pg_catalog.text, c.revenue,
               pg_catalog.round(c.revenue OPERATOR(pg_catalog./)
                                CASE WHEN c.total OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN c.total END, 6),
               pg_catalog.round(c.running OPERATOR(pg_catalog./)
                                CASE WHEN c.total OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN c.total END, 6),
               c.abc, $5, c.cv, crm.xyz_class(c.cv, $8, $9), c.abc OPERATOR(pg_catalog.||) crm.xyz_class(c.cv, $8, $9)
          FROM cls AS c
         ORDER BY c.revenue DESC NULLS LAST, c.key
        $q$, sales_sql)
    USING from_ts, to_ts, period, step, nperiods, a, b, x, y;
END
$fn$;
COMMENT ON FUNCTION crm.abc_xyz_report(text, timestamptz, timestamptz, text, float8, float8, float8, float8) IS
'ABC-XYZ per item from an inner query (item, sold_at timestamptz, quantity numeric, revenue numeric) over [from_ts, to_ts): revenue, share of the total, cumulative share (items by revenue descending), ABC class (crm.abc_class), the number of periods, the coefficient of variation of quantity per period with empty periods as 0 (crm.demand_cv), XYZ class (crm.xyz_class) and the 9-cell class (AX .. CZ).';

-- ==== src/clv.sql ====
-- clv.sql: lifetime value (docs/clv.md).
--   crm.clv_summary                 per-customer (frequency, recency, t, monetary), lifetimes conventions
--   crm.bgnbd_fit, crm.gamma_gamma_fit  maximum-likelihood fits in C on distinct patterns
--   crm.bgnbd_expected_purchases, crm.bgnbd_p_alive, crm.gamma_gamma_expected_value, crm.clv
--   crm.hyp2f1                      the Gaussian hypergeometric function the predictions use
--   crm.clv_simulate                customers drawn from known parameters (tests, benchmarks)
--   crm.historical_ltv              revenue per customer, churn-based lifespan, LTV (>= LTV to date), LTV/CAC

-- ---------------------------------------------------------------- result types
CREATE TYPE crm.clv_customer AS (
    frequency integer,
    recency double precision,
    t double precision,
    monetary numeric
);
COMMENT ON TYPE crm.clv_customer IS
'One customer''s summary for the CLV models: frequency = repeat purchase periods, recency = age at the last purchase, t = age at the end of observation (both in units), monetary = mean value of the repeat periods.';

CREATE TYPE crm.bgnbd_model AS (
    r double precision,
    alpha double precision,
    a double precision,
    b double precision,
    log_likelihood double precision,
    customers bigint,
    converged boolean,
    reason text
);
COMMENT ON TYPE crm.bgnbd_model IS
'A fitted BG/NBD model: purchase rate lambda ~ Gamma(r, alpha), dropout probability p ~ Beta(a, b); the maximised log-likelihood, the customers fitted, whether the fit converged and, when not, why.';

CREATE TYPE crm.gamma_gamma_model AS (
    p double precision,
    q double precision,
    gamma double precision,
    log_likelihood double precision,
    customers bigint,
    converged boolean,
    reason text
);
COMMENT ON TYPE crm.gamma_gamma_model IS
'A fitted Gamma-Gamma spend model: each purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma); the maximised log-likelihood, the repeat buyers fitted, whether the fit converged and, when not, why.';

-- ---------------------------------------------------------------- clv_summary
CREATE TYPE crm.clv_summary_state;
CREATE FUNCTION crm.clv_summary_state_in(cstring) RETURNS crm.clv_summary_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_state_in';
COMMENT ON FUNCTION crm.clv_summary_state_in(cstring) IS
'Input function of crm.clv_summary_state (validates every field).';
CREATE FUNCTION crm.clv_summary_state_out(crm.clv_summary_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_state_out';
COMMENT ON FUNCTION crm.clv_summary_state_out(crm.clv_summary_state) IS
'Output function of crm.clv_summary_state: "observation_end_us unit_us n" then "period amount" per row.';
CREATE TYPE crm.clv_summary_state (
    INPUT = crm.clv_summary_state_in,
    OUTPUT = crm.clv_summary_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.clv_summary_state IS
'Partial state of crm.clv_summary: the calibration parameters and the (period, amount) rows seen so far.';

CREATE FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz)
RETURNS crm.clv_summary_state
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_transfn';
COMMENT ON FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz) IS
'Transition function of crm.clv_summary (unit 1 day).';
CREATE FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz, interval)
RETURNS crm.clv_summary_state
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_transfn';
COMMENT ON FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz, interval) IS
'Transition function of crm.clv_summary.';
CREATE FUNCTION crm.clv_summary_combinefn(crm.clv_summary_state, crm.clv_summary_state)
RETURNS crm.clv_summary_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_combinefn';
COMMENT ON FUNCTION crm.clv_summary_combinefn(crm.clv_summary_state, crm.clv_summary_state) IS
'Combine function of crm.clv_summary: concatenates two partial states.';
CREATE FUNCTION crm.clv_summary_finalfn(crm.clv_summary_state) RETURNS crm.clv_customer
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_finalfn';
COMMENT ON FUNCTION crm.clv_summary_finalfn(crm.clv_summary_state) IS
'Final function of crm.clv_summary: frequency, recency, t, monetary.';

CREATE AGGREGATE crm.clv_summary(ts timestamptz, amount numeric, observation_end timestamptz) (
    SFUNC = crm.clv_summary_transfn,
    STYPE = crm.clv_summary_state,
    COMBINEFUNC = crm.clv_summary_combinefn,
    FINALFUNC = crm.clv_summary_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.clv_summary(timestamptz, numeric, timestamptz) IS
'Per-customer summary with the lifetimes conventions and unit 1 day: purchases counted per distinct calendar day up to observation_end, frequency = repeat days, recency and t in days, monetary = mean of the repeat days'' sums.';

CREATE AGGREGATE crm.clv_summary(ts timestamptz, amount numeric, observation_end timestamptz, unit interval) (
    SFUNC = crm.clv_summary_transfn,
    STYPE = crm.clv_summary_state,
    COMBINEFUNC = crm.clv_summary_combinefn,
    FINALFUNC = crm.clv_summary_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.clv_summary(timestamptz, numeric, timestamptz, interval) IS
'Per-customer summary with the lifetimes conventions: purchases counted per distinct period (the calendar day, or the unit when shorter than a day) up to observation_end; frequency = repeat periods, recency and t in units, monetary = mean of the repeat periods'' sums.';

-- ---------------------------------------------------------------- bgnbd_fit
CREATE TYPE crm.bgnbd_state;
CREATE FUNCTION crm.bgnbd_state_in(cstring) RETURNS crm.bgnbd_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_state_in';
COMMENT ON FUNCTION crm.bgnbd_state_in(cstring) IS
'Input function of crm.bgnbd_state (validates every pattern).';
CREATE FUNCTION crm.bgnbd_state_out(crm.bgnbd_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_state_out';
COMMENT ON FUNCTION crm.bgnbd_state_out(crm.bgnbd_state) IS
'Output function of crm.bgnbd_state: the pattern count, then "frequency recency t weight" per pattern.';
CREATE TYPE crm.bgnbd_state (
    INPUT = crm.bgnbd_state_in,
    OUTPUT = crm.bgnbd_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.bgnbd_state IS
'Partial state of crm.bgnbd_fit: distinct (frequency, recency, t) patterns with their customer counts.';

CREATE FUNCTION crm.bgnbd_transfn(crm.bgnbd_state, double precision, double precision, double precision)
RETURNS crm.bgnbd_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_transfn';
COMMENT ON FUNCTION crm.bgnbd_transfn(crm.bgnbd_state, double precision, double precision, double precision) IS
'Transition function of crm.bgnbd_fit: validates the row and adds its pattern.';
CREATE FUNCTION crm.bgnbd_combinefn(crm.bgnbd_state, crm.bgnbd_state) RETURNS crm.bgnbd_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_combinefn';
COMMENT ON FUNCTION crm.bgnbd_combinefn(crm.bgnbd_state, crm.bgnbd_state) IS
'Combine function of crm.bgnbd_fit: merges the patterns of two partial states.';
CREATE FUNCTION crm.bgnbd_finalfn(crm.bgnbd_state) RETURNS crm.bgnbd_model
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_finalfn';
COMMENT ON FUNCTION crm.bgnbd_finalfn(crm.bgnbd_state) IS
'Final function of crm.bgnbd_fit: maximum-likelihood fit (Nelder-Mead, then BFGS with the analytic gradient, in log-parameter space).';

CREATE AGGREGATE crm.bgnbd_fit(frequency double precision, recency double precision, t double precision) (
    SFUNC = crm.bgnbd_transfn,
    STYPE = crm.bgnbd_state,
    COMBINEFUNC = crm.bgnbd_combinefn,
    FINALFUNC = crm.bgnbd_finalfn,
    PARALLEL = SAFE,
    SSPACE = 65536
);
COMMENT ON AGGREGATE crm.bgnbd_fit(double precision, double precision, double precision) IS
'Fits the BG/NBD model (Fader, Hardie & Lee 2005) by maximum likelihood to one row per customer (frequency, recency, t); rows with a NULL are skipped.';

-- ---------------------------------------------------------------- gamma_gamma_fit
CREATE TYPE crm.gamma_gamma_state;
CREATE FUNCTION crm.gamma_gamma_state_in(cstring) RETURNS crm.gamma_gamma_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_state_in';
COMMENT ON FUNCTION crm.gamma_gamma_state_in(cstring) IS
'Input function of crm.gamma_gamma_state (validates every pattern).';
CREATE FUNCTION crm.gamma_gamma_state_out(crm.gamma_gamma_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_state_out';
COMMENT ON FUNCTION crm.gamma_gamma_state_out(crm.gamma_gamma_state) IS
'Output function of crm.gamma_gamma_state: the pattern count, then "frequency monetary weight" per pattern.';
CREATE TYPE crm.gamma_gamma_state (
    INPUT = crm.gamma_gamma_state_in,
    OUTPUT = crm.gamma_gamma_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.gamma_gamma_state IS
'Partial state of crm.gamma_gamma_fit: distinct (frequency, monetary) patterns of repeat buyers with their customer counts.';

CREATE FUNCTION crm.gamma_gamma_transfn(crm.gamma_gamma_state, double precision, double precision)
RETURNS crm.gamma_gamma_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_transfn';
COMMENT ON FUNCTION crm.gamma_gamma_transfn(crm.gamma_gamma_state, double precision, double precision) IS
'Transition function of crm.gamma_gamma_fit: validates the row and adds its pattern (frequency 0 skipped).';
CREATE FUNCTION crm.gamma_gamma_combinefn(crm.gamma_gamma_state, crm.gamma_gamma_state) RETURNS crm.gamma_gamma_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_combinefn';
COMMENT ON FUNCTION crm.gamma_gamma_combinefn(crm.gamma_gamma_state, crm.gamma_gamma_state) IS
'Combine function of crm.gamma_gamma_fit: merges the patterns of two partial states.';
CREATE FUNCTION crm.gamma_gamma_finalfn(crm.gamma_gamma_state) RETURNS crm.gamma_gamma_model
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_finalfn';
COMMENT ON FUNCTION crm.gamma_gamma_finalfn(crm.gamma_gamma_state) IS
'Final function of crm.gamma_gamma_fit: maximum-likelihood fit in log-parameter space.';

CREATE AGGREGATE crm.gamma_gamma_fit(frequency double precision, monetary double precision) (
    SFUNC = crm.gamma_gamma_transfn,
    STYPE = crm.gamma_gamma_state,
    COMBINEFUNC = crm.gamma_gamma_combinefn,
    FINALFUNC = crm.gamma_gamma_finalfn,
    PARALLEL = SAFE,
    SSPACE = 65536
);
COMMENT ON AGGREGATE crm.gamma_gamma_fit(double precision, double precision) IS
'Fits the Gamma-Gamma spend model (Fader & Hardie note 025) by maximum likelihood to one row per customer (frequency, monetary = mean repeat spend); customers with frequency 0 and rows with a NULL are skipped.';

-- ---------------------------------------------------------------- predictions
CREATE FUNCTION crm.bgnbd_expected_purchases(model crm.bgnbd_model, horizon double precision,
    frequency double precision, recency double precision, t double precision)
RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_expected_purchases';
COMMENT ON FUNCTION crm.bgnbd_expected_purchases(crm.bgnbd_model, double precision, double precision, double precision, double precision) IS
'Expected number of purchases in the next horizon units of a customer with (frequency, recency, t), BG/NBD conditional expectation (FHL 2005 eq. 10).';

CREATE FUNCTION crm.bgnbd_p_alive(model crm.bgnbd_model, frequency double precision,
    recency double precision, t double precision)
RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_p_alive';
COMMENT ON FUNCTION crm.bgnbd_p_alive(crm.bgnbd_model, double precision, double precision, double precision) IS
'Probability that a customer with (frequency, recency, t) is still active under the BG/NBD model (1 for frequency 0).';

CREATE FUNCTION crm.gamma_gamma_expected_value(model crm.gamma_gamma_model, frequency double precision,
    monetary double precision)
RETURNS numeric
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_expected_value';
COMMENT ON FUNCTION crm.gamma_gamma_expected_value(crm.gamma_gamma_model, double precision, double precision) IS
'Expected value of a customer''s future purchase under the Gamma-Gamma model: p(gamma + x m)/(p x + q - 1); the population mean p gamma/(q - 1) for frequency 0. Undefined (an error) when q <= 1.';

CREATE FUNCTION crm.clv(bgnbd crm.bgnbd_model, gamma_gamma crm.gamma_gamma_model,
    frequency double precision, recency double precision, t double precision, monetary double precision,
    unit interval, months integer DEFAULT 12, monthly_discount_rate double precision DEFAULT 0.01)
RETURNS numeric
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_clv';
COMMENT ON FUNCTION crm.clv(crm.bgnbd_model, crm.gamma_gamma_model, double precision, double precision, double precision, double precision, interval, integer, double precision) IS
'Predicted, discounted customer lifetime value over the next months: sum over month k of expected spend x expected purchases in month k / (1 + monthly_discount_rate)^k; unit is the time unit of frequency/recency/t (the unit given to clv_summary), a month being 365.25/12 days.';

CREATE FUNCTION crm.hyp2f1(a double precision, b double precision, c double precision, z double precision)
RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_hyp2f1';
COMMENT ON FUNCTION crm.hyp2f1(double precision, double precision, double precision, double precision) IS
'Gaussian hypergeometric function 2F1(a, b; c; z) for z < 1 (Gauss series; 1 - z connection formula for z > 0.75; Pfaff transformation for z < 0).';

CREATE FUNCTION crm.clv_simulate(r double precision, alpha double precision, a double precision, b double precision,
    p double precision, q double precision, gamma double precision,
    customers bigint, max_t double precision, seed bigint DEFAULT 42)
RETURNS TABLE(customer_id bigint, t_purchase double precision, t_end double precision, amount double precision)
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE ROWS 3000 AS 'MODULE_PATHNAME', 'clv_simulate';
COMMENT ON FUNCTION crm.clv_simulate(double precision, double precision, double precision, double precision, double precision, double precision, double precision, bigint, double precision, bigint) IS
'Synthetic purchases drawn from known BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) parameters: one row per purchase (the first at time 0) of each customer, observed until t_end ~ Uniform(0, max_t); deterministic for a seed.';

-- ---------------------------------------------------------------- historical LTV
CREATE FUNCTION crm.historical_ltv(orders_sql text, spend_sql text DEFAULT NULL, margin numeric DEFAULT 1)
RETURNS TABLE(customers bigint, orders bigint, revenue numeric, revenue_per_customer numeric,
              aov numeric, purchase_frequency numeric, lifespan_years numeric, gross_margin numeric,
              ltv numeric, spend numeric, cac numeric, ltv_to_cac numeric, cac_payback_months numeric,
              annual_churn numeric, ltv_to_date numeric)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No SET search_path: the inner queries are the caller's SQL and resolve with
-- the caller's search_path; everything used here is schema-qualified.
AS $fn$
DECLARE
    ncols int;
    orders_cols text;
    cost_expr text;
    spend_expr text;
BEGIN
    IF margin IS NULL OR margin OPERATOR(pg_catalog.<) 0::pg_catalog.numeric OR margin OPERATOR(pg_catalog.>) 1::pg_catalog.numeric THEN
        RAISE EXCEPTION 'margin must be between 0 and 1, got %', margin
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the gross margin as a fraction, e.g. 0.4 for 40%, or add a cost column to the orders query.';
    END IF;
    ncols := crm._check_inner_query('crm.historical_ltv', orders_sql,
                 ARRAY['customer any', 'ts timestamptz', 'amount numeric', 'cost numeric?']);
    orders_cols := CASE WHEN ncols OPERATOR(pg_catalog.>=) 4 THEN 'customer, ts, amount, cost' ELSE 'customer, ts, amount' END;
    cost_expr := CASE WHEN ncols OPERATOR(pg_catalog.>=) 4 THEN 'o.cost::pg_catalog.numeric' ELSE 'NULL::pg_catalog.numeric' END;
    IF spend_sql IS NOT NULL THEN
        PERFORM crm._check_inner_query('crm.historical_ltv', spend_sql, ARRAY['ts timestamptz', 'amount numeric']);
        spend_expr := pg_catalog.format(
            '(SELECT pg_catalog.sum(s.amount::pg_catalog.numeric) FROM (%s) AS s(ts, amount))', spend_sql);
    ELSE
        spend_expr := 'NULL::pg_catalog.numeric';
    END IF;
    -- Years are counted back from the last order: year 0 holds the last 365.25
    -- days, year 1 the 365.25 days before, and so on.  Annual churn is the share
    -- of the customers who ordered in a year who did not order in the next one,
    -- pooled over every pair of consecutive years; the expected lifetime is
    -- 1 / churn years.  LTV is the larger of the gross profit per customer to
    -- date and the gross profit per active customer-year x expected lifetime.
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH o AS (
            SELECT o.customer, o.ts::pg_catalog.timestamptz AS ts, o.amount::pg_catalog.numeric AS amount, %3$s AS cost
              FROM (%1$s) AS o(%2$s)
             WHERE o.ts IS NOT NULL AND o.amount IS NOT NULL
        ), tot AS (
            SELECT pg_catalog.count(*) AS orders, pg_catalog.sum(o.amount) AS revenue, pg_catalog.sum(o.cost) AS cost,
                   pg_catalog.max(o.ts) AS last_ts,
                   (EXTRACT(epoch FROM pg_catalog.max(o.ts) OPERATOR(pg_catalog.-) pg_catalog.min(o.ts))
                        OPERATOR(pg_catalog./) 86400::pg_catalog.numeric) OPERATOR(pg_catalog./) 365.25 AS span
              FROM o
        ), act AS (   -- one row per customer and year (0 = the last 365.25 days) with an order
            SELECT DISTINCT o.customer,
                   pg_catalog.floor((EXTRACT(epoch FROM tot.last_ts OPERATOR(pg_catalog.-) o.ts)
                                     OPERATOR(pg_catalog./) 86400::pg_catalog.numeric) OPERATOR(pg_catalog./) 365.25) AS yr
              FROM o, tot
        ), ch AS (
            SELECT pg_catalog.count(*) AS active_years,
                   pg_catalog.count(*) FILTER (WHERE a.yr OPERATOR(pg_catalog.>) 0::pg_catalog.numeric) AS at_risk,
                   pg_catalog.count(*) FILTER (WHERE a.yr OPERATOR(pg_catalog.>) 0::pg_catalog.numeric AND NOT EXISTS (
                       SELECT FROM act AS n WHERE n.customer OPERATOR(pg_catalog.=) a.customer
                                              AND n.yr OPERATOR(pg_catalog.=) (a.yr OPERATOR(pg_catalog.-) 1::pg_catalog.numeric))) AS lost
              FROM act AS a
        ), cust AS (
            SELECT pg_catalog.count(DISTINCT o.customer) AS customers FROM o
        ), m AS (
            SELECT cust.customers::pg_catalog.numeric AS customers, tot.orders::pg_catalog.numeric AS orders,
                   tot.revenue, tot.span, ch.active_years::pg_catalog.numeric AS active_years,
                   ch.lost::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN ch.at_risk OPERATOR(pg_catalog.<>) 0 THEN ch.at_risk::pg_catalog.numeric END AS churn,
                   CASE WHEN tot.cost IS NOT NULL AND tot.revenue OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric
                        THEN (tot.revenue OPERATOR(pg_catalog.-) tot.cost) OPERATOR(pg_catalog./) tot.revenue ELSE $1 END AS gm,
                   %4$s AS spend
              FROM tot, cust, ch
        ), z AS (   -- the divisors, NULL where 0
            SELECT m.*,
                   CASE WHEN m.customers OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.customers END AS customers_nz,
                   CASE WHEN m.orders OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.orders END AS orders_nz,
                   CASE WHEN m.span OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.span END AS span_nz,
                   CASE WHEN m.active_years OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.active_years END AS active_years_nz,
                   CASE WHEN m.churn OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.churn END AS churn_nz
              FROM m
        ), k AS (
            SELECT z.*, z.revenue OPERATOR(pg_catalog./) z.customers_nz AS rpc, z.revenue OPERATOR(pg_catalog./) z.orders_nz AS aov,
                   (z.orders OPERATOR(pg_catalog./) z.customers_nz) OPERATOR(pg_catalog./) z.span_nz AS pf,
                   1::pg_catalog.numeric OPERATOR(pg_catalog./) z.churn_nz AS lifespan,
                   (z.revenue OPERATOR(pg_catalog.*) z.gm) OPERATOR(pg_catalog./) z.customers_nz AS to_date,
                   (z.revenue OPERATOR(pg_catalog.*) z.gm) OPERATOR(pg_catalog./) z.active_years_nz AS gp_year,
                   z.spend OPERATOR(pg_catalog./) z.customers_nz AS cac
              FROM z
        ), v AS (
            SELECT k.*,
                   pg_catalog.numeric_larger(k.to_date, COALESCE(k.gp_year OPERATOR(pg_catalog.*) k.lifespan, k.to_date)) AS ltv,
                   -- gross profit per customer per month
                   ((k.revenue OPERATOR(pg_catalog.*) k.gm) OPERATOR(pg_catalog./) k.customers_nz)
                       OPERATOR(pg_catalog./) (k.span_nz OPERATOR(pg_catalog.*) 12::pg_catalog.numeric) AS gp_month
              FROM k
        )
        SELECT v.customers::pg_catalog.int8, v.orders::pg_catalog.int8, v.revenue, pg_catalog.round(v.rpc, 2), pg_catalog.round(v.aov, 2),
               pg_catalog.round(v.pf, 4), pg_catalog.round(v.lifespan, 4), pg_catalog.round(v.gm, 4),
               pg_catalog.round(v.ltv, 2), v.spend, pg_catalog.round(v.cac, 2),
               pg_catalog.round(v.ltv OPERATOR(pg_catalog./) CASE WHEN v.cac OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN v.cac END, 4),
               pg_catalog.round(v.cac OPERATOR(pg_catalog./) CASE WHEN v.gp_month OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN v.gp_month END, 2),
               pg_catalog.round(v.churn, 4), pg_catalog.round(v.to_date, 2)
          FROM v
    $q$, orders_sql, orders_cols, cost_expr, spend_expr) USING margin;
END
$fn$;
COMMENT ON FUNCTION crm.historical_ltv(text, text, numeric) IS
'Historical customer value from an orders inner query (customer, ts, amount [, cost]) and an optional marketing-spend inner query (ts, amount): revenue per customer, AOV, purchase frequency (orders per customer per year of the observed span), gross margin (from cost, else the margin argument), annual churn (share of the customers with an order in a year, counted back from the last order, without an order in the next year), expected lifespan = 1 / annual churn years, LTV to date = gross profit per customer, LTV = the larger of LTV to date and gross profit per active customer-year x lifespan, CAC = spend / customers, LTV/CAC and CAC payback in months.';

-- ==== src/coverage.sql ====
-- coverage.sql: contact coverage per customer class and lead first-response SLA
-- (docs/coverage.md).  The engine is C: the triggers in src/coverage.c,
-- src/coverage_change.c, src/coverage_settings.c and src/pg_heap_update.c (see
-- src/coverage.h), the median interval aggregate in src/median_interval.c;
-- this file holds the tables, the catalog glue and the report functions.

-- ---------------------------------------------------------------------------
-- crm.median_interval(ts): a customer's median interval between purchases
-- ---------------------------------------------------------------------------
CREATE TYPE crm.median_interval_state;

CREATE FUNCTION crm.median_interval_state_in(cstring) RETURNS crm.median_interval_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_state_in';
COMMENT ON FUNCTION crm.median_interval_state_in(cstring) IS
'Input function of crm.median_interval_state: "count:v1,v2,..." (timestamps in microseconds since 2000-01-01 UTC).';

CREATE FUNCTION crm.median_interval_state_out(crm.median_interval_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_state_out';
COMMENT ON FUNCTION crm.median_interval_state_out(crm.median_interval_state) IS
'Output function of crm.median_interval_state: "count:v1,v2,...", exact (round-trips through the input function).';

CREATE TYPE crm.median_interval_state (
    INPUT = crm.median_interval_state_in,
    OUTPUT = crm.median_interval_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.median_interval_state IS
'Partial state of crm.median_interval: the purchase timestamps seen so far.';

CREATE FUNCTION crm.median_interval_transfn(crm.median_interval_state, timestamptz)
RETURNS crm.median_interval_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_transfn';
COMMENT ON FUNCTION crm.median_interval_transfn(crm.median_interval_state, timestamptz) IS
'Transition function of crm.median_interval: appends the timestamp in place (NULL and infinite timestamps are skipped).';

CREATE FUNCTION crm.median_interval_combinefn(crm.median_interval_state, crm.median_interval_state)
RETURNS crm.median_interval_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_combinefn';
COMMENT ON FUNCTION crm.median_interval_combinefn(crm.median_interval_state, crm.median_interval_state) IS
'Combine function of crm.median_interval: appends the timestamps of the second state to the first.';

CREATE FUNCTION crm.median_interval_finalfn(crm.median_interval_state) RETURNS interval
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_finalfn';
COMMENT ON FUNCTION crm.median_interval_finalfn(crm.median_interval_state) IS
'Final function of crm.median_interval: the median gap between consecutive distinct timestamps.';

CREATE AGGREGATE crm.median_interval(timestamptz) (
    SFUNC = crm.median_interval_transfn,
    STYPE = crm.median_interval_state,
    FINALFUNC = crm.median_interval_finalfn,
    COMBINEFUNC = crm.median_interval_combinefn,
    SSPACE = 256,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.median_interval(timestamptz) IS
'A customer''s purchase cycle: the median interval between consecutive distinct purchase timestamps (mean of the two middle gaps when their number is even); NULL with fewer than two distinct purchases.';

-- ---------------------------------------------------------------------------
-- Policy, configuration and the coverage table
-- ---------------------------------------------------------------------------
CREATE TABLE crm.coverage_policy (
    class        text PRIMARY KEY,
    max_interval interval NOT NULL,
    due_soon     interval NOT NULL DEFAULT interval '7 days',
    basis        text NOT NULL DEFAULT 'fixed',
    CONSTRAINT coverage_policy_class_not_empty CHECK (class <> ''),
    CONSTRAINT coverage_policy_interval_positive CHECK (max_interval > interval '0'),
    CONSTRAINT coverage_policy_due_soon_valid CHECK (due_soon >= interval '0' AND due_soon < max_interval),
    CONSTRAINT coverage_policy_basis_valid CHECK (basis IN ('fixed', 'purchase_cycle')),
    min_interval interval,
    CONSTRAINT coverage_policy_min_interval_valid CHECK (min_interval > interval '0')
);
COMMENT ON TABLE crm.coverage_policy IS
'Contact coverage policy per customer class: contact at least every max_interval; due soon within due_soon before the due date; basis = fixed (the expert approach) or purchase_cycle (the customer''s own median interval between purchases, clamped to [min_interval, max_interval]; max_interval when unknown).';
COMMENT ON COLUMN crm.coverage_policy.min_interval IS
'Lower bound of a purchase-cycle interval: a customer who buys more often is still contacted at most every min_interval.  NULL = no lower bound; max_interval wins over a larger min_interval.  Ignored by basis fixed.';

INSERT INTO crm.coverage_policy (class, max_interval, due_soon, basis, min_interval) VALUES
    ('A', interval '1 month',  interval '7 days',  'fixed', interval '14 days'),
    ('B', interval '3 months', interval '14 days', 'fixed', interval '1 month'),
    ('C', interval '6 months', interval '30 days', 'fixed', interval '2 months');

-- The contact interval of a customer: the one definition of how the expert
-- cadence and the purchase cycle combine.
CREATE FUNCTION crm._coverage_interval(basis text, purchase_cycle interval, min_interval interval, max_interval interval)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN basis = 'purchase_cycle' AND purchase_cycle IS NOT NULL
            THEN least(greatest(purchase_cycle, coalesce(min_interval, purchase_cycle)), max_interval)
            ELSE max_interval END
$$;
COMMENT ON FUNCTION crm._coverage_interval(text, interval, interval, interval) IS
'A customer''s contact interval: max_interval for basis fixed or an unknown purchase cycle; otherwise the purchase cycle clamped to [min_interval, max_interval] (no lower bound when min_interval is NULL; max_interval wins when min_interval is larger).';

CREATE TABLE crm.coverage_config (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    interactions       regclass NOT NULL,
    customer_column    name NOT NULL,
    time_column        name NOT NULL,
    kind_column        name,
    counted_kinds      text[],
    direction_column   name,
    counted_directions text[],
    automated_column   name,
    customers          regclass,
    customer_key_column name,
    class_column       name,
    manager_column     name,
    since_column       name,
    classes_sql        text,
    purchases_sql      text,
    unknown_customers  text NOT NULL,
    attached_at        timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE crm.coverage_config IS
'How crm.attach_coverage attached coverage tracking (one row): the interactions table and which interactions count, where classes, managers and purchase cycles come from.';

CREATE TABLE crm.coverage (
    customer_id      bigint PRIMARY KEY,
    class            text,          -- a class of crm.coverage_policy (checked when set) or NULL
    manager_id       bigint,
    customer_since   timestamptz,
    purchase_cycle   interval,
    contact_interval interval,
    due_soon         interval,
    last_contact     timestamptz,
    contacts         bigint NOT NULL DEFAULT 0,
    next_due         timestamptz
) WITH (fillfactor = 80);
COMMENT ON TABLE crm.coverage IS
'One row per customer, kept current by crm.coverage_trigger: class, manager, last counted contact, contacts counted, the interval that applies and the next due date (last contact, or customer since, plus the interval).';

SELECT pg_catalog.pg_extension_config_dump('crm.coverage_policy', '');
SELECT pg_catalog.pg_extension_config_dump('crm.coverage_config', '');
SELECT pg_catalog.pg_extension_config_dump('crm.coverage', '');

-- Policy rows are validated with clear errors, and an INSERT of an existing
-- class updates it: the default rows A, B, C exist after CREATE EXTENSION, so
-- this is what lets pg_dump's COPY of an edited policy table restore.
CREATE FUNCTION crm._coverage_policy_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT count(*) INTO n FROM crm.coverage c WHERE c.class = OLD.class;
        IF n > 0 THEN
            RAISE EXCEPTION 'coverage class "%" is still used by % customers', OLD.class, n
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'Reclassify them first (crm.coverage_set_classes or the class column and crm.coverage_rebuild()).';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.class IS NULL OR NEW.class = '' THEN
        RAISE EXCEPTION 'coverage class must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.max_interval IS NULL OR NEW.max_interval <= interval '0' THEN
        RAISE EXCEPTION 'max_interval of coverage class "%" must be positive, got %', NEW.class, NEW.max_interval
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use an interval such as ''1 month'' or ''90 days''.';
    END IF;
    IF NEW.due_soon IS NULL OR NEW.due_soon < interval '0' OR NEW.due_soon >= NEW.max_interval THEN
        RAISE EXCEPTION 'due_soon of coverage class "%" must be at least 0 and shorter than max_interval %, got %',
                        NEW.class, NEW.max_interval, NEW.due_soon
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.basis IS NULL OR NEW.basis NOT IN ('fixed', 'purchase_cycle') THEN
        RAISE EXCEPTION 'basis of coverage class "%" must be fixed or purchase_cycle, got %', NEW.class, NEW.basis
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.min_interval <= interval '0' THEN
        RAISE EXCEPTION 'min_interval of coverage class "%" must be positive, got %', NEW.class, NEW.min_interval
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NULL for no lower bound.';
    END IF;
    IF TG_OP = 'INSERT' AND EXISTS (SELECT 1 FROM crm.coverage_policy p WHERE p.class = NEW.class) THEN
        UPDATE crm.coverage_policy p
           SET max_interval = NEW.max_interval, due_soon = NEW.due_soon, basis = NEW.basis, min_interval = NEW.min_interval
         WHERE p.class = NEW.class;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.class <> OLD.class THEN
        UPDATE crm.coverage c SET class = NEW.class WHERE c.class = OLD.class;   -- a renamed class keeps its customers
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION crm._coverage_policy_check() IS
'Trigger on crm.coverage_policy: validates a row (positive interval, due-soon window, basis, purchase-cycle lower bound), turns an INSERT of an existing class into an update (so a dumped policy restores over the defaults), carries a renamed class over to its customers and refuses to delete a class still in use.';

CREATE TRIGGER coverage_policy_check BEFORE INSERT OR UPDATE OR DELETE ON crm.coverage_policy
FOR EACH ROW EXECUTE FUNCTION crm._coverage_policy_check();

-- Recompute every customer's interval, due-soon window and next due date
-- from the policy (after a policy edit, a class or purchase cycle refresh).
CREATE FUNCTION crm._coverage_apply_policy() RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    m bigint;
BEGIN
    UPDATE crm.coverage c
       SET contact_interval = crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval),
           due_soon = p.due_soon,
           next_due = coalesce(c.last_contact, c.customer_since)
                      + crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval)
      FROM crm.coverage_policy p
     WHERE p.class = c.class
       AND (c.contact_interval IS DISTINCT FROM crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval)
            OR c.due_soon IS DISTINCT FROM p.due_soon
            OR c.next_due IS DISTINCT FROM coalesce(c.last_contact, c.customer_since)
                                           + crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval));
    GET DIAGNOSTICS n = ROW_COUNT;
    -- unclassified customers have no interval and no due date
    UPDATE crm.coverage c
       SET contact_interval = NULL, due_soon = NULL, next_due = NULL
     WHERE (c.class IS NULL OR NOT EXISTS (SELECT 1 FROM crm.coverage_policy p WHERE p.class = c.class))
       AND (c.contact_interval IS NOT NULL OR c.due_soon IS NOT NULL OR c.next_due IS NOT NULL);
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._coverage_apply_policy() IS
'Recomputes contact_interval, due_soon and next_due of every coverage row from crm.coverage_policy; returns the rows changed.';

CREATE FUNCTION crm._coverage_policy_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._coverage_apply_policy();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION crm._coverage_policy_changed() IS
'Statement trigger on crm.coverage_policy: an edited policy applies to every customer at once.';

CREATE TRIGGER coverage_policy_changed AFTER INSERT OR UPDATE OR DELETE ON crm.coverage_policy
FOR EACH STATEMENT EXECUTE FUNCTION crm._coverage_policy_changed();

-- ---------------------------------------------------------------------------
-- The trigger and attaching it
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.coverage_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_trigger';
COMMENT ON FUNCTION crm.coverage_trigger() IS
'AFTER INSERT FOR EACH STATEMENT trigger (with a NEW TABLE transition table) that crm.attach_coverage installs on the interactions table: applies the counted interactions to crm.coverage per customer, never moving last_contact backwards.';

CREATE FUNCTION crm.coverage_change_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_change_trigger';
COMMENT ON FUNCTION crm.coverage_change_trigger() IS
'AFTER UPDATE / AFTER DELETE FOR EACH STATEMENT trigger (OLD TABLE, and NEW TABLE for UPDATE) that crm.attach_coverage installs on the interactions table: recomputes the crm.coverage rows of every customer whose counted interactions changed (old and new customer of an updated row, customer of a deleted row) from the interactions table, as crm.coverage_rebuild() would.';

CREATE FUNCTION crm.coverage_truncate_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_truncate_trigger';
COMMENT ON FUNCTION crm.coverage_truncate_trigger() IS
'AFTER TRUNCATE FOR EACH STATEMENT trigger that crm.attach_coverage installs on the interactions table: runs crm.coverage_rebuild() (no counted contact is left).';

-- type of column col of rel, or a clear error
CREATE FUNCTION crm._coverage_column_type(rel regclass, col name, what text) RETURNS regtype
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regtype;
BEGIN
    SELECT a.atttypid::regtype INTO t
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF t IS NULL THEN
        RAISE EXCEPTION '% column "%" does not exist in table %', what, col, rel
            USING ERRCODE = 'undefined_column',
                  HINT = format('Name the column with %s_column => ''...''%s.', what,
                                CASE WHEN what IN ('kind', 'direction', 'automated', 'manager', 'since', 'class')
                                     THEN format(', or pass %s_column => NULL', what) ELSE '' END);
    END IF;
    SELECT coalesce(NULLIF(typ.typbasetype, 0), typ.oid)::regtype INTO t FROM pg_type typ WHERE typ.oid = t;
    RETURN t;
END
$$;
COMMENT ON FUNCTION crm._coverage_column_type(regclass, name, text) IS
'Base type of a column of a table, or an error naming the missing column (used by crm.attach_coverage).';

CREATE FUNCTION crm._coverage_require_type(rel regclass, col name, what text, allowed regtype[], expected text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regtype := crm._coverage_column_type(rel, col, what);
BEGIN
    IF NOT t = ANY (allowed) THEN
        RAISE EXCEPTION '% column "%" of table % has type %, expected %', what, col, rel, t, expected
            USING ERRCODE = 'datatype_mismatch';
    END IF;
END
$$;
COMMENT ON FUNCTION crm._coverage_require_type(regclass, name, text, regtype[], text) IS
'Checks that a column exists and has one of the allowed types (used by crm.attach_coverage).';

-- the three triggers on the interactions table, with the configuration as arguments
CREATE FUNCTION crm._coverage_create_triggers(cfg crm.coverage_config) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := format('%L, %L, %L, %L, %L, %L, %L, %L',
                        cfg.customer_column, cfg.time_column,
                        coalesce(cfg.kind_column, ''), coalesce(cfg.counted_kinds::text, ''),
                        coalesce(cfg.direction_column, ''), coalesce(cfg.counted_directions::text, ''),
                        coalesce(cfg.automated_column, ''), cfg.unknown_customers);
BEGIN
    EXECUTE format('CREATE TRIGGER crm_coverage AFTER INSERT ON %s REFERENCING NEW TABLE AS crm_coverage_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS crm_coverage_old NEW TABLE AS crm_coverage_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_change_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS crm_coverage_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_change_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_truncate_trigger()', cfg.interactions);
END
$$;
COMMENT ON FUNCTION crm._coverage_create_triggers(crm.coverage_config) IS
'Creates the coverage triggers crm_coverage (INSERT), crm_coverage_update, crm_coverage_delete and crm_coverage_truncate on the configured interactions table (used by crm.attach_coverage).';

CREATE FUNCTION crm._coverage_drop_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t name;
BEGIN
    FOR t IN SELECT g.tgname FROM pg_trigger g
              WHERE g.tgrelid = rel AND g.tgname IN ('crm_coverage', 'crm_coverage_update', 'crm_coverage_delete', 'crm_coverage_truncate')
              ORDER BY 1 LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, rel);
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._coverage_drop_triggers(regclass) IS
'Drops whichever coverage triggers exist on a table (used by crm.attach_coverage and crm.detach_coverage).';

CREATE FUNCTION crm.attach_coverage(
    interactions       regclass,
    customers          regclass DEFAULT NULL,
    class_column       name DEFAULT NULL,
    customer_column    name DEFAULT 'customer_id',
    time_column        name DEFAULT 'occurred_at',
    kind_column        name DEFAULT 'kind',
    counted_kinds      text[] DEFAULT '{call,meeting,email}',
    direction_column   name DEFAULT 'direction',
    counted_directions text[] DEFAULT NULL,
    automated_column   name DEFAULT 'automated',
    manager_column     name DEFAULT 'manager_id',
    since_column       name DEFAULT 'created_at',
    unknown_customers  text DEFAULT 'insert',
    customer_key_column name DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ints constant regtype[] := ARRAY['smallint', 'integer', 'bigint']::regtype[];
    times constant regtype[] := ARRAY['timestamptz', 'timestamp', 'date']::regtype[];
    old crm.coverage_config;
    relkind "char";
BEGIN
    IF interactions IS NULL THEN
        RAISE EXCEPTION 'interactions table must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF customer_column IS NULL OR time_column IS NULL THEN
        RAISE EXCEPTION 'customer_column and time_column must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO old FROM crm.coverage_config;
    IF FOUND AND old.interactions <> interactions
       AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = old.interactions) THEN
        RAISE EXCEPTION 'coverage is already attached to %', old.interactions
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.detach_coverage() first.';
    END IF;
    SELECT c.relkind INTO relkind FROM pg_class c WHERE c.oid = interactions;
    IF relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', interactions
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Attach coverage to the table that interactions are inserted into.';
    END IF;
    IF unknown_customers IS NULL OR unknown_customers NOT IN ('insert', 'ignore', 'error') THEN
        RAISE EXCEPTION 'unknown_customers must be insert, ignore or error, got %', coalesce(unknown_customers, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF counted_kinds = '{}' OR counted_directions = '{}' THEN
        RAISE EXCEPTION 'counted_kinds and counted_directions must not be empty arrays'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL to count every kind or direction.';
    END IF;
    IF array_position(counted_kinds, NULL) IS NOT NULL OR array_position(counted_directions, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'counted_kinds and counted_directions must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    PERFORM crm._coverage_require_type(interactions, customer_column, 'customer', ints, 'smallint, integer or bigint');
    PERFORM crm._coverage_require_type(interactions, time_column, 'time', times, 'timestamptz, timestamp or date');
    IF kind_column IS NOT NULL THEN
        PERFORM crm._coverage_column_type(interactions, kind_column, 'kind');
    ELSIF counted_kinds IS NOT NULL THEN
        counted_kinds := NULL;
    END IF;
    IF direction_column IS NOT NULL THEN
        PERFORM crm._coverage_column_type(interactions, direction_column, 'direction');
    END IF;
    IF automated_column IS NOT NULL THEN
        PERFORM crm._coverage_require_type(interactions, automated_column, 'automated', ARRAY['boolean']::regtype[], 'boolean');
    END IF;
    IF customers IS NOT NULL THEN
        customer_key_column := coalesce(customer_key_column, customer_column);
        PERFORM crm._coverage_require_type(customers, customer_key_column, 'customer_key', ints, 'smallint, integer or bigint');
        IF class_column IS NOT NULL THEN
            PERFORM crm._coverage_column_type(customers, class_column, 'class');
        END IF;
        IF manager_column IS NOT NULL THEN
            PERFORM crm._coverage_require_type(customers, manager_column, 'manager', ints, 'smallint, integer or bigint');
        END IF;
        IF since_column IS NOT NULL THEN
            PERFORM crm._coverage_require_type(customers, since_column, 'since', times, 'timestamptz, timestamp or date');
        END IF;
    ELSIF class_column IS NOT NULL THEN
        RAISE EXCEPTION 'class_column needs the customers table'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass customers => ''my_customers'', or set classes later with crm.coverage_set_classes().';
    END IF;

    PERFORM crm._coverage_drop_triggers(interactions);
    DELETE FROM crm.coverage_config;
    INSERT INTO crm.coverage_config (interactions, customer_column, time_column, kind_column, counted_kinds,
                                     direction_column, counted_directions, automated_column, customers,
                                     customer_key_column, class_column, manager_column, since_column, unknown_customers)
    VALUES (interactions, customer_column, time_column, kind_column, counted_kinds,
            direction_column, CASE WHEN direction_column IS NULL THEN NULL ELSE counted_directions END,
            automated_column, customers, CASE WHEN customers IS NULL THEN NULL ELSE customer_key_column END,
            class_column, CASE WHEN customers IS NULL THEN NULL ELSE manager_column END,
            CASE WHEN customers IS NULL THEN NULL ELSE since_column END, unknown_customers);
    PERFORM crm._coverage_create_triggers(c) FROM crm.coverage_config c;
    RETURN crm.coverage_rebuild();
END
$$;
COMMENT ON FUNCTION crm.attach_coverage(regclass, regclass, name, name, name, name, text[], name, text[], name, name, name, text, name) IS
'Installs the coverage triggers on the interactions table (crm_coverage: crm.coverage_trigger after INSERT; crm_coverage_update and crm_coverage_delete: crm.coverage_change_trigger after UPDATE and DELETE), records the configuration and fills crm.coverage with crm.coverage_rebuild(); returns the number of customers tracked.';

CREATE FUNCTION crm.detach_coverage() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel regclass;
BEGIN
    SELECT interactions INTO rel FROM crm.coverage_config;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- the table may have been dropped since (then its triggers went with it)
    PERFORM crm._coverage_drop_triggers(rel);
    DELETE FROM crm.coverage_config;
    RETURN true;
END
$$;
COMMENT ON FUNCTION crm.detach_coverage() IS
'Drops the coverage triggers and the configuration; crm.coverage keeps its rows.  Returns false when nothing was attached.';

-- the WHERE clause that says which interaction rows count (same rule as the trigger)
CREATE FUNCTION crm._coverage_counted_filter(cfg crm.coverage_config, alias text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format('%1$s.%2$I IS NOT NULL AND %1$s.%3$I IS NOT NULL AND %1$s.%3$I::pg_catalog.timestamptz OPERATOR(pg_catalog.>) ''-infinity'' '
              'AND %1$s.%3$I::pg_catalog.timestamptz OPERATOR(pg_catalog.<) ''infinity''', alias,
              cfg.customer_column, cfg.time_column)
    || CASE WHEN cfg.kind_column IS NULL OR cfg.counted_kinds IS NULL THEN ''
            ELSE format(' AND %s.%I::pg_catalog.text OPERATOR(pg_catalog.=) ANY (%L::pg_catalog.text[])',
                        alias, cfg.kind_column, cfg.counted_kinds) END
    || CASE WHEN cfg.direction_column IS NULL OR cfg.counted_directions IS NULL THEN ''
            ELSE format(' AND %s.%I::pg_catalog.text OPERATOR(pg_catalog.=) ANY (%L::pg_catalog.text[])',
                        alias, cfg.direction_column, cfg.counted_directions) END
    || CASE WHEN cfg.automated_column IS NULL THEN ''
            ELSE format(' AND %s.%I IS NOT TRUE', alias, cfg.automated_column) END
$$;
COMMENT ON FUNCTION crm._coverage_counted_filter(crm.coverage_config, text) IS
'SQL condition selecting the interactions that count as contacts under the attached configuration (the rule crm.coverage_trigger applies).';

-- the statement crm.coverage_change_trigger runs: recompute the customers $1
CREATE FUNCTION crm._coverage_recompute_sql(cfg crm.coverage_config) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format(
    'WITH a AS ('
    '  SELECT k.k, s.last, s.n'
    '    FROM (SELECT DISTINCT u.k FROM pg_catalog.unnest($1::pg_catalog.int8[]) AS u(k)) k'
    '   CROSS JOIN LATERAL (SELECT pg_catalog.max(i.%2$I::pg_catalog.timestamptz) AS last, pg_catalog.count(*) AS n'
    '                         FROM %3$s i WHERE i.%1$I OPERATOR(pg_catalog.=) k.k AND %4$s) s),'
    ' upd AS (UPDATE crm.coverage c SET last_contact = a.last, contacts = a.n,'
    '                next_due = coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval'
    '           FROM a WHERE c.customer_id OPERATOR(pg_catalog.=) a.k'
    '            AND (a.n OPERATOR(pg_catalog.>) 0 OR %5$s)'
    -- "x IS DISTINCT FROM y" spelled with qualified functions (it would look up = in the path)
    '            AND (coalesce(NOT pg_catalog.timestamptz_eq(c.last_contact, a.last),'
    '                          (c.last_contact IS NULL) OPERATOR(pg_catalog.<>) (a.last IS NULL))'
    '                 OR coalesce(NOT pg_catalog.int8eq(c.contacts, a.n), (c.contacts IS NULL) OPERATOR(pg_catalog.<>) (a.n IS NULL))'
    '                 OR coalesce(NOT pg_catalog.timestamptz_eq(c.next_due, coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval),'
    '                             (c.next_due IS NULL) OPERATOR(pg_catalog.<>)'
    '                             (coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval IS NULL)))'
    '         RETURNING c.customer_id),'
    ' del AS (DELETE FROM crm.coverage c USING a WHERE c.customer_id OPERATOR(pg_catalog.=) a.k'
    '            AND a.n OPERATOR(pg_catalog.=) 0 AND NOT (%5$s) RETURNING c.customer_id)'
    '%6$s'
    ' SELECT pg_catalog.min(a.k) FROM a WHERE a.n OPERATOR(pg_catalog.>) 0'
    '    AND NOT EXISTS (SELECT 1 FROM crm.coverage c WHERE c.customer_id OPERATOR(pg_catalog.=) a.k)',
    cfg.customer_column, cfg.time_column, cfg.interactions, crm._coverage_counted_filter(cfg, 'i'),
    -- rows that crm.coverage_rebuild() keeps without any counted contact
    CASE WHEN cfg.customers IS NULL THEN 'c.class IS NOT NULL'
         ELSE format('c.class IS NOT NULL OR EXISTS (SELECT 1 FROM %s cu WHERE cu.%I OPERATOR(pg_catalog.=) c.customer_id)',
                     cfg.customers, cfg.customer_key_column) END,
    CASE WHEN cfg.unknown_customers = 'insert' THEN
        ', ins AS (INSERT INTO crm.coverage AS c (customer_id, last_contact, contacts)'
        '          SELECT a.k, a.last, a.n FROM a WHERE a.n OPERATOR(pg_catalog.>) 0'
        '             AND NOT EXISTS (SELECT 1 FROM crm.coverage c2 WHERE c2.customer_id OPERATOR(pg_catalog.=) a.k)'
        '          ON CONFLICT (customer_id) DO UPDATE'
        '             SET last_contact = GREATEST(c.last_contact, excluded.last_contact),'
        '                 contacts = c.contacts OPERATOR(pg_catalog.+) excluded.contacts,'
        '                 next_due = GREATEST(c.last_contact, excluded.last_contact) OPERATOR(pg_catalog.+) c.contact_interval'
        '          RETURNING c.customer_id)'
         ELSE '' END)
$$;
COMMENT ON FUNCTION crm._coverage_recompute_sql(crm.coverage_config) IS
'The statement crm.coverage_change_trigger runs for the customers $1 (int8[]): last contact, contacts and next due recomputed from the counted interactions as crm.coverage_rebuild() computes them; rows the rebuild would not keep (no counted contact left, not in the customers table, no class) are deleted, customers new to crm.coverage are added under unknown_customers = insert.  Returns the smallest customer with counted contacts and no coverage row.';

-- check that every class of a query is in the policy
CREATE FUNCTION crm._coverage_check_classes(classes_query text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    bad text;
BEGIN
    -- exactly one SELECT of one text column (callable directly: check it here too)
    PERFORM crm._check_inner_query('crm._coverage_check_classes', classes_query, ARRAY['class text']);
    EXECUTE pg_catalog.format('SELECT q.cls FROM (%s) AS q(cls) WHERE q.cls IS NOT NULL '
                   'AND NOT EXISTS (SELECT 1 FROM crm.coverage_policy p WHERE p.class OPERATOR(pg_catalog.=) q.cls) LIMIT 1',
                   classes_query) INTO bad;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown coverage class "%"', bad
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Every class must have a row in crm.coverage_policy.',
                  HINT = pg_catalog.format('Add it: INSERT INTO crm.coverage_policy (class, max_interval) VALUES (%L, ''2 months'').', bad);
    END IF;
END
$$;
COMMENT ON FUNCTION crm._coverage_check_classes(text) IS
'Raises a clear error when a one-column query of class names returns a class that crm.coverage_policy does not define.';

CREATE FUNCTION crm.coverage_rebuild() RETURNS bigint
LANGUAGE plpgsql
-- no SET search_path: the stored classes and purchases queries are the
-- caller's SQL; everything of ours below is qualified.
AS $$
DECLARE
    cfg crm.coverage_config;
    cust text;
    agg text;
    n bigint;
    missing bigint;
    example bigint;
BEGIN
    SELECT * INTO cfg FROM crm.coverage_config;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'coverage is not attached'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(''my_interactions'', ...) first.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) cfg.interactions)
       OR (cfg.customers IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) cfg.customers)) THEN
        RAISE EXCEPTION 'a table coverage was attached to no longer exists'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(...) again.';
    END IF;
    -- nothing is inserted while we rebuild, so no interaction is missed or counted twice
    EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE MODE', cfg.interactions);
    LOCK TABLE crm.coverage IN EXCLUSIVE MODE;

    IF cfg.customers IS NOT NULL AND cfg.class_column IS NOT NULL THEN
        PERFORM crm._coverage_check_classes(pg_catalog.format('SELECT %I::pg_catalog.text FROM %s',
                                                               cfg.class_column, cfg.customers));
    END IF;

    agg := pg_catalog.format('SELECT i.%1$I::pg_catalog.int8 AS k, pg_catalog.max(i.%2$I::pg_catalog.timestamptz) AS last, '
                             'pg_catalog.count(*) AS n FROM %3$s i WHERE %4$s GROUP BY 1',
                             cfg.customer_column, cfg.time_column, cfg.interactions,
                             crm._coverage_counted_filter(cfg, 'i'));
    IF cfg.customers IS NULL THEN
        cust := 'SELECT NULL::pg_catalog.int8 AS k, NULL::pg_catalog.text AS class, NULL::pg_catalog.int8 AS manager, '
                'NULL::pg_catalog.timestamptz AS since WHERE false';
    ELSE
        cust := pg_catalog.format('SELECT DISTINCT ON (1) c.%1$I::pg_catalog.int8 AS k, %2$s AS class, %3$s AS manager, %4$s AS since '
                                  'FROM %5$s c WHERE c.%1$I IS NOT NULL ORDER BY 1',
                                  cfg.customer_key_column,
                                  CASE WHEN cfg.class_column IS NULL THEN 'NULL::pg_catalog.text'
                                       ELSE pg_catalog.format('c.%I::pg_catalog.text', cfg.class_column) END,
                                  CASE WHEN cfg.manager_column IS NULL THEN 'NULL::pg_catalog.int8'
                                       ELSE pg_catalog.format('c.%I::pg_catalog.int8', cfg.manager_column) END,
                                  CASE WHEN cfg.since_column IS NULL THEN 'NULL::pg_catalog.timestamptz'
                                       ELSE pg_catalog.format('c.%I::pg_catalog.timestamptz', cfg.since_column) END,
                                  cfg.customers);
    END IF;

    IF cfg.unknown_customers OPERATOR(pg_catalog.=) 'error' THEN
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*), pg_catalog.min(a.k) FROM (%s) a '
                                  'WHERE NOT EXISTS (SELECT 1 FROM (%s) cu WHERE cu.k OPERATOR(pg_catalog.=) a.k)',
                                  agg, cust) INTO missing, example;
        IF missing OPERATOR(pg_catalog.>) 0::pg_catalog.int8 THEN
            RAISE EXCEPTION 'interactions name % customers that are not in the customers table, for example %', missing, example
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'Add them to the customers table, or attach with unknown_customers => ''insert'' or ''ignore''.';
        END IF;
    END IF;

    TRUNCATE crm.coverage;
    -- one pass: customers, their counted interactions and the interval of their class
    EXECUTE pg_catalog.format(
        'INSERT INTO crm.coverage (customer_id, class, manager_id, customer_since, last_contact, contacts, '
        '                          contact_interval, due_soon, next_due) '
        'SELECT coalesce(cu.k, a.k), cu.class, cu.manager, cu.since, a.last, coalesce(a.n, 0), '
        '       p.max_interval, p.due_soon, coalesce(a.last, cu.since) OPERATOR(pg_catalog.+) p.max_interval '
        'FROM (%s) cu %s JOIN (%s) a ON a.k OPERATOR(pg_catalog.=) cu.k '
        'LEFT JOIN crm.coverage_policy p ON p.class OPERATOR(pg_catalog.=) cu.class',
        cust, CASE WHEN cfg.unknown_customers OPERATOR(pg_catalog.=) 'insert' THEN 'FULL' ELSE 'LEFT' END, agg);
    GET DIAGNOSTICS n = ROW_COUNT;

    IF cfg.classes_sql IS NOT NULL THEN
        PERFORM crm._coverage_apply_classes(cfg.classes_sql);
    END IF;
    IF cfg.purchases_sql IS NOT NULL THEN
        PERFORM crm._coverage_apply_purchases(cfg.purchases_sql);
    END IF;
    IF cfg.classes_sql IS NOT NULL OR cfg.purchases_sql IS NOT NULL THEN
        PERFORM crm._coverage_apply_policy();
    END IF;
    SELECT pg_catalog.count(*) INTO n FROM crm.coverage;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.coverage_rebuild() IS
'Refills crm.coverage from the attached customers and interactions tables (and the stored class and purchase-cycle queries), for the initial load and for repair; blocks inserts into the interactions table meanwhile.  Returns the number of customers.';

-- classes from an inner query (customer, class): update, or add missing customers
CREATE FUNCTION crm._coverage_apply_classes(classes_sql text) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM crm._check_inner_query('crm.coverage_set_classes', classes_sql,
                                   ARRAY['customer integer', 'class text']);
    PERFORM crm._coverage_check_classes(pg_catalog.format('SELECT q.c::pg_catalog.text FROM (%s) AS q(k, c)', classes_sql));
    EXECUTE pg_catalog.format(
        'INSERT INTO crm.coverage AS cv (customer_id, class) '
        'SELECT DISTINCT ON (1) q.k::pg_catalog.int8, q.c::pg_catalog.text FROM (%s) AS q(k, c) WHERE q.k IS NOT NULL ORDER BY 1 '
        'ON CONFLICT (customer_id) DO UPDATE SET class = excluded.class '
        'WHERE coalesce(NOT pg_catalog.texteq(cv.class, excluded.class), (cv.class IS NULL) OPERATOR(pg_catalog.<>) (excluded.class IS NULL))',
        classes_sql);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._coverage_apply_classes(text) IS
'Applies a (customer, class) inner query to crm.coverage (used by crm.coverage_set_classes and crm.coverage_rebuild).';

CREATE FUNCTION crm.coverage_set_classes(classes_sql text) RETURNS bigint
LANGUAGE plpgsql
-- no SET search_path: runs the caller's inner query
AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.coverage_config) THEN
        RAISE EXCEPTION 'coverage is not attached'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(''my_interactions'', ...) first.';
    END IF;
    IF classes_sql IS NULL THEN
        UPDATE crm.coverage_config SET classes_sql = NULL;
        RETURN crm.coverage_rebuild();
    END IF;
    LOCK TABLE crm.coverage IN SHARE ROW EXCLUSIVE MODE;
    n := crm._coverage_apply_classes(classes_sql);
    UPDATE crm.coverage_config SET classes_sql = coverage_set_classes.classes_sql;
    PERFORM crm._coverage_apply_policy();
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.coverage_set_classes(text) IS
'Sets customer classes from an inner query (customer integer, class text), e.g. ABC or RFM classes; the query is stored and re-applied by crm.coverage_rebuild() (run this function again to refresh).  NULL goes back to the class column of the customers table.  Returns the customers whose class changed or who were added.';

-- purchase cycles from an inner query (customer, ts)
CREATE FUNCTION crm._coverage_apply_purchases(purchases_sql text) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM crm._check_inner_query('crm.coverage_set_purchase_cycles', purchases_sql,
                                   ARRAY['customer integer', 'ts timestamptz']);
    EXECUTE pg_catalog.format(
        'UPDATE crm.coverage cv SET purchase_cycle = p.cycle '
        'FROM (SELECT cv2.customer_id, x.cycle FROM crm.coverage cv2 LEFT JOIN '
        '        (SELECT q.k::pg_catalog.int8 AS k, crm.median_interval(q.t::pg_catalog.timestamptz) AS cycle '
        '           FROM (%s) AS q(k, t) GROUP BY 1) x ON x.k OPERATOR(pg_catalog.=) cv2.customer_id) p '
        'WHERE p.customer_id OPERATOR(pg_catalog.=) cv.customer_id '
        '  AND coalesce(NOT pg_catalog.interval_eq(cv.purchase_cycle, p.cycle), '
        '               (cv.purchase_cycle IS NULL) OPERATOR(pg_catalog.<>) (p.cycle IS NULL))',
        purchases_sql);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._coverage_apply_purchases(text) IS
'Applies a (customer, ts) purchases inner query to crm.coverage: purchase_cycle = crm.median_interval(ts) per customer.';

CREATE FUNCTION crm.coverage_set_purchase_cycles(purchases_sql text) RETURNS bigint
LANGUAGE plpgsql
-- no SET search_path: runs the caller's inner query
AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.coverage_config) THEN
        RAISE EXCEPTION 'coverage is not attached'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(''my_interactions'', ...) first.';
    END IF;
    IF purchases_sql IS NULL THEN
        UPDATE crm.coverage_config SET purchases_sql = NULL;
        UPDATE crm.coverage SET purchase_cycle = NULL WHERE purchase_cycle IS NOT NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    ELSE
        LOCK TABLE crm.coverage IN SHARE ROW EXCLUSIVE MODE;
        n := crm._coverage_apply_purchases(purchases_sql);
        UPDATE crm.coverage_config SET purchases_sql = coverage_set_purchase_cycles.purchases_sql;
    END IF;
    PERFORM crm._coverage_apply_policy();
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.coverage_set_purchase_cycles(text) IS
'Computes each customer''s purchase cycle (crm.median_interval) from an inner query (customer integer, ts timestamptz); classes whose policy basis is purchase_cycle then use it as their interval.  Stored and re-applied by crm.coverage_rebuild().  Returns the customers whose cycle changed.';

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.coverage_as_of() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(NULLIF(current_setting('crm.coverage_as_of', true), '')::timestamptz, now()) $$;
COMMENT ON FUNCTION crm.coverage_as_of() IS
'The moment the coverage views judge against: now(), or the setting crm.coverage_as_of when set (SET crm.coverage_as_of = ''2025-12-31'' to look at historical data).';

CREATE VIEW crm.coverage_status WITH (security_invoker = true) AS
SELECT c.customer_id, c.class, c.manager_id, c.last_contact, c.contacts, c.contact_interval, c.next_due,
       CASE WHEN c.class IS NULL THEN 'unclassified'
            WHEN c.next_due IS NULL OR n.t > c.next_due THEN 'overdue'
            WHEN n.t >= c.next_due - c.due_soon THEN 'due soon'
            ELSE 'ok' END AS status,
       CASE WHEN c.class IS NOT NULL AND n.t > c.next_due
            THEN floor(date_part('epoch', n.t - c.next_due) / 86400)::int END AS days_overdue
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n;
COMMENT ON VIEW crm.coverage_status IS
'Each customer''s coverage state at crm.coverage_as_of(): ok, due soon (within the class''s due_soon window before next_due), overdue (past next_due, or never contacted with no customer-since date), unclassified (no class).';

-- The report views read crm.coverage directly (one scan, no per-row status
-- text) with the same rules as crm.coverage_status: covered = next_due at or
-- after the as-of moment, due soon = covered and within due_soon of next_due,
-- overdue = classified and not covered.
CREATE VIEW crm.coverage_by_class WITH (security_invoker = true) AS
SELECT c.class,
       count(*) AS customers,
       count(*) FILTER (WHERE c.next_due >= n.t) AS covered,
       count(*) FILTER (WHERE c.next_due >= n.t AND c.next_due - c.due_soon <= n.t) AS due_soon,
       count(*) FILTER (WHERE c.class IS NOT NULL AND (c.next_due IS NULL OR c.next_due < n.t)) AS overdue,
       count(*) FILTER (WHERE c.last_contact IS NULL) AS never_contacted,
       round(100.0 * count(*) FILTER (WHERE c.next_due >= n.t) / count(*), 2) AS coverage_pct
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n
 GROUP BY c.class;
COMMENT ON VIEW crm.coverage_by_class IS
'Coverage per customer class at crm.coverage_as_of(): customers, covered (ok or due soon), due soon, overdue, never contacted, coverage % = covered / customers.  Unclassified customers form the row with class NULL.';

CREATE VIEW crm.coverage_by_manager WITH (security_invoker = true) AS
SELECT c.manager_id,
       count(*) AS customers,
       count(*) FILTER (WHERE c.next_due >= n.t) AS covered,
       count(*) FILTER (WHERE c.next_due >= n.t AND c.next_due - c.due_soon <= n.t) AS due_soon,
       count(*) FILTER (WHERE c.class IS NOT NULL AND (c.next_due IS NULL OR c.next_due < n.t)) AS overdue,
       count(*) FILTER (WHERE c.last_contact IS NULL) AS never_contacted,
       round(100.0 * count(*) FILTER (WHERE c.next_due >= n.t) / NULLIF(count(*) FILTER (WHERE c.class IS NOT NULL), 0), 2) AS coverage_pct
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n
 GROUP BY c.manager_id;
COMMENT ON VIEW crm.coverage_by_manager IS
'Coverage per manager at crm.coverage_as_of(): customers, covered, due soon, overdue, never contacted, coverage % = covered / classified customers.';

CREATE VIEW crm.coverage_overdue WITH (security_invoker = true) AS
SELECT c.customer_id, c.class, c.manager_id, c.last_contact, c.next_due,
       floor(date_part('epoch', n.t - c.next_due) / 86400)::int AS days_overdue
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n
 WHERE c.class IS NOT NULL AND (c.next_due IS NULL OR c.next_due < n.t)
 ORDER BY c.next_due NULLS FIRST, c.customer_id;
COMMENT ON VIEW crm.coverage_overdue IS
'Who to call today: overdue customers at crm.coverage_as_of(), most overdue first (earliest next_due; never contacted with no due date first of all); filter by manager_id for one manager''s list.';

-- ---------------------------------------------------------------------------
-- Lead first-response SLA
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.working_time(from_ts timestamptz, to_ts timestamptz,
                                 work_start time DEFAULT '09:00', work_end time DEFAULT '18:00',
                                 workdays int[] DEFAULT '{1,2,3,4,5}') RETURNS interval
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result interval;
BEGIN
    IF work_start IS NULL OR work_end IS NULL OR work_start >= work_end THEN
        RAISE EXCEPTION 'working hours must start before they end, got % to %', work_start, work_end
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example work_start => ''09:00'', work_end => ''18:00''.';
    END IF;
    IF workdays IS NULL OR cardinality(workdays) = 0 OR array_position(workdays, NULL) IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(workdays) w WHERE w NOT BETWEEN 1 AND 7) THEN
        RAISE EXCEPTION 'workdays must be ISO day numbers 1 (Monday) to 7 (Sunday), got %', coalesce(workdays::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RETURN NULL;
    END IF;
    IF to_ts <= from_ts THEN
        RETURN interval '0';
    END IF;
    IF to_ts - from_ts > interval '3700 days' THEN
        RAISE EXCEPTION 'working time spans more than 10 years (% to %)', from_ts, to_ts
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    SELECT coalesce(sum(greatest(least(to_ts, (x.d + work_end)::timestamptz)
                                 - greatest(from_ts, (x.d + work_start)::timestamptz), interval '0')), interval '0')
      INTO result
      FROM generate_series(0, to_ts::date - from_ts::date) AS g(i)
     CROSS JOIN LATERAL (SELECT from_ts::date + g.i AS d) x
     WHERE extract(isodow FROM x.d)::int = ANY (workdays);
    RETURN justify_hours(result);
END
$$;
COMMENT ON FUNCTION crm.working_time(timestamptz, timestamptz, time, time, int[]) IS
'Working time between two moments: the parts of [from_ts, to_ts] that fall within work_start..work_end (session time zone) on the ISO weekdays in workdays (default Monday to Friday, 09:00 to 18:00).  0 when to_ts <= from_ts, NULL when either is NULL.';

CREATE FUNCTION crm.lead_first_response(leads_sql text, interactions_sql text)
RETURNS TABLE (lead_id bigint, created_at timestamptz, channel text, manager_id bigint,
               first_response_at timestamptz, response_time interval)
LANGUAGE plpgsql STABLE
-- no SET search_path: runs the caller's inner queries
AS $$
BEGIN
    IF leads_sql IS NULL OR interactions_sql IS NULL THEN
        RAISE EXCEPTION 'leads and interactions queries must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._check_inner_query('crm.lead_first_response', leads_sql,
                                   ARRAY['lead integer', 'created_at timestamptz', 'channel text', 'manager integer']);
    PERFORM crm._check_inner_query('crm.lead_first_response', interactions_sql,
                                   ARRAY['lead integer', 'ts timestamptz', 'direction text', 'automated boolean']);
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT l.lead::pg_catalog.int8, l.created_at::pg_catalog.timestamptz, l.channel::pg_catalog.text, '
        '       l.manager::pg_catalog.int8, pg_catalog.min(i.ts::pg_catalog.timestamptz), '
        '       pg_catalog.min(i.ts::pg_catalog.timestamptz) OPERATOR(pg_catalog.-) l.created_at::pg_catalog.timestamptz '
        '  FROM (%s) AS l(lead, created_at, channel, manager) '
        '  LEFT JOIN (%s) AS i(lead, ts, direction, automated) '
        '    ON i.lead OPERATOR(pg_catalog.=) l.lead '
        '   AND i.ts::pg_catalog.timestamptz OPERATOR(pg_catalog.>=) l.created_at::pg_catalog.timestamptz '
        '   AND i.direction::pg_catalog.text OPERATOR(pg_catalog.=) ''outbound'' '
        '   AND i.automated IS NOT TRUE '
        ' GROUP BY l.lead, l.created_at, l.channel, l.manager',
        leads_sql, interactions_sql);
END
$$;
COMMENT ON FUNCTION crm.lead_first_response(text, text) IS
'First real response per lead: the earliest non-automated outbound interaction at or after the lead''s creation.  Inner queries: leads (lead integer, created_at timestamptz, channel text, manager integer), interactions (lead integer, ts timestamptz, direction text, automated boolean).  first_response_at is NULL for leads never answered.';

CREATE FUNCTION crm.lead_sla(leads_sql text, interactions_sql text,
                             sla interval DEFAULT NULL, spend_sql text DEFAULT NULL,
                             working_hours boolean DEFAULT false,
                             work_start time DEFAULT '09:00', work_end time DEFAULT '18:00',
                             workdays int[] DEFAULT '{1,2,3,4,5}')
RETURNS TABLE (dimension text, key text, leads bigint, answered bigint, within_sla bigint,
               within_sla_pct numeric, median_response interval, never_answered bigint,
               never_answered_cost numeric)
LANGUAGE plpgsql STABLE
-- no SET search_path: runs the caller's inner queries
AS $$
BEGIN
    -- one SLA default for every surface: crm.dashboard_settings.lead_sla (1 hour)
    sla := coalesce(sla, crm._lead_sla());
    IF sla OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
        RAISE EXCEPTION 'sla must be a positive interval, got %', sla
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use for example interval ''15 minutes''.';
    END IF;
    IF leads_sql IS NULL OR interactions_sql IS NULL THEN
        RAISE EXCEPTION 'leads and interactions queries must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._check_inner_query('crm.lead_sla', leads_sql,
                                   ARRAY['lead integer', 'created_at timestamptz', 'channel text', 'manager integer']);
    PERFORM crm._check_inner_query('crm.lead_sla', interactions_sql,
                                   ARRAY['lead integer', 'ts timestamptz', 'direction text', 'automated boolean']);
    IF working_hours IS NULL THEN
        RAISE EXCEPTION 'working_hours must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF working_hours THEN
        PERFORM crm.working_time(NULL, NULL, work_start, work_end, workdays);   -- validates the hours
    END IF;
    IF spend_sql IS NOT NULL THEN
        PERFORM crm._check_inner_query('crm.lead_sla', spend_sql,
                                       ARRAY['channel text', 'month timestamptz', 'amount numeric']);
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH r AS (
            SELECT f.lead_id, f.channel, f.manager_id,
                   %s AS response_time,
                   pg_catalog.date_trunc('month', f.created_at)::pg_catalog.date AS month
              FROM crm.lead_first_response(%L, %L) f),
        cpl AS (
            SELECT s.channel, s.month, s.amount OPERATOR(pg_catalog./) n.leads AS cost_per_lead
              FROM (SELECT q.channel::pg_catalog.text AS channel,
                           pg_catalog.date_trunc('month', q.month::pg_catalog.timestamptz)::pg_catalog.date AS month,
                           pg_catalog.sum(q.amount::pg_catalog.numeric) AS amount
                      FROM (%s) AS q(channel, month, amount) GROUP BY 1, 2) s
              JOIN (SELECT r.channel, r.month, pg_catalog.count(*) AS leads FROM r GROUP BY 1, 2) n
                ON n.channel OPERATOR(pg_catalog.=) s.channel AND n.month OPERATOR(pg_catalog.=) s.month),
        x AS (
            SELECT r.*, c.cost_per_lead FROM r LEFT JOIN cpl c
                ON c.channel OPERATOR(pg_catalog.=) r.channel AND c.month OPERATOR(pg_catalog.=) r.month)
        SELECT CASE WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 3 THEN 'total'
                    WHEN GROUPING(x.channel) OPERATOR(pg_catalog.=) 0 THEN 'channel'
                    ELSE 'manager' END,
               CASE WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 3 THEN 'all'
                    WHEN GROUPING(x.channel) OPERATOR(pg_catalog.=) 0 THEN x.channel
                    ELSE x.manager_id::pg_catalog.text END,
               pg_catalog.count(*),
               pg_catalog.count(x.response_time),
               pg_catalog.count(*) FILTER (WHERE x.response_time OPERATOR(pg_catalog.<=) %L::pg_catalog.interval),
               -- NULL, not a division by zero, for the total row of no leads
               pg_catalog.round(100.0 OPERATOR(pg_catalog.*) pg_catalog.count(*) FILTER (WHERE x.response_time OPERATOR(pg_catalog.<=) %L::pg_catalog.interval)
                                OPERATOR(pg_catalog./) CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.count(*) END, 2),
               pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY x.response_time),
               pg_catalog.count(*) FILTER (WHERE x.response_time IS NULL),
               %s
          FROM x
         GROUP BY GROUPING SETS ((), (x.channel), (x.manager_id))
         ORDER BY CASE WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 3 THEN 0
                       WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 1 THEN 1 ELSE 2 END,
                  x.channel, x.manager_id $q$,
        CASE WHEN working_hours
             THEN pg_catalog.format('crm.working_time(f.created_at, f.first_response_at, %L, %L, %L)',
                                    work_start, work_end, workdays)
             ELSE 'f.response_time' END,
        leads_sql, interactions_sql,
        coalesce(spend_sql, 'SELECT NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric WHERE false'),
        sla, sla,
        CASE WHEN spend_sql IS NULL THEN 'NULL::pg_catalog.numeric'
             ELSE 'pg_catalog.round(coalesce(pg_catalog.sum(x.cost_per_lead) FILTER (WHERE x.response_time IS NULL), 0), 2)' END);
END
$$;
COMMENT ON FUNCTION crm.lead_sla(text, text, interval, text, boolean, time, time, int[]) IS
'Lead first-response SLA per channel, per manager and in total (long format: dimension, key): leads, answered, answered within sla (default NULL = crm.dashboard_settings.lead_sla, 1 hour, the default of every SLA surface), % within sla of all leads, median response time, never answered, and what the never-answered leads cost (their channel''s spend in the lead''s month / leads of that channel and month).  Inner queries as crm.lead_first_response, spend (channel text, month timestamptz, amount numeric).  working_hours => true measures response times in working time (crm.working_time with work_start, work_end, workdays).';

-- ==== src/demo.sql ====
-- demo.sql: crm.load_demo, a deterministic demo CRM in schema crm_demo.
--
-- Every random figure comes from crm._demo_random(seed, stream, key), a
-- counter-based generator: the same (customers, seed, as_of) gives the same
-- rows whatever the plan or the number of parallel workers.

CREATE FUNCTION crm._demo_random(seed int, stream int, key bigint) RETURNS float8
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_demo_random';
COMMENT ON FUNCTION crm._demo_random(int, int, bigint) IS
'Deterministic uniform random number in [0, 1) from (seed, stream, key): the generator behind crm.load_demo.';

CREATE FUNCTION crm.load_demo(customers int DEFAULT 5000, seed int DEFAULT 42, as_of date DEFAULT current_date)
RETURNS TABLE(relation text, row_count bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $fn$
#variable_conflict use_variable
DECLARE
    v_n       int := customers;
    v_seed    int := seed;
    v_end     timestamptz;
    v_start   timestamptz;
    v_leads   int;
    v_mgrs    int;
    v_comment text;
BEGIN
    IF v_n IS NULL OR v_seed IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'customers, seed and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_n <= 0 OR v_n > 1000000 THEN
        RAISE EXCEPTION 'customers must be between 1 and 1000000, got %', v_n
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The demo is a small CRM: 5000 customers is the default, 100000 loads in well under a minute.';
    END IF;
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Only ever replace a crm_demo schema that load_demo made.
    SELECT obj_description(n.oid, 'pg_namespace') INTO v_comment
      FROM pg_namespace n WHERE n.nspname = 'crm_demo';
    IF FOUND THEN
        IF v_comment IS DISTINCT FROM 'crm_analytics demo data (crm.load_demo)' THEN
            RAISE EXCEPTION 'schema "crm_demo" exists and was not made by crm.load_demo'
                USING ERRCODE = 'duplicate_schema',
                      HINT = 'Rename or drop that schema first; load_demo replaces only its own.';
        END IF;
        DROP SCHEMA crm_demo CASCADE;
    END IF;
    CREATE SCHEMA crm_demo;
    COMMENT ON SCHEMA crm_demo IS 'crm_analytics demo data (crm.load_demo)';

    IF to_regclass('pg_temp.demo_path') IS NOT NULL THEN
        DROP TABLE pg_temp.demo_path, pg_temp.demo_product_cdf, pg_temp.demo_orders, pg_temp.demo_touch;
    END IF;
    v_end   := as_of::timestamp AT TIME ZONE 'UTC';
    v_start := v_end - interval '730 days';
    v_leads := 3 * v_n;
    v_mgrs  := greatest(3, least(50, v_n / 400));

    -- channels and what one lead costs there
    CREATE TABLE crm_demo.channels (channel text PRIMARY KEY, cost_per_lead numeric NOT NULL);
    INSERT INTO crm_demo.channels VALUES
        ('search_ads', 45), ('social_ads', 28), ('organic', 0), ('referral', 12), ('events', 110);

    CREATE TABLE crm_demo.managers (manager_id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO crm_demo.managers
    SELECT m, 'Manager ' || m FROM generate_series(1, v_mgrs) m;

    -- one row per lead with its whole deal path; turned into the real tables below
    CREATE TEMP TABLE demo_path ON COMMIT DROP AS
    WITH l AS (
        SELECT id,
               CASE WHEN u_ch < 0.30 THEN 'search_ads' WHEN u_ch < 0.60 THEN 'social_ads'
                    WHEN u_ch < 0.80 THEN 'organic' WHEN u_ch < 0.90 THEN 'referral' ELSE 'events' END AS channel,
               -- two yearly seasons: more leads in spring and autumn
               v_start + interval '730 days' * (u_t - 0.35 * sin(4 * pi() * u_t) / (4 * pi())) AS created_at,
               1 + floor(crm._demo_random(v_seed, 3, id) * v_mgrs)::int AS manager_id,
               crm._demo_random(v_seed, 4, id) AS u_score,
               crm._demo_random(v_seed, 5, id) AS u_reach
          FROM (SELECT id, crm._demo_random(v_seed, 1, id) AS u_ch, crm._demo_random(v_seed, 2, id) AS u_t
                  FROM generate_series(1, v_leads) id) s
    ), scored AS (
        SELECT l.*,
               u_score * CASE channel WHEN 'referral' THEN 1.3 WHEN 'organic' THEN 1.15 WHEN 'search_ads' THEN 1.0
                                      WHEN 'events' THEN 0.95 ELSE 0.8 END AS score
          FROM l
    ), ranked AS (
        SELECT s.*,
               created_at <= v_end - interval '35 days'
               AND row_number() OVER (PARTITION BY created_at <= v_end - interval '35 days'
                                      ORDER BY score DESC, id) <= v_n AS converts
          FROM scored s
    ), gaps AS (
        SELECT r.*,
               -- days between stages: exponential, capped at 7 days for deals that close
               least(-ln(1 - crm._demo_random(v_seed, 12, id)) * 2, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g2,
               least(-ln(1 - crm._demo_random(v_seed, 13, id)) * 5, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g3,
               least(-ln(1 - crm._demo_random(v_seed, 14, id)) * 4, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g4,
               least(-ln(1 - crm._demo_random(v_seed, 15, id)) * 7, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g5,
               CASE WHEN converts THEN 5
                    WHEN u_reach < 0.45 THEN 1 WHEN u_reach < 0.70 THEN 2 WHEN u_reach < 0.87 THEN 3 ELSE 4 END AS reach,
               round((CASE channel WHEN 'events' THEN 1500 WHEN 'referral' THEN 1000 WHEN 'search_ads' THEN 700
                                   WHEN 'organic' THEN 800 ELSE 400 END
                      * exp(0.5 * sqrt(-2 * ln(1 - crm._demo_random(v_seed, 20, id)))
                                 * cos(2 * pi() * crm._demo_random(v_seed, 21, id))))::numeric, 2) AS amount
          FROM ranked r
    )
    SELECT id, channel, created_at, manager_id, converts, reach, amount,
           created_at + interval '1 day' * g2 AS t2,
           created_at + interval '1 day' * (g2 + g3) AS t3,
           created_at + interval '1 day' * (g2 + g3 + g4) AS t4,
           created_at + interval '1 day' * (g2 + g3 + g4 + g5) AS t5,
           crm._demo_random(v_seed, 22, id) AS u_lost,
           crm._demo_random(v_seed, 23, id) AS u_reason,
           crm._demo_random(v_seed, 24, id) AS u_lost_gap
      FROM gaps;

    -- stage times after as_of have not happened yet
    UPDATE demo_path SET reach = CASE WHEN t2 > v_end THEN 1 WHEN t3 > v_end THEN 2 WHEN t4 > v_end THEN 3 ELSE 4 END
     WHERE NOT converts AND ((reach >= 2 AND t2 > v_end) OR (reach >= 3 AND t3 > v_end) OR (reach >= 4 AND t4 > v_end));

    CREATE TABLE crm_demo.customers (
        customer_id bigint PRIMARY KEY, lead_id bigint NOT NULL, name text NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, created_at timestamptz NOT NULL);
    INSERT INTO crm_demo.customers
    SELECT row_number() OVER (ORDER BY t5, id), id, '', channel, manager_id, t5
      FROM demo_path WHERE converts;
    UPDATE crm_demo.customers SET name = 'Customer ' || customer_id;

    CREATE TABLE crm_demo.leads (
        lead_id bigint PRIMARY KEY, created_at timestamptz NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, customer_id bigint);
    INSERT INTO crm_demo.leads
    SELECT p.id, p.created_at, p.channel, p.manager_id, c.customer_id
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     ORDER BY p.id;

    CREATE TABLE crm_demo.deals (
        deal_id bigint PRIMARY KEY, lead_id bigint NOT NULL, customer_id bigint, manager_id int NOT NULL,
        channel text NOT NULL, created_at timestamptz NOT NULL, stage text NOT NULL, amount numeric NOT NULL,
        lost_reason text, closed_at timestamptz);
    INSERT INTO crm_demo.deals
    SELECT d.id, d.id, c.customer_id, d.manager_id, d.channel, d.created_at,
           CASE WHEN d.converts THEN 'paid' WHEN d.lost THEN 'lost'
                ELSE (ARRAY['lead','qualified','proposal','invoice'])[d.reach] END,
           d.amount,
           CASE WHEN d.lost THEN
                CASE WHEN d.reach = 4 THEN 'no payment'
                     ELSE (ARRAY['price','no budget','competitor','no response','not a fit'])[1 + floor(d.u_reason * 5)::int] END
           END,
           CASE WHEN d.converts THEN d.t5 WHEN d.lost THEN d.lost_at END
      FROM (SELECT p.*,
                   (ARRAY[p.created_at, p.t2, p.t3, p.t4])[least(p.reach, 4)]
                     + interval '1 day' * (5 + 25 * p.u_lost_gap) AS lost_at,
                   NOT p.converts
                   AND (ARRAY[p.created_at, p.t2, p.t3, p.t4])[least(p.reach, 4)]
                       + interval '1 day' * (5 + 25 * p.u_lost_gap) <= v_end
                   AND (p.reach < 4 OR p.u_lost < 0.6) AS lost
              FROM demo_path p) d
      LEFT JOIN crm_demo.customers c ON c.lead_id = d.id
     ORDER BY d.id;

    CREATE TABLE crm_demo.deal_events (deal_id bigint NOT NULL, changed_at timestamptz NOT NULL, stage text NOT NULL);
    INSERT INTO crm_demo.deal_events
    SELECT e.deal_id, e.changed_at, e.stage
      FROM (SELECT p.id AS deal_id, s.k, s.stage,
                   (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] AS changed_at
              FROM demo_path p
              JOIN LATERAL unnest(ARRAY['lead','qualified','proposal','invoice','paid']) WITH ORDINALITY AS s(stage, k)
                ON s.k <= p.reach
            UNION ALL
            SELECT d.deal_id, 6, 'lost', d.closed_at FROM crm_demo.deals d WHERE d.stage = 'lost') e
     ORDER BY e.deal_id, e.k;

    CREATE TABLE crm_demo.invoices (
        invoice_id bigint PRIMARY KEY, deal_id bigint NOT NULL, customer_id bigint, issued_at timestamptz NOT NULL,
        due_at timestamptz NOT NULL, amount numeric NOT NULL, paid_at timestamptz);
    INSERT INTO crm_demo.invoices
    SELECT p.id, p.id, c.customer_id, p.t4, p.t4 + interval '14 days', p.amount,
           CASE WHEN p.converts THEN p.t5 END
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     WHERE p.reach >= 4
     ORDER BY p.id;

    -- products: Zipf-like popularity (ABC), every third one seasonal (Nov-Dec), every third erratic (XYZ)
    CREATE TABLE crm_demo.products (
        product_id int PRIMARY KEY, name text NOT NULL, category text NOT NULL, price numeric NOT NULL,
        unit_cost numeric NOT NULL);
    INSERT INTO crm_demo.products
    SELECT p, 'Product ' || p, (ARRAY['software','hardware','services','training'])[1 + p % 4],
           round((20 + 480 * crm._demo_random(v_seed, 30, p) ^ 2)::numeric, 2),
           0
      FROM generate_series(1, 40) p;
    UPDATE crm_demo.products
       SET unit_cost = round(price * (0.4 + 0.3 * crm._demo_random(v_seed, 31, product_id))::numeric, 2);

    CREATE TEMP TABLE demo_product_cdf ON COMMIT DROP AS
    SELECT m, product_id,
           coalesce(sum(w) OVER (PARTITION BY m ORDER BY product_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
             / sum(w) OVER (PARTITION BY m) AS lo,
           sum(w) OVER (PARTITION BY m ORDER BY product_id) / sum(w) OVER (PARTITION BY m) AS hi
      FROM (SELECT m, product_id,
                   power(product_id, -1.1)
                   * CASE product_id % 3
                         WHEN 0 THEN CASE WHEN m IN (11, 12) THEN 4.0 ELSE 0.3 END
                         WHEN 2 THEN 0.2 + 1.6 * crm._demo_random(v_seed, 32, product_id * 100 + m)
                         ELSE 1.0 END AS w
              FROM crm_demo.products, generate_series(1, 12) m) s;

    -- orders: the paid deal is the first order; repeat orders while the customer stays
    CREATE TEMP TABLE demo_orders ON COMMIT DROP AS
    SELECT c.customer_id, 0 AS j, c.created_at AS ordered_at, d.amount AS deal_amount,
           crm._demo_random(v_seed, 44, c.customer_id * 64) AS u_prod,
           crm._demo_random(v_seed, 45, c.customer_id * 64) AS u_qty
      FROM crm_demo.customers c JOIN crm_demo.deals d ON d.deal_id = c.lead_id
    UNION ALL
    SELECT r.customer_id, j.j,
           r.created_at + (r.span * crm._demo_random(v_seed, 43, r.customer_id * 64 + j.j)),
           NULL,
           crm._demo_random(v_seed, 44, r.customer_id * 64 + j.j),
           crm._demo_random(v_seed, 45, r.customer_id * 64 + j.j)
      FROM (SELECT c.customer_id, c.created_at, s.span,
                   least(60, floor(0.25 * -ln(1 - crm._demo_random(v_seed, 40, c.customer_id))
                                   * extract(epoch FROM s.span) / 2629800
                                   + crm._demo_random(v_seed, 42, c.customer_id)))::int AS k
              FROM crm_demo.customers c
              CROSS JOIN LATERAL (SELECT least(v_end - c.created_at,
                                               interval '1 day' * 30.44 * 10 * -ln(1 - crm._demo_random(v_seed, 41, c.customer_id))) AS span) s) r
      JOIN LATERAL generate_series(1, r.k) AS j(j) ON true;

    CREATE TABLE crm_demo.orders (
        order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, ordered_at timestamptz NOT NULL,
        product_id int NOT NULL, quantity int NOT NULL, amount numeric NOT NULL, cost numeric NOT NULL);
    INSERT INTO crm_demo.orders
    SELECT row_number() OVER (ORDER BY o.ordered_at, o.customer_id, o.j),
           o.customer_id, o.ordered_at, f.product_id, q.qty,
           coalesce(o.deal_amount, p.price * q.qty),
           round(coalesce(o.deal_amount, p.price * q.qty) * p.unit_cost / p.price, 2)
      FROM demo_orders o
      CROSS JOIN LATERAL (SELECT CASE WHEN o.deal_amount IS NULL THEN 1 + floor(-ln(1 - o.u_qty) * 1.5)::int ELSE 1 END AS qty) q
      JOIN demo_product_cdf f ON f.m = extract(month FROM o.ordered_at AT TIME ZONE 'UTC')::int
                             AND o.u_prod >= f.lo AND o.u_prod < f.hi
      JOIN crm_demo.products p ON p.product_id = f.product_id;

    -- marketing spend per channel and month: leads there x cost per lead, +-10 %
    CREATE TABLE crm_demo.spend (channel text NOT NULL, month date NOT NULL, amount numeric NOT NULL,
                                 PRIMARY KEY (channel, month));
    INSERT INTO crm_demo.spend
    SELECT l.channel, l.month,
           round(l.n * ch.cost_per_lead * (0.9 + 0.2 * crm._demo_random(v_seed, 50, hashtext(l.channel || l.month::text))))::numeric
      FROM (SELECT channel, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n
              FROM crm_demo.leads GROUP BY 1, 2) l
      JOIN crm_demo.channels ch USING (channel)
     WHERE ch.cost_per_lead > 0
     ORDER BY 1, 2;

    -- interactions: first responses to leads, touches along deals, account care, mailings
    CREATE TEMP TABLE demo_touch ON COMMIT DROP AS
    -- (a) first response to a lead: lognormal delay (median 20 min); 8 % of non-buyers never answered
    SELECT NULL::bigint AS customer_id, p.id AS lead_id, p.manager_id, 'call' AS kind, 'outbound' AS direction,
           false AS automated,
           p.created_at + interval '1 minute'
               * least(4320, exp(ln(20) + 1.5 * sqrt(-2 * ln(1 - crm._demo_random(v_seed, 60, p.id)))
                                               * cos(2 * pi() * crm._demo_random(v_seed, 61, p.id)))) AS occurred_at,
           1 AS src, p.id AS key
      FROM demo_path p
     WHERE p.converts OR p.reach > 1 OR crm._demo_random(v_seed, 62, p.id) >= 0.15
    UNION ALL
    -- (b) a meeting or call before each stage change, an inbound email now and then
    SELECT NULL, p.id, p.manager_id,
           CASE WHEN crm._demo_random(v_seed, 63, p.id * 8 + s.k) < 0.5 THEN 'meeting' ELSE 'call' END,
           'outbound', false,
           (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] - interval '2 hours', 2, p.id * 8 + s.k
      FROM demo_path p JOIN generate_series(2, 5) s(k) ON s.k <= p.reach
    UNION ALL
    SELECT NULL, p.id, p.manager_id, 'email', 'inbound', false,
           (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] - interval '1 day', 3, p.id * 8 + s.k
      FROM demo_path p JOIN generate_series(2, 5) s(k) ON s.k <= p.reach
     WHERE crm._demo_random(v_seed, 64, p.id * 8 + s.k) < 0.5
    UNION ALL
    -- (c) account care after the first purchase, each customer at their own (sometimes neglected) cadence
    SELECT c.customer_id, NULL, c.manager_id,
           CASE WHEN crm._demo_random(v_seed, 71, c.customer_id * 256 + j) < 0.6 THEN 'call'
                WHEN crm._demo_random(v_seed, 71, c.customer_id * 256 + j) < 0.85 THEN 'email' ELSE 'meeting' END,
           CASE WHEN crm._demo_random(v_seed, 72, c.customer_id * 256 + j) < 0.8 THEN 'outbound' ELSE 'inbound' END,
           false,
           c.created_at + interval '1 day' * cad.days * (j + 0.3 * crm._demo_random(v_seed, 73, c.customer_id * 256 + j)),
           4, c.customer_id * 256 + j
      FROM crm_demo.customers c
      CROSS JOIN LATERAL (SELECT 20 + 160 * crm._demo_random(v_seed, 70, c.customer_id) AS days) cad
      JOIN LATERAL generate_series(1, least(200, floor(extract(epoch FROM v_end - c.created_at) / 86400 / cad.days)::int)) j ON true
    UNION ALL
    -- (d) the automated quarterly newsletter to every customer
    SELECT c.customer_id, NULL, c.manager_id, 'mailing', 'outbound', true,
           q.at + interval '9 hours', 5, c.customer_id * 16 + row_number() OVER (PARTITION BY c.customer_id ORDER BY q.at)
      FROM crm_demo.customers c
      JOIN generate_series(date_trunc('quarter', v_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', v_end, interval '3 months') q(at)
        ON q.at > c.created_at;

    CREATE TABLE crm_demo.interactions (
        interaction_id bigint PRIMARY KEY, customer_id bigint, lead_id bigint, manager_id int NOT NULL,
        kind text NOT NULL, direction text NOT NULL, automated boolean NOT NULL, occurred_at timestamptz NOT NULL);
    INSERT INTO crm_demo.interactions
    SELECT row_number() OVER (ORDER BY occurred_at, src, key), customer_id, lead_id, manager_id, kind, direction,
           automated, occurred_at
      FROM demo_touch WHERE occurred_at <= v_end;

    CREATE INDEX ON crm_demo.deal_events (deal_id, changed_at);
    CREATE INDEX ON crm_demo.orders (customer_id, ordered_at);
    CREATE INDEX ON crm_demo.interactions (customer_id, occurred_at);
    CREATE INDEX ON crm_demo.interactions (lead_id, occurred_at);
    -- the dashboard reads a period of interactions: a CRM indexes their time
    CREATE INDEX ON crm_demo.interactions (occurred_at);
    CREATE INDEX ON crm_demo.leads (created_at);
    CREATE INDEX ON crm_demo.invoices (deal_id);
    ANALYZE crm_demo.channels, crm_demo.managers, crm_demo.customers, crm_demo.leads, crm_demo.deals,
            crm_demo.deal_events, crm_demo.invoices, crm_demo.products, crm_demo.orders, crm_demo.spend,
            crm_demo.interactions;

    DROP TABLE pg_temp.demo_path, pg_temp.demo_product_cdf, pg_temp.demo_orders, pg_temp.demo_touch;

    -- let the source registry (owner dashboard) know about the demo tables
    IF to_regprocedure('crm._register_demo_sources()') IS NOT NULL THEN
        EXECUTE 'SELECT crm._register_demo_sources()';
    END IF;

    RETURN QUERY
    SELECT t.rel, t.cnt FROM (
        SELECT 'crm_demo.channels' AS rel, (SELECT count(*) FROM crm_demo.channels) AS cnt, 1 AS o
        UNION ALL SELECT 'crm_demo.managers', (SELECT count(*) FROM crm_demo.managers), 2
        UNION ALL SELECT 'crm_demo.leads', (SELECT count(*) FROM crm_demo.leads), 3
        UNION ALL SELECT 'crm_demo.deals', (SELECT count(*) FROM crm_demo.deals), 4
        UNION ALL SELECT 'crm_demo.deal_events', (SELECT count(*) FROM crm_demo.deal_events), 5
        UNION ALL SELECT 'crm_demo.invoices', (SELECT count(*) FROM crm_demo.invoices), 6
        UNION ALL SELECT 'crm_demo.customers', (SELECT count(*) FROM crm_demo.customers), 7
        UNION ALL SELECT 'crm_demo.products', (SELECT count(*) FROM crm_demo.products), 8
        UNION ALL SELECT 'crm_demo.orders', (SELECT count(*) FROM crm_demo.orders), 9
        UNION ALL SELECT 'crm_demo.spend', (SELECT count(*) FROM crm_demo.spend), 10
        UNION ALL SELECT 'crm_demo.interactions', (SELECT count(*) FROM crm_demo.interactions), 11) t
    ORDER BY t.o;
END
$fn$;
COMMENT ON FUNCTION crm.load_demo(int, int, date) IS
'Creates (or replaces) schema crm_demo with a deterministic demo CRM of the given number of customers: leads from five channels with monthly spend, deals through lead -> qualified -> proposal -> invoice -> paid (or lost, with a reason), invoices (some never paid), repeat orders over 24 months before as_of, interactions, managers. Same arguments, same data.';

-- ==== src/funnel.sql ====
-- funnel.sql: sales funnel (docs/funnel.md).
--   crm.window_funnel (two overloads), crm.window_funnel_times, crm.funnel_counts
--   (C aggregates with real, text-round-tripping state types) and crm.funnel_report.

-- ---- state type of window_funnel / window_funnel_times ---------------------
CREATE TYPE crm.window_funnel_state;

CREATE FUNCTION crm.window_funnel_state_in(cstring) RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_state_in';
COMMENT ON FUNCTION crm.window_funnel_state_in(cstring) IS
'Input function of crm.window_funnel_state: "steps=N;mode=M;window=USEC;events=K;ts:mask,..."; every field is validated.';

CREATE FUNCTION crm.window_funnel_state_out(crm.window_funnel_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_state_out';
COMMENT ON FUNCTION crm.window_funnel_state_out(crm.window_funnel_state) IS
'Output function of crm.window_funnel_state (the partial state of crm.window_funnel).';

CREATE TYPE crm.window_funnel_state (
    INPUT = crm.window_funnel_state_in,
    OUTPUT = crm.window_funnel_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.window_funnel_state IS
'Partial state of crm.window_funnel and crm.window_funnel_times: steps, mode, window and one (time, step mask) entry per matching row.';

-- ---- support functions -------------------------------------------------------
CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, timestamptz, boolean[])
RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_transfn';
COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, timestamptz, boolean[]) IS
'Transition function of crm.window_funnel(window, ts, VARIADIC steps): appends the row in place.';

CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, text, timestamptz, boolean[])
RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_mode_transfn';
COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, text, timestamptz, boolean[]) IS
'Transition function of crm.window_funnel(window, mode, ts, VARIADIC steps): appends the row in place.';

CREATE FUNCTION crm._window_funnel_combinefn(crm.window_funnel_state, crm.window_funnel_state)
RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_combinefn';
COMMENT ON FUNCTION crm._window_funnel_combinefn(crm.window_funnel_state, crm.window_funnel_state) IS
'Combine function of crm.window_funnel: appends the second partial state to the first.';

CREATE FUNCTION crm._window_funnel_finalfn(crm.window_funnel_state)
RETURNS int
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_finalfn';
COMMENT ON FUNCTION crm._window_funnel_finalfn(crm.window_funnel_state) IS
'Final function of crm.window_funnel: sorts the events and returns the level reached (0 for no events).';

CREATE FUNCTION crm._window_funnel_times_finalfn(crm.window_funnel_state)
RETURNS timestamptz[]
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_times_finalfn';
COMMENT ON FUNCTION crm._window_funnel_times_finalfn(crm.window_funnel_state) IS
'Final function of crm.window_funnel_times: the step times of the chain that first reached the level.';

-- ---- the contract aggregates ---------------------------------------------------
CREATE AGGREGATE crm.window_funnel("window" interval, ts timestamptz, VARIADIC steps boolean[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel(interval, timestamptz, VARIADIC boolean[]) IS
'Highest funnel step (0..N) one chain step1 -> step2 -> ... reaches with every event within window of its step-1 event (ClickHouse windowFunnel semantics, 1 to 64 steps).';

CREATE AGGREGATE crm.window_funnel("window" interval, mode text, ts timestamptz, VARIADIC steps boolean[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel(interval, text, timestamptz, VARIADIC boolean[]) IS
'window_funnel with a mode: '''' or a comma list of strict_deduplication, strict_order, strict_increase, strict_once.';

CREATE AGGREGATE crm.window_funnel_times("window" interval, ts timestamptz, VARIADIC steps boolean[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_times_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_times(interval, timestamptz, VARIADIC boolean[]) IS
'Times of the steps reached by the chain that gave the window_funnel level (the first chain to reach it); length = level.';

CREATE AGGREGATE crm.window_funnel_times("window" interval, mode text, ts timestamptz, VARIADIC steps boolean[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_times_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_times(interval, text, timestamptz, VARIADIC boolean[]) IS
'window_funnel_times with a mode (see crm.window_funnel).';

-- ---- fixed-arity overloads (speed) -----------------------------------------------
-- window_funnel and window_funnel_times with 1 to 12 separate boolean step
-- arguments, with and without the mode.  PostgreSQL prefers a non-variadic
-- function over a variadic one with the same effective argument types in the
-- same schema, so a call such as window_funnel('3 days', ts, a, b, c) resolves
-- to the 3-step overload, whose C transition function reads the booleans
-- directly instead of building a boolean[] per row.  Same state, combine and
-- final functions, same results; the VARIADIC contract aggregates above stay
-- for VARIADIC ARRAY[...] calls and for 13 to 64 steps.
DO $do$
DECLARE
    n int;
    steps_decl text;
    steps_types text;
    m record;
    agg record;
BEGIN
    FOR n IN 1..12 LOOP
        SELECT pg_catalog.string_agg(pg_catalog.format('step%s boolean', i), ', ' ORDER BY i),
               pg_catalog.string_agg('boolean', ', ')
          INTO steps_decl, steps_types
          FROM pg_catalog.generate_series(1, n) AS i;
        FOR m IN SELECT * FROM (VALUES
                     ('', '', 'funnel_window_args_transfn', ''),
                     ('mode text, ', 'text, ', 'funnel_window_mode_args_transfn', ' with a mode')) AS v(decl, types, cname, what)
        LOOP
            EXECUTE pg_catalog.format($f$
                CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, %1$stimestamptz, %2$s)
                RETURNS crm.window_funnel_state
                LANGUAGE c IMMUTABLE PARALLEL SAFE
                AS 'MODULE_PATHNAME', %3$L$f$, m.types, steps_types, m.cname);
            EXECUTE pg_catalog.format($f$
                COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, %1$stimestamptz, %2$s) IS
                %3$L$f$, m.types, steps_types,
                pg_catalog.format('Transition function of the %s-step crm.window_funnel%s: reads the step booleans directly and appends the row in place.', n, m.what));
            FOR agg IN SELECT * FROM (VALUES
                           ('window_funnel', '_window_funnel_finalfn', 'crm.window_funnel'),
                           ('window_funnel_times', '_window_funnel_times_finalfn', 'crm.window_funnel_times')) AS a(name, finalfn, contract)
            LOOP
                EXECUTE pg_catalog.format($f$
                    CREATE AGGREGATE crm.%1$I("window" interval, %2$sts timestamptz, %3$s) (
                        SFUNC = crm._window_funnel_transfn,
                        STYPE = crm.window_funnel_state,
                        SSPACE = 128,
                        COMBINEFUNC = crm._window_funnel_combinefn,
                        FINALFUNC = crm.%4$I,
                        PARALLEL = SAFE
                    )$f$, agg.name, m.decl, steps_decl, agg.finalfn);
                EXECUTE pg_catalog.format($f$
                    COMMENT ON AGGREGATE crm.%1$I(interval, %2$stimestamptz, %3$s) IS %4$L$f$,
                    agg.name, m.types, steps_types,
                    pg_catalog.format('%s%s with %s separate step conditions: the same result as the VARIADIC form, without building a boolean[] per row.',
                                      agg.contract, m.what, n));
            END LOOP;
        END LOOP;
    END LOOP;
END
$do$;

-- ---- step-name form ---------------------------------------------------------------
-- window_funnel_by_name(window, [mode,] ts, step text, steps text[]): the row
-- matches step k when step = steps[k] (byte-wise, as = under a deterministic
-- collation).  The usual shape of a CRM funnel (one stage name per event);
-- one comparison per step in C instead of one boolean expression per step.
-- A name of its own: as an overload of window_funnel, (..., text, text[])
-- would make 2-step calls with untyped arguments (NULL, '...', unbound
-- parameters) ambiguous with the (..., boolean, boolean) overload.
CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, timestamptz, text, text[])
RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_names_transfn';
COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, timestamptz, text, text[]) IS
'Transition function of crm.window_funnel_by_name(window, ts, step, steps): matches the step name against the names and appends the row in place.';

CREATE FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, text, timestamptz, text, text[])
RETURNS crm.window_funnel_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_window_mode_names_transfn';
COMMENT ON FUNCTION crm._window_funnel_transfn(crm.window_funnel_state, interval, text, timestamptz, text, text[]) IS
'Transition function of crm.window_funnel_by_name(window, mode, ts, step, steps): matches the step name against the names and appends the row in place.';

CREATE AGGREGATE crm.window_funnel_by_name("window" interval, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_by_name(interval, timestamptz, text, text[]) IS
'crm.window_funnel with step names: the row matches step k when step = steps[k]; the same result as crm.window_funnel with step = steps[k] as condition k.';

CREATE AGGREGATE crm.window_funnel_by_name("window" interval, mode text, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_by_name(interval, text, timestamptz, text, text[]) IS
'crm.window_funnel with a mode and step names (see crm.window_funnel_by_name(interval, timestamptz, text, text[])).';

CREATE AGGREGATE crm.window_funnel_times_by_name("window" interval, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_times_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_times_by_name(interval, timestamptz, text, text[]) IS
'crm.window_funnel_times with step names: the row matches step k when step = steps[k] (see crm.window_funnel_by_name).';

CREATE AGGREGATE crm.window_funnel_times_by_name("window" interval, mode text, ts timestamptz, step text, steps text[]) (
    SFUNC = crm._window_funnel_transfn,
    STYPE = crm.window_funnel_state,
    SSPACE = 128,
    COMBINEFUNC = crm._window_funnel_combinefn,
    FINALFUNC = crm._window_funnel_times_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.window_funnel_times_by_name(interval, text, timestamptz, text, text[]) IS
'crm.window_funnel_times with a mode and step names (see crm.window_funnel_by_name).';

-- ---- funnel_counts ---------------------------------------------------------------
CREATE TYPE crm.funnel_counts_state;

CREATE FUNCTION crm.funnel_counts_state_in(cstring) RETURNS crm.funnel_counts_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_counts_state_in';
COMMENT ON FUNCTION crm.funnel_counts_state_in(cstring) IS
'Input function of crm.funnel_counts_state: "steps=N;hist=c0,c1,...,cN" (rows per level).';

CREATE FUNCTION crm.funnel_counts_state_out(crm.funnel_counts_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_counts_state_out';
COMMENT ON FUNCTION crm.funnel_counts_state_out(crm.funnel_counts_state) IS
'Output function of crm.funnel_counts_state (the partial state of crm.funnel_counts).';

CREATE TYPE crm.funnel_counts_state (
    INPUT = crm.funnel_counts_state_in,
    OUTPUT = crm.funnel_counts_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.funnel_counts_state IS
'Partial state of crm.funnel_counts: the number of rows per level 0..N.';

CREATE FUNCTION crm._funnel_counts_transfn(crm.funnel_counts_state, int, int)
RETURNS crm.funnel_counts_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_counts_transfn';
COMMENT ON FUNCTION crm._funnel_counts_transfn(crm.funnel_counts_state, int, int) IS
'Transition function of crm.funnel_counts: counts the row''s level in place.';

CREATE FUNCTION crm._funnel_counts_combinefn(crm.funnel_counts_state, crm.funnel_counts_state)
RETURNS crm.funnel_counts_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_counts_combinefn';
COMMENT ON FUNCTION crm._funnel_counts_combinefn(crm.funnel_counts_state, crm.funnel_counts_state) IS
'Combine function of crm.funnel_counts: adds the per-level counts.';

CREATE FUNCTION crm._funnel_counts_finalfn(crm.funnel_counts_state)
RETURNS bigint[]
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_counts_finalfn';
COMMENT ON FUNCTION crm._funnel_counts_finalfn(crm.funnel_counts_state) IS
'Final function of crm.funnel_counts: element k = rows with level >= k.';

CREATE AGGREGATE crm.funnel_counts(level int, steps int) (
    SFUNC = crm._funnel_counts_transfn,
    STYPE = crm.funnel_counts_state,
    SSPACE = 560,
    COMBINEFUNC = crm._funnel_counts_combinefn,
    FINALFUNC = crm._funnel_counts_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.funnel_counts(int, int) IS
'Funnel step counts: element k of the result = rows whose level (from window_funnel) is >= k, k = 1..steps; NULL levels are skipped.';

-- ---- funnel_report -----------------------------------------------------------------
CREATE FUNCTION crm._funnel_step_flags(step text, steps text[]) RETURNS boolean[]
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'funnel_step_flags';
COMMENT ON FUNCTION crm._funnel_step_flags(text, text[]) IS
'Element k = (step = steps[k]), byte-wise; a NULL step matches nothing.  The step conditions of the boolean window_funnel for a step name (crm.funnel_report now calls crm.window_funnel_times_by_name).';

CREATE FUNCTION crm.funnel_report(events_sql text, steps text[], "window" interval DEFAULT '30 days',
                                  mode text DEFAULT '')
RETURNS TABLE(step_no int, step text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
              dropped bigint, median_time_from_prev interval, lost_value numeric)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No SET search_path: the inner query is the caller's SQL and must resolve
-- with the caller's search_path; everything used here is schema-qualified.
AS $fn$
DECLARE
    ncols int;
    nsteps int;
BEGIN
    IF steps IS NULL THEN
        RAISE EXCEPTION 'funnel_report steps must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    END IF;
    IF COALESCE(pg_catalog.array_ndims(steps), 1) OPERATOR(pg_catalog.>) 1 THEN
        RAISE EXCEPTION 'funnel_report steps must be a one-dimensional array'
            USING ERRCODE = 'array_subscript_error',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    END IF;
    nsteps := COALESCE(pg_catalog.cardinality(steps), 0);
    IF nsteps OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'funnel_report needs at least 1 step'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    ELSIF nsteps OPERATOR(pg_catalog.>) 64 THEN
        RAISE EXCEPTION 'funnel_report supports at most 64 steps, got %', nsteps
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Merge steps or split the funnel in two.';
    END IF;
    IF pg_catalog.array_position(steps, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'funnel_report steps must not contain null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF "window" IS NULL THEN
        RAISE EXCEPTION 'funnel_report window must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass an interval such as ''30 days''.';
    END IF;
    IF mode IS NULL THEN
        RAISE EXCEPTION 'funnel_report mode must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass '''' for the default mode.';
    END IF;
    -- window and mode are checked by the aggregate itself, even when the inner query returns no rows
    PERFORM crm.window_funnel("window", mode, NULL::pg_catalog.timestamptz, true);
    ncols := crm._check_inner_query('crm.funnel_report', events_sql,
                                    ARRAY['entity any', 'ts timestamptz', 'step text', 'value numeric?']);
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH per AS (
            SELECT crm.window_funnel_times_by_name($1, $2, e.ts::pg_catalog.timestamptz,
                                                   e.step::pg_catalog.text, $3) AS t,
                   %s AS v
              FROM (%s
                   ) AS e(entity, ts, step%s)
             WHERE e.entity IS NOT NULL
             GROUP BY e.entity
        ), lv AS (
            SELECT pg_catalog.cardinality(t) AS lvl, t, v FROM per
        ), agg AS (
            SELECT k,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) k) AS entered,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) 1) AS first_n,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) (k OPERATOR(pg_catalog.-) 1)) AS prev_n,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.=) k
                                                 AND k OPERATOR(pg_catalog.<) $4) AS dropped,
                   pg_catalog.percentile_cont(0.5::pg_catalog.float8) WITHIN GROUP
                       (ORDER BY (t[k] OPERATOR(pg_catalog.-) t[k OPERATOR(pg_catalog.-) 1]))
                       FILTER (WHERE lvl OPERATOR(pg_catalog.>=) k AND k OPERATOR(pg_catalog.>) 1) AS med,
                   pg_catalog.sum(v) FILTER (WHERE lvl OPERATOR(pg_catalog.=) k
                                               AND k OPERATOR(pg_catalog.<) $4) AS lost
              FROM lv CROSS JOIN pg_catalog.generate_series(1, $4) AS k
             GROUP BY k
        )
        SELECT k, $3[k], entered,
               pg_catalog.round((100::pg_catalog.numeric OPERATOR(pg_catalog.*) entered)
                                OPERATOR(pg_catalog./) CASE WHEN first_n OPERATOR(pg_catalog.<>) 0 THEN first_n END, 2),
               CASE WHEN k OPERATOR(pg_catalog.>) 1 THEN
                   pg_catalog.round((100::pg_catalog.numeric OPERATOR(pg_catalog.*) entered)
                                    OPERATOR(pg_catalog./) CASE WHEN prev_n OPERATOR(pg_catalog.<>) 0 THEN prev_n END, 2) END,
               dropped,
               med,
               CASE WHEN %s THEN COALESCE(lost, 0) END
          FROM agg
         ORDER BY k
    $q$,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN 'pg_catalog.max(e.value::pg_catalog.numeric)'
             ELSE 'NULL::pg_catalog.numeric' END,
        events_sql,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN ', value' ELSE '' END,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN 'true' ELSE 'false' END)
    USING "window", mode, steps, nsteps;
END
$fn$;
COMMENT ON FUNCTION crm.funnel_report(text, text[], interval, text) IS
'Funnel report over an inner query (entity, ts timestamptz, step text [, value numeric]): per step the entities that entered it, % of step 1 and of the previous step, the entities that stopped there, the median time from the previous step and the value they held (lost_value).';

-- ==== src/retention.sql ====
-- retention.sql: retention and cohorts (docs/retention.md); engine in src/retention_agg.c and src/cohort_*.c.
--
--   crm.retention(VARIADIC boolean[]) -> int[]            contract aggregate (ClickHouse retention)
--   crm.retention(boolean, ...) -> int[]                  the same, 1 to 12 conditions, by-value state
--   crm.cohort_activity(ts, amount, period)               per-entity aggregate -> crm.cohort_activity_state
--   crm.cohort_activity_periods(state)                    the periods inside a state
--   crm.cohort_retention(events_sql, period, periods)     cohort x period_no report (heat map, LTV curve)
--   crm.retention_metrics(events_sql, period)             churn, retention (E-N)/S, repeat rate, AOV per period
--
-- C support functions reference nothing by name, so they need no search_path;
-- the report functions run the caller's inner query and must not pin it.

-- ---------------------------------------------------------------------------
-- crm.retention
-- ---------------------------------------------------------------------------
CREATE TYPE crm.retention_state;

CREATE FUNCTION crm.retention_state_in(cstring) RETURNS crm.retention_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_state_in';
COMMENT ON FUNCTION crm.retention_state_in(cstring) IS
'Input function of crm.retention_state: one character per condition, 1 = held on some row, e.g. ''101''.';

CREATE FUNCTION crm.retention_state_out(crm.retention_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_state_out';
COMMENT ON FUNCTION crm.retention_state_out(crm.retention_state) IS
'Output function of crm.retention_state: one character per condition, 1 = held on some row.';

CREATE TYPE crm.retention_state (
    INPUT = crm.retention_state_in,
    OUTPUT = crm.retention_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.retention_state IS
'Partial state of crm.retention: the number of conditions and which of them held on some row.';

CREATE FUNCTION crm.retention_transfn(crm.retention_state, boolean[]) RETURNS crm.retention_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_transfn';
COMMENT ON FUNCTION crm.retention_transfn(crm.retention_state, boolean[]) IS
'Transition function of crm.retention: ORs the conditions that hold on this row into the state (in place).';

CREATE FUNCTION crm.retention_combinefn(crm.retention_state, crm.retention_state) RETURNS crm.retention_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_combinefn';
COMMENT ON FUNCTION crm.retention_combinefn(crm.retention_state, crm.retention_state) IS
'Combine function of crm.retention: ORs two partial states.';

CREATE FUNCTION crm.retention_finalfn(crm.retention_state) RETURNS int[]
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_finalfn';
COMMENT ON FUNCTION crm.retention_finalfn(crm.retention_state) IS
'Final function of crm.retention: r[1] = cond1 held, r[k] = cond1 and condk held (1/0).';

CREATE AGGREGATE crm.retention(VARIADIC conds boolean[]) (
    SFUNC = crm.retention_transfn,
    STYPE = crm.retention_state,
    FINALFUNC = crm.retention_finalfn,
    FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = crm.retention_combinefn,
    SSPACE = 64,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean[]) IS
'ClickHouse retention: int[] where r[1] = 1 if cond1 held on any row of the group and r[k] = 1 if cond1 and condk each held on some row, else 0. 1 to 64 conditions; a NULL condition is false; NULL when the group has no rows.';

-- ---------------------------------------------------------------------------
-- crm.retention(boolean, ...): 1 to 12 conditions as arguments
-- ---------------------------------------------------------------------------
-- Same result as crm.retention(VARIADIC boolean[]).  A call with the
-- conditions written out resolves to these overloads (PostgreSQL prefers a
-- non-variadic function to a variadic one with the same effective argument
-- types), which pass the conditions without building an array per row and
-- keep a 4-byte by-value state.  More conditions, or an explicit VARIADIC
-- array, use the VARIADIC aggregate.
CREATE TYPE crm.retention_fixed_state;

CREATE FUNCTION crm.retention_fixed_state_in(cstring) RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_state_in';
COMMENT ON FUNCTION crm.retention_fixed_state_in(cstring) IS
'Input function of crm.retention_fixed_state: one character per condition (1 to 12), 1 = held on some row, e.g. ''101''.';

CREATE FUNCTION crm.retention_fixed_state_out(crm.retention_fixed_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_state_out';
COMMENT ON FUNCTION crm.retention_fixed_state_out(crm.retention_fixed_state) IS
'Output function of crm.retention_fixed_state: one character per condition, 1 = held on some row.';

CREATE TYPE crm.retention_fixed_state (
    INPUT = crm.retention_fixed_state_in,
    OUTPUT = crm.retention_fixed_state_out,
    INTERNALLENGTH = 4,
    PASSEDBYVALUE,
    ALIGNMENT = int4,
    STORAGE = plain
);
COMMENT ON TYPE crm.retention_fixed_state IS
'Partial state of crm.retention with 1 to 12 conditions as arguments: the number of conditions and which of them held on some row, 4 bytes passed by value.';

CREATE FUNCTION crm.retention_fixed_combinefn(crm.retention_fixed_state, crm.retention_fixed_state)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_combinefn';
COMMENT ON FUNCTION crm.retention_fixed_combinefn(crm.retention_fixed_state, crm.retention_fixed_state) IS
'Combine function of crm.retention(boolean, ...): ORs two partial states.';

CREATE FUNCTION crm.retention_fixed_finalfn(crm.retention_fixed_state) RETURNS int[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_finalfn';
COMMENT ON FUNCTION crm.retention_fixed_finalfn(crm.retention_fixed_state) IS
'Final function of crm.retention(boolean, ...): r[1] = cond1 held, r[k] = cond1 and condk held (1/0).';


CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean) IS
'Transition function of crm.retention with 1 condition: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean) IS
'crm.retention with 1 condition as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean) IS
'Transition function of crm.retention with 2 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean) IS
'crm.retention with 2 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean) IS
'Transition function of crm.retention with 3 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean) IS
'crm.retention with 3 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 4 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean) IS
'crm.retention with 4 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 5 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 5 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 6 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 6 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 7 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 7 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 8 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 8 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 9 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 9 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 10 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 10 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 11 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean, cond11 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 11 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 12 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean, cond11 boolean, cond12 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 12 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

-- ---------------------------------------------------------------------------
-- crm.cohort_activity: the per-entity step of the cohort reports
-- ---------------------------------------------------------------------------
CREATE TYPE crm.cohort_activity_state;

CREATE FUNCTION crm.cohort_activity_state_in(cstring) RETURNS crm.cohort_activity_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_state_in';
COMMENT ON FUNCTION crm.cohort_activity_state_in(cstring) IS
'Input function of crm.cohort_activity_state: period;start,orders,revenue;... (canonical form only).';

CREATE FUNCTION crm.cohort_activity_state_out(crm.cohort_activity_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_state_out';
COMMENT ON FUNCTION crm.cohort_activity_state_out(crm.cohort_activity_state) IS
'Output function of crm.cohort_activity_state, e.g. month;2025-01-01,3,150.50;2025-03-01,1,20.00.';

CREATE TYPE crm.cohort_activity_state (
    INPUT = crm.cohort_activity_state_in,
    OUTPUT = crm.cohort_activity_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.cohort_activity_state IS
'One entity''s activity: the period kind and, per active period (increasing), the number of events and their exact revenue.';

CREATE FUNCTION crm.cohort_activity_transfn(crm.cohort_activity_state, timestamptz, numeric, text)
RETURNS crm.cohort_activity_state
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_transfn';
COMMENT ON FUNCTION crm.cohort_activity_transfn(crm.cohort_activity_state, timestamptz, numeric, text) IS
'Transition function of crm.cohort_activity: adds one event to its period (session time zone), in place.';

CREATE FUNCTION crm.cohort_activity_combinefn(crm.cohort_activity_state, crm.cohort_activity_state)
RETURNS crm.cohort_activity_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_combinefn';
COMMENT ON FUNCTION crm.cohort_activity_combinefn(crm.cohort_activity_state, crm.cohort_activity_state) IS
'Combine function of crm.cohort_activity: merges the period lists of two partial states.';

-- SSPACE: a state is one 128-byte chunk up to 9 active periods, 256 bytes up
-- to 19; the planner sizes hash aggregation by it (too high and a GROUP BY
-- over a million customers spills to disk for nothing).
CREATE AGGREGATE crm.cohort_activity(ts timestamptz, amount numeric, period text) (
    SFUNC = crm.cohort_activity_transfn,
    STYPE = crm.cohort_activity_state,
    COMBINEFUNC = crm.cohort_activity_combinefn,
    SSPACE = 160,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.cohort_activity(timestamptz, numeric, text) IS
'Per-entity activity for cohort analysis: the periods (day, week, month, quarter, year in the session time zone) with events, their event count and exact sum of amount. NULL ts rows are ignored; NULL amounts add no revenue; negative amounts (refunds) are summed as they are.';

CREATE FUNCTION crm.cohort_activity_periods(state crm.cohort_activity_state)
RETURNS TABLE(period_start date, orders bigint, revenue numeric)
LANGUAGE c IMMUTABLE PARALLEL SAFE ROWS 12
AS 'MODULE_PATHNAME', 'crm_cohort_activity_periods';
COMMENT ON FUNCTION crm.cohort_activity_periods(crm.cohort_activity_state) IS
'The periods of a crm.cohort_activity state: start date, events and revenue of each active period, in order.';

-- ---------------------------------------------------------------------------
-- report functions
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.cohort_retention(events_sql text, period text DEFAULT 'month', periods int DEFAULT 12)
RETURNS TABLE(cohort date, period_no int, cohort_size bigint, active bigint,
              retention_rate numeric, revenue numeric, cumulative_ltv numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_cohort_retention';
COMMENT ON FUNCTION crm.cohort_retention(text, text, int) IS
'Cohort retention in long format. Inner query: (entity, ts timestamptz [, amount numeric]). cohort = start of the period of the entity''s first event; one row per cohort and period_no 0..periods-1 up to the last period present in the data; active = cohort members with an event in that period, retention_rate = active / cohort_size (4 places), revenue = their amounts, cumulative_ltv = revenue of periods 0..period_no / cohort_size.';

CREATE FUNCTION crm.retention_metrics(events_sql text, period text DEFAULT 'month')
RETURNS TABLE(period_start date, customers_start bigint, new_customers bigint, active_customers bigint,
              retained bigint, churned bigint, churn_rate numeric, retention_rate numeric,
              orders bigint, revenue numeric, repeat_customers bigint, repeat_purchase_rate numeric,
              aov numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_retention_metrics';
COMMENT ON FUNCTION crm.retention_metrics(text, text) IS
'Retention figures per calendar period. Inner query: (entity, ts timestamptz [, amount numeric]). S = customers_start (active in the previous period), N = new_customers, E = active_customers; churn_rate = (S - retained) / S, retention_rate = (E - N) / S, repeat_purchase_rate = repeat_customers / E (active with 2+ events to date), aov = revenue / orders.';

CREATE FUNCTION crm.cohort_retention(events_sql text, period text, periods int, as_of timestamptz)
RETURNS TABLE(cohort date, period_no int, cohort_size bigint, active bigint,
              retention_rate numeric, revenue numeric, cumulative_ltv numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_cohort_retention';
COMMENT ON FUNCTION crm.cohort_retention(text, text, int, timestamptz) IS
'crm.cohort_retention as of a moment: the last period reported is the one containing as_of (periods up to it are reported even without events; events of later periods are ignored). NULL as_of: the last period with an event.';

CREATE FUNCTION crm.retention_metrics(events_sql text, period text, as_of timestamptz)
RETURNS TABLE(period_start date, customers_start bigint, new_customers bigint, active_customers bigint,
              retained bigint, churned bigint, churn_rate numeric, retention_rate numeric,
              orders bigint, revenue numeric, repeat_customers bigint, repeat_purchase_rate numeric,
              aov numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_retention_metrics';
COMMENT ON FUNCTION crm.retention_metrics(text, text, timestamptz) IS
'crm.retention_metrics as of a moment: periods up to the one containing as_of (events of later periods are ignored). NULL as_of: up to the last period with an event.';

-- ==== src/status.sql ====
-- status.sql: automatic statuses (docs/auto-status.md).
--
-- Rules live in tables, the logic in C triggers (src/status_*.c, see src/status.h) that
-- crm.attach_auto_status() wires to the user's own entity and event tables.
-- Every status change (by a rule or by a person) is written once to
-- crm.status_history; crm.apply_time_rules() is the idempotent sweep for time
-- rules.  All tables here are configuration or history: registered with
-- pg_extension_config_dump so pg_dump keeps them.

-- ---------------------------------------------------------------------------
-- Configuration tables
-- ---------------------------------------------------------------------------

CREATE SEQUENCE crm.status_attachment_id_seq;
CREATE TABLE crm.status_attachments (
    attachment_id       int PRIMARY KEY DEFAULT nextval('crm.status_attachment_id_seq'),
    entity_table        regclass NOT NULL UNIQUE,
    key_column          name NOT NULL,
    status_column       name NOT NULL,
    event_table         regclass,
    event_entity_column name,
    event_type_column   name,
    event_time_column   name,
    allow_backward      boolean NOT NULL DEFAULT false,
    max_depth           int NOT NULL DEFAULT 1 CHECK (max_depth BETWEEN 1 AND 16),
    attached_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((event_table IS NULL) = (event_entity_column IS NULL)
       AND (event_table IS NULL) = (event_type_column IS NULL)
       AND (event_table IS NULL) = (event_time_column IS NULL))
);
ALTER SEQUENCE crm.status_attachment_id_seq OWNED BY crm.status_attachments.attachment_id;
COMMENT ON TABLE crm.status_attachments IS
'One row per entity table with automatic statuses (made by crm.attach_auto_status): the key and status columns, the event table and its columns, and the settings allow_backward and max_depth (editable).';

CREATE TABLE crm.status_stages (
    entity_table regclass NOT NULL REFERENCES crm.status_attachments (entity_table)
                 ON UPDATE CASCADE ON DELETE CASCADE,
    status       text NOT NULL,
    position     int NOT NULL,
    PRIMARY KEY (entity_table, status),
    UNIQUE (entity_table, position)
);
COMMENT ON TABLE crm.status_stages IS
'The known statuses of each attached entity table, in pipeline order: a move to a higher position is forward.';

CREATE TABLE crm.status_transitions (
    entity_table regclass NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    allowed      boolean NOT NULL DEFAULT true,
    PRIMARY KEY (entity_table, from_status, to_status),
    FOREIGN KEY (entity_table, from_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE,
    FOREIGN KEY (entity_table, to_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE crm.status_transitions IS
'Explicit exceptions to the forward-only default: allowed = true permits a backward move, allowed = false forbids a forward one.';

CREATE SEQUENCE crm.status_rule_id_seq;
CREATE TABLE crm.status_event_rules (
    rule_id       bigint PRIMARY KEY DEFAULT nextval('crm.status_rule_id_seq'),
    entity_table  regclass NOT NULL,
    event_type    text NOT NULL,
    from_statuses text[],
    to_status     text NOT NULL,
    priority      int NOT NULL DEFAULT 0,
    enabled       boolean NOT NULL DEFAULT true,
    FOREIGN KEY (entity_table, to_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX status_event_rules_lookup ON crm.status_event_rules (entity_table, event_type);
COMMENT ON TABLE crm.status_event_rules IS
'Event rules: an event of event_type for an entity whose status is in from_statuses (NULL = any) moves it to to_status; of the rules that apply, the one with the highest priority (then lowest rule_id) fires, once per event.';

CREATE TABLE crm.status_time_rules (
    rule_id      bigint PRIMARY KEY DEFAULT nextval('crm.status_rule_id_seq'),
    entity_table regclass NOT NULL,
    from_status  text NOT NULL,
    idle_for     interval NOT NULL CHECK (idle_for > interval '0'),
    to_status    text NOT NULL CHECK (to_status <> from_status),
    priority     int NOT NULL DEFAULT 0,
    enabled      boolean NOT NULL DEFAULT true,
    FOREIGN KEY (entity_table, from_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE,
    FOREIGN KEY (entity_table, to_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE
);
ALTER SEQUENCE crm.status_rule_id_seq OWNED BY crm.status_event_rules.rule_id;
COMMENT ON TABLE crm.status_time_rules IS
'Time rules: an entity in from_status with no event and no status change for idle_for moves to to_status when crm.apply_time_rules() runs.';

CREATE SEQUENCE crm.status_history_id_seq;
CREATE TABLE crm.status_history (
    history_id   bigint PRIMARY KEY DEFAULT nextval('crm.status_history_id_seq'),
    entity_table regclass NOT NULL,
    entity_key   text NOT NULL,
    from_status  text,
    to_status    text,
    changed_at   timestamptz NOT NULL,
    rule_id      bigint,
    actor        text NOT NULL,
    db_user      text DEFAULT CURRENT_USER,
    db_session_user text DEFAULT SESSION_USER
);
ALTER SEQUENCE crm.status_history_id_seq OWNED BY crm.status_history.history_id;
CREATE INDEX status_history_entity ON crm.status_history (entity_table, entity_key, changed_at);
COMMENT ON TABLE crm.status_history IS
'One row per status change of an attached entity (and per inserted entity, from_status NULL): by a rule (actor = ''rule'', rule_id set) or by a person (actor = the crm.status_actor setting, a claim of the application, or else the database user); db_user and db_session_user are the database role that wrote the row and the session''s login role (NULL for rows written before 0.3.0).';
COMMENT ON COLUMN crm.status_history.db_user IS
'The database role that wrote the row (CURRENT_USER): the role making a manual change, the role inserting the event for an event rule, the role calling crm.apply_time_rules() for a time rule. Grant writers INSERT on the other columns only, so that it cannot be set by hand.';
COMMENT ON COLUMN crm.status_history.db_session_user IS
'The login role of the session that wrote the row (SESSION_USER); see db_user.';

SELECT pg_catalog.pg_extension_config_dump('crm.status_attachments', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_attachment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_stages', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_transitions', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_event_rules', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_time_rules', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_history', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_history_id_seq', '');

-- Rules are checked when written, so a rule naming an unknown status or an
-- entity table without automatic status is a clear error (the foreign keys
-- stay as a backstop and make pg_dump restore the stages first).
CREATE FUNCTION crm._status_rule_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s text;
    statuses text[];
BEGIN
    IF NEW.entity_table IS NULL THEN
        RAISE EXCEPTION 'entity_table must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM crm.status_attachments a WHERE a.entity_table = NEW.entity_table) THEN
        RAISE EXCEPTION 'table % has no automatic status attached', NEW.entity_table
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Call crm.attach_auto_status() for the table first.';
    END IF;
    IF TG_TABLE_NAME = 'status_event_rules' THEN
        IF NEW.event_type IS NULL THEN
            RAISE EXCEPTION 'event_type must not be null' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF NEW.from_statuses IS NOT NULL AND array_position(NEW.from_statuses, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'from_statuses must not contain nulls'
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'Use from_statuses = NULL for a rule that applies in any status.';
        END IF;
        statuses := coalesce(NEW.from_statuses, '{}') || ARRAY[NEW.to_status];
    ELSE
        statuses := ARRAY[NEW.from_status, NEW.to_status];
    END IF;
    FOREACH s IN ARRAY statuses LOOP
        IF s IS NULL THEN
            RAISE EXCEPTION 'rule statuses must not be null' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM crm.status_stages st
                        WHERE st.entity_table = NEW.entity_table AND st.status = s) THEN
            RAISE EXCEPTION 'status "%" is not a stage of %', s, NEW.entity_table
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Known stages: %s.',
                                      (SELECT string_agg(st.status, ', ' ORDER BY st.position)
                                         FROM crm.status_stages st WHERE st.entity_table = NEW.entity_table)),
                      HINT = 'Fix the status name or add the stage to crm.status_stages.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION crm._status_rule_check() IS
'Trigger on the rule tables: rejects rules for tables without automatic status and rules naming unknown statuses.';

CREATE TRIGGER status_event_rules_check BEFORE INSERT OR UPDATE ON crm.status_event_rules
    FOR EACH ROW EXECUTE FUNCTION crm._status_rule_check();
CREATE TRIGGER status_time_rules_check BEFORE INSERT OR UPDATE ON crm.status_time_rules
    FOR EACH ROW EXECUTE FUNCTION crm._status_rule_check();

-- ---------------------------------------------------------------------------
-- C functions
-- ---------------------------------------------------------------------------

-- The triggers keep the configuration in backend memory; a change to any
-- configuration table tells every backend to re-read it.
CREATE FUNCTION crm._status_config_changed() RETURNS trigger
LANGUAGE c
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'status_config_changed';
COMMENT ON FUNCTION crm._status_config_changed() IS
'Statement trigger on the automatic-status configuration tables: invalidates the configuration every backend caches.';
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_attachments
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_stages
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_event_rules
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_time_rules
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();

-- The two row triggers do not pin search_path with a SET clause: that would
-- cost two GUC changes per row.  Every name in the SQL they run is
-- schema-qualified, and they pin search_path in C for the catalog reads they
-- parse (src/pg_user_context.c, StatusPinSearchPath); the user's own triggers on the entity
-- table run with the user's search_path.
CREATE FUNCTION crm.status_event_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'status_event_trigger';
COMMENT ON FUNCTION crm.status_event_trigger() IS
'AFTER INSERT row trigger on an attached event table (installed by crm.attach_auto_status): locks the entity row and applies the best matching event rule, at most once per event.';

CREATE FUNCTION crm.status_entity_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'status_entity_trigger';
COMMENT ON FUNCTION crm.status_entity_trigger() IS
'AFTER INSERT / UPDATE OF status row trigger on an attached entity table (installed by crm.attach_auto_status): rejects disallowed manual transitions and writes one crm.status_history row per change.';

-- crm.apply_time_rules has no SET clause either: it pins search_path in C for
-- its own statements, and the statement that moves the rows of an attached
-- table runs as the table's owner (security-restricted) with the session's
-- search_path, so that the owner's triggers resolve names as they do for any
-- other write to the table (docs/security.md, section B).
CREATE FUNCTION crm.apply_time_rules(as_of timestamptz DEFAULT now()) RETURNS int
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'status_apply_time_rules';
COMMENT ON FUNCTION crm.apply_time_rules(timestamptz) IS
'The sweep for time rules: moves every entity that has been in a rule''s from_status with no event and no status change for idle_for before as_of; idempotent, skips rows locked by concurrent sessions (SKIP LOCKED); returns the number of changes. Tables the caller may not update are skipped with a WARNING; the rows of each table are moved as the table''s owner in a security-restricted operation, so the owner''s triggers never run with the caller''s rights.';

CREATE FUNCTION crm.status_transition_allowed(entity_table regclass, from_status text, to_status text)
RETURNS boolean
LANGUAGE c STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'status_transition_allowed';
COMMENT ON FUNCTION crm.status_transition_allowed(regclass, text, text) IS
'Whether a move from from_status to to_status is allowed for an attached table: an explicit crm.status_transitions row wins, else forward moves (higher position) are allowed, backward ones only with allow_backward; from NULL or an unknown status anything known is allowed.';

-- ---------------------------------------------------------------------------
-- Attach / detach (catalog glue)
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm._status_column(tbl regclass, col name, what text) RETURNS pg_catalog.pg_attribute
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    att pg_attribute;
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO att FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', col, tbl
            USING ERRCODE = 'undefined_column',
                  HINT = format('Check %s: column names are case-sensitive identifiers.', what);
    END IF;
    RETURN att;
END
$$;
COMMENT ON FUNCTION crm._status_column(regclass, name, text) IS
'Internal: the catalog row of a column named in crm.attach_auto_status, or a clear error.';

CREATE FUNCTION crm._status_check_table(tbl regclass, what text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl
            USING ERRCODE = 'wrong_object_type',
                  HINT = format('%s must be an ordinary or partitioned table.', what);
    END IF;
END
$$;
COMMENT ON FUNCTION crm._status_check_table(regclass, text) IS
'Internal: checks that a relation named in crm.attach_auto_status is a table.';

CREATE FUNCTION crm.attach_auto_status(
    entity_table        regclass,
    key_column          name,
    status_column       name,
    statuses            text[],
    event_table         regclass DEFAULT NULL,
    event_entity_column name DEFAULT NULL,
    event_type_column   name DEFAULT NULL,
    event_time_column   name DEFAULT NULL,
    allow_backward      boolean DEFAULT false,
    max_depth           int DEFAULT 1,
    create_index        boolean DEFAULT true)
RETURNS int
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_att    pg_attribute;
    status_att pg_attribute;
    ev_ent_att pg_attribute;
    ev_type_att pg_attribute;
    ev_time_att pg_attribute;
    id         int;
    bad        text;
    idx_name   text;
BEGIN
    PERFORM crm._status_check_table(entity_table, 'entity_table');
    key_att := crm._status_column(entity_table, key_column, 'key_column');
    status_att := crm._status_column(entity_table, status_column, 'status_column');
    IF key_column = status_column THEN
        RAISE EXCEPTION 'key_column and status_column must differ' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = status_att.atttypid AND t.oid <> 'bpchar'::regtype
                      AND (t.typcategory = 'S' OR t.typtype = 'e')) THEN
        RAISE EXCEPTION 'status column "%" has type %, expected a text or enum type',
                        status_column, format_type(status_att.atttypid, status_att.atttypmod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = entity_table AND i.indisunique AND i.indisvalid
                      AND i.indnkeyatts = 1 AND i.indkey[0] = key_att.attnum
                      AND i.indpred IS NULL AND i.indexprs IS NULL) THEN
        RAISE EXCEPTION 'key column "%" of % is not unique', key_column, entity_table
            USING ERRCODE = 'invalid_column_reference',
                  HINT = 'Add a PRIMARY KEY or UNIQUE constraint on the key column.';
    END IF;
    IF statuses IS NULL OR cardinality(statuses) = 0 THEN
        RAISE EXCEPTION 'statuses must list at least one status' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass the pipeline in order, e.g. ARRAY[''new'', ''contacted'', ''won''].';
    END IF;
    IF array_position(statuses, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'statuses must not contain nulls' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT count(DISTINCT s) FROM unnest(statuses) s) <> cardinality(statuses) THEN
        RAISE EXCEPTION 'statuses must not contain duplicates' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_depth IS NULL OR max_depth NOT BETWEEN 1 AND 16 THEN
        RAISE EXCEPTION 'max_depth must be between 1 and 16' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM crm.status_attachments a WHERE a.entity_table = attach_auto_status.entity_table) THEN
        RAISE EXCEPTION 'table % already has automatic status attached', entity_table
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Call crm.detach_auto_status() first to attach it again.';
    END IF;
    EXECUTE format('SELECT string_agg(DISTINCT %1$I::text, '', '') FROM %2$s WHERE %1$I IS NOT NULL AND NOT (%1$I::text = ANY ($1))',
                   status_column, entity_table)
       INTO bad USING statuses;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'table % holds statuses that are not in statuses: %', entity_table, left(bad, 200)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'List every status the table uses in statuses, in pipeline order.';
    END IF;

    IF event_table IS NOT NULL OR event_entity_column IS NOT NULL
       OR event_type_column IS NOT NULL OR event_time_column IS NOT NULL THEN
        PERFORM crm._status_check_table(event_table, 'event_table');
        IF event_table = entity_table THEN
            RAISE EXCEPTION 'event_table must differ from entity_table' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        ev_ent_att := crm._status_column(event_table, event_entity_column, 'event_entity_column');
        ev_type_att := crm._status_column(event_table, event_type_column, 'event_type_column');
        ev_time_att := crm._status_column(event_table, event_time_column, 'event_time_column');
        IF NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = ev_type_att.atttypid
                          AND (t.typcategory = 'S' OR t.typtype = 'e')) THEN
            RAISE EXCEPTION 'event type column "%" has type %, expected a text or enum type',
                            event_type_column, format_type(ev_type_att.atttypid, ev_type_att.atttypmod)
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF ev_time_att.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
            RAISE EXCEPTION 'event time column "%" has type %, expected timestamptz, timestamp or date',
                            event_time_column, format_type(ev_time_att.atttypid, ev_time_att.atttypmod)
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        BEGIN
            EXECUTE format('SELECT 1 FROM %s e JOIN %s v ON v.%I = e.%I LIMIT 0',
                           entity_table, event_table, event_entity_column, key_column);
        EXCEPTION WHEN undefined_function THEN
            RAISE EXCEPTION 'event entity column "%" (%) cannot be compared with key column "%" (%)',
                            event_entity_column, format_type(ev_ent_att.atttypid, NULL),
                            key_column, format_type(key_att.atttypid, NULL)
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'The event table must reference the entity by a column of the key''s type.';
        END;
    END IF;

    INSERT INTO crm.status_attachments (entity_table, key_column, status_column, event_table,
                                        event_entity_column, event_type_column, event_time_column,
                                        allow_backward, max_depth)
    VALUES (entity_table, key_column, status_column, event_table,
            event_entity_column, event_type_column, event_time_column,
            coalesce(allow_backward, false), max_depth)
    RETURNING attachment_id INTO id;
    INSERT INTO crm.status_stages (entity_table, status, position)
    SELECT attach_auto_status.entity_table, s, n FROM unnest(statuses) WITH ORDINALITY u(s, n);

    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW WHEN (NEW.%I IS NOT NULL) '
                   'EXECUTE FUNCTION crm.status_entity_trigger(%L)',
                   'crm_auto_status_' || id || '_insert', entity_table, status_column, id);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION crm.status_entity_trigger(%L)',
                   'crm_auto_status_' || id || '_update', status_column, entity_table,
                   status_column, status_column, id);
    IF event_table IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION crm.status_event_trigger(%L)',
                       'crm_auto_status_' || id || '_event', event_table, id);
        -- the sweep looks up "any event of this entity since t": index (entity, time)
        IF coalesce(create_index, true) AND NOT EXISTS (
               SELECT 1 FROM pg_index i
                WHERE i.indrelid = event_table AND i.indkey[0] = ev_ent_att.attnum
                  AND i.indnkeyatts >= 2 AND i.indkey[1] = ev_time_att.attnum AND i.indpred IS NULL) THEN
            EXECUTE format('CREATE INDEX ON %s (%I, %I)', event_table, event_entity_column, event_time_column);
            SELECT c.relname INTO idx_name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = event_table AND i.indkey[0] = ev_ent_att.attnum
               AND i.indkey[1] = ev_time_att.attnum ORDER BY i.indexrelid DESC LIMIT 1;
            RAISE NOTICE 'created index % on %', idx_name, event_table;
        END IF;
    END IF;
    RETURN id;
END
$$;
COMMENT ON FUNCTION crm.attach_auto_status(regclass, name, name, text[], regclass, name, name, name, boolean, int, boolean) IS
'Attaches automatic statuses to the user''s entity table (unique key column, text or enum status column; statuses = the known statuses in pipeline order) and optionally its event table (entity reference, event type, event time): installs the C triggers, creates the (entity, time) index on the event table unless one exists; returns the attachment id.';

CREATE FUNCTION crm.detach_auto_status(entity_table regclass, keep_history boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    att crm.status_attachments;
    trg record;
BEGIN
    IF entity_table IS NULL THEN
        RAISE EXCEPTION 'entity_table must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO att FROM crm.status_attachments a WHERE a.entity_table = detach_auto_status.entity_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no automatic status attached', entity_table
            USING ERRCODE = 'undefined_object';
    END IF;
    FOR trg IN
        SELECT t.tgname, t.tgrelid::regclass AS rel FROM pg_trigger t
         WHERE t.tgrelid IN (att.entity_table, att.event_table)
           AND t.tgfoid IN ('crm.status_entity_trigger()'::regprocedure, 'crm.status_event_trigger()'::regprocedure)
           AND t.tgname LIKE 'crm\_auto\_status\_' || att.attachment_id || '\_%'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trg.tgname, trg.rel);
    END LOOP;
    DELETE FROM crm.status_attachments a WHERE a.attachment_id = att.attachment_id;
    IF NOT coalesce(keep_history, true) THEN
        DELETE FROM crm.status_history h WHERE h.entity_table = att.entity_table;
    END IF;
END
$$;
COMMENT ON FUNCTION crm.detach_auto_status(regclass, boolean) IS
'Removes the automatic-status triggers from the entity and event tables and deletes the attachment with its stages, transitions and rules; the user''s tables and data stay as they are; the history is kept unless keep_history is false.';

-- ---------------------------------------------------------------------------
-- Reports from the history
-- ---------------------------------------------------------------------------

CREATE VIEW crm.status_stage_times WITH (security_invoker = true) AS
SELECT h.entity_table,
       h.entity_key,
       h.to_status                                  AS status,
       h.changed_at                                 AS entered_at,
       lead(h.changed_at) OVER w                    AS left_at,
       lead(h.to_status) OVER w                     AS next_status,
       lead(h.changed_at) OVER w - h.changed_at     AS time_in_stage
  FROM crm.status_history h
WINDOW w AS (PARTITION BY h.entity_table, h.entity_key ORDER BY h.history_id);
COMMENT ON VIEW crm.status_stage_times IS
'One row per stay of an entity in a status, from crm.status_history: entered_at, left_at and time_in_stage (NULL while the entity is still in it), next_status.';

CREATE FUNCTION crm.status_conversion(entity_table regclass)
RETURNS TABLE (stage_position int, status text, entered bigint, advanced bigint, conversion numeric,
               currently_in bigint, median_time_in_stage interval)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH st AS (
    SELECT s.status, s.position FROM crm.status_stages s WHERE s.entity_table = $1
), reach AS (
    SELECT h.entity_key, st.position, min(h.history_id) AS first_id, max(h.history_id) AS last_id
      FROM crm.status_history h JOIN st ON st.status = h.to_status
     WHERE h.entity_table = $1
     GROUP BY h.entity_key, st.position
), cur AS (
    SELECT DISTINCT ON (h.entity_key) h.entity_key, h.to_status
      FROM crm.status_history h WHERE h.entity_table = $1
     ORDER BY h.entity_key, h.history_id DESC
), times AS (
    SELECT t.status, percentile_cont(0.5) WITHIN GROUP (ORDER BY t.time_in_stage) AS med
      FROM crm.status_stage_times t
     WHERE t.entity_table = $1 AND t.time_in_stage IS NOT NULL
     GROUP BY t.status
)
SELECT x.position, x.status, x.entered, x.advanced,
       round(x.advanced::numeric / NULLIF(x.entered, 0), 4),
       x.currently_in, x.med
  FROM (SELECT st.position,
               st.status,
               (SELECT count(*) FROM reach r WHERE r.position = st.position) AS entered,
               (SELECT count(*) FROM reach r WHERE r.position = st.position
                   AND EXISTS (SELECT 1 FROM reach r2 WHERE r2.entity_key = r.entity_key
                                  AND r2.position > r.position AND r2.last_id > r.first_id)) AS advanced,
               (SELECT count(*) FROM cur WHERE cur.to_status = st.status) AS currently_in,
               (SELECT times.med FROM times WHERE times.status = st.status) AS med
          FROM st) x
 ORDER BY x.position
$$;
COMMENT ON FUNCTION crm.status_conversion(regclass) IS
'Stage conversion from crm.status_history for an attached table: per stage in pipeline order, entities that entered it, those that later reached a higher stage, the conversion share, entities currently in it, and the median completed time in stage.';

-- ==== src/dashboard.sql ====
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
           OR period_from IS NOT NULL AND period_to IS NOT NULL AND period_from <= period_to)
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
'Sets the period (inclusive dates) that the crm.v_* views show; NULL, NULL = the last complete calendar month.';

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
           pg_catalog.count(*) FILTER (WHERE in_prev AND n_prev_end OPERATOR(pg_catalog.>=) 2) AS p_repeat
      FROM cu),
sp AS (
    SELECT channel, spent_on OPERATOR(pg_catalog.>=) $1 AS is_cur, pg_catalog.sum(amount) AS amount
      FROM %3$s WHERE spent_on OPERATOR(pg_catalog.>=) $3 AND spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1, 2),
spm AS (
    SELECT pg_catalog.sum(amount) FILTER (WHERE is_cur) AS c_spend, pg_catalog.sum(amount) FILTER (WHERE NOT is_cur) AS p_spend FROM sp),
-- cost per lead, as crm.lead_sla: a channel's spend in a calendar month /
-- the channel's leads created in that month (every month the periods touch)
cpl AS (
    SELECT s.channel, s.month, s.amount OPERATOR(pg_catalog./) n.leads AS cost_per_lead
      FROM (SELECT channel, pg_catalog.date_trunc('month', spent_on) AS month, pg_catalog.sum(amount) AS amount
              FROM %3$s WHERE spent_on OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $3)
               AND spent_on OPERATOR(pg_catalog.<) (pg_catalog.date_trunc('month', $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval)
             GROUP BY 1, 2) AS s
      JOIN (SELECT channel, pg_catalog.date_trunc('month', created_at) AS month, pg_catalog.count(*) AS leads
              FROM %1$s WHERE created_at OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $3)
               AND created_at OPERATOR(pg_catalog.<) (pg_catalog.date_trunc('month', $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval)
             GROUP BY 1, 2) AS n
        ON n.channel OPERATOR(pg_catalog.=) s.channel AND n.month OPERATOR(pg_catalog.=) s.month),
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
           pg_catalog.sum(unanswered OPERATOR(pg_catalog.*) coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost
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
        (1000, 'money_lost', 'unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric, 'count'),
        (1001, 'money_lost', 'unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0), 'money'),
        (1002, 'money_lost', 'unpaid_invoice_age', pg_catalog.round(c_unpaid_age, 2), pg_catalog.round(p_unpaid_age, 2), 'days'),
        (1003, 'money_lost', 'overdue_invoices', c_overdue::numeric, p_overdue::numeric, 'count'),
        (1004, 'money_lost', 'overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0), 'money'),
        (1005, 'money_lost', 'unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0), 'count'),
        (1006, 'money_lost', 'unanswered_leads_cost', pg_catalog.round(coalesce(c_unans_cost, 0), 2), pg_catalog.round(coalesce(p_unans_cost, 0), 2), 'money'),
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
        crm._source_sql('customers'));
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
    -- ignored, so a past period always shows the same numbers.
    q := crm._owner_dashboard_sql();
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
               revenue numeric, customers bigint, covered_customers bigint, coverage_pct numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_managers', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_managers');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
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
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.count(*) FILTER (WHERE e.outcome IS NULL) AS n_unknown
      -- OFFSET 0 fences the subquery: the stage CASE is computed once per row, not once per aggregate
      FROM (SELECT deal_id, changed_at, manager_id, %6$s AS outcome FROM %3$s OFFSET 0) AS e
     WHERE e.changed_at OPERATOR(pg_catalog.<) $2 GROUP BY e.deal_id),
dm AS (
    SELECT manager_id,
           pg_catalog.count(*) FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS won,
           pg_catalog.count(*) FILTER (WHERE lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity')) AS lost
      FROM dl WHERE least(won_at, lost_at) OPERATOR(pg_catalog.>=) $1 GROUP BY 1),
cv AS (
    SELECT c.manager_id, pg_catalog.count(*) AS customers, pg_catalog.count(*) FILTER (WHERE c.covered) AS covered
      FROM crm.dashboard_coverage($2) c GROUP BY 1),
cu AS MATERIALIZED (SELECT customer_id, manager_id::pg_catalog.text AS manager_id FROM %4$s),
rv AS (
    SELECT cu.manager_id, pg_catalog.sum(o.amount) AS revenue
      FROM %5$s LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) o.customer_id
     WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
m AS (SELECT manager_id FROM lm UNION SELECT manager_id FROM dm UNION SELECT manager_id FROM cv
      UNION SELECT manager_id FROM rv)
SELECT m.manager_id, coalesce(lm.leads, 0), coalesce(lm.answered, 0), coalesce(lm.leads OPERATOR(pg_catalog.-) lm.answered, 0),
       pg_catalog.round(lm.med::numeric, 2), coalesce(dm.won, 0), coalesce(dm.lost, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) dm.won) OPERATOR(pg_catalog./) CASE WHEN (dm.won OPERATOR(pg_catalog.+) dm.lost) OPERATOR(pg_catalog.<>) 0 THEN (dm.won OPERATOR(pg_catalog.+) dm.lost) END, 2),
       coalesce(rv.revenue, 0), coalesce(cv.customers, 0), coalesce(cv.covered, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) cv.covered) OPERATOR(pg_catalog./) CASE WHEN cv.customers OPERATOR(pg_catalog.<>) 0 THEN cv.customers END, 2)
  FROM m LEFT JOIN lm ON coalesce(pg_catalog.texteq(lm.manager_id, m.manager_id), lm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN dm ON coalesce(pg_catalog.texteq(dm.manager_id, m.manager_id), dm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN cv ON coalesce(pg_catalog.texteq(cv.manager_id, m.manager_id), cv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN rv ON coalesce(pg_catalog.texteq(rv.manager_id, m.manager_id), rv.manager_id IS NULL AND m.manager_id IS NULL)
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY m.manager_id
$sql$, crm._source_sql('leads'), crm._source_sql('interactions', 'x'), crm._source_sql('stage_events'),
       crm._source_sql('customers'), crm._source_sql('orders', 'o'), crm._stage_case('outcome', 'stage'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_managers(date, date) IS
'Per manager for the period [from, to]: leads, answered and unanswered leads (as of the period end), median first-response time, deals won and lost, win rate, revenue of the manager''s customers, and contact coverage of those customers at the period end.';

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
    RETURN QUERY EXECUTE pg_catalog.format($sql$
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
       crm._stage_case('rank', 'stage'), entered_sums, crm._stage_norm_case('open_stage'))
    USING b.cur_from, b.cur_to;
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
BEGIN
    b := crm._period_bounds('crm.dashboard_funnel', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_funnel');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
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
$sql$, crm._source_sql('stage_events'), crm._stage_case('step', 'stage'), crm._stage_case('outcome', 'stage'))
    USING b.cur_from, b.cur_to;
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
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    RETURN QUERY
    SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
      FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM ' OPERATOR(pg_catalog.||) crm._source_sql('orders'),
                          (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) AS x
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
-- ---------------------------------------------------------------------------

CREATE VIEW crm.v_owner_dashboard WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, d.section, d.metric, d.value, d.previous_value, d.change_pct, d.unit
  FROM crm.dashboard_period() AS p, LATERAL crm.owner_dashboard(p.period_from, p.period_to) AS d;
COMMENT ON VIEW crm.v_owner_dashboard IS
'crm.owner_dashboard for the dashboard period (crm.set_dashboard_period): one row per metric with the previous period''s value.';

CREATE VIEW crm.v_funnel WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, f.step_no, f.stage, f.entered, f.pct_of_first, f.pct_of_prev,
       f.dropped, f.lost_deals, f.lost_value
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_funnel(p.period_from, p.period_to) AS f;
COMMENT ON VIEW crm.v_funnel IS
'Sales funnel of the deals that started in the dashboard period: one row per step (Metabase: funnel chart of entered by stage).';

CREATE VIEW crm.v_pipeline WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, s.stage, s.stage_order, s.outcome, s.probability, s.entered,
       s.open_deals, s.open_value, s.weighted_value, s.lost_deals, s.lost_value
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_pipeline(p.period_from, p.period_to) AS s;
COMMENT ON VIEW crm.v_pipeline IS
'Pipeline per stage for the dashboard period: entered, open deals and (weighted) value at the period end, lost deals and value.';

CREATE VIEW crm.v_retention WITH (security_invoker = true) AS
SELECT r.cohort, r.period_no, r.cohort_size, r.active, r.retention_pct, r.revenue, r.cumulative_ltv
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_retention(p.period_to) AS r;
COMMENT ON VIEW crm.v_retention IS
'Monthly buyer cohorts of the 12 months up to the dashboard period end, one row per cohort and month since (Metabase: pivot table cohort x period_no, conditional formatting = heat map).';

CREATE VIEW crm.v_rfm WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, r.customer_id, r.recency_days, r.frequency, r.monetary, r.r, r.f, r.m, r.segment
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_rfm(p.period_to) AS r;
COMMENT ON VIEW crm.v_rfm IS
'RFM scores and segment of every buyer as of the dashboard period end (Metabase: bar chart of count by segment).';

CREATE VIEW crm.v_abc_xyz WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, a.product_id, a.revenue, a.revenue_share_pct, a.abc_class, a.cv, a.xyz_class, a.abc_xyz
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_abc_xyz(p.period_to) AS a;
COMMENT ON VIEW crm.v_abc_xyz IS
'ABC-XYZ class of every product as of the dashboard period end (Metabase: pivot abc_class x xyz_class, count or sum of revenue).';

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

CREATE VIEW crm.v_managers WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, m.manager_id, v.metric, v.value, v.unit
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_managers(p.period_from, p.period_to) AS m,
  LATERAL (VALUES ('leads', m.leads::numeric, 'count'), ('answered_leads', m.answered_leads::numeric, 'count'),
                  ('unanswered_leads', m.unanswered_leads::numeric, 'count'),
                  ('median_response', m.median_response_minutes, 'minutes'),
                  ('deals_won', m.deals_won::numeric, 'count'), ('deals_lost', m.deals_lost::numeric, 'count'),
                  ('win_rate', m.win_rate_pct, 'pct'), ('revenue', m.revenue, 'money'),
                  ('customers', m.customers::numeric, 'count'), ('covered_customers', m.covered_customers::numeric, 'count'),
                  ('coverage', m.coverage_pct, 'pct')) AS v(metric, value, unit);
COMMENT ON VIEW crm.v_managers IS
'Per manager and metric for the dashboard period: leads, response, win rate, revenue, coverage (Metabase: bar chart of value by manager_id, filtered on metric).';

CREATE VIEW crm.v_coverage WITH (security_invoker = true) AS
SELECT p.period_to AS as_of, c.abc_class, count(*) AS customers,
       count(*) FILTER (WHERE c.covered) AS covered, count(*) FILTER (WHERE NOT c.covered) AS overdue,
       round(100.0 * count(*) FILTER (WHERE c.covered) / count(*), 2) AS coverage_pct
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_coverage((p.period_to + 1)::timestamptz) AS c
 GROUP BY p.period_to, c.abc_class
 ORDER BY c.abc_class;
COMMENT ON VIEW crm.v_coverage IS
'Contact coverage per ABC class at the dashboard period end: customers, covered, overdue, coverage % (Metabase: bar chart of coverage_pct by abc_class).';

CREATE VIEW crm.v_lead_sla WITH (security_invoker = true) AS
SELECT p.period_from, p.period_to, coalesce(s.channel, 'all') AS channel, s.leads, s.answered, s.within_sla,
       s.never_answered, s.within_sla_pct, s.median_response_minutes
  FROM crm.dashboard_period() AS p, LATERAL crm.dashboard_lead_sla(p.period_from, p.period_to) AS s;
COMMENT ON VIEW crm.v_lead_sla IS
'Lead first-response SLA per channel (and "all") for the dashboard period (Metabase: bar chart of within_sla_pct by channel; number card for the "all" row).';

-- the views read everything with the caller's rights (security_invoker), so
-- reading them grants nothing the caller could not already read
GRANT SELECT ON crm.v_owner_dashboard, crm.v_funnel, crm.v_pipeline, crm.v_retention, crm.v_rfm,
                crm.v_abc_xyz, crm.v_channels, crm.v_managers, crm.v_coverage, crm.v_lead_sla TO PUBLIC;

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
                                    kpi_rows jsonb, funnel_rows jsonb, heat_rows jsonb, chan_rows jsonb) RETURNS text
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
<h2>Monthly buyer cohorts: share still buying, by months since the first order</h2>
%6$s
</body></html>
$html$, period_from, period_to, coalesce(kpi, ''), coalesce(funnel, ''), coalesce(chan, ''), coalesce(heat, ''));
END
$$;
COMMENT ON FUNCTION crm._dashboard_html(date, date, jsonb, jsonb, jsonb, jsonb) IS
'Draws the page of crm.dashboard_html from the rows of crm.owner_dashboard (with their position as ord), crm.dashboard_funnel, crm.dashboard_retention and crm.dashboard_channels, each a jsonb array of row objects.';

CREATE FUNCTION crm.dashboard_html(period_from date, period_to date) RETURNS text
LANGUAGE plpgsql VOLATILE
-- no SET search_path: the reports run the registered sources with the
-- caller's path; everything here is qualified, the page is drawn by the
-- pinned crm._dashboard_html
AS $$
BEGIN
    RETURN crm._dashboard_html(period_from, period_to,
        -- first: validates the period and the sources
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(o) ORDER BY o.ord)
           FROM crm.owner_dashboard(period_from, period_to) WITH ORDINALITY AS o(metric, value, unit, previous_value, change_pct, section, ord)),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f)) FROM crm.dashboard_funnel(period_from, period_to) AS f),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r)) FROM crm.dashboard_retention(period_to) AS r),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c)) FROM crm.dashboard_channels(period_from, period_to) AS c));
END
$$;
COMMENT ON FUNCTION crm.dashboard_html(date, date) IS
'A static HTML page (inline SVG, no scripts) with the owner dashboard figures, the sales funnel, the channel table and the cohort retention heat map for the period [from, to].';
