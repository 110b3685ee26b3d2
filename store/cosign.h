/* cosign.h — witness cosignatures on checkpoints, and witness policies.
 *
 * A cosignature (C2SP tlog-cosignature, cosignature/v1) is one more
 * signature line on a checkpoint note:
 *
 *     — NAME base64(key ID || BE64 time || Ed25519 signature)
 *
 * where the key ID is the first 4 bytes of SHA-256(NAME || "\n" || 0x04 ||
 * public key) (0x04: a cosignature, where the log's own note signature uses
 * 0x01) and the signature covers "cosignature/v1\ntime T\n" followed by the
 * checkpoint's body (the note text through its final newline, no signature
 * lines). It says: as of time T, the largest consistent tree NAME has seen
 * for this log has this root. In rete every agency is a witness; NAME is its
 * party id and the key its directory key.
 *
 * A witness policy says which cosigners a reader requires: a text file, one
 * directive a line, '#' starts a comment line, blank lines ignored:
 *
 *     witness NAME BASE64-ED25519-PUBLIC-KEY
 *     quorum K        (optional; default: every listed witness)
 *
 * This module formats, parses and verifies; it stores nothing.
 */
#ifndef RETE_COSIGN_H
#define RETE_COSIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "keys.h"

#define RETE_COSIGN_CONTEXT "cosignature/v1\n"
#define RETE_COSIGN_BLOB    (4 + 8 + 64) /* key ID, time, signature */
#define RETE_WITNESS_MAX    64		 /* witnesses one policy may list */

/* rete_cosign_key_id writes the 4-byte cosignature key ID of (name, pk):
 * SHA-256(name || 0x0A || 0x04 || pk)[0:4]. */
void rete_cosign_key_id(uint8_t id[4], const char *name, const uint8_t pk[RETE_PK_LEN]);

/* rete_cosign_line cosigns the checkpoint note[0:len] (a signed note, parsed
 * strictly; its signature lines are not verified here and not covered) as
 * NAME with key at time_s (seconds since the epoch). *line_out gets a
 * malloc'd NUL-terminated "— NAME BASE64" without a newline (caller frees).
 * Errors: RETE_EINVAL (malformed note, bad name), RETE_ECRYPTO (the key's
 * public half does not match its secret), RETE_ENOMEM. */
rete_err rete_cosign_line(const char *note, size_t len, const char *name, const rete_seckey *key,
			  uint64_t time_s, char **line_out, rete_msg *m);

/* rete_cosign_verify finds NAME's cosignature among the note's signature
 * lines and verifies it over the note's body with pk; *time_s (may be NULL)
 * gets its time. Every line named NAME with pk's cosignature key ID must
 * verify. Errors: RETE_EINVAL (malformed note or name), RETE_ENOENT (no
 * signature line named NAME), RETE_EBADSIG (a line named NAME that is not a
 * valid cosignature by pk: another key ID, a wrong length, or a signature
 * that does not verify; m says which). */
rete_err rete_cosign_verify(const char *note, size_t len, const char *name, const rete_pubkey *pk,
			    uint64_t *time_s, rete_msg *m);

/* rete_cosign_body_len sets *body_len to the length of the note's body (the
 * checkpoint text through its final newline, before the blank line) after
 * parsing the note strictly. RETE_EINVAL for a malformed note. */
rete_err rete_cosign_body_len(const char *note, size_t len, size_t *body_len, rete_msg *m);

/* rete_cosign_add returns in *out (malloc'd, NUL-terminated) the note with
 * `line` (a signature line without its newline, as rete_cosign_line makes)
 * as a signature line: a line already carrying the same key name is
 * replaced in place, otherwise the line is appended. The note and the line
 * are checked strictly (the line's signature is not verified: the caller
 * does). Errors: RETE_EINVAL (malformed note or line, or a note that would
 * carry too many signature lines), RETE_ENOMEM. */
rete_err rete_cosign_add(const char *note, size_t len, const char *line, char **out,
			 size_t *out_len, rete_msg *m);

/* rete_cosign_strip returns in *out (malloc'd) the note with only the
 * signature lines named keep_name (the log's own signature, whose key name
 * is the origin): a note as the log signed it, without cosignatures. */
rete_err rete_cosign_strip(const char *note, size_t len, const char *keep_name, char **out,
			   size_t *out_len, rete_msg *m);

/* A parsed witness policy (opaque). */
typedef struct rete_witness_policy rete_witness_policy;

/* rete_witness_policy_parse reads a policy from text[0:len]; the load
 * variant from a file. Refused (RETE_EINVAL, the line and what is accepted
 * in m): an unknown directive, a bad name (a party id), a key that is not
 * the base64 of 32 bytes, a name or key listed twice, a quorum that is not
 * a number from 1 to the number of witnesses, or repeated, no witness at
 * all. The load variant adds RETE_ENOENT / RETE_EIO naming the file, skips
 * a UTF-8 byte order mark opening it and refuses one saved as UTF-16
 * (RETE_EINVAL, rete_conffile_start's sentence). */
rete_err rete_witness_policy_parse(const char *text, size_t len, rete_witness_policy **out,
				   rete_msg *m);
rete_err rete_witness_policy_load(const char *path, rete_witness_policy **out, rete_msg *m);

/* rete_witness_policy_check verifies every listed witness's cosignature on
 * the note. RETE_OK when at least the quorum cosigned validly (m gets "k of
 * n witnesses cosigned (need q)"); otherwise RETE_EBADSIG with "k of n
 * required witnesses cosigned (need q): missing a, b; invalid c (why)".
 * RETE_EINVAL when the note itself is malformed. The log's own signature is
 * not checked here (rete_checkpoint_verify does that). */
rete_err rete_witness_policy_check(const rete_witness_policy *p, const char *note, size_t len,
				   rete_msg *m);

/* Accessors: the number of witnesses, the quorum, the i-th name and key. */
size_t rete_witness_policy_count(const rete_witness_policy *p);
size_t rete_witness_policy_quorum(const rete_witness_policy *p);
const char *rete_witness_policy_name(const rete_witness_policy *p, size_t i);
const rete_pubkey *rete_witness_policy_key(const rete_witness_policy *p, size_t i);

/* rete_witness_policy_free releases *p and sets it to NULL; NULL is fine. */
void rete_witness_policy_free(rete_witness_policy **p);

#endif
