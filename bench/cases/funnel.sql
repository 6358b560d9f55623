-- funnel: crm.window_funnel GROUP BY entity on :N events of :N/10 entities (10 events each,
-- 9 stage names s1..s8 and 'other', times spread over ~3 days per entity), 4 and 8 steps, window 3 days.
-- floor: GROUP BY entity count(*); plain: the join-per-step funnel a user would write (from the first
-- step-1 event only, so weaker first-touch semantics); sorted: GroupAggregate over an index on
-- (entity, ts); parallel: 2 workers; variadic: the same 4-step funnel through VARIADIC ARRAY[...]
-- (the array form; separate step arguments resolve to the fixed-arity overloads); names: the step-name
-- form window_funnel_by_name(window, ts, stage, ARRAY['s1', ...]), the same funnel with one comparison per step in C.
-- @setup
DROP TABLE IF EXISTS funnel_ev;
CREATE TABLE funnel_ev AS
SELECT i % greatest(:N / 10, 1) AS entity,
       timestamptz '2025-01-01' + (i % greatest(:N / 10, 1)) * interval '1 minute'
           + (i / greatest(:N / 10, 1)) * interval '7 hours' + (abs(hashint4(i * 3)) % 600) * interval '1 minute' AS ts,
       (ARRAY['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 'other'])[1 + abs(hashint4(i)) % 9] AS stage
  FROM generate_series(0, :N - 1) i;
CREATE INDEX funnel_ev_entity_ts ON funnel_ev (entity, ts);
ALTER TABLE funnel_ev SET (parallel_workers = 2);
VACUUM ANALYZE funnel_ev;
-- @floor groupby
SELECT sum(c) FROM (SELECT entity, count(*) AS c FROM funnel_ev GROUP BY entity) s;
-- @plain funnel_4
WITH f1 AS (SELECT entity, min(ts) AS t1, min(ts) AS tp FROM funnel_ev WHERE stage = 's1' GROUP BY entity),
f2 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f1 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's2'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f3 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f2 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's3'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f4 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f3 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's4'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1)
SELECT (SELECT count(*) FROM f1) + (SELECT count(*) FROM f2) + (SELECT count(*) FROM f3) + (SELECT count(*) FROM f4);
-- @query funnel_4
SELECT sum(l) FROM (SELECT entity, crm.window_funnel('3 days', ts, stage = 's1', stage = 's2', stage = 's3', stage = 's4') AS l FROM funnel_ev GROUP BY entity) x;
-- @query funnel_4_names
SELECT sum(l) FROM (SELECT entity, crm.window_funnel_by_name('3 days', ts, stage, ARRAY['s1', 's2', 's3', 's4']) AS l FROM funnel_ev GROUP BY entity) x;
-- @query funnel_4_variadic
SELECT sum(l) FROM (SELECT entity, crm.window_funnel('3 days', ts, VARIADIC ARRAY[stage = 's1', stage = 's2', stage = 's3', stage = 's4']) AS l FROM funnel_ev GROUP BY entity) x;
-- @plain funnel_8
WITH f1 AS (SELECT entity, min(ts) AS t1, min(ts) AS tp FROM funnel_ev WHERE stage = 's1' GROUP BY entity),
f2 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f1 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's2'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f3 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f2 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's3'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f4 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f3 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's4'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f5 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f4 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's5'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f6 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f5 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's6'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f7 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f6 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's7'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1),
f8 AS (SELECT f.entity, f.t1, min(e.ts) AS tp FROM f7 f JOIN funnel_ev e ON e.entity = f.entity AND e.stage = 's8'
        AND e.ts >= f.tp AND e.ts <= f.t1 + interval '3 days' GROUP BY f.entity, f.t1)
SELECT (SELECT count(*) FROM f1) + (SELECT count(*) FROM f2) + (SELECT count(*) FROM f3) + (SELECT count(*) FROM f4) + (SELECT count(*) FROM f5) + (SELECT count(*) FROM f6) + (SELECT count(*) FROM f7) + (SELECT count(*) FROM f8);
-- @query funnel_8
SELECT sum(l) FROM (SELECT entity, crm.window_funnel('3 days', ts, stage = 's1', stage = 's2', stage = 's3', stage = 's4', stage = 's5', stage = 's6', stage = 's7', stage = 's8') AS l FROM funnel_ev GROUP BY entity) x;
-- @query funnel_8_names
SELECT sum(l) FROM (SELECT entity, crm.window_funnel_by_name('3 days', ts, stage, ARRAY['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8']) AS l FROM funnel_ev GROUP BY entity) x;
-- @query funnel_8_strict_increase
SELECT sum(l) FROM (SELECT entity, crm.window_funnel('3 days', 'strict_increase', ts, stage = 's1', stage = 's2', stage = 's3', stage = 's4', stage = 's5', stage = 's6', stage = 's7', stage = 's8') AS l FROM funnel_ev GROUP BY entity) x;
-- @set max_parallel_workers_per_gather = 2
-- @set parallel_setup_cost = 0
-- @query funnel_4_parallel
SELECT sum(l) FROM (SELECT entity, crm.window_funnel('3 days', ts, stage = 's1', stage = 's2', stage = 's3', stage = 's4') AS l FROM funnel_ev GROUP BY entity) x;
-- @query funnel_8_names_parallel
SELECT sum(l) FROM (SELECT entity, crm.window_funnel_by_name('3 days', ts, stage, ARRAY['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8']) AS l FROM funnel_ev GROUP BY entity) x;
-- @query funnel_8_parallel
SELECT sum(l) FROM (SELECT entity, crm.window_funnel('3 days', ts, stage = 's1', stage = 's2', stage = 's3', stage = 's4', stage = 's5', stage = 's6', stage = 's7', stage = 's8') AS l FROM funnel_ev GROUP BY entity) x;
-- @set max_parallel_workers_per_gather = 0
-- @set enable_hashagg = off
-- @set enable_sort = off
-- @query funnel_4_sorted
SELECT sum(l) FROM (SELECT entity, crm.window_funnel('3 days', ts, stage = 's1', stage = 's2', stage = 's3', stage = 's4') AS l FROM funnel_ev GROUP BY entity) x;
-- @query funnel_8_names_sorted
SELECT sum(l) FROM (SELECT entity, crm.window_funnel_by_name('3 days', ts, stage, ARRAY['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8']) AS l FROM funnel_ev GROUP BY entity) x;
