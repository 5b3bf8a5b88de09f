/*-------------------------------------------------------------------------
 *
 * reminder.c
 *	  Module load: configuration parameters and, when the library is in
 *	  shared_preload_libraries, the background workers' shared state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "reminder.h"
#include "outbox/outbox.h"
#include "transport/transport.h"
#include "worker/worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* true when loaded through shared_preload_libraries, so workers exist */
bool		reminder_preloaded = false;

bool		reminder_enabled = true;
int			reminder_poll_interval = 1000;
int			reminder_batch_size = 100;
int			reminder_max_concurrent = 64;
int			reminder_max_host_connections = 16;
int			reminder_timeout = 10000;
int			reminder_connect_timeout = 5000;
int			reminder_lease_timeout = 300;
int			reminder_workers_per_database = 1;
int			reminder_max_attempts = 5;
int			reminder_retry_delay = 30000;
int			reminder_retry_max_delay = 3600000;
int			reminder_retention = 0;
int			reminder_history_after = -1;
int			reminder_history_partition = 1440;
char	   *reminder_allowed_hosts = NULL;
char	   *reminder_denied_hosts = NULL;
int			reminder_max_payload_size = 256 * 1024;
char	   *reminder_default_locale = NULL;
char	   *reminder_default_country_code = NULL;
char	   *reminder_link_base_url = NULL;
int			reminder_link_ttl = 30 * 24 * 60;
int			reminder_max_recipients = 50;
bool		reminder_bounce_opt_out = true;

static bool
check_default_locale(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	int			n = 0;

	/* a language subtag of two or three lowercase letters, optional region */
	while (*p >= 'a' && *p <= 'z')
		p++, n++;
	if (n < 2 || n > 3 || (*p != '\0' && *p != '-'))
	{
		GUC_check_errdetail("\"%s\" is not a language tag such as \"en\" or \"pl-PL\".", *newval);
		return false;
	}
	return true;
}

static bool
check_country_code(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (*p == '+')
		p++;
	if (strlen(p) > 3 || strspn(p, "0123456789") != strlen(p))
	{
		GUC_check_errdetail("A country calling code is one to three digits, such as \"48\" or \"+1\".");
		return false;
	}
	return true;
}

static bool
check_host_list(char **newval, void **extra, GucSource source)
{
	char	   *bad = NULL;

	if (!hostpolicy_check_list(*newval, &bad))
	{
		GUC_check_errdetail("\"%s\" is neither a host name nor an address or CIDR range such as \"10.0.0.0/8\".",
							bad ? bad : "");
		return false;
	}
	return true;
}

static bool
check_link_base_url(char **newval, void **extra, GucSource source)
{
	const char *url = *newval;

	if (url == NULL || *url == '\0')
		return true;
	if (pg_strncasecmp(url, "https://", 8) != 0 && pg_strncasecmp(url, "http://", 7) != 0)
	{
		GUC_check_errdetail("The link base URL must start with https:// or http://.");
		return false;
	}
	for (const char *p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f || *p == '"' || *p == '<' || *p == '>')
		{
			GUC_check_errdetail("The link base URL must not contain white space, control characters, quotes or angle brackets.");
			return false;
		}
	return true;
}

static void
define_gucs(void)
{
	DefineCustomBoolVariable("reminder.enabled",
							 "Whether the background workers deliver messages.",
							 "When off, workers stay connected but claim nothing.",
							 &reminder_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.poll_interval",
							"Longest sleep between two scans for due messages.",
							"Messages scheduled to fall due sooner wake the worker at commit.",
							&reminder_poll_interval, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.batch_size",
							"Most due messages one worker claims in one transaction.",
							NULL,
							&reminder_batch_size, 100, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.max_concurrent",
							"Most transfers one worker keeps in flight.",
							NULL,
							&reminder_max_concurrent, 64, 1, 1024,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.max_host_connections",
							"Most connections one worker opens to the same host.",
							NULL,
							&reminder_max_host_connections, 16, 1, 1024,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.timeout",
							"Default time limit of one delivery attempt.",
							"A channel's \"timeout\" setting overrides it.",
							&reminder_timeout, 10000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.connect_timeout",
							"Time limit for connecting to a server.",
							NULL,
							&reminder_connect_timeout, 5000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.lease_timeout",
							"How long a claimed message may stay in state sending before another pass reclaims it.",
							"Must exceed the longest attempt; rows a crashed worker left behind are retried after it.",
							&reminder_lease_timeout, 300, 10, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.workers_per_database",
							"Senders (delivery workers) started for each database.",
							"They share the database's rate limits and connections per host; "
							"each needs a background worker slot (max_worker_processes).",
							&reminder_workers_per_database, 1, 1, REMINDER_MAX_SENDERS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.max_attempts",
							"Default number of delivery attempts before a message fails.",
							"A channel's \"max_attempts\" setting overrides it.",
							&reminder_max_attempts, 5, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.retry_delay",
							"Default delay before the first retry; later retries back off exponentially with jitter.",
							"A channel's \"retry_delay\" setting overrides it.",
							&reminder_retry_delay, 30000, 10, 86400 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.retry_max_delay",
							"Longest delay between two attempts.",
							"A channel's \"retry_max_delay\" setting overrides it.",
							&reminder_retry_max_delay, 3600000, 10, 7 * 86400 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.retention",
							"Age after which finished messages, attempts and events are purged by the worker.",
							"0 keeps them forever.",
							&reminder_retention, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.history_after",
							"Age after which the worker moves finished messages from reminder.message into reminder.message_history.",
							"-1 leaves them in reminder.message.",
							&reminder_history_after, -1, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.history_partition",
							"Time each partition of reminder.message_history and reminder.attempt covers.",
							"Retention drops a partition once all of it is older than reminder.retention.",
							&reminder_history_partition, 1440, 1, 366 * 1440,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);

	DefineCustomStringVariable("reminder.allowed_hosts",
							   "Comma-separated hosts or CIDR ranges outgoing requests may reach; empty allows all not denied.",
							   NULL,
							   &reminder_allowed_hosts, "",
							   PGC_SIGHUP, GUC_LIST_INPUT, check_host_list, NULL, NULL);

	DefineCustomStringVariable("reminder.denied_hosts",
							   "Comma-separated hosts or CIDR ranges outgoing requests may never reach.",
							   "The default denies link-local addresses and the cloud metadata endpoints outside them.",
							   &reminder_denied_hosts, REMINDER_DEFAULT_DENIED_HOSTS,
							   PGC_SIGHUP, GUC_LIST_INPUT, check_host_list, NULL, NULL);

	DefineCustomIntVariable("reminder.max_payload_size",
							"Largest message data, template or rendered body accepted.",
							NULL,
							&reminder_max_payload_size, 256 * 1024, 1024, 64 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);

	DefineCustomStringVariable("reminder.default_locale",
							   "Template locale used when neither the recipient's locale nor its language exists.",
							   NULL,
							   &reminder_default_locale, "en",
							   PGC_SUSET, 0, check_default_locale, NULL, NULL);

	DefineCustomStringVariable("reminder.default_country_code",
							   "Country calling code for phone numbers written without one.",
							   "An SMS channel's \"default_country_code\" setting overrides it; empty requires numbers in international form.",
							   &reminder_default_country_code, "",
							   PGC_SUSET, 0, check_country_code, NULL, NULL);

	DefineCustomStringVariable("reminder.link_base_url",
							   "Base URL of signed action links in messages; the token is appended as a path segment.",
							   "Empty: templates get no links.  Point it at the web endpoint that passes tokens to reminder.record_event() and reminder.record_response().",
							   &reminder_link_base_url, "",
							   PGC_SUSET, 0, check_link_base_url, NULL, NULL);

	DefineCustomIntVariable("reminder.link_ttl",
							"How long signed action links stay valid after a message is sent.",
							NULL,
							&reminder_link_ttl, 30 * 24 * 60, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);

	DefineCustomIntVariable("reminder.max_recipients",
							"Most addresses one message may go to: the recipient plus its cc and bcc.",
							NULL,
							&reminder_max_recipients, 50, 1, 1000,
							PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("reminder.bounce_opt_out",
							 "Whether a hard bounce or a complaint opts the address out of every message.",
							 "Recorded in reminder.consent_log with source \"hard bounce\" or \"complaint\".",
							 &reminder_bounce_opt_out, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("reminder");
}

void
_PG_init(void)
{
	define_gucs();

	if (!process_shared_preload_libraries_in_progress)
		return;

	reminder_preloaded = true;
	shmem_install_hooks();
	stats_install_hooks();
	launcher_install_hooks();
	launcher_register();
}
