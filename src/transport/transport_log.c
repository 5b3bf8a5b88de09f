/*-------------------------------------------------------------------------
 *
 * transport_log.c
 *	  The log channel: "delivers" a message by writing it, as rendered, into
 *	  reminder.log.  No network, no server: the row is inserted by the same
 *	  transaction that records the outcome (queue.c), so the message is
 *	  sent exactly when its log row exists.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "render/render.h"
#include "render/template.h"
#include "transport/transport.h"

static void
log_build(Delivery *d, ChannelConfig *cc, ClaimedMessage *m, RenderedMessage *r)
{
	d->subject = r->subject ? pstrdup(r->subject) : NULL;
	d->body = pstrdup(r->body ? r->body : "");
	d->body_len = strlen(d->body);
	d->html = r->html ? pstrdup(r->html) : NULL;
}

static void
log_classify(Delivery *d)
{
	d->outcome = OUTCOME_SENT;
}

const TransportOps transport_log_ops = {
	.kind = CHANNEL_LOG,
	.network = false,
	.build = log_build,
	.setup = NULL,
	.classify = log_classify,

	.body_escape = RENDER_ESCAPE_NONE,
	.html_escape = RENDER_ESCAPE_HTML,
};
