#!/usr/bin/env bash
# status_drop.sh: the automatic-status configuration and history survive
# pg_dump / restore (and the restored triggers work), and DROP EXTENSION
# leaves the user's tables and data intact.
set -euo pipefail
export PATH=$PG_BINDIR:$PATH
DB=status_drop
DB2=status_drop_restored
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
bad=0
expect() {  # expect NAME WANT GOT
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1: want '$2', got '$3'"; bad=1; fi
}

for d in $DB $DB2; do q -d postgres -c "DROP DATABASE IF EXISTS $d"; done
q -d postgres -c "CREATE DATABASE $DB"
q -d $DB <<'SQL'
CREATE EXTENSION crm_analytics;
CREATE SCHEMA app;
CREATE TABLE app.leads (lead_id bigint PRIMARY KEY, status text);
CREATE TABLE app.events (lead_id bigint REFERENCES app.leads, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());
INSERT INTO app.leads SELECT g, 'new' FROM generate_series(1, 100) g;
SELECT crm.attach_auto_status('app.leads', 'lead_id', 'status', ARRAY['new', 'contacted', 'won'],
                              'app.events', 'lead_id', 'kind', 'at');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status)
VALUES ('app.leads', 'email_sent', '{new}', 'contacted'), ('app.leads', 'paid', NULL, 'won');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
VALUES ('app.leads', 'contacted', '30 days', 'won');
INSERT INTO app.events (lead_id, kind, at) SELECT g, 'email_sent', '2025-01-01' FROM generate_series(1, 50) g;
INSERT INTO app.events (lead_id, kind, at) SELECT g, 'paid', '2025-01-02' FROM generate_series(1, 10) g;
SQL
sig="SELECT (SELECT string_agg(lead_id || ':' || status, ',' ORDER BY lead_id) FROM app.leads) || '|' ||
            (SELECT count(*) FROM app.events) || '|' ||
            (SELECT count(*) FROM crm.status_history)"
before=$(q -d $DB -At -c "$sig")

# pg_dump / restore: configuration, history and triggers come back
pg_dump -d $DB -Fc -f "$WORK/dump"
q -d postgres -c "CREATE DATABASE $DB2"
pg_restore -d $DB2 --exit-on-error "$WORK/dump"
expect "restored data and history equal the original" "$before" "$(q -d $DB2 -At -c "$sig")"
expect "restored configuration" "1|3|2|1" \
  "$(q -d $DB2 -At -c "SELECT (SELECT count(*) FROM crm.status_attachments) || '|' || (SELECT count(*) FROM crm.status_stages) || '|' ||
                              (SELECT count(*) FROM crm.status_event_rules) || '|' || (SELECT count(*) FROM crm.status_time_rules)")"
q -d $DB2 -c "INSERT INTO app.events (lead_id, kind) VALUES (60, 'email_sent')"
expect "restored triggers apply the rules" "contacted" "$(q -d $DB2 -At -c "SELECT status FROM app.leads WHERE lead_id = 60")"
expect "restored sweep" "40" "$(q -d $DB2 -At -c "SELECT crm.apply_time_rules('2025-03-01')")"
# a rule added by another session applies at once in a session that has the configuration cached
q -d $DB2 <<SQL
INSERT INTO app.events (lead_id, kind) VALUES (61, 'email_sent');
\\! psql -X -q -v ON_ERROR_STOP=1 -d $DB2 -c "INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES ('app.leads', 'poke', 'won')"
INSERT INTO app.events (lead_id, kind) VALUES (61, 'poke');
SQL
expect "a rule added by another session applies in a running session" "won" "$(q -d $DB2 -At -c "SELECT status FROM app.leads WHERE lead_id = 61")"
expect "new rule ids continue after the restored ones" "t" \
  "$(q -d $DB2 -At -c "INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES ('app.leads', 'x', 'won') RETURNING rule_id > 3")"

# DROP EXTENSION: refused while tables are attached (their triggers depend on it) ...
if q -d $DB -c "DROP EXTENSION crm_analytics" 2> "$WORK/drop.err"; then
    echo "not ok - DROP EXTENSION without CASCADE should be refused while attached"; bad=1
else
    grep -q 'depend' "$WORK/drop.err" && echo "ok - DROP EXTENSION without CASCADE is refused while attached" \
        || { echo "not ok - unexpected error: $(cat "$WORK/drop.err")"; bad=1; }
fi
expect "user data intact after the refused drop" "$before" "$(q -d $DB -At -c "$sig")"
# ... and with CASCADE it drops only the triggers
q -d $DB -c "DROP EXTENSION crm_analytics CASCADE" 2> /dev/null
expect "user tables and data intact after DROP EXTENSION CASCADE" "$(echo "$before" | cut -d'|' -f1-2)" \
  "$(q -d $DB -At -c "SELECT (SELECT string_agg(lead_id || ':' || status, ',' ORDER BY lead_id) FROM app.leads) || '|' || (SELECT count(*) FROM app.events)")"
expect "no trigger left on the user tables" "0" \
  "$(q -d $DB -At -c "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('app.leads'::regclass, 'app.events'::regclass) AND NOT tgisinternal")"
q -d $DB -c "INSERT INTO app.events (lead_id, kind) VALUES (70, 'paid'); UPDATE app.leads SET status = 'new' WHERE lead_id = 1"
expect "the user tables work without the extension" "1:new" "$(q -d $DB -At -c "SELECT lead_id || ':' || status FROM app.leads WHERE lead_id = 1")"
# and the extension can be created again
q -d $DB -c "CREATE EXTENSION crm_analytics"
expect "CREATE EXTENSION again" "0" "$(q -d $DB -At -c "SELECT count(*) FROM crm.status_attachments")"

for d in $DB $DB2; do q -d postgres -c "DROP DATABASE $d"; done
exit $bad
