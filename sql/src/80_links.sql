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
