-- test/data/rollups_random_round.sql: one round of random INSERT / UPDATE / DELETE on every
-- source table of the demo (orders before a customer's first one, deals advanced, moved back and
-- shifted in time, invoices paid later, ...): pg_temp.random_round(r). Included (\ir) by
-- test/rollups.sql and test/rollups_fast.sql; seed with setseed() first.
CREATE FUNCTION pg_temp.random_round(r int) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    -- orders: new ones (some before a customer's first order), changed, deleted
    INSERT INTO crm_demo.orders (order_id, customer_id, ordered_at, product_id, quantity, amount, cost)
    SELECT (SELECT max(order_id) FROM crm_demo.orders) + g, c.customer_id,
           c.created_at + (random() * 200 - 20) * interval '1 day', 1, 1, round((random() * 500)::numeric, 2), round((random() * 200)::numeric, 2)
      FROM generate_series(1, 15) g
      JOIN LATERAL (SELECT customer_id, created_at FROM crm_demo.customers ORDER BY random() + g * 0 LIMIT 1) c ON true;
    UPDATE crm_demo.orders SET amount = amount + 10, ordered_at = ordered_at + (random() * 10 - 5) * interval '1 day'
     WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY random() LIMIT 10);
    DELETE FROM crm_demo.orders WHERE order_id IN (SELECT order_id FROM crm_demo.orders ORDER BY random() LIMIT 8);
    -- leads
    INSERT INTO crm_demo.leads (lead_id, created_at, channel, manager_id, customer_id)
    SELECT (SELECT max(lead_id) FROM crm_demo.leads) + g, timestamptz '2025-01-01' + random() * interval '360 days',
           (ARRAY['ads', 'seo', 'partner', 'referral', 'events'])[1 + floor(random() * 5)::int], 1 + floor(random() * 12)::int, NULL
      FROM generate_series(1, 10) g;
    UPDATE crm_demo.leads SET manager_id = 1 + (manager_id % 12) WHERE lead_id IN (SELECT lead_id FROM crm_demo.leads ORDER BY random() LIMIT 5);
    DELETE FROM crm_demo.leads WHERE lead_id IN (SELECT lead_id FROM crm_demo.leads ORDER BY random() LIMIT 5);
    -- deal events: open deals advanced (won, lost or a stage further), deals moved back (last event removed), deals shifted in time
    INSERT INTO crm_demo.deal_events (deal_id, changed_at, stage)
    SELECT d.deal_id, d.last_at + random() * interval '20 days', (ARRAY['paid', 'lost', 'proposal', 'invoice'])[1 + floor(random() * 4)::int]
      FROM (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1
             HAVING bool_and(stage NOT IN ('paid', 'lost')) ORDER BY random() LIMIT 12) d;
    DELETE FROM crm_demo.deal_events e USING (SELECT deal_id, max(changed_at) AS last_at FROM crm_demo.deal_events GROUP BY 1 ORDER BY random() LIMIT 8) x
     WHERE e.deal_id = x.deal_id AND e.changed_at = x.last_at;
    UPDATE crm_demo.deal_events SET changed_at = changed_at + (r - 2) * interval '3 days'
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals ORDER BY random() LIMIT 5);
    UPDATE crm_demo.deals SET manager_id = 1 + (manager_id % 12), amount = amount + 1
     WHERE deal_id IN (SELECT deal_id FROM crm_demo.deals ORDER BY random() LIMIT 5);
    -- invoices: paid later, issued, deleted
    UPDATE crm_demo.invoices SET paid_at = issued_at + random() * interval '30 days'
     WHERE invoice_id IN (SELECT invoice_id FROM crm_demo.invoices WHERE paid_at IS NULL ORDER BY random() LIMIT 6);
    INSERT INTO crm_demo.invoices (invoice_id, deal_id, customer_id, issued_at, due_at, amount, paid_at)
    SELECT (SELECT max(invoice_id) FROM crm_demo.invoices) + g, 1, c.customer_id, c.t, c.t + interval '14 days', 100 + g, NULL
      FROM generate_series(1, 5) g
      JOIN LATERAL (SELECT customer_id, created_at + random() * interval '100 days' AS t FROM crm_demo.customers ORDER BY random() + g * 0 LIMIT 1) c ON true;
    DELETE FROM crm_demo.invoices WHERE invoice_id IN (SELECT invoice_id FROM crm_demo.invoices ORDER BY random() LIMIT 3);
    -- spend
    UPDATE crm_demo.spend SET amount = amount + 7 WHERE (channel, month) IN (SELECT channel, month FROM crm_demo.spend ORDER BY random() LIMIT 3);
    INSERT INTO crm_demo.spend VALUES ('events', date '2026-01-01' + r * interval '1 month', 100 * r) ON CONFLICT DO NOTHING;
    -- interactions
    INSERT INTO crm_demo.interactions (interaction_id, customer_id, lead_id, manager_id, kind, direction, automated, occurred_at)
    SELECT (SELECT max(interaction_id) FROM crm_demo.interactions) + g, NULL, NULL, 1 + floor(random() * 12)::int, 'call', 'outbound',
           random() < 0.3, timestamptz '2025-06-01' + random() * interval '200 days'
      FROM generate_series(1, 20) g;
    UPDATE crm_demo.interactions SET automated = NOT automated WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions ORDER BY random() LIMIT 5);
    DELETE FROM crm_demo.interactions WHERE interaction_id IN (SELECT interaction_id FROM crm_demo.interactions ORDER BY random() LIMIT 5);
END
$f$;
