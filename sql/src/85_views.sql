-- ---------------------------------------------------------------------------
-- Observability: what is waiting, and how delivery went.  See
-- docs/observability.md.
-- ---------------------------------------------------------------------------

CREATE VIEW reminder.queue AS
SELECT channel,
       status,
       count(*) AS messages,
       count(*) FILTER (WHERE next_attempt_at <= now()) AS due_now,
       min(due_at) AS oldest_due_at,
       min(next_attempt_at) AS next_attempt_at,
       now() - min(next_attempt_at) FILTER (WHERE next_attempt_at <= now()) AS max_overdue
  FROM reminder.message
 WHERE status IN ('scheduled', 'sending', 'retrying')
 GROUP BY channel, status;
COMMENT ON VIEW reminder.queue IS 'the backlog: messages not yet finished, by channel and state';
COMMENT ON COLUMN reminder.queue.messages IS 'messages in this state on this channel';
COMMENT ON COLUMN reminder.queue.due_now IS 'of those, how many the worker may try now (next_attempt_at has passed)';
COMMENT ON COLUMN reminder.queue.oldest_due_at IS 'the earliest due_at among them';
COMMENT ON COLUMN reminder.queue.next_attempt_at IS 'the earliest time the worker may next try one of them';
COMMENT ON COLUMN reminder.queue.max_overdue IS 'how long the most overdue of them has been waiting past next_attempt_at (NULL if none is due)';

CREATE VIEW reminder.stats AS
WITH finished AS (
    SELECT m.channel,
           coalesce(m.sent_at, m.updated_at)::date AS day,
           count(*) FILTER (WHERE m.status = 'sent') AS sent,
           count(*) FILTER (WHERE m.status = 'failed') AS failed,
           count(*) FILTER (WHERE m.status = 'suppressed') AS suppressed,
           count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled,
           percentile_cont(0.50) WITHIN GROUP (ORDER BY m.sent_at - m.due_at) FILTER (WHERE m.status = 'sent') AS latency_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY m.sent_at - m.due_at) FILTER (WHERE m.status = 'sent') AS latency_p95,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY m.sent_at - m.due_at) FILTER (WHERE m.status = 'sent') AS latency_p99
      FROM reminder.messages m
     WHERE m.status IN ('sent', 'failed', 'suppressed', 'cancelled')
     GROUP BY 1, 2
), events AS (
    SELECT m.channel,
           e.occurred_at::date AS day,
           count(*) FILTER (WHERE e.kind = 'delivered') AS delivered,
           count(*) FILTER (WHERE e.kind = 'bounced') AS bounced,
           count(*) FILTER (WHERE e.kind = 'opened') AS opened,
           count(*) FILTER (WHERE e.kind = 'clicked') AS clicked,
           count(*) FILTER (WHERE e.kind = 'confirmed') AS confirmed,
           count(*) FILTER (WHERE e.kind = 'declined') AS declined,
           count(*) FILTER (WHERE e.kind = 'reschedule_requested') AS reschedule_requested,
           count(*) FILTER (WHERE e.kind = 'answered') AS answered,
           count(*) FILTER (WHERE e.kind = 'unsubscribed') AS unsubscribed,
           count(*) FILTER (WHERE e.kind = 'complained') AS complained
      FROM reminder.event e
      JOIN reminder.messages m ON m.id = e.message_id
     GROUP BY 1, 2
)
SELECT coalesce(f.channel, e.channel) AS channel,
       coalesce(f.day, e.day) AS day,
       coalesce(f.sent, 0) AS sent,
       coalesce(f.failed, 0) AS failed,
       coalesce(f.suppressed, 0) AS suppressed,
       coalesce(f.cancelled, 0) AS cancelled,
       round(f.sent::numeric / nullif(f.sent + f.failed, 0), 4) AS delivery_rate,
       f.latency_p50,
       f.latency_p95,
       f.latency_p99,
       coalesce(e.delivered, 0) AS delivered,
       coalesce(e.bounced, 0) AS bounced,
       coalesce(e.opened, 0) AS opened,
       coalesce(e.clicked, 0) AS clicked,
       coalesce(e.confirmed, 0) AS confirmed,
       coalesce(e.declined, 0) AS declined,
       coalesce(e.reschedule_requested, 0) AS reschedule_requested,
       coalesce(e.answered, 0) AS answered,
       coalesce(e.unsubscribed, 0) AS unsubscribed,
       coalesce(e.complained, 0) AS complained
  FROM finished f
  FULL JOIN events e ON e.channel = f.channel AND e.day = f.day;
COMMENT ON VIEW reminder.stats IS 'delivery per channel and day (in the session''s TimeZone): outcomes of finished messages by the day they finished, events by the day they happened';
COMMENT ON COLUMN reminder.stats.sent IS 'messages sent that day';
COMMENT ON COLUMN reminder.stats.failed IS 'messages that failed for good that day';
COMMENT ON COLUMN reminder.stats.suppressed IS 'messages suppressed (opt-out, throttle, stop condition) that day';
COMMENT ON COLUMN reminder.stats.cancelled IS 'messages cancelled that day';
COMMENT ON COLUMN reminder.stats.delivery_rate IS 'sent / (sent + failed); NULL when neither happened';
COMMENT ON COLUMN reminder.stats.latency_p50 IS 'median of sent_at - due_at over messages sent that day (quiet-hours deferrals included)';
COMMENT ON COLUMN reminder.stats.latency_p95 IS '95th percentile of sent_at - due_at';
COMMENT ON COLUMN reminder.stats.latency_p99 IS '99th percentile of sent_at - due_at';
COMMENT ON COLUMN reminder.stats.delivered IS 'delivered events (provider callbacks) that day; the other event columns count their kind the same way';

GRANT SELECT ON reminder.queue, reminder.stats TO reminder_user;
