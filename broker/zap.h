/* zap.h — the broker's ZAP handler: who may connect, and as whom.
 *
 * ZeroMQ asks the handler bound at inproc://zeromq.zap.01 about every CURVE
 * handshake. We answer from a table precomputed from the directory: the
 * client's X25519 public key -> party id and kind. The answer's User-Id is
 * the party id (read per message with zmq_msg_gets(msg, "User-Id")); the
 * metadata property "X-Rete-Key" carries the hex X25519 key the party
 * authenticated with, so the broker can cut off a connection whose key a
 * reload replaced. The ROUTER socket uses ZAP domain BROKER_ZAP_DOMAIN
 * (every party of the directory); the PUB socket uses
 * BROKER_ZAP_DOMAIN_EVENTS (coordinators and auditors only).
 *
 * The handler must be bound before any server socket is: a CURVE server
 * whose ZAP endpoint is missing admits everyone.
 */
#ifndef RETE_BROKER_ZAP_H
#define RETE_BROKER_ZAP_H

#include "config.h"
#include "error.h"

#define BROKER_ZAP_DOMAIN	 "rete"
#define BROKER_ZAP_DOMAIN_EVENTS "events"
#define BROKER_ZAP_KEY_PROPERTY	 "X-Rete-Key"

typedef struct broker_zap broker_zap;

/* broker_zap_start binds the ZAP endpoint in zctx (borrowed; it must
 * outlive the handler) and starts the handler thread with the table of c
 * (copied: c may be freed afterwards). *out is the caller's; stop it with
 * broker_zap_stop. Errors: RETE_ENET (cannot bind: e.g. another handler is
 * bound in this context), RETE_ENOMEM. */
rete_err broker_zap_start(broker_zap **out, void *zctx, const broker_config *c, rete_msg *m);

/* broker_zap_update replaces the table with the one of c (copied), at once
 * for every later handshake. RETE_ENOMEM (the old table stays). */
rete_err broker_zap_update(broker_zap *z, const broker_config *c);

/* broker_zap_stop joins the handler thread and frees *z (sets it to NULL;
 * NULL is fine). Call zmq_ctx_shutdown on its context first: that is what
 * wakes the thread. */
void broker_zap_stop(broker_zap **z);

#endif
