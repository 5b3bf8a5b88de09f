-- ---------------------------------------------------------------------------
-- Personal data: erasure on request (forget) and ageing out (purge).  See
-- docs/data.md.
-- ---------------------------------------------------------------------------

-- A recipient jsonb without the given addresses in its cc and bcc.
CREATE FUNCTION reminder._strip_copies(recipient jsonb, emails text[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
RETURN recipient || coalesce((
    SELECT jsonb_object_agg(k, coalesce((
               SELECT jsonb_agg(e)
                 FROM jsonb_array_elements(CASE jsonb_typeof(recipient -> k)
                                                WHEN 'array' THEN recipient -> k
                                                ELSE jsonb_build_array(recipient -> k) END) e
                WHERE lower(e #>> '{}') <> ALL (emails)), '[]'))
      FROM unnest(ARRAY['cc', 'bcc']) k
     WHERE recipient ? k), '{}');
COMMENT ON FUNCTION reminder._strip_copies(jsonb, text[]) IS
'internal: the recipient with the given (lower-case) addresses removed from cc and bcc';

CREATE FUNCTION reminder.forget(recipient jsonb, keep_opt_outs boolean DEFAULT true)
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
COMMENT ON FUNCTION reminder.forget(jsonb, boolean) IS
'GDPR erasure: deletes the stored recipient(s) and erases the personal data of a recipient ({"id"}, {"external_id"}, {"email"}, {"phone"}) from messages, attempts, events, log rows, consent and the survey throttle, keeping anonymous counts; cancels their pending messages; their opt-outs stay, by hashed address, unless keep_opt_outs is false; returns rows erased per object';

CREATE FUNCTION reminder.purge(older_than interval)
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

GRANT EXECUTE ON FUNCTION reminder.forget(jsonb, boolean), reminder.purge(interval) TO reminder_admin;
