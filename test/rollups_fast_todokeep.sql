-- test/rollups_fast_todokeep.sql: the to-do list kept as of a moment (crm.rollup_todo_kept,
-- crm._todo_horizon, crm.keep_todo; docs/rollups.md 5.7) against the full computation
-- (crm_analytics.rollups = off), row for row and in the same order.
--
-- The horizon is checked by walking: kept as of E0, the list read from the kept rows at moments up to
-- just before the horizon equals the full computation there (soundness, with the notes' day counts
-- made when read), and on a hand-made CRM whose every threshold is worked out (a lead passing its SLA,
-- an invoice falling due, a deal turning stale, an order leaving the 12 months, a reactivation, a
-- contact falling due, a contact, a payment) each horizon is the next threshold (tightness).  Then
-- what must forget the kept list (a refresh that changed something, a setting, a norm, an output
-- setting) and what must not (a refresh without changes), and who may not keep it (a read-only
-- transaction, a role without write privilege on the kept tables).
BEGIN;
SELECT plan(57);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;
\ir data/todo_diff.sql

-- the walk: from e, keep as of e (crm._todo_keep), compare the kept list at e, between e and the
-- horizon and just before it with the full computation, go on just after the horizon (an hour
-- later when nothing could be kept); steps
-- (horizon, moments compared, rows that differ, moments the kept list did not answer)
CREATE TEMP TABLE walk (step int, from_at timestamptz, horizon timestamptz, compared int, differ bigint, not_kept int);
CREATE FUNCTION pg_temp.walk(e timestamptz, steps int) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    h timestamptz;
    m timestamptz;
    c int;
    d bigint;
    nk int;
BEGIN
    FOR i IN 1 .. steps LOOP
        IF NOT crm._todo_keep(e) THEN
            INSERT INTO walk VALUES (i, e, NULL, 0, 0, 0);
            e := e + interval '1 hour';
            CONTINUE;
        END IF;
        h := (SELECT k.valid_until FROM crm.rollup_todo_kept_key k);
        c := 0; d := 0; nk := 0;
        FOREACH m IN ARRAY ARRAY[e, e + (h - e) / 2, h - interval '1 microsecond'] LOOP
            IF NOT crm._todo_kept_for(m) THEN
                nk := nk + 1;
            END IF;
            d := d + pg_temp.todo_diff(m);
            c := c + 1;
        END LOOP;
        INSERT INTO walk VALUES (i, e, h, c, d, nk);
        e := h + interval '1 microsecond';
    END LOOP;
END
$f$;

SELECT count(*) FROM crm.refresh_rollups(full => true);

-- kept as of now() by crm.keep_todo, read back by crm.todo() and crm.v_todo
SELECT ok(crm._rollups_usable(), 'after a refresh the gate is open');
SELECT is(crm.keep_todo(), (SELECT count(*) FROM crm.todo()), 'crm.keep_todo() keeps as of now() and returns the items kept');
SELECT ok(crm._todo_kept_for(now()) AND (SELECT k.as_of = now() AND k.valid_until > now() FROM crm.rollup_todo_kept_key k)
          AND (SELECT count(*) FROM crm.rollup_todo_kept) > 100, 'the key: as of now(), valid after it, items kept');
SELECT is(pg_temp.todo_diff(now()), 0::bigint, 'crm.todo() from the kept list = the full computation, same rows in the same order');
SELECT is(pg_temp.view_diff(), 0::bigint, 'crm.v_todo from the kept list = the full computation');

-- walked over the demo as of now() and as of the end of the data (orders leave the 12 months,
-- contacts fall due, ...): each kept list equals the full computation up to its horizon
SELECT pg_temp.walk(now(), 3);
SELECT pg_temp.walk('2025-12-31 12:00', 4);
SELECT pg_temp.walk('2025-06-15 12:00', 3);
SELECT is((SELECT sum(differ) FROM walk), 0::numeric, 'the demo, walked: every kept list = the full computation up to its horizon');
SELECT is((SELECT sum(not_kept) FROM walk), 0::bigint, 'the demo, walked: every compared moment was answered by the kept list');
SELECT cmp_ok((SELECT sum(compared) FROM walk WHERE horizon IS NOT NULL), '>=', 18::bigint,
              'the demo walk compared moments (not vacuous)');

-- a hand-made CRM with its thresholds worked out, after every demo threshold (E0 = 2027-03-01,
-- more than 12 months after the demo's last order, contact, due date and norm):
--   T1 E0 + 30 min: a lead created at E0 - 30 min passes its SLA (1 hour)
--   T2 E0 + 2 h: an invoice issued at E0 - 10 days falls due
--   T3 E0 + 3 h: a deal whose last event (stage proposal, norm 45 days) was E0 - 45 days + 3 h turns stale
--   T4 E0 + 4 h: an order of E0 - 12 months + 4 h leaves the 12 months
--   T5 E0 + 5 h: a customer's one order of E0 - 90 days + 5 h is due for reactivation
--   T6 E0 + 6 h: a customer created at E0 - 6 months + 6 h, no order, no contact (class C) is due a contact
--   T7 E0 + 7 h: a real contact (dated then)
--   T8 E0 + 8 h: the invoice of T2 paid
-- then nothing for 30 days (the cap)
TRUNCATE walk;
INSERT INTO crm_demo.leads (lead_id, created_at, channel, manager_id, customer_id)
SELECT (SELECT max(lead_id) FROM crm_demo.leads) + 1, timestamptz '2027-03-01' - interval '30 minutes', 'referral', 3, NULL;
INSERT INTO crm_demo.customers (customer_id, lead_id, name, channel, manager_id, created_at)
VALUES (991001, 1, 'Keep 1', 'referral', 4, timestamptz '2027-03-01' - interval '100 days'),
       (991002, 1, 'Keep 2', 'referral', 5, timestamptz '2027-03-01' - interval '6 months' + interval '6 hours'),
       (991003, 1, 'Keep 3', 'referral', 2, timestamptz '2027-03-01' - interval '13 months');
INSERT INTO crm_demo.invoices (invoice_id, deal_id, customer_id, issued_at, due_at, amount, paid_at)
SELECT (SELECT max(invoice_id) FROM crm_demo.invoices) + 1, (SELECT min(deal_id) FROM crm_demo.deals), 991003,
       timestamptz '2027-03-01' - interval '10 days', timestamptz '2027-03-01' + interval '2 hours', 321.5,
       timestamptz '2027-03-01' + interval '8 hours';
INSERT INTO crm_demo.deals (deal_id, lead_id, customer_id, manager_id, channel, created_at, stage, amount)
SELECT (SELECT max(deal_id) FROM crm_demo.deals) + 1, 1, 991003, 2, 'referral', timestamptz '2027-03-01' - interval '60 days', 'proposal', 4500;
INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
SELECT (SELECT max(deal_id) FROM crm_demo.deals), timestamptz '2027-03-01' - interval '60 days', 'lead'
UNION ALL
SELECT (SELECT max(deal_id) FROM crm_demo.deals), timestamptz '2027-03-01' - interval '45 days' + interval '3 hours', 'proposal';
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 1, 991003, timestamptz '2027-03-01' - interval '12 months' + interval '4 hours', 1, 1, 900, 100
UNION ALL
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 2, 991001, timestamptz '2027-03-01' - interval '90 days' + interval '5 hours', 1, 1, 45.5, 10;
INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + 1, 991003, NULL, 2, 'call', 'outbound', false,
       timestamptz '2027-03-01' + interval '7 hours';
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.walk('2027-03-01', 10);
SELECT is(ARRAY(SELECT horizon - timestamptz '2027-03-01' FROM walk WHERE horizon IS NOT NULL ORDER BY step LIMIT 9),
          ARRAY[interval '30 minutes', '2 hours', '3 hours', '4 hours', '5 hours', '6 hours', '7 hours', '8 hours',
                interval '8 hours' + interval '1 microsecond' + interval '30 days'],
          'hand-made CRM: each horizon is the next threshold (T1 ... T8), then the 30-day cap');
SELECT is((SELECT sum(differ) FROM walk), 0::numeric, 'hand-made CRM, walked: every kept list = the full computation up to its horizon');
SELECT ok((SELECT sum(not_kept) = 0 AND sum(compared) >= 27 FROM walk WHERE horizon IS NOT NULL),
          'hand-made CRM: every compared moment answered by the kept list');
-- the items the thresholds bring, as the full computation lists them at E0 + 9 h (not vacuous)
CREATE TEMP TABLE hm_ids AS
SELECT (SELECT max(lead_id)::text FROM crm_demo.leads) AS lead_id, (SELECT max(invoice_id)::text FROM crm_demo.invoices) AS invoice_id,
       (SELECT max(deal_id)::text FROM crm_demo.deals) AS deal_id;
SELECT is(ARRAY(SELECT t.kind || ':' || t.entity_id FROM crm.todo(timestamptz '2027-03-01' + interval '9 hours') t, hm_ids h
                 WHERE (t.kind, t.entity_id) IN (('unanswered_lead', h.lead_id), ('overdue_invoice', h.invoice_id), ('stale_deal', h.deal_id),
                                                 ('reactivation', '991001'), ('reactivation', '991002'), ('reactivation', '991003'),
                                                 ('overdue_contact', '991001'), ('overdue_contact', '991002'), ('overdue_contact', '991003'))
                 ORDER BY 1),
          (SELECT ARRAY['overdue_contact:991001', 'overdue_contact:991002', 'reactivation:991001', 'stale_deal:' || h.deal_id,
                        'unanswered_lead:' || h.lead_id] FROM hm_ids h),
          'hand-made CRM at E0 + 9 h: the lead, the deal, the reactivation, 991001 (class A once 991003''s order left) and 991002 due a contact; the invoice paid; 991003 contacted');

-- more thresholds after E1 = E0 + 9 h, each 10 minutes after the last: a first response to
-- the unanswered lead (+10 min), an invoice issued (+20), a new deal's event (+30), a new customer
-- (+40), a second order of 991001 (+50), a real contact of 991002 (+60), and 991001's contact
-- (class A) falling due 1 month after its last real contact (+70)
INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + 1, NULL, (SELECT lead_id::bigint FROM hm_ids), 3, 'call', 'outbound', false,
       timestamptz '2027-03-01 09:10'
UNION ALL
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + 2, 991002, NULL, 5, 'call', 'outbound', false, timestamptz '2027-03-01 10:00'
UNION ALL
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + 3, 991001, NULL, 4, 'call', 'outbound', false, timestamptz '2027-02-01 10:10';
INSERT INTO crm_demo.invoices (invoice_id, deal_id, customer_id, issued_at, due_at, amount, paid_at)
SELECT (SELECT max(invoice_id) FROM crm_demo.invoices) + 1, (SELECT min(deal_id) FROM crm_demo.deals), 991003,
       timestamptz '2027-03-01 09:20', timestamptz '2027-03-06', 99, NULL;
INSERT INTO crm_demo.deals (deal_id, lead_id, customer_id, manager_id, channel, created_at, stage, amount)
SELECT (SELECT max(deal_id) FROM crm_demo.deals) + 1, 1, 991003, 2, 'referral', timestamptz '2027-03-01 09:30', 'lead', 700;
INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
SELECT (SELECT max(deal_id) FROM crm_demo.deals), timestamptz '2027-03-01 09:30', 'lead';
INSERT INTO crm_demo.customers (customer_id, lead_id, name, channel, manager_id, created_at)
VALUES (991004, 1, 'Keep 4', 'referral', 1, timestamptz '2027-03-01 09:40');
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 1, 991001, timestamptz '2027-03-01 09:50', 1, 1, 12, 2;
SELECT count(*) FROM crm.refresh_rollups();
TRUNCATE walk;
SELECT pg_temp.walk('2027-03-01 09:00', 8);
SELECT is(ARRAY(SELECT to_char(horizon, 'HH24:MI') FROM walk WHERE horizon IS NOT NULL ORDER BY step LIMIT 7),
          ARRAY['09:10', '09:20', '09:30', '09:40', '09:50', '10:00', '10:10'],
          'hand-made CRM after E0 + 9 h: each horizon is the next threshold (first response, invoice issued, deal event, customer, second order, contact, contact due)');
SELECT is((SELECT sum(differ) FROM walk), 0::numeric, 'hand-made CRM after E0 + 9 h, walked: every kept list = the full computation up to its horizon');
SELECT ok((SELECT sum(not_kept) = 0 AND sum(compared) >= 21 FROM walk WHERE horizon IS NOT NULL),
          'hand-made CRM after E0 + 9 h: every compared moment answered by the kept list');

-- a 29 February: as of 2028-02-29 00:00 the 12 months start on 2027-02-28 00:00 (the 28th
-- for the 29th), so an order of 2027-02-28 10:00, out of them at 2028-02-28 23:00, is back in
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 1, 991001, timestamptz '2027-02-28 10:00', 1, 1, 10, 1;
SELECT count(*) FROM crm.refresh_rollups();
SELECT isnt((SELECT value FROM crm.todo('2028-02-28 23:00') WHERE kind = 'overdue_contact' AND entity_id = '991001'),
            (SELECT value FROM crm.todo('2028-02-29 00:00') WHERE kind = 'overdue_contact' AND entity_id = '991001'),
            'the leap day is real: 991001''s 12-month revenue changes at 2028-02-29 00:00');
SELECT ok(crm._todo_keep('2028-02-28 21:00'), 'kept at 2028-02-28 21:00');
SELECT cmp_ok((SELECT valid_until FROM crm.rollup_todo_kept_key), '<=', timestamptz '2028-02-29 00:00',
              'kept at 2028-02-28 21:00: valid until the start of the 29th at the latest');
SELECT is(pg_temp.todo_diff('2028-02-29 00:00') + pg_temp.todo_diff('2028-02-28 23:59:59'), 0::bigint,
          'around the start of the 29th: crm.todo = the full computation');

-- an event with a stage crm.pipeline_stages does not list, after a kept list's moment: the
-- list holds until it (a threshold), the report raises after it, and nothing is kept after it
-- (the refresh refuses such an event; the deal state that would hold it, as rollups_fast_deals.sql sets it)
UPDATE crm.rollup_deal_now SET unknown_at = '2027-04-10 12:00' WHERE deal_id = (SELECT deal_id FROM hm_ids);
SELECT ok(crm._todo_keep('2027-04-10 11:00'), 'kept before an unknown stage''s event');
SELECT cmp_ok((SELECT valid_until FROM crm.rollup_todo_kept_key), '<=', timestamptz '2027-04-10 12:00',
              'kept before an unknown stage''s event: valid until it at the latest');
SELECT throws_ok($$SELECT count(*) FROM crm.todo('2027-04-10 12:00:01')$$, '22023', NULL,
                 'after the unknown stage''s event crm.todo raises (nothing kept answers for it)');
SELECT is(crm._todo_keep('2027-04-10 12:00:01'), false, 'nothing is kept for a moment after an unknown stage''s event');
UPDATE crm.rollup_deal_now SET unknown_at = NULL WHERE deal_id = (SELECT deal_id FROM hm_ids);

-- what forgets the kept list, and what does not
SELECT cmp_ok(crm.keep_todo(), '>', 0::bigint, 'kept again as of now()');
SELECT ok(crm._todo_kept_for(now()), 'kept again: the kept list answers as of now()');
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(crm._todo_kept_for(now()), 'a refresh that changed nothing leaves the kept list');
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 1, 991002, now() - interval '2 days', 1, 1, 5000, 100;
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(NOT crm._todo_kept_for(now()), 'a refresh after a new order forgets the kept list');
SELECT is(pg_temp.todo_diff(now()), 0::bigint, 'after the new order: crm.todo() (kept again) = the full computation');

-- the settings and the session's output settings
UPDATE crm.dashboard_settings SET lead_sla = interval '2 days';
SELECT ok(NOT crm._todo_kept_for(now()), 'a new lead SLA forgets the kept list');
SELECT is(pg_temp.todo_diff(now()), 0::bigint, 'lead SLA 2 days: crm.todo() (kept again) = the full computation');
UPDATE crm.pipeline_stages SET max_days = 10 WHERE stage = 'proposal';
SELECT ok(NOT crm._todo_kept_for(now()), 'a new stage norm forgets the kept list');
SELECT is(pg_temp.todo_diff(now()), 0::bigint, 'norm 10 days: crm.todo() (kept again) = the full computation');
UPDATE crm.coverage_policy SET max_interval = max_interval + interval '1 day' WHERE class = 'B';
SELECT ok(NOT crm._todo_kept_for(now()), 'a new contact interval forgets the kept list');
SELECT is(pg_temp.todo_diff(now()), 0::bigint, 'contact interval of class B changed: crm.todo() (kept again) = the full computation');
UPDATE crm.dashboard_settings SET reactivation_after = interval '100 days';
SELECT ok(NOT crm._todo_kept_for(now()), 'a new reactivation period forgets the kept list');
SET LOCAL DateStyle = 'German, DMY';
SET LOCAL IntervalStyle = 'sql_standard';
SELECT ok(NOT crm._todo_kept_for(now()), 'another DateStyle and IntervalStyle: the kept list is not read');
SELECT is(pg_temp.todo_diff(now()), 0::bigint, 'DateStyle German, IntervalStyle sql_standard: crm.todo() (kept under them) = the full computation');
RESET DateStyle;
RESET IntervalStyle;

-- a read-only transaction and a role that may only read compute the list, and keep nothing
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT ok(NOT crm._todo_kept_for(now()), 'a full rebuild forgets the kept list');
SET LOCAL crm_analytics.rollups = 'off';
CREATE TEMP TABLE ro_full AS SELECT md5(string_agg(t::text, '|' ORDER BY rn)) AS h
  FROM (SELECT row_number() OVER () AS rn, t FROM crm.todo() t) AS t;
SET LOCAL crm_analytics.rollups = 'fresh';
SAVEPOINT ro;
SET LOCAL transaction_read_only = on;
SELECT is((SELECT md5(string_agg(t::text, '|' ORDER BY rn)) FROM (SELECT row_number() OVER () AS rn, t FROM crm.todo() t) AS t),
          (SELECT h FROM ro_full), 'read-only: crm.todo() = the full computation (same rows in the same order)');
SELECT ok(NOT crm._todo_may_keep() AND NOT crm._todo_kept_for(now()), 'read-only: nothing kept');
ROLLBACK TO SAVEPOINT ro;
CREATE ROLE crm_keep_reader;
GRANT USAGE ON SCHEMA crm, crm_demo TO crm_keep_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA crm, crm_demo TO crm_keep_reader;
SET LOCAL ROLE crm_keep_reader;
SELECT ok(crm._rollups_usable() AND NOT crm._todo_may_keep() AND (SELECT count(*) FROM crm.todo()) > 100 AND NOT crm._todo_kept_for(now()),
          'a role that may read every rollup table but not write the kept ones: answered from the rollups, nothing kept');
RESET ROLE;
GRANT INSERT ON crm.rollup_todo_kept, crm.rollup_todo_kept_key TO crm_keep_reader;
SET LOCAL ROLE crm_keep_reader;
SELECT ok(NOT crm._todo_may_keep(), 'a role that may INSERT but not DELETE on the kept tables may not keep the list');
RESET ROLE;
REVOKE SELECT ON crm.rollup_todo_kept, crm.rollup_todo_kept_key FROM crm_keep_reader;
SET LOCAL ROLE crm_keep_reader;
SELECT ok(crm._rollups_usable() AND NOT crm._todo_kept_for(now()),
          'a role that may not read the kept tables still answers from the rollups (the gate leaves them out) and reads nothing kept');
RESET ROLE;

-- crm.keep_todo with the gate closed keeps nothing; a moment the list cannot be kept for leaves what is kept
SET LOCAL crm_analytics.rollups = 'off';
SELECT is(crm.keep_todo(), 0::bigint, 'the gate closed: crm.keep_todo() keeps nothing (0)');
SET LOCAL crm_analytics.rollups = 'fresh';
SELECT cmp_ok(crm.keep_todo(), '>', 0::bigint, 'the gate open: kept');
SELECT is(crm._todo_keep('infinity'), false, 'as of infinity (no moment after it): not kept');
SELECT ok(crm._todo_kept_for(now()), 'as of infinity: the list kept before is left as it was');
SELECT throws_ok($$SELECT crm._todo_horizon(NULL)$$, '22004', 'e must not be null', 'the horizon of no moment: 22004');
SELECT is(crm._todo_keep(NULL), false, 'nothing is kept for no moment');

-- a time zone with summer time: the rollups rebuilt in Europe/Berlin and the hand-made CRM
-- walked from just after its last threshold (E0 + 10:10) over the change of 2027-03-28 (as_of - 12
-- months and as_of - a norm jump there: no list is kept over it; the stale deal's "idle N days"
-- made when read, after it)
SET LOCAL TimeZone = 'Europe/Berlin';
SELECT count(*) FROM crm.refresh_rollups(full => true);
TRUNCATE walk;
SELECT pg_temp.walk(timestamptz '2027-03-01 10:10:00.000001+00', 14);
SELECT is((SELECT sum(differ) FROM walk), 0::numeric,
          'Europe/Berlin, walked across the change of 2027-03-28: every kept list = the full computation up to its horizon');
SELECT ok((SELECT sum(not_kept) = 0 AND count(*) >= 3 AND bool_or(from_at > '2027-03-28 01:00+00')
                  AND NOT bool_or(from_at < '2027-03-28 01:00+00' AND horizon > '2027-03-27 23:15+00')
             FROM walk WHERE horizon IS NOT NULL),
          'Europe/Berlin: kept lists before and after the change, none valid within 1 h 45 min before it (2 hours before the 15-minute step that sees it); every compared moment answered by them');

-- Europe/Berlin in the demo's history (an order every few minutes): lists are kept, and across
-- the end of summer time (2025-10-26 03:00 CEST = 01:00 UTC) no horizon passes 2 hours before it
TRUNCATE walk;
SELECT pg_temp.walk('2025-06-15 12:00', 3);
SELECT pg_temp.walk('2025-10-25 22:30+00', 3);
SELECT is((SELECT sum(differ) FROM walk), 0::numeric,
          'Europe/Berlin, the demo''s history walked (June, the night summer time ends): every kept list = the full computation');
SELECT ok((SELECT count(*) FILTER (WHERE horizon IS NOT NULL) >= 4
                  AND bool_and(horizon <= '2025-10-25 23:00+00') FILTER (WHERE from_at < '2025-10-25 23:00+00' AND from_at > '2025-10-01')
             FROM walk),
          'Europe/Berlin: kept among dense orders; none valid past 2 hours before summer time ends');

-- Europe/Berlin, the end of the 2025 spring gap a year later: as_of - 12 months goes back 1 hour at
-- 2026-03-30 01:00Z (02:59 local - 12 months is 01:59Z, 03:00 local - 12 months is 01:00Z), so an
-- order of 2025-03-30 01:30Z leaves the 12 months at 00:30Z, is back at 01:00Z and leaves at 01:30Z
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT (SELECT max(order_id) FROM crm_demo.orders) + 1, 1, timestamptz '2025-03-30 01:30+00', 1, 1, 33, 3;
SELECT count(*) FROM crm.refresh_rollups();
CREATE TEMP TABLE gap_keep AS SELECT crm._todo_keep('2026-03-30 00:00+00') AS kept;
SELECT ok((SELECT NOT kept FROM gap_keep) OR (SELECT valid_until <= '2026-03-30 00:30+00' FROM crm.rollup_todo_kept_key),
          'Europe/Berlin, kept at 2026-03-30 00:00Z: not valid past the order''s first exit (00:30Z)');
TRUNCATE gap_keep;
INSERT INTO gap_keep SELECT crm._todo_keep('2026-03-30 00:45+00');
SELECT ok((SELECT NOT kept FROM gap_keep) OR (SELECT valid_until <= '2026-03-30 01:00+00' FROM crm.rollup_todo_kept_key),
          'Europe/Berlin, kept at 2026-03-30 00:45Z: not valid past the order''s return (01:00Z)');
SELECT is(pg_temp.todo_diff('2026-03-30 00:45+00') + pg_temp.todo_diff('2026-03-30 01:15+00'), 0::bigint,
          'Europe/Berlin around the gap''s end a year later: crm.todo = the full computation');

-- a source named without its schema, found on the caller's search_path: crm.keep_todo (which runs
-- crm.todo, and so the sources' check) keeps the list
SET LOCAL search_path = crm_demo, public;
SELECT crm.register_source('invoices', 'SELECT invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM invoices');
SELECT count(*) FROM crm.refresh_rollups();
SELECT cmp_ok(crm.keep_todo(), '>', 0::bigint, 'a source without its schema on the caller''s search_path: crm.keep_todo() keeps the list');
RESET search_path;

SELECT * FROM finish();
ROLLBACK;
