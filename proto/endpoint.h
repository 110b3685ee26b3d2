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
 *                     leading zero); HOST an IPv4 address or a name
 *                     (letters, digits, '.', '-', '_'; at most 253): to
 *                     listen on, an interface's name (ZeroMQ resolves no
 *                     host names there) or `*` (every address); to connect
 *                     to, a host name; to connect, ZeroMQ's
 *                     tcp://SOURCE[:PORT];HOST:PORT too;
 *   ipc://PATH        a Unix socket, PATH at most 107 bytes (the kernel's
 *                     limit for a socket's path), not `*`.
 *
 * IPv6 addresses are refused: rete does not set ZMQ_IPV6, without which
 * ZeroMQ cannot listen on one and a connection to one carries nothing
 * (enabling it would make a host name such as localhost resolve to ::1
 * first, away from a broker listening on 127.0.0.1).
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

#endif
