/* agent_keys.h — the agent's watch over the keys the broker's directory
 * gives.
 *
 * The directory (who has which key) is the broker's word: its operator
 * writes broker.ini. An agent that believed every key in it would let that
 * operator sign as any agency for as long as he keeps a key of his own
 * under its id. So the agent holds the broker to two rules:
 *
 * - The pin rule. A party's signature (a message it sent us, the
 *   acknowledgement it signed of one of ours) is verified with the key this
 *   agency pinned for it: on first use, or confirmed later by its operator
 *   (`rete-agent --trust ID --key KEY`). A party never seen before is pinned
 *   on first use (the signature verifies with its key in the directory). A
 *   signature that verifies only with a directory key that is not the
 *   pinned one is an unconfirmed key change: that key is recorded in
 *   "pending" for --trust (as the outbox's `key-changed` does), the change
 *   in meta AGENT_META_KEY_CHANGES (for `rete status`), and an ALARM line
 *   is said once per party.
 * - The own-key watch. Every directory the agent is given (a WELCOME, a
 *   delivered Directory entry) is checked for its own id: a key that is not
 *   its own public key is an ALARM naming the entry (meta
 *   AGENT_META_OWN_KEY, for `rete status`), since whoever holds that key
 *   can sign as this agency while the directory says so.
 *
 * Keys are written in the base64 form of `rete keygen`'s .pub files (what
 * operators compare by phone and pass to --trust --key).
 */
#ifndef RETE_AGENT_KEYS_H
#define RETE_AGENT_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_directory.h"
#include "codec.h"
#include "error.h"
#include "keys.h"

struct agent;

/* agent_key_verdict: what agent_keys_check found. */
typedef enum agent_key_verdict {
	AGENT_KEY_OK,	       /* verifies with the pinned key (or, pinned now on
				  first use, with the directory's) */
	AGENT_KEY_UNCONFIRMED, /* verifies only with the directory's key, which is
				  not the pinned one */
	AGENT_KEY_BAD,	       /* verifies with neither */
	AGENT_KEY_ERROR	       /* the pinned key could not be read (said in the
				  log): answer nothing, the broker delivers again */
} agent_key_verdict;

/* agent_key_verify_fn: does the signature the caller holds (ctx) verify
 * with pk? */
typedef bool (*agent_key_verify_fn)(const rete_pubkey *pk, void *ctx);

/* agent_keys_check applies the pin rule to a signature of party (verify
 * with ctx says whether a key verifies it). A party without a pin is
 * pinned here on first use (in the caller's transaction, if one is open).
 * For AGENT_KEY_UNCONFIRMED, dirkey gets the directory's key. */
agent_key_verdict agent_keys_check(struct agent *a, const char *party, agent_key_verify_fn verify,
				   void *ctx, uint8_t dirkey[RETE_PK_LEN]);

/* agent_keys_verify_message: agent_keys_check of the SignedMessage sm by
 * sender, the party its Message names. */
agent_key_verdict agent_keys_verify_message(struct agent *a, const Rete__SignedMessage *sm,
					    const char *sender, uint8_t dirkey[RETE_PK_LEN]);

/* agent_keys_verify_ack: agent_keys_check of the SignedAck sa by party,
 * the recipient its body names (the signer). */
agent_key_verdict agent_keys_verify_ack(struct agent *a, const Rete__SignedAck *sa,
					const char *party, uint8_t dirkey[RETE_PK_LEN]);

/* agent_keys_unconfirmed records an unconfirmed key change of party (the
 * directory's key dirkey signed `what`, e.g. "referral m-1 (log entry 31)")
 * and says the ALARM once per party (a party already recorded: a warning
 * naming what). The record stays until --trust confirms a key for party
 * (agent_keys_forget). */
void agent_keys_unconfirmed(struct agent *a, const char *party, const uint8_t dirkey[RETE_PK_LEN],
			    const char *what);

/* agent_keys_refusal writes into buf (n bytes) the sentence of the error
 * ACK of a message that verifies only with an unconfirmed key of party
 * (at most 300 bytes: the broker's notice to the sender keeps that much). */
void agent_keys_refusal(const struct agent *a, char *buf, size_t n, const char *party,
			const char *msgid);

/* agent_keys_own_check checks directory d for the agent's own id: a key
 * that is not its own raises the own-key ALARM, once per entry. It also
 * says (info) when d's serial shows that directories were logged that the
 * agent was never given. */
void agent_keys_own_check(struct agent *a, const agent_directory *d);

/* agent_keys_start, at the agent's start: an own-key alarm whose key is
 * now the agent's own (the agency rotated its key and the agent runs with
 * the new one) is over: forgotten, said at info level. */
void agent_keys_start(struct agent *a);

/* agent_keys_forget removes the unconfirmed key change of party (after
 * --trust) from the meta record, in the open transaction if any. RETE_OK,
 * RETE_EFULL, RETE_ESTORE. */
rete_err agent_keys_forget(struct agent *a, const char *party, rete_msg *m);

#endif
