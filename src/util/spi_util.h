/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  SPI helpers (spi_util.c): kept plans, statements whose result code is
 *	  checked, work in a subtransaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REMINDER_SPI_UTIL_H
#define REMINDER_SPI_UTIL_H

#include "postgres.h"

#include "executor/spi.h"

extern SPIPlanPtr spi_prepare_kept(const char *sql, int nargs, Oid *argtypes,
								   int cursor_options);
extern void spi_expect(int rc, int expect, const char *what);
extern void spi_exec_expect(const char *sql, int nargs, Oid *types,
							Datum *values, const char *nulls, bool read_only,
							long count, int expect);
extern void spi_plan_expect(SPIPlanPtr plan, Datum *values, const char *nulls,
							bool read_only, long count, int expect);
extern ErrorData *subxact_try(void (*fn) (void *arg), void *arg);

#endif							/* REMINDER_SPI_UTIL_H */
