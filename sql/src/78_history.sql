-- ---------------------------------------------------------------------------
-- History: finished messages out of the outbox, attempts, and retention by
-- partition.  See docs/data.md "History and retention".
--
-- The outbox (reminder.message) is the hot table: every claim and outcome
-- updates it, and its due index should hold only what may still be sent.
-- With reminder.history_after set, the worker moves finished messages
-- (sent, failed, cancelled, suppressed) whose last change is that old into
-- reminder.message_history, a batch at a time.  History and the attempts
-- are partitioned by time, one partition per reminder.history_partition (a
-- day by default), made ahead by the worker; retention (reminder.purge, the
-- reminder.retention setting) drops a partition once all of it is older
-- than the cutoff, so ageing out writes no dead rows and needs no VACUUM.
--
-- Partitions made by the worker are not members of the extension: like
-- pg_partman's, they are ordinary tables attached to a parent the extension
-- owns, and pg_dump dumps and re-attaches them with their rows.
-- ---------------------------------------------------------------------------

-- The columns of reminder.message, in its order, and when the row moved.
-- No identity, no defaults: rows come from the outbox as they were.  A
-- column added to reminder.message later is added here too, in the same
-- place, and reminder.messages is made again (_archive() moves m.*).
-- As for attempts (50_message.sql), the parent has no index: each
-- partition has its own (_make_partitions() below).
CREATE TABLE reminder.message_history (
    LIKE reminder.message INCLUDING CONSTRAINTS INCLUDING COMMENTS,
    archived_at  timestamptz NOT NULL
) PARTITION BY RANGE (archived_at);
CREATE TABLE reminder.message_history_default PARTITION OF reminder.message_history (PRIMARY KEY (id)) DEFAULT;
-- A rule's key is remembered in history too: writing a row again after its
-- message moved makes no second message (see rules.c).
CREATE INDEX message_history_default_key_idx ON reminder.message_history_default (idempotency_key);
CREATE INDEX message_history_default_recipient_idx ON reminder.message_history_default (recipient_id)
    WHERE recipient_id IS NOT NULL;
-- what a partition made takes out of the default, and what purge() ages out
CREATE INDEX message_history_default_archived_idx ON reminder.message_history_default (archived_at);
COMMENT ON TABLE reminder.message_history IS 'finished messages moved out of reminder.message after reminder.history_after, partitioned by archived_at; read both through reminder.messages';
COMMENT ON COLUMN reminder.message_history.archived_at IS 'when the worker moved the message here; its partition, and so its retention, follow this time';
COMMENT ON TABLE reminder.message_history_default IS 'history rows whose time no partition covers (normally none: the worker makes partitions ahead)';

CREATE VIEW reminder.messages AS
SELECT m.*, NULL::timestamptz AS archived_at FROM reminder.message m
UNION ALL
SELECT h.* FROM reminder.message_history h;
COMMENT ON VIEW reminder.messages IS 'every message: the outbox and its history (archived_at is NULL for messages still in the outbox)';

GRANT SELECT ON reminder.message_history, reminder.messages TO reminder_user;

-- The name of the partition of parent starting at lo: <parent>_YYYYMMDD_HHMI
-- in UTC, so names sort by time.
CREATE FUNCTION reminder._partition_name(parent regclass, lo timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT relname FROM pg_class WHERE oid = parent)
           || to_char(lo AT TIME ZONE 'UTC', '"_"YYYYMMDD"_"HH24MI')
$$;

-- The partitions of parent other than its default, with their bounds.
CREATE FUNCTION reminder._partitions(parent regclass,
                                     OUT part regclass, OUT lo timestamptz, OUT hi timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::regclass,
           (regexp_match(b.bound, 'FROM \(''([^'']*)''\)'))[1]::timestamptz,
           (regexp_match(b.bound, 'TO \(''([^'']*)''\)'))[1]::timestamptz
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
     WHERE i.inhparent = parent AND b.bound <> 'DEFAULT'
     ORDER BY 2
$$;

-- Make the partitions of attempt and message_history that cover now and
-- the next width, each width long and aligned to it (from the Unix epoch),
-- with the indexes of their default partition, once the table has had a
-- row of this width's time.  A partition starts where
-- the last one ends, so changing the width never makes two overlap.  Rows
-- that went to the default partition meanwhile are moved into the new one
-- before it is attached (ATTACH would refuse them); attaching takes a
-- lighter lock on the parent than CREATE ... PARTITION OF.  Returns the
-- partitions made.
CREATE FUNCTION reminder._make_partitions(width interval)
RETURNS SETOF regclass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parent  regclass;
    col     text;
    secs    double precision := extract(epoch FROM width);
    lo      timestamptz;
    hi      timestamptz;
    last_hi timestamptz;
    name    text;
    newest  timestamptz;
BEGIN
    IF width IS NULL OR secs < 60 THEN
        RAISE EXCEPTION 'partition width must be at least a minute'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('It is %s.', width);
    END IF;
    FOR parent, col IN VALUES ('reminder.attempt'::regclass, 'started_at'),
                              ('reminder.message_history'::regclass, 'archived_at') LOOP
        SELECT max(p.hi) INTO last_hi FROM reminder._partitions(parent) p;
        lo := to_timestamp(floor(extract(epoch FROM now()) / secs) * secs);
        IF last_hi > lo THEN
            lo := last_hi;
        END IF;
        -- The first partition waits for the first row, and covers the
        -- newest row the default partition holds: a database being
        -- restored gets the partitions of its dump, and no others.
        IF last_hi IS NULL THEN
            EXECUTE format('SELECT max(%I) FROM %s_default', col, parent) INTO newest;
            CONTINUE WHEN newest IS NULL;
            IF newest < lo THEN
                lo := to_timestamp(floor(extract(epoch FROM newest) / secs) * secs);
            END IF;
        END IF;
        WHILE lo < now() + width LOOP
            hi := to_timestamp((floor(extract(epoch FROM lo) / secs) + 1) * secs);
            name := reminder._partition_name(parent, lo);
            EXECUTE format('CREATE TABLE reminder.%I (LIKE %s INCLUDING CONSTRAINTS)', name, parent);
            EXECUTE format('WITH moved AS (DELETE FROM %s_default WHERE %I >= $1 AND %I < $2 RETURNING *) '
                           'INSERT INTO reminder.%I SELECT * FROM moved',
                           parent, col, col, name) USING lo, hi;
            EXECUTE format('ALTER TABLE reminder.%I ADD PRIMARY KEY (id)', name);
            IF parent = 'reminder.attempt'::regclass THEN
                EXECUTE format('CREATE INDEX %I ON reminder.%I (message_id)', name || '_message_idx', name);
            ELSE
                EXECUTE format('CREATE INDEX %I ON reminder.%I (idempotency_key)', name || '_key_idx', name);
                EXECUTE format('CREATE INDEX %I ON reminder.%I (recipient_id) WHERE recipient_id IS NOT NULL',
                               name || '_recipient_idx', name);
            END IF;
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION reminder.%I FOR VALUES FROM (%L) TO (%L)',
                           parent, name, lo, hi);
            RETURN NEXT format('reminder.%I', name)::regclass;
            lo := hi;
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION reminder._make_partitions(interval) IS
'internal: makes the partitions of reminder.attempt and reminder.message_history covering now and the next width (the worker calls it with reminder.history_partition)';

-- Move up to batch finished messages whose last change is older than after
-- from the outbox into history; returns how many moved.  Messages someone
-- holds locked (a link being used, a retry) wait for the next batch.
CREATE FUNCTION reminder._archive(after interval, batch integer)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    WITH picked AS (
        SELECT m.id FROM reminder.message m
         WHERE m.next_attempt_at IS NULL
           AND greatest(m.updated_at, m.sent_at) < now() - after
         LIMIT batch
           FOR UPDATE SKIP LOCKED
    ), moved AS (
        DELETE FROM reminder.message m USING picked p WHERE m.id = p.id
        RETURNING m.*
    )
    INSERT INTO reminder.message_history SELECT moved.*, now() FROM moved;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION reminder._archive(interval, integer) IS
'internal: moves up to batch finished messages not changed for after into reminder.message_history (the worker calls it for reminder.history_after)';

REVOKE ALL ON FUNCTION reminder._make_partitions(interval), reminder._archive(interval, integer) FROM PUBLIC;
