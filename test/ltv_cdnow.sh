#!/usr/bin/env bash
# ltv_cdnow.sh: on the CDNOW sample (test/data/cdnow), crm.historical_ltv against plain SQL and
# against the BG/NBD + Gamma-Gamma prediction (crm.clv) over the same horizon: the historical
# lifespan, 1 / annual churn years.  The relation stated in docs/clv.md and docs/metrics.md is
# asserted loosely: the prediction is higher, by roughly a quarter.
# Env: PGHOST/PGPORT/PGUSER of a running cluster with crm_analytics installed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
data=$here/test/data/cdnow
[ -f "$data/CDNOW_sample.txt" ] || { echo "not ok - test/data/cdnow/CDNOW_sample.txt missing"; exit 1; }

db=crm_ltv_cdnow
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

psql -X -q -v ON_ERROR_STOP=1 -d $db <<SQL
CREATE EXTENSION crm_analytics;
CREATE TABLE raw(line text);
\copy raw FROM '$data/CDNOW_sample.txt'
-- whitespace separated: original_id, sample_id, date YYYYMMDD, number_of_cds, dollar_value
CREATE TABLE tx AS
SELECT f[2]::int AS id, to_date(f[3], 'YYYYMMDD')::timestamptz AS ts, f[5]::numeric AS amount
  FROM (SELECT regexp_split_to_array(btrim(line), '\s+') AS f FROM raw) s;
-- historical LTV on all 18 months (no cost column: margin 1, revenue as value)
CREATE TABLE h AS SELECT * FROM crm.historical_ltv('SELECT id, ts, amount FROM tx');
-- BG/NBD + Gamma-Gamma fitted on the same 18 months, in weeks
CREATE TABLE summary AS
SELECT id, (crm.clv_summary(ts, amount, '1998-06-30', '7 days')).* FROM tx GROUP BY id;
CREATE TABLE fit AS
SELECT (SELECT crm.bgnbd_fit(frequency, recency, t) FROM summary) AS bg,
       (SELECT crm.gamma_gamma_fit(frequency, monetary) FROM summary) AS gg;
-- predicted revenue per customer over the historical lifespan (rounded to months), undiscounted
CREATE TABLE pred AS
SELECT (SELECT round(12 * lifespan_years)::int FROM h) AS months,
       avg(crm.clv(bg, gg, frequency, recency, t, monetary, '7 days',
                   (SELECT round(12 * lifespan_years)::int FROM h), 0))::numeric AS future
  FROM summary, fit;
SQL

fails=0
check() {   # check "description" "SQL returning one boolean"
    local got
    got=$(psql -X -q -At -v ON_ERROR_STOP=1 -d $db -c "$2" 2>&1) || true
    if [ "$got" = t ]; then echo "ok - $1"; else echo "not ok - $1 (got: $got)"; fails=$((fails + 1)); fi
}
show() { psql -X -q -v ON_ERROR_STOP=1 -d $db -c "$1" | sed 's/^/# /'; }

show "SELECT customers, revenue, lifespan_years, annual_churn, ltv_to_date, ltv FROM h"
show "SELECT h.ltv AS historical_ltv, h.ltv_to_date, h.ltv - h.ltv_to_date AS historical_future, p.months,
             round(p.future, 2) AS predicted_future, round(h.ltv_to_date + p.future, 2) AS predicted_ltv
        FROM h, pred p"

check "CDNOW loaded (6919 rows, 2357 customers)" "SELECT count(*) = 6919 AND count(DISTINCT id) = 2357 FROM tx"
check "LTV to date = revenue / customers in plain SQL (margin 1)" \
  "SELECT h.ltv_to_date = round(sum(tx.amount) / count(DISTINCT tx.id), 2) FROM tx, h GROUP BY h.ltv_to_date"
check "annual churn = plain SQL (years back from 1998-06-30, customer-years without an order the next year)" \
  "WITH cy AS (SELECT DISTINCT id, floor(extract(epoch FROM (timestamptz '1998-06-30' - ts)) / (365.25 * 86400)) AS y FROM tx)
   SELECT h.annual_churn = round(count(*) FILTER (WHERE n.id IS NULL)::numeric / count(*), 4)
     FROM cy a LEFT JOIN cy n ON n.id = a.id AND n.y = a.y - 1, h WHERE a.y >= 1 GROUP BY h.annual_churn"
check "historical LTV = max(to date, revenue per active customer-year / churn) in plain SQL" \
  "WITH cy AS (SELECT DISTINCT id, floor(extract(epoch FROM (timestamptz '1998-06-30' - ts)) / (365.25 * 86400)) AS y FROM tx),
        c AS (SELECT count(*) FILTER (WHERE n.id IS NULL)::numeric / count(*) AS churn FROM cy a LEFT JOIN cy n ON n.id = a.id AND n.y = a.y - 1 WHERE a.y >= 1)
   SELECT h.ltv = round(greatest(sum(tx.amount) / count(DISTINCT tx.id), sum(tx.amount) / (SELECT count(*) FROM cy) / c.churn), 2)
     FROM tx, c, h GROUP BY h.ltv, c.churn"
check "historical LTV >= value to date" "SELECT ltv >= ltv_to_date FROM h"
check "the horizon is the historical lifespan: 18 months (1.53 years)" "SELECT months = 18 FROM pred"
check "predicted LTV (to date + BG/NBD x Gamma-Gamma over 18 months) is above the historical LTV by 10-50 %" \
  "SELECT (h.ltv_to_date + p.future) / h.ltv BETWEEN 1.10 AND 1.50 FROM h, pred p"
check "the predicted future revenue is 2-4 times the future part of the historical LTV (ltv - to date)" \
  "SELECT p.future / (h.ltv - h.ltv_to_date) BETWEEN 2 AND 4 FROM h, pred p"

echo "# $fails failed"
[ "$fails" -eq 0 ]
