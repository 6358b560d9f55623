-- coverage: contact coverage and lead SLA on the demo data (crm.load_demo(2000, 42, '2025-12-31')),
-- every number compared with an independent plain-SQL computation over crm_demo.
BEGIN;
SELECT plan(47);
SET LOCAL TimeZone = 'UTC';

-- ---------------------------------------------------------------- median_interval
-- independent: distinct purchase timestamps, gaps by lag(), percentile_cont(0.5)
CREATE TEMP TABLE t_cycle AS
WITH d AS (SELECT DISTINCT customer_id, ordered_at FROM crm_demo.orders),
     g AS (SELECT customer_id, ordered_at - lag(ordered_at) OVER (PARTITION BY customer_id ORDER BY ordered_at) AS gap FROM d)
SELECT customer_id, (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM gap)))::numeric AS secs
  FROM g WHERE gap IS NOT NULL GROUP BY customer_id;

CREATE TEMP TABLE t_mi_serial AS
SELECT customer_id, crm.median_interval(ordered_at) AS mi FROM crm_demo.orders GROUP BY customer_id;

SELECT cmp_ok((SELECT count(*) FROM t_cycle), '>', 100::bigint, 'demo has more than 100 repeat buyers');
SELECT is((SELECT count(*) FROM t_mi_serial WHERE mi IS NOT NULL), (SELECT count(*) FROM t_cycle),
          'median_interval is non-null exactly for customers with two or more distinct purchases');
SELECT cmp_ok((SELECT max(abs(extract(epoch FROM s.mi) - c.secs)) FROM t_mi_serial s JOIN t_cycle c USING (customer_id)),
              '<', 0.00001::numeric, 'median_interval equals percentile_cont over lag() gaps for every customer');

-- forced parallel: partial aggregation with the combine function
ALTER TABLE crm_demo.orders SET (parallel_workers = 2);
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
CREATE FUNCTION pg_temp.plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; s text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP s := s || r."QUERY PLAN" || E'\n'; END LOOP;
    RETURN s;
END $$;
SELECT matches(pg_temp.plan_text('SELECT crm.median_interval(ordered_at) FROM crm_demo.orders'),
               'Partial Aggregate', 'median_interval runs as a partial aggregate in parallel');
SELECT cmp_ok((SELECT abs(extract(epoch FROM (SELECT crm.median_interval(ordered_at) FROM crm_demo.orders))
                    - (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM gap)))::numeric)
                 FROM (SELECT ordered_at - lag(ordered_at) OVER (ORDER BY ordered_at) AS gap
                         FROM (SELECT DISTINCT ordered_at FROM crm_demo.orders) d) g WHERE gap IS NOT NULL),
              '<', 0.000001::numeric, 'parallel median_interval over all orders equals the plain-SQL median');
CREATE TEMP TABLE t_mi_par7 AS SELECT customer_id % 7 AS g, crm.median_interval(ordered_at) AS mi FROM crm_demo.orders GROUP BY 1;
RESET max_parallel_workers_per_gather;
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT is((SELECT count(*) FROM (SELECT customer_id % 7 AS g, crm.median_interval(ordered_at) AS mi FROM crm_demo.orders GROUP BY 1) p
             FULL JOIN t_mi_par7 s USING (g) WHERE p.mi IS DISTINCT FROM s.mi), 0::bigint,
          'parallel grouped median_interval equals the serial result');
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;
ALTER TABLE crm_demo.orders RESET (parallel_workers);

-- state type: exact text round trip, and a re-read state gives the same median
CREATE AGGREGATE pg_temp.mi_state(timestamptz) (SFUNC = crm.median_interval_transfn, STYPE = crm.median_interval_state);
CREATE AGGREGATE pg_temp.mi_merge(crm.median_interval_state) (SFUNC = crm.median_interval_combinefn,
    STYPE = crm.median_interval_state, FINALFUNC = crm.median_interval_finalfn);
CREATE TEMP TABLE t_states AS SELECT customer_id, pg_temp.mi_state(ordered_at) AS st FROM crm_demo.orders GROUP BY customer_id;
SELECT is((SELECT count(*) FROM t_states WHERE st::text::crm.median_interval_state::text <> st::text), 0::bigint,
          'median_interval_state text form round-trips exactly');
SELECT is((SELECT count(*) FROM t_states s JOIN t_mi_serial m USING (customer_id)
            WHERE (SELECT pg_temp.mi_merge(v.x::text::crm.median_interval_state) FROM (VALUES (s.st)) v(x)) IS DISTINCT FROM m.mi), 0::bigint,
          'a state read back from text gives the same median');
SELECT is(crm.median_interval_state_in('3:0,86400000000,259200000000')::text, '3:0,86400000000,259200000000', 'hand state reads');
SELECT is((SELECT pg_temp.mi_merge(s) FROM (VALUES ('3:0,86400000000,259200000000'::crm.median_interval_state)) v(s)),
          interval '1 day 12:00:00', 'gaps 1 day and 2 days: median 1.5 days');
SELECT throws_ok($$SELECT '3:1,2'::crm.median_interval_state$$, '22P02', NULL, 'state with fewer values than its count is an error');
SELECT throws_ok($$SELECT '1:1,2'::crm.median_interval_state$$, '22P02', NULL, 'state with more values than its count is an error');
SELECT throws_ok($$SELECT '99999999999999999:1'::crm.median_interval_state$$, '22P02', NULL, 'huge count is an error, not an allocation');
SELECT throws_ok($$SELECT 'abc'::crm.median_interval_state$$, '22P02', NULL, 'garbage state is an error');
SELECT throws_ok($$SELECT '1:99999999999999999999'::crm.median_interval_state$$, '22P02', NULL, 'overflowing value is an error');
SELECT throws_ok($$SELECT '-1:'::crm.median_interval_state$$, '22P02', NULL, 'negative count is an error');

-- ---------------------------------------------------------------- coverage
-- classes: ABC by revenue in plain SQL (share of revenue above the customer < 80 % -> A, < 95 % -> B)
CREATE TEMP TABLE t_class AS
SELECT customer_id,
       CASE WHEN above < 0.80 * total THEN 'A' WHEN above < 0.95 * total THEN 'B' ELSE 'C' END AS class
  FROM (SELECT customer_id, rev, sum(rev) OVER () AS total,
               sum(rev) OVER (ORDER BY rev DESC) - rev * count(*) OVER (PARTITION BY rev) AS above
          FROM (SELECT customer_id, sum(amount) AS rev FROM crm_demo.orders GROUP BY 1) r) s;

SELECT is(crm.attach_coverage('crm_demo.interactions', customers => 'crm_demo.customers'), 2000::bigint,
          'attach_coverage tracks the 2000 demo customers');
SELECT is(crm.coverage_set_classes('SELECT customer_id, class FROM t_class'), 2000::bigint,
          'coverage_set_classes classifies every customer');

-- independent expectation straight from the demo tables
CREATE FUNCTION pg_temp.expected() RETURNS TABLE (customer_id bigint, class text, manager_id bigint,
    last_contact timestamptz, contacts bigint, next_due timestamptz) LANGUAGE sql AS $$
SELECT c.customer_id, k.class, c.manager_id::bigint, i.last, coalesce(i.n, 0),
       coalesce(i.last, c.created_at) + CASE k.class WHEN 'A' THEN interval '1 month' WHEN 'B' THEN interval '3 months'
                                                     ELSE interval '6 months' END
  FROM crm_demo.customers c
  JOIN t_class k ON k.customer_id = c.customer_id
  LEFT JOIN (SELECT x.customer_id, max(x.occurred_at) AS last, count(*) AS n
               FROM crm_demo.interactions x
              WHERE x.customer_id IS NOT NULL AND x.kind IN ('call', 'meeting', 'email') AND NOT x.automated
              GROUP BY 1) i ON i.customer_id = c.customer_id
$$;
CREATE FUNCTION pg_temp.mismatches() RETURNS bigint LANGUAGE sql AS $$
SELECT (SELECT count(*) FROM (SELECT * FROM pg_temp.expected()
                              EXCEPT SELECT customer_id, class, manager_id, last_contact, contacts, next_due FROM crm.coverage) a)
     + (SELECT count(*) FROM (SELECT customer_id, class, manager_id, last_contact, contacts, next_due FROM crm.coverage
                              EXCEPT SELECT * FROM pg_temp.expected()) b)
$$;
SELECT is(pg_temp.mismatches(), 0::bigint, 'coverage rows equal the plain-SQL last contact, count and next due date');
SELECT cmp_ok((SELECT count(*) FROM crm.coverage WHERE last_contact IS NULL), '>', 0::bigint,
              'some demo customers were never contacted (mailings do not count)');

-- views at the demo's as_of, against statuses computed from the expectation
SET LOCAL crm.coverage_as_of = '2025-12-31';
CREATE FUNCTION pg_temp.expected_status() RETURNS TABLE (customer_id bigint, class text, manager_id bigint, status text, days int)
LANGUAGE sql AS $$
SELECT e.customer_id, e.class, e.manager_id,
       CASE WHEN e.next_due < '2025-12-31'::timestamptz THEN 'overdue'
            WHEN e.next_due - CASE e.class WHEN 'A' THEN interval '7 days' WHEN 'B' THEN interval '14 days'
                                           ELSE interval '30 days' END <= '2025-12-31'::timestamptz THEN 'due soon'
            ELSE 'ok' END,
       CASE WHEN e.next_due < '2025-12-31'::timestamptz
            THEN floor(extract(epoch FROM '2025-12-31'::timestamptz - e.next_due) / 86400)::int END
  FROM pg_temp.expected() e
$$;
SELECT results_eq(
    $$SELECT class, customers, covered, due_soon, overdue, coverage_pct FROM crm.coverage_by_class ORDER BY class$$,
    $$SELECT class, count(*), count(*) FILTER (WHERE status <> 'overdue'), count(*) FILTER (WHERE status = 'due soon'),
             count(*) FILTER (WHERE status = 'overdue'),
             round(100.0 * count(*) FILTER (WHERE status <> 'overdue') / count(*), 2)
        FROM pg_temp.expected_status() GROUP BY class ORDER BY class$$,
    'coverage_by_class equals the plain-SQL counts per class');
SELECT results_eq(
    $$SELECT manager_id, customers, covered, due_soon, overdue FROM crm.coverage_by_manager ORDER BY manager_id$$,
    $$SELECT manager_id, count(*), count(*) FILTER (WHERE status <> 'overdue'), count(*) FILTER (WHERE status = 'due soon'),
             count(*) FILTER (WHERE status = 'overdue')
        FROM pg_temp.expected_status() GROUP BY manager_id ORDER BY manager_id$$,
    'coverage_by_manager equals the plain-SQL counts per manager');
SELECT results_eq(
    $$SELECT customer_id, days_overdue FROM crm.coverage_overdue$$,
    $$SELECT s.customer_id, s.days FROM pg_temp.expected_status() s JOIN pg_temp.expected() e USING (customer_id)
       WHERE s.status = 'overdue' ORDER BY e.next_due, s.customer_id$$,
    'coverage_overdue lists the overdue customers, most overdue first');
SELECT cmp_ok((SELECT count(*) FROM crm.coverage_by_class WHERE covered > 0 AND overdue > 0), '>=', 1::bigint,
              'the demo has both covered and overdue customers');

-- the trigger: new, late, automated, inbound, lead-only and unknown-customer interactions
INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
SELECT 1000000 + g, 1 + (g * 7919) % 2000, NULL, 1,
       (ARRAY['call', 'email', 'meeting', 'mailing'])[1 + g % 4],
       CASE WHEN g % 3 = 0 THEN 'inbound' ELSE 'outbound' END,
       g % 4 = 3,
       '2025-06-01'::timestamptz + g * interval '37 minutes'   -- many older than the last contact
  FROM generate_series(1, 5000) g;
INSERT INTO crm_demo.interactions VALUES (2000001, 5, NULL, 1, 'call', 'outbound', false, '2026-01-05 10:00+00');
INSERT INTO crm_demo.interactions VALUES (2000002, 5, NULL, 1, 'call', 'outbound', false, '2020-01-05 10:00+00');
INSERT INTO crm_demo.interactions VALUES (2000003, NULL, 7, 1, 'call', 'outbound', false, '2026-01-05 10:00+00');
SELECT is(pg_temp.mismatches(), 0::bigint, 'after trigger-maintained inserts (late, automated, inbound) coverage equals the plain-SQL recomputation');
SELECT is((SELECT last_contact FROM crm.coverage WHERE customer_id = 5), '2026-01-05 10:00+00'::timestamptz,
          'a late older interaction does not move last contact backwards');
INSERT INTO crm_demo.interactions VALUES (2000004, 999999, NULL, 1, 'call', 'outbound', false, '2025-12-01');
SELECT is((SELECT (class, last_contact, contacts)::text FROM crm.coverage WHERE customer_id = 999999),
          '(,"2025-12-01 00:00:00+00",1)', 'an unknown customer is added unclassified (unknown_customers => insert)');
SELECT is((SELECT customers FROM crm.coverage_by_class WHERE class IS NULL), 1::bigint, 'unclassified customers form their own row');
DELETE FROM crm_demo.interactions WHERE interaction_id = 2000004;
-- unknown customers inside a large statement (the array path) are added too
INSERT INTO crm_demo.interactions
SELECT 3000000 + g, CASE WHEN g <= 10 THEN g ELSE 990000 + g END, NULL, 1, 'call', 'outbound', false, '2026-01-10'
  FROM generate_series(1, 12) g;
SELECT is((SELECT count(*) FROM crm.coverage WHERE customer_id BETWEEN 990011 AND 990012 AND contacts = 1 AND class IS NULL)
          + (SELECT count(*) FROM crm.coverage WHERE customer_id <= 10 AND last_contact = '2026-01-10'), 12::bigint,
          'a 12-customer statement updates 10 known customers and adds 2 unknown ones');


-- a rebuild gives the same table as the trigger kept
CREATE TEMP TABLE t_kept AS SELECT * FROM crm.coverage WHERE customer_id <> 999999;
SELECT is(crm.coverage_rebuild(), 2002::bigint, 'coverage_rebuild re-reads every customer (2000 + 2 added unknown)');
SELECT is((SELECT count(*) FROM (SELECT * FROM t_kept EXCEPT SELECT * FROM crm.coverage) d), 0::bigint,
          'rebuild (stored class query re-applied) equals what the trigger maintained');

-- policy edits apply at once
UPDATE crm.coverage_policy SET max_interval = interval '2 months' WHERE class = 'A';
SELECT is((SELECT count(*) FROM crm.coverage c JOIN pg_temp.expected() e USING (customer_id)
            WHERE c.class = 'A' AND c.next_due <> coalesce(e.last_contact, (SELECT created_at FROM crm_demo.customers k WHERE k.customer_id = c.customer_id)) + interval '2 months'),
          0::bigint, 'editing the policy recomputes next due dates');
UPDATE crm.coverage_policy SET max_interval = interval '1 month' WHERE class = 'A';

-- the calculated approach: class B contacted at each customer's own purchase cycle
SELECT cmp_ok(crm.coverage_set_purchase_cycles('SELECT customer_id, ordered_at FROM crm_demo.orders'), '>', 0::bigint,
              'purchase cycles computed');
UPDATE crm.coverage_policy SET basis = 'purchase_cycle' WHERE class = 'B';
SELECT is((SELECT count(*) FROM crm.coverage c LEFT JOIN t_cycle t USING (customer_id)
            WHERE c.class = 'B'
              -- interval comparison counts a month as 30 days
              AND abs(extract(epoch FROM c.contact_interval)
                      - CASE WHEN t.secs IS NULL OR t.secs > 90 * 86400 THEN extract(epoch FROM interval '3 months')
                             WHEN t.secs < 30 * 86400 THEN extract(epoch FROM interval '1 month') ELSE t.secs END) > 0.00001),
          0::bigint, 'basis purchase_cycle: the interval is the plain-SQL median purchase gap clamped to B''s 1..3 months (3 months when unknown)');
SELECT is((SELECT count(*) FROM crm.coverage WHERE class = 'B' AND next_due <> coalesce(last_contact, customer_since) + contact_interval),
          0::bigint, 'next due = last contact + own cycle');

-- ---------------------------------------------------------------- lead SLA
CREATE TEMP TABLE t_fr AS
SELECT l.lead_id, l.channel, l.manager_id, date_trunc('month', l.created_at)::date AS month,
       (SELECT min(i.occurred_at) FROM crm_demo.interactions i
         WHERE i.lead_id = l.lead_id AND i.occurred_at >= l.created_at AND i.direction = 'outbound' AND NOT i.automated)
       - l.created_at AS rt
  FROM crm_demo.leads l;
SELECT is((SELECT count(*) FROM crm.lead_first_response(
              'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads',
              'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL') f
             JOIN t_fr t USING (lead_id) WHERE f.response_time IS NOT DISTINCT FROM t.rt), 6000::bigint,
          'lead_first_response equals the plain-SQL earliest outbound non-automated touch for all 6000 leads');
CREATE TEMP TABLE t_sla AS SELECT * FROM crm.lead_sla(
    'SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads',
    'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions WHERE lead_id IS NOT NULL',
    interval '15 minutes', 'SELECT channel, month, amount FROM crm_demo.spend');
-- cost per lead: the channel's spend in the month / its leads that month
CREATE TEMP TABLE t_exp AS
WITH cpl AS (SELECT s.channel, s.month, s.amount / (SELECT count(*) FROM crm_demo.leads l
                                                      WHERE l.channel = s.channel AND date_trunc('month', l.created_at)::date = s.month) AS cpl
               FROM crm_demo.spend s),
     x AS (SELECT t.*, coalesce(c.cpl, 0) AS cpl FROM t_fr t LEFT JOIN cpl c ON c.channel = t.channel AND c.month = t.month),
     dims AS (SELECT 'total' AS dimension, 'all' AS key, x.* FROM x
              UNION ALL SELECT 'channel', x.channel, x.* FROM x
              UNION ALL SELECT 'manager', x.manager_id::text, x.* FROM x),
     med AS (SELECT dimension, key, avg(extract(epoch FROM rt)) AS med_secs
               FROM (SELECT dimension, key, rt, row_number() OVER (PARTITION BY dimension, key ORDER BY rt) AS rn,
                            count(*) OVER (PARTITION BY dimension, key) AS n
                       FROM dims WHERE rt IS NOT NULL) r
              WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY 1, 2)
SELECT d.dimension, d.key, count(*) AS leads, count(rt) AS answered,
       count(*) FILTER (WHERE rt <= interval '15 minutes') AS within_sla,
       round(100.0 * count(*) FILTER (WHERE rt <= interval '15 minutes') / count(*), 2) AS pct,
       count(*) FILTER (WHERE rt IS NULL) AS never, round(sum(cpl) FILTER (WHERE rt IS NULL), 2) AS cost,
       min(m.med_secs) AS med_secs
  FROM dims d JOIN med m USING (dimension, key) GROUP BY 1, 2;
SELECT is((SELECT count(*) FROM t_sla), 11::bigint, 'lead_sla: total + 5 channels + 5 managers');
SELECT is((SELECT count(*) FROM t_sla s JOIN t_exp e USING (dimension, key)
            WHERE (s.leads, s.answered, s.within_sla, s.within_sla_pct, s.never_answered, s.never_answered_cost)
                = (e.leads, e.answered, e.within_sla, e.pct, e.never, e.cost)), 11::bigint,
          'lead_sla counts, share within SLA and the cost of unanswered leads equal plain SQL');
SELECT cmp_ok((SELECT max(abs(extract(epoch FROM s.median_response) - e.med_secs)) FROM t_sla s JOIN t_exp e USING (dimension, key)),
              '<', 0.000001::numeric, 'lead_sla median response equals the plain-SQL middle value(s)');
SELECT cmp_ok((SELECT never_answered_cost FROM t_sla WHERE dimension = 'total'), '>', 0::numeric,
              'unanswered demo leads cost money');

-- ---------------------------------------------------------------- bad input
SELECT throws_ok($$SELECT crm.attach_coverage('crm_demo.leads')$$, '55000', NULL, 'a second interactions table needs detach first');
SELECT throws_ok($$SELECT crm.attach_coverage('crm_demo.interactions', time_column => 'no_such')$$, '42703', NULL,
                 'missing column names the column');
SELECT throws_ok($$SELECT crm.attach_coverage('crm_demo.interactions', customer_column => 'kind')$$, '42804', NULL,
                 'a non-integer customer column is rejected');
SELECT throws_ok($$SELECT crm.attach_coverage('crm_demo.interactions', unknown_customers => 'maybe')$$, '22023', NULL,
                 'an unknown unknown_customers mode is rejected');
SELECT throws_ok($$INSERT INTO crm.coverage_policy VALUES ('D', interval '0', interval '0')$$, '22023',
                 'max_interval of coverage class "D" must be positive, got 00:00:00', 'a non-positive interval is rejected');
SELECT throws_ok($$SELECT crm.coverage_set_classes('SELECT customer_id, ''Z''::text FROM crm_demo.customers')$$, '22023',
                 'unknown coverage class "Z"', 'an unknown class is rejected');
SELECT throws_ok($$SELECT * FROM crm.lead_sla('SELECT lead_id, created_at, channel, manager_id FROM crm_demo.leads',
                   'SELECT lead_id, occurred_at, direction, automated FROM crm_demo.interactions', interval '0')$$,
                 '22023', NULL, 'a non-positive SLA is rejected');
SELECT * FROM finish();
ROLLBACK;
