/* endpoint.h — the ZeroMQ endpoints written in the configuration files.
 *
 * ZeroMQ takes more than an operator means, and takes some of it silently
 * otherwise than written: a port beyond 65535 becomes that port modulo
 * 65536 (tcp://127.0.0.1:99999 listens on 34463), a port followed by junk
 * is read up to the junk, `*` and `0` are a port the system picks, which no
 * agent can know. rete_endpoint_check accepts only what rete's programs
 * mean by an endpoint, so that --check-config says so before a start:
 *
 *   tcp://HOST:PORT   PORT a whole number from 1 to 65535 (no sign, no
 *                     leading zero); HOST an IPv4 address, an IPv6 address
 *                     in brackets ([2001:db8::5]; no zone id, so no
 *                     link-local address; no multicast nor IPv4-mapped
 *                     one) or a name (letters, digits, '.',
 *                     '-', '_'; at most 253): to listen on, an interface's
 *                     name (ZeroMQ resolves no host names there; the
 *                     interface's IPv4 address), `*` (every IPv4 address)
 *                     or `[::]` (every address, IPv6 and IPv4); to connect
 *                     to, a host name; to connect, ZeroMQ's
 *                     tcp://SOURCE:PORT;HOST:PORT too (SOURCE's PORT from 0,
 *                     any free port, to 65535: libzmq 4.3 never connects
 *                     from a SOURCE without one; SOURCE and HOST of one
 *                     family when both are addresses; an IPv6 SOURCE with an
 *                     IPv6 HOST address only);
 *   ipc://PATH        a Unix socket, PATH at most 107 bytes (the kernel's
 *                     limit for a socket's path), not `*`.
 *
 * ZeroMQ uses IPv6 on a socket only with ZMQ_IPV6 set, which also changes
 * how it resolves a name (IPv6 first): rete_endpoint_ipv6 says which
 * sockets get it, so that every endpoint that worked on IPv4 keeps working
 * as it did.
 *
 * Whether a name resolves, is an interface, or the address is one of this
 * machine's is for --check-config (broker.c's endpoint_probe) and the start
 * to find out.
 */
#ifndef RETE_ENDPOINT_H
#define RETE_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* The longest endpoint accepted (the configuration's buffers hold it). */
#define RETE_ENDPOINT_MAX 255

/* What the endpoint is for: a socket that listens (the broker's listen
 * and events) or one that connects (agents, coordinators, auditors). */
typedef enum rete_endpoint_use {
	RETE_ENDPOINT_LISTEN,
	RETE_ENDPOINT_CONNECT,
} rete_endpoint_use;

/* rete_endpoint_check: RETE_OK when ep is an endpoint as above for use;
 * RETE_EINVAL otherwise, with m a sentence that names ep, says what is
 * wrong with it and what is accepted. */
rete_err rete_endpoint_check(const char *ep, rete_endpoint_use use, rete_msg *m);

/* rete_endpoint_tcp_parts splits tcp://HOST:PORT (after its last ':') into
 * host (hostlen bytes: "*", "10.0.0.5", "eth0", "[::1]" as written) and
 * *port; false when ep is not tcp://, has no ':' or too long a host, or
 * its port is not a number. It does not check the parts: that is
 * rete_endpoint_check's. */
bool rete_endpoint_tcp_parts(const char *ep, char *host, size_t hostlen, unsigned *port);

/* rete_endpoint_ipc_served: for ep = ipc://PATH, does a program accept
 * connections on PATH now? ZeroMQ's ipc bind deletes whatever file is at
 * PATH and binds a new socket there, so a second broker given the first
 * one's path would leave it running, unreachable, and nobody told (review
 * s16 rev-edges 2); a listener must ask first. 1 yes (a connect() to it
 * was accepted, or its queue is full); 0 no (no such file, not a socket,
 * or a socket file nobody listens on: what a killed program leaves), or
 * not an ipc:// path (tcp:// is refused by the kernel itself; an abstract
 * @name too); -1 cannot tell (e.g. not allowed to connect): errno's. The
 * probe connects and closes at once: the listener sees a connection that
 * never said hello. */
int rete_endpoint_ipc_served(const char *ep);

/* rete_endpoint_ipv6: whether the socket for ep (an endpoint
 * rete_endpoint_check accepted for use) is made with ZMQ_IPV6: when its
 * host is an IPv6 address in brackets. A host name is reached over IPv4,
 * as before IPv6 was taken: ZeroMQ looks it up in its I/O thread, at every
 * connection attempt, for IPv4 addresses only; a name with IPv6 addresses
 * only needs its address written in brackets. Looks nothing up (a slow or
 * silent resolver holds no caller). */
bool rete_endpoint_ipv6(const char *ep, rete_endpoint_use use);

/* A buffer for a peer address from rete_endpoint_peer_text (an IPv6
 * address with a zone id fits; a longer one is cut). */
#define RETE_PEER_ADDR_MAX 64

/* rete_endpoint_peer_text writes into out (n bytes) a peer's address as
 * ZeroMQ says it (ZAP's address, a message's Peer-Address; NULL is "") as
 * the logs print it: an IPv4 client of a [::] socket, which ZeroMQ names
 * IPv4-mapped (::ffff:10.1.2.3), as its IPv4 address; so too in an
 * endpoint (a socket monitor's tcp://[::ffff:10.1.2.3]:7700 is
 * tcp://10.1.2.3:7700). Returns out. */
const char *rete_endpoint_peer_text(const char *addr, char *out, size_t n);

#endif
