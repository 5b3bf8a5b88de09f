/*-------------------------------------------------------------------------
 *
 * rules_api.c
 *	  reminder.watch() and reminder.unwatch(), and the event triggers that
 *	  keep rules in step with DDL on the tables they watch.
 *
 *	  watch() checks everything before writing anything: the caller owns
 *	  the table, the columns exist and have the right types, channels and
 *	  templates named as constants exist, every expression parses as one
 *	  expression over the row with the right type and no volatile function
 *	  (rules_expr.c), and constant addresses are valid for their channels.
 *	  It then stores the rule in normalized form (expressions deparsed),
 *	  creates the four triggers, and records that they depend on every
 *	  column, function, operator and type the rule uses, so DROP COLUMN or
 *	  DROP FUNCTION of something a rule needs is refused (or, with CASCADE,
 *	  drops the rule).
 *
 *	  No SQL is built from user text: identifiers are quoted with
 *	  quote_identifier(), values are passed as parameters, and expressions
 *	  are stored only in the deparsed form the parser produced.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "pgtime.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "reminder.h"

PG_FUNCTION_INFO_V1(reminder_watch);
PG_FUNCTION_INFO_V1(reminder_unwatch);
PG_FUNCTION_INFO_V1(reminder_watch_sql_drop);
PG_FUNCTION_INFO_V1(reminder_watch_ddl_end);

#define MAX_RULE_NAME	40

static const char *const trigger_events[] = {"insert", "update", "delete", "truncate"};

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

/* run an SPI statement with parameters, checking the result */
static void
spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "SPI failed (%s) for \"%s\"", SPI_result_code_string(rc), sql);
}

/*
 * Check an expression for a setting as the table owner (search_path is
 * pinned by the caller); returns it transformed, and its canonical text.
 * Planning may already run the owner's immutable functions: in an owner
 * scope, so that nothing they do outlives it.
 */
static Node *
parse_as_owner(WatchSpec *w, const char *text, RuleExprType type, const char *what,
			   char **canonical)
{
	RuleOwnerScope scope;
	Node	   *expr;
	EState	   *estate;

	rule_owner_enter(&scope, w->owner);
	*canonical = rule_expr_canonical(w->rel, text, type, what, w->name, &expr);

	/* the owner must be allowed to call every function it uses */
	estate = CreateExecutorState();
	(void) ExecPrepareExpr(expression_planner((Expr *) expr), estate);
	FreeExecutorState(estate);
	rule_owner_leave(&scope);

	w->exprs = lappend(w->exprs, expr);
	return expr;
}

/* ----------------------------------------------------------------
 *		Building jsonb
 * ----------------------------------------------------------------
 */

static void
push_string(JsonbParseState **st, JsonbIteratorToken tok, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(st, tok, &v);
}

static void
push_expr(JsonbParseState **st, const char *key, const char *text)
{
	if (key)
		jsonb_push_key(st, key);
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	jsonb_push_key(st, "expr");
	push_string(st, WJB_VALUE, text);
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/* {"expr": "..."} → the text; NULL otherwise */
static char *
expr_of(JsonbValue *v)
{
	Jsonb	   *obj;
	JsonbValue *e;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) != 1)
		return NULL;
	obj = JsonbValueToJsonb(v);
	e = jsonb_get(obj, "expr");
	if (e == NULL)
		return NULL;
	if (e->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"expr\" must be a string holding an SQL expression")));
	return pnstrdup(e->val.string.val, e->val.string.len);
}

static bool
is_object(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
is_array(JsonbValue *v)
{
	return v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

static char *
string_of(JsonbValue *v)
{
	return (v && v->type == jbvString) ? pnstrdup(v->val.string.val, v->val.string.len) : NULL;
}

/* ----------------------------------------------------------------
 *		Checking watch() arguments
 * ----------------------------------------------------------------
 */

static void
check_table(WatchSpec *w)
{
	Relation	rel = w->rel;
	char		relkind = rel->rd_rel->relkind;

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("Only ordinary and partitioned tables can be watched.")));
	if (rel->rd_rel->relispartition)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a partition", RelationGetRelationName(rel)),
				 errhint("Watch the partitioned table it belongs to.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot watch temporary table \"%s\"", RelationGetRelationName(rel)),
				 errdetail("The background worker cannot see it.")));
	if (IsCatalogRelation(rel) ||
		RelationGetNamespace(rel) == get_namespace_oid(REMINDER_SCHEMA, false))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot watch \"%s\"", RelationGetRelationName(rel)),
				 errdetail("System catalogs and the extension's own tables cannot be watched.")));

	/* inside watch() we run as its owner; the check is on who called it */
	if (!pg_class_ownercheck(RelationGetRelid(rel), GetOuterUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s", RelationGetRelationName(rel)),
				 errdetail("Rule expressions run with the privileges of the table's owner."),
				 errhint("Ask the owner of the table, or a member of its owning role, to create the rule.")));
	w->owner = rel->rd_rel->relowner;
}

static AttrNumber
check_column(WatchSpec *w, const char *name, const char *param, Oid *type)
{
	AttrNumber	attno;

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", param)));
	attno = get_attnum(RelationGetRelid(w->rel), name);
	if (attno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						name, RelationGetRelationName(w->rel)),
				 errhint("%s names a column of the table as it is spelled there (case matters).", param)));
	if (attno < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be the system column \"%s\"", param, name)));
	if (type)
		*type = get_atttype(RelationGetRelid(w->rel), attno);
	return attno;
}

static void
check_time_column(WatchSpec *w)
{
	AttrNumber	attno = check_column(w, w->column, "column_name", &w->column_type);

	(void) attno;
	if (w->column_type != TIMESTAMPTZOID && w->column_type != TIMESTAMPOID &&
		w->column_type != DATEOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is of type %s",
						w->column, RelationGetRelationName(w->rel), format_type_be(w->column_type)),
				 errdetail("A %s rule counts from a point in time.", rule_kind_name(w->kind)),
				 errhint("Use a column of type timestamptz, timestamp or date.")));
}

/* The row key: the primary key, or columns matching a unique index. */
static void
check_keys(WatchSpec *w, ArrayType *given)
{
	Relation	rel = w->rel;
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Bitmapset  *want = NULL;

	if (given == NULL)
	{
		Oid			pk = RelationGetPrimaryKeyIndex(rel);
		Relation	idx;

		if (!OidIsValid(pk))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
					 errdetail("A rule tells rows apart by their key, to move or cancel their messages."),
					 errhint("Add a primary key, or name NOT NULL columns with a unique index in key_columns.")));
		idx = index_open(pk, AccessShareLock);
		for (int i = 0; i < idx->rd_index->indnkeyatts; i++)
			w->keys = lappend(w->keys,
							  get_attname(RelationGetRelid(rel), idx->rd_index->indkey.values[i], false));
		index_close(idx, AccessShareLock);
		return;
	}

	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(given, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key_columns must name at least one column")));
		for (int i = 0; i < n; i++)
		{
			char	   *col;
			AttrNumber	attno;

			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("key_columns must not contain null")));
			col = TextDatumGetCString(elems[i]);
			attno = check_column(w, col, "key_columns", NULL);
			if (!TupleDescAttr(RelationGetDescr(rel), attno - 1)->attnotnull)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
						 errmsg("key column \"%s\" of relation \"%s\" may be null",
								col, RelationGetRelationName(rel)),
						 errhint("Key columns must be NOT NULL.")));
			want = bms_add_member(want, attno);
			w->keys = lappend(w->keys, col);
		}
	}

	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = idx->rd_index;
		Bitmapset  *have = NULL;
		bool		usable = ind->indisunique && ind->indisvalid && ind->indimmediate &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL);

		for (int i = 0; usable && i < ind->indnkeyatts; i++)
			have = bms_add_member(have, ind->indkey.values[i]);
		index_close(idx, AccessShareLock);
		if (usable && bms_equal(have, want))
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
			 errmsg("key_columns of relation \"%s\" do not match a unique index",
					RelationGetRelationName(rel)),
			 errhint("Name the columns of a unique index or of the primary key.")));
}

static void
check_channel_name(const char *name)
{
	(void) catalog_channel(name);	/* raises undefined_object */
}

static void
check_template_name(const char *name)
{
	(void) catalog_template(name, NULL);	/* raises undefined_object */
}

/* "templates": {value: template} for on_change/survey, or [template per step] */
static void
check_templates(WatchSpec *w, JsonbValue *v, const char *what)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	if (w->kind == RULE_RECURRING)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not used by recurring rules", what),
				 errhint("Every occurrence of a recurring rule has the same template: pass template => 'name'.")));
	if (is_object(v))
	{
		if (w->kind != RULE_ON_CHANGE && w->kind != RULE_SURVEY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be an array of template names, one per offset", what),
					 errhint("Templates by value are for on_change and survey rules.")));
	}
	else if (!is_array(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object or array of template names", what),
				 errhint("Write {\"paid\": \"order_paid\", \"shipped\": \"order_shipped\"}, or [\"followup_1\", \"followup_2\"].")));

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_VALUE && tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must hold template names as strings", what)));
		check_template_name(pnstrdup(e.val.string.val, e.val.string.len));
		n++;
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must name at least one template", what)));
}

/* Constant offsets as interval text; checks they suit the rule. */
static void
push_offsets_array(WatchSpec *w, JsonbParseState **st, Datum *elems, bool *nulls, int n,
				   const char *what)
{
	jsonb_push_key(st, "offsets");
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		Interval   *iv;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain null", what)));
		iv = DatumGetIntervalP(elems[i]);
		if (w->business_days && iv->month != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s cannot have months when counting business days", what),
					 errhint("Write business days as days: '10 days'.")));
		push_string(st, WJB_ELEM, DatumGetCString(DirectFunctionCall1(interval_out, elems[i])));
	}
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

static void
push_offsets(WatchSpec *w, JsonbParseState **st, JsonbValue *v, const char *what)
{
	char	   *text;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (w->kind == RULE_RECURRING && (v || w->offsets))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not used by recurring rules", v ? what : "offsets"),
				 errhint("A recurring rule's messages are due at its occurrences: say the time of day in the RRULE, such as BYHOUR=8;BYMINUTE=45.")));
	if (v && (text = expr_of(v)) != NULL)
	{
		char	   *canonical;

		(void) parse_as_owner(w, text, REXPR_INTERVALS, what, &canonical);
		push_expr(st, "offsets", canonical);
		return;
	}
	if (v)
	{
		JsonbIterator *it;
		JsonbValue	e;
		JsonbIteratorToken tok;
		int			i = 0;

		if (!is_array(v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be an array of intervals or {\"expr\": ...}", what),
					 errhint("Write [\"24 hours\", \"1 hour\"].")));
		n = JsonContainerSize(v->val.binary.data);
		elems = palloc(sizeof(Datum) * Max(n, 1));
		nulls = palloc0(sizeof(bool) * Max(n, 1));
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (e.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s must hold intervals as strings such as \"1 hour\"", what)));
			elems[i++] = DirectFunctionCall3(interval_in,
											 CStringGetDatum(pnstrdup(e.val.string.val, e.val.string.len)),
											 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		}
	}
	else if (w->offsets)
		deconstruct_array(w->offsets, INTERVALOID, sizeof(Interval), false, TYPALIGN_DOUBLE,
						  &elems, &nulls, &n);
	else if (w->kind == RULE_BEFORE || w->kind == RULE_FOLLOW_UP)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a %s rule needs offsets", rule_kind_name(w->kind)),
				 errhint(w->kind == RULE_BEFORE ?
						 "Pass offsets => '{24 hours, 1 hour}', or give \"offsets\" per recipient." :
						 "Pass offsets => '{3 days, 10 days}' (with business_days => true to count business days).")));
	else
	{
		/* after, on_change, survey: at the time itself */
		n = 1;
		elems = palloc(sizeof(Datum));
		nulls = palloc0(sizeof(bool));
		elems[0] = IntervalPGetDatum(palloc0(sizeof(Interval)));
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	push_offsets_array(w, st, elems, nulls, n, what);
}

/*
 * "unless": what makes a recipient's message unnecessary, checked when it
 * is about to be sent (the escalation of a missing event).  Given as
 *
 *   {"event": "confirmed"}                    an event on a message of the
 *   {"event": ["confirmed", "declined"],      rule for the row (of the
 *    "role": "client"}                        recipients with that role)
 *   {"expr": "confirmed_at IS NOT NULL"}      a condition over the row
 *   "confirmed_at IS NOT NULL"                the same
 *   [one of those, ...]                       any of them
 *
 * and stored as an array of {"event": [kinds], "role": ...} and at most
 * one {"expr": "canonical"}.
 */
static void
push_unless_item(WatchSpec *w, JsonbParseState **st, JsonbValue *v, const char *what,
				 bool *has_expr)
{
	char	   *text;
	char	   *canonical;
	JsonbIterator *it;
	JsonbValue	k;
	JsonbIteratorToken tok;
	Jsonb	   *obj;
	JsonbValue *event;
	JsonbValue *role;
	List	   *kinds = NIL;
	ListCell   *lc;

	if ((text = expr_of(v)) != NULL || (text = string_of(v)) != NULL)
	{
		if (*has_expr)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s has more than one condition", what),
					 errhint("Join them with OR in one {\"expr\": ...}.")));
		*has_expr = true;
		(void) parse_as_owner(w, text, REXPR_BOOL, what, &canonical);
		push_expr(st, NULL, canonical);
		return;
	}
	if (!is_object(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be {\"event\": \"confirmed\"}, {\"expr\": \"...\"} or an array of them", what)));

	obj = JsonbValueToJsonb(v);
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		if (strcmp(key, "event") != 0 && strcmp(key, "role") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%s\" in %s", key, what),
					 errhint("Write {\"event\": \"confirmed\"}, optionally with \"role\", or {\"expr\": \"...\"} alone.")));
	}
	event = jsonb_get(obj, "event");
	role = jsonb_get(obj, "role");
	if (event == NULL || event->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no \"event\"", what),
				 errhint("Write {\"event\": \"confirmed\"}.")));
	if (event->type == jbvString)
		kinds = list_make1(string_of(event));
	else if (is_array(event))
	{
		JsonbValue	e;

		it = JsonbIteratorInit(event->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (e.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s.event must be an event kind or an array of them", what)));
			kinds = lappend(kinds, string_of(&e));
		}
		if (kinds == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.event must not be empty", what)));
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.event must be an event kind or an array of them", what)));
	foreach(lc, kinds)
	{
		const char *kind = lfirst(lc);
		int			i;

		for (i = 0; reminder_event_kinds[i] && strcmp(reminder_event_kinds[i], kind) != 0; i++)
			;
		if (reminder_event_kinds[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown event kind \"%s\" in %s", kind, what),
					 errhint("Valid kinds are: " REMINDER_EVENT_KINDS ".")));
	}

	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	jsonb_push_key(st, "event");
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, kinds)
		push_string(st, WJB_ELEM, lfirst(lc));
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
	if (role && role->type != jbvNull)
	{
		char	   *r = string_of(role);

		if (r == NULL || *r == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.role must be the role of one of the rule's recipients", what)));
		jsonb_push_key(st, "role");
		push_string(st, WJB_VALUE, r);
		w->unless_roles = lappend(w->unless_roles, psprintf("%s.role", what));
		w->unless_roles = lappend(w->unless_roles, r);
	}
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

static void
push_unless(WatchSpec *w, JsonbParseState **st, JsonbValue *v, int index)
{
	char	   *what = psprintf("recipients[%d].unless", index);
	bool		has_expr = false;

	jsonb_push_key(st, "unless");
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	if (is_array(v))
	{
		int			n = JsonContainerSize(v->val.binary.data);

		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be empty", what),
					 errhint("Leave \"unless\" out for a message that is always sent.")));
		for (int i = 0; i < n; i++)
			push_unless_item(w, st, getIthJsonbValueFromContainer(v->val.binary.data, i),
							 psprintf("%s[%d]", what, i), &has_expr);
	}
	else
		push_unless_item(w, st, v, what, &has_expr);
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/*
 * "invite": an iCalendar event attached to the recipient's emails (ical.c),
 * built from the row:
 *
 *   {"summary": "Visit" | {"expr": "title"},          required
 *    "start": "starts_at",                            an expression of type
 *    "end": "ends_at" | "duration": "1 hour",         timestamptz, timestamp
 *    "location": ..., "description": ...,             or date; start defaults
 *    "organizer": "Office <office@example.com>",      to the rule's column,
 *    "template": ..., "cancel_template": ...}         end to start + 1 hour
 *
 * Stored with start and end as {"expr": "canonical"}, so that renaming a
 * column rewrites them and dropping it is refused, like any expression.
 */
static void
push_invite_text(WatchSpec *w, JsonbParseState **st, Jsonb *obj, const char *key,
				 const char *what, bool required)
{
	JsonbValue *v = jsonb_get(obj, key);
	char	   *text;
	char	   *canonical;

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s.%s is missing", what, key),
					 errhint("Write \"%s\": {\"expr\": \"title\"} or a constant text.", key)));
		return;
	}
	if ((text = expr_of(v)) != NULL)
	{
		(void) parse_as_owner(w, text, REXPR_TEXT, psprintf("%s.%s", what, key), &canonical);
		push_expr(st, key, canonical);
		return;
	}
	if ((text = string_of(v)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.%s must be a text or {\"expr\": ...}", what, key)));
	jsonb_push_key(st, key);
	push_string(st, WJB_VALUE, text);
}

static void
push_invite_time(WatchSpec *w, JsonbParseState **st, const char *key, const char *text,
				 const char *what)
{
	char	   *canonical;

	(void) parse_as_owner(w, text, REXPR_TIME, psprintf("%s.%s", what, key), &canonical);
	push_expr(st, key, canonical);
}

static char *
invite_time_text(JsonbValue *v, const char *what, const char *key)
{
	char	   *text;

	if ((text = expr_of(v)) == NULL && (text = string_of(v)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.%s must be an SQL expression such as \"starts_at\"", what, key)));
	return text;
}

static void
push_invite(WatchSpec *w, JsonbParseState **st, JsonbValue *v, int index, const char *channel)
{
	static const char *const known[] = {"summary", "start", "end", "duration", "location",
	"description", "organizer", "template", "cancel_template", NULL};
	char	   *what = psprintf("recipients[%d].invite", index);
	JsonbIterator *it;
	JsonbValue	k;
	JsonbIteratorToken tok;
	Jsonb	   *obj;
	JsonbValue *start;
	JsonbValue *end;
	JsonbValue *duration;
	JsonbValue *organizer;
	char	   *text;

	if (w->kind != RULE_BEFORE && w->kind != RULE_AFTER && w->kind != RULE_FOLLOW_UP)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is for rules that follow their row", what),
				 errdetail("A %s rule sends one message per change, not an event that moves with the row.",
						   rule_kind_name(w->kind)),
				 errhint("Watch the table with kind before, after or follow_up.")));
	if (!is_object(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what),
				 errhint("Write {\"summary\": {\"expr\": \"title\"}, \"start\": \"starts_at\", \"end\": \"ends_at\"}.")));
	if (channel && catalog_channel(channel)->kind != CHANNEL_EMAIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is only for email channels", what),
				 errdetail("Channel \"%s\" is of kind %s.", channel,
						   channel_kind_name(catalog_channel(channel)->kind))));

	obj = JsonbValueToJsonb(v);
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		int			i;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%s\" in %s", key, what),
					 errhint("An invite may have summary, start, end, duration, location, description, organizer, template and cancel_template.")));
	}

	jsonb_push_key(st, "invite");
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);

	push_invite_text(w, st, obj, "summary", what, true);
	push_invite_text(w, st, obj, "location", what, false);
	push_invite_text(w, st, obj, "description", what, false);

	start = jsonb_get(obj, "start");
	if (start && start->type != jbvNull)
		push_invite_time(w, st, "start", invite_time_text(start, what, "start"), what);
	else
		push_invite_time(w, st, "start", quote_identifier(w->column), what);

	end = jsonb_get(obj, "end");
	duration = jsonb_get(obj, "duration");
	if (end && end->type == jbvNull)
		end = NULL;
	if (duration && duration->type == jbvNull)
		duration = NULL;
	if (end)
		push_invite_time(w, st, "end", invite_time_text(end, what, "end"), what);
	/* the length of an event without an end (or whose end is NULL) */
	{
		Interval   *iv;
		Interval	zero = {0};

		if (duration && (text = string_of(duration)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.duration must be an interval such as \"1 hour\"", what)));
		iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
												   CStringGetDatum(duration ? text : "1 hour"),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
											  IntervalPGetDatum(&zero))) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.duration must be positive", what)));
		jsonb_push_key(st, "duration");
		push_string(st, WJB_VALUE, DatumGetCString(DirectFunctionCall1(interval_out,
																	   IntervalPGetDatum(iv))));
	}

	organizer = jsonb_get(obj, "organizer");
	if (organizer && organizer->type != jbvNull)
	{
		if ((text = string_of(organizer)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.organizer must be an address such as \"Office <office@example.com>\"", what)));
		validate_mailbox(text, psprintf("%s.organizer", what));
		jsonb_push_key(st, "organizer");
		push_string(st, WJB_VALUE, text);
	}
	for (int i = 0; i < 2; i++)
	{
		const char *key = i == 0 ? "template" : "cancel_template";
		JsonbValue *t = jsonb_get(obj, key);

		if (t == NULL || t->type == jbvNull)
			continue;
		if ((text = string_of(t)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.%s must be a template name", what, key)));
		check_template_name(text);
		jsonb_push_key(st, key);
		push_string(st, WJB_VALUE, text);
	}
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/*
 * One recipient, checked and normalized: every setting the rule gives
 * as a default is filled in, expressions are canonical.
 */
static void
push_recipient(WatchSpec *w, JsonbParseState **st, Jsonb *spec, int index)
{
	static const char *const known[] = {"role", "channel", "template", "templates",
	"offsets", "to", "bcc", "when", "digest", "unless", "invite", NULL};
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *channel = jsonb_get(spec, "channel");
	JsonbValue *template = jsonb_get(spec, "template");
	JsonbValue *templates = jsonb_get(spec, "templates");
	JsonbValue *to = jsonb_get(spec, "to");
	JsonbValue *bcc = jsonb_get(spec, "bcc");
	JsonbValue *when = jsonb_get(spec, "when");
	JsonbValue *unless = jsonb_get(spec, "unless");
	JsonbValue *invite = jsonb_get(spec, "invite");
	JsonbValue *role = jsonb_get(spec, "role");
	JsonbValue *digest = jsonb_get(spec, "digest");
	char	   *channel_name = NULL;
	char	   *text;
	char	   *canonical;
	char	   *what;
	bool		constant_to = true;
	JsonbParseState *to_state = NULL;
	Jsonb	   *to_const;

	/* unknown keys are mistakes, not extensions */
	it = JsonbIteratorInit(&spec->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		int			i;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%s\" in recipients[%d]", key, index),
					 errhint("A recipient may have role, channel, template, templates, offsets, to, bcc, when, digest, unless and invite.")));
	}

	/* null is no value, as for role and channel: the rule's then applies */
	if (template && template->type == jbvNull)
		template = NULL;
	if (templates && templates->type == jbvNull)
		templates = NULL;

	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);

	if (role && role->type != jbvNull)
	{
		char	   *r = string_of(role);

		if (r == NULL || strlen(r) == 0 || strlen(r) > 63)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recipients[%d].role must be a short string such as \"client\"", index)));
		jsonb_push_key(st, "role");
		push_string(st, WJB_VALUE, r);
		w->roles = lappend(w->roles, r);
	}

	/* channel */
	what = psprintf("recipients[%d].channel", index);
	if (channel && (text = expr_of(channel)) != NULL)
	{
		(void) parse_as_owner(w, text, REXPR_TEXT, what, &canonical);
		push_expr(st, "channel", canonical);
	}
	else
	{
		if (channel && channel->type != jbvNull)
		{
			if ((channel_name = string_of(channel)) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s must be a channel name or {\"expr\": ...}", what)));
		}
		else
			channel_name = w->channel;
		if (channel_name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("recipients[%d] has no channel", index),
					 errhint("Pass channel => 'sms', or give \"channel\" in the recipient.")));
		check_channel_name(channel_name);
		jsonb_push_key(st, "channel");
		push_string(st, WJB_VALUE, channel_name);
	}

	/* template(s) */
	what = psprintf("recipients[%d].template", index);
	if (template && (text = expr_of(template)) != NULL)
	{
		(void) parse_as_owner(w, text, REXPR_TEXT, what, &canonical);
		push_expr(st, "template", canonical);
	}
	else if (template && template->type != jbvNull)
	{
		char	   *t = string_of(template);

		if (t == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a template name or {\"expr\": ...}", what)));
		check_template_name(t);
		jsonb_push_key(st, "template");
		push_string(st, WJB_VALUE, t);
	}
	else if (w->template && !templates)
	{
		jsonb_push_key(st, "template");
		push_string(st, WJB_VALUE, w->template);
	}
	if (templates || (!template && w->templates))
	{
		JsonbValue	tv;
		JsonbValue *t = templates;

		if (t == NULL)
		{
			tv.type = jbvBinary;
			tv.val.binary.data = &w->templates->root;
			tv.val.binary.len = VARSIZE(w->templates) - VARHDRSZ;
			t = &tv;
		}
		check_templates(w, t, psprintf("recipients[%d].templates", index));
		jsonb_push_key(st, "templates");
		pushJsonbValue(st, WJB_VALUE, t);
	}
	else if (!template && !w->template)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipients[%d] has no template", index),
				 errhint(w->kind == RULE_ON_CHANGE ?
						 "Pass templates => '{\"paid\": \"order_paid\"}' or template => 'name'." :
						 "Pass template => 'name', or give \"template\" in the recipient.")));

	/* offsets */
	push_offsets(w, st, jsonb_get(spec, "offsets"), psprintf("recipients[%d].offsets", index));

	/*
	 * to: a webhook, Slack or log channel needs no address, so a recipient
	 * of one may leave it out; it is stored as {}
	 */
	what = psprintf("recipients[%d].to", index);
	if (to == NULL || to->type == jbvNull)
	{
		ChannelConfig *cc = channel_name ? catalog_channel(channel_name) : NULL;
		Jsonb	   *empty = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));

		if (cc && (cc->kind == CHANNEL_EMAIL || cc->kind == CHANNEL_SMS))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recipients[%d] has no \"to\"", index),
					 errdetail("Channel \"%s\" is of kind %s, which needs %s.", channel_name,
							   channel_kind_name(cc->kind),
							   cc->kind == CHANNEL_EMAIL ? "an email address" : "a phone number"),
					 errhint(cc->kind == CHANNEL_EMAIL ?
							 "Write \"to\": {\"email\": {\"expr\": \"customer_email\"}}." :
							 "Write \"to\": {\"phone\": {\"expr\": \"client_phone\"}}.")));
		to = palloc(sizeof(JsonbValue));
		to->type = jbvBinary;
		to->val.binary.data = &empty->root;
		to->val.binary.len = VARSIZE(empty) - VARHDRSZ;
	}
	else if (!is_object(to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what),
				 errhint("Write {\"phone\": {\"expr\": \"client_phone\"}} or {\"email\": \"ops@example.com\"}; webhook, Slack and log channels need no \"to\".")));
	jsonb_push_key(st, "to");
	if ((text = expr_of(to)) != NULL)
	{
		(void) parse_as_owner(w, text, REXPR_JSONB, what, &canonical);
		push_expr(st, NULL, canonical);
		constant_to = false;
	}
	else
	{
		JsonbValue	k;

		pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
		pushJsonbValue(&to_state, WJB_BEGIN_OBJECT, NULL);
		it = JsonbIteratorInit(to->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &v, true);
			if ((text = expr_of(&v)) != NULL)
			{
				(void) parse_as_owner(w, text, REXPR_TEXT,
									  psprintf("recipients[%d].to.%s", index, key),
									  &canonical);
				push_expr(st, key, canonical);
				constant_to = false;
			}
			else
			{
				if (v.type == jbvBinary && strcmp(key, "cc") != 0 && strcmp(key, "bcc") != 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("%s.%s must be a string, a number or {\"expr\": ...}", what, key)));
				if ((strcmp(key, "cc") == 0 || strcmp(key, "bcc") == 0) && channel_name &&
					catalog_channel(channel_name)->kind != CHANNEL_EMAIL)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("%s.%s is only for email channels", what, key),
							 errdetail("Channel \"%s\" is of kind %s.", channel_name,
									   channel_kind_name(catalog_channel(channel_name)->kind))));
				pushJsonbValue(st, WJB_KEY, &k);
				pushJsonbValue(st, WJB_VALUE, &v);
				pushJsonbValue(&to_state, WJB_KEY, &k);
				pushJsonbValue(&to_state, WJB_VALUE, &v);
			}
		}
		pushJsonbValue(st, WJB_END_OBJECT, NULL);
	}

	/* bcc: email channels only */
	if (bcc && bcc->type != jbvNull)
	{
		what = psprintf("recipients[%d].bcc", index);
		if (channel_name && catalog_channel(channel_name)->kind != CHANNEL_EMAIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is only for email channels", what),
					 errdetail("Channel \"%s\" is of kind %s.", channel_name,
							   channel_kind_name(catalog_channel(channel_name)->kind))));
		if ((text = expr_of(bcc)) != NULL)
		{
			(void) parse_as_owner(w, text, REXPR_ANY_JSONB, what, &canonical);
			push_expr(st, "bcc", canonical);
			constant_to = false;
		}
		else
		{
			if (bcc->type != jbvString && !is_array(bcc))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s must be an address, an array of addresses or {\"expr\": ...}", what)));
			jsonb_push_key(st, "bcc");
			pushJsonbValue(st, WJB_VALUE, bcc);
			jsonb_push_key(&to_state, "bcc");
			pushJsonbValue(&to_state, WJB_VALUE, bcc);
		}
	}

	if (when && when->type != jbvNull)
	{
		what = psprintf("recipients[%d].when", index);
		if ((text = expr_of(when)) == NULL && (text = string_of(when)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be an SQL condition as a string", what)));
		(void) parse_as_owner(w, text, REXPR_BOOL, what, &canonical);
		jsonb_push_key(st, "when");
		push_string(st, WJB_VALUE, canonical);
	}

	/* the recipient's messages go into a digest (digest.c) */
	if (digest && digest->type != jbvNull)
	{
		Jsonb	   *checked;
		JsonbValue	dv;

		if (w->kind == RULE_SURVEY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recipients[%d] of a survey rule cannot have a digest", index),
					 errhint("A survey is one message per person, throttled; send it on its own.")));
		checked = digest_check_spec(JsonbValueToJsonb(digest));
		jsonb_push_key(st, "digest");
		dv.type = jbvBinary;
		dv.val.binary.data = &checked->root;
		dv.val.binary.len = VARSIZE(checked) - VARHDRSZ;
		pushJsonbValue(st, WJB_VALUE, &dv);
	}
	if (unless && unless->type != jbvNull)
		push_unless(w, st, unless, index);
	if (invite && invite->type != jbvNull)
		push_invite(w, st, invite, index, channel_name);

	pushJsonbValue(st, WJB_END_OBJECT, NULL);

	/*
	 * A constant address on a constant channel can be checked now: a rule
	 * that could never deliver is a mistake.
	 */
	if (constant_to && channel_name)
	{
		ChannelConfig *cc = catalog_channel(channel_name);
		int64		rid;
		char	   *addr = NULL;

		if (role && role->type == jbvString)
		{
			jsonb_push_key(&to_state, "role");
			pushJsonbValue(&to_state, WJB_VALUE, role);
		}
		if (to_state == NULL)
			pushJsonbValue(&to_state, WJB_BEGIN_OBJECT, NULL);
		to_const = JsonbValueToJsonb(pushJsonbValue(&to_state, WJB_END_OBJECT, NULL));
		to_const = catalog_resolve_recipient(to_const, &rid);
		if (cc->kind == CHANNEL_EMAIL || cc->kind == CHANNEL_SMS)
		{
			addr = jsonb_get_text(to_const, cc->kind == CHANNEL_EMAIL ? "email" : "phone");
			if (addr == NULL || *addr == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("recipients[%d] has no %s for channel \"%s\"", index,
								cc->kind == CHANNEL_EMAIL ? "email address" : "phone number",
								channel_name),
						 errhint("Give it in \"to\", as a constant or {\"expr\": \"column\"}.")));
		}
		(void) recipient_for_channel(to_const, cc);
	}
}

static Jsonb *
normalize_recipients(WatchSpec *w, Jsonb *recipients)
{
	JsonbParseState *st = NULL;
	int			n;

	if (recipients == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a rule needs recipients"),
				 errhint("Pass recipients => '[{\"role\": \"client\", \"to\": {\"phone\": {\"expr\": \"client_phone\"}}}]'.")));
	if (JB_ROOT_IS_SCALAR(recipients))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipients must be a JSON array of objects, or one object")));

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	if (JB_ROOT_IS_OBJECT(recipients))
		push_recipient(w, &st, recipients, 0);
	else
	{
		n = JsonContainerSize(&recipients->root);
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recipients must not be empty")));
		if (n > 32)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a rule can have at most 32 recipients")));
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(&recipients->root, i);

			if (!is_object(e))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("recipients[%d] must be a JSON object", i)));
			push_recipient(w, &st, JsonbValueToJsonb(e), i);
		}
	}

	/* an "unless" event of a role no recipient has would never count */
	for (int i = 0; i + 1 < list_length(w->unless_roles); i += 2)
	{
		const char *role = list_nth(w->unless_roles, i + 1);
		ListCell   *lc;
		bool		found = false;

		foreach(lc, w->roles)
			found |= strcmp(lfirst(lc), role) == 0;
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is \"%s\", which is the role of none of the rule's recipients",
							(char *) list_nth(w->unless_roles, i), role),
					 errhint("Give the recipient whose messages get the event a \"role\".")));
	}
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_ARRAY, NULL));
}

/* changes_to values, checked against the column's type and normalized */
static List *
check_changes_to(WatchSpec *w, ArrayType *given)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Oid			typinput;
	Oid			typioparam;
	Oid			typoutput;
	bool		varlena;
	List	   *result = NIL;

	getTypeInputInfo(w->column_type, &typinput, &typioparam);
	getTypeOutputInfo(w->column_type, &typoutput, &varlena);
	deconstruct_array(given, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("changes_to must not be empty"),
				 errhint("Pass NULL to react to any change.")));
	for (int i = 0; i < n; i++)
	{
		Datum		d;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("changes_to must not contain null")));
		d = OidInputFunctionCall(typinput, TextDatumGetCString(elems[i]), typioparam, -1);
		result = lappend(result, OidOutputFunctionCall(typoutput, d));
	}
	return result;
}

/* The keys of the templates objects: the values an on_change rule wants. */
static void
values_from_templates(WatchSpec *w, Jsonb *recipients)
{
	JsonbIterator *it = JsonbIteratorInit(&recipients->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		any_template = false;
	List	   *values = NIL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		Jsonb	   *r;
		JsonbValue *t;

		if (tok != WJB_ELEM)
			continue;
		r = JsonbValueToJsonb(&v);
		t = jsonb_get(r, "templates");
		if (jsonb_get(r, "template"))
			any_template = true;
		if (is_object(t))
		{
			JsonbIterator *it2 = JsonbIteratorInit(t->val.binary.data);
			JsonbValue	k;

			while ((tok = JsonbIteratorNext(&it2, &k, true)) != WJB_DONE)
				if (tok == WJB_KEY)
					values = list_append_unique(values,
												makeString(pnstrdup(k.val.string.val, k.val.string.len)));
		}
		else
			any_template = true;
	}
	if (!any_template && values != NIL)
	{
		ListCell   *lc;
		Oid			typinput;
		Oid			typioparam;
		Oid			typoutput;
		bool		varlena;

		getTypeInputInfo(w->column_type, &typinput, &typioparam);
		getTypeOutputInfo(w->column_type, &typoutput, &varlena);
		foreach(lc, values)
		{
			Datum		d = OidInputFunctionCall(typinput, strVal(lfirst(lc)), typioparam, -1);

			w->changes_to = lappend(w->changes_to, OidOutputFunctionCall(typoutput, d));
		}
	}
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

		spi_exec(sql, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
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
static void
drop_triggers(Oid relid, int64 id)
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
	spi_exec("SELECT t.tgname FROM pg_catalog.pg_trigger t "
			 "WHERE t.tgrelid = $1 AND t.tgfoid = 'reminder.watch_trigger()'::pg_catalog.regprocedure "
			 "AND t.tgargs = pg_catalog.convert_to($2, 'SQL_ASCII') || '\\x00'::pg_catalog.bytea",
			 2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		SPITupleTable *tt = SPI_tuptable;
		uint64		n = SPI_processed;

		for (uint64 i = 0; i < n; i++)
			spi_exec(psprintf("DROP TRIGGER %s ON %s",
							  quote_identifier(SPI_getvalue(tt->vals[i], tt->tupdesc, 1)), table),
					 0, NULL, NULL, NULL, SPI_OK_UTILITY);
	}
}

/* ----------------------------------------------------------------
 *		watch()
 * ----------------------------------------------------------------
 */

/*
 * A recurring rule's RRULE: it parses (22023, or 0A000 for parts of RFC
 * 5545 left out), and a series started now has an occurrence within the
 * horizon (not one whose UNTIL has passed, nor BYMONTH=2;BYMONTHDAY=30).
 */
static void
check_rrule(WatchSpec *w)
{
	RRule	   *r;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz first;

	if (w->rrule == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a recurring rule needs rrule"),
				 errhint("Pass rrule => 'FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0'.")));
	r = rrule_parse(w->rrule);
	if (!rrule_next(r, now, pg_tzset(w->time_zone), NULL, now, true, &first))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("RRULE \"%s\" has no occurrence after now", w->rrule),
				 errdetail("A series started now would never recur within ten years."),
				 errhint("Check UNTIL, and that BYMONTH, BYMONTHDAY and BYDAY can meet.")));
}

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

	/* the function runs as the extension owner; checks use the caller */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	level = rule_pin_search_path();
	rule_pin_styles();
	SPI_connect();

	w.rel = try_relation_open(relid, ShareRowExclusiveLock);
	if (w.rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	check_table(&w);

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

		spi_exec("SELECT 1 FROM reminder.rule WHERE name = $1", 1, t, v, NULL, SPI_OK_SELECT);
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
		(void) check_column(&w, w.column, "column_name", &w.column_type);
	else
		check_time_column(&w);

	check_keys(&w, PG_ARGISNULL(17) ? NULL : PG_GETARG_ARRAYTYPE_P(17));

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
		check_channel_name(w.channel);
	w.template = text_or_null(fcinfo, 6);
	if (w.template)
		check_template_name(w.template);
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

		spi_exec("SELECT 1 FROM reminder.calendar WHERE name = $1", 1, t, v, NULL, SPI_OK_SELECT);
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
		check_rrule(&w);
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
		w.changes_to = check_changes_to(&w, PG_GETARG_ARRAYTYPE_P(9));
	}
	else if (w.kind == RULE_SURVEY)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a survey rule needs changes_to"),
				 errhint("Say which values of %s start a survey, such as changes_to => '{completed}'.",
						 w.column)));

	/* expressions and recipients */
	if (!PG_ARGISNULL(8))
		(void) parse_as_owner(&w, text_to_cstring(PG_GETARG_TEXT_PP(8)), REXPR_BOOL,
							  "condition", &w.condition);
	if (!PG_ARGISNULL(11))
		(void) parse_as_owner(&w, text_to_cstring(PG_GETARG_TEXT_PP(11)), REXPR_BOOL,
							  "stop_condition", &w.stop);
	recipients = normalize_recipients(&w, PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7));
	if (w.kind == RULE_ON_CHANGE && w.changes_to == NIL)
		values_from_templates(&w, recipients);

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

	spi_exec("INSERT INTO reminder.rule (name, table_name, kind, column_name, key_columns, recipients, "
			 "condition, stop_condition, changes_to, business_days, calendar, time_zone, if_past, "
			 "throttle, created_by, category, priority, rrule) "
			 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
			 18, types, values, nulls, SPI_OK_INSERT_RETURNING);
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
	spi_exec("SELECT id, table_name::oid FROM reminder.rule WHERE name = $1 FOR UPDATE",
			 1, types, values, NULL, SPI_OK_SELECT);
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

		spi_exec("DELETE FROM reminder.rule WHERE id = $1", 1, t, v, NULL, SPI_OK_DELETE);
	}
	drop_triggers(relid, id);
	if (cancel)
		cancelled = rules_cancel_pending(id, RULE_CANCEL_PREFIX "unwatched");
	SPI_finish();
	rule_unpin(level);

	PG_RETURN_INT64(cancelled);
}

/* ----------------------------------------------------------------
 *		Event triggers
 * ----------------------------------------------------------------
 */

/*
 * sql_drop: a rule whose table is gone, or that lost one of its triggers
 * (DROP TRIGGER, DROP ... CASCADE of something it depends on), is removed
 * and its pending messages cancelled.
 */
Datum
reminder_watch_sql_drop(PG_FUNCTION_ARGS)
{
	Oid			save_userid;
	int			save_sec;
	int			level;
	SPITupleTable *tt;
	uint64		n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("reminder.watch_sql_drop() must be called as an event trigger")));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	level = rule_pin_search_path();
	SPI_connect();

	spi_exec("SELECT r.id, r.table_name::oid, "
			 "       NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.table_name) "
			 "FROM reminder.rule r "
			 "WHERE EXISTS (SELECT FROM pg_event_trigger_dropped_objects() d "
			 "              WHERE d.classid IN ('pg_class'::regclass, 'pg_trigger'::regclass)) "
			 "  AND (NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.table_name) "
			 "       OR (SELECT count(*) FROM pg_trigger t "
			 "           WHERE t.tgrelid = r.table_name "
			 "             AND t.tgfoid = 'reminder.watch_trigger()'::regprocedure "
			 "             AND t.tgargs = convert_to(r.id::text, 'SQL_ASCII') || '\\x00'::bytea) < 4)",
			 0, NULL, NULL, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		Oid			relid = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		bool		table_gone = DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		Oid			t[1] = {INT8OID};
		Datum		v[1] = {Int64GetDatum(id)};

		spi_exec("DELETE FROM reminder.rule WHERE id = $1", 1, t, v, NULL, SPI_OK_DELETE);
		if (!table_gone)
			drop_triggers(relid, id);
		(void) rules_cancel_pending(id, table_gone ? RULE_CANCEL_PREFIX "table dropped" :
									RULE_CANCEL_PREFIX "trigger dropped");
	}

	SPI_finish();
	rule_unpin(level);
	SetUserIdAndSecContext(save_userid, save_sec);
	PG_RETURN_VOID();
}

typedef struct RenameWalk
{
	Relation	rel;
	const char *oldname;
	const char *newname;
	bool		table;
} RenameWalk;

static char *
renamed(RenameWalk *rw, const char *text)
{
	return rule_expr_rename(rw->rel, text, rw->oldname, rw->newname, rw->table);
}

/*
 * Copy a jsonb container, renaming inside every {"expr": ...} and "when".
 * Returns what the last push returned: the whole value at the top level.
 */
static JsonbValue *
rename_container(RenameWalk *rw, JsonbParseState **st, JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *lastkey = NULL;
	JsonbValue *res = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *text;

		switch (tok)
		{
			case WJB_KEY:
				lastkey = pnstrdup(v.val.string.val, v.val.string.len);
				res = pushJsonbValue(st, tok, &v);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if ((text = expr_of(&v)) != NULL)
				{
					pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
					jsonb_push_key(st, "expr");
					push_string(st, WJB_VALUE, renamed(rw, text));
					res = pushJsonbValue(st, WJB_END_OBJECT, NULL);
				}
				else if (tok == WJB_VALUE && lastkey && strcmp(lastkey, "when") == 0 &&
						 v.type == jbvString)
					push_string(st, tok, renamed(rw, pnstrdup(v.val.string.val, v.val.string.len)));
				else if (v.type == jbvBinary && (lastkey == NULL || strcmp(lastkey, "templates") != 0))
					res = rename_container(rw, st, v.val.binary.data);
				else
					res = pushJsonbValue(st, tok, &v);
				break;
			default:
				res = pushJsonbValue(st, tok, NULL);
				break;
		}
	}
	return res;
}

static void
rename_rule(RenameWalk *rw, int64 id)
{
	Oid			t1[1] = {INT8OID};
	Datum		v1[1] = {Int64GetDatum(id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	char	   *column;
	Datum	   *keys;
	bool	   *keynulls;
	int			nkeys;
	JsonbParseState *st = NULL;
	Jsonb	   *recipients;
	Oid			types[6] = {INT8OID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	spi_exec("SELECT column_name, key_columns, condition, stop_condition, recipients "
			 "FROM reminder.rule WHERE id = $1", 1, t1, v1, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	column = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	if (!rw->table && strcmp(column, rw->oldname) == 0)
		column = pstrdup(rw->newname);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull)), TEXTOID, -1,
					  false, TYPALIGN_INT, &keys, &keynulls, &nkeys);
	for (int i = 0; i < nkeys && !rw->table; i++)
		if (strcmp(TextDatumGetCString(keys[i]), rw->oldname) == 0)
			keys[i] = CStringGetTextDatum(rw->newname);

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(column);
	values[2] = PointerGetDatum(construct_array(keys, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	values[3] = isnull ? (Datum) 0 : CStringGetTextDatum(renamed(rw, TextDatumGetCString(d)));
	nulls[3] = isnull ? 'n' : ' ';
	d = SPI_getbinval(tup, desc, 4, &isnull);
	values[4] = isnull ? (Datum) 0 : CStringGetTextDatum(renamed(rw, TextDatumGetCString(d)));
	nulls[4] = isnull ? 'n' : ' ';
	recipients = DatumGetJsonbP(SPI_getbinval(tup, desc, 5, &isnull));
	values[5] = JsonbPGetDatum(JsonbValueToJsonb(rename_container(rw, &st, &recipients->root)));
	spi_exec("UPDATE reminder.rule SET column_name = $2, key_columns = $3, condition = $4, "
			 "stop_condition = $5, recipients = $6 WHERE id = $1",
			 6, types, values, nulls, SPI_OK_UPDATE);
}

/* ----------------------------------------------------------------
 *		Columns renamed under templates
 * ----------------------------------------------------------------
 */

/*
 * A column of a watched table renamed in this transaction.  Templates name
 * columns as row.<column>, and the row a message is rendered with has the
 * new names: a template still using the old one would render it empty in
 * every pending message.  The rename is checked at commit, so that the
 * templates can be changed after it in the same transaction.
 */
typedef struct RenamedColumn
{
	Oid			relid;
	char	   *oldname;
	char	   *newname;
} RenamedColumn;

static List *renamed_columns = NIL;	/* in TopTransactionContext */
static bool rename_callback_registered = false;

/* An ARE matching row.<name> or old.<name> as a whole name. */
static char *
name_pattern(const char *name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "(^|[^[:alnum:]_.])(row|old)\\.");
	for (const char *p = name; *p; p++)
	{
		if (!isalnum((unsigned char) *p) && !IS_HIGHBIT_SET(*p))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	appendStringInfoString(&buf, "($|[^[:alnum:]_])");
	return buf.data;
}

/*
 * At commit: a renamed column whose old name is gone must not be used by a
 * template of a rule on its table.  Templates chosen by an expression are
 * not known here.
 */
static void
check_renamed_columns(void)
{
	Oid			types[2] = {OIDOID, TEXTOID};
	Oid			save_userid;
	int			save_sec;
	int			level;
	ListCell   *lc;

	if (!OidIsValid(get_namespace_oid(REMINDER_SCHEMA, true)))
		return;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	level = rule_pin_search_path();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	foreach(lc, renamed_columns)
	{
		RenamedColumn *rc = lfirst(lc);
		Datum		values[2];

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rc->relid)) ||
			get_attnum(rc->relid, rc->oldname) != InvalidAttrNumber)
			continue;			/* dropped, or a column has the name again */
		values[0] = ObjectIdGetDatum(rc->relid);
		values[1] = CStringGetTextDatum(name_pattern(rc->oldname));
		spi_exec("SELECT t.name, r.name FROM reminder.rule r "
				 "CROSS JOIN LATERAL jsonb_array_elements(r.recipients) AS rcpt(spec) "
				 "CROSS JOIN LATERAL (SELECT rcpt.spec->>'template' "
				 "                     WHERE jsonb_typeof(rcpt.spec->'template') = 'string' "
				 "                    UNION SELECT e.value FROM jsonb_each_text(CASE WHEN jsonb_typeof(rcpt.spec->'templates') = 'object' "
				 "                                                           THEN rcpt.spec->'templates' END) AS e "
				 "                    UNION SELECT e FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(rcpt.spec->'templates') = 'array' "
				 "                                                                 THEN rcpt.spec->'templates' END) AS e) AS used(name) "
				 "JOIN reminder.template t ON t.name = used.name "
				 "WHERE r.table_name = $1 "
				 "  AND (t.subject ~ $2 OR t.body ~ $2 OR t.html ~ $2 "
				 "       OR EXISTS (SELECT FROM unnest(t.required) AS q WHERE q ~ $2)) "
				 "ORDER BY 1, 2 LIMIT 1",
				 2, types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			char	   *template = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			char	   *rule = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot rename column \"%s\" of table \"%s\": template \"%s\" of rule \"%s\" uses it",
							rc->oldname, get_rel_name(rc->relid), template, rule),
					 errdetail("Messages are rendered with the row as it is, where the column is now \"%s\": "
							   "row.%s would render empty.", rc->newname, rc->oldname),
					 errhint("Change the template to use row.%s in the same transaction as the rename, "
							 "with reminder.create_template().", rc->newname)));
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	rule_unpin(level);
	SetUserIdAndSecContext(save_userid, save_sec);
}

static void
rename_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* an error aborts the transaction, which forgets them */
			if (renamed_columns != NIL)
				check_renamed_columns();
			break;
		default:
			renamed_columns = NIL;
			break;
	}
}

static void
remember_renamed_column(Oid relid, const char *oldname, const char *newname)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	RenamedColumn *rc = palloc(sizeof(RenamedColumn));

	if (!rename_callback_registered)
	{
		RegisterXactCallback(rename_xact_callback, NULL);
		rename_callback_registered = true;
	}
	rc->relid = relid;
	rc->oldname = pstrdup(oldname);
	rc->newname = pstrdup(newname);
	renamed_columns = lappend(renamed_columns, rc);
	MemoryContextSwitchTo(old);
}

/*
 * ddl_command_end for ALTER TABLE: after RENAME of a watched table or of
 * one of its columns, rewrite the rules' stored expressions and column
 * names to the new names.  A renamed column is checked against the rules'
 * templates at commit.
 */
Datum
reminder_watch_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	RenameStmt *stmt;
	RenameWalk	rw = {0};
	Oid			save_userid;
	int			save_sec;
	int			level;
	Oid			relid;
	uint64		n;
	int64	   *ids;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("reminder.watch_ddl_end() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, RenameStmt))
		PG_RETURN_VOID();
	stmt = (RenameStmt *) trigdata->parsetree;
	if (stmt->renameType != OBJECT_COLUMN && stmt->renameType != OBJECT_TABLE)
		PG_RETURN_VOID();
	if (stmt->renameType == OBJECT_COLUMN && stmt->relationType != OBJECT_TABLE)
		PG_RETURN_VOID();

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	level = rule_pin_search_path();
	SPI_connect();

	spi_exec("SELECT r.id, r.table_name::oid FROM reminder.rule r "
			 "WHERE r.table_name IN (SELECT objid FROM pg_event_trigger_ddl_commands() "
			 "                       WHERE classid = 'pg_class'::regclass)",
			 0, NULL, NULL, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	if (n > 0)
	{
		bool		isnull;

		ids = palloc(sizeof(int64) * n);
		for (uint64 i = 0; i < n; i++)
			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

		rw.rel = relation_open(relid, AccessShareLock);
		rw.table = stmt->renameType == OBJECT_TABLE;
		rw.oldname = rw.table ? stmt->relation->relname : stmt->subname;
		rw.newname = stmt->newname;
		for (uint64 i = 0; i < n; i++)
			rename_rule(&rw, ids[i]);
		relation_close(rw.rel, AccessShareLock);
		if (!rw.table)
			remember_renamed_column(relid, rw.oldname, rw.newname);
	}

	SPI_finish();
	rule_unpin(level);
	SetUserIdAndSecContext(save_userid, save_sec);
	PG_RETURN_VOID();
}
