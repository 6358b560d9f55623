-- test/data/todo_diff.sql: the comparisons of the to-do list's tests (\ir from test/rollups_fast_todo.sql
-- and test/rollups_fast_todokeep.sql), inside their transaction.

-- rows (with their position) in which fn(m), the list from the rollups (crm.todo with the gate as
-- set, or crm._fast_todo itself), differs from crm.todo(m) with the gate off: 0 = same rows, same order
CREATE FUNCTION pg_temp.todo_diff(m timestamptz, fn text DEFAULT 'crm.todo') RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('CREATE TEMP TABLE td_fast AS SELECT row_number() OVER () AS rn, t.* FROM %s($1) t', fn::regproc) USING m;
    PERFORM set_config('crm_analytics.rollups', 'off', true);
    CREATE TEMP TABLE td_full AS SELECT row_number() OVER () AS rn, t.* FROM crm.todo(m) t;
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    SELECT count(*) INTO n FROM ((TABLE td_fast EXCEPT ALL TABLE td_full) UNION ALL (TABLE td_full EXCEPT ALL TABLE td_fast)) d;
    DROP TABLE td_fast;
    DROP TABLE td_full;
    RETURN n;
END
$f$;

-- rows in which crm.v_todo differs from itself with the gate off
CREATE FUNCTION pg_temp.view_diff() RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
    n bigint;
BEGIN
    CREATE TEMP TABLE vd_fast AS SELECT * FROM crm.v_todo;
    PERFORM set_config('crm_analytics.rollups', 'off', true);
    CREATE TEMP TABLE vd_full AS SELECT * FROM crm.v_todo;
    PERFORM set_config('crm_analytics.rollups', 'fresh', true);
    SELECT count(*) INTO n FROM ((TABLE vd_fast EXCEPT ALL TABLE vd_full) UNION ALL (TABLE vd_full EXCEPT ALL TABLE vd_fast)) d;
    DROP TABLE vd_fast;
    DROP TABLE vd_full;
    RETURN n;
END
$f$;
