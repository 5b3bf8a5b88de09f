/*-------------------------------------------------------------------------
 *
 * transport_util.c
 *	  What the per-kind transports share: the host of a URL for the host
 *	  policy, percent-encoding, TLS options, request headers, a response
 *	  buffer larger than the excerpt kept on the attempt row, the usual
 *	  reading of an HTTP status, and the verdict on a transfer that failed
 *	  below it (transport_classify_curl).  Nothing here calls back into the
 *	  driver (transport.c).
 *
 *	  The build-time helpers may raise errors; the callbacks and the
 *	  classify-time helpers never do (see transport.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "reminder.h"
#include "transport/transport.h"

#ifndef REMINDER_VERSION
#define REMINDER_VERSION "unknown"
#endif

#define ERROR_EXCERPT	200		/* response bytes quoted in last_error */

/*
 * The host part of url, for the host policy.  An invalid URL is an error
 * naming "what"; the URL itself is left out of the message when it may
 * hold secrets (a generic gateway's templates can put them there).
 */
char *
transport_url_host(const char *url, const char *what, bool may_hold_secrets)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL;
	char	   *result;
	CURLUcode	rc;

	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	rc = curl_url_set(u, CURLUPART_URL, url, 0);
	/* an international name as libcurl connects to it, for name rules */
	if (rc == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, CURLU_PUNYCODE) != CURLUE_OK)
	{
		/* a failed get may still have allocated the part (found by fuzzing) */
		curl_free(host);
		host = NULL;
		rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	}
	curl_url_cleanup(u);
	if (rc != CURLUE_OK)
	{
		if (may_hold_secrets)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s does not give a valid URL", what),
					 errdetail("%s.", curl_url_strerror(rc)),
					 errhint("Values in the URL template are percent-encoded; check its literal parts.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid URL \"%s\" in %s", url, what),
					 errdetail("%s.", curl_url_strerror(rc))));
	}
	/* IPv6 literals come back bracketed */
	if (host[0] == '[')
		result = pnstrdup(host + 1, strlen(host) - 2);
	else
		result = pstrdup(host);
	curl_free(host);
	return result;
}

/*
 * Append s percent-encoded: everything but RFC 3986's unreserved
 * characters.  As a form value (application/x-www-form-urlencoded) a
 * space is "+".  s should be UTF-8.
 */
void
transport_percent_encode(StringInfo buf, const char *s, bool form)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			appendStringInfoChar(buf, *p);
		else if (*p == ' ' && form)
			appendStringInfoChar(buf, '+');
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[*p >> 4]);
			appendStringInfoChar(buf, hex[*p & 0x0F]);
		}
	}
}

/* "&name=value" (no "&" first), value form-encoded; skipped if value is NULL */
void
transport_form_field(StringInfo buf, const char *name, const char *value)
{
	if (value == NULL)
		return;
	if (buf->len > 0)
		appendStringInfoChar(buf, '&');
	transport_percent_encode(buf, name, true);
	appendStringInfoChar(buf, '=');
	transport_percent_encode(buf, value, true);
}

/*
 * Text in the database encoding as UTF-8, which every transport speaks:
 * always a copy in the current memory context (the delivery's, during
 * build), never s itself, which may live in memory freed before the
 * transfer runs.
 */
char *
transport_to_utf8(const char *s)
{
	char	   *utf8;

	if (s == NULL)
		return NULL;
	utf8 = (char *) pg_server_to_any(s, strlen(s), PG_UTF8);
	return utf8 == s ? pstrdup(s) : utf8;
}

/* The headers every HTTP request of these transports carries (no body: no type). */
void
transport_add_http_headers(Delivery *d, const char *content_type)
{
	if (content_type)
		d->headers = lappend(d->headers, psprintf("Content-Type: %s", content_type));
	d->headers = lappend(d->headers, psprintf("Idempotency-Key: %s", d->idempotency_key));
	d->headers = lappend(d->headers, "User-Agent: reminder/" REMINDER_VERSION);
	/* no "Expect: 100-continue" round trip */
	d->headers = lappend(d->headers, "Expect:");
}

/* A response buffer for the transfer, allocated now in the delivery. */
ResponseBuffer *
transport_response_buffer(Delivery *d, size_t cap)
{
	ResponseBuffer *rb = MemoryContextAllocZero(d->cxt, sizeof(ResponseBuffer));

	rb->d = d;
	rb->cap = cap;
	rb->data = MemoryContextAlloc(d->cxt, cap + 1);
	rb->data[0] = '\0';
	return rb;
}

/*
 * The whole response up to the buffer's size (provider answers run longer
 * than the excerpt of the attempt row: Twilio's puts the sid after the
 * echoed body), and its first bytes in the delivery for the attempt row.
 * A libcurl callback: no palloc, no ereport.
 */
size_t
transport_response_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	ResponseBuffer *rb = userdata;
	Delivery   *d = rb->d;
	size_t		len = size * nmemb;
	size_t		n;

	n = Min(len, rb->cap - rb->len);
	memcpy(rb->data + rb->len, ptr, n);
	rb->len += n;
	rb->data[rb->len] = '\0';

	n = Min(len, DELIVERY_RESPONSE_MAX - d->response_len);
	memcpy(d->response + d->response_len, ptr, n);
	d->response_len += n;
	d->response[d->response_len] = '\0';
	return len;
}

/*
 * Configure an HTTP transfer from what build left in the delivery: URL,
 * method, headers, body, the response buffer, TLS.  May raise an error
 * (out of memory), which transport_start() handles.
 */
/* The request itself: URL, headers, method and body. */
void
transport_set_request(Delivery *d, CURL *easy)
{
	ListCell   *lc;

	foreach(lc, d->headers)
	{
		struct curl_slist *next = curl_slist_append(d->slist, lfirst(lc));

		if (next == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		d->slist = next;
	}
	curl_easy_setopt(easy, CURLOPT_URL, d->url);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, d->slist);
	if (strcmp(d->method, "GET") == 0)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, d->body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) d->body_len);
		if (strcmp(d->method, "POST") != 0)
			curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, d->method);
	}
}

void
transport_setup_http(Delivery *d, CURL *easy, ResponseBuffer *rb,
					 bool tls_verify, const char *ca_file)
{
	transport_set_request(d, easy);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, transport_response_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, rb);
	transport_set_tls(easy, tls_verify, ca_file);
}

/* Certificate checks: on unless the channel explicitly turned them off. */
void
transport_set_tls(CURL *easy, bool verify, const char *ca_file)
{
	if (ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
}

/* The usual verdict on an HTTP status: 2xx sent, 408/429/5xx transient. */
DeliveryOutcome
transport_http_outcome(long status)
{
	if (status >= 200 && status < 300)
		return OUTCOME_SENT;
	if (status == 408 || status == 429 || status >= 500)
		return OUTCOME_TRANSIENT;
	return OUTCOME_PERMANENT;
}

/*
 * d->error from a format, in the delivery's memory, with "text" clipped to
 * a readable excerpt on a character boundary.  For classify: no ereport
 * but out of memory.
 */
void
transport_set_error(Delivery *d, const char *prefix, const char *text)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	if (text && *text)
	{
		size_t		len = strlen(text);
		int			valid = pg_encoding_verifymbstr(PG_UTF8, text, (int) Min(len, (size_t) PG_INT32_MAX));

		d->error = psprintf("%s: %.*s", prefix,
							pg_encoding_mbcliplen(PG_UTF8, text, valid, ERROR_EXCERPT),
							text);
	}
	else
		d->error = pstrdup(prefix);
	MemoryContextSwitchTo(old);
}

/*
 * The verdict on a transfer that failed below HTTP (or SMTP): refused by
 * the host policy, malformed, or a network error worth retrying.
 */
void
transport_classify_curl(Delivery *d)
{
	const char *what = curl_easy_strerror(d->curl_code);

	/*
	 * Refused by the host policy: permanent, whatever curl made of the
	 * refused socket (a connect error, or a timeout when it waited for
	 * another address or a connection of the pool meanwhile).
	 */
	if (d->denied[0] != '\0')
	{
		d->outcome = OUTCOME_PERMANENT;
		d->error = MemoryContextStrdup(d->cxt, d->denied);
		return;
	}

	switch (d->curl_code)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
		case CURLE_NOT_BUILT_IN:
		case CURLE_LOGIN_DENIED:
		case CURLE_REMOTE_ACCESS_DENIED:
		case CURLE_TOO_MANY_REDIRECTS:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_FILESIZE_EXCEEDED:
			d->outcome = OUTCOME_PERMANENT;
			break;
		default:
			/* connection refused or reset, timeouts, DNS: try again later */
			d->outcome = OUTCOME_TRANSIENT;
			break;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(d->cxt);

		d->error = d->errbuf[0] ? psprintf("%s: %s", what, d->errbuf) : pstrdup(what);
		MemoryContextSwitchTo(old);
	}
}
