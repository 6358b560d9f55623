#!/usr/bin/env bash
# status_paths: the event trigger locks the entity row through the key's unique index in
# READ COMMITTED, and with its kept lock statement otherwise (REPEATABLE READ, an entity table
# whose key is unique only through a deferrable constraint, an event column of another type than the key, row
# security).  The same events replayed on copies of one entity table, each through another
# path, must give the same statuses and the same history (from, to, rule, actor per entity,
# in order), and both must equal an independent PL/pgSQL replay of the rules.  Each table's
# events must also take the path meant for it (the fast path's code is src/pg_lock.c).
set -euo pipefail
: "${PG_BINDIR:?}"
db=crm_status_paths
psql() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
psql -d $db <<'SQL'
CREATE EXTENSION crm_analytics;
SELECT setseed(0.7);
CREATE TABLE workload AS
SELECT g AS seq, 1 + floor(random() * 300)::bigint AS entity,
       (ARRAY['sent', 'sent', 'opened', 'opened', 'paid', 'lost', 'other'])[1 + floor(random() * 7)::int] AS kind
  FROM generate_series(1, 3000) g;
CREATE FUNCTION setup(ent text, ev text, keydef text, evtype text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %I (id bigint %s, status text)', ent, keydef);
    EXECUTE format('INSERT INTO %I SELECT g, ''new'' FROM generate_series(1, 300) g', ent);
    EXECUTE format('CREATE TABLE %I (event_id bigserial PRIMARY KEY, entity %s, kind text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())', ev, evtype);
    PERFORM crm.attach_auto_status(ent::regclass, 'id', 'status',
            ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost'], ev::regclass, 'entity', 'kind', 'at');
    INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status)
    SELECT ent::regclass, k, f, s
      FROM (VALUES ('sent', '{new}'::text[], 'contacted'), ('opened', '{contacted,needs_recontact}', 'interested'),
                   ('paid', NULL, 'won'), ('lost', NULL, 'lost')) r(k, f, s);
END $$;
SELECT setup('ent_rc', 'ev_rc', 'PRIMARY KEY', 'bigint');        -- direct lock
SELECT setup('ent_rr', 'ev_rr', 'PRIMARY KEY', 'bigint');        -- lock statement (REPEATABLE READ)
SELECT setup('ent_noidx', 'ev_noidx', 'UNIQUE DEFERRABLE', 'bigint'); -- lock statement (deferrable unique key)
SELECT setup('ent_int', 'ev_int', 'PRIMARY KEY', 'int');         -- lock statement (int events, bigint key)
SELECT setup('ent_rls', 'ev_rls', 'PRIMARY KEY', 'bigint');      -- lock statement (row security)
ALTER TABLE ent_rls ENABLE ROW LEVEL SECURITY;
-- independent replay: the rules in plain PL/pgSQL (forward-only stages, first matching rule)
CREATE TABLE expected AS SELECT g::bigint AS id, 'new'::text AS status FROM generate_series(1, 300) g;
DO $$
DECLARE w record; cur text; pos constant text[] := ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost']; nxt text;
BEGIN
    FOR w IN SELECT * FROM workload ORDER BY seq LOOP
        SELECT status INTO cur FROM expected WHERE id = w.entity;
        nxt := CASE WHEN w.kind = 'sent' AND cur = 'new' THEN 'contacted'
                    WHEN w.kind = 'opened' AND cur IN ('contacted', 'needs_recontact') THEN 'interested'
                    WHEN w.kind = 'paid' THEN 'won' WHEN w.kind = 'lost' THEN 'lost' END;
        IF nxt IS NOT NULL AND nxt <> cur AND array_position(pos, nxt) > array_position(pos, cur) THEN
            UPDATE expected SET status = nxt WHERE id = w.entity;
        END IF;
    END LOOP;
END $$;
SQL
# which path locked the entity row (a DEBUG1 message of src/pg_lock.c or of the fallback in
# src/status_trigger.c), for one rule-bearing event in a transaction that is rolled back
lock_path() {  # lock_path EVENT_TABLE ISOLATION
    { psql -d $db -c "BEGIN ISOLATION LEVEL $2" -c "SET LOCAL client_min_messages = debug1" \
          -c "INSERT INTO $1 (entity, kind) VALUES (1, 'paid')" -c "ROLLBACK" 2>&1 || true; } \
        | grep -o 'locked through index\|locked with the kept lock statement' | sort -u | tr '\n' ';' || true
}
check_path() {  # check_path EVENT_TABLE ISOLATION EXPECTED
    got=$(lock_path "$1" "$2")
    [ "$got" = "$3;" ] && echo "ok - $1 ($2): entity row $3" || echo "not ok - $1 ($2): expected '$3', got '$got'"
}
check_path ev_rc "READ COMMITTED" "locked through index"
check_path ev_rr "REPEATABLE READ" "locked with the kept lock statement"
check_path ev_noidx "READ COMMITTED" "locked with the kept lock statement"
check_path ev_int "READ COMMITTED" "locked with the kept lock statement"
check_path ev_rls "READ COMMITTED" "locked with the kept lock statement"
replay() {  # replay EVENT_TABLE ISOLATION: one event per transaction, in workload order
    psql -d $db -At -c "SELECT format('BEGIN ISOLATION LEVEL $2; INSERT INTO $1 (entity, kind) VALUES (%s, %L); COMMIT;', entity, kind) FROM workload ORDER BY seq" \
        | psql -d $db
}
replay ev_rc "READ COMMITTED"
replay ev_rr "REPEATABLE READ"
replay ev_noidx "READ COMMITTED"
replay ev_int "READ COMMITTED"
replay ev_rls "READ COMMITTED"
for t in ent_rc ent_rr ent_noidx ent_int ent_rls; do
    bad=$(psql -d $db -At -c "SELECT count(*) FROM $t e FULL JOIN expected x USING (id) WHERE e.status IS DISTINCT FROM x.status")
    [ "$bad" = 0 ] && echo "ok - $t: statuses equal the independent replay" || echo "not ok - $t: $bad statuses differ from the independent replay"
    hist=$(psql -d $db -At <<SQL
WITH h AS (SELECT entity_key, from_status, to_status, actor, rule_id - (SELECT min(rule_id) FROM crm.status_event_rules WHERE entity_table = '$t'::regclass) AS r,
                  row_number() OVER (PARTITION BY entity_key ORDER BY history_id) AS n
             FROM crm.status_history WHERE entity_table = '$t'::regclass AND rule_id IS NOT NULL),
     b AS (SELECT entity_key, from_status, to_status, actor, rule_id - (SELECT min(rule_id) FROM crm.status_event_rules WHERE entity_table = 'ent_rc'::regclass) AS r,
                  row_number() OVER (PARTITION BY entity_key ORDER BY history_id) AS n
             FROM crm.status_history WHERE entity_table = 'ent_rc'::regclass AND rule_id IS NOT NULL)
SELECT count(*) FROM h FULL JOIN b USING (entity_key, n) WHERE (h.from_status, h.to_status, h.actor, h.r) IS DISTINCT FROM (b.from_status, b.to_status, b.actor, b.r)
SQL
)
    [ "$hist" = 0 ] && echo "ok - $t: history equals the direct path's, row for row" || echo "not ok - $t: $hist history rows differ"
done
# one history row per change: the chain of each entity ends in its status
bad=$(psql -d $db -At -c "SELECT count(*) FROM ent_rc e WHERE e.status <> 'new' AND e.status IS DISTINCT FROM (SELECT h.to_status FROM crm.status_history h WHERE h.entity_table = 'ent_rc'::regclass AND h.entity_key = e.id::text ORDER BY h.history_id DESC LIMIT 1)")
[ "$bad" = 0 ] && echo "ok - direct path: each history chain ends in the current status" || echo "not ok - $bad chains do not end in the current status"
