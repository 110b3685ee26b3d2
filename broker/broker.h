/* broker.h — the broker itself: sockets, the pipeline, delivery, events.
 *
 * broker_run owns everything the broker holds while it runs: the ZeroMQ
 * context and sockets (ROUTER for requests, PUB for events, both CURVE
 * servers behind the ZAP handler), the store, the verify pool and the
 * per-party delivery state. It returns when SIGTERM or SIGINT arrives,
 * after the batch in hand is committed and answered.
 */
#ifndef RETE_BROKER_BROKER_H
#define RETE_BROKER_BROKER_H

#include "config.h"

/* Flags of broker_run: what the operator declared on the command line. */
#define BROKER_INIT 0x1u /* --init: create a new log in an empty data folder */
#define BROKER_RESTORE                                                                             \
	0x2u /* --restore: the store was restored from a copy; go on                               \
		as a new log epoch (docs/operations.md) */

/* broker_run runs the broker with configuration c (the broker takes it
 * over: on reload the new one replaces it; broker_run frees whatever
 * configuration is in force when it returns, and sets nothing in c for the
 * caller, who must not use or free c afterwards). Returns the process exit
 * code: 0 after a clean stop, 2 when it cannot start (key, store, sockets;
 * a store in use by another broker, of another identity, missing without
 * BROKER_INIT, or shorter than a checkpoint already signed without
 * BROKER_RESTORE; the reason is logged). */
int broker_run(broker_config *c, unsigned flags);

/* broker_check_store checks the store of c as broker_run would at start
 * with flags, without writing anything and without the writer's lock (it
 * may run beside a running broker): the store opened read-only, its
 * schema, its log identity against c (origin, key), its copy mark and the
 * state file. Every refusal broker_run would log is printed on stderr
 * ("FILE: sentence", the same sentence) and appended to problems; what it
 * would warn about is printed on stdout ("FILE: note: ...") and appended
 * to notes (both lists cut long sentences: count them, print them not).
 * c stays the caller's. Returns 0 (the store would be served) or 2. */
int broker_check_store(broker_config *c, unsigned flags, rete_problems *problems,
		       rete_problems *notes);

#endif
