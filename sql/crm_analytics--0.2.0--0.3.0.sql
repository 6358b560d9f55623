-- crm_analytics 0.2.0 -> 0.3.0
--
-- 0.3.0 is the security and robustness release (docs/security.md): no crash
-- and no escalation for any role and any input.  Each section below holds the
-- DDL of one area; C-only changes need no SQL here (the new .so carries them).
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.3.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.3.0'::text $$;


-- ==== A. inner SQL text: one SELECT, parsed into one plan ====
-- The C check (crm._check_inner_query and the C reports) now parses the text
-- alone and accepts exactly one SELECT; the new .so carries that.  The
-- internal runner crm._coverage_check_classes, callable directly, now checks
-- its text too.
COMMENT ON FUNCTION crm._check_inner_query(text, text, text[]) IS
'Accepts an inner query only if it is exactly one SELECT statement (parsed alone: no semicolon, no SELECT INTO, no data-modifying WITH, not ending inside a -- comment), then checks its columns by position and type ("name kind" per column, kind any/timestamptz/numeric/text/integer/boolean, "?" suffix = optional trailing column); returns the column count or raises an error naming the expected columns.';
CREATE OR REPLACE FUNCTION crm._coverage_check_classes(classes_query text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    bad text;
BEGIN
    -- exactly one SELECT of one text column (callable directly: check it here too)
    PERFORM crm._check_inner_query('crm._coverage_check_classes', classes_query, ARRAY['class text']);
    EXECUTE format('SELECT q.cls FROM (%s) AS q(cls) WHERE q.cls IS NOT NULL '
                   'AND NOT EXISTS (SELECT 1 FROM crm.coverage_policy p WHERE p.class OPERATOR(pg_catalog.=) q.cls) LIMIT 1',
                   classes_query) INTO bad;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown coverage class "%"', bad
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Every class must have a row in crm.coverage_policy.',
                  HINT = format('Add it: INSERT INTO crm.coverage_policy (class, max_interval) VALUES (%L, ''2 months'').', bad);
    END IF;
END
$$;

-- ==== end of A ====


-- ==== B. auto-status: trigger cache, sweep, partitions, user triggers, actor ====
-- C changes (new .so): trigger cache invalidated on relcache invalidation and
-- checked against the tuple descriptor; partitions resolved through their
-- ancestors; user-trigger changes during rules and the sweep are manual changes;
-- the sweep moves rows as the table owner (security-restricted operation).

-- the sweep gives the session's search_path to the owner's triggers
ALTER FUNCTION crm.apply_time_rules(timestamptz) RESET search_path;
COMMENT ON FUNCTION crm.apply_time_rules(timestamptz) IS
'The sweep for time rules: moves every entity that has been in a rule''s from_status with no event and no status change for idle_for before as_of; idempotent, skips rows locked by concurrent sessions (SKIP LOCKED); returns the number of changes. Tables the caller may not update are skipped with a WARNING; the rows of each table are moved as the table''s owner in a security-restricted operation, so the owner''s triggers never run with the caller''s rights.';

-- the real database user and session user beside the claimed actor; NULL for
-- the rows written before 0.3.0 (who wrote them is not known)
ALTER TABLE crm.status_history ADD COLUMN db_user text;
ALTER TABLE crm.status_history ALTER COLUMN db_user SET DEFAULT CURRENT_USER;
ALTER TABLE crm.status_history ADD COLUMN db_session_user text;
ALTER TABLE crm.status_history ALTER COLUMN db_session_user SET DEFAULT SESSION_USER;
COMMENT ON TABLE crm.status_history IS
'One row per status change of an attached entity (and per inserted entity, from_status NULL): by a rule (actor = ''rule'', rule_id set) or by a person (actor = the crm.status_actor setting, a claim of the application, or else the database user); db_user and db_session_user are the database role that wrote the row and the session''s login role (NULL for rows written before 0.3.0).';
COMMENT ON COLUMN crm.status_history.db_user IS
'The database role that wrote the row (CURRENT_USER): the role making a manual change, the role inserting the event for an event rule, the role calling crm.apply_time_rules() for a time rule. Grant writers INSERT on the other columns only, so that it cannot be set by hand.';
COMMENT ON COLUMN crm.status_history.db_session_user IS
'The login role of the session that wrote the row (SESSION_USER); see db_user.';

-- ==== end of B ====


-- ==== C. search_path: nothing resolves through the caller's path ====

-- ==== end of C ====


-- ==== D. grants, settings, empty periods ====

-- ==== end of D ====


-- ==== E. bounded and cancellable work, funnel rules ====

-- ==== end of E ====


-- ==== F. packaging and install ====

-- ==== end of F ====
