/*-------------------------------------------------------------------------
 *
 * retry.c
 *	  Dead letters: reminder.retry() puts failed messages back in the
 *	  queue, typically after their channel was fixed.
 *
 *	  A retried message starts a fresh set of attempts (message.attempts
 *	  goes back to 0, so the channel's max_attempts applies again) at once;
 *	  its attempt rows stay, and message.retries counts how often it was
 *	  requeued.  Its idempotency key stays too, so a receiver that got it
 *	  after all can drop the duplicate.  The send-time gate runs again
 *	  (opt-outs, quiet hours, stop conditions), as for any message.
 *
 *	  Only failed messages are retried.  Sent ones would be delivered
 *	  twice; cancelled and suppressed ones were stopped on purpose; a
 *	  failed message whose fallback message took over is left to that one
 *	  (retry the fallback if it failed too), so nothing goes out twice; one
 *	  whose recipient was forgotten has nobody to go to, and one whose
 *	  channel no longer exists nowhere to go.  retry(message_id) refuses
 *	  each of these with SQLSTATE 55000 (42704 for the channel);
 *	  retry(channel, ...) skips them and says how many in a NOTICE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "util/spi_util.h"
#include "worker/worker.h"

PG_FUNCTION_INFO_V1(reminder_retry);
PG_FUNCTION_INFO_V1(reminder_retry_failed);

/*
 * The facts about a failed message that decide whether it may be retried:
 * the message (locked), the fallback message that took it over (found by
 * its key, "<key>:fallback", through the key's unique index: fallback_of
 * has no index), whether its recipient was forgotten and whether its
 * channel exists.
 */
#define FACTS_SQL \
	"SELECT m.id, m.status, m.channel, m.last_error, " \
	"       f.id AS fallback_id, f.channel AS fallback_channel, f.status AS fallback_status, " \
	"       m.recipient ? 'forgotten' AS forgotten, " \
	"       NOT EXISTS (SELECT FROM reminder.channel c WHERE c.name = m.channel) AS no_channel " \
	"  FROM reminder.message m " \
	"  LEFT JOIN reminder.messages f " \
	"         ON f.idempotency_key = m.idempotency_key || ':fallback' AND f.fallback_of = m.id "

#define REQUEUE_SQL \
	"UPDATE reminder.message SET status = 'scheduled', attempts = 0, next_attempt_at = now(), " \
	"       lease_until = NULL, last_error = NULL, retries = retries + 1, updated_at = now() " \
	" WHERE id = ANY ($1)"

static void
requeue(Datum *ids, int n)
{
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];

	if (n == 0)
		return;
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	spi_exec_expect(REQUEUE_SQL, 1, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	wakeup_at_commit(GetCurrentTransactionStartTimestamp());
}

/*
 * reminder.retry(message_id bigint) RETURNS boolean
 *
 * true: requeued now; false: it is already pending (scheduled, retrying
 * or being sent), so there is nothing to do.
 */
/*
 * A failed message already moved to history goes back to the outbox, as it
 * was, for the checks and the requeue that follow; returns whether it did.
 * Needs SPI.
 */
static bool
unarchive_failed(int64 id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	spi_exec_expect("WITH back AS (DELETE FROM reminder.message_history h "
					"              WHERE h.id = $1 AND h.status = 'failed' RETURNING h.*) "
					"INSERT INTO reminder.message "
					"SELECT (pg_catalog.jsonb_populate_record(NULL::reminder.message, pg_catalog.to_jsonb(b))).* "
					"  FROM back b",
					1, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	return SPI_processed > 0;
}

Datum
reminder_retry(PG_FUNCTION_ARGS)
{
	int64		id;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	HeapTuple	tup;
	TupleDesc	desc;
	char	   *status;
	char	   *channel;
	char	   *last_error;
	char	   *fallback_id;
	bool		isnull;
	Datum		ids[1];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("message id must not be null"),
				 errhint("To retry every failed message of a channel, call reminder.retry(channel => ...).")));
	id = PG_GETARG_INT64(0);
	values[0] = Int64GetDatum(id);

	SPI_connect();
	spi_exec_expect(FACTS_SQL " WHERE m.id = $1 FOR UPDATE OF m",
					1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0 && unarchive_failed(id))
		spi_exec_expect(FACTS_SQL " WHERE m.id = $1 FOR UPDATE OF m",
						1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("message %lld does not exist", (long long) id),
				 errdetail("It may have been purged after its retention period.")));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	status = SPI_getvalue(tup, desc, 2);
	channel = SPI_getvalue(tup, desc, 3);
	last_error = SPI_getvalue(tup, desc, 4);
	fallback_id = SPI_getvalue(tup, desc, 5);

	if (strcmp(status, "scheduled") == 0 || strcmp(status, "retrying") == 0 ||
		strcmp(status, "sending") == 0)
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	if (strcmp(status, "sent") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot retry message %lld because it was sent", (long long) id),
				 errdetail("Retrying it would deliver it twice."),
				 errhint("Schedule a new message to send it again.")));
	if (strcmp(status, "failed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot retry message %lld because it is %s", (long long) id, status),
				 last_error ?
				 errdetail("It was stopped on purpose: %s.", last_error) :
				 errdetail("It was stopped on purpose."),
				 errhint("Only failed messages are retried; schedule a new message if this one must go out.")));
	if (fallback_id != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot retry message %lld because fallback message %s took it over",
						(long long) id, fallback_id),
				 errdetail("Message %s on channel \"%s\" is %s; retrying both could deliver it twice.",
						   fallback_id, SPI_getvalue(tup, desc, 6), SPI_getvalue(tup, desc, 7)),
				 errhint("Retry message %s if it failed too.", fallback_id)));
	if (DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot retry message %lld because its recipient was forgotten", (long long) id),
				 errdetail("reminder.forget() erased the recipient's address.")));
	if (DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("cannot retry message %lld because its channel \"%s\" does not exist",
						(long long) id, channel),
				 errhint("Create the channel \"%s\" again with reminder.create_channel(), then retry.",
						 channel)));

	ids[0] = Int64GetDatum(id);
	requeue(ids, 1);
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/*
 * reminder.retry(channel text DEFAULT NULL, failed_since timestamptz DEFAULT NULL,
 *				  failed_before timestamptz DEFAULT NULL, error_like text DEFAULT NULL)
 * RETURNS bigint
 *
 * Every failed message matching all the filters given (its channel, when
 * it failed, a LIKE pattern on its last_error); returns how many were
 * requeued.  Messages that cannot be retried are skipped, and counted in a
 * NOTICE.
 */
Datum
reminder_retry_failed(PG_FUNCTION_ARGS)
{
	Oid			argtypes[4] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[4];
	char		nulls[4];
	Datum	   *ids;
	int			nids = 0;
	int64		taken_over = 0;
	int64		forgotten = 0;
	int64		no_channel = 0;
	uint64		n;

	for (int i = 0; i < 4; i++)
	{
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
	}

	/* a channel named must exist: the messages have nowhere to go else */
	if (!PG_ARGISNULL(0))
		(void) catalog_channel(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	SPI_connect();

	spi_exec_expect(FACTS_SQL
					" WHERE m.status = 'failed' "
					"   AND ($1::text IS NULL OR m.channel = $1) "
					"   AND ($2::timestamptz IS NULL OR m.updated_at >= $2) "
					"   AND ($3::timestamptz IS NULL OR m.updated_at < $3) "
					"   AND ($4::text IS NULL OR m.last_error LIKE $4) "
					" ORDER BY m.id FOR UPDATE OF m",
					4, argtypes, values, nulls, false, 0, SPI_OK_SELECT);
	n = SPI_processed;
	ids = palloc(sizeof(Datum) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		if (!heap_attisnull(tup, 5, desc))
			taken_over++;
		else if (DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull)))
			forgotten++;
		else if (DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull)))
			no_channel++;
		else
			ids[nids++] = SPI_getbinval(tup, desc, 1, &isnull);
	}
	requeue(ids, nids);
	SPI_finish();

	if (taken_over + forgotten + no_channel > 0)
		ereport(NOTICE,
				(errmsg("%lld failed messages were not retried",
						(long long) (taken_over + forgotten + no_channel)),
				 errdetail("Taken over by their fallback message: %lld; recipient forgotten: %lld; channel does not exist: %lld.",
						   (long long) taken_over, (long long) forgotten, (long long) no_channel),
				 taken_over > 0 ?
				 errhint("A fallback message that failed as well is retried on its own channel, such as reminder.retry(channel => 'its channel').") : 0));

	PG_RETURN_INT64(nids);
}
