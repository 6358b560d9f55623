-- dashboard_fast_leads.sql: per-entity rollup state for leads (first
-- response), the channel-month cost of a lead, invoices and real contacts per
-- day, manager and kind, and the building blocks the owner dashboard and the
-- manager report answer from when the rollups are usable (docs/rollups.md,
-- "Leads, invoices, contacts").  The state is derived data: not dumped,
-- rebuilt by crm.refresh_rollups (parts leads, invoices, contacts).

-- per lead (rows of the leads source with a created_at): its first response,
-- the first real (non-automated) outbound interaction at or after its creation
CREATE TABLE crm.rollup_leads (
    lead_id        text,
    created_at     timestamptz NOT NULL,
    month          timestamptz NOT NULL,
    channel        text,
    manager_id     text,
    customer_id    text,
    first_response timestamptz,
    response_min   numeric
);
COMMENT ON TABLE crm.rollup_leads IS
'Rollup state per lead (derived, not dumped): creation (and its calendar month in the rollups'' time zone), channel, manager, customer and first response (the first real outbound interaction at or after the creation, NULL = none yet) with the minutes to it, from which unanswered leads, conversion and response times as of any moment follow.';
-- the owner dashboard reads the leads of its two periods from this index alone
-- (the columns it needs included), the table itself kept in creation order
CREATE INDEX ON crm.rollup_leads (created_at) INCLUDE (month, channel, customer_id, first_response);
CREATE INDEX ON crm.rollup_leads (first_response);
CREATE INDEX ON crm.rollup_leads (lead_id);

-- the channel-month cost of a lead (crm._lead_cost_sql: spend of the channel
-- in the month / leads of the channel created in that month), from its two
-- halves, each kept by the part that reads it
CREATE TABLE crm.rollup_lead_months (
    channel text NOT NULL,
    month   timestamptz NOT NULL,
    leads   bigint NOT NULL,
    PRIMARY KEY (channel, month)
);
COMMENT ON TABLE crm.rollup_lead_months IS
'Rollup state (derived, not dumped): leads per channel and calendar month of their creation (leads without a channel left out), the divisor of the cost of a lead (crm._lead_cost_sql).';

CREATE TABLE crm.rollup_spend_months (
    channel text NOT NULL,
    month   timestamptz NOT NULL,
    amount  numeric,
    PRIMARY KEY (channel, month)
);
COMMENT ON TABLE crm.rollup_spend_months IS
'Rollup state (derived, not dumped): marketing spend per channel and calendar month (spend without a channel left out), the dividend of the cost of a lead (crm._lead_cost_sql).';

-- per invoice of the invoices source: the four figures the unpaid and overdue
-- counts as of any moment need
CREATE TABLE crm.rollup_invoices (
    invoice_id  text,
    customer_id text,
    issued_at timestamptz,
    due_at    timestamptz,
    amount    numeric,
    paid_at   timestamptz,
    low_at    timestamptz NOT NULL
);
COMMENT ON TABLE crm.rollup_invoices IS
'Rollup state per invoice (derived, not dumped): invoice and customer ids (for crm.todo), issue, due and payment moments and amount, from which the unpaid and overdue invoices as of any moment follow; low_at is the earliest of the three moments (what a refresh from a moment on replaces).';
CREATE INDEX ON crm.rollup_invoices (low_at);
-- the invoices unpaid at a moment: not paid before it (NULL = never), read with
-- their figures from this index alone; the table kept in this order too
CREATE INDEX ON crm.rollup_invoices ((coalesce(paid_at, 'infinity'::timestamptz))) INCLUDE (issued_at, due_at, amount, paid_at);

-- real contacts (non-automated interactions, either direction) per day and
-- manager of the interaction, by kind as crm.dashboard_managers classifies it
CREATE TABLE crm.rollup_contact_days (
    day        date NOT NULL,
    manager_id text,
    calls      bigint NOT NULL,
    meetings   bigint NOT NULL,
    emails     bigint NOT NULL,
    contacts   bigint NOT NULL
);
COMMENT ON TABLE crm.rollup_contact_days IS
'Rollup state (derived, not dumped): real contacts (non-automated interactions) per day and manager (NULL = none), as calls, meetings, e-mails (kind e-mail or email) and all kinds.';
CREATE INDEX ON crm.rollup_contact_days (day);

-- ---------------------------------------------------------------------------
-- Maintenance (hooked into the rollup parts)
-- ---------------------------------------------------------------------------

-- Part leads: the leads created at or after from_ts are replaced, with their
-- first response from the interactions as they are (a lead's first response
-- is at or after its creation); a changed lead has its creation at or after
-- from_ts.  Then the leads per channel-month from the month of from_ts on.
-- (The leads part runs without the interactions source too: no responses.)
CREATE FUNCTION crm._rollup_lead_state(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
    m bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_leads, crm.rollup_lead_months;
    ELSE
        DELETE FROM crm.rollup_leads l WHERE l.created_at OPERATOR(pg_catalog.>=) from_ts;
        DELETE FROM crm.rollup_lead_months c WHERE c.month OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts);
    END IF;
    -- without an interactions source (a partial registration) no lead has a response
    EXECUTE pg_catalog.format($sql$
WITH l AS MATERIALIZED (
    SELECT pg_catalog.row_number() OVER () AS rn, src.lead_id::pg_catalog.text AS lead_id, src.created_at,
           src.channel::pg_catalog.text AS channel, src.manager_id::pg_catalog.text AS manager_id,
           src.customer_id::pg_catalog.text AS customer_id
      FROM %2$s WHERE src.created_at OPERATOR(pg_catalog.>=) $1),
x AS (
    SELECT ix.lead_id::pg_catalog.text AS lead_id, ix.occurred_at
      FROM %1$s
     WHERE ix.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.lead_id IS NOT NULL),
f AS (
    SELECT l.rn, pg_catalog.min(x.occurred_at) AS fr
      FROM l JOIN x ON x.lead_id OPERATOR(pg_catalog.=) l.lead_id AND x.occurred_at OPERATOR(pg_catalog.>=) l.created_at
     GROUP BY l.rn)
INSERT INTO crm.rollup_leads (lead_id, created_at, month, channel, manager_id, customer_id, first_response, response_min)
SELECT l.lead_id, l.created_at, pg_catalog.date_trunc('month', l.created_at), l.channel, l.manager_id, l.customer_id, f.fr,
       EXTRACT(epoch FROM f.fr OPERATOR(pg_catalog.-) l.created_at) OPERATOR(pg_catalog./) 60
  FROM l LEFT JOIN f ON f.rn OPERATOR(pg_catalog.=) l.rn
 ORDER BY l.created_at
$sql$, CASE WHEN EXISTS (SELECT 1 FROM crm.sources s WHERE s.kind OPERATOR(pg_catalog.=) 'interactions')
            THEN crm._source_sql('interactions', 'ix')
            ELSE '(SELECT NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.bool, NULL::pg_catalog.text LIMIT 0) AS ix(lead_id, occurred_at, automated, direction)' END,
       crm._source_sql('leads')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- the months from the month of from_ts on, from the state (every lead with a creation is in it)
    INSERT INTO crm.rollup_lead_months (channel, month, leads)
    SELECT l.channel, l.month, pg_catalog.count(*)
      FROM crm.rollup_leads l
     WHERE l.created_at OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts) AND l.channel IS NOT NULL
     GROUP BY 1, 2;
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n OPERATOR(pg_catalog.+) m;
END
$$;
COMMENT ON FUNCTION crm._rollup_lead_state(timestamptz) IS
'Rollup part leads, state: replaces the leads created from the given moment on in crm.rollup_leads (with their first responses) and the leads per channel-month (crm.rollup_lead_months) from its month on; returns the rows written.';

-- Part spend: spend per channel-month from the month of from_ts on.
CREATE FUNCTION crm._rollup_spend_months(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM crm.rollup_spend_months s WHERE s.month OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', from_ts);
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_spend_months (channel, month, amount)
SELECT channel, pg_catalog.date_trunc('month', spent_on), pg_catalog.sum(amount)
  FROM %1$s
 WHERE spent_on OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', $1) AND channel IS NOT NULL
 GROUP BY 1, 2
$sql$, crm._source_sql('spend')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_spend_months(timestamptz) IS
'Rollup part spend, state: rewrites the spend per channel-month (crm.rollup_spend_months) from the month of the given moment on; returns the rows written.';

-- Part invoices: the invoices with any of their moments at or after from_ts
-- are replaced (a changed invoice has all its moments at or after it).
CREATE FUNCTION crm._rollup_invoice_state(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n bigint;
BEGIN
    IF from_ts OPERATOR(pg_catalog.=) '-infinity'::pg_catalog.timestamptz THEN
        TRUNCATE crm.rollup_invoices;
    ELSE
        DELETE FROM crm.rollup_invoices i WHERE i.low_at OPERATOR(pg_catalog.>=) from_ts;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_invoices (invoice_id, customer_id, issued_at, due_at, amount, paid_at, low_at)
SELECT i.invoice_id::pg_catalog.text, i.customer_id::pg_catalog.text, i.issued_at, i.due_at, i.amount, i.paid_at,
       least(i.issued_at, i.due_at, i.paid_at)
  FROM %1$s WHERE least(i.issued_at, i.due_at, i.paid_at) OPERATOR(pg_catalog.>=) $1
 ORDER BY coalesce(i.paid_at, 'infinity'::pg_catalog.timestamptz)
$sql$, crm._source_sql('invoices', 'i')) USING from_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION crm._rollup_invoice_state(timestamptz) IS
'Rollup part invoices, state: replaces in crm.rollup_invoices the invoices with an issue, due or payment moment at or after the given moment; returns the rows written.';

-- Part contacts: real contacts per day, manager and kind, for the days from
-- the day of from_ts on; and the first responses of the leads in
-- crm.rollup_leads: a lead answered before from_ts keeps its answer (the
-- interactions before from_ts did not change), the others get it again from
-- the interactions at or after from_ts.  (The contacts part runs before the
-- leads part; the leads part then replaces the leads that changed.)
CREATE FUNCTION crm._rollup_contact_days(from_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    n  bigint;
    m  bigint := 0;
    d0 timestamptz := CASE WHEN pg_catalog.isfinite(from_ts) THEN from_ts::pg_catalog.date::pg_catalog.timestamptz ELSE from_ts END;
BEGIN
    IF NOT pg_catalog.isfinite(from_ts) THEN
        TRUNCATE crm.rollup_contact_days;
    ELSE
        DELETE FROM crm.rollup_contact_days c WHERE c.day OPERATOR(pg_catalog.>=) d0::pg_catalog.date;
    END IF;
    EXECUTE pg_catalog.format($sql$
INSERT INTO crm.rollup_contact_days (day, manager_id, calls, meetings, emails, contacts)
SELECT y.occurred_at::pg_catalog.date, y.manager_id::pg_catalog.text,
       pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'call'),
       pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) 'meeting'),
       pg_catalog.count(*) FILTER (WHERE pg_catalog.lower(y.kind) OPERATOR(pg_catalog.=) ANY (ARRAY['email', 'e-mail']::pg_catalog.text[])),
       pg_catalog.count(*)
  FROM %1$s
 WHERE NOT y.automated AND y.occurred_at OPERATOR(pg_catalog.>=) $1
 GROUP BY 1, 2
$sql$, crm._source_sql('interactions', 'y')) USING d0;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- a full rebuild (crm._rollup_begin emptied crm.rollup_daily; the leads part
    -- follows and rebuilds every lead with its first response): drop the leads now
    -- rather than recompute them twice
    IF NOT pg_catalog.isfinite(from_ts)
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_daily r WHERE r.metric OPERATOR(pg_catalog.=) 'leads_in') THEN
        TRUNCATE crm.rollup_leads;
    ELSIF EXISTS (SELECT 1 FROM crm.rollup_leads) THEN
        UPDATE crm.rollup_leads l SET first_response = NULL, response_min = NULL WHERE l.first_response OPERATOR(pg_catalog.>=) from_ts;
        EXECUTE pg_catalog.format($sql$
WITH x AS MATERIALIZED (
    SELECT ix.lead_id::pg_catalog.text AS lead_id, ix.occurred_at
      FROM %1$s
     WHERE ix.occurred_at OPERATOR(pg_catalog.>=) $1 AND NOT ix.automated AND ix.direction OPERATOR(pg_catalog.=) 'outbound'
       AND ix.lead_id IS NOT NULL),
f AS (
    SELECT o.lead_id, o.created_at, pg_catalog.min(x.occurred_at) AS fr
      FROM x JOIN crm.rollup_leads o ON o.lead_id OPERATOR(pg_catalog.=) x.lead_id AND x.occurred_at OPERATOR(pg_catalog.>=) o.created_at
     WHERE o.first_response IS NULL
     GROUP BY o.lead_id, o.created_at)
UPDATE crm.rollup_leads u SET first_response = f.fr,
       response_min = EXTRACT(epoch FROM f.fr OPERATOR(pg_catalog.-) u.created_at) OPERATOR(pg_catalog./) 60
  FROM f
 WHERE u.lead_id OPERATOR(pg_catalog.=) f.lead_id AND u.created_at OPERATOR(pg_catalog.=) f.created_at AND u.first_response IS NULL
$sql$, crm._source_sql('interactions', 'ix')) USING from_ts;
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    RETURN n OPERATOR(pg_catalog.+) m;
END
$$;
COMMENT ON FUNCTION crm._rollup_contact_days(timestamptz) IS
'Rollup part contacts, state: rewrites crm.rollup_contact_days (real contacts per day, manager and kind) for the days from the day of the given moment on, and recomputes the first response of the leads in crm.rollup_leads not answered before it; returns the rows written.';

-- ---------------------------------------------------------------------------
-- Building blocks of the reports (read only crm.rollup_* tables)
-- ---------------------------------------------------------------------------

-- The owner dashboard's lead and invoice rows for [cur_from, cur_to) and
-- [prev_from, cur_from), exactly as crm._owner_dashboard_sql computes them,
-- plus the unrounded helpers _leads_converted and _leads_cost.
CREATE FUNCTION crm._fast_owner_leads(cur_from timestamptz, cur_to timestamptz, prev_from timestamptz)
RETURNS TABLE (metric text, cur numeric, prev numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
-- the leads grouped by channel and month by hash (few groups), not sorted
SET enable_sort = off
-- small reads by index: JIT compilation would cost more than the query
SET jit = off
AS $$
WITH
ld AS (
    SELECT l.month, l.channel, l.customer_id, l.first_response, l.created_at >= cur_from AS is_cur
      FROM crm.rollup_leads l WHERE l.created_at >= prev_from AND l.created_at < cur_to),
-- cost per lead (channel-month rule, crm._lead_cost_sql)
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- converted: the lead's customer bought before the end (few leads name a
-- customer: their first order read by index, not a pass over all customers)
lx AS (
    SELECT ld.channel, ld.is_cur, ld.month, count(*) AS n,
           count(*) FILTER (WHERE ld.customer_id IS NOT NULL
                              AND (SELECT rc.first_at FROM crm.rollup_customers rc WHERE rc.customer_id = ld.customer_id)
                                  < CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS converted,
           count(*) FILTER (WHERE ld.first_response IS NULL
                               OR ld.first_response >= CASE WHEN ld.is_cur THEN cur_to ELSE cur_from END) AS unanswered
      FROM ld
     GROUP BY 1, 2, 3),
lm AS (
    SELECT sum(lx.n) FILTER (WHERE lx.is_cur) AS c_leads, sum(lx.n) FILTER (WHERE NOT lx.is_cur) AS p_leads,
           sum(converted) FILTER (WHERE lx.is_cur) AS c_conv, sum(converted) FILTER (WHERE NOT lx.is_cur) AS p_conv,
           sum(unanswered) FILTER (WHERE lx.is_cur) AS c_unans, sum(unanswered) FILTER (WHERE NOT lx.is_cur) AS p_unans,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_unans_cost,
           sum(unanswered * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_unans_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE lx.is_cur) AS c_leads_cost,
           sum(lx.n * coalesce(cpl.cost_per_lead, 0)) FILTER (WHERE NOT lx.is_cur) AS p_leads_cost
      FROM lx LEFT JOIN cpl ON cpl.channel = lx.channel AND cpl.month = lx.month),
iv AS (
    -- not paid before cur_from (NULL: never), read from the index on that alone;
    -- unpaid at cur_to (not paid before it) and at cur_from (issued before it) flagged once
    SELECT i.issued_at, i.due_at, i.amount, coalesce(i.paid_at, 'infinity'::timestamptz) >= cur_to AS u_cur,
           i.issued_at < cur_from AS u_prev
      FROM crm.rollup_invoices i
     WHERE i.issued_at < cur_to AND coalesce(i.paid_at, 'infinity'::timestamptz) >= cur_from),
im AS (
    SELECT count(*) FILTER (WHERE u_cur) AS c_unpaid,
           sum(amount) FILTER (WHERE u_cur) AS c_unpaid_amt,
           avg(extract(epoch FROM cur_to - issued_at) / 86400) FILTER (WHERE u_cur) AS c_unpaid_age,
           count(*) FILTER (WHERE u_cur AND due_at < cur_to) AS c_overdue,
           sum(amount) FILTER (WHERE u_cur AND due_at < cur_to) AS c_overdue_amt,
           count(*) FILTER (WHERE u_prev) AS p_unpaid,
           sum(amount) FILTER (WHERE u_prev) AS p_unpaid_amt,
           avg(extract(epoch FROM cur_from - issued_at) / 86400) FILTER (WHERE u_prev) AS p_unpaid_age,
           count(*) FILTER (WHERE u_prev AND due_at < cur_from) AS p_overdue,
           sum(amount) FILTER (WHERE u_prev AND due_at < cur_from) AS p_overdue_amt
      FROM iv)
SELECT v.metric, v.cur, v.prev
  FROM lm, im, LATERAL (VALUES
    ('lead_to_buyer_conversion', round((100.0 * c_conv) / CASE WHEN c_leads <> 0 THEN c_leads END, 2),
                                 round((100.0 * p_conv) / CASE WHEN p_leads <> 0 THEN p_leads END, 2)),
    ('unanswered_leads', coalesce(c_unans, 0), coalesce(p_unans, 0)),
    ('unanswered_leads_cost', round(coalesce(c_unans_cost, 0), 2), round(coalesce(p_unans_cost, 0), 2)),
    ('unpaid_invoices', c_unpaid::numeric, p_unpaid::numeric),
    ('unpaid_invoice_amount', coalesce(c_unpaid_amt, 0), coalesce(p_unpaid_amt, 0)),
    ('unpaid_invoice_age', round(c_unpaid_age, 2), round(p_unpaid_age, 2)),
    ('overdue_invoices', c_overdue::numeric, p_overdue::numeric),
    ('overdue_invoice_amount', coalesce(c_overdue_amt, 0), coalesce(p_overdue_amt, 0)),
    ('_leads_converted', c_conv, p_conv),
    ('_leads_cost', c_leads_cost, p_leads_cost)) AS v(metric, cur, prev)
$$;
COMMENT ON FUNCTION crm._fast_owner_leads(timestamptz, timestamptz, timestamptz) IS
'Fast path of crm.owner_dashboard from the rollups: its rows lead_to_buyer_conversion, unanswered_leads, unanswered_leads_cost, unpaid_invoices, unpaid_invoice_amount, unpaid_invoice_age, overdue_invoices and overdue_invoice_amount for [cur_from, cur_to) and [prev_from, cur_from), plus the unrounded _leads_converted and _leads_cost (for lost_opportunity_cost).';

-- The leads, answered leads and median first-response minutes per manager
-- (the ld / fc / lm CTEs of crm.dashboard_managers) for [period_from, period_to).
CREATE FUNCTION crm._fast_managers_leads(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, leads bigint, answered bigint, med double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT l.manager_id, count(*), count(*) FILTER (WHERE l.first_response < period_to),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN l.first_response < period_to THEN l.response_min END)
  FROM crm.rollup_leads l
 WHERE l.created_at >= period_from AND l.created_at < period_to
 GROUP BY 1
$$;
COMMENT ON FUNCTION crm._fast_managers_leads(timestamptz, timestamptz) IS
'Fast path of crm.dashboard_managers from the rollups: per manager (NULL = none), the leads created in [period_from, period_to), those answered before period_to and the median first-response time in minutes (unrounded).';

-- Real contacts per manager and kind (the ct CTE of crm.dashboard_managers)
-- for [period_from, period_to), bounds at midnight in the rollups' time zone.
CREATE FUNCTION crm._fast_managers_contacts(period_from timestamptz, period_to timestamptz)
RETURNS TABLE (manager_id text, calls bigint, meetings bigint, emails bigint, contacts bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT c.manager_id, sum(c.calls)::bigint, sum(c.meetings)::bigint, sum(c.emails)::bigint, sum(c.contacts)::bigint
  FROM crm.rollup_contact_days c
 WHERE c.day >= period_from::date AND c.day < period_to::date
 GROUP BY 1
$$;
COMMENT ON FUNCTION crm._fast_managers_contacts(timestamptz, timestamptz) IS
'Fast path of crm.dashboard_managers from the rollups: real contacts per manager (NULL = none) in [period_from, period_to) (midnights, as crm._period_bounds gives them): calls, meetings, e-mails and all kinds.';
