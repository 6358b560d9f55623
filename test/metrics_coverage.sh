#!/usr/bin/env bash
# test/metrics_coverage.sh: every metric named in docs/metrics.md has an agreement check.
# The metric names come from the dictionary itself: the first column of its metric tables
# (backticks, "(per customer)" and "&lt;stage&gt;" stripped, spaces to "_") and the backticked
# names in the "###" headings of the LTV section. A metric counts as covered when a pgTAP
# description in test/metrics_*.sql starting with "metric " names it before the colon
# ('metric revenue: ...', 'metric leads, answered: ...'). TAP output, one line per metric.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
doc=$root/docs/metrics.md
names=$( {
    # table rows: | name | ... ; skip the header ("metric") and the separator rows
    grep -E '^\| ' "$doc" | awk -F'|' '{ print $2 }' | sed -E 's/^ +| +$//g' |
        grep -vE '^(metric|-+)$' |
        sed -E 's/^`([^`]+)`.*/\1/; s/&lt;[a-z]+&gt;//g; s/ +/_/g'
    # LTV section headings: ### Historical LTV (`ltv`, with `ltv_to_date`) ...
    sed -n '/<!-- section ltv/,/<!-- end of section ltv/p' "$doc" | grep -E '^### ' |
        grep -oE '`[a-z_.]+`' | tr -d '`' | sed -E 's/^crm\.//'
} | sort -u )
n=$(echo "$names" | grep -c .)
# descriptions of the agreement checks: 'metric a, b (note), c: ...' -> the part before the colon
described=$(grep -ohE "'metric [^:']+:" "$root"/test/metrics_*.sql | sed -E "s/^'metric //; s/:$//")
i=0; bad=0
if [ "$n" -lt 40 ]; then echo "not ok 1 - only $n metric names found in docs/metrics.md (the parser lost its tables)"; exit 1; fi
echo "ok 1 - $n metric names in docs/metrics.md"
for m in $names; do
    i=$((i + 1))
    if echo "$described" | grep -qE "(^|[^a-z_])${m}([^a-z_]|$)"; then
        echo "ok $((i + 1)) - metric $m has an agreement check"
    else
        echo "not ok $((i + 1)) - metric $m of docs/metrics.md has no agreement check in test/metrics_*.sql"; bad=$((bad + 1))
    fi
done
echo "1..$((i + 1))"
[ "$bad" -eq 0 ]
