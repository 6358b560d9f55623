-- pgTAP (hardening, issue 16 items 7, 8, 9): range parameters are validated
-- (finite, from before to, a bounded number of periods), empty periods give
-- NULL rates instead of a division by zero, and the grants let a reporting
-- role read what the public views need while the source registry (SQL text)
-- is not readable by everyone.
BEGIN;
SELECT plan(32);
SET LOCAL TimeZone = 'UTC';
-- every call here is instant; 0.2.0 ran abc_xyz_report(..., '-infinity', ...) until the disk filled
SET LOCAL statement_timeout = '10s';

-- ---------------------------------------------------------------- item 7: ranges
-- abc_xyz_report ran generate_series from -infinity until the disk filled
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '-infinity', now())$$,
                 '22008', 'from_ts and to_ts must be finite', 'abc_xyz_report: from -infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2025-01-01', 'infinity')$$,
                 '22008', 'from_ts and to_ts must be finite', 'abc_xyz_report: to infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2025-06-01', '2025-01-01')$$,
                 '22023', NULL, 'abc_xyz_report: from after to is refused');
-- 0001-01-01 .. 2025-01-01 is 739,000 days, 105,000 weeks, 24,288 months, (limit: 10000 periods)
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '0001-01-01', '2025-01-01', 'day')$$,
                 '54000', NULL, 'abc_xyz_report: 739,000 daily periods are refused');
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '0001-01-01', '2025-01-01', 'week')$$,
                 '54000', NULL, 'abc_xyz_report: 105,000 weekly periods are refused');
SELECT throws_ok($$SELECT * FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '0001-01-01', '2025-01-01', 'month')$$,
                 '54000', '[0001-01-01 00:00:00+00, 2025-01-01 00:00:00+00) holds more than 10000 periods of one month',
                 'abc_xyz_report: 24,288 monthly periods are refused before any is generated');
SELECT is((SELECT count(*) FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '0001-01-01', '2001-01-01', 'year')),
          0::bigint, 'abc_xyz_report: 2,000 yearly periods (under the limit) run, and find no demo sales before 2001');
SELECT is((SELECT max(periods) FROM crm.abc_xyz_report('SELECT product_id, ordered_at, quantity, amount FROM crm_demo.orders', '2025-01-01', '2026-01-01', 'week')),
          53, 'abc_xyz_report: a normal range still works (53 weeks from the week of 2025-01-01)');

-- the dashboard's period bounds
SELECT throws_ok($$SELECT * FROM crm.owner_dashboard('-infinity', '2025-12-31')$$, '22008', NULL, 'owner_dashboard: from -infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.dashboard_channels('2025-12-01', 'infinity')$$, '22008', NULL, 'dashboard_channels: to infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.dashboard_managers('infinity', 'infinity')$$, '22008', NULL, 'dashboard_managers: infinity to infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.dashboard_pipeline('2025-12-10', '2025-12-01')$$, '22023', NULL, 'dashboard_pipeline: from after to is refused');
SELECT throws_ok($$SELECT * FROM crm.dashboard_funnel('4000-01-01 BC', '5000-12-31')$$, '22008', NULL,
                 'dashboard_funnel: a span whose previous period leaves the date range is an error, not a crash');
SELECT throws_ok($$SELECT * FROM crm.dashboard_rfm('infinity')$$, '22008', NULL, 'dashboard_rfm: as_of infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.dashboard_abc_xyz('-infinity')$$, '22008', NULL, 'dashboard_abc_xyz: as_of -infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.dashboard_retention('infinity')$$, '22008', NULL, 'dashboard_retention: as_of infinity is refused');
SELECT throws_ok($$SELECT * FROM crm.dashboard_coverage('infinity')$$, '22008', NULL, 'dashboard_coverage: as_of infinity is refused');

-- item 9: set_dashboard_period('infinity', 'infinity') was accepted and broke every view
SELECT throws_ok($$SELECT crm.set_dashboard_period('infinity', 'infinity')$$, '22008',
                 'dashboard period bounds must be finite, got infinity to infinity', 'set_dashboard_period: infinity is refused');
SELECT throws_ok($$SELECT crm.set_dashboard_period('-infinity', '2025-12-31')$$, '22008', NULL, 'set_dashboard_period: -infinity is refused');
SELECT throws_ok($$SELECT crm.set_dashboard_period('2025-12-31', '2025-12-01')$$, '22023', NULL, 'set_dashboard_period: from after to is refused');
SELECT lives_ok($$SELECT count(*) FROM crm.v_owner_dashboard$$, 'after the refused settings the views still work');

-- ---------------------------------------------------------------- item 8: empty periods
-- no demo lead is created in 2030: one total row, 0 leads, NULL rate (it divided by zero)
SELECT results_eq($$SELECT channel, leads, answered, within_sla, never_answered, within_sla_pct, median_response_minutes
                      FROM crm.dashboard_lead_sla('2030-01-01', '2030-01-31')$$,
                  $$VALUES (NULL::text, 0::bigint, 0::bigint, 0::bigint, 0::bigint, NULL::numeric, NULL::numeric)$$,
                  'dashboard_lead_sla: a period without leads gives 0 leads and a NULL share, not a division by zero');
SELECT lives_ok($$SELECT crm.set_dashboard_period('2030-01-01', '2030-01-31')$$, 'dashboard period set to an empty month');
SELECT results_eq($$SELECT channel, leads, within_sla_pct FROM crm.v_lead_sla$$,
                  $$VALUES ('all'::text, 0::bigint, NULL::numeric)$$,
                  'v_lead_sla: an empty period shows the "all" row with a NULL share');
SELECT results_eq($$SELECT dimension, leads, within_sla_pct FROM crm.lead_sla('SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE false',
                                                                           'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions')$$,
                  $$VALUES ('total'::text, 0::bigint, NULL::numeric)$$,
                  'lead_sla: no leads at all gives the total row with a NULL share');
SELECT lives_ok($$SELECT crm.set_dashboard_period('2025-12-01', '2025-12-31')$$, 'dashboard period back to December 2025');

-- ---------------------------------------------------------------- item 9: grants
SELECT is((SELECT count(*) FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
            WHERE c.oid = 'crm.sources'::regclass AND a.grantee = 0), 0::bigint,
          'crm.sources (SQL text) grants nothing to PUBLIC');
-- a reporting role: USAGE on crm and nothing else of the extension; it may
-- read the demo tables the registered sources read
CREATE ROLE sp_reporter NOLOGIN;
GRANT USAGE ON SCHEMA crm, crm_demo TO sp_reporter;
GRANT SELECT ON ALL TABLES IN SCHEMA crm_demo TO sp_reporter;
SET LOCAL ROLE sp_reporter;
SELECT is(crm.rfm_segment(5, 5), 'Champions', 'a reporting role reads the RFM segment map (it got permission denied on rfm_segment_overrides)');
SELECT throws_ok($$SELECT query FROM crm.sources$$, '42501', NULL, 'a reporting role cannot read the registered SQL text');
SELECT throws_ok($$SELECT count(*) FROM crm.v_rfm$$, '42501', 'permission denied for the source registry crm.sources',
                 'v_rfm without SELECT on crm.sources: a clear permission error');
RESET ROLE;
GRANT SELECT ON crm.sources TO sp_reporter;
SET LOCAL ROLE sp_reporter;
-- independent: the buyers with an order up to the end of the period
SELECT is((SELECT count(*) FROM crm.v_rfm),
          (SELECT count(DISTINCT customer_id) FROM crm_demo.orders WHERE ordered_at < '2026-01-01'),
          'v_rfm works for a reporting role granted SELECT on crm.sources: one row per buyer');
SELECT is((SELECT count(*) FROM crm.v_rfm WHERE segment = crm.rfm_segment(r, f)), (SELECT count(*) FROM crm.v_rfm),
          'v_rfm segments are the map''s for the reporting role');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
