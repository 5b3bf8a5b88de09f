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

-- forget(): opt-outs kept by reminder._address_key().
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

    -- Nothing can be delivered to no one.
    UPDATE reminder.message
       SET status = 'cancelled', last_error = 'recipient forgotten', updated_at = now()
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
