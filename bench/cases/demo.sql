-- demo: loading the demo CRM (crm.load_demo) at N/10 customers, against a bare scan of its orders
-- @setup
SELECT count(*) FROM crm.load_demo(greatest(1, :N / 10), 42, '2025-12-31');
-- @floor scan_orders
SELECT count(*) FROM crm_demo.orders;
-- @query load_demo_5000
SELECT count(*) FROM crm.load_demo(5000, 7, '2025-12-31');
