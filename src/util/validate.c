/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Checks on what users hand us: addresses, URLs, header values, time
 *	  zones, sizes.  Each function either returns or raises an error with
 *	  the SQLSTATE, detail and hint a caller needs to fix the input.
 *
 *	  "what" names the input in messages, e.g. "recipient email" or
 *	  "setting \"url\" of channel \"ops\"".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "util/util.h"

#define MAX_EMAIL_LENGTH	254
#define MAX_LOCAL_LENGTH	64
#define MAX_HEADER_LENGTH	998		/* RFC 5322 line limit */

static bool
has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

static bool
is_atext(unsigned char c)
{
	/* RFC 5322 atext, plus dots between atoms and UTF-8 (RFC 6531) */
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL || c >= 0x80;
}

static bool
valid_domain(const char *d)
{
	int			labels = 0;

	if (*d == '[')
	{
		/* address literal such as [127.0.0.1] */
		size_t		len = strlen(d);

		return len > 2 && d[len - 1] == ']' &&
			strspn(d + 1, "0123456789.:abcdefABCDEFIPv") == len - 2;
	}

	while (*d)
	{
		const char *start = d;

		while (*d && *d != '.')
		{
			unsigned char c = *d;

			if (!(isalnum(c) || c == '-' || c >= 0x80))
				return false;
			d++;
		}
		if (d == start || d - start > 63 || *start == '-' || d[-1] == '-')
			return false;
		labels++;
		if (*d == '.')
		{
			d++;
			if (*d == '\0')
				return false;
		}
	}
	return labels >= 2;
}

/*
 * An addr-spec: local@domain.  Deliberately stricter than RFC 5322 (no
 * quoted local parts, no comments): what a reminder goes to is a plain
 * mailbox, and anything exotic is more likely a typo or an injection.
 */
void
validate_email(const char *addr, const char *what)
{
	const char *at = strrchr(addr, '@');
	const char *reason = NULL;

	if (has_line_break(addr))
		reason = "It contains a line break.";
	else if (strlen(addr) > MAX_EMAIL_LENGTH)
		reason = "It is longer than 254 characters.";
	else if (at == NULL || at == addr)
		reason = "An address has the form local@domain.";
	else if (at - addr > MAX_LOCAL_LENGTH)
		reason = "The part before @ is longer than 64 characters.";
	else
	{
		for (const char *p = addr; p < at; p++)
			if (!is_atext((unsigned char) *p))
			{
				reason = "The part before @ contains a character not allowed there.";
				break;
			}
		if (reason == NULL &&
			(addr[0] == '.' || at[-1] == '.' || strstr(addr, "..") != NULL))
			reason = "Dots may not start, end or repeat in the part before @.";
		if (reason == NULL && !valid_domain(at + 1))
			reason = "The domain is not a valid host name such as example.com.";
	}

	if (reason)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid email address \"%s\" in %s", addr, what),
				 errdetail("%s", reason),
				 errhint("Write a plain address such as \"ada@example.com\".")));
}

/*
 * An address or an array of addresses under key ("bcc": "a@x.org" or
 * ["a@x.org", "b@x.org"]), each checked; NIL when absent or null.
 */
List *
validate_email_list(Jsonb *obj, const char *key, const char *what)
{
	JsonbValue *v = jsonb_get(obj, key);
	List	   *result = NIL;

	if (v == NULL || v->type == jbvNull)
		return NIL;
	if (v->type == jbvString)
	{
		char	   *addr = jsonb_value_text(v);

		validate_email(addr, what);
		return list_make1(addr);
	}
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			char	   *addr;

			if (tok != WJB_ELEM)
				continue;
			if (e.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s must hold email addresses as strings", what)));
			addr = pnstrdup(e.val.string.val, e.val.string.len);
			validate_email(addr, what);
			result = lappend(result, addr);
		}
		return result;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be an address or an array of addresses", what)));
	return NIL;					/* keep compiler quiet */
}

/*
 * A mailbox: an address, optionally with a display name, as in
 * "Ada Lovelace <ada@example.com>".
 */
void
validate_mailbox(const char *mailbox, const char *what)
{
	const char *lt = strrchr(mailbox, '<');
	char	   *addr;
	size_t		len;

	validate_header_value(mailbox, what);

	if (lt == NULL)
	{
		validate_email(mailbox, what);
		return;
	}

	len = strlen(lt);
	if (len < 3 || lt[len - 1] != '>')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid mailbox \"%s\" in %s", mailbox, what),
				 errdetail("A name with an address has the form Name <local@domain>."),
				 errhint("Write \"Ada Lovelace <ada@example.com>\" or a plain address.")));
	addr = pnstrdup(lt + 1, len - 2);
	validate_email(addr, what);
	pfree(addr);
}

/*
 * Normalise a phone number to E.164 ("+48601234567").  Spaces, dots,
 * dashes and parentheses are dropped; "00" is an international prefix; a
 * number without one gets default_cc, losing a national trunk "0".
 */
char *
normalize_phone(const char *phone, const char *default_cc, const char *what)
{
	StringInfoData digits;
	const char *p = phone;
	bool		international = false;
	const char *reason = NULL;
	char	   *result;
	int			ndigits;

	initStringInfo(&digits);

	while (*p == ' ')
		p++;
	if (*p == '+')
	{
		international = true;
		p++;
	}
	for (; *p; p++)
	{
		if (isdigit((unsigned char) *p))
			appendStringInfoChar(&digits, *p);
		else if (strchr(" .-()/", *p) == NULL)
		{
			reason = "Only digits, an initial +, spaces, dots, dashes, slashes and parentheses are allowed.";
			break;
		}
	}

	if (reason == NULL && !international && strncmp(digits.data, "00", 2) == 0)
	{
		international = true;
		memmove(digits.data, digits.data + 2, digits.len - 1);
		digits.len -= 2;
	}

	if (reason == NULL && !international)
	{
		const char *cc = default_cc;

		if (cc && *cc == '+')
			cc++;
		if (cc == NULL || *cc == '\0')
			reason = "The number has no country code and no default country code is set.";
		else
		{
			const char *national = digits.data;

			if (*national == '0')
				national++;
			result = psprintf("+%s%s", cc, national);
			ndigits = strlen(result) - 1;
			if (ndigits < 8 || ndigits > 15)
				reason = "An international number has 8 to 15 digits.";
			else
				return result;
		}
	}

	if (reason == NULL)
	{
		ndigits = digits.len;
		if (ndigits < 8 || ndigits > 15)
			reason = "An international number has 8 to 15 digits.";
		else if (digits.data[0] == '0')
			reason = "A country code never starts with 0.";
	}

	if (reason)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid phone number \"%s\" in %s", phone, what),
				 errdetail("%s", reason),
				 errhint("Write the number in international form, such as \"+48 601 234 567\", or set reminder.default_country_code.")));

	return psprintf("+%s", digits.data);
}

/*
 * A URL whose scheme is one of schemes (NULL-terminated), with a host, no
 * white space and no control characters.  libcurl parses it, as it will
 * when the worker sends.
 */
void
validate_url(const char *url, const char *const *schemes, const char *what)
{
	CURLU	   *h;
	CURLUcode	rc;
	char	   *scheme = NULL;
	char	   *host = NULL;
	bool		scheme_ok = false;
	StringInfoData allowed;

	for (const char *p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid URL \"%s\" in %s", url, what),
					 errdetail("It contains white space or a control character."),
					 errhint("Percent-encode spaces as %%20.")));

	h = curl_url();
	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	rc = curl_url_set(h, CURLUPART_URL, url, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(h, CURLUPART_HOST, &host, 0);

	if (rc == CURLUE_OK)
	{
		for (int i = 0; schemes[i]; i++)
			if (pg_strcasecmp(scheme, schemes[i]) == 0)
				scheme_ok = true;
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(h);

	if (rc != CURLUE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid URL \"%s\" in %s", url, what),
				 errdetail("%s.", curl_url_strerror(rc)),
				 errhint("Write an absolute URL such as \"https://example.com/hook\".")));

	if (!scheme_ok)
	{
		initStringInfo(&allowed);
		for (int i = 0; schemes[i]; i++)
			appendStringInfo(&allowed, "%s%s", i ? ", " : "", schemes[i]);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported URL scheme in %s: \"%s\"", what, url),
				 errhint("Allowed schemes are: %s.", allowed.data)));
	}
}

/* A header field value: one line, no NUL, CR or LF, not absurdly long. */
void
validate_header_value(const char *value, const char *what)
{
	if (has_line_break(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s contains a line break", what),
				 errdetail("Carriage return and line feed would start a new header (header injection)."),
				 errhint("Remove CR and LF characters from the value.")));
	if (strlen(value) > MAX_HEADER_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", what),
				 errdetail("It has %zu bytes; a header line holds at most %d.",
						   strlen(value), MAX_HEADER_LENGTH)));
}

/*
 * An HTTP header value: one line as above, and no other control character
 * but the tab, which RFC 9110 does not allow in a field value either.
 */
void
validate_http_header_value(const char *value, const char *what)
{
	validate_header_value(value, what);
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s contains a control character", what),
					 errdetail("Header values hold printable characters, spaces and tabs only."),
					 errhint("Remove the character, or encode it (percent-encoding, base64).")));
}

/* An HTTP header name: an RFC 9110 token. */
void
validate_header_name(const char *name, const char *what)
{
	if (*name == '\0' ||
		strspn(name, "!#$%&'*+-.^_`|~0123456789"
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid header name \"%s\" in %s", name, what),
				 errdetail("A header name is a token: letters, digits and !#$%%&'*+-.^_`|~."),
				 errhint("Write a name such as \"X-Request-Source\".")));
}

void
validate_time_zone(const char *tz, const char *what)
{
	if (*tz == '\0' || pg_tzset(tz) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized in %s", tz, what),
				 errhint("Use an IANA time zone name such as \"Europe/Warsaw\"; see the pg_timezone_names view.")));
}

/*
 * The name of a channel, template or rule: a letter, then up to 62
 * letters, digits, "_", "." or "-", so it can appear in logs, URLs and
 * settings without quoting.  "kind" says what is named.
 */
void
validate_name(const char *name, const char *kind)
{
	if (!((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z')) ||
		strlen(name) > 63 ||
		strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s name \"%s\"", kind, name),
				 errhint("A name starts with a letter and has at most 63 letters, digits, \"_\", \".\" or \"-\".")));
}

/* A BCP 47 language tag, as far as templates need: "pl", "pl-PL". */
void
validate_locale(const char *locale, const char *what)
{
	const char *p = locale;
	int			n = 0;
	bool		ok = true;

	while (*p >= 'a' && *p <= 'z')
		p++, n++;
	if (n < 2 || n > 3)
		ok = false;
	while (ok && *p == '-')
	{
		p++;
		n = 0;
		while (isalnum((unsigned char) *p))
			p++, n++;
		if (n < 2 || n > 8)
			ok = false;
	}
	if (!ok || *p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid locale \"%s\" in %s", locale, what),
				 errhint("Use a language tag such as \"en\" or \"pl-PL\".")));
}

void
validate_payload_size(Size size, const char *what)
{
	if (size > (Size) reminder_max_payload_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too large", what),
				 errdetail("It has %zu bytes; the limit is %d.", size, reminder_max_payload_size),
				 errhint("Raise reminder.max_payload_size, or keep large data in your tables and refer to it.")));
}

/* A message priority: high, normal or low, as 1, 0 and -1. */
int16
parse_priority(const char *text, const char *what)
{
	if (pg_strcasecmp(text, "high") == 0)
		return 1;
	if (pg_strcasecmp(text, "normal") == 0)
		return 0;
	if (pg_strcasecmp(text, "low") == 0)
		return -1;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s: \"%s\"", what, text),
			 errhint("A priority is \"high\", \"normal\" or \"low\".")));
	return 0;					/* keep the compiler quiet */
}

/* [+-]digits[.digits][e[+-]digits], or .digits: what a JSON number looks like */
static bool
decimal_number(const char *s)
{
	bool		digits = false;

	if (*s == '+' || *s == '-')
		s++;
	while (isdigit((unsigned char) *s))
		s++, digits = true;
	if (*s == '.')
	{
		s++;
		while (isdigit((unsigned char) *s))
			s++, digits = true;
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E')
	{
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char) *s))
			return false;
		while (isdigit((unsigned char) *s))
			s++;
	}
	return *s == '\0';
}

/*
 * A duration as a PostgreSQL interval ("30 seconds", "1 min", "500 ms") or
 * a bare number of seconds.  Returns milliseconds.
 */
int
parse_duration_ms(const char *text, const char *what)
{
	double		ms;
	char	   *end;

	/* a plain decimal number of seconds; strtod() would also take "nan", "inf" and hex */
	if (decimal_number(text))
	{
		ms = strtod(text, &end) * 1000.0;
		Assert(*end == '\0');
	}
	else
	{
		MemoryContext cxt = CurrentMemoryContext;
		Interval   *iv = NULL;

		/* interval_in has no soft-error mode in PostgreSQL 15; rethrow ours */
		PG_TRY();
		{
			iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
													   CStringGetDatum(text),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
			iv = NULL;
		}
		PG_END_TRY();

		if (iv == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid duration \"%s\" in %s", text, what),
					 errhint("Write an interval such as \"30 seconds\" or a number of seconds.")));
		ms = (iv->time / 1000.0) + (iv->day * 86400000.0) + (iv->month * 30.0 * 86400000.0);
	}

	if (!isfinite(ms) || ms < 0 || ms > INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("duration \"%s\" out of range in %s", text, what),
				 errhint("A duration lies between 0 and 24 days.")));
	return (int) ms;
}

/*
 * Valid text of the database encoding: the first len bytes of s up to the
 * first invalid sequence, as a new string (NULL for NULL).  For text from
 * outside, such as a response, which may be anything.  Never raises but
 * out of memory.
 */
char *
valid_text(const char *s, size_t len)
{
	int			ok;

	if (s == NULL)
		return NULL;
	ok = pg_encoding_verifymbstr(GetDatabaseEncoding(), s, (int) len);
	return pnstrdup(s, ok);
}
