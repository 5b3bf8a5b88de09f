/*-------------------------------------------------------------------------
 *
 * recipients_fuzz.c
 *	  libFuzzer harness for the recipients spec of reminder.watch(): the
 *	  JSON text is read by PostgreSQL's own jsonb_in, then checked and
 *	  normalized by watch_normalize_recipients() of src/rules/watch_spec.c
 *	  (included here), which checks constant addresses with
 *	  recipient_for_channel() (src/outbox/schedule.c) and the validators
 *	  (src/util/validate.c, src/catalog/recipient.c), all production code.
 *
 * What the harness stands in for, because it needs a server: the catalog
 * (channels sms, mail, hook, slack and log exist; templates t1, t2 and
 * followup_1 exist; no stored recipient exists) and the SQL expression
 * parser behind {"expr": ...} (an expression is accepted as written,
 * except an empty one, and is its own canonical form).  Those are tested
 * against a server by the regression and TAP suites.
 *
 * Input: one byte choosing the rule kind and the rule-level defaults
 * (channel, template, templates, business days), then the JSON text.
 * Checked: no crash, sanitizer report or elog ("cannot happen"); the
 * result is an array of objects with a channel; and normalizing is
 * idempotent: the normalized spec, given again, comes back unchanged (the
 * stored form is what later reads and renames of the rule work on).
 *
 *-------------------------------------------------------------------------
 */
#include "../../src/rules/watch_spec.c"

#include "fuzz_pg.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ----------------------------------------------------------------
 *		The stand-ins
 * ----------------------------------------------------------------
 */

ChannelConfig *
catalog_channel(const char *name)
{
	static const struct
	{
		const char *name;
		ChannelKind kind;
	}			channels[] = {
		{"sms", CHANNEL_SMS}, {"mail", CHANNEL_EMAIL}, {"hook", CHANNEL_WEBHOOK},
		{"slack", CHANNEL_SLACK}, {"log", CHANNEL_LOG},
	};

	for (int i = 0; i < lengthof(channels); i++)
		if (strcmp(name, channels[i].name) == 0)
		{
			ChannelConfig *cc = palloc0(sizeof(ChannelConfig));

			cc->name = pstrdup(name);
			cc->kind = channels[i].kind;
			cc->default_country_code = i % 2 ? NULL : "48";
			return cc;
		}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("channel \"%s\" does not exist", name)));
}

TemplateRow *
catalog_template(const char *name, const char *locale)
{
	if (strcmp(name, "t1") != 0 && strcmp(name, "t2") != 0 &&
		strcmp(name, "followup_1") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("template \"%s\" does not exist", name)));
	return palloc0(sizeof(TemplateRow));
}

Jsonb *
catalog_resolve_recipient(Jsonb *recipient, int64 *recipient_id)
{
	JsonbValue *id = jsonb_get(recipient, "id");
	JsonbValue *ext = jsonb_get(recipient, "external_id");

	*recipient_id = 0;
	if ((id == NULL || id->type == jbvNull) && (ext == NULL || ext->type == jbvNull))
		return recipient;
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("recipient does not exist")));
}

char *
rule_expr_canonical(Relation rel, const char *text, RuleExprType type,
					const char *what, const char *rule_name, Node **expr)
{
	if (*text == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s is empty", what)));
	String	   *node = makeNode(String);

	node->sval = pstrdup(text);
	*expr = (Node *) node;
	return pstrdup(text);
}

void
owner_enter(OwnerContext *ctx, Oid owner, int flags)
{
}

void
owner_leave(OwnerContext *ctx)
{
}

EState *
CreateExecutorState(void)
{
	return NULL;
}

void
FreeExecutorState(EState *estate)
{
}

Expr *
expression_planner(Expr *expr)
{
	return expr;
}

ExprState *
ExecPrepareExpr(Expr *node, EState *estate)
{
	return NULL;
}

/* ----------------------------------------------------------------
 *		The harness
 * ----------------------------------------------------------------
 */

static Jsonb *
jsonb_from_text(const char *text)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

static void
check_normalized(Jsonb *r)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			depth = 0;
	int			objects = 0;

	if (!JB_ROOT_IS_ARRAY(r) || JB_ROOT_IS_SCALAR(r) || JB_ROOT_COUNT(r) == 0)
		abort();
	it = JsonbIteratorInit(&r->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT && depth++ == 1)
			objects++;
		else if (tok == WJB_BEGIN_ARRAY)
			depth++;
		else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			depth--;
	}
	if (objects != (int) JB_ROOT_COUNT(r))
		abort();
	for (int i = 0; i < (int) JB_ROOT_COUNT(r); i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&r->root, i);
		Jsonb	   *o = JsonbValueToJsonb(e);

		if (jsonb_get(o, "channel") == NULL || jsonb_get(o, "to") == NULL)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool initialized = false;
	static const RuleKind kinds[] = {RULE_BEFORE, RULE_AFTER, RULE_FOLLOW_UP,
	RULE_ON_CHANGE, RULE_SURVEY};
	MemoryContext cxt;
	MemoryContext old;
	WatchSpec	w;
	char	   *text;
	Jsonb	   *spec;
	Jsonb	   *normalized;
	Jsonb	   *again;
	uint8		b;

	if (size < 1)
		return 0;
	if (!initialized)
	{
		fuzz_init_backend();
		initialized = true;
	}
	cxt = AllocSetContextCreate(NULL, "fuzz", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	b = data[0];
	memset(&w, 0, sizeof(w));
	w.name = "fuzz_rule";
	w.owner = 10;
	w.kind = kinds[b % lengthof(kinds)];
	w.channel = (b / 5) % 3 == 0 ? NULL : (b / 5) % 3 == 1 ? "sms" : "mail";
	w.template = (b / 15) % 2 ? "t1" : NULL;
	w.business_days = (b / 30) % 2;
	if ((b / 60) % 2 && !FUZZ_TRY(w.templates = jsonb_from_text("{\"paid\": \"t1\", \"shipped\": \"t2\"}")))
		abort();

	text = palloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';

	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "kind %d channel %s template %s templates %d business_days %d\n",
				(int) w.kind, w.channel ? w.channel : "-", w.template ? w.template : "-",
				w.templates != NULL, (int) w.business_days);
	if (FUZZ_TRY(spec = jsonb_from_text(text)) &&
		FUZZ_TRY(normalized = watch_normalize_recipients(&w, spec)))
	{
		check_normalized(normalized);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "normalized: %s\n",
					DatumGetCString(DirectFunctionCall1(jsonb_out, JsonbPGetDatum(normalized))));
		if (!FUZZ_TRY(again = watch_normalize_recipients(&w, normalized)))
		{
			fprintf(stderr, "fuzz: the normalized spec is refused: %s\n",
					DatumGetCString(DirectFunctionCall1(jsonb_out, JsonbPGetDatum(normalized))));
			abort();
		}
		if (VARSIZE(again) != VARSIZE(normalized) ||
			memcmp(again, normalized, VARSIZE(again)) != 0)
		{
			fprintf(stderr, "fuzz: normalizing is not idempotent:\n%s\n%s\n",
					DatumGetCString(DirectFunctionCall1(jsonb_out, JsonbPGetDatum(normalized))),
					DatumGetCString(DirectFunctionCall1(jsonb_out, JsonbPGetDatum(again))));
			abort();
		}
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}
