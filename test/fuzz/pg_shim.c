/*-------------------------------------------------------------------------
 *
 * pg_shim.c
 *	  The few PostgreSQL functions src/mustache.c links against, for
 *	  building it outside the server (fuzzing).
 *
 * Every allocation is its own malloc() so AddressSanitizer sees each
 * chunk; a memory context is a list of chunks plus child contexts.
 * Where PostgreSQL would ereport (allocation too large) we abort(), which
 * the fuzzer reports as a crash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/stringinfo.h"
#include "utils/memutils.h"

/* port.h maps these to libpgport's versions; use the C library's */
#undef fprintf
#undef vsnprintf

typedef struct ShimChunk
{
	struct ShimChunk *prev;
	struct ShimChunk *next;
	struct ShimContext *cxt;
	Size		size;
} ShimChunk;

typedef struct ShimContext
{
	MemoryContextData header;	/* parent/firstchild/nextchild used */
	ShimChunk	chunks;			/* list head */
} ShimContext;

/* keep user pointers MAXALIGNed */
#define CHUNK_HDRSZ		MAXALIGN(sizeof(ShimChunk))

static ShimContext top_context;
MemoryContext CurrentMemoryContext = NULL;

static ShimContext *
shim_top(void)
{
	if (top_context.chunks.next == NULL)
	{
		top_context.chunks.next = top_context.chunks.prev = &top_context.chunks;
		top_context.header.name = "top";
	}
	return &top_context;
}

static void *
shim_alloc(MemoryContext context, Size size, bool zero)
{
	ShimContext *cxt = (ShimContext *) (context ? context : (MemoryContext) shim_top());
	ShimChunk  *c;

	if (size > MaxAllocSize)
	{
		fprintf(stderr, "shim: invalid memory alloc request size %zu\n", size);
		abort();
	}
	c = zero ? calloc(1, CHUNK_HDRSZ + size) : malloc(CHUNK_HDRSZ + size);
	if (c == NULL)
		abort();
	c->cxt = cxt;
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

static void
unlink_chunk(ShimChunk *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	ShimContext *cxt = calloc(1, sizeof(ShimContext));

	if (parent == NULL)
		parent = (MemoryContext) shim_top();
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
MemoryContextDelete(MemoryContext context)
{
	ShimContext *cxt = (ShimContext *) context;
	ShimChunk  *c;

	while (context->firstchild)
		MemoryContextDelete(context->firstchild);
	for (c = cxt->chunks.next; c != &cxt->chunks;)
	{
		ShimChunk  *next = c->next;

		free(c);
		c = next;
	}
	if (context->prevchild)
		context->prevchild->nextchild = context->nextchild;
	else if (context->parent)
		context->parent->firstchild = context->nextchild;
	if (context->nextchild)
		context->nextchild->prevchild = context->prevchild;
	if (CurrentMemoryContext == context)
		CurrentMemoryContext = context->parent;
	if (context != (MemoryContext) &top_context)
		free(cxt);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return shim_alloc(context, size, false);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	Size		len = strlen(string) + 1;
	char	   *r = shim_alloc(context, len, false);

	memcpy(r, string, len);
	return r;
}

void *
palloc(Size size)
{
	return shim_alloc(CurrentMemoryContext, size, false);
}

void *
palloc0(Size size)
{
	return shim_alloc(CurrentMemoryContext, size, true);
}

void
pfree(void *pointer)
{
	ShimChunk  *c = chunk_of(pointer);

	unlink_chunk(c);
	free(c);
}

void *
repalloc(void *pointer, Size size)
{
	ShimChunk  *c = chunk_of(pointer);
	ShimContext *cxt = c->cxt;
	void	   *r = shim_alloc((MemoryContext) cxt, size, false);

	memcpy(r, pointer, Min(size, c->size));
	pfree(pointer);
	return r;
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
psprintf(const char *fmt,...)
{
	va_list		args;
	int			len;
	char	   *r;

	va_start(args, fmt);
	len = vsnprintf(NULL, 0, fmt, args);
	va_end(args);
	r = palloc(len + 1);
	va_start(args, fmt);
	vsnprintf(r, len + 1, fmt, args);
	va_end(args);
	return r;
}

/* StringInfo, as in src/common/stringinfo.c */

void
initStringInfo(StringInfo str)
{
	str->maxlen = 1024;
	str->data = palloc(str->maxlen);
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	Size		newlen;

	if (needed < 0 || ((Size) needed) >= (MaxAllocSize - (Size) str->len))
	{
		fprintf(stderr, "shim: string buffer too large\n");
		abort();
	}
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	if (newlen > MaxAllocSize)
		newlen = MaxAllocSize;
	str->data = repalloc(str->data, newlen);
	str->maxlen = newlen;
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	if (str->len + 1 >= str->maxlen)
		enlargeStringInfo(str, 1);
	str->data[str->len] = ch;
	str->len++;
	str->data[str->len] = '\0';
}
