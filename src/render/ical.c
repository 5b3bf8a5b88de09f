/*-------------------------------------------------------------------------
 *
 * ical.c
 *	  Calendar invites: the iCalendar (RFC 5545) object an email of a
 *	  recipient with an "invite" carries, as iTIP (RFC 5546) wants it:
 *	  METHOD:REQUEST while the row calls for the event, METHOD:CANCEL with
 *	  STATUS:CANCELLED once it does not.
 *
 *	  The event is what reminder.invite holds for the message's rule, row
 *	  and recipient (rules.c keeps it in step with the row); its UID is
 *	  made from the rule and the row key, so every email about one row
 *	  names the same event, and its SEQUENCE is raised by every change.
 *	  The worker notes in reminder.invite which SEQUENCE it sent.
 *
 *	  Text values are escaped as RFC 5545 3.3.11 says (backslash,
 *	  semicolon, comma, line breaks as \n; other control characters
 *	  dropped), parameter values quoted without quotes or control
 *	  characters inside, and lines folded at 75 octets between whole UTF-8
 *	  characters, every line ending in CRLF: nothing in the row can end a
 *	  property, a component or the MIME part early.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "gate/gate.h"
#include "rules/rules.h"
#include "transport/mail.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"

#define ICAL_LINE_OCTETS	75	/* RFC 5545 3.1: without the CRLF */

static SPIPlanPtr invite_state_plan = NULL;
static SPIPlanPtr invite_sent_plan = NULL;

/*
 * Append one content line, folded: a line longer than 75 octets goes on
 * in lines that start with a space, never splitting a UTF-8 character.
 */
static void
append_line(StringInfo out, const char *line)
{
	const char *p = line;
	int			room = ICAL_LINE_OCTETS;

	while (*p)
	{
		int			len = pg_utf_mblen((const unsigned char *) p);

		len = Min(len, (int) strlen(p));
		if (len > room)
		{
			appendStringInfoString(out, "\r\n ");
			room = ICAL_LINE_OCTETS - 1;
		}
		appendBinaryStringInfo(out, p, len);
		room -= len;
		p += len;
	}
	appendStringInfoString(out, "\r\n");
}

/* A TEXT value (RFC 5545 3.3.11). */
static void
append_text(StringInfo out, const char *s)
{
	for (const char *p = s; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '\\' || c == ';' || c == ',')
		{
			appendStringInfoChar(out, '\\');
			appendStringInfoChar(out, c);
		}
		else if (c == '\r' || c == '\n')
		{
			appendStringInfoString(out, "\\n");
			if (c == '\r' && p[1] == '\n')
				p++;
		}
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			continue;
		else
			appendStringInfoChar(out, c);
	}
}

/* A quoted parameter value: no DQUOTE and no control character inside. */
static void
append_param(StringInfo out, const char *s)
{
	appendStringInfoChar(out, '"');
	for (const char *p = s; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '"')
			appendStringInfoChar(out, '\'');
		else if (c < 0x20 || c == 0x7f)
			appendStringInfoChar(out, ' ');
		else
			appendStringInfoChar(out, c);
	}
	appendStringInfoChar(out, '"');
}

static void
property_text(StringInfo out, const char *name, const char *value)
{
	StringInfoData line;

	if (value == NULL || *value == '\0')
		return;
	initStringInfo(&line);
	appendStringInfo(&line, "%s:", name);
	append_text(&line, transport_to_utf8(value));
	append_line(out, line.data);
}

/* ORGANIZER or ATTENDEE: ;CN="name"...:mailto:address */
static void
property_address(StringInfo out, const char *name, const char *cn, const char *params,
				 const char *address)
{
	StringInfoData line;

	initStringInfo(&line);
	appendStringInfoString(&line, name);
	if (cn && *cn)
	{
		appendStringInfoString(&line, ";CN=");
		append_param(&line, transport_to_utf8(cn));
	}
	if (params)
		appendStringInfoString(&line, params);
	/* addresses passed validate_email(): no control characters */
	appendStringInfo(&line, ":mailto:%s", address);
	append_line(out, line.data);
}

/* An iCalendar time in UTC as stored by rules.c: 20251205T130000Z */
static const char *
utc_time(Jsonb *event, const char *key)
{
	char	   *t = jsonb_get_text(event, key);

	if (t == NULL || strlen(t) != 16 || t[8] != 'T' || t[15] != 'Z' ||
		strspn(t, "0123456789") != 8 || strspn(t + 9, "0123456789") != 6)
		elog(ERROR, "invite has no valid %s", key);
	return t;
}

/*
 * The VCALENDAR object: event is reminder.invite.invite; uid, sequence and
 * cancelled say which version; organizer and attendee are mailboxes.
 */
char *
ical_build(Jsonb *event, const char *uid, int sequence, bool cancelled,
		   const char *organizer, const char *attendee_name, const char *attendee)
{
	StringInfoData out;
	char	   *org_name;
	char	   *org_addr;
	struct pg_tm tm;
	fsec_t		fsec;
	char		stamp[32];

	if (timestamp2tm(GetCurrentTimestamp(), NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "current time out of range");
	snprintf(stamp, sizeof(stamp), "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year, tm.tm_mon,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	mail_split_mailbox(organizer, &org_name, &org_addr);

	initStringInfo(&out);
	append_line(&out, "BEGIN:VCALENDAR");
	append_line(&out, "PRODID:-//reminder//reminder " REMINDER_VERSION "//EN");
	append_line(&out, "VERSION:2.0");
	append_line(&out, "CALSCALE:GREGORIAN");
	append_line(&out, cancelled ? "METHOD:CANCEL" : "METHOD:REQUEST");
	append_line(&out, "BEGIN:VEVENT");
	append_line(&out, psprintf("UID:%s", uid));
	append_line(&out, psprintf("SEQUENCE:%d", sequence));
	append_line(&out, psprintf("DTSTAMP:%s", stamp));
	append_line(&out, psprintf("DTSTART:%s", utc_time(event, "start")));
	append_line(&out, psprintf("DTEND:%s", utc_time(event, "end")));
	property_text(&out, "SUMMARY", jsonb_get_text(event, "summary"));
	property_text(&out, "LOCATION", jsonb_get_text(event, "location"));
	property_text(&out, "DESCRIPTION", jsonb_get_text(event, "description"));
	property_address(&out, "ORGANIZER", org_name, NULL, org_addr);
	property_address(&out, "ATTENDEE", attendee_name,
					 ";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE", attendee);
	append_line(&out, cancelled ? "STATUS:CANCELLED" : "STATUS:CONFIRMED");
	append_line(&out, "END:VEVENT");
	append_line(&out, "END:VCALENDAR");
	return out.data;
}

/*
 * The invite an email of a rule-made message carries, or NULL: built from
 * reminder.invite for its rule, row and recipient, which then notes that
 * this sequence went out.  *method gets REQUEST or CANCEL.  Runs in the
 * claim transaction.
 */
char *
ical_for_message(const ClaimedMessage *m, const char *from, const char *attendee_name,
				 const char *attendee, const char **method)
{
	CompiledRule *rule;
	RuleRecipient *r;
	OwnerContext ext;
	char	   *result = NULL;
	MemoryContext caller = CurrentMemoryContext;

	if (m->rule_id == 0 || m->source_key == NULL || m->idempotency_key == NULL)
		return NULL;

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	rule = rule_cache_get(m->rule_id, true);
	if (rule == NULL)
	{
		owner_leave(&ext);
		return NULL;
	}

	PG_TRY();
	{
		r = rule_key_recipient(rule, m->source_key, m->idempotency_key);
		if (r != NULL && r->invite != NULL)
		{
			Datum		values[4];
			bool		isnull;

			SPI_connect();
			if (invite_state_plan == NULL)
			{
				Oid			types[4] = {INT8OID, TEXTOID, INT4OID, INT4OID};

				invite_state_plan = spi_prepare_kept("SELECT invite, sequence, cancelled FROM reminder.invite "
													 "WHERE rule_id = $1 AND source_key = $2 AND recipient = $3 "
													 "FOR UPDATE",
													 3, types, 0);
				invite_sent_plan = spi_prepare_kept("UPDATE reminder.invite SET sent_sequence = $4, "
													"sent_at = now() "
													"WHERE rule_id = $1 AND source_key = $2 AND recipient = $3",
													4, types, 0);
			}
			values[0] = Int64GetDatum(m->rule_id);
			values[1] = CStringGetTextDatum(m->source_key);
			values[2] = Int32GetDatum(r->index);
			spi_plan_expect(invite_state_plan, values, NULL, false, 1, SPI_OK_SELECT);
			if (SPI_processed > 0)
			{
				HeapTuple	tup = SPI_tuptable->vals[0];
				TupleDesc	desc = SPI_tuptable->tupdesc;
				MemoryContext spi = MemoryContextSwitchTo(caller);
				Jsonb	   *event = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 1, &isnull));
				int			sequence = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
				bool		cancelled = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
				char	   *organizer = jsonb_get_text(event, "organizer");
				char	   *prefix = rule_key_prefix(m->rule_id, m->source_key);
				char	   *uid;

				/* rule:<rule>:<row key>: -> rule-<rule>-<row key>@domain */
				prefix[strlen(prefix) - 1] = '\0';
				for (char *p = prefix; *p; p++)
					if (*p == ':')
						*p = '-';
				if (organizer == NULL)
					organizer = pstrdup(from);
				{
					char	   *name;
					char	   *addr;

					mail_split_mailbox(organizer, &name, &addr);
					uid = psprintf("%s@%s", prefix, mail_address_domain(addr));
				}
				result = ical_build(event, uid, sequence, cancelled, organizer,
									attendee_name, attendee);
				*method = cancelled ? "CANCEL" : "REQUEST";
				MemoryContextSwitchTo(spi);

				values[3] = Int32GetDatum(sequence);
				spi_plan_expect(invite_sent_plan, values, NULL, false, 0, SPI_OK_UPDATE);
			}
			SPI_finish();
		}
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		owner_leave(&ext);
	}
	PG_END_TRY();
	return result;
}
