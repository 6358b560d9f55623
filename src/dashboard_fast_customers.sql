-- dashboard_fast_customers.sql: the customer figures of the reports from the
-- rollups (issue 21; docs/rollups.md, "Customers").
--
-- State per customer, kept by the rollup parts orders and contacts
-- (crm._rollup_orders, crm._rollup_contacts call crm._rollup_fast_orders /
-- crm._rollup_fast_contacts), from which every customer figure as of any
-- moment E is exact: narrow copies of the orders (customer, moment, amount,
-- cost), of the customers source (customer, created_at, channel, manager) and
-- of the real (non-automated) contacts with a customer (customer, moment),
-- plus per customer the first and last order with the gross profit of all
-- orders, and the last real contact.  A figure as of E reads the totals of the
-- customers whose last order / contact is before E as they are, and reads the
-- copies (by index) only for the customers with an order / contact at or
-- after E.  Derived data: not dumped, no grants to PUBLIC.

CREATE TABLE crm.rollup_order_lines (
    customer_id text,
    ordered_at  timestamptz NOT NULL,
    amount      numeric,
    cost        numeric
);
COMMENT ON TABLE crm.rollup_order_lines IS
'Rollup state (derived, not dumped): a narrow copy of the orders source (customer, moment, amount, cost; orders without a moment left out), by time and by customer.';
CREATE INDEX ON crm.rollup_order_lines (ordered_at);
CREATE INDEX ON crm.rollup_order_lines (customer_id, ordered_at);

CREATE TABLE crm.rollup_customer_orders (
    customer_id  text,
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    gp           numeric,
    gp_n         bigint,
    orders       bigint,
    amount       numeric,
    amount_n     bigint,
    scale_n      bigint,
    first_amount numeric,
    second_at    timestamptz,
    prev_at      timestamptz
)
-- room on each page: a summary updated in place stays on its page (no new index entry)
WITH (fillfactor = 80);
COMMENT ON TABLE crm.rollup_customer_orders IS
'Rollup state per customer with orders (derived, not dumped; customer_id NULL = the orders without a customer), one summary of its order lines: first and last order, gross profit (amount - cost) of all orders and the number of orders with one (gp_n), the number of orders, the sum of their amounts, the number of non-NULL amounts (amount_n) and of amounts with the scale of that sum (scale_n), the first order''s amount (of the earliest by moment, amount, scale), the moment of the second order (NULL = one order; equal to first_at when two orders share the first moment) and of the order before the last one (prev_at: NULL = one order; equal to last_at when two orders share the last moment).';
CREATE UNIQUE INDEX ON crm.rollup_customer_orders (customer_id) NULLS NOT DISTINCT;

-- per end of the dashboard period (as of the refresh) and of the period before:
-- the class of every customer with revenue in the 12 months before it
CREATE TABLE crm.rollup_customer_classes (
    end_at      timestamptz NOT NULL,
    customer_id text,
    rev         numeric,
    cov_class   text NOT NULL,
    abc_class   text,
    since       timestamptz
);
COMMENT ON TABLE crm.rollup_customer_classes IS
'Rollup state (derived, not dumped): for the end of the dashboard period (crm.dashboard_period() as of the last refresh of the orders part) and for its start, per customer with orders in the 12 months before it (customer_id NULL = the orders without a customer): the revenue, the class by the thresholds of crm.dashboard_coverage and by crm.abc_class, and for class A by crm.abc_class the customer since (the earliest created_at of the customers copy, else the first order; NULL for the other classes).';
CREATE INDEX ON crm.rollup_customer_classes (end_at, customer_id);
CREATE TABLE crm.rollup_customer_class_ends (
    end_at timestamptz PRIMARY KEY
);
COMMENT ON TABLE crm.rollup_customer_class_ends IS
'Rollup state (derived, not dumped): the moments crm.rollup_customer_classes holds the classes for.';

CREATE TABLE crm.rollup_customer_info (
    customer_id text,
    created_at  timestamptz,
    channel     text,
    manager_id  text
);
COMMENT ON TABLE crm.rollup_customer_info IS
'Rollup state (derived, not dumped): a copy of the customers source (customer, created_at, channel, manager), every row as the source returns it.';
CREATE INDEX ON crm.rollup_customer_info (customer_id);
CREATE INDEX ON crm.rollup_customer_info (created_at);

CREATE TABLE crm.rollup_real_contacts (
    customer_id text NOT NULL,
    occurred_at timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_real_contacts IS
'Rollup state (derived, not dumped): the real (non-automated) interactions with a customer, narrow (customer, moment), by customer and by time.';
CREATE INDEX ON crm.rollup_real_contacts (customer_id, occurred_at);
CREATE INDEX ON crm.rollup_real_contacts (occurred_at);

CREATE TABLE crm.rollup_customer_contacts (
    customer_id text PRIMARY KEY,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_customer_contacts IS
'Rollup state per contacted customer (derived, not dumped): the first and the last real (non-automated) contact.';
CREATE INDEX ON crm.rollup_customer_contacts (last_at);

-- One row per customer (section "Customers in one table"): what the report
-- queries fetch per customer from the tables above, so that each report reads
-- one table in one pass instead of joining them by text id.
CREATE TABLE crm.rollup_customer_state (
    customer_id      text,
    info_n           integer NOT NULL,
    created_at       timestamptz,
    channel          text,
    manager_id       text,
    since            timestamptz,
    first_order_at   timestamptz,
    last_order_at    timestamptz,
    gp               numeric,
    gp_n             bigint,
    first_contact_at timestamptz,
    last_contact_at  timestamptz,
    k1_rev           numeric,
    k1_cls           text,
    k1_abc           text,
    k1_contact       timestamptz,
    k2_rev           numeric,
    k2_cls           text,
    k2_abc           text,
    k2_contact       timestamptz,
    k1_last_order_at timestamptz,
    k1_orders        bigint,
    k1_amount        numeric,
    k2_last_order_at timestamptz,
    k2_orders        bigint,
    k2_amount        numeric
);
COMMENT ON TABLE crm.rollup_customer_state IS
'Rollup state (derived, not dumped): one row per customer of the customers copy, the order totals or the contact totals (customer_id NULL = the customers rows without an id): the number of customers rows (info_n) and, when it is 1, that row''s created_at, channel and manager; the earliest created_at (since); first and last order and gross profit (crm.rollup_customer_orders) with the number of orders with a gross profit (gp_n); first and last real contact (crm.rollup_customer_contacts); for the ends of crm.rollup_customer_state_ends (slot 1: k1_*, slot 2: k2_*) the revenue and classes kept in crm.rollup_customer_classes, the last real contact before the end and the RFM figures of the orders before the end (last order, number of orders, sum of the amounts with the scale of a sum over those orders; NULL without an order before it).';
CREATE UNIQUE INDEX ON crm.rollup_customer_state (customer_id) NULLS NOT DISTINCT;

CREATE TABLE crm.rollup_customer_state_ends (
    slot   integer PRIMARY KEY,
    end_at timestamptz NOT NULL UNIQUE
);
COMMENT ON TABLE crm.rollup_customer_state_ends IS
'Rollup state (derived, not dumped): the moment whose kept classes crm.rollup_customer_state holds in its columns k1_* (slot 1) and k2_* (slot 2).';

-- ---------------------------------------------------------------------------
-- Maintenance (called by the rollup parts)
-- ---------------------------------------------------------------------------

-- Part orders: the copies of the orders and customers sources from from_ts
-- on (every order row changed, before or after the change, is at or after
-- from_ts; so is every customers row changed, by its created_at, but rows
-- without a created_at are read again every time the customers changed), then the per-customer
-- totals of every customer with an order at or after from_ts before or after.
CREATE FUNCTION crm._rollup_fast_orders(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    m bigint;
    cust_ts timestamptz := from_ts;
    ids text[];
    -- the customers of the order lines replaced (with an order at or after from_ts before the change)
    old_ids text[];
    old_nul boolean;
BEGIN
    -- during crm.refresh_rollups the changes it took are in pg_temp.crm_rollup_taken:
    -- the customers copy is read again only from the earliest change of a table the
    -- customers source reads (not at all when none changed)
    IF pg_catalog.isfinite(from_ts) AND pg_catalog.to_regclass('pg_temp.crm_rollup_taken') IS NOT NULL THEN
        SELECT pg_catalog.min(t.bound) INTO cust_ts FROM pg_temp.crm_rollup_taken t
         WHERE t.relid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.relid FROM crm.rollup_capture c WHERE c.kind OPERATOR(pg_catalog.=) 'customers'));
        IF cust_ts IS NOT NULL THEN
            cust_ts := greatest(cust_ts, from_ts);
        END IF;
    END IF;
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_order_lines, crm.rollup_customer_info;
    ELSE
        WITH d AS (DELETE FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) from_ts RETURNING l.customer_id)
        SELECT pg_catalog.array_agg(DISTINCT d.customer_id) FILTER (WHERE d.customer_id IS NOT NULL), pg_catalog.bool_or(d.customer_id IS NULL)
          INTO old_ids, old_nul FROM d;
        -- the customers whose rows are read again: their "since" in the kept classes is set again below
        WITH d AS (DELETE FROM crm.rollup_customer_info c WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL AND cust_ts IS NOT NULL
                   RETURNING c.customer_id)
        SELECT pg_catalog.array_agg(d.customer_id) INTO ids FROM d;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_order_lines (customer_id, ordered_at, amount, cost)
SELECT o.customer_id::pg_catalog.text, o.ordered_at, o.amount, o.cost FROM %1$s WHERE o.ordered_at OPERATOR(pg_catalog.>=) $1
$sql$, crm._source_sql('orders', 'o')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    m := 0;
    IF cust_ts IS NOT NULL THEN
        EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_customer_info (customer_id, created_at, channel, manager_id)
SELECT c.customer_id::pg_catalog.text, c.created_at, c.channel::pg_catalog.text, c.manager_id::pg_catalog.text
  FROM %1$s WHERE c.created_at OPERATOR(pg_catalog.>=) $1 OR c.created_at IS NULL
        $sql$, crm._source_sql('customers', 'c')) USING cust_ts;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    n := n OPERATOR(pg_catalog.+) m OPERATOR(pg_catalog.+)
         crm._rollup_fast_order_totals(from_ts, coalesce(old_ids, '{}'), coalesce(old_nul, false));
    IF cust_ts IS NOT NULL AND pg_catalog.isfinite(from_ts) THEN
        -- "since" of the class-A customers whose customers rows changed (the deleted and the
        -- inserted ones), at the kept ends; their first order (before the end) changes only
        -- with an order before the end, and then crm._rollup_fast_classes rebuilds the end
        ids := ids OPERATOR(pg_catalog.||) ARRAY(SELECT c.customer_id FROM crm.rollup_customer_info c
                                                   WHERE c.created_at OPERATOR(pg_catalog.>=) cust_ts OR c.created_at IS NULL);
        UPDATE crm.rollup_customer_classes k
           SET since = coalesce((SELECT pg_catalog.min(i.created_at) FROM crm.rollup_customer_info i
                                  WHERE i.customer_id OPERATOR(pg_catalog.=) k.customer_id),
                                (SELECT t.first_at FROM crm.rollup_customer_orders t
                                  WHERE t.customer_id OPERATOR(pg_catalog.=) k.customer_id))
         WHERE k.abc_class OPERATOR(pg_catalog.=) 'A' AND k.customer_id OPERATOR(pg_catalog.=) ANY (ids);
        IF FOUND THEN
            -- a class-A customer's "since" counts as of the end whatever the moment of the
            -- change (the full computation reads every customers row): the owner dashboard's
            -- kept rows are written again at the end of the refresh (crm._rollup_owner_keep)
            DELETE FROM crm.rollup_owner_kept_key;
        END IF;
        -- their rows of the per-customer table
        n := n OPERATOR(pg_catalog.+) crm._rollup_fast_state(ids);
    END IF;
    RETURN n OPERATOR(pg_catalog.+) crm._rollup_fast_classes(from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_orders(timestamptz) IS
'Rollup state of the customer reports, part orders: the copies of the orders and customers sources (crm.rollup_order_lines, crm.rollup_customer_info), the per-customer order summaries (crm.rollup_customer_orders) and first orders (crm.rollup_customers) from the given moment on and the classes at the dashboard period''s ends (crm.rollup_customer_classes); rows written.';

-- The per-customer summary of the order lines (crm.rollup_customer_orders) in
-- one pass per changed customer.  Every changed line is at or after from_ts,
-- before and after the change.  A customer whose kept last order is at or
-- after from_ts (lines of it may have changed or gone) is read again from all
-- its lines; every other customer had only lines before from_ts, which did
-- not change: its kept summary plus its lines at or after from_ts (the common
-- case, new orders after every existing one, reads no history).  Sums keep the
-- scale a sum of all lines gives (a numeric sum's scale is the largest of its
-- terms').
CREATE FUNCTION crm._rollup_fast_order_totals(from_ts timestamptz, old_ids text[], old_nul boolean) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n    bigint;
    ids  text[];
    wids text[];
    done text[];
    nul  boolean;
BEGIN
    IF from_ts = '-infinity' THEN
        -- a full rebuild reads everything: hash joins again (the SET above is for the few changed rows)
        PERFORM pg_catalog.set_config('enable_hashjoin', 'on', true), pg_catalog.set_config('enable_mergejoin', 'on', true);
        TRUNCATE crm.rollup_customer_orders;
        DELETE FROM crm.rollup_customers;
        INSERT INTO crm.rollup_customer_orders
        SELECT x.customer_id, min(x.ordered_at), max(x.ordered_at), sum(x.amount - x.cost), count(x.amount - x.cost),
               count(*), sum(x.amount), count(x.amount),
               CASE WHEN scale(sum(x.amount)) IS NOT NULL THEN count(*) FILTER (WHERE scale(x.amount) = x.ms) ELSE 0 END,
               min(x.amount) FILTER (WHERE x.rn = 1), min(x.ordered_at) FILTER (WHERE x.rn = 2),
               max(x.ordered_at) FILTER (WHERE x.rn = x.cnt - 1)
          FROM (SELECT l.customer_id, l.ordered_at, l.amount, l.cost, max(scale(l.amount)) OVER (PARTITION BY l.customer_id) AS ms,
                       count(*) OVER (PARTITION BY l.customer_id) AS cnt,
                       row_number() OVER (PARTITION BY l.customer_id ORDER BY l.ordered_at, l.amount, scale(l.amount)) AS rn
                  FROM crm.rollup_order_lines l) AS x
         GROUP BY 1
         -- in the order crm._fast_rfm_sql reads them (by the unique index on the ids)
         ORDER BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        INSERT INTO crm.rollup_customers (customer_id, first_at)
        SELECT t.customer_id, t.first_at FROM crm.rollup_customer_orders t WHERE t.customer_id IS NOT NULL;
        RETURN n;
    END IF;
    -- the customers with an order at or after from_ts before the change (old_ids: the
    -- customers of the lines replaced): from all their lines
    ids := old_ids;
    nul := old_nul OR EXISTS (SELECT 1 FROM crm.rollup_order_lines l WHERE l.ordered_at >= from_ts AND l.customer_id IS NULL);
    IF cardinality(ids) > 0 THEN
        DELETE FROM crm.rollup_customer_orders t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    END IF;
    IF nul THEN
        DELETE FROM crm.rollup_customer_orders t WHERE t.customer_id IS NULL;
    END IF;
    -- first orders at or after from_ts may have changed; earlier ones did not (the
    -- new ones: the summaries written below with a first order at or after from_ts)
    DELETE FROM crm.rollup_customers rc WHERE rc.first_at >= from_ts;
    -- every line at or after from_ts, and the earlier lines of those customers;
    -- the others' summaries are added to (ON CONFLICT), and the per-customer
    -- table gets the new figures of the rows written (in place)
    WITH w AS (
        INSERT INTO crm.rollup_customer_orders AS t
        SELECT x.customer_id, min(x.ordered_at), max(x.ordered_at), sum(x.amount - x.cost), count(x.amount - x.cost),
               count(*), sum(x.amount), count(x.amount),
               CASE WHEN scale(sum(x.amount)) IS NOT NULL THEN count(*) FILTER (WHERE scale(x.amount) = x.ms) ELSE 0 END,
               min(x.amount) FILTER (WHERE x.rn = 1), min(x.ordered_at) FILTER (WHERE x.rn = 2),
               max(x.ordered_at) FILTER (WHERE x.rn = x.cnt - 1)
          FROM (SELECT l.customer_id, l.ordered_at, l.amount, l.cost, max(scale(l.amount)) OVER (PARTITION BY l.customer_id) AS ms,
                       count(*) OVER (PARTITION BY l.customer_id) AS cnt,
                       row_number() OVER (PARTITION BY l.customer_id ORDER BY l.ordered_at, l.amount, scale(l.amount)) AS rn
                  FROM (SELECT l.customer_id, l.ordered_at, l.amount, l.cost FROM crm.rollup_order_lines l
                         WHERE l.ordered_at >= from_ts AND l.customer_id IS NOT NULL
                        UNION ALL
                        SELECT l.customer_id, l.ordered_at, l.amount, l.cost
                          FROM unnest(ids) AS u(id) JOIN crm.rollup_order_lines l ON l.customer_id = u.id AND l.ordered_at < from_ts
                        UNION ALL
                        -- the orders without a customer, one group read again from all its lines
                        SELECT l.customer_id, l.ordered_at, l.amount, l.cost FROM crm.rollup_order_lines l
                         WHERE nul AND l.customer_id IS NULL) AS l) AS x
         GROUP BY 1
        ON CONFLICT (customer_id) DO UPDATE
           SET last_at = EXCLUDED.last_at,
               gp = CASE WHEN t.gp IS NULL THEN EXCLUDED.gp WHEN EXCLUDED.gp IS NULL THEN t.gp ELSE t.gp + EXCLUDED.gp END,
               gp_n = t.gp_n + EXCLUDED.gp_n,
               orders = t.orders + EXCLUDED.orders,
               amount = CASE WHEN t.amount IS NULL THEN EXCLUDED.amount WHEN EXCLUDED.amount IS NULL THEN t.amount
                             ELSE t.amount + EXCLUDED.amount END,
               amount_n = t.amount_n + EXCLUDED.amount_n,
               -- (a sum not finite (NaN, infinity) has no scale: 0)
               scale_n = CASE WHEN t.amount IS NOT NULL AND scale(t.amount) IS NULL
                                OR EXCLUDED.amount IS NOT NULL AND scale(EXCLUDED.amount) IS NULL THEN 0
                              WHEN t.amount IS NULL OR scale(EXCLUDED.amount) > scale(t.amount) THEN EXCLUDED.scale_n
                              WHEN scale(EXCLUDED.amount) = scale(t.amount) THEN t.scale_n + EXCLUDED.scale_n
                              ELSE t.scale_n END,
               second_at = coalesce(t.second_at, EXCLUDED.first_at),
               prev_at = CASE WHEN EXCLUDED.orders > 1 THEN EXCLUDED.prev_at ELSE t.last_at END
        RETURNING t.customer_id, t.first_at, t.last_at, t.gp, t.gp_n),
    f AS (
        INSERT INTO crm.rollup_customers (customer_id, first_at)
        SELECT w.customer_id, w.first_at FROM w WHERE w.first_at >= from_ts AND w.customer_id IS NOT NULL),
    s AS (
        UPDATE crm.rollup_customer_state s SET first_order_at = w.first_at, last_order_at = w.last_at, gp = w.gp, gp_n = w.gp_n
          FROM w WHERE s.customer_id = w.customer_id
        RETURNING s.customer_id)
    -- (the group without a customer has no row in the per-customer table, whose NULL row
    -- stands for the customers rows without an id)
    SELECT (SELECT array_agg(w.customer_id) FILTER (WHERE w.customer_id IS NOT NULL) FROM w), (SELECT count(*) FROM w),
           (SELECT array_agg(s.customer_id) FROM s)
      INTO wids, n, done;
    n := n + coalesce(cardinality(done), 0);
    -- the per-customer table for the others: new to it, or without orders now
    ids := ARRAY(SELECT unnest(wids) UNION SELECT unnest(ids) EXCEPT SELECT unnest(done));
    IF cardinality(ids) > 0 THEN
        n := n + crm._rollup_fast_state(ids);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_order_totals(timestamptz, text[], boolean) IS
'Keeps crm.rollup_customer_orders (the summary of each customer''s order lines), its columns in crm.rollup_customer_state and the first orders (crm.rollup_customers) for every customer with an order at or after the given moment, before or after the change: those with one before the change (the given customers whose lines were replaced; true: the orders without a customer among them) read again from all their lines, the others their summary plus their new lines (everything again for -infinity); rows written.';

-- The classes at the ends of the dashboard period (crm.dashboard_period() of
-- the refreshing session, the days cut in the rollups' time zone): rebuilt for
-- an end when an order before it may have changed (from_ts before it) or when
-- the period moved; a report as of another moment computes them live.
CREATE FUNCTION crm._rollup_fast_classes(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p    record;
    ends timestamptz[];
    e    timestamptz;
    n    bigint;
    nn   bigint := 0;
    -- a full refresh (-infinity) rebuilds the per-customer table here, once
    changed boolean := from_ts = '-infinity';
BEGIN
    BEGIN
        SELECT * INTO p FROM crm.dashboard_period();
        -- only ends already past: the end of a running period (this month) would
        -- be rebuilt by every refresh after new orders; its classes are computed
        -- when read
        ends := ARRAY(SELECT x FROM unnest(ARRAY[(p.period_to + 1)::timestamptz, p.period_from::timestamptz]) AS x
                       WHERE x <= now());
    EXCEPTION WHEN OTHERS THEN
        ends := '{}';   -- a bad period setting: no classes kept, the reports compute them
    END;
    FOR e IN SELECT x.end_at FROM crm.rollup_customer_class_ends x WHERE x.end_at <> ALL (ends) LOOP
        DELETE FROM crm.rollup_customer_classes c WHERE c.end_at = e;
        DELETE FROM crm.rollup_customer_class_ends x WHERE x.end_at = e;
        changed := true;
    END LOOP;
    FOREACH e IN ARRAY ends LOOP
        IF from_ts < e OR NOT EXISTS (SELECT 1 FROM crm.rollup_customer_class_ends x WHERE x.end_at = e) THEN
            DELETE FROM crm.rollup_customer_classes c WHERE c.end_at = e;
            changed := true;
            BEGIN
                INSERT INTO crm.rollup_customer_class_ends (end_at) VALUES (e) ON CONFLICT DO NOTHING;
                -- class A: the customer since as the owner dashboard's overdue rule reads it
                -- (the earliest created_at of the customers copy, else the first order)
                INSERT INTO crm.rollup_customer_classes (end_at, customer_id, rev, cov_class, abc_class, since)
                SELECT e, k.customer_id, k.rev, k.cls, k.abc,
                       CASE WHEN k.abc = 'A' THEN coalesce(ci.created_at, t.first_at,
                            CASE WHEN k.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL) END) END
                  FROM crm._fast_classes_live(e) k
                  LEFT JOIN (SELECT i.customer_id, min(i.created_at) AS created_at FROM crm.rollup_customer_info i GROUP BY 1) ci
                         ON ci.customer_id = k.customer_id AND k.abc = 'A'
                  LEFT JOIN crm.rollup_customer_orders t ON t.customer_id = k.customer_id AND k.abc = 'A';
                GET DIAGNOSTICS n = ROW_COUNT;
                nn := nn + n;
            EXCEPTION WHEN data_exception THEN
                -- revenue the classes cannot rank (a NaN amount: crm.abc_class refuses it): no
                -- classes kept for this end, so the refresh goes on and the reports compute them
                -- when read, raising the full computation's error where it raises one
                DELETE FROM crm.rollup_customer_class_ends x WHERE x.end_at = e;
            END;
        END IF;
    END LOOP;
    -- the classes the per-customer table holds changed: it is rebuilt
    IF changed THEN
        nn := nn + crm._rollup_fast_state_rebuild();
    END IF;
    RETURN nn;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_classes(timestamptz) IS
'Keeps crm.rollup_customer_classes for the end and the start of the dashboard period: rebuilt for an end when the orders changed before it (the given moment is before it) or the period moved; an end whose classes raise a data error (a NaN amount) is not kept (the reports compute it when read); rows written.';

-- Part contacts: the copy of the real contacts from from_ts on, then the last
-- real contact of every customer with one at or after from_ts before or after.
CREATE FUNCTION crm._rollup_fast_contacts(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_real_contacts;
    ELSE
        DELETE FROM crm.rollup_real_contacts x WHERE x.occurred_at OPERATOR(pg_catalog.>=) from_ts;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_real_contacts (customer_id, occurred_at)
SELECT x.customer_id::pg_catalog.text, x.occurred_at FROM %1$s
 WHERE x.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT x.automated AND x.customer_id IS NOT NULL
$sql$, crm._source_sql('interactions', 'x')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n OPERATOR(pg_catalog.+) crm._rollup_fast_contact_totals(from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_contacts(timestamptz) IS
'Rollup state of the customer reports, part contacts: the copy of the real contacts (crm.rollup_real_contacts) and the last real contact per customer (crm.rollup_customer_contacts) from the given moment on; rows written.';

CREATE FUNCTION crm._rollup_fast_contact_totals(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the changed customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n   bigint;
    ids text[];
BEGIN
    -- a full rebuild reads everything: hash joins again (the SET above is for the few changed rows)
    IF NOT pg_catalog.isfinite(from_ts) THEN
        PERFORM pg_catalog.set_config('enable_hashjoin', 'on', true), pg_catalog.set_config('enable_mergejoin', 'on', true);
    END IF;
    IF from_ts = '-infinity' THEN
        TRUNCATE crm.rollup_customer_contacts;
        INSERT INTO crm.rollup_customer_contacts (customer_id, first_at, last_at)
        SELECT x.customer_id, min(x.occurred_at), max(x.occurred_at) FROM crm.rollup_real_contacts x GROUP BY 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n + crm._rollup_fast_state_rebuild();
    END IF;
    ids := ARRAY(SELECT t.customer_id FROM crm.rollup_customer_contacts t WHERE t.last_at >= from_ts
                 UNION
                 SELECT x.customer_id FROM crm.rollup_real_contacts x WHERE x.occurred_at >= from_ts);
    DELETE FROM crm.rollup_customer_contacts t USING unnest(ids) AS u(id) WHERE t.customer_id = u.id;
    INSERT INTO crm.rollup_customer_contacts (customer_id, first_at, last_at)
    SELECT x.customer_id, min(x.occurred_at), max(x.occurred_at)
      FROM unnest(ids) AS u(id) JOIN crm.rollup_real_contacts x ON x.customer_id = u.id GROUP BY 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the per-customer table for the same customers
    RETURN n + crm._rollup_fast_state_contacts(ids, from_ts);
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_contact_totals(timestamptz) IS
'Recomputes crm.rollup_customer_contacts (first and last real contact per customer) for every customer with a real contact at or after the given moment, before or after the change (everything for -infinity), from crm.rollup_real_contacts; rows written.';

-- The per-customer table (crm.rollup_customer_state) rebuilt from the tables
-- above: after a full refresh of a part and whenever the kept classes change
-- (their ends moved or an order before a kept end changed).
CREATE FUNCTION crm._rollup_fast_state_rebuild() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB'
-- every customer: hash joins (a caller keeping a few customers turns them off)
SET enable_hashjoin = on
SET enable_mergejoin = on
AS $$
DECLARE
    n  bigint;
    e1 timestamptz;
    e2 timestamptz;
BEGIN
    TRUNCATE crm.rollup_customer_state, crm.rollup_customer_state_ends;
    INSERT INTO crm.rollup_customer_state_ends (slot, end_at)
    SELECT row_number() OVER (ORDER BY x.end_at DESC), x.end_at FROM crm.rollup_customer_class_ends x;
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    INSERT INTO crm.rollup_customer_state
    SELECT coalesce(i.customer_id, o.customer_id, c.customer_id), coalesce(i.n, 0), i.created_at, i.channel, i.manager_id, i.since,
           o.first_at, o.last_at, o.gp, o.gp_n, c.first_at, c.last_at,
           k1.rev, k1.cov_class, k1.abc_class,
           CASE WHEN c.last_at < e1 THEN c.last_at WHEN c.first_at < e1 THEN ce.k1_contact END,
           k2.rev, k2.cov_class, k2.abc_class,
           CASE WHEN c.last_at < e2 THEN c.last_at WHEN c.first_at < e2 THEN ce.k2_contact END,
           -- the RFM figures before each end: the summary when every order is before it
           CASE WHEN o.last_at < e1 THEN o.last_at WHEN o.first_at < e1 THEN ro.k1_last END,
           CASE WHEN o.last_at < e1 THEN o.orders WHEN o.first_at < e1 THEN ro.k1_n END,
           CASE WHEN o.last_at < e1 THEN o.amount WHEN o.first_at < e1 THEN ro.k1_amount END,
           CASE WHEN o.last_at < e2 THEN o.last_at WHEN o.first_at < e2 THEN ro.k2_last END,
           CASE WHEN o.last_at < e2 THEN o.orders WHEN o.first_at < e2 THEN ro.k2_n END,
           CASE WHEN o.last_at < e2 THEN o.amount WHEN o.first_at < e2 THEN ro.k2_amount END
      FROM (SELECT ci.customer_id, count(*)::integer AS n,
                   CASE WHEN count(*) = 1 THEN min(ci.created_at) END AS created_at,
                   CASE WHEN count(*) = 1 THEN min(ci.channel) END AS channel,
                   CASE WHEN count(*) = 1 THEN min(ci.manager_id) END AS manager_id,
                   min(ci.created_at) AS since
              FROM crm.rollup_customer_info ci GROUP BY 1) i
      FULL JOIN (SELECT t.* FROM crm.rollup_customer_orders t WHERE t.customer_id IS NOT NULL) o ON o.customer_id = i.customer_id
      FULL JOIN crm.rollup_customer_contacts c ON c.customer_id = coalesce(i.customer_id, o.customer_id)
      LEFT JOIN crm.rollup_customer_classes k1 ON k1.end_at = e1 AND k1.customer_id = o.customer_id
      LEFT JOIN crm.rollup_customer_classes k2 ON k2.end_at = e2 AND k2.customer_id = o.customer_id
      -- the last real contact before each end, for the customers contacted at or after it
      LEFT JOIN (SELECT x.customer_id, max(x.occurred_at) FILTER (WHERE x.occurred_at < e1) AS k1_contact,
                        max(x.occurred_at) FILTER (WHERE x.occurred_at < e2) AS k2_contact
                   FROM crm.rollup_real_contacts x
                  WHERE x.customer_id IN (SELECT t.customer_id FROM crm.rollup_customer_contacts t WHERE t.last_at >= least(e1, e2))
                  GROUP BY 1) ce ON ce.customer_id = c.customer_id
      -- the orders before each end, for the customers with orders before it and at or after it
      LEFT JOIN (SELECT l.customer_id,
                        max(l.ordered_at) FILTER (WHERE l.ordered_at < e1) AS k1_last, count(*) FILTER (WHERE l.ordered_at < e1) AS k1_n,
                        sum(l.amount) FILTER (WHERE l.ordered_at < e1) AS k1_amount,
                        max(l.ordered_at) FILTER (WHERE l.ordered_at < e2) AS k2_last, count(*) FILTER (WHERE l.ordered_at < e2) AS k2_n,
                        sum(l.amount) FILTER (WHERE l.ordered_at < e2) AS k2_amount
                   FROM crm.rollup_order_lines l
                  WHERE l.ordered_at < greatest(e1, e2)
                    AND l.customer_id IN (SELECT t.customer_id FROM crm.rollup_customer_orders t
                                           WHERE t.last_at >= least(e1, e2) AND t.first_at < greatest(e1, e2))
                  GROUP BY 1) ro ON ro.customer_id = o.customer_id
     -- in the order of the ids: crm._fast_rfm_sql reads the table by its unique index
     ORDER BY 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the RFM scores as of the kept ends (src/dashboard_fast_planrfm.sql)
    RETURN n + crm._rollup_fast_rfm_scores();
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state_rebuild() IS
'Rebuilds crm.rollup_customer_state (one row per customer, in the order of the ids) and crm.rollup_customer_state_ends from the customers copy, the order and contact totals, the kept classes and the order lines before the kept ends; rows written.';

-- The same for the given customers only (a NULL element: the customers rows
-- without an id), by index: what a part's change to them can have changed.
CREATE FUNCTION crm._rollup_fast_state(ids text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the given customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n  bigint;
    m  bigint := 0;
    e1 timestamptz;
    e2 timestamptz;
    nul boolean := array_position(ids, NULL) IS NOT NULL;
BEGIN
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    ids := ARRAY(SELECT DISTINCT u.id FROM unnest(ids) AS u(id) WHERE u.id IS NOT NULL);
    DELETE FROM crm.rollup_customer_state s USING unnest(ids) AS u(id) WHERE s.customer_id = u.id;
    INSERT INTO crm.rollup_customer_state
    SELECT u.id, i.n, i.created_at, i.channel, i.manager_id, i.since,
           o.first_at, o.last_at, o.gp, o.gp_n, c.first_at, c.last_at,
           k1.rev, k1.cov_class, k1.abc_class,
           CASE WHEN c.last_at < e1 THEN c.last_at
                WHEN c.first_at < e1 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x WHERE x.customer_id = u.id AND x.occurred_at < e1) END,
           k2.rev, k2.cov_class, k2.abc_class,
           CASE WHEN c.last_at < e2 THEN c.last_at
                WHEN c.first_at < e2 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x WHERE x.customer_id = u.id AND x.occurred_at < e2) END,
           CASE WHEN o.last_at < e1 THEN o.last_at WHEN o.first_at < e1 THEN ro.k1_last END,
           CASE WHEN o.last_at < e1 THEN o.orders WHEN o.first_at < e1 THEN ro.k1_n END,
           CASE WHEN o.last_at < e1 THEN o.amount WHEN o.first_at < e1 THEN ro.k1_amount END,
           CASE WHEN o.last_at < e2 THEN o.last_at WHEN o.first_at < e2 THEN ro.k2_last END,
           CASE WHEN o.last_at < e2 THEN o.orders WHEN o.first_at < e2 THEN ro.k2_n END,
           CASE WHEN o.last_at < e2 THEN o.amount WHEN o.first_at < e2 THEN ro.k2_amount END
      FROM unnest(ids) AS u(id)
     CROSS JOIN LATERAL (
            SELECT count(*)::integer AS n,
                   CASE WHEN count(*) = 1 THEN min(ci.created_at) END AS created_at,
                   CASE WHEN count(*) = 1 THEN min(ci.channel) END AS channel,
                   CASE WHEN count(*) = 1 THEN min(ci.manager_id) END AS manager_id,
                   min(ci.created_at) AS since
              FROM crm.rollup_customer_info ci WHERE ci.customer_id = u.id) i
      LEFT JOIN crm.rollup_customer_orders o ON o.customer_id = u.id
      LEFT JOIN crm.rollup_customer_contacts c ON c.customer_id = u.id
      LEFT JOIN crm.rollup_customer_classes k1 ON k1.end_at = e1 AND k1.customer_id = u.id
      LEFT JOIN crm.rollup_customer_classes k2 ON k2.end_at = e2 AND k2.customer_id = u.id
      -- the orders before each end (by index), for a customer with orders before it and at or after it
      LEFT JOIN LATERAL (
            SELECT max(l.ordered_at) FILTER (WHERE l.ordered_at < e1) AS k1_last, count(*) FILTER (WHERE l.ordered_at < e1) AS k1_n,
                   sum(l.amount) FILTER (WHERE l.ordered_at < e1) AS k1_amount,
                   max(l.ordered_at) FILTER (WHERE l.ordered_at < e2) AS k2_last, count(*) FILTER (WHERE l.ordered_at < e2) AS k2_n,
                   sum(l.amount) FILTER (WHERE l.ordered_at < e2) AS k2_amount
              FROM crm.rollup_order_lines l
             WHERE o.last_at >= least(e1, e2) AND o.first_at < greatest(e1, e2)
               AND l.customer_id = u.id AND l.ordered_at < greatest(e1, e2)) ro ON true
     WHERE i.n > 0 OR o.customer_id IS NOT NULL OR c.customer_id IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF nul THEN
        DELETE FROM crm.rollup_customer_state s WHERE s.customer_id IS NULL;
        INSERT INTO crm.rollup_customer_state (customer_id, info_n, created_at, channel, manager_id, since)
        SELECT NULL, count(*), CASE WHEN count(*) = 1 THEN min(ci.created_at) END, CASE WHEN count(*) = 1 THEN min(ci.channel) END,
               CASE WHEN count(*) = 1 THEN min(ci.manager_id) END, min(ci.created_at)
          FROM crm.rollup_customer_info ci WHERE ci.customer_id IS NULL HAVING count(*) > 0;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state(text[]) IS
'Recomputes the rows of crm.rollup_customer_state of the given customers (a NULL element: the customers rows without an id) from the customers copy, the order and contact totals, the kept classes and the order lines before the kept ends; rows written.';

-- The contact columns, for the given customers, in place (part contacts; the
-- order columns are set by crm._rollup_fast_order_totals; the last contact
-- before a kept end changes only when from_ts is before that end).  A
-- customer new to the table or left without customers row, orders and
-- contacts goes through crm._rollup_fast_state.  The kept classes change only
-- with an order before a kept end, and then crm._rollup_fast_classes rebuilds
-- the whole table.
CREATE FUNCTION crm._rollup_fast_state_contacts(ids text[], from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the given customers by index (cost grows with them, not with the history)
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    n    bigint;
    e1   timestamptz;
    e2   timestamptz;
    rest text[];
    done text[];
BEGIN
    SELECT max(x.end_at) FILTER (WHERE x.slot = 1), max(x.end_at) FILTER (WHERE x.slot = 2) INTO e1, e2
      FROM crm.rollup_customer_state_ends x;
    WITH w AS (
        UPDATE crm.rollup_customer_state s SET first_contact_at = c.first_at, last_contact_at = c.last_at,
               k1_contact = CASE WHEN from_ts >= e1 THEN s.k1_contact
                                 WHEN c.last_at < e1 THEN c.last_at
                                 WHEN c.first_at < e1 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x
                                                             WHERE x.customer_id = u.id AND x.occurred_at < e1) END,
               k2_contact = CASE WHEN from_ts >= e2 THEN s.k2_contact
                                 WHEN c.last_at < e2 THEN c.last_at
                                 WHEN c.first_at < e2 THEN (SELECT max(x.occurred_at) FROM crm.rollup_real_contacts x
                                                             WHERE x.customer_id = u.id AND x.occurred_at < e2) END
          FROM unnest(ids) AS u(id) JOIN crm.rollup_customer_contacts c ON c.customer_id = u.id
         WHERE s.customer_id = u.id
        RETURNING s.customer_id)
    SELECT pg_catalog.array_agg(w.customer_id) INTO done FROM w;
    n := coalesce(cardinality(done), 0);
    -- the others: new to the table, or without contacts now
    rest := ARRAY(SELECT unnest(ids) EXCEPT SELECT unnest(done));
    IF cardinality(rest) > 0 THEN
        n := n + crm._rollup_fast_state(rest);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_fast_state_contacts(text[], timestamptz) IS
'Sets in crm.rollup_customer_state the contact totals and the last contacts before the kept ends (for changes from the given moment on) of the given customers, in place (part contacts); customers new to the table or without contacts any more through crm._rollup_fast_state; rows written.';

-- ---------------------------------------------------------------------------
-- Reading: figures as of a moment
-- ---------------------------------------------------------------------------

-- Per customer with orders in the 12 months before a moment (NULL = the
-- orders without a customer): the revenue, the class by crm.dashboard_coverage's
-- thresholds (crm.abc_class semantics over the positive revenues) and by
-- crm.abc_class itself (as crm.owner_dashboard), computed from the order lines.
CREATE FUNCTION crm._fast_classes_live(end_at timestamptz)
RETURNS TABLE (customer_id text, rev numeric, cls text, abc text)
LANGUAGE sql STABLE
ROWS 100000   -- per customer: the planner hashes it
SET search_path = pg_catalog, pg_temp
AS $$
WITH
r AS (SELECT l.customer_id, sum(l.amount) AS rev FROM crm.rollup_order_lines l
       WHERE l.ordered_at >= (end_at - '12 months'::interval) AND l.ordered_at < end_at GROUP BY l.customer_id),
rs AS (SELECT rev, sum(rev) OVER (ORDER BY rev DESC ROWS UNBOUNDED PRECEDING) - rev AS before, sum(rev) OVER () AS total
         FROM r WHERE rev > 0),
th AS MATERIALIZED (SELECT min(rev) FILTER (WHERE before < (0.80 * total)) AS a, min(rev) FILTER (WHERE before < (0.95 * total)) AS b
         FROM rs)
SELECT r.customer_id, r.rev, CASE WHEN r.rev >= th.a THEN 'A' WHEN r.rev >= th.b THEN 'B' ELSE 'C' END,
       crm.abc_class(r.rev::float8) OVER ()
  FROM r CROSS JOIN th
$$;
COMMENT ON FUNCTION crm._fast_classes_live(timestamptz) IS
'From the order lines: per customer with orders in the 12 months before the moment, the revenue, the class by crm.dashboard_coverage''s thresholds and by crm.abc_class.';

-- The query of crm._fast_coverage as of $1 (rows r: customer_id, manager_id,
-- channel, rev, cls, last_at, due, covered), ending with the given SELECT over
-- r: the classes from the per-customer table at the ends it keeps
-- (crm.rollup_customer_state_ends), else computed from the order lines and
-- joined by hash; the last real contact before $1 from the per-customer
-- table (kept there for its ends; for other moments the contacts copy is
-- probed, by index, only for a customer whose last contact is at or after $1).
CREATE FUNCTION crm._fast_coverage_sql(as_of timestamptz, tail text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slot integer;
    rev  text;
    cls  text;
    lv   text := '';
BEGIN
    SELECT x.slot INTO slot FROM crm.rollup_customer_state_ends x WHERE x.end_at = as_of;
    IF slot IS NOT NULL THEN
        rev := format('s.k%s_rev', slot);
        cls := format('s.k%s_cls', slot);
    ELSE
        rev := 'lv.rev';
        cls := 'lv.cls';
        lv := 'LEFT JOIN lv ON lv.customer_id = s.customer_id';
    END IF;
    RETURN format($sql$
WITH
-- the classes as crm._fast_classes_live computes them (the orders without a customer count in the
-- thresholds), inline: the planner hashes the customers with revenue, not the per-customer table
lr AS MATERIALIZED (
    SELECT l.customer_id, sum(l.amount) AS rev FROM crm.rollup_order_lines l
     WHERE l.ordered_at >= ($1 - '12 months'::interval) AND l.ordered_at < $1 AND NOT %5$L GROUP BY l.customer_id),
th AS MATERIALIZED (
    SELECT min(rs.rev) FILTER (WHERE rs.before < (0.80 * rs.total)) AS a, min(rs.rev) FILTER (WHERE rs.before < (0.95 * rs.total)) AS b
      FROM (SELECT lr.rev, sum(lr.rev) OVER (ORDER BY lr.rev DESC ROWS UNBOUNDED PRECEDING) - lr.rev AS before, sum(lr.rev) OVER () AS total
              FROM lr WHERE lr.rev > 0) AS rs),
lv AS (SELECT lr.customer_id, lr.rev, CASE WHEN lr.rev >= th.a THEN 'A' WHEN lr.rev >= th.b THEN 'B' ELSE 'C' END AS cls
         FROM lr CROSS JOIN th WHERE lr.customer_id IS NOT NULL),
pol AS MATERIALIZED (SELECT crm._dashboard_coverage_interval('A') AS a, crm._dashboard_coverage_interval('B') AS b,
                            crm._dashboard_coverage_interval('C') AS c),
-- per customers row: the customers with one row, those with more, the rows without an id
c AS (
    SELECT s.customer_id, s.manager_id, s.channel, s.created_at, %1$s AS rev, coalesce(%2$s, 'C') AS cls,
           %6$s AS kc, s.first_contact_at, s.last_contact_at
      FROM crm.rollup_customer_state s %3$s
     WHERE s.info_n = 1 AND s.created_at < $1 AND s.customer_id IS NOT NULL
    UNION ALL
    SELECT i.customer_id, i.manager_id, i.channel, i.created_at, %1$s, coalesce(%2$s, 'C'), %6$s, s.first_contact_at, s.last_contact_at
      FROM crm.rollup_customer_state s %3$s JOIN crm.rollup_customer_info i ON i.customer_id = s.customer_id
     WHERE s.info_n > 1 AND i.created_at < $1
    UNION ALL
    SELECT i.customer_id, i.manager_id, i.channel, i.created_at, NULL, 'C', NULL, NULL, NULL
      FROM crm.rollup_customer_info i WHERE i.customer_id IS NULL AND i.created_at < $1),
r AS (
    SELECT c.customer_id, c.manager_id, c.channel, c.rev, c.cls, x.last_at,
           coalesce(x.last_at, c.created_at) + x.iv AS due,
           coalesce((coalesce(x.last_at, c.created_at) + x.iv) >= $1, false) AS covered
      FROM c CROSS JOIN pol,
      LATERAL (SELECT CASE c.cls WHEN 'A' THEN pol.a WHEN 'B' THEN pol.b ELSE pol.c END AS iv,
                      CASE WHEN %5$L THEN c.kc
                           WHEN c.last_contact_at < $1 THEN c.last_contact_at
                           WHEN c.first_contact_at < $1 THEN (SELECT max(q.occurred_at) FROM crm.rollup_real_contacts q
                                                               WHERE q.customer_id = c.customer_id AND q.occurred_at < $1) END AS last_at) AS x)
%4$s
$sql$, rev, cls, lv, tail, slot IS NOT NULL, CASE WHEN slot IS NULL THEN 'NULL::timestamptz' ELSE format('s.k%s_contact', slot) END);
END
$$;
COMMENT ON FUNCTION crm._fast_coverage_sql(timestamptz, text) IS
'The query of crm._fast_coverage as of the moment ($1), with the given final SELECT over its rows r (customer_id, manager_id, channel, rev, cls, last_at, due, covered): from crm.rollup_customer_state, the classes kept there or computed from the order lines.';

-- crm.dashboard_coverage from the rollups: the same rows, from one pass over
-- the per-customer table (the customers with one customers row; the others,
-- rare, read their rows from the customers copy).
CREATE FUNCTION crm._fast_coverage(as_of timestamptz)
RETURNS TABLE (customer_id text, manager_id text, channel text, revenue_12m numeric, abc_class text,
               last_contact timestamptz, next_due timestamptz, covered boolean)
LANGUAGE plpgsql STABLE
ROWS 100000   -- per customer: the planner hashes it
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
BEGIN
    RETURN QUERY EXECUTE crm._fast_coverage_sql(as_of, 'SELECT r.customer_id, r.manager_id, r.channel, coalesce(r.rev, 0), r.cls, r.last_at, r.due, r.covered FROM r')
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm._fast_coverage(timestamptz) IS
'crm.dashboard_coverage(as_of) computed from the rollups (one pass over crm.rollup_customer_state; the classes computed from crm.rollup_order_lines and the contacts copy probed when as_of is not an end the state keeps): the same rows.';

-- Per customer with an order before period_to, for [period_from, period_to):
-- first order, revenue and gross profit in the period, gross profit to date
-- (orders before period_to).  Customers whose last order is before the end
-- take their totals; the others are summed from the copy by index.
CREATE FUNCTION crm._fast_customer_orders(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (customer_id text, first_at timestamptz, rev numeric, gp numeric, gp_to_date numeric)
LANGUAGE sql STABLE
ROWS 100000   -- per customer: the planner hashes it
SET search_path = pg_catalog, pg_temp
AS $$
WITH p AS (
    SELECT l.customer_id, sum(l.amount) AS rev, sum(l.amount - l.cost) AS gp
      FROM crm.rollup_order_lines l WHERE l.ordered_at >= period_from AND l.ordered_at < period_to GROUP BY 1)
SELECT t.customer_id, t.first_at, p.rev, p.gp,
       CASE WHEN t.last_at < period_to THEN t.gp
            ELSE (SELECT sum(l.amount - l.cost) FROM crm.rollup_order_lines l
                   WHERE l.customer_id = t.customer_id AND l.ordered_at < period_to) END
  FROM crm.rollup_customer_orders t LEFT JOIN p ON p.customer_id = t.customer_id
 WHERE t.first_at < period_to AND t.customer_id IS NOT NULL
UNION ALL
-- the orders without a customer: one group, as in the full query
SELECT NULL, t.first_at, p.rev, p.gp,
       CASE WHEN t.last_at < period_to THEN t.gp
            ELSE (SELECT sum(l.amount - l.cost) FROM crm.rollup_order_lines l
                   WHERE l.customer_id IS NULL AND l.ordered_at < period_to) END
  FROM crm.rollup_customer_orders t LEFT JOIN p ON p.customer_id IS NULL
 WHERE t.first_at < period_to AND t.customer_id IS NULL
$$;
COMMENT ON FUNCTION crm._fast_customer_orders(timestamptz, timestamptz) IS
'From the rollups: per customer with an order before the end (customer_id NULL = the orders without a customer), the first order, revenue and gross profit in [from, to), gross profit of the orders before the end.';

-- crm.dashboard_channels from the rollups: the buyers' figures from the
-- state, leads and spend of the period from their sources (as the full query).
CREATE FUNCTION crm._fast_channels(period_from date, period_to date)
RETURNS TABLE (channel text, leads bigint, new_buyers bigint, conversion_pct numeric, revenue numeric,
               gross_profit numeric, spend numeric, cac numeric, roi_pct numeric, ltv numeric, ltv_cac numeric)
LANGUAGE plpgsql VOLATILE
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
DECLARE
    b record;
BEGIN
    b := crm._period_bounds('crm.dashboard_channels', period_from, period_to);
    -- the sources the state comes from checked as the full path does (same errors)
    PERFORM crm._source_sql('customers'), crm._source_sql('orders');
    RETURN QUERY EXECUTE pg_catalog.format($sql$
WITH
-- the buyers up to the end, one row per customers row (the channel): one pass over the
-- per-customer table, probing the period's revenue and gross profit per customer (p) and the
-- orders at or after the end per customer (a: gross profit to date is the total less these;
-- NULL when no order before the end has a gross profit), both hashed (the small side: read
-- once, as subqueries whose grouping the planner knows unique)
b AS (
    SELECT CASE WHEN s.info_n OPERATOR(pg_catalog.=) 1 THEN s.channel END AS channel, s.first_order_at AS first_at, p.rev, p.gp,
           CASE WHEN s.last_order_at OPERATOR(pg_catalog.<) $2 THEN s.gp
                WHEN s.gp_n OPERATOR(pg_catalog.>) coalesce(a.n, 0) THEN s.gp OPERATOR(pg_catalog.-) coalesce(a.gp, 0) END AS gp_to_date
      FROM crm.rollup_customer_state s
      LEFT JOIN (SELECT l.customer_id, pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
                   FROM crm.rollup_order_lines l
                  WHERE l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2 GROUP BY 1) AS p
             ON p.customer_id OPERATOR(pg_catalog.=) s.customer_id
      LEFT JOIN (SELECT l.customer_id, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp,
                        pg_catalog.count(l.amount OPERATOR(pg_catalog.-) l.cost) AS n
                   FROM crm.rollup_order_lines l WHERE l.ordered_at OPERATOR(pg_catalog.>=) $2 GROUP BY 1) AS a
             ON a.customer_id OPERATOR(pg_catalog.=) s.customer_id
     WHERE s.first_order_at OPERATOR(pg_catalog.<) $2 AND s.info_n OPERATOR(pg_catalog.<=) 1
    UNION ALL
    -- the customers with several customers rows (rare): their orders read by index
    SELECT i.channel, s.first_order_at, p.rev, p.gp,
           CASE WHEN s.last_order_at OPERATOR(pg_catalog.<) $2 THEN s.gp
                WHEN s.gp_n OPERATOR(pg_catalog.>) a.n THEN s.gp OPERATOR(pg_catalog.-) coalesce(a.gp, 0) END
      FROM crm.rollup_customer_state s
      JOIN crm.rollup_customer_info i ON i.customer_id OPERATOR(pg_catalog.=) s.customer_id,
      LATERAL (SELECT pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
                 FROM crm.rollup_order_lines l
                WHERE l.customer_id OPERATOR(pg_catalog.=) s.customer_id
                  AND l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2) AS p,
      LATERAL (SELECT pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp, pg_catalog.count(l.amount OPERATOR(pg_catalog.-) l.cost) AS n
                 FROM crm.rollup_order_lines l
                WHERE l.customer_id OPERATOR(pg_catalog.=) s.customer_id AND l.ordered_at OPERATOR(pg_catalog.>=) $2) AS a
     WHERE s.first_order_at OPERATOR(pg_catalog.<) $2 AND s.info_n OPERATOR(pg_catalog.>) 1
    UNION ALL
    -- the orders without a customer: one group without a customers row, as in the full query
    SELECT NULL, t.first_at, p.rev, p.gp,
           CASE WHEN t.last_at OPERATOR(pg_catalog.<) $2 THEN t.gp
                ELSE (SELECT pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) FROM crm.rollup_order_lines l
                       WHERE l.customer_id IS NULL AND l.ordered_at OPERATOR(pg_catalog.<) $2) END
      FROM crm.rollup_customer_orders t,
      LATERAL (SELECT pg_catalog.sum(l.amount) AS rev, pg_catalog.sum(l.amount OPERATOR(pg_catalog.-) l.cost) AS gp
                 FROM crm.rollup_order_lines l
                WHERE l.customer_id IS NULL AND l.ordered_at OPERATOR(pg_catalog.>=) $1 AND l.ordered_at OPERATOR(pg_catalog.<) $2) AS p
     WHERE t.first_at OPERATOR(pg_catalog.<) $2 AND t.customer_id IS NULL),
bc AS (
    SELECT coalesce(b.channel, '(unknown)') AS channel,
           pg_catalog.count(*) FILTER (WHERE b.first_at OPERATOR(pg_catalog.>=) $1) AS new_buyers,
           pg_catalog.sum(b.rev) AS revenue, pg_catalog.sum(b.gp) AS gross_profit,
           pg_catalog.avg(b.gp_to_date) AS ltv
      FROM b GROUP BY 1),
-- converted: the lead's customer bought before the end (few leads name a customer:
-- their first order read by index, not a pass over all customers)
ld AS (
    SELECT coalesce(l.channel, '(unknown)') AS channel, pg_catalog.count(*) AS leads,
           pg_catalog.count(*) FILTER (WHERE l.customer_id IS NOT NULL
               AND (SELECT s.first_order_at FROM crm.rollup_customer_state s
                     WHERE s.customer_id OPERATOR(pg_catalog.=) l.customer_id::pg_catalog.text) OPERATOR(pg_catalog.<) $2) AS converted
      FROM %1$s
     WHERE l.created_at OPERATOR(pg_catalog.>=) $1 AND l.created_at OPERATOR(pg_catalog.<) $2 GROUP BY 1),
sp AS (
    SELECT coalesce(s.channel, '(unknown)') AS channel, pg_catalog.sum(s.amount) AS spend
      FROM %2$s WHERE s.spent_on OPERATOR(pg_catalog.>=) $1 AND s.spent_on OPERATOR(pg_catalog.<) $2 GROUP BY 1),
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
$sql$, crm._source_sql('leads', 'l'), crm._source_sql('spend', 's'))
    USING b.cur_from, b.cur_to;
END
$$;
COMMENT ON FUNCTION crm._fast_channels(date, date) IS
'crm.dashboard_channels(from, to) with the buyers'' figures (new buyers, revenue, gross profit, LTV, conversion) from the rollups (crm.rollup_customer_state, crm.rollup_order_lines) and leads and spend of the period from their sources: the same rows.';

-- The owner dashboard's customer rows (buyers, repeat_purchase_rate,
-- churned_customers, churn_rate, churned_revenue, overdue_class_a_customers)
-- from the rollups, exactly as crm._owner_dashboard_sql computes them, for the
-- current period [cur_from, cur_to) and the previous one [prev_from, cur_from).
CREATE FUNCTION crm._fast_owner_customers(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
WITH
-- the period before the previous one (same length: dates, as the full query)
pp AS MATERIALIZED (SELECT (prev_from::date - (cur_from::date - prev_from::date))::timestamptz AS p2_from,
                           crm._dashboard_coverage_interval('A') AS a_int),
-- per customer: orders of the three periods
po AS (
    SELECT l.customer_id,
           count(*) FILTER (WHERE l.ordered_at >= cur_from) AS n_cur,
           count(*) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS n_prev,
           count(*) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS n_prev2,
           sum(l.amount) FILTER (WHERE l.ordered_at >= prev_from AND l.ordered_at < cur_from) AS rev_prev,
           sum(l.amount) FILTER (WHERE l.ordered_at >= pp.p2_from AND l.ordered_at < prev_from) AS rev_prev2
      FROM crm.rollup_order_lines l, pp
     WHERE l.ordered_at >= least(pp.p2_from, prev_from) AND l.ordered_at < cur_to
     GROUP BY 1),
-- the buyers of the three periods (every customer of the full query's cu
-- without an order in them counts in none of the figures below)
cf AS (
    SELECT po.*, po.n_cur > 0 AS in_cur, po.n_prev > 0 AS in_prev, po.n_prev2 > 0 AS in_prev2,
           -- orders up to the end >= 2: two in the period, or one and an earlier (first) one
           po.n_cur >= 2 OR (po.n_cur > 0 AND f.first_at < cur_from) AS rep_cur,
           po.n_prev >= 2 OR (po.n_prev > 0 AND f.first_at < prev_from) AS rep_prev
      -- the first order matters only when it is at or after prev_from: the customers'
      -- first orders there read by index (crm.rollup_customers, kept with the summaries:
      -- every customer with an order has one), the others' first order is before it
      -- (-infinity stands for it); the orders without a customer: their group's first order
      -- (a customer here has an order before cur_to: first_at < cur_to, said for the
      -- planner, which then hashes these few first orders, not the customers of po)
      FROM po LEFT JOIN crm.rollup_customers nb ON nb.customer_id = po.customer_id AND nb.first_at >= prev_from
                                                AND nb.first_at < cur_to,
           LATERAL (SELECT CASE WHEN po.customer_id IS NULL
                                THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)
                                ELSE coalesce(nb.first_at, '-infinity'::timestamptz) END AS first_at) AS f),
cm AS (
    SELECT count(*) FILTER (WHERE in_cur) AS c_active, count(*) FILTER (WHERE rep_cur) AS c_repeat,
           count(*) FILTER (WHERE in_prev) AS p_active, count(*) FILTER (WHERE rep_prev) AS p_repeat,
           count(*) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned,
           count(*) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned,
           count(*) FILTER (WHERE in_prev2) AS p2_active,
           sum(rev_prev) FILTER (WHERE in_prev AND NOT in_cur) AS c_churned_rev,
           sum(rev_prev2) FILTER (WHERE in_prev2 AND NOT in_prev) AS p_churned_rev
      FROM cf),
-- class A by crm.abc_class over the revenue of the 12 months before each end
-- (customers without revenue there are NULL to it: no class, no effect on the
-- others); overdue as the full query judges it: the last real contact before
-- the end, or (never contacted) customer since (the customers source's
-- created_at, else the first order), before the end minus the class-A
-- interval; that is: contacted before the end and not within the interval,
-- or never contacted and customer since before end minus the interval
-- (the classes kept for the ends of the dashboard period read as a table,
-- computed from the order lines for other ends)
e AS MATERIALIZED (
    SELECT e.is_cur, e.end_at, x.slot
      FROM (VALUES (true, cur_to), (false, cur_from)) AS e(is_cur, end_at)
      LEFT JOIN crm.rollup_customer_state_ends x ON x.end_at = e.end_at),
sl AS MATERIALIZED (SELECT max(e.slot) FILTER (WHERE e.is_cur) AS c_slot, max(e.slot) FILTER (WHERE NOT e.is_cur) AS p_slot FROM e),
-- the ends whose classes the per-customer table keeps: one pass over it
-- (class, last real contact before the end, customer since in the row: overdue =
-- the last contact before the end, else the customer since, before end minus the interval)
amk AS (
    SELECT CASE sl.c_slot WHEN 1 THEN k.n1 WHEN 2 THEN k.n2 END AS c_a_overdue,
           CASE sl.p_slot WHEN 1 THEN k.n1 WHEN 2 THEN k.n2 END AS p_a_overdue
      FROM sl, (
        -- per kept end (slot), against that end minus the interval: the slot's own columns,
        -- no choice of column per row
        SELECT count(*) FILTER (WHERE s.k1_abc = 'A' AND coalesce(s.k1_contact, s.since, s.first_order_at) < x.e1) AS n1,
               count(*) FILTER (WHERE s.k2_abc = 'A' AND coalesce(s.k2_contact, s.since, s.first_order_at) < x.e2) AS n2
          FROM (SELECT max(y.end_at) FILTER (WHERE y.slot = 1) - pp.a_int AS e1, max(y.end_at) FILTER (WHERE y.slot = 2) - pp.a_int AS e2
                  FROM pp LEFT JOIN crm.rollup_customer_state_ends y ON true GROUP BY pp.a_int) AS x
          CROSS JOIN sl AS z CROSS JOIN crm.rollup_customer_state s
         WHERE (z.c_slot IS NOT NULL OR z.p_slot IS NOT NULL) AND (s.k1_abc = 'A' OR s.k2_abc = 'A')) AS k),
-- there, the orders without a customer (never contacted): since kept with their class
amn AS (
    SELECT count(*) FILTER (WHERE e.is_cur) AS c_a_overdue, count(*) FILTER (WHERE NOT e.is_cur) AS p_a_overdue
      FROM e CROSS JOIN pp
      JOIN crm.rollup_customer_classes k ON k.end_at = e.end_at AND k.customer_id IS NULL
     WHERE e.slot IS NOT NULL AND k.abc_class = 'A' AND k.since < (e.end_at - pp.a_int)),
-- other ends: the classes computed from the order lines, the contact state and the copies
ae AS (
    SELECT e.is_cur, e.end_at, k.customer_id
      FROM e, LATERAL crm._fast_classes_live(e.end_at) AS k
     WHERE e.slot IS NULL AND k.abc = 'A'),
aml AS (
    SELECT count(*) FILTER (WHERE ae.is_cur AND o.overdue) AS c_a_overdue,
           count(*) FILTER (WHERE NOT ae.is_cur AND o.overdue) AS p_a_overdue
      FROM ae CROSS JOIN pp
      LEFT JOIN crm.rollup_customer_contacts s ON s.customer_id = ae.customer_id,
      LATERAL (SELECT CASE
          WHEN s.first_at < ae.end_at THEN
              NOT CASE WHEN s.last_at < ae.end_at THEN s.last_at >= (ae.end_at - pp.a_int)
                       ELSE EXISTS (SELECT 1 FROM crm.rollup_real_contacts x
                                     WHERE x.customer_id = ae.customer_id AND x.occurred_at >= (ae.end_at - pp.a_int)
                                       AND x.occurred_at < ae.end_at) END
          ELSE coalesce((SELECT min(i.created_at) FROM crm.rollup_customer_info i WHERE i.customer_id = ae.customer_id),
                        CASE WHEN ae.customer_id IS NULL THEN (SELECT t0.first_at FROM crm.rollup_customer_orders t0 WHERE t0.customer_id IS NULL)
                             ELSE (SELECT t1.first_at FROM crm.rollup_customer_orders t1 WHERE t1.customer_id = ae.customer_id) END)
               < (ae.end_at - pp.a_int) END AS overdue) AS o),
am AS (
    SELECT coalesce(amk.c_a_overdue, 0) + amn.c_a_overdue + aml.c_a_overdue AS c_a_overdue,
           coalesce(amk.p_a_overdue, 0) + amn.p_a_overdue + aml.p_a_overdue AS p_a_overdue
      FROM amk, amn, aml)
SELECT v.metric, v.cur, v.prev
  FROM cm, am, LATERAL (VALUES
    ('buyers', c_active::numeric, p_active::numeric),
    ('repeat_purchase_rate', round((100.0 * c_repeat) / CASE WHEN c_active <> 0 THEN c_active END, 2),
                             round((100.0 * p_repeat) / CASE WHEN p_active <> 0 THEN p_active END, 2)),
    ('churned_customers', c_churned::numeric, p_churned::numeric),
    ('churn_rate', round((100.0 * c_churned) / CASE WHEN p_active <> 0 THEN p_active END, 2),
                   round((100.0 * p_churned) / CASE WHEN p2_active <> 0 THEN p2_active END, 2)),
    ('churned_revenue', coalesce(c_churned_rev, 0), coalesce(p_churned_rev, 0)),
    ('overdue_class_a_customers', c_a_overdue::numeric, p_a_overdue::numeric)) AS v(metric, cur, prev)
$$;
COMMENT ON FUNCTION crm._fast_owner_customers(timestamptz, timestamptz, timestamptz) IS
'From the rollups: the owner dashboard''s rows buyers, repeat_purchase_rate, churned_customers, churn_rate, churned_revenue and overdue_class_a_customers for the current period [cur_from, cur_to) and the previous one [prev_from, cur_from), exactly as crm.owner_dashboard computes them.';

-- crm.dashboard_managers' revenue of the manager's customers in the period
-- (rv) and contact coverage at its end (cv), from the rollups: one row per
-- manager in either (revenue NULL: no order; customers / covered NULL: no customer).
CREATE FUNCTION crm._fast_managers_customers(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, revenue numeric, customers bigint, covered bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
BEGIN
    -- crm._fast_coverage(period_to) counted per manager, without handing its rows over;
    -- the period's revenue per customer first, then by the manager of each customers row
    RETURN QUERY EXECUTE crm._fast_coverage_sql(period_to, $sql$,
cv AS (SELECT r.manager_id, count(*) AS customers, count(*) FILTER (WHERE r.covered) AS covered FROM r GROUP BY 1),
po AS (
    SELECT o.customer_id, sum(o.amount) AS revenue
      FROM crm.rollup_order_lines o WHERE o.ordered_at >= $2 AND o.ordered_at < $1 GROUP BY 1),
rv AS (
    SELECT x.manager_id, sum(x.revenue) AS revenue FROM (
        SELECT CASE WHEN s.info_n = 1 THEN s.manager_id END AS manager_id, po.revenue
          FROM po LEFT JOIN crm.rollup_customer_state s ON s.customer_id = po.customer_id
         WHERE s.info_n IS NULL OR s.info_n <= 1
        UNION ALL
        SELECT i.manager_id, po.revenue
          FROM po JOIN crm.rollup_customer_state s ON s.customer_id = po.customer_id
          JOIN crm.rollup_customer_info i ON i.customer_id = s.customer_id
         WHERE s.info_n > 1) x
     GROUP BY 1),
m AS (SELECT rv.manager_id FROM rv UNION SELECT cv.manager_id FROM cv)
SELECT m.manager_id, rv.revenue, cv.customers, cv.covered
  FROM m LEFT JOIN rv ON coalesce(texteq(rv.manager_id, m.manager_id), rv.manager_id IS NULL AND m.manager_id IS NULL)
         LEFT JOIN cv ON coalesce(texteq(cv.manager_id, m.manager_id), cv.manager_id IS NULL AND m.manager_id IS NULL)
 ORDER BY 1
$sql$) USING period_to, period_from;
END
$$;
COMMENT ON FUNCTION crm._fast_managers_customers(timestamptz, timestamptz) IS
'From the rollups: per manager, the revenue of the manager''s customers in [from, to) and the number of customers and covered customers at the end (crm.dashboard_managers'' rv and cv): one row per manager with either (revenue NULL = no order in the period; customers and covered NULL = no customer).';
