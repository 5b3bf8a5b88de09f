/*-------------------------------------------------------------------------
 *
 * transport.h
 *	  The delivery of one claimed message, and the transports that carry it:
 *	  a libcurl multi driver (transport.c) and one small vtable per channel
 *	  kind (transport_http.c for webhooks, transport_log.c for the log
 *	  channel; SMTP, SMS and Slack plug in the same way).
 *
 *	  Each vtable also holds what else is particular to its kind: the
 *	  settings and secrets of its channels, what it needs of a recipient,
 *	  where it sends secrets, how values are escaped in a rendered body.
 *	  So channel_parse(), channel_destinations(), schedule.c, render.c and
 *	  rules.c hold no switch on the kind.
 *
 *	  A Delivery is made by the worker (worker/delivery.c) and built by its
 *	  transport inside the claim transaction (build: everything that reads
 *	  the database or may raise an error: channel secrets, the rendered
 *	  body, the signature), carried out with no transaction open (setup
 *	  configures a curl easy handle, then the multi handle runs it) and
 *	  classified when the transfer ends (classify: sent, transient or
 *	  permanent, never raising an error).  What that means for the message
 *	  the worker decides (delivery.c) and records in one transaction per
 *	  batch of completions (outbox/queue.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef REMINDER_TRANSPORT_H
#define REMINDER_TRANSPORT_H

#include <curl/curl.h>

#include "lib/ilist.h"
#include "lib/stringinfo.h"

#include "catalog/reminder_catalog.h"
#include "render/render.h"
#include "render/template.h"

#define DELIVERY_RESPONSE_MAX	1024	/* first bytes of a response kept */
#define DELIVERY_WHY_MAX		256

typedef enum DeliveryOutcome
{
	OUTCOME_SENT,
	OUTCOME_TRANSIENT,
	OUTCOME_PERMANENT
} DeliveryOutcome;

struct TransportOps;

/* A message as the claim returns it. */
typedef struct ClaimedMessage
{
	int64		id;
	char	   *channel;
	Jsonb	   *recipient;
	char	   *template_name;
	Jsonb	   *data;
	int			attempt;		/* this attempt's number, from 1 */
	char	   *idempotency_key;
	TimestampTz due_at;
	int64		rule_id;
	char	   *source_key;
	bool		is_fallback;	/* fallback_of is set: never falls back again */
	char	   *fallback;		/* the message's own fallback channel, or NULL */
	int16		priority;		/* 1 high, 0 normal, -1 low */
	char	   *category;		/* message.category, or NULL */
} ClaimedMessage;

typedef struct Delivery
{
	dlist_node	node;
	MemoryContext cxt;			/* owns the delivery and all it points to */
	const struct TransportOps *ops;

	/* the message */
	int64		message_id;
	int			attempt;
	char	   *idempotency_key;
	Jsonb	   *recipient;
	char	   *template_name;
	Jsonb	   *data;
	bool		is_fallback;
	int16		priority;		/* 1 high, 0 normal, -1 low: starts first */
	char	   *category;		/* message.category, or NULL: its fallback's */

	/* the channel's policy */
	char	   *channel;
	int			timeout_ms;
	int			max_attempts;
	int			retry_delay_ms;
	int			retry_max_delay_ms;
	char	   *fallback;
	bool		paced;			/* the channel has a rate limit: start at once */

	/* the request, for network kinds */
	char	   *url;
	char	   *host;			/* the URL's host, for the host policy */
	char	   *method;
	char	   *body;
	size_t		body_len;
	List	   *headers;		/* "Name: value" */

	/* the rendered message, for the log kind */
	char	   *subject;
	char	   *html;

	/* the claim: the lease this worker holds on the message */
	TimestampTz lease_until;

	/* the transfer, owned by transport.c while in flight */
	char	   *conn_key;		/* "host:port" libcurl's per-host limit counts */
	int			host_hint;		/* where limits.c last found that host */
	bool		host_counted;	/* in flight: counted there (limits.c) */
	CURL	   *easy;
	struct curl_slist *slist;
	void	   *state;			/* the transport's own, in cxt; see cleanup */
	TimestampTz started_at;
	TimestampTz finished_at;
	CURLcode	curl_code;
	long		http_status;
	long		retry_after_s;	/* from Retry-After, 0 if none */
	char		errbuf[CURL_ERROR_SIZE];
	char		denied[DELIVERY_WHY_MAX];	/* set when the host policy refused */
	char		response[DELIVERY_RESPONSE_MAX + 1];
	size_t		response_len;

	/* the verdict, set by classify */
	DeliveryOutcome outcome;
	char	   *error;			/* NULL when sent */
	char	   *provider_id;
	char	   *smtp_reply;
	int			sms_segments;	/* SMS: segments of the text sent; 0 otherwise */

	/* what the record transaction writes (delivery.c decides, queue.c writes) */
	const char *status;			/* sent, retrying, failed */
	TimestampTz next_attempt_at;
	char	   *last_error;		/* the message's: error, and what came of
								 * its fallback */
} Delivery;

/* One per channel kind. */
typedef struct TransportOps
{
	ChannelKind kind;
	bool		network;		/* false: completes at once, no transfer */

	/* In the claim transaction: fill in the request.  May raise an error. */
	void		(*build) (Delivery *d, ChannelConfig *cc, ClaimedMessage *m,
						  RenderedMessage *r);

	/* No transaction: configure the easy handle (URL, body, headers). */
	void		(*setup) (Delivery *d, CURL *easy);

	/* After the transfer: set outcome, error, provider_id.  Never raises. */
	void		(*classify) (Delivery *d);

	/*
	 * No transaction: free what setup made outside cxt (curl_mime, lists),
	 * once the easy handle is gone, whether the transfer ran or not.  May be
	 * NULL.  Never raises.
	 */
	void		(*cleanup) (Delivery *d);

	/*
	 * The channel definition (channel.c): the settings this kind takes
	 * besides the delivery policy, and its secrets (NULL: none; any_secrets:
	 * any key, as an SMS gateway's templates name their own).  parse reads
	 * them into cc once the policy is parsed; it may raise an error, and may
	 * be NULL.
	 */
	const char *const *settings_keys;
	const char *const *secrets_keys;
	bool		any_secrets;
	void		(*parse) (Jsonb *settings, Jsonb *secrets, ChannelConfig *cc);

	/*
	 * The recipient (schedule.c, rules.c).  address_key names the field
	 * that holds the address, or is NULL when the channel itself is the
	 * address: a rule's row without it gets no message.  copies: cc and bcc
	 * go with the message (rules drop them for other kinds).  invites:
	 * reminders of a rule may carry a calendar invite.
	 */
	const char *address_key;
	bool		copies;
	bool		invites;

	/*
	 * In schedule(), after the checks every kind shares: check what this
	 * kind needs of the recipient and return it, normalised.  May be NULL.
	 */
	Jsonb	   *(*check_recipient) (ChannelConfig *cc, Jsonb *recipient);

	/*
	 * The places a channel of this kind sends its secrets to, as text (see
	 * channel_destinations(), which adds how network kinds trust the
	 * server).  May be NULL.
	 */
	List	   *(*destinations) (ChannelConfig *cc);

	/* The rendered message (render.c): how values are escaped in each part */
	RenderEscape body_escape;
	RenderEscape html_escape;

	/* The body once rendered, changed in place and returned.  May be NULL. */
	char	   *(*finish_body) (char *body);
} TransportOps;

/* in kinds.c: the transport of each channel kind, NULL if none */
extern const TransportOps *transport_for_kind(ChannelKind kind);

/* in transport.c: the multi driver */
extern void transport_init(void);
extern void transport_configure(bool policy_changed);
extern pgsocket transport_socket(void);
extern long transport_timeout_ms(void);
extern bool transport_reserve(Delivery *d);
extern void transport_start(Delivery *d);
extern void transport_perform(bool sockets_ready);
extern int	transport_in_flight(void);
extern bool transport_host_has_room(Delivery *d);
extern const char *transport_host_key(Delivery *d);
extern int	transport_channel_load(Delivery *d);
extern void transport_foreach_active(void (*fn) (Delivery *d, void *arg), void *arg);
extern bool transport_take_done(dlist_head *into);
extern void transport_abandon_all(dlist_head *abandoned);

/* in transport_http.c */
extern const TransportOps transport_webhook_ops;

/* in transport_log.c */
extern const TransportOps transport_log_ops;

/* in transport_smtp.c: email */
extern const TransportOps transport_smtp_ops;

/* in transport_sms.c: SMS through Twilio, SMSAPI or a generic gateway */
extern const TransportOps transport_sms_ops;

/* in transport_slack.c: Slack incoming webhooks */
extern const TransportOps transport_slack_ops;

/* in transport_util.c: shared by the per-kind transports */
typedef struct ResponseBuffer
{
	Delivery   *d;
	char	   *data;
	size_t		len;
	size_t		cap;
} ResponseBuffer;

extern char *transport_url_host(const char *url, const char *what,
								bool may_hold_secrets);
extern void transport_percent_encode(StringInfo buf, const char *s, bool form);
extern void transport_form_field(StringInfo buf, const char *name,
								 const char *value);
extern char *transport_to_utf8(const char *s);
extern void transport_add_http_headers(Delivery *d, const char *content_type);
extern ResponseBuffer *transport_response_buffer(Delivery *d, size_t cap);
extern size_t transport_response_cb(char *ptr, size_t size, size_t nmemb,
									void *userdata);
extern void transport_set_request(Delivery *d, CURL *easy);
extern void transport_setup_http(Delivery *d, CURL *easy, ResponseBuffer *rb,
								 bool tls_verify, const char *ca_file);
extern void transport_set_tls(CURL *easy, bool verify, const char *ca_file);
extern DeliveryOutcome transport_http_outcome(long status);
extern void transport_set_error(Delivery *d, const char *prefix, const char *text);
extern void transport_classify_curl(Delivery *d);

/* ----------------
 * in origin.c: where URLs connect, and who may receive a channel's secrets
 * ----------------
 */
typedef struct UrlOrigin
{
	char	   *scheme;			/* lower case */
	char	   *host;			/* as libcurl connects: punycode, lower case,
								 * IPv6 in brackets */
	int			port;			/* given or the scheme's default */
	bool		userinfo;		/* the URL holds a user name or password */
} UrlOrigin;

typedef struct HostPattern
{
	char	   *host;			/* normalised as UrlOrigin.host */
	bool		suffix;			/* "*.example.com": names under it */
	int			port;			/* 0: any */
} HostPattern;

extern bool url_origin(const char *url, UrlOrigin *o);
extern char *url_origin_text(const UrlOrigin *o);
extern HostPattern *host_pattern_parse(const char *entry, const char *what);
extern bool host_pattern_matches(const HostPattern *p, const UrlOrigin *o);
extern void check_recipient_url(ChannelConfig *cc, const char *url);
extern char *url_template_authority(const char *tmpl, const char *what);
extern char *host_pattern_text(const HostPattern *p);
extern void channel_destination_url(List **dest, const char *url);

/* ----------------
 * in hostpolicy.c: which addresses outgoing requests may reach
 * ----------------
 */
struct sockaddr;

/*
 * The default of reminder.denied_hosts: link-local addresses (IPv4 and
 * IPv6), which hold the metadata endpoints of AWS, GCP, Azure, Oracle,
 * DigitalOcean, OpenStack and others at 169.254.169.254, and the cloud
 * endpoints outside them: Alibaba Cloud's metadata (100.100.100.200),
 * Azure's WireServer (168.63.129.16), Oracle Cloud Classic's metadata
 * (192.0.0.192) and the IPv6 metadata endpoints of AWS (fd00:ec2::254),
 * GCP (fd20:ce::254) and Oracle Cloud (fd00:c1::a9fe:a9fe).
 */
#define REMINDER_DEFAULT_DENIED_HOSTS \
	"169.254.0.0/16, fe80::/10, 100.100.100.200, 168.63.129.16, 192.0.0.192, " \
	"fd00:ec2::254, fd20:ce::254, fd00:c1::a9fe:a9fe"

extern bool hostpolicy_check_list(const char *list, char **bad_entry);
extern void hostpolicy_load(void);
extern bool hostpolicy_permits(const char *host, const struct sockaddr *addr,
							   char *why, size_t whylen);

#endif							/* REMINDER_TRANSPORT_H */
