/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  The watch trigger: the rows one statement wrote to a watched table
 *	  become messages in reminder.message, in the same transaction.
 *
 *	  watch() puts four statement-level AFTER triggers on the table, for
 *	  INSERT, UPDATE and DELETE with transition tables and for TRUNCATE,
 *	  each carrying the rule id.  One firing handles the whole statement:
 *
 *	  1. For every row, as the table owner, evaluate the rule's compiled
 *	     expressions (condition, per-recipient channel, address, offsets)
 *	     and work out the messages the row calls for; each has a key made
 *	     of rule, recipient, step (and, for on_change, the new value) and
 *	     the row's key, so writing the same row again yields the same
 *	     keys.
 *	  2. As the extension owner, write a batch of them with one
 *	     INSERT ... SELECT from an ephemeral named relation, ON CONFLICT on
 *	     the key: a new key is a new message; a pending message with the
 *	     key is rescheduled or updated; a message the rule cancelled comes
 *	     back; one sent, failed or suppressed is left alone.
 *	  3. For UPDATE (rules whose messages follow the row's state: before,
 *	     after, follow_up) and DELETE, cancel the pending messages of the
 *	     old rows that the new rows no longer call for.
 *
 *	  Messages of rules that follow the row store no copy of it (the worker
 *	  reads it when sending, rules_gate.c), so an UPDATE that leaves every
 *	  column such a rule reads as it was has nothing to do for it; on_change
 *	  and survey messages keep the row as it was at the change.
 *
 *	  Nothing is planned per row and the extension's tables are not read
 *	  per row: rules, channels and templates come from rules_cache.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/nodeFuncs.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "outbox/outbox.h"
#include "rules/rules.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"
#include "worker/worker.h"

PG_FUNCTION_INFO_V1(reminder_watch_trigger);

struct RuleRun;
static bool invite_notice_key(const char *key);
static void flush_invites(struct RuleRun *run);

/* Messages written per INSERT ... SELECT; bounds memory for huge statements. */
#define BATCH_ROWS		10000

/* Row keys longer than this are hashed in message keys. */
#define MAX_KEY_TEXT	128

#define BATCH_NAME		"reminder_batch"

enum
{
	B_KEY,
	B_SOURCE_KEY,
	B_CHANNEL,
	B_RECIPIENT_ID,
	B_RECIPIENT,
	B_TEMPLATE,
	B_DATA,
	B_DUE_AT,
	B_NCOLS
};

typedef enum RunEvent
{
	RUN_INSERT,
	RUN_UPDATE,
	RUN_DELETE
} RunEvent;

/* a message key the new rows call for */
typedef struct Desired
{
	char	   *key;			/* hash key */
	TimestampTz due_at;
	bool		written;		/* false: skipped as past, keep if unchanged */
} Desired;

/* One statement's worth of work for one rule. */
typedef struct RuleRun
{
	CompiledRule *rule;
	RunEvent	event;
	bool		follow_state;	/* before/after/follow_up: cancel what the
								 * updated rows no longer call for */
	const char *zone;			/* the rule's time zone, by name */
	TimestampTz now;
	const char *row_key;		/* for error context */
	const char *key_prefix;		/* rule_key_prefix() of the row */
	bool		keys_only;		/* evaluating an old row: only its keys */

	ExprContext *econtext;
	ExprState **states;
	ExprState  *data_new;
	ExprState  *data_old;
	Jsonb	   *no_row;			/* the data of live_row rules' messages: {} */
	Jsonb	  **fixed;			/* per recipient: the checked address when
								 * constant, once per statement */
	int64	   *fixed_id;

	/* the batch */
	MemoryContext batch_cxt;
	Tuplestorestate *batch;
	int			nbatch;
	TimestampTz min_due;
	HTAB	   *desired;
	Datum	   *old_keys;		/* key prefixes of old rows to look up */
	int			nold;
	int			maxold;
	List	   *old_wanted;		/* Desired: what the old rows called for */

	/* invites (ical.c): what each row's invite recipients are sent */
	bool		has_invites;
	List	   *invites;		/* InviteNote, in batch_cxt */
	Bitmapset  *invite_seen;	/* recipients of the current row with one */
} RuleRun;

/* The invite a row calls for, for one recipient; NULL invite: none now. */
typedef struct InviteNote
{
	char	   *row_key;
	int			recipient;
	Jsonb	   *invite;			/* start, end, summary, ... or NULL */
	char	   *channel;
	Jsonb	   *rcpt;
	char	   *template;
	Jsonb	   *row;			/* {"row": ...}: the row, for notices */
} InviteNote;

static void invite_note(RuleRun *run, RuleRecipient *r, const char *row_key,
						const char *channel, Jsonb *rcpt, const char *template);
static void invites_gone(RuleRun *run, const char *row_key);
static void invites_truncated(CompiledRule *rule);

static TupleDesc batch_desc = NULL;
static SPIPlanPtr upsert_plan = NULL;
static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr insert_missing_plan = NULL;
static SPIPlanPtr cancel_by_key_plan = NULL;
static SPIPlanPtr pending_plan = NULL;
static SPIPlanPtr cancel_ids_plan = NULL;
static SPIPlanPtr cancel_keys_plan = NULL;
static SPIPlanPtr cancel_rule_plan = NULL;

/* ----------------------------------------------------------------
 *		Plans and the batch relation
 * ----------------------------------------------------------------
 */

static TupleDesc
get_batch_desc(void)
{
	if (batch_desc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		TupleDesc	d = CreateTemplateTupleDesc(B_NCOLS);

		TupleDescInitEntry(d, B_KEY + 1, "key", TEXTOID, -1, 0);
		TupleDescInitEntry(d, B_SOURCE_KEY + 1, "source_key", TEXTOID, -1, 0);
		TupleDescInitEntry(d, B_CHANNEL + 1, "channel", TEXTOID, -1, 0);
		TupleDescInitEntry(d, B_RECIPIENT_ID + 1, "recipient_id", INT8OID, -1, 0);
		TupleDescInitEntry(d, B_RECIPIENT + 1, "recipient", JSONBOID, -1, 0);
		TupleDescInitEntry(d, B_TEMPLATE + 1, "template", TEXTOID, -1, 0);
		TupleDescInitEntry(d, B_DATA + 1, "data", JSONBOID, -1, 0);
		TupleDescInitEntry(d, B_DUE_AT + 1, "due_at", TIMESTAMPTZOID, -1, 0);
		batch_desc = BlessTupleDesc(d);
		MemoryContextSwitchTo(old);
	}
	return batch_desc;
}

/*
 * Write the batch.  A pending message with the same key takes the new
 * values, and only goes back to scheduled (resetting next_attempt_at) when
 * its due time moved; a message the rule cancelled is scheduled again;
 * anything sent, sending, failed, suppressed or cancelled by someone else
 * stays as it is.  Needs the batch registered as an ENR.
 */
static void
prepare_upsert(void)
{
	Oid			argtypes[4] = {INT8OID, TEXTOID, TEXTOID, INT2OID};

	upsert_plan = spi_prepare_kept(
					   "INSERT INTO reminder.message AS m "
					   "  (channel, recipient_id, recipient, template, data, due_at, next_attempt_at, "
					   "   idempotency_key, rule_id, source_table, source_key, category, priority) "
					   "SELECT channel, recipient_id, recipient, template, data, due_at, due_at, "
					   "       key, $1, $2, source_key, $3, $4 "
					   "  FROM " BATCH_NAME " "
					   "ON CONFLICT (idempotency_key) DO UPDATE SET "
					   "  channel = excluded.channel, "
					   "  recipient_id = excluded.recipient_id, "
					   "  recipient = excluded.recipient, "
					   "  template = excluded.template, "
					   "  data = excluded.data, "
					   "  source_table = excluded.source_table, "
					   "  status = CASE WHEN m.status = 'cancelled' OR m.due_at <> excluded.due_at "
					   "           THEN 'scheduled' ELSE m.status END, "
					   "  next_attempt_at = CASE WHEN m.status = 'cancelled' OR m.due_at <> excluded.due_at "
					   "           THEN excluded.due_at ELSE m.next_attempt_at END, "
					   "  last_error = CASE WHEN m.status = 'cancelled' THEN NULL ELSE m.last_error END, "
					   "  due_at = excluded.due_at, "
					   "  updated_at = now() "
					   "WHERE m.rule_id = excluded.rule_id "
					   "  AND (m.status IN ('scheduled', 'retrying') "
					   "       OR (m.status = 'cancelled' AND m.last_error LIKE '" RULE_CANCEL_PREFIX "%')) "
					   "  AND (m.status = 'cancelled' "
					   "       OR (m.due_at, m.channel, m.template, m.recipient, m.data) IS DISTINCT FROM "
					   "          (excluded.due_at, excluded.channel, excluded.template, excluded.recipient, excluded.data))",
					   4, argtypes, 0);
}

/*
 * Move the pending messages of updated rows, by key, straight from the
 * batch, with the same rules as the upsert: only a moved due time puts a
 * message back to scheduled, a message the rule cancelled comes back, any
 * other state is left alone.
 */
static void
prepare_update(void)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};

	update_plan = spi_prepare_kept(
					   "UPDATE reminder.message AS m SET "
					   "  channel = b.channel, "
					   "  recipient_id = b.recipient_id, "
					   "  recipient = b.recipient, "
					   "  template = b.template, "
					   "  data = b.data, "
					   "  source_table = $2, "
					   "  status = CASE WHEN m.status = 'cancelled' OR m.due_at <> b.due_at "
					   "           THEN 'scheduled' ELSE m.status END, "
					   "  next_attempt_at = CASE WHEN m.status = 'cancelled' OR m.due_at <> b.due_at "
					   "           THEN b.due_at ELSE m.next_attempt_at END, "
					   "  last_error = CASE WHEN m.status = 'cancelled' THEN NULL ELSE m.last_error END, "
					   "  due_at = b.due_at, "
					   "  updated_at = now() "
					   "FROM " BATCH_NAME " AS b "
					   "WHERE m.idempotency_key = b.key AND m.rule_id = $1 "
					   "  AND (m.status IN ('scheduled', 'retrying') "
					   "       OR (m.status = 'cancelled' AND m.last_error LIKE '" RULE_CANCEL_PREFIX "%')) "
					   "  AND (m.status = 'cancelled' "
					   "       OR (m.due_at, m.channel, m.template, m.recipient, m.data) IS DISTINCT FROM "
					   "          (b.due_at, b.channel, b.template, b.recipient, b.data))",
					   2, argtypes, 0);
}

/*
 * ...and insert those whose key has no message at all, in the outbox or in
 * history: an old row written again makes no second message for a step
 * long sent.
 */
static void
prepare_insert_missing(void)
{
	Oid			argtypes[4] = {INT8OID, TEXTOID, TEXTOID, INT2OID};

	insert_missing_plan = spi_prepare_kept(
							   "INSERT INTO reminder.message "
							   "  (channel, recipient_id, recipient, template, data, due_at, next_attempt_at, "
							   "   idempotency_key, rule_id, source_table, source_key, category, priority) "
							   "SELECT channel, recipient_id, recipient, template, data, due_at, due_at, "
							   "       key, $1, $2, source_key, $3, $4 "
							   "  FROM " BATCH_NAME " AS b "
							   " WHERE NOT EXISTS (SELECT FROM reminder.message m "
							   "                    WHERE m.idempotency_key = b.key) "
							   "   AND NOT EXISTS (SELECT FROM reminder.message_history h "
							   "                    WHERE h.idempotency_key = b.key) "
							   "ON CONFLICT (idempotency_key) DO NOTHING",
							   4, argtypes, 0);
}

/*
 * The pending messages of rule $1 whose keys lie in the range r.lo, r.hi:
 * the messages of one row (see rule_key_prefix).  A subquery the planner
 * may not flatten, so that it probes the key's index once per range: as a
 * join, both bounds unknown, it would guess a ninth of the table per range
 * and scan the whole table instead.
 */
#define PENDING_IN_RANGE \
	"LATERAL (SELECT m.id, m.idempotency_key, m.due_at FROM reminder.message m " \
	"         WHERE m.idempotency_key >= r.lo AND m.idempotency_key < r.hi " \
	"           AND m.rule_id = $1 AND m.status IN ('scheduled', 'retrying') OFFSET 0)"

static void
prepare_plans(void)
{
	if (pending_plan == NULL)
	{
		Oid			argtypes[3] = {INT8OID, TEXTARRAYOID, TEXTARRAYOID};

		pending_plan = spi_prepare_kept("SELECT p.id, p.idempotency_key, p.due_at "
							"FROM unnest($2, $3) AS r(lo, hi), " PENDING_IN_RANGE " p",
							3, argtypes, 0);
	}
	if (cancel_ids_plan == NULL)
	{
		Oid			argtypes[2] = {INT8ARRAYOID, TEXTOID};

		cancel_ids_plan = spi_prepare_kept("UPDATE reminder.message SET status = 'cancelled', next_attempt_at = NULL, "
							   "last_error = $2, updated_at = now() "
							   "WHERE id = ANY ($1) AND status IN ('scheduled', 'retrying')",
							   2, argtypes, 0);
	}
	if (cancel_keys_plan == NULL)
	{
		Oid			argtypes[4] = {INT8OID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID};

		cancel_keys_plan = spi_prepare_kept("UPDATE reminder.message m SET status = 'cancelled', next_attempt_at = NULL, "
								"last_error = $4, updated_at = now() "
								"FROM unnest($2, $3) AS r(lo, hi), " PENDING_IN_RANGE " p "
								"WHERE m.id = p.id",
								4, argtypes, 0);
	}
	if (cancel_by_key_plan == NULL)
	{
		Oid			argtypes[3] = {INT8OID, TEXTARRAYOID, TEXTOID};

		cancel_by_key_plan = spi_prepare_kept("UPDATE reminder.message SET status = 'cancelled', next_attempt_at = NULL, "
								  "last_error = $3, updated_at = now() "
								  "WHERE idempotency_key = ANY ($2) AND rule_id = $1 "
								  "AND status IN ('scheduled', 'retrying')",
								  3, argtypes, 0);
	}
	if (cancel_rule_plan == NULL)
	{
		Oid			argtypes[2] = {INT8OID, TEXTOID};

		cancel_rule_plan = spi_prepare_kept("UPDATE reminder.message SET status = 'cancelled', next_attempt_at = NULL, "
								"last_error = $2, updated_at = now() "
								"WHERE idempotency_key >= 'rule:' || $1 || ':' "
								"AND idempotency_key < 'rule:' || $1 || ';' "
								"AND rule_id = $1 AND status IN ('scheduled', 'retrying')",
								2, argtypes, 0);
	}
}

/*
 * Cancel every pending message of a rule; returns how many.  Runs as the
 * current user: callers switch to the extension owner.
 */
int64
rules_cancel_pending(int64 rule_id, const char *reason)
{
	Datum		values[2];
	int64		n;

	SPI_connect();
	prepare_plans();
	values[0] = Int64GetDatum(rule_id);
	values[1] = CStringGetTextDatum(reason);
	spi_plan_expect(cancel_rule_plan, values, NULL, false, 0, SPI_OK_UPDATE);
	n = SPI_processed;
	SPI_finish();
	return n;
}

/* ----------------------------------------------------------------
 *		Keys
 * ----------------------------------------------------------------
 */

static void
append_encoded(StringInfo buf, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
			appendStringInfoChar(buf, *p);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[*p >> 4]);
			appendStringInfoChar(buf, hex[*p & 15]);
		}
	}
}

static void
append_key_part(StringInfo buf, const char *s)
{
	if (strlen(s) <= MAX_KEY_TEXT)
		append_encoded(buf, s);
	else
	{
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
		uint8		digest[PG_SHA256_DIGEST_LENGTH];

		if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) s, strlen(s)) < 0 ||
			pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
			elog(ERROR, "could not compute SHA-256");
		pg_cryptohash_free(ctx);
		appendStringInfoString(buf, "sha256.");
		for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
			appendStringInfo(buf, "%02x", digest[i]);
	}
}

/*
 * Message keys are rule:<rule>:<row key>:<recipient>:<step>[:<value>],
 * parts encoded so that the key is plain ASCII without separators inside
 * parts: it goes into HTTP headers and SMTP Message-IDs.  The row's part
 * comes first so that the keys of one row's messages share a prefix: its
 * messages are a range of the key's unique index (byte-wise, the column is
 * COLLATE "C"), which reminder.message needs no other index for.
 *
 * rule_key_prefix() is "rule:<rule>:<row key>:", the start of the keys of
 * every message of the row; they all sort before the same text ending in
 * ';' instead (rule_key_prefix_end()).
 */
char *
rule_key_prefix(int64 rule_id, const char *row_key)
{
	StringInfoData buf;
	char		id[MAXINT8LEN + 1];

	/* no printf: this runs for every row a statement writes */
	pg_lltoa(rule_id, id);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "rule:");
	appendStringInfoString(&buf, id);
	appendStringInfoChar(&buf, ':');
	append_key_part(&buf, row_key);
	appendStringInfoChar(&buf, ':');
	return buf.data;
}

char *
rule_key_prefix_end(const char *prefix)
{
	char	   *end = pstrdup(prefix);

	Assert(end[strlen(end) - 1] == ':');
	end[strlen(end) - 1] = ';';
	return end;
}

static char *
message_key(const char *prefix, int recipient, int step, const char *value)
{
	StringInfoData buf;
	char		num[MAXINT8LEN + 1];

	initStringInfo(&buf);
	appendStringInfoString(&buf, prefix);
	pg_ltoa(recipient, num);
	appendStringInfoString(&buf, num);
	appendStringInfoChar(&buf, ':');
	pg_ltoa(step, num);
	appendStringInfoString(&buf, num);
	if (value)
	{
		appendStringInfoChar(&buf, ':');
		append_key_part(&buf, value);
	}
	return buf.data;
}

static uint32
desired_hash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
desired_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
want(RuleRun *run, const char *key, TimestampTz due_at, bool written)
{
	Desired    *d;
	char	   *k = MemoryContextStrdup(run->batch_cxt, key);
	bool		found;

	d = hash_search(run->desired, &k, HASH_ENTER, &found);
	if (!found || written)
	{
		d->due_at = due_at;
		d->written = written || (found && d->written);
	}
}

/* ----------------------------------------------------------------
 *		The batch
 * ----------------------------------------------------------------
 */

static void
batch_start(RuleRun *run)
{
	MemoryContext old = MemoryContextSwitchTo(run->batch_cxt);
	HASHCTL		ctl;

	run->batch = tuplestore_begin_heap(false, false, work_mem);
	run->nbatch = 0;
	run->min_due = DT_NOEND;
	run->nold = 0;
	run->maxold = 64;
	run->old_keys = palloc(sizeof(Datum) * run->maxold);
	run->desired = NULL;
	run->old_wanted = NIL;
	run->invites = NIL;
	if (run->follow_state && run->event == RUN_UPDATE)
	{
		ctl.keysize = sizeof(char *);
		ctl.entrysize = sizeof(Desired);
		ctl.hash = desired_hash;
		ctl.match = desired_match;
		ctl.hcxt = run->batch_cxt;
		run->desired = hash_create("reminder desired messages", 256, &ctl,
								   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	}
	MemoryContextSwitchTo(old);
}

static void
batch_add(RuleRun *run, const char *key, const char *row_key, const char *channel,
		  int64 recipient_id, Jsonb *recipient, const char *template, Jsonb *data,
		  TimestampTz due_at)
{
	Datum		values[B_NCOLS];
	bool		nulls[B_NCOLS] = {0};

	values[B_KEY] = CStringGetTextDatum(key);
	values[B_SOURCE_KEY] = CStringGetTextDatum(row_key);
	values[B_CHANNEL] = CStringGetTextDatum(channel);
	values[B_RECIPIENT_ID] = Int64GetDatum(recipient_id);
	nulls[B_RECIPIENT_ID] = recipient_id == 0;
	values[B_RECIPIENT] = JsonbPGetDatum(recipient);
	values[B_TEMPLATE] = CStringGetTextDatum(template);
	values[B_DATA] = JsonbPGetDatum(data);
	values[B_DUE_AT] = TimestampTzGetDatum(due_at);
	tuplestore_putvalues(run->batch, get_batch_desc(), values, nulls);

	run->nbatch++;
	if (due_at < run->min_due)
		run->min_due = due_at;
	if (run->desired)
		want(run, key, due_at, true);
}

/* An old row whose pending messages are looked up: its key prefix. */
static void
add_old_key(RuleRun *run, const char *prefix)
{
	MemoryContext old = MemoryContextSwitchTo(run->batch_cxt);

	if (run->nold == run->maxold)
	{
		run->maxold *= 2;
		run->old_keys = repalloc(run->old_keys, sizeof(Datum) * run->maxold);
	}
	run->old_keys[run->nold++] = CStringGetTextDatum(prefix);
	MemoryContextSwitchTo(old);
}

/* The key ranges of the old rows' messages, as arrays of lower and upper bounds. */
static void
old_key_ranges(RuleRun *run, Datum *lo, Datum *hi)
{
	Datum	   *ends = palloc(sizeof(Datum) * Max(run->nold, 1));

	for (int i = 0; i < run->nold; i++)
		ends[i] = CStringGetTextDatum(rule_key_prefix_end(TextDatumGetCString(run->old_keys[i])));
	*lo = PointerGetDatum(construct_array(run->old_keys, run->nold, TEXTOID, -1, false, TYPALIGN_INT));
	*hi = PointerGetDatum(construct_array(ends, run->nold, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Run a plan over the batch registered as BATCH_NAME; returns the number
 * of rows processed.  The planner is told the batch holds one row whatever
 * its size: a nested loop over it with index lookups into reminder.message
 * suits any batch, while a kept plan made for a large batch (a hash join
 * scanning the outbox) would be very wrong for the single-row statements
 * that follow.
 */
static uint64
run_on_batch(RuleRun *run, SPIPlanPtr *plan, void (*prepare) (void), Datum *values,
			 int expect)
{
	EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));
	uint64		n;

	enr->md.name = BATCH_NAME;
	enr->md.reliddesc = InvalidOid;
	enr->md.tupdesc = get_batch_desc();
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = 1;
	enr->reldata = run->batch;
	spi_expect(SPI_register_relation(enr), SPI_OK_REL_REGISTER,
			   "the registration of the message batch");
	if (*plan == NULL)
		prepare();				/* the plan refers to the batch: prepare it now */
	spi_plan_expect(*plan, values, NULL, false, 0, expect);
	n = SPI_processed;
	spi_expect(SPI_unregister_relation(BATCH_NAME), SPI_OK_REL_UNREGISTER,
			   "the removal of the message batch");
	return n;
}

static void
cancel_ids(Datum *ids, int n, const char *reason, SPIPlanPtr plan, Datum rule_id)
{
	Datum		args[3];

	if (n == 0)
		return;
	if (plan == cancel_ids_plan)
	{
		args[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = CStringGetTextDatum(reason);
	}
	else
	{
		args[0] = rule_id;
		args[1] = PointerGetDatum(construct_array(ids, n, TEXTOID, -1, false, TYPALIGN_INT));
		args[2] = CStringGetTextDatum(reason);
	}
	spi_plan_expect(plan, args, NULL, false, 0, SPI_OK_UPDATE);
}

/*
 * UPDATE of a rule that follows the row's state: cancel the pending
 * messages the old rows called for and the new rows do not, then move the
 * ones both call for (by key, from the batch) and insert the new ones.
 *
 * What the old rows called for is worked out from the old rows themselves
 * when every expression of the rule is immutable, so the same row gives
 * the same answer now as when it was written.  Otherwise (now(), a STABLE
 * function reading another table) the pending messages of the old rows are
 * read back and compared.
 */
static void
flush_update(RuleRun *run, Datum *values)
{
	Datum	   *cancel;
	int			ncancel = 0;
	ListCell   *lc;

	if (run->rule->deterministic)
	{
		cancel = palloc(sizeof(Datum) * Max(list_length(run->old_wanted), 1));
		foreach(lc, run->old_wanted)
		{
			Desired    *o = lfirst(lc);
			Desired    *d = hash_search(run->desired, &o->key, HASH_FIND, NULL);

			if (d == NULL || (!d->written && d->due_at != o->due_at))
				cancel[ncancel++] = CStringGetTextDatum(o->key);
		}
		cancel_ids(cancel, ncancel, RULE_CANCEL_PREFIX "row changed", cancel_by_key_plan, values[0]);
	}
	else
	{
		Datum		args[3];
		uint64		n;

		args[0] = values[0];
		old_key_ranges(run, &args[1], &args[2]);
		spi_plan_expect(pending_plan, args, NULL, false, 0, SPI_OK_SELECT);
		n = SPI_processed;
		cancel = palloc(sizeof(Datum) * Max(n, 1));
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			char	   *key = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
			TimestampTz due = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
			Desired    *d = hash_search(run->desired, &key, HASH_FIND, NULL);

			/* invitations, updates and cancellations are flush_invites()'s */
			if (invite_notice_key(key))
				continue;
			if (d == NULL || (!d->written && d->due_at != due))
				cancel[ncancel++] = SPI_getbinval(tup, desc, 1, &isnull);
		}
		cancel_ids(cancel, ncancel, RULE_CANCEL_PREFIX "row changed", cancel_ids_plan, values[0]);
	}

	if (run->nbatch > 0 &&
		run_on_batch(run, &update_plan, prepare_update, values, SPI_OK_UPDATE) < run->nbatch)
		(void) run_on_batch(run, &insert_missing_plan, prepare_insert_missing, values, SPI_OK_INSERT);
}

static void
flush(RuleRun *run)
{
	MemoryContext old;
	Datum		values[4];

	if (run->nbatch == 0 && run->nold == 0 && run->old_wanted == NIL && run->invites == NIL)
		return;

	old = MemoryContextSwitchTo(run->batch_cxt);
	SPI_connect();
	prepare_plans();
	values[0] = Int64GetDatum(run->rule->id);
	values[1] = CStringGetTextDatum(run->rule->source_table);
	values[2] = CStringGetTextDatum(run->rule->category);	/* for inserts */
	values[3] = Int16GetDatum(run->rule->priority);	/* for inserts */

	if (run->event == RUN_DELETE)
	{
		old_key_ranges(run, &values[1], &values[2]);
		values[3] = CStringGetTextDatum(RULE_CANCEL_PREFIX "row deleted");
		spi_plan_expect(cancel_keys_plan, values, NULL, false, 0, SPI_OK_UPDATE);
	}
	else if (run->event == RUN_UPDATE && run->follow_state)
		flush_update(run, values);
	else if (run->nbatch > 0)
		(void) run_on_batch(run, &upsert_plan, prepare_upsert, values, SPI_OK_INSERT);
	if (run->invites != NIL)
		flush_invites(run);

	if (run->nbatch > 0)
		wakeup_at_commit(run->min_due);
	SPI_finish();
	MemoryContextSwitchTo(old);

	tuplestore_end(run->batch);
	MemoryContextReset(run->batch_cxt);
	batch_start(run);
}

/* ----------------------------------------------------------------
 *		Evaluating the rule for a row
 * ----------------------------------------------------------------
 */

/*
 * Evaluate expression i of the rule as the table owner, in an owner scope:
 * whatever the functions it calls do to the session's settings is undone
 * before the extension's own statements run again.  An expression that
 * runs no code (a column, a comparison) needs neither.
 */
static Datum
eval(RuleRun *run, int i, bool *isnull)
{
	OwnerContext scope;
	Datum		d;

	if (bms_is_member(i, run->rule->plain_exprs))
		return ExecEvalExpr(run->states[i], run->econtext, isnull);
	owner_enter(&scope, run->rule->owner, OWNER_RESTRICTED);
	d = ExecEvalExpr(run->states[i], run->econtext, isnull);
	owner_leave(&scope);
	return d;
}

static bool
eval_bool(RuleRun *run, int i)
{
	bool		isnull;
	Datum		d = eval(run, i, &isnull);

	return !isnull && DatumGetBool(d);
}

static char *
eval_text(RuleRun *run, RuleValue *v)
{
	bool		isnull;
	Datum		d;

	if (v->expr < 0)
		return v->isnull ? NULL : DatumGetPointer(v->value);
	d = eval(run, v->expr, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * The row as jsonb, as the table owner.  Its timestamps are written in the
 * rule's time zone, as the worker writes the rows it reads at send time,
 * whatever the TimeZone of the session writing the row.
 */
static Jsonb *
eval_data(RuleRun *run, ExprState *state)
{
	OwnerContext scope;
	bool		isnull;
	Datum		d;

	owner_enter(&scope, run->rule->owner, OWNER_RESTRICTED);
	(void) set_config_option("TimeZone", run->zone, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	rule_pin_styles();
	d = ExecEvalExpr(state, run->econtext, &isnull);
	owner_leave(&scope);
	return DatumGetJsonbP(d);
}

/* A local date or time in the rule's zone as a point in time. */
static bool
local_time(CompiledRule *rule, Oid type, Datum d, TimestampTz *result)
{
	struct pg_tm tm;
	fsec_t		fsec;
	Timestamp	ts;
	int			tz;

	switch (type)
	{
		case TIMESTAMPTZOID:
			*result = DatumGetTimestampTz(d);
			return !TIMESTAMP_NOT_FINITE(*result);
		case DATEOID:
			if (DATE_NOT_FINITE(DatumGetDateADT(d)))
				return false;
			ts = date2timestamp_no_overflow(DatumGetDateADT(d));
			break;
		default:
			ts = DatumGetTimestamp(d);
			break;
	}
	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return false;
	tz = DetermineTimeZoneOffset(&tm, rule->tz);
	return tm2timestamp(&tm, fsec, &tz, result) == 0;
}

/* The rule's column_name value as a point in time. */
bool
rule_anchor_time(CompiledRule *rule, Datum d, TimestampTz *result)
{
	return local_time(rule, rule->column_type, d, result);
}

static bool
blank(const char *s)
{
	return s == NULL || s[strspn(s, " \t\r\n")] == '\0';
}

/* SQL NULL, or a jsonb that is JSON null */
static bool
jsonb_is_null(Jsonb *j)
{
	JsonbValue	v;

	return j == NULL ||
		(JB_ROOT_IS_SCALAR(j) && JsonbExtractScalar(&j->root, &v) && v.type == jbvNull);
}

/*
 * The bcc a rule's expression gives, as the recipient's "bcc": NULL for
 * none (SQL NULL, JSON null, an empty string or array); null and empty
 * elements of an array are left out.  Anything else is kept as it is, for
 * recipient_for_channel() to check like any other address.
 */
static Jsonb *
bcc_addresses(Jsonb *bcc)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;
	JsonbValue *res;

	if (jsonb_is_null(bcc))
		return NULL;
	if (JB_ROOT_IS_SCALAR(bcc))
	{
		(void) JsonbExtractScalar(&bcc->root, &v);
		if (v.type == jbvString && blank(pnstrdup(v.val.string.val, v.val.string.len)))
			return NULL;
		return bcc;
	}
	if (!JB_ROOT_IS_ARRAY(bcc))
		return bcc;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	it = JsonbIteratorInit(&bcc->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (v.type == jbvNull ||
			(v.type == jbvString && blank(pnstrdup(v.val.string.val, v.val.string.len))))
			continue;
		pushJsonbValue(&state, WJB_ELEM, &v);
		n++;
	}
	res = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	return n == 0 ? NULL : JsonbValueToJsonb(res);
}

/*
 * The recipient of r for this row, checked for channel cc; NULL when the
 * row gives no address for the channel (no message then).  *recipient_id
 * is the stored recipient's id, or 0.
 *
 * Every setting that is an expression may give NULL: "to" (or JSON null)
 * means no recipient for the row, a field of "to" is left out, "bcc" means
 * no bcc.  bcc and cc go only to channels of a kind that takes copies
 * (email, see TransportOps): with a channel that is an expression, the rows
 * for other channels get neither.  A recipient without a time zone gets the
 * rule's, so that its dates show in the zone the rule counts in.
 */
static Jsonb *
build_recipient(RuleRun *run, RuleRecipient *r, ChannelConfig *cc, int64 *recipient_id)
{
	Jsonb	   *rcpt;
	Jsonb	   *bcc = NULL;
	char	   *addr;
	const TransportOps *ops = transport_for_kind(cc->kind);
	bool		copies = ops != NULL && ops->copies;

	*recipient_id = 0;
	if (r->constant && run->fixed[r->index] != NULL)
	{
		*recipient_id = run->fixed_id[r->index];
		return run->fixed[r->index];
	}

	if (r->to_expr >= 0)
	{
		bool		isnull;
		Datum		d = eval(run, r->to_expr, &isnull);

		if (isnull)
			return NULL;
		rcpt = DatumGetJsonbP(d);
		if (jsonb_is_null(rcpt))
			return NULL;
		if (!JB_ROOT_IS_OBJECT(rcpt) || JB_ROOT_IS_SCALAR(rcpt))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recipients[%d].to must give a JSON object", r->index),
					 errhint("Build it with jsonb_build_object('email', ...).")));
	}
	else
		rcpt = r->to_const;

	/* bcc: NULL is none; evaluated before anything uses it */
	if (copies && r->bcc.expr >= 0)
	{
		bool		isnull;
		Datum		d = eval(run, r->bcc.expr, &isnull);

		if (!isnull)
			bcc = bcc_addresses(DatumGetJsonbP(d));
	}
	else if (copies && !r->bcc.isnull)
		bcc = DatumGetJsonbP(r->bcc.value);

	/*
	 * one pass adds the per-row fields, role and bcc, and drops cc and bcc
	 * from messages of channels that take no copies
	 */
	if (r->to_fields != NIL || r->role != NULL || bcc != NULL ||
		(!copies && (jsonb_get(rcpt, "cc") != NULL || jsonb_get(rcpt, "bcc") != NULL)))
	{
		JsonbParseState *state = NULL;
		JsonbIterator *it = JsonbIteratorInit(&rcpt->root);
		JsonbValue	v;
		JsonbValue	k;
		JsonbIteratorToken tok;
		ListCell   *lc;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_END_OBJECT)
				break;
			if (tok == WJB_KEY && !copies &&
				((v.val.string.len == 2 && memcmp(v.val.string.val, "cc", 2) == 0) ||
				 (v.val.string.len == 3 && memcmp(v.val.string.val, "bcc", 3) == 0)))
			{
				(void) JsonbIteratorNext(&it, &v, true);	/* and its value */
				continue;
			}
			pushJsonbValue(&state, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
		}
		foreach(lc, r->to_fields)
		{
			RuleField  *f = lfirst(lc);
			bool		isnull;
			Datum		d = eval(run, f->expr, &isnull);

			if (isnull)
				continue;
			v.type = jbvString;
			v.val.string.val = TextDatumGetCString(d);
			v.val.string.len = strlen(v.val.string.val);
			if (blank(v.val.string.val))
				continue;		/* like NULL */
			k.type = jbvString;
			k.val.string.val = f->key;
			k.val.string.len = strlen(f->key);
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
		}
		if (r->role)
		{
			k.type = jbvString;
			k.val.string.val = "role";
			k.val.string.len = 4;
			v.type = jbvString;
			v.val.string.val = r->role;
			v.val.string.len = strlen(r->role);
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
		}
		if (bcc != NULL)
		{
			k.type = jbvString;
			k.val.string.val = "bcc";
			k.val.string.len = 3;
			pushJsonbValue(&state, WJB_KEY, &k);
			if (JB_ROOT_IS_SCALAR(bcc))
			{
				JsonbValue	scalar;

				(void) JsonbExtractScalar(&bcc->root, &scalar);
				pushJsonbValue(&state, WJB_VALUE, &scalar);
			}
			else
			{
				v.type = jbvBinary;
				v.val.binary.data = &bcc->root;
				v.val.binary.len = VARSIZE(bcc) - VARHDRSZ;
				pushJsonbValue(&state, WJB_VALUE, &v);
			}
		}
		rcpt = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
	}

	if (jsonb_get(rcpt, "id") || jsonb_get(rcpt, "external_id"))
		rcpt = catalog_resolve_recipient(rcpt, recipient_id);

	/* no address for the channel: this row gets no message of it */
	if (ops != NULL && ops->address_key != NULL)
	{
		addr = jsonb_get_text(rcpt, ops->address_key);
		if (blank(addr))
			return NULL;
	}

	rcpt = recipient_for_channel(rcpt, cc);
	if (blank(jsonb_get_text(rcpt, "time_zone")))
		rcpt = jsonb_set_text(rcpt, "time_zone", run->zone);

	if (r->constant)
	{
		MemoryContext old = MemoryContextSwitchTo(run->econtext->ecxt_per_query_memory);

		run->fixed[r->index] = DatumGetJsonbPCopy(JsonbPGetDatum(rcpt));
		run->fixed_id[r->index] = *recipient_id;
		MemoryContextSwitchTo(old);
	}
	return rcpt;
}

/* The template of step for a transition to value; NULL: no message. */
static char *
template_for(RuleRun *run, RuleRecipient *r, const char *value, int step)
{
	if (r->templates && JB_ROOT_IS_OBJECT(r->templates) && value != NULL)
	{
		char	   *t = jsonb_get_text(r->templates, value);

		if (t)
			return t;
	}
	else if (r->templates && JB_ROOT_IS_ARRAY(r->templates))
	{
		int			n = JsonContainerSize(&r->templates->root);
		JsonbValue *v = getIthJsonbValueFromContainer(&r->templates->root, Min(step, n - 1));

		return jsonb_value_text(v);
	}
	return eval_text(run, &r->template);
}

static void
emit(RuleRun *run, RuleRecipient *r, const char *row_key, TimestampTz anchor,
	 const char *value, Jsonb **data, bool has_old)
{
	CompiledRule *rule = run->rule;
	char	   *channel;
	ChannelConfig *cc;
	Jsonb	   *rcpt;
	int64		recipient_id;
	Interval   *offsets = r->offsets;
	int			noffsets = r->noffsets;
	bool	   *offnulls = NULL;
	char	   *locale;
	int			sign = rule->kind == RULE_BEFORE ? -1 : 1;

	if (r->when >= 0 && !eval_bool(run, r->when))
		return;
	if (r->unless >= 0 && eval_bool(run, r->unless))
		return;
	if (blank(channel = eval_text(run, &r->channel)))
		return;
	if (run->keys_only)
	{
		/*
		 * The old row's keys may include some it had no address for:
		 * cancelling a key without a pending message does nothing, and
		 * its channel may not even exist any more.
		 */
		cc = NULL;
		rcpt = NULL;
		recipient_id = 0;
	}
	else
	{
		cc = rule_cache_channel(channel);
		if ((rcpt = build_recipient(run, r, cc, &recipient_id)) == NULL)
			return;
	}

	if (r->offsets_expr >= 0)
	{
		bool		isnull;
		Datum		d = eval(run, r->offsets_expr, &isnull);
		Datum	   *elems;

		if (isnull)
			return;
		deconstruct_array(DatumGetArrayTypeP(d), INTERVALOID, sizeof(Interval), false,
						  TYPALIGN_DOUBLE, &elems, &offnulls, &noffsets);
		offsets = palloc(sizeof(Interval) * Max(noffsets, 1));
		for (int i = 0; i < noffsets; i++)
			if (!offnulls[i])
				offsets[i] = *DatumGetIntervalP(elems[i]);
	}
	if (noffsets == 0)
		return;
	if (r->invite && !run->keys_only)
	{
		const TransportOps *ops = transport_for_kind(cc->kind);

		if (ops != NULL && ops->invites)
			invite_note(run, r, row_key, channel, rcpt, template_for(run, r, value, 0));
	}

	locale = rcpt ? jsonb_get_text(rcpt, "locale") : NULL;

	for (int i = 0; i < noffsets; i++)
	{
		TimestampTz due;
		char	   *template;
		TemplateRow *tmpl;
		char	   *key;

		if (offnulls && offnulls[i])
			continue;
		if (rule->business_days && offsets[i].month != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("offset of rule \"%s\" has months, which cannot be counted in business days",
							rule->name)));
		due = calendar_add(anchor, &offsets[i], sign,
						   rule->business_days ? rule->calendar : NULL, rule->tz);
		if (blank(template = template_for(run, r, value, i)))
			continue;
		key = message_key(run->key_prefix, r->index, i, value);
		if (run->keys_only)
		{
			MemoryContext old = MemoryContextSwitchTo(run->batch_cxt);
			Desired    *o = palloc(sizeof(Desired));

			o->key = pstrdup(key);
			o->due_at = due;
			o->written = due >= run->now || rule->send_past;
			run->old_wanted = lappend(run->old_wanted, o);
			MemoryContextSwitchTo(old);
			continue;
		}
		/*
		 * The row as jsonb: stored by rules whose messages keep it, and
		 * otherwise only made to check what the template requires (it
		 * will see the row as it is when sent, which is checked on every
		 * write too).
		 */
		tmpl = rule_cache_template(template, locale);
		if (*data == NULL && (!rule->live_row || tmpl->required != NIL))
			*data = eval_data(run, has_old ? run->data_old : run->data_new);
		if (*data != NULL)
			check_required_variables(tmpl, *data, rcpt);

		if (due < run->now && !rule->send_past)
		{
			if (run->desired)
				want(run, key, due, false);
			continue;
		}
		batch_add(run, key, row_key, channel, recipient_id, rcpt, template,
				  rule->live_row ? run->no_row : *data, due);
	}
}

/*
 * A recurring rule keeps one occurrence ahead: the row calls for the first
 * occurrence at or after now of the series started at dtstart, each
 * recipient's message keyed by it.  The worker schedules the one after
 * when it takes this one (rule_recurring_next).  An UPDATE also counts the
 * occurrence before now as called for, unwritten: a message for it that
 * has not gone out yet keeps its place unless the series moved.
 */
static void
recurring_for_row(RuleRun *run, const char *row_key, TimestampTz dtstart, Jsonb **data)
{
	CompiledRule *rule = run->rule;
	BusinessCalendar *cal = rule->business_days ? rule->calendar : NULL;
	TimestampTz occ;
	ListCell   *lc;

	if ((run->desired || run->keys_only) &&
		rrule_prev(rule->rrule, dtstart, rule->tz, cal, run->now, &occ))
	{
		char	   *value = rrule_instant_key(occ);

		foreach(lc, rule->recipients)
			emit(run, lfirst(lc), row_key, occ, value, data, false);
	}
	if (rrule_next(rule->rrule, dtstart, rule->tz, cal, run->now, true, &occ))
	{
		char	   *value = rrule_instant_key(occ);

		foreach(lc, rule->recipients)
			emit(run, lfirst(lc), row_key, occ, value, data, false);
	}
}

/*
 * What the row in slot calls for, given the row before (oldslot, for an
 * UPDATE of an on_change or survey rule) or NULL.
 */
static void
wanted_for_row(RuleRun *run, TupleTableSlot *slot, TupleTableSlot *oldslot,
			   const char *row_key)
{
	CompiledRule *rule = run->rule;
	char	   *value = NULL;
	TimestampTz anchor;
	bool		isnull;
	Datum		d;
	Jsonb	   *data = NULL;
	ListCell   *lc;

	d = slot_getattr(slot, rule->column, &isnull);
	if (isnull)
		return;
	if (run->follow_state)
	{
		if (!rule_anchor_time(rule, d, &anchor))
			return;
	}
	else
	{
		/* on_change, survey: a change of the column to a value of interest */
		value = OutputFunctionCall(&rule->column_out, d);
		if (oldslot)
		{
			Datum		o = slot_getattr(oldslot, rule->column, &isnull);

			if (!isnull && strcmp(OutputFunctionCall(&rule->column_out, o), value) == 0)
				return;
		}
		if (rule->nchanges > 0)
		{
			int			i;

			for (i = 0; i < rule->nchanges; i++)
				if (rule->changes_to[i] && strcmp(rule->changes_to[i], value) == 0)
					break;
			if (i == rule->nchanges)
				return;
		}
		anchor = run->now;
	}

	if (rule->condition >= 0 && !eval_bool(run, rule->condition))
		return;
	if (rule->stop >= 0 && eval_bool(run, rule->stop))
		return;

	if (rule->kind == RULE_RECURRING)
	{
		recurring_for_row(run, row_key, anchor, &data);
		return;
	}
	foreach(lc, rule->recipients)
		emit(run, lfirst(lc), row_key, anchor, value, &data, oldslot != NULL);
}

/*
 * Whether an UPDATE left every column the rule reads as it was.  Then the
 * row calls for exactly the messages it called for, with the same values,
 * when the rule's expressions are immutable and its messages hold no copy
 * of the row: nothing to do.  Values are compared byte for byte, so an
 * equal value stored differently counts as a change, which costs only the
 * work this saves.
 */
static bool
columns_unchanged(RuleRun *run, TupleTableSlot *newslot, TupleTableSlot *oldslot)
{
	TupleDesc	desc = newslot->tts_tupleDescriptor;
	int			x = -1;

	if (!run->rule->deterministic || !run->rule->live_row)
		return false;
	while ((x = bms_next_member(run->rule->columns, x)) >= 0)
	{
		AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;
		Form_pg_attribute att;
		bool		newnull;
		bool		oldnull;
		Datum		newd;
		Datum		oldd;

		if (attno <= 0)
			return false;		/* the whole row */
		att = TupleDescAttr(desc, attno - 1);
		newd = slot_getattr(newslot, attno, &newnull);
		oldd = slot_getattr(oldslot, attno, &oldnull);
		if (newnull != oldnull ||
			(!newnull && !datumIsEqual(newd, oldd, att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

/*
 * The messages one row calls for.  oldslot is the row before an UPDATE,
 * or NULL.
 */
static void
process_row(RuleRun *run, TupleTableSlot *newslot, TupleTableSlot *oldslot)
{
	ExprContext *econtext = run->econtext;
	MemoryContext old;
	char	   *row_key;

	if (oldslot && run->follow_state && columns_unchanged(run, newslot, oldslot))
		return;

	ResetExprContext(econtext);
	old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);

	if (oldslot && run->follow_state)
	{
		/* a rule following the row's state: what did the old row call for? */
		row_key = rule_source_key(run->rule, oldslot);
		run->key_prefix = rule_key_prefix(run->rule->id, row_key);
		if (!run->rule->deterministic)
			add_old_key(run, run->key_prefix);	/* its pending messages are
												 * read back */
		else
		{
			econtext->ecxt_scantuple = oldslot;
			econtext->ecxt_outertuple = NULL;
			run->row_key = row_key;
			run->keys_only = true;
			wanted_for_row(run, oldslot, NULL, row_key);
			run->keys_only = false;
		}
		oldslot = NULL;
	}

	econtext->ecxt_scantuple = newslot;
	econtext->ecxt_outertuple = oldslot;
	row_key = rule_source_key(run->rule, newslot);
	run->row_key = row_key;
	run->key_prefix = rule_key_prefix(run->rule->id, row_key);
	if (run->has_invites)
		run->invite_seen = NULL;
	wanted_for_row(run, newslot, oldslot, row_key);
	if (run->has_invites)
		invites_gone(run, row_key);

	MemoryContextSwitchTo(old);
	run->row_key = NULL;
	run->key_prefix = NULL;
	if (run->nbatch >= BATCH_ROWS || run->nold >= BATCH_ROWS ||
		list_length(run->old_wanted) >= BATCH_ROWS)
		flush(run);
}

static void
run_error_callback(void *arg)
{
	RuleRun    *run = arg;

	if (run->row_key)
		errcontext("reminder rule \"%s\", row %s", run->rule->name, run->row_key);
	else
		errcontext("reminder rule \"%s\"", run->rule->name);
}

/*
 * Set up a run: executor states of the rule's expressions, built as the
 * table owner (that is when EXECUTE privileges are checked).
 */
static void
run_begin(RuleRun *run, CompiledRule *rule, RunEvent event)
{
	OwnerContext scope;
	int			n = list_length(rule->exprs);
	int			nrecipients = list_length(rule->recipients);
	ListCell   *lc;
	int			i = 0;

	memset(run, 0, sizeof(RuleRun));
	run->rule = rule;
	run->event = event;
	run->follow_state = rule->kind == RULE_BEFORE || rule->kind == RULE_AFTER ||
		rule->kind == RULE_FOLLOW_UP || rule->kind == RULE_RECURRING;
	run->zone = pg_get_timezone_name(rule->tz);
	run->now = GetCurrentTransactionStartTimestamp();

	run->econtext = CreateStandaloneExprContext();
	run->no_row = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	run->fixed = palloc0(sizeof(Jsonb *) * Max(nrecipients, 1));
	run->fixed_id = palloc0(sizeof(int64) * Max(nrecipients, 1));

	foreach(lc, rule->recipients)
		run->has_invites |= ((RuleRecipient *) lfirst(lc))->invite != NULL;
	if (event == RUN_DELETE && run->has_invites)
	{
		/* cancellations of the deleted rows' invites carry the row */
		MemoryContext old = MemoryContextSwitchTo(run->econtext->ecxt_per_query_memory);

		owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
		run->data_new = ExecInitExpr(rule->data_new, NULL);
		owner_leave(&scope);
		MemoryContextSwitchTo(old);
	}
	if (event != RUN_DELETE)
	{
		MemoryContext old = MemoryContextSwitchTo(run->econtext->ecxt_per_query_memory);

		owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
		run->states = palloc(sizeof(ExprState *) * Max(n, 1));
		foreach(lc, rule->exprs)
			run->states[i++] = ExecInitExpr(lfirst(lc), NULL);
		run->data_new = ExecInitExpr(rule->data_new, NULL);
		run->data_old = ExecInitExpr(rule->data_old, NULL);
		owner_leave(&scope);
		MemoryContextSwitchTo(old);
	}

	run->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "reminder batch",
										   ALLOCSET_DEFAULT_SIZES);
	batch_start(run);
}

static void
run_end(RuleRun *run)
{
	flush(run);
	tuplestore_end(run->batch);
	MemoryContextDelete(run->batch_cxt);
	FreeExprContext(run->econtext, true);
}

/* Read a transition table from the start with a read pointer of our own. */
static int
start_reading(Tuplestorestate *ts)
{
	int			ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
	return ptr;
}

static bool
next_row(Tuplestorestate *ts, int ptr, TupleTableSlot *slot)
{
	tuplestore_select_read_pointer(ts, ptr);
	return tuplestore_gettupleslot(ts, true, false, slot);
}

/*
 * Apply rule to the rows of one statement.  Runs as the extension owner,
 * with search_path pinned.
 */
static void
apply_rule(CompiledRule *rule, RunEvent event, TupleDesc desc,
		   Tuplestorestate *newtab, Tuplestorestate *oldtab)
{
	RuleRun		run;
	ErrorContextCallback errcb;
	TupleTableSlot *newslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	TupleTableSlot *oldslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			newptr = newtab ? start_reading(newtab) : -1;
	int			oldptr = oldtab ? start_reading(oldtab) : -1;

	run_begin(&run, rule, event);
	errcb.callback = run_error_callback;
	errcb.arg = &run;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	switch (event)
	{
		case RUN_INSERT:
			while (next_row(newtab, newptr, newslot))
				process_row(&run, newslot, NULL);
			break;
		case RUN_UPDATE:
			/* old and new rows come in the same order, pair by pair */
			while (next_row(newtab, newptr, newslot))
			{
				if (!next_row(oldtab, oldptr, oldslot))
					elog(ERROR, "transition tables of an update differ in length");
				process_row(&run, newslot, oldslot);
			}
			break;
		case RUN_DELETE:
			while (next_row(oldtab, oldptr, oldslot))
			{
				MemoryContext old = MemoryContextSwitchTo(run.econtext->ecxt_per_tuple_memory);

				char	   *row_key = rule_source_key(rule, oldslot);

				add_old_key(&run, rule_key_prefix(rule->id, row_key));
				if (run.has_invites)
				{
					/* every invite of a deleted row is cancelled */
					run.econtext->ecxt_scantuple = oldslot;
					run.invite_seen = NULL;
					invites_gone(&run, row_key);
				}
				MemoryContextSwitchTo(old);
				ResetExprContext(run.econtext);
				if (run.nold >= BATCH_ROWS)
					flush(&run);
			}
			break;
	}
	run_end(&run);

	error_context_stack = errcb.previous;
	ExecDropSingleTupleTableSlot(newslot);
	ExecDropSingleTupleTableSlot(oldslot);
}

/*
 * Schedule what the rows already in the table call for, as if they had
 * just been inserted (watch(..., backfill => true)).  Runs as the
 * extension owner with search_path pinned; reads the table as its owner.
 */
void
rules_backfill(CompiledRule *rule)
{
	Relation	rel = relation_open(rule->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	RuleRun		run;
	ErrorContextCallback errcb;
	Portal		portal;
	SPIPlanPtr	plan;
	char	   *sql;
	OwnerContext scope;

	sql = psprintf("SELECT t FROM %s%s AS t",
				   rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
				   rule->source_table);

	run_begin(&run, rule, RUN_INSERT);
	errcb.callback = run_error_callback;
	errcb.arg = &run;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	SPI_connect();
	owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\"", sql);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	owner_leave(&scope);

	for (;;)
	{
		owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
		SPI_cursor_fetch(portal, true, 1000);
		owner_leave(&scope);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			HeapTupleHeader th = DatumGetHeapTupleHeader(SPI_getbinval(SPI_tuptable->vals[i],
																	   SPI_tuptable->tupdesc, 1, &isnull));
			HeapTupleData tuple;

			tuple.t_len = HeapTupleHeaderGetDatumLength(th);
			ItemPointerSetInvalid(&tuple.t_self);
			tuple.t_tableOid = rule->relid;
			tuple.t_data = th;
			ExecStoreHeapTuple(&tuple, slot, false);
			process_row(&run, slot, NULL);
			ExecClearTuple(slot);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();

	run_end(&run);
	error_context_stack = errcb.previous;
	ExecDropSingleTupleTableSlot(slot);
	relation_close(rel, AccessShareLock);
}

/* ----------------------------------------------------------------
 *		The trigger function
 * ----------------------------------------------------------------
 */

Datum
reminder_watch_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TriggerEvent ev;
	int64		rule_id;
	CompiledRule *rule;
	OwnerContext ext;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("reminder.watch_trigger() must be called as a trigger")));
	ev = td->tg_event;
	if (!TRIGGER_FIRED_AFTER(ev) || !TRIGGER_FIRED_FOR_STATEMENT(ev) ||
		td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("reminder.watch_trigger() must be an AFTER ... FOR EACH STATEMENT trigger with a rule id"),
				 errhint("Create rules with reminder.watch().")));
	rule_id = pg_strtoint64(td->tg_trigger->tgargs[0]);

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	rule = rule_cache_get(rule_id, false);

	PG_TRY();
	{
		TupleDesc	desc = RelationGetDescr(td->tg_relation);

		if (rule->relid != RelationGetRelid(td->tg_relation))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" belongs to reminder rule \"%s\" on another table",
							td->tg_trigger->tgname, rule->name)));

		if (TRIGGER_FIRED_BY_TRUNCATE(ev))
		{
			(void) rules_cancel_pending(rule->id, RULE_CANCEL_PREFIX "table truncated");
			invites_truncated(rule);
		}
		else if (TRIGGER_FIRED_BY_INSERT(ev))
		{
			if (td->tg_newtable)
				apply_rule(rule, RUN_INSERT, desc, td->tg_newtable, NULL);
		}
		else if (TRIGGER_FIRED_BY_UPDATE(ev))
		{
			if (td->tg_newtable && td->tg_oldtable)
				apply_rule(rule, RUN_UPDATE, desc, td->tg_newtable, td->tg_oldtable);
		}
		else if (TRIGGER_FIRED_BY_DELETE(ev))
		{
			if (td->tg_oldtable)
				apply_rule(rule, RUN_DELETE, desc, NULL, td->tg_oldtable);
		}
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		owner_leave(&ext);
	}
	PG_END_TRY();
	return PointerGetDatum(NULL);
}

/* ----------------------------------------------------------------
 *		Invites: the state of each row's iCalendar event
 *
 *	  reminder.invite holds, per rule, row and recipient, the event the row
 *	  calls for (start, end, summary ...), its SEQUENCE and whether it is
 *	  cancelled; the worker reads it when it sends one of the recipient's
 *	  emails and attaches the event (ical.c).  When a write changes the
 *	  event, SEQUENCE goes up and a notice goes out at once: the invitation
 *	  (or its update) while the row calls for it, a cancellation when it no
 *	  longer does (condition, "when", address, DELETE) and an invitation had
 *	  been sent.  Notices have keys <row prefix><recipient>:i<sequence>.
 * ----------------------------------------------------------------
 */

static SPIPlanPtr invite_get_plan = NULL;
static SPIPlanPtr invite_put_plan = NULL;
static SPIPlanPtr invite_supersede_plan = NULL;
static SPIPlanPtr invite_last_sent_plan = NULL;

static bool
invite_notice_key(const char *key)
{
	const char *last = strrchr(key, ':');

	return last && last[1] == 'i' && last[2] >= '0' && last[2] <= '9';
}

/* A point in time as iCalendar writes it in UTC: 20251205T130000Z */
static char *
ical_utc(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return psprintf("%04d%02d%02dT%02d%02d%02dZ", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
push_text(JsonbParseState **st, const char *key, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
		return;
	jsonb_push_key(st, key);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
add_invite_note(RuleRun *run, RuleRecipient *r, const char *row_key, Jsonb *invite,
				const char *channel, Jsonb *rcpt, const char *template)
{
	MemoryContext old = MemoryContextSwitchTo(run->batch_cxt);
	InviteNote *n = palloc0(sizeof(InviteNote));
	Jsonb	   *row = eval_data(run, run->data_new);

	n->row_key = pstrdup(row_key);
	n->recipient = r->index;
	n->invite = invite ? DatumGetJsonbPCopy(JsonbPGetDatum(invite)) : NULL;
	n->channel = channel ? pstrdup(channel) : NULL;
	n->rcpt = rcpt ? DatumGetJsonbPCopy(JsonbPGetDatum(rcpt)) : NULL;
	n->template = template ? pstrdup(template) : NULL;
	n->row = DatumGetJsonbPCopy(JsonbPGetDatum(row));
	run->invites = lappend(run->invites, n);
	MemoryContextSwitchTo(old);
}

/*
 * The event the row calls for, for recipient r, who is to get messages on
 * a channel whose kind sends invites (email).
 */
static void
invite_note(RuleRun *run, RuleRecipient *r, const char *row_key, const char *channel,
			Jsonb *rcpt, const char *template)
{
	RuleInvite *inv = r->invite;
	CompiledRule *rule = run->rule;
	JsonbParseState *st = NULL;
	TimestampTz start;
	TimestampTz end;
	bool		isnull;
	Datum		d;
	char	   *summary;

	d = eval(run, inv->start, &isnull);
	if (isnull || !local_time(rule, exprType(list_nth(rule->exprs, inv->start)), d, &start))
		return;					/* no start: no event, as if not called for */
	if (inv->end >= 0)
	{
		d = eval(run, inv->end, &isnull);
		if (isnull || !local_time(rule, exprType(list_nth(rule->exprs, inv->end)), d, &end))
			end = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														  TimestampTzGetDatum(start),
														  IntervalPGetDatum(&inv->duration)));
	}
	else
		end = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													  TimestampTzGetDatum(start),
													  IntervalPGetDatum(&inv->duration)));
	if (end <= start)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the invite of recipients[%d] ends before it starts", r->index),
				 errdetail("It starts at %s and ends at %s.",
						   pstrdup(timestamptz_to_str(start)), pstrdup(timestamptz_to_str(end))),
				 errhint("An event must end after it starts; leave \"end\" NULL for \"duration\".")));
	summary = eval_text(run, &inv->summary);
	if (summary == NULL || *summary == '\0')
		return;					/* nothing to call it: no event */

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_text(&st, "start", ical_utc(start));
	push_text(&st, "end", ical_utc(end));
	push_text(&st, "summary", summary);
	push_text(&st, "location", eval_text(run, &inv->location));
	push_text(&st, "description", eval_text(run, &inv->description));
	push_text(&st, "organizer", inv->organizer);
	add_invite_note(run, r, row_key,
					JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL)),
					channel, rcpt, inv->template ? inv->template : template);
	run->invite_seen = bms_add_member(run->invite_seen, r->index);
}

/* The invite recipients the current row did not call for: none now. */
static void
invites_gone(RuleRun *run, const char *row_key)
{
	ListCell   *lc;

	foreach(lc, run->rule->recipients)
	{
		RuleRecipient *r = lfirst(lc);

		if (r->invite && !bms_is_member(r->index, run->invite_seen))
			add_invite_note(run, r, row_key, NULL, NULL, NULL, NULL);
	}
}

static char *
priority_name(int16 p)
{
	return p > 0 ? "high" : p < 0 ? "low" : "normal";
}

/* One notice: the invitation, its update, or its cancellation. */
static void
schedule_notice(RuleRun *run, InviteNote *n, const char *prefix, int sequence, bool cancelled,
				Jsonb *invite, const char *channel, Jsonb *rcpt, const char *template)
{
	ScheduleRequest req = {0};
	JsonbParseState *st = NULL;
	JsonbValue	v;
	Jsonb	   *notice;

	/* {"invite": {... "method": ..., "sequence": ...}} || {"row": ...} */
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_text(&st, "method", cancelled ? "CANCEL" : "REQUEST");
	jsonb_push_key(&st, "sequence");
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(sequence);
	pushJsonbValue(&st, WJB_VALUE, &v);
	jsonb_push_key(&st, "cancelled");
	v.type = jbvBool;
	v.val.boolean = cancelled;
	pushJsonbValue(&st, WJB_VALUE, &v);
	notice = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
	notice = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(invite),
												JsonbPGetDatum(notice)));
	st = NULL;
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	jsonb_push_key(&st, "invite");
	v.type = jbvBinary;
	v.val.binary.data = &notice->root;
	v.val.binary.len = VARSIZE(notice) - VARHDRSZ;
	pushJsonbValue(&st, WJB_VALUE, &v);
	notice = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));

	req.channel = channel;
	req.recipient = rcpt;
	req.template_name = template;
	req.due_at = GetCurrentTimestamp();
	req.data = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(n->row),
												  JsonbPGetDatum(notice)));
	req.idempotency_key = psprintf("%s%d:i%d", prefix, n->recipient, sequence);
	req.rule_id = run->rule->id;
	req.source_table = run->rule->source_table;
	req.source_key = n->row_key;
	req.priority = priority_name(run->rule->priority);
	req.category = run->rule->category;
	(void) schedule_message(&req);
	wakeup_at_commit(req.due_at);
}

/*
 * Bring reminder.invite up to date with what the batch's rows call for, and
 * send the notices the changes need.  SPI is connected.
 */
static void
flush_invites(RuleRun *run)
{
	ListCell   *lc;

	if (invite_get_plan == NULL)
	{
		Oid			t3[3] = {INT8OID, TEXTOID, INT4OID};
		Oid			t6[6] = {INT8OID, TEXTOID, INT4OID, JSONBOID, INT4OID, BOOLOID};
		Oid			t4[4] = {INT8OID, TEXTOID, TEXTOID, TEXTOID};

		invite_get_plan = spi_prepare_kept("SELECT invite, sequence, cancelled, sent_sequence IS NOT NULL "
										   "FROM reminder.invite "
										   "WHERE rule_id = $1 AND source_key = $2 AND recipient = $3 FOR UPDATE",
										   3, t3, 0);
		invite_put_plan = spi_prepare_kept("INSERT INTO reminder.invite AS i "
										   "  (rule_id, source_key, recipient, invite, sequence, cancelled) "
										   "VALUES ($1, $2, $3, $4, $5, $6) "
										   "ON CONFLICT (rule_id, source_key, recipient) DO UPDATE SET "
										   "  invite = excluded.invite, "
										   "  sequence = excluded.sequence, cancelled = excluded.cancelled, "
										   "  updated_at = now()",
										   6, t6, 0);
		/* pending notices of the recipient: keys <prefix><recipient>:i... */
		invite_supersede_plan = spi_prepare_kept("UPDATE reminder.message SET status = 'cancelled', "
												 "next_attempt_at = NULL, last_error = $4, updated_at = now() "
												 "WHERE idempotency_key >= $2 AND idempotency_key < $3 "
												 "AND rule_id = $1 AND status IN ('scheduled', 'retrying')",
												 4, t4, 0);
		invite_last_sent_plan = spi_prepare_kept("SELECT channel, recipient, template FROM reminder.messages "
												 "WHERE idempotency_key >= $2 AND idempotency_key < $3 "
												 "AND rule_id = $1 AND status = 'sent' "
												 "ORDER BY sent_at DESC LIMIT 1",
												 3, t4, 0);
	}

	foreach(lc, run->invites)
	{
		InviteNote *n = lfirst(lc);
		char	   *prefix = rule_key_prefix(run->rule->id, n->row_key);
		Datum		values[6];
		bool		isnull;
		bool		exists;
		bool		was_cancelled = false;
		bool		was_sent = false;
		int			sequence = 0;
		Jsonb	   *was = NULL;
		bool		cancel;
		RuleRecipient *r = list_nth(run->rule->recipients, n->recipient);

		values[0] = Int64GetDatum(run->rule->id);
		values[1] = CStringGetTextDatum(n->row_key);
		values[2] = Int32GetDatum(n->recipient);
		spi_plan_expect(invite_get_plan, values, NULL, false, 1, SPI_OK_SELECT);
		exists = SPI_processed > 0;
		if (exists)
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;

			was = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 1, &isnull));
			sequence = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
			was_cancelled = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
			was_sent = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		}

		if (n->invite == NULL)
		{
			/* the row calls for no event (any more) */
			if (!exists || was_cancelled)
				continue;
			cancel = true;
			sequence++;
		}
		else if (!exists)
			cancel = false;
		else if (was_cancelled ||
				 DatumGetInt32(DirectFunctionCall2(jsonb_cmp, JsonbPGetDatum(was),
												   JsonbPGetDatum(n->invite))) != 0)
		{
			cancel = false;
			sequence++;
		}
		else
			continue;			/* the same event: nothing to tell */

		/* a cancelled event keeps what it was: the cancellation names it */
		values[3] = JsonbPGetDatum(n->invite ? n->invite : was);
		values[4] = Int32GetDatum(sequence);
		values[5] = BoolGetDatum(cancel);
		spi_plan_expect(invite_put_plan, values, NULL, false, 0, SPI_OK_INSERT);

		/* a notice not yet sent is replaced by the new one */
		values[1] = CStringGetTextDatum(psprintf("%s%d:i", prefix, n->recipient));
		values[2] = CStringGetTextDatum(psprintf("%s%d:j", prefix, n->recipient));
		values[3] = CStringGetTextDatum(psprintf("invite: superseded by sequence %d", sequence));
		spi_plan_expect(invite_supersede_plan, values, NULL, false, 0, SPI_OK_UPDATE);

		if (!cancel)
		{
			Jsonb	   *ends = n->invite;
			char	   *end = jsonb_get_text(ends, "end");

			/* an event that is over needs no invitation */
			if (end && strcmp(end, ical_utc(GetCurrentTimestamp())) < 0)
				continue;
			schedule_notice(run, n, prefix, sequence, false, n->invite, n->channel, n->rcpt,
							n->template);
		}
		else if (was_sent)
		{
			/* to where the invitation went */
			char	   *channel;
			Jsonb	   *rcpt;
			char	   *template;

			values[1] = CStringGetTextDatum(psprintf("%s%d:", prefix, n->recipient));
			values[2] = CStringGetTextDatum(psprintf("%s%d;", prefix, n->recipient));
			spi_plan_expect(invite_last_sent_plan, values, NULL, false, 1, SPI_OK_SELECT);
			if (SPI_processed == 0)
				continue;
			channel = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			rcpt = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			template = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
			if (r->invite->cancel_template)
				template = r->invite->cancel_template;
			else if (r->invite->template)
				template = r->invite->template;
			schedule_notice(run, n, prefix, sequence, true, was, channel, rcpt, template);
		}
	}
}

/*
 * TRUNCATE: the rows' events are gone without a notice (there are no rows
 * to tell about), but a row written again with the same key must get a new
 * invitation with a higher SEQUENCE, which calendars do not ignore.
 */
static void
invites_truncated(CompiledRule *rule)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(rule->id)};
	ListCell   *lc;
	bool		any = false;

	foreach(lc, rule->recipients)
		any |= ((RuleRecipient *) lfirst(lc))->invite != NULL;
	if (!any)
		return;
	SPI_connect();
	spi_exec_expect("UPDATE reminder.invite SET cancelled = true, sequence = sequence + 1, "
					"updated_at = now() WHERE rule_id = $1 AND NOT cancelled",
					1, types, values, NULL, false, 0, SPI_OK_UPDATE);
	SPI_finish();
}
