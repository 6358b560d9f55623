-- crm_analytics 0.2.0 -> 0.3.0
--
-- 0.3.0 is the security and robustness release (docs/security.md): no crash
-- and no escalation for any role and any input.  Each section below holds the
-- DDL of one area; C-only changes need no SQL here (the new .so carries them).
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.3.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.3.0'::text $$;


-- ==== A. inner SQL text: one SELECT, parsed into one plan ====

-- ==== end of A ====


-- ==== B. auto-status: trigger cache, sweep, partitions, user triggers, actor ====

-- ==== end of B ====


-- ==== C. search_path: nothing resolves through the caller's path ====

-- ==== end of C ====


-- ==== D. grants, settings, empty periods ====

-- ==== end of D ====


-- ==== E. bounded and cancellable work, funnel rules ====

-- funnel_report drops rows whose entity is NULL (as cohort_retention and rfm_report do).
-- The C changes (interrupt checks, funnel_counts overflow, one step array per
-- window_funnel_by_name group, mode combinations, state layout FNL3) come with the library.
CREATE OR REPLACE FUNCTION crm.funnel_report(events_sql text, steps text[], "window" interval DEFAULT '30 days',
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
                                OPERATOR(pg_catalog./) NULLIF(first_n, 0), 2),
               CASE WHEN k OPERATOR(pg_catalog.>) 1 THEN
                   pg_catalog.round((100::pg_catalog.numeric OPERATOR(pg_catalog.*) entered)
                                    OPERATOR(pg_catalog./) NULLIF(prev_n, 0), 2) END,
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

-- ==== end of E ====


-- ==== F. packaging and install ====

-- ==== end of F ====
