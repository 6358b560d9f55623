-- pgTAP (issue 16 item 1): SQL text a caller passes is exactly one SELECT.
--   * Every function of the extension that takes SQL text is found in the
--     catalog (argument named *sql or *query), so a new one is covered as
--     soon as it is installed.  A role with USAGE on schema crm and no right
--     on any table calls each with hostile texts (statements appended after
--     closing the wrapper's parenthesis, two statements, DML, SELECT INTO,
--     data-modifying WITH, unterminated comment and string, empty text,
--     NULL, a trailing "--" comment, a trailing semicolon): each is a clean
--     error with its SQLSTATE, and the server stays up.
--   * The texts that crashed 0.2.0 (SIGSEGV in both paths of
--     cohort_retention and in retention_metrics) are clean errors.
--   * A legal query ending in a "--" comment still works and equals plain SQL.
--   * The two-pass receiver checks the columns it is handed when the inner
--     query's plan is re-analysed between the passes.
BEGIN;

-- the functions and their SQL-text arguments (input arguments only)
CREATE TEMP TABLE sql_funcs AS
SELECT p.oid, p.oid::regprocedure::text AS sig, p.pronamespace::regnamespace::text || '.' || quote_ident(p.proname) AS fname,
       a.name AS argname, a.pos, p.pronargs, p.pronargdefaults
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                  AND d.refclassid = 'pg_extension'::regclass
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crm_analytics')
 CROSS JOIN LATERAL (
       SELECT n AS name, row_number() OVER () AS pos, t, m
         FROM unnest(p.proargnames, coalesce(p.proallargtypes, p.proargtypes::oid[]),
                     coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs]))) AS u(n, t, m)
        WHERE m IN ('i', 'b', 'v')) a
 WHERE a.t = 'text'::regtype AND (a.name LIKE '%sql' OR a.name LIKE '%query');

-- input arguments of a function, in order
CREATE FUNCTION pg_temp.inargs(f oid)
RETURNS TABLE(pos bigint, name text, typ regtype) LANGUAGE sql AS $f$
    SELECT row_number() OVER (), n, t::regtype
      FROM pg_proc p, unnest(p.proargnames, coalesce(p.proallargtypes, p.proargtypes::oid[]),
                             coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs]))) AS u(n, t, m)
     WHERE p.oid = f AND m IN ('i', 'b', 'v')
$f$;

-- a call of function f with text txt (a SQL literal, or NULL) as argument argname;
-- other required arguments get usable values by name and type
CREATE FUNCTION pg_temp.call_sql(f oid, argname text, txt text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    p pg_proc;
    a record;
    args text[] := '{}';
    v text;
BEGIN
    SELECT * INTO p FROM pg_proc WHERE oid = f;
    FOR a IN SELECT * FROM pg_temp.inargs(f) ORDER BY pos LOOP
        IF a.name = argname THEN
            v := coalesce(txt, 'NULL');
        ELSIF a.pos > p.pronargs - p.pronargdefaults THEN
            CONTINUE;                           -- has a default
        ELSIF a.typ = 'text'::regtype AND (a.name LIKE '%sql' OR a.name LIKE '%query') THEN
            -- another required SQL text: a valid one when its columns are known, else the same text
            v := CASE a.name
                   WHEN 'leads_sql' THEN quote_literal('SELECT 1, now(), ''web''::text, 1')
                   WHEN 'interactions_sql' THEN quote_literal('SELECT 1, now(), ''in''::text, false')
                   WHEN 'orders_sql' THEN quote_literal('SELECT 1, now(), 1.0')
                   ELSE coalesce(txt, 'NULL') END;
        ELSE
            v := CASE
                   WHEN a.name = 'kind' THEN '''orders'''
                   WHEN a.name = 'fname' THEN '''crm.example'''
                   WHEN a.name = 'columns' THEN 'ARRAY[''entity any'', ''ts timestamptz'']'
                   WHEN a.name = 'period' THEN '''month'''
                   WHEN a.name = 'periods' THEN '3'
                   WHEN a.name = 'steps' THEN 'ARRAY[''a'', ''b'']'
                   WHEN a.name = 'from_ts' THEN 'now() - interval ''1 year'''
                   WHEN a.typ IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN 'now()'
                   WHEN a.typ IN ('integer'::regtype, 'bigint'::regtype, 'numeric'::regtype, 'double precision'::regtype) THEN '1'
                   WHEN a.typ = 'interval'::regtype THEN 'interval ''1 day'''
                   WHEN a.typ = 'boolean'::regtype THEN 'false'
                   WHEN a.typ = 'text[]'::regtype THEN 'ARRAY[''a'']'
                   ELSE '''x''' END;
        END IF;
        args := args || (quote_ident(a.name) || ' => ' || v);
    END LOOP;
    RETURN format('SELECT * FROM %s(%s)', p.pronamespace::regnamespace::text || '.' || quote_ident(p.proname),
                  array_to_string(args, ', '));
END
$f$;

-- the role: USAGE on crm, no right on any table
CREATE ROLE crm_inner_nobody NOLOGIN;
GRANT USAGE ON SCHEMA crm TO crm_inner_nobody;
CREATE TABLE public.inner_victim (id int);
INSERT INTO public.inner_victim VALUES (1), (2);

-- run q as crm_inner_nobody (the role is restored when q fails: throws_ok's
-- subtransaction rolls the SET LOCAL back)
CREATE FUNCTION pg_temp.as_nobody(q text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('role', 'crm_inner_nobody', true);
    EXECUTE q;
    EXECUTE 'RESET ROLE';
END
$f$;

-- the SQLSTATE q raises as crm_inner_nobody ('00000' if none)
CREATE FUNCTION pg_temp.state_as_nobody(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text;
BEGIN
    PERFORM pg_temp.as_nobody(q);
    RETURN '00000';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st;
END
$f$;

-- the statements that break out of "(<text>\n) AS alias" with n columns:
-- close the wrapper's parenthesis, append a statement of other types, reopen
CREATE FUNCTION pg_temp.breakout(n int) RETURNS text LANGUAGE sql AS $f$
    SELECT format('SELECT %1$s) AS crm_q GROUP BY %2$s; SELECT false, 12345::bigint%3$s; SELECT * FROM (SELECT %1$s',
                  string_agg(CASE k WHEN 1 THEN '''a''::text' WHEN 2 THEN 'now()' ELSE '1.0' END, ', ' ORDER BY k),
                  string_agg(k::text, ', ' ORDER BY k),
                  repeat(', 12345::bigint', greatest(n - 2, 0)))
      FROM generate_series(1, n) k
$f$;

CREATE TEMP TABLE hostile (name text PRIMARY KEY, txt text, state text NOT NULL, required_only boolean NOT NULL DEFAULT false);
INSERT INTO hostile
SELECT format('breakout, %s columns', n), pg_temp.breakout(n), '42601' FROM generate_series(1, 5) n;
INSERT INTO hostile (name, txt, state, required_only) VALUES
('the issue''s breakout string',
 $$SELECT 'a'::text, now()) AS q(e, ts) GROUP BY 1, 2; SELECT false, 12345::bigint; SELECT * FROM (SELECT 'a'::text, now()$$, '42601', false),
('breakout ending in a "--" comment', $$SELECT 1, now()) AS q; SELECT 12345::bigint, now() --$$, '42601', false),
('two statements', 'SELECT 1; SELECT 2', '42601', false),
('DELETE', 'DELETE FROM public.inner_victim', '42601', false),
('a utility statement', 'DROP TABLE public.inner_victim', '42601', false),
('SELECT INTO', 'SELECT 1, now() INTO public.inner_into', '0A000', false),
('data-modifying WITH', 'WITH d AS (DELETE FROM public.inner_victim RETURNING id) SELECT id, now() FROM d', '0A000', false),
('data-modifying WITH in a subquery', 'SELECT * FROM (WITH d AS (DELETE FROM public.inner_victim RETURNING id) SELECT id, now() FROM d) s', '0A000', false),
('unterminated comment', 'SELECT 1, now() /* ', '42601', false),
('unterminated string', 'SELECT 1, ''now', '42601', false),
('unterminated quoted identifier', 'SELECT 1 AS "x', '42601', false),
('empty text', '', '22023', false),
('spaces and a comment only', '  -- nothing', '22023', false),
('trailing semicolon', 'SELECT 1, now();', '42601', false),
('leading semicolon', ';SELECT 1, now()', '42601', false),
('NULL', NULL, '22004', true);

-- the calls: every SQL argument of every function with every hostile text.
-- A call that fails before it looks at the text (a check of another
-- argument, a right the role lacks) is found with a control text of valid
-- syntax and too many columns: the expected error is then that one.
CREATE TEMP TABLE calls AS
SELECT f.sig, f.argname, h.name, pg_temp.call_sql(f.oid, f.argname, quote_nullable(h.txt)) AS q, h.state AS hostile_state,
       pg_temp.state_as_nobody(pg_temp.call_sql(f.oid, f.argname, quote_literal('SELECT 1, 2, 3, 4, 5, 6, 7, 8, 9 WHERE false'))) AS control_state
  FROM sql_funcs f, hostile h
 WHERE NOT (h.required_only AND f.pos > f.pronargs - f.pronargdefaults);

SELECT plan((SELECT count(*)::int FROM calls) + 19 + 42);

-- 1-2: the catalog search finds the known SQL-taking functions
SELECT ok((SELECT count(DISTINCT sig) FROM sql_funcs) >= 17, 'at least 17 functions of the extension take SQL text');
SELECT is(ARRAY(SELECT DISTINCT sig FROM sql_funcs WHERE sig IN ('crm.cohort_retention(text,text,integer)',
                'crm.retention_metrics(text,text)', 'crm._check_inner_query(text,text,text[])', 'crm.register_source(text,text)',
                'crm._coverage_check_classes(text)', 'crm.lead_sla(text,text,interval,text,boolean,time without time zone,time without time zone,integer[])')
              ORDER BY 1),
          ARRAY['crm._check_inner_query(text,text,text[])', 'crm._coverage_check_classes(text)', 'crm.cohort_retention(text,text,integer)',
                'crm.lead_sla(text,text,interval,text,boolean,time without time zone,time without time zone,integer[])',
                'crm.register_source(text,text)', 'crm.retention_metrics(text,text)'],
          'the catalog search finds the C reports, the check, the registry and the internal runners');

-- every call: a clean error with the expected SQLSTATE, run as the role without rights
SELECT throws_ok(format('SELECT pg_temp.as_nobody(%L)', q),
                 CASE WHEN control_state = '42804' THEN hostile_state ELSE control_state END, NULL,
                 format('%s, %s: %s', sig, argname, name))
  FROM calls ORDER BY sig, argname, name;

-- 3: nothing ran
SELECT is((SELECT count(*) FROM public.inner_victim), 2::bigint, 'no hostile text deleted a row');

-- 4-6: the crash texts of 0.2.0, as the role without rights.  In 0.2.0 the
-- text was pasted into "... FROM (<text>\n) AS crm_q(...)" and run as
-- several statements, the receiver reading the second one's (false, 12345)
-- as a cohort state pointer (aggregate path) or 12345 as a numeric amount
-- pointer (two-pass path, pass 2).
SELECT throws_ok(format('SELECT pg_temp.as_nobody(%L)',
                 $q$SET crm_analytics.cohort_two_pass = off; SELECT * FROM crm.cohort_retention('SELECT ''a''::text, now()) AS crm_q(entity, ts) GROUP BY crm_q.entity, crm_q.ts; SELECT false, 12345::bigint; SELECT * FROM (SELECT ''a''::text, now()', 'month', 12)$q$),
                 '42601', NULL, 'cohort_retention, aggregate path: the text that crashed 0.2.0 is a syntax error');
SELECT throws_ok(format('SELECT pg_temp.as_nobody(%L)',
                 $q$SET crm_analytics.cohort_two_pass = on; SELECT * FROM crm.cohort_retention('SELECT 1, now(), 1.0) AS crm_q(entity, ts, amount); SELECT 1, now(), 12345::bigint; SELECT * FROM (SELECT 1, now(), 1.0', 'month', 12)$q$),
                 '42601', NULL, 'cohort_retention, two-pass path: the text that crashed 0.2.0 is a syntax error');
SELECT throws_ok(format('SELECT pg_temp.as_nobody(%L)',
                 $q$SELECT * FROM crm.retention_metrics('SELECT ''a''::text, now()) AS crm_q(entity, ts) GROUP BY crm_q.entity, crm_q.ts; SELECT false, 12345::bigint; SELECT * FROM (SELECT ''a''::text, now()', 'month')$q$),
                 '42601', NULL, 'retention_metrics: the text that crashed 0.2.0 is a syntax error');

-- 7-9: the issue's string itself, on both methods and retention_metrics
-- (0.2.0 answered it with 42P01, missing FROM-clause entry for "crm_q": its
-- first statement names the wrapper's alias; the texts above adapt it)
SELECT throws_ok(format('SELECT pg_temp.as_nobody(%L)', format('SET crm_analytics.cohort_two_pass = %s; SELECT * FROM crm.cohort_retention(%L, ''month'', 12)',
                        tp, (SELECT txt FROM hostile WHERE name = 'the issue''s breakout string'))),
                 '42601', NULL, format('cohort_retention, cohort_two_pass = %s: the issue''s string is a syntax error', tp))
  FROM unnest(ARRAY['on', 'off']) tp;
SELECT throws_ok(format('SELECT pg_temp.as_nobody(%L)', format('SELECT * FROM crm.retention_metrics(%L, ''month'')',
                        (SELECT txt FROM hostile WHERE name = 'the issue''s breakout string'))),
                 '42601', NULL, 'retention_metrics: the issue''s string is a syntax error');

-- 10-12: a legal query ending in a "--" comment works and equals plain SQL
-- (the demo orders: cohort size and active customers per month, from a
-- first-order CTE)
CREATE TEMP TABLE ref_cohorts AS
WITH o AS (SELECT customer_id AS e, date_trunc('month', ordered_at)::date AS m FROM crm_demo.orders WHERE customer_id IS NOT NULL),
     f AS (SELECT e, min(m) AS c FROM o GROUP BY e),
     s AS (SELECT c, count(*) AS n FROM f GROUP BY c),
     a AS (SELECT f.c, (extract(year FROM age(o.m, f.c)) * 12 + extract(month FROM age(o.m, f.c)))::int AS k,
                  count(DISTINCT o.e) AS active
             FROM o JOIN f USING (e) GROUP BY 1, 2)
SELECT a.c AS cohort, a.k AS period_no, s.n AS cohort_size, a.active FROM a JOIN s USING (c) WHERE a.k < 6;
SET crm_analytics.cohort_two_pass = on;
SELECT is(ARRAY(SELECT row(cohort, period_no, cohort_size, active)::text
                  FROM crm.cohort_retention(E'SELECT customer_id, ordered_at, amount FROM crm_demo.orders -- every order', 'month', 6)
                 WHERE active > 0 ORDER BY 1),
          ARRAY(SELECT row(cohort, period_no, cohort_size, active)::text FROM ref_cohorts ORDER BY 1),
          'cohort_retention, two-pass path: a query ending in a -- comment equals plain SQL');
SET crm_analytics.cohort_two_pass = off;
SELECT is(ARRAY(SELECT row(cohort, period_no, cohort_size, active)::text
                  FROM crm.cohort_retention(E'SELECT customer_id, ordered_at, amount FROM crm_demo.orders -- every order', 'month', 6)
                 WHERE active > 0 ORDER BY 1),
          ARRAY(SELECT row(cohort, period_no, cohort_size, active)::text FROM ref_cohorts ORDER BY 1),
          'cohort_retention, aggregate path: a query ending in a -- comment equals plain SQL');
RESET crm_analytics.cohort_two_pass;
SELECT is(ARRAY(SELECT row(period_start, active_customers, orders)::text
                  FROM crm.retention_metrics('SELECT customer_id, ordered_at FROM crm_demo.orders -- ', 'month') WHERE orders > 0 ORDER BY 1),
          ARRAY(SELECT row(m, n, o)::text
                  FROM (SELECT date_trunc('month', ordered_at)::date AS m, count(DISTINCT customer_id) AS n, count(*) AS o
                          FROM crm_demo.orders WHERE customer_id IS NOT NULL GROUP BY 1) x ORDER BY m),
          'retention_metrics: a query ending in a -- comment equals plain SQL');

-- 13-14: the PL/pgSQL reports wrap the text as "(<text>)": a final comment must end with a newline
SELECT throws_ok($$SELECT * FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM crm_demo.orders -- every order', '2026-01-01')$$,
                 '42601', 'inner query of rfm_report must not end inside a "--" comment',
                 'rfm_report: a text ending inside a -- comment is refused');
SELECT is((SELECT count(*) FROM crm.rfm_report(E'SELECT customer_id, ordered_at, amount FROM crm_demo.orders -- every order\n', '2026-01-01')),
          (SELECT count(DISTINCT customer_id) FROM crm_demo.orders WHERE ordered_at <= '2026-01-01'),
          'rfm_report: a comment ended by a newline is fine');

-- 15: the two-pass receiver checks what it is handed.  The inner query's
-- plan is prepared once and run twice; here pass 1 changes search_path, so
-- pass 2 re-analyses "t" as another table whose amount is text: the
-- receiver refuses it instead of reading text as numeric.
CREATE SCHEMA inner_s1;
CREATE SCHEMA inner_s2;
CREATE TABLE inner_s1.t (e int, ts timestamptz, amount numeric);
CREATE TABLE inner_s2.t (e int, ts timestamptz, amount text);
INSERT INTO inner_s1.t VALUES (1, '2025-01-05', 10), (2, '2025-02-05', 20);
INSERT INTO inner_s2.t VALUES (1, '2025-01-05', 'ten');
CREATE FUNCTION public.inner_switch_path() RETURNS boolean LANGUAGE sql VOLATILE AS
$$ SELECT set_config('search_path', 'inner_s2, public', false) IS NOT NULL $$;
SET crm_analytics.cohort_two_pass = on;
SET search_path = inner_s1, public;
SELECT throws_ok($$SELECT * FROM crm.cohort_retention('SELECT e, ts, amount FROM t WHERE inner_switch_path()', 'month', 3)$$,
                 '42804', NULL, 'two-pass path: a result that changed between the passes is refused by the receiver');
RESET search_path;
RESET crm_analytics.cohort_two_pass;

-- 16-17: a hostile text stored in the sources registry (where only its
-- owner can write) is refused when a dashboard report splices it
UPDATE crm.sources SET query = pg_temp.breakout(cardinality(crm.source_columns('orders'))) WHERE kind = 'orders';
SELECT throws_ok($$SELECT * FROM crm.dashboard_retention('2025-12-31')$$, '42601', NULL,
                 'dashboard_retention: a stored breakout source is a syntax error');
UPDATE crm.sources SET query = 'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM crm_demo.orders; SELECT 1' WHERE kind = 'orders';
SELECT throws_ok($$SELECT * FROM crm.dashboard_rfm('2025-12-31')$$, '42601', NULL,
                 'dashboard_rfm: a stored source of two statements is refused');

-- 18-59: the two-pass method reads the inner query's own rows and casts
-- them in C: every accepted ts and amount type, NULL entity, ts and amount,
-- on both methods, against plain SQL over the same casts
CREATE TEMP TABLE tcast (e int, ts timestamptz, amount numeric);
INSERT INTO tcast VALUES (1, '2025-01-03 10:00', 10.25), (1, '2025-02-11', 5), (2, '2025-01-20', 1.5),
                         (2, '2025-03-01 23:59:59', 2), (3, '2025-02-28', 7), (NULL, '2025-01-01', 100),
                         (3, NULL, 1), (1, '2025-02-15', NULL), (4, '2024-12-31 23:00', -3.75),
                         (5, '2025-01-31 20:00+09', 1);
-- a zone east of UTC: a timestamp read as if it were a timestamptz would put e = 5 in February
SET LOCAL timezone = 'Asia/Tokyo';
CREATE FUNCTION pg_temp.ref_cast(q text) RETURNS TABLE(cohort date, period_no int, cohort_size bigint, active bigint, revenue numeric)
LANGUAGE plpgsql AS $f$
BEGIN
    RETURN QUERY EXECUTE format($q$
        WITH o AS (SELECT x.e, x.ts::timestamptz AS ts, x.amount::numeric AS amount FROM (%s) x(e, ts, amount)
                    WHERE x.e IS NOT NULL AND x.ts IS NOT NULL),
             f AS (SELECT o.e, date_trunc('month', min(o.ts)) AS c FROM o GROUP BY o.e),
             s AS (SELECT f.c, count(*) AS n FROM f GROUP BY f.c),
             a AS (SELECT f.c, (extract(year FROM age(date_trunc('month', o.ts), f.c)) * 12
                                + extract(month FROM age(date_trunc('month', o.ts), f.c)))::int AS k,
                          count(DISTINCT o.e) AS active, coalesce(sum(o.amount), 0) AS rev
                     FROM o JOIN f USING (e) GROUP BY 1, 2)
        SELECT a.c::date, a.k, s.n, a.active, a.rev FROM a JOIN s USING (c) WHERE a.k < 3$q$, q);
END
$f$;
-- cohort_retention(q, 'month', 3) with cohort_two_pass = tp (set when the query runs)
CREATE FUNCTION pg_temp.cohorts_with(tp text, q text)
RETURNS TABLE(cohort date, period_no int, cohort_size bigint, active bigint, revenue numeric) LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('crm_analytics.cohort_two_pass', tp, true);
    RETURN QUERY SELECT r.cohort, r.period_no, r.cohort_size, r.active, r.revenue FROM crm.cohort_retention(q, 'month', 3) r;
END
$f$;
SELECT results_eq(format($$SELECT cohort, period_no, cohort_size, active, coalesce(revenue, 0)
                             FROM pg_temp.cohorts_with(%L, %L) WHERE active > 0 ORDER BY 1, 2$$, tp, q),
                  format($$SELECT cohort, period_no, cohort_size, active, %s FROM pg_temp.ref_cast(%L) ORDER BY 1, 2$$,
                         CASE WHEN amt IS NULL THEN '0::numeric' ELSE 'revenue' END,
                         CASE WHEN amt IS NULL THEN replace(q, ' FROM', ', NULL::numeric FROM') ELSE q END),
                  format('cohort_two_pass = %s, ts %s, amount %s: equals plain SQL', tp, tst, coalesce(amt, 'absent')))
  FROM unnest(ARRAY['on', 'off']) tp
 CROSS JOIN unnest(ARRAY['timestamptz', 'timestamp', 'date']) tst
 CROSS JOIN unnest(ARRAY['numeric', 'integer', 'bigint', 'smallint', 'double precision', 'real', NULL]) amt
 CROSS JOIN LATERAL (SELECT format('SELECT e, ts::%s%s FROM tcast', tst, CASE WHEN amt IS NULL THEN '' ELSE ', amount::' || amt END) AS q) x;
RESET crm_analytics.cohort_two_pass;
RESET timezone;

-- 60-61: the server is still up, and the role was reset
SELECT is((SELECT count(*) FROM crm.cohort_retention('SELECT 1, now()', 'month', 1)), 1::bigint, 'the server still answers');
SELECT is(current_user::text, session_user::text, 'the role is back to the session user');

SELECT * FROM finish();
ROLLBACK;
