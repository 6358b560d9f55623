-- core.sql: what every capability of crm_analytics stands on.
--
-- Conventions (docs/security.md describes the trust model they give):
--   * everything in schema crm, created by CREATE EXTENSION (control: schema = crm);
--   * every function has COMMENT ON and pins search_path (or is fully qualified);
--   * nothing is SECURITY DEFINER; views are security_invoker;
--   * configuration / history tables are registered with pg_extension_config_dump.

-- Refuse to install into a schema "crm" that the user made for something else.
-- CREATE EXTENSION creates the schema itself when it is missing (control file:
-- schema = crm).  PostgreSQL does not make that schema a member of the
-- extension, so DROP EXTENSION removes every object but leaves the empty
-- schema behind; an empty schema "crm" is therefore accepted, one holding
-- anything is not.
DO $guard$
DECLARE
    n_objects int;
    made_now boolean;
BEGIN
    SELECT n.xmin::text = (pg_current_xact_id()::text::bigint % 4294967296)::text
      INTO made_now
      FROM pg_namespace n WHERE n.nspname = 'crm';
    SELECT (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'crm'::regnamespace)
         + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'crm'::regnamespace)
         + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = 'crm'::regnamespace)
      INTO n_objects;
    IF NOT made_now AND n_objects > 0 THEN
        RAISE EXCEPTION 'schema "crm" already exists and does not belong to crm_analytics'
            USING ERRCODE = 'duplicate_schema',
                  DETAIL = format('It holds %s objects and was not created by CREATE EXTENSION.', n_objects),
                  HINT = 'Rename the existing schema (ALTER SCHEMA crm RENAME TO ...) and run CREATE EXTENSION crm_analytics again.';
    END IF;
END
$guard$;

CREATE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.4.0'::text $$;
COMMENT ON FUNCTION crm.version() IS
'Version of the crm_analytics SQL objects installed in this database.';

CREATE FUNCTION crm._check_inner_query(fname text, query text, columns text[]) RETURNS int
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'crm_check_inner_query_sql';
-- No SET search_path here on purpose: the inner query is the caller's SQL and
-- must resolve its table names with the caller's search_path.  The C code
-- itself refers to nothing by an unqualified name.
COMMENT ON FUNCTION crm._check_inner_query(text, text, text[]) IS
'Accepts an inner query only if it is exactly one SELECT statement (parsed alone: no semicolon, no SELECT INTO, no data-modifying WITH, not ending inside a -- comment), then checks its columns by position and type ("name kind" per column, kind any/timestamptz/numeric/text/integer/boolean, "?" suffix = optional trailing column); returns the column count or raises an error naming the expected columns.';
