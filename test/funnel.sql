BEGIN;
SELECT plan(128);
-- random events: many equal timestamps, rows matching several steps, NULL flags and times
CREATE TEMP TABLE funnel_seed AS SELECT setseed(0.4242)::text AS seeded;
CREATE TEMP TABLE fr AS
SELECT e, row_number() OVER () AS rid,
       CASE WHEN random() < 0.03 THEN NULL
            ELSE timestamptz '2024-03-01 00:00+00' + (floor(random() * 12)::int * interval '1 minute') END AS ts,
       random() < 0.40 AS f1,
       CASE WHEN random() < 0.05 THEN NULL ELSE random() < 0.40 END AS f2,
       random() < 0.40 AS f3,
       random() < 0.35 AS f4
  FROM generate_series(1, 400) e, generate_series(1, 1 + floor(random() * 7)::int) i;

-- the definition, by enumerating every chain (independent of the C scan)
CREATE FUNCTION pg_temp.ref_funnel(strict_inc boolean, strict_once boolean, win interval)
RETURNS TABLE(e int, lvl int, times timestamptz[])
LANGUAGE sql AS $$
WITH RECURSIVE x AS (
    SELECT fr.e, fr.rid, fr.ts, v.k
      FROM fr, LATERAL (VALUES (1, fr.f1), (2, fr.f2), (3, fr.f3), (4, fr.f4)) v(k, f)
     WHERE v.f AND fr.ts IS NOT NULL
), ch AS (
    SELECT x.e, 1 AS lvl, x.ts AS first, x.ts AS last, ARRAY[x.rid] AS rids, ARRAY[x.ts] AS times
      FROM x WHERE x.k = 1
    UNION ALL
    SELECT ch.e, ch.lvl + 1, ch.first, x.ts, ch.rids || x.rid, ch.times || x.ts
      FROM ch JOIN x ON x.e = ch.e AND x.k = ch.lvl + 1 AND x.ts >= ch.last AND x.ts <= ch.first + win
                     AND (NOT strict_inc OR x.ts > ch.last)
                     AND (NOT strict_once OR x.rid <> ALL (ch.rids))
), best AS (
    SELECT DISTINCT ON (ch.e) ch.e, ch.lvl, ch.times
      FROM ch
     ORDER BY ch.e, ch.lvl DESC, ch.times[ch.lvl], ch.times[1] DESC,
              ARRAY(SELECT ch.times[i] FROM generate_series(ch.lvl - 1, 2, -1) i)
)
SELECT d.e, COALESCE(best.lvl, 0), COALESCE(best.times, '{}')
  FROM (SELECT DISTINCT fr.e FROM fr) d LEFT JOIN best USING (e)
$$;

-- ClickHouse's scan (AggregateFunctionWindowFunnel, non-strict_once) for strict_order / strict_deduplication
CREATE FUNCTION pg_temp.ch_funnel(ent int, win interval, dedup boolean, sorder boolean)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r record;
    fst timestamptz[] := array_fill(NULL::timestamptz, ARRAY[4]);
    first_event boolean := false;
    idx int;
    i int;
BEGIN
    FOR r IN
        SELECT ts, k FROM (
            SELECT fr.ts, v.k FROM fr, LATERAL (VALUES (1, fr.f1), (2, fr.f2), (3, fr.f3), (4, fr.f4)) v(k, f)
             WHERE fr.e = ent AND fr.ts IS NOT NULL AND v.f
            UNION ALL
            SELECT fr.ts, 0 FROM fr
             WHERE sorder AND fr.e = ent AND fr.ts IS NOT NULL
               AND NOT (COALESCE(f1, false) OR COALESCE(f2, false) OR COALESCE(f3, false) OR COALESCE(f4, false))
        ) s ORDER BY ts, k
    LOOP
        idx := r.k;  -- 1-based step, 0 = no step
        IF sorder AND idx = 0 THEN
            IF first_event THEN EXIT; END IF;
            CONTINUE;
        ELSIF idx = 1 THEN
            fst[1] := r.ts; first_event := true;
        ELSIF dedup AND fst[idx] IS NOT NULL THEN
            EXIT;
        ELSIF sorder AND first_event AND fst[idx - 1] IS NULL THEN
            EXIT;
        ELSIF fst[idx - 1] IS NOT NULL THEN
            IF r.ts <= fst[idx - 1] + win THEN
                fst[idx] := fst[idx - 1];
                IF idx = 4 THEN EXIT; END IF;
            END IF;
        END IF;
    END LOOP;
    FOR i IN REVERSE 4..1 LOOP
        IF fst[i] IS NOT NULL THEN RETURN i; END IF;
    END LOOP;
    RETURN 0;
END $$;

-- ======================================================================
-- 1. window_funnel and window_funnel_times against the definition
-- ======================================================================
CREATE TEMP TABLE got AS
SELECT e,
       crm.window_funnel('4 min', ts, f1, f2, f3, f4) AS d,
       crm.window_funnel('4 min', 'strict_increase', ts, f1, f2, f3, f4) AS si,
       crm.window_funnel('4 min', 'strict_once', ts, f1, f2, f3, f4) AS so,
       crm.window_funnel('4 min', 'strict_once,strict_increase', ts, f1, f2, f3, f4) AS sio,
       crm.window_funnel('4 min', 'strict_order', ts, f1, f2, f3, f4) AS sord,
       crm.window_funnel('4 min', 'strict_deduplication', ts, f1, f2, f3, f4) AS sded,
       crm.window_funnel('4 min', ' strict_deduplication , strict_order ', ts, f1, f2, f3, f4) AS sboth,
       crm.window_funnel_times('4 min', ts, f1, f2, f3, f4) AS td,
       crm.window_funnel_times('4 min', 'strict_increase', ts, f1, f2, f3, f4) AS tsi,
       crm.window_funnel_times('4 min', 'strict_once', ts, f1, f2, f3, f4) AS tso
  FROM fr GROUP BY e;

SELECT is((SELECT count(*) FROM got), 400::bigint, 'every entity has a row');
SELECT ok((SELECT count(DISTINCT (d, si, so)) FROM got) >= 10, 'the fixture exercises many level combinations');
SELECT is((SELECT count(*) FROM got g JOIN pg_temp.ref_funnel(false, false, '4 min') r USING (e) WHERE g.d <> r.lvl),
          0::bigint, 'default mode: level = longest chain, for every entity');
SELECT is((SELECT count(*) FROM got g JOIN pg_temp.ref_funnel(false, false, '4 min') r USING (e) WHERE g.td <> r.times),
          0::bigint, 'window_funnel_times: the first chain to reach the level');
SELECT is((SELECT count(*) FROM got WHERE cardinality(td) <> d), 0::bigint, 'window_funnel_times length = level');
SELECT is((SELECT count(*) FROM got g JOIN pg_temp.ref_funnel(true, false, '4 min') r USING (e) WHERE g.si <> r.lvl),
          0::bigint, 'strict_increase: longest chain with strictly increasing times');
SELECT is((SELECT count(*) FROM got g JOIN pg_temp.ref_funnel(true, false, '4 min') r USING (e) WHERE g.tsi <> r.times),
          0::bigint, 'strict_increase times');
SELECT is((SELECT count(*) FROM got g JOIN pg_temp.ref_funnel(false, true, '4 min') r USING (e) WHERE g.so <> r.lvl),
          0::bigint, 'strict_once: longest chain of distinct rows');
SELECT is((SELECT count(*) FROM got g JOIN pg_temp.ref_funnel(false, true, '4 min') r USING (e) WHERE g.tso <> r.times),
          0::bigint, 'strict_once times');
SELECT is((SELECT count(*) FROM got g JOIN pg_temp.ref_funnel(true, true, '4 min') r USING (e) WHERE g.sio <> r.lvl),
          0::bigint, 'strict_once + strict_increase');
SELECT is((SELECT count(*) FROM got WHERE d <> pg_temp.ch_funnel(e, '4 min', false, false)),
          0::bigint, 'default mode equals ClickHouse''s scan');
SELECT is((SELECT count(*) FROM got WHERE sord <> pg_temp.ch_funnel(e, '4 min', false, true)),
          0::bigint, 'strict_order equals ClickHouse''s scan');
SELECT is((SELECT count(*) FROM got WHERE sded <> pg_temp.ch_funnel(e, '4 min', true, false)),
          0::bigint, 'strict_deduplication equals ClickHouse''s scan');
SELECT is((SELECT count(*) FROM got WHERE sboth <> pg_temp.ch_funnel(e, '4 min', true, true)),
          0::bigint, 'strict_deduplication + strict_order equals ClickHouse''s scan');
SELECT ok((SELECT count(*) FROM got WHERE sord < d) > 0 AND (SELECT count(*) FROM got WHERE sded < d) > 0
          AND (SELECT count(*) FROM got WHERE si < d) > 0 AND (SELECT count(*) FROM got WHERE so < d) > 0,
          'every strict mode lowers some levels in the fixture');

-- ======================================================================
-- 2. input order does not matter
-- ======================================================================
CREATE TEMP TABLE fr_rev AS SELECT * FROM fr ORDER BY ts DESC NULLS FIRST, rid DESC;
SELECT is((SELECT count(*) FROM got g JOIN (
              SELECT e, crm.window_funnel('4 min', ts, f1, f2, f3, f4) AS d,
                     crm.window_funnel('4 min', 'strict_order', ts, f1, f2, f3, f4) AS sord,
                     crm.window_funnel_times('4 min', 'strict_once', ts, f1, f2, f3, f4) AS tso
                FROM fr_rev GROUP BY e) r USING (e)
            WHERE (g.d, g.sord, g.tso) IS DISTINCT FROM (r.d, r.sord, r.tso)),
          0::bigint, 'reverse-ordered input gives the same answers');
SELECT is((SELECT count(*) FROM got g JOIN (
              SELECT e, crm.window_funnel('4 min', ts, f1, f2, f3, f4 ORDER BY ts DESC, rid) AS d,
                     crm.window_funnel('4 min', 'strict_deduplication', ts, f1, f2, f3, f4 ORDER BY random()) AS sded
                FROM fr GROUP BY e) r USING (e)
            WHERE (g.d, g.sded) IS DISTINCT FROM (r.d, r.sded)),
          0::bigint, 'aggregate ORDER BY descending or random gives the same answers');

-- ======================================================================
-- 3. NULL and infinite times are ignored; NULL steps are false
-- ======================================================================
SELECT is((SELECT crm.window_funnel('1 hour', ts, s = 'A', s = 'B') FROM (VALUES
             (timestamptz '2024-01-01 10:00', 'A'), (NULL, 'B'), ('infinity', 'B'), ('-infinity', 'A'),
             ('2024-01-01 10:30', NULL)) v(ts, s)), 1, 'NULL, infinite times and NULL steps are ignored');
SELECT is((SELECT crm.window_funnel('1 hour', ts, s = 'A', s = 'B') FROM (VALUES
             (timestamptz '-infinity', 'A'), ('2024-01-01 10:00', 'B')) v(ts, s)), 0, '-infinity does not start a chain');
SELECT is((SELECT crm.window_funnel('1 hour', ts, s = 'A') FROM (VALUES (NULL::timestamptz, 'A')) v(ts, s)), 0,
          'only NULL times: level 0');
SELECT is((SELECT crm.window_funnel('1 hour', now(), true) WHERE false), 0, 'no rows: level 0');
SELECT is((SELECT crm.window_funnel_times('1 hour', now(), true) WHERE false), '{}'::timestamptz[], 'no rows: no times');

-- ======================================================================
-- 4. serial vs forced parallel (Partial Aggregate), on a table big enough to split
-- ======================================================================
CREATE TABLE public.funnel_big_ev AS
SELECT (i % 20000) AS e,
       timestamptz '2024-01-01' + (i / 20000) * interval '7 hours' + (abs(hashint4(i * 3)) % 900) * interval '1 minute' AS ts,
       (ARRAY['visit', 'signup', 'trial', 'paid', 'other'])[1 + abs(hashint4(i)) % 5] AS s
  FROM generate_series(1, 200000) i;
ANALYZE funnel_big_ev;
CREATE TEMP TABLE serial_res AS
SELECT (SELECT crm.window_funnel('30 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') FROM funnel_big_ev) AS whole,
       (SELECT crm.window_funnel_times('30 days', 'strict_increase', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') FROM funnel_big_ev) AS whole_t,
       (SELECT array_agg(l ORDER BY e) FROM (SELECT e, crm.window_funnel('2 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') l
                                               FROM funnel_big_ev GROUP BY e) x) AS per_entity,
       (SELECT crm.funnel_counts(e % 5, 4) FROM funnel_big_ev) AS counts;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
ALTER TABLE funnel_big_ev SET (parallel_workers = 2);
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; acc text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP acc := acc || r || E'\n'; END LOOP;
    RETURN acc;
END $$;
SELECT matches(pg_temp.plan_of($$SELECT crm.window_funnel('30 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') FROM funnel_big_ev$$),
               'Partial Aggregate', 'window_funnel runs as Partial Aggregate');
SELECT matches(pg_temp.plan_of($$SELECT crm.window_funnel_times('30 days', 'strict_increase', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') FROM funnel_big_ev$$),
               'Partial Aggregate', 'window_funnel_times runs as Partial Aggregate');
SELECT matches(pg_temp.plan_of($$SELECT crm.funnel_counts(e % 5, 4) FROM funnel_big_ev$$),
               'Partial Aggregate', 'funnel_counts runs as Partial Aggregate');
SELECT is((SELECT crm.window_funnel('30 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') FROM funnel_big_ev),
          (SELECT whole FROM serial_res), 'window_funnel: parallel = serial');
SELECT is((SELECT crm.window_funnel_times('30 days', 'strict_increase', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') FROM funnel_big_ev),
          (SELECT whole_t FROM serial_res), 'window_funnel_times: parallel = serial');
SELECT is((SELECT crm.funnel_counts(e % 5, 4) FROM funnel_big_ev), (SELECT counts FROM serial_res), 'funnel_counts: parallel = serial');
SELECT is((SELECT crm.funnel_counts(e % 5, 4) FROM funnel_big_ev),
          (SELECT ARRAY[count(*) FILTER (WHERE e % 5 >= 1), count(*) FILTER (WHERE e % 5 >= 2),
                        count(*) FILTER (WHERE e % 5 >= 3), count(*) FILTER (WHERE e % 5 >= 4)] FROM funnel_big_ev),
          'funnel_counts = plain count(*) FILTER (level >= k)');
SET LOCAL enable_hashagg = off;
SELECT matches(pg_temp.plan_of($$SELECT e, crm.window_funnel('2 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') FROM funnel_big_ev GROUP BY e$$),
               'Partial GroupAggregate', 'window_funnel GROUP BY entity runs partially in the workers');
SELECT is((SELECT array_agg(l ORDER BY e) FROM (SELECT e, crm.window_funnel('2 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') l
                                                  FROM funnel_big_ev GROUP BY e) x),
          (SELECT per_entity FROM serial_res), 'window_funnel GROUP BY entity: parallel = serial');
RESET enable_hashagg;
SELECT ok((SELECT per_entity FROM serial_res) @> ARRAY[0, 1, 2, 3, 4], 'the parallel fixture reaches every level');
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;

-- ======================================================================
-- 4b. the separate-argument overloads (1 to 12 steps) and the VARIADIC form
-- ======================================================================
SELECT is((SELECT count(*)::int FROM generate_series(1, 12) n, (VALUES ('window_funnel'), ('window_funnel_times')) a(name),
                  (VALUES (''), ('text,')) m(mode)
            WHERE to_regprocedure(format('crm.%s(interval,%stimestamptz,%s)', a.name, m.mode,
                                         array_to_string(array_fill('boolean'::text, ARRAY[n]), ','))) IS NOT NULL),
          48, 'window_funnel and window_funnel_times have 1..12-step overloads, with and without mode');
SELECT is((SELECT count(*)::int FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
            WHERE p.pronamespace = 'crm'::regnamespace AND p.proname IN ('window_funnel', 'window_funnel_times')
              AND p.provariadic = 0
              AND (a.aggtranstype, a.aggcombinefn, a.aggfinalfn) IS DISTINCT FROM
                  ('crm.window_funnel_state'::regtype::oid, 'crm._window_funnel_combinefn'::regproc::oid,
                   (CASE p.proname WHEN 'window_funnel' THEN 'crm._window_funnel_finalfn'
                                   ELSE 'crm._window_funnel_times_finalfn' END)::regproc::oid)),
          0, 'the overloads share the state type, combine and final functions of the VARIADIC aggregates');
CREATE FUNCTION pg_temp.verbose_plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; acc text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP acc := acc || r || E'\n'; END LOOP;
    RETURN acc;
END $$;
SELECT doesnt_match(pg_temp.verbose_plan_of($$SELECT crm.window_funnel('4 min', 'strict_order', ts, f1, f2, f3, f4) FROM fr$$),
                    'VARIADIC', 'separate step arguments resolve to the fixed-arity overload (no array per row)');
SELECT matches(pg_temp.verbose_plan_of($$SELECT crm.window_funnel('4 min', ts, VARIADIC ARRAY[f1, f2, f3, f4]) FROM fr$$),
               'VARIADIC', 'VARIADIC ARRAY[...] still resolves to the VARIADIC aggregate');
CREATE TEMP TABLE got_var AS
SELECT e,
       crm.window_funnel('4 min', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS d,
       crm.window_funnel('4 min', 'strict_increase', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS si,
       crm.window_funnel('4 min', 'strict_once', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS so,
       crm.window_funnel('4 min', 'strict_once,strict_increase', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS sio,
       crm.window_funnel('4 min', 'strict_order', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS sord,
       crm.window_funnel('4 min', 'strict_deduplication', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS sded,
       crm.window_funnel('4 min', ' strict_deduplication , strict_order ', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS sboth,
       crm.window_funnel_times('4 min', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS td,
       crm.window_funnel_times('4 min', 'strict_increase', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS tsi,
       crm.window_funnel_times('4 min', 'strict_once', ts, VARIADIC ARRAY[f1, f2, f3, f4]) AS tso
  FROM fr GROUP BY e;
SELECT is((SELECT count(*) FROM got g JOIN got_var v USING (e)
            WHERE (g.d, g.si, g.so, g.sio, g.sord, g.sded, g.sboth, g.td, g.tsi, g.tso)
                  IS DISTINCT FROM (v.d, v.si, v.so, v.sio, v.sord, v.sded, v.sboth, v.td, v.tsi, v.tso)),
          0::bigint, 'VARIADIC ARRAY[...] = separate arguments, every mode and window_funnel_times');
SELECT is((SELECT count(*) FROM got_var v JOIN pg_temp.ref_funnel(false, false, '4 min') r USING (e)
            WHERE v.d <> r.lvl OR v.td <> r.times),
          0::bigint, 'VARIADIC form: level and times = the chain enumeration');
SELECT is((SELECT count(*) FROM got_var WHERE sord <> pg_temp.ch_funnel(e, '4 min', false, true)),
          0::bigint, 'VARIADIC form: strict_order equals ClickHouse''s scan');
-- the partial state of the fixed-arity transition function is the VARIADIC one, byte for byte
CREATE AGGREGATE pg_temp.wf_state4(interval, text, timestamptz, boolean, boolean, boolean, boolean) (
    SFUNC = crm._window_funnel_transfn, STYPE = crm.window_funnel_state);
CREATE AGGREGATE pg_temp.wf_state4v(interval, text, timestamptz, VARIADIC boolean[]) (
    SFUNC = crm._window_funnel_transfn, STYPE = crm.window_funnel_state);
SELECT is((SELECT count(*) FROM (
              SELECT e, pg_temp.wf_state4('4 min', 'strict_order', ts, f1, f2, f3, f4 ORDER BY rid)::text AS a,
                        pg_temp.wf_state4v('4 min', 'strict_order', ts, VARIADIC ARRAY[f1, f2, f3, f4] ORDER BY rid)::text AS b
                FROM fr GROUP BY e) x WHERE a IS DISTINCT FROM b),
          0::bigint, 'fixed-arity and VARIADIC transition functions build the same state');
-- 8 and 12 steps, worked by hand: step k at minute k-1 (12 rows), plus noise rows
CREATE TEMP TABLE fr12 AS
SELECT e, timestamptz '2024-05-01 09:00+00' + (k - 1 + (e = 2 AND k >= 7)::int * 60) * interval '1 minute' AS ts, k
  FROM generate_series(1, 3) e, generate_series(0, 12) k;
-- entity 1: steps 1..12 one minute apart; entity 2: steps 7..12 one hour later; entity 3 the same as 1
SELECT is((SELECT array_agg(l ORDER BY e) FROM (
              SELECT e, crm.window_funnel('11 min', ts, k = 1, k = 2, k = 3, k = 4, k = 5, k = 6, k = 7, k = 8,
                                          k = 9, k = 10, k = 11, k = 12) AS l FROM fr12 GROUP BY e) x),
          ARRAY[12, 6, 12], '12 separate steps: 12 within 11 minutes; a one-hour gap stops at step 6');
SELECT is((SELECT array_agg(l ORDER BY e) FROM (
              SELECT e, crm.window_funnel('10 min', ts, k = 1, k = 2, k = 3, k = 4, k = 5, k = 6, k = 7, k = 8,
                                          k = 9, k = 10, k = 11, k = 12) AS l FROM fr12 GROUP BY e) x),
          ARRAY[11, 6, 11], '12 separate steps: the 12th event is 11 minutes after the first, outside 10 minutes');
SELECT is((SELECT crm.window_funnel('1 hour', ts, k = 1, k = 2, k = 3, k = 4, k = 5, k = 6, k = 7, k = 8, k = 9,
                                   k = 10, k = 11, k = 12, k = 0) FROM fr12 WHERE e = 1),
          12, '13 steps fall back to the VARIADIC aggregate (step 13 at minute -1 never follows step 12)');
SELECT is((SELECT crm.window_funnel_times('2 hours', 'strict_increase', ts, k = 1, k = 2, k = 3, k = 4, k = 5, k = 6, k = 7, k = 8)
             FROM fr12 WHERE e = 2),
          ARRAY(SELECT timestamptz '2024-05-01 09:00+00' + m * interval '1 minute' FROM unnest(ARRAY[0, 1, 2, 3, 4, 5, 66, 67]) m),
          '8 separate steps: times of the chain');
-- 20 and 40 steps (4- and 8-byte step masks in the state), 60 rows in one group (the state grows several times)
SELECT is((SELECT crm.window_funnel_times('1 hour', ts, VARIADIC ARRAY(SELECT k = j FROM generate_series(1, 20) j))
             FROM (SELECT timestamptz '2024-05-01 09:00+00' + (k % 20 + (k / 20) * 3) * interval '1 minute' AS ts, k % 20 + 1 AS k
                     FROM generate_series(0, 59) k) x),
          ARRAY(SELECT timestamptz '2024-05-01 09:00+00' + m * interval '1 minute' FROM generate_series(0, 19) m),
          '20 steps over 60 rows: the first chain, one minute apart');
SELECT is((SELECT crm.window_funnel('1 hour', 'strict_increase', ts, VARIADIC ARRAY(SELECT k = j FROM generate_series(1, 40) j))
             FROM (SELECT timestamptz '2024-05-01 09:00+00' + (40 - k) * interval '1 minute' AS ts, k
                     FROM generate_series(1, 40) k) x),
          1, '40 steps in reverse time order: level 1');
SELECT is((SELECT crm.window_funnel('1 hour', 'strict_increase', ts, VARIADIC ARRAY(SELECT k = j FROM generate_series(1, 40) j))
             FROM (SELECT timestamptz '2024-05-01 09:00+00' + k * interval '1 minute' AS ts, k
                     FROM generate_series(1, 40) k ORDER BY random()) x),
          40, '40 steps in random row order: level 40');
SELECT is((SELECT crm.window_funnel('1 hour', ts, NULL, k = 2) FROM fr12), 0, 'a NULL step argument is false');
SELECT is((SELECT crm.window_funnel('1 hour', ts, k = 1, NULL) FROM fr12), 1, 'a NULL later step argument is false');
-- forced parallel: the VARIADIC form and 8 separate steps against the serial answers
CREATE TEMP TABLE serial_res8 AS
SELECT (SELECT array_agg(l ORDER BY e) FROM (
           SELECT e, crm.window_funnel('3 days', 'strict_increase', ts, VARIADIC ARRAY[s = 'visit', s = 'signup', s = 'trial', s = 'paid',
                                       s = 'other', s = 'visit', s = 'signup', s = 'paid']) l
             FROM funnel_big_ev GROUP BY e) x) AS var8;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
SELECT matches(pg_temp.plan_of($$SELECT crm.window_funnel('30 days', ts, VARIADIC ARRAY[s = 'visit', s = 'signup', s = 'trial', s = 'paid']) FROM funnel_big_ev$$),
               'Partial Aggregate', 'the VARIADIC form runs as Partial Aggregate');
SELECT is((SELECT crm.window_funnel('30 days', ts, VARIADIC ARRAY[s = 'visit', s = 'signup', s = 'trial', s = 'paid']) FROM funnel_big_ev),
          (SELECT whole FROM serial_res), 'VARIADIC form: parallel = serial separate arguments');
SET LOCAL enable_hashagg = off;
SELECT is((SELECT array_agg(l ORDER BY e) FROM (
              SELECT e, crm.window_funnel('3 days', 'strict_increase', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid',
                                          s = 'other', s = 'visit', s = 'signup', s = 'paid') l
                FROM funnel_big_ev GROUP BY e) x),
          (SELECT var8 FROM serial_res8), '8 separate steps in parallel workers = serial VARIADIC');
RESET enable_hashagg;
SELECT ok((SELECT var8 FROM serial_res8) @> ARRAY[0, 2, 4, 8], 'the 8-step fixture reaches several levels');
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;

-- ======================================================================
-- 4c. the step-name form: window_funnel_by_name(window, [mode,] ts, step, steps text[])
-- ======================================================================
-- against the boolean form with step = steps[k] as condition k (itself checked against the chain enumeration above)
CREATE TEMP TABLE got_names AS
SELECT e,
       crm.window_funnel_by_name('2 days', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) AS n_d,
       crm.window_funnel('2 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') AS b_d,
       crm.window_funnel_by_name('2 days', 'strict_increase', ts, s, ARRAY['visit', 'signup', 'visit', 'paid']) AS n_si,
       crm.window_funnel('2 days', 'strict_increase', ts, s = 'visit', s = 'signup', s = 'visit', s = 'paid') AS b_si,
       crm.window_funnel_by_name('2 days', 'strict_once', ts, s, ARRAY['visit', 'visit', 'trial']) AS n_so,
       crm.window_funnel('2 days', 'strict_once', ts, s = 'visit', s = 'visit', s = 'trial') AS b_so,
       crm.window_funnel_by_name('2 days', 'strict_order', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) AS n_ord,
       crm.window_funnel('2 days', 'strict_order', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') AS b_ord,
       crm.window_funnel_by_name('2 days', 'strict_deduplication', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) AS n_ded,
       crm.window_funnel('2 days', 'strict_deduplication', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') AS b_ded,
       crm.window_funnel_times_by_name('2 days', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) AS n_t,
       crm.window_funnel_times('2 days', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') AS b_t,
       crm.window_funnel_times_by_name('2 days', 'strict_increase', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) AS n_tsi,
       crm.window_funnel_times('2 days', 'strict_increase', ts, s = 'visit', s = 'signup', s = 'trial', s = 'paid') AS b_tsi
  FROM funnel_big_ev GROUP BY e;
SELECT is((SELECT count(*) FROM got_names WHERE n_d <> b_d OR n_t <> b_t), 0::bigint,
          'step names = step = name conditions: level and times, default mode');
SELECT is((SELECT count(*) FROM got_names WHERE n_si <> b_si OR n_so <> b_so OR n_tsi <> b_tsi), 0::bigint,
          'step names: strict_increase and strict_once, a name repeated in the steps matches both steps');
SELECT is((SELECT count(*) FROM got_names WHERE n_ord <> b_ord OR n_ded <> b_ded), 0::bigint,
          'step names: strict_order (a row with another name breaks the chain) and strict_deduplication');
SELECT ok((SELECT count(DISTINCT n_d) FROM got_names) = 5 AND (SELECT count(*) FROM got_names WHERE n_ord < n_d) > 0,
          'the step-name fixture reaches every level and strict_order lowers some');
-- worked by hand: lead 09:00, demo 09:30, 'Demo' (another name) 09:40, deal 11:00, NULL name 09:50
SELECT is((SELECT crm.window_funnel_times_by_name('1 hour', ts, s, ARRAY['lead', 'demo', 'deal']) FROM (VALUES
             (timestamptz '2024-02-01 09:00+00', 'lead'), ('2024-02-01 09:30+00', 'demo'), ('2024-02-01 09:40+00', 'Demo'),
             ('2024-02-01 11:00+00', 'deal'), ('2024-02-01 09:50+00', NULL)) v(ts, s)),
          ARRAY[timestamptz '2024-02-01 09:00+00', '2024-02-01 09:30+00'],
          'step names: byte-wise names, a NULL name matches nothing, the deal is outside the hour');
SELECT is((SELECT crm.window_funnel_by_name('1 hour', 'strict_order', ts, s, ARRAY['lead', 'demo', 'deal']) FROM (VALUES
             (timestamptz '2024-02-01 09:00+00', 'lead'), ('2024-02-01 09:10+00', 'call'), ('2024-02-01 09:30+00', 'demo')) v(ts, s)),
          1, 'step names, strict_order: a name outside the steps ends the chain');
SELECT is((SELECT crm.window_funnel_by_name('1 hour', ts, s, ARRAY['lead', NULL, 'demo']) FROM (VALUES
             (timestamptz '2024-02-01 09:00+00', 'lead'), ('2024-02-01 09:30+00', 'demo')) v(ts, s)),
          1, 'step names: a NULL name in the steps is a step nothing matches');
-- names longer than 8 bytes that share their first 8 bytes (and one that is a prefix of them)
SELECT is((SELECT array_agg(n ORDER BY e) FROM (
              SELECT e, crm.window_funnel_by_name('1 hour', ts, s, ARRAY['qualified_a', 'qualified_bb', 'qualified_a', 'qualifie']) AS n
                FROM (VALUES (1, timestamptz '2024-02-01 09:00+00', 'qualified_a'), (1, '2024-02-01 09:10+00', 'qualified_bb'),
                             (1, '2024-02-01 09:20+00', 'qualified_a'), (1, '2024-02-01 09:30+00', 'qualifie'),
                             (2, '2024-02-01 09:00+00', 'qualified_a'), (2, '2024-02-01 09:10+00', 'qualified_b'),
                             (2, '2024-02-01 09:20+00', 'qualified_bb'), (2, '2024-02-01 09:25+00', 'qualified_c'),
                             (2, '2024-02-01 09:30+00', 'qualified'),
                             (3, '2024-02-01 09:00+00', 'qualified_bb'), (3, '2024-02-01 09:10+00', 'qualified_a')) v(e, ts, s)
               GROUP BY e) x),
          ARRAY[4, 2, 1], 'step names over 8 bytes: compared in full, not by their first 8 bytes (or length)');
-- the steps array may differ between groups (the parsed names are cached and replaced)
SELECT is((SELECT count(*) FROM (
              SELECT e, crm.window_funnel_by_name('2 days', ts, s, CASE WHEN e % 2 = 0 THEN ARRAY['visit', 'signup', 'trial']
                                                                ELSE ARRAY['signup', 'visit', 'trial'] END) AS n,
                        crm.window_funnel('2 days', ts, CASE WHEN e % 2 = 0 THEN s = 'visit' ELSE s = 'signup' END,
                                          CASE WHEN e % 2 = 0 THEN s = 'signup' ELSE s = 'visit' END, s = 'trial') AS b
                FROM funnel_big_ev WHERE e < 2000 GROUP BY e) x WHERE n <> b),
          0::bigint, 'step names that change from group to group');
SELECT is((SELECT crm.window_funnel_by_name('1 day', ts, s, ARRAY(SELECT 'step' || k FROM generate_series(1, 64) k))
             FROM (SELECT timestamptz '2024-01-01' + k * interval '1 minute' AS ts, 'step' || k AS s
                     FROM generate_series(1, 64) k ORDER BY random()) x),
          64, 'step names: 64 steps in random row order');
-- forced parallel
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
SELECT matches(pg_temp.plan_of($$SELECT crm.window_funnel_by_name('30 days', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) FROM funnel_big_ev$$),
               'Partial Aggregate', 'the step-name form runs as Partial Aggregate');
SELECT is((SELECT crm.window_funnel_by_name('30 days', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) FROM funnel_big_ev),
          (SELECT whole FROM serial_res), 'step-name form: parallel = serial boolean form');
SET LOCAL enable_hashagg = off;
SELECT is((SELECT array_agg(l ORDER BY e) FROM (
              SELECT e, crm.window_funnel_by_name('2 days', ts, s, ARRAY['visit', 'signup', 'trial', 'paid']) l
                FROM funnel_big_ev GROUP BY e) x),
          (SELECT per_entity FROM serial_res), 'step-name form GROUP BY entity in parallel workers = serial boolean form');
RESET enable_hashagg;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
-- bad input
SELECT throws_ok($$SELECT crm.window_funnel_by_name('1 day', now(), 'a', NULL::text[])$$, '22004',
                 'steps must not be a null array', 'step names: NULL steps');
SELECT throws_ok($$SELECT crm.window_funnel_by_name('1 day', now(), 'a', ARRAY[]::text[])$$, '22023',
                 'a funnel needs at least 1 step', 'step names: 0 steps');
SELECT throws_ok($$SELECT crm.window_funnel_by_name('1 day', now(), 'a', ARRAY(SELECT k::text FROM generate_series(1, 65) k))$$, '54000',
                 'a funnel supports at most 64 steps, got 65', 'step names: 65 steps');
SELECT throws_ok($$SELECT crm.window_funnel_by_name('1 day', now(), 'a', ARRAY[['a'], ['b']])$$, '2202E',
                 'steps must be a one-dimensional array', 'step names: two-dimensional steps');
SELECT throws_ok($$SELECT crm.window_funnel_by_name('-1 day', now(), 'a', ARRAY['a'])$$, '22023',
                 'window must not be negative', 'step names: negative window');
SELECT throws_ok($$SELECT crm.window_funnel_by_name('1 day', 'strict', now(), 'a', ARRAY['a'])$$, '22023',
                 'unknown funnel mode "strict"', 'step names: unknown mode');
SELECT throws_ok($$SELECT crm.window_funnel_by_name('1 day', now(), 'a', CASE WHEN x = 1 THEN ARRAY['a'] ELSE ARRAY['a', 'b'] END)
                     FROM generate_series(1, 2) x$$, '22023',
                 'got 1 steps on one row and 2 on another', 'step names: the step count changes between rows');
-- the step-name form has a name of its own: 2-step calls with untyped arguments still resolve
SELECT is((SELECT crm.window_funnel('1 day', now(), NULL, NULL)), 0, 'window_funnel(w, ts, NULL, NULL) is not ambiguous');
SELECT is((SELECT crm.window_funnel_times('1 day', 'strict_order', now(), NULL, NULL)), '{}'::timestamptz[],
          'window_funnel_times(w, mode, ts, NULL, NULL) is not ambiguous');
PREPARE funnel_untyped AS SELECT crm.window_funnel('1 day', ts, $1, $2) FROM (VALUES (now())) v(ts);
SELECT is((SELECT count(*)::int FROM pg_prepared_statements WHERE name = 'funnel_untyped'
             AND parameter_types = '{boolean,boolean}'::regtype[]), 1, 'untyped parameters resolve to the 2-step boolean form');
DEALLOCATE funnel_untyped;
-- rows that match no step are still checked against the group when window, mode or steps vary
SELECT throws_ok($$SELECT crm.window_funnel_by_name('1 day', ts, s, st ORDER BY o DESC)
                     FROM (VALUES (1, now(), 'z', ARRAY['a', 'b']), (2, now(), 'a', ARRAY['a'])) v(o, ts, s, st)$$, '22023',
                 'got 1 steps on one row and 2 on another', 'step names: a non-matching row with another step count, last');
SELECT throws_ok($$SELECT crm.window_funnel(w, ts, c ORDER BY o DESC)
                     FROM (VALUES (1, interval '1 day', now(), false), (2, interval '2 days', now(), true)) v(o, w, ts, c)$$, '22023',
                 'window and mode must be the same on every row of a group', 'a non-matching row with another window, last');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', m, ts, s = 'a', s = 'b' ORDER BY o)
                     FROM (VALUES (1, 'strict_order', timestamptz '2024-01-01 00:00', 'a'), (2, '', '2024-01-01 00:01', 'x'),
                                  (3, 'strict_order', '2024-01-01 00:02', 'b')) v(o, m, ts, s)$$, '22023',
                 'window and mode must be the same on every row of a group', 'a non-matching row with another mode');

-- ======================================================================
-- 5. state types: exact text round trip, and a round-tripped state gives the same answer
-- ======================================================================
CREATE AGGREGATE pg_temp.wf_state(interval, text, timestamptz, VARIADIC boolean[]) (
    SFUNC = crm._window_funnel_transfn, STYPE = crm.window_funnel_state);
CREATE AGGREGATE pg_temp.wf_merge(crm.window_funnel_state) (
    SFUNC = crm._window_funnel_combinefn, STYPE = crm.window_funnel_state, FINALFUNC = crm._window_funnel_finalfn);
CREATE AGGREGATE pg_temp.wf_merge_times(crm.window_funnel_state) (
    SFUNC = crm._window_funnel_combinefn, STYPE = crm.window_funnel_state, FINALFUNC = crm._window_funnel_times_finalfn);
CREATE TEMP TABLE states AS
SELECT e, pg_temp.wf_state('4 min', 'strict_order', ts, f1, f2, f3, f4) AS s_ord,
          pg_temp.wf_state('4 min', 'strict_once', ts, f1, f2, f3, f4) AS s_once
  FROM fr GROUP BY e;
SELECT is((SELECT count(*) FROM states WHERE s_ord::text::crm.window_funnel_state::text <> s_ord::text
                                          OR s_once::text::crm.window_funnel_state::text <> s_once::text),
          0::bigint, 'window_funnel_state text round-trips exactly');
SELECT is((SELECT count(*) FROM got g JOIN (
              SELECT e, pg_temp.wf_merge(s_ord::text::crm.window_funnel_state) AS sord,
                        pg_temp.wf_merge_times(s_once::text::crm.window_funnel_state) AS tso
                FROM states GROUP BY e) r USING (e)
            WHERE (g.sord, g.tso) IS DISTINCT FROM (r.sord, r.tso)),
          0::bigint, 'a state read back from text gives the same level and times');
SELECT is((SELECT s_ord::text FROM states WHERE e = 1), (SELECT s_ord::text FROM states WHERE e = 1)::crm.window_funnel_state::text,
          'one state round trip (spot check)');
CREATE AGGREGATE pg_temp.fc_state(int, int) (SFUNC = crm._funnel_counts_transfn, STYPE = crm.funnel_counts_state);
SELECT is((SELECT pg_temp.fc_state(d, 4)::text FROM got), 'steps=4;hist=' || (SELECT string_agg(c::text, ',' ORDER BY l)
              FROM (SELECT l, (SELECT count(*) FROM got WHERE d = l) c FROM generate_series(0, 4) l) x),
          'funnel_counts_state text: rows per level 0..4');
SELECT is((SELECT pg_temp.fc_state(d, 4)::text::crm.funnel_counts_state::text FROM got),
          (SELECT pg_temp.fc_state(d, 4)::text FROM got), 'funnel_counts_state text round-trips exactly');
SELECT is(''::crm.window_funnel_state::text, '', 'empty window_funnel_state round-trips');

-- malformed state text: an error, never a crash
SELECT throws_ok($$SELECT 'garbage'::crm.window_funnel_state$$, '22P02', NULL, 'state text: garbage');
SELECT throws_ok($$SELECT 'steps=0;mode=0;window=1;events=0'::crm.window_funnel_state$$, '22P02', NULL, 'state text: 0 steps');
SELECT throws_ok($$SELECT 'steps=65;mode=0;window=1;events=0'::crm.window_funnel_state$$, '22P02', NULL, 'state text: 65 steps');
SELECT throws_ok($$SELECT 'steps=2;mode=32;window=1;events=0'::crm.window_funnel_state$$, '22P02', NULL, 'state text: unknown mode bit');
SELECT throws_ok($$SELECT 'steps=2;mode=16;window=1;events=0'::crm.window_funnel_state$$, '22P02', NULL, 'state text: allow_reentry without strict_order');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=-5;events=0'::crm.window_funnel_state$$, '22P02', NULL, 'state text: negative window');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=3;1:1,2:2'::crm.window_funnel_state$$, '22P02', NULL, 'state text: fewer events than counted');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=1;1:1,2:2'::crm.window_funnel_state$$, '22P02', NULL, 'state text: more events than counted');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=999999999999;1:1'::crm.window_funnel_state$$, '22P02', NULL, 'state text: huge event count');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=1;1:4'::crm.window_funnel_state$$, '22P02', NULL, 'state text: mask beyond the steps');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=1;1:0'::crm.window_funnel_state$$, '22P02', NULL, 'state text: empty mask outside strict_order');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=1;9223372036854775807:1'::crm.window_funnel_state$$, '22P02', NULL, 'state text: infinite time');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=1;99999999999999999999:1'::crm.window_funnel_state$$, '22P02', NULL, 'state text: time overflow');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;events=0x'::crm.window_funnel_state$$, '22P02', NULL, 'state text: trailing characters');
SELECT throws_ok($$SELECT 'steps=2;hist=1,2'::crm.funnel_counts_state$$, '22P02', NULL, 'counts state text: too few counts');
SELECT throws_ok($$SELECT 'steps=2;hist=1,2,3,4'::crm.funnel_counts_state$$, '22P02', NULL, 'counts state text: too many counts');
SELECT throws_ok($$SELECT 'steps=2;hist=1,-2,3'::crm.funnel_counts_state$$, '22P02', NULL, 'counts state text: negative count');
SELECT throws_ok($$SELECT 'steps=99;hist=1'::crm.funnel_counts_state$$, '22P02', NULL, 'counts state text: 99 steps');

-- ======================================================================
-- 6. bad input: each a clear error with its SQLSTATE
-- ======================================================================
SELECT throws_ok($$SELECT crm.window_funnel(NULL, now(), true)$$, '22004',
                 'window must not be null', 'NULL window');
SELECT throws_ok($$SELECT crm.window_funnel('-1 second', now(), true)$$, '22023',
                 'window must not be negative', 'negative window');
SELECT throws_ok($$SELECT crm.window_funnel('1 month -31 days', now(), true)$$, '22023',
                 'window must not be negative', 'window negative in total (1 month = 30 days)');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', now(), VARIADIC ARRAY[]::boolean[])$$, '22023',
                 'a funnel needs at least 1 step', '0 steps');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', now(), VARIADIC array_fill(true, ARRAY[65]))$$, '54000',
                 'a funnel supports at most 64 steps, got 65', '65 steps');
SELECT is((SELECT crm.window_funnel('1 day', now(), VARIADIC array_fill(true, ARRAY[64]))), 64, '64 steps work (one row fills all)');
SELECT is((SELECT crm.window_funnel('1 day', 'strict_once', ts, VARIADIC array_fill(true, ARRAY[64]))
             FROM generate_series(timestamptz '2024-01-01', '2024-01-01 01:02', '1 minute') ts), 63,
          '64 steps, strict_once: 63 rows reach 63');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', now(), VARIADIC NULL::boolean[])$$, '22004',
                 'steps must not be a null array', 'NULL steps array');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', now(), VARIADIC ARRAY[[true], [false]])$$, '2202E',
                 'steps must be a one-dimensional array', 'two-dimensional steps');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', 'strict', now(), true)$$, '22023',
                 'unknown funnel mode "strict"', 'unknown mode word');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', 'strict_order,', now(), true)$$, '22023',
                 'unknown funnel mode ""', 'empty mode word after a comma');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', NULL, now(), true)$$, '22004',
                 'mode must not be null', 'NULL mode');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', 'allow_reentry', now(), true)$$, '22023',
                 'mode allow_reentry requires strict_order', 'allow_reentry without strict_order');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', 'strict_deduplication, allow_reentry, strict_once', now(), true)$$, '22023',
                 'mode allow_reentry requires strict_order', 'allow_reentry with other modes but not strict_order');
CREATE FUNCTION pg_temp.hint_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text;
BEGIN
    EXECUTE q;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN h;
END $$;
SELECT is(pg_temp.hint_of($$SELECT crm.window_funnel('1 day', 'strict_orders', now(), true)$$),
          'The mode is '''' or a comma-separated list of strict_deduplication, strict_order, strict_increase, strict_once, allow_reentry.',
          'the unknown-mode hint lists the valid words');
SELECT throws_ok($$SELECT crm.window_funnel('1 day', now(), VARIADIC CASE WHEN x = 1 THEN ARRAY[true] ELSE ARRAY[true, false] END)
                     FROM generate_series(1, 2) x$$, '22023',
                 'got 1 steps on one row and 2 on another', 'the step count changes between rows');
SELECT throws_ok($$SELECT crm.window_funnel(x * interval '1 day', now(), true) FROM generate_series(1, 2) x$$, '22023',
                 'window and mode must be the same on every row of a group', 'the window changes between rows');
SELECT throws_ok($$SELECT crm.funnel_counts(5, 4)$$, '22023', 'level 5 is outside 0..4', 'funnel_counts: level > steps');
SELECT throws_ok($$SELECT crm.funnel_counts(-1, 4)$$, '22023', 'level -1 is outside 0..4', 'funnel_counts: negative level');
SELECT throws_ok($$SELECT crm.funnel_counts(1, NULL)$$, '22004', 'steps must not be null', 'funnel_counts: NULL steps');
SELECT throws_ok($$SELECT crm.funnel_counts(0, 0)$$, '22023', 'a funnel needs at least 1 step', 'funnel_counts: 0 steps');
SELECT throws_ok($$SELECT crm.funnel_counts(0, 65)$$, '54000', 'a funnel supports at most 64 steps, got 65', 'funnel_counts: 65 steps');
SELECT is((SELECT crm.funnel_counts(l, 3) FROM (VALUES (NULL::int), (0)) v(l)), '{0,0,0}'::bigint[], 'funnel_counts: NULL levels skipped');
SELECT is((SELECT crm.funnel_counts(1, 3) WHERE false), NULL::bigint[], 'funnel_counts over no rows is NULL');
SELECT throws_ok($$SELECT crm._window_funnel_finalfn(NULL)$$, '0A000', NULL, 'support functions refuse a non-aggregate call');
SELECT * FROM finish();
ROLLBACK;
