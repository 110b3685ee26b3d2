/* checkpoint.h — signed checkpoints of the audit log.
 *
 * A checkpoint is a C2SP tlog-checkpoint (origin, tree size, root hash) in a
 * C2SP signed note: the text, a blank line, then signature lines
 * "— NAME base64(key ID || Ed25519 signature)". The broker signs one with its
 * key (key name = the log's origin); agents and auditors parse it strictly
 * and verify it against the broker's pinned public key. This module only
 * formats, parses and verifies notes: it stores nothing.
 */
#ifndef RETE_CHECKPOINT_H
#define RETE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "keys.h"
#include "merkle.h"

#define RETE_ORIGIN_MAX	   255 /* longest origin / key name, in bytes */
#define RETE_NOTE_MAX_SIGS 100 /* signature lines accepted in one note */
#define RETE_KEY_ID_LEN	   4

/* A parsed checkpoint: plain values, no resources. */
typedef struct rete_checkpoint {
	char origin[RETE_ORIGIN_MAX + 1]; /* NUL-terminated */
	uint64_t size;
	uint8_t root[RETE_MERKLE_HASH];
} rete_checkpoint;

/* rete_checkpoint_key_id writes the 4-byte Ed25519 key ID of (name, pk):
 * the first 4 bytes of SHA-256(name || 0x0A || 0x01 || pk). */
void rete_checkpoint_key_id(uint8_t id[RETE_KEY_ID_LEN], const char *name,
			    const uint8_t pk[RETE_PK_LEN]);

/* rete_checkpoint_sign formats the checkpoint (origin, size, root) and signs
 * it with key under the key name origin. *note_out gets a malloc'd,
 * NUL-terminated note the caller frees. Errors: RETE_EINVAL (origin empty,
 * too long, with spaces, '+', control characters or invalid UTF-8),
 * RETE_ECRYPTO (the key's public half does not match its secret key),
 * RETE_ENOMEM. */
rete_err rete_checkpoint_sign(const char *origin, uint64_t size,
			      const uint8_t root[RETE_MERKLE_HASH], const rete_seckey *key,
			      char **note_out, rete_msg *m);

/* rete_checkpoint_sign_epoch is rete_checkpoint_sign for a log in epoch
 * `epoch`: from epoch 2 on (after a declared restore, see store_identity.h)
 * the note carries one extension line "epoch N" after the root hash line;
 * epoch 0 or 1 gives exactly rete_checkpoint_sign's note. Same errors. */
#define RETE_CHECKPOINT_EPOCH_LINE "epoch"
rete_err rete_checkpoint_sign_epoch(const char *origin, uint64_t size,
				    const uint8_t root[RETE_MERKLE_HASH], uint32_t epoch,
				    const rete_seckey *key, char **note_out, rete_msg *m);

/* rete_checkpoint_epoch reads the epoch a note names: N from its "epoch N"
 * extension line, 1 when it has none (no signature check; the note is
 * parsed strictly first). Errors: RETE_EINVAL (malformed note, or an
 * "epoch" line whose N is not a decimal number >= 2). */
rete_err rete_checkpoint_epoch(const char *note, size_t len, uint32_t *epoch, rete_msg *m);

/* rete_checkpoint_parse reads note[0:len] strictly (no signature check):
 * valid UTF-8 without control characters other than newline, split at the
 * last blank line, every signature line well-formed, then origin, size
 * (decimal, no leading zeroes) and root (base64 of exactly 32 bytes). Lines
 * after the third are extension lines (non-empty, otherwise ignored). Fills
 * *out on success. RETE_EINVAL with the line and the reason in m. */
rete_err rete_checkpoint_parse(const char *note, size_t len, rete_checkpoint *out, rete_msg *m);

/* rete_checkpoint_body_len returns the length of the note's body: its text
 * through the text's final newline, before the first blank line (the one
 * that opens the signature lines; the signature lines follow at note +
 * result + 1). Lenient: nothing is parsed or checked, so a stored note with
 * a broken signature line still has its body. Returns len when note[0:len]
 * has no blank line. For a note rete_checkpoint_parse accepts, this is the
 * text it splits off (its text holds no blank line). */
size_t rete_checkpoint_body_len(const char *note, size_t len);

/* rete_checkpoint_verify parses the note and checks it carries a valid
 * signature by (key_name, pk). Signatures from other (name, key ID) pairs
 * are ignored. Fills *out (may be NULL) only on success; the caller decides
 * whether out->origin is the log it expects. Errors: RETE_EINVAL (malformed
 * note or key name), RETE_EBADSIG (no signature by that key, or one that
 * does not verify). */
rete_err rete_checkpoint_verify(const char *note, size_t len, const char *key_name,
				const rete_pubkey *pk, rete_checkpoint *out, rete_msg *m);

#endif
