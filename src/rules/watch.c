/*-------------------------------------------------------------------------
 *
 * watch.c
 *	  reminder.watch() and reminder.unwatch().
 *
 *	  watch() checks everything before writing anything (watch_spec.c),
 *	  then stores the rule in normalized form (expressions deparsed),
 *	  creates the four triggers, and records that they depend on every
 *	  column, function, operator and type the rule uses, so DROP COLUMN or
 *	  DROP FUNCTION of something a rule needs is refused (or, with CASCADE,
 *	  drops the rule).  The event triggers that follow DDL on watched
 *	  tables are in watch_ddl.c.
 *
 *	  No SQL is built from user text: identifiers are quoted with
 *	  quote_identifier(), values are passed as parameters, and expressions
 *	  are stored only in the deparsed form the parser produced.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "reminder.h"
#include "gate/gate.h"
#include "rules/rules.h"
#include "rules/watch.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_watch);
PG_FUNCTION_INFO_V1(reminder_unwatch);

#define MAX_RULE_NAME	40

static const char *const trigger_events[] = {"insert", "update", "delete", "truncate"};

/* ----------------------------------------------------------------
 *		Small helpers
 * ----------------------------------------------------------------
 */

static char *
text_or_null(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

static void
not_for_kind(WatchSpec *w, const char *param, const char *kinds)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s is not used by %s rules", param, rule_kind_name(w->kind)),
			 errhint("%s applies to %s rules.", param, kinds)));
}

static bool
valid_rule_name(const char *name)
{
	size_t		len = strlen(name);

	return len > 0 && len <= MAX_RULE_NAME &&
		((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')) &&
		strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

static char *
trigger_name(const char *rule, const char *event)
{
	return psprintf("reminder_%s_%s", rule, event);
}

/* ----------------------------------------------------------------
 *		Triggers and their dependencies
 * ----------------------------------------------------------------
 */

static void
create_triggers(WatchSpec *w, int64 id)
{
	char	   *table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(w->rel)),
												   RelationGetRelationName(w->rel));
	char	   *arg = quote_literal_cstr(psprintf(INT64_FORMAT, id));
	List	   *vars = NIL;
	ListCell   *lc;
	Node	   *deps;

	for (int i = 0; i < lengthof(trigger_events); i++)
	{
		const char *ev = trigger_events[i];
		const char *ref = i == 0 ? "REFERENCING NEW TABLE AS reminder_new " :
			i == 1 ? "REFERENCING OLD TABLE AS reminder_old NEW TABLE AS reminder_new " :
			i == 2 ? "REFERENCING OLD TABLE AS reminder_old " : "";
		char	   *sql = psprintf("CREATE TRIGGER %s AFTER %s ON %s %sFOR EACH STATEMENT "
								   "EXECUTE FUNCTION reminder.watch_trigger(%s)",
								   quote_identifier(trigger_name(w->name, ev)),
								   i == 0 ? "INSERT" : i == 1 ? "UPDATE" : i == 2 ? "DELETE" : "TRUNCATE",
								   table, ref, arg);

		spi_exec_expect(sql, 0, NULL, NULL, NULL, false, 0, SPI_OK_UTILITY);
	}

	/* the columns the rule reads, and everything its expressions use */
	foreach(lc, w->keys)
	{
		AttrNumber	attno = get_attnum(RelationGetRelid(w->rel), lfirst(lc));

		vars = lappend(vars, makeVar(1, attno, get_atttype(RelationGetRelid(w->rel), attno),
									 -1, InvalidOid, 0));
	}
	vars = lappend(vars, makeVar(1, get_attnum(RelationGetRelid(w->rel), w->column),
								 w->column_type, -1, InvalidOid, 0));
	deps = (Node *) list_concat(vars, w->exprs);

	CommandCounterIncrement();
	for (int i = 0; i < lengthof(trigger_events); i++)
	{
		ObjectAddress trig;

		trig.classId = TriggerRelationId;
		trig.objectId = get_trigger_oid(RelationGetRelid(w->rel),
										trigger_name(w->name, trigger_events[i]), false);
		trig.objectSubId = 0;
		recordDependencyOnSingleRelExpr(&trig, deps, RelationGetRelid(w->rel),
										DEPENDENCY_NORMAL, DEPENDENCY_NORMAL, false);
	}
}

/* Drop the triggers of rule id on relid, whatever they are called now. */
void
watch_drop_triggers(Oid relid, int64 id)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	char	   *table;

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return;
	table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									   get_rel_name(relid));
	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(psprintf(INT64_FORMAT, id));
	spi_exec_expect("SELECT t.tgname FROM pg_catalog.pg_trigger t "
					"WHERE t.tgrelid = $1 AND t.tgfoid = 'reminder.watch_trigger()'::pg_catalog.regprocedure "
					"AND t.tgargs = pg_catalog.convert_to($2, 'SQL_ASCII') || '\\x00'::pg_catalog.bytea",
					2, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		SPITupleTable *tt = SPI_tuptable;
		uint64		n = SPI_processed;

		for (uint64 i = 0; i < n; i++)
			spi_exec_expect(psprintf("DROP TRIGGER %s ON %s",
									 quote_identifier(SPI_getvalue(tt->vals[i], tt->tupdesc, 1)), table),
							0, NULL, NULL, NULL, false, 0, SPI_OK_UTILITY);
	}
}

/* ----------------------------------------------------------------
 *		watch()
 * ----------------------------------------------------------------
 */

Datum
reminder_watch(PG_FUNCTION_ARGS)
{
	WatchSpec	w = {0};
	Oid			relid;
	char	   *kind;
	Jsonb	   *recipients;
	bool		backfill = PG_ARGISNULL(18) ? false : PG_GETARG_BOOL(18);
	Oid			types[18] = {TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID,
		TEXTOID, TEXTOID, TEXTARRAYOID, BOOLOID, TEXTOID, TEXTOID, TEXTOID,
	INTERVALOID, NAMEOID, TEXTOID, INT2OID, TEXTOID};
	Datum		values[18];
	char		nulls[18];
	char	   *category;
	int16		priority;
	int64		id;
	int			level;
	Oid			save_userid;
	int			save_sec;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table_name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kind must not be null"),
				 errhint("Use one of before, after, on_change, follow_up, survey, recurring.")));
	relid = PG_GETARG_OID(0);
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	w.kind = rule_kind_from_name(kind);

	/*
	 * The function runs as the extension owner (SECURITY DEFINER); checks
	 * use the caller.  No switch, so no owner_enter(): the identity is only
	 * saved, to be restored on the way out.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	level = rule_pin_search_path();
	rule_pin_styles();
	SPI_connect();

	w.rel = try_relation_open(relid, ShareRowExclusiveLock);
	if (w.rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	watch_check_table(&w);

	/* name */
	w.name = text_or_null(fcinfo, 2);
	if (w.name == NULL)
	{
		char	   *base = psprintf("%s_%s", RelationGetRelationName(w.rel), kind);

		for (char *p = base; *p; p++)
			if (!isalnum((unsigned char) *p) && *p != '_')
				*p = '_';
		if (!isalpha((unsigned char) base[0]))
			base = psprintf("r_%s", base);
		w.name = pnstrdup(base, MAX_RULE_NAME);
	}
	if (!valid_rule_name(w.name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid rule name \"%s\"", w.name),
				 errhint("A rule name starts with a letter and has at most %d letters, digits or \"_\".",
						 MAX_RULE_NAME)));
	{
		Oid			t[1] = {TEXTOID};
		Datum		v[1] = {CStringGetTextDatum(w.name)};

		spi_exec_expect("SELECT 1 FROM reminder.rule WHERE name = $1", 1, t, v, NULL, false, 0, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("rule \"%s\" already exists", w.name),
					 errhint("Choose another name, or reminder.unwatch('%s') first.", w.name)));
	}

	/*
	 * The consent category of its messages: an unsubscribe from one step
	 * of a sequence stops the others, whatever their templates.
	 */
	category = PG_NARGS() > 19 ? text_or_null(fcinfo, 19) : NULL;	/* 0.1.0 had 19 */
	if (category == NULL)
		category = w.name;
	validate_name(category, "category");
	{
		char	   *p = PG_NARGS() > 20 ? text_or_null(fcinfo, 20) : NULL;

		priority = p ? parse_priority(p, "priority") : 0;
	}

	/* the column */
	w.column = text_or_null(fcinfo, 3);
	if (w.column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a %s rule needs column_name", kind),
				 errhint(w.kind == RULE_ON_CHANGE || w.kind == RULE_SURVEY ?
						 "Name the column whose changes count, such as column_name => 'status'." :
						 "Name the timestamp column, such as column_name => 'starts_at'.")));
	if (w.kind == RULE_ON_CHANGE || w.kind == RULE_SURVEY)
		(void) watch_check_column(&w, w.column, "column_name", &w.column_type);
	else
		watch_check_time_column(&w);

	watch_check_keys(&w, PG_ARGISNULL(17) ? NULL : PG_GETARG_ARRAYTYPE_P(17));

	/* settings recipients inherit */
	w.offsets = PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4);
	if (w.offsets && ARR_NDIM(w.offsets) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offsets must be a one-dimensional array")));
	if (w.offsets && w.kind == RULE_RECURRING)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offsets is not used by recurring rules"),
				 errhint("A recurring rule's messages are due at its occurrences: say the time of day in the RRULE, such as BYHOUR=8;BYMINUTE=45.")));
	w.channel = text_or_null(fcinfo, 5);
	if (w.channel)
		watch_check_channel_name(w.channel);
	w.template = text_or_null(fcinfo, 6);
	if (w.template)
		watch_check_template_name(w.template);
	w.templates = PG_ARGISNULL(10) ? NULL : PG_GETARG_JSONB_P(10);
	w.business_days = PG_ARGISNULL(12) ? false : PG_GETARG_BOOL(12);
	if (w.business_days && w.kind != RULE_FOLLOW_UP && w.kind != RULE_AFTER && w.kind != RULE_BEFORE &&
		w.kind != RULE_RECURRING)
		not_for_kind(&w, "business_days", "before, after, follow_up and recurring");
	if (w.templates && w.kind == RULE_RECURRING)
		not_for_kind(&w, "templates", "on_change, survey and follow_up");

	/* calendar, time zone, past, throttle */
	w.calendar = PG_ARGISNULL(13) ? "default" : text_to_cstring(PG_GETARG_TEXT_PP(13));
	if (strcmp(w.calendar, "default") != 0)
	{
		Oid			t[1] = {TEXTOID};
		Datum		v[1] = {CStringGetTextDatum(w.calendar)};

		spi_exec_expect("SELECT 1 FROM reminder.calendar WHERE name = $1", 1, t, v, NULL, false, 0, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("calendar \"%s\" does not exist", w.calendar),
					 errhint("Insert it into reminder.calendar, or use the calendar \"default\".")));
	}
	w.time_zone = text_or_null(fcinfo, 16);
	if (w.time_zone == NULL)
		w.time_zone = pstrdup(pg_get_timezone_name(session_timezone));
	validate_time_zone(w.time_zone, "time_zone");
	w.rrule = PG_NARGS() > 21 ? text_or_null(fcinfo, 21) : NULL;	/* 0.1.0 had 19 */
	if (w.rrule && w.kind != RULE_RECURRING)
		not_for_kind(&w, "rrule", "recurring");
	if (w.kind == RULE_RECURRING)
		watch_check_rrule(&w);
	w.if_past = PG_ARGISNULL(15) ? "skip" : text_to_cstring(PG_GETARG_TEXT_PP(15));
	if (strcmp(w.if_past, "skip") != 0 && strcmp(w.if_past, "send") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("if_past must be \"skip\" or \"send\", not \"%s\"", w.if_past),
				 errdetail("It says what happens to a message whose time has passed when the row is written.")));
	if (w.kind == RULE_RECURRING && strcmp(w.if_past, "send") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("if_past => 'send' is not used by recurring rules"),
				 errdetail("A recurring rule schedules its first occurrence at or after the time the row is written; occurrences before it are not sent."),
				 errhint("Leave if_past out.")));
	if (!PG_ARGISNULL(14))
	{
		if (w.kind != RULE_SURVEY)
			not_for_kind(&w, "throttle", "survey");
		w.throttle = *PG_GETARG_INTERVAL_P(14);
		if (w.throttle.month < 0 || w.throttle.day < 0 || w.throttle.time < 0 ||
			(w.throttle.month == 0 && w.throttle.day == 0 && w.throttle.time == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("throttle must be a positive interval such as '90 days'")));
		w.has_throttle = true;
	}
	else if (w.kind == RULE_SURVEY)
	{
		w.throttle.day = 90;
		w.has_throttle = true;
	}

	/* changes_to */
	if (!PG_ARGISNULL(9))
	{
		if (w.kind != RULE_ON_CHANGE && w.kind != RULE_SURVEY)
			not_for_kind(&w, "changes_to", "on_change and survey");
		w.changes_to = watch_check_changes_to(&w, PG_GETARG_ARRAYTYPE_P(9));
	}
	else if (w.kind == RULE_SURVEY)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a survey rule needs changes_to"),
				 errhint("Say which values of %s start a survey, such as changes_to => '{completed}'.",
						 w.column)));

	/* expressions and recipients */
	if (!PG_ARGISNULL(8))
		(void) watch_parse_as_owner(&w, text_to_cstring(PG_GETARG_TEXT_PP(8)), REXPR_BOOL,
									"condition", &w.condition);
	if (!PG_ARGISNULL(11))
		(void) watch_parse_as_owner(&w, text_to_cstring(PG_GETARG_TEXT_PP(11)), REXPR_BOOL,
									"stop_condition", &w.stop);
	recipients = watch_normalize_recipients(&w, PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7));
	if (w.kind == RULE_ON_CHANGE && w.changes_to == NIL)
		watch_values_from_templates(&w, recipients);

	/* store the rule */
	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(w.name);
	values[1] = ObjectIdGetDatum(relid);
	values[2] = CStringGetTextDatum(rule_kind_name(w.kind));
	values[3] = CStringGetTextDatum(w.column);
	{
		Datum	   *k = palloc(sizeof(Datum) * list_length(w.keys));
		ListCell   *lc;
		int			i = 0;

		foreach(lc, w.keys)
			k[i++] = CStringGetTextDatum(lfirst(lc));
		values[4] = PointerGetDatum(construct_array(k, i, TEXTOID, -1, false, TYPALIGN_INT));
	}
	values[5] = JsonbPGetDatum(recipients);
	values[6] = w.condition ? CStringGetTextDatum(w.condition) : (Datum) 0;
	nulls[6] = w.condition ? ' ' : 'n';
	values[7] = w.stop ? CStringGetTextDatum(w.stop) : (Datum) 0;
	nulls[7] = w.stop ? ' ' : 'n';
	if (w.changes_to)
	{
		Datum	   *k = palloc(sizeof(Datum) * list_length(w.changes_to));
		ListCell   *lc;
		int			i = 0;

		foreach(lc, w.changes_to)
			k[i++] = CStringGetTextDatum(lfirst(lc));
		values[8] = PointerGetDatum(construct_array(k, i, TEXTOID, -1, false, TYPALIGN_INT));
	}
	else
		nulls[8] = 'n';
	values[9] = BoolGetDatum(w.business_days);
	values[10] = CStringGetTextDatum(w.calendar);
	values[11] = CStringGetTextDatum(w.time_zone);
	values[12] = CStringGetTextDatum(w.if_past);
	values[13] = w.has_throttle ? IntervalPGetDatum(&w.throttle) : (Datum) 0;
	nulls[13] = w.has_throttle ? ' ' : 'n';
	values[14] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetOuterUserId(), false)));
	values[15] = CStringGetTextDatum(category);
	values[16] = Int16GetDatum(priority);
	values[17] = w.rrule ? CStringGetTextDatum(w.rrule) : (Datum) 0;
	nulls[17] = w.rrule ? ' ' : 'n';

	spi_exec_expect("INSERT INTO reminder.rule (name, table_name, kind, column_name, key_columns, recipients, "
					"condition, stop_condition, changes_to, business_days, calendar, time_zone, if_past, "
					"throttle, created_by, category, priority, rrule) "
					"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
					18, types, values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	{
		bool		isnull;

		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	create_triggers(&w, id);
	relation_close(w.rel, NoLock);
	SPI_finish();

	if (backfill)
	{
		CompiledRule *rule;

		CommandCounterIncrement();
		rule = rule_cache_get(id, false);
		PG_TRY();
		{
			rules_backfill(rule);
		}
		PG_FINALLY();
		{
			rule_cache_release(rule);
		}
		PG_END_TRY();
	}

	rule_unpin(level);
	SetUserIdAndSecContext(save_userid, save_sec);
	PG_RETURN_INT64(id);
}

/* ----------------------------------------------------------------
 *		unwatch()
 * ----------------------------------------------------------------
 */

Datum
reminder_unwatch(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		cancel = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	int64		id;
	Oid			relid;
	bool		isnull;
	int64		cancelled = 0;
	int			level;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rule name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	values[0] = CStringGetTextDatum(name);

	level = rule_pin_search_path();
	SPI_connect();
	spi_exec_expect("SELECT id, table_name::oid FROM reminder.rule WHERE name = $1 FOR UPDATE",
					1, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rule \"%s\" does not exist", name),
				 errhint("See the reminder.rule table for existing rules.")));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
	{
		LockRelationOid(relid, ShareRowExclusiveLock);
		if (!pg_class_ownercheck(relid, GetOuterUserId()))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of table %s", get_rel_name(relid)),
					 errhint("Only the owner of the watched table can remove its rules.")));
	}

	/* pending messages that stay must not need the rule to be rendered */
	if (!cancel)
		rule_keep_rows(id);

	/* the rule goes first, so dropping its triggers finds nothing to do */
	{
		Oid			t[1] = {INT8OID};
		Datum		v[1] = {Int64GetDatum(id)};

		spi_exec_expect("DELETE FROM reminder.rule WHERE id = $1", 1, t, v, NULL, false, 0, SPI_OK_DELETE);
	}
	watch_drop_triggers(relid, id);
	if (cancel)
		cancelled = rules_cancel_pending(id, RULE_CANCEL_PREFIX "unwatched");
	SPI_finish();
	rule_unpin(level);

	PG_RETURN_INT64(cancelled);
}
