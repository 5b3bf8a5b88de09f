/*-------------------------------------------------------------------------
 *
 * fuzz_init.c
 *	  Backend state the harnesses that use PostgreSQL's datetime and
 *	  encoding code need: a session time zone (UTC) and UTF8 as the
 *	  database encoding, set through PostgreSQL's own functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "pgtime.h"

#include "fuzz_pg.h"

void
fuzz_init_backend(void)
{
	SetDatabaseEncoding(PG_UTF8);
	SetMessageEncoding(PG_UTF8);
	session_timezone = pg_tzset("UTC");
	log_timezone = session_timezone;
	if (session_timezone == NULL)
	{
		fprintf(stderr, "fuzz: time zone data not found (Debian: tzdata)\n");
		abort();
	}
}
