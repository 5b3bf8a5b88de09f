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
