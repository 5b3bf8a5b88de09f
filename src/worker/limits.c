/*-------------------------------------------------------------------------
 *
 * limits.c
 *	  What the senders of one database share, in shared memory, so that
 *	  reminder.workers_per_database senders together keep the limits one
 *	  sender kept alone:
 *
 *	  - the token bucket of every rate-limited channel, keyed by database
 *		and channel name: a sender takes tokens before it claims messages
 *		of the channel and gives back those it did not use, so that the
 *		senders together never claim more than the channel's rate_limit
 *		(plus the bucket: a tenth of a second's worth, at least one);
 *
 *	  - the transfers in flight per host ("host:port"), in total and by
 *		channel, keyed by database and host: a sender reserves a
 *		connection before it starts a transfer, so that together they keep
 *		reminder.max_host_connections, and a channel's share of a host
 *		(its fairness, see transport.c) counts every sender's transfers.
 *
 *	  Both are fixed arrays (LIMITS_MAX_BUCKETS, LIMITS_MAX_HOSTS entries
 *	  for the whole server), each under its own LWLock, held for a few
 *	  comparisons at most.  An entry unused for a while is taken over by
 *	  another key: a bucket idle for a second is full anyway; a host idle
 *	  for HOST_IDLE_MS has nothing in flight.  When every entry is in use,
 *	  a bucket evicts the least recently used one (the channel briefly gets
 *	  a full bucket again) and a host goes uncounted (each sender then
 *	  limits its own transfers only); both are logged.
 *
 *	  A sender that exits gives back what it holds (transport.c); after a
 *	  crash the postmaster initializes shared memory afresh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "worker/worker.h"

#define HOST_KEY_MAX		128 /* longer "host:port" keys are told apart by hash */
#define HOST_MAX_CHANNELS	8	/* channels counted per host; more go uncounted */
#define HOST_IDLE_MS		60000	/* a host unused this long may be forgotten */
#define HOST_SHARED_MS		60000	/* see transport.c: host_reserve() */
#define BUCKET_IDLE_MS		1000	/* a bucket unused this long is full */

typedef struct SharedBucket
{
	Oid			dboid;			/* InvalidOid: unused */
	char		channel[NAMEDATALEN];
	double		tokens;
	TimestampTz refilled_at;
} SharedBucket;

typedef struct HostChannel
{
	char		channel[NAMEDATALEN];	/* "": unused */
	int			n;
} HostChannel;

typedef struct SharedHost
{
	Oid			dboid;			/* InvalidOid: unused */
	uint32		hash;
	char		key[HOST_KEY_MAX];
	int			n;				/* transfers in flight, all senders */
	TimestampTz used_at;		/* when a transfer last started */
	TimestampTz shared_at;		/* when another channel than the last one did */
	char		last_channel[NAMEDATALEN];
	HostChannel channels[HOST_MAX_CHANNELS];
} SharedHost;

typedef struct LimitsShared
{
	LWLock	   *bucket_lock;
	LWLock	   *host_lock;
	SharedBucket buckets[LIMITS_MAX_BUCKETS];
	SharedHost	hosts[LIMITS_MAX_HOSTS];
} LimitsShared;

static LimitsShared *limits = NULL;
static bool warned_buckets = false;
static bool warned_hosts = false;

void
limits_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(LimitsShared));
	RequestNamedLWLockTranche("reminder limits", 2);
}

/* Called from shmem.c's startup hook, with AddinShmemInitLock held. */
void
limits_shmem_startup(void)
{
	bool		found;

	limits = ShmemInitStruct("reminder limits", sizeof(LimitsShared), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("reminder limits");

		memset(limits, 0, sizeof(LimitsShared));
		limits->bucket_lock = &locks[0].lock;
		limits->host_lock = &locks[1].lock;
	}
}

/* ----------------------------------------------------------------
 * Token buckets
 * ----------------------------------------------------------------
 */

static double
burst_of(double rate)
{
	return Max(1.0, rate / 10.0);
}

/* The bucket of channel in this database, made if need be.  Lock held. */
static SharedBucket *
find_bucket(const char *channel, TimestampTz now, double rate)
{
	SharedBucket *lru = NULL;

	for (int i = 0; i < LIMITS_MAX_BUCKETS; i++)
	{
		SharedBucket *b = &limits->buckets[i];

		if (b->dboid == MyDatabaseId && strcmp(b->channel, channel) == 0)
			return b;
		if (lru == NULL || b->dboid == InvalidOid ||
			(lru->dboid != InvalidOid && b->refilled_at < lru->refilled_at))
			lru = b;
	}
	if (lru->dboid != InvalidOid &&
		now < TimestampTzPlusMilliseconds(lru->refilled_at, BUCKET_IDLE_MS) &&
		!warned_buckets)
	{
		ereport(LOG,
				(errmsg("reminder: more than %d rate-limited channels in use at once; rate limits may be exceeded briefly",
						LIMITS_MAX_BUCKETS)));
		warned_buckets = true;
	}
	lru->dboid = MyDatabaseId;
	strlcpy(lru->channel, channel, NAMEDATALEN);
	lru->tokens = burst_of(rate);
	lru->refilled_at = now;
	return lru;
}

/*
 * Refill the bucket of a channel limited to rate messages/second and take
 * up to want tokens (want may be 0: only refill).  Returns how many were
 * taken; *left gets the tokens left after that.
 */
int
limits_bucket_take(const char *channel, double rate, TimestampTz now,
				   int want, double *left)
{
	SharedBucket *b;
	int			take;

	LWLockAcquire(limits->bucket_lock, LW_EXCLUSIVE);
	b = find_bucket(channel, now, rate);
	if (now > b->refilled_at)
	{
		b->tokens = Min(burst_of(rate),
						b->tokens + rate * (now - b->refilled_at) / 1000000.0);
		b->refilled_at = now;
	}
	else
		b->tokens = Min(burst_of(rate), b->tokens);
	take = (int) Min((double) Max(want, 0), floor(b->tokens));
	b->tokens -= take;
	*left = b->tokens;
	LWLockRelease(limits->bucket_lock);
	return take;
}

/* Give back n tokens taken but not used (fewer messages were due). */
void
limits_bucket_give_back(const char *channel, double rate, int n)
{
	if (n <= 0)
		return;
	LWLockAcquire(limits->bucket_lock, LW_EXCLUSIVE);
	for (int i = 0; i < LIMITS_MAX_BUCKETS; i++)
	{
		SharedBucket *b = &limits->buckets[i];

		if (b->dboid == MyDatabaseId && strcmp(b->channel, channel) == 0)
		{
			b->tokens = Min(burst_of(rate), b->tokens + n);
			break;
		}
	}
	LWLockRelease(limits->bucket_lock);
}

/* ----------------------------------------------------------------
 * Transfers in flight per host
 * ----------------------------------------------------------------
 */

static bool
host_matches(SharedHost *h, uint32 hash, const char *key)
{
	return h->dboid == MyDatabaseId && h->hash == hash &&
		strncmp(h->key, key, HOST_KEY_MAX - 1) == 0;
}

/*
 * The entry of key in this database, or NULL; with create, made if need
 * be (NULL only when every entry is busy).  *hint remembers where it was
 * (0: unknown, else index + 1).  Caller holds host_lock, exclusively to
 * create.
 */
static SharedHost *
find_host(const char *key, bool create, int *hint)
{
	uint32		hash = hash_bytes((const unsigned char *) key, strlen(key));
	SharedHost *free_entry = NULL;
	TimestampTz cutoff = 0;

	if (*hint > 0 && *hint <= LIMITS_MAX_HOSTS &&
		host_matches(&limits->hosts[*hint - 1], hash, key))
		return &limits->hosts[*hint - 1];
	if (create)
		cutoff = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), -HOST_IDLE_MS);
	for (int i = 0; i < LIMITS_MAX_HOSTS; i++)
	{
		SharedHost *h = &limits->hosts[i];

		if (host_matches(h, hash, key))
		{
			*hint = i + 1;
			return h;
		}
		if (create && free_entry == NULL &&
			(h->dboid == InvalidOid || (h->n <= 0 && h->used_at < cutoff)))
			free_entry = h;
	}
	if (!create)
		return NULL;
	if (free_entry == NULL)
	{
		if (!warned_hosts)
			ereport(LOG,
					(errmsg("reminder: more than %d hosts in use at once; the senders of a database count transfers to the others each on its own",
							LIMITS_MAX_HOSTS)));
		warned_hosts = true;
		return NULL;
	}
	memset(free_entry, 0, sizeof(SharedHost));
	free_entry->dboid = MyDatabaseId;
	free_entry->hash = hash;
	strlcpy(free_entry->key, key, HOST_KEY_MAX);
	*hint = (free_entry - limits->hosts) + 1;
	return free_entry;
}

/* The count of channel at host h; NULL beyond HOST_MAX_CHANNELS channels. */
static HostChannel *
find_channel(SharedHost *h, const char *channel, bool create)
{
	HostChannel *free_entry = NULL;

	for (int i = 0; i < HOST_MAX_CHANNELS; i++)
	{
		HostChannel *c = &h->channels[i];

		if (c->channel[0] != '\0' && strcmp(c->channel, channel) == 0)
			return c;
		if (free_entry == NULL && (c->channel[0] == '\0' || c->n <= 0))
			free_entry = c;
	}
	if (!create || free_entry == NULL)
		return NULL;
	strlcpy(free_entry->channel, channel, NAMEDATALEN);
	free_entry->n = 0;
	return free_entry;
}

/* Whether one more transfer of channel to h keeps the limits.  Lock held. */
static bool
room_at(SharedHost *h, const char *channel, int max, int reserve)
{
	HostChannel *c;

	if (h->n >= max)
		return false;
	if (h->shared_at != 0 &&
		GetCurrentTimestamp() < TimestampTzPlusMilliseconds(h->shared_at, HOST_SHARED_MS) &&
		(c = find_channel(h, channel, false)) != NULL &&
		c->n >= max - reserve)
		return false;
	return true;
}

/*
 * Whether a transfer of channel to key could start now: fewer than max in
 * flight there, and, on a host several channels use, fewer than
 * max - reserve of this channel.
 */
bool
limits_host_has_room(const char *key, const char *channel, int max, int reserve,
					 int *hint)
{
	SharedHost *h;
	bool		room;

	LWLockAcquire(limits->host_lock, LW_SHARED);
	h = find_host(key, false, hint);
	room = (h == NULL || room_at(h, channel, max, reserve));
	LWLockRelease(limits->host_lock);
	return room;
}

/* Transfers of channel in flight to key, all senders of the database. */
int
limits_host_channel_load(const char *key, const char *channel, int *hint)
{
	SharedHost *h;
	HostChannel *c = NULL;
	int			n;

	LWLockAcquire(limits->host_lock, LW_SHARED);
	h = find_host(key, false, hint);
	if (h)
		c = find_channel(h, channel, false);
	n = c ? c->n : 0;
	LWLockRelease(limits->host_lock);
	return n;
}

/*
 * Count a transfer of channel to key starting (delta 1) or ending (delta
 * -1, or less to give back several).  Starting, it is counted only if the
 * limits (max, reserve as in limits_host_has_room) allow: returns false,
 * counting nothing, if not.  *counted says whether it was counted (a
 * start may go ahead uncounted when every entry is in use: see the header
 * comment); only what was counted may be given back.  A sender whose
 * transfers wait for a connection others hold looks again every few
 * milliseconds (worker.c); waking every sibling at every freed connection
 * cost more than it saved.
 */
bool
limits_host_add(const char *key, const char *channel, int delta, int max,
				int reserve, int *hint, bool *counted)
{
	SharedHost *h;

	*counted = false;
	LWLockAcquire(limits->host_lock, LW_EXCLUSIVE);
	h = find_host(key, delta > 0, hint);
	if (h == NULL)
	{
		LWLockRelease(limits->host_lock);
		return true;
	}
	if (delta > 0)
	{
		HostChannel *c;

		if (!room_at(h, channel, max, reserve))
		{
			LWLockRelease(limits->host_lock);
			return false;
		}
		h->n += delta;
		h->used_at = GetCurrentTimestamp();
		if (strcmp(h->last_channel, channel) != 0)
		{
			if (h->last_channel[0] != '\0')
				h->shared_at = h->used_at;
			strlcpy(h->last_channel, channel, NAMEDATALEN);
		}
		c = find_channel(h, channel, true);
		if (c)
			c->n += delta;
	}
	else
	{
		HostChannel *c = find_channel(h, channel, false);

		h->n = Max(0, h->n + delta);
		if (c)
		{
			c->n = Max(0, c->n + delta);
			if (c->n == 0)
				c->channel[0] = '\0';
		}
	}
	LWLockRelease(limits->host_lock);
	*counted = true;
	return true;
}
