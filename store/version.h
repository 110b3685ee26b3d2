/* version.h — which rete this is: the release number (CMake's project
 * version), the git commit it was built from (when built from a checkout),
 * the wire protocol version it speaks and the store schema it writes.
 *
 * One place for all four, so `--version` of every program, `rete version`,
 * the broker's start line and its health answer cannot disagree. It lives
 * in store/ because that is the lowest module that knows both the protocol
 * (proto/codec.h) and the store schema (store/store.h). Everything returned
 * is static; pure functions, safe from any thread.
 */
#ifndef RETE_VERSION_H
#define RETE_VERSION_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* rete_version is the release number, "0.4.0" (static). */
const char *rete_version(void);

/* rete_version_commit is `git describe --always --dirty` at configure time
 * ("e898e85", "e898e85-dirty"), or "" when built outside a checkout. */
const char *rete_version_commit(void);

/* rete_version_protocol is the wire protocol version (RETE_PROTOCOL_VERSION). */
uint32_t rete_version_protocol(void);

/* rete_version_store_schema is the store schema written (RETE_STORE_SCHEMA). */
uint32_t rete_version_store_schema(void);

/* rete_version_short writes "0.4.0" or "0.4.0 (git e898e85)" into out
 * (size bytes, the caller's, always NUL-terminated) and returns out. */
char *rete_version_short(char *out, size_t size);

/* rete_version_text writes what `PROGRAM --version` prints, two lines
 * ending in a newline:
 *   rete-broker 0.4.0 (git e898e85)
 *   protocol 2, store schema 2
 * into out (size bytes, the caller's; cut to fit, NUL-terminated); returns out. */
char *rete_version_text(char *out, size_t size, const char *program);

/* rete_version_json returns {"version", "commit" (null outside a checkout),
 * "protocol", "storeSchema"} as a new reference (the caller decrefs it), or
 * NULL when out of memory. */
json_t *rete_version_json(void);

#endif
