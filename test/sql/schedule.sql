-- The outbox: schedule, send, cancel, reschedule; idempotency keys; stored
-- and inline recipients; required variables; and the bad inputs that must
-- change nothing.
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned
\pset tuples_only on

SELECT reminder.create_channel('sc_log', 'log');
SELECT reminder.create_channel('sc_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "noreply@example.com"}');
SELECT reminder.create_channel('sc_sms', 'sms', '{"provider": "smsapi", "from": "Info", "default_country_code": "48"}', '{"token": "t"}');
SELECT reminder.create_channel('sc_hook', 'webhook', '{"url": "http://127.0.0.1:9/hook"}');
SELECT reminder.create_template('sc_hello', 'Hello {{name}}', subject => 'Hi {{name}}');
SELECT reminder.create_template('sc_strict', 'Meeting at {{row.starts_at}} with {{recipient.name}}',
                                required => ARRAY['row.starts_at', 'recipient.name']);
INSERT INTO reminder.recipient (external_id, name, email, phone, time_zone, locale)
VALUES ('client-42', 'Ada Lovelace', 'ada@example.com', '601 234 567', 'Europe/Warsaw', 'pl-PL');

-- schedule returns the id; the row carries what was asked
SELECT reminder.schedule('sc_log', '{"name": "Ada"}', 'sc_hello', '2030-01-01 10:00+00', '{"name": "Ada"}') AS id1 \gset
SELECT channel, recipient, template, data, status, due_at = next_attempt_at, attempts, length(idempotency_key) > 0
  FROM reminder.message WHERE id = :id1;

-- the same idempotency key returns the same id and creates nothing
SELECT reminder.schedule('sc_log', '{}', 'sc_hello', now(), '{"name": "x"}', 'sc-key-1') AS id2 \gset
SELECT reminder.schedule('sc_log', '{}', 'sc_hello', now(), '{"name": "y"}', 'sc-key-1') = :id2;
SELECT count(*), min(data->>'name') FROM reminder.message WHERE idempotency_key = 'sc-key-1';

-- send is schedule for now
SELECT reminder.send('sc_log', '{}', 'sc_hello', '{"name": "now"}') AS id3 \gset
SELECT due_at BETWEEN now() - interval '1 minute' AND now() FROM reminder.message WHERE id = :id3;

-- a stored recipient by external_id, with inline keys overriding; its
-- phone normalised to E.164 for SMS with the channel's country code
SELECT reminder.schedule('sc_sms', '{"external_id": "client-42", "name": "Ada L."}', 'sc_hello') AS id4 \gset
SELECT recipient_id IS NOT NULL, recipient->>'phone', recipient->>'name', recipient->>'time_zone'
  FROM reminder.message WHERE id = :id4;
SELECT reminder.schedule('sc_sms', '{"phone": "0048 (601) 234-567"}', 'sc_hello') AS id5 \gset
SELECT reminder.schedule('sc_sms', '{"phone": "+1 212 555 0100"}', 'sc_hello') AS id6 \gset
SELECT id = :id5, recipient->>'phone' FROM reminder.message WHERE id IN (:id5, :id6) ORDER BY id;

-- required variables present
SELECT reminder.schedule('sc_log', '{"name": "Ada"}', 'sc_strict', now(), '{"row": {"starts_at": "2030-01-01T10:00:00Z"}}') > 0;

-- priority: the message's, else its channel's "priority", else normal
SELECT reminder.create_channel('sc_urgent', 'log', '{"priority": "high"}');
CREATE TEMP TABLE sc_prio AS SELECT * FROM (VALUES
    (reminder.schedule('sc_log', '{}', 'sc_hello', now(), '{}', NULL, NULL, 'high')),
    (reminder.send('sc_log', '{}', 'sc_hello', priority => 'LOW')),
    (reminder.send('sc_log', '{}', 'sc_hello')),
    (reminder.send('sc_urgent', '{}', 'sc_hello')),
    (reminder.send('sc_urgent', '{}', 'sc_hello', priority => 'normal'))) v(id);
SELECT m.channel, m.priority FROM sc_prio JOIN reminder.message m USING (id) ORDER BY m.id;

-- cancel and reschedule
SELECT reminder.cancel(:id1);
SELECT reminder.cancel(:id1);
SELECT status FROM reminder.message WHERE id = :id1;
SELECT reminder.reschedule(:id2, '2031-06-01 12:00+00');
SELECT status, due_at = '2031-06-01 12:00+00', next_attempt_at = due_at FROM reminder.message WHERE id = :id2;
UPDATE reminder.message SET status = 'sent', sent_at = now(), next_attempt_at = NULL WHERE id = :id3;

-- bad input: each refused with its SQLSTATE, and nothing written
SELECT count(*) AS messages_before FROM reminder.message \gset
SELECT pg_temp.try($$SELECT reminder.schedule('nope', '{}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.send('sc_log', '{}', 'sc_hello', priority => 'urgent')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('sc_bad', 'log', '{"priority": "top"}')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'nope')$$);
SELECT pg_temp.try($$SELECT reminder.schedule(NULL, '{}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', NULL, 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', NULL)$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'sc_hello', NULL)$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'sc_hello', 'infinity')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '[]', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'sc_hello', now(), '[1, 2]')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'sc_hello', now(), '{}', '')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'sc_hello', now(), '{}', E'key\r\nX-Injected: 1')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_mail', '{}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_mail', '{"email": "ada@@example.com"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_mail', '{"email": "ada@localhost"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_mail', '{"email": "ada@example.com\nBcc: x@example.com"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_mail', '{"email": "ada@example.com", "bcc": ["ok@example.com", "broken"]}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_mail', '{"email": "ada@example.com", "name": "Ada\r\nBcc: x@example.com"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_sms', '{}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_sms', '{"phone": "call me"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_sms', '{"phone": "+48 12"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_sms', '{"phone": 601234567}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_hook', '{"url": "gopher://127.0.0.1/"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{"time_zone": "Mars/Olympus_Mons"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{"locale": "Polish"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{"external_id": "nobody"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{"id": "x"}', 'sc_hello')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{"name": "Ada"}', 'sc_strict', now(), '{}')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'sc_strict', now(), '{"row": {"starts_at": "x"}}')$$);
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{"name": "Ada"}', 'sc_strict', now(), '{"row": {"starts_at": null}}')$$);
SET reminder.max_payload_size = '1kB';
SELECT pg_temp.try($$SELECT reminder.schedule('sc_log', '{}', 'sc_hello', now(), jsonb_build_object('blob', repeat('x', 2000)))$$);
RESET reminder.max_payload_size;
SELECT regexp_replace(pg_temp.try(format('SELECT reminder.cancel(%s)', :id3)), 'message \d+', 'message N');
SELECT pg_temp.try($$SELECT reminder.cancel(-1)$$);
SELECT regexp_replace(pg_temp.try(format('SELECT reminder.reschedule(%s, now())', :id3)), 'message \d+', 'message N');
SELECT pg_temp.try(format('SELECT reminder.reschedule(%s, NULL)', :id2));
SELECT regexp_replace(pg_temp.try(format('SELECT reminder.reschedule(%s, now())', :id1)), 'message \d+', 'message N');
SELECT count(*) = :messages_before AS nothing_written FROM reminder.message;

-- templates: bad input
SELECT pg_temp.try($$SELECT reminder.create_template('sc bad', 'x')$$);
SELECT pg_temp.try($$SELECT reminder.create_template('sc_x', NULL)$$);
SELECT pg_temp.try($$SELECT reminder.create_template('sc_x', 'x', locale => 'english')$$);
SELECT pg_temp.try($$SELECT reminder.create_template('sc_x', 'x', subject => E'Hi\r\nBcc: x@example.com')$$);
SELECT pg_temp.try($$SELECT reminder.create_template('sc_x', 'x', required => ARRAY['a..b'])$$);
SELECT pg_temp.try($$SELECT reminder.create_template('sc_x', 'x', required => ARRAY[NULL])$$);
SET reminder.max_payload_size = '1kB';
SELECT pg_temp.try($$SELECT reminder.create_template('sc_x', repeat('x', 2000))$$);
RESET reminder.max_payload_size;
SELECT pg_temp.try($$SELECT reminder.drop_template('sc_x')$$);
SELECT pg_temp.try($$SELECT reminder.drop_template('sc_hello', 'de')$$);
SELECT count(*) FROM reminder.template WHERE name = 'sc_x';

-- clean up
SELECT reminder.drop_channel(c, cascade => true) FROM unnest(ARRAY['sc_log', 'sc_mail', 'sc_sms', 'sc_hook']) c;
SELECT reminder.drop_template(t) FROM unnest(ARRAY['sc_hello', 'sc_strict']) t;
DELETE FROM reminder.recipient WHERE external_id = 'client-42';
