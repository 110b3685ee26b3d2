/* keys.h — party identities and their key files.
 *
 * A party has one Ed25519 key pair. `ID.key` holds the base64 of the 32-byte
 * seed (one line, mode 0600); `ID.pub` holds the base64 of the 32-byte
 * public key (one line). The same key gives the X25519 keys used for CURVE
 * and for sealing (libsodium's Ed25519 -> X25519 conversion). Secret
 * material lives in sodium_malloc'd memory and is wiped when freed.
 */
#ifndef RETE_KEYS_H
#define RETE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RETE_PK_LEN   32 /* Ed25519 / X25519 public key */
#define RETE_SEED_LEN 32 /* Ed25519 seed */
#define RETE_SIG_LEN  64 /* Ed25519 signature */
#define RETE_HASH_LEN 32 /* SHA-256 */
#define RETE_ID_MAX   63 /* longest party id */

/* A public identity: Ed25519 public key and its X25519 conversion. */
typedef struct rete_pubkey {
	uint8_t ed[RETE_PK_LEN];
	uint8_t x[RETE_PK_LEN];
} rete_pubkey;

/* A secret identity. Always allocated by rete_seckey_* (sodium_malloc) and
 * released with rete_seckey_free, which wipes it. */
typedef struct rete_seckey {
	uint8_t ed_sk[64];	   /* libsodium's Ed25519 secret key (seed||pk) */
	uint8_t x_sk[RETE_PK_LEN]; /* X25519 secret key */
	rete_pubkey pub;
} rete_seckey;

/* rete_crypto_init initialises libsodium once per process (thread-safe;
 * every function of keys.h and codec.h calls it, so callers need not).
 * RETE_ECRYPTO when libsodium cannot start. */
rete_err rete_crypto_init(rete_msg *m);

/* rete_id_valid: true when id matches ^[a-z0-9][a-z0-9.-]{1,62}$. */
bool rete_id_valid(const char *id);

/* rete_pubkey_from_ed fills pk from a 32-byte Ed25519 public key, converting
 * it to X25519. RETE_ECRYPTO when the conversion fails (the key is refused). */
rete_err rete_pubkey_from_ed(rete_pubkey *pk, const uint8_t ed[RETE_PK_LEN], rete_msg *m);

/* rete_seckey_generate makes a new random key pair into *out (caller frees
 * with rete_seckey_free). */
rete_err rete_seckey_generate(rete_seckey **out, rete_msg *m);

/* rete_seckey_from_seed derives the key pair from a 32-byte seed. */
rete_err rete_seckey_from_seed(rete_seckey **out, const uint8_t seed[RETE_SEED_LEN], rete_msg *m);

/* rete_seckey_free wipes and frees *sk and sets it to NULL; NULL is fine. */
void rete_seckey_free(rete_seckey **sk);

/* rete_keyfile_write writes DIR/ID.key (0600) and DIR/ID.pub (0644), each
 * through a temporary file, fsync'd, then linked (no overwrite: refused if
 * either exists) or renamed (overwrite) into place; the folder is fsync'd.
 * DIR must exist. Errors: RETE_EINVAL (bad id), RETE_EEXIST, RETE_EIO,
 * RETE_ENOMEM. */
rete_err rete_keyfile_write(const char *dir, const char *id, const rete_seckey *sk, bool overwrite,
			    rete_msg *m);

/* rete_keyfile_load_secret loads a `.key` file into *out (caller frees with
 * rete_seckey_free). Refuses (RETE_EPERM) a file readable or writable by
 * group or others, naming the file and its mode; RETE_EINVAL for content
 * that is not one base64 line of 32 bytes (a final "\n" is optional);
 * RETE_ECRYPTO when the key does not convert to X25519; RETE_ENOENT when the
 * file does not exist; RETE_EIO. */
rete_err rete_keyfile_load_secret(const char *path, rete_seckey **out, rete_msg *m);

/* rete_keyfile_load_public loads a `.pub` file (one base64 line, 32 bytes)
 * into *out. RETE_EINVAL (content), RETE_ECRYPTO (not convertible to
 * X25519), RETE_ENOENT, RETE_EIO; m names the file. */
rete_err rete_keyfile_load_public(const char *path, rete_pubkey *out, rete_msg *m);

/* rete_b64_encode writes the standard base64 (with padding) of bin into a
 * malloc'd NUL-terminated string; NULL on out of memory. */
char *rete_b64_encode(const uint8_t *bin, size_t len);

/* rete_b64_alphabet: the len bytes at s are all of standard base64's
 * alphabet (A-Z a-z 0-9 + /) or '='. Check it before sodium_base642bin:
 * libsodium 1.0.18 reads any byte above 0x7f as '/'. */
bool rete_b64_alphabet(const char *s, size_t len);

/* rete_b64_decode decodes standard base64 (padding required, no spaces, no
 * trailing characters, unused bits zero) into a malloc'd buffer (*out,
 * *outlen; caller frees). RETE_EINVAL when it is not base64; RETE_ENOMEM. */
rete_err rete_b64_decode(const char *b64, uint8_t **out, size_t *outlen);

#endif
