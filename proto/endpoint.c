/* endpoint.c — see endpoint.h. */
#include "endpoint.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define ACCEPTED "give tcp://HOST:PORT (PORT from 1 to 65535) or ipc://PATH"

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

#define NO_IPV6                                                                                    \
	"rete's ZeroMQ sockets speak IPv4 only (ZMQ_IPV6 is not set, so ZeroMQ could not "         \
	"listen there and a connection there would carry nothing); give an IPv4 address "          \
	"or a host name"

/* host_check: the host part h (n bytes) of tcp://HOST:PORT */
static rete_err host_check(const char *ep, const char *h, size_t n, rete_endpoint_use use,
			   rete_msg *m)
{
	char addr[64];
	if (n == 0)
		return refuse(ep, use, "the host before the port is missing", m);
	if (h[0] == '[' || memchr(h, ':', n))
		return refuse(ep, use, NO_IPV6, m);
	if (n == 1 && h[0] == '*')
		return use == RETE_ENDPOINT_LISTEN
			   ? RETE_OK
			   : refuse(ep, use,
				    "'*' (every address of a machine) is for listening; give the "
				    "broker's host name or address",
				    m);
	if (dotted(h, n)) {
		struct in_addr a4;
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

static rete_err tcp_check(const char *ep, rete_endpoint_use use, rete_msg *m)
{
	const char *hp = ep + 6; /* after tcp:// */
	rete_err err;

	/* ZeroMQ's tcp://SOURCE;HOST:PORT: the local address or interface a
	 * connection leaves from (SOURCE[:PORT]), for machines of several */
	const char *semi = strchr(hp, ';');
	if (semi != NULL) {
		if (use == RETE_ENDPOINT_LISTEN)
			return refuse(ep, use, "a source address (SOURCE;) is for connecting", m);
		const char *sc = memchr(hp, ':', (size_t)(semi - hp));
		size_t sn = sc ? (size_t)(sc - hp) : (size_t)(semi - hp);
		if ((err = host_check(ep, hp, sn, use, m)) != RETE_OK)
			return err;
		if (sc &&
		    (semi - sc - 1 == 0 ||
		     strspn(sc + 1, "0123456789") != (size_t)(semi - sc - 1) || semi - sc - 1 > 5))
			return refuse(ep, use, "the source's port is not a number", m);
		hp = semi + 1;
	}
	const char *colon = strrchr(hp, ':');
	if (hp[0] == '[' || (colon && memchr(hp, ':', (size_t)(colon - hp))))
		return refuse(ep, use, NO_IPV6, m);
	if (!colon)
		return refuse(ep, use, "it has no port after the host (tcp://HOST:PORT)", m);
	if ((err = host_check(ep, hp, (size_t)(colon - hp), use, m)) != RETE_OK)
		return err;
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
