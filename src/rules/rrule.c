/*-------------------------------------------------------------------------
 *
 * rrule.c
 *	  Recurrence rules, a subset of RFC 5545's RRULE, and their
 *	  occurrences counted in a time zone: "every weekday at 9:00" stays at
 *	  9:00 local time across daylight-saving changes.
 *
 *	  Supported: FREQ=MINUTELY, HOURLY, DAILY, WEEKLY or MONTHLY; INTERVAL;
 *	  COUNT or UNTIL; BYDAY (with an ordinal such as 1MO or -1FR in
 *	  MONTHLY rules), BYMONTHDAY, BYMONTH, BYHOUR, BYMINUTE, BYSECOND and
 *	  WKST.  Parts a rule leaves out come from its start (DTSTART), as in
 *	  the RFC: FREQ=DAILY started at 9:30 recurs at 9:30, FREQ=WEEKLY
 *	  started on a Tuesday recurs on Tuesdays.
 *
 *	  Daily, weekly and monthly rules count local dates and local times of
 *	  day.  A local time that does not exist (skipped by a change to
 *	  summer time) is taken with the offset before the change, so 2:30
 *	  becomes 3:30; one that happens twice (the change back) is the first
 *	  of the two.  Both as RFC 5545 says.  Hourly and minutely rules step
 *	  in elapsed time from their start ("every 2 hours" is every 7200
 *	  seconds), their BY parts filtering by local time.
 *
 *	  A business calendar, if given, leaves out occurrences on days off;
 *	  COUNT counts those that are left, as it counts after any BY part.
 *
 *	  Occurrences are found by walking the rule's periods (one day, week,
 *	  month, hour or minute every INTERVAL) from the one holding the point
 *	  of interest, or from the start when COUNT needs every occurrence
 *	  counted.  A walk stops RRULE_HORIZON after that point: a rule that
 *	  has no occurrence within it has none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "port/pg_bitutils.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "rules/rules.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_rrule_occurrences);

#define RRULE_MAX_COUNT			1000
#define RRULE_MAX_INTERVAL		1000
#define RRULE_MAX_TIMES_PER_DAY	1440
#define RRULE_MAX_LIST			10000
/* how far past the point of interest a walk looks: ten years */
#define RRULE_HORIZON			(INT64CONST(3653) * USECS_PER_DAY)

#define RRULE_HINT \
	"Write it as in RFC 5545, such as FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0 " \
	"(parts: FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, BYMONTH, BYHOUR, BYMINUTE, BYSECOND, WKST)."

typedef enum RRuleFreq
{
	RRULE_MINUTELY,
	RRULE_HOURLY,
	RRULE_DAILY,
	RRULE_WEEKLY,
	RRULE_MONTHLY
} RRuleFreq;

typedef enum RRuleUntil
{
	UNTIL_NONE,
	UNTIL_DATE,					/* a local date: occurrences on or before it */
	UNTIL_LOCAL,				/* a local date and time in the rule's zone */
	UNTIL_UTC					/* a point in time */
} RRuleUntil;

/* byday[] bits: any such weekday, the n-th (1..5) or the n-th last (6..10) */
#define BYDAY_ANY		1
#define BYDAY_NTH(n)	(1 << (n))
#define BYDAY_LAST(n)	(1 << (5 + (n)))

struct RRule
{
	RRuleFreq	freq;
	int			interval;
	int			count;			/* 0: no COUNT */
	RRuleUntil	until_kind;
	int64		until;			/* DateADT, local Timestamp or TimestampTz */
	bool		has_byday;
	uint16		byday[8];		/* by ISO day of the week, 1 = Monday */
	uint32		bymonthday;		/* bit d: day d of the month */
	uint32		bymonthday_last;	/* bit d: the d-th last day */
	uint16		bymonth;		/* bit m: month m */
	uint32		byhour;			/* bit h; 0: none given */
	uint64		byminute;
	uint64		bysecond;
	int			wkst;			/* ISO day the week starts on */
};

/* One walk over a rule's occurrences for one start, zone and calendar. */
typedef struct Walk
{
	const RRule *r;
	pg_tz	   *tz;
	const BusinessCalendar *cal;
	TimestampTz dtstart;

	/* the start in the rule's zone */
	DateADT		day0;
	DateADT		week0;			/* first day of its week (WKST) */
	int			month0;			/* year * 12 + month - 1 */
	int			mday0;
	int			isodow0;
	TimestampTz p0;				/* hourly, minutely: start of its hour/minute */
	int64		step;			/* hourly, minutely: period length */

	/* the times each period expands to */
	uint32		hours;
	uint64		minutes;
	uint64		seconds;

	/* progress */
	int			found;			/* occurrences so far */
	TimestampTz last;
	TimestampTz limit;			/* nothing past this is looked at */
	TimestampTz *times;			/* scratch: one day's times */

	/* what to do with each occurrence; false stops the walk */
	bool		(*visit) (struct Walk *w, TimestampTz t);
	TimestampTz point;			/* visitors: the point of interest */
	bool		inclusive;
	bool		got;
	TimestampTz result;
	TimestampTz *out;
	int			nout;
	int			maxout;
} Walk;

/* ----------------------------------------------------------------
 *		Parsing
 * ----------------------------------------------------------------
 */

static void
pg_attribute_noreturn()
bad_rrule(const char *text, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid RRULE \"%s\"", text),
			 errdetail_internal("%s", detail),
			 errhint(RRULE_HINT)));
}

static void
pg_attribute_noreturn()
unsupported(const char *text, const char *part)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("RRULE part %s is not supported", part),
			 errdetail("The rule is \"%s\".", text),
			 errhint(RRULE_HINT)));
}

/* A whole number in lo..hi, with an optional sign; *ok false when not. */
static int
parse_number(const char *s, int lo, int hi, bool *ok)
{
	const char *p = s;
	int			sign = 1;
	int			v = 0;

	*ok = false;
	if (*p == '+' || *p == '-')
		sign = (*p++ == '-') ? -1 : 1;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 6)
		return 0;
	for (; *p; p++)
		v = v * 10 + (*p - '0');
	v *= sign;
	*ok = v >= lo && v <= hi;
	return v;
}

static int
weekday(const char *s)
{
	static const char *const names[] = {"MO", "TU", "WE", "TH", "FR", "SA", "SU"};

	for (int i = 0; i < 7; i++)
		if (strcmp(s, names[i]) == 0)
			return i + 1;
	return 0;
}

/* A comma-separated list of numbers in lo..hi (not 0) as bits. */
static uint64
parse_bits(const char *text, const char *part, char *value, int lo, int hi,
		   uint64 *negative)
{
	uint64		bits = 0;
	char	   *save;
	char	   *item;

	if (*value == '\0' || *value == ',' || value[strlen(value) - 1] == ',' ||
		strstr(value, ",,") != NULL)
		bad_rrule(text, psprintf("%s needs a list of numbers.", part));
	for (item = strtok_r(value, ",", &save); item; item = strtok_r(NULL, ",", &save))
	{
		bool		ok;
		int			v = parse_number(item, lo, hi, &ok);

		if (!ok || (v == 0 && lo < 0))
			bad_rrule(text, psprintf("%s must list numbers from %d to %d%s, not \"%s\".",
									 part, lo, hi, lo < 0 ? " other than 0" : "", item));
		if (v < 0)
			*negative |= UINT64CONST(1) << -v;
		else
			bits |= UINT64CONST(1) << v;
	}
	return bits;
}

static void
parse_byday(RRule *r, const char *text, char *value)
{
	char	   *save;
	char	   *item;

	if (*value == '\0' || *value == ',' || value[strlen(value) - 1] == ',' ||
		strstr(value, ",,") != NULL)
		bad_rrule(text, "BYDAY needs a list of days such as MO,WE,FR.");
	for (item = strtok_r(value, ",", &save); item; item = strtok_r(NULL, ",", &save))
	{
		size_t		len = strlen(item);
		int			day = len >= 2 ? weekday(item + len - 2) : 0;
		int			n = 0;

		if (day == 0)
			bad_rrule(text, psprintf("BYDAY must list days MO, TU, WE, TH, FR, SA or SU, not \"%s\".", item));
		if (len > 2)
		{
			bool		ok;
			char	   *num = pnstrdup(item, len - 2);

			n = parse_number(num, -5, 5, &ok);
			if (!ok || n == 0)
				bad_rrule(text, psprintf("BYDAY \"%s\": the week of the month must be 1 to 5 or -1 to -5.", item));
		}
		r->byday[day] |= n == 0 ? BYDAY_ANY : n > 0 ? BYDAY_NTH(n) : BYDAY_LAST(-n);
	}
	r->has_byday = true;
}

/* UNTIL: YYYYMMDD, YYYYMMDDTHHMMSS (local) or YYYYMMDDTHHMMSSZ (UTC). */
static void
parse_until(RRule *r, const char *text, const char *value)
{
	size_t		len = strlen(value);
	int			y,
				mo,
				d,
				h = 0,
				mi = 0,
				s = 0;
	struct pg_tm tm = {0};
	Timestamp	ts;

	if (!(len == 8 || (len == 15 && value[8] == 'T') || (len == 16 && value[8] == 'T' && value[15] == 'Z')) ||
		strspn(value, "0123456789") != 8 ||
		(len > 8 && strspn(value + 9, "0123456789") != 6) ||
		sscanf(value, "%4d%2d%2d", &y, &mo, &d) != 3 ||
		(len > 8 && sscanf(value + 9, "%2d%2d%2d", &h, &mi, &s) != 3))
		bad_rrule(text, "UNTIL must be a date such as 20261231, or a date and time such as 20261231T170000 (in the rule's time zone) or 20261231T160000Z (UTC).");
	if (y < 1900 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > day_tab[isleap(y)][mo - 1] ||
		h > 23 || mi > 59 || s > 59)
		bad_rrule(text, psprintf("UNTIL \"%s\" is not a valid date and time.", value));

	tm.tm_year = y;
	tm.tm_mon = mo;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	if (len == 8)
	{
		r->until_kind = UNTIL_DATE;
		r->until = date2j(y, mo, d) - POSTGRES_EPOCH_JDATE;
		return;
	}
	if (tm2timestamp(&tm, 0, NULL, &ts) != 0)
		bad_rrule(text, psprintf("UNTIL \"%s\" is out of range.", value));
	r->until_kind = len == 16 ? UNTIL_UTC : UNTIL_LOCAL;
	r->until = ts;
}

/*
 * Parse an RRULE ("FREQ=DAILY;BYHOUR=9", optionally after "RRULE:"),
 * case-insensitively.  Errors: 22023 for a malformed rule, 0A000 for
 * parts of RFC 5545 this subset leaves out.
 */
RRule *
rrule_parse(const char *text)
{
	RRule	   *r = palloc0(sizeof(RRule));
	char	   *copy = pstrdup(text);
	char	   *save;
	char	   *part;
	bool		seen_freq = false;
	bool		seen_interval = false;
	bool		seen_until = false;
	bool		seen_wkst = false;
	bool		ok;

	r->interval = 1;
	r->wkst = 1;

	for (char *p = copy; *p; p++)
		*p = pg_toupper((unsigned char) *p);
	part = copy + strspn(copy, " \t\r\n");
	if (strncmp(part, "RRULE:", 6) == 0)
		part += 6;
	{
		char	   *end = part + strlen(part);

		while (end > part && strchr(" \t\r\n", end[-1]))
			*--end = '\0';
	}
	if (*part == '\0')
		bad_rrule(text, "The rule is empty.");
	if (part[strlen(part) - 1] == ';')
		bad_rrule(text, "The rule ends with \";\".");
	if (*part == ';' || strstr(part, ";;") != NULL)
		bad_rrule(text, "The rule has an empty part.");

	for (part = strtok_r(part, ";", &save); part; part = strtok_r(NULL, ";", &save))
	{
		char	   *eq = strchr(part, '=');
		char	   *name;
		char	   *value;

		if (eq == NULL || eq == part)
			bad_rrule(text, psprintf("\"%s\" is not NAME=VALUE.", part));
		*eq = '\0';
		name = part;
		value = eq + 1;

		if (strcmp(name, "FREQ") == 0)
		{
			if (seen_freq)
				bad_rrule(text, "FREQ is given twice.");
			seen_freq = true;
			if (strcmp(value, "MINUTELY") == 0)
				r->freq = RRULE_MINUTELY;
			else if (strcmp(value, "HOURLY") == 0)
				r->freq = RRULE_HOURLY;
			else if (strcmp(value, "DAILY") == 0)
				r->freq = RRULE_DAILY;
			else if (strcmp(value, "WEEKLY") == 0)
				r->freq = RRULE_WEEKLY;
			else if (strcmp(value, "MONTHLY") == 0)
				r->freq = RRULE_MONTHLY;
			else if (strcmp(value, "YEARLY") == 0 || strcmp(value, "SECONDLY") == 0)
				unsupported(text, psprintf("FREQ=%s", value));
			else
				bad_rrule(text, psprintf("FREQ must be MINUTELY, HOURLY, DAILY, WEEKLY or MONTHLY, not \"%s\".", value));
		}
		else if (strcmp(name, "INTERVAL") == 0)
		{
			if (seen_interval)
				bad_rrule(text, "INTERVAL is given twice.");
			seen_interval = true;
			r->interval = parse_number(value, 1, RRULE_MAX_INTERVAL, &ok);
			if (!ok || *value == '+' || *value == '-')
				bad_rrule(text, psprintf("INTERVAL must be a number from 1 to %d, not \"%s\".",
										 RRULE_MAX_INTERVAL, value));
		}
		else if (strcmp(name, "COUNT") == 0)
		{
			if (r->count)
				bad_rrule(text, "COUNT is given twice.");
			r->count = parse_number(value, 1, RRULE_MAX_COUNT, &ok);
			if (!ok || *value == '+' || *value == '-')
				bad_rrule(text, psprintf("COUNT must be a number from 1 to %d, not \"%s\".",
										 RRULE_MAX_COUNT, value));
		}
		else if (strcmp(name, "UNTIL") == 0)
		{
			if (seen_until)
				bad_rrule(text, "UNTIL is given twice.");
			seen_until = true;
			parse_until(r, text, value);
		}
		else if (strcmp(name, "BYDAY") == 0)
		{
			if (r->has_byday)
				bad_rrule(text, "BYDAY is given twice.");
			parse_byday(r, text, value);
		}
		else if (strcmp(name, "BYMONTHDAY") == 0)
		{
			uint64		last = 0;

			if (r->bymonthday || r->bymonthday_last)
				bad_rrule(text, "BYMONTHDAY is given twice.");
			r->bymonthday = (uint32) parse_bits(text, name, value, -31, 31, &last);
			r->bymonthday_last = (uint32) last;
		}
		else if (strcmp(name, "BYMONTH") == 0)
		{
			if (r->bymonth)
				bad_rrule(text, "BYMONTH is given twice.");
			r->bymonth = (uint16) parse_bits(text, name, value, 1, 12, NULL);
		}
		else if (strcmp(name, "BYHOUR") == 0)
		{
			if (r->byhour)
				bad_rrule(text, "BYHOUR is given twice.");
			r->byhour = (uint32) parse_bits(text, name, value, 0, 23, NULL);
		}
		else if (strcmp(name, "BYMINUTE") == 0)
		{
			if (r->byminute)
				bad_rrule(text, "BYMINUTE is given twice.");
			r->byminute = parse_bits(text, name, value, 0, 59, NULL);
		}
		else if (strcmp(name, "BYSECOND") == 0)
		{
			if (r->bysecond)
				bad_rrule(text, "BYSECOND is given twice.");
			r->bysecond = parse_bits(text, name, value, 0, 59, NULL);
		}
		else if (strcmp(name, "WKST") == 0)
		{
			if (seen_wkst)
				bad_rrule(text, "WKST is given twice.");
			seen_wkst = true;
			if ((r->wkst = weekday(value)) == 0)
				bad_rrule(text, psprintf("WKST must be MO, TU, WE, TH, FR, SA or SU, not \"%s\".", value));
		}
		else if (strcmp(name, "BYSETPOS") == 0 || strcmp(name, "BYYEARDAY") == 0 ||
				 strcmp(name, "BYWEEKNO") == 0)
			unsupported(text, name);
		else
			bad_rrule(text, psprintf("Unknown part \"%s\".", name));
	}

	if (!seen_freq)
		bad_rrule(text, "FREQ is missing.");
	if (r->count && seen_until)
		bad_rrule(text, "COUNT and UNTIL cannot both be given.");
	if (r->freq != RRULE_MONTHLY)
		for (int d = 1; d <= 7; d++)
			if (r->byday[d] & ~BYDAY_ANY)
				bad_rrule(text, "BYDAY with a week of the month (such as 1MO or -1FR) needs FREQ=MONTHLY.");
	if (r->freq == RRULE_WEEKLY && (r->bymonthday || r->bymonthday_last))
		bad_rrule(text, "BYMONTHDAY cannot be used with FREQ=WEEKLY.");
	if (r->freq >= RRULE_DAILY)
	{
		int			nh = r->byhour ? pg_popcount32(r->byhour) : 1;
		int			nm = r->byminute ? pg_popcount64(r->byminute) : 1;
		int			ns = r->bysecond ? pg_popcount64(r->bysecond) : 1;

		if (nh * nm * ns > RRULE_MAX_TIMES_PER_DAY)
			bad_rrule(text, psprintf("BYHOUR, BYMINUTE and BYSECOND give %d times a day; at most %d are allowed.",
									 nh * nm * ns, RRULE_MAX_TIMES_PER_DAY));
	}
	return r;
}

/* ----------------------------------------------------------------
 *		Local time
 * ----------------------------------------------------------------
 */

/* t in zone tz: its fields, and the zone's offset east of UTC in seconds */
static void
local_tm(TimestampTz t, pg_tz *tz, struct pg_tm *tm, fsec_t *fsec, int *gmtoff)
{
	int			tzoff;

	if (timestamp2tm(t, &tzoff, tm, fsec, NULL, tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	if (gmtoff)
		*gmtoff = -tzoff;
}

static int
offset_at(TimestampTz t, pg_tz *tz)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			off;

	local_tm(t, tz, &tm, &fsec, &off);
	return off;
}

static DateADT
local_date(const struct pg_tm *tm)
{
	return date2j(tm->tm_year, tm->tm_mon, tm->tm_mday) - POSTGRES_EPOCH_JDATE;
}

static int
iso_dow(DateADT day)
{
	int			dow = j2day(day + POSTGRES_EPOCH_JDATE);

	return dow == 0 ? 7 : dow;
}

/*
 * The point in time of a local date and time of day in the walk's zone,
 * as RFC 5545 reads it: a time skipped by a change of offset takes the
 * offset before the change, a time that happens twice is the first.
 */
static TimestampTz
local_instant(Walk *w, DateADT day, int secs)
{
	int64		local = (int64) day * USECS_PER_DAY + (int64) secs * USECS_PER_SEC;
	int			off_a = offset_at(local - USECS_PER_DAY, w->tz);
	int			off_b = offset_at(local + USECS_PER_DAY, w->tz);
	TimestampTz a = local - (int64) off_a * USECS_PER_SEC;
	TimestampTz b = local - (int64) off_b * USECS_PER_SEC;
	bool		a_ok;
	bool		b_ok;

	if (off_a == off_b)
		return a;
	a_ok = offset_at(a, w->tz) == off_a;
	b_ok = offset_at(b, w->tz) == off_b;
	if (a_ok && b_ok)
		return Min(a, b);
	if (b_ok)
		return b;
	return a;					/* valid, or skipped: the offset before */
}

/* ----------------------------------------------------------------
 *		Walking the occurrences
 * ----------------------------------------------------------------
 */

static bool
day_matches(Walk *w, DateADT day)
{
	const RRule *r = w->r;
	int			y,
				m,
				d;
	int			dow = iso_dow(day);
	int			dim;

	j2date(day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	dim = day_tab[isleap(y)][m - 1];

	if (r->bymonth && !(r->bymonth & (1 << m)))
		return false;
	if ((r->bymonthday || r->bymonthday_last) &&
		!(r->bymonthday & (((uint32) 1) << d)) &&
		!(r->bymonthday_last & (((uint32) 1) << (dim - d + 1))))
		return false;
	if (r->has_byday)
	{
		uint16		bits = r->byday[dow];

		if (!(bits & BYDAY_ANY) &&
			!(bits & BYDAY_NTH((d - 1) / 7 + 1)) &&
			!(bits & BYDAY_LAST((dim - d) / 7 + 1)))
			return false;
	}
	else if (r->freq == RRULE_WEEKLY && dow != w->isodow0)
		return false;
	if (r->freq == RRULE_MONTHLY && !r->has_byday && !r->bymonthday &&
		!r->bymonthday_last && d != w->mday0)
		return false;
	if (w->cal && !calendar_is_business_day(w->cal, day))
		return false;
	return true;
}

/* Whether t is past UNTIL. */
static bool
past_until(Walk *w, TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			off;

	switch (w->r->until_kind)
	{
		case UNTIL_NONE:
			return false;
		case UNTIL_UTC:
			return t > w->r->until;
		case UNTIL_DATE:
			local_tm(t, w->tz, &tm, &fsec, NULL);
			return local_date(&tm) > w->r->until;
		case UNTIL_LOCAL:
			local_tm(t, w->tz, &tm, &fsec, &off);
			return t + (int64) off * USECS_PER_SEC > w->r->until;
	}
	return false;
}

/* One candidate, in order; false stops the walk. */
static bool
emit(Walk *w, TimestampTz t)
{
	if (t < w->dtstart || t <= w->last)
		return true;
	if (t > w->limit || past_until(w, t))
		return false;
	w->last = t;
	w->found++;
	if (!w->visit(w, t))
		return false;
	return w->r->count == 0 || w->found < w->r->count;
}

static int
cmp_timestamptz(const void *a, const void *b)
{
	TimestampTz x = *(const TimestampTz *) a;
	TimestampTz y = *(const TimestampTz *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* The times of one local day, in order. */
static bool
walk_day(Walk *w, DateADT day)
{
	int			n = 0;
	bool		sorted = true;

	for (int h = 0; h < 24; h++)
	{
		if (!(w->hours & (((uint32) 1) << h)))
			continue;
		for (int m = 0; m < 60; m++)
		{
			if (!(w->minutes & (UINT64CONST(1) << m)))
				continue;
			for (int s = 0; s < 60; s++)
			{
				if (!(w->seconds & (UINT64CONST(1) << s)))
					continue;
				w->times[n] = local_instant(w, day, h * 3600 + m * 60 + s);
				if (n > 0 && w->times[n] < w->times[n - 1])
					sorted = false;
				n++;
			}
		}
	}
	/* only a skipped hour puts times out of order */
	if (!sorted)
		qsort(w->times, n, sizeof(TimestampTz), cmp_timestamptz);
	for (int i = 0; i < n; i++)
		if (!emit(w, w->times[i]))
			return false;
	return true;
}

static void
period_days(Walk *w, int64 k, DateADT *first, DateADT *last)
{
	int			mi;
	int			y;
	int			m;

	switch (w->r->freq)
	{
		case RRULE_DAILY:
			*first = *last = w->day0 + k * w->r->interval;
			break;
		case RRULE_WEEKLY:
			*first = w->week0 + 7 * k * w->r->interval;
			*last = *first + 6;
			break;
		default:
			mi = w->month0 + (int) k * w->r->interval;
			y = mi / 12;
			m = mi % 12 + 1;
			*first = date2j(y, m, 1) - POSTGRES_EPOCH_JDATE;
			*last = *first + day_tab[isleap(y)][m - 1] - 1;
			break;
	}
}

/* Roughly when period k starts (a day early for days). */
static TimestampTz
period_start(Walk *w, int64 k)
{
	DateADT		first;
	DateADT		last;

	if (w->r->freq <= RRULE_HOURLY)
		return w->p0 + k * w->step;
	period_days(w, k, &first, &last);
	return (int64) (first - 1) * USECS_PER_DAY;
}

/* Daily, weekly, monthly: period k0 on, day by day. */
static void
walk_days(Walk *w, int64 k0)
{
	for (int64 k = k0;; k++)
	{
		DateADT		first;
		DateADT		last;

		CHECK_FOR_INTERRUPTS();
		period_days(w, k, &first, &last);
		if (period_start(w, k) > w->limit)
			return;
		for (DateADT d = first; d <= last; d++)
			if (day_matches(w, d) && !walk_day(w, d))
				return;
	}
}

/* The first period at or after k + 1 that starts at target or later. */
static int64
period_from(Walk *w, int64 k, TimestampTz target)
{
	int64		kk = (target - w->p0 + w->step - 1) / w->step;

	return Max(k + 1, kk);
}

/* Hourly, minutely: periods of elapsed time from period k0 on. */
static void
walk_elapsed(Walk *w, int64 k0)
{
	const RRule *r = w->r;
	int64		k = k0;

	for (;;)
	{
		TimestampTz p = w->p0 + k * w->step;
		struct pg_tm tm;
		fsec_t		fsec;
		DateADT		day;

		CHECK_FOR_INTERRUPTS();
		if (p > w->limit)
			return;
		local_tm(p, w->tz, &tm, &fsec, NULL);
		day = local_date(&tm);
		if (!day_matches(w, day))
		{
			k = period_from(w, k, local_instant(w, day + 1, 0));
			continue;
		}
		if (r->byhour && !(r->byhour & (((uint32) 1) << tm.tm_hour)))
		{
			k = period_from(w, k, p + (int64) (3600 - tm.tm_min * 60 - tm.tm_sec) * USECS_PER_SEC);
			continue;
		}
		if (r->freq == RRULE_MINUTELY && r->byminute &&
			!(r->byminute & (UINT64CONST(1) << tm.tm_min)))
		{
			k++;
			continue;
		}
		for (int m = 0; m < 60; m++)
		{
			if (!(w->minutes & (UINT64CONST(1) << m)))
				continue;
			for (int s = 0; s < 60; s++)
				if ((w->seconds & (UINT64CONST(1) << s)) &&
					!emit(w, p + (int64) (m * 60 + s) * USECS_PER_SEC))
					return;
		}
		k++;
	}
}

static void
walk_init(Walk *w, const RRule *r, TimestampTz dtstart, pg_tz *tz,
		  const BusinessCalendar *cal)
{
	struct pg_tm tm;
	fsec_t		fsec;

	memset(w, 0, sizeof(Walk));
	w->r = r;
	w->tz = tz;
	w->cal = cal;
	w->last = DT_NOBEGIN;

	/* occurrences are whole seconds: so is the start */
	local_tm(dtstart, tz, &tm, &fsec, NULL);
	dtstart -= fsec;
	fsec = 0;
	w->dtstart = dtstart;
	w->day0 = local_date(&tm);
	w->isodow0 = iso_dow(w->day0);
	w->week0 = w->day0 - ((w->isodow0 - r->wkst + 7) % 7);
	w->month0 = tm.tm_year * 12 + tm.tm_mon - 1;
	w->mday0 = tm.tm_mday;

	w->seconds = r->bysecond ? r->bysecond : UINT64CONST(1) << tm.tm_sec;
	switch (r->freq)
	{
		case RRULE_MINUTELY:
			w->minutes = 1;		/* the period's own minute */
			w->step = (int64) r->interval * 60 * USECS_PER_SEC;
			w->p0 = dtstart - fsec - (int64) tm.tm_sec * USECS_PER_SEC;
			break;
		case RRULE_HOURLY:
			w->minutes = r->byminute ? r->byminute : UINT64CONST(1) << tm.tm_min;
			w->step = (int64) r->interval * 3600 * USECS_PER_SEC;
			w->p0 = dtstart - fsec - (int64) (tm.tm_min * 60 + tm.tm_sec) * USECS_PER_SEC;
			break;
		default:
			w->hours = r->byhour ? r->byhour : ((uint32) 1) << tm.tm_hour;
			w->minutes = r->byminute ? r->byminute : UINT64CONST(1) << tm.tm_min;
			w->times = palloc(sizeof(TimestampTz) * RRULE_MAX_TIMES_PER_DAY);
			break;
	}
}

/* The period holding t (none before the start's). */
static int64
period_of(Walk *w, TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	DateADT		day;

	if (t <= w->dtstart)
		return 0;
	if (w->r->freq <= RRULE_HOURLY)
		return (t - w->p0) / w->step;
	local_tm(t, w->tz, &tm, &fsec, NULL);
	day = local_date(&tm);
	switch (w->r->freq)
	{
		case RRULE_DAILY:
			return (day - w->day0) / w->r->interval;
		case RRULE_WEEKLY:
			return (day - w->week0) / 7 / w->r->interval;
		default:
			return (tm.tm_year * 12 + tm.tm_mon - 1 - w->month0) / w->r->interval;
	}
}

/* Walk from period k0 (0 when COUNT needs every occurrence counted). */
static void
walk(Walk *w, int64 k0)
{
	if (w->r->count)
		k0 = 0;
	w->found = 0;
	w->last = DT_NOBEGIN;
	if (w->r->freq <= RRULE_HOURLY)
		walk_elapsed(w, k0);
	else
		walk_days(w, k0);
}

static bool
visit_next(Walk *w, TimestampTz t)
{
	if (t > w->point || (w->inclusive && t == w->point))
	{
		w->got = true;
		w->result = t;
		return false;
	}
	return true;
}

static bool
visit_prev(Walk *w, TimestampTz t)
{
	if (t >= w->point)
		return false;
	w->got = true;
	w->result = t;
	return true;
}

static bool
visit_list(Walk *w, TimestampTz t)
{
	if (t <= w->point)
		return true;
	w->out[w->nout++] = t;
	return w->nout < w->maxout;
}

static TimestampTz
add_horizon(TimestampTz t)
{
	return t > DT_NOEND - RRULE_HORIZON ? DT_NOEND - 1 : t + RRULE_HORIZON;
}

/*
 * The first occurrence after (or at, if inclusive) after, of the rule
 * started at dtstart; false if there is none within the horizon.
 */
bool
rrule_next(const RRule *r, TimestampTz dtstart, pg_tz *tz, const BusinessCalendar *cal,
		   TimestampTz after, bool inclusive, TimestampTz *result)
{
	Walk		w;

	walk_init(&w, r, dtstart, tz, cal);
	w.visit = visit_next;
	w.point = after;
	w.inclusive = inclusive;
	w.limit = add_horizon(Max(after, dtstart));
	walk(&w, Max(period_of(&w, after) - 1, 0));
	*result = w.result;
	return w.got;
}

/* The last occurrence before before; false if there is none. */
bool
rrule_prev(const RRule *r, TimestampTz dtstart, pg_tz *tz, const BusinessCalendar *cal,
		   TimestampTz before, TimestampTz *result)
{
	Walk		w;
	int64		k = 0;

	if (before <= dtstart)
		return false;
	walk_init(&w, r, dtstart, tz, cal);
	w.visit = visit_prev;
	w.point = before;
	w.limit = before;
	/* look back further and further, up to the horizon */
	for (int64 back = 2;; back *= 4)
	{
		k = Max(period_of(&w, before) - back, 0);
		if (k > 0 && period_start(&w, k) < before - RRULE_HORIZON)
			k = 0;
		walk(&w, k);
		if (w.got || k == 0 || r->count)
			break;
	}
	*result = w.result;
	return w.got;
}

/*
 * The occurrence as it appears in message keys: the UTC time in RFC 5545's
 * basic format, 20260329T070000Z.
 */
char *
rrule_instant_key(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return psprintf("%04d%02d%02dT%02d%02d%02dZ", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ----------------------------------------------------------------
 *		reminder.rrule_occurrences()
 * ----------------------------------------------------------------
 */

/*
 * reminder.rrule_occurrences(rrule, dtstart, time_zone, n, after, calendar):
 * the first n occurrences of the rule started at dtstart (after after, if
 * given), counted in time_zone (default: the session's), leaving out the
 * days off of calendar if given.
 */
Datum
reminder_rrule_occurrences(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RRule	   *r;
	TimestampTz dtstart;
	pg_tz	   *tz = session_timezone;
	int			n;
	BusinessCalendar *cal = NULL;
	Walk		w;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rrule must not be null"),
				 errhint(RRULE_HINT)));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dtstart must not be null"),
				 errhint("Give the start of the series, such as now().")));
	r = rrule_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	dtstart = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(dtstart))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("dtstart must be a finite timestamp")));
	if (!PG_ARGISNULL(2))
	{
		char	   *zone = text_to_cstring(PG_GETARG_TEXT_PP(2));

		validate_time_zone(zone, "time_zone");
		tz = pg_tzset(zone);
	}
	n = PG_ARGISNULL(3) ? 10 : PG_GETARG_INT32(3);
	if (n < 0 || n > RRULE_MAX_LIST)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 0 and %d", RRULE_MAX_LIST)));
	if (!PG_ARGISNULL(5))
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(5));

		validate_name(name, "calendar");
		cal = calendar_load(name);
	}

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (n == 0)
		return (Datum) 0;

	walk_init(&w, r, dtstart, tz, cal);
	w.visit = visit_list;
	w.point = PG_ARGISNULL(4) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(4);
	w.out = palloc(sizeof(TimestampTz) * n);
	w.maxout = n;
	w.limit = add_horizon(Max(w.point, dtstart));
	walk(&w, w.point == DT_NOBEGIN ? 0 : Max(period_of(&w, w.point) - 1, 0));

	for (int i = 0; i < w.nout; i++)
	{
		Datum		value = TimestampTzGetDatum(w.out[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}
