/*-------------------------------------------------------------------------
 *
 * reminder.h
 *	  What every family of src/ shares: the schema's name and the
 *	  configuration parameters (reminder.c).  Each family declares the rest
 *	  in its own header, grouped by the file that defines it (src/README).
 *
 *-------------------------------------------------------------------------
 */
#ifndef REMINDER_H
#define REMINDER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "pgtime.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/rel.h"


#define REMINDER_SCHEMA			"reminder"
#define REMINDER_EXTENSION		"reminder"

/* ----------------
 * in reminder.c: GUCs and module load
 * ----------------
 */
extern bool reminder_preloaded;

extern bool reminder_enabled;
extern int	reminder_poll_interval;		/* ms */
extern int	reminder_batch_size;
extern int	reminder_max_concurrent;
extern int	reminder_max_host_connections;
extern int	reminder_timeout;			/* ms, per transfer */
extern int	reminder_connect_timeout;	/* ms */
extern int	reminder_lease_timeout;		/* s */
extern int	reminder_workers_per_database;
extern int	reminder_max_attempts;
extern int	reminder_retry_delay;		/* ms, first retry */
extern int	reminder_retry_max_delay;	/* ms, backoff cap */
extern int	reminder_retention;			/* min, 0 keeps history forever */
extern int	reminder_history_after;		/* min, -1: finished messages stay */
extern int	reminder_history_partition; /* min, width of a partition */
extern char *reminder_allowed_hosts;
extern char *reminder_denied_hosts;
extern int	reminder_max_payload_size;	/* bytes */
extern char *reminder_default_locale;
extern char *reminder_default_country_code;
extern char *reminder_link_base_url;
extern int	reminder_link_ttl;			/* min */
extern int	reminder_max_recipients;
extern bool reminder_bounce_opt_out;

#endif							/* REMINDER_H */
