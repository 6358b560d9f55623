-- pgTAP: state texts of the retention state types as released versions wrote them,
-- read back by today's input functions and finalized, against plain SQL over the
-- rows the states were made from.
--
-- The text forms did not change between 0.1.0, 0.2.0 and 0.3.0 (the output
-- functions are the same code in the three releases): crm.retention_state and
-- crm.cohort_activity_state exist since 0.1.0, crm.retention_fixed_state since
-- 0.2.0.  The literals below are those outputs for the rows of the tables below.
-- 0.1.0's binary cohort states ("CHA1") are covered in test/retention_cohort.sql.
BEGIN;
SELECT plan(24);
SET LOCAL timezone = 'UTC';

CREATE TEMP TABLE v(uid int, d date);
INSERT INTO v VALUES (1, '2020-01-01'), (1, '2020-01-02'), (1, '2020-01-03'),
                     (2, '2020-01-01'), (2, '2020-01-03'), (2, '2020-01-03'),
                     (3, '2020-01-02'), (3, '2020-01-04');
-- crm.retention(d = '2020-01-01', d = '2020-01-02', d = '2020-01-03') per uid, in plain SQL
CREATE TEMP VIEW v_expected AS
SELECT uid, ARRAY[bool_or(d = '2020-01-01')::int,
                  (bool_or(d = '2020-01-01') AND bool_or(d = '2020-01-02'))::int,
                  (bool_or(d = '2020-01-01') AND bool_or(d = '2020-01-03'))::int] AS r
  FROM v GROUP BY uid;
-- the texts 0.1.0 and 0.2.0 wrote for those groups
CREATE TEMP TABLE saved_retention(uid int, txt text);
INSERT INTO saved_retention VALUES (1, '111'), (2, '101'), (3, '010');

CREATE AGGREGATE pg_temp.retention_state_of(VARIADIC boolean[]) (
    SFUNC = crm.retention_transfn, STYPE = crm.retention_state);

-- crm.retention_state (0.1.0, 0.2.0)
SELECT set_eq($$SELECT uid, crm.retention_finalfn(txt::crm.retention_state) FROM saved_retention$$,
              $$SELECT uid, r FROM v_expected$$, 'retention_state: saved texts finalize to the plain SQL result');
SELECT set_eq($$SELECT uid, txt::crm.retention_state::text FROM saved_retention$$,
              $$SELECT uid, txt FROM saved_retention$$, 'retention_state: saved texts round-trip');
SELECT set_eq($$SELECT uid, pg_temp.retention_state_of(d = '2020-01-01', d = '2020-01-02', d = '2020-01-03')::text FROM v GROUP BY uid$$,
              $$SELECT uid, txt FROM saved_retention$$, 'retention_state: today''s states print as the saved texts');
SELECT is(crm.retention_finalfn(''::crm.retention_state), NULL::int[], 'retention_state: the saved empty state (no condition array) finalizes to NULL');
SELECT is(crm.retention_finalfn(('1' || repeat('0', 62) || '1')::crm.retention_state),
          (SELECT array_agg(CASE WHEN k IN (1, 64) THEN 1 ELSE 0 END ORDER BY k) FROM generate_series(1, 64) k),
          'retention_state: a saved 64-condition text finalizes as worked by hand');
CREATE AGGREGATE pg_temp.retention_merge(crm.retention_state) (
    SFUNC = crm.retention_combinefn, STYPE = crm.retention_state, FINALFUNC = crm.retention_finalfn);
SELECT is((SELECT pg_temp.retention_merge(s::crm.retention_state) FROM (VALUES ('100'), ('011')) x(s)), '{1,1,1}'::int[],
          'retention_state: two saved halves combine');
SELECT throws_ok($$SELECT '10x'::crm.retention_state$$, '22P02',
                 'invalid input syntax for type crm.retention_state: "10x"', 'retention_state: a bad character: the reader''s 22P02');

-- crm.retention_fixed_state (0.2.0)
SELECT set_eq($$SELECT uid, crm.retention_fixed_finalfn(txt::crm.retention_fixed_state) FROM saved_retention$$,
              $$SELECT uid, r FROM v_expected$$, 'retention_fixed_state: saved texts finalize to the plain SQL result');
SELECT set_eq($$SELECT uid, txt::crm.retention_fixed_state::text FROM saved_retention$$,
              $$SELECT uid, txt FROM saved_retention$$, 'retention_fixed_state: saved texts round-trip');
SELECT is(crm.retention_fixed_finalfn('101101101101'::crm.retention_fixed_state), '{1,0,1,1,0,1,1,0,1,1,0,1}'::int[],
          'retention_fixed_state: a saved 12-condition text finalizes as worked by hand');
SELECT throws_ok($$SELECT ''::crm.retention_fixed_state$$, '22P02',
                 'invalid input syntax for type crm.retention_fixed_state: ""', 'retention_fixed_state: no condition: the reader''s 22P02');

-- crm.cohort_activity_state (0.1.0, 0.2.0): orders of three entities
CREATE TEMP TABLE o(e int, ts timestamptz, amount numeric);
INSERT INTO o VALUES
    (1, '2025-01-05 10:00', 10.50), (1, '2025-01-20 23:59', 5.00), (1, '2025-03-02 08:00', -2.25),
    (2, '2025-02-10 12:00', 100), (2, '2025-02-11 12:00', NULL),
    (3, '2025-01-01 00:00', 12345678901234567890.5), (3, '2030-06-01 00:00', 1.0);
CREATE TEMP TABLE saved_cohort(e int, period text, txt text);
INSERT INTO saved_cohort VALUES
    (1, 'month', 'month;2025-01-01,2,15.50;2025-03-01,1,-2.25'),
    (1, 'week', 'week;2024-12-30,1,10.50;2025-01-20,1,5.00;2025-02-24,1,-2.25'),
    (1, 'quarter', 'quarter;2025-01-01,3,13.25'),
    (2, 'month', 'month;2025-02-01,2,100'),
    (2, 'day', 'day;2025-02-10,1,100;2025-02-11,1,0'),
    (3, 'month', 'month;2025-01-01,1,12345678901234567890.5;2030-06-01,1,1.0'),
    (3, 'year', 'year;2025-01-01,1,12345678901234567890.5;2030-01-01,1,1.0');

CREATE FUNCTION pg_temp.expected_periods(ent int, per text) RETURNS TABLE(period_start date, orders bigint, revenue numeric)
LANGUAGE sql AS $f$
    SELECT date_trunc(per, ts)::date, count(*), coalesce(sum(amount), 0) FROM o WHERE e = ent GROUP BY 1
$f$;
CREATE FUNCTION pg_temp.saved_periods(ent int, per text) RETURNS TABLE(period_start date, orders bigint, revenue numeric)
LANGUAGE sql AS $f$
    SELECT p.* FROM saved_cohort s, crm.cohort_activity_periods(s.txt::crm.cohort_activity_state) p WHERE s.e = ent AND s.period = per
$f$;
SELECT set_eq(pg_catalog.format('SELECT * FROM pg_temp.saved_periods(%s, %L)', e, period),
              pg_catalog.format('SELECT * FROM pg_temp.expected_periods(%s, %L)', e, period),
              pg_catalog.format('cohort_activity_state: saved %s state of entity %s gives the plain SQL periods', period, e))
  FROM saved_cohort ORDER BY e, period;
SELECT set_eq($$SELECT e, period, txt::crm.cohort_activity_state::text FROM saved_cohort$$,
              $$SELECT e, period, txt FROM saved_cohort$$, 'cohort_activity_state: saved texts round-trip');
SELECT set_eq($$SELECT s.e, s.period, (SELECT crm.cohort_activity(o.ts, o.amount, s.period)::text FROM o WHERE o.e = s.e) FROM saved_cohort s$$,
              $$SELECT e, period, txt FROM saved_cohort$$, 'cohort_activity_state: today''s states print as the saved texts');
-- saved states of two entities combined (as two halves of one group would be) = plain SQL over both
CREATE AGGREGATE pg_temp.cohort_merge(crm.cohort_activity_state) (
    SFUNC = crm.cohort_activity_combinefn, STYPE = crm.cohort_activity_state);
SELECT set_eq($$SELECT p.* FROM (SELECT pg_temp.cohort_merge(txt::crm.cohort_activity_state) s FROM saved_cohort WHERE period = 'month') m,
                                crm.cohort_activity_periods(m.s) p$$,
              $$SELECT date_trunc('month', ts)::date, count(*), coalesce(sum(amount), 0) FROM o GROUP BY 1$$,
              'cohort_activity_state: saved month states of three entities combined give the plain SQL periods');
-- and the report over the same rows reads like the states
SELECT is((SELECT sum(revenue) FROM crm.cohort_retention('SELECT e, ts, amount FROM o', 'month', 100)),
          (SELECT sum(amount) FROM o), 'cohort_retention over the rows: the revenue of the saved states');
SELECT throws_ok($$SELECT 'month;2025-01-01,1,1.5;2025-02-01,1,2'::crm.cohort_activity_state$$, '22P02',
                 'invalid input syntax for type crm.cohort_activity_state: "month;2025-01-01,1,1.5;2025-02-01,1,2"',
                 'cohort_activity_state: mixed scales: the reader''s 22P02');
SELECT throws_ok($$SELECT 'month;2025-01-01,1,01'::crm.cohort_activity_state$$, '22P02', NULL,
                 'cohort_activity_state: a non-canonical text: 22P02');

SELECT * FROM finish();
ROLLBACK;
