/*-------------------------------------------------------------------------
 *
 * origin.c
 *	  Where a URL connects, as libcurl will connect: its origin (scheme,
 *	  host, port).  A webhook channel's credentials, signature and headers
 *	  go only to the origin of its own URL or to hosts its "recipient_hosts"
 *	  setting names, so that whoever may schedule a message cannot send them
 *	  elsewhere by giving the recipient a "url".  A channel keeps its stored
 *	  secrets across create_channel() only while every place it connects to
 *	  stays one it connected to before (channel_destinations(), channel.c).
 *
 *	  Hosts are compared as libcurl connects to them: percent-decoded, IPv4
 *	  numbers in any form as a dotted quad (0x7f.1 and 2130706433 are
 *	  127.0.0.1), IPv6 literals in their canonical form, international names
 *	  in punycode (as libcurl converts them in the server's locale), in
 *	  lower case.  Anything else that differs - a final dot, another port or
 *	  scheme, a name instead of an address - makes another origin: when in
 *	  doubt the answer is "not the channel's", which refuses a message
 *	  rather than sending a secret somewhere new.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "transport/transport.h"

/* a curl_url_get() part as a palloc'd string, or NULL */
static char *
url_part(CURLU *u, CURLUPart what, unsigned int flags)
{
	char	   *part = NULL;
	char	   *result;

	if (curl_url_get(u, what, &part, flags) != CURLUE_OK || part == NULL)
	{
		/* libcurl may have allocated the part before failing */
		curl_free(part);
		return NULL;
	}
	result = pstrdup(part);
	curl_free(part);
	return result;
}

static void
lower_ascii(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s += 'a' - 'A';
}

/*
 * The origin of url, as libcurl parses it.  False when libcurl cannot
 * parse it (validate_url() has said why, where it matters).
 */
bool
url_origin(const char *url, UrlOrigin *o)
{
	CURLU	   *u = curl_url();
	char	   *port;
	char	   *zone;
	bool		ok;

	memset(o, 0, sizeof(UrlOrigin));
	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;
	if (ok)
	{
		o->scheme = url_part(u, CURLUPART_SCHEME, 0);
		/* punycode when libcurl can convert the name, as it will to connect */
		o->host = url_part(u, CURLUPART_HOST, CURLU_PUNYCODE);
		if (o->host == NULL)
			o->host = url_part(u, CURLUPART_HOST, 0);
		zone = url_part(u, CURLUPART_ZONEID, 0);
		if (o->host && zone)
			o->host = psprintf("%s%%%s", o->host, zone);
		port = url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
		o->port = port ? atoi(port) : 0;
		o->userinfo = url_part(u, CURLUPART_USER, 0) != NULL ||
			url_part(u, CURLUPART_PASSWORD, 0) != NULL;
		ok = o->scheme != NULL && o->host != NULL && o->port > 0;
	}
	curl_url_cleanup(u);
	if (ok)
	{
		lower_ascii(o->scheme);
		lower_ascii(o->host);
	}
	return ok;
}

/* "https://example.com:443": the origin in messages and comparisons */
char *
url_origin_text(const UrlOrigin *o)
{
	return psprintf("%s://%s:%d", o->scheme, o->host, o->port);
}

static bool
same_origin(const UrlOrigin *a, const UrlOrigin *b)
{
	return strcmp(a->scheme, b->scheme) == 0 && strcmp(a->host, b->host) == 0 &&
		a->port == b->port;
}

/* ----------------------------------------------------------------
 * recipient_hosts: "hooks.example.com", "*.example.com", "10.0.0.7:8443"
 * ----------------------------------------------------------------
 */

static void
bad_pattern(const char *entry, const char *what, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid host \"%s\" in %s", entry, what),
			 errdetail("%s", why),
			 errhint("Write a host name, \"*.\" and a domain, or an address, each optionally with \":port\", such as \"hooks.example.com\" or \"*.example.com:8443\".")));
}

/* A host pattern of a "recipient_hosts" setting, normalised as hosts are. */
HostPattern *
host_pattern_parse(const char *entry, const char *what)
{
	HostPattern *p = palloc0(sizeof(HostPattern));
	const char *rest = entry;
	char	   *url;
	UrlOrigin	o;
	CURLU	   *u;
	char	   *path;
	char	   *query;
	char	   *fragment;
	bool		explicit_port;

	if (strncmp(rest, "*.", 2) == 0)
	{
		p->suffix = true;
		rest += 2;
	}
	for (const char *c = rest; *c; c++)
		if ((unsigned char) *c <= ' ' || strchr("/?#@\\", *c))
			bad_pattern(entry, what, "A host holds no white space, \"/\", \"?\", \"#\", \"@\" or \"\\\".");
	if (*rest == '\0')
		bad_pattern(entry, what, "It is empty.");

	/* an IPv6 address may be written without its brackets, then no port */
	if (rest[0] != '[' && strchr(rest, ':') != strrchr(rest, ':'))
		url = psprintf("http://[%s]/", rest);
	else
		url = psprintf("http://%s/", rest);
	if (!url_origin(url, &o))
		bad_pattern(entry, what, "It is not a valid host.");

	/* was the port written?  (url_origin() fills in the scheme's default) */
	u = curl_url();
	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	(void) curl_url_set(u, CURLUPART_URL, url, 0);
	explicit_port = url_part(u, CURLUPART_PORT, 0) != NULL;
	path = url_part(u, CURLUPART_PATH, 0);
	query = url_part(u, CURLUPART_QUERY, 0);
	fragment = url_part(u, CURLUPART_FRAGMENT, 0);
	curl_url_cleanup(u);
	if (o.userinfo || query || fragment || path == NULL || strcmp(path, "/") != 0)
		bad_pattern(entry, what, "It is not a valid host.");
	if (p->suffix && (o.host[0] == '[' || strspn(o.host, "0123456789.") == strlen(o.host)))
		bad_pattern(entry, what, "\"*.\" goes before a domain name, not an address.");

	p->host = o.host;
	p->port = explicit_port ? o.port : 0;
	return p;
}

bool
host_pattern_matches(const HostPattern *p, const UrlOrigin *o)
{
	size_t		hl = strlen(o->host);
	size_t		pl = strlen(p->host);

	if (p->port != 0 && p->port != o->port)
		return false;
	if (!p->suffix)
		return strcmp(p->host, o->host) == 0;
	/* "*.example.com": a name under example.com, not example.com itself */
	return hl > pl + 1 && o->host[hl - pl - 1] == '.' &&
		strcmp(o->host + hl - pl, p->host) == 0;
}

/* "*.example.com:8443" */
char *
host_pattern_text(const HostPattern *p)
{
	return psprintf("%s%s%s", p->suffix ? "*." : "", p->host,
					p->port ? psprintf(":%d", p->port) : "");
}

/* ----------------------------------------------------------------
 * A recipient's url on a webhook channel
 * ----------------------------------------------------------------
 */

/*
 * A recipient may name its own URL on a webhook channel only at the
 * channel's own origin (scheme, host and port of its "url") or at a host
 * of its "recipient_hosts" setting: the channel's signature, bearer token,
 * Basic credentials and headers go with every request.  Raises an error
 * otherwise, at schedule() and again when the message is sent (the channel
 * may have changed since).
 */
void
check_recipient_url(ChannelConfig *cc, const char *url)
{
	UrlOrigin	own;
	UrlOrigin	o;
	ListCell   *lc;

	if (!url_origin(url, &o))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid URL \"%s\" in recipient \"url\"", url)));
	if (o.userinfo)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient \"url\" must not hold a user name or password"),
				 errdetail("The host of \"%s\" is \"%s\", after the \"@\".", url, o.host),
				 errhint("Give webhook credentials as secrets of the channel.")));

	if (url_origin(cc->url, &own) && same_origin(&own, &o))
		return;
	foreach(lc, cc->recipient_hosts)
		if (host_pattern_matches(lfirst(lc), &o))
			return;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("recipient \"url\" points to %s, which is not a destination of channel \"%s\"",
					url_origin_text(&o), cc->name),
			 errdetail("A webhook sends its signature, credentials and headers only to the scheme, host and port of its \"url\" (%s) and to the hosts its setting \"recipient_hosts\" names.",
					   own.host ? url_origin_text(&own) : cc->url),
			 errhint("Leave \"url\" out of the recipient, or have an administrator add \"%s\" to setting \"recipient_hosts\" of channel \"%s\".",
					 o.host, cc->name)));
}

/* ----------------------------------------------------------------
 * The host of a generic SMS gateway's URL template
 * ----------------------------------------------------------------
 */

/*
 * The part of a URL template up to the end of its host and port: what
 * decides where the request goes.  Nothing there may come from a message
 * (recipient, data, message fields), or whoever schedules one could send
 * the request, with the secrets its templates interpolate, to a host of
 * their choosing; only literal text and {{secrets.name}} may appear.
 * Returns that part; raises an error naming "what" otherwise.
 */
char *
url_template_authority(const char *tmpl, const char *what)
{
	const char *p = tmpl;
	bool		after_scheme = false;

	while (*p)
	{
		if (p[0] == '{' && p[1] == '{')
		{
			bool		triple = p[2] == '{';
			const char *start = p + (triple ? 3 : 2);
			const char *end = strstr(start, triple ? "}}}" : "}}");
			char	   *name;

			if (end == NULL)
				break;			/* template_check_syntax() says what is wrong */
			name = pnstrdup(start, end - start);
			if (!triple && name[0] == '&')
				name++;
			while (*name == ' ')
				name++;
			for (int len = strlen(name); len > 0 && name[len - 1] == ' '; len--)
				name[len - 1] = '\0';
			if (strncmp(name, "secrets.", 8) != 0 || name[8] == '\0' ||
				strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(name))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the host of %s must not depend on the message", what),
						 errdetail("\"%.*s\" comes before the end of the host and port.",
								   (int) (end + (triple ? 3 : 2) - p), p),
						 errhint("Only literal text and {{secrets.name}} may come before the path, so that no message can send the request elsewhere.")));
			p = end + (triple ? 3 : 2);
			continue;
		}
		if (!after_scheme && p[0] == ':' && p[1] == '/' && p[2] == '/')
		{
			after_scheme = true;
			p += 3;
			continue;
		}
		if (*p == '/' || *p == '?' || *p == '#')
			break;
		p++;
	}
	return pnstrdup(tmpl, p - tmpl);
}

/* ----------------------------------------------------------------
 * Where a channel's secrets go
 * ----------------------------------------------------------------
 */

/* A URL's origin onto *dest; nothing when url is NULL. */
void
channel_destination_url(List **dest, const char *url)
{
	UrlOrigin	o;

	if (url == NULL)
		return;
	*dest = lappend(*dest, url_origin(url, &o) ? url_origin_text(&o) : psprintf("url %s", url));
}
