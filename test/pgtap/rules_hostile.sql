-- Rules against hostile expressions, in the session writing the row and
-- in reminder.gate_check(): the table owner's code (functions an
-- expression calls) cannot change the session it runs in.  Settings are
-- rolled back after each evaluation, so the extension's own statements
-- never see a search_path that makes them call a function of the owner's,
-- and the writing session keeps its own; SET ROLE and temporary tables are
-- refused.  watch() refuses calls that can only change the session.
\unset ECHO
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
SELECT plan(9);

SET LOCAL TimeZone = 'UTC';
SELECT reminder.create_channel('rh_sms', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9"}', '{"token": "t"}');
SELECT reminder.create_channel('rh_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "r@example.com"}');
SELECT reminder.create_channel('rh_log', 'log');
SELECT reminder.create_channel('rh_hook', 'webhook', '{"url": "http://127.0.0.1:9/hook"}');
SELECT reminder.create_template('rh_t', 'Hello');

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
SELECT throws_ok($$SELECT reminder.watch('rh_h2', 'before', name => 'rh_x', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_t', recipients => '{"to": {}}',
    stop_condition => 'set_config(''search_path'', ''public'', false) IS NULL')$$, '42501',
    'stop_condition must not call set_config()', 'watch() refuses set_config() in an expression');
SELECT throws_ok($$SELECT reminder.watch('rh_h2', 'before', name => 'rh_x', column_name => 'at', offsets => '{1 hour}',
    channel => 'rh_log', template => 'rh_t', recipients => '{"when": "pg_try_advisory_lock(id)", "to": {}}')$$, '42501',
    'recipient 1 "when" must not call pg_try_advisory_lock()', 'and session advisory locks');
SELECT * FROM finish();
ROLLBACK;
