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
 *   - the Merkle tree recomputed from the entry bytes equals the stored leaf
 *     hashes and nodes and every stored checkpoint's root; every checkpoint
 *     carries a valid signature of the broker key; consecutive checkpoints
 *     are consistent (a consistency proof from the store verifies);
 *   - optionally (replay), the referral lifecycle replayed from the log in
 *     a scratch store (a temporary folder, removed afterwards) yields the
 *     same entries, the same tree and the same referral projections as the
 *     store; a lifecycle refusal during the replay is a failure;
 *   - optionally, the log extends a checkpoint kept from an earlier audit
 *     (it is caught when the store was truncated or an older backup put back).
 * Signatures are checked on several threads (chunks of entries). The report
 * names the first failure: the entry's index and a sentence.
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
	const char *since_note;		  /* a checkpoint note kept from an earlier audit
					     (NULL = none): the log must extend it */
	size_t since_len;		  /* its length in bytes */
	rete_verify_progress_fn progress; /* may be NULL */
	void *progress_ctx;
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
	uint64_t referrals;		/* referral projections compared (replay) */
	bool replayed;			/* the replay ran to the end */
	bool has_checkpoint;		/* latest_* are set */
	uint64_t latest_size;		/* the latest stored checkpoint */
	uint8_t latest_root[RETE_MERKLE_HASH];
	bool has_bad_entry; /* bad_index names the first failing entry */
	uint64_t bad_index;
	char origin[RETE_ORIGIN_MAX + 1]; /* the origin used */
	char reason[512];		  /* the first failure, one sentence ("" if none) */
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

/* rete_verify_cores is the number of online cores (at least 1): the
 * default thread count. */
unsigned rete_verify_cores(void);

#endif
