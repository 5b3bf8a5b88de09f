/*-------------------------------------------------------------------------
 *
 * recipient.c
 *	  Stored recipients: the trigger that validates and normalises every
 *	  row written to reminder.recipient (whether through
 *	  reminder.upsert_recipient() or plain DML), and the per-message checks
 *	  on recipients that schedule() makes.
 *
 *	  A stored recipient and an inline jsonb recipient pass the same checks,
 *	  so both resolve and deliver the same way.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_recipient_check);

#define MAX_EXTERNAL_ID_LENGTH	200

static const char *const http_schemes[] = {"http", "https", NULL};

/* The text value of column name, or NULL. */
static char *
column_text(HeapTuple tuple, TupleDesc desc, const char *name, int *attnum)
{
	bool		isnull;
	Datum		d;

	*attnum = SPI_fnumber(desc, name);
	if (*attnum <= 0)
		elog(ERROR, "reminder.recipient has no column \"%s\"", name);
	d = heap_getattr(tuple, *attnum, desc, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

static Jsonb *
column_jsonb(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	int			attnum = SPI_fnumber(desc, name);
	Datum		d;

	if (attnum <= 0)
		elog(ERROR, "reminder.recipient has no column \"%s\"", name);
	d = heap_getattr(tuple, attnum, desc, &isnull);
	return isnull ? NULL : DatumGetJsonbP(d);
}

static void
check_external_id(const char *id)
{
	if (*id == '\0' || strlen(id) > MAX_EXTERNAL_ID_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid recipient external_id \"%s\"", id),
				 errdetail("An external_id has 1 to %d characters.", MAX_EXTERNAL_ID_LENGTH),
				 errhint("Use your application's own key for the person, such as \"client-42\".")));
	for (const char *p = id; *p; p++)
		if ((unsigned char) *p < ' ' || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid recipient external_id"),
					 errdetail("It contains a control character."),
					 errhint("Use your application's own key for the person, such as \"client-42\".")));
}

/*
 * BEFORE INSERT OR UPDATE trigger on reminder.recipient: refuse a row with
 * a malformed address, time zone, locale or quiet hours with the SQLSTATE
 * and hint reminder.schedule() would give for the same value inline, store
 * phone numbers in E.164, and keep updated_at current.
 */
Datum
reminder_recipient_check(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	char	   *s;
	int			attnum;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			ncols = 0;
	Jsonb	   *j;
	QuietHours	qh;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "reminder_recipient_check must be fired BEFORE ... FOR EACH ROW");

	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = trigdata->tg_relation->rd_att;

	if ((s = column_text(tuple, desc, "external_id", &attnum)) != NULL)
		check_external_id(s);
	if ((s = column_text(tuple, desc, "name", &attnum)) != NULL)
		validate_header_value(s, "recipient \"name\"");
	if ((s = column_text(tuple, desc, "email", &attnum)) != NULL)
		validate_email(s, "recipient \"email\"");
	if ((s = column_text(tuple, desc, "url", &attnum)) != NULL)
		validate_url(s, http_schemes, "recipient \"url\"");
	if ((s = column_text(tuple, desc, "time_zone", &attnum)) != NULL)
		validate_time_zone(s, "recipient \"time_zone\"");
	if ((s = column_text(tuple, desc, "locale", &attnum)) != NULL)
		validate_locale(s, "recipient \"locale\"");

	if ((j = column_jsonb(tuple, desc, "quiet_hours")) != NULL)
	{
		JsonbValue	v;

		if (JB_ROOT_IS_SCALAR(j))
		{
			/* a bare scalar: only null is meaningful, and it means none */
			JsonbExtractScalar(&j->root, &v);
			quiet_hours_parse(&v, &qh, "recipient \"quiet_hours\"", true);
		}
		else
		{
			v.type = jbvBinary;
			v.val.binary.data = &j->root;
			v.val.binary.len = VARSIZE(j) - VARHDRSZ;
			quiet_hours_parse(&v, &qh, "recipient \"quiet_hours\"", true);
		}
	}

	if ((j = column_jsonb(tuple, desc, "attributes")) != NULL &&
		(!JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient \"attributes\" must be a JSON object"),
				 errhint("Write {\"company\": \"ACME\"}; templates see it as recipient.attributes.")));

	/*
	 * Phone numbers in international form are stored in E.164, as messages
	 * carry them.  A national number is stored as written when no
	 * reminder.default_country_code is set: an SMS channel's own
	 * default_country_code completes it when a message is scheduled.
	 */
	if ((s = column_text(tuple, desc, "phone", &attnum)) != NULL)
	{
		const char *cc = reminder_default_country_code;
		const char *p = s;
		bool		international;
		char	   *e164;

		while (*p == ' ')
			p++;
		international = *p == '+' || strncmp(p, "00", 2) == 0;
		if (international || (cc && *cc))
			e164 = normalize_phone(s, cc, "recipient \"phone\"");
		else
		{
			/* check it as if it had a country code; keep it as written */
			(void) normalize_phone(s, "1", "recipient \"phone\"");
			e164 = s;
		}
		if (strcmp(e164, s) != 0)
		{
			cols[ncols] = attnum;
			values[ncols++] = CStringGetTextDatum(e164);
		}
	}

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		attnum = SPI_fnumber(desc, "updated_at");
		if (attnum > 0)
		{
			cols[ncols] = attnum;
			values[ncols++] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		}
	}

	if (ncols > 0)
		tuple = heap_modify_tuple_by_cols(tuple, desc, ncols, cols, values, nulls);
	return PointerGetDatum(tuple);
}

/* Number of addresses under key: a string counts one, an array its length. */
static int
address_count(Jsonb *recipient, const char *key)
{
	JsonbValue *v = jsonb_get(recipient, key);

	if (v == NULL || v->type == jbvNull)
		return 0;
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
		return JsonContainerSize(v->val.binary.data);
	return 1;
}

/*
 * Checks on a resolved recipient that do not depend on the channel: its
 * quiet hours are well formed, and a message goes to no more than
 * reminder.max_recipients addresses (the recipient, cc and bcc).
 */
void
recipient_check_message(Jsonb *recipient)
{
	QuietHours	qh;
	int			n;

	quiet_hours_parse(jsonb_get(recipient, "quiet_hours"), &qh,
					  "recipient \"quiet_hours\"", true);

	n = 1 + address_count(recipient, "cc") + address_count(recipient, "bcc");
	if (n > reminder_max_recipients)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message has too many recipients"),
				 errdetail("It goes to %d addresses (recipient, cc and bcc); the limit is %d.",
						   n, reminder_max_recipients),
				 errhint("Schedule one message per recipient, or raise reminder.max_recipients.")));
}

/*
 * The string under key, or NULL; any other type is an error.  Watch
 * triggers check a recipient per row: the error's wording is only made when
 * there is one.
 */
char *
recipient_string(Jsonb *recipient, const char *key)
{
	JsonbValue *v = jsonb_get(recipient, key);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient \"%s\" must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The recipient lacks the address a channel of its kind needs. */
void
recipient_missing_address(ChannelConfig *cc, const char *key, const char *example)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("recipient has no %s for channel \"%s\" of kind %s",
					key, cc->name, channel_kind_name(cc->kind)),
			 errhint("Give the recipient as %s, or refer to a stored recipient that has one.",
					 example)));
}
