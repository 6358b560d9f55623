#!/usr/bin/env bash
# test/dashboard_dump.sh: the source registry, the pipeline stages and the
# dashboard settings survive pg_dump / restore (pg_extension_config_dump),
# and the restored database answers the dashboard.
set -euo pipefail
bin=${PG_BINDIR:?}
src=crm_dash_dump_src; dst=crm_dash_dump_dst
psql() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" -c "CREATE DATABASE $src" -c "CREATE DATABASE $dst"
psql -d $src <<'SQL'
CREATE EXTENSION crm_analytics;
CREATE TABLE public.sp(channel text, month date, amount numeric);
INSERT INTO public.sp VALUES ('ads', '2025-12-01', 100);
SELECT crm.register_source('spend', 'SELECT channel, month, amount FROM public.sp');
INSERT INTO crm.pipeline_stages VALUES ('new', 1, 0.1, 'open'), ('won', 2, 1, 'won'), ('lost', 3, 0, 'lost');
SELECT crm.set_dashboard_period('2025-12-01', '2025-12-31');
SQL
"$bin/pg_dump" -d $src -f /tmp/crm_dash_dump.$$.sql
psql -d $dst -f /tmp/crm_dash_dump.$$.sql >/dev/null
rm -f /tmp/crm_dash_dump.$$.sql
got=$(psql -At -d $dst -c "SELECT (SELECT string_agg(kind || '=' || query, ';') FROM crm.sources)
                                 || '|' || (SELECT string_agg(stage || ':' || stage_order || ':' || probability || ':' || outcome, ',' ORDER BY stage_order) FROM crm.pipeline_stages)
                                 || '|' || (SELECT period_from || '..' || period_to FROM crm.dashboard_settings)")
want="spend=SELECT channel, month, amount FROM public.sp|new:1:0.1:open,won:2:1:won,lost:3:0:lost|2025-12-01..2025-12-31"
echo "restored: $got"
[ "$got" = "$want" ] || { echo "expected: $want"; exit 1; }
# the restored registry is usable
spend=$(psql -At -d $dst -c "SELECT spend FROM crm.dashboard_channels('2025-12-01', '2025-12-31')" 2>&1 || true)
echo "$spend" | grep -q 'source "customers" is not registered' || { echo "unexpected: $spend"; exit 1; }
psql -d postgres -c "DROP DATABASE $src" -c "DROP DATABASE $dst"
echo ok
