-- state_compat_coverage: crm.median_interval_state texts as released versions wrote them are
-- still read, written back identically and give the same medians.
--
-- The text form "count:v1,v2,..." (microseconds since 2000-01-01 UTC, in the order the
-- aggregate saw them) is the same in 0.1.0 and 0.2.0: the output and transition functions of
-- those releases are byte-identical, so one literal per row set stands for both versions.
-- Expectations are plain SQL over the same rows (distinct timestamps, lag() gaps,
-- percentile_cont(0.5)) or worked by hand.
BEGIN;
SELECT plan(13);
SET LOCAL TimeZone = 'UTC';

-- the rows the saved states were made from, in the order the aggregate saw them
CREATE TEMP TABLE t_rows (customer int, ord int, ts timestamptz);
INSERT INTO t_rows VALUES
  (1, 1, '2025-01-01 09:00+00'), (1, 2, '2025-01-11 09:00+00'), (1, 3, '2025-01-11 09:00+00'),
  (1, 4, '2025-02-10 09:00+00'), (1, 5, '2025-03-02 21:00+00'),
  (2, 1, '2024-06-01 00:00+00'), (2, 2, '2024-05-01 00:00+00'), (2, 3, '2024-06-21 00:00+00'),
  (2, 4, '2024-07-12 00:00+00'), (2, 5, '2024-07-22 00:00+00');

-- saved texts (as 0.1.0 and 0.2.0 wrote them: SELECT st::text of the state aggregated in this order)
CREATE TEMP TABLE t_saved (customer int, st text);
INSERT INTO t_saved VALUES
  (1, '5:789037200000000,789901200000000,789901200000000,792493200000000,794264400000000'),
  (2, '5:770515200000000,767836800000000,772243200000000,774057600000000,774921600000000');

-- independent median of the gaps between distinct timestamps
CREATE TEMP TABLE t_expect AS
WITH d AS (SELECT DISTINCT customer, ts FROM t_rows),
     g AS (SELECT customer, ts - lag(ts) OVER (PARTITION BY customer ORDER BY ts) AS gap FROM d)
SELECT customer, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS med FROM g WHERE gap IS NOT NULL GROUP BY customer;

CREATE AGGREGATE pg_temp.mi_state(timestamptz) (SFUNC = crm.median_interval_transfn, STYPE = crm.median_interval_state);
CREATE AGGREGATE pg_temp.mi_merge(crm.median_interval_state) (SFUNC = crm.median_interval_combinefn,
    STYPE = crm.median_interval_state, FINALFUNC = crm.median_interval_finalfn);

-- the saved literals are what the rows give (the microseconds are those timestamps)
SELECT is((SELECT count(*) FROM t_saved s
            WHERE s.st <> (SELECT count(*) || ':' || string_agg(((extract(epoch FROM r.ts) - 946684800) * 1000000)::bigint::text, ',' ORDER BY r.ord)
                             FROM t_rows r WHERE r.customer = s.customer)),
          0::bigint, 'saved texts hold the rows'' timestamps in microseconds since 2000-01-01, in order');
-- read with the new input function and written back unchanged
SELECT is((SELECT count(*) FROM t_saved WHERE st::crm.median_interval_state::text <> st), 0::bigint,
          'saved 0.1.0/0.2.0 texts read back and are written identically');
-- the current aggregate still writes the released format
SELECT is((SELECT count(*) FROM t_saved s
            WHERE (SELECT pg_temp.mi_state(r.ts ORDER BY r.ord)::text FROM t_rows r WHERE r.customer = s.customer) <> s.st),
          0::bigint, 'the aggregate writes the same text for the same rows');
-- the saved states give the plain-SQL medians
SELECT is((SELECT pg_temp.mi_merge(st::crm.median_interval_state) FROM t_saved WHERE customer = 1),
          (SELECT med FROM t_expect WHERE customer = 1), 'customer 1 (odd number of gaps): saved state median = plain SQL');
SELECT is((SELECT pg_temp.mi_merge(st::crm.median_interval_state) FROM t_saved WHERE customer = 1),
          interval '20 days 12:00', 'customer 1: gaps 10 d, 30 d, 20 d 12 h, median 20 d 12 h (by hand)');
SELECT is((SELECT pg_temp.mi_merge(st::crm.median_interval_state) FROM t_saved WHERE customer = 2),
          (SELECT med FROM t_expect WHERE customer = 2), 'customer 2 (even number of gaps): saved state median = plain SQL');
SELECT is((SELECT pg_temp.mi_merge(st::crm.median_interval_state) FROM t_saved WHERE customer = 2),
          interval '20 days 12:00', 'customer 2: gaps 31, 20, 21, 10 days, median (20 + 21) / 2 days (by hand)');
-- merged with a state of the current version: the same as all rows at once
SELECT is((SELECT pg_temp.mi_merge(s) FROM (VALUES ('2:789037200000000,789901200000000'::crm.median_interval_state),
                                                   ((SELECT pg_temp.mi_state(ts ORDER BY ord) FROM t_rows WHERE customer = 1 AND ord > 2))) v(s)),
          (SELECT med FROM t_expect WHERE customer = 1), 'a saved partial state combines with a new one');
-- small saved states
SELECT is((SELECT pg_temp.mi_merge(s) FROM (VALUES ('0:'::crm.median_interval_state)) v(s)), NULL::interval,
          'saved empty state: NULL');
SELECT is((SELECT pg_temp.mi_merge(s) FROM (VALUES ('2:0,0'::crm.median_interval_state)) v(s)), NULL::interval,
          'saved state of one distinct purchase: NULL');
SELECT is((SELECT pg_temp.mi_merge(s) FROM (VALUES ('4:-5,-4,-3,-1'::crm.median_interval_state)) v(s)), interval '00:00:00.000001',
          'negative timestamps (before 2000): gaps 1, 1, 2 microseconds, median 1 (by hand)');
-- malformed texts: the reader's uniform error
SELECT throws_ok($$SELECT '2:1;2'::crm.median_interval_state$$, '22P02',
                 'invalid input syntax for type crm.median_interval_state: "2:1;2"', 'malformed text: 22P02 naming the type');
SELECT throws_ok($$SELECT '2:-9223372036854775807,9223372036854775806'::crm.median_interval_state$$, '22P02', NULL,
                 'values outside the timestamp range are refused (their gap would overflow)');

SELECT * FROM finish();
ROLLBACK;
