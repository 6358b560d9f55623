-- coverage_changes: UPDATE and DELETE of interactions keep crm.coverage current
-- (crm.coverage_change_trigger).  After every statement the coverage table is
-- compared with an independent plain-SQL computation (max()/count() over the
-- remaining counted interactions), and at the end with crm.coverage_rebuild().
BEGIN;
SELECT plan(31);
SET LOCAL TimeZone = 'UTC';

CREATE TABLE cc_customers (customer_id int PRIMARY KEY, class text, manager_id int, created_at timestamptz);
INSERT INTO cc_customers SELECT g, CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END, 1, '2024-01-01' FROM generate_series(1, 8) g;
CREATE TABLE cc_int (id serial PRIMARY KEY, customer_id int, kind text, direction text,
                          automated boolean NOT NULL DEFAULT false, occurred_at timestamptz NOT NULL);
SELECT is(crm.attach_coverage('cc_int', customers => 'cc_customers', class_column => 'class'), 8::bigint,
          'attached to a table of 8 customers');
SELECT is((SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'cc_int'::regclass),
          ARRAY['crm_coverage', 'crm_coverage_delete', 'crm_coverage_truncate', 'crm_coverage_update'],
          'attach creates the INSERT, UPDATE, DELETE and TRUNCATE triggers');

INSERT INTO cc_int (customer_id, kind, direction, automated, occurred_at)
SELECT 1 + g % 8, (ARRAY['call', 'meeting', 'email', 'mailing'])[1 + g % 4], 'outbound', g % 7 = 0,
       timestamptz '2025-01-01' + g * interval '1 day' + (g % 5) * interval '1 hour'
  FROM generate_series(1, 80) g;

-- independent computation: every customer of cc_customers plus unknown customers with counted contacts
CREATE TEMP VIEW cc_expected AS
WITH a AS (SELECT customer_id::bigint AS k, max(occurred_at) AS last, count(*) AS n FROM cc_int
            WHERE customer_id IS NOT NULL AND kind IN ('call', 'meeting', 'email') AND NOT automated GROUP BY 1)
SELECT coalesce(cu.customer_id, a.k) AS customer_id, a.last AS last_contact, coalesce(a.n, 0) AS contacts,
       coalesce(a.last, cu.created_at) + p.max_interval AS next_due
  FROM cc_customers cu FULL JOIN a ON a.k = cu.customer_id
  LEFT JOIN crm.coverage_policy p ON p.class = cu.class;
CREATE TEMP VIEW cc_diff AS
SELECT count(*) AS n FROM (
    (SELECT customer_id, last_contact, contacts, next_due FROM crm.coverage EXCEPT SELECT * FROM cc_expected)
    UNION ALL
    (SELECT * FROM cc_expected EXCEPT SELECT customer_id, last_contact, contacts, next_due FROM crm.coverage)) d;

SELECT is((SELECT n FROM cc_diff), 0::bigint, 'after the inserts coverage equals max()/count()');

-- UPDATE of occurred_at: the last contact moves back to an earlier time
UPDATE cc_int SET occurred_at = '2024-06-01'
 WHERE id = (SELECT id FROM cc_int WHERE customer_id = 1 AND kind <> 'mailing' AND NOT automated ORDER BY occurred_at DESC LIMIT 1);
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'UPDATE moving the last contact back: last contact is the previous one');
-- and forward
UPDATE cc_int SET occurred_at = '2026-03-01' WHERE id = (SELECT min(id) FROM cc_int WHERE customer_id = 2 AND kind <> 'mailing' AND NOT automated);
SELECT is((SELECT last_contact FROM crm.coverage WHERE customer_id = 2), '2026-03-01'::timestamptz,
          'UPDATE moving a contact forward becomes the last contact');
SELECT is((SELECT n FROM cc_diff), 0::bigint, '... and everything equals max()/count()');

-- UPDATE of the customer: the row moves from customer 3 to customer 4
UPDATE cc_int SET customer_id = 4
 WHERE id = (SELECT id FROM cc_int WHERE customer_id = 3 AND kind <> 'mailing' AND NOT automated ORDER BY occurred_at DESC LIMIT 1);
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'UPDATE moving a contact to another customer recomputes both');

-- UPDATE of the kind: a call becomes a mailing (stops counting), a mailing becomes a call (starts)
UPDATE cc_int SET kind = 'mailing'
 WHERE id = (SELECT id FROM cc_int WHERE customer_id = 5 AND kind = 'call' AND NOT automated ORDER BY occurred_at DESC LIMIT 1);
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'a contact that stops counting is removed');
UPDATE cc_int SET kind = 'call', automated = false, occurred_at = '2026-04-01'
 WHERE id = (SELECT id FROM cc_int WHERE customer_id = 8 AND kind = 'mailing' ORDER BY occurred_at LIMIT 1);
SELECT is((SELECT last_contact FROM crm.coverage WHERE customer_id = 8), '2026-04-01'::timestamptz,
          'a mailing turned into a call counts');
UPDATE cc_int SET automated = NOT automated WHERE customer_id = 7;
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'flipping automated on every row of a customer');
-- an update that changes nothing counted
UPDATE cc_int SET direction = 'inbound' WHERE customer_id = 8;
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'an UPDATE of an uncounted column keeps coverage equal');

-- DELETE of the last contact, of a non-last contact, of all contacts
DELETE FROM cc_int WHERE id = (SELECT id FROM cc_int WHERE customer_id = 2 AND kind <> 'mailing' AND NOT automated
                                 ORDER BY occurred_at DESC LIMIT 1);
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'DELETE of the last contact moves last contact back to the previous one');
DELETE FROM cc_int WHERE id = (SELECT id FROM cc_int WHERE customer_id = 4 AND kind <> 'mailing' AND NOT automated
                                 ORDER BY occurred_at LIMIT 1);
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'DELETE of a non-last contact lowers the count only');
DELETE FROM cc_int WHERE customer_id = 1;
SELECT is((SELECT last_contact FROM crm.coverage WHERE customer_id = 1), NULL::timestamptz,
          'DELETE of all contacts: no last contact');
SELECT is((SELECT (contacts, next_due) FROM crm.coverage WHERE customer_id = 1),
          (SELECT (0::bigint, created_at + interval '3 months') FROM cc_customers WHERE customer_id = 1),
          '... no contacts, next due from the customer-since date');

-- multi-row statements over several customers
UPDATE cc_int SET occurred_at = occurred_at - interval '40 days' WHERE id % 3 = 0;
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'multi-row UPDATE of occurred_at');
UPDATE cc_int SET customer_id = 1 + customer_id % 8 WHERE id % 4 = 1;
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'multi-row UPDATE moving rows between customers');
DELETE FROM cc_int WHERE id % 5 = 0;
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'multi-row DELETE');

-- unknown customers (unknown_customers = insert): added by an UPDATE, dropped when their last contact goes
UPDATE cc_int SET customer_id = 99 WHERE id = (SELECT min(id) FROM cc_int WHERE kind = 'call' AND NOT automated);
SELECT is((SELECT contacts FROM crm.coverage WHERE customer_id = 99), 1::bigint, 'a contact moved to an unknown customer adds it');
DELETE FROM cc_int WHERE customer_id = 99;
SELECT is((SELECT count(*) FROM crm.coverage WHERE customer_id = 99), 0::bigint,
          'its last contact deleted: the unknown customer goes, as in a rebuild');
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'still equal to max()/count()');

-- an application role with the documented privileges can update and delete interactions
CREATE ROLE cc_app;
GRANT USAGE ON SCHEMA crm TO cc_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON crm.coverage TO cc_app;
GRANT SELECT ON crm.coverage_config TO cc_app;
GRANT SELECT ON cc_customers TO cc_app;
GRANT SELECT, UPDATE, DELETE ON cc_int TO cc_app;
SET LOCAL ROLE cc_app;
SELECT lives_ok($$UPDATE cc_int SET occurred_at = occurred_at + interval '2 days' WHERE customer_id IN (2, 3);
                  DELETE FROM cc_int WHERE customer_id = 4 AND id % 2 = 0$$, 'UPDATE and DELETE as an application role');
RESET ROLE;
SELECT is((SELECT n FROM cc_diff), 0::bigint, '... and coverage still equals max()/count()');

-- the rebuild agrees with the trigger-kept table
CREATE TEMP TABLE cc_kept AS SELECT * FROM crm.coverage;
SELECT crm.coverage_rebuild();
SELECT is((SELECT count(*) FROM ((SELECT * FROM cc_kept EXCEPT SELECT * FROM crm.coverage)
                                 UNION ALL (SELECT * FROM crm.coverage EXCEPT SELECT * FROM cc_kept)) d),
          0::bigint, 'crm.coverage_rebuild() computes the same rows');

-- unknown_customers = error: moving a contact to an unknown customer fails
SELECT crm.attach_coverage('cc_int', customers => 'cc_customers', class_column => 'class', unknown_customers => 'error');
SELECT throws_ok($$UPDATE cc_int SET customer_id = 98 WHERE id = (SELECT min(id) FROM cc_int WHERE kind = 'call' AND NOT automated)$$,
                 '23503', 'interaction for unknown customer 98', 'unknown_customers = error rejects an UPDATE to an unknown customer');

-- TRUNCATE: no contact is left; customers keep their rows, next due from their start date
SELECT crm.attach_coverage('cc_int', customers => 'cc_customers', class_column => 'class', unknown_customers => 'insert');
INSERT INTO cc_int (customer_id, kind, occurred_at) VALUES (99, 'call', '2025-03-01');
SELECT is((SELECT contacts FROM crm.coverage WHERE customer_id = 99), 1::bigint, 'an unknown customer added by its interaction');
TRUNCATE cc_int;
SELECT is((SELECT n FROM cc_diff), 0::bigint, 'after TRUNCATE coverage equals max()/count() over no interactions (the unknown customer is gone)');
INSERT INTO cc_int (customer_id, kind, occurred_at) VALUES (2, 'meeting', '2025-04-01'), (2, 'call', '2025-04-03');
SELECT is((SELECT n FROM cc_diff), 0::bigint, '... and inserts after it are counted from zero');
-- the rebuild runs with the truncating role's rights: without them the TRUNCATE fails as a whole
GRANT TRUNCATE ON cc_int TO cc_app;
SET LOCAL ROLE cc_app;
SELECT throws_ok($$TRUNCATE cc_int$$, '42501', NULL,
                 'TRUNCATE by a role that may not refill crm.coverage fails with the permission error');
RESET ROLE;
SELECT is((SELECT count(*) FROM cc_int) > 0 AND (SELECT n FROM cc_diff) = 0, true,
          '... and nothing is lost: the interactions are still there and coverage equals max()/count()');

SELECT crm.detach_coverage();
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cc_int'::regclass), 0::bigint, 'detach drops all four triggers');
SELECT * FROM finish();
ROLLBACK;
