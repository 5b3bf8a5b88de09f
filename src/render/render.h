/*-------------------------------------------------------------------------
 *
 * render/render.h
 *	  Declarations of the render family: a message as it goes out, SMS
 *	  texts, signed action links.  (Templates: render/template.h and
 *	  render/mustache.h.)
 *
 *-------------------------------------------------------------------------
 */
#ifndef RENDER_RENDER_H
#define RENDER_RENDER_H

#include "reminder.h"
#include "catalog/reminder_catalog.h"

/* ----------------
 * in sms_text.c: encoding, segments and transliteration of SMS texts (UTF-8)
 * ----------------
 */
typedef struct SmsCount
{
	bool		gsm7;			/* fits GSM-7; else it goes as UCS-2 */
	int			units;			/* septets, or UTF-16 code units */
	int			segments;		/* SMS it costs */
} SmsCount;

extern void sms_count(const char *text, SmsCount *count);
extern char *sms_transliterate(const char *text);

/* ----------------
 * in render.c: a message as it goes out (needs a transaction)
 * ----------------
 */
typedef struct RenderedMessage
{
	char	   *locale;			/* the template locale used */
	char	   *subject;		/* NULL when the template has none */
	char	   *body;
	char	   *html;			/* NULL when the template has none */
	char	   *unsubscribe_url;	/* links.unsubscribe of the context, or NULL */
	char	   *callback_url;	/* links.callback: for provider status reports */
} RenderedMessage;

extern RenderedMessage *render_message(ChannelConfig *cc, const char *template_name,
									   Jsonb *recipient, Jsonb *data,
									   int64 message_id);

/* ----------------
 * in links.c: signed action links and the events they record
 * ----------------
 */
typedef enum LinkAction
{
	LINK_CONFIRM = 1,
	LINK_DECLINE,
	LINK_RESCHEDULE,
	LINK_UNSUBSCRIBE,
	LINK_SCORE,					/* carries a score 0..10 */
	LINK_SURVEY,				/* a survey form: the score comes with the answer */
	LINK_OPEN,
	LINK_CALLBACK				/* provider callbacks: delivered, bounced, ... */
} LinkAction;

extern char *links_token(int64 message_id, LinkAction action, int score,
						 TimestampTz expires_at);
extern Jsonb *links_context(int64 message_id);
extern Jsonb *links_add_to_context(Jsonb *context, int64 message_id);
extern int64 links_record_event(int64 message_id, const char *kind, Jsonb *detail,
								const char *source);

/* reminder.event.kind: the list, and the same for hints */
extern const char *const reminder_event_kinds[];
#define REMINDER_EVENT_KINDS "delivered, bounced, opened, clicked, confirmed, declined, " \
	"reschedule_requested, answered, unsubscribed, complained, replied"

/* ----------------
 * in ical.c: calendar invites (RFC 5545)
 * ----------------
 */
struct ClaimedMessage;
extern char *ical_build(Jsonb *event, const char *uid, int sequence, bool cancelled,
						const char *organizer, const char *attendee_name,
						const char *attendee);
extern char *ical_for_message(const struct ClaimedMessage *m, const char *from,
							  const char *attendee_name, const char *attendee,
							  const char **method);

#endif							/* RENDER_RENDER_H */
