#!/usr/bin/env bash
# upgrade.sh (hardening): the upgrade path of crm_analytics.
# When the installation holds more than one version (full scripts
# crm_analytics--X.sql plus upgrade scripts crm_analytics--A--B.sql), for
# every full-script version older than the default one:
#   1. install it, fill every config table (test/dump_restore.sh --fill-only),
#      ALTER EXTENSION crm_analytics UPDATE through the chain to the default;
#   2. the catalog of the extension (every member object, functions with
#      signatures, attributes, bodies and comments, aggregates, types, tables
#      and columns, constraints, indexes, views, grants, config registration)
#      is identical to a fresh install of the default version;
#   3. the config rows filled before the upgrade are all still there;
#   4. the pgTAP suite (test/*.sql) passes on an upgraded install with the
#      demo data (CRM_UPGRADE_SUITE=0 skips this step).
# With a single version it says so and passes (after checking that two fresh
# installs compare equal, so the comparison itself is exercised).
# Env: PGHOST/PGPORT/PGUSER, PG_BINDIR.
set -euo pipefail
export PATH=$PG_BINDIR:$PATH
HERE=$(cd "$(dirname "$0")" && pwd)
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
WORK=$(mktemp -d); chmod 777 "$WORK"
DBS=(hard_up_fresh hard_up_fresh2 hard_up_old hard_up_tap)
cleanup() { for d in "${DBS[@]}"; do q -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
for d in "${DBS[@]}"; do q -d postgres -c "DROP DATABASE IF EXISTS $d" 2>/dev/null; done

extdir=$(pg_config --sharedir)/extension
default=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$extdir/crm_analytics.control")
# full-script versions, oldest first
mapfile -t fulls < <(ls "$extdir" | sed -n 's/^crm_analytics--\([^-]*\)\.sql$/\1/p' | sort -V)
echo "default version: $default; full scripts: ${fulls[*]}; upgrade scripts: $(ls "$extdir" | grep -cE '^crm_analytics--[^-]+--[^-]+\.sql$' || true)"

# the extension's catalog, one line per fact, free of OIDs
cat > "$WORK/catalog.sql" <<'SQL'
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'crm_analytics'),
mem AS (SELECT d.classid, d.objid FROM pg_depend d, ext WHERE d.deptype = 'e' AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid)
SELECT line FROM (
  SELECT 'member ' || pg_describe_object(classid, objid, 0) AS line FROM mem
  UNION ALL
  SELECT format('function %s kind=%s returns=%s args=%s lang=%s strict=%s volatile=%s parallel=%s secdef=%s config=%s leakproof=%s cost=%s rows=%s body=%s bin=%s acl=%s comment=%s',
                p.oid::regprocedure, p.prokind, pg_get_function_result(p.oid), pg_get_function_arguments(p.oid), l.lanname, p.proisstrict,
                p.provolatile, p.proparallel, p.prosecdef, p.proconfig, p.proleakproof, p.procost, p.prorows, md5(p.prosrc),
                p.probin, p.proacl, md5(coalesce(obj_description(p.oid, 'pg_proc'), '')))
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid IN (SELECT objid FROM mem WHERE classid = 'pg_proc'::regclass)
  UNION ALL
  SELECT format('aggregate %s trans=%s combine=%s final=%s serial=%s deserial=%s stype=%s space=%s init=%s finalextra=%s modify=%s',
                a.aggfnoid::regprocedure, a.aggtransfn::regprocedure, a.aggcombinefn::regprocedure, a.aggfinalfn::regprocedure,
                a.aggserialfn::regprocedure, a.aggdeserialfn::regprocedure, format_type(a.aggtranstype, NULL), a.aggtransspace,
                a.agginitval, a.aggfinalextra, a.aggfinalmodify)
    FROM pg_aggregate a WHERE a.aggfnoid IN (SELECT objid FROM mem WHERE classid = 'pg_proc'::regclass)
  UNION ALL
  SELECT format('type %s typtype=%s len=%s byval=%s align=%s storage=%s in=%s out=%s recv=%s send=%s typmod_in=%s cat=%s acl=%s comment=%s',
                format_type(t.oid, NULL), t.typtype, t.typlen, t.typbyval, t.typalign, t.typstorage, t.typinput::regprocedure,
                t.typoutput::regprocedure, t.typreceive::regprocedure, t.typsend::regprocedure, t.typmodin, t.typcategory, t.typacl,
                md5(coalesce(obj_description(t.oid, 'pg_type'), '')))
    FROM pg_type t WHERE t.oid IN (SELECT objid FROM mem WHERE classid = 'pg_type'::regclass)
  UNION ALL
  SELECT format('relation %s kind=%s options=%s persistence=%s rls=%s acl=%s comment=%s view=%s',
                c.oid::regclass, c.relkind, c.reloptions, c.relpersistence, c.relrowsecurity, c.relacl,
                md5(coalesce(obj_description(c.oid, 'pg_class'), '')),
                CASE WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid)) END)
    FROM pg_class c WHERE c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
  UNION ALL
  SELECT format('column %s.%s #%s type=%s notnull=%s default=%s identity=%s generated=%s comment=%s',
                c.oid::regclass, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
                md5(coalesce(col_description(c.oid, a.attnum), '')))
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
   WHERE c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass) OR c.reltype IN (SELECT objid FROM mem WHERE classid = 'pg_type'::regclass)
  UNION ALL
  SELECT format('constraint %s %s %s', co.conrelid::regclass, co.conname, pg_get_constraintdef(co.oid))
    FROM pg_constraint co WHERE co.conrelid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i WHERE i.indrelid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
  UNION ALL
  SELECT format('trigger %s %s', tg.tgrelid::regclass, pg_get_triggerdef(tg.oid))
    FROM pg_trigger tg WHERE NOT tg.tgisinternal AND tg.tgrelid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
  UNION ALL
  SELECT format('policy %s %s %s', po.polrelid::regclass, po.polname, pg_get_expr(po.polqual, po.polrelid))
    FROM pg_policy po WHERE po.polrelid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
  UNION ALL
  SELECT format('config %s filter=%s', x.rel::regclass, x.cond)
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) x(rel, cond) WHERE e.extname = 'crm_analytics'
  UNION ALL
  SELECT format('schema crm acl=%s', nspacl) FROM pg_namespace WHERE nspname = 'crm'
) s ORDER BY line;
SQL
catalog() { q -d "$1" -At -f "$WORK/catalog.sql"; }
bad=0

q -d postgres -c "CREATE DATABASE hard_up_fresh"
q -d hard_up_fresh -c "CREATE EXTENSION crm_analytics"
catalog hard_up_fresh > "$WORK/fresh.cat"
echo "catalog of a fresh install of $default: $(wc -l < "$WORK/fresh.cat") lines"

older=()
for v in "${fulls[@]}"; do [ "$v" != "$default" ] && older+=("$v"); done
if [ ${#older[@]} -eq 0 ]; then
    echo "one version ($default): nothing to upgrade"
    q -d postgres -c "CREATE DATABASE hard_up_fresh2"
    q -d hard_up_fresh2 -c "CREATE EXTENSION crm_analytics"
    if diff "$WORK/fresh.cat" <(catalog hard_up_fresh2) > /dev/null; then echo "ok - two fresh installs have identical catalogs (the comparison works)"
    else echo "not ok - two fresh installs differ: the catalog comparison is not deterministic"; bad=1; fi
    exit $bad
fi

for old in "${older[@]}"; do
    echo "== $old -> $default"
    path=$(q -d hard_up_fresh -At -c "SELECT path FROM pg_extension_update_paths('crm_analytics') WHERE source = '$old' AND target = '$default'")
    if [ -z "$path" ]; then echo "not ok - no update path from $old to $default"; bad=1; continue; fi
    echo "update path: $path"
    q -d postgres -c "DROP DATABASE IF EXISTS hard_up_old" -c "CREATE DATABASE hard_up_old"
    q -d hard_up_old -c "CREATE EXTENSION crm_analytics VERSION '$old'"
    bash "$HERE/dump_restore.sh" --fill-only hard_up_old > "$WORK/fill.log" 2>&1 || { echo "(fill of $old partly failed: $(grep -m1 ERROR "$WORK/fill.log"))"; }
    rows="SELECT string_agg(format('%s %s', x::regclass, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', x::regclass), false, true, '')))[1]), ', ' ORDER BY x::regclass::text)
            FROM pg_extension e, unnest(e.extconfig) x WHERE e.extname = 'crm_analytics'"
    before=$(q -d hard_up_old -At -c "$rows")
    if q -d hard_up_old -c "ALTER EXTENSION crm_analytics UPDATE" 2> "$WORK/update.err"; then echo "ok - ALTER EXTENSION UPDATE from $old"
    else echo "not ok - ALTER EXTENSION UPDATE from $old failed:"; cat "$WORK/update.err"; bad=1; continue; fi
    got=$(q -d hard_up_old -At -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_analytics'")
    [ "$got" = "$default" ] && echo "ok - installed version is now $default" || { echo "not ok - version after update: $got"; bad=1; }
    catalog hard_up_old > "$WORK/upgraded.cat"
    if diff "$WORK/fresh.cat" "$WORK/upgraded.cat" > "$WORK/cat.diff"; then echo "ok - catalog after $old -> $default = fresh $default"
    else echo "not ok - catalog after $old -> $default differs from a fresh install (< fresh, > upgraded):"; head -60 "$WORK/cat.diff"; bad=1; fi
    # config rows: every table of the old version keeps its rows (new tables may be added)
    after=$(q -d hard_up_old -At -c "$rows")
    missing=$(comm -23 <(echo "$before" | tr ',' '\n' | sed 's/^ //' | sort) <(echo "$after" | tr ',' '\n' | sed 's/^ //' | sort) || true)
    [ -z "$missing" ] && echo "ok - config row counts kept by the upgrade" || { echo "not ok - config rows changed by the upgrade: $missing"; bad=1; }
    # an interactions table attached before the upgrade has every coverage trigger after it
    trg=$(q -d hard_up_old -At -c "SELECT coalesce(string_agg(t.tgname, ' ' ORDER BY t.tgname), '')
            FROM crm.coverage_config c JOIN pg_trigger t ON t.tgrelid = c.interactions WHERE t.tgname LIKE 'crm_coverage%'" 2>/dev/null || true)
    if [ -n "$trg" ]; then
        [ "$trg" = "crm_coverage crm_coverage_delete crm_coverage_truncate crm_coverage_update" ] && echo "ok - attached interactions table has the coverage triggers: $trg" \
            || { echo "not ok - coverage triggers after the upgrade: $trg"; bad=1; }
    fi

    if [ "${CRM_UPGRADE_SUITE:-1}" != 0 ]; then
        q -d postgres -c "DROP DATABASE IF EXISTS hard_up_tap" -c "CREATE DATABASE hard_up_tap"
        q -d hard_up_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION crm_analytics VERSION '$old'" -c "ALTER EXTENSION crm_analytics UPDATE"
        q -d hard_up_tap -c "SELECT crm.load_demo(2000, 42, '2025-12-31') WHERE to_regprocedure('crm.load_demo(int,int,date)') IS NOT NULL" > /dev/null
        if pg_prove -d hard_up_tap "$HERE"/*.sql > "$WORK/suite.log" 2>&1; then echo "ok - the pgTAP suite passes on the install upgraded from $old"
        else echo "not ok - the pgTAP suite on the install upgraded from $old:"; grep -E 'not ok|Failed|Result' "$WORK/suite.log" | head -30; bad=1; fi
    fi
done
exit $bad
