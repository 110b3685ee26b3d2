/* keys.c — party identities and their key files (see keys.h). */
#define _GNU_SOURCE
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key file holds 44 base64 characters and a newline; anything much longer
 * is not a key file, and we refuse to read it whole. */
#define KEYFILE_MAX 256
#define B64_KEY_LEN 44

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_status = -1;

static void sodium_init_once(void)
{
	sodium_status = sodium_init() < 0 ? -1 : 0;
}

rete_err rete_crypto_init(rete_msg *m)
{
	pthread_once(&sodium_once, sodium_init_once);
	if (sodium_status != 0)
		return rete_msg_set(m, RETE_ECRYPTO,
				    "libsodium could not be initialised (sodium_init failed)");
	return RETE_OK;
}

bool rete_id_valid(const char *id)
{
	size_t n;

	if (id == NULL)
		return false;
	n = strlen(id);
	if (n < 2 || n > RETE_ID_MAX)
		return false;
	if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* b64_alphabet: s[0:len] holds only the characters of standard base64 and
 * its padding (libsodium checks where '=' stands). libsodium 1.0.18 alone
 * takes every byte above 0x7f for '/', so text changed that way would
 * decode to the same bytes. */
bool rete_b64_alphabet(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

/* b64_decode_exact decodes len characters of strict standard base64 into
 * out[want]; false unless it is base64 of exactly `want` bytes. */
static bool b64_decode_exact(const char *b64, size_t len, uint8_t *out, size_t want, size_t *got)
{
	size_t binlen = 0;

	*got = 0;
	if (!rete_b64_alphabet(b64, len))
		return false;
	if (sodium_base642bin(out, want, b64, len, NULL, &binlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		/* Either not base64 or more than `want` bytes: tell which when
		 * the text is well-formed base64 of a different length. */
		size_t cap = len / 4 * 3 + 3;
		uint8_t *tmp = malloc(cap);
		if (tmp != NULL) {
			if (sodium_base642bin(tmp, cap, b64, len, NULL, &binlen, NULL,
					      sodium_base64_VARIANT_ORIGINAL) == 0)
				*got = binlen;
			sodium_memzero(tmp, cap);
			free(tmp);
		}
		return false;
	}
	*got = binlen;
	return binlen == want;
}

rete_err rete_pubkey_from_ed(rete_pubkey *pk, const uint8_t ed[RETE_PK_LEN], rete_msg *m)
{
	rete_err e = rete_crypto_init(m);
	uint8_t x[RETE_PK_LEN];

	if (e != RETE_OK)
		return e;
	/* The key's bytes are not repeated in the sentence: what reaches here
	 * as a "public key" may be a secret seed read from the wrong file. */
	if (crypto_sign_ed25519_pk_to_curve25519(x, ed) != 0)
		return rete_msg_set(m, RETE_ECRYPTO,
				    "the public key cannot be converted to X25519 (it is not a "
				    "valid Ed25519 point of the main subgroup); it is refused");
	memcpy(pk->ed, ed, RETE_PK_LEN);
	memcpy(pk->x, x, RETE_PK_LEN);
	return RETE_OK;
}

rete_err rete_seckey_from_seed(rete_seckey **out, const uint8_t seed[RETE_SEED_LEN], rete_msg *m)
{
	rete_err e = rete_crypto_init(m);
	rete_seckey *sk;

	*out = NULL;
	if (e != RETE_OK)
		return e;
	sk = sodium_malloc(sizeof(*sk));
	if (sk == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory for a secret key");
	if (crypto_sign_seed_keypair(sk->pub.ed, sk->ed_sk, seed) != 0) {
		rete_seckey_free(&sk);
		return rete_msg_set(m, RETE_ECRYPTO, "key pair cannot be derived from the seed");
	}
	if (crypto_sign_ed25519_sk_to_curve25519(sk->x_sk, sk->ed_sk) != 0) {
		rete_seckey_free(&sk);
		return rete_msg_set(m, RETE_ECRYPTO,
				    "secret key cannot be converted to X25519; it is refused");
	}
	if (crypto_sign_ed25519_pk_to_curve25519(sk->pub.x, sk->pub.ed) != 0) {
		rete_seckey_free(&sk);
		return rete_msg_set(m, RETE_ECRYPTO,
				    "key derived from the seed cannot be converted to X25519; "
				    "it is refused");
	}
	*out = sk;
	return RETE_OK;
}

rete_err rete_seckey_generate(rete_seckey **out, rete_msg *m)
{
	uint8_t seed[RETE_SEED_LEN];
	rete_err e = rete_crypto_init(m);

	*out = NULL;
	if (e != RETE_OK)
		return e;
	randombytes_buf(seed, sizeof(seed));
	e = rete_seckey_from_seed(out, seed, m);
	sodium_memzero(seed, sizeof(seed));
	return e;
}

void rete_seckey_free(rete_seckey **sk)
{
	if (sk == NULL || *sk == NULL)
		return;
	/* sodium_free wipes the whole allocation before releasing it. */
	sodium_free(*sk);
	*sk = NULL;
}

/* join_path formats dir/name.ext into a malloc'd string. */
static char *join_path(const char *dir, const char *id, const char *ext)
{
	size_t n = strlen(dir) + strlen(id) + strlen(ext) + 3;
	char *p = malloc(n);
	if (p != NULL)
		snprintf(p, n, "%s/%s%s", dir, id, ext);
	return p;
}

static rete_err fsync_dir(const char *dir, rete_msg *m)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "cannot open folder %s to sync it: %s", dir,
				    strerror(errno));
	if (fsync(fd) != 0) {
		int err = errno;
		close(fd);
		return rete_msg_set(m, RETE_EIO, "cannot sync folder %s: %s", dir, strerror(err));
	}
	close(fd);
	return RETE_OK;
}

/* write_file_atomic writes data to path through a temporary file in the same
 * folder, so a crash never leaves half a key under the final name. Without
 * overwrite the final step is link(2), which fails if the name exists
 * (no check-then-create race); with overwrite it is rename(2). */
static rete_err write_file_atomic(const char *path, const char *data, size_t len, mode_t mode,
				  bool overwrite, rete_msg *m)
{
	size_t n = strlen(path) + 16;
	char *tmp = malloc(n);
	int fd, err;
	rete_err e = RETE_OK;

	if (tmp == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory writing %s", path);
	snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
	unlink(tmp); /* a leftover of an earlier crash of this same pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		e = rete_msg_set(m, RETE_EIO, "cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return e;
	}
	/* The umask may have removed bits but never adds any; set the exact
	 * mode so a public key is readable and a secret one is 0600. */
	if (fchmod(fd, mode) != 0) {
		e = rete_msg_set(m, RETE_EIO, "cannot set mode %04o on %s: %s", (unsigned)mode, tmp,
				 strerror(errno));
		goto fail;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			e = rete_msg_set(m, RETE_EIO, "cannot write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		e = rete_msg_set(m, RETE_EIO, "cannot sync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		e = rete_msg_set(m, RETE_EIO, "cannot close %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (overwrite) {
		if (rename(tmp, path) != 0) {
			e = rete_msg_set(m, RETE_EIO, "cannot rename %s to %s: %s", tmp, path,
					 strerror(errno));
			goto fail;
		}
	} else {
		if (link(tmp, path) != 0) {
			err = errno;
			if (err == EEXIST)
				e = rete_msg_set(
				    m, RETE_EEXIST,
				    "%s already exists; it is left untouched "
				    "(overwrite it only on purpose, e.g. keygen --force)",
				    path);
			else
				e = rete_msg_set(m, RETE_EIO, "cannot create %s: %s", path,
						 strerror(err));
			goto fail;
		}
		unlink(tmp);
	}
	free(tmp);
	return RETE_OK;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return e;
}

rete_err rete_keyfile_write(const char *dir, const char *id, const rete_seckey *sk, bool overwrite,
			    rete_msg *m)
{
	enum { LINE = sodium_base64_ENCODED_LEN(RETE_SEED_LEN, sodium_base64_VARIANT_ORIGINAL) };
	char *keypath = NULL, *pubpath = NULL;
	char *line = NULL; /* secret: the base64 of the seed */
	char publine[LINE + 1];
	uint8_t *seed = NULL;
	struct stat st;
	rete_err e;

	if (!rete_id_valid(id))
		return rete_msg_set(m, RETE_EINVAL,
				    "party id '%s' is not valid; an id is 2 to 63 characters "
				    "matching ^[a-z0-9][a-z0-9.-]{1,62}$ (e.g. social.mantova)",
				    id ? id : "(null)");
	if ((e = rete_crypto_init(m)) != RETE_OK)
		return e;
	keypath = join_path(dir, id, ".key");
	pubpath = join_path(dir, id, ".pub");
	line = sodium_malloc(LINE + 1);
	seed = sodium_malloc(RETE_SEED_LEN);
	if (keypath == NULL || pubpath == NULL || line == NULL || seed == NULL) {
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory writing the key of %s", id);
		goto out;
	}
	if (!overwrite) {
		/* Refuse before writing anything, so a half-made pair never
		 * replaces half of an existing one. */
		if (lstat(keypath, &st) == 0 || lstat(pubpath, &st) == 0) {
			e = rete_msg_set(m, RETE_EEXIST,
					 "a key for %s already exists in %s (%s or %s); it is "
					 "left untouched (overwrite it only on purpose, e.g. "
					 "keygen --force)",
					 id, dir, keypath, pubpath);
			goto out;
		}
	}
	crypto_sign_ed25519_sk_to_seed(seed, sk->ed_sk);
	sodium_bin2base64(line, LINE, seed, RETE_SEED_LEN, sodium_base64_VARIANT_ORIGINAL);
	strcat(line, "\n");
	sodium_bin2base64(publine, LINE, sk->pub.ed, RETE_PK_LEN, sodium_base64_VARIANT_ORIGINAL);
	strcat(publine, "\n");

	e = write_file_atomic(keypath, line, strlen(line), 0600, overwrite, m);
	if (e != RETE_OK)
		goto out;
	e = write_file_atomic(pubpath, publine, strlen(publine), 0644, overwrite, m);
	if (e != RETE_OK) {
		if (!overwrite)
			unlink(keypath); /* undo: we created it a moment ago */
		goto out;
	}
	e = fsync_dir(dir, m);
out:
	if (line != NULL)
		sodium_free(line);
	if (seed != NULL)
		sodium_free(seed);
	free(keypath);
	free(pubpath);
	return e;
}

/* read_key_line reads a small key file into buf (KEYFILE_MAX bytes,
 * caller's memory, may be sodium memory) and returns the length of its one
 * line without the final "\n" (or "\r\n") and the file's mode (*mode,
 * permission bits): the callers judge the mode once they know what the
 * file holds (a public key must not get chmod advice). */
static rete_err read_key_line(const char *path, char *buf, size_t *linelen, mode_t *mode,
			      rete_msg *m)
{
	struct stat st;
	size_t n = 0;
	/* O_NONBLOCK: a named pipe without a writer would block the open for
	 * good; a regular file reads the same with it */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	rete_err e = RETE_OK;

	if (fd < 0) {
		int err = errno;
		return rete_msg_set(m, err == ENOENT ? RETE_ENOENT : RETE_EIO,
				    "cannot open key file %s: %s", path, strerror(err));
	}
	if (fstat(fd, &st) != 0) {
		e = rete_msg_set(m, RETE_EIO, "cannot stat key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		e = rete_msg_set(m, RETE_EINVAL,
				 "key file %s is not a regular file (a folder, device, pipe or "
				 "socket); give the path of the key file",
				 path);
		goto out;
	}
	*mode = st.st_mode & 07777;
	for (;;) {
		ssize_t r = read(fd, buf + n, KEYFILE_MAX - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			e = rete_msg_set(m, RETE_EIO, "cannot read key file %s: %s", path,
					 strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == KEYFILE_MAX) {
			e = rete_msg_set(m, RETE_EINVAL,
					 "key file %s is too long: expected one line of %d base64 "
					 "characters",
					 path, B64_KEY_LEN);
			goto out;
		}
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	*linelen = n;
out:
	close(fd);
	return e;
}

/* name_ends: does path end with ext? */
static bool name_ends(const char *path, const char *ext)
{
	size_t pl = strlen(path), el = strlen(ext);
	return pl >= el && strcmp(path + pl - el, ext) == 0;
}

/* sibling_pub reads the public key rete keygen writes beside path (the
 * same name with its extension replaced by ".pub"; path itself when it is
 * that file: then false). True when that file exists and holds one base64
 * line of 32 bytes, which go to pk. */
static bool sibling_pub(const char *path, uint8_t pk[RETE_PK_LEN])
{
	char buf[KEYFILE_MAX];
	size_t len = 0, got = 0, n = strlen(path);
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	mode_t mode;
	rete_msg m;
	char *sib;

	if (dot == NULL || (slash != NULL && dot < slash))
		dot = path + n;
	if ((sib = malloc((size_t)(dot - path) + 5)) == NULL)
		return false;
	memcpy(sib, path, (size_t)(dot - path));
	strcpy(sib + (dot - path), ".pub");
	bool ok = strcmp(sib, path) != 0 && read_key_line(sib, buf, &len, &mode, &m) == RETE_OK &&
		  b64_decode_exact(buf, len, pk, RETE_PK_LEN, &got);
	free(sib);
	return ok;
}

/* seed_matches: does the key pair of seed have the public key pk? */
static bool seed_matches(const uint8_t seed[RETE_SEED_LEN], const uint8_t pk[RETE_PK_LEN])
{
	rete_seckey *sk = NULL;
	rete_msg m;
	bool same = false;

	if (rete_seckey_from_seed(&sk, seed, &m) == RETE_OK)
		same = sodium_memcmp(sk->pub.ed, pk, RETE_PK_LEN) == 0;
	rete_seckey_free(&sk);
	return same;
}

/* holds_public_key judges 32 bytes read where a secret seed is wanted: they
 * are a public key when they are the very bytes of the .pub beside the
 * file, or when they are a valid Ed25519 point (every public key is; a
 * random seed is one time in about sixteen) in a file that others may read
 * (keygen writes a .pub 0644) and are not the seed of that .pub. */
static bool holds_public_key(const char *path, const uint8_t b[RETE_SEED_LEN], mode_t mode)
{
	uint8_t sib[RETE_PK_LEN];
	bool have_sib = sibling_pub(path, sib);

	if (have_sib && sodium_memcmp(sib, b, RETE_PK_LEN) == 0)
		return true;
	if ((mode & 077) == 0 || crypto_core_ed25519_is_valid_point(b) != 1)
		return false;
	return !(have_sib && seed_matches(b, sib));
}

rete_err rete_keyfile_load_secret(const char *path, rete_seckey **out, rete_msg *m)
{
	char *buf = NULL;
	uint8_t *seed = NULL;
	size_t len = 0, got = 0;
	mode_t mode = 0;
	rete_err e;

	*out = NULL;
	if ((e = rete_crypto_init(m)) != RETE_OK)
		return e;
	buf = sodium_malloc(KEYFILE_MAX);
	seed = sodium_malloc(RETE_SEED_LEN);
	if (buf == NULL || seed == NULL) {
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory reading %s", path);
		goto out;
	}
	if (name_ends(path, ".pub")) {
		e = rete_msg_set(m, RETE_EINVAL,
				 "key file %s looks like a public key file (.pub); a secret key "
				 "file is wanted here: give the party's .key (made beside it by "
				 "rete keygen)",
				 path);
		goto out;
	}
	e = read_key_line(path, buf, &len, &mode, m);
	if (e != RETE_OK)
		goto out;
	bool decoded = b64_decode_exact(buf, len, seed, RETE_SEED_LEN, &got);
	if (decoded && holds_public_key(path, seed, mode)) {
		e = rete_msg_set(
		    m, RETE_EINVAL,
		    "key file %s holds a public key (the bytes of the party's .pub, "
		    "or a valid Ed25519 public key in a file others may read, mode "
		    "%04o), not a secret one; a secret key file is wanted here: give "
		    "the party's .key (mode 0600, made beside its .pub by rete keygen)",
		    path, (unsigned)mode);
		goto out;
	}
	if ((mode & 077) != 0) {
		e = rete_msg_set(m, RETE_EPERM,
				 "secret key file %s has mode %04o: group or others may "
				 "read or write it; it is refused (run: chmod 600 %s)",
				 path, (unsigned)mode, path);
		goto out;
	}
	if (!decoded) {
		if (got > 0)
			e = rete_msg_set(m, RETE_EINVAL,
					 "secret key file %s holds %zu bytes; expected one line "
					 "holding the base64 of a 32-byte Ed25519 seed",
					 path, got);
		else
			e = rete_msg_set(m, RETE_EINVAL,
					 "secret key file %s is not base64; expected one line "
					 "holding the base64 of a 32-byte Ed25519 seed "
					 "(%d characters)",
					 path, B64_KEY_LEN);
		goto out;
	}
	e = rete_seckey_from_seed(out, seed, m);
	if (e != RETE_OK)
		rete_msg_prefix(m, "secret key file %s", path);
out:
	if (buf != NULL)
		sodium_free(buf);
	if (seed != NULL)
		sodium_free(seed);
	return e;
}

rete_err rete_keyfile_load_public(const char *path, rete_pubkey *out, rete_msg *m)
{
	char buf[KEYFILE_MAX];
	uint8_t ed[RETE_PK_LEN];
	size_t len = 0, got = 0;
	mode_t mode = 0;
	rete_err e;

	/* A .key file has the very shape of a .pub (one base64 line of 32
	 * bytes): read as a public key, its secret seed would be published in
	 * the directory or printed in a refusal. Refused by its name, unread. */
	if (name_ends(path, ".key"))
		return rete_msg_set(m, RETE_EINVAL,
				    "key file %s looks like a secret key file (.key); a public "
				    "key is wanted here: give the party's .pub (made beside it "
				    "by rete keygen); the secret key never leaves its party",
				    path);
	e = read_key_line(path, buf, &len, &mode, m);
	if (e != RETE_OK)
		return e;
	if (!b64_decode_exact(buf, len, ed, RETE_PK_LEN, &got)) {
		if (got > 0)
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "public key file %s holds %zu bytes; expected one "
			    "line holding the base64 of a 32-byte Ed25519 public key",
			    path, got);
		return rete_msg_set(m, RETE_EINVAL,
				    "public key file %s is not base64; expected one line "
				    "holding the base64 of a 32-byte Ed25519 public key "
				    "(%d characters)",
				    path, B64_KEY_LEN);
	}
	/* By content: the .pub beside the file holds the public key of these
	 * bytes taken as a seed, so they are its secret key. */
	uint8_t sib[RETE_PK_LEN];
	if (sibling_pub(path, sib) && sodium_memcmp(sib, ed, RETE_PK_LEN) != 0 &&
	    seed_matches(ed, sib))
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "key file %s holds the secret key of the .pub beside it, not a "
		    "public key; a public key is wanted here: give the party's .pub; "
		    "the secret key never leaves its party",
		    path);
	e = rete_pubkey_from_ed(out, ed, m);
	if (e != RETE_OK)
		return rete_msg_set(
		    m, e,
		    "key file %s is not a public key: its 32 bytes are no valid "
		    "Ed25519 public key (they do not convert to X25519; a secret key "
		    "file looks like this, a .pub of rete keygen never does); give the party's "
		    ".pub, %s",
		    path,
		    (mode & 044) == 0 ? "and mind that this file is readable by its "
					"owner alone, as a secret key file is"
				      : "and check that this file was not edited");
	return e;
}

char *rete_b64_encode(const uint8_t *bin, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(n);

	if (s == NULL)
		return NULL;
	if (rete_crypto_init(NULL) != RETE_OK) {
		free(s);
		return NULL;
	}
	sodium_bin2base64(s, n, bin, len, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

rete_err rete_b64_decode(const char *b64, uint8_t **out, size_t *outlen)
{
	size_t len, cap, binlen = 0;
	uint8_t *bin;

	*out = NULL;
	*outlen = 0;
	if (b64 == NULL)
		return RETE_EINVAL;
	if (rete_crypto_init(NULL) != RETE_OK)
		return RETE_ECRYPTO;
	len = strlen(b64);
	if (!rete_b64_alphabet(b64, len))
		return RETE_EINVAL;
	cap = len / 4 * 3 + 3;
	bin = malloc(cap);
	if (bin == NULL)
		return RETE_ENOMEM;
	/* No ignored characters and no end pointer: libsodium then refuses
	 * anything but complete, correctly padded base64 with zero spare bits. */
	if (sodium_base642bin(bin, cap, b64, len, NULL, &binlen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(bin);
		return RETE_EINVAL;
	}
	*out = bin;
	*outlen = binlen;
	return RETE_OK;
}
