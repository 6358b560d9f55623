-- pgTAP (hardening): every aggregate of crm_analytics, discovered from the
-- catalog, in the three shapes that distributed and parallel execution use.
--
-- For each aggregate that belongs to the extension (pg_depend deptype 'e'):
--   1. it runs on a sample data set (below, or generated from its argument
--      types when no sample is listed) and gives a result per group;
--   2. every partial state (a pg_temp aggregate with the same transition
--      function and state type, no final function) round-trips exactly
--      through its text form: state::text::state_type::text = state::text;
--   3. the distributed path simulated on one node (what Citus does with
--      citus.coordinator_aggregation_strategy = 'disabled'): partial states
--      computed separately on two interleaved halves of each group, turned
--      to text and back through the state type's output and input
--      functions, combined by the COMBINEFUNC, finalized: equal to the
--      one-pass result;
--   4. forced parallel query plans a Partial Aggregate and launches workers;
--   5. and gives the serial result.
-- A new aggregate is checked as soon as it is installed; give it a sample
-- row below when the generated arguments do not fit it.
BEGIN;

-- BEGIN SAMPLES (also read by test/fuzz.sh)
-- agg: the aggregate's signature as regprocedure prints it; query: columns
-- (g int group, h int half 0/1, then one column per aggregate argument).
CREATE TEMP TABLE hardening_samples (agg text PRIMARY KEY, query text NOT NULL);
INSERT INTO hardening_samples VALUES
('crm.window_funnel(interval,timestamp with time zone,boolean[])',
 $q$SELECT i % 20, i % 2, interval '1 day', CASE WHEN i % 101 = 0 THEN NULL ELSE timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour' END,
           ARRAY[i % 4 = 1, i % 4 = 2, i % 4 = 3] FROM generate_series(1, 3000) i$q$),
('crm.window_funnel(interval,text,timestamp with time zone,boolean[])',
 $q$SELECT i % 20, i % 2, interval '2 days', 'strict_order', timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour',
           ARRAY[i % 5 = 1, i % 5 = 2, i % 5 = 3, i % 5 = 4] FROM generate_series(1, 3000) i$q$),
('crm.window_funnel_times(interval,timestamp with time zone,boolean[])',
 $q$SELECT i % 20, i % 2, interval '1 day', timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour',
           ARRAY[i % 4 = 1, i % 4 = 2, i % 4 = 3] FROM generate_series(1, 3000) i$q$),
('crm.window_funnel_times(interval,text,timestamp with time zone,boolean[])',
 $q$SELECT i % 20, i % 2, interval '1 day', 'strict_increase,strict_once', timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour',
           ARRAY[i % 4 = 1, i % 4 = 2, i % 4 = 3] FROM generate_series(1, 3000) i$q$),
('crm.window_funnel_by_name(interval,timestamp with time zone,text,text[])',
 $q$SELECT i % 20, i % 2, interval '1 day', CASE WHEN i % 101 = 0 THEN NULL ELSE timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour' END,
           (ARRAY['lead', 'demo', 'deal', 'other'])[1 + i % 4], ARRAY['lead', 'demo', 'deal'] FROM generate_series(1, 3000) i$q$),
('crm.window_funnel_by_name(interval,text,timestamp with time zone,text,text[])',
 $q$SELECT i % 20, i % 2, interval '2 days', 'strict_order', timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour',
           CASE WHEN i % 7 = 0 THEN NULL ELSE (ARRAY['a', 'b', 'c', 'd', 'e'])[1 + i % 5] END, ARRAY['b', 'c', 'd', 'e']
      FROM generate_series(1, 3000) i$q$),
('crm.window_funnel_times_by_name(interval,timestamp with time zone,text,text[])',
 $q$SELECT i % 20, i % 2, interval '1 day', timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour',
           (ARRAY['lead', 'demo', 'deal', 'other'])[1 + i % 4], ARRAY['lead', 'demo', 'deal'] FROM generate_series(1, 3000) i$q$),
('crm.window_funnel_times_by_name(interval,text,timestamp with time zone,text,text[])',
 $q$SELECT i % 20, i % 2, interval '1 day', 'strict_increase,strict_once', timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour',
           (ARRAY['lead', 'demo', 'deal', 'other'])[1 + i % 4], ARRAY['lead', 'demo', 'lead', 'deal'] FROM generate_series(1, 3000) i$q$),
('crm.funnel_counts(integer,integer)',
 $q$SELECT i % 20, i % 2, i % 5, 4 FROM generate_series(1, 3000) i$q$),
('crm.retention(boolean[])',
 $q$SELECT i % 20, i % 2, ARRAY[i % 3 = 0, i % 7 = 0, i % 11 = 0, CASE WHEN i % 13 = 0 THEN NULL ELSE i % 17 = 0 END] FROM generate_series(1, 3000) i$q$),
('crm.retention(boolean,boolean,boolean)',
 $q$SELECT i % 20, i % 2, i % 3 = 0, i % 7 = 0, CASE WHEN i % 13 = 0 THEN NULL ELSE i % 17 = 0 END FROM generate_series(1, 3000) i$q$),
('crm.retention(boolean,boolean,boolean,boolean,boolean,boolean,boolean,boolean,boolean,boolean,boolean,boolean)',
 $q$SELECT i % 20, i % 2, i % 3 = 0, i % 5 = 1, i % 7 = 2, i % 11 = 3, i % 13 = 4, i % 17 = 5, i % 19 = 6, i % 23 = 7,
           i % 29 = 8, i % 31 = 9, NULL::boolean, i % 37 = 11 FROM generate_series(1, 3000) i$q$),
('crm.cohort_activity(timestamp with time zone,numeric,text)',
 $q$SELECT i % 20, i % 2, timestamptz '2024-01-01' + (i * 37 % 700) * interval '1 day', (i % 90) + 0.25, 'month' FROM generate_series(1, 3000) i$q$),
('crm.demand_cv(double precision,integer,integer)',
 $q$SELECT i % 20, i % 2, CASE WHEN i % 97 = 0 THEN NULL ELSE (i % 7)::float8 END, (i / 20) % 12 + 1, 12 FROM generate_series(1, 3000) i$q$),
('crm.clv_summary(timestamp with time zone,numeric,timestamp with time zone)',
 $q$SELECT i % 20, i % 2, timestamptz '2024-01-01' + (i * 7919 % 700) * interval '1 day', (i % 50) + 0.5, timestamptz '2026-01-01' FROM generate_series(1, 3000) i$q$),
('crm.clv_summary(timestamp with time zone,numeric,timestamp with time zone,interval)',
 $q$SELECT i % 20, i % 2, timestamptz '2024-01-01' + (i * 7919 % 700) * interval '1 day', (i % 50) + 0.5, timestamptz '2026-01-01', interval '7 days' FROM generate_series(1, 3000) i$q$),
('crm.bgnbd_fit(double precision,double precision,double precision)',
 $q$SELECT i % 4, i % 2, f, CASE WHEN f = 0 THEN 0 ELSE 5 + (i * 13 % 30) END, 39 FROM (SELECT i, ((i * 7) % 9 / 2)::float8 f FROM generate_series(1, 3000) i) s$q$),
('crm.gamma_gamma_fit(double precision,double precision)',
 $q$SELECT i % 4, i % 2, (1 + i % 5)::float8, 10 + (i * 37 % 100) + (i % 5) * 3.5 FROM generate_series(1, 3000) i$q$),
('crm.median_interval(timestamp with time zone)',
 $q$SELECT i % 20, i % 2, CASE WHEN i % 89 = 0 THEN NULL ELSE timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour' END FROM generate_series(1, 3000) i$q$);
-- END SAMPLES

-- the aggregates under test
CREATE TEMP TABLE hardening_aggs AS
SELECT row_number() OVER (ORDER BY a.aggfnoid::regprocedure::text) AS n,
       a.aggfnoid, a.aggfnoid::regprocedure::text AS sig, p.pronargs, ARRAY(SELECT unnest(p.proargtypes)) AS argtypes,
       a.aggtransfn, a.aggcombinefn, a.aggfinalfn, a.aggtranstype, a.agginitval, a.aggfinalextra, a.aggkind
  FROM pg_aggregate a
  JOIN pg_proc p ON p.oid = a.aggfnoid
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = a.aggfnoid AND d.deptype = 'e'
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crm_analytics');

SELECT plan((SELECT 1 + 5 * count(*)::int FROM hardening_aggs));

SELECT ok((SELECT count(*) FROM hardening_aggs) > 0, 'the extension has aggregates to check');

-- arguments generated from the argument types, for aggregates without a sample
CREATE FUNCTION pg_temp.generated_sample(argtypes oid[]) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    cols text[] := ARRAY['i % 20', 'i % 2'];
    t oid;
BEGIN
    FOREACH t IN ARRAY argtypes LOOP
        cols := cols || CASE t
            WHEN 'timestamptz'::regtype THEN $$timestamptz '2025-01-01' + (i * 7 % 500) * interval '1 hour'$$
            WHEN 'timestamp'::regtype THEN $$timestamp '2025-01-01' + (i * 7 % 500) * interval '1 hour'$$
            WHEN 'date'::regtype THEN $$date '2025-01-01' + i % 400$$
            WHEN 'numeric'::regtype THEN $$(i % 100)::numeric + 0.5$$
            WHEN 'float8'::regtype THEN $$(i % 10)::float8$$
            WHEN 'float4'::regtype THEN $$(i % 10)::float4$$
            WHEN 'int4'::regtype THEN $$i % 3 + 1$$
            WHEN 'int8'::regtype THEN $$(i % 3 + 1)::bigint$$
            WHEN 'int2'::regtype THEN $$(i % 3 + 1)::smallint$$
            WHEN 'bool'::regtype THEN $$i % 2 = 0$$
            WHEN 'bool[]'::regtype THEN $$ARRAY[i % 2 = 0, i % 3 = 0, i % 5 = 0]$$
            WHEN 'interval'::regtype THEN $$interval '1 day'$$
            WHEN 'text'::regtype THEN $$''$$
            ELSE NULL END;
        IF cols[array_length(cols, 1)] IS NULL THEN
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN format('SELECT %s FROM generate_series(1, 3000) i', array_to_string(cols, ', '));
END
$f$;

CREATE FUNCTION pg_temp.check_aggregates() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
    q text;
    tbl text;
    args text;
    argdecl text;
    call_args text;
    serial text;
    other text;
    plan_text text;
    bad bigint;
    partial_agg text;
    comb_agg text;
BEGIN
    FOR r IN SELECT * FROM hardening_aggs ORDER BY n LOOP
        q := coalesce((SELECT s.query FROM hardening_samples s WHERE to_regprocedure(s.agg) = r.aggfnoid),
                      pg_temp.generated_sample(r.argtypes));
        tbl := 'public.hardening_pa_' || r.n;
        SELECT string_agg('a' || i, ', ' ORDER BY i), string_agg(format_type(r.argtypes[i], NULL), ', ' ORDER BY i)
          INTO args, argdecl FROM generate_series(1, r.pronargs) i;
        -- VARIADIC aggregates get their array argument as it is
        call_args := args;
        IF (SELECT provariadic <> 0 FROM pg_proc WHERE oid = r.aggfnoid) THEN
            call_args := regexp_replace(args, '(a[0-9]+)$', 'VARIADIC \1');
        END IF;

        IF q IS NULL OR r.aggkind <> 'n' THEN
            RETURN NEXT fail(format('%s: no sample data (add a row to hardening_samples in test/parallel_all.sql)', r.sig));
            RETURN NEXT skip('no sample', 4);
            CONTINUE;
        END IF;

        -- 1. the sample runs
        BEGIN
            EXECUTE format('CREATE TABLE %s AS SELECT * FROM (%s) s(g, h, %s)', tbl, q, args);
            EXECUTE format('ALTER TABLE %s SET (parallel_workers = 2)', tbl);
            EXECUTE format('ANALYZE %s', tbl);
            SET LOCAL max_parallel_workers_per_gather = 0;
            EXECUTE format('SELECT string_agg(g || ''='' || coalesce(v::text, ''NULL''), '' | '' ORDER BY g) FROM (SELECT g, %s(%s) v FROM %s GROUP BY g) s',
                           r.aggfnoid::regproc, call_args, tbl) INTO serial;
        EXCEPTION WHEN OTHERS THEN
            RETURN NEXT fail(format('%s: sample failed: %s (%s)', r.sig, SQLERRM, SQLSTATE));
            RETURN NEXT skip('sample failed', 4);
            CONTINUE;
        END;
        RETURN NEXT ok(serial IS NOT NULL, format('%s runs on its sample', r.sig));

        -- pg_temp twins: partial (transition only) and combiner (combine + final)
        partial_agg := 'pg_temp.hardening_partial_' || r.n;
        comb_agg := 'pg_temp.hardening_combine_' || r.n;
        EXECUTE format('CREATE AGGREGATE %s(%s) (SFUNC = %s, STYPE = %s%s)', partial_agg, argdecl,
                       r.aggtransfn::regproc, format_type(r.aggtranstype, NULL),
                       CASE WHEN r.agginitval IS NOT NULL THEN format(', INITCOND = %L', r.agginitval) ELSE '' END);
        IF r.aggcombinefn <> 0 AND NOT r.aggfinalextra THEN
            EXECUTE format('CREATE AGGREGATE %s(%s) (SFUNC = %s, STYPE = %s%s)', comb_agg, format_type(r.aggtranstype, NULL),
                           r.aggcombinefn::regproc, format_type(r.aggtranstype, NULL),
                           CASE WHEN r.aggfinalfn <> 0 THEN ', FINALFUNC = ' || r.aggfinalfn::regproc ELSE '' END);
        END IF;

        -- 2. every partial state round-trips through text
        BEGIN
            EXECUTE format('SELECT count(*) FROM (SELECT g, h, %s(%s) st FROM %s GROUP BY g, h) p WHERE st::text::%s::text IS DISTINCT FROM st::text',
                           partial_agg, args, tbl, format_type(r.aggtranstype, NULL)) INTO bad;
            RETURN NEXT is(bad, 0::bigint, format('%s: every partial state of type %s round-trips through its text form',
                                                 r.sig, format_type(r.aggtranstype, NULL)));
        EXCEPTION WHEN OTHERS THEN
            RETURN NEXT fail(format('%s: partial state round trip failed: %s (%s)', r.sig, SQLERRM, SQLSTATE));
        END;

        -- 3. split halves -> text -> input function -> combine -> final = one pass
        IF r.aggcombinefn = 0 OR r.aggfinalextra THEN
            RETURN NEXT fail(format('%s: no COMBINEFUNC (or FINALFUNC_EXTRA): cannot run in partial steps', r.sig));
        ELSE
            BEGIN
                EXECUTE format('SELECT string_agg(g || ''='' || coalesce(v::text, ''NULL''), '' | '' ORDER BY g) FROM ('
                               'SELECT g, %s(st::text::%s ORDER BY h) v FROM (SELECT g, h, %s(%s) st FROM %s GROUP BY g, h) p GROUP BY g) s',
                               comb_agg, format_type(r.aggtranstype, NULL), partial_agg, args, tbl) INTO other;
                RETURN NEXT is(other, serial, format('%s: states of two halves, through text, combined and finalized = one pass', r.sig));
            EXCEPTION WHEN OTHERS THEN
                RETURN NEXT fail(format('%s: split/combine failed: %s (%s)', r.sig, SQLERRM, SQLSTATE));
            END;
        END IF;

        -- 4./5. forced parallel plan, same result
        SET LOCAL parallel_setup_cost = 0;
        SET LOCAL parallel_tuple_cost = 0;
        SET LOCAL min_parallel_table_scan_size = 0;
        SET LOCAL max_parallel_workers_per_gather = 2;
        SET LOCAL enable_hashagg = off;
        plan_text := '';
        -- EXPLAIN ANALYZE runs the plan: the partial states really cross from
        -- the workers to the leader
        FOR q IN EXECUTE format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT g, %s(%s) v FROM %s GROUP BY g',
                                r.aggfnoid::regproc, call_args, tbl) LOOP
            plan_text := plan_text || q || E'\n';
        END LOOP;
        RETURN NEXT ok(plan_text ~ 'Partial \w*Aggregate' AND plan_text ~ 'Workers Launched: [1-9]',
                       format('%s: forced parallel plan has a Partial Aggregate and runs in parallel workers', r.sig));
        BEGIN
            EXECUTE format('SELECT string_agg(g || ''='' || coalesce(v::text, ''NULL''), '' | '' ORDER BY g) FROM (SELECT g, %s(%s) v FROM %s GROUP BY g) s',
                           r.aggfnoid::regproc, call_args, tbl) INTO other;
            RETURN NEXT is(other, serial, format('%s: parallel result = serial result', r.sig));
        EXCEPTION WHEN OTHERS THEN
            RETURN NEXT fail(format('%s: parallel run failed: %s (%s)', r.sig, SQLERRM, SQLSTATE));
        END;
        RESET parallel_setup_cost;
        RESET parallel_tuple_cost;
        RESET min_parallel_table_scan_size;
        RESET max_parallel_workers_per_gather;
        RESET enable_hashagg;
    END LOOP;
END
$f$;

SELECT * FROM pg_temp.check_aggregates();

SELECT * FROM finish();
ROLLBACK;
