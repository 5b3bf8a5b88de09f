-- reminder: reminders and notifications delivered from inside PostgreSQL.
--
-- This install script is assembled from sql/src/*.sql, one part per
-- responsibility.  Every object lives in schema "reminder".  Writes go
-- through the functions below (SECURITY DEFINER, search_path pinned), so the
-- two roles the extension creates need no direct write access to its tables:
--
--   reminder_admin  manages channels, secrets, templates, recipients, rules;
--   reminder_user   schedules messages and reads their state, never secrets.
--
-- reminder_admin is a member of reminder_user.

\echo Use "CREATE EXTENSION reminder" to load this file. \quit

CREATE SCHEMA reminder;
COMMENT ON SCHEMA reminder IS 'reminders and notifications: channels, templates, recipients, the message outbox and its audit trail';

-- Roles are cluster-wide and outlive the extension; create them once.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'reminder_user') THEN
        CREATE ROLE reminder_user NOLOGIN;
        COMMENT ON ROLE reminder_user IS 'may schedule reminder messages and read their state';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'reminder_admin') THEN
        CREATE ROLE reminder_admin NOLOGIN;
        COMMENT ON ROLE reminder_admin IS 'manages reminder channels, secrets, templates, recipients and rules';
    END IF;
    IF NOT pg_catalog.pg_has_role('reminder_admin', 'reminder_user', 'MEMBER') THEN
        GRANT reminder_user TO reminder_admin;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA reminder TO reminder_user;

-- Each part grants its own objects to the two roles; 99_privileges.sql then
-- takes EXECUTE away from PUBLIC on everything.
-- ---------------------------------------------------------------------------
-- Channels: named ways to deliver a message.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.channel (
    name        text PRIMARY KEY
                CONSTRAINT channel_name_format CHECK (name ~ '^[A-Za-z][A-Za-z0-9_.-]{0,62}$'),
    kind        text NOT NULL
                CONSTRAINT channel_kind_known CHECK (kind IN ('email', 'sms', 'webhook', 'slack', 'log')),
    settings    jsonb NOT NULL DEFAULT '{}'
                CONSTRAINT channel_settings_object CHECK (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reminder.channel IS 'named delivery channels; write through reminder.create_channel()';
COMMENT ON COLUMN reminder.channel.kind IS 'email (SMTP), sms (HTTP gateway), webhook (HTTP POST of JSON), slack (incoming webhook) or log (rows in reminder.log)';
COMMENT ON COLUMN reminder.channel.settings IS 'kind-specific settings (url, from, provider, headers ...) and delivery policy (rate_limit, timeout, max_attempts, retry_delay, retry_max_delay, fallback); never secrets';

-- Secrets live apart from settings: no role but the extension owner can read
-- them; reminder_admin replaces them through create_channel() or
-- set_channel_secrets().
CREATE TABLE reminder.channel_secret (
    channel     text PRIMARY KEY REFERENCES reminder.channel ON UPDATE CASCADE ON DELETE CASCADE,
    secrets     jsonb NOT NULL DEFAULT '{}'
                CONSTRAINT channel_secret_object CHECK (jsonb_typeof(secrets) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reminder.channel_secret IS 'channel credentials (passwords, tokens, signing keys); readable only by the extension owner';

-- What the log channel "delivers": the embedded default that needs no
-- outside server.
CREATE TABLE reminder.log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  bigint NOT NULL,
    channel     text NOT NULL,
    recipient   jsonb NOT NULL,
    subject     text,
    body        text NOT NULL,
    html        text,
    logged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX log_message_id_idx ON reminder.log (message_id);
COMMENT ON TABLE reminder.log IS 'messages delivered through channels of kind log, as rendered';

CREATE FUNCTION reminder.create_channel(name text, kind text,
                                        settings jsonb DEFAULT '{}',
                                        secrets jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_create_channel'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.create_channel(text, text, jsonb, jsonb) IS
'creates or replaces a channel; settings are validated for the kind; non-empty secrets replace the stored ones, ''{}'' keeps them';

CREATE FUNCTION reminder.set_channel_secrets(name text, secrets jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_set_channel_secrets'
LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.set_channel_secrets(text, jsonb) IS
'replaces a channel''s secrets exactly (''{}'' clears them)';

CREATE FUNCTION reminder.drop_channel(name text, cascade boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_drop_channel'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.drop_channel(text, boolean) IS
'drops a channel; refuses while messages use it unless cascade, which deletes them';

REVOKE ALL ON reminder.channel_secret FROM PUBLIC;
GRANT SELECT ON reminder.channel TO reminder_user;
GRANT SELECT ON reminder.log TO reminder_user;
GRANT EXECUTE ON FUNCTION reminder.create_channel(text, text, jsonb, jsonb),
                          reminder.set_channel_secrets(text, jsonb),
                          reminder.drop_channel(text, boolean)
    TO reminder_admin;
-- ---------------------------------------------------------------------------
-- Templates: Mustache subject, text body and optional HTML body, by name and
-- locale.  See docs/templates.md for the language.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.template (
    name        text NOT NULL
                CONSTRAINT template_name_format CHECK (name ~ '^[A-Za-z][A-Za-z0-9_.-]{0,62}$'),
    locale      text NOT NULL DEFAULT 'en'
                CONSTRAINT template_locale_format CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    subject     text,
    body        text NOT NULL,
    html        text,
    required    text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, locale)
);
COMMENT ON TABLE reminder.template IS 'Mustache templates by name and locale; write through reminder.create_template()';
COMMENT ON COLUMN reminder.template.locale IS 'BCP 47 language tag; a recipient''s pl-PL falls back to pl, then to reminder.default_locale, then to any locale of the template';
COMMENT ON COLUMN reminder.template.required IS 'dotted variable names that must be present and not null in a message''s data (checked when the message is scheduled)';

CREATE FUNCTION reminder.create_template(name text, body text,
                                         subject text DEFAULT NULL,
                                         html text DEFAULT NULL,
                                         locale text DEFAULT 'en',
                                         required text[] DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_create_template'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.create_template(text, text, text, text, text, text[]) IS
'creates or replaces the template for (name, locale) after checking its syntax';

CREATE FUNCTION reminder.drop_template(name text, locale text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_drop_template'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.drop_template(text, text) IS
'drops one locale of a template, or every locale when locale is NULL';

GRANT SELECT ON reminder.template TO reminder_user;
GRANT EXECUTE ON FUNCTION reminder.create_template(text, text, text, text, text, text[]),
                          reminder.drop_template(text, text)
    TO reminder_admin;

-- ---------------------------------------------------------------------------
-- Mustache rendering (src/mustache.c, src/template.c).  The language, its
-- escaping modes and filters are described in docs/templates.md.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.mustache(template text, data jsonb,
                                  partials jsonb DEFAULT '{}',
                                  escape text DEFAULT 'html',
                                  time_zone text DEFAULT NULL,
                                  locale text DEFAULT 'en',
                                  max_output integer DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'reminder_mustache'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION reminder.mustache(text, jsonb, jsonb, text, text, text, integer) IS
'renders a Mustache template with jsonb data; partials maps names to templates; escape is html, none or json; date filters use time_zone (NULL: the session TimeZone) and locale; max_output bounds the result in bytes (NULL: 1 MB)';

GRANT EXECUTE ON FUNCTION reminder.mustache(text, jsonb, jsonb, text, text, text, integer)
    TO reminder_user;
-- ---------------------------------------------------------------------------
-- Recipients: people or endpoints stored once and referred to by id or
-- external_id in a message's recipient jsonb.  A recipient can also be given
-- inline as jsonb without a stored row; both resolve the same way.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.recipient (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id       text UNIQUE,
    name              text,
    email             text,
    phone             text,
    url               text,
    time_zone         text,
    locale            text
                      CONSTRAINT recipient_locale_format CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    preferred_channel text REFERENCES reminder.channel ON UPDATE CASCADE ON DELETE SET NULL,
    quiet_hours       jsonb,
    attributes        jsonb NOT NULL DEFAULT '{}'
                      CONSTRAINT recipient_attributes_object CHECK (jsonb_typeof(attributes) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reminder.recipient IS 'stored recipients, referred to as {"id": n} or {"external_id": "..."} in reminder.schedule()';
COMMENT ON COLUMN reminder.recipient.external_id IS 'the application''s own key for this person or endpoint';
COMMENT ON COLUMN reminder.recipient.time_zone IS 'IANA time zone name; timestamps in templates and quiet hours use it';
COMMENT ON COLUMN reminder.recipient.quiet_hours IS '{"start": "21:00", "end": "08:00"} in the recipient''s time zone; messages falling inside are deferred, never dropped';

GRANT SELECT ON reminder.recipient TO reminder_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON reminder.recipient TO reminder_admin;
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
-- ---------------------------------------------------------------------------
-- Consent: opt-out and opt-in by recipient (stored or raw address) and by
-- channel and/or category.  The worker checks it just before sending
-- (consent.c), so an opt-out also stops messages already scheduled: they
-- end as suppressed.  See docs/recipients.md.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.consent (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_id  bigint REFERENCES reminder.recipient ON DELETE CASCADE,
    address       text,
    channel       text,
    category      text,
    opted_out     boolean NOT NULL,
    source        text,
    changed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT consent_one_subject CHECK ((recipient_id IS NULL) <> (address IS NULL)),
    CONSTRAINT consent_scope_key UNIQUE NULLS NOT DISTINCT (recipient_id, address, channel, category)
);
CREATE INDEX consent_address_idx ON reminder.consent (address) WHERE address IS NOT NULL;
COMMENT ON TABLE reminder.consent IS 'the latest opt-out or opt-in per subject and scope; write through reminder.opt_out() and reminder.opt_in()';
COMMENT ON COLUMN reminder.consent.recipient_id IS 'the stored recipient the statement is about, or NULL when it is about a raw address';
COMMENT ON COLUMN reminder.consent.address IS 'a raw address: an email address in lower case or a phone number in E.164; or, for an opt-out kept by reminder.forget(), sha256:<hex> of the address';
COMMENT ON COLUMN reminder.consent.channel IS 'a channel name or kind (email, sms, ...) the statement covers; NULL covers every channel';
COMMENT ON COLUMN reminder.consent.category IS 'the message category the statement covers (data->>''category'', else the template name); NULL covers every category';
COMMENT ON COLUMN reminder.consent.changed_at IS 'when the statement was last made; among the statements covering a message the most recent one decides';

CREATE TABLE reminder.consent_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_id  bigint,
    address       text,
    channel       text,
    category      text,
    action        text NOT NULL CONSTRAINT consent_log_action_known CHECK (action IN ('opt_out', 'opt_in')),
    source        text,
    changed_by    text NOT NULL DEFAULT session_user,
    logged_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX consent_log_recipient_idx ON reminder.consent_log (recipient_id) WHERE recipient_id IS NOT NULL;
CREATE INDEX consent_log_address_idx ON reminder.consent_log (address) WHERE address IS NOT NULL;
COMMENT ON TABLE reminder.consent_log IS 'every opt-out and opt-in request, with time, source and the session user; reminder.forget() erases the subject but keeps the row';
COMMENT ON COLUMN reminder.consent_log.source IS 'where the request came from: as passed to opt_out()/opt_in(), or "unsubscribe link", "hard bounce", "complaint"';
COMMENT ON COLUMN reminder.consent_log.changed_by IS 'the session user that made the request';

CREATE FUNCTION reminder.opt_out(recipient jsonb, channel text DEFAULT NULL,
                                 category text DEFAULT NULL, source text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_opt_out'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.opt_out(jsonb, text, text, text) IS
'records that the recipient ({"id"}, {"external_id"}, {"email"} and/or {"phone"}) wants no messages on the channel (name or kind) and category given, NULL meaning all; applies to messages already scheduled';

CREATE FUNCTION reminder.opt_in(recipient jsonb, channel text DEFAULT NULL,
                                category text DEFAULT NULL, source text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_opt_in'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.opt_in(jsonb, text, text, text) IS
'records that the recipient wants messages again on the channel and category given; the most recent statement covering a message decides';

-- For forget(): the stored recipient id and the addresses a recipient jsonb
-- stands for.  Internal; no role but the owner may call it.
CREATE FUNCTION reminder._recipient_subject(recipient jsonb,
                                            OUT recipient_id bigint,
                                            OUT emails text[],
                                            OUT phones text[])
AS 'MODULE_PATHNAME', 'reminder_recipient_subject'
LANGUAGE C STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder._recipient_subject(jsonb) IS
'internal: the stored recipient id, lower-cased email addresses and E.164 phone numbers a recipient jsonb names';

GRANT SELECT ON reminder.consent TO reminder_user;
GRANT SELECT ON reminder.consent_log TO reminder_admin;
GRANT EXECUTE ON FUNCTION reminder.opt_out(jsonb, text, text, text),
                          reminder.opt_in(jsonb, text, text, text)
    TO reminder_user;

-- ---------------------------------------------------------------------------
-- The worker's last check before sending (opt-out, quiet hours, and what
-- other parts add), asked for one message without sending it.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.gate_check(message_id bigint,
                                    OUT verdict text, OUT defer_until timestamptz,
                                    OUT reason text)
AS 'MODULE_PATHNAME', 'reminder_gate_check'
LANGUAGE C STRICT VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.gate_check(bigint) IS
'what the worker would decide about a message if it fell due now: send, defer (until defer_until), suppress or cancel, with the reason; sends and changes nothing';

GRANT EXECUTE ON FUNCTION reminder.gate_check(bigint) TO reminder_user;
-- ---------------------------------------------------------------------------
-- Messages: the outbox.  One row is one notification to one recipient on one
-- channel, due at a time.  The background worker claims due rows with
-- FOR UPDATE SKIP LOCKED, sends them and records every attempt.
--
--   scheduled --> sending --> sent
--       |            |  \---> retrying --> sending ...
--       |            \------> failed        (permanent error or last attempt)
--       +--> cancelled                      (reminder.cancel, rule, row deleted)
--       +--> suppressed                     (opt-out, throttle, stop condition)
--
-- Rows are written in bulk by watch triggers, so every per-row cost counts.
-- channel has no foreign key: schedule() and the triggers check that the
-- channel exists, drop_channel() deletes its messages, and no role but the
-- extension owner may write reminder.channel.  A message whose channel is
-- gone anyway fails at send time with "channel ... does not exist".
-- fallback_of has none either: the worker only asks whether it is set, and
-- ON DELETE SET NULL made purge() scan the whole table once per deleted
-- message (2,000 out of 200,000: 40 s instead of 0.08 s).  Nor has
-- recipient_id: a foreign key's check runs per inserted row even when the
-- value is NULL (opening reminder.recipient each time); deleting a stored
-- recipient sets it to NULL through a statement trigger instead (below).
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.message (
    id                  bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    channel             text NOT NULL,
    recipient_id        bigint,
    recipient           jsonb NOT NULL,
    template            text NOT NULL,
    data                jsonb NOT NULL DEFAULT '{}',
    status              text NOT NULL DEFAULT 'scheduled'
                        CONSTRAINT message_status_known CHECK (status IN
                            ('scheduled', 'sending', 'sent', 'retrying', 'failed', 'cancelled', 'suppressed')),
    due_at              timestamptz NOT NULL,
    next_attempt_at     timestamptz NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    lease_until         timestamptz,
    sent_at             timestamptz,
    last_error          text,
    provider_message_id text,
    idempotency_key     text COLLATE "C" NOT NULL UNIQUE DEFAULT gen_random_uuid()::text,
    rule_id             bigint,
    source_table        text,
    source_key          text,
    fallback_of         bigint,
    fallback            text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reminder.message IS 'the outbox: one notification to one recipient on one channel; write through reminder.schedule() and friends';
COMMENT ON COLUMN reminder.message.channel IS 'the channel it goes out on (checked when scheduled; no foreign key, see reminder.drop_channel())';
COMMENT ON COLUMN reminder.message.recipient_id IS 'the stored recipient it was resolved from, if any; NULL once that recipient is deleted';
COMMENT ON COLUMN reminder.message.recipient IS 'the resolved recipient (address normalised, stored fields merged in) as it was when scheduled';
COMMENT ON COLUMN reminder.message.data IS 'template data; messages of on_change and survey rules carry row and old as they were at the change, those of before, after and follow_up rules nothing: the worker reads their row when it sends';
COMMENT ON COLUMN reminder.message.status IS 'scheduled, sending, sent, retrying, failed (gave up), cancelled or suppressed (opt-out, throttle, stop condition)';
COMMENT ON COLUMN reminder.message.due_at IS 'when the message should go out';
COMMENT ON COLUMN reminder.message.next_attempt_at IS 'when the worker may next try: due_at, or later after a transient failure or deferral';
COMMENT ON COLUMN reminder.message.lease_until IS 'while sending: when another worker may reclaim the message (crash recovery)';
COMMENT ON COLUMN reminder.message.idempotency_key IS 'unique; sent as the Idempotency-Key header and in the SMTP Message-ID so a receiver can drop duplicates; rule-made messages have rule:<rule>:<row key>:<recipient>:<step>[:<value>]; COLLATE "C" (byte order)';
COMMENT ON COLUMN reminder.message.source_key IS 'rule-made messages: the key of the row that made them, as text (a JSON array of texts for several key columns)';
COMMENT ON COLUMN reminder.message.provider_message_id IS 'the id the provider returned (Twilio sid, SMSAPI id, SMTP queue id)';
COMMENT ON COLUMN reminder.message.fallback IS 'the channel to fall back to if this message fails for good, instead of its channel''s "fallback" setting (reminder.schedule(..., fallback))';
COMMENT ON COLUMN reminder.message.fallback_of IS 'the failed message this one replaces on a fallback channel (which purge() may since have deleted)';

-- The due scan touches only rows that can still be sent; the lease scan only
-- rows in flight.  Both stay small however large the history grows.
-- Keys are compared byte-wise (COLLATE "C": the database's collation would
-- cost a strcoll() per comparison).  A rule-made message's key starts with
-- rule:<rule>:<row key>:, so the messages of a rule, or of one row, are a
-- range of the key's unique index, and need no index of their own.
CREATE INDEX message_due_idx ON reminder.message (next_attempt_at)
    WHERE status IN ('scheduled', 'retrying');
CREATE INDEX message_lease_idx ON reminder.message (lease_until)
    WHERE status = 'sending';
CREATE INDEX message_recipient_idx ON reminder.message (recipient_id)
    WHERE recipient_id IS NOT NULL;

-- ON DELETE SET NULL for recipient_id, once per statement.
CREATE FUNCTION reminder._recipients_deleted()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE reminder.message m SET recipient_id = NULL
      FROM deleted_recipient d
     WHERE m.recipient_id = d.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION reminder._recipients_deleted() IS
'internal: messages of deleted stored recipients keep their resolved recipient, without the id';
CREATE TRIGGER recipient_deleted AFTER DELETE ON reminder.recipient
    REFERENCING OLD TABLE AS deleted_recipient
    FOR EACH STATEMENT EXECUTE FUNCTION reminder._recipients_deleted();
COMMENT ON TRIGGER recipient_deleted ON reminder.recipient IS 'sets reminder.message.recipient_id to NULL for the deleted recipients';

-- attempt.message_id has no foreign key: the worker writes an attempt row
-- per send, and the check's FOR KEY SHARE lock on the message (a WAL record
-- each) cost more than the attempt row itself (100,000 rows: 860 ms with
-- it, 330 ms without).  The worker skips messages deleted meanwhile, and
-- whatever deletes messages (purge(), drop_channel()) deletes their
-- attempts first.
CREATE TABLE reminder.attempt (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
);
CREATE INDEX attempt_message_idx ON reminder.attempt (message_id);
COMMENT ON TABLE reminder.attempt IS 'the audit trail: one row per delivery try';
COMMENT ON COLUMN reminder.attempt.outcome IS 'sent, transient (will be retried) or permanent (gave up)';
COMMENT ON COLUMN reminder.attempt.response IS 'the start of the server''s response body, for diagnosis';

CREATE TABLE reminder.event (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   bigint REFERENCES reminder.message ON DELETE CASCADE,
    kind         text NOT NULL
                 CONSTRAINT event_kind_known CHECK (kind IN
                     ('delivered', 'bounced', 'opened', 'clicked', 'confirmed', 'declined',
                      'reschedule_requested', 'answered', 'unsubscribed', 'complained')),
    score        smallint CONSTRAINT event_score_range CHECK (score BETWEEN 0 AND 10),
    comment      text,
    detail       jsonb NOT NULL DEFAULT '{}',
    source       text,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_message_idx ON reminder.event (message_id);
COMMENT ON TABLE reminder.event IS 'what happened to a message after sending: provider callbacks, link use, survey answers';

GRANT SELECT ON reminder.message, reminder.attempt, reminder.event TO reminder_user;

-- ---------------------------------------------------------------------------
-- Scheduling
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.schedule(channel text, recipient jsonb, template text,
                                  due_at timestamptz DEFAULT now(),
                                  data jsonb DEFAULT '{}',
                                  idempotency_key text DEFAULT NULL,
                                  fallback text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_schedule'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text) IS
'schedules one message and returns its id; an existing idempotency_key returns that message''s id and creates nothing; fallback names the channel that takes over if it fails for good (default: the channel''s own "fallback" setting)';

CREATE FUNCTION reminder.send(channel text, recipient jsonb, template text,
                              data jsonb DEFAULT '{}',
                              idempotency_key text DEFAULT NULL,
                              fallback text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql SECURITY INVOKER
RETURN reminder.schedule(channel, recipient, template, now(), data, idempotency_key, fallback);
COMMENT ON FUNCTION reminder.send(text, jsonb, text, jsonb, text, text) IS
'schedules one message for now; the worker sends it as soon as the transaction commits';

CREATE FUNCTION reminder.cancel(message_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'reminder_cancel'
LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.cancel(bigint) IS
'cancels a message not yet sent; true if it was cancelled now, false if it already was';

CREATE FUNCTION reminder.reschedule(message_id bigint, due_at timestamptz)
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_reschedule'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.reschedule(bigint, timestamptz) IS
'moves a message that is not yet sent to a new due time';

GRANT EXECUTE ON FUNCTION reminder.schedule(text, jsonb, text, timestamptz, jsonb, text, text),
                          reminder.send(text, jsonb, text, jsonb, text, text),
                          reminder.cancel(bigint),
                          reminder.reschedule(bigint, timestamptz)
    TO reminder_user;
-- ---------------------------------------------------------------------------
-- Previews: a stored template rendered for a recipient and data, or an
-- existing message rendered as the worker would send it.  Nothing is sent.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.render(template text, recipient jsonb DEFAULT '{}',
                                data jsonb DEFAULT '{}', channel text DEFAULT NULL,
                                OUT locale text, OUT subject text, OUT body text, OUT html text)
AS 'MODULE_PATHNAME', 'reminder_render'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.render(text, jsonb, jsonb, text) IS
'previews a stored template for a recipient and data, as the worker would render it; sends nothing';

CREATE FUNCTION reminder.render(message_id bigint,
                                OUT locale text, OUT subject text, OUT body text, OUT html text)
AS 'MODULE_PATHNAME', 'reminder_render_message'
LANGUAGE C STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.render(bigint) IS
'previews an existing message as the worker would render it now; sends nothing';

GRANT EXECUTE ON FUNCTION reminder.render(text, jsonb, jsonb, text),
                          reminder.render(bigint)
    TO reminder_user;
-- ---------------------------------------------------------------------------
-- The background worker.  A launcher (library in shared_preload_libraries)
-- runs one worker per database where this extension is installed; see
-- docs/worker.md.
-- ---------------------------------------------------------------------------

-- Called once below: when CREATE EXTENSION commits, says (NOTICE) that nothing
-- will be delivered unless the library is preloaded, or asks the launcher
-- to start this database's worker.
CREATE FUNCTION reminder._on_create()
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_on_create'
LANGUAGE C;
COMMENT ON FUNCTION reminder._on_create() IS
'internal: run by CREATE EXTENSION to start this database''s worker';

SELECT reminder._on_create();

CREATE FUNCTION reminder.worker_status(
    OUT database name,
    OUT pid integer,
    OUT state text,
    OUT started_at timestamptz,
    OUT last_loop timestamptz,
    OUT in_flight integer,
    OUT sent bigint,
    OUT failed bigint,
    OUT retried bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'reminder_worker_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reminder.worker_status() IS
'the launcher (database NULL) and every database''s worker, from shared memory: state, in-flight transfers and counters since the worker started';

GRANT EXECUTE ON FUNCTION reminder.worker_status() TO reminder_user;
-- ---------------------------------------------------------------------------
-- Channel transports (email over SMTP, SMS gateways, Slack): what they add
-- to the outbox, and what they let one ask in advance.  See docs/channels.md.
-- ---------------------------------------------------------------------------

ALTER TABLE reminder.message ADD COLUMN sms_segments smallint;
COMMENT ON COLUMN reminder.message.sms_segments IS
'SMS only: segments the text took when it was last sent (GSM-7: 160 septets, or 153 each when split; UCS-2: 70 UTF-16 units, or 67 each), as providers bill';

CREATE FUNCTION reminder.sms_segments(body text, transliterate boolean DEFAULT false,
                                      OUT encoding text, OUT units integer, OUT segments integer,
                                      OUT sms_text text)
AS 'MODULE_PATHNAME', 'reminder_sms_segments'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION reminder.sms_segments(text, boolean) IS
'what a text costs as an SMS, counted as the worker counts it: GSM-7 or UCS-2, septets or UTF-16 units, segments, and the text sent; transliterate as an SMS channel with "unicode": "transliterate" does';

GRANT EXECUTE ON FUNCTION reminder.sms_segments(text, boolean) TO reminder_user;
-- ---------------------------------------------------------------------------
-- Rules: rows of business tables become reminders.  reminder.watch() stores
-- a rule and puts statement-level triggers on the table; the triggers turn
-- the rows a statement inserted, updated or deleted into messages (or cancel
-- them) in the same transaction.  See docs/rules.md.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.rule (
    id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CONSTRAINT rule_name_format CHECK (name ~ '^[A-Za-z][A-Za-z0-9_]{0,39}$'),
    table_name      regclass NOT NULL,
    kind            text NOT NULL
                    CONSTRAINT rule_kind_known CHECK (kind IN ('before', 'after', 'on_change', 'follow_up', 'survey')),
    column_name     text NOT NULL,
    key_columns     text[] NOT NULL,
    recipients      jsonb NOT NULL
                    CONSTRAINT rule_recipients_array CHECK (jsonb_typeof(recipients) = 'array'),
    condition       text,
    stop_condition  text,
    changes_to      text[],
    business_days   boolean NOT NULL DEFAULT false,
    calendar        text NOT NULL DEFAULT 'default',
    time_zone       text NOT NULL,
    if_past         text NOT NULL DEFAULT 'skip'
                    CONSTRAINT rule_if_past_known CHECK (if_past IN ('skip', 'send')),
    throttle        interval,
    created_by      name NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_table_name_idx ON reminder.rule (table_name);
COMMENT ON TABLE reminder.rule IS 'rules on business tables; write through reminder.watch() and reminder.unwatch()';
COMMENT ON COLUMN reminder.rule.table_name IS 'the watched table; its triggers reminder_<name>_insert, _update, _delete and _truncate carry the rule id';
COMMENT ON COLUMN reminder.rule.kind IS 'before/after a timestamp column, on_change of a column, follow_up steps after an anchor, or survey after a change';
COMMENT ON COLUMN reminder.rule.column_name IS 'the timestamp column (before, after, follow_up) or the watched column (on_change, survey)';
COMMENT ON COLUMN reminder.rule.key_columns IS 'columns identifying a row (the primary key unless given); messages record them as source_key';
COMMENT ON COLUMN reminder.rule.recipients IS 'one object per recipient: role, channel, template or templates, offsets, to, bcc, when; a value {"expr": "..."} is an SQL expression over the row';
COMMENT ON COLUMN reminder.rule.condition IS 'SQL predicate over the row; messages exist only while it holds (checked when the row is written)';
COMMENT ON COLUMN reminder.rule.stop_condition IS 'SQL predicate over the row; while it holds nothing is scheduled, and a message about to be sent is suppressed and the rest of its sequence cancelled';
COMMENT ON COLUMN reminder.rule.changes_to IS 'on_change and survey: the values of column_name that trigger a message (NULL: any new value)';
COMMENT ON COLUMN reminder.rule.business_days IS 'whether the days of offsets count business days of the calendar';
COMMENT ON COLUMN reminder.rule.time_zone IS 'time zone of day arithmetic, business days, and timestamp-without-time-zone columns';
COMMENT ON COLUMN reminder.rule.if_past IS 'what happens to a message whose time has already passed when the row is written: skip (default) or send (at once)';
COMMENT ON COLUMN reminder.rule.throttle IS 'survey: no second survey to the same email address or phone number within this interval';

-- ---------------------------------------------------------------------------
-- The business calendar: days off for business-day offsets.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.calendar (
    name     text PRIMARY KEY
             CONSTRAINT calendar_name_format CHECK (name ~ '^[A-Za-z][A-Za-z0-9_.-]{0,62}$'),
    weekend  smallint[] NOT NULL DEFAULT '{6,7}'
             CONSTRAINT calendar_weekend_days CHECK (weekend <@ '{1,2,3,4,5,6,7}' AND cardinality(weekend) < 7)
);
COMMENT ON TABLE reminder.calendar IS 'business calendars; a calendar without a row here (such as "default") has Saturday and Sunday off';
COMMENT ON COLUMN reminder.calendar.weekend IS 'ISO days of the week that are not business days: 1 = Monday ... 7 = Sunday';

CREATE TABLE reminder.holiday (
    calendar  text NOT NULL DEFAULT 'default',
    day       date NOT NULL,
    name      text,
    PRIMARY KEY (calendar, day)
);
COMMENT ON TABLE reminder.holiday IS 'days that are not business days in a calendar, besides its weekend';

CREATE FUNCTION reminder.is_business_day(day date, calendar text DEFAULT 'default')
RETURNS boolean
AS 'MODULE_PATHNAME', 'reminder_is_business_day'
LANGUAGE C STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.is_business_day(date, text) IS
'whether day is neither a weekend day nor a holiday of the calendar';

CREATE FUNCTION reminder.add_business_days(ts timestamptz, days integer,
                                           calendar text DEFAULT 'default',
                                           time_zone text DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'reminder_add_business_days'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.add_business_days(timestamptz, integer, text, text) IS
'ts moved by days business days (backwards when negative) at the same local time of day; time_zone defaults to the session''s';

-- ---------------------------------------------------------------------------
-- Survey throttle: who was surveyed when.  Addresses are kept as SHA-256 of
-- the lower-cased email address or the E.164 phone number, never in clear.
-- ---------------------------------------------------------------------------

CREATE TABLE reminder.survey_log (
    address_hash  bytea NOT NULL,
    message_id    bigint NOT NULL REFERENCES reminder.message ON DELETE CASCADE,
    rule_id       bigint NOT NULL,
    surveyed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address_hash, message_id)
);
CREATE INDEX survey_log_message_idx ON reminder.survey_log (message_id);
COMMENT ON TABLE reminder.survey_log IS 'surveys let through at send time, by hashed address; the survey throttle reads it';

CREATE FUNCTION reminder._address_hash(kind text, address text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'reminder_address_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION reminder._address_hash(text, text) IS
'internal: the SHA-256 reminder.survey_log keeps of an address (kind email or phone)';

-- ---------------------------------------------------------------------------
-- watch() and unwatch()
-- ---------------------------------------------------------------------------

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
                               backfill boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_watch'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean) IS
'creates a rule on a table the caller owns and the triggers that apply it; returns the rule id (see docs/rules.md)';

CREATE FUNCTION reminder.unwatch(name text, cancel_pending boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_unwatch'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.unwatch(text, boolean) IS
'drops a rule and its triggers; returns how many pending messages of the rule it cancelled (none unless cancel_pending)';

-- The trigger function watch() puts on tables; not for calling directly.
CREATE FUNCTION reminder.watch_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'reminder_watch_trigger'
LANGUAGE C;
COMMENT ON FUNCTION reminder.watch_trigger() IS
'statement-level trigger that applies the rule whose id is its argument to the rows of the statement';

-- ---------------------------------------------------------------------------
-- Keeping compiled rules fresh.  Each backend keeps rules, channels,
-- templates and calendars it has compiled; changing any of them sends a
-- relcache invalidation at commit so every backend recompiles.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.invalidate_rule_cache()
RETURNS trigger
AS 'MODULE_PATHNAME', 'reminder_invalidate_rule_cache'
LANGUAGE C;
COMMENT ON FUNCTION reminder.invalidate_rule_cache() IS
'statement trigger on the tables compiled rules depend on: makes every backend drop them at commit';

CREATE TRIGGER rule_cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reminder.rule
    FOR EACH STATEMENT EXECUTE FUNCTION reminder.invalidate_rule_cache();
CREATE TRIGGER rule_cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reminder.channel
    FOR EACH STATEMENT EXECUTE FUNCTION reminder.invalidate_rule_cache();
CREATE TRIGGER rule_cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reminder.template
    FOR EACH STATEMENT EXECUTE FUNCTION reminder.invalidate_rule_cache();
CREATE TRIGGER rule_cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reminder.calendar
    FOR EACH STATEMENT EXECUTE FUNCTION reminder.invalidate_rule_cache();
CREATE TRIGGER rule_cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reminder.holiday
    FOR EACH STATEMENT EXECUTE FUNCTION reminder.invalidate_rule_cache();
COMMENT ON TRIGGER rule_cache_invalidate ON reminder.rule IS 'backends recompile rules after a change';
COMMENT ON TRIGGER rule_cache_invalidate ON reminder.channel IS 'backends reload channels used by rules after a change';
COMMENT ON TRIGGER rule_cache_invalidate ON reminder.template IS 'backends reload templates used by rules after a change';
COMMENT ON TRIGGER rule_cache_invalidate ON reminder.calendar IS 'backends reload business calendars after a change';
COMMENT ON TRIGGER rule_cache_invalidate ON reminder.holiday IS 'backends reload business calendars after a change';

-- ---------------------------------------------------------------------------
-- DDL on watched tables.  DROP TABLE (or dropping a rule's trigger) removes
-- the rule and cancels its pending messages; renaming the table or a column
-- rewrites the rule's expressions.  Dropping a column or a function a rule
-- uses is refused by the dependencies watch() records on its triggers.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.watch_sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'reminder_watch_sql_drop'
LANGUAGE C;
COMMENT ON FUNCTION reminder.watch_sql_drop() IS
'removes rules whose table or trigger was dropped, cancelling their pending messages';

CREATE FUNCTION reminder.watch_ddl_end()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'reminder_watch_ddl_end'
LANGUAGE C;
COMMENT ON FUNCTION reminder.watch_ddl_end() IS
'rewrites the expressions of rules on a table whose name or column names changed';

CREATE EVENT TRIGGER reminder_watch_sql_drop ON sql_drop
    EXECUTE FUNCTION reminder.watch_sql_drop();
CREATE EVENT TRIGGER reminder_watch_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION reminder.watch_ddl_end();
COMMENT ON EVENT TRIGGER reminder_watch_sql_drop IS 'removes rules whose table or trigger was dropped';
COMMENT ON EVENT TRIGGER reminder_watch_ddl_end IS 'keeps rules in step with renamed tables and columns';

REVOKE ALL ON reminder.survey_log FROM PUBLIC;
GRANT SELECT ON reminder.rule, reminder.calendar, reminder.holiday TO reminder_user;
GRANT INSERT, UPDATE, DELETE ON reminder.calendar, reminder.holiday TO reminder_admin;
GRANT EXECUTE ON FUNCTION reminder.is_business_day(date, text),
                          reminder.add_business_days(timestamptz, integer, text, text)
    TO reminder_user;
-- A table owner restoring a dump creates the triggers again.
GRANT EXECUTE ON FUNCTION reminder.watch_trigger() TO reminder_admin;
GRANT EXECUTE ON FUNCTION reminder.watch(regclass, text, text, text, interval[], text, text, jsonb, text, text[], jsonb, text, boolean, text, interval, text, text, text[], boolean),
                          reminder.unwatch(text, boolean)
    TO reminder_admin;
-- ---------------------------------------------------------------------------
-- Signed action links and what comes back through them: link use, provider
-- callbacks and survey answers.  See docs/links.md.
--
-- The functions that take a token are what an untrusted web endpoint
-- calls.  They get a role of their own, reminder_web, that may call them
-- and nothing else: not even read a message.
-- ---------------------------------------------------------------------------

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'reminder_web') THEN
        CREATE ROLE reminder_web NOLOGIN;
        COMMENT ON ROLE reminder_web IS 'may pass link tokens to reminder.record_event() and reminder.record_response(), and nothing else';
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA reminder TO reminder_web;

-- Per-database HMAC keys.  No role but the extension's owner can read this
-- table; reminder_admin rotates keys through rotate_signing_key() and sees
-- their ids in reminder.signing_keys.
CREATE TABLE reminder.signing_key (
    id          integer PRIMARY KEY CONSTRAINT signing_key_id_positive CHECK (id > 0),
    key         bytea NOT NULL CONSTRAINT signing_key_length CHECK (length(key) = 32),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE reminder.signing_key IS 'HMAC-SHA256 keys of signed links; the newest signs, all verify; readable only by the extension owner';
COMMENT ON COLUMN reminder.signing_key.id IS 'random key id carried in every token';
REVOKE ALL ON reminder.signing_key FROM PUBLIC;

CREATE VIEW reminder.signing_keys AS
    SELECT id, created_at, id = first_value(id) OVER (ORDER BY created_at DESC, id DESC) AS signing
    FROM reminder.signing_key;
COMMENT ON VIEW reminder.signing_keys IS 'the link signing keys without their secret bytes: id, age, and which one signs new links';

CREATE FUNCTION reminder.rotate_signing_key(revoke_previous boolean DEFAULT false)
RETURNS integer
AS 'MODULE_PATHNAME', 'reminder_rotate_signing_key'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.rotate_signing_key(boolean) IS
'makes a new random link signing key that signs from now on and returns its id; earlier keys still verify links already sent unless revoke_previous, which deletes them';

-- The key every database starts with.
SELECT reminder.rotate_signing_key();

CREATE FUNCTION reminder.link_token(message_id bigint, action text, score integer DEFAULT NULL,
                                    expires_at timestamptz DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'reminder_link_token'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.link_token(bigint, text, integer, timestamptz) IS
'a signed token for a message: action confirm, decline, reschedule, unsubscribe, score (with a score 0..10), survey, open or callback; expires after reminder.link_ttl unless expires_at is given';

CREATE FUNCTION reminder.token_info(token text,
                                    OUT message_id bigint, OUT action text,
                                    OUT score integer, OUT expires_at timestamptz)
AS 'MODULE_PATHNAME', 'reminder_token_info'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.token_info(text) IS
'verifies a link token and says what it is for, recording nothing: for a landing page that asks for a comment before reminder.record_response()';

-- Some events happen once per message: using the link again returns the
-- event recorded the first time (a survey answer is updated instead).
CREATE UNIQUE INDEX event_once_idx ON reminder.event (message_id, kind)
    WHERE kind IN ('confirmed', 'declined', 'reschedule_requested', 'unsubscribed', 'answered');

CREATE FUNCTION reminder.record_event(token text, kind text DEFAULT NULL, detail jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_record_event'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.record_event(text, text, jsonb) IS
'records link use or a provider callback for the message the token names and returns the event id; the token decides which kinds are allowed (NULL: the link''s own kind). Forged, altered or expired tokens: SQLSTATE 28000, malformed: 22023, nothing recorded';

CREATE FUNCTION reminder.record_response(token text, score integer DEFAULT NULL, comment text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'reminder_record_response'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.record_response(text, integer, text) IS
'records (or updates) the survey answer of the message a score or survey token names: score 0..10 (NULL: the score in the link) and an optional comment; returns the event id';

CREATE FUNCTION reminder.nps(template text DEFAULT NULL, rule_id bigint DEFAULT NULL,
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
      JOIN reminder.message m ON m.id = e.message_id
     WHERE e.kind = 'answered' AND e.score IS NOT NULL
       AND ($1 IS NULL OR m.template = $1)
       AND ($2 IS NULL OR m.rule_id = $2)
       AND ($3 IS NULL OR e.occurred_at >= $3)
       AND ($4 IS NULL OR e.occurred_at < $4);
    nps := CASE WHEN responses > 0
                THEN round(100.0 * (promoters - detractors) / responses, 1) END;
END
$$;
COMMENT ON FUNCTION reminder.nps(text, bigint, timestamptz, timestamptz) IS
'survey answers of messages made from a template and/or by a rule, answered in [since, until): responses, promoters (9-10), passives (7-8), detractors (0-6) and NPS = %promoters - %detractors (NULL without answers)';

GRANT SELECT ON reminder.signing_keys TO reminder_admin;
GRANT EXECUTE ON FUNCTION reminder.rotate_signing_key(boolean),
                          reminder.link_token(bigint, text, integer, timestamptz)
    TO reminder_admin;
GRANT EXECUTE ON FUNCTION reminder.record_event(text, text, jsonb),
                          reminder.record_response(text, integer, text),
                          reminder.token_info(text)
    TO reminder_web, reminder_user;
GRANT EXECUTE ON FUNCTION reminder.nps(text, bigint, timestamptz, timestamptz) TO reminder_user;

CREATE FUNCTION reminder.preview_links(message_id bigint DEFAULT 0)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'reminder_preview_links'
LANGUAGE C VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION reminder.preview_links(bigint) IS
'the "links" object templates see (confirm, decline, reschedule, unsubscribe, survey, open, callback, scores, score), with preview tokens that never verify; NULL while reminder.link_base_url is empty';

GRANT EXECUTE ON FUNCTION reminder.preview_links(bigint) TO reminder_user;
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
      FROM reminder.message m
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
      JOIN reminder.message m ON m.id = e.message_id
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
               SELECT 'sha256:' || encode(reminder._address_hash('email', e), 'hex')
                 FROM unnest(emails) e WHERE s.recipient_id IS NOT NULL OR s.address = e
               UNION ALL
               SELECT 'sha256:' || encode(reminder._address_hash('phone', p), 'hex')
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

    -- Finished messages whose last change and last event are older than
    -- the cutoff; rows the worker holds are left for the next run.
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
    DELETE FROM reminder.message WHERE id = ANY (mids);
    GET DIAGNOSTICS n_messages = ROW_COUNT;

    RETURN QUERY VALUES
        ('messages', n_messages),
        ('attempts', n_attempts),
        ('events', n_events),
        ('log', n_log);
END
$$;
COMMENT ON FUNCTION reminder.purge(interval) IS
'deletes finished messages (sent, failed, cancelled, suppressed) not changed and without events for older_than, with their attempts, events and log rows; returns rows deleted per object. The worker runs it for reminder.retention';

GRANT EXECUTE ON FUNCTION reminder.forget(jsonb, boolean), reminder.purge(interval) TO reminder_admin;
-- ---------------------------------------------------------------------------
-- pg_dump: tables that hold the user's data are "configuration tables", so
-- a dump of a database with the extension keeps their rows (and their
-- identity sequences' positions), not only CREATE EXTENSION.  A part that
-- adds a table of user data marks it here.
--
-- reminder.signing_key is dumped too, so links already sent still verify
-- after a restore; the restored database also gets the fresh key made at
-- its CREATE EXTENSION, which, being newer, signs from then on.  Key ids
-- are random, so the two never collide.  A dump therefore holds secrets:
-- channel credentials and signing keys.
-- ---------------------------------------------------------------------------

-- One call per statement: each updates the same pg_extension row.
DO $dump$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['channel', 'channel_secret', 'template', 'recipient',
                             'message', 'attempt', 'event', 'log',
                             'consent', 'consent_log', 'signing_key',
                             'rule', 'calendar', 'holiday', 'survey_log'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(('reminder.' || t)::regclass, '');
    END LOOP;
    FOREACH t IN ARRAY ARRAY['recipient', 'message', 'attempt', 'event', 'log',
                             'consent', 'consent_log', 'rule'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(
            pg_catalog.pg_get_serial_sequence('reminder.' || t, 'id')::regclass, '');
    END LOOP;
END
$dump$;
-- ---------------------------------------------------------------------------
-- Privileges.  Functions are created executable by PUBLIC; nothing here is
-- meant for PUBLIC, so take that away now that every part has granted what
-- reminder_user and reminder_admin need.
-- ---------------------------------------------------------------------------

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA reminder FROM PUBLIC;
