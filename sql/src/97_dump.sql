-- ---------------------------------------------------------------------------
-- pg_dump: tables that hold the user's data are "configuration tables", so
-- a dump of a database with the extension keeps their rows (and their
-- identity sequences' positions), not only CREATE EXTENSION.  A part that
-- adds a table of user data marks it here.
--
-- The partitions the worker makes are no members of the extension: pg_dump
-- dumps them, rows and all, as tables attached to their parent.
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
                             'message', 'attempt', 'attempt_default',
                             'message_history', 'message_history_default', 'event', 'log',
                             'consent', 'consent_log', 'signing_key',
                             'rule', 'calendar', 'holiday', 'survey_log',
                             'digest', 'digest_item', 'invite'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(('reminder.' || t)::regclass, '');
    END LOOP;
    FOREACH t IN ARRAY ARRAY['recipient', 'message', 'attempt', 'event', 'log',
                             'consent', 'consent_log', 'rule', 'digest', 'digest_item'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(
            pg_catalog.pg_get_serial_sequence('reminder.' || t, 'id')::regclass, '');
    END LOOP;
END
$dump$;
