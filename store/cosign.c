/* cosign.c — cosignature/v1 lines on checkpoint notes and witness
 * policies. See cosign.h and shared/specs/evidence-and-interoperability.md
 * ("Witness cosignatures"). */
#include "cosign.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "checkpoint.h"
#include "conffile.h"

#define EM_DASH_SP     "\xe2\x80\x94 " /* U+2014 and a space open a signature line */
#define EM_DASH_SP_LEN 4

struct witness {
	char name[RETE_ORIGIN_MAX + 1];
	rete_pubkey pk;
};

struct rete_witness_policy {
	struct witness w[RETE_WITNESS_MAX];
	size_t n;
	size_t quorum;
};

void rete_cosign_key_id(uint8_t id[4], const char *name, const uint8_t pk[RETE_PK_LEN])
{
	crypto_hash_sha256_state st;
	uint8_t h[crypto_hash_sha256_BYTES];
	static const uint8_t sep[2] = {0x0a, 0x04}; /* newline, cosignature/v1 type */

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
	crypto_hash_sha256_update(&st, sep, sizeof(sep));
	crypto_hash_sha256_update(&st, pk, RETE_PK_LEN);
	crypto_hash_sha256_final(&st, h);
	memcpy(id, h, 4);
}

/* A key name as signed notes allow: 1..255 bytes, no space, no '+', no
 * control character (UTF-8 well-formedness is checked by the note parser
 * when the name lands in a note). NULL when fine, else the reason. */
static const char *name_problem(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return "is empty";
	if (len > RETE_ORIGIN_MAX)
		return "is longer than 255 bytes";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x21 || c == 0x7f)
			return "contains a space or a control character";
		if (c == '+')
			return "contains '+'";
	}
	return NULL;
}

/* Parses the note strictly, then finds its body with the lenient
 * rete_checkpoint_body_len: note[0:*body_len] ends with the text's final
 * newline; signature lines start at note + *body_len + 1. */
rete_err rete_cosign_body_len(const char *note, size_t len, size_t *body_len, rete_msg *m)
{
	rete_checkpoint cp;
	rete_err err;

	err = rete_checkpoint_parse(note, len, &cp, m);
	if (err != RETE_OK)
		return err;
	/* the strict parse left one blank line: the lenient search finds it */
	*body_len = rete_checkpoint_body_len(note, len);
	if (*body_len == len)
		return rete_msg_set(m, RETE_EINVAL, "the checkpoint note has no blank line");
	return RETE_OK;
}

/* The signed message: "cosignature/v1\ntime T\n" || body. malloc'd. */
static uint8_t *signed_message(const char *body, size_t body_len, uint64_t t, size_t *mlen)
{
	char head[64];
	int h = snprintf(head, sizeof(head), RETE_COSIGN_CONTEXT "time %" PRIu64 "\n", t);
	uint8_t *msg = malloc((size_t)h + body_len);

	if (msg == NULL)
		return NULL;
	memcpy(msg, head, (size_t)h);
	memcpy(msg + h, body, body_len);
	*mlen = (size_t)h + body_len;
	return msg;
}

/* One signature line (without newline) of an already-parsed note: its name
 * (not NUL-terminated) and its base64 part. */
static void split_sig(const char *line, size_t llen, const char **name, size_t *nlen,
		      const char **b64, size_t *blen)
{
	const char *sp;

	*name = line + EM_DASH_SP_LEN;
	sp = memchr(*name, ' ', llen - EM_DASH_SP_LEN);
	*nlen = (size_t)(sp - *name);
	*b64 = sp + 1;
	*blen = llen - (size_t)(*b64 - line);
}

rete_err rete_cosign_line(const char *note, size_t len, const char *name, const rete_seckey *key,
			  uint64_t time_s, char **line_out, rete_msg *m)
{
	uint8_t blob[RETE_COSIGN_BLOB];
	size_t body_len, mlen, cap;
	rete_checkpoint cp;
	const char *why;
	uint8_t *msg;
	char *b64, *line, *check;
	rete_err err;

	*line_out = NULL;
	if (sodium_init() < 0)
		return rete_msg_set(m, RETE_ECRYPTO, "libsodium could not be initialised");
	why = name_problem(name);
	if (why != NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "the cosigner name '%.64s' %s; a cosigner name is a key name: "
				    "non-empty, at most 255 bytes, printable, no spaces, no '+'",
				    name, why);
	if (sodium_memcmp(key->ed_sk + 32, key->pub.ed, RETE_PK_LEN) != 0)
		return rete_msg_set(m, RETE_ECRYPTO,
				    "cosigning as '%s': the key's public half does not match its "
				    "secret key",
				    name);
	err = rete_cosign_body_len(note, len, &body_len, m);
	if (err != RETE_OK) {
		rete_msg_prefix(m, "cannot cosign");
		return err;
	}
	msg = signed_message(note, body_len, time_s, &mlen);
	if (msg == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory cosigning a checkpoint");
	rete_cosign_key_id(blob, name, key->pub.ed);
	for (int i = 0; i < 8; i++)
		blob[4 + i] = (uint8_t)(time_s >> (56 - 8 * i));
	crypto_sign_detached(blob + 12, NULL, msg, mlen, key->ed_sk);
	free(msg);
	b64 = rete_b64_encode(blob, sizeof(blob));
	if (b64 == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory cosigning a checkpoint");
	cap = EM_DASH_SP_LEN + strlen(name) + 1 + strlen(b64) + 1;
	line = malloc(cap);
	if (line == NULL) {
		free(b64);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory cosigning a checkpoint");
	}
	snprintf(line, cap, EM_DASH_SP "%s %s", name, b64);
	free(b64);
	/* The line must make a well-formed note (UTF-8 of the name included):
	 * the body, the blank line and this line alone. */
	cap = body_len + 1 + strlen(line) + 2;
	check = malloc(cap);
	if (check == NULL) {
		free(line);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory cosigning a checkpoint");
	}
	memcpy(check, note, body_len + 1);
	snprintf(check + body_len + 1, cap - body_len - 1, "%s\n", line);
	err = rete_checkpoint_parse(check, strlen(check), &cp, m);
	free(check);
	if (err != RETE_OK) {
		free(line);
		rete_msg_prefix(m, "cosigning as '%.64s'", name);
		return err;
	}
	*line_out = line;
	return RETE_OK;
}

rete_err rete_cosign_verify(const char *note, size_t len, const char *name, const rete_pubkey *pk,
			    uint64_t *time_s, rete_msg *m)
{
	uint8_t id[4];
	size_t body_len, name_len = strlen(name);
	bool named = false, verified = false;
	uint64_t t_ok = 0;
	const char *why;
	rete_err err;

	if (sodium_init() < 0)
		return rete_msg_set(m, RETE_ECRYPTO, "libsodium could not be initialised");
	why = name_problem(name);
	if (why != NULL)
		return rete_msg_set(m, RETE_EINVAL, "the cosigner name '%.64s' %s", name, why);
	err = rete_cosign_body_len(note, len, &body_len, m);
	if (err != RETE_OK)
		return err;
	rete_cosign_key_id(id, name, pk->ed);

	for (const char *p = note + body_len + 1, *end = note + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *ln, *b64;
		size_t lnlen, blen, binlen = 0;
		uint8_t *bin = NULL;
		char *b64z;
		uint64_t t = 0;
		uint8_t *msg;
		size_t mlen;
		bool ok;

		split_sig(p, (size_t)(nl - p), &ln, &lnlen, &b64, &blen);
		p = nl + 1;
		if (lnlen != name_len || memcmp(ln, name, name_len) != 0)
			continue;
		named = true;
		b64z = strndup(b64, blen);
		if (b64z == NULL)
			return rete_msg_set(m, RETE_ENOMEM, "out of memory reading a cosignature");
		err = rete_b64_decode(b64z, &bin, &binlen);
		free(b64z);
		if (err != RETE_OK)
			return rete_msg_set(m, err == RETE_ENOMEM ? RETE_ENOMEM : RETE_EINVAL,
					    "the signature line of '%s' is not base64", name);
		if (binlen < 4 || memcmp(bin, id, 4) != 0) {
			free(bin); /* NAME under another key (or a note signature) */
			continue;
		}
		if (binlen != RETE_COSIGN_BLOB) {
			free(bin);
			return rete_msg_set(m, RETE_EBADSIG,
					    "the cosignature of '%s' is %zu bytes; cosignature/v1 "
					    "is a key ID, a time and a signature (%d bytes)",
					    name, binlen, RETE_COSIGN_BLOB);
		}
		for (int i = 0; i < 8; i++)
			t = (t << 8) | bin[4 + i];
		msg = signed_message(note, body_len, t, &mlen);
		if (msg == NULL) {
			free(bin);
			return rete_msg_set(m, RETE_ENOMEM, "out of memory reading a cosignature");
		}
		ok = crypto_sign_verify_detached(bin + 12, msg, mlen, pk->ed) == 0;
		free(msg);
		free(bin);
		if (!ok)
			return rete_msg_set(m, RETE_EBADSIG,
					    "the cosignature of '%s' (time %" PRIu64
					    ") does not verify over this checkpoint",
					    name, t);
		verified = true;
		t_ok = t;
	}
	if (!verified) {
		if (!named)
			return rete_msg_set(m, RETE_ENOENT,
					    "the checkpoint carries no cosignature of '%s'", name);
		return rete_msg_set(m, RETE_EBADSIG,
				    "the checkpoint's line named '%s' is not a cosignature by its "
				    "key (cosignature key ID %02x%02x%02x%02x)",
				    name, id[0], id[1], id[2], id[3]);
	}
	if (time_s != NULL)
		*time_s = t_ok;
	return RETE_OK;
}

/* Rebuilds the note keeping the signature lines for which keep() is true,
 * then (when extra is not NULL) extra and a newline. */
typedef bool (*keep_fn)(const char *name, size_t nlen, const void *arg);

static rete_err rebuild(const char *note, size_t body_len, size_t len, keep_fn keep,
			const void *arg, const char *extra, char **out, size_t *out_len,
			rete_msg *m)
{
	size_t cap = len + (extra != NULL ? strlen(extra) + 1 : 0) + 1, o;
	char *buf = malloc(cap);

	if (buf == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory rebuilding a note");
	memcpy(buf, note, body_len + 1); /* the body and the blank line */
	o = body_len + 1;
	for (const char *p = note + body_len + 1, *end = note + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *nm, *b64;
		size_t nlen, blen;

		split_sig(p, (size_t)(nl - p), &nm, &nlen, &b64, &blen);
		if (keep(nm, nlen, arg)) {
			memcpy(buf + o, p, (size_t)(nl - p) + 1);
			o += (size_t)(nl - p) + 1;
		}
		p = nl + 1;
	}
	if (extra != NULL) {
		memcpy(buf + o, extra, strlen(extra));
		o += strlen(extra);
		buf[o++] = '\n';
	}
	buf[o] = '\0';
	*out = buf;
	if (out_len != NULL)
		*out_len = o;
	return RETE_OK;
}

static bool name_eq(const char *nm, size_t nlen, const void *arg)
{
	const char *want = arg;
	return strlen(want) == nlen && memcmp(nm, want, nlen) == 0;
}

static bool name_ne(const char *nm, size_t nlen, const void *arg)
{
	return !name_eq(nm, nlen, arg);
}

rete_err rete_cosign_add(const char *note, size_t len, const char *line, char **out,
			 size_t *out_len, rete_msg *m)
{
	size_t body_len, llen = strlen(line), nlen;
	const char *sp;
	char name[RETE_ORIGIN_MAX + 1];
	char *candidate;
	rete_checkpoint cp;
	rete_err err;

	*out = NULL;
	err = rete_cosign_body_len(note, len, &body_len, m);
	if (err != RETE_OK)
		return err;
	if (llen < EM_DASH_SP_LEN + 3 || memcmp(line, EM_DASH_SP, EM_DASH_SP_LEN) != 0 ||
	    (sp = memchr(line + EM_DASH_SP_LEN, ' ', llen - EM_DASH_SP_LEN)) == NULL ||
	    memchr(line, '\n', llen) != NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "the cosignature line '%.80s' is not one signature line "
				    "'\xe2\x80\x94 NAME BASE64'",
				    line);
	nlen = (size_t)(sp - (line + EM_DASH_SP_LEN));
	if (nlen == 0 || nlen > RETE_ORIGIN_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "the cosignature line '%.80s' has no valid key name", line);
	memcpy(name, line + EM_DASH_SP_LEN, nlen);
	name[nlen] = '\0';
	err = rebuild(note, body_len, len, name_ne, name, line, &candidate, out_len, m);
	if (err != RETE_OK)
		return err;
	/* The result must parse: the line's name, base64 and count of lines. */
	err = rete_checkpoint_parse(candidate, strlen(candidate), &cp, m);
	if (err != RETE_OK) {
		free(candidate);
		rete_msg_prefix(m, "adding the cosignature of '%.64s'", name);
		return err;
	}
	*out = candidate;
	return RETE_OK;
}

rete_err rete_cosign_strip(const char *note, size_t len, const char *keep_name, char **out,
			   size_t *out_len, rete_msg *m)
{
	size_t body_len;
	rete_err err;

	*out = NULL;
	err = rete_cosign_body_len(note, len, &body_len, m);
	if (err != RETE_OK)
		return err;
	return rebuild(note, body_len, len, name_eq, keep_name, NULL, out, out_len, m);
}

/* --- witness policies ---------------------------------------------------- */

/* Next whitespace-separated word of [*p, end): NULL when none. */
static const char *word(const char **p, const char *end, size_t *wlen)
{
	const char *s = *p;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end) {
		*p = s;
		return NULL;
	}
	*p = s;
	while (*p < end && **p != ' ' && **p != '\t')
		(*p)++;
	*wlen = (size_t)(*p - s);
	return s;
}

rete_err rete_witness_policy_parse(const char *text, size_t len, rete_witness_policy **out,
				   rete_msg *m)
{
	rete_witness_policy *p;
	size_t lineno = 0, quorum_line = 0;
	uint64_t quorum = 0;
	const char *end = text + len;

	*out = NULL;
	if (memchr(text, '\0', len) != NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "the witness policy contains a NUL byte; it is a text file");
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory reading a witness policy");
	for (const char *ln = text; ln < end;) {
		const char *nl = memchr(ln, '\n', (size_t)(end - ln));
		const char *le = nl != NULL ? nl : end, *q = ln, *w[4];
		size_t wl[4] = {0}, nw = 0;

		lineno++;
		if (le > ln && le[-1] == '\r')
			le--;
		while (nw < 4 && (w[nw] = word(&q, le, &wl[nw])) != NULL)
			nw++;
		ln = nl != NULL ? nl + 1 : end;
		if (nw == 0 || w[0][0] == '#')
			continue;
		if (wl[0] == 7 && memcmp(w[0], "witness", 7) == 0) {
			struct witness *wt;
			uint8_t *key = NULL;
			size_t klen = 0;
			char k64[128];
			const char *why;
			rete_err err;

			if (nw != 3)
				goto bad_witness;
			if (p->n == RETE_WITNESS_MAX) {
				rete_witness_policy_free(&p);
				return rete_msg_set(
				    m, RETE_EINVAL,
				    "witness policy line %zu: more than %d witnesses", lineno,
				    RETE_WITNESS_MAX);
			}
			wt = &p->w[p->n];
			if (wl[1] > RETE_ORIGIN_MAX) {
				rete_witness_policy_free(&p);
				return rete_msg_set(m, RETE_EINVAL,
						    "witness policy line %zu: the witness name is "
						    "longer than %d bytes",
						    lineno, RETE_ORIGIN_MAX);
			}
			memcpy(wt->name, w[1], wl[1]);
			wt->name[wl[1]] = '\0';
			why = name_problem(wt->name);
			if (why != NULL) {
				rete_msg_set(m, RETE_EINVAL,
					     "witness policy line %zu: the witness name '%.64s' %s",
					     lineno, wt->name, why);
				rete_witness_policy_free(&p);
				return RETE_EINVAL;
			}
			if (wl[2] >= sizeof(k64))
				goto bad_key;
			memcpy(k64, w[2], wl[2]);
			k64[wl[2]] = '\0';
			err = rete_b64_decode(k64, &key, &klen);
			if (err != RETE_OK || klen != RETE_PK_LEN ||
			    rete_pubkey_from_ed(&wt->pk, key, NULL) != RETE_OK) {
				free(key);
				goto bad_key;
			}
			free(key);
			for (size_t i = 0; i < p->n; i++) {
				if (strcmp(p->w[i].name, wt->name) == 0) {
					rete_msg_set(m, RETE_EINVAL,
						     "witness policy line %zu: the witness '%s' is "
						     "listed twice",
						     lineno, wt->name);
					rete_witness_policy_free(&p);
					return RETE_EINVAL;
				}
				if (memcmp(p->w[i].pk.ed, wt->pk.ed, RETE_PK_LEN) == 0) {
					rete_msg_set(m, RETE_EINVAL,
						     "witness policy line %zu: the key of '%s' is "
						     "already the key of '%s'; one key counts once",
						     lineno, wt->name, p->w[i].name);
					rete_witness_policy_free(&p);
					return RETE_EINVAL;
				}
			}
			p->n++;
			continue;
		bad_witness:
			rete_witness_policy_free(&p);
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "witness policy line %zu: expected 'witness NAME KEY' "
			    "(the party id and the base64 of its Ed25519 public key)",
			    lineno);
		bad_key:
			rete_witness_policy_free(&p);
			return rete_msg_set(m, RETE_EINVAL,
					    "witness policy line %zu: the key '%.*s' is not the "
					    "standard base64 of a 32-byte Ed25519 public key",
					    lineno, (int)(wl[2] > 60 ? 60 : wl[2]), w[2]);
		}
		if (wl[0] == 6 && memcmp(w[0], "quorum", 6) == 0) {
			char *e;
			char num[24];

			if (quorum_line != 0) {
				rete_witness_policy_free(&p);
				return rete_msg_set(m, RETE_EINVAL,
						    "witness policy line %zu: a second 'quorum' "
						    "(the first is on line %zu)",
						    lineno, quorum_line);
			}
			if (nw != 2 || wl[1] >= sizeof(num) || w[1][0] < '1' || w[1][0] > '9') {
				rete_witness_policy_free(&p);
				return rete_msg_set(
				    m, RETE_EINVAL,
				    "witness policy line %zu: expected 'quorum K' "
				    "with K a number from 1 to the number of witnesses",
				    lineno);
			}
			memcpy(num, w[1], wl[1]);
			num[wl[1]] = '\0';
			errno = 0;
			quorum = strtoull(num, &e, 10);
			if (errno != 0 || *e != '\0') {
				rete_witness_policy_free(&p);
				return rete_msg_set(
				    m, RETE_EINVAL,
				    "witness policy line %zu: the quorum '%s' is not "
				    "a number",
				    lineno, num);
			}
			quorum_line = lineno;
			continue;
		}
		rete_msg_set(m, RETE_EINVAL,
			     "witness policy line %zu: unknown directive '%.*s'; a policy has "
			     "'witness NAME KEY' and 'quorum K' lines and '#' comments",
			     lineno, (int)(wl[0] > 40 ? 40 : wl[0]), w[0]);
		rete_witness_policy_free(&p);
		return RETE_EINVAL;
	}
	if (p->n == 0) {
		rete_witness_policy_free(&p);
		return rete_msg_set(m, RETE_EINVAL,
				    "the witness policy lists no witness; it needs at least one "
				    "'witness NAME KEY' line");
	}
	if (quorum_line != 0 && quorum > p->n) {
		rete_msg_set(m, RETE_EINVAL,
			     "witness policy line %zu: quorum %" PRIu64
			     " is more than the %zu witnesses listed",
			     quorum_line, quorum, p->n);
		rete_witness_policy_free(&p);
		return RETE_EINVAL;
	}
	p->quorum = quorum_line != 0 ? (size_t)quorum : p->n;
	*out = p;
	return RETE_OK;
}

rete_err rete_witness_policy_load(const char *path, rete_witness_policy **out, rete_msg *m)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	rete_err err;

	*out = NULL;
	f = fopen(path, "rb");
	if (f == NULL)
		return rete_msg_set(m, errno == ENOENT ? RETE_ENOENT : RETE_EIO,
				    "cannot open the witness policy %s: %s", path, strerror(errno));
	/* a file edited by hand, as every configuration file: a UTF-8 byte
	 * order mark skipped, UTF-16 refused with its own sentence */
	if ((err = rete_conffile_start(f, m)) != RETE_OK) {
		fclose(f);
		rete_msg_prefix(m, "the witness policy %s", path);
		return err;
	}
	for (;;) {
		if (len == cap) {
			char *nb;
			if (cap >= (1u << 20)) {
				free(buf);
				fclose(f);
				return rete_msg_set(m, RETE_EINVAL,
						    "the witness policy %s is larger than 1 MiB",
						    path);
			}
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return rete_msg_set(m, RETE_ENOMEM, "out of memory reading %s",
						    path);
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return rete_msg_set(m, RETE_EIO, "cannot read the witness policy %s", path);
	}
	fclose(f);
	err = rete_witness_policy_parse(buf != NULL ? buf : "", len, out, m);
	free(buf);
	if (err != RETE_OK)
		rete_msg_prefix(m, "%s", path);
	return err;
}

/* Appends to a bounded sentence; marks the cut with "...". */
static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...)
{
	size_t o = strlen(buf);
	va_list ap;
	int w;

	if (o + 4 >= cap)
		return;
	va_start(ap, fmt);
	w = vsnprintf(buf + o, cap - o, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= cap - o)
		memcpy(buf + cap - 4, "...", 4);
}

rete_err rete_witness_policy_check(const rete_witness_policy *p, const char *note, size_t len,
				   rete_msg *m)
{
	char missing[512] = "", invalid[512] = "";
	size_t ok = 0, body_len;
	rete_err err;

	err = rete_cosign_body_len(note, len, &body_len, m);
	if (err != RETE_OK)
		return err;
	for (size_t i = 0; i < p->n; i++) {
		rete_msg wm = {{0}};

		err = rete_cosign_verify(note, len, p->w[i].name, &p->w[i].pk, NULL, &wm);
		if (err == RETE_OK)
			ok++;
		else if (err == RETE_ENOENT)
			append(missing, sizeof(missing), "%s%s", missing[0] ? ", " : "",
			       p->w[i].name);
		else if (err == RETE_EBADSIG || err == RETE_EINVAL)
			append(invalid, sizeof(invalid), "%s%s", invalid[0] ? ", " : "",
			       p->w[i].name);
		else
			return rete_msg_set(m, err, "%s", wm.text);
	}
	if (ok >= p->quorum)
		return rete_msg_set(m, RETE_OK, "%zu of %zu witnesses cosigned (need %zu)", ok,
				    p->n, p->quorum);
	return rete_msg_set(
	    m, RETE_EBADSIG, "%zu of %zu required witnesses cosigned (need %zu)%s%s%s%s%s%s", ok,
	    p->n, p->quorum, missing[0] || invalid[0] ? ":" : "", missing[0] ? " missing " : "",
	    missing, missing[0] && invalid[0] ? ";" : "", invalid[0] ? " invalid " : "", invalid);
}

size_t rete_witness_policy_count(const rete_witness_policy *p)
{
	return p->n;
}

size_t rete_witness_policy_quorum(const rete_witness_policy *p)
{
	return p->quorum;
}

const char *rete_witness_policy_name(const rete_witness_policy *p, size_t i)
{
	return i < p->n ? p->w[i].name : NULL;
}

const rete_pubkey *rete_witness_policy_key(const rete_witness_policy *p, size_t i)
{
	return i < p->n ? &p->w[i].pk : NULL;
}

void rete_witness_policy_free(rete_witness_policy **p)
{
	if (p == NULL || *p == NULL)
		return;
	free(*p);
	*p = NULL;
}
