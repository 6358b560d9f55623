-- state_compat_clv.sql (pgTAP): state texts written by released versions are
-- read by this one and give the results the same rows give in plain SQL.
--
-- The texts below were printed by the 0.1.0 and 0.2.0 releases (their own
-- builds, from the rows of this file: crm.clv_simulate's customers 1-150 of
-- seed 11, and the purchases in buys).  Both releases wrote the same text
-- form and the same texts; 0.3.0 reads them with the shared state reader.
BEGIN;
SELECT plan(29);
SET LOCAL TimeZone = 'UTC';

CREATE TEMP TABLE saved(version text, kind text, txt text);
INSERT INTO saved VALUES
  ('0.1.0', 'summary_week', '759974400000000 604800000000 4 8767 10.50 8767 4.50 8774 20 8788 7.25'),
  ('0.1.0', 'summary_day', '759974400000000 86400000000 4 8767 10.50 8767 4.50 8774 20 8788 7.25'),
  ('0.1.0', 'summary_single', '759974400000000 604800000000 1 8795 12'),
  ('0.1.0', 'bgnbd', '90 0 0 0 1 0 0 1 2 0 0 2 5 0 0 3 2 0 0 4 5 0 0 5 2 0 0 7 4 0 0 8 4 0 0 9 4 0 0 10 2 0 0 11 2 0 0 12 4 0 0 13 2 0 0 14 3 0 0 15 2 0 0 16 2 0 0 17 1 0 0 18 1 0 0 20 4 0 0 21 4 0 0 22 2 0 0 23 2 0 0 24 2 0 0 25 1 0 0 26 1 0 0 27 1 0 0 28 2 0 0 29 3 0 0 30 2 0 0 31 1 0 0 33 3 0 0 34 1 0 0 35 4 0 0 36 5 0 0 37 1 0 0 42 5 0 0 44 1 0 0 47 1 0 0 49 2 0 0 50 2 0 0 51 2 0 0 52 2 1 0.10000000000000001 35 1 1 0.59999999999999998 25 1 1 0.80000000000000004 5 1 1 0.80000000000000004 45 1 1 2.2999999999999998 12 1 1 2.3999999999999999 19 1 1 2.5 42 1 1 2.6000000000000001 8 1 1 3.6000000000000001 49 1 1 3.7000000000000002 4 1 1 3.7000000000000002 47 1 1 4.2999999999999998 37 1 1 4.4000000000000004 13 1 1 4.7999999999999998 14 1 1 5.9000000000000004 16 1 1 8 14 1 1 8.9000000000000004 29 1 1 10.4 52 1 1 10.800000000000001 25 1 1 12.9 13 1 1 15.800000000000001 20 1 1 16.399999999999999 20 1 1 16.600000000000001 47 1 1 17.800000000000001 29 1 1 23.899999999999999 24 1 1 25.100000000000001 26 1 1 25.800000000000001 45 1 1 37.899999999999999 48 1 2 0.69999999999999996 3 1 2 1.6000000000000001 23 1 2 3.7000000000000002 23 1 2 5.7999999999999998 17 1 2 8.6999999999999993 14 1 2 10 18 1 2 13.4 16 1 2 19.800000000000001 25 1 2 21.5 44 1 2 24.100000000000001 45 1 2 24.600000000000001 46 1 2 26.800000000000001 31 1 2 27.899999999999999 40 1 2 37.5 42 1 2 40 41 1 3 35.399999999999999 47 1 4 4 16 1 4 20 25 1 7 49.799999999999997 52 1 10 19.199999999999999 40 1'),
  ('0.1.0', 'gamma_gamma', '47 1 8.0999999999999996 1 1 8.8000000000000007 1 1 9.8000000000000007 1 1 10.300000000000001 1 1 13 1 1 13.5 1 1 13.800000000000001 2 1 14.699999999999999 1 1 15.1 1 1 16.899999999999999 1 1 22.199999999999999 1 1 25.300000000000001 1 1 29.300000000000001 1 1 29.399999999999999 1 1 29.699999999999999 1 1 30.600000000000001 1 1 31.600000000000001 1 1 32.700000000000003 1 1 42.799999999999997 1 1 44.399999999999999 1 1 46.200000000000003 1 1 47.600000000000001 1 1 52.600000000000001 1 1 54.5 1 1 56.700000000000003 1 1 64.400000000000006 1 1 102.59999999999999 1 2 9.6999999999999993 1 2 16.800000000000001 1 2 17.699999999999999 1 2 18 1 2 22.399999999999999 1 2 24.5 1 2 25.399999999999999 1 2 26.699999999999999 1 2 27.899999999999999 1 2 28.300000000000001 1 2 28.399999999999999 1 2 30.699999999999999 1 2 30.800000000000001 1 2 70.700000000000003 1 2 93 1 3 44.600000000000001 1 4 31.600000000000001 1 4 37.399999999999999 1 7 27.100000000000001 1 10 18.600000000000001 1'),
  ('0.2.0', 'summary_week', '759974400000000 604800000000 4 8767 10.50 8767 4.50 8774 20 8788 7.25'),
  ('0.2.0', 'summary_day', '759974400000000 86400000000 4 8767 10.50 8767 4.50 8774 20 8788 7.25'),
  ('0.2.0', 'summary_single', '759974400000000 604800000000 1 8795 12'),
  ('0.2.0', 'bgnbd', '90 0 0 0 1 0 0 1 2 0 0 2 5 0 0 3 2 0 0 4 5 0 0 5 2 0 0 7 4 0 0 8 4 0 0 9 4 0 0 10 2 0 0 11 2 0 0 12 4 0 0 13 2 0 0 14 3 0 0 15 2 0 0 16 2 0 0 17 1 0 0 18 1 0 0 20 4 0 0 21 4 0 0 22 2 0 0 23 2 0 0 24 2 0 0 25 1 0 0 26 1 0 0 27 1 0 0 28 2 0 0 29 3 0 0 30 2 0 0 31 1 0 0 33 3 0 0 34 1 0 0 35 4 0 0 36 5 0 0 37 1 0 0 42 5 0 0 44 1 0 0 47 1 0 0 49 2 0 0 50 2 0 0 51 2 0 0 52 2 1 0.10000000000000001 35 1 1 0.59999999999999998 25 1 1 0.80000000000000004 5 1 1 0.80000000000000004 45 1 1 2.2999999999999998 12 1 1 2.3999999999999999 19 1 1 2.5 42 1 1 2.6000000000000001 8 1 1 3.6000000000000001 49 1 1 3.7000000000000002 4 1 1 3.7000000000000002 47 1 1 4.2999999999999998 37 1 1 4.4000000000000004 13 1 1 4.7999999999999998 14 1 1 5.9000000000000004 16 1 1 8 14 1 1 8.9000000000000004 29 1 1 10.4 52 1 1 10.800000000000001 25 1 1 12.9 13 1 1 15.800000000000001 20 1 1 16.399999999999999 20 1 1 16.600000000000001 47 1 1 17.800000000000001 29 1 1 23.899999999999999 24 1 1 25.100000000000001 26 1 1 25.800000000000001 45 1 1 37.899999999999999 48 1 2 0.69999999999999996 3 1 2 1.6000000000000001 23 1 2 3.7000000000000002 23 1 2 5.7999999999999998 17 1 2 8.6999999999999993 14 1 2 10 18 1 2 13.4 16 1 2 19.800000000000001 25 1 2 21.5 44 1 2 24.100000000000001 45 1 2 24.600000000000001 46 1 2 26.800000000000001 31 1 2 27.899999999999999 40 1 2 37.5 42 1 2 40 41 1 3 35.399999999999999 47 1 4 4 16 1 4 20 25 1 7 49.799999999999997 52 1 10 19.199999999999999 40 1'),
  ('0.2.0', 'gamma_gamma', '47 1 8.0999999999999996 1 1 8.8000000000000007 1 1 9.8000000000000007 1 1 10.300000000000001 1 1 13 1 1 13.5 1 1 13.800000000000001 2 1 14.699999999999999 1 1 15.1 1 1 16.899999999999999 1 1 22.199999999999999 1 1 25.300000000000001 1 1 29.300000000000001 1 1 29.399999999999999 1 1 29.699999999999999 1 1 30.600000000000001 1 1 31.600000000000001 1 1 32.700000000000003 1 1 42.799999999999997 1 1 44.399999999999999 1 1 46.200000000000003 1 1 47.600000000000001 1 1 52.600000000000001 1 1 54.5 1 1 56.700000000000003 1 1 64.400000000000006 1 1 102.59999999999999 1 2 9.6999999999999993 1 2 16.800000000000001 1 2 17.699999999999999 1 2 18 1 2 22.399999999999999 1 2 24.5 1 2 25.399999999999999 1 2 26.699999999999999 1 2 27.899999999999999 1 2 28.300000000000001 1 2 28.399999999999999 1 2 30.699999999999999 1 2 30.800000000000001 1 2 70.700000000000003 1 2 93 1 3 44.600000000000001 1 4 31.600000000000001 1 4 37.399999999999999 1 7 27.100000000000001 1 10 18.600000000000001 1');

-- ------------------------------------------------------------ clv_summary_state
-- the purchases the summary states were made from (observation_end 2024-01-31)
CREATE TEMP TABLE buys(customer int, ts timestamptz, amount numeric);
INSERT INTO buys VALUES
  (1, '2024-01-02 10:00', 10.50), (1, '2024-01-02 15:00', 4.50), (1, '2024-01-09 09:00', 20),
  (1, '2024-01-23 12:00', 7.25), (1, '2024-02-05 00:00', 99), (1, NULL, 3),
  (2, '2024-01-30 08:00', 12);

-- plain SQL: purchase days up to observation_end; unit in days
CREATE FUNCTION pg_temp.plain_summary(c int, unit_days numeric) RETURNS TABLE(frequency int, recency float8, t float8, monetary numeric)
LANGUAGE sql AS $$
  WITH d AS (SELECT ts::date AS day, sum(amount) AS v FROM buys
              WHERE customer = c AND ts IS NOT NULL AND ts::date <= date '2024-01-31' GROUP BY 1)
  SELECT (count(*) - 1)::int,
         ((max(day) - min(day)) / unit_days)::float8,
         ((date '2024-01-31' - min(day)) / unit_days)::float8,
         coalesce(sum(v) FILTER (WHERE day > (SELECT min(day) FROM d)) / nullif(count(*) - 1, 0), 0)
    FROM d
$$;

SELECT is((SELECT (crm.clv_summary_finalfn(txt::crm.clv_summary_state)).frequency FROM saved WHERE version = v AND kind = 'summary_week'),
          (SELECT frequency FROM pg_temp.plain_summary(1, 7)), v || ' clv_summary_state (weeks): frequency as plain SQL')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT ok((SELECT abs((crm.clv_summary_finalfn(txt::crm.clv_summary_state)).recency - p.recency) < 1e-12
                  AND abs((crm.clv_summary_finalfn(txt::crm.clv_summary_state)).t - p.t) < 1e-12
             FROM saved, pg_temp.plain_summary(1, 7) p WHERE version = v AND kind = 'summary_week'),
          v || ' clv_summary_state (weeks): recency and t as plain SQL')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT is((SELECT (crm.clv_summary_finalfn(txt::crm.clv_summary_state)).monetary FROM saved WHERE version = v AND kind = 'summary_week'),
          (SELECT monetary FROM pg_temp.plain_summary(1, 7)), v || ' clv_summary_state (weeks): monetary as plain SQL (exact numeric)')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT is((SELECT crm.clv_summary_finalfn(txt::crm.clv_summary_state)::text FROM saved WHERE version = v AND kind = 'summary_day'),
          (SELECT ROW(frequency, recency, t, monetary)::crm.clv_customer::text FROM pg_temp.plain_summary(1, 1)),
          v || ' clv_summary_state (days): the summary of plain SQL')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT is((SELECT crm.clv_summary_finalfn(txt::crm.clv_summary_state)::text FROM saved WHERE version = v AND kind = 'summary_single'),
          '(0,0,0.14285714285714285,0)', v || ' clv_summary_state: one purchase on Jan 30 gives (0, 0, 1/7 week, 0)')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT is((SELECT txt::crm.clv_summary_state::text FROM saved WHERE version = v AND kind = 'summary_week'),
          (SELECT txt FROM saved WHERE version = v AND kind = 'summary_week'),
          v || ' clv_summary_state: written back in the same text')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT is(crm.clv_summary_finalfn('empty'::crm.clv_summary_state), NULL, 'clv_summary_state: "empty" reads as a state without purchases');

-- ------------------------------------------------------------ bgnbd_state, gamma_gamma_state
-- the customers the pattern states were made from: (frequency, recency, t, monetary)
CREATE TEMP TABLE pat(x float8, tx float8, tt float8, m float8);
INSERT INTO pat VALUES
  (0,0,0,0),   (0,0,1,0),   (0,0,1,0),   (0,0,2,0),   (0,0,2,0),   (0,0,2,0),   (0,0,2,0),   
  (0,0,2,0),   (0,0,3,0),   (0,0,3,0),   (0,0,4,0),   (0,0,4,0),   (0,0,4,0),   (0,0,4,0),   
  (0,0,4,0),   (0,0,5,0),   (0,0,5,0),   (0,0,7,0),   (0,0,7,0),   (0,0,7,0),   (0,0,7,0),   
  (0,0,8,0),   (0,0,8,0),   (0,0,8,0),   (0,0,8,0),   (0,0,9,0),   (0,0,9,0),   (0,0,9,0),   
  (0,0,9,0),   (0,0,10,0),   (0,0,10,0),   (0,0,11,0),   (0,0,11,0),   (0,0,12,0),   (0,0,12,0),   
  (0,0,12,0),   (0,0,12,0),   (0,0,13,0),   (0,0,13,0),   (0,0,14,0),   (0,0,14,0),   (0,0,14,0),   
  (0,0,15,0),   (0,0,15,0),   (0,0,16,0),   (0,0,16,0),   (0,0,17,0),   (0,0,18,0),   (0,0,20,0),   
  (0,0,20,0),   (0,0,20,0),   (0,0,20,0),   (0,0,21,0),   (0,0,21,0),   (0,0,21,0),   (0,0,21,0),   
  (0,0,22,0),   (0,0,22,0),   (0,0,23,0),   (0,0,23,0),   (0,0,24,0),   (0,0,24,0),   (0,0,25,0),   
  (0,0,26,0),   (0,0,27,0),   (0,0,28,0),   (0,0,28,0),   (0,0,29,0),   (0,0,29,0),   (0,0,29,0),   
  (0,0,30,0),   (0,0,30,0),   (0,0,31,0),   (0,0,33,0),   (0,0,33,0),   (0,0,33,0),   (0,0,34,0),   
  (0,0,35,0),   (0,0,35,0),   (0,0,35,0),   (0,0,35,0),   (0,0,36,0),   (0,0,36,0),   (0,0,36,0),   
  (0,0,36,0),   (0,0,36,0),   (0,0,37,0),   (0,0,42,0),   (0,0,42,0),   (0,0,42,0),   (0,0,42,0),   
  (0,0,42,0),   (0,0,44,0),   (0,0,47,0),   (0,0,49,0),   (0,0,49,0),   (0,0,50,0),   (0,0,50,0),   
  (0,0,51,0),   (0,0,51,0),   (0,0,52,0),   (0,0,52,0),   (1,0.1,35,22.2),   (1,0.6,25,44.4),   
  (1,0.8,5,16.9),   (1,0.8,45,31.6),   (1,2.3,12,8.1),   (1,2.4,19,10.3),   (1,2.5,42,52.6),   
  (1,2.6,8,29.7),   (1,3.6,49,64.4),   (1,3.7,4,32.7),   (1,3.7,47,13.8),   (1,4.3,37,102.6),   
  (1,4.4,13,47.6),   (1,4.8,14,25.3),   (1,5.9,16,29.3),   (1,8,14,56.7),   (1,8.9,29,15.1),   
  (1,10.4,52,13.5),   (1,10.8,25,8.8),   (1,12.9,13,13),   (1,15.8,20,29.4),   (1,16.4,20,9.8),   
  (1,16.6,47,14.7),   (1,17.8,29,13.8),   (1,23.9,24,46.2),   (1,25.1,26,54.5),   (1,25.8,45,42.8),   
  (1,37.9,48,30.6),   (2,0.7,3,28.3),   (2,1.6,23,26.7),   (2,3.7,23,16.8),   (2,5.8,17,28.4),   
  (2,8.7,14,30.7),   (2,10,18,17.7),   (2,13.4,16,30.8),   (2,19.8,25,27.9),   (2,21.5,44,25.4),   
  (2,24.1,45,18),   (2,24.6,46,9.7),   (2,26.8,31,93),   (2,27.9,40,24.5),   (2,37.5,42,22.4),   
  (2,40,41,70.7),   (3,35.4,47,44.6),   (4,4,16,31.6),   (4,20,25,37.4),   (7,49.8,52,27.1),   
  (10,19.2,40,18.6);

SELECT is((SELECT (crm.bgnbd_finalfn(txt::crm.bgnbd_state)).customers FROM saved WHERE version = v AND kind = 'bgnbd'),
          (SELECT count(*) FROM pat), v || ' bgnbd_state: the customers of plain SQL')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT is((SELECT crm.bgnbd_finalfn(txt::crm.bgnbd_state)::text FROM saved WHERE version = v AND kind = 'bgnbd'),
          (SELECT crm.bgnbd_fit(x, tx, tt)::text FROM pat), v || ' bgnbd_state: the model fitted on the rows themselves')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;

-- the BG/NBD log-likelihood in plain SQL (Hardie's note 027; integer x, so the
-- gamma function ratios are finite products)
CREATE FUNCTION pg_temp.bgnbd_ll(r float8, alpha float8, a float8, b float8) RETURNS float8
LANGUAGE sql AS $$
  SELECT sum(
           (SELECT coalesce(sum(ln(r + k) + ln(b + k) - ln(a + b + k)), 0) FROM generate_series(0, x::int - 1) k)
           + r * ln(alpha)
           + ln(power(alpha + tt, -(r + x)) + CASE WHEN x > 0 THEN a / (b + x - 1) * power(alpha + tx, -(r + x)) ELSE 0 END))
    FROM pat
$$;
SELECT ok((SELECT abs(m.log_likelihood - pg_temp.bgnbd_ll(m.r, m.alpha, m.a, m.b)) < 1e-8 AND m.converged
             FROM (SELECT (crm.bgnbd_finalfn(txt::crm.bgnbd_state)).* FROM saved WHERE version = v AND kind = 'bgnbd') m),
          v || ' bgnbd_state: converged, log-likelihood equals the plain-SQL one at the fitted parameters')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT ok((SELECT bool_and(pg_temp.bgnbd_ll(m.r * f[1], m.alpha * f[2], m.a * f[3], m.b * f[4]) < m.log_likelihood)
             FROM (SELECT (crm.bgnbd_finalfn(txt::crm.bgnbd_state)).* FROM saved WHERE version = v AND kind = 'bgnbd') m,
                  (VALUES (ARRAY[1.01, 1, 1, 1]), (ARRAY[0.99, 1, 1, 1]), (ARRAY[1, 1.01, 1, 1]), (ARRAY[1, 0.99, 1, 1]),
                          (ARRAY[1, 1, 1.01, 1]), (ARRAY[1, 1, 0.99, 1]), (ARRAY[1, 1, 1, 1.01]), (ARRAY[1, 1, 1, 0.99])) p(f)),
          v || ' bgnbd_state: the fit is a maximum of the plain-SQL log-likelihood (every 1% step lowers it)')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;

SELECT is((SELECT (crm.gamma_gamma_finalfn(txt::crm.gamma_gamma_state)).customers FROM saved WHERE version = v AND kind = 'gamma_gamma'),
          (SELECT count(*) FROM pat WHERE x > 0), v || ' gamma_gamma_state: the repeat buyers of plain SQL')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT is((SELECT crm.gamma_gamma_finalfn(txt::crm.gamma_gamma_state)::text FROM saved WHERE version = v AND kind = 'gamma_gamma'),
          (SELECT crm.gamma_gamma_fit(x, m)::text FROM pat), v || ' gamma_gamma_state: the model fitted on the rows themselves')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;
SELECT ok((SELECT (crm.gamma_gamma_finalfn(txt::crm.gamma_gamma_state)).converged FROM saved WHERE version = v AND kind = 'gamma_gamma'),
          v || ' gamma_gamma_state: the fit converges')
  FROM unnest(ARRAY['0.1.0', '0.2.0']) v;

-- the text written now reads back to the same state (same fit)
SELECT is((SELECT crm.bgnbd_finalfn(txt::crm.bgnbd_state::text::crm.bgnbd_state)::text FROM saved WHERE version = '0.2.0' AND kind = 'bgnbd'),
          (SELECT crm.bgnbd_fit(x, tx, tt)::text FROM pat), 'bgnbd_state: the text written now reads back to the same fit');
SELECT is((SELECT crm.gamma_gamma_finalfn(txt::crm.gamma_gamma_state::text::crm.gamma_gamma_state)::text FROM saved WHERE version = '0.2.0' AND kind = 'gamma_gamma'),
          (SELECT crm.gamma_gamma_fit(x, m)::text FROM pat), 'gamma_gamma_state: the text written now reads back to the same fit');

SELECT * FROM finish();
ROLLBACK;
