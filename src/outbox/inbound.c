/*-------------------------------------------------------------------------
 *
 * inbound.c
 *	  Replies that come back: the SMS a recipient sends to a channel's
 *	  number, as the provider's webhook delivers it to a web endpoint, which
 *	  passes it on to reminder.record_inbound().
 *
 *	  The request is checked first, and nothing is written unless it
 *	  verifies: Twilio's X-Twilio-Signature (Base64 of HMAC-SHA1 with the
 *	  channel's auth token over the webhook URL followed by every POST
 *	  parameter, sorted by name, as name and value), or for SMSAPI, which
 *	  signs nothing, the shared secret the endpoint received in the callback
 *	  URL it gave SMSAPI.  Both are compared in constant time.
 *
 *	  Then the text decides, compared as a whole after trimming, without
 *	  case, diacritics or punctuation around it:
 *
 *		STOP, STOPALL, UNSUBSCRIBE, ...		opt-out of the channel, logged
 *		START, UNSTOP, ...					opt-in again
 *		HELP, INFO, POMOC					nothing recorded (the provider answers)
 *		1, TAK, YES, ...					"confirmed" on the latest message
 *		2, NIE, NO, ...						"declined" on the latest message
 *		anything else						"replied" on the latest message
 *
 *	  The latest message is the newest one sent on the channel to the
 *	  sender's number within the channel's inbound_window; a reply without
 *	  one is refused (P0002).
 *
 *	  reminder.has_event() lets a rule's stop condition see what came back
 *	  for the messages it made for a row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/hmac.h"
#include "common/sha1.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "outbox/outbox.h"
#include "render/render.h"
#include "rules/rules.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_record_inbound);
PG_FUNCTION_INFO_V1(reminder_has_event);

#define DEFAULT_INBOUND_WINDOW	"7 days"
#define MAX_KEYWORD_LENGTH		40

static SPIPlanPtr latest_plan = NULL;
static SPIPlanPtr latest_archived_plan = NULL;
static SPIPlanPtr seen_plan = NULL;
static SPIPlanPtr rule_plan = NULL;
static SPIPlanPtr has_event_plan = NULL;

/* ----------------------------------------------------------------
 * Keywords
 * ----------------------------------------------------------------
 */
typedef enum InboundAction
{
	INBOUND_OPT_OUT,
	INBOUND_OPT_IN,
	INBOUND_HELP,
	INBOUND_CONFIRM,
	INBOUND_DECLINE,
	INBOUND_REPLY
} InboundAction;

static const char *const action_names[] = {
	[INBOUND_OPT_OUT] = "opt_out",
	[INBOUND_OPT_IN] = "opt_in",
	[INBOUND_HELP] = "help",
	[INBOUND_CONFIRM] = "confirmed",
	[INBOUND_DECLINE] = "declined",
	[INBOUND_REPLY] = "replied",
};

/*
 * Compared with the text in upper case, without diacritics, with white
 * space collapsed and punctuation around it dropped.  Twilio's default
 * opt-out and opt-in keywords, and Polish ones.  YES, which Twilio also
 * counts as an opt-in, confirms here: START opts in again.
 */
static const char *const opt_out_words[] = {
	"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE",
	"WYPISZ", "WYPISZ MNIE", "REZYGNUJE", "REZYGNACJA", "NIE WYSYLAJ", NULL
};
static const char *const opt_in_words[] = {
	"START", "UNSTOP", "WZNOW", NULL
};
static const char *const help_words[] = {
	"HELP", "INFO", "POMOC", NULL
};
static const char *const confirm_words[] = {
	"1", "TAK", "YES", "Y", "OK", "CONFIRM", "POTWIERDZAM", NULL
};
static const char *const decline_words[] = {
	"2", "NIE", "NO", "N", "DECLINE", "ODWOLUJE", "ODWOLAJ", NULL
};

static bool
in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/*
 * The text as keywords are compared: UTF-8, diacritics dropped as SMS
 * transliteration drops them (Łódź -> Lodz), ASCII letters in upper case,
 * runs of white space one space, white space and punctuation at either end
 * gone.  NULL when it is longer than any keyword.
 */
static char *
keyword_form(const char *text)
{
	char	   *utf8 = (char *) pg_server_to_any(text, strlen(text), PG_UTF8);
	char	   *plain;
	StringInfoData buf;
	const char *p;
	const char *end;
	bool		space = false;

	if (strlen(utf8) > MAX_KEYWORD_LENGTH * 4)
		return NULL;
	plain = sms_transliterate(utf8);

	p = plain;
	end = plain + strlen(plain);
	while (p < end && (isspace((unsigned char) *p) || strchr(".,!?;:'\"()-", *p)))
		p++;
	while (end > p && (isspace((unsigned char) end[-1]) || strchr(".,!?;:'\"()-", end[-1])))
		end--;

	initStringInfo(&buf);
	for (; p < end; p++)
	{
		if (isspace((unsigned char) *p))
		{
			space = true;
			continue;
		}
		if (space)
			appendStringInfoChar(&buf, ' ');
		space = false;
		appendStringInfoChar(&buf, pg_ascii_toupper((unsigned char) *p));
	}
	if (buf.len > MAX_KEYWORD_LENGTH)
		return NULL;
	return buf.data;
}

static InboundAction
classify(const char *text)
{
	char	   *word = keyword_form(text);

	if (word == NULL)
		return INBOUND_REPLY;
	if (in_list(word, opt_out_words))
		return INBOUND_OPT_OUT;
	if (in_list(word, opt_in_words))
		return INBOUND_OPT_IN;
	if (in_list(word, help_words))
		return INBOUND_HELP;
	if (in_list(word, confirm_words))
		return INBOUND_CONFIRM;
	if (in_list(word, decline_words))
		return INBOUND_DECLINE;
	return INBOUND_REPLY;
}

/* ----------------------------------------------------------------
 * The request
 * ----------------------------------------------------------------
 */

/* One POST parameter: a name and its values (a form may repeat a name). */
typedef struct FormParam
{
	char	   *name;
	List	   *values;			/* char * */
} FormParam;

static int
compare_strings(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

static int
compare_params(const ListCell *a, const ListCell *b)
{
	return strcmp(((FormParam *) lfirst(a))->name, ((FormParam *) lfirst(b))->name);
}

static void
bad_value(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("inbound payload field \"%s\" must be a string or an array of strings", name),
			 errhint("Pass the provider's form fields as they came, such as {\"From\": \"+48601234567\", \"Body\": \"TAK\"}.")));
}

/*
 * The payload as parameters: a JSON object of strings, or of arrays of
 * strings for a name the form repeats.
 */
static List *
payload_params(Jsonb *payload)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *params = NIL;
	FormParam	   *cur = NULL;

	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inbound payload must be a JSON object"),
				 errhint("Pass the provider's form fields as an object of strings, such as {\"From\": \"+48601234567\", \"Body\": \"TAK\"}.")));
	validate_payload_size(VARSIZE(payload), "inbound payload");

	it = JsonbIteratorInit(&payload->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			cur = palloc0(sizeof(FormParam));
			cur->name = pnstrdup(v.val.string.val, v.val.string.len);
			params = lappend(params, cur);
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type == jbvString)
				cur->values = list_make1(pnstrdup(v.val.string.val, v.val.string.len));
			else if (v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
			{
				JsonbIterator *ait = JsonbIteratorInit(v.val.binary.data);
				JsonbValue	e;
				JsonbIteratorToken atok;

				while ((atok = JsonbIteratorNext(&ait, &e, true)) != WJB_DONE)
				{
					if (atok != WJB_ELEM)
						continue;
					if (e.type != jbvString)
						bad_value(cur->name);
					cur->values = lappend(cur->values, pnstrdup(e.val.string.val, e.val.string.len));
				}
			}
			else
				bad_value(cur->name);
		}
	}
	return params;
}

/* The single value of a parameter, or NULL when absent. */
static char *
param_value(List *params, const char *name)
{
	ListCell   *lc;

	foreach(lc, params)
	{
		FormParam	   *p = lfirst(lc);

		if (strcmp(p->name, name) == 0)
		{
			if (list_length(p->values) != 1)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("inbound payload field \"%s\" must have one value", name)));
			return linitial(p->values);
		}
	}
	return NULL;
}

static char *
required_param(List *params, const char *name, const char *provider)
{
	char	   *value = param_value(params, name);

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inbound payload has no field \"%s\"", name),
				 errhint("Pass every field of the %s request as it came.", provider)));
	return value;
}

static bool
equal_in_constant_time(const char *a, const char *b)
{
	size_t		len = strlen(a);
	unsigned char diff = 0;

	if (len != strlen(b))
		return false;
	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i];
	return diff == 0;
}

static void
forged(const char *channel, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("inbound request for channel \"%s\" is not signed by its provider", channel),
			 errdetail("%s", detail),
			 errhint("Pass the request's fields, URL and signature as they came; nothing was recorded.")));
}

/*
 * X-Twilio-Signature: Base64(HMAC-SHA1(auth token, URL + name1 + value1 +
 * name2 + value2 ...)), the parameters sorted by name (byte order), the
 * values of a repeated name sorted too.
 */
static char *
twilio_signature(const char *token, const char *url, List *params)
{
	StringInfoData data;
	ListCell   *lc;
	uint8		digest[SHA1_DIGEST_LENGTH];
	pg_hmac_ctx *ctx;
	char	   *b64;
	int			n;

	initStringInfo(&data);
	appendStringInfoString(&data, url);
	params = list_copy(params);
	list_sort(params, compare_params);
	foreach(lc, params)
	{
		FormParam	   *p = lfirst(lc);
		List	   *values = list_copy(p->values);
		ListCell   *vc;

		list_sort(values, compare_strings);
		foreach(vc, values)
		{
			appendStringInfoString(&data, p->name);
			appendStringInfoString(&data, lfirst(vc));
		}
	}

	ctx = pg_hmac_create(PG_SHA1);
	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (pg_hmac_init(ctx, (const uint8 *) token, strlen(token)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) data.data, data.len) < 0 ||
		pg_hmac_final(ctx, digest, sizeof(digest)) < 0)
	{
		const char *err = pg_hmac_error(ctx);

		pg_hmac_free(ctx);
		elog(ERROR, "could not compute HMAC-SHA1: %s", err);
	}
	pg_hmac_free(ctx);

	b64 = palloc(pg_b64_enc_len(sizeof(digest)) + 1);
	n = pg_b64_encode((const char *) digest, sizeof(digest), b64, pg_b64_enc_len(sizeof(digest)));
	if (n < 0)
		elog(ERROR, "could not encode the signature");
	b64[n] = '\0';
	return b64;
}

static char *
channel_setting(ChannelConfig *cc, const char *key)
{
	return jsonb_get_text(cc->settings, key);
}

static char *
channel_secret(ChannelConfig *cc, const char *key)
{
	return jsonb_get_text(cc->secrets, key);
}

/* What a verified request says. */
typedef struct Inbound
{
	char	   *from;			/* E.164 */
	char	   *text;
	char	   *provider_id;	/* MessageSid, MsgId; or NULL */
} Inbound;

static void
verify_twilio(ChannelConfig *cc, List *params, const char *signature,
			  const char *url, Inbound *in)
{
	char	   *token = channel_secret(cc, "auth_token");
	char	   *account = param_value(params, "AccountSid");

	if (url == NULL)
		url = channel_setting(cc, "inbound_url");
	if (url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("channel \"%s\" has no inbound_url", cc->name),
				 errdetail("Twilio signs the URL it calls; the signature cannot be checked without it."),
				 errhint("Set \"inbound_url\" to the webhook URL configured at Twilio, or pass it as url.")));
	if (signature == NULL || *signature == '\0')
		forged(cc->name, "The X-Twilio-Signature header is missing.");
	if (!equal_in_constant_time(twilio_signature(token, url, params), signature))
		forged(cc->name, "The X-Twilio-Signature does not match the URL, the fields and the channel's auth token.");
	if (account && cc->account_sid && strcmp(account, cc->account_sid) != 0)
		forged(cc->name, "The request is for another Twilio account.");

	in->from = normalize_phone(required_param(params, "From", "Twilio"), NULL, "inbound field \"From\"");
	in->text = required_param(params, "Body", "Twilio");
	in->provider_id = param_value(params, "MessageSid");
	if (in->provider_id == NULL)
		in->provider_id = param_value(params, "SmsSid");
}

static void
verify_smsapi(ChannelConfig *cc, List *params, const char *signature, Inbound *in)
{
	char	   *secret = channel_secret(cc, "inbound_secret");
	char	   *from;

	if (secret == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("channel \"%s\" has no secret \"inbound_secret\"", cc->name),
				 errdetail("SMSAPI does not sign the messages it forwards; a shared secret in the callback URL tells them apart from forged ones."),
				 errhint("Set the secret with reminder.set_channel_secrets() (keeping \"token\"), and put it into the callback URL given to SMSAPI.")));
	if (signature == NULL || *signature == '\0')
		forged(cc->name, "The shared secret is missing.");
	if (!equal_in_constant_time(secret, signature))
		forged(cc->name, "The shared secret does not match the channel's \"inbound_secret\".");

	/* SMSAPI writes numbers in international form without "+" */
	from = required_param(params, "sms_from", "SMSAPI");
	if (*from != '+' && strncmp(from, "00", 2) != 0)
		from = psprintf("+%s", from);
	in->from = normalize_phone(from, NULL, "inbound field \"sms_from\"");
	in->text = required_param(params, "sms_text", "SMSAPI");
	in->provider_id = param_value(params, "MsgId");
}

/* ----------------------------------------------------------------
 * Recording
 * ----------------------------------------------------------------
 */

static Interval *
inbound_window(ChannelConfig *cc)
{
	char	   *text = channel_setting(cc, "inbound_window");

	return DatumGetIntervalP(DirectFunctionCall3(interval_in,
												 CStringGetDatum(text ? text : DEFAULT_INBOUND_WINDOW),
												 ObjectIdGetDatum(InvalidOid),
												 Int32GetDatum(-1)));
}

/*
 * The newest message sent on the channel to the number within the window,
 * locked against purge; 0 if none.  Needs SPI.
 */
static int64
latest_message(ChannelConfig *cc, const char *phone)
{
	Datum		values[3];
	bool		isnull;

	if (latest_plan == NULL)
	{
		Oid			argtypes[3] = {TEXTOID, TEXTOID, INTERVALOID};

		latest_plan = spi_prepare_kept("SELECT id FROM reminder.message "
									   "WHERE channel = $1 AND status = 'sent' "
									   "AND recipient->>'phone' = $2 AND sent_at >= now() - $3 "
									   "ORDER BY sent_at DESC, id DESC LIMIT 1 FOR KEY SHARE",
									   3, argtypes, 0);
		/* moved there later than anything still in the outbox was sent */
		latest_archived_plan = spi_prepare_kept("SELECT id FROM reminder.message_history "
												"WHERE channel = $1 AND status = 'sent' "
												"AND recipient->>'phone' = $2 AND sent_at >= now() - $3 "
												"AND archived_at >= now() - $3 "
												"ORDER BY sent_at DESC, id DESC LIMIT 1",
												3, argtypes, 0);
	}
	values[0] = CStringGetTextDatum(cc->name);
	values[1] = CStringGetTextDatum(phone);
	values[2] = IntervalPGetDatum(inbound_window(cc));
	spi_plan_expect(latest_plan, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		spi_plan_expect(latest_archived_plan, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The event and kind recorded for the same provider message before (a
 * webhook the provider sent again), or 0.  Needs SPI.
 */
static int64
seen_before(int64 message_id, const char *source, const char *provider_id, char **kind)
{
	Datum		values[3];
	bool		isnull;

	if (provider_id == NULL)
		return 0;
	if (seen_plan == NULL)
	{
		Oid			argtypes[3] = {INT8OID, TEXTOID, TEXTOID};

		seen_plan = spi_prepare_kept("SELECT id, kind FROM reminder.event "
									 "WHERE message_id = $1 AND source = $2 AND detail->>'inbound_id' = $3 "
									 "ORDER BY id LIMIT 1", 3, argtypes, 0);
	}
	values[0] = Int64GetDatum(message_id);
	values[1] = CStringGetTextDatum(source);
	values[2] = CStringGetTextDatum(provider_id);
	spi_plan_expect(seen_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	*kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static Jsonb *
event_detail(const Inbound *in)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	jsonb_push_key(&state, "from");
	jsonb_push_string(&state, WJB_VALUE, in->from);
	jsonb_push_key(&state, "text");
	jsonb_push_string(&state, WJB_VALUE, in->text);
	if (in->provider_id)
	{
		jsonb_push_key(&state, "inbound_id");
		jsonb_push_string(&state, WJB_VALUE, in->provider_id);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/*
 * reminder.record_inbound(channel, payload, signature, url DEFAULT NULL)
 *   -> (action, phone, message_id, event_id)
 */
Datum
reminder_record_inbound(PG_FUNCTION_ARGS)
{
	char	   *channel;
	Jsonb	   *payload;
	char	   *signature = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *url = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	ChannelConfig *cc;
	List	   *params;
	Inbound		in = {0};
	InboundAction action;
	const char *kind;
	char	   *source;
	int64		message_id = 0;
	int64		event_id = 0;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, true, true};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "channel" : "payload")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
	payload = PG_GETARG_JSONB_P(1);

	/* everything is checked before anything is written */
	params = payload_params(payload);
	cc = catalog_channel(channel);
	if (cc->kind != CHANNEL_SMS)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("channel \"%s\" is of kind %s, not sms", cc->name, channel_kind_name(cc->kind)),
				 errhint("Inbound replies come to SMS channels of provider twilio or smsapi.")));
	if (strcmp(cc->provider, "twilio") == 0)
		verify_twilio(cc, params, signature, url, &in);
	else if (strcmp(cc->provider, "smsapi") == 0)
	{
		if (url)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("url applies only to Twilio channels"),
					 errhint("SMSAPI requests are checked by the shared secret alone.")));
		verify_smsapi(cc, params, signature, &in);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("channel \"%s\" of provider %s takes no inbound replies", cc->name, cc->provider),
				 errhint("Inbound replies are understood from providers twilio and smsapi.")));

	action = classify(in.text);
	kind = action_names[action];
	source = psprintf("inbound:%s", cc->name);
	values[1] = CStringGetTextDatum(in.from);

	switch (action)
	{
		case INBOUND_OPT_OUT:
		case INBOUND_OPT_IN:
			/* honoured from any number, as carriers require */
			consent_record(0, in.from, cc->name, NULL, action == INBOUND_OPT_OUT, source);
			break;
		case INBOUND_HELP:
			break;
		case INBOUND_CONFIRM:
		case INBOUND_DECLINE:
		case INBOUND_REPLY:
			SPI_connect();
			message_id = latest_message(cc, in.from);
			if (message_id == 0)
				ereport(ERROR,
						(errcode(ERRCODE_NO_DATA_FOUND),
						 errmsg("no message on channel \"%s\" to %s to reply to", cc->name, in.from),
						 errdetail("No message was sent on the channel to this number within its inbound_window (%s).",
								   channel_setting(cc, "inbound_window") ? channel_setting(cc, "inbound_window") : DEFAULT_INBOUND_WINDOW),
						 errhint("Nothing was recorded; answer the provider with success so that it does not retry.")));
			{
				char	   *seen_kind = NULL;

				event_id = seen_before(message_id, source, in.provider_id, &seen_kind);
				if (event_id)
					kind = seen_kind;
				else
					event_id = links_record_event(message_id,
												  action == INBOUND_CONFIRM ? "confirmed" :
												  action == INBOUND_DECLINE ? "declined" : "replied",
												  event_detail(&in), source);
			}
			SPI_finish();
			break;
	}

	values[0] = CStringGetTextDatum(kind);
	if (message_id)
	{
		values[2] = Int64GetDatum(message_id);
		nulls[2] = false;
	}
	if (event_id)
	{
		values[3] = Int64GetDatum(event_id);
		nulls[3] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* ----------------------------------------------------------------
 * For rules
 * ----------------------------------------------------------------
 */

/*
 * reminder.has_event(rule, row_key, kind DEFAULT 'confirmed') -> boolean:
 * whether a message the rule made for the row has an event of the kind.
 * For stop conditions: "until confirmed" is
 *   stop_condition => 'reminder.has_event(''visits'', id::text)'.
 * The row's messages are a range of the idempotency key's index (see
 * rule_key_prefix()).
 */
Datum
reminder_has_event(PG_FUNCTION_ARGS)
{
	char	   *rule;
	char	   *row_key;
	char	   *kind;
	Datum		values[4];
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, INT8OID};
	int64		rule_id;
	char	   *prefix;
	bool		isnull;
	bool		found;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "rule" : "kind")));
	if (PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	rule = text_to_cstring(PG_GETARG_TEXT_PP(0));
	row_key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!in_list(kind, reminder_event_kinds))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown event kind \"%s\"", kind),
				 errhint("Valid kinds are: " REMINDER_EVENT_KINDS ".")));

	SPI_connect();
	if (rule_plan == NULL)
	{
		rule_plan = spi_prepare_kept("SELECT id FROM reminder.rule WHERE name = $1", 1, argtypes, 0);
		has_event_plan = spi_prepare_kept("SELECT EXISTS (SELECT FROM reminder.messages m "
										  "JOIN reminder.event e ON e.message_id = m.id "
										  "WHERE m.idempotency_key >= $1 AND m.idempotency_key < $2 "
										  "AND m.rule_id = $4 AND e.kind = $3)",
										  4, argtypes, 0);
	}
	values[0] = CStringGetTextDatum(rule);
	spi_plan_expect(rule_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("rule \"%s\" does not exist", rule),
				 errhint("Name a rule of reminder.rule, as given to reminder.watch(name => ...).")));
	rule_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	prefix = rule_key_prefix(rule_id, row_key);
	values[0] = CStringGetTextDatum(prefix);
	values[1] = CStringGetTextDatum(rule_key_prefix_end(prefix));
	values[2] = CStringGetTextDatum(kind);
	values[3] = Int64GetDatum(rule_id);
	spi_plan_expect(has_event_plan, values, NULL, true, 1, SPI_OK_SELECT);
	found = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_BOOL(found);
}
