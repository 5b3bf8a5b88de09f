/*-------------------------------------------------------------------------
 *
 * jsonb_util.c
 *	  Small helpers for reading and writing top-level keys of jsonb
 *	  objects, the shape of every settings, recipient and data value here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "reminder.h"
#include "util/util.h"

/* The value under key in a jsonb object, or NULL if absent or not an object. */
JsonbValue *
jsonb_get(Jsonb *obj, const char *key)
{
	if (obj == NULL || !JB_ROOT_IS_OBJECT(obj))
		return NULL;
	return getKeyJsonValueFromContainer(&obj->root, key, strlen(key), NULL);
}

/*
 * A scalar as text: strings as they are, numbers and booleans as JSON
 * writes them, null as NULL.  Containers come back as JSON text.
 */
char *
jsonb_value_text(JsonbValue *v)
{
	if (v == NULL)
		return NULL;

	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * The string under key, or NULL when absent or null; any other type is an
 * error naming the value as "what" (e.g. "recipient \"email\"").
 */
char *
jsonb_get_string(Jsonb *obj, const char *key, const char *what)
{
	JsonbValue *v = jsonb_get(obj, key);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a string", what)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

char *
jsonb_get_text(Jsonb *obj, const char *key)
{
	return jsonb_value_text(jsonb_get(obj, key));
}

/* Building jsonb: a key, and a string under a key or in an array. */
void
jsonb_push_key(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
}

void
jsonb_push_string(JsonbParseState **state, JsonbIteratorToken tok, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, tok, &v);
}

/* obj with key set to the string value (or JSON null when value is NULL). */
Jsonb *
jsonb_set_text(Jsonb *obj, const char *key, const char *value)
{
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *res;
	Jsonb	   *pair;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	if (value)
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	else
		v.type = jbvNull;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&state, WJB_KEY, &k);
	pushJsonbValue(&state, WJB_VALUE, &v);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	pair = JsonbValueToJsonb(res);

	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(obj),
											  JsonbPGetDatum(pair)));
}
