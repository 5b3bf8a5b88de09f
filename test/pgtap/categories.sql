-- Consent categories of rule-made messages: every message of a rule
-- carries the rule's category (watch(..., category), default the rule's
-- name), so an unsubscribe link in step 1 of a follow_up sequence with a
-- template per step stops step 2 (the B2B example of docs/rules.md);
-- schedule() messages show their data's "category".
\ir setup.psql

BEGIN;
SELECT plan(17);

SET LOCAL TimeZone = 'Europe/Warsaw';
SET LOCAL reminder.link_base_url = 'https://example.com/r';
SELECT reminder.create_channel('ct_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "office@example.com"}');
SELECT reminder.create_channel('ct_sms', 'sms', '{"provider": "smsapi"}', '{"token": "t"}');
SELECT reminder.create_template('followup_1', 'Did you have a chance to look at our offer? {{links.unsubscribe}}', 'Our offer');
SELECT reminder.create_template('followup_2', 'A last note about our offer {{links.unsubscribe}}', 'Our offer');

CREATE FUNCTION pg_temp.verdict(id bigint) RETURNS text LANGUAGE sql
RETURN (SELECT verdict FROM reminder.gate_check(id));

-- the B2B example of docs/rules.md
CREATE TABLE lead (
    id            bigint PRIMARY KEY,
    contact_name  text,
    email         text,
    phone         text,
    offer_sent_at timestamptz NOT NULL,
    replied_at    timestamptz,
    opted_out     boolean NOT NULL DEFAULT false
);
SELECT reminder.watch('lead', 'follow_up', name => 'lead_followups',
    column_name => 'offer_sent_at',
    offsets => '{3 days, 10 days}', business_days => true, time_zone => 'Europe/Warsaw',
    channel => 'ct_mail', templates => '["followup_1", "followup_2"]',
    stop_condition => 'replied_at IS NOT NULL OR opted_out',
    recipients => '{"to": {"email": {"expr": "email"}, "name": {"expr": "contact_name"}}}') AS rule_id \gset
INSERT INTO lead (id, contact_name, email, offer_sent_at)
VALUES (1, 'Ada', 'ada@example.com', now() + interval '1 hour'),
       (2, 'Bob', 'bob@example.com', now() + interval '1 hour');

SELECT id AS ada_1 FROM reminder.message WHERE rule_id = :rule_id AND source_key = '1' AND template = 'followup_1' \gset
SELECT id AS ada_2 FROM reminder.message WHERE rule_id = :rule_id AND source_key = '1' AND template = 'followup_2' \gset
SELECT id AS bob_2 FROM reminder.message WHERE rule_id = :rule_id AND source_key = '2' AND template = 'followup_2' \gset

SELECT is((SELECT category FROM reminder.rule WHERE id = :rule_id), 'lead_followups', 'a rule''s category defaults to its name');
SELECT is((SELECT array_agg(DISTINCT category) FROM reminder.message WHERE rule_id = :rule_id), ARRAY['lead_followups'],
          'every message of the rule carries it, whatever its template');
SELECT is(pg_temp.verdict(:ada_2), 'send', 'step 2 goes out while nobody opted out');

-- the link in step 1, as the recipient clicks it
SELECT ok(reminder.preview_links(:ada_1) ->> 'unsubscribe' LIKE 'https://example.com/r/%', 'step 1 has an unsubscribe link');
SELECT reminder.record_event(reminder.link_token(:ada_1, 'unsubscribe')) AS event_id \gset
SELECT is((SELECT row(address, channel, category, opted_out, source)::text FROM reminder.consent),
          row('ada@example.com', NULL::text, 'lead_followups', true, 'unsubscribe link')::text,
          'the unsubscribe link opts the address out of the rule''s category');
SELECT is(pg_temp.verdict(:ada_2), 'suppress', 'step 2, another template, is suppressed');
SELECT matches((SELECT reason FROM reminder.gate_check(:ada_2)), 'category lead_followups .*via unsubscribe link',
               'the reason names the category and the link');
SELECT is(pg_temp.verdict(:bob_2), 'send', 'the other lead''s sequence goes on');

-- the row moves: the moved messages keep the category
UPDATE lead SET offer_sent_at = offer_sent_at + interval '1 day' WHERE id = 1;
SELECT is((SELECT category FROM reminder.message WHERE id = :ada_2), 'lead_followups', 'a moved message keeps its category');
SELECT is(pg_temp.verdict(:ada_2), 'suppress', '...and stays suppressed');

-- an explicit category, shared by two rules: one opt-out covers both
CREATE TABLE visit (id bigint PRIMARY KEY, starts_at timestamptz NOT NULL, phone text);
SELECT reminder.create_template('visit_sms', 'Your visit {{row.starts_at | datetime short}}');
SELECT reminder.watch('visit', 'before', name => 'visit_day_before', column_name => 'starts_at',
    offsets => '{1 day}', channel => 'ct_sms', template => 'visit_sms', category => 'visits',
    recipients => '{"to": {"phone": {"expr": "phone"}}}') AS visit_rule \gset
SELECT reminder.watch('visit', 'before', name => 'visit_hour_before', column_name => 'starts_at',
    offsets => '{1 hour}', channel => 'ct_sms', template => 'visit_sms', category => 'visits',
    recipients => '{"to": {"phone": {"expr": "phone"}}}') AS visit_rule2 \gset
INSERT INTO visit VALUES (1, now() + interval '3 days', '+48601234567');
SELECT is((SELECT array_agg(DISTINCT category) FROM reminder.message WHERE rule_id IN (:visit_rule, :visit_rule2)),
          ARRAY['visits'], 'watch(..., category) names the category of the rule''s messages');
SELECT reminder.opt_out('{"phone": "+48601234567"}', category => 'visits', source => 'reply STOP');
SELECT is((SELECT array_agg(DISTINCT g.verdict) FROM reminder.message m, reminder.gate_check(m.id) g
            WHERE m.rule_id IN (:visit_rule, :visit_rule2)), ARRAY['suppress'],
          'an opt-out of the category covers the messages of both rules');

SELECT throws_ok($$SELECT reminder.watch('visit', 'before', name => 'visit_bad', column_name => 'starts_at',
    offsets => '{1 hour}', channel => 'ct_sms', template => 'visit_sms', category => 'two words',
    recipients => '{"to": {"phone": {"expr": "phone"}}}')$$, '22023', 'invalid category name "two words"',
    'a category has the shape of a name');
SELECT is((SELECT count(*) FROM reminder.rule WHERE name = 'visit_bad'), 0::bigint, '...and nothing is stored');

-- schedule(): the data's "category" is the message's, shown in message.category
SELECT reminder.schedule('ct_mail', '{"email": "carl@example.com"}', 'followup_1', now(), '{"category": "offers"}') AS carl_offer \gset
SELECT reminder.schedule('ct_mail', '{"email": "carl@example.com"}', 'followup_2') AS carl_plain \gset
SELECT is((SELECT category FROM reminder.message WHERE id = :carl_offer), 'offers', 'schedule() stores the data''s category');
SELECT is((SELECT category FROM reminder.message WHERE id = :carl_plain), NULL,
          'without one, the category is the template name (NULL in message.category)');
SELECT reminder.opt_out('{"email": "carl@example.com"}', category => 'offers');
SELECT is((SELECT array_agg(g.verdict ORDER BY m.id) FROM reminder.message m, reminder.gate_check(m.id) g
            WHERE m.recipient ->> 'email' = 'carl@example.com'), ARRAY['suppress', 'send'],
          'an opt-out of the data''s category covers that message only');

SELECT * FROM finish();
ROLLBACK;
