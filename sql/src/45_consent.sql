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
COMMENT ON COLUMN reminder.consent.category IS 'the message category the statement covers (message.category: a rule''s category, or data->>''category''; else the template name); NULL covers every category';
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
