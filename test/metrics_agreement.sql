-- test/metrics_agreement.sql (pgTAP): issue 19's agreement test. Every metric of
-- docs/metrics.md, computed through every surface the dictionary names for it, on the demo
-- (crm.load_demo(2000, 42, '2025-12-31'), registered sources), Q4 2025 and the previous period
-- (2025-07-01 .. 09-30); the surfaces must give the same number. Each description starts with
-- "metric <name>:" so test/metrics_coverage.sh can check that every metric of the dictionary has
-- an agreement check. Plain-SQL checks of the values themselves are in metrics_acquisition.sql,
-- metrics_ltv.sql, metrics_pipeline.sql, dashboard_demo.sql and dashboard_fixture.sql.
BEGIN;
SELECT plan(81);
SET LOCAL TimeZone = 'UTC';
SELECT crm.set_dashboard_period('2025-10-01', '2025-12-31');

CREATE TEMP TABLE od AS SELECT * FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
CREATE TEMP TABLE vod AS SELECT * FROM crm.v_owner_dashboard;
CREATE TEMP TABLE ch AS SELECT * FROM crm.dashboard_channels('2025-10-01', '2025-12-31');
CREATE TEMP TABLE ch_prev AS SELECT * FROM crm.dashboard_channels('2025-07-01', '2025-09-30');
CREATE TEMP TABLE vch AS SELECT * FROM crm.v_channels;
CREATE TEMP TABLE mg AS SELECT * FROM crm.dashboard_managers('2025-10-01', '2025-12-31');
CREATE TEMP TABLE mg_prev AS SELECT * FROM crm.dashboard_managers('2025-07-01', '2025-09-30');
CREATE TEMP TABLE vmg AS SELECT * FROM crm.v_managers;
CREATE TEMP TABLE dp AS SELECT * FROM crm.dashboard_pipeline('2025-10-01', '2025-12-31');
CREATE TEMP TABLE dp_prev AS SELECT * FROM crm.dashboard_pipeline('2025-07-01', '2025-09-30');
CREATE TEMP TABLE vp AS SELECT * FROM crm.v_pipeline;
CREATE TEMP TABLE dls AS SELECT * FROM crm.dashboard_lead_sla('2025-10-01', '2025-12-31');
CREATE TEMP TABLE vls AS SELECT * FROM crm.v_lead_sla;
CREATE TEMP TABLE ls AS SELECT * FROM crm.lead_sla(
    'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads WHERE created_at >= ''2025-10-01'' AND created_at < ''2026-01-01''',
    'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL',
    spend_sql => 'SELECT channel, month, amount FROM crm_demo.spend');
CREATE TEMP TABLE dc AS SELECT * FROM crm.dashboard_coverage('2026-01-01');
CREATE TEMP TABLE dc_prev AS SELECT * FROM crm.dashboard_coverage('2025-10-01');
CREATE TEMP TABLE vc AS SELECT * FROM crm.v_coverage;

CREATE FUNCTION pg_temp.od(m text) RETURNS numeric LANGUAGE sql AS $$ SELECT value FROM od WHERE metric = m $$;
CREATE FUNCTION pg_temp.odp(m text) RETURNS numeric LANGUAGE sql AS $$ SELECT previous_value FROM od WHERE metric = m $$;

-- ===== owner dashboard: crm.owner_dashboard = crm.v_owner_dashboard, row by row ================
SELECT is((SELECT count(*) FROM od), 40::bigint, 'owner dashboard: 40 rows');
SELECT set_eq('SELECT section, metric, value, previous_value, change_pct, unit FROM od',
              'SELECT section, metric, value, previous_value, change_pct, unit FROM vod',
              'owner dashboard: every row of crm.owner_dashboard = crm.v_owner_dashboard (value and previous_value)');
-- each dictionary metric is one row of both surfaces
SELECT set_eq($$SELECT metric FROM od$$,
  $$VALUES ('leads_in'), ('new_buyers'), ('lead_to_buyer_conversion'), ('marketing_spend'), ('cac'), ('revenue'),
           ('orders'), ('buyers'), ('average_check'), ('repeat_purchase_rate'), ('gross_profit'), ('roi'), ('win_rate'),
           ('deals_won'), ('average_won_deal'), ('sales_cycle'), ('open_deals'), ('open_pipeline_value'),
           ('weighted_pipeline'), ('stale_deals'), ('stale_pipeline_value'), ('sales_velocity'), ('deals_lost'),
           ('lost_deal_value'), ('lost_value_at_lead'), ('lost_value_at_qualified'), ('lost_value_at_proposal'),
           ('lost_value_at_invoice'), ('unpaid_invoices'), ('unpaid_invoice_amount'), ('unpaid_invoice_age'),
           ('overdue_invoices'), ('overdue_invoice_amount'), ('unanswered_leads'), ('unanswered_leads_cost'),
           ('overdue_class_a_customers'), ('churned_customers'), ('churn_rate'), ('churned_revenue'),
           ('lost_opportunity_cost')$$,
  'owner dashboard: its rows are exactly the metrics of the dictionary');

-- ===== acquisition: owner dashboard vs channels ==================================================
SELECT is(pg_temp.od('leads_in'), (SELECT sum(leads) FROM ch), 'metric leads_in: owner_dashboard = sum of dashboard_channels leads');
SELECT is(pg_temp.odp('leads_in'), (SELECT sum(leads) FROM ch_prev), 'metric leads_in: previous period, owner_dashboard = dashboard_channels');
SELECT is(pg_temp.od('leads_in'), (SELECT leads::numeric FROM dls WHERE channel IS NULL), 'metric leads_in: owner_dashboard = dashboard_lead_sla total leads');
SELECT is(pg_temp.od('new_buyers'), (SELECT sum(new_buyers) FROM ch), 'metric new_buyers: owner_dashboard = sum of dashboard_channels new_buyers');
SELECT is(pg_temp.odp('new_buyers'), (SELECT sum(new_buyers) FROM ch_prev), 'metric new_buyers: previous period, owner_dashboard = dashboard_channels');
SELECT is(pg_temp.od('lead_to_buyer_conversion'),
          (SELECT round(100.0 * sum(round(conversion_pct * leads / 100)) / sum(leads), 2) FROM ch),
          'metric lead_to_buyer_conversion: owner_dashboard = converted leads summed over dashboard_channels / leads');
SELECT is(pg_temp.od('marketing_spend'), (SELECT sum(spend) FROM ch), 'metric marketing_spend: owner_dashboard = sum of dashboard_channels spend');
SELECT is(pg_temp.odp('marketing_spend'), (SELECT sum(spend) FROM ch_prev), 'metric marketing_spend: previous period, owner_dashboard = dashboard_channels');
SELECT is(pg_temp.od('cac'), (SELECT round(sum(spend) / sum(new_buyers), 2) FROM ch), 'metric cac: owner_dashboard = channel spend / channel new buyers');
SELECT is(pg_temp.od('revenue'), (SELECT sum(revenue) FROM ch), 'metric revenue: owner_dashboard = sum of dashboard_channels revenue');
SELECT is(pg_temp.odp('revenue'), (SELECT sum(revenue) FROM ch_prev), 'metric revenue: previous period, owner_dashboard = dashboard_channels');
SELECT is(pg_temp.od('revenue'), (SELECT sum(revenue) FROM mg), 'metric revenue: owner_dashboard = sum of dashboard_managers revenue');
SELECT is(pg_temp.od('gross_profit'), (SELECT sum(gross_profit) FROM ch), 'metric gross_profit: owner_dashboard = sum of dashboard_channels gross_profit');
SELECT is(pg_temp.odp('gross_profit'), (SELECT sum(gross_profit) FROM ch_prev), 'metric gross_profit: previous period, owner_dashboard = dashboard_channels');
SELECT is(pg_temp.od('roi'), (SELECT round(100 * (sum(gross_profit) - sum(spend)) / sum(spend), 2) FROM ch),
          'metric roi: owner_dashboard = ROI of the dashboard_channels totals');
SELECT is(pg_temp.od('orders'), (SELECT count(*)::numeric FROM crm_demo.orders WHERE ordered_at >= '2025-10-01' AND ordered_at < '2026-01-01'),
          'metric orders: owner_dashboard = count of the period''s orders');
SELECT is(pg_temp.od('average_check'), round(pg_temp.od('revenue') / pg_temp.od('orders'), 2), 'metric average_check: = owner_dashboard revenue / orders');
SELECT is(pg_temp.od('repeat_purchase_rate'),
          (SELECT round(100.0 * count(*) FILTER (WHERE n >= 2) / count(*), 2)
             FROM (SELECT o.customer_id, (SELECT count(*) FROM crm_demo.orders p WHERE p.customer_id = o.customer_id AND p.ordered_at < '2026-01-01') AS n
                     FROM crm_demo.orders o WHERE o.ordered_at >= '2025-10-01' AND o.ordered_at < '2026-01-01' GROUP BY o.customer_id) x),
          'metric repeat_purchase_rate: owner_dashboard = plain SQL');

-- churn and the value of a lead (issue 20): reproducible from other rows of the same dashboard
SELECT is(pg_temp.od('buyers'), (SELECT count(DISTINCT customer_id)::numeric FROM crm_demo.orders WHERE ordered_at >= '2025-10-01' AND ordered_at < '2026-01-01'),
          'metric buyers: owner_dashboard = customers with an order in the period');
SELECT is(pg_temp.od('churn_rate'), round(100.0 * pg_temp.od('churned_customers') / pg_temp.odp('buyers'), 2),
          'metric churn_rate, churned_customers: churn_rate = 100 x churned_customers / the previous period''s buyers (rows of the dashboard)');
SELECT ok(pg_temp.od('churned_customers') <= pg_temp.odp('buyers') AND pg_temp.od('churned_revenue') <= pg_temp.odp('revenue')
          AND pg_temp.od('churned_revenue') > 0,
          'metric churned_revenue: at most the previous period''s revenue, churned customers at most its buyers');
SELECT set_eq($$SELECT metric, value, previous_value FROM od WHERE metric IN ('buyers', 'churned_customers', 'churn_rate', 'churned_revenue', 'lost_opportunity_cost')$$,
              $$SELECT metric, value, previous_value FROM vod WHERE metric IN ('buyers', 'churned_customers', 'churn_rate', 'churned_revenue', 'lost_opportunity_cost')$$,
              'metric churn_rate, churned_revenue, lost_opportunity_cost, buyers: owner_dashboard = v_owner_dashboard');
-- whole calendar months, every channel-month with spend has leads: the leads' cost = marketing_spend
SELECT is(pg_temp.od('lost_opportunity_cost'),
          round((pg_temp.od('revenue') / pg_temp.od('buyers') * round(pg_temp.od('lead_to_buyer_conversion') * pg_temp.od('leads_in') / 100)
                 - pg_temp.od('marketing_spend')) / pg_temp.od('leads_in'), 2),
          'metric lost_opportunity_cost: = (revenue / buyers x converted leads - marketing_spend) / leads_in, from the dashboard rows');
SELECT is(pg_temp.odp('lost_opportunity_cost'),
          round((pg_temp.odp('revenue') / pg_temp.odp('buyers') * round(pg_temp.odp('lead_to_buyer_conversion') * pg_temp.odp('leads_in') / 100)
                 - pg_temp.odp('marketing_spend')) / pg_temp.odp('leads_in'), 2),
          'metric lost_opportunity_cost: previous period, from the dashboard rows');

-- ===== sales: owner dashboard vs managers and pipeline ===========================================
SELECT is(pg_temp.od('deals_won'), (SELECT sum(deals_won) FROM mg), 'metric deals_won: owner_dashboard = sum of dashboard_managers deals_won');
SELECT is(pg_temp.odp('deals_won'), (SELECT sum(deals_won) FROM mg_prev), 'metric deals_won: previous period, owner_dashboard = dashboard_managers');
SELECT is(pg_temp.od('deals_lost'), (SELECT sum(deals_lost) FROM mg), 'metric deals_lost: owner_dashboard = sum of dashboard_managers deals_lost');
SELECT is(pg_temp.odp('deals_lost'), (SELECT sum(deals_lost) FROM mg_prev), 'metric deals_lost: previous period, owner_dashboard = dashboard_managers');
SELECT is(pg_temp.od('win_rate'), (SELECT round(100.0 * sum(deals_won) / sum(deals_won + deals_lost), 2) FROM mg),
          'metric win_rate: owner_dashboard = won / (won + lost) of the dashboard_managers totals');
SELECT is(pg_temp.od('lost_deal_value'),
          pg_temp.od('lost_value_at_lead') + pg_temp.od('lost_value_at_qualified') + pg_temp.od('lost_value_at_proposal') + pg_temp.od('lost_value_at_invoice'),
          'metric lost_deal_value: = sum of the lost_value_at_<stage> rows');
SELECT is(pg_temp.odp('lost_deal_value'),
          pg_temp.odp('lost_value_at_lead') + pg_temp.odp('lost_value_at_qualified') + pg_temp.odp('lost_value_at_proposal') + pg_temp.odp('lost_value_at_invoice'),
          'metric lost_value_at_: previous period, lost_deal_value = sum of the lost_value_at_<stage> rows');
SELECT is(pg_temp.od('average_won_deal'),
          (SELECT round(avg(amount), 2) FROM (SELECT d.deal_id, max(d.amount) AS amount FROM crm_demo.deals d
              JOIN crm_demo.deal_events e ON e.deal_id = d.deal_id JOIN crm.pipeline_stages s ON s.stage = e.stage
             GROUP BY d.deal_id
            HAVING min(e.changed_at) FILTER (WHERE s.outcome = 'won') >= '2025-10-01'
               AND min(e.changed_at) FILTER (WHERE s.outcome = 'won') < '2026-01-01'
               AND min(e.changed_at) FILTER (WHERE s.outcome = 'won') <= coalesce(min(e.changed_at) FILTER (WHERE s.outcome = 'lost'), 'infinity')) w),
          'metric average_won_deal: owner_dashboard = plain SQL');
SELECT ok(abs(pg_temp.od('sales_velocity')
              - pg_temp.od('open_deals') * pg_temp.od('win_rate') / 100 * pg_temp.od('average_won_deal') / pg_temp.od('sales_cycle'))
          < 0.01 * pg_temp.od('sales_velocity'),
          'metric sales_velocity: = open_deals x win_rate x average_won_deal / sales_cycle of the same dashboard (within 1 %, inputs rounded)');
SELECT ok(pg_temp.od('sales_cycle') > 0 AND pg_temp.od('sales_cycle') = (SELECT value FROM vod WHERE metric = 'sales_cycle'),
          'metric sales_cycle: owner_dashboard = v_owner_dashboard, positive');
-- per manager (rounded to cents / hundredths of a day each): the average weighted by deals won = the dashboard figure
SELECT ok(abs(pg_temp.od('average_won_deal') - (SELECT sum(average_won_deal * deals_won) / sum(deals_won) FROM mg)) <= 0.01
          AND abs(pg_temp.odp('average_won_deal') - (SELECT sum(average_won_deal * deals_won) / sum(deals_won) FROM mg_prev)) <= 0.01,
          'metric average_won_deal: owner_dashboard = dashboard_managers weighted by deals_won, both periods');
SELECT ok(abs(pg_temp.od('sales_cycle') - (SELECT sum(sales_cycle_days * deals_won) / sum(deals_won) FROM mg)) <= 0.01
          AND abs(pg_temp.odp('sales_cycle') - (SELECT sum(sales_cycle_days * deals_won) / sum(deals_won) FROM mg_prev)) <= 0.01,
          'metric sales_cycle: owner_dashboard = dashboard_managers sales_cycle_days weighted by deals_won, both periods');
SELECT is((SELECT ARRAY[sum(calls), sum(meetings), sum(emails), sum(contacts)] FROM mg),
          (SELECT ARRAY[count(*) FILTER (WHERE kind = 'call'), count(*) FILTER (WHERE kind = 'meeting'),
                        count(*) FILTER (WHERE kind = 'email'), count(*)]::numeric[]
             FROM crm_demo.interactions WHERE NOT automated AND occurred_at >= '2025-10-01' AND occurred_at < '2026-01-01'),
          'metric calls, meetings, emails, contacts: dashboard_managers totals = the period''s real contacts');

-- pipeline: owner dashboard vs dashboard_pipeline vs v_pipeline
SELECT set_eq('SELECT stage, stage_order, outcome, probability, entered, open_deals, open_value, weighted_value, lost_deals, lost_value FROM dp',
              'SELECT stage, stage_order, outcome, probability, entered, open_deals, open_value, weighted_value, lost_deals, lost_value FROM vp',
              'pipeline: dashboard_pipeline = v_pipeline, every stage and column');
SELECT is(pg_temp.od('open_deals'), (SELECT sum(open_deals) FROM dp WHERE outcome = 'open'), 'metric open_deals: owner_dashboard = sum of dashboard_pipeline open_deals');
SELECT is(pg_temp.odp('open_deals'), (SELECT sum(open_deals) FROM dp_prev WHERE outcome = 'open'), 'metric open_deals: previous period, owner_dashboard = dashboard_pipeline');
SELECT is(pg_temp.od('open_pipeline_value'), (SELECT sum(open_value) FROM dp WHERE outcome = 'open'), 'metric open_pipeline_value: owner_dashboard = sum of dashboard_pipeline open_value');
SELECT is(pg_temp.odp('open_pipeline_value'), (SELECT sum(open_value) FROM dp_prev WHERE outcome = 'open'), 'metric open_pipeline_value: previous period, owner_dashboard = dashboard_pipeline');
SELECT ok(abs(pg_temp.od('weighted_pipeline') - (SELECT sum(weighted_value) FROM dp WHERE outcome = 'open'))
          <= 0.005 * (SELECT count(*) FROM dp WHERE outcome = 'open'),
          'metric weighted_pipeline: owner_dashboard = sum of dashboard_pipeline weighted_value (half a cent per stage)');
SELECT ok(abs(pg_temp.odp('weighted_pipeline') - (SELECT sum(weighted_value) FROM dp_prev WHERE outcome = 'open'))
          <= 0.005 * (SELECT count(*) FROM dp_prev WHERE outcome = 'open'),
          'metric weighted_pipeline: previous period, owner_dashboard = dashboard_pipeline');
SELECT ok(pg_temp.od('stale_deals') <= pg_temp.od('open_deals') AND pg_temp.od('stale_deals') = (SELECT value FROM vod WHERE metric = 'stale_deals'),
          'metric stale_deals: owner_dashboard = v_owner_dashboard, at most open_deals');
SELECT ok(pg_temp.od('stale_pipeline_value') <= pg_temp.od('open_pipeline_value')
          AND pg_temp.od('stale_pipeline_value') = (SELECT value FROM vod WHERE metric = 'stale_pipeline_value'),
          'metric stale_pipeline_value: owner_dashboard = v_owner_dashboard, at most open_pipeline_value');

-- invoices: only the owner dashboard (and its view) shows them; plain SQL for one surface
SELECT is(ARRAY[pg_temp.od('unpaid_invoices'), pg_temp.od('unpaid_invoice_amount'), pg_temp.od('overdue_invoices'), pg_temp.od('overdue_invoice_amount'), pg_temp.od('unpaid_invoice_age')],
          (SELECT ARRAY[count(*)::numeric, sum(amount), count(*) FILTER (WHERE due_at < '2026-01-01')::numeric,
                        sum(amount) FILTER (WHERE due_at < '2026-01-01'),
                        round(avg(extract(epoch FROM '2026-01-01'::timestamptz - issued_at) / 86400)::numeric, 2)]
             FROM crm_demo.invoices WHERE issued_at < '2026-01-01' AND (paid_at IS NULL OR paid_at >= '2026-01-01')),
          'metric unpaid_invoices, unpaid_invoice_amount, overdue_invoices, overdue_invoice_amount, unpaid_invoice_age: owner_dashboard = plain SQL');

-- ===== lead SLA: owner dashboard, dashboard_lead_sla, v_lead_sla, lead_sla, managers ==============
SELECT set_eq('SELECT coalesce(channel, ''all''), leads, answered, within_sla, never_answered, within_sla_pct, median_response_minutes FROM dls',
              'SELECT channel, leads, answered, within_sla, never_answered, within_sla_pct, median_response_minutes FROM vls',
              'metric within_sla, within_sla_pct, median response: dashboard_lead_sla = v_lead_sla, every channel and column');
SELECT set_eq($$SELECT coalesce(channel, 'all'), leads, answered, within_sla, within_sla_pct, never_answered, median_response_minutes FROM dls$$,
              $$SELECT key, leads, answered, within_sla, within_sla_pct, never_answered, round((extract(epoch FROM median_response) / 60)::numeric, 2) FROM ls WHERE dimension <> 'manager'$$,
              'metric leads, answered, within_sla, within_sla_pct, never_answered, median_response: dashboard_lead_sla = lead_sla per channel and total');
SELECT set_eq($$SELECT manager_id, leads, answered_leads, unanswered_leads, median_response_minutes FROM mg$$,
              $$SELECT key, leads, answered, never_answered, round((extract(epoch FROM median_response) / 60)::numeric, 2) FROM ls WHERE dimension = 'manager'$$,
              'metric leads, answered, never_answered, median_response: dashboard_managers = lead_sla per manager');
SELECT is((SELECT leads::numeric FROM ls WHERE dimension = 'total'), pg_temp.od('leads_in'), 'metric leads: lead_sla total = owner_dashboard leads_in');
SELECT is((SELECT sum(leads) FROM ch), (SELECT sum(leads) FROM mg), 'metric leads: dashboard_channels total = dashboard_managers total');
SELECT set_eq('SELECT channel, leads FROM ch', $$SELECT key, leads FROM ls WHERE dimension = 'channel'$$,
              'metric leads: dashboard_channels = lead_sla per channel');
SELECT is(pg_temp.od('unanswered_leads'), (SELECT never_answered::numeric FROM dls WHERE channel IS NULL), 'metric unanswered_leads: owner_dashboard = dashboard_lead_sla never_answered');
SELECT is(pg_temp.od('unanswered_leads'), (SELECT never_answered::numeric FROM ls WHERE dimension = 'total'), 'metric unanswered_leads: owner_dashboard = lead_sla never_answered');
SELECT is(pg_temp.od('unanswered_leads'), (SELECT sum(unanswered_leads) FROM mg), 'metric unanswered_leads: owner_dashboard = sum of dashboard_managers unanswered_leads');
SELECT is(pg_temp.od('unanswered_leads_cost'), (SELECT never_answered_cost FROM ls WHERE dimension = 'total'),
          'metric unanswered_leads_cost, never_answered_cost: owner_dashboard = lead_sla');

-- ===== coverage: owner dashboard, dashboard_coverage, v_coverage, dashboard_managers, crm.coverage =
SELECT set_eq('SELECT abc_class, customers, covered, overdue, coverage_pct FROM vc',
              $$SELECT abc_class, count(*) AS n, count(*) FILTER (WHERE covered) AS cov, count(*) FILTER (WHERE NOT covered) AS ovd,
                       round(100.0 * count(*) FILTER (WHERE covered) / count(*), 2) AS pct FROM dc GROUP BY abc_class$$,
              'metric customers, covered, overdue, coverage_pct: v_coverage = dashboard_coverage per class');
SELECT is(pg_temp.od('overdue_class_a_customers'), (SELECT overdue::numeric FROM vc WHERE abc_class = 'A'),
          'metric overdue_class_a_customers: owner_dashboard = v_coverage class A overdue');
SELECT is(pg_temp.odp('overdue_class_a_customers'), (SELECT count(*)::numeric FROM dc_prev WHERE abc_class = 'A' AND NOT covered),
          'metric overdue_class_a_customers: previous period, owner_dashboard = dashboard_coverage');
SELECT set_eq($$SELECT manager_id, customers, covered_customers, coverage_pct FROM mg$$,
              $$SELECT manager_id, count(*) AS n, count(*) FILTER (WHERE covered) AS cov, round(100.0 * count(*) FILTER (WHERE covered) / count(*), 2) AS pct
                  FROM dc GROUP BY manager_id$$,
              'metric customers, covered, coverage_pct: dashboard_managers = dashboard_coverage per manager');
-- crm.coverage with the dashboard's classes and its default kinds and policy
SELECT ok(crm.attach_coverage('crm_demo.interactions', customers => 'crm_demo.customers') > 0, 'coverage: attached to the demo');
SELECT ok(crm.coverage_set_classes('SELECT customer_id::int, abc_class FROM pg_temp.dc WHERE abc_class IS NOT NULL') > 0, 'coverage: dashboard classes set');
SET LOCAL crm.coverage_as_of = '2026-01-01';
SELECT set_eq($$SELECT class, customers, covered, overdue, coverage_pct FROM crm.coverage_by_class WHERE class IS NOT NULL$$,
              'SELECT abc_class, customers, covered, overdue, coverage_pct FROM vc',
              'metric customers, covered, overdue, coverage_pct: coverage_by_class = v_coverage');
SELECT is(pg_temp.od('overdue_class_a_customers'), (SELECT overdue::numeric FROM crm.coverage_by_class WHERE class = 'A'),
          'metric overdue_class_a_customers: owner_dashboard = coverage_by_class');
SELECT set_eq($$SELECT class, count(*) FILTER (WHERE status IN ('ok', 'due soon')) AS cov, count(*) FILTER (WHERE status = 'due soon') AS soon,
                       count(*) FILTER (WHERE status = 'overdue') AS ovd, count(*) FILTER (WHERE last_contact IS NULL) AS never
                  FROM crm.coverage_status WHERE class IS NOT NULL GROUP BY class$$,
              $$SELECT class, covered, due_soon, overdue, never_contacted FROM crm.coverage_by_class WHERE class IS NOT NULL$$,
              'metric due_soon, never_contacted, covered, overdue: coverage_status = coverage_by_class');
SELECT is((SELECT ARRAY[sum(covered), sum(due_soon), sum(overdue), sum(never_contacted)] FROM crm.coverage_by_manager),
          (SELECT ARRAY[sum(covered), sum(due_soon), sum(overdue), sum(never_contacted)] FROM crm.coverage_by_class),
          'metric due_soon, never_contacted: coverage_by_manager totals = coverage_by_class totals');
SELECT is((SELECT count(*) FROM crm.coverage_overdue), (SELECT sum(overdue)::bigint FROM crm.coverage_by_class),
          'metric overdue: coverage_overdue rows = coverage_by_class overdue');
SELECT is((SELECT count(*) FROM crm.coverage c JOIN dc ON dc.customer_id = c.customer_id::text
            WHERE c.class IS NOT NULL AND c.next_due IS DISTINCT FROM dc.next_due), 0::bigint,
          'metric contact_interval: crm.coverage next_due (last contact + contact_interval) = dashboard_coverage next_due, every customer');
SELECT is(crm.detach_coverage(), true, 'coverage: detached');

-- ===== channels and managers: function = view ===================================================
SELECT set_eq($$SELECT channel, metric, value FROM vch$$,
              $$SELECT channel, m, v FROM ch, LATERAL (VALUES ('leads', leads::numeric), ('new_buyers', new_buyers::numeric),
                  ('conversion', conversion_pct), ('revenue', revenue), ('gross_profit', gross_profit), ('spend', spend),
                  ('cac', cac), ('roi', roi_pct), ('ltv', ltv), ('ltv_cac', ltv_cac)) x(m, v)$$,
              'metric ltv, ltv_cac (channel): v_channels = dashboard_channels, every channel and metric');
SELECT set_eq($$SELECT manager_id, metric, value FROM vmg$$,
              $$SELECT manager_id, m, v FROM mg, LATERAL (VALUES ('leads', leads::numeric), ('answered_leads', answered_leads::numeric),
                  ('unanswered_leads', unanswered_leads::numeric), ('median_response', median_response_minutes),
                  ('deals_won', deals_won::numeric), ('deals_lost', deals_lost::numeric), ('win_rate', win_rate_pct),
                  ('revenue', revenue), ('customers', customers::numeric), ('covered_customers', covered_customers::numeric),
                  ('coverage', coverage_pct), ('calls', calls::numeric), ('meetings', meetings::numeric),
                  ('emails', emails::numeric), ('contacts', contacts::numeric), ('average_won_deal', average_won_deal),
                  ('sales_cycle', sales_cycle_days)) x(m, v)$$,
              'managers: v_managers = dashboard_managers, every manager and metric');
SELECT ok((SELECT bool_and(ltv_cac IS NOT DISTINCT FROM round(ltv / cac, 2)) FROM ch),
          'metric ltv_cac: dashboard_channels ltv_cac = its ltv / cac');

-- the HTML page draws the same rows (formatted by crm._fmt)
CREATE TEMP TABLE html AS SELECT crm.dashboard_html('2025-10-01', '2025-12-31') AS page;
SELECT is((SELECT string_agg(metric, ', ') FROM od WHERE strpos((SELECT page FROM html), crm._fmt(value)) = 0), NULL,
          'owner dashboard: dashboard_html shows the value of every owner_dashboard row');
SELECT is((SELECT string_agg(channel, ', ') FROM ch WHERE strpos((SELECT page FROM html), '<td class="n">' || crm._fmt(cac) || '</td><td class="n">' || crm._fmt(ltv_cac) || '</td>') = 0), NULL,
          'metric ltv_cac: dashboard_html shows every channel''s dashboard_channels ltv_cac');

-- ===== LTV: historical vs channel ================================================================
CREATE TEMP TABLE hl AS SELECT * FROM crm.historical_ltv('SELECT customer_id, ordered_at, amount, cost FROM crm_demo.orders',
                                                          'SELECT month, amount FROM crm_demo.spend');
-- the channel LTV at the end of the data is LTV to date split by channel: weight it back by buyers
SELECT ok(abs((SELECT ltv_to_date FROM hl)
              - (SELECT sum(ch.ltv * b.n) / sum(b.n) FROM ch JOIN (
                    SELECT coalesce(c.channel, '(unknown)') AS channel, count(DISTINCT o.customer_id) AS n
                      FROM crm_demo.orders o LEFT JOIN crm_demo.customers c ON c.customer_id = o.customer_id
                     WHERE o.ordered_at < '2026-01-01' GROUP BY 1) b ON b.channel = ch.channel)) < 0.01,
          'metric ltv_to_date: historical_ltv = dashboard_channels ltv weighted by buyers (same value to date)');
SELECT cmp_ok((SELECT ltv FROM hl), '>=', (SELECT ltv_to_date FROM hl), 'metric ltv (historical): ltv >= ltv_to_date');

-- predicted CLV: one default per parameter (12 months, 1 % a month)
SELECT is(crm.clv(b, g, 2, 30, 52, 100, interval '1 week'), crm.clv(b, g, 2, 30, 52, 100, interval '1 week', 12, 0.01),
          'metric clv: crm.clv defaults = 12 months at 1 % a month')
  FROM (SELECT crm.bgnbd_fit((s).frequency, (s).recency, (s).t) AS b,
               crm.gamma_gamma_fit((s).frequency, (s).monetary) FILTER (WHERE (s).frequency > 0) AS g
          FROM (SELECT crm.clv_summary(ordered_at, amount, '2026-01-01', '7 days') AS s
                  FROM crm_demo.orders GROUP BY customer_id) c) f;

SELECT * FROM finish();
ROLLBACK;
