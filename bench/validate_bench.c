/* validate_bench.c — the CPU the broker spends validating one submission
 * (rete_validate_message in RETE_VALIDATE_SIGNED mode, as
 * broker_submit_precheck calls it), for the referral rete_bench sends (the
 * padding in consent.legalBasis, a long citation) and for the same referral
 * with a short legalBasis. Prints thread-CPU nanoseconds per validation, the
 * best of several rounds. A benchmark, not a test: it asserts nothing about
 * the figures; it exits 1 when a message it builds is refused (the
 * validator and this driver disagree).
 *
 *   validate_bench [--rounds N] [--iterations N] [--pad BYTES]
 *
 * Under callgrind (instruction counts, repeatable on a busy machine):
 *   valgrind --tool=callgrind validate_bench --rounds 1 --iterations 20000
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_referral.h"
#include "rete.pb-c.h"
#include "validate.h"

static double thread_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* best_ns: the best of rounds × iterations validations of msg, in ns each. */
static double best_ns(const Rete__Message *msg, int rounds, int iterations)
{
	double best = 0;
	for (int r = 0; r < rounds; r++) {
		double t0 = thread_ns();
		for (int i = 0; i < iterations; i++) {
			if (rete_validate_message(msg, NULL, RETE_VALIDATE_SIGNED, NULL) !=
			    RETE_OK) {
				rete_problems p = {0};
				rete_validate_message(msg, NULL, RETE_VALIDATE_SIGNED, &p);
				fprintf(stderr, "validate_bench: the message is refused: %s: %s\n",
					p.n ? p.items[0].path : "?", p.n ? p.items[0].text : "?");
				rete_problems_free(&p);
				exit(1);
			}
		}
		double ns = (thread_ns() - t0) / iterations;
		if (r == 0 || ns < best)
			best = ns;
	}
	return best;
}

int main(int argc, char **argv)
{
	int rounds = 7, iterations = 100000;
	size_t padlen = 870; /* what rete_bench's calibration gives for 1 KiB */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
			iterations = atoi(argv[++i]);
		else if (strcmp(argv[i], "--pad") == 0 && i + 1 < argc)
			padlen = (size_t)atol(argv[++i]);
		else {
			fprintf(
			    stderr,
			    "usage: validate_bench [--rounds N] [--iterations N] [--pad BYTES]\n");
			return 2;
		}
	}
	if (rounds < 1 || iterations < 1 || padlen < 1 || padlen > 4000) {
		fprintf(stderr, "validate_bench: rounds and iterations must be at least 1, the "
				"padding 1 to 4000 bytes\n");
		return 2;
	}
	static uint8_t hash[32] = {1, 2, 3};
	char *pad = malloc(padlen + 1);
	if (!pad)
		return 2;
	const char *cite = "L. 328/2000 art. 22 c. 2; "; /* as rete_bench pads */
	for (size_t i = 0; i < padlen; i++)
		pad[i] = cite[i % strlen(cite)];
	pad[padlen] = '\0';

	struct bench_referral b;
	Rete__Message *msg =
	    bench_referral_init(&b, "bench-00000042", "ag0000.bench", "ag0001.bench",
				"rete.bench.example/log", 1765000000000, pad, hash);

	double long_ns = best_ns(msg, rounds, iterations);
	b.cs.legal_basis = (char *)"L. 328/2000 art. 22";
	double short_ns = best_ns(msg, rounds, iterations);
	printf("validate a referral, legalBasis of %zu bytes   %8.0f ns (best of %d x %d)\n",
	       padlen, long_ns, rounds, iterations);
	printf("validate a referral, legalBasis of 19 bytes    %8.0f ns\n", short_ns);
	free(pad);
	return 0;
}
