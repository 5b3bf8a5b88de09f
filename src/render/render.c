/*-------------------------------------------------------------------------
 *
 * render.c
 *	  A message as it goes out: the template in the recipient's locale,
 *	  rendered over the message data with the escaping the channel needs,
 *	  timestamps in the recipient's time zone.
 *
 *	  The template context is the message data with "recipient",
 *	  "message" and the signed "links" (links.c) added.  Rule-made messages
 *	  of on_change and survey rules carry "row" and "old" in their data;
 *	  those of rules that follow their row get it from rule_message_data()
 *	  (rules_gate.c) before they come here.
 *
 *	  Compiled templates are cached per backend and reused while the
 *	  stored source is unchanged, so the worker compiles a template once,
 *	  not once per message.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "outbox/outbox.h"
#include "render/mustache.h"
#include "render/render.h"
#include "render/template.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_render);
PG_FUNCTION_INFO_V1(reminder_render_message);

#define CACHE_KEY_SIZE	(NAMEDATALEN * 2)

typedef struct CompiledTemplate
{
	char		key[CACHE_KEY_SIZE];	/* name '/' locale */
	MemoryContext cxt;
	char	   *subject_src;
	char	   *body_src;
	char	   *html_src;
	MustacheTemplate *subject;
	MustacheTemplate *body;
	MustacheTemplate *html;
} CompiledTemplate;

static HTAB *compiled_cache = NULL;

static bool
same_source(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static MustacheTemplate *
compile_part(const char *src, const char *part, const char *name)
{
	if (src == NULL)
		return NULL;
	return template_compile(src, psprintf("%s of template \"%s\"", part, name));
}

/*
 * The compiled form of a template row, compiled now if the cache has no
 * entry or an entry for different source text.
 */
static CompiledTemplate *
compiled_template(TemplateRow *t)
{
	char		key[CACHE_KEY_SIZE];
	CompiledTemplate *ct;
	bool		found;
	MemoryContext cxt;
	MemoryContext old;

	if (compiled_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = CACHE_KEY_SIZE;
		ctl.entrysize = sizeof(CompiledTemplate);
		compiled_cache = hash_create("reminder compiled templates", 64, &ctl,
									 HASH_ELEM | HASH_STRINGS);
	}

	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%s/%s", t->name, t->locale);
	ct = hash_search(compiled_cache, key, HASH_ENTER, &found);
	if (found && ct->cxt != NULL &&
		same_source(ct->subject_src, t->subject) &&
		same_source(ct->body_src, t->body) &&
		same_source(ct->html_src, t->html))
		return ct;

	if (found && ct->cxt != NULL)
		MemoryContextDelete(ct->cxt);
	ct->cxt = NULL;

	/* compile into a fresh context; only a complete entry is kept */
	cxt = AllocSetContextCreate(TopMemoryContext, "reminder template",
								ALLOCSET_SMALL_SIZES);
	old = CurrentMemoryContext;
	PG_TRY();
	{
		MemoryContextSwitchTo(cxt);
		ct->subject_src = t->subject ? pstrdup(t->subject) : NULL;
		ct->body_src = pstrdup(t->body);
		ct->html_src = t->html ? pstrdup(t->html) : NULL;
		ct->subject = compile_part(t->subject, "subject", t->name);
		ct->body = compile_part(t->body, "body", t->name);
		ct->html = compile_part(t->html, "html", t->name);
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		hash_search(compiled_cache, key, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ct->cxt = cxt;

	return ct;
}

/* data + {"recipient": ..., "message": {"id": ...}} */
static Jsonb *
render_context(Jsonb *data, Jsonb *recipient, int64 message_id)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);

	jsonb_push_key(&state, "recipient");
	v.type = jbvBinary;
	v.val.binary.data = &recipient->root;
	v.val.binary.len = VARSIZE(recipient) - VARHDRSZ;
	pushJsonbValue(&state, WJB_VALUE, &v);

	if (message_id > 0)
	{
		jsonb_push_key(&state, "message");
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		jsonb_push_key(&state, "id");
		v.type = jbvNumeric;
		v.val.numeric = int64_to_numeric(message_id);
		pushJsonbValue(&state, WJB_VALUE, &v);
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(data),
											  JsonbPGetDatum(JsonbValueToJsonb(res))));
}

/*
 * How values are escaped in each part is the channel kind's (its transport
 * ops); with no channel, text bodies and HTML.
 */
static const TransportOps *
render_ops(ChannelConfig *cc)
{
	return cc != NULL ? transport_for_kind(cc->kind) : NULL;
}

/*
 * A signed link of the template context (links.unsubscribe for
 * List-Unsubscribe, links.callback for providers' status callbacks), or
 * NULL when links are off.
 */
static char *
context_link(Jsonb *context, const char *action)
{
	JsonbValue *links = jsonb_get(context, "links");
	JsonbValue *url;

	if (links == NULL || links->type != jbvBinary ||
		!JsonContainerIsObject(links->val.binary.data))
		return NULL;
	url = getKeyJsonValueFromContainer(links->val.binary.data, action,
									   strlen(action), NULL);
	if (url == NULL || url->type != jbvString || url->val.string.len == 0)
		return NULL;
	return pnstrdup(url->val.string.val, url->val.string.len);
}

/* A rendered header must stay one line, whatever the data held. */
static char *
one_line(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	return s;
}

/*
 * Dates speak the template's language: a recipient in "pl-PL" reading a
 * "pl" template gets pl-PL formats, one in "de" reading the "en" fallback
 * gets English month names, not German ones inside English text.
 */
static const char *
dates_locale(const char *template_locale, const char *recipient_locale)
{
	size_t		len = strcspn(template_locale, "-");

	if (recipient_locale != NULL &&
		strncmp(recipient_locale, template_locale, len) == 0 &&
		(recipient_locale[len] == '\0' || recipient_locale[len] == '-'))
		return recipient_locale;
	return template_locale;
}

static RenderedMessage *
render_with(TemplateRow *t, ChannelConfig *cc, Jsonb *recipient, Jsonb *data,
			int64 message_id)
{
	CompiledTemplate *ct = compiled_template(t);
	RenderedMessage *rm = palloc0(sizeof(RenderedMessage));
	RenderOptions opts = {0};
	const TransportOps *ops = render_ops(cc);
	Jsonb	   *context = links_add_to_context(render_context(data, recipient, message_id),
											   message_id);

	opts.time_zone = jsonb_get_text(recipient, "time_zone");
	opts.locale = dates_locale(t->locale, jsonb_get_text(recipient, "locale"));
	opts.max_output = reminder_max_payload_size;

	rm->locale = pstrdup(t->locale);
	if (ct->subject)
	{
		opts.escape = RENDER_ESCAPE_NONE;
		opts.what = psprintf("subject of template \"%s\"", t->name);
		rm->subject = one_line(template_render_compiled(ct->subject, context, &opts));
	}
	opts.escape = ops ? ops->body_escape : RENDER_ESCAPE_NONE;
	opts.what = psprintf("body of template \"%s\"", t->name);
	rm->body = template_render_compiled(ct->body, context, &opts);
	if (ops && ops->finish_body)
		rm->body = ops->finish_body(rm->body);
	if (ct->html)
	{
		opts.escape = ops ? ops->html_escape : RENDER_ESCAPE_HTML;
		opts.what = psprintf("html of template \"%s\"", t->name);
		rm->html = template_render_compiled(ct->html, context, &opts);
	}
	rm->unsubscribe_url = context_link(context, "unsubscribe");
	rm->callback_url = context_link(context, "callback");
	return rm;
}

/*
 * Render a message for sending.  The caller has resolved the recipient
 * (schedule() stored it resolved).  Needs a transaction.
 */
RenderedMessage *
render_message(ChannelConfig *cc, const char *template_name, Jsonb *recipient,
			   Jsonb *data, int64 message_id)
{
	TemplateRow *t = catalog_template(template_name, jsonb_get_text(recipient, "locale"));

	return render_with(t, cc, recipient, data, message_id);
}

static Datum
rendered_tuple(FunctionCallInfo fcinfo, RenderedMessage *rm)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	values[0] = CStringGetTextDatum(rm->locale);
	if (rm->subject)
		values[1] = CStringGetTextDatum(rm->subject);
	else
		nulls[1] = true;
	values[2] = CStringGetTextDatum(rm->body);
	if (rm->html)
		values[3] = CStringGetTextDatum(rm->html);
	else
		nulls[3] = true;

	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

/*
 * reminder.render(template, recipient, data, channel): a preview.  With a
 * channel the recipient is checked for it, as schedule() would.
 */
Datum
reminder_render(PG_FUNCTION_ARGS)
{
	char	   *name;
	Jsonb	   *recipient;
	Jsonb	   *data;
	ChannelConfig *cc = NULL;
	int64		recipient_id;
	TemplateRow *t;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	recipient = PG_ARGISNULL(1) ?
		DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P(1);
	data = PG_ARGISNULL(2) ?
		DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P(2);
	if (!JB_ROOT_IS_OBJECT(data) || JB_ROOT_IS_SCALAR(data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message data must be a JSON object")));

	recipient = catalog_resolve_recipient(recipient, &recipient_id);
	if (!PG_ARGISNULL(3))
	{
		cc = catalog_channel(text_to_cstring(PG_GETARG_TEXT_PP(3)));
		recipient = recipient_for_channel(recipient, cc);
	}
	t = catalog_template(name, jsonb_get_text(recipient, "locale"));
	check_required_variables(t, data, recipient);

	return rendered_tuple(fcinfo, render_with(t, cc, recipient, data, 0));
}

/* reminder.render(message_id): the message as the worker would send it now */
Datum
reminder_render_message(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	MemoryContext cxt = CurrentMemoryContext;
	char	   *channel;
	char	   *template_name;
	Jsonb	   *recipient;
	Jsonb	   *data;
	bool		isnull;
	Datum		d;
	int64		rule_id;
	char	   *source_key;
	char	   *key;
	char	   *category;
	char	   *reason;
	MemoryContext old;
	ChannelConfig *cc;

	SPI_connect();
	spi_exec_expect("SELECT channel, template, recipient, data, rule_id, source_key, "
					"idempotency_key, category "
					"FROM reminder.message WHERE id = $1",
					1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("message %lld does not exist", (long long) id)));
	old = MemoryContextSwitchTo(cxt);
	channel = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	template_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	recipient = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	data = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
	rule_id = isnull ? 0 : DatumGetInt64(d);
	source_key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6);
	key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7);
	category = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 8);
	MemoryContextSwitchTo(old);
	SPI_finish();

	/* the data the worker would send: the row as it is now, for some rules */
	if (!rule_message_data(rule_id, source_key, &data, &reason))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("message %lld would not be sent: %s", (long long) id, reason),
				 errhint("The worker cancels it when it comes due; reminder.gate_check() says so too.")));

	cc = catalog_channel(channel);
	/* a digest: its items as they would go out now (digest.c) */
	if (!digest_preview(id, key, cc, recipient, template_name, category, &data, &reason))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("message %lld would not be sent: %s", (long long) id, reason),
				 errhint("A digest's items are checked again when it goes out: their rows, stop conditions and the recipient's consent.")));
	return rendered_tuple(fcinfo, render_message(cc, template_name, recipient, data, id));
}
