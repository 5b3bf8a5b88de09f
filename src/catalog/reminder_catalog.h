/*-------------------------------------------------------------------------
 *
 * catalog/reminder_catalog.h
 *	  Declarations of the catalog family: channels, templates and
 *	  recipients as stored, quiet hours, consent, business calendars.
 *	  (Not catalog.h, which would shadow PostgreSQL's "catalog/catalog.h".)
 *
 *-------------------------------------------------------------------------
 */
#ifndef CATALOG_REMINDER_CATALOG_H
#define CATALOG_REMINDER_CATALOG_H

#include "reminder.h"

/* ----------------
 * in channel.c: channel definitions, read (catalog_channel: inside SPI) and
 * parsed
 * ----------------
 */
typedef enum ChannelKind
{
	CHANNEL_EMAIL,
	CHANNEL_SMS,
	CHANNEL_WEBHOOK,
	CHANNEL_SLACK,
	CHANNEL_LOG
} ChannelKind;

typedef enum StartTlsMode
{
	STARTTLS_WHEN_OFFERED,
	STARTTLS_REQUIRED,
	STARTTLS_NEVER
} StartTlsMode;

/* Which List-Unsubscribe headers a message with an unsubscribe link gets */
typedef enum ListUnsubscribe
{
	LIST_UNSUBSCRIBE_ONE_CLICK,	/* List-Unsubscribe and -Post (RFC 8058) */
	LIST_UNSUBSCRIBE_LINK,		/* List-Unsubscribe only (RFC 2369) */
	LIST_UNSUBSCRIBE_NEVER
} ListUnsubscribe;

/*
 * A channel's settings and secrets, parsed and checked.  The same parser
 * validates create_channel() input and loads channels for the worker, so a
 * channel the worker sees is always one create_channel() accepted.
 */
typedef struct ChannelConfig
{
	char	   *name;
	ChannelKind kind;

	/* delivery policy, defaults from the GUCs */
	double		rate_limit;		/* messages per second, 0 = unlimited */
	int16		priority;		/* of its messages unless they say: 1, 0, -1 */
	int			timeout_ms;
	int			max_attempts;
	int			retry_delay_ms;
	int			retry_max_delay_ms;
	char	   *fallback;		/* channel used when delivery fails, or NULL */

	/* HTTP kinds (webhook, slack, sms) */
	char	   *url;
	char	   *method;
	List	   *headers;		/* "Name: value" strings */
	List	   *recipient_hosts;	/* webhook: HostPattern * recipients may name */

	/* TLS of the email, sms and slack kinds */
	bool		tls_verify;		/* verify the server's certificate (default) */
	char	   *ca_file;		/* certificate authorities to trust, or NULL */

	/* email */
	char	   *from;
	char	   *reply_to;
	List	   *bcc;			/* addresses copied on every message */
	StartTlsMode starttls;
	ListUnsubscribe list_unsubscribe;

	/* sms */
	char	   *provider;		/* twilio, smsapi, generic */
	char	   *sender;			/* "from" of an SMS */
	char	   *base_url;
	char	   *default_country_code;
	bool		transliterate;	/* "unicode": "transliterate" */
	char	   *account_sid;	/* twilio */
	char	   *messaging_service_sid;	/* twilio, instead of "from" */
	char	   *body;			/* generic: templates are url, headers, body */
	char	   *content_type;	/* generic: of the body, picks its escaping */
	char	   *id_field;		/* generic: path of the id in the response */

	/* slack */
	char	   *slack_username;
	char	   *slack_icon_emoji;
	char	   *slack_icon_url;
	char	   *slack_channel;

	Jsonb	   *settings;		/* as stored, for kind-specific extras */
	Jsonb	   *secrets;		/* as stored; never logged */
} ChannelConfig;

extern ChannelConfig *catalog_channel(const char *name);
extern ChannelConfig *channel_parse(const char *name, const char *kind,
									Jsonb *settings, Jsonb *secrets);
extern List *channel_destinations(ChannelConfig *cc);

/* ----------------
 * in channel_settings.c: the kinds' names, and reading single settings and
 * secrets (also for the kinds' parse hooks, transport_*.c)
 * ----------------
 */
extern const char *channel_kind_name(ChannelKind kind);
extern bool channel_kind_from_name(const char *name, ChannelKind *kind);
extern char *channel_what_setting(const char *key, const char *channel);
extern char *channel_get_string(Jsonb *obj, const char *key, const char *channel,
								bool secret);
extern void channel_require(const char *value, const char *key, ChannelConfig *cc,
							const char *hint);
extern void channel_require_secret(const char *value, const char *key,
								   ChannelConfig *cc, const char *hint);
extern void channel_parse_tls(Jsonb *settings, ChannelConfig *cc);
extern List *channel_get_headers(Jsonb *obj, const char *key, ChannelConfig *cc);
extern List *channel_get_recipient_hosts(Jsonb *settings, ChannelConfig *cc);

/* ----------------
 * in channel_cache.c: parsed channels the worker keeps across claims
 * ----------------
 */
extern void channel_cache_begin_listing(void);
extern void channel_cache_listed(const char *name, const char *version);
extern void channel_cache_end_listing(void);
extern ChannelConfig *channel_cache_peek(const char *name);
extern ChannelConfig *channel_cache_get(const char *name);

/* ----------------
 * in catalog.c: reading templates and recipients (inside SPI)
 * ----------------
 */
typedef struct TemplateRow
{
	char	   *name;
	char	   *locale;
	char	   *subject;		/* NULL when the template has none */
	char	   *body;
	char	   *html;			/* NULL when the template has none */
	List	   *required;		/* dotted variable names */
} TemplateRow;

extern void catalog_batch_begin(void);
extern TemplateRow *catalog_template(const char *name, const char *locale);
extern Jsonb *catalog_resolve_recipient(Jsonb *recipient, int64 *recipient_id);

/* ----------------
 * in recipient.c: stored recipients and per-message recipient limits
 * ----------------
 */
extern void recipient_check_message(Jsonb *recipient);
extern char *recipient_string(Jsonb *recipient, const char *key);
extern void recipient_missing_address(ChannelConfig *cc, const char *key,
									  const char *example) pg_attribute_noreturn();

/* ----------------
 * in quiet_hours.c: quiet hours and send windows in the recipient's zone
 * ----------------
 */
#define QUIET_MAX_PERIODS	16

typedef struct QuietPeriod
{
	int			start;			/* minutes after local midnight, 0..1439 */
	int			end;			/* minutes after local midnight, 1..1440 */
	uint8		days;			/* bit n: applies when it starts on tm_wday n */
} QuietPeriod;

typedef struct QuietHours
{
	int			nperiods;
	QuietPeriod periods[QUIET_MAX_PERIODS];
} QuietHours;

extern bool quiet_hours_parse(JsonbValue *v, QuietHours *qh, const char *what,
							  bool throw_error);
extern TimestampTz quiet_hours_next_allowed(const QuietHours *qh,
											pg_tz *zone, TimestampTz at);

/* ----------------
 * in consent.c: opt-out and opt-in
 * ----------------
 */
extern char *message_category(const char *category, Jsonb *data,
							  const char *template_name);
extern void consent_record(int64 recipient_id, const char *address,
						   const char *channel, const char *category,
						   bool opt_out, const char *source);

/* ----------------
 * in calendar.c: business days and day arithmetic in a time zone
 * ----------------
 */
typedef struct BusinessCalendar
{
	char	   *name;
	uint8		weekend;		/* bit n set: ISO day n (1 = Monday) is off */
	int			nholidays;
	DateADT    *holidays;		/* sorted */
} BusinessCalendar;

extern BusinessCalendar *calendar_load(const char *name);
extern bool calendar_is_business_day(const BusinessCalendar *cal, DateADT day);
extern TimestampTz calendar_add(TimestampTz ts, const Interval *offset, int sign,
								const BusinessCalendar *cal, struct pg_tz *tz);

#endif							/* CATALOG_REMINDER_CATALOG_H */
