/*-------------------------------------------------------------------------
 *
 * channel.c
 *	  Channels: reading one with its secrets (catalog_channel), parsing and
 *	  checking its settings and secrets, the places it sends them to, and
 *	  the SQL functions that create, change and drop channels.  What reads
 *	  single settings is in channel_settings.c, which the kinds' transports
 *	  use too; the kinds take part here through their ops (kinds.c).
 *
 *	  Settings are a jsonb object; which keys a channel may carry depends on
 *	  its kind.  An unknown key is an error rather than silently ignored, so
 *	  a typo ("timout") never goes unnoticed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "render/template.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_create_channel);
PG_FUNCTION_INFO_V1(reminder_set_channel_secrets);
PG_FUNCTION_INFO_V1(reminder_drop_channel);

static SPIPlanPtr channel_plan = NULL;

/*
 * Settings every kind accepts: the delivery policy.  Each kind lists its own
 * settings and secrets in its transport ops.
 */
static const char *const policy_keys[] = {
	"rate_limit", "timeout", "max_attempts", "retry_delay", "retry_max_delay",
	"fallback", "quiet_hours", "priority", NULL
};

static const char *const no_keys[] = {NULL};

static ChannelKind
parse_kind(const char *kind)
{
	ChannelKind k;

	if (channel_kind_from_name(kind, &k))
		return k;

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown channel kind \"%s\"", kind),
			 errhint("Valid kinds are: email, sms, webhook, slack, log.")));
	return CHANNEL_LOG;			/* keep compiler quiet */
}

static bool
in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

static char *
list_names(const char *const *a, const char *const *b)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; a && *a; a++)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", *a);
	for (; b && *b; b++)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", *b);
	return buf.data;
}

/* Every top-level key of obj must be in one of the lists. */
static void
check_keys(Jsonb *obj, const char *const *a, const char *const *b,
		   const char *what, const char *channel, const char *kind)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(obj) || JB_ROOT_IS_SCALAR(obj))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%ss of channel \"%s\" must be a JSON object", what, channel),
				 errhint("Write {\"key\": \"value\", ...}.")));

	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (*a == NULL && b == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown %s \"%s\" for channel \"%s\" of kind %s",
							what, key, channel, kind),
					 errdetail("Channels of kind %s take no %ss.", kind, what)));
		if (!in_list(key, a) && (b == NULL || !in_list(key, b)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown %s \"%s\" for channel \"%s\" of kind %s",
							what, key, channel, kind),
					 errhint("Valid %ss for kind %s are: %s.", what, kind,
							 list_names(a, b))));
	}
}

static double
get_number(Jsonb *obj, const char *key, const char *channel, double dflt,
		   double min, double max)
{
	JsonbValue *v = jsonb_get(obj, key);
	double		d;

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"%s\" of channel \"%s\" must be a number", key, channel)));
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
										   NumericGetDatum(v->val.numeric)));
	if (d < min || d > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"%s\" of channel \"%s\" is out of range", key, channel),
				 errdetail("It must lie between %g and %g.", min, max)));
	return d;
}

/* A duration: interval text or a number of seconds. */
static int
get_duration(Jsonb *obj, const char *key, const char *channel, int dflt_ms)
{
	JsonbValue *v = jsonb_get(obj, key);
	char	   *text;

	if (v == NULL || v->type == jbvNull)
		return dflt_ms;
	if (v->type != jbvString && v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"%s\" of channel \"%s\" must be an interval or a number of seconds",
						key, channel)));
	text = jsonb_value_text(v);
	return parse_duration_ms(text, channel_what_setting(key, channel));
}

/* The same grammar as a recipient's quiet hours (quiet_hours.c). */
static void
parse_quiet_hours(Jsonb *settings, ChannelConfig *cc)
{
	QuietHours	qh;

	quiet_hours_parse(jsonb_get(settings, "quiet_hours"), &qh,
					  channel_what_setting("quiet_hours", cc->name), true);
}

/*
 * Parse and check a channel definition.  Raises an error naming the
 * offending setting; secrets' values never appear in messages.
 */
ChannelConfig *
channel_parse(const char *name, const char *kind, Jsonb *settings, Jsonb *secrets)
{
	ChannelConfig *cc = palloc0(sizeof(ChannelConfig));
	const TransportOps *ops;
	char	   *fallback;

	cc->name = pstrdup(name);
	cc->kind = parse_kind(kind);
	ops = transport_for_kind(cc->kind);
	if (ops == NULL)
		elog(ERROR, "channel kind %s has no transport", kind);
	cc->tls_verify = true;
	cc->settings = settings;
	cc->secrets = secrets;

	check_keys(settings, ops->settings_keys ? ops->settings_keys : no_keys,
			   policy_keys, "setting", name, kind);
	if (!ops->any_secrets)
		check_keys(secrets, ops->secrets_keys ? ops->secrets_keys : no_keys,
				   NULL, "secret", name, kind);

	cc->rate_limit = get_number(settings, "rate_limit", name, 0, 0, 100000);
	cc->timeout_ms = get_duration(settings, "timeout", name, reminder_timeout);
	cc->max_attempts = (int) get_number(settings, "max_attempts", name, reminder_max_attempts, 1, 100);
	cc->retry_delay_ms = get_duration(settings, "retry_delay", name, reminder_retry_delay);
	cc->retry_max_delay_ms = get_duration(settings, "retry_max_delay", name, reminder_retry_max_delay);
	if (cc->timeout_ms < 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("setting \"timeout\" of channel \"%s\" is below 100 ms", name)));
	{
		char	   *priority = channel_get_string(settings, "priority", name, false);

		cc->priority = priority ? parse_priority(priority, channel_what_setting("priority", name)) : 0;
	}
	fallback = channel_get_string(settings, "fallback", name, false);
	if (fallback && strcmp(fallback, name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel \"%s\" cannot be its own fallback", name)));
	cc->fallback = fallback;
	parse_quiet_hours(settings, cc);

	cc->url = channel_get_string(settings, "url", name, false);

	/* and what the kind takes besides (transport_*.c) */
	if (ops->parse)
		ops->parse(settings, secrets, cc);
	return cc;
}

/*
 * The channel called name, parsed, with its secrets.  Raises
 * undefined_object if there is none.  Its plan is prepared once per
 * backend and kept, as those of catalog.c; the result is allocated in the
 * caller's memory context.
 */
ChannelConfig *
catalog_channel(const char *name)
{
	Datum		values[1];
	MemoryContext cxt;
	MemoryContext old;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	char	   *kind;
	Jsonb	   *settings;
	Jsonb	   *secrets;

	cxt = CurrentMemoryContext;
	SPI_connect();

	if (channel_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		channel_plan = spi_prepare_kept("SELECT c.kind, c.settings, coalesce(s.secrets, '{}') "
										"FROM reminder.channel c "
										"LEFT JOIN reminder.channel_secret s ON s.channel = c.name "
										"WHERE c.name = $1", 1, argtypes, 0);
	}
	values[0] = CStringGetTextDatum(name);
	spi_plan_expect(channel_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist", name),
				 errhint("Create it with reminder.create_channel(), or see the reminder.channel table for existing ones.")));

	/* none of the three is null: kind and settings are NOT NULL */
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(cxt);
	kind = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	settings = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 2, &isnull));
	secrets = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
	MemoryContextSwitchTo(old);

	SPI_finish();

	return channel_parse(name, kind, settings, secrets);
}

/*
 * Every place a channel as parsed sends its secrets to, as text: its
 * origins, the hosts recipients may name, and how the server is trusted
 * (TLS verification, CA file, STARTTLS).  create_channel() keeps stored
 * secrets only when the new definition adds nothing to this list.
 */
List *
channel_destinations(ChannelConfig *cc)
{
	const TransportOps *ops = transport_for_kind(cc->kind);
	List	   *dest = NIL;

	/* where the kind connects (transport_*.c) */
	if (ops != NULL && ops->destinations != NULL)
		dest = ops->destinations(cc);
	/* and, for kinds that connect at all, how the server is trusted */
	if (ops != NULL && ops->network)
	{
		if (!cc->tls_verify)
			dest = lappend(dest, pstrdup("certificates not verified"));
		dest = lappend(dest, cc->ca_file ? psprintf("CA file %s", cc->ca_file) :
					   pstrdup("the system's certificate authorities"));
	}
	return dest;
}

/* ----------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------
 */

static Jsonb *
empty_object(void)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}

static bool
is_empty_object(Jsonb *j)
{
	return JB_ROOT_IS_OBJECT(j) && JB_ROOT_COUNT(j) == 0;
}

/* The stored secrets of a channel, or NULL when it has none. Needs SPI. */
static Jsonb *
stored_secrets(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Datum		d;

	spi_exec_expect("SELECT secrets FROM reminder.channel_secret WHERE channel = $1",
					1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return DatumGetJsonbPCopy(d);
}

static void
store_secrets(const char *name, Jsonb *secrets)
{
	Oid			argtypes[2] = {TEXTOID, JSONBOID};
	Datum		values[2] = {CStringGetTextDatum(name), JsonbPGetDatum(secrets)};

	spi_exec_expect("INSERT INTO reminder.channel_secret AS s (channel, secrets) VALUES ($1, $2) "
					"ON CONFLICT (channel) DO UPDATE SET secrets = excluded.secrets, updated_at = now()",
					2, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
}

typedef struct OldChannel
{
	char	   *name;
	char	   *kind;
	Jsonb	   *settings;
	Jsonb	   *secrets;
	List	   *destinations;	/* out */
} OldChannel;

static void
old_destinations(void *arg)
{
	OldChannel *old = arg;

	old->destinations = channel_destinations(channel_parse(old->name, old->kind,
														   old->settings, old->secrets));
}

/*
 * Secrets kept with '{}' were given for where the channel connected until
 * now.  A definition that connects anywhere else (another URL origin, base
 * URL, SMTP server or gateway host, a new host recipients may name, weaker
 * TLS) would hand them to whoever runs that place - and an administrator
 * could read them back from there.  So a new destination needs the secrets
 * passed again.  Needs SPI.
 */
static void
check_kept_secrets(ChannelConfig *cc, Jsonb *stored)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(cc->name)};
	OldChannel	old = {cc->name};
	ErrorData  *edata;
	List	   *now = channel_destinations(cc);
	const char *added = NULL;
	bool		isnull;
	ListCell   *lc;

	spi_exec_expect("SELECT kind, settings FROM reminder.channel WHERE name = $1",
					1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	old.kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	old.settings = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 2, &isnull));
	old.secrets = stored;

	/* a stored definition this version no longer accepts: nothing to compare */
	edata = subxact_try(old_destinations, &old);
	if (edata)
	{
		FreeErrorData(edata);
		added = "everything (the stored definition is no longer valid)";
	}
	foreach(lc, now)
	{
		ListCell   *lc2;
		bool		found = false;

		if (added)
			break;
		foreach(lc2, old.destinations)
			if (strcmp(lfirst(lc), lfirst(lc2)) == 0)
				found = true;
		if (!found)
			added = lfirst(lc);
	}
	if (added)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("channel \"%s\" cannot keep its stored secrets when it connects somewhere new", cc->name),
				 errdetail("The new settings add: %s.", added),
				 errhint("Pass the channel's secrets again with the new settings; '{}' keeps them only while the channel connects where it did.")));
}

/*
 * A kind change would strand messages addressed for the old kind (an SMS
 * recipient has no email), so refuse it while any is pending.
 */
static void
check_kind_change(const char *name, const char *kind)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(name), CStringGetTextDatum(kind)};
	int64		pending;
	bool		isnull;

	spi_exec_expect("SELECT count(m.*) FROM reminder.channel c "
					"JOIN reminder.message m ON m.channel = c.name "
					"AND m.status IN ('scheduled', 'sending', 'retrying') "
					"WHERE c.name = $1 AND c.kind <> $2",
					2, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	pending = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (pending > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot change the kind of channel \"%s\" while it has pending messages", name),
				 errdetail_plural("%lld message is scheduled, sending or retrying on it.",
								  "%lld messages are scheduled, sending or retrying on it.",
								  pending, (long long) pending),
				 errhint("Create a new channel, or cancel the pending messages first.")));
}

/* The fallback channel must exist; checked here, not by a foreign key. */
static void
check_fallback_exists(ChannelConfig *cc)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	if (cc->fallback == NULL)
		return;
	values[0] = CStringGetTextDatum(cc->fallback);
	spi_exec_expect("SELECT 1 FROM reminder.channel WHERE name = $1",
					1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("fallback channel \"%s\" of channel \"%s\" does not exist",
						cc->fallback, cc->name),
				 errhint("Create the fallback channel first.")));
}

/*
 * An attempt must end before the lease on its message does, or another pass
 * could claim the message while it is still in flight.  The worker cuts
 * attempts at the lease (less a second) anyway, and renews the leases of
 * messages it holds; a channel asking for longer is refused here, where
 * the user can still change it.
 */
static void
check_timeout_below_lease(ChannelConfig *cc, Jsonb *settings)
{
	if (jsonb_get(settings, "timeout") == NULL ||
		cc->timeout_ms < reminder_lease_timeout * 1000)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("setting \"timeout\" of channel \"%s\" must be shorter than reminder.lease_timeout",
					cc->name),
			 errdetail("The timeout is %d ms; reminder.lease_timeout is %d s.",
					   cc->timeout_ms, reminder_lease_timeout),
			 errhint("Lower the channel's timeout, or raise reminder.lease_timeout in postgresql.conf.")));
}

/*
 * What create_channel() checks beyond the parser, once: the CA file is a
 * file the server can read, named by a role allowed to point the server
 * at its files, and switching certificate verification off is said aloud.
 */
static void
check_tls_settings(ChannelConfig *cc)
{
	struct stat st;

	if (cc->ca_file)
	{
		if (!has_privs_of_role(GetOuterUserId(), ROLE_PG_READ_SERVER_FILES))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set %s", channel_what_setting("ca_file", cc->name)),
					 errdetail("The server reads the file named there."),
					 errhint("Only roles with the privileges of pg_read_server_files may name server files.")));
		if (stat(cc->ca_file, &st) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not access CA file \"%s\" of channel \"%s\": %m",
							cc->ca_file, cc->name)));
		if (!S_ISREG(st.st_mode))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("CA file \"%s\" of channel \"%s\" is not a regular file",
							cc->ca_file, cc->name)));
	}
	if (!cc->tls_verify)
		ereport(WARNING,
				(errmsg("channel \"%s\" does not verify TLS certificates", cc->name),
				 errdetail("Anyone between the server and the channel's endpoint can read and alter its messages."),
				 errhint("Use \"ca_file\" to trust a private certificate authority instead.")));
}

Datum
reminder_create_channel(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *kind;
	Jsonb	   *settings;
	Jsonb	   *secrets;
	Jsonb	   *effective;
	ChannelConfig *cc;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		values[3];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel name and kind must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	settings = PG_ARGISNULL(2) ? empty_object() : PG_GETARG_JSONB_P(2);
	secrets = PG_ARGISNULL(3) ? empty_object() : PG_GETARG_JSONB_P(3);

	validate_name(name, "channel");
	validate_payload_size(VARSIZE(settings), "channel settings");
	validate_payload_size(VARSIZE(secrets), "channel secrets");

	SPI_connect();

	/*
	 * '{}' keeps what is stored, so changing a setting needs no secrets; but
	 * not when the channel would send them somewhere new
	 */
	effective = secrets;
	if (is_empty_object(secrets))
	{
		Jsonb	   *stored = stored_secrets(name);

		if (stored && !is_empty_object(stored))
			effective = stored;
	}

	cc = channel_parse(name, kind, settings, effective);
	check_timeout_below_lease(cc, settings);
	if (effective != secrets)
		check_kept_secrets(cc, effective);
	check_tls_settings(cc);
	check_fallback_exists(cc);
	check_kind_change(name, kind);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(kind);
	values[2] = JsonbPGetDatum(settings);
	spi_exec_expect("INSERT INTO reminder.channel AS c (name, kind, settings) VALUES ($1, $2, $3) "
					"ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
					"settings = excluded.settings, updated_at = now()",
					3, argtypes, values, NULL, false, 0, SPI_OK_INSERT);

	if (!is_empty_object(secrets))
		store_secrets(name, secrets);

	SPI_finish();
	PG_RETURN_VOID();
}

static void
channel_must_exist(const char *name, char **kind, Jsonb **settings)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;

	spi_exec_expect("SELECT kind, settings FROM reminder.channel WHERE name = $1 FOR UPDATE",
					1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist", name),
				 errhint("Create it with reminder.create_channel().")));
	if (kind)
		*kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (settings)
		*settings = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 2, &isnull));
}

Datum
reminder_set_channel_secrets(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *secrets = PG_GETARG_JSONB_P(1);
	char	   *kind;
	Jsonb	   *settings;

	validate_payload_size(VARSIZE(secrets), "channel secrets");

	SPI_connect();
	channel_must_exist(name, &kind, &settings);
	(void) channel_parse(name, kind, settings, secrets);
	store_secrets(name, secrets);
	SPI_finish();

	PG_RETURN_VOID();
}

Datum
reminder_drop_channel(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		cascade = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int64		messages;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	values[0] = CStringGetTextDatum(name);

	SPI_connect();
	channel_must_exist(name, NULL, NULL);

	spi_exec_expect("SELECT name FROM reminder.channel WHERE settings->>'fallback' = $1 LIMIT 1",
					1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop channel \"%s\" because channel \"%s\" falls back to it", name,
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errhint("Change that channel's \"fallback\" setting first.")));

	spi_exec_expect("SELECT count(*) FROM reminder.messages WHERE channel = $1",
					1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	messages = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (messages > 0 && !cascade)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop channel \"%s\" because messages use it", name),
				 errdetail_plural("%lld message belongs to the channel.",
								  "%lld messages belong to the channel.",
								  messages, (long long) messages),
				 errhint("Use reminder.drop_channel(name, cascade => true) to delete them too.")));

	/* attempts, events and the survey throttle have no foreign key to cascade */
	spi_exec_expect("DELETE FROM reminder.attempt a USING reminder.messages m "
					"WHERE a.message_id = m.id AND m.channel = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	spi_exec_expect("DELETE FROM reminder.event e USING reminder.messages m "
					"WHERE e.message_id = m.id AND m.channel = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	spi_exec_expect("DELETE FROM reminder.survey_log l USING reminder.messages m "
					"WHERE l.message_id = m.id AND m.channel = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	spi_exec_expect("DELETE FROM reminder.message_history WHERE channel = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	spi_exec_expect("DELETE FROM reminder.message WHERE channel = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	spi_exec_expect("DELETE FROM reminder.channel WHERE name = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	SPI_finish();

	PG_RETURN_VOID();
}
