/* folderlock.h — one writer per folder: the broker's store folder, the
 * agent's data folder and spool.
 *
 * A writer holds an exclusive flock on the folder itself (its own open
 * descriptor of the directory), for as long as it runs; the lock ends with
 * the process, even after kill -9. A lock file beside the data (DIR/NAME)
 * is not enough on its own: whoever deletes it (an operator "cleaning a
 * stale lock", a tmp-cleaner) lets the next process create a fresh,
 * unlocked file of that name and run beside the first one (review s16
 * rev-edges 5). A folder cannot be replaced under a process that has files
 * open in it without that process's data going with it.
 *
 * DIR/NAME is still written, holding the writer's pid, for the sentence a
 * refused second writer prints, and it is still flocked too: rete 0.7.0
 * locked that file alone, so a 0.7.0 process and a newer one exclude each
 * other during an upgrade.
 *
 * Readers (rete status, the backup, the journal's check) probe with a
 * shared lock let go at once; a writer taking its lock in that instant
 * tries again for half a second, so a probe never stops a start. On a file
 * system that cannot flock a directory (some network file systems) the
 * file's lock is the only one, as before.
 */
#ifndef RETE_FOLDERLOCK_H
#define RETE_FOLDERLOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* A held folder lock: the folder's descriptor (-1 when the folder lock is
 * not ours: see rete_folder_lock_take's `beside`, or a file system without
 * it) and the pid file's. */
typedef struct rete_folder_lock {
	int fl_dir;
	int fl_file;
} rete_folder_lock;

#define RETE_FOLDER_LOCK_NONE {.fl_dir = -1, .fl_file = -1}

/* rete_folder_lock_take takes dir (which must exist) for this process
 * alone: the folder's flock, then DIR/NAME's (created 0600), and writes our
 * pid in DIR/NAME. beside (may be NULL) is a lock this process already
 * holds: when it is on the same folder (one folder named for two uses), the
 * folder's flock is not taken twice. *out is the caller's until
 * rete_folder_lock_release. Errors: RETE_EEXIST, another process holds it:
 * holder (holder_len bytes) gets its pid as text, or "unknown", and m a
 * plain sentence the caller may replace; RETE_EIO (the folder or file
 * cannot be opened, locked or written: m names it and errno's text). */
rete_err rete_folder_lock_take(const char *dir, const char *name, const rete_folder_lock *beside,
			       rete_folder_lock *out, char *holder, size_t holder_len, rete_msg *m);

/* rete_folder_lock_held: does a process hold dir's lock (the folder's, or
 * an older rete's on DIR/NAME)? 1 yes, 0 no (no such folder or file, or
 * nobody holds them), -1 cannot tell (cannot be opened, e.g. another
 * user's). Nothing is created or written. In the holder's own process it
 * is 1 too. */
int rete_folder_lock_held(const char *dir, const char *name);

/* rete_folder_lock_release closes both descriptors (releasing the locks)
 * and sets them to -1; NULL or a released lock is fine. */
void rete_folder_lock_release(rete_folder_lock *l);

#endif
