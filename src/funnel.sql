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
