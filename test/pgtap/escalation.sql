-- Escalation on a missing event: a recipient's "unless" (docs/rules.md,
-- "Escalation: unless an event arrives").  The seed example of the docs:
-- the client is asked to confirm a visit; unless a "confirmed" event comes
-- back from the client's message (or the front desk sets confirmed_at),
-- the operator is told one day before.  Recording the event cancels the
-- escalation at once and for good; what got past that is caught at send
-- time (reminder.gate_check()); bad "unless" values write nothing.
\ir setup.psql

BEGIN;
SELECT plan(31);

SET LOCAL TimeZone = 'UTC';
SELECT reminder.create_channel('mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "office@example.com"}');

-- ---------------------------------------------------------------------------
-- The seed example, as docs/rules.md shows it
-- ---------------------------------------------------------------------------
SELECT reminder.create_template('visit_confirm',
    'Your visit "{{row.title}}" is on {{row.starts_at | datetime}}. Please confirm: {{links.confirm}}',
    'Please confirm your visit');
SELECT reminder.create_template('visit_unconfirmed',
    '{{row.client_name}} has not confirmed "{{row.title}}" ({{row.starts_at | datetime}})',
    'Visit not confirmed');

CREATE TABLE visit (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title        text NOT NULL,
    starts_at    timestamptz NOT NULL,
    client_name  text,
    client_email text,
    confirmed_at timestamptz           -- the front desk may confirm by phone
);

SELECT reminder.watch('visit', 'before', name => 'visit_confirmation',
    column_name => 'starts_at', channel => 'mail',
    recipients => '[
      {"role": "client", "template": "visit_confirm", "offsets": ["3 days"],
       "to": {"email": {"expr": "client_email"}, "name": {"expr": "client_name"}}},
      {"role": "operator", "template": "visit_unconfirmed", "offsets": ["1 day"],
       "to": {"email": "desk@example.com"},
       "unless": [{"event": "confirmed", "role": "client"}, {"expr": "confirmed_at IS NOT NULL"}]}
    ]') AS rule \gset

INSERT INTO visit (title, starts_at, client_name, client_email)
VALUES ('Check-up', now() + interval '5 days', 'Ada', 'ada@example.com'),
       ('Cleaning', now() + interval '5 days', 'Bob', 'bob@example.com'),
       ('Filling',  now() + interval '5 days', 'Cy',  'cy@example.com');

CREATE FUNCTION pg_temp.msg(row_id bigint, role text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM reminder.message WHERE source_key = row_id::text AND recipient->>'role' = role
$$;
CREATE FUNCTION pg_temp.state(row_id bigint, role text) RETURNS text LANGUAGE sql AS $$
    SELECT status || coalesce(' (' || last_error || ')', '') FROM reminder.message
     WHERE source_key = row_id::text AND recipient->>'role' = role
$$;

SELECT is((SELECT recipients->1->'unless' FROM reminder.rule WHERE id = :rule),
    '[{"role": "client", "event": ["confirmed"]}, {"expr": "(confirmed_at IS NOT NULL)"}]',
    'unless is stored normalized: event kinds as an array, the condition canonical');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :rule AND status = 'scheduled'), 6::bigint,
    'each visit gets the client''s request and the operator''s escalation');

-- Ada confirms through the link in her message.
SELECT lives_ok(format('SELECT reminder.record_event(%L)', reminder.link_token(pg_temp.msg(1, 'client'), 'confirm')),
    'the client confirms through her link');
SELECT is(pg_temp.state(1, 'operator'),
    format('cancelled (unless: "confirmed" event recorded on message %s)', pg_temp.msg(1, 'client')),
    'recording the event cancels the escalation at once, saying which event did');
SELECT is(pg_temp.state(1, 'client'), 'scheduled', 'the message the event came from is not touched');
SELECT is(pg_temp.state(2, 'operator'), 'scheduled', 'nor the escalation of another row');

UPDATE visit SET starts_at = starts_at + interval '1 day' WHERE id = 1;
SELECT is(pg_temp.state(1, 'operator'),
    format('cancelled (unless: "confirmed" event recorded on message %s)', pg_temp.msg(1, 'client')),
    'moving the visit does not bring the escalation back: the client has confirmed');
SELECT is((SELECT v.starts_at - m.due_at FROM reminder.message m JOIN visit v ON v.id::text = m.source_key
            WHERE m.id = pg_temp.msg(1, 'client')), interval '3 days',
    'while the client''s message moves with the row');

-- Bob's message is only opened: not the event the escalation waits for.
SELECT lives_ok(format('SELECT reminder.record_event(%L, ''opened'')', reminder.link_token(pg_temp.msg(2, 'client'), 'callback')),
    'an "opened" callback for Bob''s message');
SELECT is(pg_temp.state(2, 'operator'), 'scheduled', 'another kind of event cancels nothing');

-- A confirmation on a message of another role does not count.
SELECT lives_ok(format('SELECT reminder.record_event(%L)', reminder.link_token(pg_temp.msg(2, 'operator'), 'confirm')),
    'a "confirmed" event on the operator''s own message');
SELECT is(pg_temp.state(2, 'operator'), 'scheduled', '"role": "client" counts only the client''s messages');
SELECT is(verdict, 'send', 'and the send-time check lets it go') FROM reminder.gate_check(pg_temp.msg(2, 'operator'));

-- The front desk confirms Cy by phone: the condition holds.
UPDATE visit SET confirmed_at = now() WHERE id = 3;
SELECT is(pg_temp.state(3, 'operator'), 'cancelled (rule: row changed)',
    'a write that makes the condition hold cancels the escalation');
SELECT is(pg_temp.state(3, 'client'), 'scheduled', 'and only it');
UPDATE visit SET confirmed_at = NULL WHERE id = 3;
SELECT is(pg_temp.state(3, 'operator'), 'scheduled', 'undoing the confirmation brings it back');

-- What the triggers did not see is caught at send time.
INSERT INTO reminder.event (message_id, kind, source) VALUES (pg_temp.msg(3, 'client'), 'confirmed', 'test');
SELECT results_eq(format('SELECT verdict, reason FROM reminder.gate_check(%s)', pg_temp.msg(3, 'operator')),
    format($$VALUES ('suppress', 'unless: "confirmed" event recorded on message %s')$$, pg_temp.msg(3, 'client')),
    'an event recorded without reminder.record_event(): the escalation is suppressed when it falls due');
SELECT is(verdict, 'send', 'the client''s own message still goes') FROM reminder.gate_check(pg_temp.msg(3, 'client'));

-- A condition that reads another table: no write of the row tells the trigger.
CREATE TABLE desk_confirmation (visit_id bigint PRIMARY KEY);
CREATE FUNCTION public.desk_confirmed(visit bigint) RETURNS boolean LANGUAGE sql STABLE
    RETURN EXISTS (SELECT FROM public.desk_confirmation WHERE visit_id = visit);
CREATE TABLE visit2 (id bigint PRIMARY KEY, starts_at timestamptz NOT NULL);
SELECT reminder.watch('visit2', 'before', name => 'visit2', column_name => 'starts_at', channel => 'mail',
    template => 'visit_unconfirmed', offsets => '{1 day}',
    recipients => '{"to": {"email": "desk@example.com"}, "unless": "public.desk_confirmed(id)"}') AS rule2 \gset
INSERT INTO visit2 VALUES (1, now() + interval '5 days'), (2, now() + interval '5 days');
INSERT INTO desk_confirmation VALUES (1);
SELECT results_eq(format('SELECT verdict, reason FROM reminder.gate_check(%s)',
                  (SELECT id FROM reminder.message WHERE rule_id = :rule2 AND source_key = '1')),
    $$VALUES ('suppress', 'unless: condition holds')$$,
    'a condition that holds at send time suppresses the message');
SELECT is(verdict, 'send', 'one that does not lets it go')
  FROM reminder.gate_check((SELECT id FROM reminder.message WHERE rule_id = :rule2 AND source_key = '2'));

-- Renaming a column rewrites the condition; dropping it is refused.
ALTER TABLE visit RENAME COLUMN confirmed_at TO confirmed_on;
SELECT is((SELECT recipients->1->'unless'->1 FROM reminder.rule WHERE id = :rule),
    '{"expr": "(confirmed_on IS NOT NULL)"}', 'renaming a column rewrites "unless"');
SELECT throws_ok('ALTER TABLE visit DROP COLUMN confirmed_on', '2BP01', NULL,
    'a column "unless" reads cannot be dropped');

-- ---------------------------------------------------------------------------
-- Bad "unless": a clear SQLSTATE, and no rule
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.try(unless text) RETURNS void LANGUAGE sql AS $$
    SELECT reminder.watch('visit', 'before', name => 'bad', column_name => 'starts_at', channel => 'mail',
        template => 'visit_unconfirmed', offsets => '{1 day}',
        recipients => format('{"role": "operator", "to": {"email": "desk@example.com"}, "unless": %s}', unless)::jsonb)
$$;
SELECT throws_ok($$SELECT pg_temp.try('{"event": "confirmd"}')$$, '22023',
    'unknown event kind "confirmd" in recipients[0].unless', 'an unknown event kind');
SELECT throws_ok($$SELECT pg_temp.try('{"event": "confirmed", "role": "client"}')$$, '22023',
    'recipients[0].unless.role is "client", which is the role of none of the rule''s recipients',
    'a role no recipient has');
SELECT throws_ok($$SELECT pg_temp.try('{"evnt": "confirmed"}')$$, '22023',
    'unknown key "evnt" in recipients[0].unless', 'an unknown key');
SELECT throws_ok($$SELECT pg_temp.try('[]')$$, '22023', 'recipients[0].unless must not be empty', 'an empty array');
SELECT throws_ok($$SELECT pg_temp.try('{"event": []}')$$, '22023', 'recipients[0].unless.event must not be empty',
    'no event kinds');
SELECT throws_ok($$SELECT pg_temp.try('["title IS NULL", {"expr": "client_name IS NULL"}]')$$, '22023',
    'recipients[0].unless[1] has more than one condition', 'two conditions');
SELECT throws_ok($$SELECT pg_temp.try('{"expr": "nosuch IS NULL"}')$$, '42703', NULL, 'an unknown column');
SELECT throws_ok($$SELECT pg_temp.try('{"expr": "title"}')$$, '42804', NULL, 'a condition that is not boolean');
SELECT is((SELECT count(*) FROM reminder.rule WHERE name = 'bad'), 0::bigint, 'none of them made a rule');

SELECT * FROM finish();
ROLLBACK;
