-- The SQL API with its fixed signatures, what each role may call, and the
-- behaviour and failures of each function.
\ir setup.psql

BEGIN;
SELECT plan(49);

-- signatures fixed by the product contract
SELECT has_function('reminder', 'create_channel', ARRAY['text', 'text', 'jsonb', 'jsonb']);
SELECT function_returns('reminder', 'create_channel', ARRAY['text', 'text', 'jsonb', 'jsonb'], 'void');
SELECT has_function('reminder', 'create_template', ARRAY['text', 'text', 'text', 'text', 'text', 'text[]']);
SELECT has_function('reminder', 'schedule', ARRAY['text', 'jsonb', 'text', 'timestamp with time zone', 'jsonb', 'text', 'text', 'text']);
SELECT function_returns('reminder', 'schedule', ARRAY['text', 'jsonb', 'text', 'timestamp with time zone', 'jsonb', 'text', 'text', 'text'], 'bigint');
SELECT has_function('reminder', 'send', ARRAY['text', 'jsonb', 'text', 'jsonb', 'text', 'text', 'text']);
SELECT has_function('reminder', 'cancel', ARRAY['bigint']);
SELECT has_function('reminder', 'reschedule', ARRAY['bigint', 'timestamp with time zone']);
SELECT is((SELECT pg_get_function_arguments('reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text, text)'::regprocedure)),
          'channel text, recipient jsonb, template text, due_at timestamp with time zone DEFAULT now(), data jsonb DEFAULT ''{}''::jsonb, idempotency_key text DEFAULT NULL::text, fallback text DEFAULT NULL::text, priority text DEFAULT NULL::text',
          'schedule has the documented parameter names and defaults: SPEC''s fixed six, then optional ones');
SELECT is((SELECT pg_get_function_arguments('reminder.create_channel(text, text, jsonb, jsonb)'::regprocedure)),
          'name text, kind text, settings jsonb DEFAULT ''{}''::jsonb, secrets jsonb DEFAULT ''{}''::jsonb',
          'create_channel has the documented parameter names and defaults');

-- who may call what
SELECT ok(has_function_privilege('reminder_admin', 'reminder.create_channel(text, text, jsonb, jsonb)', 'EXECUTE'), 'admin may create channels');
SELECT ok(NOT has_function_privilege('reminder_user', 'reminder.create_channel(text, text, jsonb, jsonb)', 'EXECUTE'), 'user may not create channels');
SELECT ok(NOT has_function_privilege('reminder_user', 'reminder.set_channel_secrets(text, jsonb)', 'EXECUTE'), 'user may not set secrets');
SELECT ok(NOT has_function_privilege('reminder_user', 'reminder.create_template(text, text, text, text, text, text[])', 'EXECUTE'), 'user may not create templates');
SELECT ok(has_function_privilege('reminder_user', 'reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text, text)', 'EXECUTE'), 'user may schedule');
SELECT ok(has_function_privilege('reminder_user', 'reminder.cancel(bigint)', 'EXECUTE'), 'user may cancel');
SELECT ok(has_function_privilege('reminder_admin', 'reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text, text)', 'EXECUTE'), 'admin may schedule too');

-- set up as the admin role, schedule as the user role
CREATE ROLE tap_admin IN ROLE reminder_admin;
CREATE ROLE tap_app IN ROLE reminder_user;
SET ROLE tap_admin;
SELECT lives_ok($$SELECT reminder.create_channel('tap_log', 'log')$$, 'admin creates a log channel');
SELECT lives_ok($$SELECT reminder.create_channel('tap_hook', 'webhook', '{"url": "http://127.0.0.1:9/x"}', '{"signing_secret": "k"}')$$,
                'admin creates a webhook channel with a secret');
SELECT lives_ok($$SELECT reminder.create_template('tap_t', 'Hi {{name}}', 'Subject {{name}}', NULL, 'en', ARRAY['name'])$$,
                'admin creates a template');
SELECT throws_ok($$SELECT secrets FROM reminder.channel_secret$$, '42501', NULL, 'admin cannot read secrets back');
RESET ROLE;

SET ROLE tap_app;
SELECT throws_ok($$SELECT reminder.create_channel('tap_x', 'log')$$, '42501', NULL, 'user cannot create a channel');
SELECT throws_ok($$SELECT * FROM reminder.channel_secret$$, '42501', NULL, 'user cannot read secrets');
SELECT throws_ok($$INSERT INTO reminder.message (channel, recipient, template, due_at, next_attempt_at) VALUES ('tap_log', '{}', 'tap_t', now(), now())$$,
                 '42501', NULL, 'user cannot write the outbox directly');
SELECT lives_ok($$SELECT reminder.schedule('tap_log', '{}', 'tap_t', now() + interval '1 day', '{"name": "Ada"}', 'tap-1')$$,
                'user schedules');
SELECT is((SELECT count(*)::int FROM reminder.message WHERE idempotency_key = 'tap-1'), 1, 'user reads the message it scheduled');
SELECT is(reminder.schedule('tap_log', '{}', 'tap_t', now(), '{"name": "Other"}', 'tap-1'),
          (SELECT id FROM reminder.message WHERE idempotency_key = 'tap-1'),
          'a repeated idempotency key returns the existing id');
SELECT is((SELECT data->>'name' FROM reminder.message WHERE idempotency_key = 'tap-1'), 'Ada', '... and changes nothing');
SELECT ok(reminder.send('tap_hook', '{}', 'tap_t', '{"name": "Now"}') > 0, 'send schedules for now');
SELECT is((SELECT status FROM reminder.message WHERE data->>'name' = 'Now'), 'scheduled', '... in state scheduled');
SELECT lives_ok($$SELECT reminder.reschedule((SELECT id FROM reminder.message WHERE idempotency_key = 'tap-1'), '2030-01-01 00:00+00')$$,
                'user reschedules');
SELECT is((SELECT due_at FROM reminder.message WHERE idempotency_key = 'tap-1'), '2030-01-01 00:00+00'::timestamptz, '... to the new time');
SELECT ok(reminder.cancel((SELECT id FROM reminder.message WHERE idempotency_key = 'tap-1')), 'user cancels');
SELECT is((SELECT status FROM reminder.message WHERE idempotency_key = 'tap-1'), 'cancelled', '... and the message is cancelled');
SELECT ok(NOT reminder.cancel((SELECT id FROM reminder.message WHERE idempotency_key = 'tap-1')), 'cancelling again says false');
SELECT reminder.send('tap_hook', '{}', 'tap_t', '{"name": "F"}', 'tap-fb', fallback => 'tap_log') AS fb \gset
SELECT is((SELECT fallback FROM reminder.message WHERE id = :fb), 'tap_log', 'a message can name its own fallback channel');
SELECT is((SELECT count(DISTINCT reminder.schedule('tap_log', '{}', 'tap_t', now(), '{"name": "x"}', 'tap-twice'))
             FROM generate_series(1, 3)), 1::bigint,
          'one key scheduled three times in one statement: one message, the same id each time');
RESET ROLE;

-- each bad input fails with its SQLSTATE and writes nothing
SELECT throws_ok($$SELECT reminder.schedule('nope', '{}', 'tap_t', now(), '{"name": "x"}')$$, '42704', 'channel "nope" does not exist', 'unknown channel');
SELECT throws_ok($$SELECT reminder.schedule('tap_log', '{}', 'nope')$$, '42704', 'template "nope" does not exist', 'unknown template');
SELECT throws_ok($$SELECT reminder.create_channel('tap_y', 'fax')$$, '22023', 'unknown channel kind "fax"', 'bad channel kind');
SELECT throws_ok($$SELECT reminder.create_channel('tap_y', 'webhook', '{}')$$, '22023', NULL, 'webhook without url');
SELECT throws_ok($$SELECT reminder.create_channel('tap_y', 'webhook', '{"url": "file:///etc/passwd"}')$$, '22023', NULL, 'scheme other than http/https');
SELECT throws_ok($$SELECT reminder.schedule('tap_log', '{"time_zone": "Nowhere/Land"}', 'tap_t', now(), '{"name": "x"}')$$, '22023', NULL, 'invalid time zone');
SELECT throws_ok($$SELECT reminder.create_template('tap_u', 'x', E'Sub\r\nBcc: a@example.com')$$, '22023', NULL, 'CR/LF in a header field');
SELECT throws_ok($$SELECT reminder.schedule('tap_log', '{}', 'tap_t', NULL, '{"name": "x"}')$$, '22004', NULL, 'NULL due_at');
SELECT throws_ok($$SELECT reminder.schedule('tap_log', '{}', 'tap_t', now(), '{}')$$, '22023', 'template "tap_t" requires variable "name"', 'missing required variable');
UPDATE reminder.message SET status = 'sent', next_attempt_at = NULL WHERE data->>'name' = 'Now';
SELECT throws_ok($$SELECT reminder.cancel((SELECT id FROM reminder.message WHERE data->>'name' = 'Now'))$$, '55000', NULL, 'cancelling a message already sent');
SET LOCAL reminder.max_payload_size = '1kB';
SELECT throws_ok($$SELECT reminder.schedule('tap_log', '{}', 'tap_t', now(), jsonb_build_object('name', repeat('x', 5000)))$$, '54000', NULL, 'data over the size limit');
SELECT is((SELECT count(*)::int FROM reminder.message WHERE channel IN ('tap_log', 'tap_hook')), 4, 'failed calls wrote nothing');

SELECT * FROM finish();
ROLLBACK;
