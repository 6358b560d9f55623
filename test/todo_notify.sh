#!/usr/bin/env bash
# todo_notify.sh (issue 20): a backend learns of changes without polling.
#   crm_status: every status change of the automatic statuses (event rule, manual change, sweep)
#               sends one notification at commit, payload {entity_table, entity_key, from_status,
#               to_status, actor, history_id}; a rolled-back change sends none; a huge key is cut
#               so the payload stays under 8000 bytes.
#   crm_todo:   crm.notify_todo() sends one notification per new to-do item (the row as json),
#               nothing for items already announced.
# pgTAP cannot see notifications: psql LISTENs in the same session and prints an
# "Asynchronous notification ..." line for each; the lines are checked here.
# Env: PGHOST/PGPORT/PGUSER, PG_BINDIR.
set -euo pipefail
export PATH=$PG_BINDIR:$PATH
DB=todo_notify
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
bad=0
expect() {  # expect NAME WANT GOT
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: want '$2', got '$3'"; bad=1; fi
}
payloads() {  # payloads CHANNEL FILE: the payloads received on CHANNEL, one a line
    sed -n "s/^Asynchronous notification \"$1\" with payload \"\(.*\)\" received from server process with PID [0-9]*\.$/\1/p" "$2"
}

q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q -d $DB <<'SQL' > /dev/null
SET TimeZone = 'UTC';
CREATE EXTENSION crm_analytics;
SELECT count(*) FROM crm.load_demo(200, 7, '2025-12-31');
CREATE SCHEMA app;
CREATE TABLE app.leads (lead_key text PRIMARY KEY, status text);
CREATE TABLE app.events (lead_key text REFERENCES app.leads, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());
INSERT INTO app.leads VALUES ('1', NULL), ('2', NULL), ('3', NULL);
SELECT crm.attach_auto_status('app.leads', 'lead_key', 'status', ARRAY['new', 'contacted', 'won', 'lost'],
                              'app.events', 'lead_key', 'kind', 'at');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status) VALUES ('app.leads', 'email_sent', '{new}', 'contacted');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES ('app.leads', 'contacted', '30 days', 'lost');
UPDATE app.leads SET status = 'new';
SQL
base=$(q -d $DB -At -c "SELECT max(history_id) FROM crm.status_history")

# one session: LISTEN, then the changes; psql prints the notifications after each command
q -d $DB > "$WORK/status.out" 2>&1 <<'SQL'
LISTEN crm_status;
INSERT INTO app.events (lead_key, kind, at) VALUES ('1', 'email_sent', '2025-01-01');
SET crm.status_actor = 'maria@sales';
UPDATE app.leads SET status = 'won' WHERE lead_key = '2';
RESET crm.status_actor;
BEGIN;
UPDATE app.leads SET status = 'won' WHERE lead_key = '3';
ROLLBACK;
SELECT crm.apply_time_rules(now() + interval '60 days');
INSERT INTO app.leads VALUES (repeat('k', 9000), 'new');
SELECT 1;
SQL
mapfile -t got < <(payloads crm_status "$WORK/status.out")
echo "crm_status notifications: ${#got[@]}"
expect "4 status changes, 4 notifications (none for the rolled-back change)" 4 "${#got[@]}"
expect "event rule" "{\"entity_table\" : \"app.leads\", \"entity_key\" : \"1\", \"from_status\" : \"new\", \"to_status\" : \"contacted\", \"actor\" : \"rule\", \"history_id\" : $((base + 1))}" "${got[0]:-}"
expect "manual change, actor from crm.status_actor" "{\"entity_table\" : \"app.leads\", \"entity_key\" : \"2\", \"from_status\" : \"new\", \"to_status\" : \"won\", \"actor\" : \"maria@sales\", \"history_id\" : $((base + 2))}" "${got[1]:-}"
# the rolled-back change used a history_id (sequences are not transactional)
hid=$(q -d $DB -At -c "SELECT history_id FROM crm.status_history WHERE entity_key = '1' AND to_status = 'lost'")
expect "sweep (time rule)" "{\"entity_table\" : \"app.leads\", \"entity_key\" : \"1\", \"from_status\" : \"contacted\", \"to_status\" : \"lost\", \"actor\" : \"rule\", \"history_id\" : $hid}" "${got[2]:-}"
long=${got[3]:-}
expect "a 9000-character key: payload under 8000 bytes" yes "$([ ${#long} -gt 0 ] && [ $(printf '%s' "$long" | wc -c) -lt 8000 ] && echo yes || echo no)"
expect "... cut to 200 characters and flagged" "1" "$(printf '%s' "$long" | grep -c "\"entity_key\" : \"$(printf 'k%.0s' $(seq 1 200))\", .*\"truncated\" : true")"
expect "the history ids of the notifications are the history rows" \
  "$(q -d $DB -At -c "SELECT string_agg(history_id::text, ' ' ORDER BY history_id) FROM crm.status_history WHERE history_id > $base")" \
  "$(printf '%s\n' "${got[@]}" | sed -n 's/.*"history_id" : \([0-9]*\).*/\1/p' | tr '\n' ' ' | sed 's/ $//')"

# crm_analytics.notify_status = off: the change is made and recorded, nothing is sent
q -d $DB > "$WORK/off.out" 2>&1 <<'SQL'
LISTEN crm_status;
SET crm_analytics.notify_status = off;
UPDATE app.leads SET status = 'lost' WHERE lead_key = '3';
INSERT INTO app.leads VALUES ('4', 'new');
SELECT 1;
RESET crm_analytics.notify_status;
UPDATE app.leads SET status = 'contacted' WHERE lead_key = '4';
SELECT 1;
SQL
mapfile -t off < <(payloads crm_status "$WORK/off.out")
expect "notify_status off: no notification; back on: one" "1 contacted" \
  "${#off[@]} $(printf '%s' "${off[0]:-}" | sed -n 's/.*"to_status" : "\([a-z]*\)".*/\1/p')"
expect "... and the silenced change is in the history" 1 \
  "$(q -d $DB -At -c "SELECT count(*) FROM crm.status_history WHERE entity_key = '3' AND to_status = 'lost'")"

# crm_todo: the first run announces every item of the list, the second none
q -d $DB > "$WORK/todo.out" 2>&1 <<'SQL'
SET TimeZone = 'UTC';
LISTEN crm_todo;
\pset tuples_only on
SELECT 'first run announced ' || crm.notify_todo('2026-01-01');
SELECT 'second run announced ' || crm.notify_todo('2026-01-01');
SQL
n1=$(sed -n 's/^ *first run announced \([0-9]*\)$/\1/p' "$WORK/todo.out")
n2=$(sed -n 's/^ *second run announced \([0-9]*\)$/\1/p' "$WORK/todo.out")
mapfile -t todo < <(payloads crm_todo "$WORK/todo.out")
items=$(q -d $DB -At -c "SET TimeZone = 'UTC'; SELECT count(*) FROM crm.todo('2026-01-01')")
echo "crm.todo('2026-01-01'): $items items; announced $n1 then $n2; crm_todo notifications: ${#todo[@]}"
expect "first run: one notification per item of the list" "$items $items" "$n1 ${#todo[@]}"
expect "second run: nothing new" 0 "$n2"
first=$(q -d $DB -At -c "SET TimeZone = 'UTC'; SELECT json_build_object('manager_id', manager_id, 'kind', kind, 'entity_id', entity_id, 'since', since, 'value', value, 'note', note)::text FROM crm.todo('2026-01-01') LIMIT 1")
expect "the first notification is the row with the most money, as json" "$first" "${todo[0]:-}"
expect "every payload names a kind of the list" "${#todo[@]}" \
  "$(printf '%s\n' "${todo[@]}" | grep -cE '"kind" : "(unanswered_lead|stale_deal|overdue_invoice|overdue_contact|reactivation)"')"
exit $bad
