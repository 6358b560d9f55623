-- clv.sql: lifetime value (docs/clv.md).
--   crm.clv_summary                 per-customer (frequency, recency, t, monetary), lifetimes conventions
--   crm.bgnbd_fit, crm.gamma_gamma_fit  maximum-likelihood fits in C on distinct patterns
--   crm.bgnbd_expected_purchases, crm.bgnbd_p_alive, crm.gamma_gamma_expected_value, crm.clv
--   crm.hyp2f1                      the Gaussian hypergeometric function the predictions use
--   crm.clv_simulate                customers drawn from known parameters (tests, benchmarks)
--   crm.historical_ltv              revenue per customer, churn-based lifespan, LTV (>= LTV to date), LTV/CAC

-- ---------------------------------------------------------------- result types
CREATE TYPE crm.clv_customer AS (
    frequency integer,
    recency double precision,
    t double precision,
    monetary numeric
);
COMMENT ON TYPE crm.clv_customer IS
'One customer''s summary for the CLV models: frequency = repeat purchase periods, recency = age at the last purchase, t = age at the end of observation (both in units), monetary = mean value of the repeat periods.';

CREATE TYPE crm.bgnbd_model AS (
    r double precision,
    alpha double precision,
    a double precision,
    b double precision,
    log_likelihood double precision,
    customers bigint,
    converged boolean,
    reason text
);
COMMENT ON TYPE crm.bgnbd_model IS
'A fitted BG/NBD model: purchase rate lambda ~ Gamma(r, alpha), dropout probability p ~ Beta(a, b); the maximised log-likelihood, the customers fitted, whether the fit converged and, when not, why.';

CREATE TYPE crm.gamma_gamma_model AS (
    p double precision,
    q double precision,
    gamma double precision,
    log_likelihood double precision,
    customers bigint,
    converged boolean,
    reason text
);
COMMENT ON TYPE crm.gamma_gamma_model IS
'A fitted Gamma-Gamma spend model: each purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma); the maximised log-likelihood, the repeat buyers fitted, whether the fit converged and, when not, why.';

-- ---------------------------------------------------------------- clv_summary
CREATE TYPE crm.clv_summary_state;
CREATE FUNCTION crm.clv_summary_state_in(cstring) RETURNS crm.clv_summary_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_state_in';
COMMENT ON FUNCTION crm.clv_summary_state_in(cstring) IS
'Input function of crm.clv_summary_state (validates every field).';
CREATE FUNCTION crm.clv_summary_state_out(crm.clv_summary_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_state_out';
COMMENT ON FUNCTION crm.clv_summary_state_out(crm.clv_summary_state) IS
'Output function of crm.clv_summary_state: "observation_end_us unit_us n" then "period amount" per row.';
CREATE TYPE crm.clv_summary_state (
    INPUT = crm.clv_summary_state_in,
    OUTPUT = crm.clv_summary_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.clv_summary_state IS
'Partial state of crm.clv_summary: the calibration parameters and the (period, amount) rows seen so far.';

CREATE FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz)
RETURNS crm.clv_summary_state
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_transfn';
COMMENT ON FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz) IS
'Transition function of crm.clv_summary (unit 1 day).';
CREATE FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz, interval)
RETURNS crm.clv_summary_state
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_transfn';
COMMENT ON FUNCTION crm.clv_summary_transfn(crm.clv_summary_state, timestamptz, numeric, timestamptz, interval) IS
'Transition function of crm.clv_summary.';
CREATE FUNCTION crm.clv_summary_combinefn(crm.clv_summary_state, crm.clv_summary_state)
RETURNS crm.clv_summary_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_combinefn';
COMMENT ON FUNCTION crm.clv_summary_combinefn(crm.clv_summary_state, crm.clv_summary_state) IS
'Combine function of crm.clv_summary: concatenates two partial states.';
CREATE FUNCTION crm.clv_summary_finalfn(crm.clv_summary_state) RETURNS crm.clv_customer
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_summary_finalfn';
COMMENT ON FUNCTION crm.clv_summary_finalfn(crm.clv_summary_state) IS
'Final function of crm.clv_summary: frequency, recency, t, monetary.';

CREATE AGGREGATE crm.clv_summary(ts timestamptz, amount numeric, observation_end timestamptz) (
    SFUNC = crm.clv_summary_transfn,
    STYPE = crm.clv_summary_state,
    COMBINEFUNC = crm.clv_summary_combinefn,
    FINALFUNC = crm.clv_summary_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.clv_summary(timestamptz, numeric, timestamptz) IS
'Per-customer summary with the lifetimes conventions and unit 1 day: purchases counted per distinct calendar day up to observation_end, frequency = repeat days, recency and t in days, monetary = mean of the repeat days'' sums.';

CREATE AGGREGATE crm.clv_summary(ts timestamptz, amount numeric, observation_end timestamptz, unit interval) (
    SFUNC = crm.clv_summary_transfn,
    STYPE = crm.clv_summary_state,
    COMBINEFUNC = crm.clv_summary_combinefn,
    FINALFUNC = crm.clv_summary_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE crm.clv_summary(timestamptz, numeric, timestamptz, interval) IS
'Per-customer summary with the lifetimes conventions: purchases counted per distinct period (the calendar day, or the unit when shorter than a day) up to observation_end; frequency = repeat periods, recency and t in units, monetary = mean of the repeat periods'' sums.';

-- ---------------------------------------------------------------- bgnbd_fit
CREATE TYPE crm.bgnbd_state;
CREATE FUNCTION crm.bgnbd_state_in(cstring) RETURNS crm.bgnbd_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_state_in';
COMMENT ON FUNCTION crm.bgnbd_state_in(cstring) IS
'Input function of crm.bgnbd_state (validates every pattern).';
CREATE FUNCTION crm.bgnbd_state_out(crm.bgnbd_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_state_out';
COMMENT ON FUNCTION crm.bgnbd_state_out(crm.bgnbd_state) IS
'Output function of crm.bgnbd_state: the pattern count, then "frequency recency t weight" per pattern.';
CREATE TYPE crm.bgnbd_state (
    INPUT = crm.bgnbd_state_in,
    OUTPUT = crm.bgnbd_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.bgnbd_state IS
'Partial state of crm.bgnbd_fit: distinct (frequency, recency, t) patterns with their customer counts.';

CREATE FUNCTION crm.bgnbd_transfn(crm.bgnbd_state, double precision, double precision, double precision)
RETURNS crm.bgnbd_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_transfn';
COMMENT ON FUNCTION crm.bgnbd_transfn(crm.bgnbd_state, double precision, double precision, double precision) IS
'Transition function of crm.bgnbd_fit: validates the row and adds its pattern.';
CREATE FUNCTION crm.bgnbd_combinefn(crm.bgnbd_state, crm.bgnbd_state) RETURNS crm.bgnbd_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_combinefn';
COMMENT ON FUNCTION crm.bgnbd_combinefn(crm.bgnbd_state, crm.bgnbd_state) IS
'Combine function of crm.bgnbd_fit: merges the patterns of two partial states.';
CREATE FUNCTION crm.bgnbd_finalfn(crm.bgnbd_state) RETURNS crm.bgnbd_model
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_finalfn';
COMMENT ON FUNCTION crm.bgnbd_finalfn(crm.bgnbd_state) IS
'Final function of crm.bgnbd_fit: maximum-likelihood fit (Nelder-Mead, then BFGS with the analytic gradient, in log-parameter space).';

CREATE AGGREGATE crm.bgnbd_fit(frequency double precision, recency double precision, t double precision) (
    SFUNC = crm.bgnbd_transfn,
    STYPE = crm.bgnbd_state,
    COMBINEFUNC = crm.bgnbd_combinefn,
    FINALFUNC = crm.bgnbd_finalfn,
    PARALLEL = SAFE,
    SSPACE = 65536
);
COMMENT ON AGGREGATE crm.bgnbd_fit(double precision, double precision, double precision) IS
'Fits the BG/NBD model (Fader, Hardie & Lee 2005) by maximum likelihood to one row per customer (frequency, recency, t); rows with a NULL are skipped.';

-- ---------------------------------------------------------------- gamma_gamma_fit
CREATE TYPE crm.gamma_gamma_state;
CREATE FUNCTION crm.gamma_gamma_state_in(cstring) RETURNS crm.gamma_gamma_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_state_in';
COMMENT ON FUNCTION crm.gamma_gamma_state_in(cstring) IS
'Input function of crm.gamma_gamma_state (validates every pattern).';
CREATE FUNCTION crm.gamma_gamma_state_out(crm.gamma_gamma_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_state_out';
COMMENT ON FUNCTION crm.gamma_gamma_state_out(crm.gamma_gamma_state) IS
'Output function of crm.gamma_gamma_state: the pattern count, then "frequency monetary weight" per pattern.';
CREATE TYPE crm.gamma_gamma_state (
    INPUT = crm.gamma_gamma_state_in,
    OUTPUT = crm.gamma_gamma_state_out,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE crm.gamma_gamma_state IS
'Partial state of crm.gamma_gamma_fit: distinct (frequency, monetary) patterns of repeat buyers with their customer counts.';

CREATE FUNCTION crm.gamma_gamma_transfn(crm.gamma_gamma_state, double precision, double precision)
RETURNS crm.gamma_gamma_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_transfn';
COMMENT ON FUNCTION crm.gamma_gamma_transfn(crm.gamma_gamma_state, double precision, double precision) IS
'Transition function of crm.gamma_gamma_fit: validates the row and adds its pattern (frequency 0 skipped).';
CREATE FUNCTION crm.gamma_gamma_combinefn(crm.gamma_gamma_state, crm.gamma_gamma_state) RETURNS crm.gamma_gamma_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_combinefn';
COMMENT ON FUNCTION crm.gamma_gamma_combinefn(crm.gamma_gamma_state, crm.gamma_gamma_state) IS
'Combine function of crm.gamma_gamma_fit: merges the patterns of two partial states.';
CREATE FUNCTION crm.gamma_gamma_finalfn(crm.gamma_gamma_state) RETURNS crm.gamma_gamma_model
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_finalfn';
COMMENT ON FUNCTION crm.gamma_gamma_finalfn(crm.gamma_gamma_state) IS
'Final function of crm.gamma_gamma_fit: maximum-likelihood fit in log-parameter space.';

CREATE AGGREGATE crm.gamma_gamma_fit(frequency double precision, monetary double precision) (
    SFUNC = crm.gamma_gamma_transfn,
    STYPE = crm.gamma_gamma_state,
    COMBINEFUNC = crm.gamma_gamma_combinefn,
    FINALFUNC = crm.gamma_gamma_finalfn,
    PARALLEL = SAFE,
    SSPACE = 65536
);
COMMENT ON AGGREGATE crm.gamma_gamma_fit(double precision, double precision) IS
'Fits the Gamma-Gamma spend model (Fader & Hardie note 025) by maximum likelihood to one row per customer (frequency, monetary = mean repeat spend); customers with frequency 0 and rows with a NULL are skipped.';

-- ---------------------------------------------------------------- predictions
CREATE FUNCTION crm.bgnbd_expected_purchases(model crm.bgnbd_model, horizon double precision,
    frequency double precision, recency double precision, t double precision)
RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_expected_purchases';
COMMENT ON FUNCTION crm.bgnbd_expected_purchases(crm.bgnbd_model, double precision, double precision, double precision, double precision) IS
'Expected number of purchases in the next horizon units of a customer with (frequency, recency, t), BG/NBD conditional expectation (FHL 2005 eq. 10).';

CREATE FUNCTION crm.bgnbd_p_alive(model crm.bgnbd_model, frequency double precision,
    recency double precision, t double precision)
RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_bgnbd_p_alive';
COMMENT ON FUNCTION crm.bgnbd_p_alive(crm.bgnbd_model, double precision, double precision, double precision) IS
'Probability that a customer with (frequency, recency, t) is still active under the BG/NBD model (1 for frequency 0).';

CREATE FUNCTION crm.gamma_gamma_expected_value(model crm.gamma_gamma_model, frequency double precision,
    monetary double precision)
RETURNS numeric
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_gg_expected_value';
COMMENT ON FUNCTION crm.gamma_gamma_expected_value(crm.gamma_gamma_model, double precision, double precision) IS
'Expected value of a customer''s future purchase under the Gamma-Gamma model: p(gamma + x m)/(p x + q - 1); the population mean p gamma/(q - 1) for frequency 0. Undefined (an error) when q <= 1.';

CREATE FUNCTION crm.clv(bgnbd crm.bgnbd_model, gamma_gamma crm.gamma_gamma_model,
    frequency double precision, recency double precision, t double precision, monetary double precision,
    unit interval, months integer DEFAULT 12, monthly_discount_rate double precision DEFAULT 0.01)
RETURNS numeric
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_clv';
COMMENT ON FUNCTION crm.clv(crm.bgnbd_model, crm.gamma_gamma_model, double precision, double precision, double precision, double precision, interval, integer, double precision) IS
'Predicted, discounted customer lifetime value over the next months: sum over month k of expected spend x expected purchases in month k / (1 + monthly_discount_rate)^k; unit is the time unit of frequency/recency/t (the unit given to clv_summary), a month being 365.25/12 days.';

CREATE FUNCTION crm.hyp2f1(a double precision, b double precision, c double precision, z double precision)
RETURNS double precision
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'clv_hyp2f1';
COMMENT ON FUNCTION crm.hyp2f1(double precision, double precision, double precision, double precision) IS
'Gaussian hypergeometric function 2F1(a, b; c; z) for z < 1 (Gauss series; 1 - z connection formula for z > 0.75; Pfaff transformation for z < 0).';

CREATE FUNCTION crm.clv_simulate(r double precision, alpha double precision, a double precision, b double precision,
    p double precision, q double precision, gamma double precision,
    customers bigint, max_t double precision, seed bigint DEFAULT 42)
RETURNS TABLE(customer_id bigint, t_purchase double precision, t_end double precision, amount double precision)
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE ROWS 3000 AS 'MODULE_PATHNAME', 'clv_simulate';
COMMENT ON FUNCTION crm.clv_simulate(double precision, double precision, double precision, double precision, double precision, double precision, double precision, bigint, double precision, bigint) IS
'Synthetic purchases drawn from known BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) parameters: one row per purchase (the first at time 0) of each customer, observed until t_end ~ Uniform(0, max_t); deterministic for a seed.';

-- ---------------------------------------------------------------- historical LTV
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
