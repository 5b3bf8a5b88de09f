/*-------------------------------------------------------------------------
 *
 * rules/rules.h
 *	  Declarations of the rules family: recurrence rules, expressions
 *	  over watched rows, compiled rules, the watch trigger.  (watch():
 *	  rules/watch.h.)
 *
 *-------------------------------------------------------------------------
 */
#ifndef RULES_RULES_H
#define RULES_RULES_H

#include "reminder.h"
#include "catalog/reminder_catalog.h"

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

#endif							/* RULES_RULES_H */
