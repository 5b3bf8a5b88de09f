/*-------------------------------------------------------------------------
 *
 * mail.c
 *	  Header fields of an email as RFC 5322 and RFC 2047 want them: folded
 *	  at 78 characters, non-ASCII text as encoded words, display names
 *	  quoted where they must be, a Message-ID made from the idempotency key
 *	  and a Date.  Text with a word too long for a line goes as encoded
 *	  words too, which fold between any two characters: SMTP servers refuse
 *	  lines over 998 characters, and a subject or name must never make a
 *	  message undeliverable.  The MIME structure itself is libcurl's
 *	  (transport_smtp.c).
 *
 *	  All text here is UTF-8 (transport_to_utf8 converts from the database
 *	  encoding); addresses were checked by validate_email().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "pgtime.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "transport/mail.h"

#define LINE_LIMIT		78		/* RFC 5322 2.1.1: should not exceed */
#define WORD_BYTES		39		/* UTF-8 bytes per encoded word: 52 base64
								 * characters, 64 with =?UTF-8?B?...?= */
#define MSGID_MAX		200		/* longer left parts are hashed */

/* ----------------------------------------------------------------
 * Folding
 * ----------------------------------------------------------------
 */

void
mail_header_begin(MailHeader *h, const char *name)
{
	initStringInfo(&h->buf);
	appendStringInfo(&h->buf, "%s:", name);
	h->line_start = 0;
	h->tokens = 0;
}

/*
 * Append a token that must not be split (an address, an encoded word, a
 * word), after sep and a space, starting a new line first if it would not
 * fit on this one.
 */
void
mail_header_token(MailHeader *h, const char *sep, const char *token)
{
	int			line = h->buf.len - h->line_start;

	if (h->tokens > 0)
		appendStringInfoString(&h->buf, sep);
	if (h->tokens > 0 && *token != '\0' &&
		line + (int) strlen(sep) + 1 + (int) strlen(token) > LINE_LIMIT)
	{
		appendStringInfoString(&h->buf, "\r\n");
		h->line_start = h->buf.len;
	}
	appendStringInfoChar(&h->buf, ' ');
	appendStringInfoString(&h->buf, token);
	h->tokens++;
}

char *
mail_header_end(MailHeader *h)
{
	return h->buf.data;
}

/* ----------------------------------------------------------------
 * Encoded words (RFC 2047)
 * ----------------------------------------------------------------
 */

static bool
is_plain_ascii(const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p < 0x20 || *p > 0x7E)
			return false;
	/* "=?" would read as the start of an encoded word */
	return strstr(s, "=?") == NULL;
}

/*
 * Call emit for each "=?UTF-8?B?...?=" word of s: each at most 75
 * characters and holding whole characters only (RFC 2047 5.3), so that a
 * decoder can join them back.
 */
static void
encoded_words(const char *s, MailHeader *h, StringInfo out)
{
	const char *p = s;
	size_t		len = strlen(s);

	while (p < s + len)
	{
		const char *end = p;
		char		b64[WORD_BYTES * 2];
		int			n;
		char	   *word;

		while (end < s + len)
		{
			int			l = pg_utf_mblen((const unsigned char *) end);

			/* a character cut short by the end must not read past it */
			l = Min(l, (int) (s + len - end));
			if (end - p + l > WORD_BYTES)
				break;
			end += l;
		}
		if (end == p)			/* cannot happen with valid UTF-8 */
			end = p + Min(len - (p - s), (size_t) WORD_BYTES);
		n = pg_b64_encode(p, end - p, b64, sizeof(b64));
		word = psprintf("=?UTF-8?B?%.*s?=", n, b64);
		if (h)
			mail_header_token(h, "", word);
		else
			appendStringInfo(out, "%s%s", out->len > 0 ? " " : "", word);
		p = end;
	}
}

/* Is any space-separated word of s longer than max bytes? */
static bool
has_word_over(const char *s, size_t max)
{
	while (*s)
	{
		size_t		len = strcspn(s, " ");

		if (len > max)
			return true;
		s += len;
		s += strspn(s, " ");
	}
	return false;
}

/* The longest word that fits on the first line of field name, or any. */
static size_t
word_room(const char *name)
{
	return LINE_LIMIT - strlen(name) - 2;	/* "Name: word" */
}

/*
 * "Name: text" for unstructured text (Subject): words of plain ASCII
 * folded at spaces; anything else as encoded words, which fold anywhere
 * between whole characters - also plain ASCII with a word too long for a
 * line (a long URL; SMTP refuses lines over 998 characters), so that any
 * text makes a deliverable header.
 */
char *
mail_unstructured(const char *name, const char *text)
{
	MailHeader	h;

	mail_header_begin(&h, name);
	if (is_plain_ascii(text) && !has_word_over(text, word_room(name)))
	{
		char	   *copy = pstrdup(text);
		char	   *word = copy;

		for (char *p = copy;; p++)
		{
			if (*p == ' ' || *p == '\0')
			{
				bool		last = (*p == '\0');

				*p = '\0';
				mail_header_token(&h, "", word);
				if (last)
					break;
				word = p + 1;
			}
		}
	}
	else
		encoded_words(text, &h, NULL);
	return mail_header_end(&h);
}

/* ----------------------------------------------------------------
 * Mailboxes
 * ----------------------------------------------------------------
 */

/* RFC 5322 atext and space: a display name of these needs no quotes */
static bool
is_atom_phrase(const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (!(isalnum(*p) || *p == ' ' || strchr("!#$%&'*+-/=?^_`{|}~", *p)))
			return false;
	return true;
}

/* "name" with quotes and backslashes escaped */
static StringInfo
quoted_string(const char *name)
{
	StringInfo	buf = makeStringInfo();

	appendStringInfoChar(buf, '"');
	for (const char *p = name; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
	return buf;
}

/*
 * "Field: Name <addr>" (From, To, Reply-To) with the name as atoms, a
 * quoted string or encoded words, folded at 78 characters; "Field: addr"
 * when there is no name.  A name of words too long for a line goes as
 * encoded words, which fold between characters, so any name fits.
 */
char *
mail_mailbox(const char *field, const char *name, const char *addr)
{
	MailHeader	h;
	size_t		room = word_room(field);
	StringInfo	quoted;

	mail_header_begin(&h, field);
	if (name == NULL || *name == '\0')
	{
		mail_header_token(&h, "", addr);
		return mail_header_end(&h);
	}

	if (is_plain_ascii(name) && is_atom_phrase(name) && !has_word_over(name, room))
	{
		char	   *copy = pstrdup(name);
		char	   *save;

		for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
			mail_header_token(&h, "", w);
	}
	else if (is_plain_ascii(name) && (quoted = quoted_string(name))->len <= (int) room)
		mail_header_token(&h, "", quoted->data);
	else
		encoded_words(name, &h, NULL);
	mail_header_token(&h, "", psprintf("<%s>", addr));
	return mail_header_end(&h);
}

/*
 * Split a mailbox setting ("Ada <ada@example.com>", "\"Ops, Inc.\"
 * <ops@example.com>" or "ada@example.com", as validate_mailbox accepts it)
 * into its display name (unquoted, or NULL) and address.
 */
void
mail_split_mailbox(const char *mailbox, char **name, char **addr)
{
	const char *lt = strrchr(mailbox, '<');
	char	   *n;
	int			len;

	if (lt == NULL)
	{
		*name = NULL;
		*addr = pstrdup(mailbox);
		return;
	}
	*addr = pnstrdup(lt + 1, strlen(lt + 1) - 1);

	/* the name: trimmed, and unquoted if quoted */
	while (*mailbox == ' ')
		mailbox++;
	len = lt - mailbox;
	while (len > 0 && mailbox[len - 1] == ' ')
		len--;
	if (len >= 2 && mailbox[0] == '"' && mailbox[len - 1] == '"')
	{
		StringInfoData buf;

		initStringInfo(&buf);
		for (int i = 1; i < len - 1; i++)
		{
			if (mailbox[i] == '\\' && i + 1 < len - 1)
				i++;
			appendStringInfoChar(&buf, mailbox[i]);
		}
		n = buf.data;
	}
	else
		n = pnstrdup(mailbox, len);
	*name = *n ? n : NULL;
}

/* The domain of an address, after its last "@". */
const char *
mail_address_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "reminder.invalid";
}

/* ----------------------------------------------------------------
 * Message-ID and Date
 * ----------------------------------------------------------------
 */

static bool
is_msgid_atext(unsigned char c)
{
	/* RFC 5322 atext, less "%" which escapes here */
	return isalnum(c) || strchr("!#$&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * "<left@domain>" from the idempotency key, so that every attempt of a
 * message carries the same Message-ID and a receiver can drop a repeat.
 * The left part is a dot-atom: characters outside atext, and dots that
 * would start, end or double it, are percent-escaped; a key too long for
 * that is replaced by "sha256." and its hash.
 */
char *
mail_message_id(const char *key, const char *domain)
{
	StringInfoData left;
	size_t		len = strlen(key);

	initStringInfo(&left);
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = key[i];
		bool		dot_ok = (c == '.' && i > 0 && i + 1 < len && key[i + 1] != '.');

		if (is_msgid_atext(c) || dot_ok)
			appendStringInfoChar(&left, c);
		else
			appendStringInfo(&left, "%%%02X", c);
	}

	if (left.len > MSGID_MAX)
	{
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
		uint8		digest[PG_SHA256_DIGEST_LENGTH];

		if (ctx == NULL ||
			pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) key, len) < 0 ||
			pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compute a SHA-256 digest: %s",
							pg_cryptohash_error(ctx))));
		pg_cryptohash_free(ctx);
		resetStringInfo(&left);
		appendStringInfoString(&left, "sha256.");
		for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
			appendStringInfo(&left, "%02x", digest[i]);
	}
	return psprintf("<%s@%s>", left.data, domain);
}

/* An RFC 5322 date-time in UTC: "Tue, 24 Nov 2026 09:05:00 +0000". */
char *
mail_date(TimestampTz t)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	pg_time_t	secs = timestamptz_to_time_t(t);
	struct pg_tm *tm = pg_gmtime(&secs);

	return psprintf("%s, %02d %s %04d %02d:%02d:%02d +0000",
					days[tm->tm_wday], tm->tm_mday, months[tm->tm_mon],
					tm->tm_year + 1900, tm->tm_hour, tm->tm_min, tm->tm_sec);
}
