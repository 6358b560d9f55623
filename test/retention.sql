-- pgTAP: crm.retention (ClickHouse retention) against plain SQL and hand-worked cases
BEGIN;
SELECT plan(44);

CREATE FUNCTION pg_temp.explain_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP RETURN NEXT l; END LOOP;
END $f$;

SELECT has_function('crm', 'retention', ARRAY['boolean[]'], 'crm.retention(VARIADIC boolean[]) exists');
SELECT ok((SELECT aggcombinefn <> 0 AND p.proparallel = 's' AND aggtranstype = 'crm.retention_state'::regtype
             FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE aggfnoid = 'crm.retention(boolean[])'::regprocedure),
          'crm.retention: combine function, parallel safe, real state type');

-- hand-worked: the ClickHouse documentation example (uid visits on 2020-01-01..03)
CREATE TEMP TABLE visits(uid int, d date);
INSERT INTO visits VALUES
    (0, '2020-01-01'), (0, '2020-01-02'), (0, '2020-01-03'), (1, '2020-01-01'), (1, '2020-01-03'),
    (2, '2020-01-02'), (2, '2020-01-03'), (3, '2020-01-01'), (4, '2020-01-03');
SELECT results_eq(
  $$SELECT uid, crm.retention(d = '2020-01-01', d = '2020-01-02', d = '2020-01-03') FROM visits GROUP BY uid ORDER BY uid$$,
  $$VALUES (0, '{1,1,1}'::int[]), (1, '{1,0,1}'), (2, '{0,0,0}'), (3, '{1,0,0}'), (4, '{0,0,0}')$$,
  'hand-worked: r[k] needs cond1 and condk on some rows, not the same row');
SELECT is((SELECT crm.retention(x > 3, NULL, x < 2) FROM generate_series(1, 5) x), '{1,0,1}'::int[],
          'a NULL condition is false; conditions may hold on different rows');
SELECT is((SELECT crm.retention(x > 100, x > 1) FROM generate_series(1, 5) x), '{0,0}'::int[],
          'cond1 never holds: all zero');
SELECT is((SELECT crm.retention(x > 0) FROM generate_series(1, 0) x), NULL::int[], 'no rows: NULL');
SELECT is((SELECT crm.retention(VARIADIC CASE WHEN x = 2 THEN ARRAY[true, true] END) FROM generate_series(1, 3) x),
          '{1,1}'::int[], 'a NULL condition array is ignored');

-- 64 conditions: the last bit counts
SELECT is((SELECT (crm.retention(VARIADIC array_fill(true, ARRAY[63]) || (x = 2)))[64] FROM generate_series(1, 3) x),
          1, '64 conditions: condition 64 is reported');
SELECT is((SELECT array_length(crm.retention(VARIADIC array_fill(false, ARRAY[64])), 1) FROM generate_series(1, 3) x),
          64, '64 conditions: 64 results');

-- plain SQL on seeded data, serial and forced parallel
CREATE TABLE ret_t AS
SELECT (i % 997) AS g, (i * 7919) % 101 AS v, CASE WHEN i % 13 = 0 THEN NULL ELSE (i % 3 = 0) END AS flag
  FROM generate_series(1, 60000) i;
ANALYZE ret_t;
CREATE TEMP TABLE ret_plain AS
SELECT g, ARRAY[bool_or(v < 5)::int,
                (bool_or(v < 5) AND bool_or(v BETWEEN 50 AND 52))::int,
                (bool_or(v < 5) AND coalesce(bool_or(flag AND v > 99), false))::int,
                (bool_or(v < 5) AND coalesce(bool_or(flag AND v = 7), false))::int] AS r
  FROM ret_t GROUP BY g;
SELECT ok((SELECT count(DISTINCT r) FROM ret_plain) >= 4, 'the plain-SQL fixture has several distinct answers');
SELECT results_eq(
  $$SELECT g, crm.retention(v < 5, v BETWEEN 50 AND 52, flag AND v > 99, flag AND v = 7) FROM ret_t GROUP BY g ORDER BY g$$,
  $$SELECT g, r FROM ret_plain ORDER BY g$$,
  'serial: equals bool_or plain SQL per group');

SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL enable_hashagg = off;
ALTER TABLE ret_t SET (parallel_workers = 2);
SELECT ok((SELECT string_agg(l, E'\n') FROM pg_temp.explain_lines(
             'SELECT g, crm.retention(v < 5, v BETWEEN 50 AND 52, flag AND v > 99, flag AND v = 7) FROM ret_t GROUP BY g') l)
          ~ 'Partial GroupAggregate|Partial HashAggregate', 'forced parallel: a Partial Aggregate plan');
SELECT results_eq(
  $$SELECT g, crm.retention(v < 5, v BETWEEN 50 AND 52, flag AND v > 99, flag AND v = 7) FROM ret_t GROUP BY g ORDER BY g$$,
  $$SELECT g, r FROM ret_plain ORDER BY g$$,
  'forced parallel: equals bool_or plain SQL per group');
SELECT ok((SELECT string_agg(l, E'\n') FROM pg_temp.explain_lines(
             'SELECT crm.retention(v < 5, v > 99) FROM ret_t') l) ~ 'Partial Aggregate',
          'forced parallel, no GROUP BY: a Partial Aggregate plan');
SELECT is((SELECT crm.retention(v < 5, v > 99, v = 1000) FROM ret_t), '{1,1,0}'::int[], 'forced parallel, no GROUP BY: result');
RESET enable_hashagg;

-- the fixed-arity overloads crm.retention(boolean, ...): 1 to 12 conditions
SELECT is((SELECT array_agg(p.pronargs ORDER BY p.pronargs) FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.pronamespace = 'crm'::regnamespace AND p.proname = 'retention' AND p.provariadic = 0
              AND p.proargtypes::oid[] <@ ARRAY['boolean'::regtype::oid]
              AND a.aggtranstype = 'crm.retention_fixed_state'::regtype AND a.aggcombinefn <> 0
              AND p.proparallel = 's'),
          ARRAY(SELECT generate_series(1, 12)::int2), 'crm.retention(boolean x 1..12): twelve overloads, combine function, parallel safe, by-value state type');
SELECT ok((SELECT typbyval AND typlen = 4 FROM pg_type WHERE oid = 'crm.retention_fixed_state'::regtype),
          'crm.retention_fixed_state is 4 bytes passed by value');
-- which aggregate a call resolves to: the one a view over it depends on
CREATE TEMP TABLE res_t(x int);
CREATE TEMP VIEW res_3 AS SELECT crm.retention(x > 1, x > 2, x > 3) FROM res_t;
CREATE TEMP VIEW res_12 AS SELECT crm.retention(x > 1, x > 2, x > 3, x > 4, x > 5, x > 6, x > 7, x > 8, x > 9, x > 10, x > 11, x > 12) FROM res_t;
CREATE TEMP VIEW res_13 AS SELECT crm.retention(x > 1, x > 2, x > 3, x > 4, x > 5, x > 6, x > 7, x > 8, x > 9, x > 10, x > 11, x > 12, x > 13) FROM res_t;
CREATE TEMP VIEW res_var AS SELECT crm.retention(VARIADIC ARRAY[x > 1, x > 2, x > 3]) FROM res_t;
CREATE FUNCTION pg_temp.view_agg(v regclass) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(d.refobjid::regprocedure::text, ',') FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = v AND d.refclassid = 'pg_proc'::regclass
       AND d.refobjid IN (SELECT aggfnoid FROM pg_aggregate) $$;
SELECT is(pg_temp.view_agg('res_3'), 'crm.retention(boolean,boolean,boolean)', 'three written-out conditions resolve to the fixed overload');
SELECT is(pg_temp.view_agg('res_12'), 'crm.retention(' || array_to_string(array_fill('boolean'::text, ARRAY[12]), ',') || ')',
          'twelve written-out conditions resolve to the fixed overload');
SELECT is(pg_temp.view_agg('res_13'), 'crm.retention(boolean[])', 'thirteen conditions resolve to the VARIADIC aggregate');
SELECT is(pg_temp.view_agg('res_var'), 'crm.retention(boolean[])', 'an explicit VARIADIC array resolves to the VARIADIC aggregate');
SELECT results_eq(
  $$SELECT uid, crm.retention(d = '2020-01-01', d = '2020-01-02', d = '2020-01-03') FROM visits GROUP BY uid ORDER BY uid$$,
  $$SELECT uid, crm.retention(VARIADIC ARRAY[d = '2020-01-01', d = '2020-01-02', d = '2020-01-03']) FROM visits GROUP BY uid ORDER BY uid$$,
  'fixed overload = VARIADIC on the ClickHouse example');
SELECT is((SELECT crm.retention(x > 3, NULL, x < 2) FROM generate_series(1, 5) x), '{1,0,1}'::int[],
          'fixed overload: a NULL condition is false');
SELECT is((SELECT crm.retention(x > 0, x > 1) FROM generate_series(1, 0) x), NULL::int[], 'fixed overload: no rows: NULL');

-- every arity 1..12 against plain SQL (bool_or per condition), serial and forced parallel:
-- condition k is v = (13 * k) % 101 (about half the groups see it), NULL where flag is NULL
CREATE FUNCTION pg_temp.arity_mismatches(n int) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
    conds text := '';
    plain text := '';
    k int;
    bad bigint;
BEGIN
    FOR k IN 1..n LOOP
        conds := conds || CASE WHEN k > 1 THEN ', ' ELSE '' END
                 || format('CASE WHEN flag IS NULL THEN NULL ELSE v = %s END', 13 * k % 101);
        plain := plain || CASE WHEN k > 1 THEN ', ' ELSE '' END
                 || format('(coalesce(bool_or(flag IS NOT NULL AND v = 13), false)'
                           ' AND coalesce(bool_or(flag IS NOT NULL AND v = %s), false))::int', 13 * k % 101);
    END LOOP;
    EXECUTE format('SELECT count(*) FROM (SELECT g, crm.retention(%s) r, ARRAY[%s] p FROM ret_t GROUP BY g) s WHERE r IS DISTINCT FROM p',
                   conds, plain) INTO bad;
    RETURN bad;
END $f$;
SELECT is(ARRAY(SELECT n FROM generate_series(1, 12) n WHERE pg_temp.arity_mismatches(n) <> 0), '{}'::int[],
          'serial: each arity 1..12 equals bool_or plain SQL per group');
SELECT ok((SELECT count(DISTINCT r) FROM (SELECT crm.retention(v = 13, v = 26, v = 39, v = 52) r FROM ret_t GROUP BY g) s) >= 4,
          'the arity fixture has several distinct answers');
SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL enable_hashagg = off;
SELECT ok((SELECT string_agg(l, E'\n') FROM pg_temp.explain_lines(
             'SELECT g, crm.retention(v < 5, v > 50, flag) FROM ret_t GROUP BY g') l)
          ~ 'Partial GroupAggregate|Partial HashAggregate', 'fixed overload, forced parallel: a Partial Aggregate plan');
SELECT is(ARRAY(SELECT n FROM generate_series(1, 12) n WHERE pg_temp.arity_mismatches(n) <> 0), '{}'::int[],
          'forced parallel: each arity 1..12 equals bool_or plain SQL per group');
RESET enable_hashagg; RESET parallel_setup_cost; RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;

-- its state type: text round trip, validated input, combine of different counts
SELECT is('101'::crm.retention_fixed_state::text, '101', 'crm.retention_fixed_state text round trip');
SELECT is(crm.retention_fixed_finalfn('1011'::crm.retention_fixed_state), '{1,0,1,1}'::int[], 'fixed final function over a typed-in state');
SELECT throws_ok($$SELECT ''::crm.retention_fixed_state$$, '22P02', NULL, 'fixed state text with no condition: 22P02');
SELECT throws_ok($$SELECT repeat('1', 13)::crm.retention_fixed_state$$, '22P02', NULL, 'fixed state text with 13 conditions: 22P02');
SELECT throws_ok($$SELECT '1x'::crm.retention_fixed_state$$, '22P02', NULL, 'fixed state text with a bad character: 22P02');
CREATE AGGREGATE pg_temp.retention_fixed_merge(crm.retention_fixed_state) (
    SFUNC = crm.retention_fixed_combinefn, STYPE = crm.retention_fixed_state, FINALFUNC = crm.retention_fixed_finalfn);
SELECT is((SELECT pg_temp.retention_fixed_merge(s::crm.retention_fixed_state) FROM (VALUES ('100'), (NULL), ('011')) v(s)),
          '{1,1,1}'::int[], 'fixed combine: ORs states, skips NULL');
SELECT throws_ok($$SELECT pg_temp.retention_fixed_merge(s::crm.retention_fixed_state) FROM (VALUES ('10'), ('011')) v(s)$$,
                 '22023', NULL, 'fixed combine of states with different condition counts: 22023');

-- the state type: exact text round trip, validated input
CREATE AGGREGATE pg_temp.retention_state_of(VARIADIC boolean[]) (
    SFUNC = crm.retention_transfn, STYPE = crm.retention_state, COMBINEFUNC = crm.retention_combinefn);
SELECT is((SELECT pg_temp.retention_state_of(x = 1, x = 9, x = 3)::text FROM generate_series(1, 5) x), '101',
          'state text: one character per condition');
SELECT is((SELECT count(*) FROM (SELECT g, pg_temp.retention_state_of(v < 5, v > 90, flag) s FROM ret_t GROUP BY g) q
            WHERE s::text::crm.retention_state::text <> s::text), 0::bigint,
          'state::text::crm.retention_state::text round-trips for every group');
SELECT is(crm.retention_finalfn('1011'::crm.retention_state), '{1,0,1,1}'::int[], 'final function over a typed-in state');

-- bad input
SELECT throws_ok($$SELECT crm.retention(VARIADIC '{}'::boolean[])$$, '22023', NULL, 'zero conditions: 22023');
SELECT throws_ok($$SELECT crm.retention(VARIADIC array_fill(true, ARRAY[65]))$$, '54000', NULL, '65 conditions: 54000');
SELECT throws_ok($$SELECT crm.retention(VARIADIC CASE WHEN x = 1 THEN ARRAY[true] ELSE ARRAY[true, false] END) FROM generate_series(1, 2) x$$,
                 '22023', NULL, 'a different number of conditions on another row: 22023');
SELECT throws_ok($$SELECT crm.retention(VARIADIC '{{t,f},{t,t}}'::boolean[])$$, '22023', NULL, 'a 2-D condition array: 22023');
SELECT throws_ok($$SELECT '10x'::crm.retention_state$$, '22P02', NULL, 'state text with a bad character: 22P02');
SELECT throws_ok($$SELECT repeat('1', 65)::crm.retention_state$$, '22P02', NULL, 'state text with 65 conditions: 22P02');

SELECT * FROM finish();
ROLLBACK;
