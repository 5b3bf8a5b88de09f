/*-------------------------------------------------------------------------
 *
 * channel_settings.c
 *	  The names of the channel kinds, and what reads a channel's settings
 *	  and secrets for channel_parse() (channel.c) and the kinds' own parse
 *	  hooks (transport_*.c): strings, headers, recipient hosts, TLS.  Calls
 *	  into no other file of the channel's, so that the transports can use it
 *	  while channel.c reaches them through their ops.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/jsonb.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "transport/transport.h"
#include "util/util.h"

static const char *const kind_names[] = {
	[CHANNEL_EMAIL] = "email",
	[CHANNEL_SMS] = "sms",
	[CHANNEL_WEBHOOK] = "webhook",
	[CHANNEL_SLACK] = "slack",
	[CHANNEL_LOG] = "log",
};

const char *
channel_kind_name(ChannelKind kind)
{
	return kind_names[kind];
}

/* The kind named name into *kind; false if there is none. */
bool
channel_kind_from_name(const char *name, ChannelKind *kind)
{
	for (int i = 0; i < lengthof(kind_names); i++)
		if (strcmp(name, kind_names[i]) == 0)
		{
			*kind = (ChannelKind) i;
			return true;
		}
	return false;
}

char *
channel_what_setting(const char *key, const char *channel)
{
	return psprintf("setting \"%s\" of channel \"%s\"", key, channel);
}

/* A string setting or secret, or NULL when absent or null. */
char *
channel_get_string(Jsonb *obj, const char *key, const char *channel, bool secret)
{
	return jsonb_get_string(obj, key,
							psprintf("%s \"%s\" of channel \"%s\"",
									 secret ? "secret" : "setting", key, channel));
}

/*
 * Header fields the worker writes itself, or that frame the request: a
 * channel's "headers" may neither repeat nor replace them.  Compared
 * case-insensitively, as HTTP does.
 */
static const char *const reserved_headers[] = {
	"Content-Type", "Content-Length", "Transfer-Encoding", "Host",
	"Idempotency-Key", "User-Agent", "Expect", "Connection", "Keep-Alive",
	"TE", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Connection",
	NULL
};

/* ... and those of a webhook, which sets its own credentials */
static const char *const webhook_headers[] = {
	"Authorization", "X-Reminder-Signature", NULL
};

static void
check_header_name(const char *name, const char *what, ChannelKind kind)
{
	const char *hint = NULL;
	bool		reserved = false;

	for (int i = 0; reserved_headers[i] && !reserved; i++)
		reserved = pg_strcasecmp(name, reserved_headers[i]) == 0;
	for (int i = 0; kind == CHANNEL_WEBHOOK && webhook_headers[i] && !reserved; i++)
		reserved = pg_strcasecmp(name, webhook_headers[i]) == 0;
	if (!reserved)
		return;

	if (pg_strcasecmp(name, "Content-Type") == 0)
		hint = kind == CHANNEL_WEBHOOK ? "A webhook's body is JSON, sent as application/json." :
			"Set the type of the body with setting \"content_type\".";
	else if (pg_strcasecmp(name, "Authorization") == 0)
		hint = "Give the secret \"bearer_token\", or the secrets \"username\" and \"password\" for HTTP Basic authentication.";
	else if (pg_strcasecmp(name, "X-Reminder-Signature") == 0)
		hint = "Give the secret \"signing_secret\" and the worker signs every request.";
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("header \"%s\" in %s is set by the worker", name, what),
			 errdetail("Header fields the worker writes (Content-Type, Idempotency-Key, User-Agent, %s"
					   "Host, Content-Length, Transfer-Encoding and the other fields that frame a request) cannot be repeated or replaced.",
					   kind == CHANNEL_WEBHOOK ? "Authorization, X-Reminder-Signature, " : ""),
			 hint ? errhint("%s", hint) : 0));
}

/* "headers": {"Name": "value", ...} -> list of "Name: value" */
List *
channel_get_headers(Jsonb *obj, const char *key, ChannelConfig *cc)
{
	JsonbValue *v = jsonb_get(obj, key);
	JsonbIterator *it;
	JsonbValue	k,
				val;
	JsonbIteratorToken tok;
	List	   *headers = NIL;
	char	   *what = channel_what_setting(key, cc->name);

	if (v == NULL || v->type == jbvNull)
		return NIL;
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an object of header names and values", what),
				 errhint("Write {\"X-Source\": \"reminder\"}.")));

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;
		char	   *value;
		ListCell   *lc;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &val, true);
		if (val.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("header \"%s\" in %s must be a string", name, what)));
		value = pnstrdup(val.val.string.val, val.val.string.len);
		validate_header_name(name, what);
		check_header_name(name, what, cc->kind);
		validate_http_header_value(value, psprintf("header \"%s\" in %s", name, what));
		/* jsonb keys are unique, but not case-insensitively */
		foreach(lc, headers)
		{
			const char *other = lfirst(lc);

			if (pg_strncasecmp(other, name, strlen(name)) == 0 && other[strlen(name)] == ':')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("header \"%s\" appears twice in %s", name, what),
						 errdetail("Header names are compared without regard to case.")));
		}
		headers = lappend(headers, psprintf("%s: %s", name, value));
	}
	return headers;
}

/* "recipient_hosts": ["hooks.example.com", "*.example.com:8443", ...] */
List *
channel_get_recipient_hosts(Jsonb *settings, ChannelConfig *cc)
{
	JsonbValue *v = jsonb_get(settings, "recipient_hosts");
	char	   *what = channel_what_setting("recipient_hosts", cc->name);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	List	   *result = NIL;

	if (v == NULL || v->type == jbvNull)
		return NIL;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an array of host names", what),
				 errhint("Write [\"hooks.example.com\", \"*.example.org\"].")));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must hold host names as strings", what)));
		result = lappend(result,
						 host_pattern_parse(pnstrdup(e.val.string.val, e.val.string.len), what));
	}
	return result;
}

void
channel_require(const char *value, const char *key, ChannelConfig *cc, const char *hint)
{
	if (value == NULL || *value == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel \"%s\" of kind %s needs setting \"%s\"",
						cc->name, channel_kind_name(cc->kind), key),
				 errhint("%s", hint)));
}

void
channel_require_secret(const char *value, const char *key, ChannelConfig *cc, const char *hint)
{
	if (value == NULL || *value == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel \"%s\" needs secret \"%s\"", cc->name, key),
				 errhint("%s", hint)));
}

/*
 * "tls_verify" (default true) and "ca_file", for the kinds whose transports
 * this extension owns.  Turning verification off is allowed only as an
 * explicit setting, and create_channel() warns about it.
 */
void
channel_parse_tls(Jsonb *settings, ChannelConfig *cc)
{
	JsonbValue *v = jsonb_get(settings, "tls_verify");

	cc->tls_verify = true;
	if (v != NULL && v->type != jbvNull)
	{
		if (v->type != jbvBool)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be true or false", channel_what_setting("tls_verify", cc->name))));
		cc->tls_verify = v->val.boolean;
	}

	cc->ca_file = channel_get_string(settings, "ca_file", cc->name, false);
	if (cc->ca_file && !is_absolute_path(cc->ca_file))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an absolute path", channel_what_setting("ca_file", cc->name)),
				 errhint("Give the PEM file of the certificate authorities to trust, as the server sees it.")));
	if (cc->ca_file)
		validate_header_value(cc->ca_file, channel_what_setting("ca_file", cc->name));
}
