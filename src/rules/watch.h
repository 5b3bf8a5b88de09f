/*-------------------------------------------------------------------------
 *
 * watch.h
 *	  Declarations shared by watch.c (reminder.watch() and unwatch()),
 *	  watch_spec.c (checking what watch() was given) and watch_ddl.c (the
 *	  event triggers), grouped by the file that defines them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REMINDER_WATCH_H
#define REMINDER_WATCH_H

#include "utils/array.h"

#include "rules/rules.h"

/* Everything watch() was given, checked. */
typedef struct WatchSpec
{
	Relation	rel;
	Oid			owner;
	char	   *name;
	RuleKind	kind;
	char	   *column;
	Oid			column_type;
	List	   *keys;			/* key column names */
	ArrayType  *offsets;		/* rule-level default, NULL if none */
	char	   *channel;
	char	   *template;
	Jsonb	   *templates;
	char	   *condition;
	char	   *stop;
	List	   *changes_to;		/* text of values */
	bool		business_days;
	char	   *calendar;
	Interval	throttle;
	bool		has_throttle;
	char	   *if_past;
	char	   *time_zone;
	char	   *rrule;			/* recurring: the series */
	List	   *exprs;			/* transformed expressions, for dependencies */
	List	   *roles;			/* roles of the recipients */
	List	   *unless_roles;	/* roles named by "unless" events */
} WatchSpec;

/* ----------------
 * in watch.c
 * ----------------
 */
extern void watch_drop_triggers(Oid relid, int64 id);

/* ----------------
 * in watch_spec.c
 * ----------------
 */
extern Node *watch_parse_as_owner(WatchSpec *w, const char *text, RuleExprType type,
								  const char *what, char **canonical);
extern char *watch_expr_of(JsonbValue *v);
extern void watch_check_table(WatchSpec *w);
extern AttrNumber watch_check_column(WatchSpec *w, const char *name, const char *param,
									 Oid *type);
extern void watch_check_time_column(WatchSpec *w);
extern void watch_check_keys(WatchSpec *w, ArrayType *given);
extern void watch_check_channel_name(const char *name);
extern void watch_check_template_name(const char *name);
extern void watch_check_rrule(WatchSpec *w);
extern List *watch_check_changes_to(WatchSpec *w, ArrayType *given);
extern Jsonb *watch_normalize_recipients(WatchSpec *w, Jsonb *recipients);
extern void watch_values_from_templates(WatchSpec *w, Jsonb *recipients);

#endif							/* REMINDER_WATCH_H */
