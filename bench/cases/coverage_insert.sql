-- insert throughput into an interactions table with the coverage trigger vs the same table without it.
-- N customers (default 1,000,000); each query inserts rows and keeps them (tables grow run by run).
-- @setup
DROP TABLE IF EXISTS bench_cov_customers, bench_cov_interactions, bench_cov_plain CASCADE;
CREATE TABLE bench_cov_customers (customer_id bigint PRIMARY KEY, class text NOT NULL, manager_id int NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO bench_cov_customers
SELECT g, CASE WHEN g % 10 = 0 THEN 'A' WHEN g % 10 < 4 THEN 'B' ELSE 'C' END, 1 + g % 50,
       '2024-01-01'::timestamptz + (g % 365) * interval '1 day'
  FROM generate_series(1, :N) g;
CREATE TABLE bench_cov_interactions (interaction_id bigserial PRIMARY KEY, customer_id bigint, kind text, direction text,
                                     automated boolean NOT NULL, occurred_at timestamptz NOT NULL);
CREATE TABLE bench_cov_plain (LIKE bench_cov_interactions INCLUDING ALL);
ALTER TABLE bench_cov_plain ALTER interaction_id SET DEFAULT nextval('bench_cov_interactions_interaction_id_seq');
INSERT INTO bench_cov_interactions (customer_id, kind, direction, automated, occurred_at)
SELECT 1 + (g::bigint * 7919) % :N, (ARRAY['call','email','meeting','mailing'])[1 + g % 4], 'outbound', g % 4 = 3,
       '2025-01-01'::timestamptz + (g % 360) * interval '1 day'
  FROM generate_series(1, 2 * :N) g;
INSERT INTO bench_cov_plain SELECT * FROM bench_cov_interactions;
ANALYZE bench_cov_customers, bench_cov_interactions, bench_cov_plain;
SELECT crm.detach_coverage();
SELECT crm.attach_coverage('bench_cov_interactions', customers => 'bench_cov_customers', class_column => 'class');
VACUUM ANALYZE crm.coverage, bench_cov_interactions, bench_cov_plain;
-- @plain single_row_x2000
DO $$ BEGIN FOR i IN 1..2000 LOOP INSERT INTO bench_cov_plain (customer_id, kind, direction, automated, occurred_at) VALUES (1 + (i * 104729) % 1000000, 'call', 'outbound', false, '2025-12-01'::timestamptz + i * interval '1 minute'); END LOOP; END $$;
-- @query single_row_x2000
DO $$ BEGIN FOR i IN 1..2000 LOOP INSERT INTO bench_cov_interactions (customer_id, kind, direction, automated, occurred_at) VALUES (1 + (i * 104729) % 1000000, 'call', 'outbound', false, '2025-12-01'::timestamptz + i * interval '1 minute'); END LOOP; END $$;
-- @plain batch_100_rows_x100
DO $$ BEGIN FOR i IN 1..100 LOOP INSERT INTO bench_cov_plain (customer_id, kind, direction, automated, occurred_at) SELECT 1 + ((i * 100 + g) * 104729) % 1000000, 'call', 'outbound', false, '2025-12-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 100) g; END LOOP; END $$;
-- @query batch_100_rows_x100
DO $$ BEGIN FOR i IN 1..100 LOOP INSERT INTO bench_cov_interactions (customer_id, kind, direction, automated, occurred_at) SELECT 1 + ((i * 100 + g) * 104729) % 1000000, 'call', 'outbound', false, '2025-12-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 100) g; END LOOP; END $$;
-- @plain bulk_100k_distinct
INSERT INTO bench_cov_plain (customer_id, kind, direction, automated, occurred_at) SELECT 1 + (g::bigint * 104729) % 1000000, 'call', 'outbound', false, '2025-12-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 100000) g;
-- @query bulk_100k_distinct
INSERT INTO bench_cov_interactions (customer_id, kind, direction, automated, occurred_at) SELECT 1 + (g::bigint * 104729) % 1000000, 'call', 'outbound', false, '2025-12-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 100000) g;
-- @plain bulk_100k_1000_customers
INSERT INTO bench_cov_plain (customer_id, kind, direction, automated, occurred_at) SELECT 1 + g % 1000, 'call', 'outbound', false, '2025-12-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 100000) g;
-- @query bulk_100k_1000_customers
INSERT INTO bench_cov_interactions (customer_id, kind, direction, automated, occurred_at) SELECT 1 + g % 1000, 'call', 'outbound', false, '2025-12-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 100000) g;
