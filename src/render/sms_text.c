/*-------------------------------------------------------------------------
 *
 * sms_text.c
 *	  The text of an SMS: which encoding it needs, how many segments it
 *	  costs, and an optional transliteration that keeps it in GSM-7.
 *
 *	  A text made only of characters of the GSM 03.38 default alphabet
 *	  and its extension table goes as GSM-7: 160 septets in one SMS, or
 *	  153 per segment once concatenated (the user data header takes 7);
 *	  extension characters (^ { } \ [ ~ ] | euro, form feed) take two
 *	  septets, an escape and the character, and are never split across
 *	  segments.  Anything else sends the whole text as UCS-2: 70 UTF-16
 *	  code units in one SMS, 67 per segment, a surrogate pair never split.
 *	  This is what handsets and gateways (Twilio, SMSAPI) count and bill.
 *
 *	  Texts are UTF-8 here; callers convert from the database encoding.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/unicode_norm.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "reminder.h"
#include "render/render.h"

PG_FUNCTION_INFO_V1(reminder_sms_segments);

#define GSM7_SINGLE		160
#define GSM7_SEGMENT	153
#define UCS2_SINGLE		70
#define UCS2_SEGMENT	67

/* The GSM 03.38 default alphabet, by code point (0x1B, the escape, left out) */
static const pg_wchar gsm7_basic[] = {
	'@', 0x00A3, '$', 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC,
	0x00F2, 0x00C7, '\n', 0x00D8, 0x00F8, '\r', 0x00C5, 0x00E5,
	0x0394, '_', 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8,
	0x03A3, 0x0398, 0x039E, 0x00C6, 0x00E6, 0x00DF, 0x00C9,
	' ', '!', '"', '#', 0x00A4, '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	0x00A1, 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
	0x00BF, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,
};

/* The extension table: an escape septet, then the character */
static const pg_wchar gsm7_extension[] = {
	0x000C, '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC,
};

/*
 * Characters outside GSM-7 that have a plain equivalent inside it, beyond
 * what canonical decomposition gives (which turns "ą" into "a" and a
 * combining ogonek): letters without a decomposition, typographic quotes,
 * dashes and spaces.  An empty replacement drops the character.
 */
static const struct
{
	pg_wchar	from;
	const char *to;
}			transliterations[] = {
	{0x0141, "L"}, {0x0142, "l"},	/* Ł ł */
	{0x0110, "D"}, {0x0111, "d"},	/* Đ đ */
	{0x0126, "H"}, {0x0127, "h"},	/* Ħ ħ */
	{0x0131, "i"}, {0x0138, "k"},	/* ı ĸ */
	{0x013F, "L"}, {0x0140, "l"},	/* Ŀ ŀ */
	{0x014A, "N"}, {0x014B, "n"},	/* Ŋ ŋ */
	{0x0152, "OE"}, {0x0153, "oe"},	/* Œ œ */
	{0x00D0, "D"}, {0x00F0, "d"},	/* Ð ð */
	{0x00DE, "Th"}, {0x00FE, "th"},	/* Þ þ */
	{0x017F, "s"},				/* ſ */
	{0x2018, "'"}, {0x2019, "'"}, {0x201A, "'"}, {0x201B, "'"}, {0x2032, "'"},
	{0x201C, "\""}, {0x201D, "\""}, {0x201E, "\""}, {0x201F, "\""}, {0x2033, "\""},
	{0x00AB, "\""}, {0x00BB, "\""},
	{0x2010, "-"}, {0x2011, "-"}, {0x2012, "-"}, {0x2013, "-"}, {0x2014, "-"},
	{0x2015, "-"}, {0x2212, "-"},
	{0x2026, "..."}, {0x2044, "/"},
	{0x2022, "*"},
	{0x0009, " "}, {0x00A0, " "}, {0x2007, " "}, {0x202F, " "},
	{0x2002, " "}, {0x2003, " "}, {0x2004, " "}, {0x2005, " "}, {0x2006, " "},
	{0x2008, " "}, {0x2009, " "}, {0x200A, " "},
	{0x200B, ""}, {0x200C, ""}, {0x200D, ""}, {0xFEFF, ""},
};

/* Septets a character takes in GSM-7: 1, 2 (extension), or 0 (not there) */
static int
gsm7_width(pg_wchar c)
{
	for (int i = 0; i < lengthof(gsm7_basic); i++)
		if (gsm7_basic[i] == c)
			return 1;
	for (int i = 0; i < lengthof(gsm7_extension); i++)
		if (gsm7_extension[i] == c)
			return 2;
	return 0;
}

/* Decode UTF-8 into code points; *n gets the count.  Input is valid UTF-8. */
static pg_wchar *
decode_utf8(const char *text, int *n)
{
	int			len = strlen(text);
	pg_wchar   *chars = palloc((len + 1) * sizeof(pg_wchar));
	int			count = 0;

	for (const unsigned char *p = (const unsigned char *) text; *p;)
	{
		int			l = pg_utf_mblen(p);

		chars[count++] = utf8_to_unicode(p);
		p += l;
	}
	chars[count] = 0;
	*n = count;
	return chars;
}

/*
 * Count what text costs.  Segments fill greedily, as concatenated SMS do:
 * a character that does not fit whole starts the next segment.
 */
void
sms_count(const char *text, SmsCount *count)
{
	int			n;
	pg_wchar   *chars = decode_utf8(text, &n);
	int			total = 0;
	int			segments = 1;
	int			used = 0;
	int			single,
				per_segment;

	count->gsm7 = true;
	for (int i = 0; i < n && count->gsm7; i++)
		if (gsm7_width(chars[i]) == 0)
			count->gsm7 = false;

	for (int i = 0; i < n; i++)
		total += count->gsm7 ? gsm7_width(chars[i]) : (chars[i] > 0xFFFF ? 2 : 1);

	single = count->gsm7 ? GSM7_SINGLE : UCS2_SINGLE;
	per_segment = count->gsm7 ? GSM7_SEGMENT : UCS2_SEGMENT;
	if (total > single)
	{
		for (int i = 0; i < n; i++)
		{
			int			w = count->gsm7 ? gsm7_width(chars[i]) : (chars[i] > 0xFFFF ? 2 : 1);

			if (used + w > per_segment)
			{
				segments++;
				used = 0;
			}
			used += w;
		}
	}
	count->units = total;
	count->segments = segments;
	pfree(chars);
}

static void
append_char(StringInfo buf, pg_wchar c)
{
	unsigned char utf8[8];

	unicode_to_utf8(c, utf8);
	appendBinaryStringInfo(buf, (char *) utf8, pg_utf_mblen(utf8));
}

/* The replacement of a character from the table above, or NULL. */
static const char *
table_transliteration(pg_wchar c)
{
	for (int t = 0; t < lengthof(transliterations); t++)
		if (transliterations[t].from == c)
			return transliterations[t].to;
	return NULL;
}

static bool
is_combining_mark(pg_wchar c)
{
	return c >= 0x0300 && c <= 0x036F;
}

/*
 * Replace characters outside GSM-7 by the nearest text inside it where
 * there is one: letters lose their diacritics ("Zażółć" -> "Zazolc"),
 * compatibility forms decompose ("½" -> "1/2"), typographic quotes and
 * dashes become plain ones.  Characters of GSM-7 stay as they are ("é",
 * "ü", "ñ" are in it); what has no equivalent (an emoji, Cyrillic) stays
 * too, and the text then goes as UCS-2.
 */
char *
sms_transliterate(const char *text)
{
	int			n;
	pg_wchar   *chars = decode_utf8(text, &n);
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
	{
		pg_wchar	c = chars[i];
		const char *to;
		pg_wchar	one[2] = {c, 0};
		pg_wchar   *decomposed;
		bool		all_gsm;

		if (gsm7_width(c) > 0)
		{
			append_char(&buf, c);
			continue;
		}
		if ((to = table_transliteration(c)) != NULL)
		{
			appendStringInfoString(&buf, to);
			continue;
		}

		/* decompose: keep base characters, drop marks, if all can go */
		decomposed = unicode_normalize(UNICODE_NFKD, one);
		all_gsm = decomposed != NULL && decomposed[0] != 0 &&
			!(decomposed[0] == c && decomposed[1] == 0);	/* it did change */
		for (pg_wchar *d = decomposed; all_gsm && *d; d++)
			if (gsm7_width(*d) == 0 && !is_combining_mark(*d) &&
				table_transliteration(*d) == NULL)
				all_gsm = false;
		if (all_gsm)
		{
			for (pg_wchar *d = decomposed; *d; d++)
			{
				if (is_combining_mark(*d))
					continue;
				if (gsm7_width(*d) > 0)
					append_char(&buf, *d);
				else
					appendStringInfoString(&buf, table_transliteration(*d));
			}
		}
		else
			append_char(&buf, c);
		if (decomposed)
			pfree(decomposed);
	}
	pfree(chars);
	return buf.data;
}

/*
 * reminder.sms_segments(text, transliterate) -> (encoding, units, segments,
 * sms_text): what a text would cost as an SMS, as the worker counts it,
 * and the text that would go (transliterated or not).
 */
Datum
reminder_sms_segments(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	bool		transliterate = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	char	   *s = text_to_cstring(t);
	char	   *utf8 = (char *) pg_server_to_any(s, strlen(s), PG_UTF8);
	SmsCount	count;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (transliterate)
		utf8 = sms_transliterate(utf8);
	sms_count(utf8, &count);
	values[0] = CStringGetTextDatum(count.gsm7 ? "GSM-7" : "UCS-2");
	values[1] = Int32GetDatum(count.units);
	values[2] = Int32GetDatum(count.segments);
	values[3] = CStringGetTextDatum(pg_any_to_server(utf8, strlen(utf8), PG_UTF8));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
