/* test_cosign.c — cosignature/v1 lines and witness policies: the exact line
 * for a fixed key, note and time (computed independently with Python's
 * hashlib and `cryptography` Ed25519, see below), verification, forged and
 * missing cosignatures failing a policy that requires them, the quorum, and
 * malformed policies refused with a sentence. */
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
#include "cosign.h"
#include "testutil.h"

#define ORIGIN "rete.example/mantova"

/* The broker's note of test_checkpoint.c (seed 00..1f, size 8). */
static const char *const note8 =
    "rete.example/mantova\n"
    "8\n"
    "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    "\n"
    "\xe2\x80\x94 rete.example/mantova "
    "fK036wvfKx0jplzFHWxfYSZs+TUxqAIVtGEckSKC3Q5YKYWOtTGEFwNY0gK3+oH+uQ1Ancq0T/"
    "CifjUqNJ/xlq4z6Qw=\n";

/* Cosigner "comune-mantova", seed 20 21 .. 3f, time 1767225600, made with:
 *   kid = sha256(b"comune-mantova" + b"\n\x04" + pk)[:4]
 *   msg = b"cosignature/v1\ntime 1767225600\n" + body   (body: the 3 lines)
 *   line = "— comune-mantova " + b64(kid + struct.pack(">Q", T) + sk.sign(msg))
 * (Python 3, hashlib, cryptography.hazmat Ed25519PrivateKey). */
static const char *const expected_line =
    "\xe2\x80\x94 comune-mantova "
    "ljLYXQAAAABpVbkA0I8rtn6C2FxnlvqfbMGGJp24Fboil34Zpa9reG2/qHsapX/32j/jb+sOv0SAnwxv2zV9b7r1"
    "ichufpsgBKqeCg==";
static const char *const expected_pk64 = "Kay64UG8yvCyLhqU000LxzYeUm0L/hLIl5S8kyKWbdc=";
#define T0 1767225600ULL

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static char *pk64(const rete_seckey *k)
{
	char *s = malloc(64);
	assert_non_null(s);
	sodium_bin2base64(s, 64, k->pub.ed, 32, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* note + line + "\n", malloc'd */
static char *with_line(const char *note, const char *line)
{
	char *out = NULL;
	size_t n = 0;
	rete_msg m = {{0}};

	if (rete_cosign_add(note, strlen(note), line, &out, &n, &m) != RETE_OK)
		fail_msg("cosign_add: %s", m.text);
	assert_int_equal(n, strlen(out));
	return out;
}

static char *cosign(const char *note, const char *name, const rete_seckey *k, uint64_t t)
{
	char *line = NULL;
	rete_msg m = {{0}};

	if (rete_cosign_line(note, strlen(note), name, k, t, &line, &m) != RETE_OK)
		fail_msg("cosign_line: %s", m.text);
	return line;
}

static rete_witness_policy *policy(const char *text)
{
	rete_witness_policy *p = NULL;
	rete_msg m = {{0}};

	if (rete_witness_policy_parse(text, strlen(text), &p, &m) != RETE_OK)
		fail_msg("policy: %s", m.text);
	return p;
}

static void test_exact_line(void **state)
{
	rete_seckey *w = tu_key_from_seed(0x20);
	char *line, *k64 = pk64(w), *cos;
	uint8_t id[4], h[32], msg[14 + 2 + 32];
	uint64_t t = 0;
	rete_msg m = {{0}};

	(void)state;
	assert_string_equal(k64, expected_pk64);
	line = cosign(note8, "comune-mantova", w, T0);
	assert_string_equal(line, expected_line);

	/* The key ID recomputed: SHA-256(name || 0x0A || 0x04 || pk)[0:4]. */
	memcpy(msg, "comune-mantova", 14);
	msg[14] = 0x0a;
	msg[15] = 0x04;
	memcpy(msg + 16, w->pub.ed, 32);
	crypto_hash_sha256(h, msg, sizeof(msg));
	rete_cosign_key_id(id, "comune-mantova", w->pub.ed);
	assert_memory_equal(id, h, 4);

	cos = with_line(note8, line);
	assert_int_equal(rete_cosign_verify(cos, strlen(cos), "comune-mantova", &w->pub, &t, &m),
			 RETE_OK);
	assert_true(t == T0);
	/* The log's signature still verifies on the cosigned note. */
	{
		rete_seckey *b = tu_key_from_seed(0);
		assert_int_equal(
		    rete_checkpoint_verify(cos, strlen(cos), ORIGIN, &b->pub, NULL, &m), RETE_OK);
		tu_key_free(b);
	}
	/* The line Python made, pasted on the note, verifies here too. */
	free(cos);
	cos = malloc(strlen(note8) + strlen(expected_line) + 2);
	assert_non_null(cos);
	sprintf(cos, "%s%s\n", note8, expected_line);
	assert_int_equal(rete_cosign_verify(cos, strlen(cos), "comune-mantova", &w->pub, &t, &m),
			 RETE_OK);
	free(cos);
	free(line);
	free(k64);
	tu_key_free(w);
}

static void test_verify_refusals(void **state)
{
	rete_seckey *w = tu_key_from_seed(0x20), *x = tu_key_from_seed(0x60),
		    *b = tu_key_from_seed(0);
	char *line = cosign(note8, "comune-mantova", w, T0), *cos = with_line(note8, line), *t;
	char *bad;
	rete_msg m = {{0}};

	(void)state;
	/* missing: no line of that name */
	assert_int_equal(
	    rete_cosign_verify(note8, strlen(note8), "comune-mantova", &w->pub, NULL, &m),
	    RETE_ENOENT);
	assert_non_null(strstr(m.text, "no cosignature of 'comune-mantova'"));
	/* another key under the name: EBADSIG, not ENOENT */
	assert_int_equal(rete_cosign_verify(cos, strlen(cos), "comune-mantova", &x->pub, NULL, &m),
			 RETE_EBADSIG);
	assert_non_null(strstr(m.text, "not a cosignature by its key"));
	/* the cosignature moved onto another checkpoint (size 9) */
	t = strdup(cos);
	t[strlen(ORIGIN) + 1] = '9';
	assert_int_equal(rete_cosign_verify(t, strlen(t), "comune-mantova", &w->pub, NULL, &m),
			 RETE_EBADSIG);
	assert_non_null(strstr(m.text, "does not verify"));
	free(t);
	/* a changed time (blob bytes 4..11) under the same signature */
	{
		const char *b64 = strrchr(line, ' ') + 1;
		uint8_t blob[RETE_COSIGN_BLOB];
		char out[200], l2[256], *c2;
		size_t n = 0;

		assert_int_equal(sodium_base642bin(blob, sizeof(blob), b64, strlen(b64), NULL, &n,
						   NULL, sodium_base64_VARIANT_ORIGINAL),
				 0);
		assert_int_equal(n, RETE_COSIGN_BLOB);
		blob[11] ^= 1;
		sodium_bin2base64(out, sizeof(out), blob, n, sodium_base64_VARIANT_ORIGINAL);
		snprintf(l2, sizeof(l2), "\xe2\x80\x94 comune-mantova %s", out);
		c2 = with_line(note8, l2);
		assert_int_equal(
		    rete_cosign_verify(c2, strlen(c2), "comune-mantova", &w->pub, NULL, &m),
		    RETE_EBADSIG);
		assert_non_null(strstr(m.text, "(time 1767225601) does not verify"));
		free(c2);
	}
	/* a flipped signature byte: base64 char in the signature part */
	bad = strdup(line);
	{
		char *p = bad + strlen(bad) - 10;
		*p = *p == 'A' ? 'B' : 'A';
	}
	t = with_line(note8, bad);
	assert_int_equal(rete_cosign_verify(t, strlen(t), "comune-mantova", &w->pub, NULL, &m),
			 RETE_EBADSIG);
	free(t);
	free(bad);
	/* the broker's line is not a cosignature (key ID type 0x01) */
	assert_int_equal(rete_cosign_verify(note8, strlen(note8), ORIGIN, &b->pub, NULL, &m),
			 RETE_EBADSIG);
	/* a malformed note */
	assert_int_equal(rete_cosign_verify("x\n", 2, "comune-mantova", &w->pub, NULL, &m),
			 RETE_EINVAL);
	assert_int_equal(rete_cosign_line("x\n", 2, "comune-mantova", w, 1, &t, &m), RETE_EINVAL);
	assert_null(t);
	/* bad names */
	assert_int_equal(rete_cosign_line(note8, strlen(note8), "a b", w, 1, &t, &m), RETE_EINVAL);
	assert_int_equal(rete_cosign_line(note8, strlen(note8), "a+b", w, 1, &t, &m), RETE_EINVAL);
	assert_int_equal(rete_cosign_line(note8, strlen(note8), "", w, 1, &t, &m), RETE_EINVAL);
	assert_int_equal(rete_cosign_line(note8, strlen(note8), "a\xff", w, 1, &t, &m),
			 RETE_EINVAL); /* not UTF-8: caught by the note's own rules */
	assert_null(t);
	/* a public half that does not match */
	w->pub.ed[0] ^= 1;
	assert_int_equal(rete_cosign_line(note8, strlen(note8), "comune-mantova", w, 1, &t, &m),
			 RETE_ECRYPTO);
	w->pub.ed[0] ^= 1;
	free(cos);
	free(line);
	tu_key_free(w);
	tu_key_free(x);
	tu_key_free(b);
}

static void test_add_strip(void **state)
{
	rete_seckey *w = tu_key_from_seed(0x20), *v = tu_key_from_seed(0x40);
	char *l1 = cosign(note8, "comune-mantova", w, T0),
	     *l1b = cosign(note8, "comune-mantova", w, T0 + 5);
	char *l2 = cosign(note8, "asl-valpadana", v, T0);
	char *a, *b, *c, *s;
	size_t n;
	uint64_t t = 0;
	rete_msg m = {{0}};

	(void)state;
	a = with_line(note8, l1);
	b = with_line(a, l2);
	/* one line per name: a second cosignature replaces the first */
	c = with_line(b, l1b);
	assert_int_equal(count(c, "comune-mantova"), 1);
	assert_int_equal(count(c, "asl-valpadana"), 1);
	assert_int_equal(rete_cosign_verify(c, strlen(c), "comune-mantova", &w->pub, &t, &m),
			 RETE_OK);
	assert_true(t == T0 + 5);
	assert_int_equal(rete_cosign_verify(c, strlen(c), "asl-valpadana", &v->pub, &t, &m),
			 RETE_OK);
	/* strip back to the log's note */
	assert_int_equal(rete_cosign_strip(c, strlen(c), ORIGIN, &s, &n, &m), RETE_OK);
	assert_string_equal(s, note8);
	assert_int_equal(n, strlen(note8));
	free(s);
	/* a note holds at most RETE_NOTE_MAX_SIGS lines: the broker's and 99 */
	{
		char *full = strdup(note8), *next, name[32], *l;
		for (int i = 0; i < RETE_NOTE_MAX_SIGS - 1; i++) {
			snprintf(name, sizeof(name), "w%d", i);
			l = cosign(note8, name, w, T0);
			next = with_line(full, l);
			free(full);
			free(l);
			full = next;
		}
		l = cosign(full, "one-more", w, T0); /* the line itself is fine */
		assert_int_equal(rete_cosign_add(full, strlen(full), l, &s, NULL, &m), RETE_EINVAL);
		assert_non_null(strstr(m.text, "more than 100 signature lines"));
		assert_null(s);
		/* replacing a line of a name already there still works */
		free(l);
		l = cosign(full, "w7", w, T0 + 9);
		free(with_line(full, l));
		free(l);
		free(full);
	}
	/* malformed lines refused */
	assert_int_equal(rete_cosign_add(note8, strlen(note8), "no dash", &s, NULL, &m),
			 RETE_EINVAL);
	assert_null(s);
	assert_int_equal(
	    rete_cosign_add(note8, strlen(note8), "\xe2\x80\x94 x not-base64!", &s, NULL, &m),
	    RETE_EINVAL);
	assert_int_equal(
	    rete_cosign_add(note8, strlen(note8), "\xe2\x80\x94 x AAAA\n", &s, NULL, &m),
	    RETE_EINVAL);
	free(a);
	free(b);
	free(c);
	free(l1);
	free(l1b);
	free(l2);
	tu_key_free(w);
	tu_key_free(v);
}

static void check_policy(const rete_witness_policy *p, const char *note, rete_err want,
			 const char *needle)
{
	rete_msg m = {{0}};
	rete_err got = rete_witness_policy_check(p, note, strlen(note), &m);

	if (got != want)
		fail_msg("policy check gave %d, expected %d: %s", got, want, m.text);
	if (needle != NULL && strstr(m.text, needle) == NULL)
		fail_msg("sentence '%s' lacks '%s'", m.text, needle);
}

static void test_policy_check(void **state)
{
	rete_seckey *w = tu_key_from_seed(0x20), *v = tu_key_from_seed(0x40),
		    *x = tu_key_from_seed(0x60);
	char *kw = pk64(w), *kv = pk64(v), *text = malloc(1024);
	char *lw = cosign(note8, "comune-mantova", w, T0),
	     *lv = cosign(note8, "asl-valpadana", v, T0);
	char *lforged = cosign(note8, "asl-valpadana", x, T0); /* right name, wrong key */
	char *nw = with_line(note8, lw), *nwv = with_line(nw, lv), *nwf = with_line(nw, lforged);
	rete_witness_policy *all, *one;

	(void)state;
	snprintf(text, 1024,
		 "# the agencies of Mantova\n"
		 "witness comune-mantova %s\n"
		 "\n"
		 "  witness\tasl-valpadana   %s  \r\n",
		 kw, kv);
	all = policy(text);
	assert_int_equal(rete_witness_policy_count(all), 2);
	assert_int_equal(rete_witness_policy_quorum(all), 2);
	assert_string_equal(rete_witness_policy_name(all, 1), "asl-valpadana");
	assert_memory_equal(rete_witness_policy_key(all, 0)->ed, w->pub.ed, 32);
	strcat(text, "quorum 1\n");
	one = policy(text);
	assert_int_equal(rete_witness_policy_quorum(one), 1);

	check_policy(all, nwv, RETE_OK, "2 of 2 witnesses cosigned (need 2)");
	check_policy(all, note8, RETE_EBADSIG,
		     "0 of 2 required witnesses cosigned (need 2): missing comune-mantova, "
		     "asl-valpadana");
	check_policy(all, nw, RETE_EBADSIG,
		     "1 of 2 required witnesses cosigned (need 2): missing asl-valpadana");
	check_policy(all, nwf, RETE_EBADSIG,
		     "1 of 2 required witnesses cosigned (need 2): invalid asl-valpadana");
	check_policy(one, nwf, RETE_OK, "1 of 2 witnesses cosigned (need 1)");
	check_policy(one, nw, RETE_OK, NULL);
	check_policy(one, note8, RETE_EBADSIG, "missing comune-mantova, asl-valpadana");
	{
		/* a forged line where the name is right but the signature is not */
		char *f = strdup(lv), *nf;
		f[strlen(f) - 5] = f[strlen(f) - 5] == 'Q' ? 'R' : 'Q';
		nf = with_line(note8, f);
		check_policy(all, nf, RETE_EBADSIG,
			     "missing comune-mantova; invalid asl-valpadana");
		free(nf);
		free(f);
	}
	check_policy(all, "garbage\n", RETE_EINVAL, NULL);

	rete_witness_policy_free(&all);
	rete_witness_policy_free(&one);
	assert_null(all);
	rete_witness_policy_free(NULL);
	free(nw);
	free(nwv);
	free(nwf);
	free(lw);
	free(lv);
	free(lforged);
	free(text);
	free(kw);
	free(kv);
	tu_key_free(w);
	tu_key_free(v);
	tu_key_free(x);
}

static void expect_refused(const char *text, const char *needle)
{
	rete_witness_policy *p = (rete_witness_policy *)1;
	rete_msg m = {{0}};

	assert_int_equal(rete_witness_policy_parse(text, strlen(text), &p, &m), RETE_EINVAL);
	assert_null(p);
	if (strstr(m.text, needle) == NULL)
		fail_msg("policy '%s': sentence '%s' lacks '%s'", text, m.text, needle);
}

static void test_policy_refusals(void **state)
{
	const char *k = "Kay64UG8yvCyLhqU000LxzYeUm0L/hLIl5S8kyKWbdc=";
	char buf[512];
	rete_msg m = {{0}};
	rete_witness_policy *p = NULL;
	char *dir, path[512];

	(void)state;
	expect_refused("", "lists no witness");
	expect_refused("# nothing\n", "lists no witness");
	expect_refused("witnes a KEY\n", "line 1: unknown directive 'witnes'");
	expect_refused("witness a\n", "line 1: expected 'witness NAME KEY'");
	expect_refused("witness a b c d\n", "expected 'witness NAME KEY'");
	expect_refused("witness a AAAA\n", "is not the standard base64 of a 32-byte");
	expect_refused("witness a+b Kay64UG8yvCyLhqU000LxzYeUm0L/hLIl5S8kyKWbdc=\n", "'+'");
	snprintf(buf, sizeof(buf), "witness a %s\nwitness a %s\n", k, k);
	expect_refused(buf, "line 2: the witness 'a' is listed twice");
	snprintf(buf, sizeof(buf), "witness a %s\nwitness b %s\n", k, k);
	expect_refused(buf, "line 2: the key of 'b' is already the key of 'a'");
	snprintf(buf, sizeof(buf), "witness a %s\nquorum 2\n", k);
	expect_refused(buf, "line 2: quorum 2 is more than the 1 witnesses listed");
	snprintf(buf, sizeof(buf), "witness a %s\nquorum 0\n", k);
	expect_refused(buf, "expected 'quorum K'");
	snprintf(buf, sizeof(buf), "witness a %s\nquorum 1x\n", k);
	expect_refused(buf, "is not a number");
	snprintf(buf, sizeof(buf), "quorum 1\nwitness a %s\nquorum 1\n", k);
	expect_refused(buf, "line 3: a second 'quorum' (the first is on line 1)");
	expect_refused("witness a b\0c\n", "not the standard base64"); /* strlen: 1 line */
	assert_int_equal(rete_witness_policy_parse("witness a K\0", 12, &p, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "NUL"));

	/* a refused word at the very end of a buffer that is not NUL-terminated
	 * is quoted from its own length (found by fuzz_cosign) */
	{
		static const char *const ends[] = {"witness a AAAA", "witness a\x01 K"};
		static const char *const says[] = {"the key 'AAAA' is not",
						   "the witness name 'a\x01' contains"};
		for (int i = 0; i < 2; i++) {
			size_t n = strlen(ends[i]);
			char *exact = malloc(n);
			assert_non_null(exact);
			memcpy(exact, ends[i], n);
			assert_int_equal(rete_witness_policy_parse(exact, n, &p, &m), RETE_EINVAL);
			if (strstr(m.text, says[i]) == NULL)
				fail_msg("'%s' lacks '%s'", m.text, says[i]);
			free(exact);
		}
	}

	/* load: a file, and a missing file named */
	dir = tu_tmpdir("cosign");
	snprintf(path, sizeof(path), "%s/policy", dir);
	snprintf(buf, sizeof(buf), "witness comune-mantova %s\n", k);
	assert_int_equal(tu_write_file(path, buf, strlen(buf)), 0);
	assert_int_equal(rete_witness_policy_load(path, &p, &m), RETE_OK);
	assert_int_equal(rete_witness_policy_count(p), 1);
	rete_witness_policy_free(&p);
	snprintf(path, sizeof(path), "%s/none", dir);
	assert_int_equal(rete_witness_policy_load(path, &p, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, path));
	snprintf(path, sizeof(path), "%s/bad", dir);
	assert_int_equal(tu_write_file(path, "quorum 1\n", 9), 0);
	assert_int_equal(rete_witness_policy_load(path, &p, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, path));
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_line),	    cmocka_unit_test(test_verify_refusals),
	    cmocka_unit_test(test_add_strip),	    cmocka_unit_test(test_policy_check),
	    cmocka_unit_test(test_policy_refusals),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
