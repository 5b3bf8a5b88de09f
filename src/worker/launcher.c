/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: one background worker, connected to no database, that
 *	  starts a delivery worker (worker.c) for every database where the
 *	  extension is installed.
 *
 *	  Each database gets reminder.workers_per_database senders (worker.c,
 *	  numbered from 0); they share the outbox through SKIP LOCKED and their
 *	  limits through limits.c.  Lowering the setting makes the senders
 *	  beyond it leave; raising it starts more.
 *
 *	  Like PostgreSQL's logical replication launcher it reads pg_database, a
 *	  shared catalog, and needs no database-name setting.  It cannot see
 *	  pg_extension of other databases, so it starts a worker for every
 *	  database that accepts connections; a worker that finds no extension
 *	  exits at once, and the launcher writes that database off until
 *	  CREATE EXTENSION there asks it to look again (reminder._on_create()),
 *	  or a slow timer does.  Workers that exit otherwise are restarted
 *	  after a second.
 *
 *	  Also here: the ProcessUtility hook that makes a worker step aside for
 *	  DROP DATABASE, ALTER DATABASE ... RENAME / SET TABLESPACE and CREATE
 *	  DATABASE ... TEMPLATE, which all fail while anyone is connected; and
 *	  the SQL functions reminder._on_create() and reminder.worker_status().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "reminder.h"
#include "worker/worker.h"

PG_FUNCTION_INFO_V1(reminder_on_create);
PG_FUNCTION_INFO_V1(reminder_worker_status);

#define LAUNCHER_NAP_MS			1000	/* longest sleep between two looks */
#define WORKER_RESTART_MS		1000	/* after a worker exits */
#define FORGET_LACKING_MS		(10 * 60 * 1000)	/* look again at written-off databases */
#define STEP_ASIDE_TIMEOUT_MS	10000	/* DROP DATABASE waits this long for the worker */

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* launcher-local state */
typedef struct DatabaseEntry
{
	Oid			dboid;
	char		name[NAMEDATALEN];
} DatabaseEntry;

typedef struct Backoff
{
	Oid			dboid;
	TimestampTz until;
} Backoff;

static BackgroundWorkerHandle **handles = NULL;	/* by slot number */
static List *lacking = NIL;		/* Oids of databases without the extension */
static List *backoffs = NIL;	/* of Backoff *: restart not before */
static List *retried = NIL;		/* of Backoff *: when CREATE EXTENSION asked to look */
static TimestampTz retried_all_at = 0;
static bool warned_no_slot = false;

void
launcher_register(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* runs on a hot standby too, where its workers stay idle */
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "reminder");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "reminder_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "reminder launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "reminder launcher");
	RegisterBackgroundWorker(&bgw);
}

/* ----------------------------------------------------------------
 * Launcher
 * ----------------------------------------------------------------
 */

static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	if (reminder_shared->launcher_pid == MyProcPid)
	{
		reminder_shared->launcher_pid = 0;
		reminder_shared->launcher_latch = NULL;
	}
	LWLockRelease(reminder_shared->lock);
}

/* Databases a worker may connect to, allocated in the current context. */
static List *
list_databases(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		DatabaseEntry *e;
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db))
			continue;
		old = MemoryContextSwitchTo(cxt);
		e = palloc(sizeof(DatabaseEntry));
		e->dboid = db->oid;
		strlcpy(e->name, NameStr(db->datname), NAMEDATALEN);
		result = lappend(result, e);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	CommitTransactionCommand();
	return result;
}

static void
add_backoff(Oid dboid, TimestampTz until)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	Backoff    *b = palloc(sizeof(Backoff));

	b->dboid = dboid;
	b->until = until;
	backoffs = lappend(backoffs, b);
	MemoryContextSwitchTo(old);
}

/* Restart of dboid not before; 0 if now is fine.  Drops lapsed entries. */
static TimestampTz
backoff_until(Oid dboid, TimestampTz now)
{
	ListCell   *lc;
	TimestampTz until = 0;

	foreach(lc, backoffs)
	{
		Backoff    *b = lfirst(lc);

		if (b->until <= now)
		{
			backoffs = foreach_delete_current(backoffs, lc);
			pfree(b);
		}
		else if (b->dboid == dboid)
			until = b->until;
	}
	return until;
}

/*
 * Note that CREATE EXTENSION in dboid (InvalidOid: in some database) asked
 * to look again.  A worker that started before then may have looked for
 * the extension before it committed: its "no extension" proves nothing.
 */
static void
note_retry(Oid dboid, TimestampTz now)
{
	ListCell   *lc;
	Backoff    *r;
	MemoryContext old;

	if (!OidIsValid(dboid))
	{
		retried_all_at = now;
		return;
	}
	foreach(lc, retried)
	{
		r = lfirst(lc);
		if (r->dboid == dboid)
		{
			r->until = now;
			return;
		}
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	r = palloc(sizeof(Backoff));
	r->dboid = dboid;
	r->until = now;
	retried = lappend(retried, r);
	MemoryContextSwitchTo(old);
}

/* Whether a worker of dboid started at started_at may have missed a CREATE EXTENSION. */
static bool
started_before_retry(Oid dboid, TimestampTz started_at)
{
	ListCell   *lc;

	if (started_at <= retried_all_at)
		return true;
	foreach(lc, retried)
	{
		Backoff    *r = lfirst(lc);

		if (r->dboid == dboid)
			return started_at <= r->until;
	}
	return false;
}

/* Free the slots of workers that have exited, and learn why they did. */
static void
reap_workers(TimestampTz now)
{
	for (int i = 0; i < reminder_shared->nslots; i++)
	{
		WorkerSlot *slot = &reminder_shared->slots[i];
		bool		exited;
		Oid			dboid;
		WorkerState state;
		TimestampTz started_at;

		LWLockAcquire(reminder_shared->lock, LW_SHARED);
		state = slot->state;
		dboid = slot->dboid;
		exited = (state != WORKER_FREE && handles[i] == NULL && slot->pid == 0);
		LWLockRelease(reminder_shared->lock);

		if (state == WORKER_FREE)
			continue;
		if (handles[i] != NULL)
		{
			pid_t		pid;

			exited = (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED);
		}
		if (!exited)
			continue;

		LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
		state = slot->state;
		started_at = slot->started_at;
		memset(slot, 0, sizeof(WorkerSlot));
		LWLockRelease(reminder_shared->lock);
		if (handles[i])
			pfree(handles[i]);
		handles[i] = NULL;

		if (state == WORKER_NO_EXTENSION && !started_before_retry(dboid, started_at))
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			lacking = list_append_unique_oid(lacking, dboid);
			MemoryContextSwitchTo(old);
		}
		else
			add_backoff(dboid, TimestampTzPlusMilliseconds(now, WORKER_RESTART_MS));
	}
}

/* Start sender number sender of a database. */
static void
start_sender(DatabaseEntry *db, int sender)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	int			slotno = -1;

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	if (shmem_find_slot(db->dboid, sender) == NULL && !shmem_database_held(db->dboid))
	{
		for (int i = 0; i < reminder_shared->nslots; i++)
		{
			WorkerSlot *slot = &reminder_shared->slots[i];

			if (slot->state == WORKER_FREE && handles[i] == NULL)
			{
				memset(slot, 0, sizeof(WorkerSlot));
				slot->dboid = db->dboid;
				slot->sender = sender;
				slot->state = WORKER_STARTING;
				slotno = i;
				break;
			}
		}
	}
	LWLockRelease(reminder_shared->lock);
	if (slotno < 0)
		return;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "reminder");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "reminder_worker_main");
	if (sender == 0)
		snprintf(bgw.bgw_name, BGW_MAXLEN, "reminder worker for database %s", db->name);
	else
		snprintf(bgw.bgw_name, BGW_MAXLEN, "reminder worker %d for database %s",
				 sender + 1, db->name);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "reminder worker");
	bgw.bgw_main_arg = ObjectIdGetDatum(db->dboid);
	memcpy(bgw.bgw_extra, &slotno, sizeof(int));
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
	{
		LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
		memset(&reminder_shared->slots[slotno], 0, sizeof(WorkerSlot));
		LWLockRelease(reminder_shared->lock);
		if (!warned_no_slot)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start reminder worker %d of %d for database \"%s\"",
							sender + 1, reminder_workers_per_database, db->name),
					 errdetail("All background worker slots are in use."),
					 errhint("Raise max_worker_processes: reminder needs one for its launcher and reminder.workers_per_database (%d) for every database with the extension, besides those of parallel queries and other extensions.",
							 reminder_workers_per_database)));
		warned_no_slot = true;
		add_backoff(db->dboid, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 5 * WORKER_RESTART_MS));
		return;
	}
	warned_no_slot = false;
	handles[slotno] = handle;
}

/* Start the senders of a database that are not running. */
static void
start_senders(DatabaseEntry *db)
{
	for (int sender = 0; sender < reminder_workers_per_database; sender++)
		start_sender(db, sender);
}

/*
 * Ask senders beyond reminder.workers_per_database (lowered by a reload)
 * to leave: they finish what is in flight, give back what they claimed
 * and have not started, and are not restarted.
 */
static void
stop_extra_senders(void)
{
	Latch	   *latches[64];
	int			n = 0;

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < reminder_shared->nslots; i++)
	{
		WorkerSlot *slot = &reminder_shared->slots[i];

		if (slot->state == WORKER_FREE || slot->state == WORKER_STOPPING ||
			slot->sender < reminder_workers_per_database)
			continue;
		slot->state = WORKER_STOPPING;
		slot->retiring = true;
		if (slot->latch && n < lengthof(latches))
			latches[n++] = slot->latch;
	}
	LWLockRelease(reminder_shared->lock);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

void
reminder_launcher_main(Datum main_arg)
{
	MemoryContext loop_cxt;
	TimestampTz forget_at;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (reminder_shared == NULL)
		elog(ERROR, "reminder shared memory is not initialized");

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	reminder_shared->launcher_pid = MyProcPid;
	reminder_shared->launcher_latch = MyLatch;
	reminder_shared->launcher_started_at = GetCurrentTimestamp();
	reminder_shared->rescan = true;
	LWLockRelease(reminder_shared->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);

	/* shared catalogs only */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("reminder launcher");

	handles = MemoryContextAllocZero(TopMemoryContext,
									 reminder_shared->nslots * sizeof(BackgroundWorkerHandle *));
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "reminder launcher loop",
									 ALLOCSET_DEFAULT_SIZES);
	forget_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), FORGET_LACKING_MS);

	ereport(LOG, (errmsg("reminder launcher started")));

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		nap = LAUNCHER_NAP_MS;
		List	   *databases;
		ListCell   *lc;
		Oid			retry_db;
		bool		retry_all;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
		retry_db = reminder_shared->retry_db;
		retry_all = reminder_shared->retry_all;
		reminder_shared->rescan = false;
		reminder_shared->retry_db = InvalidOid;
		reminder_shared->retry_all = false;
		LWLockRelease(reminder_shared->lock);

		if (retry_all || now >= forget_at)
		{
			list_free(lacking);
			lacking = NIL;
			forget_at = TimestampTzPlusMilliseconds(now, FORGET_LACKING_MS);
		}
		else if (OidIsValid(retry_db))
			lacking = list_delete_oid(lacking, retry_db);
		if (retry_all)
			note_retry(InvalidOid, now);
		else if (OidIsValid(retry_db))
			note_retry(retry_db, now);

		reap_workers(now);
		stop_extra_senders();

		/* cheap (a few rows of a shared catalog): look every time */
		databases = list_databases();
		foreach(lc, databases)
		{
			DatabaseEntry *db = lfirst(lc);
			TimestampTz until;

			if (list_member_oid(lacking, db->dboid))
				continue;
			until = backoff_until(db->dboid, now);
			if (until > now)
			{
				long		secs;
				int			usecs;

				TimestampDifference(now, until, &secs, &usecs);
				nap = Min(nap, secs * 1000 + (usecs + 999) / 1000);
				continue;
			}
			start_senders(db);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(nap, 1), PG_WAIT_EXTENSION);
	}
}

/* ----------------------------------------------------------------
 * Stepping aside for DROP / ALTER / CREATE DATABASE
 * ----------------------------------------------------------------
 */

static Oid
database_oid(const char *name)
{
	return name ? get_database_oid(name, true) : InvalidOid;
}

static DefElem *
find_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, name) == 0)
			return opt;
	}
	return NULL;
}

/* The database whose worker is in the way of this statement, if any. */
static Oid
database_in_the_way(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			return database_oid(((DropdbStmt *) parsetree)->dbname);
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				if (stmt->renameType == OBJECT_DATABASE)
					return database_oid(stmt->subname);
				break;
			}
		case T_AlterDatabaseStmt:
			{
				AlterDatabaseStmt *stmt = (AlterDatabaseStmt *) parsetree;

				if (find_option(stmt->options, "tablespace"))
					return database_oid(stmt->dbname);
				break;
			}
		case T_CreatedbStmt:
			{
				DefElem    *opt = find_option(((CreatedbStmt *) parsetree)->options, "template");

				if (opt && opt->arg)
					return database_oid(defGetString(opt));
				break;
			}
		default:
			break;
	}
	return InvalidOid;
}

static bool
drops_our_extension(Node *parsetree)
{
	DropStmt   *stmt;
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt))
		return false;
	stmt = (DropStmt *) parsetree;
	if (stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, stmt->objects)
		if (strcmp(strVal(lfirst(lc)), REMINDER_EXTENSION) == 0)
			return true;
	return false;
}

static void
reminder_process_utility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			dboid = database_in_the_way(parsetree);

	/* the worker notices at once, once the drop commits */
	if (drops_our_extension(parsetree))
		wakeup_at_commit(DT_NOBEGIN);

	if (OidIsValid(dboid) && !shmem_stop_worker(dboid, STEP_ASIDE_TIMEOUT_MS))
		ereport(WARNING,
				(errmsg("reminder worker of database %u did not exit in time", dboid)));

	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(dboid))
			shmem_release_hold(dboid);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* a dropped database needs no worker: let that hold lapse */
	if (OidIsValid(dboid) && !IsA(parsetree, DropdbStmt))
		shmem_release_hold(dboid);
}

void
launcher_install_hooks(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = reminder_process_utility;
}

/* ----------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------
 */

static bool create_callback_registered = false;
static bool create_pending = false;

static void
on_create_xact_callback(XactEvent event, void *arg)
{
	if (!create_pending)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* CREATE EXTENSION hides notices of its script: say it now */
			if (!reminder_preloaded)
				ereport(NOTICE,
						(errmsg("reminder messages will not be delivered until the library is preloaded"),
						 errhint("Add reminder to shared_preload_libraries in postgresql.conf and restart the server.")));
			break;
		case XACT_EVENT_COMMIT:
			if (reminder_preloaded)
				shmem_wake_launcher_for(MyDatabaseId);
			create_pending = false;
			break;
		case XACT_EVENT_ABORT:
			create_pending = false;
			break;
		default:
			break;
	}
}

/*
 * Called by the install script.  When CREATE EXTENSION commits: without
 * the library preloaded there is no worker, so say so; otherwise ask the
 * launcher to serve this database.
 */
Datum
reminder_on_create(PG_FUNCTION_ARGS)
{
	if (!create_callback_registered)
	{
		RegisterXactCallback(on_create_xact_callback, NULL);
		create_callback_registered = true;
	}
	create_pending = true;
	PG_RETURN_VOID();
}

static const char *
state_name(WorkerState state)
{
	switch (state)
	{
		case WORKER_FREE:
			return "free";
		case WORKER_STARTING:
			return "starting";
		case WORKER_RUNNING:
			return "running";
		case WORKER_STANDBY:
			return "standby";
		case WORKER_DISABLED:
			return "disabled";
		case WORKER_OTHER_VERSION:
			return "waiting for ALTER EXTENSION UPDATE";
		case WORKER_STOPPING:
			return "stopping";
		case WORKER_NO_EXTENSION:
			return "no extension";
	}
	return "unknown";
}

/*
 * One row for the launcher, one per database worker (sender): database,
 * pid, state, started_at, last_loop, in_flight, sent, failed, retried,
 * sender (from 1).  Before ALTER EXTENSION UPDATE the SQL function may
 * declare fewer columns: the tuplestore takes the first of these.
 */
Datum
reminder_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WorkerSlot *copy;
	int			n = 0;
	pid_t		launcher_pid;
	TimestampTz launcher_started_at;
	Datum		values[10];
	bool		nulls[10];

	InitMaterializedSRF(fcinfo, 0);
	if (reminder_shared == NULL)
		PG_RETURN_VOID();

	copy = palloc(reminder_shared->nslots * sizeof(WorkerSlot));
	LWLockAcquire(reminder_shared->lock, LW_SHARED);
	launcher_pid = reminder_shared->launcher_pid;
	launcher_started_at = reminder_shared->launcher_started_at;
	for (int i = 0; i < reminder_shared->nslots; i++)
		if (reminder_shared->slots[i].state != WORKER_FREE)
			copy[n++] = reminder_shared->slots[i];
	LWLockRelease(reminder_shared->lock);

	if (launcher_pid != 0)
	{
		memset(nulls, true, sizeof(nulls));
		values[1] = Int32GetDatum(launcher_pid);
		nulls[1] = false;
		values[2] = CStringGetTextDatum("launcher");
		nulls[2] = false;
		values[3] = TimestampTzGetDatum(launcher_started_at);
		nulls[3] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	for (int i = 0; i < n; i++)
	{
		WorkerSlot *s = &copy[i];
		char	   *dbname = get_database_name(s->dboid);

		memset(nulls, false, sizeof(nulls));
		values[0] = dbname ? CStringGetDatum(dbname) : (Datum) 0;
		nulls[0] = (dbname == NULL);
		if (dbname)
		{
			NameData   *nm = palloc0(sizeof(NameData));

			namestrcpy(nm, dbname);
			values[0] = NameGetDatum(nm);
		}
		values[1] = Int32GetDatum(s->pid);
		nulls[1] = (s->pid == 0);
		values[2] = CStringGetTextDatum(state_name(s->state));
		values[3] = TimestampTzGetDatum(s->started_at);
		nulls[3] = (s->started_at == 0);
		values[4] = TimestampTzGetDatum(s->last_loop);
		nulls[4] = (s->last_loop == 0);
		values[5] = Int32GetDatum(s->in_flight);
		values[6] = Int64GetDatum(s->sent);
		values[7] = Int64GetDatum(s->failed);
		values[8] = Int64GetDatum(s->retried);
		values[9] = Int32GetDatum(s->sender + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
