/*-------------------------------------------------------------------------
 *
 * transport_smtp.c
 *	  Email over SMTP (smtp://, with STARTTLS when offered, required or
 *	  never) or SMTPS (smtps://), with AUTH when the channel has
 *	  credentials.
 *
 *	  The message is built with libcurl's MIME API: a text/plain part, and
 *	  next to it a text/html part under multipart/alternative when the
 *	  template has HTML; each part UTF-8, quoted-printable (or base64 when
 *	  mostly non-ASCII).  Header fields are composed by mail.c: From, To,
 *	  Cc, Reply-To, Subject (RFC 2047 encoded words when not ASCII or when
 *	  a word would not fit on a line), all folded at 78 characters, Date,
 *	  a Message-ID made from the idempotency key, List-Unsubscribe when the
 *	  message has an unsubscribe link.  Bcc addresses (the recipient's and
 *	  the channel's) get the mail through RCPT TO only; no Bcc field is
 *	  written.  Every recipient must be accepted, or the message is not
 *	  sent: a refused Bcc fails the message rather than the To address
 *	  silently missing its copy.
 *
 *	  Connections are reused: the easy handles of one server share the
 *	  multi handle's connection cache (transport.c), so consecutive
 *	  messages go out over one SMTP session, MAIL FROM after MAIL FROM.
 *
 *	  The last SMTP reply is kept on the attempt (smtp_reply) and decides:
 *	  4xx is transient, 5xx permanent; below SMTP, libcurl's error does.
 *	  A queue id in the final reply ("queued as X", "id=X") becomes the
 *	  provider message id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "outbox/outbox.h"
#include "render/render.h"
#include "render/template.h"
#include "transport/mail.h"
#include "transport/transport.h"
#include "util/util.h"

#define SMTP_REPLY_MAX	512

typedef struct SmtpState
{
	char	   *mail_from;		/* "<addr>" */
	List	   *rcpt;			/* "<addr>" of To, Cc and Bcc, each once */
	char	   *text;			/* CRLF line ends, UTF-8 */
	const char *text_encoder;
	char	   *html;			/* NULL: text only */
	const char *html_encoder;
	char	   *ics;			/* a calendar invite (ical.c), or NULL */
	const char *ics_method;		/* its METHOD: REQUEST or CANCEL */
	char	   *ics_type;		/* text/calendar; ...; method=... */
	const char *ics_encoder;
	char	   *username;		/* NULL: no AUTH */
	char	   *password;
	StartTlsMode starttls;
	bool		tls_verify;
	char	   *ca_file;

	/* the transfer's own curl objects, freed by smtp_cleanup */
	curl_mime  *mime;
	struct curl_slist *rcpt_list;

	/* the server's latest reply, kept by reply_cb */
	char		reply[SMTP_REPLY_MAX + 1];
	size_t		reply_len;
	bool		reply_done;		/* its last line was the final one */
} SmtpState;

/* ----------------------------------------------------------------
 * Build: in the claim transaction
 * ----------------------------------------------------------------
 */

/* Lines end in CRLF, as SMTP and the MIME encoders expect. */
static char *
crlf_lines(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const char *p = s; *p; p++)
	{
		if (*p == '\r' && p[1] == '\n')
			continue;			/* the \n that follows writes both */
		if (*p == '\n' || *p == '\r')
			appendStringInfoString(&buf, "\r\n");
		else
			appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

/* quoted-printable for mostly-ASCII text, base64 when that would bloat it */
static const char *
encoder_for(const char *s)
{
	size_t		high = 0;
	size_t		len = strlen(s);

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p >= 0x80)
			high++;
	return high * 3 > len ? "base64" : "quoted-printable";
}

static void
add_rcpt(SmtpState *st, const char *addr, const char *what)
{
	ListCell   *lc;
	char	   *bracketed;

	validate_email(addr, what);
	bracketed = psprintf("<%s>", addr);
	foreach(lc, st->rcpt)
		if (pg_strcasecmp(lfirst(lc), bracketed) == 0)
			return;
	st->rcpt = lappend(st->rcpt, bracketed);
}

/* The addresses under key of the recipient: a string or an array of them. */
static List *
recipient_addresses(Jsonb *recipient, const char *key)
{
	JsonbValue *v = jsonb_get(recipient, key);
	List	   *result = NIL;

	if (v == NULL || v->type == jbvNull)
		return NIL;
	if (v->type == jbvString)
		return list_make1(pnstrdup(v->val.string.val, v->val.string.len));
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			if (tok == WJB_ELEM && e.type == jbvString)
				result = lappend(result, pnstrdup(e.val.string.val, e.val.string.len));
	}
	return result;
}

static void
smtp_build(Delivery *d, ChannelConfig *cc, ClaimedMessage *m, RenderedMessage *r)
{
	SmtpState  *st = palloc0(sizeof(SmtpState));
	char	   *from_name;
	char	   *from_addr;
	char	   *to_addr = jsonb_get_text(m->recipient, "email");
	char	   *to_name = transport_to_utf8(jsonb_get_text(m->recipient, "name"));
	List	   *cc_addrs = recipient_addresses(m->recipient, "cc");
	List	   *bcc_addrs = list_concat(recipient_addresses(m->recipient, "bcc"),
										cc->bcc);
	ListCell   *lc;

	d->state = st;
	d->url = pstrdup(cc->url);
	d->host = transport_url_host(cc->url, psprintf("setting \"url\" of channel \"%s\"", cc->name), false);
	d->method = "SMTP";

	if (to_addr == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient has no email address for channel \"%s\"", cc->name)));

	/* the envelope */
	mail_split_mailbox(cc->from, &from_name, &from_addr);
	st->mail_from = psprintf("<%s>", from_addr);
	add_rcpt(st, to_addr, "recipient \"email\"");
	foreach(lc, cc_addrs)
		add_rcpt(st, lfirst(lc), "recipient \"cc\"");
	foreach(lc, bcc_addrs)
		add_rcpt(st, lfirst(lc), "Bcc address");

	/* the header fields */
	d->headers = lappend(d->headers, mail_mailbox("From", transport_to_utf8(from_name), from_addr));
	d->headers = lappend(d->headers, mail_mailbox("To", to_name, to_addr));
	if (cc_addrs != NIL)
	{
		MailHeader	h;

		mail_header_begin(&h, "Cc");
		foreach(lc, cc_addrs)
			mail_header_token(&h, foreach_current_index(lc) > 0 ? "," : "", lfirst(lc));
		d->headers = lappend(d->headers, mail_header_end(&h));
	}
	if (cc->reply_to)
	{
		char	   *name;
		char	   *addr;

		mail_split_mailbox(cc->reply_to, &name, &addr);
		d->headers = lappend(d->headers, mail_mailbox("Reply-To", transport_to_utf8(name), addr));
	}
	if (r->subject && *r->subject)
		d->headers = lappend(d->headers, mail_unstructured("Subject", transport_to_utf8(r->subject)));
	d->headers = lappend(d->headers, psprintf("Date: %s", mail_date(GetCurrentTimestamp())));
	d->headers = lappend(d->headers,
						 psprintf("Message-ID: %s",
								  mail_message_id(m->idempotency_key, mail_address_domain(from_addr))));
	if (r->unsubscribe_url && cc->list_unsubscribe != LIST_UNSUBSCRIBE_NEVER)
	{
		static const char *const link_schemes[] = {"https", "http", "mailto", NULL};

		validate_url(r->unsubscribe_url, link_schemes, "links.unsubscribe");
		if (strchr(r->unsubscribe_url, '>') || strlen(r->unsubscribe_url) > 900)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("links.unsubscribe cannot go into a List-Unsubscribe header"),
					 errdetail("It is longer than 900 bytes or contains \">\".")));
		d->headers = lappend(d->headers, psprintf("List-Unsubscribe: <%s>", r->unsubscribe_url));
		/* one-click (RFC 8058) needs an HTTPS link that takes a POST */
		if (cc->list_unsubscribe == LIST_UNSUBSCRIBE_ONE_CLICK &&
			pg_strncasecmp(r->unsubscribe_url, "https:", 6) == 0)
			d->headers = lappend(d->headers, "List-Unsubscribe-Post: List-Unsubscribe=One-Click");
	}
	/* no out-of-office replies to reminders (RFC 3834) */
	d->headers = lappend(d->headers, "Auto-Submitted: auto-generated");

	/* the body */
	st->text = crlf_lines(transport_to_utf8(r->body ? r->body : ""));
	st->text_encoder = encoder_for(st->text);
	if (r->html && *r->html)
	{
		st->html = crlf_lines(transport_to_utf8(r->html));
		st->html_encoder = encoder_for(st->html);
	}
	st->ics = ical_for_message(m, cc->from, to_name, to_addr, &st->ics_method);
	if (st->ics)
	{
		st->ics_encoder = encoder_for(st->ics);
		st->ics_type = psprintf("text/calendar; charset=UTF-8; method=%s", st->ics_method);
	}
	/* libcurl appends the boundary to the root's type */
	if (st->ics)
		d->headers = lappend(d->headers, "Content-Type: multipart/mixed");
	else if (st->html)
		d->headers = lappend(d->headers, "Content-Type: multipart/alternative");
	d->body = st->text;
	d->body_len = strlen(st->text);

	/* the session */
	st->username = jsonb_get_text(cc->secrets, "username");
	st->password = jsonb_get_text(cc->secrets, "password");
	st->starttls = cc->starttls;
	st->tls_verify = cc->tls_verify;
	st->ca_file = cc->ca_file ? pstrdup(cc->ca_file) : NULL;
}

/* ----------------------------------------------------------------
 * Setup and the transfer: no transaction
 * ----------------------------------------------------------------
 */

/*
 * Server replies come through the header callback, a line at a time;
 * keep the latest complete reply (all its lines).  No palloc, no ereport.
 */
static size_t
reply_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	SmtpState  *st = userdata;
	size_t		len = size * nmemb;
	size_t		line = len;
	size_t		n;

	while (line > 0 && (ptr[line - 1] == '\r' || ptr[line - 1] == '\n'))
		line--;
	/* the answer to QUIT says nothing about the message */
	if (st->reply_done && line >= 3 && strncmp(ptr, "221", 3) == 0)
		return len;
	if (st->reply_done)
	{
		st->reply_len = 0;
		st->reply_done = false;
	}
	if (st->reply_len > 0 && st->reply_len < SMTP_REPLY_MAX)
		st->reply[st->reply_len++] = '\n';
	n = Min(line, SMTP_REPLY_MAX - st->reply_len);
	memcpy(st->reply + st->reply_len, ptr, n);
	st->reply_len += n;
	st->reply[st->reply_len] = '\0';

	/* "250-..." continues, "250 ..." or "250" ends a reply */
	if (line < 4 || ptr[3] != '-')
		st->reply_done = true;
	return len;
}

static void
check(CURLcode rc, const char *what)
{
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(rc == CURLE_OUT_OF_MEMORY ? ERRCODE_OUT_OF_MEMORY : ERRCODE_SYSTEM_ERROR),
				 errmsg("could not build the email: %s: %s", what, curl_easy_strerror(rc))));
}

static curl_mimepart *
add_part(curl_mime *mime, const char *data, const char *type, const char *encoder)
{
	curl_mimepart *part = curl_mime_addpart(mime);

	if (part == NULL)
		check(CURLE_OUT_OF_MEMORY, "curl_mime_addpart");
	check(curl_mime_data(part, data, strlen(data)), "curl_mime_data");
	check(curl_mime_type(part, type), "curl_mime_type");
	check(curl_mime_encoder(part, encoder), "curl_mime_encoder");
	return part;
}

static struct curl_slist *
append(struct curl_slist *list, const char *s)
{
	struct curl_slist *next = curl_slist_append(list, s);

	if (next == NULL)
		check(CURLE_OUT_OF_MEMORY, "curl_slist_append");
	return next;
}

static void
smtp_setup(Delivery *d, CURL *easy)
{
	SmtpState  *st = d->state;
	ListCell   *lc;

	st->mime = curl_mime_init(easy);
	if (st->mime == NULL)
		check(CURLE_OUT_OF_MEMORY, "curl_mime_init");
	if (st->ics == NULL)
	{
		add_part(st->mime, st->text, "text/plain; charset=UTF-8", st->text_encoder);
		if (st->html)
			add_part(st->mime, st->html, "text/html; charset=UTF-8", st->html_encoder);
	}
	else
	{
		/*
		 * As calendar servers send invitations: multipart/mixed of the
		 * alternatives (text, HTML, and the event as text/calendar with
		 * its method, which mail clients offer to add) and the same event
		 * as an invite.ics attachment, for clients that only show those.
		 */
		curl_mimepart *alt = curl_mime_addpart(st->mime);
		curl_mime  *sub;
		curl_mimepart *ics;

		if (alt == NULL)
			check(CURLE_OUT_OF_MEMORY, "curl_mime_addpart");
		sub = curl_mime_init(easy);
		if (sub == NULL)
			check(CURLE_OUT_OF_MEMORY, "curl_mime_init");
		if (curl_mime_subparts(alt, sub) != CURLE_OK)
		{
			curl_mime_free(sub);
			check(CURLE_OUT_OF_MEMORY, "curl_mime_subparts");
		}
		check(curl_mime_type(alt, "multipart/alternative"), "curl_mime_type");
		add_part(sub, st->text, "text/plain; charset=UTF-8", st->text_encoder);
		if (st->html)
			add_part(sub, st->html, "text/html; charset=UTF-8", st->html_encoder);
		add_part(sub, st->ics, st->ics_type, st->ics_encoder);
		ics = add_part(st->mime, st->ics, "application/ics; name=\"invite.ics\"", "base64");
		check(curl_mime_filename(ics, "invite.ics"), "curl_mime_filename");
	}

	foreach(lc, d->headers)
		d->slist = append(d->slist, lfirst(lc));
	foreach(lc, st->rcpt)
		st->rcpt_list = append(st->rcpt_list, lfirst(lc));

	curl_easy_setopt(easy, CURLOPT_URL, d->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(easy, CURLOPT_MAIL_FROM, st->mail_from);
	curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, st->rcpt_list);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, d->slist);
	curl_easy_setopt(easy, CURLOPT_MIMEPOST, st->mime);
	curl_easy_setopt(easy, CURLOPT_USE_SSL,
					 st->starttls == STARTTLS_REQUIRED ? (long) CURLUSESSL_ALL :
					 st->starttls == STARTTLS_NEVER ? (long) CURLUSESSL_NONE :
					 (long) CURLUSESSL_TRY);
	if (st->username)
	{
		curl_easy_setopt(easy, CURLOPT_USERNAME, st->username);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, st->password);
	}
	transport_set_tls(easy, st->tls_verify, st->ca_file);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, reply_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, st);
}

static void
smtp_cleanup(Delivery *d)
{
	SmtpState  *st = d->state;

	if (st == NULL)
		return;
	curl_mime_free(st->mime);
	curl_slist_free_all(st->rcpt_list);
	st->mime = NULL;
	st->rcpt_list = NULL;
}

/* ----------------------------------------------------------------
 * Classify: no transaction, never raises
 * ----------------------------------------------------------------
 */

/* The queue id in a final reply: "queued as X" (Postfix), "id=X" (Exim). */
static char *
queue_id(const char *reply, MemoryContext cxt)
{
	static const char *const markers[] = {"queued as ", "id=", NULL};

	for (int i = 0; markers[i]; i++)
	{
		const char *p = strstr(reply, markers[i]);
		size_t		len;

		if (p == NULL)
			continue;
		p += strlen(markers[i]);
		len = strcspn(p, " \t\r\n;,");
		if (len > 0 && len < 200)
			return MemoryContextStrdup(cxt, pnstrdup(p, len));
	}
	return NULL;
}

static void
smtp_classify(Delivery *d)
{
	SmtpState  *st = d->state;
	long		code = d->http_status;	/* the latest SMTP reply code */
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	if (st->reply_len > 0)
		d->smtp_reply = pnstrdup(st->reply,
								 pg_encoding_verifymbstr(PG_UTF8, st->reply, (int) st->reply_len));
	MemoryContextSwitchTo(old);

	if (d->curl_code == CURLE_OK)
	{
		d->outcome = OUTCOME_SENT;
		if (d->smtp_reply)
			d->provider_id = queue_id(d->smtp_reply, d->cxt);
		return;
	}

	if (code >= 400 && code < 600)
	{
		d->outcome = code < 500 ? OUTCOME_TRANSIENT : OUTCOME_PERMANENT;
		transport_set_error(d, psprintf("SMTP %ld", code), d->smtp_reply);
		return;
	}
	if (d->curl_code == CURLE_USE_SSL_FAILED)
	{
		d->outcome = OUTCOME_PERMANENT;
		transport_set_error(d, "the server does not offer STARTTLS, which the channel requires", NULL);
		return;
	}
	transport_classify_curl(d);
}

/*
 * The channel definition: the SMTP server, the sender, and how the
 * connection is secured (channel_parse()).
 */
static const char *const smtp_schemes[] = {"smtp", "smtps", NULL};

static const char *const smtp_settings[] = {
	"url", "from", "reply_to", "bcc", "starttls", "tls_verify", "ca_file",
	"list_unsubscribe", NULL
};

static const char *const smtp_secrets[] = {"username", "password", NULL};

static void
parse_email(Jsonb *settings, Jsonb *secrets, ChannelConfig *cc)
{
	char	   *starttls = channel_get_string(settings, "starttls", cc->name, false);
	char	   *unsubscribe = channel_get_string(settings, "list_unsubscribe", cc->name, false);
	char	   *user = channel_get_string(secrets, "username", cc->name, true);
	char	   *password = channel_get_string(secrets, "password", cc->name, true);

	channel_require(cc->url, "url", cc, "Give the SMTP server as \"smtp://host:587\" or \"smtps://host:465\".");
	validate_url(cc->url, smtp_schemes, channel_what_setting("url", cc->name));

	cc->from = channel_get_string(settings, "from", cc->name, false);
	channel_require(cc->from, "from", cc, "Give the sender as \"Reminders <noreply@example.com>\".");
	validate_mailbox(cc->from, channel_what_setting("from", cc->name));

	cc->reply_to = channel_get_string(settings, "reply_to", cc->name, false);
	if (cc->reply_to)
		validate_mailbox(cc->reply_to, channel_what_setting("reply_to", cc->name));

	cc->bcc = validate_email_list(settings, "bcc", channel_what_setting("bcc", cc->name));

	if (starttls == NULL || strcmp(starttls, "when_offered") == 0)
		cc->starttls = STARTTLS_WHEN_OFFERED;
	else if (strcmp(starttls, "required") == 0)
		cc->starttls = STARTTLS_REQUIRED;
	else if (strcmp(starttls, "never") == 0)
		cc->starttls = STARTTLS_NEVER;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value \"%s\" for %s", starttls, channel_what_setting("starttls", cc->name)),
				 errhint("Valid values are: required, when_offered, never.")));

	if (unsubscribe == NULL || strcmp(unsubscribe, "one_click") == 0)
		cc->list_unsubscribe = LIST_UNSUBSCRIBE_ONE_CLICK;
	else if (strcmp(unsubscribe, "link") == 0)
		cc->list_unsubscribe = LIST_UNSUBSCRIBE_LINK;
	else if (strcmp(unsubscribe, "never") == 0)
		cc->list_unsubscribe = LIST_UNSUBSCRIBE_NEVER;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value \"%s\" for %s", unsubscribe, channel_what_setting("list_unsubscribe", cc->name)),
				 errhint("Valid values are: one_click, link, never.")));

	channel_parse_tls(settings, cc);

	if ((user == NULL) != (password == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel \"%s\" has only one of the secrets \"username\" and \"password\"", cc->name),
				 errhint("SMTP authentication needs both, or neither.")));
}

/*
 * At schedule(): an email address to send to, and cc and bcc lists that
 * hold addresses.
 */
static Jsonb *
smtp_check_recipient(ChannelConfig *cc, Jsonb *recipient)
{
	if (recipient_string(recipient, "email") == NULL)
		recipient_missing_address(cc, "email address", "{\"email\": \"ada@example.com\"}");
	(void) validate_email_list(recipient, "cc", "recipient \"cc\"");
	(void) validate_email_list(recipient, "bcc", "recipient \"bcc\"");
	return recipient;
}

/* The server, and whether the password may go over a plain connection. */
static List *
smtp_destinations(ChannelConfig *cc)
{
	List	   *dest = NIL;

	channel_destination_url(&dest, cc->url);
	dest = lappend(dest, pstrdup(cc->starttls == STARTTLS_REQUIRED ? "STARTTLS required" :
								 cc->starttls == STARTTLS_NEVER ? "STARTTLS never" :
								 "STARTTLS when offered"));
	return dest;
}

const TransportOps transport_smtp_ops = {
	.kind = CHANNEL_EMAIL,
	.network = true,
	.build = smtp_build,
	.setup = smtp_setup,
	.classify = smtp_classify,
	.cleanup = smtp_cleanup,

	.settings_keys = smtp_settings,
	.secrets_keys = smtp_secrets,
	.parse = parse_email,

	.address_key = "email",
	.copies = true,
	.invites = true,
	.check_recipient = smtp_check_recipient,
	.destinations = smtp_destinations,

	.body_escape = RENDER_ESCAPE_NONE,
	.html_escape = RENDER_ESCAPE_HTML,
};
