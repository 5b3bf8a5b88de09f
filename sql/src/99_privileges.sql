-- ---------------------------------------------------------------------------
-- Privileges.  Functions are created executable by PUBLIC; nothing here is
-- meant for PUBLIC, so take that away now that every part has granted what
-- reminder_user and reminder_admin need.
-- ---------------------------------------------------------------------------

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA reminder FROM PUBLIC;
