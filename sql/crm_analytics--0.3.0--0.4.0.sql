-- crm_analytics 0.3.0 -> 0.4.0
--
-- 0.4.0 answers the sales head's day (issue 20: losses by reason and stage,
-- follow-up depth, the to-do list, plans against facts, churn and the cost
-- of a lost opportunity, manager activity) and serves BI at scale (issue 21:
-- daily rollups refreshed incrementally, crm.v_daily, BI conventions).  Each
-- section below holds the DDL of one area; C-only changes need no SQL here.
\echo Use "ALTER EXTENSION crm_analytics UPDATE TO '0.4.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION crm.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.4.0'::text $$;


-- ==== section owner: owner_dashboard metrics, manager activity ====
-- ==== end of section owner ====


-- ==== section losses: lost reasons, dashboard_losses, dashboard_followups ====
-- ==== end of section losses ====


-- ==== section todo: crm.todo, crm.v_todo, notifications ====
-- ==== end of section todo ====


-- ==== section plans: crm.plans, set_plan, dashboard_plan_fact ====
-- ==== end of section plans ====


-- ==== section rollups: daily rollups, refresh_rollups, v_daily ====
-- ==== end of section rollups ====


-- ==== section bi: BI conventions (column comments, sort order, period per session / role), progress ====
-- ==== end of section bi ====


-- ==== section html: the HTML report and the demo ====
-- ==== end of section html ====
