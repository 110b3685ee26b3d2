/* test_tsa.c — RFC 3161 time stamps over checkpoint notes (store/tsa.h)
 * against a real local TSA (tests/tsa/: a test CA and a TSA certificate
 * made with the openssl command, rete-test-tsa answering with OpenSSL's
 * TS_RESP_CTX on 127.0.0.1). Nothing reaches the internet.
 *
 *   token verifies   a token for a signed checkpoint note verifies online
 *                    and offline against the note and the CA, its genTime
 *                    lies within the test's clock window, its TSA name is
 *                    the TSA certificate's; `openssl ts -verify` accepts
 *                    it too (how a third party checks it)
 *   wrong things     the token against another note, another CA, every
 *                    flipped byte of the token: each refused with its
 *                    sentence, never a crash
 *   wrong answers    a TSA answering another nonce, garbage, a rejection,
 *                    HTTP 500, an answer over the bound; a TSA that is
 *                    down (and back up again on the same URL)
 *   wrong input      not a checkpoint note, not an http(s) URL, an answer
 *                    with bytes after its end, no CA file
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "keys.h"
#include "local_tsa.h"
#include "testutil.h"
#include "tsa.h"

#define ORIGIN "tsa.test/log"

typedef struct fixture {
	local_tsa *tsa;
	rete_seckey *key;
	char *note;  /* a signed checkpoint note (size 7) */
	char *other; /* another one (size 8) */
} fixture;

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *note_of(const rete_seckey *k, uint64_t size, uint8_t fill)
{
	uint8_t root[RETE_MERKLE_HASH];
	char *note = NULL;
	rete_msg m;

	memset(root, fill, sizeof(root));
	assert_int_equal(rete_checkpoint_sign(ORIGIN, size, root, k, &note, &m), RETE_OK);
	return note;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	uint8_t seed[RETE_SEED_LEN];
	rete_msg m;

	if (f == NULL || rete_tsa_global_init(&m) != RETE_OK)
		return -1;
	memset(seed, 7, sizeof(seed));
	if (rete_seckey_from_seed(&f->key, seed, &m) != RETE_OK)
		return -1;
	if (local_tsa_open(&f->tsa, RETE_BIN_DIR) != 0)
		return -1;
	f->note = note_of(f->key, 7, 0x11);
	f->other = note_of(f->key, 8, 0x22);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f != NULL) {
		local_tsa_close(&f->tsa);
		rete_seckey_free(&f->key);
		free(f->note);
		free(f->other);
		free(f);
	}
	rete_tsa_global_cleanup();
	return 0;
}

/* Each test starts with the TSA up and answering "ok". */
static int before(void **state)
{
	fixture *f = *state;
	if (local_tsa_start(f->tsa) != 0 || local_tsa_mode(f->tsa, "ok") != 0)
		return -1;
	return 0;
}

static rete_err stamp(fixture *f, const char *note, const char *ca, uint8_t **tok, size_t *len,
		      rete_tsa_info *info, rete_msg *m)
{
	rete_tsa_http http = {.url = f->tsa->lt_url, .timeout_ms = 20000};
	return rete_tsa_stamp(&http, note, strlen(note), ca, tok, len, info, m);
}

/* Expects call to fail with code and a sentence (in the caller's m)
 * containing want, and shows the sentence. */
#define expect_refused(call, code, want)                                                           \
	do {                                                                                       \
		rete_err e_ = call;                                                                \
		printf("  %s -> %s: %s\n", #code, rete_strerror(e_), m.text);                      \
		assert_int_equal(e_, code);                                                        \
		if (strstr(m.text, want) == NULL)                                                  \
			fail_msg("sentence '%s' lacks '%s'", m.text, want);                        \
	} while (0)

static void test_token_verifies(void **state)
{
	fixture *f = *state;
	uint8_t *tok = NULL;
	size_t len = 0;
	rete_tsa_info info, off;
	uint8_t hash[RETE_TSA_HASH_LEN];
	rete_msg m = {""};
	int64_t before_ms, after_ms;
	char path[4200], body[4200], note_path[4200], *out = NULL;

	before_ms = wall_ms();
	assert_int_equal(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, &info, &m), RETE_OK);
	after_ms = wall_ms();
	assert_non_null(tok);
	assert_true(len > 100);
	printf("  token %zu bytes, genTime %lld (window %lld..%lld), TSA '%s', serial %s, "
	       "policy %s\n",
	       len, (long long)info.gen_time_ms, (long long)before_ms, (long long)after_ms,
	       info.tsa_name, info.serial, info.policy);
	/* The TSA's clock is this machine's: genTime (to the millisecond, cut
	 * not rounded) lies within the window the request was made in. */
	assert_true(info.gen_time_ms >= before_ms - 1);
	assert_true(info.gen_time_ms <= after_ms);
	assert_non_null(strstr(info.tsa_name, "CN=rete test TSA"));
	assert_string_equal(info.policy, "1.2.3.4.1");
	assert_int_equal(rete_tsa_note_hash(f->note, strlen(f->note), hash, &m), RETE_OK);
	assert_memory_equal(info.hash, hash, sizeof(hash));

	/* Offline: the stored bytes, the note, the CA. */
	assert_int_equal(
	    rete_tsa_token_verify(tok, len, f->note, strlen(f->note), f->tsa->lt_ca, &off, &m),
	    RETE_OK);
	assert_int_equal(off.gen_time_ms, info.gen_time_ms);
	assert_string_equal(off.tsa_name, info.tsa_name);
	assert_string_equal(off.serial, info.serial);

	/* The same token through OpenSSL's own command, as a third party
	 * checks it (docs/tsa.md's commands): the data is the note's signed
	 * text (the lines before the blank line), the token the stored DER. */
	snprintf(path, sizeof(path), "%s/token.der", f->tsa->lt_dir);
	snprintf(note_path, sizeof(note_path), "%s/checkpoint.txt", f->tsa->lt_dir);
	snprintf(body, sizeof(body), "%s/signed-text.txt", f->tsa->lt_dir);
	assert_int_equal(tu_write_file(path, tok, len), 0);
	assert_int_equal(tu_write_file(note_path, f->note, strlen(f->note)), 0);
	assert_int_equal(tu_run(&out,
				"awk 'NF == 0 { exit } { print }' '%s' > '%s' && "
				"openssl ts -verify -token_in -in '%s' -data '%s' -CAfile '%s'",
				note_path, body, path, body, f->tsa->lt_ca),
			 0);
	printf("  openssl ts -verify: %s", out);
	assert_non_null(strstr(out, "Verification: OK"));
	free(out);
	out = NULL;
	/* ... and OpenSSL refuses it against the other CA, or for the whole
	 * note with its signature lines (not what was stamped). */
	assert_int_not_equal(tu_run(&out,
				    "openssl ts -verify -token_in -in '%s' -data '%s' "
				    "-CAfile '%s'",
				    path, body, f->tsa->lt_other_ca),
			     0);
	free(out);
	out = NULL;
	assert_int_equal(tu_write_file(body, f->note, strlen(f->note)), 0);
	assert_int_not_equal(tu_run(&out,
				    "openssl ts -verify -token_in -in '%s' -data '%s' "
				    "-CAfile '%s'",
				    path, body, f->tsa->lt_ca),
			     0);
	free(out);
	free(tok);
}

static void test_token_other_note_other_ca(void **state)
{
	fixture *f = *state;
	uint8_t *tok = NULL;
	size_t len = 0;
	rete_msg m = {""};

	assert_int_equal(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_OK);
	expect_refused(
	    rete_tsa_token_verify(tok, len, f->other, strlen(f->other), f->tsa->lt_ca, NULL, &m),
	    RETE_EPROOF, "the token of another note");
	expect_refused(rete_tsa_token_verify(tok, len, f->note, strlen(f->note),
					     f->tsa->lt_other_ca, NULL, &m),
		       RETE_EBADSIG, "does not verify against the CA");
	/* A stamp checked against the other CA fails at once, too. */
	free(tok);
	tok = NULL;
	expect_refused(stamp(f, f->note, f->tsa->lt_other_ca, &tok, &len, NULL, &m), RETE_EBADSIG,
		       "does not verify against the CA");
	assert_null(tok);
	expect_refused(rete_tsa_token_verify((const uint8_t *)"x", 1, f->note, strlen(f->note),
					     f->tsa->lt_ca, NULL, &m),
		       RETE_EDECODE, "not a DER TimeStampToken");
	expect_refused(rete_tsa_token_verify((const uint8_t *)"x", 1, "not a note\n", 11,
					     f->tsa->lt_ca, NULL, &m),
		       RETE_EINVAL, "cannot time-stamp the note");
}

/* Every byte of the token, flipped (all its bits, then its lowest bit):
 * never accepted, never a crash. */
static void test_token_flipped_bytes(void **state)
{
	fixture *f = *state;
	uint8_t *tok = NULL;
	size_t len = 0, refused = 0;
	rete_msg m = {""};
	static const uint8_t masks[] = {0xff, 0x01};
	char first[4][sizeof(m.text)];
	size_t kinds = 0;

	assert_int_equal(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_OK);
	for (size_t k = 0; k < sizeof(masks); k++)
		for (size_t i = 0; i < len; i++) {
			tok[i] ^= masks[k];
			rete_err e = rete_tsa_token_verify(tok, len, f->note, strlen(f->note),
							   f->tsa->lt_ca, NULL, &m);
			tok[i] ^= masks[k];
			if (e == RETE_OK)
				fail_msg("byte %zu of %zu flipped with 0x%02x still verifies", i,
					 len, masks[k]);
			refused++;
			/* Keep a few different sentences for the log. */
			bool seen = false;
			for (size_t j = 0; j < kinds; j++)
				if (strncmp(first[j], m.text, 40) == 0)
					seen = true;
			if (!seen && kinds < 4)
				snprintf(first[kinds++], sizeof(first[0]), "%s", m.text);
		}
	printf("  %zu flipped tokens refused; e.g.:\n", refused);
	for (size_t j = 0; j < kinds; j++)
		printf("    %s\n", first[j]);
	assert_int_equal(
	    rete_tsa_token_verify(tok, len, f->note, strlen(f->note), f->tsa->lt_ca, NULL, &m),
	    RETE_OK);
	free(tok);
}

static void test_wrong_answers(void **state)
{
	fixture *f = *state;
	uint8_t *tok = NULL;
	size_t len = 0;
	rete_msg m = {""};

	assert_int_equal(local_tsa_mode(f->tsa, "wrong-nonce"), 0);
	expect_refused(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_EPROOF,
		       "nonce");
	assert_int_equal(local_tsa_mode(f->tsa, "garbage"), 0);
	expect_refused(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_EDECODE,
		       "not a DER TimeStampResp");
	assert_int_equal(local_tsa_mode(f->tsa, "reject"), 0);
	expect_refused(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_EREFUSED,
		       "status rejection (2), failure badAlg");
	assert_non_null(strstr(m.text, "text '"));
	assert_int_equal(local_tsa_mode(f->tsa, "http-error"), 0);
	expect_refused(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_ENET,
		       "answered HTTP 500");
	assert_int_equal(local_tsa_mode(f->tsa, "huge"), 0);
	expect_refused(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_ENET,
		       "more than");
	assert_null(tok);
	assert_int_equal(len, 0);
	/* And it answers well again. */
	assert_int_equal(local_tsa_mode(f->tsa, "ok"), 0);
	assert_int_equal(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_OK);
	free(tok);
}

static void test_tsa_down_and_back(void **state)
{
	fixture *f = *state;
	uint8_t *tok = NULL;
	size_t len = 0;
	rete_msg m = {""};
	char url[64];

	snprintf(url, sizeof(url), "%s", f->tsa->lt_url);
	local_tsa_stop(f->tsa);
	expect_refused(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_ENET,
		       "cannot connect to the TSA at http://127.0.0.1:");
	assert_null(tok);
	assert_int_equal(local_tsa_start(f->tsa), 0);
	assert_string_equal(url, f->tsa->lt_url); /* the same URL */
	assert_int_equal(stamp(f, f->note, f->tsa->lt_ca, &tok, &len, NULL, &m), RETE_OK);
	free(tok);
}

/* The three steps one by one: a good answer checked against another query
 * (another nonce and hash), with bytes after its end, without a CA. */
static void test_steps(void **state)
{
	fixture *f = *state;
	rete_tsa_query *q = NULL, *q2 = NULL;
	rete_tsa_http http = {.url = f->tsa->lt_url};
	uint8_t *resp = NULL, *tok = NULL, *longer;
	size_t resp_len = 0, req_len, tok_len = 0;
	const uint8_t *req;
	rete_tsa_info info;
	rete_msg m = {""};

	assert_int_equal(rete_tsa_query_new(&q, f->note, strlen(f->note), &m), RETE_OK);
	assert_int_equal(rete_tsa_query_new(&q2, f->note, strlen(f->note), &m), RETE_OK);
	assert_true(rete_tsa_query_nonce(q) != rete_tsa_query_nonce(q2));
	req = rete_tsa_query_der(q, &req_len);
	assert_int_equal(rete_tsa_post(&http, req, req_len, &resp, &resp_len, &m), RETE_OK);
	expect_refused(
	    rete_tsa_response_check(q2, resp, resp_len, f->tsa->lt_ca, &tok, &tok_len, &info, &m),
	    RETE_EPROOF, "nonce");
	assert_null(tok);
	expect_refused(rete_tsa_response_check(q, resp, resp_len, "/nonexistent/ca.pem", &tok,
					       &tok_len, &info, &m),
		       RETE_EIO, "cannot read the TSA CA certificates from '/nonexistent/ca.pem'");
	longer = malloc(resp_len + 1);
	assert_non_null(longer);
	memcpy(longer, resp, resp_len);
	longer[resp_len] = 0;
	expect_refused(rete_tsa_response_check(q, longer, resp_len + 1, f->tsa->lt_ca, &tok,
					       &tok_len, &info, &m),
		       RETE_EDECODE, "bytes after its end");
	free(longer);
	assert_int_equal(
	    rete_tsa_response_check(q, resp, resp_len, f->tsa->lt_ca, &tok, &tok_len, &info, &m),
	    RETE_OK);
	free(tok);
	free(resp);
	rete_tsa_query_free(&q);
	rete_tsa_query_free(&q2);
	rete_tsa_query_free(&q2); /* NULL accepted */

	expect_refused(rete_tsa_query_new(&q, "origin\n7\n", 9, &m), RETE_EINVAL,
		       "cannot time-stamp the note");
	assert_null(q);
	http.url = "ftp://127.0.0.1/tsa";
	expect_refused(rete_tsa_post(&http, (const uint8_t *)"x", 1, &resp, &resp_len, &m),
		       RETE_EINVAL, "neither http:// nor https://");
	/* Credentials in a URL never reach a sentence. */
	http.url = "http://user:secret@127.0.0.1:1/tsa";
	expect_refused(rete_tsa_post(&http, (const uint8_t *)"x", 1, &resp, &resp_len, &m),
		       RETE_ENET, "http://127.0.0.1:1/tsa");
	assert_null(strstr(m.text, "secret"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_token_verifies, before),
	    cmocka_unit_test_setup(test_token_other_note_other_ca, before),
	    cmocka_unit_test_setup(test_token_flipped_bytes, before),
	    cmocka_unit_test_setup(test_wrong_answers, before),
	    cmocka_unit_test_setup(test_tsa_down_and_back, before),
	    cmocka_unit_test_setup(test_steps, before),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
