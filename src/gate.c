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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "reminder.h"

typedef void (*GateCheck) (const GateMessage *msg, GateResult *result);

static const GateCheck checks[] = {
	consent_gate,				/* consent.c: opted out -> suppress */
	quiet_hours_gate,			/* quiet_hours.c: inside quiet hours -> defer */
	rule_stop_check,			/* rules_gate.c: stop condition of the rule */
	survey_throttle_check,		/* rules_gate.c: one survey per person per
								 * throttle interval; keep last, it logs */
	NULL						/* end of list */
};

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
			return;
	}
}
