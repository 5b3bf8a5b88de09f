-- Recurring rules (docs/rules.md, "Recurring"): the RRULE subset and its
-- occurrences in a time zone across Europe/Warsaw's daylight-saving
-- changes (2026-03-29 and 2026-10-25), with a business calendar; bad
-- rules refused with a SQLSTATE and nothing written; the watch trigger
-- keeping one occurrence ahead per row, following the row, and stopping.
\ir setup.psql

BEGIN;
SELECT plan(62);

SET LOCAL TimeZone = 'Europe/Warsaw';

-- ---------------------------------------------------------------------------
-- Occurrences across the change to summer time (Sunday 2026-03-29, 2:00 ->
-- 3:00) and back (Sunday 2026-10-25, 3:00 -> 2:00)
-- ---------------------------------------------------------------------------
SELECT is(array_agg(o), ARRAY['2026-03-27 09:00+01', '2026-03-28 09:00+01', '2026-03-29 09:00+02',
                             '2026-03-30 09:00+02']::timestamptz[],
          'daily at 9:00 stays at 9:00 local time across the change to summer time')
  FROM reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=9;BYMINUTE=0', '2026-03-27 00:00', 'Europe/Warsaw', 4) o;
SELECT is(array_agg(o), ARRAY['2026-10-24 09:00+02', '2026-10-25 09:00+01', '2026-10-26 09:00+01']::timestamptz[],
          '...and across the change back')
  FROM reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=9;BYMINUTE=0', '2026-10-24 00:00', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o - lag), ARRAY['24 hours', '23 hours', '24 hours']::interval[],
          'the day of the change to summer time is 23 hours long between two 9:00 reminders')
  FROM (SELECT o, lag(o) OVER (ORDER BY o)
          FROM reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=9;BYMINUTE=0', '2026-03-27 00:00', 'Europe/Warsaw', 4) o) s
 WHERE lag IS NOT NULL;
SELECT is(array_agg(o), ARRAY['2026-03-28 02:30+01', '2026-03-29 03:30+02', '2026-03-30 02:30+02']::timestamptz[],
          '2:30 does not exist on 2026-03-29: it is taken with the offset before, 3:30 (RFC 5545)')
  FROM reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=2;BYMINUTE=30', '2026-03-28 00:00', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o), ARRAY['2026-03-29 03:00+02', '2026-03-29 03:30+02', '2026-03-30 02:00+02']::timestamptz[],
          '...and a skipped time that lands on a time the rule has anyway counts once')
  FROM reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=2,3;BYMINUTE=0,30', '2026-03-29 00:00', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o), ARRAY['2026-10-24 02:30+02', '2026-10-25 02:30+02', '2026-10-26 02:30+01']::timestamptz[],
          '2:30 happens twice on 2026-10-25: the first one (RFC 5545)')
  FROM reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=2;BYMINUTE=30', '2026-10-24 00:00', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o), ARRAY['2026-10-23 09:00+02', '2026-10-26 09:00+01', '2026-10-27 09:00+01']::timestamptz[],
          'weekdays at 9:00: Friday, then Monday after the change back')
  FROM reminder.rrule_occurrences('FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0', '2026-10-23 00:00', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o), ARRAY['2026-10-25 01:15+02', '2026-10-25 02:15+02', '2026-10-25 02:15+01',
                             '2026-10-25 03:15+01']::timestamptz[],
          'hourly counts elapsed hours: 2:15 twice on the night of the change back')
  FROM reminder.rrule_occurrences('FREQ=HOURLY', '2026-10-25 01:15+02', 'Europe/Warsaw', 4) o;
SELECT is(array_agg(o), ARRAY['2026-03-29 01:15+01', '2026-03-29 03:15+02', '2026-03-29 04:15+02']::timestamptz[],
          '...and none at 2:15 on the night of the change to summer time')
  FROM reminder.rrule_occurrences('FREQ=HOURLY', '2026-03-29 01:15+01', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o), ARRAY['2026-03-29 10:00+02', '2026-04-05 10:00+02']::timestamptz[],
          'weekly on Sundays at 10:00, started the Sunday before the change, a week apart in local time')
  FROM reminder.rrule_occurrences('FREQ=WEEKLY', '2026-03-22 10:00+01', 'Europe/Warsaw', 2, after => '2026-03-22 10:00+01') o;

-- ---------------------------------------------------------------------------
-- The rest of the subset
-- ---------------------------------------------------------------------------
SELECT is(array_agg(o), ARRAY['2026-01-30 17:00+01', '2026-02-27 17:00+01', '2026-03-27 17:00+01',
                             '2026-04-24 17:00+02']::timestamptz[],
          'monthly on the last Friday (BYDAY=-1FR) at 17:00')
  FROM reminder.rrule_occurrences('FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0', '2026-01-01', 'Europe/Warsaw', 4) o;
SELECT is(array_agg(o), ARRAY['2026-01-13 08:00+01', '2026-03-10 08:00+01', '2026-05-12 08:00+02']::timestamptz[],
          'every other month on the second Tuesday')
  FROM reminder.rrule_occurrences('FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU;BYHOUR=8', '2026-01-01 08:00', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o), ARRAY['2026-01-31 10:00+01', '2026-03-31 10:00+02', '2026-05-31 10:00+02']::timestamptz[],
          'monthly from the 31st: months without one are left out')
  FROM reminder.rrule_occurrences('FREQ=MONTHLY', '2026-01-31 10:00', 'Europe/Warsaw', 3) o;
SELECT is(array_agg(o), ARRAY['2026-02-28 12:00+01', '2026-03-31 12:00+02']::timestamptz[],
          'BYMONTHDAY=-1: the last day of each month')
  FROM reminder.rrule_occurrences('FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=12', '2026-02-01', 'Europe/Warsaw', 2) o;
SELECT is(array_agg(o), ARRAY['2026-01-02 09:00+01', '2026-01-03 09:00+01', '2026-01-04 09:00+01']::timestamptz[],
          'COUNT=3 ends the series after three')
  FROM reminder.rrule_occurrences('FREQ=DAILY;COUNT=3;BYHOUR=9', '2026-01-01 10:00', 'Europe/Warsaw', 10) o;
SELECT is(array_agg(o), ARRAY['2026-01-04 09:00+01']::timestamptz[],
          'COUNT counts from the start, not from after')
  FROM reminder.rrule_occurrences('FREQ=DAILY;COUNT=3;BYHOUR=9', '2026-01-01 10:00', 'Europe/Warsaw', 10,
                                  after => '2026-01-03 12:00') o;
SELECT is(array_agg(o), ARRAY['2026-01-01 10:00+01', '2026-01-02 10:00+01']::timestamptz[],
          'UNTIL as a local date includes that whole day')
  FROM reminder.rrule_occurrences('FREQ=DAILY;UNTIL=20260102', '2026-01-01 10:00', 'Europe/Warsaw', 10) o;
SELECT is(array_agg(o), ARRAY['2026-01-01 10:00+01']::timestamptz[],
          'UNTIL in UTC (Z) is a point in time')
  FROM reminder.rrule_occurrences('FREQ=DAILY;UNTIL=20260102T085959Z', '2026-01-01 10:00', 'Europe/Warsaw', 10) o;
SELECT is(array_agg(o), ARRAY['2026-01-01 10:00:00+01', '2026-01-01 10:00:20+01', '2026-01-01 10:00:40+01',
                             '2026-01-01 10:01:00+01']::timestamptz[],
          'minutely with BYSECOND: every 20 seconds')
  FROM reminder.rrule_occurrences('FREQ=MINUTELY;BYSECOND=0,20,40', '2026-01-01 10:00', 'Europe/Warsaw', 4) o;
SELECT is(array_agg(o), ARRAY['2026-01-01 09:00+01', '2026-01-01 09:30+01', '2026-01-01 10:00+01',
                             '2026-01-01 10:30+01', '2026-01-02 09:00+01']::timestamptz[],
          'every 30 minutes from 9 to 10:30 (HOURLY with BYHOUR and BYMINUTE)')
  FROM reminder.rrule_occurrences('FREQ=HOURLY;BYHOUR=9,10;BYMINUTE=0,30', '2026-01-01 08:00', 'Europe/Warsaw', 5) o;
SELECT is(array_agg(o), ARRAY['2026-01-05 09:00+01', '2026-01-19 09:00+01']::timestamptz[],
          'every other week on Monday, lower case and an RRULE: prefix accepted')
  FROM reminder.rrule_occurrences('RRULE:freq=weekly;interval=2;byday=mo;byhour=9', '2026-01-05 08:00', 'Europe/Warsaw', 2) o;
SELECT is(array_agg(o), ARRAY['2026-01-01 10:00+01', '2026-01-02 10:00+01']::timestamptz[],
          'the time zone defaults to the session''s')
  FROM reminder.rrule_occurrences('FREQ=DAILY', '2026-01-01 10:00', n => 2) o;

-- a business calendar leaves out days off; COUNT counts what is left
INSERT INTO reminder.calendar (name, weekend) VALUES ('rc_pl', '{6,7}');
INSERT INTO reminder.holiday (calendar, day, name) VALUES ('rc_pl', '2026-11-11', 'Independence Day');
SELECT is(array_agg(o), ARRAY['2026-11-10 09:00+01', '2026-11-12 09:00+01', '2026-11-13 09:00+01',
                             '2026-11-16 09:00+01']::timestamptz[],
          'daily at 9:00 on business days: the holiday and the weekend are left out')
  FROM reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=9;COUNT=4', '2026-11-10 08:00', 'Europe/Warsaw', 10,
                                  calendar => 'rc_pl') o;

-- ---------------------------------------------------------------------------
-- Bad rules: a SQLSTATE and a hint
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAYLY', now())$$, '22023',
                 'invalid RRULE "FREQ=DAYLY"', 'an unknown FREQ is refused (22023)');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('BYHOUR=9', now())$$, '22023',
                 'invalid RRULE "BYHOUR=9"', 'FREQ is required');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=24', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;BYHOUR=24"', 'an hour out of range');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;COUNT=3;UNTIL=20270101', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;COUNT=3;UNTIL=20270101"', 'COUNT and UNTIL together');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=WEEKLY;BYDAY=1MO', now())$$, '22023',
                 'invalid RRULE "FREQ=WEEKLY;BYDAY=1MO"', 'an ordinal BYDAY outside MONTHLY');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;UNTIL=20260230', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;UNTIL=20260230"', 'an UNTIL that is no date');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;INTERVAL=0', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;INTERVAL=0"', 'INTERVAL=0');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;COUNT=1001', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;COUNT=1001"', 'COUNT above 1000');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=9;;', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;BYHOUR=9;;"', 'a stray separator');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;;BYHOUR=9,,10', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;;BYHOUR=9,,10"', 'an empty part');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY;BYHOUR=9,,10', now())$$, '22023',
                 'invalid RRULE "FREQ=DAILY;BYHOUR=9,,10"', 'an empty list item');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=YEARLY', now())$$, '0A000',
                 'RRULE part FREQ=YEARLY is not supported', 'FREQ=YEARLY: valid RFC 5545, not supported (0A000)');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=MONTHLY;BYSETPOS=1', now())$$, '0A000',
                 'RRULE part BYSETPOS is not supported', 'BYSETPOS is not supported either');
SELECT throws_ok($$SELECT reminder.rrule_occurrences('FREQ=DAILY', now(), 'Mars/Olympus')$$, '22023', NULL,
                 'an unknown time zone');

-- ---------------------------------------------------------------------------
-- watch(): every bad input refused, nothing written
-- ---------------------------------------------------------------------------
SELECT reminder.create_channel('mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "office@example.com"}');
SELECT reminder.create_channel('rc_log', 'log');
SELECT reminder.create_template('task_open', 'Still open: {{row.title}}', 'Task reminder');
CREATE TABLE rc_t (id int PRIMARY KEY, starts_at timestamptz, done boolean NOT NULL DEFAULT false, note text);

CREATE FUNCTION pg_temp.refused(call text, state text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    rules bigint := (SELECT count(*) FROM reminder.rule);
    triggers bigint := (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'rc_t'::regclass);
    got text;
BEGIN
    BEGIN
        EXECUTE call;
    EXCEPTION WHEN OTHERS THEN
        got := SQLSTATE;
    END;
    IF got IS DISTINCT FROM state THEN
        RETURN 'SQLSTATE ' || coalesce(got, 'none');
    END IF;
    IF (SELECT count(*) FROM reminder.rule) <> rules
       OR (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'rc_t'::regclass) <> triggers THEN
        RETURN 'something was written';
    END IF;
    RETURN 'refused';
END
$f$;

SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    rrule => 'FREQ=DAYLY', channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '22023'),
    'refused', 'watch(): a bad RRULE is 22023, nothing written');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '22004'),
    'refused', 'watch(): a recurring rule without rrule is 22004');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    rrule => 'FREQ=YEARLY', channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '0A000'),
    'refused', 'watch(): a part left out of the subset is 0A000');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    rrule => 'FREQ=DAILY;UNTIL=20200101', channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '22023'),
    'refused', 'watch(): a series that is over (UNTIL passed) is 22023');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    rrule => 'FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30', channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '22023'),
    'refused', 'watch(): a series that never occurs is 22023');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    rrule => 'FREQ=DAILY', offsets => '{1 hour}', channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '22023'),
    'refused', 'watch(): offsets are not for recurring rules');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    rrule => 'FREQ=DAILY', channel => 'rc_log', template => 'task_open', if_past => 'send', recipients => '{}')$$, '22023'),
    'refused', 'watch(): if_past => send is not for recurring rules');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'starts_at',
    rrule => 'FREQ=DAILY', channel => 'rc_log', templates => '["task_open"]', recipients => '{}')$$, '22023'),
    'refused', 'watch(): templates are not for recurring rules');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'recurring', column_name => 'note',
    rrule => 'FREQ=DAILY', channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '42804'),
    'refused', 'watch(): the start column must be a point in time');
SELECT is(pg_temp.refused($$SELECT reminder.watch('rc_t', 'after', column_name => 'starts_at',
    rrule => 'FREQ=DAILY', channel => 'rc_log', template => 'task_open', recipients => '{}')$$, '22023'),
    'refused', 'watch(): rrule is only for recurring rules');

-- ---------------------------------------------------------------------------
-- The example of docs/rules.md: every weekday at 9:00 until the task is done
-- ---------------------------------------------------------------------------
CREATE TABLE task (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text NOT NULL,
    assignee    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
SELECT reminder.watch('task', 'recurring', name => 'task_nag',
    column_name => 'created_at',
    rrule => 'FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0',
    time_zone => 'Europe/Warsaw', business_days => true,
    stop_condition => 'done_at IS NOT NULL',
    channel => 'mail', template => 'task_open',
    recipients => '{"to": {"email": {"expr": "assignee"}}}') AS rule_id \gset
INSERT INTO task (title, assignee) VALUES ('Send the contract', 'ada@example.com');

SELECT is((SELECT array_agg(due_at) FROM reminder.message WHERE rule_id = :rule_id AND status = 'scheduled'),
          (SELECT array_agg(o) FROM reminder.rrule_occurrences('FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0',
                                                              now(), 'Europe/Warsaw', 1, calendar => 'default') o),
          'one message: the next weekday at 9:00 in Warsaw');
SELECT is((SELECT extract(hour FROM due_at AT TIME ZONE 'Europe/Warsaw') FROM reminder.message WHERE rule_id = :rule_id),
          9::numeric, '...at 9:00 local time');
SELECT matches((SELECT idempotency_key FROM reminder.message WHERE rule_id = :rule_id),
               '^rule:' || :rule_id || ':1:0:0:\d{8}T\d{6}Z$', 'keyed by rule, row, recipient and the occurrence in UTC');
SELECT is((SELECT data FROM reminder.message WHERE rule_id = :rule_id), '{}'::jsonb,
          'the message keeps no copy of the row: it is read when sent');
SELECT is((SELECT verdict FROM reminder.gate_check((SELECT id FROM reminder.message WHERE rule_id = :rule_id))),
          'send', 'gate_check(): it would go out');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :rule_id), 1::bigint,
          'gate_check() decides without scheduling the next occurrence');

-- writing the row again changes nothing; an unrelated column neither
UPDATE task SET title = title;
UPDATE task SET title = 'Send the signed contract';
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :rule_id), 1::bigint,
          'writes that leave the series as it was make no second message');

-- moving the start moves the pending occurrence
UPDATE task SET created_at = date_trunc('day', now() AT TIME ZONE 'Europe/Warsaw') AT TIME ZONE 'Europe/Warsaw'
                             + interval '20 days';
SELECT is((SELECT array_agg(status || ' ' || coalesce(last_error, '') ORDER BY id) FROM reminder.message WHERE rule_id = :rule_id),
          ARRAY['cancelled rule: row changed', 'scheduled '],
          'a new start cancels the pending occurrence and schedules the first of the new series');
SELECT is((SELECT due_at FROM reminder.message WHERE rule_id = :rule_id AND status = 'scheduled'),
          (SELECT o FROM reminder.rrule_occurrences('FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0',
                                                   (SELECT created_at FROM task), 'Europe/Warsaw', 1, calendar => 'default') o),
          '...on the first weekday from the new start');

-- a new assignee: the pending occurrence is readdressed in place
SELECT id AS pending_id FROM reminder.message WHERE rule_id = :rule_id AND status = 'scheduled' \gset
UPDATE task SET assignee = 'bob@example.com';
SELECT is((SELECT array_agg(id || ' ' || (recipient->>'email')) FROM reminder.message WHERE rule_id = :rule_id AND status = 'scheduled'),
          ARRAY[:pending_id || ' bob@example.com'], 'a new assignee: the same pending message, to the new address');

-- done: the stop condition cancels it
UPDATE task SET done_at = now();
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :rule_id AND status = 'scheduled'), 0::bigint,
          'the task is done: nothing pending');
-- and reopening it brings the occurrence back
UPDATE task SET done_at = NULL;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :rule_id AND status = 'scheduled'), 1::bigint,
          'reopened: the occurrence is back');
DELETE FROM task;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :rule_id AND status = 'scheduled'), 0::bigint,
          'a deleted row cancels it');

-- a series that is over schedules nothing
INSERT INTO rc_t VALUES (1, now() - interval '10 days', false, NULL);
SELECT reminder.watch('rc_t', 'recurring', name => 'rc_count', column_name => 'starts_at',
    rrule => 'FREQ=DAILY;COUNT=3', channel => 'rc_log', template => 'task_open',
    recipients => '{}', backfill => true) AS count_rule \gset
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :count_rule), 0::bigint,
          'COUNT=3 started ten days ago: the series is over, nothing scheduled (backfill)');
INSERT INTO rc_t VALUES (2, now() + interval '1 hour', false, NULL);
SELECT is((SELECT due_at FROM reminder.message WHERE rule_id = :count_rule), date_trunc('second', now() + interval '1 hour'),
          'a row starting in an hour: its first occurrence is its start (in whole seconds)');

SELECT * FROM finish();
ROLLBACK;
