
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
