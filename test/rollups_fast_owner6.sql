-- test/rollups_fast_owner6.sql: the owner dashboard from the rollups after its round-6 rewrite
-- (crm._fast_owner_leads reading the leads of its two periods and the invoices not paid before a
-- moment from covering indexes, crm._fast_owner_customers reading only the first orders at or
-- after the previous period's start, crm._fast_owner_deals grouping the closed and the open
-- deals apart). Every row equals the full computation (crm_analytics.rollups = off) for eight
-- periods after a full refresh, after three seeded rounds of random changes with incremental
-- refreshes and after a full rebuild; the state these reads rely on equals plain SQL over the
-- demo tables (every buyer's first order in crm.rollup_customers; the invoices unpaid at a
-- moment and the leads of a period read by the new indexes); then a hand-worked invoice fixture.
BEGIN;
SELECT plan(16);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TEMP TABLE periods (f date, t date);
INSERT INTO periods VALUES ('2025-12-01', '2025-12-31'), ('2025-06-01', '2025-06-30'), ('2025-10-01', '2025-12-31'),
                           ('2025-01-01', '2025-12-31'), ('2025-03-15', '2025-03-15'), ('2026-02-01', '2026-02-28'),
                           ('2024-01-01', '2024-01-31'), ('2024-02-10', '2024-03-09');

-- per period, the rows of crm.owner_dashboard from the rollups that differ from the full computation
CREATE FUNCTION pg_temp.diff() RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    p record;
    n bigint;
    bad text[] := '{}';
BEGIN
    FOR p IN SELECT * FROM periods ORDER BY f, t LOOP
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        IF NOT crm._rollups_usable() THEN
            RAISE EXCEPTION 'the rollups are not usable';
        END IF;
        CREATE TEMP TABLE d_fast AS SELECT * FROM crm.owner_dashboard(p.f, p.t) WITH ORDINALITY;
        PERFORM set_config('crm_analytics.rollups', 'off', true);
        CREATE TEMP TABLE d_full AS SELECT * FROM crm.owner_dashboard(p.f, p.t) WITH ORDINALITY;
        PERFORM set_config('crm_analytics.rollups', 'fresh', true);
        -- numerics compared as text too: the same scale
        SELECT count(*) INTO n FROM (
            (SELECT ordinality, metric, value::text, previous_value::text, change_pct::text, unit, section FROM d_fast
             EXCEPT ALL SELECT ordinality, metric, value::text, previous_value::text, change_pct::text, unit, section FROM d_full)
            UNION ALL
            (SELECT ordinality, metric, value::text, previous_value::text, change_pct::text, unit, section FROM d_full
             EXCEPT ALL SELECT ordinality, metric, value::text, previous_value::text, change_pct::text, unit, section FROM d_fast)) d;
        IF n > 0 THEN
            bad := bad || format('%s..%s: %s rows differ', p.f, p.t, n);
        END IF;
        DROP TABLE d_fast;
        DROP TABLE d_full;
    END LOOP;
    RETURN bad;
END
$f$;

-- the state the rewritten reads rely on, against plain SQL over the demo tables: rows that differ
CREATE FUNCTION pg_temp.state_diff() RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    m timestamptz;
    n bigint;
    bad text[] := '{}';
BEGIN
    -- every customer with an order has its first order in crm.rollup_customers (the customer rows
    -- take "no row at or after prev_from" for "first order before it")
    SELECT count(*) INTO n FROM (
        (SELECT customer_id::text, min(ordered_at) FROM crm_demo.orders WHERE customer_id IS NOT NULL AND ordered_at IS NOT NULL GROUP BY 1
         EXCEPT SELECT customer_id, first_at FROM crm.rollup_customers)
        UNION ALL
        (SELECT customer_id, first_at FROM crm.rollup_customers
         EXCEPT SELECT customer_id::text, min(ordered_at) FROM crm_demo.orders WHERE customer_id IS NOT NULL AND ordered_at IS NOT NULL GROUP BY 1)) d;
    IF n > 0 THEN
        bad := bad || format('first orders: %s rows differ', n);
    END IF;
    FOREACH m IN ARRAY ARRAY['2024-01-01', '2024-06-15 12:00', '2025-06-01', '2025-12-01', '2026-01-01', '2030-01-01']::timestamptz[] LOOP
        -- the invoices not paid before m (index on coalesce(paid_at, infinity)), issued before m
        SELECT count(*) INTO n FROM (
            (SELECT invoice_id::text, issued_at, due_at, amount, paid_at FROM crm_demo.invoices WHERE issued_at < m AND (paid_at IS NULL OR paid_at >= m)
             EXCEPT ALL SELECT invoice_id, issued_at, due_at, amount, paid_at FROM crm.rollup_invoices
                         WHERE issued_at < m AND coalesce(paid_at, 'infinity'::timestamptz) >= m)
            UNION ALL
            (SELECT invoice_id, issued_at, due_at, amount, paid_at FROM crm.rollup_invoices
              WHERE issued_at < m AND coalesce(paid_at, 'infinity'::timestamptz) >= m
             EXCEPT ALL SELECT invoice_id::text, issued_at, due_at, amount, paid_at FROM crm_demo.invoices WHERE issued_at < m AND (paid_at IS NULL OR paid_at >= m))) d;
        IF n > 0 THEN
            bad := bad || format('invoices unpaid at %s: %s rows differ', m, n);
        END IF;
        -- the leads of the 61 days before m, with channel and customer
        SELECT count(*) INTO n FROM (
            (SELECT lead_id::text, created_at, channel, customer_id::text FROM crm_demo.leads WHERE created_at >= m - interval '61 days' AND created_at < m
             EXCEPT ALL SELECT lead_id, created_at, channel, customer_id FROM crm.rollup_leads WHERE created_at >= m - interval '61 days' AND created_at < m)
            UNION ALL
            (SELECT lead_id, created_at, channel, customer_id FROM crm.rollup_leads WHERE created_at >= m - interval '61 days' AND created_at < m
             EXCEPT ALL SELECT lead_id::text, created_at, channel, customer_id::text FROM crm_demo.leads WHERE created_at >= m - interval '61 days' AND created_at < m)) d;
        IF n > 0 THEN
            bad := bad || format('leads before %s: %s rows differ', m, n);
        END IF;
    END LOOP;
    RETURN bad;
END
$f$;

-- 1-3: after a full refresh; the indexes the reads use exist
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT is(pg_temp.diff(), '{}'::text[], 'after a full refresh: owner_dashboard from the rollups = the full computation, 8 periods');
SELECT is(pg_temp.state_diff(), '{}'::text[], 'after a full refresh: first orders, unpaid invoices and leads read by index = plain SQL');
SELECT is((SELECT count(*) FROM pg_indexes WHERE schemaname = 'crm'
            AND (indexdef LIKE '%rollup_invoices USING btree (COALESCE(paid_at%INCLUDE (issued_at, due_at, amount, paid_at)%'
                 OR indexdef LIKE '%rollup_leads USING btree (created_at) INCLUDE (month, channel, customer_id, first_response)%')),
          2::bigint, 'the covering indexes of the unpaid invoices and of the leads by creation exist');

-- 4-5: the view, fast and full
CREATE TEMP TABLE v_fast AS SELECT * FROM crm.v_owner_dashboard;
SET LOCAL crm_analytics.rollups = off;
CREATE TEMP TABLE v_full AS SELECT * FROM crm.v_owner_dashboard;
SET LOCAL crm_analytics.rollups = fresh;
SELECT is((SELECT count(*) FROM ((TABLE v_fast EXCEPT ALL TABLE v_full) UNION ALL (TABLE v_full EXCEPT ALL TABLE v_fast)) d), 0::bigint,
          'v_owner_dashboard from the rollups = the full computation');
SELECT ok((SELECT count(*) FROM v_fast) > 30, 'v_owner_dashboard has its rows');

-- 6-10: three seeded rounds of random changes (invoices paid later, leads added and removed,
-- orders before a customer's first one, ...), incremental refreshes
\ir data/rollups_random_round.sql
SELECT setseed(0.66);
SELECT pg_temp.random_round(1);
SELECT ok(NOT crm._rollups_usable(), 'changes waiting: the default (fresh) takes the full computation');
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(2);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(3);
-- and an old invoice paid now, a new one unpaid, a buyer's first order moved into the dashboard period
UPDATE crm_demo.invoices SET paid_at = '2025-12-20' WHERE invoice_id = (SELECT min(invoice_id) FROM crm_demo.invoices WHERE paid_at IS NULL);
INSERT INTO crm_demo.invoices (invoice_id, deal_id, customer_id, issued_at, due_at, amount, paid_at)
SELECT max(invoice_id) + 1, min(deal_id), NULL, '2025-11-20', '2025-12-05', 123.45, NULL FROM crm_demo.invoices;
DELETE FROM crm_demo.orders WHERE customer_id = (SELECT min(customer_id) FROM crm_demo.orders) AND ordered_at < '2025-11-15';
SELECT count(*) FROM crm.refresh_rollups();
SELECT is(pg_temp.diff(), '{}'::text[], 'after 3 random rounds, incremental refreshes: owner_dashboard from the rollups = the full computation, 8 periods');
SELECT is(pg_temp.state_diff(), '{}'::text[], 'after 3 random rounds: first orders, unpaid invoices and leads read by index = plain SQL');
SELECT ok((SELECT count(*) FROM crm.rollup_invoices WHERE paid_at IS NULL) > 0, 'unpaid invoices are kept');
SELECT ok((SELECT count(*) FROM crm.rollup_customers WHERE first_at >= '2025-11-01') > 0, 'new buyers of the two periods are kept');

-- 11-12: a full rebuild gives the same
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT is(pg_temp.diff(), '{}'::text[], 'after a full rebuild: owner_dashboard from the rollups = the full computation, 8 periods');
SELECT is(pg_temp.state_diff(), '{}'::text[], 'after a full rebuild: first orders, unpaid invoices and leads read by index = plain SQL');

-- 13-16: a hand-worked invoice fixture (the only invoices), for April 2027 (previous period:
-- 2027-03-02 .. 2027-03-31; ends 2027-05-01 and 2027-04-01):
--   I1: issued 03-01, due 03-15, 100.00, paid 04-10: unpaid and overdue at the previous end only
--   I2: issued 03-20, due 05-20, 40.00, never paid: unpaid at both ends, overdue at neither
--   I3: issued 04-05, due 04-20, 60.00, never paid: unpaid and overdue at the current end
--   I4: issued 02-01, due 02-15, 999.00, paid 03-30: paid before both ends
-- current end: unpaid I2, I3: 2 invoices, 100.00; age I2 42 days (03-20 .. 05-01), I3 26 days:
--   34.00; overdue I3: 1, 60.00
-- previous end: unpaid I1, I2: 2 invoices, 140.00; age I1 31 days, I2 12 days: 21.50;
--   overdue I1: 1, 100.00
DELETE FROM crm_demo.invoices;
INSERT INTO crm_demo.invoices (invoice_id, deal_id, customer_id, issued_at, due_at, amount, paid_at)
SELECT v.n, (SELECT min(deal_id) FROM crm_demo.deals), NULL, v.i, v.d, v.a, v.p
  FROM (VALUES (1, timestamptz '2027-03-01', timestamptz '2027-03-15', 100.00, timestamptz '2027-04-10'),
               (2, '2027-03-20', '2027-05-20', 40.00, NULL), (3, '2027-04-05', '2027-04-20', 60.00, NULL),
               (4, '2027-02-01', '2027-02-15', 999.00, '2027-03-30')) AS v(n, i, d, a, p);
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(crm._rollups_usable(), 'fixture: the rollups are fresh');
SELECT results_eq(
    $$SELECT metric, value, previous_value FROM crm.owner_dashboard('2027-04-01', '2027-04-30')
       WHERE metric IN ('unpaid_invoices', 'unpaid_invoice_amount', 'unpaid_invoice_age', 'overdue_invoices', 'overdue_invoice_amount')
       ORDER BY metric$$,
    $$VALUES ('overdue_invoice_amount', 60.00::numeric, 100.00::numeric), ('overdue_invoices', 1, 1),
             ('unpaid_invoice_age', 34.00, 21.50), ('unpaid_invoice_amount', 100.00, 140.00), ('unpaid_invoices', 2, 2)$$,
    'hand-worked fixture: the invoice rows of both periods from the rollups');
SET LOCAL crm_analytics.rollups = off;
SELECT results_eq(
    $$SELECT metric, value, previous_value FROM crm.owner_dashboard('2027-04-01', '2027-04-30')
       WHERE metric IN ('unpaid_invoices', 'unpaid_invoice_amount', 'unpaid_invoice_age', 'overdue_invoices', 'overdue_invoice_amount')
       ORDER BY metric$$,
    $$VALUES ('overdue_invoice_amount', 60.00::numeric, 100.00::numeric), ('overdue_invoices', 1, 1),
             ('unpaid_invoice_age', 34.00, 21.50), ('unpaid_invoice_amount', 100.00, 140.00), ('unpaid_invoices', 2, 2)$$,
    'hand-worked fixture: the same rows from the full computation');
SET LOCAL crm_analytics.rollups = fresh;
DELETE FROM periods;
INSERT INTO periods VALUES ('2027-04-01', '2027-04-30'), ('2027-04-05', '2027-04-12'), ('2027-03-01', '2027-06-30');
SELECT is(pg_temp.diff(), '{}'::text[], 'hand-worked fixture: owner_dashboard from the rollups = the full computation, 3 periods');

SELECT * FROM finish();
ROLLBACK;
