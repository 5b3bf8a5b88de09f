/*-------------------------------------------------------------------------
 *
 * schedule.c
 *	  Putting a message into the outbox: resolve and check the recipient
 *	  for the channel, find the template, check its required variables,
 *	  insert once per idempotency key, and wake the worker at commit.
 *
 *	  Everything is checked before anything is written, so a call that
 *	  fails leaves no trace.  reminder.schedule() and the watch triggers
 *	  both come through schedule_message().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "outbox/outbox.h"
#include "render/template.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"
#include "worker/worker.h"

PG_FUNCTION_INFO_V1(reminder_schedule);

static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr existing_plan = NULL;
static SPIPlanPtr archived_plan = NULL;

/*
 * Check a resolved recipient against what the channel needs, and return it
 * with its address normalised (phone numbers in E.164).
 */
Jsonb *
recipient_for_channel(Jsonb *recipient, ChannelConfig *cc)
{
	char	   *s;
	const TransportOps *ops = transport_for_kind(cc->kind);

	if (!JB_ROOT_IS_OBJECT(recipient) || JB_ROOT_IS_SCALAR(recipient))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient must be a JSON object"),
				 errhint("Write {\"email\": \"ada@example.com\"} or {\"external_id\": \"client-42\"}.")));

	if ((s = recipient_string(recipient, "name")) != NULL)
		validate_header_value(s, "recipient \"name\"");
	if ((s = recipient_string(recipient, "time_zone")) != NULL)
		validate_time_zone(s, "recipient \"time_zone\"");
	if ((s = recipient_string(recipient, "locale")) != NULL)
		validate_locale(s, "recipient \"locale\"");
	if ((s = recipient_string(recipient, "email")) != NULL)
		validate_email(s, "recipient \"email\"");
	if ((s = recipient_string(recipient, "url")) != NULL)
	{
		static const char *const http_schemes[] = {"http", "https", NULL};

		validate_url(s, http_schemes, "recipient \"url\"");
	}

	recipient_check_message(recipient);

	/* and what the channel's kind needs (transport_*.c) */
	if (ops != NULL && ops->check_recipient != NULL)
		recipient = ops->check_recipient(cc, recipient);
	return recipient;
}

/*
 * Variables a template declares required must resolve to something not
 * null, so a message never goes out with a hole where a name should be.
 * "recipient.x" names are looked up in the recipient, others in the data.
 */
void
check_required_variables(TemplateRow *tmpl, Jsonb *data, Jsonb *recipient)
{
	ListCell   *lc;

	foreach(lc, tmpl->required)
	{
		const char *name = lfirst(lc);
		bool		is_recipient = strncmp(name, "recipient.", 10) == 0;

		/* resolved as the template engine resolves names when rendering */
		if (is_recipient ? template_data_has(recipient, name + 10) :
			template_data_has(data, name))
			continue;
		if (is_recipient)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("template \"%s\" requires variable \"%s\"", tmpl->name, name),
					 errdetail("The recipient has no value for \"%s\".", name + 10),
					 errhint("Give the recipient a \"%s\", inline or in reminder.recipient.", name + 10)));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("template \"%s\" requires variable \"%s\"", tmpl->name, name),
					 errdetail("The message data has no value for it."),
					 errhint("Add \"%s\" to the data passed to reminder.schedule().", name)));
	}
}

/*
 * A message's own fallback channel must exist, differ from its channel and
 * be able to reach the recipient: found out now, not when the message has
 * already failed.
 */
static void
check_fallback(const char *fallback, ChannelConfig *cc, Jsonb *recipient)
{
	if (strcmp(fallback, cc->name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a message on channel \"%s\" cannot fall back to the same channel", fallback),
				 errhint("Name another channel, or pass NULL to use the channel's own \"fallback\" setting.")));
	(void) recipient_for_channel(recipient, catalog_channel(fallback));
}

static int64
insert_message(const ScheduleRequest *req, int64 recipient_id, Jsonb *recipient,
			   int16 priority)
{
	Datum		values[13];
	char		nulls[13];
	bool		isnull;
	int64		id;
	const char *category = req->category;

	if (insert_plan == NULL)
	{
		Oid			argtypes[13] = {TEXTOID, INT8OID, JSONBOID, TEXTOID, JSONBOID,
		TIMESTAMPTZOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT2OID};

		insert_plan = spi_prepare_kept("INSERT INTO reminder.message "
									   "(channel, recipient_id, recipient, template, data, due_at, next_attempt_at, "
									   " idempotency_key, rule_id, source_table, source_key, fallback, category, priority) "
									   "VALUES ($1, $2, $3, $4, $5, $6, $6, "
									   " coalesce($7, gen_random_uuid()::text), $8, $9, $10, $11, $12, $13) "
									   "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
									   13, argtypes, 0);
	}

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(req->channel);
	values[1] = Int64GetDatum(recipient_id);
	nulls[1] = recipient_id ? ' ' : 'n';
	values[2] = JsonbPGetDatum(recipient);
	values[3] = CStringGetTextDatum(req->template_name);
	values[4] = JsonbPGetDatum(req->data);
	values[5] = TimestampTzGetDatum(req->due_at);
	if (req->idempotency_key)
		values[6] = CStringGetTextDatum(req->idempotency_key);
	else
		nulls[6] = 'n';
	values[7] = Int64GetDatum(req->rule_id);
	nulls[7] = req->rule_id ? ' ' : 'n';
	if (req->source_table)
		values[8] = CStringGetTextDatum(req->source_table);
	else
		nulls[8] = 'n';
	if (req->source_key)
		values[9] = CStringGetTextDatum(req->source_key);
	else
		nulls[9] = 'n';
	if (req->fallback)
		values[10] = CStringGetTextDatum(req->fallback);
	else
		nulls[10] = 'n';
	/* the data's "category" is the message's: shown in message.category */
	if (category == NULL)
	{
		JsonbValue *v = jsonb_get(req->data, "category");

		if (v != NULL && v->type == jbvString && v->val.string.len > 0)
			category = pnstrdup(v->val.string.val, v->val.string.len);
	}
	if (category)
		values[11] = CStringGetTextDatum(category);
	else
		nulls[11] = 'n';
	values[12] = Int16GetDatum(priority);

	/*
	 * A key given by the caller may belong to a message already moved to
	 * history: that is the message, as in the outbox.  Generated keys are
	 * new, and skip the look-up (a probe of each history partition).
	 */
	if (req->idempotency_key)
	{
		if (archived_plan == NULL)
		{
			Oid			argtypes[1] = {TEXTOID};

			archived_plan = spi_prepare_kept("SELECT id FROM reminder.message_history "
											 "WHERE idempotency_key = $1 LIMIT 1",
											 1, argtypes, 0);
		}
		spi_plan_expect(archived_plan, &values[6], NULL, true, 1, SPI_OK_SELECT);
		if (SPI_processed == 1)
			return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	spi_plan_expect(insert_plan, values, nulls, false, 1, SPI_OK_INSERT_RETURNING);
	if (SPI_processed == 1)
	{
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		wakeup_at_commit(req->due_at);
		return id;
	}

	/* the key exists: return that message and create nothing */
	if (existing_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		existing_plan = spi_prepare_kept("SELECT id FROM reminder.message WHERE idempotency_key = $1",
										 1, argtypes, 0);
	}
	/*
	 * Not read-only: a fresh snapshot, so that a message inserted earlier
	 * in this very statement (schedule() called per row of a query) is
	 * seen, as ON CONFLICT saw it.
	 */
	spi_plan_expect(existing_plan, &values[6], NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent schedule() with idempotency key \"%s\"",
						req->idempotency_key),
				 errhint("Retry the transaction.")));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

int64
schedule_message(const ScheduleRequest *req)
{
	ChannelConfig *cc;
	TemplateRow *tmpl;
	Jsonb	   *recipient;
	int64		recipient_id;
	int64		id;

	if (req->data && (!JB_ROOT_IS_OBJECT(req->data) || JB_ROOT_IS_SCALAR(req->data)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message data must be a JSON object"),
				 errhint("Write {\"name\": \"Ada\"}; templates refer to its keys.")));
	validate_payload_size(VARSIZE(req->data), "message data");
	if (req->idempotency_key)
	{
		if (*req->idempotency_key == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency key must not be empty"),
					 errhint("Pass NULL to have one generated.")));
		validate_header_value(req->idempotency_key, "idempotency key");
	}

	cc = catalog_channel(req->channel);
	recipient = catalog_resolve_recipient(req->recipient, &recipient_id);
	recipient = recipient_for_channel(recipient, cc);
	tmpl = catalog_template(req->template_name, jsonb_get_text(recipient, "locale"));
	check_required_variables(tmpl, req->check_data ? req->check_data : req->data, recipient);
	if (req->fallback)
		check_fallback(req->fallback, cc, recipient);

	SPI_connect();
	id = insert_message(req, recipient_id, recipient,
						req->priority ? parse_priority(req->priority, "priority") : cc->priority);
	SPI_finish();

	return id;
}

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

Datum
reminder_schedule(PG_FUNCTION_ARGS)
{
	ScheduleRequest req = {0};

	req.channel = text_arg(fcinfo, 0, "channel");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipient must not be null")));
	req.recipient = PG_GETARG_JSONB_P(1);
	req.template_name = text_arg(fcinfo, 2, "template");
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("due_at must not be null"),
				 errhint("Pass now() to send as soon as possible.")));
	req.due_at = PG_GETARG_TIMESTAMPTZ(3);
	if (TIMESTAMP_NOT_FINITE(req.due_at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("due_at must be a finite timestamp")));
	req.data = PG_ARGISNULL(4) ?
		DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))) :
		PG_GETARG_JSONB_P(4);
	req.idempotency_key = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	digest_check_key(req.idempotency_key);	/* digest.c: its messages' keys */
	req.fallback = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	/* 0.1.0's reminder.schedule() has no priority, until ALTER EXTENSION UPDATE */
	if (PG_NARGS() > 7 && !PG_ARGISNULL(7))
		req.priority = text_to_cstring(PG_GETARG_TEXT_PP(7));

	PG_RETURN_INT64(schedule_message(&req));
}
