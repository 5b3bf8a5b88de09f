-- Recipients, time and trust, as psql shows them: quiet hours across
-- daylight saving changes, and how bad input is refused (SQLSTATE,
-- message, detail, hint).
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned
SET TimeZone = 'UTC';

-- Quiet hours on the recipient's wall clock.  "next" is when a message due
-- at "due" may go out; local times shown in the recipient's zone.
SELECT zone, quiet, due, next,
       to_char(next AT TIME ZONE zone, 'Dy HH24:MI') AS local_next
  FROM (VALUES
    ('Europe/Warsaw',    '{"start": "22:00", "end": "02:30"}', '2024-03-30 22:00+00'::timestamptz),
    ('Europe/Warsaw',    '{"start": "02:30", "end": "07:00"}', '2024-03-31 01:00+00'),
    ('Europe/Warsaw',    '{"start": "22:00", "end": "02:30"}', '2024-10-26 22:00+00'),
    ('Europe/Warsaw',    '{"start": "22:00", "end": "02:30"}', '2024-10-27 01:10+00'),
    ('America/New_York', '{"start": "21:00", "end": "02:15"}', '2024-03-10 03:00+00'),
    ('America/New_York', '{"start": "22:00", "end": "01:30"}', '2024-11-03 03:00+00'),
    ('America/New_York', '{"start": "22:00", "end": "01:30"}', '2024-11-03 06:10+00'),
    ('Europe/Warsaw',    '[{"start": "17:00", "end": "09:00"}, {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}]', '2024-03-29 17:00+00')
  ) v(zone, quiet, due),
  LATERAL (SELECT reminder.next_send_time(jsonb_build_object('time_zone', zone, 'quiet_hours', quiet::jsonb), NULL, due) AS next) n;

-- Refused input
SELECT reminder.create_channel('tr_log', 'log');
SELECT reminder.create_template('tr_t', 'x');
SELECT reminder.schedule('tr_log', '{}', 'tr_t') AS msg \gset
SELECT pg_temp.try($$SELECT reminder.upsert_recipient('tr-1', email => 'ada@@example.com')$$);
SELECT pg_temp.try($$SELECT reminder.upsert_recipient('tr-1', time_zone => 'Europe/Gotham')$$);
SELECT pg_temp.try($$SELECT reminder.upsert_recipient('tr-1', quiet_hours => '{"start": "00:00", "end": "24:00"}')$$);
SELECT pg_temp.try($$SELECT reminder.opt_out('{}')$$);
SELECT pg_temp.try($$SELECT reminder.opt_out('{"email": "ada@example.com"}', 'carrier-pigeon')$$);
SELECT pg_temp.try($$SELECT reminder.record_event('definitely-not-a-token')$$);
SELECT pg_temp.try(format('SELECT reminder.record_event(%L)',
                          overlay(reminder.link_token(:msg, 'confirm') PLACING 'AAAA' FROM 40 FOR 4)));
SELECT pg_temp.try(format('SELECT reminder.record_event(%L, %L)', reminder.link_token(:msg, 'confirm'), 'declined'));
SELECT pg_temp.try(format('SELECT reminder.record_response(%L, 12)', reminder.link_token(:msg, 'survey')));
SELECT pg_temp.try($$SELECT reminder.purge('-1 day')$$);
SELECT count(*) AS events_recorded FROM reminder.event;

SELECT reminder.drop_channel('tr_log', cascade => true);
SELECT reminder.drop_template('tr_t');
