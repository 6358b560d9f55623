-- test/rollups_fast_planrfm.sql: plan against fact (crm.dashboard_plan_fact, crm.v_plan_fact) and
-- RFM (crm.dashboard_rfm, crm.v_rfm) answered from the rollups (crm._fast_plan_owner,
-- crm._fast_plan_channels, crm._fast_rfm_sql, crm.rollup_customer_orders), against the full computation
-- (crm_analytics.rollups = off) and a plain-SQL computation on the demo, for several periods,
-- after a full refresh, after seeded rounds of random changes (incremental refreshes) and after a
-- full rebuild; the gate; the errors; then a hand-worked fixture.
BEGIN;
SELECT plan(82);
SET LOCAL TimeZone = 'UTC';
SET LOCAL client_min_messages = warning;
-- the dashboard period December 2025 (its ends are kept: RFM figures and scores at its end)
SELECT crm.set_dashboard_period('2025-12-01', '2025-12-31');

-- orders without a customer, with a zero or a negative amount, customers without a channel (the
-- demo has none): the sources map some in
SELECT crm.register_source('orders', $q$SELECT order_id, CASE WHEN order_id % 97 = 0 THEN NULL ELSE customer_id END AS customer_id,
    ordered_at, CASE WHEN order_id % 89 = 0 THEN -amount WHEN order_id % 83 = 0 THEN 0 ELSE amount END AS amount, cost, product_id
    FROM crm_demo.orders$q$);
SELECT crm.register_source('customers', $q$SELECT customer_id, created_at, CASE WHEN customer_id % 13 = 0 THEN NULL ELSE channel END AS channel,
    manager_id FROM crm_demo.customers$q$);

CREATE FUNCTION pg_temp.set_gate(v text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('crm_analytics.rollups', v, true);
EXCEPTION WHEN invalid_name THEN
    NULL;
END
$$;

-- the periods: the dashboard's default, a past month (orders after its end exist), a quarter,
-- a year, one day, a month after the data
CREATE TEMP TABLE periods (f date, t date);
INSERT INTO periods SELECT p.period_from, p.period_to FROM crm.dashboard_period() p;
INSERT INTO periods VALUES ('2025-03-01', '2025-03-31'), ('2025-04-01', '2025-06-30'), ('2025-01-01', '2025-12-31'),
                           ('2025-06-15', '2025-06-15'), ('2026-03-01', '2026-03-31');

-- plans on every period: the additive metrics only (the rollups answer) ...
CREATE FUNCTION pg_temp.set_plans() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    DELETE FROM crm.plans;
    FOR p IN SELECT * FROM periods LOOP
        PERFORM crm.set_plan(m, p.f, p.t, 1000) FROM unnest(crm._plan_rollup_metrics(NULL)) AS m;
        PERFORM crm.set_plan(m, p.f, p.t, 500, 'channel', c)
           FROM unnest(crm._plan_rollup_metrics('channel')) AS m,
                (SELECT DISTINCT channel FROM crm_demo.customers UNION ALL VALUES ('(unknown)'), ('nowhere')) AS c(c);
    END LOOP;
    -- ... and every metric of crm.plan_metrics() (the others take the reports) one day later
    FOR p IN SELECT * FROM periods LOOP
        PERFORM crm.set_plan(m.metric, p.f + 1, p.t + 1, 0) FROM crm.plan_metrics() m WHERE m.dimension IS NULL;
        PERFORM crm.set_plan(m.metric, p.f + 1, p.t + 1, 200, 'channel', 'ads') FROM crm.plan_metrics() m WHERE m.dimension = 'channel';
        PERFORM crm.set_plan(m.metric, p.f + 1, p.t + 1, 3, 'manager', '3') FROM crm.plan_metrics() m WHERE m.dimension = 'manager';
        PERFORM crm.set_plan('revenue', p.f + 1, p.t + 1, 300, 'channel', c) FROM (SELECT DISTINCT channel FROM crm_demo.customers) AS c(c);
    END LOOP;
END
$$;
SELECT pg_temp.set_plans();

-- plan against fact, every period (additive and all plans; facts up to the end, up to the middle,
-- before the start), as text, gate on minus gate off (both ways)
CREATE FUNCTION pg_temp.plan_rows() RETURNS SETOF text LANGUAGE sql AS $$
SELECT p.f || ' ' || a.as_of || ' ' || x::text
  FROM (SELECT f, t FROM periods UNION ALL SELECT f + 1, t + 1 FROM periods) AS p,
       LATERAL (VALUES (p.t), (p.f + (p.t - p.f) / 2), (p.f - 1)) AS a(as_of),
       LATERAL crm.dashboard_plan_fact(p.f, p.t, a.as_of) AS x
$$;
CREATE FUNCTION pg_temp.plan_diff() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS pf_full (r text) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS pf_fast (r text) ON COMMIT DROP;
    DELETE FROM pf_full; DELETE FROM pf_fast;
    PERFORM pg_temp.set_gate('off');
    INSERT INTO pf_full SELECT * FROM pg_temp.plan_rows();
    PERFORM pg_temp.set_gate('fresh');
    INSERT INTO pf_fast SELECT * FROM pg_temp.plan_rows();
    SELECT count(*) INTO n FROM ((SELECT r FROM pf_fast EXCEPT ALL SELECT r FROM pf_full)
                                 UNION ALL (SELECT r FROM pf_full EXCEPT ALL SELECT r FROM pf_fast)) d;
    RETURN n + CASE WHEN (SELECT count(*) FROM pf_full) > 0 THEN 0 ELSE 1000000 END;
END
$$;

-- the building blocks against the reports (gate off): the planned rows, value as text
CREATE FUNCTION pg_temp.block_diff() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
    k bigint;
    p record;
BEGIN
    FOR p IN SELECT * FROM periods WHERE f <= '2025-12-31' LOOP
        PERFORM pg_temp.set_gate('off');
        CREATE TEMP TABLE IF NOT EXISTS od (metric text, value text) ON COMMIT DROP;
        CREATE TEMP TABLE IF NOT EXISTS oc (channel text, leads text, new_buyers text, revenue text, gross_profit text, spend text) ON COMMIT DROP;
        DELETE FROM od; DELETE FROM oc;
        INSERT INTO od SELECT o.metric, o.value::text FROM crm.owner_dashboard(p.f, p.t) o WHERE o.metric = ANY (crm._plan_rollup_metrics(NULL));
        INSERT INTO oc SELECT c.channel, c.leads::text, c.new_buyers::text, c.revenue::text, c.gross_profit::text, c.spend::text
          FROM crm.dashboard_channels(p.f, p.t) c;
        PERFORM pg_temp.set_gate('fresh');
        SELECT count(*) INTO k FROM (
            (SELECT * FROM od EXCEPT SELECT r ->> 'metric', r ->> 'value' FROM jsonb_array_elements(crm._fast_plan_owner(p.f, p.t)) r)
            UNION ALL (SELECT r ->> 'metric', r ->> 'value' FROM jsonb_array_elements(crm._fast_plan_owner(p.f, p.t)) r EXCEPT SELECT * FROM od)
            UNION ALL (SELECT 'c' || channel, leads FROM (SELECT * FROM oc EXCEPT SELECT r ->> 'channel', r ->> 'leads', r ->> 'new_buyers', r ->> 'revenue',
                        r ->> 'gross_profit', r ->> 'spend' FROM jsonb_array_elements(crm._fast_plan_channels(p.f, p.t)) r) x)
            UNION ALL (SELECT 'c' || channel, leads FROM (SELECT r ->> 'channel' AS channel, r ->> 'leads' AS leads, r ->> 'new_buyers', r ->> 'revenue',
                        r ->> 'gross_profit', r ->> 'spend' FROM jsonb_array_elements(crm._fast_plan_channels(p.f, p.t)) r EXCEPT SELECT * FROM oc) y)) d;
        n := n + k + CASE WHEN (SELECT count(*) FROM od) = 11 THEN 0 ELSE 1000 END;
    END LOOP;
    RETURN n;
END
$$;

-- RFM as of the end of every period's last day and before the data, gate on minus gate off, as text
CREATE FUNCTION pg_temp.rfm_rows() RETURNS SETOF text LANGUAGE sql AS $$
SELECT a.d || ' ' || x::text
  FROM (SELECT t FROM periods UNION ALL VALUES ('2023-12-31'::date), ('2024-01-01')) AS a(d), LATERAL crm.dashboard_rfm(a.d) AS x
$$;
CREATE FUNCTION pg_temp.rfm_diff() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS rf_full (r text) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS rf_fast (r text) ON COMMIT DROP;
    DELETE FROM rf_full; DELETE FROM rf_fast;
    PERFORM pg_temp.set_gate('off');
    INSERT INTO rf_full SELECT * FROM pg_temp.rfm_rows();
    PERFORM pg_temp.set_gate('fresh');
    INSERT INTO rf_fast SELECT * FROM pg_temp.rfm_rows();
    SELECT count(*) INTO n FROM ((SELECT r FROM rf_fast EXCEPT ALL SELECT r FROM rf_full)
                                 UNION ALL (SELECT r FROM rf_full EXCEPT ALL SELECT r FROM rf_fast)) d;
    RETURN n;
END
$$;
-- the order of the rows too (by customer), the dashboard's period end
CREATE FUNCTION pg_temp.rfm_order_ok() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    a text[];
    b text[];
BEGIN
    PERFORM pg_temp.set_gate('off');
    a := ARRAY(SELECT x::text FROM crm.v_rfm x);
    PERFORM pg_temp.set_gate('fresh');
    b := ARRAY(SELECT x::text FROM crm.v_rfm x);
    RETURN a = b AND cardinality(a) > 1000;
END
$$;

-- a plain-SQL RFM on the demo (the source mapping above written out): per customer recency,
-- frequency, monetary as of the end of d; score = 1 + floor(5 x (values strictly smaller) / values)
CREATE FUNCTION pg_temp.rfm_plain_diff(d date) RETURNS bigint LANGUAGE sql AS $$
WITH e AS (SELECT (d + 1)::timestamptz - interval '1 microsecond' AS e),
o AS (SELECT customer_id::text AS c, ordered_at,
             CASE WHEN order_id % 89 = 0 THEN -amount WHEN order_id % 83 = 0 THEN 0 ELSE amount END AS amount
        FROM crm_demo.orders, e WHERE order_id % 97 <> 0 AND ordered_at <= e.e),
per AS (SELECT c, floor(extract(epoch FROM (SELECT e FROM e) - max(ordered_at)) / 86400)::int AS rd, count(*) AS fr, sum(amount) AS mo
          FROM o GROUP BY c),
sc AS (SELECT c, rd, fr, mo,
              1 + floor(5 * (rank() OVER (ORDER BY -rd) - 1) / count(*) OVER ())::int AS r,
              1 + floor(5 * (rank() OVER (ORDER BY fr) - 1) / count(*) OVER ())::int AS f,
              CASE WHEN mo IS NOT NULL THEN 1 + floor(5 * (rank() OVER (ORDER BY mo) - 1) / count(mo) OVER ())::int END AS m
         FROM per),
fast AS (SELECT customer_id, recency_days, frequency, monetary, r, f, m FROM crm.dashboard_rfm(d))
SELECT count(*) FROM ((SELECT * FROM sc EXCEPT SELECT * FROM fast) UNION ALL (SELECT * FROM fast EXCEPT SELECT * FROM sc)) x
$$;

-- the RFM totals against the demo
CREATE FUNCTION pg_temp.state_diff() RETURNS bigint LANGUAGE sql AS $$
WITH e AS (SELECT customer_id::text AS c, min(ordered_at) AS fa, max(ordered_at) AS la, count(*) AS n,
                  sum(CASE WHEN order_id % 89 = 0 THEN -amount WHEN order_id % 83 = 0 THEN 0 ELSE amount END) AS a
             FROM crm_demo.orders WHERE order_id % 97 <> 0 AND ordered_at IS NOT NULL GROUP BY 1)
SELECT count(*) FROM ((SELECT * FROM e EXCEPT ALL SELECT customer_id, first_at, last_at, orders, amount FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL)
                      UNION ALL (SELECT customer_id, first_at, last_at, orders, amount FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL EXCEPT ALL SELECT * FROM e)) d
$$;

-- every column of the per-customer summary against plain SQL over the order lines (numerics as
-- text: the scale counts)
CREATE FUNCTION pg_temp.summary_diff() RETURNS bigint LANGUAGE sql AS $$
WITH m AS (SELECT coalesce(l.customer_id, '') AS k, max(scale(l.amount)) AS ms FROM crm.rollup_order_lines l GROUP BY 1),
e AS (
    SELECT l.customer_id, min(l.ordered_at) AS first_at, max(l.ordered_at) AS last_at, sum(l.amount - l.cost)::text AS gp,
           count(l.amount - l.cost) AS gp_n, count(*) AS orders, sum(l.amount)::text AS amount, count(l.amount) AS amount_n,
           CASE WHEN scale(sum(l.amount)) IS NULL THEN 0 ELSE count(*) FILTER (WHERE scale(l.amount) = m.ms) END AS scale_n,
           (array_agg(l.amount::text ORDER BY l.ordered_at, l.amount, scale(l.amount)))[1] AS first_amount,
           (array_agg(l.ordered_at ORDER BY l.ordered_at))[2] AS second_at,
           (array_agg(l.ordered_at ORDER BY l.ordered_at DESC))[2] AS prev_at
      FROM crm.rollup_order_lines l JOIN m ON m.k = coalesce(l.customer_id, '')
     GROUP BY l.customer_id, m.ms),
k AS (
    SELECT customer_id, first_at, last_at, gp::text, gp_n, orders, amount::text, amount_n, scale_n, first_amount::text,
           second_at, prev_at
      FROM crm.rollup_customer_orders)
SELECT count(*) FROM ((SELECT * FROM e EXCEPT ALL SELECT * FROM k) UNION ALL (SELECT * FROM k EXCEPT ALL SELECT * FROM e)) d
$$;

-- the RFM figures kept per customer for each kept end (crm.rollup_customer_state, slots 1 and 2)
-- against plain SQL over the demo (the source mapping above written out; numerics as text: the
-- scale counts); 1000 when an end of the dashboard period is not kept
CREATE FUNCTION pg_temp.kept_rfm_diff() RETURNS bigint LANGUAGE sql AS $$
WITH k AS (SELECT x.slot, x.end_at FROM crm.rollup_customer_state_ends x),
e AS (SELECT k.slot, o.customer_id::text AS c, max(o.ordered_at) AS la, count(*) AS n,
             sum(CASE WHEN o.order_id % 89 = 0 THEN -o.amount WHEN o.order_id % 83 = 0 THEN 0 ELSE o.amount END)::text AS a
        FROM crm_demo.orders o JOIN k ON o.ordered_at < k.end_at
       WHERE o.order_id % 97 <> 0 GROUP BY 1, 2),
s AS (SELECT 1 AS slot, customer_id, k1_last_order_at, k1_orders, k1_amount::text FROM crm.rollup_customer_state WHERE k1_orders IS NOT NULL
      UNION ALL
      SELECT 2, customer_id, k2_last_order_at, k2_orders, k2_amount::text FROM crm.rollup_customer_state WHERE k2_orders IS NOT NULL)
SELECT count(*) + CASE WHEN (SELECT array_agg(end_at ORDER BY slot) FROM k)
                            = (SELECT ARRAY[(p.period_to + 1)::timestamptz, p.period_from::timestamptz] FROM crm.dashboard_period() p)
                       THEN 0 ELSE 1000 END
  FROM ((SELECT * FROM e EXCEPT ALL SELECT * FROM s) UNION ALL (SELECT * FROM s EXCEPT ALL SELECT * FROM e)) d
$$;

-- a query's rows (as text, in order) from the rollups (they must stand in) and from the full computation
CREATE FUNCTION pg_temp.fast_eq_full(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    a text[];
    b text[];
    u boolean;
BEGIN
    PERFORM pg_temp.set_gate('fresh');
    u := crm._rollups_usable();
    EXECUTE format('SELECT ARRAY(SELECT x::text FROM (%s) x)', q) INTO a;
    PERFORM pg_temp.set_gate('off');
    EXECUTE format('SELECT ARRAY(SELECT x::text FROM (%s) x)', q) INTO b;
    PERFORM pg_temp.set_gate('fresh');
    RETURN u AND a = b;
END
$$;

CREATE FUNCTION pg_temp.check_all(what text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEXT ok(crm._rollups_usable(), what || ': the rollups may stand in');
    RETURN NEXT is(pg_temp.state_diff(), 0::bigint, what || ': the RFM totals equal the plain computation');
    RETURN NEXT is(pg_temp.summary_diff(), 0::bigint, what || ': the per-customer summary equals plain SQL over the order lines');
    RETURN NEXT is(pg_temp.plan_diff(), 0::bigint, what || ': plan against fact: fast = full, every period and as_of');
    RETURN NEXT is(pg_temp.block_diff(), 0::bigint, what || ': the owner and channel rows from the rollups equal the reports''');
    RETURN NEXT is(pg_temp.rfm_diff(), 0::bigint, what || ': RFM: fast = full, every period end and before the data');
    RETURN NEXT ok(pg_temp.rfm_order_ok(), what || ': v_rfm: the same rows in the same order');
    RETURN NEXT is(pg_temp.kept_rfm_diff(), 0::bigint, what || ': the RFM figures kept at both ends of the dashboard period equal plain SQL');
    RETURN NEXT ok((SELECT array_agg(y.slot ORDER BY y.slot) FROM crm.rollup_rfm_scored y JOIN crm.rollup_customer_state_ends x USING (slot, end_at))
                   = ARRAY[1], what || ': the RFM scores kept at the end of the dashboard period');
    RETURN NEXT ok(pg_temp.fast_eq_full($q$SELECT * FROM crm.dashboard_rfm((SELECT p.period_from - 1 FROM crm.dashboard_period() p))$q$),
                   what || ': RFM as of the kept start of the dashboard period: fast = full');
END
$$;

-- 1-8: after a full refresh
SELECT ok((SELECT count(*) FROM crm.refresh_rollups(true)) = 6, 'full refresh');
SELECT * FROM pg_temp.check_all('full refresh');
SELECT is(pg_temp.rfm_plain_diff('2025-12-31') + pg_temp.rfm_plain_diff('2025-03-31'), 0::bigint,
          'RFM equals a plain-SQL computation (rank-based quantiles) at the data end and a past month end');

-- 9-15: random rounds with incremental refreshes
\ir data/rollups_random_round.sql
SELECT setseed(0.61);
SELECT pg_temp.random_round(1);
SELECT pg_temp.random_round(2);
SELECT ok(NOT crm._rollups_usable(), 'changes waiting: the default (fresh) takes the full computation');
SELECT is(pg_temp.rfm_plain_diff('2025-12-31'), 0::bigint, 'changes waiting: RFM equals the live data (plain SQL)');
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(3);
SELECT count(*) FROM crm.refresh_rollups();
SELECT pg_temp.random_round(4);
SELECT count(*) FROM crm.refresh_rollups();
SELECT is((SELECT last_mode FROM crm.rollup_status), 'incremental', 'rounds 1-4: incremental refreshes');
SELECT * FROM pg_temp.check_all('rounds 1-4');

-- 16-21: a full rebuild gives the same
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT * FROM pg_temp.check_all('a full rebuild after the rounds');

-- new orders after the data (existing customers and a new one): the kept figures untouched;
-- then orders dated back into the dashboard period and before it: its ends rebuilt
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT m.id + g, CASE WHEN g = 1 THEN (SELECT max(customer_id) FROM crm_demo.customers) ELSE g * 7 END,
       timestamptz '2026-01-20 10:00' + g * interval '1 hour', 1, 1, 10.5 * g, 3
  FROM (SELECT max(order_id) AS id FROM crm_demo.orders) m, generate_series(1, 5) g;
SELECT count(*) FROM crm.refresh_rollups();
SELECT * FROM pg_temp.check_all('new orders after the data');
INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
SELECT m.id + g, g * 11, (SELECT (p.period_to + 1)::timestamptz FROM crm.dashboard_period() p) - g * interval '20 days' - interval '1 microsecond',
       1, 1, 1.125 * g, 1
  FROM (SELECT max(order_id) AS id FROM crm_demo.orders) m, generate_series(1, 3) g;
SELECT count(*) FROM crm.refresh_rollups();
SELECT is((SELECT last_mode FROM crm.rollup_status), 'incremental', 'orders dated back: an incremental refresh');
SELECT * FROM pg_temp.check_all('orders dated back into and before the dashboard period');

-- 22-31: the errors, the same on both paths
CREATE FUNCTION pg_temp.same_error(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a text;
    b text;
BEGIN
    PERFORM pg_temp.set_gate('fresh');
    BEGIN EXECUTE q; a := 'no error'; EXCEPTION WHEN OTHERS THEN a := SQLSTATE || ' ' || SQLERRM; END;
    PERFORM pg_temp.set_gate('off');
    BEGIN EXECUTE q; b := 'no error'; EXCEPTION WHEN OTHERS THEN b := SQLSTATE || ' ' || SQLERRM; END;
    PERFORM pg_temp.set_gate('fresh');
    RETURN CASE WHEN a = b THEN a ELSE a || ' <> ' || b END;
END
$$;
SELECT ok(crm._rollups_usable(), 'errors: the rollups may stand in');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_rfm(NULL)$$), '^22004 [^<]*$', 'dashboard_rfm(NULL): 22004 on both paths');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_rfm('infinity')$$), '^22008 [^<]*$', 'dashboard_rfm(infinity): 22008 on both paths');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_plan_fact('2025-12-31', '2025-12-01', NULL)$$), '^22023 [^<]*$',
               'dashboard_plan_fact: inverted period: 22023 on both paths');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_plan_fact(NULL, '2025-12-01', NULL)$$), '^22004 [^<]*$',
               'dashboard_plan_fact: NULL period start: 22004 on both paths');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_plan_fact('2025-12-01', 'infinity', NULL)$$), '^22[0-9A-Z]{3} [^<]*$',
               'dashboard_plan_fact: infinite period: 22007 on both paths');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_plan_fact('2025-12-01', '2025-12-31', '-infinity')$$), '^22008 [^<]*$',
               'dashboard_plan_fact: infinite as_of: 22008 on both paths');
-- the orders source unregistered: 55000 on both paths
SAVEPOINT nosrc;
SELECT crm.unregister_source('orders');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_rfm('2025-12-31')$$), '^55000 [^<]*$', 'dashboard_rfm without an orders source: 55000 on both paths');
ROLLBACK TO SAVEPOINT nosrc;

-- 32-42: a hand-worked fixture: four customers' orders (the other sources: the demo's)
CREATE SCHEMA flx;
CREATE TABLE flx.orders (order_id int, customer_id bigint, ordered_at timestamptz, amount numeric, cost numeric, product_id int);
INSERT INTO flx.orders VALUES
    -- 1: three orders, the last on 12-30 (after the 12-20 end of the past check)
    (1, 1, '2025-11-01 10:00', 100.00, 40, 1), (2, 1, '2025-12-10 10:00', 50.50, 20, 1), (3, 1, '2025-12-30 10:00', 10.00, 5, 1),
    -- 2: one order on 12-31, a negative amount; 3: two orders of 0; 4: first order in January
    (4, 2, '2025-12-31 23:00', -20.00, 0, 1), (5, 3, '2025-12-01 00:00', 0, 0, 1), (6, 3, '2025-12-15 12:00', 0, 0, 1),
    (7, 4, '2026-01-05 09:00', 70.00, 30, 1),
    -- no customer: left out of RFM
    (8, NULL, '2025-12-20 09:00', 999.00, 0, 1);
SELECT crm.register_source('orders', 'SELECT order_id, customer_id, ordered_at, amount, cost, product_id FROM flx.orders');
SELECT ok((SELECT count(*) FROM crm.refresh_rollups()) = 6, 'fixture: orders source changed, full rebuild');
-- customers a = 1, b = 2, c = 3, d = 4
-- as of the end of 2025-12-31: recency a 1 day (12-30 10:00 to 12-31 23:59:59.999999), b 0, c 16;
-- frequency a 3, b 1, c 2; monetary a 160.50, b -20.00, c 0; d not yet a buyer;
-- R from -recency (-16, -1, 0): c 1, a 1 + floor(5 x 1 / 3) = 2, b 1 + floor(5 x 2 / 3) = 4;
-- F (1, 2, 3): b 1, c 2, a 4; M (-20, 0, 160.5): b 1, c 2, a 4;
-- segments: a R2/F4 At Risk, b R4/F1 Promising, c R1/F2 Hibernating
SELECT results_eq($$SELECT * FROM crm.dashboard_rfm('2025-12-31')$$,
    $$VALUES ('1', 1, 3::bigint, 160.50, 2, 4, 4, 'At Risk'), ('2', 0, 1::bigint, -20.00, 4, 1, 1, 'Promising'),
             ('3', 16, 2::bigint, 0::numeric, 1, 2, 2, 'Hibernating')$$, 'fixture: RFM at 12-31 by hand');
-- as of the end of 2025-12-20: a has two orders (150.50, the last 12-10: 10 days), c two (5 days), b none yet;
-- R (-10, -5): a 1, c 1 + floor(5 x 1 / 2) = 3; F ties (2, 2): both 1; M (0, 150.5): c 1, a 3
SELECT results_eq($$SELECT * FROM crm.dashboard_rfm('2025-12-20')$$,
    $$VALUES ('1', 10, 2::bigint, 150.50, 1, 1, 3, 'Hibernating'), ('3', 5, 2::bigint, 0::numeric, 3, 1, 1, 'About To Sleep')$$,
    'fixture: RFM at 12-20 by hand (a''s later order left out)');
SELECT is((SELECT count(*) FROM crm.dashboard_rfm('2025-10-31')), 0::bigint, 'fixture: RFM before the data: no rows');
SELECT ok(pg_temp.fast_eq_full($$SELECT * FROM crm.dashboard_rfm('2025-12-20') UNION ALL SELECT * FROM crm.dashboard_rfm('2025-12-31')$$),
          'fixture: RFM fast = full');
DELETE FROM crm.plans;
-- plans of December: revenue (orders 2-6 and 8: 50.50 + 10 - 20 + 0 + 0 + 999 = 1039.50), orders 6,
-- new buyers b, c and the orders without a customer (one group: one buyer, as the full computation
-- counts them; a bought in November) = 3, gross profit 1039.50 - 25 = 1014.50
SELECT crm.set_plan('revenue', '2025-12-01', '2025-12-31', 2079);
SELECT crm.set_plan('orders', '2025-12-01', '2025-12-31', 12);
SELECT crm.set_plan('new_buyers', '2025-12-01', '2025-12-31', 4);
SELECT crm.set_plan('gross_profit', '2025-12-01', '2025-12-31', 1014.50);
-- as of 12-15: revenue 50.50 + 0 + 0 = 50.50 over 15 days (orders 3, new buyer c, gross profit 30.50), forecast 50.50 x 31 / 15 = 104.37
SELECT results_eq($$SELECT metric, fact, pct, forecast FROM crm.dashboard_plan_fact('2025-12-01', '2025-12-31', '2025-12-15')$$,
    $$VALUES ('new_buyers', 1::numeric, 25.00, 2.07), ('revenue', 50.50, 2.43, 104.37), ('orders', 3, 25.00, 6.20),
             ('gross_profit', 30.50, 3.01, 63.03)$$, 'fixture: plan against fact as of 12-15 by hand');
SELECT results_eq($$SELECT metric, fact, pct FROM crm.dashboard_plan_fact('2025-12-01', '2025-12-31', '2026-02-01')$$,
    $$VALUES ('new_buyers', 3::numeric, 75.00), ('revenue', 1039.50, 50.00), ('orders', 6, 50.00), ('gross_profit', 1014.50, 100.00)$$,
    'fixture: plan against fact of the whole month by hand');
SELECT ok(pg_temp.fast_eq_full($$SELECT * FROM crm.dashboard_plan_fact('2025-12-01', '2025-12-31', '2026-02-01')
                                   UNION ALL SELECT * FROM crm.dashboard_plan_fact('2025-12-01', '2025-12-31', '2025-12-15')$$),
          'fixture: plan against fact fast = full');
-- 1's 12-30 order moved to 12-05 and a new order of 4 in December: the orders part from 12-05
UPDATE flx.orders SET ordered_at = '2025-12-05 10:00' WHERE order_id = 3;
INSERT INTO flx.orders VALUES (9, 4, '2025-12-31 12:00', 5.00, 1, 1);
SELECT count(*) FROM crm.refresh_rollups();
SELECT results_eq($$SELECT customer_id, first_at, last_at, orders, amount FROM crm.rollup_customer_orders WHERE customer_id IS NOT NULL ORDER BY 1$$,
    $$VALUES ('1', '2025-11-01 10:00'::timestamptz, '2025-12-10 10:00'::timestamptz, 3::bigint, 160.50),
             ('2', '2025-12-31 23:00', '2025-12-31 23:00', 1, -20.00), ('3', '2025-12-01 00:00', '2025-12-15 12:00', 2, 0),
             ('4', '2025-12-31 12:00', '2026-01-05 09:00', 2, 75.00)$$, 'fixture: the RFM totals after the change');
SELECT ok(pg_temp.fast_eq_full($$SELECT * FROM crm.dashboard_rfm('2025-12-31')$$)
          AND pg_temp.fast_eq_full($$SELECT * FROM crm.dashboard_plan_fact('2025-12-01', '2025-12-31', '2026-02-01')$$),
          'fixture: after the change fast = full');
-- mixed scales, NULL amounts, tied moments (new customers 5-8: added by the incremental refresh)
INSERT INTO flx.orders VALUES
    -- 5: 10.5 then 3.25: as of 12-10 the sum of its lines up to the end is 10.5 (scale 1), not 10.50
    (10, 5, '2025-12-01 10:00', 10.5, 1, 1), (11, 5, '2025-12-20 10:00', 3.25, 1, 1),
    -- 6: two of 4.00, then 1.125 and a NULL amount: as of 12-20 8.00, as of 12-31 9.125
    (12, 6, '2025-12-01 10:00', 4.00, 1, 1), (13, 6, '2025-12-02 10:00', 4.00, 1, 1), (14, 6, '2025-12-25 10:00', 1.125, 1, 1),
    (15, 6, '2026-01-02 10:00', NULL, 1, 1),
    -- 7: two orders at the same moment (2.0, 2.00), 5 in January: 4.00 (the sum of 9.00 less 5), last 12-05 09:00
    (16, 7, '2025-12-05 09:00', 2.0, 1, 1), (17, 7, '2025-12-05 09:00', 2.00, 1, 1), (18, 7, '2026-01-03 10:00', 5, 1, 1),
    -- 8: NULL amounts up to 12-31, 3.5 after: monetary NULL
    (19, 8, '2025-12-03 10:00', NULL, 1, 1), (20, 8, '2025-12-04 10:00', NULL, 1, 1), (21, 8, '2026-01-04 10:00', 3.5, 1, 1);
SELECT count(*) FROM crm.refresh_rollups();
-- recency: whole days from the last order up to the end to the end of the day (23:59:59.999999)
SELECT results_eq($$SELECT d.e::text, r.customer_id, r.recency_days, r.frequency, r.monetary::text
                      FROM unnest(ARRAY[date '2025-12-10', '2025-12-20', '2025-12-31']) d(e), crm.dashboard_rfm(d.e) r
                     WHERE r.customer_id IN ('5', '6', '7', '8') ORDER BY 1, 2$$,
    $$VALUES ('2025-12-10', '5', 9, 1::bigint, '10.5'), ('2025-12-10', '6', 8, 2::bigint, '8.00'),
             ('2025-12-10', '7', 5, 2::bigint, '4.00'), ('2025-12-10', '8', 6, 2::bigint, NULL),
             ('2025-12-20', '5', 0, 2::bigint, '13.75'), ('2025-12-20', '6', 18, 2::bigint, '8.00'),
             ('2025-12-20', '7', 15, 2::bigint, '4.00'), ('2025-12-20', '8', 16, 2::bigint, NULL),
             ('2025-12-31', '5', 11, 2::bigint, '13.75'), ('2025-12-31', '6', 6, 3::bigint, '9.125'),
             ('2025-12-31', '7', 26, 2::bigint, '4.00'), ('2025-12-31', '8', 27, 2::bigint, NULL)$$,
    'fixture: RFM with mixed scales, NULL amounts and tied moments by hand');
SELECT ok(pg_temp.fast_eq_full($$SELECT * FROM crm.dashboard_rfm('2025-12-10') UNION ALL SELECT * FROM crm.dashboard_rfm('2025-12-20')
                                   UNION ALL SELECT * FROM crm.dashboard_rfm('2025-12-31') UNION ALL SELECT * FROM crm.dashboard_rfm('2026-01-03')$$),
          'fixture: mixed scales: fast = full');
SELECT is(pg_temp.summary_diff(), 0::bigint, 'fixture: mixed scales: the summary equals plain SQL');
-- appended orders (after every kept one: the summaries added to), one raising 5's scale to 4
INSERT INTO flx.orders VALUES (22, 5, '2026-01-10 10:00', 0.0001, 0, 1), (23, 6, '2026-01-10 10:00', 2.50, 0, 1),
    (24, 7, '2026-01-10 10:00', 1.0, 0, 1), (25, 7, '2026-01-10 10:00', 1.00, 0, 1), (26, 8, '2026-01-10 10:00', NULL, 0, 1);
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(pg_temp.fast_eq_full($$SELECT * FROM crm.dashboard_rfm('2025-12-10') UNION ALL SELECT * FROM crm.dashboard_rfm('2025-12-31')
                                   UNION ALL SELECT * FROM crm.dashboard_rfm('2026-01-05') UNION ALL SELECT * FROM crm.dashboard_rfm('2026-01-10')$$),
          'fixture: appended orders: fast = full');
SELECT is(pg_temp.summary_diff(), 0::bigint, 'fixture: appended orders: the summary equals plain SQL');
CREATE TEMP TABLE sum_inc AS SELECT x::text AS r FROM crm.rollup_customer_orders x;
SELECT count(*) FROM crm.refresh_rollups(full => true);
SELECT is((SELECT count(*) FROM ((SELECT r FROM sum_inc EXCEPT ALL SELECT x::text FROM crm.rollup_customer_orders x)
                                 UNION ALL (SELECT x::text FROM crm.rollup_customer_orders x EXCEPT ALL SELECT r FROM sum_inc)) d), 0::bigint,
          'fixture: the incrementally kept summary equals a full rebuild');
-- an amount NaN before the end (more than 12 months before: the kept classes do not read it): the
-- scoring fails (quantile_score), no scores kept for the end, the same error on both paths
INSERT INTO flx.orders VALUES (27, 5, '2024-06-06 10:00', 'NaN', 0, 1);
SELECT count(*) FROM crm.refresh_rollups();
SELECT ok(NOT EXISTS (SELECT 1 FROM crm.rollup_rfm_scored WHERE slot = 1) AND EXISTS (SELECT 1 FROM crm.rollup_customer_state_ends WHERE slot = 1),
          'fixture: a NaN amount before the end: its scores not kept, its figures kept');
SELECT matches(pg_temp.same_error($$SELECT * FROM crm.dashboard_rfm('2025-12-31')$$), '^22023 [^<]*$', 'fixture: NaN amount: 22023 on both paths');

SELECT * FROM finish();
ROLLBACK;
