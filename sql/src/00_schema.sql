-- reminder: reminders and notifications delivered from inside PostgreSQL.
--
-- This install script is assembled from sql/src/*.sql, one part per
-- responsibility.  Every object lives in schema "reminder".  Writes go
-- through the functions below (SECURITY DEFINER, search_path pinned), so the
-- two roles the extension creates need no direct write access to its tables:
--
--   reminder_admin  manages channels, secrets, templates, recipients, rules;
--   reminder_user   schedules messages and reads their state, never secrets.
--
-- reminder_admin is a member of reminder_user.

\echo Use "CREATE EXTENSION reminder" to load this file. \quit

CREATE SCHEMA reminder;
COMMENT ON SCHEMA reminder IS 'reminders and notifications: channels, templates, recipients, the message outbox and its audit trail';

-- Roles are cluster-wide and outlive the extension; create them once.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'reminder_user') THEN
        CREATE ROLE reminder_user NOLOGIN;
        COMMENT ON ROLE reminder_user IS 'may schedule reminder messages and read their state';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'reminder_admin') THEN
        CREATE ROLE reminder_admin NOLOGIN;
        COMMENT ON ROLE reminder_admin IS 'manages reminder channels, secrets, templates, recipients and rules';
    END IF;
    IF NOT pg_catalog.pg_has_role('reminder_admin', 'reminder_user', 'MEMBER') THEN
        GRANT reminder_user TO reminder_admin;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA reminder TO reminder_user;

-- Each part grants its own objects to the two roles; 99_privileges.sql then
-- takes EXECUTE away from PUBLIC on everything.
