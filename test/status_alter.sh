#!/usr/bin/env bash
# status_alter.sh: ALTER TABLE ... ALTER COLUMN ... TYPE on tables with automatic status
# attached, done by their owner (not a superuser), while a session that already used the
# triggers stays connected.  The per-backend trigger cache must follow the new column types:
# no crash, the right entity_key, event time and status in the history.
#   * session W (the writer) uses both triggers, then the columns change type
#     - in W itself (same backend), then W writes again;
#     - in another session D, then W writes again;
#   * entity table: key text -> bigint (a cached text output function would read an integer
#     as a pointer), key bigint -> numeric (a cached bigint output would print a pointer);
#   * event table: entity column int -> numeric, time column timestamptz -> date.
# Every expected value is written by hand from the statements below.
set -euo pipefail
: "${PG_BINDIR:?}"
export PATH=$PG_BINDIR:$PATH
DB=status_alter
WORK=$(mktemp -d); chmod 777 "$WORK"
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "${wpid:-}" ] && kill "$wpid" 2>/dev/null || true
    q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    q -d postgres -c "DROP ROLE IF EXISTS st_alter_owner" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
bad=0
expect() {  # expect NAME WANT GOT
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: want '$2', got '$3'"; bad=1; fi
}

q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS st_alter_owner"
q -d postgres -c "CREATE DATABASE $DB" -c "CREATE ROLE st_alter_owner LOGIN"
q -d $DB <<'SQL'
CREATE EXTENSION crm_analytics;
-- what a writing role needs (docs/auto-status.md, Privileges)
GRANT USAGE ON SCHEMA crm TO st_alter_owner;
GRANT SELECT ON crm.status_attachments, crm.status_stages, crm.status_transitions,
                crm.status_event_rules, crm.status_time_rules TO st_alter_owner;
GRANT SELECT, INSERT ON crm.status_history TO st_alter_owner;
GRANT USAGE ON SEQUENCE crm.status_history_id_seq TO st_alter_owner;
CREATE SCHEMA app AUTHORIZATION st_alter_owner;
SET ROLE st_alter_owner;
-- entity table A: text key, no event table; entity table B: bigint key with an event table
CREATE TABLE app.a (id text PRIMARY KEY, status text);
INSERT INTO app.a VALUES ('1', 'new'), ('2', 'new'), ('3', 'new'), ('4', 'new');
CREATE TABLE app.b (id bigint PRIMARY KEY, status text);
INSERT INTO app.b SELECT g, 'new' FROM generate_series(1, 6) g;
CREATE TABLE app.ev (ev_id serial PRIMARY KEY, entity int, kind text NOT NULL, at timestamptz NOT NULL);
RESET ROLE;
SELECT crm.attach_auto_status('app.a', 'id', 'status', ARRAY['new', 'contacted', 'won']);
SELECT crm.attach_auto_status('app.b', 'id', 'status', ARRAY['new', 'contacted', 'won'],
                              'app.ev', 'entity', 'kind', 'at');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status)
VALUES ('app.b', 'call', '{new}', 'contacted'), ('app.b', 'paid', NULL, 'won');
SQL

# the writer session W: a psql reading from a FIFO, as the (non-superuser) owner
mkfifo "$WORK/w.in"
q -d $DB -U st_alter_owner -At < "$WORK/w.in" > "$WORK/w.out" 2>&1 &
wpid=$!
exec 3> "$WORK/w.in"
n=0
w() {  # w SQL: run SQL in W and wait until it is done
    n=$((n + 1))
    printf '%s\n\\echo done-%s\n' "$1" "$n" >&3
    for _ in $(seq 1 600); do
        grep -q "^done-$n\$" "$WORK/w.out" && return 0
        kill -0 "$wpid" 2>/dev/null || break
        sleep 0.1
    done
    echo "not ok - session W did not finish step $n: $(tail -5 "$WORK/w.out")"; bad=1; return 1
}
d() { q -d $DB -U st_alter_owner -At -c "$1"; }
hist() { q -d $DB -At -c "SELECT string_agg(format('%s:%s>%s@%s', entity_key, coalesce(from_status, '-'), to_status, coalesce(rule_id::text, 'm')), ' ' ORDER BY history_id) FROM crm.status_history WHERE entity_table = '$1'::regclass"; }

# W uses both triggers (fills its cache)
w "UPDATE app.a SET status = 'contacted' WHERE id = '1';"
w "INSERT INTO app.ev (entity, kind, at) VALUES (1, 'call', '2025-03-01 10:00+00');"
expect "W: a manual change on app.a is recorded" "1:new>contacted@m" "$(hist app.a)"
rule_call=$(q -d $DB -At -c "SELECT rule_id FROM crm.status_event_rules WHERE event_type = 'call'")
rule_paid=$(q -d $DB -At -c "SELECT rule_id FROM crm.status_event_rules WHERE event_type = 'paid'")
expect "W: an event rule on app.b is applied" "1:new>contacted@$rule_call" "$(hist app.b)"

# 1. same backend: W changes the key of app.a from text to bigint, then changes a status
w "ALTER TABLE app.a ALTER COLUMN id TYPE bigint USING id::bigint;"
w "UPDATE app.a SET status = 'won' WHERE id = 2;"
expect "same backend, key text -> bigint: W's next change is recorded with the right key" \
       "1:new>contacted@m 2:new>won@m" "$(hist app.a)"

# 2. another backend: D changes the key of app.a from bigint to numeric; W changes a status
d "ALTER TABLE app.a ALTER COLUMN id TYPE numeric"
w "UPDATE app.a SET status = 'contacted' WHERE id = 3;"
expect "other backend, key bigint -> numeric: W's next change is recorded with the right key" \
       "1:new>contacted@m 2:new>won@m 3:new>contacted@m" "$(hist app.a)"
expect "app.a statuses" "contacted,won,contacted,new" "$(q -d $DB -At -c "SELECT string_agg(status, ',' ORDER BY id) FROM app.a")"

# 3. same backend: W changes the event entity column from int to numeric, inserts an event
w "ALTER TABLE app.ev ALTER COLUMN entity TYPE numeric;"
w "INSERT INTO app.ev (entity, kind, at) VALUES (2, 'call', '2025-03-02 11:00+00');"
expect "same backend, event entity int -> numeric: the rule moves the right entity" \
       "1:new>contacted@$rule_call 2:new>contacted@$rule_call" "$(hist app.b)"

# 4. another backend: D changes the event time column to date and the key of app.b to numeric
d "ALTER TABLE app.ev ALTER COLUMN at TYPE date"
w "INSERT INTO app.ev (entity, kind, at) VALUES (3, 'paid', '2025-03-05');"
expect "other backend, event time timestamptz -> date: the history has the event's date" \
       "3|won|2025-03-05 00:00:00+00" \
       "$(q -d $DB -At -c "SET timezone = UTC; SELECT entity_key || '|' || to_status || '|' || changed_at FROM crm.status_history WHERE entity_table = 'app.b'::regclass ORDER BY history_id DESC LIMIT 1")"
d "ALTER TABLE app.b ALTER COLUMN id TYPE numeric"
w "INSERT INTO app.ev (entity, kind, at) VALUES (4, 'paid', '2025-03-06');"
w "UPDATE app.b SET status = 'won' WHERE id = 5;"
expect "other backend, entity key bigint -> numeric: rule and manual change recorded with the right keys" \
       "1:new>contacted@$rule_call 2:new>contacted@$rule_call 3:new>won@$rule_paid 4:new>won@$rule_paid 5:new>won@m" "$(hist app.b)"
expect "app.b statuses" "contacted,contacted,won,won,won,new" "$(q -d $DB -At -c "SELECT string_agg(status, ',' ORDER BY id) FROM app.b")"

exec 3>&-
wait "$wpid" || true
if grep -qiE 'server closed the connection|terminated abnormally|connection to server was lost' "$WORK/w.out"; then
    echo "not ok - session W lost its server (a backend crashed)"; bad=1
else
    echo "ok - session W kept its connection throughout"
fi
if grep -q ERROR "$WORK/w.out"; then echo "not ok - session W got errors:"; grep ERROR "$WORK/w.out"; bad=1; else echo "ok - session W got no error"; fi
exit $bad
