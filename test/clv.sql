-- clv.sql (pgTAP): crm.clv_summary on hand-worked cases, state round trips,
-- bad inputs, the hypergeometric function against closed forms, the
-- predictions against plain-SQL formulas, parameter recovery on simulated data.
BEGIN;
SELECT plan(75);
SET LOCAL TimeZone = 'UTC';

-- ---------------------------------------------------------------- clv_summary, hand-worked
CREATE TEMP TABLE buys(customer int, ts timestamptz, amount numeric);
INSERT INTO buys VALUES
  (1, '2024-01-01 10:00', 10), (1, '2024-01-01 15:00', 5),     -- one purchase day, 15
  (1, '2024-01-08 09:00', 20), (1, '2024-01-22 18:00', 30),
  (1, '2024-02-10 12:00', 99),                                   -- after observation_end: ignored
  (1, NULL, 1000),                                               -- NULL ts: ignored
  (2, '2024-01-30 08:00', 7),                                    -- one purchase only
  (3, '2024-01-10 08:00', 5), (3, '2024-01-11 08:00', NULL),    -- NULL amount = a purchase of 0
  (4, '2024-03-01 08:00', 5);                                    -- only after observation_end

-- customer 1: days Jan 1, 8, 22 -> frequency 2, recency 21 days = 3 weeks,
-- T = Jan 31 - Jan 1 = 30 days, monetary (20 + 30) / 2 = 25
SELECT is((SELECT crm.clv_summary(ts, amount, '2024-01-31', '7 days') FROM buys WHERE customer = 1),
          ROW(2, 3.0::float8, (30/7.0)::float8, 25::numeric)::crm.clv_customer,
          'clv_summary: same-day rows merge, later and NULL-ts rows ignored, weeks');
SELECT is((SELECT (crm.clv_summary(ts, amount, '2024-01-31')).recency FROM buys WHERE customer = 1),
          21::float8, 'clv_summary: default unit is 1 day (recency 21)');
SELECT is((SELECT (crm.clv_summary(ts, amount, '2024-01-31', '1 day')).t FROM buys WHERE customer = 1),
          30::float8, 'clv_summary: t in days = observation_end - first purchase day');
SELECT is((SELECT crm.clv_summary(ts, amount, '2024-01-31', '1 day') FROM buys WHERE customer = 2),
          ROW(0, 0::float8, 1::float8, 0::numeric)::crm.clv_customer,
          'clv_summary: a single purchase has frequency 0, recency 0, monetary 0');
SELECT is((SELECT crm.clv_summary(ts, amount, '2024-01-31', '1 day') FROM buys WHERE customer = 3),
          ROW(1, 1::float8, 21::float8, 0::numeric)::crm.clv_customer,
          'clv_summary: a NULL amount is a purchase worth 0');
SELECT is((SELECT crm.clv_summary(ts, amount, '2024-01-31', '1 day') FROM buys WHERE customer = 4),
          NULL::crm.clv_customer, 'clv_summary: no purchase up to observation_end gives NULL');
SELECT is((SELECT crm.clv_summary(ts, amount, '2024-01-31', '1 hour') FROM buys WHERE customer = 1),
          ROW(3, (21*24 + 8)::float8, (30*24 - 10)::float8, ((5 + 20 + 30) / 3.0)::numeric)::crm.clv_customer,
          'clv_summary: unit 1 hour counts distinct hours (10:00 and 15:00 are two purchases)');
SELECT is((SELECT crm.clv_summary(ts, amount, '2024-01-31 23:00', '1 day') FROM buys WHERE customer = 1),
          ROW(2, 21::float8, 30::float8, 25::numeric)::crm.clv_customer,
          'clv_summary: observation_end is taken as its calendar day');
-- calendar days in the session time zone
SET LOCAL TimeZone = 'America/New_York';
SELECT is((SELECT (crm.clv_summary(ts, 1, '2024-01-31', '1 day')).frequency
             FROM (VALUES (timestamptz '2024-01-02 03:00+00'), (timestamptz '2024-01-01 15:00+00')) v(ts)),
          0, 'clv_summary: days are calendar days of the session time zone (both on Jan 1 in New York)');
SET LOCAL TimeZone = 'UTC';
SELECT is((SELECT (crm.clv_summary(ts, 1, '2024-01-31', '1 day')).frequency
             FROM (VALUES (timestamptz '2024-01-02 03:00+00'), (timestamptz '2024-01-01 15:00+00')) v(ts)),
          1, 'clv_summary: the same rows are two days in UTC');
-- plain-SQL cross-check over many customers
CREATE TEMP TABLE many AS
SELECT c AS customer, timestamptz '2024-01-01' + ((c * 7 + k * 13) % 90) * interval '1 day' + (k % 3) * interval '5 hours' AS ts,
       ((c + k) % 17 + 1)::numeric AS amount
  FROM generate_series(1, 300) c, generate_series(1, (c % 6) + 1) k;
SELECT is((SELECT count(*) FROM (
             SELECT customer, crm.clv_summary(ts, amount, '2024-03-31', '7 days') s FROM many GROUP BY customer) a
           JOIN (
             SELECT customer, count(*) - 1 AS f,
                    (max(d) - min(d)) / 7.0 AS rec, (date '2024-03-31' - min(d)) / 7.0 AS t,
                    coalesce(sum(v) FILTER (WHERE d > (SELECT min(d) FROM (SELECT ts::date d, customer c2 FROM many) q WHERE c2 = customer)) / nullif(count(*) - 1, 0), 0) AS m
               FROM (SELECT customer, ts::date d, sum(amount) v FROM many WHERE ts::date <= '2024-03-31' GROUP BY 1, 2) days
              GROUP BY customer) b USING (customer)
          WHERE (s).frequency = f AND abs((s).recency - rec) < 1e-12 AND abs((s).t - t) < 1e-12 AND (s).monetary = m),
          300::bigint, 'clv_summary equals a plain-SQL computation for 300 customers');

-- ---------------------------------------------------------------- state round trips
CREATE AGGREGATE pg_temp.summary_state(timestamptz, numeric, timestamptz, interval)
  (SFUNC = crm.clv_summary_transfn, STYPE = crm.clv_summary_state);
CREATE AGGREGATE pg_temp.bgnbd_state(float8, float8, float8) (SFUNC = crm.bgnbd_transfn, STYPE = crm.bgnbd_state);
CREATE AGGREGATE pg_temp.gg_state(float8, float8) (SFUNC = crm.gamma_gamma_transfn, STYPE = crm.gamma_gamma_state);
SELECT is((SELECT s::text::crm.clv_summary_state::text = s::text FROM (SELECT pg_temp.summary_state(ts, amount, '2024-01-31', '7 days') s FROM buys WHERE customer = 1) x),
          true, 'clv_summary_state text form round-trips exactly');
SELECT is((SELECT crm.clv_summary_finalfn(s::text::crm.clv_summary_state) FROM (SELECT pg_temp.summary_state(ts, amount, '2024-01-31', '7 days') s FROM buys WHERE customer = 1) x),
          ROW(2, 3.0::float8, (30/7.0)::float8, 25::numeric)::crm.clv_customer,
          'clv_summary_state read back from text gives the same summary');
CREATE TEMP TABLE pat AS SELECT (g % 5)::float8 AS x, CASE WHEN g % 5 = 0 THEN 0 ELSE (g % 7) / 3.0 END AS tx, 3 + (g % 4) / 7.0 AS tt, 1.5 + g % 11 AS m
  FROM generate_series(1, 500) g;
SELECT is((SELECT s::text::crm.bgnbd_state::text = s::text FROM (SELECT pg_temp.bgnbd_state(x, tx, tt) s FROM pat) q),
          true, 'bgnbd_state text form round-trips exactly');
SELECT is((SELECT s::text::crm.gamma_gamma_state::text = s::text FROM (SELECT pg_temp.gg_state(x, m) s FROM pat) q),
          true, 'gamma_gamma_state text form round-trips exactly');
SELECT is((SELECT split_part(s::text, ' ', 1)::int FROM (SELECT pg_temp.bgnbd_state(x, tx, tt) s FROM pat) q),
          (SELECT count(*)::int FROM (SELECT DISTINCT x, tx, tt FROM pat) d),
          'bgnbd_state holds the distinct patterns (500 rows compress to their distinct count)');
SELECT is((SELECT crm.bgnbd_finalfn(s::text::crm.bgnbd_state)::text FROM (SELECT pg_temp.bgnbd_state(x, tx, tt) s FROM pat) q),
          (SELECT crm.bgnbd_fit(x, tx, tt)::text FROM pat), 'a bgnbd_state read back from text fits the same model');
SELECT throws_ok($$SELECT '2 0 0 1 1'::crm.bgnbd_state$$, '22P02', NULL, 'bgnbd_state: too few fields is an error');
SELECT throws_ok($$SELECT '1 1 5 2 1'::crm.bgnbd_state$$, '22P02', NULL, 'bgnbd_state: recency > t in a stored pattern is an error');
SELECT throws_ok($$SELECT '1 1 1 2 -3'::crm.bgnbd_state$$, '22P02', NULL, 'bgnbd_state: a negative weight is an error');
SELECT throws_ok($$SELECT '99999999999999999999 1'::crm.bgnbd_state$$, '22P02', NULL, 'bgnbd_state: an absurd count is an error, not an allocation');
SELECT throws_ok($$SELECT 'abc'::crm.gamma_gamma_state$$, '22P02', NULL, 'gamma_gamma_state: garbage is an error');
SELECT throws_ok($$SELECT '1 0 5 1'::crm.gamma_gamma_state$$, '22P02', NULL, 'gamma_gamma_state: frequency 0 is never stored');
SELECT throws_ok($$SELECT '0 86400000000 2 -5 1'::crm.clv_summary_state$$, '22P02', NULL, 'clv_summary_state: too few entries is an error');
SELECT throws_ok($$SELECT '0 0 0'::crm.clv_summary_state$$, '22P02', NULL, 'clv_summary_state: unit 0 is an error');
SELECT throws_ok($$SELECT '0 86400000000 1 -5 x'::crm.clv_summary_state$$, '22P02', NULL, 'clv_summary_state: a bad amount is an error');
-- every malformed state text: the one 22P02 message of the state reader, naming the type and the text
SELECT throws_ok($$SELECT '0 86400000000 1 -5 NaN'::crm.clv_summary_state$$, '22P02',
                 'invalid input syntax for type crm.clv_summary_state: "0 86400000000 1 -5 NaN"', 'clv_summary_state: a NaN amount is malformed text');
SELECT throws_ok($$SELECT '0 86400000000 1 5 1'::crm.clv_summary_state$$, '22P02',
                 'invalid input syntax for type crm.clv_summary_state: "0 86400000000 1 5 1"', 'clv_summary_state: a period after observation_end is malformed text');
SELECT throws_ok($$SELECT '1 1 5 2 1'::crm.bgnbd_state$$, '22P02',
                 'invalid input syntax for type crm.bgnbd_state: "1 1 5 2 1"', 'bgnbd_state: a pattern the model cannot take is malformed text');
SELECT throws_ok($$SELECT '1 1 1 2 1 7'::crm.bgnbd_state$$, '22P02',
                 'invalid input syntax for type crm.bgnbd_state: "1 1 1 2 1 7"', 'bgnbd_state: a field too many');
SELECT throws_ok($$SELECT '1 1 0 -3'::crm.gamma_gamma_state$$, '22P02',
                 'invalid input syntax for type crm.gamma_gamma_state: "1 1 0 -3"', 'gamma_gamma_state: a negative weight is malformed text');
SELECT is('  1  1  1  2  1 '::crm.bgnbd_state::text, '1 1 1 2 1', 'bgnbd_state: extra spaces between fields are read, as before');

-- ---------------------------------------------------------------- bad input: clv_summary
SELECT throws_ok($$SELECT crm.clv_summary(ts, 'NaN'::numeric, '2024-01-31') FROM buys$$, '22023', 'amount must be a finite number', 'clv_summary: NaN amount');
SELECT throws_ok($$SELECT crm.clv_summary(ts, amount, '2024-01-31', '1 month') FROM buys$$, '22023', 'unit must not contain months or years', 'clv_summary: unit with months');
SELECT throws_ok($$SELECT crm.clv_summary(ts, amount, '2024-01-31', '-1 day') FROM buys$$, '22023', 'unit must be positive', 'clv_summary: negative unit');
SELECT throws_ok($$SELECT crm.clv_summary(ts, amount, NULL) FROM buys$$, '22004', 'observation_end must not be null', 'clv_summary: NULL observation_end');
SELECT throws_ok($$SELECT crm.clv_summary(ts, amount, ts) FROM buys WHERE ts IS NOT NULL$$, '22023', NULL, 'clv_summary: observation_end differing between rows');
SELECT throws_ok($$SELECT crm.clv_summary(ts, amount, 'infinity') FROM buys$$, '22023', 'observation_end must be finite', 'clv_summary: infinite observation_end');

-- ---------------------------------------------------------------- bad input: fits
SELECT is((SELECT (m).converged::text || ' ' || (m).reason || ' ' || (m).customers FROM (SELECT crm.bgnbd_fit(x, tx, tt) m FROM pat WHERE false) q),
          'false no customers 0', 'bgnbd_fit: no customers -> converged false, reason');
SELECT is((SELECT (m).r IS NULL AND NOT (m).converged AND (m).reason LIKE 'no repeat buyers%' FROM (SELECT crm.bgnbd_fit(0, 0, tt) m FROM pat) q),
          true, 'bgnbd_fit: no repeat buyers -> converged false, NULL parameters, reason');
SELECT throws_ok($$SELECT crm.bgnbd_fit(2, 5, 3)$$, '22023', 'recency 5 is greater than t 3', 'bgnbd_fit: recency > t');
SELECT throws_ok($$SELECT crm.bgnbd_fit('NaN', 1, 3)$$, '22023', 'frequency, recency and t must be finite numbers', 'bgnbd_fit: NaN');
SELECT throws_ok($$SELECT crm.bgnbd_fit(-1, 1, 3)$$, '22023', 'frequency, recency and t must not be negative', 'bgnbd_fit: negative frequency');
SELECT throws_ok($$SELECT crm.bgnbd_fit(1.5, 1, 3)$$, '22023', NULL, 'bgnbd_fit: fractional frequency');
SELECT throws_ok($$SELECT crm.bgnbd_fit(0, 1, 3)$$, '22023', 'recency must be 0 when frequency is 0, got 1', 'bgnbd_fit: frequency 0 with recency > 0');
SELECT is((SELECT crm.bgnbd_fit(x, tx, tt)::text FROM (SELECT x, tx, tt FROM pat UNION ALL SELECT NULL, 1, 2) q),
          (SELECT crm.bgnbd_fit(x, tx, tt)::text FROM pat), 'bgnbd_fit: rows with a NULL are skipped');
SELECT is((SELECT NOT (m).converged AND (m).reason LIKE 'no repeat buyers%' FROM (SELECT crm.gamma_gamma_fit(0, 10) m) q),
          true, 'gamma_gamma_fit: no repeat buyers -> converged false, reason');
SELECT is((SELECT NOT (m).converged AND (m).customers = 0 FROM (SELECT crm.gamma_gamma_fit(x, m) m FROM pat WHERE false) q),
          true, 'gamma_gamma_fit: no customers -> converged false');
SELECT throws_ok($$SELECT crm.gamma_gamma_fit(2, 0)$$, '22023', 'monetary must be positive for repeat buyers, got 0', 'gamma_gamma_fit: zero monetary');
SELECT throws_ok($$SELECT crm.gamma_gamma_fit(2, -5)$$, '22023', NULL, 'gamma_gamma_fit: negative monetary');
SELECT throws_ok($$SELECT crm.gamma_gamma_fit(2, 'NaN')$$, '22023', NULL, 'gamma_gamma_fit: NaN monetary');
SELECT is((SELECT NOT (m).converged AND (m).reason LIKE 'every customer has the same monetary%' FROM (SELECT crm.gamma_gamma_fit(x, 10) m FROM pat WHERE x > 0) q),
          true, 'gamma_gamma_fit: identical spend cannot be fitted -> reason');

-- ---------------------------------------------------------------- predictions and their bad input
CREATE TEMP TABLE models AS SELECT
  ROW(0.2426, 4.4136, 0.7929, 2.4259, NULL, 2357, true, NULL)::crm.bgnbd_model AS bg,
  ROW(6.25, 3.74, 15.44, NULL, 946, true, NULL)::crm.gamma_gamma_model AS gg,
  ROW(6.25, 0.8, 15.44, NULL, 946, true, NULL)::crm.gamma_gamma_model AS gg_heavy,
  ROW(0.2426, 4.4136, 0.7929, 2.4259, NULL, 2357, false, 'test')::crm.bgnbd_model AS bg_bad;
SELECT is((SELECT round(crm.bgnbd_expected_purchases(bg, 39, 2, 30.43, 38.86)::numeric, 3) FROM models), 1.226,
          'published BG/NBD parameters: x=2, t_x=30.43, T=38.86 -> 1.226 purchases in 39 weeks');
SELECT is((SELECT crm.bgnbd_expected_purchases(bg, 0, 2, 30.43, 38.86) FROM models), 0::float8, 'expected purchases in 0 weeks is 0');
SELECT ok((SELECT abs(crm.bgnbd_expected_purchases(ROW(0.5, 5, 1, 2, NULL, 1, true, NULL)::crm.bgnbd_model, 20, 3, 10, 30)
                    - (crm.bgnbd_expected_purchases(ROW(0.5, 5, 1.001, 2, NULL, 1, true, NULL)::crm.bgnbd_model, 20, 3, 10, 30)
                     + crm.bgnbd_expected_purchases(ROW(0.5, 5, 0.999, 2, NULL, 1, true, NULL)::crm.bgnbd_model, 20, 3, 10, 30)) / 2) < 1e-6),
          'expected purchases is continuous through a = 1 (removable singularity)');
SELECT ok((SELECT crm.gamma_gamma_expected_value(gg, 0, 0) = (6.25 * 15.44 / 2.74)::float8::numeric FROM models),
          'expected spend of a customer with no repeats is the population mean p gamma / (q - 1)');
SELECT throws_ok($$SELECT crm.gamma_gamma_expected_value(gg_heavy, 2, 20) FROM models$$, '22023',
                 'the expected value is undefined when q <= 1 (q = 0.8)', 'q <= 1: expected value undefined');
SELECT throws_ok($$SELECT crm.bgnbd_p_alive(bg_bad, 2, 3, 5) FROM models$$, '22023', 'the model did not converge', 'a non-converged model is refused');
SELECT throws_ok($$SELECT crm.bgnbd_p_alive(ROW(NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL)::crm.bgnbd_model, 2, 3, 5)$$, '22004', NULL, 'a model without parameters is refused');
SELECT throws_ok($$SELECT crm.bgnbd_expected_purchases(bg, 10, 2, 6, 5) FROM models$$, '22023', 'recency 6 is greater than t 5', 'predictions: recency > t');
SELECT throws_ok($$SELECT crm.bgnbd_expected_purchases(bg, -1, 2, 3, 5) FROM models$$, '22023', NULL, 'predictions: negative horizon');
SELECT throws_ok($$SELECT crm.bgnbd_p_alive(bg, 'NaN', 3, 5) FROM models$$, '22023', NULL, 'predictions: NaN frequency');
SELECT throws_ok($$SELECT crm.clv(bg, gg, 2, 3, 5, 20, '1 month') FROM models$$, '22023', 'unit must not contain months or years', 'clv: unit must be fixed');
SELECT ok((SELECT abs(crm.clv(bg, gg, 2, 30.43, 38.86, 22.35, '7 days', 24, 0.01)::float8
              - (SELECT sum(crm.gamma_gamma_expected_value(gg, 2, 22.35)::float8
                     * (crm.bgnbd_expected_purchases(bg, k * 30.4375 / 7, 2, 30.43, 38.86)
                        - crm.bgnbd_expected_purchases(bg, (k - 1) * 30.4375 / 7, 2, 30.43, 38.86)) / power(1.01, k))
                   FROM generate_series(1, 24) k)) < 1e-9 FROM models),
          'clv equals the discounted monthly sum written in plain SQL');

-- ---------------------------------------------------------------- 2F1 against closed forms
SELECT ok(abs(crm.hyp2f1(1, 1, 2, 0.5) - (-ln(0.5) / 0.5)) < 1e-14, '2F1(1,1;2;0.5) = -ln(1-z)/z');
SELECT ok(abs(crm.hyp2f1(1, 1, 2, 0.99) / (-ln(0.01) / 0.99) - 1) < 1e-9, '2F1(1,1;2;0.99) = -ln(1-z)/z (integer c-a-b, connection formula)');
SELECT ok(abs(crm.hyp2f1(0.5, 0.5, 1.5, 0.81) - asin(0.9) / 0.9) < 1e-14, '2F1(1/2,1/2;3/2;z^2) = asin(z)/z, z^2 = 0.81');
SELECT ok(abs(crm.hyp2f1(0.5, 0.5, 1.5, 0.9801) / (asin(0.99) / 0.99) - 1) < 1e-13, '2F1(1/2,1/2;3/2;0.9801) = asin(0.99)/0.99');
SELECT ok(abs(crm.hyp2f1(2.3, 1.7, 1.7, 0.95) / power(0.05, -2.3) - 1) < 1e-12, '2F1(a,b;b;z) = (1-z)^-a near z = 1');
SELECT ok(abs(crm.hyp2f1(1, 1, 2, -3) - ln(4) / 3) < 1e-14, '2F1(1,1;2;-3) = ln(4)/3 (Pfaff transformation)');
SELECT throws_ok($$SELECT crm.hyp2f1(1, 1, 2, 1)$$, '22023', 'z must be less than 1, got 1', '2F1 refuses z >= 1');

-- ---------------------------------------------------------------- parameter recovery from simulated customers
CREATE TEMP TABLE simsum AS
SELECT customer_id, count(*) - 1 AS x, round(max(t_purchase)::numeric, 2)::float8 AS tx,
       round(max(t_end)::numeric, 2)::float8 AS tt, avg(amount) FILTER (WHERE t_purchase > 0) AS m
  FROM crm.clv_simulate(0.25, 4.0, 0.8, 2.5, 6.0, 4.0, 15.0, 100000, 52, 7) GROUP BY customer_id;
CREATE TEMP TABLE simfit AS SELECT crm.bgnbd_fit(x, tx, tt) AS bg, crm.gamma_gamma_fit(x, m) AS gg FROM simsum;
SELECT ok((SELECT abs((bg).r / 0.25 - 1) < 0.05 AND abs((bg).alpha / 4.0 - 1) < 0.05
              AND abs((bg).a / 0.8 - 1) < 0.05 AND abs((bg).b / 2.5 - 1) < 0.05 AND (bg).converged FROM simfit),
          'BG/NBD recovers r, alpha, a, b within 5% from 100,000 simulated customers');
SELECT ok((SELECT abs((gg).p / 6.0 - 1) < 0.05 AND abs((gg).q / 4.0 - 1) < 0.05
              AND abs((gg).gamma / 15.0 - 1) < 0.05 AND (gg).converged FROM simfit),
          'Gamma-Gamma recovers p, q, gamma within 5% from the simulated repeat buyers');

-- forced parallel: partial states (compacted in the workers) give the same fits
-- (temp tables are not scanned in parallel, so copy to a regular table)
CREATE TABLE clv_par_sim AS SELECT * FROM simsum;
ALTER TABLE clv_par_sim SET (parallel_workers = 2);
ANALYZE clv_par_sim;
SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; o text := '';
BEGIN
  FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP o := o || r || E'\n'; END LOOP;
  RETURN o;
END $$;
SELECT ok(pg_temp.plan_text('SELECT crm.bgnbd_fit(x, tx, tt), crm.gamma_gamma_fit(x, m) FROM clv_par_sim') LIKE '%Partial Aggregate%',
          'the fits plan as a Partial Aggregate');
SELECT is((SELECT crm.bgnbd_fit(x, tx, tt)::text || crm.gamma_gamma_fit(x, m)::text FROM clv_par_sim),
          (SELECT (bg)::text || (gg)::text FROM simfit), 'forced-parallel fits on 100,000 customers equal the serial fits');

SELECT * FROM finish();
ROLLBACK;
