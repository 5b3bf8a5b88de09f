/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The outbox seen from the worker: claiming due messages and writing
 *	  what became of them.  Both run inside short transactions the worker
 *	  opens (worker.c); neither ever waits on the network.  What is made of
 *	  a claimed message, and what its outcome means for it, delivery.c
 *	  decides; here only rows are claimed and written.
 *
 *	  Claim: one UPDATE of the rows a SELECT ... FOR UPDATE SKIP LOCKED
 *	  picked: by priority, then round robin between channels, then in due
 *	  order (see claim_sql), marks them sending, counts the attempt and sets
 *	  the lease; an UPDATE that changes no indexed column, so it can be HOT.
 *	  Each claimed message then goes through the gate, the channel and the
 *	  renderer (delivery.c); the messages the gate held back are written
 *	  back before the claim commits (queue_claim_end).
 *
 *	  Record: one UPDATE ... FROM unnest(arrays) for all outcomes of a
 *	  batch, one INSERT of attempt rows, one INSERT into reminder.log for
 *	  the log channel; fallback messages for those that failed for good
 *	  (queue_fallback, which delivery.c calls first).
 *	  The UPDATE only touches rows still in the claim it answers (status
 *	  sending, same attempt number), so a late answer never overwrites a
 *	  message another pass has since reclaimed.
 *
 *	  Plans are prepared once and kept (SPI_keepplan), and made and run
 *	  with the planner told to walk the indexes (plan_guard_begin), so that
 *	  they stay right whatever the statistics of the outbox.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"


#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "outbox/outbox.h"
#include "render/render.h"
#include "transport/transport.h"
#include "util/spi_util.h"
#include "util/util.h"
#include "worker/worker.h"

static SPIPlanPtr channels_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr claim_channel_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;
static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr attempt_plan = NULL;
static SPIPlanPtr log_plan = NULL;
static SPIPlanPtr fallback_of_plan = NULL;
static SPIPlanPtr segments_plan = NULL;
static SPIPlanPtr release_plan = NULL;
static SPIPlanPtr renew_plan = NULL;

/*
 * Rate-limited channels, kept across claims.  Their token buckets are in
 * shared memory (limits.c), one per channel for all the senders of the
 * database.  A bucket holds at most a tenth of a second's worth of
 * messages (at least one), so a channel limited to 5/s sends one message
 * every 200 ms, not five at once.
 */
typedef struct Bucket
{
	char	   *channel;
	double		rate;			/* messages per second */
	bool		backlog;		/* the last claim took all it could */
	bool		busy;			/* the worker holds enough of its messages */
	bool		seen;
} Bucket;

static List *buckets = NIL;		/* of Bucket *, in TopMemoryContext */

/*
 * Whether the extension is installed in this database, and at the version
 * this library was built for: the claim and record statements are written
 * for that version's tables.  *installed gets the installed version, if any.
 */
ExtensionState
queue_extension_state(char **installed)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	ExtensionState state = EXTENSION_ABSENT;

	*installed = NULL;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(REMINDER_EXTENSION));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		*installed = isnull ? pstrdup("") : TextDatumGetCString(d);
		state = strcmp(*installed, REMINDER_VERSION) == 0 ?
			EXTENSION_CURRENT : EXTENSION_OTHER_VERSION;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return state;
}

/* ----------------------------------------------------------------
 * Arrays for unnest()
 * ----------------------------------------------------------------
 */

typedef struct Column
{
	Oid			type;
	ArrayBuildState *state;
} Column;

static void
col_init(Column *c, Oid type)
{
	c->type = type;
	c->state = initArrayResult(type, CurrentMemoryContext, false);
}

static void
col_add(Column *c, Datum value, bool isnull)
{
	accumArrayResult(c->state, value, isnull, c->type, CurrentMemoryContext);
}

static void
col_add_text(Column *c, const char *s)
{
	col_add(c, s ? CStringGetTextDatum(s) : (Datum) 0, s == NULL);
}

static Datum
col_done(Column *c)
{
	return makeArrayResult(c->state, CurrentMemoryContext);
}

/* ----------------------------------------------------------------
 * Claim
 * ----------------------------------------------------------------
 */

static Bucket *
find_bucket(const char *channel)
{
	ListCell   *lc;

	foreach(lc, buckets)
	{
		Bucket	   *b = lfirst(lc);

		if (strcmp(b->channel, channel) == 0)
			return b;
	}
	return NULL;
}

/*
 * Channels of messages still to be sent that are not in reminder.channel
 * (deleted behind drop_channel()'s back): a walk over the distinct
 * channels of message_due_idx, one probe each, now and then.
 */
#define ORPHAN_CHECK_MS		5000
static List *orphans = NIL;		/* in TopMemoryContext */
static TimestampTz orphans_checked_at = 0;
static SPIPlanPtr orphans_plan = NULL;

static void execute_guarded(SPIPlanPtr plan, Datum *values, bool read_only, long count,
							int expect);

static void
find_orphans(void)
{
	MemoryContext old;

	if (orphans_plan == NULL)
		orphans_plan = spi_prepare_kept("WITH RECURSIVE ch(c) AS ("
										" SELECT min(channel) FROM reminder.message WHERE next_attempt_at IS NOT NULL "
										" UNION ALL "
										" SELECT (SELECT min(m.channel) FROM reminder.message m "
										"          WHERE m.next_attempt_at IS NOT NULL AND m.channel > ch.c) "
										"   FROM ch WHERE ch.c IS NOT NULL) "
										"SELECT c FROM ch WHERE c IS NOT NULL "
										"AND NOT EXISTS (SELECT FROM reminder.channel WHERE name = ch.c)",
										0, NULL, CURSOR_OPT_GENERIC_PLAN);
	execute_guarded(orphans_plan, NULL, true, 0, SPI_OK_SELECT);
	list_free_deep(orphans);
	orphans = NIL;
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (uint64 i = 0; i < SPI_processed; i++)
		orphans = lappend(orphans, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	MemoryContextSwitchTo(old);
}

/* Whether name is in a list of channel names. */
static bool
name_listed(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
}

/*
 * The lowest priority the claim takes of a channel: of a busy one, only
 * what goes before the messages of it the worker holds already.
 */
static int
busy_floor(List *busy, const char *name)
{
	ListCell   *lc;

	foreach(lc, busy)
	{
		BusyChannel *b = lfirst(lc);

		if (strcmp(b->channel, name) == 0)
			return b->top_priority + 1;
	}
	return PRIORITY_LOW;
}

/*
 * Read the channels.  Those this version can deliver go to *all (for the
 * next due time); of those, the ones without a rate limit go to *fair, for
 * the fair claim, with the lowest priority to take of each in *floors (of
 * busy ones, whose messages the worker already holds enough of, only
 * higher priorities, or none).  Note the rate-limited channels in
 * buckets.
 */
static void
load_channels(TimestampTz now, List *busy, List **all, List **fair, List **floors)
{
	ListCell   *lc;
	MemoryContext cxt = CurrentMemoryContext;

	*all = *fair = *floors = NIL;
	if (channels_plan == NULL)
		channels_plan = spi_prepare_kept("SELECT c.name, c.kind, "
									 "coalesce((c.settings->>'rate_limit')::float8, 0), "
									 "c.xmin::text || '/' || coalesce(s.xmin::text, '') "
									 "FROM reminder.channel c "
									 "LEFT JOIN reminder.channel_secret s ON s.channel = c.name",
									 0, NULL, 0);
	spi_plan_expect(channels_plan, NULL, NULL, true, 0, SPI_OK_SELECT);

	foreach(lc, buckets)
		((Bucket *) lfirst(lc))->seen = false;
	channel_cache_begin_listing();

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
		char	   *kind = SPI_getvalue(tup, desc, 2);
		double		rate = DatumGetFloat8(SPI_getbinval(tup, desc, 3, &isnull));
		ChannelKind k;
		MemoryContext old;

		channel_cache_listed(name, SPI_getvalue(tup, desc, 4));
		if (!channel_kind_from_name(kind, &k) || transport_for_kind(k) == NULL)
			continue;

		old = MemoryContextSwitchTo(cxt);
		*all = lappend(*all, name);
		if (rate <= 0 && busy_floor(busy, name) <= PRIORITY_HIGH)
		{
			*fair = lappend(*fair, name);
			*floors = lappend_int(*floors, busy_floor(busy, name));
		}
		MemoryContextSwitchTo(old);

		if (rate > 0)
		{
			Bucket	   *b = find_bucket(name);

			if (b == NULL)
			{
				old = MemoryContextSwitchTo(TopMemoryContext);
				b = palloc0(sizeof(Bucket));
				b->channel = pstrdup(name);
				buckets = lappend(buckets, b);
				MemoryContextSwitchTo(old);
			}
			b->rate = rate;
			b->seen = true;
			b->busy = busy_floor(busy, name) > PRIORITY_LOW;
		}
	}

	channel_cache_end_listing();

	/* messages of channels that no longer exist: claimed, to fail clearly */
	if (now >= orphans_checked_at + ORPHAN_CHECK_MS * INT64CONST(1000))
	{
		find_orphans();
		orphans_checked_at = now;
	}
	foreach(lc, orphans)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		*fair = lappend(*fair, pstrdup(lfirst(lc)));
		*floors = lappend_int(*floors, PRIORITY_LOW);
		MemoryContextSwitchTo(old);
	}

	/* forget buckets of channels no longer limited */
	foreach(lc, buckets)
	{
		Bucket	   *b = lfirst(lc);

		if (!b->seen)
		{
			buckets = foreach_delete_current(buckets, lc);
			pfree(b->channel);
			pfree(b);
		}
	}
}

/*
 * Planner settings for the worker's own statements over the outbox.  Their
 * plans are prepared once and kept, and must walk the indexes whatever the
 * statistics say: a plan made on an empty outbox (a fresh install, a bulk
 * load not yet analysed) would otherwise scan and sort the whole table on
 * every claim.  Set for the statement only, in a GUC nest level undone at
 * once (an error undoes it with the transaction).
 */
static int
plan_guard_begin(void)
{
	static const char *const off[] = {
		"enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"
	};
	int			level = NewGUCNestLevel();

	for (int i = 0; i < lengthof(off); i++)
		(void) set_config_option(off[i], "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	return level;
}

static void
plan_guard_end(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * SPI_execute_plan under plan_guard, whose result code must be expect.
 * An error leaves the guard to the transaction's abort.
 */
static void
execute_guarded(SPIPlanPtr plan, Datum *values, bool read_only, long count, int expect)
{
	int			level = plan_guard_begin();

	spi_plan_expect(plan, values, NULL, read_only, count, expect);
	plan_guard_end(level);
}

/*
 * The claim.  Messages of three priorities (1 high, 0 normal, -1 low), of
 * many channels: each (channel, priority) is one range of message_due_idx,
 * read in due order as far as share ($4), so that a channel with a large
 * backlog cannot crowd out another, nor future messages of one priority
 * the due ones of the next.  Of those candidates, the claim takes the
 * highest priority first, then round robin between channels (rank), then
 * the oldest.  A candidate is due (scheduled or retrying) or was claimed
 * by a worker whose lease ran out; rows a live worker holds are skipped.
 * Rows are locked with SKIP LOCKED so concurrent claims never wait on each
 * other.  The UPDATE changes no indexed column, so that it can be HOT.
 * $1 limit, $2 lease in seconds, $3 channels, $4 share per channel and
 * priority.
 */
#define CLAIM_RETURNING \
	"RETURNING m.id, m.channel, m.recipient, m.template, m.data, m.attempts, " \
	"m.idempotency_key, m.due_at, m.rule_id, m.source_key, m.fallback_of IS NOT NULL, " \
	"m.fallback, m.priority, m.category"

#define CLAIM_CANDIDATES \
	"SELECT x.id, p.prio, x.next_attempt_at, " \
	"       row_number() OVER (PARTITION BY c.name, p.prio ORDER BY x.next_attempt_at) AS rank " \
	"  FROM unnest($3::text[], $5::int4[]) AS c(name, floor) " \
	"  CROSS JOIN (VALUES (1::int2), (0::int2), (-1::int2)) AS p(prio) " \
	"  CROSS JOIN LATERAL (" \
	"       SELECT m.id, m.next_attempt_at FROM reminder.message m " \
	"        WHERE m.channel = c.name AND m.priority = p.prio AND p.prio >= c.floor " \
	"          AND m.next_attempt_at <= now() " \
	"          AND (m.status IN ('scheduled', 'retrying') " \
	"               OR (m.status = 'sending' AND m.lease_until < now())) " \
	"        ORDER BY m.next_attempt_at LIMIT $4 FOR UPDATE OF m SKIP LOCKED) x"

static const char *claim_sql =
"WITH cand AS (" CLAIM_CANDIDATES "), "
"pick AS (SELECT id FROM cand ORDER BY prio DESC, rank, next_attempt_at LIMIT $1) "
"UPDATE reminder.message m "
"SET status = 'sending', attempts = m.attempts + 1, "
"lease_until = now() + pg_catalog.make_interval(secs => $2), updated_at = now() "
"WHERE m.id = ANY (ARRAY(SELECT id FROM pick)) "
CLAIM_RETURNING;

/*
 * How many channels had due messages at the last claim: the share of each
 * is the limit divided by that, so that the claim locks about as many rows
 * as it takes.
 */
static int	active_channels = 1;

/*
 * Claim up to limit messages of the given channels, fairly, of each no
 * lower priority than its floor.
 */
static uint64
claim_fair(int limit, List *channels, List *floors)
{
	Datum		values[5];
	ListCell   *lc;
	Column		names;
	Column		lows;
	int			share;

	if (channels == NIL || limit <= 0)
		return 0;
	Assert(list_length(floors) == list_length(channels));
	if (claim_plan == NULL)
	{
		Oid			argtypes[5] = {INT4OID, INT4OID, TEXTARRAYOID, INT4OID, INT4ARRAYOID};

		claim_plan = spi_prepare_kept(claim_sql, 5, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	col_init(&names, TEXTOID);
	foreach(lc, channels)
		col_add_text(&names, lfirst(lc));
	col_init(&lows, INT4OID);
	foreach(lc, floors)
		col_add(&lows, Int32GetDatum(lfirst_int(lc)), false);
	share = (limit + Min(active_channels, list_length(channels)) - 1) /
		Max(1, Min(active_channels, list_length(channels)));
	values[0] = Int32GetDatum(limit);
	values[1] = Int32GetDatum(reminder_lease_timeout);
	values[2] = col_done(&names);
	values[3] = Int32GetDatum(Max(share, 1));
	values[4] = col_done(&lows);
	execute_guarded(claim_plan, values, false, 0, SPI_OK_UPDATE_RETURNING);
	return SPI_processed;
}

/* Claim up to limit messages of one (rate-limited) channel, by priority. */
static uint64
claim_channel(int limit, const char *channel)
{
	Datum		values[5];
	Column		names;
	Column		lows;

	if (claim_channel_plan == NULL)
	{
		Oid			argtypes[5] = {INT4OID, INT4OID, TEXTARRAYOID, INT4OID, INT4ARRAYOID};

		claim_channel_plan = spi_prepare_kept(claim_sql, 5, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	col_init(&names, TEXTOID);
	col_add_text(&names, channel);
	col_init(&lows, INT4OID);
	col_add(&lows, Int32GetDatum(PRIORITY_LOW), false);
	values[0] = Int32GetDatum(limit);
	values[1] = Int32GetDatum(reminder_lease_timeout);
	values[2] = col_done(&names);
	values[3] = Int32GetDatum(limit);
	values[4] = col_done(&lows);
	execute_guarded(claim_channel_plan, values, false, 0, SPI_OK_UPDATE_RETURNING);
	return SPI_processed;
}

/*
 * When the next message of these channels falls due: the first future
 * entry of each (channel, priority) range of message_due_idx.
 */
static TimestampTz
next_due(List *channels)
{
	Datum		values[1];
	Column		names;
	ListCell   *lc;
	bool		isnull;
	Datum		next;

	if (channels == NIL)
		return DT_NOEND;
	if (next_due_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTARRAYOID};

		next_due_plan = spi_prepare_kept("SELECT min(x.next_attempt_at) "
										 "FROM unnest($1::text[]) AS c(name) "
										 "CROSS JOIN (VALUES (1::int2), (0::int2), (-1::int2)) AS p(prio) "
										 "CROSS JOIN LATERAL ("
										 "  SELECT m.next_attempt_at FROM reminder.message m "
										 "   WHERE m.channel = c.name AND m.priority = p.prio "
										 "     AND m.next_attempt_at > now() "
										 "   ORDER BY m.next_attempt_at LIMIT 1) x",
										 1, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	col_init(&names, TEXTOID);
	foreach(lc, channels)
		col_add_text(&names, lfirst(lc));
	values[0] = col_done(&names);
	execute_guarded(next_due_plan, values, true, 1, SPI_OK_SELECT);
	next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? DT_NOEND : DatumGetTimestampTz(next);
}

/* Copy the claimed rows of the last SPI result out of SPI's memory. */
static List *
claimed_rows(List *rows, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		ClaimedMessage *m = palloc0(sizeof(ClaimedMessage));
		bool		isnull;
		Datum		d;

		m->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		m->channel = SPI_getvalue(tup, desc, 2);
		m->recipient = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
		m->template_name = SPI_getvalue(tup, desc, 4);
		m->data = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 5, &isnull));
		m->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		m->idempotency_key = SPI_getvalue(tup, desc, 7);
		m->due_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 8, &isnull));
		d = SPI_getbinval(tup, desc, 9, &isnull);
		m->rule_id = isnull ? 0 : DatumGetInt64(d);
		m->source_key = SPI_getvalue(tup, desc, 10);
		m->is_fallback = DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull));
		m->fallback = SPI_getvalue(tup, desc, 12);
		m->priority = DatumGetInt16(SPI_getbinval(tup, desc, 13, &isnull));
		m->category = SPI_getvalue(tup, desc, 14);
		rows = lappend(rows, m);
	}
	MemoryContextSwitchTo(old);
	return rows;
}

/* Verdicts written back inside the claim transaction. */
typedef struct Verdicts
{
	int			n;
	Column		id,
				attempt,
				status,
				next_at,
				sent_at,
				error,
				provider_id,
				uncount;
} Verdicts;

static void
verdicts_init(Verdicts *v)
{
	v->n = 0;
	col_init(&v->id, INT8OID);
	col_init(&v->attempt, INT4OID);
	col_init(&v->status, TEXTOID);
	col_init(&v->next_at, TIMESTAMPTZOID);
	col_init(&v->sent_at, TIMESTAMPTZOID);
	col_init(&v->error, TEXTOID);
	col_init(&v->provider_id, TEXTOID);
	col_init(&v->uncount, INT4OID);
}

static void
verdicts_add(Verdicts *v, int64 id, int attempt, const char *status,
			 TimestampTz next_at, TimestampTz sent_at, const char *error,
			 const char *provider_id, bool uncount)
{
	v->n++;
	col_add(&v->id, Int64GetDatum(id), false);
	col_add(&v->attempt, Int32GetDatum(attempt), false);
	col_add_text(&v->status, status);
	col_add(&v->next_at, TimestampTzGetDatum(next_at), next_at == 0);
	col_add(&v->sent_at, TimestampTzGetDatum(sent_at), sent_at == 0);
	col_add_text(&v->error, error);
	col_add_text(&v->provider_id, provider_id);
	col_add(&v->uncount, Int32GetDatum(uncount ? 1 : 0), false);
}

static void
verdicts_apply(Verdicts *v)
{
	Datum		values[8];

	if (v->n == 0)
		return;
	if (update_plan == NULL)
	{
		Oid			argtypes[8] = {INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
			TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		INT4ARRAYOID};

		/*
		 * One generic plan: a nested loop over the arrays probing the
		 * primary key.  A finished message leaves message_due_idx
		 * (next_attempt_at NULL).
		 */
		update_plan = spi_prepare_kept("UPDATE reminder.message m "
										"SET status = u.status, "
										"attempts = m.attempts - u.uncount, "
										"next_attempt_at = CASE WHEN u.status IN ('scheduled', 'retrying') "
										"THEN coalesce(u.next_at, m.next_attempt_at) END, "
										"sent_at = coalesce(u.sent_at, m.sent_at), "
										"lease_until = NULL, "
										"last_error = u.error, "
										"provider_message_id = coalesce(u.provider_id, m.provider_message_id), "
										"updated_at = now() "
										"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) "
										"AS u(id, attempt, status, next_at, sent_at, error, provider_id, uncount) "
										"WHERE m.id = u.id AND m.status = 'sending' AND m.attempts = u.attempt",
										8, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	values[0] = col_done(&v->id);
	values[1] = col_done(&v->attempt);
	values[2] = col_done(&v->status);
	values[3] = col_done(&v->next_at);
	values[4] = col_done(&v->sent_at);
	values[5] = col_done(&v->error);
	values[6] = col_done(&v->provider_id);
	values[7] = col_done(&v->uncount);
	execute_guarded(update_plan, values, false, 0, SPI_OK_UPDATE);
}

/*
 * Claim up to limit due messages, of rate-limited channels no more than
 * paced_limit (transfer slots free now: their tokens are spent on messages
 * that go out at once), and none of the busy channels (the worker holds
 * enough of their messages already).  Returns the claimed rows, as
 * ClaimedMessage *, for the worker to prepare (delivery.c); then
 * queue_claim_end() finishes the claim.  Runs inside a transaction with SPI
 * connected.
 */
List *
queue_claim(int limit, int paced_limit, List *busy, ClaimResult *result)
{
	TimestampTz now = GetCurrentTimestamp();
	List	   *all;
	List	   *fair;
	List	   *floors;
	List	   *rows = NIL;
	List	   *seen = NIL;
	ListCell   *lc;
	int			remaining = limit;

	result->claimed = 0;
	result->more = false;
	result->next_due = DT_NOEND;
	result->next_token = DT_NOEND;

	load_channels(now, busy, &all, &fair, &floors);
	result->channels = all;

	/* channels without a rate limit, fairly */
	if (claim_fair(remaining, fair, floors) > 0)
		rows = claimed_rows(rows, CurrentMemoryContext);
	remaining -= list_length(rows);
	result->more = (remaining == 0);
	foreach(lc, rows)
	{
		ClaimedMessage *m = lfirst(lc);

		if (!name_listed(seen, m->channel))
			seen = lappend(seen, m->channel);
	}
	active_channels = Max(1, list_length(seen));

	/*
	 * rate-limited channels, as far as their tokens go: taken from the
	 * shared bucket before the claim, those not used given back after it
	 */
	foreach(lc, buckets)
	{
		Bucket	   *b = lfirst(lc);
		int			cap = b->busy ? 0 : Min(remaining, paced_limit);
		double		left;
		int			want = limits_bucket_take(b->channel, b->rate, now, cap, &left);
		uint64		got = 0;

		if (want > 0)
		{
			got = claim_channel(want, b->channel);
			if (got > 0)
				rows = claimed_rows(rows, CurrentMemoryContext);
			remaining -= got;
			paced_limit -= got;
			limits_bucket_give_back(b->channel, b->rate, want - (int) got);
		}
		/* it may have more waiting: look again once a token is back */
		b->backlog = (want == 0 || got == want);
		if (b->backlog && !b->busy)
		{
			TimestampTz at = now +
				(TimestampTz) ((1.0 - Min(left, 1.0)) / b->rate * 1000000.0);

			result->next_token = Min(result->next_token, at);
		}
	}

	result->claimed = list_length(rows);
	return rows;
}

/*
 * Finish the claim: write back what the gate held back (held, of
 * HeldMessage *: deferred, suppressed or cancelled, the attempt not
 * counted), then find when the next message falls due.  Inside the claim's
 * transaction, after queue_claim().
 */
void
queue_claim_end(List *held, ClaimResult *result)
{
	Verdicts	verdicts;
	ListCell   *lc;

	verdicts_init(&verdicts);
	foreach(lc, held)
	{
		HeldMessage *h = lfirst(lc);

		verdicts_add(&verdicts, h->id, h->attempt, h->status, h->until, 0,
					 h->reason, NULL, true);
	}
	verdicts_apply(&verdicts);

	/* when the next message falls due, to sleep until then at most */
	if (result->more)
		return;					/* the worker claims again at once */
	result->next_due = next_due(result->channels);
}

/*
 * Give back claimed messages whose transfer never started (the worker is
 * stopping): they are due again at once, the attempt not counted, rather
 * than waiting for their lease.  Runs inside a transaction with SPI
 * connected.
 */
void
queue_release(dlist_head *unsent)
{
	dlist_iter	iter;
	Column		id,
				attempt;
	Datum		values[2];

	if (dlist_is_empty(unsent))
		return;
	if (release_plan == NULL)
	{
		Oid			argtypes[2] = {INT8ARRAYOID, INT4ARRAYOID};

		release_plan = spi_prepare_kept("UPDATE reminder.message m "
									"SET status = CASE WHEN m.attempts > 1 THEN 'retrying' ELSE 'scheduled' END, "
									"attempts = m.attempts - 1, lease_until = NULL, updated_at = now() "
									"FROM unnest($1, $2) AS u(id, attempt) "
									"WHERE m.id = u.id AND m.status = 'sending' AND m.attempts = u.attempt",
									2, argtypes, 0);
	}
	col_init(&id, INT8OID);
	col_init(&attempt, INT4OID);
	dlist_foreach(iter, unsent)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		col_add(&id, Int64GetDatum(d->message_id), false);
		col_add(&attempt, Int32GetDatum(d->attempt), false);
	}
	values[0] = col_done(&id);
	values[1] = col_done(&attempt);
	execute_guarded(release_plan, values, false, 0, SPI_OK_UPDATE);
}

/*
 * Extend the leases of messages this worker holds: claimed and waiting for
 * a transfer slot, or in flight.  Without this, a message held longer than
 * reminder.lease_timeout (a slow receiver, a long queue for one host) would
 * be claimed again, by this worker or another, and sent twice.  A row no
 * longer in this claim (status or attempt changed) is left alone.  Runs
 * inside a transaction with SPI connected; returns the new lease_until,
 * for the caller to note once that transaction committed.
 */
TimestampTz
queue_renew_leases(Delivery **ds, int n)
{
	Column		id,
				attempt;
	Datum		values[3];

	if (renew_plan == NULL)
	{
		Oid			argtypes[3] = {INT8ARRAYOID, INT4ARRAYOID, INT4OID};

		renew_plan = spi_prepare_kept("UPDATE reminder.message m "
									  "SET lease_until = now() + pg_catalog.make_interval(secs => $3) "
									  "FROM unnest($1, $2) AS u(id, attempt) "
									  "WHERE m.id = u.id AND m.status = 'sending' AND m.attempts = u.attempt",
									  3, argtypes, 0);
	}
	col_init(&id, INT8OID);
	col_init(&attempt, INT4OID);
	for (int i = 0; i < n; i++)
	{
		col_add(&id, Int64GetDatum(ds[i]->message_id), false);
		col_add(&attempt, Int32GetDatum(ds[i]->attempt), false);
	}
	values[0] = col_done(&id);
	values[1] = col_done(&attempt);
	values[2] = Int32GetDatum(reminder_lease_timeout);
	execute_guarded(renew_plan, values, false, 0, SPI_OK_UPDATE);
	return GetCurrentTransactionStartTimestamp() +
		(TimestampTz) reminder_lease_timeout * USECS_PER_SEC;
}

/* ----------------------------------------------------------------
 * Outcomes
 * ----------------------------------------------------------------
 */

static const char *
outcome_name(DeliveryOutcome o)
{
	switch (o)
	{
		case OUTCOME_SENT:
			return "sent";
		case OUTCOME_TRANSIENT:
			return "transient";
		case OUTCOME_PERMANENT:
			return "permanent";
	}
	return NULL;
}

static void
schedule_fallback_body(void *arg)
{
	Delivery   *d = arg;
	ScheduleRequest req = {0};
	int64		id;
	Datum		values[2];

	req.channel = d->fallback;
	req.recipient = d->recipient;
	req.template_name = d->template_name;
	req.due_at = GetCurrentTimestamp();
	req.data = d->data;
	req.category = d->category;	/* an unsubscribe from it covers the rule */
	req.idempotency_key = psprintf("%s:fallback", d->idempotency_key);
	req.priority = d->priority > 0 ? "high" : d->priority < 0 ? "low" : "normal";
	id = schedule_message(&req);

	if (fallback_of_plan == NULL)
	{
		Oid			argtypes[2] = {INT8OID, INT8OID};

		fallback_of_plan = spi_prepare_kept("UPDATE reminder.message SET fallback_of = $2 "
										"WHERE id = $1 AND fallback_of IS NULL",
										2, argtypes, 0);
	}
	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(d->message_id);
	spi_plan_expect(fallback_of_plan, values, NULL, false, 0, SPI_OK_UPDATE);
}

/*
 * Schedule the fallback of a message that failed for good (d->fallback),
 * in a subtransaction.  Returns NULL, or why there is none, to be added to
 * last_error.  Runs inside a transaction with SPI connected.
 */
char *
queue_fallback(Delivery *d)
{
	ErrorData  *edata = subxact_try(schedule_fallback_body, d);
	char	   *problem;

	if (edata == NULL)
		return NULL;
	problem = psprintf("no fallback to channel \"%s\": %s", d->fallback, edata->message);
	FreeErrorData(edata);
	return problem;
}

/*
 * Write the outcome (status, next attempt, last_error as delivery.c worded
 * it) and attempt row of every delivery in *done, and the log rows of the
 * log channel.  Runs inside a transaction with SPI connected; the caller
 * frees the deliveries after commit.
 */
void
queue_record(dlist_head *done)
{
	dlist_iter	iter;
	Verdicts	v;
	Column		a_id,
				a_attempt,
				a_started,
				a_ms,
				a_outcome,
				a_status,
				a_smtp,
				a_error,
				a_response;
	Column		l_id,
				l_channel,
				l_recipient,
				l_subject,
				l_body,
				l_html;
	int			nlog = 0;
	Column		s_id,
				s_segments;
	int			nsegments = 0;
	Datum		values[9];

	verdicts_init(&v);
	col_init(&a_id, INT8OID);
	col_init(&a_attempt, INT4OID);
	col_init(&a_started, TIMESTAMPTZOID);
	col_init(&a_ms, FLOAT8OID);
	col_init(&a_outcome, TEXTOID);
	col_init(&a_status, INT4OID);
	col_init(&a_smtp, TEXTOID);
	col_init(&a_error, TEXTOID);
	col_init(&a_response, TEXTOID);
	col_init(&l_id, INT8OID);
	col_init(&l_channel, TEXTOID);
	col_init(&l_recipient, JSONBOID);
	col_init(&l_subject, TEXTOID);
	col_init(&l_body, TEXTOID);
	col_init(&l_html, TEXTOID);
	col_init(&s_id, INT8OID);
	col_init(&s_segments, INT2OID);

	dlist_foreach(iter, done)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);
		char	   *error = valid_text(d->error, d->error ? strlen(d->error) : 0);

		verdicts_add(&v, d->message_id, d->attempt, d->status, d->next_attempt_at,
					 strcmp(d->status, "sent") == 0 ? d->finished_at : 0,
					 d->last_error, d->provider_id, false);

		col_add(&a_id, Int64GetDatum(d->message_id), false);
		col_add(&a_attempt, Int32GetDatum(d->attempt), false);
		col_add(&a_started, TimestampTzGetDatum(d->started_at), false);
		col_add(&a_ms, Float8GetDatum((d->finished_at - d->started_at) / 1000.0), false);
		col_add_text(&a_outcome, outcome_name(d->outcome));
		col_add(&a_status, Int32GetDatum((int32) d->http_status), d->http_status == 0);
		col_add_text(&a_smtp, d->smtp_reply);
		col_add_text(&a_error, error);
		col_add_text(&a_response, d->response_len > 0 ?
					 valid_text(d->response, d->response_len) : NULL);

		if (d->sms_segments > 0 && d->outcome == OUTCOME_SENT)
		{
			nsegments++;
			col_add(&s_id, Int64GetDatum(d->message_id), false);
			col_add(&s_segments, Int16GetDatum((int16) Min(d->sms_segments, PG_INT16_MAX)), false);
		}

		if (d->ops && d->ops->kind == CHANNEL_LOG && d->outcome == OUTCOME_SENT)
		{
			nlog++;
			col_add(&l_id, Int64GetDatum(d->message_id), false);
			col_add_text(&l_channel, d->channel);
			col_add(&l_recipient, JsonbPGetDatum(d->recipient), false);
			col_add_text(&l_subject, d->subject);
			col_add_text(&l_body, d->body);
			col_add_text(&l_html, d->html);
		}
	}

	verdicts_apply(&v);

	if (attempt_plan == NULL)
	{
		Oid			argtypes[9] = {INT8ARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID,
			FLOAT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID};

		/* skip messages deleted meanwhile (drop_channel cascade, purge) */
		attempt_plan = spi_prepare_kept("INSERT INTO reminder.attempt "
									"(message_id, attempt, started_at, duration, outcome, "
									" http_status, smtp_reply, error, response) "
									"SELECT u.id, u.attempt, u.started_at, "
									"u.ms * interval '1 millisecond', u.outcome, "
									"u.http_status, u.smtp_reply, u.error, u.response "
									"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9) "
									"AS u(id, attempt, started_at, ms, outcome, http_status, "
									"smtp_reply, error, response) "
									"WHERE EXISTS (SELECT FROM reminder.message m WHERE m.id = u.id)",
									9, argtypes, 0);
	}
	values[0] = col_done(&a_id);
	values[1] = col_done(&a_attempt);
	values[2] = col_done(&a_started);
	values[3] = col_done(&a_ms);
	values[4] = col_done(&a_outcome);
	values[5] = col_done(&a_status);
	values[6] = col_done(&a_smtp);
	values[7] = col_done(&a_error);
	values[8] = col_done(&a_response);
	execute_guarded(attempt_plan, values, false, 0, SPI_OK_INSERT);

	if (nlog > 0)
	{
		if (log_plan == NULL)
		{
			Oid			argtypes[6] = {INT8ARRAYOID, TEXTARRAYOID, JSONBARRAYOID,
			TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

			log_plan = spi_prepare_kept("INSERT INTO reminder.log "
									"(message_id, channel, recipient, subject, body, html) "
									"SELECT * FROM unnest($1, $2, $3, $4, $5, $6)",
									6, argtypes, 0);
		}
		values[0] = col_done(&l_id);
		values[1] = col_done(&l_channel);
		values[2] = col_done(&l_recipient);
		values[3] = col_done(&l_subject);
		values[4] = col_done(&l_body);
		values[5] = col_done(&l_html);
		spi_plan_expect(log_plan, values, NULL, false, 0, SPI_OK_INSERT);
	}

	if (nsegments > 0)
	{
		if (segments_plan == NULL)
		{
			Oid			argtypes[2] = {INT8ARRAYOID, INT2ARRAYOID};

			segments_plan = spi_prepare_kept("UPDATE reminder.message m SET sms_segments = u.n "
										 "FROM unnest($1, $2) AS u(id, n) WHERE m.id = u.id",
										 2, argtypes, 0);
		}
		values[0] = col_done(&s_id);
		values[1] = col_done(&s_segments);
		execute_guarded(segments_plan, values, false, 0, SPI_OK_UPDATE);
	}
}
