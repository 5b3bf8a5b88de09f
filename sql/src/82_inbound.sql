-- ---------------------------------------------------------------------------
-- Inbound replies: the SMS a recipient sends back, passed on by the web
-- endpoint that receives the provider's webhook.  STOP and START go to the
-- consent log; "1"/"TAK" and "2"/"NIE" confirm or decline the sender's
-- latest message; other text is recorded as a reply to it.  Rules see
-- what came back through has_event().  See docs/inbound.md.
-- ---------------------------------------------------------------------------

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
