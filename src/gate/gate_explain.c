/*-------------------------------------------------------------------------
 *
 * gate_explain.c
 *	  reminder.gate_check(message_id): what the worker's last check before
 *	  sending (gate.c) would say about a message right now -- send, defer
 *	  until when, suppress or cancel, and why -- without sending or
 *	  changing anything.  For "why has this not gone out?" and for tests.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "util/spi_util.h"

PG_FUNCTION_INFO_V1(reminder_gate_check);

static const char *const verdict_names[] = {
	[GATE_SEND] = "send",
	[GATE_DEFER] = "defer",
	[GATE_SUPPRESS] = "suppress",
	[GATE_CANCEL] = "cancel",
};

Datum
reminder_gate_check(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Oid			argtypes[1] = {INT8OID};
	Datum		arg[1] = {Int64GetDatum(id)};
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext old;
	GateMessage msg = {0};
	GateResult	res;
	char	   *channel;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	HeapTuple	tup;
	bool		isnull;
	Datum		d;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SPI_connect();
	spi_exec_expect("SELECT channel, recipient, data, template, due_at, rule_id, source_key, category, idempotency_key "
					"FROM reminder.message WHERE id = $1",
					1, argtypes, arg, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("message %lld does not exist", (long long) id)));

	tup = SPI_tuptable->vals[0];
	old = MemoryContextSwitchTo(cxt);
	channel = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);
	msg.id = id;
	msg.dry_run = true;
	msg.recipient = DatumGetJsonbPCopy(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	msg.data = DatumGetJsonbPCopy(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
	msg.template_name = SPI_getvalue(tup, SPI_tuptable->tupdesc, 4);
	msg.due_at = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 5, &isnull));
	d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 6, &isnull);
	msg.rule_id = isnull ? 0 : DatumGetInt64(d);
	msg.source_key = SPI_getvalue(tup, SPI_tuptable->tupdesc, 7);
	msg.category = SPI_getvalue(tup, SPI_tuptable->tupdesc, 8);
	msg.idempotency_key = SPI_getvalue(tup, SPI_tuptable->tupdesc, 9);
	MemoryContextSwitchTo(old);
	SPI_finish();

	msg.channel = catalog_channel(channel);
	/* rules that follow their row: the worker reads it first */
	if (!rule_message_data(msg.rule_id, msg.source_key, &msg.data, &res.reason))
	{
		res.verdict = GATE_CANCEL;
		res.defer_until = 0;
	}
	else
		gate_check(&msg, &res);

	values[0] = CStringGetTextDatum(verdict_names[res.verdict]);
	values[1] = TimestampTzGetDatum(res.defer_until);
	nulls[1] = res.verdict != GATE_DEFER;
	values[2] = res.reason ? CStringGetTextDatum(res.reason) : (Datum) 0;
	nulls[2] = res.reason == NULL;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
