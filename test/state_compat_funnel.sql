-- state_compat_funnel.sql: state texts written by released versions are still read, with the
-- same results.  The texts below were printed by builds of the 0.1.0 release (commit 7872719~1)
-- and of the 0.2.0 release (commit d3b329b~1) from the rows of the tables below: both wrote
-- exactly the same texts (a 0.2.0 state of window_funnel_by_name too: it carries no names).
--   window_funnel: steps=N;mode=M;window=USEC;events=K;ts:mask,...   (0.3.0 adds ;names=ID)
--   funnel_counts: steps=N;hist=c0,...,cN
--   demand_cv:     periods:sum1,...,sumN
-- Each is read back by the current input function, given to the final function and compared
-- with a hand-worked value or plain SQL over the same rows.
BEGIN;
SELECT plan(16);
SET LOCAL timezone = 'UTC';

CREATE TEMP TABLE compat_ev(entity int, ts timestamptz, step text);
INSERT INTO compat_ev VALUES
 (1, '2025-01-01 10:00+00', 'visit'), (1, '2025-01-01 11:00+00', 'signup'), (1, '2025-01-03 09:00+00', 'buy'),
 (2, '2025-01-01 10:00+00', 'visit'), (2, '2025-01-05 10:00+00', 'signup'), (2, '2025-01-05 12:00+00', 'buy'),
 (3, '2025-01-02 08:00+00', 'signup'), (3, '2025-01-02 09:00+00', 'visit'), (3, '2025-01-02 09:30+00', 'other'),
 (3, '2025-01-02 10:00+00', 'signup');

-- the states 0.1.0 and 0.2.0 wrote for window '2 days', steps visit, signup, buy; mode '' (0) and
-- 'strict_order, strict_increase' (6)
CREATE TEMP TABLE compat_wf(entity int, mode int, st text);
INSERT INTO compat_wf VALUES
 (1, 0, 'steps=3;mode=0;window=172800000000;events=3;789040800000000:1,789044400000000:2,789210000000000:4'),
 (2, 0, 'steps=3;mode=0;window=172800000000;events=3;789040800000000:1,789386400000000:2,789393600000000:4'),
 (3, 0, 'steps=3;mode=0;window=172800000000;events=3;789120000000000:2,789123600000000:1,789127200000000:2'),
 (1, 6, 'steps=3;mode=6;window=172800000000;events=3;789040800000000:1,789044400000000:2,789210000000000:4'),
 (2, 6, 'steps=3;mode=6;window=172800000000;events=3;789040800000000:1,789386400000000:2,789393600000000:4'),
 (3, 6, 'steps=3;mode=6;window=172800000000;events=4;789120000000000:2,789123600000000:1,789125400000000:0,789127200000000:2');

CREATE AGGREGATE pg_temp.wf_merge(crm.window_funnel_state) (
    SFUNC = crm._window_funnel_combinefn, STYPE = crm.window_funnel_state, FINALFUNC = crm._window_funnel_finalfn);
CREATE AGGREGATE pg_temp.wf_merge_times(crm.window_funnel_state) (
    SFUNC = crm._window_funnel_combinefn, STYPE = crm.window_funnel_state, FINALFUNC = crm._window_funnel_times_finalfn);
CREATE AGGREGATE pg_temp.fc_merge(crm.funnel_counts_state) (
    SFUNC = crm._funnel_counts_combinefn, STYPE = crm.funnel_counts_state, FINALFUNC = crm._funnel_counts_finalfn);

-- hand-worked: 1 reaches buy 47 h after visit (window 48 h); 2's signup is 4 days after the
-- visit; 3's visit at 09:00 is followed by signup at 10:00 (level 2), but under strict_order the
-- unmatched row at 09:30 ends the scan (level 1)
SELECT results_eq($$SELECT entity, pg_temp.wf_merge(st::crm.window_funnel_state) FROM compat_wf WHERE mode = 0
                    GROUP BY entity ORDER BY entity$$,
                  $$VALUES (1, 3), (2, 1), (3, 2)$$, 'window_funnel: 0.2.0 states (mode 0) give the hand-worked levels');
SELECT results_eq($$SELECT entity, pg_temp.wf_merge(st::crm.window_funnel_state) FROM compat_wf WHERE mode = 6
                    GROUP BY entity ORDER BY entity$$,
                  $$VALUES (1, 3), (2, 1), (3, 1)$$, 'window_funnel: 0.2.0 states (strict_order, strict_increase) give the hand-worked levels');
SELECT is((SELECT pg_temp.wf_merge_times(st::crm.window_funnel_state) FROM compat_wf WHERE entity = 1 AND mode = 0),
          ARRAY[timestamptz '2025-01-01 10:00+00', '2025-01-01 11:00+00', '2025-01-03 09:00+00'],
          'window_funnel_times: a 0.2.0 state gives the rows'' times');
SELECT is((SELECT pg_temp.wf_merge_times(st::crm.window_funnel_state) FROM compat_wf WHERE entity = 3 AND mode = 0),
          ARRAY[timestamptz '2025-01-02 09:00+00', '2025-01-02 10:00+00'],
          'window_funnel_times: the chain of entity 3 (signup before the visit does not count)');
-- the same answer as the aggregates computing over the rows today
SELECT results_eq($$SELECT entity, pg_temp.wf_merge(st::crm.window_funnel_state) FROM compat_wf WHERE mode = 6
                    GROUP BY entity ORDER BY entity$$,
                  $$SELECT entity, crm.window_funnel('2 days', 'strict_order, strict_increase', ts,
                                                     step = 'visit', step = 'signup', step = 'buy')
                      FROM compat_ev GROUP BY entity ORDER BY entity$$,
                  'window_funnel: 0.2.0 states agree with the aggregate over the same rows');
-- the event times of the text are microseconds since 2000-01-01 UTC of the rows (plain SQL)
SELECT is((SELECT array_agg(timestamptz '2000-01-01 00:00+00' + (split_part(e, ':', 1)::bigint / 1000000) * interval '1 second'
                            ORDER BY ord)
             FROM compat_wf, unnest(string_to_array(split_part(st, ';', 5), ',')) WITH ORDINALITY u(e, ord)
            WHERE entity = 3 AND mode = 0),
          (SELECT array_agg(ts ORDER BY ts) FROM compat_ev WHERE entity = 3 AND step IN ('visit', 'signup')),
          'window_funnel_state: the saved event times are the rows'' times');
SELECT is((SELECT count(*) FROM compat_wf WHERE st::crm.window_funnel_state::text = st), 6::bigint,
          'window_funnel_state: every 0.2.0 text is written back unchanged');

-- funnel_counts over the levels 0, 1, 3, 3, 2, 1, 1 of 3 steps
SELECT is((SELECT pg_temp.fc_merge('steps=3;hist=1,3,1,2'::crm.funnel_counts_state)),
          (SELECT ARRAY[count(*) FILTER (WHERE l >= 1), count(*) FILTER (WHERE l >= 2), count(*) FILTER (WHERE l >= 3)]
             FROM (VALUES (0), (1), (3), (3), (2), (1), (1)) v(l)),
          'funnel_counts: a 0.2.0 state gives the counts plain SQL computes from the levels');
SELECT is('steps=3;hist=1,3,1,2'::crm.funnel_counts_state::text, 'steps=3;hist=1,3,1,2',
          'funnel_counts_state: the 0.2.0 text is written back unchanged');

-- demand_cv over 4 periods
CREATE TEMP TABLE compat_dq(item text, qty float8, period_no int);
INSERT INTO compat_dq VALUES ('a', 10, 1), ('a', 12.5, 2), ('a', 0.1, 2), ('a', 7, 4),
                             ('b', 3, 1), ('b', -1.25, 3), ('b', 1e20, 2);
CREATE TEMP TABLE compat_cv(item text, st text);
INSERT INTO compat_cv VALUES ('a', '4:10,12.6,0,7'), ('b', '4:3,1e+20,-1.25,0');
CREATE TEMP VIEW compat_cv_plain AS
SELECT item, stddev_pop(s) / avg(s) AS cv
  FROM (SELECT i.item, p, coalesce(sum(d.qty), 0) AS s
          FROM (SELECT DISTINCT item FROM compat_dq) i CROSS JOIN generate_series(1, 4) p
          LEFT JOIN compat_dq d ON d.item = i.item AND d.period_no = p
         GROUP BY i.item, p) per GROUP BY item;
SELECT ok(abs(crm.demand_cv_finalfn('4:10,12.6,0,7'::crm.demand_cv_state) - (SELECT cv FROM compat_cv_plain WHERE item = 'a'))
          < 1e-12, 'demand_cv: a 0.2.0 state gives plain SQL''s coefficient of variation');
SELECT ok(abs(crm.demand_cv_finalfn('4:3,1e+20,-1.25,0'::crm.demand_cv_state) - (SELECT cv FROM compat_cv_plain WHERE item = 'b'))
          < 1e-12, 'demand_cv: a 0.2.0 state with an exponent and a negative sum');
SELECT is((SELECT count(*) FROM compat_cv WHERE st::crm.demand_cv_state::text = st), 2::bigint,
          'demand_cv_state: every 0.2.0 text is written back unchanged');
SELECT results_eq($$SELECT item, crm.demand_cv_finalfn(st::crm.demand_cv_state) FROM compat_cv ORDER BY item$$,
                  $$SELECT item, crm.demand_cv(qty, period_no, 4) FROM compat_dq GROUP BY item ORDER BY item$$,
                  'demand_cv: 0.2.0 states agree with the aggregate over the same rows, bit for bit');

-- malformed texts: the shared reader's one message, with the whole text (SQLSTATE 22P02)
SELECT throws_ok($$SELECT 'steps=3;mode=0;window=5;events=1;1:8'::crm.window_funnel_state$$, '22P02',
                 'invalid input syntax for type crm.window_funnel_state: "steps=3;mode=0;window=5;events=1;1:8"',
                 'window_funnel_state: a step mask beyond the steps');
SELECT throws_ok($$SELECT 'steps=3;hist=1,2,3'::crm.funnel_counts_state$$, '22P02',
                 'invalid input syntax for type crm.funnel_counts_state: "steps=3;hist=1,2,3"',
                 'funnel_counts_state: a count missing');
SELECT throws_ok($$SELECT '2:1'::crm.demand_cv_state$$, '22P02',
                 'invalid input syntax for type crm.demand_cv_state: "2:1"',
                 'demand_cv_state: a sum missing');

SELECT * FROM finish();
ROLLBACK;
