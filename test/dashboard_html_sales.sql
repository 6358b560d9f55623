-- dashboard_html_sales.sql: the sales head's part of crm.dashboard_html
-- (issue 20) on the demo, Q4 2025: the losses by reason and stage, the
-- follow-up depth, plan against fact and the top of the to-do list as of the
-- period end, each the same figures as its report (the reports themselves are
-- checked against plain SQL in test/sales_*.sql); an older registration
-- without the deals source still gets a page.
BEGIN;
SELECT plan(12);

CREATE TEMP TABLE page AS SELECT crm.dashboard_html('2025-10-01', '2025-12-31') AS h;

SELECT ok((SELECT h LIKE '%<h2>Where deals are lost (reason and last open stage)</h2>%' FROM page), 'the page has the losses section');
-- the largest loss row of the report is on the page, with its value and share
SELECT ok((SELECT h LIKE '%<tr><td>' || crm._html(l.reason) || '</td><td>' || crm._html(l.stage) || '</td><td class="n">'
                         || crm._fmt(l.deals::numeric) || '</td><td class="n">' || crm._fmt(l.lost_value) || '</td>%'
                    AND h LIKE '%' || crm._fmt(l.share_pct) || '%%</td></tr>%'
             FROM page, (SELECT * FROM crm.dashboard_losses('2025-10-01', '2025-12-31') ORDER BY lost_value DESC, reason, stage LIMIT 1) l),
          'losses: the largest reason x stage row as dashboard_losses gives it');
SELECT is((SELECT (length(h) - length(replace(h, 'fill="#c53030"/></svg>', ''))) / length('fill="#c53030"/></svg>') FROM page),
          (SELECT least(count(*), 10)::int FROM crm.dashboard_losses('2025-10-01', '2025-12-31')),
          'losses: at most ten rows, one bar each');

SELECT ok((SELECT h LIKE '%<h2>Follow-up depth of the deals closed</h2>%' FROM page), 'the page has the follow-up section');
SELECT is((SELECT count(*)::int FROM crm.dashboard_followups('2025-10-01', '2025-12-31') f, page
            WHERE page.h LIKE '%<tr><td>' || f.contacts || '</td><td class="n">' || crm._fmt(f.deals::numeric)
                              || '</td><td class="n">' || crm._fmt(f.lost_value) || '</td><td class="n">'
                              || crm._fmt(f.won_deals::numeric) || '</td>%'),
          4, 'follow-ups: the four buckets with their lost and won deals');

SELECT ok((SELECT h LIKE '%<h2>Plan against fact</h2>%' FROM page), 'the page has the plan section');
SELECT is((SELECT count(*)::int FROM crm.dashboard_plan_fact('2025-10-01', '2025-12-31') p, page
            WHERE page.h LIKE '%<td class="n">' || crm._fmt(p.plan) || '</td><td class="n">' || crm._fmt(p.fact) || '</td>%'),
          (SELECT count(*)::int FROM crm.plans WHERE period_from = '2025-10-01' AND period_to = '2025-12-31'),
          'plans: every plan of Q4 with its plan and fact');
SELECT ok((SELECT count(*) > 0 FROM crm.plans WHERE period_from = '2025-10-01' AND period_to = '2025-12-31'),
          'the demo has plans for Q4 2025');

SELECT ok((SELECT h LIKE '%<h2>To do first, as of 2026-01-01 00:00 (' || crm._fmt(count(*)::numeric) || ' things in all)</h2>%'
             FROM page, crm.todo('2026-01-01') GROUP BY h),
          'to-do: as of the period end, with the length of crm.todo''s list');
SELECT ok((SELECT bool_and(page.h LIKE '%<td>' || crm._html(replace(t.kind, '_', ' ')) || '</td><td>' || crm._html(t.entity_id)
                                       || '</td><td>' || to_char(t.since, 'YYYY-MM-DD') || '</td><td class="n">' || crm._fmt(t.value) || '</td>%')
             FROM page, (SELECT * FROM crm.todo('2026-01-01') LIMIT 15) t),
          'to-do: the first 15 items of crm.todo, in its order of money at stake');

-- a registration from before 0.4.0 (no deals source): the page still renders,
-- without follow-up rows
CREATE TEMP TABLE saved AS SELECT * FROM crm.sources WHERE kind = 'deals';
DELETE FROM crm.sources WHERE kind = 'deals';
SELECT ok((SELECT h LIKE '%<h2>Follow-up depth of the deals closed</h2>%' AND h LIKE '%(not recorded)%'
             FROM (SELECT crm.dashboard_html('2025-10-01', '2025-12-31') AS h) x),
          'without the deals source: a page, losses under (not recorded), no follow-up rows');
INSERT INTO crm.sources SELECT * FROM saved;

SELECT throws_ok($$SELECT crm.dashboard_html('2025-12-31', '2025-10-01')$$, '22023', NULL, 'an inverted period is refused first');

SELECT * FROM finish();
ROLLBACK;
