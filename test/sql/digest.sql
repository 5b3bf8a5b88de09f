-- Digests as psql shows them: the settings as stored (defaults filled in),
-- the message that will send a digest, and every way bad settings or a
-- full digest are refused (SQLSTATE, message, detail, hint), with nothing
-- written.  Behaviour is test/pgtap/digest.sql, delivery test/t/040_digest.pl.
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned
SET TimeZone = 'UTC';

SELECT reminder.create_channel('dg_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('dg_log', 'log');
SELECT reminder.create_template('dg_t', '{{count}}:{{#items}} {{title}}{{/items}}', 'Digest');

-- the settings, checked, with their defaults
SELECT reminder._digest_spec('{"key": "daily_tasks", "at": "08:00"}');
SELECT reminder._digest_spec('{"key": "news", "window": "90 minutes", "max_items": 20, "overflow": "error"}');
SELECT reminder._digest_spec('{"key": "weekdays", "at": "17:30", "days": [5, 1, 2, 1], "time_zone": "Europe/Warsaw"}');

-- every way of getting them wrong: 22023, and a hint
SELECT pg_temp.try($$SELECT reminder._digest_spec('"daily"')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "every": "day"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"at": "08:00"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "daily tasks", "at": "08:00"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": 7, "at": "08:00"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "window": "1 hour", "at": "08:00"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "window": "soon"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "window": 3600}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "window": "10 seconds"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "window": "2 months"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "window": "-1 hour"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "8:00"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "24:00"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "0 8 * * *"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "days": []}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "days": [0, 7]}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "days": "weekdays"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "window": "1 hour", "days": [1]}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "time_zone": "Mars/Olympus"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "max_items": 0}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "max_items": 1001}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "max_items": 2.5}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "max_items": "10"}')$$);
SELECT pg_temp.try($$SELECT reminder._digest_spec('{"key": "d", "at": "08:00", "overflow": "drop"}')$$);

-- add_to_digest(): the same refusals, and the ones of schedule()
SELECT pg_temp.try($$SELECT reminder.add_to_digest('dg_mail', '{"email": "ada@example.com"}', 'dg_t', '{"key": "d", "window": "1 fortnight"}')$$);
SELECT pg_temp.try($$SELECT reminder.add_to_digest('dg_mail', '{"email": "ada@example.com"}', 'dg_t', NULL)$$);
SELECT pg_temp.try($$SELECT reminder.add_to_digest('dg_mail', '{"email": "ada@example.com"}', 'dg_t', '{"key": "d", "at": "08:00"}', '[1, 2]')$$);
SELECT pg_temp.try($$SELECT reminder.add_to_digest('dg_mail', '{"email": "ada@example.com"}', 'dg_t', '{"key": "d", "at": "08:00"}', '{}', '')$$);
SELECT pg_temp.try($$SELECT reminder.add_to_digest('dg_mail', '{"phone": "+48601234567"}', 'dg_t', '{"key": "d", "at": "08:00"}')$$);
SELECT pg_temp.try($$SELECT reminder.add_to_digest('nope', '{"email": "ada@example.com"}', 'dg_t', '{"key": "d", "at": "08:00"}')$$);
SELECT pg_temp.try($$SELECT reminder.add_to_digest('dg_mail', '{"email": "ada@example.com"}', 'nope', '{"key": "d", "at": "08:00"}')$$);
SELECT count(*) AS digests, (SELECT count(*) FROM reminder.digest_item) AS items,
       (SELECT count(*) FROM reminder.message) AS messages
  FROM reminder.digest;

-- a digest and the message that will send it
SELECT reminder.add_to_digest('dg_log', '{"name": "Ada"}', 'dg_t',
                              '{"key": "news", "window": "1 hour", "max_items": 2, "overflow": "error"}',
                              '{"title": "one"}') AS message_id \gset
SELECT reminder.add_to_digest('dg_log', '{"name": "Ada"}', 'dg_t',
                              '{"key": "news", "window": "1 hour", "max_items": 2, "overflow": "error"}',
                              '{"title": "two"}') = :message_id AS same_digest;
SELECT channel, template, recipient, status, due_at - created_at AS due_in, data, category, idempotency_key ~ '^digest:[0-9]+$' AS key
  FROM reminder.message WHERE id = :message_id;
SELECT digest_key, channel, template, recipient_key ~ '^sha256:[0-9a-f]{64}$' AS hashed, send_at - opened_at AS window,
       max_items, items, closed_at
  FROM reminder.digest;
SELECT data, category, rule_id, source_key, message_id, dropped FROM reminder.digest_item ORDER BY id;

-- the keys of digest messages are reserved: another message with one could
-- be taken for a digest's and get its items
SELECT pg_temp.try(format($$SELECT reminder.schedule('dg_log', '{"name": "Eve"}', 'dg_t', now() + interval '1 day', '{}', 'digest:%s')$$,
                          (SELECT id + 1 FROM reminder.digest)));
SELECT pg_temp.try($$SELECT reminder.send('dg_log', '{"name": "Eve"}', 'dg_t', '{}', 'digest:1')$$);
SELECT count(*) AS messages FROM reminder.message;

-- a window overflows: refused, and nothing written
SELECT pg_temp.try($$SELECT reminder.add_to_digest('dg_log', '{"name": "Ada"}', 'dg_t', '{"key": "news", "window": "1 hour", "max_items": 2, "overflow": "error"}', '{"title": "three"}')$$);
SELECT count(*) AS items FROM reminder.digest_item;

-- a rule recipient with a digest: stored with its defaults; refused on a survey, or when wrong
CREATE TABLE dg_task (id bigint PRIMARY KEY, title text NOT NULL, due_on date NOT NULL, operator_email text, done boolean NOT NULL DEFAULT false);
SELECT reminder.watch('dg_task', 'before', name => 'dg_tasks', column_name => 'due_on', offsets => '{1 day}',
    channel => 'dg_mail', template => 'dg_t', stop_condition => 'done',
    recipients => '{"to": {"email": {"expr": "operator_email"}}, "digest": {"key": "tasks", "at": "18:00"}}') > 0 AS created;
SELECT recipients FROM reminder.rule WHERE name = 'dg_tasks';
SELECT pg_temp.try($$SELECT reminder.watch('dg_task', 'before', name => 'dg_bad', column_name => 'due_on', offsets => '{1 day}', channel => 'dg_mail', template => 'dg_t', recipients => '{"to": {"email": {"expr": "operator_email"}}, "digest": {"key": "tasks", "at": "6pm"}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('dg_task', 'survey', name => 'dg_bad', column_name => 'done', changes_to => '{true}', channel => 'dg_mail', template => 'dg_t', recipients => '{"to": {"email": {"expr": "operator_email"}}, "digest": {"key": "tasks", "at": "18:00"}}')$$);
SELECT count(*) AS rules FROM reminder.rule;

-- the next test drops the extension
DROP TABLE dg_task;
