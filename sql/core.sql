-- core: the extension installs into schema crm and checks inner queries
SELECT extname, extversion, extrelocatable, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'crm_analytics';
SELECT crm.version();
-- inner query checks: by position and type, errors name the expected columns
SELECT crm._check_inner_query('crm.example', 'SELECT 1::bigint, now(), ''x''::text', ARRAY['entity any', 'ts timestamptz', 'step text', 'value numeric?']);
SELECT crm._check_inner_query('crm.example', 'SELECT 1::bigint, now(), ''x''::text, 2.5', ARRAY['entity any', 'ts timestamptz', 'step text', 'value numeric?']);
SELECT crm._check_inner_query('crm.example', 'SELECT 1::bigint, now()', ARRAY['entity any', 'ts timestamptz', 'step text', 'value numeric?']);
SELECT crm._check_inner_query('crm.example', 'SELECT 1::bigint, ''x''::text, now()', ARRAY['entity any', 'ts timestamptz', 'step text']);
SELECT crm._check_inner_query('crm.example', 'SELECT * FROM no_such_table', ARRAY['entity any']);
SELECT crm._check_inner_query('crm.example', '', ARRAY['entity any']);
SELECT crm._check_inner_query('crm.example', 'SELECT 1', ARRAY['entity whatever']);
