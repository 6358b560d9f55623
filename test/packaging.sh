#!/usr/bin/env bash
# packaging.sh: META.json (PGXN), make dist, the Debian files and make prove agree with the
# control file and work.  Env: PGHOST/PGPORT/PGUSER of a running cluster with crm_analytics
# installed (scripts/test), PG_CONFIG of that installation.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fails=0
ok()  { echo "ok - $*"; }
nok() { echo "not ok - $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

control=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" crm_analytics.control)
[ -n "$control" ] && ok "crm_analytics.control default_version is $control" || nok "no default_version in the control file"

# who can install: a superuser only, as README.md, docs/install.md and docs/security.md (section F) say
grep -qx "superuser = true" crm_analytics.control && grep -qx "trusted = false" crm_analytics.control \
    && ok "crm_analytics.control: superuser = true, trusted = false (installed by a superuser only)" \
    || nok "crm_analytics.control no longer says superuser = true, trusted = false: update docs/security.md section F"

# META.json: valid JSON, the PGXN fields, the control's version everywhere
meta=$(perl -MJSON::PP -e 'local $/; my $m = decode_json(<STDIN>);
         print join(" ", $m->{name}, $m->{version}, $m->{provides}{crm_analytics}{version},
                    $m->{"meta-spec"}{version}, $m->{prereqs}{runtime}{requires}{PostgreSQL},
                    (defined $m->{abstract} && defined $m->{license} && @{$m->{maintainer}}) ? "complete" : "incomplete")' \
       < META.json 2>&1) || true
[ "$meta" = "crm_analytics $control $control 1.0.0 15.0.0 complete" ] \
    && ok "META.json: name, version = provides version = default_version $control, meta-spec 1.0.0, PostgreSQL >= 15" \
    || nok "META.json: got '$meta'"

# make dist: the PGXN zip of HEAD, every file under crm_analytics-<version>/
zip=$tmp/dist.zip
if make -s dist DIST_ZIP="$zip" >/dev/null 2>"$tmp/dist.err" && [ -s "$zip" ]; then
    ok "make dist writes the zip"
else
    nok "make dist: $(cat "$tmp/dist.err")"
fi
perl -MIO::Uncompress::Unzip=\$UnzipError -e '
    my $z = IO::Uncompress::Unzip->new($ARGV[0]) or die "$UnzipError\n";
    for (my $s = 1; $s > 0; $s = $z->nextStream) { print $z->getHeaderInfo->{Name}, "\n" }' "$zip" > "$tmp/names" 2>&1 || true
prefix=crm_analytics-$control/
others=$(grep -vc "^$prefix" "$tmp/names" || true)
[ -s "$tmp/names" ] && [ "$others" = 0 ] && ok "every entry of the zip is under $prefix" || nok "zip entries outside $prefix: $others ($(head -3 "$tmp/names"))"
for f in META.json crm_analytics.control Makefile README.md src/core.c src/core.sql test/data/cdnow/CDNOW_sample.txt; do
    grep -qxF "$prefix$f" "$tmp/names" && ok "the zip holds $f" || nok "the zip lacks $f"
done
n=$(git ls-tree -r --name-only HEAD | wc -l)
[ "$n" -eq "$(grep -vc "/$" "$tmp/names")" ] && ok "the zip holds every file of HEAD ($n)" || nok "the zip holds fewer files than git tracks"
# a version mismatch stops make dist
sed "s/\"version\": \"$control\"/\"version\": \"0.0.1\"/" META.json > "$tmp/META.json"
(cd "$tmp" && mkdir chk && cp "$root/crm_analytics.control" "$root/Makefile" chk/ && cp META.json chk/ \
   && cd chk && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm t \
   && make -s dist DIST_ZIP=../bad.zip) > "$tmp/bad.log" 2>&1 && nok "make dist accepted META.json version 0.0.1" \
   || { grep -q "META.json version 0.0.1 differs from default_version $control" "$tmp/bad.log" \
          && ok "make dist refuses a META.json whose version is not default_version" \
          || nok "make dist with a wrong META.json version: $(cat "$tmp/bad.log")"; }

# Debian: the changelog's upstream version is default_version, control generated from control.in
deb=$(sed -n '1s/^crm-analytics (\([^)]*\)).*/\1/p' debian/changelog)
[ "${deb%-*}" = "$control" ] && ok "debian/changelog version $deb is $control-<revision>" || nok "debian/changelog version '$deb'"
pkgs=$(sed -n 's/^Package: //p' debian/control | tr '\n' ' ')
want=""; for v in $(cat debian/pgversions); do want+="postgresql-$v-crm-analytics "; done
[ "$pkgs" = "$want" ] && ok "debian/control lists $pkgs(one per debian/pgversions)" || nok "debian/control packages '$pkgs', want '$want'"
[ "$(sed 's/PGVERSION/15/g' debian/control.in)" = "$(cat debian/control)" ] && ok "debian/control is debian/control.in for PostgreSQL 15" \
    || nok "debian/control is stale: pg_buildext updatecontrol"

# make prove: pgTAP through pg_prove against this server, scratch database, demo loaded
if make -s prove PROVE_DB=crm_prove_check PROVE_TESTS=test/demo.sql > "$tmp/prove.log" 2>&1 && grep -q '^Result: PASS' "$tmp/prove.log"; then
    ok "make prove PROVE_TESTS=test/demo.sql passes (scratch database, demo data loaded)"
else
    cat "$tmp/prove.log"; nok "make prove"
fi
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS crm_prove_check" >/dev/null 2>&1 || true

echo "# $fails failed"
[ "$fails" -eq 0 ]
