-- The demo's SQL: a sample business table whose rows become reminders.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS reminder;
RESET client_min_messages;
\o /dev/null

-- Channels: the embedded log channel needs no outside server; the webhook
-- goes to the local receiver the demo started, signed with a secret.
SELECT reminder.create_channel('log', 'log');
SELECT reminder.create_channel('hook', 'webhook',
    jsonb_build_object('url', 'http://127.0.0.1:' || :'sink_port' || '/reminders'),
    '{"signing_secret": "demo-secret"}');

SELECT reminder.create_template('meeting_reminder',
    'Hello {{recipient.name}}, your meeting "{{row.title}}" starts at {{row.starts_at | time}} ({{recipient.time_zone}}).',
    subject => 'Reminder: {{row.title}}');
SELECT reminder.create_template('meeting_hook',
    '{"event": "meeting.reminder", "meeting": {{row.id}}, "title": "{{row.title}}", "operator": "{{recipient.name}}", "starts_at": "{{row.starts_at}}"}');

CREATE TABLE meetings (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title     text NOT NULL,
    client    text NOT NULL,
    client_tz text NOT NULL,
    operator  text NOT NULL,
    starts_at timestamptz NOT NULL,
    cancelled boolean NOT NULL DEFAULT false
);

-- One rule: 15 minutes before each meeting, the client gets a note (log
-- channel, in their own time zone) and the operator's system a webhook.
-- Cancelled meetings remind nobody.
SELECT reminder.watch('meetings', 'before',
    name        => 'meeting_reminders',
    column_name => 'starts_at',
    offsets     => ARRAY[interval '15 minutes'],
    condition   => 'NOT cancelled',
    recipients  => '[
        {"role": "client", "channel": "log", "template": "meeting_reminder",
         "to": {"name": {"expr": "client"}, "time_zone": {"expr": "client_tz"}}},
        {"role": "operator", "channel": "hook", "template": "meeting_hook",
         "to": {"name": {"expr": "operator"}}}
    ]');
\o

\echo == a sample business table, meetings, watched by reminder.watch()
INSERT INTO meetings (title, client, client_tz, operator, starts_at) VALUES
    ('Kick-off',           'Ada Lovelace', 'Europe/Warsaw',    'Olga', now() + interval '15 minutes 1 second'),
    ('Design review',      'Alan Turing',  'America/New_York', 'Olga', now() + interval '15 minutes 2 seconds'),
    ('Quarterly planning', 'Grace Hopper', 'Europe/London',    'Piotr', now() + interval '3 days'),
    ('Cancelled call',     'Edsger Dijkstra', 'Europe/Amsterdam', 'Piotr', now() + interval '2 days');
SELECT id, title, client, operator, starts_at::timestamptz(0) FROM meetings ORDER BY id;

\echo == the planning moves a day later and the call is cancelled: their reminders follow
UPDATE meetings SET starts_at = starts_at + interval '1 day' WHERE title = 'Quarterly planning';
UPDATE meetings SET cancelled = true WHERE title = 'Cancelled call';
