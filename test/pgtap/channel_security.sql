-- Channel secrets stay where their owner put them: a recipient's url cannot
-- take a webhook's credentials or signature to another host (schedule()
-- refuses it, whatever way the host is written), a generic SMS gateway's
-- host cannot come from a message, re-pointing a channel needs its secrets
-- again, and a channel's headers can neither repeat nor replace the ones the
-- worker writes.  What the worker then sends is tested in
-- test/t/034_channel_security.pl.
\ir setup.psql

BEGIN;
SELECT plan(101);

CREATE ROLE cs_app NOLOGIN IN ROLE reminder_user;
CREATE ROLE cs_admin NOLOGIN IN ROLE reminder_admin;

SELECT reminder.create_channel('cs_hook', 'webhook',
    '{"url": "https://hooks.example.com/in"}',
    '{"signing_secret": "s3cret", "bearer_token": "tok"}');
SELECT reminder.create_channel('cs_list', 'webhook',
    '{"url": "https://hooks.example.com/in", "recipient_hosts": ["partner.example.org", "*.tenants.example.net", "10.0.0.7:8443", "fd00::7", "[fd00::8]:8443"]}',
    '{"signing_secret": "s3cret"}');
SELECT reminder.create_template('cs_t', '');
SELECT reminder.create_channel('cs_mail', 'email', '{"url": "smtp://mail.example.com:587", "from": "r@example.com", "starttls": "required"}',
    '{"username": "u", "password": "p"}');
SELECT reminder.create_channel('cs_twilio', 'sms', '{"provider": "twilio", "account_sid": "AC1", "from": "+48600000000"}',
    '{"auth_token": "tok"}');
SELECT reminder.create_channel('cs_gw', 'sms',
    '{"provider": "generic", "url": "https://{{secrets.host}}/send?key={{secrets.key}}&to={{to}}", "body": "{{text}}"}',
    '{"host": "gw.example.com", "key": "k"}');
SELECT reminder.create_channel('cs_slack', 'slack', '{}', '{"url": "https://hooks.slack.com/services/T/B/X"}');

-- The SQLSTATE of sql run as role ('00000': success).
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

CREATE FUNCTION pg_temp.schedule_to(channel text, url text) RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.sqlstate_as('cs_app',
        format('SELECT reminder.schedule(%L, %L, ''cs_t'')', channel, jsonb_build_object('url', url)))
$$;

SELECT count(*) AS messages_before FROM reminder.message \gset

-- 1. A reminder_user cannot point a webhook's request elsewhere --------------
SELECT is(pg_temp.schedule_to('cs_hook', url), '22023', 'recipient url refused: ' || url)
FROM unnest(ARRAY[
    'https://attacker.example/steal',
    'http://hooks.example.com/in',              -- another scheme: plain HTTP
    'https://hooks.example.com:8443/in',        -- another port
    'https://hooks.example.com./in',            -- a final dot
    'https://hooks.example.com@attacker.example/in',
    'https://hooks.example.com:443@attacker.example/',
    'https://user:pw@hooks.example.com/in',     -- credentials in the URL
    'https://hooks.example.com.attacker.example/',
    'https://attacker.example/https://hooks.example.com/in',
    'https://127.0.0.1/in',
    'https://[::1]/in',
    'https://2130706433/in',
    'https://xn--hoks-nra.example.com/',        -- a look-alike name
    'https://hοoks.example.com/in',             -- Greek omicron
    'https://partner.example.org/x'             -- listed on another channel only
]) url;

SELECT is(pg_temp.schedule_to('cs_hook', url), '00000', 'recipient url at the channel''s own origin: ' || url)
FROM unnest(ARRAY[
    'https://hooks.example.com/other/path?x=1',
    'HTTPS://HOOKS.Example.COM/in',
    'https://hooks.example.com:443/in',
    'https://hooks.ex%61mple.com/in'
]) url;

-- the same with recipient_hosts
SELECT is(pg_temp.schedule_to('cs_list', url), '00000', 'recipient url at a host of recipient_hosts: ' || url)
FROM unnest(ARRAY[
    'https://partner.example.org/hook',
    'http://PARTNER.example.org:8080/hook',
    'https://a.tenants.example.net/hook',
    'https://b.c.tenants.example.net/hook',
    'https://10.0.0.7:8443/hook',
    'https://[fd00:0::7]/hook',
    'https://[fd00::8]:8443/hook',
    'https://hooks.example.com/in'
]) url;
SELECT is(pg_temp.schedule_to('cs_list', url), '22023', 'recipient url outside recipient_hosts: ' || url)
FROM unnest(ARRAY[
    'https://tenants.example.net/hook',         -- "*." is for names under it
    'https://eviltenants.example.net/hook',
    'https://10.0.0.7/hook',                    -- the port is part of the entry
    'https://[fd00::8]/hook',
    'https://partner.example.org.attacker.example/',
    'https://partner.example.org@attacker.example/'
]) url;

-- a stored recipient's url is checked the same way
SELECT reminder.upsert_recipient('cs-r1', url => 'https://attacker.example/steal');
SELECT is(pg_temp.sqlstate_as('cs_app', $$SELECT reminder.schedule('cs_hook', '{"external_id": "cs-r1"}', 'cs_t')$$),
    '22023', 'a stored recipient''s url is refused too');
-- ... and as a message's own fallback
SELECT reminder.create_channel('cs_log', 'log');
SELECT is(pg_temp.sqlstate_as('cs_app', $$SELECT reminder.schedule('cs_log', '{"url": "https://attacker.example/"}', 'cs_t', fallback => 'cs_hook')$$),
    '22023', 'a fallback webhook refuses a foreign url when scheduled');

SELECT throws_like($$SELECT reminder.schedule('cs_hook', '{"url": "https://hooks.example.com@attacker.example/"}', 'cs_t')$$,
    '%must not hold a user name or password%', 'the error says the url holds credentials');
SELECT throws_like($$SELECT reminder.schedule('cs_hook', '{"url": "https://attacker.example/steal"}', 'cs_t')$$,
    'recipient "url" points to https://attacker.example:443, which is not a destination of channel "cs_hook"',
    'the error names the origin and the channel');

-- the other kinds ignore a recipient's url: nothing of theirs goes there
SELECT is(pg_temp.sqlstate_as('cs_app', format($$SELECT reminder.schedule(%L, %L, 'cs_t')$$, c, r)), '00000',
          'channel ' || c || ' takes a recipient url, and ignores it')
FROM (VALUES ('cs_mail', '{"email": "a@example.com", "url": "https://attacker.example/"}'),
             ('cs_twilio', '{"phone": "+48601234567", "url": "https://attacker.example/"}'),
             ('cs_slack', '{"url": "https://attacker.example/"}')) v(c, r);

SELECT is(count(*), :messages_before + 15::bigint, 'only the accepted messages were created') FROM reminder.message;

-- 2. A generic SMS gateway's host cannot depend on the message --------------
SELECT throws_ok(format($$SELECT reminder.create_channel('cs_bad', 'sms', %L)$$, s), '22023', NULL,
                 'generic url refused: ' || (s::jsonb->>'url'))
FROM unnest(ARRAY[
    '{"provider": "generic", "method": "GET", "url": "https://{{recipient.gateway}}/send"}',
    '{"provider": "generic", "method": "GET", "url": "https://gw.example.com{{data.path}}/send"}',
    '{"provider": "generic", "method": "GET", "url": "https://{{{data.host}}}/send"}',
    '{"provider": "generic", "method": "GET", "url": "https://gw.example.com:{{data.port}}/send"}',
    '{"provider": "generic", "method": "GET", "url": "https://{{message.idempotency_key}}.gw.example.com/"}',
    '{"provider": "generic", "method": "GET", "url": "{{#data.x}}https://a.example.com{{/data.x}}/send"}',
    '{"provider": "generic", "method": "GET", "url": "{{=<% %>=}}https://<%data.host%>/send"}',
    '{"provider": "generic", "method": "GET", "url": "https://{{to}}@gw.example.com/send"}'
]) s;
SELECT lives_ok($$SELECT reminder.create_channel('cs_ok', 'sms',
    '{"provider": "generic", "method": "GET", "url": "https://{{{secrets.user}}}:{{secrets.pass}}@{{ secrets.host }}:8443/send/{{to}}?text={{text}}&k={{data.key}}"}',
    '{"user": "u", "pass": "p", "host": "gw.example.com"}')$$,
    'generic url whose host part holds only literal text and secrets');

-- 3. Re-pointing a channel needs its secrets again --------------------------
SELECT is(pg_temp.sqlstate_as('cs_admin', format($$SELECT reminder.create_channel(%L, %L, %L)$$, c, k, s)), '22023',
          'keeping secrets refused: ' || c || ' ' || s)
FROM (VALUES
    ('cs_hook', 'webhook', '{"url": "https://attacker.example/in"}'),
    ('cs_hook', 'webhook', '{"url": "http://hooks.example.com/in"}'),
    ('cs_hook', 'webhook', '{"url": "https://hooks.example.com:444/in"}'),
    ('cs_hook', 'webhook', '{"url": "https://hooks.example.com/in", "recipient_hosts": ["attacker.example"]}'),
    ('cs_list', 'webhook', '{"url": "https://hooks.example.com/in", "recipient_hosts": ["*.example.org"]}'),
    ('cs_hook', 'sms', '{"provider": "generic", "url": "https://attacker.example/{{secrets.bearer_token}}", "body": "x"}'),
    ('cs_mail', 'webhook', '{"url": "https://mail.example.com:587/"}'),
    ('cs_mail', 'email', '{"url": "smtp://attacker.example:587", "from": "r@example.com", "starttls": "required"}'),
    ('cs_mail', 'email', '{"url": "smtp://mail.example.com:587", "from": "r@example.com", "starttls": "when_offered"}'),
    ('cs_mail', 'email', '{"url": "smtp://mail.example.com:587", "from": "r@example.com", "starttls": "required", "tls_verify": false}'),
    ('cs_mail', 'email', '{"url": "smtp://mail.example.com:587", "from": "r@example.com", "starttls": "required", "ca_file": "/etc/hostname"}'),
    ('cs_twilio', 'sms', '{"provider": "twilio", "account_sid": "AC1", "from": "+48600000000", "base_url": "https://attacker.example"}'),
    ('cs_gw', 'sms', '{"provider": "generic", "url": "https://{{secrets.host}}.attacker.example/?k={{secrets.key}}", "body": "x"}'),
    ('cs_slack', 'slack', '{"url": "https://attacker.example/"}')
) v(c, k, s);
SELECT is((SELECT secrets FROM reminder.channel_secret WHERE channel = 'cs_hook'),
          '{"signing_secret": "s3cret", "bearer_token": "tok"}', '... and the stored secrets and settings are as they were');
SELECT is((SELECT settings->>'url' FROM reminder.channel WHERE name = 'cs_hook'), 'https://hooks.example.com/in', '...');

SELECT is(pg_temp.sqlstate_as('cs_admin', format($$SELECT reminder.create_channel(%L, %L, %L)$$, c, k, s)), '00000',
          'keeping secrets allowed: ' || c || ' ' || s)
FROM (VALUES
    ('cs_hook', 'webhook', '{"url": "https://hooks.example.com/v2", "timeout": "5 seconds"}'),
    ('cs_list', 'webhook', '{"url": "https://hooks.example.com/in", "recipient_hosts": ["partner.example.org"]}'),
    ('cs_mail', 'email', '{"url": "smtp://MAIL.example.com:587/client.example.com", "from": "other@example.com", "starttls": "required"}'),
    ('cs_twilio', 'sms', '{"provider": "twilio", "account_sid": "AC1", "from": "+48600000001", "base_url": "https://api.twilio.com/"}'),
    ('cs_gw', 'sms', '{"provider": "generic", "url": "https://{{secrets.host}}/v2/send?key={{secrets.key}}", "body": "{{text}}"}')
) v(c, k, s);
SELECT is((SELECT secrets FROM reminder.channel_secret WHERE channel = 'cs_hook'),
          '{"signing_secret": "s3cret", "bearer_token": "tok"}', '... with the secrets kept');
SELECT is(pg_temp.sqlstate_as('cs_admin', $$SELECT reminder.create_channel('cs_hook', 'webhook', '{"url": "https://elsewhere.example/in"}', '{"signing_secret": "new"}')$$),
          '00000', 'a new destination with its secrets given again');

-- 4. Headers the worker writes cannot be set by a channel --------------------
SELECT throws_ok(format($$SELECT reminder.create_channel('cs_h', 'webhook', %L)$$,
                        jsonb_build_object('url', 'https://example.com/', 'headers', jsonb_build_object(h, 'x'))),
                 '22023', NULL, 'webhook header refused: ' || h)
FROM unnest(ARRAY['Content-Type', 'content-type', 'CONTENT-LENGTH', 'Transfer-Encoding', 'host', 'Idempotency-Key',
                  'X-Reminder-Signature', 'x-reminder-signature', 'Authorization', 'AUTHORIZATION', 'User-Agent',
                  'Expect', 'Connection', 'TE', 'Upgrade', 'Proxy-Authorization']) h;
SELECT throws_ok(format($$SELECT reminder.create_channel('cs_h', 'sms', %L)$$,
                        jsonb_build_object('provider', 'generic', 'url', 'https://example.com/', 'body', 'x',
                                           'headers', jsonb_build_object(h, 'x'))),
                 '22023', NULL, 'generic SMS header refused: ' || h)
FROM unnest(ARRAY['Content-Type', 'Content-Length', 'transfer-encoding', 'Host', 'idempotency-key']) h;
SELECT lives_ok($$SELECT reminder.create_channel('cs_h', 'sms',
    '{"provider": "generic", "url": "https://example.com/", "body": "x", "headers": {"Authorization": "Bearer {{secrets.t}}", "X-Reminder-Signature": "n/a"}}', '{"t": "1"}')$$,
    'a generic gateway sets its own Authorization (the worker writes none there)');
SELECT throws_ok($$SELECT reminder.create_channel('cs_h', 'webhook', '{"url": "https://example.com/", "headers": {"X-A": "1\nHost: evil"}}')$$,
    '22023', NULL, 'LF in a header value');
SELECT throws_ok($$SELECT reminder.create_channel('cs_h', 'webhook', '{"url": "https://example.com/", "headers": {"X-A": "1\r"}}')$$,
    '22023', NULL, 'CR in a header value');
SELECT throws_ok($$SELECT reminder.create_channel('cs_h', 'webhook', '{"url": "https://example.com/", "headers": {"X-A: x\r\nHost": "evil"}}')$$,
    '22023', NULL, 'a header name with a colon and CR/LF');
SELECT throws_ok($$SELECT reminder.create_channel('cs_h', 'webhook', '{"url": "https://example.com/", "headers": {"X-A\u007f": "1"}}')$$,
    '22023', NULL, 'a header name with DEL');
SELECT throws_ok($$SELECT reminder.create_channel('cs_h', 'webhook', '{"url": "https://example.com/", "headers": {"X-A": "a\u007fb"}}')$$,
    '22023', NULL, 'a header value with DEL');
SELECT lives_ok($$SELECT reminder.create_channel('cs_h2', 'webhook', '{"url": "https://example.com/", "headers": {"X-A": "a: b\tc"}}')$$,
    'a colon and a tab in a header value are fine');

SELECT * FROM finish();
ROLLBACK;
