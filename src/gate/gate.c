/*-------------------------------------------------------------------------
 *
 * gate.c
 *	  The last word before a message goes out.  The worker asks, inside the
 *	  transaction that claims a batch, whether each message may be sent now
 *	  against the current state of the database: the recipient may have
 *	  opted out, the lead may have replied, it may be 3 a.m. where the
 *	  recipient lives.
 *
 *	  Each check lives with the feature it belongs to and is listed here in
 *	  the order they run; the first verdict other than GATE_SEND wins.
 *
 *	  The worker first calls gate_prepare() on the whole claimed batch: a
 *	  check that needs a query (consent) answers for every message in one
 *	  query, not one each, and gate_check() then uses that answer.  A
 *	  message the batch could not answer for is checked on its own, as is
 *	  every message of reminder.gate_check().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "util/spi_util.h"

typedef void (*GateCheck) (const GateMessage *msg, GateResult *result);

static const GateCheck checks[] = {
	consent_gate,				/* consent.c: opted out -> suppress */
	quiet_hours_gate,			/* quiet_hours.c: inside quiet hours -> defer */
	rule_stop_check,			/* rules_gate.c: stop condition of the rule */
	rule_unless_check,			/* rules_gate.c: "unless" of the recipient */
	survey_throttle_check,		/* rules_gate.c: one survey per person per
								 * throttle interval; keep last, it logs */
	NULL						/* end of list */
};

typedef struct GateBatch
{
	GateMessage *msgs;
	int			n;
} GateBatch;

static void
gate_prepare_batch(void *arg)
{
	GateBatch  *b = arg;

	consent_gate_prepare(b->msgs, b->n);
}

/*
 * Answer the batch-capable checks for a batch of messages, in a
 * subtransaction: if that fails, each message is checked on its own
 * (gate_check() then raises the error for the message that causes it).
 */
void
gate_prepare(GateMessage *msgs, int n)
{
	GateBatch	b = {msgs, n};
	ErrorData  *edata;

	if (n == 0)
		return;
	edata = subxact_try(gate_prepare_batch, &b);
	if (edata == NULL)
		return;
	for (int i = 0; i < n; i++)
	{
		msgs[i].consent_checked = false;
		msgs[i].consent_reason = NULL;
	}
	ereport(DEBUG1,
			(errmsg_internal("reminder: checking a batch of %d messages at once failed, checking them one by one: %s",
							 n, edata->message)));
	FreeErrorData(edata);
}

void
gate_check(const GateMessage *msg, GateResult *result)
{
	result->verdict = GATE_SEND;
	result->defer_until = 0;
	result->reason = NULL;

	for (int i = 0; checks[i] != NULL; i++)
	{
		checks[i] (msg, result);
		if (result->verdict != GATE_SEND)
			break;
	}

	/* rules_gate.c: a recurring rule's next occurrence, once this one is taken */
	rule_recurring_next(msg, result);
}
