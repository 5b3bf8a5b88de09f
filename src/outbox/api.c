/*-------------------------------------------------------------------------
 *
 * api.c
 *	  SQL-callable functions for templates and for messages already in the
 *	  outbox: create_template, drop_template, cancel, reschedule.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "render/template.h"
#include "util/spi_util.h"
#include "util/util.h"
#include "worker/worker.h"

PG_FUNCTION_INFO_V1(reminder_create_template);
PG_FUNCTION_INFO_V1(reminder_drop_template);
PG_FUNCTION_INFO_V1(reminder_cancel);
PG_FUNCTION_INFO_V1(reminder_reschedule);

static char *
text_arg_or_null(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* A required variable is a dotted name: "name", "row.starts_at". */
static void
check_required_names(ArrayType *arr)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("required variables must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		bool		ok;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("required variable names must not be null")));
		name = TextDatumGetCString(elems[i]);
		ok = *name != '\0' && name[0] != '.' && name[strlen(name) - 1] != '.' &&
			strstr(name, "..") == NULL && strpbrk(name, " \t\r\n{}") == NULL;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid required variable name \"%s\"", name),
					 errhint("Write a dotted name such as \"row.starts_at\".")));
	}
}

Datum
reminder_create_template(PG_FUNCTION_ARGS)
{
	char	   *name = text_arg_or_null(fcinfo, 0);
	char	   *body = text_arg_or_null(fcinfo, 1);
	char	   *subject = text_arg_or_null(fcinfo, 2);
	char	   *html = text_arg_or_null(fcinfo, 3);
	char	   *locale = text_arg_or_null(fcinfo, 4);
	ArrayType  *required;
	Oid			argtypes[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	if (name == NULL || body == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template name and body must not be null")));
	if (locale == NULL)
		locale = pstrdup("en");
	validate_name(name, "template");
	validate_locale(locale, "template locale");
	validate_payload_size(strlen(body), "template body");
	if (subject)
	{
		validate_header_value(subject, "template subject");
		template_check_syntax(subject, psprintf("subject of template \"%s\"", name));
	}
	template_check_syntax(body, psprintf("body of template \"%s\"", name));
	if (html)
	{
		validate_payload_size(strlen(html), "template html");
		template_check_syntax(html, psprintf("html of template \"%s\"", name));
	}
	if (PG_ARGISNULL(5))
		required = construct_empty_array(TEXTOID);
	else
		required = PG_GETARG_ARRAYTYPE_P(5);
	check_required_names(required);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(locale);
	values[2] = subject ? CStringGetTextDatum(subject) : (Datum) 0;
	nulls[2] = subject ? ' ' : 'n';
	values[3] = CStringGetTextDatum(body);
	values[4] = html ? CStringGetTextDatum(html) : (Datum) 0;
	nulls[4] = html ? ' ' : 'n';
	values[5] = PointerGetDatum(required);

	SPI_connect();
	spi_exec_expect("INSERT INTO reminder.template AS t (name, locale, subject, body, html, required) "
					"VALUES ($1, $2, $3, $4, $5, $6) "
					"ON CONFLICT (name, locale) DO UPDATE SET subject = excluded.subject, "
					"body = excluded.body, html = excluded.html, required = excluded.required, "
					"updated_at = now()",
					6, argtypes, values, nulls, false, 0, SPI_OK_INSERT);
	SPI_finish();

	PG_RETURN_VOID();
}

Datum
reminder_drop_template(PG_FUNCTION_ARGS)
{
	char	   *name = text_arg_or_null(fcinfo, 0);
	char	   *locale = text_arg_or_null(fcinfo, 1);
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template name must not be null")));
	values[0] = CStringGetTextDatum(name);
	values[1] = locale ? CStringGetTextDatum(locale) : (Datum) 0;
	nulls[1] = locale ? ' ' : 'n';

	SPI_connect();
	spi_exec_expect("DELETE FROM reminder.template WHERE name = $1 AND ($2 IS NULL OR locale = $2)",
					2, argtypes, values, nulls, false, 0, SPI_OK_DELETE);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 locale ? errmsg("template \"%s\" has no locale \"%s\"", name, locale) :
				 errmsg("template \"%s\" does not exist", name)));
	SPI_finish();

	PG_RETURN_VOID();
}

/*
 * Lock a message and return its status, raising an error if it does not
 * exist.  Needs SPI.
 */
static char *
lock_message(int64 id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	spi_exec_expect("SELECT status FROM reminder.message WHERE id = $1 FOR UPDATE",
					1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("message %lld does not exist", (long long) id)));
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static void
not_pending(int64 id, const char *status, const char *action)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s message %lld because it is %s", action, (long long) id, status),
			 strcmp(status, "sending") == 0 ?
			 errdetail("The worker is delivering it right now.") :
			 errdetail("Only scheduled or retrying messages can be changed."),
			 errhint("Schedule a new message instead.")));
}

Datum
reminder_cancel(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	char	   *status;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	SPI_connect();
	status = lock_message(id);
	if (strcmp(status, "cancelled") == 0)
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	if (strcmp(status, "scheduled") != 0 && strcmp(status, "retrying") != 0)
		not_pending(id, status, "cancel");

	spi_exec_expect("UPDATE reminder.message SET status = 'cancelled', next_attempt_at = NULL, updated_at = now() "
					"WHERE id = $1", 1, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	SPI_finish();

	PG_RETURN_BOOL(true);
}

Datum
reminder_reschedule(PG_FUNCTION_ARGS)
{
	int64		id;
	TimestampTz due_at;
	char	   *status;
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("message id must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("due_at must not be null"),
				 errhint("Use reminder.cancel() to withdraw a message.")));
	id = PG_GETARG_INT64(0);
	due_at = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(due_at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("due_at must be a finite timestamp")));

	values[0] = Int64GetDatum(id);
	values[1] = TimestampTzGetDatum(due_at);

	SPI_connect();
	status = lock_message(id);
	if (strcmp(status, "scheduled") != 0 && strcmp(status, "retrying") != 0)
		not_pending(id, status, "reschedule");

	/* a retrying message starts over as a scheduled one at the new time */
	spi_exec_expect("UPDATE reminder.message SET due_at = $2, next_attempt_at = $2, "
					"status = 'scheduled', updated_at = now() WHERE id = $1",
					2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	SPI_finish();

	wakeup_at_commit(due_at);
	PG_RETURN_VOID();
}
