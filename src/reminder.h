/*-------------------------------------------------------------------------
 *
 * reminder.h
 *	  Declarations shared by the reminder extension's source files,
 *	  grouped by the file that defines them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REMINDER_H
#define REMINDER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "pgtime.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "spi_util.h"

#define REMINDER_SCHEMA			"reminder"
#define REMINDER_EXTENSION		"reminder"

/* ----------------
 * in reminder.c: GUCs and module load
 * ----------------
 */
extern bool reminder_preloaded;

extern bool reminder_enabled;
extern int	reminder_poll_interval;		/* ms */
extern int	reminder_batch_size;
extern int	reminder_max_concurrent;
extern int	reminder_max_host_connections;
extern int	reminder_timeout;			/* ms, per transfer */
extern int	reminder_connect_timeout;	/* ms */
extern int	reminder_lease_timeout;		/* s */
extern int	reminder_workers_per_database;
extern int	reminder_max_attempts;
extern int	reminder_retry_delay;		/* ms, first retry */
extern int	reminder_retry_max_delay;	/* ms, backoff cap */
extern int	reminder_retention;			/* min, 0 keeps history forever */
extern char *reminder_allowed_hosts;
extern char *reminder_denied_hosts;
extern int	reminder_max_payload_size;	/* bytes */
extern char *reminder_default_locale;
extern char *reminder_default_country_code;
extern char *reminder_link_base_url;
extern int	reminder_link_ttl;			/* min */
extern int	reminder_max_recipients;
extern bool reminder_bounce_opt_out;

/* ----------------
 * in validate.c: checks on user input, each ereport(ERROR)s on failure
 * ----------------
 */
extern void validate_email(const char *addr, const char *what);
extern void validate_mailbox(const char *mailbox, const char *what);
extern List *validate_email_list(Jsonb *obj, const char *key, const char *what);
extern char *normalize_phone(const char *phone, const char *default_cc,
							 const char *what);
extern void validate_url(const char *url, const char *const *schemes,
						 const char *what);
extern void validate_header_value(const char *value, const char *what);
extern void validate_http_header_value(const char *value, const char *what);
extern void validate_header_name(const char *name, const char *what);
extern void validate_time_zone(const char *tz, const char *what);
extern void validate_locale(const char *locale, const char *what);
extern void validate_name(const char *name, const char *kind);
extern void validate_payload_size(Size size, const char *what);
extern int	parse_duration_ms(const char *text, const char *what);
#define PRIORITY_HIGH	1
#define PRIORITY_NORMAL	0
#define PRIORITY_LOW	(-1)
extern int16 parse_priority(const char *text, const char *what);

/* ----------------
 * in channel.c: channel definitions
 * ----------------
 */
typedef enum ChannelKind
{
	CHANNEL_EMAIL,
	CHANNEL_SMS,
	CHANNEL_WEBHOOK,
	CHANNEL_SLACK,
	CHANNEL_LOG
} ChannelKind;

typedef enum StartTlsMode
{
	STARTTLS_WHEN_OFFERED,
	STARTTLS_REQUIRED,
	STARTTLS_NEVER
} StartTlsMode;

/* Which List-Unsubscribe headers a message with an unsubscribe link gets */
typedef enum ListUnsubscribe
{
	LIST_UNSUBSCRIBE_ONE_CLICK,	/* List-Unsubscribe and -Post (RFC 8058) */
	LIST_UNSUBSCRIBE_LINK,		/* List-Unsubscribe only (RFC 2369) */
	LIST_UNSUBSCRIBE_NEVER
} ListUnsubscribe;

/*
 * A channel's settings and secrets, parsed and checked.  The same parser
 * validates create_channel() input and loads channels for the worker, so a
 * channel the worker sees is always one create_channel() accepted.
 */
typedef struct ChannelConfig
{
	char	   *name;
	ChannelKind kind;

	/* delivery policy, defaults from the GUCs */
	double		rate_limit;		/* messages per second, 0 = unlimited */
	int16		priority;		/* of its messages unless they say: 1, 0, -1 */
	int			timeout_ms;
	int			max_attempts;
	int			retry_delay_ms;
	int			retry_max_delay_ms;
	char	   *fallback;		/* channel used when delivery fails, or NULL */

	/* HTTP kinds (webhook, slack, sms) */
	char	   *url;
	char	   *method;
	List	   *headers;		/* "Name: value" strings */
	List	   *recipient_hosts;	/* webhook: HostPattern * recipients may name */

	/* TLS of the email, sms and slack kinds */
	bool		tls_verify;		/* verify the server's certificate (default) */
	char	   *ca_file;		/* certificate authorities to trust, or NULL */

	/* email */
	char	   *from;
	char	   *reply_to;
	List	   *bcc;			/* addresses copied on every message */
	StartTlsMode starttls;
	ListUnsubscribe list_unsubscribe;

	/* sms */
	char	   *provider;		/* twilio, smsapi, generic */
	char	   *sender;			/* "from" of an SMS */
	char	   *base_url;
	char	   *default_country_code;
	bool		transliterate;	/* "unicode": "transliterate" */
	char	   *account_sid;	/* twilio */
	char	   *messaging_service_sid;	/* twilio, instead of "from" */
	char	   *body;			/* generic: templates are url, headers, body */
	char	   *content_type;	/* generic: of the body, picks its escaping */
	char	   *id_field;		/* generic: path of the id in the response */

	/* slack */
	char	   *slack_username;
	char	   *slack_icon_emoji;
	char	   *slack_icon_url;
	char	   *slack_channel;

	Jsonb	   *settings;		/* as stored, for kind-specific extras */
	Jsonb	   *secrets;		/* as stored; never logged */
} ChannelConfig;

extern const char *channel_kind_name(ChannelKind kind);
extern bool channel_kind_from_name(const char *name, ChannelKind *kind);
extern ChannelConfig *channel_parse(const char *name, const char *kind,
									Jsonb *settings, Jsonb *secrets);
/* for the kinds' parse hooks (transport_*.c) */
extern char *channel_what_setting(const char *key, const char *channel);
extern char *channel_get_string(Jsonb *obj, const char *key, const char *channel,
								bool secret);
extern void channel_require(const char *value, const char *key, ChannelConfig *cc,
							const char *hint);
extern void channel_require_secret(const char *value, const char *key,
								   ChannelConfig *cc, const char *hint);
extern void channel_parse_tls(Jsonb *settings, ChannelConfig *cc);
extern List *channel_get_headers(Jsonb *obj, const char *key, ChannelConfig *cc);
extern List *channel_get_recipient_hosts(Jsonb *settings, ChannelConfig *cc);

/* ----------------
 * in origin.c: where URLs connect, and who may receive a channel's secrets
 * ----------------
 */
typedef struct UrlOrigin
{
	char	   *scheme;			/* lower case */
	char	   *host;			/* as libcurl connects: punycode, lower case,
								 * IPv6 in brackets */
	int			port;			/* given or the scheme's default */
	bool		userinfo;		/* the URL holds a user name or password */
} UrlOrigin;

typedef struct HostPattern
{
	char	   *host;			/* normalised as UrlOrigin.host */
	bool		suffix;			/* "*.example.com": names under it */
	int			port;			/* 0: any */
} HostPattern;

extern bool url_origin(const char *url, UrlOrigin *o);
extern char *url_origin_text(const UrlOrigin *o);
extern HostPattern *host_pattern_parse(const char *entry, const char *what);
extern bool host_pattern_matches(const HostPattern *p, const UrlOrigin *o);
extern void check_recipient_url(ChannelConfig *cc, const char *url);
extern char *url_template_authority(const char *tmpl, const char *what);
extern char *host_pattern_text(const HostPattern *p);
extern void channel_destination_url(List **dest, const char *url);
extern List *channel_destinations(ChannelConfig *cc);

/* ----------------
 * in sms_text.c: encoding, segments and transliteration of SMS texts (UTF-8)
 * ----------------
 */
typedef struct SmsCount
{
	bool		gsm7;			/* fits GSM-7; else it goes as UCS-2 */
	int			units;			/* septets, or UTF-16 code units */
	int			segments;		/* SMS it costs */
} SmsCount;

extern void sms_count(const char *text, SmsCount *count);
extern char *sms_transliterate(const char *text);

/* ----------------
 * in crypto.c: HMAC-SHA256, base64url, address hashes
 * ----------------
 */
extern void hmac_sha256(const char *key, size_t keylen, const char *data,
						size_t len, uint8 *digest);
extern char *hmac_sha256_hex(const char *key, size_t keylen,
							 const char *data, size_t len);
extern char *base64url_encode(const uint8 *data, size_t len);
extern int	base64url_decode(const char *text, size_t len, uint8 *out);
extern bytea *address_hash(const char *kind, const char *address);
extern char *address_hash_text(const char *kind, const char *address);

/* ----------------
 * in jsonb_util.c: small helpers over jsonb objects
 * ----------------
 */
extern JsonbValue *jsonb_get(Jsonb *obj, const char *key);
extern char *jsonb_get_text(Jsonb *obj, const char *key);
extern char *jsonb_get_string(Jsonb *obj, const char *key, const char *what);
extern char *jsonb_value_text(JsonbValue *v);
extern Jsonb *jsonb_set_text(Jsonb *obj, const char *key, const char *value);
extern void jsonb_push_key(JsonbParseState **state, const char *key);
extern void jsonb_push_string(JsonbParseState **state, JsonbIteratorToken tok,
							  const char *s);

/* ----------------
 * in catalog.c: reading channels, templates and recipients (inside SPI)
 * ----------------
 */
typedef struct TemplateRow
{
	char	   *name;
	char	   *locale;
	char	   *subject;		/* NULL when the template has none */
	char	   *body;
	char	   *html;			/* NULL when the template has none */
	List	   *required;		/* dotted variable names */
} TemplateRow;

extern void catalog_batch_begin(void);
extern ChannelConfig *catalog_channel(const char *name);
extern TemplateRow *catalog_template(const char *name, const char *locale);
extern Jsonb *catalog_resolve_recipient(Jsonb *recipient, int64 *recipient_id);

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
 * in render.c: a message as it goes out (needs a transaction)
 * ----------------
 */
typedef struct RenderedMessage
{
	char	   *locale;			/* the template locale used */
	char	   *subject;		/* NULL when the template has none */
	char	   *body;
	char	   *html;			/* NULL when the template has none */
	char	   *unsubscribe_url;	/* links.unsubscribe of the context, or NULL */
	char	   *callback_url;	/* links.callback: for provider status reports */
} RenderedMessage;

extern RenderedMessage *render_message(ChannelConfig *cc, const char *template_name,
									   Jsonb *recipient, Jsonb *data,
									   int64 message_id);

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
 * in recipient.c: stored recipients and per-message recipient limits
 * ----------------
 */
extern void recipient_check_message(Jsonb *recipient);

/* ----------------
 * in quiet_hours.c: quiet hours and send windows in the recipient's zone
 * ----------------
 */
#define QUIET_MAX_PERIODS	16

typedef struct QuietPeriod
{
	int			start;			/* minutes after local midnight, 0..1439 */
	int			end;			/* minutes after local midnight, 1..1440 */
	uint8		days;			/* bit n: applies when it starts on tm_wday n */
} QuietPeriod;

typedef struct QuietHours
{
	int			nperiods;
	QuietPeriod periods[QUIET_MAX_PERIODS];
} QuietHours;

extern bool quiet_hours_parse(JsonbValue *v, QuietHours *qh, const char *what,
							  bool throw_error);
extern TimestampTz quiet_hours_next_allowed(const QuietHours *qh,
											pg_tz *zone, TimestampTz at);
extern void quiet_hours_gate(const GateMessage *msg, GateResult *result);

/* ----------------
 * in consent.c: opt-out and opt-in
 * ----------------
 */
extern char *message_category(const char *category, Jsonb *data,
							  const char *template_name);
extern void consent_record(int64 recipient_id, const char *address,
						   const char *channel, const char *category,
						   bool opt_out, const char *source);
extern void consent_gate_prepare(GateMessage *msgs, int n);
extern void consent_gate(const GateMessage *msg, GateResult *result);

/* ----------------
 * in links.c: signed action links and the events they record
 * ----------------
 */
typedef enum LinkAction
{
	LINK_CONFIRM = 1,
	LINK_DECLINE,
	LINK_RESCHEDULE,
	LINK_UNSUBSCRIBE,
	LINK_SCORE,					/* carries a score 0..10 */
	LINK_SURVEY,				/* a survey form: the score comes with the answer */
	LINK_OPEN,
	LINK_CALLBACK				/* provider callbacks: delivered, bounced, ... */
} LinkAction;

extern char *links_token(int64 message_id, LinkAction action, int score,
						 TimestampTz expires_at);
extern Jsonb *links_context(int64 message_id);
extern Jsonb *links_add_to_context(Jsonb *context, int64 message_id);
extern int64 links_record_event(int64 message_id, const char *kind, Jsonb *detail,
								const char *source);

/* reminder.event.kind: the list, and the same for hints */
extern const char *const reminder_event_kinds[];
#define REMINDER_EVENT_KINDS "delivered, bounced, opened, clicked, confirmed, declined, " \
	"reschedule_requested, answered, unsubscribed, complained, replied"

/* ----------------
 * in inbound.c: replies to SMS channels (reminder.record_inbound)
 * ----------------
 */
extern void inbound_check_settings(Jsonb *settings, const char *channel,
								   const char *provider);

/* ----------------
 * in calendar.c: business days and day arithmetic in a time zone
 * ----------------
 */
typedef struct BusinessCalendar
{
	char	   *name;
	uint8		weekend;		/* bit n set: ISO day n (1 = Monday) is off */
	int			nholidays;
	DateADT    *holidays;		/* sorted */
} BusinessCalendar;

extern BusinessCalendar *calendar_load(const char *name);
extern bool calendar_is_business_day(const BusinessCalendar *cal, DateADT day);
extern TimestampTz calendar_add(TimestampTz ts, const Interval *offset, int sign,
								const BusinessCalendar *cal, struct pg_tz *tz);

/* ----------------
 * in rrule.c: recurrence rules (an RFC 5545 subset) and their occurrences
 * ----------------
 */
typedef struct RRule RRule;

extern RRule *rrule_parse(const char *text);
extern bool rrule_next(const RRule *r, TimestampTz dtstart, struct pg_tz *tz,
					   const BusinessCalendar *cal, TimestampTz after,
					   bool inclusive, TimestampTz *result);
extern bool rrule_prev(const RRule *r, TimestampTz dtstart, struct pg_tz *tz,
					   const BusinessCalendar *cal, TimestampTz before,
					   TimestampTz *result);
extern char *rrule_instant_key(TimestampTz t);

/* ----------------
 * in rules_expr.c: SQL expressions over the row of a watched table
 * ----------------
 */
typedef enum RuleExprType
{
	REXPR_BOOL,					/* condition, stop_condition, when */
	REXPR_TEXT,					/* channel, template, recipient fields */
	REXPR_JSONB,				/* a whole recipient */
	REXPR_ANY_JSONB,			/* bcc: any type, passed through to_jsonb() */
	REXPR_INTERVALS,			/* offsets: interval or interval[] */
	REXPR_TIME					/* invite start and end: timestamptz,
								 * timestamp or date, as it is */
} RuleExprType;

extern Node *rule_expr_parse(Relation rel, const char *text, RuleExprType type,
							 const char *what, const char *rule_name);
extern char *rule_expr_deparse(Node *expr, Relation rel);
extern char *rule_expr_canonical(Relation rel, const char *text, RuleExprType type,
								 const char *what, const char *rule_name,
								 Node **expr);
extern char *rule_expr_rename(Relation rel, const char *text, const char *oldname,
							  const char *newname, bool table);
extern int	rule_pin_search_path(void);
extern void rule_unpin(int level);
extern void rule_pin_styles(void);
extern bool rule_expr_runs_code(Node *expr);

/* ----------------
 * in owner.c: running as the extension's or a table's owner, and back
 * ----------------
 */
typedef struct OwnerContext
{
	Oid			save_userid;
	int			save_sec;
	int			level;			/* GUC nest level, rolled back on leave */
	int			flags;
} OwnerContext;

#define OWNER_PIN_SEARCH_PATH	0x01	/* search_path pg_catalog, pg_temp */
#define OWNER_RESTRICTED		0x02	/* a table owner's code */

extern void owner_enter(OwnerContext *ctx, Oid owner, int flags);
extern void owner_leave(OwnerContext *ctx);
extern void owner_worker_session(void);

/* ----------------
 * in rules_cache.c: rules compiled per backend, dropped when a rule,
 * channel, template or calendar changes
 * ----------------
 */
typedef enum RuleKind
{
	RULE_BEFORE,
	RULE_AFTER,
	RULE_ON_CHANGE,
	RULE_FOLLOW_UP,
	RULE_SURVEY,
	RULE_RECURRING
} RuleKind;

/* A setting that is a constant or an expression over the row. */
typedef struct RuleValue
{
	int			expr;			/* index into CompiledRule.exprs, or -1 */
	bool		isnull;			/* constant NULL (or absent) */
	Datum		value;			/* the constant, when expr < 0 */
} RuleValue;

typedef struct RuleField
{
	char	   *key;			/* recipient key: email, phone, name ... */
	int			expr;			/* its expression (text) */
} RuleField;

typedef struct RuleRecipient
{
	int			index;			/* position in the rule; part of message keys */
	char	   *role;			/* NULL when none */
	RuleValue	channel;		/* constant: C string */
	RuleValue	template;		/* constant: C string; unused with templates */
	Jsonb	   *templates;		/* {value: template} or [template per step] */
	int			offsets_expr;	/* interval[] expression, or -1 */
	int			noffsets;		/* constant offsets */
	Interval   *offsets;
	Jsonb	   *to_const;		/* the constant part of the address */
	List	   *to_fields;		/* RuleField: keys computed per row */
	int			to_expr;		/* jsonb expression: the whole address, or -1 */
	RuleValue	bcc;			/* constant: Jsonb */
	int			when;			/* boolean expression, or -1 */
	bool		constant;		/* nothing about the address varies per row */
	Jsonb	   *digest;			/* digest settings (digest.c), or NULL */

	/* "unless": the message is not needed once one of these holds */
	int			unless;			/* boolean expression, or -1 */
	char	   *unless_text;	/* its canonical text, for the send-time check */
	List	   *unless_events;	/* RuleUnlessEvent */
	SPIPlanPtr	unless_plan;	/* rules_gate.c: the expression at send time */

	struct RuleInvite *invite;	/* "invite": NULL when none */
} RuleRecipient;

/* An iCalendar event sent with a recipient's emails (ical.c). */
typedef struct RuleInvite
{
	RuleValue	summary;		/* text */
	RuleValue	location;
	RuleValue	description;
	int			start;			/* expression: timestamptz, timestamp, date */
	int			end;			/* the same, or -1: start + duration */
	Interval	duration;
	char	   *organizer;		/* mailbox, or NULL: the channel's "from" */
	char	   *template;		/* for invitations and updates; NULL: the
								 * recipient's first step's */
	char	   *cancel_template;	/* for cancellations; NULL: as template */
} RuleInvite;

/* An event that makes a recipient's message unnecessary. */
typedef struct RuleUnlessEvent
{
	List	   *kinds;			/* C strings: confirmed, declined ... */
	char	   *role;			/* only on messages to recipients of this
								 * role; NULL: of any */
} RuleUnlessEvent;

typedef struct CompiledRule
{
	int64		id;
	char	   *name;
	RuleKind	kind;
	Oid			relid;
	Oid			owner;			/* table owner: user expressions run as it */
	char	   *source_table;	/* qualified name, for message.source_table */
	AttrNumber	column;			/* anchor or watched column */
	Oid			column_type;
	int			nkeys;
	AttrNumber *key_columns;
	FmgrInfo   *key_out;
	Oid		   *key_types;
	int			condition;		/* expression index, or -1 */
	int			stop;			/* expression index, or -1 */
	char	   *stop_text;		/* canonical, for the send-time check */
	char	   *condition_text;
	int			nchanges;		/* on_change/survey: values, 0 = any */
	char	  **changes_to;
	List	   *recipients;		/* RuleRecipient */
	bool		business_days;	/* recurring: leave out days off */
	BusinessCalendar *calendar;
	RRule	   *rrule;			/* recurring: the series */
	struct pg_tz *tz;
	bool		send_past;
	Interval	throttle;
	char	   *category;		/* consent category of its messages */
	int16		priority;		/* of its messages: 1, 0, -1 */
	List	   *exprs;			/* planned Expr, evaluated as owner */
	Bitmapset  *plain_exprs;	/* indexes of those that run no code
								 * (rule_expr_runs_code): no owner scope */
	bool		deterministic;	/* no expression calls a mutable function */
	bool		live_row;		/* before/after/follow_up: messages store no
								 * copy of the row; it is read at send time */
	Bitmapset  *columns;		/* attnos (offset by
								 * FirstLowInvalidHeapAttributeNumber) of the
								 * columns the rule reads */
	Expr	   *data_new;		/* {"row": new} */
	Expr	   *data_old;		/* {"row": new, "old": old} */
	FmgrInfo	column_out;		/* on_change/survey: output of column */

	/* bookkeeping */
	MemoryContext cxt;
	int			refcount;
	bool		stale;
	SPIPlanPtr	gate_plan;		/* rules_gate.c: row lookup at send time */
	SPIPlanPtr	rows_plan;		/* rules_gate.c: rows read at send time */
	SPIPlanPtr	next_plan;		/* rules_gate.c: a recurring rule's row */
} CompiledRule;

extern CompiledRule *rule_cache_get(int64 rule_id, bool missing_ok);
extern void rule_cache_release(CompiledRule *rule);
extern ChannelConfig *rule_cache_channel(const char *name);
extern TemplateRow *rule_cache_template(const char *name, const char *locale);
extern Oid	extension_owner(void);
extern Oid	rule_relation_oid(void);
extern RuleKind rule_kind_from_name(const char *kind);
extern const char *rule_kind_name(RuleKind kind);
extern char *rule_source_key(CompiledRule *rule, TupleTableSlot *slot);
extern char *rule_source_key_of(CompiledRule *rule, Datum *values, bool *nulls);

/* ----------------
 * in rules.c: the watch trigger
 * ----------------
 */
#define RULE_CANCEL_PREFIX	"rule: "

extern void rules_backfill(CompiledRule *rule);
extern int64 rules_cancel_pending(int64 rule_id, const char *reason);
extern char *rule_key_prefix(int64 rule_id, const char *row_key);
extern char *rule_key_prefix_end(const char *prefix);
extern bool rule_anchor_time(CompiledRule *rule, Datum d, TimestampTz *result);

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
 * in wakeup.c: waking the worker at commit
 * ----------------
 */
extern void wakeup_at_commit(TimestampTz due_at);

/* ----------------
 * in shmem.c: state shared with the background workers
 * ----------------
 */
typedef enum WorkerState
{
	WORKER_FREE = 0,			/* slot unused */
	WORKER_STARTING,			/* registered, not yet running */
	WORKER_RUNNING,				/* delivering */
	WORKER_STANDBY,				/* idle: the server is in recovery */
	WORKER_DISABLED,			/* idle: reminder.enabled is off */
	WORKER_OTHER_VERSION,		/* idle: the installed SQL is not this library's version */
	WORKER_STOPPING,			/* asked to exit (DROP DATABASE, DROP EXTENSION) */
	WORKER_NO_EXTENSION			/* exited: the extension is not installed */
} WorkerState;

/*
 * One per sender (delivery worker) running; a database has
 * reminder.workers_per_database of them.  The launcher hands them out.
 */
typedef struct WorkerSlot
{
	Oid			dboid;
	int			sender;			/* 0 .. workers_per_database - 1 */
	bool		retiring;		/* stopping: beyond workers_per_database */
	pid_t		pid;
	Latch	   *latch;			/* the worker's process latch */
	WorkerState state;
	TimestampTz started_at;
	TimestampTz last_loop;
	TimestampTz next_wake;		/* the worker sleeps until then at most */
	int			in_flight;
	int64		sent;
	int64		failed;
	int64		retried;
} WorkerSlot;

/*
 * A database whose worker must stay away for a while: DROP DATABASE, ALTER
 * DATABASE and CREATE DATABASE ... TEMPLATE need it to have no connection.
 */
typedef struct DatabaseHold
{
	Oid			dboid;			/* InvalidOid: entry unused */
	TimestampTz until;			/* the hold lapses then even if not released */
} DatabaseHold;

#define REMINDER_MAX_HOLDS	16

/* Most senders one database may have (reminder.workers_per_database). */
#define REMINDER_MAX_SENDERS	32

typedef struct ReminderShared
{
	LWLock	   *lock;			/* protects everything below */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	TimestampTz launcher_started_at;
	bool		rescan;			/* launcher should look for databases */
	Oid			retry_db;		/* a database it wrote off now has the extension */
	bool		retry_all;		/* ... several did: try them all again */
	DatabaseHold holds[REMINDER_MAX_HOLDS];
	int			nslots;
	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} ReminderShared;

extern ReminderShared *reminder_shared;

extern void shmem_install_hooks(void);
extern WorkerSlot *shmem_find_slot(Oid dboid, int sender);
extern void shmem_wake_database(Oid dboid, TimestampTz due_at);
extern void shmem_wake_launcher(bool rescan);
extern void shmem_wake_launcher_for(Oid dboid);
extern bool shmem_stop_worker(Oid dboid, int timeout_ms);
extern void shmem_release_hold(Oid dboid);
extern bool shmem_database_held(Oid dboid);

/* ----------------
 * in limits.c: what the senders of a database share: the token buckets of
 * rate-limited channels and the transfers in flight per host
 * ----------------
 */
#define LIMITS_MAX_BUCKETS		256 /* rate-limited channels, all databases */
#define LIMITS_MAX_HOSTS		256 /* hosts in use, all databases */

extern void limits_shmem_request(void);
extern void limits_shmem_startup(void);
extern int	limits_bucket_take(const char *channel, double rate, TimestampTz now,
							   int want, double *left);
extern void limits_bucket_give_back(const char *channel, double rate, int n);
extern bool limits_host_add(const char *key, const char *channel, int delta,
							int max, int reserve, int *hint, bool *counted);
extern bool limits_host_has_room(const char *key, const char *channel,
								 int max, int reserve, int *hint);
extern int	limits_host_channel_load(const char *key, const char *channel, int *hint);

/* ----------------
 * in stats.c: cumulative delivery counters per database
 * ----------------
 */
extern void stats_install_hooks(void);
extern void stats_count(int64 sent, int64 failed, int64 retried);

/* ----------------
 * in launcher.c: the launcher and the hook that keeps workers out of the
 * way of DROP/ALTER/CREATE DATABASE
 * ----------------
 */
extern void launcher_register(void);
extern void launcher_install_hooks(void);
extern PGDLLEXPORT void reminder_launcher_main(Datum main_arg);

/* ----------------
 * in worker.c: the per-database delivery loop
 * ----------------
 */
extern PGDLLEXPORT void reminder_worker_main(Datum main_arg);

/* ----------------
 * in hostpolicy.c: which addresses outgoing requests may reach
 * ----------------
 */
struct sockaddr;

/*
 * The default of reminder.denied_hosts: link-local addresses (IPv4 and
 * IPv6), which hold the metadata endpoints of AWS, GCP, Azure, Oracle,
 * DigitalOcean, OpenStack and others at 169.254.169.254, and the cloud
 * endpoints outside them: Alibaba Cloud's metadata (100.100.100.200),
 * Azure's WireServer (168.63.129.16), Oracle Cloud Classic's metadata
 * (192.0.0.192) and the IPv6 metadata endpoints of AWS (fd00:ec2::254),
 * GCP (fd20:ce::254) and Oracle Cloud (fd00:c1::a9fe:a9fe).
 */
#define REMINDER_DEFAULT_DENIED_HOSTS \
	"169.254.0.0/16, fe80::/10, 100.100.100.200, 168.63.129.16, 192.0.0.192, " \
	"fd00:ec2::254, fd20:ce::254, fd00:c1::a9fe:a9fe"

extern bool hostpolicy_check_list(const char *list, char **bad_entry);
extern void hostpolicy_load(void);
extern bool hostpolicy_permits(const char *host, const struct sockaddr *addr,
							   char *why, size_t whylen);

#endif							/* REMINDER_H */
