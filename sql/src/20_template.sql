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
