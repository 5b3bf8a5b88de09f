-- History: finished messages moved out of the outbox, attempts and history
-- partitioned by time, retention by dropping partitions.  The worker's side
-- (moving on its own, making partitions, purging) is test/t/041_history.pl.
\ir setup.psql

BEGIN;
SELECT plan(36);

SELECT reminder.create_channel('hi_log', 'log');
SELECT reminder.create_template('hi_t', 'Hello {{name}}');

-- ---------------------------------------------------------------- partitions
-- Start from none: a worker may have made its own (the test rolls back).
SELECT format('DROP TABLE %s', p.part) FROM reminder._partitions('reminder.attempt') p
UNION ALL
SELECT format('DROP TABLE %s', p.part) FROM reminder._partitions('reminder.message_history') p
\gexec
SELECT is((SELECT count(*) FROM reminder._make_partitions('1 hour')), 0::bigint,
          '_make_partitions() makes none before the first row (a restore brings its own)');
INSERT INTO reminder.attempt (message_id, attempt, started_at, outcome) VALUES (0, 1, now(), 'sent');
SELECT is((SELECT count(*) FROM reminder.attempt_default), 1::bigint, 'which waits in the default partition');
SELECT is((SELECT array_agg(p::text LIKE 'reminder.attempt_%' ORDER BY p::text) FROM reminder._make_partitions('1 hour') p),
          ARRAY[true, true], 'then it makes this hour''s and the next hour''s partition of attempts');
SELECT is((SELECT count(*) FROM reminder.attempt_default), 0::bigint, 'and moves the row into the first');
SELECT is((SELECT count(*) FROM reminder._make_partitions('1 hour')), 0::bigint, 'and nothing when they exist');
SELECT ok((SELECT bool_and(lo <= now() AND now() < hi) FROM reminder._partitions('reminder.attempt') WHERE lo <= now()),
          'the first covers now');
SELECT is((SELECT array_agg(to_char(lo AT TIME ZONE 'UTC', 'MI:SS')) FROM reminder._partitions('reminder.attempt')),
          ARRAY['00:00', '00:00'], 'aligned to the width');
SELECT ok((SELECT bool_and(p.part::text ~ '^reminder\.attempt_\d{8}_\d{4}$') FROM reminder._partitions('reminder.attempt') p),
          'named by the UTC time they start');
SELECT is((SELECT array_agg(pg_get_indexdef(i.indexrelid) ~ '\((id|message_id)\)' ORDER BY i.indexrelid)
             FROM pg_index i WHERE i.indrelid = (SELECT p.part FROM reminder._partitions('reminder.attempt') p ORDER BY lo LIMIT 1)),
          ARRAY[true, true], 'with the indexes of the default partition (its key, the message id)');
DELETE FROM reminder.attempt WHERE message_id = 0;
SELECT throws_ok($$SELECT reminder._make_partitions('10 seconds')$$, '22023',
                 'partition width must be at least a minute', 'a width under a minute is refused');

-- An attempt made when no partition covered its time waited in the default
-- partition; making the partition moves it there.
INSERT INTO reminder.attempt (message_id, attempt, started_at, outcome)
VALUES (0, 1, now() + interval '3 hours', 'sent');
SELECT is((SELECT count(*) FROM reminder.attempt_default), 1::bigint, 'an attempt no partition covers goes to the default partition');
SELECT ok((SELECT count(*) FROM reminder._make_partitions('1 day')) > 0, 'a wider width makes partitions');
SELECT ok((SELECT bool_and(lo = prev_hi) FROM (SELECT lo, lag(hi) OVER (ORDER BY lo) AS prev_hi
                                                 FROM reminder._partitions('reminder.attempt')) p
            WHERE prev_hi IS NOT NULL),
          'which start where the last one ends');
SELECT is((SELECT count(*) FROM reminder.attempt_default), 0::bigint, 'and takes the rows of its range out of the default partition');
DELETE FROM reminder.attempt WHERE message_id = 0;

-- ---------------------------------------------------------------- moving
CREATE FUNCTION pg_temp.msg(k text, st text, age interval DEFAULT '2 hours') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    mid bigint;
BEGIN
    mid := reminder.schedule('hi_log', '{"email": "ada@example.com", "cc": ["eve@example.com"]}', 'hi_t',
                             now() - age, '{"name": "Ada"}', k);
    IF st <> 'scheduled' THEN
        UPDATE reminder.message
           SET status = st, next_attempt_at = NULL,
               sent_at = CASE WHEN st = 'sent' THEN now() - age END,
               last_error = CASE WHEN st = 'failed' THEN 'HTTP 503' END,
               updated_at = now() - age
         WHERE id = mid;
        INSERT INTO reminder.attempt (message_id, attempt, started_at, outcome)
        VALUES (mid, 1, now() - age, CASE WHEN st = 'sent' THEN 'sent' ELSE 'permanent' END);
    END IF;
    RETURN mid;
END
$$;
SELECT pg_temp.msg('hi-sent', 'sent') AS sent \gset
SELECT pg_temp.msg('hi-failed', 'failed') AS failed \gset
SELECT pg_temp.msg('hi-recent', 'sent', '1 minute') AS recent \gset
SELECT pg_temp.msg('hi-pending', 'scheduled', '2 days') AS pending \gset
SELECT reminder.record_event(reminder.link_token(:sent, 'confirm')) AS confirmed \gset

SELECT is(reminder._archive('1 hour', 100), 2::bigint, '_archive() moves the finished messages not changed for the age');
SELECT is((SELECT array_agg(id ORDER BY id) FROM reminder.message_history), ARRAY[:sent, :failed]::bigint[],
          'into history');
SELECT is((SELECT count(*) FROM reminder.message WHERE id IN (:sent, :failed)), 0::bigint, 'out of the outbox');
SELECT is((SELECT count(*) FROM reminder.message WHERE id IN (:recent, :pending)), 2::bigint,
          'a recent one stays, and a pending one, however old');
SELECT ok((SELECT archived_at = now() FROM reminder.messages WHERE id = :sent),
          'reminder.messages shows both, with when it moved');
SELECT is((SELECT status FROM reminder.messages WHERE id = :sent), 'sent', 'as it was');
SELECT is((SELECT count(*) FROM reminder.event WHERE message_id = :sent), 1::bigint, 'its events stay');
SELECT is((SELECT sum(sent) FROM reminder.stats WHERE channel = 'hi_log'), 2::numeric,
          'reminder.stats counts messages sent in history and in the outbox');

-- What reads finished messages finds it in history.
SELECT is(reminder.record_event(reminder.link_token(:sent, 'confirm')), :confirmed::bigint,
          'a link of a moved message still works (the event recorded the first time)');
SELECT ok(reminder.record_event(reminder.link_token(:sent, 'open')) > :confirmed,
          'and records new events');
SELECT is(reminder.schedule('hi_log', '{"email": "ada@example.com"}', 'hi_t', now(), '{}', 'hi-sent'), :sent::bigint,
          'schedule() with the key of a moved message returns it and makes none');

-- A watched row written again makes no second message for a step already
-- sent and moved.
CREATE TABLE hi_visit (id int PRIMARY KEY, starts_at timestamptz, note text);
SELECT reminder.watch('hi_visit', 'before', name => 'hi_visit', column_name => 'starts_at',
    offsets => '{1 day}', channel => 'hi_log', template => 'hi_t',
    recipients => '{"to": {"email": "desk@example.com"}}') AS rule \gset
INSERT INTO hi_visit VALUES (1, now() + interval '3 days', 'first');
UPDATE reminder.message SET status = 'sent', next_attempt_at = NULL, sent_at = now() - interval '2 hours',
       updated_at = now() - interval '2 hours'
 WHERE rule_id = :rule;
SELECT is(reminder._archive('1 hour', 100), 1::bigint, 'the rule''s message moves');
UPDATE hi_visit SET note = 'second' WHERE id = 1;
SELECT is((SELECT count(*) FROM reminder.messages WHERE rule_id = :rule), 1::bigint,
          'writing its row again makes no second message');

-- retry() brings a failed message back from history.
SELECT is(reminder.retry(:failed), true, 'retry() requeues a moved failed message');
SELECT is((SELECT status FROM reminder.message WHERE id = :failed), 'scheduled', 'back in the outbox');
SELECT is((SELECT count(*) FROM reminder.message_history WHERE id = :failed), 0::bigint, 'and out of history');

-- forget() erases history too.
SELECT lives_ok($$SELECT reminder.forget('{"email": "ada@example.com"}')$$, 'forget()');
SELECT is((SELECT recipient FROM reminder.message_history WHERE id = :sent), '{"forgotten": true}'::jsonb,
          'erases the recipient of a moved message');
SELECT pg_temp.msg('hi-bob', 'sent') AS bob \gset
UPDATE reminder.message SET recipient = '{"email": "bob@example.com", "cc": ["ada@example.com"]}' WHERE id = :bob;
SELECT reminder._archive('1 hour', 100);
SELECT reminder.forget('{"email": "ada@example.com"}');
SELECT is((SELECT recipient FROM reminder.message_history WHERE id = :bob), '{"email": "bob@example.com", "cc": []}'::jsonb,
          'and her copy on someone else''s moved message');

-- ---------------------------------------------------------------- retention
-- A partition all older than the cutoff is dropped, with the events of its
-- messages; one that is not, stays.
CREATE TABLE reminder.message_history_old (LIKE reminder.message_history INCLUDING CONSTRAINTS);
ALTER TABLE reminder.message_history ATTACH PARTITION reminder.message_history_old
    FOR VALUES FROM (now() - interval '10 days') TO (now() - interval '9 days');
UPDATE reminder.message_history SET archived_at = now() - interval '9 days 12 hours' WHERE id = :sent;
SELECT bag_eq($$ SELECT object, purged FROM reminder.purge('5 days') $$,
              $$ VALUES ('messages', 1::bigint), ('attempts', 0), ('events', 2), ('log', 0), ('partitions', 1) $$,
              'purge() drops a partition older than the age, and counts its messages and their events');
SELECT is(to_regclass('reminder.message_history_old'), NULL, 'the partition is gone');
SELECT is((SELECT count(*) FROM reminder.message_history), 2::bigint, 'the newer history stays');

SELECT * FROM finish();
ROLLBACK;
