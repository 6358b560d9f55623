-- status_triggers: the user's own triggers during rules and the sweep, and who is recorded.
--   * status changes made by user triggers while an event rule or the sweep
--     runs are checked (allowed transitions) and recorded as manual changes,
--     not as the rule's, and not lost;
--   * the sweep runs an attached table's statement as the table's owner, in a
--     security-restricted operation: a non-superuser owner's trigger cannot
--     use the rights of a superuser running the sweep (pg_cron), nor leave a
--     deferred trigger or a setting behind for it;
--   * a caller without rights on an attached table does not move its rows;
--   * user triggers run with the session's search_path, not pg_catalog only;
--   * history rows carry the database user and the session user beside the
--     claimed actor (crm.status_actor).
-- Expected values are worked out by hand from the statements here.
BEGIN;
SELECT plan(33);

-- ===========================================================================
-- Part 1: user triggers that change statuses during rules and the sweep
-- ===========================================================================
CREATE SCHEMA tap_st2;
CREATE TABLE tap_st2.leads (id int PRIMARY KEY, status text);
INSERT INTO tap_st2.leads VALUES (1, 'new'), (2, 'new'), (3, 'new'), (4, 'new'), (5, 'won'), (6, 'new'),
                                 (7, 'contacted'), (8, 'contacted');
CREATE TABLE tap_st2.events (id int, kind text, at timestamptz DEFAULT now());
SELECT crm.attach_auto_status('tap_st2.leads', 'id', 'status', ARRAY['new', 'contacted', 'replied', 'won', 'lost'],
                              'tap_st2.events', 'id', 'kind', 'at');
INSERT INTO crm.status_event_rules (entity_table, event_type, from_statuses, to_status)
VALUES ('tap_st2.leads', 'call', '{new}', 'contacted');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
VALUES ('tap_st2.leads', 'contacted', '30 days', 'lost');
CREATE TABLE tap_st2.rule_ids AS
SELECT (SELECT rule_id FROM crm.status_event_rules WHERE entity_table = 'tap_st2.leads'::regclass) AS call_rule,
       (SELECT rule_id FROM crm.status_time_rules WHERE entity_table = 'tap_st2.leads'::regclass) AS time_rule;

-- the user's triggers (unqualified table names: resolved through the session's search_path)
CREATE FUNCTION tap_st2.after_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 1 AND NEW.status = 'contacted' THEN
        UPDATE leads SET status = 'won' WHERE id = 2;        -- forward: allowed
    ELSIF NEW.id = 3 AND NEW.status = 'contacted' THEN
        UPDATE leads SET status = 'new' WHERE id = 5;        -- won -> new: backward, not allowed
    ELSIF NEW.id = 1 AND NEW.status = 'lost' THEN
        UPDATE leads SET status = 'replied' WHERE id = 6;    -- during the sweep: forward
    ELSIF NEW.id = 8 AND NEW.status = 'lost' THEN
        UPDATE leads SET status = 'new' WHERE id = 2;        -- during the sweep: won -> new, not allowed
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER after_change AFTER UPDATE OF status ON tap_st2.leads FOR EACH ROW EXECUTE FUNCTION tap_st2.after_change();
CREATE FUNCTION tap_st2.before_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 4 AND NEW.status = 'contacted' THEN
        NEW.status := 'replied';                             -- overrides the event rule's target
    ELSIF NEW.id = 7 AND NEW.status = 'lost' THEN
        NEW.status := 'won';                                 -- overrides the time rule's target
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER before_change BEFORE UPDATE OF status ON tap_st2.leads FOR EACH ROW EXECUTE FUNCTION tap_st2.before_change();
SET LOCAL search_path = tap_st2, public;
SET LOCAL crm.status_actor = 'trigger-test';

CREATE FUNCTION pg_temp.hist(k text) RETURNS text LANGUAGE sql AS $$
SELECT string_agg(format('%s>%s %s %s', coalesce(h.from_status, '-'), h.to_status,
                         CASE h.rule_id WHEN r.call_rule THEN 'call' WHEN r.time_rule THEN 'time' ELSE coalesce(h.rule_id::text, 'manual') END,
                         h.actor), '; ' ORDER BY h.history_id)
  FROM crm.status_history h, tap_st2.rule_ids r
 WHERE h.entity_table = 'tap_st2.leads'::regclass AND h.entity_key = k
$$;

-- 1-3: an event rule moves lead 1; the user's trigger then moves lead 2
SELECT lives_ok($$INSERT INTO tap_st2.events (id, kind) VALUES (1, 'call')$$, 'event for lead 1');
SELECT is(pg_temp.hist('1'), 'new>contacted call rule', 'lead 1: the rule''s change, attributed to the rule');
SELECT is(pg_temp.hist('2'), 'new>won manual trigger-test',
          'lead 2, moved by the user''s trigger during the rule: a manual change, not the rule''s');
-- 4-5: a BEFORE trigger overrides the rule's target
SELECT lives_ok($$INSERT INTO tap_st2.events (id, kind) VALUES (4, 'call')$$, 'event for lead 4');
SELECT is(pg_temp.hist('4'), 'new>replied manual trigger-test',
          'lead 4: the status a BEFORE trigger chose instead of the rule''s is recorded as a manual change');
-- 6-7: a user trigger's backward move during a rule is rejected like any manual one
SELECT throws_ok($$INSERT INTO tap_st2.events (id, kind) VALUES (3, 'call')$$, '23514', NULL,
                 'a backward move by the user''s trigger during a rule is rejected (23514)');
SELECT is((SELECT status FROM tap_st2.leads WHERE id = 5), 'won', 'lead 5 stays won');

-- 8-12: the sweep (leads 1, 7 and 8 are contacted and idle 31 days from now)
SELECT throws_ok($$SELECT crm.apply_time_rules(now() + interval '31 days')$$, '23514', NULL,
                 'a backward move by the user''s trigger during the sweep is rejected (23514)');
UPDATE tap_st2.leads SET status = 'replied' WHERE id = 8;
SELECT lives_ok($$SELECT crm.apply_time_rules(now() + interval '31 days')$$, 'the sweep runs the user''s triggers');
SELECT is(pg_temp.hist('1'), 'new>contacted call rule; contacted>lost time rule', 'lead 1: swept by the time rule');
SELECT is(pg_temp.hist('6'), 'new>replied manual trigger-test',
          'lead 6, moved by the user''s trigger during the sweep: recorded, as a manual change');
SELECT is(pg_temp.hist('7'), 'contacted>won manual trigger-test',
          'lead 7: the status a BEFORE trigger chose during the sweep is recorded as a manual change');
SELECT is((SELECT string_agg(id || '=' || status, ',' ORDER BY id) FROM tap_st2.leads),
          '1=lost,2=won,3=new,4=replied,5=won,6=replied,7=won,8=replied', 'final statuses');
RESET crm.status_actor;

-- ===========================================================================
-- Part 2: the sweep and the owner of an attached table
-- ===========================================================================
SELECT crm.detach_auto_status('tap_st2.leads');
CREATE ROLE tap_st_owner;
CREATE ROLE tap_st_other;
GRANT USAGE ON SCHEMA crm TO tap_st_owner, tap_st_other;
GRANT SELECT ON crm.status_attachments, crm.status_stages, crm.status_transitions,
                crm.status_event_rules, crm.status_time_rules TO tap_st_owner, tap_st_other;
GRANT SELECT, INSERT ON crm.status_history TO tap_st_owner;
GRANT USAGE ON SEQUENCE crm.status_history_id_seq TO tap_st_owner;
CREATE SCHEMA tap_st AUTHORIZATION tap_st_owner;

SET ROLE tap_st_owner;
CREATE TABLE tap_st.deals (id int PRIMARY KEY, status text);
INSERT INTO tap_st.deals SELECT g, 'proposal' FROM generate_series(1, 5) g;
CREATE TABLE tap_st.deal_events (id int, kind text, at timestamptz);
-- what the owner's trigger saw: its role, whether that role is a superuser, its search_path
CREATE TABLE tap_st.seen (n serial, who text, super boolean, path text);
-- a hostile trigger: records its identity, tries to make its owner superuser and
-- to change the caller's search_path for the rest of the session
CREATE FUNCTION tap_st.grab() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tap_st.seen (who, super, path) SELECT current_user, r.rolsuper, current_setting('search_path')
      FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
    BEGIN
        EXECUTE 'ALTER ROLE tap_st_owner SUPERUSER';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    PERFORM pg_catalog.set_config('search_path', 'tap_st, public, pg_temp', false);
    RETURN NULL;
END $$;
CREATE TRIGGER grab AFTER UPDATE ON tap_st.deals FOR EACH ROW EXECUTE FUNCTION tap_st.grab();
RESET ROLE;
SELECT crm.attach_auto_status('tap_st.deals', 'id', 'status', ARRAY['proposal', 'won', 'lost'],
                              'tap_st.deal_events', 'id', 'kind', 'at');
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
VALUES ('tap_st.deals', 'proposal', '30 days', 'lost');

-- 13-14: a caller without rights on the table (the WARNING is checked in sql/status.sql)
SET ROLE tap_st_other;
SET LOCAL client_min_messages = error;
SELECT lives_ok($$SELECT crm.apply_time_rules(now() + interval '31 days')$$,
                'the sweep of a caller without rights on an attached table does not fail');
RESET client_min_messages;
RESET ROLE;
SELECT is((SELECT count(*) FROM tap_st.deals WHERE status = 'proposal'), 5::bigint,
          'a caller without rights on the table moves none of its rows');

-- 15-22: a superuser runs the sweep (the pg_cron case); the owner needs no
-- rights on schema crm for it
REVOKE USAGE ON SCHEMA crm FROM tap_st_owner;
SET LOCAL search_path = tap_st, public;
SELECT lives_ok($$SELECT crm.apply_time_rules(now() + interval '31 days')$$, 'the superuser runs the sweep');
SELECT is((SELECT count(*) FROM tap_st.deals WHERE status = 'lost'), 5::bigint, 'the 5 idle deals are lost');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'tap_st_owner'), false,
          'the owner''s trigger did not make its owner superuser');
SELECT is((SELECT array_agg(DISTINCT who) FROM tap_st.seen), ARRAY['tap_st_owner'],
          'the owner''s trigger ran as the table owner, not as the superuser');
SELECT is((SELECT count(*) FROM tap_st.seen WHERE NOT super), 5::bigint,
          'the trigger ran 5 times, never with superuser rights');
SELECT is((SELECT path FROM tap_st.seen ORDER BY n LIMIT 1), 'tap_st, public',
          'the trigger ran with the session''s search_path');
SELECT is(current_setting('search_path'), 'tap_st, public',
          'a setting changed by the owner''s trigger does not outlive the sweep');
SELECT is((SELECT array_agg(DISTINCT format('%s/%s/%s', actor, db_user, db_session_user))
             FROM crm.status_history WHERE entity_table = 'tap_st.deals'::regclass),
          ARRAY[format('rule/%s/%s', current_user, session_user)],
          'sweep history rows: actor rule, db_user and db_session_user those of the caller');

-- 23-25: a deferred trigger of the owner cannot postpone its code to the caller's commit
GRANT USAGE ON SCHEMA crm TO tap_st_owner;
SET ROLE tap_st_owner;
CREATE CONSTRAINT TRIGGER grab_later AFTER UPDATE ON tap_st.deals DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tap_st.grab();
INSERT INTO tap_st.deals VALUES (6, 'proposal');
RESET ROLE;
SELECT throws_ok($$SELECT crm.apply_time_rules(now() + interval '31 days')$$, '42501', NULL,
                 'an owner''s deferred trigger is refused while the sweep runs as the owner');
SET CONSTRAINTS ALL IMMEDIATE;
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'tap_st_owner'), false, 'the owner is still not a superuser');
SELECT is((SELECT count(*) FROM tap_st.seen WHERE who <> 'tap_st_owner' OR super), 0::bigint,
          'no trigger of the owner ran as another role');
DROP TRIGGER grab_later ON tap_st.deals;
DROP TRIGGER grab ON tap_st.deals;

-- 26-27: the least-privilege sweeper role of docs/security.md
CREATE ROLE tap_st_sweeper;
GRANT USAGE ON SCHEMA crm TO tap_st_sweeper;
GRANT SELECT ON crm.status_attachments, crm.status_stages, crm.status_transitions,
                crm.status_event_rules, crm.status_time_rules, crm.status_history TO tap_st_sweeper;
GRANT INSERT (entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor)
   ON crm.status_history TO tap_st_sweeper;
GRANT USAGE ON SEQUENCE crm.status_history_id_seq TO tap_st_sweeper;
GRANT USAGE ON SCHEMA tap_st TO tap_st_sweeper;
GRANT SELECT, UPDATE ON tap_st.deals TO tap_st_sweeper;
GRANT SELECT ON tap_st.deal_events TO tap_st_sweeper;
SET ROLE tap_st_sweeper;
SELECT is(crm.apply_time_rules(now() + interval '31 days'), 1, 'a role with the grants documented for the sweep runs it');
RESET ROLE;
SELECT is((SELECT format('%s %s', d.status, h.db_user) FROM tap_st.deals d
             JOIN crm.status_history h ON h.entity_table = 'tap_st.deals'::regclass AND h.entity_key = d.id::text
            WHERE d.id = 6 ORDER BY h.history_id DESC LIMIT 1),
          'lost tap_st_sweeper', 'the sweeper moved deal 6, its history row names the sweeper role');

-- ===========================================================================
-- Part 3: the claimed actor and the real users in the history
-- ===========================================================================
CREATE ROLE tap_st_writer;
GRANT USAGE ON SCHEMA crm, tap_st TO tap_st_writer;
GRANT SELECT ON crm.status_attachments, crm.status_stages, crm.status_transitions,
                crm.status_event_rules, crm.status_time_rules TO tap_st_writer;
GRANT INSERT (entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) ON crm.status_history TO tap_st_writer;
GRANT USAGE ON SEQUENCE crm.status_history_id_seq TO tap_st_writer;
GRANT SELECT, UPDATE ON tap_st.deals TO tap_st_writer;
GRANT INSERT ON tap_st.seen TO tap_st_writer;
-- 28-30
INSERT INTO tap_st.deals VALUES (7, 'proposal');
SET ROLE tap_st_writer;
SET LOCAL crm.status_actor = 'maria@sales';
SELECT lives_ok($$UPDATE tap_st.deals SET status = 'won' WHERE id = 7$$, 'a manual change by an application role');
RESET crm.status_actor;
SELECT throws_ok($$INSERT INTO crm.status_history (entity_table, entity_key, to_status, changed_at, actor, db_user)
                   VALUES ('tap_st.deals', '1', 'won', now(), 'ceo', 'postgres')$$, '42501', NULL,
                 'with column grants a writer cannot forge db_user');
RESET ROLE;
SELECT is((SELECT format('%s/%s/%s', actor, db_user, db_session_user) FROM crm.status_history
            WHERE entity_table = 'tap_st.deals'::regclass AND entity_key = '7' ORDER BY history_id DESC LIMIT 1),
          format('maria@sales/tap_st_writer/%s', session_user),
          'the history keeps the claimed actor and the real database user and session user');
-- 31-32: catalog
SELECT col_default_is('crm', 'status_history', 'db_user', 'CURRENT_USER', 'db_user defaults to CURRENT_USER');
SELECT col_default_is('crm', 'status_history', 'db_session_user', 'SESSION_USER', 'db_session_user defaults to SESSION_USER');

SELECT * FROM finish();
ROLLBACK;
