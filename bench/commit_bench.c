/* commit_bench — the committer's own work per message, without the broker.
 *
 * Commits batches of N pre-signed ~1 KiB referrals into a real LMDB store
 * (rete_store_commit with the ops as the broker builds them: the signed
 * bytes, their decoded Message, the broker's time, a sealed part; a
 * Directory entry with answer limits first, so the due index is written
 * too), then proves every entry of the batch as the broker's receipts_prove
 * does (one read transaction, the log size, the root of the new size, the
 * inclusion proofs through one memo; the checkpoint's signature is not
 * counted: one per commit whatever the code). Prints thread CPU time per
 * message, best and median of the rounds, for the commit and the proofs.
 *
 * For instruction counts, run it under callgrind and collect only the
 * measured functions:
 *
 *   valgrind --tool=callgrind --toggle-collect=bench_commit \
 *       --toggle-collect=bench_prove bin/commit_bench --rounds 10
 *
 * A benchmark, not a test: it checks that every entry was accepted and
 * every proof verifies, and nothing else. The store goes in a temporary
 * folder (--dir to choose its parent), removed at exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "commit_bench"
#include "bench_referral.h"
#include "bench_util.h"
#include "codec.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"

#define NAGENCIES 50

static double thread_cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* sys_us: the kernel's share of this thread's CPU time so far. */
static double sys_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

/* wchar: bytes this process has written with write-like calls so far. */
static double wchar(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	double v = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "wchar:", 6) == 0)
			v = strtod(line + 6, NULL);
	if (f != NULL)
		fclose(f);
	return v;
}

static rete_seckey *ag[NAGENCIES], *broker_key;
static char ids[NAGENCIES][32];
static rete_buf sealed[NAGENCIES];
static uint8_t sealed_hash[NAGENCIES][RETE_HASH_LEN];
static char pad[2048];

/* One pre-signed referral: the bytes and the Message the broker decoded. */
struct pm {
	rete_buf sm;
	Rete__Message *msg;
	size_t to;
};

static void referral(size_t from, size_t to, const char *id, struct pm *out)
{
	struct bench_referral b;
	rete_msg m;
	Rete__Message *msg = bench_referral_init(&b, id, ids[from], ids[to], "bench.rete",
						 1764000000000, pad, sealed_hash[to]);

	if (rete_message_sign(msg, ag[from], &out->sm, &m) != RETE_OK ||
	    rete_signed_decode(out->sm.data, out->sm.len, NULL, &out->msg, &m) != RETE_OK)
		die("sign: %s", m.text);
	out->to = to;
}

/* directory appends the broker's Directory (answer limits for every
 * priority, so that referrals get a due time). */
static void directory(rete_store *s)
{
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__PriorityLimit l[3] = {RETE__PRIORITY_LIMIT__INIT, RETE__PRIORITY_LIMIT__INIT,
				    RETE__PRIORITY_LIMIT__INIT};
	Rete__PriorityLimit *lp[3] = {&l[0], &l[1], &l[2]};
	rete_store_op op;
	rete_buf b = {0};
	rete_msg m;

	l[0].priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	l[0].limit = (char *)"10wd";
	l[0].limit_ms = 14LL * 86400000;
	l[1].priority = RETE__PRIORITY__PRIORITY_URGENT;
	l[1].limit = (char *)"2wd";
	l[1].limit_ms = 2LL * 86400000;
	l[2].priority = RETE__PRIORITY__PRIORITY_EMERGENCY;
	l[2].limit = (char *)"4h";
	l[2].limit_ms = 4LL * 3600000;
	d.serial = 1;
	d.limits = lp;
	d.n_limits = 3;
	d.time_zone = (char *)"Europe/Rome";
	d.expiry_ms = 30LL * 86400000;
	msg.id = (char *)"directory-1";
	msg.sender = (char *)"broker.bench";
	msg.created_at = 1764000000000;
	msg.origin = (char *)"bench.rete";
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	if (rete_message_sign(&msg, broker_key, &b, &m) != RETE_OK)
		die("sign: %s", m.text);
	memset(&op, 0, sizeof(op));
	op.kind = RETE_STORE_OP_APPEND;
	op.in.signed_message = b.data;
	op.in.len = b.len;
	op.in.logged_at = 1764000000000;
	if (rete_store_commit(s, &op, 1, &m) != RETE_OK || op.status != RETE_STORE_ACCEPTED)
		die("directory: %s %s", m.text, op.error_text);
	rete_buf_free(&b);
}

static struct pm *presign(size_t count, size_t first)
{
	struct pm *v = calloc(count, sizeof(*v));
	char id[64];
	if (v == NULL)
		die("out of memory");
	for (size_t i = 0; i < count; i++) {
		size_t from = (first + i) % NAGENCIES;
		snprintf(id, sizeof(id), "B-%08zu", first + i);
		referral(from, from ^ 1, id, &v[i]);
	}
	return v;
}

static void pm_free(struct pm *v, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		rete_buf_free(&v[i].sm);
		rete__message__free_unpacked(v[i].msg, NULL);
	}
	free(v);
}

/* ops_fill builds the ops of one batch as the broker does: the previous
 * batch's ACKs (when acks), then the appends. */
static size_t ops_fill(rete_store_op *ops, const struct pm *v, size_t n, const uint64_t *pend,
		       const size_t *pend_to, size_t npend, int64_t at)
{
	size_t k = 0;
	memset(ops, 0, (npend + n) * sizeof(*ops));
	for (size_t i = 0; i < npend; i++, k++) {
		ops[k].kind = RETE_STORE_OP_ACK;
		ops[k].in.recipient = ids[pend_to[i]];
		ops[k].in.index = pend[i];
	}
	for (size_t i = 0; i < n; i++, k++) {
		ops[k].kind = RETE_STORE_OP_APPEND;
		ops[k].in.signed_message = v[i].sm.data;
		ops[k].in.len = v[i].sm.len;
		ops[k].in.msg = v[i].msg;
		ops[k].in.logged_at = at;
		ops[k].in.sealed = sealed[v[i].to].data;
		ops[k].in.sealed_len = sealed[v[i].to].len;
	}
	return k;
}

/* The measured functions (callgrind's --toggle-collect names them). */
__attribute__((noinline)) rete_err bench_commit(rete_store *s, rete_store_op *ops, size_t n,
						rete_merkle_memo *memo, rete_msg *m)
{
	rete_err err = rete_store_commit_memo(s, ops, n, memo, m);
	/* not a tail call, so that callgrind sees this function return */
	__asm__ volatile("" : : "r"(err) : "memory");
	return err;
}

/* bench_prove does what receipts_prove does after a commit, but for the
 * checkpoint's signature, through the memo the commit filled (NULL: a
 * new one, as before rete_store_commit_memo); proofs[i] gets the proof of
 * ops[i]. */
__attribute__((noinline)) rete_err
bench_prove(rete_store *s, const rete_store_op *ops, size_t n,
	    uint8_t (*proofs)[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH], size_t *plen,
	    uint64_t *size, uint8_t root[RETE_MERKLE_HASH], rete_merkle_memo *memo, rete_msg *m)
{
	rete_store_rtxn *rt = NULL;
	rete_merkle_memo *own = NULL;
	rete_err err;

	if ((err = rete_store_read_begin(s, &rt, m)) != RETE_OK)
		return err;
	if (memo == NULL)
		memo = own = rete_merkle_memo_new();
	if ((err = rete_store_size(s, rt, size, m)) != RETE_OK ||
	    (err = rete_store_root_memo(s, rt, memo, *size, root, m)) != RETE_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (ops[i].kind != RETE_STORE_OP_APPEND)
			continue;
		err = rete_store_inclusion_proof_memo(s, rt, memo, ops[i].index, *size, proofs[i],
						      &plen[i], m);
		if (err != RETE_OK)
			goto out;
	}
out:
	rete_merkle_memo_free(own);
	rete_store_read_end(&rt);
	__asm__ volatile("" : : "r"(err) : "memory");
	return err;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fputs("usage: commit_bench [--batch N] [--rounds R] [--log N] [--acks] [--dir DIR]\n"
	      "  --batch N   referrals per commit (default 128)\n"
	      "  --rounds R  measured commits (default 20)\n"
	      "  --log N     entries appended before measuring (default 10000)\n"
	      "  --acks      each commit also acks the previous batch (closed loop)\n"
	      "  --plain     no memo from the commit for the proofs (rete_store_commit)\n"
	      "  --dir DIR   parent of the temporary store (default $TMPDIR or /tmp)\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	size_t batch = 128, rounds = 20, log0 = 10000;
	bool acks = false, plain = false;
	const char *parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	rete_store *s = NULL;
	rete_msg m;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
			log0 = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			parent = argv[++i];
		else if (strcmp(argv[i], "--acks") == 0)
			acks = true;
		else if (strcmp(argv[i], "--plain") == 0)
			plain = true;
		else
			usage();
	}
	if (batch == 0 || rounds == 0)
		usage();
	if (rete_crypto_init(NULL) != RETE_OK)
		die("libsodium did not initialise");
	bench_tmp_make(parent);
	{
		const char *cite = "L. 328/2000 art. 22 c. 2; ";
		for (size_t i = 0; i < 600; i++)
			pad[i] = cite[i % strlen(cite)];
		pad[600] = '\0';
	}
	if (rete_seckey_generate(&broker_key, &m) != RETE_OK)
		die("keys: %s", m.text);
	for (size_t i = 0; i < NAGENCIES; i++) {
		Rete__Private priv = RETE__PRIVATE__INIT;
		Rete__Person person = RETE__PERSON__INIT;
		snprintf(ids[i], sizeof(ids[i]), "ag%04zu.bench", i);
		person.name = (char *)"Mario Rossi";
		priv.person = &person;
		priv.reason = (char *)"needs help finding work after the family moved here";
		if (rete_seckey_generate(&ag[i], &m) != RETE_OK ||
		    rete_seal(&priv, &ag[i]->pub, &sealed[i], sealed_hash[i], &m) != RETE_OK)
			die("keys: %s", m.text);
	}
	char data[PATH_MAX + 8];
	snprintf(data, sizeof(data), "%s/store", bench_tmp);
	if (rete_store_open(&s, data, RETE_STORE_CREATE, &m) != RETE_OK)
		die("store: %s", m.text);
	directory(s);

	size_t cap = batch > 1000 ? batch : 1000;
	rete_store_op *ops = calloc(2 * cap, sizeof(*ops));
	uint64_t *pend = calloc(cap, sizeof(*pend));
	size_t *pend_to = calloc(cap, sizeof(*pend_to));
	uint8_t(*proofs)[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH] =
	    calloc(2 * cap, sizeof(*proofs));
	size_t *plen = calloc(2 * cap, sizeof(*plen));
	double *tc = calloc(rounds, sizeof(double)), *tp = calloc(rounds, sizeof(double)),
	       *ts = calloc(rounds, sizeof(double)), *tw = calloc(rounds, sizeof(double));
	if (!ops || !pend || !pend_to || !proofs || !plen || !tc || !tp || !ts || !tw)
		die("out of memory");
	size_t next = 0, npend = 0;
	int64_t at = 1764000000000;

	/* the log before measuring, in batches of 1000 */
	while (next < log0) {
		size_t n = log0 - next < 1000 ? log0 - next : 1000;
		struct pm *v = presign(n, next);
		size_t k = ops_fill(ops, v, n, NULL, NULL, 0, at);
		if (rete_store_commit(s, ops, k, &m) != RETE_OK)
			die("commit: %s", m.text);
		pm_free(v, n);
		next += n;
		at += 1000;
	}
	struct pm *v = presign(batch * rounds, next);
	for (size_t r = 0; r < rounds; r++) {
		struct pm *bv = v + r * batch;
		size_t k = ops_fill(ops, bv, batch, pend, pend_to, npend, at);
		uint64_t size;
		uint8_t root[RETE_MERKLE_HASH];
		rete_merkle_memo *memo = plain ? NULL : rete_merkle_memo_new();
		double w0 = wchar();
		double s0 = sys_us();
		double t0 = thread_cpu_us();
		if (bench_commit(s, ops, k, memo, &m) != RETE_OK)
			die("commit: %s", m.text);
		double t1 = thread_cpu_us();
		ts[r] = (sys_us() - s0) / (double)batch;
		tw[r] = (wchar() - w0) / (double)batch;
		/* the proofs' time starts after the two reads above */
		double t1p = thread_cpu_us();
		if (bench_prove(s, ops, k, proofs, plen, &size, root, memo, &m) != RETE_OK)
			die("prove: %s", m.text);
		double t2 = thread_cpu_us();
		tc[r] = (t1 - t0) / (double)batch;
		tp[r] = (t2 - t1p) / (double)batch;
		rete_merkle_memo_free(memo);
		npend = 0;
		for (size_t i = 0; i < k; i++) {
			if (ops[i].kind != RETE_STORE_OP_APPEND)
				continue;
			if (ops[i].status != RETE_STORE_ACCEPTED)
				die("entry refused: %s", ops[i].error_text);
			rete_merkle_elem el[RETE_MERKLE_MAX_PROOF];
			for (size_t j = 0; j < plen[i]; j++)
				el[j] = (rete_merkle_elem){proofs[i][j], RETE_MERKLE_HASH};
			if (rete_merkle_verify_inclusion(ops[i].index, size, ops[i].leaf_hash,
							 RETE_MERKLE_HASH, el, plen[i], root,
							 RETE_MERKLE_HASH, &m) != RETE_OK)
				die("proof of %" PRIu64 ": %s", ops[i].index, m.text);
			if (acks) {
				pend[npend] = ops[i].index;
				pend_to[npend++] = bv[i - (k - batch)].to;
			}
		}
		at += 1000;
	}
	pm_free(v, batch * rounds);
	qsort(tc, rounds, sizeof(double), cmp_double);
	qsort(tp, rounds, sizeof(double), cmp_double);
	qsort(ts, rounds, sizeof(double), cmp_double);
	qsort(tw, rounds, sizeof(double), cmp_double);
	printf("commit_bench: batch %zu, %zu rounds, log from %zu entries%s\n", batch, rounds,
	       log0 + 1, acks ? ", with the previous batch's acks" : "");
	printf("commit  us/msg  best %.2f  median %.2f\n", tc[0], tc[rounds / 2]);
	printf("  of which in the kernel (getrusage, 1-4 ms ticks: rough)  median %.2f\n",
	       ts[rounds / 2]);
	printf("  bytes written per message (wchar)  median %.0f\n", tw[rounds / 2]);
	printf("prove   us/msg  best %.2f  median %.2f\n", tp[0], tp[rounds / 2]);
	printf("total   us/msg  best %.2f\n", tc[0] + tp[0]);
	free(ops);
	free(pend);
	free(pend_to);
	free(proofs);
	free(plen);
	free(tc);
	free(tp);
	free(ts);
	free(tw);
	rete_store_close(&s);
	for (size_t i = 0; i < NAGENCIES; i++) {
		rete_seckey_free(&ag[i]);
		rete_buf_free(&sealed[i]);
	}
	rete_seckey_free(&broker_key);
	return 0;
}
