#!/usr/bin/env bash
# dump_restore.sh (hardening): every extension table that holds configuration
# or history (discovered from pg_extension.extconfig) is filled through the
# capabilities' own API where it exists (load_demo, attach_auto_status and
# rules, attach_coverage and policies, RFM overrides, registered sources,
# pipeline stages, dashboard period, plans), dumped with pg_dump and restored into
# fresh databases twice: custom format through pg_restore, plain SQL through
# psql.  Every row of every config table must come back (md5 over the ordered
# rows: zero lost, zero changed), every config sequence at the same position,
# the user's tables and the triggers the attach functions installed too.
#
#   bash test/dump_restore.sh                 the test
#   bash test/dump_restore.sh --fill-only DB  only fill DB (used by upgrade.sh)
# Env: PGHOST/PGPORT/PGUSER, PG_BINDIR.
set -euo pipefail
export PATH=$PG_BINDIR:$PATH
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# fill DB: the extension must be installed in it
fill() {
    local db=$1
    q -d "$db" <<'SQL'
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = 'load_demo') AS has_demo,
       to_regclass('crm.rfm_segment_overrides') IS NOT NULL AS has_rfm,
       EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = 'attach_coverage') AS has_coverage,
       EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = 'attach_auto_status') AS has_status,
       EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = 'register_source') AS has_sources,
       to_regclass('crm.pipeline_stages') IS NOT NULL AS has_stages,
       EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = 'set_dashboard_period') AS has_period,
       EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = 'set_plan') AS has_plans
\gset
\if :has_demo
SELECT count(*) AS demo_relations FROM crm.load_demo(300, 7, '2025-12-31');
\else
CREATE SCHEMA crm_demo;
CREATE TABLE crm_demo.customers (customer_id bigint PRIMARY KEY, lead_id bigint, name text, channel text, manager_id int, created_at timestamptz);
INSERT INTO crm_demo.customers SELECT g, g, 'c' || g, 'web', g % 3, timestamptz '2025-01-01' + g * interval '1 day' FROM generate_series(1, 300) g;
CREATE TABLE crm_demo.deals (deal_id bigint PRIMARY KEY, stage text);
INSERT INTO crm_demo.deals SELECT g, 'lead' FROM generate_series(1, 300) g;
CREATE TABLE crm_demo.deal_events (deal_id bigint, changed_at timestamptz, stage text);
INSERT INTO crm_demo.deal_events SELECT g, timestamptz '2025-02-01' + g * interval '1 hour', 'qualified' FROM generate_series(1, 300, 2) g;
CREATE TABLE crm_demo.interactions (interaction_id bigint PRIMARY KEY, customer_id bigint, lead_id bigint, manager_id int,
                                    kind text, direction text, automated boolean, occurred_at timestamptz);
\endif
\if :has_rfm
INSERT INTO crm.rfm_segment_overrides (r, f, segment) VALUES (5, 5, 'VIP ''quoted'' ; segment'), (1, 1, E'Lost\ttab');
\endif
\if :has_coverage
UPDATE crm.coverage_policy SET max_interval = '2 months', due_soon = '10 days' WHERE class = 'A';
INSERT INTO crm.coverage_policy (class, max_interval, due_soon) VALUES ('VIP', '14 days', '3 days');
CREATE TABLE public.cov_interactions AS SELECT * FROM crm_demo.interactions WHERE false;
SELECT crm.attach_coverage('public.cov_interactions', customers => 'crm_demo.customers');
INSERT INTO public.cov_interactions SELECT * FROM crm_demo.interactions ORDER BY occurred_at, interaction_id;
\endif
\if :has_status
CREATE SCHEMA app;
CREATE TABLE app."Deals" (deal_id bigint PRIMARY KEY, stage text NOT NULL);
INSERT INTO app."Deals" SELECT deal_id, 'lead' FROM crm_demo.deals;
CREATE TABLE app.deal_events (deal_id bigint, stage text, changed_at timestamptz);
SELECT crm.attach_auto_status('app."Deals"', 'deal_id', 'stage', ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid', 'lost'],
                              'app.deal_events', 'deal_id', 'stage', 'changed_at');
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status)
SELECT 'app."Deals"', s, s FROM unnest(ARRAY['qualified', 'proposal', 'invoice', 'paid', 'lost']) s;
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES ('app."Deals"', 'proposal', '30 days', 'lost');
INSERT INTO crm.status_transitions (entity_table, from_status, to_status, allowed) VALUES ('app."Deals"', 'lost', 'qualified', true), ('app."Deals"', 'lead', 'paid', false);
INSERT INTO app.deal_events SELECT deal_id, stage, changed_at FROM crm_demo.deal_events ORDER BY changed_at, deal_id;
SELECT crm.apply_time_rules('2026-06-01') AS swept;
\endif
\if :has_sources
SELECT count(*) AS sources FROM crm.sources \gset
\if :has_demo
\else
SELECT crm.register_source(kind, query) FROM (VALUES ('stage_events', 'SELECT deal_id, changed_at, stage, NULL::numeric, NULL::int, NULL::text FROM crm_demo.deal_events')) v(kind, query);
\endif
\endif
\if :has_stages
INSERT INTO crm.pipeline_stages SELECT 'hardening_extra', 99, 0.5, 'open' WHERE NOT EXISTS (SELECT 1 FROM crm.pipeline_stages WHERE stage_order = 99);
\endif
\if :has_period
SELECT crm.set_dashboard_period('2025-11-01', '2025-11-30');
\endif
\if :has_plans
SELECT crm.set_plan('revenue', '2025-11-01', '2025-11-30', 123456.78);
SELECT crm.set_plan('revenue', '2025-11-01', '2025-11-30', 20000, 'channel', 'O''Brien "quoted" ; channel');
SELECT crm.set_plan('win_rate', '2025-10-01', '2025-12-31', 27.5, 'manager', '3');
\endif
-- issue 20 (todo): the announced to-do items
SELECT to_regclass('crm.todo_announced') IS NOT NULL AND EXISTS (SELECT 1 FROM crm.sources WHERE kind = 'invoices') AS has_todo \gset
\if :has_todo
SELECT crm.notify_todo('2026-01-01') AS announced;
\endif
SQL
}

if [ "${1:-}" = --fill-only ]; then fill "$2"; exit 0; fi

SRC=hard_dump_src; DST1=hard_dump_custom; DST2=hard_dump_plain
WORK=$(mktemp -d); chmod 777 "$WORK"
cleanup() { for d in $SRC $DST1 $DST2; do q -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done; rm -rf "$WORK"; }
[ -n "${DUMP_KEEP:-}" ] || trap cleanup EXIT
for d in $SRC $DST1 $DST2; do q -d postgres -c "DROP DATABASE IF EXISTS $d"; done
q -d postgres -c "CREATE DATABASE $SRC"
q -d $SRC -c "CREATE EXTENSION crm_analytics"
fill $SRC > "$WORK/fill.log"

# fingerprint of a database: every config table (rows, md5 of the ordered rows),
# every config sequence (last_value, is_called), every table outside crm, the
# triggers on tables outside crm
cat > "$WORK/fingerprint.sql" <<'SQL'
CREATE TEMP TABLE fp (what text, n bigint, digest text);
DO $do$
DECLARE
    r record;
    n bigint;
    d text;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel, c.relkind
               FROM pg_extension e, unnest(e.extconfig) x(oid) JOIN pg_class c ON c.oid = x.oid
              WHERE e.extname = 'crm_analytics'
             UNION
             SELECT c.oid::regclass, c.relkind FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND s.nspname NOT IN ('crm', 'pg_catalog', 'information_schema') AND s.nspname NOT LIKE 'pg\_%'
    LOOP
        IF r.relkind = 'S' THEN
            EXECUTE format('SELECT last_value, is_called::text FROM %s', r.rel) INTO n, d;
        ELSE
            EXECUTE format('SELECT count(*), md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM %s t', r.rel) INTO n, d;
        END IF;
        INSERT INTO fp VALUES (r.rel::text, n, d);
    END LOOP;
    INSERT INTO fp SELECT 'triggers', count(*), md5(coalesce(string_agg(format('%s %s %s %s', t.tgrelid::regclass, t.tgname, t.tgfoid::regprocedure, t.tgenabled), ',' ORDER BY t.tgrelid::regclass::text, t.tgname), ''))
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE NOT t.tgisinternal AND c.relnamespace <> 'crm'::regnamespace;
END
$do$;
SELECT what || ' ' || n || ' ' || digest FROM fp ORDER BY what;
SQL
fingerprint() { q -d "$1" -At -f "$WORK/fingerprint.sql"; }

bad=0
# every config table holds rows: the test covers it (sequences may be fresh)
empty=$(q -d $SRC -At -c "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_extension e, unnest(e.extconfig) x(oid) JOIN pg_class c ON c.oid = x.oid
                           WHERE e.extname = 'crm_analytics' AND c.relkind IN ('r', 'p')
                             AND (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass), false, true, '')))[1]::text::bigint = 0")
nconf=$(q -d $SRC -At -c "SELECT count(*) FROM pg_extension e, unnest(e.extconfig) x WHERE e.extname = 'crm_analytics'")
echo "config tables and sequences: $nconf"
if [ -n "$empty" ]; then echo "not ok - config tables left empty by the fill (teach fill() in test/dump_restore.sh to fill them): $empty"; bad=1
else echo "ok - every config table holds rows before the dump"; fi

fingerprint $SRC > "$WORK/src.fp"
cat "$WORK/src.fp"

# custom format -> pg_restore
pg_dump -d $SRC -Fc -f "$WORK/dump.custom"
q -d postgres -c "CREATE DATABASE $DST1"
if pg_restore -d $DST1 --exit-on-error "$WORK/dump.custom" 2> "$WORK/restore1.err"; then echo "ok - pg_restore of the custom-format dump"
else echo "not ok - pg_restore failed:"; head -20 "$WORK/restore1.err"; bad=1; fi
fingerprint $DST1 > "$WORK/dst1.fp"
if diff "$WORK/src.fp" "$WORK/dst1.fp"; then echo "ok - custom format: every config row, sequence, user table and trigger restored unchanged"
else echo "not ok - custom format: restored database differs (< original, > restored)"; bad=1; fi

# plain format -> psql
pg_dump -d $SRC -f "$WORK/dump.sql"
q -d postgres -c "CREATE DATABASE $DST2"
if psql -X -q -v ON_ERROR_STOP=1 -d $DST2 -f "$WORK/dump.sql" > "$WORK/restore2.log" 2>&1; then echo "ok - psql restore of the plain dump"
else echo "not ok - psql restore of the plain dump failed:"; grep -m5 ERROR "$WORK/restore2.log"; bad=1; fi
fingerprint $DST2 > "$WORK/dst2.fp"
if diff "$WORK/src.fp" "$WORK/dst2.fp"; then echo "ok - plain format: every config row, sequence, user table and trigger restored unchanged"
else echo "not ok - plain format: restored database differs (< original, > restored)"; bad=1; fi

# the restored databases still work: a new stage event moves a deal, a new interaction updates coverage
if q -d $DST1 -At -c "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = 'attach_auto_status')" | grep -q t; then
    got=$(q -d $DST1 -At -c "INSERT INTO app.deal_events SELECT deal_id, 'qualified', '2026-07-01' FROM app.\"Deals\" WHERE stage = 'lead' ORDER BY deal_id LIMIT 1 RETURNING deal_id" | head -1)
    if [ -n "$got" ] && [ "$(q -d $DST1 -At -c "SELECT stage FROM app.\"Deals\" WHERE deal_id = $got")" = qualified ]; then echo "ok - restored status trigger moves a deal"
    else echo "not ok - restored status trigger did not move deal $got"; bad=1; fi
fi
if q -d $DST1 -At -c "SELECT to_regclass('public.cov_interactions') IS NOT NULL" | grep -q t; then
    got=$(q -d $DST1 -At -c "INSERT INTO public.cov_interactions (interaction_id, customer_id, manager_id, kind, direction, automated, occurred_at)
                             SELECT 99999999, customer_id, 1, 'call', 'outbound', false, '2026-07-01' FROM crm.coverage ORDER BY customer_id LIMIT 1 RETURNING customer_id")
    got=$(echo "$got" | head -1)
    if [ "$(q -d $DST1 -At -c "SELECT last_contact = '2026-07-01' FROM crm.coverage WHERE customer_id = $got")" = t ]; then echo "ok - restored coverage trigger records a contact"
    else echo "not ok - restored coverage trigger did not record the contact of customer $got"; bad=1; fi
fi
exit $bad
