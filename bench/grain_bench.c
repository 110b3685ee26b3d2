/* grain_bench.c — what one entry of the auditor's phase A costs on one
 * thread, by the order of its work, against the bound's verification:
 * measured in short slices that take turns, so that a busy machine's slow
 * moments fall on every way alike.
 *
 *   grain_bench DIR [--entries N] [--rounds R] [--slice S]
 *
 * DIR is a log audit_bench built. N entries from index 1 on (default
 * 2048) are copied into memory and their keys looked up once in the
 * log's first Directory. Each round runs every way below over the next S
 * entries (default 256; a way's slices go round the N entries) and takes
 * its thread CPU per entry; the median and the best of the R rounds
 * (default 40) are printed, and the ratio of the median to the bound's:
 *
 *   bound      crypto_sign_verify_detached of one 1 KiB message and
 *              signature again and again (what bench/rete_bench.c and
 *              audit_bench call the one-core rate)
 *   verify     the entries' signatures alone, decoded beforehand: a log's
 *              distinct messages, keys and signatures
 *   decode     leaf hash and strict decoding of each entry, no signature
 *   per-entry  leaf hash, decoding and signature, entry after entry (what
 *              the auditor's phase A does)
 *   per-grain  the same work, a grain of 16 entries decoded first and then
 *              its 16 signatures verified back to back (tried on
 *              2026-12-07, whether decoding between two verifications
 *              costs them their caches: it does not, see
 *              docs/performance.md, "Audit verify, eleventh pass")
 *
 * A benchmark, never a test: it asserts nothing but that the log holds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "codec.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"

#define GRAIN 16
#define WAYS  5

static void die(const char *what, const char *why)
{
	fprintf(stderr, "grain_bench: %s%s%s\n", what, why != NULL ? ": " : "",
		why != NULL ? why : "");
	exit(1);
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ent {
	rete_buf raw;		 /* the LogEntry bytes (a copy) */
	const rete_pubkey *key;	 /* its sender's, from the Directory */
	Rete__SignedMessage *sm; /* decoded beforehand, for "verify" */
};

static struct {
	struct ent *e;
	size_t n;
	rete_pubkey *keys;
	char **ids;
	size_t nkeys;
	rete_pubkey broker;
	rete_arena pre;	  /* what the entries were decoded into beforehand */
	rete_arena grain; /* a grain's, reset before each grain as the auditor does */
	uint8_t bmsg[1024], bsig[crypto_sign_BYTES], bpk[crypto_sign_PUBLICKEYBYTES];
} g;

static volatile unsigned sink;

static Rete__Message *decode(const struct ent *x, rete_arena *a, uint8_t leaf[RETE_MERKLE_HASH],
			     Rete__SignedMessage **sm)
{
	Rete__LogEntry *le = NULL;
	Rete__Message *msg = NULL;
	rete_msg m = {{0}};

	rete_merkle_leaf_hash(leaf, x->raw.data, x->raw.len);
	if (rete_log_entry_decode_in(x->raw.data, x->raw.len, a, &le, &m) != RETE_OK ||
	    rete_signed_decode_in(le->signed_message.data, le->signed_message.len, a, sm, &msg,
				  &m) != RETE_OK)
		die("an entry does not decode", m.text);
	return msg;
}

static void verify(const struct ent *x, const Rete__SignedMessage *sm, rete_arena *a)
{
	if (rete_signed_verify_in(sm, x->key, a, NULL) != RETE_OK)
		die("a signature does not verify", NULL);
}

/* way w over entries [at, at + s) (mod n) */
static void run_way(int w, size_t at, size_t s)
{
	uint8_t leaf[GRAIN][RETE_MERKLE_HASH] = {{0}};
	Rete__SignedMessage *sm[GRAIN] = {NULL};

	for (size_t b = 0; b < s; b += GRAIN) {
		rete_arena_reset(&g.grain);
		for (size_t k = 0; k < GRAIN; k++) {
			const struct ent *x = &g.e[(at + b + k) % g.n];
			switch (w) {
			case 0:
				if (crypto_sign_verify_detached(g.bsig, g.bmsg, sizeof(g.bmsg),
								g.bpk) != 0)
					die("the bound's signature does not verify", NULL);
				break;
			case 1:
				verify(x, x->sm, &g.grain);
				break;
			case 2:
				decode(x, &g.grain, leaf[k], &sm[k]);
				break;
			case 3:
				decode(x, &g.grain, leaf[k], &sm[k]);
				verify(x, sm[k], &g.grain);
				break;
			case 4:
				decode(x, &g.grain, leaf[k], &sm[k]);
				break;
			}
			sink += leaf[k][0];
		}
		if (w == 4)
			for (size_t k = 0; k < GRAIN; k++)
				verify(&g.e[(at + b + k) % g.n], sm[k], &g.grain);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void load(const char *dir, size_t n)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	rete_buf raw = {0};
	Rete__LogEntry *le = NULL;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_arena a = {0};

	if (rete_store_open(&s, dir, RETE_STORE_RDONLY, &m) != RETE_OK)
		die(dir, m.text);
	if (rete_store_entry(s, NULL, 0, &raw, &m) != RETE_OK ||
	    rete_log_entry_decode_in(raw.data, raw.len, &a, &le, &m) != RETE_OK ||
	    rete_signed_decode_in(le->signed_message.data, le->signed_message.len, &a, &sm, &msg,
				  &m) != RETE_OK ||
	    msg->body_case != RETE__MESSAGE__BODY_DIRECTORY)
		die("entry 0 is not a Directory", m.text);
	g.nkeys = msg->directory->n_parties;
	g.keys = calloc(g.nkeys, sizeof(*g.keys));
	g.ids = calloc(g.nkeys, sizeof(*g.ids));
	if (g.keys == NULL || g.ids == NULL)
		die("out of memory", NULL);
	for (size_t i = 0; i < g.nkeys; i++) {
		const Rete__Party *p = msg->directory->parties[i];
		g.ids[i] = strdup(p->id);
		if (p->public_key.len != RETE_PK_LEN ||
		    rete_pubkey_from_ed(&g.keys[i], p->public_key.data, &m) != RETE_OK)
			die("a Directory key", m.text);
	}
	rete_buf_free(&raw);
	rete_arena_free(&a);

	g.n = n;
	if ((g.e = calloc(n, sizeof(*g.e))) == NULL)
		die("out of memory", NULL);
	for (size_t i = 0; i < n; i++) {
		struct ent *x = &g.e[i];
		uint8_t leaf[RETE_MERKLE_HASH];
		if (rete_store_entry(s, NULL, 1 + i, &x->raw, &m) != RETE_OK)
			die("reading the log (is it long enough?)", m.text);
		msg = decode(x, &g.pre, leaf, &x->sm);
		for (size_t k = 0; k < g.nkeys && x->key == NULL; k++)
			if (msg->sender != NULL && strcmp(g.ids[k], msg->sender) == 0)
				x->key = &g.keys[k];
		if (x->key == NULL)
			die("an entry's sender is not in the Directory", msg->sender);
	}
	rete_store_close(&s);
}

int main(int argc, char **argv)
{
	static const char *name[WAYS] = {"bound", "verify", "decode", "per-entry", "per-grain"};
	size_t n = 2048, slice = 256;
	int rounds = 40;
	unsigned char seed[crypto_sign_SEEDBYTES] = {1}, sk[crypto_sign_SECRETKEYBYTES];

	if (argc < 2 || sodium_init() < 0) {
		fputs("usage: grain_bench DIR [--entries N] [--rounds R] [--slice S]\n", stderr);
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--entries") == 0)
			n = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--slice") == 0)
			slice = strtoull(argv[i + 1], NULL, 10);
	}
	if (n < GRAIN || rounds < 1 || slice < GRAIN)
		die("bad arguments", NULL);
	slice -= slice % GRAIN;
	load(argv[1], n);
	crypto_sign_seed_keypair(g.bpk, sk, seed);
	randombytes_buf(g.bmsg, sizeof(g.bmsg));
	crypto_sign_detached(g.bsig, NULL, g.bmsg, sizeof(g.bmsg), sk);

	double *t[WAYS];
	size_t at[WAYS] = {0};
	for (int w = 0; w < WAYS; w++)
		if ((t[w] = calloc((size_t)rounds, sizeof(double))) == NULL)
			die("out of memory", NULL);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < WAYS; k++) {
			int w = (k + r) % WAYS; /* each way first in turn */
			double c0 = thread_cpu_s();
			run_way(w, at[w], slice);
			t[w][r] = (thread_cpu_s() - c0) / (double)slice;
			at[w] = (at[w] + slice) % n;
		}
	double med[WAYS];
	for (int w = 0; w < WAYS; w++) {
		qsort(t[w], (size_t)rounds, sizeof(double), cmp_double);
		med[w] = t[w][rounds / 2];
	}
	printf("%zu entries, %d rounds of %zu per way; us of thread CPU per entry\n", n, rounds,
	       slice);
	printf("%-10s %8s %8s %8s\n", "way", "median", "best", "/bound");
	for (int w = 0; w < WAYS; w++)
		printf("%-10s %8.2f %8.2f %8.3f\n", name[w], med[w] * 1e6, t[w][0] * 1e6,
		       med[w] / med[0]);
	printf("per-entry - decode - verify: %+.2f us; per-grain - decode - verify: %+.2f us\n",
	       (med[3] - med[2] - med[1]) * 1e6, (med[4] - med[2] - med[1]) * 1e6);
	return 0;
}
