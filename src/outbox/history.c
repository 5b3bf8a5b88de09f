/*-------------------------------------------------------------------------
 *
 * history.c
 *	  The worker's side of history (sql/src/78_history.sql): making the
 *	  partitions of reminder.attempt and reminder.message_history ahead of
 *	  time, moving finished messages out of the outbox in batches, and
 *	  retention.
 *
 *	  Both run in the worker's own short transactions, between claims, in
 *	  one sender of each database.  A schema without the functions (the
 *	  library is newer than the installed SQL) has nothing to do here: the
 *	  worker refuses to run on such a mismatch anyway.
 *
 *-------------------------------------------------------------------------
 */
#include "reminder.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "outbox/outbox.h"
#include "util/spi_util.h"

/* Whether the installed schema has the function; needs SPI. */
static bool
have_function(const char *signature)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(signature)};
	bool		isnull;

	spi_exec_expect("SELECT pg_catalog.to_regprocedure($1) IS NOT NULL",
					1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Make the partitions covering now and the next reminder.history_partition;
 * those made are logged, as a DBA sees tables appear.  Runs inside a
 * transaction with SPI connected.
 */
void
history_make_partitions(void)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(reminder_history_partition)};

	if (!have_function("reminder._make_partitions(interval)"))
		return;
	spi_exec_expect("SELECT p::text FROM reminder._make_partitions(pg_catalog.make_interval(mins => $1)) p",
					1, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
		ereport(LOG,
				(errmsg("reminder worker made partition %s",
						SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1))));
}

/*
 * Move up to batch finished messages older than reminder.history_after into
 * history; returns how many moved.  Runs inside a transaction with SPI
 * connected.
 */
int64
history_archive(int batch)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(reminder_history_after), Int32GetDatum(batch)};
	bool		isnull;

	if (reminder_history_after < 0 || !have_function("reminder._archive(interval,integer)"))
		return 0;
	spi_exec_expect("SELECT reminder._archive(pg_catalog.make_interval(mins => $1), $2)",
					2, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Retention: reminder.purge(reminder.retention), which drops the partitions
 * old enough and deletes what is left row by row.  Runs inside a
 * transaction with SPI connected.
 */
void
history_purge(void)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(reminder_retention)};

	if (!have_function("reminder.purge(interval)"))
		return;
	spi_exec_expect("SELECT reminder.purge(pg_catalog.make_interval(mins => $1))",
					1, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
}
