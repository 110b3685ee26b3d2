/* test_checkpoint.c — signed checkpoint notes: the exact C2SP text for a
 * fixed key (expected note computed independently, with Python's
 * `cryptography`, and the key ID recomputed here), round trips, tampering,
 * foreign signatures, and malformed notes refused with a sentence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "checkpoint.h"
#include "merkle.h"
#include "testutil.h"

#define ORIGIN "rete.example/mantova"

/* The root of the eight reference leaves of shared/testdata/merkle. */
static const char *const root8_hex =
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";

/* Seed 00 01 .. 1f, origin ORIGIN, size 8, root root8_hex: made with Python
 * (hashlib for the key ID, cryptography's Ed25519 for the signature). */
static const char *const expected_note =
    "rete.example/mantova\n"
    "8\n"
    "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    "\n"
    "\xe2\x80\x94 rete.example/mantova "
    "fK036wvfKx0jplzFHWxfYSZs+TUxqAIVtGEckSKC3Q5YKYWOtTGEFwNY0gK3+oH+uQ1Ancq0T/"
    "CifjUqNJ/xlq4z6Qw=\n";

/* The keys: tu_key_from_seed, filled directly (the test does not depend
 * on keys.c). */

static void root8(uint8_t r[32])
{
	size_t n = 0;
	assert_int_equal(sodium_hex2bin(r, 32, root8_hex, 64, NULL, &n, NULL), 0);
	assert_int_equal(n, 32);
}

/* Replace the first occurrence of `from` in note by `to`: a new malloc'd
 * string. */
static char *replace(const char *note, const char *from, const char *to)
{
	const char *p = strstr(note, from);
	size_t a, n;
	char *out;

	assert_non_null(p);
	a = (size_t)(p - note);
	n = strlen(note) - strlen(from) + strlen(to);
	out = malloc(n + 1);
	assert_non_null(out);
	memcpy(out, note, a);
	memcpy(out + a, to, strlen(to));
	strcpy(out + a + strlen(to), p + strlen(from));
	return out;
}

/* A signature line for (name, id, sig) assembled here. */
static char *sig_line(const char *name, const uint8_t *blob, size_t len)
{
	char b64[256];
	char *line = malloc(512);

	assert_non_null(line);
	sodium_bin2base64(b64, sizeof(b64), blob, len, sodium_base64_VARIANT_ORIGINAL);
	snprintf(line, 512, "\xe2\x80\x94 %s %s\n", name, b64);
	return line;
}

static void test_exact_text(void **state)
{
	rete_seckey *k = tu_key_from_seed(0);
	uint8_t root[32], id[4], h[32], blob[68];
	char *note = NULL;
	const char *b64;
	size_t blen = 0;
	rete_msg m = {{0}};
	uint8_t msg[sizeof(ORIGIN) - 1 + 2 + 32];

	(void)state;
	root8(root);
	assert_int_equal(rete_checkpoint_sign(ORIGIN, 8, root, k, &note, &m), RETE_OK);
	assert_string_equal(note, expected_note);

	/* The key ID, recomputed: SHA-256(name || 0x0A || 0x01 || pk)[0:4]. */
	memcpy(msg, ORIGIN, sizeof(ORIGIN) - 1);
	msg[sizeof(ORIGIN) - 1] = 0x0a;
	msg[sizeof(ORIGIN)] = 0x01;
	memcpy(msg + sizeof(ORIGIN) + 1, k->pub.ed, 32);
	crypto_hash_sha256(h, msg, sizeof(msg));
	b64 = strrchr(note, ' ') + 1;
	assert_int_equal(sodium_base642bin(blob, sizeof(blob), b64, strlen(b64) - 1, NULL, &blen,
					   NULL, sodium_base64_VARIANT_ORIGINAL),
			 0);
	assert_int_equal(blen, 68);
	assert_memory_equal(blob, h, 4);
	rete_checkpoint_key_id(id, ORIGIN, k->pub.ed);
	assert_memory_equal(id, h, 4);
	/* The signature covers the text through its final newline. */
	assert_int_equal(crypto_sign_verify_detached(blob + 4, (const uint8_t *)note,
						     strstr(note, "\n\n") + 1 - note, k->pub.ed),
			 0);
	free(note);
	tu_key_free(k);
}

static void test_round_trip(void **state)
{
	rete_seckey *k = tu_key_from_seed(7);
	uint64_t sizes[] = {0, 1, 8, 1234567, UINT64_MAX};
	rete_msg m = {{0}};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t root[32];
		rete_checkpoint cp, cv;
		char *note = NULL;

		randombytes_buf(root, sizeof(root));
		assert_int_equal(rete_checkpoint_sign("log.example", sizes[i], root, k, &note, &m),
				 RETE_OK);
		memset(&cp, 0xaa, sizeof(cp));
		assert_int_equal(rete_checkpoint_parse(note, strlen(note), &cp, &m), RETE_OK);
		assert_string_equal(cp.origin, "log.example");
		assert_true(cp.size == sizes[i]);
		assert_memory_equal(cp.root, root, 32);
		memset(&cv, 0, sizeof(cv));
		if (rete_checkpoint_verify(note, strlen(note), "log.example", &k->pub, &cv, &m) !=
		    RETE_OK)
			fail_msg("verify: %s", m.text);
		assert_string_equal(cv.origin, cp.origin);
		assert_true(cv.size == cp.size);
		assert_memory_equal(cv.root, cp.root, 32);
		free(note);
	}
	tu_key_free(k);
}

static void expect_badsig(const char *note, const char *name, const rete_pubkey *pk,
			  const char *needle)
{
	rete_msg m = {{0}};
	rete_checkpoint cp;

	memset(&cp, 0x55, sizeof(cp));
	assert_int_equal(rete_checkpoint_verify(note, strlen(note), name, pk, &cp, &m),
			 RETE_EBADSIG);
	if (strstr(m.text, needle) == NULL)
		fail_msg("sentence '%s' lacks '%s'", m.text, needle);
	assert_int_equal(cp.size, 0x5555555555555555ULL); /* untouched on failure */
}

static void test_tampering(void **state)
{
	rete_seckey *k = tu_key_from_seed(0), *other = tu_key_from_seed(100);
	uint8_t root[32];
	char *note = NULL, *t;
	rete_msg m;

	(void)state;
	root8(root);
	assert_int_equal(rete_checkpoint_sign(ORIGIN, 8, root, k, &note, &m), RETE_OK);
	assert_int_equal(rete_checkpoint_verify(note, strlen(note), ORIGIN, &k->pub, NULL, &m),
			 RETE_OK);

	t = replace(note, "\n8\n", "\n9\n"); /* size */
	expect_badsig(t, ORIGIN, &k->pub, "does not verify");
	free(t);
	/* root: another valid 32-byte base64 */
	t = replace(note, "XcnaeacG", "XcnaeacH");
	expect_badsig(t, ORIGIN, &k->pub, "does not verify");
	free(t);
	/* origin (the signature line keeps the key name) */
	t = replace(note, "rete.example/mantova\n8", "rete.example/cremona\n8");
	expect_badsig(t, ORIGIN, &k->pub, "does not verify");
	free(t);
	/* signature bytes: one base64 character after the key ID */
	t = replace(note, "wvfKx0", "wvfKx1");
	expect_badsig(t, ORIGIN, &k->pub, "does not verify");
	free(t);
	/* the key ID: the line becomes someone else's, so no known signature */
	t = replace(note, "fK036", "fK037");
	expect_badsig(t, ORIGIN, &k->pub, "no signature by key");
	free(t);
	/* a wrong key, a wrong key name */
	expect_badsig(note, ORIGIN, &other->pub, "no signature by key");
	expect_badsig(note, "rete.example/cremona", &k->pub, "no signature by key");
	free(note);
	tu_key_free(k);
	tu_key_free(other);
}

static void test_foreign_signatures(void **state)
{
	rete_seckey *k = tu_key_from_seed(0), *w = tu_key_from_seed(50);
	uint8_t root[32], blob[68], id[4];
	char *note = NULL, *foreign, *wrong_id, *witness, *t, *t2;
	size_t text_len;
	rete_msg m;
	rete_checkpoint cp;

	(void)state;
	root8(root);
	assert_int_equal(rete_checkpoint_sign(ORIGIN, 8, root, k, &note, &m), RETE_OK);
	text_len = (size_t)(strstr(note, "\n\n") + 1 - note);

	/* An unknown key's line (random bytes), our name with a foreign key ID,
	 * and a real cosignature by a witness key. */
	randombytes_buf(blob, sizeof(blob));
	foreign = sig_line("witness.example", blob, sizeof(blob));
	rete_checkpoint_key_id(id, ORIGIN, k->pub.ed);
	blob[0] = (uint8_t)(id[0] ^ 0xff);
	wrong_id = sig_line(ORIGIN, blob, sizeof(blob));
	rete_checkpoint_key_id(blob, "witness.example", w->pub.ed);
	crypto_sign_detached(blob + 4, NULL, (const uint8_t *)note, text_len, w->ed_sk);
	witness = sig_line("witness.example", blob, sizeof(blob));

	/* before and after ours */
	t = malloc(strlen(note) + 3 * 512);
	assert_non_null(t);
	memcpy(t, note, text_len + 1);
	t[text_len + 1] = '\0';
	strcat(t, foreign);
	strcat(t, wrong_id);
	strcat(t, note + text_len + 1);
	strcat(t, witness);
	if (rete_checkpoint_verify(t, strlen(t), ORIGIN, &k->pub, &cp, &m) != RETE_OK)
		fail_msg("verify with foreign lines: %s", m.text);
	assert_int_equal(cp.size, 8);
	/* The witness's own key verifies the same note. */
	assert_int_equal(rete_checkpoint_verify(t, strlen(t), "witness.example", &w->pub, NULL, &m),
			 RETE_OK);
	/* Without our line: only foreign signatures, refused. */
	t2 = replace(t, note + text_len + 1, "");
	expect_badsig(t2, ORIGIN, &k->pub, "no signature by key 'rete.example/mantova'");
	free(t2);
	free(t);
	free(foreign);
	free(wrong_id);
	free(witness);
	free(note);
	tu_key_free(k);
	tu_key_free(w);
}

/* Signs text with k under name, giving a complete note. */
static char *sign_raw(const rete_seckey *k, const char *name, const char *text)
{
	uint8_t blob[68];
	char *line, *note;

	rete_checkpoint_key_id(blob, name, k->pub.ed);
	crypto_sign_detached(blob + 4, NULL, (const uint8_t *)text, strlen(text), k->ed_sk);
	line = sig_line(name, blob, sizeof(blob));
	note = malloc(strlen(text) + strlen(line) + 2);
	assert_non_null(note);
	sprintf(note, "%s\n%s", text, line);
	free(line);
	return note;
}

static void test_extension_lines(void **state)
{
	rete_seckey *k = tu_key_from_seed(0);
	const char *text = ORIGIN "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
				  "extension line\n";
	char *note = sign_raw(k, ORIGIN, text);
	rete_checkpoint cp;
	uint8_t root[32];
	rete_msg m;

	(void)state;
	root8(root);
	if (rete_checkpoint_verify(note, strlen(note), ORIGIN, &k->pub, &cp, &m) != RETE_OK)
		fail_msg("extension line refused: %s", m.text);
	assert_memory_equal(cp.root, root, 32);
	free(note);
	tu_key_free(k);
}

typedef struct bad_note {
	const char *note;
	const char *needle; /* a word the sentence must contain */
} bad_note;

#define SIG                                                                                        \
	"\xe2\x80\x94 rete.example/mantova "                                                       \
	"fK036wvfKx0jplzFHWxfYSZs+TUxqAIVtGEckSKC3Q5YKYWOtTGEFwNY0gK3+oH+uQ1Ancq0T/"               \
	"CifjUqNJ/xlq4z6Qw=\n"
#define ROOT "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="

/* Epochs (a declared restore): epoch 1 notes are the plain ones; from
 * epoch 2 on one "epoch N" line follows the root, signed with the rest. */
static void test_epoch_line(void **state)
{
	rete_seckey *k = tu_key_from_seed(9);
	rete_msg m = {{0}};
	uint8_t root[32];
	char *plain = NULL, *one = NULL, *two = NULL, *bad;
	uint32_t epoch = 0;
	rete_checkpoint cp;

	(void)state;
	root8(root);
	assert_int_equal(rete_checkpoint_sign(ORIGIN, 8, root, k, &plain, &m), RETE_OK);
	assert_int_equal(rete_checkpoint_sign_epoch(ORIGIN, 8, root, 1, k, &one, &m), RETE_OK);
	assert_string_equal(plain, one);
	assert_int_equal(rete_checkpoint_epoch(one, strlen(one), &epoch, &m), RETE_OK);
	assert_int_equal(epoch, 1);

	assert_int_equal(rete_checkpoint_sign_epoch(ORIGIN, 8, root, 2, k, &two, &m), RETE_OK);
	assert_non_null(strstr(two, "=\nepoch 2\n\n"));
	assert_int_equal(rete_checkpoint_verify(two, strlen(two), ORIGIN, &k->pub, &cp, &m),
			 RETE_OK);
	assert_true(cp.size == 8);
	assert_int_equal(rete_checkpoint_epoch(two, strlen(two), &epoch, &m), RETE_OK);
	assert_int_equal(epoch, 2);
	/* the line is signed: epoch 3 in its place breaks the signature */
	bad = replace(two, "epoch 2", "epoch 3");
	expect_badsig(bad, ORIGIN, &k->pub, "");
	free(bad);
	/* malformed epoch lines are refused with the line */
	const char *wrong[] = {"epoch 0", "epoch 1", "epoch 02", "epoch x", "epoch 99999999999"};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		bad = replace(two, "epoch 2", wrong[i]);
		epoch = 7;
		assert_int_equal(rete_checkpoint_epoch(bad, strlen(bad), &epoch, &m), RETE_EINVAL);
		assert_non_null(strstr(m.text, "not an epoch line"));
		free(bad);
	}
	free(plain);
	free(one);
	free(two);
	tu_key_free(k);
}

static void test_malformed(void **state)
{
	static const bad_note bad[] = {
	    {"", "empty"},
	    {ORIGIN "\n8\n" ROOT "\n" SIG, "no blank line"},
	    {ORIGIN "\n8\n" ROOT "\n\n" SIG "\n", "no signature lines"},
	    {ORIGIN "\n08\n" ROOT "\n\n" SIG, "leading zero"},
	    {ORIGIN "\n00\n" ROOT "\n\n" SIG, "leading zero"},
	    {ORIGIN "\n+8\n" ROOT "\n\n" SIG, "not a decimal number"},
	    {ORIGIN "\n8 \n" ROOT "\n\n" SIG, "not a decimal number"},
	    {ORIGIN "\n18446744073709551616\n" ROOT "\n\n" SIG, "larger than"},
	    {ORIGIN "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQy=\n\n" SIG, "base64"},
	    {ORIGIN "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n\n" SIG, "base64"},
	    {ORIGIN "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQw==\n\n" SIG, "exactly 32"},
	    {ORIGIN "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n\n" SIG, "base64"},
	    {ORIGIN "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=\n\n" SIG, "base64"},
	    {ORIGIN "\t\n8\n" ROOT "\n\n" SIG, "control character"},
	    {ORIGIN "\r\n8\n" ROOT "\n\n" SIG, "control character"},
	    {ORIGIN "\n8\n" ROOT "\n\n" SIG "\x7f", "control character"},
	    {"rete\xc2\x85.example\n8\n" ROOT "\n\n" SIG, "control character"},
	    {"rete\xc0\xae.example\n8\n" ROOT "\n\n" SIG, "invalid UTF-8"},
	    {"rete\xed\xa0\x80.example\n8\n" ROOT "\n\n" SIG, "invalid UTF-8"},
	    {ORIGIN "\n8\n" ROOT "\n\n" SIG "x", "newline"},
	    {ORIGIN "\n8\n\n" SIG, "needs origin"},
	    {ORIGIN "\n\n" ROOT "\n\n" SIG, "is empty"},
	    {"\n\n" SIG, "no text"},
	    {ORIGIN "\n8\n" ROOT "\n\n", "no signature lines"},
	    {ORIGIN "\n8\n" ROOT "\n\n- rete.example/mantova AAAA\n", "not a signature line"},
	    {ORIGIN "\n8\n" ROOT "\n\n\xe2\x80\x94 rete.example/mantova\n", "needs a key name"},
	    {ORIGIN "\n8\n" ROOT "\n\n\xe2\x80\x94  AAAAAAAA\n", "key name"},
	    {ORIGIN "\n8\n" ROOT "\n\n\xe2\x80\x94 a+b AAAAAAAA\n", "contains '+'"},
	    {ORIGIN "\n8\n" ROOT "\n\n\xe2\x80\x94 k AAAA\n", "key ID and a signature"},
	    {ORIGIN "\n8\n" ROOT "\n\n\xe2\x80\x94 k AAAAAAA*\n", "not standard base64"},
	    {ORIGIN "\n8\n" ROOT "\n\n\xe2\x80\x94 k AAAAAAAA \n", "not standard base64"},
	    /* split at the LAST blank line: the first signature line
	     * becomes text followed by an empty line */
	    {ORIGIN "\n8\n" ROOT "\n\n" SIG "\n" SIG, "is empty"},
	};
	rete_seckey *k = tu_key_from_seed(0);

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rete_checkpoint cp;
		rete_msg m = {{0}}, mv = {{0}};
		rete_err err = rete_checkpoint_parse(bad[i].note, strlen(bad[i].note), &cp, &m);

		if (err != RETE_EINVAL)
			fail_msg("case %zu: parse gave %d (%s)", i, err, m.text);
		if (strstr(m.text, bad[i].needle) == NULL)
			fail_msg("case %zu: sentence '%s' lacks '%s'", i, m.text, bad[i].needle);
		assert_int_equal(rete_checkpoint_verify(bad[i].note, strlen(bad[i].note), ORIGIN,
							&k->pub, &cp, &mv),
				 RETE_EINVAL);
		assert_string_equal(mv.text, m.text);
	}
	/* An embedded NUL: the length, not strlen, is what counts. */
	{
		char buf[256];
		size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", expected_note);
		rete_checkpoint cp;
		rete_msg m = {{0}};

		assert_int_equal(rete_checkpoint_parse(buf, n, &cp, &m), RETE_OK);
		buf[3] = '\0';
		assert_int_equal(rete_checkpoint_parse(buf, n, &cp, &m), RETE_EINVAL);
		assert_non_null(strstr(m.text, "control character"));
	}
	/* More than 100 signature lines. */
	{
		size_t cap = strlen(expected_note) + 101 * strlen(SIG) + 1;
		char *many = malloc(cap);
		rete_checkpoint cp;
		rete_msg m = {{0}};

		assert_non_null(many);
		strcpy(many, expected_note);
		for (int i = 0; i < 100; i++)
			strcat(many, SIG);
		assert_int_equal(rete_checkpoint_parse(many, strlen(many), &cp, &m), RETE_EINVAL);
		assert_non_null(strstr(m.text, "more than 100"));
		free(many);
	}
	tu_key_free(k);
}

static void test_sign_refusals(void **state)
{
	rete_seckey *k = tu_key_from_seed(0);
	const char *bad_origins[] = {"", "has space", "a+b", "tab\there", "nl\nx"};
	uint8_t root[32] = {0};
	char *note = (char *)1;
	rete_msg m = {{0}};

	(void)state;
	for (size_t i = 0; i < sizeof(bad_origins) / sizeof(bad_origins[0]); i++) {
		assert_int_equal(rete_checkpoint_sign(bad_origins[i], 1, root, k, &note, &m),
				 RETE_EINVAL);
		assert_null(note);
		assert_non_null(strstr(m.text, "checkpoint origin"));
	}
	/* A public half that does not belong to the secret key. */
	k->pub.ed[0] ^= 1;
	assert_int_equal(rete_checkpoint_sign(ORIGIN, 1, root, k, &note, &m), RETE_ECRYPTO);
	assert_null(note);
	k->pub.ed[0] ^= 1;
	/* A bad key name given to verify. */
	assert_int_equal(
	    rete_checkpoint_verify(expected_note, strlen(expected_note), "a b", &k->pub, NULL, &m),
	    RETE_EINVAL);
	tu_key_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_text),	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_tampering),	    cmocka_unit_test(test_foreign_signatures),
	    cmocka_unit_test(test_extension_lines), cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_sign_refusals),   cmocka_unit_test(test_epoch_line),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
