-- test/rollups_fast_deals.sql: the deal reports from the rollups' deal states
-- (crm.rollup_deal_now / crm.rollup_deal_past): crm._fast_pipeline, crm._fast_funnel,
-- crm._fast_owner_deals and crm._fast_managers_deals equal the full computations
-- (crm.dashboard_pipeline, crm.dashboard_funnel, the deal rows of crm.owner_dashboard, the
-- deal columns of crm.dashboard_managers) for seven periods, after a full refresh and after
-- five seeded rounds of random INSERT / UPDATE / DELETE on the deal tables (deals moved back a
-- stage, events after the close, several events at one moment, events shifted in time, a deal's
-- manager and amount changed) with incremental refreshes; the incremental state equals a full
-- rebuild; the gates; unknown stages; a hand-worked fixture; a plain-SQL check on the demo.
--
-- The full computation is taken with a change waiting in crm.rollup_changes (the default gate,
-- crm_analytics.rollups = fresh, then answers from the sources): the setting itself cannot be
-- SET once the module is loaded (MarkGUCPrefixReserved), and the refresh loads it.
BEGIN;
SELECT plan(47);
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
    EXECUTE 'CREATE TEMP TABLE fd_full AS ' || q;
    DELETE FROM crm.rollup_changes c WHERE c.id = cid;
END
$f$;

-- per period, the rows that differ between the fast query fq and the full query sq (both
-- formatted with %1$L / %2$L = the dates, %3$L / %4$L / %5$L = cur_from, cur_to, prev_from)
CREATE FUNCTION pg_temp.diff(fq text, sq text) RETURNS text[] LANGUAGE plpgsql AS $f$
DECLARE
    p record;
    n bigint;
    bad text[] := '{}';
    cf timestamptz;
    ct timestamptz;
    pf timestamptz;
BEGIN
    FOR p IN SELECT * FROM periods ORDER BY f, t LOOP
        cf := p.f::timestamptz;
        ct := (p.t + 1)::timestamptz;
        pf := (p.f - (p.t - p.f + 1))::timestamptz;
        EXECUTE 'CREATE TEMP TABLE fd_fast AS ' || format(fq, p.f, p.t, cf, ct, pf);
        PERFORM pg_temp.full_path(format(sq, p.f, p.t, cf, ct, pf));
        SELECT count(*) INTO n FROM ((TABLE fd_fast EXCEPT ALL TABLE fd_full) UNION ALL (TABLE fd_full EXCEPT ALL TABLE fd_fast)) d;
        IF n > 0 THEN
            bad := bad || format('%s..%s: %s rows differ', p.f, p.t, n);
        END IF;
        DROP TABLE fd_fast;
        DROP TABLE fd_full;
    END LOOP;
    RETURN bad;
END
$f$;

CREATE TEMP TABLE reports (name text, fq text, sq text);
INSERT INTO reports VALUES
    ('pipeline', $$SELECT * FROM crm._fast_pipeline(%3$L, %4$L) WITH ORDINALITY$$,
                 $$SELECT * FROM crm.dashboard_pipeline(%1$L, %2$L) WITH ORDINALITY$$),
    ('funnel', $$SELECT * FROM crm._fast_funnel(%3$L, %4$L) WITH ORDINALITY$$,
               $$SELECT * FROM crm.dashboard_funnel(%1$L, %2$L) WITH ORDINALITY$$),
    ('owner deal rows', $$SELECT * FROM crm._fast_owner_deals(%3$L, %4$L, %5$L)$$,
                        $$SELECT metric, value, previous_value FROM crm.owner_dashboard(%1$L, %2$L)
                           WHERE metric IN ('win_rate', 'deals_won', 'average_won_deal', 'sales_cycle', 'open_deals', 'open_pipeline_value',
                                            'weighted_pipeline', 'stale_deals', 'stale_pipeline_value', 'sales_velocity', 'deals_lost',
                                            'lost_deal_value') OR metric LIKE 'lost\_value\_at\_%%'$$),
    ('manager deal columns', $$SELECT manager_id, won, lost, round(avg_won, 2) AS a, round(cycle, 2) AS c FROM crm._fast_managers_deals(%3$L, %4$L)$$,
                             $$SELECT manager_id, deals_won, deals_lost, average_won_deal, sales_cycle_days FROM crm.dashboard_managers(%1$L, %2$L)
                                WHERE deals_won + deals_lost > 0$$);

CREATE FUNCTION pg_temp.check_all(what text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM reports ORDER BY name LOOP
        RETURN NEXT is(pg_temp.diff(r.fq, r.sq), '{}'::text[], format('%s: %s from the deal states = the full computation, 7 periods', what, r.name));
    END LOOP;
END
$f$;

-- the deal states as a table, to compare an incremental state with a full rebuild
CREATE FUNCTION pg_temp.states() RETURNS TABLE (k text, v text) LANGUAGE sql AS $f$
SELECT 'now', (n.*)::text FROM crm.rollup_deal_now n
UNION ALL SELECT 'past', (p.*)::text FROM crm.rollup_deal_past p
$f$;

-- ---------------------------------------------------------------- after a full refresh
SELECT ok((SELECT count(*) FROM crm.refresh_rollups(full => true)) = 6, 'a full refresh');
SELECT is((SELECT count(*) FROM crm.rollup_deal_now), (SELECT count(DISTINCT deal_id) FROM crm_demo.deal_events), 'one current state per deal');
SELECT is((SELECT count(*) FROM crm.rollup_deal_now) + (SELECT count(*) FROM crm.rollup_deal_past),
          (SELECT count(*) FROM (SELECT DISTINCT deal_id, changed_at FROM crm_demo.deal_events) x), 'one state per deal and distinct event time');
SELECT is((SELECT count(*) FROM crm.rollup_deal_past p WHERE NOT (p.to_at > p.from_at)), 0::bigint, 'each earlier state is valid until a later event');
SELECT * FROM pg_temp.check_all('full refresh');

-- ---------------------------------------------------------------- the gates
-- with fresh rollups the reports read the states (a state altered on purpose shows)
SELECT ok(crm._rollups_usable(), 'fresh after the refresh: the gate is open');
CREATE TEMP TABLE gate_p AS SELECT * FROM crm.dashboard_pipeline('2025-12-01', '2025-12-31');
CREATE TEMP TABLE gate_f AS SELECT * FROM crm.dashboard_funnel('2025-12-01', '2025-12-31');
UPDATE crm.rollup_deal_now SET amount = amount + 1000000 WHERE closed_at IS NULL AND open_so = 1
   AND deal_id = (SELECT min(deal_id) FROM crm.rollup_deal_now WHERE closed_at IS NULL AND open_so = 1 AND first_at >= '2025-12-01');
SELECT is((SELECT open_value FROM crm.dashboard_pipeline('2025-12-01', '2025-12-31') WHERE stage_order = 1),
          (SELECT open_value + 1000000 FROM gate_p WHERE stage_order = 1), 'dashboard_pipeline answers from the deal states when the gate is open');
SELECT is((SELECT lost_value FROM crm.dashboard_funnel('2025-12-01', '2025-12-31') WHERE step_no = 1),
          (SELECT lost_value FROM gate_f WHERE step_no = 1), 'dashboard_funnel too (an open deal is not lost: unchanged)');
UPDATE crm.rollup_deal_now SET amount = amount - 1000000 WHERE amount >= 1000000 AND closed_at IS NULL AND open_so = 1;
-- changes waiting (no refresh): the default gate takes the full path, equal to the live data
INSERT INTO crm_demo.deal_events
SELECT deal_id::bigint, '2025-12-30 10:00', 'lost' FROM crm.rollup_deal_now WHERE closed_at IS NULL AND open_so = 2 ORDER BY deal_id::bigint LIMIT 50;
SELECT ok(NOT crm._rollups_usable(), 'a change waiting: the default gate is closed');
CREATE TEMP TABLE live_p AS SELECT * FROM crm.dashboard_pipeline('2025-12-01', '2025-12-31');
SELECT is((SELECT lost_deals FROM live_p WHERE stage_order = 2) - (SELECT lost_deals FROM gate_p WHERE stage_order = 2), 50::bigint,
          'with a change waiting dashboard_pipeline shows the live data (50 deals lost at qualified)');

-- ---------------------------------------------------------------- random rounds
CREATE FUNCTION pg_temp.deal_round(r int) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    -- open deals advanced (won, lost, a stage further), some with two events at one moment
    INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
    SELECT d.deal_id, d.last_at + random() * interval '20 days', (ARRAY['paid', 'lost', 'proposal', 'invoice'])[1 + floor(random() * 4)::int]
      FROM (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1
             HAVING bool_and(stage NOT IN ('paid', 'lost')) ORDER BY random() LIMIT 15) d;
    INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
    SELECT d.deal_id, d.last_at + interval '1 day', s.stage
      FROM (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1 ORDER BY random() LIMIT 6) d,
           (VALUES ('proposal'), ('lost')) s(stage);
    -- events after the close (a closed deal reopened, or won after lost)
    INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
    SELECT d.deal_id, d.last_at + random() * interval '40 days', (ARRAY['invoice', 'paid', 'lead', 'lost'])[1 + floor(random() * 4)::int]
      FROM (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1
             HAVING bool_or(stage IN ('paid', 'lost')) ORDER BY random() LIMIT 8) d;
    -- deals moved back a stage (the last event removed, or an earlier stage after it)
    DELETE FROM crm_demo.deal_events e USING (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1 ORDER BY random() LIMIT 10) x
     WHERE e.deal_id = x.deal_id AND e.changed_at = x.last_at;
    INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
    SELECT d.deal_id, d.last_at + interval '3 hours', 'qualified'
      FROM (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1
             HAVING bool_and(stage NOT IN ('paid', 'lost')) AND max(stage) > 'lead' ORDER BY random() LIMIT 5) d;
    -- events shifted in time (into or out of a period), a deal's events all deleted, a new deal
    UPDATE crm_demo.deal_events SET changed_at = changed_at + (r - 3) * interval '9 days'
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals ORDER BY random() LIMIT 6);
    DELETE FROM crm_demo.deal_events WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals ORDER BY random() LIMIT 2);
    INSERT INTO crm_demo.deals (deal_id, lead_id, customer_id, manager_id, channel, created_at, stage, amount)
    SELECT (SELECT max(deal_id) FROM crm_demo.deals) + 1, 1, NULL, 1 + r, 'ads', '2025-11-20', 'lead', 500 + r;
    INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
    SELECT (SELECT max(deal_id) FROM crm_demo.deals), t, s
      FROM (VALUES (timestamptz '2025-11-20', 'lead'), ('2025-12-02', 'proposal'), ('2025-12-20', 'paid')) v(t, s);
    -- a deal's manager, channel and amount (every event of the deal changes)
    UPDATE crm_demo.deals SET manager_id = 1 + (manager_id % 12), amount = amount + 1, channel = 'events'
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals ORDER BY random() LIMIT 6);
END
$f$;

SELECT setseed(0.21);
-- five rounds, each refreshed incrementally
CREATE FUNCTION pg_temp.rounds() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r int;
    t text;
BEGIN
    FOR r IN 1 .. 5 LOOP
        PERFORM pg_temp.deal_round(r);
        RETURN NEXT is((SELECT from_day IS NOT NULL FROM crm.refresh_rollups() WHERE part = 'deals'), true,
                       format('round %s: the deals part is refreshed incrementally', r));
        FOR t IN SELECT * FROM pg_temp.check_all(format('round %s', r)) LOOP
            RETURN NEXT t;
        END LOOP;
    END LOOP;
END
$f$;
SELECT * FROM pg_temp.rounds();

-- the incremental state is the state a full rebuild gives
CREATE TEMP TABLE inc_states AS SELECT * FROM pg_temp.states();
SELECT * FROM crm.refresh_rollups(full => true);
SELECT is((SELECT count(*) FROM ((TABLE inc_states EXCEPT ALL SELECT * FROM pg_temp.states())
                                 UNION ALL (SELECT * FROM pg_temp.states() EXCEPT ALL TABLE inc_states)) d), 0::bigint,
          'after five incremental refreshes the deal states equal a full rebuild');

-- ---------------------------------------------------------------- plain SQL on the demo
-- open deals per stage at the end of December and deals that entered each stage in it
SELECT results_eq(
    $$SELECT stage_order, open_deals, open_value FROM crm._fast_pipeline('2025-12-01', '2026-01-01') ORDER BY 1$$,
    $$WITH ev AS (SELECT e.deal_id, e.changed_at, e.stage, d.amount FROM crm_demo.deal_events e JOIN crm_demo.deals d USING (deal_id)
                   WHERE e.changed_at < '2026-01-01'),
           dd AS (SELECT deal_id, max(amount) AS amount, bool_or(stage IN ('paid', 'lost')) AS closed,
                         max(array_position(ARRAY['lead', 'qualified', 'proposal', 'invoice'], stage)) AS so FROM ev GROUP BY 1)
      SELECT ps.stage_order, count(dd.deal_id), coalesce(sum(dd.amount), 0)
        FROM crm.pipeline_stages ps LEFT JOIN dd ON dd.so = ps.stage_order AND NOT dd.closed
       GROUP BY 1 ORDER BY 1$$,
    'plain SQL: open deals and their value per stage at the end of December');
SELECT results_eq(
    $$SELECT stage, entered FROM crm._fast_pipeline('2025-12-01', '2026-01-01') ORDER BY stage_order$$,
    $$SELECT ps.stage, (SELECT count(DISTINCT e.deal_id) FROM crm_demo.deal_events e
                         WHERE e.stage = ps.stage AND e.changed_at >= '2025-12-01' AND e.changed_at < '2026-01-01')
        FROM crm.pipeline_stages ps ORDER BY ps.stage_order$$,
    'plain SQL: deals that entered each stage in December');

-- ---------------------------------------------------------------- unknown stages
-- an event with a stage crm.pipeline_stages does not list: the refresh refuses it, and
-- the deal states, which then keep the last good state, name it as the full path does
INSERT INTO crm_demo.deal_events VALUES ((SELECT min(deal_id) FROM crm_demo.deals), '2025-12-15', 'limbo');
SELECT throws_ok($$SELECT * FROM crm.dashboard_pipeline('2025-12-01', '2025-12-31')$$, '22023',
                 'source "stage_events" uses stages missing from crm.pipeline_stages: limbo', 'full path: the unknown stage is named');
UPDATE crm.rollup_deal_now SET unknown_at = '2025-12-15' WHERE deal_id = (SELECT min(deal_id)::text FROM crm_demo.deals);
SELECT throws_ok($$SELECT * FROM crm._fast_pipeline('2025-12-01', '2026-01-01')$$, '22023',
                 'source "stage_events" uses stages missing from crm.pipeline_stages: limbo', 'fast path: the same error when the state holds one before the end');
DELETE FROM crm_demo.deal_events WHERE stage = 'limbo';

-- ---------------------------------------------------------------- a hand-worked fixture
-- Stages: a(1, 0.2, norm 10 days) b(2, 0.5) won(3) lost(4). Period 2026-03-01..03-31, previous February.
--   d1: a 02-10, b 02-20, won 03-05 (amount 100; 120 on the won event)     -> won in March, cycle 23 days, amount 120
--   d2: a 02-01, lost 02-25, then b 03-10 and lost 03-15 (after the close) -> lost in February (the first lost); lost at stage b (open stage as of the end)
--   d3: a 03-02, b 03-02 (same moment), lost 03-20 (amount 50)             -> lost in March at b; funnel: started in March, reached step 2
--   d4: a 01-05 (amount 80), b at 04-01 00:00 (the end: not in March)       -> open at both ends, in a, stale (idle since January)
--   d6: a at 03-01 00:00 (the start: in March, amount 10)                   -> open in a at the end of March, stale; started in March
--   d5: a 03-25 (amount 40), b 04-02 (after the period)                    -> open in a at the end of March, not stale; started in March
-- Pipeline March: entered a {d3,d5,d6}=3, b {d2,d3}=2, won {d1}=1, lost {d2,d3}=2; open a {d4,d5,d6}: 3, 130, weighted
--   40*0.2=8.00 (d4, d6 stale); open b none; lost at b: d3 (1, 50); lost in March at a: none.
-- Funnel March (deals started in March: d3, d5, d6): levels 2, 1, 1 -> step1 3, step2 1 (d3 lost there, 50), step3 0.
-- Owner, March and February: won 1 (d1) / 0, lost 1 (d3) / 1 (d2): win_rate 50.00 / 0.00; average_won_deal 120.00 / NULL;
--   sales_cycle 23.00 (02-10 to 03-05) / NULL; open at the end of March d4, d5, d6 (130; weighted 8.00, d4 and d6 stale), at the end of
--   February d1 in b and d4 in a (valued as of the end of March: 120 + 80 = 200; weighted 120 * 0.5 = 60.00, d4 stale);
--   lost value 50 / 60, all of it at b (d2's open stage as of the end of March is b: its event after the close counts).
-- Managers, March: 7 won 1 (120, 23 days) and lost 1; 8 closed nothing in March.
CREATE SCHEMA fdx;
CREATE TABLE fdx.events (deal_id int, changed_at timestamptz, stage text, amount numeric, manager_id int, channel text);
INSERT INTO fdx.events VALUES
    (1, '2026-02-10', 'a', 100, 7, 'x'), (1, '2026-02-20', 'b', 100, 7, 'x'), (1, '2026-03-05', 'won', 120, 7, 'x'),
    (2, '2026-02-01', 'a', 60, 8, 'y'), (2, '2026-02-25', 'lost', 60, 8, 'y'), (2, '2026-03-10', 'b', 60, 8, 'y'), (2, '2026-03-15', 'lost', 60, 8, 'y'),
    (3, '2026-03-02', 'a', 50, 7, 'x'), (3, '2026-03-02', 'b', 50, 7, 'x'), (3, '2026-03-20', 'lost', 50, 7, 'x'),
    (4, '2026-01-05', 'a', 80, 8, 'y'), (4, '2026-04-01', 'b', 80, 8, 'y'), (6, '2026-03-01', 'a', 10, 9, 'z'),
    (5, '2026-03-25', 'a', 40, 7, 'x'), (5, '2026-04-02', 'b', 40, 7, 'x');
DELETE FROM crm.pipeline_stages;
INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome, max_days) VALUES
    ('a', 1, 0.2, 'open', 10), ('b', 2, 0.5, 'open', NULL), ('won', 3, 1, 'won', NULL), ('lost', 4, 0, 'lost', NULL);
SELECT crm.register_source('stage_events', 'SELECT deal_id, changed_at, stage, amount, manager_id, channel FROM fdx.events');
SELECT * FROM crm.refresh_rollups();
SELECT results_eq($$SELECT stage, entered, open_deals, open_value, weighted_value, lost_deals, lost_value FROM crm.dashboard_pipeline('2026-03-01', '2026-03-31')$$,
    $$VALUES ('a', 3::bigint, 3::bigint, 130::numeric, 8.00::numeric, 0::bigint, 0::numeric), ('b', 2, 0, 0, 0.00, 1, 50),
             ('won', 1, 0, 0, 0.00, 0, 0), ('lost', 2, 0, 0, 0.00, 0, 0)$$,
    'fixture: pipeline for March from the deal states (worked by hand)');
SELECT results_eq($$SELECT step_no, stage, entered, dropped, lost_deals, lost_value FROM crm.dashboard_funnel('2026-03-01', '2026-03-31')$$,
    $$VALUES (1, 'a', 3::bigint, 2::bigint, 0::bigint, 0::numeric), (2, 'b', 1, 1, 1, 50), (3, 'won', 0, 0, 0, 0)$$,
    'fixture: funnel for March from the deal states (worked by hand)');
SELECT results_eq($$SELECT metric, cur, prev FROM crm._fast_owner_deals('2026-03-01', '2026-04-01', '2026-02-01')
                     WHERE metric IN ('win_rate', 'deals_won', 'deals_lost', 'average_won_deal', 'sales_cycle', 'open_deals', 'open_pipeline_value',
                                      'weighted_pipeline', 'stale_deals', 'lost_deal_value', 'lost_value_at_a', 'lost_value_at_b')$$,
    $$VALUES ('win_rate', 50.00::numeric, 0.00::numeric), ('deals_won', 1, 0), ('average_won_deal', 120.00, NULL), ('sales_cycle', 23.00, NULL),
             ('open_deals', 3, 2), ('open_pipeline_value', 130, 200), ('weighted_pipeline', 8.00, 60.00), ('stale_deals', 2, 1),
             ('deals_lost', 1, 1), ('lost_deal_value', 50, 60), ('lost_value_at_a', 0, 0), ('lost_value_at_b', 50, 60)$$,
    'fixture: owner deal rows for March and February (worked by hand; amounts as of the end of March)');
SELECT results_eq($$SELECT manager_id, won, lost, avg_won, round(cycle, 2) FROM crm._fast_managers_deals('2026-03-01', '2026-04-01') ORDER BY 1$$,
    $$VALUES ('7', 1::bigint, 1::bigint, 120::numeric, 23.00::numeric)$$,
    'fixture: manager deal figures for March (worked by hand)');

SELECT * FROM finish();
ROLLBACK;
