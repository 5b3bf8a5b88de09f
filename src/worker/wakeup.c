/*-------------------------------------------------------------------------
 *
 * wakeup.c
 *	  Wake this database's worker when the transaction that scheduled a
 *	  message commits, never when it rolls back.
 *
 *	  Scheduling only notes the earliest due time of the transaction; the
 *	  commit callback passes it on once, so a bulk insert of a million
 *	  reminders costs one latch at most.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "worker/worker.h"

static bool callback_registered = false;
static bool pending = false;
static TimestampTz pending_due;

static void
wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (pending)
				shmem_wake_database(MyDatabaseId, pending_due);
			pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending = false;
			break;
		default:
			break;
	}
}

void
wakeup_at_commit(TimestampTz due_at)
{
	if (!reminder_preloaded)
		return;

	if (!callback_registered)
	{
		RegisterXactCallback(wakeup_xact_callback, NULL);
		callback_registered = true;
	}
	if (!pending || due_at < pending_due)
		pending_due = due_at;
	pending = true;
}
