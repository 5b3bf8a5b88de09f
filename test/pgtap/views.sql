-- Observability views: reminder.queue and reminder.stats add up.
\ir setup.psql

BEGIN;
SELECT plan(10);
SET LOCAL TimeZone = 'UTC';

SELECT reminder.create_channel('vw_a', 'log');
SELECT reminder.create_channel('vw_b', 'log');
SELECT reminder.create_template('vw_t', 'x');

-- queue: 3 scheduled on a (2 overdue), 1 retrying on b
SELECT reminder.schedule('vw_a', '{}', 'vw_t', now() - interval '10 minutes');
SELECT reminder.schedule('vw_a', '{}', 'vw_t', now() - interval '5 minutes');
SELECT reminder.schedule('vw_a', '{}', 'vw_t', now() + interval '1 hour');
SELECT reminder.schedule('vw_b', '{}', 'vw_t', now() - interval '1 hour') AS r \gset
UPDATE reminder.message SET status = 'retrying', next_attempt_at = now() + interval '1 minute' WHERE id = :r;

SELECT is((SELECT row(messages, due_now, oldest_due_at, max_overdue)::text FROM reminder.queue WHERE channel = 'vw_a' AND status = 'scheduled'),
          row(3::bigint, 2::bigint, now() - interval '10 minutes', interval '10 minutes')::text,
          'queue: backlog, due now, oldest due and overdue per channel and state');
SELECT is((SELECT row(messages, due_now, next_attempt_at)::text FROM reminder.queue WHERE channel = 'vw_b'),
          row(1::bigint, 0::bigint, now() + interval '1 minute')::text, 'a retrying message waits for its next attempt');

-- stats: on 2024-05-01, 100 messages on a sent with latencies 1..100 s,
-- 25 failed, 5 suppressed; events on them
DELETE FROM reminder.message WHERE channel IN ('vw_a', 'vw_b');
INSERT INTO reminder.message (channel, recipient, template, status, due_at, next_attempt_at, sent_at, updated_at)
SELECT 'vw_a', '{}', 'vw_t', 'sent', '2024-05-01 10:00+00', NULL,
       '2024-05-01 10:00+00'::timestamptz + s * interval '1 second', '2024-05-01 11:00+00'
  FROM generate_series(1, 100) s;
INSERT INTO reminder.message (channel, recipient, template, status, due_at, next_attempt_at, updated_at)
SELECT 'vw_a', '{}', 'vw_t', st, '2024-05-01 10:00+00', NULL, '2024-05-01 12:00+00'
  FROM unnest(array_fill('failed'::text, ARRAY[25]) || array_fill('suppressed'::text, ARRAY[5])) st;
INSERT INTO reminder.event (message_id, kind, occurred_at)
SELECT id, k, '2024-05-01 13:00+00' FROM (SELECT id FROM reminder.message WHERE channel = 'vw_a' AND status = 'sent' ORDER BY id LIMIT 80) m,
       unnest(ARRAY['delivered', 'opened']) k;
INSERT INTO reminder.event (message_id, kind, occurred_at)
SELECT id, 'bounced', '2024-05-02 09:00+00' FROM reminder.message WHERE channel = 'vw_a' AND status = 'sent' ORDER BY id DESC LIMIT 3;

SELECT is((SELECT row(sent, failed, suppressed, cancelled)::text FROM reminder.stats WHERE channel = 'vw_a' AND day = '2024-05-01'),
          row(100::bigint, 25::bigint, 5::bigint, 0::bigint)::text, 'stats: outcomes per channel and day');
SELECT is((SELECT delivery_rate FROM reminder.stats WHERE channel = 'vw_a' AND day = '2024-05-01'), 0.8000, 'delivery rate = sent / (sent + failed)');
SELECT is((SELECT latency_p50 FROM reminder.stats WHERE channel = 'vw_a' AND day = '2024-05-01'), interval '50.5 seconds', 'latency p50');
SELECT is((SELECT latency_p95 FROM reminder.stats WHERE channel = 'vw_a' AND day = '2024-05-01'), interval '95.05 seconds', 'latency p95');
SELECT is((SELECT latency_p99 FROM reminder.stats WHERE channel = 'vw_a' AND day = '2024-05-01'), interval '99.01 seconds', 'latency p99');
SELECT is((SELECT row(delivered, opened, bounced)::text FROM reminder.stats WHERE channel = 'vw_a' AND day = '2024-05-01'),
          row(80::bigint, 80::bigint, 0::bigint)::text, 'events by kind on the day they happened');
SELECT is((SELECT row(sent, bounced, delivery_rate)::text FROM reminder.stats WHERE channel = 'vw_a' AND day = '2024-05-02'),
          row(0::bigint, 3::bigint, NULL::numeric)::text, 'a day with only events has a row too');
SELECT is((SELECT sum(sent + failed + suppressed + cancelled)::bigint FROM reminder.stats WHERE channel = 'vw_a'),
          (SELECT count(*) FROM reminder.message WHERE channel = 'vw_a'), 'every finished message is counted once');

SELECT * FROM finish();
ROLLBACK;
