/*-------------------------------------------------------------------------
 *
 * worker/delivery.h
 *	  What the worker hands the transport for one claimed message (a
 *	  Delivery), and what becomes of the message once its transfer ends
 *	  (delivery.c).  Apart from worker/worker.h because it needs the
 *	  transport's types (and so libcurl's), which the other users of the
 *	  worker family do not.
 *
 *-------------------------------------------------------------------------
 */
#ifndef WORKER_DELIVERY_H
#define WORKER_DELIVERY_H

#include "outbox/outbox.h"
#include "transport/transport.h"

/* ----------------
 * in delivery.c
 * ----------------
 */
extern Delivery *delivery_create(MemoryContext parent);
extern void delivery_free(Delivery *d);
extern void delivery_enqueue(dlist_head *queue, Delivery *d);
extern void delivery_claim(int limit, int paced_limit, List *busy,
						   dlist_head *to_send, dlist_head *done,
						   MemoryContext delivery_parent, ClaimResult *result);
extern void delivery_decide(Delivery *d);
extern void delivery_fail(Delivery *d, DeliveryOutcome outcome, const char *error);
extern void delivery_unrecordable(Delivery *d, const char *why);
extern bool delivery_take_finished(dlist_head *done);
extern void delivery_record(dlist_head *done, int64 *sent, int64 *failed,
							int64 *retried);

#endif							/* WORKER_DELIVERY_H */
