-- crm_analytics 0.1.0 -> 0.2.0
--
-- 0.2.0 changes:
--   * crm.version() reports 0.2.0;
--   * crm.clv_simulate bounds its work (C only, no catalog change): customers
--     at most 100,000,000 (22023) and at most 100,000 purchases per simulated
--     customer (54000), found by the fuzz test;
--   * crm.retention(boolean, ...): fixed-arity overloads with 1 to 12
--     conditions and a by-value state type crm.retention_fixed_state (a call
--     with the conditions written out resolves to them; the VARIADIC contract
--     aggregate is unchanged);
--   * crm.cohort_activity: compact in-place state (C; 0.1.0 states are still
--     read) and SSPACE 160 instead of 512 (CREATE OR REPLACE AGGREGATE keeps
--     the aggregate's identity and whatever depends on it);
--   * the release procedure (docs/releasing.md) and the upgrade test
--     (test/upgrade.sh: catalog of an upgraded install = a fresh install; the
--     pgTAP suite passes on the upgraded install).
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.2.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.2.0'::text $$;

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

-- crm.cohort_activity: the state is now about 160 bytes per entity
CREATE OR REPLACE AGGREGATE crm.cohort_activity(ts timestamptz, amount numeric, period text) (
    SFUNC = crm.cohort_activity_transfn,
    STYPE = crm.cohort_activity_state,
    COMBINEFUNC = crm.cohort_activity_combinefn,
    SSPACE = 160,
    PARALLEL = SAFE
);
