-- The bad-input matrix: every call below is wrong in one way, must fail
-- with the SQLSTATE given, and must leave every table as it was.
\ir setup.psql

BEGIN;
SELECT plan(81);

-- Setup ---------------------------------------------------------------------
SELECT reminder.create_channel('bi_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('bi_sms', 'sms', '{"provider": "smsapi"}', '{"token": "t"}');
SELECT reminder.create_template('bi_tpl', 'Hello {{name}}', 'Hi', NULL, 'en', '{name}');
SELECT reminder.create_template('bi_nps', 'Rate us');
SELECT reminder.upsert_recipient('bi-1', email => 'ada@example.com', time_zone => 'Europe/Warsaw');
SELECT reminder.schedule('bi_mail', '{"email": "ada@example.com"}', 'bi_nps') AS msg \gset
SELECT reminder.schedule('bi_mail', '{"email": "gone@example.com"}', 'bi_nps') AS gone \gset
-- a token signed with a key that is then revoked
SELECT reminder.link_token(:msg, 'open') AS revoked_tok \gset
SELECT reminder.rotate_signing_key(revoke_previous => true);
SELECT reminder.link_token(:msg, 'confirm') AS confirm_tok \gset
SELECT reminder.link_token(:msg, 'survey') AS survey_tok \gset
SELECT reminder.link_token(:msg, 'callback') AS callback_tok \gset
SELECT reminder.link_token(:msg, 'confirm', NULL, now() - interval '1 minute') AS expired_tok \gset
SELECT reminder.link_token(:gone, 'confirm') AS gone_tok \gset
DELETE FROM reminder.message WHERE id = :gone;
-- the same token with one character changed
SELECT overlay(:'confirm_tok' PLACING CASE WHEN substr(:'confirm_tok', 20, 1) = 'A' THEN 'B' ELSE 'A' END
               FROM 20 FOR 1) AS altered_tok \gset

CREATE TEMP TABLE counts_before AS
SELECT 'channel' t, count(*) n FROM reminder.channel UNION ALL
SELECT 'channel_secret', count(*) FROM reminder.channel_secret UNION ALL
SELECT 'template', count(*) FROM reminder.template UNION ALL
SELECT 'recipient', count(*) FROM reminder.recipient UNION ALL
SELECT 'recipient_content', count(*) FROM reminder.recipient WHERE (email, time_zone) = ('ada@example.com', 'Europe/Warsaw') UNION ALL
SELECT 'message', count(*) FROM reminder.message UNION ALL
SELECT 'message_scheduled', count(*) FROM reminder.message WHERE status = 'scheduled' UNION ALL
SELECT 'attempt', count(*) FROM reminder.attempt UNION ALL
SELECT 'event', count(*) FROM reminder.event UNION ALL
SELECT 'log', count(*) FROM reminder.log UNION ALL
SELECT 'consent', count(*) FROM reminder.consent UNION ALL
SELECT 'consent_log', count(*) FROM reminder.consent_log UNION ALL
SELECT 'signing_key', count(*) FROM reminder.signing_key;

-- schedule() and send() --------------------------------------------------------
SELECT throws_ok($$ SELECT reminder.schedule('nope', '{"email": "a@example.com"}', 'bi_nps') $$, '42704', NULL, 'schedule: unknown channel');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com"}', 'nope') $$, '42704', NULL, 'schedule: unknown template');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@@example"}', 'bi_nps') $$, '22023', NULL, 'schedule: malformed email');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com", "time_zone": "Mars/Olympus"}', 'bi_nps') $$, '22023', NULL, 'schedule: unknown time zone');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com", "locale": "Polish"}', 'bi_nps') $$, '22023', NULL, 'schedule: malformed locale');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', NULL, 'bi_nps') $$, '22004', NULL, 'schedule: null recipient');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com"}', 'bi_nps', now(), '[1, 2]') $$, '22023', NULL, 'schedule: data not an object');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com"}', 'bi_tpl', now(), '{}') $$, '22023', NULL, 'schedule: required variable missing');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com"}', 'bi_nps', now(), '{}', E'key\r\nX-Injected: 1') $$, '22023', NULL, 'schedule: CR/LF in idempotency key');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com"}', 'bi_nps', 'infinity') $$, '22008', NULL, 'schedule: infinite due_at');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"external_id": "nobody"}', 'bi_nps') $$, '42704', NULL, 'schedule: unknown stored recipient');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com", "quiet_hours": {"start": "22:00"}}', 'bi_nps') $$, '22023', NULL, 'schedule: inline quiet hours without end');
SELECT throws_ok($$ SELECT reminder.schedule('bi_sms', '{"phone": "call me"}', 'bi_nps') $$, '22023', NULL, 'schedule: malformed phone number');
SELECT throws_ok($$ SELECT reminder.schedule('bi_sms', '{"email": "a@example.com"}', 'bi_nps') $$, '22023', NULL, 'schedule: SMS recipient without phone');
SET LOCAL reminder.max_recipients = 3;
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com", "cc": ["b@example.com", "c@example.com"], "bcc": "d@example.com"}', 'bi_nps') $$, '54000', NULL, 'schedule: more addresses than reminder.max_recipients');
RESET reminder.max_recipients;
SET LOCAL reminder.max_payload_size = 1024;
SELECT throws_ok(format('SELECT reminder.schedule(%L, %L, %L, now(), %L)', 'bi_mail', '{"email": "a@example.com"}', 'bi_nps',
                        jsonb_build_object('blob', repeat('x', 2000))), '54000', NULL, 'schedule: data over reminder.max_payload_size');
RESET reminder.max_payload_size;
SELECT throws_ok($$ SELECT reminder.send('bi_mail', '{"email": "a@example.com\nBcc: x@evil.example"}', 'bi_nps') $$, '22023', NULL, 'send: header injection in address');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com"}', 'bi_nps', fallback => 'nope') $$, '42704', NULL, 'schedule: unknown fallback channel');
SELECT throws_ok($$ SELECT reminder.schedule('bi_mail', '{"email": "a@example.com"}', 'bi_nps', fallback => 'bi_mail') $$, '22023', NULL, 'schedule: fallback to the message''s own channel');
SELECT throws_ok($$ SELECT reminder.send('bi_mail', '{"email": "a@example.com"}', 'bi_nps', fallback => 'bi_sms') $$, '22023', NULL, 'send: fallback channel that cannot reach the recipient (no phone)');

-- channels, templates, messages ----------------------------------------------------
SELECT throws_ok($$ SELECT reminder.create_channel('bi_x', 'pigeon') $$, '22023', NULL, 'create_channel: unknown kind');
SELECT throws_ok($$ SELECT reminder.create_channel('bi_x', 'webhook', '{"url": "ftp://example.com/x"}') $$, '22023', NULL, 'create_channel: URL scheme not allowed');
SELECT throws_ok($$ SELECT reminder.create_channel('bi_x', 'webhook', '{"url": "https://example.com/x", "headers": {"X-A": "1\r\nX-B: 2"}}') $$, '22023', NULL, 'create_channel: CR/LF in a header value');
SELECT throws_ok($$ SELECT reminder.create_channel('bi_x', 'log', '{"quiet_hours": {"start": "21:00", "end": "8am"}}') $$, '22023', NULL, 'create_channel: malformed quiet hours');
SELECT throws_ok($$ SELECT reminder.create_channel('bi_x', 'log', '{"quiet_hours": {"start": "00:00", "end": "24:00"}}') $$, '22023', NULL, 'create_channel: quiet hours covering the whole week');
SELECT throws_ok($$ SELECT reminder.create_template('1bad', 'x') $$, '22023', NULL, 'create_template: malformed name');
SELECT throws_ok($$ SELECT reminder.create_template('bi_x', 'x', E'Subject\nBcc: x@evil.example') $$, '22023', NULL, 'create_template: line break in subject');
SELECT throws_ok(format('SELECT reminder.reschedule(%s, NULL)', :msg), '22004', NULL, 'reschedule: null due_at');
SELECT throws_ok($$ SELECT reminder.cancel(-1) $$, 'P0002', NULL, 'cancel: no such message');

-- recipients -------------------------------------------------------------------------
SELECT throws_ok($$ SELECT reminder.upsert_recipient(NULL, email => 'a@example.com') $$, '22004', NULL, 'upsert_recipient: null external_id');
SELECT throws_ok($$ SELECT reminder.upsert_recipient(E'bi\t2') $$, '22023', NULL, 'upsert_recipient: control character in external_id');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-2', email => 'no-at-sign') $$, '22023', NULL, 'upsert_recipient: malformed email');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-1', time_zone => 'Europe/Atlantis') $$, '22023', NULL, 'upsert_recipient: unknown time zone (update keeps the row)');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-2', locale => 'PL_pl') $$, '22023', NULL, 'upsert_recipient: malformed locale');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-2', phone => '12') $$, '22023', NULL, 'upsert_recipient: too short phone number');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-2', quiet_hours => '{"start": "21:00", "end": "08:00", "tz": "UTC"}') $$, '22023', NULL, 'upsert_recipient: unknown key in quiet hours');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-2', quiet_hours => '[{"start": "09:00", "end": "17:00", "days": ["someday"]}]') $$, '22023', NULL, 'upsert_recipient: unknown day in quiet hours');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-2', preferred_channel => 'nope') $$, '23503', NULL, 'upsert_recipient: unknown preferred channel');
SELECT throws_ok($$ SELECT reminder.upsert_recipient('bi-2', attributes => '"vip"') $$, '22023', NULL, 'upsert_recipient: attributes not an object');
SELECT throws_ok($$ INSERT INTO reminder.recipient (external_id, url) VALUES ('bi-3', 'javascript:alert(1)') $$, '22023', NULL, 'INSERT recipient: URL scheme not allowed');
SELECT throws_ok($$ UPDATE reminder.recipient SET email = 'a b@example.com' WHERE external_id = 'bi-1' $$, '22023', NULL, 'UPDATE recipient: malformed email');

-- consent ----------------------------------------------------------------------------
SELECT throws_ok($$ SELECT reminder.opt_out(NULL) $$, '22004', NULL, 'opt_out: null recipient');
SELECT throws_ok($$ SELECT reminder.opt_out('{}') $$, '22023', NULL, 'opt_out: recipient naming no one');
SELECT throws_ok($$ SELECT reminder.opt_out('"ada@example.com"') $$, '22023', NULL, 'opt_out: recipient not an object');
SELECT throws_ok($$ SELECT reminder.opt_out('{"external_id": "nobody"}') $$, '42704', NULL, 'opt_out: unknown stored recipient');
SELECT throws_ok($$ SELECT reminder.opt_out('{"email": "ada@example.com"}', 'pigeon-post') $$, '42704', NULL, 'opt_out: unknown channel');
SELECT throws_ok($$ SELECT reminder.opt_out('{"email": "ada@example.com"}', NULL, 'news''; DROP TABLE x; --') $$, '22023', NULL, 'opt_out: malformed category');
SELECT throws_ok(format('SELECT reminder.opt_out(%L, NULL, NULL, %L)', '{"email": "ada@example.com"}', repeat('s', 201)), '22001', NULL, 'opt_out: source too long');
SELECT throws_ok($$ SELECT reminder.opt_in('{"email": "ada@"}') $$, '22023', NULL, 'opt_in: malformed email');
SELECT throws_ok($$ SELECT reminder.opt_in('{"phone": "+0 123"}') $$, '22023', NULL, 'opt_in: malformed phone');

-- tokens -----------------------------------------------------------------------------
SELECT throws_ok($$ SELECT reminder.record_event(NULL) $$, '22004', NULL, 'record_event: null token');
SELECT throws_ok($$ SELECT reminder.record_event('not-a-token') $$, '22023', NULL, 'record_event: malformed token');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'confirm_tok' || '='), '22023', NULL, 'record_event: padded token');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'altered_tok'), '28000', NULL, 'record_event: altered token');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'expired_tok'), '28000', NULL, 'record_event: expired token');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'revoked_tok'), '28000', NULL, 'record_event: token of a revoked key');
SELECT throws_ok(format('SELECT reminder.record_event(%L, %L)', :'confirm_tok', 'declined'), '28000', NULL, 'record_event: kind the token does not permit');
SELECT throws_ok(format('SELECT reminder.record_event(%L, %L)', :'callback_tok', 'exploded'), '22023', NULL, 'record_event: unknown kind');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'callback_tok'), '22004', NULL, 'record_event: callback token without kind');
SELECT throws_ok(format('SELECT reminder.record_event(%L, %L, %L)', :'callback_tok', 'bounced', '["hard"]'), '22023', NULL, 'record_event: detail not an object');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'gone_tok'), 'P0002', NULL, 'record_event: message purged since');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'survey_tok'), '28000', NULL, 'record_event: survey token');
SELECT throws_ok(format('SELECT reminder.record_response(%L, 11)', :'survey_tok'), '22003', NULL, 'record_response: score above 10');
SELECT throws_ok(format('SELECT reminder.record_response(%L, -1)', :'survey_tok'), '22003', NULL, 'record_response: negative score');
SELECT throws_ok(format('SELECT reminder.record_response(%L)', :'survey_tok'), '22004', NULL, 'record_response: survey token without a score');
SELECT throws_ok(format('SELECT reminder.record_response(%L, 9)', :'confirm_tok'), '28000', NULL, 'record_response: confirm token');
SELECT throws_ok(format('SELECT reminder.record_response(%L, 9, %L)', :'survey_tok', repeat('x', 4001)), '22001', NULL, 'record_response: comment too long');
SELECT throws_ok(format('SELECT * FROM reminder.token_info(%L)', :'altered_tok'), '28000', NULL, 'token_info: altered token');
SELECT throws_ok(format('SELECT reminder.link_token(%s, %L)', :msg, 'explode'), '22023', NULL, 'link_token: unknown action');
SELECT throws_ok(format('SELECT reminder.link_token(%s, %L)', :msg, 'score'), '22023', NULL, 'link_token: score link without a score');
SELECT throws_ok($$ SELECT reminder.link_token(-5, 'confirm') $$, 'P0002', NULL, 'link_token: no such message');

-- time, reports, data ------------------------------------------------------------------
SELECT throws_ok($$ SELECT reminder.next_send_time('{"quiet_hours": {"start": "7", "end": "8"}}') $$, '22023', NULL, 'next_send_time: malformed quiet hours');
SELECT throws_ok($$ SELECT reminder.next_send_time('{}', 'nope') $$, '42704', NULL, 'next_send_time: unknown channel');
SELECT throws_ok($$ SELECT * FROM reminder.nps(since => now(), until => now() - interval '1 day') $$, '22023', NULL, 'nps: period ends before it starts');
SELECT throws_ok($$ SELECT * FROM reminder.forget(NULL) $$, '22004', NULL, 'forget: null recipient');
SELECT throws_ok($$ SELECT * FROM reminder.forget('{"external_id": "nobody"}') $$, '42704', NULL, 'forget: unknown stored recipient');
SELECT throws_ok($$ SELECT * FROM reminder.forget('{"name": "Ada"}') $$, '22023', NULL, 'forget: recipient naming no address');
SELECT throws_ok($$ SELECT * FROM reminder.purge('-1 day') $$, '22023', NULL, 'purge: negative age');
SELECT throws_ok($$ SELECT * FROM reminder.purge(NULL) $$, '22004', NULL, 'purge: null age');
SELECT throws_ok($$ SELECT * FROM reminder.gate_check(-1) $$, 'P0002', NULL, 'gate_check: no such message');

-- ...and nothing changed -------------------------------------------------------------
SELECT set_eq(
    $$ SELECT 'channel' t, count(*) n FROM reminder.channel UNION ALL
       SELECT 'channel_secret', count(*) FROM reminder.channel_secret UNION ALL
       SELECT 'template', count(*) FROM reminder.template UNION ALL
       SELECT 'recipient', count(*) FROM reminder.recipient UNION ALL
       SELECT 'recipient_content', count(*) FROM reminder.recipient WHERE (email, time_zone) = ('ada@example.com', 'Europe/Warsaw') UNION ALL
       SELECT 'message', count(*) FROM reminder.message UNION ALL
       SELECT 'message_scheduled', count(*) FROM reminder.message WHERE status = 'scheduled' UNION ALL
       SELECT 'attempt', count(*) FROM reminder.attempt UNION ALL
       SELECT 'event', count(*) FROM reminder.event UNION ALL
       SELECT 'log', count(*) FROM reminder.log UNION ALL
       SELECT 'consent', count(*) FROM reminder.consent UNION ALL
       SELECT 'consent_log', count(*) FROM reminder.consent_log UNION ALL
       SELECT 'signing_key', count(*) FROM reminder.signing_key $$,
    $$ SELECT t, n FROM counts_before $$,
    'no failed call wrote anything');

SELECT * FROM finish();
ROLLBACK;
