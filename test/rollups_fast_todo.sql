-- test/rollups_fast_todo.sql: crm.todo / crm.v_todo from the rollups (crm._fast_todo; state
-- crm.rollup_invoices and the first two orders in crm.rollup_customer_orders) against the full computation
-- (crm_analytics.rollups = off), row for row and in the same order, as of several moments (now(),
-- the end of the data, moments inside the history, before the data), after a full refresh, after
-- targeted changes and seeded rounds of random DML with incremental refreshes, after a full
-- rebuild and with the settings changed; the kept state against plain SQL over the demo; a
-- hand-worked customer; the errors on both paths.
BEGIN;
SELECT plan(35);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;
\ir data/todo_diff.sql

CREATE TEMP TABLE moments (m timestamptz);
INSERT INTO moments VALUES (now()), ('2026-01-01'), ('2025-12-31 15:30'), ('2025-06-15 12:00'), ('2025-02-01'), ('2023-06-01'),
                           ('2025-12-01'), ('2027-06-01');
-- moments equal to an order's and to a real contact's moment (the last ones and one inside the history)
INSERT INTO moments
SELECT max(ordered_at) FROM crm_demo.orders
UNION SELECT ordered_at FROM crm_demo.orders WHERE order_id = (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY order_id) FROM crm_demo.orders)
UNION SELECT max(occurred_at) FROM crm_demo.interactions WHERE NOT automated AND customer_id IS NOT NULL
UNION SELECT min(occurred_at) FROM crm_demo.interactions WHERE NOT automated AND customer_id IS NOT NULL AND occurred_at >= '2025-03-01';

-- ties: two customers of manager 3 created at the same moment, no order and no contact
-- (overdue contacts of value 0 with the same since from 2024-09-01 10:00 on: ordered by their ids),
-- and an invoice of 0 without a customer (so without a manager) due at that moment (the same
-- value and since: after them by its kind)
INSERT INTO crm_demo.customers (customer_id, lead_id, name, channel, manager_id, created_at)
VALUES (990102, 1, 'Tie 2', 'referral', 3, '2024-03-01 10:00'), (990101, 1, 'Tie 1', 'referral', 3, '2024-03-01 10:00');
INSERT INTO crm_demo.invoices (invoice_id, deal_id, customer_id, issued_at, due_at, amount, paid_at)
SELECT (SELECT max(invoice_id) FROM crm_demo.invoices) + 1, (SELECT min(deal_id) FROM crm_demo.deals), NULL,
       '2024-08-01 10:00', '2024-09-01 10:00', 0, NULL;

-- the moments where fast and full differ, and how many items were compared (not vacuous)
CREATE FUNCTION pg_temp.todo_check(what text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    bad timestamptz[];
BEGIN
    SELECT array_agg(m ORDER BY m) INTO bad FROM moments WHERE pg_temp.todo_diff(m, 'crm._fast_todo') <> 0;
    RETURN NEXT is(bad, NULL, format('%s: crm._fast_todo = crm.todo (full), same rows in the same order, %s moments', what,
                                     (SELECT count(*) FROM moments)));
END
$f$;
-- the kept state against plain SQL over the demo
CREATE FUNCTION pg_temp.state_diff() RETURNS bigint LANGUAGE sql AS $f$
SELECT (SELECT count(*) FROM (
          (SELECT invoice_id::text, customer_id::text, issued_at, due_at, amount, paid_at FROM crm_demo.invoices
            WHERE least(issued_at, due_at, paid_at) IS NOT NULL
           EXCEPT ALL SELECT invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM crm.rollup_invoices)
          UNION ALL
          (SELECT invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM crm.rollup_invoices
           EXCEPT ALL SELECT invoice_id::text, customer_id::text, issued_at, due_at, amount, paid_at FROM crm_demo.invoices
            WHERE least(issued_at, due_at, paid_at) IS NOT NULL)) d)
     + (SELECT count(*) FROM (
          SELECT o.customer_id::text, min(o.ordered_at) AS first_at,
                 (array_agg(o.ordered_at ORDER BY o.ordered_at))[2] AS second_at
            FROM crm_demo.orders o WHERE o.customer_id IS NOT NULL AND o.ordered_at IS NOT NULL GROUP BY 1
          EXCEPT SELECT f.customer_id, f.first_at, f.second_at FROM crm.rollup_customer_orders f WHERE f.customer_id IS NOT NULL) d)
     + (SELECT count(*) FROM crm.rollup_customer_orders f
         WHERE f.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM crm_demo.orders o WHERE o.customer_id::text = f.customer_id)
            OR f.customer_id IS NOT NULL AND f.first_amount IS DISTINCT FROM (SELECT o.amount FROM crm_demo.orders o WHERE o.customer_id::text = f.customer_id
                                           ORDER BY o.ordered_at, o.amount LIMIT 1) AND f.second_at IS DISTINCT FROM f.first_at)
$f$;

-- crm._fast_coverage against crm.dashboard_coverage (full) at every moment: rows that differ
CREATE FUNCTION pg_temp.coverage_diff() RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
    n bigint := 0;
    k bigint;
    mm timestamptz;
BEGIN
    FOR mm IN SELECT m FROM moments LOOP
        CREATE TEMP TABLE cv_fast AS SELECT * FROM crm._fast_coverage(mm);
        PERFORM set_config('crm_analytics.rollups', 'off', true);
        CREATE TEMP TABLE cv_full AS SELECT * FROM crm.dashboard_coverage(mm);
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        SELECT count(*) INTO k FROM ((TABLE cv_fast EXCEPT ALL TABLE cv_full) UNION ALL (TABLE cv_full EXCEPT ALL TABLE cv_fast)) d;
        n := n + k;
        DROP TABLE cv_fast;
        DROP TABLE cv_full;
    END LOOP;
    RETURN n;
END
$f$;

-- 1-7: after a full refresh (and the coverage, the moments, hand-worked ties)
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT ok(crm._rollups_usable(), 'after a refresh the gate is open');
SELECT * FROM pg_temp.todo_check('after a full refresh');
SELECT is(pg_temp.coverage_diff(), 0::bigint, 'after a full refresh: crm._fast_coverage = crm.dashboard_coverage (full) at every moment');
SELECT ok((SELECT count(*) FROM moments m WHERE EXISTS (SELECT 1 FROM crm.rollup_customer_state_ends e WHERE e.end_at = m.m)) = 2
          AND (SELECT count(*) FROM moments m WHERE m.m IN (SELECT ordered_at FROM crm_demo.orders)) >= 2
          AND (SELECT count(*) FROM moments m WHERE m.m IN (SELECT occurred_at FROM crm_demo.interactions WHERE NOT automated)) >= 2,
          'the moments include both kept period ends, two order moments and two real contact moments');
SELECT results_eq($$SELECT kind, entity_id, manager_id, since, value, note FROM crm.todo('2025-01-01')
                     WHERE entity_id IN ('990101', '990102') OR (kind = 'overdue_invoice' AND since = '2024-09-01 10:00' AND value = 0)$$,
                  $$VALUES ('overdue_contact'::text, '990101'::text, '3'::text, timestamptz '2024-09-01 10:00', 0::numeric,
                            'class C, last real contact never, next contact was due 2024-09-01'::text),
                           ('overdue_contact', '990102', '3', '2024-09-01 10:00', 0,
                            'class C, last real contact never, next contact was due 2024-09-01'),
                           ('overdue_invoice', (SELECT max(invoice_id)::text FROM crm_demo.invoices), NULL, '2024-09-01 10:00', 0,
                            'invoice issued 2024-08-01, due 2024-09-01, 121 days overdue')$$,
                  'hand-worked ties (value 0, since 2024-09-01 10:00; the invoice without a manager): by kind, then by id; the notes');
SELECT is(pg_temp.state_diff(), 0::bigint, 'after a full refresh: the kept invoices and first two orders = plain SQL over the demo');
SELECT ok((SELECT count(DISTINCT kind) FROM crm._fast_todo('2026-01-01')) = 5
          AND (SELECT count(*) FROM crm._fast_todo('2025-06-15 12:00')) > 100,
          'the comparison is not vacuous: all five kinds at the end of the data, many items inside the history');

SELECT is(pg_temp.view_diff(), 0::bigint, 'crm.v_todo from the rollups = the full computation');

-- 6-9: a hand-worked customer: one order on 2025-01-10 of 123.45, manager 7; reactivation due 90 days later
INSERT INTO crm_demo.customers (customer_id, lead_id, name, channel, manager_id, created_at)
SELECT 990001, 1, 'Customer 990001', 'referral', 7, '2025-01-05';
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 1, 990001, '2025-01-10 09:00', 1, 1, 123.45, 50;
SELECT count(*) FROM crm.refresh_rollups();
SELECT results_eq($$SELECT manager_id, since, value, note FROM crm.todo('2025-06-01') WHERE kind = 'reactivation' AND entity_id = '990001'$$,
                  $$VALUES ('7'::text, timestamptz '2025-04-10 09:00', 123.45::numeric, 'one order on 2025-01-10, no real contact since'::text)$$,
                  'hand-worked: one order on 2025-01-10, 90 days -> due 2025-04-10, value 123.45, manager 7');
SELECT is((SELECT count(*) FROM crm.todo('2025-04-10 09:00') WHERE entity_id = '990001' AND kind = 'reactivation'), 0::bigint,
          'hand-worked: not yet due at exactly 2025-04-10 09:00 (since must be before as_of)');
-- a real contact on 2025-05-01: gone as of 2025-06-01, still listed as of 2025-04-20 (the contact is later)
INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + 1, 990001, NULL, 7, 'call', 'outbound', false, '2025-05-01 10:00';
-- a second order on 2025-08-01: as of 2025-07-01 still one order before it
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 1, 990001, '2025-08-01 09:00', 1, 1, 10, 5;
SELECT count(*) FROM crm.refresh_rollups();
SELECT is(ARRAY(SELECT m::date::text || ':' || (SELECT count(*) FROM crm.todo(m) t WHERE t.kind = 'reactivation' AND t.entity_id = '990001')
                  FROM unnest(ARRAY[timestamptz '2025-04-20', '2025-06-01', '2025-09-01']) m),
          ARRAY['2025-04-20:1', '2025-06-01:0', '2025-09-01:0'],
          'hand-worked: listed before the contact, not after it, not after the second order');
SELECT is((SELECT second_at FROM crm.rollup_customer_orders WHERE customer_id = '990001'), timestamptz '2025-08-01 09:00',
          'hand-worked: the kept second order');

-- 10-14: targeted changes, incremental refresh: an unanswered lead answered, a one-order customer's
-- order deleted and another given a second order, an overdue invoice paid, a customer's manager changed,
-- a deal moved back a stage
-- (the demo's unpaid invoices have no customer: some get one, and those customers and some one-order
-- customers a new manager)
UPDATE crm_demo.invoices SET customer_id = 1 + invoice_id % 1500
 WHERE invoice_id IN (SELECT invoice_id FROM crm_demo.invoices WHERE paid_at IS NULL ORDER BY invoice_id LIMIT 20);
UPDATE crm_demo.customers SET manager_id = 1 + manager_id % 5
 WHERE customer_id IN (SELECT customer_id FROM crm_demo.invoices WHERE paid_at IS NULL AND customer_id IS NOT NULL ORDER BY invoice_id LIMIT 5)
    OR customer_id IN (SELECT customer_id::bigint FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL AND second_at IS NULL ORDER BY customer_id LIMIT 20 OFFSET 20);
INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + row_number() OVER (), NULL, l.lead_id, 1, 'call', 'outbound', false,
       l.created_at + interval '3 days'
  FROM (SELECT lead_id, created_at FROM crm.rollup_leads WHERE first_response IS NULL ORDER BY created_at LIMIT 5) l0
  JOIN crm_demo.leads l ON l.lead_id::text = l0.lead_id;
DELETE FROM crm_demo.orders WHERE customer_id IN (SELECT customer_id::bigint FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL AND second_at IS NULL
                                                   ORDER BY customer_id LIMIT 3);
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + row_number() OVER (), f.customer_id::bigint, f.first_at + interval '200 days', 1, 1, 77, 7
  FROM (SELECT customer_id, first_at FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL AND second_at IS NULL ORDER BY customer_id DESC LIMIT 4) f;
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + row_number() OVER (), f.customer_id::bigint, f.first_at, 1, 1, 55, 5
  FROM (SELECT customer_id, first_at FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL AND second_at IS NULL ORDER BY customer_id DESC OFFSET 10 LIMIT 2) f;
UPDATE crm_demo.invoices SET paid_at = due_at + interval '20 days'
 WHERE invoice_id IN (SELECT invoice_id FROM crm_demo.invoices WHERE paid_at IS NULL ORDER BY invoice_id LIMIT 5);
DELETE FROM crm_demo.deal_events e USING (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1
                                          ORDER BY deal_id LIMIT 5) x
 WHERE e.deal_id = x.deal_id AND e.changed_at = x.last_at;
SELECT ok(NOT crm._rollups_usable(), 'changes waiting: the default gate is closed');
SELECT ok((SELECT count(*) FROM crm.todo('2026-01-01') WHERE kind = 'overdue_invoice' AND manager_id IS NOT NULL) > 0,
          'overdue invoices with a customer (and a manager) exist for the comparison');
SELECT is(pg_temp.view_diff(), 0::bigint, 'changes waiting: crm.v_todo (the full path) = the full computation');
SELECT count(*) FROM crm.refresh_rollups();
SELECT * FROM pg_temp.todo_check('after targeted changes, incremental refresh');
SELECT is(pg_temp.state_diff(), 0::bigint, 'after targeted changes: the kept state = plain SQL');

-- 15-18: seeded random rounds with incremental refreshes
\ir data/rollups_random_round.sql
SELECT setseed(0.53);
SELECT pg_temp.random_round(1);
SELECT pg_temp.random_round(2);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(3);
SELECT count(*) FROM crm.refresh_rollups();
SELECT is((SELECT last_mode FROM crm.rollup_status), 'incremental', 'rounds 1-3: incremental refreshes');
SELECT * FROM pg_temp.todo_check('random rounds 1-3');
SELECT pg_temp.random_round(4);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(5);
SELECT count(*) FROM crm.refresh_rollups();
SELECT * FROM pg_temp.todo_check('random rounds 4-5');
SELECT is(pg_temp.coverage_diff(), 0::bigint, 'after the rounds: crm._fast_coverage = crm.dashboard_coverage (full) at every moment');
SELECT is(pg_temp.state_diff(), 0::bigint, 'after the rounds: the kept state = plain SQL');

-- 19-21: a full rebuild gives the same state and rows
CREATE FUNCTION pg_temp.state_rows() RETURNS TABLE (t text, id text, cid text, a timestamptz, b timestamptz, amount numeric, c timestamptz)
LANGUAGE sql AS $f$
SELECT 'i', invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM crm.rollup_invoices
UNION ALL
-- (the amount of a first order that shares its moment with another is never read)
SELECT 'f', customer_id, NULL, first_at, second_at, CASE WHEN second_at IS DISTINCT FROM first_at THEN first_amount END, NULL
  FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL
$f$;
CREATE TEMP TABLE st_inc AS SELECT * FROM pg_temp.state_rows();
SELECT count(*) FROM crm.refresh_rollups(full => true);
CREATE TEMP TABLE st_full AS SELECT * FROM pg_temp.state_rows();
SELECT is((SELECT count(*) FROM ((TABLE st_inc EXCEPT ALL TABLE st_full) UNION ALL (TABLE st_full EXCEPT ALL TABLE st_inc)) d), 0::bigint,
          'the incrementally kept state = a full rebuild');
SELECT * FROM pg_temp.todo_check('after a full rebuild');
SELECT is(pg_temp.view_diff(), 0::bigint, 'after a full rebuild: crm.v_todo from the rollups = the full computation');

-- 22-25: the settings and norms changed without a refresh (read when the report runs)
UPDATE crm.dashboard_settings SET lead_sla = interval '3 days', reactivation_after = interval '200 days';
SELECT * FROM pg_temp.todo_check('lead SLA 3 days, reactivation after 200 days');
UPDATE crm.pipeline_stages SET max_days = max_days * 2 WHERE stage_order = (SELECT min(stage_order) FROM crm.pipeline_stages WHERE max_days IS NOT NULL);
UPDATE crm.coverage_policy SET max_interval = max_interval + interval '10 days';
SELECT * FROM pg_temp.todo_check('a stage norm and the coverage intervals changed');
SET LOCAL crm_analytics.rollups = 'last_refresh';
SELECT ok(crm._rollups_usable(), 'last_refresh: the gate open after the stage change');
SELECT is(pg_temp.view_diff(), 0::bigint, 'crm.v_todo with a changed norm: the rollups read the norm as the full path does');
SET LOCAL crm_analytics.rollups = 'fresh';

-- 26-31: the errors, the same on both paths
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(crm._rollups_usable(), 'the gate open for the error checks');
SELECT throws_ok($$SELECT * FROM crm.todo(NULL)$$, '22004', 'as_of must not be null', 'fast path: NULL as_of -> 22004');
SELECT throws_ok($$SELECT * FROM crm.todo('infinity')$$, '22008', NULL, 'fast path: infinite as_of -> 22008');
SELECT crm.unregister_source('invoices');
SELECT throws_ok($$SELECT * FROM crm.todo('2025-12-01')$$, '55000', 'source "invoices" is not registered',
                 'a source not registered: 55000 on the gated path too');
SET LOCAL crm_analytics.rollups = 'off';
SELECT throws_ok($$SELECT * FROM crm.todo('2025-12-01')$$, '55000', 'source "invoices" is not registered',
                 'a source not registered: 55000 on the full path');
SELECT throws_ok($$SELECT * FROM crm.todo(NULL)$$, '22004', 'as_of must not be null', 'full path: NULL as_of -> 22004');

SELECT * FROM finish();
ROLLBACK;
