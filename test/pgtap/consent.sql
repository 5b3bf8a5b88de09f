-- Opt-out and opt-in: scopes, the latest covering statement wins, the log,
-- and the send-time gate that applies it to messages already scheduled.
\ir setup.psql

BEGIN;
SELECT plan(18);

SELECT reminder.create_channel('cs_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('cs_sms', 'sms', '{"provider": "smsapi"}', '{"token": "t"}');
SELECT reminder.create_template('cs_news', 'News');
SELECT reminder.create_template('cs_meeting', 'Meeting');
SELECT reminder.upsert_recipient('cs-1', email => 'Ada@Example.com', phone => '+48601234567');

-- scheduled before any opt-out
SELECT reminder.schedule('cs_mail', '{"email": "bob@example.com"}', 'cs_news') AS bob_news \gset
SELECT reminder.schedule('cs_mail', '{"email": "bob@example.com"}', 'cs_meeting') AS bob_meeting \gset
SELECT reminder.schedule('cs_sms', '{"phone": "+48 601 000 001", "email": "bob@example.com"}', 'cs_meeting') AS bob_sms \gset
SELECT reminder.schedule('cs_mail', '{"email": "ada@example.com"}', 'cs_meeting') AS ada_inline \gset
SELECT reminder.schedule('cs_sms', '{"external_id": "cs-1"}', 'cs_meeting') AS ada_sms \gset
SELECT reminder.schedule('cs_mail', '{"email": "carl@example.com"}', 'cs_meeting', now(), '{"category": "marketing"}') AS carl \gset

CREATE FUNCTION pg_temp.verdict(id bigint) RETURNS text LANGUAGE sql
RETURN (SELECT verdict FROM reminder.gate_check(id));

SELECT is(pg_temp.verdict(:bob_news), 'send', 'no statement: send');

-- a category (the template name by default)
SELECT reminder.opt_out('{"email": "BOB@example.com"}', NULL, 'cs_news', 'preferences page');
SELECT is(pg_temp.verdict(:bob_news), 'suppress', 'opt-out of a category suppresses a message scheduled before it');
SELECT is(pg_temp.verdict(:bob_meeting), 'send', '...and only that category');
SELECT matches((SELECT reason FROM reminder.gate_check(:bob_news)), 'category cs_news .* via preferences page', 'the reason names scope and source');

-- a channel kind
SELECT reminder.opt_out('{"email": "bob@example.com"}', 'sms');
SELECT is(pg_temp.verdict(:bob_sms), 'suppress', 'opt-out of kind sms covers an SMS channel (matched by any address of the message)');
SELECT is(pg_temp.verdict(:bob_meeting), 'send', '...but not email');

-- the latest covering statement wins
SELECT reminder.opt_out('{"email": "bob@example.com"}');
SELECT is(pg_temp.verdict(:bob_meeting), 'suppress', 'opt-out of everything');
SELECT reminder.opt_in('{"email": "bob@example.com"}', 'cs_mail');
SELECT is(pg_temp.verdict(:bob_meeting), 'send', 'a later opt-in to one channel re-opens it');
SELECT is(pg_temp.verdict(:bob_sms), 'suppress', '...and no other');
SELECT reminder.opt_out('{"email": "bob@example.com"}');
SELECT is(pg_temp.verdict(:bob_meeting), 'suppress', 'a later opt-out of everything wins again');

-- a stored recipient covers messages to their address, even inline ones
SELECT reminder.opt_out('{"external_id": "cs-1"}', 'email');
SELECT is(pg_temp.verdict(:ada_inline), 'suppress', 'a stored recipient''s opt-out covers inline messages to their email');
SELECT is(pg_temp.verdict(:ada_sms), 'send', '...within its scope only');

-- data->>'category' is the category when given
SELECT reminder.opt_out('{"email": "carl@example.com"}', NULL, 'cs_meeting');
SELECT is(pg_temp.verdict(:carl), 'send', 'a message with data.category is not in its template''s category');
SELECT reminder.opt_out('{"email": "carl@example.com"}', NULL, 'marketing');
SELECT is(pg_temp.verdict(:carl), 'suppress', 'but in the one it names');

-- storage and log
SELECT reminder.opt_out('{"email": "dora@example.com", "phone": "+48 601 000 002"}', NULL, NULL, 'paper form');
SELECT bag_eq($$ SELECT address FROM reminder.consent WHERE source = 'paper form' $$,
              ARRAY['dora@example.com', '+48601000002'], 'email and phone each get a statement, normalised');
SELECT is((SELECT count(*) FROM reminder.consent WHERE address = 'bob@example.com' AND channel IS NULL AND category IS NULL), 1::bigint,
          'one current statement per subject and scope');
SELECT is((SELECT count(*) FROM reminder.consent_log WHERE address = 'bob@example.com'), 5::bigint,
          'but every request is logged');
SELECT is((SELECT row(action, source, changed_by)::text FROM reminder.consent_log WHERE address = 'bob@example.com' ORDER BY id LIMIT 1),
          row('opt_out', 'preferences page', session_user::text)::text, 'with action, source and who');

SELECT * FROM finish();
ROLLBACK;
