-- test/rollups_fixture.sql: the daily rollups on a tiny hand-made CRM whose every figure was
-- worked out by hand (see the comments), then changed and refreshed incrementally.
BEGIN;
SELECT plan(16);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;
-- the reports' full computation is the reference here (test/rollups_fast.sql tests the fast paths)
SET LOCAL crm_analytics.rollups = off;

CREATE SCHEMA rfx;
CREATE TABLE rfx.leads (lead_id bigint, created_at timestamptz, channel text, manager_id int, customer_id bigint);
INSERT INTO rfx.leads VALUES (1, '2025-12-01 10:00', 'ads', 1, 101), (2, '2025-12-01 15:00', 'seo', 2, NULL), (3, '2025-12-02 09:00', 'ads', 2, NULL);
CREATE TABLE rfx.customers (customer_id bigint, created_at timestamptz, channel text, manager_id int);
INSERT INTO rfx.customers VALUES (101, '2025-12-01', 'ads', 1), (102, '2025-11-20', 'seo', 2);
CREATE TABLE rfx.orders (order_id bigint, customer_id bigint, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
INSERT INTO rfx.orders VALUES (1, 101, '2025-12-01 12:00', 100, 60, 1), (2, 101, '2025-12-02 12:00', 50, 20, 1),
                              (3, 102, '2025-11-20 10:00', 200, 150, 1), (4, 102, '2025-12-02 08:00', 30, 10, 1);
CREATE TABLE rfx.spend (channel text, month date, amount numeric);
INSERT INTO rfx.spend VALUES ('ads', '2025-12-01', 500), ('seo', '2025-12-01', 100);
CREATE TABLE rfx.interactions (interaction_id bigint, customer_id bigint, lead_id bigint, manager_id int, occurred_at timestamptz,
                               kind text, direction text, automated boolean);
INSERT INTO rfx.interactions VALUES (1, 101, NULL, 1, '2025-12-01 11:00', 'call', 'outbound', false),
                                    (2, 101, NULL, 1, '2025-12-02 09:00', 'mailing', 'outbound', true);
CREATE TABLE rfx.invoices (invoice_id bigint, customer_id bigint, issued_at timestamptz, due_at timestamptz, amount numeric, paid_at timestamptz);
INSERT INTO rfx.invoices VALUES (1, 101, '2025-11-30', '2025-12-14', 100, '2025-12-01 12:00'), (2, 102, '2025-12-02', '2025-12-16', 80, NULL);
CREATE TABLE rfx.deal_events (deal_id bigint, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO rfx.deal_events VALUES
 -- deal 1 won on 12-01 12:00, created 11-28 00:00: cycle 3.5 days
 (1, '2025-11-28', 'lead', 100, 1, 'ads'), (1, '2025-11-29', 'qualified', 100, 1, 'ads'), (1, '2025-12-01 12:00', 'paid', 100, 1, 'ads'),
 -- deal 2 lost on 12-02 after reaching proposal
 (2, '2025-11-30', 'lead', 70, 2, 'seo'), (2, '2025-12-01', 'proposal', 70, 2, 'seo'), (2, '2025-12-02', 'lost', 70, 2, 'seo'),
 -- deal 3 lost on 12-02 from lead; reopened at proposal on 12-03 (after the close: not its lost stage)
 (3, '2025-12-01', 'lead', 40, 1, 'ads'), (3, '2025-12-02 10:00', 'lost', 40, 1, 'ads'), (3, '2025-12-03', 'proposal', 40, 1, 'ads'),
 -- deal 4 open
 (4, '2025-12-01', 'lead', 500, 1, 'ads');
SELECT crm.register_source('leads', 'SELECT lead_id, created_at, channel, manager_id, customer_id FROM rfx.leads');
SELECT crm.register_source('customers', 'SELECT customer_id, created_at, channel, manager_id FROM rfx.customers');
SELECT crm.register_source('orders', 'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM rfx.orders');
SELECT crm.register_source('spend', 'SELECT channel, month, amount FROM rfx.spend');
SELECT crm.register_source('interactions', 'SELECT interaction_id, customer_id, lead_id, manager_id, occurred_at, kind, direction, automated FROM rfx.interactions');
SELECT crm.register_source('invoices', 'SELECT invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM rfx.invoices');
SELECT crm.register_source('stage_events', 'SELECT deal_id, changed_at, stage, amount, manager_id, channel FROM rfx.deal_events');

-- 1: the sources changed: a full rebuild, capture on the fixture tables
SELECT is((SELECT count(*) FROM crm.refresh_rollups()), 6::bigint, 'new sources: all six parts rebuilt');
SELECT is(ARRAY(SELECT DISTINCT relid::regclass::text FROM crm.rollup_capture ORDER BY 1),
          ARRAY['rfx.customers', 'rfx.deal_events', 'rfx.interactions', 'rfx.invoices', 'rfx.leads', 'rfx.orders', 'rfx.spend'],
          'capture moved to the fixture tables');

-- 3: the period 12-01..12-02, dimension all, worked out by hand:
-- leads 1, 2 (12-01) and 3 (12-02) = 3; orders 1 (12-01, 100/60), 2 and 4 (12-02, 50/20, 30/10):
-- 3 orders, revenue 180, gross profit 40 + 30 + 20 = 90; new buyer 101 (first order 12-01; 102's was 11-20);
-- spend 600; one real contact (the 12-02 mailing is automated); invoice 2 issued 12-02 (80), invoice 1
-- paid 12-01 (100); deal 1 won 12-01 (100, 3.5 days); deals 2 and 3 lost 12-02 (70 + 40 = 110).
SELECT results_eq(
    $$SELECT metric, value FROM crm.daily_metrics('2025-12-01', '2025-12-02') WHERE dimension = 'all' ORDER BY 1$$,
    $$VALUES ('deals_lost', 2::numeric), ('deals_won', 1), ('gross_profit', 90), ('invoices_issued', 1), ('invoices_issued_amount', 80),
             ('invoices_paid', 1), ('invoices_paid_amount', 100), ('leads_in', 3), ('lost_deal_value', 110), ('marketing_spend', 600),
             ('new_buyers', 1), ('orders', 3), ('real_contacts', 1), ('revenue', 180), ('won_cycle_days', 3.5), ('won_value', 100)$$,
    'hand-worked totals of 12-01..12-02');
-- 4: lost value by stage: deal 2 at proposal (70), deal 3 at lead (40: its reopening on 12-03 came after the loss)
SELECT results_eq(
    $$SELECT key, value FROM crm.daily_metrics('2025-12-01', '2025-12-31') WHERE metric = 'lost_deal_value' AND dimension = 'stage' ORDER BY 1$$,
    $$VALUES ('lead', 40::numeric), ('proposal', 70)$$, 'lost value by the most advanced open stage before the loss');
-- 5: revenue per channel of the customer: ads (101) 100 + 50, seo (102) 30
SELECT results_eq(
    $$SELECT key, value FROM crm.daily_metrics('2025-12-01', '2025-12-02') WHERE metric = 'revenue' AND dimension = 'channel' ORDER BY 1$$,
    $$VALUES ('ads', 150::numeric), ('seo', 30)$$, 'revenue per channel');
-- 6: leads per manager per day
SELECT results_eq(
    $$SELECT day, key, value FROM crm.v_daily WHERE metric = 'leads_in' AND dimension = 'manager' ORDER BY 1, 2$$,
    $$VALUES ('2025-12-01'::date, '1', 1::numeric), ('2025-12-01', '2', 1), ('2025-12-02', '2', 1)$$, 'leads per manager and day');
-- 7: November: 102's first order
SELECT results_eq(
    $$SELECT day, metric, value FROM crm.v_daily WHERE day < '2025-12-01' AND dimension = 'all' ORDER BY 1, 2$$,
    $$VALUES ('2025-11-20'::date, 'gross_profit', 50::numeric), ('2025-11-20', 'new_buyers', 1), ('2025-11-20', 'orders', 1),
             ('2025-11-20', 'revenue', 200), ('2025-11-30', 'invoices_issued', 1), ('2025-11-30', 'invoices_issued_amount', 100)$$,
    'November by hand');
-- 8: the owner dashboard agrees on the period
SELECT results_eq(
    $$SELECT metric, value FROM crm.owner_dashboard('2025-12-01', '2025-12-02')
       WHERE metric IN ('leads_in', 'new_buyers', 'orders', 'revenue', 'gross_profit', 'marketing_spend', 'deals_won', 'deals_lost',
                        'lost_deal_value', 'average_won_deal', 'sales_cycle', 'lost_value_at_lead', 'lost_value_at_proposal') ORDER BY 1$$,
    $$VALUES ('average_won_deal', 100.00::numeric), ('deals_lost', 2), ('deals_won', 1), ('gross_profit', 90), ('leads_in', 3),
             ('lost_deal_value', 110), ('lost_value_at_lead', 40), ('lost_value_at_proposal', 70), ('marketing_spend', 600),
             ('new_buyers', 1), ('orders', 3), ('revenue', 180), ('sales_cycle', 3.50)$$,
    'owner_dashboard gives the same hand-worked figures');

-- 9-11: customer 101's first order deleted: 101 becomes a new buyer on 12-02 (its second order); 12-01 has no order left
DELETE FROM rfx.orders WHERE order_id = 1;
SELECT is(ARRAY(SELECT part || ' ' || from_day FROM crm.refresh_rollups()), ARRAY['orders 2025-12-01'], 'the first order deleted: orders from 12-01');
SELECT results_eq(
    $$SELECT day, metric, value FROM crm.v_daily WHERE day >= '2025-12-01' AND dimension = 'all' AND metric IN ('orders', 'new_buyers', 'revenue') ORDER BY 1, 2$$,
    $$VALUES ('2025-12-02'::date, 'new_buyers', 1::numeric), ('2025-12-02', 'orders', 2), ('2025-12-02', 'revenue', 80)$$,
    'new buyer moved to 12-02, 12-01 empty');
SELECT is((SELECT first_at FROM crm.rollup_customers WHERE customer_id = '101'), '2025-12-02 12:00'::timestamptz, 'the per-customer state follows');
-- 12-13: deal 4 won on 12-05 (500, created 12-01: cycle 4 days); deal 1 moved back (its paid event removed)
INSERT INTO rfx.deal_events VALUES (4, '2025-12-05', 'paid', 500, 1, 'ads');
DELETE FROM rfx.deal_events WHERE deal_id = 1 AND stage = 'paid';
SELECT is(ARRAY(SELECT part || ' ' || from_day FROM crm.refresh_rollups()), ARRAY['deals 2025-12-01'], 'deal changes: deals from 12-01');
SELECT results_eq(
    $$SELECT day, metric, value FROM crm.v_daily WHERE dimension = 'all' AND metric IN ('deals_won', 'won_value', 'won_cycle_days') ORDER BY 1, 2$$,
    $$VALUES ('2025-12-05'::date, 'deals_won', 1::numeric), ('2025-12-05', 'won_cycle_days', 4), ('2025-12-05', 'won_value', 500)$$,
    'deal 1 no longer won, deal 4 won on 12-05');
-- 14-15: invoice 2 paid later (12-10): the invoices part from its issue day 12-02
UPDATE rfx.invoices SET paid_at = '2025-12-10 09:00' WHERE invoice_id = 2;
SELECT is(ARRAY(SELECT part || ' ' || from_day FROM crm.refresh_rollups()), ARRAY['invoices 2025-12-02'], 'invoice paid later: invoices from its issue day');
SELECT results_eq(
    $$SELECT day, metric, value FROM crm.v_daily WHERE metric LIKE 'invoices_paid%' ORDER BY 1, 2$$,
    $$VALUES ('2025-12-01'::date, 'invoices_paid', 1::numeric), ('2025-12-01', 'invoices_paid_amount', 100),
             ('2025-12-10', 'invoices_paid', 1), ('2025-12-10', 'invoices_paid_amount', 80)$$,
    'the payment lands on its day');
-- 16: TRUNCATE of spend: the next refresh is a full one, spend gone
TRUNCATE rfx.spend;
SELECT is((SELECT count(*) FROM crm.refresh_rollups() WHERE from_day IS NULL), 6::bigint, 'TRUNCATE: full rebuild, spend gone');

SELECT * FROM finish();
ROLLBACK;
