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
