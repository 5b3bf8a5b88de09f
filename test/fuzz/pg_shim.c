/*-------------------------------------------------------------------------
 *
 * pg_shim.c
 *	  The parts of the PostgreSQL backend the fuzz harnesses cannot take
 *	  from PostgreSQL's own sources: memory contexts, error reporting, the
 *	  fmgr call helpers, a few globals.  Everything else (StringInfo,
 *	  psprintf, jsonb, numeric, the datetime code, time zones, HMAC) is
 *	  PostgreSQL's code, compiled from its source (see Makefile); symbols
 *	  nothing here or there defines become traps (mkstubs.sh) that abort
 *	  with their name if a harness ever reaches them.
 *
 * Memory: every allocation is its own malloc(), so AddressSanitizer sees
 * each chunk and its bounds; a context is a list of chunks plus child
 * contexts.  The context pointer sits just before each chunk, where
 * GetMemoryChunkContext() looks for it.
 *
 * Errors: ereport(ERROR) longjmps to the innermost PG_TRY, as in the
 * server; the harnesses catch it (fuzz_catch).  An ERROR is an acceptable
 * answer to hostile input.  FATAL, PANIC and an ERROR with no PG_TRY to
 * catch it abort(), which libFuzzer reports as a crash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/pg_locale.h"
#include "utils/timestamp.h"

#include "fuzz_pg.h"

/* port.h maps these to libpgport's versions; use the C library's */
#undef fprintf
#undef vsnprintf

/* ----------------------------------------------------------------
 *		Memory contexts
 * ----------------------------------------------------------------
 */

typedef struct ShimChunk
{
	struct ShimChunk *prev;
	struct ShimChunk *next;
	Size		size;
	MemoryContext cxt;			/* must be last: GetMemoryChunkContext() */
} ShimChunk;

typedef struct ShimContext
{
	MemoryContextData header;	/* parent/firstchild/nextchild used */
	ShimChunk	chunks;			/* list head */
} ShimContext;

StaticAssertDecl(sizeof(ShimChunk) == MAXALIGN(sizeof(ShimChunk)),
				 "chunk header must keep user pointers MAXALIGNed");
#define CHUNK_HDRSZ		sizeof(ShimChunk)

static ShimContext top_context;
MemoryContext TopMemoryContext = NULL;
MemoryContext CurrentMemoryContext = NULL;
MemoryContext ErrorContext = NULL;

static ShimContext *
shim_top(void)
{
	if (top_context.chunks.next == NULL)
	{
		top_context.chunks.next = top_context.chunks.prev = &top_context.chunks;
		top_context.header.type = T_AllocSetContext;
		top_context.header.name = "top";
		TopMemoryContext = (MemoryContext) &top_context;
	}
	return &top_context;
}

static void *
shim_alloc(MemoryContext context, Size size, int flags)
{
	ShimContext *cxt = (ShimContext *) (context ? context : (MemoryContext) shim_top());
	ShimChunk  *c;

	if (!((flags & MCXT_ALLOC_HUGE) ? AllocHugeSizeIsValid(size) : AllocSizeIsValid(size)))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	c = (flags & MCXT_ALLOC_ZERO) ? calloc(1, CHUNK_HDRSZ + size) :
		malloc(CHUNK_HDRSZ + size);
	if (c == NULL)
	{
		if (flags & MCXT_ALLOC_NO_OOM)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	c->cxt = (MemoryContext) cxt;
	c->size = size;
	c->next = cxt->chunks.next;
	c->prev = &cxt->chunks;
	cxt->chunks.next->prev = c;
	cxt->chunks.next = c;
	return (char *) c + CHUNK_HDRSZ;
}

static ShimChunk *
chunk_of(void *p)
{
	return (ShimChunk *) ((char *) p - CHUNK_HDRSZ);
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	ShimContext *cxt = calloc(1, sizeof(ShimContext));

	if (cxt == NULL)
		abort();
	if (parent == NULL)
		parent = (MemoryContext) shim_top();
	cxt->header.type = T_AllocSetContext;
	cxt->header.name = name;
	cxt->header.parent = parent;
	cxt->header.nextchild = parent->firstchild;
	if (parent->firstchild)
		parent->firstchild->prevchild = (MemoryContext) cxt;
	parent->firstchild = (MemoryContext) cxt;
	cxt->chunks.next = cxt->chunks.prev = &cxt->chunks;
	return (MemoryContext) cxt;
}

void
MemoryContextDeleteChildren(MemoryContext context)
{
	while (context->firstchild)
		MemoryContextDelete(context->firstchild);
}

void
MemoryContextReset(MemoryContext context)
{
	ShimContext *cxt = (ShimContext *) context;
	ShimChunk  *c;

	MemoryContextDeleteChildren(context);
	for (c = cxt->chunks.next; c != &cxt->chunks;)
	{
		ShimChunk  *next = c->next;

		free(c);
		c = next;
	}
	cxt->chunks.next = cxt->chunks.prev = &cxt->chunks;
}

void
MemoryContextDelete(MemoryContext context)
{
	MemoryContextReset(context);
	if (context->prevchild)
		context->prevchild->nextchild = context->nextchild;
	else if (context->parent)
		context->parent->firstchild = context->nextchild;
	if (context->nextchild)
		context->nextchild->prevchild = context->prevchild;
	if (CurrentMemoryContext == context)
		CurrentMemoryContext = context->parent;
	if (context != (MemoryContext) &top_context)
		free(context);
}

void
MemoryContextSetIdentifier(MemoryContext context, const char *id)
{
	context->ident = id;
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return shim_alloc(context, size, 0);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return shim_alloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	return shim_alloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return shim_alloc(context, size, flags);
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return shim_alloc(context, size, MCXT_ALLOC_HUGE);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	Size		len = strlen(string) + 1;
	char	   *r = shim_alloc(context, len, 0);

	memcpy(r, string, len);
	return r;
}

void *
palloc(Size size)
{
	return shim_alloc(CurrentMemoryContext, size, 0);
}

void *
palloc0(Size size)
{
	return shim_alloc(CurrentMemoryContext, size, MCXT_ALLOC_ZERO);
}

void *
palloc_extended(Size size, int flags)
{
	return shim_alloc(CurrentMemoryContext, size, flags);
}

void
pfree(void *pointer)
{
	ShimChunk  *c = chunk_of(pointer);

	c->prev->next = c->next;
	c->next->prev = c->prev;
	free(c);
}

static void *
shim_realloc(void *pointer, Size size, int flags)
{
	ShimChunk  *c = chunk_of(pointer);
	void	   *r = shim_alloc(c->cxt, size, flags);

	memcpy(r, pointer, Min(size, c->size));
	pfree(pointer);
	return r;
}

void *
repalloc(void *pointer, Size size)
{
	return shim_realloc(pointer, size, 0);
}

void *
repalloc_huge(void *pointer, Size size)
{
	return shim_realloc(pointer, size, MCXT_ALLOC_HUGE);
}

Size
GetMemoryChunkSpace(void *pointer)
{
	return chunk_of(pointer)->size + CHUNK_HDRSZ;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *r;

	len = strnlen(in, len);
	r = palloc(len + 1);
	memcpy(r, in, len);
	r[len] = '\0';
	return r;
}

char *
pchomp(const char *in)
{
	size_t		n = strlen(in);

	while (n > 0 && in[n - 1] == '\n')
		n--;
	return pnstrdup(in, n);
}

/* ----------------------------------------------------------------
 *		Errors
 * ----------------------------------------------------------------
 */

sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;

static struct
{
	int			elevel;
	int			sqlerrcode;
	char		message[1024];
	const char *filename;
	int			lineno;
	const char *funcname;
}			cur_error;

bool
errstart(int elevel, const char *domain)
{
	if (elevel < ERROR)
		return false;			/* notices and warnings go nowhere */
	memset(&cur_error, 0, sizeof(cur_error));
	cur_error.elevel = elevel;
	cur_error.sqlerrcode = ERRCODE_INTERNAL_ERROR;	/* as elog() leaves it */
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	cur_error.filename = filename;
	cur_error.lineno = lineno;
	cur_error.funcname = funcname;
	if (cur_error.elevel == ERROR && PG_exception_stack != NULL)
		siglongjmp(*PG_exception_stack, 1);
	fprintf(stderr, "shim: uncaught error level %d at %s:%d (%s): %s\n",
			cur_error.elevel, filename, lineno, funcname, cur_error.message);
	abort();
}

void
pg_re_throw(void)
{
	if (PG_exception_stack != NULL)
		siglongjmp(*PG_exception_stack, 1);
	fprintf(stderr, "shim: re-thrown error with no handler: %s\n", cur_error.message);
	abort();
}

void
FlushErrorState(void)
{
	memset(&cur_error, 0, sizeof(cur_error));
}

int
fuzz_error_code(void)
{
	return cur_error.sqlerrcode;
}

const char *
fuzz_error_message(void)
{
	return cur_error.message;
}

const char *
fuzz_error_location(void)
{
	static char where[256];

	snprintf(where, sizeof(where), "%s:%d (%s)", cur_error.filename ? cur_error.filename : "?",
			 cur_error.lineno, cur_error.funcname ? cur_error.funcname : "?");
	return where;
}

int
errcode(int sqlerrcode)
{
	cur_error.sqlerrcode = sqlerrcode;
	return 0;
}

int
errcode_for_file_access(void)
{
	cur_error.sqlerrcode = ERRCODE_IO_ERROR;
	return 0;
}

/*
 * The message is formatted (so a format string that does not match its
 * arguments is caught by the sanitizers); the other parts are formatted
 * into a scratch buffer and dropped.
 */
static void
format_into(char *buf, size_t size, const char *fmt, va_list args)
{
	vsnprintf(buf, size, fmt, args);
}

#define FORMAT_PART(buf) \
	do { \
		va_list		args; \
		va_start(args, fmt); \
		format_into(buf, sizeof(buf), fmt, args); \
		va_end(args); \
	} while (0)

int
errmsg(const char *fmt,...)
{
	FORMAT_PART(cur_error.message);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	FORMAT_PART(cur_error.message);
	return 0;
}

int
errmsg_plural(const char *fmt_singular, const char *fmt_plural,
			  unsigned long n,...)
{
	va_list		args;

	va_start(args, n);
	format_into(cur_error.message, sizeof(cur_error.message),
				n == 1 ? fmt_singular : fmt_plural, args);
	va_end(args);
	return 0;
}

static char scratch[1024];

int
errdetail(const char *fmt,...)
{
	FORMAT_PART(scratch);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	FORMAT_PART(scratch);
	return 0;
}

int
errdetail_log(const char *fmt,...)
{
	FORMAT_PART(scratch);
	return 0;
}

int
errdetail_plural(const char *fmt_singular, const char *fmt_plural,
				 unsigned long n,...)
{
	va_list		args;

	va_start(args, n);
	format_into(scratch, sizeof(scratch), n == 1 ? fmt_singular : fmt_plural, args);
	va_end(args);
	return 0;
}

int
errhint(const char *fmt,...)
{
	FORMAT_PART(scratch);
	return 0;
}

int
errcontext_msg(const char *fmt,...)
{
	FORMAT_PART(scratch);
	return 0;
}

int
set_errcontext_domain(const char *domain)
{
	return 0;
}

int
errhidestmt(bool hide_stmt)
{
	return 0;
}

int
errhidecontext(bool hide_ctx)
{
	return 0;
}

int
errposition(int cursorpos)
{
	return 0;
}

int
internalerrposition(int cursorpos)
{
	return 0;
}

int
internalerrquery(const char *query)
{
	return 0;
}

int
geterrposition(void)
{
	return 0;
}

void
write_stderr(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
}

/* ----------------------------------------------------------------
 *		fmgr: direct calls, as in fmgr.c
 * ----------------------------------------------------------------
 */

static Datum
direct_call(PGFunction func, Oid collation, int nargs, const Datum *args)
{
	LOCAL_FCINFO(fcinfo, 6);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, nargs, collation, NULL, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = false;
	}
	result = (*func) (fcinfo);
	if (fcinfo->isnull)
		elog(ERROR, "function %p returned NULL", (void *) func);
	return result;
}

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	return direct_call(func, collation, 1, &arg1);
}

Datum
DirectFunctionCall2Coll(PGFunction func, Oid collation, Datum arg1, Datum arg2)
{
	Datum		args[] = {arg1, arg2};

	return direct_call(func, collation, 2, args);
}

Datum
DirectFunctionCall3Coll(PGFunction func, Oid collation, Datum arg1, Datum arg2,
						Datum arg3)
{
	Datum		args[] = {arg1, arg2, arg3};

	return direct_call(func, collation, 3, args);
}

/* No TOAST here: every varlena a harness makes is plain. */
struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	if (VARATT_IS_EXTENDED(datum) && !VARATT_IS_SHORT(datum))
		elog(ERROR, "shim: toasted datum");
	if (VARATT_IS_SHORT(datum))
	{
		Size		len = VARSIZE_SHORT(datum) - VARHDRSZ_SHORT;
		struct varlena *r = palloc(len + VARHDRSZ);

		SET_VARSIZE(r, len + VARHDRSZ);
		memcpy(VARDATA(r), VARDATA_SHORT(datum), len);
		return r;
	}
	return datum;
}

struct varlena *
pg_detoast_datum_copy(struct varlena *datum)
{
	struct varlena *d = pg_detoast_datum(datum);
	struct varlena *r;

	if (d != datum)
		return d;
	r = palloc(VARSIZE(datum));
	memcpy(r, datum, VARSIZE(datum));
	return r;
}

struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	if (VARATT_IS_COMPRESSED(datum) || VARATT_IS_EXTERNAL(datum))
		elog(ERROR, "shim: toasted datum");
	return datum;
}

/* ----------------------------------------------------------------
 *		Globals and small services of the backend
 * ----------------------------------------------------------------
 */

volatile sig_atomic_t InterruptPending = false;
int			DateStyle = USE_ISO_DATES;
int			DateOrder = DATEORDER_MDY;
int			IntervalStyle = INTSTYLE_POSTGRES;
int			MyProcPid = 1;
char		my_exec_path[MAXPGPATH] = "/usr/lib/postgresql/15/bin/postgres";

void
check_stack_depth(void)
{
}

void
ProcessInterrupts(void)
{
}

/* storage/fd.c, as pgtz.c uses it to find a zone file's spelling */
DIR *
AllocateDir(const char *dirname)
{
	return opendir(dirname);
}

struct dirent *
ReadDirExtended(DIR *dir, const char *dirname, int elevel)
{
	return dir ? readdir(dir) : NULL;
}

struct dirent *
ReadDir(DIR *dir, const char *dirname)
{
	return ReadDirExtended(dir, dirname, ERROR);
}

int
FreeDir(DIR *dir)
{
	return dir ? closedir(dir) : 0;
}

/*
 * AddressSanitizer defaults for every harness: a 32 MB quarantine (the
 * 256 MB default made each input fault in fresh pages: a third of the
 * time went to the kernel) and no filling of new allocations (a memset of
 * up to 4 kB per palloc).  Use-after-free within the last 32 MB of frees
 * and every overflow are still caught.  ASAN_OPTIONS overrides these.
 */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "quarantine_size_mb=32:max_malloc_fill_size=0";
}

/* storage/ipc/shmem.c: size arithmetic that errors on overflow */
Size
add_size(Size s1, Size s2)
{
	Size		result = s1 + s2;

	if (result < s1 || result < s2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("requested shared memory size overflows size_t")));
	return result;
}

Size
mul_size(Size s1, Size s2)
{
	Size		result;

	if (s1 == 0 || s2 == 0)
		return 0;
	result = s1 * s2;
	if (result / s2 != s1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("requested shared memory size overflows size_t")));
	return result;
}

/*
 * utils/adt/pg_locale.c: the names to_char() prints for TM-prefixed
 * fields, as a server with lc_time = 'C' caches them.  template.c replaces
 * TM fields with its own names, so these show only where it lets one
 * through.
 */
char	   *localized_abbrev_days[7 + 1];
char	   *localized_full_days[7 + 1];
char	   *localized_abbrev_months[12 + 1];
char	   *localized_full_months[12 + 1];

void
cache_locale_time(void)
{
	static char *const days[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
	"Thursday", "Friday", "Saturday"};
	static char *const months[] = {"January", "February", "March", "April",
		"May", "June", "July", "August", "September", "October", "November",
	"December"};
	static char abbr_days[7][4];
	static char abbr_months[12][4];

	for (int i = 0; i < 7; i++)
	{
		localized_full_days[i] = days[i];
		strlcpy(abbr_days[i], days[i], 4);
		localized_abbrev_days[i] = abbr_days[i];
	}
	for (int i = 0; i < 12; i++)
	{
		localized_full_months[i] = months[i];
		strlcpy(abbr_months[i], months[i], 4);
		localized_abbrev_months[i] = abbr_months[i];
	}
}

/*
 * access/transam/xact.c: the harness's "transaction" started at a fixed
 * time, 2026-11-24 12:00:00 UTC, so that "now" and "today" are
 * reproducible.
 */
#define FUZZ_NOW	((TimestampTz) 848836800 * USECS_PER_SEC)

TimestampTz
GetCurrentTransactionStartTimestamp(void)
{
	return FUZZ_NOW;
}

TimestampTz
GetCurrentStatementStartTimestamp(void)
{
	return FUZZ_NOW;
}

/* utils/mmgr/mcxt.c: the overflow-checked forms */
void *
palloc_mul(Size s1, Size s2)
{
	return palloc(mul_size(s1, s2));
}

void *
palloc_mul_extended(Size s1, Size s2, int flags)
{
	return palloc_extended(mul_size(s1, s2), flags);
}

void *
repalloc_mul(void *p, Size s1, Size s2)
{
	return repalloc(p, mul_size(s1, s2));
}
