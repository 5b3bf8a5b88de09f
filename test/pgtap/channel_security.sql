-- A channel's headers can neither repeat nor replace the ones the worker
-- writes, in any case, and hold no line break or other control character.
-- What the worker then sends is tested in test/t/034_channel_security.pl.
\unset ECHO
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
SELECT plan(28);

-- Headers the worker writes cannot be set by a channel --------------------
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
