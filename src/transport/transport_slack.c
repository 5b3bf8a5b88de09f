/*-------------------------------------------------------------------------
 *
 * transport_slack.c
 *	  Slack incoming webhooks: a POST of {"text": ...} with the channel's
 *	  username, icon_emoji, icon_url and channel, and "blocks" when the
 *	  template's html part holds Block Kit JSON.
 *
 *	  Blocks: a template meant for Slack puts a JSON array of blocks in
 *	  its html part (render.c renders it with JSON escaping for Slack).
 *	  An html part that starts with "[" must be such an array, or the
 *	  message fails; any other html part (a template shared with email)
 *	  is left out.  The text body always goes too: Slack shows it in
 *	  notifications and where blocks cannot be shown.
 *
 *	  Slack answers 200 "ok".  4xx (invalid_payload, no_service,
 *	  channel_not_found, channel_is_archived, action_prohibited) is
 *	  permanent; 408, 429 (Retry-After honoured by the worker) and 5xx are
 *	  transient.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "render/render.h"
#include "render/template.h"
#include "transport/transport.h"
#include "util/util.h"

#define SLACK_RESPONSE_MAX	4096

typedef struct SlackState
{
	bool		tls_verify;
	char	   *ca_file;
	ResponseBuffer *response;
} SlackState;

static void
add_field(StringInfo buf, const char *key, const char *value)
{
	if (value == NULL)
		return;
	appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	escape_json(buf, value);
}

/* The html part as a blocks array, or NULL when it is not meant as one. */
static char *
blocks_json(const char *html, const char *template_name)
{
	const char *p = html;
	Jsonb	   *blocks;

	JsonLexContext *lex;
	JsonParseErrorType rc;

	while (*p && isspace((unsigned char) *p))
		p++;
	if (*p != '[')
		return NULL;
	lex = makeJsonLexContextCstringLen((char *) p, strlen(p), GetDatabaseEncoding(), false);
	rc = pg_parse_json(lex, &nullSemAction);
	if (rc != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the html part of template \"%s\" is not an array of Slack blocks",
						template_name),
				 errdetail("%s", json_errdetail(rc, lex)),
				 errhint("An html part that starts with \"[\" is sent to Slack as Block Kit JSON.")));
	blocks = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(p)));
	return JsonbToCString(NULL, &blocks->root, VARSIZE(blocks));
}

static void
slack_build(Delivery *d, ChannelConfig *cc, ClaimedMessage *m, RenderedMessage *r)
{
	SlackState *st = palloc0(sizeof(SlackState));
	StringInfoData body;
	char	   *blocks = r->html ? blocks_json(r->html, m->template_name) : NULL;

	d->state = st;
	d->url = pstrdup(cc->url);
	d->host = transport_url_host(cc->url, psprintf("the URL of channel \"%s\"", cc->name), true);
	d->method = "POST";

	/* in the database encoding until the end, then UTF-8 as Slack wants */
	initStringInfo(&body);
	appendStringInfoString(&body, "{\"text\":");
	escape_json(&body, r->body ? r->body : "");
	add_field(&body, "username", cc->slack_username);
	add_field(&body, "icon_emoji", cc->slack_icon_emoji);
	add_field(&body, "icon_url", cc->slack_icon_url);
	add_field(&body, "channel", cc->slack_channel);
	if (blocks)
		appendStringInfo(&body, ",\"blocks\":%s", blocks);
	appendStringInfoChar(&body, '}');
	d->body = transport_to_utf8(body.data);
	d->body_len = strlen(d->body);
	validate_payload_size(d->body_len, "Slack message");

	transport_add_http_headers(d, "application/json; charset=utf-8");
	st->tls_verify = cc->tls_verify;
	st->ca_file = cc->ca_file ? pstrdup(cc->ca_file) : NULL;
	st->response = transport_response_buffer(d, SLACK_RESPONSE_MAX);
}

static void
slack_setup(Delivery *d, CURL *easy)
{
	SlackState *st = d->state;

	transport_setup_http(d, easy, st->response, st->tls_verify, st->ca_file);
}

static void
slack_classify(Delivery *d)
{
	SlackState *st = d->state;

	if (d->curl_code != CURLE_OK)
	{
		transport_classify_curl(d);
		return;
	}
	d->outcome = transport_http_outcome(d->http_status);
	if (d->outcome != OUTCOME_SENT)
		transport_set_error(d, psprintf("Slack: HTTP %ld", d->http_status),
							st->response->data);
}

/*
 * The channel definition: the incoming webhook's URL (better kept as a
 * secret: it is one) and how the message shows (channel_parse()).
 */
static const char *const http_schemes[] = {"http", "https", NULL};

static const char *const slack_settings[] = {
	"url", "username", "icon_emoji", "icon_url", "channel", "tls_verify",
	"ca_file", NULL
};

static const char *const slack_secrets[] = {"url", NULL};

static void
slack_parse(Jsonb *settings, Jsonb *secrets, ChannelConfig *cc)
{
	if (cc->url == NULL)
		cc->url = channel_get_string(secrets, "url", cc->name, true);
	channel_require(cc->url, "url", cc, "Give the Slack incoming webhook URL in settings or, better, in secrets.");
	validate_url(cc->url, http_schemes, channel_what_setting("url", cc->name));
	cc->method = pstrdup("POST");
	cc->slack_username = channel_get_string(settings, "username", cc->name, false);
	cc->slack_icon_emoji = channel_get_string(settings, "icon_emoji", cc->name, false);
	cc->slack_icon_url = channel_get_string(settings, "icon_url", cc->name, false);
	cc->slack_channel = channel_get_string(settings, "channel", cc->name, false);
	if (cc->slack_icon_url)
		validate_url(cc->slack_icon_url, http_schemes, channel_what_setting("icon_url", cc->name));
	channel_parse_tls(settings, cc);
}

/*
 * Slack decodes only &amp; &lt; &gt;: turn the quotes HTML escaping made of
 * values back into characters, leaving exactly Slack's own escaping.
 */
static char *
slack_text(char *s)
{
	char	   *out = s;

	for (char *in = s; *in;)
	{
		if (strncmp(in, "&quot;", 6) == 0)
		{
			*out++ = '"';
			in += 6;
		}
		else if (strncmp(in, "&#39;", 5) == 0)
		{
			*out++ = '\'';
			in += 5;
		}
		else
			*out++ = *in++;
	}
	*out = '\0';
	return s;
}

/* The incoming webhook's URL. */
static List *
slack_destinations(ChannelConfig *cc)
{
	List	   *dest = NIL;

	channel_destination_url(&dest, cc->url);
	return dest;
}

const TransportOps transport_slack_ops = {
	.kind = CHANNEL_SLACK,
	.network = true,
	.build = slack_build,
	.setup = slack_setup,
	.classify = slack_classify,
	.cleanup = NULL,

	.settings_keys = slack_settings,
	.secrets_keys = slack_secrets,
	.parse = slack_parse,

	.destinations = slack_destinations,

	/*
	 * Slack text needs & < > as entities (see slack_text), so that values
	 * cannot smuggle in Slack's <!channel> or <url|label> syntax; the html
	 * part holds Block Kit JSON, where values go in as JSON strings.
	 */
	.body_escape = RENDER_ESCAPE_HTML,
	.html_escape = RENDER_ESCAPE_JSON,
	.finish_body = slack_text,
};
