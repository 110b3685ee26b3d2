/* wire.h — the client side of rete's wire protocol.
 *
 * Agents, the `rete` command and the tests talk to the broker through this
 * module: one ZeroMQ DEALER socket per connection, a CURVE client whose keys
 * come from the party's Ed25519 key (libsodium's X25519 conversion), the
 * broker's pinned public key as the server key, one protobuf frame
 * (ClientFrame / BrokerFrame) per ZeroMQ message, strict decoding of what
 * the broker sends. A socket monitor watches the handshakes: when the
 * broker refuses our key, rete_wire_auth_failed() turns true and receiving
 * fails with RETE_EREFUSED ("the broker refused our key") instead of the
 * endless silent reconnects ZeroMQ would otherwise do. After a reconnect
 * (broker restart) the HELLO last sent is sent again, so deliveries resume
 * on the new connection by themselves; the broker's PINGs are answered
 * inside rete_wire_recv.
 *
 * rete_wire_subscribe gives a connection of the other kind: a SUB socket on
 * the broker's events endpoint (coordinators and auditors only), read with
 * rete_wire_event_recv.
 *
 * A rete_wire is used from one thread at a time. All connections of a
 * process share one ZeroMQ context (created with the first, terminated with
 * the last), so a load generator can hold thousands of them.
 */
#ifndef RETE_WIRE_H
#define RETE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "error.h"
#include "keys.h"
#include "rete.pb-c.h"

typedef struct rete_wire rete_wire;

/* rete_wire_connect connects a DEALER to endpoint (tcp://HOST:PORT or
 * ipc://PATH) as the party holding my_key, trusting only a broker holding
 * broker_key (both borrowed; the keys are copied). The connection is made
 * in the background: nothing waits here. *out is the caller's; close with
 * rete_wire_close. Errors: RETE_EINVAL (bad endpoint), RETE_ENET,
 * RETE_ENOMEM. */
rete_err rete_wire_connect(rete_wire **out, const char *endpoint, const rete_pubkey *broker_key,
			   const rete_seckey *my_key, rete_msg *m);

/* rete_wire_subscribe connects a SUB socket to the broker's events endpoint
 * (subscribed to everything), as rete_wire_connect does. Read events with
 * rete_wire_event_recv. Errors as rete_wire_connect. */
rete_err rete_wire_subscribe(rete_wire **out, const char *endpoint, const rete_pubkey *broker_key,
			     const rete_seckey *my_key, rete_msg *m);

/* rete_wire_close closes *w (unsent frames are dropped) and sets *w = NULL;
 * NULL and *w == NULL are fine. */
void rete_wire_close(rete_wire **w);

/* rete_wire_auth_failed: true when the broker refused our key at the last
 * handshake (false again once a handshake succeeds). */
bool rete_wire_auth_failed(rete_wire *w);

/* rete_wire_connected: true while a handshake has succeeded and no
 * disconnection has been seen since. */
bool rete_wire_connected(rete_wire *w);

/* rete_wire_socket: the ZeroMQ socket, for a caller that polls several
 * things at once (then call rete_wire_recv with timeout 0 when it is
 * readable, and at least every second so handshake events are seen). */
void *rete_wire_socket(rete_wire *w);

/* rete_wire_send packs f (borrowed; a version of 0 is sent as
 * RETE_PROTOCOL_VERSION) and queues it without waiting. Errors: RETE_ENET
 * (the queue is full: the broker has been unreachable for long),
 * RETE_ENOMEM, RETE_EINVAL (not a DEALER connection). */
rete_err rete_wire_send(rete_wire *w, const Rete__ClientFrame *f, rete_msg *m);

/* rete_wire_recv waits up to timeout_ms (0 = do not wait, -1 = forever) for
 * the next BrokerFrame and decodes it strictly into *out (caller frees with
 * rete__broker_frame__free_unpacked(*out, NULL)). The broker's PINGs are
 * answered here and not returned. Errors: RETE_ETIMEDOUT (nothing came),
 * RETE_EREFUSED (the broker refused our key; m says so), RETE_EDECODE (a
 * frame that does not decode strictly: it is dropped), RETE_EVERSION (a
 * protocol version other than ours), RETE_ENET, RETE_ENOMEM. */
rete_err rete_wire_recv(rete_wire *w, int timeout_ms, Rete__BrokerFrame **out, rete_msg *m);

/* rete_wire_hello sends HELLO (party: who we say we are; software: e.g.
 * "rete-agent 0.1"; both copied and sent again after every reconnect). The
 * WELCOME (or a refusal) arrives through rete_wire_recv. Errors as
 * rete_wire_send. */
rete_err rete_wire_hello(rete_wire *w, const char *party, const char *software, rete_msg *m);

/* rete_wire_standby makes every later HELLO on w (rete_wire_hello's, and
 * the one sent again after a reconnect) a standby HELLO (protocol 5): the
 * broker welcomes the connection but delivers to it only while no other
 * connection of the party takes the deliveries. For an agent told that
 * another connection with its key took them (ERROR_CODE_TAKEN_OVER), so
 * that it never takes them back. Sends nothing itself. */
void rete_wire_standby(rete_wire *w);

/* rete_wire_submit sends SUBMIT with the SignedMessage bytes and the sealed
 * part (sealed may be NULL when the body has none); both borrowed. The
 * RECEIPT arrives through rete_wire_recv. Errors as rete_wire_send. */
rete_err rete_wire_submit(rete_wire *w, const uint8_t *signed_message, size_t len,
			  const uint8_t *sealed, size_t sealed_len, rete_msg *m);

/* rete_wire_ack acknowledges delivery of log entry `index` WITHOUT the
 * recipient's signature: protocol 4's ACK of an entry the broker wrote (a
 * Delivery, a Notice, a Directory); of an agency's entry the broker refuses
 * it with ERROR_CODE_BAD_ACK (tests use it to show that); error 0 means
 * received and recorded, otherwise error and text say why the entry could
 * not be verified or opened (text may be NULL). Errors as rete_wire_send. */
rete_err rete_wire_ack(rete_wire *w, uint64_t index, Rete__ErrorCode error, const char *text,
		       rete_msg *m);

/* rete_wire_ack_build fills *ack for the delivered LogEntry bytes `entry`
 * (its log index `index`), signed by the recipient (protocol 3): sa gets
 * SignedAck{AckBody{origin, recipient, index, leaf_hash = RFC 6962 leaf
 * hash of entry, acked_at = now (ms), error, text}} signed with key over
 * RETE_CTX_ACK (rete_ack_sign), and ack carries index, error and text (text
 * may be NULL) and points at sa. Free sa with rete_signed_ack_clear; ack
 * borrows text. RETE_ENOMEM, RETE_ECRYPTO. */
rete_err rete_wire_ack_build(Rete__Ack *ack, Rete__SignedAck *sa, const rete_seckey *key,
			     const char *origin, const char *recipient, const uint8_t *entry,
			     size_t len, uint64_t index, Rete__ErrorCode error, const char *text,
			     rete_msg *m);

/* rete_wire_ack_build_leaf is rete_wire_ack_build for an entry known by its
 * leaf hash alone (its 32 bytes, RETE_MERKLE_HASH, kept by the agent to ack again
 * an entry it wrote: agent_inbox_held.c). */
rete_err rete_wire_ack_build_leaf(Rete__Ack *ack, Rete__SignedAck *sa, const rete_seckey *key,
				  const char *origin, const char *recipient, const uint8_t *leaf,
				  uint64_t index, Rete__ErrorCode error, const char *text,
				  rete_msg *m);

/* rete_wire_ack_signed sends the ACK rete_wire_ack_build makes. Errors as
 * rete_wire_ack_build and rete_wire_send. */
rete_err rete_wire_ack_signed(rete_wire *w, const rete_seckey *key, const char *origin,
			      const char *recipient, const uint8_t *entry, size_t len,
			      uint64_t index, Rete__ErrorCode error, const char *text, rete_msg *m);

/* rete_wire_ping sends PING with nonce; the PONG comes through
 * rete_wire_recv. Errors as rete_wire_send. */
rete_err rete_wire_ping(rete_wire *w, uint64_t nonce, rete_msg *m);

/* rete_wire_query sends QUERY q (borrowed; when q->request_id is 0 a fresh
 * one is assigned in q). *request_id (may be NULL) gets the id the answer
 * will echo. Errors as rete_wire_send. */
rete_err rete_wire_query(rete_wire *w, Rete__Query *q, uint64_t *request_id, rete_msg *m);

/* rete_wire_call sends q and waits up to timeout_ms for its answer; *out
 * gets the whole BrokerFrame (its `result` is the answer; caller frees as
 * for rete_wire_recv). Other frames arriving meanwhile are DROPPED, so use
 * it only on a connection that receives no deliveries (no HELLO as an
 * agency: the CLI, coordinators, auditors). Errors as rete_wire_recv. */
rete_err rete_wire_call(rete_wire *w, Rete__Query *q, int timeout_ms, Rete__BrokerFrame **out,
			rete_msg *m);

/* rete_wire_event_recv waits up to timeout_ms for the next Event on a
 * subscription and decodes it strictly into *out (caller frees with
 * rete__event__free_unpacked(*out, NULL)). Errors as rete_wire_recv. */
rete_err rete_wire_event_recv(rete_wire *w, int timeout_ms, Rete__Event **out, rete_msg *m);

#endif
