/* audit_bench.c — the auditor's speed: rete_verify_log (what `rete audit
 * verify` runs) on a real log, without and with the replay of the
 * lifecycle, against its bound (threads x the one-core Ed25519 verify rate
 * per CPU-second, measured in the same run).
 *
 *   audit_bench build DIR [--entries N] [--agencies A] [--no-deliveries]
 *       builds a store in DIR (created) the way a broker fills it: a
 *       Directory, then signed ~1 KiB referrals between A agencies (N in
 *       all, default 20000), each followed, in the next commit, by the
 *       broker's Delivery entry carrying the recipient's signed
 *       acknowledgement and the ACK it records (protocol 3); the
 *       Deliveries are acked by their recipients in the commit after. A
 *       checkpoint every 1000 entries. --no-deliveries acks the referrals
 *       through the store's API without logging Deliveries (the log
 *       bench/rete_bench.c fills). The broker's public key goes to
 *       DIR/broker.pub.
 *   audit_bench run DIR [--replay|--both] [--threads T] [--runs R]
 *       [--scratch FOLDER] [--raw-secs S]
 *       verifies DIR R times (default 3) and prints, per run, entries/s of
 *       wall time, the process CPU per entry (getrusage), the cores the
 *       process kept busy (CPU over wall), signatures per entry (a
 *       Delivery carries two), the ratios to the bound: wall (entries/s
 *       over T x the one-core rate: the figure, which a busy
 *       machine lowers) and CPU (entries per CPU-second over the one-core
 *       rate: how many signatures' worth of CPU an entry costs, which a
 *       busy machine changes less), the megabytes the process wrote (the
 *       replay's scratch store) and the tail (seconds after the last
 *       chunk: the final checks and the replay's comparisons). --threads 1
 *       runs everything on one thread (for callgrind). The one-core rate
 *       is sampled again before each mode, and the best sample so far is
 *       the bound (as in bench/rete_bench.c); it also prints the rate over
 *       distinct signatures, the ceiling of the ratios (see one_core_rate).
 *
 * A benchmark, never a test: it asserts nothing but that the log holds. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "bench_referral.h"
#include "checkpoint.h"
#include "codec.h"
#include "duration.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"
#include "verify.h"

#define ORIGIN	   "bench.rete/mantova"
#define BROKER_ID  "broker.bench"
#define MSG_BYTES  1024
#define BATCH	   1000 /* referrals per commit (and checkpoint interval) */
#define MAX_AGENCY 64

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("audit_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* process CPU (user + system, every thread) */
static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* bytes this process passed to write(2) and its kin (/proc/self/io wchar):
 * what the replay's scratch store writes */
static double written_mb(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	double v = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "wchar:", 6) == 0)
			v = atof(line + 6) / 1e6;
	if (f != NULL)
		fclose(f);
	return v;
}

/* ---- build ----------------------------------------------------------------------- */

static struct {
	rete_seckey *broker;
	rete_seckey *ag[MAX_AGENCY];
	char id[MAX_AGENCY][32];
	rete_buf sealed[MAX_AGENCY];
	uint8_t sealed_hash[MAX_AGENCY][RETE_HASH_LEN];
	size_t nag;
	char *pad;
} net;

static void msg_init(Rete__Message *msg, const char *id, const char *sender, const char *recipient,
		     const char *case_id)
{
	rete__message__init(msg);
	msg->id = (char *)id;
	msg->sender = (char *)sender;
	msg->recipient = (char *)recipient;
	msg->case_id = (char *)case_id;
	msg->created_at = rete_now_ms();
	msg->origin = (char *)ORIGIN;
}

static void sign(const Rete__Message *msg, const rete_seckey *k, rete_buf *out)
{
	rete_msg m = {{0}};
	if (rete_message_sign(msg, k, out, &m) != RETE_OK)
		die("sign: %s", m.text);
}

static void directory(rete_buf *out)
{
	Rete__Message msg;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__Party p[MAX_AGENCY + 1], *pp[MAX_AGENCY + 1];
	Rete__PriorityLimit l = RETE__PRIORITY_LIMIT__INIT, *lp = &l;

	for (size_t i = 0; i <= net.nag; i++) {
		const rete_seckey *k = i == 0 ? net.broker : net.ag[i - 1];
		rete__party__init(&p[i]);
		p[i].id = i == 0 ? (char *)BROKER_ID : net.id[i - 1];
		p[i].name = p[i].id;
		p[i].kind = i == 0 ? RETE__PARTY_KIND__PARTY_KIND_BROKER
				   : RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES;
		p[i].public_key.data = (uint8_t *)k->pub.ed;
		p[i].public_key.len = RETE_PK_LEN;
		pp[i] = &p[i];
	}
	msg_init(&msg, "dir-1", BROKER_ID, "", "");
	d.serial = 1;
	d.n_parties = net.nag + 1;
	d.parties = pp;
	l.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	l.limit = (char *)"5d";
	d.n_limits = 1;
	d.limits = &lp;
	d.time_zone = (char *)"Europe/Rome";
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	sign(&msg, net.broker, out);
}

/* referral signs a referral from agency `from` to `to`, padded to ~1 KiB in
 * the consent's legal basis (as bench/rete_bench.c does). */
static void referral(size_t from, size_t to, const char *id, rete_buf *out)
{
	struct bench_referral b;
	Rete__Message *msg = bench_referral_init(&b, id, net.id[from], net.id[to], ORIGIN,
						 rete_now_ms(), net.pad, net.sealed_hash[to]);

	sign(msg, net.ag[from], out);
}

/* delivery signs the broker's Delivery of entry `index` (referral `ref`
 * from agency `sender` to `to`, whose leaf hash is leaf) with the
 * recipient's signed acknowledgement, as broker/broker.c logs it. */
static void delivery(size_t sender, size_t to, uint64_t index, const char *ref,
		     const uint8_t leaf[RETE_MERKLE_HASH], rete_buf *out)
{
	Rete__Message msg;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	Rete__AckBody b = RETE__ACK_BODY__INIT;
	Rete__SignedAck sa;
	char id[64], case_id[48];
	rete_msg m = {{0}};

	b.origin = (char *)ORIGIN;
	b.recipient = net.id[to];
	b.index = index;
	b.leaf_hash.data = (uint8_t *)leaf;
	b.leaf_hash.len = RETE_MERKLE_HASH;
	b.acked_at = rete_now_ms();
	if (rete_ack_sign(&b, net.ag[to], &sa, &m) != RETE_OK)
		die("ack: %s", m.text);
	snprintf(id, sizeof(id), "delivery-%" PRIu64, index);
	snprintf(case_id, sizeof(case_id), "case-%s", ref);
	msg_init(&msg, id, BROKER_ID, net.id[sender], case_id);
	d.index = index;
	d.message_id = (char *)ref;
	d.referral_id = (char *)ref;
	d.delivered_at = b.acked_at;
	d.ack = &sa;
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &d;
	sign(&msg, net.broker, out);
	rete_signed_ack_clear(&sa);
}

static void commit(rete_store *s, rete_store_op *ops, size_t n)
{
	rete_msg m = {{0}};
	if (n == 0)
		return;
	if (rete_store_commit(s, ops, n, &m) != RETE_OK)
		die("commit: %s", m.text);
	for (size_t i = 0; i < n; i++)
		if (ops[i].kind == RETE_STORE_OP_APPEND && ops[i].status != RETE_STORE_ACCEPTED)
			die("the store refused a bench entry: %s", ops[i].error_text);
}

static void checkpoints(rete_store *s, uint64_t *done, uint64_t size)
{
	rete_msg m = {{0}};
	for (uint64_t cp = (*done / 1000 + 1) * 1000; cp <= size; cp += 1000) {
		uint8_t root[RETE_MERKLE_HASH];
		char *note = NULL;
		if (rete_store_root(s, NULL, cp, root, &m) != RETE_OK ||
		    rete_checkpoint_sign(ORIGIN, cp, root, net.broker, &note, &m) != RETE_OK ||
		    rete_store_checkpoint_put(s, cp, note, &m) != RETE_OK)
			die("checkpoint: %s", m.text);
		free(note);
		*done = cp;
	}
}

struct sent {
	uint64_t index;
	size_t from, to;
	uint8_t leaf[RETE_MERKLE_HASH];
	char id[32];
};

static void build(const char *dir, uint64_t n, size_t nag, bool deliveries)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	char path[4096];
	rete_buf dirb = {0};
	uint64_t size = 0, ck = 0;
	struct sent *cur = calloc(BATCH, sizeof(*cur)), *prev = calloc(BATCH, sizeof(*prev));
	rete_buf *bufs = calloc(2 * BATCH, sizeof(*bufs));
	rete_store_op *ops = calloc(4 * BATCH + 1, sizeof(*ops));
	size_t nprev = 0, ndel = 0;
	uint64_t dels[BATCH];
	char dels_to[BATCH][32];
	double t0 = now_s();

	if (cur == NULL || prev == NULL || bufs == NULL || ops == NULL)
		die("out of memory");
	net.nag = nag;
	if (rete_seckey_generate(&net.broker, &m) != RETE_OK)
		die("keys: %s", m.text);
	for (size_t i = 0; i < nag; i++) {
		Rete__Private priv = RETE__PRIVATE__INIT;
		Rete__Person person = RETE__PERSON__INIT;
		snprintf(net.id[i], sizeof(net.id[i]), "ag%04zu.bench", i);
		if (rete_seckey_generate(&net.ag[i], &m) != RETE_OK)
			die("keys: %s", m.text);
		person.name = (char *)"Mario Rossi";
		priv.person = &person;
		priv.reason = (char *)"needs help finding work after the family moved here";
		if (rete_seal(&priv, &net.ag[i]->pub, &net.sealed[i], net.sealed_hash[i], &m) !=
		    RETE_OK)
			die("seal: %s", m.text);
	}
	/* the padding that makes a signed referral ~MSG_BYTES */
	net.pad = strdup("");
	rete_buf probe = {0};
	referral(0, 1 % nag, "F0-000000", &probe);
	free(net.pad);
	size_t padlen = probe.len < MSG_BYTES ? MSG_BYTES - probe.len - 2 : 1;
	rete_buf_free(&probe);
	if ((net.pad = malloc(padlen + 1)) == NULL)
		die("out of memory");
	for (size_t i = 0; i < padlen; i++)
		net.pad[i] = (char)('a' + i % 26);
	net.pad[padlen] = '\0';

	if (mkdir(dir, 0700) != 0)
		die("cannot create %s: %s", dir, strerror(errno));
	if (rete_store_open(&s, dir, RETE_STORE_CREATE, &m) != RETE_OK)
		die("store %s: %s", dir, m.text);
	directory(&dirb);
	memset(ops, 0, sizeof(*ops));
	ops[0].kind = RETE_STORE_OP_APPEND;
	ops[0].in.signed_message = dirb.data;
	ops[0].in.len = dirb.len;
	ops[0].in.logged_at = rete_now_ms();
	commit(s, ops, 1);
	rete_buf_free(&dirb);
	size = 1;

	for (uint64_t done = 0, batch = 0; done < n || nprev > 0; batch++) {
		size_t k = n - done < BATCH ? (size_t)(n - done) : BATCH, nops = 0, nb = 0;
		int64_t at = rete_now_ms();
		memset(ops, 0, (4 * BATCH + 1) * sizeof(*ops));
		/* the Deliveries of the batch before acked by their recipients */
		for (size_t i = 0; i < ndel; i++, nops++) {
			ops[nops].kind = RETE_STORE_OP_ACK;
			ops[nops].in.recipient = dels_to[i];
			ops[nops].in.index = dels[i];
		}
		ndel = 0;
		/* the batch before delivered: the ACK and the Delivery logged with it */
		for (size_t i = 0; i < nprev; i++) {
			ops[nops].kind = RETE_STORE_OP_ACK;
			ops[nops].in.recipient = net.id[prev[i].to];
			ops[nops].in.index = prev[i].index;
			nops++;
			if (!deliveries)
				continue;
			delivery(prev[i].from, prev[i].to, prev[i].index, prev[i].id, prev[i].leaf,
				 &bufs[nb]);
			ops[nops].kind = RETE_STORE_OP_APPEND;
			ops[nops].in.signed_message = bufs[nb].data;
			ops[nops].in.len = bufs[nb].len;
			ops[nops].in.logged_at = at;
			nops++;
			nb++;
		}
		size_t first = nops;
		for (size_t i = 0; i < k; i++, nops++) {
			struct sent *c = &cur[i];
			c->from = (size_t)((done + i) % nag);
			c->to = (c->from + 1 + (size_t)((done + i) / nag) % (nag - 1)) % nag;
			snprintf(c->id, sizeof(c->id), "F%" PRIu64 "-%06zu", batch, i);
			referral(c->from, c->to, c->id, &bufs[nb]);
			ops[nops].kind = RETE_STORE_OP_APPEND;
			ops[nops].in.signed_message = bufs[nb].data;
			ops[nops].in.len = bufs[nb].len;
			ops[nops].in.logged_at = at;
			ops[nops].in.sealed = net.sealed[c->to].data;
			ops[nops].in.sealed_len = net.sealed[c->to].len;
			nb++;
		}
		commit(s, ops, nops);
		for (size_t i = 0; i < nops; i++) {
			if (ops[i].kind != RETE_STORE_OP_APPEND)
				continue;
			size++;
		}
		/* the Deliveries' recipients, in order */
		if (deliveries) {
			size_t d = 0;
			for (size_t i = 0; i < first; i++)
				if (ops[i].kind == RETE_STORE_OP_APPEND) {
					dels[d] = ops[i].index;
					snprintf(dels_to[d], sizeof(dels_to[d]), "%s",
						 net.id[prev[d].from]);
					d++;
				}
			ndel = d;
		}
		for (size_t i = 0; i < k; i++) {
			cur[i].index = ops[first + i].index;
			memcpy(cur[i].leaf, ops[first + i].leaf_hash, RETE_MERKLE_HASH);
		}
		for (size_t i = 0; i < nb; i++)
			rete_buf_free(&bufs[i]);
		struct sent *t = prev;
		prev = cur;
		cur = t;
		nprev = k;
		done += k;
		checkpoints(s, &ck, size);
	}
	if (ndel > 0) {
		memset(ops, 0, ndel * sizeof(*ops));
		for (size_t i = 0; i < ndel; i++) {
			ops[i].kind = RETE_STORE_OP_ACK;
			ops[i].in.recipient = dels_to[i];
			ops[i].in.index = dels[i];
		}
		commit(s, ops, ndel);
	}
	rete_store_close(&s);
	snprintf(path, sizeof(path), "%s/broker.pub", dir);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(net.broker->pub.ed, RETE_PK_LEN, 1, f) != 1 || fclose(f) != 0)
		die("cannot write %s", path);
	printf("built %s: %" PRIu64 " entries (%" PRIu64 " referrals%s), %.1f s\n", dir, size, n,
	       deliveries ? " and their Deliveries" : ", acked without Deliveries", now_s() - t0);
	for (size_t i = 0; i < nag; i++) {
		rete_seckey_free(&net.ag[i]);
		rete_buf_free(&net.sealed[i]);
	}
	rete_seckey_free(&net.broker);
	free(net.pad);
	free(cur);
	free(prev);
	free(bufs);
	free(ops);
}

/* ---- run ------------------------------------------------------------------------- */

#define DISTINCT 64 /* messages (and keys) of one_core_rate's distinct sample */

/* one_core_rate: crypto_sign_verify_detached over 1 KiB on this thread, per
 * CPU-second (the best of `samples` runs of secs each: a slow moment of a
 * shared core must not lower the bound). The bound, as bench/rete_bench.c
 * measures it, verifies one signature again and again; with distinct
 * (DISTINCT different messages, signatures and keys, in turn, as a log
 * has them) the processor cannot learn the branches of the one scalar
 * multiplication, and a verification costs a few per cent more: the
 * ceiling of any auditor against that bound is below 1. */
static double one_core_rate(double secs, int samples, bool distinct)
{
	rete_seckey *k[DISTINCT] = {NULL};
	static uint8_t msg[DISTINCT][MSG_BYTES], sig[DISTINCT][crypto_sign_BYTES];
	size_t nk = distinct ? DISTINCT : 1;
	double best = 0;

	for (size_t j = 0; j < nk; j++) {
		if (rete_seckey_generate(&k[j], NULL) != RETE_OK)
			die("key");
		randombytes_buf(msg[j], sizeof(msg[j]));
		crypto_sign_detached(sig[j], NULL, msg[j], sizeof(msg[j]), k[j]->ed_sk);
	}
	for (int s = 0; s < samples; s++) {
		uint64_t n = 0;
		double end = now_s() + secs, c0 = thread_cpu_s();
		do {
			for (int i = 0; i < 16; i++) {
				size_t j = (n + (size_t)i) % nk;
				if (crypto_sign_verify_detached(sig[j], msg[j], sizeof(msg[j]),
								k[j]->pub.ed) != 0)
					die("a raw signature did not verify");
			}
			n += 16;
		} while (now_s() < end);
		double r = (double)n / (thread_cpu_s() - c0);
		if (r > best)
			best = r;
	}
	for (size_t j = 0; j < nk; j++)
		rete_seckey_free(&k[j]);
	return best;
}

/* the time of the last progress report: what follows it is the run's tail
 * (the final checks, the replay's comparisons) */
static double last_progress;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	(void)done;
	(void)total;
	last_progress = now_s();
}

static void run(const char *dir, int modes, unsigned threads, int runs, const char *scratch,
		double raw_secs)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	rete_verify_options o;
	char path[4096];
	uint8_t ed[RETE_PK_LEN];

	snprintf(path, sizeof(path), "%s/broker.pub", dir);
	FILE *f = fopen(path, "rb");
	if (f == NULL || fread(ed, RETE_PK_LEN, 1, f) != 1)
		die("cannot read %s (made by audit_bench build)", path);
	fclose(f);
	memset(&o, 0, sizeof(o));
	if (rete_pubkey_from_ed(&o.broker_key, ed, &m) != RETE_OK)
		die("broker key: %s", m.text);
	if (threads == 0)
		threads = rete_verify_cores();
	o.threads = threads;
	o.scratch_dir = scratch;
	o.allow_unlogged_acks = true; /* a --no-deliveries log acks without logging */
	o.progress = on_progress;
	if (rete_store_open(&s, dir, RETE_STORE_RDONLY, &m) != RETE_OK)
		die("store %s: %s", dir, m.text);

	double ver1 = one_core_rate(raw_secs, 3, false);
	double verd = one_core_rate(raw_secs, 3, true);
	printf("one-core verify: %.0f/CPU-s (%.1f us); threads %u; bound %.0f entries/s\n", ver1,
	       1e6 / ver1, threads, threads * ver1);
	printf("one-core verify of %d distinct signatures: %.0f/CPU-s (%.1f us, %.3f of the "
	       "above): the ceiling of the ratios below\n",
	       DISTINCT, verd, 1e6 / verd, verd / ver1);
	printf("%-9s %3s %8s %9s %8s %9s %6s %7s %6s %6s %8s %6s\n", "mode", "run", "entries",
	       "entries/s", "wall s", "CPU us/e", "busy", "sigs/e", "wall", "CPU", "written MB",
	       "tail s");
	for (int mode = 0; mode < 2; mode++) {
		if (!(modes & (1 << mode)))
			continue;
		o.replay = mode == 1;
		double again = one_core_rate(raw_secs, 3, false);
		if (again > ver1) {
			ver1 = again;
			printf("one-core verify now %.0f/CPU-s (%.1f us): the bound from here\n",
			       ver1, 1e6 / ver1);
		}
		double best_rate = 0, best_cpu = 1e9;
		for (int r = 0; r < runs; r++) {
			rete_verify_report rep;
			double t0 = now_s(), c0 = self_cpu_s(), w0 = written_mb();
			if (rete_verify_log(s, &o, &rep, &m) != RETE_OK)
				die("the log does not verify: %s", m.text);
			double tail = now_s() - last_progress;
			double wall = now_s() - t0, cpu = self_cpu_s() - c0, w = written_mb() - w0;
			double rate = (double)rep.entries / wall, cpe = cpu / (double)rep.entries;
			/* signatures: every entry's own, and each Delivery's ack */
			double sigs =
			    (double)(rep.entries + rep.acks_verified) / (double)rep.entries;
			printf("%-9s %3d %8" PRIu64
			       " %9.0f %8.2f %9.1f %6.2f %7.2f %6.2f %6.2f %8.0f %6.2f\n",
			       o.replay ? "replay" : "no-replay", r + 1, rep.entries, rate, wall,
			       cpe * 1e6, cpu / wall, sigs, rate / (threads * ver1),
			       1 / (cpe * ver1), w, tail);
			fflush(stdout);
			if (rate > best_rate)
				best_rate = rate;
			if (cpe < best_cpu)
				best_cpu = cpe;
		}
		printf("%-9s best %9.0f entries/s (%.2f of bound), %.1f CPU us/entry (%.2f)\n",
		       o.replay ? "replay" : "no-replay", best_rate, best_rate / (threads * ver1),
		       best_cpu * 1e6, 1 / (best_cpu * ver1));
	}
	rete_store_close(&s);
}

static void usage(void)
{
	fputs("usage: audit_bench build DIR [--entries N] [--agencies A] [--no-deliveries]\n"
	      "       audit_bench run DIR [--replay|--both] [--threads T] [--runs R]\n"
	      "                           [--scratch FOLDER] [--raw-secs S]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t n = 20000;
	size_t nag = 8;
	bool deliveries = true;
	int modes = 1, runs = 3;
	unsigned threads = 0;
	const char *scratch = NULL;
	double raw_secs = 0.5;

	if (argc < 3 || sodium_init() < 0)
		usage();
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (strcmp(a, "--entries") == 0 && more)
			n = strtoull(argv[++i], NULL, 10);
		else if (strcmp(a, "--agencies") == 0 && more)
			nag = (size_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--no-deliveries") == 0)
			deliveries = false;
		else if (strcmp(a, "--replay") == 0)
			modes = 2;
		else if (strcmp(a, "--both") == 0)
			modes = 3;
		else if (strcmp(a, "--threads") == 0 && more)
			threads = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--runs") == 0 && more)
			runs = atoi(argv[++i]);
		else if (strcmp(a, "--scratch") == 0 && more)
			scratch = argv[++i];
		else if (strcmp(a, "--raw-secs") == 0 && more)
			raw_secs = atof(argv[++i]);
		else
			usage();
	}
	if (nag < 2 || nag > MAX_AGENCY || n == 0 || runs < 1)
		usage();
	if (strcmp(argv[1], "build") == 0)
		build(argv[2], n, nag, deliveries);
	else if (strcmp(argv[1], "run") == 0)
		run(argv[2], modes, threads, runs, scratch, raw_secs);
	else
		usage();
	return 0;
}
