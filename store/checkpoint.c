/* checkpoint.c — C2SP signed notes carrying tlog checkpoints. See
 * checkpoint.h and shared/specs/transparency-log.md. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define EM_DASH	     "\xe2\x80\x94" /* U+2014, opens every signature line */
#define ED25519_BLOB (RETE_KEY_ID_LEN + crypto_sign_BYTES)

/* Printable, bounded rendering of outside bytes for sentences. */
static const char *show(char buf[80], const char *p, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (o > 60) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
			buf[o++] = (char)c;
		} else {
			snprintf(buf + o, 5, "\\x%02x", c);
			o += 4;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* Length of the UTF-8 sequence at p (at most n bytes) and its code point;
 * 0 when the bytes are not well-formed UTF-8 (overlong forms, surrogates and
 * values above U+10FFFF included). */
static size_t utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
	uint32_t c;
	size_t len;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Valid UTF-8 with no control character (C0, DEL, C1) except, when
 * allow_newline, '\n'. On failure *bad is the offending offset. */
static bool clean_text(const char *s, size_t len, bool allow_newline, size_t *bad)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_char(p + i, len - i, &cp);

		if (n == 0 || (cp < 0x20 && !(allow_newline && cp == '\n')) ||
		    (cp >= 0x7f && cp <= 0x9f)) {
			*bad = i;
			return false;
		}
		i += n;
	}
	return true;
}

/* A key name: non-empty, clean, no spaces, no '+', bounded. NULL when fine,
 * else the reason. */
static const char *key_name_problem(const char *name, size_t len)
{
	size_t bad;

	if (len == 0)
		return "is empty";
	if (len > RETE_ORIGIN_MAX)
		return "is longer than 255 bytes";
	if (!clean_text(name, len, false, &bad))
		return "has a control character or invalid UTF-8";
	if (memchr(name, ' ', len) != NULL)
		return "contains a space";
	if (memchr(name, '+', len) != NULL)
		return "contains '+'";
	return NULL;
}

/* Strict standard base64 (padding required, canonical: it must re-encode to
 * the same text) of s[0:slen] into out (cap bytes). */
static bool b64_strict(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *outlen)
{
	const char *end = NULL;
	char *again;
	size_t elen;
	bool ok;

	*outlen = 0;
	if (slen == 0 || slen % 4 != 0)
		return false;
	if (sodium_base642bin(out, cap, s, slen, NULL, outlen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != s + slen)
		return false;
	elen = sodium_base64_ENCODED_LEN(*outlen, sodium_base64_VARIANT_ORIGINAL);
	again = malloc(elen);
	if (again == NULL)
		return false;
	sodium_bin2base64(again, elen, out, *outlen, sodium_base64_VARIANT_ORIGINAL);
	ok = strlen(again) == slen && memcmp(again, s, slen) == 0;
	free(again);
	return ok;
}

void rete_checkpoint_key_id(uint8_t id[RETE_KEY_ID_LEN], const char *name,
			    const uint8_t pk[RETE_PK_LEN])
{
	crypto_hash_sha256_state st;
	uint8_t h[crypto_hash_sha256_BYTES];
	static const uint8_t sep[2] = {0x0a, 0x01}; /* newline, Ed25519 type */

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
	crypto_hash_sha256_update(&st, sep, sizeof(sep));
	crypto_hash_sha256_update(&st, pk, RETE_PK_LEN);
	crypto_hash_sha256_final(&st, h);
	memcpy(id, h, RETE_KEY_ID_LEN);
}

rete_err rete_checkpoint_sign(const char *origin, uint64_t size,
			      const uint8_t root[RETE_MERKLE_HASH], const rete_seckey *key,
			      char **note_out, rete_msg *m)
{
	return rete_checkpoint_sign_epoch(origin, size, root, 1, key, note_out, m);
}

rete_err rete_checkpoint_sign_epoch(const char *origin, uint64_t size,
				    const uint8_t root[RETE_MERKLE_HASH], uint32_t epoch,
				    const rete_seckey *key, char **note_out, rete_msg *m)
{
	char root64[sodium_base64_ENCODED_LEN(RETE_MERKLE_HASH, sodium_base64_VARIANT_ORIGINAL)];
	char sig64[sodium_base64_ENCODED_LEN(ED25519_BLOB, sodium_base64_VARIANT_ORIGINAL)];
	uint8_t blob[ED25519_BLOB];
	const char *why;
	char shown[80];
	char *note;
	size_t cap, text_len;
	int w;

	*note_out = NULL;
	if (sodium_init() < 0)
		return rete_msg_set(m, RETE_ECRYPTO, "libsodium could not be initialised");
	why = key_name_problem(origin, strlen(origin));
	if (why != NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "checkpoint origin '%s' %s; the origin is also the key name: "
				    "non-empty, at most %d bytes, printable, no spaces, no '+'",
				    show(shown, origin, strlen(origin)), why, RETE_ORIGIN_MAX);
	/* libsodium's secret key is seed || public key: a struct filled with a
	 * different pub.ed would sign under one key and name another. */
	if (sodium_memcmp(key->ed_sk + 32, key->pub.ed, RETE_PK_LEN) != 0)
		return rete_msg_set(m, RETE_ECRYPTO,
				    "signing checkpoint for '%s': the key's public half does not "
				    "match its secret key",
				    show(shown, origin, strlen(origin)));

	sodium_bin2base64(root64, sizeof(root64), root, RETE_MERKLE_HASH,
			  sodium_base64_VARIANT_ORIGINAL);
	cap = 2 * strlen(origin) + sizeof(root64) + sizeof(sig64) + 96;
	note = malloc(cap);
	if (note == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory formatting a checkpoint");
	w = snprintf(note, cap, "%s\n%" PRIu64 "\n%s\n", origin, size, root64);
	/* epoch 1 notes stay exactly as before (C2SP's three lines) */
	if (epoch > 1)
		w += snprintf(note + w, cap - (size_t)w,
			      RETE_CHECKPOINT_EPOCH_LINE " %" PRIu32 "\n", epoch);
	text_len = (size_t)w;

	rete_checkpoint_key_id(blob, origin, key->pub.ed);
	crypto_sign_detached(blob + RETE_KEY_ID_LEN, NULL, (const uint8_t *)note, text_len,
			     key->ed_sk);
	sodium_bin2base64(sig64, sizeof(sig64), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
	snprintf(note + text_len, cap - text_len, "\n" EM_DASH " %s %s\n", origin, sig64);
	*note_out = note;
	return RETE_OK;
}

/* One signature line "— NAME BASE64" (without its newline). *blob gets the
 * decoded bytes (malloc'd, caller frees) when blob is not NULL. */
static rete_err sig_line(const char *line, size_t llen, size_t lineno, const char **name,
			 size_t *name_len, uint8_t **blob, size_t *blob_len, rete_msg *m)
{
	const size_t dash = sizeof(EM_DASH " ") - 1;
	const char *sp, *b64;
	size_t b64len, cap;
	uint8_t *buf;
	const char *why;
	char shown[80];

	if (llen < dash || memcmp(line, EM_DASH " ", dash) != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "note line %zu '%s' is not a signature line; after the last "
				    "blank line every line must be '\xe2\x80\x94 NAME BASE64'",
				    lineno, show(shown, line, llen));
	sp = memchr(line + dash, ' ', llen - dash);
	if (sp == NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "note line %zu '%s': a signature line needs a key name, a "
				    "space and the base64 signature",
				    lineno, show(shown, line, llen));
	*name = line + dash;
	*name_len = (size_t)(sp - *name);
	why = key_name_problem(*name, *name_len);
	if (why != NULL)
		return rete_msg_set(m, RETE_EINVAL, "note line %zu: the key name '%s' %s", lineno,
				    show(shown, *name, *name_len), why);
	b64 = sp + 1;
	b64len = llen - (size_t)(b64 - line);
	cap = b64len / 4 * 3 + 3;
	buf = malloc(cap);
	if (buf == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory reading a note");
	if (!b64_strict(b64, b64len, buf, cap, blob_len) || *blob_len < RETE_KEY_ID_LEN + 1) {
		free(buf);
		return rete_msg_set(m, RETE_EINVAL,
				    "note line %zu: the signature '%s' is not standard base64 "
				    "(with padding) of a key ID and a signature",
				    lineno, show(shown, b64, b64len));
	}
	if (blob != NULL)
		*blob = buf;
	else
		free(buf);
	return RETE_OK;
}

/* Checks the whole note's bytes and splits it at the last blank line:
 * text = note[0:*text_len] (ends with its newline), signature lines from
 * note + *text_len + 1 to the end. Validates every signature line. */
static rete_err split_note(const char *note, size_t len, size_t *text_len, rete_msg *m)
{
	size_t bad, sep = 0, nsig = 0, lineno;
	bool found = false;
	char shown[80];

	if (note == NULL || len == 0)
		return rete_msg_set(m, RETE_EINVAL, "the checkpoint note is empty");
	if (!clean_text(note, len, true, &bad))
		return rete_msg_set(m, RETE_EINVAL,
				    "the checkpoint note has a control character or invalid UTF-8 "
				    "at byte %zu ('%s'); only UTF-8 text and newlines are allowed",
				    bad, show(shown, note + bad, len - bad < 4 ? len - bad : 4));
	if (note[len - 1] != '\n')
		return rete_msg_set(m, RETE_EINVAL,
				    "the checkpoint note does not end with a newline");
	for (size_t i = len - 1; i > 0; i--)
		if (note[i] == '\n' && note[i - 1] == '\n') {
			sep = i; /* the blank line's newline */
			found = true;
			break;
		}
	if (!found || sep == 1)
		return rete_msg_set(m, RETE_EINVAL,
				    "the checkpoint note has %s; a signed note is text, a blank "
				    "line, then signature lines",
				    found ? "no text before its blank line" : "no blank line");
	if (sep + 1 == len)
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "the checkpoint note has no signature lines after its blank line");
	*text_len = sep;

	lineno = 1;
	for (size_t i = 0; i < sep; i++)
		if (note[i] == '\n')
			lineno++;
	lineno++; /* the blank line */
	for (const char *p = note + sep + 1, *end = note + len; p < end; lineno++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *name;
		size_t name_len, blob_len;
		rete_err err;

		if (++nsig > RETE_NOTE_MAX_SIGS)
			return rete_msg_set(m, RETE_EINVAL,
					    "the checkpoint note has more than %d signature lines",
					    RETE_NOTE_MAX_SIGS);
		err = sig_line(p, (size_t)(nl - p), lineno, &name, &name_len, NULL, &blob_len, m);
		if (err != RETE_OK)
			return err;
		p = nl + 1;
	}
	return RETE_OK;
}

/* The checkpoint body: origin, size, root, optional extension lines. */
static rete_err parse_text(const char *text, size_t len, rete_checkpoint *out, rete_msg *m)
{
	static const char *const what[3] = {"origin", "tree size", "root hash"};
	const char *line[3];
	size_t llen[3];
	const char *p = text, *end = text + len;
	char shown[80];
	uint64_t size = 0;
	uint8_t root[RETE_MERKLE_HASH + 3];
	size_t rootlen;
	size_t i;

	for (i = 0; p < end; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == p)
			return rete_msg_set(m, RETE_EINVAL, "checkpoint line %zu is empty; %s",
					    i + 1,
					    i < 3 ? "the first three lines are origin, tree size "
						    "and root hash"
						  : "extension lines must not be empty");
		if (i < 3) {
			line[i] = p;
			llen[i] = (size_t)(nl - p);
		}
		p = nl + 1;
	}
	if (i < 3)
		return rete_msg_set(m, RETE_EINVAL,
				    "the checkpoint has %zu text lines; it needs origin, tree size "
				    "and root hash (3 lines)",
				    i);

	if (llen[0] > RETE_ORIGIN_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "checkpoint line 1 (%s) is %zu bytes; at most %d are accepted",
				    what[0], llen[0], RETE_ORIGIN_MAX);

	if (llen[1] > 1 && line[1][0] == '0')
		return rete_msg_set(m, RETE_EINVAL,
				    "checkpoint line 2 (%s) '%s' has a leading zero; the size is "
				    "decimal without leading zeroes",
				    what[1], show(shown, line[1], llen[1]));
	for (i = 0; i < llen[1]; i++) {
		unsigned d = (unsigned)(line[1][i] - '0');

		if (line[1][i] < '0' || line[1][i] > '9')
			return rete_msg_set(m, RETE_EINVAL,
					    "checkpoint line 2 (%s) '%s' is not a decimal number",
					    what[1], show(shown, line[1], llen[1]));
		if (size > (UINT64_MAX - d) / 10)
			return rete_msg_set(m, RETE_EINVAL,
					    "checkpoint line 2 (%s) '%s' is larger than %" PRIu64,
					    what[1], show(shown, line[1], llen[1]), UINT64_MAX);
		size = size * 10 + d;
	}

	if (!b64_strict(line[2], llen[2], root, sizeof(root), &rootlen) ||
	    rootlen != RETE_MERKLE_HASH)
		return rete_msg_set(m, RETE_EINVAL,
				    "checkpoint line 3 (%s) '%s' is not the standard base64 of "
				    "exactly %d bytes",
				    what[2], show(shown, line[2], llen[2]), RETE_MERKLE_HASH);

	memcpy(out->origin, line[0], llen[0]);
	out->origin[llen[0]] = '\0';
	out->size = size;
	memcpy(out->root, root, RETE_MERKLE_HASH);
	return RETE_OK;
}

size_t rete_checkpoint_body_len(const char *note, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (note[i] == '\n' && note[i + 1] == '\n')
			return i + 1; /* note[i] ends the text */
	return len;
}

rete_err rete_checkpoint_parse(const char *note, size_t len, rete_checkpoint *out, rete_msg *m)
{
	rete_checkpoint cp;
	size_t text_len;
	rete_err err;

	err = split_note(note, len, &text_len, m);
	if (err == RETE_OK)
		err = parse_text(note, text_len, &cp, m);
	if (err == RETE_OK)
		*out = cp;
	return err;
}

rete_err rete_checkpoint_verify(const char *note, size_t len, const char *key_name,
				const rete_pubkey *pk, rete_checkpoint *out, rete_msg *m)
{
	uint8_t id[RETE_KEY_ID_LEN];
	size_t text_len, name_len = strlen(key_name), lineno = 0;
	bool verified = false;
	rete_checkpoint cp;
	const char *why;
	char shown[80];
	rete_err err;

	if (sodium_init() < 0)
		return rete_msg_set(m, RETE_ECRYPTO, "libsodium could not be initialised");
	why = key_name_problem(key_name, name_len);
	if (why != NULL)
		return rete_msg_set(m, RETE_EINVAL, "the key name '%s' %s",
				    show(shown, key_name, name_len), why);
	err = split_note(note, len, &text_len, m);
	if (err == RETE_OK)
		err = parse_text(note, text_len, &cp, m);
	if (err != RETE_OK)
		return err;

	rete_checkpoint_key_id(id, key_name, pk->ed);
	for (const char *p = note + text_len + 1, *end = note + len; p < end; p++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *name;
		uint8_t *blob = NULL;
		size_t nlen, blen;
		bool ok;

		/* Already validated by split_note; errors here are impossible
		 * but handled. */
		err = sig_line(p, (size_t)(nl - p), ++lineno, &name, &nlen, &blob, &blen, m);
		if (err != RETE_OK)
			return err;
		if (nlen != name_len || memcmp(name, key_name, nlen) != 0 ||
		    memcmp(blob, id, RETE_KEY_ID_LEN) != 0) {
			free(blob); /* someone else's signature: not ours to judge */
			p = nl;
			continue;
		}
		/* A known key whose signature is bad means the note was
		 * altered: refuse even if another line would verify. */
		ok = blen == ED25519_BLOB &&
		     crypto_sign_verify_detached(blob + RETE_KEY_ID_LEN, (const uint8_t *)note,
						 text_len, pk->ed) == 0;
		free(blob);
		if (!ok)
			return rete_msg_set(m, RETE_EBADSIG,
					    "checkpoint for '%s' at size %" PRIu64
					    ": the signature by key '%s' does not verify",
					    show(shown, cp.origin, strlen(cp.origin)), cp.size,
					    key_name);
		verified = true;
		p = nl;
	}
	if (!verified)
		return rete_msg_set(m, RETE_EBADSIG,
				    "checkpoint for '%s' at size %" PRIu64
				    " carries no signature by key '%s' (key ID %02x%02x%02x%02x)",
				    show(shown, cp.origin, strlen(cp.origin)), cp.size, key_name,
				    id[0], id[1], id[2], id[3]);
	if (out != NULL)
		*out = cp;
	return RETE_OK;
}

rete_err rete_checkpoint_epoch(const char *note, size_t len, uint32_t *epoch, rete_msg *m)
{
	rete_checkpoint cp;
	rete_err err;
	size_t text_len, at, lineno = 0;
	const size_t kw = strlen(RETE_CHECKPOINT_EPOCH_LINE);

	*epoch = 1;
	if ((err = rete_checkpoint_parse(note, len, &cp, m)) != RETE_OK)
		return err;
	if ((err = split_note(note, len, &text_len, m)) != RETE_OK)
		return err;
	/* the extension lines: every line after the third */
	for (at = 0; at < text_len; lineno++) {
		const char *line = note + at, *nl = memchr(line, '\n', text_len - at);
		size_t ll = nl != NULL ? (size_t)(nl - line) : text_len - at;
		at += ll + 1;
		if (lineno < 3 || ll <= kw || memcmp(line, RETE_CHECKPOINT_EPOCH_LINE, kw) != 0 ||
		    line[kw] != ' ')
			continue;
		uint64_t v = 0;
		size_t i = kw + 1;
		bool ok = i < ll && line[i] != '0';
		for (; ok && i < ll; i++) {
			if (line[i] < '0' || line[i] > '9' || v > UINT32_MAX / 10) {
				ok = false;
				break;
			}
			v = v * 10 + (uint64_t)(line[i] - '0');
		}
		if (!ok || v < 2 || v > UINT32_MAX)
			return rete_msg_set(m, RETE_EINVAL,
					    "checkpoint line %zu: '%.*s' is not an epoch line; "
					    "expected 'epoch N' with N a decimal number >= 2",
					    lineno + 1, (int)(ll > 60 ? 60 : ll), line);
		*epoch = (uint32_t)v;
		return RETE_OK;
	}
	return RETE_OK;
}
