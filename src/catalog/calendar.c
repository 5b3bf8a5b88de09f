/*-------------------------------------------------------------------------
 *
 * calendar.c
 *	  Business days, and moving a timestamp by an interval the way people
 *	  mean it: "1 day before" is the same local time the day before, also
 *	  across a daylight-saving change, and "3 business days after" skips
 *	  weekends and holidays.
 *
 *	  A calendar is a set of weekend days (reminder.calendar, Saturday and
 *	  Sunday when the calendar has no row) and holidays (reminder.holiday).
 *	  Days are local days in a time zone that the caller chooses: rules
 *	  carry their own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_is_business_day);
PG_FUNCTION_INFO_V1(reminder_add_business_days);

/* Longest run of days off we step over before giving up. */
#define MAX_DAYS_OFF	366

static SPIPlanPtr calendar_plan = NULL;
static SPIPlanPtr holiday_plan = NULL;

/*
 * The calendar called name, allocated in the current memory context.  A
 * name without a row in reminder.calendar is a calendar with Saturday and
 * Sunday off and whatever holidays reminder.holiday lists for it.  The
 * caller must be able to read both tables.
 */
BusinessCalendar *
calendar_load(const char *name)
{
	MemoryContext cxt = CurrentMemoryContext;
	BusinessCalendar *cal = palloc0(sizeof(BusinessCalendar));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	cal->name = pstrdup(name);
	cal->weekend = (1 << 6) | (1 << 7);
	values[0] = CStringGetTextDatum(name);

	SPI_connect();
	if (calendar_plan == NULL)
		calendar_plan = spi_prepare_kept("SELECT weekend FROM reminder.calendar WHERE name = $1",
									 1, argtypes, 0);
	if (holiday_plan == NULL)
		holiday_plan = spi_prepare_kept("SELECT day FROM reminder.holiday WHERE calendar = $1 ORDER BY day",
									1, argtypes, 0);

	spi_plan_expect(calendar_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), INT2OID, 2, true, TYPALIGN_SHORT,
						  &elems, &nulls, &n);
		cal->weekend = 0;
		for (int i = 0; i < n; i++)
			if (!nulls[i] && DatumGetInt16(elems[i]) >= 1 && DatumGetInt16(elems[i]) <= 7)
				cal->weekend |= 1 << DatumGetInt16(elems[i]);
	}

	spi_plan_expect(holiday_plan, values, NULL, true, 0, SPI_OK_SELECT);
	cal->nholidays = SPI_processed;
	cal->holidays = MemoryContextAlloc(cxt, sizeof(DateADT) * Max(cal->nholidays, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
		cal->holidays[i] = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	return cal;
}

bool
calendar_is_business_day(const BusinessCalendar *cal, DateADT day)
{
	int			isodow = j2day(day + POSTGRES_EPOCH_JDATE);
	int			lo = 0;
	int			hi = cal->nholidays - 1;

	if (isodow == 0)
		isodow = 7;
	if (cal->weekend & (1 << isodow))
		return false;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (cal->holidays[mid] == day)
			return false;
		if (cal->holidays[mid] < day)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return true;
}

/*
 * ts moved by sign * offset in time zone tz.  Months and days move the
 * local date and keep the local time of day; the time part is then added
 * as elapsed time.  With a calendar, the days of the offset are business
 * days: each step lands on the next (previous) business day.  Months
 * cannot be combined with business days; callers check that.
 */
TimestampTz
calendar_add(TimestampTz ts, const Interval *offset, int sign,
			 const BusinessCalendar *cal, pg_tz *tz)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	TimestampTz result;

	if (offset->month == 0 && offset->day == 0)
		return ts + sign * offset->time;

	if (timestamp2tm(ts, &tzoff, &tm, &fsec, NULL, tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));

	if (offset->month != 0)
	{
		tm.tm_mon += sign * offset->month;
		if (tm.tm_mon > MONTHS_PER_YEAR)
		{
			tm.tm_year += (tm.tm_mon - 1) / MONTHS_PER_YEAR;
			tm.tm_mon = ((tm.tm_mon - 1) % MONTHS_PER_YEAR) + 1;
		}
		else if (tm.tm_mon < 1)
		{
			tm.tm_year += tm.tm_mon / MONTHS_PER_YEAR - 1;
			tm.tm_mon = tm.tm_mon % MONTHS_PER_YEAR + MONTHS_PER_YEAR;
		}
		/* clip to the end of a shorter month, as timestamp + interval does */
		if (tm.tm_mday > day_tab[isleap(tm.tm_year)][tm.tm_mon - 1])
			tm.tm_mday = day_tab[isleap(tm.tm_year)][tm.tm_mon - 1];
	}

	if (offset->day != 0)
	{
		int			julian = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);

		if (cal == NULL)
			julian += sign * offset->day;
		else
		{
			int			step = (sign * offset->day > 0) ? 1 : -1;
			int			left = abs(offset->day);

			while (left > 0)
			{
				int			off = 0;

				do
				{
					julian += step;
					if (++off > MAX_DAYS_OFF)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("calendar \"%s\" has no business day within a year", cal->name),
								 errhint("Check reminder.calendar and reminder.holiday.")));
				} while (!calendar_is_business_day(cal, julian - POSTGRES_EPOCH_JDATE));
				left--;
			}
		}
		j2date(julian, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
	}

	tzoff = DetermineTimeZoneOffset(&tm, tz);
	if (tm2timestamp(&tm, fsec, &tzoff, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));

	return result + sign * offset->time;
}

static BusinessCalendar *
calendar_for_call(FunctionCallInfo fcinfo, const char *name)
{
	BusinessCalendar *cal = fcinfo->flinfo->fn_extra;

	/* keep the calendar for the rest of the query */
	if (cal == NULL || strcmp(cal->name, name) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		cal = calendar_load(name);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = cal;
	}
	return cal;
}

Datum
reminder_is_business_day(PG_FUNCTION_ARGS)
{
	DateADT		day = PG_GETARG_DATEADT(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (DATE_NOT_FINITE(day))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(calendar_is_business_day(calendar_for_call(fcinfo, name), day));
}

Datum
reminder_add_business_days(PG_FUNCTION_ARGS)
{
	TimestampTz ts;
	Interval	offset = {0};
	char	   *name;
	pg_tz	   *tz = session_timezone;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	ts = PG_GETARG_TIMESTAMPTZ(0);
	offset.day = PG_GETARG_INT32(1);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("calendar must not be null"),
				 errhint("The calendar without a row in reminder.calendar is called \"default\".")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
	{
		char	   *zone = text_to_cstring(PG_GETARG_TEXT_PP(3));

		validate_time_zone(zone, "time_zone");
		tz = pg_tzset(zone);
	}
	if (TIMESTAMP_NOT_FINITE(ts))
		PG_RETURN_TIMESTAMPTZ(ts);
	if (abs(offset.day) > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("days must be between -100000 and 100000")));

	PG_RETURN_TIMESTAMPTZ(calendar_add(ts, &offset, 1, calendar_for_call(fcinfo, name), tz));
}
