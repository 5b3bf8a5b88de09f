-- Channels: creation, replacement, secrets kept apart, and every way to get
-- a channel definition wrong.
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned
\pset tuples_only on

-- one of each kind
SELECT reminder.create_channel('ch_log', 'log');
SELECT reminder.create_channel('ch_hook', 'webhook',
    '{"url": "http://127.0.0.1:9/hook", "headers": {"X-Source": "reminder"}, "timeout": "3 seconds", "max_attempts": 3}',
    '{"signing_secret": "s3cret"}');
SELECT reminder.create_channel('ch_mail', 'email',
    '{"url": "smtp://127.0.0.1:2525", "from": "Reminders <noreply@example.com>", "starttls": "never", "bcc": ["audit@example.com"]}',
    '{"username": "u", "password": "p"}');
SELECT reminder.create_channel('ch_sms', 'sms',
    '{"provider": "twilio", "account_sid": "AC123", "from": "+48600000000", "base_url": "http://127.0.0.1:9"}',
    '{"auth_token": "tok"}');
SELECT reminder.create_channel('ch_smsapi', 'sms',
    '{"provider": "smsapi", "from": "Info", "default_country_code": "48", "fallback": "ch_mail", "rate_limit": 5}',
    '{"token": "t"}');
SELECT reminder.create_channel('ch_slack', 'slack', '{}', '{"url": "https://hooks.slack.com/services/T/B/X"}');

SELECT name, kind, settings FROM reminder.channel WHERE name LIKE 'ch\_%' ORDER BY name;
SELECT channel, secrets FROM reminder.channel_secret WHERE channel LIKE 'ch\_%' ORDER BY channel;

-- replacing settings with '{}' secrets keeps the stored secrets while the
-- channel connects where it did (another path on the same origin)
SELECT reminder.create_channel('ch_hook', 'webhook', '{"url": "http://127.0.0.1:9/v2"}');
SELECT settings, (SELECT secrets FROM reminder.channel_secret WHERE channel = 'ch_hook')
  FROM reminder.channel WHERE name = 'ch_hook';
-- ... but not when it would send them somewhere new: they must be given again
SELECT pg_temp.try($$SELECT reminder.create_channel('ch_hook', 'webhook', '{"url": "https://127.0.0.1:9/v2"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('ch_hook', 'webhook', '{"url": "http://127.0.0.1:9/v2", "recipient_hosts": ["*.example.com"]}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('ch_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "Reminders <noreply@example.com>", "starttls": "never", "tls_verify": false}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('ch_sms', 'sms', '{"provider": "generic", "url": "http://127.0.0.1:9/send?t={{secrets.auth_token}}", "body": "x"}')$$);
SELECT settings FROM reminder.channel WHERE name = 'ch_hook';
SELECT reminder.create_channel('ch_hook', 'webhook', '{"url": "https://127.0.0.1:9/v2"}', '{"signing_secret": "s3cret"}');
SELECT settings, (SELECT secrets FROM reminder.channel_secret WHERE channel = 'ch_hook')
  FROM reminder.channel WHERE name = 'ch_hook';
-- set_channel_secrets replaces them exactly
SELECT reminder.set_channel_secrets('ch_hook', '{}');
SELECT secrets FROM reminder.channel_secret WHERE channel = 'ch_hook';

-- bad input: each refused with its SQLSTATE, nothing written
SELECT count(*) AS channels_before FROM reminder.channel \gset
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'pigeon')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('9lives', 'log')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel(NULL, 'log')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "ftp://example.com/x"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://exa mple.com/"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "not a url"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "timout": 5}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "headers": {"X-A": "1\r\nX-Injected: 1"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "headers": {"Bad Name": "1"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "headers": {"content-TYPE": "text/plain"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "headers": {"Authorization": "Bearer x"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "headers": {"X-A": "1", "x-a": "2"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "headers": {"X-A:": "1"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "headers": {"X-A": "a\u0001b"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "recipient_hosts": ["http://a.example.com/"]}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "recipient_hosts": ["*.10.0.0.1"]}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/"}', '{"username": "u"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/"}', '{"username": "u", "password": "p", "bearer_token": "t"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "url": "https://{{recipient.gateway}}/send", "body": "x"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "url": "https://gw.example.com", "body": "x", "headers": {"Content-Type": "text/plain"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "timeout": "soon"}')$$);
-- durations: not a number, not finite, not decimal
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "timeout": "nan"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "retry_delay": "NaN"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "retry_max_delay": "infinity"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "retry_delay": "-inf"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "timeout": "0x10"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "retry_delay": "1e400"}')$$);
-- an attempt must end before the message's lease (reminder.lease_timeout)
SHOW reminder.lease_timeout;
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "timeout": "5 minutes"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "timeout": 600}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "max_attempts": 0}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "method": "DELETE"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "fallback": "nope"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "fallback": "x1"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/"}', '{"token": "t"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '{"url": "http://example.com/", "quiet_hours": {"start": "25:00", "end": "08:00"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'webhook', '"http://example.com/"')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "http://127.0.0.1", "from": "a@example.com"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "not-an-address"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com\nBcc: victim@example.com"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com", "starttls": "maybe"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com"}', '{"username": "u"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "carrier-pigeon"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "twilio", "account_sid": "AC1", "from": "+48600000000"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "smsapi"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "smsapi", "url": "http://x"}', '{"token": "t"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "smsapi", "default_country_code": "PL"}', '{"token": "t"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'slack')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'log', '{"url": "http://example.com"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'log', '{}', '{"token": "t"}')$$);
SELECT count(*) = :channels_before AS nothing_written FROM reminder.channel;

-- the kind of a channel with pending messages cannot change
SELECT reminder.create_template('ch_t', 'hi');
SELECT reminder.schedule('ch_log', '{}', 'ch_t', now() + interval '1 day') > 0;
SELECT pg_temp.try($$SELECT reminder.create_channel('ch_log', 'webhook', '{"url": "http://127.0.0.1:9/"}')$$);

-- drop_channel
SELECT pg_temp.try($$SELECT reminder.drop_channel('nope')$$);
SELECT pg_temp.try($$SELECT reminder.drop_channel('ch_log')$$);
SELECT pg_temp.try($$SELECT reminder.drop_channel('ch_mail')$$);
SELECT reminder.drop_channel('ch_log', cascade => true);
SELECT count(*) FROM reminder.message WHERE channel = 'ch_log';
SELECT reminder.drop_channel('ch_smsapi');
SELECT reminder.drop_channel(name) FROM reminder.channel WHERE name LIKE 'ch\_%' ORDER BY name;
SELECT count(*) FROM reminder.channel_secret WHERE channel LIKE 'ch\_%';
SELECT reminder.drop_template('ch_t');
