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

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"
#include "folderlock.h"

/* The longest outbox name the agent takes, in bytes. Its answers add
 * ".NNNNN" and ".receipt.json" / ".error.json", and a file system takes 255
 * bytes per name: a longer name is refused (answered in failed/ under a
 * shortened name), never left without an answer. */
#define AGENT_SPOOL_NAME_MAX 200

/* agent_spool_ident: what an outbox file was when the agent read it: its
 * device and inode, and the SHA-256 of its content when it was read
 * (have_hash false for a file too large to read). Compared before the file
 * is moved, so a file renamed over it is never taken for it. */
typedef struct agent_spool_ident {
	dev_t dev;
	ino_t ino;
	bool have_hash;
	uint8_t hash[32];
} agent_spool_ident;

/* agent_spool_lock takes folder dir for this agent alone: an exclusive
 * flock (not waiting) on the folder itself and on dir/name (created 0600,
 * our pid written in it), held in *lk until the process ends (close-on-
 * exec, so hooks never inherit them); the folder's lock cannot be deleted
 * away like the file (folderlock.h). beside (may be NULL): the lock this
 * agent holds already, when dir may be the same folder. what names the
 * folder in the sentence. A lock held by someone else is tried again for
 * half a second (`rete status` probes it for an instant). RETE_EEXIST when
 * another process holds it (m names its pid), RETE_EIO. */
rete_err agent_spool_lock(const char *dir, const char *name, const char *what,
			  const rete_folder_lock *beside, rete_folder_lock *lk, rete_msg *m);

/* agent_spool_prepare creates SPOOL and its four folders when missing.
 * RETE_EIO naming the folder. */
rete_err agent_spool_prepare(const char *spool, rete_msg *m);

/* agent_spool_name_ok: true for an outbox name the agent should take (not
 * ignored, at most AGENT_SPOOL_NAME_MAX bytes, valid UTF-8, no '/'). */
bool agent_spool_name_ok(const char *name);

/* agent_spool_name_ignored: a name that belongs to someone writing a file
 * (hidden: starting with '.'; or ending in ".tmp"), or "." and "..": never
 * taken, never answered. */
bool agent_spool_name_ignored(const char *name);

/* agent_spool_name_problem: NULL when the agent takes a (not ignored)
 * name; otherwise the answer's code ("name-too-long", "bad-name") with the
 * sentence in why (size n). */
const char *agent_spool_name_problem(const char *name, char *why, size_t n);

/* agent_spool_name_json: the name as a JSON string; a name that is not
 * valid UTF-8 is spelt with \xNN for each byte that is not. New reference
 * (NULL when out of memory). */
json_t *agent_spool_name_json(const char *name);

/* agent_spool_list returns the regular files of dir that pass
 * agent_spool_name_ok, sorted by name, in *names (*count of them); the
 * caller frees with agent_spool_list_free. RETE_EIO, RETE_ENOMEM. */
rete_err agent_spool_list(const char *dir, char ***names, size_t *count, rete_msg *m);

/* agent_spool_list_all lists dir like agent_spool_list, but returns every
 * regular file whose name is not ignored (also those with a name problem)
 * in *names, and every other entry (folder, link, fifo...) whose name is
 * not ignored in *others. Both sorted; free both with agent_spool_list_free.
 * RETE_EIO, RETE_ENOMEM. */
rete_err agent_spool_list_all(const char *dir, char ***names, size_t *count, char ***others,
			      size_t *nothers, rete_msg *m);

/* agent_spool_list_free frees a list from agent_spool_list. */
void agent_spool_list_free(char **names, size_t count);

/* agent_spool_read reads the whole file dir/name into a malloc'd buffer
 * (NUL-terminated; *len without the NUL). RETE_ENOENT when it has gone,
 * RETE_EIO, RETE_EINVAL when larger than max bytes. */
rete_err agent_spool_read(const char *dir, const char *name, size_t max, char **data, size_t *len,
			  rete_msg *m);

/* agent_spool_read_ident is agent_spool_read that also fills *id (may be
 * NULL) with the device, inode and content hash of what it read; for a file
 * over max (RETE_EINVAL) the device and inode only. */
rete_err agent_spool_read_ident(const char *dir, const char *name, size_t max, char **data,
				size_t *len, agent_spool_ident *id, rete_msg *m);

/* agent_spool_write writes dir/name atomically and durably (temporary
 * file ".rete-PID-N.tmp", fsync, rename, fsync of dir), replacing an
 * existing file. RETE_EIO naming the file. */
rete_err agent_spool_write(const char *dir, const char *name, const void *data, size_t len,
			   rete_msg *m);

/* agent_spool_answer: one answer of the agent: the outbox file moved to
 * sent/ or failed/ with its companion (NAME.receipt.json, NAME.error.json).
 * The caller fills the inputs; agent_spool_answer_put fills the outputs. */
typedef struct agent_spool_answer {
	const char *from_dir, *name;   /* outbox/NAME */
	const agent_spool_ident *orig; /* what was taken in; NULL: what is there */
	const char *to_dir, *suffix;   /* sent/ or failed/; ".receipt.json"... */
	const char *companion;	       /* the JSON text written as USED+suffix */
	size_t companion_len;	       /* (its "file" is agent_spool_name_json(name)) */
	const char *id;		       /* its "messageId", NULL when it has none */
	const void *fallback;	       /* written as to_dir/USED when outbox/NAME is */
	size_t fallback_len;	       /* no longer orig (NULL: the companion alone) */
	rete_err (*fallback_fn)(void *user, char **data, size_t *len); /* or made */
	void *fallback_user;		      /* by this, only when needed (malloc'd) */
	char used[AGENT_SPOOL_NAME_MAX + 32]; /* out: the name taken in to_dir */
	bool replaced; /* out: outbox/NAME is another file now, left where it is */
	bool gone;     /* out: outbox/NAME had gone */
} agent_spool_answer;

/* agent_spool_answer_put answers one outbox file, durably, never
 * overwriting anything: it picks USED (NAME, shortened when longer than
 * AGENT_SPOOL_NAME_MAX, then NAME.2, NAME.3...) such that USED and
 * USED+suffix are both free, creates the companion with link() (so a race
 * cannot overwrite either), then moves the file: link + unlink on one file
 * system, copy + fsync + unlink across file systems (EXDEV). The file is
 * moved only while it is still orig (same content; the inode is checked
 * around the move); otherwise the fallback is written as USED and what is at
 * outbox/NAME stays for the agent to take in as a new file. An answer cut
 * short by a crash (the companion there, naming this file and id) is
 * completed under the same name, not made twice. RETE_EIO, RETE_ENOMEM. */
rete_err agent_spool_answer_put(agent_spool_answer *ans, rete_msg *m);

/* agent_spool_file_hash: the SHA-256 of the regular file at path (not
 * followed when a symbolic link) into out; false when it is none, or
 * unreadable. agent_spool_hash_is: does it hash to h? */
bool agent_spool_file_hash(const char *path, uint8_t out[32]);
bool agent_spool_hash_is(const char *path, const uint8_t h[32]);

/* agent_spool_answer_find looks in to_dir for the answer the agent gave
 * outbox/NAME as message id (NULL: none): a file USED (NAME as
 * agent_spool_answer_put names it, or NAME.K) whose companion USED+suffix
 * names NAME and id. Found: USED into used (size n) and the time the
 * companion was written (the answer's, durable before the move) into
 * *answered. For the records of files that left outbox/ without their
 * move being recorded (a crash). */
bool agent_spool_answer_find(const char *to_dir, const char *name, const char *suffix,
			     const char *id, char *used, size_t n, struct timespec *answered);

/* agent_spool_sweep removes the temporary files a crash left in dir: those
 * of agent_spool_answer_put and agent_spool_write (".rete-PID-N.tmp"; never
 * linked or renamed to a name, so nothing else refers to them) and, with
 * inbox, those an older agent's inbox writer named
 * ".<index>[.<hex>]-<kind>.json.<pid>.tmp" (an inbox file holds the opened
 * private part: no copy of it may stay behind). Any other name, hidden or
 * not, is left alone. Call it only while holding the agent's locks (data
 * folder and spool): nobody else writes these. Returns how many were
 * removed. */
size_t agent_spool_sweep(const char *dir, bool inbox);

/* agent_spool_fsync_dir fsyncs a folder. RETE_EIO. */
rete_err agent_spool_fsync_dir(const char *dir, rete_msg *m);

#endif
