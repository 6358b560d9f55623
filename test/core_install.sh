#!/usr/bin/env bash
# CREATE EXTENSION into a foreign schema "crm" fails cleanly; DROP EXTENSION leaves nothing
# of ours behind (only the empty schema PostgreSQL made); a second CREATE works.
set -u
db=crm_core_install
fails=0
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db "$@"; }
check() { if [ "$(q -c "$2" 2>&1)" = "${3:-t}" ]; then echo "ok - $1"; else echo "not ok - $1: $(q -c "$2" 2>&1)"; fails=$((fails + 1)); fi; }

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q -c "CREATE SCHEMA crm" -c "CREATE TABLE crm.customers_of_someone_else (id int)"
err=$(psql -X -q -d $db -v VERBOSITY=verbose -c "CREATE EXTENSION crm_analytics" 2>&1)
if grep -q '42P06' <<<"$err" && grep -q 'schema "crm" already exists and does not belong to crm_analytics' <<<"$err"; then
    echo "ok - a schema crm holding other objects is refused with 42P06"
else
    echo "not ok - foreign schema crm: $err"; fails=$((fails + 1))
fi
check "the user's table is untouched" "SELECT to_regclass('crm.customers_of_someone_else') IS NOT NULL"
check "nothing of ours was created" "SELECT count(*) FROM pg_extension WHERE extname = 'crm_analytics'" 0

q -c "DROP TABLE crm.customers_of_someone_else" -c "DROP SCHEMA crm"
q -c "CREATE EXTENSION crm_analytics"
check "CREATE EXTENSION creates schema crm" "SELECT extnamespace = 'crm'::regnamespace FROM pg_extension WHERE extname = 'crm_analytics'"
check "the demo loads" "SELECT row_count FROM crm.load_demo(50, 1, '2025-06-30') WHERE relation = 'crm_demo.customers'" 50
q -c "CREATE TABLE public.mine AS SELECT 1 AS x"
q -c "DROP EXTENSION crm_analytics CASCADE" 2>/dev/null
check "DROP EXTENSION removes every object in crm" \
    "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'crm'::regnamespace)
          + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'crm'::regnamespace)
          + (SELECT count(*) FROM pg_type WHERE typnamespace = 'crm'::regnamespace)" 0
check "DROP EXTENSION keeps the user's data (crm_demo, public)" \
    "SELECT (SELECT count(*) FROM crm_demo.customers) = 50 AND (SELECT x FROM public.mine) = 1"
q -c "CREATE EXTENSION crm_analytics"
check "CREATE EXTENSION again into the empty schema left behind" "SELECT crm.version() IS NOT NULL"

psql -X -q -d postgres -c "DROP DATABASE $db"
[ $fails -eq 0 ]
