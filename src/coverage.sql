-- coverage.sql: contact coverage per customer class and lead first-response SLA
-- (docs/coverage.md).  The engine is C: the triggers in src/coverage.c,
-- src/coverage_change.c, src/coverage_settings.c and src/pg_heap_update.c (see
-- src/coverage.h), the median interval aggregate in src/median_interval.c;
-- this file holds the tables, the catalog glue and the report functions.

-- ---------------------------------------------------------------------------
-- crm.median_interval(ts): a customer's median interval between purchases
-- ---------------------------------------------------------------------------
CREATE TYPE crm.median_interval_state;

CREATE FUNCTION crm.median_interval_state_in(cstring) RETURNS crm.median_interval_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_state_in';
COMMENT ON FUNCTION crm.median_interval_state_in(cstring) IS
'Input function of crm.median_interval_state: "count:v1,v2,..." (timestamps in microseconds since 2000-01-01 UTC).';

CREATE FUNCTION crm.median_interval_state_out(crm.median_interval_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_state_out';
COMMENT ON FUNCTION crm.median_interval_state_out(crm.median_interval_state) IS
'Output function of crm.median_interval_state: "count:v1,v2,...", exact (round-trips through the input function).';

CREATE TYPE crm.median_interval_state (
    INPUT = crm.median_interval_state_in,
    OUTPUT = crm.median_interval_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.median_interval_state IS
'Partial state of crm.median_interval: the purchase timestamps seen so far.';

CREATE FUNCTION crm.median_interval_transfn(crm.median_interval_state, timestamptz)
RETURNS crm.median_interval_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_transfn';
COMMENT ON FUNCTION crm.median_interval_transfn(crm.median_interval_state, timestamptz) IS
'Transition function of crm.median_interval: appends the timestamp in place (NULL and infinite timestamps are skipped).';

CREATE FUNCTION crm.median_interval_combinefn(crm.median_interval_state, crm.median_interval_state)
RETURNS crm.median_interval_state
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_combinefn';
COMMENT ON FUNCTION crm.median_interval_combinefn(crm.median_interval_state, crm.median_interval_state) IS
'Combine function of crm.median_interval: appends the timestamps of the second state to the first.';

CREATE FUNCTION crm.median_interval_finalfn(crm.median_interval_state) RETURNS interval
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'coverage_median_finalfn';
COMMENT ON FUNCTION crm.median_interval_finalfn(crm.median_interval_state) IS
'Final function of crm.median_interval: the median gap between consecutive distinct timestamps.';

CREATE AGGREGATE crm.median_interval(timestamptz) (
    SFUNC = crm.median_interval_transfn,
    STYPE = crm.median_interval_state,
    FINALFUNC = crm.median_interval_finalfn,
    COMBINEFUNC = crm.median_interval_combinefn,
    SSPACE = 256,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.median_interval(timestamptz) IS
'A customer''s purchase cycle: the median interval between consecutive distinct purchase timestamps (mean of the two middle gaps when their number is even); NULL with fewer than two distinct purchases.';

-- ---------------------------------------------------------------------------
-- Policy, configuration and the coverage table
-- ---------------------------------------------------------------------------
CREATE TABLE crm.coverage_policy (
    class        text PRIMARY KEY,
    max_interval interval NOT NULL,
    due_soon     interval NOT NULL DEFAULT interval '7 days',
    basis        text NOT NULL DEFAULT 'fixed',
    CONSTRAINT coverage_policy_class_not_empty CHECK (class <> ''),
    CONSTRAINT coverage_policy_interval_positive CHECK (max_interval > interval '0'),
    CONSTRAINT coverage_policy_due_soon_valid CHECK (due_soon >= interval '0' AND due_soon < max_interval),
    CONSTRAINT coverage_policy_basis_valid CHECK (basis IN ('fixed', 'purchase_cycle')),
    min_interval interval,
    CONSTRAINT coverage_policy_min_interval_valid CHECK (min_interval > interval '0')
);
COMMENT ON TABLE crm.coverage_policy IS
'Contact coverage policy per customer class: contact at least every max_interval; due soon within due_soon before the due date; basis = fixed (the expert approach) or purchase_cycle (the customer''s own median interval between purchases, clamped to [min_interval, max_interval]; max_interval when unknown).';
COMMENT ON COLUMN crm.coverage_policy.min_interval IS
'Lower bound of a purchase-cycle interval: a customer who buys more often is still contacted at most every min_interval.  NULL = no lower bound; max_interval wins over a larger min_interval.  Ignored by basis fixed.';

INSERT INTO crm.coverage_policy (class, max_interval, due_soon, basis, min_interval) VALUES
    ('A', interval '1 month',  interval '7 days',  'fixed', interval '14 days'),
    ('B', interval '3 months', interval '14 days', 'fixed', interval '1 month'),
    ('C', interval '6 months', interval '30 days', 'fixed', interval '2 months');

-- The contact interval of a customer: the one definition of how the expert
-- cadence and the purchase cycle combine.
CREATE FUNCTION crm._coverage_interval(basis text, purchase_cycle interval, min_interval interval, max_interval interval)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN basis = 'purchase_cycle' AND purchase_cycle IS NOT NULL
            THEN least(greatest(purchase_cycle, coalesce(min_interval, purchase_cycle)), max_interval)
            ELSE max_interval END
$$;
COMMENT ON FUNCTION crm._coverage_interval(text, interval, interval, interval) IS
'A customer''s contact interval: max_interval for basis fixed or an unknown purchase cycle; otherwise the purchase cycle clamped to [min_interval, max_interval] (no lower bound when min_interval is NULL; max_interval wins when min_interval is larger).';

CREATE TABLE crm.coverage_config (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    interactions       regclass NOT NULL,
    customer_column    name NOT NULL,
    time_column        name NOT NULL,
    kind_column        name,
    counted_kinds      text[],
    direction_column   name,
    counted_directions text[],
    automated_column   name,
    customers          regclass,
    customer_key_column name,
    class_column       name,
    manager_column     name,
    since_column       name,
    classes_sql        text,
    purchases_sql      text,
    unknown_customers  text NOT NULL,
    attached_at        timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE crm.coverage_config IS
'How crm.attach_coverage attached coverage tracking (one row): the interactions table and which interactions count, where classes, managers and purchase cycles come from.';

CREATE TABLE crm.coverage (
    customer_id      bigint PRIMARY KEY,
    class            text,          -- a class of crm.coverage_policy (checked when set) or NULL
    manager_id       bigint,
    customer_since   timestamptz,
    purchase_cycle   interval,
    contact_interval interval,
    due_soon         interval,
    last_contact     timestamptz,
    contacts         bigint NOT NULL DEFAULT 0,
    next_due         timestamptz
) WITH (fillfactor = 80);
COMMENT ON TABLE crm.coverage IS
'One row per customer, kept current by crm.coverage_trigger: class, manager, last counted contact, contacts counted, the interval that applies and the next due date (last contact, or customer since, plus the interval).';

SELECT pg_catalog.pg_extension_config_dump('crm.coverage_policy', '');
SELECT pg_catalog.pg_extension_config_dump('crm.coverage_config', '');
SELECT pg_catalog.pg_extension_config_dump('crm.coverage', '');

-- Policy rows are validated with clear errors, and an INSERT of an existing
-- class updates it: the default rows A, B, C exist after CREATE EXTENSION, so
-- this is what lets pg_dump's COPY of an edited policy table restore.
CREATE FUNCTION crm._coverage_policy_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT count(*) INTO n FROM crm.coverage c WHERE c.class = OLD.class;
        IF n > 0 THEN
            RAISE EXCEPTION 'coverage class "%" is still used by % customers', OLD.class, n
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'Reclassify them first (crm.coverage_set_classes or the class column and crm.coverage_rebuild()).';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.class IS NULL OR NEW.class = '' THEN
        RAISE EXCEPTION 'coverage class must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.max_interval IS NULL OR NEW.max_interval <= interval '0' THEN
        RAISE EXCEPTION 'max_interval of coverage class "%" must be positive, got %', NEW.class, NEW.max_interval
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use an interval such as ''1 month'' or ''90 days''.';
    END IF;
    IF NEW.due_soon IS NULL OR NEW.due_soon < interval '0' OR NEW.due_soon >= NEW.max_interval THEN
        RAISE EXCEPTION 'due_soon of coverage class "%" must be at least 0 and shorter than max_interval %, got %',
                        NEW.class, NEW.max_interval, NEW.due_soon
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.basis IS NULL OR NEW.basis NOT IN ('fixed', 'purchase_cycle') THEN
        RAISE EXCEPTION 'basis of coverage class "%" must be fixed or purchase_cycle, got %', NEW.class, NEW.basis
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.min_interval <= interval '0' THEN
        RAISE EXCEPTION 'min_interval of coverage class "%" must be positive, got %', NEW.class, NEW.min_interval
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NULL for no lower bound.';
    END IF;
    IF TG_OP = 'INSERT' AND EXISTS (SELECT 1 FROM crm.coverage_policy p WHERE p.class = NEW.class) THEN
        UPDATE crm.coverage_policy p
           SET max_interval = NEW.max_interval, due_soon = NEW.due_soon, basis = NEW.basis, min_interval = NEW.min_interval
         WHERE p.class = NEW.class;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.class <> OLD.class THEN
        UPDATE crm.coverage c SET class = NEW.class WHERE c.class = OLD.class;   -- a renamed class keeps its customers
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION crm._coverage_policy_check() IS
'Trigger on crm.coverage_policy: validates a row (positive interval, due-soon window, basis, purchase-cycle lower bound), turns an INSERT of an existing class into an update (so a dumped policy restores over the defaults), carries a renamed class over to its customers and refuses to delete a class still in use.';

CREATE TRIGGER coverage_policy_check BEFORE INSERT OR UPDATE OR DELETE ON crm.coverage_policy
FOR EACH ROW EXECUTE FUNCTION crm._coverage_policy_check();

-- Recompute every customer's interval, due-soon window and next due date
-- from the policy (after a policy edit, a class or purchase cycle refresh).
CREATE FUNCTION crm._coverage_apply_policy() RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    m bigint;
BEGIN
    UPDATE crm.coverage c
       SET contact_interval = crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval),
           due_soon = p.due_soon,
           next_due = coalesce(c.last_contact, c.customer_since)
                      + crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval)
      FROM crm.coverage_policy p
     WHERE p.class = c.class
       AND (c.contact_interval IS DISTINCT FROM crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval)
            OR c.due_soon IS DISTINCT FROM p.due_soon
            OR c.next_due IS DISTINCT FROM coalesce(c.last_contact, c.customer_since)
                                           + crm._coverage_interval(p.basis, c.purchase_cycle, p.min_interval, p.max_interval));
    GET DIAGNOSTICS n = ROW_COUNT;
    -- unclassified customers have no interval and no due date
    UPDATE crm.coverage c
       SET contact_interval = NULL, due_soon = NULL, next_due = NULL
     WHERE (c.class IS NULL OR NOT EXISTS (SELECT 1 FROM crm.coverage_policy p WHERE p.class = c.class))
       AND (c.contact_interval IS NOT NULL OR c.due_soon IS NOT NULL OR c.next_due IS NOT NULL);
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._coverage_apply_policy() IS
'Recomputes contact_interval, due_soon and next_due of every coverage row from crm.coverage_policy; returns the rows changed.';

CREATE FUNCTION crm._coverage_policy_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM crm._coverage_apply_policy();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION crm._coverage_policy_changed() IS
'Statement trigger on crm.coverage_policy: an edited policy applies to every customer at once.';

CREATE TRIGGER coverage_policy_changed AFTER INSERT OR UPDATE OR DELETE ON crm.coverage_policy
FOR EACH STATEMENT EXECUTE FUNCTION crm._coverage_policy_changed();

-- ---------------------------------------------------------------------------
-- The trigger and attaching it
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.coverage_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_trigger';
COMMENT ON FUNCTION crm.coverage_trigger() IS
'AFTER INSERT FOR EACH STATEMENT trigger (with a NEW TABLE transition table) that crm.attach_coverage installs on the interactions table: applies the counted interactions to crm.coverage per customer, never moving last_contact backwards.';

CREATE FUNCTION crm.coverage_change_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_change_trigger';
COMMENT ON FUNCTION crm.coverage_change_trigger() IS
'AFTER UPDATE / AFTER DELETE FOR EACH STATEMENT trigger (OLD TABLE, and NEW TABLE for UPDATE) that crm.attach_coverage installs on the interactions table: recomputes the crm.coverage rows of every customer whose counted interactions changed (old and new customer of an updated row, customer of a deleted row) from the interactions table, as crm.coverage_rebuild() would.';

CREATE FUNCTION crm.coverage_truncate_trigger() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'coverage_truncate_trigger';
COMMENT ON FUNCTION crm.coverage_truncate_trigger() IS
'AFTER TRUNCATE FOR EACH STATEMENT trigger that crm.attach_coverage installs on the interactions table: runs crm.coverage_rebuild() (no counted contact is left).';

-- type of column col of rel, or a clear error
CREATE FUNCTION crm._coverage_column_type(rel regclass, col name, what text) RETURNS regtype
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regtype;
BEGIN
    SELECT a.atttypid::regtype INTO t
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF t IS NULL THEN
        RAISE EXCEPTION '% column "%" does not exist in table %', what, col, rel
            USING ERRCODE = 'undefined_column',
                  HINT = format('Name the column with %s_column => ''...''%s.', what,
                                CASE WHEN what IN ('kind', 'direction', 'automated', 'manager', 'since', 'class')
                                     THEN format(', or pass %s_column => NULL', what) ELSE '' END);
    END IF;
    SELECT coalesce(NULLIF(typ.typbasetype, 0), typ.oid)::regtype INTO t FROM pg_type typ WHERE typ.oid = t;
    RETURN t;
END
$$;
COMMENT ON FUNCTION crm._coverage_column_type(regclass, name, text) IS
'Base type of a column of a table, or an error naming the missing column (used by crm.attach_coverage).';

CREATE FUNCTION crm._coverage_require_type(rel regclass, col name, what text, allowed regtype[], expected text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regtype := crm._coverage_column_type(rel, col, what);
BEGIN
    IF NOT t = ANY (allowed) THEN
        RAISE EXCEPTION '% column "%" of table % has type %, expected %', what, col, rel, t, expected
            USING ERRCODE = 'datatype_mismatch';
    END IF;
END
$$;
COMMENT ON FUNCTION crm._coverage_require_type(regclass, name, text, regtype[], text) IS
'Checks that a column exists and has one of the allowed types (used by crm.attach_coverage).';

-- the three triggers on the interactions table, with the configuration as arguments
CREATE FUNCTION crm._coverage_create_triggers(cfg crm.coverage_config) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := format('%L, %L, %L, %L, %L, %L, %L, %L',
                        cfg.customer_column, cfg.time_column,
                        coalesce(cfg.kind_column, ''), coalesce(cfg.counted_kinds::text, ''),
                        coalesce(cfg.direction_column, ''), coalesce(cfg.counted_directions::text, ''),
                        coalesce(cfg.automated_column, ''), cfg.unknown_customers);
BEGIN
    EXECUTE format('CREATE TRIGGER crm_coverage AFTER INSERT ON %s REFERENCING NEW TABLE AS crm_coverage_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS crm_coverage_old NEW TABLE AS crm_coverage_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_change_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS crm_coverage_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_change_trigger(%s)', cfg.interactions, args);
    EXECUTE format('CREATE TRIGGER crm_coverage_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION crm.coverage_truncate_trigger()', cfg.interactions);
END
$$;
COMMENT ON FUNCTION crm._coverage_create_triggers(crm.coverage_config) IS
'Creates the coverage triggers crm_coverage (INSERT), crm_coverage_update, crm_coverage_delete and crm_coverage_truncate on the configured interactions table (used by crm.attach_coverage).';

CREATE FUNCTION crm._coverage_drop_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t name;
BEGIN
    FOR t IN SELECT g.tgname FROM pg_trigger g
              WHERE g.tgrelid = rel AND g.tgname IN ('crm_coverage', 'crm_coverage_update', 'crm_coverage_delete', 'crm_coverage_truncate')
              ORDER BY 1 LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, rel);
    END LOOP;
END
$$;
COMMENT ON FUNCTION crm._coverage_drop_triggers(regclass) IS
'Drops whichever coverage triggers exist on a table (used by crm.attach_coverage and crm.detach_coverage).';

CREATE FUNCTION crm.attach_coverage(
    interactions       regclass,
    customers          regclass DEFAULT NULL,
    class_column       name DEFAULT NULL,
    customer_column    name DEFAULT 'customer_id',
    time_column        name DEFAULT 'occurred_at',
    kind_column        name DEFAULT 'kind',
    counted_kinds      text[] DEFAULT '{call,meeting,email}',
    direction_column   name DEFAULT 'direction',
    counted_directions text[] DEFAULT NULL,
    automated_column   name DEFAULT 'automated',
    manager_column     name DEFAULT 'manager_id',
    since_column       name DEFAULT 'created_at',
    unknown_customers  text DEFAULT 'insert',
    customer_key_column name DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ints constant regtype[] := ARRAY['smallint', 'integer', 'bigint']::regtype[];
    times constant regtype[] := ARRAY['timestamptz', 'timestamp', 'date']::regtype[];
    old crm.coverage_config;
    relkind "char";
BEGIN
    IF interactions IS NULL THEN
        RAISE EXCEPTION 'interactions table must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF customer_column IS NULL OR time_column IS NULL THEN
        RAISE EXCEPTION 'customer_column and time_column must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO old FROM crm.coverage_config;
    IF FOUND AND old.interactions <> interactions
       AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = old.interactions) THEN
        RAISE EXCEPTION 'coverage is already attached to %', old.interactions
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.detach_coverage() first.';
    END IF;
    SELECT c.relkind INTO relkind FROM pg_class c WHERE c.oid = interactions;
    IF relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', interactions
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Attach coverage to the table that interactions are inserted into.';
    END IF;
    IF unknown_customers IS NULL OR unknown_customers NOT IN ('insert', 'ignore', 'error') THEN
        RAISE EXCEPTION 'unknown_customers must be insert, ignore or error, got %', coalesce(unknown_customers, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF counted_kinds = '{}' OR counted_directions = '{}' THEN
        RAISE EXCEPTION 'counted_kinds and counted_directions must not be empty arrays'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL to count every kind or direction.';
    END IF;
    IF array_position(counted_kinds, NULL) IS NOT NULL OR array_position(counted_directions, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'counted_kinds and counted_directions must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    PERFORM crm._coverage_require_type(interactions, customer_column, 'customer', ints, 'smallint, integer or bigint');
    PERFORM crm._coverage_require_type(interactions, time_column, 'time', times, 'timestamptz, timestamp or date');
    IF kind_column IS NOT NULL THEN
        PERFORM crm._coverage_column_type(interactions, kind_column, 'kind');
    ELSIF counted_kinds IS NOT NULL THEN
        counted_kinds := NULL;
    END IF;
    IF direction_column IS NOT NULL THEN
        PERFORM crm._coverage_column_type(interactions, direction_column, 'direction');
    END IF;
    IF automated_column IS NOT NULL THEN
        PERFORM crm._coverage_require_type(interactions, automated_column, 'automated', ARRAY['boolean']::regtype[], 'boolean');
    END IF;
    IF customers IS NOT NULL THEN
        customer_key_column := coalesce(customer_key_column, customer_column);
        PERFORM crm._coverage_require_type(customers, customer_key_column, 'customer_key', ints, 'smallint, integer or bigint');
        IF class_column IS NOT NULL THEN
            PERFORM crm._coverage_column_type(customers, class_column, 'class');
        END IF;
        IF manager_column IS NOT NULL THEN
            PERFORM crm._coverage_require_type(customers, manager_column, 'manager', ints, 'smallint, integer or bigint');
        END IF;
        IF since_column IS NOT NULL THEN
            PERFORM crm._coverage_require_type(customers, since_column, 'since', times, 'timestamptz, timestamp or date');
        END IF;
    ELSIF class_column IS NOT NULL THEN
        RAISE EXCEPTION 'class_column needs the customers table'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass customers => ''my_customers'', or set classes later with crm.coverage_set_classes().';
    END IF;

    PERFORM crm._coverage_drop_triggers(interactions);
    DELETE FROM crm.coverage_config;
    INSERT INTO crm.coverage_config (interactions, customer_column, time_column, kind_column, counted_kinds,
                                     direction_column, counted_directions, automated_column, customers,
                                     customer_key_column, class_column, manager_column, since_column, unknown_customers)
    VALUES (interactions, customer_column, time_column, kind_column, counted_kinds,
            direction_column, CASE WHEN direction_column IS NULL THEN NULL ELSE counted_directions END,
            automated_column, customers, CASE WHEN customers IS NULL THEN NULL ELSE customer_key_column END,
            class_column, CASE WHEN customers IS NULL THEN NULL ELSE manager_column END,
            CASE WHEN customers IS NULL THEN NULL ELSE since_column END, unknown_customers);
    PERFORM crm._coverage_create_triggers(c) FROM crm.coverage_config c;
    RETURN crm.coverage_rebuild();
END
$$;
COMMENT ON FUNCTION crm.attach_coverage(regclass, regclass, name, name, name, name, text[], name, text[], name, name, name, text, name) IS
'Installs the coverage triggers on the interactions table (crm_coverage: crm.coverage_trigger after INSERT; crm_coverage_update and crm_coverage_delete: crm.coverage_change_trigger after UPDATE and DELETE), records the configuration and fills crm.coverage with crm.coverage_rebuild(); returns the number of customers tracked.';

CREATE FUNCTION crm.detach_coverage() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel regclass;
BEGIN
    SELECT interactions INTO rel FROM crm.coverage_config;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- the table may have been dropped since (then its triggers went with it)
    PERFORM crm._coverage_drop_triggers(rel);
    DELETE FROM crm.coverage_config;
    RETURN true;
END
$$;
COMMENT ON FUNCTION crm.detach_coverage() IS
'Drops the coverage triggers and the configuration; crm.coverage keeps its rows.  Returns false when nothing was attached.';

-- the WHERE clause that says which interaction rows count (same rule as the trigger)
CREATE FUNCTION crm._coverage_counted_filter(cfg crm.coverage_config, alias text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format('%1$s.%2$I IS NOT NULL AND %1$s.%3$I IS NOT NULL AND %1$s.%3$I::pg_catalog.timestamptz OPERATOR(pg_catalog.>) ''-infinity'' '
              'AND %1$s.%3$I::pg_catalog.timestamptz OPERATOR(pg_catalog.<) ''infinity''', alias,
              cfg.customer_column, cfg.time_column)
    || CASE WHEN cfg.kind_column IS NULL OR cfg.counted_kinds IS NULL THEN ''
            ELSE format(' AND %s.%I::pg_catalog.text OPERATOR(pg_catalog.=) ANY (%L::pg_catalog.text[])',
                        alias, cfg.kind_column, cfg.counted_kinds) END
    || CASE WHEN cfg.direction_column IS NULL OR cfg.counted_directions IS NULL THEN ''
            ELSE format(' AND %s.%I::pg_catalog.text OPERATOR(pg_catalog.=) ANY (%L::pg_catalog.text[])',
                        alias, cfg.direction_column, cfg.counted_directions) END
    || CASE WHEN cfg.automated_column IS NULL THEN ''
            ELSE format(' AND %s.%I IS NOT TRUE', alias, cfg.automated_column) END
$$;
COMMENT ON FUNCTION crm._coverage_counted_filter(crm.coverage_config, text) IS
'SQL condition selecting the interactions that count as contacts under the attached configuration (the rule crm.coverage_trigger applies).';

-- the statement crm.coverage_change_trigger runs: recompute the customers $1
CREATE FUNCTION crm._coverage_recompute_sql(cfg crm.coverage_config) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format(
    'WITH a AS ('
    '  SELECT k.k, s.last, s.n'
    '    FROM (SELECT DISTINCT u.k FROM pg_catalog.unnest($1::pg_catalog.int8[]) AS u(k)) k'
    '   CROSS JOIN LATERAL (SELECT pg_catalog.max(i.%2$I::pg_catalog.timestamptz) AS last, pg_catalog.count(*) AS n'
    '                         FROM %3$s i WHERE i.%1$I OPERATOR(pg_catalog.=) k.k AND %4$s) s),'
    ' upd AS (UPDATE crm.coverage c SET last_contact = a.last, contacts = a.n,'
    '                next_due = coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval'
    '           FROM a WHERE c.customer_id OPERATOR(pg_catalog.=) a.k'
    '            AND (a.n OPERATOR(pg_catalog.>) 0 OR %5$s)'
    -- "x IS DISTINCT FROM y" spelled with qualified functions (it would look up = in the path)
    '            AND (coalesce(NOT pg_catalog.timestamptz_eq(c.last_contact, a.last),'
    '                          (c.last_contact IS NULL) OPERATOR(pg_catalog.<>) (a.last IS NULL))'
    '                 OR coalesce(NOT pg_catalog.int8eq(c.contacts, a.n), (c.contacts IS NULL) OPERATOR(pg_catalog.<>) (a.n IS NULL))'
    '                 OR coalesce(NOT pg_catalog.timestamptz_eq(c.next_due, coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval),'
    '                             (c.next_due IS NULL) OPERATOR(pg_catalog.<>)'
    '                             (coalesce(a.last, c.customer_since) OPERATOR(pg_catalog.+) c.contact_interval IS NULL)))'
    '         RETURNING c.customer_id),'
    ' del AS (DELETE FROM crm.coverage c USING a WHERE c.customer_id OPERATOR(pg_catalog.=) a.k'
    '            AND a.n OPERATOR(pg_catalog.=) 0 AND NOT (%5$s) RETURNING c.customer_id)'
    '%6$s'
    ' SELECT pg_catalog.min(a.k) FROM a WHERE a.n OPERATOR(pg_catalog.>) 0'
    '    AND NOT EXISTS (SELECT 1 FROM crm.coverage c WHERE c.customer_id OPERATOR(pg_catalog.=) a.k)',
    cfg.customer_column, cfg.time_column, cfg.interactions, crm._coverage_counted_filter(cfg, 'i'),
    -- rows that crm.coverage_rebuild() keeps without any counted contact
    CASE WHEN cfg.customers IS NULL THEN 'c.class IS NOT NULL'
         ELSE format('c.class IS NOT NULL OR EXISTS (SELECT 1 FROM %s cu WHERE cu.%I OPERATOR(pg_catalog.=) c.customer_id)',
                     cfg.customers, cfg.customer_key_column) END,
    CASE WHEN cfg.unknown_customers = 'insert' THEN
        ', ins AS (INSERT INTO crm.coverage AS c (customer_id, last_contact, contacts)'
        '          SELECT a.k, a.last, a.n FROM a WHERE a.n OPERATOR(pg_catalog.>) 0'
        '             AND NOT EXISTS (SELECT 1 FROM crm.coverage c2 WHERE c2.customer_id OPERATOR(pg_catalog.=) a.k)'
        '          ON CONFLICT (customer_id) DO UPDATE'
        '             SET last_contact = GREATEST(c.last_contact, excluded.last_contact),'
        '                 contacts = c.contacts OPERATOR(pg_catalog.+) excluded.contacts,'
        '                 next_due = GREATEST(c.last_contact, excluded.last_contact) OPERATOR(pg_catalog.+) c.contact_interval'
        '          RETURNING c.customer_id)'
         ELSE '' END)
$$;
COMMENT ON FUNCTION crm._coverage_recompute_sql(crm.coverage_config) IS
'The statement crm.coverage_change_trigger runs for the customers $1 (int8[]): last contact, contacts and next due recomputed from the counted interactions as crm.coverage_rebuild() computes them; rows the rebuild would not keep (no counted contact left, not in the customers table, no class) are deleted, customers new to crm.coverage are added under unknown_customers = insert.  Returns the smallest customer with counted contacts and no coverage row.';

-- check that every class of a query is in the policy
CREATE FUNCTION crm._coverage_check_classes(classes_query text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    bad text;
BEGIN
    -- exactly one SELECT of one text column (callable directly: check it here too)
    PERFORM crm._check_inner_query('crm._coverage_check_classes', classes_query, ARRAY['class text']);
    EXECUTE pg_catalog.format('SELECT q.cls FROM (%s) AS q(cls) WHERE q.cls IS NOT NULL '
                   'AND NOT EXISTS (SELECT 1 FROM crm.coverage_policy p WHERE p.class OPERATOR(pg_catalog.=) q.cls) LIMIT 1',
                   classes_query) INTO bad;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown coverage class "%"', bad
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Every class must have a row in crm.coverage_policy.',
                  HINT = pg_catalog.format('Add it: INSERT INTO crm.coverage_policy (class, max_interval) VALUES (%L, ''2 months'').', bad);
    END IF;
END
$$;
COMMENT ON FUNCTION crm._coverage_check_classes(text) IS
'Raises a clear error when a one-column query of class names returns a class that crm.coverage_policy does not define.';

CREATE FUNCTION crm.coverage_rebuild() RETURNS bigint
LANGUAGE plpgsql
-- no SET search_path: the stored classes and purchases queries are the
-- caller's SQL; everything of ours below is qualified.
AS $$
DECLARE
    cfg crm.coverage_config;
    cust text;
    agg text;
    n bigint;
    missing bigint;
    example bigint;
BEGIN
    SELECT * INTO cfg FROM crm.coverage_config;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'coverage is not attached'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(''my_interactions'', ...) first.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) cfg.interactions)
       OR (cfg.customers IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) cfg.customers)) THEN
        RAISE EXCEPTION 'a table coverage was attached to no longer exists'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(...) again.';
    END IF;
    -- nothing is inserted while we rebuild, so no interaction is missed or counted twice
    EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE MODE', cfg.interactions);
    LOCK TABLE crm.coverage IN EXCLUSIVE MODE;

    IF cfg.customers IS NOT NULL AND cfg.class_column IS NOT NULL THEN
        PERFORM crm._coverage_check_classes(pg_catalog.format('SELECT %I::pg_catalog.text FROM %s',
                                                               cfg.class_column, cfg.customers));
    END IF;

    agg := pg_catalog.format('SELECT i.%1$I::pg_catalog.int8 AS k, pg_catalog.max(i.%2$I::pg_catalog.timestamptz) AS last, '
                             'pg_catalog.count(*) AS n FROM %3$s i WHERE %4$s GROUP BY 1',
                             cfg.customer_column, cfg.time_column, cfg.interactions,
                             crm._coverage_counted_filter(cfg, 'i'));
    IF cfg.customers IS NULL THEN
        cust := 'SELECT NULL::pg_catalog.int8 AS k, NULL::pg_catalog.text AS class, NULL::pg_catalog.int8 AS manager, '
                'NULL::pg_catalog.timestamptz AS since WHERE false';
    ELSE
        cust := pg_catalog.format('SELECT DISTINCT ON (1) c.%1$I::pg_catalog.int8 AS k, %2$s AS class, %3$s AS manager, %4$s AS since '
                                  'FROM %5$s c WHERE c.%1$I IS NOT NULL ORDER BY 1',
                                  cfg.customer_key_column,
                                  CASE WHEN cfg.class_column IS NULL THEN 'NULL::pg_catalog.text'
                                       ELSE pg_catalog.format('c.%I::pg_catalog.text', cfg.class_column) END,
                                  CASE WHEN cfg.manager_column IS NULL THEN 'NULL::pg_catalog.int8'
                                       ELSE pg_catalog.format('c.%I::pg_catalog.int8', cfg.manager_column) END,
                                  CASE WHEN cfg.since_column IS NULL THEN 'NULL::pg_catalog.timestamptz'
                                       ELSE pg_catalog.format('c.%I::pg_catalog.timestamptz', cfg.since_column) END,
                                  cfg.customers);
    END IF;

    IF cfg.unknown_customers OPERATOR(pg_catalog.=) 'error' THEN
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*), pg_catalog.min(a.k) FROM (%s) a '
                                  'WHERE NOT EXISTS (SELECT 1 FROM (%s) cu WHERE cu.k OPERATOR(pg_catalog.=) a.k)',
                                  agg, cust) INTO missing, example;
        IF missing OPERATOR(pg_catalog.>) 0::pg_catalog.int8 THEN
            RAISE EXCEPTION 'interactions name % customers that are not in the customers table, for example %', missing, example
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'Add them to the customers table, or attach with unknown_customers => ''insert'' or ''ignore''.';
        END IF;
    END IF;

    TRUNCATE crm.coverage;
    -- one pass: customers, their counted interactions and the interval of their class
    EXECUTE pg_catalog.format(
        'INSERT INTO crm.coverage (customer_id, class, manager_id, customer_since, last_contact, contacts, '
        '                          contact_interval, due_soon, next_due) '
        'SELECT coalesce(cu.k, a.k), cu.class, cu.manager, cu.since, a.last, coalesce(a.n, 0), '
        '       p.max_interval, p.due_soon, coalesce(a.last, cu.since) OPERATOR(pg_catalog.+) p.max_interval '
        'FROM (%s) cu %s JOIN (%s) a ON a.k OPERATOR(pg_catalog.=) cu.k '
        'LEFT JOIN crm.coverage_policy p ON p.class OPERATOR(pg_catalog.=) cu.class',
        cust, CASE WHEN cfg.unknown_customers OPERATOR(pg_catalog.=) 'insert' THEN 'FULL' ELSE 'LEFT' END, agg);
    GET DIAGNOSTICS n = ROW_COUNT;

    IF cfg.classes_sql IS NOT NULL THEN
        PERFORM crm._coverage_apply_classes(cfg.classes_sql);
    END IF;
    IF cfg.purchases_sql IS NOT NULL THEN
        PERFORM crm._coverage_apply_purchases(cfg.purchases_sql);
    END IF;
    IF cfg.classes_sql IS NOT NULL OR cfg.purchases_sql IS NOT NULL THEN
        PERFORM crm._coverage_apply_policy();
    END IF;
    SELECT pg_catalog.count(*) INTO n FROM crm.coverage;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.coverage_rebuild() IS
'Refills crm.coverage from the attached customers and interactions tables (and the stored class and purchase-cycle queries), for the initial load and for repair; blocks inserts into the interactions table meanwhile.  Returns the number of customers.';

-- classes from an inner query (customer, class): update, or add missing customers
CREATE FUNCTION crm._coverage_apply_classes(classes_sql text) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM crm._check_inner_query('crm.coverage_set_classes', classes_sql,
                                   ARRAY['customer integer', 'class text']);
    PERFORM crm._coverage_check_classes(pg_catalog.format('SELECT q.c::pg_catalog.text FROM (%s) AS q(k, c)', classes_sql));
    EXECUTE pg_catalog.format(
        'INSERT INTO crm.coverage AS cv (customer_id, class) '
        'SELECT DISTINCT ON (1) q.k::pg_catalog.int8, q.c::pg_catalog.text FROM (%s) AS q(k, c) WHERE q.k IS NOT NULL ORDER BY 1 '
        'ON CONFLICT (customer_id) DO UPDATE SET class = excluded.class '
        'WHERE coalesce(NOT pg_catalog.texteq(cv.class, excluded.class), (cv.class IS NULL) OPERATOR(pg_catalog.<>) (excluded.class IS NULL))',
        classes_sql);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._coverage_apply_classes(text) IS
'Applies a (customer, class) inner query to crm.coverage (used by crm.coverage_set_classes and crm.coverage_rebuild).';

CREATE FUNCTION crm.coverage_set_classes(classes_sql text) RETURNS bigint
LANGUAGE plpgsql
-- no SET search_path: runs the caller's inner query
AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.coverage_config) THEN
        RAISE EXCEPTION 'coverage is not attached'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(''my_interactions'', ...) first.';
    END IF;
    IF classes_sql IS NULL THEN
        UPDATE crm.coverage_config SET classes_sql = NULL;
        RETURN crm.coverage_rebuild();
    END IF;
    LOCK TABLE crm.coverage IN SHARE ROW EXCLUSIVE MODE;
    n := crm._coverage_apply_classes(classes_sql);
    UPDATE crm.coverage_config SET classes_sql = coverage_set_classes.classes_sql;
    PERFORM crm._coverage_apply_policy();
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.coverage_set_classes(text) IS
'Sets customer classes from an inner query (customer integer, class text), e.g. ABC or RFM classes; the query is stored and re-applied by crm.coverage_rebuild() (run this function again to refresh).  NULL goes back to the class column of the customers table.  Returns the customers whose class changed or who were added.';

-- purchase cycles from an inner query (customer, ts)
CREATE FUNCTION crm._coverage_apply_purchases(purchases_sql text) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM crm._check_inner_query('crm.coverage_set_purchase_cycles', purchases_sql,
                                   ARRAY['customer integer', 'ts timestamptz']);
    EXECUTE pg_catalog.format(
        'UPDATE crm.coverage cv SET purchase_cycle = p.cycle '
        'FROM (SELECT cv2.customer_id, x.cycle FROM crm.coverage cv2 LEFT JOIN '
        '        (SELECT q.k::pg_catalog.int8 AS k, crm.median_interval(q.t::pg_catalog.timestamptz) AS cycle '
        '           FROM (%s) AS q(k, t) GROUP BY 1) x ON x.k OPERATOR(pg_catalog.=) cv2.customer_id) p '
        'WHERE p.customer_id OPERATOR(pg_catalog.=) cv.customer_id '
        '  AND coalesce(NOT pg_catalog.interval_eq(cv.purchase_cycle, p.cycle), '
        '               (cv.purchase_cycle IS NULL) OPERATOR(pg_catalog.<>) (p.cycle IS NULL))',
        purchases_sql);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._coverage_apply_purchases(text) IS
'Applies a (customer, ts) purchases inner query to crm.coverage: purchase_cycle = crm.median_interval(ts) per customer.';

CREATE FUNCTION crm.coverage_set_purchase_cycles(purchases_sql text) RETURNS bigint
LANGUAGE plpgsql
-- no SET search_path: runs the caller's inner query
AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.coverage_config) THEN
        RAISE EXCEPTION 'coverage is not attached'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crm.attach_coverage(''my_interactions'', ...) first.';
    END IF;
    IF purchases_sql IS NULL THEN
        UPDATE crm.coverage_config SET purchases_sql = NULL;
        UPDATE crm.coverage SET purchase_cycle = NULL WHERE purchase_cycle IS NOT NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    ELSE
        LOCK TABLE crm.coverage IN SHARE ROW EXCLUSIVE MODE;
        n := crm._coverage_apply_purchases(purchases_sql);
        UPDATE crm.coverage_config SET purchases_sql = coverage_set_purchase_cycles.purchases_sql;
    END IF;
    PERFORM crm._coverage_apply_policy();
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm.coverage_set_purchase_cycles(text) IS
'Computes each customer''s purchase cycle (crm.median_interval) from an inner query (customer integer, ts timestamptz); classes whose policy basis is purchase_cycle then use it as their interval.  Stored and re-applied by crm.coverage_rebuild().  Returns the customers whose cycle changed.';

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.coverage_as_of() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(NULLIF(current_setting('crm.coverage_as_of', true), '')::timestamptz, now()) $$;
COMMENT ON FUNCTION crm.coverage_as_of() IS
'The moment the coverage views judge against: now(), or the setting crm.coverage_as_of when set (SET crm.coverage_as_of = ''2025-12-31'' to look at historical data).';

CREATE VIEW crm.coverage_status WITH (security_invoker = true) AS
SELECT c.customer_id, c.class, c.manager_id, c.last_contact, c.contacts, c.contact_interval, c.next_due,
       CASE WHEN c.class IS NULL THEN 'unclassified'
            WHEN c.next_due IS NULL OR n.t > c.next_due THEN 'overdue'
            WHEN n.t >= c.next_due - c.due_soon THEN 'due soon'
            ELSE 'ok' END AS status,
       CASE WHEN c.class IS NOT NULL AND n.t > c.next_due
            THEN floor(date_part('epoch', n.t - c.next_due) / 86400)::int END AS days_overdue
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n;
COMMENT ON VIEW crm.coverage_status IS
'Each customer''s coverage state at crm.coverage_as_of(): ok, due soon (within the class''s due_soon window before next_due), overdue (past next_due, or never contacted with no customer-since date), unclassified (no class).';

-- The report views read crm.coverage directly (one scan, no per-row status
-- text) with the same rules as crm.coverage_status: covered = next_due at or
-- after the as-of moment, due soon = covered and within due_soon of next_due,
-- overdue = classified and not covered.
CREATE VIEW crm.coverage_by_class WITH (security_invoker = true) AS
SELECT c.class,
       count(*) AS customers,
       count(*) FILTER (WHERE c.next_due >= n.t) AS covered,
       count(*) FILTER (WHERE c.next_due >= n.t AND c.next_due - c.due_soon <= n.t) AS due_soon,
       count(*) FILTER (WHERE c.class IS NOT NULL AND (c.next_due IS NULL OR c.next_due < n.t)) AS overdue,
       count(*) FILTER (WHERE c.last_contact IS NULL) AS never_contacted,
       round(100.0 * count(*) FILTER (WHERE c.next_due >= n.t) / count(*), 2) AS coverage_pct
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n
 GROUP BY c.class;
COMMENT ON VIEW crm.coverage_by_class IS
'Coverage per customer class at crm.coverage_as_of(): customers, covered (ok or due soon), due soon, overdue, never contacted, coverage % = covered / customers.  Unclassified customers form the row with class NULL.';

CREATE VIEW crm.coverage_by_manager WITH (security_invoker = true) AS
SELECT c.manager_id,
       count(*) AS customers,
       count(*) FILTER (WHERE c.next_due >= n.t) AS covered,
       count(*) FILTER (WHERE c.next_due >= n.t AND c.next_due - c.due_soon <= n.t) AS due_soon,
       count(*) FILTER (WHERE c.class IS NOT NULL AND (c.next_due IS NULL OR c.next_due < n.t)) AS overdue,
       count(*) FILTER (WHERE c.last_contact IS NULL) AS never_contacted,
       round(100.0 * count(*) FILTER (WHERE c.next_due >= n.t) / NULLIF(count(*) FILTER (WHERE c.class IS NOT NULL), 0), 2) AS coverage_pct
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n
 GROUP BY c.manager_id;
COMMENT ON VIEW crm.coverage_by_manager IS
'Coverage per manager at crm.coverage_as_of(): customers, covered, due soon, overdue, never contacted, coverage % = covered / classified customers.';

CREATE VIEW crm.coverage_overdue WITH (security_invoker = true) AS
SELECT c.customer_id, c.class, c.manager_id, c.last_contact, c.next_due,
       floor(date_part('epoch', n.t - c.next_due) / 86400)::int AS days_overdue
  FROM crm.coverage c
 CROSS JOIN (SELECT crm.coverage_as_of() AS t OFFSET 0) n
 WHERE c.class IS NOT NULL AND (c.next_due IS NULL OR c.next_due < n.t)
 ORDER BY c.next_due NULLS FIRST, c.customer_id;
COMMENT ON VIEW crm.coverage_overdue IS
'Who to call today: overdue customers at crm.coverage_as_of(), most overdue first (earliest next_due; never contacted with no due date first of all); filter by manager_id for one manager''s list.';

-- ---------------------------------------------------------------------------
-- Lead first-response SLA
-- ---------------------------------------------------------------------------
CREATE FUNCTION crm.working_time(from_ts timestamptz, to_ts timestamptz,
                                 work_start time DEFAULT '09:00', work_end time DEFAULT '18:00',
                                 workdays int[] DEFAULT '{1,2,3,4,5}') RETURNS interval
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result interval;
BEGIN
    IF work_start IS NULL OR work_end IS NULL OR work_start >= work_end THEN
        RAISE EXCEPTION 'working hours must start before they end, got % to %', work_start, work_end
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example work_start => ''09:00'', work_end => ''18:00''.';
    END IF;
    IF workdays IS NULL OR cardinality(workdays) = 0 OR array_position(workdays, NULL) IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(workdays) w WHERE w NOT BETWEEN 1 AND 7) THEN
        RAISE EXCEPTION 'workdays must be ISO day numbers 1 (Monday) to 7 (Sunday), got %', coalesce(workdays::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RETURN NULL;
    END IF;
    IF to_ts <= from_ts THEN
        RETURN interval '0';
    END IF;
    IF to_ts - from_ts > interval '3700 days' THEN
        RAISE EXCEPTION 'working time spans more than 10 years (% to %)', from_ts, to_ts
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    SELECT coalesce(sum(greatest(least(to_ts, (x.d + work_end)::timestamptz)
                                 - greatest(from_ts, (x.d + work_start)::timestamptz), interval '0')), interval '0')
      INTO result
      FROM generate_series(0, to_ts::date - from_ts::date) AS g(i)
     CROSS JOIN LATERAL (SELECT from_ts::date + g.i AS d) x
     WHERE extract(isodow FROM x.d)::int = ANY (workdays);
    RETURN justify_hours(result);
END
$$;
COMMENT ON FUNCTION crm.working_time(timestamptz, timestamptz, time, time, int[]) IS
'Working time between two moments: the parts of [from_ts, to_ts] that fall within work_start..work_end (session time zone) on the ISO weekdays in workdays (default Monday to Friday, 09:00 to 18:00).  0 when to_ts <= from_ts, NULL when either is NULL.';

CREATE FUNCTION crm.lead_first_response(leads_sql text, interactions_sql text)
RETURNS TABLE (lead_id bigint, created_at timestamptz, channel text, manager_id bigint,
               first_response_at timestamptz, response_time interval)
LANGUAGE plpgsql STABLE
-- no SET search_path: runs the caller's inner queries
AS $$
BEGIN
    IF leads_sql IS NULL OR interactions_sql IS NULL THEN
        RAISE EXCEPTION 'leads and interactions queries must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._check_inner_query('crm.lead_first_response', leads_sql,
                                   ARRAY['lead integer', 'created_at timestamptz', 'channel text', 'manager integer']);
    PERFORM crm._check_inner_query('crm.lead_first_response', interactions_sql,
                                   ARRAY['lead integer', 'ts timestamptz', 'direction text', 'automated boolean']);
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT l.lead::pg_catalog.int8, l.created_at::pg_catalog.timestamptz, l.channel::pg_catalog.text, '
        '       l.manager::pg_catalog.int8, pg_catalog.min(i.ts::pg_catalog.timestamptz), '
        '       pg_catalog.min(i.ts::pg_catalog.timestamptz) OPERATOR(pg_catalog.-) l.created_at::pg_catalog.timestamptz '
        '  FROM (%s) AS l(lead, created_at, channel, manager) '
        '  LEFT JOIN (%s) AS i(lead, ts, direction, automated) '
        '    ON i.lead OPERATOR(pg_catalog.=) l.lead '
        '   AND i.ts::pg_catalog.timestamptz OPERATOR(pg_catalog.>=) l.created_at::pg_catalog.timestamptz '
        '   AND i.direction::pg_catalog.text OPERATOR(pg_catalog.=) ''outbound'' '
        '   AND i.automated IS NOT TRUE '
        ' GROUP BY l.lead, l.created_at, l.channel, l.manager',
        leads_sql, interactions_sql);
END
$$;
COMMENT ON FUNCTION crm.lead_first_response(text, text) IS
'First real response per lead: the earliest non-automated outbound interaction at or after the lead''s creation.  Inner queries: leads (lead integer, created_at timestamptz, channel text, manager integer), interactions (lead integer, ts timestamptz, direction text, automated boolean).  first_response_at is NULL for leads never answered.';

CREATE FUNCTION crm.lead_sla(leads_sql text, interactions_sql text,
                             sla interval DEFAULT NULL, spend_sql text DEFAULT NULL,
                             working_hours boolean DEFAULT false,
                             work_start time DEFAULT '09:00', work_end time DEFAULT '18:00',
                             workdays int[] DEFAULT '{1,2,3,4,5}')
RETURNS TABLE (dimension text, key text, leads bigint, answered bigint, within_sla bigint,
               within_sla_pct numeric, median_response interval, never_answered bigint,
               never_answered_cost numeric)
LANGUAGE plpgsql STABLE
-- no SET search_path: runs the caller's inner queries
AS $$
BEGIN
    -- one SLA default for every surface: crm.dashboard_settings.lead_sla (1 hour)
    sla := coalesce(sla, crm._lead_sla());
    IF sla OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
        RAISE EXCEPTION 'sla must be a positive interval, got %', sla
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use for example interval ''15 minutes''.';
    END IF;
    IF leads_sql IS NULL OR interactions_sql IS NULL THEN
        RAISE EXCEPTION 'leads and interactions queries must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._check_inner_query('crm.lead_sla', leads_sql,
                                   ARRAY['lead integer', 'created_at timestamptz', 'channel text', 'manager integer']);
    PERFORM crm._check_inner_query('crm.lead_sla', interactions_sql,
                                   ARRAY['lead integer', 'ts timestamptz', 'direction text', 'automated boolean']);
    IF working_hours IS NULL THEN
        RAISE EXCEPTION 'working_hours must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF working_hours THEN
        PERFORM crm.working_time(NULL, NULL, work_start, work_end, workdays);   -- validates the hours
    END IF;
    IF spend_sql IS NOT NULL THEN
        PERFORM crm._check_inner_query('crm.lead_sla', spend_sql,
                                       ARRAY['channel text', 'month timestamptz', 'amount numeric']);
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH r AS (
            SELECT f.lead_id, f.channel, f.manager_id,
                   %s AS response_time,
                   pg_catalog.date_trunc('month', f.created_at)::pg_catalog.date AS month
              FROM crm.lead_first_response(%L, %L) f),
        cpl AS (
            SELECT s.channel, s.month, s.amount OPERATOR(pg_catalog./) n.leads AS cost_per_lead
              FROM (SELECT q.channel::pg_catalog.text AS channel,
                           pg_catalog.date_trunc('month', q.month::pg_catalog.timestamptz)::pg_catalog.date AS month,
                           pg_catalog.sum(q.amount::pg_catalog.numeric) AS amount
                      FROM (%s) AS q(channel, month, amount) GROUP BY 1, 2) s
              JOIN (SELECT r.channel, r.month, pg_catalog.count(*) AS leads FROM r GROUP BY 1, 2) n
                ON n.channel OPERATOR(pg_catalog.=) s.channel AND n.month OPERATOR(pg_catalog.=) s.month),
        x AS (
            SELECT r.*, c.cost_per_lead FROM r LEFT JOIN cpl c
                ON c.channel OPERATOR(pg_catalog.=) r.channel AND c.month OPERATOR(pg_catalog.=) r.month)
        SELECT CASE WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 3 THEN 'total'
                    WHEN GROUPING(x.channel) OPERATOR(pg_catalog.=) 0 THEN 'channel'
                    ELSE 'manager' END,
               CASE WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 3 THEN 'all'
                    WHEN GROUPING(x.channel) OPERATOR(pg_catalog.=) 0 THEN x.channel
                    ELSE x.manager_id::pg_catalog.text END,
               pg_catalog.count(*),
               pg_catalog.count(x.response_time),
               pg_catalog.count(*) FILTER (WHERE x.response_time OPERATOR(pg_catalog.<=) %L::pg_catalog.interval),
               -- NULL, not a division by zero, for the total row of no leads
               pg_catalog.round(100.0 OPERATOR(pg_catalog.*) pg_catalog.count(*) FILTER (WHERE x.response_time OPERATOR(pg_catalog.<=) %L::pg_catalog.interval)
                                OPERATOR(pg_catalog./) CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.count(*) END, 2),
               pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY x.response_time),
               pg_catalog.count(*) FILTER (WHERE x.response_time IS NULL),
               %s
          FROM x
         GROUP BY GROUPING SETS ((), (x.channel), (x.manager_id))
         ORDER BY CASE WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 3 THEN 0
                       WHEN GROUPING(x.channel, x.manager_id) OPERATOR(pg_catalog.=) 1 THEN 1 ELSE 2 END,
                  x.channel, x.manager_id $q$,
        CASE WHEN working_hours
             THEN pg_catalog.format('crm.working_time(f.created_at, f.first_response_at, %L, %L, %L)',
                                    work_start, work_end, workdays)
             ELSE 'f.response_time' END,
        leads_sql, interactions_sql,
        coalesce(spend_sql, 'SELECT NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric WHERE false'),
        sla, sla,
        CASE WHEN spend_sql IS NULL THEN 'NULL::pg_catalog.numeric'
             ELSE 'pg_catalog.round(coalesce(pg_catalog.sum(x.cost_per_lead) FILTER (WHERE x.response_time IS NULL), 0), 2)' END);
END
$$;
COMMENT ON FUNCTION crm.lead_sla(text, text, interval, text, boolean, time, time, int[]) IS
'Lead first-response SLA per channel, per manager and in total (long format: dimension, key): leads, answered, answered within sla (default NULL = crm.dashboard_settings.lead_sla, 1 hour, the default of every SLA surface), % within sla of all leads, median response time, never answered, and what the never-answered leads cost (their channel''s spend in the lead''s month / leads of that channel and month).  Inner queries as crm.lead_first_response, spend (channel text, month timestamptz, amount numeric).  working_hours => true measures response times in working time (crm.working_time with work_start, work_end, workdays).';
