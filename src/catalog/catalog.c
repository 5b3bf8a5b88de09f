/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Reading the extension's own tables: the best template for a locale,
 *	  a stored recipient.  (A channel is read where it is parsed, in
 *	  channel.c: catalog_channel().)
 *
 *	  These run on every schedule() call and for every message the worker
 *	  sends, so their plans are prepared once per backend and kept.  Each
 *	  function opens its own SPI connection (nesting is fine) and returns
 *	  results allocated in the caller's memory context.
 *
 *	  Between catalog_batch_begin() and the end of the transaction (the
 *	  worker's claim of a batch), a template is read once per name and
 *	  locale and the row is shared: a batch of messages from one template
 *	  costs one query, not one each.  Outside a batch every call reads the
 *	  table, so a template changed earlier in the same transaction is seen.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "util/spi_util.h"
#include "util/util.h"

static SPIPlanPtr template_plan = NULL;
static SPIPlanPtr recipient_by_id_plan = NULL;
static SPIPlanPtr recipient_by_external_id_plan = NULL;

/* Templates read in this batch; the memory goes with the transaction. */
typedef struct MemoEntry
{
	char	   *name;
	char	   *locale;			/* the recipient's, or NULL */
	TemplateRow *row;
} MemoEntry;

static LocalTransactionId memo_lxid = InvalidLocalTransactionId;
static MemoryContext memo_cxt = NULL;
static List *memo = NIL;

/* Copy a datum of the current SPI result row into the caller's context. */
static char *
result_text(int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	MemoryContext old;
	char	   *s;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(cxt);
	s = TextDatumGetCString(d);
	MemoryContextSwitchTo(old);
	return s;
}

static Jsonb *
result_jsonb(int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	MemoryContext old;
	Jsonb	   *j;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(cxt);
	j = DatumGetJsonbPCopy(d);
	MemoryContextSwitchTo(old);
	return j;
}

/*
 * Read each template once until the end of the current transaction.  The
 * caller must not change templates in it meanwhile (the worker's claim
 * does not).
 */
void
catalog_batch_begin(void)
{
	memo_cxt = AllocSetContextCreate(TopTransactionContext, "reminder template memo",
									 ALLOCSET_SMALL_SIZES);
	memo = NIL;
	memo_lxid = MyProc->lxid;
}

static bool
memo_active(void)
{
	return memo_lxid != InvalidLocalTransactionId && memo_lxid == MyProc->lxid;
}

static bool
same_text(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static TemplateRow *
memo_find(const char *name, const char *locale)
{
	ListCell   *lc;

	if (!memo_active())
		return NULL;
	foreach(lc, memo)
	{
		MemoEntry  *e = lfirst(lc);

		if (strcmp(e->name, name) == 0 && same_text(e->locale, locale))
			return e->row;
	}
	return NULL;
}

static TemplateRow *
copy_template_row(TemplateRow *t, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TemplateRow *c = palloc0(sizeof(TemplateRow));
	ListCell   *lc;

	c->name = pstrdup(t->name);
	c->locale = pstrdup(t->locale);
	c->subject = t->subject ? pstrdup(t->subject) : NULL;
	c->body = pstrdup(t->body);
	c->html = t->html ? pstrdup(t->html) : NULL;
	foreach(lc, t->required)
		c->required = lappend(c->required, pstrdup(lfirst(lc)));
	MemoryContextSwitchTo(old);
	return c;
}

static void
memo_add(const char *name, const char *locale, TemplateRow *t)
{
	MemoryContext old;
	MemoEntry  *e;

	if (!memo_active())
		return;
	old = MemoryContextSwitchTo(memo_cxt);
	e = palloc(sizeof(MemoEntry));
	e->name = pstrdup(name);
	e->locale = locale ? pstrdup(locale) : NULL;
	e->row = copy_template_row(t, memo_cxt);
	memo = lappend(memo, e);
	MemoryContextSwitchTo(old);
}

/*
 * The template called name in the best locale for the recipient: the
 * exact locale, its language ("pl" for "pl-PL"), reminder.default_locale,
 * then the alphabetically first one, so a template in any one language
 * always renders.  Raises undefined_object if no locale exists.
 */
TemplateRow *
catalog_template(const char *name, const char *locale)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	MemoryContext cxt = CurrentMemoryContext;
	TemplateRow *t;
	bool		isnull;
	Datum		req;

	if ((t = memo_find(name, locale)) != NULL)
		return copy_template_row(t, cxt);

	SPI_connect();

	if (template_plan == NULL)
	{
		Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		template_plan = spi_prepare_kept("SELECT locale, subject, body, html, required "
									 "FROM reminder.template WHERE name = $1 "
									 "ORDER BY locale = $2 DESC NULLS LAST, "
									 "locale = $3 DESC NULLS LAST, "
									 "locale = $4 DESC, locale LIMIT 1", 4, argtypes, 0);
	}

	values[0] = CStringGetTextDatum(name);
	if (locale)
	{
		const char *dash = strchr(locale, '-');

		values[1] = CStringGetTextDatum(locale);
		values[2] = PointerGetDatum(cstring_to_text_with_len(locale, dash ? dash - locale : strlen(locale)));
	}
	else
		nulls[1] = nulls[2] = 'n';
	values[3] = CStringGetTextDatum(reminder_default_locale);

	spi_plan_expect(template_plan, values, nulls, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("template \"%s\" does not exist", name),
				 errhint("Create it with reminder.create_template().")));

	t = MemoryContextAllocZero(cxt, sizeof(TemplateRow));
	t->name = MemoryContextStrdup(cxt, name);
	t->locale = result_text(1, cxt);
	t->subject = result_text(2, cxt);
	t->body = result_text(3, cxt);
	t->html = result_text(4, cxt);

	req = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
	if (!isnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(req);
		Datum	   *elems;
		bool	   *elnulls;
		int			n;
		MemoryContext old;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elnulls, &n);
		old = MemoryContextSwitchTo(cxt);
		for (int i = 0; i < n; i++)
			if (!elnulls[i])
				t->required = lappend(t->required, TextDatumGetCString(elems[i]));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	memo_add(name, locale, t);
	return t;
}

/*
 * A recipient given as {"id": n} or {"external_id": "..."} (possibly with
 * other keys that override stored ones) becomes the stored row merged with
 * those keys.  Others come back unchanged.  *recipient_id is the stored
 * row's id, or 0.
 */
Jsonb *
catalog_resolve_recipient(Jsonb *recipient, int64 *recipient_id)
{
	JsonbValue *id = jsonb_get(recipient, "id");
	JsonbValue *ext = jsonb_get(recipient, "external_id");
	MemoryContext cxt = CurrentMemoryContext;
	Datum		values[1];
	SPIPlanPtr	plan;
	const char *by;
	char	   *key;
	Jsonb	   *stored;
	Jsonb	   *merged;

	*recipient_id = 0;
	if ((id == NULL || id->type == jbvNull) && (ext == NULL || ext->type == jbvNull))
		return recipient;

	SPI_connect();

	if (id && id->type != jbvNull)
	{
		if (id->type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recipient \"id\" must be a number")));
		if (recipient_by_id_plan == NULL)
		{
			Oid			argtypes[1] = {INT8OID};

			recipient_by_id_plan = spi_prepare_kept(
												"SELECT r.id, jsonb_strip_nulls(to_jsonb(r) - 'created_at' - 'updated_at') "
												"FROM reminder.recipient r WHERE r.id = $1", 1, argtypes, 0);
		}
		key = jsonb_value_text(id);
		values[0] = DirectFunctionCall1(int8in, CStringGetDatum(key));
		plan = recipient_by_id_plan;
		by = "id";
	}
	else
	{
		if (recipient_by_external_id_plan == NULL)
		{
			Oid			argtypes[1] = {TEXTOID};

			recipient_by_external_id_plan = spi_prepare_kept(
														 "SELECT r.id, jsonb_strip_nulls(to_jsonb(r) - 'created_at' - 'updated_at') "
														 "FROM reminder.recipient r WHERE r.external_id = $1", 1, argtypes, 0);
		}
		key = jsonb_value_text(ext);
		values[0] = CStringGetTextDatum(key);
		plan = recipient_by_external_id_plan;
		by = "external_id";
	}

	spi_plan_expect(plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("recipient with %s \"%s\" does not exist", by, key),
				 errhint("Insert it into reminder.recipient, or give the recipient inline as {\"email\": ...}.")));

	{
		bool		isnull;

		*recipient_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
	}
	stored = result_jsonb(2, cxt);
	SPI_finish();

	/* inline keys override stored ones */
	merged = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
												JsonbPGetDatum(stored),
												JsonbPGetDatum(recipient)));
	return merged;
}
