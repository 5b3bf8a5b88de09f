/*-------------------------------------------------------------------------
 *
 * hostpolicy.c
 *	  Which destinations outgoing requests may reach: reminder.allowed_hosts
 *	  and reminder.denied_hosts, lists of host names and CIDR ranges.
 *
 *	  Address entries are checked against the address a socket is about to
 *	  connect to (libcurl's open-socket callback), after name resolution, so
 *	  a host name that resolves to a denied address (DNS rebinding, a
 *	  metadata endpoint behind a friendly name) is refused.  Name entries
 *	  ("example.com", "*.example.com") match the host name of the URL, in
 *	  any case, with or without a final dot.  A deny always wins; a
 *	  non-empty allow list must match by name or address.
 *
 *	  An address is checked as every address it reaches: the unspecified
 *	  addresses 0.0.0.0 (also written "0") and :: connect to the local host,
 *	  so they are checked as 127.0.0.1 and ::1 too; an IPv6 address that
 *	  embeds an IPv4 one (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible
 *	  ::a.b.c.d, NAT64 64:ff9b::a.b.c.d and 64:ff9b:1::a.b.c.d) as that IPv4
 *	  address too.  Denying 127.0.0.0/8 therefore denies all of them.
 *
 *	  hostpolicy_permits() runs inside a libcurl callback: it allocates
 *	  nothing and never raises an error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "utils/memutils.h"

#include "reminder.h"
#include "transport/transport.h"

typedef enum HostRuleKind
{
	RULE_NAME,					/* exact host name */
	RULE_SUFFIX,				/* "*.example.com": any subdomain */
	RULE_NET					/* address range, IPv4 or IPv6 */
} HostRuleKind;

typedef struct HostRule
{
	HostRuleKind kind;
	char		name[256];		/* lowercase; for RULE_SUFFIX with the dot */
	int			family;			/* AF_INET or AF_INET6 */
	uint8		addr[16];
	int			bits;
} HostRule;

typedef struct HostRules
{
	int			n;
	HostRule   *rules;
} HostRules;

static HostRules allowed = {0, NULL};
static HostRules denied = {0, NULL};

static bool
parse_rule(char *entry, HostRule *rule)
{
	char	   *slash = strchr(entry, '/');
	int			maxbits;

	memset(rule, 0, sizeof(HostRule));
	if (slash)
		*slash = '\0';

	if (inet_pton(AF_INET, entry, rule->addr) == 1)
		rule->family = AF_INET, maxbits = 32;
	else if (inet_pton(AF_INET6, entry, rule->addr) == 1)
		rule->family = AF_INET6, maxbits = 128;
	else
	{
		const char *p = entry;

		if (slash)
			return false;
		if (strncmp(p, "*.", 2) == 0)
			p++, rule->kind = RULE_SUFFIX;
		else if (*p == '.')
			rule->kind = RULE_SUFFIX;
		else
			rule->kind = RULE_NAME;
		if (strlen(p) < 2 || strlen(p) >= sizeof(rule->name) ||
			strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_") != strlen(p))
			return false;
		for (int i = 0; p[i]; i++)
			rule->name[i] = pg_tolower((unsigned char) p[i]);
		return true;
	}

	rule->kind = RULE_NET;
	rule->bits = maxbits;
	if (slash)
	{
		char	   *end;
		long		bits = strtol(slash + 1, &end, 10);

		if (end == slash + 1 || *end != '\0' || bits < 0 || bits > maxbits)
			return false;
		rule->bits = (int) bits;
	}
	return true;
}

/*
 * Parse a comma-separated list into rules allocated in the current memory
 * context.  On a bad entry, returns false and sets *bad_entry.
 */
static bool
parse_list(const char *list, HostRules *out, char **bad_entry)
{
	char	   *copy = pstrdup(list ? list : "");
	char	   *tok;
	char	   *save;
	int			cap = 8;

	out->n = 0;
	out->rules = palloc(cap * sizeof(HostRule));
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		char	   *end;
		char	   *entry;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*tok == '\0')
			continue;
		entry = pstrdup(tok);
		if (out->n == cap)
		{
			cap *= 2;
			out->rules = repalloc(out->rules, cap * sizeof(HostRule));
		}
		if (!parse_rule(entry, &out->rules[out->n]))
		{
			if (bad_entry)
				*bad_entry = pstrdup(tok);
			return false;
		}
		out->n++;
	}
	return true;
}

/* For the GUC check hooks. */
bool
hostpolicy_check_list(const char *list, char **bad_entry)
{
	HostRules	rules;

	return parse_list(list, &rules, bad_entry);
}

/*
 * Load both lists from the GUCs; called at worker start and on SIGHUP.
 * The check hooks have vetted them, so an error here cannot happen.
 */
void
hostpolicy_load(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	char	   *bad = NULL;

	if (allowed.rules)
		pfree(allowed.rules);
	if (denied.rules)
		pfree(denied.rules);
	if (!parse_list(reminder_allowed_hosts, &allowed, &bad) ||
		!parse_list(reminder_denied_hosts, &denied, &bad))
		elog(ERROR, "invalid host list entry \"%s\"", bad);
	MemoryContextSwitchTo(old);
}

static bool
net_matches(const HostRule *rule, int family, const uint8 *addr)
{
	int			full = rule->bits / 8;
	int			rest = rule->bits % 8;

	if (rule->family != family)
		return false;
	if (memcmp(rule->addr, addr, full) != 0)
		return false;
	if (rest)
	{
		uint8		mask = (uint8) (0xff << (8 - rest));

		if ((rule->addr[full] & mask) != (addr[full] & mask))
			return false;
	}
	return true;
}

static bool
name_matches(const HostRule *rule, const char *host)
{
	size_t		hl,
				nl;

	if (host == NULL)
		return false;
	/* "example.com." is example.com, fully qualified */
	hl = strlen(host);
	if (hl > 1 && host[hl - 1] == '.')
		hl--;
	nl = strlen(rule->name);
	if (rule->kind == RULE_NAME)
		return hl == nl && pg_strncasecmp(rule->name, host, hl) == 0;
	/* ".example.com" matches "a.example.com" and "example.com" itself */
	if (hl + 1 == nl && pg_strncasecmp(rule->name + 1, host, hl) == 0)
		return true;
	return hl > nl && pg_strncasecmp(host + hl - nl, rule->name, nl) == 0;
}

static bool
list_matches(const HostRules *rules, const char *host, int family, const uint8 *addr)
{
	for (int i = 0; i < rules->n; i++)
	{
		const HostRule *r = &rules->rules[i];

		if (r->kind == RULE_NET ? net_matches(r, family, addr) : name_matches(r, host))
			return true;
	}
	return false;
}

/* An address as the policy sees it: family and bytes in network order. */
typedef struct PolicyAddr
{
	int			family;
	uint8		bytes[16];
} PolicyAddr;

#define MAX_EQUIVALENTS 4

static int
add_equivalent(PolicyAddr *out, int n, int family, const uint8 *bytes)
{
	if (n >= MAX_EQUIVALENTS)
		return n;
	out[n].family = family;
	memset(out[n].bytes, 0, sizeof(out[n].bytes));
	memcpy(out[n].bytes, bytes, family == AF_INET ? 4 : 16);
	return n + 1;
}

/*
 * Every address a connection to (family, bytes) reaches, itself first: an
 * IPv6 address that embeds an IPv4 address adds that address; an
 * unspecified address adds the loopback address it connects to.
 */
static int
equivalents(int family, const uint8 *bytes, PolicyAddr *out)
{
	static const uint8 v6_unspecified[16] = {0};
	static const uint8 v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	static const uint8 v4_loopback[4] = {127, 0, 0, 1};
	static const uint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8 nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8 nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
	int			n = add_equivalent(out, 0, family, bytes);
	const uint8 *v4 = family == AF_INET ? bytes : NULL;

	if (family == AF_INET6)
	{
		if (memcmp(bytes, v6_unspecified, 16) == 0)
			return add_equivalent(out, n, AF_INET6, v6_loopback);
		if (memcmp(bytes, mapped, 12) == 0 ||	/* ::ffff:a.b.c.d */
			memcmp(bytes, nat64, 12) == 0 ||	/* 64:ff9b::a.b.c.d */
			memcmp(bytes, nat64_local, 6) == 0 ||	/* 64:ff9b:1::/48 */
		/* ::a.b.c.d, IPv4-compatible (deprecated), but not ::1 */
			(memcmp(bytes, v6_unspecified, 12) == 0 &&
			 memcmp(bytes, v6_loopback, 16) != 0))
		{
			v4 = bytes + 12;
			n = add_equivalent(out, n, AF_INET, v4);
		}
	}
	/* 0.0.0.0/8, "this network": Linux connects 0.0.0.0 to the local host */
	if (v4 != NULL && v4[0] == 0)
		n = add_equivalent(out, n, AF_INET, v4_loopback);
	return n;
}

/*
 * May a request for host connect to addr?  If not, why says so.
 */
bool
hostpolicy_permits(const char *host, const struct sockaddr *addr,
				   char *why, size_t whylen)
{
	int			family = addr->sa_family;
	const uint8 *bytes;
	char		text[INET6_ADDRSTRLEN];
	PolicyAddr	eq[MAX_EQUIVALENTS];
	int			n;

	if (family == AF_INET)
		bytes = (const uint8 *) &((const struct sockaddr_in *) addr)->sin_addr;
	else if (family == AF_INET6)
		bytes = (const uint8 *) &((const struct sockaddr_in6 *) addr)->sin6_addr;
	else
	{
		snprintf(why, whylen, "address family %d of host \"%s\" is not allowed",
				 family, host ? host : "");
		return false;
	}
	if (inet_ntop(family, bytes, text, sizeof(text)) == NULL)
		strlcpy(text, "?", sizeof(text));

	n = equivalents(family, bytes, eq);
	for (int i = 0; i < n; i++)
		if (list_matches(&denied, host, eq[i].family, eq[i].bytes))
		{
			char		as[INET6_ADDRSTRLEN];

			if (i == 0 || inet_ntop(eq[i].family, eq[i].bytes, as, sizeof(as)) == NULL)
				snprintf(why, whylen, "destination %s (host \"%s\") is denied by reminder.denied_hosts",
						 text, host ? host : "");
			else
				snprintf(why, whylen, "destination %s (host \"%s\"), which reaches %s, is denied by reminder.denied_hosts",
						 text, host ? host : "", as);
			return false;
		}
	if (allowed.n > 0)
	{
		bool		ok = false;

		for (int i = 0; i < n && !ok; i++)
			ok = list_matches(&allowed, host, eq[i].family, eq[i].bytes);
		if (!ok)
		{
			snprintf(why, whylen, "destination %s (host \"%s\") is not in reminder.allowed_hosts",
					 text, host ? host : "");
			return false;
		}
	}
	return true;
}
