-- pgTAP: crm.load_demo builds a deterministic, consistent demo CRM
BEGIN;
SELECT plan(19);

SELECT has_function('crm', 'load_demo', ARRAY['integer', 'integer', 'date'], 'crm.load_demo(int, int, date) exists');

-- bad input: clear errors, nothing half-made
SELECT throws_ok($$SELECT * FROM crm.load_demo(0, 42, '2025-12-31')$$, '22023', NULL, 'customers = 0 is rejected');
SELECT throws_ok($$SELECT * FROM crm.load_demo(-5, 42, '2025-12-31')$$, '22023', NULL, 'negative customers are rejected');
SELECT throws_ok($$SELECT * FROM crm.load_demo(2000000000, 42, '2025-12-31')$$, '22023', NULL, 'absurdly many customers are rejected');
SELECT throws_ok($$SELECT * FROM crm.load_demo(NULL, 42, '2025-12-31')$$, '22004', NULL, 'NULL customers is rejected');
SELECT throws_ok($$SELECT * FROM crm.load_demo(10, 42, 'infinity')$$, '22023', NULL, 'an infinite as_of is rejected');

-- the runner loaded crm.load_demo(2000, 42, '2025-12-31'): remember its fingerprint
CREATE TEMP TABLE fp1 AS
SELECT (SELECT md5(string_agg(format('%s|%s|%s|%s', lead_id, created_at, channel, customer_id), ',' ORDER BY lead_id)) FROM crm_demo.leads) AS leads,
       (SELECT md5(string_agg(format('%s|%s|%s|%s', order_id, customer_id, ordered_at, amount), ',' ORDER BY order_id)) FROM crm_demo.orders) AS orders,
       (SELECT md5(string_agg(format('%s|%s|%s', interaction_id, kind, occurred_at), ',' ORDER BY interaction_id)) FROM crm_demo.interactions) AS inter;

-- the same arguments give the same data (under forced parallelism too)
SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0;
SELECT results_eq($$SELECT relation, row_count FROM crm.load_demo(2000, 42, '2025-12-31') WHERE relation = 'crm_demo.customers'$$,
                  $$VALUES ('crm_demo.customers', 2000::bigint)$$, 'exactly the requested number of customers');
SELECT is((SELECT md5(string_agg(format('%s|%s|%s|%s', lead_id, created_at, channel, customer_id), ',' ORDER BY lead_id)) FROM crm_demo.leads),
          (SELECT leads FROM fp1), 'same seed and as_of: same leads');
SELECT is((SELECT md5(string_agg(format('%s|%s|%s|%s', order_id, customer_id, ordered_at, amount), ',' ORDER BY order_id)) FROM crm_demo.orders),
          (SELECT orders FROM fp1), 'same seed and as_of: same orders');
SELECT is((SELECT md5(string_agg(format('%s|%s|%s', interaction_id, kind, occurred_at), ',' ORDER BY interaction_id)) FROM crm_demo.interactions),
          (SELECT inter FROM fp1), 'same seed and as_of: same interactions');
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;

-- consistency, checked independently of the generator
SELECT is((SELECT count(*) FROM crm_demo.deals WHERE stage = 'paid'), 2000::bigint, 'one paid deal per customer');
SELECT is((SELECT count(*) FROM crm_demo.leads l LEFT JOIN crm_demo.customers c USING (customer_id)
            WHERE l.customer_id IS NOT NULL AND c.customer_id IS NULL), 0::bigint, 'every converted lead points at a customer');
SELECT is((SELECT count(*) FROM crm_demo.deal_events e JOIN crm_demo.deals d USING (deal_id) WHERE e.changed_at < d.created_at),
          0::bigint, 'no stage event before its deal was created');
SELECT is((SELECT count(*) FROM (SELECT 1 FROM crm_demo.deal_events GROUP BY deal_id, stage HAVING count(*) > 1) s),
          0::bigint, 'each deal enters each stage at most once');
SELECT ok((SELECT max(t) FROM (SELECT max(changed_at) t FROM crm_demo.deal_events UNION ALL SELECT max(ordered_at) FROM crm_demo.orders
                               UNION ALL SELECT max(occurred_at) FROM crm_demo.interactions) s) <= '2025-12-31'::timestamptz,
          'nothing happens after as_of');
SELECT ok((SELECT min(ordered_at) FROM crm_demo.orders) >= '2025-12-31'::timestamptz - interval '730 days', 'history spans the 24 months before as_of');
SELECT ok((SELECT count(*) FROM crm_demo.invoices WHERE paid_at IS NULL) > 0, 'some invoices are never paid');
SELECT ok((SELECT count(DISTINCT channel) FROM crm_demo.leads) = 5 AND (SELECT count(*) FROM crm_demo.spend) > 0,
          'leads from five channels, with spend');
SELECT ok((SELECT count(*) FROM (SELECT customer_id FROM crm_demo.orders GROUP BY 1 HAVING count(*) > 1) s) > 200,
          'repeat purchases exist');

SELECT * FROM finish();
ROLLBACK;
