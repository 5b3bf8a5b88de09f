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
#include "template.h"
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
} LocaleInfo;

#define EN_MONTHS "January", "February", "March", "April", "May", "June", \
	"July", "August", "September", "October", "November", "December"
#define DE_MONTHS "Januar", "Februar", "März", "April", "Mai", "Juni", \
	"Juli", "August", "September", "Oktober", "November", "Dezember"
#define FR_MONTHS "janvier", "février", "mars", "avril", "mai", "juin", \
	"juillet", "août", "septembre", "octobre", "novembre", "décembre"
#define ES_MONTHS "enero", "febrero", "marzo", "abril", "mayo", "junio", \
	"julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"

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
		{", ", ", ", " at ", " at "}
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
		{", ", ", ", " o ", " o "}
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
		{", ", ", ", " um ", " um "}
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
		{" ", " ", " à ", " à "}
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
		{", ", ", ", ", ", ", "}
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

static void
prepare_filter(void *arg, MustacheFilter *f)
{
	RenderArg  *ra = (RenderArg *) arg;
	DateFilter *df;
	bool		have_style = false;

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
				 errhint("The filters are json, default, date, time and datetime.")));
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

static void
apply_filter(void *arg, const MustacheFilter *f, const MustacheValue *in,
			 MustacheValue *result)
{
	RenderArg  *ra = (RenderArg *) arg;
	const DateFilter *df = (const DateFilter *) f->extra;
	const LocaleInfo *loc;
	TimestampTz ts;
	LocalTime	lt;
	int			tzoff;
	StringInfoData out;

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
