/*-------------------------------------------------------------------------
 *
 * rules_cache.c
 *	  Rules compiled once per backend: the row of reminder.rule read, the
 *	  table's columns resolved, every expression parsed and planned, the
 *	  calendar loaded.  The watch trigger runs for every write to a watched
 *	  table, so it must not parse anything or read the extension's tables
 *	  per row; channels and templates are kept here for the same reason.
 *
 *	  Invalidation.  Statement triggers on reminder.rule, channel,
 *	  template, calendar and holiday send a relcache invalidation of
 *	  reminder.rule at commit (reminder_invalidate_rule_cache); every
 *	  backend's relcache callback then marks everything stale.  A relcache
 *	  invalidation of a watched table (ALTER TABLE, rename, change of
 *	  owner) marks that table's rules stale, and a change to any function
 *	  (pg_proc) marks all, since expressions call functions.  Callbacks
 *	  only mark; the work happens at the next lookup, and a rule in use is
 *	  never freed under its user.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "rules/rules.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_invalidate_rule_cache);

typedef struct RuleCacheEntry
{
	int64		id;				/* hash key */
	CompiledRule *rule;
} RuleCacheEntry;

typedef struct NamedCacheEntry
{
	char		key[NAMEDATALEN * 2 + 2];	/* name, or name \x01 locale */
	void	   *value;
} NamedCacheEntry;

static HTAB *rule_cache = NULL;
static bool callbacks_registered = false;

/* channels and templates, reset together when stale and nothing is in use */
static MemoryContext named_cxt = NULL;
static HTAB *channel_cache = NULL;
static HTAB *template_cache = NULL;
static bool named_stale = false;
static int	rules_in_use = 0;

static Oid	cached_extension_owner = InvalidOid;
static Oid	cached_rule_relid = InvalidOid;

static SPIPlanPtr rule_plan = NULL;

static const char *const kind_names[] = {
	[RULE_BEFORE] = "before",
	[RULE_AFTER] = "after",
	[RULE_ON_CHANGE] = "on_change",
	[RULE_FOLLOW_UP] = "follow_up",
	[RULE_SURVEY] = "survey",
	[RULE_RECURRING] = "recurring",
};

RuleKind
rule_kind_from_name(const char *kind)
{
	for (int i = 0; i < lengthof(kind_names); i++)
		if (strcmp(kind, kind_names[i]) == 0)
			return (RuleKind) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown rule kind \"%s\"", kind),
			 errhint("Use one of before, after, on_change, follow_up, survey, recurring.")));
	return RULE_BEFORE;			/* keep compiler quiet */
}

const char *
rule_kind_name(RuleKind kind)
{
	return kind_names[kind];
}

/* ----------------------------------------------------------------
 *		Invalidation
 * ----------------------------------------------------------------
 */

static void
mark_all_stale(void)
{
	HASH_SEQ_STATUS status;
	RuleCacheEntry *entry;

	if (rule_cache != NULL)
	{
		hash_seq_init(&status, rule_cache);
		while ((entry = hash_seq_search(&status)) != NULL)
			entry->rule->stale = true;
	}
	named_stale = true;
}

static void
relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	RuleCacheEntry *entry;

	if (relid == InvalidOid || relid == cached_rule_relid)
	{
		mark_all_stale();
		cached_rule_relid = InvalidOid;
		cached_extension_owner = InvalidOid;
		return;
	}
	if (rule_cache == NULL)
		return;
	hash_seq_init(&status, rule_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->rule->relid == relid)
			entry->rule->stale = true;
}

static void
syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	mark_all_stale();
}

static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, syscache_callback, (Datum) 0);
	callbacks_registered = true;
}

/* The OID of reminder.rule, whose relcache invalidation flushes us. */
Oid
rule_relation_oid(void)
{
	if (!OidIsValid(cached_rule_relid))
	{
		Oid			nsp = get_namespace_oid(REMINDER_SCHEMA, false);

		cached_rule_relid = get_relname_relid("rule", nsp);
		if (!OidIsValid(cached_rule_relid))
			elog(ERROR, "table reminder.rule does not exist");
	}
	return cached_rule_relid;
}

/*
 * Statement trigger on the tables compiled rules are made of: at commit,
 * every backend (this one at the next command) drops what it compiled.
 */
Datum
reminder_invalidate_rule_cache(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("reminder.invalidate_rule_cache() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(rule_relation_oid());
	return PointerGetDatum(NULL);
}

/* The role that owns the extension: rule-made messages are written as it. */
Oid
extension_owner(void)
{
	if (!OidIsValid(cached_extension_owner))
	{
		Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
					F_NAMEEQ, CStringGetDatum(REMINDER_EXTENSION));
		scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (!HeapTupleIsValid(tup))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("extension \"%s\" is not installed in this database", REMINDER_EXTENSION)));
		cached_extension_owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	return cached_extension_owner;
}

/* ----------------------------------------------------------------
 *		Channels and templates
 * ----------------------------------------------------------------
 */

static void
named_reset_if_stale(void)
{
	HASHCTL		ctl;

	if (named_cxt != NULL && !named_stale)
		return;
	if (named_cxt != NULL && rules_in_use > 0)
		return;					/* someone may hold a pointer; later */

	if (named_cxt == NULL)
		named_cxt = AllocSetContextCreate(CacheMemoryContext, "reminder channels and templates",
										  ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(named_cxt);

	ctl.keysize = sizeof(((NamedCacheEntry *) 0)->key);
	ctl.entrysize = sizeof(NamedCacheEntry);
	ctl.hcxt = named_cxt;
	channel_cache = hash_create("reminder channel cache", 16, &ctl,
								HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	template_cache = hash_create("reminder template cache", 16, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	named_stale = false;
}

/*
 * The channel called name, as catalog_channel() gives it; raises
 * undefined_object when there is none.  Valid until the next
 * rule_cache_get() after the channel changes.  Needs read access to the
 * extension's tables (run as the extension owner).
 */
ChannelConfig *
rule_cache_channel(const char *name)
{
	NamedCacheEntry *entry;
	bool		found;
	char		key[sizeof(entry->key)];

	named_reset_if_stale();
	strlcpy(key, name, sizeof(key));
	entry = hash_search(channel_cache, key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(named_cxt);
		ChannelConfig *cc = catalog_channel(name);

		MemoryContextSwitchTo(old);
		entry = hash_search(channel_cache, key, HASH_ENTER, &found);
		entry->value = cc;
	}
	return entry->value;
}

/* Likewise for the best template for a locale (NULL: none). */
TemplateRow *
rule_cache_template(const char *name, const char *locale)
{
	NamedCacheEntry *entry;
	bool		found;
	char		key[sizeof(entry->key)];

	named_reset_if_stale();
	snprintf(key, sizeof(key), "%s\x01%s", name, locale ? locale : "");
	entry = hash_search(template_cache, key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(named_cxt);
		TemplateRow *t = catalog_template(name, locale);

		MemoryContextSwitchTo(old);
		entry = hash_search(template_cache, key, HASH_ENTER, &found);
		entry->value = t;
	}
	return entry->value;
}

/* ----------------------------------------------------------------
 *		Compiling a rule
 * ----------------------------------------------------------------
 */

static Jsonb *
value_jsonb(JsonbValue *v)
{
	return v ? JsonbValueToJsonb(v) : NULL;
}

/* {"expr": "..."} → the expression text; anything else → NULL */
static char *
expr_text(JsonbValue *v)
{
	Jsonb	   *obj;
	JsonbValue *e;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) != 1)
		return NULL;
	obj = value_jsonb(v);
	e = jsonb_get(obj, "expr");
	if (e == NULL || e->type != jbvString)
		return NULL;
	return pnstrdup(e->val.string.val, e->val.string.len);
}

static int
add_expr(CompiledRule *rule, Relation rel, const char *text, RuleExprType type,
		 const char *what)
{
	Node	   *expr = (Node *) expression_planner((Expr *) rule_expr_parse(rel, text, type,
																		  what, rule->name));

	rule->exprs = lappend(rule->exprs, expr);
	if (!rule_expr_runs_code(expr))
		rule->plain_exprs = bms_add_member(rule->plain_exprs, list_length(rule->exprs) - 1);
	return list_length(rule->exprs) - 1;
}

static void
compile_text_value(CompiledRule *rule, Relation rel, JsonbValue *v, RuleValue *out,
				   const char *what)
{
	char	   *text;

	out->expr = -1;
	out->isnull = true;
	if (v == NULL || v->type == jbvNull)
		return;
	if ((text = expr_text(v)) != NULL)
		out->expr = add_expr(rule, rel, text, REXPR_TEXT, what);
	else if (v->type == jbvString)
	{
		out->isnull = false;
		out->value = PointerGetDatum(pnstrdup(v->val.string.val, v->val.string.len));
	}
	else
		elog(ERROR, "%s of rule \"%s\" is neither a string nor an expression", what, rule->name);
}

static void
compile_offsets(CompiledRule *rule, Relation rel, RuleRecipient *r, JsonbValue *v)
{
	char	   *text;
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;

	r->offsets_expr = -1;
	if (v == NULL || v->type == jbvNull)
		return;
	if ((text = expr_text(v)) != NULL)
	{
		r->offsets_expr = add_expr(rule, rel, text, REXPR_INTERVALS,
								   psprintf("recipients[%d].offsets", r->index));
		return;
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		elog(ERROR, "offsets of rule \"%s\" are not an array", rule->name);

	r->offsets = palloc(sizeof(Interval) * Max(JsonContainerSize(v->val.binary.data), 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		Interval   *iv;

		if (tok != WJB_ELEM || e.type != jbvString)
			continue;
		iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
												   CStringGetDatum(pnstrdup(e.val.string.val, e.val.string.len)),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
		r->offsets[r->noffsets++] = *iv;
	}
}

static void
compile_to(CompiledRule *rule, Relation rel, RuleRecipient *r, JsonbValue *v)
{
	char	   *text;
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	e;
	JsonbIteratorToken tok;
	JsonbValue *res;

	r->to_expr = -1;
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		elog(ERROR, "recipients[%d] of rule \"%s\" has no \"to\" object", r->index, rule->name);

	if ((text = expr_text(v)) != NULL)
	{
		r->to_expr = add_expr(rule, rel, text, REXPR_JSONB,
							  psprintf("recipients[%d].to", r->index));
		return;
	}

	/* constant keys go into to_const, expressions into to_fields */
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	it = JsonbIteratorInit(v->val.binary.data);
	tok = JsonbIteratorNext(&it, &k, true);	/* WJB_BEGIN_OBJECT */
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &e, true);
		if ((text = expr_text(&e)) != NULL)
		{
			RuleField  *f = palloc(sizeof(RuleField));

			f->key = key;
			f->expr = add_expr(rule, rel, text, REXPR_TEXT,
							   psprintf("recipients[%d].to.%s", r->index, key));
			r->to_fields = lappend(r->to_fields, f);
		}
		else
		{
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &e);
		}
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	r->to_const = JsonbValueToJsonb(res);
}

/* "unless", as watch_spec.c stores it: events, and at most one condition */
static void
compile_unless(CompiledRule *rule, Relation rel, RuleRecipient *r, JsonbValue *v)
{
	int			n = JsonContainerSize(v->val.binary.data);

	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
		Jsonb	   *item;
		JsonbValue *x;
		char	   *text;

		if ((text = expr_text(e)) != NULL)
		{
			r->unless_text = text;
			r->unless = add_expr(rule, rel, text, REXPR_BOOL,
								 psprintf("recipients[%d].unless", r->index));
			continue;
		}
		if (e->type != jbvBinary || !JsonContainerIsObject(e->val.binary.data))
			elog(ERROR, "recipients[%d].unless of rule \"%s\" is malformed", r->index, rule->name);
		item = value_jsonb(e);
		if ((x = jsonb_get(item, "event")) != NULL && x->type == jbvBinary)
		{
			RuleUnlessEvent *ue = palloc0(sizeof(RuleUnlessEvent));
			int			nk = JsonContainerSize(x->val.binary.data);

			for (int k = 0; k < nk; k++)
				ue->kinds = lappend(ue->kinds,
									jsonb_value_text(getIthJsonbValueFromContainer(x->val.binary.data, k)));
			ue->role = jsonb_get_text(item, "role");
			r->unless_events = lappend(r->unless_events, ue);
		}
	}
}

/* "invite", as watch_spec.c stores it */
static RuleInvite *
compile_invite(CompiledRule *rule, Relation rel, RuleRecipient *r, Jsonb *spec)
{
	RuleInvite *inv = palloc0(sizeof(RuleInvite));
	const char *what = psprintf("recipients[%d].invite", r->index);
	JsonbValue *v;
	char	   *text;

	compile_text_value(rule, rel, jsonb_get(spec, "summary"), &inv->summary, psprintf("%s.summary", what));
	compile_text_value(rule, rel, jsonb_get(spec, "location"), &inv->location, psprintf("%s.location", what));
	compile_text_value(rule, rel, jsonb_get(spec, "description"), &inv->description,
					   psprintf("%s.description", what));
	if ((text = expr_text(jsonb_get(spec, "start"))) == NULL)
		elog(ERROR, "%s of rule \"%s\" has no start", what, rule->name);
	inv->start = add_expr(rule, rel, text, REXPR_TIME, psprintf("%s.start", what));
	inv->end = -1;
	if ((text = expr_text(jsonb_get(spec, "end"))) != NULL)
		inv->end = add_expr(rule, rel, text, REXPR_TIME, psprintf("%s.end", what));
	if ((v = jsonb_get(spec, "duration")) != NULL && v->type == jbvString)
		inv->duration = *DatumGetIntervalP(DirectFunctionCall3(interval_in,
															   CStringGetDatum(pnstrdup(v->val.string.val, v->val.string.len)),
															   ObjectIdGetDatum(InvalidOid),
															   Int32GetDatum(-1)));
	else
		inv->duration.time = USECS_PER_HOUR;
	inv->organizer = jsonb_get_text(spec, "organizer");
	inv->template = jsonb_get_text(spec, "template");
	inv->cancel_template = jsonb_get_text(spec, "cancel_template");
	return inv;
}

static RuleRecipient *
compile_recipient(CompiledRule *rule, Relation rel, JsonbValue *spec_value, int index)
{
	RuleRecipient *r = palloc0(sizeof(RuleRecipient));
	Jsonb	   *spec = value_jsonb(spec_value);
	JsonbValue *v;
	char	   *text;

	r->index = index;
	r->when = -1;

	if ((v = jsonb_get(spec, "role")) != NULL && v->type == jbvString)
		r->role = pnstrdup(v->val.string.val, v->val.string.len);

	compile_text_value(rule, rel, jsonb_get(spec, "channel"), &r->channel,
					   psprintf("recipients[%d].channel", index));
	compile_text_value(rule, rel, jsonb_get(spec, "template"), &r->template,
					   psprintf("recipients[%d].template", index));
	if ((v = jsonb_get(spec, "templates")) != NULL && v->type == jbvBinary)
		r->templates = value_jsonb(v);
	compile_offsets(rule, rel, r, jsonb_get(spec, "offsets"));
	compile_to(rule, rel, r, jsonb_get(spec, "to"));

	r->bcc.expr = -1;
	r->bcc.isnull = true;
	if ((v = jsonb_get(spec, "bcc")) != NULL && v->type != jbvNull)
	{
		if ((text = expr_text(v)) != NULL)
			r->bcc.expr = add_expr(rule, rel, text, REXPR_ANY_JSONB,
								   psprintf("recipients[%d].bcc", index));
		else
		{
			r->bcc.isnull = false;
			r->bcc.value = JsonbPGetDatum(value_jsonb(v));
		}
	}

	if ((v = jsonb_get(spec, "when")) != NULL && v->type == jbvString)
		r->when = add_expr(rule, rel, pnstrdup(v->val.string.val, v->val.string.len),
						   REXPR_BOOL, psprintf("recipients[%d].when", index));

	if ((v = jsonb_get(spec, "digest")) != NULL && v->type == jbvBinary)
		r->digest = value_jsonb(v);
	r->unless = -1;
	if ((v = jsonb_get(spec, "unless")) != NULL && v->type == jbvBinary &&
		JsonContainerIsArray(v->val.binary.data))
		compile_unless(rule, rel, r, v);

	if ((v = jsonb_get(spec, "invite")) != NULL && v->type == jbvBinary)
		r->invite = compile_invite(rule, rel, r, value_jsonb(v));

	r->constant = r->to_expr < 0 && r->to_fields == NIL && r->bcc.expr < 0 &&
		r->channel.expr < 0;
	return r;
}

/* jsonb_build_object('row', <new row>[, 'old', <old row>]) */
static Expr *
make_data_expr(Relation rel, bool with_old)
{
	Oid			rowtype = rel->rd_rel->reltype;
	List	   *args = NIL;

	args = lappend(args, makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
								   CStringGetTextDatum("row"), false, false));
	args = lappend(args, makeVar(1, InvalidAttrNumber, rowtype, -1, InvalidOid, 0));
	if (with_old)
	{
		args = lappend(args, makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
									   CStringGetTextDatum("old"), false, false));
		args = lappend(args, makeVar(OUTER_VAR, InvalidAttrNumber, rowtype, -1, InvalidOid, 0));
	}
	return (Expr *) makeFuncExpr(F_JSONB_BUILD_OBJECT_ANY, JSONBOID, args,
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

static AttrNumber
column_number(CompiledRule *rule, Relation rel, const char *name, Oid *type)
{
	AttrNumber	attno = get_attnum(RelationGetRelid(rel), name);

	if (attno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of rule \"%s\" does not exist in table \"%s\"",
						name, rule->name, RelationGetRelationName(rel)),
				 errhint("Unwatch the rule and watch the table again.")));
	if (type)
		*type = get_atttype(RelationGetRelid(rel), attno);
	return attno;
}

static char **
text_array(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **result;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, n);
	result = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		result[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	return result;
}

/*
 * Read rule id and compile it into a new memory context.  Returns NULL if
 * the rule or its table no longer exists.  Reads reminder.rule as the
 * extension owner; parses and plans expressions as the table owner, since
 * planning may already run immutable functions.
 */
static CompiledRule *
compile_rule(int64 id)
{
	MemoryContext cxt;
	MemoryContext old;
	CompiledRule *rule;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	HeapTuple	tup;
	TupleDesc	desc;
	OwnerContext ext;
	OwnerContext scope;
	bool		isnull;
	Relation	rel;
	char	   *column;
	char	  **keys;
	Datum		d;
	Jsonb	   *recipients;
	char	   *calendar;
	char	   *zone;

	cxt = AllocSetContextCreate(CacheMemoryContext, "reminder rule", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	rule = palloc0(sizeof(CompiledRule));
	rule->cxt = cxt;
	rule->id = id;
	rule->condition = rule->stop = -1;

	PG_TRY();
	{
		/* search_path is the caller's, pinned (rule_cache_get) */
		owner_enter(&ext, extension_owner(), 0);

		SPI_connect();
		if (rule_plan == NULL)
		{
			rule_plan = spi_prepare_kept("SELECT name, table_name::oid, kind, column_name, key_columns, "
										 "recipients, condition, stop_condition, changes_to, business_days, "
										 "calendar, time_zone, if_past, throttle, category, priority, rrule "
										 "FROM reminder.rule WHERE id = $1", 1, argtypes, 0);
		}
		spi_plan_expect(rule_plan, values, NULL, false, 1, SPI_OK_SELECT);
		if (SPI_processed == 0)
		{
			SPI_finish();
			goto missing;
		}
		tup = SPI_copytuple(SPI_tuptable->vals[0]);
		desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		SPI_finish();

		rule->name = TextDatumGetCString(heap_getattr(tup, 1, desc, &isnull));
		rule->relid = DatumGetObjectId(heap_getattr(tup, 2, desc, &isnull));
		rule->kind = rule_kind_from_name(TextDatumGetCString(heap_getattr(tup, 3, desc, &isnull)));
		column = TextDatumGetCString(heap_getattr(tup, 4, desc, &isnull));
		keys = text_array(heap_getattr(tup, 5, desc, &isnull), &rule->nkeys);
		if (rule->nkeys < 1 || rule->nkeys > INDEX_MAX_KEYS)
			elog(ERROR, "rule \"%s\" has %d key columns", rule->name, rule->nkeys);
		recipients = DatumGetJsonbPCopy(heap_getattr(tup, 6, desc, &isnull));
		d = heap_getattr(tup, 7, desc, &isnull);
		rule->condition_text = isnull ? NULL : TextDatumGetCString(d);
		d = heap_getattr(tup, 8, desc, &isnull);
		rule->stop_text = isnull ? NULL : TextDatumGetCString(d);
		d = heap_getattr(tup, 9, desc, &isnull);
		if (!isnull)
			rule->changes_to = text_array(d, &rule->nchanges);
		rule->business_days = DatumGetBool(heap_getattr(tup, 10, desc, &isnull));
		calendar = TextDatumGetCString(heap_getattr(tup, 11, desc, &isnull));
		zone = TextDatumGetCString(heap_getattr(tup, 12, desc, &isnull));
		rule->send_past = strcmp(TextDatumGetCString(heap_getattr(tup, 13, desc, &isnull)), "send") == 0;
		d = heap_getattr(tup, 14, desc, &isnull);
		if (!isnull)
			rule->throttle = *DatumGetIntervalP(d);
		rule->category = TextDatumGetCString(heap_getattr(tup, 15, desc, &isnull));
		rule->priority = DatumGetInt16(heap_getattr(tup, 16, desc, &isnull));
		d = heap_getattr(tup, 17, desc, &isnull);
		if (!isnull)
			rule->rrule = rrule_parse(TextDatumGetCString(d));

		if (rule->business_days)
			rule->calendar = calendar_load(calendar);
		rule->tz = pg_tzset(zone);
		if (rule->tz == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" of rule \"%s\" not recognized", zone, rule->name)));

		rel = try_relation_open(rule->relid, AccessShareLock);
		if (rel == NULL)
			goto missing;
		rule->owner = rel->rd_rel->relowner;
		rule->source_table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
														RelationGetRelationName(rel));

		rule->column = column_number(rule, rel, column, &rule->column_type);
		if (rule->kind == RULE_ON_CHANGE || rule->kind == RULE_SURVEY)
		{
			Oid			outfunc;
			bool		varlena;

			getTypeOutputInfo(rule->column_type, &outfunc, &varlena);
			fmgr_info_cxt(outfunc, &rule->column_out, cxt);
		}
		rule->key_columns = palloc(sizeof(AttrNumber) * rule->nkeys);
		rule->key_types = palloc(sizeof(Oid) * rule->nkeys);
		rule->key_out = palloc(sizeof(FmgrInfo) * rule->nkeys);
		for (int i = 0; i < rule->nkeys; i++)
		{
			Oid			outfunc;
			bool		varlena;

			rule->key_columns[i] = column_number(rule, rel, keys[i], &rule->key_types[i]);
			getTypeOutputInfo(rule->key_types[i], &outfunc, &varlena);
			fmgr_info_cxt(outfunc, &rule->key_out[i], cxt);
		}

		/*
		 * expressions: parsed and planned as the table owner, in an owner
		 * scope (planning may run its immutable functions)
		 */
		owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
		if (rule->condition_text)
			rule->condition = add_expr(rule, rel, rule->condition_text, REXPR_BOOL, "condition");
		if (rule->stop_text)
			rule->stop = add_expr(rule, rel, rule->stop_text, REXPR_BOOL, "stop_condition");
		for (int i = 0; i < JsonContainerSize(&recipients->root); i++)
			rule->recipients = lappend(rule->recipients,
									   compile_recipient(rule, rel,
														 getIthJsonbValueFromContainer(&recipients->root, i),
														 i));
		rule->deterministic = !contain_mutable_functions((Node *) rule->exprs);
		rule->live_row = rule->kind == RULE_BEFORE || rule->kind == RULE_AFTER ||
			rule->kind == RULE_FOLLOW_UP || rule->kind == RULE_RECURRING;
		pull_varattnos((Node *) rule->exprs, 1, &rule->columns);
		rule->columns = bms_add_member(rule->columns,
									   rule->column - FirstLowInvalidHeapAttributeNumber);
		for (int i = 0; i < rule->nkeys; i++)
			rule->columns = bms_add_member(rule->columns,
										   rule->key_columns[i] - FirstLowInvalidHeapAttributeNumber);
		rule->data_new = expression_planner(make_data_expr(rel, false));
		rule->data_old = expression_planner(make_data_expr(rel, true));
		owner_leave(&scope);

		relation_close(rel, AccessShareLock);
missing:
		owner_leave(&ext);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	MemoryContextSwitchTo(old);
	if (rule->relid == InvalidOid || rule->owner == InvalidOid)
	{
		/* the rule or its table is gone */
		MemoryContextDelete(cxt);
		return NULL;
	}
	return rule;
}

/* ----------------------------------------------------------------
 *		Lookup
 * ----------------------------------------------------------------
 */

static void
free_rule(CompiledRule *rule)
{
	ListCell   *lc;

	if (rule->gate_plan)
		SPI_freeplan(rule->gate_plan);
	if (rule->rows_plan)
		SPI_freeplan(rule->rows_plan);
	foreach(lc, rule->recipients)
	{
		RuleRecipient *r = lfirst(lc);

		if (r->unless_plan)
			SPI_freeplan(r->unless_plan);
	}
	MemoryContextDelete(rule->cxt);
}

/*
 * The compiled rule id, compiled now if needed; NULL if it does not exist
 * and missing_ok.  Pair with rule_cache_release().  Call with search_path
 * pinned (rule_pin_search_path).
 */
CompiledRule *
rule_cache_get(int64 id, bool missing_ok)
{
	RuleCacheEntry *entry;
	CompiledRule *rule;
	bool		found;

	register_callbacks();
	if (rule_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(RuleCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		rule_cache = hash_create("reminder rule cache", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	/*
	 * Know which relation's invalidation means "everything changed" (it
	 * is forgotten when that relation itself goes, e.g. DROP EXTENSION),
	 * then take in invalidations that arrived since the last command.
	 */
	(void) rule_relation_oid();
	AcceptInvalidationMessages();

	entry = hash_search(rule_cache, &id, HASH_FIND, NULL);
	if (entry != NULL && !entry->rule->stale)
	{
		entry->rule->refcount++;
		rules_in_use++;
		return entry->rule;
	}
	if (entry != NULL)
	{
		/* stale: free now, or let the last user free it */
		if (entry->rule->refcount == 0)
			free_rule(entry->rule);
		hash_search(rule_cache, &id, HASH_REMOVE, NULL);
	}

	named_reset_if_stale();
	rule = compile_rule(id);
	if (rule == NULL)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("reminder rule " INT64_FORMAT " does not exist", id),
				 errhint("A trigger calling reminder.watch_trigger() is left over from a rule that was removed; drop the trigger.")));
	}
	entry = hash_search(rule_cache, &id, HASH_ENTER, &found);
	entry->rule = rule;
	rule->refcount = 1;
	rules_in_use++;
	return rule;
}

void
rule_cache_release(CompiledRule *rule)
{
	Assert(rule->refcount > 0);
	rule->refcount--;
	rules_in_use--;

	/* a stale rule no longer in the cache is ours to free */
	if (rule->refcount == 0 && rule->stale)
	{
		RuleCacheEntry *entry = hash_search(rule_cache, &rule->id, HASH_FIND, NULL);

		if (entry == NULL || entry->rule != rule)
			free_rule(rule);
	}
}

/*
 * The key of a row given the values of its key columns: the text of the key
 * column, or for several columns a JSON array of their texts.
 */
char *
rule_source_key_of(CompiledRule *rule, Datum *values, bool *nulls)
{
	StringInfoData buf;

	if (rule->nkeys == 1)
		return nulls[0] ? pstrdup("") : OutputFunctionCall(&rule->key_out[0], values[0]);

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < rule->nkeys; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		if (nulls[i])
			appendStringInfoString(&buf, "null");
		else
			escape_json(&buf, OutputFunctionCall(&rule->key_out[i], values[i]));
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/* The key of the row in slot. */
char *
rule_source_key(CompiledRule *rule, TupleTableSlot *slot)
{
	Datum		values[INDEX_MAX_KEYS];
	bool		nulls[INDEX_MAX_KEYS];

	Assert(rule->nkeys <= INDEX_MAX_KEYS);
	for (int i = 0; i < rule->nkeys; i++)
		values[i] = slot_getattr(slot, rule->key_columns[i], &nulls[i]);
	return rule_source_key_of(rule, values, nulls);
}
