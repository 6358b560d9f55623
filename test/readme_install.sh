#!/usr/bin/env bash
# readme_install.sh: README's "Install into your own PostgreSQL" commands, taken from the README
# itself and run line by line against the throwaway cluster of scripts/test (PGHOST, PGPORT; the
# system's own cluster is never touched), so the steps stay true:
#   apt-get update / apt-get install: checked, not run (apt-get install --simulate must resolve
#     every package; update must come first); scripts/test has installed the packages already;
#   make && make install: run as written, into the PostgreSQL of PG_CONFIG (scripts/test's
#     private copy);
#   runuser -u postgres -- ... and every other line: run as written, without PGUSER (so as the
#     role of the system user, as on a fresh machine; without the runuser prefix when not root).
# Then the extension must be installed in database crm by the postgres superuser.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mapfile -t lines < <(awk '/^## Install into your own PostgreSQL/ {s = 1; next}
                           s && /^## / {exit}
                           s == 1 && /^```sh/ {s = 2; next}
                           s == 2 && /^```/ {exit}
                           s == 2 && NF {print}' README.md)
fails=0
ok()  { echo "ok - $*"; }
nok() { echo "not ok - $*"; fails=$((fails + 1)); }

[ ${#lines[@]} -ge 3 ] && ok "README's install block has ${#lines[@]} commands" || nok "install block not found in README.md"
[ "${lines[0]:-}" = "apt-get update" ] && ok "the block starts with apt-get update" || nok "the block does not start with apt-get update"

db=""
trap '[ -n "$db" ] && psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
for line in "${lines[@]}"; do
    case "$line" in
        "apt-get update")
            ;;
        "apt-get install "*)
            read -ra words <<<"$line"
            if out=$(apt-get --simulate "${words[@]:1}" 2>&1); then
                ok "$line: resolves (apt-get --simulate)"
            else
                nok "$line: $out"
            fi
            for p in "${words[@]:2}"; do
                [[ $p == -* ]] && continue
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
                    && ok "package $p is a real, installed package" || nok "package $p is not installed"
            done
            ;;
        "runuser -u postgres -- "*)
            cmd=${line#runuser -u postgres -- }
            read -ra words <<<"$cmd"
            [ "${words[0]}" = createdb ] && db=${words[-1]}
            if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres -- bash -c "$cmd"); else run=(bash -c "$cmd"); fi
            if out=$(env -u PGUSER "${run[@]}" 2>&1); then ok "$line"; else nok "$line: $out"; fi
            ;;
        *)
            if out=$(env -u PGUSER bash -c "$line" 2>&1); then ok "$line"; else nok "$line: $(tail -5 <<<"$out")"; fi
            ;;
    esac
done

want=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" crm_analytics.control)
got=$(psql -X -q -At -d "${db:-crm}" -c "SELECT e.extversion || ' ' || r.rolname || ' ' || r.rolsuper || ' ' || n.nspname
                                          FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner
                                          JOIN pg_namespace n ON n.oid = e.extnamespace
                                         WHERE e.extname = 'crm_analytics'" 2>&1) || true
[ "$got" = "$want postgres true crm" ] && ok "crm_analytics $want is installed in database ${db:-crm} by superuser postgres, in schema crm" \
    || nok "extension after the README's steps: got '$got', want '$want postgres true crm'"

# and the superuser is needed: a database owner without superuser cannot install it
psql -X -q -d postgres -c "CREATE ROLE crm_readme_owner LOGIN" -c "CREATE DATABASE crm_readme_nosu OWNER crm_readme_owner" >/dev/null
out=$(psql -X -q -At -U crm_readme_owner -d crm_readme_nosu -c 'CREATE EXTENSION crm_analytics' 2>&1) || true
psql -X -q -d postgres -c "DROP DATABASE crm_readme_nosu" -c "DROP ROLE crm_readme_owner" >/dev/null
grep -q 'permission denied to create extension "crm_analytics"' <<<"$out" \
    && ok "a database owner who is not superuser cannot install it (as README and docs/security.md say)" \
    || nok "non-superuser CREATE EXTENSION: $out"

echo "# $fails failed"
[ "$fails" -eq 0 ]
