-- The demo's SQL: a sample business table whose rows become reminders.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS reminder;
RESET client_min_messages;
\o /dev/null

-- Channels: the embedded log channel needs no outside server; the webhook
-- goes to the local receiver the demo started.
SELECT reminder.create_channel('log', 'log');
SELECT CASE WHEN :'sink_port' <> '' THEN
    reminder.create_channel('hook', 'webhook',
        jsonb_build_object('url', 'http://127.0.0.1:' || :'sink_port' || '/reminders'),
        '{"signing_secret": "demo-secret"}') END;

SELECT reminder.create_template('meeting_reminder',
    'Hello {{recipient.name}}, your meeting "{{row.title}}" starts at {{row.starts_at}}.',
    subject => 'Reminder: {{row.title}}');
SELECT reminder.create_template('meeting_hook',
    '{"event": "meeting.reminder", "meeting": {{row.id}}, "title": "{{row.title}}", "who": "{{recipient.name}}"}');

CREATE TABLE meetings (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title     text NOT NULL,
    client    text NOT NULL,
    starts_at timestamptz NOT NULL
);

INSERT INTO meetings (title, client, starts_at) VALUES
    ('Kick-off', 'Ada Lovelace', now() + interval '15 minutes 1 second'),
    ('Design review', 'Alan Turing', now() + interval '15 minutes 2 seconds'),
    ('Quarterly planning', 'Grace Hopper', now() + interval '3 days');

\o
\echo == a sample business table, meetings, with three rows
SELECT id, title, client, starts_at::timestamptz(0) FROM meetings ORDER BY id;

-- Until reminder.watch() exists, schedule by hand what a rule would:
-- a reminder 15 minutes before each meeting, on each channel.
\echo == reminders scheduled 15 minutes before each meeting
SELECT count(reminder.schedule(c, jsonb_build_object('name', m.client), t,
                               m.starts_at - interval '15 minutes',
                               jsonb_build_object('row', to_jsonb(m)))) AS scheduled
  FROM meetings m,
       (VALUES ('log', 'meeting_reminder'), ('hook', 'meeting_hook')) AS v(c, t)
 WHERE c = 'log' OR :'sink_port' <> ''
;
