-- Stored recipients: upsert, validation trigger, resolution like inline
-- recipients, template locale fallback, recipients-per-message limit.
\ir setup.psql

BEGIN;
SELECT plan(22);

SELECT reminder.create_channel('rc_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('rc_sms', 'sms', '{"provider": "smsapi", "default_country_code": "48"}', '{"token": "t"}');
SELECT reminder.create_template('rc_hello', 'Hello {{name}}');

-- upsert: insert, then patch
SELECT reminder.upsert_recipient('rc-1', name => 'Ada', email => 'ada@example.com', phone => '+48 601 234 567',
                                 time_zone => 'Europe/Warsaw', locale => 'pl-PL',
                                 attributes => '{"tier": "gold"}') AS rid \gset
SELECT is(reminder.upsert_recipient('rc-1', name => 'Ada L.', attributes => '{"vip": true}'), :rid::bigint,
          'upsert of an existing external_id returns the same id');
SELECT is((SELECT row(name, email, phone, time_zone, locale, attributes)::text FROM reminder.recipient WHERE id = :rid),
          row('Ada L.', 'ada@example.com', '+48601234567', 'Europe/Warsaw', 'pl-PL', '{"vip": true, "tier": "gold"}'::jsonb)::text,
          'NULL arguments keep stored values, attributes merge, phone stored in E.164');
SELECT is((SELECT count(*) FROM reminder.recipient WHERE external_id = 'rc-1'), 1::bigint, 'one row per external_id');

-- the trigger guards plain DML too
INSERT INTO reminder.recipient (external_id, phone) VALUES ('rc-2', '0048 601 234 568');
SELECT is((SELECT phone FROM reminder.recipient WHERE external_id = 'rc-2'), '+48601234568',
          'INSERT normalises an international phone number');
INSERT INTO reminder.recipient (external_id, phone) VALUES ('rc-3', '601 234 569');
SELECT is((SELECT phone FROM reminder.recipient WHERE external_id = 'rc-3'), '601 234 569',
          'a national number is kept as written when no default country code is set');
SET LOCAL reminder.default_country_code = '48';
UPDATE reminder.recipient SET phone = '601 234 569' WHERE external_id = 'rc-3';
SELECT is((SELECT phone FROM reminder.recipient WHERE external_id = 'rc-3'), '+48601234569',
          '...and completed with reminder.default_country_code when set');
RESET reminder.default_country_code;
SELECT throws_ok($$ UPDATE reminder.recipient SET time_zone = 'Nowhere/Special' WHERE external_id = 'rc-2' $$,
                 '22023', 'time zone "Nowhere/Special" not recognized in recipient "time_zone"',
                 'UPDATE with an unknown time zone is refused with its own message');
SELECT throws_ok($$ INSERT INTO reminder.recipient (external_id, quiet_hours) VALUES ('rc-4', '"late"') $$,
                 '22023', 'invalid quiet hours in recipient "quiet_hours"', 'quiet hours must be an object or array');
SELECT lives_ok($$ INSERT INTO reminder.recipient (external_id, quiet_hours)
                   VALUES ('rc-5', '[{"start": "18:00", "end": "09:00"}, {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}]') $$,
                'a send window written as quiet hours is accepted');

-- stored and inline recipients resolve the same way
SELECT reminder.schedule('rc_mail', '{"external_id": "rc-1", "name": "Ada (override)"}', 'rc_hello', now(), '{"name": "x"}') AS m1 \gset
SELECT reminder.schedule('rc_mail', jsonb_build_object('id', :rid, 'email', 'other@example.com'), 'rc_hello', now(), '{"name": "x"}') AS m2 \gset
SELECT reminder.schedule('rc_mail', '{"email": "ada@example.com", "name": "Ada", "time_zone": "Europe/Warsaw", "locale": "pl-PL"}', 'rc_hello', now(), '{"name": "x"}') AS m3 \gset
SELECT is((SELECT row(recipient_id, recipient->>'email', recipient->>'name', recipient->>'time_zone', recipient->>'locale')::text FROM reminder.message WHERE id = :m1),
          row(:rid::bigint, 'ada@example.com', 'Ada (override)', 'Europe/Warsaw', 'pl-PL')::text,
          'by external_id: stored fields merged, inline keys override');
SELECT is((SELECT row(recipient_id, recipient->>'email')::text FROM reminder.message WHERE id = :m2),
          row(:rid::bigint, 'other@example.com')::text, 'by id, with an inline address');
SELECT is((SELECT row(recipient_id, recipient->>'email', recipient->>'time_zone', recipient->>'locale')::text FROM reminder.message WHERE id = :m3),
          row(NULL::bigint, 'ada@example.com', 'Europe/Warsaw', 'pl-PL')::text, 'inline: the same fields, no stored row');
SELECT reminder.schedule('rc_sms', '{"external_id": "rc-3"}', 'rc_hello', now(), '{"name": "x"}') AS m4 \gset
SELECT is((SELECT recipient->>'phone' FROM reminder.message WHERE id = :m4), '+48601234569',
          'a stored phone reaches the SMS message in E.164');

-- template locale fallback: exact, language, reminder.default_locale, first
SELECT reminder.create_template('rc_lf', 'pl-PL', locale => 'pl-PL', required => '{v_plpl}');
SELECT reminder.create_template('rc_lf', 'pl', locale => 'pl', required => '{v_pl}');
SELECT reminder.create_template('rc_lf', 'en', locale => 'en', required => '{v_en}');
SELECT reminder.create_template('rc_lf', 'cs', locale => 'cs', required => '{v_cs}');
SELECT throws_ok($$ SELECT reminder.schedule('rc_mail', '{"email": "a@example.com", "locale": "pl-PL"}', 'rc_lf') $$,
                 '22023', 'template "rc_lf" requires variable "v_plpl"', 'pl-PL picks pl-PL');
SELECT throws_ok($$ SELECT reminder.schedule('rc_mail', '{"email": "a@example.com", "locale": "pl-CZ"}', 'rc_lf') $$,
                 '22023', 'template "rc_lf" requires variable "v_pl"', 'pl-CZ falls back to pl');
SELECT throws_ok($$ SELECT reminder.schedule('rc_mail', '{"email": "a@example.com", "locale": "fr-FR"}', 'rc_lf') $$,
                 '22023', 'template "rc_lf" requires variable "v_en"', 'fr-FR falls back to reminder.default_locale (en)');
SET LOCAL reminder.default_locale = 'it';
SELECT throws_ok($$ SELECT reminder.schedule('rc_mail', '{"email": "a@example.com"}', 'rc_lf') $$,
                 '22023', 'template "rc_lf" requires variable "v_cs"', 'no match at all: the first locale');
RESET reminder.default_locale;
SELECT throws_ok($$ SELECT reminder.schedule('rc_mail', '{"external_id": "rc-1"}', 'rc_lf') $$,
                 '22023', 'template "rc_lf" requires variable "v_plpl"', 'a stored recipient''s locale is used the same way');

-- recipients per message
SET LOCAL reminder.max_recipients = 3;
SELECT lives_ok($$ SELECT reminder.schedule('rc_mail', '{"email": "a@example.com", "cc": "b@example.com", "bcc": ["c@example.com"]}', 'rc_hello', now(), '{"name": "x"}') $$,
                'three addresses with reminder.max_recipients = 3');
SELECT throws_ok($$ SELECT reminder.schedule('rc_mail', '{"email": "a@example.com", "cc": ["b@example.com", "c@example.com"], "bcc": ["d@example.com"]}', 'rc_hello', now(), '{"name": "x"}') $$,
                 '54000', 'message has too many recipients', 'four are refused');

-- deleting a stored recipient keeps its messages, resolved, without the id
DELETE FROM reminder.recipient WHERE id = :rid;
SELECT is((SELECT string_agg(coalesce(recipient_id::text, 'null') || ' ' || (recipient->>'email'), ', ' ORDER BY id)
             FROM reminder.message WHERE id IN (:m1, :m2)),
          'null ada@example.com, null other@example.com', 'deleting a stored recipient sets recipient_id to NULL');

-- drop_channel(cascade) deletes the channel's messages with their attempts
INSERT INTO reminder.attempt (message_id, attempt, started_at, outcome) VALUES (:m1, 1, now(), 'transient');
SELECT reminder.drop_channel('rc_mail', cascade => true);
SELECT is((SELECT count(*) FROM reminder.attempt WHERE message_id IN (:m1, :m2, :m3)), 0::bigint,
          'drop_channel(cascade) deletes the attempts of the messages it deletes');

SELECT * FROM finish();
ROLLBACK;
