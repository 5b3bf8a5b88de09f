/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Small helpers around SPI used all over the extension: a plan prepared
 *	  once and kept, a statement run with its result code checked, and a
 *	  piece of work run in an internal subtransaction.
 *
 *	  A result code other than the one expected "cannot happen" (SPI raises
 *	  its own errors for anything a user can cause), so the checks here use
 *	  elog, naming the statement and SPI's name for the code.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/plancache.h"
#include "utils/resowner.h"

#include "util/spi_util.h"

/* the statement as an error names it: its first line, cut short */
#define STATEMENT_HEAD	80

static char *
statement_head(const char *sql)
{
	size_t		len = strcspn(sql, "\n");

	if (len > STATEMENT_HEAD)
		return psprintf("%.*s...", pg_mbcliplen(sql, len, STATEMENT_HEAD), sql);
	return pnstrdup(sql, len);
}

/*
 * A plan prepared once and kept for the life of the backend, for the
 * statements this extension runs over and over.  cursor_options are
 * SPI_prepare_cursor's (CURSOR_OPT_GENERIC_PLAN where custom planning
 * would cost more than it saves).  Needs an SPI connection.
 */
SPIPlanPtr
spi_prepare_kept(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * Raise an internal error unless rc, an SPI result code, is expect.  what
 * names the statement: a few words, or its SQL (of which the first line
 * is shown).
 */
void
spi_expect(int rc, int expect, const char *what)
{
	if (rc != expect)
		elog(ERROR, "SPI failed for \"%s\": %s", statement_head(what),
			 SPI_result_code_string(rc));
}

/* SPI_execute_with_args, whose result code must be expect */
void
spi_exec_expect(const char *sql, int nargs, Oid *types, Datum *values,
				const char *nulls, bool read_only, long count, int expect)
{
	spi_expect(SPI_execute_with_args(sql, nargs, types, values, nulls,
									 read_only, count),
			   expect, sql);
}

/* SPI_execute_plan, whose result code must be expect */
void
spi_plan_expect(SPIPlanPtr plan, Datum *values, const char *nulls,
				bool read_only, long count, int expect)
{
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, count);

	if (rc != expect)
	{
		List	   *sources = SPI_plan_get_plan_sources(plan);

		spi_expect(rc, expect, sources != NIL ?
				   ((CachedPlanSource *) linitial(sources))->query_string :
				   "a prepared statement");
	}
}

/*
 * Run fn(arg) in a subtransaction.  Returns NULL if it succeeded, or its
 * error, copied into the caller's memory context and no longer pending,
 * after rolling the subtransaction back.  Either way the caller's memory
 * context and resource owner are current again.  What fn wants to hand
 * back it writes through arg: the caller reads it after the call, so it
 * needs no volatile.
 */
ErrorData *
subxact_try(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}
