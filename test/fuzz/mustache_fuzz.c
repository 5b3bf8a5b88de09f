/*-------------------------------------------------------------------------
 *
 * mustache_fuzz.c
 *	  libFuzzer harness for the Mustache engine core (src/render/mustache.c).
 *
 * Input: one byte choosing the escape mode, then the template, then
 * optionally "\0" and the source of partial "a", "\0" and partial "b",
 * and so on.  The data is a fixed tree (below) with every kind of value.
 * Each input is compiled and rendered twice; the two renders must agree.
 * Build and run: see README.md in this directory.
 *
 * Speed: what an input may cost is bounded by the render limits, and
 * libFuzzer's corpus drifts towards inputs that reach them (nested
 * sections over lists), so the limits are kept small: 4 kB of output and
 * 2,000 steps per render still reach every limit path, at a fraction of
 * the cost of the production-sized limits this harness used to set.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "render/mustache.h"
#include "utils/memutils.h"

#include "fuzz_pg.h"

/* the data tree: MustacheValue.ptr of non-strings points at an FValue */
typedef struct FMember FMember;

typedef struct FValue
{
	MustacheKind kind;
	const char *text;			/* STRING and NUMBER */
	const FMember *members;		/* OBJECT */
	const struct FValue *elems; /* ARRAY */
	int			count;
} FValue;

struct FMember
{
	const char *key;
	FValue		value;
};

#define STR(s)		{MUSTACHE_STRING, s, NULL, NULL, 0}
#define NUM(s)		{MUSTACHE_NUMBER, s, NULL, NULL, 0}
#define OBJ(m)		{MUSTACHE_OBJECT, NULL, m, NULL, lengthof(m)}
#define ARR(a)		{MUSTACHE_ARRAY, NULL, NULL, a, lengthof(a)}
#define LIT(k)		{k, NULL, NULL, NULL, 0}

static const FMember deep_c[] = {{"c", STR("deep")}};
static const FMember deep_b[] = {{"b", OBJ(deep_c)}};
static const FMember x1[] = {{"x", NUM("1")}};
static const FMember x2[] = {{"x", NUM("2")}, {"name", STR("<x2>")}};
static const FValue xs[] = {OBJ(x1), OBJ(x2)};
static const FValue bools[] = {LIT(MUSTACHE_TRUE), LIT(MUSTACHE_FALSE)};
static const FValue none[] = {LIT(MUSTACHE_NULL)};
static const FMember inner[] = {{"name", STR("inner")}, {"list", ARR(none)}};
static const FValue list[] = {NUM("1"), STR("two"), OBJ(inner), ARR(bools), LIT(MUSTACHE_NULL)};
static const FMember objm[] = {{"a", OBJ(deep_b)}, {"name", STR("objname")}, {"list", ARR(xs)}};
static const FMember rootm[] = {
	{"name", STR("Ann <&>\"'\n\t\x01")},
	{"n", NUM("42")},
	{"f", NUM("1.5")},
	{"zero", NUM("0")},
	{"t", LIT(MUSTACHE_TRUE)},
	{"no", LIT(MUSTACHE_FALSE)},
	{"nil", LIT(MUSTACHE_NULL)},
	{"empty", STR("")},
	{"when", STR("2026-11-24T14:00:00+01:00")},
	{"list", ARR(list)},
	{"obj", OBJ(objm)},
	{"e", ARR(none)},
};
static const FValue root = OBJ(rootm);

static void
to_value(const FValue *f, MustacheValue *v)
{
	v->kind = f->kind;
	if (f->kind == MUSTACHE_STRING)
	{
		v->ptr = f->text;
		v->len = strlen(f->text);
	}
	else
	{
		v->ptr = f;
		v->len = 0;
	}
}

static bool
fz_lookup(void *arg, const MustacheValue *object, const char *key,
		  size_t keylen, MustacheValue *result)
{
	const FValue *o = object->ptr;

	if (object->kind != MUSTACHE_OBJECT)
		abort();
	for (int i = 0; i < o->count; i++)
	{
		if (strlen(o->members[i].key) == keylen &&
			memcmp(o->members[i].key, key, keylen) == 0)
		{
			to_value(&o->members[i].value, result);
			return true;
		}
	}
	return false;
}

static size_t
fz_array_length(void *arg, const MustacheValue *array)
{
	if (array->kind != MUSTACHE_ARRAY)
		abort();
	return ((const FValue *) array->ptr)->count;
}

static void
fz_array_element(void *arg, const MustacheValue *array, size_t index,
				 MustacheValue *result)
{
	const FValue *a = array->ptr;

	if (array->kind != MUSTACHE_ARRAY || index >= (size_t) a->count)
		abort();
	to_value(&a->elems[index], result);
}

static void
fz_append_text(void *arg, const MustacheValue *value, StringInfo out)
{
	const FValue *f = value->ptr;

	switch (value->kind)
	{
		case MUSTACHE_NUMBER:
			appendStringInfoString(out, f->text);
			break;
		case MUSTACHE_ARRAY:
			appendStringInfoString(out, psprintf("[array of %d]", f->count));
			break;
		case MUSTACHE_OBJECT:
			appendStringInfoString(out, psprintf("{object of %d}", f->count));
			break;
		default:
			abort();			/* the core handles the other kinds */
	}
}

typedef struct Input
{
	const char *piece[4];		/* template, partials a, b, c */
	size_t		len[4];
	int			npieces;
} Input;

static bool
fz_partial(void *arg, const char *name, size_t namelen,
		   const char **source, size_t *sourcelen)
{
	Input	   *in = arg;
	int			i;

	if (namelen != 1 || name[0] < 'a' || name[0] > 'c')
		return false;
	i = name[0] - 'a' + 1;
	if (i >= in->npieces)
		return false;
	*source = in->piece[i];
	*sourcelen = in->len[i];
	return true;
}

/* as the currency filter does: unquoted positional arguments are names */
static void
fz_prepare_filter(void *arg, MustacheFilter *filter)
{
	for (int i = 0; i < filter->nargs; i++)
		if (filter->args[i].key == NULL && !filter->args[i].quoted)
			filter->args[i].is_name = true;
}

static void
fz_apply_filter(void *arg, const MustacheFilter *filter,
				const MustacheValue *input, const MustacheValue *argv,
				MustacheValue *result)
{
	/* stands in for the date filters: a string derived from the args */
	result->kind = MUSTACHE_STRING;
	result->ptr = filter->nargs > 0 ? filter->args[0].value : filter->name;
	/* or the value the first argument names, when it is a string */
	if (argv && argv[0].kind == MUSTACHE_STRING)
	{
		result->ptr = argv[0].ptr;
		result->len = argv[0].len;
		return;
	}
	result->len = strlen(result->ptr);
}

static const MustacheCallbacks callbacks = {
	.lookup = fz_lookup,
	.array_length = fz_array_length,
	.array_element = fz_array_element,
	.append_text = fz_append_text,
	.partial = fz_partial,
	.prepare_filter = fz_prepare_filter,
	.apply_filter = fz_apply_filter,
	.check = NULL,
};

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MemoryContext cxt;
	MemoryContext old;
	Input		in;
	MustacheEnv env;
	MustacheError err;
	MustacheTemplate *tpl;
	MustacheValue rootv;
	MustacheValue v;
	const char *s;
	size_t		len;

	if (size < 1)
		return 0;
	cxt = AllocSetContextCreate(NULL, "fuzz", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	/* split the input on NUL bytes */
	memset(&in, 0, sizeof(in));
	s = (const char *) data + 1;
	len = size - 1;
	while (in.npieces < 4)
	{
		const char *nul = memchr(s, '\0', len);
		size_t		piece = nul ? (size_t) (nul - s) : len;

		in.piece[in.npieces] = s;
		in.len[in.npieces] = piece;
		in.npieces++;
		if (nul == NULL)
			break;
		s = nul + 1;
		len -= piece + 1;
	}

	memset(&env, 0, sizeof(env));
	env.cb = &callbacks;
	env.arg = &in;
	env.escape = (MustacheEscape) (data[0] % 3);
	env.max_output = 4096;
	env.max_steps = 2000;
	env.max_partial_depth = 0;

	to_value(&root, &rootv);
	mustache_resolve(&callbacks, &in, &rootv, in.piece[0],
					 strnlen(in.piece[0], in.len[0]), &v);

	tpl = mustache_compile(in.piece[0], in.len[0], &env, &err);
	if (tpl == NULL)
	{
		if (err.code == MUSTACHE_OK || err.message == NULL ||
			err.line < 1 || err.column < 1)
			abort();
	}
	else
	{
		StringInfoData out1;
		StringInfoData out2;
		MustacheError err2;
		bool		ok1;
		bool		ok2;

		initStringInfo(&out1);
		initStringInfo(&out2);
		ok1 = mustache_render(tpl, &rootv, &env, &out1, &err);
		ok2 = mustache_render(tpl, &rootv, &env, &out2, &err2);
		if (ok1 != ok2 || out1.len != out2.len ||
			memcmp(out1.data, out2.data, out1.len) != 0)
			abort();
		if (!ok1 && (err.code == MUSTACHE_OK || err.message == NULL))
			abort();
		if (ok1 && (size_t) out1.len > env.max_output)
			abort();
		mustache_free(tpl);
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}
