/* fuzz_common.h — what the fuzz targets and the seed generator share.
 *
 * One fixed Ed25519 key (from a constant seed) stands for "the sender" and
 * "the broker" in every target, so that seeds signed by gen_seeds.c carry
 * signatures that verify and the fuzzer can reach the code behind a good
 * signature. The key is test material only, never a real identity.
 */
#ifndef RETE_FUZZ_COMMON_H
#define RETE_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

#define FUZZ_ORIGIN "fuzz.example/log" /* checkpoint origin and key name */
#define FUZZ_SENDER "social.mantova"

/* fuzz_key returns the fixed key pair (made once, kept for the process; the
 * process owns it). Aborts when libsodium cannot make it: nothing to fuzz. */
static inline const rete_seckey *fuzz_key(void)
{
	static rete_seckey *key;
	if (!key) {
		uint8_t seed[RETE_SEED_LEN];
		memset(seed, 0x5a, sizeof(seed));
		if (rete_seckey_from_seed(&key, seed, NULL) != RETE_OK) {
			fprintf(stderr, "fuzz: cannot derive the fixed key\n");
			abort();
		}
	}
	return key;
}

/* fuzz_fail reports a broken property and aborts, so libFuzzer keeps the
 * input as a crash. */
#define fuzz_fail(...)                                                                             \
	do {                                                                                       \
		fprintf(stderr, "fuzz property broken: " __VA_ARGS__);                             \
		fputc('\n', stderr);                                                               \
		abort();                                                                           \
	} while (0)

#endif
