/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The per-database delivery worker, started by the launcher.
 *
 *	  One loop, one thread:
 *
 *		1. let libcurl work on ready sockets and timers, collect finished
 *		   transfers, start claimed ones waiting for a free slot;
 *		2. if there is room (up to a batch may wait for a transfer slot)
 *		   and something may be due, record what has finished and claim up
 *		   to that many messages in one short transaction (gate, render and
 *		   build the requests inside it), commit, then start the transfers
 *		   slots allow; otherwise record finished deliveries on their own,
 *		   in batches;
 *		3. publish when it will next look for due messages (so a commit of
 *		   something due sooner sets its latch, see wakeup.c) and wait on
 *		   the latch and curl's sockets together (see transport.c).
 *
 *	  No transaction is open while waiting or transferring.  Free slots are
 *	  refilled from the claimed messages waiting as transfers finish, so
 *	  the pipe never drains between batches, and each commit covers about
 *	  half a batch.  An error in a claim or record transaction is logged
 *	  and the loop goes on; a record that fails is retried one message at
 *	  a time, so one bad message cannot block the others.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "reminder.h"
#include "outbox/outbox.h"
#include "transport/transport.h"
#include "util/util.h"
#include "worker/delivery.h"
#include "worker/worker.h"

#define SHUTDOWN_GRACE_MS	500		/* in-flight transfers may finish in this */
#define RECORD_DELAY_MS		10		/* longest a finished delivery waits to be recorded */
#define HOST_WAIT_MS		10		/* polls for a connection another sender frees */
/* or each partition's width, if less, so that partitions go when they may */
#define PURGE_INTERVAL_MS	(10 * 60 * 1000)
#define HISTORY_INTERVAL_MS	(10 * 1000)
/* small enough not to hold up the loop's claims for long */
#define ARCHIVE_BATCH		1000

static WorkerSlot *my_slot = NULL;
static volatile sig_atomic_t in_transaction = false;
static bool version_mismatch = false;	/* the installed SQL is another version */
static bool retiring = false;	/* asked to leave by a lower workers_per_database */

static List *busy_channels(dlist_head *to_send);

/* Slot counters, published every iteration. */
static int64 n_sent = 0;
static int64 n_failed = 0;
static int64 n_retried = 0;

/*
 * SIGTERM: finish the current step and leave.  Inside a transaction, a
 * lock wait could last; there act as die() does so it is interrupted.
 */
static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	ShutdownRequestPending = true;
	if (in_transaction)
	{
		InterruptPending = true;
		ProcDiePending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/* ----------------------------------------------------------------
 * The slot in shared memory
 * ----------------------------------------------------------------
 */

static void
detach_slot(int code, Datum arg)
{
	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	my_slot->pid = 0;
	my_slot->latch = NULL;
	my_slot->in_flight = 0;
	LWLockRelease(reminder_shared->lock);
}

static void
attach_slot(int slotno, Oid dboid)
{
	WorkerSlot *slot;

	if (slotno < 0 || slotno >= reminder_shared->nslots)
		elog(ERROR, "invalid reminder worker slot %d", slotno);

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	slot = &reminder_shared->slots[slotno];
	if (slot->dboid != dboid || slot->state != WORKER_STARTING || slot->pid != 0)
	{
		LWLockRelease(reminder_shared->lock);
		ereport(LOG,
				(errmsg("reminder worker slot %d is not waiting for database %u; exiting",
						slotno, dboid)));
		proc_exit(0);
	}
	slot->pid = MyProcPid;
	slot->latch = MyLatch;
	slot->started_at = GetCurrentTimestamp();
	slot->next_wake = 0;
	LWLockRelease(reminder_shared->lock);

	my_slot = slot;
	before_shmem_exit(detach_slot, (Datum) 0);
}

static void
set_state(WorkerState state)
{
	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	if (my_slot->state != WORKER_STOPPING)
		my_slot->state = state;
	LWLockRelease(reminder_shared->lock);
}

/*
 * Start of an iteration: publish progress, and say that any message
 * committed from now on should wake us, until publish_next_wake() says
 * when we will look by ourselves.  Returns true if asked to stop.
 */
static bool
begin_iteration(void)
{
	bool		stop;

	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	my_slot->last_loop = GetCurrentTimestamp();
	my_slot->next_wake = DT_NOEND;
	my_slot->in_flight = transport_in_flight();
	my_slot->sent = n_sent;
	my_slot->failed = n_failed;
	my_slot->retried = n_retried;
	stop = (my_slot->state == WORKER_STOPPING);
	retiring = stop && my_slot->retiring;
	LWLockRelease(reminder_shared->lock);
	return stop;
}

static void
publish_next_wake(TimestampTz next_wake)
{
	LWLockAcquire(reminder_shared->lock, LW_EXCLUSIVE);
	my_slot->next_wake = next_wake;
	my_slot->in_flight = transport_in_flight();
	LWLockRelease(reminder_shared->lock);
}

/* ----------------------------------------------------------------
 * Transactions
 * ----------------------------------------------------------------
 */

static void
begin_tx(const char *activity)
{
	in_transaction = true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	in_transaction = false;
}

/* After an error inside begin_tx/end_tx: log it, roll back, carry on. */
static void
abort_tx(MemoryContext cxt, const char *what)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	in_transaction = false;
	MemoryContextSwitchTo(cxt);

	ereport(LOG,
			(errmsg("reminder worker: error while %s: %s", what, edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
	FreeErrorData(edata);

	/* a die() during the transaction still ends the process */
	CHECK_FOR_INTERRUPTS();
}

static void
free_all(dlist_head *list)
{
	while (!dlist_is_empty(list))
		delivery_free(dlist_container(Delivery, node, dlist_pop_head_node(list)));
}

static void
count(int64 sent, int64 failed, int64 retried)
{
	n_sent += sent;
	n_failed += failed;
	n_retried += retried;
	stats_count(sent, failed, retried);
}

/*
 * Record one delivery on its own; if even that fails, record it as failed
 * with the reason; if that fails too, leave it to the lease.
 */
static void
record_alone(Delivery *d)
{
	MemoryContext cxt = CurrentMemoryContext;
	dlist_head	one;
	int64		s,
				f,
				r;

	for (int round = 0; round < 2; round++)
	{
		dlist_init(&one);
		dlist_push_tail(&one, &d->node);
		PG_TRY();
		{
			begin_tx("recording a delivery");
			delivery_record(&one, &s, &f, &r);
			end_tx();
			count(s, f, r);
			return;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			abort_tx(cxt, "recording a delivery");
			if (round == 0)
				delivery_unrecordable(d, edata->message);
			else
				ereport(WARNING,
						(errmsg("reminder worker: leaving message " INT64_FORMAT " to be retried after its lease",
								d->message_id)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
}

static void
record_done(dlist_head *done)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = false;
	int64		s,
				f,
				r;

	if (dlist_is_empty(done))
		return;

	PG_TRY();
	{
		begin_tx("recording deliveries");
		delivery_record(done, &s, &f, &r);
		end_tx();
		count(s, f, r);
		ok = true;
	}
	PG_CATCH();
	{
		abort_tx(cxt, "recording deliveries");
	}
	PG_END_TRY();

	if (ok)
		free_all(done);
	else
	{
		/* find the bad one(s): one message per transaction */
		while (!dlist_is_empty(done))
		{
			Delivery   *d = dlist_container(Delivery, node, dlist_pop_head_node(done));

			record_alone(d);
			delivery_free(d);
		}
	}
}

/*
 * Log when the installed extension's version starts or stops differing
 * from this library's: until ALTER EXTENSION ... UPDATE, nothing is claimed.
 */
static void
note_version(ExtensionState state, const char *installed)
{
	bool		mismatch = (state == EXTENSION_OTHER_VERSION);

	if (mismatch && !version_mismatch)
		ereport(LOG,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("reminder worker: extension \"%s\" is installed at version %s in this database, but the loaded library is version %s; delivering nothing",
						REMINDER_EXTENSION, installed, REMINDER_VERSION),
				 errhint("Run ALTER EXTENSION %s UPDATE in this database, or load the library that matches.",
						 REMINDER_EXTENSION)));
	else if (!mismatch && version_mismatch && state == EXTENSION_CURRENT)
		ereport(LOG,
				(errmsg("reminder worker: extension \"%s\" is now at version %s; delivering",
						REMINDER_EXTENSION, REMINDER_VERSION)));
	if (state != EXTENSION_ABSENT)
		version_mismatch = mismatch;
}

/*
 * Record the finished deliveries in *done, if any, and claim and prepare
 * up to limit messages, in one transaction: one commit per loop, not two.
 * If that transaction fails, the deliveries are recorded on their own
 * (record_done) and nothing is claimed this time.  Nothing is claimed
 * either while the installed extension is at another version than this
 * library.  Returns what was found of the extension.
 */
static ExtensionState
record_and_claim(dlist_head *done, int limit, int paced_limit, dlist_head *to_send,
				 MemoryContext delivery_parent, ClaimResult *result)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile ExtensionState state = EXTENSION_CURRENT;
	volatile bool recorded = false;
	char	   *installed = NULL;
	List	   *busy = busy_channels(to_send);
	dlist_head	new_send;
	dlist_head	new_done;
	int64		s = 0,
				f = 0,
				r = 0;

	dlist_init(&new_send);
	dlist_init(&new_done);
	result->claimed = 0;
	result->more = false;
	result->next_due = DT_NOEND;
	result->next_token = DT_NOEND;
	result->left_out = list_length(busy);

	PG_TRY();
	{
		begin_tx(dlist_is_empty(done) ? "claiming due messages" :
				 "recording deliveries and claiming due messages");
		state = queue_extension_state(&installed);
		if (state == EXTENSION_CURRENT)
		{
			if (!dlist_is_empty(done))
				delivery_record(done, &s, &f, &r);
			delivery_claim(limit, paced_limit, busy, &new_send, &new_done, delivery_parent, result);
		}
		if (installed)
			installed = MemoryContextStrdup(cxt, installed);
		end_tx();
		recorded = (state == EXTENSION_CURRENT);
	}
	PG_CATCH();
	{
		abort_tx(cxt, "claiming due messages");
		/* the claim rolled back: none of these is ours */
		free_all(&new_send);
		free_all(&new_done);
		result->claimed = 0;
		result->more = false;
		result->next_due = DT_NOEND;
		result->next_token = DT_NOEND;
	}
	PG_END_TRY();

	note_version(state, installed);
	if (recorded)
	{
		count(s, f, r);
		free_all(done);
	}
	else if (state != EXTENSION_ABSENT)
		record_done(done);

	while (!dlist_is_empty(&new_send))
		delivery_enqueue(to_send, dlist_container(Delivery, node, dlist_pop_head_node(&new_send)));
	while (!dlist_is_empty(&new_done))
		dlist_push_tail(done, dlist_pop_head_node(&new_done));
	return state;
}

/* At exit: give back claimed messages never started; else the lease will. */
static void
release_unsent(dlist_head *unsent)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (dlist_is_empty(unsent))
		return;
	PG_TRY();
	{
		begin_tx("giving back unsent messages");
		queue_release(unsent);
		end_tx();
	}
	PG_CATCH();
	{
		abort_tx(cxt, "giving back unsent messages");
	}
	PG_END_TRY();
	free_all(unsent);
}

/*
 * History: make partitions ahead and move a batch of finished messages out
 * of the outbox.  Returns whether a full batch moved, so that the caller
 * comes back soon for the rest.
 */
static bool
keep_history(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	int64		moved = 0;

	PG_TRY();
	{
		begin_tx("moving finished messages to history");
		history_make_partitions();
		moved = history_archive(ARCHIVE_BATCH);
		end_tx();
	}
	PG_CATCH();
	{
		abort_tx(cxt, "moving finished messages to history");
		moved = 0;
	}
	PG_END_TRY();
	return moved >= ARCHIVE_BATCH;
}

static void
purge(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		begin_tx("purging old messages");
		history_purge();
		end_tx();
	}
	PG_CATCH();
	{
		abort_tx(cxt, "purging old messages");
	}
	PG_END_TRY();
}

/*
 * Start the transfer of d, waiting in its queue: it leaves the queue,
 * started, or failed at once if it cannot even start.  Returns false, d
 * left waiting, if another sender took the host's last free connection
 * meanwhile.
 */
static bool
start_one(Delivery *d, dlist_head *done)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (!transport_reserve(d))
		return false;
	dlist_delete(&d->node);
	PG_TRY();
	{
		transport_start(d);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		delivery_fail(d, OUTCOME_TRANSIENT, edata->message);
		FreeErrorData(edata);
		dlist_push_tail(done, &d->node);
	}
	PG_END_TRY();
	return true;
}

/*
 * The next delivery to start: of the highest priority waiting that can
 * start now (its host has a free connection), the one whose channel has
 * the fewest transfers in flight to that host, the first of those.  So
 * channels take turns on a shared host, and a backlog claimed earlier on
 * one channel does not make another channel's messages wait.
 */
typedef struct HostSeen
{
	const char *key;
	const char *channel;
	bool		room;
	int			load;
} HostSeen;

#define HOSTS_SEEN_MAX	8

static Delivery *
next_to_start(dlist_head *to_send)
{
	dlist_iter	iter;
	Delivery   *best = NULL;
	int			best_load = 0;
	HostSeen	seen[HOSTS_SEEN_MAX];	/* asked of limits.c in this call */
	int			nseen = 0;

	dlist_foreach(iter, to_send)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);
		const char *key = transport_host_key(d);
		bool		room = true;
		int			load = 0;

		if (best && d->priority < best->priority)
			break;				/* the queue is in priority order */
		if (key)
		{
			int			i;

			/* a backlog asks the same of the shared counts: once */
			for (i = 0; i < nseen; i++)
				if (strcmp(seen[i].key, key) == 0 && strcmp(seen[i].channel, d->channel) == 0)
					break;
			if (i < nseen)
			{
				room = seen[i].room;
				load = seen[i].load;
			}
			else
			{
				room = transport_host_has_room(d);
				load = room ? transport_channel_load(d) : 0;
				if (nseen < HOSTS_SEEN_MAX)
					seen[nseen++] = (HostSeen) {key, d->channel, room, load};
			}
		}
		if (!room)
			continue;
		if (best == NULL || load < best_load)
		{
			best = d;
			best_load = load;
			if (load == 0)
				break;
		}
	}
	return best;
}

/*
 * Start the transfers of claimed deliveries as far as transfer slots and
 * the connections allowed per host allow (next_to_start() chooses); the
 * rest wait in *to_send.  Those of rate-limited channels go first,
 * whatever their place: their tokens were spent for now.
 */
static void
start_transfers(dlist_head *to_send, dlist_head *done)
{
	dlist_mutable_iter iter;
	Delivery   *d;

	dlist_foreach_modify(iter, to_send)
	{
		d = dlist_container(Delivery, node, iter.cur);
		if (d->paced && transport_host_has_room(d))
			(void) start_one(d, done);
	}
	while (transport_in_flight() < reminder_max_concurrent &&
		   (d = next_to_start(to_send)) != NULL)
	{
		if (!start_one(d, done))
			break;				/* another sender was quicker: next time */
	}
}

/* ----------------------------------------------------------------
 * Leases
 * ----------------------------------------------------------------
 */

typedef struct Held
{
	Delivery  **ds;
	int			n;
	int			max;
	TimestampTz renew_before;	/* collect those whose lease ends before */
	TimestampTz earliest_kept;	/* the earliest lease of those not collected */
} Held;

static void
hold(Delivery *d, void *arg)
{
	Held	   *h = arg;

	if (d->lease_until >= h->renew_before)
	{
		h->earliest_kept = Min(h->earliest_kept, d->lease_until);
		return;
	}
	if (h->n == h->max)
	{
		h->max = Max(64, h->max * 2);
		h->ds = h->ds ? repalloc(h->ds, sizeof(Delivery *) * h->max) :
			palloc(sizeof(Delivery *) * h->max);
	}
	h->ds[h->n++] = d;
}

/*
 * The messages this worker holds (waiting for a slot, or in flight) whose
 * lease ends within half the lease timeout get it extended; a healthy
 * worker's messages are never claimed again.  Returns when to look next.
 */
static TimestampTz
renew_leases(dlist_head *to_send)
{
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz now = GetCurrentTimestamp();
	int64		half = (int64) reminder_lease_timeout * USECS_PER_SEC / 2;
	Held		h = {NULL, 0, 0, now + half, DT_NOEND};
	dlist_iter	iter;
	volatile TimestampTz until = 0;

	dlist_foreach(iter, to_send)
		hold(dlist_container(Delivery, node, iter.cur), &h);
	transport_foreach_active(hold, &h);
	if (h.n > 0)
	{
		PG_TRY();
		{
			begin_tx("renewing leases");
			until = queue_renew_leases(h.ds, h.n);
			end_tx();
		}
		PG_CATCH();
		{
			abort_tx(cxt, "renewing leases");
			/* try again in a second */
			return TimestampTzPlusMilliseconds(now, 1000);
		}
		PG_END_TRY();
		for (int i = 0; i < h.n; i++)
			h.ds[i]->lease_until = until;
		h.earliest_kept = Min(h.earliest_kept, until);
		elog(DEBUG1, "reminder worker: renewed the leases of %d messages", h.n);
	}
	return h.earliest_kept == DT_NOEND ? DT_NOEND : h.earliest_kept - half;
}

/*
 * Channels of which the worker holds enough messages not yet started (half
 * a batch), with the highest priority among those: the claim takes only
 * higher priorities of them, so that a backlog on one channel, or a slow
 * receiver, cannot fill the queue and hold up the others, while an urgent
 * message of the same channel still goes before its backlog.
 */
static List *
busy_channels(dlist_head *to_send)
{
	List	   *held = NIL;		/* of BusyChannel, top_priority and a count */
	List	   *counts = NIL;
	List	   *busy = NIL;
	dlist_iter	iter;
	ListCell   *lc,
			   *lc2;
	int			threshold = Max(1, reminder_batch_size / 2);

	dlist_foreach(iter, to_send)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);
		bool		found = false;

		forboth(lc, held, lc2, counts)
		{
			BusyChannel *b = lfirst(lc);

			if (strcmp(b->channel, d->channel) == 0)
			{
				b->top_priority = Max(b->top_priority, d->priority);
				lfirst_int(lc2)++;
				found = true;
				break;
			}
		}
		if (!found)
		{
			BusyChannel *b = palloc(sizeof(BusyChannel));

			b->channel = d->channel;
			b->top_priority = d->priority;
			held = lappend(held, b);
			counts = lappend_int(counts, 1);
		}
	}
	forboth(lc, held, lc2, counts)
		if (lfirst_int(lc2) >= threshold)
			busy = lappend(busy, lfirst(lc));
	return busy;
}

static int
list_count(dlist_head *list)
{
	dlist_iter	iter;
	int			n = 0;

	dlist_foreach(iter, list)
		n++;
	return n;
}

/*
 * Whether a delivery of a rate-limited channel waits for a transfer slot.
 * No more of those channels are claimed meanwhile, so that they never go
 * out in a burst larger than one claim's tokens.
 */
static bool
paced_waiting(dlist_head *to_send)
{
	dlist_iter	iter;

	dlist_foreach(iter, to_send)
		if (dlist_container(Delivery, node, iter.cur)->paced)
			return true;
	return false;
}

static long
ms_until(TimestampTz t, TimestampTz now)
{
	long		secs;
	int			usecs;

	if (t <= now)
		return 0;
	if (t == DT_NOEND)
		return LONG_MAX;
	TimestampDifference(now, t, &secs, &usecs);
	return secs * 1000 + (usecs + 999) / 1000;
}

/*
 * Whether to claim now, given room for claimed messages (in flight or
 * waiting for a transfer slot).  While busy with a backlog, wait until
 * there is room for half a batch, so that claims and records come in
 * batches, not one message at a time: each claim is a commit.
 */
static bool
may_claim(int room, int threshold, bool more, bool busy)
{
	if (room <= 0)
		return false;
	return !(more && room < threshold && busy);
}

static void
reload_config(void)
{
	char	   *allowed = pstrdup(reminder_allowed_hosts);
	char	   *denied = pstrdup(reminder_denied_hosts);
	bool		changed;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	changed = strcmp(allowed, reminder_allowed_hosts) != 0 ||
		strcmp(denied, reminder_denied_hosts) != 0;
	if (changed)
		hostpolicy_load();
	transport_configure(changed);
	pfree(allowed);
	pfree(denied);
}

/* ----------------------------------------------------------------
 * The loop
 * ----------------------------------------------------------------
 */

static void
deliver(void)
{
	MemoryContext loop_cxt;
	MemoryContext delivery_cxt;
	WaitEventSet *wes;
	dlist_head	to_send;
	dlist_head	done;
	TimestampTz next_claim = 0;
	TimestampTz first_done_at = 0;
	TimestampTz last_purge = 0;
	TimestampTz next_history = 0;
	TimestampTz grace_until = 0;
	TimestampTz stop_began = 0;
	TimestampTz renew_at = DT_NOEND;	/* when leases of held messages need renewing */
	bool		claim_wanted = true;	/* woken for new work, not yet claimed */
	int			left_out = 0;	/* busy channels the last claim left out */
	bool		sockets_ready = false;
	bool		more = false;
	bool		gone = false;

	dlist_init(&to_send);
	dlist_init(&done);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "reminder worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	delivery_cxt = AllocSetContextCreate(TopMemoryContext, "reminder deliveries",
										 ALLOCSET_DEFAULT_SIZES);

	hostpolicy_load();
	transport_init();
	wes = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wes, WL_SOCKET_READABLE, transport_socket(), NULL, NULL);

	for (;;)
	{
		TimestampTz now;
		long		timeout;
		int			threshold;
		int			claim_threshold;
		int			waiting;
		int			room;
		bool		busy;
		WaitEvent	events[3];
		int			nevents;
		bool		stopping;
		bool		draining;	/* stopping, but letting transfers finish */
		bool		record_wanted;
		bool		claiming;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload_config();

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		stopping = begin_iteration() || ShutdownRequestPending || gone;
		/*
		 * A sender retired by a reload lets its transfers finish (each ends
		 * within its timeout, shorter than the lease) and keeps their leases,
		 * so that its leaving sends nothing twice; one stopped for a shutdown or a DROP
		 * DATABASE leaves what has not finished soon to the lease.
		 */
		draining = stopping && retiring && !ShutdownRequestPending && !gone;
		if (stopping && stop_began == 0)
			stop_began = GetCurrentTimestamp();
		if (stopping)
			grace_until = TimestampTzPlusMilliseconds(stop_began, draining ?
													  reminder_lease_timeout * 1000 :
													  SHUTDOWN_GRACE_MS);

		/* 1. transfers: finished ones collected, waiting ones started */
		transport_perform(sockets_ready);
		if (!stopping)
			start_transfers(&to_send, &done);
		if (delivery_take_finished(&done) && first_done_at == 0)
			first_done_at = GetCurrentTimestamp();

		/* 2. record, in batches unless things are quiet, with the claim if one is due */
		now = GetCurrentTimestamp();
		threshold = Max(1, Min(reminder_batch_size, reminder_max_concurrent) / 2);
		claim_threshold = Max(1, reminder_batch_size / 2);
		waiting = list_count(&to_send);
		room = reminder_max_concurrent + reminder_batch_size - transport_in_flight() - waiting;
		busy = transport_in_flight() + waiting > 0;

		/*
		 * A channel the last claim left out because it was busy may have
		 * due messages (next_due() looks only ahead): claim again as soon
		 * as it is not busy any more.
		 */
		if (left_out > 0 && list_length(busy_channels(&to_send)) < left_out)
		{
			claim_wanted = true;
			left_out = 0;
		}
		record_wanted = false;
		if (!dlist_is_empty(&done))
			record_wanted = (list_count(&done) >= threshold || transport_in_flight() == 0 || stopping ||
							 now >= TimestampTzPlusMilliseconds(first_done_at, RECORD_DELAY_MS));
		/* a record commits anyway: claim with it whatever there is room for */
		claiming = !stopping && !RecoveryInProgress() && reminder_enabled &&
			(may_claim(room, claim_threshold, more, busy) || (record_wanted && room > 0)) &&
			(claim_wanted || now >= next_claim);
		if (record_wanted && !claiming)
		{
			record_done(&done);
			first_done_at = 0;
		}

		if (stopping)
		{
			if (transport_in_flight() == 0 || now >= grace_until)
				break;
		}
		else if (RecoveryInProgress())
		{
			/* a standby: touch nothing, look again after promotion */
			set_state(WORKER_STANDBY);
			next_claim = TimestampTzPlusMilliseconds(now, reminder_poll_interval);
		}
		else if (!reminder_enabled)
		{
			set_state(WORKER_DISABLED);
			next_claim = TimestampTzPlusMilliseconds(now, reminder_poll_interval);
		}
		else
		{
			/* 2b. record and claim, refilling free slots in batches while busy */
			set_state(version_mismatch ? WORKER_OTHER_VERSION : WORKER_RUNNING);
			if (claiming)
			{
				ClaimResult res;
				dlist_head	finished;
				ExtensionState ext;

				/* what has finished is recorded in the same transaction */
				dlist_init(&finished);
				if (!dlist_is_empty(&done))
				{
					while (!dlist_is_empty(&done))
						dlist_push_tail(&finished, dlist_pop_head_node(&done));
					first_done_at = 0;
				}
				ext = record_and_claim(&finished, Min(room, reminder_batch_size),
									   paced_waiting(&to_send) ? 0 : Min(room, reminder_batch_size),
									   &to_send, delivery_cxt, &res);
				set_state(version_mismatch ? WORKER_OTHER_VERSION : WORKER_RUNNING);
				if (ext == EXTENSION_ABSENT)
				{
					ereport(LOG,
							(errmsg("reminder worker: extension \"%s\" is no longer installed in this database; exiting",
									REMINDER_EXTENSION)));
					gone = true;
					while (!dlist_is_empty(&finished))
						dlist_push_tail(&done, dlist_pop_head_node(&finished));
					continue;
				}
				if (res.claimed > 0)
				{
					elog(DEBUG1, "reminder worker: claimed %d messages (limit %d)",
						 res.claimed, Min(room, reminder_batch_size));
					renew_at = Min(renew_at,
								   TimestampTzPlusMilliseconds(now, reminder_lease_timeout * 500));
				}
				/* prepared deliveries that finished at once are to be recorded */
				while (!dlist_is_empty(&finished))
					dlist_push_tail(&done, dlist_pop_head_node(&finished));
				start_transfers(&to_send, &done);
				if (!dlist_is_empty(&done) && first_done_at == 0)
					first_done_at = GetCurrentTimestamp();

				now = GetCurrentTimestamp();
				more = res.more;
				left_out = res.left_out;
				claim_wanted = false;
				next_claim = more ? now :
					Min(Min(res.next_due, res.next_token),
						TimestampTzPlusMilliseconds(now, reminder_poll_interval));
			}

			/* one sender of the database keeps history and purges */
			if (my_slot->sender == 0 && !version_mismatch && now >= next_history)
			{
				TimestampTz began = now;
				bool		full = keep_history();

				/*
				 * Behind: come back after as long as the batch took, so that
				 * moving takes at most half the loop's time and sending the
				 * rest (back to back, each claim waited for a whole batch).
				 */
				now = GetCurrentTimestamp();
				next_history = full ? now + (now - began) :
					TimestampTzPlusMilliseconds(now, HISTORY_INTERVAL_MS);
			}
			if (reminder_retention > 0 && my_slot->sender == 0 &&
				now >= TimestampTzPlusMilliseconds(last_purge,
												   Min(PURGE_INTERVAL_MS, reminder_history_partition * 60000L)))
			{
				purge();
				last_purge = now;
			}
		}

		/* 2c. held messages keep their leases */
		now = GetCurrentTimestamp();
		if ((!stopping || draining) && now >= renew_at && !RecoveryInProgress())
			renew_at = renew_leases(&to_send);

		/* 3. sleep until something happens */
		now = GetCurrentTimestamp();
		waiting = list_count(&to_send);
		room = reminder_max_concurrent + reminder_batch_size - transport_in_flight() - waiting;
		busy = transport_in_flight() + waiting > 0;
		timeout = reminder_poll_interval;
		if (stopping)
			timeout = ms_until(grace_until, now);
		else if (may_claim(room, claim_threshold, more, busy))
			timeout = Min(timeout, ms_until(claim_wanted ? now : next_claim, now));
		if (transport_timeout_ms() >= 0)
			timeout = Min(timeout, transport_timeout_ms());
		/* waiting for connections other senders hold: look again soon */
		if (!stopping && waiting > 0 && transport_in_flight() == 0)
			timeout = Min(timeout, HOST_WAIT_MS);
		if (!stopping || draining)
			timeout = Min(timeout, ms_until(renew_at, now));
		if (!stopping && my_slot->sender == 0)
			timeout = Min(timeout, ms_until(next_history, now));
		if (!dlist_is_empty(&done))
			timeout = Min(timeout, ms_until(TimestampTzPlusMilliseconds(first_done_at, RECORD_DELAY_MS), now));
		publish_next_wake(may_claim(room, claim_threshold, more, busy) && !stopping ?
						  next_claim : DT_NOEND);

		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		nevents = WaitEventSetWait(wes, timeout, events, lengthof(events), PG_WAIT_EXTENSION);
		pgstat_report_wait_end();
		sockets_ready = false;
		for (int i = 0; i < nevents; i++)
		{
			if (events[i].events & WL_LATCH_SET)
				claim_wanted = true;
			if (events[i].events & WL_SOCKET_READABLE)
				sockets_ready = true;
		}
	}

	/* what has not finished is left to its lease; what has not started is given back */
	{
		dlist_head	abandoned;

		dlist_init(&abandoned);
		transport_abandon_all(&abandoned);
		free_all(&abandoned);
	}
	if (!gone)
	{
		record_done(&done);
		release_unsent(&to_send);
	}
	if (gone)
		set_state(WORKER_NO_EXTENSION);
}

void
reminder_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	int			slotno;
	ExtensionState state;
	char	   *installed;
	char	   *dbname;

	memcpy(&slotno, MyBgworkerEntry->bgw_extra, sizeof(int));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();

	if (reminder_shared == NULL)
		elog(ERROR, "reminder shared memory is not initialized");
	attach_slot(slotno, dboid);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("reminder worker");
	/* a superuser: no schema another role can write to is ever searched */
	owner_worker_session();

	/*
	 * No JIT: the worker runs short statements over many rows' worth of
	 * estimates.  Once the outbox is analysed with a backlog, the claim's
	 * estimated cost passes jit_above_cost and every claim compiled some 30
	 * functions again (30 ms a claim: bench/throughput's analysed run fell to
	 * a fifth of the fresh one); no statement of the worker runs long enough
	 * to gain from it.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	state = queue_extension_state(&installed);
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(dboid));
	if (installed)
		installed = MemoryContextStrdup(TopMemoryContext, installed);
	CommitTransactionCommand();
	if (state == EXTENSION_ABSENT)
	{
		set_state(WORKER_NO_EXTENSION);
		proc_exit(0);
	}

	ereport(LOG,
			(errmsg("reminder worker started for database \"%s\"", dbname)));
	note_version(state, installed);
	deliver();
	proc_exit(0);
}
