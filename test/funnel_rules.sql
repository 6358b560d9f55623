BEGIN;
SELECT plan(36);
-- issue 16 item 10: funnel_counts on a crafted state, one step array per
-- window_funnel_by_name group, NULL entities in funnel_report, and the mode
-- combinations ClickHouse accepts.

-- ======================================================================
-- 1. funnel_counts: a crafted state cannot overflow (22003)
-- ======================================================================
CREATE AGGREGATE pg_temp.fc_final(crm.funnel_counts_state) (
    SFUNC = crm._funnel_counts_combinefn, STYPE = crm.funnel_counts_state, FINALFUNC = crm._funnel_counts_finalfn);
CREATE AGGREGATE pg_temp.fc_init(int, int) (
    SFUNC = crm._funnel_counts_transfn, STYPE = crm.funnel_counts_state, FINALFUNC = crm._funnel_counts_finalfn,
    INITCOND = 'steps=2;hist=0,0,9223372036854775807');
SELECT throws_ok($$SELECT pg_temp.fc_final(s) FROM (VALUES ('steps=2;hist=0,9223372036854775807,1'::crm.funnel_counts_state)) v(s)$$,
                 '22003', 'count out of range', 'final function: level >= 1 would be 2^63');
SELECT throws_ok($$SELECT pg_temp.fc_init(2, 2)$$,
                 '22003', 'count out of range', 'transition: one more row at a count of 2^63 - 1');
SELECT is((SELECT pg_temp.fc_final(s) FROM (VALUES ('steps=2;hist=5,9223372036854775806,1'::crm.funnel_counts_state)) v(s)),
          ARRAY[9223372036854775807, 1]::bigint[], 'the largest count that fits is exact (2^63 - 2 + 1)');

-- ======================================================================
-- 2. window_funnel_by_name: one step array per group (22023)
-- ======================================================================
CREATE TEMP TABLE bn(g int, ts timestamptz, s text, flip boolean);
INSERT INTO bn VALUES (1, '2024-01-01 00:00+00', 'a', false), (1, '2024-01-01 00:01+00', 'b', false),
                      (2, '2024-01-01 00:00+00', 'a', false), (2, '2024-01-01 00:01+00', 'b', true),
                      (3, '2024-01-01 00:00+00', 'b', true), (3, '2024-01-01 00:01+00', 'a', true);
SELECT throws_ok($$SELECT g, crm.window_funnel_by_name('1 hour', ts, s, CASE WHEN flip THEN ARRAY['b', 'a'] ELSE ARRAY['a', 'b'] END)
                     FROM bn GROUP BY g$$,
                 '22023', 'got different step names on rows of one group',
                 'group 2 passes [a,b] and [b,a]: an error');
SELECT throws_ok($$SELECT crm.window_funnel_times_by_name('1 hour', 'strict_order', ts, s, CASE WHEN flip THEN ARRAY['a', 'c'] ELSE ARRAY['a', 'b'] END)
                     FROM bn WHERE g = 2$$,
                 '22023', 'got different step names on rows of one group',
                 'window_funnel_times_by_name with a mode: the same error');
-- different arrays in different groups are fine: each group is its own funnel (hand-worked)
SELECT results_eq($$SELECT g, crm.window_funnel_by_name('1 hour', ts, s, CASE WHEN g = 3 THEN ARRAY['b', 'a'] ELSE ARRAY['a', 'b'] END)
                      FROM bn GROUP BY g ORDER BY g$$,
                  $$VALUES (1, 2), (2, 2), (3, 2)$$, 'one array per group, different between groups: a level per group');
SELECT results_eq($$SELECT g, crm.window_funnel_by_name('1 hour', ts, s, ARRAY[CASE WHEN g > 0 THEN 'b' END, 'a'])
                      FROM bn GROUP BY g ORDER BY g$$,
                  $$VALUES (1, 1), (2, 1), (3, 2)$$, 'an array that is not a constant but the same on every row: no error');
-- partial states carry the identity of their names
CREATE AGGREGATE pg_temp.wfn_state(interval, timestamptz, text, text[]) (
    SFUNC = crm._window_funnel_transfn, STYPE = crm.window_funnel_state);
CREATE AGGREGATE pg_temp.wf_merge(crm.window_funnel_state) (
    SFUNC = crm._window_funnel_combinefn, STYPE = crm.window_funnel_state, FINALFUNC = crm._window_funnel_finalfn);
CREATE TEMP TABLE nst AS
SELECT pg_temp.wfn_state('1 hour', ts, s, ARRAY['a', 'b']) AS ab,
       pg_temp.wfn_state('1 hour', ts, s, ARRAY['b', 'a']) AS ba,
       pg_temp.wfn_state('1 hour', ts, s, ARRAY['a', 'b']) FILTER (WHERE s = 'a') AS ab_a
  FROM bn WHERE g = 1;
SELECT ok((SELECT ab::text ~ ';names=[0-9]+;' AND ab::text::crm.window_funnel_state::text = ab::text FROM nst),
          'a step-name state has names=<id> in its text form and round-trips');
SELECT ok((SELECT substring(ab::text from 'names=[0-9]+') <> substring(ba::text from 'names=[0-9]+') FROM nst),
          'the names of [a,b] and [b,a] differ');
SELECT throws_ok($$SELECT pg_temp.wf_merge(x) FROM (SELECT ab AS x FROM nst UNION ALL SELECT ba FROM nst) u$$,
                 '22023', 'cannot combine window_funnel states with different steps, window or mode',
                 'states of different step names do not combine');
SELECT is((SELECT pg_temp.wf_merge(x) FROM (SELECT ab_a AS x FROM nst UNION ALL SELECT ab::text::crm.window_funnel_state FROM nst) u),
          2, 'states of the same names combine (one read back from text)');
SELECT throws_ok($$SELECT 'steps=2;mode=0;window=5;names=0;events=0'::crm.window_funnel_state$$, '22P02', NULL,
                 'state text: names=0 is invalid');

-- ======================================================================
-- 3. funnel_report drops NULL entities, as the cohort and RFM reports do
-- ======================================================================
CREATE TEMP TABLE nx(deal int, at timestamptz, stage text);
INSERT INTO nx VALUES (1, '2025-01-01', 'lead'), (1, '2025-01-02', 'qualified'),
                      (2, '2025-01-01', 'lead'),
                      (NULL, '2025-01-01', 'lead'), (NULL, '2025-01-02', 'qualified'), (NULL, '2025-01-03', 'paid'),
                      (NULL, '2025-01-04', 'lead');
-- plain SQL: each entity's steps here are in funnel order and within the window, so an entity
-- entered step k when it has a row of every step up to k
SELECT results_eq($$SELECT entered FROM crm.funnel_report('SELECT deal, at, stage FROM nx', ARRAY['lead', 'qualified', 'paid']) ORDER BY step_no$$,
                  $$SELECT count(DISTINCT deal) FILTER (WHERE k <= lvl) FROM (
                        SELECT deal, (bool_or(stage = 'lead'))::int
                                     + (bool_or(stage = 'lead') AND bool_or(stage = 'qualified'))::int
                                     + (bool_or(stage = 'lead') AND bool_or(stage = 'qualified') AND bool_or(stage = 'paid'))::int AS lvl
                          FROM nx WHERE deal IS NOT NULL GROUP BY deal) d
                      CROSS JOIN generate_series(1, 3) k GROUP BY k ORDER BY k$$,
                  'entered per step = plain SQL over the non-NULL entities');
SELECT results_eq($$SELECT entered, dropped FROM crm.funnel_report('SELECT deal, at, stage FROM nx', ARRAY['lead', 'qualified', 'paid']) ORDER BY step_no$$,
                  $$VALUES (2::bigint, 1::bigint), (1, 1), (0, 0)$$,
                  'the NULL entity''s rows (which reach paid) count nowhere (hand-worked)');
SELECT is((SELECT count(*) FROM crm.funnel_report('SELECT deal, at, stage FROM nx WHERE deal IS NULL', ARRAY['lead'])
            WHERE entered > 0), 0::bigint, 'only NULL entities: nobody entered');

-- ======================================================================
-- 4. mode combinations (ClickHouse's windowFunnel accepts them all):
--    hand-worked cases, steps A, B, C, window 1 day; label = the steps a row matches
-- ======================================================================
CREATE FUNCTION pg_temp.wf(mode text, ev text) RETURNS int LANGUAGE sql AS $$
    SELECT crm.window_funnel('1 day', mode, timestamptz '2024-01-01 00:00+00' + x.sec * interval '1 second',
                             strpos(x.lbl, 'A') > 0, strpos(x.lbl, 'B') > 0, strpos(x.lbl, 'C') > 0)
      FROM (SELECT split_part(r, ':', 1)::int AS sec, split_part(r, ':', 2) AS lbl
              FROM unnest(string_to_array(ev, ' ')) r) x
$$;
-- A and B on one row at 1 s, then B, then C
SELECT is(pg_temp.wf('strict_deduplication', '1:AB 2:B 3:C'), 2,
          'strict_deduplication: the row at 1 s fills A and B, the B at 2 s repeats B and ends the search');
SELECT is(pg_temp.wf('strict_once,strict_deduplication', '1:AB 2:B 3:C'), 3,
          'strict_once + strict_deduplication: the row at 1 s fills A only, so the B at 2 s is no repeat: A(1) B(2) C(3)');
SELECT is(pg_temp.wf('strict_deduplication,strict_order,strict_once', '1:AB 2:B 3:C'), 3,
          'strict_once + strict_deduplication + strict_order: the same chain, in order');
SELECT is(pg_temp.wf('strict_deduplication,strict_order', '1:AB 2:B 3:C'), 2,
          'strict_deduplication + strict_order without strict_once: 2');
-- A and B on one row, then C before any other B
SELECT is(pg_temp.wf('strict_order', '1:AB 2:C 3:B 4:C'), 3,
          'strict_order: the row at 1 s reaches B, C at 2 s follows it');
SELECT is(pg_temp.wf('strict_once, strict_order', '1:AB 2:C 3:B 4:C'), 1,
          'strict_once + strict_order: B is not reached by the row at 1 s, so C at 2 s skips ahead and ends the search');
SELECT is(pg_temp.wf('strict_once,strict_order,allow_reentry', '1:AB 2:C 3:B 4:C'), 3,
          'strict_once + strict_order + allow_reentry: C at 2 s is ignored, A(1) B(3) C(4)');
SELECT is(pg_temp.wf('strict_order', '1:A 2:C 3:B 4:C'), 1, 'strict_order: C skips ahead and ends the search');
SELECT is(pg_temp.wf('strict_order,allow_reentry', '1:A 2:C 3:B 4:C'), 3, 'strict_order + allow_reentry: the early C is ignored');
SELECT is(pg_temp.wf('strict_order,allow_reentry', '1:A 2: 3:B'), 1,
          'strict_order + allow_reentry: a row matching no step still ends the search');
SELECT is(pg_temp.wf('strict_deduplication,strict_order,allow_reentry', '1:A 2:C 3:B 4:B 5:C'), 2,
          'strict_deduplication + strict_order + allow_reentry: C ignored, the second B ends the search');
SELECT is(pg_temp.wf('strict_once,strict_increase,strict_deduplication', '1:A 1:B 2:B 3:C'), 3,
          'strict_once + strict_increase + strict_deduplication: B at 1 s cannot follow A at 1 s, B at 2 s can');
SELECT is(pg_temp.wf('strict_once,strict_increase,strict_order', '1:A 2:C 3:B'), 1,
          'strict_once + strict_increase + strict_order: C skips ahead');
SELECT is(pg_temp.wf('strict_once,strict_deduplication', '1:A 2:B 2:B 3:C'), 2,
          'strict_once + strict_deduplication: two B rows at one time are a repetition once B is reached');
SELECT is((SELECT crm.window_funnel_times('1 day', 'strict_once,strict_deduplication', timestamptz '2024-01-01 00:00+00' + sec * interval '1 second',
                                          strpos(lbl, 'A') > 0, strpos(lbl, 'B') > 0, strpos(lbl, 'C') > 0)
             FROM (VALUES (1, 'AB'), (2, 'B'), (3, 'C')) v(sec, lbl)),
          ARRAY['2024-01-01 00:00:01+00', '2024-01-01 00:00:02+00', '2024-01-01 00:00:03+00']::timestamptz[],
          'window_funnel_times, strict_once + strict_deduplication: the chain A(1) B(2) C(3)');
SELECT is((SELECT crm.window_funnel_by_name('1 day', 'strict_once,strict_deduplication', timestamptz '2024-01-01' + sec * interval '1 second',
                                            s, ARRAY['a', 'a', 'b'])
             FROM (VALUES (1, 'a'), (2, 'a'), (3, 'b')) v(sec, s)),
          3, 'step names, strict_once + strict_deduplication: a name repeated in the steps fills one step per row');

-- random events against ClickHouse's scan (plpgsql, written from its definition) for allow_reentry,
-- and strict_once combinations on rows that match one step each (strict_once then changes nothing)
CREATE TEMP TABLE fr_seed AS SELECT setseed(0.1717)::text AS seeded;
CREATE TEMP TABLE fr AS
SELECT e, timestamptz '2024-03-01 00:00+00' + (floor(random() * 12)::int * interval '1 minute') AS ts,
       random() < 0.4 AS f1, random() < 0.4 AS f2, random() < 0.4 AS f3, random() < 0.35 AS f4
  FROM generate_series(1, 300) e, generate_series(1, 1 + floor(random() * 7)::int) i;
CREATE TEMP TABLE fr1 AS
SELECT e, ts, k = 1 AS f1, k = 2 AS f2, k = 3 AS f3, k = 4 AS f4
  FROM (SELECT e, ts, floor(random() * 5)::int AS k FROM fr) x;
CREATE FUNCTION pg_temp.ch_funnel(tab text, ent int, win interval, dedup boolean, sorder boolean, reentry boolean)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r record;
    fst timestamptz[] := array_fill(NULL::timestamptz, ARRAY[4]);
    first_event boolean := false;
    idx int;
    i int;
BEGIN
    FOR r IN EXECUTE format($q$
        SELECT ts, k FROM (
            SELECT t.ts, v.k FROM %1$I t, LATERAL (VALUES (1, t.f1), (2, t.f2), (3, t.f3), (4, t.f4)) v(k, f)
             WHERE t.e = $1 AND v.f
            UNION ALL
            SELECT t.ts, 0 FROM %1$I t WHERE $2 AND t.e = $1 AND NOT (t.f1 OR t.f2 OR t.f3 OR t.f4)
        ) s ORDER BY ts, k$q$, tab) USING ent, sorder
    LOOP
        idx := r.k;
        IF sorder AND idx = 0 THEN
            IF first_event THEN EXIT; END IF;
            CONTINUE;
        ELSIF idx = 1 THEN
            fst[1] := r.ts; first_event := true;
        ELSIF dedup AND fst[idx] IS NOT NULL THEN
            EXIT;
        ELSIF sorder AND first_event AND fst[idx - 1] IS NULL THEN
            IF reentry THEN CONTINUE; END IF;
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
CREATE TEMP TABLE got AS
SELECT e, crm.window_funnel('4 min', 'strict_order,allow_reentry', ts, f1, f2, f3, f4) AS ore,
          crm.window_funnel('4 min', 'strict_order,allow_reentry,strict_deduplication', ts, f1, f2, f3, f4) AS odre
  FROM fr GROUP BY e;
CREATE TEMP TABLE got1 AS
SELECT e, crm.window_funnel('4 min', 'strict_once,strict_deduplication', ts, f1, f2, f3, f4) AS od,
          crm.window_funnel('4 min', 'strict_once,strict_order', ts, f1, f2, f3, f4) AS oo,
          crm.window_funnel('4 min', 'strict_once,strict_order,strict_deduplication', ts, f1, f2, f3, f4) AS ood,
          crm.window_funnel('4 min', 'strict_once,strict_order,allow_reentry', ts, f1, f2, f3, f4) AS oore
  FROM fr1 GROUP BY e;
SELECT ok((SELECT count(DISTINCT ore) FROM got) >= 4 AND (SELECT count(DISTINCT oo) FROM got1) >= 4,
          'the random fixtures reach many levels');
SELECT is((SELECT count(*) FROM got WHERE ore <> pg_temp.ch_funnel('fr', e, '4 min', false, true, true)), 0::bigint,
          'strict_order + allow_reentry = ClickHouse''s scan, every entity');
SELECT is((SELECT count(*) FROM got WHERE odre <> pg_temp.ch_funnel('fr', e, '4 min', true, true, true)), 0::bigint,
          'strict_order + allow_reentry + strict_deduplication = ClickHouse''s scan, every entity');
SELECT is((SELECT count(*) FROM got1 WHERE od <> pg_temp.ch_funnel('fr1', e, '4 min', true, false, false)
                                        OR oo <> pg_temp.ch_funnel('fr1', e, '4 min', false, true, false)), 0::bigint,
          'one step per row: strict_once + strict_deduplication / strict_order = the scan without strict_once');
SELECT is((SELECT count(*) FROM got1 WHERE ood <> pg_temp.ch_funnel('fr1', e, '4 min', true, true, false)
                                        OR oore <> pg_temp.ch_funnel('fr1', e, '4 min', false, true, true)), 0::bigint,
          'one step per row: strict_once + both / + strict_order, allow_reentry = the scan without strict_once');

SELECT * FROM finish();
ROLLBACK;
