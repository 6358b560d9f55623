-- coverage: hand-worked cases for crm.median_interval, the coverage trigger and views, the lead SLA,
-- and every bad input with its exact error.  Expected values are worked out in the comments.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET client_min_messages = warning;
\set SHOW_CONTEXT never

-- median_interval: purchases on days 0, 10, 10 (same purchase twice), 30, 60 -> gaps 10, 20, 30 -> 20 days
SELECT crm.median_interval(ts) FROM (VALUES ('2025-01-01'::timestamptz), ('2025-01-11'), ('2025-01-11'), ('2025-01-31'), ('2025-03-02'), (NULL)) v(ts);
-- days 0, 1, 3 -> gaps 1, 2 -> mean of the middle two = 1.5 days; one purchase -> NULL; none -> NULL
SELECT crm.median_interval(ts) FROM (VALUES ('2025-01-01'::timestamptz), ('2025-01-02'), ('2025-01-04')) v(ts);
SELECT crm.median_interval(ts) FROM (VALUES ('2025-01-01'::timestamptz), ('2025-01-01')) v(ts);
SELECT crm.median_interval(ts) FROM (VALUES (NULL::timestamptz)) v(ts);
-- per customer
SELECT k, crm.median_interval(ts) FROM (VALUES (1, '2025-01-01 10:00'::timestamptz), (1, '2025-01-01 10:00:01'), (2, '2025-02-01'), (2, '2025-05-01'), (2, '2025-06-01')) v(k, ts) GROUP BY k ORDER BY k;
-- the state's text form: count, then microseconds since 2000-01-01
CREATE AGGREGATE mi_state(timestamptz) (SFUNC = crm.median_interval_transfn, STYPE = crm.median_interval_state);
SELECT mi_state(ts) FROM (VALUES ('2000-01-01 00:00:00'::timestamptz), ('2000-01-02'), (NULL)) v(ts);
SELECT '2:0,86400000000'::crm.median_interval_state::text;
SELECT '0:'::crm.median_interval_state::text;
SELECT '3:1,2'::crm.median_interval_state;
SELECT '2:1,2,3'::crm.median_interval_state;
SELECT '12345678901234567:1'::crm.median_interval_state;
SELECT 'x'::crm.median_interval_state;
SELECT '1:9223372036854775807'::crm.median_interval_state;
DROP AGGREGATE mi_state(timestamptz);

-- coverage fixture: 4 customers (A, B, C, and a C customer never contacted), one unknown later
CREATE TABLE cust (id int PRIMARY KEY, cls text, mgr int, since timestamptz);
INSERT INTO cust VALUES (1, 'A', 10, '2025-01-01'), (2, 'B', 10, '2025-01-01'), (3, 'C', 20, '2025-01-01'), (4, 'C', 20, '2025-09-01');
CREATE TABLE touch (id serial PRIMARY KEY, cust_id bigint, kind text, dir text, auto boolean NOT NULL DEFAULT false, at timestamptz);
INSERT INTO touch (cust_id, kind, dir, auto, at) VALUES
  (1, 'call', 'outbound', false, '2025-12-01'),     -- A: last 12-01, next due 2026-01-01
  (1, 'mailing', 'outbound', true, '2025-12-20'),   -- automated and not a counted kind: ignored
  (2, 'meeting', 'inbound', false, '2025-10-10'),   -- B: inbound counts; next due 2026-01-10 (due soon at 12-31: window 14 days from 12-27)
  (3, 'email', 'outbound', false, '2025-05-01'),    -- C: next due 2025-11-01, 60 days overdue at 12-31
  (NULL, 'call', 'outbound', false, '2025-12-02');  -- a lead's call: no customer
SELECT crm.attach_coverage('touch', customers => 'cust', class_column => 'cls', customer_column => 'cust_id', customer_key_column => 'id',
                           time_column => 'at', direction_column => 'dir', automated_column => 'auto',
                           manager_column => 'mgr', since_column => 'since');
-- customer 4 has no contact: next due = since 09-01 + 6 months = 2026-03-01 (ok at 12-31)
SELECT customer_id, class, manager_id, last_contact, contacts, contact_interval, next_due FROM crm.coverage ORDER BY 1;
SET crm.coverage_as_of = '2025-12-31';
SELECT customer_id, status, days_overdue FROM crm.coverage_status ORDER BY 1;
-- at 12-31: 1 due soon (A window 7 days from 12-25), 2 due soon (B window 14 days from 12-27), 3 overdue 60 days, 4 ok
-- per class: A 1 covered, B 1 covered, C 2 customers 1 covered 1 overdue -> 50 %; manager 10: 2 of 2, manager 20: 1 of 2
SELECT * FROM crm.coverage_by_class ORDER BY class;
SELECT * FROM crm.coverage_by_manager ORDER BY manager_id;
SELECT * FROM crm.coverage_overdue;

-- trigger: a late older call (11-15) does not move customer 1 back; two new calls for 3 in one statement
INSERT INTO touch (cust_id, kind, dir, at) VALUES (1, 'call', 'outbound', '2025-11-15'), (3, 'call', 'outbound', '2025-12-30'), (3, 'meeting', 'outbound', '2025-12-29');
-- 1: last 12-01, contacts 2; 3: last 12-30, contacts 3, next due 2026-06-30
SELECT customer_id, last_contact, contacts, next_due FROM crm.coverage WHERE customer_id IN (1, 3) ORDER BY 1;
-- an unknown customer is added unclassified (default unknown_customers => 'insert')
INSERT INTO touch (cust_id, kind, dir, at) VALUES (77, 'call', 'outbound', '2025-12-15');
SELECT customer_id, class, last_contact, contacts, next_due FROM crm.coverage WHERE customer_id = 77;
SELECT customer_id, status FROM crm.coverage_status WHERE customer_id = 77;
-- a policy edit applies at once: C every 3 months -> customer 4 due 2025-12-01, overdue 30 days
UPDATE crm.coverage_policy SET max_interval = '3 months' WHERE class = 'C';
SELECT customer_id, next_due, status, days_overdue FROM crm.coverage_status WHERE class = 'C' ORDER BY 1;
-- an INSERT of an existing class updates it (this is what lets pg_dump restore edited defaults)
INSERT INTO crm.coverage_policy (class, max_interval, due_soon) VALUES ('C', '6 months', '30 days');
SELECT * FROM crm.coverage_policy ORDER BY class;
-- classes from a query (ABC, RFM ...): customer 4 becomes A
SELECT crm.coverage_set_classes('SELECT id, CASE WHEN id = 4 THEN ''A'' ELSE cls END FROM cust');
SELECT customer_id, class, next_due FROM crm.coverage WHERE customer_id = 4;
-- the calculated approach: class A at each customer's own purchase cycle (customer 1 buys every 10 days)
CREATE TABLE buys (cust int, at timestamptz);
INSERT INTO buys VALUES (1, '2025-11-01'), (1, '2025-11-11'), (1, '2025-11-21'), (2, '2025-11-01');
SELECT crm.coverage_set_purchase_cycles('SELECT cust, at FROM buys');
UPDATE crm.coverage_policy SET basis = 'purchase_cycle' WHERE class = 'A';
-- customer 1: 12-01 + 10 days = 12-11; customer 4 (no cycle) keeps 1 month
SELECT customer_id, purchase_cycle, contact_interval, next_due FROM crm.coverage WHERE class = 'A' ORDER BY 1;
SELECT crm.coverage_rebuild();
SELECT customer_id, class, last_contact, contacts, purchase_cycle, next_due FROM crm.coverage ORDER BY 1;

-- bad input
SELECT crm.attach_coverage('cust');
INSERT INTO crm.coverage_policy VALUES ('D', '-1 month');
INSERT INTO crm.coverage_policy VALUES ('D', '1 month', '1 month');
INSERT INTO crm.coverage_policy VALUES ('D', '1 month', '1 day', 'gut feeling');
INSERT INTO crm.coverage_policy VALUES ('', '1 month');
DELETE FROM crm.coverage_policy WHERE class = 'B';
-- a renamed class keeps its customers
UPDATE crm.coverage_policy SET class = 'Key' WHERE class = 'A';
SELECT customer_id, class FROM crm.coverage WHERE class IN ('A', 'Key') ORDER BY 1;
UPDATE crm.coverage_policy SET class = 'A' WHERE class = 'Key';
SELECT crm.coverage_set_classes('SELECT id, ''Z'' FROM cust');
SELECT crm.coverage_set_classes('SELECT id FROM cust');
SELECT crm.coverage_set_purchase_cycles('SELECT at, cust FROM buys');
CREATE TRIGGER wrong AFTER INSERT ON buys FOR EACH ROW EXECUTE FUNCTION crm.coverage_trigger();
INSERT INTO buys VALUES (1, now());
DROP TRIGGER wrong ON buys;
CREATE TRIGGER wrong AFTER INSERT ON buys REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_trigger('x');
-- the context names the trigger and its table
\set SHOW_CONTEXT errors
INSERT INTO buys VALUES (1, now());
\set SHOW_CONTEXT never
DROP TRIGGER wrong ON buys;
-- unknown customers as an error
SELECT crm.attach_coverage('touch', customers => 'cust', class_column => 'cls', customer_column => 'cust_id', customer_key_column => 'id',
                           time_column => 'at', direction_column => 'dir', automated_column => 'auto',
                           manager_column => 'mgr', since_column => 'since', unknown_customers => 'error');
DELETE FROM touch WHERE cust_id = 77;
SELECT crm.attach_coverage('touch', customers => 'cust', class_column => 'cls', customer_column => 'cust_id', customer_key_column => 'id',
                           time_column => 'at', direction_column => 'dir', automated_column => 'auto',
                           manager_column => 'mgr', since_column => 'since', unknown_customers => 'error');
INSERT INTO touch (cust_id, kind, dir, at) VALUES (88, 'call', 'outbound', '2025-12-15');
-- the same in a statement touching 9 customers (one array UPDATE, then the customers it did not find)
INSERT INTO touch (cust_id, kind, dir, at) SELECT g, 'call', 'outbound', '2025-12-31' FROM generate_series(1, 9) g;
-- ignore: the row is kept, coverage does not change
SELECT crm.attach_coverage('touch', customers => 'cust', class_column => 'cls', customer_column => 'cust_id', customer_key_column => 'id',
                           time_column => 'at', direction_column => 'dir', automated_column => 'auto',
                           manager_column => 'mgr', since_column => 'since', unknown_customers => 'ignore');
INSERT INTO touch (cust_id, kind, dir, at) VALUES (88, 'call', 'outbound', '2025-12-15');
INSERT INTO touch (cust_id, kind, dir, at) SELECT g, 'call', 'outbound', '2025-12-31' FROM generate_series(1, 9) g;
-- customers 1-4 contacted on 12-31 (contacts + 1), 5-9 and 88 ignored
SELECT customer_id, last_contact, contacts FROM crm.coverage ORDER BY 1;
SELECT crm.detach_coverage();
SELECT crm.detach_coverage();
SELECT crm.coverage_rebuild();
SELECT crm.coverage_set_classes('SELECT 1, ''A''');
SELECT crm.attach_coverage(NULL);
SELECT crm.attach_coverage('touch', time_column => 'at');
SELECT crm.attach_coverage('touch', customer_column => 'cust_id', time_column => 'nope');
SELECT crm.attach_coverage('touch', customer_column => 'kind', time_column => 'at');
SELECT crm.attach_coverage('touch', customer_column => 'cust_id', time_column => 'kind');
SELECT crm.attach_coverage('touch', customer_column => 'cust_id', time_column => 'at', direction_column => 'dir', automated_column => 'auto', unknown_customers => 'skip');
SELECT crm.attach_coverage('touch', customer_column => 'cust_id', time_column => 'at', direction_column => 'dir', automated_column => 'auto', counted_kinds => '{}');
SELECT crm.attach_coverage('touch', customer_column => 'cust_id', time_column => 'at', direction_column => 'dir', automated_column => 'auto', class_column => 'cls');
SELECT crm.attach_coverage('touch', customer_column => 'cust_id', time_column => 'at', direction_column => 'dir', automated_column => 'dir');
SELECT crm.attach_coverage('touch', customers => 'cust', customer_column => 'cust_id', time_column => 'at', direction_column => 'dir', automated_column => 'auto');
SELECT crm.attach_coverage('touch', customers => 'cust', customer_column => 'cust_id', customer_key_column => 'id', class_column => 'nope', time_column => 'at', direction_column => 'dir', automated_column => 'auto');
CREATE VIEW touch_v AS SELECT * FROM touch;
SELECT crm.attach_coverage('touch_v', customer_column => 'cust_id', time_column => 'at');
DROP VIEW touch_v;

-- lead SLA, hand-worked: lead 1 answered after 10 min (an automated mail at 10:01 does not count),
-- lead 2 after 30 min (an inbound email at 10:05 does not count), lead 3 never (a call before creation does not count)
CREATE TABLE lead (id int, created timestamptz, channel text, mgr int);
INSERT INTO lead VALUES (1, '2025-12-01 10:00', 'ads', 1), (2, '2025-12-01 10:00', 'ads', 2), (3, '2025-12-02 10:00', 'events', 1);
CREATE TABLE lead_touch (lead int, at timestamptz, dir text, auto boolean);
INSERT INTO lead_touch VALUES (1, '2025-12-01 10:01', 'outbound', true), (1, '2025-12-01 10:10', 'outbound', false),
  (1, '2025-12-01 11:00', 'outbound', false), (2, '2025-12-01 10:05', 'inbound', false), (2, '2025-12-01 10:30', 'outbound', false),
  (3, '2025-12-02 09:00', 'outbound', false);
-- spend: ads 300 for 2 leads -> 150 each; events 90 for 1 lead -> lead 3 wasted 90
CREATE TABLE spend (channel text, month date, amount numeric);
INSERT INTO spend VALUES ('ads', '2025-12-01', 300), ('events', '2025-12-01', 90), ('events', '2025-11-01', 1000);
SELECT * FROM crm.lead_first_response('SELECT id, created, channel, mgr FROM lead', 'SELECT lead, at, dir, auto FROM lead_touch') ORDER BY lead_id;
-- total: 3 leads, 2 answered, both within the default SLA of 1 hour = 66.67 %, median of 10 and 30 min = 20 min, 1 never answered costing 90
SELECT * FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead', 'SELECT lead, at, dir, auto FROM lead_touch',
                           spend_sql => 'SELECT channel, month, amount FROM spend');
SELECT dimension, key, within_sla, within_sla_pct FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead',
                           'SELECT lead, at, dir, auto FROM lead_touch', interval '30 minutes');
SELECT * FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead', 'SELECT lead, at, dir, auto FROM lead_touch', interval '-5 minutes');
SELECT * FROM crm.lead_sla('SELECT id, created, channel FROM lead', 'SELECT lead, at, dir, auto FROM lead_touch');
SELECT * FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead', 'SELECT lead, at, dir FROM lead_touch');
SELECT * FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead', 'SELECT lead, at, dir, auto FROM lead_touch', spend_sql => 'SELECT channel, amount FROM spend');
SELECT * FROM crm.lead_first_response(NULL, 'SELECT lead, at, dir, auto FROM lead_touch');
-- working time: Friday 17:50 -> Monday 09:10 is 10 + 10 minutes of a Mon-Fri 09:00-18:00 week;
-- a Saturday hour is none; two whole Mon-Tue days from 08:00 are 2 x 9 hours
SELECT crm.working_time('2025-12-05 17:50', '2025-12-08 09:10');
SELECT crm.working_time('2025-12-06 10:00', '2025-12-06 11:00');
SELECT crm.working_time('2025-12-01 08:00', '2025-12-03 08:00');
SELECT crm.working_time('2025-12-01 10:00', '2025-12-01 09:00');
SELECT crm.working_time('2025-12-06 10:00', '2025-12-06 11:00', '08:00', '20:00', '{6}');
SELECT crm.working_time('2025-12-01 10:00', '2025-12-01 11:00', '18:00', '09:00');
SELECT crm.working_time('2025-12-01 10:00', '2025-12-01 11:00', workdays => '{0,1}');
-- the SLA in working hours: lead 4 comes in on Friday 17:50 and is called on Monday 09:10 -> 20 working minutes
-- (late on the wall clock, 3 days); lead 5 on Saturday 10:00, called 11:00 -> 0 working minutes
INSERT INTO lead VALUES (4, '2025-12-05 17:50', 'ads', 2), (5, '2025-12-06 10:00', 'ads', 2);
INSERT INTO lead_touch VALUES (4, '2025-12-08 09:10', 'outbound', false), (5, '2025-12-06 11:00', 'outbound', false);
-- wall clock: within 15 min only lead 1; working time (SLA 25 min): leads 1, 4, 5 -> 3 of 5 = 60 %,
-- median of 0, 10 min, 20 min, 30 min = 15 min
SELECT dimension, key, answered, within_sla, within_sla_pct, median_response FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead',
       'SELECT lead, at, dir, auto FROM lead_touch', interval '25 minutes', working_hours => true) WHERE dimension = 'total';
SELECT dimension, key, answered, within_sla, within_sla_pct, median_response FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead',
       'SELECT lead, at, dir, auto FROM lead_touch', interval '25 minutes') WHERE dimension = 'total';
SELECT * FROM crm.lead_sla('SELECT id, created, channel, mgr FROM lead', 'SELECT lead, at, dir, auto FROM lead_touch', working_hours => true, work_start => '19:00');
DROP TABLE cust, touch CASCADE;
DROP TABLE buys, lead, lead_touch, spend;
-- everything works with an empty search_path (every name inside is qualified)
CREATE TABLE public.sp_cust (id int PRIMARY KEY, cls text);
INSERT INTO public.sp_cust VALUES (1, 'A'), (2, 'B');
CREATE TABLE public.sp_touch (cust_id bigint, kind text, direction text, automated boolean, occurred_at timestamptz);
SET search_path = '';
SELECT crm.attach_coverage('public.sp_touch', customers => 'public.sp_cust', class_column => 'cls', customer_column => 'cust_id',
                           customer_key_column => 'id', manager_column => NULL, since_column => NULL);
INSERT INTO public.sp_touch SELECT 1 + g % 2, 'call', 'outbound', false, '2025-12-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 10) g;
SELECT crm.coverage_set_purchase_cycles('SELECT cust_id, occurred_at FROM public.sp_touch');
SELECT crm.coverage_rebuild();
-- customer 1: hours 2, 4, ..., 10 -> last 10:00, 5 contacts, cycle 2 h (class A still uses purchase cycles): due 12:00;
-- customer 2: hours 1, ..., 9 -> last 09:00, class B every 3 months
SELECT customer_id, class, last_contact, contacts, purchase_cycle, next_due FROM crm.coverage ORDER BY 1;
RESET search_path;
-- a dropped table: rebuild says so, detach and a new attach still work
DROP TABLE public.sp_touch;
SELECT crm.coverage_rebuild();
SELECT crm.detach_coverage();
DROP TABLE public.sp_cust;
