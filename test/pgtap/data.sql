-- GDPR: forget() erases a person's data and keeps anonymous counts;
-- purge() ages finished messages out.
\ir setup.psql

BEGIN;
SELECT plan(26);

SELECT reminder.create_channel('dt_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('dt_log', 'log');
SELECT reminder.create_template('dt_t', 'Hello {{name}}');
SELECT reminder.upsert_recipient('dt-1', name => 'Ada', email => 'ada@example.com', phone => '+48601234567');

-- Ada: one sent message with an attempt, events and a log row; one pending;
-- one inline to her address; a copy on Bob's message.  Bob: his own.
SELECT reminder.schedule('dt_mail', '{"external_id": "dt-1"}', 'dt_t', now(), '{"name": "Ada", "secret": "x"}', 'ada-key-1') AS sent \gset
SELECT reminder.schedule('dt_mail', '{"external_id": "dt-1"}', 'dt_t', now() + interval '1 day', '{"name": "Ada"}') AS pending \gset
SELECT reminder.schedule('dt_log', '{"email": "ADA@example.com"}', 'dt_t', now(), '{"name": "Ada"}') AS inline \gset
SELECT reminder.schedule('dt_mail', '{"email": "bob@example.com", "cc": ["ada@example.com", "eve@example.com"]}', 'dt_t', now(), '{"name": "Bob"}') AS bob \gset
UPDATE reminder.message SET status = 'sent', sent_at = now(), next_attempt_at = NULL, attempts = 1, provider_message_id = 'prov-1' WHERE id IN (:sent, :inline);
INSERT INTO reminder.attempt (message_id, attempt, started_at, outcome, error, response, smtp_reply)
VALUES (:sent, 1, now(), 'sent', NULL, '250 OK queued for ada@example.com', '250 2.0.0 OK');
INSERT INTO reminder.log (message_id, channel, recipient, subject, body)
VALUES (:inline, 'dt_log', '{"email": "ada@example.com"}', 'Hi Ada', 'Hello Ada');
SELECT reminder.record_response(reminder.link_token(:sent, 'score', 9), NULL, 'Ada here, call me');
SELECT reminder.opt_out('{"external_id": "dt-1"}', NULL, 'news', 'form');
SELECT reminder.opt_out('{"email": "ada@example.com"}', 'sms');
-- The survey throttle's memory: her survey, one to her phone on Bob's
-- message (rows are found by message and by hashed address), and Bob's.
INSERT INTO reminder.survey_log (address_hash, message_id, rule_id) VALUES
    (reminder._address_hash('email', 'ada@example.com'), :sent, 1),
    (reminder._address_hash('phone', '+48601234567'), :bob, 1),
    (reminder._address_hash('email', 'bob@example.com'), :bob, 1);

CREATE TEMP TABLE before AS SELECT status, channel, count(*) n FROM reminder.message GROUP BY 1, 2;

SELECT bag_eq($$ SELECT object, erased FROM reminder.forget('{"external_id": "dt-1"}') $$,
              $$ VALUES ('recipients', 1::bigint), ('messages', 3), ('cancelled', 1), ('attempts', 1), ('events', 1),
                        ('log', 1), ('copies', 1), ('consent', 2), ('consent_log', 2), ('survey_log', 2), ('opt_outs_kept', 3) $$,
              'forget() says what it erased');

SELECT is((SELECT count(*) FROM reminder.recipient WHERE external_id = 'dt-1'), 0::bigint, 'the stored recipient is gone');
SELECT is((SELECT count(*) FROM reminder.message
            WHERE recipient::text ILIKE '%ada%' OR data::text ILIKE '%ada%' OR idempotency_key ILIKE '%ada%'), 0::bigint,
          'no message mentions her: recipient, data, idempotency key');
SELECT is((SELECT array_agg(DISTINCT recipient::text) FROM reminder.message WHERE id IN (:sent, :pending, :inline)),
          ARRAY['{"forgotten": true}'], 'her messages say only that they were forgotten');
SELECT is((SELECT row(status, channel, template, attempts, sent_at IS NOT NULL, provider_message_id)::text FROM reminder.message WHERE id = :sent),
          row('sent', 'dt_mail', 'dt_t', 1, true, NULL::text)::text, 'a sent message keeps status, channel, template, counts and times');
SELECT is((SELECT row(status, last_error)::text FROM reminder.message WHERE id = :pending),
          row('cancelled', 'recipient forgotten')::text, 'a pending one is cancelled');
SELECT is((SELECT row(outcome, error, response, smtp_reply)::text FROM reminder.attempt WHERE message_id = :sent),
          row('sent', NULL::text, NULL::text, NULL::text)::text, 'attempts keep their outcome, lose server text');
SELECT is((SELECT row(kind, score, comment, detail)::text FROM reminder.event WHERE message_id = :sent),
          row('answered', 9::smallint, NULL::text, '{}'::jsonb)::text, 'the survey answer keeps its score, loses its comment');
SELECT is((SELECT row(recipient, subject, body, html)::text FROM reminder.log WHERE message_id = :inline),
          row('{"forgotten": true}'::jsonb, NULL::text, '', NULL::text)::text, 'log rows are emptied');
SELECT is((SELECT recipient FROM reminder.message WHERE id = :bob),
          '{"cc": ["eve@example.com"], "email": "bob@example.com"}'::jsonb, 'her address leaves the cc of Bob''s message, nothing else does');
SELECT is((SELECT count(*) FROM reminder.consent WHERE address = 'ada@example.com' OR recipient_id IS NOT NULL), 0::bigint,
          'her consent statements are gone');
SELECT is((SELECT array_agg(address_hash) FROM reminder.survey_log), ARRAY[reminder._address_hash('email', 'bob@example.com')],
          'the survey throttle forgets her, by message and by address; Bob''s entry stays');
SELECT bag_eq($$ SELECT address, channel, category, source FROM reminder.consent $$,
              $$ VALUES ('sha256:' || encode(sha256('email:ada@example.com'), 'hex'), NULL, 'news', 'kept at erasure'),
                        ('sha256:' || encode(sha256('phone:+48601234567'), 'hex'), NULL, 'news', 'kept at erasure'),
                        ('sha256:' || encode(sha256('email:ada@example.com'), 'hex'), 'sms', NULL, 'kept at erasure') $$,
              'her opt-outs stay, by hashed address: the stored recipient''s for each of her addresses, the raw address''s for it');
SELECT is((SELECT count(*) FROM reminder.consent_log WHERE address IS NULL AND recipient_id IS NULL AND source = 'form'), 1::bigint,
          'the consent log keeps what was done and when, without whom');
SELECT bag_eq($$ SELECT CASE WHEN status = 'cancelled' THEN 'scheduled' ELSE status END, channel, count(*) FROM reminder.message GROUP BY 1, 2 $$,
              $$ SELECT status, channel, n FROM before $$, 'message counts by channel still add up (pending ones now cancelled)');
SELECT bag_eq($$ SELECT object, erased FROM reminder.forget('{"email": "ada@example.com"}') $$,
              $$ VALUES ('recipients', 0::bigint), ('messages', 0), ('cancelled', 0), ('attempts', 0), ('events', 0),
                        ('log', 0), ('copies', 0), ('consent', 0), ('consent_log', 0), ('survey_log', 0), ('opt_outs_kept', 0) $$,
              'forgetting again finds nothing');

-- imported again after the erasure
SELECT reminder.upsert_recipient('dt-1b', email => 'Ada@Example.com');
SELECT reminder.schedule('dt_log', '{"external_id": "dt-1b"}', 'dt_t', now(), '{"name": "A", "category": "news"}') AS again_news \gset
SELECT reminder.schedule('dt_log', '{"external_id": "dt-1b"}', 'dt_t', now(), '{"name": "A"}') AS again_other \gset
SELECT is((SELECT array_agg((SELECT verdict FROM reminder.gate_check(i)) ORDER BY i) FROM unnest(ARRAY[:again_news, :again_other]::bigint[]) i),
          ARRAY['suppress', 'send'],
          'imported again, she still gets no news, and what she did not opt out of');
SELECT reminder.opt_out('{"external_id": "dt-1b"}', 'dt_log');
SELECT is((SELECT erased FROM reminder.forget('{"external_id": "dt-1b"}', keep_opt_outs => false) WHERE object = 'opt_outs_kept'), 0::bigint,
          'keep_opt_outs => false keeps no new one');
SELECT is((SELECT count(*) FROM reminder.consent), 3::bigint, '...and leaves those kept before');

-- a raw address also reaches stored recipients with it
SELECT reminder.upsert_recipient('dt-2', email => 'Zoe@Example.com', phone => '+48601000009');
SELECT reminder.schedule('dt_log', '{"phone": "+48601000009"}', 'dt_t', now(), '{"name": "Zoe"}') AS zoe \gset
SELECT is((SELECT erased FROM reminder.forget('{"email": "zoe@example.com"}') WHERE object = 'recipients'), 1::bigint,
          'forget by email deletes the stored recipient with that email');
SELECT is((SELECT recipient FROM reminder.message WHERE id = :zoe), '{"forgotten": true}'::jsonb,
          '...and erases messages to that recipient''s phone');

-- purge
UPDATE reminder.message SET updated_at = now() - interval '100 days', sent_at = now() - interval '100 days'
 WHERE id IN (:sent, :inline);
UPDATE reminder.message SET updated_at = now() - interval '100 days' WHERE id = :pending;
UPDATE reminder.event SET occurred_at = now() - interval '100 days' WHERE message_id = :sent;
SELECT reminder.schedule('dt_log', '{"email": "old@example.com"}', 'dt_t', now() - interval '200 days', '{}') AS old_pending \gset
SELECT reminder.schedule('dt_log', '{"email": "answered@example.com"}', 'dt_t', now(), '{}') AS late_answer \gset
UPDATE reminder.message SET status = 'sent', next_attempt_at = NULL, sent_at = now() - interval '100 days', updated_at = now() - interval '100 days' WHERE id = :late_answer;
SELECT reminder.record_event(reminder.link_token(:late_answer, 'confirm'));
SELECT bag_eq($$ SELECT object, purged FROM reminder.purge('90 days') $$,
              $$ VALUES ('messages', 3::bigint), ('attempts', 1), ('events', 1), ('log', 1), ('partitions', 0) $$,
              'purge() deletes finished messages older than the age with their rows, and says how many');
SELECT is((SELECT count(*) FROM reminder.message WHERE id IN (:sent, :inline, :pending)), 0::bigint, 'sent and cancelled ones old enough are gone');
SELECT is((SELECT count(*) FROM reminder.message WHERE id = :old_pending), 1::bigint, 'a pending message is never purged, however old');
SELECT is((SELECT count(*) FROM reminder.message WHERE id = :late_answer), 1::bigint, 'nor one with a recent event');
SELECT is((SELECT count(*) FROM reminder.message WHERE id = :bob), 1::bigint, 'nor a recent one');

SELECT * FROM finish();
ROLLBACK;
