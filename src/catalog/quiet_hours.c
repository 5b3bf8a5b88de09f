/*-------------------------------------------------------------------------
 *
 * quiet_hours.c
 *	  Quiet hours and send windows, kept in the recipient's time zone.
 *
 *	  Quiet hours are one period or a list of periods of local wall-clock
 *	  time, each optionally limited to the days of the week it starts on:
 *
 *		{"start": "21:00", "end": "08:00"}
 *		[{"start": "18:00", "end": "09:00"},
 *		 {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}]
 *
 *	  A period whose end is earlier than its start runs past midnight.  A
 *	  send window ("weekdays 9 to 18") is written as the quiet hours around
 *	  it, as in the second example.
 *
 *	  A message that falls due inside quiet hours is deferred to the first
 *	  instant at which the recipient's clock shows a time outside them:
 *	  never dropped.  All conversions between instants and wall-clock time
 *	  go through PostgreSQL's time zone library (timestamp2tm with a pg_tz,
 *	  DetermineTimeZoneOffset as AT TIME ZONE uses it, pg_next_dst_boundary),
 *	  so daylight saving changes come out right:
 *
 *	  - spring forward: a period edge inside the skipped hour (02:30 on a
 *		night the clock jumps from 02:00 to 03:00) is reached at the jump;
 *	  - fall back: an edge inside the repeated hour is reached the first
 *		time the clock shows it after the message fell due; a message that
 *		falls due during the second pass of that hour waits for the edge in
 *		the second pass.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_next_send_time);

#define MINUTES_PER_DAY		1440
#define MINUTES_PER_WEEK	(7 * MINUTES_PER_DAY)
#define ALL_DAYS			0x7f

/* deferring through more periods than this means a configuration loop */
#define MAX_HOPS			64

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* ----------------------------------------------------------------
 * Parsing
 * ----------------------------------------------------------------
 */

/* "HH:MM" (or "H:MM") as minutes after midnight, -1 if malformed. */
static int
parse_time_of_day(const char *s, int len, bool is_end)
{
	int			hh = 0,
				mm;
	int			i = 0;

	if (len < 4 || len > 5 || s[len - 3] != ':')
		return -1;
	for (; i < len - 3; i++)
	{
		if (!isdigit((unsigned char) s[i]))
			return -1;
		hh = hh * 10 + (s[i] - '0');
	}
	if (!isdigit((unsigned char) s[len - 2]) || !isdigit((unsigned char) s[len - 1]))
		return -1;
	mm = (s[len - 2] - '0') * 10 + (s[len - 1] - '0');
	if (mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !is_end)))
		return -1;
	return hh * 60 + mm;
}

static const char *
parse_days(JsonbValue *v, uint8 *days)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		return "\"days\" must be an array such as [\"sat\", \"sun\"]";
	*days = 0;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		int			d;

		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			return "\"days\" must hold day names as strings";
		for (d = 0; d < 7; d++)
			if (e.val.string.len == 3 &&
				pg_strncasecmp(e.val.string.val, day_names[d], 3) == 0)
				break;
		if (d == 7)
			return "A day is one of mon, tue, wed, thu, fri, sat, sun";
		*days |= 1 << d;
	}
	if (*days == 0)
		return "\"days\" must name at least one day";
	return NULL;
}

static const char *
parse_period(JsonbContainer *obj, QuietPeriod *p)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	bool		have_start = false,
				have_end = false;

	p->days = ALL_DAYS;
	it = JsonbIteratorInit(obj);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);

		if (strcmp(key, "start") == 0 || strcmp(key, "end") == 0)
		{
			bool		is_end = key[0] == 'e';
			int			m;

			m = v.type == jbvString ?
				parse_time_of_day(v.val.string.val, v.val.string.len, is_end) : -1;
			if (m < 0)
				return is_end ?
					"\"end\" must be a time of day from \"00:00\" to \"24:00\"" :
					"\"start\" must be a time of day from \"00:00\" to \"23:59\"";
			if (is_end)
				p->end = m, have_end = true;
			else
				p->start = m, have_start = true;
		}
		else if (strcmp(key, "days") == 0)
		{
			const char *err = parse_days(&v, &p->days);

			if (err)
				return err;
		}
		else
			return psprintf("Unknown key \"%s\"; a period has \"start\", \"end\" and optionally \"days\"", key);
	}
	if (!have_start || !have_end)
		return "A period needs both \"start\" and \"end\"";
	if (p->start == p->end)
		return "\"start\" and \"end\" are equal; write \"00:00\" to \"24:00\" for a whole day";
	return NULL;
}

/* Quiet hours that cover every minute of the week would defer forever. */
static bool
covers_whole_week(const QuietHours *qh)
{
	bool	   *quiet = palloc0(MINUTES_PER_WEEK * sizeof(bool));
	bool		all = true;

	for (int i = 0; i < qh->nperiods; i++)
	{
		const QuietPeriod *p = &qh->periods[i];
		int			len = p->end > p->start ? p->end - p->start :
			MINUTES_PER_DAY - p->start + p->end;

		for (int d = 0; d < 7; d++)
		{
			if (!(p->days & (1 << d)))
				continue;
			for (int m = 0; m < len; m++)
				quiet[(d * MINUTES_PER_DAY + p->start + m) % MINUTES_PER_WEEK] = true;
		}
	}
	for (int m = 0; m < MINUTES_PER_WEEK && all; m++)
		all = quiet[m];
	pfree(quiet);
	return all;
}

/*
 * Parse quiet hours from a jsonb value (an object or an array of objects).
 * JSON null and an empty array mean "no quiet hours".  On malformed input
 * raise an error naming "what", or, when !throw_error, return false (the
 * worker's gate must never fail a whole batch over one bad row).
 */
bool
quiet_hours_parse(JsonbValue *v, QuietHours *qh, const char *what, bool throw_error)
{
	const char *err = NULL;

	qh->nperiods = 0;
	if (v == NULL || v->type == jbvNull)
		return true;

	if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
	{
		err = parse_period(v->val.binary.data, &qh->periods[0]);
		if (err == NULL)
			qh->nperiods = 1;
	}
	else if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while (err == NULL && (tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (qh->nperiods == QUIET_MAX_PERIODS)
				err = psprintf("At most %d periods are allowed", QUIET_MAX_PERIODS);
			else if (e.type != jbvBinary || !JsonContainerIsObject(e.val.binary.data))
				err = "Each element must be an object such as {\"start\": \"21:00\", \"end\": \"08:00\"}";
			else
				err = parse_period(e.val.binary.data, &qh->periods[qh->nperiods++]);
		}
	}
	else
		err = "Quiet hours must be an object such as {\"start\": \"21:00\", \"end\": \"08:00\"} or an array of them";

	if (err == NULL && qh->nperiods > 0 && covers_whole_week(qh))
		err = "They cover the whole week, so nothing could ever be sent";

	if (err == NULL)
		return true;
	qh->nperiods = 0;
	if (!throw_error)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid quiet hours in %s", what),
			 errdetail("%s.", err),
			 errhint("Write {\"start\": \"21:00\", \"end\": \"08:00\"}, optionally with \"days\": [\"sat\", \"sun\"], or an array of such periods.")));
	return false;				/* keep compiler quiet */
}

/* ----------------------------------------------------------------
 * Time arithmetic, all through PostgreSQL's time zone library
 * ----------------------------------------------------------------
 */

/* The UTC offset in force at instant t, in seconds west as PostgreSQL counts. */
static int
offset_west(TimestampTz t, pg_tz *zone)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;

	if (timestamp2tm(t, &tz, &tm, &fsec, NULL, zone) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return tz;
}

/* What the wall clock in zone shows at instant t (a timestamp without zone). */
static Timestamp
wall_clock(TimestampTz t, pg_tz *zone)
{
	return t - (int64) offset_west(t, zone) * USECS_PER_SEC;
}

/*
 * The first instant not before not_before at which the wall clock in zone
 * shows the wall time w (or, if w falls into a spring-forward gap, the
 * first instant after the gap, when the clock jumps past w).
 *
 * Candidates are w read with the offset AT TIME ZONE would pick and with
 * the offsets in force a day either side, which covers both readings of a
 * time in a repeated hour; a candidate counts only if the zone agrees that
 * its offset is in force at that instant.
 */
static TimestampTz
wall_to_instant(Timestamp w, TimestampTz not_before, pg_tz *zone)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			offsets[3];
	TimestampTz best = DT_NOEND;
	TimestampTz lowest = DT_NOEND;
	pg_time_t	from;
	pg_time_t	boundary;
	long		before_gmtoff,
				after_gmtoff;
	int			before_isdst,
				after_isdst;

	if (timestamp2tm(w, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	offsets[0] = DetermineTimeZoneOffset(&tm, zone);
	offsets[1] = offset_west(w - USECS_PER_DAY, zone);
	offsets[2] = offset_west(w + USECS_PER_DAY, zone);

	for (int i = 0; i < 3; i++)
	{
		TimestampTz u = w + (int64) offsets[i] * USECS_PER_SEC;

		if (u < lowest)
			lowest = u;
		if (offset_west(u, zone) == offsets[i] && u >= not_before && u < best)
			best = u;
	}
	if (best != DT_NOEND)
		return best;

	/*
	 * No reading of w exists: it lies in a gap.  The clock jumps over it at
	 * the next transition after the earliest candidate.
	 */
	from = timestamptz_to_time_t(lowest);
	if (pg_next_dst_boundary(&from, &before_gmtoff, &before_isdst, &boundary,
							 &after_gmtoff, &after_isdst, zone) == 1)
		best = time_t_to_timestamptz(boundary);
	else
		best = lowest;			/* cannot happen for a real gap */
	return Max(best, not_before);
}

/*
 * If the wall clock time w (minute of day m, weekday wday) is inside a
 * quiet period, the wall time at which the longest such period ends;
 * otherwise 0 and *inside is false.
 */
static Timestamp
quiet_period_end(const QuietHours *qh, Timestamp midnight, int m, int wday,
				 bool *inside)
{
	Timestamp	end = 0;
	int			yesterday = (wday + 6) % 7;

	*inside = false;
	for (int i = 0; i < qh->nperiods; i++)
	{
		const QuietPeriod *p = &qh->periods[i];
		Timestamp	e;

		if (p->start < p->end)
		{
			if (!(p->days & (1 << wday)) || m < p->start || m >= p->end)
				continue;
			e = midnight + (int64) p->end * USECS_PER_MINUTE;
		}
		else if (m >= p->start && (p->days & (1 << wday)))
			e = midnight + (int64) (MINUTES_PER_DAY + p->end) * USECS_PER_MINUTE;
		else if (m < p->end && (p->days & (1 << yesterday)))
			e = midnight + (int64) p->end * USECS_PER_MINUTE;
		else
			continue;

		if (!*inside || e > end)
			end = e;
		*inside = true;
	}
	return end;
}

/*
 * The first instant at or after "at" that lies outside the quiet hours,
 * read on the wall clock of zone.  "at" itself when it is not quiet.
 */
TimestampTz
quiet_hours_next_allowed(const QuietHours *qh, pg_tz *zone, TimestampTz at)
{
	TimestampTz t = at;

	if (qh->nperiods == 0 || TIMESTAMP_NOT_FINITE(at))
		return at;

	for (int hop = 0; hop < MAX_HOPS; hop++)
	{
		Timestamp	w = wall_clock(t, zone);
		int64		day = w / USECS_PER_DAY;
		int64		rem = w % USECS_PER_DAY;
		Timestamp	midnight;
		Timestamp	end;
		bool		inside;

		if (rem < 0)
		{
			rem += USECS_PER_DAY;
			day--;
		}
		midnight = day * USECS_PER_DAY;
		end = quiet_period_end(qh, midnight, (int) (rem / USECS_PER_MINUTE),
							   j2day((int) (day + POSTGRES_EPOCH_JDATE)), &inside);
		if (!inside)
			return t;
		t = wall_to_instant(end, t, zone);
	}
	return t;					/* still a deferral, never a drop */
}

/* ----------------------------------------------------------------
 * Where the quiet hours and the zone of a message come from
 * ----------------------------------------------------------------
 */

/*
 * The recipient's own "quiet_hours" (even [] or null, which turn quiet
 * hours off) win over the channel's default.
 */
static bool
effective_quiet_hours(Jsonb *recipient, Jsonb *channel_settings, QuietHours *qh,
					  bool throw_error)
{
	JsonbValue *v = jsonb_get(recipient, "quiet_hours");

	if (v != NULL)
		return quiet_hours_parse(v, qh, "recipient \"quiet_hours\"", throw_error);
	return quiet_hours_parse(jsonb_get(channel_settings, "quiet_hours"), qh,
							 "setting \"quiet_hours\" of the channel", throw_error);
}

/* The recipient's time zone, or the server's when it has none (or a bad one). */
static pg_tz *
recipient_zone(Jsonb *recipient)
{
	char	   *name = jsonb_get_text(recipient, "time_zone");
	pg_tz	   *zone = NULL;

	if (name != NULL && *name != '\0')
		zone = pg_tzset(name);
	return zone ? zone : session_timezone;
}

/*
 * Gate check: defer a message that falls due inside its recipient's quiet
 * hours to the first moment after them.
 */
void
quiet_hours_gate(const GateMessage *msg, GateResult *result)
{
	QuietHours	qh;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next;
	pg_tz	   *zone;

	if (!effective_quiet_hours(msg->recipient, msg->channel ? msg->channel->settings : NULL,
							   &qh, false))
		return;					/* validated when stored; never block on it */
	if (qh.nperiods == 0)
		return;

	zone = recipient_zone(msg->recipient);
	next = quiet_hours_next_allowed(&qh, zone, now);
	if (next <= now)
		return;

	result->verdict = GATE_DEFER;
	result->defer_until = next;
	result->reason = psprintf("quiet hours (%s): deferred until %s",
							  pg_get_timezone_name(zone), timestamptz_to_str(next));
}

/* ----------------------------------------------------------------
 * SQL: reminder.next_send_time(recipient jsonb, channel text, at timestamptz)
 * ----------------------------------------------------------------
 */

static SPIPlanPtr channel_settings_plan = NULL;

/* A channel's settings, readable by reminder_user (no secrets needed). */
static Jsonb *
channel_settings(const char *name)
{
	Datum		values[1] = {CStringGetTextDatum(name)};
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext old;
	Jsonb	   *settings;
	bool		isnull;

	SPI_connect();
	if (channel_settings_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		channel_settings_plan = spi_prepare_kept("SELECT settings FROM reminder.channel WHERE name = $1",
												 1, argtypes, 0);
	}
	spi_plan_expect(channel_settings_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist", name),
				 errhint("See the reminder.channel table for existing channels.")));
	old = MemoryContextSwitchTo(cxt);
	settings = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	MemoryContextSwitchTo(old);
	SPI_finish();
	return settings;
}

Datum
reminder_next_send_time(PG_FUNCTION_ARGS)
{
	Jsonb	   *recipient;
	Jsonb	   *settings = NULL;
	TimestampTz at;
	QuietHours	qh;
	int64		recipient_id;
	char	   *tzname;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipient must not be null")));
	recipient = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_OBJECT(recipient) || JB_ROOT_IS_SCALAR(recipient))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient must be a JSON object"),
				 errhint("Write {\"time_zone\": \"Europe/Warsaw\", \"quiet_hours\": {\"start\": \"21:00\", \"end\": \"08:00\"}} or {\"external_id\": \"client-42\"}.")));
	at = PG_ARGISNULL(2) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(2);
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("\"at\" must be a finite timestamp")));

	recipient = catalog_resolve_recipient(recipient, &recipient_id);
	if ((tzname = jsonb_get_text(recipient, "time_zone")) != NULL)
		validate_time_zone(tzname, "recipient \"time_zone\"");
	if (!PG_ARGISNULL(1))
		settings = channel_settings(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	(void) effective_quiet_hours(recipient, settings, &qh, true);
	PG_RETURN_TIMESTAMPTZ(quiet_hours_next_allowed(&qh, recipient_zone(recipient), at));
}
