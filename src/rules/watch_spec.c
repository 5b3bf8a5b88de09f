/*-------------------------------------------------------------------------
 *
 * watch_spec.c
 *	  Checking what reminder.watch() was given, and normalizing its
 *	  recipients into the jsonb stored in reminder.rule.
 *
 *	  The caller must own the table; the columns must exist and have the
 *	  right types; channels and templates named as constants must exist;
 *	  every expression must parse as one expression over the row with the
 *	  right type and no volatile function (rules_expr.c); and constant
 *	  addresses must be valid for their channels.  In the stored form
 *	  every setting the rule gives as a default is filled in, and
 *	  expressions are canonical.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgtime.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "outbox/outbox.h"
#include "render/render.h"
#include "rules/rules.h"
#include "rules/watch.h"
#include "util/util.h"

/*
 * Check an expression for a setting as the table owner (search_path is
 * pinned by the caller); returns it transformed, and its canonical text.
 * Planning may already run the owner's immutable functions: in an owner
 * scope, so that nothing they do outlives it.
 */
Node *
watch_parse_as_owner(WatchSpec *w, const char *text, RuleExprType type, const char *what,
					 char **canonical)
{
	OwnerContext scope;
	Node	   *expr;
	EState	   *estate;

	owner_enter(&scope, w->owner, OWNER_RESTRICTED);
	*canonical = rule_expr_canonical(w->rel, text, type, what, w->name, &expr);

	/* the owner must be allowed to call every function it uses */
	estate = CreateExecutorState();
	(void) ExecPrepareExpr(expression_planner((Expr *) expr), estate);
	FreeExecutorState(estate);
	owner_leave(&scope);

	w->exprs = lappend(w->exprs, expr);
	return expr;
}

/* ----------------------------------------------------------------
 *		Building jsonb
 * ----------------------------------------------------------------
 */

static void
push_expr(JsonbParseState **st, const char *key, const char *text)
{
	if (key)
		jsonb_push_key(st, key);
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	jsonb_push_key(st, "expr");
	jsonb_push_string(st, WJB_VALUE, text);
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/* {"expr": "..."} → the text; NULL otherwise */
char *
watch_expr_of(JsonbValue *v)
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

void
watch_check_table(WatchSpec *w)
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

AttrNumber
watch_check_column(WatchSpec *w, const char *name, const char *param, Oid *type)
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

void
watch_check_time_column(WatchSpec *w)
{
	AttrNumber	attno = watch_check_column(w, w->column, "column_name", &w->column_type);

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
void
watch_check_keys(WatchSpec *w, ArrayType *given)
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
			attno = watch_check_column(w, col, "key_columns", NULL);
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

void
watch_check_channel_name(const char *name)
{
	(void) catalog_channel(name);	/* raises undefined_object */
}

void
watch_check_template_name(const char *name)
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
		watch_check_template_name(pnstrdup(e.val.string.val, e.val.string.len));
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
		jsonb_push_string(st, WJB_ELEM, DatumGetCString(DirectFunctionCall1(interval_out, elems[i])));
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
	if (v && (text = watch_expr_of(v)) != NULL)
	{
		char	   *canonical;

		(void) watch_parse_as_owner(w, text, REXPR_INTERVALS, what, &canonical);
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

	if ((text = watch_expr_of(v)) != NULL || (text = string_of(v)) != NULL)
	{
		if (*has_expr)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s has more than one condition", what),
					 errhint("Join them with OR in one {\"expr\": ...}.")));
		*has_expr = true;
		(void) watch_parse_as_owner(w, text, REXPR_BOOL, what, &canonical);
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
		jsonb_push_string(st, WJB_ELEM, lfirst(lc));
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
	if (role && role->type != jbvNull)
	{
		char	   *r = string_of(role);

		if (r == NULL || *r == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.role must be the role of one of the rule's recipients", what)));
		jsonb_push_key(st, "role");
		jsonb_push_string(st, WJB_VALUE, r);
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
	if ((text = watch_expr_of(v)) != NULL)
	{
		(void) watch_parse_as_owner(w, text, REXPR_TEXT, psprintf("%s.%s", what, key), &canonical);
		push_expr(st, key, canonical);
		return;
	}
	if ((text = string_of(v)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.%s must be a text or {\"expr\": ...}", what, key)));
	jsonb_push_key(st, key);
	jsonb_push_string(st, WJB_VALUE, text);
}

static void
push_invite_time(WatchSpec *w, JsonbParseState **st, const char *key, const char *text,
				 const char *what)
{
	char	   *canonical;

	(void) watch_parse_as_owner(w, text, REXPR_TIME, psprintf("%s.%s", what, key), &canonical);
	push_expr(st, key, canonical);
}

static char *
invite_time_text(JsonbValue *v, const char *what, const char *key)
{
	char	   *text;

	if ((text = watch_expr_of(v)) == NULL && (text = string_of(v)) == NULL)
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
		jsonb_push_string(st, WJB_VALUE, DatumGetCString(DirectFunctionCall1(interval_out,
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
		jsonb_push_string(st, WJB_VALUE, text);
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
		watch_check_template_name(text);
		jsonb_push_key(st, key);
		jsonb_push_string(st, WJB_VALUE, text);
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
		jsonb_push_string(st, WJB_VALUE, r);
		w->roles = lappend(w->roles, r);
	}

	/* channel */
	what = psprintf("recipients[%d].channel", index);
	if (channel && (text = watch_expr_of(channel)) != NULL)
	{
		(void) watch_parse_as_owner(w, text, REXPR_TEXT, what, &canonical);
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
		watch_check_channel_name(channel_name);
		jsonb_push_key(st, "channel");
		jsonb_push_string(st, WJB_VALUE, channel_name);
	}

	/* template(s) */
	what = psprintf("recipients[%d].template", index);
	if (template && (text = watch_expr_of(template)) != NULL)
	{
		(void) watch_parse_as_owner(w, text, REXPR_TEXT, what, &canonical);
		push_expr(st, "template", canonical);
	}
	else if (template && template->type != jbvNull)
	{
		char	   *t = string_of(template);

		if (t == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a template name or {\"expr\": ...}", what)));
		watch_check_template_name(t);
		jsonb_push_key(st, "template");
		jsonb_push_string(st, WJB_VALUE, t);
	}
	else if (w->template && !templates)
	{
		jsonb_push_key(st, "template");
		jsonb_push_string(st, WJB_VALUE, w->template);
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
	if ((text = watch_expr_of(to)) != NULL)
	{
		(void) watch_parse_as_owner(w, text, REXPR_JSONB, what, &canonical);
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
			if ((text = watch_expr_of(&v)) != NULL)
			{
				(void) watch_parse_as_owner(w, text, REXPR_TEXT,
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
		if ((text = watch_expr_of(bcc)) != NULL)
		{
			(void) watch_parse_as_owner(w, text, REXPR_ANY_JSONB, what, &canonical);
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
		if ((text = watch_expr_of(when)) == NULL && (text = string_of(when)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be an SQL condition as a string", what)));
		(void) watch_parse_as_owner(w, text, REXPR_BOOL, what, &canonical);
		jsonb_push_key(st, "when");
		jsonb_push_string(st, WJB_VALUE, canonical);
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

Jsonb *
watch_normalize_recipients(WatchSpec *w, Jsonb *recipients)
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
List *
watch_check_changes_to(WatchSpec *w, ArrayType *given)
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
void
watch_values_from_templates(WatchSpec *w, Jsonb *recipients)
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

/*
 * A recurring rule's RRULE: it parses (22023, or 0A000 for parts of RFC
 * 5545 left out), and a series started now has an occurrence within the
 * horizon (not one whose UNTIL has passed, nor BYMONTH=2;BYMONTHDAY=30).
 */
void
watch_check_rrule(WatchSpec *w)
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
