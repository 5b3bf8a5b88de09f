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
'creates or replaces a channel; settings are validated for the kind; non-empty secrets replace the stored ones, ''{}'' keeps them while the channel connects where it did';

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
