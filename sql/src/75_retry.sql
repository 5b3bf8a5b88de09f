-- ---------------------------------------------------------------------------
-- Dead letters: failed messages put back in the queue once their channel is
-- fixed.  A retried message gets a fresh set of attempts; its attempt rows
-- stay, and message.retries counts the requeues.  See docs/worker.md.
-- ---------------------------------------------------------------------------

ALTER TABLE reminder.message ADD COLUMN retries integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN reminder.message.retries IS 'how often reminder.retry() put the failed message back in the queue; each time attempts starts again from 0, and the attempt rows of earlier rounds stay';

CREATE FUNCTION reminder.retry(message_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'reminder_retry'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.retry(bigint) IS
'puts a failed message back in the queue with a fresh set of attempts, keeping its attempt history; false if it is still pending; refuses sent, cancelled and suppressed messages, one whose fallback took over, one whose recipient was forgotten (55000) and one whose channel no longer exists (42704)';

CREATE FUNCTION reminder.retry(channel text DEFAULT NULL,
                               failed_since timestamptz DEFAULT NULL,
                               failed_before timestamptz DEFAULT NULL,
                               error_like text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_retry_failed'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.retry(text, timestamptz, timestamptz, text) IS
'puts every failed message matching the filters (channel, failed at or after failed_since and before failed_before, last_error LIKE error_like) back in the queue, as reminder.retry(message_id) does; skips those that cannot be retried, saying how many in a NOTICE; returns how many it requeued';

GRANT EXECUTE ON FUNCTION reminder.retry(bigint) TO reminder_user;
GRANT EXECUTE ON FUNCTION reminder.retry(text, timestamptz, timestamptz, text) TO reminder_admin;
