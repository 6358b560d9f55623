-- crm_analytics 0.1.0 -> 0.2.0
--
-- 0.2.0 changes:
--   * crm.version() reports 0.2.0;
--   * crm.clv_simulate bounds its work (C only, no catalog change): customers
--     at most 100,000,000 (22023) and at most 100,000 purchases per simulated
--     customer (54000), found by the fuzz test;
--   * automatic status: the row triggers are faster (no SET search_path
--     clause, the rule's change and history row in one statement);
--   * the release procedure (docs/releasing.md) and the upgrade test
--     (test/upgrade.sh: catalog of an upgraded install = a fresh install; the
--     pgTAP suite passes on the upgraded install).
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.2.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.2.0'::text $$;

-- automatic status: the row triggers no longer pin search_path with a SET
-- clause (they qualify every name and pin it in C where they parse SQL)
ALTER FUNCTION crm.status_event_trigger() RESET search_path;
ALTER FUNCTION crm.status_entity_trigger() RESET search_path;
