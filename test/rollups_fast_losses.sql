-- test/rollups_fast_losses.sql: crm.dashboard_losses, crm.dashboard_followups and
-- crm.dashboard_closed_deals answered from the rollups (crm._fast_closed_deals: the deal states,
-- the deals source read live, the copy of the real interactions crm.rollup_deal_contacts) equal
-- the full computation for seven periods: after a full refresh; after three seeded rounds of the
-- shared random DML plus random changes to the deals source (lost reason, the deal's lead or
-- customer) and to the interactions of the deals' leads and customers, refreshed incrementally;
-- the incremental copy equals a full rebuild; the gate (a copy altered on purpose shows; changes
-- waiting give the live data); a deals source on a table no capture watches (read live); without
-- the deals source; bad input raises the same errors on both paths; a hand-worked fixture; a
-- plain-SQL check on the demo.
--
-- The full computation is taken with a change waiting in crm.rollup_changes (the default gate,
-- crm_analytics.rollups = fresh, then answers from the sources), as in test/rollups_fast_deals.sql.
BEGIN;
SELECT plan(49);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;

CREATE TEMP TABLE periods (f date, t date);
INSERT INTO periods VALUES ('2025-12-01', '2025-12-31'), ('2025-06-01', '2025-06-30'), ('2025-10-01', '2025-12-31'),
                           ('2025-01-01', '2025-12-31'), ('2025-03-15', '2025-03-15'), ('2024-01-01', '2024-01-31'),
                           ('2026-02-01', '2026-02-28');

-- the full computation: with a change waiting the gate takes the full path
CREATE FUNCTION pg_temp.full_path(q text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    cid bigint;
BEGIN
    INSERT INTO crm.rollup_changes (relid, bound) VALUES ('crm_demo.deal_events'::regclass, 'infinity') RETURNING rollup_changes.id INTO cid;
    IF crm._rollups_usable() THEN
        RAISE EXCEPTION 'the gate is open with a change waiting';
    END IF;
    EXECUTE 'CREATE TEMP TABLE fl_full AS ' || q;
    DELETE FROM crm.rollup_changes c WHERE c.id = cid;
END
$f$;

-- per period, the rows that differ between the report from the rollups (gate open) and the
-- full computation (%1$L / %2$L = the dates)
CREATE FUNCTION pg_temp.diff(q text) RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    p record;
    n bigint;
    bad text[] := '{}';
BEGIN
    IF NOT crm._rollups_usable() THEN
        RETURN ARRAY['the gate is closed'];
    END IF;
    FOR p IN SELECT * FROM periods ORDER BY f, t LOOP
        EXECUTE 'CREATE TEMP TABLE fl_fast AS ' || format(q, p.f, p.t);
        PERFORM pg_temp.full_path(format(q, p.f, p.t));
        SELECT count(*) INTO n FROM ((TABLE fl_fast EXCEPT ALL TABLE fl_full) UNION ALL (TABLE fl_full EXCEPT ALL TABLE fl_fast)) d;
        IF n > 0 THEN
            bad := bad || format('%s..%s: %s rows differ', p.f, p.t, n);
        END IF;
        DROP TABLE fl_fast;
        DROP TABLE fl_full;
    END LOOP;
    RETURN bad;
END
$f$;

CREATE TEMP TABLE reports (name text, q text);
INSERT INTO reports VALUES
    ('closed_deals', $$SELECT * FROM crm.dashboard_closed_deals(%1$L, %2$L) WITH ORDINALITY$$),
    ('losses', $$SELECT * FROM crm.dashboard_losses(%1$L, %2$L) WITH ORDINALITY$$),
    ('followups', $$SELECT * FROM crm.dashboard_followups(%1$L, %2$L) WITH ORDINALITY$$);

CREATE FUNCTION pg_temp.check_all(what text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM reports ORDER BY name LOOP
        RETURN NEXT is(pg_temp.diff(r.q), '{}'::text[], format('%s: %s from the rollups = the full computation, 7 periods', what, r.name));
    END LOOP;
END
$f$;

-- the copy of the real interactions as plain SQL over the demo
CREATE FUNCTION pg_temp.plain_copy() RETURNS TABLE (i text, l text, c text, t timestamptz) LANGUAGE sql AS $f$
SELECT x.interaction_id::text, x.lead_id::text, x.customer_id::text, x.occurred_at FROM crm_demo.interactions x
 WHERE NOT x.automated AND (x.lead_id IS NOT NULL OR x.customer_id IS NOT NULL)
$f$;
CREATE FUNCTION pg_temp.copy_diff() RETURNS bigint LANGUAGE sql AS $f$
SELECT count(*) FROM ((SELECT * FROM pg_temp.plain_copy() EXCEPT ALL SELECT * FROM crm.rollup_deal_contacts)
                      UNION ALL (SELECT * FROM crm.rollup_deal_contacts EXCEPT ALL SELECT * FROM pg_temp.plain_copy())) d
$f$;

-- ---------------------------------------------------------------- after a full refresh
SELECT ok((SELECT count(*) FROM crm.refresh_rollups(full => true)) = 6, 'a full refresh');
SELECT is(pg_temp.copy_diff(), 0::bigint, 'the copy of the real interactions = plain SQL over crm_demo.interactions');
SELECT ok((SELECT count(*) FROM pg_indexes WHERE schemaname = 'crm' AND tablename = 'rollup_deal_contacts') = 3,
          'the full refresh built the three indexes of the copy again');
SELECT * FROM pg_temp.check_all('full refresh');

-- ---------------------------------------------------------------- the gates
-- with fresh rollups the reports read the copy (a contact added to it on purpose shows)
SELECT ok(crm._rollups_usable(), 'fresh after the refresh: the gate is open');
CREATE TEMP TABLE gate_cd AS SELECT * FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31');
CREATE TEMP TABLE gate_d AS
SELECT c.deal_id, c.contacts, x.lead_id, c.created_at FROM gate_cd c JOIN crm_demo.deals x ON x.deal_id::text = c.deal_id
 ORDER BY c.deal_id LIMIT 1;
INSERT INTO crm.rollup_deal_contacts SELECT 'planted', g.lead_id::text, NULL, g.created_at FROM gate_d g;
SELECT is((SELECT c.contacts FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31') c JOIN gate_d g USING (deal_id)),
          (SELECT contacts + 1 FROM gate_d), 'dashboard_closed_deals answers from the copy when the gate is open');
DELETE FROM crm.rollup_deal_contacts WHERE interaction_id = 'planted';
-- changes waiting (no refresh): the default gate takes the full path, equal to the live data
INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + 1, NULL, g.lead_id, 1, 'call', 'outbound', false, g.created_at FROM gate_d g;
SELECT ok(NOT crm._rollups_usable(), 'a change waiting: the default gate is closed');
SELECT is((SELECT c.contacts FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31') c JOIN gate_d g USING (deal_id)),
          (SELECT contacts + 1 FROM gate_d), 'with a change waiting dashboard_closed_deals shows the live data (one more contact)');
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) > 0, 'refreshed');

-- ---------------------------------------------------------------- random rounds
\ir data/rollups_random_round.sql
-- the deals source and the interactions of the deals' leads and customers
CREATE FUNCTION pg_temp.losses_round(r int) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    -- lost reasons changed, recorded, removed
    UPDATE crm_demo.deals SET lost_reason = (ARRAY['price', 'competitor', 'timing', NULL])[1 + floor(random() * 4)::int]
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals WHERE stage = 'lost' ORDER BY random() LIMIT 12);
    -- a deal's lead or customer changed
    UPDATE crm_demo.deals SET lead_id = (SELECT lead_id FROM crm_demo.leads ORDER BY random() LIMIT 1)
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals WHERE closed_at >= '2025-06-01' ORDER BY random() LIMIT 6);
    UPDATE crm_demo.deals SET customer_id = (SELECT customer_id FROM crm_demo.customers ORDER BY random() LIMIT 1)
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals WHERE closed_at >= '2025-06-01' ORDER BY random() LIMIT 6);
    -- contacts inside closed deals' windows (some automated, some at the close itself), for the lead or the customer
    INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
    SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + row_number() OVER (),
           CASE WHEN random() < 0.4 THEN d.customer_id END, CASE WHEN random() < 0.8 THEN d.lead_id END, 1, 'call', 'outbound',
           random() < 0.2, CASE WHEN random() < 0.2 THEN d.closed_at ELSE d.created_at + random() * (d.closed_at - d.created_at) END
      FROM (SELECT * FROM crm_demo.deals WHERE closed_at >= '2025-01-01' ORDER BY random() LIMIT 25) d;
    -- contacts of deals' leads moved, deleted, made automated or real
    UPDATE crm_demo.interactions SET occurred_at = occurred_at + (r - 2) * interval '5 days'
     WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions WHERE lead_id IS NOT NULL ORDER BY random() LIMIT 10);
    DELETE FROM crm_demo.interactions
     WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions WHERE lead_id IS NOT NULL AND occurred_at >= '2025-09-01' ORDER BY random() LIMIT 10);
    UPDATE crm_demo.interactions SET automated = NOT automated
     WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions WHERE lead_id IS NOT NULL ORDER BY random() LIMIT 8);
END
$f$;

SELECT setseed(0.53);
-- three rounds, each refreshed incrementally
CREATE FUNCTION pg_temp.rounds() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r int;
    t text;
BEGIN
    FOR r IN 1 .. 3 LOOP
        PERFORM pg_temp.random_round(r);
        PERFORM pg_temp.losses_round(r);
        RETURN NEXT is((SELECT from_day IS NOT NULL FROM crm.refresh_rollups() WHERE part = 'contacts'), true,
                       format('round %s: the contacts part is refreshed incrementally', r));
        FOR t IN SELECT * FROM pg_temp.check_all(format('round %s', r)) LOOP
            RETURN NEXT t;
        END LOOP;
    END LOOP;
END
$f$;
SELECT * FROM pg_temp.rounds();
SELECT is(pg_temp.copy_diff(), 0::bigint, 'after three incremental refreshes the copy = plain SQL over crm_demo.interactions');

-- the incremental copy is the copy a full rebuild gives
CREATE TEMP TABLE inc_copy AS SELECT * FROM crm.rollup_deal_contacts;
SELECT * FROM crm.refresh_rollups(full => true);
SELECT is((SELECT count(*) FROM ((TABLE inc_copy EXCEPT ALL SELECT * FROM crm.rollup_deal_contacts)
                                 UNION ALL (SELECT * FROM crm.rollup_deal_contacts EXCEPT ALL TABLE inc_copy)) d), 0::bigint,
          'after three incremental refreshes the copy equals a full rebuild');
SELECT * FROM pg_temp.check_all('full rebuild');

-- ---------------------------------------------------------------- plain SQL on the demo
-- lost deals and value in December by reason, straight from crm_demo (stage names written out)
SELECT results_eq(
    $$SELECT reason, sum(deals), sum(lost_value) FROM crm.dashboard_losses('2025-12-01', '2025-12-31') GROUP BY 1 ORDER BY 1$$,
    $$WITH d AS (SELECT e.deal_id, min(e.changed_at) FILTER (WHERE e.stage = 'paid') AS won_at, min(e.changed_at) FILTER (WHERE e.stage = 'lost') AS lost_at
                   FROM crm_demo.deal_events e WHERE e.changed_at < '2026-01-01' GROUP BY 1)
      SELECT coalesce(x.lost_reason, '(not recorded)'), count(*)::numeric, sum(x.amount)
        FROM d JOIN crm_demo.deals x ON x.deal_id = d.deal_id
       WHERE d.lost_at >= '2025-12-01' AND (d.won_at IS NULL OR d.won_at > d.lost_at)
       GROUP BY 1 ORDER BY 1$$,
    'plain SQL: deals lost in December and their value by reason');

-- ---------------------------------------------------------------- the deals source read live
-- on a table no capture trigger watches: a change there leaves the gate open, and the reports
-- from the rollups show it at once (the deals source is read, not copied)
CREATE SCHEMA lsx;
CREATE TABLE lsx.deals AS SELECT deal_id, customer_id, lead_id, lost_reason FROM crm_demo.deals;
CREATE INDEX ON lsx.deals (deal_id);
SELECT crm.register_source('deals', 'SELECT deal_id, customer_id, lead_id, lost_reason FROM lsx.deals');
SELECT ok(crm._rollups_usable(), 'the deals source on another table: the gate stays open (the rollups do not read it)');
UPDATE lsx.deals SET lost_reason = 'moved' WHERE deal_id IN (SELECT deal_id::bigint FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31') WHERE outcome = 'lost' ORDER BY deal_id LIMIT 7);
UPDATE lsx.deals SET lead_id = lead_id + 1 WHERE deal_id IN (SELECT deal_id::bigint FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31') WHERE contacts > 0 ORDER BY deal_id LIMIT 7);
SELECT ok(crm._rollups_usable(), 'changed, no refresh: the gate is still open');
SELECT is((SELECT sum(deals) FROM crm.dashboard_losses('2025-12-01', '2025-12-31') WHERE reason = 'moved'), 7::numeric, 'the changed lost reasons show at once');
SELECT * FROM pg_temp.check_all('deals source changed without a refresh');

-- ---------------------------------------------------------------- without the deals source
SELECT crm.unregister_source('deals');
SELECT ok(crm._rollups_usable(), 'without the deals source the gate stays open');
SELECT is(pg_temp.diff($$SELECT * FROM crm.dashboard_losses(%1$L, %2$L) WITH ORDINALITY$$), '{}'::text[],
          'without the deals source: losses ((not recorded)) from the rollups = the full computation, 7 periods');
SELECT is((SELECT array_agg(DISTINCT reason) FROM crm.dashboard_losses('2025-10-01', '2025-12-31')), ARRAY['(not recorded)'], 'every reason is (not recorded)');
SELECT throws_ok($$SELECT * FROM crm.dashboard_followups('2025-12-01', '2025-12-31')$$, '55000', 'source "deals" is not registered',
                 'without the deals source: followups from the rollups raise the error of the full computation');
SELECT throws_ok($$SELECT * FROM crm.dashboard_closed_deals('2025-12-01', '2025-12-31')$$, '55000', 'source "deals" is not registered',
                 'without the deals source: closed_deals too');
SELECT crm.register_source('deals', 'SELECT deal_id, customer_id, lead_id, lost_reason FROM crm_demo.deals');

-- ---------------------------------------------------------------- bad input: same errors on both paths
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$f$;
CREATE FUNCTION pg_temp.errs() RETURNS text[] LANGUAGE sql AS $f$
SELECT array_agg(pg_temp.err(format('SELECT * FROM crm.%s(%s)', f, a)) ORDER BY f, a)
  FROM unnest(ARRAY['dashboard_losses', 'dashboard_followups', 'dashboard_closed_deals']) f,
       unnest(ARRAY[$$NULL, '2025-12-31'$$, $$'2025-12-01', NULL$$, $$'2025-12-31', '2025-12-01'$$,
                    $$'-infinity', '2025-12-01'$$, $$'2025-12-01', 'infinity'$$]) a
$f$;
CREATE TEMP TABLE errs_fast AS SELECT crm._rollups_usable() AS usable, pg_temp.errs() AS e;
INSERT INTO crm.rollup_changes (relid, bound) VALUES ('crm_demo.deal_events'::regclass, 'infinity');
CREATE TEMP TABLE errs_full AS SELECT crm._rollups_usable() AS usable, pg_temp.errs() AS e;
DELETE FROM crm.rollup_changes WHERE bound = 'infinity';
SELECT ok((SELECT usable FROM errs_fast) AND NOT (SELECT usable FROM errs_full), 'bad input tried with the gate open and closed');
SELECT is((SELECT e FROM errs_fast), (SELECT e FROM errs_full), 'bad input: the same errors from the rollups as from the full computation');
SELECT is((SELECT array_agg(DISTINCT split_part(x, ':', 1) ORDER BY split_part(x, ':', 1)) FROM errs_fast, unnest(e) x),
          ARRAY['22004', '22008', '22023'], 'bad input: NULL (22004), infinite (22008) and inverted (22023) periods');

-- ---------------------------------------------------------------- a hand-worked fixture
-- Stages a(1) b(2) won(3) lost(4); March 2026.
--   d1: a 03-01, b 03-05, won 03-10 (100)  lead 11, customer 101, no reason -> won in March, contacts 3:
--       #1 lead 03-02, #2 lead at the close 03-10 (included), #3 lead and customer 03-04 (once);
--       not #4 (customer, 03-11: after the close), not #5 (automated)
--   d2: a 02-20, lost 03-12 (40)           lead 12, reason price              -> lost in March at a, contacts 1:
--       #7 lead 03-01; not #6 (02-19: before its first event), not the contact without an id
--   d3: a 03-02, b 03-03, lost 03-20 (60)  lead 13, customer 103; two deals rows: reasons no budget and competitor
--       (the first by reason counts: competitor)                                -> lost in March at b, contacts 4: #8, #9, #10, #11
--   d4: a 03-05 (open); d5: a 01-10, lost 02-10 (lost in February)          -> not in March
-- Losses March: competitor at b 1 deal 60 (60.00 %), price at a 1 deal 40 (40.00 %).
-- Followups March: 0: none; 1: d2 lost 40, win rate 0.00; 2: none; 3+: d3 lost 60, d1 won 100, win rate 50.00.
CREATE SCHEMA lfy;
CREATE TABLE lfy.events (deal_id int, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO lfy.events VALUES
    (1, '2026-03-01', 'a', 100, 7, 'x'), (1, '2026-03-05', 'b', 100, 7, 'x'), (1, '2026-03-10', 'won', 100, 7, 'x'),
    (2, '2026-02-20', 'a', 40, 8, 'y'), (2, '2026-03-12', 'lost', 40, 8, 'y'),
    (3, '2026-03-02', 'a', 60, 7, 'x'), (3, '2026-03-03', 'b', 60, 7, 'x'), (3, '2026-03-20', 'lost', 60, 7, 'x'),
    (4, '2026-03-05', 'a', 10, 8, 'y'), (5, '2026-01-10', 'a', 30, 8, 'y'), (5, '2026-02-10', 'lost', 30, 8, 'y');
CREATE TABLE lfy.deals (deal_id int, customer_id int, lead_id int, lost_reason text);
INSERT INTO lfy.deals VALUES (1, 101, 11, NULL), (2, NULL, 12, 'price'), (3, 103, 13, 'no budget'), (3, 103, 13, 'competitor'),
                             (4, NULL, 14, NULL), (5, NULL, 15, 'timing');
CREATE TABLE lfy.ix (interaction_id int, customer_id int, lead_id int, manager_id int, occurred_at timestamptz, kind text, direction text, automated boolean);
INSERT INTO lfy.ix VALUES
    (1, NULL, 11, 7, '2026-03-02', 'call', 'out', false), (2, NULL, 11, 7, '2026-03-10', 'call', 'out', false),
    (3, 101, 11, 7, '2026-03-04', 'call', 'out', false), (4, 101, NULL, 7, '2026-03-11', 'call', 'out', false),
    (5, NULL, 11, 7, '2026-03-03', 'mail', 'out', true), (6, NULL, 12, 8, '2026-02-19', 'call', 'out', false),
    (7, NULL, 12, 8, '2026-03-01', 'call', 'out', false), (NULL, NULL, 12, 8, '2026-03-02', 'call', 'out', false),
    (8, NULL, 13, 7, '2026-03-02 12:00', 'call', 'out', false), (9, 103, NULL, 7, '2026-03-15', 'call', 'in', false),
    (10, 103, NULL, 7, '2026-03-16', 'call', 'out', false), (11, NULL, 13, 7, '2026-03-19', 'call', 'out', false);
DELETE FROM crm.pipeline_stages;
INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome, max_days) VALUES
    ('a', 1, 0.2, 'open', 10), ('b', 2, 0.5, 'open', NULL), ('won', 3, 1, 'won', NULL), ('lost', 4, 0, 'lost', NULL);
SELECT crm.register_source('stage_events', 'SELECT deal_id, changed_at, stage, amount, manager_id, channel FROM lfy.events');
SELECT crm.register_source('deals', 'SELECT deal_id, customer_id, lead_id, lost_reason FROM lfy.deals');
SELECT crm.register_source('interactions', 'SELECT interaction_id, customer_id, lead_id, manager_id, occurred_at, kind, direction, automated FROM lfy.ix');
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) > 0, 'fixture: refreshed');
SELECT ok(crm._rollups_usable(), 'fixture: the gate is open');
SELECT results_eq($$SELECT deal_id, outcome, stage, lost_reason, contacts FROM crm._fast_closed_deals('2026-03-01', '2026-04-01', true)
                      AS c(deal_id, manager_id, is_won, created_at, closed_at, amount, stage, lost_reason, contacts)
                      CROSS JOIN LATERAL (SELECT CASE WHEN c.is_won THEN 'won' ELSE 'lost' END) o(outcome) ORDER BY 1$$,
    $$VALUES ('1', 'won', 'b', NULL, 3::bigint), ('2', 'lost', 'a', 'price', 1), ('3', 'lost', 'b', 'competitor', 4)$$,
    'fixture: the closed deals of March from the rollups (worked by hand)');
SELECT results_eq($$SELECT reason, stage, deals, lost_value, share_pct FROM crm.dashboard_losses('2026-03-01', '2026-03-31')$$,
    $$VALUES ('competitor', 'b', 1::bigint, 60::numeric, 60.00::numeric), ('price', 'a', 1, 40, 40.00)$$,
    'fixture: losses of March from the rollups (worked by hand)');
SELECT results_eq($$SELECT contacts, deals, lost_value, won_deals, won_value, win_rate_pct FROM crm.dashboard_followups('2026-03-01', '2026-03-31')$$,
    $$VALUES ('0', 0::bigint, 0::numeric, 0::bigint, 0::numeric, NULL::numeric), ('1', 1, 40, 0, 0, 0.00),
             ('2', 0, 0, 0, 0, NULL), ('3+', 1, 60, 1, 100, 50.00)$$,
    'fixture: followups of March from the rollups (worked by hand)');
INSERT INTO crm.rollup_changes (relid, bound) VALUES ('lfy.events'::regclass, 'infinity');
SELECT results_eq($$SELECT contacts, deals, lost_value, won_deals, won_value, win_rate_pct FROM crm.dashboard_followups('2026-03-01', '2026-03-31')$$,
    $$VALUES ('0', 0::bigint, 0::numeric, 0::bigint, 0::numeric, NULL::numeric), ('1', 1, 40, 0, 0, 0.00),
             ('2', 0, 0, 0, 0, NULL), ('3+', 1, 60, 1, 100, 50.00)$$,
    'fixture: followups of March from the full computation (worked by hand)');

SELECT * FROM finish();
ROLLBACK;
