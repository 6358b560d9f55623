-- dashboard_fast_todo.sql: crm.todo (and crm.v_todo) from the rollups (issue 21;
-- docs/rollups.md, "To-do list").
--
-- The five kinds of items as of any moment E, each from rollup state:
-- unanswered leads from crm.rollup_leads (first response) with the cost of a
-- lead from crm.rollup_lead_months / crm.rollup_spend_months; stale deals from
-- the deal states (crm._deal_states_sql) and the stage norms read when the
-- report runs; overdue invoices from crm.rollup_invoices (with their invoice
-- and customer ids); overdue contacts from crm._fast_coverage; reactivation from
-- crm.rollup_customer_orders (each customer's first order, its amount and the
-- moment of its second, kept by the part orders) and the contact state.  Managers of customers from
-- crm.rollup_customer_info.  Derived data: not dumped, no grants to PUBLIC.

-- ---------------------------------------------------------------------------
-- The report
-- ---------------------------------------------------------------------------

-- crm.todo(as_of) from the rollups: the same rows in the same order.  The
-- caller (crm.todo) has checked as_of, the stages and the sources.
CREATE FUNCTION crm._fast_todo(as_of timestamptz)
RETURNS TABLE (manager_id text, kind text, entity_id text, since timestamptz, value numeric, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
-- hash joins: merge joins sort the text customer ids (slow under a linguistic collation)
SET enable_mergejoin = off
AS $$
BEGIN
    -- the full path's error for an event with an unknown stage before as_of
    PERFORM crm._deal_check_stages(as_of);
    -- the overdue contacts straight from the rows r of crm._fast_coverage's query (no function
    -- result in between); the notes by concatenation (the same text as format: every value
    -- through its output function, NULL as an empty string)
    RETURN QUERY EXECUTE crm._fast_coverage_sql(as_of, format($sql$,
cfg AS MATERIALIZED (SELECT crm._lead_sla() AS sla, crm._reactivation_after() AS react),
-- unanswered: created more than the SLA before as_of, no first response before as_of
ua AS (
    SELECT l.lead_id, l.created_at, l.month, l.channel, l.manager_id, l.created_at + cfg.sla AS since, cfg.sla
      FROM crm.rollup_leads l CROSS JOIN cfg
     WHERE l.created_at + cfg.sla < $1 AND (l.first_response IS NULL OR l.first_response >= $1)),
cpl AS (
    SELECT s.channel, s.month, s.amount / n.leads AS cost_per_lead
      FROM crm.rollup_spend_months s JOIN crm.rollup_lead_months n ON n.channel = s.channel AND n.month = s.month),
-- open at as_of (no won or lost event before it) in an open stage
sd AS (
    SELECT d.deal_id, d.last_at, d.amount, d.manager_id, d.open_so, %2$s AS norm
      FROM %1$s AS d WHERE d.open_so IS NOT NULL AND d.closed_at IS NULL),
oi AS (
    SELECT i.invoice_id, i.customer_id, i.issued_at, i.due_at, i.amount FROM crm.rollup_invoices i
     WHERE i.issued_at < $1 AND (i.paid_at IS NULL OR i.paid_at >= $1) AND i.due_at < $1),
-- exactly one order before as_of, older than the period, no real contact at or
-- after it before as_of (the contact state; the contacts copy by index only
-- when the last contact is at or after as_of)
ra AS (
    SELECT f.customer_id, f.first_at AS ordered_at, f.first_amount AS amount, f.first_at + cfg.react AS since
      FROM crm.rollup_customer_orders f CROSS JOIN cfg
     WHERE f.customer_id IS NOT NULL AND f.first_at + cfg.react < $1 AND (f.second_at IS NULL OR f.second_at >= $1)
       AND NOT EXISTS (SELECT 1 FROM crm.rollup_customer_contacts s
                        WHERE s.customer_id = f.customer_id AND s.last_at >= f.first_at AND s.first_at < $1
                          AND (s.last_at < $1 OR EXISTS (SELECT 1 FROM crm.rollup_real_contacts r
                                                          WHERE r.customer_id = f.customer_id AND r.occurred_at >= f.first_at
                                                            AND r.occurred_at < $1)))),
items AS (
    SELECT ua.manager_id, 'unanswered_lead'::text AS kind, ua.lead_id AS entity_id, ua.since,
           round(coalesce(cpl.cost_per_lead, 0), 2) AS value,
           'lead from ' || coalesce(ua.channel, '(unknown channel)') || ' created '
           || coalesce(to_char(ua.created_at, 'YYYY-MM-DD HH24:MI'), '') || ', no first response (SLA '
           || coalesce(ua.sla::text, '') || ')' AS note
      FROM ua LEFT JOIN cpl ON cpl.channel = ua.channel AND cpl.month = ua.month
    UNION ALL
    SELECT sd.manager_id, 'stale_deal', sd.deal_id, sd.last_at + sd.norm, sd.amount,
           'stage ' || coalesce(ps.stage, '') || ' idle ' || coalesce(extract(day FROM ($1 - sd.last_at))::text, '')
           || ' days (norm ' || coalesce(ps.max_days::text, '') || ')'
      FROM sd JOIN crm.pipeline_stages ps ON ps.stage_order = sd.open_so
     WHERE sd.last_at < ($1 - sd.norm)
    UNION ALL
    SELECT cust.manager_id, 'overdue_invoice', oi.invoice_id, oi.due_at, oi.amount,
           'invoice issued ' || coalesce(oi.issued_at::date::text, '') || ', due ' || coalesce(oi.due_at::date::text, '')
           || ', ' || coalesce(extract(day FROM ($1 - oi.due_at))::text, '') || ' days overdue'
      FROM oi LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = oi.customer_id) AS cust ON true
    UNION ALL
    SELECT r.manager_id, 'overdue_contact', r.customer_id, r.due, coalesce(r.rev, 0),
           'class ' || coalesce(r.cls, '') || ', last real contact ' || coalesce(r.last_at::date::text, 'never')
           || ', next contact was due ' || coalesce(r.due::date::text, '')
      FROM r WHERE NOT r.covered
    UNION ALL
    SELECT cust.manager_id, 'reactivation', ra.customer_id, ra.since, ra.amount,
           'one order on ' || coalesce(ra.ordered_at::date::text, '') || ', no real contact since'
      FROM ra LEFT JOIN LATERAL (SELECT min(c.manager_id) AS manager_id FROM crm.rollup_customer_info c
                                  WHERE c.customer_id = ra.customer_id) AS cust ON true)
-- sorted by value first, then the ties (100,000 overdue contacts of value 0 as of now() on the
-- 100,000-customer demo) by the rest: an incremental sort, twice as fast as one sort by every key
SELECT i.manager_id, i.kind, i.entity_id, i.since, i.value, i.note
  FROM (SELECT * FROM items ORDER BY items.value DESC NULLS LAST OFFSET 0) AS i
 ORDER BY i.value DESC NULLS LAST, i.since NULLS LAST, i.kind, i.entity_id
$sql$, crm._deal_states_sql('$1', '''infinity''::timestamptz'), crm._stage_norm_case('d.open_so')))
    USING as_of;
END
$$;
COMMENT ON FUNCTION crm._fast_todo(timestamptz) IS
'crm.todo(as_of) computed from the rollups (crm.rollup_leads, crm.rollup_lead_months, crm.rollup_spend_months, the deal states, crm.rollup_invoices, crm._fast_coverage, crm.rollup_customer_orders, the contact state, crm.rollup_customer_info): the same rows in the same order.';
