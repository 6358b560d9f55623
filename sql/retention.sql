-- retention: exact outputs of hand-worked cases and the error messages
SET datestyle = 'ISO, YMD';
-- crm.retention: the ClickHouse documentation example, worked by hand:
--   uid 0 visits on 01, 02, 03 -> {1,1,1}; uid 1 on 01, 03 -> {1,0,1};
--   uid 2 on 02, 03 (never on 01) -> {0,0,0}; uid 3 on 01 -> {1,0,0}
CREATE TABLE ret_visits(uid int, d date);
INSERT INTO ret_visits VALUES (0, '2020-01-01'), (0, '2020-01-02'), (0, '2020-01-03'),
    (1, '2020-01-01'), (1, '2020-01-03'), (2, '2020-01-02'), (2, '2020-01-03'), (3, '2020-01-01');
SELECT uid, crm.retention(d = '2020-01-01', d = '2020-01-02', d = '2020-01-03') AS r
  FROM ret_visits GROUP BY uid ORDER BY uid;
-- column sums: how many users came back on day k after day 1 (3 users on day 1, 1 back on 02, 2 on 03)
SELECT sum(r[1]) AS d1, sum(r[2]) AS d2, sum(r[3]) AS d3
  FROM (SELECT crm.retention(d = '2020-01-01', d = '2020-01-02', d = '2020-01-03') AS r
          FROM ret_visits GROUP BY uid) s;
-- the state type's text form: one character per condition
SELECT '0110'::crm.retention_state, crm.retention_finalfn('1101'::crm.retention_state);
SELECT crm.retention(VARIADIC '{}'::boolean[]);
SELECT crm.retention(VARIADIC array_fill(true, ARRAY[65]));
SELECT crm.retention(VARIADIC CASE WHEN x = 1 THEN ARRAY[true] ELSE ARRAY[true, false] END) FROM generate_series(1, 2) x;
SELECT '10x'::crm.retention_state;

-- cohorts, worked by hand (month): customer 1 buys in Jan (10.50 + 5), refunds 2.25 in March;
-- customer 2 buys 100 in Feb; customer 3 buys 1 on Feb 27 and again on Mar 1 (amount unknown);
-- a row without entity and a row without ts are skipped.
-- Jan cohort {1}: Jan 1 active 15.50; Feb 0; Mar 1 active -2.25 -> LTV 15.50, 15.50, 13.25
-- Feb cohort {2,3}: Feb 2 active 101.00 -> LTV 50.50; Mar 1 active (3) 0.00 -> 50.50; no April row
CREATE TABLE ret_events(e int, ts timestamptz, amount numeric);
INSERT INTO ret_events VALUES (1, '2025-01-05', 10.5), (1, '2025-01-20', 5), (1, '2025-03-02', -2.25),
    (2, '2025-02-01', 100), (3, '2025-02-27', 1), (3, '2025-03-01', NULL), (NULL, '2025-01-01', 7), (4, NULL, 3);
SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM ret_events', 'month', 4);
-- weeks start on Monday: Sun 2025-01-05 is in the week of Mon 2024-12-30
SELECT cohort, period_no, cohort_size, active, retention_rate
  FROM crm.cohort_retention('SELECT e, ts FROM ret_events', 'week', 3);
SELECT * FROM crm.retention_metrics('SELECT e, ts, amount FROM ret_events', 'month');
-- the per-entity aggregate and its state
SELECT e, crm.cohort_activity(ts, amount, 'month') FROM ret_events GROUP BY e ORDER BY e;
SELECT p.* FROM (SELECT crm.cohort_activity(ts, amount, 'quarter') AS s FROM ret_events) q,
               crm.cohort_activity_periods(q.s) p;

-- bad input
SELECT * FROM crm.cohort_retention('SELECT e, ts FROM ret_events', 'fortnight');
SELECT * FROM crm.cohort_retention('SELECT e, ts FROM ret_events', 'month', 0);
SELECT * FROM crm.cohort_retention('SELECT e, ts FROM ret_events', 'month', 1001);
SELECT * FROM crm.cohort_retention('SELECT e, ts FROM ret_events', NULL);
SELECT * FROM crm.cohort_retention(NULL);
SELECT * FROM crm.cohort_retention('SELECT e, amount FROM ret_events');
SELECT * FROM crm.cohort_retention('SELECT e FROM ret_events');
SELECT * FROM crm.cohort_retention('SELECT 1, ''infinity''::timestamptz');
SELECT * FROM crm.cohort_retention('SELECT 1, now(), ''NaN''::numeric');
SELECT * FROM crm.cohort_retention('SELECT 1, now(), 1e40');
SELECT 'month;2025-01-02,1,1'::crm.cohort_activity_state;
SELECT 'month;2025-01-01,1,+1'::crm.cohort_activity_state;
DROP TABLE ret_visits, ret_events;
