/* agent.h — the running agency agent: what its parts share.
 *
 * rete-agent is one thread around one poll loop (agent_main.c): the broker
 * connection (agent_net.c), the outbox (agent_outbox.c: files in, SUBMITs
 * out, receipts back to sent/ and failed/), the inbox (agent_inbox.c:
 * DELIVERs verified, opened, written, recorded, acked) and the hook runner
 * (agent_hook.c). This struct is their common state; each part owns the
 * fields named after it.
 */
#ifndef RETE_AGENT_H
#define RETE_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent_config.h"
#include "agent_db.h"
#include "agent_directory.h"
#include "codec.h"
#include "keys.h"
#include "merkle.h"

struct agent_out_item;
struct agent_out_look;
struct agent_net;
struct agent_hooks;
struct agent_witness;
struct agent_metrics;
struct agent_privacy;

typedef struct agent {
	agent_config cfg;
	bool verbose;
	rete_seckey *sk;       /* the agency's key (sodium_malloc'd) */
	rete_pubkey broker_pk; /* pinned broker key */
	agent_db *db;
	char outbox_dir[4096], sent_dir[4096], failed_dir[4096], inbox_dir[4096];

	/* Set by the connection on WELCOME (and by delivered directories). */
	agent_directory *dir;
	char origin[128];
	bool welcomed;
	uint32_t epoch; /* the log epoch WELCOME said (0 = not said) */
	/* The epoch whose reuse of log indexes recorded before its restore
	 * agent_inbox.c said (once per epoch and run; 0: none yet). */
	uint32_t inbox_reuse_said;
	/* ... and the epoch whose messages delivered again after its restore
	 * (at a new index) it said (0: none yet). */
	uint32_t inbox_resent_said;
	/* The log epoch an inbox index recorded without its epoch counts as
	 * (meta "inbox_unkeyed_epoch", agent_inbox_start; 1 until then). */
	uint32_t inbox_unkeyed_epoch;
	/* The WELCOME's epoch is the epoch of the checkpoint it carries,
	 * verified with the pinned broker key (agent_witness_epoch): only then
	 * is an index recorded before a restore a new message said quietly. */
	bool epoch_signed;

	/* Held messages (agent_outbox.c): a new resubmission round begins at
	 * most once per connection, on the first sign that the log lost what
	 * it receipted; a round not complete (meta "resubmit") goes on at
	 * every WELCOME. held_check: a held item has gone, see whether the
	 * round is complete (at the next pump, outside any transaction). */
	bool held_resubmitted;
	bool held_check;
	/* Held messages not delivered after the directory's expiry
	 * (agent_undelivered.c): when it looks next (monotonic ms), since when
	 * the connection has been welcomed without a break (monotonic ms; 0:
	 * not connected), the expiry it last recorded in meta "dir_expiry"
	 * (0: none this run yet), the ids it said this run (a JSON array: said
	 * once even when meta "undelivered_said" cannot be written), and
	 * whether that meta is still to be written. */
	int64_t undelivered_next;
	int64_t undelivered_ready;
	int64_t undelivered_expiry;
	json_t *undelivered_said;
	bool undelivered_unstored;
	bool undelivered_looked; /* the first look of this run was said */

	/* Outbox (agent_outbox.c). */
	struct agent_out_item *out_items;
	size_t out_n, out_cap;
	bool out_rescan;     /* the outbox changed: scan it again */
	bool out_pruned;     /* stale records forgotten (once, at start) */
	int64_t out_fill_at; /* not before: sealing more outbox files (agent_outbox_pump) */
	char **out_said;     /* outbox names already said in the log as not answerable */
	size_t out_said_n;
	/* outbox files not taken in yet because they may still be written,
	 * and those inotify said were closed or moved in (agent_outbox.c) */
	struct agent_out_look *out_looks;
	size_t out_looks_n, out_looks_cap, out_looks_sorted;
	uint64_t max_frame; /* the broker's, from WELCOME (0: not said) */
	char *out_note;	    /* the receipts' checkpoint verified last (one per commit) */
	/* The broker's silence on a live connection (out_stall_check): when
	 * it was said (0: not said, or said over) and since when the oldest
	 * submission then waited. */
	int64_t out_stall_said_at;
	int64_t out_stall_since;
	/* The clocks' spell (out_clock_check): when this machine last said
	 * that the broker logged a message more than 5 min before we wrote it
	 * (our clock; 0: no spell), and how many receipts said so since. */
	int64_t clock_said_at;
	uint64_t clock_since;
	/* a receipt's loggedAt ahead of this machine's clock by more than
	 * RETE_CLOCK_SKEW_MS was said (once per spell: until a receipt within
	 * it) */
	bool clock_ahead_said;

	/* Deliveries not yet written (inbox/ could not be written): agent_inbox_held.c. */
	struct agent_inbox_held *inbox_held;

	struct agent_net *net;	       /* agent_net.c */
	struct agent_hooks *hooks;     /* agent_hook.c */
	struct agent_witness *witness; /* agent_witness.c */
	struct agent_metrics *metrics; /* agent_metrics.c, or NULL */
	struct agent_privacy *privacy; /* agent_privacy.c */
} agent;

/* agent_log prints one line on stderr with the time and the agent's id;
 * debug lines only with -v. */
void agent_log(const agent *a, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void agent_debug(const agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- agent_net.c: the broker connection -------------------------------- */

/* agent_net_send sends one ClientFrame (version filled in) when connected;
 * RETE_ENET when not (the caller retries after the next WELCOME). */
rete_err agent_net_send(agent *a, Rete__ClientFrame *frame);

/* agent_net_ready: connected and welcomed. */
bool agent_net_ready(const agent *a);

/* agent_net_ping_nonce: the nonce of the last PING sent (0: none yet); a
 * PONG with a greater one answers a PING sent after now. */
uint64_t agent_net_ping_nonce(const agent *a);

/* --- agent_outbox.c ---------------------------------------------------- */

/* agent_outbox_settle, at the start, forgets the records of files that
 * left outbox/ while the agent was stopped, recording first the moves to
 * sent/ or failed/ a stop cut short (their time and their "filed" line in
 * the person index): before anything is delivered or erased. A store of an
 * earlier schema is upgraded there (recorded as AGENT_STORE_SCHEMA); when
 * that fails, the start fails (the error, with its sentence in m). */
rete_err agent_outbox_settle(agent *a, rete_msg *m);

/* agent_outbox_scan takes in new outbox files (minting ids durably,
 * validating, and, once welcomed, sealing and signing them). */
void agent_outbox_scan(agent *a);

/* agent_outbox_closed: inotify said outbox/name was closed after writing
 * or moved in; the next scan takes it in at once (a file the scan finds
 * otherwise waits until it stops changing). name is copied. */
void agent_outbox_closed(agent *a, const char *name);

/* agent_outbox_pump sends the SUBMITs that are due (never sent on this
 * connection, or unanswered for `resubmit`), at most max_inflight. */
void agent_outbox_pump(agent *a, int64_t now);

/* agent_outbox_on_welcome: a new connection; every submission is due
 * again (a resubmission round not complete included), and files waiting
 * for the directory can be prepared. */
void agent_outbox_on_welcome(agent *a);

/* agent_outbox_on_receipt handles a RECEIPT (or a refusal frame). */
void agent_outbox_on_receipt(agent *a, const Rete__Receipt *r);

/* agent_outbox_resubmit_held begins a resubmission round (at most once per
 * connection; why says what showed that the broker's log may no longer hold
 * what it receipted): durably first (meta "round" and "resubmit"), then
 * every message held until its delivery receipt (database "held") is
 * submitted again, in the order of its log index. The broker's dedup
 * answers what it still has with the original receipt. The round stays due
 * across restarts until each held message has a receipt of this round. */
void agent_outbox_resubmit_held(agent *a, const char *why);

/* agent_outbox_round_begin begins a resubmission round in the caller's open
 * transaction (so that it commits with what showed the loss: a new epoch,
 * an alarm); the caller then calls agent_outbox_held_due. RETE_EFULL,
 * RETE_ESTORE. */
rete_err agent_outbox_round_begin(agent *a, const char *why, rete_msg *m);

/* agent_outbox_held_due puts in flight the held messages the current round
 * (if one is due) has not receipted again yet; why (may be NULL) is said
 * in the log. */
void agent_outbox_held_due(agent *a, const char *why);

/* agent_outbox_settled forgets the held copy of our message id: its
 * delivery receipt (or a final non-delivery notice) is in the inbox. Runs
 * in the caller's open transaction. RETE_ESTORE, RETE_EFULL. */
rete_err agent_outbox_settled(agent *a, const char *id, rete_msg *m);

/* agent_outbox_submitted_here: is message id in this run's outbox
 * pipeline, submitted (so logged, if at all, by a broker of our protocol)? */
bool agent_outbox_submitted_here(const agent *a, const char *id);

/* agent_outbox_sent_receipt: does sent/ have a receipt of our message id
 * (USED.receipt.json; USED into used)? sent/ is read whole: for what is
 * rare (a receipt or notice of an id this store has no record of). */
bool agent_outbox_sent_receipt(agent *a, const char *id, char *used, size_t n);

/* agent_outbox_awaits_receipt: is id a message of an outbox file this agent
 * signed (its bytes recorded, perhaps submitted and logged) and whose
 * receipt has not come? (A held message submitted again is not.) */
bool agent_outbox_awaits_receipt(const agent *a, const char *id);

/* agent_outbox_free releases the in-memory outbox state. */
void agent_outbox_free(agent *a);

/* --- agent_inbox.c ----------------------------------------------------- */

/* agent_inbox_deliver takes one DELIVER from the broker: first the pin
 * rule (agent_keys.h: a signature that verifies only with an unconfirmed
 * new key of its party is answered there), then agent_inbox_on_deliver. */
void agent_inbox_deliver(agent *a, const Rete__Deliver *d);

/* agent_inbox_start reads, at the agent's start, the log epoch the inbox
 * indexes recorded without their epoch count as (a->inbox_unkeyed_epoch);
 * the first start of this version on a store records it: the epoch the
 * agent was in then (meta "epoch"; 1 when none was said). Errors: those of
 * the store (a sentence in m). */
rete_err agent_inbox_start(agent *a, rete_msg *m);

/* agent_inbox_on_deliver verifies, opens, writes and records one DELIVER,
 * queues the hook, and ACKs it (with an error when it cannot be verified
 * or opened). */
void agent_inbox_on_deliver(agent *a, const Rete__Deliver *d);

/* --- agent_delivery.c: delivery receipts checked ------------------------ */

/* What a delivery receipt of ours (a Delivery, or a DELIVERY_REFUSED
 * notice) proves: not one (NONE); the recipient's signed acknowledgement
 * verified (PROVEN); none, and none was due (LEGACY: a message receipted
 * before protocol 3); none or a bad one where one was due (UNPROVEN: the
 * broker's word alone, the message is not settled); one that names a
 * message this agent does not hold at that entry (NOT_OURS: the message is
 * not held, or held as another entry; it settles nothing and is no alarm:
 * a second delivery after a restore looks so too); one of a message of ours
 * signed and not yet receipted (EARLY: it came before the receipt; kept,
 * agent_delivery_keep_early, and judged when the receipt comes,
 * agent_delivery_judge_early). */
typedef enum agent_dlv {
	AGENT_DLV_NONE,
	AGENT_DLV_PROVEN,
	AGENT_DLV_LEGACY,
	AGENT_DLV_UNPROVEN,
	AGENT_DLV_NOT_OURS,
	AGENT_DLV_EARLY
} agent_dlv;

/* agent_delivery_check judges msg (verified with the broker key) as above:
 * to (tlen bytes) gets the recipient it is about, why (wlen bytes) the
 * sentence when UNPROVEN or NOT_OURS. */
agent_dlv agent_delivery_check(agent *a, const Rete__Message *msg, char *to, size_t tlen, char *why,
			       size_t wlen);

/* agent_delivery_meta_array: the JSON array kept under meta key (the
 * alarms, the early delivery receipts, the held messages said past the
 * expiry), read in the open transaction if there is one: always an array
 * (an empty one when absent or unreadable; the caller owns it), NULL only
 * when out of memory. */
json_t *agent_delivery_meta_array(agent *a, const char *key);

/* agent_delivery_meta_store writes arr (borrowed) under meta key, in the
 * open transaction if there is one (the key goes when arr is empty).
 * RETE_ENOMEM, RETE_EFULL, RETE_ESTORE. */
rete_err agent_delivery_meta_store(agent *a, const char *key, json_t *arr, rete_msg *m);

/* agent_delivery_record keeps, in the open transaction, what the verdict on
 * the entry at log index `at` leaves: PROVEN, the first signed
 * acknowledgement's index (meta "ack_signed"); UNPROVEN, the alarm (meta
 * "delivery_alarms"). RETE_ENOMEM, RETE_EFULL, RETE_ESTORE. */
rete_err agent_delivery_record(agent *a, uint64_t at, const Rete__Message *msg, agent_dlv verdict,
			       const char *to, const char *why, rete_msg *m);

/* agent_delivery_alarm_log says the alarm of an UNPROVEN entry at `at`
 * (error level). */
void agent_delivery_alarm_log(agent *a, uint64_t at, const Rete__Message *msg, const char *to,
			      const char *why);

/* agent_delivery_settles: a delivery receipt (or a final non-delivery
 * notice) msg of one of our messages ends our holding of it (in the open
 * transaction). RETE_EFULL, RETE_ESTORE. */
rete_err agent_delivery_settles(agent *a, const Rete__Message *msg, rete_msg *m);

/* agent_delivery_keep_early keeps, in the open transaction, the delivery
 * receipt msg judged EARLY, whose log entry (bytes borrowed) is entry, in
 * meta "early_deliveries" until its message's receipt comes; the newest
 * AGENT_EARLY_DELIVERIES_MAX are kept. why (wlen bytes) gets, appended,
 * what was let go to keep it. RETE_ENOMEM, RETE_EFULL, RETE_ESTORE. */
rete_err agent_delivery_keep_early(agent *a, const ProtobufCBinaryData *entry,
				   const Rete__Message *msg, char *why, size_t wlen, rete_msg *m);

/* agent_delivery_judge_early judges, in the open transaction, the delivery
 * receipts of message id kept as EARLY, now that its receipt is recorded
 * (its held record names the entry and leaf hash): one the recipient
 * signed over that entry settles the message (the referral's record
 * follows it); one that is not raises the delivery alarm (recorded here);
 * each is let go. *said (a JSON array the caller owns and passes to
 * agent_delivery_say_early once the transaction committed; created when
 * NULL) gets the lines to log. RETE_ENOMEM, RETE_EFULL, RETE_ESTORE. */
rete_err agent_delivery_judge_early(agent *a, const char *id, json_t **said, rete_msg *m);

/* agent_delivery_say_early logs the lines of *said and frees it (sets it
 * to NULL); NULL is fine. */
void agent_delivery_say_early(agent *a, json_t **said);

/* --- agent_inbox_held.c: deliveries that could not be written yet -------- */

/* agent_inbox_hold keeps a copy of a DELIVER whose inbox file or record
 * could not be written (a full or failing disk: not the message's fault, so
 * it is not acked); agent_inbox_held_tick hands it to agent_inbox_on_deliver
 * again, with a backoff, until it is written and acked. problem is the
 * sentence: said in the log once per problem, not per try. */
void agent_inbox_hold(agent *a, const Rete__Deliver *d, uint64_t index, const char *problem);

/* agent_inbox_held_back keeps d (log index `index`, not acked) when an
 * entry below it is held: true then, and the caller leaves it. It is
 * written after the held ones, in log order (the broker sets aside what is
 * left unacked and sends later entries meanwhile). */
bool agent_inbox_held_back(agent *a, const Rete__Deliver *d, uint64_t index);

/* agent_inbox_held_done: the entry at index was answered (acked, refused);
 * no longer held, and the next held one is tried at once. */
void agent_inbox_held_done(agent *a, uint64_t index);

/* agent_inbox_held_tick retries what is held when due; returns the ms until
 * it wants to be called again (-1: nothing held). */
int64_t agent_inbox_held_tick(agent *a, int64_t now);

/* agent_inbox_acked_note remembers, for agent_inbox_withdrawn, what the
 * agent last wrote and acked (the newest 32): log index, message id, its
 * referral id, sender, kind and inbox file name. agent_inbox_acked_of
 * gives them back (pointers valid until the next note); false when index
 * is not among them. */
void agent_inbox_acked_note(agent *a, uint64_t index, const Rete__Message *msg, const char *fname);
/* said: the broker's signed sentence ("entry N (KIND ID from SENDER) ...");
 * the newest slot of index whose message it names. */
bool agent_inbox_acked_of(agent *a, uint64_t index, const char *said, const char **id,
			  const char **refid, const char **sender, const char **kind,
			  const char **fname);

/* Entries written whose ACK the broker was not yet seen to take (the 'u'
 * records of the inbox database, agent_db.h; agent_inbox_held.c):
 * agent_inbox_unacked_put records one in the open transaction (entry: the
 * LogEntry bytes delivered), agent_inbox_unacked_del removes it there;
 * agent_inbox_unacked_sent notes that its ACK went out, agent_inbox_on_pong
 * removes the records of the ACKs sent before the PING a PONG answers, and
 * agent_inbox_on_welcome acks again every one still recorded. */
rete_err agent_inbox_unacked_put(agent *a, uint64_t index, const Rete__Message *msg,
				 const uint8_t *entry, size_t len, const char *fname, rete_msg *m);
rete_err agent_inbox_unacked_del(agent *a, uint64_t index, rete_msg *m);
/* agent_inbox_before_restore: the entry this agent recorded at log index
 * was recorded in an epoch before the current one, which the WELCOME's
 * signed checkpoint backs (a declared restore came between). */
bool agent_inbox_before_restore(agent *a, uint64_t index);
void agent_inbox_unacked_sent(agent *a, uint64_t index);
void agent_inbox_on_pong(agent *a, uint64_t nonce);
void agent_inbox_on_welcome(agent *a);

/* agent_inbox_withdrawn takes the broker's refusal r (EXPIRED, field
 * "index") of our ACK of the log entry its sentence names: the broker had withdrawn the
 * entry at its expiry before the agent wrote it (its sender was told it was
 * not delivered). Said in a warning, in a notice in inbox/
 * (<index>-withdrawn.json, with its hook) and in the referral's record
 * (failed). agent_inbox.c. */
void agent_inbox_withdrawn(agent *a, const Rete__Receipt *r);

/* agent_inbox_held_free drops what is held (the broker delivers it again:
 * it was never acked). */
void agent_inbox_held_free(agent *a);

/* --- agent_hook.c ------------------------------------------------------ */

/* agent_hooks_start re-queues the hooks a crash or a stop left pending
 * (rewriting the index-keyed records of an older agent by file name).
 * RETE_ENOMEM, RETE_ESTORE, RETE_EFULL. */
rete_err agent_hooks_start(agent *a, rete_msg *m);

/* agent_hooks_queue runs the on_message hook for the inbox file `name` (of
 * log index `index`) after the hooks queued before it, once per name (two
 * files can share an index after a restore). The job is already recorded
 * in the store (database "hooks": name -> index). */
void agent_hooks_queue(agent *a, uint64_t index, const char *name);

/* agent_hooks_poll reaps finished hooks, logs failures, kills hooks past
 * hook_timeout and starts queued ones. Returns the ms until it wants to be
 * called again (-1: nothing running). */
int64_t agent_hooks_poll(agent *a, int64_t now);

/* agent_hooks_stop waits (bounded) for running hooks and frees the state. */
void agent_hooks_stop(agent *a);

/* --- agent_witness.c: checking the broker's log ------------------------ */

/* agent_witness_on_welcome takes the checkpoint of a WELCOME (may be NULL)
 * as the next one to check against the last verified one. */
void agent_witness_on_welcome(agent *a, const char *checkpoint_note);

/* agent_witness_on_result handles a QUERY answer if it is the witness's;
 * false when it is not. */
bool agent_witness_on_result(agent *a, const Rete__QueryResult *r);

/* agent_witness_tick asks for the latest checkpoint every `witness`. */
void agent_witness_tick(agent *a, int64_t now);

/* agent_witness_receipt remembers one of our receipts (log index, leaf
 * hash, and the size and root of the checkpoint its inclusion proof leads
 * to, already checked by the caller) until a verified checkpoint is shown
 * to extend that checkpoint. In the caller's transaction when one is open. */
void agent_witness_receipt(agent *a, uint64_t index, const uint8_t leaf[RETE_MERKLE_HASH],
			   uint64_t cp_size, const uint8_t cp_root[RETE_MERKLE_HASH]);

/* agent_witness_delivered remembers, in the open transaction if any, an
 * entry delivered to us at log index `index` (entry: its LogEntry bytes as
 * received; msg: its message, named in the sentences), until a verified
 * checkpoint is shown to include it (an inclusion proof from the leaf hash
 * of those very bytes). RETE_EFULL, RETE_ESTORE, RETE_ENOMEM. */
rete_err agent_witness_delivered(agent *a, uint64_t index, const uint8_t *entry, size_t len,
				 const Rete__Message *msg, rete_msg *m);

/* agent_witness_alarm raises the witness alarm (logged, kept in meta
 * "alarm") and submits the held messages again. */
void agent_witness_alarm(agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* agent_witness_epoch takes the log epoch of a WELCOME (0 = an older
 * broker that does not say) and the checkpoint the WELCOME carries (may be
 * NULL): a higher epoch than the last one seen is a declared restore, after
 * which the witness takes the new epoch's checkpoint as its baseline and
 * the held messages are submitted again. The epoch field is not signed: it
 * counts only when the checkpoint, verified with the pinned broker key, is
 * of that epoch (a->epoch_signed); one of a later epoch is the witness
 * alarm, and a higher epoch without a checkpoint of it (none, or one of an
 * earlier epoch) is not taken as a restore. Call before
 * agent_witness_on_welcome. */
void agent_witness_epoch(agent *a, uint32_t epoch, const char *checkpoint_note);
/* agent_witness_directory remembers the leaf of a WELCOME's directory entry
 * (LogEntry bytes, signature checked by the caller) in meta "wdir" (index
 * BE64 || leaf hash), unless a declared restore is being checked: after a
 * restore of an older copy, that entry, when below the restore point, must
 * be at its index of the new epoch's log. */
void agent_witness_directory(agent *a, const uint8_t *entry, size_t len);

/* agent_witness_stall: true while the oldest pending receipt has waited
 * longer than witness_patience to be shown on the log (a warning, said
 * once per episode); *oldest_at is when it was recorded (Unix ms; 0: none
 * pending), *oldest_size its checkpoint's size (0: none, or an older
 * agent's record). As of the witness's last look (once a second). */
bool agent_witness_stall(const agent *a, int64_t *oldest_at, uint64_t *oldest_size);

/* agent_witness_free releases the witness state. */
void agent_witness_free(agent *a);

/* --- agent_privacy.c: person index, retention, erasure records ---------- */

/* agent_privacy_start reads [privacy] of agent.ini, loads (at the first
 * start: makes) the person index key DATA/privacy.key and opens the
 * access record. RETE_EINVAL, RETE_EIO, RETE_EPERM, RETE_ENOMEM. */
rete_err agent_privacy_start(agent *a, rete_msg *m);

/* agent_privacy_sealed indexes the persons of a sealed part the agent
 * sealed and signed for outbox file `file` (msg complete: id, recipient). */
void agent_privacy_sealed(agent *a, const char *file, const Rete__Message *msg,
			  const Rete__Private *priv);

/* agent_privacy_filed: outbox/NAME was moved to SUB/used (sub "sent" at its
 * receipt, "failed" at its refusal) as our message id (NULL when none): its
 * time is set to at (NULL: now), the start of its retention, and the name
 * is recorded in the person index ("filed"), for its delivery
 * (agent_privacy_opened) and for rete sar. */
void agent_privacy_filed(agent *a, const char *sub, const char *id, const char *used,
			 const struct timespec *at);

/* agent_privacy_opened indexes an entry written to inbox/fname: the persons
 * of its opened sealed part (priv, may be NULL), or, for the broker's
 * Delivery of one of our indexed messages, who received it and when. */
void agent_privacy_opened(agent *a, const Rete__LogEntry *le, const Rete__Message *msg,
			  const Rete__Private *priv, const char *fname);

/* The lines of the person index those calls make are staged: durable
 * with the event they record when the caller, before committing the
 * transaction that makes it durable, journals them
 * (agent_privacy_journal: they join the open transaction) and, once it is
 * committed, has them written (agent_privacy_written: appended, synced
 * later for many at once). agent_privacy_mark / agent_privacy_unstage drop
 * what was staged since the mark (a transaction that failed and will be
 * made again). Lines no transaction took are written and synced at
 * agent_privacy_tick. */
size_t agent_privacy_mark(agent *a);
void agent_privacy_unstage(agent *a, size_t mark);
rete_err agent_privacy_journal(agent *a, rete_msg *m);
void agent_privacy_written(agent *a);

/* agent_privacy_tick erases what is past its retention when a scan is due;
 * returns the ms until the next one (-1: not started). */
int64_t agent_privacy_tick(agent *a, int64_t now);

/* agent_privacy_free closes the access record and wipes the key. */
void agent_privacy_free(agent *a);

#endif
