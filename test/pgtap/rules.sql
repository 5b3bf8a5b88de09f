-- Rules on business tables: every kind, the semantics of writes (insert,
-- move, cancel, delete, truncate, rollback, repeat), per-row settings, the
-- business calendar, caches seeing changes, DDL on watched tables, and the
-- send-time checks as reminder.gate_check() reports them.
\ir setup.psql

BEGIN;
SELECT plan(84);

SET LOCAL TimeZone = 'UTC';
SELECT reminder.create_channel('ru_sms', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9"}', '{"token": "t"}');
SELECT reminder.create_channel('ru_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('ru_log', 'log');
SELECT reminder.create_template('ru_meeting_sms', 'Meeting {{row.title}} at {{row.starts_at}}');
SELECT reminder.create_template('ru_meeting_op', 'Meeting {{row.title}}', 'Meeting soon');

-- ---------------------------------------------------------------------------
-- Seed: meetings.  SMS to the client 24 h and 1 h before, email to the
-- operator 15 min before, while the meeting is not cancelled.
-- ---------------------------------------------------------------------------
CREATE TABLE ru_meeting (
    id bigint PRIMARY KEY,
    title text NOT NULL,
    starts_at timestamptz NOT NULL,
    client_phone text,
    operator_email text,
    cancelled boolean NOT NULL DEFAULT false
);
SELECT reminder.watch('ru_meeting', 'before', name => 'ru_meeting', column_name => 'starts_at',
    condition => 'NOT cancelled',
    recipients => '[
      {"role": "client", "channel": "ru_sms", "template": "ru_meeting_sms",
       "offsets": ["24 hours", "1 hour"], "to": {"phone": {"expr": "client_phone"}}},
      {"role": "operator", "channel": "ru_mail", "template": "ru_meeting_op",
       "offsets": ["15 minutes"], "to": {"email": {"expr": "operator_email"}}, "bcc": ["boss@example.com"]}
    ]') AS meeting_rule \gset

CREATE FUNCTION pg_temp.leads(rule bigint, key text)
RETURNS TABLE (role text, lead interval, status text) LANGUAGE sql AS $$
    SELECT m.recipient->>'role', s.starts_at - m.due_at, m.status
      FROM reminder.message m
      LEFT JOIN ru_meeting s ON s.id::text = m.source_key
     WHERE m.rule_id = rule AND m.source_key = key
     ORDER BY m.idempotency_key
$$;

INSERT INTO ru_meeting VALUES (1, 'Kickoff', now() + interval '3 days', '+48 601 234 567', 'op@example.com');
SELECT results_eq($$SELECT role, lead, status FROM pg_temp.leads($$ || :meeting_rule || $$, '1')$$,
    $$VALUES ('client', interval '24 hours', 'scheduled'), ('client', '1 hour', 'scheduled'), ('operator', '15 minutes', 'scheduled')$$,
    'INSERT schedules SMS 24 h and 1 h before for the client, email 15 min before for the operator');
SELECT is((SELECT recipient FROM reminder.message WHERE rule_id = :meeting_rule AND recipient->>'role' = 'client' LIMIT 1),
    '{"role": "client", "phone": "+48601234567", "time_zone": "UTC"}',
    'the phone number is normalized, the role kept, the rule''s time zone added');
SELECT is((SELECT recipient->'bcc' FROM reminder.message WHERE rule_id = :meeting_rule AND recipient->>'role' = 'operator'),
    '["boss@example.com"]', 'the operator''s email carries the bcc');
SELECT is((SELECT DISTINCT data FROM reminder.message WHERE rule_id = :meeting_rule),
    '{}', 'a before rule''s messages keep no copy of the row');
SELECT alike((SELECT string_agg(r.body, ', ' ORDER BY m.idempotency_key) FROM reminder.message m, reminder.render(m.id) r
                WHERE m.rule_id = :meeting_rule),
    'Meeting Kickoff at ____-__-__T__:__:%+00:00, Meeting Kickoff at %, Meeting Kickoff',
    'they are rendered with the row as it is, its times in the rule''s time zone');
SELECT is((SELECT string_agg(DISTINCT source_table || ' ' || source_key, ',') FROM reminder.message WHERE rule_id = :meeting_rule),
    'public.ru_meeting 1', 'messages record their source table and row key');
SELECT ok(NOT EXISTS (SELECT FROM reminder.message WHERE rule_id = :meeting_rule AND idempotency_key NOT LIKE 'rule:' || :meeting_rule || ':1:%'),
    'keys are derived from rule, recipient, step and row');

SELECT array_agg(id ORDER BY id) AS ids FROM reminder.message WHERE rule_id = :meeting_rule \gset first_
UPDATE ru_meeting SET starts_at = starts_at + interval '1 day' WHERE id = 1;
SELECT results_eq($$SELECT role, lead, status FROM pg_temp.leads($$ || :meeting_rule || $$, '1')$$,
    $$VALUES ('client', interval '24 hours', 'scheduled'), ('client', '1 hour', 'scheduled'), ('operator', '15 minutes', 'scheduled')$$,
    'moving the meeting moves its pending reminders');
SELECT is((SELECT array_agg(id ORDER BY id) FROM reminder.message WHERE rule_id = :meeting_rule), :'first_ids'::bigint[],
    'the same messages, none added');
SELECT array_agg(ctid::text ORDER BY id) AS ctids FROM reminder.message WHERE rule_id = :meeting_rule \gset before_title_
UPDATE ru_meeting SET title = 'Kickoff!' WHERE id = 1;
UPDATE ru_meeting SET title = 'Kickoff!!' WHERE id = 1;
UPDATE ru_meeting SET title = 'Kickoff!!' WHERE id = 1;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule), 3::bigint,
    'repeated UPDATEs never duplicate');
SELECT is((SELECT array_agg(ctid::text ORDER BY id) FROM reminder.message WHERE rule_id = :meeting_rule), :'before_title_ctids',
    'an UPDATE of columns the rule does not read (the title) leaves its messages untouched');
SELECT is((SELECT count(*) FROM reminder.message m, reminder.render(m.id) r
            WHERE m.rule_id = :meeting_rule AND r.body LIKE 'Meeting Kickoff!!%'), 3::bigint,
    'and they show the title as it is now');

-- a sent reminder is not sent again when the meeting moves
UPDATE reminder.message SET status = 'sent', sent_at = now(), next_attempt_at = NULL
 WHERE rule_id = :meeting_rule AND idempotency_key LIKE 'rule:%:1:0:0';
SELECT due_at AS sent_due FROM reminder.message WHERE rule_id = :meeting_rule AND status = 'sent' \gset
UPDATE ru_meeting SET starts_at = starts_at + interval '2 hours' WHERE id = 1;
SELECT results_eq($$SELECT status, due_at FROM reminder.message WHERE rule_id = $$ || :meeting_rule || $$ AND status = 'sent'$$,
    $$VALUES ('sent', '$$ || :'sent_due' || $$'::timestamptz)$$, 'a sent reminder stays as it was');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule), 3::bigint, 'and is not sent again');

-- condition: cancelled meetings have no pending reminders; uncancelled, they come back
UPDATE ru_meeting SET cancelled = true WHERE id = 1;
SELECT results_eq($$SELECT status, last_error FROM reminder.message WHERE rule_id = $$ || :meeting_rule || $$ AND status <> 'sent' ORDER BY id$$,
    $$VALUES ('cancelled', 'rule: row changed'), ('cancelled', 'rule: row changed')$$,
    'an UPDATE making the condition false cancels pending reminders');
UPDATE ru_meeting SET cancelled = false WHERE id = 1;
SELECT results_eq($$SELECT status, last_error FROM reminder.message WHERE rule_id = $$ || :meeting_rule || $$ AND status <> 'sent' ORDER BY id$$,
    $$VALUES ('scheduled', NULL::text), ('scheduled', NULL)$$,
    'making it true again brings them back');
SELECT ok((SELECT reminder.cancel(id) FROM reminder.message WHERE rule_id = :meeting_rule AND recipient->>'role' = 'operator'),
    'a reminder cancelled by hand...');
UPDATE ru_meeting SET title = 'Kickoff again' WHERE id = 1;
SELECT is((SELECT status FROM reminder.message WHERE rule_id = :meeting_rule AND recipient->>'role' = 'operator'),
    'cancelled', '...stays cancelled when the row changes');

-- the client's phone goes away: no SMS; it comes back: SMS again
UPDATE ru_meeting SET client_phone = NULL WHERE id = 1;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND recipient->>'role' = 'client' AND status = 'scheduled'),
    0::bigint, 'a recipient whose address becomes NULL gets nothing');

-- DELETE, rollback, TRUNCATE
INSERT INTO ru_meeting VALUES (2, 'Review', now() + interval '2 days', '+48601000002', 'op@example.com');
DELETE FROM ru_meeting WHERE id = 2;
SELECT results_eq($$SELECT DISTINCT status, last_error FROM reminder.message WHERE rule_id = $$ || :meeting_rule || $$ AND source_key = '2'$$,
    $$VALUES ('cancelled', 'rule: row deleted')$$, 'DELETE cancels pending reminders');
SAVEPOINT before_rollback;
INSERT INTO ru_meeting VALUES (3, 'Rolled back', now() + interval '2 days', '+48601000003', 'op@example.com');
ROLLBACK TO SAVEPOINT before_rollback;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND source_key = '3'), 0::bigint,
    'a rolled-back INSERT leaves no message');
INSERT INTO ru_meeting VALUES (2, 'Review again', now() + interval '2 days', '+48601000002', 'op@example.com');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND source_key = '2' AND status = 'scheduled'),
    3::bigint, 'a row deleted and inserted again gets its reminders back');
SET LOCAL session_replication_role = replica;	-- the rule's triggers do not fire
DELETE FROM ru_meeting WHERE id = 2;
RESET session_replication_role;
SELECT min(id) AS gone_id FROM reminder.message WHERE rule_id = :meeting_rule AND source_key = '2' AND status = 'scheduled' \gset
SELECT results_eq($$SELECT verdict, reason FROM reminder.gate_check($$ || :gone_id || $$)$$,
    $$VALUES ('cancel', 'rule: row no longer exists')$$, 'a message whose row is gone when it falls due is cancelled');
SELECT throws_like($$SELECT * FROM reminder.render($$ || :gone_id || $$)$$, '% would not be sent: rule: row no longer exists',
    'and has nothing to preview');
INSERT INTO ru_meeting SELECT g, 'Bulk', now() + interval '3 days', '+48601' || lpad(g::text, 6, '0'), 'op@example.com'
  FROM generate_series(10, 59) g;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND source_key::int BETWEEN 10 AND 59),
    150::bigint, 'one INSERT ... SELECT of 50 rows: 150 reminders');
DELETE FROM ru_meeting WHERE id = 1;
SELECT is((SELECT count(*) FILTER (WHERE source_key = '1') || '/' || count(*) FILTER (WHERE source_key::int BETWEEN 10 AND 19)
             FROM reminder.message WHERE rule_id = :meeting_rule AND status = 'scheduled'),
    '0/30', 'a row''s messages are found by their key prefix: deleting row 1 leaves those of rows 10 to 19');
TRUNCATE ru_meeting;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND status IN ('scheduled', 'retrying')),
    0::bigint, 'TRUNCATE cancels every pending reminder of the table');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND last_error = 'rule: table truncated'),
    153::bigint, 'with the reason');

-- offsets already past at insert time: skipped by default
INSERT INTO ru_meeting VALUES (4, 'Soon', now() + interval '30 minutes', '+48601000004', 'op@example.com');
SELECT results_eq($$SELECT role, lead FROM pg_temp.leads($$ || :meeting_rule || $$, '4')$$,
    $$VALUES ('operator', interval '15 minutes')$$, 'a reminder already past when the row is written is skipped');
SELECT reminder.watch('ru_meeting', 'before', name => 'ru_meeting_late', column_name => 'starts_at',
    offsets => '{1 hour}', if_past => 'send', channel => 'ru_log', template => 'ru_meeting_op',
    recipients => '{"to": {"name": {"expr": "title"}}}') AS late_rule \gset
INSERT INTO ru_meeting VALUES (5, 'Sooner', now() + interval '30 minutes', NULL, NULL);
SELECT is((SELECT due_at FROM reminder.message WHERE rule_id = :late_rule AND source_key = '5'),
    now() - interval '30 minutes', 'with if_past => send it is scheduled at its (past) time: the worker sends it at once');

-- ---------------------------------------------------------------------------
-- Seed: order status notifications, once per transition.
-- ---------------------------------------------------------------------------
SELECT reminder.create_template('ru_paid', 'Order {{row.id}} paid ({{old.status}} -> {{row.status}})');
SELECT reminder.create_template('ru_shipped', 'Order {{row.id}} shipped');
SELECT reminder.create_template('ru_delivered', 'Order {{row.id}} delivered');
CREATE TABLE ru_order (id int PRIMARY KEY, status text NOT NULL, email text NOT NULL, total numeric);
SELECT reminder.watch('ru_order', 'on_change', name => 'ru_order_status', column_name => 'status',
    channel => 'ru_mail',
    templates => '{"paid": "ru_paid", "shipped": "ru_shipped", "delivered": "ru_delivered"}',
    recipients => '{"role": "customer", "to": {"email": {"expr": "email"}}}') AS order_rule \gset
SELECT is((SELECT changes_to FROM reminder.rule WHERE id = :order_rule), '{paid,shipped,delivered}'::text[],
    'the values of interest come from the templates');
INSERT INTO ru_order VALUES (1, 'new', 'ada@example.com', 10);
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :order_rule), 0::bigint, 'a new order sends nothing');
UPDATE ru_order SET status = 'paid' WHERE id = 1;
SELECT results_eq($$SELECT template, data->'old'->>'status', data->'row'->>'status', due_at FROM reminder.message WHERE rule_id = $$ || :order_rule,
    $$VALUES ('ru_paid', 'new', 'paid', now())$$, 'new -> paid: the paid message, due now, with old and row');
UPDATE ru_order SET status = 'paid', total = 12 WHERE id = 1;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :order_rule), 1::bigint, 'setting the same status again sends nothing');
UPDATE ru_order SET status = 'shipped' WHERE id = 1;
UPDATE ru_order SET status = 'delivered' WHERE id = 1;
SELECT results_eq($$SELECT template FROM reminder.message WHERE rule_id = $$ || :order_rule || $$ ORDER BY id$$,
    $$VALUES ('ru_paid'), ('ru_shipped'), ('ru_delivered')$$, 'each transition sends its own message');
UPDATE ru_order SET status = 'returned' WHERE id = 1;
UPDATE ru_order SET status = 'shipped' WHERE id = 1;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :order_rule), 3::bigint,
    'a value without a template sends nothing, and a value reached again is not sent twice');
INSERT INTO ru_order VALUES (2, 'paid', 'bob@example.com', 5);
SELECT is((SELECT template FROM reminder.message WHERE rule_id = :order_rule AND source_key = '2'), 'ru_paid',
    'an order inserted as paid counts as a change to paid');

-- ---------------------------------------------------------------------------
-- Seed: B2B follow-ups in business days, stopped by a reply.
-- ---------------------------------------------------------------------------
SELECT reminder.create_template('ru_followup_1', 'Any thoughts on our offer?');
SELECT reminder.create_template('ru_followup_2', 'Last call');
INSERT INTO reminder.holiday (calendar, day, name) VALUES ('default', '2030-01-07', 'A Monday off');
CREATE TABLE ru_lead (id int PRIMARY KEY, email text NOT NULL, offer_sent_at timestamptz, replied_at timestamptz,
                      opted_out boolean NOT NULL DEFAULT false);
CREATE TABLE ru_reply (lead_id int, at timestamptz);
CREATE FUNCTION public.ru_has_replied(lead int) RETURNS boolean
    LANGUAGE sql STABLE AS 'SELECT EXISTS (SELECT FROM public.ru_reply WHERE lead_id = lead)';
SELECT reminder.watch('ru_lead', 'follow_up', name => 'ru_followup', column_name => 'offer_sent_at',
    offsets => '{3 days, 10 days}', business_days => true, time_zone => 'UTC',
    channel => 'ru_mail', templates => '["ru_followup_1", "ru_followup_2"]',
    stop_condition => 'replied_at IS NOT NULL OR opted_out OR public.ru_has_replied(id)',
    recipients => '{"to": {"email": {"expr": "email"}}}') AS followup_rule \gset
SELECT is(reminder.add_business_days('2030-01-04 10:00+00', 3), '2030-01-10 10:00+00'::timestamptz,
    'Friday + 3 business days, a Monday holiday between: Thursday');
SELECT ok(NOT reminder.is_business_day('2030-01-07') AND NOT reminder.is_business_day('2030-01-05')
          AND reminder.is_business_day('2030-01-08'), 'holidays and weekends are not business days');
INSERT INTO ru_lead VALUES (1, 'lead@example.com', '2030-01-04 10:00+00', NULL);
SELECT results_eq($$SELECT template, due_at FROM reminder.message WHERE rule_id = $$ || :followup_rule || $$ ORDER BY due_at$$,
    $$VALUES ('ru_followup_1', '2030-01-10 10:00+00'::timestamptz), ('ru_followup_2', '2030-01-21 10:00+00')$$,
    'follow-ups 3 and 10 business days after the offer');
SELECT id AS fu1 FROM reminder.message WHERE rule_id = :followup_rule AND template = 'ru_followup_1' \gset
SELECT results_eq($$SELECT verdict FROM reminder.gate_check($$ || :fu1 || $$)$$, $$VALUES ('send')$$,
    'no reply yet: the worker would send');
INSERT INTO ru_reply VALUES (1, now());
SELECT results_eq($$SELECT verdict, reason FROM reminder.gate_check($$ || :fu1 || $$)$$,
    $$VALUES ('suppress', 'rule: stop condition holds')$$,
    'a reply recorded elsewhere: the stop condition, checked against the current row at send time, suppresses it');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :followup_rule AND status = 'scheduled'), 2::bigint,
    'gate_check() only reports: nothing changed');
UPDATE ru_lead SET replied_at = now() WHERE id = 1;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :followup_rule AND status = 'scheduled'), 0::bigint,
    'replied_at set on the row: the pending follow-ups are cancelled at once');
INSERT INTO ru_lead VALUES (2, 'quiet@example.com', NULL, NULL);
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :followup_rule AND source_key = '2'), 0::bigint,
    'no offer sent (anchor NULL): no follow-up');
UPDATE ru_lead SET offer_sent_at = '2030-02-01 09:00+00' WHERE id = 2;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :followup_rule AND source_key = '2'), 2::bigint,
    'the offer goes out: the sequence starts');
DELETE FROM ru_lead WHERE id = 2;
INSERT INTO ru_lead VALUES (2, 'quiet@example.com', '2030-02-01 09:00+00', NULL);
SELECT id AS fu2 FROM reminder.message WHERE rule_id = :followup_rule AND source_key = '2' ORDER BY due_at LIMIT 1 \gset
ALTER TABLE ru_lead DISABLE TRIGGER reminder_ru_followup_delete;
DELETE FROM ru_lead WHERE id = 2;
ALTER TABLE ru_lead ENABLE TRIGGER reminder_ru_followup_delete;
SELECT results_eq($$SELECT verdict, reason FROM reminder.gate_check($$ || :fu2 || $$)$$,
    $$VALUES ('cancel', 'rule: row no longer exists')$$, 'a row gone behind the trigger''s back: cancel at send time');

-- ---------------------------------------------------------------------------
-- Seed: NPS survey two days after completion, one per person per 90 days.
-- ---------------------------------------------------------------------------
SELECT reminder.create_template('ru_nps', 'How likely are you to recommend us? {{links.score.10}}');
CREATE TABLE ru_job (id int PRIMARY KEY, status text NOT NULL, email text NOT NULL);
SELECT reminder.watch('ru_job', 'survey', name => 'ru_nps', column_name => 'status', changes_to => '{completed}',
    offsets => '{2 days}', channel => 'ru_mail', template => 'ru_nps',
    recipients => '{"to": {"email": {"expr": "email"}}}') AS survey_rule \gset
SELECT is((SELECT throttle FROM reminder.rule WHERE id = :survey_rule), '90 days'::interval, 'the throttle defaults to 90 days');
INSERT INTO ru_job VALUES (1, 'open', 'Ada@Example.com'), (2, 'open', 'ada@example.com'), (3, 'open', 'bob@example.com');
UPDATE ru_job SET status = 'completed';
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :survey_rule AND due_at = now() + interval '2 days'),
    3::bigint, 'completed: a survey two days later, per job');
SELECT id AS s1 FROM reminder.message WHERE rule_id = :survey_rule AND source_key = '1' \gset
SELECT id AS s2 FROM reminder.message WHERE rule_id = :survey_rule AND source_key = '2' \gset
SELECT id AS s3 FROM reminder.message WHERE rule_id = :survey_rule AND source_key = '3' \gset
SELECT results_eq($$SELECT verdict FROM reminder.gate_check($$ || :s2 || $$)$$, $$VALUES ('send')$$,
    'nobody surveyed yet: send');
-- what the worker records when it lets the first survey through
INSERT INTO reminder.survey_log (address_hash, message_id, rule_id)
VALUES (sha256(convert_to('email:ada@example.com', 'UTF8')), :s1, :survey_rule);
UPDATE reminder.message SET status = 'sent', sent_at = now(), next_attempt_at = NULL WHERE id = :s1;
SELECT results_eq($$SELECT verdict, reason FROM reminder.gate_check($$ || :s2 || $$)$$,
    $$VALUES ('suppress', 'survey throttle: surveyed within 90 days')$$,
    'the same person (address case aside) within 90 days: suppressed, not retried');
SELECT results_eq($$SELECT verdict FROM reminder.gate_check($$ || :s3 || $$)$$, $$VALUES ('send')$$,
    'someone else: send');
SELECT ok(NOT EXISTS (SELECT FROM reminder.survey_log WHERE message_id IN (:s2, :s3)), 'gate_check() logs nothing');

-- ---------------------------------------------------------------------------
-- Seed: per-row settings.  A task says whether to remind the client and/or
-- the operator, by SMS or email, how long before, at which address.
-- ---------------------------------------------------------------------------
SELECT reminder.create_template('ru_task', 'Task {{row.title}} is due {{row.due_at}}');
CREATE TABLE ru_task (
    id int PRIMARY KEY,
    title text NOT NULL,
    due_at timestamptz NOT NULL,
    remind_client boolean NOT NULL DEFAULT false,
    client_channel text,
    client_contact text,
    client_lead interval,
    remind_operator boolean NOT NULL DEFAULT false,
    operator_channel text,
    operator_contact text,
    operator_lead interval
);
SELECT reminder.watch('ru_task', 'before', name => 'ru_task', column_name => 'due_at', template => 'ru_task',
    recipients => $$[
      {"role": "client", "when": "remind_client",
       "channel": {"expr": "client_channel"},
       "offsets": {"expr": "client_lead"},
       "to": {"expr": "CASE client_channel WHEN 'ru_sms' THEN jsonb_build_object('phone', client_contact) ELSE jsonb_build_object('email', client_contact) END"}},
      {"role": "operator", "when": "remind_operator",
       "channel": {"expr": "operator_channel"},
       "offsets": {"expr": "operator_lead"},
       "to": {"expr": "CASE operator_channel WHEN 'ru_sms' THEN jsonb_build_object('phone', operator_contact) ELSE jsonb_build_object('email', operator_contact) END"}}
    ]$$) AS task_rule \gset
INSERT INTO ru_task VALUES
    (1, 'Call back', now() + interval '2 days', true, 'ru_sms', '+48601000001', '2 hours', true, 'ru_mail', 'op@example.com', '30 minutes'),
    (2, 'Send quote', now() + interval '2 days', false, 'ru_sms', '+48601000002', '2 hours', true, 'ru_sms', '+48601999999', '1 day'),
    (3, 'Nothing', now() + interval '2 days', false, NULL, NULL, NULL, false, NULL, NULL, NULL);
SELECT results_eq($$SELECT source_key, recipient->>'role', channel, coalesce(recipient->>'phone', recipient->>'email'),
                           (SELECT t.due_at FROM ru_task t WHERE t.id::text = m.source_key) - m.due_at
                      FROM reminder.message m WHERE rule_id = $$ || :task_rule || $$ ORDER BY source_key, idempotency_key$$,
    $$VALUES ('1', 'client', 'ru_sms', '+48601000001', interval '2 hours'),
             ('1', 'operator', 'ru_mail', 'op@example.com', '30 minutes'),
             ('2', 'operator', 'ru_sms', '+48601999999', '1 day')$$,
    'each row says who is reminded, by what, how long before, at which address');
UPDATE ru_task SET client_lead = '3 hours' WHERE id = 1;
SELECT is((SELECT due_at FROM reminder.message WHERE rule_id = :task_rule AND source_key = '1' AND recipient->>'role' = 'client'),
    (SELECT due_at - interval '3 hours' FROM ru_task WHERE id = 1), 'a new lead time moves the reminder');
UPDATE ru_task SET remind_client = false WHERE id = 1;
SELECT is((SELECT status FROM reminder.message WHERE rule_id = :task_rule AND source_key = '1' AND recipient->>'role' = 'client'),
    'cancelled', 'not reminding the client any more cancels the client''s reminder');
UPDATE ru_task SET client_channel = 'ru_mail', client_contact = 'client@example.com', remind_client = true WHERE id = 1;
SELECT results_eq($$SELECT channel, recipient->>'email', status FROM reminder.message WHERE rule_id = $$ || :task_rule || $$ AND source_key = '1' AND recipient->>'role' = 'client'$$,
    $$VALUES ('ru_mail', 'client@example.com', 'scheduled')$$, 'switching the client to email reschedules by email');
SELECT throws_ok($$UPDATE ru_task SET client_channel = 'ru_nosuch' WHERE id = 1$$, '42704', NULL,
    'a row naming a channel that does not exist is refused');
SELECT reminder.create_channel('ru_tmp', 'log');
INSERT INTO ru_task VALUES (4, 'Temp', now() + interval '2 days', true, 'ru_tmp', 'x@example.com', '1 hour', false, NULL, NULL, NULL);
SELECT reminder.drop_channel('ru_tmp', true);
UPDATE ru_task SET client_channel = 'ru_mail' WHERE id = 4;
SELECT results_eq($$SELECT channel, status FROM reminder.message WHERE rule_id = $$ || :task_rule || $$ AND source_key = '4'$$,
    $$VALUES ('ru_mail', 'scheduled')$$, 'a row whose channel was dropped can be moved to another one');

-- ---------------------------------------------------------------------------
-- A partitioned table keyed by two columns: keys with separators in them are
-- encoded, and the row is found again at send time by both columns.
-- ---------------------------------------------------------------------------
CREATE TABLE ru_visit (region text, id int, title text NOT NULL, at timestamptz NOT NULL,
                       PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE ru_visit_eu PARTITION OF ru_visit FOR VALUES IN ('eu:west', 'eu:east');
SELECT reminder.watch('ru_visit', 'after', name => 'ru_visit', column_name => 'at', channel => 'ru_log',
    template => 'ru_meeting_op', recipients => '{"to": {"email": "ops@example.com"}}') AS visit_rule \gset
INSERT INTO ru_visit VALUES ('eu:west', 1, 'West one', now() + interval '1 day'),
                            ('eu:east', 1, 'East one', now() + interval '1 day');
UPDATE ru_visit SET title = title || '!';
SELECT results_eq($$SELECT m.source_key, m.idempotency_key COLLATE "default", r.body FROM reminder.message m, reminder.render(m.id) r
                     WHERE m.rule_id = $$ || :visit_rule || $$ ORDER BY m.idempotency_key$$,
    $$VALUES ('["eu:east", "1"]', 'rule:$$ || :visit_rule || $$:%5B%22eu%3Aeast%22%2C%20%221%22%5D:0:0', 'Meeting East one!'),
             ('["eu:west", "1"]', 'rule:$$ || :visit_rule || $$:%5B%22eu%3Awest%22%2C%20%221%22%5D:0:0', 'Meeting West one!')$$,
    'composite keys: encoded in the message key, and the row found by both columns when rendered');
DELETE FROM ru_visit WHERE region = 'eu:west';
SELECT results_eq($$SELECT source_key, status FROM reminder.message WHERE rule_id = $$ || :visit_rule || $$ ORDER BY source_key$$,
    $$VALUES ('["eu:east", "1"]', 'scheduled'), ('["eu:west", "1"]', 'cancelled')$$,
    'deleting one row cancels its message only');

-- ---------------------------------------------------------------------------
-- Caches see changes to channels, templates and rules.
-- ---------------------------------------------------------------------------
SELECT reminder.create_channel('ru_alt', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9"}', '{"token": "t"}');
SELECT reminder.create_template('ru_alt_t', 'Hello');
CREATE TABLE ru_cache (id int PRIMARY KEY, at timestamptz NOT NULL, email text, phone text);
SELECT reminder.watch('ru_cache', 'after', name => 'ru_cache', column_name => 'at', channel => 'ru_alt', template => 'ru_alt_t',
    recipients => '{"to": {"email": {"expr": "email"}, "phone": {"expr": "phone"}}}') AS cache_rule \gset
INSERT INTO ru_cache VALUES (1, now() + interval '1 day', 'a@example.com', '+48601000001');
SELECT throws_ok($$INSERT INTO ru_cache VALUES (2, now() + interval '1 day', 'b@example.com', '601 000 002')$$, '22023', NULL,
    'a number without country code is refused while the channel has no default');
SELECT reminder.create_channel('ru_alt', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9", "default_country_code": "48"}', '{"token": "t"}');
INSERT INTO ru_cache VALUES (2, now() + interval '1 day', 'b@example.com', '601 000 002');
SELECT is((SELECT recipient->>'phone' FROM reminder.message WHERE rule_id = :cache_rule AND source_key = '2'), '+48601000002',
    'the changed channel is seen at once: its default country code applies');
SELECT reminder.drop_template('ru_alt_t');
SELECT throws_ok($$INSERT INTO ru_cache VALUES (5, now() + interval '1 day', 'e@example.com', '+48601000005')$$, '42704', NULL,
    'a dropped template is noticed');
SELECT reminder.create_template('ru_alt_t', 'Hello {{name}}', required => '{row.email}');
SELECT throws_ok($$INSERT INTO ru_cache VALUES (6, now() + interval '1 day', NULL, '+48601000006')$$, '22023', NULL,
    'a template that now requires row.email: a row without one is refused');
INSERT INTO ru_cache VALUES (7, now() + interval '1 day', 'g@example.com', '+48601000007');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :cache_rule AND source_key = '7'), 1::bigint,
    'and one with it is scheduled');
SELECT is(reminder.unwatch('ru_cache'), 3::bigint, 'unwatch cancels the rule''s pending messages');
INSERT INTO ru_cache VALUES (8, now() + interval '1 day', 'h@example.com', '+48601000008');
SELECT is((SELECT count(*) FROM reminder.message WHERE source_table = 'public.ru_cache' AND source_key = '8'), 0::bigint,
    'an unwatched table schedules nothing');
SELECT hasnt_trigger('ru_cache', 'reminder_ru_cache_insert', 'unwatch drops the triggers');

-- rule with a mutable condition (now()): updates read pending messages back
SELECT reminder.watch('ru_cache', 'after', name => 'ru_cache_now', column_name => 'at', channel => 'ru_log', template => 'ru_meeting_op',
    condition => 'at > now() + interval ''1 hour''', recipients => '{"to": {"name": "x"}}') AS now_rule \gset
INSERT INTO ru_cache VALUES (9, now() + interval '1 day', NULL, NULL);
UPDATE ru_cache SET at = now() + interval '10 minutes' WHERE id = 9;
SELECT is((SELECT status FROM reminder.message WHERE rule_id = :now_rule AND source_key = '9'), 'cancelled',
    'a condition with now() turning false cancels too');

-- ---------------------------------------------------------------------------
-- Other keys, backfill, DDL.
-- ---------------------------------------------------------------------------
CREATE TABLE ru_slot (room text, day date, title text NOT NULL, PRIMARY KEY (room, day));
INSERT INTO ru_slot VALUES ('A', '2030-03-01', 'Board'), ('B', '2030-03-01', 'Team');
SELECT reminder.watch('ru_slot', 'before', name => 'ru_slot', column_name => 'day', offsets => '{1 day}', time_zone => 'Europe/Warsaw',
    channel => 'ru_log', template => 'ru_meeting_op', recipients => '{"to": {"name": {"expr": "room"}}}', backfill => true) AS slot_rule \gset
SELECT results_eq($$SELECT source_key, due_at FROM reminder.message WHERE rule_id = $$ || :slot_rule || $$ ORDER BY 1$$,
    $$VALUES ('["A", "2030-03-01"]', '2030-02-28 00:00+01'::timestamptz), ('["B", "2030-03-01"]', '2030-02-28 00:00+01')$$,
    'backfill schedules existing rows; composite keys; dates at midnight in the rule''s zone');
UPDATE ru_slot SET day = '2030-03-02' WHERE room = 'A';
SELECT results_eq($$SELECT source_key, status FROM reminder.message WHERE rule_id = $$ || :slot_rule || $$ ORDER BY 1, 2$$,
    $$VALUES ('["A", "2030-03-01"]', 'cancelled'), ('["A", "2030-03-02"]', 'scheduled'), ('["B", "2030-03-01"]', 'scheduled')$$,
    'a changed key: the old row''s reminder cancelled, the new one''s scheduled');

SELECT throws_ok($$ALTER TABLE ru_order DROP COLUMN email$$, '2BP01', NULL,
    'a column a rule uses cannot be dropped');
SELECT throws_ok($$DROP FUNCTION public.ru_has_replied(int)$$, '2BP01', NULL,
    'nor a function a rule uses');
ALTER TABLE ru_order RENAME COLUMN email TO customer_email;
ALTER TABLE ru_order RENAME TO ru_orders;
SELECT is((SELECT recipients->0->'to'->'email'->>'expr' FROM reminder.rule WHERE id = :order_rule), 'customer_email',
    'renaming a column rewrites the rule''s expressions');
INSERT INTO ru_orders VALUES (3, 'paid', 'carol@example.com', 1);
SELECT is((SELECT source_table || ' ' || (recipient->>'email') FROM reminder.message WHERE rule_id = :order_rule AND source_key = '3'),
    'public.ru_orders carol@example.com', 'after renaming the table and a column the rule still works');
ALTER TABLE ru_lead RENAME COLUMN replied_at TO answered_at;
SELECT is((SELECT stop_condition FROM reminder.rule WHERE id = :followup_rule),
    '((answered_at IS NOT NULL) OR opted_out OR public.ru_has_replied(id))', 'the stop condition follows a rename too');
SELECT count(*) AS job_pending FROM reminder.message WHERE rule_id = :survey_rule AND status = 'scheduled' \gset
DROP TABLE ru_job;
SELECT ok(NOT EXISTS (SELECT FROM reminder.rule WHERE id = :survey_rule), 'DROP TABLE removes its rules');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :survey_rule AND last_error = 'rule: table dropped'),
    :job_pending::bigint, 'and cancels their pending messages');
DROP TRIGGER reminder_ru_slot_update ON ru_slot;
SELECT ok(NOT EXISTS (SELECT FROM reminder.rule WHERE id = :slot_rule), 'dropping one of a rule''s triggers removes the rule');
SELECT hasnt_trigger('ru_slot', 'reminder_ru_slot_insert', 'with its other triggers');

-- ---------------------------------------------------------------------------
-- Expressions run as the table owner; the writing user needs no rights on
-- the extension's tables.
-- ---------------------------------------------------------------------------
CREATE ROLE ru_app;
GRANT INSERT, UPDATE, DELETE, SELECT ON ru_meeting TO ru_app;
SET LOCAL ROLE ru_app;
INSERT INTO ru_meeting VALUES (100, 'From the app', now() + interval '3 days', '+48601000100', 'op@example.com');
RESET ROLE;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND source_key = '100'), 3::bigint,
    'a user with rights only on the business table schedules through the rule');
SET LOCAL ROLE ru_app;
SET LOCAL search_path = pg_temp, public;
UPDATE ru_meeting SET title = 'From the app, moved', starts_at = starts_at + interval '1 hour' WHERE id = 100;
RESET ROLE;
RESET search_path;
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :meeting_rule AND source_key = '100' AND status = 'scheduled'), 3::bigint,
    'whatever search_path the writing session has');
SELECT ok(NOT has_table_privilege('ru_app', 'reminder.message', 'INSERT'), 'while it cannot write messages itself');

SELECT * FROM finish();
ROLLBACK;
