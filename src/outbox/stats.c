/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Cumulative delivery counters per database, in shared memory: messages
 *	  the workers recorded as sent, failed (for good) and to be retried,
 *	  since the counters were last reset.  Unlike the counters of
 *	  worker_status(), which belong to one worker's run, these outlive a
 *	  worker's restart; like pg_stat_statements' entries they are written to
 *	  pg_stat/reminder.stat at a clean shutdown and read back at start, and
 *	  after a crash they start again from zero, as the server's own
 *	  cumulative statistics do.
 *
 *	  SQL: reminder.delivery_counters() shows every database's,
 *	  reminder.stats_reset() resets the current database's (stats_reset is
 *	  when that happened, or when the database's first delivery was
 *	  counted).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "outbox/outbox.h"

PG_FUNCTION_INFO_V1(reminder_delivery_counters);
PG_FUNCTION_INFO_V1(reminder_stats_reset);

#define STATS_FILE			PGSTAT_STAT_PERMANENT_DIRECTORY "/reminder.stat"
#define STATS_FILE_MAGIC	0x52454d31	/* "REM1" */
#define STATS_FILE_VERSION	1

typedef struct DeliveryCounters
{
	Oid			dboid;			/* InvalidOid: entry unused */
	int64		sent;
	int64		failed;
	int64		retried;
	TimestampTz stats_reset;	/* counting since */
	TimestampTz last_counted;	/* the least recently counted goes first */
} DeliveryCounters;

typedef struct StatsShared
{
	LWLock	   *lock;			/* protects everything below */
	int			nentries;
	DeliveryCounters entries[FLEXIBLE_ARRAY_MEMBER];
} StatsShared;

static StatsShared *stats_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Databases served at once are bounded by the worker slots; twice that
 * leaves room for databases that were served earlier.
 */
static int
stats_entry_count(void)
{
	return Max(2 * max_worker_processes, 32);
}

static Size
stats_size(void)
{
	return add_size(offsetof(StatsShared, entries),
					mul_size(stats_entry_count(), sizeof(DeliveryCounters)));
}

/* ----------------------------------------------------------------
 * Saved at shutdown, loaded at start
 * ----------------------------------------------------------------
 */

static void
stats_load(void)
{
	FILE	   *file;
	uint32		header[2];
	int32		n;
	int			kept = 0;

	file = AllocateFile(STATS_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", STATS_FILE)));
		return;
	}

	if (fread(header, sizeof(header), 1, file) != 1 ||
		header[0] != STATS_FILE_MAGIC || header[1] != STATS_FILE_VERSION ||
		fread(&n, sizeof(n), 1, file) != 1 || n < 0)
		goto bad;

	for (int i = 0; i < n; i++)
	{
		DeliveryCounters e;

		if (fread(&e, sizeof(e), 1, file) != 1)
			goto bad;
		if (!OidIsValid(e.dboid))
			continue;
		if (kept < stats_shared->nentries)
			stats_shared->entries[kept++] = e;
		else
		{
			/* fewer entries than when saved: keep the most recently counted */
			int			oldest = 0;

			for (int j = 1; j < kept; j++)
				if (stats_shared->entries[j].last_counted <
					stats_shared->entries[oldest].last_counted)
					oldest = j;
			if (e.last_counted > stats_shared->entries[oldest].last_counted)
				stats_shared->entries[oldest] = e;
		}
	}
	FreeFile(file);

	/* written anew at the next clean shutdown; after a crash, start over */
	unlink(STATS_FILE);
	return;

bad:
	ereport(LOG,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("ignoring invalid reminder statistics file \"%s\"", STATS_FILE)));
	memset(stats_shared->entries, 0, stats_shared->nentries * sizeof(DeliveryCounters));
	FreeFile(file);
	unlink(STATS_FILE);
}

/* on_shmem_exit of the postmaster: save the counters, unless crashing */
static void
stats_save(int code, Datum arg)
{
	const char *tmpfile = STATS_FILE ".tmp";
	FILE	   *file;
	uint32		header[2] = {STATS_FILE_MAGIC, STATS_FILE_VERSION};
	int32		n = 0;

	if (code != 0 || stats_shared == NULL)
		return;

	for (int i = 0; i < stats_shared->nentries; i++)
		if (OidIsValid(stats_shared->entries[i].dboid))
			n++;

	file = AllocateFile(tmpfile, PG_BINARY_W);
	if (file == NULL)
		goto error;
	if (fwrite(header, sizeof(header), 1, file) != 1 ||
		fwrite(&n, sizeof(n), 1, file) != 1)
		goto error;
	for (int i = 0; i < stats_shared->nentries; i++)
	{
		DeliveryCounters *e = &stats_shared->entries[i];

		if (OidIsValid(e->dboid) && fwrite(e, sizeof(*e), 1, file) != 1)
			goto error;
	}
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(tmpfile, STATS_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", tmpfile)));
	if (file)
		FreeFile(file);
	unlink(tmpfile);
}

static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(stats_size());
	RequestNamedLWLockTranche("reminder stats", 1);
}

static void
stats_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats_shared = ShmemInitStruct("reminder stats", stats_size(), &found);
	if (!found)
	{
		memset(stats_shared, 0, stats_size());
		stats_shared->lock = &(GetNamedLWLockTranche("reminder stats"))->lock;
		stats_shared->nentries = stats_entry_count();
	}
	LWLockRelease(AddinShmemInitLock);

	/* the postmaster saves them when it exits */
	if (!IsUnderPostmaster)
		on_shmem_exit(stats_save, (Datum) 0);
	if (!found)
		stats_load();
}

void
stats_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/* ----------------------------------------------------------------
 * Counting
 * ----------------------------------------------------------------
 */

/*
 * The entry of dboid, made if missing (taking the place of the least
 * recently counted database when all are in use).  Caller holds the lock
 * exclusively.
 */
static DeliveryCounters *
stats_entry(Oid dboid, TimestampTz now)
{
	DeliveryCounters *free_entry = NULL;
	DeliveryCounters *oldest = NULL;

	for (int i = 0; i < stats_shared->nentries; i++)
	{
		DeliveryCounters *e = &stats_shared->entries[i];

		if (e->dboid == dboid)
			return e;
		if (!OidIsValid(e->dboid))
		{
			if (free_entry == NULL)
				free_entry = e;
		}
		else if (oldest == NULL || e->last_counted < oldest->last_counted)
			oldest = e;
	}
	if (free_entry == NULL)
	{
		ereport(LOG,
				(errmsg("reminder: delivery counters of database %u dropped to count database %u",
						oldest->dboid, dboid)));
		free_entry = oldest;
	}
	memset(free_entry, 0, sizeof(DeliveryCounters));
	free_entry->dboid = dboid;
	free_entry->stats_reset = now;
	free_entry->last_counted = now;
	return free_entry;
}

/* A worker recorded deliveries of its database. */
void
stats_count(int64 sent, int64 failed, int64 retried)
{
	DeliveryCounters *e;
	TimestampTz now;

	if (stats_shared == NULL || (sent == 0 && failed == 0 && retried == 0))
		return;

	now = GetCurrentTimestamp();
	LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
	e = stats_entry(MyDatabaseId, now);
	e->sent += sent;
	e->failed += failed;
	e->retried += retried;
	e->last_counted = now;
	LWLockRelease(stats_shared->lock);
}

/* ----------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------
 */

/*
 * reminder.delivery_counters(): database, sent, failed, retried,
 * stats_reset; one row per database counted (dropped ones left out).
 */
Datum
reminder_delivery_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DeliveryCounters *copy;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (stats_shared == NULL)
		PG_RETURN_VOID();

	copy = palloc(stats_shared->nentries * sizeof(DeliveryCounters));
	LWLockAcquire(stats_shared->lock, LW_SHARED);
	for (int i = 0; i < stats_shared->nentries; i++)
		if (OidIsValid(stats_shared->entries[i].dboid))
			copy[n++] = stats_shared->entries[i];
	LWLockRelease(stats_shared->lock);

	for (int i = 0; i < n; i++)
	{
		char	   *dbname = get_database_name(copy[i].dboid);
		NameData   *nm;
		Datum		values[5];
		bool		nulls[5] = {false};

		if (dbname == NULL)
			continue;
		nm = palloc0(sizeof(NameData));
		namestrcpy(nm, dbname);
		values[0] = NameGetDatum(nm);
		values[1] = Int64GetDatum(copy[i].sent);
		values[2] = Int64GetDatum(copy[i].failed);
		values[3] = Int64GetDatum(copy[i].retried);
		values[4] = TimestampTzGetDatum(copy[i].stats_reset);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* reminder.stats_reset(): the current database's counters start from zero. */
Datum
reminder_stats_reset(PG_FUNCTION_ARGS)
{
	DeliveryCounters *e;
	TimestampTz now = GetCurrentTimestamp();

	if (stats_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("reminder delivery counters are not kept"),
				 errdetail("The counters live in shared memory, set up when the library is preloaded."),
				 errhint("Add reminder to shared_preload_libraries in postgresql.conf and restart the server.")));

	LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
	e = stats_entry(MyDatabaseId, now);
	e->sent = 0;
	e->failed = 0;
	e->retried = 0;
	e->stats_reset = now;
	LWLockRelease(stats_shared->lock);
	PG_RETURN_VOID();
}
