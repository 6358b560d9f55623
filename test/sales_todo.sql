-- test/sales_todo.sql: crm.todo, crm.v_todo and crm.notify_todo (issue 20, "who must be called
-- today"): on the demo against plain SQL over crm_demo.* and against crm.owner_dashboard where the
-- same question exists; on a tiny hand-made CRM whose every row was worked out by hand (with the
-- boundaries: exactly at the SLA, exactly at the stage norm, exactly at the next due contact,
-- exactly at the reactivation period, exactly at the due date); ordering, ranks, bad input.
BEGIN;
SELECT plan(42);
SET LOCAL TimeZone = 'UTC';

-- ===================================================================== the demo, as of 2026-01-01
CREATE TEMP TABLE td AS SELECT * FROM crm.todo('2026-01-01');

-- unanswered_lead: created more than 1 hour (the SLA) before as_of, no real outbound contact at or
-- after creation before as_of; value = channel's spend in the lead's month / channel's leads that month
CREATE TEMP TABLE x_ul AS
SELECT l.lead_id::text AS entity_id, l.manager_id::text AS manager_id, l.created_at + interval '1 hour' AS since,
       round(coalesce((SELECT sum(s.amount) FROM crm_demo.spend s
                        WHERE s.channel = l.channel AND date_trunc('month', s.month::timestamptz) = date_trunc('month', l.created_at))
                      / (SELECT count(*) FROM crm_demo.leads l2
                          WHERE l2.channel = l.channel AND date_trunc('month', l2.created_at) = date_trunc('month', l.created_at)), 0), 2) AS value
  FROM crm_demo.leads l
 WHERE l.created_at + interval '1 hour' < '2026-01-01'
   AND NOT EXISTS (SELECT 1 FROM crm_demo.interactions i WHERE i.lead_id = l.lead_id AND NOT i.automated AND i.direction = 'outbound'
                      AND i.occurred_at >= l.created_at AND i.occurred_at < '2026-01-01');
SELECT set_eq($$SELECT entity_id, manager_id, since, value FROM td WHERE kind = 'unanswered_lead'$$,
              $$SELECT entity_id, manager_id, since, value FROM x_ul$$,
              'demo unanswered_lead: the rows of plain SQL (lead, manager, since, channel-month cost)');

-- stale_deal: open at as_of, idle beyond the norm of its most advanced open stage
-- (demo norms: lead 30, qualified 30, proposal 45, invoice 60 days)
CREATE TEMP TABLE x_sd AS
WITH st(stage, ord, outcome, norm) AS (VALUES ('lead', 1, 'open', 30), ('qualified', 2, 'open', 30), ('proposal', 3, 'open', 45),
                                              ('invoice', 4, 'open', 60), ('paid', 5, 'won', NULL), ('lost', 6, 'lost', NULL)),
e AS (SELECT e.deal_id, e.changed_at, st.* FROM crm_demo.deal_events e JOIN st USING (stage) WHERE e.changed_at < '2026-01-01'),
d AS (SELECT deal_id, max(changed_at) AS last_at, max(ord) FILTER (WHERE outcome = 'open') AS open_ord,
             bool_or(outcome <> 'open') AS closed FROM e GROUP BY deal_id)
SELECT d.deal_id::text AS entity_id, dd.manager_id::text AS manager_id, d.last_at + st.norm * interval '1 day' AS since, dd.amount AS value
  FROM d JOIN st ON st.ord = d.open_ord JOIN crm_demo.deals dd ON dd.deal_id = d.deal_id
 WHERE NOT d.closed AND d.last_at < timestamptz '2026-01-01' - st.norm * interval '1 day';
SELECT set_eq($$SELECT entity_id, manager_id, since, value FROM td WHERE kind = 'stale_deal'$$,
              $$SELECT entity_id, manager_id, since, value FROM x_sd$$,
              'demo stale_deal: the rows of plain SQL (deal, manager, since = last change + norm, amount)');

-- overdue_invoice: issued before as_of, unpaid at as_of, due before as_of
SELECT set_eq($$SELECT entity_id, manager_id, since, value FROM td WHERE kind = 'overdue_invoice'$$,
              $$SELECT i.invoice_id::text, c.manager_id::text, i.due_at, i.amount FROM crm_demo.invoices i
                  LEFT JOIN crm_demo.customers c ON c.customer_id = i.customer_id
                 WHERE i.issued_at < '2026-01-01' AND (i.paid_at IS NULL OR i.paid_at >= '2026-01-01') AND i.due_at < '2026-01-01'$$,
              'demo overdue_invoice: the rows of plain SQL');

-- overdue_contact: ABC of the 12 months' revenue (a customer is A while the revenue of the customers
-- with strictly more is < 80 % of the total, B < 95 %), next due = last real contact (else customer
-- since) + A 1 month / B 3 months / C 6 months, before as_of
CREATE TEMP TABLE x_oc AS
WITH r AS (SELECT customer_id, sum(amount) AS rev FROM crm_demo.orders
            WHERE ordered_at >= timestamptz '2026-01-01' - interval '12 months' AND ordered_at < '2026-01-01' GROUP BY 1),
tot AS (SELECT sum(rev) AS t FROM r),
cl AS (SELECT c.customer_id, c.manager_id, c.created_at, coalesce(r.rev, 0) AS rev,
              CASE WHEN r.rev IS NULL OR r.rev <= 0 THEN 'C'
                   WHEN (SELECT coalesce(sum(r2.rev), 0) FROM r r2 WHERE r2.rev > r.rev) < 0.80 * tot.t THEN 'A'
                   WHEN (SELECT coalesce(sum(r2.rev), 0) FROM r r2 WHERE r2.rev > r.rev) < 0.95 * tot.t THEN 'B' ELSE 'C' END AS cls
         FROM crm_demo.customers c CROSS JOIN tot LEFT JOIN r ON r.customer_id = c.customer_id
        WHERE c.created_at < '2026-01-01'),
lc AS (SELECT customer_id, max(occurred_at) AS last_at FROM crm_demo.interactions
        WHERE NOT automated AND occurred_at < '2026-01-01' AND customer_id IS NOT NULL GROUP BY 1)
SELECT cl.customer_id::text AS entity_id, cl.manager_id::text AS manager_id, cl.cls,
       coalesce(lc.last_at, cl.created_at) + CASE cl.cls WHEN 'A' THEN interval '1 month' WHEN 'B' THEN interval '3 months' ELSE interval '6 months' END AS since,
       cl.rev AS value
  FROM cl LEFT JOIN lc ON lc.customer_id = cl.customer_id;
DELETE FROM x_oc WHERE since >= '2026-01-01';
SELECT set_eq($$SELECT entity_id, manager_id, since, value FROM td WHERE kind = 'overdue_contact'$$,
              $$SELECT entity_id, manager_id, since, value FROM x_oc$$,
              'demo overdue_contact: the rows of plain SQL (customer, manager, next due, 12-month revenue)');

-- reactivation: exactly one order before as_of, older than 90 days, no real contact at or after it
SELECT set_eq($$SELECT entity_id, manager_id, since, value FROM td WHERE kind = 'reactivation'$$,
              $$SELECT o.customer_id::text, c.manager_id::text, o.ordered_at + interval '90 days', o.amount
                  FROM crm_demo.orders o LEFT JOIN crm_demo.customers c ON c.customer_id = o.customer_id
                 WHERE o.ordered_at < '2026-01-01' AND o.ordered_at + interval '90 days' < '2026-01-01'
                   AND (SELECT count(*) FROM crm_demo.orders o2 WHERE o2.customer_id = o.customer_id AND o2.ordered_at < '2026-01-01') = 1
                   AND NOT EXISTS (SELECT 1 FROM crm_demo.interactions i WHERE i.customer_id = o.customer_id AND NOT i.automated
                                      AND i.occurred_at >= o.ordered_at AND i.occurred_at < '2026-01-01')$$,
              'demo reactivation: the rows of plain SQL');
SELECT ok((SELECT count(DISTINCT kind) = 5 AND bool_and(n > 0) FROM (SELECT kind, count(*) AS n FROM td GROUP BY kind) k),
          'demo: every kind has rows');
SELECT is((SELECT count(*) FROM td), (SELECT count(*) FROM (SELECT DISTINCT kind, entity_id FROM td) u),
          'one row per (kind, entity_id)');

-- the same questions as crm.owner_dashboard (Q4 2025 ends at 2026-01-01; no demo lead was created
-- within the SLA before it, so the unanswered leads of Q4 are the same)
CREATE TEMP TABLE od AS SELECT metric, value FROM crm.owner_dashboard('2025-10-01', '2025-12-31');
SELECT is((SELECT count(*) FROM td JOIN crm_demo.leads l ON l.lead_id::text = td.entity_id
            WHERE td.kind = 'unanswered_lead' AND l.created_at >= '2025-10-01')::numeric,
          (SELECT value FROM od WHERE metric = 'unanswered_leads'), 'unanswered leads of Q4 = owner_dashboard unanswered_leads');
SELECT ok((SELECT abs(sum(td.value) - (SELECT value FROM od WHERE metric = 'unanswered_leads_cost')) <= 0.005 * count(*)
             FROM td JOIN crm_demo.leads l ON l.lead_id::text = td.entity_id
            WHERE td.kind = 'unanswered_lead' AND l.created_at >= '2025-10-01'),
          'their values add up to unanswered_leads_cost (each rounded to the cent)');
SELECT is((SELECT count(*) FROM td WHERE kind = 'stale_deal')::numeric, (SELECT value FROM od WHERE metric = 'stale_deals'),
          'stale_deal rows = owner_dashboard stale_deals');
SELECT is((SELECT sum(value) FROM td WHERE kind = 'stale_deal'), (SELECT value FROM od WHERE metric = 'stale_pipeline_value'),
          'their values add up to stale_pipeline_value');
SELECT is((SELECT count(*) FROM td WHERE kind = 'overdue_invoice')::numeric, (SELECT value FROM od WHERE metric = 'overdue_invoices'),
          'overdue_invoice rows = owner_dashboard overdue_invoices');
SELECT is((SELECT sum(value) FROM td WHERE kind = 'overdue_invoice'), (SELECT value FROM od WHERE metric = 'overdue_invoice_amount'),
          'their values add up to overdue_invoice_amount');
SELECT is((SELECT count(*) FROM td JOIN x_oc USING (entity_id) WHERE td.kind = 'overdue_contact' AND x_oc.cls = 'A')::numeric,
          (SELECT value FROM od WHERE metric = 'overdue_class_a_customers'), 'class A overdue_contact rows = overdue_class_a_customers');
SELECT is((SELECT count(*) FROM td WHERE kind = 'overdue_contact' AND note LIKE 'class A,%'),
          (SELECT count(*) FROM td JOIN x_oc USING (entity_id) WHERE td.kind = 'overdue_contact' AND x_oc.cls = 'A'),
          'the note names the class');

-- ordering: value descending, then since
SELECT is((SELECT count(*) FROM (SELECT value, since, lag(value) OVER w AS pv, lag(since) OVER w AS ps
                                   FROM (SELECT *, row_number() OVER () AS rn FROM crm.todo('2026-01-01')) t WINDOW w AS (ORDER BY rn)) s
            WHERE pv < value OR (pv = value AND ps > since)), 0::bigint, 'rows come ordered by value desc, then since');

-- crm.v_todo: crm.todo(now()) with a rank per manager (now() is the transaction's start: the same in both)
SELECT set_eq($$SELECT manager_id, kind, entity_id, since, value, note FROM crm.v_todo$$,
              $$SELECT * FROM crm.todo()$$, 'v_todo = crm.todo(now())');
SELECT results_eq($$SELECT kind, entity_id, rank FROM crm.v_todo WHERE manager_id = '3' ORDER BY rank LIMIT 20$$,
                  $$SELECT kind, entity_id, row_number() OVER (ORDER BY value DESC, since, kind, entity_id)
                      FROM crm.todo() WHERE manager_id = '3' ORDER BY value DESC, since, kind, entity_id LIMIT 20$$,
                  'v_todo: one manager''s page, rank 1 = most money');
SELECT is((SELECT count(*) FROM (SELECT manager_id, max(rank) AS mx, count(*) AS n, count(DISTINCT rank) AS nd FROM crm.v_todo GROUP BY 1) m
            WHERE mx <> n OR nd <> n), 0::bigint, 'v_todo: ranks run 1..n within every manager');

-- ===================================================================== hand-worked fixture
-- as_of = 2026-03-01 12:00 UTC; SLA 1 hour; reactivation after 30 days (set below)
CREATE SCHEMA tfx;
CREATE TABLE tfx.leads(lead_id bigint, created_at timestamptz, channel text, manager_id int, customer_id bigint);
INSERT INTO tfx.leads VALUES
 (1, '2026-03-01 11:00', 'ads', 1, NULL),      -- exactly the SLA before as_of: not yet
 (2, '2026-03-01 10:59:59', 'ads', 1, NULL),   -- one second more: listed, since 11:59:59
 (3, '2026-02-10 09:00', 'ads', 2, NULL),      -- answered by a call at 09:30
 (4, '2026-02-11 09:00', 'ads', 2, NULL),      -- only an automated mailing and its own inbound call: listed
 (5, '2026-02-12 09:00', 'seo', 1, NULL),      -- called only after as_of: listed
 (7, '2026-03-01 13:00', 'ads', 1, NULL);      -- created after as_of
CREATE TABLE tfx.customers(customer_id bigint, created_at timestamptz, channel text, manager_id int);
INSERT INTO tfx.customers VALUES (1, '2025-01-01', 'ads', 1), (2, '2025-01-01', 'ads', 2), (3, '2025-01-01', 'seo', 1),
 (4, '2025-06-01', 'seo', 2), (5, '2024-01-01', 'seo', 1), (6, '2025-05-01', 'ads', 2);
CREATE TABLE tfx.orders(order_id bigint, customer_id bigint, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
INSERT INTO tfx.orders VALUES
 (1, 1, '2025-06-01', 6000, 0, 1), (2, 1, '2025-12-01', 3000, 0, 1),
 (3, 2, '2025-11-01', 500, 0, 1), (4, 2, '2026-01-15', 500, 0, 1),
 (5, 3, '2026-01-30 12:00', 600, 0, 1),        -- one order exactly 30 days before as_of: not yet
 (6, 4, '2025-12-01', 100, 0, 1),              -- one order, only an automated mailing since: reactivation
 (7, 5, '2024-06-01', 300, 0, 1),              -- one order, contacted after it
 (8, 6, '2025-05-10', 50, 0, 1),               -- one order, contacted after it
 (9, 6, '2026-03-02', 70, 0, 1);               -- after as_of: 6 still has one order
CREATE TABLE tfx.spend(channel text, month date, amount numeric);
INSERT INTO tfx.spend VALUES ('ads', '2026-02-01', 300), ('ads', '2026-03-01', 100), ('seo', '2026-01-01', 500);
CREATE TABLE tfx.interactions(interaction_id bigint, customer_id bigint, lead_id bigint, manager_id int, occurred_at timestamptz,
                              kind text, direction text, automated boolean);
INSERT INTO tfx.interactions VALUES
 (1, NULL, 3, 2, '2026-02-10 09:30', 'call', 'outbound', false),
 (2, NULL, 4, 2, '2026-02-11 09:10', 'mailing', 'outbound', true),
 (3, NULL, 4, 2, '2026-02-11 09:20', 'call', 'inbound', false),
 (4, NULL, 5, 1, '2026-03-02 09:00', 'call', 'outbound', false),
 (5, 1, NULL, 1, '2026-01-20 10:00', 'call', 'outbound', false),
 (6, 2, NULL, 2, '2025-12-01 12:00', 'meeting', 'outbound', false),
 (7, 4, NULL, 2, '2025-11-01', 'call', 'outbound', false),
 (8, 4, NULL, 2, '2026-01-05', 'mailing', 'outbound', true),
 (9, 5, NULL, 1, '2024-07-01', 'call', 'outbound', false),
 (10, 6, NULL, 2, '2026-02-20', 'email', 'outbound', false);
CREATE TABLE tfx.invoices(invoice_id bigint, customer_id bigint, issued_at timestamptz, due_at timestamptz, amount numeric, paid_at timestamptz);
INSERT INTO tfx.invoices VALUES
 (1, 1, '2026-02-01', '2026-02-15', 400, NULL),
 (2, 2, '2026-02-01', '2026-03-01 12:00', 800, NULL),   -- due exactly at as_of: not yet
 (3, 1, '2026-01-01', '2026-01-15', 250, '2026-03-02'), -- paid only after as_of
 (4, 2, '2026-01-01', '2026-01-15', 900, '2026-02-01'), -- paid
 (5, NULL, '2026-02-01', '2026-02-10', 90, NULL),       -- no customer: no manager
 (6, 2, '2026-03-02', '2026-02-20', 700, NULL);         -- issued after as_of
CREATE TABLE tfx.deal_events(deal_id bigint, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO tfx.deal_events VALUES
 (1, '2026-02-01', 'lead', 1000, 1, 'ads'), (1, '2026-02-09 12:00', 'proposal', 1000, 1, 'ads'),  -- idle exactly 20 days
 (2, '2026-01-20', 'lead', 2000, 2, 'ads'), (2, '2026-02-09 11:00', 'proposal', 2000, 2, 'ads'),  -- an hour more: stale
 (3, '2026-01-01', 'lead', 5000, 1, 'seo'), (3, '2026-01-02', 'hold', 5000, 1, 'seo'),          -- hold has no norm
 (4, '2026-01-05', 'lead', 3000, 1, 'seo'), (4, '2026-01-06', 'lost', 3000, 1, 'seo'),          -- closed
 (5, '2026-02-15', 'lead', 300, 1, 'ads'),                                                      -- 14.5 days at lead
 (6, '2026-01-10', 'lead', 700, 2, 'seo'), (6, '2026-03-05', 'paid', 700, 2, 'seo');            -- won only after as_of
DELETE FROM crm.pipeline_stages;
INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome, max_days) VALUES
 ('lead', 1, 0.1, 'open', 10), ('proposal', 2, 0.5, 'open', 20), ('hold', 3, 0.5, 'open', NULL),
 ('paid', 4, 1, 'won', NULL), ('lost', 5, 0, 'lost', NULL);
UPDATE crm.dashboard_settings SET lead_sla = '1 hour', reactivation_after = '30 days';
DO $$
BEGIN
    PERFORM crm.register_source('leads', 'SELECT * FROM tfx.leads');
    PERFORM crm.register_source('customers', 'SELECT * FROM tfx.customers');
    PERFORM crm.register_source('orders', 'SELECT * FROM tfx.orders');
    PERFORM crm.register_source('spend', 'SELECT * FROM tfx.spend');
    PERFORM crm.register_source('interactions', 'SELECT * FROM tfx.interactions');
    PERFORM crm.register_source('invoices', 'SELECT * FROM tfx.invoices');
    PERFORM crm.register_source('stage_events', 'SELECT * FROM tfx.deal_events');
END
$$;

-- Worked out by hand:
--  leads: 2 (ads, March: 100 spent / 3 March ads leads 1, 2, 7 = 33.33), 4 (ads, February: 300 / 2 leads 3, 4 = 150),
--         5 (seo, February: no seo spend that month = 0)
--  deals: 2 proposal idle 20 days 1 hour > 20 (since Feb 9 11:00 + 20 days = Mar 1 11:00), 5 lead 14.5 days > 10
--         (since Feb 25), 6 lead 50.5 days (since Jan 20; its won event is after as_of); 1 is idle exactly 20 days
--  invoices: 1 (due Feb 15, 14 days), 3 (paid after as_of, due Jan 15, 45 days), 5 (no customer, due Feb 10, 19 days)
--  classes (revenue Mar 1 2025 .. as_of): 1 = 9000, 2 = 1000, 3 = 600, 4 = 100, 6 = 50, 5 = 0; total 10750:
--         1 is A (0 above it); 2 is B (9000 above >= 8600, < 10212.5), 3 B (10000 above); 4 (10600), 6, 5 are C
--    next due: 1 Jan 20 10:00 + 1 month = Feb 20 10:00 (overdue); 2 Dec 1 12:00 + 3 months = Mar 1 12:00 = as_of (not);
--      3 never contacted, customer since Jan 1 2025 + 3 months = Apr 1 2025 (overdue); 4 Nov 1 + 6 months (not);
--      5 Jul 1 2024 + 6 months = Jan 1 2025 (overdue, revenue 0); 6 Feb 20 + 6 months (not)
--  reactivation (30 days): 4 (one order Dec 1, only a mailing since; since Dec 31); 3 exactly 30 days (not);
--      5 and 6 contacted after their order; 1 and 2 have two orders
SELECT results_eq(
  $$SELECT manager_id, kind, entity_id, since, value, note FROM crm.todo('2026-03-01 12:00')$$,
  $$VALUES ('1', 'overdue_contact', '1', '2026-02-20 10:00'::timestamptz, 9000::numeric, 'class A, last real contact 2026-01-20, next contact was due 2026-02-20'),
           ('2', 'stale_deal', '2', '2026-03-01 11:00', 2000, 'stage proposal idle 20 days (norm 20)'),
           ('2', 'stale_deal', '6', '2026-01-20', 700, 'stage lead idle 50 days (norm 10)'),
           ('1', 'overdue_contact', '3', '2025-04-01', 600, 'class B, last real contact never, next contact was due 2025-04-01'),
           ('1', 'overdue_invoice', '1', '2026-02-15', 400, 'invoice issued 2026-02-01, due 2026-02-15, 14 days overdue'),
           ('1', 'stale_deal', '5', '2026-02-25', 300, 'stage lead idle 14 days (norm 10)'),
           ('1', 'overdue_invoice', '3', '2026-01-15', 250, 'invoice issued 2026-01-01, due 2026-01-15, 45 days overdue'),
           ('2', 'unanswered_lead', '4', '2026-02-11 10:00', 150.00, 'lead from ads created 2026-02-11 09:00, no first response (SLA 01:00:00)'),
           ('2', 'reactivation', '4', '2025-12-31', 100, 'one order on 2025-12-01, no real contact since'),
           (NULL, 'overdue_invoice', '5', '2026-02-10', 90, 'invoice issued 2026-02-01, due 2026-02-10, 19 days overdue'),
           ('1', 'unanswered_lead', '2', '2026-03-01 11:59:59', 33.33, 'lead from ads created 2026-03-01 10:59, no first response (SLA 01:00:00)'),
           ('1', 'overdue_contact', '5', '2025-01-01', 0, 'class C, last real contact 2024-07-01, next contact was due 2025-01-01'),
           ('1', 'unanswered_lead', '5', '2026-02-12 10:00', 0.00, 'lead from seo created 2026-02-12 09:00, no first response (SLA 01:00:00)')$$,
  'fixture: every row, worked out by hand, in order');

-- one more second: the boundary items come on the list
SELECT set_eq($$SELECT kind, entity_id FROM crm.todo('2026-03-01 12:00:01')
                EXCEPT SELECT kind, entity_id FROM crm.todo('2026-03-01 12:00')$$,
              $$VALUES ('unanswered_lead', '1'), ('stale_deal', '1'), ('overdue_invoice', '2'), ('overdue_contact', '2'), ('reactivation', '3')$$,
              'one second after as_of: the lead at the SLA, the deal at its norm, the invoice at its due date, the contact at its due time, the buyer at the period');
-- the settings drive the SLA and the reactivation period
UPDATE crm.dashboard_settings SET lead_sla = '2 hours', reactivation_after = '100 days';
SELECT set_eq($$SELECT kind, entity_id, since FROM crm.todo('2026-03-01 12:00') WHERE kind IN ('unanswered_lead', 'reactivation')$$,
              $$VALUES ('unanswered_lead', '4', '2026-02-11 11:00'::timestamptz), ('unanswered_lead', '5', '2026-02-12 11:00')$$,
              'lead_sla 2 hours drops lead 2; reactivation_after 100 days drops customer 4');
UPDATE crm.dashboard_settings SET lead_sla = '1 hour', reactivation_after = '30 days';
SELECT throws_ok($$UPDATE crm.dashboard_settings SET reactivation_after = '0 days'$$, '23514', NULL,
                 'reactivation_after must be positive');

-- crm.notify_todo: announces new items once, forgets the ones that left the list
SELECT is(crm.notify_todo('2026-03-01 12:00'), 13, 'notify_todo announces all 13 items the first time');
SELECT is((SELECT count(*) FROM crm.todo_announced), 13::bigint, '... and records them');
SELECT is(crm.notify_todo('2026-03-01 12:00'), 0, 'a second run announces nothing');
UPDATE tfx.invoices SET paid_at = '2026-02-20' WHERE invoice_id = 1;
SELECT is(crm.notify_todo('2026-03-01 12:00'), 0, 'an item leaving the list is not announced ...');
SELECT ok(NOT EXISTS (SELECT 1 FROM crm.todo_announced WHERE kind = 'overdue_invoice' AND entity_id = '1'), '... and is forgotten');
UPDATE tfx.invoices SET paid_at = NULL WHERE invoice_id = 1;
SELECT is(crm.notify_todo('2026-03-01 12:00'), 1, 'when it comes back it is announced again');
SELECT is(crm.notify_todo('2026-03-01 12:00:01'), 5, 'a later moment announces the 5 boundary items');
-- an item without an id (NULL invoice_id in the source) is listed but not announced, and does not
-- make notify_todo fail (crm.todo_announced.entity_id is NOT NULL)
INSERT INTO tfx.invoices VALUES (NULL, NULL, '2026-01-01', '2026-01-15', 5, NULL);
SELECT is((SELECT count(*) FROM crm.todo('2026-03-01 12:00:01') WHERE entity_id IS NULL), 1::bigint,
          'an overdue invoice without an id is on the list');
SELECT lives_ok($$SELECT crm.notify_todo('2026-03-01 12:00:01')$$, 'notify_todo does not fail on an item without an id');
SELECT is(crm.notify_todo('2026-03-01 12:00:01'), 0, '... and does not announce it');
DELETE FROM tfx.invoices WHERE invoice_id IS NULL;
SELECT ok((SELECT 'crm.todo_announced'::regclass::oid = ANY (extconfig) FROM pg_extension WHERE extname = 'crm_analytics'),
          'crm.todo_announced is dumped by pg_dump');
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'crm.status_history'::regclass AND tgname = 'crm_status_notify'
                    AND tgfoid = 'crm._status_notify()'::regprocedure),
          'crm.status_history has the crm_status notification trigger');

-- ===================================================================== bad input
SELECT throws_ok($$SELECT * FROM crm.todo(NULL)$$, '22004', 'as_of must not be null', 'NULL as_of');
SELECT throws_ok($$SELECT * FROM crm.todo('infinity')$$, '22008', 'as_of must be finite, got infinity', 'infinite as_of');
SELECT throws_ok($$SELECT crm.notify_todo(NULL)$$, '22004', 'as_of must not be null', 'notify_todo: NULL as_of');
INSERT INTO tfx.deal_events VALUES (9, '2026-02-01', 'negotiation', 10, 1, 'ads');
SELECT throws_ok($$SELECT * FROM crm.todo('2026-03-01 12:00')$$, '22023',
                 'source "stage_events" uses stages missing from crm.pipeline_stages: negotiation', 'a stage crm.pipeline_stages does not list');
DELETE FROM tfx.deal_events WHERE deal_id = 9;
SELECT ok(crm.unregister_source('invoices'), 'unregister the invoices source');
SELECT throws_ok($$SELECT * FROM crm.todo('2026-03-01 12:00')$$, '55000', 'source "invoices" is not registered', 'a source not registered');
DELETE FROM crm.pipeline_stages WHERE outcome = 'won';
SELECT throws_ok($$SELECT * FROM crm.todo('2026-03-01 12:00')$$, '55000', 'crm.pipeline_stages has no won stage', 'stages not configured');

SELECT * FROM finish();
ROLLBACK;
