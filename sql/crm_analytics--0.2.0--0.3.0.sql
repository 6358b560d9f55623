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

-- ==== end of B ====


-- ==== C. search_path: nothing resolves through the caller's path ====

-- ==== end of C ====


-- ==== D. grants, settings, empty periods ====

-- ==== end of D ====


-- ==== E. bounded and cancellable work, funnel rules ====

-- ==== end of E ====


-- ==== F. packaging and install ====

-- ==== end of F ====
