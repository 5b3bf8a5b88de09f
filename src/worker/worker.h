/*-------------------------------------------------------------------------
 *
 * worker/worker.h
 *	  Declarations of the worker family: shared memory, the launcher,
 *	  the per-database delivery loop, shared limits, waking at commit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef WORKER_WORKER_H
#define WORKER_WORKER_H

#include "reminder.h"

/* ----------------
 * in wakeup.c: waking the worker at commit
 * ----------------
 */
extern void wakeup_at_commit(TimestampTz due_at);

/* ----------------
 * in shmem.c: state shared with the background workers
 * ----------------
 */
typedef enum WorkerState
{
	WORKER_FREE = 0,			/* slot unused */
	WORKER_STARTING,			/* registered, not yet running */
	WORKER_RUNNING,				/* delivering */
	WORKER_STANDBY,				/* idle: the server is in recovery */
	WORKER_DISABLED,			/* idle: reminder.enabled is off */
	WORKER_OTHER_VERSION,		/* idle: the installed SQL is not this library's version */
	WORKER_STOPPING,			/* asked to exit (DROP DATABASE, DROP EXTENSION) */
	WORKER_NO_EXTENSION			/* exited: the extension is not installed */
} WorkerState;

/*
 * One per sender (delivery worker) running; a database has
 * reminder.workers_per_database of them.  The launcher hands them out.
 */
typedef struct WorkerSlot
{
	Oid			dboid;
	int			sender;			/* 0 .. workers_per_database - 1 */
	bool		retiring;		/* stopping: beyond workers_per_database */
	pid_t		pid;
	Latch	   *latch;			/* the worker's process latch */
	WorkerState state;
	TimestampTz started_at;
	TimestampTz last_loop;
	TimestampTz next_wake;		/* the worker sleeps until then at most */
	int			in_flight;
	int64		sent;
	int64		failed;
	int64		retried;
} WorkerSlot;

/*
 * A database whose worker must stay away for a while: DROP DATABASE, ALTER
 * DATABASE and CREATE DATABASE ... TEMPLATE need it to have no connection.
 */
typedef struct DatabaseHold
{
	Oid			dboid;			/* InvalidOid: entry unused */
	TimestampTz until;			/* the hold lapses then even if not released */
} DatabaseHold;

#define REMINDER_MAX_HOLDS	16

/* Most senders one database may have (reminder.workers_per_database). */
#define REMINDER_MAX_SENDERS	32

typedef struct ReminderShared
{
	LWLock	   *lock;			/* protects everything below */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	TimestampTz launcher_started_at;
	bool		rescan;			/* launcher should look for databases */
	Oid			retry_db;		/* a database it wrote off now has the extension */
	bool		retry_all;		/* ... several did: try them all again */
	DatabaseHold holds[REMINDER_MAX_HOLDS];
	int			nslots;
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} ReminderShared;

extern ReminderShared *reminder_shared;

extern void shmem_install_hooks(void);
extern WorkerSlot *shmem_find_slot(Oid dboid, int sender);
extern void shmem_wake_database(Oid dboid, TimestampTz due_at);
extern void shmem_wake_launcher(bool rescan);
extern void shmem_wake_launcher_for(Oid dboid);
extern bool shmem_stop_worker(Oid dboid, int timeout_ms);
extern void shmem_release_hold(Oid dboid);
extern bool shmem_database_held(Oid dboid);

/* ----------------
 * in limits.c: what the senders of a database share: the token buckets of
 * rate-limited channels and the transfers in flight per host
 * ----------------
 */
#define LIMITS_MAX_BUCKETS		256 /* rate-limited channels, all databases */
#define LIMITS_MAX_HOSTS		256 /* hosts in use, all databases */

extern void limits_shmem_request(void);
extern void limits_shmem_startup(void);
extern int	limits_bucket_take(const char *channel, double rate, TimestampTz now,
							   int want, double *left);
extern void limits_bucket_give_back(const char *channel, double rate, int n);
extern bool limits_host_add(const char *key, const char *channel, int delta,
							int max, int reserve, int *hint, bool *counted);
extern bool limits_host_has_room(const char *key, const char *channel,
								 int max, int reserve, int *hint);
extern int	limits_host_channel_load(const char *key, const char *channel, int *hint);

/* ----------------
 * in launcher.c: the launcher and the hook that keeps workers out of the
 * way of DROP/ALTER/CREATE DATABASE
 * ----------------
 */
extern void launcher_register(void);
extern void launcher_install_hooks(void);
extern PGDLLEXPORT void reminder_launcher_main(Datum main_arg);

/* ----------------
 * in worker.c: the per-database delivery loop
 * ----------------
 */
extern PGDLLEXPORT void reminder_worker_main(Datum main_arg);

#endif							/* WORKER_WORKER_H */
