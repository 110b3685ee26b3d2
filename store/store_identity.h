/* store_identity.h — which log a store holds, and who may write it.
 *
 * A log has one identity: its origin, the broker's public key (which signs
 * its checkpoints and the broker's own entries), the leaf hash of its first
 * entry and its epoch (1, then one more per declared restore). Schema 2
 * keeps them in the store's meta database; the broker compares them with
 * its configuration before it serves anything, so that a changed `origin`
 * or `key`, or a folder holding some other log, is a refusal with a
 * sentence rather than a log that no longer verifies.
 *
 * This module also owns the two things a broker keeps about its store
 * outside the LMDB files:
 *   - the writer's lock: a flock(LOCK_EX|LOCK_NB) on the folder DATA itself
 *     and on DATA/rete-broker.lock (folderlock.h), held for the life of the
 *     broker, its pid written in the file (readers never take it: the
 *     auditor, the monitor and the backup read beside a running broker).
 *     The file alone could be deleted away under a running broker, letting
 *     a second one start on the same store (review s16 rev-edges 5);
 *   - the state file (broker.ini `state`, by default DATA.state beside the
 *     folder): the latest checkpoint note the broker signed, replaced
 *     durably at every checkpoint. A restore replaces the store folder but
 *     not this file, so the broker can tell that the log it is given is
 *     shorter than what it has already signed.
 *
 * And the mark of a copy: `rete store backup` writes meta "copy" into the
 * copy it made (the size and epoch of the log copied, when, from which
 * folder). The state file is written once per checkpoint, so a copy taken
 * after the last checkpoint is as long as the state file says; the mark is
 * what tells the broker that entries may have been receipted after it was
 * taken. The broker serves a marked store only after a declared restore,
 * which always goes on as a new epoch; the Epoch entry's commit removes the
 * mark (store_commit.c), so a crash before that commit leaves it in place.
 * A new meta key is a compatible addition (the schema stays): readers that do
 * not know it ignore it, and a marked copy verifies like any store.
 */
#ifndef RETE_STORE_IDENTITY_H
#define RETE_STORE_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "folderlock.h"
#include "error.h"
#include "keys.h"
#include "store.h"

#define RETE_STORE_LOCK_FILE "rete-broker.lock"

/* rete_store_identity: what a store's meta says of its log. */
typedef struct rete_store_identity {
	uint32_t schema;		  /* 1, 2 or 3 */
	bool recorded;			  /* origin and broker key are in meta */
	char origin[RETE_ORIGIN_MAX + 1]; /* "" when not recorded */
	uint8_t broker_key[RETE_PK_LEN];
	bool have_first; /* the log has an entry 0 */
	uint8_t first_entry[RETE_MERKLE_HASH];
	uint32_t epoch; /* 1 when not recorded */
	uint64_t size;	/* entries in the log */
} rete_store_identity;

/* rete_store_identity_get reads the identity of s into *out (rt as in the
 * store's read functions). Errors: RETE_ECORRUPT (a malformed record),
 * RETE_ESTORE. */
rete_err rete_store_identity_get(rete_store *s, rete_store_rtxn *rt, rete_store_identity *out,
				 rete_msg *m);

/* rete_store_identity_init records (origin, key, epoch 1) in a store that
 * holds no log yet (a broker started with --init); the same identity
 * recorded in a store still without entries is fine. Errors: RETE_EEXIST
 * (the store already holds a log or an identity: the sentence names it),
 * RETE_EPERM (read-only), RETE_EFULL, RETE_ESTORE. */
rete_err rete_store_identity_init(rete_store *s, const char *origin, const rete_pubkey *key,
				  rete_msg *m);

/* rete_store_identity_check compares the identity of s with the broker's
 * configuration (origin, key; config names broker.ini in the sentences).
 * A store with a log but no identity recorded (schema 1, or a store
 * written by the library alone) adopts this one, after checking that its
 * latest checkpoint, if any, is signed by key under origin; *adopted says
 * so (the caller logs it). *out (may be NULL) gets the identity in force.
 * Errors: RETE_ENOENT (an empty store: no log yet; the sentence says to
 * start with --init), RETE_EINVAL (origin or key differ, or the latest
 * checkpoint is not theirs: the sentence says the store holds X,
 * broker.ini says Y, and what to do), RETE_ECORRUPT (the first entry's
 * hash differs from the one recorded), RETE_EFULL, RETE_ESTORE. */
rete_err rete_store_identity_check(rete_store *s, const char *origin, const rete_pubkey *key,
				   const char *config, bool *adopted, rete_store_identity *out,
				   rete_msg *m);

#define RETE_COPY_SOURCE_MAX 1024

/* rete_store_copy_mark: what meta "copy" says of a backup copy. */
typedef struct rete_store_copy_mark {
	uint64_t size;			       /* entries of the log copied (= the copy's) */
	uint32_t epoch;			       /* its epoch then */
	int64_t made_at_ms;		       /* when the copy was made, Unix ms */
	char source[RETE_COPY_SOURCE_MAX + 1]; /* the folder copied ("" = unknown) */
} rete_store_copy_mark;

/* rete_store_copy_mark_get reads the copy mark of s into *out; *found is
 * false (and *out zeroed) when s is not marked as a copy (rt as in the
 * store's read functions). Errors: RETE_ECORRUPT (a malformed record: the
 * sentence names it), RETE_ESTORE. */
rete_err rete_store_copy_mark_get(rete_store *s, rete_store_rtxn *rt, rete_store_copy_mark *out,
				  bool *found, rete_msg *m);

/* rete_store_copy_mark_put marks s, a copy just made (opened writable and
 * served by no broker), with *mark in one durable commit; the source is cut
 * at RETE_COPY_SOURCE_MAX bytes. Errors: RETE_EPERM (read-only), RETE_EFULL,
 * RETE_ESTORE. */
rete_err rete_store_copy_mark_put(rete_store *s, const rete_store_copy_mark *mark, rete_msg *m);

/* rete_store_backup_mark is rete_store_backup_to (store.h) saying what it
 * did: *mark (may be NULL) gets the copy's mark, *was_copy (may be NULL)
 * whether s was itself a marked copy, whose mark the new copy keeps (it
 * holds the log as of that first copy). Errors: as rete_store_backup. */
rete_err rete_store_backup_mark(rete_store *s, const char *dest_dir, rete_store_copy_mark *mark,
				bool *was_copy, rete_msg *m);

/* rete_store_lock takes the writer's lock of the store folder dir (the
 * folder's flock and DIR/rete-broker.lock's, created 0600, our pid written
 * in it); *lk is the caller's until rete_store_unlock (the lock lives as
 * long as its descriptors). Errors: RETE_EEXIST (another process holds it:
 * the sentence names its pid), RETE_EIO. */
rete_err rete_store_lock(const char *dir, rete_folder_lock *lk, rete_msg *m);

/* rete_store_served: a broker holds the writer's lock of the store folder
 * dir (it runs on it; also true in that broker's own process). Reads only:
 * a folder without a lock file, or one nobody holds, is not served. */
bool rete_store_served(const char *dir);

/* rete_store_unlock releases the lock (rete_folder_lock_release); a
 * released one is fine. */
void rete_store_unlock(rete_folder_lock *lk);

/* rete_store_state_path writes the default state file path of the store
 * folder dir (dir without trailing slashes, then ".state") into buf.
 * Returns buf, or NULL when it does not fit. */
char *rete_store_state_path(const char *dir, char *buf, size_t len);

/* rete_store_state_read reads the state file at path: *note (malloc'd,
 * NUL-terminated, the caller frees) is the latest checkpoint note the
 * broker signed. Errors: RETE_ENOENT (no such file), RETE_EIO, RETE_ENOMEM
 * (the sentence names the file). */
rete_err rete_store_state_read(const char *path, char **note, rete_msg *m);

/* rete_store_state_write replaces the state file at path with note
 * durably: a temporary file beside it, fsync, rename, fsync of the folder.
 * Errors: RETE_EIO, RETE_EFULL, RETE_EPERM. */
rete_err rete_store_state_write(const char *path, const char *note, rete_msg *m);

#endif
