-- ---------------------------------------------------------------------------
-- Channel transports (email over SMTP, SMS gateways, Slack): what they add
-- to the outbox, and what they let one ask in advance.  See docs/channels.md.
-- ---------------------------------------------------------------------------

CREATE FUNCTION reminder.sms_segments(body text, transliterate boolean DEFAULT false,
                                      OUT encoding text, OUT units integer, OUT segments integer,
                                      OUT sms_text text)
AS 'MODULE_PATHNAME', 'reminder_sms_segments'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION reminder.sms_segments(text, boolean) IS
'what a text costs as an SMS, counted as the worker counts it: GSM-7 or UCS-2, septets or UTF-16 units, segments, and the text sent; transliterate as an SMS channel with "unicode": "transliterate" does';

GRANT EXECUTE ON FUNCTION reminder.sms_segments(text, boolean) TO reminder_user;
