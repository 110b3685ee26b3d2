/* test_note_body.c — where each reader of a checkpoint note takes its body
 * (the text before the blank line that opens the signature lines): the
 * strict readers (rete_cosign_body_len, rete_tsa_note_hash) refuse a
 * malformed note with the sentences they always gave, and find the same
 * body in a well-formed one however many cosignatures follow; the lenient
 * one (rete_checkpoint_body_len, what the store compares when a note for a
 * size is replaced, the evidence bundle's and the metrics' counting of
 * signature lines) finds it in anything, a broken signature line included,
 * and says when there is no blank line. */
#define _GNU_SOURCE
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
#include "tsa.h"

#define ORIGIN "rete.example/mantova"

/* The text of the notes below: origin, size, root (its body). */
#define SIG_WHY                                                                                    \
	"the signature 'AAAA' is not standard base64 (with padding) of a key ID and a signature"
#define BODY "rete.example/mantova\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"

/* A note signed by the broker (seed 0) over BODY, then with a witness's
 * cosignature (seed 0x40) added: both malloc'd. */
static void notes(char **signed_note, char **cosigned)
{
	rete_seckey *b = tu_key_from_seed(0), *w = tu_key_from_seed(0x40);
	uint8_t root[32];
	size_t n = 0, len;
	char *line = NULL;
	rete_msg m = {{0}};

	assert_int_equal(sodium_base642bin(root, sizeof(root),
					   "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=", 44, NULL,
					   &n, NULL, sodium_base64_VARIANT_ORIGINAL),
			 0);
	assert_int_equal(rete_checkpoint_sign(ORIGIN, 8, root, b, signed_note, &m), RETE_OK);
	assert_int_equal(rete_cosign_line(*signed_note, strlen(*signed_note), "witness.example", w,
					  1790000000, &line, &m),
			 RETE_OK);
	assert_int_equal(
	    rete_cosign_add(*signed_note, strlen(*signed_note), line, cosigned, &len, &m), RETE_OK);
	free(line);
	tu_key_free(b);
	tu_key_free(w);
}

static void test_strict_readers(void **state)
{
	char *note, *cosigned, *broken;
	size_t body = 0;
	uint8_t h1[RETE_TSA_HASH_LEN], h2[RETE_TSA_HASH_LEN], want[RETE_TSA_HASH_LEN];
	rete_msg m = {{0}};
	(void)state;

	notes(&note, &cosigned);
	assert_int_equal(strncmp(note, BODY "\n", strlen(BODY "\n")), 0);
	crypto_hash_sha256(want, (const unsigned char *)BODY, strlen(BODY));

	/* a good note, with and without the cosignature: the same body */
	assert_int_equal(rete_cosign_body_len(note, strlen(note), &body, &m), RETE_OK);
	assert_int_equal(body, strlen(BODY));
	body = 0;
	assert_int_equal(rete_cosign_body_len(cosigned, strlen(cosigned), &body, &m), RETE_OK);
	assert_int_equal(body, strlen(BODY));
	assert_int_equal(rete_tsa_note_hash(note, strlen(note), h1, &m), RETE_OK);
	assert_int_equal(rete_tsa_note_hash(cosigned, strlen(cosigned), h2, &m), RETE_OK);
	assert_memory_equal(h1, want, sizeof(want));
	assert_memory_equal(h2, want, sizeof(want));

	/* a signature line that is not one: refused, with the parser's sentence */
	assert_true(asprintf(&broken, "%s\xe2\x80\x94 witness.example AAAA\n", note) > 0);
	assert_int_equal(rete_cosign_body_len(broken, strlen(broken), &body, &m), RETE_EINVAL);
	assert_string_equal(m.text, "note line 6: " SIG_WHY);
	assert_int_equal(rete_tsa_note_hash(broken, strlen(broken), h1, &m), RETE_EINVAL);
	assert_string_equal(m.text, "cannot time-stamp the note: note line 6: " SIG_WHY);
	free(broken);

	/* no blank line at all */
	assert_int_equal(rete_cosign_body_len(BODY, strlen(BODY), &body, &m), RETE_EINVAL);
	assert_string_equal(m.text, "the checkpoint note has no blank line; a signed note is "
				    "text, a blank line, then signature lines");
	assert_int_equal(rete_tsa_note_hash(BODY, strlen(BODY), h1, &m), RETE_EINVAL);
	assert_string_equal(m.text, "cannot time-stamp the note: the checkpoint note has no "
				    "blank line; a signed note is text, a blank line, then "
				    "signature lines");

	/* a blank line inside the text: not a note */
	assert_true(asprintf(&broken, "rete.example/mantova\n\n%s", note + strlen(ORIGIN "\n")) >
		    0);
	assert_int_equal(rete_cosign_body_len(broken, strlen(broken), &body, &m), RETE_EINVAL);
	assert_int_equal(rete_tsa_note_hash(broken, strlen(broken), h1, &m), RETE_EINVAL);
	free(broken);
	free(note);
	free(cosigned);
}

static void test_lenient_body(void **state)
{
	char *note, *cosigned, *broken;
	const size_t body = strlen(BODY);
	(void)state;

	notes(&note, &cosigned);
	assert_int_equal(rete_checkpoint_body_len(note, strlen(note)), body);
	assert_int_equal(rete_checkpoint_body_len(cosigned, strlen(cosigned)), body);
	/* a broken signature line: still the same body (the store keeps a
	 * stored note's time-stamp token by it: test_store_timestamps) */
	assert_true(asprintf(&broken, "%s\xe2\x80\x94 witness.example AAAA\n", note) > 0);
	assert_int_equal(rete_checkpoint_body_len(broken, strlen(broken)), body);
	free(broken);
	/* no blank line: the whole length, whatever the length */
	assert_int_equal(rete_checkpoint_body_len(BODY, strlen(BODY)), strlen(BODY));
	assert_int_equal(rete_checkpoint_body_len("", 0), 0);
	assert_int_equal(rete_checkpoint_body_len("\n", 1), 1);
	assert_int_equal(rete_checkpoint_body_len("a\n", 2), 2);
	/* the first blank line counts, and len bounds the search */
	assert_int_equal(rete_checkpoint_body_len("\n\n", 2), 1);
	assert_int_equal(rete_checkpoint_body_len("a\n\nb\n\nc\n", 9), 2);
	assert_int_equal(rete_checkpoint_body_len("ab\n\n", 3), 3);
	free(note);
	free(cosigned);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strict_readers),
	    cmocka_unit_test(test_lenient_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
