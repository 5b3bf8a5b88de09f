/*-------------------------------------------------------------------------
 *
 * links.c
 *	  Signed action links, and recording what comes back through them.
 *
 *	  A message can carry links that let its recipient confirm, decline,
 *	  ask to reschedule, unsubscribe or answer a survey, and tokens that let
 *	  a provider report delivery, bounces, opens and clicks.  An untrusted
 *	  web endpoint passes the token it received to reminder.record_event()
 *	  or reminder.record_response(); the token alone says which message and
 *	  what it may record.
 *
 *	  Token: 35 bytes in base64url without padding (47 characters):
 *
 *		 0		version (1)
 *		 1..4	key id (uint32, big-endian)
 *		 5..12	message id (int64, big-endian)
 *		13		action (LinkAction)
 *		14		score 0..10, or 255 for none
 *		15..18	expiry (Unix time, uint32, big-endian)
 *		19..34	HMAC-SHA256(key, bytes 0..18), first 16 bytes (128 bits)
 *
 *	  Keys are 32 random bytes from pg_strong_random(), made at CREATE
 *	  EXTENSION and by reminder.rotate_signing_key(), kept in
 *	  reminder.signing_key, which no role but the extension's owner can
 *	  read.  The newest key signs; every key in the table verifies, so links
 *	  already sent keep working after a rotation until the old key is
 *	  revoked.  Key ids are random rather than sequential, so the key made
 *	  at CREATE EXTENSION on a restore never collides with restored keys.
 *
 *	  Only the background worker mints real tokens while rendering, so
 *	  reminder.render() previews carry look-alike tokens that never verify.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "render/render.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"

PG_FUNCTION_INFO_V1(reminder_rotate_signing_key);
PG_FUNCTION_INFO_V1(reminder_link_token);
PG_FUNCTION_INFO_V1(reminder_token_info);
PG_FUNCTION_INFO_V1(reminder_record_event);
PG_FUNCTION_INFO_V1(reminder_record_response);
PG_FUNCTION_INFO_V1(reminder_preview_links);

#define TOKEN_VERSION		1
#define TOKEN_PAYLOAD		19
#define TOKEN_MAC			16
#define TOKEN_BYTES			(TOKEN_PAYLOAD + TOKEN_MAC)
#define TOKEN_CHARS			47	/* base64url of 35 bytes, unpadded */
#define KEY_BYTES			32
#define NO_SCORE			255
#define MAX_COMMENT_LENGTH	4000

typedef struct LinkToken
{
	uint32		key_id;
	int64		message_id;
	LinkAction	action;
	int			score;			/* -1: none */
	TimestampTz expires_at;
} LinkToken;

typedef struct SigningKey
{
	uint32		id;
	uint8		key[KEY_BYTES];
} SigningKey;

static const char *const action_names[] = {
	[LINK_CONFIRM] = "confirm",
	[LINK_DECLINE] = "decline",
	[LINK_RESCHEDULE] = "reschedule",
	[LINK_UNSUBSCRIBE] = "unsubscribe",
	[LINK_SCORE] = "score",
	[LINK_SURVEY] = "survey",
	[LINK_OPEN] = "open",
	[LINK_CALLBACK] = "callback",
};

#define LINK_LAST_ACTION	LINK_CALLBACK

/* reminder.event.kind, as its CHECK constraint has them */
const char *const reminder_event_kinds[] = {
	"delivered", "bounced", "opened", "clicked", "confirmed", "declined",
	"reschedule_requested", "answered", "unsubscribed", "complained", "replied", NULL
};

static SPIPlanPtr current_key_plan = NULL;
static SPIPlanPtr key_by_id_plan = NULL;
static SPIPlanPtr message_plan = NULL;
static SPIPlanPtr archived_plan = NULL;
static SPIPlanPtr insert_event_plan = NULL;
static SPIPlanPtr upsert_answer_plan = NULL;
static SPIPlanPtr existing_event_plan = NULL;

/* ----------------------------------------------------------------
 * Keys
 * ----------------------------------------------------------------
 */

static void
copy_key(SigningKey *k)
{
	bool		isnull;
	bytea	   *b;

	k->id = (uint32) DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull || VARSIZE_ANY_EXHDR(b) != KEY_BYTES)
		elog(ERROR, "signing key %u is malformed", k->id);
	memcpy(k->key, VARDATA_ANY(b), KEY_BYTES);
}

/* The key that signs new tokens.  Needs SPI. */
static void
current_key(SigningKey *k)
{
	if (current_key_plan == NULL)
		current_key_plan = spi_prepare_kept("SELECT id, key FROM reminder.signing_key "
										"ORDER BY created_at DESC, id DESC LIMIT 1", 0, NULL, 0);
	spi_plan_expect(current_key_plan, NULL, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no link signing key exists"),
				 errhint("An administrator can create one with reminder.rotate_signing_key().")));
	copy_key(k);
}

/* The key with this id, if it still exists.  Needs SPI. */
static bool
key_by_id(uint32 id, SigningKey *k)
{
	Datum		values[1] = {Int32GetDatum((int32) id)};

	if (key_by_id_plan == NULL)
	{
		Oid			argtypes[1] = {INT4OID};

		key_by_id_plan = spi_prepare_kept("SELECT id, key FROM reminder.signing_key WHERE id = $1",
									  1, argtypes, 0);
	}
	spi_plan_expect(key_by_id_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	copy_key(k);
	return true;
}

Datum
reminder_rotate_signing_key(PG_FUNCTION_ARGS)
{
	bool		revoke_previous = PG_ARGISNULL(0) ? false : PG_GETARG_BOOL(0);
	uint8		key[KEY_BYTES];
	uint32		id;
	bytea	   *b;
	Oid			argtypes[2] = {INT4OID, BYTEAOID};
	Datum		values[2];

	SPI_connect();
	for (;;)
	{
		Datum		idv;

		if (!pg_strong_random(&id, sizeof(id)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random bytes for a signing key")));
		id &= 0x7fffffff;
		if (id == 0)
			continue;
		idv = Int32GetDatum((int32) id);
		spi_exec_expect("SELECT 1 FROM reminder.signing_key WHERE id = $1",
						1, argtypes, &idv, NULL, true, 1, SPI_OK_SELECT);
		if (SPI_processed == 0)
			break;
	}
	if (!pg_strong_random(key, sizeof(key)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a signing key")));

	b = palloc(VARHDRSZ + KEY_BYTES);
	SET_VARSIZE(b, VARHDRSZ + KEY_BYTES);
	memcpy(VARDATA(b), key, KEY_BYTES);
	explicit_bzero(key, sizeof(key));
	values[0] = Int32GetDatum((int32) id);
	values[1] = PointerGetDatum(b);

	spi_exec_expect("INSERT INTO reminder.signing_key (id, key, created_at) "
					"VALUES ($1, $2, clock_timestamp())",
					2, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	if (revoke_previous)
		spi_exec_expect("DELETE FROM reminder.signing_key WHERE id <> $1",
						1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	explicit_bzero(VARDATA(b), KEY_BYTES);
	SPI_finish();

	PG_RETURN_INT32((int32) id);
}

/* ----------------------------------------------------------------
 * Tokens
 * ----------------------------------------------------------------
 */

static void
put_uint32(uint8 *p, uint32 v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32
get_uint32(const uint8 *p)
{
	return ((uint32) p[0] << 24) | ((uint32) p[1] << 16) | ((uint32) p[2] << 8) | p[3];
}

/* Compare without leaking, through timing, where the first difference is. */
static bool
mac_equal(const uint8 *a, const uint8 *b, int len)
{
	volatile uint8 diff = 0;

	for (int i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static void
token_mac(const SigningKey *k, const uint8 *payload, uint8 *mac)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	hmac_sha256((const char *) k->key, KEY_BYTES, (const char *) payload, TOKEN_PAYLOAD, digest);
	memcpy(mac, digest, TOKEN_MAC);
}

/* Encode and sign; a NULL key makes a preview token that never verifies. */
static char *
encode_token(const SigningKey *k, int64 message_id, LinkAction action, int score,
			 TimestampTz expires_at)
{
	uint8		buf[TOKEN_BYTES];
	pg_time_t	exp = timestamptz_to_time_t(expires_at);

	if (exp < 0)
		exp = 0;
	if (exp > (pg_time_t) PG_UINT32_MAX)
		exp = PG_UINT32_MAX;

	buf[0] = TOKEN_VERSION;
	put_uint32(buf + 1, k ? k->id : 0);
	put_uint32(buf + 5, (uint32) ((uint64) message_id >> 32));
	put_uint32(buf + 9, (uint32) message_id);
	buf[13] = (uint8) action;
	buf[14] = score < 0 ? NO_SCORE : (uint8) score;
	put_uint32(buf + 15, (uint32) exp);
	if (k)
		token_mac(k, buf, buf + TOKEN_PAYLOAD);
	else
		memset(buf + TOKEN_PAYLOAD, 0, TOKEN_MAC);
	return base64url_encode(buf, TOKEN_BYTES);
}

static TimestampTz
default_expiry(void)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   (int64) reminder_link_ttl * 60 * 1000);
}

/*
 * A signed token for a message, for callers inside the extension (the
 * worker putting a callback token into a request).  Opens its own SPI
 * connection.
 */
char *
links_token(int64 message_id, LinkAction action, int score, TimestampTz expires_at)
{
	SigningKey	k;
	char	   *token;

	SPI_connect();
	current_key(&k);
	SPI_finish();
	token = encode_token(&k, message_id, action, score, expires_at);
	explicit_bzero(&k, sizeof(k));
	return token;
}

/*
 * The fields of a token's text, and its bytes into buf (TOKEN_BYTES + 3);
 * false when it is not a token of ours (length, alphabet, version).  No
 * signature check: that needs the key (verify_token).
 */
static bool
decode_token(const char *text, uint8 *buf, LinkToken *t)
{
	if (strlen(text) != TOKEN_CHARS ||
		base64url_decode(text, TOKEN_CHARS, buf) != TOKEN_BYTES ||
		buf[0] != TOKEN_VERSION)
		return false;

	t->key_id = get_uint32(buf + 1);
	t->message_id = (int64) (((uint64) get_uint32(buf + 5) << 32) | get_uint32(buf + 9));
	t->action = (LinkAction) buf[13];
	t->score = buf[14] == NO_SCORE ? -1 : buf[14];
	t->expires_at = time_t_to_timestamptz((pg_time_t) get_uint32(buf + 15));
	return true;
}

/*
 * Whether the MAC in buf is k's; k NULL (unknown key id) computes a MAC
 * all the same, so an unknown key id takes as long as a bad MAC.
 */
static bool
token_signed_by(const uint8 *buf, const SigningKey *k)
{
	SigningKey	none;
	uint8		mac[TOKEN_MAC];

	if (k == NULL)
	{
		memset(&none, 0, sizeof(none));
		k = &none;
	}
	token_mac(k, buf, mac);
	return mac_equal(mac, buf + TOKEN_PAYLOAD, TOKEN_MAC) && k != &none;
}

/*
 * Decode and verify a token: well formed (else 22023), signed by a key
 * that still exists (else 28000), not expired (else 28000).  Needs SPI.
 */
static void
verify_token(const char *text, LinkToken *t)
{
	uint8		buf[TOKEN_BYTES + 3];
	SigningKey	k;
	bool		known;
	bool		ok;

	if (!decode_token(text, buf, t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed link token"),
				 errdetail("A token is %d characters of base64url, as the link carried it.", TOKEN_CHARS),
				 errhint("Pass the token from the link unchanged.")));

	known = key_by_id(t->key_id, &k);
	ok = token_signed_by(buf, known ? &k : NULL);
	explicit_bzero(&k, sizeof(k));
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("link token is not valid"),
				 errdetail("Its signature does not match: it was altered, forged, or signed with a key that has been revoked.")));

	/* signed by us, so these hold unless our own encoder is broken */
	if (t->action < LINK_CONFIRM || t->action > LINK_LAST_ACTION ||
		(t->action == LINK_SCORE) != (t->score >= 0) || t->score > 10)
		elog(ERROR, "signed link token has an impossible action or score");

	if (t->expires_at < GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("link token has expired"),
				 errdetail("It expired at %s.", timestamptz_to_str(t->expires_at)),
				 errhint("Links are valid for reminder.link_ttl after the message is sent.")));
}

static char *
token_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("token must not be null")));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/* ----------------------------------------------------------------
 * Links for templates
 * ----------------------------------------------------------------
 */

static char *
link_url(const SigningKey *k, int64 message_id, LinkAction action, int score,
		 TimestampTz expires_at)
{
	const char *base = reminder_link_base_url;
	size_t		len = strlen(base);
	char		last = len ? base[len - 1] : '/';

	return psprintf("%s%s%s", base, (last == '/' || last == '=') ? "" : "/",
					encode_token(k, message_id, action, score, expires_at));
}

/*
 * The "links" object templates see:
 *
 *	{"confirm": url, "decline": url, "reschedule": url, "unsubscribe": url,
 *	 "survey": url, "open": url, "callback": url,
 *	 "scores": [{"score": 0, "url": url}, ... {"score": 10, ...}],
 *	 "score": {"0": url, ..., "10": url}}
 *
 * or NULL when reminder.link_base_url is not set.  Real tokens only in the
 * background worker, for a real message; anywhere else (previews) tokens
 * have the right shape but key id 0 and a zero MAC, so they never verify.
 */
Jsonb *
links_context(int64 message_id)
{
	static const LinkAction plain[] = {LINK_CONFIRM, LINK_DECLINE, LINK_RESCHEDULE,
	LINK_UNSUBSCRIBE, LINK_SURVEY, LINK_OPEN, LINK_CALLBACK};
	JsonbParseState *state = NULL;
	JsonbValue *res;
	SigningKey	k;
	SigningKey *key = NULL;
	TimestampTz expires_at = default_expiry();

	if (reminder_link_base_url == NULL || *reminder_link_base_url == '\0')
		return NULL;

	if (IsBackgroundWorker && message_id > 0)
	{
		SPI_connect();
		current_key(&k);
		SPI_finish();
		key = &k;
	}

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < lengthof(plain); i++)
	{
		jsonb_push_key(&state, action_names[plain[i]]);
		jsonb_push_string(&state, WJB_VALUE,
					link_url(key, message_id, plain[i], -1, expires_at));
	}

	jsonb_push_key(&state, "scores");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int s = 0; s <= 10; s++)
	{
		JsonbValue	n;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		jsonb_push_key(&state, "score");
		n.type = jbvNumeric;
		n.val.numeric = int64_to_numeric(s);
		pushJsonbValue(&state, WJB_VALUE, &n);
		jsonb_push_key(&state, "url");
		jsonb_push_string(&state, WJB_VALUE, link_url(key, message_id, LINK_SCORE, s, expires_at));
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);

	jsonb_push_key(&state, "score");
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int s = 0; s <= 10; s++)
	{
		/* the parse state keeps the pointer until the object ends */
		jsonb_push_key(&state, psprintf("%d", s));
		jsonb_push_string(&state, WJB_VALUE, link_url(key, message_id, LINK_SCORE, s, expires_at));
	}
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	explicit_bzero(&k, sizeof(k));
	return JsonbValueToJsonb(res);
}

/*
 * The template context with "links" set (replacing any "links" the data
 * had), or unchanged when reminder.link_base_url is empty.  For render.c.
 */
Jsonb *
links_add_to_context(Jsonb *context, int64 message_id)
{
	Jsonb	   *links = links_context(message_id);
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res;

	if (links == NULL)
		return context;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	jsonb_push_key(&state, "links");
	v.type = jbvBinary;
	v.val.binary.data = &links->root;
	v.val.binary.len = VARSIZE(links) - VARHDRSZ;
	pushJsonbValue(&state, WJB_VALUE, &v);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(context),
											  JsonbPGetDatum(JsonbValueToJsonb(res))));
}

/* ----------------------------------------------------------------
 * SQL: link_token, token_info
 * ----------------------------------------------------------------
 */

static LinkAction
parse_action(const char *name)
{
	for (int a = LINK_CONFIRM; a <= LINK_LAST_ACTION; a++)
		if (strcmp(name, action_names[a]) == 0)
			return (LinkAction) a;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown link action \"%s\"", name),
			 errhint("Valid actions are: confirm, decline, reschedule, unsubscribe, score, survey, open, callback.")));
	return LINK_CONFIRM;		/* keep compiler quiet */
}

static void
check_score(int score)
{
	if (score < 0 || score > 10)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("score %d is out of range", score),
				 errhint("A survey score lies between 0 and 10.")));
}

/*
 * Lock the message against purge for the rest of the transaction: in the
 * outbox by a row lock, in history by reading its partition (which purge
 * must lock to drop).  Needs SPI.
 */
static void
message_must_exist(int64 id)
{
	Datum		values[1] = {Int64GetDatum(id)};

	if (message_plan == NULL)
	{
		Oid			argtypes[1] = {INT8OID};

		/* message.channel has no foreign key: the channel may be gone */
		message_plan = spi_prepare_kept("SELECT m.recipient_id, m.recipient, m.template, m.data, "
										"coalesce(c.kind, ''), m.category "
										"FROM reminder.message m LEFT JOIN reminder.channel c ON c.name = m.channel "
										"WHERE m.id = $1 FOR KEY SHARE OF m", 1, argtypes, 0);
		archived_plan = spi_prepare_kept("SELECT m.recipient_id, m.recipient, m.template, m.data, "
										 "coalesce(c.kind, ''), m.category "
										 "FROM reminder.message_history m LEFT JOIN reminder.channel c ON c.name = m.channel "
										 "WHERE m.id = $1", 1, argtypes, 0);
	}
	spi_plan_expect(message_plan, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		spi_plan_expect(archived_plan, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("message %lld does not exist", (long long) id),
				 errdetail("It may have been purged after its retention period.")));
}

Datum
reminder_link_token(PG_FUNCTION_ARGS)
{
	int64		message_id;
	LinkAction	action;
	int			score = -1;
	TimestampTz expires_at;
	SigningKey	k;
	char	   *token;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("message id and action must not be null")));
	message_id = PG_GETARG_INT64(0);
	action = parse_action(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (!PG_ARGISNULL(2))
	{
		score = PG_GETARG_INT32(2);
		check_score(score);
	}
	if ((action == LINK_SCORE) != (score >= 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(action == LINK_SCORE ? "a score link needs a score" :
						"only a score link carries a score"),
				 errhint("Pass a score from 0 to 10 with action \"score\", and none with other actions.")));
	expires_at = PG_ARGISNULL(3) ? default_expiry() : PG_GETARG_TIMESTAMPTZ(3);
	if (TIMESTAMP_NOT_FINITE(expires_at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("expires_at must be a finite timestamp")));

	SPI_connect();
	message_must_exist(message_id);
	current_key(&k);
	SPI_finish();

	token = encode_token(&k, message_id, action, score, expires_at);
	explicit_bzero(&k, sizeof(k));
	PG_RETURN_TEXT_P(cstring_to_text(token));
}

Datum
reminder_token_info(PG_FUNCTION_ARGS)
{
	char	   *token = token_arg(fcinfo);
	LinkToken	t;
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SPI_connect();
	verify_token(token, &t);
	SPI_finish();

	values[0] = Int64GetDatum(t.message_id);
	values[1] = CStringGetTextDatum(action_names[t.action]);
	values[2] = Int32GetDatum(t.score);
	nulls[2] = t.score < 0;
	values[3] = TimestampTzGetDatum(t.expires_at);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ----------------------------------------------------------------
 * SQL: record_event, record_response
 * ----------------------------------------------------------------
 */

/* Event kinds a token permits; the first is the default. */
static const char *const *
permitted_kinds(LinkAction action)
{
	static const char *const confirm[] = {"confirmed", NULL};
	static const char *const decline[] = {"declined", NULL};
	static const char *const reschedule[] = {"reschedule_requested", NULL};
	static const char *const unsubscribe[] = {"unsubscribed", NULL};
	static const char *const open[] = {"opened", NULL};
	static const char *const callback[] = {"delivered", "bounced", "opened", "clicked",
	"complained", NULL};
	static const char *const none[] = {NULL};

	switch (action)
	{
		case LINK_CONFIRM:
			return confirm;
		case LINK_DECLINE:
			return decline;
		case LINK_RESCHEDULE:
			return reschedule;
		case LINK_UNSUBSCRIBE:
			return unsubscribe;
		case LINK_OPEN:
			return open;
		case LINK_CALLBACK:
			return callback;
		case LINK_SCORE:
		case LINK_SURVEY:
			return none;
	}
	return none;
}

static bool
in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* The message looked up by message_must_exist(). */
typedef struct MessageFacts
{
	int64		recipient_id;	/* 0: inline recipient */
	Jsonb	   *recipient;
	char	   *template_name;
	Jsonb	   *data;
	char	   *channel_kind;
	char	   *category;		/* message.category, or NULL */
} MessageFacts;

static void
message_facts(MessageFacts *f)
{
	HeapTuple	tup = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	Datum		d;

	d = SPI_getbinval(tup, desc, 1, &isnull);
	f->recipient_id = isnull ? 0 : DatumGetInt64(d);
	f->recipient = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 2, &isnull));
	f->template_name = SPI_getvalue(tup, desc, 3);
	f->data = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
	f->channel_kind = SPI_getvalue(tup, desc, 5);
	f->category = SPI_getvalue(tup, desc, 6);
}

static int64
insert_event(int64 message_id, const char *kind, int score, const char *comment,
			 Jsonb *detail, const char *source)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	bool		isnull;

	if (insert_event_plan == NULL)
	{
		Oid			argtypes[6] = {INT8OID, TEXTOID, INT2OID, TEXTOID, JSONBOID, TEXTOID};

		insert_event_plan = spi_prepare_kept(
										 "INSERT INTO reminder.event (message_id, kind, score, comment, detail, source) "
										 "VALUES ($1, $2, $3, $4, $5, $6) "
										 "ON CONFLICT (message_id, kind) WHERE kind IN "
										 "('confirmed', 'declined', 'reschedule_requested', 'unsubscribed', 'answered') "
										 "DO NOTHING RETURNING id", 6, argtypes, 0);
		upsert_answer_plan = spi_prepare_kept(
										  "INSERT INTO reminder.event AS e (message_id, kind, score, comment, detail, source) "
										  "VALUES ($1, $2, $3, $4, $5, $6) "
										  "ON CONFLICT (message_id, kind) WHERE kind IN "
										  "('confirmed', 'declined', 'reschedule_requested', 'unsubscribed', 'answered') "
										  "DO UPDATE SET score = excluded.score, "
										  "comment = coalesce(excluded.comment, e.comment), "
										  "detail = e.detail || excluded.detail, occurred_at = excluded.occurred_at "
										  "RETURNING id", 6, argtypes, 0);
		existing_event_plan = spi_prepare_kept("SELECT id FROM reminder.event WHERE message_id = $1 AND kind = $2",
										   2, argtypes, 0);
	}

	values[0] = Int64GetDatum(message_id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = Int16GetDatum((int16) score);
	nulls[2] = score < 0 ? 'n' : ' ';
	values[3] = comment ? CStringGetTextDatum(comment) : (Datum) 0;
	nulls[3] = comment ? ' ' : 'n';
	values[4] = JsonbPGetDatum(detail);
	values[5] = CStringGetTextDatum(source);

	plan = strcmp(kind, "answered") == 0 ? upsert_answer_plan : insert_event_plan;
	spi_plan_expect(plan, values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	if (SPI_processed == 1)
		return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/* recorded before: the same event again */
	spi_plan_expect(existing_event_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "could not find the event recorded before");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * For inbound replies (inbound.c): record an event on a message, once per
 * message for the kinds recorded once.  Needs SPI.
 */
int64
links_record_event(int64 message_id, const char *kind, Jsonb *detail, const char *source)
{
	int64		id = insert_event(message_id, kind, -1, NULL, detail, source);

	(void) rule_event_recorded(message_id, kind);
	return id;
}

/*
 * The message's address on its channel (email for email, phone for SMS:
 * the kind's address_key), or NULL.
 */
static char *
channel_address(const MessageFacts *f)
{
	ChannelKind kind;
	const TransportOps *ops;

	if (!channel_kind_from_name(f->channel_kind, &kind) ||
		(ops = transport_for_kind(kind)) == NULL || ops->address_key == NULL)
		return NULL;
	return jsonb_get_text(f->recipient, ops->address_key);
}

static bool
is_hard_bounce(Jsonb *detail)
{
	char	   *type = jsonb_get_text(detail, "type");
	JsonbValue *hard = jsonb_get(detail, "hard");

	if (hard != NULL && hard->type == jbvBool)
		return hard->val.boolean;
	return type != NULL &&
		(pg_strcasecmp(type, "hard") == 0 || pg_strcasecmp(type, "permanent") == 0);
}

static char *
lower_address(const char *s)
{
	return s ? str_tolower(s, strlen(s), DEFAULT_COLLATION_OID) : NULL;
}

/* What an event does besides being recorded.  Needs SPI. */
static void
event_consequences(const MessageFacts *f, const char *kind, Jsonb *detail)
{
	if (strcmp(kind, "unsubscribed") == 0)
	{
		char	   *category = message_category(f->category, f->data, f->template_name);
		char	   *email = lower_address(jsonb_get_text(f->recipient, "email"));
		char	   *phone = jsonb_get_text(f->recipient, "phone");

		if (f->recipient_id)
			consent_record(f->recipient_id, NULL, NULL, category, true, "unsubscribe link");
		else
		{
			if (email)
				consent_record(0, email, NULL, category, true, "unsubscribe link");
			if (phone)
				consent_record(0, phone, NULL, category, true, "unsubscribe link");
		}
	}
	else if (reminder_bounce_opt_out &&
			 ((strcmp(kind, "bounced") == 0 && is_hard_bounce(detail)) ||
			  strcmp(kind, "complained") == 0))
	{
		char	   *address = channel_address(f);

		if (address && strcmp(f->channel_kind, "email") == 0)
			address = lower_address(address);
		if (address)
			consent_record(0, address, NULL, NULL, true,
						   kind[0] == 'b' ? "hard bounce" : "complaint");
	}
}

static Jsonb *
detail_arg(FunctionCallInfo fcinfo, int n)
{
	Jsonb	   *detail;

	if (PG_ARGISNULL(n))
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	detail = PG_GETARG_JSONB_P(n);
	if (!JB_ROOT_IS_OBJECT(detail) || JB_ROOT_IS_SCALAR(detail))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event detail must be a JSON object"),
				 errhint("Pass the provider's callback fields as an object, such as {\"type\": \"hard\"}.")));
	validate_payload_size(VARSIZE(detail), "event detail");
	return detail;
}

Datum
reminder_record_event(PG_FUNCTION_ARGS)
{
	char	   *token = token_arg(fcinfo);
	char	   *kind = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *detail = detail_arg(fcinfo, 2);
	const char *const *permitted;
	LinkToken	t;
	MessageFacts facts;
	int64		id;

	if (kind && !in_list(kind, reminder_event_kinds))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown event kind \"%s\"", kind),
				 errhint("Valid kinds are: " REMINDER_EVENT_KINDS ".")));

	SPI_connect();
	verify_token(token, &t);

	permitted = permitted_kinds(t.action);
	if (permitted[0] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("a %s link token records survey answers only", action_names[t.action]),
				 errhint("Pass it to reminder.record_response().")));
	if (kind == NULL)
	{
		if (t.action == LINK_CALLBACK)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("event kind must be given with a callback token"),
					 errhint("Pass one of: delivered, bounced, opened, clicked, complained.")));
		kind = pstrdup(permitted[0]);
	}
	else if (!in_list(kind, permitted))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("a %s link token does not permit recording \"%s\"", action_names[t.action], kind)));

	message_must_exist(t.message_id);
	message_facts(&facts);
	id = insert_event(t.message_id, kind, -1, NULL, detail,
					  t.action == LINK_CALLBACK ? "provider" : "link");
	event_consequences(&facts, kind, detail);
	(void) rule_event_recorded(t.message_id, kind);
	SPI_finish();

	PG_RETURN_INT64(id);
}

Datum
reminder_record_response(PG_FUNCTION_ARGS)
{
	char	   *token = token_arg(fcinfo);
	char	   *comment = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	Jsonb	   *detail = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	LinkToken	t;
	int			score;
	int64		id;

	if (!PG_ARGISNULL(1))
		check_score(PG_GETARG_INT32(1));
	if (comment && strlen(comment) > MAX_COMMENT_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("survey comment is too long"),
				 errdetail("It has %zu bytes; the limit is %d.", strlen(comment), MAX_COMMENT_LENGTH)));
	if (comment && *comment == '\0')
		comment = NULL;

	SPI_connect();
	verify_token(token, &t);
	if (t.action != LINK_SCORE && t.action != LINK_SURVEY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("a %s link token does not permit answering a survey", action_names[t.action]),
				 errhint("Pass it to reminder.record_event().")));
	score = PG_ARGISNULL(1) ? t.score : PG_GETARG_INT32(1);
	if (score < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("score must be given with a survey token"),
				 errhint("A survey link carries no score; pass the one the respondent chose.")));

	message_must_exist(t.message_id);
	id = insert_event(t.message_id, "answered", score, comment, detail, "link");
	(void) rule_event_recorded(t.message_id, "answered");
	SPI_finish();

	PG_RETURN_INT64(id);
}

/* ----------------------------------------------------------------
 * SQL: preview_links
 * ----------------------------------------------------------------
 */

/*
 * The "links" object a template would see for a message, with preview
 * tokens (outside the worker tokens never verify).  NULL when
 * reminder.link_base_url is empty.
 */
Datum
reminder_preview_links(PG_FUNCTION_ARGS)
{
	int64		message_id = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	Jsonb	   *links = links_context(message_id);

	if (links == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(links);
}
