/* agent_db.h — the agency agent's own LMDB store (the data folder).
 *
 * The agent remembers here everything that must survive a crash or a
 * restart, so that no outbox file ever gets a second message id, no
 * submission is ever re-signed differently, no delivery is written to the
 * inbox twice, and no recipient key changes silently:
 *
 *   outbox     file name "\0" SHA-256 of its content -> agent_outrec
 *              (minted id and the SHA-256 of the file's canonical JSON
 *              first; then the signed and sealed bytes). Records of a
 *              schema-2 store lack that hash (layout 1): read as they are,
 *              rewritten with it at start while their file is in outbox/
 *              (agent_outbox_settle)
 *   pins       party id -> 32-byte Ed25519 key pinned on first use
 *   pending    party id -> 32-byte key the directory now shows instead of
 *              the pinned one, waiting for an operator (`rete agent trust`)
 *   inbox      log index BE64 -> the inbox file name written for it, then
 *              "\0" and the SHA-256 of the entry's SignedMessage bytes
 *              (records written before that hash was kept hold the name only);
 *              and 'e' || log index BE64 -> the log epoch (u32 BE) in which
 *              that record was written, kept from the first WELCOME of an
 *              epoch of 2 or more (none in epoch 1): an index recorded in an
 *              earlier epoch than the current one is one a declared restore
 *              gave to a new entry (agent_inbox.c). A key of its own, not a
 *              longer record, so that an agent of this schema that does not
 *              know it reads the index's record as before
 *              and 'u' || log index BE64 -> an agency's entry written
 *              whose ACK the broker was not yet seen to take: the RFC 6962
 *              leaf hash of its LogEntry (32 bytes), then its kind, message
 *              id, referral id, sender and inbox file name, each ended by
 *              "\0" (agent_inbox_held.c: acked again at every WELCOME,
 *              removed once a PONG shows the broker read past the ACK)
 *   seen       sender "\0" message id "\0" SHA-256 of the SignedMessage
 *              bytes -> log index BE64 and the inbox file name: how a message
 *              already in the inbox is recognised, whatever its log index
 *   referrals  referral id -> JSON text: the agency's view of the referral
 *              (status, business status, history) for `rete status`
 *   hooks      inbox file name -> its log index BE64: a hook not yet run to
 *              its end (older agents keyed it log index BE64 -> file path;
 *              agent_hooks_start rewrites those)
 *   witness    log index BE64 -> leaf hash of one of our receipts || the
 *              size (BE64) || root of the checkpoint its proof leads to,
 *              until a verified checkpoint has been shown to extend that
 *              checkpoint (records of earlier agents: the leaf hash alone,
 *              until a verified checkpoint has been shown to include it);
 *              and 'd' || log index BE64 -> leaf hash of an agency's entry
 *              delivered to us || when (BE64 ms) || "KIND ID from SENDER",
 *              until its inclusion in a verified checkpoint was checked
 *              (agent_witness.c)
 *   meta       "checkpoint" -> the last checkpoint note verified (signature
 *              and consistency with the one before); "alarm" -> the
 *              evidence of a broker that rewrote its log, if ever;
 *              "epoch" -> the log epoch of the last WELCOME (u32 BE);
 *              "w0leaf" and "wdir" -> entry 0's leaf and the latest
 *              directory entry's index and leaf, checked at a declared
 *              restore; "whist" -> a thinned history of the checkpoints
 *              verified (44-byte records: epoch BE32, size BE64, root; at
 *              most 96, by size; agent_whist.h), from 0.7.1: an earlier
 *              agent ignores it, so no schema change (agent_witness.c);
 *              "inbox_unkeyed_epoch" -> the log epoch an inbox index
 *              recorded without its 'e' record counts as (u32 BE), written
 *              at the first start of an agent that keeps those records
 *              (agent_inbox_start);
 *              "round" -> the number of the latest resubmission round of
 *              the held messages (u64 BE; absent: 0); "resubmit" -> the
 *              reason of a round not yet complete (present while some held
 *              message has no receipt of that round: every WELCOME then
 *              submits those again); "taken_over" (AGENT_META_TAKEN_OVER)
 *              -> JSON text {"at": RFC 3339 time, "from": the other
 *              connection's address when the broker said it, "broker": the
 *              broker's sentence}: written when the broker says another
 *              connection with our key took the deliveries (TAKEN_OVER),
 *              removed at the agent's start (it then takes them back);
 *              `rete status` shows it; "ack_signed", "delivery_alarms" and
 *              "early_deliveries" (AGENT_META_ACK_SIGNED,
 *              AGENT_META_DELIVERY_ALARMS, AGENT_META_EARLY_DELIVERIES,
 *              below): delivery receipts whose recipient's signature was
 *              checked, or is to be once their message's receipt comes;
 *              "key_changes", "own_key", "party_keys" and "dir_serial": the
 *              key watch's records (AGENT_META_KEY_CHANGES, below);
 *              "dir_expiry" and "undelivered_said": the directory's expiry
 *              and the held messages said to be past it
 *              (AGENT_META_DIR_EXPIRY, below)
 *   held       message id -> agent_held: the signed bytes and sealed part of
 *              a message the broker receipted, kept until its delivery
 *              receipt (or a final refusal / non-delivery notice), so it can
 *              be submitted again when the broker's log loses it; then an
 *              empty value marks it delivered (a late receipt must not hold
 *              it again). Each record keeps the log index, leaf and round of
 *              its latest receipt: held messages are submitted again in
 *              index order
 *   ids        message id -> agent_idrec: the SHA-256 of the file as the
 *              agency wrote it and the receipt it got, so that the same file
 *              sent again gets the same receipt (kept for good: a few
 *              hundred bytes per message)
 *   persons    BE64 sequence number -> one line of the person index
 *              (DATA/persons.jsonl, agent_privacy.c), journalled in the
 *              transaction that makes its event durable (a delivery written
 *              to the inbox, a move recorded, a message sealed) and
 *              appended to the file unsynced; removed once the file has
 *              been synced. At a start what is here and not in the file
 *              (a stop before the sync) is appended again
 *
 * One process writes (the agent); `rete status` opens the same folder
 * read-only while it runs. Every commit is durable (no MDB_NOSYNC, no
 * MDB_WRITEMAP). The agent is single-threaded: at most one write
 * transaction is open at a time, and the get/put/del calls join it when one
 * was begun with agent_db_begin, or run in their own otherwise.
 */
#ifndef RETE_AGENT_DB_H
#define RETE_AGENT_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "error.h"

typedef struct agent_db agent_db;

/* The agent store's schema, recorded under "schema" in meta (decimal
 * text). 2: the journal of the person index (`persons`), the first schema
 * recorded. 3: an outbox record keeps the SHA-256 of its file's canonical
 * JSON (layout 2), so that a sealed file that left outbox/ while the agent
 * was stopped is seen through to its answer with its identity and content
 * (an agent of schema 2 would not parse such a record: it refuses the
 * store, as below). A store without the record was written before it (rete 0.5,
 * builds of 0.6.0 before the record) and is of an earlier schema: it is
 * read as it is, and only the agent's start records this schema in it, in
 * the transaction that upgrades its outbox records (agent_db_schema_record;
 * `rete-agent --trust`, a writer too, leaves it as it was). A record of
 * layout 2 goes only into a store that records this schema. A store of a
 * later schema than this one, which a newer agent wrote, is refused
 * (RETE_EVERSION, with a sentence naming both): what it holds may not be
 * what this agent would read there. An agent older than the record cannot
 * refuse a newer store; docs/agent.md ("Upgrades and downgrades") says
 * what a downgrade needs. */
#define AGENT_STORE_SCHEMA 3

/* The meta key of the record of a take-over (above): this agent stands by
 * while another connection with its key takes the deliveries. */
#define AGENT_META_TAKEN_OVER "taken_over"

/* The meta key of the record of deliveries held while inbox/ (or the
 * store) cannot be written (agent_inbox_held.c): JSON text {"since": RFC
 * 3339 time, "held": how many, "problem": the latest sentence}; removed
 * when they are written, and at the agent's start (what is held lives in
 * memory only). Read by `rete status`. */
#define AGENT_META_INBOX_HELD "inbox_held"

/* The meta keys of delivery receipts (agent_delivery.c): "ack_signed" ->
 * the log index (BE64) of the first Delivery whose recipient's signed
 * acknowledgement this agent verified (from then on every delivery receipt
 * must carry one); "delivery_alarms" -> JSON array of the delivery receipts
 * that did not hold ({entry, kind, deliveredIndex, messageId, recipient,
 * why, at}, the newest 100), which `rete status` shows. */
#define AGENT_META_ACK_SIGNED	   "ack_signed"
#define AGENT_META_DELIVERY_ALARMS "delivery_alarms"
/* "early_deliveries" -> JSON array of the delivery receipts that came
 * before the receipt of the message they name ({messageId, entry,
 * logEntry: the entry's bytes in base64}, the newest 100), each kept until
 * that receipt comes and it is judged (agent_delivery.c). */
#define AGENT_META_EARLY_DELIVERIES "early_deliveries"

/* The meta keys of agent_keys.c (agent_keys.h), JSON text `rete status`
 * shows: "key_changes" -> {PARTY: {"since", "last", "what", "key",
 * "pinned", "count", "entries"}}, the parties whose signature verified
 * only with a directory key that is not the pinned one (until --trust
 * confirms a key for them; "entries": the log indexes of the entries left
 * waiting for it, "count" how many); "own_key" -> [{"entry", "loggedAt", "seenAt", "key"}], the
 * directories that gave this agency's id a key that is not its own (until
 * the agent runs with that key: a rotation). */
#define AGENT_META_KEY_CHANGES "key_changes"
#define AGENT_META_OWN_KEY     "own_key"
/* "party_keys" -> {PARTY: {"earlier": [KEY...], "refused": [KEY...],
 * "advance": KEY}} (base64 keys): the keys of PARTY confirmed before the
 * pinned one (what PARTY signed before its rotation still verifies), the
 * directory keys this agency's operator refused (--trust with the pinned
 * key: what is signed with them is refused, not left waiting), and a key
 * confirmed in advance (--trust before the directory shows it: pinned when
 * it does). The pins database keeps one key a party, as before. */
#define AGENT_META_PARTY_KEYS "party_keys"
/* "key_taking" -> {PARTY: {"entries": [N...], "held": {"J": COUNT}}}: the
 * log indexes of PARTY's entries that waited for its key and were not
 * taken yet when --trust confirmed it (copied from "key_changes"), taken
 * in log order from then on; "held": how often entry J, which came before
 * a lower one of them, was left for later (agent_keys_hold_back). */
#define AGENT_META_KEY_TAKING "key_taking"
/* "dir_serial" -> the serial of the latest directory given (decimal text):
 * a later one more than one above says directories were logged unseen. */
#define AGENT_META_DIR_SERIAL "dir_serial"
/* "dir_expiry" -> the expiry of undelivered messages in the directory in
 * force (its expiryMs, decimal text; absent: none seen yet, or one that did
 * not say it), written by the agent when it changes, so that `rete status`,
 * which opens the store beside it, judges held messages by the directory
 * the agent holds (agent_undelivered.h). */
#define AGENT_META_DIR_EXPIRY "dir_expiry"
/* "undelivered_said" -> JSON array of the ids of held messages the agent's
 * log already said were not delivered after the directory's expiry: said
 * once per message, not at every start (and kept in memory too, so that a
 * refused write does not make it say them again); an id goes when its
 * message is no longer held (agent_undelivered.h). */
#define AGENT_META_UNDELIVERED_SAID "undelivered_said"

/* The meta keys of a declared restore the witness could not check
 * (agent_witness.c): "link_alarm" -> the epoch (u32 BE) whose link to the
 * verified checkpoint was the WITNESS ALARM, written with the alarm;
 * "epoch_accepted" -> JSON text {"epoch", "by", "at", "dropped": {"epoch",
 * "size", "root"} (the baseline given up), "alarm" (its sentence), and,
 * once the agent took the epoch's checkpoint as its baseline, "taken":
 * {"size", "root", "at"}, "earlier": [the records before it, oldest
 * first]}: written by `rete-agent --accept-epoch E`, which deletes
 * "link_alarm", and "alarm" when it is the restore's alarm of E; the
 * agent deletes meta "wdir" when it takes the epoch; `rete status` shows
 * it. */
#define AGENT_META_LINK_ALARM	  "link_alarm"
#define AGENT_META_EPOCH_ACCEPTED "epoch_accepted"

/* The named databases. */
typedef enum agent_dbi {
	AGENT_DB_OUTBOX = 0,
	AGENT_DB_PINS,
	AGENT_DB_PENDING,
	AGENT_DB_INBOX,
	AGENT_DB_REFERRALS,
	AGENT_DB_HOOKS,
	AGENT_DB_WITNESS,
	AGENT_DB_META,
	AGENT_DB_HELD,
	AGENT_DB_SEEN,
	AGENT_DB_IDS,
	AGENT_DB_PERSONS,
	AGENT_DB_COUNT
} agent_dbi;

/* States of an outbox record. */
enum { AGENT_OUT_MINTED = 1, AGENT_OUT_SIGNED = 2 };

/* agent_outrec: what the agent knows about one outbox file. The buffers are
 * owned by the struct (agent_outrec_free). */
typedef struct agent_outrec {
	int state;			/* AGENT_OUT_MINTED or AGENT_OUT_SIGNED */
	char id[128];			/* the message id (minted or taken from the file) */
	int64_t minted_at;		/* when the id was recorded (ms) */
	bool have_content;		/* content is known (false: a schema-2 record) */
	uint8_t content[RETE_HASH_LEN]; /* SHA-256 of the file's canonical JSON */
	rete_buf signed_msg;		/* SignedMessage bytes (state SIGNED) */
	rete_buf sealed;		/* sealed private part, possibly empty */
} agent_outrec;

/* agent_outrec_free frees the buffers of r; NULL is fine. */
void agent_outrec_free(agent_outrec *r);

/* agent_db_open opens (creating when !rdonly) the store in folder dir.
 * map_size 0 means 256 MiB. Errors: RETE_EIO (folder), RETE_ESTORE (LMDB),
 * RETE_ENOENT (rdonly and no store there yet), RETE_ENOMEM, RETE_EVERSION
 * (a later schema than AGENT_STORE_SCHEMA), RETE_ECORRUPT (a damaged
 * data.mdb or schema record), RETE_EFULL (no room to record the schema of
 * a store it creates). A writer records AGENT_STORE_SCHEMA only in a store
 * it creates; one of an earlier schema is left as it is (see
 * agent_db_schema_record). */
rete_err agent_db_open(const char *dir, bool rdonly, uint64_t map_size, agent_db **out,
		       rete_msg *m);

/* agent_db_schema_was: the schema the store recorded when this handle
 * opened it: AGENT_STORE_SCHEMA for a store it created, 0 for one written
 * before the record. */
unsigned agent_db_schema_was(const agent_db *db);

/* agent_db_schema_record records AGENT_STORE_SCHEMA in the open write
 * transaction (agent_db_begin), for the start's upgrade of a store of an
 * earlier schema: it holds once that transaction commits. Nothing to do
 * when the store records it already. RETE_EINVAL (no transaction open),
 * RETE_EFULL, RETE_ESTORE. */
rete_err agent_db_schema_record(agent_db *db, rete_msg *m);

/* agent_db_close closes *db (aborting an open transaction) and sets it to
 * NULL; NULL is fine. */
void agent_db_close(agent_db **db);

/* agent_db_begin starts a write transaction that the following put/del/get
 * calls join, until agent_db_commit (durable) or agent_db_abort.
 * RETE_ESTORE, RETE_EINVAL (one is already open, or read-only store). */
rete_err agent_db_begin(agent_db *db, rete_msg *m);

/* agent_db_in_txn: is a write transaction open (agent_db_begin)? */
bool agent_db_in_txn(const agent_db *db);

/* agent_db_commit commits the open transaction durably. RETE_EFULL when the
 * map was full (the map has then been grown: redo the transaction),
 * RETE_ESTORE. */
rete_err agent_db_commit(agent_db *db, rete_msg *m);

/* agent_db_abort drops the open transaction, if any; when a put in it met a
 * full map (RETE_EFULL), the map is grown so that a retry can succeed. */
void agent_db_abort(agent_db *db);

/* agent_db_end ends the open transaction as err, the first error met in it,
 * says: committed when err is RETE_OK (the commit's result is returned),
 * else aborted (err is returned, m untouched). A caller redoes the whole
 * transaction while it returns RETE_EFULL: the map has then been grown. */
rete_err agent_db_end(agent_db *db, rete_err err, rete_msg *m);

/* agent_db_get copies the value of key into *val (caller frees with
 * rete_buf_free). RETE_ENOENT when absent, RETE_ESTORE. */
rete_err agent_db_get(agent_db *db, agent_dbi dbi, const void *key, size_t klen, rete_buf *val,
		      rete_msg *m);

/* agent_db_get_u32 reads a 4-byte big-endian record of dbi at key into
 * *out: false when there is none, it cannot be read, or it is not 4 bytes
 * long (meta "epoch", "inbox_unkeyed_epoch", an inbox index's epoch). */
bool agent_db_get_u32(agent_db *db, agent_dbi dbi, const void *key, size_t klen, uint32_t *out);

/* agent_db_put stores key -> val (overwriting). Outside a transaction it
 * commits by itself and grows the map when full. Inside one, RETE_EFULL
 * means: abort (or commit, which then fails) and redo the transaction,
 * the map having been grown. RETE_EFULL, RETE_ESTORE. */
rete_err agent_db_put(agent_db *db, agent_dbi dbi, const void *key, size_t klen, const void *val,
		      size_t vlen, rete_msg *m);

/* agent_db_del removes key; absent keys are fine. RETE_ESTORE. */
rete_err agent_db_del(agent_db *db, agent_dbi dbi, const void *key, size_t klen, rete_msg *m);

/* agent_db_each calls fn(key, klen, val, vlen, user) for every record of
 * dbi in key order, in one read transaction (or the open write one); fn
 * returns false to stop. The pointers live only during the call. */
rete_err agent_db_each(agent_db *db, agent_dbi dbi,
		       bool (*fn)(const void *key, size_t klen, const void *val, size_t vlen,
				  void *user),
		       void *user, rete_msg *m);

/* agent_db_each_from is agent_db_each from the first key >= from (flen
 * bytes; NULL: the first key); fn stops the walk where the keys it wants
 * end. */
rete_err agent_db_each_from(agent_db *db, agent_dbi dbi, const void *from, size_t flen,
			    bool (*fn)(const void *key, size_t klen, const void *val, size_t vlen,
				       void *user),
			    void *user, rete_msg *m);

/* agent_db_outbox_get reads the record of (name, hash) into *r (layout 1,
 * a schema-2 store's: r->have_content false). RETE_ENOENT when there is
 * none; RETE_ECORRUPT for a record that does not parse; RETE_ESTORE. */
rete_err agent_db_outbox_get(agent_db *db, const char *name, const uint8_t hash[RETE_HASH_LEN],
			     agent_outrec *r, rete_msg *m);

/* agent_db_outbox_put stores r for (name, hash) durably (when no
 * transaction is open, it commits before returning): layout 2, with
 * r->content; layout 1 (schema 2's) only when !r->have_content. Layout 2
 * only in a store that records AGENT_STORE_SCHEMA (or does in the open
 * transaction, agent_db_schema_record): RETE_EINVAL otherwise. */
rete_err agent_db_outbox_put(agent_db *db, const char *name, const uint8_t hash[RETE_HASH_LEN],
			     const agent_outrec *r, rete_msg *m);

/* agent_db_outbox_layout1: is val (an outbox record's value, from
 * agent_db_each) of layout 1, a schema-2 store's, without the content
 * hash? */
bool agent_db_outbox_layout1(const void *val, size_t vlen);

/* agent_db_outbox_del forgets the record of (name, hash). */
rete_err agent_db_outbox_del(agent_db *db, const char *name, const uint8_t hash[RETE_HASH_LEN],
			     rete_msg *m);

/* agent_held: one message held until its delivery receipt. The buffers
 * are owned by the struct (agent_held_free). */
typedef struct agent_held {
	uint64_t index;		     /* log index of its (latest) receipt */
	uint8_t leaf[RETE_HASH_LEN]; /* leaf hash of that receipt */
	uint64_t round;		     /* resubmission round of that receipt (meta
					"round" when it came; 0 before any) */
	rete_buf signed_msg;	     /* SignedMessage bytes as submitted */
	rete_buf sealed;	     /* sealed private part, possibly empty */
} agent_held;

/* agent_held_free frees the buffers of h; NULL is fine. */
void agent_held_free(agent_held *h);

/* agent_db_held_put stores h for message id (in the open transaction, if
 * any). RETE_ENOMEM, RETE_EFULL, RETE_ESTORE. */
rete_err agent_db_held_put(agent_db *db, const char *id, const agent_held *h, rete_msg *m);

/* agent_db_held_get reads the record of id into *h. RETE_ENOENT,
 * RETE_ECORRUPT, RETE_ENOMEM, RETE_ESTORE. */
rete_err agent_db_held_get(agent_db *db, const char *id, agent_held *h, rete_msg *m);

/* agent_db_held_parse decodes a held record's value (from agent_db_each)
 * into *h. RETE_ECORRUPT, RETE_ENOMEM. */
rete_err agent_db_held_parse(const void *val, size_t vlen, agent_held *h);

/* agent_db_held_view reads a held record's value in place, without copying
 * anything: the index of its receipt, and where its SignedMessage bytes are
 * inside val (the sealed part is not touched). RETE_ECORRUPT. */
rete_err agent_db_held_view(const void *val, size_t vlen, uint64_t *index,
			    const uint8_t **signed_msg, size_t *signed_len);

/* agent_idrec: what the agent keeps of every message id it got a receipt
 * for (agent_db_id_get / agent_db_id_put). receipt_json is malloc'd. */
typedef struct agent_idrec {
	uint8_t content[RETE_HASH_LEN]; /* SHA-256 of the file's canonical JSON */
	uint64_t index;			/* log index of its receipt */
	char *receipt_json;		/* the sent/NAME.receipt.json text */
} agent_idrec;

/* agent_db_id_put stores r for message id. RETE_ENOMEM, RETE_EFULL,
 * RETE_ESTORE. */
rete_err agent_db_id_put(agent_db *db, const char *id, const agent_idrec *r, rete_msg *m);

/* agent_db_id_get reads the record of id (r->receipt_json malloc'd, the
 * caller frees it). RETE_ENOENT, RETE_ECORRUPT, RETE_ENOMEM, RETE_ESTORE. */
rete_err agent_db_id_get(agent_db *db, const char *id, agent_idrec *r, rete_msg *m);

/* agent_db_seen_key writes the key of database "seen" for (sender, id,
 * hash) into key (cap bytes) and returns its length (0 when it does not
 * fit). */
size_t agent_db_seen_key(uint8_t *key, size_t cap, const char *sender, const char *id,
			 const uint8_t hash[RETE_HASH_LEN]);

/* agent_db_inbox_key writes the 8-byte big-endian key of a log index. */
void agent_db_index_key(uint8_t key[8], uint64_t index);

#endif
