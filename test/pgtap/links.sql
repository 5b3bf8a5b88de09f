-- Signed action links: token format and verification, key rotation,
-- events from links and provider callbacks, survey answers and NPS.
\ir setup.psql

BEGIN;
SELECT plan(42);

SELECT reminder.create_channel('ln_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('ln_sms', 'sms', '{"provider": "smsapi"}', '{"token": "t"}');
SELECT reminder.create_template('ln_nps', 'How likely ...');
SELECT reminder.create_template('ln_other', 'Other');
SELECT reminder.upsert_recipient('ln-1', email => 'ada@example.com');
SELECT reminder.schedule('ln_mail', '{"external_id": "ln-1"}', 'ln_nps') AS m \gset
SELECT reminder.schedule('ln_mail', '{"email": "bob@example.com"}', 'ln_nps') AS m2 \gset
SELECT reminder.schedule('ln_sms', '{"phone": "+48601234567"}', 'ln_other') AS m3 \gset

-- format
SELECT reminder.link_token(:m, 'confirm') AS tok \gset
SELECT is(length(:'tok'), 47, 'a token is 47 characters');
SELECT matches(:'tok'::text, '^[A-Za-z0-9_-]{47}$', 'of base64url: safe in a URL as it is');
SELECT is((SELECT row(message_id, action, score)::text FROM reminder.token_info(:'tok')), row(:m::bigint, 'confirm', NULL::int)::text,
          'token_info reads message, action and score back');
SELECT ok((SELECT expires_at BETWEEN now() + interval '29 days 23 hours' AND now() + interval '30 days 1 minute'
             FROM reminder.token_info(:'tok')), 'expiry defaults to reminder.link_ttl (30 days)');
SET LOCAL reminder.link_ttl = '1h';
SELECT ok((SELECT expires_at <= now() + interval '1 hour 1 minute' FROM reminder.token_info(reminder.link_token(:m, 'open'))),
          'reminder.link_ttl sets it');
RESET reminder.link_ttl;
SELECT isnt(reminder.link_token(:m, 'confirm'), reminder.link_token(:m, 'decline'), 'the action is signed into the token');
SELECT is((SELECT score FROM reminder.token_info(reminder.link_token(:m, 'score', 7))), 7, 'so is the score');

-- any single character changed: refused, nothing recorded
CREATE FUNCTION pg_temp.refused(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    PERFORM reminder.record_event(t);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st;
END $$;
SELECT is((SELECT array_agg(DISTINCT pg_temp.refused(overlay(:'tok' PLACING CASE WHEN substr(:'tok', i, 1) = 'Q' THEN 'R' ELSE 'Q' END FROM i FOR 1)))
             FROM generate_series(1, 47) i), ARRAY['22023', '28000'],
          'each of the 47 one-character alterations is refused as malformed (22023) or unsigned (28000)');
SELECT is((SELECT count(*) FROM reminder.event), 0::bigint, 'and none recorded anything');

-- link use
SELECT reminder.record_event(:'tok') AS e1 \gset
SELECT is((SELECT row(message_id, kind, source)::text FROM reminder.event WHERE id = :e1), row(:m::bigint, 'confirmed', 'link')::text,
          'a confirm link records confirmed');
SELECT is(reminder.record_event(:'tok'), :e1::bigint, 'using it again returns the same event');
SELECT is(reminder.record_event(:'tok', 'confirmed', '{"ip": "x"}'), :e1::bigint, 'also with the kind named');
SELECT lives_ok(format('SELECT reminder.record_event(%L)', reminder.link_token(:m, 'decline')), 'decline');
SELECT lives_ok(format('SELECT reminder.record_event(%L)', reminder.link_token(:m, 'reschedule')), 'reschedule request');
SELECT is((SELECT array_agg(kind ORDER BY kind) FROM reminder.event WHERE message_id = :m),
          ARRAY['confirmed', 'declined', 'reschedule_requested'], 'each recorded once');

-- unsubscribe opts the recipient out of the message's category
SELECT reminder.record_event(reminder.link_token(:m, 'unsubscribe'));
SELECT is((SELECT row(recipient_id IS NOT NULL, channel, category, opted_out, source)::text FROM reminder.consent),
          row(true, NULL::text, 'ln_nps', true, 'unsubscribe link')::text, 'an unsubscribe link opts the stored recipient out of the category');
SELECT is((SELECT verdict FROM reminder.gate_check(:m)), 'suppress', 'so the gate suppresses');
SELECT reminder.record_event(reminder.link_token(:m2, 'unsubscribe'));
SELECT is((SELECT address FROM reminder.consent WHERE source = 'unsubscribe link' AND address IS NOT NULL), 'bob@example.com',
          'an inline recipient is opted out by address');

-- provider callbacks
SELECT reminder.link_token(:m2, 'callback') AS cb \gset
SELECT reminder.record_event(:'cb', 'delivered', '{"provider_id": "abc"}');
SELECT reminder.record_event(:'cb', 'opened');
SELECT reminder.record_event(:'cb', 'opened');
SELECT is((SELECT count(*) FROM reminder.event WHERE message_id = :m2 AND kind = 'opened'), 2::bigint, 'repeated opens are each recorded');
SELECT is((SELECT source FROM reminder.event WHERE message_id = :m2 AND kind = 'delivered'), 'provider', 'callback events have source provider');
SELECT reminder.record_event(:'cb', 'bounced', '{"type": "soft"}');
SELECT is((SELECT count(*) FROM reminder.consent WHERE source = 'hard bounce'), 0::bigint, 'a soft bounce opts nobody out');
SELECT reminder.record_event(:'cb', 'bounced', '{"type": "hard"}');
SELECT is((SELECT row(address, channel, category)::text FROM reminder.consent WHERE source = 'hard bounce'),
          row('bob@example.com', NULL::text, NULL::text)::text, 'a hard bounce opts the address out of everything');
SET LOCAL reminder.bounce_opt_out = off;
SELECT reminder.record_event(reminder.link_token(:m3, 'callback'), 'complained');
SELECT is((SELECT count(*) FROM reminder.consent WHERE address = '+48601234567'), 0::bigint, 'not with reminder.bounce_opt_out off');
RESET reminder.bounce_opt_out;
SELECT reminder.record_event(reminder.link_token(:m3, 'callback'), 'complained');
SELECT is((SELECT source FROM reminder.consent WHERE address = '+48601234567'), 'complaint', 'a complaint opts the phone number out');

-- key rotation
SELECT reminder.link_token(:m2, 'open') AS old_tok \gset
SELECT reminder.rotate_signing_key() AS k2 \gset
SELECT is((SELECT id FROM reminder.signing_keys WHERE signing), :k2::int, 'the new key signs');
SELECT lives_ok(format('SELECT reminder.record_event(%L)', :'old_tok'), 'links signed with the previous key still verify');
SELECT reminder.rotate_signing_key(revoke_previous => true);
SELECT throws_ok(format('SELECT reminder.record_event(%L)', :'old_tok'), '28000', 'link token is not valid', 'until it is revoked');
SELECT is((SELECT count(*) FROM reminder.signing_keys), 1::bigint, 'revoking leaves one key');

-- the links object templates see
SELECT is(reminder.preview_links(:m), NULL, 'no links while reminder.link_base_url is empty');
SET LOCAL reminder.link_base_url = 'https://example.com/r';
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(reminder.preview_links(:m)) k),
          ARRAY['callback', 'confirm', 'decline', 'open', 'reschedule', 'score', 'scores', 'survey', 'unsubscribe'],
          'links: confirm, decline, reschedule, unsubscribe, survey, open, callback, score, scores');
SELECT ok((SELECT bool_and(u ~ '^https://example\.com/r/[A-Za-z0-9_-]{47}$')
             FROM (SELECT value #>> '{}' u FROM jsonb_each(reminder.preview_links(:m)) WHERE jsonb_typeof(value) = 'string'
                   UNION ALL SELECT value #>> '{}' FROM jsonb_each(reminder.preview_links(:m) -> 'score')
                   UNION ALL SELECT e ->> 'url' FROM jsonb_array_elements(reminder.preview_links(:m) -> 'scores') e) x),
          'every link is the base URL, a slash and a token');
SELECT is((SELECT array_agg((e ->> 'score')::int) FROM jsonb_array_elements(reminder.preview_links(:m) -> 'scores') e),
          ARRAY[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'scores 0..10 in order, for {{#links.scores}}');
SELECT is((SELECT array_agg(k::int ORDER BY k::int) FROM jsonb_object_keys(reminder.preview_links(:m) -> 'score') k),
          ARRAY[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'score.0 .. score.10, for {{links.score.9}}');
SET LOCAL reminder.link_base_url = 'https://example.com/r?t=';
SELECT matches(reminder.preview_links(:m) ->> 'confirm', '^https://example\.com/r\?t=[A-Za-z0-9_-]{47}$', 'a base ending in = gets the token appended as is');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', substr(reminder.preview_links(:m) ->> 'confirm', 25)), '28000', NULL,
                 'preview tokens (outside the worker) never verify');
RESET reminder.link_base_url;

-- survey answers and NPS
SELECT reminder.record_response(reminder.link_token(:m, 'score', 9)) AS a1 \gset
SELECT is((SELECT row(kind, score, comment)::text FROM reminder.event WHERE id = :a1), row('answered', 9::smallint, NULL::text)::text,
          'a score link records the score it carries');
SELECT is(reminder.record_response(reminder.link_token(:m, 'survey'), 10, 'Great service'), :a1::bigint,
          'answering again updates the one answer of the message');
SELECT is((SELECT row(score, comment)::text FROM reminder.event WHERE id = :a1), row(10::smallint, 'Great service')::text, 'with the new score and comment');
-- ten more answers: scores 0..9 on fresh messages
SELECT reminder.record_response(reminder.link_token(reminder.schedule('ln_mail', jsonb_build_object('email', 'p' || s || '@example.com'), 'ln_nps'), 'score', s))
  FROM generate_series(0, 9) s;
UPDATE reminder.message SET rule_id = 77 WHERE template = 'ln_nps' AND recipient->>'email' IN ('p0@example.com', 'p9@example.com');
-- 11 answers: 10,0..9 -> promoters 9,10 (2), passives 7,8 (2), detractors 0..6 (7): NPS = (2 - 7) / 11
SELECT is((SELECT row(responses, promoters, passives, detractors, nps)::text FROM reminder.nps('ln_nps')),
          row(11::bigint, 2::bigint, 2::bigint, 7::bigint, -45.5)::text, 'nps() by template');
SELECT is((SELECT row(responses, nps)::text FROM reminder.nps(rule_id => 77)), row(2::bigint, 0.0)::text, 'nps() by rule');
SELECT is((SELECT row(responses, nps)::text FROM reminder.nps('ln_other')), row(0::bigint, NULL::numeric)::text, 'no answers: NPS is NULL');
SELECT is((SELECT responses FROM reminder.nps('ln_nps', since => now() + interval '1 second')), 0::bigint, 'the period bounds the answers');

SELECT * FROM finish();
ROLLBACK;
