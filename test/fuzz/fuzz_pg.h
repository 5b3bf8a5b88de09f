/*-------------------------------------------------------------------------
 *
 * fuzz_pg.h
 *	  What the harnesses share: the shim's error state (pg_shim.c), the
 *	  backend set-up, and running a piece of code under PG_TRY.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FUZZ_PG_H
#define FUZZ_PG_H

#include <stdio.h>
#include <stdlib.h>

/* the error the last ereport raised (pg_shim.c) */
extern int	fuzz_error_code(void);
extern const char *fuzz_error_message(void);
extern const char *fuzz_error_location(void);
extern void FlushErrorState(void);

/* time zone UTC, database encoding UTF8 (fuzz_init.c) */
extern void fuzz_init_backend(void);

/*
 * After an ERROR was caught: an ERROR with a proper SQLSTATE is a fine
 * answer to hostile input, but elog(ERROR) (XX000) means "cannot happen"
 * in this code base, so input that reaches one is a finding.
 */
static inline void
fuzz_caught(void)
{
	if (fuzz_error_code() == ERRCODE_INTERNAL_ERROR)
	{
		fprintf(stderr, "fuzz: internal error (elog) at %s: %s\n",
				fuzz_error_location(), fuzz_error_message());
		abort();
	}
	if (getenv("FUZZ_VERBOSE"))
	{
		char		state[6];

		for (int i = 0, c = fuzz_error_code(); i < 5; i++, c >>= 6)
			state[i] = PGUNSIXBIT(c);
		state[5] = '\0';
		fprintf(stderr, "ERROR %s: %s\n", state, fuzz_error_message());
	}
	FlushErrorState();
}

/*
 * Run stmt; true if it finished, false if it raised an ERROR.  Memory of
 * the interrupted work stays in the caller's context, which the harness
 * deletes after each input.
 */
#define FUZZ_TRY(stmt) \
	({ \
		MemoryContext fuzz_cxt_ = CurrentMemoryContext; \
		volatile bool fuzz_ok_ = true; \
		PG_TRY(); \
		{ \
			stmt; \
		} \
		PG_CATCH(); \
		{ \
			MemoryContextSwitchTo(fuzz_cxt_); \
			fuzz_caught(); \
			fuzz_ok_ = false; \
		} \
		PG_END_TRY(); \
		fuzz_ok_; \
	})

#endif							/* FUZZ_PG_H */
