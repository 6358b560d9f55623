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

-- The RFM scoring of per-customer figures: SQL text of a query over per (the
-- text, built by the caller, of a query of (key, last order timestamptz,
-- frequency bigint, monetary numeric, ord: the order of the rows, by key) per
-- customer; $1 = as_of) giving crm.rfm_report's rows.  One text for the
-- report over an orders query and for its answer from the rollups
-- (crm._fast_rfm_sql).
CREATE FUNCTION crm._rfm_sql(per text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT format($q$
        WITH per AS (
            SELECT p.key,
                   pg_catalog.floor(pg_catalog.date_part('epoch', $1 OPERATOR(pg_catalog.-) p.last_at)
                       OPERATOR(pg_catalog./) 86400::pg_catalog.float8)::pg_catalog.int4 AS recency_days,
                   p.frequency, p.monetary, p.ord
              FROM (%s) AS p(key, last_at, frequency, monetary, ord)
        ), scored AS (
            SELECT per.*,
                   crm.quantile_score(OPERATOR(pg_catalog.-) per.recency_days::pg_catalog.float8) OVER w AS r,
                   crm.quantile_score(per.frequency::pg_catalog.float8) OVER w AS f,
                   crm.quantile_score(per.monetary::pg_catalog.float8) OVER w AS m
              FROM per
            -- (a score depends on the whole partition only: the rows go through in the
            -- order of ord, so that a per-customer query already in that order is not sorted)
            WINDOW w AS (ORDER BY per.ord)
        )
        SELECT s.key::pg_catalog.text, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m,
               pg_catalog.concat(s.r, s.f, s.m), crm.rfm_segment(s.r, s.f)
          FROM scored AS s
         ORDER BY s.ord
        $q$, per)
$fn$;
COMMENT ON FUNCTION crm._rfm_sql(text) IS
'SQL text of the RFM scoring over a per-customer query (key, last order, frequency, monetary, ord; $1 = as_of): recency_days, R, F, M by crm.quantile_score, rfm_code and crm.rfm_segment, ordered by ord, as crm.rfm_report returns them.';

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
    RETURN QUERY EXECUTE crm._rfm_sql(pg_catalog.format($q$
            SELECT i.customer, pg_catalog.max(i.ordered_at::pg_catalog.timestamptz),
                   pg_catalog.count(*), pg_catalog.sum(i.amount::pg_catalog.numeric), i.customer
              FROM (%s) AS i(customer, ordered_at, amount)
             WHERE i.customer IS NOT NULL AND i.ordered_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<=) $1
             GROUP BY i.customer
        $q$, orders_sql))
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
