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
 *   is said once per party. What is signed with it is left with the broker
 *   (not acked, not refused: an honest rotation loses nothing) and taken
 *   once the operator confirms the key. Not acked, it does not stall other
 *   partners' deliveries: the broker sets aside what a recipient read and
 *   left unacked for `redeliver`, out of its delivery window, and sends it
 *   again in rounds, in log order (broker/broker.c, "set aside"). The agent
 *   itself keeps nothing of it: an ACK would log a Delivery (the sender
 *   would take the message as received, and stop holding it) and a refusal
 *   would end it, and neither is true of a message the operator has not
 *   judged yet. A party's earlier confirmed keys
 *   still verify what it signed before its rotation; a key may be
 *   confirmed in advance (--trust before the directory shows it), and a
 *   key the operator refused (the pinned one kept) is refused from then on
 *   (meta AGENT_META_PARTY_KEYS).
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

/* agent_keys_earlier_verify: does one of party's earlier confirmed keys
 * (pinned before its pinned key, kept by agent_keys_pin) verify the
 * signature verify and ctx hold? What party signed before its rotation and
 * reached us after its new key was confirmed. verify is called until one
 * key verifies. */
bool agent_keys_earlier_verify(struct agent *a, const char *party, agent_key_verify_fn verify,
			       void *ctx);

/* agent_keys_verify_message: agent_keys_check of the SignedMessage sm by
 * sender, the party its Message names. */
agent_key_verdict agent_keys_verify_message(struct agent *a, const Rete__SignedMessage *sm,
					    const char *sender, uint8_t dirkey[RETE_PK_LEN]);

/* agent_keys_verify_ack: agent_keys_check of the SignedAck sa by party,
 * the recipient its body names (the signer). */
agent_key_verdict agent_keys_verify_ack(struct agent *a, const Rete__SignedAck *sa,
					const char *party, uint8_t dirkey[RETE_PK_LEN]);

/* agent_keys_unconfirmed records an unconfirmed key change of party (the
 * directory's key dirkey signed `what`, e.g. "referral m-1 (log entry 31)",
 * the log entry `entry`, which the caller leaves with the broker) and says
 * the ALARM once per party (a party already recorded: a warning naming
 * what, once per entry). The record stays until --trust confirms a key for
 * party (agent_keys_forget); its "entries" are the entries left waiting. */
void agent_keys_unconfirmed(struct agent *a, const char *party, const uint8_t dirkey[RETE_PK_LEN],
			    const char *what, uint64_t entry);

/* agent_keys_pin pins key for party (--trust, or a key confirmed in
 * advance that the directory now shows): the key pinned before is kept
 * among party's earlier keys (what party signed with it still verifies),
 * the pending record and the key change are dropped. In the open
 * transaction, or in one of its own. RETE_OK, RETE_ENOMEM, RETE_EFULL,
 * RETE_ESTORE. */
rete_err agent_keys_pin(struct agent *a, const char *party, const uint8_t key[RETE_PK_LEN],
			rete_msg *m);

/* agent_keys_mark records what this agency's operator said of party's key
 * b64 (base64): advance, confirmed before the directory shows it (pinned
 * when it does); otherwise refused (the pinned key was kept: what is signed
 * with b64 is refused from then on, not left waiting). RETE_OK,
 * RETE_ENOMEM, RETE_EFULL, RETE_ESTORE. */
rete_err agent_keys_mark(struct agent *a, const char *party, const char *b64, bool advance,
			 rete_msg *m);

/* agent_keys_take_advance: is dirkey the key of party this agency's
 * operator confirmed in advance? Then it is pinned now (said). */
bool agent_keys_take_advance(struct agent *a, const char *party, const uint8_t dirkey[RETE_PK_LEN]);

/* agent_keys_own_check checks directory d for the agent's own id: a key
 * that is not its own raises the own-key ALARM, once per entry, and so
 * does a directory without the id (its serial named). It also says (info)
 * when d's serial shows that directories were logged that the agent was
 * never given, pins the keys confirmed in advance that d shows, and drops
 * a pending key of a party d shows with its pinned key again. */
void agent_keys_own_check(struct agent *a, const agent_directory *d);

/* agent_keys_own_refused: the broker refused a frame of ours because our
 * id is not in its directory (UNKNOWN_PARTY): a directory the agent was
 * not given removed it. The own-key ALARM, "missing", keyed by the serial
 * of the last directory seen (once per serial). */
void agent_keys_own_refused(struct agent *a);

/* agent_keys_start, at the agent's start: an own-key alarm whose key is
 * now the agent's own (the agency rotated its key and the agent runs with
 * the new one) is over: forgotten, said at info level. */
void agent_keys_start(struct agent *a);

/* agent_keys_hold_back: should the entry at log index `index`, signed by
 * party with its pinned key, wait (not acked) because entries of party
 * that waited for that key to be confirmed, at lower indexes, are not
 * taken yet (meta AGENT_META_KEY_TAKING)? So that what waited is taken in
 * log order after --trust, though the broker's round of what it set aside
 * was under way when the key was confirmed. An entry left so KEYS_HOLD_MAX
 * times while the lower ones never came again (withdrawn at the broker's
 * expiry) ends the wait for them (said). */
bool agent_keys_hold_back(struct agent *a, const char *party, uint64_t index);

/* agent_keys_taken: the entry at log index `index` was taken or refused:
 * no longer one that waited (AGENT_META_KEY_TAKING; a party's message, or
 * a delivery receipt of ours its acknowledgement made wait). */
void agent_keys_taken(struct agent *a, uint64_t index);

/* agent_keys_forget removes the unconfirmed key change of party (after
 * --trust) from the meta record, in the open transaction if any. RETE_OK,
 * RETE_EFULL, RETE_ESTORE. */
rete_err agent_keys_forget(struct agent *a, const char *party, rete_msg *m);

#endif
