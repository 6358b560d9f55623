-- status_partitions: automatic status on partitioned entity and event tables,
-- including partitions created or attached after crm.attach_auto_status.
-- The same events are replayed through the extension on partitioned tables and
-- on plain tables, and replayed by a PL/pgSQL loop that does not use the
-- extension: statuses and history must agree.
BEGIN;
SELECT plan(11);

CREATE SCHEMA tap_pt;
-- entity table partitioned by its key (hash), event table by time (range)
CREATE TABLE tap_pt.leads (id bigint PRIMARY KEY, status text) PARTITION BY HASH (id);
CREATE TABLE tap_pt.leads_0 PARTITION OF tap_pt.leads FOR VALUES WITH (MODULUS 2, REMAINDER 0);
-- a partition with another column order and a dropped column: other attribute numbers
CREATE TABLE tap_pt.leads_1 (junk int, status text, id bigint NOT NULL);
ALTER TABLE tap_pt.leads_1 DROP COLUMN junk;
ALTER TABLE tap_pt.leads ATTACH PARTITION tap_pt.leads_1 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO tap_pt.leads SELECT g, 'new' FROM generate_series(1, 200) g;
CREATE TABLE tap_pt.events (ev_id int, id bigint, kind text NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE tap_pt.events_2024 PARTITION OF tap_pt.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');

-- the same on plain tables, for comparison
CREATE TABLE tap_pt.plain_leads (id bigint PRIMARY KEY, status text);
INSERT INTO tap_pt.plain_leads SELECT g, 'new' FROM generate_series(1, 200) g;
CREATE TABLE tap_pt.plain_events (ev_id int, id bigint, kind text NOT NULL, at timestamptz NOT NULL);

CREATE FUNCTION tap_pt.setup(ent regclass, ev regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM crm.attach_auto_status(ent, 'id', 'status',
            ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost'], ev, 'id', 'kind', 'at');
    INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status)
    SELECT ent, k, f, s
      FROM (VALUES ('sent', '{new}'::text[], 'contacted'), ('opened', '{contacted,needs_recontact}', 'interested'),
                   ('paid', NULL, 'won'), ('lost', NULL, 'lost')) r(k, f, s);
    INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
    VALUES (ent, 'contacted', '30 days', 'needs_recontact');
END $$;
SELECT lives_ok($$SELECT tap_pt.setup('tap_pt.leads', 'tap_pt.events')$$, 'attach to a partitioned entity and event table');
SELECT tap_pt.setup('tap_pt.plain_leads', 'tap_pt.plain_events');

-- partitions added after the attach: one created, one attached
CREATE TABLE tap_pt.events_2025h1 PARTITION OF tap_pt.events FOR VALUES FROM ('2025-01-01') TO ('2025-07-01');
CREATE TABLE tap_pt.events_2025h2 (kind text NOT NULL, at timestamptz NOT NULL, id bigint, ev_id int);
ALTER TABLE tap_pt.events ATTACH PARTITION tap_pt.events_2025h2 FOR VALUES FROM ('2025-07-01') TO ('2026-01-01');

-- the workload: 3,000 events over 2024-2025
SELECT setseed(0.31);
CREATE TABLE tap_pt.workload AS
SELECT g AS seq, 1 + floor(random() * 200)::bigint AS id,
       (ARRAY['sent', 'sent', 'opened', 'opened', 'paid', 'lost', 'other'])[1 + floor(random() * 7)::int] AS kind,
       timestamptz '2024-01-01' + g * interval '5 hours' AS at
  FROM generate_series(1, 3000) g;

SELECT lives_ok($o$DO $d$ DECLARE w record; BEGIN
    FOR w IN SELECT * FROM tap_pt.workload ORDER BY seq LOOP
        INSERT INTO tap_pt.events VALUES (w.seq, w.id, w.kind, w.at);
        INSERT INTO tap_pt.plain_events VALUES (w.seq, w.id, w.kind, w.at);
    END LOOP; END $d$$o$, 'events inserted one by one into both (partitioned and plain)');
SELECT ok((SELECT count(*) FROM tap_pt.events_2025h2) > 100 AND (SELECT count(*) FROM tap_pt.events_2025h1) > 100,
          'the partitions added after the attach got events');

-- the independent replay: the rules as a PL/pgSQL loop over a plain copy
CREATE TABLE tap_pt.expected AS SELECT g::bigint AS id, 'new'::text AS status FROM generate_series(1, 200) g;
CREATE TABLE tap_pt.expected_changes (n serial, id bigint, from_status text, to_status text, at timestamptz);
DO $$
DECLARE w record; cur text; nxt text;
        pos constant text[] := ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost'];
BEGIN
    FOR w IN SELECT * FROM tap_pt.workload ORDER BY seq LOOP
        SELECT status INTO cur FROM tap_pt.expected WHERE id = w.id;
        nxt := CASE WHEN w.kind = 'sent' AND cur = 'new' THEN 'contacted'
                    WHEN w.kind = 'opened' AND cur IN ('contacted', 'needs_recontact') THEN 'interested'
                    WHEN w.kind = 'paid' THEN 'won' WHEN w.kind = 'lost' THEN 'lost' END;
        IF nxt IS NOT NULL AND nxt <> cur AND array_position(pos, nxt) > array_position(pos, cur) THEN
            UPDATE tap_pt.expected SET status = nxt WHERE id = w.id;
            INSERT INTO tap_pt.expected_changes (id, from_status, to_status, at) VALUES (w.id, cur, nxt, w.at);
        END IF;
    END LOOP;
END $$;

SELECT is((SELECT count(*) FROM tap_pt.leads l FULL JOIN tap_pt.expected x USING (id) WHERE l.status IS DISTINCT FROM x.status),
          0::bigint, 'partitioned: statuses equal the independent replay');
SELECT is((SELECT count(*) FROM tap_pt.plain_leads l FULL JOIN tap_pt.expected x USING (id) WHERE l.status IS DISTINCT FROM x.status),
          0::bigint, 'plain: statuses equal the independent replay');
SELECT results_eq(
  $$SELECT entity_key::bigint, from_status, to_status, changed_at, actor FROM crm.status_history
     WHERE entity_table = 'tap_pt.leads'::regclass ORDER BY history_id$$,
  $$SELECT id, from_status, to_status, at, 'rule'::text FROM tap_pt.expected_changes ORDER BY n$$,
  'partitioned: the history is the independent replay''s list of changes, in order, under the partitioned table''s name');

-- the sweep over the partitioned table (contacted, idle for 30 days at 2026-03-01)
SELECT is(crm.apply_time_rules('2026-03-01'),
          (SELECT count(*)::int FROM tap_pt.expected x WHERE x.status = 'contacted'
              AND NOT EXISTS (SELECT 1 FROM tap_pt.workload w WHERE w.id = x.id AND w.at > '2026-03-01'::timestamptz - interval '30 days')
              AND NOT EXISTS (SELECT 1 FROM tap_pt.expected_changes c WHERE c.id = x.id AND c.at > '2026-03-01'::timestamptz - interval '30 days')) * 2,
          'the sweep moves the idle contacted leads of both tables');
SELECT is((SELECT count(*) FROM tap_pt.leads l JOIN tap_pt.plain_leads p USING (id) WHERE l.status IS DISTINCT FROM p.status),
          0::bigint, 'after the sweep, partitioned and plain agree');
SELECT is((SELECT count(*) FROM crm.status_history WHERE entity_table = 'tap_pt.leads'::regclass AND rule_id IS NOT NULL
              AND to_status = 'needs_recontact'),
          (SELECT count(*) FROM tap_pt.leads WHERE status = 'needs_recontact'),
          'one history row per swept lead');

-- manual changes on a partition, directly: checked and recorded under the partitioned table
SELECT throws_ok($$UPDATE tap_pt.leads_1 SET status = 'new' WHERE id = (SELECT min(id) FROM tap_pt.leads_1 WHERE status <> 'new')$$,
                 '23514', NULL, 'a backward move on a partition is rejected');
CREATE TABLE tap_pt.chosen AS SELECT id, status FROM tap_pt.leads_0 WHERE status <> 'lost' ORDER BY id LIMIT 1;
UPDATE tap_pt.leads_0 SET status = 'lost' WHERE id = (SELECT id FROM tap_pt.chosen);
SELECT is((SELECT format('%s %s>%s %s', entity_key, from_status, to_status, rule_id IS NULL) FROM crm.status_history
            WHERE entity_table = 'tap_pt.leads'::regclass ORDER BY history_id DESC LIMIT 1),
          (SELECT format('%s %s>lost t', id, status) FROM tap_pt.chosen),
          'a manual change on a partition is recorded under the partitioned table');

SELECT * FROM finish();
ROLLBACK;
