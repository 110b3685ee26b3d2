/* verify.h — verification of a whole audit log, as an auditor does it.
 *
 * rete_verify_log reads a store at one fixed log size (one read
 * transaction, so it works on a read-only store beside a running broker)
 * and checks everything the log promises:
 *   - every entry decodes strictly (LogEntry, SignedMessage, Message) and
 *     its stored index equals its position;
 *   - every signature verifies: the broker's own bodies (Directory,
 *     Delivery, Notice) with the broker key given, an agency's message with
 *     the sender's key from the Directory in force at that point of the log
 *     (the Directory entries are in the log);
 *   - every Delivery and DELIVERY_REFUSED Notice carries the recipient's
 *     signed acknowledgement (protocol 3), which verifies with the key of
 *     the delivered entry's recipient in the Directory in force at the
 *     Delivery, over this log's origin, the delivered entry's index and
 *     leaf hash; one without it before the log's first signed one (a log
 *     begun before protocol 3, upgraded in place) is counted
 *     (acks_unsigned), not a failure, and after it is a failure (a broker
 *     of protocol 3 or later logs a delivery only with the signed
 *     acknowledgement; a session knows only the ones it was fed);
 *   - the Merkle tree recomputed from the entry bytes equals the stored leaf
 *     hashes and nodes and every stored checkpoint's root; every checkpoint
 *     carries a valid signature of the broker key; consecutive checkpoints
 *     are consistent (a consistency proof from the store verifies);
 *   - optionally (replay), the referral lifecycle replayed from the log in
 *     a scratch store (a temporary folder, removed afterwards) yields the
 *     same entries, the same tree and the same referral projections as the
 *     store, a lifecycle refusal during the replay is a failure, and
 *     the same derived indexes, compared row by row (one merge of two
 *     key-ordered cursors per database): the case index, the dedup index
 *     (msgids), the due times, the delivery queue (the replay takes out
 *     what the log shows acked or expired: a Delivery, a DELIVERY_REFUSED
 *     or NOT_DELIVERED Notice; the broker's own entries, whose acks leave
 *     no trace, are checked against their entry) and the sealed parts
 *     kept (each must hash to what its entry signs). A row the store has
 *     and the log does not give, or a row that differs, is a failure
 *     naming the database, the row and both values; a queue row (and its
 *     sealed part) the log gives but the store no longer holds is counted
 *     (unlogged_acks), not a failure: the store's API lets a program ack
 *     without logging, the broker never does;
 *   - optionally, the log extends a checkpoint kept from an earlier audit
 *     (it is caught when the store was truncated or an older backup put back),
 *     or follows it with a declared restore: the first Epoch entry of a
 *     later epoch than that checkpoint's is reported (rep->restored), and
 *     when the earlier checkpoint covers entries from that Epoch entry on,
 *     the checkpoint the entry records (the last one signed before the
 *     restore) must not contradict it: of the same epoch it is not smaller,
 *     and at the same size it has the same root (RETE_EPROOF otherwise).
 * Signatures are checked on several threads (chunks of entries). The report
 * names the first failure: the entry's index and a sentence.
 *
 * The same checks run on entries that come from elsewhere (an auditor
 * fetching them from the broker over the wire): a rete_verify_session
 * resumes from a state kept by an earlier run (the checkpoint verified
 * then, the frontier of the verified prefix and the Directory in force at
 * that size), is given the new checkpoint to reach (its signature, and its
 * consistency with the saved one through a proof the caller fetches), and
 * is fed the entries it has not seen, batch by batch. Strict decoding,
 * signatures against the Directory in force, the recomputed tree, the
 * checkpoint's signature and root, and the consistency checks are the very
 * code rete_verify_log runs; only what needs the store itself (stored leaf
 * hashes and nodes, every stored checkpoint, the lifecycle replay against
 * the stored projections) is left out.
 */
#ifndef RETE_VERIFY_H
#define RETE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "error.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"

/* rete_verify_progress_fn is called from the calling thread after each
 * chunk of entries: done of total entries checked so far. */
typedef void (*rete_verify_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* rete_verify_key_change: a party whose key in a Directory entry is not
 * the last key it had in any earlier Directory (not only the one in force:
 * a party removed and added back under another key is a change; a new
 * party, or one removed, is none). The log cannot tell a rotation from a
 * broker's operator who put a key of his own under the party's id: it is
 * reported, not a failure; a change back to a key the party had in an
 * earlier Directory (back) is what such an operator leaves when he puts
 * the real key back. Keys are the 32-byte Ed25519 public keys. Pointers
 * live for the call. */
typedef struct rete_verify_key_change {
	const char *party;
	uint64_t index;		      /* the Directory entry that changes it */
	int64_t logged_at;	      /* its loggedAt (Unix ms) */
	uint64_t prev_index;	      /* the last Directory entry before it that
					 listed the party (the one in force, unless
					 the party was removed in between) */
	uint8_t old_key[RETE_PK_LEN]; /* the key there */
	uint64_t old_from;	      /* the first Directory entry that gave the
					 party old_key */
	uint8_t new_key[RETE_PK_LEN]; /* the key from `index` on */
	bool back;		      /* new_key was the party's key in a Directory
					 before prev_index */
	uint64_t back_index;	      /* the earliest such Directory entry */
	bool added_back;	      /* the party was not in the Directory in force
					 before `index` (removed after prev_index,
					 added back here with another key) */
} rete_verify_key_change;

/* rete_verify_key_seen: one key a party had in the Directories of a
 * verified prefix (what a session keeps so that the next one still sees a
 * change back, or a party added back under another key). Pointers are
 * borrowed. */
typedef struct rete_verify_key_seen {
	const char *party;
	uint8_t key[RETE_PK_LEN];
	uint64_t first_index; /* the first Directory entry that gave it this key */
	uint64_t last_index;  /* the last one (up to the prefix's size) */
} rete_verify_key_seen;

/* rete_verify_key_change_fn is called for each key change, in log order,
 * from the thread that runs the verification. */
typedef void (*rete_verify_key_change_fn)(void *ctx, const rete_verify_key_change *kc);

/* rete_verify_options: what to verify against. Zero-initialise, then set
 * broker_key (required); everything else is optional. Pointers are
 * borrowed for the call. */
typedef struct rete_verify_options {
	rete_pubkey broker_key;		  /* the broker's key: checkpoints, broker bodies,
					     Directory entries */
	const char *origin;		  /* the log's origin = the checkpoints' key name;
					     NULL or "" = the origin of the first stored
					     checkpoint, else of the first entry */
	unsigned threads;		  /* signature threads; 0 = every online core */
	bool replay;			  /* replay the lifecycle into a scratch store */
	const char *scratch_dir;	  /* parent of the scratch store; NULL = $TMPDIR
					     or /tmp */
	bool allow_unlogged_acks;	  /* a queue row missing for an entry the log
					     shows undelivered is counted in
					     unlogged_acks, not a failure: only for a
					     log filled through the store's API without
					     Delivery entries (the benchmark); the broker
					     never acks without logging it */
	const char *since_note;		  /* a checkpoint note kept from an earlier audit
					     (NULL = none): the log must extend it, or
					     follow it with a declared restore (see
					     above) */
	size_t since_len;		  /* its length in bytes */
	rete_verify_progress_fn progress; /* may be NULL */
	void *progress_ctx;
	rete_verify_key_change_fn key_change; /* may be NULL: counted only */
	void *key_change_ctx;
} rete_verify_options;

/* The outcome of a verification. */
typedef enum rete_verify_verdict {
	RETE_VERIFY_HOLDS = 1, /* every check passed */
	RETE_VERIFY_FAILS = 2, /* the log (or the --since checkpoint) is false */
	RETE_VERIFY_ERROR = 3  /* the check could not be done (I/O, memory) */
} rete_verify_verdict;

/* rete_verify_report: filled by rete_verify_log (plain values). */
typedef struct rete_verify_report {
	rete_verify_verdict verdict;
	uint64_t size;			/* the log size verified (fixed for the run) */
	uint8_t root[RETE_MERKLE_HASH]; /* the recomputed root at `size` */
	uint64_t entries;		/* entries that passed every check */
	uint64_t checkpoints;		/* checkpoints that passed every check */
	uint64_t directories;		/* Directory entries met */
	uint64_t key_changes;		/* parties' keys changed by them (see
					   rete_verify_key_change) */
	uint64_t key_changes_back;	/* of which back to an earlier key */
	uint64_t referrals;		/* referral projections compared (replay) */
	uint64_t index_rows;		/* rows of the derived indexes compared (replay):
					   cases, msgids, due, queue, blobs */
	uint64_t unlogged_acks;		/* entries the log shows undelivered that are no
					   longer queued (acked without a Delivery or
					   Notice entry: not a failure, see verify.h) */
	bool replayed;			/* the replay ran to the end */
	bool has_checkpoint;		/* latest_* are set */
	uint64_t latest_size;		/* the latest stored checkpoint */
	uint8_t latest_root[RETE_MERKLE_HASH];
	bool has_bad_entry; /* bad_index names the first failing entry */
	uint64_t bad_index;
	char origin[RETE_ORIGIN_MAX + 1]; /* the origin used */
	char reason[512];		  /* the first failure, one sentence ("" if none) */
	/* A declared restore after the earlier checkpoint (since_note, or the
	 * checkpoint a session resumes from): the first Epoch entry of an epoch
	 * later than that checkpoint's. */
	bool restored;		     /* restore_* and since_* are set */
	uint64_t restore_index;	     /* the index of that Epoch entry */
	uint32_t restore_epoch;	     /* the epoch it begins */
	uint32_t restore_prev_epoch; /* the epoch of the checkpoint it records */
	uint64_t restore_prev_size;  /* that checkpoint's size: the last one the broker
					says it signed before the restore */
	uint32_t since_epoch;	     /* the earlier checkpoint's epoch */
	uint64_t since_size;	     /* and size */
	bool since_past;	     /* it covered entries from restore_index on: the
					ones it saw there are not in this log */
	/* Protocol 3: the recipient's signed acknowledgement in each Delivery
	 * and DELIVERY_REFUSED Notice, verified with the recipient's key in
	 * the Directory in force at that entry, over this log's origin, the
	 * delivered entry's index and its leaf hash (a bad one fails the log). */
	uint64_t acks_verified; /* acknowledgements that verified */
	uint64_t acks_unsigned; /* Deliveries / refusals without one before the
				   first signed one: logged before protocol 3;
				   counted, not a failure */
	uint64_t acks_unbound;	/* (sessions) verified acknowledgements of an
				   entry before the session's start: the leaf
				   hash and recipient could not be compared */
	/* The broker's clock as the loggedAt of its entries tell it: counted
	 * and reported, not a failure (a log is not forged because the
	 * broker's clock was wrong; its times there are no evidence).
	 * Tolerances RETE_CLOCK_STEP_MS and RETE_CLOCK_SKEW_MS (duration.h). */
	uint64_t clock_back;	   /* entries whose loggedAt is more than
				      RETE_CLOCK_STEP_MS before the latest
				      loggedAt of the entries before them */
	uint64_t clock_back_index; /* the first of them, its loggedAt, and the */
	int64_t clock_back_at;	   /* latest loggedAt before it (at entry */
	int64_t clock_back_prev;   /* clock_back_prev_index) */
	uint64_t clock_back_prev_index;
	uint64_t clock_early;	    /* agencies' messages logged more than
				       RETE_CLOCK_SKEW_MS before their own signed
				       createdAt */
	uint64_t clock_early_index; /* the first of them, its loggedAt and */
	int64_t clock_early_at;	    /* createdAt */
	int64_t clock_early_created;
	bool clock_seen;	     /* (the check's own) clock_latest is set */
	int64_t clock_latest;	     /* the latest loggedAt so far, at entry */
	uint64_t clock_latest_index; /* clock_latest_index */
} rete_verify_report;

/* rete_verify_log verifies the log in s (opened read-only or not) as
 * described above and fills *rep. Returns RETE_OK when the log holds.
 * When it does not (rep->verdict RETE_VERIFY_FAILS, the sentence in
 * rep->reason and m, rep->has_bad_entry/bad_index when an entry is at
 * fault): RETE_EDECODE, RETE_EBADSIG, RETE_ECORRUPT (tree, nodes, index or
 * projections differ), RETE_EPROOF (a consistency proof fails, or the log
 * does not extend since_note), RETE_ELIFECYCLE (the replay refuses an
 * entry). When the check could not be done (RETE_VERIFY_ERROR): RETE_EINVAL
 * (bad options), RETE_ESTORE, RETE_EIO (scratch folder), RETE_ENOMEM.
 * The caller must not hold a read transaction of s in this thread. */
rete_err rete_verify_log(rete_store *s, const rete_verify_options *opt, rete_verify_report *rep,
			 rete_msg *m);

/* rete_verify_proof_fn gives the consistency proof PROOF(size1, size2)
 * (0 < size1 < size2) from wherever the caller gets it: the hashes into
 * proof (room for RETE_MERKLE_MAX_PROOF) and their number into *n. It
 * returns RETE_OK; RETE_EPROOF when the source cannot give such a proof
 * (a broker that no longer has size1 or size2: the sentence in m is part
 * of the failure); or an error that stops the check (RETE_ENET,
 * RETE_ETIMEDOUT, RETE_EREFUSED, RETE_ESTORE, RETE_ENOMEM). */
typedef rete_err (*rete_verify_proof_fn)(void *ctx, uint64_t size1, uint64_t size2,
					 uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m);

/* rete_verify_resume: what a verification of a prefix of the log leaves
 * for the next one (all borrowed from whoever fills it). */
typedef struct rete_verify_resume {
	const char *note; /* the checkpoint verified last (signed note) */
	size_t note_len;
	rete_merkle_frontier frontier; /* the verified prefix: its size is the note's
					  size, its root the note's root */
	const uint8_t *directory;      /* LogEntry bytes of the Directory in force at
					  that size (NULL when the prefix has none) */
	size_t directory_len;
	uint64_t acks_signed_at;	  /* 1 + the index of the first entry of the prefix
					     carrying a signed acknowledgement (0: none):
					     an unsigned Delivery after it fails */
	const rete_verify_key_seen *keys; /* each party's keys in the prefix's
					     Directories (n_keys of them; NULL, 0: a
					     state of an earlier rete, which kept only
					     the Directory in force: key changes are
					     then compared from that Directory on) */
	size_t n_keys;
} rete_verify_resume;

/* An incremental verification of entries fed by the caller. */
typedef struct rete_verify_session rete_verify_session;

/* rete_verify_session_open starts a session from *from (NULL: the empty
 * log) with the options opt (broker_key required; origin, threads and
 * since_note used; replay, scratch_dir and progress ignored). The resume
 * state is checked first: the note carries the broker's signature under the
 * origin (opt->origin, else the note's own), the frontier's size and root
 * are the note's, the Directory entry decodes strictly, is signed by the
 * broker, and lies inside the prefix; each key seen (from->keys) names a
 * party and lies inside the prefix (first_index <= last_index < size); the
 * log is in the note's epoch there,
 * and a restore declared after it is reported as for since_note. since_note
 * (only without from: after a restore, an auditor verifies again from 0
 * with its saved checkpoint there) is checked as rete_verify_log does: its
 * root when the tree reaches its size, or the restore that followed it.
 * *out is the caller's (rete_verify_session_close), set only on RETE_OK.
 * Errors: RETE_EINVAL, RETE_EBADSIG or RETE_ECORRUPT for a resume state or
 * since_note that is not what a verification leaves (m says which part and
 * why), RETE_ENOMEM. */
rete_err rete_verify_session_open(rete_verify_session **out, const rete_verify_options *opt,
				  const rete_verify_resume *from, rete_msg *m);

/* rete_verify_session_target sets the checkpoint note[0:len] (copied) as
 * the one the session verifies up to, and checks at once that it carries
 * the broker's signature (key name = the origin; on a session without one
 * the note's origin becomes it) and that it extends the resumed
 * checkpoint: its size is not smaller, and the consistency proof that
 * proof(ctx, ...) gives verifies from the resumed root to its root (equal
 * roots at equal sizes); with since_note, that the note is not smaller
 * than it unless the note is of a later epoch (a restore, checked as the
 * entries come). Called once per session. Errors: RETE_EBADSIG (the note
 * is not the broker's), RETE_EPROOF (the log is not consistent with the
 * resumed checkpoint: rolled back or forked), RETE_EINVAL (a
 * malformed note, or a second call), or what proof returns. */
rete_err rete_verify_session_target(rete_verify_session *s, const char *note, size_t len,
				    rete_verify_proof_fn proof, void *ctx, rete_msg *m);

/* rete_verify_session_size is the size of the prefix verified so far: the
 * index of the next entry to feed. */
uint64_t rete_verify_session_size(const rete_verify_session *s);

/* rete_verify_session_target_size is the target checkpoint's size (0
 * before rete_verify_session_target). */
uint64_t rete_verify_session_target_size(const rete_verify_session *s);

/* rete_verify_session_feed checks the entries [from, from + n) (their
 * LogEntry bytes, borrowed for the call) exactly as rete_verify_log does
 * (strict decoding, index, signature with the key of the Directory in
 * force, the tree; the target checkpoint when the tree reaches its size).
 * from must be rete_verify_session_size(s) and from + n at most the target
 * size. Returns RETE_OK while everything holds; after a failure the
 * session takes no more entries and returns that failure's code (see
 * rete_verify_log): RETE_EDECODE, RETE_EBADSIG, RETE_ECORRUPT, RETE_EPROOF;
 * RETE_EINVAL for a call out of order, RETE_ENOMEM. */
rete_err rete_verify_session_feed(rete_verify_session *s, uint64_t from, const rete_buf *entries,
				  size_t n, rete_msg *m);

/* rete_verify_session_finish ends the session and fills *rep as
 * rete_verify_log does (size = the target's, entries = the entries fed and
 * verified in this session, latest_* = the target). Holds (RETE_OK) when
 * every entry up to the target size was fed and verified and the root
 * recomputed there is the target's. Errors as rete_verify_session_feed;
 * RETE_EINVAL (verdict RETE_VERIFY_ERROR) when no target was set or not
 * every entry up to it was fed. */
rete_err rete_verify_session_finish(rete_verify_session *s, rete_verify_report *rep, rete_msg *m);

/* rete_verify_session_state fills *out with the state to keep for the
 * next run, after a finish that held: the target note, the frontier at its
 * size, the Directory in force there, each party's keys in the Directories
 * up to there (those resumed from and those fed). The pointers stay valid
 * until the session is closed. RETE_EINVAL when the session did not hold,
 * RETE_ENOMEM. */
rete_err rete_verify_session_state(rete_verify_session *s, rete_verify_resume *out, rete_msg *m);

/* rete_verify_session_close releases *s and sets it to NULL; NULL is fine. */
void rete_verify_session_close(rete_verify_session **s);

/* rete_verify_cores is the number of online cores (at least 1): the
 * default thread count. */
unsigned rete_verify_cores(void);

#endif
