-- Quiet hours and send windows on the recipient's wall clock, across the
-- daylight saving changes of Europe/Warsaw and America/New_York.  Deferral
-- is computed by reminder.next_send_time(), the same code the worker's
-- gate runs (reminder.gate_check() shows the gate's verdict).
\ir setup.psql

BEGIN;
SELECT plan(24);
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.nst(tz text, qh jsonb, at timestamptz) RETURNS timestamptz
LANGUAGE sql RETURN reminder.next_send_time(jsonb_build_object('time_zone', tz, 'quiet_hours', qh), NULL, at);

-- Europe/Warsaw, spring forward 2024-03-31: 02:00 CET -> 03:00 CEST at 01:00 UTC
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "22:00", "end": "02:30"}', '2024-03-30 22:00+00'),
          '2024-03-31 01:00+00', 'Warsaw spring: an end at 02:30 (skipped) is reached when the clock jumps to 03:00');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "02:30", "end": "07:00"}', '2024-03-31 00:30+00'),
          '2024-03-31 00:30+00', 'Warsaw spring: 01:30 CET is before a start at 02:30: send now');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "02:30", "end": "07:00"}', '2024-03-31 01:00+00'),
          '2024-03-31 05:00+00', 'Warsaw spring: at 03:00 CEST a start at 02:30 (skipped) has passed: wait for 07:00 CEST');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "21:00", "end": "08:00"}', '2024-03-30 21:00+00'),
          '2024-03-31 06:00+00', 'Warsaw spring: an ordinary night ends at 08:00 CEST, 06:00 UTC');

-- Europe/Warsaw, fall back 2024-10-27: 03:00 CEST -> 02:00 CET at 01:00 UTC
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "22:00", "end": "02:30"}', '2024-10-26 22:00+00'),
          '2024-10-27 00:30+00', 'Warsaw fall: an end at 02:30 is reached the first time the clock shows it (CEST)');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "22:00", "end": "02:30"}', '2024-10-27 01:10+00'),
          '2024-10-27 01:30+00', 'Warsaw fall: due at 02:10 CET (second pass) waits for 02:30 CET');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "02:30", "end": "06:00"}', '2024-10-27 00:40+00'),
          '2024-10-27 05:00+00', 'Warsaw fall: 02:40 CEST is quiet until 06:00 CET');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "21:00", "end": "08:00"}', '2024-10-26 20:00+00'),
          '2024-10-27 07:00+00', 'Warsaw fall: the long night ends at 08:00 CET, 07:00 UTC');

-- America/New_York, spring forward 2024-03-10: 02:00 EST -> 03:00 EDT at 07:00 UTC
SELECT is(pg_temp.nst('America/New_York', '{"start": "21:00", "end": "02:15"}', '2024-03-10 03:00+00'),
          '2024-03-10 07:00+00', 'New York spring: an end at 02:15 (skipped) is reached at the jump to 03:00 EDT');
SELECT is(pg_temp.nst('America/New_York', '{"start": "02:30", "end": "06:00"}', '2024-03-10 06:59+00'),
          '2024-03-10 06:59+00', 'New York spring: 01:59 EST is before a start at 02:30');
SELECT is(pg_temp.nst('America/New_York', '{"start": "02:30", "end": "06:00"}', '2024-03-10 07:00+00'),
          '2024-03-10 10:00+00', 'New York spring: at 03:00 EDT the period has begun: wait for 06:00 EDT');

-- America/New_York, fall back 2024-11-03: 02:00 EDT -> 01:00 EST at 06:00 UTC
SELECT is(pg_temp.nst('America/New_York', '{"start": "22:00", "end": "01:30"}', '2024-11-03 03:00+00'),
          '2024-11-03 05:30+00', 'New York fall: an end at 01:30 is reached first at 01:30 EDT');
SELECT is(pg_temp.nst('America/New_York', '{"start": "22:00", "end": "01:30"}', '2024-11-03 06:10+00'),
          '2024-11-03 06:30+00', 'New York fall: due at 01:10 EST (second pass) waits for 01:30 EST');
SELECT is(pg_temp.nst('America/New_York', '{"start": "22:00", "end": "01:30"}', '2024-11-03 05:45+00'),
          '2024-11-03 05:45+00', 'New York fall: 01:45 EDT is outside: send now');

-- windows, days, whole days
SELECT is(pg_temp.nst('Europe/Warsaw', '[{"start": "17:00", "end": "09:00"}, {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}]',
                      '2024-03-29 17:00+00'),
          '2024-04-01 07:00+00', 'weekday window 09-17: Friday evening waits for Monday 09:00, across the DST weekend');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "12:00", "end": "24:00"}', '2024-06-03 10:30+00'),
          '2024-06-03 22:00+00', 'an end at 24:00 is local midnight');
SELECT is(pg_temp.nst('Europe/Warsaw', '[]', '2024-06-03 22:00+00'), '2024-06-03 22:00+00', 'no periods: no quiet hours');
SELECT is(pg_temp.nst('Europe/Warsaw', '{"start": "21:00", "end": "08:00"}', '2024-06-03 12:00+00'),
          '2024-06-03 12:00+00', 'outside quiet hours the message goes at once');

-- where quiet hours and zone come from
SELECT reminder.create_channel('qh_sms', 'sms', '{"provider": "smsapi", "quiet_hours": {"start": "20:00", "end": "09:00"}}', '{"token": "t"}');
SELECT reminder.upsert_recipient('qh-1', phone => '+48601234567', time_zone => 'America/New_York');
SELECT is(reminder.next_send_time('{"external_id": "qh-1"}', 'qh_sms', '2024-06-03 02:00+00'),
          '2024-06-03 13:00+00', 'a stored recipient without quiet hours gets the channel default, in its own zone');
SELECT reminder.upsert_recipient('qh-1', quiet_hours => '[]');
SELECT is(reminder.next_send_time('{"external_id": "qh-1"}', 'qh_sms', '2024-06-03 02:00+00'),
          '2024-06-03 02:00+00', 'the recipient''s empty quiet hours turn the channel default off');
SELECT is(reminder.next_send_time('{"external_id": "qh-1", "quiet_hours": {"start": "21:00", "end": "23:00"}}', 'qh_sms', '2024-06-04 01:30+00'),
          '2024-06-04 03:00+00', 'inline quiet hours override the stored ones');
SET LOCAL TimeZone = 'Asia/Tokyo';
SELECT is(reminder.next_send_time('{"quiet_hours": {"start": "22:00", "end": "07:00"}}', NULL, '2024-06-03 23:00+09'),
          '2024-06-04 07:00+09', 'without a time_zone the server''s TimeZone is used');
SET LOCAL TimeZone = 'UTC';

-- the gate defers, never drops
SELECT reminder.create_template('qh_t', 'x');
SELECT reminder.create_channel('qh_log', 'log');
SELECT reminder.schedule('qh_log', jsonb_build_object('time_zone', 'UTC', 'quiet_hours',
           jsonb_build_object('start', to_char(now() - interval '2 hours', 'HH24:MI'),
                              'end', to_char(now() + interval '2 hours', 'HH24:MI'))), 'qh_t') AS m \gset
SELECT is((SELECT verdict FROM reminder.gate_check(:m)), 'defer', 'the gate defers a message due inside quiet hours');
SELECT ok((SELECT defer_until BETWEEN now() + interval '1 hour 58 minutes' AND now() + interval '2 hours'
             FROM reminder.gate_check(:m)), 'to the end of the quiet period');

SELECT * FROM finish();
ROLLBACK;
