/*-------------------------------------------------------------------------
 *
 * delivery.c
 *	  A claimed message as the worker hands it to the transport, and what
 *	  becomes of it: the one place where deliveries are made and their
 *	  outcomes decided.
 *
 *	  Made: inside the claim transaction (worker.c opens it), the rows
 *	  queue.c claimed each go through gate_check(), the channel and the
 *	  renderer, and their transport's build, inside a subtransaction of
 *	  their own, so that one bad message fails alone.  A message the gate
 *	  holds back (deferred, suppressed, cancelled) is handed back to
 *	  queue.c, to be written before the claim commits; one that cannot go
 *	  out fails at once, for good.
 *
 *	  Decided: once the transfer ended and the transport classified it
 *	  (sent, transient or permanent), delivery_decide() says what becomes
 *	  of the message: sent, retrying after a backoff (or the receiver's
 *	  Retry-After), or failed, the last attempt failing too.  In the record
 *	  transaction delivery_record() words the message's last_error,
 *	  schedules the fallback of one that failed for good, and has queue.c
 *	  write the rows.
 *
 *	  So transport.c only moves bytes, and queue.c only claims and writes
 *	  rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "common/pg_prng.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "gate/gate.h"
#include "render/render.h"
#include "util/spi_util.h"
#include "util/util.h"
#include "worker/delivery.h"

#define RETRY_AFTER_MAX_S	86400	/* a Retry-After beyond a day is ignored */

Delivery *
delivery_create(MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "reminder delivery",
											  ALLOCSET_SMALL_SIZES);
	Delivery   *d = MemoryContextAllocZero(cxt, sizeof(Delivery));

	d->cxt = cxt;
	return d;
}

void
delivery_free(Delivery *d)
{
	Assert(d->easy == NULL);
	MemoryContextDelete(d->cxt);
}

/* ----------------------------------------------------------------
 * Made, in the claim transaction
 * ----------------------------------------------------------------
 */

/* A delivery carrying a message's identity and its channel's policy. */
static Delivery *
new_delivery(ClaimedMessage *m, ChannelConfig *cc, MemoryContext parent)
{
	Delivery   *d = delivery_create(parent);
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	d->message_id = m->id;
	d->attempt = m->attempt;
	d->idempotency_key = pstrdup(m->idempotency_key);
	d->recipient = (Jsonb *) pg_detoast_datum_copy((struct varlena *) m->recipient);
	d->template_name = pstrdup(m->template_name);
	d->data = (Jsonb *) pg_detoast_datum_copy((struct varlena *) m->data);
	d->is_fallback = m->is_fallback;
	d->priority = m->priority;
	d->category = m->category ? pstrdup(m->category) : NULL;
	d->channel = pstrdup(m->channel);
	/* the claim's UPDATE set lease_until = now() + lease */
	d->lease_until = GetCurrentTransactionStartTimestamp() +
		(TimestampTz) reminder_lease_timeout * USECS_PER_SEC;
	if (cc)
	{
		/* an attempt ends well before its lease: see queue_renew_leases(), queue.c */
		d->timeout_ms = Min(cc->timeout_ms, reminder_lease_timeout * 1000 - 1000);
		d->max_attempts = cc->max_attempts;
		d->retry_delay_ms = cc->retry_delay_ms;
		d->retry_max_delay_ms = cc->retry_max_delay_ms;
		d->fallback = cc->fallback ? pstrdup(cc->fallback) : NULL;
		d->paced = cc->rate_limit > 0;
	}
	else
		d->max_attempts = reminder_max_attempts;
	if (m->fallback)
		d->fallback = pstrdup(m->fallback);	/* the message's own wins */
	MemoryContextSwitchTo(old);
	return d;
}

/* A message the gate holds back: queue_claim_end() writes it back. */
static void
hold(List **held, ClaimedMessage *m, const char *status, TimestampTz until,
	 char *reason)
{
	HeldMessage *h = palloc(sizeof(HeldMessage));

	h->id = m->id;
	h->attempt = m->attempt;
	h->status = status;
	h->until = until;
	h->reason = reason;
	*held = lappend(*held, h);
}

static void
preload_channel(void *name)
{
	(void) channel_cache_get(name);
}

/*
 * Parse the channels of a batch not parsed yet, each in its own
 * subtransaction, so that gate_prepare() knows them.  One that cannot be
 * read is left out: its messages then fail in prepare_one(), with the
 * reason.
 */
static void
preload_channels(List *rows)
{
	List	   *tried = NIL;
	ListCell   *lc;
	ErrorData  *edata;

	foreach(lc, rows)
	{
		ClaimedMessage *m = lfirst(lc);
		ListCell   *lc2;
		bool		seen = false;

		if (channel_cache_peek(m->channel) != NULL)
			continue;
		foreach(lc2, tried)
			if (strcmp(lfirst(lc2), m->channel) == 0)
				seen = true;
		if (seen)
			continue;
		tried = lappend(tried, m->channel);

		edata = subxact_try(preload_channel, m->channel);
		if (edata)
			FreeErrorData(edata);
	}
	list_free(tried);
}

typedef struct PrepareOne
{
	ClaimedMessage *m;
	GateMessage *gm;
	MemoryContext parent;
	List	  **held;			/* out: HeldMessage *, when the gate holds it */
	ChannelConfig *cc;			/* out: the message's channel, once read */
	Delivery   *d;				/* out: the delivery to send, if any */
} PrepareOne;

static void
prepare_one_body(void *arg)
{
	PrepareOne *p = arg;
	ClaimedMessage *m = p->m;
	GateResult	gr;

	p->cc = channel_cache_get(m->channel);
	p->gm->channel = p->cc;

	/* rules that follow their row store no copy: it is read now */
	if (!rule_message_data(m->rule_id, m->source_key, &m->data, &gr.reason))
		gr.verdict = GATE_CANCEL;	/* the row is gone */
	else if (digest_collect_rule_message(m, &gr))
		;						/* digest.c: an item, into its digest */
	else
	{
		p->gm->data = m->data;
		gate_check(p->gm, &gr);
		/* digest.c: a digest gets its items, each checked again */
		if (gr.verdict == GATE_SEND)
			digest_fill(m, p->cc, &gr);
	}

	switch (gr.verdict)
	{
		case GATE_SEND:
			{
				RenderedMessage *r = render_message(p->cc, m->template_name,
													m->recipient, m->data, m->id);
				MemoryContext old;
				Delivery   *d;

				d = p->d = new_delivery(m, p->cc, p->parent);
				d->ops = transport_for_kind(p->cc->kind);
				if (d->ops == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("channels of kind %s are not delivered by this version",
									channel_kind_name(p->cc->kind))));
				old = MemoryContextSwitchTo(d->cxt);
				d->ops->build(d, p->cc, m, r);
				MemoryContextSwitchTo(old);
				break;
			}
		case GATE_DEFER:
			hold(p->held, m, "scheduled", gr.defer_until, gr.reason);
			break;
		case GATE_SUPPRESS:
			hold(p->held, m, "suppressed", 0, gr.reason);
			break;
		case GATE_CANCEL:
			hold(p->held, m, "cancelled", 0, gr.reason);
			break;
	}
}

/*
 * Gate, channel, render and build for one claimed message, inside a
 * subtransaction: an error fails this message alone.  Returns the
 * delivery to send (or to record at once), or NULL after a gate verdict.
 * gm is the message as gate_prepare() saw it.
 */
static Delivery *
prepare_one(ClaimedMessage *m, GateMessage *gm, MemoryContext parent,
			List **held)
{
	PrepareOne	p = {m, gm, parent, held, NULL, NULL};
	ErrorData  *edata;
	Delivery   *d;

	edata = subxact_try(prepare_one_body, &p);
	if (edata == NULL)
		return p.d;

	if (p.d)
		delivery_free(p.d);

	/* the message cannot go out: it fails now, as a permanent error */
	d = new_delivery(m, p.cc, parent);
	d->ops = NULL;
	delivery_fail(d, OUTCOME_PERMANENT, edata->message);
	ereport(LOG,
			(errmsg("reminder: message " INT64_FORMAT " cannot be delivered: %s",
					m->id, edata->message)));
	FreeErrorData(edata);
	return d;
}

/*
 * The rows rule-made messages are rendered with, read for all at once:
 * their data is completed here, before the batch gate sees it.
 */
static void
prefetch_rule_rows(List *rows)
{
	int			n = list_length(rows);
	int64	   *rule_ids = palloc(sizeof(int64) * Max(n, 1));
	char	  **source_keys = palloc(sizeof(char *) * Max(n, 1));
	Jsonb	  **data = palloc(sizeof(Jsonb *) * Max(n, 1));
	ListCell   *lc;
	int			i = 0;

	foreach(lc, rows)
	{
		ClaimedMessage *m = lfirst(lc);

		rule_ids[i] = m->rule_id;
		source_keys[i] = m->source_key;
		data[i++] = m->data;
	}
	rule_prefetch_rows(n, rule_ids, source_keys, data);
	i = 0;
	foreach(lc, rows)
		((ClaimedMessage *) lfirst(lc))->data = data[i++];
}

/*
 * Queue a delivery for a transfer slot: after those of its priority or
 * higher, before those of lower priority, so that a high-priority message
 * claimed now starts before a backlog claimed earlier.
 */
void
delivery_enqueue(dlist_head *queue, Delivery *d)
{
	dlist_node *after = NULL;

	if (!dlist_is_empty(queue))
	{
		/* walk back from the tail past the lower priorities */
		dlist_node *n = dlist_tail_node(queue);

		for (;;)
		{
			if (dlist_container(Delivery, node, n)->priority >= d->priority)
			{
				after = n;
				break;
			}
			if (!dlist_has_prev(queue, n))
				break;
			n = dlist_prev_node(queue, n);
		}
	}
	if (after)
		dlist_insert_after(after, &d->node);
	else
		dlist_push_head(queue, &d->node);
}

/*
 * Claim up to limit due messages (queue_claim) and prepare them.  Of
 * rate-limited channels no more than paced_limit are claimed, and none of
 * the busy channels (see queue_claim()).  Deliveries to carry out go to
 * *to_send, by priority; those already finished (log channel, messages
 * that cannot be delivered) go to *done, to be recorded.  Runs inside a
 * transaction with SPI connected.
 */
void
delivery_claim(int limit, int paced_limit, List *busy, dlist_head *to_send,
			   dlist_head *done, MemoryContext delivery_parent, ClaimResult *result)
{
	List	   *rows;
	List	   *held = NIL;
	ListCell   *lc;
	GateMessage *gms;

	rows = queue_claim(limit, paced_limit, busy, result);
	catalog_batch_begin();

	/* rules that follow their row: their rows, read for all at once */
	prefetch_rule_rows(rows);

	/* the checks that need queries, for the whole batch at once */
	preload_channels(rows);
	gms = palloc0(sizeof(GateMessage) * Max(list_length(rows), 1));
	foreach(lc, rows)
	{
		ClaimedMessage *m = lfirst(lc);
		GateMessage *gm = &gms[foreach_current_index(lc)];

		gm->dry_run = false;
		gm->id = m->id;
		gm->channel = channel_cache_peek(m->channel);
		gm->recipient = m->recipient;
		gm->data = m->data;
		gm->template_name = m->template_name;
		gm->category = m->category;
		gm->due_at = m->due_at;
		gm->rule_id = m->rule_id;
		gm->source_key = m->source_key;
		gm->idempotency_key = m->idempotency_key;
	}
	gate_prepare(gms, list_length(rows));

	foreach(lc, rows)
	{
		ClaimedMessage *m = lfirst(lc);
		Delivery   *d = prepare_one(m, &gms[foreach_current_index(lc)],
									delivery_parent, &held);

		if (d == NULL)
			continue;
		if (d->ops && d->ops->network)
			delivery_enqueue(to_send, d);
		else
		{
			if (d->ops)
			{
				d->started_at = d->finished_at = GetCurrentTimestamp();
				d->ops->classify(d);
				delivery_decide(d);
			}
			dlist_push_tail(done, &d->node);
		}
	}

	/* what the gate held back written, and when the next message falls due */
	queue_claim_end(held, result);
}

/* ----------------------------------------------------------------
 * Decided
 * ----------------------------------------------------------------
 */

/*
 * Backoff before attempt n + 1: uniform between retry_delay * 3^(n-1) and
 * twice that, so that messages failing together, the first time as every
 * time after, do not come back together.  Capped: at the cap, uniform
 * between half the cap and the cap.
 */
static int64
backoff_ms(int n, int base, int cap)
{
	double		lo = (double) base * pow(3.0, Max(n - 1, 0));
	double		hi = 2.0 * lo;

	if (lo >= cap)
	{
		lo = cap / 2.0;
		hi = cap;
	}
	else
		hi = Min(hi, (double) cap);
	return (int64) (lo + pg_prng_double(&pg_global_prng_state) * (hi - lo));
}

/*
 * What becomes of the message after this attempt: sent, retrying at
 * next_attempt_at, or failed.  No transaction needed.
 */
void
delivery_decide(Delivery *d)
{
	TimestampTz now = GetCurrentTimestamp();

	d->next_attempt_at = 0;
	switch (d->outcome)
	{
		case OUTCOME_SENT:
			d->status = "sent";
			break;
		case OUTCOME_TRANSIENT:
			if (d->attempt < d->max_attempts)
			{
				int64		delay = backoff_ms(d->attempt, d->retry_delay_ms,
											   d->retry_max_delay_ms);

				if (d->retry_after_s > 0 && d->retry_after_s <= RETRY_AFTER_MAX_S)
					delay = Max(delay, (int64) d->retry_after_s * 1000);
				d->status = "retrying";
				d->next_attempt_at = TimestampTzPlusMilliseconds(now, delay);
				break;
			}
			/* the last attempt: give up */
			d->outcome = OUTCOME_PERMANENT;
			d->status = "failed";
			break;
		case OUTCOME_PERMANENT:
			d->status = "failed";
			break;
	}
}

/*
 * A delivery that fails without a transfer (it could not be prepared, or
 * its transfer could not start): the outcome given, error the reason.
 */
void
delivery_fail(Delivery *d, DeliveryOutcome outcome, const char *error)
{
	d->started_at = d->finished_at = GetCurrentTimestamp();
	d->outcome = outcome;
	d->error = MemoryContextStrdup(d->cxt, error);
	delivery_decide(d);
}

/*
 * A delivery whose outcome could not be recorded (why): to be recorded
 * again, on its own, as failed for good with that reason, and no fallback.
 */
void
delivery_unrecordable(Delivery *d, const char *why)
{
	d->outcome = OUTCOME_PERMANENT;
	d->fallback = NULL;
	d->error = MemoryContextStrdup(d->cxt,
								   psprintf("could not record the outcome: %s", why));
	delivery_decide(d);
}

/*
 * The deliveries whose transfer ended since the last call, each with its
 * outcome decided, onto *done; true if there were any.
 */
bool
delivery_take_finished(dlist_head *done)
{
	dlist_head	finished;

	dlist_init(&finished);
	if (!transport_take_done(&finished))
		return false;
	while (!dlist_is_empty(&finished))
	{
		Delivery   *d = dlist_container(Delivery, node, dlist_pop_head_node(&finished));

		delivery_decide(d);
		dlist_push_tail(done, &d->node);
	}
	return true;
}

/*
 * Record what became of every delivery in *done: the message's last_error
 * worded, the fallback of one that failed for good scheduled (queue.c),
 * and the rows written (queue_record).  Counts them by status.  Runs
 * inside a transaction with SPI connected; the caller frees the
 * deliveries after commit.
 */
void
delivery_record(dlist_head *done, int64 *sent, int64 *failed, int64 *retried)
{
	dlist_iter	iter;

	*sent = *failed = *retried = 0;
	dlist_foreach(iter, done)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);
		char	   *error = d->error ? valid_text(d->error, strlen(d->error)) : NULL;
		char	   *last_error = error;

		if (strcmp(d->status, "failed") == 0)
		{
			(*failed)++;
			if (d->attempt >= d->max_attempts && d->attempt > 1)
				last_error = psprintf("gave up after %d attempts: %s", d->attempt,
									  error ? error : "");
			if (d->fallback && !d->is_fallback)
			{
				char	   *problem = queue_fallback(d);

				if (problem)
					last_error = psprintf("%s; %s", last_error ? last_error : "", problem);
			}
		}
		else if (strcmp(d->status, "retrying") == 0)
			(*retried)++;
		else
			(*sent)++;
		d->last_error = last_error;
	}
	queue_record(done);
}
