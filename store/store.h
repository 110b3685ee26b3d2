/* store.h — the broker's memory and the auditors' evidence: one LMDB
 * environment (a folder) holding the Merkle audit log and everything the
 * broker derives from it.
 *
 * Named databases (keys big-endian so that LMDB's byte order is log order):
 *   entries     index BE64 -> the exact LogEntry bytes (= the Merkle leaf input)
 *   nodes       (level u8, index BE64) -> 32-byte hash of each complete subtree;
 *               level 0 holds the leaf hashes, so proofs never re-hash entries
 *   checkpoints size BE64 -> signed checkpoint note (text)
 *   msgids      sender "\0" message id -> index BE64, SHA-256 of the Message
 *               bytes, logged_at BE64 (the dedup index)
 *   queue       recipient "\0" index BE64 -> logged_at BE64 (unacked deliveries)
 *   blobs       index BE64 -> sealed private part, until acked or expired
 *   referrals   referral id -> packed Rete__ReferralInfo (the projection)
 *   due         due_at BE64, referral id -> "" (open referrals not yet overdue)
 *   cases       case id "\0" index BE64 -> ""
 *   timestamps  checkpoint size BE64 -> RFC 3161 TimeStampToken (DER) over
 *               that stored checkpoint's note body (schema 3; store/tsa.h)
 *   meta        "schema" (BE32), "size" (BE64), "directory" (BE64, index of
 *               the Directory entry in force), "seq" (BE64), and the log's
 *               identity: "origin", "broker_key" (32 bytes), "first_entry"
 *               (leaf hash of entry 0), "epoch" (BE32; store_identity.h),
 *               and in a backup copy not yet restored "copy" (its mark);
 *               "parked/PARTY" (the broker's deliveries set aside for
 *               PARTY, below)
 *
 * One process writes (the broker); any number of processes may open the
 * same folder read-only (auditor, monitor, backup) while it runs. Every
 * commit is durable (fsync) before rete_store_commit returns. Never open one
 * folder twice in one process, and never use a rete_store across fork().
 *
 * Threads: a rete_store may be used from several threads at once (LMDB's
 * MDB_NOTLS). Commits are serialized internally. Growing the map needs no
 * transaction open in the process, so the store waits for every open read
 * transaction to end before it grows: a thread must NOT hold a
 * rete_store_rtxn while it calls rete_store_commit or
 * rete_store_checkpoint_put (it would wait for itself forever).
 */
#ifndef RETE_STORE_H
#define RETE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "error.h"
#include "merkle.h"
#include "rete.pb-c.h"

/* The layout above; other versions are refused. Schema 2 adds the log's
 * identity to meta ("origin", "broker_key", "first_entry", "epoch"; see
 * store_identity.h); a schema-1 store is read as it is and gets its
 * identity from the broker that opens it first (rete_store_identity_check).
 * Schema 3 adds the database "timestamps". A schema-2 store opened
 * writable is upgraded in place (the database is created, meta "schema"
 * becomes 3, in the opening transaction); opened read-only it is read as
 * it is, with no tokens. A schema-1 store opened writable gets the
 * database too and schema 3 with its identity. A program of schema 2
 * refuses a schema-3 store ("store DIR has schema version 3; this program
 * reads schema versions 1 and 2 only (use a matching rete version)").
 * Schema 4 adds the journal (journal.0 and journal.1 in the folder:
 * store_journal.c): a batch in it may be receipted before LMDB holds it,
 * so a program that ignored it could lose receipted entries after a
 * crash. Any writable open replays it first; a schema-2 or 3 store
 * opened with RETE_STORE_JOURNAL becomes schema 4 (meta "schema", in the
 * opening transaction; nothing else changes); other writable opens raise
 * schema 2 to 3 only, so that an older program reads what they wrote. A program of schema 3 refuses a schema-4 store
 * ("store DIR has schema version 4; this program reads schema versions 1
 * to 3 only (use a matching rete version)"). */
#define RETE_STORE_SCHEMA    4
#define RETE_STORE_SCHEMA_V3 3
#define RETE_STORE_SCHEMA_V2 2
#define RETE_STORE_SCHEMA_V1 1

/* Flags of rete_store_open. */
#define RETE_STORE_CREATE 0x1u /* create the folder and databases if missing */
#define RETE_STORE_RDONLY 0x2u /* read-only, beside a running writer */
/* A scratch store, thrown away after use (the auditor's replay): its
 * commits are not made durable (no fsync; a crash may lose or spoil it).
 * Only with CREATE. */
#define RETE_STORE_SCRATCH 0x4u
/* Journaled (the broker): rete_store_commit_durable tells its caller that
 * a batch is durable after one flush of the journal, before LMDB's commit
 * (store_journal.c). Not with RDONLY or SCRATCH. */
#define RETE_STORE_JOURNAL 0x8u

typedef struct rete_store rete_store;

/* RETE_STORE_ERROR_MAX bounds a refusal's sentence (rete_store_op's
 * error_text) so that none is ever cut. The longest is a lifecycle refusal:
 * "update ID: referral ID is STATUS; ROLE (SENDER) may not move it to
 * STATUS: WHY", with the store's own bounds on ids (sender and id together
 * under 511 bytes, so at most ~1,000 for both ids), a party id (63), two
 * status names and a role (under 60) and the lifecycle's reason (under
 * 320, proto/lifecycle.c's LC_WHY_MAX; 232 today): under 1,500 bytes.
 * (Issue 13: a 256-byte buffer cut exactly the part saying what is
 * allowed.) */
#define RETE_STORE_ERROR_MAX 2048

/* rete_store_options: tuning for rete_store_open_ex; zero fields take the
 * defaults. */
typedef struct rete_store_options {
	uint64_t map_size;    /* initial map size in bytes (default 256 MiB);
				 the map doubles by itself when full */
	unsigned max_readers; /* reader slots (default 254) */
	/* RETE_STORE_JOURNAL: a journal file that is missing (the broker's
	 * --restore) does not refuse the open: rete_store_journal_lost
	 * says so, and the files are made again */
	bool journal_lost_ok;
} rete_store_options;

/* rete_store_open opens the store in folder dir (flags: RETE_STORE_CREATE,
 * RETE_STORE_RDONLY, RETE_STORE_SCRATCH). *out is the caller's; release with rete_store_close.
 * Stale reader slots left by dead processes are cleared. Errors:
 * RETE_ENOENT (no store there and no CREATE), RETE_EVERSION (the schema
 * version in meta is not RETE_STORE_SCHEMA; the sentence names both),
 * RETE_EPERM (folder not accessible), RETE_EINVAL (bad flags),
 * RETE_ECORRUPT, RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_open(rete_store **out, const char *dir, unsigned flags, rete_msg *m);

/* rete_store_open_ex is rete_store_open with options (opt may be NULL). */
rete_err rete_store_open_ex(rete_store **out, const char *dir, unsigned flags,
			    const rete_store_options *opt, rete_msg *m);

/* rete_store_journal_lost: the journaled open of s went on without a
 * journal file it should have found (journal_lost_ok): batches receipted
 * last may be lost; why (may be NULL) gets the sentence. */
bool rete_store_journal_lost(const rete_store *s, char *why, size_t cap);

/* rete_store_schema_was: the schema version a journaled open found (0: a
 * store it made); RETE_STORE_SCHEMA when it was not journaled. */
uint32_t rete_store_schema_was(const rete_store *s);

/* rete_store_journal_state reads, changing nothing (also on a store opened
 * read-only), the journal beside s: *ahead (may be NULL) gets the number
 * of batches it holds beyond data.mdb (receipted, taken in at the
 * broker's next start) and *ahead_size the log size they lead to. With
 * start, it also checks what the broker's start would refuse (restore: as
 * with --restore), and that the files and folder are writable with room
 * for the files to make: RETE_ECORRUPT, RETE_EPERM, RETE_EFULL, RETE_EIO
 * with the start's sentence. */
rete_err rete_store_journal_state(rete_store *s, bool start, bool restore, unsigned *ahead,
				  uint64_t *ahead_size, rete_msg *m);

/* rete_store_close closes *s (no transaction of it may be open) and sets
 * *s = NULL; NULL and *s == NULL are fine. */
void rete_store_close(rete_store **s);

/* ---------------------------------------------------------------------------
 * Writing: one batch = one durable write transaction.
 * ------------------------------------------------------------------------- */

typedef enum rete_store_op_kind {
	RETE_STORE_OP_APPEND = 1, /* log a signed message */
	RETE_STORE_OP_ACK = 2,	  /* the recipient acked entry `index` */
	RETE_STORE_OP_EXPIRE = 3  /* withdraw entry `index` from a recipient */
} rete_store_op_kind;

typedef enum rete_store_status {
	RETE_STORE_ACCEPTED = 1,  /* appended: index, leaf_hash, logged_at */
	RETE_STORE_DUPLICATE = 2, /* same sender, id and bytes: the original's
				     index, leaf_hash, logged_at; nothing added */
	RETE_STORE_REFUSED = 3,	  /* nothing written for this op: error, error_text */
	RETE_STORE_DONE = 4	  /* ACK / EXPIRE processed; see was_present */
} rete_store_status;

/* rete_store_op: one operation of a batch, in, and its result, out. The
 * store copies what it keeps; the pointers need only live for the call.
 *
 * APPEND: in.signed_message/len = SignedMessage bytes as received; msg = its
 * decoded Message (already verified by the caller; NULL = the store decodes
 * it leniently itself); logged_at = broker time; sealed/sealed_len = the
 * sealed private part (NULL/0 when none). The store builds the LogEntry
 * (index, logged_at, signed_message), queues it for msg->recipient (if not
 * empty), indexes msg->case_id, keeps the sealed part and updates the
 * referral projection:
 *   Referral        creates it (requested; requester = sender, performer =
 *                   recipient; due_at from the Directory in force's limit
 *                   for its priority via rete_deadline, 0 when none)
 *   ReferralUpdate  moves it through rete_lifecycle_check (role = requester
 *                   or performer by sender; anyone else: NOT_AUTHORIZED);
 *                   status UNSPECIFIED = the same status, new business status
 *   CaseNote        with a referral id: it must exist and the sender be a
 *                   party of it
 *   Delivery        (broker) of the referral itself while requested: received
 *   Notice          (broker) NOT_DELIVERED of the referral while requested:
 *                   failed with status reason "not-delivered"; OVERDUE: overdue
 *   Directory       becomes the directory in force
 *   Epoch           (broker, a declared restore) raises the log's epoch
 *                   (meta "epoch") and removes a backup copy's mark (meta
 *                   "copy"); one not above the epoch in force is refused
 *                   INVALID
 * Entry 0, whatever its body, is recorded as the log's first entry (meta
 * "first_entry", store_identity.h).
 * Earlier ops of the same batch are taken into account.
 * Refusals (status REFUSED, nothing of this op written, the rest of the
 * batch goes on): ERROR_CODE_ID_REUSED (same sender and id, other bytes; or
 * a Referral whose id is already a referral of another sender: its
 * sentence names neither that sender nor the entry),
 * ERROR_CODE_UNKNOWN_REFERRAL, ERROR_CODE_NOT_AUTHORIZED,
 * ERROR_CODE_LIFECYCLE, ERROR_CODE_MALFORMED (bytes that do not decode),
 * ERROR_CODE_INVALID (no sender, id or body; a referral without recipient;
 * ids too long for an LMDB key). Bodies only the broker originates
 * (Delivery, Notice, Directory) are taken as the broker's: the caller makes
 * sure no agency gets one in. A Delivery or NOT_DELIVERED Notice of an entry
 * that is not a referral, or of a referral already past `requested`,
 * changes no referral (a NOT_DELIVERED of a referral that is received or
 * later but not terminal is refused: LIFECYCLE).
 *
 * An auditor's replay (store/verify.c) may also give in.expect_entry/
 * expect_len, the LogEntry bytes it expects the append to write, and
 * in.expect_leaf, their leaf hash: when the bytes the store builds are
 * exactly these, it takes that leaf hash instead of hashing them again
 * (it compares the bytes instead); otherwise (NULL: always) it hashes them.
 *
 * ACK / EXPIRE: in.recipient, in.index. Removes the queue record and the
 * sealed part; was_present says whether the record was there (so the
 * broker logs one Delivery only). Status DONE. */
typedef struct rete_store_op {
	rete_store_op_kind kind;
	struct {
		/* APPEND */
		const uint8_t *signed_message;
		size_t len;
		const Rete__Message *msg;
		int64_t logged_at;
		const uint8_t *sealed;
		size_t sealed_len;
		const uint8_t *expect_entry; /* see above (NULL: none) */
		size_t expect_len;
		const uint8_t *expect_leaf;
		/* ACK, EXPIRE */
		const char *recipient;
		uint64_t index;
	} in;
	/* results, filled by rete_store_commit */
	rete_store_status status;
	uint64_t index;
	uint8_t leaf_hash[RETE_MERKLE_HASH];
	int64_t logged_at;
	Rete__ErrorCode error;
	char error_text[RETE_STORE_ERROR_MAX];
	bool was_present;
} rete_store_op;

/* rete_store_commit runs ops[0..n) in one write transaction and commits it
 * durably; per-op results are filled in (only valid when RETE_OK is
 * returned). When the map is full it grows it (doubling; waits until no
 * read transaction of this process is open) and replays the whole batch,
 * with the same results. Errors: RETE_EFULL (the disk is full: nothing of
 * the batch was written; the store stays usable), RETE_EPERM (opened
 * read-only), RETE_EINVAL (bad op kind or arguments), RETE_ESTORE,
 * RETE_ENOMEM. The caller must not hold a rete_store_rtxn in this thread. */
rete_err rete_store_commit(rete_store *s, rete_store_op *ops, size_t n, rete_msg *m);

/* rete_store_commit_memo is rete_store_commit that, once the commit is
 * durable (RETE_OK), tells memo (merkle.h; NULL: none) the Merkle nodes it
 * wrote, leaves included, so that the inclusion proofs of its entries
 * through memo (rete_store_inclusion_proof_memo) take them from memory.
 * When the commit fails memo is left as it was. A memo is for one store,
 * and all it holds stays true only while no entry of it is rewritten (a
 * restored copy is another log: use a new memo). Errors: as
 * rete_store_commit. */
rete_err rete_store_commit_memo(rete_store *s, rete_store_op *ops, size_t n, rete_merkle_memo *memo,
				rete_msg *m);

/* rete_store_commit_checkpoint is rete_store_commit_memo that also stores
 * the signed note `note` for tree size `size` (at most the log's size
 * before ops; as rete_store_checkpoint_put) in the same transaction: the
 * checkpoint is durable with the batch, at the cost of no sync of its own.
 * note NULL: none. A failed commit stores neither. Errors: as
 * rete_store_commit, and RETE_EINVAL for an empty note or a size beyond
 * the log. */
rete_err rete_store_commit_checkpoint(rete_store *s, rete_store_op *ops, size_t n,
				      rete_merkle_memo *memo, uint64_t size, const char *note,
				      rete_msg *m);

/* rete_store_behind: a batch made durable by the journal (its receipts
 * sent) is not yet in LMDB, whose commit of it failed (a full disk, an I/O
 * error): m says why. Readers do not see it until it is; every write, and
 * rete_store_catch_up, tries it first. rete_store_behind waits for no
 * commit (one in its flush on a failing disk takes seconds): it answers as
 * the last write or catch-up left the store, and may be asked on a thread
 * that must not stall. rete_store_catch_up returns RETE_OK once nothing is
 * behind, or the error that keeps it out; it waits for the commit lock. */
bool rete_store_behind(rete_store *s, rete_msg *m);
/* rete_store_behind_range is rete_store_behind that also gives the log's
 * size before and after the batch behind: entries [*size_before,
 * *size_after) are the ones it appended, none when the two are equal (it
 * holds acknowledgements or expiries only). A record that cannot be read
 * gives 0 and UINT64_MAX (any entry may be behind). */
bool rete_store_behind_range(rete_store *s, rete_msg *m, uint64_t *size_before,
			     uint64_t *size_after);
rete_err rete_store_catch_up(rete_store *s, rete_msg *m);

/* ---------------------------------------------------------------------------
 * Reading. Every read function takes `rt`: NULL = it opens and closes its
 * own short read transaction; or a handle from rete_store_read_begin, so a
 * caller can read several things at one fixed log size. Pointers returned
 * are copies the caller owns. A thread holding a handle passes it rather
 * than NULL (a second transaction in the same thread may have to wait for
 * the first when a writer in another process grew the map). A read-only
 * open of a folder whose lock file cannot be written (a copy on read-only
 * media) falls back to LMDB's MDB_NOLOCK: no writer may run on such a copy.
 * ------------------------------------------------------------------------- */

typedef struct rete_store_rtxn rete_store_rtxn;

/* rete_store_durable_fn: see rete_store_commit_durable. rt reads the store
 * as the batch leaves it, during the call only (reads only; do not end
 * it). */
typedef void (*rete_store_durable_fn)(void *ctx, rete_store_rtxn *rt);

/* rete_store_commit_durable is rete_store_commit_checkpoint that, in a
 * store opened with RETE_STORE_JOURNAL, calls fn(fn_ctx, rt) once the
 * batch is durable (its journal record written and flushed; ops' results
 * filled in, memo given the batch's nodes) and before LMDB commits it:
 * the caller may send its receipts then, while LMDB writes. *called says
 * whether fn was called; once it was, the call returns RETE_OK whatever
 * LMDB's commit does (a failed one is applied from the journal: now, or
 * before the next write, which fails until it is, or at the next open).
 * Without the journal, or when the batch wrote nothing, fn is not called
 * and the commit is rete_store_commit_checkpoint's. fn NULL: never.
 * Errors: as rete_store_commit_checkpoint. */
rete_err rete_store_commit_durable(rete_store *s, rete_store_op *ops, size_t n,
				   rete_merkle_memo *memo, uint64_t size, const char *note,
				   rete_store_durable_fn fn, void *fn_ctx, bool *called,
				   rete_msg *m);

/* rete_store_read_begin opens a read transaction (the caller's, end it with
 * rete_store_read_end soon: a long one pins old pages and blocks map
 * growth). Errors: RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_read_begin(rete_store *s, rete_store_rtxn **out, rete_msg *m);
/* (A handle belongs to one thread at a time; LMDB transactions are not
 * shared between threads that use them at once.) */

/* rete_store_read_end ends *rt and sets it to NULL; NULL is fine. */
void rete_store_read_end(rete_store_rtxn **rt);

/* rete_store_size: the number of entries in the log (the tree size).
 * Errors: RETE_ESTORE. */
rete_err rete_store_size(rete_store *s, rete_store_rtxn *rt, uint64_t *size, rete_msg *m);

/* rete_store_entry copies the LogEntry bytes of entry `index` into *out
 * (caller frees with rete_buf_free). Errors: RETE_ENOENT (index >= size),
 * RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_entry(rete_store *s, rete_store_rtxn *rt, uint64_t index, rete_buf *out,
			  rete_msg *m);

/* rete_store_entry_fn: one log entry; entry points into the map and lives
 * only during the call. Return nonzero to stop. */
typedef int (*rete_store_entry_fn)(void *ctx, uint64_t index, const uint8_t *entry, size_t len);

/* rete_store_entries_iter calls fn for entries [from, to) in index order
 * (to is clipped to the log size; a verifier or an EntriesQuery reads the
 * log this way without a copy per entry). Errors: RETE_ECORRUPT (a gap in
 * the entries), RETE_ESTORE. */
rete_err rete_store_entries_iter(rete_store *s, rete_store_rtxn *rt, uint64_t from, uint64_t to,
				 rete_store_entry_fn fn, void *ctx, rete_msg *m);

/* rete_store_node reads the stored hash of complete subtree (level, index)
 * (level 0 = leaf hashes), e.g. for a verifier comparing them with its own.
 * Errors: RETE_ENOENT (not stored: not complete in this log), RETE_ECORRUPT,
 * RETE_ESTORE. */
rete_err rete_store_node(rete_store *s, rete_store_rtxn *rt, unsigned level, uint64_t index,
			 uint8_t out[RETE_MERKLE_HASH], rete_msg *m);

/* rete_store_leaf_hash: the stored leaf hash of entry `index`. Errors:
 * RETE_ENOENT, RETE_ECORRUPT (missing node), RETE_ESTORE. */
rete_err rete_store_leaf_hash(rete_store *s, rete_store_rtxn *rt, uint64_t index,
			      uint8_t out[RETE_MERKLE_HASH], rete_msg *m);

/* rete_store_root: the Merkle root of the first `size` entries, from stored
 * nodes. Errors: RETE_EINVAL (size > log size), RETE_ECORRUPT, RETE_ESTORE. */
rete_err rete_store_root(rete_store *s, rete_store_rtxn *rt, uint64_t size,
			 uint8_t out[RETE_MERKLE_HASH], rete_msg *m);

/* rete_store_root_memo: rete_store_root through memo (merkle.h,
 * rete_merkle_root_memo; NULL: none), which then holds the root's upper
 * subtrees for the inclusion proofs of that size through it (a commit's
 * receipts: the root of their checkpoint first). Errors: as
 * rete_store_root. */
rete_err rete_store_root_memo(rete_store *s, rete_store_rtxn *rt, rete_merkle_memo *memo,
			      uint64_t size, uint8_t out[RETE_MERKLE_HASH], rete_msg *m);

/* rete_store_inclusion_proof: PATH(index, D[0:size]) into proof (room for
 * RETE_MERKLE_MAX_PROOF hashes), length in *n. Errors: RETE_EINVAL (index >=
 * size or size > log size), RETE_ECORRUPT, RETE_ESTORE. */
rete_err rete_store_inclusion_proof(rete_store *s, rete_store_rtxn *rt, uint64_t index,
				    uint64_t size, uint8_t proof[][RETE_MERKLE_HASH], size_t *n,
				    rete_msg *m);

/* rete_store_inclusion_proof_memo: the same through memo (merkle.h), which
 * the proofs of one commit's receipts share (store_commit.c). */
rete_err rete_store_inclusion_proof_memo(rete_store *s, rete_store_rtxn *rt, rete_merkle_memo *memo,
					 uint64_t index, uint64_t size,
					 uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m);

/* rete_store_consistency_proof: PROOF(size1, D[0:size2]). Errors:
 * RETE_EINVAL (size1 == 0, size1 > size2 or size2 > log size),
 * RETE_ECORRUPT, RETE_ESTORE. */
rete_err rete_store_consistency_proof(rete_store *s, rete_store_rtxn *rt, uint64_t size1,
				      uint64_t size2, uint8_t proof[][RETE_MERKLE_HASH], size_t *n,
				      rete_msg *m);

/* rete_store_checkpoint_put stores the signed note for tree size `size` (a
 * note already stored for that size is replaced; when the new one has
 * another body, e.g. a new epoch's after a restore, that size's time-stamp
 * token is dropped with it, since it stamps the old body; one that only
 * adds signature lines keeps it) in its own durable write
 * transaction. Same rule as commit: no rtxn held by this thread. Errors:
 * RETE_EINVAL (size > log size, empty note), RETE_EPERM (read-only),
 * RETE_EFULL, RETE_ESTORE. */
rete_err rete_store_checkpoint_put(rete_store *s, uint64_t size, const char *note, rete_msg *m);

/* rete_store_checkpoint_latest: the checkpoint with the largest size; *note
 * is malloc'd, NUL-terminated, the caller frees it. Errors: RETE_ENOENT
 * (none yet), RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_checkpoint_latest(rete_store *s, rete_store_rtxn *rt, uint64_t *size,
				      char **note, rete_msg *m);

/* rete_store_checkpoint_get: the note for exactly `size` (malloc'd, caller
 * frees). Errors: RETE_ENOENT, RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_checkpoint_get(rete_store *s, rete_store_rtxn *rt, uint64_t size, char **note,
				   rete_msg *m);

/* rete_store_checkpoint_fn: called per checkpoint in size order; note lives
 * only during the call. Return nonzero to stop. */
typedef int (*rete_store_checkpoint_fn)(void *ctx, uint64_t size, const char *note);

/* rete_store_checkpoints_iter calls fn for each checkpoint with size >=
 * from, in order. Errors: RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_checkpoints_iter(rete_store *s, rete_store_rtxn *rt, uint64_t from,
				     rete_store_checkpoint_fn fn, void *ctx, rete_msg *m);

/* ---------------------------------------------------------------------------
 * Time-stamp tokens (schema 3): RFC 3161 TimeStampTokens, DER, one per
 * stored checkpoint, over SHA-256 of the note's signed text
 * (rete_tsa_note_hash). The store keeps the bytes; it does not parse or
 * verify them (store/tsa.h does, with a CA).
 * ------------------------------------------------------------------------- */

#define RETE_STORE_TOKEN_MAX (256 * 1024) /* = RETE_TSA_RESPONSE_MAX */

/* rete_store_timestamp_put stores token[0:len] for the checkpoint of tree
 * size `size` (a token already stored for that size is replaced) in its
 * own durable write transaction (no rtxn held by this thread). Errors:
 * RETE_EINVAL (no token, over RETE_STORE_TOKEN_MAX bytes, or no checkpoint
 * of that size is stored), RETE_EPERM (read-only), RETE_EFULL,
 * RETE_ESTORE. */
rete_err rete_store_timestamp_put(rete_store *s, uint64_t size, const uint8_t *token, size_t len,
				  rete_msg *m);

/* rete_store_timestamp_get copies the token of the checkpoint of tree size
 * `size` into *token (caller frees with rete_buf_free). Errors: RETE_ENOENT
 * (that checkpoint has no token; also any size in a schema-1/2 store read
 * read-only), RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_timestamp_get(rete_store *s, rete_store_rtxn *rt, uint64_t size,
				  rete_buf *token, rete_msg *m);

/* rete_store_timestamp_latest: the token of the largest checkpoint size
 * that has one, its size in *size. Errors: RETE_ENOENT (no token yet),
 * RETE_ECORRUPT (a malformed key), RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_timestamp_latest(rete_store *s, rete_store_rtxn *rt, uint64_t *size,
				     rete_buf *token, rete_msg *m);

/* rete_store_queue_peek writes into indexes[0..*n) (at most max) the log
 * indexes still queued for recipient with index >= from, in log order.
 * Errors: RETE_EINVAL (recipient empty), RETE_ESTORE. */
rete_err rete_store_queue_peek(rete_store *s, rete_store_rtxn *rt, const char *recipient,
			       uint64_t from, size_t max, uint64_t *indexes, size_t *n,
			       rete_msg *m);

/* rete_store_queue_depth: how many entries are queued for recipient and
 * when the oldest was logged (0 when none). Errors: RETE_EINVAL,
 * RETE_ESTORE. */
rete_err rete_store_queue_depth(rete_store *s, rete_store_rtxn *rt, const char *recipient,
				uint64_t *depth, int64_t *oldest_at, rete_msg *m);

/* rete_store_queue_fn: one queued entry (recipient lives during the call
 * only). Return nonzero to stop. Must not commit (a read txn is open). */
typedef int (*rete_store_queue_fn)(void *ctx, const char *recipient, uint64_t index,
				   int64_t logged_at);

/* rete_store_queue_expired calls fn for every queued entry logged before
 * before_ms (any recipient). Collect them, then commit EXPIRE ops.
 * Errors: RETE_ESTORE. */
rete_err rete_store_queue_expired(rete_store *s, rete_store_rtxn *rt, int64_t before_ms,
				  rete_store_queue_fn fn, void *ctx, rete_msg *m);

/* rete_store_blob copies the sealed part kept for entry `index` into *out
 * (caller frees). Errors: RETE_ENOENT (none, or already acked/expired),
 * RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_blob(rete_store *s, rete_store_rtxn *rt, uint64_t index, rete_buf *out,
			 rete_msg *m);

/* rete_store_referral: the projection of referral `id`; *out is the
 * caller's (rete__referral_info__free_unpacked(*out, NULL)). Errors:
 * RETE_ENOENT, RETE_ECORRUPT, RETE_ESTORE. */
rete_err rete_store_referral(rete_store *s, rete_store_rtxn *rt, const char *id,
			     Rete__ReferralInfo **out, rete_msg *m);

/* rete_store_referral_fn: one referral (lives during the call only).
 * Return nonzero to stop. */
typedef int (*rete_store_referral_fn)(void *ctx, const Rete__ReferralInfo *r);

/* rete_store_referrals_iter calls fn for every referral, by id. Errors:
 * RETE_ECORRUPT, RETE_ESTORE. */
rete_err rete_store_referrals_iter(rete_store *s, rete_store_rtxn *rt, rete_store_referral_fn fn,
				   void *ctx, rete_msg *m);

/* rete_store_overdue_candidates calls fn, earliest due first, for each
 * referral in status requested or received with 0 < due_at < now_ms and no
 * overdue notice yet (an OVERDUE Notice appended for it removes it).
 * Errors: RETE_ECORRUPT, RETE_ESTORE. */
rete_err rete_store_overdue_candidates(rete_store *s, rete_store_rtxn *rt, int64_t now_ms,
				       rete_store_referral_fn fn, void *ctx, rete_msg *m);

/* rete_store_index_fn: one log index. Return nonzero to stop. */
typedef int (*rete_store_index_fn)(void *ctx, uint64_t index);

/* rete_store_case_entries calls fn for each entry of case_id, in log order.
 * Errors: RETE_EINVAL (empty case id), RETE_ESTORE. */
rete_err rete_store_case_entries(rete_store *s, rete_store_rtxn *rt, const char *case_id,
				 rete_store_index_fn fn, void *ctx, rete_msg *m);

/* rete_store_directory: the index and LogEntry bytes (caller frees; entry
 * may be NULL) of the Directory in force. Errors: RETE_ENOENT (none logged
 * yet), RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_store_directory(rete_store *s, rete_store_rtxn *rt, uint64_t *index, rete_buf *entry,
			      rete_msg *m);

/* rete_store_time_zone returns the time zone the Directory in force names
 * (malloc'd, the caller frees it), or NULL when there is no Directory, it
 * cannot be read or decoded, or it names no zone. */
char *rete_store_time_zone(rete_store *s, rete_store_rtxn *rt);

/* rete_store_msgid looks up (sender, id) in the dedup index: index of the
 * entry, SHA-256 of its Message bytes, logged_at (each out may be NULL).
 * Errors: RETE_ENOENT, RETE_EINVAL (empty sender or id), RETE_ESTORE. */
rete_err rete_store_msgid(rete_store *s, rete_store_rtxn *rt, const char *sender, const char *id,
			  uint64_t *index, uint8_t sha256[RETE_HASH_LEN], int64_t *logged_at,
			  rete_msg *m);

/* rete_store_stats: the current map size and the bytes in use (last page
 * used times page size). Errors: RETE_ESTORE. */
rete_err rete_store_stats(rete_store *s, uint64_t *map_size, uint64_t *map_used, rete_msg *m);

/* ---------------------------------------------------------------------------
 * Deliveries set aside (the broker's, broker.c "set aside"): the queued
 * entries a party read and left unacknowledged, out of its delivery
 * window, kept so that a restart of the broker does not put them back in
 * the window. Meta "parked/PARTY": the log indexes, BE64 each, as the
 * broker gave them (ascending). Part of schema 4 (written only by the
 * broker, which journals: no program of an older schema opens such a
 * store); a program that does not know the key ignores it. Not part of
 * the log: nothing is proved or audited with it, and the broker checks
 * every index against the queue when it reads the list back.
 * ------------------------------------------------------------------------- */

#define RETE_STORE_PARKED_KEY "parked/"
/* the most indexes in one list: PARK_PER_SLOT (64) times the largest
 * delivery_window (100000) */
#define RETE_STORE_PARKED_MAX 6400000u

/* rete_store_parked: one party's list for rete_store_parked_put (the
 * caller's; read during the call only). n == 0: the list is removed. */
typedef struct rete_store_parked {
	const char *party;
	const uint64_t *index;
	size_t n;
} rete_store_parked;

/* rete_store_parked_put writes lists[0..n) into meta in one durable write
 * transaction of its own (not journaled: it ends with a sync of the data
 * file, like a checkpoint's; no rtxn held by this thread). The broker
 * uses it only when no batch carries its lists (a quiet network, the
 * stop): rete_store_commit_parked writes them with a batch. Errors:
 * RETE_EINVAL (a party id empty or over RETE_ID_MAX bytes, more than
 * RETE_STORE_PARKED_MAX indexes), RETE_EPERM (read-only), RETE_EFULL,
 * RETE_ESTORE. */
rete_err rete_store_parked_put(rete_store *s, const rete_store_parked *lists, size_t n,
			       rete_msg *m);

/* rete_store_commit_parked is rete_store_commit_durable that also writes
 * lists[0..nlists) in the batch's own transaction (and, journaled, in its
 * journal record): the lists change in the commit of the batch, with no
 * commit or sync of their own. A failed commit writes none. n must be at
 * least 1. Errors: as rete_store_commit_durable and rete_store_parked_put. */
rete_err rete_store_commit_parked(rete_store *s, rete_store_op *ops, size_t n,
				  rete_merkle_memo *memo, uint64_t size, const char *note,
				  const rete_store_parked *lists, size_t nlists,
				  rete_store_durable_fn fn, void *fn_ctx, bool *called,
				  rete_msg *m);

/* rete_store_parked_get reads the first `max` indexes (at most) of party's
 * list into *index (malloc'd, the caller frees it; NULL and *n = 0 when
 * none is stored); *stored (may be NULL) is how many the list holds, so
 * that *stored - *n were not read. Errors: RETE_EINVAL (a bad party id),
 * RETE_ECORRUPT (a value that is not a list of at most
 * RETE_STORE_PARKED_MAX 8-byte indexes: the caller may write a new one
 * over it), RETE_ENOMEM, RETE_ESTORE. */
rete_err rete_store_parked_get(rete_store *s, rete_store_rtxn *rt, const char *party, size_t max,
			       uint64_t **index, size_t *n, size_t *stored, rete_msg *m);

/* rete_store_party_fn: one party (lives during the call only). Return
 * nonzero to stop. Must not commit (a read txn is open). */
typedef int (*rete_store_party_fn)(void *ctx, const char *party);

/* rete_store_parked_parties calls fn for every party that has a list
 * stored, by id (a key whose id is not a party id, empty or over
 * RETE_ID_MAX bytes or with a NUL byte, is skipped: rete_store_parked_sweep
 * removes it). Errors: RETE_ESTORE. */
rete_err rete_store_parked_parties(rete_store *s, rete_store_rtxn *rt, rete_store_party_fn fn,
				   void *ctx, rete_msg *m);

/* rete_store_parked_sweep removes, in one durable write transaction (none
 * when there is nothing to remove; no rtxn held by this thread), every
 * list whose party keep(ctx, party) does not keep (returns false; called
 * during the transaction, perhaps more than once for a party: no side
 * effects) and every "parked/" key whose id is not a party id (empty,
 * over RETE_ID_MAX bytes, with a NUL byte), by its key as it is. Then,
 * once removed, gone(ctx, what) says each (the party, or "a damaged key
 * of N bytes ..."); *removed (may be NULL) is how many. Errors:
 * RETE_EPERM, RETE_EFULL, RETE_ESTORE. */
typedef bool (*rete_store_party_keep_fn)(void *ctx, const char *party);
rete_err rete_store_parked_sweep(rete_store *s, rete_store_party_keep_fn keep,
				 rete_store_party_fn gone, void *ctx, size_t *removed, rete_msg *m);

/* ---------------------------------------------------------------------------
 * Backup
 * ------------------------------------------------------------------------- */

/* rete_store_backup writes a consistent, compacted copy of the store in
 * src_dir into dest_dir (created with its missing parents, mode 0700;
 * must not exist or be empty; the copy's data.mdb is 0600) while a
 * writer may be running; opens src_dir read-only itself, so it must not be
 * open in this process (use rete_store_backup_to then). The copy is marked
 * as a copy (meta "copy", store_identity.h: a broker serves it only after a
 * declared restore) and appears as dest_dir/data.mdb only once marked.
 * Errors: RETE_EEXIST (dest not empty), RETE_ENOENT, RETE_EVERSION,
 * RETE_EPERM (a folder cannot be created), RETE_EIO, RETE_EFULL,
 * RETE_ESTORE. */
rete_err rete_store_backup(const char *src_dir, const char *dest_dir, rete_msg *m);

/* rete_store_backup_to is rete_store_backup from an already open store. */
rete_err rete_store_backup_to(rete_store *s, const char *dest_dir, rete_msg *m);

#endif
