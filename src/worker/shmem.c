/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory for the launcher and the per-database workers: who
 *	  serves which database (reminder.workers_per_database senders each),
 *	  their latches and their counters.  What the senders of a database
 *	  share to keep limits together is in limits.c.
 *
 *	  Backends use it only to wake a worker when a message falls due
 *	  sooner than the worker planned to look, and to ask the launcher to
 *	  look for databases after CREATE EXTENSION.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "reminder.h"
#include "worker/worker.h"

ReminderShared *reminder_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* One slot per possible background worker is always enough. */
static int
shmem_slot_count(void)
{
	return Max(max_worker_processes, 1);
}

static Size
shmem_size(void)
{
	return add_size(offsetof(ReminderShared, slots),
					mul_size(shmem_slot_count(), sizeof(WorkerSlot)));
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(shmem_size());
	RequestNamedLWLockTranche("reminder", 1);
	limits_shmem_request();
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	reminder_shared = ShmemInitStruct("reminder", shmem_size(), &found);
	if (!found)
	{
		memset(reminder_shared, 0, shmem_size());
		reminder_shared->lock = &(GetNamedLWLockTranche("reminder"))->lock;
		reminder_shared->nslots = shmem_slot_count();
	}
	limits_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

void
shmem_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * The slot of sender number sender of dboid, or NULL; sender -1: of any
 * sender of dboid.  Caller holds reminder_shared->lock.
 */
WorkerSlot *
shmem_find_slot(Oid dboid, int sender)
{
	for (int i = 0; i < reminder_shared->nslots; i++)
	{
		WorkerSlot *slot = &reminder_shared->slots[i];

		if (slot->state != WORKER_FREE && slot->dboid == dboid &&
			(sender < 0 || slot->sender == sender))
			return slot;
	}
	return NULL;
}

/*
 * Wake the senders of dboid that planned to look later than due_at: any of
 * them may claim the message (whichever locks it first).  Without a worker
 * (library not preloaded, database not yet served) there is nobody to
 * wake; the launcher finds new databases by itself.
 */
void
shmem_wake_database(Oid dboid, TimestampTz due_at)
{
	Latch	   *latches[REMINDER_MAX_SENDERS];
	int			n = 0;

	if (reminder_shared == NULL)
		return;

	LWLockAcquire(reminder_shared->lock, LW_SHARED);
	for (int i = 0; i < reminder_shared->nslots && n < REMINDER_MAX_SENDERS; i++)
	{
		WorkerSlot *slot = &reminder_shared->slots[i];

		if (slot->state != WORKER_FREE && slot->dboid == dboid &&
			slot->latch != NULL && due_at < slot->next_wake)
			latches[n++] = slot->latch;
	}
	LWLockRelease(reminder_shared->lock);

	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

void
shmem_wake_launcher(bool rescan)
{
	Latch	   *latch;

	if (reminder_shared == NULL)
		return;

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	if (rescan)
		reminder_shared->rescan = true;
	latch = reminder_shared->launcher_latch;
	LWLockRelease(reminder_shared->lock);

	if (latch)
		SetLatch(latch);
}

/*
 * Ask the launcher to (re)consider dboid: CREATE EXTENSION there means a
 * database it had written off now needs a worker.
 */
void
shmem_wake_launcher_for(Oid dboid)
{
	Latch	   *latch;

	if (reminder_shared == NULL)
		return;

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	if (!OidIsValid(reminder_shared->retry_db) || reminder_shared->retry_db == dboid)
		reminder_shared->retry_db = dboid;
	else
		reminder_shared->retry_all = true;	/* several at once */
	reminder_shared->rescan = true;
	latch = reminder_shared->launcher_latch;
	LWLockRelease(reminder_shared->lock);

	if (latch)
		SetLatch(latch);
}

/* Caller holds the lock exclusively. */
static void
hold_database(Oid dboid, TimestampTz until)
{
	DatabaseHold *free_entry = NULL;

	for (int i = 0; i < REMINDER_MAX_HOLDS; i++)
	{
		DatabaseHold *h = &reminder_shared->holds[i];

		if (h->dboid == dboid)
		{
			h->until = Max(h->until, until);
			return;
		}
		if (free_entry == NULL &&
			(h->dboid == InvalidOid || h->until < GetCurrentTimestamp()))
			free_entry = h;
	}
	/* all in use: the oldest holder loses, its worker may come back early */
	if (free_entry == NULL)
		free_entry = &reminder_shared->holds[0];
	free_entry->dboid = dboid;
	free_entry->until = until;
}

/*
 * Make the senders of dboid exit and keep the launcher from starting
 * others until shmem_release_hold() (or a minute passes, should the caller
 * die).  Waits up to timeout_ms for them to be gone; returns whether they are.
 */
bool
shmem_stop_worker(Oid dboid, int timeout_ms)
{
	TimestampTz deadline;

	if (reminder_shared == NULL)
		return true;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	for (;;)
	{
		Latch	   *latches[REMINDER_MAX_SENDERS];
		int			n = 0;
		bool		gone = true;

		LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
		hold_database(dboid, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000));
		for (int i = 0; i < reminder_shared->nslots; i++)
		{
			WorkerSlot *slot = &reminder_shared->slots[i];

			if (slot->state == WORKER_FREE || slot->dboid != dboid)
				continue;
			slot->retiring = false; /* leave now, not when transfers end */
			/* one not attached yet finds itself unwanted (attach_slot) */
			if (slot->pid == 0)
			{
				if (slot->state == WORKER_STARTING)
					slot->state = WORKER_STOPPING;
				continue;
			}
			gone = false;
			if (slot->state != WORKER_STOPPING)
			{
				slot->state = WORKER_STOPPING;
				if (slot->latch && n < REMINDER_MAX_SENDERS)
					latches[n++] = slot->latch;
			}
		}
		LWLockRelease(reminder_shared->lock);

		for (int i = 0; i < n; i++)
			SetLatch(latches[i]);
		if (gone)
			return true;
		if (GetCurrentTimestamp() >= deadline)
			return false;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
shmem_release_hold(Oid dboid)
{
	if (reminder_shared == NULL)
		return;

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < REMINDER_MAX_HOLDS; i++)
		if (reminder_shared->holds[i].dboid == dboid)
			reminder_shared->holds[i].dboid = InvalidOid;
	LWLockRelease(reminder_shared->lock);

	shmem_wake_launcher(true);
}

/* Is a worker for dboid unwelcome right now?  Caller holds the lock. */
bool
shmem_database_held(Oid dboid)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < REMINDER_MAX_HOLDS; i++)
	{
		DatabaseHold *h = &reminder_shared->holds[i];

		if (h->dboid == dboid && h->until > now)
			return true;
	}
	return false;
}
