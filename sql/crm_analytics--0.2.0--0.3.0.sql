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
-- (crm._coverage_check_classes is redefined in section C, with this check.)

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

-- Every function that runs the caller's SQL (and so cannot pin search_path)
-- qualifies every operator, function and type of its own, in its body and in
-- the SQL text it builds; crm.dashboard_html draws its page in a pinned function.

CREATE OR REPLACE FUNCTION crm.rfm_report(orders_sql text, as_of timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE(customer text, recency_days int, frequency bigint, monetary numeric,
              r int, f int, m int, rfm_code text, segment text)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
AS $fn$
BEGIN
    IF orders_sql IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'orders_sql and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM crm._check_inner_query('rfm_report', orders_sql,
        ARRAY['customer any', 'ordered_at timestamptz', 'amount numeric']);
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH per AS (
            SELECT i.customer AS key,
                   pg_catalog.floor(pg_catalog.date_part('epoch',
                       $1 OPERATOR(pg_catalog.-) pg_catalog.max(i.ordered_at::pg_catalog.timestamptz))
                       OPERATOR(pg_catalog./) 86400::pg_catalog.float8)::pg_catalog.int4 AS recency_days,
                   pg_catalog.count(*) AS frequency,
                   pg_catalog.sum(i.amount::pg_catalog.numeric) AS monetary
              FROM (%s) AS i(customer, ordered_at, amount)
             WHERE i.customer IS NOT NULL AND i.ordered_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<=) $1
             GROUP BY i.customer
        ), scored AS (
            SELECT per.*,
                   crm.quantile_score(OPERATOR(pg_catalog.-) per.recency_days::pg_catalog.float8) OVER () AS r,
                   crm.quantile_score(per.frequency::pg_catalog.float8) OVER () AS f,
                   crm.quantile_score(per.monetary::pg_catalog.float8) OVER () AS m
              FROM per
        )
        SELECT s.key::pg_catalog.text, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m,
               pg_catalog.concat(s.r, s.f, s.m), crm.rfm_segment(s.r, s.f)
          FROM scored AS s
         ORDER BY s.key
        $q$, orders_sql)
    USING as_of;
END
$fn$;

CREATE OR REPLACE FUNCTION crm.abc_xyz_report(sales_sql text, from_ts timestamptz, to_ts timestamptz,
                                   period text DEFAULT 'month',
                                   a float8 DEFAULT 0.80, b float8 DEFAULT 0.95,
                                   x float8 DEFAULT 0.10, y float8 DEFAULT 0.25)
RETURNS TABLE(item text, revenue numeric, share numeric, cumulative_share numeric, abc text,
              periods int, cv float8, xyz text, abc_xyz text)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
AS $fn$
DECLARE
    step interval;
    nperiods int;
BEGIN
    IF sales_sql IS NULL OR from_ts IS NULL OR to_ts IS NULL OR period IS NULL
       OR a IS NULL OR b IS NULL OR x IS NULL OR y IS NULL THEN
        RAISE EXCEPTION 'arguments must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    step := CASE WHEN period OPERATOR(pg_catalog.=) 'day' THEN '1 day'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'week' THEN '1 week'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'month' THEN '1 month'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'quarter' THEN '3 months'::pg_catalog.interval
                 WHEN period OPERATOR(pg_catalog.=) 'year' THEN '1 year'::pg_catalog.interval END;
    IF step IS NULL THEN
        RAISE EXCEPTION 'unknown period "%"', period
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use day, week, month, quarter or year.';
    END IF;
    IF NOT (pg_catalog.isfinite(from_ts) AND pg_catalog.isfinite(to_ts)) THEN
        RAISE EXCEPTION 'from_ts and to_ts must be finite'
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass real moments, e.g. ''2025-01-01'' and ''2026-01-01'', not infinity.';
    END IF;
    IF from_ts OPERATOR(pg_catalog.>=) to_ts THEN
        RAISE EXCEPTION 'from_ts (%) must be before to_ts (%)', from_ts, to_ts
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Swap the two moments.';
    END IF;
    -- at most 10000 periods (crm.demand_cv's limit), checked before the period
    -- series is generated: first roughly (a month counts 30 days), then exactly
    IF pg_catalog.date_part('epoch', to_ts OPERATOR(pg_catalog.-) pg_catalog.date_trunc(period, from_ts))
       OPERATOR(pg_catalog./) pg_catalog.date_part('epoch', step) OPERATOR(pg_catalog.>) 11000::pg_catalog.float8 THEN
        nperiods := NULL;
    ELSE
        SELECT pg_catalog.count(*) INTO nperiods
          FROM pg_catalog.generate_series(pg_catalog.date_trunc(period, from_ts),
                                          to_ts OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval, step);
    END IF;
    IF nperiods IS NULL OR nperiods OPERATOR(pg_catalog.>) 10000 THEN
        RAISE EXCEPTION '[%, %) holds more than 10000 periods of one %', from_ts, to_ts, period
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Use a shorter range or a longer period (weeks or months instead of days).';
    END IF;
    PERFORM crm._check_inner_query('abc_xyz_report', sales_sql,
        ARRAY['item any', 'sold_at timestamptz', 'quantity numeric', 'revenue numeric']);
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH p AS (
            SELECT g.s AS period_start, (pg_catalog.row_number() OVER (ORDER BY g.s))::pg_catalog.int4 AS period_no
              FROM pg_catalog.generate_series(pg_catalog.date_trunc($3, $1),
                                              $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval, $4) AS g(s)
        ), per AS (
            SELECT i.item AS key,
                   pg_catalog.sum(i.revenue::pg_catalog.numeric) AS revenue,
                   crm.demand_cv(i.quantity::pg_catalog.float8, p.period_no, $5) AS cv
              FROM (%s) AS i(item, sold_at, quantity, revenue)
              JOIN p ON p.period_start OPERATOR(pg_catalog.=) pg_catalog.date_trunc($3, i.sold_at::pg_catalog.timestamptz)
             WHERE i.item IS NOT NULL
               AND i.sold_at::pg_catalog.timestamptz OPERATOR(pg_catalog.>=) $1
               AND i.sold_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<) $2
             GROUP BY i.item
        ), cls AS (
            SELECT per.*,
                   crm.abc_class(per.revenue::pg_catalog.float8, $6, $7) OVER () AS abc,
                   pg_catalog.sum(per.revenue) FILTER (WHERE per.revenue OPERATOR(pg_catalog.>) 0::pg_catalog.numeric) OVER () AS total,
                   pg_catalog.sum(GREATEST(per.revenue, 0::pg_catalog.numeric))
                       OVER (ORDER BY per.revenue DESC NULLS LAST, per.key ROWS UNBOUNDED PRECEDING) AS running
              FROM per
        )
        SELECT c.key::pg_catalog.text, c.revenue,
               pg_catalog.round(c.revenue OPERATOR(pg_catalog./)
                                CASE WHEN c.total OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN c.total END, 6),
               pg_catalog.round(c.running OPERATOR(pg_catalog./)
                                CASE WHEN c.total OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN c.total END, 6),
               c.abc, $5, c.cv, crm.xyz_class(c.cv, $8, $9), c.abc OPERATOR(pg_catalog.||) crm.xyz_class(c.cv, $8, $9)
          FROM cls AS c
         ORDER BY c.revenue DESC NULLS LAST, c.key
        $q$, sales_sql)
    USING from_ts, to_ts, period, step, nperiods, a, b, x, y;
END
$fn$;

CREATE OR REPLACE FUNCTION crm.historical_ltv(orders_sql text, spend_sql text DEFAULT NULL, margin numeric DEFAULT 1)
RETURNS TABLE(customers bigint, orders bigint, revenue numeric, revenue_per_customer numeric,
              aov numeric, purchase_frequency numeric, lifespan_years numeric, gross_margin numeric,
              ltv numeric, spend numeric, cac numeric, ltv_to_cac numeric, cac_payback_months numeric)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No SET search_path: the inner queries are the caller's SQL and resolve with
-- the caller's search_path; everything used here is schema-qualified.
AS $fn$
DECLARE
    ncols int;
    orders_cols text;
    cost_expr text;
    spend_expr text;
BEGIN
    IF margin IS NULL OR margin OPERATOR(pg_catalog.<) 0::pg_catalog.numeric OR margin OPERATOR(pg_catalog.>) 1::pg_catalog.numeric THEN
        RAISE EXCEPTION 'margin must be between 0 and 1, got %', margin
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the gross margin as a fraction, e.g. 0.4 for 40%, or add a cost column to the orders query.';
    END IF;
    ncols := crm._check_inner_query('crm.historical_ltv', orders_sql,
                 ARRAY['customer any', 'ts timestamptz', 'amount numeric', 'cost numeric?']);
    orders_cols := CASE WHEN ncols OPERATOR(pg_catalog.>=) 4 THEN 'customer, ts, amount, cost' ELSE 'customer, ts, amount' END;
    cost_expr := CASE WHEN ncols OPERATOR(pg_catalog.>=) 4 THEN 'o.cost::pg_catalog.numeric' ELSE 'NULL::pg_catalog.numeric' END;
    IF spend_sql IS NOT NULL THEN
        PERFORM crm._check_inner_query('crm.historical_ltv', spend_sql, ARRAY['ts timestamptz', 'amount numeric']);
        spend_expr := pg_catalog.format(
            '(SELECT pg_catalog.sum(s.amount::pg_catalog.numeric) FROM (%s) AS s(ts, amount))', spend_sql);
    ELSE
        spend_expr := 'NULL::pg_catalog.numeric';
    END IF;
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH o AS (
            SELECT o.customer, o.ts::pg_catalog.timestamptz AS ts, o.amount::pg_catalog.numeric AS amount, %3$s AS cost
              FROM (%1$s) AS o(%2$s)
             WHERE o.ts IS NOT NULL AND o.amount IS NOT NULL
        ), per AS (
            SELECT pg_catalog.min(o.ts) AS f, pg_catalog.max(o.ts) AS l FROM o GROUP BY o.customer
        ), tot AS (
            SELECT pg_catalog.count(*) AS orders, pg_catalog.sum(o.amount) AS revenue, pg_catalog.sum(o.cost) AS cost,
                   (EXTRACT(epoch FROM pg_catalog.max(o.ts) OPERATOR(pg_catalog.-) pg_catalog.min(o.ts))
                        OPERATOR(pg_catalog./) 86400::pg_catalog.numeric) OPERATOR(pg_catalog./) 365.25 AS span
              FROM o
        ), cust AS (
            SELECT pg_catalog.count(*) AS customers,
                   pg_catalog.avg((EXTRACT(epoch FROM per.l OPERATOR(pg_catalog.-) per.f)
                                   OPERATOR(pg_catalog./) 86400::pg_catalog.numeric) OPERATOR(pg_catalog./) 365.25) AS lifespan
              FROM per
        ), m AS (
            SELECT cust.customers::pg_catalog.numeric AS customers, tot.orders::pg_catalog.numeric AS orders,
                   tot.revenue, tot.span, cust.lifespan,
                   CASE WHEN tot.cost IS NOT NULL AND tot.revenue OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric
                        THEN (tot.revenue OPERATOR(pg_catalog.-) tot.cost) OPERATOR(pg_catalog./) tot.revenue ELSE $1 END AS gm,
                   %4$s AS spend
              FROM tot, cust
        ), z AS (   -- the divisors, NULL where 0
            SELECT m.*,
                   CASE WHEN m.customers OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.customers END AS customers_nz,
                   CASE WHEN m.orders OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.orders END AS orders_nz,
                   CASE WHEN m.span OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.span END AS span_nz
              FROM m
        ), k AS (
            SELECT z.*, z.revenue OPERATOR(pg_catalog./) z.customers_nz AS rpc, z.revenue OPERATOR(pg_catalog./) z.orders_nz AS aov,
                   (z.orders OPERATOR(pg_catalog./) z.customers_nz) OPERATOR(pg_catalog./) z.span_nz AS pf,
                   z.spend OPERATOR(pg_catalog./) z.customers_nz AS cac
              FROM z
        ), v AS (
            SELECT k.*,
                   ((k.aov OPERATOR(pg_catalog.*) k.pf) OPERATOR(pg_catalog.*) k.lifespan) OPERATOR(pg_catalog.*) k.gm AS ltv,
                   -- gross profit per customer per month
                   ((k.revenue OPERATOR(pg_catalog.*) k.gm) OPERATOR(pg_catalog./) k.customers_nz)
                       OPERATOR(pg_catalog./) (k.span_nz OPERATOR(pg_catalog.*) 12::pg_catalog.numeric) AS gp_month
              FROM k
        )
        SELECT v.customers::pg_catalog.int8, v.orders::pg_catalog.int8, v.revenue, pg_catalog.round(v.rpc, 2), pg_catalog.round(v.aov, 2),
               pg_catalog.round(v.pf, 4), pg_catalog.round(v.lifespan, 4), pg_catalog.round(v.gm, 4),
               pg_catalog.round(v.ltv, 2), v.spend, pg_catalog.round(v.cac, 2),
               pg_catalog.round(v.ltv OPERATOR(pg_catalog./) CASE WHEN v.cac OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN v.cac END, 4),
               pg_catalog.round(v.cac OPERATOR(pg_catalog./) CASE WHEN v.gp_month OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN v.gp_month END, 2)
          FROM v
    $q$, orders_sql, orders_cols, cost_expr, spend_expr) USING margin;
END
$fn$;

CREATE OR REPLACE FUNCTION crm._coverage_recompute_sql(cfg crm.coverage_config) RETURNS text
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

CREATE OR REPLACE FUNCTION crm._coverage_check_classes(classes_query text) RETURNS void
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

CREATE OR REPLACE FUNCTION crm.coverage_rebuild() RETURNS bigint
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

CREATE OR REPLACE FUNCTION crm._coverage_apply_classes(classes_sql text) RETURNS bigint
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

CREATE OR REPLACE FUNCTION crm._coverage_apply_purchases(purchases_sql text) RETURNS bigint
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

CREATE OR REPLACE FUNCTION crm.lead_sla(leads_sql text, interactions_sql text,
                             sla interval DEFAULT interval '15 minutes', spend_sql text DEFAULT NULL,
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
    IF sla IS NULL OR sla OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
        RAISE EXCEPTION 'sla must be a positive interval, got %', coalesce(sla::pg_catalog.text, 'NULL')
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

CREATE OR REPLACE FUNCTION crm._source_sql(kind text, alias text DEFAULT 'src') RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    q     text;
    cols  text[] := crm.source_columns(kind);
    names text;
    m     text;
    st    text;
BEGIN
    IF cols IS NULL THEN
        RAISE EXCEPTION 'unknown source kind "%"', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_catalog.has_table_privilege('crm.sources', 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for the source registry crm.sources'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The reports run the registered source queries as the calling role, which must be able to read them.',
                  HINT = pg_catalog.format('An administrator can grant it: GRANT SELECT ON crm.sources TO %I; the role also needs SELECT on the tables the sources read.',
                                           CURRENT_USER);
    END IF;
    SELECT s.query INTO q FROM crm.sources s WHERE s.kind OPERATOR(pg_catalog.=) _source_sql.kind;
    IF q IS NULL THEN
        RAISE EXCEPTION 'source "%" is not registered', kind
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('Register it: SELECT crm.register_source(%L, ''SELECT ... FROM your_table''); the query must return (%s).',
                                           kind, crm._source_columns_text(kind));
    END IF;
    BEGIN
        PERFORM crm._check_inner_query(pg_catalog.format('source "%s"', kind), q, cols);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
        RAISE EXCEPTION 'registered source "%" is broken: %', kind, m
            USING ERRCODE = st,
                  HINT = pg_catalog.format('Fix the tables it reads or register it again: SELECT crm.register_source(%L, ''...''); the query must return (%s).',
                                           kind, crm._source_columns_text(kind));
    END;
    SELECT pg_catalog.string_agg(pg_catalog.split_part(c, ' ', 1), ', ' ORDER BY n)
      INTO names FROM pg_catalog.unnest(cols) WITH ORDINALITY AS u(c, n);
    RETURN pg_catalog.format(E'(%s\n) AS %I(%s)', q, alias, names);
END
$$;

CREATE OR REPLACE FUNCTION crm._check_stages(unknown numeric) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
AS $$
DECLARE
    names text;
BEGIN
    IF coalesce(unknown, 0) OPERATOR(pg_catalog.>) 0 THEN
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.string_agg(DISTINCT src.stage, '', '') FROM %s
              WHERE NOT EXISTS (SELECT 1 FROM crm.pipeline_stages ps WHERE ps.stage OPERATOR(pg_catalog.=) src.stage)',
            crm._source_sql('stage_events')) INTO names;
        RAISE EXCEPTION 'source "stage_events" uses stages missing from crm.pipeline_stages: %', names
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Add them: INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome) VALUES (...).';
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION crm._stage_case(what text, expr text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- the text runs inside the report queries, which resolve with the caller's
-- search_path: every operator and type in it is qualified
SELECT CASE WHEN count(*) = 0 THEN 'NULL' ELSE
       format('(CASE %s END)',
              string_agg(CASE what
                  WHEN 'order' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s', expr, stage, stage_order)
                  WHEN 'outcome' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %L::pg_catalog.text', expr, stage, outcome)
                  WHEN 'probability' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s::pg_catalog.numeric', expr, stage, probability)
                  WHEN 'order_probability' THEN format('WHEN (%s) OPERATOR(pg_catalog.=) %s THEN %s::pg_catalog.numeric', expr, stage_order, probability)
                  WHEN 'rank' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s', expr, stage, rk)
                  WHEN 'step' THEN format('WHEN (%s)::pg_catalog.text OPERATOR(pg_catalog.=) %L THEN %s', expr, stage, coalesce(step::text, 'NULL::pg_catalog.int4'))
              END, ' ' ORDER BY stage_order)) END
  FROM (SELECT ps.*, row_number() OVER (ORDER BY stage_order) AS rk,
               CASE WHEN outcome <> 'lost'
                    THEN row_number() OVER (PARTITION BY outcome = 'lost' ORDER BY stage_order) END AS step
          FROM crm.pipeline_stages ps) AS s
$$;

CREATE OR REPLACE FUNCTION crm._owner_dashboard_sql() RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    q text;
BEGIN
    q := pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome FROM crm.pipeline_stages),
pol AS MATERIALIZED (SELECT crm._dashboard_coverage_interval('A') AS a_int),
ld AS MATERIALIZED (
    SELECT lead_id, created_at, channel, customer_id, created_at OPERATOR(pg_catalog.>=) $1 AS is_cur
      FROM %1$s WHERE created_at OPERATOR(pg_catalog.>=) $3 AND created_at OPERATOR(pg_catalog.<) $2),
od AS NOT MATERIALIZED (
    SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at OPERATOR(pg_catalog.<) $2),
-- per customer: first order, orders up to each period end, revenue of the
-- 12 months before each end (ABC class)
cu AS MATERIALIZED (
    SELECT customer_id, pg_catalog.min(ordered_at) AS first_at,
           pg_catalog.count(*) AS n_cur_end, pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS n_prev_end,
           pg_catalog.bool_or(ordered_at OPERATOR(pg_catalog.>=) $1) AS in_cur,
           pg_catalog.bool_or(ordered_at OPERATOR(pg_catalog.>=) $3 AND ordered_at OPERATOR(pg_catalog.<) $4) AS in_prev,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) ($2 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval)) AS rev12_cur,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) ($4 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval) AND ordered_at OPERATOR(pg_catalog.<) $4) AS rev12_prev
      FROM od GROUP BY customer_id),
om AS (
    SELECT pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_revenue,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_revenue,
           pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_orders,
           pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_orders,
           pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_gp,
           pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_gp
      FROM od WHERE ordered_at OPERATOR(pg_catalog.>=) $3),
cm AS (
    SELECT pg_catalog.count(*) FILTER (WHERE first_at OPERATOR(pg_catalog.>=) $1) AS c_new,
           pg_catalog.count(*) FILTER (WHERE first_at OPERATOR(pg_catalog.>=) $3 AND first_at OPERATOR(pg_catalog.<) $4) AS p_new,
           pg_catalog.count(*) FILTER (WHERE in_cur) AS c_active,
           pg_catalog.count(*) FILTER (WHERE in_cur AND n_cur_end OPERATOR(pg_catalog.>=) 2) AS c_repeat,
           pg_catalog.count(*) FILTER (WHERE in_prev) AS p_active,
           pg_catalog.count(*) FILTER (WHERE in_prev AND n_prev_end OPERATOR(pg_catalog.>=) 2) AS p_repeat
      FROM cu),
sp AS (
    SELECT channel, spent_on OPERATOR(pg_catalog.>=) $1 AS is_cur, pg_catalog.sum(amount) AS amount
      FROM %3$s WHERE spent_on OPERATOR(pg_catalog.>=) $3 AND spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1, 2),
spm AS (
    SELECT pg_catalog.sum(amount) FILTER (WHERE is_cur) AS c_spend, pg_catalog.sum(amount) FILTER (WHERE NOT is_cur) AS p_spend FROM sp),
-- real (non-automated) contacts that can matter: from the start of the
-- previous period (first responses to its leads) or from a month before its
-- end (the class-A contact check), up to the end
-- a lead's first response: its first real outbound contact at or after its
-- creation (read straight from the source: an index on its time column helps)
lf AS (
    SELECT ix.lead_id, pg_catalog.min(ix.occurred_at) AS first_contact
      FROM %4$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) ix.lead_id
     WHERE NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.occurred_at OPERATOR(pg_catalog.>=) $3 AND ix.occurred_at OPERATOR(pg_catalog.<) $2 AND ix.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
     GROUP BY ix.lead_id),
lx AS (
    SELECT ld.channel, ld.is_cur, pg_catalog.count(*) AS n,
           pg_catalog.count(*) FILTER (WHERE cu.first_at OPERATOR(pg_catalog.<) CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS converted,
           pg_catalog.count(*) FILTER (WHERE lf.first_contact IS NULL
                               OR lf.first_contact OPERATOR(pg_catalog.>=) CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS unanswered
      FROM ld LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) ld.customer_id
              LEFT JOIN lf ON lf.lead_id OPERATOR(pg_catalog.=) ld.lead_id
     GROUP BY 1, 2),
lm AS (
    SELECT pg_catalog.sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, pg_catalog.sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           pg_catalog.sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, pg_catalog.sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           pg_catalog.sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, pg_catalog.sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           pg_catalog.sum((unanswered OPERATOR(pg_catalog.*) coalesce(sp.amount, 0)) OPERATOR(pg_catalog./) lx.n) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           pg_catalog.sum((unanswered OPERATOR(pg_catalog.*) coalesce(sp.amount, 0)) OPERATOR(pg_catalog./) lx.n) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost
      FROM lx LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) lx.channel AND sp.is_cur OPERATOR(pg_catalog.=) lx.is_cur),
iv AS (
    SELECT issued_at, due_at, amount, paid_at FROM %5$s
     WHERE issued_at OPERATOR(pg_catalog.<) $2 AND (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $4)),
im AS (
    SELECT pg_catalog.count(*) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid,
           pg_catalog.sum(amount) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid_amt,
           pg_catalog.avg(extract(epoch FROM $2 OPERATOR(pg_catalog.-) issued_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid_age,
           pg_catalog.count(*) FILTER (WHERE (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AND due_at OPERATOR(pg_catalog.<) $2) AS c_overdue,
           pg_catalog.sum(amount) FILTER (WHERE (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AND due_at OPERATOR(pg_catalog.<) $2) AS c_overdue_amt,
           pg_catalog.count(*) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid,
           pg_catalog.sum(amount) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid_amt,
           pg_catalog.avg(extract(epoch FROM $4 OPERATOR(pg_catalog.-) issued_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid_age,
           pg_catalog.count(*) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4 AND due_at OPERATOR(pg_catalog.<) $4) AS p_overdue,
           pg_catalog.sum(amount) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4 AND due_at OPERATOR(pg_catalog.<) $4) AS p_overdue_amt
      FROM iv),
ev AS (
    SELECT deal_id, changed_at, amount, %7$s AS so
      FROM %6$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASE is computed once per row, not once per aggregate
-- per deal, with the stage names mapped once (to stage_order; NULL = a stage
-- crm.pipeline_stages does not list); deals closed before the previous
-- period matter to no figure (unknown stages are counted on all)
dl AS (
    SELECT deal_id, pg_catalog.min(changed_at) AS created_at, pg_catalog.max(amount) AS amount,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%8$s]::pg_catalog.int4[])) AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%9$s]::pg_catalog.int4[])) AS lost_at,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%10$s]::pg_catalog.int4[])) AS open_cur,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%10$s]::pg_catalog.int4[]) AND changed_at OPERATOR(pg_catalog.<) $4) AS open_prev,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(so) AS unknown
      FROM ev GROUP BY deal_id),
dc AS MATERIALIZED (
    SELECT dl.*, least(won_at, lost_at) AS closed_at,
           won_at IS NOT NULL AND won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at) AS is_won,
           %11$s AS p_cur, %12$s AS p_prev
      FROM dl
     WHERE least(won_at, lost_at) IS NULL OR least(won_at, lost_at) OPERATOR(pg_catalog.>=) $3 OR unknown OPERATOR(pg_catalog.>) 0),
dm AS (
    SELECT pg_catalog.count(*) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_won,
           pg_catalog.count(*) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_lost,
           pg_catalog.count(*) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_won,
           pg_catalog.count(*) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_lost,
           pg_catalog.sum(amount) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_lost_amt,
           pg_catalog.sum(amount) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_lost_amt,
           pg_catalog.avg(amount) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_avg_won,
           pg_catalog.avg(amount) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_avg_won,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_cycle,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_cycle,
           pg_catalog.count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open,
           pg_catalog.count(*) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4)) AS p_open,
           pg_catalog.sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open_amt,
           pg_catalog.sum(amount) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4)) AS p_open_amt,
           pg_catalog.sum(amount OPERATOR(pg_catalog.*) p_cur) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_weighted,
           pg_catalog.sum(amount OPERATOR(pg_catalog.*) p_prev) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4)) AS p_weighted,
           crm._check_stages(pg_catalog.sum(unknown)) AS stages_ok
      FROM dc),
-- lost deals by the most advanced open stage they reached
lost AS (
    SELECT st.stage, st.stage_order,
           coalesce(pg_catalog.sum(dc.amount) FILTER (WHERE dc.closed_at OPERATOR(pg_catalog.>=) $1), 0) AS c_amt,
           coalesce(pg_catalog.sum(dc.amount) FILTER (WHERE dc.closed_at OPERATOR(pg_catalog.<) $4), 0) AS p_amt
      FROM st LEFT JOIN dc ON dc.open_cur OPERATOR(pg_catalog.=) st.stage_order AND NOT dc.is_won AND dc.closed_at OPERATOR(pg_catalog.>=) $3
     WHERE st.outcome OPERATOR(pg_catalog.=) 'open'
     GROUP BY st.stage, st.stage_order),
-- class A (crm.abc_class semantics, 0.80 of the revenue of the 12 months
-- before the period end; the tests check it against crm.abc_class) customers
-- without a real contact within the class-A interval of crm.coverage_policy
-- (default 1 month) before the end
lc AS (
    SELECT customer_id, pg_catalog.max(occurred_at) AS last_cur, pg_catalog.max(occurred_at) FILTER (WHERE occurred_at OPERATOR(pg_catalog.<) $4) AS last_prev
      FROM %13$s
     WHERE customer_id IS NOT NULL AND NOT automated
       AND occurred_at OPERATOR(pg_catalog.>=) ($4 OPERATOR(pg_catalog.-) (SELECT a_int FROM pol)) AND occurred_at OPERATOR(pg_catalog.<) $2
     GROUP BY customer_id),
-- class A by crm.abc_class itself (a C window function over all customers,
-- no sort) at both period ends
ab AS (
    SELECT customer_id, crm.abc_class(rev12_cur::pg_catalog.float8) OVER () AS c_cls,
           crm.abc_class(rev12_prev::pg_catalog.float8) OVER () AS p_cls
      FROM cu),
am AS (
    SELECT pg_catalog.count(*) FILTER (WHERE ab.c_cls OPERATOR(pg_catalog.=) 'A'
                             AND (lc.last_cur IS NULL OR lc.last_cur OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) pol.a_int))) AS c_a_overdue,
           pg_catalog.count(*) FILTER (WHERE ab.p_cls OPERATOR(pg_catalog.=) 'A'
                             AND (lc.last_prev IS NULL OR lc.last_prev OPERATOR(pg_catalog.<) ($4 OPERATOR(pg_catalog.-) pol.a_int))) AS p_a_overdue
      FROM ab CROSS JOIN pol LEFT JOIN lc ON lc.customer_id OPERATOR(pg_catalog.=) ab.customer_id
     WHERE ab.c_cls OPERATOR(pg_catalog.=) 'A' OR ab.p_cls OPERATOR(pg_catalog.=) 'A'),
rows AS (
    SELECT v.*
      FROM om, cm, spm, lm, im, dm, am,
      LATERAL (VALUES
        (1,  'acquisition', 'leads_in', coalesce(c_leads, 0), coalesce(p_leads, 0), 'count'),
        (2,  'acquisition', 'new_buyers', c_new::numeric, p_new::numeric, 'count'),
        (3,  'acquisition', 'lead_to_buyer_conversion', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_conv) OPERATOR(pg_catalog./) CASE WHEN c_leads OPERATOR(pg_catalog.<>) 0 THEN c_leads END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_conv) OPERATOR(pg_catalog./) CASE WHEN p_leads OPERATOR(pg_catalog.<>) 0 THEN p_leads END, 2), 'pct'),
        (4,  'acquisition', 'marketing_spend', coalesce(c_spend, 0), coalesce(p_spend, 0), 'money'),
        (5,  'acquisition', 'cac', pg_catalog.round(coalesce(c_spend, 0) OPERATOR(pg_catalog./) CASE WHEN c_new OPERATOR(pg_catalog.<>) 0 THEN c_new END, 2), pg_catalog.round(coalesce(p_spend, 0) OPERATOR(pg_catalog./) CASE WHEN p_new OPERATOR(pg_catalog.<>) 0 THEN p_new END, 2), 'money'),
        (6,  'sales', 'revenue', coalesce(c_revenue, 0), coalesce(p_revenue, 0), 'money'),
        (7,  'sales', 'orders', c_orders::numeric, p_orders::numeric, 'count'),
        (8,  'sales', 'average_check', pg_catalog.round(c_revenue OPERATOR(pg_catalog./) CASE WHEN c_orders OPERATOR(pg_catalog.<>) 0 THEN c_orders END, 2), pg_catalog.round(p_revenue OPERATOR(pg_catalog./) CASE WHEN p_orders OPERATOR(pg_catalog.<>) 0 THEN p_orders END, 2), 'money'),
        (9,  'sales', 'repeat_purchase_rate', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_repeat) OPERATOR(pg_catalog./) CASE WHEN c_active OPERATOR(pg_catalog.<>) 0 THEN c_active END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_repeat) OPERATOR(pg_catalog./) CASE WHEN p_active OPERATOR(pg_catalog.<>) 0 THEN p_active END, 2), 'pct'),
        (10, 'sales', 'gross_profit', coalesce(c_gp, 0), coalesce(p_gp, 0), 'money'),
        (11, 'sales', 'roi', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(c_gp, 0) OPERATOR(pg_catalog.-) c_spend)) OPERATOR(pg_catalog./) CASE WHEN c_spend OPERATOR(pg_catalog.<>) 0 THEN c_spend END, 2),
                             pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(p_gp, 0) OPERATOR(pg_catalog.-) p_spend)) OPERATOR(pg_catalog./) CASE WHEN p_spend OPERATOR(pg_catalog.<>) 0 THEN p_spend END, 2), 'pct'),
        (12, 'pipeline', 'win_rate', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_won) OPERATOR(pg_catalog./) CASE WHEN (c_won OPERATOR(pg_catalog.+) c_lost) OPERATOR(pg_catalog.<>) 0 THEN (c_won OPERATOR(pg_catalog.+) c_lost) END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_won) OPERATOR(pg_catalog./) CASE WHEN (p_won OPERATOR(pg_catalog.+) p_lost) OPERATOR(pg_catalog.<>) 0 THEN (p_won OPERATOR(pg_catalog.+) p_lost) END, 2), 'pct'),
        (13, 'pipeline', 'deals_won', c_won::numeric, p_won::numeric, 'count'),
        (14, 'pipeline', 'average_won_deal', pg_catalog.round(c_avg_won, 2), pg_catalog.round(p_avg_won, 2), 'money'),
        (15, 'pipeline', 'sales_cycle', pg_catalog.round(c_cycle, 2), pg_catalog.round(p_cycle, 2), 'days'),
        (16, 'pipeline', 'open_deals', c_open::numeric, p_open::numeric, 'count'),
        (17, 'pipeline', 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0), 'money'),
        (18, 'pipeline', 'weighted_pipeline', pg_catalog.round(coalesce(c_weighted, 0), 2), pg_catalog.round(coalesce(p_weighted, 0), 2), 'money'),
        (19, 'pipeline', 'sales_velocity',
             pg_catalog.round(((c_open OPERATOR(pg_catalog.*) (c_won::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN (c_won OPERATOR(pg_catalog.+) c_lost) OPERATOR(pg_catalog.<>) 0 THEN (c_won OPERATOR(pg_catalog.+) c_lost) END)) OPERATOR(pg_catalog.*) c_avg_won) OPERATOR(pg_catalog./) CASE WHEN c_cycle OPERATOR(pg_catalog.<>) 0 THEN c_cycle END, 2),
             pg_catalog.round(((p_open OPERATOR(pg_catalog.*) (p_won::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN (p_won OPERATOR(pg_catalog.+) p_lost) OPERATOR(pg_catalog.<>) 0 THEN (p_won OPERATOR(pg_catalog.+) p_lost) END)) OPERATOR(pg_catalog.*) p_avg_won) OPERATOR(pg_catalog./) CASE WHEN p_cycle OPERATOR(pg_catalog.<>) 0 THEN p_cycle END, 2), 'money_per_day'),
        (20, 'money_lost', 'deals_lost', c_lost::numeric, p_lost::numeric, 'count'),
        (21, 'money_lost', 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0), 'money'),
        (1000, 'money_lost', 'unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric, 'count'),
        (1001, 'money_lost', 'unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0), 'money'),
        (1002, 'money_lost', 'unpaid_invoice_age', pg_catalog.round(c_unpaid_age, 2), pg_catalog.round(p_unpaid_age, 2), 'days'),
        (1003, 'money_lost', 'overdue_invoices', c_overdue::numeric, p_overdue::numeric, 'count'),
        (1004, 'money_lost', 'overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0), 'money'),
        (1005, 'money_lost', 'unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0), 'count'),
        (1006, 'money_lost', 'unanswered_leads_cost', pg_catalog.round(coalesce(c_unans_cost, 0), 2), pg_catalog.round(coalesce(p_unans_cost, 0), 2), 'money'),
        (1007, 'money_lost', 'overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric, 'count')
      ) AS v(ord, section, metric, cur, prev, unit)
     WHERE dm.stages_ok
    UNION ALL
    SELECT 100 OPERATOR(pg_catalog.+) stage_order, 'money_lost', 'lost_value_at_' OPERATOR(pg_catalog.||) stage, c_amt, p_amt, 'money' FROM lost)
SELECT metric, cur, unit, prev,
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (cur OPERATOR(pg_catalog.-) prev)) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.abs(prev) OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.abs(prev) END, 2), section
  FROM rows ORDER BY ord
$sql$,
        crm._source_sql('leads'), crm._source_sql('orders'), crm._source_sql('spend'),
        crm._source_sql('interactions', 'ix'), crm._source_sql('invoices'), crm._source_sql('stage_events'),
        crm._stage_case('order', 'stage'), crm._stage_orders('won'), crm._stage_orders('lost'),
        crm._stage_orders('open'), crm._stage_case('order_probability', 'open_cur'),
        crm._stage_case('order_probability', 'open_prev'), crm._source_sql('interactions'));
    RETURN q;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_coverage(as_of timestamptz)
RETURNS TABLE (customer_id text, manager_id text, channel text, revenue_12m numeric, abc_class text,
               last_contact timestamptz, next_due timestamptz, covered boolean)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real moment, e.g. ''2026-01-01''.';
    END IF;
    -- ABC by the revenue of the 12 months before as_of, crm.abc_class
    -- semantics (share held by strictly larger values < 0.80 -> A, < 0.95 -> B;
    -- the tests check it against crm.abc_class), computed here with one sort
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
c AS (SELECT customer_id, manager_id, channel FROM %1$s WHERE created_at OPERATOR(pg_catalog.<) $1),
r AS (SELECT customer_id, pg_catalog.sum(amount) AS rev FROM %2$s
       WHERE ordered_at OPERATOR(pg_catalog.>=) ($1 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval) AND ordered_at OPERATOR(pg_catalog.<) $1 GROUP BY customer_id),
x AS (SELECT customer_id, pg_catalog.max(occurred_at) AS last_at FROM %3$s
       WHERE NOT automated AND occurred_at OPERATOR(pg_catalog.<) $1 AND customer_id IS NOT NULL GROUP BY customer_id),
-- A / B thresholds: the smallest revenue whose running sum of the larger
-- ones (sorted descending) is < 0.80 / < 0.95 of the total (abc_class semantics)
rs AS (SELECT rev, pg_catalog.sum(rev) OVER (ORDER BY rev DESC ROWS UNBOUNDED PRECEDING) OPERATOR(pg_catalog.-) rev AS before,
              pg_catalog.sum(rev) OVER () AS total
         FROM r WHERE rev OPERATOR(pg_catalog.>) 0),
th AS MATERIALIZED (SELECT pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.80 OPERATOR(pg_catalog.*) total)) AS a, pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.95 OPERATOR(pg_catalog.*) total)) AS b
         FROM rs),
cl AS (
    SELECT c.customer_id, c.manager_id, c.channel, r.rev,
           CASE WHEN r.rev OPERATOR(pg_catalog.>=) th.a THEN 'A' WHEN r.rev OPERATOR(pg_catalog.>=) th.b THEN 'B' ELSE 'C' END AS cls
      FROM c CROSS JOIN th LEFT JOIN r ON r.customer_id OPERATOR(pg_catalog.=) c.customer_id),
pol AS MATERIALIZED (SELECT k.cls, crm._dashboard_coverage_interval(k.cls) AS iv FROM (VALUES ('A'), ('B'), ('C')) AS k(cls))
SELECT cl.customer_id::pg_catalog.text, cl.manager_id::pg_catalog.text, cl.channel::pg_catalog.text, coalesce(cl.rev, 0), cl.cls,
       x.last_at, x.last_at OPERATOR(pg_catalog.+) pol.iv, coalesce(x.last_at OPERATOR(pg_catalog.>=) ($1 OPERATOR(pg_catalog.-) pol.iv), false)
  FROM cl JOIN pol ON pol.cls OPERATOR(pg_catalog.=) cl.cls LEFT JOIN x ON x.customer_id OPERATOR(pg_catalog.=) cl.customer_id
$sql$, crm._source_sql('customers'), crm._source_sql('orders'), crm._source_sql('interactions'))
    USING as_of;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_channels(period_from date, period_to date)
RETURNS TABLE (channel text, leads bigint, new_buyers bigint, conversion_pct numeric, revenue numeric,
               gross_profit numeric, spend numeric, cac numeric, roi_pct numeric, ltv numeric, ltv_cac numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
cu AS MATERIALIZED (SELECT customer_id, channel FROM %1$s),
od AS (SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at OPERATOR(pg_catalog.<) $2),
b AS MATERIALIZED (
    SELECT customer_id, pg_catalog.min(ordered_at) AS first_at, pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) AS gp_to_date,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS rev, pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS gp
      FROM od GROUP BY customer_id),
bc AS (
    SELECT coalesce(cu.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit,
           pg_catalog.avg(b.gp_to_date) AS ltv
      FROM b LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) b.customer_id GROUP BY 1),
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.<) $2) AS converted
      FROM %3$s LEFT JOIN b ON b.customer_id OPERATOR(pg_catalog.=) l.customer_id
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %4$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
ch AS (SELECT channel FROM bc UNION SELECT channel FROM ld UNION SELECT channel FROM sp)
SELECT ch.channel, coalesce(ld.leads, 0), coalesce(bc.new_buyers, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) ld.converted) OPERATOR(pg_catalog./) CASE WHEN ld.leads OPERATOR(pg_catalog.<>) 0 THEN ld.leads END, 2),
       coalesce(bc.revenue, 0), coalesce(bc.gross_profit, 0), coalesce(sp.spend, 0),
       pg_catalog.round(sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(bc.gross_profit, 0) OPERATOR(pg_catalog.-) sp.spend)) OPERATOR(pg_catalog./) CASE WHEN sp.spend OPERATOR(pg_catalog.<>) 0 THEN sp.spend END, 2),
       pg_catalog.round(bc.ltv, 2),
       pg_catalog.round(bc.ltv OPERATOR(pg_catalog./) CASE WHEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) OPERATOR(pg_catalog.<>) 0 THEN (sp.spend OPERATOR(pg_catalog./) CASE WHEN bc.new_buyers OPERATOR(pg_catalog.<>) 0 THEN bc.new_buyers END) END, 2)
  FROM ch LEFT JOIN bc ON bc.channel OPERATOR(pg_catalog.=) ch.channel LEFT JOIN ld ON ld.channel OPERATOR(pg_catalog.=) ch.channel
          LEFT JOIN sp ON sp.channel OPERATOR(pg_catalog.=) ch.channel
 ORDER BY ch.channel
$sql$, crm._source_sql('customers'), crm._source_sql('orders'),
       crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    USING b.cur_from, b.cur_to;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_managers(period_from date, period_to date)
RETURNS TABLE (manager_id text, leads bigint, answered_leads bigint, unanswered_leads bigint,
               median_response_minutes numeric, deals_won bigint, deals_lost bigint, win_rate_pct numeric,
               revenue numeric, customers bigint, covered_customers bigint, coverage_pct numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_managers', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_managers');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
ld AS MATERIALIZED (
    SELECT lead_id, created_at, manager_id::pg_catalog.text AS manager_id FROM %1$s
     WHERE created_at OPERATOR(pg_catalog.>=) $1 AND created_at OPERATOR(pg_catalog.<) $2),
fc AS (
    SELECT x.lead_id, pg_catalog.min(x.occurred_at) AS first_contact
      FROM %2$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) x.lead_id
     WHERE NOT x.automated AND x.direction OPERATOR(pg_catalog.=) 'outbound' AND x.occurred_at OPERATOR(pg_catalog.>=) $1 AND x.occurred_at OPERATOR(pg_catalog.<) $2
       AND x.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
     GROUP BY x.lead_id),
lm AS (
    SELECT ld.manager_id, pg_catalog.count(*) AS leads, pg_catalog.count(fc.first_contact) AS answered,
           pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fc.first_contact OPERATOR(pg_catalog.-) ld.created_at) OPERATOR(pg_catalog./) 60) AS med
      FROM ld LEFT JOIN fc ON fc.lead_id OPERATOR(pg_catalog.=) ld.lead_id GROUP BY 1),
dl AS (
    SELECT e.deal_id, pg_catalog.min(e.manager_id::pg_catalog.text) AS manager_id,
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(e.changed_at) FILTER (WHERE e.outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.count(*) FILTER (WHERE e.outcome IS NULL) AS n_unknown
      -- OFFSET 0 fences the subquery: the stage CASE is computed once per row, not once per aggregate
      FROM (SELECT deal_id, changed_at, manager_id, %6$s AS outcome FROM %3$s OFFSET 0) AS e
     WHERE e.changed_at OPERATOR(pg_catalog.<) $2 GROUP BY e.deal_id),
dm AS (
    SELECT manager_id,
           pg_catalog.count(*) FILTER (WHERE won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at)) AS won,
           pg_catalog.count(*) FILTER (WHERE lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity')) AS lost
      FROM dl WHERE least(won_at, lost_at) OPERATOR(pg_catalog.>=) $1 GROUP BY 1),
cv AS (
    SELECT c.manager_id, pg_catalog.count(*) AS customers, pg_catalog.count(*) FILTER (WHERE c.covered) AS covered
      FROM crm.dashboard_coverage($2) c GROUP BY 1),
cu AS MATERIALIZED (SELECT customer_id, manager_id::pg_catalog.text AS manager_id FROM %4$s),
rv AS (
    SELECT cu.manager_id, pg_catalog.sum(o.amount) AS revenue
      FROM %5$s LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) o.customer_id
     WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1 AND o.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
m AS (SELECT manager_id FROM lm UNION SELECT manager_id FROM dm UNION SELECT manager_id FROM cv
      UNION SELECT manager_id FROM rv)
SELECT m.manager_id, coalesce(lm.leads, 0), coalesce(lm.answered, 0), coalesce(lm.leads OPERATOR(pg_catalog.-) lm.answered, 0),
       pg_catalog.round(lm.med::numeric, 2), coalesce(dm.won, 0), coalesce(dm.lost, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) dm.won) OPERATOR(pg_catalog./) CASE WHEN (dm.won OPERATOR(pg_catalog.+) dm.lost) OPERATOR(pg_catalog.<>) 0 THEN (dm.won OPERATOR(pg_catalog.+) dm.lost) END, 2),
       coalesce(rv.revenue, 0), coalesce(cv.customers, 0), coalesce(cv.covered, 0),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) cv.covered) OPERATOR(pg_catalog./) CASE WHEN cv.customers OPERATOR(pg_catalog.<>) 0 THEN cv.customers END, 2)
  FROM m LEFT JOIN lm ON coalesce(pg_catalog.texteq(lm.manager_id, m.manager_id), lm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN dm ON coalesce(pg_catalog.texteq(dm.manager_id, m.manager_id), dm.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN cv ON coalesce(pg_catalog.texteq(cv.manager_id, m.manager_id), cv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN rv ON coalesce(pg_catalog.texteq(rv.manager_id, m.manager_id), rv.manager_id IS NULL AND m.manager_id IS NULL)
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY m.manager_id
$sql$, crm._source_sql('leads'), crm._source_sql('interactions', 'x'), crm._source_sql('stage_events'),
       crm._source_sql('customers'), crm._source_sql('orders', 'o'), crm._stage_case('outcome', 'stage'))
    USING b.cur_from, b.cur_to;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_pipeline(period_from date, period_to date)
RETURNS TABLE (stage text, stage_order int, outcome text, probability numeric, entered bigint,
               open_deals bigint, open_value numeric, weighted_value numeric, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    nstages int;
    entered_sums text;
BEGIN
    b := crm._period_bounds('crm.dashboard_pipeline', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_pipeline');
    SELECT pg_catalog.count(*) INTO nstages FROM crm.pipeline_stages;
    IF nstages OPERATOR(pg_catalog.>) 62 THEN
        RAISE EXCEPTION 'at most 62 pipeline stages, crm.pipeline_stages has %', nstages
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- per deal, the stages entered in the period as a bit mask; then one sum per stage
    SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.sum((entered_mask OPERATOR(pg_catalog.>>) %s) OPERATOR(pg_catalog.&) 1::pg_catalog.int8)', k), ', ' ORDER BY k)
      INTO entered_sums FROM pg_catalog.generate_series(1, nstages) AS k;
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome, pg_catalog.row_number() OVER (ORDER BY stage_order)::int AS rk
         FROM crm.pipeline_stages),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS stage_order, %3$s AS outcome, %4$s AS rk
      FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.max(amount) AS amount,
           pg_catalog.max(stage_order) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'open') AS open_stage,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.bit_or(1::pg_catalog.int8 OPERATOR(pg_catalog.<<) rk) FILTER (WHERE changed_at OPERATOR(pg_catalog.>=) $1) AS entered_mask,
           pg_catalog.count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
en AS (SELECT ARRAY[%5$s] AS entered FROM dl WHERE entered_mask IS NOT NULL),
op AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt
      FROM dl WHERE won_at IS NULL AND lost_at IS NULL AND open_stage IS NOT NULL GROUP BY 1),
lo AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt
      FROM dl WHERE lost_at OPERATOR(pg_catalog.>=) $1 AND lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity') GROUP BY 1)
SELECT st.stage, st.stage_order, st.outcome, st.probability, coalesce((SELECT en.entered[st.rk] FROM en), 0)::bigint,
       coalesce(op.n, 0), coalesce(op.amt, 0), pg_catalog.round(coalesce(op.amt, 0) OPERATOR(pg_catalog.*) st.probability, 2),
       coalesce(lo.n, 0), coalesce(lo.amt, 0)
  FROM st LEFT JOIN op ON op.stage_order OPERATOR(pg_catalog.=) st.stage_order
          LEFT JOIN lo ON lo.stage_order OPERATOR(pg_catalog.=) st.stage_order
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY st.stage_order
$sql$, crm._source_sql('stage_events'), crm._stage_case('order', 'stage'), crm._stage_case('outcome', 'stage'),
       crm._stage_case('rank', 'stage'), entered_sums)
    USING b.cur_from, b.cur_to;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_funnel(period_from date, period_to date)
RETURNS TABLE (step_no int, stage text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
               dropped bigint, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_funnel', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_funnel');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
steps AS (
    SELECT pg_catalog.row_number() OVER (ORDER BY stage_order)::int AS step_no, stage
      FROM crm.pipeline_stages WHERE outcome OPERATOR(pg_catalog.=) 'open' OR outcome OPERATOR(pg_catalog.=) 'won'),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS step, %3$s AS outcome FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.min(changed_at) AS started_at, pg_catalog.max(amount) AS amount, pg_catalog.max(step) AS level,
           pg_catalog.bool_or(outcome OPERATOR(pg_catalog.=) 'lost') AS lost, pg_catalog.count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
lv AS (
    SELECT level, pg_catalog.count(*) AS n, pg_catalog.count(*) FILTER (WHERE lost) AS lost_deals,
           coalesce(pg_catalog.sum(amount) FILTER (WHERE lost), 0) AS lost_value
      FROM dl WHERE started_at OPERATOR(pg_catalog.>=) $1 AND level IS NOT NULL GROUP BY level),
f AS (
    SELECT steps.step_no, steps.stage,
           coalesce(pg_catalog.sum(lv.n) OVER (ORDER BY steps.step_no DESC), 0)::bigint AS entered,
           coalesce(lv.lost_deals, 0) AS lost_deals, coalesce(lv.lost_value, 0) AS lost_value
      FROM steps LEFT JOIN lv ON lv.level OPERATOR(pg_catalog.=) steps.step_no)
SELECT f.step_no, f.stage, f.entered,
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) f.entered) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.first_value(f.entered) OVER w OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.first_value(f.entered) OVER w END, 2),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) f.entered) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.lag(f.entered) OVER w OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.lag(f.entered) OVER w END, 2),
       f.entered OPERATOR(pg_catalog.-) pg_catalog.lead(f.entered, 1, f.entered) OVER w,
       f.lost_deals, f.lost_value
  FROM f
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
WINDOW w AS (ORDER BY f.step_no)
 ORDER BY f.step_no
$sql$, crm._source_sql('stage_events'), crm._stage_case('step', 'stage'), crm._stage_case('outcome', 'stage'))
    USING b.cur_from, b.cur_to;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_retention(as_of date)
RETURNS TABLE (cohort date, period_no int, cohort_size bigint, active bigint, retention_pct numeric,
               revenue numeric, cumulative_ltv numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    RETURN QUERY
    SELECT x.cohort, x.period_no, x.cohort_size, x.active, pg_catalog.round(100 OPERATOR(pg_catalog.*) x.retention_rate, 2), x.revenue, x.cumulative_ltv
      FROM crm.cohort_retention(pg_catalog.format('SELECT customer_id, ordered_at, amount FROM %s WHERE ordered_at OPERATOR(pg_catalog.<) %L::pg_catalog.timestamptz',
                                                  crm._source_sql('orders'), (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz),
                                'month', 12) AS x
     WHERE x.cohort OPERATOR(pg_catalog.>) (pg_catalog.date_trunc('month', as_of) OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval)::pg_catalog.date
     ORDER BY x.cohort, x.period_no;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_rfm(as_of date)
RETURNS TABLE (customer_id text, recency_days int, frequency bigint, monetary numeric,
               r int, f int, m int, segment text)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    RETURN QUERY
    SELECT x.customer, x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m, x.segment
      FROM crm.rfm_report('SELECT customer_id, ordered_at, amount FROM ' OPERATOR(pg_catalog.||) crm._source_sql('orders'),
                          (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) AS x
     ORDER BY x.customer;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_abc_xyz(as_of date)
RETURNS TABLE (product_id text, revenue numeric, revenue_share_pct numeric, abc_class text,
               cv numeric, xyz_class text, abc_xyz text)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real date, e.g. ''2025-12-31''.';
    END IF;
    RETURN QUERY
    SELECT x.item, x.revenue, pg_catalog.round(100 OPERATOR(pg_catalog.*) x.share, 2), x.abc, pg_catalog.round(x.cv::numeric, 4), x.xyz, x.abc_xyz
      FROM crm.abc_xyz_report('SELECT product_id, ordered_at, amount, amount FROM ' OPERATOR(pg_catalog.||) crm._source_sql('orders'),
                              (pg_catalog.date_trunc('month', as_of) OPERATOR(pg_catalog.-) '11 months'::pg_catalog.interval)::pg_catalog.timestamptz,
                              (as_of OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamptz, 'month') AS x
     ORDER BY x.revenue DESC, x.item;
END
$$;

CREATE OR REPLACE FUNCTION crm.dashboard_lead_sla(period_from date, period_to date, sla interval DEFAULT NULL)
RETURNS TABLE (channel text, leads bigint, answered bigint, within_sla bigint, never_answered bigint,
               within_sla_pct numeric, median_response_minutes numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_lead_sla', period_from, period_to);
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
ld AS MATERIALIZED (SELECT lead_id, created_at, coalesce(channel, '(unknown)') AS channel FROM %1$s
                     WHERE created_at OPERATOR(pg_catalog.>=) $1 AND created_at OPERATOR(pg_catalog.<) $2),
fc AS (SELECT x.lead_id, pg_catalog.min(x.occurred_at) AS first_contact
         FROM %2$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) x.lead_id
        WHERE NOT x.automated AND x.direction OPERATOR(pg_catalog.=) 'outbound' AND x.occurred_at OPERATOR(pg_catalog.>=) $1 AND x.occurred_at OPERATOR(pg_catalog.<) $2
          AND x.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
        GROUP BY x.lead_id),
j AS (SELECT ld.channel, fc.first_contact OPERATOR(pg_catalog.-) ld.created_at AS resp FROM ld LEFT JOIN fc ON fc.lead_id OPERATOR(pg_catalog.=) ld.lead_id)
SELECT channel, pg_catalog.count(*), pg_catalog.count(resp), pg_catalog.count(*) FILTER (WHERE resp OPERATOR(pg_catalog.<=) $3), pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(resp),
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) pg_catalog.count(*) FILTER (WHERE resp OPERATOR(pg_catalog.<=) $3)) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.count(*) END, 2),
       pg_catalog.round((pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resp) OPERATOR(pg_catalog./) 60))::pg_catalog.numeric, 2)
  FROM j GROUP BY GROUPING SETS ((channel), ())
 ORDER BY GROUPING(channel), channel
$sql$, crm._source_sql('leads'), crm._source_sql('interactions', 'x'))
    USING b.cur_from, b.cur_to, coalesce(sla, crm._lead_sla());
END
$$;

CREATE FUNCTION crm._dashboard_html(period_from date, period_to date,
                                    kpi_rows jsonb, funnel_rows jsonb, heat_rows jsonb, chan_rows jsonb) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kpi    text;
    funnel text;
    heat   text;
    chan   text;
BEGIN
    SELECT string_agg(pg_catalog.format(
               '<tr class="%s"><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n %s">%s</td><td>%s</td></tr>',
               d.section, crm._html(replace(d.metric, '_', ' ')), crm._fmt(d.value), crm._fmt(d.previous_value),
               -- green when the change is good news: lower is better for costs and losses
               CASE WHEN coalesce(d.change_pct, 0) = 0 THEN ''
                    WHEN (d.change_pct > 0) <> (d.section = 'money_lost' OR d.metric IN ('cac', 'sales_cycle', 'marketing_spend'))
                    THEN 'up' ELSE 'down' END,
               CASE WHEN d.change_pct IS NULL THEN '' ELSE crm._fmt(d.change_pct) || '%' END,
               crm._html(d.unit)), E'\n' ORDER BY d.ord)
      INTO kpi
      FROM jsonb_to_recordset(kpi_rows) AS d(metric text, value numeric, unit text, previous_value numeric,
                                             change_pct numeric, section text, ord bigint);

    -- funnel: one bar per step, width proportional to the deals that reached it
    WITH f AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(funnel_rows)
                                AS f(step_no int, stage text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
                                     dropped bigint, lost_deals bigint, lost_value numeric)),
         g AS (SELECT f.*, max(f.entered) OVER () AS fmax, count(*) OVER () AS nfun FROM f),
         h AS (SELECT g.*, CASE WHEN g.fmax > 0 THEN greatest(440.0 * g.entered / g.fmax, 2) ELSE 2 END AS w FROM g)
    SELECT pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="760" height="%s" role="img" aria-label="sales funnel">%s</svg>',
                             max(h.nfun) * 44 + 10,
                             string_agg(pg_catalog.format(
                                 '<rect x="%s" y="%s" width="%s" height="34" fill="#2b6cb0" rx="3"/>'
                                 '<text x="10" y="%s" class="lbl">%s</text>'
                                 '<text x="380" y="%s" text-anchor="middle" class="%s">%s (%s%%)</text>'
                                 '<text x="750" y="%s" text-anchor="end" class="lost">%s</text>',
                                 round(380 - h.w / 2, 1), 5 + (h.step_no - 1) * 44, round(h.w, 1),
                                 27 + (h.step_no - 1) * 44, crm._html(h.stage),
                                 27 + (h.step_no - 1) * 44, CASE WHEN h.w >= 130 THEN 'in' ELSE 'out' END,
                                 crm._fmt(h.entered::numeric), crm._fmt(h.pct_of_first),
                                 27 + (h.step_no - 1) * 44,
                                 CASE WHEN h.lost_value > 0 THEN 'lost ' || crm._fmt(h.lost_value) ELSE '' END),
                                 '' ORDER BY h.step_no))
      INTO funnel
      FROM h;

    -- cohort heat map: rows = cohorts, columns = months since, colour = retention
    WITH t AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(heat_rows)
                                AS t(cohort date, period_no int, cohort_size bigint, active bigint, retention_pct numeric,
                                     revenue numeric, cumulative_ltv numeric)),
         r AS (SELECT t.*, 26 + (dense_rank() OVER (ORDER BY t.cohort) - 1) * 26 AS y FROM t)
    SELECT pg_catalog.format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" role="img" aria-label="cohort retention heat map">'
                             '%s%s</svg>',
                             100 + 12 * 52, 30 + count(DISTINCT r.cohort) * 26,
                             (SELECT string_agg(pg_catalog.format('<text x="%s" y="18" text-anchor="middle" class="ax">%s</text>', 126 + p * 52, p), '')
                                FROM generate_series(0, 11) AS p),
                             string_agg(pg_catalog.format(
                                 '%s<rect x="%s" y="%s" width="50" height="24" fill="hsl(210,70%%,%s%%)"/>'
                                 '<text x="%s" y="%s" text-anchor="middle" class="%s">%s</text>',
                                 CASE WHEN r.period_no = 0 THEN pg_catalog.format('<text x="4" y="%s" class="ax">%s (%s)</text>',
                                                                              r.y + 17, to_char(r.cohort, 'YYYY-MM'), r.cohort_size) ELSE '' END,
                                 100 + r.period_no * 52, r.y, round(95 - 0.6 * r.retention_pct, 1),
                                 126 + r.period_no * 52, r.y + 17,
                                 CASE WHEN r.retention_pct > 55 THEN 'cw' ELSE 'cb' END, round(r.retention_pct) || '%'),
                                 '' ORDER BY r.cohort, r.period_no))
      INTO heat
      FROM r;

    -- channels: a table with an ROI bar
    SELECT string_agg(pg_catalog.format(
               '<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s%%</td><td class="n">%s</td>'
               '<td class="n">%s</td><td class="n">%s</td><td class="n">%s</td>'
               '<td><svg xmlns="http://www.w3.org/2000/svg" width="160" height="14"><rect x="0" y="2" width="%s" height="10" fill="%s"/></svg> %s</td></tr>',
               crm._html(c.channel), crm._fmt(c.leads::numeric), crm._fmt(c.new_buyers::numeric), crm._fmt(c.conversion_pct),
               crm._fmt(c.revenue), crm._fmt(c.spend), crm._fmt(c.cac), crm._fmt(c.ltv_cac),
               CASE WHEN c.roi_pct IS NULL THEN 0 ELSE round(least(greatest(abs(c.roi_pct), 0), mx) / nullif(mx, 0) * 160, 1) END,
               CASE WHEN c.roi_pct < 0 THEN '#c53030' ELSE '#2f855a' END,
               CASE WHEN c.roi_pct IS NULL THEN 'no spend' ELSE crm._fmt(c.roi_pct) || '%' END), E'\n' ORDER BY c.revenue DESC)
      INTO chan
      FROM (SELECT c.*, max(abs(c.roi_pct)) OVER () AS mx
              FROM jsonb_to_recordset(chan_rows) AS c(channel text, leads bigint, new_buyers bigint, conversion_pct numeric,
                                                     revenue numeric, gross_profit numeric, spend numeric, cac numeric,
                                                     roi_pct numeric, ltv numeric, ltv_cac numeric)) AS c;

    RETURN pg_catalog.format($html$<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Owner dashboard %1$s .. %2$s</title>
<style>
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#1a202c;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} p.sub{color:#4a5568;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 10px;border-bottom:1px solid #e2e8f0;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums} td.up{color:#2f855a} td.down{color:#c53030}
tr.money_lost td:first-child{color:#c53030} th{background:#edf2f7}
svg text{font-family:DejaVu Sans,Arial,sans-serif;font-size:12px} .lbl{font-weight:bold} .in{fill:#fff;font-weight:bold}
.out{fill:#1a202c;font-weight:bold;paint-order:stroke;stroke:#fff;stroke-width:3px} .lost{fill:#c53030} .ax{fill:#4a5568} .cw{fill:#fff} .cb{fill:#1a202c}
.cols{display:flex;gap:40px;flex-wrap:wrap}
</style></head><body>
<h1>Owner dashboard</h1>
<p class="sub">%1$s .. %2$s, compared with the previous period of equal length. Generated by crm.dashboard_html.</p>
<div class="cols"><div>
<h2>Figures</h2>
<table><tr><th>metric</th><th>value</th><th>previous</th><th>change</th><th>unit</th></tr>
%3$s
</table></div><div>
<h2>Sales funnel (deals started in the period)</h2>
%4$s
<h2>Channels</h2>
<table><tr><th>channel</th><th>leads</th><th>new buyers</th><th>conversion</th><th>revenue</th><th>spend</th><th>CAC</th><th>LTV/CAC</th><th>ROI</th></tr>
%5$s
</table>
</div></div>
<h2>Monthly buyer cohorts: share still buying, by months since the first order</h2>
%6$s
</body></html>
$html$, period_from, period_to, coalesce(kpi, ''), coalesce(funnel, ''), coalesce(chan, ''), coalesce(heat, ''));
END
$$;
COMMENT ON FUNCTION crm._dashboard_html(date, date, jsonb, jsonb, jsonb, jsonb) IS
'Draws the page of crm.dashboard_html from the rows of crm.owner_dashboard (with their position as ord), crm.dashboard_funnel, crm.dashboard_retention and crm.dashboard_channels, each a jsonb array of row objects.';

CREATE OR REPLACE FUNCTION crm.dashboard_html(period_from date, period_to date) RETURNS text
LANGUAGE plpgsql VOLATILE
-- no SET search_path: the reports run the registered sources with the
-- caller's path; everything here is qualified, the page is drawn by the
-- pinned crm._dashboard_html
AS $$
BEGIN
    RETURN crm._dashboard_html(period_from, period_to,
        -- first: validates the period and the sources
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(o) ORDER BY o.ord)
           FROM crm.owner_dashboard(period_from, period_to) WITH ORDINALITY AS o(metric, value, unit, previous_value, change_pct, section, ord)),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f)) FROM crm.dashboard_funnel(period_from, period_to) AS f),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r)) FROM crm.dashboard_retention(period_to) AS r),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c)) FROM crm.dashboard_channels(period_from, period_to) AS c));
END
$$;

-- (crm.funnel_report: redefined once, in section E, with the qualified operators of this section.)

-- ==== end of C ====


-- ==== D. grants, settings, empty periods ====

-- Validation of the dashboard period (finite bounds).

CREATE OR REPLACE FUNCTION crm.set_dashboard_period(period_from date, period_to date) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (period_from IS NULL) <> (period_to IS NULL) THEN
        RAISE EXCEPTION 'set both ends of the dashboard period or neither'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass NULL, NULL to go back to the default (the last complete calendar month).';
    END IF;
    IF NOT (isfinite(period_from) AND isfinite(period_to)) THEN
        RAISE EXCEPTION 'dashboard period bounds must be finite, got % to %', period_from, period_to
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass real dates, e.g. (''2025-12-01'', ''2025-12-31''), or NULL, NULL for the last complete calendar month.';
    END IF;
    IF period_from > period_to THEN
        RAISE EXCEPTION 'period start % is after its end %', period_from, period_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Swap the two dates.';
    END IF;
    INSERT INTO crm.dashboard_settings AS s (singleton, period_from, period_to)
    VALUES (true, set_dashboard_period.period_from, set_dashboard_period.period_to)
    ON CONFLICT (singleton) DO UPDATE SET period_from = excluded.period_from, period_to = excluded.period_to;
END
$$;

CREATE OR REPLACE FUNCTION crm._period_bounds(fname text, period_from date, period_to date,
                                   OUT cur_from timestamptz, OUT cur_to timestamptz,
                                   OUT prev_from timestamptz, OUT prev_to timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF period_from IS NULL OR period_to IS NULL THEN
        RAISE EXCEPTION 'period bounds must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass both dates, e.g. (''2025-12-01'', ''2025-12-31'').';
    END IF;
    IF NOT (isfinite(period_from) AND isfinite(period_to)) THEN
        RAISE EXCEPTION 'period bounds must be finite, got % to %', period_from, period_to
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Pass real dates, e.g. (''2025-12-01'', ''2025-12-31'').';
    END IF;
    IF period_from > period_to THEN
        RAISE EXCEPTION 'period start % is after its end %', period_from, period_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Swap the two dates.';
    END IF;
    cur_from  := period_from::timestamptz;
    cur_to    := (period_to + 1)::timestamptz;
    prev_from := (period_from - (period_to - period_from + 1))::timestamptz;
    prev_to   := cur_from;
END
$$;

-- crm.sources holds SQL text: not readable by everyone (reporting roles are
-- granted SELECT by the administrator); the RFM overrides are read-only
-- configuration the public views need.
REVOKE SELECT ON crm.sources FROM PUBLIC;
GRANT SELECT ON crm.rfm_segment_overrides TO PUBLIC;

-- ==== end of D ====


-- ==== E. bounded and cancellable work, funnel rules ====

-- funnel_report drops rows whose entity is NULL (as cohort_retention and rfm_report do).
-- The C changes (interrupt checks, funnel_counts overflow, one step array per
-- window_funnel_by_name group, mode combinations, state layout FNL3) come with the library.
CREATE OR REPLACE FUNCTION crm.funnel_report(events_sql text, steps text[], "window" interval DEFAULT '30 days',
                                  mode text DEFAULT '')
RETURNS TABLE(step_no int, step text, entered bigint, pct_of_first numeric, pct_of_prev numeric,
              dropped bigint, median_time_from_prev interval, lost_value numeric)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No SET search_path: the inner query is the caller's SQL and must resolve
-- with the caller's search_path; everything used here is schema-qualified.
AS $fn$
DECLARE
    ncols int;
    nsteps int;
BEGIN
    IF steps IS NULL THEN
        RAISE EXCEPTION 'funnel_report steps must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    END IF;
    IF COALESCE(pg_catalog.array_ndims(steps), 1) OPERATOR(pg_catalog.>) 1 THEN
        RAISE EXCEPTION 'funnel_report steps must be a one-dimensional array'
            USING ERRCODE = 'array_subscript_error',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    END IF;
    nsteps := COALESCE(pg_catalog.cardinality(steps), 0);
    IF nsteps OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'funnel_report needs at least 1 step'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the stage names in funnel order, e.g. ARRAY[''lead'', ''qualified'', ''paid''].';
    ELSIF nsteps OPERATOR(pg_catalog.>) 64 THEN
        RAISE EXCEPTION 'funnel_report supports at most 64 steps, got %', nsteps
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Merge steps or split the funnel in two.';
    END IF;
    IF pg_catalog.array_position(steps, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'funnel_report steps must not contain null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF "window" IS NULL THEN
        RAISE EXCEPTION 'funnel_report window must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass an interval such as ''30 days''.';
    END IF;
    IF mode IS NULL THEN
        RAISE EXCEPTION 'funnel_report mode must not be null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass '''' for the default mode.';
    END IF;
    -- window and mode are checked by the aggregate itself, even when the inner query returns no rows
    PERFORM crm.window_funnel("window", mode, NULL::pg_catalog.timestamptz, true);
    ncols := crm._check_inner_query('crm.funnel_report', events_sql,
                                    ARRAY['entity any', 'ts timestamptz', 'step text', 'value numeric?']);
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH per AS (
            SELECT crm.window_funnel_times_by_name($1, $2, e.ts::pg_catalog.timestamptz,
                                                   e.step::pg_catalog.text, $3) AS t,
                   %s AS v
              FROM (%s
                   ) AS e(entity, ts, step%s)
             WHERE e.entity IS NOT NULL
             GROUP BY e.entity
        ), lv AS (
            SELECT pg_catalog.cardinality(t) AS lvl, t, v FROM per
        ), agg AS (
            SELECT k,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) k) AS entered,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) 1) AS first_n,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.>=) (k OPERATOR(pg_catalog.-) 1)) AS prev_n,
                   pg_catalog.count(*) FILTER (WHERE lvl OPERATOR(pg_catalog.=) k
                                                 AND k OPERATOR(pg_catalog.<) $4) AS dropped,
                   pg_catalog.percentile_cont(0.5::pg_catalog.float8) WITHIN GROUP
                       (ORDER BY (t[k] OPERATOR(pg_catalog.-) t[k OPERATOR(pg_catalog.-) 1]))
                       FILTER (WHERE lvl OPERATOR(pg_catalog.>=) k AND k OPERATOR(pg_catalog.>) 1) AS med,
                   pg_catalog.sum(v) FILTER (WHERE lvl OPERATOR(pg_catalog.=) k
                                               AND k OPERATOR(pg_catalog.<) $4) AS lost
              FROM lv CROSS JOIN pg_catalog.generate_series(1, $4) AS k
             GROUP BY k
        )
        SELECT k, $3[k], entered,
               pg_catalog.round((100::pg_catalog.numeric OPERATOR(pg_catalog.*) entered)
                                OPERATOR(pg_catalog./) CASE WHEN first_n OPERATOR(pg_catalog.<>) 0 THEN first_n END, 2),
               CASE WHEN k OPERATOR(pg_catalog.>) 1 THEN
                   pg_catalog.round((100::pg_catalog.numeric OPERATOR(pg_catalog.*) entered)
                                    OPERATOR(pg_catalog./) CASE WHEN prev_n OPERATOR(pg_catalog.<>) 0 THEN prev_n END, 2) END,
               dropped,
               med,
               CASE WHEN %s THEN COALESCE(lost, 0) END
          FROM agg
         ORDER BY k
    $q$,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN 'pg_catalog.max(e.value::pg_catalog.numeric)'
             ELSE 'NULL::pg_catalog.numeric' END,
        events_sql,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN ', value' ELSE '' END,
        CASE WHEN ncols OPERATOR(pg_catalog.=) 4 THEN 'true' ELSE 'false' END)
    USING "window", mode, steps, nsteps;
END
$fn$;

-- ==== end of E ====


-- ==== F. packaging and install ====

-- ==== end of F ====


-- ==== G. structure: one error style (issue 18) ====
-- report functions' messages without a routine-name prefix (the PL/pgSQL
-- context names the function): crm.lead_first_response and crm.load_demo here,
-- crm.lead_sla's new body in section C

CREATE OR REPLACE FUNCTION crm.lead_first_response(leads_sql text, interactions_sql text)
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

CREATE OR REPLACE FUNCTION crm.load_demo(customers int DEFAULT 5000, seed int DEFAULT 42, as_of date DEFAULT current_date)
RETURNS TABLE(relation text, row_count bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $fn$
#variable_conflict use_variable
DECLARE
    v_n       int := customers;
    v_seed    int := seed;
    v_end     timestamptz;
    v_start   timestamptz;
    v_leads   int;
    v_mgrs    int;
    v_comment text;
BEGIN
    IF v_n IS NULL OR v_seed IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'customers, seed and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_n <= 0 OR v_n > 1000000 THEN
        RAISE EXCEPTION 'customers must be between 1 and 1000000, got %', v_n
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The demo is a small CRM: 5000 customers is the default, 100000 loads in well under a minute.';
    END IF;
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Only ever replace a crm_demo schema that load_demo made.
    SELECT obj_description(n.oid, 'pg_namespace') INTO v_comment
      FROM pg_namespace n WHERE n.nspname = 'crm_demo';
    IF FOUND THEN
        IF v_comment IS DISTINCT FROM 'crm_analytics demo data (crm.load_demo)' THEN
            RAISE EXCEPTION 'schema "crm_demo" exists and was not made by crm.load_demo'
                USING ERRCODE = 'duplicate_schema',
                      HINT = 'Rename or drop that schema first; load_demo replaces only its own.';
        END IF;
        DROP SCHEMA crm_demo CASCADE;
    END IF;
    CREATE SCHEMA crm_demo;
    COMMENT ON SCHEMA crm_demo IS 'crm_analytics demo data (crm.load_demo)';

    IF to_regclass('pg_temp.demo_path') IS NOT NULL THEN
        DROP TABLE pg_temp.demo_path, pg_temp.demo_product_cdf, pg_temp.demo_orders, pg_temp.demo_touch;
    END IF;
    v_end   := as_of::timestamp AT TIME ZONE 'UTC';
    v_start := v_end - interval '730 days';
    v_leads := 3 * v_n;
    v_mgrs  := greatest(3, least(50, v_n / 400));

    -- channels and what one lead costs there
    CREATE TABLE crm_demo.channels (channel text PRIMARY KEY, cost_per_lead numeric NOT NULL);
    INSERT INTO crm_demo.channels VALUES
        ('search_ads', 45), ('social_ads', 28), ('organic', 0), ('referral', 12), ('events', 110);

    CREATE TABLE crm_demo.managers (manager_id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO crm_demo.managers
    SELECT m, 'Manager ' || m FROM generate_series(1, v_mgrs) m;

    -- one row per lead with its whole deal path; turned into the real tables below
    CREATE TEMP TABLE demo_path ON COMMIT DROP AS
    WITH l AS (
        SELECT id,
               CASE WHEN u_ch < 0.30 THEN 'search_ads' WHEN u_ch < 0.60 THEN 'social_ads'
                    WHEN u_ch < 0.80 THEN 'organic' WHEN u_ch < 0.90 THEN 'referral' ELSE 'events' END AS channel,
               -- two yearly seasons: more leads in spring and autumn
               v_start + interval '730 days' * (u_t - 0.35 * sin(4 * pi() * u_t) / (4 * pi())) AS created_at,
               1 + floor(crm._demo_random(v_seed, 3, id) * v_mgrs)::int AS manager_id,
               crm._demo_random(v_seed, 4, id) AS u_score,
               crm._demo_random(v_seed, 5, id) AS u_reach
          FROM (SELECT id, crm._demo_random(v_seed, 1, id) AS u_ch, crm._demo_random(v_seed, 2, id) AS u_t
                  FROM generate_series(1, v_leads) id) s
    ), scored AS (
        SELECT l.*,
               u_score * CASE channel WHEN 'referral' THEN 1.3 WHEN 'organic' THEN 1.15 WHEN 'search_ads' THEN 1.0
                                      WHEN 'events' THEN 0.95 ELSE 0.8 END AS score
          FROM l
    ), ranked AS (
        SELECT s.*,
               created_at <= v_end - interval '35 days'
               AND row_number() OVER (PARTITION BY created_at <= v_end - interval '35 days'
                                      ORDER BY score DESC, id) <= v_n AS converts
          FROM scored s
    ), gaps AS (
        SELECT r.*,
               -- days between stages: exponential, capped at 7 days for deals that close
               least(-ln(1 - crm._demo_random(v_seed, 12, id)) * 2, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g2,
               least(-ln(1 - crm._demo_random(v_seed, 13, id)) * 5, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g3,
               least(-ln(1 - crm._demo_random(v_seed, 14, id)) * 4, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g4,
               least(-ln(1 - crm._demo_random(v_seed, 15, id)) * 7, CASE WHEN converts THEN 7 ELSE 1e9 END) AS g5,
               CASE WHEN converts THEN 5
                    WHEN u_reach < 0.45 THEN 1 WHEN u_reach < 0.70 THEN 2 WHEN u_reach < 0.87 THEN 3 ELSE 4 END AS reach,
               round((CASE channel WHEN 'events' THEN 1500 WHEN 'referral' THEN 1000 WHEN 'search_ads' THEN 700
                                   WHEN 'organic' THEN 800 ELSE 400 END
                      * exp(0.5 * sqrt(-2 * ln(1 - crm._demo_random(v_seed, 20, id)))
                                 * cos(2 * pi() * crm._demo_random(v_seed, 21, id))))::numeric, 2) AS amount
          FROM ranked r
    )
    SELECT id, channel, created_at, manager_id, converts, reach, amount,
           created_at + interval '1 day' * g2 AS t2,
           created_at + interval '1 day' * (g2 + g3) AS t3,
           created_at + interval '1 day' * (g2 + g3 + g4) AS t4,
           created_at + interval '1 day' * (g2 + g3 + g4 + g5) AS t5,
           crm._demo_random(v_seed, 22, id) AS u_lost,
           crm._demo_random(v_seed, 23, id) AS u_reason,
           crm._demo_random(v_seed, 24, id) AS u_lost_gap
      FROM gaps;

    -- stage times after as_of have not happened yet
    UPDATE demo_path SET reach = CASE WHEN t2 > v_end THEN 1 WHEN t3 > v_end THEN 2 WHEN t4 > v_end THEN 3 ELSE 4 END
     WHERE NOT converts AND ((reach >= 2 AND t2 > v_end) OR (reach >= 3 AND t3 > v_end) OR (reach >= 4 AND t4 > v_end));

    CREATE TABLE crm_demo.customers (
        customer_id bigint PRIMARY KEY, lead_id bigint NOT NULL, name text NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, created_at timestamptz NOT NULL);
    INSERT INTO crm_demo.customers
    SELECT row_number() OVER (ORDER BY t5, id), id, '', channel, manager_id, t5
      FROM demo_path WHERE converts;
    UPDATE crm_demo.customers SET name = 'Customer ' || customer_id;

    CREATE TABLE crm_demo.leads (
        lead_id bigint PRIMARY KEY, created_at timestamptz NOT NULL, channel text NOT NULL,
        manager_id int NOT NULL, customer_id bigint);
    INSERT INTO crm_demo.leads
    SELECT p.id, p.created_at, p.channel, p.manager_id, c.customer_id
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     ORDER BY p.id;

    CREATE TABLE crm_demo.deals (
        deal_id bigint PRIMARY KEY, lead_id bigint NOT NULL, customer_id bigint, manager_id int NOT NULL,
        channel text NOT NULL, created_at timestamptz NOT NULL, stage text NOT NULL, amount numeric NOT NULL,
        lost_reason text, closed_at timestamptz);
    INSERT INTO crm_demo.deals
    SELECT d.id, d.id, c.customer_id, d.manager_id, d.channel, d.created_at,
           CASE WHEN d.converts THEN 'paid' WHEN d.lost THEN 'lost'
                ELSE (ARRAY['lead','qualified','proposal','invoice'])[d.reach] END,
           d.amount,
           CASE WHEN d.lost THEN
                CASE WHEN d.reach = 4 THEN 'no payment'
                     ELSE (ARRAY['price','no budget','competitor','no response','not a fit'])[1 + floor(d.u_reason * 5)::int] END
           END,
           CASE WHEN d.converts THEN d.t5 WHEN d.lost THEN d.lost_at END
      FROM (SELECT p.*,
                   (ARRAY[p.created_at, p.t2, p.t3, p.t4])[least(p.reach, 4)]
                     + interval '1 day' * (5 + 25 * p.u_lost_gap) AS lost_at,
                   NOT p.converts
                   AND (ARRAY[p.created_at, p.t2, p.t3, p.t4])[least(p.reach, 4)]
                       + interval '1 day' * (5 + 25 * p.u_lost_gap) <= v_end
                   AND (p.reach < 4 OR p.u_lost < 0.6) AS lost
              FROM demo_path p) d
      LEFT JOIN crm_demo.customers c ON c.lead_id = d.id
     ORDER BY d.id;

    CREATE TABLE crm_demo.deal_events (deal_id bigint NOT NULL, changed_at timestamptz NOT NULL, stage text NOT NULL);
    INSERT INTO crm_demo.deal_events
    SELECT e.deal_id, e.changed_at, e.stage
      FROM (SELECT p.id AS deal_id, s.k, s.stage,
                   (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] AS changed_at
              FROM demo_path p
              JOIN LATERAL unnest(ARRAY['lead','qualified','proposal','invoice','paid']) WITH ORDINALITY AS s(stage, k)
                ON s.k <= p.reach
            UNION ALL
            SELECT d.deal_id, 6, 'lost', d.closed_at FROM crm_demo.deals d WHERE d.stage = 'lost') e
     ORDER BY e.deal_id, e.k;

    CREATE TABLE crm_demo.invoices (
        invoice_id bigint PRIMARY KEY, deal_id bigint NOT NULL, customer_id bigint, issued_at timestamptz NOT NULL,
        due_at timestamptz NOT NULL, amount numeric NOT NULL, paid_at timestamptz);
    INSERT INTO crm_demo.invoices
    SELECT p.id, p.id, c.customer_id, p.t4, p.t4 + interval '14 days', p.amount,
           CASE WHEN p.converts THEN p.t5 END
      FROM demo_path p LEFT JOIN crm_demo.customers c ON c.lead_id = p.id
     WHERE p.reach >= 4
     ORDER BY p.id;

    -- products: Zipf-like popularity (ABC), every third one seasonal (Nov-Dec), every third erratic (XYZ)
    CREATE TABLE crm_demo.products (
        product_id int PRIMARY KEY, name text NOT NULL, category text NOT NULL, price numeric NOT NULL,
        unit_cost numeric NOT NULL);
    INSERT INTO crm_demo.products
    SELECT p, 'Product ' || p, (ARRAY['software','hardware','services','training'])[1 + p % 4],
           round((20 + 480 * crm._demo_random(v_seed, 30, p) ^ 2)::numeric, 2),
           0
      FROM generate_series(1, 40) p;
    UPDATE crm_demo.products
       SET unit_cost = round(price * (0.4 + 0.3 * crm._demo_random(v_seed, 31, product_id))::numeric, 2);

    CREATE TEMP TABLE demo_product_cdf ON COMMIT DROP AS
    SELECT m, product_id,
           coalesce(sum(w) OVER (PARTITION BY m ORDER BY product_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
             / sum(w) OVER (PARTITION BY m) AS lo,
           sum(w) OVER (PARTITION BY m ORDER BY product_id) / sum(w) OVER (PARTITION BY m) AS hi
      FROM (SELECT m, product_id,
                   power(product_id, -1.1)
                   * CASE product_id % 3
                         WHEN 0 THEN CASE WHEN m IN (11, 12) THEN 4.0 ELSE 0.3 END
                         WHEN 2 THEN 0.2 + 1.6 * crm._demo_random(v_seed, 32, product_id * 100 + m)
                         ELSE 1.0 END AS w
              FROM crm_demo.products, generate_series(1, 12) m) s;

    -- orders: the paid deal is the first order; repeat orders while the customer stays
    CREATE TEMP TABLE demo_orders ON COMMIT DROP AS
    SELECT c.customer_id, 0 AS j, c.created_at AS ordered_at, d.amount AS deal_amount,
           crm._demo_random(v_seed, 44, c.customer_id * 64) AS u_prod,
           crm._demo_random(v_seed, 45, c.customer_id * 64) AS u_qty
      FROM crm_demo.customers c JOIN crm_demo.deals d ON d.deal_id = c.lead_id
    UNION ALL
    SELECT r.customer_id, j.j,
           r.created_at + (r.span * crm._demo_random(v_seed, 43, r.customer_id * 64 + j.j)),
           NULL,
           crm._demo_random(v_seed, 44, r.customer_id * 64 + j.j),
           crm._demo_random(v_seed, 45, r.customer_id * 64 + j.j)
      FROM (SELECT c.customer_id, c.created_at, s.span,
                   least(60, floor(0.25 * -ln(1 - crm._demo_random(v_seed, 40, c.customer_id))
                                   * extract(epoch FROM s.span) / 2629800
                                   + crm._demo_random(v_seed, 42, c.customer_id)))::int AS k
              FROM crm_demo.customers c
              CROSS JOIN LATERAL (SELECT least(v_end - c.created_at,
                                               interval '1 day' * 30.44 * 10 * -ln(1 - crm._demo_random(v_seed, 41, c.customer_id))) AS span) s) r
      JOIN LATERAL generate_series(1, r.k) AS j(j) ON true;

    CREATE TABLE crm_demo.orders (
        order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, ordered_at timestamptz NOT NULL,
        product_id int NOT NULL, quantity int NOT NULL, amount numeric NOT NULL, cost numeric NOT NULL);
    INSERT INTO crm_demo.orders
    SELECT row_number() OVER (ORDER BY o.ordered_at, o.customer_id, o.j),
           o.customer_id, o.ordered_at, f.product_id, q.qty,
           coalesce(o.deal_amount, p.price * q.qty),
           round(coalesce(o.deal_amount, p.price * q.qty) * p.unit_cost / p.price, 2)
      FROM demo_orders o
      CROSS JOIN LATERAL (SELECT CASE WHEN o.deal_amount IS NULL THEN 1 + floor(-ln(1 - o.u_qty) * 1.5)::int ELSE 1 END AS qty) q
      JOIN demo_product_cdf f ON f.m = extract(month FROM o.ordered_at AT TIME ZONE 'UTC')::int
                             AND o.u_prod >= f.lo AND o.u_prod < f.hi
      JOIN crm_demo.products p ON p.product_id = f.product_id;

    -- marketing spend per channel and month: leads there x cost per lead, +-10 %
    CREATE TABLE crm_demo.spend (channel text NOT NULL, month date NOT NULL, amount numeric NOT NULL,
                                 PRIMARY KEY (channel, month));
    INSERT INTO crm_demo.spend
    SELECT l.channel, l.month,
           round(l.n * ch.cost_per_lead * (0.9 + 0.2 * crm._demo_random(v_seed, 50, hashtext(l.channel || l.month::text))))::numeric
      FROM (SELECT channel, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n
              FROM crm_demo.leads GROUP BY 1, 2) l
      JOIN crm_demo.channels ch USING (channel)
     WHERE ch.cost_per_lead > 0
     ORDER BY 1, 2;

    -- interactions: first responses to leads, touches along deals, account care, mailings
    CREATE TEMP TABLE demo_touch ON COMMIT DROP AS
    -- (a) first response to a lead: lognormal delay (median 20 min); 8 % of non-buyers never answered
    SELECT NULL::bigint AS customer_id, p.id AS lead_id, p.manager_id, 'call' AS kind, 'outbound' AS direction,
           false AS automated,
           p.created_at + interval '1 minute'
               * least(4320, exp(ln(20) + 1.5 * sqrt(-2 * ln(1 - crm._demo_random(v_seed, 60, p.id)))
                                               * cos(2 * pi() * crm._demo_random(v_seed, 61, p.id)))) AS occurred_at,
           1 AS src, p.id AS key
      FROM demo_path p
     WHERE p.converts OR p.reach > 1 OR crm._demo_random(v_seed, 62, p.id) >= 0.15
    UNION ALL
    -- (b) a meeting or call before each stage change, an inbound email now and then
    SELECT NULL, p.id, p.manager_id,
           CASE WHEN crm._demo_random(v_seed, 63, p.id * 8 + s.k) < 0.5 THEN 'meeting' ELSE 'call' END,
           'outbound', false,
           (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] - interval '2 hours', 2, p.id * 8 + s.k
      FROM demo_path p JOIN generate_series(2, 5) s(k) ON s.k <= p.reach
    UNION ALL
    SELECT NULL, p.id, p.manager_id, 'email', 'inbound', false,
           (ARRAY[p.created_at, p.t2, p.t3, p.t4, p.t5])[s.k] - interval '1 day', 3, p.id * 8 + s.k
      FROM demo_path p JOIN generate_series(2, 5) s(k) ON s.k <= p.reach
     WHERE crm._demo_random(v_seed, 64, p.id * 8 + s.k) < 0.5
    UNION ALL
    -- (c) account care after the first purchase, each customer at their own (sometimes neglected) cadence
    SELECT c.customer_id, NULL, c.manager_id,
           CASE WHEN crm._demo_random(v_seed, 71, c.customer_id * 256 + j) < 0.6 THEN 'call'
                WHEN crm._demo_random(v_seed, 71, c.customer_id * 256 + j) < 0.85 THEN 'email' ELSE 'meeting' END,
           CASE WHEN crm._demo_random(v_seed, 72, c.customer_id * 256 + j) < 0.8 THEN 'outbound' ELSE 'inbound' END,
           false,
           c.created_at + interval '1 day' * cad.days * (j + 0.3 * crm._demo_random(v_seed, 73, c.customer_id * 256 + j)),
           4, c.customer_id * 256 + j
      FROM crm_demo.customers c
      CROSS JOIN LATERAL (SELECT 20 + 160 * crm._demo_random(v_seed, 70, c.customer_id) AS days) cad
      JOIN LATERAL generate_series(1, least(200, floor(extract(epoch FROM v_end - c.created_at) / 86400 / cad.days)::int)) j ON true
    UNION ALL
    -- (d) the automated quarterly newsletter to every customer
    SELECT c.customer_id, NULL, c.manager_id, 'mailing', 'outbound', true,
           q.at + interval '9 hours', 5, c.customer_id * 16 + row_number() OVER (PARTITION BY c.customer_id ORDER BY q.at)
      FROM crm_demo.customers c
      JOIN generate_series(date_trunc('quarter', v_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', v_end, interval '3 months') q(at)
        ON q.at > c.created_at;

    CREATE TABLE crm_demo.interactions (
        interaction_id bigint PRIMARY KEY, customer_id bigint, lead_id bigint, manager_id int NOT NULL,
        kind text NOT NULL, direction text NOT NULL, automated boolean NOT NULL, occurred_at timestamptz NOT NULL);
    INSERT INTO crm_demo.interactions
    SELECT row_number() OVER (ORDER BY occurred_at, src, key), customer_id, lead_id, manager_id, kind, direction,
           automated, occurred_at
      FROM demo_touch WHERE occurred_at <= v_end;

    CREATE INDEX ON crm_demo.deal_events (deal_id, changed_at);
    CREATE INDEX ON crm_demo.orders (customer_id, ordered_at);
    CREATE INDEX ON crm_demo.interactions (customer_id, occurred_at);
    CREATE INDEX ON crm_demo.interactions (lead_id, occurred_at);
    -- the dashboard reads a period of interactions: a CRM indexes their time
    CREATE INDEX ON crm_demo.interactions (occurred_at);
    CREATE INDEX ON crm_demo.leads (created_at);
    CREATE INDEX ON crm_demo.invoices (deal_id);
    ANALYZE crm_demo.channels, crm_demo.managers, crm_demo.customers, crm_demo.leads, crm_demo.deals,
            crm_demo.deal_events, crm_demo.invoices, crm_demo.products, crm_demo.orders, crm_demo.spend,
            crm_demo.interactions;

    DROP TABLE pg_temp.demo_path, pg_temp.demo_product_cdf, pg_temp.demo_orders, pg_temp.demo_touch;

    -- let the source registry (owner dashboard) know about the demo tables
    IF to_regprocedure('crm._register_demo_sources()') IS NOT NULL THEN
        EXECUTE 'SELECT crm._register_demo_sources()';
    END IF;

    RETURN QUERY
    SELECT t.rel, t.cnt FROM (
        SELECT 'crm_demo.channels' AS rel, (SELECT count(*) FROM crm_demo.channels) AS cnt, 1 AS o
        UNION ALL SELECT 'crm_demo.managers', (SELECT count(*) FROM crm_demo.managers), 2
        UNION ALL SELECT 'crm_demo.leads', (SELECT count(*) FROM crm_demo.leads), 3
        UNION ALL SELECT 'crm_demo.deals', (SELECT count(*) FROM crm_demo.deals), 4
        UNION ALL SELECT 'crm_demo.deal_events', (SELECT count(*) FROM crm_demo.deal_events), 5
        UNION ALL SELECT 'crm_demo.invoices', (SELECT count(*) FROM crm_demo.invoices), 6
        UNION ALL SELECT 'crm_demo.customers', (SELECT count(*) FROM crm_demo.customers), 7
        UNION ALL SELECT 'crm_demo.products', (SELECT count(*) FROM crm_demo.products), 8
        UNION ALL SELECT 'crm_demo.orders', (SELECT count(*) FROM crm_demo.orders), 9
        UNION ALL SELECT 'crm_demo.spend', (SELECT count(*) FROM crm_demo.spend), 10
        UNION ALL SELECT 'crm_demo.interactions', (SELECT count(*) FROM crm_demo.interactions), 11) t
    ORDER BY t.o;
END
$fn$;

-- the stage check's message without the caller's name as a prefix
CREATE OR REPLACE FUNCTION crm._require_stages(fname text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.pipeline_stages WHERE outcome = 'won') THEN
        RAISE EXCEPTION 'crm.pipeline_stages has no won stage'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'List your stages: INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome) VALUES (''lead'', 1, 0.1, ''open''), ..., (''won'', 9, 1, ''won''), (''lost'', 10, 0, ''lost'').';
    END IF;
END
$$;

-- ==== end of G ====


-- ==== H. one number per question: shared metric definitions (issue 19) ====

-- Lead SLA: one default for every surface.  crm.lead_sla's sla defaults to
-- NULL = crm._lead_sla() (crm.dashboard_settings.lead_sla, 1 hour), as
-- crm.dashboard_lead_sla and crm.v_lead_sla do (it was 15 minutes).
CREATE OR REPLACE FUNCTION crm.lead_sla(leads_sql text, interactions_sql text,
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
COMMENT ON FUNCTION crm._lead_sla() IS
'The one lead first-response SLA default of crm.lead_sla, crm.dashboard_lead_sla and crm.v_lead_sla: crm.dashboard_settings.lead_sla, default 1 hour.';


-- Owner dashboard: the cost of unanswered leads from the cost per lead of the
-- lead's channel and calendar month (as crm.lead_sla), and overdue class A
-- customers as crm.coverage judges them (never contacted = due one interval
-- after becoming a customer).
-- (crm._owner_dashboard_sql: redefined once more in section J, with this section's changes.)
COMMENT ON FUNCTION crm._owner_dashboard_sql() IS
'The SQL text crm.owner_dashboard runs (registered sources spliced in; $1..$4 = current and previous period bounds).';

-- Contact coverage on the dashboard: a never-contacted customer is due one
-- class interval after becoming a customer, as in crm.coverage.
CREATE OR REPLACE FUNCTION crm.dashboard_coverage(as_of timestamptz)
RETURNS TABLE (customer_id text, manager_id text, channel text, revenue_12m numeric, abc_class text,
               last_contact timestamptz, next_due timestamptz, covered boolean)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be finite, got %', as_of
            USING ERRCODE = 'datetime_field_overflow', HINT = 'Pass a real moment, e.g. ''2026-01-01''.';
    END IF;
    -- ABC by the revenue of the 12 months before as_of, crm.abc_class
    -- semantics (share held by strictly larger values < 0.80 -> A, < 0.95 -> B;
    -- the tests check it against crm.abc_class), computed here with one sort
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
c AS (SELECT customer_id, manager_id, channel, created_at FROM %1$s WHERE created_at OPERATOR(pg_catalog.<) $1),
r AS (SELECT customer_id, pg_catalog.sum(amount) AS rev FROM %2$s
       WHERE ordered_at OPERATOR(pg_catalog.>=) ($1 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval) AND ordered_at OPERATOR(pg_catalog.<) $1 GROUP BY customer_id),
x AS (SELECT customer_id, pg_catalog.max(occurred_at) AS last_at FROM %3$s
       WHERE NOT automated AND occurred_at OPERATOR(pg_catalog.<) $1 AND customer_id IS NOT NULL GROUP BY customer_id),
-- A / B thresholds: the smallest revenue whose running sum of the larger
-- ones (sorted descending) is < 0.80 / < 0.95 of the total (abc_class semantics)
rs AS (SELECT rev, pg_catalog.sum(rev) OVER (ORDER BY rev DESC ROWS UNBOUNDED PRECEDING) OPERATOR(pg_catalog.-) rev AS before,
              pg_catalog.sum(rev) OVER () AS total
         FROM r WHERE rev OPERATOR(pg_catalog.>) 0),
th AS MATERIALIZED (SELECT pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.80 OPERATOR(pg_catalog.*) total)) AS a, pg_catalog.min(rev) FILTER (WHERE before OPERATOR(pg_catalog.<) (0.95 OPERATOR(pg_catalog.*) total)) AS b
         FROM rs),
cl AS (
    SELECT c.customer_id, c.manager_id, c.channel, c.created_at, r.rev,
           CASE WHEN r.rev OPERATOR(pg_catalog.>=) th.a THEN 'A' WHEN r.rev OPERATOR(pg_catalog.>=) th.b THEN 'B' ELSE 'C' END AS cls
      FROM c CROSS JOIN th LEFT JOIN r ON r.customer_id OPERATOR(pg_catalog.=) c.customer_id),
pol AS MATERIALIZED (SELECT k.cls, crm._dashboard_coverage_interval(k.cls) AS iv FROM (VALUES ('A'), ('B'), ('C')) AS k(cls))
SELECT cl.customer_id::pg_catalog.text, cl.manager_id::pg_catalog.text, cl.channel::pg_catalog.text, coalesce(cl.rev, 0), cl.cls,
       -- next due as crm.coverage: last real contact, or (never contacted)
       -- customer since, plus the class interval; covered = not yet past it
       x.last_at, coalesce(x.last_at, cl.created_at) OPERATOR(pg_catalog.+) pol.iv,
       coalesce((coalesce(x.last_at, cl.created_at) OPERATOR(pg_catalog.+) pol.iv) OPERATOR(pg_catalog.>=) $1, false)
  FROM cl JOIN pol ON pol.cls OPERATOR(pg_catalog.=) cl.cls LEFT JOIN x ON x.customer_id OPERATOR(pg_catalog.=) cl.customer_id
$sql$, crm._source_sql('customers'), crm._source_sql('orders'), crm._source_sql('interactions'))
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm.dashboard_coverage(timestamptz) IS
'Per customer as of a moment: ABC class by the revenue of the 12 months before, last real (non-automated) contact, next due contact (the last contact, or the customer''s created_at when never contacted, plus the class interval, as crm.coverage) and whether the customer is covered (next due not before as_of).';
-- ==== end of H ====


-- ==== I. historical LTV with a churn-based lifespan (issue 19) ====
-- historical_ltv gains two output columns (annual_churn, ltv_to_date): a new return
-- type, so DROP + CREATE (nothing in the extension depends on it).
DROP FUNCTION crm.historical_ltv(text, text, numeric);
CREATE FUNCTION crm.historical_ltv(orders_sql text, spend_sql text DEFAULT NULL, margin numeric DEFAULT 1)
RETURNS TABLE(customers bigint, orders bigint, revenue numeric, revenue_per_customer numeric,
              aov numeric, purchase_frequency numeric, lifespan_years numeric, gross_margin numeric,
              ltv numeric, spend numeric, cac numeric, ltv_to_cac numeric, cac_payback_months numeric,
              annual_churn numeric, ltv_to_date numeric)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No SET search_path: the inner queries are the caller's SQL and resolve with
-- the caller's search_path; everything used here is schema-qualified.
AS $fn$
DECLARE
    ncols int;
    orders_cols text;
    cost_expr text;
    spend_expr text;
BEGIN
    IF margin IS NULL OR margin OPERATOR(pg_catalog.<) 0::pg_catalog.numeric OR margin OPERATOR(pg_catalog.>) 1::pg_catalog.numeric THEN
        RAISE EXCEPTION 'margin must be between 0 and 1, got %', margin
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the gross margin as a fraction, e.g. 0.4 for 40%, or add a cost column to the orders query.';
    END IF;
    ncols := crm._check_inner_query('crm.historical_ltv', orders_sql,
                 ARRAY['customer any', 'ts timestamptz', 'amount numeric', 'cost numeric?']);
    orders_cols := CASE WHEN ncols OPERATOR(pg_catalog.>=) 4 THEN 'customer, ts, amount, cost' ELSE 'customer, ts, amount' END;
    cost_expr := CASE WHEN ncols OPERATOR(pg_catalog.>=) 4 THEN 'o.cost::pg_catalog.numeric' ELSE 'NULL::pg_catalog.numeric' END;
    IF spend_sql IS NOT NULL THEN
        PERFORM crm._check_inner_query('crm.historical_ltv', spend_sql, ARRAY['ts timestamptz', 'amount numeric']);
        spend_expr := pg_catalog.format(
            '(SELECT pg_catalog.sum(s.amount::pg_catalog.numeric) FROM (%s) AS s(ts, amount))', spend_sql);
    ELSE
        spend_expr := 'NULL::pg_catalog.numeric';
    END IF;
    -- Years are counted back from the last order: year 0 holds the last 365.25
    -- days, year 1 the 365.25 days before, and so on.  Annual churn is the share
    -- of the customers who ordered in a year who did not order in the next one,
    -- pooled over every pair of consecutive years; the expected lifetime is
    -- 1 / churn years.  LTV is the larger of the gross profit per customer to
    -- date and the gross profit per active customer-year x expected lifetime.
    RETURN QUERY EXECUTE pg_catalog.format($q$
        WITH o AS (
            SELECT o.customer, o.ts::pg_catalog.timestamptz AS ts, o.amount::pg_catalog.numeric AS amount, %3$s AS cost
              FROM (%1$s) AS o(%2$s)
             WHERE o.ts IS NOT NULL AND o.amount IS NOT NULL
        ), tot AS (
            SELECT pg_catalog.count(*) AS orders, pg_catalog.sum(o.amount) AS revenue, pg_catalog.sum(o.cost) AS cost,
                   pg_catalog.max(o.ts) AS last_ts,
                   (EXTRACT(epoch FROM pg_catalog.max(o.ts) OPERATOR(pg_catalog.-) pg_catalog.min(o.ts))
                        OPERATOR(pg_catalog./) 86400::pg_catalog.numeric) OPERATOR(pg_catalog./) 365.25 AS span
              FROM o
        ), act AS (   -- one row per customer and year (0 = the last 365.25 days) with an order
            SELECT DISTINCT o.customer,
                   pg_catalog.floor((EXTRACT(epoch FROM tot.last_ts OPERATOR(pg_catalog.-) o.ts)
                                     OPERATOR(pg_catalog./) 86400::pg_catalog.numeric) OPERATOR(pg_catalog./) 365.25) AS yr
              FROM o, tot
        ), ch AS (
            SELECT pg_catalog.count(*) AS active_years,
                   pg_catalog.count(*) FILTER (WHERE a.yr OPERATOR(pg_catalog.>) 0::pg_catalog.numeric) AS at_risk,
                   pg_catalog.count(*) FILTER (WHERE a.yr OPERATOR(pg_catalog.>) 0::pg_catalog.numeric AND NOT EXISTS (
                       SELECT FROM act AS n WHERE n.customer OPERATOR(pg_catalog.=) a.customer
                                              AND n.yr OPERATOR(pg_catalog.=) (a.yr OPERATOR(pg_catalog.-) 1::pg_catalog.numeric))) AS lost
              FROM act AS a
        ), cust AS (
            SELECT pg_catalog.count(DISTINCT o.customer) AS customers FROM o
        ), m AS (
            SELECT cust.customers::pg_catalog.numeric AS customers, tot.orders::pg_catalog.numeric AS orders,
                   tot.revenue, tot.span, ch.active_years::pg_catalog.numeric AS active_years,
                   ch.lost::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN ch.at_risk OPERATOR(pg_catalog.<>) 0 THEN ch.at_risk::pg_catalog.numeric END AS churn,
                   CASE WHEN tot.cost IS NOT NULL AND tot.revenue OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric
                        THEN (tot.revenue OPERATOR(pg_catalog.-) tot.cost) OPERATOR(pg_catalog./) tot.revenue ELSE $1 END AS gm,
                   %4$s AS spend
              FROM tot, cust, ch
        ), z AS (   -- the divisors, NULL where 0
            SELECT m.*,
                   CASE WHEN m.customers OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.customers END AS customers_nz,
                   CASE WHEN m.orders OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.orders END AS orders_nz,
                   CASE WHEN m.span OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.span END AS span_nz,
                   CASE WHEN m.active_years OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.active_years END AS active_years_nz,
                   CASE WHEN m.churn OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN m.churn END AS churn_nz
              FROM m
        ), k AS (
            SELECT z.*, z.revenue OPERATOR(pg_catalog./) z.customers_nz AS rpc, z.revenue OPERATOR(pg_catalog./) z.orders_nz AS aov,
                   (z.orders OPERATOR(pg_catalog./) z.customers_nz) OPERATOR(pg_catalog./) z.span_nz AS pf,
                   1::pg_catalog.numeric OPERATOR(pg_catalog./) z.churn_nz AS lifespan,
                   (z.revenue OPERATOR(pg_catalog.*) z.gm) OPERATOR(pg_catalog./) z.customers_nz AS to_date,
                   (z.revenue OPERATOR(pg_catalog.*) z.gm) OPERATOR(pg_catalog./) z.active_years_nz AS gp_year,
                   z.spend OPERATOR(pg_catalog./) z.customers_nz AS cac
              FROM z
        ), v AS (
            SELECT k.*,
                   pg_catalog.numeric_larger(k.to_date, COALESCE(k.gp_year OPERATOR(pg_catalog.*) k.lifespan, k.to_date)) AS ltv,
                   -- gross profit per customer per month
                   ((k.revenue OPERATOR(pg_catalog.*) k.gm) OPERATOR(pg_catalog./) k.customers_nz)
                       OPERATOR(pg_catalog./) (k.span_nz OPERATOR(pg_catalog.*) 12::pg_catalog.numeric) AS gp_month
              FROM k
        )
        SELECT v.customers::pg_catalog.int8, v.orders::pg_catalog.int8, v.revenue, pg_catalog.round(v.rpc, 2), pg_catalog.round(v.aov, 2),
               pg_catalog.round(v.pf, 4), pg_catalog.round(v.lifespan, 4), pg_catalog.round(v.gm, 4),
               pg_catalog.round(v.ltv, 2), v.spend, pg_catalog.round(v.cac, 2),
               pg_catalog.round(v.ltv OPERATOR(pg_catalog./) CASE WHEN v.cac OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN v.cac END, 4),
               pg_catalog.round(v.cac OPERATOR(pg_catalog./) CASE WHEN v.gp_month OPERATOR(pg_catalog.<>) 0::pg_catalog.numeric THEN v.gp_month END, 2),
               pg_catalog.round(v.churn, 4), pg_catalog.round(v.to_date, 2)
          FROM v
    $q$, orders_sql, orders_cols, cost_expr, spend_expr) USING margin;
END
$fn$;
COMMENT ON FUNCTION crm.historical_ltv(text, text, numeric) IS
'Historical customer value from an orders inner query (customer, ts, amount [, cost]) and an optional marketing-spend inner query (ts, amount): revenue per customer, AOV, purchase frequency (orders per customer per year of the observed span), gross margin (from cost, else the margin argument), annual churn (share of the customers with an order in a year, counted back from the last order, without an order in the next year), expected lifespan = 1 / annual churn years, LTV to date = gross profit per customer, LTV = the larger of LTV to date and gross profit per active customer-year x lifespan, CAC = spend / customers, LTV/CAC and CAC payback in months.';
-- ==== end of I ====


-- ==== J. stage norms, stale deals, contact cadence bounds (issue 19) ====

ALTER TABLE crm.pipeline_stages ADD COLUMN max_days int CHECK (max_days > 0);
COMMENT ON TABLE crm.pipeline_stages IS
'Stages of the sales pipeline: order in the funnel, probability that a deal in the stage is won (weighted pipeline), outcome (open, won or lost) and stage norm (max_days).';
COMMENT ON COLUMN crm.pipeline_stages.max_days IS
'Stage norm: the most days an open deal should sit idle (since its last stage change) in this stage; an open deal idle longer is stale and left out of the weighted pipeline.  NULL = no norm.';

CREATE FUNCTION crm._stage_norm_case(expr text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN pg_catalog.count(*) FILTER (WHERE max_days IS NOT NULL) OPERATOR(pg_catalog.=) 0 THEN 'NULL::pg_catalog.interval'
            ELSE 'CASE ' OPERATOR(pg_catalog.||) pg_catalog.string_agg(pg_catalog.format('WHEN (%s) OPERATOR(pg_catalog.=) %s THEN %L::pg_catalog.interval', expr, stage_order, max_days::text OPERATOR(pg_catalog.||) ' days'), ' ' ORDER BY stage_order) FILTER (WHERE max_days IS NOT NULL) OPERATOR(pg_catalog.||) ' END' END
  FROM crm.pipeline_stages
$$;
COMMENT ON FUNCTION crm._stage_norm_case(text) IS
'SQL text of a CASE expression mapping a stage_order to its stage norm (crm.pipeline_stages.max_days as an interval; NULL = no norm), for the stale-deal test of the pipeline reports.';

CREATE OR REPLACE FUNCTION crm._owner_dashboard_sql() RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    q text;
BEGIN
    q := pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome FROM crm.pipeline_stages),
pol AS MATERIALIZED (SELECT crm._dashboard_coverage_interval('A') AS a_int),
ld AS MATERIALIZED (
    SELECT lead_id, created_at, channel, customer_id, created_at OPERATOR(pg_catalog.>=) $1 AS is_cur
      FROM %1$s WHERE created_at OPERATOR(pg_catalog.>=) $3 AND created_at OPERATOR(pg_catalog.<) $2),
od AS NOT MATERIALIZED (
    SELECT customer_id, ordered_at, amount, cost FROM %2$s WHERE ordered_at OPERATOR(pg_catalog.<) $2),
-- per customer: first order, orders up to each period end, revenue of the
-- 12 months before each end (ABC class)
cu AS MATERIALIZED (
    SELECT customer_id, pg_catalog.min(ordered_at) AS first_at,
           pg_catalog.count(*) AS n_cur_end, pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS n_prev_end,
           pg_catalog.bool_or(ordered_at OPERATOR(pg_catalog.>=) $1) AS in_cur,
           pg_catalog.bool_or(ordered_at OPERATOR(pg_catalog.>=) $3 AND ordered_at OPERATOR(pg_catalog.<) $4) AS in_prev,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) ($2 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval)) AS rev12_cur,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) ($4 OPERATOR(pg_catalog.-) '12 months'::pg_catalog.interval) AND ordered_at OPERATOR(pg_catalog.<) $4) AS rev12_prev
      FROM od GROUP BY customer_id),
om AS (
    SELECT pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_revenue,
           pg_catalog.sum(amount) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_revenue,
           pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_orders,
           pg_catalog.count(*) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_orders,
           pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.>=) $1) AS c_gp,
           pg_catalog.sum(amount OPERATOR(pg_catalog.-) cost) FILTER (WHERE ordered_at OPERATOR(pg_catalog.<) $4) AS p_gp
      FROM od WHERE ordered_at OPERATOR(pg_catalog.>=) $3),
cm AS (
    SELECT pg_catalog.count(*) FILTER (WHERE first_at OPERATOR(pg_catalog.>=) $1) AS c_new,
           pg_catalog.count(*) FILTER (WHERE first_at OPERATOR(pg_catalog.>=) $3 AND first_at OPERATOR(pg_catalog.<) $4) AS p_new,
           pg_catalog.count(*) FILTER (WHERE in_cur) AS c_active,
           pg_catalog.count(*) FILTER (WHERE in_cur AND n_cur_end OPERATOR(pg_catalog.>=) 2) AS c_repeat,
           pg_catalog.count(*) FILTER (WHERE in_prev) AS p_active,
           pg_catalog.count(*) FILTER (WHERE in_prev AND n_prev_end OPERATOR(pg_catalog.>=) 2) AS p_repeat
      FROM cu),
sp AS (
    SELECT channel, spent_on OPERATOR(pg_catalog.>=) $1 AS is_cur, pg_catalog.sum(amount) AS amount
      FROM %3$s WHERE spent_on OPERATOR(pg_catalog.>=) $3 AND spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1, 2),
spm AS (
    SELECT pg_catalog.sum(amount) FILTER (WHERE is_cur) AS c_spend, pg_catalog.sum(amount) FILTER (WHERE NOT is_cur) AS p_spend FROM sp),
-- cost per lead, as crm.lead_sla: a channel's spend in a calendar month /
-- the channel's leads created in that month (every month the periods touch)
cpl AS (
    SELECT s.channel, s.month, s.amount OPERATOR(pg_catalog./) n.leads AS cost_per_lead
      FROM (SELECT channel, pg_catalog.date_trunc('month', spent_on) AS month, pg_catalog.sum(amount) AS amount
              FROM %3$s WHERE spent_on OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $3)
               AND spent_on OPERATOR(pg_catalog.<) (pg_catalog.date_trunc('month', $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval)
             GROUP BY 1, 2) AS s
      JOIN (SELECT channel, pg_catalog.date_trunc('month', created_at) AS month, pg_catalog.count(*) AS leads
              FROM %1$s WHERE created_at OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $3)
               AND created_at OPERATOR(pg_catalog.<) (pg_catalog.date_trunc('month', $2 OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval) OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval)
             GROUP BY 1, 2) AS n
        ON n.channel OPERATOR(pg_catalog.=) s.channel AND n.month OPERATOR(pg_catalog.=) s.month),
-- real (non-automated) contacts that can matter: from the start of the
-- previous period (first responses to its leads) or from a month before its
-- end (the class-A contact check), up to the end
-- a lead's first response: its first real outbound contact at or after its
-- creation (read straight from the source: an index on its time column helps)
lf AS (
    SELECT ix.lead_id, pg_catalog.min(ix.occurred_at) AS first_contact
      FROM %4$s JOIN ld ON ld.lead_id OPERATOR(pg_catalog.=) ix.lead_id
     WHERE NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.occurred_at OPERATOR(pg_catalog.>=) $3 AND ix.occurred_at OPERATOR(pg_catalog.<) $2 AND ix.occurred_at OPERATOR(pg_catalog.>=) ld.created_at
     GROUP BY ix.lead_id),
lx AS (
    SELECT ld.channel, ld.is_cur, pg_catalog.date_trunc('month', ld.created_at) AS month, pg_catalog.count(*) AS n,
           pg_catalog.count(*) FILTER (WHERE cu.first_at OPERATOR(pg_catalog.<) CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS converted,
           pg_catalog.count(*) FILTER (WHERE lf.first_contact IS NULL
                               OR lf.first_contact OPERATOR(pg_catalog.>=) CASE WHEN ld.is_cur THEN $2 ELSE $4 END) AS unanswered
      FROM ld LEFT JOIN cu ON cu.customer_id OPERATOR(pg_catalog.=) ld.customer_id
              LEFT JOIN lf ON lf.lead_id OPERATOR(pg_catalog.=) ld.lead_id
     GROUP BY 1, 2, 3),
lm AS (
    SELECT pg_catalog.sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, pg_catalog.sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           pg_catalog.sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, pg_catalog.sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           pg_catalog.sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, pg_catalog.sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           pg_catalog.sum(unanswered OPERATOR(pg_catalog.*) coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           pg_catalog.sum(unanswered OPERATOR(pg_catalog.*) coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost
      FROM lx LEFT JOIN cpl ON cpl.channel OPERATOR(pg_catalog.=) lx.channel AND cpl.month OPERATOR(pg_catalog.=) lx.month),
iv AS (
    SELECT issued_at, due_at, amount, paid_at FROM %5$s
     WHERE issued_at OPERATOR(pg_catalog.<) $2 AND (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $4)),
im AS (
    SELECT pg_catalog.count(*) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid,
           pg_catalog.sum(amount) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid_amt,
           pg_catalog.avg(extract(epoch FROM $2 OPERATOR(pg_catalog.-) issued_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AS c_unpaid_age,
           pg_catalog.count(*) FILTER (WHERE (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AND due_at OPERATOR(pg_catalog.<) $2) AS c_overdue,
           pg_catalog.sum(amount) FILTER (WHERE (paid_at IS NULL OR paid_at OPERATOR(pg_catalog.>=) $2) AND due_at OPERATOR(pg_catalog.<) $2) AS c_overdue_amt,
           pg_catalog.count(*) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid,
           pg_catalog.sum(amount) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid_amt,
           pg_catalog.avg(extract(epoch FROM $4 OPERATOR(pg_catalog.-) issued_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4) AS p_unpaid_age,
           pg_catalog.count(*) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4 AND due_at OPERATOR(pg_catalog.<) $4) AS p_overdue,
           pg_catalog.sum(amount) FILTER (WHERE issued_at OPERATOR(pg_catalog.<) $4 AND due_at OPERATOR(pg_catalog.<) $4) AS p_overdue_amt
      FROM iv),
ev AS (
    SELECT deal_id, changed_at, amount, %7$s AS so
      FROM %6$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASE is computed once per row, not once per aggregate
-- per deal, with the stage names mapped once (to stage_order; NULL = a stage
-- crm.pipeline_stages does not list); deals closed before the previous
-- period matter to no figure (unknown stages are counted on all)
dl AS (
    SELECT deal_id, pg_catalog.min(changed_at) AS created_at, pg_catalog.max(amount) AS amount,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%8$s]::pg_catalog.int4[])) AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%9$s]::pg_catalog.int4[])) AS lost_at,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%10$s]::pg_catalog.int4[])) AS open_cur,
           pg_catalog.max(so) FILTER (WHERE so OPERATOR(pg_catalog.=) ANY (ARRAY[%10$s]::pg_catalog.int4[]) AND changed_at OPERATOR(pg_catalog.<) $4) AS open_prev,
           pg_catalog.max(changed_at) AS last_cur,
           pg_catalog.max(changed_at) FILTER (WHERE changed_at OPERATOR(pg_catalog.<) $4) AS last_prev,
           pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(so) AS unknown
      FROM ev GROUP BY deal_id),
dc AS MATERIALIZED (
    SELECT dl.*, least(won_at, lost_at) AS closed_at,
           won_at IS NOT NULL AND won_at OPERATOR(pg_catalog.<=) coalesce(lost_at, won_at) AS is_won,
           %11$s AS p_cur, %12$s AS p_prev,
           coalesce(last_cur OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) %14$s), false) AS stale_cur,
           coalesce(last_prev OPERATOR(pg_catalog.<) ($4 OPERATOR(pg_catalog.-) %15$s), false) AS stale_prev
      FROM dl
     WHERE least(won_at, lost_at) IS NULL OR least(won_at, lost_at) OPERATOR(pg_catalog.>=) $3 OR unknown OPERATOR(pg_catalog.>) 0),
dm AS (
    SELECT pg_catalog.count(*) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_won,
           pg_catalog.count(*) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_lost,
           pg_catalog.count(*) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_won,
           pg_catalog.count(*) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_lost,
           pg_catalog.sum(amount) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_lost_amt,
           pg_catalog.sum(amount) FILTER (WHERE NOT is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_lost_amt,
           pg_catalog.avg(amount) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_avg_won,
           pg_catalog.avg(amount) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_avg_won,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $1) AS c_cycle,
           pg_catalog.avg(extract(epoch FROM won_at OPERATOR(pg_catalog.-) created_at) OPERATOR(pg_catalog./) 86400) FILTER (WHERE is_won AND closed_at OPERATOR(pg_catalog.>=) $3 AND closed_at OPERATOR(pg_catalog.<) $4) AS p_cycle,
           pg_catalog.count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open,
           pg_catalog.count(*) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4)) AS p_open,
           pg_catalog.sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL) AS c_open_amt,
           pg_catalog.sum(amount) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4)) AS p_open_amt,
           pg_catalog.sum(amount OPERATOR(pg_catalog.*) p_cur) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND NOT stale_cur) AS c_weighted,
           pg_catalog.sum(amount OPERATOR(pg_catalog.*) p_prev) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4) AND NOT stale_prev) AS p_weighted,
           pg_catalog.count(*) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND stale_cur) AS c_stale,
           pg_catalog.count(*) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4) AND stale_prev) AS p_stale,
           pg_catalog.sum(amount) FILTER (WHERE open_cur IS NOT NULL AND closed_at IS NULL AND stale_cur) AS c_stale_amt,
           pg_catalog.sum(amount) FILTER (WHERE open_prev IS NOT NULL AND (closed_at IS NULL OR closed_at OPERATOR(pg_catalog.>=) $4) AND stale_prev) AS p_stale_amt,
           crm._check_stages(pg_catalog.sum(unknown)) AS stages_ok
      FROM dc),
-- lost deals by the most advanced open stage they reached
lost AS (
    SELECT st.stage, st.stage_order,
           coalesce(pg_catalog.sum(dc.amount) FILTER (WHERE dc.closed_at OPERATOR(pg_catalog.>=) $1), 0) AS c_amt,
           coalesce(pg_catalog.sum(dc.amount) FILTER (WHERE dc.closed_at OPERATOR(pg_catalog.<) $4), 0) AS p_amt
      FROM st LEFT JOIN dc ON dc.open_cur OPERATOR(pg_catalog.=) st.stage_order AND NOT dc.is_won AND dc.closed_at OPERATOR(pg_catalog.>=) $3
     WHERE st.outcome OPERATOR(pg_catalog.=) 'open'
     GROUP BY st.stage, st.stage_order),
-- class A (crm.abc_class semantics, 0.80 of the revenue of the 12 months
-- before the period end; the tests check it against crm.abc_class) customers
-- without a real contact within the class-A interval of crm.coverage_policy
-- (default 1 month) before the end
lc AS (
    SELECT customer_id, pg_catalog.max(occurred_at) AS last_cur, pg_catalog.max(occurred_at) FILTER (WHERE occurred_at OPERATOR(pg_catalog.<) $4) AS last_prev
      FROM %13$s
     WHERE customer_id IS NOT NULL AND NOT automated
       AND occurred_at OPERATOR(pg_catalog.>=) ($4 OPERATOR(pg_catalog.-) (SELECT a_int FROM pol)) AND occurred_at OPERATOR(pg_catalog.<) $2
     GROUP BY customer_id),
-- class A by crm.abc_class itself (a C window function over all customers,
-- no sort) at both period ends
ab AS (
    SELECT customer_id, first_at, crm.abc_class(rev12_cur::pg_catalog.float8) OVER () AS c_cls,
           crm.abc_class(rev12_prev::pg_catalog.float8) OVER () AS p_cls
      FROM cu),
-- overdue as crm.coverage judges it: next due = (last real contact, or, never
-- contacted, customer since: the customers source's created_at, else the first
-- order) + the interval, overdue when that is before the end.  Without a
-- contact in the window, a customer who became one within the last interval
-- is overdue only if contacted before it (before becoming a customer)
ax AS (
    SELECT ab.c_cls, ab.p_cls, lc.last_cur, lc.last_prev,
           coalesce(cs.since, ab.first_at) AS since, ab.customer_id
      FROM ab LEFT JOIN lc ON lc.customer_id OPERATOR(pg_catalog.=) ab.customer_id
              LEFT JOIN (SELECT customer_id, pg_catalog.min(created_at) AS since FROM %16$s GROUP BY 1) AS cs
                     ON cs.customer_id OPERATOR(pg_catalog.=) ab.customer_id
     WHERE ab.c_cls OPERATOR(pg_catalog.=) 'A' OR ab.p_cls OPERATOR(pg_catalog.=) 'A'),
am AS (
    SELECT pg_catalog.count(*) FILTER (WHERE ax.c_cls OPERATOR(pg_catalog.=) 'A'
                             AND CASE WHEN ax.last_cur IS NOT NULL THEN ax.last_cur OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) pol.a_int)
                                      WHEN ax.since OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) pol.a_int) THEN true
                                      ELSE EXISTS (SELECT FROM %13$s WHERE customer_id OPERATOR(pg_catalog.=) ax.customer_id AND NOT automated
                                                      AND occurred_at OPERATOR(pg_catalog.<) $2) END) AS c_a_overdue,
           pg_catalog.count(*) FILTER (WHERE ax.p_cls OPERATOR(pg_catalog.=) 'A'
                             AND CASE WHEN ax.last_prev IS NOT NULL THEN ax.last_prev OPERATOR(pg_catalog.<) ($4 OPERATOR(pg_catalog.-) pol.a_int)
                                      WHEN ax.since OPERATOR(pg_catalog.<) ($4 OPERATOR(pg_catalog.-) pol.a_int) THEN true
                                      ELSE EXISTS (SELECT FROM %13$s WHERE customer_id OPERATOR(pg_catalog.=) ax.customer_id AND NOT automated
                                                      AND occurred_at OPERATOR(pg_catalog.<) $4) END) AS p_a_overdue
      FROM ax CROSS JOIN pol),
rows AS (
    SELECT v.*
      FROM om, cm, spm, lm, im, dm, am,
      LATERAL (VALUES
        (1,  'acquisition', 'leads_in', coalesce(c_leads, 0), coalesce(p_leads, 0), 'count'),
        (2,  'acquisition', 'new_buyers', c_new::numeric, p_new::numeric, 'count'),
        (3,  'acquisition', 'lead_to_buyer_conversion', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_conv) OPERATOR(pg_catalog./) CASE WHEN c_leads OPERATOR(pg_catalog.<>) 0 THEN c_leads END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_conv) OPERATOR(pg_catalog./) CASE WHEN p_leads OPERATOR(pg_catalog.<>) 0 THEN p_leads END, 2), 'pct'),
        (4,  'acquisition', 'marketing_spend', coalesce(c_spend, 0), coalesce(p_spend, 0), 'money'),
        (5,  'acquisition', 'cac', pg_catalog.round(coalesce(c_spend, 0) OPERATOR(pg_catalog./) CASE WHEN c_new OPERATOR(pg_catalog.<>) 0 THEN c_new END, 2), pg_catalog.round(coalesce(p_spend, 0) OPERATOR(pg_catalog./) CASE WHEN p_new OPERATOR(pg_catalog.<>) 0 THEN p_new END, 2), 'money'),
        (6,  'sales', 'revenue', coalesce(c_revenue, 0), coalesce(p_revenue, 0), 'money'),
        (7,  'sales', 'orders', c_orders::numeric, p_orders::numeric, 'count'),
        (8,  'sales', 'average_check', pg_catalog.round(c_revenue OPERATOR(pg_catalog./) CASE WHEN c_orders OPERATOR(pg_catalog.<>) 0 THEN c_orders END, 2), pg_catalog.round(p_revenue OPERATOR(pg_catalog./) CASE WHEN p_orders OPERATOR(pg_catalog.<>) 0 THEN p_orders END, 2), 'money'),
        (9,  'sales', 'repeat_purchase_rate', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_repeat) OPERATOR(pg_catalog./) CASE WHEN c_active OPERATOR(pg_catalog.<>) 0 THEN c_active END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_repeat) OPERATOR(pg_catalog./) CASE WHEN p_active OPERATOR(pg_catalog.<>) 0 THEN p_active END, 2), 'pct'),
        (10, 'sales', 'gross_profit', coalesce(c_gp, 0), coalesce(p_gp, 0), 'money'),
        (11, 'sales', 'roi', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(c_gp, 0) OPERATOR(pg_catalog.-) c_spend)) OPERATOR(pg_catalog./) CASE WHEN c_spend OPERATOR(pg_catalog.<>) 0 THEN c_spend END, 2),
                             pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (coalesce(p_gp, 0) OPERATOR(pg_catalog.-) p_spend)) OPERATOR(pg_catalog./) CASE WHEN p_spend OPERATOR(pg_catalog.<>) 0 THEN p_spend END, 2), 'pct'),
        (12, 'pipeline', 'win_rate', pg_catalog.round((100.0 OPERATOR(pg_catalog.*) c_won) OPERATOR(pg_catalog./) CASE WHEN (c_won OPERATOR(pg_catalog.+) c_lost) OPERATOR(pg_catalog.<>) 0 THEN (c_won OPERATOR(pg_catalog.+) c_lost) END, 2), pg_catalog.round((100.0 OPERATOR(pg_catalog.*) p_won) OPERATOR(pg_catalog./) CASE WHEN (p_won OPERATOR(pg_catalog.+) p_lost) OPERATOR(pg_catalog.<>) 0 THEN (p_won OPERATOR(pg_catalog.+) p_lost) END, 2), 'pct'),
        (13, 'pipeline', 'deals_won', c_won::numeric, p_won::numeric, 'count'),
        (14, 'pipeline', 'average_won_deal', pg_catalog.round(c_avg_won, 2), pg_catalog.round(p_avg_won, 2), 'money'),
        (15, 'pipeline', 'sales_cycle', pg_catalog.round(c_cycle, 2), pg_catalog.round(p_cycle, 2), 'days'),
        (16, 'pipeline', 'open_deals', c_open::numeric, p_open::numeric, 'count'),
        (17, 'pipeline', 'open_pipeline_value', coalesce(c_open_amt, 0), coalesce(p_open_amt, 0), 'money'),
        (18, 'pipeline', 'weighted_pipeline', pg_catalog.round(coalesce(c_weighted, 0), 2), pg_catalog.round(coalesce(p_weighted, 0), 2), 'money'),
        (18.1, 'pipeline', 'stale_deals', c_stale::numeric, p_stale::numeric, 'count'),
        (18.2, 'pipeline', 'stale_pipeline_value', coalesce(c_stale_amt, 0), coalesce(p_stale_amt, 0), 'money'),
        (19, 'pipeline', 'sales_velocity',
             pg_catalog.round(((c_open OPERATOR(pg_catalog.*) (c_won::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN (c_won OPERATOR(pg_catalog.+) c_lost) OPERATOR(pg_catalog.<>) 0 THEN (c_won OPERATOR(pg_catalog.+) c_lost) END)) OPERATOR(pg_catalog.*) c_avg_won) OPERATOR(pg_catalog./) CASE WHEN c_cycle OPERATOR(pg_catalog.<>) 0 THEN c_cycle END, 2),
             pg_catalog.round(((p_open OPERATOR(pg_catalog.*) (p_won::pg_catalog.numeric OPERATOR(pg_catalog./) CASE WHEN (p_won OPERATOR(pg_catalog.+) p_lost) OPERATOR(pg_catalog.<>) 0 THEN (p_won OPERATOR(pg_catalog.+) p_lost) END)) OPERATOR(pg_catalog.*) p_avg_won) OPERATOR(pg_catalog./) CASE WHEN p_cycle OPERATOR(pg_catalog.<>) 0 THEN p_cycle END, 2), 'money_per_day'),
        (20, 'money_lost', 'deals_lost', c_lost::numeric, p_lost::numeric, 'count'),
        (21, 'money_lost', 'lost_deal_value', coalesce(c_lost_amt, 0), coalesce(p_lost_amt, 0), 'money'),
        (1000, 'money_lost', 'unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric, 'count'),
        (1001, 'money_lost', 'unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0), 'money'),
        (1002, 'money_lost', 'unpaid_invoice_age', pg_catalog.round(c_unpaid_age, 2), pg_catalog.round(p_unpaid_age, 2), 'days'),
        (1003, 'money_lost', 'overdue_invoices', c_overdue::numeric, p_overdue::numeric, 'count'),
        (1004, 'money_lost', 'overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0), 'money'),
        (1005, 'money_lost', 'unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0), 'count'),
        (1006, 'money_lost', 'unanswered_leads_cost', pg_catalog.round(coalesce(c_unans_cost, 0), 2), pg_catalog.round(coalesce(p_unans_cost, 0), 2), 'money'),
        (1007, 'money_lost', 'overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric, 'count')
      ) AS v(ord, section, metric, cur, prev, unit)
     WHERE dm.stages_ok
    UNION ALL
    SELECT 100 OPERATOR(pg_catalog.+) stage_order, 'money_lost', 'lost_value_at_' OPERATOR(pg_catalog.||) stage, c_amt, p_amt, 'money' FROM lost)
SELECT metric, cur, unit, prev,
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) (cur OPERATOR(pg_catalog.-) prev)) OPERATOR(pg_catalog./) CASE WHEN pg_catalog.abs(prev) OPERATOR(pg_catalog.<>) 0 THEN pg_catalog.abs(prev) END, 2), section
  FROM rows ORDER BY ord
$sql$,
        crm._source_sql('leads'), crm._source_sql('orders'), crm._source_sql('spend'),
        crm._source_sql('interactions', 'ix'), crm._source_sql('invoices'), crm._source_sql('stage_events'),
        crm._stage_case('order', 'stage'), crm._stage_orders('won'), crm._stage_orders('lost'),
        crm._stage_orders('open'), crm._stage_case('order_probability', 'open_cur'),
        crm._stage_case('order_probability', 'open_prev'), crm._source_sql('interactions'),
        crm._stage_norm_case('open_cur'), crm._stage_norm_case('open_prev'),
        crm._source_sql('customers'));
    RETURN q;
END
$$;
COMMENT ON FUNCTION crm._owner_dashboard_sql() IS
'The SQL text crm.owner_dashboard runs (registered sources spliced in; $1..$4 = current and previous period bounds).';

CREATE OR REPLACE FUNCTION crm._register_demo_sources() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_day date;
BEGIN
    PERFORM crm.register_source('leads',
        'SELECT lead_id, created_at, channel, manager_id, customer_id FROM crm_demo.leads');
    PERFORM crm.register_source('customers',
        'SELECT customer_id, created_at, channel, manager_id FROM crm_demo.customers');
    PERFORM crm.register_source('stage_events',
        'SELECT e.deal_id, e.changed_at, e.stage, d.amount, d.manager_id, d.channel FROM crm_demo.deal_events e JOIN crm_demo.deals d ON d.deal_id = e.deal_id');
    PERFORM crm.register_source('orders',
        'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM crm_demo.orders');
    PERFORM crm.register_source('invoices',
        'SELECT invoice_id, customer_id, issued_at, due_at, amount, paid_at FROM crm_demo.invoices');
    PERFORM crm.register_source('spend',
        'SELECT channel, month, amount FROM crm_demo.spend');
    PERFORM crm.register_source('interactions',
        'SELECT interaction_id, customer_id, lead_id, manager_id, occurred_at, kind, direction, automated FROM crm_demo.interactions');
    INSERT INTO crm.pipeline_stages (stage, stage_order, probability, outcome, max_days) VALUES
        ('lead', 1, 0.10, 'open', 30), ('qualified', 2, 0.25, 'open', 30), ('proposal', 3, 0.50, 'open', 45),
        ('invoice', 4, 0.80, 'open', 60), ('paid', 5, 1, 'won', NULL), ('lost', 6, 0, 'lost', NULL)
    ON CONFLICT DO NOTHING;
    -- the views show the last calendar month of the demo data
    SELECT max(created_at)::date INTO last_day FROM crm_demo.leads;
    IF last_day IS NOT NULL THEN
        PERFORM crm.set_dashboard_period(date_trunc('month', last_day)::date,
                                         (date_trunc('month', last_day) + interval '1 month - 1 day')::date);
    END IF;
END
$$;
COMMENT ON FUNCTION crm._register_demo_sources() IS
'Registers the crm_demo tables as the dashboard sources, the demo pipeline stages and the demo period; crm.load_demo calls it at its end.';

CREATE OR REPLACE FUNCTION crm.dashboard_pipeline(period_from date, period_to date)
RETURNS TABLE (stage text, stage_order int, outcome text, probability numeric, entered bigint,
               open_deals bigint, open_value numeric, weighted_value numeric, lost_deals bigint, lost_value numeric)
LANGUAGE plpgsql VOLATILE
-- one big analytic query: JIT compilation would cost more than it saves,
-- and the per-deal / per-customer hash aggregates should stay in memory
SET jit = off
SET work_mem = '64MB'
AS $$
DECLARE
    b record;
    nstages int;
    entered_sums text;
BEGIN
    b := crm._period_bounds('crm.dashboard_pipeline', period_from, period_to);
    PERFORM crm._require_stages('crm.dashboard_pipeline');
    SELECT pg_catalog.count(*) INTO nstages FROM crm.pipeline_stages;
    IF nstages OPERATOR(pg_catalog.>) 62 THEN
        RAISE EXCEPTION 'at most 62 pipeline stages, crm.pipeline_stages has %', nstages
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- per deal, the stages entered in the period as a bit mask; then one sum per stage
    SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.sum((entered_mask OPERATOR(pg_catalog.>>) %s) OPERATOR(pg_catalog.&) 1::pg_catalog.int8)', k), ', ' ORDER BY k)
      INTO entered_sums FROM pg_catalog.generate_series(1, nstages) AS k;
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
st AS (SELECT stage, stage_order, probability, outcome, pg_catalog.row_number() OVER (ORDER BY stage_order)::int AS rk
         FROM crm.pipeline_stages),
ev AS (
    SELECT deal_id, changed_at, amount, %2$s AS stage_order, %3$s AS outcome, %4$s AS rk
      FROM %1$s WHERE changed_at OPERATOR(pg_catalog.<) $2
    OFFSET 0),  -- a fence: the stage CASEs are computed once per row, not once per aggregate
dl AS MATERIALIZED (
    SELECT deal_id, pg_catalog.max(amount) AS amount, pg_catalog.max(changed_at) AS last_at,
           pg_catalog.max(stage_order) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'open') AS open_stage,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'won') AS won_at,
           pg_catalog.min(changed_at) FILTER (WHERE outcome OPERATOR(pg_catalog.=) 'lost') AS lost_at,
           pg_catalog.bit_or(1::pg_catalog.int8 OPERATOR(pg_catalog.<<) rk) FILTER (WHERE changed_at OPERATOR(pg_catalog.>=) $1) AS entered_mask,
           pg_catalog.count(*) FILTER (WHERE outcome IS NULL) AS n_unknown
      FROM ev GROUP BY deal_id),
en AS (SELECT ARRAY[%5$s] AS entered FROM dl WHERE entered_mask IS NOT NULL),
op AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt,
           -- stale deals (idle beyond the stage norm) are left out of the weighted value
           pg_catalog.sum(amount) FILTER (WHERE NOT coalesce(last_at OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.-) %6$s), false)) AS live_amt
      FROM dl WHERE won_at IS NULL AND lost_at IS NULL AND open_stage IS NOT NULL GROUP BY 1),
lo AS (
    SELECT open_stage AS stage_order, pg_catalog.count(*) AS n, pg_catalog.sum(amount) AS amt
      FROM dl WHERE lost_at OPERATOR(pg_catalog.>=) $1 AND lost_at OPERATOR(pg_catalog.<) coalesce(won_at, 'infinity') GROUP BY 1)
SELECT st.stage, st.stage_order, st.outcome, st.probability, coalesce((SELECT en.entered[st.rk] FROM en), 0)::bigint,
       coalesce(op.n, 0), coalesce(op.amt, 0), pg_catalog.round(coalesce(op.live_amt, 0) OPERATOR(pg_catalog.*) st.probability, 2),
       coalesce(lo.n, 0), coalesce(lo.amt, 0)
  FROM st LEFT JOIN op ON op.stage_order OPERATOR(pg_catalog.=) st.stage_order
          LEFT JOIN lo ON lo.stage_order OPERATOR(pg_catalog.=) st.stage_order
 WHERE crm._check_stages((SELECT pg_catalog.sum(n_unknown) FROM dl))
 ORDER BY st.stage_order
$sql$, crm._source_sql('stage_events'), crm._stage_case('order', 'stage'), crm._stage_case('outcome', 'stage'),
       crm._stage_case('rank', 'stage'), entered_sums, crm._stage_norm_case('open_stage'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm.dashboard_pipeline(date, date) IS
'Per pipeline stage for the period [from, to]: deals that entered it in the period, open deals sitting in it at the period end with their value and probability-weighted value (stale deals, idle beyond the stage norm max_days, left out), and deals lost in the period whose most advanced open stage it was, with their value.';

-- contact cadence: the purchase cycle clamped to per-class bounds
ALTER TABLE crm.coverage_policy ADD COLUMN min_interval interval;
ALTER TABLE crm.coverage_policy ADD CONSTRAINT coverage_policy_min_interval_valid CHECK (min_interval > interval '0');
COMMENT ON TABLE crm.coverage_policy IS
'Contact coverage policy per customer class: contact at least every max_interval; due soon within due_soon before the due date; basis = fixed (the expert approach) or purchase_cycle (the customer''s own median interval between purchases, clamped to [min_interval, max_interval]; max_interval when unknown).';
COMMENT ON COLUMN crm.coverage_policy.min_interval IS
'Lower bound of a purchase-cycle interval: a customer who buys more often is still contacted at most every min_interval.  NULL = no lower bound; max_interval wins over a larger min_interval.  Ignored by basis fixed.';

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

CREATE OR REPLACE FUNCTION crm._coverage_policy_check() RETURNS trigger
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

CREATE OR REPLACE FUNCTION crm._coverage_apply_policy() RETURNS bigint
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

-- the default classes get the default lower bounds (as a fresh install has
-- them); the policy trigger then
-- re-applies the clamped intervals to every customer
UPDATE crm.coverage_policy p SET min_interval = v.min_interval
  FROM (VALUES ('A', interval '14 days'), ('B', interval '1 month'), ('C', interval '2 months')) AS v(class, min_interval)
 WHERE p.class = v.class AND p.min_interval IS NULL;

-- ==== end of J ====
