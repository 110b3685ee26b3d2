/* fuzz_cosign.c — libFuzzer target: cosignature lines and witness policies
 * (store/cosign.h).
 *
 * The first byte chooses what the rest is:
 *  - even: a checkpoint note as an agent or the broker receives it (a
 *    CheckpointQuery answer, a Query.cosign's note): rete_cosign_body_len,
 *    rete_cosign_verify under the witness name FUZZ_WITNESS with the fuzz
 *    key, rete_cosign_line, rete_cosign_add and rete_cosign_strip;
 *  - odd: a witness policy file, parsed and checked against a cosigned note.
 * The input is copied to exactly its length (and NUL-terminated only where
 * the API takes a C string), so ASan sees a read past the end. Properties
 * besides "no crash, no leak, no UB":
 *  - cosigning works exactly when the note parses; the line made, added to
 *    the note, verifies, and stripping to the log's key name removes it;
 *  - a note that verifies for FUZZ_WITNESS parses;
 *  - a policy that parses has 1..RETE_WITNESS_MAX witnesses and a quorum
 *    from 1 to their number.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cosign.h"
#include "fuzz_common.h"

#define FUZZ_WITNESS "fuzz.witness"

static void note_mode(const char *note, size_t size)
{
	const rete_seckey *key = fuzz_key();
	size_t body = 0;
	rete_msg m;
	rete_err be = rete_cosign_body_len(note, size, &body, &m);
	if (be == RETE_OK && (body == 0 || body >= size || note[body - 1] != '\n'))
		fuzz_fail("rete_cosign_body_len gave %zu of %zu", body, size);
	uint64_t t = 0;
	rete_err ve = rete_cosign_verify(note, size, FUZZ_WITNESS, &key->pub, &t, &m);
	if (ve == RETE_OK && be != RETE_OK)
		fuzz_fail("a note verifies for the witness but does not parse");

	char *line = NULL;
	rete_err le = rete_cosign_line(note, size, FUZZ_WITNESS, key, 1767225600, &line, &m);
	if ((le == RETE_OK) != (be == RETE_OK))
		fuzz_fail("cosigning (%d) disagrees with parsing (%d): %s", le, be, m.text);
	if (le != RETE_OK)
		return;
	char *added = NULL, *stripped = NULL;
	size_t alen = 0, slen = 0;
	if (rete_cosign_add(note, size, line, &added, &alen, &m) != RETE_OK) {
		/* only a note already holding the most signature lines refuses */
		if (strstr(m.text, "signature lines") == NULL)
			fuzz_fail("adding a line just made failed: %s", m.text);
		free(line);
		return;
	}
	if (rete_cosign_verify(added, alen, FUZZ_WITNESS, &key->pub, &t, &m) != RETE_OK ||
	    t != 1767225600)
		fuzz_fail("a line just made and added does not verify: %s", m.text);
	if (rete_cosign_strip(added, alen, FUZZ_ORIGIN, &stripped, &slen, &m) != RETE_OK)
		fuzz_fail("stripping a note that parses failed: %s", m.text);
	if (rete_cosign_verify(stripped, slen, FUZZ_WITNESS, &key->pub, NULL, &m) == RETE_OK)
		fuzz_fail("the witness line survived stripping");
	free(stripped);
	free(added);
	free(line);
}

static void policy_mode(const char *text, size_t size)
{
	/* a note with the broker's and the witness's lines, made once */
	static char *cosigned;
	rete_msg m;
	if (cosigned == NULL) {
		uint8_t root[RETE_MERKLE_HASH] = {1};
		char *note = NULL, *line = NULL;
		size_t n;
		if (rete_checkpoint_sign(FUZZ_ORIGIN, 3, root, fuzz_key(), &note, &m) != RETE_OK ||
		    rete_cosign_line(note, strlen(note), FUZZ_WITNESS, fuzz_key(), 1, &line, &m) !=
			RETE_OK ||
		    rete_cosign_add(note, strlen(note), line, &cosigned, &n, &m) != RETE_OK)
			fuzz_fail("setting up the cosigned note: %s", m.text);
		free(note);
		free(line);
	}
	rete_witness_policy *p = NULL;
	if (rete_witness_policy_parse(text, size, &p, &m) != RETE_OK) {
		if (p != NULL)
			fuzz_fail("a refused policy was returned");
		return;
	}
	size_t n = rete_witness_policy_count(p), q = rete_witness_policy_quorum(p);
	if (n == 0 || n > RETE_WITNESS_MAX || q == 0 || q > n)
		fuzz_fail("a policy of %zu witnesses with quorum %zu", n, q);
	for (size_t i = 0; i < n; i++)
		if (rete_witness_policy_name(p, i) == NULL ||
		    rete_witness_policy_name(p, i)[0] == 0 || rete_witness_policy_key(p, i) == NULL)
			fuzz_fail("witness %zu has no name or key", i);
	(void)rete_witness_policy_check(p, cosigned, strlen(cosigned), &m);
	rete_witness_policy_free(&p);
	if (p != NULL)
		fuzz_fail("rete_witness_policy_free left the pointer");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t n = size - 1;
	char *copy = malloc(n ? n : 1);
	if (!copy)
		abort();
	if (n)
		memcpy(copy, data + 1, n);
	if (data[0] % 2 == 0)
		note_mode(copy, n);
	else
		policy_mode(copy, n);
	free(copy);
	return 0;
}
