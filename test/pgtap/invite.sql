-- Calendar invites that follow the row (docs/rules.md, "Calendar invites"):
-- the seed example of the docs, the state the watch trigger keeps in
-- reminder.invite (SEQUENCE raised by every change, cancelled with the
-- row), the notices it schedules at once (invitation, update,
-- cancellation), and bad "invite" values, refused with nothing written.
-- What the worker sends (the iCalendar itself) is checked through a real
-- SMTP server and parser in test/t/098_invite.pl.
\ir setup.psql

BEGIN;
SELECT plan(44);

SET LOCAL TimeZone = 'UTC';
SELECT reminder.create_channel('mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "office@example.com"}');

-- ---------------------------------------------------------------------------
-- The seed example, as docs/rules.md shows it
-- ---------------------------------------------------------------------------
SELECT reminder.create_template('appointment',
    'Your appointment "{{row.title}}" is on {{row.starts_at | datetime}}.', 'Appointment: {{row.title}}');
SELECT reminder.create_template('appointment_cancelled',
    'Your appointment "{{row.title}}" is cancelled.', 'Cancelled: {{row.title}}');

CREATE TABLE appointment (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title        text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz,
    room         text,
    client_name  text,
    client_email text NOT NULL,
    cancelled    boolean NOT NULL DEFAULT false,
    notes        text
);

SELECT reminder.watch('appointment', 'before', name => 'appointment_invites',
    column_name => 'starts_at', channel => 'mail', template => 'appointment',
    condition => 'NOT cancelled',
    recipients => '{"role": "client", "offsets": ["1 day"],
                    "to": {"email": {"expr": "client_email"}, "name": {"expr": "client_name"}},
                    "invite": {"summary": {"expr": "title"}, "end": "ends_at", "location": {"expr": "room"},
                               "organizer": "Front desk <office@example.com>",
                               "cancel_template": "appointment_cancelled"}}') AS rule \gset

INSERT INTO appointment (title, starts_at, ends_at, room, client_name, client_email)
VALUES ('Check-up', '2030-03-04 10:00+00', '2030-03-04 10:30+00', 'Room 2', 'Ada', 'ada@example.com');

CREATE FUNCTION pg_temp.state(row_id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT sequence || CASE WHEN cancelled THEN ' cancelled' ELSE '' END || ' ' || (invite->>'start')
      FROM reminder.invite WHERE source_key = row_id::text
$$;
CREATE FUNCTION pg_temp.notices(row_id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(regexp_replace(idempotency_key, '^.*:', '') || ' ' || status || ' ' || template
                      || coalesce(' ' || (data->'invite'->>'method'), ''), ', ' ORDER BY id)
      FROM reminder.message WHERE source_key = row_id::text
$$;
CREATE FUNCTION pg_temp.fake_sent(row_id bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE reminder.message SET status = 'sent', next_attempt_at = NULL, sent_at = now()
     WHERE source_key = row_id::text AND status = 'scheduled' AND idempotency_key ~ ':i[0-9]+$';
    UPDATE reminder.invite SET sent_sequence = sequence, sent_at = now() WHERE source_key = row_id::text;
$$;

SELECT is((SELECT recipients->0->'invite' FROM reminder.rule WHERE id = :rule),
    '{"end": {"expr": "ends_at"}, "start": {"expr": "starts_at"}, "summary": {"expr": "title"}, "duration": "01:00:00",
      "location": {"expr": "room"}, "organizer": "Front desk <office@example.com>", "cancel_template": "appointment_cancelled"}',
    'the invite is stored normalized: start defaults to the rule''s column, times are expressions');
SELECT is((SELECT invite FROM reminder.invite WHERE source_key = '1'),
    '{"end": "20300304T103000Z", "start": "20300304T100000Z", "summary": "Check-up", "location": "Room 2",
      "organizer": "Front desk <office@example.com>"}',
    'the row''s event is kept in reminder.invite, times in UTC');
SELECT is(pg_temp.state(1), '0 20300304T100000Z', 'at SEQUENCE 0');
SELECT is(pg_temp.notices(1), '0 scheduled appointment, i0 scheduled appointment REQUEST',
    'the reminder a day before, and the invitation at once');
SELECT ok((SELECT due_at <= clock_timestamp() FROM reminder.message WHERE idempotency_key LIKE '%:i0'), 'the invitation is due now');
SELECT is((SELECT data->'invite'->>'sequence' FROM reminder.message WHERE idempotency_key LIKE '%:1:0:i0'), '0',
    'its template sees the event: {{invite.sequence}}, {{invite.method}}, {{invite.summary}} ...');

UPDATE appointment SET notes = 'bring the results' WHERE id = 1;
SELECT is(pg_temp.state(1), '0 20300304T100000Z', 'a write that leaves the event as it was changes nothing');
SELECT is(pg_temp.notices(1), '0 scheduled appointment, i0 scheduled appointment REQUEST', 'and sends nothing');

UPDATE appointment SET starts_at = starts_at + interval '1 hour', ends_at = ends_at + interval '1 hour';
SELECT is(pg_temp.state(1), '1 20300304T110000Z', 'moving the row raises the SEQUENCE');
SELECT is(pg_temp.notices(1),
    '0 scheduled appointment, i0 cancelled appointment REQUEST, i1 scheduled appointment REQUEST',
    'an invitation not yet sent is replaced by the newer one');
SELECT is((SELECT last_error FROM reminder.message WHERE idempotency_key LIKE '%:1:0:i0'),
    'invite: superseded by sequence 1', 'saying so');

SELECT pg_temp.fake_sent(1);
UPDATE appointment SET room = 'Room 3';
SELECT is(pg_temp.state(1), '2 20300304T110000Z', 'a new room raises it too');
SELECT is((SELECT status || ' ' || (data->'invite'->>'location') FROM reminder.message
            WHERE idempotency_key LIKE '%:1:0:i2'), 'scheduled Room 3', 'and the update goes out at once');

SELECT pg_temp.fake_sent(1);
UPDATE appointment SET cancelled = true;
SELECT is(pg_temp.state(1), '3 cancelled 20300304T110000Z', 'cancelling the row cancels the event, SEQUENCE 3');
SELECT is((SELECT status || ' ' || template || ' ' || (data->'invite'->>'method') || ' ' || (data->'row'->>'title')
             FROM reminder.message WHERE idempotency_key LIKE '%:1:0:i3'),
    'scheduled appointment_cancelled CANCEL Check-up',
    'the cancellation goes out at once, with cancel_template and the row as it was');
SELECT is((SELECT status FROM reminder.message WHERE idempotency_key LIKE '%:1:0:0'), 'cancelled',
    'and the reminder is cancelled');

UPDATE appointment SET cancelled = false;
SELECT is(pg_temp.state(1), '4 20300304T110000Z', 'booking it again brings the event back, SEQUENCE 4');
SELECT is((SELECT status || ' ' || (data->'invite'->>'method') FROM reminder.message WHERE idempotency_key LIKE '%:1:0:i4'),
    'scheduled REQUEST', 'with a new invitation');
SELECT is((SELECT status FROM reminder.message WHERE idempotency_key LIKE '%:1:0:i3'), 'cancelled',
    'replacing the cancellation not yet sent');

SELECT pg_temp.fake_sent(1);
DELETE FROM appointment WHERE id = 1;
SELECT is(pg_temp.state(1), '5 cancelled 20300304T110000Z', 'deleting the row cancels the event, SEQUENCE 5');
SELECT is((SELECT status || ' ' || (data->'invite'->>'method') || ' ' || (recipient->>'email')
             FROM reminder.message WHERE idempotency_key LIKE '%:1:0:i5'),
    'scheduled CANCEL ada@example.com', 'the cancellation goes to where the invitation went');

-- Cancelled before anything went out: nobody has the event, nothing to say.
INSERT INTO appointment (title, starts_at, client_email) VALUES ('Quick', '2030-03-05 08:00+00', 'bob@example.com');
UPDATE appointment SET cancelled = true WHERE id = 2;
SELECT is(pg_temp.notices(2), '0 cancelled appointment, i0 cancelled appointment REQUEST',
    'an event cancelled before its invitation went out sends no cancellation');
SELECT is((SELECT invite->>'end' FROM reminder.invite WHERE source_key = '2'), '20300305T090000Z',
    'without an end the event lasts "duration" (default 1 hour)');

-- A past event needs no invitation.
INSERT INTO appointment (title, starts_at, client_email) VALUES ('Past', '2020-01-01 08:00+00', 'cy@example.com');
SELECT is(pg_temp.notices(3), NULL, 'an event that is over gets no invitation');

-- A timestamp column is read in the rule's time zone, like column_name.
CREATE TABLE local_visit (id int PRIMARY KEY, at timestamp NOT NULL, email text NOT NULL);
SELECT reminder.watch('local_visit', 'before', name => 'local_visit', column_name => 'at', channel => 'mail',
    template => 'appointment', time_zone => 'Europe/Warsaw', offsets => '{1 day}',
    recipients => '{"to": {"email": {"expr": "email"}}, "invite": {"summary": "Visit", "duration": "45 minutes"}}') AS local_rule \gset
INSERT INTO local_visit VALUES (1, '2030-01-15 10:00', 'dan@example.com');
SELECT is((SELECT invite->>'start' || ' ' || (invite->>'end') FROM reminder.invite i JOIN reminder.rule r ON r.id = i.rule_id
            WHERE r.name = 'local_visit'), '20300115T090000Z 20300115T094500Z',
    '10:00 in Warsaw is 09:00 UTC; "duration" sets the end');

-- TRUNCATE: no rows to tell about, but a row written again gets a new invitation.
TRUNCATE local_visit;
SELECT is((SELECT sequence || ' ' || cancelled FROM reminder.invite WHERE rule_id = :local_rule), '1 true',
    'TRUNCATE cancels the events, raising their SEQUENCE');
INSERT INTO local_visit VALUES (1, '2030-01-15 10:00', 'dan@example.com');
SELECT is((SELECT string_agg(regexp_replace(idempotency_key, '^.*:', '') || ' ' || status, ', ' ORDER BY id)
             FROM reminder.message WHERE rule_id = :local_rule AND idempotency_key ~ ':i[0-9]+$'),
    'i0 cancelled, i2 scheduled', 'the same row written again gets a new invitation at SEQUENCE 2');

-- DDL: renaming a column rewrites the invite, dropping it is refused.
ALTER TABLE appointment RENAME COLUMN ends_at TO finishes_at;
SELECT is((SELECT recipients->0->'invite'->'end' FROM reminder.rule WHERE id = :rule), '{"expr": "finishes_at"}',
    'renaming a column rewrites "end"');
SELECT throws_ok('ALTER TABLE appointment DROP COLUMN room', '2BP01', NULL, 'a column the invite reads cannot be dropped');

-- ---------------------------------------------------------------------------
-- Bad "invite": a clear SQLSTATE, and nothing written
-- ---------------------------------------------------------------------------
SELECT reminder.create_channel('audit', 'log');
CREATE FUNCTION pg_temp.try(invite text, kind text DEFAULT 'before', channel text DEFAULT 'mail') RETURNS void
LANGUAGE sql AS $$
    SELECT reminder.watch('appointment', kind, name => 'bad', column_name => CASE kind WHEN 'on_change' THEN 'title' ELSE 'starts_at' END,
        channel => channel, template => 'appointment',
        recipients => format('{"to": {"email": "ada@example.com"}, "offsets": ["1 day"], "invite": %s}', invite)::jsonb)
$$;
SELECT throws_ok($$SELECT pg_temp.try('{"location": "Room"}')$$, '22004',
    'recipients[0].invite.summary is missing', 'no summary');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x", "end": "title"}')$$, '42804',
    'recipients[0].invite.end must be of type timestamptz, timestamp or date, not text', 'an end that is no time');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x", "start": "nosuch"}')$$, '42703', NULL, 'an unknown column');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x", "duration": "-1 hour"}')$$, '22023',
    'recipients[0].invite.duration must be positive', 'a negative duration');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x", "duration": "soon"}')$$, '22007', NULL, 'a duration that is no interval');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x", "organizer": "Office\r\nBcc: x@example.com <o@example.com>"}')$$,
    '22023', NULL, 'an organizer with a line break (header injection)');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x", "colour": "red"}')$$, '22023',
    'unknown key "colour" in recipients[0].invite', 'an unknown key');
SELECT throws_ok($$SELECT pg_temp.try('"yes"')$$, '22023', 'recipients[0].invite must be a JSON object', 'not an object');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x"}', 'on_change')$$, '22023',
    'recipients[0].invite is for rules that follow their row', 'a rule that does not follow its row');
SELECT throws_ok($$SELECT pg_temp.try('{"summary": "x"}', 'before', 'audit')$$, '22023',
    'recipients[0].invite is only for email channels', 'a channel that is not email');
SELECT is((SELECT count(*) FROM reminder.rule WHERE name = 'bad'), 0::bigint, 'none of them made a rule');

SELECT throws_ok($$INSERT INTO appointment (title, starts_at, finishes_at, client_email)
                   VALUES ('Backwards', '2030-03-04 10:00+00', '2030-03-04 09:00+00', 'eve@example.com')$$,
    '22023', 'the invite of recipients[0] ends before it starts', 'a row whose event ends before it starts is refused');
SELECT is((SELECT count(*) FROM reminder.invite WHERE invite->>'summary' = 'Backwards'), 0::bigint,
    'and nothing of it is written');

SELECT lives_ok($$SELECT reminder.unwatch('appointment_invites')$$, 'unwatch');
SELECT is((SELECT count(*) FROM reminder.invite WHERE rule_id = :rule), 0::bigint, 'unwatch removes the rule''s events');

SELECT * FROM finish();
ROLLBACK;
