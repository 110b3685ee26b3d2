/* endpoint.c — see endpoint.h. */
#include "endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPTED                                                                                   \
	"give tcp://HOST:PORT (PORT from 1 to 65535; an IPv6 HOST in brackets, "                   \
	"tcp://[2001:db8::5]:7700) or ipc://PATH"

static rete_err refuse(const char *ep, rete_endpoint_use use, const char *why, rete_msg *m)
{
	return rete_msg_set(m, RETE_EINVAL, "'%.200s' is not an endpoint to %s: %s; %s", ep,
			    use == RETE_ENDPOINT_LISTEN ? "listen on" : "connect to", why,
			    ACCEPTED);
}

/* port_ok: s (n bytes) is a whole number from 1 to 65535, as written. */
static bool port_ok(const char *s, size_t n)
{
	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= 65535;
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static bool dotted(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
			return false;
	return true;
}

/* A source of no address: ZeroMQ would leave from any, as without one. */
#define SOURCE_ANY(what)                                                                           \
	what " as the source says no address: leave 'SOURCE;' out, and the system picks "          \
	     "the address a connection leaves from"

/* v6_check: the IPv6 address inside the brackets of a host, a (n bytes).
 * No zone id: only a link-local address needs one, and a zone names an
 * interface of one machine, which a configuration shared among agencies
 * cannot say; link-local addresses are refused with it. */
static rete_err v6_check(const char *ep, const char *a, size_t n, rete_endpoint_use use, bool src,
			 rete_msg *m)
{
	char addr[INET6_ADDRSTRLEN + 1], why[160];
	struct in6_addr a6;
	const char *pct = memchr(a, '%', n);
	if (n == 0)
		return refuse(ep, use,
			      "the brackets hold no address (an IPv6 address goes in them, "
			      "e.g. tcp://[2001:db8::5]:7700)",
			      m);
	if (pct != NULL) {
		size_t zl = n - (size_t)(pct - a);
		snprintf(why, sizeof(why),
			 "a zone id ('%.*s') is not accepted: link-local addresses, which need "
			 "one, are not supported; give a global or unique-local IPv6 address",
			 (int)(zl > 20 ? 20 : zl), pct);
		return refuse(ep, use, why, m);
	}
	bool ok = n < sizeof(addr);
	if (ok) {
		memcpy(addr, a, n);
		addr[n] = '\0';
		ok = inet_pton(AF_INET6, addr, &a6) == 1;
	}
	if (!ok) {
		snprintf(why, sizeof(why),
			 "'%.*s' is not an IPv6 address (an IPv4 address goes without "
			 "brackets)",
			 (int)(n > 48 ? 48 : n), a);
		return refuse(ep, use, why, m);
	}
	if (IN6_IS_ADDR_LINKLOCAL(&a6))
		return refuse(ep, use,
			      "a link-local address (fe80::/10) is not accepted: it needs a zone "
			      "id (the interface), which rete does not take; give a global or "
			      "unique-local IPv6 address",
			      m);
	if (IN6_IS_ADDR_MULTICAST(&a6))
		return refuse(ep, use,
			      "a multicast address (ff00::/8) is not accepted: a tcp:// endpoint "
			      "is one machine's address; give a global or unique-local IPv6 "
			      "address",
			      m);
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		char a4[INET_ADDRSTRLEN] = "";
		inet_ntop(AF_INET, &a6.s6_addr[12], a4, sizeof(a4));
		snprintf(why, sizeof(why),
			 "an IPv4 address ('%s') goes without brackets: tcp://%s:PORT", addr, a4);
		return refuse(ep, use, why, m);
	}
	if (IN6_IS_ADDR_UNSPECIFIED(&a6) && src)
		return refuse(ep, use, SOURCE_ANY("'[::]'"), m);
	if (IN6_IS_ADDR_UNSPECIFIED(&a6) && use == RETE_ENDPOINT_CONNECT)
		return refuse(ep, use,
			      "'[::]' (every address of a machine) is for listening; give the "
			      "broker's host name or address",
			      m);
	return RETE_OK;
}

/* Families of a host: what host_check found. */
enum { FAM_NAME = 0, FAM_V4 = 4, FAM_V6 = 6 };

/* host_check: the host part h (n bytes) of tcp://HOST:PORT, an IPv6
 * address in its brackets; *fam says which it is. */
static rete_err host_check(const char *ep, const char *h, size_t n, rete_endpoint_use use, bool src,
			   int *fam, rete_msg *m)
{
	char addr[64];
	*fam = FAM_NAME;
	if (n == 0)
		return refuse(ep, use, "the host before the port is missing", m);
	if (h[0] == '[') {
		*fam = FAM_V6;
		return v6_check(ep, h + 1, n - 2, use, src, m);
	}
	if (memchr(h, ':', n) || memchr(h, ']', n))
		return refuse(ep, use,
			      "an IPv6 address goes in brackets, e.g. tcp://[2001:db8::5]:7700", m);
	if (n == 1 && h[0] == '*' && src)
		return refuse(ep, use, SOURCE_ANY("'*'"), m);
	if (n == 1 && h[0] == '*')
		return use == RETE_ENDPOINT_LISTEN
			   ? RETE_OK
			   : refuse(ep, use,
				    "'*' (every address of a machine) is for listening; give the "
				    "broker's host name or address",
				    m);
	if (dotted(h, n)) {
		struct in_addr a4;
		*fam = FAM_V4;
		if (n >= sizeof(addr))
			return refuse(ep, use, "the IPv4 address is not valid", m);
		memcpy(addr, h, n);
		addr[n] = '\0';
		if (inet_pton(AF_INET, addr, &a4) != 1)
			return refuse(ep, use, "the IPv4 address is not valid", m);
		return RETE_OK;
	}
	if (!name_ok(h, n))
		return refuse(ep, use,
			      "the host is not an address nor a name (letters, digits, '.', '-' "
			      "and '_')",
			      m);
	return RETE_OK;
}

/* host_end: where the host of s (n bytes: HOST[:PORT]) ends: after the ']'
 * of a bracketed one (NULL when none closes it), else at its first ':' (or
 * n) for a source, its last for a destination. */
static const char *host_end(const char *s, size_t n, bool source)
{
	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		return close ? close + 1 : NULL;
	}
	const char *c = source ? memchr(s, ':', n) : NULL;
	if (c != NULL && memchr(c + 1, ':', n - (size_t)(c - s) - 1) != NULL)
		c = NULL; /* an IPv6 address without brackets: host_check says so */
	if (!source)
		for (size_t i = n; i > 0 && c == NULL; i--)
			if (s[i - 1] == ':')
				c = s + i - 1;
	return c ? c : s + n;
}

#define NO_CLOSE                                                                                   \
	"no ']' closes the IPv6 address; write it in brackets before the port, e.g. "              \
	"tcp://[2001:db8::5]:7700"

static rete_err tcp_check(const char *ep, rete_endpoint_use use, rete_msg *m)
{
	const char *hp = ep + 6; /* after tcp:// */
	rete_err err;
	int src_fam = FAM_NAME, fam = FAM_NAME;

	/* ZeroMQ's tcp://SOURCE;HOST:PORT: the local address or interface a
	 * connection leaves from (SOURCE[:PORT]), for machines of several */
	const char *semi = strchr(hp, ';');
	if (semi != NULL) {
		if (use == RETE_ENDPOINT_LISTEN)
			return refuse(ep, use, "a source address (SOURCE;) is for connecting", m);
		size_t len = (size_t)(semi - hp);
		const char *end = host_end(hp, len, true);
		if (end == NULL)
			return refuse(ep, use, NO_CLOSE, m);
		if ((err = host_check(ep, hp, (size_t)(end - hp), use, true, &src_fam, m)) !=
		    RETE_OK)
			return err;
		if (end < semi && hp[0] == '[' && *end != ':')
			return refuse(ep, use, "after the source's ']' comes ':PORT' or ';'", m);
		if (end == semi) {
			/* libzmq (4.3) connects from SOURCE:PORT only: without
			 * the port, it never connects, and says nothing */
			char why[360];
			snprintf(why, sizeof(why),
				 "the source has no port: write tcp://%.*s:0;HOST:PORT (0: any "
				 "free port; ZeroMQ leaves from a source only with its port)",
				 (int)(end - hp), hp);
			return refuse(ep, use, why, m);
		}
		size_t sp = (size_t)(semi - end - 1);
		if (sp == 0 || strspn(end + 1, "0123456789") != sp || sp > 5 ||
		    strtoul(end + 1, NULL, 10) > 65535)
			return refuse(ep, use,
				      "the source's port is not a number from 0 to 65535 (0: any "
				      "free port)",
				      m);
		hp = semi + 1;
	}
	size_t hl = strlen(hp);
	const char *colon = host_end(hp, hl, false);
	if (colon == NULL)
		return refuse(ep, use, NO_CLOSE, m);
	if (hp[0] == '[' && *colon != ':')
		return refuse(ep, use,
			      "after the ']' of the IPv6 address comes ':PORT', e.g. "
			      "tcp://[2001:db8::5]:7700",
			      m);
	if (*colon != ':')
		return refuse(ep, use, "it has no port after the host (tcp://HOST:PORT)", m);
	if ((err = host_check(ep, hp, (size_t)(colon - hp), use, false, &fam, m)) != RETE_OK)
		return err;
	if (src_fam != FAM_NAME && fam != FAM_NAME && src_fam != fam)
		return refuse(ep, use,
			      "the source address and the host are one IPv4, the other IPv6; "
			      "give both of one family",
			      m);
	if (src_fam == FAM_V6 && fam == FAM_NAME)
		return refuse(ep, use,
			      "an IPv6 source needs the broker's IPv6 address in brackets (a host "
			      "name is connected to over IPv4)",
			      m);
	const char *port = colon + 1;
	size_t pn = strlen(port);
	if ((pn == 1 && (port[0] == '*' || port[0] == '0')))
		return refuse(
		    ep, use,
		    use == RETE_ENDPOINT_LISTEN
			? "a port the system picks ('*' or 0) changes at every start, and "
			  "the agents must know it"
			: "a port the system picks ('*' or 0) is no port to connect to",
		    m);
	if (!port_ok(port, pn)) {
		char why[96];
		if (pn == 0)
			snprintf(why, sizeof(why),
				 "it has no port after the host (tcp://HOST:PORT)");
		else if (strspn(port, "0123456789") != pn)
			snprintf(why, sizeof(why), "the port '%.12s' is not a number", port);
		else if (port[0] == '0')
			snprintf(why, sizeof(why), "the port '%.12s' begins with 0", port);
		else
			snprintf(why, sizeof(why), "the port %.12s is beyond 65535", port);
		return refuse(ep, use, why, m);
	}
	return RETE_OK;
}

rete_err rete_endpoint_check(const char *ep, rete_endpoint_use use, rete_msg *m)
{
	if (!ep || !*ep)
		return rete_msg_set(m, RETE_EINVAL, "the endpoint is empty; %s", ACCEPTED);
	if (strlen(ep) > RETE_ENDPOINT_MAX)
		return refuse(ep, use, "it is longer than 255 bytes", m);
	for (const char *s = ep; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return refuse(ep, use,
				      "it holds a space or a character outside printable ASCII", m);
	if (strncmp(ep, "tcp://", 6) == 0)
		return tcp_check(ep, use, m);
	if (strncmp(ep, "ipc://", 6) == 0) {
		size_t n = strlen(ep + 6);
		if (n == 0)
			return refuse(ep, use, "the socket's path after ipc:// is missing", m);
		if (strcmp(ep + 6, "*") == 0)
			return refuse(
			    ep, use,
			    "ipc://* is a file name the system picks at every start, which "
			    "the agents cannot know",
			    m);
		if (n >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return refuse(
			    ep, use,
			    "the socket's path is longer than 107 bytes, the system's limit "
			    "for a Unix socket",
			    m);
		return RETE_OK;
	}
	return refuse(ep, use, "it begins with neither tcp:// nor ipc://", m);
}

bool rete_endpoint_tcp_parts(const char *ep, char *host, size_t hostlen, unsigned *port)
{
	if (strncmp(ep, "tcp://", 6) != 0)
		return false;
	const char *hp = ep + 6, *colon = strrchr(hp, ':');
	if (colon == NULL || (size_t)(colon - hp) >= hostlen || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5)
		return false;
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = '\0';
	*port = (unsigned)strtoul(colon + 1, NULL, 10);
	return true;
}

bool rete_endpoint_ipv6(const char *ep, rete_endpoint_use use)
{
	(void)use;
	if (ep == NULL || strncmp(ep, "tcp://", 6) != 0)
		return false;
	/* the host decides (after the source, if any): no name is looked up
	 * here, where a resolver that is slow or does not answer would hold
	 * the caller; ZeroMQ's I/O thread looks a name up for IPv4 */
	const char *hp = ep + 6, *semi = strchr(hp, ';');
	return (semi != NULL ? semi[1] : hp[0]) == '[';
}

const char *rete_endpoint_peer_text(const char *addr, char *out, size_t n)
{
	if (n == 0)
		return out;
	out[0] = '\0';
	if (addr == NULL)
		return out;
	/* an IPv4 client of a [::] socket: ::ffff:10.1.2.3, or as an
	 * endpoint tcp://[::ffff:10.1.2.3]:7700 */
	bool ep = strncasecmp(addr, "tcp://[::ffff:", 14) == 0;
	const char *v4 = ep ? addr + 14 : strncasecmp(addr, "::ffff:", 7) == 0 ? addr + 7 : NULL;
	size_t len = v4 ? (ep ? strcspn(v4, "]") : strlen(v4)) : 0;
	if (v4 != NULL && memchr(v4, '.', len) != NULL && dotted(v4, len) &&
	    (!ep || v4[len] == ']'))
		snprintf(out, n, "%s%.*s%s", ep ? "tcp://" : "", (int)len, v4,
			 ep ? v4 + len + 1 : "");
	else
		snprintf(out, n, "%s", addr);
	return out;
}

int rete_endpoint_ipc_served(const char *ep)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;

	if (ep == NULL || strncmp(ep, "ipc://", 6) != 0 || ep[6] == '@' || ep[6] == '\0')
		return 0;
	if (strlen(ep + 6) >= sizeof(sa.sun_path))
		return 0; /* rete_endpoint_check refuses it: no file there of ours */
	if (lstat(ep + 6, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	memcpy(sa.sun_path, ep + 6, strlen(ep + 6) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int served = 1, e = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		e = errno;
		/* a full queue (EAGAIN) is a listener too */
		served = e == ECONNREFUSED || e == ENOENT ? 0 : e == EAGAIN ? 1 : -1;
	}
	close(fd);
	errno = e;
	return served;
}
