/*-------------------------------------------------------------------------
 *
 * transport_sms.c
 *	  SMS through an HTTP gateway: the Twilio and SMSAPI.pl presets, or a
 *	  generic gateway whose method, URL, headers and body are templates.
 *
 *	  Twilio: POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json,
 *	  HTTP Basic AccountSid:AuthToken, form fields To, From and/or
 *	  MessagingServiceSid, Body.  2xx is sent, its "sid" the provider id;
 *	  otherwise the HTTP status decides (408, 429, 5xx transient, other 4xx
 *	  permanent: 21211 invalid number, 20003 authentication, ...), except
 *	  Twilio codes that mean "not now" (20429, 14107, 21611), transient.
 *
 *	  SMSAPI: POST {base}/sms.do, Authorization: Bearer token, form fields
 *	  to (digits, no "+"), message, from, encoding=utf-8, format=json,
 *	  idx and check_idx=1, so SMSAPI itself refuses a second message with
 *	  the same idx (error 53) - which therefore means "already sent".  It
 *	  reports errors as {"error": N, "message": ...}, often with HTTP 200;
 *	  the codes are mapped by smsapi_outcome().  "list.0.id" is the id.
 *
 *	  Generic: see build_generic().
 *
 *	  Responses are read in classify, with no transaction open, by
 *	  json_scan() (PostgreSQL's JSON parser, which does not raise).
 *
 *	  The text is sent as UTF-8, after an optional transliteration to
 *	  GSM-7 ("unicode": "transliterate"); its segment count is recorded on
 *	  the message (sms_text.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "outbox/outbox.h"
#include "render/render.h"
#include "render/template.h"
#include "transport/transport.h"
#include "util/util.h"

#define SMS_RESPONSE_MAX	(16 * 1024)
#define SMSAPI_IDX_MAX		255

typedef enum SmsProvider
{
	SMS_TWILIO,
	SMS_SMSAPI,
	SMS_GENERIC
} SmsProvider;

typedef struct SmsState
{
	SmsProvider provider;
	char	   *username;		/* Twilio: HTTP Basic */
	char	   *password;
	bool		tls_verify;
	char	   *ca_file;
	char	   *id_field;		/* generic: provider id in the response */
	ResponseBuffer *response;
} SmsState;

/* ----------------------------------------------------------------
 * Build: in the claim transaction
 * ----------------------------------------------------------------
 */

/* base_url without a trailing slash, then path */
static char *
join_url(const char *base, const char *path)
{
	size_t		len = strlen(base);

	while (len > 0 && base[len - 1] == '/')
		len--;
	return psprintf("%.*s%s", (int) len, base, path);
}

static char *
sha256_hex(const char *s)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) s, strlen(s)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 digest: %s", pg_cryptohash_error(ctx))));
	pg_cryptohash_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	return hex;
}

/*
 * SMSAPI's idx takes letters and digits, case-insensitively, at most 255:
 * a key of lower-case letters and digits goes as it is, any other as the
 * hex SHA-256 of the key - the same on every attempt either way.
 */
static char *
sms_smsapi_idx(const char *key)
{
	size_t		len = strlen(key);

	if (len > 0 && len <= SMSAPI_IDX_MAX &&
		strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789") == len)
		return pstrdup(key);
	return sha256_hex(key);
}

static void
build_twilio(Delivery *d, ChannelConfig *cc, const char *to, const char *text,
			 const char *callback_url)
{
	SmsState   *st = d->state;
	StringInfoData form;

	initStringInfo(&form);
	d->url = join_url(cc->base_url, "/2010-04-01/Accounts/");
	{
		StringInfoData url;

		initStringInfo(&url);
		appendStringInfoString(&url, d->url);
		transport_percent_encode(&url, cc->account_sid, false);
		appendStringInfoString(&url, "/Messages.json");
		d->url = url.data;
	}
	transport_form_field(&form, "To", to);
	transport_form_field(&form, "From", transport_to_utf8(cc->sender));
	transport_form_field(&form, "MessagingServiceSid", cc->messaging_service_sid);
	transport_form_field(&form, "Body", text);
	/* Twilio reports delivery there; the signed link routes it to our event */
	transport_form_field(&form, "StatusCallback", callback_url);
	d->body = form.data;
	d->body_len = form.len;

	st->username = pstrdup(cc->account_sid);
	st->password = jsonb_get_text(cc->secrets, "auth_token");
	transport_add_http_headers(d, "application/x-www-form-urlencoded");
}

static void
build_smsapi(Delivery *d, ChannelConfig *cc, const char *to, const char *text,
			 const char *idempotency_key, const char *callback_url)
{
	StringInfoData form;

	initStringInfo(&form);
	d->url = join_url(cc->base_url, "/sms.do");
	transport_form_field(&form, "to", to[0] == '+' ? to + 1 : to);
	transport_form_field(&form, "message", text);
	transport_form_field(&form, "from", transport_to_utf8(cc->sender));
	transport_form_field(&form, "encoding", "utf-8");
	transport_form_field(&form, "format", "json");
	transport_form_field(&form, "idx", sms_smsapi_idx(idempotency_key));
	transport_form_field(&form, "check_idx", "1");
	transport_form_field(&form, "notify_url", callback_url);
	d->body = form.data;
	d->body_len = form.len;

	transport_add_http_headers(d, "application/x-www-form-urlencoded");
	d->headers = lappend(d->headers,
						 psprintf("Authorization: Bearer %s", jsonb_get_text(cc->secrets, "token")));
}

/* ---- the generic gateway ---- */

typedef enum ValueEscape
{
	ESCAPE_URL,					/* percent-encoded, for the URL */
	ESCAPE_FORM					/* form-encoded, for a form body */
} ValueEscape;

/* Every string of j, keys aside, escaped for a URL or a form body. */
static Jsonb *
escape_strings(Jsonb *j, ValueEscape how)
{
	JsonbIterator *it = JsonbIteratorInit(&j->root);
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *res = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvString)
		{
			StringInfoData buf;
			char	   *utf8 = transport_to_utf8(pnstrdup(v.val.string.val, v.val.string.len));

			initStringInfo(&buf);
			transport_percent_encode(&buf, utf8, how == ESCAPE_FORM);
			v.val.string.val = buf.data;
			v.val.string.len = buf.len;
		}
		res = pushJsonbValue(&state, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	return JsonbValueToJsonb(res);
}

static void
push_text(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	v;

	jsonb_push_key(state, key);
	if (value)
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	else
		v.type = jbvNull;
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_number(JsonbParseState **state, const char *key, int64 value)
{
	JsonbValue	v;

	jsonb_push_key(state, key);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_jsonb(JsonbParseState **state, const char *key, Jsonb *value)
{
	JsonbValue	v;

	jsonb_push_key(state, key);
	if (value == NULL)
	{
		v.type = jbvNull;
		pushJsonbValue(state, WJB_VALUE, &v);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &value->root;
	v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * What a generic gateway's templates see:
 *	{"to": "+48...", "to_digits": "48...", "from": ..., "text": ...,
 *	 "message": {"id", "idempotency_key", "channel", "attempt", "segments",
 *				 "encoding"},
 *	 "recipient": {...}, "data": {...}, "secrets": {...}}
 * Strings in the database encoding, like every template's data.
 */
static Jsonb *
generic_data(Delivery *d, ChannelConfig *cc, ClaimedMessage *m, const char *to,
			 const char *text_db, SmsCount *count)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_text(&state, "to", to);
	push_text(&state, "to_digits", to[0] == '+' ? to + 1 : to);
	push_text(&state, "from", cc->sender);
	push_text(&state, "text", text_db);
	jsonb_push_key(&state, "message");
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_number(&state, "id", m->id);
	push_text(&state, "idempotency_key", m->idempotency_key);
	push_text(&state, "channel", m->channel);
	push_number(&state, "attempt", m->attempt);
	push_number(&state, "segments", count->segments);
	push_text(&state, "encoding", count->gsm7 ? "GSM-7" : "UCS-2");
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	push_jsonb(&state, "recipient", m->recipient);
	push_jsonb(&state, "data", m->data);
	push_jsonb(&state, "secrets", cc->secrets);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

static char *
render(const char *source, Jsonb *data, RenderEscape escape, const char *what)
{
	RenderOptions opts = {0};

	opts.escape = escape;
	opts.max_output = reminder_max_payload_size;
	opts.what = what;
	return template_render(source, data, &opts);
}

/*
 * The generic gateway: the channel's method, and its url, headers and
 * body rendered as templates over generic_data().  Values are escaped for
 * where they land: percent-encoded in the URL; in the body as its
 * content_type needs (form-encoded for x-www-form-urlencoded, JSON
 * strings for JSON, entities for XML, as they are otherwise); in headers
 * as they are, and a line break there fails the message.
 */
static void
build_generic(Delivery *d, ChannelConfig *cc, ClaimedMessage *m, const char *to,
			  const char *text_db, SmsCount *count)
{
	SmsState   *st = d->state;
	Jsonb	   *data = generic_data(d, cc, m, to, text_db, count);
	char	   *what_url = psprintf("setting \"url\" of channel \"%s\"", cc->name);
	Jsonb	   *url_data = escape_strings(data, ESCAPE_URL);
	char	   *authority;
	ListCell   *lc;

	d->method = pstrdup(cc->method);
	d->url = render(cc->url, url_data, RENDER_ESCAPE_NONE, what_url);

	/*
	 * Only secrets and literal text come before the path (checked when the
	 * channel was created): the request goes where the channel says, never
	 * where a message's values would take it.
	 */
	authority = render(url_template_authority(cc->url, what_url), url_data,
					   RENDER_ESCAPE_NONE, what_url);
	if (strncmp(d->url, authority, strlen(authority)) != 0 ||
		strchr("/?#", d->url[strlen(authority)]) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the host of %s depends on the message", what_url)));
	d->host = transport_url_host(d->url, what_url, true);

	if (cc->body)
	{
		const char *ct = cc->content_type;
		char	   *body;

		if (strstr(ct, "x-www-form-urlencoded"))
			body = render(cc->body, escape_strings(data, ESCAPE_FORM), RENDER_ESCAPE_NONE,
						  psprintf("setting \"body\" of channel \"%s\"", cc->name));
		else
			body = render(cc->body, data,
						  strstr(ct, "json") ? RENDER_ESCAPE_JSON :
						  strstr(ct, "xml") ? RENDER_ESCAPE_HTML : RENDER_ESCAPE_NONE,
						  psprintf("setting \"body\" of channel \"%s\"", cc->name));
		d->body = transport_to_utf8(body);
		d->body_len = strlen(d->body);
		validate_payload_size(d->body_len, "SMS gateway request body");
	}
	else
	{
		d->body = "";
		d->body_len = 0;
	}

	transport_add_http_headers(d, cc->body ? cc->content_type : NULL);
	foreach(lc, cc->headers)
	{
		char	   *header = render(lfirst(lc), data, RENDER_ESCAPE_NONE,
									psprintf("setting \"headers\" of channel \"%s\"", cc->name));

		if (strpbrk(header, "\r\n"))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a header of channel \"%s\" renders with a line break", cc->name),
					 errdetail("Carriage return and line feed would start a new header (header injection)."),
					 errhint("Check the values its template interpolates.")));
		for (const unsigned char *c = (const unsigned char *) header; *c; c++)
			if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("a header of channel \"%s\" renders with a control character", cc->name),
						 errdetail("Header values hold printable characters, spaces and tabs only."),
						 errhint("Check the values its template interpolates.")));
		d->headers = lappend(d->headers, transport_to_utf8(header));
	}
	st->id_field = cc->id_field ? pstrdup(cc->id_field) : NULL;
}

static void
sms_build(Delivery *d, ChannelConfig *cc, ClaimedMessage *m, RenderedMessage *r)
{
	SmsState   *st = palloc0(sizeof(SmsState));
	char	   *to = jsonb_get_text(m->recipient, "phone");
	char	   *text = transport_to_utf8(r->body ? r->body : "");
	SmsCount	count;

	d->state = st;
	if (to == NULL || to[0] != '+')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient has no phone number in E.164 form for channel \"%s\"", cc->name)));
	if (cc->transliterate)
		text = sms_transliterate(text);
	if (*text == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the text of the SMS is empty"),
				 errhint("Check the body of template \"%s\".", m->template_name)));
	sms_count(text, &count);
	d->sms_segments = count.segments;

	st->tls_verify = cc->tls_verify;
	st->ca_file = cc->ca_file ? pstrdup(cc->ca_file) : NULL;
	st->response = transport_response_buffer(d, SMS_RESPONSE_MAX);
	d->method = "POST";

	if (strcmp(cc->provider, "twilio") == 0)
	{
		st->provider = SMS_TWILIO;
		build_twilio(d, cc, to, text, r->callback_url);
	}
	else if (strcmp(cc->provider, "smsapi") == 0)
	{
		st->provider = SMS_SMSAPI;
		build_smsapi(d, cc, to, text, m->idempotency_key, r->callback_url);
	}
	else
	{
		st->provider = SMS_GENERIC;
		build_generic(d, cc, m, to,
					  cc->transliterate ? (char *) pg_any_to_server(text, strlen(text), PG_UTF8) : r->body,
					  &count);
	}
	if (d->host == NULL)
		d->host = transport_url_host(d->url, psprintf("setting \"base_url\" of channel \"%s\"", cc->name), false);
}

/* ----------------------------------------------------------------
 * Setup: no transaction
 * ----------------------------------------------------------------
 */

static void
sms_setup(Delivery *d, CURL *easy)
{
	SmsState   *st = d->state;

	transport_setup_http(d, easy, st->response, st->tls_verify, st->ca_file);
	if (st->username)
	{
		curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		curl_easy_setopt(easy, CURLOPT_USERNAME, st->username);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, st->password);
	}
}

/* ----------------------------------------------------------------
 * Classify: no transaction, never raises
 * ----------------------------------------------------------------
 */

static void
set_provider_id(Delivery *d, const char *id)
{
	if (id && *id)
		d->provider_id = MemoryContextStrdup(d->cxt, id);
}

static void
classify_twilio(Delivery *d, ResponseBuffer *rb)
{
	JsonScanField f[] = {{"sid"}, {"code"}, {"message"}};
	const char *code;

	json_scan(rb->data, rb->len, f, lengthof(f));
	d->outcome = transport_http_outcome(d->http_status);
	if (d->outcome == OUTCOME_SENT)
	{
		set_provider_id(d, f[0].value);
		return;
	}
	code = f[1].value;
	/* too many requests, rate limit, queue full: "not now" whatever the status */
	if (code && (strcmp(code, "20429") == 0 || strcmp(code, "14107") == 0 ||
				 strcmp(code, "21611") == 0))
		d->outcome = OUTCOME_TRANSIENT;
	transport_set_error(d,
						code ? psprintf("Twilio error %s (HTTP %ld)", code, d->http_status) :
						psprintf("Twilio: HTTP %ld", d->http_status),
						f[2].value ? f[2].value : rb->data);
}

/*
 * SMSAPI's error codes.  Transient: the request was fine but SMSAPI could
 * not take it now - 8 (error in the request, to be reported: theirs), 52
 * (too many messages to one number in a minute), 200 (submission failed),
 * 201 (internal error), 202/203 (too many requests), 999 (internal error).
 * Sent: 53 (this idx was already sent, with check_idx=1: a retry of a
 * message whose answer was lost).  Everything else is about the request,
 * the number or the account and fails the message: 11 (text too long or
 * missing), 12 (more parts than max_parts), 13 (no valid number), 14 (bad
 * sender name), 17, 18, 20, 27 (bad parameters), 57 (number blacklisted),
 * 101 (authorisation failed), 102 (bad login), 103 (no points left), 104,
 * 105 (IP not allowed), 110 (action not allowed), ...
 */
static DeliveryOutcome
smsapi_outcome(int code)
{
	switch (code)
	{
		case 8:
		case 52:
		case 200:
		case 201:
		case 202:
		case 203:
		case 999:
			return OUTCOME_TRANSIENT;
		case 53:
			return OUTCOME_SENT;
		default:
			return OUTCOME_PERMANENT;
	}
}

static void
classify_smsapi(Delivery *d, ResponseBuffer *rb)
{
	JsonScanField f[] = {{"error"}, {"message"}, {"list.0.id"}};
	const char *error;

	json_scan(rb->data, rb->len, f, lengthof(f));
	error = f[0].value;

	/* the pre-JSON answers, should format=json be ignored: OK:id:points, ERROR:n */
	if (error == NULL && f[2].value == NULL)
	{
		if (strncmp(rb->data, "OK:", 3) == 0)
			f[2].value = pnstrdup(rb->data + 3, strcspn(rb->data + 3, ":\r\n"));
		else if (strncmp(rb->data, "ERROR:", 6) == 0)
			error = pnstrdup(rb->data + 6, strcspn(rb->data + 6, ":\r\n"));
	}

	if (error)
	{
		int			code = atoi(error);

		d->outcome = smsapi_outcome(code);
		if (d->http_status >= 500 || d->http_status == 429)
			d->outcome = OUTCOME_TRANSIENT;
		transport_set_error(d,
							psprintf(d->outcome == OUTCOME_SENT ?
									 "SMSAPI error %d: already sent with this idx" : "SMSAPI error %d",
									 code),
							f[1].value);
		return;
	}

	d->outcome = transport_http_outcome(d->http_status);
	if (d->outcome == OUTCOME_SENT)
		set_provider_id(d, f[2].value);
	else
		transport_set_error(d, psprintf("SMSAPI: HTTP %ld", d->http_status), rb->data);
}

static void
classify_generic(Delivery *d, SmsState *st, ResponseBuffer *rb)
{
	d->outcome = transport_http_outcome(d->http_status);
	if (d->outcome != OUTCOME_SENT)
	{
		transport_set_error(d, psprintf("HTTP status %ld", d->http_status), rb->data);
		return;
	}
	if (st->id_field)
	{
		JsonScanField f[] = {{st->id_field}};

		json_scan(rb->data, rb->len, f, 1);
		set_provider_id(d, f[0].value);
	}
}

static void
sms_classify(Delivery *d)
{
	SmsState   *st = d->state;

	if (d->curl_code != CURLE_OK)
	{
		transport_classify_curl(d);
		return;
	}
	switch (st->provider)
	{
		case SMS_TWILIO:
			classify_twilio(d, st->response);
			break;
		case SMS_SMSAPI:
			classify_smsapi(d, st->response);
			break;
		case SMS_GENERIC:
			classify_generic(d, st, st->response);
			break;
	}
}

/*
 * The channel definition: the provider and its credentials, or a generic
 * gateway's request templates (channel_parse()).
 */
static const char *const http_schemes[] = {"http", "https", NULL};

static const char *const sms_settings[] = {
	"provider", "from", "base_url", "default_country_code", "account_sid",
	"messaging_service_sid", "unicode", "tls_verify", "ca_file", "url",
	"method", "headers", "body", "content_type", "id_field", "inbound_url",
	"inbound_window", NULL
};

/* A template setting of a generic SMS gateway: compiles, or an error. */
static char *
get_template(Jsonb *settings, const char *key, ChannelConfig *cc)
{
	char	   *source = channel_get_string(settings, key, cc->name, false);

	if (source)
		template_check_syntax(source, channel_what_setting(key, cc->name));
	return source;
}

static void
parse_sms_generic(Jsonb *settings, ChannelConfig *cc)
{
	ListCell   *lc;

	cc->method = channel_get_string(settings, "method", cc->name, false);
	if (cc->method == NULL)
		cc->method = pstrdup("POST");
	else if (strcmp(cc->method, "GET") != 0 && strcmp(cc->method, "POST") != 0 &&
			 strcmp(cc->method, "PUT") != 0 && strcmp(cc->method, "PATCH") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: \"%s\"", channel_what_setting("method", cc->name), cc->method),
				 errhint("Valid methods are: GET, POST, PUT, PATCH.")));

	cc->url = get_template(settings, "url", cc);
	channel_require(cc->url, "url", cc, "A generic SMS gateway needs the URL to call (a template).");
	(void) url_template_authority(cc->url, channel_what_setting("url", cc->name));
	cc->body = get_template(settings, "body", cc);
	if (strcmp(cc->method, "GET") == 0)
	{
		if (cc->body)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("channel \"%s\" sends GET requests, which carry no body", cc->name),
					 errhint("Put the parameters into the \"url\" template, or use POST.")));
	}
	else
		channel_require(cc->body, "body", cc,
				"A generic SMS gateway needs the request body (a template), or method GET.");

	cc->content_type = channel_get_string(settings, "content_type", cc->name, false);
	if (cc->content_type)
		validate_header_value(cc->content_type, channel_what_setting("content_type", cc->name));
	else
		cc->content_type = pstrdup("application/x-www-form-urlencoded");

	cc->headers = channel_get_headers(settings, "headers", cc);
	foreach(lc, cc->headers)
		template_check_syntax(lfirst(lc), channel_what_setting("headers", cc->name));

	cc->id_field = channel_get_string(settings, "id_field", cc->name, false);
}

/*
 * Checked by create_channel(): the inbound settings of an SMS channel
 * (replies, outbox/inbound.c).
 */
static void
check_inbound_settings(Jsonb *settings, const char *channel, const char *provider)
{
	char	   *url = jsonb_get_string(settings, "inbound_url",
									   psprintf("setting \"inbound_url\" of channel \"%s\"", channel));
	char	   *window = jsonb_get_string(settings, "inbound_window",
										  psprintf("setting \"inbound_window\" of channel \"%s\"", channel));

	if ((url || window) && strcmp(provider, "twilio") != 0 && strcmp(provider, "smsapi") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"%s\" of channel \"%s\" applies only to providers twilio and smsapi",
						url ? "inbound_url" : "inbound_window", channel),
				 errhint("Inbound replies are understood from providers twilio and smsapi.")));
	if (url && strcmp(provider, "twilio") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"inbound_url\" of channel \"%s\" applies only to provider twilio", channel),
				 errhint("SMSAPI requests are checked by the secret \"inbound_secret\" alone.")));
	if (url)
	{
		static const char *const schemes[] = {"http", "https", NULL};

		validate_url(url, schemes, psprintf("setting \"inbound_url\" of channel \"%s\"", channel));
	}
	if (window)
	{
		Interval   *iv;

		iv = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(window),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		if (iv->time <= 0 && iv->day <= 0 && iv->month <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("setting \"inbound_window\" of channel \"%s\" must be positive", channel),
					 errhint("Give how long after a message a reply still answers it, such as \"7 days\".")));
	}
}

static void
parse_sms(Jsonb *settings, Jsonb *secrets, ChannelConfig *cc)
{
	char	   *unicode = channel_get_string(settings, "unicode", cc->name, false);

	cc->provider = channel_get_string(settings, "provider", cc->name, false);
	channel_require(cc->provider, "provider", cc, "Valid providers are: twilio, smsapi, generic.");
	cc->sender = channel_get_string(settings, "from", cc->name, false);
	if (cc->sender)
		validate_header_value(cc->sender, channel_what_setting("from", cc->name));
	cc->base_url = channel_get_string(settings, "base_url", cc->name, false);
	if (cc->base_url)
		validate_url(cc->base_url, http_schemes, channel_what_setting("base_url", cc->name));
	cc->default_country_code = channel_get_string(settings, "default_country_code", cc->name, false);
	if (cc->default_country_code)
	{
		const char *p = cc->default_country_code + (cc->default_country_code[0] == '+');

		if (*p == '\0' || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: \"%s\"", channel_what_setting("default_country_code", cc->name),
							cc->default_country_code),
					 errhint("A country calling code is one to three digits, such as \"48\".")));
	}
	else if (reminder_default_country_code && *reminder_default_country_code)
		cc->default_country_code = pstrdup(reminder_default_country_code);

	if (unicode == NULL || strcmp(unicode, "allow") == 0)
		cc->transliterate = false;
	else if (strcmp(unicode, "transliterate") == 0)
		cc->transliterate = true;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value \"%s\" for %s", unicode, channel_what_setting("unicode", cc->name)),
				 errhint("Valid values are: allow, transliterate.")));

	channel_parse_tls(settings, cc);

	if (strcmp(cc->provider, "twilio") == 0)
	{
		char	   *sid = channel_get_string(settings, "account_sid", cc->name, false);

		if (sid == NULL)
			sid = channel_get_string(secrets, "account_sid", cc->name, true);
		channel_require(sid, "account_sid", cc, "Give the Twilio Account SID in settings or secrets.");
		if (strspn(sid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != strlen(sid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid Twilio Account SID \"%s\" for channel \"%s\"", sid, cc->name),
					 errhint("An Account SID is \"AC\" followed by 32 hexadecimal digits.")));
		cc->account_sid = sid;
		channel_require_secret(channel_get_string(secrets, "auth_token", cc->name, true), "auth_token", cc,
					   "Pass the Twilio auth token in the secrets argument.");
		cc->messaging_service_sid = channel_get_string(settings, "messaging_service_sid", cc->name, false);
		if (cc->sender == NULL && cc->messaging_service_sid == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("channel \"%s\" needs setting \"from\" or \"messaging_service_sid\"", cc->name),
					 errhint("Twilio sends from a phone number or a messaging service.")));
		if (cc->base_url == NULL)
			cc->base_url = pstrdup("https://api.twilio.com");
	}
	else if (strcmp(cc->provider, "smsapi") == 0)
	{
		channel_require_secret(channel_get_string(secrets, "token", cc->name, true), "token", cc,
					   "Pass the SMSAPI OAuth token in the secrets argument.");
		if (cc->base_url == NULL)
			cc->base_url = pstrdup("https://api.smsapi.pl");
	}
	else if (strcmp(cc->provider, "generic") == 0)
		parse_sms_generic(settings, cc);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown SMS provider \"%s\" for channel \"%s\"", cc->provider, cc->name),
				 errhint("Valid providers are: twilio, smsapi, generic.")));
	check_inbound_settings(settings, cc->name, cc->provider);

	if (strcmp(cc->provider, "generic") != 0)
	{
		static const char *const generic_only[] = {"url", "method", "headers", "body", "content_type", "id_field", NULL};

		for (int i = 0; generic_only[i]; i++)
			if (jsonb_get(settings, generic_only[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("setting \"%s\" of channel \"%s\" applies only to provider generic",
								generic_only[i], cc->name),
						 errhint("Use \"base_url\" to point a provider preset elsewhere.")));
	}
}

/*
 * At schedule(): a phone number, stored in E.164 with the channel's
 * default country code.
 */
static Jsonb *
sms_check_recipient(ChannelConfig *cc, Jsonb *recipient)
{
	char	   *s = recipient_string(recipient, "phone");
	char	   *e164;

	if (s == NULL)
		recipient_missing_address(cc, "phone number", "{\"phone\": \"+48 601 234 567\"}");
	/* a new jsonb only if normalising changed the number */
	e164 = normalize_phone(s, cc->default_country_code, "recipient \"phone\"");
	if (strcmp(e164, s) != 0)
		recipient = jsonb_set_text(recipient, "phone", e164);
	return recipient;
}

/* A generic gateway's host (its url is a template), or the provider's API. */
static List *
sms_destinations(ChannelConfig *cc)
{
	List	   *dest = NIL;

	if (cc->provider && strcmp(cc->provider, "generic") == 0)
		dest = lappend(dest, psprintf("gateway %s", url_template_authority(cc->url, "the url")));
	else
		channel_destination_url(&dest, cc->base_url);
	return dest;
}

const TransportOps transport_sms_ops = {
	.kind = CHANNEL_SMS,
	.network = true,
	.build = sms_build,
	.setup = sms_setup,
	.classify = sms_classify,
	.cleanup = NULL,

	/* a gateway's secrets are free-form: generic templates name them */
	.settings_keys = sms_settings,
	.any_secrets = true,
	.parse = parse_sms,

	.address_key = "phone",
	.check_recipient = sms_check_recipient,
	.destinations = sms_destinations,

	.body_escape = RENDER_ESCAPE_NONE,
	.html_escape = RENDER_ESCAPE_HTML,
};
