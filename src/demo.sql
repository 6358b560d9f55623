-- demo.sql: crm.load_demo, a deterministic demo CRM in schema crm_demo.
--
-- Every random figure comes from crm._demo_random(seed, stream, key), a
-- counter-based generator: the same (customers, seed, as_of) gives the same
-- rows whatever the plan or the number of parallel workers.

CREATE FUNCTION crm._demo_random(seed int, stream int, key bigint) RETURNS float8
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'crm_demo_random';
COMMENT ON FUNCTION crm._demo_random(int, int, bigint) IS
'Deterministic uniform random number in [0, 1) from (seed, stream, key): the generator behind crm.load_demo.';

CREATE FUNCTION crm.load_demo(customers int DEFAULT 5000, seed int DEFAULT 42, as_of date DEFAULT current_date)
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
COMMENT ON FUNCTION crm.load_demo(int, int, date) IS
'Creates (or replaces) schema crm_demo with a deterministic demo CRM of the given number of customers: leads from five channels with monthly spend, deals through lead -> qualified -> proposal -> invoice -> paid (or lost, with a reason), invoices (some never paid), repeat orders over 24 months before as_of, interactions, managers. Same arguments, same data.';
