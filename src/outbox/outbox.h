/*-------------------------------------------------------------------------
 *
 * outbox/outbox.h
 *	  Declarations of the outbox family: scheduling messages, digests,
 *	  delivery counters, replies.
 *
 *-------------------------------------------------------------------------
 */
#ifndef OUTBOX_OUTBOX_H
#define OUTBOX_OUTBOX_H

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "transport/transport.h"

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
extern char *recipient_string(Jsonb *recipient, const char *key);
extern void recipient_missing_address(ChannelConfig *cc, const char *key,
									  const char *example) pg_attribute_noreturn();
extern void check_required_variables(TemplateRow *tmpl, Jsonb *data, Jsonb *recipient);

/* ----------------
 * in history.c: moving finished messages out of the outbox, partitions
 * ----------------
 */
extern void history_make_partitions(void);
extern int64 history_archive(int batch);

/* ----------------
 * in inbound.c: replies to SMS channels (reminder.record_inbound)
 * ----------------
 */
extern void inbound_check_settings(Jsonb *settings, const char *channel,
								   const char *provider);

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
 * in stats.c: cumulative delivery counters per database
 * ----------------
 */
extern void stats_install_hooks(void);
extern void stats_count(int64 sent, int64 failed, int64 retried);

#endif							/* OUTBOX_OUTBOX_H */
