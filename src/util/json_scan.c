/*-------------------------------------------------------------------------
 *
 * json_scan.c
 *	  Picking a few scalar values out of a provider's JSON response, such
 *	  as Twilio's "sid" or SMSAPI's "list.0.id", after the transfer, with
 *	  no transaction open and no error allowed to escape.
 *
 *	  PostgreSQL's own JSON parser does the work: pg_parse_json() (in
 *	  common/jsonapi.c) reports errors by return code, never by ereport,
 *	  and the semantic actions here only record what they see.  Two things
 *	  could still raise an error: invalid UTF-8 (the lexer is told the
 *	  input is UTF-8; only the valid prefix is parsed) and its stack depth
 *	  check (nesting is counted first and deep documents are refused).
 *	  What the parser saw before a syntax error still counts, so a cut-off
 *	  response may still yield the fields that came first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "util/util.h"

#define JSON_SCAN_MAX_DEPTH	32

typedef struct JsonScanState
{
	JsonScanField *fields;
	int			nfields;
	StringInfoData path;		/* dotted path of the current value */
	int			depth;
	int			path_len[JSON_SCAN_MAX_DEPTH + 1];	/* path length per level */
	int			index[JSON_SCAN_MAX_DEPTH + 1];	/* next array index per level */
} JsonScanState;

/* Nesting depth of a JSON text, counting brackets outside strings. */
static int
nesting_depth(const char *s, size_t len)
{
	int			depth = 0;
	int			max = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
			max = Max(max, ++depth);
		else if (c == '}' || c == ']')
			depth--;
	}
	return max;
}

static void
push_level(JsonScanState *st)
{
	st->depth++;
	st->path_len[st->depth] = st->path.len;
	st->index[st->depth] = 0;
}

static void
scan_object_start(void *state)
{
	push_level((JsonScanState *) state);
}

static void
scan_array_start(void *state)
{
	push_level((JsonScanState *) state);
}

static void
scan_end(void *state)
{
	JsonScanState  *st = state;

	st->depth--;
}

/* The path of a member or element: the container's path, a dot, the name. */
static void
set_member(JsonScanState *st, const char *name)
{
	st->path.len = st->path_len[st->depth];
	st->path.data[st->path.len] = '\0';
	if (st->path.len > 0)
		appendStringInfoChar(&st->path, '.');
	appendStringInfoString(&st->path, name);
}

static void
scan_field_start(void *state, char *fname, bool isnull)
{
	set_member((JsonScanState *) state, fname);
}

static void
scan_element_start(void *state, bool isnull)
{
	JsonScanState  *st = state;
	char		num[16];

	snprintf(num, sizeof(num), "%d", st->index[st->depth]++);
	set_member(st, num);
}

static void
scan_scalar(void *state, char *token, JsonTokenType tokentype)
{
	JsonScanState  *st = state;

	if (tokentype == JSON_TOKEN_NULL)
		return;
	for (int i = 0; i < st->nfields; i++)
		if (st->fields[i].value == NULL && strcmp(st->fields[i].path, st->path.data) == 0)
			st->fields[i].value = pstrdup(token);
}

/*
 * Look up fields[i].path (dotted, array elements by index: "list.0.id")
 * in the JSON text; set fields[i].value to the scalar found there as text
 * (strings unescaped), or leave it NULL.  Returns true if the whole text
 * parsed as JSON.  Never raises an error but out of memory.
 */
bool
json_scan(const char *json, size_t len, JsonScanField *fields, int nfields)
{
	JsonScanState	st;
	JsonSemAction sem;
	JsonLexContext *lex;
	JsonParseErrorType rc;
	int			valid;
	char	   *copy;

	for (int i = 0; i < nfields; i++)
		fields[i].value = NULL;
	if (json == NULL || len == 0)
		return false;

	valid = pg_encoding_verifymbstr(PG_UTF8, json, (int) Min(len, (size_t) PG_INT32_MAX));
	if (nesting_depth(json, valid) > JSON_SCAN_MAX_DEPTH)
		return false;
	copy = pnstrdup(json, valid);

	memset(&st, 0, sizeof(st));
	st.fields = fields;
	st.nfields = nfields;
	initStringInfo(&st.path);

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = scan_object_start;
	sem.object_end = scan_end;
	sem.array_start = scan_array_start;
	sem.array_end = scan_end;
	sem.object_field_start = scan_field_start;
	sem.array_element_start = scan_element_start;
	sem.scalar = scan_scalar;

	lex = makeJsonLexContextCstringLen(copy, valid, PG_UTF8, true);
	rc = pg_parse_json(lex, &sem);
	return rc == JSON_SUCCESS && valid == (int) len;
}

/* The value a scan found for path, or NULL. */
const char *
json_scan_value(JsonScanField *fields, int nfields, const char *path)
{
	for (int i = 0; i < nfields; i++)
		if (strcmp(fields[i].path, path) == 0)
			return fields[i].value;
	return NULL;
}
