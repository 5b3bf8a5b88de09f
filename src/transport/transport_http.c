/*-------------------------------------------------------------------------
 *
 * transport_http.c
 *	  Webhooks: an HTTP request (POST unless the channel says PUT or PATCH)
 *	  with a JSON body in UTF-8, the message's idempotency key, an optional
 *	  HMAC-SHA256 signature of the exact body, and an optional bearer token
 *	  or HTTP Basic credentials.
 *
 *	  The request goes to the recipient's "url" when it has one, which must
 *	  lie at the channel's own origin or at a host of its "recipient_hosts"
 *	  (check_recipient_url(), at schedule() and again here): the signature
 *	  and credentials never go to a host the channel's owner did not name.
 *
 *	  2xx is sent; 408, 429 and 5xx are transient (Retry-After honoured);
 *	  any other status is permanent.  Redirects are not followed: a webhook
 *	  that moved is a configuration error, and following one could lead a
 *	  request somewhere the channel's owner never named.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "outbox/outbox.h"
#include "render/render.h"
#include "render/template.h"
#include "transport/transport.h"
#include "util/util.h"

#ifndef REMINDER_VERSION
#define REMINDER_VERSION "unknown"
#endif

#define ERROR_EXCERPT	200		/* response bytes quoted in last_error */

typedef struct WebhookState
{
	char	   *username;		/* HTTP Basic, or NULL */
	char	   *password;
} WebhookState;

static bool
is_blank(const char *s)
{
	if (s == NULL)
		return true;
	for (; *s; s++)
		if (!isspace((unsigned char) *s))
			return false;
	return true;
}

/* {"message_id":..,"channel":..,"recipient":{..},"data":{..}} */
static char *
default_body(ClaimedMessage *m)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"message_id\":" INT64_FORMAT ",\"channel\":", m->id);
	escape_json(&buf, m->channel);
	appendStringInfoString(&buf, ",\"recipient\":");
	appendStringInfoString(&buf, JsonbToCString(NULL, &m->recipient->root, VARSIZE(m->recipient)));
	appendStringInfoString(&buf, ",\"data\":");
	appendStringInfoString(&buf, JsonbToCString(NULL, &m->data->root, VARSIZE(m->data)));
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static void
webhook_build(Delivery *d, ChannelConfig *cc, ClaimedMessage *m, RenderedMessage *r)
{
	WebhookState *st = palloc0(sizeof(WebhookState));
	char	   *recipient_url = jsonb_get_text(m->recipient, "url");
	char	   *signing_secret = jsonb_get_text(cc->secrets, "signing_secret");
	char	   *bearer_token = jsonb_get_text(cc->secrets, "bearer_token");
	ListCell   *lc;

	d->state = st;
	if (recipient_url && *recipient_url)
	{
		/* the channel may have changed since the message was scheduled */
		check_recipient_url(cc, recipient_url);
		d->url = recipient_url;
	}
	else
		d->url = pstrdup(cc->url);
	d->host = transport_url_host(d->url, "the webhook URL", false);
	d->method = pstrdup(cc->method ? cc->method : "POST");
	/* JSON is UTF-8 (RFC 8259), whatever the database's encoding */
	d->body = transport_to_utf8(is_blank(r->body) ? default_body(m) : r->body);
	d->body_len = strlen(d->body);
	validate_payload_size(d->body_len, "webhook body");

	d->headers = lappend(d->headers, "Content-Type: application/json");
	d->headers = lappend(d->headers, psprintf("Idempotency-Key: %s", m->idempotency_key));
	d->headers = lappend(d->headers, "User-Agent: reminder/" REMINDER_VERSION);
	/* no "Expect: 100-continue" round trip for large bodies */
	d->headers = lappend(d->headers, "Expect:");
	if (signing_secret && *signing_secret)
		d->headers = lappend(d->headers,
							 psprintf("X-Reminder-Signature: sha256=%s",
									  hmac_sha256_hex(signing_secret, strlen(signing_secret),
													  d->body, d->body_len)));
	if (bearer_token && *bearer_token)
		d->headers = lappend(d->headers, psprintf("Authorization: Bearer %s", bearer_token));
	foreach(lc, cc->headers)
		d->headers = lappend(d->headers, transport_to_utf8(lfirst(lc)));

	/* HTTP Basic: libcurl writes the Authorization header (RFC 7617, UTF-8) */
	st->username = transport_to_utf8(jsonb_get_text(cc->secrets, "username"));
	st->password = transport_to_utf8(jsonb_get_text(cc->secrets, "password"));
}

static void
webhook_setup(Delivery *d, CURL *easy)
{
	WebhookState *st = d->state;

	transport_set_request(d, easy);
	if (st->username && st->password)
	{
		curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		curl_easy_setopt(easy, CURLOPT_USERNAME, st->username);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, st->password);
	}
}

static void
webhook_classify(Delivery *d)
{
	long		status = d->http_status;
	MemoryContext old;

	if (d->curl_code != CURLE_OK)
	{
		transport_classify_curl(d);
		return;
	}

	if (status >= 200 && status < 300)
	{
		d->outcome = OUTCOME_SENT;
		return;
	}
	if (status == 408 || status == 429 || status >= 500)
		d->outcome = OUTCOME_TRANSIENT;
	else
		d->outcome = OUTCOME_PERMANENT;

	old = MemoryContextSwitchTo(d->cxt);
	if (d->response_len > 0)
		d->error = psprintf("HTTP status %ld: %.*s", status,
							(int) pg_mbcliplen(d->response, d->response_len, ERROR_EXCERPT),
							d->response);
	else
		d->error = psprintf("HTTP status %ld", status);
	MemoryContextSwitchTo(old);
}

/*
 * The channel definition: the endpoint, the request, the hosts recipients
 * may name and the credentials (channel_parse()).
 */
static const char *const http_schemes[] = {"http", "https", NULL};

static const char *const webhook_settings[] = {
	"url", "method", "headers", "recipient_hosts", NULL
};

static const char *const webhook_secrets[] = {
	"signing_secret", "bearer_token", "username", "password", NULL
};

/*
 * A webhook authenticates with a bearer token or HTTP Basic (username and
 * password), not both: each is an Authorization header.
 */
static void
parse_webhook_secrets(Jsonb *secrets, ChannelConfig *cc)
{
	char	   *user = channel_get_string(secrets, "username", cc->name, true);
	char	   *password = channel_get_string(secrets, "password", cc->name, true);
	char	   *bearer = channel_get_string(secrets, "bearer_token", cc->name, true);

	(void) channel_get_string(secrets, "signing_secret", cc->name, true);
	if ((user == NULL) != (password == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel \"%s\" has only one of the secrets \"username\" and \"password\"", cc->name),
				 errhint("HTTP Basic authentication needs both, or neither.")));
	if (user && strchr(user, ':'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret \"username\" of channel \"%s\" contains \":\"", cc->name),
				 errdetail("HTTP Basic authentication separates the user name from the password with \":\".")));
	if (user && bearer)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel \"%s\" has both secret \"bearer_token\" and secrets \"username\" and \"password\"", cc->name),
				 errdetail("Each is sent as the Authorization header; a request carries one."),
				 errhint("Give either the bearer token or the user name and password.")));
}

static void
parse_http_method(ChannelConfig *cc, Jsonb *settings)
{
	cc->method = channel_get_string(settings, "method", cc->name, false);
	if (cc->method == NULL)
		cc->method = pstrdup("POST");
	else if (strcmp(cc->method, "POST") != 0 && strcmp(cc->method, "PUT") != 0 &&
			 strcmp(cc->method, "PATCH") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: \"%s\"", channel_what_setting("method", cc->name), cc->method),
				 errhint("Valid methods are: POST, PUT, PATCH.")));
}

static void
webhook_parse(Jsonb *settings, Jsonb *secrets, ChannelConfig *cc)
{
	channel_require(cc->url, "url", cc, "Give the endpoint as \"https://example.com/hook\".");
	validate_url(cc->url, http_schemes, channel_what_setting("url", cc->name));
	parse_http_method(cc, settings);
	cc->headers = channel_get_headers(settings, "headers", cc);
	cc->recipient_hosts = channel_get_recipient_hosts(settings, cc);
	parse_webhook_secrets(secrets, cc);
}

/*
 * At schedule(): the channel's credentials go with the request, so a
 * recipient's own "url" only where the channel says.
 */
static Jsonb *
webhook_check_recipient(ChannelConfig *cc, Jsonb *recipient)
{
	char	   *url = recipient_string(recipient, "url");

	if (url != NULL)
		check_recipient_url(cc, url);
	return recipient;
}

/* The endpoint, and the hosts recipients may name in their own "url". */
static List *
webhook_destinations(ChannelConfig *cc)
{
	List	   *dest = NIL;
	ListCell   *lc;

	channel_destination_url(&dest, cc->url);
	foreach(lc, cc->recipient_hosts)
		dest = lappend(dest, psprintf("recipient host %s", host_pattern_text(lfirst(lc))));
	return dest;
}

const TransportOps transport_webhook_ops = {
	.kind = CHANNEL_WEBHOOK,
	.network = true,
	.build = webhook_build,
	.setup = webhook_setup,
	.classify = webhook_classify,

	.settings_keys = webhook_settings,
	.secrets_keys = webhook_secrets,
	.parse = webhook_parse,

	.check_recipient = webhook_check_recipient,
	.destinations = webhook_destinations,

	/* the body is JSON: values go in as JSON strings */
	.body_escape = RENDER_ESCAPE_JSON,
	.html_escape = RENDER_ESCAPE_HTML,
};
