-- dashboard: the owner dashboard and its reports on the demo CRM with N customers
-- (bash bench/run 100000 dashboard: 300k leads, 1.07M stage events, 261k orders, 2M interactions)
-- @setup
SELECT count(*) FROM crm.load_demo(:N, 42, '2025-12-31');
-- @floor scan_sources
SELECT (SELECT count(*) FROM crm_demo.deal_events e JOIN crm_demo.deals d ON d.deal_id = e.deal_id)
     + (SELECT count(*) FROM crm_demo.interactions) + (SELECT count(*) FROM crm_demo.orders)
     + (SELECT count(*) FROM crm_demo.leads);
-- @query owner_dashboard_q4
SELECT count(*) FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
-- @query owner_dashboard_dec
SELECT count(*) FROM crm.owner_dashboard('2025-12-01', '2025-12-31');
-- @query channels_q4
SELECT count(*) FROM crm.dashboard_channels('2025-10-01', '2025-12-31');
-- @query managers_q4
SELECT count(*) FROM crm.dashboard_managers('2025-10-01', '2025-12-31');
-- @query pipeline_q4
SELECT count(*) FROM crm.dashboard_pipeline('2025-10-01', '2025-12-31');
-- @query funnel_q4
SELECT count(*) FROM crm.dashboard_funnel('2025-10-01', '2025-12-31');
-- @query retention_12m
SELECT count(*) FROM crm.dashboard_retention('2025-12-31');
-- @query rfm
SELECT count(*) FROM crm.dashboard_rfm('2025-12-31');
-- @query abc_xyz
SELECT count(*) FROM crm.dashboard_abc_xyz('2025-12-31');
-- @query lead_sla_q4
SELECT count(*) FROM crm.dashboard_lead_sla('2025-10-01', '2025-12-31');
-- @query coverage
SELECT count(*) FROM crm.v_coverage;
-- @set max_parallel_workers_per_gather = 2
-- @query owner_dashboard_q4_parallel
SELECT count(*) FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
