-- reminder 0.1.0 -> 0.2.0
--
-- Every change to sql/src/ since 0.1.0, in the order it landed.  A test
-- (test/t/095_upgrade.pl) installs 0.1.0 with its own library, fills it,
-- updates and compares the result with a fresh 0.2.0 install: tables,
-- columns, indexes, constraints, functions, privileges and comments.

\echo Use "ALTER EXTENSION reminder UPDATE TO '0.2.0'" to load this file. \quit

-- forget() keeps opt-outs under the text form of the address hash.
CREATE FUNCTION reminder._address_key(kind text, address text)
RETURNS text
AS 'MODULE_PATHNAME', 'reminder_address_key'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION reminder._address_key(text, text) IS
'internal: the same hash as sha256:<hex>, how reminder.consent keeps an opt-out after reminder.forget() and the consent check looks for it';
REVOKE EXECUTE ON FUNCTION reminder._address_key(text, text) FROM PUBLIC;

-- forget(): opt-outs kept by reminder._address_key(); it erases messages
-- moved to history too (reminder.message_history, made below).
CREATE OR REPLACE FUNCTION reminder.forget(recipient jsonb, keep_opt_outs boolean DEFAULT true)
RETURNS TABLE (object text, erased bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    subj         record;
    rids         bigint[];
    emails       text[];
    phones       text[];
    more_ids     bigint[];
    more_emails  text[];
    more_phones  text[];
    mids         bigint[];
    hids         bigint[];
    k            bigint;
    n_recipients bigint;
    n_messages   bigint;
    n_cancelled  bigint;
    n_attempts   bigint;
    n_events     bigint;
    n_log        bigint;
    n_copies     bigint;
    n_log_copies bigint;
    n_consent    bigint;
    n_consent_log bigint;
    n_survey_log bigint;
    n_kept       bigint := 0;
BEGIN
    IF forget.recipient IS NULL THEN
        RAISE EXCEPTION 'recipient must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass {"external_id": "client-42"}, {"email": "ada@example.com"} or {"phone": "+48601234567"}.';
    END IF;

    -- Who: the stored recipient or raw addresses given, every stored
    -- recipient sharing one of those addresses, and their addresses.
    SELECT * INTO subj FROM reminder._recipient_subject(forget.recipient);
    rids := CASE WHEN subj.recipient_id IS NULL THEN '{}'::bigint[] ELSE ARRAY[subj.recipient_id] END;
    emails := subj.emails;
    phones := subj.phones;
    FOR i IN 1..2 LOOP
        SELECT coalesce(array_agg(r.id), '{}'),
               coalesce(array_agg(lower(r.email)) FILTER (WHERE r.email IS NOT NULL), '{}'),
               coalesce(array_agg(r.phone) FILTER (WHERE r.phone IS NOT NULL), '{}')
          INTO more_ids, more_emails, more_phones
          FROM reminder.recipient r
         WHERE r.id = ANY (rids) OR lower(r.email) = ANY (emails) OR r.phone = ANY (phones);
        rids := ARRAY(SELECT DISTINCT unnest(rids || more_ids));
        emails := ARRAY(SELECT DISTINCT unnest(emails || more_emails));
        phones := ARRAY(SELECT DISTINCT unnest(phones || more_phones));
    END LOOP;

    -- Their messages: by stored recipient or by address.
    mids := ARRAY(SELECT m.id FROM reminder.message m
                   WHERE m.recipient_id = ANY (rids)
                      OR lower(m.recipient ->> 'email') = ANY (emails)
                      OR m.recipient ->> 'phone' = ANY (phones)
                   ORDER BY m.id
                   FOR UPDATE);

    -- Personal data goes; ids, channel, template, states, times and
    -- counts stay, so statistics still add up.
    UPDATE reminder.message
       SET recipient = '{"forgotten": true}', data = '{}', recipient_id = NULL,
           last_error = NULL, provider_message_id = NULL, source_key = NULL,
           idempotency_key = 'forgotten:' || id
     WHERE id = ANY (mids);
    GET DIAGNOSTICS n_messages = ROW_COUNT;

    -- And in history (finished, so nothing to cancel there).
    hids := ARRAY(SELECT h.id FROM reminder.message_history h
                   WHERE h.recipient_id = ANY (rids)
                      OR lower(h.recipient ->> 'email') = ANY (emails)
                      OR h.recipient ->> 'phone' = ANY (phones));
    UPDATE reminder.message_history
       SET recipient = '{"forgotten": true}', data = '{}', recipient_id = NULL,
           last_error = NULL, provider_message_id = NULL, source_key = NULL,
           idempotency_key = 'forgotten:' || id
     WHERE id = ANY (hids);
    GET DIAGNOSTICS k = ROW_COUNT;
    n_messages := n_messages + k;
    mids := mids || hids;

    -- Nothing can be delivered to no one.
    UPDATE reminder.message
       SET status = 'cancelled', next_attempt_at = NULL, last_error = 'recipient forgotten', updated_at = now()
     WHERE id = ANY (mids) AND status IN ('scheduled', 'retrying');
    GET DIAGNOSTICS n_cancelled = ROW_COUNT;

    UPDATE reminder.attempt SET error = NULL, response = NULL, smtp_reply = NULL
     WHERE message_id = ANY (mids);
    GET DIAGNOSTICS n_attempts = ROW_COUNT;

    UPDATE reminder.event SET comment = NULL, detail = '{}'
     WHERE message_id = ANY (mids);
    GET DIAGNOSTICS n_events = ROW_COUNT;

    UPDATE reminder.log SET recipient = '{"forgotten": true}', subject = NULL, body = '', html = NULL
     WHERE message_id = ANY (mids);
    GET DIAGNOSTICS n_log = ROW_COUNT;

    -- Copies to them on other people's messages.
    UPDATE reminder.message m SET recipient = reminder._strip_copies(m.recipient, emails)
     WHERE m.recipient ?| ARRAY['cc', 'bcc'] AND NOT (m.id = ANY (mids))
       AND m.recipient IS DISTINCT FROM reminder._strip_copies(m.recipient, emails);
    GET DIAGNOSTICS n_copies = ROW_COUNT;
    UPDATE reminder.message_history h SET recipient = reminder._strip_copies(h.recipient, emails)
     WHERE h.recipient ?| ARRAY['cc', 'bcc'] AND NOT (h.id = ANY (mids))
       AND h.recipient IS DISTINCT FROM reminder._strip_copies(h.recipient, emails);
    GET DIAGNOSTICS k = ROW_COUNT;
    n_copies := n_copies + k;
    UPDATE reminder.log l SET recipient = reminder._strip_copies(l.recipient, emails)
     WHERE l.recipient ?| ARRAY['cc', 'bcc'] AND NOT (l.message_id = ANY (mids))
       AND l.recipient IS DISTINCT FROM reminder._strip_copies(l.recipient, emails);
    GET DIAGNOSTICS n_log_copies = ROW_COUNT;

    -- Consent: an objection outlives the erasure (GDPR article 21).  Their
    -- opt-outs stay, about a hash of each address they covered instead of
    -- the address or the stored recipient, so that the address, imported
    -- again, is still not messaged; the worker's consent check looks for
    -- both.  Then the statements go, and the log keeps what was done and
    -- when, without whom.
    IF keep_opt_outs THEN
        INSERT INTO reminder.consent AS c (address, channel, category, opted_out, source, changed_at)
        SELECT hashed, s.channel, s.category, true, 'kept at erasure', max(s.changed_at)
          FROM reminder.consent s
         CROSS JOIN LATERAL (
               SELECT reminder._address_key('email', e)
                 FROM unnest(emails) e WHERE s.recipient_id IS NOT NULL OR s.address = e
               UNION ALL
               SELECT reminder._address_key('phone', p)
                 FROM unnest(phones) p WHERE s.recipient_id IS NOT NULL OR s.address = p) a(hashed)
         WHERE s.opted_out AND (s.recipient_id = ANY (rids) OR s.address = ANY (emails || phones))
         GROUP BY hashed, s.channel, s.category
        ON CONFLICT ON CONSTRAINT consent_scope_key DO UPDATE
           SET opted_out = true, source = excluded.source,
               changed_at = greatest(c.changed_at, excluded.changed_at);
        GET DIAGNOSTICS n_kept = ROW_COUNT;
    END IF;
    DELETE FROM reminder.consent
     WHERE recipient_id = ANY (rids) OR address = ANY (emails || phones);
    GET DIAGNOSTICS n_consent = ROW_COUNT;
    UPDATE reminder.consent_log SET recipient_id = NULL, address = NULL
     WHERE recipient_id = ANY (rids) OR address = ANY (emails || phones);
    GET DIAGNOSTICS n_consent_log = ROW_COUNT;

    -- The survey throttle's record of them: their hashed addresses are
    -- still about them (pseudonymous, not anonymous).
    DELETE FROM reminder.survey_log
     WHERE message_id = ANY (mids)
        OR address_hash = ANY (ARRAY(SELECT reminder._address_hash('email', e) FROM unnest(emails) e
                                     UNION ALL
                                     SELECT reminder._address_hash('phone', p) FROM unnest(phones) p));
    GET DIAGNOSTICS n_survey_log = ROW_COUNT;

    DELETE FROM reminder.recipient WHERE id = ANY (rids);
    GET DIAGNOSTICS n_recipients = ROW_COUNT;

    RETURN QUERY VALUES
        ('recipients', n_recipients),
        ('messages', n_messages),
        ('cancelled', n_cancelled),
        ('attempts', n_attempts),
        ('events', n_events),
        ('log', n_log),
        ('copies', n_copies + n_log_copies),
        ('consent', n_consent),
        ('consent_log', n_consent_log),
        ('survey_log', n_survey_log),
        ('opt_outs_kept', n_kept);
END
$$;

-- The outbox's hot path (docs/worker.md): a finished message leaves the due
-- index (next_attempt_at NULL), the index is one range per channel and
-- priority, and the claim changes no indexed column, so that it can be a
-- HOT update (room left on each page).  Messages have a priority.
ALTER TABLE reminder.message ALTER COLUMN next_attempt_at DROP NOT NULL;
UPDATE reminder.message SET next_attempt_at = NULL, lease_until = NULL
 WHERE status IN ('sent', 'failed', 'cancelled', 'suppressed');
ALTER TABLE reminder.message
    ADD COLUMN priority smallint NOT NULL DEFAULT 0
        CONSTRAINT message_priority_known CHECK (priority BETWEEN -1 AND 1),
    ADD CONSTRAINT message_next_attempt_while_pending
        CHECK ((next_attempt_at IS NULL) = (status IN ('sent', 'failed', 'cancelled', 'suppressed'))),
    SET (fillfactor = 75);
COMMENT ON COLUMN reminder.message.next_attempt_at IS 'when the worker may next try: due_at, or later after a transient failure or deferral; NULL once the message is finished (sent, failed, cancelled, suppressed)';
COMMENT ON COLUMN reminder.message.priority IS '1 high, 0 normal, -1 low: a due message of a higher priority is claimed and started first';
DROP INDEX reminder.message_due_idx;
DROP INDEX reminder.message_lease_idx;
CREATE INDEX message_due_idx ON reminder.message (channel, priority, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;

-- schedule() and send() take a priority.
DROP FUNCTION reminder.send(text, jsonb, text, jsonb, text, text);
DROP FUNCTION reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text);
CREATE FUNCTION reminder.schedule(channel text, recipient jsonb, template text,
                                  due_at timestamptz DEFAULT now(),
                                  data jsonb DEFAULT '{}',
                                  idempotency_key text DEFAULT NULL,
                                  fallback text DEFAULT NULL,
                                  priority text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_schedule'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text, text) IS
'schedules one message and returns its id; an existing idempotency_key returns that message''s id and creates nothing; fallback names the channel that takes over if it fails for good (default: the channel''s own "fallback" setting); priority is high, normal or low (default: the channel''s "priority", else normal)';
CREATE FUNCTION reminder.send(channel text, recipient jsonb, template text,
                              data jsonb DEFAULT '{}',
                              idempotency_key text DEFAULT NULL,
                              fallback text DEFAULT NULL,
                              priority text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql SECURITY INVOKER
RETURN reminder.schedule(channel, recipient, template, now(), data, idempotency_key, fallback, priority);
COMMENT ON FUNCTION reminder.send(text, jsonb, text, jsonb, text, text, text) IS
'schedules one message for now; the worker sends it as soon as the transaction commits';
REVOKE EXECUTE ON FUNCTION reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text, text),
                           reminder.send(text, jsonb, text, jsonb, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text, text),
                          reminder.send(text, jsonb, text, jsonb, text, text, text)
    TO reminder_user;
-- create_channel() keeps stored secrets with '{}' only while the channel
-- connects where it did (same origins, no new recipient hosts, TLS as
-- strict): re-pointing a channel needs its secrets again.
COMMENT ON FUNCTION reminder.create_channel(text, text, jsonb, jsonb) IS
'creates or replaces a channel; settings are validated for the kind; non-empty secrets replace the stored ones, ''{}'' keeps them while the channel connects where it did';
-- Consent categories of rules: every message a rule makes carries the
-- rule's category (watch(..., category), default the rule's name), so an
-- unsubscribe link from one step of a follow_up sequence stops the other
-- steps, whatever their templates.  message.category also shows the
-- data's "category" of messages made by schedule().
ALTER TABLE reminder.rule ADD COLUMN category text;
UPDATE reminder.rule SET category = name;
ALTER TABLE reminder.rule ALTER COLUMN category SET NOT NULL,
    ADD CONSTRAINT rule_category_format CHECK (category ~ '^[A-Za-z][A-Za-z0-9_.-]{0,62}$');
COMMENT ON COLUMN reminder.rule.category IS 'the consent category of every message the rule makes (default: the rule''s name), so that an opt-out or unsubscribe link from one of them stops them all';

ALTER TABLE reminder.message ADD COLUMN category text;
COMMENT ON COLUMN reminder.message.category IS 'what an opt-out or unsubscribe link of the message covers: its rule''s category for rule-made messages, the data''s "category" for schedule(); NULL: data->>''category'', else the template name';
COMMENT ON COLUMN reminder.consent.category IS 'the message category the statement covers (message.category: a rule''s category, or data->>''category''; else the template name); NULL covers every category';

-- Messages of 0.1.0: a rule's carry its category (those of a rule since
-- removed keep their template's), scheduled ones their data's "category",
-- fallbacks the category of the message they replace.
UPDATE reminder.message m SET category = r.category
  FROM reminder.rule r WHERE r.id = m.rule_id;
UPDATE reminder.message SET category = data ->> 'category'
 WHERE category IS NULL AND jsonb_typeof(data -> 'category') = 'string' AND data ->> 'category' <> '';
UPDATE reminder.message f SET category = o.category
  FROM reminder.message o
 WHERE f.fallback_of = o.id AND f.category IS NULL AND o.category IS NOT NULL;

-- Statements of 0.1.0 about a template that rules used were made from
-- those rules' messages (an unsubscribe link named the template): they now
-- cover the rules' categories too, so nobody who unsubscribed from step 1
-- gets step 2, and no opt-out stops covering what it covered.  The most
-- recent statement per subject and rule wins, as at send time; each
-- carried statement is logged.
WITH carried AS (
    SELECT DISTINCT ON (s.recipient_id, s.address, s.channel, r.category)
           s.recipient_id, s.address, s.channel, r.category, s.opted_out, s.source, s.changed_at
      FROM reminder.consent s
      JOIN (SELECT DISTINCT rule_id, template FROM reminder.message WHERE rule_id IS NOT NULL) m
        ON m.template = s.category
      JOIN reminder.rule r ON r.id = m.rule_id
     WHERE r.category <> s.category
     ORDER BY s.recipient_id, s.address, s.channel, r.category, s.changed_at DESC, s.id DESC
), stored AS (
    INSERT INTO reminder.consent AS c (recipient_id, address, channel, category, opted_out, source, changed_at)
    SELECT recipient_id, address, channel, category, opted_out, source, changed_at FROM carried
    ON CONFLICT ON CONSTRAINT consent_scope_key DO UPDATE
       SET opted_out = excluded.opted_out, source = excluded.source, changed_at = excluded.changed_at
     WHERE c.changed_at < excluded.changed_at
    RETURNING c.recipient_id, c.address, c.channel, c.category, c.opted_out
)
INSERT INTO reminder.consent_log (recipient_id, address, channel, category, action, source)
SELECT recipient_id, address, channel, category, CASE WHEN opted_out THEN 'opt_out' ELSE 'opt_in' END,
       'update to 0.2.0: a rule''s category'
  FROM stored;

-- A rule gives its messages a priority (watch(..., priority)).
ALTER TABLE reminder.rule ADD COLUMN priority smallint NOT NULL DEFAULT 0
    CONSTRAINT rule_priority_known CHECK (priority BETWEEN -1 AND 1);
COMMENT ON COLUMN reminder.rule.priority IS 'the priority of every message the rule makes: 1 high, 0 normal, -1 low (watch(..., priority))';

DROP FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean);
CREATE FUNCTION reminder.watch(table_name regclass,
                               kind text,
                               name text DEFAULT NULL,
                               column_name text DEFAULT NULL,
                               offsets interval[] DEFAULT NULL,
                               channel text DEFAULT NULL,
                               template text DEFAULT NULL,
                               recipients jsonb DEFAULT NULL,
                               condition text DEFAULT NULL,
                               changes_to text[] DEFAULT NULL,
                               templates jsonb DEFAULT NULL,
                               stop_condition text DEFAULT NULL,
                               business_days boolean DEFAULT false,
                               calendar text DEFAULT 'default',
                               throttle interval DEFAULT NULL,
                               if_past text DEFAULT 'skip',
                               time_zone text DEFAULT NULL,
                               key_columns text[] DEFAULT NULL,
                               backfill boolean DEFAULT false,
                               category text DEFAULT NULL,
                               priority text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_watch'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean, text, text) IS
'creates a rule on a table the caller owns and the triggers that apply it; returns the rule id (see docs/rules.md)';
REVOKE EXECUTE ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean, text, text)
    TO reminder_admin;

-- Dead letters: reminder.retry() requeues failed messages with a fresh set
-- of attempts, keeping their attempt rows; message.retries counts requeues.
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

REVOKE EXECUTE ON FUNCTION reminder.retry(bigint), reminder.retry(text, timestamptz, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reminder.retry(bigint) TO reminder_user;
GRANT EXECUTE ON FUNCTION reminder.retry(text, timestamptz, timestamptz, text) TO reminder_admin;

-- Cumulative delivery counters per database that outlive a worker's
-- restart, and their reset.
CREATE FUNCTION reminder.delivery_counters(
    OUT database name,
    OUT sent bigint,
    OUT failed bigint,
    OUT retried bigint,
    OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'reminder_delivery_counters'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reminder.delivery_counters() IS
'cumulative counts per database of messages the workers recorded as sent, failed and to be retried, since stats_reset: they outlive worker restarts and clean server restarts';

CREATE FUNCTION reminder.stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_stats_reset'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reminder.stats_reset() IS
'resets the current database''s delivery_counters() to zero and sets their stats_reset to now';

GRANT EXECUTE ON FUNCTION reminder.delivery_counters() TO reminder_user;
GRANT EXECUTE ON FUNCTION reminder.stats_reset() TO reminder_admin;
REVOKE EXECUTE ON FUNCTION reminder.delivery_counters(), reminder.stats_reset() FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Digests (0.2.0): several would-be messages to one recipient, collected under a
-- digest key for a window (from the first item) or until a time of day in
-- the recipient's zone, and sent as one message whose template sees the
-- list ({{#items}}...{{/items}}, {{count}}).  See docs/digests.md.
--
-- A digest is a row here plus the message that sends it, scheduled (through
-- reminder.schedule(), key "digest:<id>") when its first item arrives and
-- due when the digest closes.  Items are rows of reminder.digest_item: from
-- reminder.add_to_digest(), or a rule's message whose recipient has a
-- "digest" (the worker collects it when it falls due, instead of sending
-- it).  When the digest message goes out the worker closes the digest and
-- checks every item again (row gone, stop condition, consent); items that
-- fail are left out, and a digest left with none is suppressed.
--
-- message_id has no foreign key to reminder.message (see 50_message.sql);
-- recipient_key is a SHA-256 of the address, not the address.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.digest (
    id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    digest_key     text NOT NULL
                   CONSTRAINT digest_key_format CHECK (digest_key ~ '^[A-Za-z][A-Za-z0-9_.-]{0,62}$'),
    channel        text NOT NULL,
    template       text NOT NULL,
    recipient_key  text NOT NULL,
    message_id     bigint,
    opened_at      timestamptz NOT NULL DEFAULT now(),
    send_at        timestamptz NOT NULL,
    max_items      integer NOT NULL
                   CONSTRAINT digest_max_items_range CHECK (max_items BETWEEN 1 AND 1000),
    items          integer NOT NULL DEFAULT 0,
    closed_at      timestamptz
);
-- one open digest per key, channel and recipient: where the next item goes
CREATE UNIQUE INDEX digest_open_idx ON reminder.digest (digest_key, channel, recipient_key)
    WHERE closed_at IS NULL;
COMMENT ON TABLE reminder.digest IS 'digests: items collected for one recipient under a key, sent as one message; write through reminder.add_to_digest() or a rule recipient''s "digest"';
COMMENT ON COLUMN reminder.digest.recipient_key IS 'who it goes to: a SHA-256 of the address (email, phone or url) the channel delivers to';
COMMENT ON COLUMN reminder.digest.message_id IS 'the message that sends the digest (idempotency key digest:<id>); no foreign key';
COMMENT ON COLUMN reminder.digest.send_at IS 'when the digest closes and its message is due: opened_at + window, or the next "at" time in the recipient''s zone; now, once max_items items are in';
COMMENT ON COLUMN reminder.digest.items IS 'items collected so far';
COMMENT ON COLUMN reminder.digest.closed_at IS 'when it stopped taking items (its message went out, or it was full); the next item opens a new digest';

CREATE TABLE reminder.digest_item (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest_id   bigint NOT NULL REFERENCES reminder.digest ON DELETE CASCADE,
    data        jsonb NOT NULL DEFAULT '{}',
    category    text,
    rule_id     bigint,
    source_key  text,
    message_id  bigint,
    added_at    timestamptz NOT NULL DEFAULT now(),
    dropped     text
);
CREATE INDEX digest_item_digest_idx ON reminder.digest_item (digest_id);
COMMENT ON TABLE reminder.digest_item IS 'the items of digests, in the order they came';
COMMENT ON COLUMN reminder.digest_item.data IS 'what the digest template sees as the item; items of rules that follow their row store none: the row is read when the digest goes out';
COMMENT ON COLUMN reminder.digest_item.category IS 'consent category checked for the item when the digest goes out (NULL: the digest''s own, its key)';
COMMENT ON COLUMN reminder.digest_item.message_id IS 'rule items: the rule''s message that was collected (then suppressed with "digest: collected into message <n>")';
COMMENT ON COLUMN reminder.digest_item.dropped IS 'why the item was left out when the digest last went out (row gone, stop condition, opted out); NULL: listed';

GRANT SELECT ON reminder.digest, reminder.digest_item TO reminder_user;

-- The digest settings, checked and with their defaults: what watch()
-- stores for a recipient, and what each add_to_digest() call uses.
CREATE FUNCTION reminder._digest_spec(spec jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k       text;
    w       interval;
    zone    text;
    maxi    numeric;
    d       jsonb;
    out     jsonb;
BEGIN
    IF spec IS NULL OR jsonb_typeof(spec) <> 'object' THEN
        RAISE EXCEPTION 'digest must be a JSON object'
            USING ERRCODE = '22023',
                  HINT = 'Write {"key": "daily_tasks", "at": "08:00"} or {"key": "updates", "window": "1 hour"}.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(spec) LOOP
        IF k NOT IN ('key', 'window', 'at', 'days', 'time_zone', 'max_items', 'overflow') THEN
            RAISE EXCEPTION 'unknown key "%" in digest', k
                USING ERRCODE = '22023',
                      HINT = 'A digest may have key, window or at, days, time_zone, max_items and overflow.';
        END IF;
    END LOOP;

    IF jsonb_typeof(spec -> 'key') IS DISTINCT FROM 'string'
       OR spec ->> 'key' !~ '^[A-Za-z][A-Za-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION 'digest "key" must be a name such as "daily_tasks"'
            USING ERRCODE = '22023',
                  DETAIL = 'A letter, then up to 62 letters, digits, "_", "." or "-".',
                  HINT = 'Items with the same key, channel and recipient go into the same digest.';
    END IF;
    out := jsonb_build_object('key', spec ->> 'key');

    IF (spec ? 'window') = (spec ? 'at') THEN
        RAISE EXCEPTION 'digest needs either "window" or "at"'
            USING ERRCODE = '22023',
                  HINT = 'Give "window": "1 hour" to send an hour after the first item, or "at": "08:00" to send at 8:00 in the recipient''s time zone.';
    END IF;

    IF spec ? 'window' THEN
        BEGIN
            w := (spec ->> 'window')::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            w := NULL;
        END;
        IF jsonb_typeof(spec -> 'window') IS DISTINCT FROM 'string' OR w IS NULL THEN
            RAISE EXCEPTION 'invalid digest "window": %', spec -> 'window'
                USING ERRCODE = '22023',
                      HINT = 'Write an interval such as "30 minutes", "1 hour" or "1 day".';
        END IF;
        IF w < interval '1 minute' OR w > interval '31 days' THEN
            RAISE EXCEPTION 'digest "window" must be between 1 minute and 31 days, not %', spec ->> 'window'
                USING ERRCODE = '22023',
                      HINT = 'For a digest at a time of day, use "at": "08:00" instead.';
        END IF;
        out := out || jsonb_build_object('window', spec ->> 'window');
    ELSE
        IF jsonb_typeof(spec -> 'at') IS DISTINCT FROM 'string'
           OR spec ->> 'at' !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
            RAISE EXCEPTION 'invalid digest "at": %', spec -> 'at'
                USING ERRCODE = '22023',
                      HINT = 'Write a time of day as "HH:MM", such as "08:00" or "17:30"; it is read in the recipient''s time zone.';
        END IF;
        out := out || jsonb_build_object('at', spec ->> 'at');
        IF spec ? 'days' THEN
            d := spec -> 'days';
            IF jsonb_typeof(d) IS DISTINCT FROM 'array' OR jsonb_array_length(d) = 0
               OR EXISTS (SELECT FROM jsonb_array_elements(d) e
                          WHERE jsonb_typeof(e) <> 'number' OR e::text !~ '^[1-7]$') THEN
                RAISE EXCEPTION 'invalid digest "days": %', d
                    USING ERRCODE = '22023',
                          HINT = 'List ISO days of the week: 1 = Monday ... 7 = Sunday, such as [1, 2, 3, 4, 5].';
            END IF;
            out := out || jsonb_build_object('days',
                (SELECT jsonb_agg(DISTINCT e::int ORDER BY e::int) FROM jsonb_array_elements_text(d) e));
        END IF;
    END IF;
    IF spec ? 'days' AND NOT spec ? 'at' THEN
        RAISE EXCEPTION 'digest "days" needs "at"'
            USING ERRCODE = '22023',
                  HINT = 'Days of the week say on which days the digest goes out at its "at" time.';
    END IF;

    IF spec ? 'time_zone' THEN
        zone := spec ->> 'time_zone';
        IF jsonb_typeof(spec -> 'time_zone') IS DISTINCT FROM 'string'
           OR NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = zone) THEN
            RAISE EXCEPTION 'invalid digest "time_zone": %', spec -> 'time_zone'
                USING ERRCODE = '22023',
                      HINT = 'Use a name from pg_timezone_names, such as "Europe/Warsaw".';
        END IF;
        out := out || jsonb_build_object('time_zone', zone);
    END IF;

    IF spec ? 'max_items' THEN
        IF jsonb_typeof(spec -> 'max_items') IS DISTINCT FROM 'number' THEN
            maxi := NULL;
        ELSE
            maxi := (spec ->> 'max_items')::numeric;
        END IF;
        IF maxi IS NULL OR maxi <> trunc(maxi) OR maxi < 1 OR maxi > 1000 THEN
            RAISE EXCEPTION 'digest "max_items" must be a whole number from 1 to 1000, not %', spec -> 'max_items'
                USING ERRCODE = '22023',
                      HINT = 'It bounds how many items one digest message lists (default 100).';
        END IF;
    END IF;
    out := out || jsonb_build_object('max_items', coalesce(maxi::int, 100));

    IF spec ? 'overflow' AND (spec -> 'overflow') NOT IN ('"send"', '"error"') THEN
        RAISE EXCEPTION 'invalid digest "overflow": %', spec -> 'overflow'
            USING ERRCODE = '22023',
                  HINT = '"send" (the default) sends a full digest at once and starts a new one; "error" refuses the item.';
    END IF;
    RETURN out || jsonb_build_object('overflow', coalesce(spec ->> 'overflow', 'send'));
END
$$;
COMMENT ON FUNCTION reminder._digest_spec(jsonb) IS
'internal: checks digest settings (key, window or at, days, time_zone, max_items, overflow) and returns them with their defaults; 22023 with a hint for anything wrong';

-- When a digest opened at t closes: t + window, or the first "at" time of
-- an allowed day after t, in zone.
CREATE FUNCTION reminder._digest_send_at(spec jsonb, zone text, t timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    day   date;
    at    timestamptz;
BEGIN
    IF spec ? 'window' THEN
        RETURN t + (spec ->> 'window')::interval;
    END IF;
    FOR i IN 0..8 LOOP
        day := (t AT TIME ZONE zone)::date + i;
        at := (day + (spec ->> 'at')::time) AT TIME ZONE zone;
        IF at > t AND (NOT spec ? 'days'
                       OR (spec -> 'days') @> to_jsonb(extract(isodow FROM day)::int)) THEN
            RETURN at;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'no digest time after %', t;   -- cannot happen: days is not empty
END
$$;
COMMENT ON FUNCTION reminder._digest_send_at(jsonb, text, timestamptz) IS
'internal: when a digest opened at t goes out: t + window, or the next "at" time on one of its days, in zone';

-- Put one item into the open digest of (key, channel, recipient), opening
-- one (and scheduling its message) if there is none.  Called by
-- reminder.add_to_digest() and by the worker, with the recipient resolved
-- and checked for the channel.  Returns the digest's message id.
CREATE FUNCTION reminder._digest_collect(spec jsonb, channel text, recipient jsonb, template text,
                                         data jsonb, category text, rule_id bigint,
                                         source_key text, message_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s     jsonb := reminder._digest_spec(spec);
    who   text;
    zone  text;
    d     reminder.digest;
BEGIN
    -- the address the channel delivers to; a channel without one (log,
    -- slack, a webhook's own url) tells recipients apart by all they are
    who := 'sha256:' || encode(sha256(convert_to(coalesce(
               lower(CASE (SELECT c.kind FROM reminder.channel c WHERE c.name = _digest_collect.channel)
                         WHEN 'email' THEN recipient ->> 'email'
                         WHEN 'sms' THEN recipient ->> 'phone'
                         ELSE recipient ->> 'url' END),
               recipient::text), 'UTF8')), 'hex');
    zone := coalesce(nullif(recipient ->> 'time_zone', ''), s ->> 'time_zone', current_setting('TimeZone'));

    LOOP
        SELECT * INTO d FROM reminder.digest g
         WHERE g.digest_key = s ->> 'key' AND g.channel = _digest_collect.channel
           AND g.recipient_key = who AND g.closed_at IS NULL
           FOR UPDATE;
        IF FOUND THEN
            -- its message must still be waiting: a digest whose message was
            -- cancelled or deleted (drop_channel) takes no more items
            EXIT WHEN EXISTS (SELECT FROM reminder.message m
                               WHERE m.id = d.message_id AND m.status = 'scheduled');
            UPDATE reminder.digest g SET closed_at = now() WHERE g.id = d.id;
            CONTINUE;
        END IF;
        INSERT INTO reminder.digest AS g (digest_key, channel, template, recipient_key, send_at, max_items)
        VALUES (s ->> 'key', _digest_collect.channel, template, who,
                reminder._digest_send_at(s, zone, now()), (s ->> 'max_items')::int)
        ON CONFLICT (digest_key, channel, recipient_key) WHERE closed_at IS NULL DO NOTHING
        RETURNING * INTO d;
        IF FOUND THEN
            d.message_id := reminder.schedule(_digest_collect.channel, recipient, template, d.send_at,
                                              jsonb_build_object('category', s ->> 'key',
                                                                 'digest', jsonb_build_object('id', d.id, 'key', s ->> 'key')),
                                              'digest:' || d.id);
            UPDATE reminder.digest g SET message_id = d.message_id WHERE g.id = d.id;
            EXIT;
        END IF;
    END LOOP;

    IF d.items >= d.max_items THEN
        RAISE EXCEPTION 'digest "%" is full', s ->> 'key'
            USING ERRCODE = '54000',
                  DETAIL = format('It already holds %s items, its max_items, until it goes out.', d.items),
                  HINT = 'Raise "max_items", shorten the window, or use "overflow": "send" to send a full digest at once and start a new one.';
    END IF;

    INSERT INTO reminder.digest_item (digest_id, data, category, rule_id, source_key, message_id)
    VALUES (d.id, coalesce(data, '{}'), category, rule_id, source_key, message_id);
    UPDATE reminder.digest g SET items = g.items + 1 WHERE g.id = d.id;

    IF d.items + 1 >= d.max_items AND s ->> 'overflow' = 'send' THEN
        -- full: it goes out now, and the next item starts a new one
        UPDATE reminder.digest g SET closed_at = now(), send_at = least(g.send_at, now()) WHERE g.id = d.id;
        IF d.send_at > now() THEN
            PERFORM reminder.reschedule(d.message_id, now());
        END IF;
    END IF;
    RETURN d.message_id;
END
$$;
COMMENT ON FUNCTION reminder._digest_collect(jsonb, text, jsonb, text, jsonb, text, bigint, text, bigint) IS
'internal: adds an item to the open digest of its key, channel and recipient, opening one if needed; returns the digest''s message id';

CREATE FUNCTION reminder.add_to_digest(channel text, recipient jsonb, template text, digest jsonb,
                                       data jsonb DEFAULT '{}', category text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_add_to_digest'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.add_to_digest(text, jsonb, text, jsonb, jsonb, text) IS
'adds an item (its data) to the digest of digest->>''key'' for the recipient on the channel, opening one if none is open; returns the id of the message that will send the digest (see docs/digests.md)';

GRANT EXECUTE ON FUNCTION reminder.add_to_digest(text, jsonb, text, jsonb, jsonb, text) TO reminder_user;

REVOKE EXECUTE ON FUNCTION reminder._digest_spec(jsonb),
                           reminder._digest_send_at(jsonb, text, timestamptz),
                           reminder._digest_collect(jsonb, text, jsonb, text, jsonb, text, bigint, text, bigint),
                           reminder.add_to_digest(text, jsonb, text, jsonb, jsonb, text)
    FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('reminder.digest', '');
SELECT pg_catalog.pg_extension_config_dump('reminder.digest_item', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('reminder.digest', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('reminder.digest_item', 'id')::regclass, '');
-- Inbound replies (docs/inbound.md): replies to SMS channels, recorded as
-- consent statements or as events of kind confirmed, declined or the new
-- replied; has_event() for rules' stop conditions.
ALTER TABLE reminder.event DROP CONSTRAINT event_kind_known,
    ADD CONSTRAINT event_kind_known CHECK (kind IN
        ('delivered', 'bounced', 'opened', 'clicked', 'confirmed', 'declined',
         'reschedule_requested', 'answered', 'unsubscribed', 'complained', 'replied'));


CREATE FUNCTION reminder.record_inbound(channel text, payload jsonb, signature text,
                                        url text DEFAULT NULL,
                                        OUT action text, OUT phone text,
                                        OUT message_id bigint, OUT event_id bigint)
AS 'MODULE_PATHNAME', 'reminder_record_inbound'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.record_inbound(text, jsonb, text, text) IS
'records an SMS sent to an SMS channel (Twilio or SMSAPI webhook fields as a JSON object; signature: X-Twilio-Signature, or the shared secret of an SMSAPI channel; url: the URL Twilio called, default the channel''s inbound_url): STOP/START keywords opt the number out or in on the channel, 1/TAK/YES confirm and 2/NIE/NO decline the latest message sent to it, other text is a reply to it; returns the action, the number, and the message and event. Forged: 28000; no message to reply to: P0002; nothing recorded';

CREATE FUNCTION reminder.has_event(rule text, row_key text, kind text DEFAULT 'confirmed')
RETURNS boolean
AS 'MODULE_PATHNAME', 'reminder_has_event'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.has_event(text, text, text) IS
'whether a message the rule made for the row with this key (its key column as text) has an event of the kind (default confirmed): for stop conditions such as reminder.has_event(''visits'', id::text)';

GRANT EXECUTE ON FUNCTION reminder.record_inbound(text, jsonb, text, text)
    TO reminder_web, reminder_user;
GRANT EXECUTE ON FUNCTION reminder.has_event(text, text, text) TO reminder_user;
REVOKE EXECUTE ON FUNCTION reminder.record_inbound(text, jsonb, text, text),
                           reminder.has_event(text, text, text) FROM PUBLIC;
-- A rule recipient may have a "digest", an "unless" (escalation on a
-- missing event) and an "invite".
COMMENT ON COLUMN reminder.rule.recipients IS 'one object per recipient: role, channel, template or templates, offsets, to, bcc, when, digest, unless (events or a condition that make its messages unnecessary), invite (a calendar event for email); a value {"expr": "..."} is an SQL expression over the row';

-- Calendar invites: the event of each row for a recipient with "invite".
CREATE TABLE reminder.invite (
    rule_id        bigint NOT NULL REFERENCES reminder.rule ON DELETE CASCADE,
    source_key     text COLLATE "C" NOT NULL,
    recipient      integer NOT NULL,
    invite         jsonb NOT NULL,
    sequence       integer NOT NULL DEFAULT 0,
    cancelled      boolean NOT NULL DEFAULT false,
    sent_sequence  integer,
    sent_at        timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, source_key, recipient)
);
COMMENT ON TABLE reminder.invite IS 'the calendar event of each row for each recipient with an "invite": what it is now, its SEQUENCE, and what was sent';
COMMENT ON COLUMN reminder.invite.source_key IS 'the row, as reminder.message.source_key';
COMMENT ON COLUMN reminder.invite.recipient IS 'the recipient''s position in the rule''s recipients, from 0';
COMMENT ON COLUMN reminder.invite.invite IS 'the event as the row last called for it: start and end (UTC, iCalendar form), summary, location, description, organizer';
COMMENT ON COLUMN reminder.invite.sequence IS 'the iCalendar SEQUENCE: 0, raised by every change of the event and by its cancellation';
COMMENT ON COLUMN reminder.invite.cancelled IS 'the row no longer calls for the event (condition, when, address, or deleted): emails carry METHOD:CANCEL';
COMMENT ON COLUMN reminder.invite.sent_sequence IS 'the sequence of the last email that carried the event; NULL: none went out yet';
REVOKE ALL ON reminder.invite FROM PUBLIC;
GRANT SELECT ON reminder.invite TO reminder_user;
SELECT pg_catalog.pg_extension_config_dump('reminder.invite', '');
-- Recurring rules (watch(..., kind => 'recurring', rrule => ...)): an RRULE
-- counted from a start column, one occurrence scheduled at a time; and
-- reminder.rrule_occurrences() to see what a rule schedules.
ALTER TABLE reminder.rule DROP CONSTRAINT rule_kind_known;
ALTER TABLE reminder.rule ADD CONSTRAINT rule_kind_known
    CHECK (kind IN ('before', 'after', 'on_change', 'follow_up', 'survey', 'recurring'));
ALTER TABLE reminder.rule ADD COLUMN rrule text;
ALTER TABLE reminder.rule ADD CONSTRAINT rule_rrule_recurring
    CHECK ((kind = 'recurring') = (rrule IS NOT NULL));
COMMENT ON COLUMN reminder.rule.kind IS 'before/after a timestamp column, on_change of a column, follow_up steps after an anchor, survey after a change, or recurring from a start column';
COMMENT ON COLUMN reminder.rule.column_name IS 'the timestamp column (before, after, follow_up), the start of the series (recurring) or the watched column (on_change, survey)';
COMMENT ON COLUMN reminder.rule.rrule IS 'recurring: the RRULE (RFC 5545 subset) of the series, counted from column_name in time_zone';
COMMENT ON COLUMN reminder.rule.business_days IS 'whether the days of offsets count business days of the calendar (recurring: whether occurrences on days off are left out)';

CREATE FUNCTION reminder.rrule_occurrences(rrule text, dtstart timestamptz,
                                           time_zone text DEFAULT NULL,
                                           n integer DEFAULT 10,
                                           after timestamptz DEFAULT NULL,
                                           calendar text DEFAULT NULL)
RETURNS SETOF timestamptz
AS 'MODULE_PATHNAME', 'reminder_rrule_occurrences'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
ROWS 10;
COMMENT ON FUNCTION reminder.rrule_occurrences(text, timestamptz, text, integer, timestamptz, text) IS
'the first n occurrences (after after, if given) of an RRULE started at dtstart, counted in time_zone (default: the session''s), without the days off of calendar if given; what a recurring rule schedules';
REVOKE EXECUTE ON FUNCTION reminder.rrule_occurrences(text, timestamptz, text, integer, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reminder.rrule_occurrences(text, timestamptz, text, integer, timestamptz, text) TO reminder_user;

DROP FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean, text, text);
CREATE FUNCTION reminder.watch(table_name regclass,
                               kind text,
                               name text DEFAULT NULL,
                               column_name text DEFAULT NULL,
                               offsets interval[] DEFAULT NULL,
                               channel text DEFAULT NULL,
                               template text DEFAULT NULL,
                               recipients jsonb DEFAULT NULL,
                               condition text DEFAULT NULL,
                               changes_to text[] DEFAULT NULL,
                               templates jsonb DEFAULT NULL,
                               stop_condition text DEFAULT NULL,
                               business_days boolean DEFAULT false,
                               calendar text DEFAULT 'default',
                               throttle interval DEFAULT NULL,
                               if_past text DEFAULT 'skip',
                               time_zone text DEFAULT NULL,
                               key_columns text[] DEFAULT NULL,
                               backfill boolean DEFAULT false,
                               category text DEFAULT NULL,
                               priority text DEFAULT NULL,
                               rrule text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_watch'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean, text, text, text) IS
'creates a rule on a table the caller owns and the triggers that apply it; returns the rule id (see docs/rules.md)';
REVOKE EXECUTE ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean, text, text, text)
    TO reminder_admin;

-- ---------------------------------------------------------------------------
-- Several senders per database (reminder.workers_per_database): which
-- one a row of worker_status() is.
-- ---------------------------------------------------------------------------

DROP FUNCTION reminder.worker_status();
CREATE FUNCTION reminder.worker_status(
    OUT database name,
    OUT pid integer,
    OUT state text,
    OUT started_at timestamptz,
    OUT last_loop timestamptz,
    OUT in_flight integer,
    OUT sent bigint,
    OUT failed bigint,
    OUT retried bigint,
    OUT sender integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'reminder_worker_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reminder.worker_status() IS
'the launcher (database NULL) and every database''s workers (senders, numbered from 1; reminder.workers_per_database of them), from shared memory: state, in-flight transfers and counters since the worker started';
REVOKE EXECUTE ON FUNCTION reminder.worker_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reminder.worker_status() TO reminder_user;

-- ---------------------------------------------------------------------------
-- History (78_history.sql): finished messages move out of the outbox into
-- reminder.message_history after reminder.history_after; attempts and
-- history are partitioned by time, and retention drops whole partitions.
-- ---------------------------------------------------------------------------

-- Events and the survey throttle outlive a message's row in the outbox:
-- their foreign keys (ON DELETE CASCADE) would delete them when it moves.
-- purge() and drop_channel() delete them instead.
ALTER TABLE reminder.event DROP CONSTRAINT event_message_id_fkey;
ALTER TABLE reminder.survey_log DROP CONSTRAINT survey_log_message_id_fkey;

-- Attempts become partitioned: the 0.1.0 table's rows are copied into the
-- new one (they land in attempt_default, and age out of it row by row), and
-- it is dropped.  Its index and sequence names step aside first.
ALTER TABLE reminder.attempt RENAME TO attempt_0_1_0;
ALTER INDEX reminder.attempt_pkey RENAME TO attempt_0_1_0_pkey;
ALTER INDEX reminder.attempt_message_idx RENAME TO attempt_0_1_0_message_idx;
ALTER SEQUENCE reminder.attempt_id_seq RENAME TO attempt_0_1_0_id_seq;
CREATE TABLE reminder.attempt (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    message_id    bigint NOT NULL,
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration      interval,
    outcome       text NOT NULL
                  CONSTRAINT attempt_outcome_known CHECK (outcome IN ('sent', 'transient', 'permanent')),
    http_status   integer,
    smtp_reply    text,
    error         text,
    response      text
) PARTITION BY RANGE (started_at);
CREATE TABLE reminder.attempt_default PARTITION OF reminder.attempt (PRIMARY KEY (id)) DEFAULT;
CREATE INDEX attempt_default_message_idx ON reminder.attempt_default (message_id);
-- what a partition made takes out of the default, and what purge() ages out
CREATE INDEX attempt_default_started_idx ON reminder.attempt_default (started_at);
COMMENT ON TABLE reminder.attempt_default IS 'attempts whose time no partition of reminder.attempt covers (normally none: the worker makes partitions ahead)';
COMMENT ON TABLE reminder.attempt IS 'the audit trail: one row per delivery try';
COMMENT ON COLUMN reminder.attempt.outcome IS 'sent, transient (will be retried) or permanent (gave up)';
COMMENT ON COLUMN reminder.attempt.response IS 'the start of the server''s response body, for diagnosis';


INSERT INTO reminder.attempt OVERRIDING SYSTEM VALUE
SELECT id, message_id, attempt, started_at, duration, outcome, http_status, smtp_reply, error, response
  FROM reminder.attempt_0_1_0;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('reminder.attempt', 'id'),
                         coalesce(max(id), 0) + 1, false)
  FROM reminder.attempt_0_1_0;
-- out of the extension first: that also takes the table and its sequence
-- out of the tables pg_dump dumps the rows of (pg_extension.extconfig)
ALTER EXTENSION reminder DROP SEQUENCE reminder.attempt_0_1_0_id_seq;
ALTER EXTENSION reminder DROP TABLE reminder.attempt_0_1_0;
DROP TABLE reminder.attempt_0_1_0;
GRANT SELECT ON reminder.attempt TO reminder_user;

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

SELECT pg_catalog.pg_extension_config_dump('reminder.attempt', '');
SELECT pg_catalog.pg_extension_config_dump('reminder.attempt_default', '');
SELECT pg_catalog.pg_extension_config_dump('reminder.message_history', '');
SELECT pg_catalog.pg_extension_config_dump('reminder.message_history_default', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('reminder.attempt', 'id')::regclass, '');
REVOKE EXECUTE ON FUNCTION reminder._partition_name(regclass, timestamptz),
                           reminder._partitions(regclass) FROM PUBLIC;

-- What reads finished messages reads history too (forget() above already
-- does).
CREATE OR REPLACE VIEW reminder.stats AS
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

CREATE OR REPLACE FUNCTION reminder.nps(template text DEFAULT NULL, rule_id bigint DEFAULT NULL,
                             since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
                             OUT responses bigint, OUT promoters bigint, OUT passives bigint,
                             OUT detractors bigint, OUT nps numeric)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF $3 IS NOT NULL AND $4 IS NOT NULL AND $3 > $4 THEN
        RAISE EXCEPTION 'period starts after it ends'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('since is %s, until is %s.', $3, $4),
                  HINT = 'Pass since <= until; either may be NULL for an open end.';
    END IF;
    SELECT count(*),
           count(*) FILTER (WHERE e.score >= 9),
           count(*) FILTER (WHERE e.score BETWEEN 7 AND 8),
           count(*) FILTER (WHERE e.score <= 6)
      INTO responses, promoters, passives, detractors
      FROM reminder.event e
      JOIN reminder.messages m ON m.id = e.message_id
     WHERE e.kind = 'answered' AND e.score IS NOT NULL
       AND ($1 IS NULL OR m.template = $1)
       AND ($2 IS NULL OR m.rule_id = $2)
       AND ($3 IS NULL OR e.occurred_at >= $3)
       AND ($4 IS NULL OR e.occurred_at < $4);
    nps := CASE WHEN responses > 0
                THEN round(100.0 * (promoters - detractors) / responses, 1) END;
END
$$;

CREATE OR REPLACE FUNCTION reminder.purge(older_than interval)
RETURNS TABLE (object text, purged bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cutoff      timestamptz;
    mids        bigint[];
    n_messages  bigint;
    n_attempts  bigint;
    n_events    bigint;
    n_log       bigint;
    n_partitions bigint := 0;
    part        regclass;
    hi          timestamptz;
    n           bigint;
    k           bigint;
    k2          bigint;
    timeout     text;
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass an interval such as ''90 days''.';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('It is %s.', older_than),
                  HINT = 'Pass an interval such as ''90 days''.';
    END IF;
    cutoff := now() - older_than;

    -- Finished messages still in the outbox whose last change and last
    -- event are older than the cutoff; rows someone holds are left for the
    -- next run.
    SELECT coalesce(array_agg(d.id), '{}') INTO mids
      FROM (SELECT m.id FROM reminder.message m
             WHERE m.status IN ('sent', 'failed', 'cancelled', 'suppressed')
               AND greatest(m.updated_at, m.sent_at) < cutoff
               AND NOT EXISTS (SELECT FROM reminder.event e
                                WHERE e.message_id = m.id AND e.occurred_at >= cutoff)
             FOR UPDATE SKIP LOCKED) d;

    DELETE FROM reminder.attempt WHERE message_id = ANY (mids);
    GET DIAGNOSTICS n_attempts = ROW_COUNT;
    DELETE FROM reminder.event WHERE message_id = ANY (mids);
    GET DIAGNOSTICS n_events = ROW_COUNT;
    DELETE FROM reminder.log WHERE message_id = ANY (mids);
    GET DIAGNOSTICS n_log = ROW_COUNT;
    DELETE FROM reminder.survey_log WHERE message_id = ANY (mids);
    DELETE FROM reminder.message WHERE id = ANY (mids);
    GET DIAGNOSTICS n_messages = ROW_COUNT;

    -- History and attempts go by whole partitions, once all of a
    -- partition is older than the cutoff: with the messages of a history
    -- partition go their events, log and survey rows.  DROP locks the
    -- parent: behind a long reader of it, waiting would stop every writer
    -- of attempts queued behind the DROP, so a partition in use waits for
    -- the next run instead (lock_timeout, the partition's work undone).
    timeout := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', '1s', true);
    FOR part, hi IN SELECT p.part, p.hi FROM reminder._partitions('reminder.message_history') p LOOP
        CONTINUE WHEN hi > cutoff;
        BEGIN
            EXECUTE format('SELECT count(*), coalesce(array_agg(id), ''{}'') FROM %s', part) INTO n, mids;
            DELETE FROM reminder.event WHERE message_id = ANY (mids);
            GET DIAGNOSTICS k = ROW_COUNT;
            DELETE FROM reminder.log WHERE message_id = ANY (mids);
            GET DIAGNOSTICS k2 = ROW_COUNT;
            DELETE FROM reminder.survey_log WHERE message_id = ANY (mids);
            EXECUTE format('DROP TABLE %s', part);
            n_events := n_events + k;
            n_log := n_log + k2;
            n_messages := n_messages + n;
            n_partitions := n_partitions + 1;
        EXCEPTION WHEN lock_not_available THEN
            RAISE NOTICE 'partition % is in use, and is left for the next purge', part;
        END;
    END LOOP;
    FOR part, hi IN SELECT p.part, p.hi FROM reminder._partitions('reminder.attempt') p LOOP
        CONTINUE WHEN hi > cutoff;
        BEGIN
            EXECUTE format('SELECT count(*) FROM %s', part) INTO n;
            EXECUTE format('DROP TABLE %s', part);
            n_attempts := n_attempts + n;
            n_partitions := n_partitions + 1;
        EXCEPTION WHEN lock_not_available THEN
            RAISE NOTICE 'partition % is in use, and is left for the next purge', part;
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', timeout, true);

    -- What the default partitions caught goes row by row.
    SELECT coalesce(array_agg(h.id), '{}') INTO mids
      FROM reminder.message_history_default h WHERE h.archived_at < cutoff;
    DELETE FROM reminder.event WHERE message_id = ANY (mids);
    GET DIAGNOSTICS k = ROW_COUNT;
    n_events := n_events + k;
    DELETE FROM reminder.log WHERE message_id = ANY (mids);
    GET DIAGNOSTICS k = ROW_COUNT;
    n_log := n_log + k;
    DELETE FROM reminder.survey_log WHERE message_id = ANY (mids);
    DELETE FROM reminder.message_history_default WHERE id = ANY (mids);
    GET DIAGNOSTICS k = ROW_COUNT;
    n_messages := n_messages + k;
    DELETE FROM reminder.attempt_default WHERE started_at < cutoff;
    GET DIAGNOSTICS k = ROW_COUNT;
    n_attempts := n_attempts + k;

    RETURN QUERY VALUES
        ('messages', n_messages),
        ('attempts', n_attempts),
        ('events', n_events),
        ('log', n_log),
        ('partitions', n_partitions);
END
$$;

COMMENT ON FUNCTION reminder.purge(interval) IS
'deletes finished messages (sent, failed, cancelled, suppressed) not changed and without events for older_than, with their attempts, events and log rows, and drops the partitions of reminder.message_history and reminder.attempt wholly older than that; returns rows deleted per object and partitions dropped. The worker runs it for reminder.retention';
