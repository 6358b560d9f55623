-- status.sql: automatic statuses (docs/auto-status.md).
--
-- Rules live in tables, the logic in C triggers (src/status_*.c, see src/status.h) that
-- crm.attach_auto_status() wires to the user's own entity and event tables.
-- Every status change (by a rule or by a person) is written once to
-- crm.status_history; crm.apply_time_rules() is the idempotent sweep for time
-- rules.  All tables here are configuration or history: registered with
-- pg_extension_config_dump so pg_dump keeps them.

-- ---------------------------------------------------------------------------
-- Configuration tables
-- ---------------------------------------------------------------------------

CREATE SEQUENCE crm.status_attachment_id_seq;
CREATE TABLE crm.status_attachments (
    attachment_id       int PRIMARY KEY DEFAULT nextval('crm.status_attachment_id_seq'),
    entity_table        regclass NOT NULL UNIQUE,
    key_column          name NOT NULL,
    status_column       name NOT NULL,
    event_table         regclass,
    event_entity_column name,
    event_type_column   name,
    event_time_column   name,
    allow_backward      boolean NOT NULL DEFAULT false,
    max_depth           int NOT NULL DEFAULT 1 CHECK (max_depth BETWEEN 1 AND 16),
    attached_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((event_table IS NULL) = (event_entity_column IS NULL)
       AND (event_table IS NULL) = (event_type_column IS NULL)
       AND (event_table IS NULL) = (event_time_column IS NULL))
);
ALTER SEQUENCE crm.status_attachment_id_seq OWNED BY crm.status_attachments.attachment_id;
COMMENT ON TABLE crm.status_attachments IS
'One row per entity table with automatic statuses (made by crm.attach_auto_status): the key and status columns, the event table and its columns, and the settings allow_backward and max_depth (editable).';

CREATE TABLE crm.status_stages (
    entity_table regclass NOT NULL REFERENCES crm.status_attachments (entity_table)
                 ON UPDATE CASCADE ON DELETE CASCADE,
    status       text NOT NULL,
    position     int NOT NULL,
    PRIMARY KEY (entity_table, status),
    UNIQUE (entity_table, position)
);
COMMENT ON TABLE crm.status_stages IS
'The known statuses of each attached entity table, in pipeline order: a move to a higher position is forward.';

CREATE TABLE crm.status_transitions (
    entity_table regclass NOT NULL,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    allowed      boolean NOT NULL DEFAULT true,
    PRIMARY KEY (entity_table, from_status, to_status),
    FOREIGN KEY (entity_table, from_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE,
    FOREIGN KEY (entity_table, to_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE crm.status_transitions IS
'Explicit exceptions to the forward-only default: allowed = true permits a backward move, allowed = false forbids a forward one.';

CREATE SEQUENCE crm.status_rule_id_seq;
CREATE TABLE crm.status_event_rules (
    rule_id       bigint PRIMARY KEY DEFAULT nextval('crm.status_rule_id_seq'),
    entity_table  regclass NOT NULL,
    event_type    text NOT NULL,
    from_statuses text[],
    to_status     text NOT NULL,
    priority      int NOT NULL DEFAULT 0,
    enabled       boolean NOT NULL DEFAULT true,
    FOREIGN KEY (entity_table, to_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX status_event_rules_lookup ON crm.status_event_rules (entity_table, event_type);
COMMENT ON TABLE crm.status_event_rules IS
'Event rules: an event of event_type for an entity whose status is in from_statuses (NULL = any) moves it to to_status; of the rules that apply, the one with the highest priority (then lowest rule_id) fires, once per event.';

CREATE TABLE crm.status_time_rules (
    rule_id      bigint PRIMARY KEY DEFAULT nextval('crm.status_rule_id_seq'),
    entity_table regclass NOT NULL,
    from_status  text NOT NULL,
    idle_for     interval NOT NULL CHECK (idle_for > interval '0'),
    to_status    text NOT NULL CHECK (to_status <> from_status),
    priority     int NOT NULL DEFAULT 0,
    enabled      boolean NOT NULL DEFAULT true,
    FOREIGN KEY (entity_table, from_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE,
    FOREIGN KEY (entity_table, to_status) REFERENCES crm.status_stages (entity_table, status)
        ON UPDATE CASCADE ON DELETE CASCADE
);
ALTER SEQUENCE crm.status_rule_id_seq OWNED BY crm.status_event_rules.rule_id;
COMMENT ON TABLE crm.status_time_rules IS
'Time rules: an entity in from_status with no event and no status change for idle_for moves to to_status when crm.apply_time_rules() runs.';

CREATE SEQUENCE crm.status_history_id_seq;
CREATE TABLE crm.status_history (
    history_id   bigint PRIMARY KEY DEFAULT nextval('crm.status_history_id_seq'),
    entity_table regclass NOT NULL,
    entity_key   text NOT NULL,
    from_status  text,
    to_status    text,
    changed_at   timestamptz NOT NULL,
    rule_id      bigint,
    actor        text NOT NULL,
    db_user      text DEFAULT CURRENT_USER,
    db_session_user text DEFAULT SESSION_USER
);
ALTER SEQUENCE crm.status_history_id_seq OWNED BY crm.status_history.history_id;
CREATE INDEX status_history_entity ON crm.status_history (entity_table, entity_key, changed_at);
COMMENT ON TABLE crm.status_history IS
'One row per status change of an attached entity (and per inserted entity, from_status NULL): by a rule (actor = ''rule'', rule_id set) or by a person (actor = the crm.status_actor setting, a claim of the application, or else the database user); db_user and db_session_user are the database role that wrote the row and the session''s login role (NULL for rows written before 0.3.0).';
COMMENT ON COLUMN crm.status_history.db_user IS
'The database role that wrote the row (CURRENT_USER): the role making a manual change, the role inserting the event for an event rule, the role calling crm.apply_time_rules() for a time rule. Grant writers INSERT on the other columns only, so that it cannot be set by hand.';
COMMENT ON COLUMN crm.status_history.db_session_user IS
'The login role of the session that wrote the row (SESSION_USER); see db_user.';

SELECT pg_catalog.pg_extension_config_dump('crm.status_attachments', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_attachment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_stages', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_transitions', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_event_rules', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_time_rules', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_history', '');
SELECT pg_catalog.pg_extension_config_dump('crm.status_history_id_seq', '');

-- Rules are checked when written, so a rule naming an unknown status or an
-- entity table without automatic status is a clear error (the foreign keys
-- stay as a backstop and make pg_dump restore the stages first).
CREATE FUNCTION crm._status_rule_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s text;
    statuses text[];
BEGIN
    IF NEW.entity_table IS NULL THEN
        RAISE EXCEPTION 'entity_table must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM crm.status_attachments a WHERE a.entity_table = NEW.entity_table) THEN
        RAISE EXCEPTION 'table % has no automatic status attached', NEW.entity_table
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Call crm.attach_auto_status() for the table first.';
    END IF;
    IF TG_TABLE_NAME = 'status_event_rules' THEN
        IF NEW.event_type IS NULL THEN
            RAISE EXCEPTION 'event_type must not be null' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF NEW.from_statuses IS NOT NULL AND array_position(NEW.from_statuses, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'from_statuses must not contain nulls'
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'Use from_statuses = NULL for a rule that applies in any status.';
        END IF;
        statuses := coalesce(NEW.from_statuses, '{}') || ARRAY[NEW.to_status];
    ELSE
        statuses := ARRAY[NEW.from_status, NEW.to_status];
    END IF;
    FOREACH s IN ARRAY statuses LOOP
        IF s IS NULL THEN
            RAISE EXCEPTION 'rule statuses must not be null' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM crm.status_stages st
                        WHERE st.entity_table = NEW.entity_table AND st.status = s) THEN
            RAISE EXCEPTION 'status "%" is not a stage of %', s, NEW.entity_table
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Known stages: %s.',
                                      (SELECT string_agg(st.status, ', ' ORDER BY st.position)
                                         FROM crm.status_stages st WHERE st.entity_table = NEW.entity_table)),
                      HINT = 'Fix the status name or add the stage to crm.status_stages.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION crm._status_rule_check() IS
'Trigger on the rule tables: rejects rules for tables without automatic status and rules naming unknown statuses.';

CREATE TRIGGER status_event_rules_check BEFORE INSERT OR UPDATE ON crm.status_event_rules
    FOR EACH ROW EXECUTE FUNCTION crm._status_rule_check();
CREATE TRIGGER status_time_rules_check BEFORE INSERT OR UPDATE ON crm.status_time_rules
    FOR EACH ROW EXECUTE FUNCTION crm._status_rule_check();

-- ---------------------------------------------------------------------------
-- C functions
-- ---------------------------------------------------------------------------

-- The triggers keep the configuration in backend memory; a change to any
-- configuration table tells every backend to re-read it.
CREATE FUNCTION crm._status_config_changed() RETURNS trigger
LANGUAGE c
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'status_config_changed';
COMMENT ON FUNCTION crm._status_config_changed() IS
'Statement trigger on the automatic-status configuration tables: invalidates the configuration every backend caches.';
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_attachments
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_stages
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_event_rules
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();
CREATE TRIGGER status_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.status_time_rules
    FOR EACH STATEMENT EXECUTE FUNCTION crm._status_config_changed();

-- The two row triggers do not pin search_path with a SET clause: that would
-- cost two GUC changes per row.  Every name in the SQL they run is
-- schema-qualified, and they pin search_path in C for the catalog reads they
-- parse (src/pg_user_context.c, StatusPinSearchPath); the user's own triggers on the entity
-- table run with the user's search_path.
CREATE FUNCTION crm.status_event_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'status_event_trigger';
COMMENT ON FUNCTION crm.status_event_trigger() IS
'AFTER INSERT row trigger on an attached event table (installed by crm.attach_auto_status): locks the entity row and applies the best matching event rule, at most once per event.';

CREATE FUNCTION crm.status_entity_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'status_entity_trigger';
COMMENT ON FUNCTION crm.status_entity_trigger() IS
'AFTER INSERT / UPDATE OF status row trigger on an attached entity table (installed by crm.attach_auto_status): rejects disallowed manual transitions and writes one crm.status_history row per change.';

-- crm.apply_time_rules has no SET clause either: it pins search_path in C for
-- its own statements, and the statement that moves the rows of an attached
-- table runs as the table's owner (security-restricted) with the session's
-- search_path, so that the owner's triggers resolve names as they do for any
-- other write to the table (docs/security.md, section B).
CREATE FUNCTION crm.apply_time_rules(as_of timestamptz DEFAULT now()) RETURNS int
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'status_apply_time_rules';
COMMENT ON FUNCTION crm.apply_time_rules(timestamptz) IS
'The sweep for time rules: moves every entity that has been in a rule''s from_status with no event and no status change for idle_for before as_of; idempotent, skips rows locked by concurrent sessions (SKIP LOCKED); returns the number of changes. Tables the caller may not update are skipped with a WARNING; the rows of each table are moved as the table''s owner in a security-restricted operation, so the owner''s triggers never run with the caller''s rights.';

CREATE FUNCTION crm.status_transition_allowed(entity_table regclass, from_status text, to_status text)
RETURNS boolean
LANGUAGE c STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'status_transition_allowed';
COMMENT ON FUNCTION crm.status_transition_allowed(regclass, text, text) IS
'Whether a move from from_status to to_status is allowed for an attached table: an explicit crm.status_transitions row wins, else forward moves (higher position) are allowed, backward ones only with allow_backward; from NULL or an unknown status anything known is allowed.';

-- ---------------------------------------------------------------------------
-- Attach / detach (catalog glue)
-- ---------------------------------------------------------------------------

CREATE FUNCTION crm._status_column(tbl regclass, col name, what text) RETURNS pg_catalog.pg_attribute
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    att pg_attribute;
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO att FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', col, tbl
            USING ERRCODE = 'undefined_column',
                  HINT = format('Check %s: column names are case-sensitive identifiers.', what);
    END IF;
    RETURN att;
END
$$;
COMMENT ON FUNCTION crm._status_column(regclass, name, text) IS
'Internal: the catalog row of a column named in crm.attach_auto_status, or a clear error.';

CREATE FUNCTION crm._status_check_table(tbl regclass, what text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl
            USING ERRCODE = 'wrong_object_type',
                  HINT = format('%s must be an ordinary or partitioned table.', what);
    END IF;
END
$$;
COMMENT ON FUNCTION crm._status_check_table(regclass, text) IS
'Internal: checks that a relation named in crm.attach_auto_status is a table.';

CREATE FUNCTION crm.attach_auto_status(
    entity_table        regclass,
    key_column          name,
    status_column       name,
    statuses            text[],
    event_table         regclass DEFAULT NULL,
    event_entity_column name DEFAULT NULL,
    event_type_column   name DEFAULT NULL,
    event_time_column   name DEFAULT NULL,
    allow_backward      boolean DEFAULT false,
    max_depth           int DEFAULT 1,
    create_index        boolean DEFAULT true)
RETURNS int
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_att    pg_attribute;
    status_att pg_attribute;
    ev_ent_att pg_attribute;
    ev_type_att pg_attribute;
    ev_time_att pg_attribute;
    id         int;
    bad        text;
    idx_name   text;
BEGIN
    PERFORM crm._status_check_table(entity_table, 'entity_table');
    key_att := crm._status_column(entity_table, key_column, 'key_column');
    status_att := crm._status_column(entity_table, status_column, 'status_column');
    IF key_column = status_column THEN
        RAISE EXCEPTION 'key_column and status_column must differ' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = status_att.atttypid AND t.oid <> 'bpchar'::regtype
                      AND (t.typcategory = 'S' OR t.typtype = 'e')) THEN
        RAISE EXCEPTION 'status column "%" has type %, expected a text or enum type',
                        status_column, format_type(status_att.atttypid, status_att.atttypmod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = entity_table AND i.indisunique AND i.indisvalid
                      AND i.indnkeyatts = 1 AND i.indkey[0] = key_att.attnum
                      AND i.indpred IS NULL AND i.indexprs IS NULL) THEN
        RAISE EXCEPTION 'key column "%" of % is not unique', key_column, entity_table
            USING ERRCODE = 'invalid_column_reference',
                  HINT = 'Add a PRIMARY KEY or UNIQUE constraint on the key column.';
    END IF;
    IF statuses IS NULL OR cardinality(statuses) = 0 THEN
        RAISE EXCEPTION 'statuses must list at least one status' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass the pipeline in order, e.g. ARRAY[''new'', ''contacted'', ''won''].';
    END IF;
    IF array_position(statuses, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'statuses must not contain nulls' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT count(DISTINCT s) FROM unnest(statuses) s) <> cardinality(statuses) THEN
        RAISE EXCEPTION 'statuses must not contain duplicates' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_depth IS NULL OR max_depth NOT BETWEEN 1 AND 16 THEN
        RAISE EXCEPTION 'max_depth must be between 1 and 16' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM crm.status_attachments a WHERE a.entity_table = attach_auto_status.entity_table) THEN
        RAISE EXCEPTION 'table % already has automatic status attached', entity_table
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Call crm.detach_auto_status() first to attach it again.';
    END IF;
    EXECUTE format('SELECT string_agg(DISTINCT %1$I::text, '', '') FROM %2$s WHERE %1$I IS NOT NULL AND NOT (%1$I::text = ANY ($1))',
                   status_column, entity_table)
       INTO bad USING statuses;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'table % holds statuses that are not in statuses: %', entity_table, left(bad, 200)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'List every status the table uses in statuses, in pipeline order.';
    END IF;

    IF event_table IS NOT NULL OR event_entity_column IS NOT NULL
       OR event_type_column IS NOT NULL OR event_time_column IS NOT NULL THEN
        PERFORM crm._status_check_table(event_table, 'event_table');
        IF event_table = entity_table THEN
            RAISE EXCEPTION 'event_table must differ from entity_table' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        ev_ent_att := crm._status_column(event_table, event_entity_column, 'event_entity_column');
        ev_type_att := crm._status_column(event_table, event_type_column, 'event_type_column');
        ev_time_att := crm._status_column(event_table, event_time_column, 'event_time_column');
        IF NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = ev_type_att.atttypid
                          AND (t.typcategory = 'S' OR t.typtype = 'e')) THEN
            RAISE EXCEPTION 'event type column "%" has type %, expected a text or enum type',
                            event_type_column, format_type(ev_type_att.atttypid, ev_type_att.atttypmod)
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF ev_time_att.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
            RAISE EXCEPTION 'event time column "%" has type %, expected timestamptz, timestamp or date',
                            event_time_column, format_type(ev_time_att.atttypid, ev_time_att.atttypmod)
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        BEGIN
            EXECUTE format('SELECT 1 FROM %s e JOIN %s v ON v.%I = e.%I LIMIT 0',
                           entity_table, event_table, event_entity_column, key_column);
        EXCEPTION WHEN undefined_function THEN
            RAISE EXCEPTION 'event entity column "%" (%) cannot be compared with key column "%" (%)',
                            event_entity_column, format_type(ev_ent_att.atttypid, NULL),
                            key_column, format_type(key_att.atttypid, NULL)
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'The event table must reference the entity by a column of the key''s type.';
        END;
    END IF;

    INSERT INTO crm.status_attachments (entity_table, key_column, status_column, event_table,
                                        event_entity_column, event_type_column, event_time_column,
                                        allow_backward, max_depth)
    VALUES (entity_table, key_column, status_column, event_table,
            event_entity_column, event_type_column, event_time_column,
            coalesce(allow_backward, false), max_depth)
    RETURNING attachment_id INTO id;
    INSERT INTO crm.status_stages (entity_table, status, position)
    SELECT attach_auto_status.entity_table, s, n FROM unnest(statuses) WITH ORDINALITY u(s, n);

    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW WHEN (NEW.%I IS NOT NULL) '
                   'EXECUTE FUNCTION crm.status_entity_trigger(%L)',
                   'crm_auto_status_' || id || '_insert', entity_table, status_column, id);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION crm.status_entity_trigger(%L)',
                   'crm_auto_status_' || id || '_update', status_column, entity_table,
                   status_column, status_column, id);
    IF event_table IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION crm.status_event_trigger(%L)',
                       'crm_auto_status_' || id || '_event', event_table, id);
        -- the sweep looks up "any event of this entity since t": index (entity, time)
        IF coalesce(create_index, true) AND NOT EXISTS (
               SELECT 1 FROM pg_index i
                WHERE i.indrelid = event_table AND i.indkey[0] = ev_ent_att.attnum
                  AND i.indnkeyatts >= 2 AND i.indkey[1] = ev_time_att.attnum AND i.indpred IS NULL) THEN
            EXECUTE format('CREATE INDEX ON %s (%I, %I)', event_table, event_entity_column, event_time_column);
            SELECT c.relname INTO idx_name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = event_table AND i.indkey[0] = ev_ent_att.attnum
               AND i.indkey[1] = ev_time_att.attnum ORDER BY i.indexrelid DESC LIMIT 1;
            RAISE NOTICE 'created index % on %', idx_name, event_table;
        END IF;
    END IF;
    RETURN id;
END
$$;
COMMENT ON FUNCTION crm.attach_auto_status(regclass, name, name, text[], regclass, name, name, name, boolean, int, boolean) IS
'Attaches automatic statuses to the user''s entity table (unique key column, text or enum status column; statuses = the known statuses in pipeline order) and optionally its event table (entity reference, event type, event time): installs the C triggers, creates the (entity, time) index on the event table unless one exists; returns the attachment id.';

CREATE FUNCTION crm.detach_auto_status(entity_table regclass, keep_history boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    att crm.status_attachments;
    trg record;
BEGIN
    IF entity_table IS NULL THEN
        RAISE EXCEPTION 'entity_table must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO att FROM crm.status_attachments a WHERE a.entity_table = detach_auto_status.entity_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no automatic status attached', entity_table
            USING ERRCODE = 'undefined_object';
    END IF;
    FOR trg IN
        SELECT t.tgname, t.tgrelid::regclass AS rel FROM pg_trigger t
         WHERE t.tgrelid IN (att.entity_table, att.event_table)
           AND t.tgfoid IN ('crm.status_entity_trigger()'::regprocedure, 'crm.status_event_trigger()'::regprocedure)
           AND t.tgname LIKE 'crm\_auto\_status\_' || att.attachment_id || '\_%'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trg.tgname, trg.rel);
    END LOOP;
    DELETE FROM crm.status_attachments a WHERE a.attachment_id = att.attachment_id;
    IF NOT coalesce(keep_history, true) THEN
        DELETE FROM crm.status_history h WHERE h.entity_table = att.entity_table;
    END IF;
END
$$;
COMMENT ON FUNCTION crm.detach_auto_status(regclass, boolean) IS
'Removes the automatic-status triggers from the entity and event tables and deletes the attachment with its stages, transitions and rules; the user''s tables and data stay as they are; the history is kept unless keep_history is false.';

-- ---------------------------------------------------------------------------
-- Reports from the history
-- ---------------------------------------------------------------------------

CREATE VIEW crm.status_stage_times WITH (security_invoker = true) AS
SELECT h.entity_table,
       h.entity_key,
       h.to_status                                  AS status,
       h.changed_at                                 AS entered_at,
       lead(h.changed_at) OVER w                    AS left_at,
       lead(h.to_status) OVER w                     AS next_status,
       lead(h.changed_at) OVER w - h.changed_at     AS time_in_stage
  FROM crm.status_history h
WINDOW w AS (PARTITION BY h.entity_table, h.entity_key ORDER BY h.history_id);
COMMENT ON VIEW crm.status_stage_times IS
'One row per stay of an entity in a status, from crm.status_history: entered_at, left_at and time_in_stage (NULL while the entity is still in it), next_status.';

CREATE FUNCTION crm.status_conversion(entity_table regclass)
RETURNS TABLE (stage_position int, status text, entered bigint, advanced bigint, conversion numeric,
               currently_in bigint, median_time_in_stage interval)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH st AS (
    SELECT s.status, s.position FROM crm.status_stages s WHERE s.entity_table = $1
), reach AS (
    SELECT h.entity_key, st.position, min(h.history_id) AS first_id, max(h.history_id) AS last_id
      FROM crm.status_history h JOIN st ON st.status = h.to_status
     WHERE h.entity_table = $1
     GROUP BY h.entity_key, st.position
), cur AS (
    SELECT DISTINCT ON (h.entity_key) h.entity_key, h.to_status
      FROM crm.status_history h WHERE h.entity_table = $1
     ORDER BY h.entity_key, h.history_id DESC
), times AS (
    SELECT t.status, percentile_cont(0.5) WITHIN GROUP (ORDER BY t.time_in_stage) AS med
      FROM crm.status_stage_times t
     WHERE t.entity_table = $1 AND t.time_in_stage IS NOT NULL
     GROUP BY t.status
)
SELECT x.position, x.status, x.entered, x.advanced,
       round(x.advanced::numeric / NULLIF(x.entered, 0), 4),
       x.currently_in, x.med
  FROM (SELECT st.position,
               st.status,
               (SELECT count(*) FROM reach r WHERE r.position = st.position) AS entered,
               (SELECT count(*) FROM reach r WHERE r.position = st.position
                   AND EXISTS (SELECT 1 FROM reach r2 WHERE r2.entity_key = r.entity_key
                                  AND r2.position > r.position AND r2.last_id > r.first_id)) AS advanced,
               (SELECT count(*) FROM cur WHERE cur.to_status = st.status) AS currently_in,
               (SELECT times.med FROM times WHERE times.status = st.status) AS med
          FROM st) x
 ORDER BY x.position
$$;
COMMENT ON FUNCTION crm.status_conversion(regclass) IS
'Stage conversion from crm.status_history for an attached table: per stage in pipeline order, entities that entered it, those that later reached a higher stage, the conversion share, entities currently in it, and the median completed time in stage.';
