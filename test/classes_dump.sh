#!/usr/bin/env bash
# classes: pg_dump keeps the RFM segment overrides (crm.rfm_segment_overrides is
# registered with pg_extension_config_dump) and a restore reproduces the map.
set -euo pipefail
B=${PG_BINDIR:?}
src=classes_dump_src; dst=classes_dump_dst
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" \
     -c "CREATE DATABASE $src" -c "CREATE DATABASE $dst"
psql -X -q -v ON_ERROR_STOP=1 -d $src -c "CREATE EXTENSION crm_analytics" \
     -c "INSERT INTO crm.rfm_segment_overrides VALUES (5, 5, 'VIP'), (1, 1, 'Lost')"
"$B/pg_dump" -Fc -d $src -f /tmp/classes_dump.$$.dump
"$B/pg_restore" -d $dst /tmp/classes_dump.$$.dump
rm -f /tmp/classes_dump.$$.dump
got=$(psql -X -qAt -d $dst -c "SELECT string_agg(r || ',' || f || '=' || segment, ' ' ORDER BY r, f) FROM crm.rfm_segment_map WHERE overridden")
want="1,1=Lost 5,5=VIP"
psql -X -q -d postgres -c "DROP DATABASE $src" -c "DROP DATABASE $dst"
if [ "$got" != "$want" ]; then echo "after restore: '$got', expected '$want'"; exit 1; fi
echo "overrides survived pg_dump/pg_restore: $got"
