/*-------------------------------------------------------------------------
 *
 * consent.c
 *	  Opt-out and opt-in, and the gate check that honours them at send
 *	  time (so an opt-out also stops messages scheduled before it).
 *
 *	  A consent statement names a subject -- a stored recipient, or a raw
 *	  address (email, or phone in E.164) -- and a scope: a channel (by name
 *	  or by kind, "sms"), a category, both, or neither (everything).  One
 *	  row per subject and scope holds the latest statement in
 *	  reminder.consent; every call is also appended to reminder.consent_log
 *	  with its time, source and the session user who made it.
 *
 *	  A message is suppressed when, among the statements that cover it (its
 *	  recipient id or any of its addresses; its channel or channel kind or
 *	  any channel; its category or any category), the most recent one is an
 *	  opt-out.  So "opt out of everything, then opt back in to SMS" sends
 *	  SMS and nothing else, and a later "opt out of everything" wins again.
 *
 *	  A message's category is message.category (a rule's messages carry
 *	  the rule's, schedule() copies data->>'category'), else
 *	  data->>'category' when the message data has one, else the name of
 *	  its template.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_opt_out);
PG_FUNCTION_INFO_V1(reminder_opt_in);
PG_FUNCTION_INFO_V1(reminder_recipient_subject);

#define MAX_SOURCE_LENGTH	200

static SPIPlanPtr upsert_plan = NULL;
static SPIPlanPtr log_plan = NULL;
static SPIPlanPtr gate_plan = NULL;
static SPIPlanPtr any_plan = NULL;
static SPIPlanPtr batch_plan = NULL;
static SPIPlanPtr channel_plan = NULL;

static char *
lower_text(const char *s)
{
	return str_tolower(s, strlen(s), DEFAULT_COLLATION_OID);
}

/* The category a message belongs to, for consent scopes. */
char *
message_category(const char *category, Jsonb *data, const char *template_name)
{
	JsonbValue *v;

	if (category != NULL && *category != '\0')
		return pstrdup(category);
	v = jsonb_get(data, "category");
	if (v != NULL && v->type == jbvString && v->val.string.len > 0)
		return pnstrdup(v->val.string.val, v->val.string.len);
	return template_name ? pstrdup(template_name) : NULL;
}

/* ----------------------------------------------------------------
 * Subjects: who a consent statement is about
 * ----------------------------------------------------------------
 */

typedef struct Subject
{
	int64		recipient_id;	/* 0: none */
	List	   *emails;			/* lowercased */
	List	   *phones;			/* E.164 */
} Subject;

static char *
subject_string(Jsonb *recipient, const char *key)
{
	return jsonb_get_string(recipient, key, psprintf("recipient \"%s\"", key));
}

/*
 * {"id": n} or {"external_id": "..."} name a stored recipient, which must
 * exist; otherwise "email" and/or "phone" name raw addresses.  With
 * with_addresses, a stored recipient's own addresses are included too.
 */
static void
resolve_subject(Jsonb *recipient, Subject *subj, bool with_addresses)
{
	char	   *s;

	memset(subj, 0, sizeof(Subject));
	if (!JB_ROOT_IS_OBJECT(recipient) || JB_ROOT_IS_SCALAR(recipient))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient must be a JSON object"),
				 errhint("Write {\"external_id\": \"client-42\"} or {\"email\": \"ada@example.com\"}.")));

	if ((jsonb_get(recipient, "id") && jsonb_get(recipient, "id")->type != jbvNull) ||
		(jsonb_get(recipient, "external_id") && jsonb_get(recipient, "external_id")->type != jbvNull))
	{
		Jsonb	   *stored = catalog_resolve_recipient(recipient, &subj->recipient_id);

		if (!with_addresses)
			return;
		if ((s = subject_string(stored, "email")) != NULL)
			subj->emails = lappend(subj->emails, lower_text(s));
		if ((s = subject_string(stored, "phone")) != NULL)
			subj->phones = lappend(subj->phones, s);
		return;
	}

	if ((s = subject_string(recipient, "email")) != NULL)
	{
		validate_email(s, "recipient \"email\"");
		subj->emails = lappend(subj->emails, lower_text(s));
	}
	if ((s = subject_string(recipient, "phone")) != NULL)
		subj->phones = lappend(subj->phones,
							   normalize_phone(s, reminder_default_country_code,
											   "recipient \"phone\""));
	if (subj->emails == NIL && subj->phones == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient names no one"),
				 errdetail("It has none of the keys id, external_id, email, phone."),
				 errhint("Write {\"external_id\": \"client-42\"} or {\"email\": \"ada@example.com\"}.")));
}

/* ----------------------------------------------------------------
 * Recording statements
 * ----------------------------------------------------------------
 */

/* A channel scope is a channel's name or a channel kind.  Needs SPI. */
static void
check_channel_scope(const char *channel)
{
	Datum		values[1];
	ChannelKind kind;

	if (channel_kind_from_name(channel, &kind))
		return;
	if (channel_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		channel_plan = spi_prepare_kept("SELECT 1 FROM reminder.channel WHERE name = $1", 1, argtypes, 0);
	}
	values[0] = CStringGetTextDatum(channel);
	spi_plan_expect(channel_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist", channel),
				 errhint("Name a channel, a channel kind (email, sms, webhook, slack, log), or pass NULL for every channel.")));
}

/* A category has the shape of a template name, which is its default. */
static void
check_category(const char *category)
{
	validate_name(category, "category");
}

static void
check_source(const char *source)
{
	if (strlen(source) > MAX_SOURCE_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("consent source is too long"),
				 errdetail("It has %zu bytes; the limit is %d.", strlen(source), MAX_SOURCE_LENGTH)));
	for (const char *p = source; *p; p++)
		if ((unsigned char) *p < ' ' || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("consent source contains a control character"),
					 errhint("Describe where the request came from, such as \"preferences page\".")));
}

/*
 * Store one statement and log it.  Exactly one of recipient_id (non-zero)
 * and address is given.  Needs SPI.
 */
static void
record_statement(int64 recipient_id, const char *address, const char *channel,
				 const char *category, bool opt_out, const char *source)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	if (upsert_plan == NULL)
	{
		Oid			argtypes[6] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, TEXTOID};

		upsert_plan = spi_prepare_kept("INSERT INTO reminder.consent AS c "
								   "(recipient_id, address, channel, category, opted_out, source, changed_at) "
								   "VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp()) "
								   "ON CONFLICT (recipient_id, address, channel, category) DO UPDATE "
								   "SET opted_out = excluded.opted_out, source = excluded.source, "
								   "changed_at = excluded.changed_at", 6, argtypes, 0);
		log_plan = spi_prepare_kept("INSERT INTO reminder.consent_log "
								"(recipient_id, address, channel, category, action, source) "
								"VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN 'opt_out' ELSE 'opt_in' END, $6)",
								6, argtypes, 0);
	}

	values[0] = Int64GetDatum(recipient_id);
	nulls[0] = recipient_id ? ' ' : 'n';
	values[1] = address ? CStringGetTextDatum(address) : (Datum) 0;
	nulls[1] = address ? ' ' : 'n';
	values[2] = channel ? CStringGetTextDatum(channel) : (Datum) 0;
	nulls[2] = channel ? ' ' : 'n';
	values[3] = category ? CStringGetTextDatum(category) : (Datum) 0;
	nulls[3] = category ? ' ' : 'n';
	values[4] = BoolGetDatum(opt_out);
	values[5] = source ? CStringGetTextDatum(source) : (Datum) 0;
	nulls[5] = source ? ' ' : 'n';

	spi_plan_expect(upsert_plan, values, nulls, false, 0, SPI_OK_INSERT);
	spi_plan_expect(log_plan, values, nulls, false, 0, SPI_OK_INSERT);
}

/*
 * For callers inside the extension (unsubscribe links, hard bounces):
 * record a statement without the checks the SQL functions make on user
 * input.  Opens its own SPI connection.
 */
void
consent_record(int64 recipient_id, const char *address, const char *channel,
			   const char *category, bool opt_out, const char *source)
{
	SPI_connect();
	record_statement(recipient_id, address, channel, category, opt_out, source);
	SPI_finish();
}

static Datum
opt_change(FunctionCallInfo fcinfo, bool opt_out)
{
	Jsonb	   *recipient;
	char	   *channel = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *category = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *source = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	Subject		subj;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipient must not be null")));
	recipient = PG_GETARG_JSONB_P(0);

	/* check everything before writing anything */
	if (category)
		check_category(category);
	if (source)
		check_source(source);
	resolve_subject(recipient, &subj, false);

	SPI_connect();
	if (channel)
		check_channel_scope(channel);

	if (subj.recipient_id)
		record_statement(subj.recipient_id, NULL, channel, category, opt_out, source);
	foreach(lc, subj.emails)
		record_statement(0, lfirst(lc), channel, category, opt_out, source);
	foreach(lc, subj.phones)
		record_statement(0, lfirst(lc), channel, category, opt_out, source);
	SPI_finish();

	PG_RETURN_VOID();
}

Datum
reminder_opt_out(PG_FUNCTION_ARGS)
{
	return opt_change(fcinfo, true);
}

Datum
reminder_opt_in(PG_FUNCTION_ARGS)
{
	return opt_change(fcinfo, false);
}

/* ----------------------------------------------------------------
 * The gate check
 * ----------------------------------------------------------------
 */

/* What the consent check of one message looks for. */
typedef struct ConsentKey
{
	bool		has_id;
	Datum		recipient_id;	/* int8, when has_id */
	char	   *email;			/* lowercased, or NULL */
	char	   *phone;			/* or NULL */
	char	   *email_hash;		/* "sha256:...": opt-outs kept by forget() */
	char	   *phone_hash;
	char	   *category;		/* or NULL */
} ConsentKey;

static char *
address(Jsonb *recipient, const char *key, bool lower)
{
	JsonbValue *v = jsonb_get(recipient, key);
	char	   *s;

	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
		return NULL;
	s = pnstrdup(v->val.string.val, v->val.string.len);
	return lower ? lower_text(s) : s;
}

static void
consent_key(const GateMessage *msg, ConsentKey *key)
{
	JsonbValue *id = jsonb_get(msg->recipient, "id");

	key->has_id = (id != NULL && id->type == jbvNumeric);
	if (key->has_id)
		key->recipient_id = DirectFunctionCall1(numeric_int8, NumericGetDatum(id->val.numeric));
	key->email = address(msg->recipient, "email", true);
	key->phone = address(msg->recipient, "phone", false);
	key->email_hash = key->email ? address_hash_text("email", key->email) : NULL;
	key->phone_hash = key->phone ? address_hash_text("phone", key->phone) : NULL;
	key->category = message_category(msg->category, msg->data, msg->template_name);
}

/*
 * The reason of a suppression, from an opted-out statement's channel,
 * category, source and changed_at (columns first .. first + 3 of the
 * current SPI row), allocated in cxt.
 */
static char *
opted_out_reason(HeapTuple tup, TupleDesc desc, int first, MemoryContext cxt)
{
	char	   *ch = SPI_getvalue(tup, desc, first);
	char	   *cat = SPI_getvalue(tup, desc, first + 1);
	char	   *src = SPI_getvalue(tup, desc, first + 2);
	char	   *at = SPI_getvalue(tup, desc, first + 3);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	char	   *reason;

	reason = psprintf("recipient opted out of %s%s%s at %s%s%s",
					  ch ? "channel " : "every channel",
					  ch ? ch : "",
					  cat ? psprintf(", category %s", cat) : "",
					  at,
					  src ? " via " : "", src ? src : "");
	MemoryContextSwitchTo(old);
	return reason;
}

/*
 * Suppress a message whose recipient's latest covering consent statement
 * is an opt-out.  gate_prepare() may have found out already.
 */
void
consent_gate(const GateMessage *msg, GateResult *result)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Datum		addrs[2];
	Datum		hashes[2];
	int			naddrs = 0;
	int			nhashes = 0;
	ConsentKey	key;
	MemoryContext cxt = CurrentMemoryContext;
	bool		isnull;

	if (msg->consent_checked)
	{
		if (msg->consent_reason)
		{
			result->verdict = GATE_SUPPRESS;
			result->reason = pstrdup(msg->consent_reason);
		}
		return;
	}

	consent_key(msg, &key);
	SPI_connect();
	if (gate_plan == NULL)
	{
		Oid			argtypes[6] = {INT8OID, TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID};

		/* run for every message sent: plan once (a generic plan), not each time */
		gate_plan = spi_prepare_kept("SELECT c.opted_out, c.channel, c.category, c.source, c.changed_at "
								 "FROM reminder.consent c "
								 "WHERE (c.recipient_id = $1 OR c.address = ANY ($2) OR c.address = ANY ($6) "
								 "       OR c.recipient_id IN (SELECT r.id FROM reminder.recipient r "
								 "                             WHERE lower(r.email) = ANY ($2) OR r.phone = ANY ($2))) "
								 "  AND (c.channel IS NULL OR c.channel = $3 OR c.channel = $4) "
								 "  AND (c.category IS NULL OR c.category = $5) "
								 "ORDER BY c.changed_at DESC, c.id DESC LIMIT 1", 6, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}

	if (key.has_id)
		values[0] = key.recipient_id;
	else
		nulls[0] = 'n';
	if (key.email)
		addrs[naddrs++] = CStringGetTextDatum(key.email);
	if (key.phone)
		addrs[naddrs++] = CStringGetTextDatum(key.phone);
	if (key.email_hash)
		hashes[nhashes++] = CStringGetTextDatum(key.email_hash);
	if (key.phone_hash)
		hashes[nhashes++] = CStringGetTextDatum(key.phone_hash);
	values[1] = PointerGetDatum(construct_array(addrs, naddrs, TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(hashes, nhashes, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = CStringGetTextDatum(msg->channel->name);
	values[3] = CStringGetTextDatum(channel_kind_name(msg->channel->kind));
	if (key.category)
		values[4] = CStringGetTextDatum(key.category);
	else
		nulls[4] = 'n';

	spi_plan_expect(gate_plan, values, nulls, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		result->verdict = GATE_SUPPRESS;
		result->reason = opted_out_reason(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, cxt);
	}
	SPI_finish();
}

/*
 * The consent check of a batch, in one query: the same search as
 * consent_gate()'s for each message, through unnest() and a lateral
 * subquery, so the executor starts once per batch, not once per message.
 * When no statement exists at all, one look at the table settles it.
 * Messages without a channel are left to consent_gate().
 */
#define NCOLS 9					/* the columns of the batch unnest() */

void
consent_gate_prepare(GateMessage *msgs, int n)
{
	Datum		values[NCOLS];
	ArrayBuildState *cols[NCOLS];
	static const Oid types[NCOLS] = {INT4OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID};
	MemoryContext cxt = CurrentMemoryContext;
	int			nasked = 0;

	SPI_connect();
	if (any_plan == NULL)
		any_plan = spi_prepare_kept("SELECT FROM reminder.consent LIMIT 1", 0, NULL, 0);
	spi_plan_expect(any_plan, NULL, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		/* nobody ever opted out or in */
		for (int i = 0; i < n; i++)
			if (msgs[i].channel != NULL)
				msgs[i].consent_checked = true;
		SPI_finish();
		return;
	}

	if (batch_plan == NULL)
	{
		Oid			argtypes[NCOLS] = {INT4ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

		batch_plan = spi_prepare_kept("SELECT u.i, c.channel, c.category, c.source, c.changed_at "
										  "FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9) "
										  "     AS u(i, recipient_id, email, phone, channel, kind, category, "
										  "          email_hash, phone_hash) "
										  "CROSS JOIN LATERAL ("
										  " SELECT c.opted_out, c.channel, c.category, c.source, c.changed_at "
										  " FROM reminder.consent c "
										  " WHERE (c.recipient_id = u.recipient_id "
										  "        OR c.address = ANY (ARRAY[u.email, u.phone, u.email_hash, u.phone_hash]) "
										  "        OR c.recipient_id IN (SELECT r.id FROM reminder.recipient r "
										  "                              WHERE lower(r.email) = ANY (ARRAY[u.email, u.phone]) "
										  "                                 OR r.phone = ANY (ARRAY[u.email, u.phone]))) "
										  "   AND (c.channel IS NULL OR c.channel = u.channel OR c.channel = u.kind) "
										  "   AND (c.category IS NULL OR c.category = u.category) "
										  " ORDER BY c.changed_at DESC, c.id DESC LIMIT 1) c "
										  "WHERE c.opted_out",
										  NCOLS, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}

	for (int c = 0; c < NCOLS; c++)
		cols[c] = initArrayResult(types[c], CurrentMemoryContext, false);
	for (int i = 0; i < n; i++)
	{
		ConsentKey	key;
		Datum		row[NCOLS];
		bool		isnull[NCOLS] = {0};

		if (msgs[i].channel == NULL)
			continue;
		consent_key(&msgs[i], &key);
		row[0] = Int32GetDatum(i);
		row[1] = key.recipient_id;
		isnull[1] = !key.has_id;
		row[2] = key.email ? CStringGetTextDatum(key.email) : (Datum) 0;
		isnull[2] = key.email == NULL;
		row[3] = key.phone ? CStringGetTextDatum(key.phone) : (Datum) 0;
		isnull[3] = key.phone == NULL;
		row[4] = CStringGetTextDatum(msgs[i].channel->name);
		row[5] = CStringGetTextDatum(channel_kind_name(msgs[i].channel->kind));
		row[6] = key.category ? CStringGetTextDatum(key.category) : (Datum) 0;
		isnull[6] = key.category == NULL;
		row[7] = key.email_hash ? CStringGetTextDatum(key.email_hash) : (Datum) 0;
		isnull[7] = key.email_hash == NULL;
		row[8] = key.phone_hash ? CStringGetTextDatum(key.phone_hash) : (Datum) 0;
		isnull[8] = key.phone_hash == NULL;
		for (int c = 0; c < NCOLS; c++)
			accumArrayResult(cols[c], row[c], isnull[c], types[c], CurrentMemoryContext);
		nasked++;
	}
	if (nasked == 0)
	{
		SPI_finish();
		return;
	}
	for (int c = 0; c < NCOLS; c++)
		values[c] = makeArrayResult(cols[c], CurrentMemoryContext);

	spi_plan_expect(batch_plan, values, NULL, true, 0, SPI_OK_SELECT);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		int			i = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));

		if (i < 0 || i >= n)
			elog(ERROR, "consent check returned an unknown message index %d", i);
		msgs[i].consent_reason = opted_out_reason(tup, SPI_tuptable->tupdesc, 2, cxt);
	}
	for (int i = 0; i < n; i++)
		if (msgs[i].channel != NULL)
			msgs[i].consent_checked = true;
	SPI_finish();
}

#undef NCOLS

/* ----------------------------------------------------------------
 * reminder._recipient_subject(recipient jsonb): for forget()
 * ----------------------------------------------------------------
 */

static Datum
text_list_array(List *l)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(l), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, l)
		elems[n++] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

Datum
reminder_recipient_subject(PG_FUNCTION_ARGS)
{
	Subject		subj;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipient must not be null")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	resolve_subject(PG_GETARG_JSONB_P(0), &subj, true);
	values[0] = Int64GetDatum(subj.recipient_id);
	nulls[0] = subj.recipient_id == 0;
	values[1] = text_list_array(subj.emails);
	values[2] = text_list_array(subj.phones);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
