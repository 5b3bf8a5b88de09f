/*-------------------------------------------------------------------------
 *
 * outbox/outbox.h
 *	  Declarations of the outbox family: scheduling messages, digests,
 *	  claiming and writing back (queue.c), delivery counters, replies.
 *
 *-------------------------------------------------------------------------
 */
#ifndef OUTBOX_OUTBOX_H
#define OUTBOX_OUTBOX_H

#include "lib/ilist.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"

/* ----------------
 * in schedule.c: the outbox
 * ----------------
 */
typedef struct ScheduleRequest
{
	const char *channel;
	Jsonb	   *recipient;
	const char *template_name;
	TimestampTz due_at;
	Jsonb	   *data;
	const char *idempotency_key;	/* NULL: generated */
	int64		rule_id;		/* 0: not made by a rule */
	const char *source_table;
	const char *source_key;
	const char *fallback;		/* NULL: the channel's own, if any */
	const char *priority;		/* high, normal, low; NULL: the channel's */
	const char *category;		/* consent category; NULL: data->>'category'
								 * if any, else (when sent) the template */
	Jsonb	   *check_data;		/* what the template's required variables
								 * are checked against; NULL: data */
} ScheduleRequest;

extern int64 schedule_message(const ScheduleRequest *req);
extern Jsonb *recipient_for_channel(Jsonb *recipient, ChannelConfig *channel);
extern void check_required_variables(TemplateRow *tmpl, Jsonb *data, Jsonb *recipient);

/* ----------------
 * in history.c: moving finished messages out of the outbox, partitions
 * ----------------
 */
extern void history_make_partitions(void);
extern int64 history_archive(int batch);
extern void history_purge(void);

/* ----------------
 * in inbound.c: replies to SMS channels (reminder.record_inbound)
 * ----------------
 */

/* ----------------
 * in digest.c: items collected for a recipient, sent as one message
 * ----------------
 */
struct ClaimedMessage;
extern Jsonb *digest_check_spec(Jsonb *spec);
extern void digest_check_key(const char *idempotency_key);
extern bool digest_collect_rule_message(struct ClaimedMessage *m, GateResult *gr);
extern void digest_fill(struct ClaimedMessage *m, ChannelConfig *cc, GateResult *gr);
extern bool digest_preview(int64 message_id, const char *idempotency_key, ChannelConfig *cc,
						   Jsonb *recipient, const char *template_name, const char *category,
						   Jsonb **data, char **reason);

/* ----------------
 * in queue.c: claiming due messages, writing what became of them
 * ----------------
 */
/*
 * A channel of which the worker holds enough messages not yet started: the
 * claim takes only its messages of a higher priority than those.
 */
typedef struct BusyChannel
{
	char	   *channel;
	int			top_priority;	/* the highest priority of those waiting */
} BusyChannel;

typedef struct ClaimResult
{
	int			claimed;		/* rows claimed (sent or not) */
	bool		more;			/* the limit was reached: more may be due */
	TimestampTz next_due;		/* next future due time, or DT_NOEND */
	TimestampTz next_token;		/* when a throttled channel may go on, or DT_NOEND */
	int			left_out;		/* busy channels the claim left out */
	List	   *channels;		/* the channels claimed from, for queue_claim_end() */
} ClaimResult;

/*
 * A claimed message the gate held back (worker/delivery.c), written back
 * by queue_claim_end() before the claim commits.
 */
typedef struct HeldMessage
{
	int64		id;
	int			attempt;
	const char *status;			/* scheduled (deferred), suppressed, cancelled */
	TimestampTz until;			/* scheduled: due again then */
	char	   *reason;
} HeldMessage;

typedef enum ExtensionState
{
	EXTENSION_ABSENT,			/* not installed in this database */
	EXTENSION_OTHER_VERSION,	/* installed at a version this library does not serve */
	EXTENSION_CURRENT			/* installed at this library's version */
} ExtensionState;

struct Delivery;

extern ExtensionState queue_extension_state(char **installed);
extern List *queue_claim(int limit, int paced_limit, List *busy,
						 ClaimResult *result);
extern void queue_claim_end(List *held, ClaimResult *result);
extern void queue_release(dlist_head *unsent);
extern TimestampTz queue_renew_leases(struct Delivery **ds, int n);
extern char *queue_fallback(struct Delivery *d);
extern void queue_record(dlist_head *done);

/* ----------------
 * in stats.c: cumulative delivery counters per database
 * ----------------
 */
extern void stats_install_hooks(void);
extern void stats_count(int64 sent, int64 failed, int64 retried);

#endif							/* OUTBOX_OUTBOX_H */
