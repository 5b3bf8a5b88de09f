/*-------------------------------------------------------------------------
 *
 * digest.c
 *	  Digests: items for one recipient collected under a key and sent as
 *	  one message whose template sees the list.
 *
 *	  An item comes from reminder.add_to_digest(), or from a rule whose
 *	  recipient has a "digest": the rule's message is made and follows its
 *	  row as any other, and when it falls due the worker collects it into
 *	  the recipient's open digest instead of sending it
 *	  (digest_collect_rule_message; the message is then suppressed, with
 *	  "digest: collected into message <n>").  The tables and the choice of
 *	  the open digest are SQL (sql/src/72_digest.sql).
 *
 *	  A digest is sent by an ordinary message (key "digest:<id>"), due when
 *	  the digest closes.  When the worker is about to send it and the gate
 *	  has let it through (consent for the digest's key, quiet hours), it
 *	  closes the digest and checks each item again (digest_fill): an item
 *	  whose row is gone, whose rule's stop condition holds or whose category
 *	  the recipient opted out of is left out; the rest become "items" and
 *	  "count" in the template data.  A digest left with no items is
 *	  suppressed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "outbox/outbox.h"
#include "rules/rules.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_add_to_digest);

#define DIGEST_KEY_PREFIX	"digest:"

/*
 * Set while this backend adds an item: only then may reminder.schedule()
 * make a message with a key digest:<id> (the digest's own).  Anyone else's
 * message with such a key could be taken for the digest's and get its
 * items.
 */
static bool collecting = false;

static SPIPlanPtr spec_plan = NULL;
static SPIPlanPtr collect_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr exists_plan = NULL;
static SPIPlanPtr close_plan = NULL;
static SPIPlanPtr items_plan = NULL;
static SPIPlanPtr dropped_plan = NULL;

/*
 * Digest settings checked, with their defaults filled in (watch() stores
 * them so); errors are reminder._digest_spec()'s, 22023 with a hint.
 */
Jsonb *
digest_check_spec(Jsonb *spec)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1];
	bool		isnull;
	Datum		result;

	SPI_connect();
	if (spec_plan == NULL)
		spec_plan = spi_prepare_kept("SELECT reminder._digest_spec($1)", 1, argtypes, 0);
	values[0] = JsonbPGetDatum(spec);
	spi_plan_expect(spec_plan, values, NULL, false, 1, SPI_OK_SELECT);
	result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							   false, -1);
	SPI_finish();
	/* detoasted (a short header made long) outside SPI's memory */
	return DatumGetJsonbP(result);
}

/* One item into its digest; returns the digest's message id. */
static int64
collect(Jsonb *spec, const char *channel, Jsonb *recipient, const char *template_name,
		Jsonb *data, const char *category, int64 rule_id, const char *source_key,
		int64 message_id)
{
	Datum		values[9];
	char		nulls[9];
	bool		isnull;
	int64		id;

	SPI_connect();
	if (collect_plan == NULL)
	{
		Oid			argtypes[9] = {JSONBOID, TEXTOID, JSONBOID, TEXTOID, JSONBOID, TEXTOID,
		INT8OID, TEXTOID, INT8OID};

		collect_plan = spi_prepare_kept("SELECT reminder._digest_collect($1, $2, $3, $4, $5, $6, $7, $8, $9)",
										9, argtypes, 0);
	}
	memset(nulls, ' ', sizeof(nulls));
	values[0] = JsonbPGetDatum(spec);
	values[1] = CStringGetTextDatum(channel);
	values[2] = JsonbPGetDatum(recipient);
	values[3] = CStringGetTextDatum(template_name);
	values[4] = JsonbPGetDatum(data);
	if (category)
		values[5] = CStringGetTextDatum(category);
	else
		nulls[5] = 'n';
	values[6] = Int64GetDatum(rule_id);
	nulls[6] = rule_id ? ' ' : 'n';
	if (source_key)
		values[7] = CStringGetTextDatum(source_key);
	else
		nulls[7] = 'n';
	values[8] = Int64GetDatum(message_id);
	nulls[8] = message_id ? ' ' : 'n';
	collecting = true;
	PG_TRY();
	{
		spi_plan_expect(collect_plan, values, nulls, false, 1, SPI_OK_SELECT);
	}
	PG_FINALLY();
	{
		collecting = false;
	}
	PG_END_TRY();
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return id;
}

/*
 * reminder.schedule() refuses keys of digest messages but for the digest
 * being opened here.
 */
void
digest_check_key(const char *idempotency_key)
{
	if (idempotency_key != NULL && !collecting &&
		strncmp(idempotency_key, DIGEST_KEY_PREFIX, strlen(DIGEST_KEY_PREFIX)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency keys starting with \"%s\" are reserved", DIGEST_KEY_PREFIX),
				 errdetail("They name the messages that send digests."),
				 errhint("Choose another key; reminder.add_to_digest() adds to a digest.")));
}

/*
 * reminder.add_to_digest(channel, recipient, template, digest, data,
 * category): everything is checked as reminder.schedule() checks it before
 * anything is written.
 */
Datum
reminder_add_to_digest(PG_FUNCTION_ARGS)
{
	char	   *channel;
	char	   *template_name;
	Jsonb	   *recipient;
	Jsonb	   *spec;
	Jsonb	   *data;
	char	   *category = NULL;
	ChannelConfig *cc;
	int64		recipient_id;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null",
							i == 0 ? "channel" : i == 1 ? "recipient" : i == 2 ? "template" : "digest"),
					 i == 3 ? errhint("Write {\"key\": \"daily_tasks\", \"at\": \"08:00\"}.") : 0));
	channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
	recipient = PG_GETARG_JSONB_P(1);
	template_name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	spec = digest_check_spec(PG_GETARG_JSONB_P(3));
	data = PG_ARGISNULL(4) ?
		DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P(4);
	if (!JB_ROOT_IS_OBJECT(data) || JB_ROOT_IS_SCALAR(data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("item data must be a JSON object"),
				 errhint("Write {\"title\": \"Call Ada\"}; the digest's template lists items with {{#items}}{{title}}{{/items}}.")));
	validate_payload_size(VARSIZE(data), "item data");
	if (!PG_ARGISNULL(5))
	{
		category = text_to_cstring(PG_GETARG_TEXT_PP(5));
		if (*category == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("category must not be empty"),
					 errhint("Pass NULL for the digest's own category, its key.")));
	}

	cc = catalog_channel(channel);
	recipient = catalog_resolve_recipient(recipient, &recipient_id);
	recipient = recipient_for_channel(recipient, cc);
	(void) catalog_template(template_name, jsonb_get_text(recipient, "locale"));

	PG_RETURN_INT64(collect(spec, channel, recipient, template_name, data, category,
							0, NULL, 0));
}

/* ----------------------------------------------------------------
 * In the worker, inside the claim transaction
 * ----------------------------------------------------------------
 */

/* The recipient's position in a rule message's key rule:<rule>:<row>:<n>:... */
static int
key_recipient(const char *key)
{
	const char *p = key;

	if (strncmp(key, "rule:", 5) != 0)
		return -1;
	for (int colons = 0; colons < 3; p++)
	{
		if (*p == '\0')
			return -1;
		if (*p == ':')
			colons++;
	}
	if (!isdigit((unsigned char) *p))
		return -1;
	return atoi(p);
}

typedef struct CollectRuleMessage
{
	Jsonb	   *spec;
	ClaimedMessage *m;
	Jsonb	   *data;
	const char *category;
	int64		digest_message; /* out */
} CollectRuleMessage;

/*
 * In a subtransaction, with a short lock_timeout: the worker does not
 * wait behind a transaction that is adding to the same digest (or opening
 * it); the item is tried again a moment later.
 */
static void
collect_rule_message(void *arg)
{
	CollectRuleMessage *c = arg;
	int			level = NewGUCNestLevel();

	(void) set_config_option("lock_timeout", "100ms", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	c->digest_message = collect(c->spec, c->m->channel, c->m->recipient, c->m->template_name,
								c->data, c->category, c->m->rule_id, c->m->source_key,
								c->m->id);
	AtEOXact_GUC(false, level);
}

/*
 * A rule's message whose recipient has a "digest" is not sent: it goes
 * into the recipient's open digest, and is suppressed with a reason that
 * names the digest's message.  Returns false, changing nothing, for any
 * other message.  The item keeps the message's data, except for rules
 * that follow their row: their row is read again when the digest goes out.
 */
bool
digest_collect_rule_message(ClaimedMessage *m, GateResult *gr)
{
	CompiledRule *rule;
	Jsonb	   *spec = NULL;
	bool		live_row = false;
	char	   *category = NULL;
	int			index;
	int			level;
	CollectRuleMessage c;
	ErrorData  *edata;

	if (m->rule_id == 0 || m->idempotency_key == NULL)
		return false;
	index = key_recipient(m->idempotency_key);
	if (index < 0)
		return false;

	level = rule_pin_search_path();
	rule = rule_cache_get(m->rule_id, true);
	if (rule != NULL)
	{
		PG_TRY();
		{
			RuleRecipient *r = index < list_length(rule->recipients) ?
				list_nth(rule->recipients, index) : NULL;

			if (r && r->digest)
			{
				spec = r->digest;
				live_row = rule->live_row;
				category = pstrdup(rule->category);
				/* the rule's memory may go when it is released */
				spec = (Jsonb *) pg_detoast_datum_copy((struct varlena *) spec);
			}
		}
		PG_FINALLY();
		{
			rule_cache_release(rule);
		}
		PG_END_TRY();
	}
	rule_unpin(level);
	if (spec == NULL)
		return false;

	c.spec = spec;
	c.m = m;
	c.data = live_row ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) : m->data;
	c.category = m->category ? m->category : category;
	edata = subxact_try(collect_rule_message, &c);
	if (edata != NULL)
	{
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(edata);
		/* a transaction is adding to the same digest: do not wait for it */
		FreeErrorData(edata);
		gr->verdict = GATE_DEFER;
		gr->defer_until = GetCurrentTimestamp() + USECS_PER_SEC;
		gr->reason = pstrdup("digest: another transaction is adding to it");
		return true;
	}
	gr->verdict = GATE_SUPPRESS;
	gr->defer_until = 0;
	gr->reason = psprintf("digest: collected into message " INT64_FORMAT, c.digest_message);
	return true;
}

/* The digest of a message with key digest:<id>, or 0. */
static int64
key_digest(const char *key)
{
	const char *p;
	int64		id = 0;

	if (key == NULL || strncmp(key, DIGEST_KEY_PREFIX, strlen(DIGEST_KEY_PREFIX)) != 0)
		return 0;
	for (p = key + strlen(DIGEST_KEY_PREFIX); *p; p++)
	{
		if (!isdigit((unsigned char) *p) || id > (PG_INT64_MAX - 9) / 10)
			return 0;
		id = id * 10 + (*p - '0');
	}
	return id;
}

static bool
item_passes(GateMessage *item, GateResult *r)
{
	r->verdict = GATE_SEND;
	r->defer_until = 0;
	r->reason = NULL;

	/* the row is gone: rule_message_data() said so */
	rule_stop_check(item, r);
	if (r->verdict != GATE_SEND)
		return false;
	consent_gate(item, r);
	return r->verdict == GATE_SEND;
}

/*
 * The digest message m is about to go out (the gate let it through):
 * close its digest, and give m->data its items, each checked again now.
 * Sets *gr to suppress it when no item is left, or to defer it a moment
 * while a transaction is adding an item.  Does nothing to other messages.
 * A dry run (reminder.render()) closes nothing, locks nothing, writes
 * nothing.
 */
static void
fill(ClaimedMessage *m, ChannelConfig *cc, GateResult *gr, bool dry_run)
{
	int64		digest_id = key_digest(m->idempotency_key);
	Datum		values[2];
	bool		isnull;
	MemoryContext cxt = CurrentMemoryContext;
	JsonbParseState *st = NULL;
	JsonbValue *list;
	JsonbValue	v;
	int			kept = 0;
	int			dropped = 0;
	uint64		n;
	SPITupleTable *items;
	ArrayBuildState *ids;
	ArrayBuildState *reasons;

	if (digest_id == 0)
		return;

	SPI_connect();
	if (lock_plan == NULL)
	{
		Oid			argtypes[2] = {INT8OID, INT8OID};

		lock_plan = spi_prepare_kept("SELECT closed_at IS NOT NULL FROM reminder.digest "
									 "WHERE id = $1 AND message_id = $2 FOR UPDATE SKIP LOCKED",
									 2, argtypes, 0);
		exists_plan = spi_prepare_kept("SELECT FROM reminder.digest WHERE id = $1 AND message_id = $2",
									   2, argtypes, 0);
		close_plan = spi_prepare_kept("UPDATE reminder.digest SET closed_at = now() WHERE id = $1",
									  1, argtypes, 0);
		items_plan = spi_prepare_kept("SELECT id, data, category, rule_id, source_key, message_id "
									  "FROM reminder.digest_item WHERE digest_id = $1 "
									  "ORDER BY added_at, message_id, id",
									  1, argtypes, 0);
	}
	values[0] = Int64GetDatum(digest_id);
	values[1] = Int64GetDatum(m->id);

	if (dry_run)
		spi_plan_expect(exists_plan, values, NULL, true, 1, SPI_OK_SELECT);
	else
		spi_plan_expect(lock_plan, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0 && dry_run)
	{
		gr->verdict = GATE_CANCEL;
		gr->reason = MemoryContextStrdup(cxt, "digest: its items are gone");
		SPI_finish();
		return;
	}
	if (SPI_processed == 0)
	{
		spi_plan_expect(exists_plan, values, NULL, true, 1, SPI_OK_SELECT);
		if (SPI_processed == 0)
		{
			gr->verdict = GATE_CANCEL;
			gr->reason = MemoryContextStrdup(cxt, "digest: its items are gone");
		}
		else
		{
			/* an item is being added: it goes out with the rest */
			gr->verdict = GATE_DEFER;
			gr->defer_until = GetCurrentTimestamp() + USECS_PER_SEC;
			gr->reason = MemoryContextStrdup(cxt, "digest: an item is being added");
		}
		SPI_finish();
		return;
	}
	if (!dry_run &&
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		spi_plan_expect(close_plan, values, NULL, false, 0, SPI_OK_UPDATE);

	spi_plan_expect(items_plan, values, NULL, true, 0, SPI_OK_SELECT);
	items = SPI_tuptable;
	n = SPI_processed;

	/* the items are checked in the caller's context: the checks use SPI */
	MemoryContextSwitchTo(cxt);
	ids = initArrayResult(INT8OID, cxt, false);
	reasons = initArrayResult(TEXTOID, cxt, false);
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = items->vals[i];
		TupleDesc	desc = items->tupdesc;
		int64		item_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Jsonb	   *data = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 2, &isnull));
		char	   *category = SPI_getvalue(tup, desc, 3);
		Datum		d = SPI_getbinval(tup, desc, 4, &isnull);
		int64		rule_id = isnull ? 0 : DatumGetInt64(d);
		char	   *source_key = SPI_getvalue(tup, desc, 5);
		int64		message_id;
		GateMessage item = {0};
		GateResult	r = {0};
		char	   *reason = NULL;

		d = SPI_getbinval(tup, desc, 6, &isnull);
		message_id = isnull ? 0 : DatumGetInt64(d);

		item.id = message_id;
		item.channel = cc;
		item.recipient = m->recipient;
		item.template_name = m->template_name;
		item.category = category ? category : m->category;
		item.due_at = m->due_at;
		item.rule_id = rule_id;
		item.source_key = source_key;
		item.dry_run = dry_run;

		if (!rule_message_data(rule_id, source_key, &data, &reason))
			;					/* the row (or its rule) is gone */
		else
		{
			item.data = data;
			if (!item_passes(&item, &r))
				reason = r.reason;
		}
		accumArrayResult(ids, Int64GetDatum(item_id), false, INT8OID, cxt);
		accumArrayResult(reasons, reason ? CStringGetTextDatum(reason) : (Datum) 0,
						 reason == NULL, TEXTOID, cxt);
		if (reason)
		{
			dropped++;
			continue;
		}
		kept++;
		v.type = jbvBinary;
		v.val.binary.data = &data->root;
		v.val.binary.len = VARSIZE(data) - VARHDRSZ;
		pushJsonbValue(&st, WJB_ELEM, &v);
	}
	list = pushJsonbValue(&st, WJB_END_ARRAY, NULL);

	/* why each item is or is not listed, for whoever asks later */
	if (dropped_plan == NULL)
	{
		Oid			argtypes[2] = {INT8ARRAYOID, TEXTARRAYOID};

		dropped_plan = spi_prepare_kept("UPDATE reminder.digest_item i SET dropped = u.reason "
										"FROM unnest($1, $2) AS u(id, reason) "
										"WHERE i.id = u.id AND i.dropped IS DISTINCT FROM u.reason",
										2, argtypes, 0);
	}
	if (n > 0 && !dry_run)
	{
		Datum		args[2];

		args[0] = makeArrayResult(ids, cxt);
		args[1] = makeArrayResult(reasons, cxt);
		spi_plan_expect(dropped_plan, args, NULL, false, 0, SPI_OK_UPDATE);
	}
	SPI_finish();

	if (kept == 0)
	{
		gr->verdict = GATE_SUPPRESS;
		gr->reason = psprintf("digest: no items left (%d left out)", dropped);
		return;
	}

	/* data: what the message stored, plus items and count */
	{
		JsonbParseState *ost = NULL;
		JsonbValue	k;
		JsonbValue	c;
		Jsonb	   *extra;

		pushJsonbValue(&ost, WJB_BEGIN_OBJECT, NULL);
		jsonb_push_key(&ost, "count");
		c.type = jbvNumeric;
		c.val.numeric = int64_to_numeric(kept);
		pushJsonbValue(&ost, WJB_VALUE, &c);
		k.type = jbvString;
		k.val.string.val = "items";
		k.val.string.len = 5;
		pushJsonbValue(&ost, WJB_KEY, &k);
		v.type = jbvBinary;
		{
			Jsonb	   *arr = JsonbValueToJsonb(list);

			v.val.binary.data = &arr->root;
			v.val.binary.len = VARSIZE(arr) - VARHDRSZ;
		}
		pushJsonbValue(&ost, WJB_VALUE, &v);
		extra = JsonbValueToJsonb(pushJsonbValue(&ost, WJB_END_OBJECT, NULL));
		m->data = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(m->data),
													 JsonbPGetDatum(extra)));
	}
	gr->verdict = GATE_SEND;
}

void
digest_fill(ClaimedMessage *m, ChannelConfig *cc, GateResult *gr)
{
	fill(m, cc, gr, false);
}

/*
 * reminder.render(message_id) of a digest message: the data it would go
 * out with now, its items checked, nothing changed.  Returns false, with
 * *reason, when it would not go out at all.  Other messages' data is
 * left as it is.
 */
bool
digest_preview(int64 message_id, const char *idempotency_key, ChannelConfig *cc,
			   Jsonb *recipient, const char *template_name, const char *category,
			   Jsonb **data, char **reason)
{
	ClaimedMessage m = {0};
	GateResult	gr = {GATE_SEND, 0, NULL};

	m.id = message_id;
	m.idempotency_key = unconstify(char *, idempotency_key);
	m.channel = cc->name;
	m.recipient = recipient;
	m.template_name = unconstify(char *, template_name);
	m.category = unconstify(char *, category);
	m.data = *data;
	m.due_at = GetCurrentTimestamp();
	fill(&m, cc, &gr, true);
	if (gr.verdict != GATE_SEND)
	{
		*reason = gr.reason;
		return false;
	}
	*data = m.data;
	return true;
}
