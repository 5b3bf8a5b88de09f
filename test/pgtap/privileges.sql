-- The privilege matrix: each role x each function and table, allowed or
-- refused, checked both in the catalog and by really calling as that role
-- (SET ROLE inside the test transaction).
--
--   reminder_admin  manages channels, secrets, templates, recipients, keys, data
--   reminder_user   schedules and reads message state; never secrets or keys
--   reminder_web    only passes link tokens in (record_event, record_response,
--                   token_info) and provider webhooks (record_inbound); reads
--                   nothing
--   (nobody)        a role with no reminder membership
\ir setup.psql

BEGIN;

CREATE ROLE reminder_pm_nobody NOLOGIN;

-- The SQLSTATE a statement ends with when run as role ('00000': success).
CREATE FUNCTION pg_temp.sqlstate_as(role text, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    BEGIN
        EXECUTE sql;
        st := '00000';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    END;
    RESET ROLE;
    RETURN st;
END
$$;

-- Setup: a channel, a template, a message and tokens for it.
SELECT reminder.create_channel('pm_log', 'log');
SELECT reminder.create_channel('pm_sms', 'sms', '{"provider": "smsapi"}', '{"token": "t", "inbound_secret": "pm-secret"}');
SELECT reminder.create_template('pm_tpl', 'Hello');
SELECT reminder.upsert_recipient('pm-1', email => 'pm@example.com');
SELECT reminder.schedule('pm_log', '{"email": "pm@example.com"}', 'pm_tpl') AS msg \gset
CREATE TEMP TABLE tok AS
SELECT a, reminder.link_token(:msg, a, CASE a WHEN 'score' THEN 9 END) t
  FROM unnest(ARRAY['confirm', 'score', 'open']) a;
GRANT SELECT ON tok TO PUBLIC;

CREATE TEMP TABLE role_audience (audience text, role text);
INSERT INTO role_audience VALUES
    ('admin', 'reminder_admin'),
    ('user', 'reminder_admin'), ('user', 'reminder_user'),
    ('web', 'reminder_admin'), ('web', 'reminder_user'), ('web', 'reminder_web');

CREATE TEMP TABLE roles (role text);
INSERT INTO roles VALUES ('reminder_admin'), ('reminder_user'), ('reminder_web'), ('reminder_pm_nobody');

-- Functions: signature, a call, and who may make it.
CREATE TEMP TABLE fn (sig text, call text, audience text);
INSERT INTO fn VALUES
    ('reminder.create_channel(text,text,jsonb,jsonb)', $$SELECT reminder.create_channel('pm_x', 'log')$$, 'admin'),
    ('reminder.set_channel_secrets(text,jsonb)', $$SELECT reminder.set_channel_secrets('pm_log', '{}')$$, 'admin'),
    ('reminder.drop_channel(text,boolean)', $$SELECT reminder.drop_channel('pm_none')$$, 'admin'),
    ('reminder.create_template(text,text,text,text,text,text[])', $$SELECT reminder.create_template('pm_x', 'x')$$, 'admin'),
    ('reminder.drop_template(text,text)', $$SELECT reminder.drop_template('pm_none')$$, 'admin'),
    ('reminder.upsert_recipient(text,text,text,text,text,text,text,jsonb,jsonb,text)', $$SELECT reminder.upsert_recipient('pm-2')$$, 'admin'),
    ('reminder.rotate_signing_key(boolean)', $$SELECT reminder.rotate_signing_key()$$, 'admin'),
    ('reminder.link_token(bigint,text,integer,timestamptz)', format($$SELECT reminder.link_token(%s, 'confirm')$$, :msg), 'admin'),
    ('reminder.forget(jsonb,boolean)', $$SELECT reminder.forget('{"email": "nobody@example.com"}')$$, 'admin'),
    ('reminder.purge(interval)', $$SELECT reminder.purge('1 year')$$, 'admin'),
    ('reminder.schedule(text,jsonb,text,timestamptz,jsonb,text,text,text)', $$SELECT reminder.schedule('pm_log', '{"email": "a@example.com"}', 'pm_tpl')$$, 'user'),
    ('reminder.send(text,jsonb,text,jsonb,text,text,text)', $$SELECT reminder.send('pm_log', '{"email": "a@example.com"}', 'pm_tpl')$$, 'user'),
    ('reminder.cancel(bigint)', $$SELECT reminder.cancel(-1)$$, 'user'),
    ('reminder.reschedule(bigint,timestamptz)', $$SELECT reminder.reschedule(-1, now())$$, 'user'),
    ('reminder.next_send_time(jsonb,text,timestamptz)', $$SELECT reminder.next_send_time('{"external_id": "pm-1"}', 'pm_log')$$, 'user'),
    ('reminder.opt_out(jsonb,text,text,text)', $$SELECT reminder.opt_out('{"email": "pm@example.com"}')$$, 'user'),
    ('reminder.opt_in(jsonb,text,text,text)', $$SELECT reminder.opt_in('{"email": "pm@example.com"}')$$, 'user'),
    ('reminder.gate_check(bigint)', format($$SELECT reminder.gate_check(%s)$$, :msg), 'user'),
    ('reminder.nps(text,bigint,timestamptz,timestamptz)', $$SELECT reminder.nps()$$, 'user'),
    ('reminder.preview_links(bigint)', $$SELECT reminder.preview_links()$$, 'user'),
    ('reminder.delivery_counters()', $$SELECT reminder.delivery_counters()$$, 'user'),
    ('reminder.stats_reset()', $$SELECT reminder.stats_reset()$$, 'admin'),
    ('reminder.record_event(text,text,jsonb)', $$SELECT reminder.record_event((SELECT t FROM tok WHERE a = 'open'))$$, 'web'),
    ('reminder.record_response(text,integer,text)', $$SELECT reminder.record_response((SELECT t FROM tok WHERE a = 'score'))$$, 'web'),
    ('reminder.token_info(text)', $$SELECT reminder.token_info((SELECT t FROM tok WHERE a = 'confirm'))$$, 'web'),
    ('reminder.record_inbound(text,jsonb,text,text)', $$SELECT reminder.record_inbound('pm_sms', '{"sms_from": "48601234567", "sms_text": "STOP"}', 'pm-secret')$$, 'web'),
    ('reminder.has_event(text,text,text)', $$SELECT reminder.has_event('pm_none', '1')$$, 'user'),
    ('reminder.recipient_check()', $$SELECT reminder.recipient_check()$$, 'none'),
    ('reminder._recipient_subject(jsonb)', $$SELECT reminder._recipient_subject('{"email": "pm@example.com"}')$$, 'none'),
    ('reminder._strip_copies(jsonb,text[])', $$SELECT reminder._strip_copies('{}', '{}')$$, 'none'),
    ('reminder._address_hash(text,text)', $$SELECT reminder._address_hash('email', 'a@example.com')$$, 'none'),
    ('reminder._address_key(text,text)', $$SELECT reminder._address_key('email', 'a@example.com')$$, 'none');

-- Tables and views: who may do what.
CREATE TEMP TABLE rel (rel text, priv text, audience text);
INSERT INTO rel VALUES
    ('reminder.channel', 'SELECT', 'user'),
    ('reminder.channel_secret', 'SELECT', 'none'),
    ('reminder.template', 'SELECT', 'user'),
    ('reminder.recipient', 'SELECT', 'user'),
    ('reminder.recipient', 'INSERT', 'admin'),
    ('reminder.recipient', 'UPDATE', 'admin'),
    ('reminder.recipient', 'DELETE', 'admin'),
    ('reminder.message', 'SELECT', 'user'),
    ('reminder.attempt', 'SELECT', 'user'),
    ('reminder.event', 'SELECT', 'user'),
    ('reminder.log', 'SELECT', 'user'),
    ('reminder.consent', 'SELECT', 'user'),
    ('reminder.consent_log', 'SELECT', 'admin'),
    ('reminder.signing_key', 'SELECT', 'none'),
    ('reminder.signing_keys', 'SELECT', 'admin'),
    ('reminder.queue', 'SELECT', 'user'),
    ('reminder.stats', 'SELECT', 'user');
-- every other privilege on every relation: nobody
INSERT INTO rel
SELECT r, p, 'none'
  FROM (SELECT DISTINCT rel FROM rel) t(r), unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
 WHERE NOT EXISTS (SELECT FROM rel x WHERE x.rel = t.r AND x.priv = p);

-- Settings that decide where messages go, what they may carry and who is
-- opted out: no role below superuser may change them for its session.
SELECT reminder.next_send_time('{}');	-- loads the library, defining them
CREATE TEMP TABLE guc (name text, value text);
INSERT INTO guc VALUES
    ('reminder.allowed_hosts', '169.254.169.254'),
    ('reminder.denied_hosts', ''),
    ('reminder.link_base_url', 'https://evil.example/r'),
    ('reminder.link_ttl', '100000d'),
    ('reminder.max_recipients', '1000'),
    ('reminder.max_payload_size', '64MB'),
    ('reminder.bounce_opt_out', 'off');

SELECT plan((SELECT count(*)::int * 2 FROM fn, roles)
            + (SELECT count(*)::int FROM rel, roles)
            + (SELECT count(DISTINCT rel)::int FROM rel) * 4
            + 8
            + (SELECT count(*)::int FROM guc, roles));

-- Functions: the catalog says so...
SELECT is(has_function_privilege(r.role, f.sig, 'EXECUTE'),
          EXISTS (SELECT FROM role_audience a WHERE a.audience = f.audience AND a.role = r.role),
          format('%s %s execute %s', r.role,
                 CASE WHEN EXISTS (SELECT FROM role_audience a WHERE a.audience = f.audience AND a.role = r.role)
                      THEN 'may' ELSE 'may not' END, f.sig))
  FROM fn f, roles r ORDER BY f.sig, r.role;

-- ...and a real call as the role agrees (42501 exactly when refused).
SELECT is(pg_temp.sqlstate_as(r.role, f.call) = '42501',
          NOT EXISTS (SELECT FROM role_audience a WHERE a.audience = f.audience AND a.role = r.role),
          format('as %s: %s is %s', r.role, f.call,
                 CASE WHEN EXISTS (SELECT FROM role_audience a WHERE a.audience = f.audience AND a.role = r.role)
                      THEN 'allowed' ELSE 'refused' END))
  FROM fn f, roles r ORDER BY f.sig, r.role;

-- Tables and views in the catalog.
SELECT is(has_table_privilege(r.role, t.rel, t.priv),
          EXISTS (SELECT FROM role_audience a WHERE a.audience = t.audience AND a.role = r.role),
          format('%s %s %s %s', r.role,
                 CASE WHEN EXISTS (SELECT FROM role_audience a WHERE a.audience = t.audience AND a.role = r.role)
                      THEN 'may' ELSE 'may not' END, t.priv, t.rel))
  FROM rel t, roles r ORDER BY t.rel, t.priv, r.role;

-- And a real SELECT on each as each role.
SELECT is(pg_temp.sqlstate_as(r.role, format('SELECT count(*) FROM %s', t.rel)) = '42501',
          NOT EXISTS (SELECT FROM role_audience a WHERE a.audience = t.audience AND a.role = r.role),
          format('as %s: SELECT from %s is %s', r.role, t.rel,
                 CASE WHEN EXISTS (SELECT FROM role_audience a WHERE a.audience = t.audience AND a.role = r.role)
                      THEN 'allowed' ELSE 'refused' END))
  FROM rel t, roles r WHERE t.priv = 'SELECT' ORDER BY t.rel, r.role;

-- Settings: refused as 42501 (superuser-only) or 55P02 (server-wide).
SELECT ok(pg_temp.sqlstate_as(r.role, format('SET reminder.%s = %L', substr(g.name, 10), g.value)) IN ('42501', '55P02'),
          format('as %s: SET %s is refused', r.role, g.name))
  FROM guc g, roles r ORDER BY g.name, r.role;

-- Whole-schema invariants, so a function added later cannot slip.
SELECT set_eq($$ SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'reminder'::regnamespace
                    AND has_function_privilege('reminder_web', p.oid, 'EXECUTE') $$,
              ARRAY['reminder.record_event(text,text,jsonb)',
                    'reminder.record_response(text,integer,text)',
                    'reminder.token_info(text)',
                    'reminder.record_inbound(text,jsonb,text,text)'],
              'reminder_web may execute the three token functions and record_inbound, and nothing else');
SELECT is_empty($$ SELECT c.oid::regclass::text FROM pg_class c
                    WHERE c.relnamespace = 'reminder'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S')
                      AND has_table_privilege('reminder_web', c.oid, 'SELECT') $$,
                'reminder_web may read no table or view');
SELECT is_empty($$ SELECT c.oid::regclass::text FROM pg_class c
                    WHERE c.relnamespace = 'reminder'::regnamespace AND c.relkind IN ('r', 'v', 'm')
                      AND (has_table_privilege('reminder_user', c.oid, 'INSERT')
                           OR has_table_privilege('reminder_user', c.oid, 'UPDATE')
                           OR has_table_privilege('reminder_user', c.oid, 'DELETE')) $$,
                'reminder_user writes no table directly, only through functions');
SELECT is_empty($$ SELECT c.oid::regclass::text FROM pg_class c
                    WHERE c.relnamespace = 'reminder'::regnamespace AND c.relkind IN ('r', 'v', 'm')
                      AND has_table_privilege('public', c.oid, 'SELECT') $$,
                'PUBLIC may read nothing in the schema');

-- Nothing reaches other schemas' data through the extension's functions:
-- names and values are bound as parameters, never spliced into SQL.
CREATE SCHEMA pm_private;
CREATE TABLE pm_private.secret (s text);
INSERT INTO pm_private.secret VALUES ('crown jewels');
SELECT is(pg_temp.sqlstate_as('reminder_user', 'SELECT * FROM pm_private.secret'), '42501',
          'reminder_user cannot read another schema directly');
SELECT is(pg_temp.sqlstate_as('reminder_user',
          $$SELECT reminder.next_send_time('{}', 'pm_log''; SELECT s FROM pm_private.secret; --')$$), '42704',
          'a channel name is a value, not SQL');
SELECT is(pg_temp.sqlstate_as('reminder_user',
          $$SELECT reminder.opt_out('{"external_id": "x'' OR true; SELECT s FROM pm_private.secret; --"}')$$), '42704',
          'an external_id is a value, not SQL');
SELECT is(pg_temp.sqlstate_as('reminder_user',
          $$SELECT reminder.schedule('pm_log', '{"email": "a@example.com"}', 'pm_tpl', now(), '{"x": "'' || (SELECT s FROM pm_private.secret) || ''"}')$$), '00000',
          'message data is stored as given, never evaluated');

SELECT * FROM finish();
ROLLBACK;
