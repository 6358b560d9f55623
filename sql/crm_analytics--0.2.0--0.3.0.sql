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
