#!/usr/bin/env bash
# structure_limits.sh: the size limits of the C sources (docs/install.md, "Code layout"):
#   no file in src/ over 1,000 lines, no function over 150 lines
#   (from the line that names the function to its closing brace, PostgreSQL
#   style: the name starts a line, the body's braces stand alone in column 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fails=0
max_file=0; max_file_name=
for f in "$root"/src/*.c "$root"/src/*.h; do
    n=$(wc -l < "$f")
    [ "$n" -gt "$max_file" ] && { max_file=$n; max_file_name=$(basename "$f"); }
    if [ "$n" -gt 1000 ]; then echo "# $(basename "$f"): $n lines"; fails=$((fails + 1)); fi
done
[ $fails -eq 0 ] && echo "ok - no C file over 1,000 lines (largest: $max_file_name, $max_file)" || echo "not ok - $fails C files over 1,000 lines"
long=$(awk '
    FNR == 1 { name = ""; start = 0 }
    /^[A-Za-z_][A-Za-z_0-9]*\(/ { name = $0; sub(/\(.*/, "", name); start = FNR }
    /^\{/ && name != "" { open = 1 }
    /^\}/ && open { len = FNR - start + 1; print len, FILENAME ":" start, name; open = 0; name = "" }
' "$root"/src/*.c | sort -rn)
top=$(echo "$long" | head -1)
over=$(echo "$long" | awk '$1 > 150' | wc -l)
if [ "$over" -eq 0 ]; then
    echo "ok - no C function over 150 lines (longest: $(echo "$top" | awk '{print $3 " " $1}'))"
else
    echo "not ok - $over C functions over 150 lines:"; echo "$long" | awk '$1 > 150' | sed "s|$root/||; s/^/# /"
fi
n=$(grep -c "" <(echo "$long"))
[ "$n" -gt 300 ] && echo "ok - the function scan found $n functions" || echo "not ok - the function scan found only $n functions"
