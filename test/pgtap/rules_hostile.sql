-- Rules against NULLs and hostile expressions, in the session writing the
-- row and in reminder.gate_check():
--  * every setting that is an {"expr": ...} may give NULL (or JSON null, or
--    an empty string): no message, or no bcc, never a crash;
--  * bcc and cc only reach email messages, also with a channel that is an
--    expression;
--  * a recipient without a time zone gets the rule's, and the row's times
--    are written in it, so a message shows one time for one moment;
--  * webhook and log recipients need no "to";
--  * the table owner's code (functions an expression calls) cannot change
--    the session it runs in: settings are rolled back after each
--    evaluation, so the extension's own statements never see a search_path
--    that makes them call a function of the owner's, and the writing
--    session keeps its own; SET ROLE and temporary tables are refused.
\ir setup.psql

BEGIN;
SELECT plan(27);

SET LOCAL TimeZone = 'UTC';
SELECT reminder.create_channel('rh_sms', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9"}', '{"token": "t"}');
SELECT reminder.create_channel('rh_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('rh_log', 'log');
SELECT reminder.create_channel('rh_hook', 'webhook', '{"url": "http://127.0.0.1:9/hook"}');
SELECT reminder.create_template('rh_t', 'Hello');

-- recipient index (from 0) of each message of a row, in key order
CREATE FUNCTION pg_temp.rcpts(rule bigint, key text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(split_part(idempotency_key, ':', 4), ',' ORDER BY idempotency_key), '')
      FROM reminder.message WHERE rule_id = rule AND source_key = key AND status = 'scheduled'
$$;

-- ---------------------------------------------------------------------------
-- NULL in every setting that can be an expression
-- ---------------------------------------------------------------------------
CREATE TABLE rh_n (
    id int PRIMARY KEY,
    at timestamptz NOT NULL,
    email text,
    name text,
    bcc_text text,
    bcc_arr text[],
    bcc_json jsonb,
    ch text,
    tpl text,
    offs interval[],
    ok boolean,
    rcpt jsonb
);
SELECT reminder.watch('rh_n', 'before', name => 'rh_nulls', column_name => 'at',
    offsets => '{1 hour}', channel => 'rh_mail', template => 'rh_t',
    recipients => $$[
      {"to": {"email": {"expr": "email"}}, "bcc": {"expr": "bcc_text"}},
      {"to": {"email": {"expr": "email"}}, "bcc": {"expr": "bcc_arr"}},
      {"to": {"email": {"expr": "email"}}, "bcc": {"expr": "bcc_json"}},
      {"channel": {"expr": "ch"}, "to": {"email": "c@example.com"}},
      {"channel": "rh_log", "template": {"expr": "tpl"}},
      {"channel": "rh_log", "offsets": {"expr": "offs"}},
      {"channel": "rh_log", "when": "ok"},
      {"channel": "rh_log", "to": {"expr": "rcpt"}},
      {"to": {"email": {"expr": "email"}, "name": {"expr": "name"}}}
    ]$$) AS nulls_rule \gset

INSERT INTO rh_n (id, at, email) VALUES (1, now() + interval '1 day', 'ada@example.com');
SELECT is(pg_temp.rcpts(:nulls_rule, '1'), '0,1,2,8',
    'NULL bcc (text, text[], jsonb) and NULL name: the message goes without them; NULL channel, template, offsets, when and "to": no message');
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :nulls_rule AND source_key = '1'
             AND (recipient ? 'bcc' OR recipient ? 'name')), 0::bigint,
    'no bcc and no name in the recipients');

INSERT INTO rh_n VALUES (2, now() + interval '1 day', 'ada@example.com', '', '', ARRAY[NULL, '', 'x@example.com'],
    'null', '', '', '{}', NULL, 'null');
SELECT is(pg_temp.rcpts(:nulls_rule, '2'), '0,1,2,8',
    'empty strings, an empty offsets array and JSON null count as NULL');
SELECT results_eq($$SELECT split_part(idempotency_key, ':', 4) COLLATE "default", recipient->'bcc', recipient ? 'name'
                      FROM reminder.message WHERE rule_id = $$ || :nulls_rule || $$ AND source_key = '2' ORDER BY idempotency_key$$,
    $$VALUES ('0', NULL::jsonb, false), ('1', '["x@example.com"]', false), ('2', NULL, false), ('8', NULL, false)$$,
    'a bcc array keeps its addresses, not its NULL and empty elements');

INSERT INTO rh_n VALUES (3, now() + interval '1 day', 'ada@example.com', 'Ada', 'b@example.com', '{b@example.com}',
    '"b@example.com"', 'rh_log', 'rh_t', '{2 hours}', true, '{"email": "r@example.com"}');
SELECT is(pg_temp.rcpts(:nulls_rule, '3'), '0,1,2,3,4,5,6,7,8', 'with values, every recipient gets its message');

UPDATE rh_n SET at = at + interval '1 day';
SELECT is(pg_temp.rcpts(:nulls_rule, '1') || ' ' || pg_temp.rcpts(:nulls_rule, '2') || ' ' || pg_temp.rcpts(:nulls_rule, '3'),
    '0,1,2,8 0,1,2,8 0,1,2,3,4,5,6,7,8', 'an UPDATE evaluates the old rows'' NULLs the same way');

UPDATE rh_n SET email = NULL, rcpt = NULL, ch = NULL WHERE id = 3;
SELECT is(pg_temp.rcpts(:nulls_rule, '3'), '4,5,6',
    'values that become NULL cancel what they made');

CREATE TABLE rh_c (id int PRIMARY KEY, at timestamptz NOT NULL, ok boolean, stop boolean);
SELECT reminder.watch('rh_c', 'before', name => 'rh_cond', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_t', condition => 'ok', stop_condition => 'stop',
    recipients => '{"to": {}}') AS cond_rule \gset
INSERT INTO rh_c VALUES (1, now() + interval '1 day', NULL, false), (2, now() + interval '1 day', true, NULL);
SELECT is(pg_temp.rcpts(:cond_rule, '1') || '/' || pg_temp.rcpts(:cond_rule, '2'), '/0',
    'a NULL condition does not hold, a NULL stop condition does not stop');
SELECT results_eq($$SELECT verdict FROM reminder.gate_check((SELECT id FROM reminder.message WHERE rule_id = $$ || :cond_rule || $$))$$,
    $$VALUES ('send')$$, 'neither at send time');

-- ---------------------------------------------------------------------------
-- bcc and cc: email only, whatever the channel expression gives
-- ---------------------------------------------------------------------------
CREATE TABLE rh_b (id int PRIMARY KEY, at timestamptz NOT NULL, ch text, contact text, bcc text);
SELECT reminder.watch('rh_b', 'before', name => 'rh_bcc', column_name => 'at', offsets => '{1 hour}', template => 'rh_t',
    recipients => $$[
      {"channel": {"expr": "ch"}, "bcc": {"expr": "bcc"},
       "to": {"expr": "CASE ch WHEN 'rh_sms' THEN jsonb_build_object('phone', contact, 'cc', 'cc@example.com') ELSE jsonb_build_object('email', contact, 'cc', 'cc@example.com') END"}},
      {"channel": {"expr": "ch"}, "bcc": ["boss@example.com"],
       "to": {"phone": {"expr": "CASE ch WHEN 'rh_sms' THEN contact END"}, "email": {"expr": "CASE ch WHEN 'rh_mail' THEN contact END"}}}
    ]$$) AS bcc_rule \gset
INSERT INTO rh_b VALUES (1, now() + interval '1 day', 'rh_sms', '+48601234567', 'b@example.com'),
                        (2, now() + interval '1 day', 'rh_mail', 'ada@example.com', 'b@example.com');
SELECT results_eq($$SELECT channel, recipient ? 'bcc', recipient ? 'cc' FROM reminder.message
                     WHERE rule_id = $$ || :bcc_rule || $$ ORDER BY idempotency_key$$,
    $$VALUES ('rh_sms', false, false), ('rh_sms', false, false), ('rh_mail', true, true), ('rh_mail', true, false)$$,
    'an SMS made by a rule whose channel is an expression carries no bcc or cc; an email keeps them');

-- ---------------------------------------------------------------------------
-- Time zones: the rule's is its recipients' unless they have their own
-- ---------------------------------------------------------------------------
SELECT reminder.create_template('rh_when', '{{row.starts_at}} = {{ row.starts_at | datetime "HH24:MI" }}');
CREATE TABLE rh_tz (id int PRIMARY KEY, starts_at timestamptz NOT NULL, tz text, state text NOT NULL DEFAULT 'new');
SELECT reminder.watch('rh_tz', 'before', name => 'rh_tz', column_name => 'starts_at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_when', time_zone => 'Asia/Tokyo',
    recipients => '{"to": {"time_zone": {"expr": "tz"}}}') AS tz_rule \gset
INSERT INTO rh_tz VALUES (1, '2030-01-01 10:00+00', NULL), (2, '2030-01-01 10:00+00', 'Europe/Warsaw');
SELECT results_eq($$SELECT source_key, recipient->>'time_zone' FROM reminder.message WHERE rule_id = $$ || :tz_rule || $$ ORDER BY 1$$,
    $$VALUES ('1', 'Asia/Tokyo'), ('2', 'Europe/Warsaw')$$,
    'a recipient without a time zone gets the rule''s');
SELECT results_eq($$SELECT m.source_key, r.body FROM reminder.message m, reminder.render(m.id) r
                     WHERE m.rule_id = $$ || :tz_rule || $$ ORDER BY 1$$,
    $$VALUES ('1', '2030-01-01T19:00:00+09:00 = 19:00'), ('2', '2030-01-01T19:00:00+09:00 = 11:00')$$,
    'so a message shows the same time in the row and through a date filter, whatever the session''s TimeZone');
SELECT reminder.watch('rh_tz', 'on_change', name => 'rh_tz_change', column_name => 'state', channel => 'rh_log',
    template => 'rh_when', time_zone => 'Asia/Tokyo', recipients => '{"to": {}}') AS tz_change_rule \gset
UPDATE rh_tz SET state = 'confirmed' WHERE id = 1;
SELECT is((SELECT data->'row'->>'starts_at' FROM reminder.message WHERE rule_id = :tz_change_rule),
    '2030-01-01T19:00:00+09:00', 'a row kept in the message has its times in the rule''s zone too');

-- ---------------------------------------------------------------------------
-- Recipients of channels that need no address
-- ---------------------------------------------------------------------------
CREATE TABLE rh_o (id int PRIMARY KEY, status text NOT NULL);
SELECT reminder.watch('rh_o', 'on_change', name => 'rh_erp', column_name => 'status', template => 'rh_t',
    recipients => '[{"role": "erp", "channel": "rh_hook"}, {"role": "audit", "channel": "rh_log"}]') AS erp_rule \gset
SELECT is((SELECT recipients FROM reminder.rule WHERE id = :erp_rule),
    '[{"to": {}, "role": "erp", "channel": "rh_hook", "offsets": ["00:00:00"], "template": "rh_t"},
      {"to": {}, "role": "audit", "channel": "rh_log", "offsets": ["00:00:00"], "template": "rh_t"}]'::jsonb,
    'a webhook or log recipient without "to" is stored with an empty one');
INSERT INTO rh_o VALUES (1, 'paid');
SELECT results_eq($$SELECT channel, recipient FROM reminder.message WHERE rule_id = $$ || :erp_rule || $$ ORDER BY idempotency_key$$,
    $$VALUES ('rh_hook', '{"role": "erp", "time_zone": "UTC"}'::jsonb), ('rh_log', '{"role": "audit", "time_zone": "UTC"}')$$,
    'and gets its messages');

-- ---------------------------------------------------------------------------
-- The owner's code cannot change the session it runs in
-- ---------------------------------------------------------------------------
CREATE ROLE rh_owner;
GRANT reminder_admin TO rh_owner;
GRANT CREATE ON SCHEMA public TO rh_owner;
SET LOCAL ROLE rh_owner;
CREATE TABLE public.rh_calls (who text, what text);
GRANT INSERT ON public.rh_calls TO PUBLIC;
-- shadows now(): found only by a search_path that puts public first
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.rh_calls VALUES (current_user, 'now');
    RETURN pg_catalog.now();
END $$;
CREATE FUNCTION public.rh_repath(int) RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', false) IS NOT NULL $$;
CREATE FUNCTION public.rh_mark(text) RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT pg_catalog.set_config('rh.mark', 'changed', false) || $1 $$;
CREATE FUNCTION public.rh_mktemp() RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN CREATE TEMP TABLE rh_tmp (x int); RETURN true; END $$;
CREATE FUNCTION public.rh_temp(int) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT public.rh_mktemp() $$;
CREATE FUNCTION public.rh_become() RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN SET ROLE postgres; RETURN true; END $$;
CREATE FUNCTION public.rh_su(int) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT public.rh_become() $$;
CREATE TABLE rh_h (id int PRIMARY KEY, at timestamptz NOT NULL, email text NOT NULL);
SELECT reminder.watch('rh_h', 'follow_up', name => 'rh_hostile', column_name => 'at', offsets => '{1 day, 2 days}',
    channel => 'rh_mail', template => 'rh_t', condition => 'public.rh_repath(id)', stop_condition => 'NOT public.rh_repath(id)',
    recipients => '{"to": {"email": {"expr": "public.rh_mark(email)"}}}') AS hostile_rule \gset
CREATE TABLE rh_h2 (id int PRIMARY KEY, at timestamptz NOT NULL, temp boolean NOT NULL);
SELECT reminder.watch('rh_h2', 'before', name => 'rh_temp', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_t', condition => 'CASE WHEN temp THEN public.rh_temp(id) ELSE public.rh_su(id) END',
    recipients => '{"to": {}}');
RESET ROLE;

SET LOCAL search_path = "$user", public;
SET LOCAL rh.mark = 'mine';
INSERT INTO rh_h VALUES (1, now() + interval '1 day', 'ada@example.com');
UPDATE rh_h SET at = at + interval '1 hour';
SELECT is((SELECT count(*) FROM reminder.message WHERE rule_id = :hostile_rule AND status = 'scheduled'), 2::bigint,
    'a rule whose expressions call set_config() still schedules (and moves) its messages');
SELECT is((SELECT count(*) FROM public.rh_calls), 0::bigint,
    'the extension''s statements after them never call the owner''s public.now()');
SELECT is(current_setting('search_path') || ' ' || current_setting('rh.mark'), '"$user", public mine',
    'and the writing session keeps its search_path and settings');
SELECT results_eq($$SELECT verdict FROM reminder.gate_check((SELECT min(id) FROM reminder.message WHERE rule_id = $$ || :hostile_rule || $$))$$,
    $$VALUES ('send')$$, 'gate_check() evaluates the stop condition');
SELECT is(current_setting('search_path') || ' ' || (SELECT count(*) FROM public.rh_calls),
    '"$user", public 0', 'and leaves the session as it was too');
SELECT throws_ok($$INSERT INTO rh_h2 VALUES (1, now() + interval '1 day', true)$$, '42501',
    'cannot create temporary table within security-restricted operation',
    'an expression cannot create temporary tables in the writing session');
SELECT throws_ok($$INSERT INTO rh_h2 VALUES (2, now() + interval '1 day', false)$$, '42501',
    'cannot set parameter "role" within security-definer function',
    'nor change its role');
RESET search_path;

-- ---------------------------------------------------------------------------
-- What watch() refuses outright
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT reminder.watch('rh_c', 'before', name => 'rh_x', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_t', recipients => '{"to": {}}',
    stop_condition => 'set_config(''search_path'', ''public'', false) IS NULL')$$, '42501',
    'stop_condition must not call set_config()', 'watch() refuses set_config() in an expression');
SELECT throws_ok($$SELECT reminder.watch('rh_c', 'before', name => 'rh_x', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_t', recipients => '{"when": "pg_try_advisory_lock(id)", "to": {}}')$$, '42501',
    'recipients[0].when must not call pg_try_advisory_lock()', 'and session advisory locks');
SELECT throws_ok($$SELECT reminder.watch('rh_c', 'before', name => 'rh_x', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_sms', template => 'rh_t', recipients => '{"role": "erp"}')$$, '22023',
    'recipients[0] has no "to"', 'an SMS recipient still needs "to"');
SELECT throws_ok($$SELECT reminder.watch('rh_c', 'before', name => 'rh_x', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_sms', template => 'rh_t', recipients => '{"to": {"phone": "+48601234567", "bcc": "b@example.com"}}')$$, '22023',
    'recipients[0].to.bcc is only for email channels', 'bcc in "to" of an SMS recipient is refused like bcc beside it');
SELECT throws_ok($$SELECT reminder.watch('rh_c', 'before', name => 'rh_x', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_t', recipients => '[{"to": {}}, {"to": {}, "colour": "red"}]')$$, '22023',
    'unknown key "colour" in recipients[1]', 'recipients are counted from 0 in errors, as in message keys');

SELECT * FROM finish();
ROLLBACK;
