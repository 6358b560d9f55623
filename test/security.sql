-- pgTAP (hardening): the security conventions of crm_analytics, checked over
-- every object that belongs to the extension (pg_depend deptype 'e'), so each
-- capability is covered as soon as it is installed.
--   * nothing SECURITY DEFINER; every SQL / PL/pgSQL function pins search_path,
--     except the functions that run a user's inner query (allow-list below,
--     each with its reason): those must NOT pin it;
--   * every function, aggregate and window function has a COMMENT;
--   * every view is security_invoker;
--   * every aggregate is PARALLEL SAFE with a COMBINEFUNC and a real state type
--     with C input/output functions, non-strict transition/combine functions;
--   * row-level security on the user's tables holds through report functions
--     and the BI views; inner queries run with the caller's rights;
--   * identifier injection through the attach functions fails cleanly.
BEGIN;
SELECT plan(33);

CREATE TEMP TABLE ext_objs AS
SELECT d.classid, d.objid
  FROM pg_depend d
 WHERE d.deptype = 'e' AND d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crm_analytics');

CREATE TEMP TABLE ext_funcs AS
SELECT p.oid, p.oid::regprocedure::text AS sig, p.pronamespace::regnamespace::text || '.' || p.proname AS fname, p.prokind, l.lanname, p.prosecdef, p.proconfig
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.oid IN (SELECT objid FROM ext_objs WHERE classid = 'pg_proc'::regclass);

-- Functions that execute a user's inner query (SQL text passed in, or stored
-- in a registry by the user): they must not pin search_path, so that the
-- user's query resolves with the caller's search_path; they qualify every
-- name they use themselves.  Listed by name (every overload); entries for
-- functions that are not installed are ignored; a function missing here and not pinning search_path fails.
CREATE TEMP TABLE inner_query_runners (fname text PRIMARY KEY, reason text NOT NULL);
INSERT INTO inner_query_runners VALUES
('crm._check_inner_query',        'core: runs the caller''s inner query with LIMIT 0 to check its columns'),
('crm.keep_todo',                 'dashboard: runs crm.todo, which checks the registered sources'),
('crm.funnel_report',    'funnel: events_sql'),
('crm.cohort_retention',         'retention: events_sql (C, SPI)'),
('crm.retention_metrics',                'retention: orders_sql (C, SPI)'),
('crm.rfm_report',   'classes: orders_sql'),
('crm.abc_xyz_report', 'classes: sales_sql'),
('crm.historical_ltv',           'clv: orders_sql, spend_sql'),
('crm.coverage_set_classes',                  'coverage: classes_sql (stored, re-run by coverage_rebuild)'),
('crm.coverage_set_purchase_cycles',          'coverage: purchases_sql (stored, re-run by coverage_rebuild)'),
('crm._coverage_check_classes',               'coverage: runs the classes query'),
('crm._coverage_apply_classes',               'coverage: runs the stored classes query'),
('crm._coverage_apply_purchases',             'coverage: runs the stored purchases query'),
('crm.coverage_rebuild',                          'coverage: re-runs the stored classes and purchase-cycle queries'),
('crm.lead_first_response',              'coverage: leads_sql, interactions_sql'),
('crm.lead_sla',           'coverage: leads_sql, interactions_sql, spend_sql'),
('crm.register_source',                  'dashboard: checks the source query by running it with LIMIT 0'),
('crm._source_sql',                      'dashboard: checks a registered source query'),
('crm._check_stages',                      'dashboard: reads the stage_events source'),
('crm._owner_dashboard_sql',                      'dashboard: splices and checks the registered sources'),
('crm.owner_dashboard',                  'dashboard: runs the registered sources'),
('crm.dashboard_channels',               'dashboard: runs the registered sources'),
('crm.dashboard_managers',               'dashboard: runs the registered sources'),
('crm.dashboard_pipeline',               'dashboard: runs the registered sources'),
('crm.dashboard_funnel',                 'dashboard: runs the registered sources'),
('crm.dashboard_retention',                   'dashboard: runs the registered sources'),
('crm.dashboard_rfm',                         'dashboard: runs the registered sources'),
('crm.dashboard_abc_xyz',                     'dashboard: runs the registered sources'),
('crm.dashboard_lead_sla',      'dashboard: runs the registered sources'),
('crm.dashboard_coverage', 'dashboard: runs the registered sources'),
('crm.dashboard_html',                   'dashboard: runs the registered sources'),
('crm._closed_deals_sql',                'losses: splices and checks the registered sources'),
('crm.dashboard_closed_deals',           'losses: runs the registered sources'),
('crm.dashboard_losses',                 'losses: runs the registered sources'),
('crm.dashboard_followups',              'losses: runs the registered sources'),
('crm.dashboard_plan_fact',              'plans: runs the registered sources through the reports'),
('crm.todo',                             'dashboard (issue 20): runs the registered sources'),
('crm.notify_todo',                      'dashboard (issue 20): runs crm.todo'),
('crm._query_relations',                 'rollups: EXPLAINs a source query to find its tables'),
('crm.attach_rollup_capture',            'rollups: EXPLAINs the registered sources to find their tables'),
('crm._rollup_begin',                    'rollups: attaches capture (EXPLAIN of the registered sources)'),
('crm.refresh_rollups',                  'rollups: runs the registered sources'),
('crm._rollup_leads',                    'rollups: runs the registered sources'),
('crm._rollup_orders',                   'rollups: runs the registered sources'),
('crm._rollup_deals',                    'rollups: runs the registered sources'),
('crm._rollup_spend',                    'rollups: runs the registered sources'),
('crm._rollup_invoices',                 'rollups: runs the registered sources'),
('crm._rollup_contacts',                 'rollups: runs the registered sources'),
('crm._rollup_lead_state',               'rollups (fast_leads): runs the registered sources'),
('crm._rollup_spend_months',             'rollups (fast_leads): runs the registered sources'),
('crm._rollup_invoice_state',            'rollups (fast_leads): runs the registered sources'),
('crm._rollup_contact_days',             'rollups (fast_leads): runs the registered sources'),
('crm._rollup_fast_orders',              'rollups (customers): runs the registered sources'),
('crm._rollup_fast_contacts',            'rollups (customers): runs the registered sources'),
('crm._fast_channels',                   'rollups (customers): runs the registered sources'),
('crm._fast_plan_channels',              'rollups (plans): runs the registered sources'),
('crm._rollup_deal_states',              'rollups (fast deal reports): runs the registered sources'),
('crm._rollup_deal_contacts',            'rollups (losses): runs the registered sources'),
('crm._fast_closed_deals',               'rollups (losses): runs the registered sources');

-- a function of the extension is installed (any signature)
CREATE FUNCTION pg_temp.installed(fname text) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = 'crm'::regnamespace AND proname = split_part(fname, '.', 2)) $$;

CREATE FUNCTION pg_temp.pins_search_path(cfg text[]) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT EXISTS (SELECT 1 FROM unnest(cfg) c WHERE c LIKE 'search\_path=%') $$;

-- 1-3: catalog conventions of functions
SELECT ok((SELECT count(*) FROM ext_funcs) > 0, 'the extension has functions');
SELECT is(ARRAY(SELECT sig FROM ext_funcs WHERE prosecdef ORDER BY sig), '{}'::text[],
          'no function is SECURITY DEFINER');
SELECT is(ARRAY(SELECT sig FROM ext_funcs f
                 WHERE lanname NOT IN ('c', 'internal') AND NOT pg_temp.pins_search_path(proconfig)
                   AND fname NOT IN (SELECT fname FROM inner_query_runners) ORDER BY sig), '{}'::text[],
          'every SQL and PL/pgSQL function pins search_path (SET search_path), or is a listed inner-query runner');
SELECT is(ARRAY(SELECT f.sig FROM ext_funcs f JOIN inner_query_runners r USING (fname)
                 WHERE pg_temp.pins_search_path(f.proconfig) ORDER BY f.sig), '{}'::text[],
          'no inner-query runner pins search_path (the user''s query resolves with the caller''s search_path)');
SELECT is(ARRAY(SELECT f.sig FROM ext_funcs f JOIN inner_query_runners r USING (fname)
                 WHERE coalesce(obj_description(f.oid, 'pg_proc'), '') = '' ORDER BY f.sig), '{}'::text[],
          'every inner-query runner is documented by a COMMENT');
SELECT is(ARRAY(SELECT sig FROM ext_funcs WHERE coalesce(obj_description(oid, 'pg_proc'), '') = '' ORDER BY sig), '{}'::text[],
          'every function, aggregate and window function has a COMMENT');
-- 7: views
SELECT is(ARRAY(SELECT c.oid::regclass::text FROM pg_class c
                 WHERE c.oid IN (SELECT objid FROM ext_objs WHERE classid = 'pg_class'::regclass) AND c.relkind IN ('v', 'm')
                   AND NOT coalesce('security_invoker=true' = ANY (c.reloptions)
                                 OR 'security_invoker=on' = ANY (c.reloptions), false) ORDER BY 1), '{}'::text[],
          'every view is security_invoker');

-- 8-14: aggregates and their state types
CREATE TEMP TABLE ext_aggs AS
SELECT a.*, a.aggfnoid::regprocedure::text AS sig, p.proparallel
  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
 WHERE a.aggfnoid IN (SELECT oid FROM ext_funcs);
SELECT ok((SELECT count(*) FROM ext_aggs) > 0, 'the extension has aggregates');
SELECT is(ARRAY(SELECT sig FROM ext_aggs WHERE proparallel <> 's' ORDER BY sig), '{}'::text[],
          'every aggregate is PARALLEL SAFE');
SELECT is(ARRAY(SELECT sig FROM ext_aggs WHERE aggcombinefn = 0 ORDER BY sig), '{}'::text[],
          'every aggregate has a COMBINEFUNC');
SELECT is(ARRAY(SELECT sig FROM ext_aggs WHERE aggtranstype = 'internal'::regtype ORDER BY sig), '{}'::text[],
          'no aggregate has an internal state type');
SELECT is(ARRAY(SELECT a.sig FROM ext_aggs a JOIN pg_type t ON t.oid = a.aggtranstype
                 WHERE t.typnamespace <> 'crm'::regnamespace OR t.typtype <> 'b'
                    OR (SELECT l.lanname FROM pg_proc f JOIN pg_language l ON l.oid = f.prolang WHERE f.oid = t.typinput) <> 'c'
                    OR (SELECT l.lanname FROM pg_proc f JOIN pg_language l ON l.oid = f.prolang WHERE f.oid = t.typoutput) <> 'c'
                 ORDER BY 1), '{}'::text[],
          'every state type is a base type in schema crm with C input and output functions');
SELECT is(ARRAY(SELECT a.sig FROM ext_aggs a
                 WHERE (SELECT proisstrict FROM pg_proc WHERE oid = a.aggtransfn)
                    OR (SELECT proisstrict FROM pg_proc WHERE oid = a.aggcombinefn) ORDER BY 1), '{}'::text[],
          'no transition or combine function is STRICT (NULLs are handled by hand)');
SELECT is(ARRAY(SELECT DISTINCT f.oid::regprocedure::text FROM ext_aggs a
                  JOIN pg_type t ON t.oid = a.aggtranstype
                  JOIN pg_proc f ON f.oid IN (a.aggtransfn, a.aggcombinefn, a.aggfinalfn, t.typinput, t.typoutput)
                 WHERE f.proparallel <> 's' ORDER BY 1), '{}'::text[],
          'the support functions of every aggregate (transition, combine, final, state in/out) are PARALLEL SAFE');
-- state text round trip on a state built from scratch is in test/parallel_all.sql
-- (every aggregate, every partial state); here: the input functions are STRICT
-- and IMMUTABLE (a cast of a constant text must not depend on the session).
SELECT is(ARRAY(SELECT DISTINCT t.oid::regtype::text FROM ext_aggs a JOIN pg_type t ON t.oid = a.aggtranstype
                  JOIN pg_proc f ON f.oid = t.typinput
                 WHERE f.provolatile = 'v' ORDER BY 1), '{}'::text[],
          'no state type input function is VOLATILE');

-- 15-16: the caller's search_path resolves the inner query
CREATE SCHEMA hard_sp;
CREATE TABLE hard_sp.my_events (entity int, ts timestamptz, step text);
INSERT INTO hard_sp.my_events VALUES (1, '2025-01-01', 'a'), (1, '2025-01-02', 'b'), (2, '2025-01-01', 'a');
SET LOCAL search_path = hard_sp, public;
SELECT CASE WHEN NOT pg_temp.installed('crm.funnel_report')
            THEN skip('crm.funnel_report is not installed')
            ELSE results_eq($$SELECT step_no, entered FROM crm.funnel_report('SELECT entity, ts, step FROM my_events', ARRAY['a', 'b']) ORDER BY 1$$,
                            $$VALUES (1, 2::bigint), (2, 1::bigint)$$,
                            'crm.funnel_report resolves the inner query with the caller''s search_path') END;
SELECT CASE WHEN NOT pg_temp.installed('crm.cohort_retention')
            THEN skip('crm.cohort_retention is not installed')
            ELSE is((SELECT cohort_size FROM crm.cohort_retention('SELECT entity, ts FROM my_events', 'month', 1) WHERE period_no = 0),
                    2::bigint, 'crm.cohort_retention resolves the inner query with the caller''s search_path') END;
RESET search_path;

-- 17-22: an unprivileged role: row-level security and inner-query rights
CREATE ROLE hard_analyst NOLOGIN;
GRANT USAGE ON SCHEMA crm TO hard_analyst;
-- the registered source queries are not readable by PUBLIC (0.3.0): the admin grants them
GRANT SELECT ON crm.sources TO hard_analyst;
CREATE TABLE public.hard_secret (entity int, ts timestamptz, step text, amount numeric);
INSERT INTO public.hard_secret VALUES (1, '2025-01-01', 'a', 1);
CREATE TABLE public.hard_events AS
SELECT e.deal_id AS entity, e.changed_at AS ts, e.stage AS step, d.channel
  FROM crm_demo.deal_events e JOIN crm_demo.deals d USING (deal_id);
ALTER TABLE public.hard_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY hard_events_no_organic ON public.hard_events FOR SELECT TO hard_analyst USING (channel <> 'organic');
GRANT SELECT ON public.hard_events TO hard_analyst;

SELECT count(*) AS hard_total FROM public.hard_events \gset
SET LOCAL ROLE hard_analyst;
SELECT ok((SELECT count(*) FROM public.hard_events) BETWEEN 1 AND :hard_total - 1,
          'as hard_analyst, row-level security hides some (not all) stage events');
SELECT CASE WHEN NOT pg_temp.installed('crm.funnel_report')
            THEN skip('crm.funnel_report is not installed', 2)
            ELSE collect_tap(
   results_eq($$SELECT entered FROM crm.funnel_report('SELECT entity, ts, step FROM public.hard_events', ARRAY['lead', 'qualified']) WHERE step_no = 1$$,
              $$SELECT count(DISTINCT entity) FROM public.hard_events WHERE step = 'lead'$$,
              'crm.funnel_report as hard_analyst counts only the rows row-level security lets it see'),
   throws_ok($$SELECT * FROM crm.funnel_report('SELECT entity, ts, step FROM public.hard_secret', ARRAY['a'])$$, '42501', NULL,
             'crm.funnel_report: an inner query over a table the caller may not read is refused (no privilege escalation)')) END;
SELECT CASE WHEN NOT pg_temp.installed('crm.cohort_retention')
            THEN skip('crm.cohort_retention is not installed', 2)
            ELSE collect_tap(
   results_eq($$SELECT cohort_size FROM crm.cohort_retention('SELECT entity, ts FROM public.hard_events', 'year', 1) WHERE period_no = 0 ORDER BY cohort$$,
              $$SELECT count(*) FROM (SELECT entity, min(ts) m FROM public.hard_events GROUP BY 1) s GROUP BY date_trunc('year', m) ORDER BY date_trunc('year', m)$$,
              'crm.cohort_retention (C, SPI) as hard_analyst counts only the visible rows'),
   throws_ok($$SELECT * FROM crm.cohort_retention('SELECT entity, ts FROM public.hard_secret')$$, '42501', NULL,
             'crm.cohort_retention: an inner query over a table the caller may not read is refused')) END;
SELECT throws_ok($$SELECT crm._check_inner_query('x', 'SELECT entity FROM public.hard_secret', ARRAY['entity any'])$$, '42501', NULL,
                 'crm._check_inner_query runs the query with the caller''s rights');
RESET ROLE;

-- 23-24: a BI view over a registered source with row-level security
CREATE TABLE public.hard_leads AS SELECT * FROM crm_demo.leads;
ALTER TABLE public.hard_leads ENABLE ROW LEVEL SECURITY;
CREATE POLICY hard_leads_no_organic ON public.hard_leads FOR SELECT TO hard_analyst USING (channel <> 'organic');
GRANT SELECT ON public.hard_leads TO hard_analyst;
GRANT USAGE ON SCHEMA crm_demo TO hard_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA crm_demo TO hard_analyst;
REVOKE SELECT ON crm_demo.leads FROM hard_analyst;
CREATE FUNCTION pg_temp.view_rls_checks() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    p_from date;
    p_to date;
BEGIN
    IF to_regclass('crm.v_channels') IS NULL OR NOT pg_temp.installed('crm.register_source')
       OR NOT pg_temp.installed('crm.set_dashboard_period') THEN
        RETURN NEXT skip('crm.v_channels / crm.register_source are not installed', 2);
        RETURN;
    END IF;
    PERFORM crm.register_source('leads', 'SELECT lead_id, created_at, channel, manager_id, customer_id FROM public.hard_leads');
    PERFORM crm.set_dashboard_period('2025-01-01', '2025-12-31');
    SELECT period_from, period_to INTO p_from, p_to FROM crm.dashboard_period() d(period_from, period_to);
    SET LOCAL ROLE hard_analyst;
    RETURN NEXT is((SELECT sum(value) FROM crm.v_channels WHERE metric = 'leads' AND period_from = p_from),
                   (SELECT count(*)::numeric FROM public.hard_leads WHERE created_at >= p_from AND created_at < p_to + 1),
                   'crm.v_channels as hard_analyst: leads = the rows of the leads source row-level security lets it see');
    RETURN NEXT is((SELECT coalesce(sum(value), 0) FROM crm.v_channels WHERE metric = 'leads' AND channel = 'organic'),
                   0::numeric, 'crm.v_channels as hard_analyst: no leads of the hidden channel');
    RESET ROLE;
END
$f$;
SELECT * FROM pg_temp.view_rls_checks();

-- 26-33: identifier injection through the attach functions
CREATE TABLE public.hard_canary (x int);
INSERT INTO public.hard_canary VALUES (1);
CREATE TABLE public."hard_deals; DROP TABLE public.hard_canary; --" ("id"")--" bigint PRIMARY KEY, "st; DROP TABLE public.hard_canary" text);
CREATE TABLE public."hard_events'); DROP TABLE public.hard_canary; --" ("id"")--" bigint, "k'; --" text, "at$1" timestamptz);
INSERT INTO public."hard_deals; DROP TABLE public.hard_canary; --" VALUES (1, 'new');
CREATE TABLE public."hard_int'); DROP TABLE public.hard_canary; --" ("cust""; --" bigint, "at$1" timestamptz, "k'" text, "d;" text, "auto)" boolean, "mgr " int);
-- the SQLSTATE a statement fails with (NULL when it succeeds)
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE q;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$f$;
CREATE FUNCTION pg_temp.attach_injection_checks() RETURNS SETOF text LANGUAGE plpgsql AS $f$
BEGIN
    IF NOT pg_temp.installed('crm.attach_auto_status') THEN
        RETURN NEXT skip('crm.attach_auto_status is not installed', 3);
    ELSE
        RETURN NEXT ok(coalesce(pg_temp.error_of($$SELECT crm.attach_auto_status('public.hard_canary', 'x); DROP TABLE public.hard_canary; --', 'x', ARRAY['a', 'b'])$$) NOT IN ('XX000', '42601'), false),
                       'attach_auto_status: a column name carrying SQL is refused (a clean error, not XX000 or a syntax error)');
        RETURN NEXT lives_ok($$SELECT crm.attach_auto_status('public."hard_deals; DROP TABLE public.hard_canary; --"', 'id")--', 'st; DROP TABLE public.hard_canary',
                                ARRAY['new', 'won'], 'public."hard_events''); DROP TABLE public.hard_canary; --"', 'id")--', 'k''; --', 'at$1')$$,
                             'attach_auto_status: tables and columns with hostile names are attached (quoted, not executed)');
        BEGIN
            INSERT INTO crm.status_event_rules (entity_table, event_type, to_status)
            VALUES ('public."hard_deals; DROP TABLE public.hard_canary; --"'::regclass, 'pay', 'won');
            INSERT INTO public."hard_events'); DROP TABLE public.hard_canary; --" VALUES (1, 'pay', '2025-01-01');
            RETURN NEXT is((SELECT "st; DROP TABLE public.hard_canary" FROM public."hard_deals; DROP TABLE public.hard_canary; --"),
                           'won', 'attach_auto_status: the trigger on the hostile names works');
        EXCEPTION WHEN OTHERS THEN
            RETURN NEXT fail('attach_auto_status: the trigger on the hostile names failed: ' || SQLERRM || ' (' || SQLSTATE || ')');
        END;
    END IF;
    IF NOT pg_temp.installed('crm.attach_coverage') THEN
        RETURN NEXT skip('crm.attach_coverage is not installed', 4);
    ELSE
        RETURN NEXT ok(coalesce(pg_temp.error_of($$SELECT crm.attach_coverage('public.hard_canary', customer_column => 'x; DROP TABLE public.hard_canary; --')$$) NOT IN ('XX000', '42601'), false),
                       'attach_coverage: a column name carrying SQL is refused (a clean error, not XX000 or a syntax error)');
        RETURN NEXT ok(coalesce(pg_temp.error_of($$SELECT crm.attach_coverage('public.hard_canary', time_column => 'x"); DROP TABLE public.hard_canary; --')$$) NOT IN ('XX000', '42601'), false),
                       'attach_coverage: a quoted column name carrying SQL is refused (a clean error, not XX000 or a syntax error)');
        RETURN NEXT lives_ok($$SELECT crm.attach_coverage('public."hard_int''); DROP TABLE public.hard_canary; --"', customer_column => 'cust"; --',
                                   time_column => 'at$1', kind_column => 'k''', direction_column => 'd;', automated_column => 'auto)',
                                   manager_column => 'mgr ')$$,
                             'attach_coverage: a table and columns with hostile names are attached (quoted, not executed)');
        BEGIN
            INSERT INTO public."hard_int'); DROP TABLE public.hard_canary; --" VALUES (424242, '2025-06-01', 'call', 'outbound', false, 1);
            RETURN NEXT is((SELECT contacts || ' ' || last_contact FROM crm.coverage WHERE customer_id = 424242),
                           '1 2025-06-01 00:00:00+00', 'attach_coverage: the trigger on the hostile names records the contact');
        EXCEPTION WHEN OTHERS THEN
            RETURN NEXT fail('attach_coverage: the trigger on the hostile names failed: ' || SQLERRM || ' (' || SQLSTATE || ')');
        END;
    END IF;
END
$f$;
SELECT * FROM pg_temp.attach_injection_checks();
SELECT is((SELECT count(*) FROM public.hard_canary), 1::bigint, 'after every injection attempt the canary table is intact');

SELECT * FROM finish();
ROLLBACK;
