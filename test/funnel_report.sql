BEGIN;
SELECT plan(26);

-- ======================================================================
-- funnel_report on a hand-worked fixture (see docs/funnel.md, worked example)
-- ======================================================================
CREATE TEMP TABLE fx(deal int, at timestamptz, stage varchar, amount int);
INSERT INTO fx VALUES
  -- deal 1: lead -> qualified -> proposal -> paid, all within 30 days
  (1, '2025-01-01', 'lead', 100), (1, '2025-01-03', 'qualified', 100), (1, '2025-01-10', 'proposal', 100), (1, '2025-01-20', 'paid', 100),
  -- deal 2: stops at qualified
  (2, '2025-01-05', 'lead', 200), (2, '2025-01-06', 'qualified', 200),
  -- deal 3: proposal 40 days after lead: outside the window, stops at qualified
  (3, '2025-01-01', 'lead', 300), (3, '2025-01-02', 'qualified', 300), (3, '2025-02-10', 'proposal', 300),
  -- deal 4: only a lead; deal 5: no lead event at all (level 0, outside the funnel)
  (4, '2025-01-07', 'lead', 400), (5, '2025-01-07', 'qualified', 500),
  -- deal 6: reaches proposal, value NULL
  (6, '2025-01-01', 'lead', NULL), (6, '2025-01-04', 'qualified', NULL), (6, '2025-01-08', 'proposal', NULL);

CREATE TEMP TABLE rep AS
SELECT * FROM crm.funnel_report('SELECT deal, at, stage, amount FROM fx', ARRAY['lead', 'qualified', 'proposal', 'paid']);
SELECT results_eq('SELECT step_no, step, entered, dropped FROM rep ORDER BY step_no',
    $$VALUES (1, 'lead'::text, 5::bigint, 1::bigint), (2, 'qualified', 4, 2), (3, 'proposal', 2, 1), (4, 'paid', 1, 0)$$,
    'entered and dropped per step, worked by hand');
SELECT results_eq('SELECT pct_of_first, pct_of_prev FROM rep ORDER BY step_no',
    $$VALUES (100.00::numeric, NULL::numeric), (80.00, 80.00), (40.00, 50.00), (20.00, 50.00)$$,
    'conversion: % of step 1 and % of the previous step');
SELECT results_eq('SELECT median_time_from_prev FROM rep ORDER BY step_no',
    $$VALUES (NULL::interval), ('1 day 12:00:00'::interval), ('5 days 12:00:00'), ('10 days')$$,
    'median time from the previous step (deals 1,2,3,6: 2d,1d,1d,3d -> 1.5 d; deals 1,6: 7d,4d -> 5.5 d)');
SELECT results_eq('SELECT lost_value FROM rep ORDER BY step_no',
    $$VALUES (400::numeric), (500), (0), (0)$$,
    'lost value: deal 4 at lead, deals 2+3 at qualified, deal 6 (no value) at proposal');
SELECT results_eq($$SELECT lost_value FROM crm.funnel_report('SELECT deal, at, stage FROM fx', ARRAY['lead', 'qualified'])$$,
    $$VALUES (NULL::numeric), (NULL)$$, 'without a value column lost_value is NULL');
SELECT results_eq($$SELECT entered FROM crm.funnel_report('SELECT deal, at, stage FROM fx', ARRAY['lead', 'qualified', 'proposal'], '60 days')$$,
    $$VALUES (5::bigint), (4), (3)$$, 'a wider window lets deal 3 reach proposal');
SELECT results_eq($$SELECT entered FROM crm.funnel_report('SELECT deal, at::date, stage::text FROM fx', ARRAY['lead', 'qualified'], '30 days', 'strict_order')$$,
    $$VALUES (5::bigint), (4)$$, 'date times and a mode are accepted');

-- ======================================================================
-- funnel_report on the demo deal stage events = the plain-SQL computation
-- ======================================================================
CREATE TEMP TABLE demo_rep AS
SELECT * FROM crm.funnel_report(
    'SELECT e.deal_id, e.changed_at, e.stage, d.amount FROM crm_demo.deal_events e JOIN crm_demo.deals d USING (deal_id)',
    ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid'], '365 days');
-- independent: per deal, the stages it entered in order (the demo's stages only move forward)
CREATE TEMP TABLE demo_plain AS
WITH lvl AS (
    SELECT d.deal_id, d.amount,
           (SELECT count(*) FROM unnest(ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid']) WITH ORDINALITY s(stage, k)
             WHERE EXISTS (SELECT 1 FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id AND e.stage = s.stage)) AS reached,
           (SELECT array_agg(e.changed_at ORDER BY s.k) FROM unnest(ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid']) WITH ORDINALITY s(stage, k)
              JOIN crm_demo.deal_events e ON e.deal_id = d.deal_id AND e.stage = s.stage) AS t
      FROM crm_demo.deals d
)
SELECT k AS step_no,
       count(*) FILTER (WHERE reached >= k) AS entered,
       count(*) FILTER (WHERE reached = k AND k < 5) AS dropped,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY t[k] - t[k - 1]) FILTER (WHERE reached >= k AND k > 1) AS med,
       COALESCE(sum(amount) FILTER (WHERE reached = k AND k < 5), 0) AS lost
  FROM lvl, generate_series(1, 5) k GROUP BY k;
SELECT ok((SELECT count(*) FROM crm_demo.deal_events) > 1000, 'demo stage events are loaded');
SELECT is((SELECT bool_and(span < '365 days') FROM (SELECT max(changed_at) - min(changed_at) AS span FROM crm_demo.deal_events GROUP BY deal_id) x), true,
          'demo deals move within the 365-day window');
SELECT is((SELECT count(*) FROM (SELECT deal_id, stage FROM crm_demo.deal_events GROUP BY 1, 2 HAVING count(*) > 1) x), 0::bigint,
          'demo deals enter each stage once (so the plain SQL below is exact)');
SELECT results_eq('SELECT step_no, entered, dropped, lost_value FROM demo_rep ORDER BY step_no',
                  'SELECT step_no, entered, dropped, lost FROM demo_plain ORDER BY step_no',
                  'demo funnel: entered, dropped and lost value = plain SQL');
SELECT results_eq('SELECT step_no, median_time_from_prev FROM demo_rep ORDER BY step_no',
                  'SELECT step_no, med FROM demo_plain ORDER BY step_no',
                  'demo funnel: median time from the previous step = plain SQL');
SELECT ok((SELECT bool_and(entered > 0) AND min(entered) < max(entered) FROM demo_rep), 'the demo funnel narrows');
-- breakdown per channel: window_funnel + funnel_counts with GROUP BY = funnel_report per channel
SELECT results_eq(
    $$SELECT channel, crm.funnel_counts(lvl, 5)
        FROM (SELECT d.channel, e.deal_id,
                     crm.window_funnel('365 days', e.changed_at, e.stage = 'lead', e.stage = 'qualified', e.stage = 'proposal',
                                       e.stage = 'invoice', e.stage = 'paid') AS lvl
                FROM crm_demo.deal_events e JOIN crm_demo.deals d USING (deal_id) GROUP BY 1, 2) per
       GROUP BY channel ORDER BY channel$$,
    $$SELECT c.channel, array_agg(r.entered ORDER BY r.step_no)
        FROM crm_demo.channels c,
             LATERAL crm.funnel_report(pg_catalog.format('SELECT e.deal_id, e.changed_at, e.stage FROM crm_demo.deal_events e
                                                          JOIN crm_demo.deals d USING (deal_id) WHERE d.channel = %L', c.channel),
                                       ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid'], '365 days') r
       GROUP BY c.channel ORDER BY c.channel$$,
    'per-channel breakdown: GROUP BY over the aggregates = funnel_report per channel');

-- ======================================================================
-- bad input
-- ======================================================================
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, stage, at FROM fx', ARRAY['lead'])$$, '42804',
    'column 2 ("stage") of the inner query has type character varying, expected timestamptz for ts',
    'wrong column type: error names the expected columns');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at FROM fx', ARRAY['lead'])$$, '42804',
    'inner query returns 2 columns, expected (entity, ts timestamptz, step text [, value numeric])',
    'too few columns');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage, amount, 1 FROM fx', ARRAY['lead'])$$, '42804',
    'inner query returns 5 columns, expected (entity, ts timestamptz, step text [, value numeric])',
    'too many columns');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage, stage FROM fx', ARRAY['lead'])$$, '42804',
    NULL, 'a text value column');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx', ARRAY[['lead'], ['paid']])$$, '2202E',
                 'funnel_report steps must be a one-dimensional array', 'two-dimensional steps');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx', NULL)$$, '22004',
    'funnel_report steps must not be null', 'NULL steps');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx', '{}')$$, '22023',
    'funnel_report needs at least 1 step', 'no steps');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx', array_fill('x'::text, ARRAY[65]))$$, '54000',
    'funnel_report supports at most 64 steps, got 65', '65 steps');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx', ARRAY['lead', NULL])$$, '22004',
    'funnel_report steps must not contain null', 'a NULL step name');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx WHERE false', ARRAY['lead'], '-1 day')$$, '22023',
    'window must not be negative', 'negative window, even with no rows');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx WHERE false', ARRAY['lead'], '1 day', 'fast')$$, '22023',
    'unknown funnel mode "fast"', 'unknown mode, even with no rows');
SELECT throws_ok($$SELECT * FROM crm.funnel_report('SELECT deal, at, stage FROM fx', ARRAY['lead'], NULL)$$, '22004',
    'funnel_report window must not be null', 'NULL window');

SELECT * FROM finish();
ROLLBACK;
