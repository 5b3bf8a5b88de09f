/*-------------------------------------------------------------------------
 *
 * gate/gate.h
 *	  Declarations of the gate family: the checks made just before a
 *	  message is sent, rule-made messages included.
 *
 *-------------------------------------------------------------------------
 */
#ifndef GATE_GATE_H
#define GATE_GATE_H

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "rules/rules.h"

/* ----------------
 * in gate.c: checks made just before a message is sent
 * ----------------
 */
typedef enum GateVerdict
{
	GATE_SEND,					/* go ahead */
	GATE_DEFER,					/* not now: try again at defer_until */
	GATE_SUPPRESS,				/* never: opt-out, throttle, stop condition */
	GATE_CANCEL					/* never: the reason for it is gone */
} GateVerdict;

typedef struct GateMessage
{
	int64		id;
	ChannelConfig *channel;
	Jsonb	   *recipient;
	Jsonb	   *data;
	const char *template_name;
	const char *category;		/* message.category, or NULL */
	TimestampTz due_at;
	int64		rule_id;		/* 0: not made by a rule */
	const char *source_key;
	const char *idempotency_key;
	bool		dry_run;		/* reminder.gate_check(): decide, change nothing */

	/* found for a whole batch by gate_prepare(); gate_check() then uses it */
	bool		consent_checked;
	char	   *consent_reason; /* opted out: why; NULL: consent allows it */
} GateMessage;

typedef struct GateResult
{
	GateVerdict verdict;
	TimestampTz defer_until;	/* for GATE_DEFER */
	char	   *reason;			/* for all but GATE_SEND: goes to last_error */
} GateResult;

extern void gate_prepare(GateMessage *msgs, int n);
extern void gate_check(const GateMessage *msg, GateResult *result);

/* ----------------
 * in rules_gate.c: send-time checks of rule-made messages
 * ----------------
 */
extern void rule_stop_check(const GateMessage *msg, GateResult *result);
extern void survey_throttle_check(const GateMessage *msg, GateResult *result);
extern void rule_prefetch_rows(int n, const int64 *rule_ids, char *const *source_keys,
							   Jsonb **data);
extern bool rule_message_data(int64 rule_id, const char *source_key, Jsonb **data,
							  char **reason);
extern void rule_keep_rows(int64 rule_id);
extern void rule_unless_check(const GateMessage *msg, GateResult *result);
extern RuleRecipient *rule_key_recipient(CompiledRule *rule, const char *source_key,
										 const char *key);
extern int64 rule_event_recorded(int64 message_id, const char *kind);
extern void rule_recurring_next(const GateMessage *msg, const GateResult *result);

/* ----------------
 * in quiet_hours.c and consent.c (catalog/): their checks at send time
 * ----------------
 */
extern void quiet_hours_gate(const GateMessage *msg, GateResult *result);
extern void consent_gate_prepare(GateMessage *msgs, int n);
extern void consent_gate(const GateMessage *msg, GateResult *result);

#endif							/* GATE_GATE_H */
