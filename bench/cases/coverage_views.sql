-- coverage views over N customers (default 1,000,000) with 2 interactions each, attached.
-- @setup
DROP TABLE IF EXISTS bench_cov_customers, bench_cov_interactions CASCADE;
CREATE TABLE bench_cov_customers (customer_id bigint PRIMARY KEY, class text NOT NULL, manager_id int NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO bench_cov_customers
SELECT g, CASE WHEN g % 10 = 0 THEN 'A' WHEN g % 10 < 4 THEN 'B' ELSE 'C' END, 1 + g % 50,
       '2024-01-01'::timestamptz + (g % 365) * interval '1 day'
  FROM generate_series(1, :N) g;
CREATE TABLE bench_cov_interactions (interaction_id bigserial PRIMARY KEY, customer_id bigint, kind text, direction text,
                                     automated boolean NOT NULL, occurred_at timestamptz NOT NULL);
INSERT INTO bench_cov_interactions (customer_id, kind, direction, automated, occurred_at)
SELECT 1 + (g::bigint * 7919) % :N, (ARRAY['call','email','meeting','mailing'])[1 + g % 4], 'outbound', g % 4 = 3,
       '2025-01-01'::timestamptz + (g % 360) * interval '1 day'
  FROM generate_series(1, 2 * :N) g;
ANALYZE bench_cov_customers, bench_cov_interactions;
SELECT crm.detach_coverage();
SELECT crm.attach_coverage('bench_cov_interactions', customers => 'bench_cov_customers', class_column => 'class');
VACUUM ANALYZE crm.coverage;
-- @floor scan
SELECT count(*) FROM crm.coverage;
-- @set crm.coverage_as_of = '2025-12-31'
-- @plain by_class
SELECT sum(n) FROM (SELECT class, count(*) AS n, count(*) FILTER (WHERE next_due >= '2025-12-31') AS covered FROM crm.coverage GROUP BY class) s;
-- @query by_class
SELECT sum(customers) FROM crm.coverage_by_class;
-- @query by_manager
SELECT sum(customers) FROM crm.coverage_by_manager;
-- @query overdue_all
SELECT sum(days_overdue) FROM crm.coverage_overdue;
-- @query overdue_top100
SELECT sum(days_overdue) FROM (SELECT * FROM crm.coverage_overdue LIMIT 100) s;
-- @query overdue_one_manager
SELECT sum(days_overdue) FROM (SELECT * FROM crm.coverage_overdue WHERE manager_id = 7) s;
-- @set max_parallel_workers_per_gather = 2
-- @query by_class_parallel
SELECT sum(customers) FROM crm.coverage_by_class;
-- @query by_manager_parallel
SELECT sum(customers) FROM crm.coverage_by_manager;
-- @query overdue_all_parallel
SELECT sum(days_overdue) FROM crm.coverage_overdue;
