#!/usr/bin/env bash
# bi_period.sh (issue 21, BI conventions): what needs new sessions.
#   1. The dashboard period per role (ALTER ROLE ... SET) and per database
#      (ALTER DATABASE ... SET), their precedence (session > role > database,
#      as for every setting; crm.period_from / crm.period_to > crm.period >
#      crm.dashboard_settings), and a bad role setting (22007 / 22023 naming
#      the setting) reaching a view; a new session per check (psql -U role:
#      SET ROLE does not apply role settings).
#   2. Progress: the notices of crm.load_demo and crm.apply_time_rules with a
#      short crm_analytics.progress_interval, silenced by client_min_messages
#      and by progress_interval = -1; the progress line visible in
#      pg_stat_activity from another session while the call runs, and the
#      statement's own text back once it ended.
# Env: PGHOST/PGPORT/PGUSER, PG_BINDIR.
set -euo pipefail
export PATH=$PG_BINDIR:$PATH
DB=bi_period
WORK=$(mktemp -d)
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() {
    q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    for r in bi_metabase bi_analyst bi_bad; do q -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
WORK=$(mktemp -d)
bad=0
expect() {  # expect NAME WANT GOT
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: want '$2', got '$3'"; bad=1; fi
}
# as role $1 in a new session: the period and where it comes from
period_as() { q -d $DB -U "$1" -At -c "SELECT period_from || ' ' || period_to || ' ' || crm.dashboard_period_source() FROM crm.dashboard_period()"; }
# the error (SQLSTATE: message) of a query as role $1 in a new session
error_as() { psql -X -q -d $DB -U "$1" -At -v VERBOSITY=verbose -c "$2" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): /\1: /p' | head -1; }

q -d postgres -c "CREATE DATABASE $DB"
q -d $DB <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION crm_analytics;
SELECT count(*) FROM crm.load_demo(300, 42, '2025-12-31');
-- Metabase's database user and two more, with the grants docs/dashboard.md lists
CREATE ROLE bi_metabase LOGIN;
CREATE ROLE bi_analyst LOGIN;
CREATE ROLE bi_bad LOGIN;
GRANT USAGE ON SCHEMA crm, crm_demo TO bi_metabase, bi_analyst, bi_bad;
GRANT SELECT ON crm.sources TO bi_metabase, bi_analyst, bi_bad;
GRANT SELECT ON ALL TABLES IN SCHEMA crm_demo TO bi_metabase, bi_analyst, bi_bad;
SQL

# ---- 1. period per role and database
expect "no setting: the global period of crm.dashboard_settings" \
  "2025-12-01 2025-12-31 crm.dashboard_settings" "$(period_as bi_metabase)"

q -d postgres -c "ALTER ROLE bi_metabase IN DATABASE $DB SET crm.period_from = '2025-10-01'" \
              -c "ALTER ROLE bi_metabase IN DATABASE $DB SET crm.period_to = '2025-12-31'"
expect "ALTER ROLE ... SET crm.period_from / crm.period_to: the role's period" \
  "2025-10-01 2025-12-31 settings crm.period_from, crm.period_to" "$(period_as bi_metabase)"
expect "another role keeps the global period" \
  "2025-12-01 2025-12-31 crm.dashboard_settings" "$(period_as bi_analyst)"
# the role's views show its period, with the figures of the function for that period
expect "v_owner_dashboard as the role: Q4 2025 revenue = owner_dashboard('2025-10-01', '2025-12-31') = plain SQL" \
  "$(q -d $DB -At -c "SELECT sum(amount) FROM crm_demo.orders WHERE ordered_at >= '2025-10-01' AND ordered_at < '2026-01-01'") true" \
  "$(q -d $DB -U bi_metabase -At -c "SELECT v.value || ' ' || (v.value = o.value) FROM crm.v_owner_dashboard v,
         crm.owner_dashboard('2025-10-01', '2025-12-31') o WHERE v.metric = 'revenue' AND o.metric = 'revenue' AND v.period_from = '2025-10-01'")"

q -d postgres -c "ALTER DATABASE $DB SET crm.period = 'last_quarter'"
want_lq=$(q -d $DB -At -c "SELECT (date_trunc('quarter', current_date) - interval '3 months')::date || ' ' || (date_trunc('quarter', current_date)::date - 1)")
expect "ALTER DATABASE ... SET crm.period: every role without its own setting" \
  "$want_lq setting crm.period = last_quarter" "$(period_as bi_analyst)"
expect "the role's dates win over the database's crm.period" \
  "2025-10-01 2025-12-31 settings crm.period_from, crm.period_to" "$(period_as bi_metabase)"
q -d postgres -c "ALTER ROLE bi_analyst IN DATABASE $DB SET crm.period = 'last_month'"
want_lm=$(q -d $DB -At -c "SELECT (date_trunc('month', current_date) - interval '1 month')::date || ' ' || (date_trunc('month', current_date)::date - 1)")
expect "a role's crm.period wins over the database's" \
  "$want_lm setting crm.period = last_month" "$(period_as bi_analyst)"
expect "a session SET wins over the role's setting" \
  "2025-11-01 2025-11-30 settings crm.period_from, crm.period_to" \
  "$(q -d $DB -U bi_analyst -At -c "SET crm.period_from = '2025-11-01'" -c "SET crm.period_to = '2025-11-30'" \
        -c "SELECT period_from || ' ' || period_to || ' ' || crm.dashboard_period_source() FROM crm.dashboard_period()")"
expect "a session clears the role's dates with empty values (the database's crm.period applies)" \
  "$want_lq setting crm.period = last_quarter" \
  "$(q -d $DB -U bi_metabase -At -c "SET crm.period_from = ''" -c "SET crm.period_to = ''" \
        -c "SELECT period_from || ' ' || period_to || ' ' || crm.dashboard_period_source() FROM crm.dashboard_period()")"

# bad settings of a role reach its views as clear errors
q -d postgres -c "ALTER ROLE bi_bad IN DATABASE $DB SET crm.period_from = '01/12/2025'" \
              -c "ALTER ROLE bi_bad IN DATABASE $DB SET crm.period_to = '2025-12-31'"
expect "a role's non-ISO date -> 22007 naming the setting, through a view" \
  '22007: invalid value for setting crm.period_from: "01/12/2025"' "$(error_as bi_bad 'SELECT count(*) FROM crm.v_pipeline')"
q -d postgres -c "ALTER ROLE bi_bad IN DATABASE $DB RESET crm.period_from"
expect "a role with only crm.period_to -> 22023" \
  '22023: setting crm.period_to is set but crm.period_from is not' "$(error_as bi_bad 'SELECT count(*) FROM crm.v_owner_dashboard')"
q -d postgres -c "ALTER ROLE bi_bad IN DATABASE $DB RESET crm.period_to" \
              -c "ALTER ROLE bi_bad IN DATABASE $DB SET crm.period = 'last_week'"
expect "a role's unknown crm.period -> 22023" \
  '22023: invalid value for setting crm.period: "last_week"' "$(error_as bi_bad 'SELECT count(*) FROM crm.v_channels')"

# ---- 2. progress
q -d $DB -c "ALTER DATABASE $DB RESET crm.period"
notices() { grep -c "^NOTICE:  $1" "$2" || true; }
q -d $DB -c "SET crm_analytics.progress_interval = 0" -c "SELECT count(*) FROM crm.load_demo(300, 42, '2025-12-31')" >/dev/null 2>"$WORK/demo0"
expect "load_demo with progress_interval = 0: a notice per step (16)" "16" "$(notices 'crm.load_demo: ' "$WORK/demo0")"
expect "the first and the last notice" \
  "NOTICE:  crm.load_demo: deal paths of the leads: 0 of 15 done (0%)|NOTICE:  crm.load_demo: finished: 15 of 15 done (100%)" \
  "$(grep '^NOTICE:  crm.load_demo' "$WORK/demo0" | sed -n '1p;$p' | sed 's/, [0-9.]* s elapsed$//' | paste -sd'|')"
expect "every notice says the elapsed time" "16" "$(grep -cE '^NOTICE:  crm.load_demo: .*, [0-9]+\.[0-9] s elapsed$' "$WORK/demo0" || true)"
expect "and nothing else (DROP SCHEMA's cascade notice stays silent)" "16" "$(grep -c '^NOTICE:' "$WORK/demo0" || true)"
q -d $DB -c "SET crm_analytics.progress_interval = 0" -c "SET client_min_messages = warning" \
  -c "SELECT count(*) FROM crm.load_demo(300, 42, '2025-12-31')" >/dev/null 2>"$WORK/demo1"
expect "client_min_messages = warning silences them" "0" "$(notices crm "$WORK/demo1")"
q -d $DB -c "SET crm_analytics.progress_interval = -1" -c "SELECT count(*) FROM crm.load_demo(300, 42, '2025-12-31')" >/dev/null 2>"$WORK/demo2"
expect "progress_interval = -1 silences them" "0" "$(notices crm "$WORK/demo2")"
q -d $DB -c "SELECT count(*) FROM crm.load_demo(300, 42, '2025-12-31')" >/dev/null 2>"$WORK/demo3"
expect "default interval (10 s): a short call says nothing" "0" "$(notices crm "$WORK/demo3")"
expect "a bad interval is refused when set (22023)" "22023" \
  "$(psql -X -q -d $DB -v VERBOSITY=verbose -c "SELECT crm.id_number('1')" -c "SET crm_analytics.progress_interval = 'soon'" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')"

# apply_time_rules: a rule over 25,000 entities (3 batches of 10,000)
q -d $DB <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE TABLE public.bi_leads (lead_id bigint PRIMARY KEY, status text);
CREATE TABLE public.bi_events (lead_id bigint, kind text NOT NULL, at timestamptz NOT NULL);
INSERT INTO public.bi_leads SELECT g, 'contacted' FROM generate_series(1, 25000) g;
SELECT crm.attach_auto_status('public.bi_leads', 'lead_id', 'status', ARRAY['new', 'contacted', 'lost'],
                              'public.bi_events', 'lead_id', 'kind', 'at');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
VALUES ('public.bi_leads', 'contacted', '30 days', 'lost');
SQL
moved=$(q -d $DB -At -c "SET crm_analytics.progress_interval = 0" -c "SELECT crm.apply_time_rules('2026-01-01')" 2>"$WORK/sweep")
expect "apply_time_rules moved every entity" "25000" "$moved"
expect "apply_time_rules: a notice before each batch fetch (4), with the entities moved so far" \
  "0|10000|20000|25000" "$(sed -n 's/^NOTICE:  crm.apply_time_rules: rule [0-9]* on public.bi_leads, \([0-9]*\) moved: 0 of 1 done (0%), [0-9.]* s elapsed$/\1/p' "$WORK/sweep" | paste -sd'|')"

# another session sees the progress while the call runs, and the statement afterwards
pid_file=$WORK/pid
( q -d $DB -At -c "SELECT pg_backend_pid()" -c "SELECT crm._progress('bi_period: visible', 5, 10), pg_sleep(4)" > "$pid_file" 2>/dev/null ) &
bg=$!
seen=""
for _ in $(seq 1 60); do
    sleep 0.1
    pid=$(head -1 "$pid_file" 2>/dev/null || true)
    [ -n "$pid" ] || continue
    seen=$(q -d $DB -At -c "SELECT query FROM pg_stat_activity WHERE pid = $pid AND query LIKE 'bi_period: visible%'")
    [ -n "$seen" ] && break
done
expect "another session sees the progress line in pg_stat_activity.query" \
  "bi_period: visible: 5 of 10 done (50%) | SELECT crm._progress('bi_period: visible', 5, 10), pg_sleep(4)" \
  "$(echo "$seen" | sed 's/, [0-9.]* s elapsed / /')"
wait $bg
# a session that stays open: after its call it shows the statement again (idle)
( psql -X -q -d $DB -At <<'SQL' > "$pid_file" 2>/dev/null ) &
SELECT pg_backend_pid();
SELECT crm._progress('bi_period: gone', 1, 2);
\! sleep 3
SQL
bg=$!
sleep 1.5
pid=$(head -1 "$pid_file")
expect "after the call, pg_stat_activity shows the session's last statement again" \
  "idle|SELECT crm._progress('bi_period: gone', 1, 2);" \
  "$(q -d $DB -At -c "SELECT state || '|' || query FROM pg_stat_activity WHERE pid = $pid")"
wait $bg
# a load_demo seen from another session while it runs
( q -d $DB -At -c "SELECT pg_backend_pid()" -c "SELECT count(*) FROM crm.load_demo(5000, 42, '2025-12-31')" > "$pid_file" 2>/dev/null ) &
bg=$!
seen=""
for _ in $(seq 1 300); do
    sleep 0.05
    pid=$(head -1 "$pid_file" 2>/dev/null || true)
    [ -n "$pid" ] || continue
    seen=$(q -d $DB -At -c "SELECT query FROM pg_stat_activity WHERE pid = $pid AND query LIKE 'crm.load_demo: %'")
    [ -n "$seen" ] && break
done
wait $bg
expect "a running crm.load_demo shows its step in pg_stat_activity" "yes" \
  "$(echo "$seen" | grep -qE '^crm\.load_demo: .*: [0-9]+ of 15 done \([0-9]+%\), [0-9.]+ s elapsed \| SELECT count\(\*\) FROM crm\.load_demo' && echo yes || echo "no: $seen")"

exit $bad
