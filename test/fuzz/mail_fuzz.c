/*-------------------------------------------------------------------------
 *
 * mail_fuzz.c
 *	  libFuzzer harness for building email header fields (src/transport/mail.c:
 *	  RFC 2047 encoded words, folding, display names, splitting a mailbox
 *	  setting, Message-ID) and the HTTP transports' request pieces
 *	  (src/transport/transport_util.c: percent-encoding, form fields, the URL host,
 *	  error excerpts, the response buffer).
 *
 * Input: one byte choosing the function, then up to three arguments
 * separated by NUL bytes.  What is checked, besides the sanitizers:
 *	 - every header field is header syntax: printable ASCII, lines joined
 *	   by CRLF followed by a space (folding), no other CR or LF, so no text
 *	   can inject a header field; lines at most 998 bytes (RFC 5322 2.1.1);
 *	 - encoded words are at most 75 characters, valid base64, and decode
 *	   back to the text;
 *	 - a display name written by mail_mailbox comes back from
 *	   mail_split_mailbox, as the SMTP transport relies on;
 *	 - percent-encoding decodes back to its input;
 *	 - the response buffer and error excerpt stay within their bounds;
 *	 - the host of a URL has no brackets or line breaks left.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "reminder.h"
#include "transport/mail.h"
#include "transport/transport.h"

#include "fuzz_pg.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPIECES 3

/* a header field "Name: value" as mail.c made it */
static void
check_header(const char *h)
{
	const char *line = h;
	const char *p;

	for (p = h; *p; p++)
	{
		if (*p == '\r')
		{
			/* folding: CRLF and a space, never at the very end */
			if (p[1] != '\n' || p[2] != ' ')
				abort();
			if (p - line > 998)
				abort();
			line = p + 2;
			p++;
			continue;
		}
		if (*p == '\n' || (unsigned char) *p < 0x20 || (unsigned char) *p > 0x7E)
			abort();
	}
	if (p - line > 998)
		abort();
}

/* the encoded words of a header, decoded and joined, or NULL if none */
static char *
decode_words(const char *h)
{
	StringInfoData out;
	const char *p = h;
	bool		any = false;

	initStringInfo(&out);
	while ((p = strstr(p, "=?UTF-8?B?")) != NULL)
	{
		const char *b64 = p + 10;
		const char *end = strstr(b64, "?=");
		char		buf[128];
		int			n;

		if (end == NULL || end + 2 - p > 75)
			abort();
		n = pg_b64_decode(b64, end - b64, buf, sizeof(buf));
		if (n < 0)
			abort();
		appendBinaryStringInfo(&out, buf, n);
		any = true;
		p = end + 2;
	}
	return any ? out.data : NULL;
}

static void
fuzz_subject(const char *text)
{
	char	   *h = mail_unstructured("Subject", text);
	char	   *decoded;

	if (strncmp(h, "Subject:", 8) != 0)
		abort();
	check_header(h);
	decoded = decode_words(h);
	if (decoded && strcmp(decoded, text) != 0)
		abort();
}

/* addresses as validate_email() lets them through: no spaces, <, >, CR, LF, ... */
static const char *
plausible_address(const char *s)
{
	if (*s == '\0' || strchr(s, '@') == NULL ||
		strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@+-_") != strlen(s))
		return "ada@example.com";
	return s;
}

static void
fuzz_mailbox(const char *name, const char *addr)
{
	char	   *mb;
	StringInfoData unfolded;
	char	   *n2;
	char	   *a2;
	size_t		len = strlen(name);

	addr = plausible_address(addr);
	mb = mail_mailbox("To", name, addr);
	check_header(mb);

	/* unfolded and without "To: ", it splits back as a setting would */
	initStringInfo(&unfolded);
	for (const char *p = mb + strlen("To: "); *p; p++)
		if (*p != '\r' && *p != '\n')
			appendStringInfoChar(&unfolded, *p);
	mail_split_mailbox(unfolded.data, &n2, &a2);
	if (strcmp(a2, addr) != 0 && strcmp(unfolded.data, addr) != 0)
		abort();
	if (len > 0 && len < 800 && name[0] != ' ' && name[len - 1] != ' ' &&
		strstr(name, "  ") == NULL &&
		strcmp(unfolded.data, addr) != 0 && decode_words(mb) == NULL &&
		(n2 == NULL || strcmp(n2, name) != 0))
		abort();
}

static void
fuzz_split(const char *setting)
{
	char	   *name;
	char	   *addr;

	mail_split_mailbox(setting, &name, &addr);
	(void) mail_address_domain(addr);
	if (name && strlen(name) > strlen(setting))
		abort();
}

static void
fuzz_message_id(const char *key, const char *addr)
{
	const char *domain = mail_address_domain(plausible_address(addr));
	char	   *id = mail_message_id(key, domain);
	char	   *at = strrchr(id, '@');
	size_t		len = strlen(id);

	check_header(psprintf("Message-ID: %s", id));
	if (id[0] != '<' || id[len - 1] != '>' || at == NULL ||
		strncmp(at + 1, domain, strlen(domain)) != 0)
		abort();
	/* the left part: a dot-atom of atext and %XX */
	for (const char *p = id + 1; p < at; p++)
		if (!(isalnum((unsigned char) *p) || strchr("!#$&'*+-/=?^_`{|}~%.", *p)))
			abort();
	if (id[1] == '.' || at[-1] == '.')
		abort();
	for (const char *p = id + 1; p + 1 < at; p++)
		if (p[0] == '.' && p[1] == '.')
			abort();
}

static void
fuzz_cc(const char *a, const char *b, const char *c)
{
	MailHeader	h;
	const char *addrs[] = {a, b, c};

	mail_header_begin(&h, "Cc");
	for (int i = 0; i < 3; i++)
		mail_header_token(&h, i > 0 ? "," : "", plausible_address(addrs[i]));
	check_header(mail_header_end(&h));
}

static int
hexval(char c)
{
	return c >= 'A' ? c - 'A' + 10 : c - '0';
}

static void
fuzz_percent(const char *name, const char *value)
{
	StringInfoData buf;
	StringInfoData back;
	const char *eq;

	initStringInfo(&buf);
	transport_form_field(&buf, name, value);
	/* unreserved characters, %XX, + and the one = */
	eq = strchr(buf.data, '=');
	if (eq == NULL)
		abort();
	initStringInfo(&back);
	for (const char *p = buf.data; *p; p++)
	{
		if (p == eq)
		{
			appendStringInfoChar(&back, '\0');
			continue;
		}
		if (*p == '%')
		{
			if (!isxdigit((unsigned char) p[1]) || !isxdigit((unsigned char) p[2]) ||
				islower((unsigned char) p[1]) || islower((unsigned char) p[2]))
				abort();
			appendStringInfoChar(&back, (char) (hexval(p[1]) * 16 + hexval(p[2])));
			p += 2;
		}
		else if (*p == '+')
			appendStringInfoChar(&back, ' ');
		else if (isalnum((unsigned char) *p) || strchr("-._~", *p))
			appendStringInfoChar(&back, *p);
		else
			abort();
	}
	if ((size_t) back.len != strlen(name) + 1 + strlen(value) ||
		memcmp(back.data, name, strlen(name)) != 0 ||
		strcmp(back.data + strlen(name) + 1, value) != 0)
		abort();
}

static void
fuzz_error(const char *prefix, const char *text)
{
	Delivery   *d = palloc0(sizeof(Delivery));
	int			len;

	d->cxt = CurrentMemoryContext;
	transport_set_error(d, prefix, text);
	len = strlen(d->error);
	if (strncmp(d->error, prefix, strlen(prefix)) != 0 ||
		len > (int) strlen(prefix) + 2 + 200 * MAX_MULTIBYTE_CHAR_LEN)
		abort();
}

static void
fuzz_response(const uint8_t *data, size_t size)
{
	Delivery   *d = palloc0(sizeof(Delivery));
	ResponseBuffer *rb;
	size_t		cap = size > 0 ? data[0] * 16 : 0;
	size_t		total = 0;

	d->cxt = CurrentMemoryContext;
	rb = transport_response_buffer(d, cap);
	/* chunks as libcurl would pass them: a length byte, then the bytes */
	for (size_t i = 1; i < size;)
	{
		size_t		n = Min((size_t) data[i], size - i - 1);
		char	   *chunk = palloc(n + 1);

		memcpy(chunk, data + i + 1, n);
		if (transport_response_cb(chunk, 1, n, rb) != n)
			abort();
		total += n;
		i += n + 1;
	}
	if (rb->len != Min(total, cap) || d->response_len != Min(total, (size_t) DELIVERY_RESPONSE_MAX))
		abort();
}

static void
fuzz_url(const char *url)
{
	char	   *host;

	/* the host policy gets it: no brackets left, no line breaks */
	if (FUZZ_TRY(host = transport_url_host(url, "the url", false)) &&
		(strpbrk(host, "\r\n[]") != NULL))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MemoryContext cxt;
	MemoryContext old;
	char	   *copy;
	const char *piece[NPIECES] = {"", "", ""};
	int			npieces = 0;
	static bool initialized = false;

	if (size < 1)
		return 0;
	if (!initialized)
	{
		fuzz_init_backend();
		initialized = true;
	}
	cxt = AllocSetContextCreate(NULL, "fuzz", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	/* NUL-separated pieces, each its own exact-size allocation */
	copy = palloc(size);
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	for (const char *p = copy; npieces < NPIECES && p <= copy + size - 1;)
	{
		size_t		len = strlen(p);

		piece[npieces++] = pnstrdup(p, len);
		p += len + 1;
	}

	switch (data[0] % 9)
	{
		case 0:
			(void) FUZZ_TRY(fuzz_subject(piece[0]));
			break;
		case 1:
			(void) FUZZ_TRY(fuzz_mailbox(piece[0], piece[1]));
			break;
		case 2:
			(void) FUZZ_TRY(fuzz_split(piece[0]));
			break;
		case 3:
			(void) FUZZ_TRY(fuzz_message_id(piece[0], piece[1]));
			break;
		case 4:
			(void) FUZZ_TRY(fuzz_cc(piece[0], piece[1], piece[2]));
			break;
		case 5:
			(void) FUZZ_TRY(fuzz_percent(piece[0], piece[1]));
			break;
		case 6:
			(void) FUZZ_TRY(fuzz_error(piece[0], piece[1]));
			break;
		case 7:
			(void) FUZZ_TRY(fuzz_response(data + 1, size - 1));
			break;
		case 8:
			fuzz_url(piece[0]);
			break;
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}
