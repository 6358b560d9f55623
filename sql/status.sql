-- status: automatic statuses driven by rules, with history (docs/auto-status.md)
SET client_min_messages = notice;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
CREATE SCHEMA st;
CREATE TABLE st.leads (lead_id bigint PRIMARY KEY, name text, status text);
CREATE TABLE st.lead_events (event_id serial PRIMARY KEY, lead_id bigint, kind text, at timestamptz);
INSERT INTO st.leads VALUES (1, 'Ann', 'new'), (2, 'Bob', 'new'), (3, 'Cid', 'contacted'), (4, 'Dan', NULL);

-- attach: statuses in pipeline order; the (entity, time) index is created
SELECT crm.attach_auto_status('st.leads', 'lead_id', 'status',
       ARRAY['new', 'contacted', 'needs_recontact', 'interested', 'won', 'lost'],
       'st.lead_events', 'lead_id', 'kind', 'at') AS attachment_id \gset
SELECT entity_table, key_column, status_column, event_table, allow_backward, max_depth
  FROM crm.status_attachments ORDER BY attachment_id;
SELECT status, position FROM crm.status_stages WHERE entity_table = 'st.leads'::regclass ORDER BY position;
SELECT tgname FROM pg_trigger WHERE tgrelid IN ('st.leads'::regclass, 'st.lead_events'::regclass)
   AND NOT tgisinternal ORDER BY tgname;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'st.lead_events'::regclass ORDER BY 1;

-- rules
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status, priority) VALUES
  ('st.leads', 'email_sent',   '{new}',                       'contacted',  0),
  ('st.leads', 'email_opened', '{contacted,needs_recontact}', 'interested', 0),
  ('st.leads', 'paid',         NULL,                          'won',        0),
  ('st.leads', 'unsubscribed', NULL,                          'lost',       0),
  ('st.leads', 'paid',         NULL,                          'lost',      -1);
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES
  ('st.leads', 'contacted', '7 days', 'needs_recontact');
SELECT rule_id, event_type, from_statuses, to_status, priority FROM crm.status_event_rules ORDER BY rule_id;

-- events: lead 1 is mailed and opens; lead 2 is mailed; an event for a lead
-- that does not exist (99) is stored and ignored; lead 4 (NULL status) pays
INSERT INTO st.lead_events (lead_id, kind, at) VALUES
  (1, 'email_sent',   '2025-03-01 09:00+00'),
  (1, 'email_opened', '2025-03-02 10:00+00'),
  (2, 'email_sent',   '2025-03-01 09:30+00'),
  (99, 'email_sent',  '2025-03-01 09:00+00'),
  (4, 'paid',         '2025-03-03 12:00+00');
-- an event whose rule does not apply in the current status changes nothing
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (3, 'email_sent', '2025-03-01 11:00+00');
-- an opened email for a lead still 'new': no rule applies
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (99, 'email_opened', '2025-03-02 11:00+00');
SELECT lead_id, status FROM st.leads ORDER BY lead_id;
SELECT entity_key, from_status, to_status, changed_at, rule_id, actor
  FROM crm.status_history ORDER BY history_id;

-- time rules: idle since 2025-03-01 (lead 2) and never changed (lead 3);
-- lead 3 had an event at 2025-03-01 11:00, so it is idle 7 days at 03-08 11:00
SELECT crm.apply_time_rules('2025-03-08 10:00+00');   -- lead 2 only (idle since 09:30)
SELECT crm.apply_time_rules('2025-03-08 10:00+00');   -- idempotent: nothing left
SELECT crm.apply_time_rules('2025-03-08 12:00+00');   -- now lead 3
SELECT crm.apply_time_rules('2025-03-09');
SELECT lead_id, status FROM st.leads ORDER BY lead_id;
-- a re-contacted lead opens the email: needs_recontact -> interested
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (2, 'email_opened', '2025-03-10 08:00+00');
-- 'paid' has two rules: the higher priority one (won) fires, once
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (2, 'paid', '2025-03-11 08:00+00');
-- 'unsubscribed' -> lost: lost comes after won, a forward move
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (2, 'unsubscribed', '2025-03-12 08:00+00');
SELECT entity_key, from_status, to_status, changed_at, rule_id, actor
  FROM crm.status_history WHERE entity_key IN ('2', '3') ORDER BY history_id;

-- manual changes: forward is recorded with the person as actor; backward is rejected
SET crm.status_actor = 'alice';
UPDATE st.leads SET status = 'won' WHERE lead_id = 1;
UPDATE st.leads SET status = 'new' WHERE lead_id = 1;
UPDATE st.leads SET status = 'nonsense' WHERE lead_id = 1;
UPDATE st.leads SET name = 'Ann B.' WHERE lead_id = 1;        -- no status change, no history
UPDATE st.leads SET status = status WHERE lead_id = 1;         -- same status, no history
SELECT entity_key, from_status, to_status, rule_id, actor, changed_at BETWEEN now() - interval '1 hour' AND now() AS at_now
  FROM crm.status_history WHERE actor <> 'rule' ORDER BY history_id;
RESET crm.status_actor;
-- an explicit transition allows one backward move
INSERT INTO crm.status_transitions VALUES ('st.leads', 'won', 'interested', true);
SELECT crm.status_transition_allowed('st.leads', 'won', 'interested') AS won_interested,
       crm.status_transition_allowed('st.leads', 'won', 'new') AS won_new,
       crm.status_transition_allowed('st.leads', NULL, 'new') AS null_new,
       crm.status_transition_allowed('st.leads', 'new', NULL) AS new_null,
       crm.status_transition_allowed('st.leads', 'new', 'nonsense') AS new_nonsense;
UPDATE st.leads SET status = 'interested' WHERE lead_id = 1;
-- and one forbidden forward move
INSERT INTO crm.status_transitions VALUES ('st.leads', 'new', 'won', false);
SELECT crm.status_transition_allowed('st.leads', 'new', 'won');
-- allow_backward opens every backward move
UPDATE crm.status_attachments SET allow_backward = true WHERE entity_table = 'st.leads'::regclass;
UPDATE st.leads SET status = 'new' WHERE lead_id = 1;
UPDATE crm.status_attachments SET allow_backward = false WHERE entity_table = 'st.leads'::regclass;
-- inserted entities get their first history row (from NULL)
INSERT INTO st.leads VALUES (5, 'Eve', 'contacted');
INSERT INTO st.leads VALUES (6, 'Fay', 'bogus');
SELECT entity_key, from_status, to_status, rule_id FROM crm.status_history
 WHERE entity_key IN ('1', '5') ORDER BY history_id;

-- every change is recorded once: the history is a chain that ends in the current status
SELECT l.lead_id, l.status,
       (SELECT h.to_status FROM crm.status_history h WHERE h.entity_key = l.lead_id::text
         ORDER BY h.history_id DESC LIMIT 1) AS last_history,
       (SELECT count(*) FROM crm.status_history h1 JOIN crm.status_history h2
           ON h2.entity_key = h1.entity_key
          AND h2.history_id = (SELECT min(h3.history_id) FROM crm.status_history h3
                                WHERE h3.entity_key = h1.entity_key AND h3.history_id > h1.history_id)
         WHERE h1.entity_key = l.lead_id::text AND h2.from_status IS DISTINCT FROM h1.to_status) AS broken_links
  FROM st.leads l ORDER BY l.lead_id;

-- time in stage and conversion, from the history
SELECT entity_key, status, entered_at, left_at, next_status, time_in_stage
  FROM crm.status_stage_times WHERE entity_key IN ('2', '3') ORDER BY entity_key, entered_at;
SELECT stage_position, status, entered, advanced, conversion, currently_in,
       date_trunc('hour', median_time_in_stage) AS median_time_in_stage
  FROM crm.status_conversion('st.leads');
-- the same figures in plain SQL: entities that ever entered each stage
SELECT h.to_status, count(DISTINCT h.entity_key) FROM crm.status_history h
 WHERE h.entity_table = 'st.leads'::regclass GROUP BY 1 ORDER BY 1;

-- loops: a user trigger that logs every status change as an event
CREATE FUNCTION st.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO st.lead_events (lead_id, kind, at) VALUES (NEW.lead_id, 'status_' || NEW.status, now());
    RETURN NULL;
END $$;
CREATE TRIGGER log_change AFTER UPDATE OF status ON st.leads FOR EACH ROW EXECUTE FUNCTION st.log_change();
-- 'status_interested' -> won would chain from the rule 'email_opened' -> interested
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES
  ('st.leads', 'status_interested', 'won'), ('st.leads', 'status_won', 'lost');
INSERT INTO st.leads VALUES (7, 'Gus', 'contacted');
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (7, 'email_opened', '2025-04-01');
SELECT lead_id, status FROM st.leads WHERE lead_id = 7;
-- with max_depth 2 the chain goes one step further, and stops there
UPDATE crm.status_attachments SET max_depth = 2 WHERE entity_table = 'st.leads'::regclass;
INSERT INTO st.leads VALUES (8, 'Hal', 'contacted');
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (8, 'email_opened', '2025-04-01');
SELECT lead_id, status FROM st.leads WHERE lead_id = 8;
SELECT entity_key, from_status, to_status, rule_id, actor FROM crm.status_history
 WHERE entity_key IN ('7', '8') ORDER BY history_id;
DROP TRIGGER log_change ON st.leads;

-- several entity tables, uuid and text keys, an enum status, a timestamp (no tz) event time
CREATE TYPE st.deal_stage AS ENUM ('open', 'proposal', 'won', 'lost');
CREATE TABLE st.deals (deal_id uuid PRIMARY KEY, stage st.deal_stage NOT NULL DEFAULT 'open');
CREATE TABLE st.deal_log (deal_id uuid, what varchar(20), at timestamp);
CREATE TABLE st.tickets (code text PRIMARY KEY, state varchar(20));
CREATE TABLE st.ticket_log (code text, what text, at date);
SELECT crm.attach_auto_status('st.deals', 'deal_id', 'stage', ARRAY['open', 'proposal', 'won', 'lost'],
       'st.deal_log', 'deal_id', 'what', 'at') > :attachment_id AS attached;
SELECT crm.attach_auto_status('st.tickets', 'code', 'state', ARRAY['open', 'answered', 'closed'],
       'st.ticket_log', 'code', 'what', 'at', create_index => false) > :attachment_id AS attached;
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES
  ('st.deals', 'sent_proposal', 'proposal'), ('st.deals', 'paid', 'won'),
  ('st.tickets', 'reply', 'answered');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES
  ('st.deals', 'proposal', '30 days', 'lost'), ('st.tickets', 'answered', '3 days', 'closed');
INSERT INTO st.deals VALUES ('00000000-0000-0000-0000-000000000001'), ('00000000-0000-0000-0000-000000000002');
INSERT INTO st.tickets VALUES ('T-1', 'open'), ('t-1', 'open');
INSERT INTO st.deal_log VALUES
  ('00000000-0000-0000-0000-000000000001', 'sent_proposal', '2025-05-01 10:00'),
  ('00000000-0000-0000-0000-000000000002', 'sent_proposal', '2025-05-01 10:00'),
  ('00000000-0000-0000-0000-000000000002', 'paid', '2025-05-20 10:00');
INSERT INTO st.ticket_log VALUES ('t-1', 'reply', '2025-05-02');
-- rows inserted today have a history row of today: sweep far ahead
SELECT crm.apply_time_rules('2100-01-01');
SELECT deal_id, stage FROM st.deals ORDER BY deal_id;
SELECT code, state FROM st.tickets ORDER BY code;
SELECT entity_table, entity_key, from_status, to_status, changed_at, rule_id IS NOT NULL AS by_rule
  FROM crm.status_history
 WHERE entity_table IN ('st.deals'::regclass, 'st.tickets'::regclass) AND from_status IS NOT NULL
 ORDER BY history_id;
SELECT entity_table, count(*) AS inserted FROM crm.status_history
 WHERE from_status IS NULL GROUP BY 1 ORDER BY 1;
-- the same sweep moved lead 5 (contacted since its insert today) and no other lead
SELECT entity_key, from_status, to_status, changed_at FROM crm.status_history
 WHERE entity_table = 'st.leads'::regclass AND changed_at = '2100-01-01';

-- bad inputs
SELECT crm.attach_auto_status('st.no_such_table', 'id', 'status', ARRAY['a']);
SELECT crm.attach_auto_status('st.leads', 'lead_id', 'status', ARRAY['new']);
CREATE TABLE st.people (person_id int PRIMARY KEY, email text, status text, score int);
SELECT crm.attach_auto_status('st.people', 'id', 'status', ARRAY['a']);
SELECT crm.attach_auto_status('st.people', 'person_id', 'state', ARRAY['a']);
SELECT crm.attach_auto_status('st.people', 'email', 'status', ARRAY['a']);
SELECT crm.attach_auto_status('st.people', 'person_id', 'score', ARRAY['a']);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', NULL);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a', 'a']);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a', NULL]);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], max_depth => 0);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], 'st.people_events', 'person_id', 'kind', 'at');
CREATE TABLE st.people_events (person_id int, person_uuid uuid, kind text, at timestamptz, n int);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], 'st.people_events', 'person_id', 'kind', NULL);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], 'st.people_events', 'person_id', 'kind', 'when');
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], 'st.people_events', 'person_uuid', 'kind', 'at');
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], 'st.people_events', 'person_id', 'n', 'at');
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], 'st.people_events', 'person_id', 'kind', 'n');
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a'], 'st.people', 'person_id', 'status', 'at');
CREATE VIEW st.people_view AS SELECT * FROM st.people;
SELECT crm.attach_auto_status('st.people_view', 'person_id', 'status', ARRAY['a']);
INSERT INTO st.people VALUES (1, 'x@example.com', 'zombie', 0);
SELECT crm.attach_auto_status('st.people', 'person_id', 'status', ARRAY['a', 'b']);
-- rules naming an unknown status, or a table that is not attached
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES ('st.leads', 'x', 'bogus');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status) VALUES ('st.leads', 'x', '{nope}', 'won');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status) VALUES ('st.leads', 'x', '{new,NULL}', 'won');
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES ('st.leads', NULL, 'won');
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES ('st.people', 'x', 'a');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES ('st.leads', 'new', '1 day', 'gone');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES ('st.leads', 'new', '-1 day', 'lost');
-- a NULL event type or time
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (1, NULL, '2025-03-01');
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (1, 'paid', NULL);
-- events with a NULL entity are stored and ignored
INSERT INTO st.lead_events (lead_id, kind, at) VALUES (NULL, 'paid', '2025-03-01');
SELECT crm.apply_time_rules(NULL);
SELECT crm.apply_time_rules('infinity');
SELECT crm.status_transition_allowed('st.people', 'a', 'b');
SELECT crm.detach_auto_status('st.people');
-- a backward time rule is skipped with a warning
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES ('st.leads', 'interested', '1 day', 'contacted');
SELECT crm.apply_time_rules('2200-01-01');
DELETE FROM crm.status_time_rules WHERE to_status = 'contacted';
-- a caller without rights on an attached table: its time rules are skipped with one warning
CREATE ROLE regress_st_nobody;
GRANT USAGE ON SCHEMA crm TO regress_st_nobody;
GRANT SELECT ON crm.status_attachments, crm.status_stages, crm.status_transitions,
                crm.status_event_rules, crm.status_time_rules TO regress_st_nobody;
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES ('st.leads', 'new', '2 days', 'lost');
SET ROLE regress_st_nobody;
SELECT crm.apply_time_rules('2200-01-01');
RESET ROLE;
DELETE FROM crm.status_time_rules WHERE from_status = 'new' AND idle_for = '2 days';
DROP OWNED BY regress_st_nobody;
DROP ROLE regress_st_nobody;
-- calling the trigger functions by hand or from the wrong kind of trigger
SELECT crm.status_entity_trigger();
CREATE TRIGGER wrong BEFORE INSERT ON st.people FOR EACH ROW EXECUTE FUNCTION crm.status_event_trigger('1');
INSERT INTO st.people VALUES (2, 'y@example.com', 'a', 0);
DROP TRIGGER wrong ON st.people;
CREATE TRIGGER wrong AFTER INSERT ON st.people FOR EACH ROW EXECUTE FUNCTION crm.status_event_trigger('x');
INSERT INTO st.people VALUES (2, 'y@example.com', 'a', 0);
DROP TRIGGER wrong ON st.people;

-- detach: triggers gone, user tables and data intact, history kept
SELECT count(*) AS leads_before, (SELECT count(*) FROM st.lead_events) AS events_before FROM st.leads;
SELECT crm.detach_auto_status('st.leads');
SELECT tgname FROM pg_trigger WHERE tgrelid IN ('st.leads'::regclass, 'st.lead_events'::regclass)
   AND NOT tgisinternal ORDER BY tgname;
SELECT count(*) AS leads_after, (SELECT count(*) FROM st.lead_events) AS events_after FROM st.leads;
SELECT count(*) AS rules_left FROM crm.status_event_rules WHERE entity_table = 'st.leads'::regclass;
SELECT count(*) > 0 AS history_kept FROM crm.status_history WHERE entity_table = 'st.leads'::regclass;
UPDATE st.leads SET status = 'new' WHERE lead_id = 2;    -- no trigger any more
SELECT lead_id, status FROM st.leads WHERE lead_id = 2;
SELECT crm.detach_auto_status('st.leads');
SELECT crm.detach_auto_status('st.deals', keep_history => false);
SELECT count(*) FROM crm.status_history WHERE entity_table = 'st.deals'::regclass;
SELECT crm.detach_auto_status('st.tickets');
-- an error raised by the user's trigger while a rule or the sweep moves a row names the rule
-- in the error context
CREATE TABLE st.ctx (id int PRIMARY KEY, status text);
CREATE TABLE st.ctx_events (id int, kind text, at timestamptz);
SELECT crm.attach_auto_status('st.ctx', 'id', 'status', ARRAY['new', 'won', 'lost'], 'st.ctx_events', 'id', 'kind', 'at');
INSERT INTO st.ctx VALUES (1, 'new');
CREATE FUNCTION st.ctx_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'status of % refused', NEW.id;
END $$;
CREATE TRIGGER refuse BEFORE UPDATE ON st.ctx FOR EACH ROW EXECUTE FUNCTION st.ctx_refuse();
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status) VALUES ('st.ctx', 'paid', 'won');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status) VALUES ('st.ctx', 'new', '1 day', 'lost');
SELECT (SELECT max(rule_id) FROM crm.status_event_rules) AS event_rule, (SELECT max(rule_id) FROM crm.status_time_rules) AS time_rule;
INSERT INTO st.ctx_events VALUES (1, 'paid', '2025-01-01');
SELECT crm.apply_time_rules('2200-01-01');
SELECT crm.detach_auto_status('st.ctx');
DROP TABLE st.ctx, st.ctx_events;
DROP FUNCTION st.ctx_refuse();
DROP SCHEMA st CASCADE;
DELETE FROM crm.status_history;
