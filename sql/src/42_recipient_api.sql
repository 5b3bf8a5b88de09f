-- ---------------------------------------------------------------------------
-- Recipients, continued: every row written to reminder.recipient is checked
-- the way reminder.schedule() checks an inline recipient, and
-- upsert_recipient() gives administrators one call to store a person.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.recipient_check()
RETURNS trigger
AS 'MODULE_PATHNAME', 'reminder_recipient_check'
LANGUAGE C;
COMMENT ON FUNCTION reminder.recipient_check() IS
'trigger: refuses a recipient row with a malformed email, phone, URL, time zone, locale or quiet hours (SQLSTATE 22023 with a hint), stores phone numbers in E.164 and keeps updated_at current';

CREATE TRIGGER recipient_check
    BEFORE INSERT OR UPDATE ON reminder.recipient
    FOR EACH ROW EXECUTE FUNCTION reminder.recipient_check();

-- The consent gate and forget() look stored recipients up by address.
CREATE INDEX recipient_email_idx ON reminder.recipient (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX recipient_phone_idx ON reminder.recipient (phone) WHERE phone IS NOT NULL;

CREATE FUNCTION reminder.upsert_recipient(external_id text,
                                          name text DEFAULT NULL,
                                          email text DEFAULT NULL,
                                          phone text DEFAULT NULL,
                                          time_zone text DEFAULT NULL,
                                          locale text DEFAULT NULL,
                                          preferred_channel text DEFAULT NULL,
                                          quiet_hours jsonb DEFAULT NULL,
                                          attributes jsonb DEFAULT NULL,
                                          url text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rid bigint;
    st text;
    msg text;
    det text;
    hnt text;
BEGIN
    IF upsert_recipient.external_id IS NULL THEN
        RAISE EXCEPTION 'external_id must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass your application''s own key for the person, such as ''client-42''.';
    END IF;
    INSERT INTO reminder.recipient AS r
        (external_id, name, email, phone, time_zone, locale, preferred_channel,
         quiet_hours, attributes, url)
    VALUES (upsert_recipient.external_id, upsert_recipient.name, upsert_recipient.email,
            upsert_recipient.phone, upsert_recipient.time_zone, upsert_recipient.locale,
            upsert_recipient.preferred_channel, upsert_recipient.quiet_hours,
            coalesce(upsert_recipient.attributes, '{}'), upsert_recipient.url)
    ON CONFLICT ON CONSTRAINT recipient_external_id_key DO UPDATE SET
        name = coalesce(excluded.name, r.name),
        email = coalesce(excluded.email, r.email),
        phone = coalesce(excluded.phone, r.phone),
        time_zone = coalesce(excluded.time_zone, r.time_zone),
        locale = coalesce(excluded.locale, r.locale),
        preferred_channel = coalesce(excluded.preferred_channel, r.preferred_channel),
        quiet_hours = coalesce(excluded.quiet_hours, r.quiet_hours),
        attributes = r.attributes || excluded.attributes,
        url = coalesce(excluded.url, r.url)
    RETURNING r.id INTO rid;
    RETURN rid;
EXCEPTION WHEN OTHERS THEN
    -- the trigger's error, without the whole INSERT as context
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    IF det <> '' AND hnt <> '' THEN
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, DETAIL = det, HINT = hnt;
    ELSIF det <> '' THEN
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, DETAIL = det;
    ELSIF hnt <> '' THEN
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, HINT = hnt;
    ELSE
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg;
    END IF;
END
$$;
COMMENT ON FUNCTION reminder.upsert_recipient(text, text, text, text, text, text, text, jsonb, jsonb, text) IS
'stores the recipient with this external_id, or updates it: NULL arguments keep what is stored, attributes are merged key by key; returns its id. Values are checked by the recipient_check trigger';

GRANT EXECUTE ON FUNCTION reminder.upsert_recipient(text, text, text, text, text, text, text, jsonb, jsonb, text)
    TO reminder_admin;

-- ---------------------------------------------------------------------------
-- Quiet hours: when a message to a recipient may go out.  The worker defers
-- messages with the same computation (quiet_hours.c); this function lets
-- applications and tests ask it directly.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.next_send_time(recipient jsonb, channel text DEFAULT NULL,
                                        at timestamptz DEFAULT now())
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'reminder_next_send_time'
LANGUAGE C STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.next_send_time(jsonb, text, timestamptz) IS
'the first moment at or after "at" outside the quiet hours of the recipient (inline or stored), or of the channel when the recipient has none, on the recipient''s wall clock (its time_zone, else the server''s TimeZone)';

GRANT EXECUTE ON FUNCTION reminder.next_send_time(jsonb, text, timestamptz) TO reminder_user;
