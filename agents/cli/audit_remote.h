/* audit_remote.h — the auditor at a distance: `rete audit verify` and
 * `rete audit timeline` against the broker instead of a store folder.
 *
 * The auditor connects with its own key (audit.ini, the coord.ini format
 * of coord_config.h with the auditor's id), pinning the broker's key, and
 * asks over the wire for the latest checkpoint, consistency proofs and log
 * entries by range. Verification runs store/verify.h's session: the same
 * checks as the local command, on the entries fetched.
 *
 * This module also owns the auditor's state file (--state FILE): the last
 * checkpoint verified, the frontier of the verified prefix (so the tree is
 * extended without fetching old entries again), the Directory in force
 * at that size and each party's keys in the Directories so far (so that a
 * key changed in one run and changed back in the next is still seen), signed with the auditor's own
 * key so that a file altered since it was written is refused. It is replaced atomically (temporary
 * file, fsync, rename) and only after a verification that held.
 */
#ifndef RETE_CLI_AUDIT_REMOTE_H
#define RETE_CLI_AUDIT_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "codec.h"
#include "cosign.h"
#include "error.h"
#include "keys.h"
#include "verify.h"

/* audit_state: a loaded state file. All owned by the struct. */
typedef struct audit_state {
	char *note;		       /* the checkpoint verified last (signed note) */
	rete_merkle_frontier frontier; /* the verified prefix */
	uint8_t *directory;	       /* LogEntry bytes of the Directory in force, or NULL */
	size_t directory_len;
	uint64_t acks_signed_at;       /* 1 + the first entry with a signed acknowledgement
					  ("acksSignedAt"; 0: none, or a file of an
					  earlier rete) */
	char auditor[RETE_ID_MAX + 1]; /* who wrote (and signed) it */
	rete_verify_key_seen *keys;    /* each party's keys in the verified prefix's
					  Directories ("keys"; the party ids are
					  malloc'd) */
	size_t n_keys;
	bool has_keys; /* the file has "keys" (one of an earlier rete
			  has not: key changes are compared from its
			  directory on) */
} audit_state;

/* audit_state_load reads the state file at path, checks its signature with
 * auditor's public key and its form (every field present, well-formed,
 * nothing else), and fills *st (release with audit_state_free, also after
 * a failure). Errors: RETE_ENOENT (no such file: a first run), RETE_EIO
 * (unreadable), RETE_EINVAL (not a state file, or malformed), RETE_EBADSIG
 * (the signature does not verify: altered, or written by another auditor);
 * m names the file and what is wrong. */
rete_err audit_state_load(const char *path, const rete_pubkey *auditor, audit_state *st,
			  rete_msg *m);

/* audit_state_save writes the state *r (as rete_verify_session_state gives
 * it) for auditor id, signed with sk, to path atomically: a temporary file
 * in the same folder, fsync, rename, fsync of the folder. Errors: RETE_EIO
 * (m names the file and the system's reason), RETE_ENOMEM. */
rete_err audit_state_save(const char *path, const rete_verify_resume *r, const char *id,
			  const rete_seckey *sk, rete_msg *m);

/* audit_state_free releases what *st holds and zeroes it; NULL is fine. */
void audit_state_free(audit_state *st);

/* audit_remote_opts: what `rete audit verify` was given (borrowed). */
typedef struct audit_remote_opts {
	const char *ini;		      /* audit.ini */
	const char *endpoint;		      /* --broker, or NULL: [client] broker */
	const char *state;		      /* --state FILE */
	bool json;			      /* --json */
	unsigned threads;		      /* signature threads, 0 = every core */
	unsigned batch;			      /* entries asked for per query, 0 = 1000 */
	const char *witnesses_path;	      /* --witnesses FILE, or NULL */
	const rete_witness_policy *witnesses; /* loaded from it */
} audit_remote_opts;

/* audit_remote_verify runs `rete audit verify --broker ENDPOINT -c
 * audit.ini --state FILE`: prints the outcome (or the ALARM with both
 * checkpoints) and returns the exit code: 0 the log holds up to the
 * broker's latest checkpoint (the state file was replaced), 1 it does not
 * (a failing entry, a checkpoint not signed by the broker, a log
 * inconsistent with the saved checkpoint), 2 usage, configuration, state
 * file, connection or I/O errors. */
int audit_remote_verify(const audit_remote_opts *o);

/* audit_key_change_keep is a rete_verify_key_change_fn: it appends the
 * change as a JSON object (party, index, loggedAt, previousDirectory,
 * oldKey, newKey, addedBack, backToEarlier, earlierDirectory) to the JSON array ctx.
 * audit_key_changes_print says each of them ("key change: ..."), and a
 * warning for one that goes back to a key the party had before, whose
 * hint is for the mode the audit ran in: store_dir (a local audit: rete
 * audit log STORE_DIR --from A --to B), else ini (at a distance, no store:
 * rete audit timeline -c INI, or the broker's operator). */
void audit_key_change_keep(void *ctx, const rete_verify_key_change *kc);
void audit_key_changes_print(json_t *changes, const char *store_dir, const char *ini);

/* audit_acks_print prints, when the log holds Deliveries (or refusals of
 * delivery), how many carry their recipient's signed acknowledgement,
 * verified, and how many none (logged before protocol 3). */
void audit_acks_print(const rete_verify_report *rep);

/* audit_clock_print prints, on standard output, a warning for each kind of
 * contradiction the broker's loggedAt times show (rep->clock_back: back
 * behind an earlier entry; rep->clock_early: before the sender's signed
 * createdAt), with the first entry, both times and the difference; nothing
 * when there is none. audit_clock_json is the same as a new object for
 * --json ("clock"), NULL when there is none. */
void audit_clock_print(const rete_verify_report *rep);
json_t *audit_clock_json(const rete_verify_report *rep);

/* audit_witnesses_check checks the witness policy p (read from path) on the
 * checkpoint note: prints the outcome on standard output unless json, sets
 * a "witnesses" object in j when j is not NULL (policy, met, size, detail),
 * and returns true when the quorum cosigned validly. The note's broker
 * signature is the caller's to check. */
bool audit_witnesses_check(const rete_witness_policy *p, const char *path, const char *note,
			   bool json, json_t *j);

/* audit_restore_print prints, for a report with restored set, what the
 * log's Epoch entry declares (epoch N began at index I; the last checkpoint
 * of the epoch before was of M entries; entries I..M-1 of it are not in
 * this log) and what that means for the earlier checkpoint (the auditor's
 * saved one, or --since-checkpoint). state and kept (may be NULL): the
 * state file, and where its earlier-epoch copy was kept. */
void audit_restore_print(const rete_verify_report *rep, const char *state, const char *kept);

/* audit_restore_json is the same as a JSON object (the caller's). */
json_t *audit_restore_json(const rete_verify_report *rep, const char *kept);

/* audit_entry_fn receives one entry (LogEntry bytes, borrowed for the
 * call); a non-zero return stops the walk and is returned. */
typedef int (*audit_entry_fn)(void *ctx, uint64_t index, const rete_buf *raw);

/* audit_remote_case_entries fetches the broker's whole log (entries by
 * range, in batches: the broker has no query by case) as the party of
 * ini and calls fn for each entry of case_id, in log order. Returns 0,
 * fn's non-zero value, or 2 after printing why to stderr (who names the
 * command). */
int audit_remote_case_entries(const char *ini, const char *case_id, const char *who,
			      audit_entry_fn fn, void *ctx);

#endif
