-- The settings the email, SMS and Slack transports add, refused when
-- wrong; and how an SMS text is counted (reminder.sms_segments).
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned
\pset tuples_only on

-- accepted
SELECT reminder.create_channel('tr_mail', 'email',
    '{"url": "smtps://127.0.0.1:465", "from": "Przypomnienia <noreply@example.com>", "tls_verify": true, "list_unsubscribe": "link"}');
SELECT reminder.create_channel('tr_sms', 'sms',
    '{"provider": "smsapi", "unicode": "transliterate", "tls_verify": true}', '{"token": "t"}');
SELECT reminder.create_channel('tr_gw', 'sms',
    '{"provider": "generic", "method": "GET", "url": "https://gw.example.com/send?to={{to}}&text={{text}}", "id_field": "result.id"}');
SELECT reminder.create_channel('tr_gw_json', 'sms',
    '{"provider": "generic", "url": "https://gw.example.com/send", "content_type": "application/json",
      "body": "{\"to\": \"{{to}}\", \"text\": \"{{text}}\"}", "headers": {"Authorization": "Bearer {{secrets.token}}"}}',
    '{"token": "t"}');
SELECT reminder.create_channel('tr_slack', 'slack', '{"username": "bot", "icon_url": "https://example.com/i.png"}',
    '{"url": "https://hooks.slack.com/services/T/B/X"}');
-- turning certificate checks off is allowed, with a warning
SELECT reminder.create_channel('tr_insecure', 'email', '{"url": "smtps://127.0.0.1:465", "from": "a@example.com", "tls_verify": false}');

-- refused
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com", "tls_verify": "no"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com", "ca_file": "certs/ca.pem"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com", "ca_file": "/nonexistent/ca.pem"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com", "ca_file": "/tmp"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com", "list_unsubscribe": "always"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "smsapi", "unicode": "ascii"}', '{"token": "t"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "smsapi", "id_field": "id"}', '{"token": "t"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "twilio", "account_sid": "AC/../x", "from": "+48600000000"}', '{"auth_token": "t"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "method": "DELETE", "url": "https://gw.example.com/", "body": "x"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "method": "GET", "url": "https://gw.example.com/", "body": "x"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "url": "https://gw.example.com/"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "url": "https://gw.example.com/{{to", "body": "x"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "url": "https://gw.example.com/", "body": "{{#a}}x"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'sms', '{"provider": "generic", "url": "https://gw.example.com/", "body": "x", "headers": {"X-A": "{{/b}}"}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'slack', '{"icon_url": "javascript:alert(1)"}', '{"url": "https://hooks.slack.com/services/T/B/X"}')$$);
SELECT pg_temp.try($$SELECT reminder.create_channel('x1', 'slack', '{"username": 42}', '{"url": "https://hooks.slack.com/services/T/B/X"}')$$);
SELECT count(*) AS x1_created FROM reminder.channel WHERE name = 'x1';

-- naming a server file takes pg_read_server_files
CREATE ROLE tr_admin LOGIN IN ROLE reminder_admin;
SET ROLE tr_admin;
SELECT pg_temp.try($$SELECT reminder.create_channel('x2', 'email', '{"url": "smtp://127.0.0.1", "from": "a@example.com", "ca_file": "/etc/passwd"}')$$);
RESET ROLE;
DROP ROLE tr_admin;

-- a default country code may be written with its "+"
SELECT reminder.create_channel('tr_plus', 'sms', '{"provider": "smsapi", "default_country_code": "+48"}', '{"token": "t"}');
SELECT reminder.create_template('tr_t', 'x');
SELECT reminder.schedule('tr_plus', '{"phone": "0601 234 567"}', 'tr_t', now() + interval '1 day') AS plus_id \gset
SELECT recipient->>'phone' FROM reminder.message WHERE id = :plus_id;

-- SMS segments: GSM-7 160 / 153 per part, extension characters count
-- twice, anything else makes it UCS-2 at 70 / 67 UTF-16 units
SELECT t, encoding, units, segments FROM (VALUES
    (''),
    ('Hello'),
    (repeat('a', 160)),
    (repeat('a', 161)),
    (repeat('a', 306)),
    (repeat('a', 307)),
    (repeat('a', 158) || '€'),
    (repeat('a', 159) || '€'),
    (repeat('a', 152) || '{' || repeat('a', 10)),
    ('Zażółć gęślą jaźń'),
    (repeat('ż', 70)),
    (repeat('ż', 71)),
    (repeat('a', 66) || '😀'),
    (repeat('a', 67) || '😀'),
    (repeat('a', 69) || '😀'),
    ('Ça va? Åse, Øystein, Ñandù, Ü, ¿¡§'),
    ('Ñandú'),
    ('tab	here'),
    ('back`tick')
) v(t), reminder.sms_segments(t);
-- transliteration keeps GSM-7 letters, drops diacritics of the rest
SELECT (reminder.sms_segments('Przypomnienie: spotkanie o 15:00 — Łódź, żółć', false)).*;
SELECT (reminder.sms_segments('Przypomnienie: spotkanie o 15:00 — Łódź, żółć', true)).*;
SELECT (reminder.sms_segments('„Cytat” – ½ ﬁrmy, émigré Ærø', true)).*;
SELECT (reminder.sms_segments('Привет', true)).*;

SELECT reminder.drop_channel(name, cascade => true) FROM reminder.channel WHERE name LIKE 'tr\_%';
SELECT reminder.drop_template('tr_t');
