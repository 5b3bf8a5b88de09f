/*-------------------------------------------------------------------------
 *
 * template.c
 *	  PostgreSQL glue of the Mustache engine: jsonb data, date filters,
 *	  error reporting and reminder.mustache().
 *
 * Data is read straight from the Jsonb containers (no conversion to another
 * tree): a MustacheValue for an object or array points at its
 * JsonbContainer, strings point into the jsonb, numbers at their Numeric.
 *
 * Date filters parse and convert with PostgreSQL's own datetime code
 * (DecodeDateTime, timestamp2tm with a pg_tz, to_char), so time zone rules
 * and DST are PostgreSQL's.  Month and weekday names come from the tables
 * below, not from the server's lc_time, so the output depends only on the
 * render's locale.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "render/mustache.h"
#include "render/template.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(reminder_mustache);


/* ----------------------------------------------------------------
 *		Locales
 * ----------------------------------------------------------------
 */

typedef enum FilterStyle
{
	STYLE_SHORT,
	STYLE_MEDIUM,
	STYLE_LONG,
	STYLE_FULL
} FilterStyle;

static const char *const style_names[] = {"short", "medium", "long", "full"};

/*
 * Names and formats of one language.  Formats use our own codes:
 * %d day, %D two-digit day, %m month, %M two-digit month, %y two-digit
 * year, %Y year, %b month abbreviation, %B month name (in the form used in
 * dates: genitive in Polish), %A weekday, %a weekday abbreviation, %H
 * two-digit hour 0-23, %k hour 0-23, %h hour 1-12, %i two-digit minute,
 * %p AM/PM, %Z time zone abbreviation.
 */
typedef struct LocaleInfo
{
	const char *code;
	const char *months[12];		/* standalone (nominative) */
	const char *months_in_date[12]; /* next to a day number */
	const char *months_abbr[12];
	const char *days[7];		/* Sunday first */
	const char *days_abbr[7];
	const char *date_format[4]; /* by FilterStyle */
	const char *time_format[4];
	const char *separator[4];	/* between date and time */
	/* numbers, as CLDR has them (what ICU and Intl.NumberFormat print) */
	const char *decimal;		/* decimal separator */
	const char *group;			/* grouping separator */
	int			min_grouping;	/* digits before the first group: 2 leaves
								 * 1234 alone but writes 12 345 */
	bool		currency_first; /* $1.00, else 1,00 $ */
} LocaleInfo;

#define EN_MONTHS "January", "February", "March", "April", "May", "June", \
	"July", "August", "September", "October", "November", "December"
#define DE_MONTHS "Januar", "Februar", "März", "April", "Mai", "Juni", \
	"Juli", "August", "September", "Oktober", "November", "Dezember"
#define FR_MONTHS "janvier", "février", "mars", "avril", "mai", "juin", \
	"juillet", "août", "septembre", "octobre", "novembre", "décembre"
#define ES_MONTHS "enero", "febrero", "marzo", "abril", "mayo", "junio", \
	"julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"

#define NBSP "\xC2\xA0"		/* U+00A0 no-break space */
#define NNBSP "\xE2\x80\xAF"	/* U+202F narrow no-break space */

static const LocaleInfo locales[] = {
	{
		"en",
		{EN_MONTHS},
		{EN_MONTHS},
		{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
		{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
		{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"},
		{"%m/%d/%y", "%b %d, %Y", "%B %d, %Y", "%A, %B %d, %Y"},
		{"%h:%i %p", "%h:%i %p", "%h:%i %p %Z", "%h:%i %p %Z"},
		{", ", ", ", " at ", " at "},
		".", ",", 1, true
	},
	{
		"pl",
		{"styczeń", "luty", "marzec", "kwiecień", "maj", "czerwiec", "lipiec",
		"sierpień", "wrzesień", "październik", "listopad", "grudzień"},
		{"stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca",
		"sierpnia", "września", "października", "listopada", "grudnia"},
		{"sty", "lut", "mar", "kwi", "maj", "cze", "lip", "sie", "wrz", "paź", "lis", "gru"},
		{"niedziela", "poniedziałek", "wtorek", "środa", "czwartek", "piątek", "sobota"},
		{"niedz.", "pon.", "wt.", "śr.", "czw.", "pt.", "sob."},
		{"%D.%M.%Y", "%d %b %Y", "%d %B %Y", "%A, %d %B %Y"},
		{"%H:%i", "%H:%i", "%H:%i %Z", "%H:%i %Z"},
		{", ", ", ", " o ", " o "},
		",", NBSP, 2, false
	},
	{
		"de",
		{DE_MONTHS},
		{DE_MONTHS},
		{"Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez."},
		{"Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"},
		{"So.", "Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa."},
		{"%D.%M.%y", "%D.%M.%Y", "%d. %B %Y", "%A, %d. %B %Y"},
		{"%H:%i", "%H:%i", "%H:%i %Z", "%H:%i %Z"},
		{", ", ", ", " um ", " um "},
		",", ".", 1, false
	},
	{
		"fr",
		{FR_MONTHS},
		{FR_MONTHS},
		{"janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."},
		{"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"},
		{"dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."},
		{"%D/%M/%Y", "%d %b %Y", "%d %B %Y", "%A %d %B %Y"},
		{"%H:%i", "%H:%i", "%H:%i %Z", "%H:%i %Z"},
		{" ", " ", " à ", " à "},
		",", NNBSP, 1, false
	},
	{
		"es",
		{ES_MONTHS},
		{ES_MONTHS},
		{"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"},
		{"domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"},
		{"dom", "lun", "mar", "mié", "jue", "vie", "sáb"},
		{"%d/%m/%y", "%d %b %Y", "%d de %B de %Y", "%A, %d de %B de %Y"},
		{"%k:%i", "%k:%i", "%k:%i %Z", "%k:%i %Z"},
		{", ", ", ", ", ", ", "},
		",", ".", 2, false
	},
};

/* "pl", "pl-PL", "pl_PL.UTF-8" -> pl; unknown or NULL -> en */
static const LocaleInfo *
find_locale(const char *name)
{
	size_t		len = 0;

	if (name == NULL)
		return &locales[0];
	while (name[len] != '\0' && name[len] != '-' && name[len] != '_' &&
		   name[len] != '.')
		len++;
	for (int i = 0; i < lengthof(locales); i++)
	{
		if (strlen(locales[i].code) == len &&
			pg_strncasecmp(locales[i].code, name, len) == 0)
			return &locales[i];
	}
	return &locales[0];
}


/* ----------------------------------------------------------------
 *		Render state and errors
 * ----------------------------------------------------------------
 */

/* the MustacheEnv arg: what the callbacks need to know about this render */
typedef struct RenderArg
{
	Jsonb	   *partials;
	pg_tz	   *tz;
	const LocaleInfo *locale;
	const char *what;
} RenderArg;

/* "partial \"x\"", the caller's description, or "the template" */
static const char *
unit_name(const char *partial, const char *what)
{
	if (partial)
		return psprintf("partial \"%s\"", partial);
	return what ? what : "the template";
}

static void report_error(const MustacheError *err, const char *what)
			pg_attribute_noreturn();

static void
report_error(const MustacheError *err, const char *what)
{
	const char *unit = unit_name(err->partial, what);
	int			code;

	switch (err->code)
	{
		case MUSTACHE_ERROR_SYNTAX:
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("template syntax error: %s", err->message),
					 errdetail("At line %d, column %d of %s.",
							   err->line, err->column, unit),
					 err->hint ? errhint("%s", err->hint) : 0,
					 (err->partial && what) ?
					 errcontext("rendering %s", what) : 0));
			break;
		case MUSTACHE_ERROR_DEPTH:
		case MUSTACHE_ERROR_LIMIT:
			code = err->code == MUSTACHE_ERROR_DEPTH ?
				ERRCODE_STATEMENT_TOO_COMPLEX : ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			ereport(ERROR,
					(errcode(code),
					 errmsg("template %s", err->message),
					 err->line > 0 ?
					 errdetail("At line %d, column %d of %s.",
							   err->line, err->column, unit) : 0,
					 err->hint ? errhint("%s", err->hint) : 0,
					 (err->partial && what) ?
					 errcontext("rendering %s", what) : 0));
			break;
		case MUSTACHE_OK:
			break;
	}
	elog(ERROR, "unexpected template error code %d", (int) err->code);
}

/* errdetail naming where a filter is */
static int
filter_errdetail(const MustacheFilter *f, const RenderArg *ra)
{
	return errdetail("Filter \"%s\" on \"%s\" at line %d, column %d of %s.",
					 f->name, f->tag_name, f->line, f->column,
					 unit_name(f->partial, ra ? ra->what : NULL));
}

/* f: the filter whose tz= names the zone, or NULL for the render's */
static pg_tz *
lookup_time_zone(const char *name, const MustacheFilter *f,
				 const RenderArg *ra)
{
	pg_tz	   *tz = pg_tzset(name);

	if (tz == NULL || !pg_tz_acceptable(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", name),
				 f ? filter_errdetail(f, ra) : 0,
				 errhint("Use a name from pg_timezone_names, such as \"Europe/Warsaw\" or \"UTC\".")));
	return tz;
}


/* ----------------------------------------------------------------
 *		jsonb data source
 * ----------------------------------------------------------------
 */

static void
from_jsonb_value(const JsonbValue *jv, MustacheValue *v)
{
	v->ptr = NULL;
	v->len = 0;
	switch (jv->type)
	{
		case jbvNull:
			v->kind = MUSTACHE_NULL;
			break;
		case jbvBool:
			v->kind = jv->val.boolean ? MUSTACHE_TRUE : MUSTACHE_FALSE;
			break;
		case jbvNumeric:
			v->kind = MUSTACHE_NUMBER;
			v->ptr = jv->val.numeric;
			break;
		case jbvString:
			v->kind = MUSTACHE_STRING;
			v->ptr = jv->val.string.val;
			v->len = jv->val.string.len;
			break;
		case jbvBinary:
			v->kind = JsonContainerIsArray(jv->val.binary.data) ?
				MUSTACHE_ARRAY : MUSTACHE_OBJECT;
			v->ptr = jv->val.binary.data;
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) jv->type);
	}
}

static void
jb_root(Jsonb *jb, MustacheValue *v)
{
	JsonbValue	jv;

	if (jb == NULL)
	{
		v->kind = MUSTACHE_MISSING;
		v->ptr = NULL;
		v->len = 0;
	}
	else if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, &jv);
		from_jsonb_value(&jv, v);
	}
	else
	{
		v->kind = JB_ROOT_IS_ARRAY(jb) ? MUSTACHE_ARRAY : MUSTACHE_OBJECT;
		v->ptr = &jb->root;
		v->len = 0;
	}
}

static bool
jb_lookup(void *arg, const MustacheValue *object, const char *key,
			 size_t keylen, MustacheValue *result)
{
	JsonbValue	jv;

	if (keylen > PG_INT32_MAX ||
		getKeyJsonValueFromContainer((JsonbContainer *) object->ptr,
									 key, (int) keylen, &jv) == NULL)
		return false;
	from_jsonb_value(&jv, result);
	return true;
}

static size_t
jb_array_length(void *arg, const MustacheValue *array)
{
	return JsonContainerSize((JsonbContainer *) array->ptr);
}

static void
jb_array_element(void *arg, const MustacheValue *array, size_t index,
					MustacheValue *result)
{
	JsonbValue *jv;

	jv = getIthJsonbValueFromContainer((JsonbContainer *) array->ptr,
									   (uint32) index);
	if (jv == NULL)
		elog(ERROR, "jsonb array element %zu not found", index);
	from_jsonb_value(jv, result);
	pfree(jv);
}

/* numbers as their exact decimal value without trailing zeros: 1.210 -> 1.21 */
static void
jb_append_text(void *arg, const MustacheValue *value, StringInfo out)
{
	if (value->kind == MUSTACHE_NUMBER)
	{
		char	   *s = numeric_normalize((Numeric) value->ptr);

		appendStringInfoString(out, s);
		pfree(s);
	}
	else
		JsonbToCString(out, (JsonbContainer *) value->ptr, -1);
}

static bool
jb_partial(void *arg, const char *name, size_t namelen,
			  const char **source, size_t *sourcelen)
{
	RenderArg  *ra = (RenderArg *) arg;
	JsonbValue	jv;

	if (ra == NULL || ra->partials == NULL || namelen > PG_INT32_MAX ||
		getKeyJsonValueFromContainer(&ra->partials->root, name, (int) namelen,
									 &jv) == NULL ||
		jv.type == jbvNull)
		return false;
	if (jv.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partial \"%.*s\" is not a string", (int) namelen, name),
				 errhint("Partials are given as a jsonb object mapping names to template texts.")));
	*source = jv.val.string.val;
	*sourcelen = jv.val.string.len;
	return true;
}

static void
render_check(void *arg)
{
	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
}


/* ----------------------------------------------------------------
 *		Date filters: date, time, datetime
 * ----------------------------------------------------------------
 */

typedef enum DatePart
{
	PART_DATE,
	PART_TIME,
	PART_DATETIME
} DatePart;

/* a date filter's arguments, checked once at compile time */
typedef struct DateFilter
{
	DatePart	part;
	FilterStyle	style;
	const char *pattern;		/* to_char() pattern, or NULL */
	pg_tz	   *tz;				/* tz= override, or NULL */
	const LocaleInfo *locale;	/* locale= override, or NULL */
} DateFilter;

static void prepare_number_filter(RenderArg *ra, MustacheFilter *f);

static void
prepare_filter(void *arg, MustacheFilter *f)
{
	RenderArg  *ra = (RenderArg *) arg;
	DateFilter *df;
	bool		have_style = false;

	if (strcmp(f->name, "number") == 0 || strcmp(f->name, "currency") == 0)
	{
		prepare_number_filter(ra, f);
		return;
	}
	df = palloc0(sizeof(DateFilter));
	if (strcmp(f->name, "date") == 0)
		df->part = PART_DATE;
	else if (strcmp(f->name, "time") == 0)
		df->part = PART_TIME;
	else if (strcmp(f->name, "datetime") == 0)
		df->part = PART_DATETIME;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown template filter \"%s\"", f->name),
				 filter_errdetail(f, ra),
				 errhint("The filters are json, default, date, time, datetime, number and currency.")));
	df->style = STYLE_MEDIUM;

	for (int i = 0; i < f->nargs; i++)
	{
		const MustacheFilterArg *a = &f->args[i];

		if (a->key == NULL)
		{
			if (have_style)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("filter \"%s\" takes one style or pattern", f->name),
						 filter_errdetail(f, ra),
						 errhint("Write for example {{ starts_at | %s long }} or {{ starts_at | %s \"DD.MM.YYYY HH24:MI\" }}.",
								 f->name, f->name)));
			have_style = true;
			if (a->quoted)
			{
				if (a->value[0] == '\0')
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("empty pattern in filter \"%s\"", f->name),
							 filter_errdetail(f, ra),
							 errhint("Write a to_char() pattern, for example \"DD.MM.YYYY HH24:MI\".")));
				df->pattern = a->value;
				continue;
			}
			for (df->style = STYLE_SHORT; df->style <= STYLE_FULL; df->style++)
				if (strcmp(a->value, style_names[df->style]) == 0)
					break;
			if (df->style > STYLE_FULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown style \"%s\" in filter \"%s\"", a->value, f->name),
						 filter_errdetail(f, ra),
						 errhint("The styles are short, medium, long and full; a to_char() pattern must be quoted.")));
		}
		else if (strcmp(a->key, "tz") == 0)
			df->tz = lookup_time_zone(a->value, f, ra);
		else if (strcmp(a->key, "locale") == 0)
			df->locale = find_locale(a->value);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown argument \"%s\" in filter \"%s\"", a->key, f->name),
					 filter_errdetail(f, ra),
					 errhint("The named arguments are tz and locale.")));
	}
	f->extra = df;
}

static const char *
kind_name(MustacheKind kind)
{
	switch (kind)
	{
		case MUSTACHE_MISSING:
		case MUSTACHE_NULL:
			return "null";
		case MUSTACHE_FALSE:
		case MUSTACHE_TRUE:
			return "a boolean";
		case MUSTACHE_NUMBER:
			return "a number";
		case MUSTACHE_STRING:
			return "a string";
		case MUSTACHE_ARRAY:
			return "an array";
		case MUSTACHE_OBJECT:
			return "an object";
	}
	return "?";
}

static void not_a_timestamp(const MustacheFilter *f, const RenderArg *ra,
							const MustacheValue *v) pg_attribute_noreturn();

static void
not_a_timestamp(const MustacheFilter *f, const RenderArg *ra,
				const MustacheValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
			 errmsg("value of \"%s\" is not a timestamp", f->tag_name),
			 v->kind == MUSTACHE_STRING ?
			 errdetail("Filter \"%s\" at line %d, column %d of %s got \"%.*s\".",
					   f->name, f->line, f->column,
					   unit_name(f->partial, ra->what),
					   pg_mbcliplen(v->ptr, (int) Min(v->len, 1024), 64),
					   (const char *) v->ptr) :
			 errdetail("Filter \"%s\" at line %d, column %d of %s got %s.",
					   f->name, f->line, f->column,
					   unit_name(f->partial, ra->what), kind_name(v->kind)),
			 errhint("Date filters take a timestamp with time zone as text, such as \"2026-11-24T14:00:00+01:00\", or a Unix epoch number.")));
}

/*
 * A timestamptz from text the way timestamptz_in reads it (a value without
 * an offset is in the session TimeZone), or from Unix epoch seconds.
 */
static TimestampTz
value_to_timestamptz(const MustacheFilter *f, const RenderArg *ra,
					 const MustacheValue *v)
{
	TimestampTz result;

	if (v->kind == MUSTACHE_NUMBER)
	{
		float8		seconds;

		seconds = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
													 NumericGetDatum((Numeric) v->ptr)));
		if (isnan(seconds) ||
			seconds < (float8) SECS_PER_DAY * (DATETIME_MIN_JULIAN - UNIX_EPOCH_JDATE) ||
			seconds >= (float8) SECS_PER_DAY * (TIMESTAMP_END_JULIAN - UNIX_EPOCH_JDATE))
			not_a_timestamp(f, ra, v);
		seconds -= ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);
		result = (TimestampTz) rint(seconds * USECS_PER_SEC);
		if (!IS_VALID_TIMESTAMP(result))
			not_a_timestamp(f, ra, v);
		return result;
	}
	else if (v->kind == MUSTACHE_STRING && v->len < MAXDATELEN)
	{
		char		str[MAXDATELEN + 1];
		char		workbuf[MAXDATELEN + MAXDATEFIELDS];
		char	   *field[MAXDATEFIELDS];
		int			ftype[MAXDATEFIELDS];
		int			nf;
		int			dtype;
		int			tz;
		struct pg_tm tt;
		fsec_t		fsec;

		memcpy(str, v->ptr, v->len);
		str[v->len] = '\0';
		if (ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf) == 0 &&
			DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) == 0)
		{
			if (dtype == DTK_DATE && tm2timestamp(&tt, fsec, &tz, &result) == 0)
				return result;
			if (dtype == DTK_EPOCH)
				return SetEpochTimestamp();
		}
	}
	not_a_timestamp(f, ra, v);
}

/* UTF-8 aware case mapping, enough for the names in our tables */
static uint32
case_map(uint32 c, bool upper)
{
	if (c < 0x80)
		return upper ? pg_ascii_toupper((unsigned char) c) :
			pg_ascii_tolower((unsigned char) c);
	if (c >= 0xC0 && c <= 0xFE && c != 0xD7 && c != 0xF7 && c != 0xDF)
		return upper ? (c >= 0xE0 ? c - 0x20 : c) : (c < 0xE0 ? c + 0x20 : c);
	if (c >= 0x100 && c <= 0x17E && c != 0x130 && c != 0x131 &&
		c != 0x138 && c != 0x149 && c != 0x178)
	{
		/* Latin Extended-A pairs: upper case is even, except in two runs */
		bool		odd_upper = (c >= 0x139 && c <= 0x148) || c >= 0x179;
		bool		is_upper = ((c & 1) == 1) == odd_upper;

		if (upper && !is_upper)
			return c - 1;
		if (!upper && is_upper)
			return c + 1;
	}
	return c;
}

typedef enum CaseMode
{
	CASE_ASIS,
	CASE_UPPER,
	CASE_LOWER,
	CASE_INITCAP
} CaseMode;

static void
append_cased(StringInfo out, const char *s, CaseMode mode)
{
	bool		first = true;

	while (*s)
	{
		const unsigned char *u = (const unsigned char *) s;
		uint32	c;
		int			len;

		if (u[0] < 0x80)
		{
			c = u[0];
			len = 1;
		}
		else if ((u[0] & 0xE0) == 0xC0 && (u[1] & 0xC0) == 0x80)
		{
			c = ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
			len = 2;
		}
		else
		{
			/* not in our tables: copy the byte */
			appendStringInfoChar(out, *s++);
			first = false;
			continue;
		}
		if (mode == CASE_UPPER || (mode == CASE_INITCAP && first))
			c = case_map(c, true);
		else if (mode == CASE_LOWER || mode == CASE_INITCAP)
			c = case_map(c, false);
		if (c < 0x80)
			appendStringInfoChar(out, (char) c);
		else
		{
			appendStringInfoChar(out, (char) (0xC0 | (c >> 6)));
			appendStringInfoChar(out, (char) (0x80 | (c & 0x3F)));
		}
		s += len;
		first = false;
	}
}

/* a broken-down local time plus what the formats need besides pg_tm */
typedef struct LocalTime
{
	struct pg_tm tm;
	fsec_t		fsec;
	const char *zone;			/* abbreviation, e.g. "CET" */
	int			wday;			/* 0 = Sunday */
} LocalTime;

static void
append_styled(StringInfo out, const char *fmt, const LocalTime *lt,
			  const LocaleInfo *loc)
{
	const struct pg_tm *tm = &lt->tm;

	for (; *fmt; fmt++)
	{
		if (*fmt != '%' || fmt[1] == '\0')
		{
			appendStringInfoChar(out, *fmt);
			continue;
		}
		switch (*++fmt)
		{
			case 'd':
				appendStringInfo(out, "%d", tm->tm_mday);
				break;
			case 'D':
				appendStringInfo(out, "%02d", tm->tm_mday);
				break;
			case 'm':
				appendStringInfo(out, "%d", tm->tm_mon);
				break;
			case 'M':
				appendStringInfo(out, "%02d", tm->tm_mon);
				break;
			case 'y':
				appendStringInfo(out, "%02d", tm->tm_year % 100);
				break;
			case 'Y':
				appendStringInfo(out, "%d", tm->tm_year);
				break;
			case 'b':
				appendStringInfoString(out, loc->months_abbr[tm->tm_mon - 1]);
				break;
			case 'B':
				appendStringInfoString(out, loc->months_in_date[tm->tm_mon - 1]);
				break;
			case 'A':
				appendStringInfoString(out, loc->days[lt->wday]);
				break;
			case 'a':
				appendStringInfoString(out, loc->days_abbr[lt->wday]);
				break;
			case 'H':
				appendStringInfo(out, "%02d", tm->tm_hour);
				break;
			case 'k':
				appendStringInfo(out, "%d", tm->tm_hour);
				break;
			case 'h':
				appendStringInfo(out, "%d", tm->tm_hour % 12 == 0 ? 12 : tm->tm_hour % 12);
				break;
			case 'i':
				appendStringInfo(out, "%02d", tm->tm_min);
				break;
			case 'p':
				appendStringInfoString(out, tm->tm_hour < 12 ? "AM" : "PM");
				break;
			case 'Z':
				appendStringInfoString(out, lt->zone ? lt->zone : "");
				break;
			default:
				appendStringInfoChar(out, *fmt);
				break;
		}
	}
}

/* append s as a to_char() literal: "s" with \ and " escaped */
static void
append_literal(StringInfo out, const char *s, CaseMode mode)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_cased(&buf, s, mode);
	appendStringInfoChar(out, '"');
	for (const char *p = buf.data; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *p);
	}
	appendStringInfoChar(out, '"');
	pfree(buf.data);
}

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Rewrite a to_char() pattern so that to_char() of the local timestamp
 * (a timestamp without time zone) gives what to_char() of the timestamptz
 * would give in our zone and locale: TM-prefixed month and day names come
 * from our tables, and the zone fields (TZ, tz, TZH, TZM, OF) become
 * literals.  Quoted text and backslash escapes are copied unchanged.
 */
static char *
rewrite_pattern(const char *pattern, const LocalTime *lt,
				const LocaleInfo *loc)
{
	static const struct
	{
		const char *token;
		int			which;		/* 0 month, 1 month abbr, 2 day, 3 day abbr */
		CaseMode	mode;
	}			names[] = {
		{"MONTH", 0, CASE_UPPER}, {"Month", 0, CASE_INITCAP}, {"month", 0, CASE_LOWER},
		{"MON", 1, CASE_UPPER}, {"Mon", 1, CASE_INITCAP}, {"mon", 1, CASE_LOWER},
		{"DAY", 2, CASE_UPPER}, {"Day", 2, CASE_INITCAP}, {"day", 2, CASE_LOWER},
		{"DY", 3, CASE_UPPER}, {"Dy", 3, CASE_INITCAP}, {"dy", 3, CASE_LOWER},
	};
	StringInfoData out;
	long		gmtoff = lt->tm.tm_gmtoff;
	long		absoff = gmtoff < 0 ? -gmtoff : gmtoff;
	char		sign = gmtoff < 0 ? '-' : '+';
	bool		in_date = strstr(pattern, "DD") != NULL || strstr(pattern, "dd") != NULL;
	bool		quoted = false;
	const char *p = pattern;

	initStringInfo(&out);
	while (*p)
	{
		if (*p == '\\' && p[1] != '\0')
		{
			appendBinaryStringInfo(&out, p, 2);
			p += 2;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		if (quoted || *p == '"')
		{
			appendStringInfoChar(&out, *p++);
			continue;
		}

		if (starts_with(p, "TM") || starts_with(p, "FMTM"))
		{
			const char *q = p + (p[0] == 'F' ? 4 : 2);
			int			i;

			if (starts_with(q, "FM"))
				q += 2;
			for (i = 0; i < lengthof(names); i++)
				if (starts_with(q, names[i].token))
					break;
			if (i < lengthof(names))
			{
				const char *name;

				if (names[i].which == 0)
					name = (in_date ? loc->months_in_date : loc->months)[lt->tm.tm_mon - 1];
				else if (names[i].which == 1)
					name = loc->months_abbr[lt->tm.tm_mon - 1];
				else if (names[i].which == 2)
					name = loc->days[lt->wday];
				else
					name = loc->days_abbr[lt->wday];
				append_literal(&out, name, names[i].mode);
				p = q + strlen(names[i].token);
				continue;
			}
		}

		if (starts_with(p, "TZH"))
		{
			appendStringInfo(&out, "\"%c%02ld\"", sign, absoff / SECS_PER_HOUR);
			p += 3;
		}
		else if (starts_with(p, "TZM"))
		{
			appendStringInfo(&out, "\"%02ld\"", (absoff % SECS_PER_HOUR) / SECS_PER_MINUTE);
			p += 3;
		}
		else if (starts_with(p, "TZ") || starts_with(p, "tz"))
		{
			append_literal(&out, lt->zone ? lt->zone : "",
						   p[0] == 'T' ? CASE_UPPER : CASE_LOWER);
			p += 2;
		}
		else if (starts_with(p, "OF") || starts_with(p, "of"))
		{
			appendStringInfo(&out, "\"%c%02ld", sign, absoff / SECS_PER_HOUR);
			if (absoff % SECS_PER_HOUR != 0)
				appendStringInfo(&out, ":%02ld", (absoff % SECS_PER_HOUR) / SECS_PER_MINUTE);
			appendStringInfoChar(&out, '"');
			p += 2;
		}
		else
			appendStringInfoChar(&out, *p++);
	}
	return out.data;
}

static void apply_number_filter(RenderArg *ra, const MustacheFilter *f,
								const MustacheValue *in, const MustacheValue *argv,
								MustacheValue *result);

static void
apply_filter(void *arg, const MustacheFilter *f, const MustacheValue *in,
			 const MustacheValue *argv, MustacheValue *result)
{
	RenderArg  *ra = (RenderArg *) arg;
	const DateFilter *df = (const DateFilter *) f->extra;
	const LocaleInfo *loc;
	TimestampTz ts;
	LocalTime	lt;
	int			tzoff;
	StringInfoData out;

	if (strcmp(f->name, "number") == 0 || strcmp(f->name, "currency") == 0)
	{
		apply_number_filter(ra, f, in, argv, result);
		return;
	}
	Assert(df != NULL);
	/* like plain interpolation, a missing value prints as nothing */
	if (in->kind == MUSTACHE_MISSING || in->kind == MUSTACHE_NULL)
	{
		*result = *in;
		return;
	}

	ts = value_to_timestamptz(f, ra, in);
	loc = df->locale ? df->locale : ra->locale;
	if (timestamp2tm(ts, &tzoff, &lt.tm, &lt.fsec, &lt.zone,
					 df->tz ? df->tz : ra->tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range"),
				 filter_errdetail(f, ra)));
	lt.wday = j2day(date2j(lt.tm.tm_year, lt.tm.tm_mon, lt.tm.tm_mday));

	initStringInfo(&out);
	if (df->pattern)
	{
		Timestamp	local;
		text	   *formatted;

		if (tm2timestamp(&lt.tm, lt.fsec, NULL, &local) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range"),
					 filter_errdetail(f, ra)));
		formatted = DatumGetTextPP(DirectFunctionCall2(timestamp_to_char,
													   TimestampGetDatum(local),
													   PointerGetDatum(cstring_to_text(rewrite_pattern(df->pattern, &lt, loc)))));
		appendBinaryStringInfo(&out, VARDATA_ANY(formatted),
							   VARSIZE_ANY_EXHDR(formatted));
	}
	else
	{
		if (df->part != PART_TIME)
			append_styled(&out, loc->date_format[df->style], &lt, loc);
		if (df->part == PART_DATETIME)
			appendStringInfoString(&out, loc->separator[df->style]);
		if (df->part != PART_DATE)
			append_styled(&out, loc->time_format[df->style], &lt, loc);
	}
	result->kind = MUSTACHE_STRING;
	result->ptr = out.data;
	result->len = out.len;
}


/* ----------------------------------------------------------------
 *		Number filters: number, currency
 *
 * Numbers are formatted from their exact decimal text (numeric_out of the
 * jsonb numeric, rounded with numeric_round when asked to), never through
 * a double: 12345678901234567.89 keeps every digit and 0.125 rounds to
 * 0.13.  Separators, grouping and the currency's place and symbol follow
 * CLDR for each locale, as ICU and Intl.NumberFormat print them.
 * ----------------------------------------------------------------
 */

#define MAX_FRACTION_DIGITS	100	/* as Intl.NumberFormat allows */

/* a number filter's arguments, checked once at compile time */
typedef struct NumberFilter
{
	bool		currency;		/* currency, else number */
	int			digits;			/* fraction digits; -1: the value's own
								 * (number) or the currency's (currency) */
	char		code[4];		/* currency code; "" when from the data */
	int			code_arg;		/* currency: argument naming the code in the
								 * data, or -1 */
	bool		show_code;		/* display=code: PLN, not zł */
	bool		grouping;
	const LocaleInfo *locale;	/* locale= override, or NULL */
} NumberFilter;

/* Currencies whose minor unit is not 2 digits (CLDR, as Intl has them). */
static const char *const currency_digits_0[] = {
	"AFN", "ALL", "BIF", "CLP", "COP", "DJF", "GNF", "HUF", "IDR", "IQD",
	"IRR", "ISK", "JPY", "KMF", "KPW", "KRW", "LAK", "LBP", "MGA", "MMK",
	"PKR", "PYG", "RWF", "SLL", "SOS", "SYP", "UGX", "VND", "VUV", "XAF",
	"XOF", "XPF", "YER", NULL
};
static const char *const currency_digits_3[] = {
	"BHD", "JOD", "KWD", "LYD", "OMR", "TND", NULL
};

/*
 * Currency symbols by locale, in the order of locales[] (en, pl, de, fr,
 * es); NULL: the locale writes the ISO code.  A currency not listed is
 * written as its code everywhere, as ICU does for symbols it lacks.
 */
typedef struct CurrencySymbols
{
	const char *code;
	const char *symbol[5];
} CurrencySymbols;

static const CurrencySymbols currency_symbols[] = {
	{"AUD", {"A$", NULL, "AU$", "$AU", NULL}},
	{"BRL", {"R$", "R$", "R$", "R$", NULL}},
	{"CAD", {"CA$", NULL, "CA$", "$CA", NULL}},
	{"CNY", {"CN¥", NULL, "CN¥", NULL, NULL}},
	{"EUR", {"€", "€", "€", "€", "€"}},
	{"GBP", {"£", NULL, "£", "£GB", NULL}},
	{"HKD", {"HK$", NULL, "HK$", NULL, NULL}},
	{"ILS", {"₪", NULL, "₪", "₪", NULL}},
	{"INR", {"₹", NULL, "₹", "₹", NULL}},
	{"JPY", {"¥", NULL, "¥", NULL, NULL}},
	{"KRW", {"₩", NULL, "₩", "₩", NULL}},
	{"MXN", {"MX$", NULL, "MX$", "$MX", NULL}},
	{"NZD", {"NZ$", NULL, "NZ$", "$NZ", NULL}},
	{"PHP", {"₱", NULL, NULL, NULL, NULL}},
	{"PLN", {NULL, "zł", NULL, NULL, NULL}},
	{"SGD", {NULL, NULL, NULL, "$SG", NULL}},
	{"THB", {NULL, NULL, "฿", NULL, "฿"}},
	{"TWD", {"NT$", NULL, "NT$", NULL, NULL}},
	{"USD", {"$", NULL, "$", "$US", "US$"}},
	{"VND", {"₫", NULL, "₫", "₫", "₫"}},
};

StaticAssertDecl(lengthof(locales) == 5, "currency_symbols has a column per locale");

static bool
in_list(const char *code, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(code, *list) == 0)
			return true;
	return false;
}

static int
currency_digits(const char *code)
{
	if (in_list(code, currency_digits_0))
		return 0;
	if (in_list(code, currency_digits_3))
		return 3;
	return 2;
}

static const char *
currency_symbol(const char *code, const LocaleInfo *loc)
{
	for (int i = 0; i < lengthof(currency_symbols); i++)
	{
		if (strcmp(currency_symbols[i].code, code) == 0)
		{
			const char *s = currency_symbols[i].symbol[loc - locales];

			return s ? s : code;
		}
	}
	return code;
}

/* an ISO 4217 code: three letters A-Z (or a-z, with upper_ok) */
static bool
is_currency_code(const char *s, size_t len, bool upper_ok)
{
	if (len != 3)
		return false;
	for (size_t i = 0; i < 3; i++)
	{
		if (s[i] >= 'A' && s[i] <= 'Z')
			continue;
		if (upper_ok && s[i] >= 'a' && s[i] <= 'z')
			continue;
		return false;
	}
	return true;
}

/* a dotted name as a tag has it: letters, digits, "_", "-" and dots */
static bool
is_data_name(const char *s)
{
	if (*s == '\0' || *s == '.')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char) *s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static int
parse_digits(const char *s, const MustacheFilter *f, const RenderArg *ra)
{
	int			n = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9' && n <= MAX_FRACTION_DIGITS; p++)
		n = n * 10 + (*p - '0');
	if (p == s || *p != '\0' || n > MAX_FRACTION_DIGITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid number of fraction digits \"%s\" in filter \"%s\"", s, f->name),
				 filter_errdetail(f, ra),
				 errhint("Write a whole number from 0 to %d, for example {{ total | number 2 }}.",
						 MAX_FRACTION_DIGITS)));
	return n;
}

static bool
parse_onoff(const char *s, const MustacheFilter *f, const RenderArg *ra)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "on") == 0)
		return true;
	if (strcmp(s, "false") == 0 || strcmp(s, "off") == 0)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value \"%s\" for argument \"grouping\" of filter \"%s\"", s, f->name),
			 filter_errdetail(f, ra),
			 errhint("Write grouping=false or grouping=true.")));
	return true;				/* keep compiler quiet */
}

/*
 *	{{ value | number [DIGITS] [locale=L] [grouping=false] }}
 *	{{ value | currency CODE|NAME [DIGITS] [display=symbol|code] [locale=L] [grouping=false] }}
 */
static void
prepare_number_filter(RenderArg *ra, MustacheFilter *f)
{
	NumberFilter *nf = palloc0(sizeof(NumberFilter));
	int			npositional = 0;

	nf->currency = strcmp(f->name, "currency") == 0;
	nf->digits = -1;
	nf->code_arg = -1;
	nf->grouping = true;

	for (int i = 0; i < f->nargs; i++)
	{
		MustacheFilterArg *a = &f->args[i];

		if (a->key == NULL)
		{
			npositional++;
			if (nf->currency && npositional == 1)
			{
				size_t		len = strlen(a->value);

				if (is_currency_code(a->value, len, false))
					memcpy(nf->code, a->value, 4);
				else if (!a->quoted && is_data_name(a->value))
				{
					/* the code comes from the data: {{ total | currency row.currency }} */
					a->is_name = true;
					nf->code_arg = i;
				}
				else
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("invalid currency code \"%s\" in filter \"currency\"", a->value),
							 filter_errdetail(f, ra),
							 errhint("Write an ISO 4217 code in capitals, such as {{ total | currency PLN }}, or the name of the value holding it, such as {{ total | currency row.currency }}.")));
			}
			else if (npositional == (nf->currency ? 2 : 1))
				nf->digits = parse_digits(a->value, f, ra);
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("too many arguments for filter \"%s\"", f->name),
						 filter_errdetail(f, ra),
						 errhint(nf->currency ?
								 "Write {{ total | currency PLN }} or {{ total | currency PLN 0 }}." :
								 "Write {{ total | number }} or {{ total | number 2 }}.")));
		}
		else if (strcmp(a->key, "locale") == 0)
			nf->locale = find_locale(a->value);
		else if (strcmp(a->key, "grouping") == 0)
			nf->grouping = parse_onoff(a->value, f, ra);
		else if (nf->currency && strcmp(a->key, "display") == 0)
		{
			if (strcmp(a->value, "code") == 0)
				nf->show_code = true;
			else if (strcmp(a->value, "symbol") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value \"%s\" for argument \"display\" of filter \"currency\"", a->value),
						 filter_errdetail(f, ra),
						 errhint("Write display=symbol (the default: zł, $, €) or display=code (PLN, USD, EUR).")));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown argument \"%s\" in filter \"%s\"", a->key, f->name),
					 filter_errdetail(f, ra),
					 errhint(nf->currency ? "The named arguments are display, locale and grouping." :
							 "The named arguments are locale and grouping.")));
	}
	if (nf->currency && npositional == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter \"currency\" needs a currency"),
				 filter_errdetail(f, ra),
				 errhint("Write an ISO 4217 code, such as {{ total | currency PLN }}, or the name of the value holding it, such as {{ total | currency row.currency }}.")));
	f->extra = nf;
}

static void not_a_number(const MustacheFilter *f, const RenderArg *ra,
						 const MustacheValue *v) pg_attribute_noreturn();

static void
not_a_number(const MustacheFilter *f, const RenderArg *ra,
			 const MustacheValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("value of \"%s\" is not a number", f->tag_name),
			 v->kind == MUSTACHE_STRING ?
			 errdetail("Filter \"%s\" at line %d, column %d of %s got \"%.*s\".",
					   f->name, f->line, f->column,
					   unit_name(f->partial, ra->what),
					   pg_mbcliplen(v->ptr, (int) Min(v->len, 1024), 64),
					   (const char *) v->ptr) :
			 errdetail("Filter \"%s\" at line %d, column %d of %s got %s.",
					   f->name, f->line, f->column,
					   unit_name(f->partial, ra->what), kind_name(v->kind)),
			 errhint("Number filters take a JSON number, or a decimal number as text such as \"249.90\".")));
}

/*
 * The value as a numeric: a jsonb number as it is (with its scale: a
 * numeric(10,2) column gives 249.90), or text holding a decimal number in
 * JSON's syntax.  NaN and infinities are not numbers here.
 */
static Numeric
value_to_numeric(const MustacheFilter *f, const RenderArg *ra,
				 const MustacheValue *v)
{
	if (v->kind == MUSTACHE_NUMBER)
		return (Numeric) v->ptr;
	if (v->kind == MUSTACHE_STRING && v->len > 0 && v->len <= 1000)
	{
		const char *s = v->ptr;
		size_t		i = 0;
		size_t		digits = 0;

		if (s[i] == '-' || s[i] == '+')
			i++;
		for (; i < v->len && isdigit((unsigned char) s[i]); i++)
			digits++;
		if (i < v->len && s[i] == '.')
			for (i++; i < v->len && isdigit((unsigned char) s[i]); i++)
				digits++;
		if (digits > 0 && i < v->len && (s[i] == 'e' || s[i] == 'E'))
		{
			size_t		exp_start;

			i++;
			if (i < v->len && (s[i] == '-' || s[i] == '+'))
				i++;
			exp_start = i;
			for (; i < v->len && isdigit((unsigned char) s[i]); i++)
				;
			if (i == exp_start)
				digits = 0;
		}
		if (digits > 0 && i == v->len)
			return DatumGetNumeric(DirectFunctionCall3(numeric_in,
													   CStringGetDatum(pnstrdup(s, v->len)),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));
	}
	not_a_number(f, ra, v);
}

/* the currency code a currency filter names, checked */
static void
filter_currency(const MustacheFilter *f, const RenderArg *ra,
				const NumberFilter *nf, const MustacheValue *argv, char *code)
{
	const MustacheValue *cv;

	if (nf->code_arg < 0)
	{
		memcpy(code, nf->code, 4);
		return;
	}
	Assert(argv != NULL);
	cv = &argv[nf->code_arg];
	if (cv->kind == MUSTACHE_STRING && is_currency_code(cv->ptr, cv->len, true))
	{
		for (int i = 0; i < 3; i++)
			code[i] = pg_ascii_toupper(((const char *) cv->ptr)[i]);
		code[3] = '\0';
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("currency of \"%s\" is not a currency code", f->tag_name),
			 cv->kind == MUSTACHE_STRING ?
			 errdetail("Filter \"currency\" at line %d, column %d of %s found \"%.*s\" in \"%s\".",
					   f->line, f->column, unit_name(f->partial, ra->what),
					   pg_mbcliplen(cv->ptr, (int) Min(cv->len, 1024), 64),
					   (const char *) cv->ptr, f->args[nf->code_arg].value) :
			 errdetail("Filter \"currency\" at line %d, column %d of %s found %s in \"%s\".",
					   f->line, f->column, unit_name(f->partial, ra->what),
					   cv->kind == MUSTACHE_MISSING ? "nothing" : kind_name(cv->kind),
					   f->args[nf->code_arg].value),
			 errhint("The value named after \"currency\" must hold an ISO 4217 code such as \"PLN\"; a code written in capitals, {{ total | currency PLN }}, is used as it is.")));
}

/*
 * Append the decimal text s ("-1234.50", as numeric_out writes it) in the
 * locale's form: grouping separators from the right of the integer part
 * (once it has at least 3 + min_grouping digits), its decimal separator.
 */
static void
append_localized(StringInfo out, const char *s, const LocaleInfo *loc,
				 bool grouping)
{
	const char *point = strchr(s, '.');
	size_t		intlen = point ? (size_t) (point - s) : strlen(s);

	if (!grouping || intlen < (size_t) (3 + loc->min_grouping))
		appendBinaryStringInfo(out, s, intlen);
	else
	{
		for (size_t i = 0; i < intlen; i++)
		{
			if (i > 0 && (intlen - i) % 3 == 0)
				appendStringInfoString(out, loc->group);
			appendStringInfoChar(out, s[i]);
		}
	}
	if (point && point[1] != '\0')
	{
		appendStringInfoString(out, loc->decimal);
		appendStringInfoString(out, point + 1);
	}
}

static void
apply_number_filter(RenderArg *ra, const MustacheFilter *f,
					const MustacheValue *in, const MustacheValue *argv,
					MustacheValue *result)
{
	const NumberFilter *nf = (const NumberFilter *) f->extra;
	const LocaleInfo *loc = nf->locale ? nf->locale : ra->locale;
	Numeric		num;
	int			digits = nf->digits;
	char		code[4];
	char	   *text;
	bool		negative;
	StringInfoData out;

	Assert(nf != NULL);
	/* like plain interpolation, a missing value prints as nothing */
	if (in->kind == MUSTACHE_MISSING || in->kind == MUSTACHE_NULL)
	{
		*result = *in;
		return;
	}

	num = value_to_numeric(f, ra, in);
	if (nf->currency)
	{
		filter_currency(f, ra, nf, argv, code);
		if (digits < 0)
			digits = currency_digits(code);
	}
	if (digits >= 0)
		num = DatumGetNumeric(DirectFunctionCall2(numeric_round,
												  NumericGetDatum(num),
												  Int32GetDatum(digits)));
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));

	/* a value that rounds to zero has no sign: 0.00, not -0.00 */
	negative = text[0] == '-' && strspn(text + 1, "0.") != strlen(text + 1);
	if (text[0] == '-')
		text++;

	initStringInfo(&out);
	if (negative)
		appendStringInfoChar(&out, '-');
	if (!nf->currency)
		append_localized(&out, text, loc, nf->grouping);
	else
	{
		const char *symbol = nf->show_code ? code : currency_symbol(code, loc);

		if (loc->currency_first)
		{
			char		last = symbol[strlen(symbol) - 1];

			appendStringInfoString(&out, symbol);
			/* a symbol ending in a letter is set apart: PLN 249.90, $249.90 */
			if ((last >= 'A' && last <= 'Z') || (last >= 'a' && last <= 'z'))
				appendStringInfoString(&out, NBSP);
			append_localized(&out, text, loc, nf->grouping);
		}
		else
		{
			append_localized(&out, text, loc, nf->grouping);
			appendStringInfoString(&out, NBSP);
			appendStringInfoString(&out, symbol);
		}
	}
	result->kind = MUSTACHE_STRING;
	result->ptr = out.data;
	result->len = out.len;
}


/* ----------------------------------------------------------------
 *		Public interface
 * ----------------------------------------------------------------
 */

static const MustacheCallbacks jsonb_callbacks = {
	.lookup = jb_lookup,
	.array_length = jb_array_length,
	.array_element = jb_array_element,
	.append_text = jb_append_text,
	.partial = jb_partial,
	.prepare_filter = prepare_filter,
	.apply_filter = apply_filter,
	.check = render_check,
};

RenderEscape
template_parse_escape(const char *name)
{
	if (strcmp(name, "html") == 0)
		return RENDER_ESCAPE_HTML;
	if (strcmp(name, "none") == 0)
		return RENDER_ESCAPE_NONE;
	if (strcmp(name, "json") == 0)
		return RENDER_ESCAPE_JSON;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid escape mode \"%s\"", name),
			 errhint("The escape modes are html, none and json.")));
	return RENDER_ESCAPE_HTML;	/* keep compiler quiet */
}

MustacheTemplate *
template_compile(const char *source, const char *what)
{
	RenderArg	ra;
	MustacheEnv env;
	MustacheError err;
	MustacheTemplate *tpl;

	memset(&ra, 0, sizeof(ra));
	ra.what = what;
	memset(&env, 0, sizeof(env));
	env.cb = &jsonb_callbacks;
	env.arg = &ra;

	tpl = mustache_compile(source, strlen(source), &env, &err);
	if (tpl == NULL)
		report_error(&err, what);
	return tpl;
}

void
template_check_syntax(const char *source, const char *what)
{
	mustache_free(template_compile(source, what));
}

char *
template_render_compiled(const MustacheTemplate *tpl, Jsonb *data,
						 const RenderOptions *opts)
{
	static const RenderOptions defaults;
	RenderArg	ra;
	MustacheEnv env;
	MustacheError err;
	MustacheValue root;
	StringInfoData out;
	MemoryContext cxt;
	MemoryContext oldcxt;

	if (opts == NULL)
		opts = &defaults;
	if (opts->partials && !JB_ROOT_IS_OBJECT(opts->partials))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partials must be a jsonb object"),
				 errhint("Pass partials as {\"name\": \"template text\", ...}.")));

	memset(&ra, 0, sizeof(ra));
	ra.partials = opts->partials;
	ra.tz = opts->time_zone ?
		lookup_time_zone(opts->time_zone, NULL, NULL) : session_timezone;
	ra.locale = find_locale(opts->locale);
	ra.what = opts->what;

	memset(&env, 0, sizeof(env));
	env.cb = &jsonb_callbacks;
	env.arg = &ra;
	switch (opts->escape)
	{
		case RENDER_ESCAPE_HTML:
			env.escape = MUSTACHE_ESCAPE_HTML;
			break;
		case RENDER_ESCAPE_NONE:
			env.escape = MUSTACHE_ESCAPE_NONE;
			break;
		case RENDER_ESCAPE_JSON:
			env.escape = MUSTACHE_ESCAPE_JSON;
			break;
	}
	env.max_output = opts->max_output > 0 ?
		Min(opts->max_output, MaxAllocSize / 2) : RENDER_DEFAULT_MAX_OUTPUT;
	/* bound the work too: a loop can run long while printing nothing */
	env.max_steps = (uint64) env.max_output * 16;

	jb_root(data, &root);
	initStringInfo(&out);

	/* scratch memory of the render (partials, filter results) */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "template render",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (!mustache_render(tpl, &root, &env, &out, &err))
			report_error(&err, opts->what);
	}
	PG_FINALLY();
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
	}
	PG_END_TRY();

	return out.data;
}

char *
template_render(const char *source, Jsonb *data, const RenderOptions *opts)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	MustacheTemplate *tpl;
	char	   *volatile result = NULL;

	/* compile into a throwaway context; the result goes to the caller's */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "template compile",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		tpl = template_compile(source, opts ? opts->what : NULL);
		MemoryContextSwitchTo(oldcxt);
		result = template_render_compiled(tpl, data, opts);
	}
	PG_FINALLY();
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
	}
	PG_END_TRY();

	return result;
}

bool
template_data_has(Jsonb *data, const char *dotted_name)
{
	MustacheValue root;
	MustacheValue v;

	jb_root(data, &root);
	mustache_resolve(&jsonb_callbacks, NULL, &root, dotted_name,
					 strlen(dotted_name), &v);
	return v.kind != MUSTACHE_MISSING && v.kind != MUSTACHE_NULL;
}


/* ----------------------------------------------------------------
 *		SQL interface
 * ----------------------------------------------------------------
 */

/*
 * reminder.mustache(template text, data jsonb, partials jsonb DEFAULT '{}',
 *					 escape text DEFAULT 'html', time_zone text DEFAULT NULL,
 *					 locale text DEFAULT 'en', max_output integer DEFAULT NULL)
 */
Datum
reminder_mustache(PG_FUNCTION_ARGS)
{
	RenderOptions opts;
	Jsonb	   *data;
	char	   *result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	memset(&opts, 0, sizeof(opts));
	data = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
		opts.partials = PG_GETARG_JSONB_P(2);
	if (!PG_ARGISNULL(3))
		opts.escape = template_parse_escape(text_to_cstring(PG_GETARG_TEXT_PP(3)));
	if (!PG_ARGISNULL(4))
		opts.time_zone = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!PG_ARGISNULL(5))
		opts.locale = text_to_cstring(PG_GETARG_TEXT_PP(5));
	if (!PG_ARGISNULL(6))
	{
		int32		max_output = PG_GETARG_INT32(6);

		if (max_output <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_output must be positive"),
					 errhint("Pass a size in bytes, or NULL for the default of %d.",
							 RENDER_DEFAULT_MAX_OUTPUT)));
		opts.max_output = max_output;
	}

	result = template_render(text_to_cstring(PG_GETARG_TEXT_PP(0)), data,
							 &opts);
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
