/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running a piece of work in an internal subtransaction, so that its
 *	  error undoes only that piece: one message's bad template, one rule's
 *	  unreadable table, one fallback that cannot be scheduled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/resowner.h"

#include "reminder.h"

/*
 * Run fn(arg) in a subtransaction.  Returns NULL if it succeeded, or its
 * error, copied into the caller's memory context and no longer pending,
 * after rolling the subtransaction back.  Either way the caller's memory
 * context and resource owner are current again.  What fn wants to hand
 * back it writes through arg: the caller reads it after the call, so it
 * needs no volatile.
 */
ErrorData *
subxact_try(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}
