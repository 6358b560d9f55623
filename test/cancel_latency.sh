#!/usr/bin/env bash
# cancel_latency.sh (hardening, issue 16 item 7): a statement_timeout stops
# every C aggregate and window function of crm_analytics within about a
# second, even inside the loops that run over ONE group's rows, patterns or
# periods after the rows were read (final functions, fits, sorts, merges).
#
# One group of 1,000,000 events is generated once (unlogged table ev).  For
# each family the timed statement runs with statement_timeout = 300ms and
# must end with SQLSTATE 57014 less than CANCEL_MARGIN_MS (1500 ms) after the
# timeout; the wall time is printed.  Where the work that cannot be cancelled
# row by row is the final function, the group's state is built beforehand
# (the transition function alone, as a twin aggregate) and the timed
# statement only combines it once and runs the final function: the executor
# checks for interrupts between rows, so without the final phase the test
# would prove nothing.  Each timed statement would otherwise run for seconds
# (figures in docs/security.md, section E).
#
# Env: PGHOST/PGPORT/PGUSER, PG_BINDIR; CANCEL_MARGIN_MS, CANCEL_TIMEOUT_MS.
set -euo pipefail
export PATH=$PG_BINDIR:$PATH
db=crm_cancel
timeout_ms=${CANCEL_TIMEOUT_MS:-300}
margin_ms=${CANCEL_MARGIN_MS:-1500}
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q <<'SQL'
CREATE EXTENSION crm_analytics;
CREATE SCHEMA t;
-- one entity, 1,000,000 events, one a second from 2020-01-01
CREATE UNLOGGED TABLE t.ev AS
SELECT g AS id, timestamptz '2020-01-01' + g * interval '1 second' AS ts,
       'x'::text AS step, (g % 997 + 1)::numeric AS amount
  FROM generate_series(1, 1000000) g;
-- events one day apart (distinct days, periods, customer patterns)
CREATE UNLOGGED TABLE t.days AS
SELECT g AS id, timestamptz '0001-01-01' + g * interval '1 day' AS ts, (g % 997 + 1)::numeric AS amount
  FROM generate_series(1, 3000000) g;
ANALYZE t.ev; ANALYZE t.days;

-- twins: the transition function alone (the state of the one group) ...
CREATE AGGREGATE t.wf_state(interval, text, timestamptz, VARIADIC boolean[]) (
    SFUNC = crm._window_funnel_transfn, STYPE = crm.window_funnel_state);
CREATE AGGREGATE t.bg_state(float8, float8, float8) (SFUNC = crm.bgnbd_transfn, STYPE = crm.bgnbd_state);
CREATE AGGREGATE t.gg_state(float8, float8) (SFUNC = crm.gamma_gamma_transfn, STYPE = crm.gamma_gamma_state);
CREATE AGGREGATE t.sum_state(timestamptz, numeric, timestamptz) (SFUNC = crm.clv_summary_transfn, STYPE = crm.clv_summary_state);
-- ... and the combine + final function, run on the saved state
CREATE AGGREGATE t.wf_times(crm.window_funnel_state) (
    SFUNC = crm._window_funnel_combinefn, STYPE = crm.window_funnel_state, FINALFUNC = crm._window_funnel_times_finalfn);
CREATE AGGREGATE t.bg_fit(crm.bgnbd_state) (
    SFUNC = crm.bgnbd_combinefn, STYPE = crm.bgnbd_state, FINALFUNC = crm.bgnbd_finalfn);
CREATE AGGREGATE t.gg_fit(crm.gamma_gamma_state) (
    SFUNC = crm.gamma_gamma_combinefn, STYPE = crm.gamma_gamma_state, FINALFUNC = crm.gamma_gamma_finalfn);
CREATE AGGREGATE t.sum_final(crm.clv_summary_state) (
    SFUNC = crm.clv_summary_combinefn, STYPE = crm.clv_summary_state, FINALFUNC = crm.clv_summary_finalfn);
CREATE AGGREGATE t.co_merge(crm.cohort_activity_state) (
    SFUNC = crm.cohort_activity_combinefn, STYPE = crm.cohort_activity_state);

-- window_funnel: 64 steps, every row matches steps 1..63, window 0: each row
-- restarts the chain and carries it to level 63 (the final scan's worst case)
-- saved states are stored uncompressed: reading them back is then a copy, not a decompression
-- (which no interrupt check can cut short)
CREATE TABLE t.s_wf (s crm.window_funnel_state);
CREATE TABLE t.s_bg (s crm.bgnbd_state);
CREATE TABLE t.s_gg (s crm.gamma_gamma_state);
CREATE TABLE t.s_sum (s crm.clv_summary_state);
CREATE TABLE t.s_co (s crm.cohort_activity_state);
ALTER TABLE t.s_wf ALTER s SET STORAGE EXTERNAL;
ALTER TABLE t.s_bg ALTER s SET STORAGE EXTERNAL;
ALTER TABLE t.s_gg ALTER s SET STORAGE EXTERNAL;
ALTER TABLE t.s_sum ALTER s SET STORAGE EXTERNAL;
ALTER TABLE t.s_co ALTER s SET STORAGE EXTERNAL;
INSERT INTO t.s_wf
SELECT t.wf_state('0', '', ts + g * interval '1 ms', VARIADIC (array_fill(true, ARRAY[63]) || false)) AS s
  FROM t.ev CROSS JOIN generate_series(0, 3) g;
-- BG/NBD and Gamma-Gamma: a million distinct customer patterns
INSERT INTO t.s_bg
SELECT t.bg_state((id % 50)::float8, CASE WHEN id % 50 = 0 THEN 0 ELSE (id % 50) + (id % 1000) / 1000.0 END,
                  60 + id / 1000.0) AS s FROM t.days WHERE id <= 1000000;
INSERT INTO t.s_gg
SELECT t.gg_state((id % 50 + 1)::float8, 1 + id / 100.0) AS s FROM t.days WHERE id <= 1000000;
-- clv_summary: three million purchases of one customer
INSERT INTO t.s_sum
SELECT t.sum_state(ts, amount, timestamptz '20000-01-01') AS s FROM t.days;
-- cohort_activity: three million active days of one entity
INSERT INTO t.s_co
SELECT crm.cohort_activity(ts, amount, 'day') AS s FROM t.days;
SQL

n=0
fails=0
# check NAME SQL: the statement must end with 57014 within the margin after the timeout
check() {
    local name=$1 sql=$2 t0 t1 ms out
    n=$((n + 1))
    t0=$(date +%s%N)
    out=$(psql -X -d "$db" -v VERBOSITY=verbose -c "SET statement_timeout = '${timeout_ms}ms'" -c "$sql" 2>&1 || true)
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    if grep -q '57014' <<<"$out" && [ $((ms - timeout_ms)) -lt "$margin_ms" ]; then
        echo "ok $n - $name: ended with 57014 after $ms ms (timeout $timeout_ms ms)"
    else
        echo "not ok $n - $name: $ms ms (timeout $timeout_ms ms, margin $margin_ms ms)"
        grep -E 'ERROR|rows?\)' <<<"$out" | head -3 | sed 's/^/#   /'
        fails=$((fails + 1))
    fi
}

# final functions over the saved state of one group
check "window_funnel_times final scan, 4M events, 64 steps" \
      "SELECT cardinality(t.wf_times(s)) FROM t.s_wf"
check "window_funnel, one group of 8M rows, 64 steps, strict_order" \
      "SELECT crm.window_funnel('0', 'strict_order', ts, VARIADIC (array_fill(true, ARRAY[63]) || false)) FROM t.ev CROSS JOIN generate_series(1, 8)"
check "window_funnel_times_by_name, one group of 4M rows, 64 names" \
      "SELECT cardinality(crm.window_funnel_times_by_name('0', ts + g * interval '1 ms', step, array_fill('x'::text, ARRAY[63]) || 'never'::text)) FROM t.ev CROSS JOIN generate_series(0, 3) g"
check "bgnbd_fit final (compaction and fit), 1M patterns" \
      "SELECT (t.bg_fit(s)).r FROM t.s_bg"
check "gamma_gamma_fit final (compaction and fit), 1M patterns" \
      "SELECT (t.gg_fit(s)).p FROM t.s_gg"
check "clv_summary final, 3M purchases" \
      "SELECT (t.sum_final(s)).frequency FROM t.s_sum"
check "cohort_activity_periods over 3M periods" \
      "SELECT count(*) FROM t.s_co, crm.cohort_activity_periods(s)"
check "cohort_activity combine of two 3M-period states, text output" \
      "SELECT length(t.co_merge(s)::text) FROM (SELECT s FROM t.s_co UNION ALL SELECT s FROM t.s_co) x"
# whole queries over the one group or partition
check "retention, one group of 16M rows" \
      "SELECT crm.retention(id % 2 = 0, id % 3 = 0, id % 5 = 0) FROM t.ev CROSS JOIN generate_series(1, 16)"
check "abc_class over one partition of 4M rows" \
      "SELECT count(c) FROM (SELECT crm.abc_class((id * 7919 % 1000003 + g)::float8) OVER () AS c FROM t.ev CROSS JOIN generate_series(1, 4) g) s"
check "quantile_score over one partition of 4M rows" \
      "SELECT count(c) FROM (SELECT crm.quantile_score((id * 7919 % 1000003 + g)::float8, 10) OVER () AS c FROM t.ev CROSS JOIN generate_series(1, 4) g) s"
check "demand_cv, one group of 16M rows" \
      "SELECT crm.demand_cv(amount::float8, (id % 10000)::int + 1, 10000) FROM t.ev CROSS JOIN generate_series(1, 16)"
check "median_interval, one group of 8M purchases" \
      "SELECT crm.median_interval(ts + g * interval '1 ms') FROM t.ev CROSS JOIN generate_series(1, 8) g"

psql -X -q -d postgres -c "DROP DATABASE $db"
echo "1..$n"
[ "$fails" -eq 0 ]
