-- Digests, the SQL side: which items share a digest, when a digest goes
-- out ("window" from the first item, or "at" a time of day in the
-- recipient's zone, DST included), what max_items does, a digest whose
-- message is gone, and who may add items.  Refusals are pinned in
-- test/sql/digest.sql; the worker's side (items collected, checked again
-- and sent as one e-mail) is test/t/040_digest.pl.
\ir setup.psql

BEGIN;
SELECT plan(30);

SELECT reminder.create_channel('dg_log', 'log');
SELECT reminder.create_channel('dg_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_template('dg_t', '{{count}}:{{#items}} {{title}}{{/items}}', 'Digest');

CREATE FUNCTION pg_temp.add(recipient jsonb, spec jsonb, title text, channel text DEFAULT 'dg_mail')
RETURNS bigint LANGUAGE sql
RETURN reminder.add_to_digest(channel, recipient, 'dg_t', spec, jsonb_build_object('title', title));

-- ----------------------------------------------------------------------
-- When a digest goes out
-- ----------------------------------------------------------------------
SELECT is(reminder._digest_send_at('{"window": "90 minutes"}', 'UTC', '2026-06-01 10:00+00'),
          '2026-06-01 11:30+00', 'a window: that long after the first item');
SELECT is(reminder._digest_send_at('{"at": "08:00"}', 'Europe/Warsaw', '2026-06-01 05:59+00'),
          '2026-06-01 08:00+02', '"at": the same day if the time is still ahead in the zone');
SELECT is(reminder._digest_send_at('{"at": "08:00"}', 'Europe/Warsaw', '2026-06-01 06:00+00'),
          '2026-06-02 08:00+02', '... the next day from that time on');
SELECT is(reminder._digest_send_at('{"at": "08:00"}', 'Europe/Warsaw', '2026-03-28 12:00+01'),
          '2026-03-29 08:00+02', '... across the change to summer time: 08:00 local, 06:00 UTC');
SELECT is(reminder._digest_send_at('{"at": "08:00"}', 'Europe/Warsaw', '2026-10-24 12:00+02'),
          '2026-10-25 08:00+01', '... and back to winter time: 08:00 local, 07:00 UTC');
SELECT is(reminder._digest_send_at('{"at": "08:00"}', 'America/New_York', '2026-06-01 10:00+00'),
          '2026-06-01 08:00-04', '... in the zone given, not the server''s');
SELECT is(reminder._digest_send_at('{"at": "09:00", "days": [1]}', 'Europe/Warsaw', '2026-06-02 12:00+02'),
          '2026-06-08 09:00+02', '"days": [1]: the next Monday');
SELECT is(reminder._digest_send_at('{"at": "09:00", "days": [1, 2, 3, 4, 5]}', 'Europe/Warsaw', '2026-06-05 10:00+02'),
          '2026-06-08 09:00+02', 'weekdays: Friday after 9:00 goes to Monday');

-- through add_to_digest(): the recipient's zone, else the digest's
SELECT pg_temp.add('{"email": "tokyo@example.com", "time_zone": "Asia/Tokyo"}',
                   '{"key": "morning", "at": "08:00", "time_zone": "Europe/Warsaw"}', 'x') AS tokyo \gset
SELECT pg_temp.add('{"email": "warsaw@example.com"}', '{"key": "morning", "at": "08:00", "time_zone": "Europe/Warsaw"}', 'x') AS warsaw \gset
SELECT is((SELECT (due_at AT TIME ZONE 'Asia/Tokyo')::time FROM reminder.message WHERE id = :tokyo), '08:00',
          'a digest goes out at its time in the recipient''s zone');
SELECT is((SELECT (due_at AT TIME ZONE 'Europe/Warsaw')::time FROM reminder.message WHERE id = :warsaw), '08:00',
          '... or in the digest''s time_zone when the recipient has none');
SELECT ok((SELECT due_at > now() AND due_at <= now() + interval '1 day' FROM reminder.message WHERE id = :warsaw),
          '... the next such time');

-- ----------------------------------------------------------------------
-- Which items share a digest
-- ----------------------------------------------------------------------
SELECT pg_temp.add('{"email": "Ada@Example.com"}', '{"key": "k", "window": "1 hour"}', 'one') AS ada \gset
SELECT is(pg_temp.add('{"email": "ada@example.com", "name": "Ada"}', '{"key": "k", "window": "1 hour"}', 'two'), :ada::bigint,
          'the same key, channel and address (in any case): the same digest');
SELECT isnt(pg_temp.add('{"email": "bob@example.com"}', '{"key": "k", "window": "1 hour"}', 'x'), :ada::bigint,
            'another address: another digest');
SELECT isnt(pg_temp.add('{"email": "ada@example.com"}', '{"key": "other", "window": "1 hour"}', 'x'), :ada::bigint,
            'another key: another digest');
SELECT isnt(pg_temp.add('{"name": "Ada"}', '{"key": "k", "window": "1 hour"}', 'x', 'dg_log'), :ada::bigint,
            'another channel: another digest');
SELECT results_eq(format($$SELECT data ->> 'title' FROM reminder.digest_item
                           WHERE digest_id = (SELECT id FROM reminder.digest WHERE message_id = %s) ORDER BY id$$, :ada),
                  ARRAY['one', 'two'], 'its items, in the order they came');
SELECT is((SELECT recipient_key FROM reminder.digest WHERE message_id = :ada),
          'sha256:' || encode(sha256('ada@example.com'), 'hex'), 'the digest keeps a hash of the address, not the address');

-- ----------------------------------------------------------------------
-- render(message_id): the digest as it would go out now, changing nothing
-- ----------------------------------------------------------------------
SELECT is((SELECT body FROM reminder.render(:ada)), '2: one two', 'render() of a digest message lists its items');
SELECT reminder.add_to_digest('dg_mail', '{"email": "ola@example.com"}', 'dg_t', '{"key": "k", "window": "1 hour"}',
                              '{"title": "invoice"}');
SELECT reminder.add_to_digest('dg_mail', '{"email": "ola@example.com"}', 'dg_t', '{"key": "k", "window": "1 hour"}',
                              '{"title": "sale"}', 'promotions') AS ola \gset
SELECT reminder.add_to_digest('dg_mail', '{"email": "ola@example.com"}', 'dg_t', '{"key": "promo", "window": "1 hour"}',
                              '{"title": "sale"}', 'promotions') AS ola_promo \gset
SELECT reminder.opt_out('{"email": "ola@example.com"}', category => 'promotions');
SELECT is((SELECT body FROM reminder.render(:ola)), '1: invoice',
          '... without the items the recipient opted out of');
SELECT throws_ok(format('SELECT * FROM reminder.render(%s)', :ola_promo), 'P0002',
                 format('message %s would not be sent: digest: no items left (1 left out)', :ola_promo),
                 'a digest with no items left would not be sent');
SELECT ok((SELECT bool_and(d.closed_at IS NULL AND i.dropped IS NULL)
             FROM reminder.digest d JOIN reminder.digest_item i ON i.digest_id = d.id
            WHERE d.message_id IN (:ola, :ola_promo)),
          'render() closes no digest and marks no item');

-- ----------------------------------------------------------------------
-- max_items: "send" sends a full digest now and starts another
-- ----------------------------------------------------------------------
SELECT pg_temp.add('{"email": "full@example.com"}', '{"key": "k", "at": "08:00", "max_items": 2}', 'a') AS full1 \gset
SELECT is(pg_temp.add('{"email": "full@example.com"}', '{"key": "k", "at": "08:00", "max_items": 2}', 'b'), :full1::bigint,
          'the second item joins the first');
SELECT ok((SELECT due_at <= now() AND status = 'scheduled' FROM reminder.message WHERE id = :full1),
          'a digest that reaches max_items is due at once');
SELECT ok((SELECT closed_at IS NOT NULL FROM reminder.digest WHERE message_id = :full1), '... and takes no more items');
SELECT isnt(pg_temp.add('{"email": "full@example.com"}', '{"key": "k", "at": "08:00", "max_items": 2}', 'c'), :full1::bigint,
            'the next item starts a new digest');

-- "error" refuses the item, and writes nothing
SELECT pg_temp.add('{"email": "strict@example.com"}', '{"key": "k", "at": "08:00", "max_items": 1, "overflow": "error"}', 'a');
SELECT throws_ok($$SELECT pg_temp.add('{"email": "strict@example.com"}', '{"key": "k", "at": "08:00", "max_items": 1, "overflow": "error"}', 'b')$$,
                 '54000', 'digest "k" is full', 'a full digest refuses an item with "overflow": "error"');

-- ----------------------------------------------------------------------
-- A digest whose message was cancelled takes no more items
-- ----------------------------------------------------------------------
SELECT pg_temp.add('{"email": "gone@example.com"}', '{"key": "k", "window": "1 hour"}', 'a') AS gone \gset
SELECT reminder.cancel(:gone);
SELECT isnt(pg_temp.add('{"email": "gone@example.com"}', '{"key": "k", "window": "1 hour"}', 'b'), :gone::bigint,
            'after its message is cancelled the next item opens a new digest');
SELECT ok((SELECT closed_at IS NOT NULL FROM reminder.digest WHERE message_id = :gone), '... and the old one is closed');

-- ----------------------------------------------------------------------
-- Who may
-- ----------------------------------------------------------------------
SELECT ok(has_function_privilege('reminder_user', 'reminder.add_to_digest(text, jsonb, text, jsonb, jsonb, text)', 'EXECUTE')
          AND has_table_privilege('reminder_user', 'reminder.digest', 'SELECT')
          AND has_table_privilege('reminder_user', 'reminder.digest_item', 'SELECT'),
          'reminder_user may add items and read digests');
SELECT ok(NOT has_function_privilege('reminder_web', 'reminder.add_to_digest(text, jsonb, text, jsonb, jsonb, text)', 'EXECUTE')
          AND NOT has_function_privilege('reminder_user', 'reminder._digest_collect(jsonb, text, jsonb, text, jsonb, text, bigint, text, bigint)', 'EXECUTE')
          AND NOT has_table_privilege('reminder_user', 'reminder.digest', 'INSERT'),
          'nobody else, and nobody writes the tables but through add_to_digest()');

SELECT * FROM finish();
ROLLBACK;
