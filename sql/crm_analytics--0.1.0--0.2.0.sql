-- crm_analytics 0.1.0 -> 0.2.0
--
-- 0.2.0 changes:
--   * crm.version() reports 0.2.0;
--   * crm.clv_simulate bounds its work (C only, no catalog change): customers
--     at most 100,000,000 (22023) and at most 100,000 purchases per simulated
--     customer (54000), found by the fuzz test;
--   * crm.window_funnel and crm.window_funnel_times get fixed-arity overloads
--     of 1 to 12 separate boolean steps, with and without the mode (and their
--     transition functions crm._window_funnel_transfn), so that calls with
--     separate step arguments no longer build a boolean[] per row; the
--     VARIADIC aggregates are unchanged.  The window_funnel state's binary
--     layout changed (C only; its text form is unchanged and states of the
--     0.1.0 layout are still read);
--   * the release procedure (docs/releasing.md) and the upgrade test
--     (test/upgrade.sh: catalog of an upgraded install = a fresh install; the
--     pgTAP suite passes on the upgraded install).
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.2.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.2.0'::text $$;

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
