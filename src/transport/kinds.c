/*-------------------------------------------------------------------------
 *
 * kinds.c
 *	  The transport of each channel kind: the one place that names the
 *	  per-kind ops tables (transport_http.c, transport_log.c,
 *	  transport_smtp.c, transport_sms.c, transport_slack.c).  The driver
 *	  (transport.c) knows a delivery's transport only through d->ops.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "transport/transport.h"

const TransportOps *
transport_for_kind(ChannelKind kind)
{
	switch (kind)
	{
		case CHANNEL_WEBHOOK:
			return &transport_webhook_ops;
		case CHANNEL_LOG:
			return &transport_log_ops;
		case CHANNEL_EMAIL:
			return &transport_smtp_ops;
		case CHANNEL_SMS:
			return &transport_sms_ops;
		case CHANNEL_SLACK:
			return &transport_slack_ops;
	}
	return NULL;				/* not delivered by this version */
}
