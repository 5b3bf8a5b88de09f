/*-------------------------------------------------------------------------
 *
 * filters_fuzz.c
 *	  libFuzzer harness for the template filters (src/render/template.c: date,
 *	  time, datetime with styles, to_char() patterns, tz= and locale=,
 *	  json, default) rendered through the engine (src/render/mustache.c) over
 *	  jsonb data, with PostgreSQL's own jsonb, numeric, datetime, time
 *	  zone and to_char() code.
 *
 * Input: one byte choosing the escape mode, locale and time zone of the
 * render, then the template, then optionally NUL and a value text, NUL
 * and a number text.  The data is {"v": value text, "n": number (when it
 * parses as numeric), "when": ..., "epoch": ..., "list": [...]}, so
 * {{ v | date "..." }} puts any text through the timestamp parser and
 * {{ n | datetime }} any number through the epoch path.  An ERROR with a
 * proper SQLSTATE is a fine answer; a crash, a sanitizer report or an
 * elog (XX000, "cannot happen") is not.
 *
 * A new filter in template.c is fuzzed as soon as it exists: prepare and
 * apply are the production ones.  Tell the fuzzer its name in
 * filters.dict (one line, e.g. " | number" for the number filter).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "render/template.h"

#include "fuzz_pg.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const locales[] = {NULL, "en", "pl-PL", "de", "fr_FR.UTF-8", "es", "xx"};
static const char *const zones[] = {NULL, "UTC", "Europe/Warsaw", "America/New_York",
"Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham", "+05:30"};

static void
push_key(JsonbParseState **st, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(st, WJB_KEY, &k);
}

static void
push_string(JsonbParseState **st, JsonbIteratorToken tok, const char *s, size_t len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = len;
	pushJsonbValue(st, tok, &v);
}

static void
push_numeric(JsonbParseState **st, JsonbIteratorToken tok, const char *text)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
														CStringGetDatum(text),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	pushJsonbValue(st, tok, &v);
}

/* the data tree, built with PostgreSQL's jsonb code */
static Jsonb *
make_data(const char *value, size_t valuelen, const char *number)
{
	JsonbParseState *st = NULL;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "v");
	push_string(&st, WJB_VALUE, value, valuelen);
	if (number)
	{
		JsonbParseState *saved = st;

		push_key(&st, "n");
		if (!FUZZ_TRY(push_numeric(&st, WJB_VALUE, number)))
		{
			st = saved;
			push_string(&st, WJB_VALUE, number, strlen(number));
		}
	}
	push_key(&st, "when");
	push_string(&st, WJB_VALUE, "2026-03-29T01:30:00+01:00", 25);
	push_key(&st, "epoch");
	push_numeric(&st, WJB_VALUE, "1764000000.5");
	push_key(&st, "list");
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	push_string(&st, WJB_ELEM, "2024-02-29 23:59:59.999999", 26);
	push_numeric(&st, WJB_ELEM, "-62135596800");
	push_string(&st, WJB_ELEM, "epoch", 5);
	push_string(&st, WJB_ELEM, "infinity", 8);
	pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool initialized = false;
	MemoryContext cxt;
	MemoryContext old;
	const char *piece[3] = {"", "", NULL};
	size_t		len[3] = {0, 0, 0};
	int			npieces = 0;
	const char *p;
	const char *end;
	RenderOptions opts;
	Jsonb	   *jb;
	char	   *out;

	if (size < 1)
		return 0;
	if (!initialized)
	{
		fuzz_init_backend();
		initialized = true;
	}
	cxt = AllocSetContextCreate(NULL, "fuzz", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	/* template NUL value NUL number, each an exact-size copy */
	p = (const char *) data + 1;
	end = (const char *) data + size;
	while (npieces < 3 && p <= end)
	{
		const char *nul = memchr(p, '\0', end - p);
		size_t		n = nul ? (size_t) (nul - p) : (size_t) (end - p);

		piece[npieces] = pnstrdup(p, n);
		len[npieces] = n;
		npieces++;
		if (nul == NULL)
			break;
		p = nul + 1;
	}

	memset(&opts, 0, sizeof(opts));
	opts.escape = (RenderEscape) (data[0] % 3);
	opts.locale = locales[(data[0] / 3) % lengthof(locales)];
	opts.time_zone = zones[(data[0] / 21) % lengthof(zones)];
	opts.max_output = 4096;

	if (FUZZ_TRY(jb = make_data(piece[1], len[1], piece[2])) &&
		FUZZ_TRY(out = template_render(piece[0], jb, &opts)) &&
		strlen(out) > opts.max_output)
		abort();

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}
