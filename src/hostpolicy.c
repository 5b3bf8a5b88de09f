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
 *	  ("example.com", "*.example.com") match the host name of the URL.  A
 *	  deny always wins; a non-empty allow list must match by name or address.
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
	if (rule->kind == RULE_NAME)
		return pg_strcasecmp(rule->name, host) == 0;
	/* ".example.com" matches "a.example.com" and "example.com" itself */
	hl = strlen(host);
	nl = strlen(rule->name);
	if (hl + 1 == nl && pg_strcasecmp(rule->name + 1, host) == 0)
		return true;
	return hl > nl && pg_strcasecmp(host + hl - nl, rule->name) == 0;
}

static bool
list_matches(const HostRules *rules, const char *host, int family, const uint8 *addr)
{
	for (int i = 0; i < rules->n; i++)
	{
		const HostRule *r = &rules->rules[i];

		if (r->kind == RULE_NET ? net_matches(r, family, addr) : name_matches(r, host))
			return true;
		/* an IPv4-mapped IPv6 address is checked as the IPv4 address */
		if (r->kind == RULE_NET && family == AF_INET6 &&
			memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 &&
			net_matches(r, AF_INET, addr + 12))
			return true;
	}
	return false;
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

	if (list_matches(&denied, host, family, bytes))
	{
		snprintf(why, whylen, "destination %s (host \"%s\") is denied by reminder.denied_hosts",
				 text, host ? host : "");
		return false;
	}
	if (allowed.n > 0 && !list_matches(&allowed, host, family, bytes))
	{
		snprintf(why, whylen, "destination %s (host \"%s\") is not in reminder.allowed_hosts",
				 text, host ? host : "");
		return false;
	}
	return true;
}
