-- Inbound replies (reminder.record_inbound): provider signatures checked
-- against Twilio's documented example and an independent HMAC (pgcrypto's),
-- keywords to the consent log, replies to events on the sender's latest
-- message, the failure modes (each writes nothing), and has_event() in a
-- rule's stop condition.  docs/inbound.md.
\ir setup.psql

BEGIN;
SELECT plan(83);

-- An HMAC that is not ours, to sign requests as Twilio does:
-- Base64(HMAC-SHA1(token, url + each name and value, sorted by name)).
CREATE SCHEMA inbound_t;
CREATE EXTENSION pgcrypto SCHEMA inbound_t;
CREATE FUNCTION pg_temp.twilio_sig(url text, params jsonb, token text DEFAULT 'tw-token')
RETURNS text LANGUAGE sql AS $$
    SELECT encode(inbound_t.hmac(convert_to(url || coalesce(string_agg(k || v, '' ORDER BY k COLLATE "C"), ''), 'UTF8'),
                                 convert_to(token, 'UTF8'), 'sha1'), 'base64')
      FROM jsonb_each_text(params) AS p(k, v)
$$;
-- A Twilio request from a number with a text, signed.
CREATE FUNCTION pg_temp.tw(body text, sender text DEFAULT '+48601234567', sid text DEFAULT NULL)
RETURNS TABLE (action text, phone text, message_id bigint, event_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := jsonb_build_object('From', sender, 'To', '+48600000000', 'Body', body,
                                  'AccountSid', 'AC0123456789abcdef0123456789abcdef',
                                  'MessageSid', coalesce(sid, 'SM' || md5(random()::text)));
BEGIN
    RETURN QUERY SELECT * FROM reminder.record_inbound('tw', p, pg_temp.twilio_sig('https://hooks.example.com/sms/tw', p));
END
$$;
-- The action of a Twilio request.
CREATE FUNCTION pg_temp.tw_action(body text, sender text DEFAULT '+48601234567', sid text DEFAULT 'SMfixed')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := jsonb_build_object('From', sender, 'To', '+48600000000', 'Body', body, 'MessageSid', sid);
    a text;
BEGIN
    SELECT action INTO a FROM reminder.record_inbound('tw', p,
        pg_temp.twilio_sig('https://hooks.example.com/sms/tw', p));
    RETURN a;
END
$$;
-- Rows the inbound path could write.
CREATE FUNCTION pg_temp.writes() RETURNS bigint LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM reminder.consent_log) + (SELECT count(*) FROM reminder.event)
         + (SELECT count(*) FROM reminder.consent)
$$;
-- A message as the worker leaves it once sent.
CREATE FUNCTION pg_temp.sent(channel text, phone text, ago interval DEFAULT '1 minute') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    mid bigint := reminder.schedule(channel, jsonb_build_object('phone', phone), 'in_tpl', now() + interval '1 day');
BEGIN
    UPDATE reminder.message SET status = 'sent', sent_at = now() - ago, next_attempt_at = NULL WHERE id = mid;
    RETURN mid;
END
$$;

SELECT reminder.create_channel('tw', 'sms',
    '{"provider": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef", "from": "+48600000000",
      "inbound_url": "https://hooks.example.com/sms/tw"}',
    '{"auth_token": "tw-token"}');
SELECT reminder.create_channel('sa', 'sms',
    '{"provider": "smsapi", "from": "Gabinet", "default_country_code": "48", "inbound_window": "2 days"}',
    '{"token": "sa-token", "inbound_secret": "s3cret-in-the-callback-url"}');
SELECT reminder.create_template('in_tpl', 'Wizyta jutro. Odpowiedz TAK lub NIE.');

-- ---------------------------------------------------------------------
-- Twilio's signature
-- ---------------------------------------------------------------------
SELECT is(pg_temp.twilio_sig('https://mycompany.com/myapp.php?foo=1&bar=2',
              '{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
                "From": "+12349013030", "To": "+18005551212"}', '12345'),
          '0/KCTR6DLpKmkAf8muzZqo1nDgQ=',
          'the independent HMAC gives the signature of Twilio''s documented example');

SELECT reminder.create_channel('tw_doc', 'sms',
    '{"provider": "twilio", "account_sid": "ACdoc", "from": "+18005551212",
      "inbound_url": "https://mycompany.com/myapp.php?foo=1&bar=2"}', '{"auth_token": "12345"}');
-- the example has no Body: verified, then refused for the missing field
SELECT throws_ok($$ SELECT reminder.record_inbound('tw_doc',
        '{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
          "From": "+12349013030", "To": "+18005551212"}', '0/KCTR6DLpKmkAf8muzZqo1nDgQ=') $$,
    '22023', 'inbound payload has no field "Body"',
    'Twilio''s documented example verifies (and is refused only for want of a Body)');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw_doc',
        '{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
          "From": "+12349013030", "To": "+18005551212"}', '0/KCTR6DLpKmkAf8muzZqo1nDgR=') $$,
    '28000', NULL, 'its signature with one character changed does not');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw_doc',
        '{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1235",
          "From": "+12349013030", "To": "+18005551212"}', '0/KCTR6DLpKmkAf8muzZqo1nDgQ=') $$,
    '28000', NULL, 'nor with a field changed');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw_doc',
        '{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
          "From": "+12349013030", "To": "+18005551212"}', '0/KCTR6DLpKmkAf8muzZqo1nDgQ=',
        'https://mycompany.com/myapp.php?foo=1&bar=3') $$,
    '28000', NULL, 'nor for another URL');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw_doc',
        '{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
          "From": "+12349013030", "To": "+18005551212", "Extra": ""}', '0/KCTR6DLpKmkAf8muzZqo1nDgQ=') $$,
    '28000', NULL, 'nor with a field added');

-- A repeated name: its values sorted, each as name + value.
SELECT is((SELECT action FROM reminder.record_inbound('tw',
              '{"From": "+48601234567", "Body": "STOP", "MediaUrl": ["https://b.example/2", "https://a.example/1"]}',
              encode(inbound_t.hmac('https://hooks.example.com/sms/twBodySTOPFrom+48601234567'
                                    'MediaUrlhttps://a.example/1MediaUrlhttps://b.example/2', 'tw-token', 'sha1'), 'base64'))),
          'opt_out', 'a repeated field (an array) is signed value by value, in sorted order');
-- url given by the caller instead of inbound_url
SELECT is((SELECT action FROM reminder.record_inbound('tw', '{"From": "+48601234567", "Body": "START"}',
              pg_temp.twilio_sig('https://other.example.com/hook?x=1', '{"From": "+48601234567", "Body": "START"}'),
              'https://other.example.com/hook?x=1')),
          'opt_in', 'the URL Twilio called may be passed instead of the channel''s inbound_url');
DELETE FROM reminder.consent;
DELETE FROM reminder.consent_log;

-- ---------------------------------------------------------------------
-- Keywords: consent
-- ---------------------------------------------------------------------
SELECT is(pg_temp.tw_action(w), 'opt_out', format('%L opts out', w))
  FROM unnest(ARRAY['STOP', 'stop', ' Stop! ', 'STOPALL', 'unsubscribe', 'Cancel', 'END', 'quit',
                    'NIE WYSYŁAJ', 'nie   wysylaj.', 'Wypisz mnie', 'rezygnuję']) w;
SELECT is(pg_temp.tw_action(w), 'opt_in', format('%L opts in', w))
  FROM unnest(ARRAY['START', 'unstop', 'Wznów']) w;
SELECT is(pg_temp.tw_action('HELP'), 'help', 'HELP records nothing and says so');

SELECT is((SELECT count(*)::int FROM reminder.consent_log
            WHERE address = '+48601234567' AND channel = 'tw' AND source = 'inbound:tw'),
          15, 'every keyword is in the consent log with the number, the channel and source inbound:tw');
SELECT is((SELECT action FROM reminder.consent_log ORDER BY id DESC LIMIT 1), 'opt_in', 'the last one was START''s');
SELECT is(pg_temp.tw_action('STOP'), 'opt_out', 'STOP again');
SELECT pg_temp.sent('tw', '+48601234567') AS m_after_stop \gset
SELECT is((SELECT verdict FROM reminder.gate_check(:m_after_stop)), 'suppress',
          'the next message to the number on the channel is suppressed');
SELECT NULL FROM pg_temp.tw_action('Start');
SELECT is((SELECT verdict FROM reminder.gate_check(:m_after_stop)), 'send', 'and sent again after START');
SELECT is(pg_temp.tw_action('STOP', '+48 601 234 599'), 'opt_out',
          'STOP from a number never messaged is honoured (carriers require it)');
SELECT ok(EXISTS (SELECT FROM reminder.consent WHERE address = '+48601234599' AND opted_out), '... as its E.164 number');

-- ---------------------------------------------------------------------
-- Replies: events on the sender's latest message
-- ---------------------------------------------------------------------
DELETE FROM reminder.consent;
SELECT pg_temp.sent('tw', '+48601230001', '3 hours') AS older \gset
SELECT pg_temp.sent('tw', '+48601230001', '1 hour') AS latest \gset
SELECT pg_temp.sent('sa', '+48601230001', '1 minute') AS other_channel \gset
SELECT pg_temp.sent('tw', '+48601230002', '1 minute') AS other_number \gset
SELECT reminder.schedule('tw', '{"phone": "+48601230001"}', 'in_tpl', now() + interval '1 hour') AS pending \gset

SELECT * FROM pg_temp.tw('Tak', '+48601230001', 'SMtak') \gset r_
SELECT is(:'r_action'::text, 'confirmed', '"Tak" confirms');
SELECT is(:r_message_id::bigint, :latest::bigint, '... the latest message sent on the channel to the number');
SELECT is((SELECT kind || ' ' || source || ' ' || (detail->>'text') || ' ' || (detail->>'inbound_id') FROM reminder.event WHERE id = :r_event_id),
          'confirmed inbound:tw Tak SMtak', '... recorded as an event with its text and the provider''s id');
SELECT is((SELECT count(*)::int FROM reminder.event WHERE message_id IN (:older, :other_channel, :other_number, :pending)), 0,
          'no other message got it: not the older one, another channel''s, another number''s, nor a pending one');
SELECT is((SELECT event_id FROM pg_temp.tw('1', '+48601230001')),
          :r_event_id::bigint, '"1" again returns the same confirmation (once per message)');
SELECT is(pg_temp.tw_action(w, '+48601230001', 'SM' || w), 'confirmed', format('%L confirms', w))
  FROM unnest(ARRAY['YES', 'y', 'ok', 'Potwierdzam']) w;
SELECT is(pg_temp.tw_action(w, '+48601230001', 'SM' || w), 'declined', format('%L declines', w))
  FROM unnest(ARRAY['2', 'NIE', 'no', 'Odwołuję']) w;
SELECT is((SELECT count(*)::int FROM reminder.event WHERE message_id = :latest AND kind = 'declined'), 1, '... once');
SELECT * FROM pg_temp.tw('Będę 10 minut później', '+48601230001', 'SMlate') \gset r_
SELECT is(:'r_action'::text, 'replied', 'other text is a reply');
SELECT is((SELECT detail->>'text' FROM reminder.event WHERE id = :r_event_id AND kind = 'replied' AND message_id = :latest),
          'Będę 10 minut później', '... recorded with its text on the latest message');
SELECT is((SELECT event_id FROM pg_temp.tw('Będę 10 minut później', '+48601230001', 'SMlate')),
          :r_event_id::bigint, 'the same webhook sent again (same MessageSid) records nothing new');
SELECT is(pg_temp.tw_action('STOP please', '+48601230001', 'SMsp'), 'replied', 'a keyword inside a sentence is not a keyword');

-- ---------------------------------------------------------------------
-- SMSAPI MO
-- ---------------------------------------------------------------------
SELECT pg_temp.sent('sa', '+48601230003') AS sa_msg \gset
SELECT is((SELECT action || ' ' || phone || ' ' || message_id FROM reminder.record_inbound('sa',
              '{"sms_to": "48600000000", "sms_from": "48601230003", "sms_text": "TAK", "sms_date": "1764950000",
                "username": "gabinet", "MsgId": "MO1"}', 's3cret-in-the-callback-url')),
          'confirmed +48601230003 ' || :sa_msg, 'SMSAPI: sms_from without "+" is an international number; TAK confirms');
SELECT is((SELECT action FROM reminder.record_inbound('sa',
              '{"sms_from": "48601230003", "sms_text": "STOP", "MsgId": "MO2"}', 's3cret-in-the-callback-url')),
          'opt_out', 'SMSAPI: STOP opts out');
SELECT ok(EXISTS (SELECT FROM reminder.consent_log WHERE address = '+48601230003' AND channel = 'sa' AND source = 'inbound:sa'),
          '... in the consent log');
SELECT pg_temp.sent('sa', '+48601230004', '3 days') AS sa_old \gset
SELECT throws_ok($$ SELECT reminder.record_inbound('sa', '{"sms_from": "48601230004", "sms_text": "TAK"}', 's3cret-in-the-callback-url') $$,
    'P0002', NULL, 'SMSAPI: a message older than the channel''s inbound_window is not answered');

-- ---------------------------------------------------------------------
-- Failure modes: a clear SQLSTATE, nothing written
-- ---------------------------------------------------------------------
SELECT pg_temp.writes() AS before \gset
SELECT throws_ok($$ SELECT reminder.record_inbound('tw', '{"From": "+48601230001", "Body": "STOP"}', 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=') $$,
    '28000', 'inbound request for channel "tw" is not signed by its provider', 'Twilio: a forged signature');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw', '{"From": "+48601230001", "Body": "STOP"}', NULL) $$,
    '28000', NULL, 'Twilio: no signature');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw', '{"From": "+48601230001", "Body": "STOP"}',
        pg_temp.twilio_sig('https://hooks.example.com/sms/tw', '{"From": "+48601230001", "Body": "STOP"}', 'other-token')) $$,
    '28000', NULL, 'Twilio: signed with another auth token');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw', '{"From": "+48601230001", "Body": "STOP", "AccountSid": "ACother"}',
        pg_temp.twilio_sig('https://hooks.example.com/sms/tw', '{"From": "+48601230001", "Body": "STOP", "AccountSid": "ACother"}')) $$,
    '28000', NULL, 'Twilio: another account''s request');
SELECT throws_ok($$ SELECT reminder.record_inbound('sa', '{"sms_from": "48601230003", "sms_text": "START"}', 'wrong') $$,
    '28000', NULL, 'SMSAPI: a wrong shared secret');
SELECT throws_ok($$ SELECT reminder.record_inbound('sa', '{"sms_from": "48601230003", "sms_text": "START"}', NULL) $$,
    '28000', NULL, 'SMSAPI: no shared secret');
SELECT throws_ok($$ SELECT * FROM pg_temp.tw('TAK', '+48601239999') $$,
    'P0002', 'no message on channel "tw" to +48601239999 to reply to', 'a reply from a number never messaged (unknown sender)');
SELECT throws_ok($$ SELECT * FROM pg_temp.tw('TAK', 'Alice') $$,
    '22023', NULL, 'a sender that is not a phone number');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw', '["From", "+48601230001"]', 'x') $$,
    '22023', 'inbound payload must be a JSON object', 'a payload that is not an object');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw', '{"From": "+48601230001", "Body": 1}', 'x') $$,
    '22023', NULL, 'a field that is not a string');
SELECT throws_ok($$ SELECT reminder.record_inbound(NULL, '{}', 'x') $$, '22004', NULL, 'no channel');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw', NULL, 'x') $$, '22004', NULL, 'no payload');
SELECT throws_ok($$ SELECT reminder.record_inbound('nope', '{}', 'x') $$, '42704', NULL, 'an unknown channel');
SELECT reminder.create_channel('in_log', 'log');
SELECT throws_ok($$ SELECT reminder.record_inbound('in_log', '{}', 'x') $$, '42809', NULL, 'a channel that is not SMS');
SELECT reminder.create_channel('in_gw', 'sms', '{"provider": "generic", "url": "https://gw.example.com/send", "body": "{{text}}"}');
SELECT throws_ok($$ SELECT reminder.record_inbound('in_gw', '{}', 'x') $$, '0A000', NULL, 'a generic gateway');
SELECT reminder.create_channel('tw_nourl', 'sms', '{"provider": "twilio", "account_sid": "ACx", "from": "+48600000000"}', '{"auth_token": "t"}');
SELECT throws_ok($$ SELECT reminder.record_inbound('tw_nourl', '{"From": "+48601230001", "Body": "STOP"}', 'x') $$,
    '55000', 'channel "tw_nourl" has no inbound_url', 'a Twilio channel without inbound_url, and no url passed');
SELECT reminder.create_channel('sa_nosecret', 'sms', '{"provider": "smsapi"}', '{"token": "t"}');
SELECT throws_ok($$ SELECT reminder.record_inbound('sa_nosecret', '{"sms_from": "48601230003", "sms_text": "STOP"}', 'x') $$,
    '55000', NULL, 'an SMSAPI channel without inbound_secret');
SELECT is(pg_temp.writes(), :before::bigint, 'none of them wrote anything');

SELECT throws_ok($$ SELECT reminder.create_channel('x', 'sms', '{"provider": "smsapi", "inbound_url": "https://a.example/"}', '{"token": "t"}') $$,
    '22023', NULL, 'create_channel: inbound_url is for Twilio');
SELECT throws_ok($$ SELECT reminder.create_channel('x', 'sms', '{"provider": "twilio", "account_sid": "ACx", "from": "+48600000000", "inbound_url": "ftp://a.example/"}', '{"auth_token": "t"}') $$,
    '22023', NULL, 'create_channel: inbound_url is an http(s) URL');
SELECT throws_ok($$ SELECT reminder.create_channel('x', 'sms', '{"provider": "smsapi", "inbound_window": "-1 day"}', '{"token": "t"}') $$,
    '22023', NULL, 'create_channel: inbound_window is positive');

-- ---------------------------------------------------------------------
-- Rules: "until confirmed" (the example of docs/inbound.md)
-- ---------------------------------------------------------------------
CREATE TABLE public.inbound_visits (id int PRIMARY KEY, phone text NOT NULL, starts_at timestamptz NOT NULL);
SELECT reminder.watch('inbound_visits', 'before', name => 'visit_sms', column_name => 'starts_at',
    offsets => '{24 hours, 2 hours}', channel => 'tw', template => 'in_tpl',
    recipients => '{"to": {"phone": {"expr": "phone"}}}',
    stop_condition => 'reminder.has_event(''visit_sms'', id::text)');
INSERT INTO public.inbound_visits VALUES (7, '+48601230007', now() + interval '3 days');
SELECT id AS first FROM reminder.message WHERE idempotency_key = 'rule:' || (SELECT id FROM reminder.rule WHERE name = 'visit_sms') || ':7:0:0' \gset
SELECT id AS second FROM reminder.message WHERE idempotency_key = 'rule:' || (SELECT id FROM reminder.rule WHERE name = 'visit_sms') || ':7:0:1' \gset
UPDATE reminder.message SET status = 'sent', sent_at = now(), next_attempt_at = NULL WHERE id = :first;
SELECT is(reminder.has_event('visit_sms', '7'), false, 'has_event: nothing came back yet');
SELECT is((SELECT verdict FROM reminder.gate_check(:second)), 'send', 'the second reminder would go');
SELECT is(pg_temp.tw_action('TAK', '+48601230007', 'SMv7'), 'confirmed', 'the client answers TAK');
SELECT is(reminder.has_event('visit_sms', '7'), true, 'has_event: confirmed');
SELECT is(reminder.has_event('visit_sms', '7', 'declined'), false, '... not declined');
SELECT is(reminder.has_event('visit_sms', '8'), false, '... nor for another row');
SELECT is((SELECT verdict || ': ' || reason FROM reminder.gate_check(:second)), 'suppress: rule: stop condition holds',
          'the stop condition holds: the second reminder is suppressed when due');
SELECT throws_ok($$ SELECT reminder.has_event('no_such_rule', '7') $$, '42704', NULL, 'has_event: an unknown rule');
SELECT throws_ok($$ SELECT reminder.has_event('visit_sms', '7', 'exploded') $$, '22023', NULL, 'has_event: an unknown kind');

SELECT * FROM finish();
ROLLBACK;
