-- reminder.watch() as psql shows it: the stored rule, and every way bad
-- input is refused (SQLSTATE, message, detail, hint), including SQL
-- injection attempts through each text argument.
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned
SET TimeZone = 'UTC';

SELECT reminder.create_channel('rg_sms', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9"}', '{"token": "t"}');
SELECT reminder.create_channel('rg_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_template('rg_t', 'Meeting {{row.title}}');
CREATE TABLE rg_meeting (
    id bigint PRIMARY KEY,
    title text NOT NULL,
    starts_at timestamptz NOT NULL,
    day date,
    client_phone text,
    client_email text,
    note text
);
CREATE TABLE rg_nokey (id int, starts_at timestamptz);
CREATE VIEW rg_view AS SELECT * FROM rg_meeting;

-- A rule as stored: defaults filled in, expressions deparsed.
SELECT reminder.watch('rg_meeting', 'before', name => 'rg_ok', column_name => 'starts_at',
    offsets => '{24 hours, 1 hour}', channel => 'rg_sms', template => 'rg_t',
    recipients => '{"role": "client", "to": {"phone": {"expr": "client_phone"}}}',
    condition => 'title <> ''x''', time_zone => 'Europe/Warsaw') > 0 AS created;
SELECT name, table_name, kind, column_name, key_columns, recipients, condition, if_past, time_zone
  FROM reminder.rule WHERE name = 'rg_ok';
SELECT tgname FROM pg_trigger WHERE tgrelid = 'rg_meeting'::regclass ORDER BY 1;

-- Unknown table, not a table, no key
SELECT pg_temp.try($$SELECT reminder.watch('rg_nosuch', 'before')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_view', 'before', column_name => 'starts_at')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_nokey', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": "+48601234567"}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('reminder.message', 'before', column_name => 'due_at')$$);

-- Kind, name, columns
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'sometimes')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', name => 'rg_ok', column_name => 'starts_at')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', name => '1bad', column_name => 'starts_at')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'title')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', key_columns => '{note}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', key_columns => '{title}')$$);

-- Settings that are missing, unknown or meant for another kind
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_nosuch', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_nosuch', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
-- a null template is no template (it was stored, and the rule never sent to the recipient)
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', recipients => '{"template": null, "to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', recipients => '{"templates": null, "to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}, "cc": "x"}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"email": "ada@example.com"}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": "12"}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}, "bcc": "boss@example.com"}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 month}', business_days => true, channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', changes_to => '{paid}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', throttle => '90 days', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'survey', column_name => 'title', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', if_past => 'later', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', time_zone => 'Mars/Olympus', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', calendar => 'rg_nosuch', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);

-- Bad expressions: syntax, unknown column, wrong type, not one expression,
-- subqueries, volatile functions, aggregates, set-returning functions
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'title = ')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'titel = ''a''')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'id + 1')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'true, false')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'true FROM pg_authid')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'id IN (SELECT 1)')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'random() < 0.5')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'count(*) > 0')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'generate_series(1, 2) > 0')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'xmin IS NOT NULL')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "starts_at + 1"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}, "offsets": {"expr": "title"}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"expr": "client_phone"}}')$$);

-- Calls that can only change the session evaluating the expression (the
-- writer's, the worker's): refused, before the volatility check would
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'set_config(''search_path'', ''public'', false) IS NOT NULL')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "pg_catalog.set_config(''reminder.x'', client_phone, false)"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}, "when": "pg_try_advisory_lock(id)"}')$$);

-- "to": email and SMS channels need it, webhook, Slack and log ones do not
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"role": "erp"}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_mail', template => 'rg_t', recipients => '{"role": "erp", "to": null}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"role": "erp", "to": "erp"}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": "+48601234567", "cc": ["b@example.com"]}}')$$);

-- SQL injection through every text argument: each is refused, or taken as
-- data, and nothing runs.
CREATE TABLE rg_canary (x int);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting; DROP TABLE rg_canary', 'before')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before''; DROP TABLE rg_canary; --')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', name => 'x"; DROP TABLE rg_canary; --', column_name => 'starts_at')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at"; DROP TABLE rg_canary; --')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms''; DROP TABLE rg_canary; --', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t''); DROP TABLE rg_canary; --', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone); DROP TABLE rg_canary; --"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'true; DROP TABLE rg_canary')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'true) FROM rg_meeting; DROP TABLE rg_canary; SELECT (true')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => '(WITH d AS (DELETE FROM public.rg_canary RETURNING 1) SELECT true)')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', stop_condition => 'true; DROP TABLE rg_canary')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', key_columns => '{"id; DROP TABLE rg_canary"}')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', calendar => 'x''; DROP TABLE rg_canary; --')$$);
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', time_zone => 'UTC''; DROP TABLE rg_canary; --')$$);
SELECT pg_temp.try($$SELECT reminder.unwatch('x''; DROP TABLE rg_canary; --')$$);
SELECT count(*) AS canary_rows FROM rg_canary;

-- Who may watch: reminder_admin members, on tables they own
CREATE ROLE rg_admin IN ROLE reminder_admin;
CREATE ROLE rg_app IN ROLE reminder_user;
GRANT USAGE ON SCHEMA public TO rg_admin;
SET ROLE rg_admin;
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', name => 'rg_theirs', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}')$$);
SELECT pg_temp.try($$SELECT reminder.unwatch('rg_ok')$$);
RESET ROLE;
SET ROLE rg_app;
SELECT pg_temp.try($$SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at')$$);
RESET ROLE;

-- Expression errors point into the expression
\set VERBOSITY verbose
SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '{"to": {"phone": {"expr": "client_phone"}}}', condition => 'title = ''a'' AND nosuch > 1');
SELECT reminder.watch('rg_meeting', 'before', column_name => 'starts_at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_t', recipients => '[{"to": {"phone": {"expr": "client_phone"}}}, {"to": {"phone": {"expr": "client_phone || "}}}]');
\set VERBOSITY default

-- Bad data at write time: a phone number that is no phone number
INSERT INTO rg_meeting (id, title, starts_at, client_phone) VALUES (1, 'Kickoff', now() + interval '3 days', '12');
-- no phone: no message, no error
INSERT INTO rg_meeting (id, title, starts_at, client_phone) VALUES (2, 'Kickoff', now() + interval '3 days', NULL);
SELECT count(*) AS messages FROM reminder.message WHERE source_table = 'public.rg_meeting';

-- unwatch
SELECT pg_temp.try($$SELECT reminder.unwatch('rg_nosuch')$$);
SELECT reminder.unwatch('rg_ok');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'rg_meeting'::regclass;

-- Renaming a column that a rule's template uses would leave row.<column>
-- empty in its messages: refused at commit, unless the template is changed
-- in the same transaction
SELECT reminder.create_template('rg_visit_t', 'Visit {{ row.title | default "?" }} in {{row.room}}');
CREATE TABLE rg_visit (id int PRIMARY KEY, at timestamptz NOT NULL, title text, room text, phone text);
SELECT reminder.watch('rg_visit', 'before', name => 'rg_visit', column_name => 'at', offsets => '{1 hour}', channel => 'rg_sms', template => 'rg_visit_t', recipients => '{"to": {"phone": {"expr": "phone"}}}') > 0 AS created;
ALTER TABLE rg_visit RENAME COLUMN title TO subject;
SELECT string_agg(attname, ', ' ORDER BY attnum) AS columns FROM pg_attribute WHERE attrelid = 'rg_visit'::regclass AND attnum > 0;
BEGIN;
ALTER TABLE rg_visit RENAME COLUMN title TO subject;
SELECT reminder.create_template('rg_visit_t', 'Visit {{ row.subject | default "?" }} in {{row.room}}');
COMMIT;
-- a column only the rule's expressions use is renamed in them
ALTER TABLE rg_visit RENAME COLUMN phone TO mobile;
-- renamed and back again
BEGIN;
ALTER TABLE rg_visit RENAME COLUMN room TO place;
ALTER TABLE rg_visit RENAME COLUMN place TO room;
COMMIT;
SELECT string_agg(attname, ', ' ORDER BY attnum) AS columns FROM pg_attribute WHERE attrelid = 'rg_visit'::regclass AND attnum > 0;
SELECT recipients->0->'to' AS "to" FROM reminder.rule WHERE name = 'rg_visit';
SELECT reminder.unwatch('rg_visit');
DROP TABLE rg_visit;
SELECT reminder.drop_template('rg_visit_t');
-- the templates of a recipient's calendar invitation count too
SELECT reminder.create_channel('rg_invmail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_template('rg_inv_t', 'Visit', 'Visit');
SELECT reminder.create_template('rg_inv_cancel', 'Cancelled: {{row.title}}', 'Cancelled');
CREATE TABLE rg_inv (id int PRIMARY KEY, at timestamptz NOT NULL, title text, email text);
SELECT reminder.watch('rg_inv', 'before', name => 'rg_inv', column_name => 'at', offsets => '{1 hour}', channel => 'rg_invmail', template => 'rg_inv_t', recipients => '{"to": {"email": {"expr": "email"}}, "invite": {"summary": "Visit", "cancel_template": "rg_inv_cancel"}}') > 0 AS created;
ALTER TABLE rg_inv RENAME COLUMN title TO subject;
SELECT reminder.unwatch('rg_inv');
DROP TABLE rg_inv;
SELECT reminder.drop_template('rg_inv_cancel');
SELECT reminder.drop_template('rg_inv_t');
SELECT reminder.drop_channel('rg_invmail');

-- A rule's priority: every message it makes carries it
CREATE TABLE rg_urgent (id int PRIMARY KEY, at timestamptz NOT NULL);
SELECT pg_temp.try($$SELECT reminder.watch('rg_urgent', 'before', column_name => 'at', offsets => '{1 hour}', channel => 'rg_mail', template => 'rg_t', recipients => '{"to": {"email": "ops@example.com"}}', priority => 'urgent')$$);
SELECT reminder.watch('rg_urgent', 'before', column_name => 'at', offsets => '{1 hour}', channel => 'rg_mail',
    template => 'rg_t', recipients => '{"to": {"email": "ops@example.com"}}', priority => 'high') > 0 AS created;
INSERT INTO rg_urgent VALUES (1, now() + interval '1 day');
SELECT r.priority AS rule, m.priority AS message FROM reminder.rule r JOIN reminder.message m ON m.rule_id = r.id
 WHERE r.name = 'rg_urgent_before';
SELECT reminder.unwatch('rg_urgent_before');
DROP TABLE rg_urgent;

DROP TABLE rg_meeting, rg_nokey, rg_canary CASCADE;
REVOKE USAGE ON SCHEMA public FROM rg_admin;
DROP ROLE rg_admin, rg_app;
