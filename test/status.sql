-- status: automatic statuses on the demo CRM, checked against plain SQL over
-- crm_demo (loaded by the test runner: crm.load_demo(2000, 42, '2025-12-31')).
BEGIN;
SELECT plan(16);

-- a copy of the demo deals, every one back at 'lead', with an empty event table
CREATE TABLE public.tap_deals AS SELECT deal_id, 'lead'::text AS stage FROM crm_demo.deals;
ALTER TABLE public.tap_deals ADD PRIMARY KEY (deal_id);
CREATE TABLE public.tap_deal_events (deal_id bigint, stage text, changed_at timestamptz);
SELECT lives_ok($$SELECT crm.attach_auto_status('public.tap_deals', 'deal_id', 'stage',
                  ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid', 'lost'],
                  'public.tap_deal_events', 'deal_id', 'stage', 'changed_at')$$,
                'attach to the copy of the demo deals');
-- one rule per stage: an event "stage X" moves the deal to X (forward only)
INSERT INTO crm.status_event_rules (entity_table, event_type, to_status)
SELECT 'public.tap_deals', s, s FROM unnest(ARRAY['qualified', 'proposal', 'invoice', 'paid', 'lost']) s;
-- a time rule: 30 days in 'proposal' with no event -> lost
INSERT INTO crm.status_time_rules (entity_table, from_status, idle_for, to_status)
VALUES ('public.tap_deals', 'proposal', '30 days', 'lost');

INSERT INTO public.tap_deal_events
SELECT deal_id, stage, changed_at FROM crm_demo.deal_events ORDER BY changed_at, deal_id;

SELECT ok((SELECT count(*) FROM crm_demo.deal_events) > 10000, 'the demo has stage events to replay');
SELECT is((SELECT count(*) FROM public.tap_deals t JOIN crm_demo.deals d USING (deal_id) WHERE t.stage <> d.stage),
          0::bigint, 'replaying the demo stage events gives every deal its current demo stage');
SELECT is((SELECT count(*) FROM crm.status_history WHERE entity_table = 'public.tap_deals'::regclass),
          (SELECT count(*) FROM crm_demo.deal_events WHERE stage <> 'lead'),
          'one history row per stage change (every non-lead event is a change)');
SELECT is((SELECT count(*) FROM crm.status_history h
            WHERE h.entity_table = 'public.tap_deals'::regclass
              AND (h.actor <> 'rule' OR h.rule_id IS NULL
                   OR NOT EXISTS (SELECT 1 FROM crm_demo.deal_events e
                                   WHERE e.deal_id = h.entity_key::bigint AND e.stage = h.to_status
                                     AND e.changed_at = h.changed_at))),
          0::bigint, 'every history row is a rule change at the time of its event');

-- conversion and time in stage from the history = plain SQL over deal_events
SELECT results_eq(
  $$SELECT status, entered FROM crm.status_conversion('public.tap_deals') WHERE status <> 'lead' ORDER BY stage_position$$,
  $$SELECT stage, count(DISTINCT deal_id) FROM crm_demo.deal_events WHERE stage <> 'lead'
     GROUP BY stage ORDER BY array_position(ARRAY['lead', 'qualified', 'proposal', 'invoice', 'paid', 'lost'], stage)$$,
  'entered per stage = deals with an event of that stage');
SELECT results_eq(
  $$SELECT status, advanced FROM crm.status_conversion('public.tap_deals') WHERE status IN ('qualified', 'proposal', 'invoice') ORDER BY stage_position$$,
  $$SELECT e.stage, count(DISTINCT e.deal_id) FILTER (WHERE EXISTS (
            SELECT 1 FROM crm_demo.deal_events n WHERE n.deal_id = e.deal_id AND n.changed_at > e.changed_at))
      FROM crm_demo.deal_events e WHERE e.stage IN ('qualified', 'proposal', 'invoice')
     GROUP BY e.stage ORDER BY array_position(ARRAY['qualified', 'proposal', 'invoice'], e.stage)$$,
  'advanced per stage = deals with a later event');
SELECT results_eq(
  $$SELECT status, median_time_in_stage FROM crm.status_conversion('public.tap_deals') WHERE status IN ('qualified', 'proposal', 'invoice') ORDER BY stage_position$$,
  $$SELECT stage, percentile_cont(0.5) WITHIN GROUP (ORDER BY next_at - changed_at)
      FROM (SELECT stage, changed_at, lead(changed_at) OVER (PARTITION BY deal_id ORDER BY changed_at) AS next_at
              FROM crm_demo.deal_events) e
     WHERE next_at IS NOT NULL AND stage IN ('qualified', 'proposal', 'invoice')
     GROUP BY stage ORDER BY array_position(ARRAY['qualified', 'proposal', 'invoice'], stage)$$,
  'median time in stage = plain SQL over the stage events');

-- the sweep: deals in proposal whose last event is older than 30 days
SELECT is(crm.apply_time_rules('2025-12-31'),
          (SELECT count(*)::int FROM crm_demo.deals d WHERE d.stage = 'proposal'
              AND (SELECT max(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id) <= timestamptz '2025-12-31' - interval '30 days'),
          'apply_time_rules moves the idle proposals');
SELECT is(crm.apply_time_rules('2025-12-31'), 0, 'a second sweep with the same as_of changes nothing');
SELECT is((SELECT count(*) FROM public.tap_deals WHERE stage = 'proposal'),
          (SELECT count(*) FROM crm_demo.deals d WHERE d.stage = 'proposal'
              AND (SELECT max(changed_at) FROM crm_demo.deal_events e WHERE e.deal_id = d.deal_id) > timestamptz '2025-12-31' - interval '30 days'),
          'the recent proposals stay');

-- manual changes
SELECT throws_ok($$UPDATE public.tap_deals SET stage = 'lead' WHERE deal_id = (SELECT min(deal_id) FROM public.tap_deals WHERE stage = 'paid')$$,
                 '23514', NULL, 'a manual backward move is rejected');
SELECT throws_ok($$UPDATE public.tap_deals SET stage = 'archived' WHERE deal_id = 1$$,
                 '22023', NULL, 'a manual move to an unknown status is rejected');
UPDATE public.tap_deals SET stage = 'lost' WHERE deal_id = (SELECT min(deal_id) FROM public.tap_deals WHERE stage = 'qualified');
SELECT is((SELECT actor FROM crm.status_history WHERE entity_table = 'public.tap_deals'::regclass ORDER BY history_id DESC LIMIT 1),
          current_user::text, 'a manual move is recorded with the user as actor');

-- detach leaves the table and its data
SELECT lives_ok($$SELECT crm.detach_auto_status('public.tap_deals')$$, 'detach');
SELECT is((SELECT count(*) FROM public.tap_deals), (SELECT count(*) FROM crm_demo.deals), 'the table keeps all its rows');

SELECT * FROM finish();
ROLLBACK;
