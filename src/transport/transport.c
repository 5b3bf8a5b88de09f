/*-------------------------------------------------------------------------
 *
 * transport.c
 *	  The libcurl multi driver: runs many transfers at once on one thread,
 *	  keeps one multi handle (and so its connection cache and DNS cache)
 *	  for the life of the worker, and hands back finished deliveries,
 *	  classified by their transport (d->ops).  It moves bytes only: the
 *	  worker makes the deliveries and decides what their outcomes mean
 *	  (worker/delivery.c).
 *
 *	  Waiting.  The worker must sleep on its latch (new work, SIGHUP,
 *	  SIGTERM, a DROP DATABASE asking it to leave) and on curl's sockets at
 *	  the same time.  curl_multi_poll() cannot see the latch (PostgreSQL 15
 *	  wakes latches through a signalfd it does not expose), and a
 *	  WaitEventSet cannot drop a socket once added, while curl opens and
 *	  closes sockets all the time.  So curl's sockets go into an epoll set
 *	  of our own, maintained exactly from CURLMOPT_SOCKETFUNCTION, and that
 *	  epoll descriptor - readable whenever one of its sockets is ready - is
 *	  one socket of the worker's WaitEventSet next to the latch.  Ready
 *	  sockets are then drained with a non-blocking epoll_wait() and passed
 *	  to curl_multi_socket_action(); CURLMOPT_TIMERFUNCTION gives the
 *	  timeout of the wait.  This is Linux-only, as is epoll.
 *
 *	  Nothing here runs inside a transaction, and no PostgreSQL error may
 *	  be raised from a libcurl callback (it would longjmp through libcurl):
 *	  callbacks only copy into fixed buffers of the Delivery.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "reminder.h"
#include "catalog/reminder_catalog.h"
#include "transport/transport.h"
#include "worker/worker.h"

static CURLM *multi = NULL;
static int	epfd = -1;
static TimestampTz timer_at = 0;	/* curl wants a call then; 0: no timer */
static dlist_head active = DLIST_STATIC_INIT(active);
static dlist_head finished = DLIST_STATIC_INIT(finished);
static int	n_active = 0;
static bool stale_connections = false;	/* opened under an older host policy */

/*
 * Transfers in flight per host and port.  libcurl opens at most
 * reminder.max_host_connections connections to one host and queues the
 * transfers beyond that, with their timeout running: a slow but healthy
 * receiver would see spurious timeouts and duplicates.  So no more
 * transfers start per host than it may have connections, counting those
 * of every sender of the database (limits.c); the others wait, unstarted,
 * in the worker's queue (their leases renewed meanwhile).  What this
 * sender counted there is noted here too, to be given back should it
 * exit with transfers in flight.
 */
typedef struct OwnLoad
{
	char	   *key;
	char	   *channel;
	int			n;
	int			hint;
} OwnLoad;

static List *own_loads = NIL;	/* of OwnLoad *, in TopMemoryContext */

static void give_back_loads(int code, Datum arg);

/*
 * Easy handles of finished transfers, reset and kept for the next ones:
 * creating and destroying a handle per message cost more than the request
 * itself.  At most reminder.max_concurrent are kept (its maximum is 1024).
 */
#define IDLE_EASY_MAX	1024
static CURL *idle_easy[IDLE_EASY_MAX];
static int	n_idle_easy = 0;

/* ----------------------------------------------------------------
 * libcurl callbacks: no palloc, no ereport
 * ----------------------------------------------------------------
 */

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE)
	{
		/* ENOENT/EBADF when curl already closed it: nothing to do */
		(void) epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}

	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev.events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
		(void) epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev);
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	timer_at = timeout_ms < 0 ? 0 :
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

/* Check the address actually connected to, after name resolution. */
static curl_socket_t
open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	Delivery   *d = clientp;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (!hostpolicy_permits(d->host, &address->addr, d->denied, sizeof(d->denied)))
		return CURL_SOCKET_BAD;
	return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* Keep the first bytes of the response for the attempt row. */
static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Delivery   *d = userdata;
	size_t		len = size * nmemb;
	size_t		room = DELIVERY_RESPONSE_MAX - d->response_len;

	if (room > 0)
	{
		size_t		n = Min(room, len);

		memcpy(d->response + d->response_len, ptr, n);
		d->response_len += n;
		d->response[d->response_len] = '\0';
	}
	return len;
}

/* ----------------------------------------------------------------
 * The driver
 * ----------------------------------------------------------------
 */

static void
create_multi(void)
{
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	transport_configure(false);
}

void
transport_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
	before_shmem_exit(give_back_loads, (Datum) 0);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("could not create epoll set: %m")));
	create_multi();
}

/*
 * Apply the connection limits; again after SIGHUP.  When the host policy
 * changed, connections in the cache were checked against the old one: new
 * transfers open fresh connections until the cache can be dropped whole.
 */
void
transport_configure(bool policy_changed)
{
	if (policy_changed)
		stale_connections = true;

	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) reminder_max_concurrent);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) reminder_max_host_connections);
	/* keep as many idle connections as we may use at once */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) reminder_max_concurrent);
}

pgsocket
transport_socket(void)
{
	return epfd;
}

/* How long the worker may sleep before curl needs a call; -1: no limit. */
long
transport_timeout_ms(void)
{
	long		secs;
	int			usecs;

	if (timer_at == 0)
		return -1;
	TimestampDifference(GetCurrentTimestamp(), timer_at, &secs, &usecs);
	return secs * 1000 + (usecs + 999) / 1000;
}

int
transport_in_flight(void)
{
	return n_active;
}

/* "host:port" of the delivery's URL, as libcurl's connection limits see it. */
static const char *
conn_key(Delivery *d)
{
	CURLU	   *u;
	char	   *host = NULL;
	char	   *port = NULL;
	MemoryContext old;

	if (d->conn_key)
		return d->conn_key;
	u = curl_url();
	old = MemoryContextSwitchTo(d->cxt);
	if (u && d->url &&
		curl_url_set(u, CURLUPART_URL, d->url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		d->conn_key = psprintf("%s:%s", host, port);
	else
		d->conn_key = pstrdup(d->url ? d->url : "");	/* such a transfer fails at once */
	MemoryContextSwitchTo(old);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return d->conn_key;
}

/* The "host:port" whose connections d's transfer takes; NULL: none. */
const char *
transport_host_key(Delivery *d)
{
	if (!d->ops || !d->ops->network)
		return NULL;
	return conn_key(d);
}

/* Connections of a shared host that one channel may not take. */
static int
host_reserve(void)
{
	return reminder_max_host_connections < 2 ? 0 :
		Max(1, reminder_max_host_connections / 4);
}

/*
 * Whether a transfer of d may start now without queueing inside libcurl:
 * the host has a connection free, and, if several channels used it within
 * a minute, d's channel does not hold all but host_reserve() of them.
 */
bool
transport_host_has_room(Delivery *d)
{
	if (!d->ops || !d->ops->network)
		return true;
	return limits_host_has_room(conn_key(d), d->channel, reminder_max_host_connections,
								host_reserve(), &d->host_hint);
}

/*
 * Transfers of d's channel in flight to d's host, all senders: when a
 * connection to a host frees up, the channel with the fewest gets it, so
 * that a backlog of one channel cannot hold up another's messages to the
 * same host.
 */
int
transport_channel_load(Delivery *d)
{
	if (!d->ops || !d->ops->network)
		return 0;
	return limits_host_channel_load(conn_key(d), d->channel, &d->host_hint);
}

static OwnLoad *
own_load(Delivery *d)
{
	ListCell   *lc;
	OwnLoad    *o;
	MemoryContext old;

	foreach(lc, own_loads)
	{
		o = lfirst(lc);
		if (strcmp(o->key, d->conn_key) == 0 && strcmp(o->channel, d->channel) == 0)
			return o;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	o = palloc0(sizeof(OwnLoad));
	o->key = pstrdup(d->conn_key);
	o->channel = pstrdup(d->channel);
	own_loads = lappend(own_loads, o);
	MemoryContextSwitchTo(old);
	return o;
}

/*
 * Count a transfer of d starting (1) or ending (-1) at its host.  Starting,
 * only if the host has room (as transport_host_has_room() says, but
 * atomically): returns false, counting nothing, if not.
 */
static bool
host_load_add(Delivery *d, int delta)
{
	OwnLoad    *o;
	bool		counted;

	if (!d->ops || !d->ops->network)
		return true;
	if (delta < 0 && !d->host_counted)
		return true;
	(void) conn_key(d);
	if (!limits_host_add(d->conn_key, d->channel, delta, reminder_max_host_connections,
						 host_reserve(), &d->host_hint, &counted))
		return false;
	d->host_counted = (delta > 0 && counted);
	if (!counted)
		return true;
	o = own_load(d);
	o->n += delta;
	if (o->n <= 0)
	{
		own_loads = list_delete_ptr(own_loads, o);
		pfree(o->key);
		pfree(o->channel);
		pfree(o);
	}
	return true;
}

/* At exit: what this sender still counts at its hosts is given back. */
static void
give_back_loads(int code, Datum arg)
{
	ListCell   *lc;

	foreach(lc, own_loads)
	{
		OwnLoad    *o = lfirst(lc);

		bool		counted;

		if (o->n > 0)
			(void) limits_host_add(o->key, o->channel, -o->n,
								   reminder_max_host_connections, 0, &o->hint, &counted);
	}
	own_loads = NIL;
}

/* Call fn for every delivery whose transfer is in flight. */
void
transport_foreach_active(void (*fn) (Delivery *d, void *arg), void *arg)
{
	dlist_iter	iter;

	dlist_foreach(iter, &active)
		fn(dlist_container(Delivery, node, iter.cur), arg);
}

/* Options every transfer gets, whatever the kind. */
static void
set_common_options(Delivery *d, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_PRIVATE, d);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) d->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
					 (long) Min(reminder_connect_timeout, d->timeout_ms));
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, d);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, d);
	/* the host policy checks the real destination: no proxy in between */
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	/* ... for any host, which also spares reading the environment each time */
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
}

/*
 * Take a connection of d's host for its transfer, if the host has room
 * (see host_load_add); returns false, taking nothing, if not.  Then
 * transport_start(d) must follow.
 */
bool
transport_reserve(Delivery *d)
{
	return host_load_add(d, 1);
}

/*
 * Start a transfer whose connection transport_reserve() took.  The easy
 * handle and header list are freed here (and the connection given back)
 * if setting them up fails, and by collect() once the transfer ends.
 */
void
transport_start(Delivery *d)
{
	CURL	   *easy;
	CURLMcode	mrc;

	if (stale_connections && n_active == 0)
	{
		/* nothing in flight: drop the multi handle and its cache */
		curl_multi_cleanup(multi);
		timer_at = 0;
		create_multi();
		stale_connections = false;
	}

	easy = n_idle_easy > 0 ? idle_easy[--n_idle_easy] : curl_easy_init();
	if (easy == NULL)
	{
		host_load_add(d, -1);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl easy handle")));
	}
	d->easy = easy;
	PG_TRY();
	{
		set_common_options(d, easy);
		if (stale_connections)
			curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
		d->ops->setup(d, easy);
	}
	PG_CATCH();
	{
		curl_easy_cleanup(easy);
		curl_slist_free_all(d->slist);
		d->easy = NULL;
		d->slist = NULL;
		if (d->ops->cleanup)
			d->ops->cleanup(d);
		host_load_add(d, -1);
		PG_RE_THROW();
	}
	PG_END_TRY();

	d->started_at = GetCurrentTimestamp();
	mrc = curl_multi_add_handle(multi, easy);
	if (mrc != CURLM_OK)
	{
		curl_easy_cleanup(easy);
		curl_slist_free_all(d->slist);
		d->easy = NULL;
		d->slist = NULL;
		if (d->ops->cleanup)
			d->ops->cleanup(d);
		host_load_add(d, -1);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start a transfer: %s", curl_multi_strerror(mrc))));
	}
	dlist_push_tail(&active, &d->node);
	n_active++;
}

/*
 * Free the handles of a transfer that has ended or is abandoned.  The easy
 * handle forgets every option and is kept for another transfer.
 */
static void
release_transfer(Delivery *d)
{
	curl_multi_remove_handle(multi, d->easy);
	if (n_idle_easy < Min(reminder_max_concurrent, IDLE_EASY_MAX))
	{
		curl_easy_reset(d->easy);
		idle_easy[n_idle_easy++] = d->easy;
	}
	else
		curl_easy_cleanup(d->easy);
	curl_slist_free_all(d->slist);
	d->easy = NULL;
	d->slist = NULL;
	if (d->ops->cleanup)
		d->ops->cleanup(d);
	dlist_delete(&d->node);
	n_active--;
	(void) host_load_add(d, -1);
}

static void
collect(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		CURL	   *easy = msg->easy_handle;
		CURLcode	rc = msg->data.result;
		Delivery   *d = NULL;
		curl_off_t	retry_after = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &d);
		d->curl_code = rc;
		d->finished_at = GetCurrentTimestamp();
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &d->http_status);
		if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK)
			d->retry_after_s = (long) retry_after;
		release_transfer(d);

		d->ops->classify(d);
		dlist_push_tail(&finished, &d->node);
	}
}

/*
 * Let curl work on whatever is ready, without blocking: the sockets the
 * epoll set reports and, if due, curl's timer.
 */
void
transport_perform(bool sockets_ready)
{
	int			running;

	if (multi == NULL)
		return;

	if (sockets_ready)
	{
		struct epoll_event evs[64];
		int			n;

		do
		{
			n = epoll_wait(epfd, evs, lengthof(evs), 0);
			for (int i = 0; i < n; i++)
			{
				int			mask = 0;

				if (evs[i].events & EPOLLIN)
					mask |= CURL_CSELECT_IN;
				if (evs[i].events & EPOLLOUT)
					mask |= CURL_CSELECT_OUT;
				if (evs[i].events & (EPOLLERR | EPOLLHUP))
					mask |= CURL_CSELECT_ERR;
				curl_multi_socket_action(multi, evs[i].data.fd, mask, &running);
			}
		} while (n == lengthof(evs));
	}

	if (timer_at != 0 && GetCurrentTimestamp() >= timer_at)
	{
		timer_at = 0;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}

	collect();
}

/*
 * Move finished deliveries, classified, to *into; true if there were any.
 * What their outcome means for their messages the worker decides.
 */
bool
transport_take_done(dlist_head *into)
{
	bool		any = !dlist_is_empty(&finished);

	while (!dlist_is_empty(&finished))
		dlist_push_tail(into, dlist_pop_head_node(&finished));
	return any;
}

/*
 * Drop every transfer still in flight (at exit), their deliveries moved to
 * *abandoned for the caller to free: their messages stay in state sending
 * and are retried once their lease runs out.
 */
void
transport_abandon_all(dlist_head *abandoned)
{
	dlist_mutable_iter iter;

	if (multi == NULL)
		return;
	dlist_foreach_modify(iter, &active)
	{
		Delivery   *d = dlist_container(Delivery, node, iter.cur);

		release_transfer(d);
		dlist_push_tail(abandoned, &d->node);
	}
	while (n_idle_easy > 0)
		curl_easy_cleanup(idle_easy[--n_idle_easy]);
	curl_multi_cleanup(multi);
	multi = NULL;
	close(epfd);
	epfd = -1;
}
