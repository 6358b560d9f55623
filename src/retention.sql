-- retention.sql: retention and cohorts (docs/retention.md); engine in src/retention_agg.c and src/cohort_*.c.
--
--   crm.retention(VARIADIC boolean[]) -> int[]            contract aggregate (ClickHouse retention)
--   crm.retention(boolean, ...) -> int[]                  the same, 1 to 12 conditions, by-value state
--   crm.cohort_activity(ts, amount, period)               per-entity aggregate -> crm.cohort_activity_state
--   crm.cohort_activity_periods(state)                    the periods inside a state
--   crm.cohort_retention(events_sql, period, periods)     cohort x period_no report (heat map, LTV curve)
--   crm.retention_metrics(events_sql, period)             churn, retention (E-N)/S, repeat rate, AOV per period
--
-- C support functions reference nothing by name, so they need no search_path;
-- the report functions run the caller's inner query and must not pin it.

-- ---------------------------------------------------------------------------
-- crm.retention
-- ---------------------------------------------------------------------------
CREATE TYPE crm.retention_state;

CREATE FUNCTION crm.retention_state_in(cstring) RETURNS crm.retention_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_state_in';
COMMENT ON FUNCTION crm.retention_state_in(cstring) IS
'Input function of crm.retention_state: one character per condition, 1 = held on some row, e.g. ''101''.';

CREATE FUNCTION crm.retention_state_out(crm.retention_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_state_out';
COMMENT ON FUNCTION crm.retention_state_out(crm.retention_state) IS
'Output function of crm.retention_state: one character per condition, 1 = held on some row.';

CREATE TYPE crm.retention_state (
    INPUT = crm.retention_state_in,
    OUTPUT = crm.retention_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.retention_state IS
'Partial state of crm.retention: the number of conditions and which of them held on some row.';

CREATE FUNCTION crm.retention_transfn(crm.retention_state, boolean[]) RETURNS crm.retention_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_transfn';
COMMENT ON FUNCTION crm.retention_transfn(crm.retention_state, boolean[]) IS
'Transition function of crm.retention: ORs the conditions that hold on this row into the state (in place).';

CREATE FUNCTION crm.retention_combinefn(crm.retention_state, crm.retention_state) RETURNS crm.retention_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_combinefn';
COMMENT ON FUNCTION crm.retention_combinefn(crm.retention_state, crm.retention_state) IS
'Combine function of crm.retention: ORs two partial states.';

CREATE FUNCTION crm.retention_finalfn(crm.retention_state) RETURNS int[]
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_finalfn';
COMMENT ON FUNCTION crm.retention_finalfn(crm.retention_state) IS
'Final function of crm.retention: r[1] = cond1 held, r[k] = cond1 and condk held (1/0).';

CREATE AGGREGATE crm.retention(VARIADIC conds boolean[]) (
    SFUNC = crm.retention_transfn,
    STYPE = crm.retention_state,
    FINALFUNC = crm.retention_finalfn,
    FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = crm.retention_combinefn,
    SSPACE = 64,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean[]) IS
'ClickHouse retention: int[] where r[1] = 1 if cond1 held on any row of the group and r[k] = 1 if cond1 and condk each held on some row, else 0. 1 to 64 conditions; a NULL condition is false; NULL when the group has no rows.';

-- ---------------------------------------------------------------------------
-- crm.retention(boolean, ...): 1 to 12 conditions as arguments
-- ---------------------------------------------------------------------------
-- Same result as crm.retention(VARIADIC boolean[]).  A call with the
-- conditions written out resolves to these overloads (PostgreSQL prefers a
-- non-variadic function to a variadic one with the same effective argument
-- types), which pass the conditions without building an array per row and
-- keep a 4-byte by-value state.  More conditions, or an explicit VARIADIC
-- array, use the VARIADIC aggregate.
CREATE TYPE crm.retention_fixed_state;

CREATE FUNCTION crm.retention_fixed_state_in(cstring) RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_state_in';
COMMENT ON FUNCTION crm.retention_fixed_state_in(cstring) IS
'Input function of crm.retention_fixed_state: one character per condition (1 to 12), 1 = held on some row, e.g. ''101''.';

CREATE FUNCTION crm.retention_fixed_state_out(crm.retention_fixed_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_state_out';
COMMENT ON FUNCTION crm.retention_fixed_state_out(crm.retention_fixed_state) IS
'Output function of crm.retention_fixed_state: one character per condition, 1 = held on some row.';

CREATE TYPE crm.retention_fixed_state (
    INPUT = crm.retention_fixed_state_in,
    OUTPUT = crm.retention_fixed_state_out,
    INTERNALLENGTH = 4,
    PASSEDBYVALUE,
    ALIGNMENT = int4,
    STORAGE = plain
);
COMMENT ON TYPE crm.retention_fixed_state IS
'Partial state of crm.retention with 1 to 12 conditions as arguments: the number of conditions and which of them held on some row, 4 bytes passed by value.';

CREATE FUNCTION crm.retention_fixed_combinefn(crm.retention_fixed_state, crm.retention_fixed_state)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_combinefn';
COMMENT ON FUNCTION crm.retention_fixed_combinefn(crm.retention_fixed_state, crm.retention_fixed_state) IS
'Combine function of crm.retention(boolean, ...): ORs two partial states.';

CREATE FUNCTION crm.retention_fixed_finalfn(crm.retention_fixed_state) RETURNS int[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_finalfn';
COMMENT ON FUNCTION crm.retention_fixed_finalfn(crm.retention_fixed_state) IS
'Final function of crm.retention(boolean, ...): r[1] = cond1 held, r[k] = cond1 and condk held (1/0).';


CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean) IS
'Transition function of crm.retention with 1 condition: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean) IS
'crm.retention with 1 condition as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean) IS
'Transition function of crm.retention with 2 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean) IS
'crm.retention with 2 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean) IS
'Transition function of crm.retention with 3 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean) IS
'crm.retention with 3 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 4 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean) IS
'crm.retention with 4 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 5 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 5 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 6 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 6 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 7 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 7 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 8 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 8 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 9 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 9 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 10 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 10 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 11 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean, cond11 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 11 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

CREATE FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean)
RETURNS crm.retention_fixed_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_retention_fixed_transfn';
COMMENT ON FUNCTION crm.retention_fixed_transfn(crm.retention_fixed_state, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'Transition function of crm.retention with 12 conditions: ORs the conditions that hold on this row into the state.';
CREATE AGGREGATE crm.retention(cond1 boolean, cond2 boolean, cond3 boolean, cond4 boolean, cond5 boolean, cond6 boolean, cond7 boolean, cond8 boolean, cond9 boolean, cond10 boolean, cond11 boolean, cond12 boolean) (
    SFUNC = crm.retention_fixed_transfn,
    STYPE = crm.retention_fixed_state,
    FINALFUNC = crm.retention_fixed_finalfn,
    COMBINEFUNC = crm.retention_fixed_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.retention(boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean, boolean) IS
'crm.retention with 12 conditions as arguments: the same result as crm.retention(VARIADIC boolean[]), without an array per row.';

-- ---------------------------------------------------------------------------
-- crm.cohort_activity: the per-entity step of the cohort reports
-- ---------------------------------------------------------------------------
CREATE TYPE crm.cohort_activity_state;

CREATE FUNCTION crm.cohort_activity_state_in(cstring) RETURNS crm.cohort_activity_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_state_in';
COMMENT ON FUNCTION crm.cohort_activity_state_in(cstring) IS
'Input function of crm.cohort_activity_state: period;start,orders,revenue;... (canonical form only).';

CREATE FUNCTION crm.cohort_activity_state_out(crm.cohort_activity_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_state_out';
COMMENT ON FUNCTION crm.cohort_activity_state_out(crm.cohort_activity_state) IS
'Output function of crm.cohort_activity_state, e.g. month;2025-01-01,3,150.50;2025-03-01,1,20.00.';

CREATE TYPE crm.cohort_activity_state (
    INPUT = crm.cohort_activity_state_in,
    OUTPUT = crm.cohort_activity_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.cohort_activity_state IS
'One entity''s activity: the period kind and, per active period (increasing), the number of events and their exact revenue.';

CREATE FUNCTION crm.cohort_activity_transfn(crm.cohort_activity_state, timestamptz, numeric, text)
RETURNS crm.cohort_activity_state
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_transfn';
COMMENT ON FUNCTION crm.cohort_activity_transfn(crm.cohort_activity_state, timestamptz, numeric, text) IS
'Transition function of crm.cohort_activity: adds one event to its period (session time zone), in place.';

CREATE FUNCTION crm.cohort_activity_combinefn(crm.cohort_activity_state, crm.cohort_activity_state)
RETURNS crm.cohort_activity_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_cohort_activity_combinefn';
COMMENT ON FUNCTION crm.cohort_activity_combinefn(crm.cohort_activity_state, crm.cohort_activity_state) IS
'Combine function of crm.cohort_activity: merges the period lists of two partial states.';

-- SSPACE: a state is one 128-byte chunk up to 9 active periods, 256 bytes up
-- to 19; the planner sizes hash aggregation by it (too high and a GROUP BY
-- over a million customers spills to disk for nothing).
CREATE AGGREGATE crm.cohort_activity(ts timestamptz, amount numeric, period text) (
    SFUNC = crm.cohort_activity_transfn,
    STYPE = crm.cohort_activity_state,
    COMBINEFUNC = crm.cohort_activity_combinefn,
    SSPACE = 160,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.cohort_activity(timestamptz, numeric, text) IS
'Per-entity activity for cohort analysis: the periods (day, week, month, quarter, year in the session time zone) with events, their event count and exact sum of amount. NULL ts rows are ignored; NULL amounts add no revenue; negative amounts (refunds) are summed as they are.';

CREATE FUNCTION crm.cohort_activity_periods(state crm.cohort_activity_state)
RETURNS TABLE(period_start date, orders bigint, revenue numeric)
LANGUAGE c IMMUTABLE PARALLEL SAFE ROWS 12
AS 'MODULE_PATHNAME', 'crm_cohort_activity_periods';
COMMENT ON FUNCTION crm.cohort_activity_periods(crm.cohort_activity_state) IS
'The periods of a crm.cohort_activity state: start date, events and revenue of each active period, in order.';

-- ---------------------------------------------------------------------------
-- report functions
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.cohort_retention(events_sql text, period text DEFAULT 'month', periods int DEFAULT 12)
RETURNS TABLE(cohort date, period_no int, cohort_size bigint, active bigint,
              retention_rate numeric, revenue numeric, cumulative_ltv numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_cohort_retention';
COMMENT ON FUNCTION crm.cohort_retention(text, text, int) IS
'Cohort retention in long format. Inner query: (entity, ts timestamptz [, amount numeric]). cohort = start of the period of the entity''s first event; one row per cohort and period_no 0..periods-1 up to the last period present in the data; active = cohort members with an event in that period, retention_rate = active / cohort_size (4 places), revenue = their amounts, cumulative_ltv = revenue of periods 0..period_no / cohort_size.';

CREATE FUNCTION crm.retention_metrics(events_sql text, period text DEFAULT 'month')
RETURNS TABLE(period_start date, customers_start bigint, new_customers bigint, active_customers bigint,
              retained bigint, churned bigint, churn_rate numeric, retention_rate numeric,
              orders bigint, revenue numeric, repeat_customers bigint, repeat_purchase_rate numeric,
              aov numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_retention_metrics';
COMMENT ON FUNCTION crm.retention_metrics(text, text) IS
'Retention figures per calendar period. Inner query: (entity, ts timestamptz [, amount numeric]). S = customers_start (active in the previous period), N = new_customers, E = active_customers; churn_rate = (S - retained) / S, retention_rate = (E - N) / S, repeat_purchase_rate = repeat_customers / E (active with 2+ events to date), aov = revenue / orders.';

CREATE FUNCTION crm.cohort_retention(events_sql text, period text, periods int, as_of timestamptz)
RETURNS TABLE(cohort date, period_no int, cohort_size bigint, active bigint,
              retention_rate numeric, revenue numeric, cumulative_ltv numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_cohort_retention';
COMMENT ON FUNCTION crm.cohort_retention(text, text, int, timestamptz) IS
'crm.cohort_retention as of a moment: the last period reported is the one containing as_of (periods up to it are reported even without events; events of later periods are ignored). NULL as_of: the last period with an event.';

CREATE FUNCTION crm.retention_metrics(events_sql text, period text, as_of timestamptz)
RETURNS TABLE(period_start date, customers_start bigint, new_customers bigint, active_customers bigint,
              retained bigint, churned bigint, churn_rate numeric, retention_rate numeric,
              orders bigint, revenue numeric, repeat_customers bigint, repeat_purchase_rate numeric,
              aov numeric)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100
AS 'MODULE_PATHNAME', 'crm_retention_metrics';
COMMENT ON FUNCTION crm.retention_metrics(text, text, timestamptz) IS
'crm.retention_metrics as of a moment: periods up to the one containing as_of (events of later periods are ignored). NULL as_of: up to the last period with an event.';
