#!/usr/bin/env bash
# status_concurrency.sh: 8 clients insert 50,000 events (one per transaction)
# into an attached event table while two sessions run crm.apply_time_rules()
# in a loop.  Checks:
#   * final statuses = a serial replay of the same events through the
#     extension (second pair of attached tables), and = an independent
#     PL/pgSQL replay of the rules that does not use the extension;
#   * history: per entity a chain (each from = previous to) that ends in the
#     current status; for entities whose events are not touched by the sweep
#     the chain equals the serial replay's history row for row;
#   * no client or sweep error (deadlock or other), nothing crashed.
# Entities 1..8000 belong to one client each (their events keep one order);
# 8001..10000 get events from every client, with rules that commute
# (sent/paid/lost); 100001..102000 start 'contacted' with no history: half
# get one event (opened/paid) while the sweep runs, half are idle and must be
# swept to 'needs_recontact' exactly once.
set -euo pipefail
export PATH=$PG_BINDIR:$PATH
DB=status_conc
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d $DB "$@"; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q <<'SQL'
CREATE EXTENSION crm_analytics;
CREATE TABLE ent_a (id bigint PRIMARY KEY, status text);
CREATE TABLE ev_a (event_id bigserial PRIMARY KEY, entity bigint, kind text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE ent_b (LIKE ent_a INCLUDING ALL);
CREATE TABLE ev_b (LIKE ev_a INCLUDING ALL);
-- initial data: 10,000 'new' entities, 2,000 'contacted' ones (no history, no events)
INSERT INTO ent_a SELECT g, 'new' FROM generate_series(1, 10000) g;
INSERT INTO ent_a SELECT g, 'contacted' FROM generate_series(100001, 102000) g;
INSERT INTO ent_b SELECT * FROM ent_a;
CREATE TABLE initial AS SELECT * FROM ent_a;
CREATE UNIQUE INDEX ON initial (id);
-- the 'contacted' entities had their last event 7 days ago plus 0..20 s: they
-- turn idle one by one while the clients run (and half of them get an event)
INSERT INTO ev_a (entity, kind, at)
SELECT g, 'old', now() - interval '7 days' + (g - 100001) * interval '10 ms' FROM generate_series(100001, 102000) g;
INSERT INTO ev_b SELECT * FROM ev_a;

CREATE FUNCTION attach(t regclass, e regclass) RETURNS void LANGUAGE sql AS $$
SELECT crm.attach_auto_status(t, 'id', 'status',
       ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost'], e, 'entity', 'kind', 'at');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status)
SELECT t, k, f, s
  FROM (VALUES ('sent', '{new}'::text[], 'contacted'),
               ('opened', '{contacted,needs_recontact}', 'interested'),
               ('paid', NULL, 'won'),
               ('lost', NULL, 'lost')) r(k, f, s);
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
VALUES (t, 'contacted', '7 days', 'needs_recontact');
$$;
SELECT attach('ent_a', 'ev_a');

-- the workload: 8 clients x 6,250 events
SELECT setseed(0.42);
CREATE TABLE workload AS
SELECT c, row_number() OVER (PARTITION BY c ORDER BY ord) AS seq, entity, kind
  FROM (SELECT c, random() AS ord, (c * 1000 + 1 + floor(random() * 1000))::bigint AS entity,
               (ARRAY['sent', 'sent', 'opened', 'opened', 'paid', 'lost', 'other'])[1 + floor(random() * 7)::int] AS kind
          FROM generate_series(0, 7) c, generate_series(1, 5125) g
        UNION ALL
        SELECT c, random(), (8001 + floor(random() * 2000))::bigint,
               (ARRAY['sent', 'sent', 'sent', 'sent', 'paid', 'lost', 'other'])[1 + floor(random() * 7)::int]
          FROM generate_series(0, 7) c, generate_series(1, 1000) g
        UNION ALL
        SELECT i % 8, random(), 100001 + 2 * i, (ARRAY['opened', 'paid'])[1 + (i / 8) % 2]
          FROM generate_series(0, 999) i) w;
SQL
[ "$(q -At -c 'SELECT count(*) FROM workload')" = 50000 ] || { echo "workload is not 50,000 events"; exit 1; }
for c in 0 1 2 3 4 5 6 7; do
    q -At -c "SELECT format('INSERT INTO ev_a (entity, kind) VALUES (%s, %L);', entity, kind) FROM workload WHERE c = $c ORDER BY seq" > "$WORK/client$c.sql"
done

# two sweepers loop while the clients insert
touch "$WORK/running"
for s in 1 2; do
    ( n=0; while [ -f "$WORK/running" ]; do
          q -At -c "SELECT crm.apply_time_rules()" >> "$WORK/sweep$s.out"; n=$((n + 1))
      done; echo "$n" > "$WORK/sweep$s.runs" ) 2> "$WORK/sweep$s.err" &
    eval "sweeper$s=$!"
done
start=$(date +%s.%N)
pids=()
for c in 0 1 2 3 4 5 6 7; do
    q -f "$WORK/client$c.sql" > "$WORK/client$c.out" 2>&1 &
    pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
end=$(date +%s.%N)
rm -f "$WORK/running"
wait "$sweeper1" || fail=1
wait "$sweeper2" || fail=1
cat "$WORK"/client*.out "$WORK"/sweep*.err
if grep -qi 'deadlock' "$WORK"/client*.out "$WORK"/sweep*.err; then echo "deadlock detected"; fail=1; fi
[ $fail -eq 0 ] || { echo "a client or sweeper failed"; exit 1; }
echo "8 clients inserted 50,000 events in $(awk "BEGIN{printf \"%.1f\", $end - $start}") s;" \
     "sweeps run: $(cat "$WORK/sweep1.runs") + $(cat "$WORK/sweep2.runs")," \
     "entities moved by the concurrent sweeps: $(cat "$WORK"/sweep*.out | awk '{s+=$1} END{print s+0}')"
# a last sweep picks up what the concurrent ones skipped (a minute ahead, so
# every idle entity is idle by then and every event of the run is recent)
q -At -c "SELECT 'final sweep moved ' || crm.apply_time_rules(now() + interval '1 minute')"

# the serial replay through the extension (attached only now), then one sweep
t0=$(date +%s)
q <<'SQL'
SELECT attach('ent_b', 'ev_b');
DO $$
DECLARE w record;
BEGIN
    FOR w IN SELECT * FROM workload ORDER BY c, seq LOOP
        INSERT INTO ev_b (entity, kind) VALUES (w.entity, w.kind);
    END LOOP;
END $$;
SELECT crm.apply_time_rules(now() + interval '1 minute');
SQL
echo "serial replay: $(( $(date +%s) - t0 )) s"

# an independent replay of the rules in plain PL/pgSQL (no extension involved)
q <<'SQL'
CREATE TABLE ent_r AS SELECT * FROM initial;
CREATE UNIQUE INDEX ON ent_r (id);
DO $$
DECLARE
    w record;
    stages text[] := ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost'];
    cur text;
    target text;
BEGIN
    FOR w IN SELECT * FROM workload ORDER BY c, seq LOOP
        SELECT status INTO cur FROM ent_r WHERE id = w.entity;
        target := CASE w.kind
                    WHEN 'sent' THEN CASE WHEN cur = 'new' THEN 'contacted' END
                    WHEN 'opened' THEN CASE WHEN cur IN ('contacted', 'needs_recontact') THEN 'interested' END
                    WHEN 'paid' THEN 'won'
                    WHEN 'lost' THEN 'lost' END;
        IF target IS NOT NULL AND array_position(stages, target) > array_position(stages, cur) THEN
            UPDATE ent_r SET status = target WHERE id = w.entity;
        END IF;
    END LOOP;
    -- every event is recent: only entities without events are idle
    UPDATE ent_r SET status = 'needs_recontact'
     WHERE status = 'contacted' AND id NOT IN (SELECT entity FROM workload);
END $$;
SQL

check() {  # check NAME SQL: the query must return 0
    local got
    got=$(q -At -c "$2")
    if [ "$got" = 0 ]; then echo "ok - $1"; else echo "not ok - $1: $got"; bad=1; fi
}
bad=0
check "final statuses equal the serial replay through the extension" \
  "SELECT count(*) FROM ent_a a JOIN ent_b b USING (id) WHERE a.status IS DISTINCT FROM b.status"
check "final statuses equal the independent PL/pgSQL replay" \
  "SELECT count(*) FROM ent_a a JOIN ent_r r USING (id) WHERE a.status IS DISTINCT FROM r.status"
check "the replay moved something (test is not vacuous)" \
  "SELECT CASE WHEN count(DISTINCT status) = 6 THEN 0 ELSE 1 END FROM ent_r"
check "the 1,000 idle entities were swept, each exactly once" \
  "SELECT abs(count(*) - 1000) + abs(count(DISTINCT entity_key) - 1000) FROM crm.status_history
    WHERE entity_table = 'ent_a'::regclass AND to_status = 'needs_recontact'
      AND entity_key::bigint NOT IN (SELECT entity FROM workload)"
check "history is a chain per entity (no change twice, none missing)" \
  "SELECT count(*) FROM (SELECT from_status, lag(to_status) OVER w AS prev, row_number() OVER w AS n,
                                 i.status AS init
                            FROM crm.status_history h JOIN initial i ON i.id = h.entity_key::bigint
                           WHERE entity_table = 'ent_a'::regclass
                          WINDOW w AS (PARTITION BY entity_key ORDER BY history_id)) x
    WHERE (n = 1 AND from_status IS DISTINCT FROM init) OR (n > 1 AND from_status IS DISTINCT FROM prev)"
check "history ends in the current status" \
  "SELECT count(*) FROM ent_a a
     JOIN LATERAL (SELECT to_status FROM crm.status_history h WHERE h.entity_table = 'ent_a'::regclass
                    AND h.entity_key = a.id::text ORDER BY history_id DESC LIMIT 1) l ON true
    WHERE l.to_status IS DISTINCT FROM a.status"
check "entities with no history did not change" \
  "SELECT count(*) FROM ent_a a JOIN initial i USING (id)
    WHERE a.status IS DISTINCT FROM i.status
      AND a.id NOT IN (SELECT h.entity_key::bigint FROM crm.status_history h WHERE h.entity_table = 'ent_a'::regclass)"
check "history of entities 1..8000 (one client each) equals the serial replay's, row for row" \
  "SELECT count(*) FROM (
     (SELECT entity_key, from_status, to_status, row_number() OVER (PARTITION BY entity_key ORDER BY history_id)
        FROM crm.status_history WHERE entity_table = 'ent_a'::regclass AND entity_key::bigint <= 8000
      EXCEPT ALL
      SELECT entity_key, from_status, to_status, row_number() OVER (PARTITION BY entity_key ORDER BY history_id)
        FROM crm.status_history WHERE entity_table = 'ent_b'::regclass AND entity_key::bigint <= 8000)
     UNION ALL
     (SELECT entity_key, from_status, to_status, row_number() OVER (PARTITION BY entity_key ORDER BY history_id)
        FROM crm.status_history WHERE entity_table = 'ent_b'::regclass AND entity_key::bigint <= 8000
      EXCEPT ALL
      SELECT entity_key, from_status, to_status, row_number() OVER (PARTITION BY entity_key ORDER BY history_id)
        FROM crm.status_history WHERE entity_table = 'ent_a'::regclass AND entity_key::bigint <= 8000)) d"
check "at most one change per event" \
  "SELECT CASE WHEN (SELECT count(*) FROM crm.status_history WHERE entity_table = 'ent_a'::regclass AND rule_id IN
                      (SELECT rule_id FROM crm.status_event_rules)) <= 50000 THEN 0 ELSE 1 END"
check "all 50,000 events stored" "SELECT 50000 - count(*) FROM ev_a WHERE kind <> 'old'"
q -c "SELECT status, count(*) FROM ent_a GROUP BY 1 ORDER BY 1"
psql -X -q -d postgres -c "DROP DATABASE $DB"
exit $bad
