-- The schema, its tables and indexes, and who may touch what.
\ir setup.psql

BEGIN;
SELECT plan(20);

SELECT has_schema('reminder');
SELECT has_table('reminder', t, 'table reminder.' || t) FROM unnest(ARRAY[
    'channel', 'channel_secret', 'template', 'recipient', 'message', 'attempt', 'event', 'log']) t;
SELECT col_is_pk('reminder', 'message', 'id', 'message.id is the primary key');
SELECT col_is_unique('reminder', 'message', ARRAY['idempotency_key'], 'idempotency keys are unique');
SELECT has_index('reminder', 'message', 'message_due_idx', ARRAY['channel', 'priority', 'next_attempt_at']);
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = 'reminder.message_due_idx'::regclass),
          '(next_attempt_at IS NOT NULL)',
          'the due scan index holds only rows that can still be sent');
SELECT has_role('reminder_admin');
SELECT has_role('reminder_user');
SELECT is_member_of('reminder_user', 'reminder_admin');
SELECT ok(NOT has_table_privilege('reminder_user', 'reminder.channel_secret', 'SELECT'),
          'reminder_user cannot read secrets');
SELECT ok(NOT has_table_privilege('reminder_admin', 'reminder.channel_secret', 'SELECT'),
          'reminder_admin cannot read secrets back either');
SELECT ok(NOT has_table_privilege('reminder_user', 'reminder.message', 'INSERT'),
          'reminder_user writes messages only through functions');
SELECT ok(NOT has_function_privilege('public', 'reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text, text)', 'EXECUTE'),
          'PUBLIC cannot schedule');

SELECT * FROM finish();
ROLLBACK;
