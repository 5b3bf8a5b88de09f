/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Running as another role for a while, and back: as the extension's
 *	  owner for the extension's own statements on its tables, whoever
 *	  called us, or as a watched table's owner for the code of its rules
 *	  (rules_expr.c says why that needs a security-restricted operation).
 *
 *	  Every switch opens a GUC nest level and owner_leave() rolls it back,
 *	  so that no setting changed inside, by us or by code we called,
 *	  outlives the switch.  An error inside ends the switch with the
 *	  (sub)transaction it aborts; a caller that catches errors without
 *	  aborting one must call owner_leave() on its error path too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/guc.h"

#include "reminder.h"
#include "rules/rules.h"
#include "util/util.h"

/* whether this process is the reminder worker (owner_worker_session) */
static bool in_worker = false;

/*
 * The reminder worker's session, once connected: search_path is
 * pg_catalog, pg_temp for everything it runs, whatever the server's, the
 * database's or its role's settings say ("$user", public), and no schema
 * another role can create objects in is ever searched.  Leaving a table
 * owner's code in this process also drops session advisory locks taken
 * inside it.
 */
void
owner_worker_session(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	in_worker = true;
}

/*
 * Run as owner until owner_leave(ctx), under a new GUC nest level.
 *
 * OWNER_PIN_SEARCH_PATH pins search_path to pg_catalog, pg_temp in that
 * level (rule_pin_search_path); without it the caller's stays, which must
 * then be pinned already.  OWNER_RESTRICTED makes it a security-restricted
 * operation (no SET ROLE, no temporary tables, no LISTEN): for code the
 * table's owner wrote, run inside sessions that belong to others.
 */
void
owner_enter(OwnerContext *ctx, Oid owner, int flags)
{
	int			sec;

	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec);
	ctx->flags = flags;
	if (flags & OWNER_PIN_SEARCH_PATH)
		ctx->level = rule_pin_search_path();
	else
		ctx->level = NewGUCNestLevel();
	sec = ctx->save_sec | SECURITY_LOCAL_USERID_CHANGE;
	if (flags & OWNER_RESTRICTED)
		sec |= SECURITY_RESTRICTED_OPERATION;
	SetUserIdAndSecContext(owner, sec);
}

/*
 * Back to the caller's identity, every setting as it was when the switch
 * began (set_config(..., false) inside included), as at the end of a
 * security-restricted operation.  In the worker, session advisory locks
 * the table owner's code took are released: the worker takes none of its
 * own.
 */
void
owner_leave(OwnerContext *ctx)
{
	AtEOXact_GUC(false, ctx->level);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec);
	if ((ctx->flags & OWNER_RESTRICTED) && in_worker)
		LockReleaseSession(USER_LOCKMETHOD);
}
