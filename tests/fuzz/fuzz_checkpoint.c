/* fuzz_checkpoint.c — libFuzzer target: signed checkpoint notes.
 *
 * The input is a note as an agent or an auditor receives it from the broker
 * (WELCOME, a checkpoint query, a proof answer, a --since-checkpoint file):
 * parsed with rete_checkpoint_parse and verified with rete_checkpoint_verify
 * against the fixed fuzz key under the key name FUZZ_ORIGIN (the seeds are
 * signed with it). The input is not NUL-terminated, so a read past len is
 * caught by ASan. Properties checked besides "no crash, no leak, no UB":
 *  - a note that verifies also parses, to the same values;
 *  - a parsed checkpoint signed again (rete_checkpoint_sign) parses and
 *    verifies to the same origin, size and root;
 *  - the epoch a note names (rete_checkpoint_epoch) survives signing again
 *    with rete_checkpoint_sign_epoch.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz_common.h"

static bool same_cp(const rete_checkpoint *a, const rete_checkpoint *b)
{
	return strcmp(a->origin, b->origin) == 0 && a->size == b->size &&
	       memcmp(a->root, b->root, RETE_MERKLE_HASH) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so ASan sees any read past the end. */
	char *note = malloc(size ? size : 1);
	if (!note)
		abort();
	if (size)
		memcpy(note, data, size);
	const rete_seckey *key = fuzz_key();

	rete_checkpoint parsed, verified;
	rete_msg m;
	rete_err pe = rete_checkpoint_parse(note, size, &parsed, &m);
	if (pe == RETE_OK && !memchr(parsed.origin, 0, sizeof(parsed.origin)))
		fuzz_fail("rete_checkpoint_parse: origin not NUL-terminated");
	rete_err ve = rete_checkpoint_verify(note, size, FUZZ_ORIGIN, &key->pub, &verified, &m);
	if (ve == RETE_OK) {
		if (pe != RETE_OK)
			fuzz_fail("a note verifies but does not parse: %s", m.text);
		if (!same_cp(&parsed, &verified))
			fuzz_fail("parse and verify read different checkpoints");
	}
	/* The same note under another key name: never verifies with this key
	 * unless the note carries a line for that name. */
	(void)rete_checkpoint_verify(note, size, "other.example/log", &key->pub, NULL, &m);

	/* The epoch a note names (its "epoch N" line): read, and when it
	 * reads, signed again with that epoch it names the same. */
	uint32_t epoch = 0;
	rete_err ee = rete_checkpoint_epoch(note, size, &epoch, &m);
	if (ee == RETE_OK && pe != RETE_OK)
		fuzz_fail("rete_checkpoint_epoch read a note rete_checkpoint_parse refuses");
	if (ee == RETE_OK && epoch == 0)
		fuzz_fail("rete_checkpoint_epoch gave epoch 0");
	if (ee == RETE_OK) {
		char *again = NULL;
		uint32_t back = 0;
		if (rete_checkpoint_sign_epoch(parsed.origin, parsed.size, parsed.root, epoch, key,
					       &again, &m) == RETE_OK) {
			if (rete_checkpoint_epoch(again, strlen(again), &back, &m) != RETE_OK ||
			    back != epoch)
				fuzz_fail("sign_epoch(%u) -> epoch gave %u", (unsigned)epoch,
					  (unsigned)back);
			free(again);
		}
	}

	if (pe == RETE_OK) {
		char *again = NULL;
		if (rete_checkpoint_sign(parsed.origin, parsed.size, parsed.root, key, &again,
					 &m) == RETE_OK) {
			rete_checkpoint back;
			if (rete_checkpoint_verify(again, strlen(again), parsed.origin, &key->pub,
						   &back, &m) != RETE_OK)
				fuzz_fail("a note just signed does not verify: %s", m.text);
			if (!same_cp(&parsed, &back))
				fuzz_fail("sign -> verify changed the checkpoint");
			free(again);
		}
	}
	free(note);
	return 0;
}
