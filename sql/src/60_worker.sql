-- ---------------------------------------------------------------------------
-- The background worker.  A launcher (library in shared_preload_libraries)
-- runs one worker per database where this extension is installed; see
-- docs/worker.md.
-- ---------------------------------------------------------------------------

-- Called once below: when CREATE EXTENSION commits, says (NOTICE) that nothing
-- will be delivered unless the library is preloaded, or asks the launcher
-- to start this database's worker.
CREATE FUNCTION reminder._on_create()
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_on_create'
LANGUAGE C;
COMMENT ON FUNCTION reminder._on_create() IS
'internal: run by CREATE EXTENSION to start this database''s worker';

SELECT reminder._on_create();

CREATE FUNCTION reminder.worker_status(
    OUT database name,
    OUT pid integer,
    OUT state text,
    OUT started_at timestamptz,
    OUT last_loop timestamptz,
    OUT in_flight integer,
    OUT sent bigint,
    OUT failed bigint,
    OUT retried bigint,
    OUT sender integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'reminder_worker_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reminder.worker_status() IS
'the launcher (database NULL) and every database''s workers (senders, numbered from 1; reminder.workers_per_database of them), from shared memory: state, in-flight transfers and counters since the worker started';

GRANT EXECUTE ON FUNCTION reminder.worker_status() TO reminder_user;

CREATE FUNCTION reminder.delivery_counters(
    OUT database name,
    OUT sent bigint,
    OUT failed bigint,
    OUT retried bigint,
    OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'reminder_delivery_counters'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reminder.delivery_counters() IS
'cumulative counts per database of messages the workers recorded as sent, failed and to be retried, since stats_reset: they outlive worker restarts and clean server restarts';

CREATE FUNCTION reminder.stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'reminder_stats_reset'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reminder.stats_reset() IS
'resets the current database''s delivery_counters() to zero and sets their stats_reset to now';

GRANT EXECUTE ON FUNCTION reminder.delivery_counters() TO reminder_user;
GRANT EXECUTE ON FUNCTION reminder.stats_reset() TO reminder_admin;
