-- funnel: window_funnel, window_funnel_times, funnel_counts on hand-worked
-- timelines and on the examples of ClickHouse's windowFunnel docs and issues.
-- Every expected level is worked out by hand in the comment beside it.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
-- events from a string: one letter per second, starting at 2024-01-01 00:00:01
CREATE FUNCTION seq_events(s text) RETURNS TABLE(ts timestamptz, ev text)
LANGUAGE sql AS $$
  SELECT timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', substr(s, i, 1)
    FROM generate_series(1, length(s)) i
$$;
-- ClickHouse PR 9773 (strict_order): steps A, B, C; D is an intervening event.
-- default: ABC 3, ADBC 3, AABBCC 3, AAAABBCC 3, AABBDCC 3, BBCCAA 1
-- strict_order: ABC 3, ADBC 1 (D after A), AABBCC 3, AAAABBCC 3, AABBDCC 2, BBCCAA 1
SELECT s,
       (SELECT crm.window_funnel('1 hour', ts, ev = 'A', ev = 'B', ev = 'C') FROM seq_events(s)) AS plain,
       (SELECT crm.window_funnel('1 hour', 'strict_order', ts, ev = 'A', ev = 'B', ev = 'C') FROM seq_events(s)) AS strict_order
  FROM unnest(ARRAY['ABC', 'ADBC', 'AABBCC', 'AAAABBCC', 'AABBDCC', 'BBCCAA']) s ORDER BY s;
-- strict_deduplication: a repeated step ends the search (the ClickHouse docs' "A-B-C-B-D" -> 3).
-- ABCBD: default 4, dedup 3 (second B).  ABBC: default 3, dedup 2.  AABC: step 1 repeats restart, 3.
-- install,start,login,install,start,... (ClickHouse issue 37177): IS L I S I S L E; dedup stops at the
-- second S with level 3 reached (ClickHouse 22.x returned 1).
SELECT s,
       (SELECT crm.window_funnel('1 hour', ts, ev = 'A', ev = 'B', ev = 'C', ev = 'D') FROM seq_events(s)) AS plain,
       (SELECT crm.window_funnel('1 hour', 'strict_deduplication', ts, ev = 'A', ev = 'B', ev = 'C', ev = 'D') FROM seq_events(s)) AS dedup
  FROM unnest(ARRAY['ABCBD', 'ABBC', 'AABC', 'DCBA']) s ORDER BY s;
SELECT (SELECT crm.window_funnel('1 minute', ts, ev = 'I', ev = 'S', ev = 'L', ev = 'E') FROM seq_events('ISLISISLE')) AS plain,
       (SELECT crm.window_funnel('1 minute', 'strict_deduplication', ts, ev = 'I', ev = 'S', ev = 'L', ev = 'E') FROM seq_events('ISLISISLE')) AS dedup;
-- ClickHouse docs example: user 1's phone events 1003 (01-29), 1009 (01-30), 1007 (01-31), 1010 (02-01):
-- level 4 with a 70000-day window; with a 2-day window the chain from 01-29 10:00 stops at 1007 (01-31 09:00): 3
CREATE TABLE trend(event_date date, user_id int, ts timestamptz, event_id int, product text);
INSERT INTO trend VALUES
  ('2019-01-28', 1, '2019-01-29 10:00:00', 1003, 'phone'),
  ('2019-01-31', 1, '2019-01-31 09:00:00', 1007, 'phone'),
  ('2019-01-30', 1, '2019-01-30 08:00:00', 1009, 'phone'),
  ('2019-02-01', 1, '2019-02-01 08:00:00', 1010, 'phone');
SELECT user_id,
       crm.window_funnel('70000 days', ts, event_id = 1003, event_id = 1009, event_id = 1007, event_id = 1010) AS level,
       crm.window_funnel('2 days', ts, event_id = 1003, event_id = 1009, event_id = 1007, event_id = 1010) AS level_2d,
       crm.window_funnel_times('2 days', ts, event_id = 1003, event_id = 1009, event_id = 1007, event_id = 1010) AS times_2d
  FROM trend GROUP BY user_id;
-- ClickHouse PR 6548: 0:1000, 10:1001, 11:1001, 20:1002 -> 3; strict_deduplication -> 2
SELECT crm.window_funnel('10000 seconds', ts, e = 1000, e = 1001, e = 1002) AS plain,
       crm.window_funnel('10000 seconds', 'strict_deduplication', ts, e = 1000, e = 1001, e = 1002) AS dedup
  FROM (VALUES (0, 1000), (10, 1001), (11, 1001), (20, 1002)) v(s, e), LATERAL (SELECT to_timestamp(s) AS ts) t;
-- ClickHouse issue 21835: equal timestamps.  uid 123: step 1 and step 2 both at 100 -> 2 (the lower step sorts
-- first), strict_increase -> 1.  uid 345: 1@200, 1@210, 2@230, 2@240, window 50 -> 2.  uid 234: only step 2 -> 0.
SELECT uid, crm.window_funnel('50 seconds', ts, e = 1, e = 2) AS plain,
       crm.window_funnel('50 seconds', 'strict_increase', ts, e = 1, e = 2) AS strict_increase
  FROM (VALUES (1, 100, 123), (1, 200, 345), (1, 210, 345), (2, 99, 123), (2, 250, 234), (2, 230, 345), (2, 240, 345), (2, 100, 123)) v(e, s, uid),
       LATERAL (SELECT to_timestamp(s) AS ts) t
 GROUP BY uid ORDER BY uid;
-- The definition beats ClickHouse's greedy scan: step-1 events at 0 and 1, a step-2 event at 1.
-- The chain 1@0 -> 2@1 is strictly increasing: 2 (ClickHouse overwrites the chain start with 1@1 and says 1).
SELECT crm.window_funnel('1 hour', 'strict_increase', ts, e = 1, e = 2) AS level,
       crm.window_funnel_times('1 hour', 'strict_increase', ts, e = 1, e = 2) AS times
  FROM (VALUES (0, 1), (1, 1), (1, 2)) v(s, e), LATERAL (SELECT to_timestamp(s) AS ts) t;
-- strict_once: one row that matches steps 1 and 2 fills only one of them
SELECT crm.window_funnel('1 hour', ts, true, true) AS plain,
       crm.window_funnel('1 hour', 'strict_once', ts, true, true) AS once,
       crm.window_funnel('1 hour', 'strict_once, strict_increase', ts, true, true) AS once_increase
  FROM (VALUES (timestamptz '2024-01-01 10:00')) v(ts);
-- two rows at the same time, each matching steps 1 and 2: strict_once 2, strict_increase 1
SELECT crm.window_funnel('1 hour', 'strict_once', ts, true, true) AS once,
       crm.window_funnel('1 hour', 'strict_increase', ts, true, true) AS increase
  FROM (VALUES (timestamptz '2024-01-01 10:00'), ('2024-01-01 10:00')) v(ts);
-- the window bound is inclusive: B exactly 1 hour after A counts, 1 microsecond later does not
SELECT crm.window_funnel('1 hour', ts, ev = 'A', ev = 'B') FILTER (WHERE k IN (1, 2)) AS at_bound,
       crm.window_funnel('1 hour', ts, ev = 'A', ev = 'B') FILTER (WHERE k IN (1, 3)) AS past_bound,
       crm.window_funnel('0 seconds', ts, ev = 'A', ev = 'B') FILTER (WHERE k IN (1, 4)) AS zero_window_same_time
  FROM (VALUES (1, timestamptz '2024-01-01 10:00', 'A'), (2, '2024-01-01 11:00', 'B'),
               (3, '2024-01-01 11:00:00.000001', 'B'), (4, '2024-01-01 10:00', 'B')) v(k, ts, ev);
-- the worked timeline of docs/funnel.md: a new step-1 event restarts the chain, window 24 hours
--   day 1 09:00 visit, 10:00 signup, day 2 12:00 visit, day 2 13:00 trial, day 3 08:00 trial, day 3 09:00 paid
-- chain visit@d1 09:00 -> signup@d1 10:00; trial@d2 13:00 is 28 h after it: too late.
-- The restart visit@d2 12:00 has no signup after it: the level stays 2.
SELECT crm.window_funnel('24 hours', ts, ev = 'visit', ev = 'signup', ev = 'trial', ev = 'paid') AS level,
       crm.window_funnel_times('24 hours', ts, ev = 'visit', ev = 'signup', ev = 'trial', ev = 'paid') AS times,
       crm.window_funnel('48 hours', ts, ev = 'visit', ev = 'signup', ev = 'trial', ev = 'paid') AS level_48h,
       crm.window_funnel_times('48 hours', ts, ev = 'visit', ev = 'signup', ev = 'trial', ev = 'paid') AS times_48h
  FROM (VALUES ('2024-01-01 09:00'::timestamptz, 'visit'), ('2024-01-01 10:00', 'signup'), ('2024-01-02 12:00', 'visit'),
               ('2024-01-02 13:00', 'trial'), ('2024-01-03 08:00', 'trial'), ('2024-01-03 09:00', 'paid')) v(ts, ev);
-- funnel_counts: levels 0, 1, 2, 2, 4, NULL over 4 steps -> {4, 3, 1, 1}
SELECT crm.funnel_counts(l, 4) FROM unnest(ARRAY[0, 1, 2, 2, 4, NULL]) l;
-- the two-level pattern: per entity, then per step
CREATE TABLE ev(entity int, ts timestamptz, stage text);
INSERT INTO ev VALUES (1, '2024-01-01', 'lead'), (1, '2024-01-02', 'deal'), (1, '2024-01-05', 'paid'),
                      (2, '2024-01-01', 'lead'), (2, '2024-01-03', 'deal'),
                      (3, '2024-01-01', 'lead'), (3, '2024-03-01', 'deal'),
                      (4, '2024-01-02', 'deal');
SELECT crm.funnel_counts(level, 3) AS entered
  FROM (SELECT entity, crm.window_funnel('30 days', ts, stage = 'lead', stage = 'deal', stage = 'paid') AS level
          FROM ev GROUP BY entity) per_entity;
-- out-of-order input: the same answer as sorted input
SELECT (SELECT crm.window_funnel_times('30 days', ts, stage = 'lead', stage = 'deal', stage = 'paid' ORDER BY ts DESC) FROM ev WHERE entity = 1) AS desc_input,
       (SELECT crm.window_funnel_times('30 days', ts, stage = 'lead', stage = 'deal', stage = 'paid' ORDER BY ts) FROM ev WHERE entity = 1) AS asc_input;
-- two steps per entity: 1 reaches deal, 2 too, 3's deal is 60 days late, 4 has no lead
SELECT e.entity, crm.window_funnel('30 days', e.ts, e.stage = 'lead', e.stage = 'deal')
  FROM ev e GROUP BY e.entity ORDER BY e.entity;
-- the state's text form: times in microseconds since 2000-01-01 UTC, step masks
SELECT 'steps=2;mode=4;window=60000000;events=3;0:1,1000000:1,1000000:2'::crm.window_funnel_state;
SELECT 'steps=3;hist=1,2,3,4'::crm.funnel_counts_state;
-- errors (SQLSTATEs are checked in test/funnel.sql)
SELECT crm.window_funnel('1 day', 'strict_ordr', now(), true);
SELECT crm.window_funnel('-1 day', now(), true);
SELECT crm.window_funnel('1 day', 'allow_reentry', now(), true);
SELECT 'steps=2;mode=0;window=5;events=2;1:1'::crm.window_funnel_state;
DROP TABLE trend, ev;
DROP FUNCTION seq_events(text);
