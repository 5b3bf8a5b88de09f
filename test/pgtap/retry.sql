-- Dead letters, the SQL surface of reminder.retry(): which messages may be
-- requeued and what a requeue resets and keeps, who may call which form,
-- and the clear errors for the rest.  The worker side (a channel fixed,
-- messages delivered once) is test/t/096_retry.pl.
\ir setup.psql

BEGIN;
SELECT plan(27);
SET LOCAL client_min_messages = warning;   -- the NOTICE of skipped messages: see 096_retry.pl

SELECT reminder.create_channel('rt_hook', 'webhook', '{"url": "http://127.0.0.1:9/hook"}');
SELECT reminder.create_channel('rt_log', 'log');
SELECT reminder.create_template('rt_t', '{"n": {{n}}}');

-- messages in every state, as the worker would have left them
CREATE FUNCTION pg_temp.msg(key text, status text, last_error text DEFAULT NULL, channel text DEFAULT 'rt_hook')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    mid bigint := reminder.schedule(channel, '{"name": "Ada"}', 'rt_t', now(), '{"n": 1}', key);
BEGIN
    UPDATE reminder.message m
       SET status = msg.status, attempts = CASE WHEN msg.status IN ('failed', 'sent') THEN 3 ELSE 0 END,
           last_error = msg.last_error, updated_at = now() - interval '1 hour',
           next_attempt_at = CASE WHEN msg.status IN ('scheduled', 'retrying', 'sending') THEN m.next_attempt_at END
     WHERE m.id = mid;
    IF msg.status IN ('failed', 'sent') THEN
        INSERT INTO reminder.attempt (message_id, attempt, started_at, duration, outcome, error)
        SELECT mid, a, now() - interval '1 hour', interval '1 ms',
               CASE WHEN msg.status = 'sent' AND a = 3 THEN 'sent' ELSE 'transient' END, 'connection refused'
          FROM generate_series(1, 3) a;
    END IF;
    RETURN mid;
END
$$;
SELECT pg_temp.msg('failed-1', 'failed', 'gave up after 3 attempts: connection refused') AS failed_1 \gset
SELECT pg_temp.msg('failed-2', 'failed', 'gave up after 3 attempts: connection refused') AS failed_2 \gset
SELECT pg_temp.msg('failed-400', 'failed', 'HTTP 400 Bad Request') AS failed_400 \gset
SELECT pg_temp.msg('sent-1', 'sent') AS sent_1 \gset
SELECT pg_temp.msg('cancelled-1', 'cancelled', 'cancelled by the application') AS cancelled_1 \gset
SELECT pg_temp.msg('suppressed-1', 'suppressed', 'recipient opted out of every channel') AS suppressed_1 \gset
SELECT pg_temp.msg('scheduled-1', 'scheduled') AS scheduled_1 \gset
SELECT pg_temp.msg('sending-1', 'sending') AS sending_1 \gset

-- one message: a fresh set of attempts, the history kept
SELECT is(reminder.retry(:failed_1), true, 'a failed message is requeued');
SELECT is((SELECT row(status, attempts, retries, last_error IS NULL, next_attempt_at <= now())::text
             FROM reminder.message WHERE id = :failed_1),
          row('scheduled', 0, 1, true, true)::text,
          'it is scheduled for now, with a fresh set of attempts, its last error cleared and the requeue counted');
SELECT is((SELECT count(*) FROM reminder.attempt WHERE message_id = :failed_1), 3::bigint, 'its attempt rows stay');
SELECT is((SELECT idempotency_key FROM reminder.message WHERE id = :failed_1), 'failed-1',
          'it keeps its idempotency key, for the receiver to drop a duplicate');
SELECT is(reminder.retry(:failed_1), false, 'retrying it again while it is pending does nothing');
SELECT is(reminder.retry(:scheduled_1), false, 'nor does retrying a scheduled message');
SELECT is(reminder.retry(:sending_1), false, '...or one being sent');

-- what is refused
SELECT throws_ok(format('SELECT reminder.retry(%s)', :sent_1), '55000',
                 format('cannot retry message %s because it was sent', :sent_1), 'a sent message is refused');
SELECT throws_ok(format('SELECT reminder.retry(%s)', :cancelled_1), '55000',
                 format('cannot retry message %s because it is cancelled', :cancelled_1), 'a cancelled one');
SELECT throws_ok(format('SELECT reminder.retry(%s)', :suppressed_1), '55000',
                 format('cannot retry message %s because it is suppressed', :suppressed_1), 'a suppressed one');
SELECT throws_ok('SELECT reminder.retry(-1)', 'P0002', 'message -1 does not exist', 'an unknown message');
SELECT throws_ok('SELECT reminder.retry(NULL::bigint)', '22004', 'message id must not be null', 'a NULL id');
SELECT is((SELECT string_agg(status || ':' || retries, ',' ORDER BY id) FROM reminder.message
            WHERE id IN (:sent_1, :cancelled_1, :suppressed_1)), 'sent:0,cancelled:0,suppressed:0',
          'refusals change nothing');

-- a failed message whose fallback took over: never sent twice
SELECT pg_temp.msg('fb-1', 'failed', 'gave up after 3 attempts: connection refused') AS fb_1 \gset
SELECT reminder.schedule('rt_log', '{"name": "Ada"}', 'rt_t', now(), '{"n": 1}', 'fb-1:fallback') AS fb_1_fallback \gset
UPDATE reminder.message SET fallback_of = :fb_1, status = 'sent', next_attempt_at = NULL WHERE id = :fb_1_fallback;
SELECT throws_ok(format('SELECT reminder.retry(%s)', :fb_1), '55000',
                 format('cannot retry message %s because fallback message %s took it over', :fb_1, :fb_1_fallback),
                 'a message whose fallback took over is refused, naming the fallback');

-- a message whose channel was dropped: refused until the channel is back
SELECT pg_temp.msg('gone-1', 'failed', 'channel "rt_gone" does not exist', 'rt_log') AS gone_1 \gset
UPDATE reminder.message SET channel = 'rt_gone' WHERE id = :gone_1;
SELECT throws_ok(format('SELECT reminder.retry(%s)', :gone_1), '42704',
                 format('cannot retry message %s because its channel "rt_gone" does not exist', :gone_1),
                 'a message whose channel no longer exists is refused');
SELECT reminder.create_channel('rt_gone', 'log');
SELECT is(reminder.retry(:gone_1), true, '...and retried once the channel exists again');

-- a forgotten recipient
SELECT pg_temp.msg('forgotten-1', 'failed', 'connection refused') AS forgotten_1 \gset
UPDATE reminder.message SET recipient = '{"forgotten": true}' WHERE id = :forgotten_1;
SELECT throws_ok(format('SELECT reminder.retry(%s)', :forgotten_1), '55000',
                 format('cannot retry message %s because its recipient was forgotten', :forgotten_1),
                 'a message whose recipient was forgotten is refused');

-- the filtered form: a channel, a time window, an error pattern
SELECT pg_temp.msg('late-1', 'failed', 'gave up after 3 attempts: connection refused') AS late_1 \gset
UPDATE reminder.message SET updated_at = now() - interval '10 days' WHERE id = :late_1;
SELECT throws_ok($$SELECT reminder.retry(channel => 'rt_nosuch')$$, '42704', NULL,
                 'a channel that does not exist is an error');
SELECT is(reminder.retry(channel => 'rt_log'), 0::bigint, 'a channel without failed messages: none');
SELECT is(reminder.retry(channel => 'rt_hook', failed_since => now() - interval '1 day', error_like => '%connection refused%'),
          1::bigint, 'the filters pick the failed messages of the channel, failed since then with that error');
SELECT is((SELECT string_agg(idempotency_key || ':' || status, ',' ORDER BY id) FROM reminder.message
            WHERE id IN (:failed_2, :failed_400, :late_1, :fb_1, :forgotten_1)),
          'failed-2:scheduled,failed-400:failed,fb-1:failed,forgotten-1:failed,late-1:failed',
          'only failed-2: not the HTTP 400, nor the one failed 10 days ago, nor those that cannot be retried');
SELECT is(reminder.retry(failed_before => now() - interval '5 days'), 1::bigint, 'failed_before: the one of 10 days ago');
SELECT is(reminder.retry(), 1::bigint, 'no filter: every failed message that can be retried (the HTTP 400)');
SELECT is((SELECT count(*) FROM reminder.message WHERE status = 'failed'), 2::bigint,
          'what cannot be retried stays failed (the fallback''s original and the forgotten one)');

-- who may call which form
SELECT ok(has_function_privilege('reminder_user', 'reminder.retry(bigint)', 'EXECUTE'),
          'reminder_user may retry a message');
SELECT ok(NOT has_function_privilege('reminder_user', 'reminder.retry(text, timestamptz, timestamptz, text)', 'EXECUTE')
          AND has_function_privilege('reminder_admin', 'reminder.retry(text, timestamptz, timestamptz, text)', 'EXECUTE'),
          'only reminder_admin may requeue in bulk');
SELECT ok(NOT has_function_privilege('reminder_web', 'reminder.retry(bigint)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'reminder.retry(bigint)', 'EXECUTE'),
          'reminder_web and PUBLIC may not');

SELECT * FROM finish();
ROLLBACK;
