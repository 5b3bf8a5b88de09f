/*-------------------------------------------------------------------------
 *
 * channel_cache.c
 *	  Channels as the worker sees them, parsed once and kept across claims.
 *
 *	  Every claim reads the list of channels anyway (queue.c: kinds and rate
 *	  limits); that query also returns the version of each channel's row
 *	  and of its secrets row (their xmin).  A channel is parsed, with its
 *	  secrets, the first time a claimed message needs it, and kept until its
 *	  version changes or it disappears: create_channel(), an UPDATE or new
 *	  secrets take effect at the next claim, with no trigger and no query
 *	  per message.  A plain UPDATE of a table sends no relcache
 *	  invalidation, so the row version is what tells.
 *
 *	  Deliveries copy what they need from a channel (transport.h), so an
 *	  entry may be dropped while its messages are still in flight.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"

typedef struct CachedChannel
{
	char	   *name;
	char	   *version;		/* "xmin/xmin of the secrets" as last listed */
	bool		listed;			/* in the current listing */
	MemoryContext cxt;			/* holds cc; NULL until parsed */
	ChannelConfig *cc;
} CachedChannel;

static MemoryContext cache_cxt = NULL;
static List *channels = NIL;	/* of CachedChannel *, in cache_cxt */

static void
forget_parsed(CachedChannel *c)
{
	if (c->cxt)
		MemoryContextDelete(c->cxt);
	c->cxt = NULL;
	c->cc = NULL;
}

static CachedChannel *
find(const char *name)
{
	ListCell   *lc;

	foreach(lc, channels)
	{
		CachedChannel *c = lfirst(lc);

		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

/* A new listing of the channels begins. */
void
channel_cache_begin_listing(void)
{
	ListCell   *lc;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "reminder channels",
										  ALLOCSET_SMALL_SIZES);
	foreach(lc, channels)
		((CachedChannel *) lfirst(lc))->listed = false;
}

/* The channel exists, its rows at this version. */
void
channel_cache_listed(const char *name, const char *version)
{
	CachedChannel *c = find(name);

	if (c == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(cache_cxt);

		c = palloc0(sizeof(CachedChannel));
		c->name = pstrdup(name);
		c->version = pstrdup(version);
		channels = lappend(channels, c);
		MemoryContextSwitchTo(old);
	}
	else if (strcmp(c->version, version) != 0)
	{
		forget_parsed(c);
		pfree(c->version);
		c->version = MemoryContextStrdup(cache_cxt, version);
	}
	c->listed = true;
}

/* The listing is complete: forget the channels it did not list. */
void
channel_cache_end_listing(void)
{
	ListCell   *lc;

	foreach(lc, channels)
	{
		CachedChannel *c = lfirst(lc);

		if (!c->listed)
		{
			channels = foreach_delete_current(channels, lc);
			forget_parsed(c);
			pfree(c->name);
			pfree(c->version);
			pfree(c);
		}
	}
}

/*
 * The parsed channel, if it has been parsed since its rows last changed;
 * else NULL.
 */
ChannelConfig *
channel_cache_peek(const char *name)
{
	CachedChannel *c = find(name);

	return c ? c->cc : NULL;
}

/*
 * The parsed channel, read and parsed now if needed (inside a transaction,
 * raising an error as catalog_channel() does).  A channel that was not
 * listed is read but not kept.
 */
ChannelConfig *
channel_cache_get(const char *name)
{
	CachedChannel *c = find(name);
	MemoryContext cxt;
	MemoryContext old;
	ChannelConfig *cc;

	if (c == NULL)
		return catalog_channel(name);
	if (c->cc)
		return c->cc;

	/* parse into a fresh context; only a complete entry is kept */
	cxt = AllocSetContextCreate(cache_cxt, "reminder channel", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		cc = catalog_channel(name);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	c->cxt = cxt;
	c->cc = cc;
	return cc;
}
