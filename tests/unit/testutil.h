/* testutil.h — small helpers shared by the unit and integration tests:
 * temporary folders, whole-file reads and writes, running a command,
 * signing the messages a test builds by hand and writing them into a
 * store of its own. */
#ifndef RETE_TESTUTIL_H
#define RETE_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "codec.h"
#include "keys.h"
#include "store.h"

/* tu_tmpdir creates a fresh folder under $TMPDIR (or /tmp) and returns its
 * path in a static-per-call malloc'd string the caller frees. */
char *tu_tmpdir(const char *tag);

/* tu_rmrf removes a folder tree (like rm -rf); ignores errors. */
void tu_rmrf(const char *path);

/* tu_read_file reads a whole file into a malloc'd, NUL-terminated buffer;
 * *len (if not NULL) gets its length. NULL on error. */
char *tu_read_file(const char *path, size_t *len);

/* tu_age_file sets path's access and modification times to seconds ago.
 * 0 on success, -1 (errno) on failure. */
int tu_age_file(const char *path, long seconds);

/* tu_write_file writes len bytes to path (created 0644, truncated). 0 on
 * success. */
int tu_write_file(const char *path, const void *data, size_t len);

/* tu_path formats a path (or any text) into buf of n bytes and returns
 * buf, so that it can be passed on in the same expression. */
char *tu_path(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* tu_exists: is there a file (of any kind) at path? */
bool tu_exists(const char *path);

/* tu_count_suffix counts the files of folder dir whose names end in suffix,
 * leaving out those whose names start with a dot (temporary files); 0 when
 * dir cannot be read. */
size_t tu_count_suffix(const char *dir, const char *suffix);

/* tu_occurrences counts needle in the file at path (overlapping ones too);
 * 0 when the file cannot be read. */
size_t tu_occurrences(const char *path, const char *needle);

/* tu_load_json reads the JSON file at path (the caller json_decrefs it);
 * the test fails (cmocka), with the parse error on stderr, when it cannot. */
json_t *tu_load_json(const char *path);

/* tu_raw_put writes key -> val (or, with val NULL, deletes key) in the
 * named database db of the LMDB environment in folder dir, behind the back
 * of the program that owns it (a store, an agent's own data); the test
 * fails (cmocka) when it cannot. */
void tu_raw_put(const char *dir, const char *db, const void *key, size_t klen, const void *val,
		size_t vlen);

/* tu_run runs a shell command line, capturing stdout+stderr into a malloc'd
 * string (*out, may be NULL) and returns the exit status (or -1). */
int tu_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* tu_message_init initialises msg as message id from sender to recipient in
 * case_id for origin, created at a fixed time (1790000000000) so that what
 * a test signs is the same every run. The strings are borrowed: they must
 * outlive msg. */
void tu_message_init(Rete__Message *msg, const char *id, const char *sender, const char *recipient,
		     const char *case_id, const char *origin);

/* tu_sign signs msg with k and returns the signed bytes (the caller frees
 * them with rete_buf_free); the test fails (cmocka) when it cannot. */
rete_buf tu_sign(const Rete__Message *msg, const rete_seckey *k);

/* tu_sign_update gives msg (its header set, e.g. by tu_message_init) the
 * body of an update moving referral ref to status st and signs it with k,
 * as tu_sign; the body lives only for the call. */
rete_buf tu_sign_update(Rete__Message *msg, const char *ref, Rete__Status st, const rete_seckey *k);

/* tu_append commits the signed message b (freed here) to s, logged at
 * *t += 1000, and returns its index; the test fails (cmocka) unless it was
 * accepted. */
uint64_t tu_append(rete_store *s, int64_t *t, rete_buf b);

/* tu_checkpoint signs (origin, the store's size and root) with k, stores
 * it in s and returns the note (caller frees); the test fails (cmocka)
 * when it cannot. */
char *tu_checkpoint(rete_store *s, const char *origin, const rete_seckey *k);

/* tu_key_from_seed returns a secret key whose Ed25519 seed is the bytes
 * first, first + 1, ..., first + 31, filled in directly (its Ed25519 half
 * only, without keys.c: for the known-answer tests of notes and
 * cosignatures); sodium_malloc'd, released with tu_key_free. The test
 * fails (cmocka) when it cannot. */
rete_seckey *tu_key_from_seed(uint8_t first);

/* tu_key_free wipes and frees a key of tu_key_from_seed. */
void tu_key_free(rete_seckey *k);

/* tu_rand: the next 32 bits of a xorshift64 sequence in *state (the
 * caller's, not 0): repeatable random tests. */
uint32_t tu_rand(uint64_t *state);

#endif
