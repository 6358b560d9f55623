-- test/rollups_fast_customers.sql: the customer figures from the rollups (issue 21,
-- docs/rollups.md "Customers"): crm._fast_coverage, crm._fast_channels,
-- crm._fast_owner_customers, crm._fast_managers_customers against the full computation
-- (crm.dashboard_coverage, dashboard_channels, owner_dashboard, dashboard_managers with a
-- change waiting, which sends the default gate to the full path) for several periods, after
-- a full refresh and after seeded rounds of random INSERT / UPDATE / DELETE with incremental
-- refreshes; against a plain-SQL computation over crm_demo.*; and on a hand-worked fixture.
BEGIN;
SELECT plan(34);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

-- a change waiting (bound infinity: no day is recomputed by it) makes the rollups not fresh:
-- the reports then take the full computation
CREATE FUNCTION pg_temp.hold() RETURNS void LANGUAGE sql AS $$
INSERT INTO crm.rollup_changes (relid, bound) SELECT min(relid::text)::oid, 'infinity' FROM crm.rollup_capture
$$;
CREATE FUNCTION pg_temp.release() RETURNS void LANGUAGE sql AS $$
DELETE FROM crm.rollup_changes WHERE bound = 'infinity'
$$;

-- every difference between the fast functions and the full computation for a period
-- [f, t] (coverage at t + 1), as text; '{}' = identical
CREATE FUNCTION pg_temp.diffs(f date, t date) RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    b   record;
    out text[] := '{}';
    n   bigint;
BEGIN
    b := crm._period_bounds('test', f, t);
    PERFORM pg_temp.hold();
    IF crm._rollups_usable() THEN
        RAISE EXCEPTION 'the gate should be closed with a change waiting';
    END IF;
    CREATE TEMP TABLE full_cov AS SELECT * FROM crm.dashboard_coverage(b.cur_to);
    CREATE TEMP TABLE full_ch AS SELECT * FROM crm.dashboard_channels(f, t);
    CREATE TEMP TABLE full_own AS SELECT * FROM crm.owner_dashboard(f, t);
    CREATE TEMP TABLE full_man AS SELECT * FROM crm.dashboard_managers(f, t);
    PERFORM pg_temp.release();
    SELECT count(*) INTO n FROM ((SELECT * FROM full_cov EXCEPT ALL SELECT * FROM crm._fast_coverage(b.cur_to))
                                 UNION ALL (SELECT * FROM crm._fast_coverage(b.cur_to) EXCEPT ALL SELECT * FROM full_cov)) d;
    IF n > 0 THEN out := out || ('coverage: ' || n || ' rows differ'); END IF;
    SELECT count(*) INTO n FROM ((SELECT * FROM full_ch EXCEPT ALL SELECT * FROM crm._fast_channels(f, t))
                                 UNION ALL (SELECT * FROM crm._fast_channels(f, t) EXCEPT ALL SELECT * FROM full_ch)) d;
    IF n > 0 THEN out := out || ('channels: ' || n || ' rows differ'); END IF;
    out := out || ARRAY(
        SELECT 'owner ' || o.metric || ': ' || coalesce(o.value::text, 'NULL') || '/' || coalesce(o.previous_value::text, 'NULL')
               || ' vs ' || coalesce(x.cur::text, 'NULL') || '/' || coalesce(x.prev::text, 'NULL')
          FROM full_own o FULL JOIN crm._fast_owner_customers(b.cur_from, b.cur_to, b.prev_from) x USING (metric)
         WHERE o.metric IN ('buyers', 'repeat_purchase_rate', 'churned_customers', 'churn_rate', 'churned_revenue', 'overdue_class_a_customers')
           AND (o.value, o.previous_value) IS DISTINCT FROM (x.cur, x.prev) ORDER BY 1);
    -- every fast row is a row of the full report (missing parts = 0), every full row with
    -- revenue or customers is a fast row (NULL manager ids compare equal in EXCEPT)
    CREATE TEMP TABLE fast_man AS
    SELECT x.manager_id, coalesce(x.revenue, 0) AS revenue, coalesce(x.customers, 0) AS customers, coalesce(x.covered, 0) AS covered
      FROM crm._fast_managers_customers(b.cur_from, b.cur_to) x;
    SELECT count(*) INTO n
      FROM ((SELECT manager_id, revenue, customers, covered_customers FROM full_man WHERE revenue <> 0 OR customers <> 0
             EXCEPT ALL SELECT * FROM fast_man)
            UNION ALL (SELECT * FROM fast_man EXCEPT ALL SELECT manager_id, revenue, customers, covered_customers FROM full_man)) d;
    DROP TABLE fast_man;
    IF n > 0 THEN out := out || ('managers: ' || n || ' rows differ'); END IF;
    -- the gate open (rollups fresh): the reports answer from the rollups, same rows
    SELECT count(*) INTO n FROM ((SELECT * FROM full_cov EXCEPT ALL SELECT * FROM crm.dashboard_coverage(b.cur_to))
                                 UNION ALL (SELECT * FROM crm.dashboard_coverage(b.cur_to) EXCEPT ALL SELECT * FROM full_cov)) d;
    IF n > 0 THEN out := out || ('gated coverage: ' || n || ' rows differ'); END IF;
    SELECT count(*) INTO n FROM ((SELECT * FROM full_ch EXCEPT ALL SELECT * FROM crm.dashboard_channels(f, t))
                                 UNION ALL (SELECT * FROM crm.dashboard_channels(f, t) EXCEPT ALL SELECT * FROM full_ch)) d;
    IF n > 0 THEN out := out || ('gated channels: ' || n || ' rows differ'); END IF;
    DROP TABLE full_cov, full_ch, full_own, full_man;
    RETURN out;
END
$f$;

-- the periods: the dashboard's, a past month (events after its end exist), a quarter, a
-- year, one day, a period after the data
CREATE FUNCTION pg_temp.all_diffs() RETURNS text[] LANGUAGE sql AS $$
SELECT array_agg(p.f || '..' || p.t || ' ' || d ORDER BY p.f, d)
  FROM (SELECT period_from AS f, period_to AS t FROM crm.dashboard_period()
        UNION ALL VALUES (date '2025-06-01', date '2025-06-30'), ('2025-07-01', '2025-09-30'), ('2025-01-01', '2025-12-31'),
                         ('2025-12-15', '2025-12-15'), ('2026-03-01', '2026-03-31')) AS p(f, t),
       LATERAL unnest(pg_temp.diffs(p.f, p.t)) AS d
$$;

-- ---------------------------------------------------------------- after a full refresh
-- 1-2
SELECT ok((SELECT count(*) FROM crm.refresh_rollups(full => true)) = 6, 'a full refresh');
SELECT ok(crm._rollups_usable(), 'the rollups are fresh: the gate is open');
-- 3
SELECT is(pg_temp.all_diffs(), NULL, 'fast = full for the dashboard period, a past month, a quarter, a year, a day, a period after the data');
-- 4-6: the state against a plain-SQL computation over crm_demo.*
SELECT is((SELECT count(*) FROM ((SELECT customer_id::text, max(occurred_at) FROM crm_demo.interactions WHERE NOT automated AND customer_id IS NOT NULL GROUP BY 1
                                  EXCEPT SELECT customer_id, last_at FROM crm.rollup_customer_contacts)
                                 UNION ALL (SELECT customer_id, last_at FROM crm.rollup_customer_contacts
                                  EXCEPT SELECT customer_id::text, max(occurred_at) FROM crm_demo.interactions WHERE NOT automated AND customer_id IS NOT NULL GROUP BY 1)) d),
          0::bigint, 'the last real contact per customer equals crm_demo.interactions');
SELECT is((SELECT count(*) FROM ((SELECT customer_id::text, min(ordered_at), max(ordered_at), sum(amount - cost) FROM crm_demo.orders GROUP BY 1
                                  EXCEPT SELECT customer_id, first_at, last_at, gp FROM crm.rollup_customer_orders)
                                 UNION ALL (SELECT customer_id, first_at, last_at, gp FROM crm.rollup_customer_orders
                                  EXCEPT SELECT customer_id::text, min(ordered_at), max(ordered_at), sum(amount - cost) FROM crm_demo.orders GROUP BY 1)) d),
          0::bigint, 'the order totals per customer equal crm_demo.orders');
-- coverage at the start of June 2025, straight from the definitions over crm_demo.*
CREATE TEMP VIEW exp_cov AS
WITH e AS (SELECT timestamptz '2025-06-01' AS e),
r AS (SELECT customer_id, sum(amount) AS rev FROM crm_demo.orders, e WHERE ordered_at >= e.e - interval '12 months' AND ordered_at < e.e GROUP BY 1),
k AS (SELECT customer_id, rev, crm.abc_class(rev::float8) OVER () AS cls FROM r WHERE rev > 0),
x AS (SELECT customer_id, max(occurred_at) AS last_at FROM crm_demo.interactions, e WHERE NOT automated AND occurred_at < e.e GROUP BY 1)
SELECT c.customer_id::text, c.manager_id::text, c.channel, coalesce(k.rev, 0) AS rev, coalesce(k.cls, 'C') AS cls, x.last_at,
       coalesce(x.last_at, c.created_at) + CASE coalesce(k.cls, 'C') WHEN 'A' THEN interval '1 month' WHEN 'B' THEN interval '3 months' ELSE interval '6 months' END AS due
  FROM crm_demo.customers c CROSS JOIN e LEFT JOIN k USING (customer_id) LEFT JOIN x USING (customer_id)
 WHERE c.created_at < e.e;
SELECT is((SELECT count(*) FROM ((SELECT customer_id, manager_id, channel, revenue_12m, abc_class, last_contact, next_due FROM crm._fast_coverage('2025-06-01')
                                  EXCEPT ALL SELECT * FROM exp_cov)
                                 UNION ALL (SELECT * FROM exp_cov EXCEPT ALL
                                  SELECT customer_id, manager_id, channel, revenue_12m, abc_class, last_contact, next_due FROM crm._fast_coverage('2025-06-01'))) d),
          0::bigint, 'coverage at 2025-06-01 equals the plain computation over crm_demo.* (crm.abc_class, default intervals)');
-- 7-8: buyers and churn of Q3 2025 from crm_demo.orders
SELECT is((SELECT cur FROM crm._fast_owner_customers('2025-07-01', '2025-10-01', '2025-04-01') WHERE metric = 'buyers'),
          (SELECT count(DISTINCT customer_id)::numeric FROM crm_demo.orders WHERE ordered_at >= '2025-07-01' AND ordered_at < '2025-10-01'),
          'buyers of Q3 2025 = distinct customers with an order in it');
SELECT is((SELECT cur FROM crm._fast_owner_customers('2025-07-01', '2025-10-01', '2025-04-01') WHERE metric = 'churned_customers'),
          (SELECT count(*)::numeric FROM (SELECT customer_id FROM crm_demo.orders WHERE ordered_at >= '2025-04-01' AND ordered_at < '2025-07-01'
                                          EXCEPT SELECT customer_id FROM crm_demo.orders WHERE ordered_at >= '2025-07-01' AND ordered_at < '2025-10-01') x),
          'churned customers of Q3 2025 = buyers of Q2 without an order in Q3');

-- ---------------------------------------------------------------- targeted changes
-- 9-10: a contact at E exactly does not count for E; a customer's channel and manager changed;
-- an order without a customer and without a cost; a customer contacted only after E
ALTER TABLE crm_demo.orders ALTER COLUMN customer_id DROP NOT NULL, ALTER COLUMN cost DROP NOT NULL;
INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + g, c.customer_id, NULL, 1, 'call', 'outbound', false, t
  FROM (VALUES (1, timestamptz '2026-01-01 00:00'), (2, '2025-07-01 00:00'), (3, '2025-12-15 00:00')) v(g, t),
       LATERAL (SELECT customer_id FROM crm_demo.customers ORDER BY customer_id OFFSET v.g * 7 LIMIT 1) c;
UPDATE crm_demo.customers SET channel = 'partner', manager_id = 1 + manager_id % 12
 WHERE customer_id IN (SELECT customer_id FROM crm_demo.customers ORDER BY customer_id OFFSET 30 LIMIT 3);
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
VALUES ((SELECT max(order_id) + 1 FROM crm_demo.orders), NULL, '2025-06-10 10:00', 1, 1, 250.00, NULL),
       ((SELECT max(order_id) + 2 FROM crm_demo.orders), NULL, '2025-12-03 10:00', 1, 1, 90.50, 40.25);
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) >= 2, 'an incremental refresh after the targeted changes');
SELECT is(pg_temp.all_diffs(), NULL, 'fast = full after: a contact at a period end, a channel and manager changed, orders without a customer or a cost');

-- ---------------------------------------------------------------- random rounds
CREATE FUNCTION pg_temp.random_round(r int) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    -- orders: new ones (some before a customer's first order), moved, changed, deleted (first ones too)
    INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
    SELECT (SELECT max(order_id) FROM crm_demo.orders) + g, c.customer_id,
           c.created_at + (random() * 400 - 20) * interval '1 day', 1, 1, round((random() * 500)::numeric, 2), round((random() * 200)::numeric, 2)
      FROM generate_series(1, 20) g
      JOIN LATERAL (SELECT customer_id, created_at FROM crm_demo.customers ORDER BY random() + g * 0 LIMIT 1) c ON true;
    UPDATE crm_demo.orders SET amount = amount + 10, ordered_at = ordered_at + (random() * 60 - 30) * interval '1 day'
     WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY random() LIMIT 10);
    UPDATE crm_demo.orders SET customer_id = (SELECT customer_id FROM crm_demo.customers ORDER BY random() LIMIT 1)
     WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY random() LIMIT 3);
    DELETE FROM crm_demo.orders WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY random() LIMIT 8);
    DELETE FROM crm_demo.orders o USING (SELECT customer_id, min(ordered_at) AS f FROM crm_demo.orders GROUP BY 1 ORDER BY random() LIMIT 3) x
     WHERE o.customer_id = x.customer_id AND o.ordered_at = x.f;
    -- customers: channel or manager changed, created_at moved, a new one
    UPDATE crm_demo.customers SET channel = (ARRAY['ads', 'seo', 'partner', 'referral', 'events'])[1 + floor(random() * 5)::int]
     WHERE customer_id IN (SELECT customer_id FROM crm_demo.customers ORDER BY random() LIMIT 4);
    UPDATE crm_demo.customers SET manager_id = 1 + manager_id % 12
     WHERE customer_id IN (SELECT customer_id FROM crm_demo.customers ORDER BY random() LIMIT 4);
    UPDATE crm_demo.customers SET created_at = created_at + (random() * 60 - 30) * interval '1 day'
     WHERE customer_id IN (SELECT customer_id FROM crm_demo.customers ORDER BY random() LIMIT 3);
    INSERT INTO crm_demo.customers (customer_id, lead_id, name, channel, manager_id, created_at)
    VALUES ((SELECT max(customer_id) + 1 FROM crm_demo.customers), 1, 'new ' || r, 'seo', 3, timestamptz '2025-11-20' + r * interval '3 days');
    -- interactions with customers: new (real and automated), moved, flipped, deleted
    INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
    SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + g, c.customer_id, NULL, 1 + floor(random() * 12)::int, 'call', 'outbound',
           random() < 0.3, timestamptz '2025-05-01' + random() * interval '260 days'
      FROM generate_series(1, 25) g
      JOIN LATERAL (SELECT customer_id FROM crm_demo.customers ORDER BY random() + g * 0 LIMIT 1) c ON true;
    UPDATE crm_demo.interactions SET occurred_at = occurred_at - (random() * 40) * interval '1 day'
     WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions WHERE customer_id IS NOT NULL ORDER BY random() LIMIT 6);
    UPDATE crm_demo.interactions SET automated = NOT automated
     WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions WHERE customer_id IS NOT NULL ORDER BY random() LIMIT 6);
    DELETE FROM crm_demo.interactions WHERE interaction_id IN (
        SELECT DISTINCT ON (customer_id) interaction_id FROM crm_demo.interactions
         WHERE customer_id IS NOT NULL AND NOT automated ORDER BY customer_id, occurred_at DESC LIMIT 5);
    -- leads and spend (read by dashboard_channels from their sources)
    INSERT INTO crm_demo.leads (lead_id, created_at, channel, manager_id, customer_id)
    SELECT (SELECT max(lead_id) FROM crm_demo.leads) + g, timestamptz '2025-06-01' + random() * interval '200 days', 'seo', 2,
           (SELECT customer_id FROM crm_demo.customers ORDER BY random() + g * 0 LIMIT 1)
      FROM generate_series(1, 5) g;
    UPDATE crm_demo.spend SET amount = amount + 7 WHERE (channel, month) IN (SELECT channel, month FROM crm_demo.spend ORDER BY random() LIMIT 2);
END
$f$;

SELECT setseed(0.42);
-- 11-25: five rounds, each followed by an incremental refresh and the comparison
SELECT pg_temp.random_round(1);
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) >= 2, 'round 1: incremental refresh');
SELECT ok((SELECT last_mode FROM crm.rollup_status) = 'incremental', 'round 1: it was incremental');
SELECT is(pg_temp.all_diffs(), NULL, 'round 1: fast = full for every period');
SELECT pg_temp.random_round(2);
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) >= 2, 'round 2: incremental refresh');
SELECT ok((SELECT last_mode FROM crm.rollup_status) = 'incremental', 'round 2: it was incremental');
SELECT is(pg_temp.all_diffs(), NULL, 'round 2: fast = full for every period');
SELECT pg_temp.random_round(3);
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) >= 2, 'round 3: incremental refresh');
SELECT ok((SELECT last_mode FROM crm.rollup_status) = 'incremental', 'round 3: it was incremental');
SELECT is(pg_temp.all_diffs(), NULL, 'round 3: fast = full for every period');
SELECT pg_temp.random_round(4);
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) >= 2, 'round 4: incremental refresh');
SELECT ok((SELECT last_mode FROM crm.rollup_status) = 'incremental', 'round 4: it was incremental');
SELECT is(pg_temp.all_diffs(), NULL, 'round 4: fast = full for every period');
SELECT pg_temp.random_round(5);
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) >= 2, 'round 5: incremental refresh');
SELECT ok((SELECT last_mode FROM crm.rollup_status) = 'incremental', 'round 5: it was incremental');
SELECT is(pg_temp.all_diffs(), NULL, 'round 5: fast = full for every period');

-- 26: the incrementally kept state equals a full rebuild
CREATE TEMP TABLE inc_state AS
SELECT 'lines' AS t, md5(string_agg(x::text, ',' ORDER BY x::text)) AS h FROM crm.rollup_order_lines x
UNION ALL SELECT 'orders', md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_orders x
UNION ALL SELECT 'info', md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_info x
UNION ALL SELECT 'contacts', md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_real_contacts x
UNION ALL SELECT 'last', md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_contacts x
UNION ALL SELECT 'classes', md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_classes x;
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT is((SELECT count(*) FROM inc_state i
            WHERE i.h IS DISTINCT FROM CASE i.t
                WHEN 'lines' THEN (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_order_lines x)
                WHEN 'orders' THEN (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_orders x)
                WHEN 'info' THEN (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_info x)
                WHEN 'contacts' THEN (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_real_contacts x)
                WHEN 'classes' THEN (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_classes x)
                ELSE (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM crm.rollup_customer_contacts x) END),
          0::bigint, 'the incrementally kept state equals a full rebuild (all six tables)');

-- 27-28: changes waiting, no refresh: the default gate takes the full path (live data)
UPDATE crm_demo.orders SET amount = amount + 1000 WHERE order_id = (SELECT min(order_id) FROM crm_demo.orders WHERE ordered_at >= '2025-12-01');
SELECT ok(NOT crm._rollups_usable(), 'a change waiting closes the default gate');
SELECT is((SELECT revenue FROM crm.dashboard_channels('2025-12-01', '2025-12-31') WHERE channel = (
              SELECT c.channel FROM crm_demo.customers c JOIN crm_demo.orders o USING (customer_id)
               WHERE o.order_id = (SELECT min(order_id) FROM crm_demo.orders WHERE ordered_at >= '2025-12-01'))),
          (SELECT sum(o.amount) FROM crm_demo.orders o JOIN crm_demo.customers c USING (customer_id)
            WHERE o.ordered_at >= '2025-12-01' AND o.ordered_at < '2026-01-01' AND c.channel = (
              SELECT c.channel FROM crm_demo.customers c JOIN crm_demo.orders o USING (customer_id)
               WHERE o.order_id = (SELECT min(order_id) FROM crm_demo.orders WHERE ordered_at >= '2025-12-01'))),
          'with a change waiting dashboard_channels shows the live data');
SELECT count(*) FROM crm.refresh_rollups();

-- ---------------------------------------------------------------- a hand-worked fixture
-- Sources on small tables: three customers, one without orders, one never contacted.
CREATE TABLE fx_customers (customer_id int, created_at timestamptz, channel text, manager_id int);
CREATE TABLE fx_orders (order_id int, customer_id int, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
CREATE TABLE fx_contacts (interaction_id int, customer_id int, lead_id int, manager_id int, occurred_at timestamptz, kind text, direction text, automated boolean);
INSERT INTO fx_customers VALUES (1, '2025-01-05', 'seo', 7), (2, '2025-02-01', 'ads', 8), (3, '2025-11-20', 'ads', 8);
-- customer 1: 800 in March, 100 in November, 100 in December (cost 50 each);
-- customer 2: 200 in October;  customer 3: no orders
INSERT INTO fx_orders VALUES (1, 1, '2025-03-10', 800, 50, 1), (2, 1, '2025-11-10', 100, 50, 1), (3, 1, '2025-12-10', 100, 50, 1),
                             (4, 2, '2025-10-15', 200, 50, 1);
-- customer 1: a real call on 2025-11-20 and an automated mail on 2025-12-20;
-- customer 2: a real call at 2026-01-01 00:00 exactly (not before the end of December)
INSERT INTO fx_contacts VALUES (1, 1, NULL, 7, '2025-11-20', 'call', 'outbound', false), (2, 1, NULL, 7, '2025-12-20', 'email', 'outbound', true),
                               (3, 2, NULL, 8, '2026-01-01 00:00', 'call', 'outbound', false);
SELECT crm.register_source('customers', 'SELECT customer_id, created_at, channel, manager_id FROM fx_customers');
SELECT crm.register_source('orders', 'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM fx_orders');
SELECT crm.register_source('interactions', 'SELECT interaction_id, customer_id, lead_id, manager_id, occurred_at, kind, direction, automated FROM fx_contacts');
SELECT count(*) FROM crm.refresh_rollups();
-- 29
SELECT ok(crm._rollups_usable(), 'fixture: rebuilt for the new sources, the gate is open');
-- Coverage at 2026-01-01: revenue of 2025: customer 1 1000, customer 2 200 (total 1200).
-- abc: 1 has nothing larger before it (0 < 0.80 * 1200) -> A; 2 has 1000 before it
-- (1000 >= 960, < 1140) -> B; 3 no revenue -> C.  Next due: 1 -> 2025-11-20 + 1 month =
-- 2025-12-20 (overdue); 2 never contacted before -> created 2025-02-01 + 3 months =
-- 2025-05-01 (overdue); 3 -> 2025-11-20 + 6 months = 2026-05-20 (covered).
-- 30
SELECT results_eq($$SELECT customer_id, manager_id, channel, revenue_12m, abc_class, last_contact, next_due, covered FROM crm.dashboard_coverage('2026-01-01') ORDER BY 1$$,
    $$VALUES ('1', '7', 'seo', 1000::numeric, 'A', timestamptz '2025-11-20', timestamptz '2025-12-20', false),
             ('2', '8', 'ads', 200::numeric, 'B', NULL, timestamptz '2025-05-01', false),
             ('3', '8', 'ads', 0::numeric, 'C', NULL, timestamptz '2026-05-20', true)$$,
    'fixture: dashboard_coverage from the rollups, worked by hand');
-- December 2025 (previous period November 1-30... 31 days: 2025-10-31 .. 2025-11-30, before it
-- 2025-09-30 .. 2025-10-30): buyers Dec {1} = 1, Nov {1} = 1; repeat: 1 has 3 orders by the end
-- of December -> 100, 2 by the end of November -> 100; churned Dec: Nov buyers without a Dec order
-- = none -> 0; churned Nov: buyers of 2025-09-30..10-30 {2} without a Nov order -> 1 (churn
-- rate 100, churned revenue 200).  Class A at 2026-01-01: customer 1 (1000 of 1200); its last
-- real contact 2025-11-20 < 2025-12-01 -> overdue 1.  At 2025-12-01: revenue of 12 months 1 900,
-- 2 200 -> 1 is A; last contact 2025-11-20 >= 2025-11-01 -> not overdue: 0.
-- 31
SELECT results_eq($$SELECT metric, cur, prev FROM crm._fast_owner_customers('2025-12-01', '2026-01-01', '2025-10-31')$$,
    $$VALUES ('buyers', 1::numeric, 1::numeric), ('repeat_purchase_rate', 100.00, 100.00), ('churned_customers', 0, 1),
             ('churn_rate', 0.00, 100.00), ('churned_revenue', 0, 200), ('overdue_class_a_customers', 1, 0)$$,
    'fixture: the owner dashboard''s customer rows from the rollups, worked by hand');
-- Channels, December: seo: customer 1, revenue 100, gross profit 50, LTV (gross profit to date)
-- 750 + 50 + 50 = 850; ads: customer 2 (LTV 150), no December revenue.  Managers: 7 revenue 100,
-- one customer, not covered; 8: no December revenue, two customers, one covered (3).
-- 32-33
SELECT results_eq($$SELECT channel, new_buyers, revenue, gross_profit, ltv FROM crm._fast_channels('2025-12-01', '2025-12-31') WHERE channel IN ('ads', 'seo') ORDER BY 1$$,
    $$VALUES ('ads', 0::bigint, 0::numeric, 0::numeric, 150.00), ('seo', 0, 100, 50, 850.00)$$,
    'fixture: dashboard_channels'' buyer figures from the rollups, worked by hand');
SELECT results_eq($$SELECT * FROM crm._fast_managers_customers('2025-12-01', '2026-01-01')$$,
    $$VALUES ('7', 100::numeric, 1::bigint, 0::bigint), ('8', NULL, 2, 1)$$,
    'fixture: the managers'' revenue and coverage from the rollups, worked by hand');
-- 34
SELECT is(pg_temp.diffs('2025-12-01', '2025-12-31'), '{}', 'fixture: fast = full for December');

SELECT * FROM finish();
ROLLBACK;
