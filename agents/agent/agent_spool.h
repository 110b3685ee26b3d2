/* agent_spool.h — the spool folders the agent shares with the agency's
 * own systems: outbox/ (they write), sent/ and failed/ (the agent answers),
 * inbox/ (the agent delivers).
 *
 * Everything the agent writes appears whole or not at all: a temporary
 * name starting with '.' and ending in ".tmp", fsync, rename, fsync of the
 * folder. The same rule tells the agent which outbox names to skip (names
 * starting with '.' or ending in ".tmp" are someone's file being written).
 */
#ifndef RETE_AGENT_SPOOL_H
#define RETE_AGENT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* agent_spool_prepare creates SPOOL and its four folders when missing.
 * RETE_EIO naming the folder. */
rete_err agent_spool_prepare(const char *spool, rete_msg *m);

/* agent_spool_name_ok: true for an outbox name the agent should take (not
 * hidden, not *.tmp, not "." or "..", at most 200 bytes, no '/'). */
bool agent_spool_name_ok(const char *name);

/* agent_spool_list returns the regular files of dir that pass
 * agent_spool_name_ok, sorted by name, in *names (*count of them); the
 * caller frees with agent_spool_list_free. RETE_EIO, RETE_ENOMEM. */
rete_err agent_spool_list(const char *dir, char ***names, size_t *count, rete_msg *m);

/* agent_spool_list_free frees a list from agent_spool_list. */
void agent_spool_list_free(char **names, size_t count);

/* agent_spool_read reads the whole file dir/name into a malloc'd buffer
 * (NUL-terminated; *len without the NUL). RETE_ENOENT when it has gone,
 * RETE_EIO, RETE_EINVAL when larger than max bytes. */
rete_err agent_spool_read(const char *dir, const char *name, size_t max, char **data, size_t *len,
			  rete_msg *m);

/* agent_spool_write writes dir/name atomically and durably (temporary
 * file, fsync, rename, fsync of dir), replacing an existing file.
 * RETE_EIO naming the file. */
rete_err agent_spool_write(const char *dir, const char *name, const void *data, size_t len,
			   rete_msg *m);

/* agent_spool_free_name writes into used (size n) the name that
 * from_dir/name should take in to_dir: name itself, or "name.2", "name.3"...
 * when a different file already has it (a file of to_dir is never
 * overwritten). A name already linked to the same file (a move cut short by
 * a crash) is reused. RETE_EIO. */
rete_err agent_spool_free_name(const char *from_dir, const char *name, const char *to_dir,
			       char *used, size_t n, rete_msg *m);

/* agent_spool_move moves from_dir/name to to_dir/used (from
 * agent_spool_free_name) durably: link, unlink, fsync of both folders; a
 * link already there to the same file is completed. RETE_ENOENT when the
 * source has gone, RETE_EEXIST when used is taken by another file, RETE_EIO. */
rete_err agent_spool_move(const char *from_dir, const char *name, const char *to_dir,
			  const char *used, rete_msg *m);

/* agent_spool_fsync_dir fsyncs a folder. RETE_EIO. */
rete_err agent_spool_fsync_dir(const char *dir, rete_msg *m);

#endif
