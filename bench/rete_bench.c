/* rete_bench.c — what the machine and the store can do, side by side, in
 * one run:
 *   - raw Ed25519 sign and verify rates over 1 KiB messages, on one thread
 *     and on every core (the physical limit of everything else);
 *   - the store's durable append rate (each commit fsync'd) for batches of
 *     1, 10, 100 and 1,000 pre-signed ~1 KiB referrals;
 *   - the auditor's rete_verify_log rate (entries/second) without and with
 *     the lifecycle replay, and its ratio to the bound (cores x the
 *     one-thread verify rate).
 * Options: --entries N (the log verified; default 20000), --quick (tiny
 * sizes, for the smoke test), --json FILE (the results as JSON), --dir DIR
 * (where the temporary stores go; default $TMPDIR or /tmp), --threads N.
 * A benchmark, not a test: it prints numbers and asserts nothing about
 * them. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "checkpoint.h"
#include "codec.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"
#include "verify.h"

#define ORIGIN	  "bench.rete/mantova"
#define MSG_BYTES 1024

struct result {
	const char *name;
	double rate;
	const char *unit;
	char note[160];
};

static struct result results[16];
static size_t nresults;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct result *add_result(const char *name, double rate, const char *unit)
{
	struct result *r = &results[nresults++];
	r->name = name;
	r->rate = rate;
	r->unit = unit;
	r->note[0] = '\0';
	return r;
}

/* ---- raw Ed25519 ------------------------------------------------------------- */

struct raw_ctx {
	bool rc_verify;
	double rc_seconds;
	const uint8_t *rc_sk, *rc_pk, *rc_msg, *rc_sig;
	atomic_uint_fast64_t rc_ops;
	atomic_int rc_bad;
};

static void *raw_worker(void *arg)
{
	struct raw_ctx *c = arg;
	uint8_t sig[crypto_sign_BYTES];
	uint64_t n = 0;
	double end = now_s() + c->rc_seconds;

	do {
		for (int i = 0; i < 16; i++) {
			if (c->rc_verify) {
				if (crypto_sign_verify_detached(c->rc_sig, c->rc_msg, MSG_BYTES,
								c->rc_pk) != 0)
					atomic_store(&c->rc_bad, 1);
			} else {
				crypto_sign_detached(sig, NULL, c->rc_msg, MSG_BYTES, c->rc_sk);
			}
		}
		n += 16;
	} while (now_s() < end);
	atomic_fetch_add(&c->rc_ops, n);
	return NULL;
}

/* raw_rate runs threads workers for seconds; operations per second. */
static double raw_rate(bool verify, unsigned threads, double seconds, const uint8_t *sk,
		       const uint8_t *pk, const uint8_t *msg, const uint8_t *sig)
{
	struct raw_ctx c = {verify, seconds, sk, pk, msg, sig, 0, 0};
	pthread_t tid[256];
	unsigned started = 0;
	double t0 = now_s(), t1;

	for (unsigned i = 1; i < threads && i < 256; i++)
		if (pthread_create(&tid[started], NULL, raw_worker, &c) == 0)
			started++;
	raw_worker(&c);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	t1 = now_s();
	if (atomic_load(&c.rc_bad))
		fprintf(stderr, "rete_bench: a raw signature did not verify\n");
	return (double)atomic_load(&c.rc_ops) / (t1 - t0);
}

/* ---- messages ------------------------------------------------------------------ */

static rete_seckey *k_broker, *k_social, *k_cpi;

static rete_buf directory_entry(void)
{
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__Party p[3], *pp[3];
	const char *ids[3] = {"broker.mantova", "social.mantova", "cpi.mantova"};
	const rete_seckey *k[3] = {k_broker, k_social, k_cpi};
	rete_buf out = {0};

	for (int i = 0; i < 3; i++) {
		rete__party__init(&p[i]);
		p[i].id = (char *)ids[i];
		p[i].kind = i == 0 ? RETE__PARTY_KIND__PARTY_KIND_BROKER
				   : RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES;
		p[i].public_key.data = (uint8_t *)k[i]->pub.ed;
		p[i].public_key.len = RETE_PK_LEN;
		pp[i] = &p[i];
	}
	msg.id = (char *)"dir-1";
	msg.sender = (char *)"broker.mantova";
	msg.origin = (char *)ORIGIN;
	msg.created_at = 1790000000000;
	d.serial = 1;
	d.n_parties = 3;
	d.parties = pp;
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	rete_message_sign(&msg, k_broker, &out, NULL);
	return out;
}

/* referral signs a referral of about MSG_BYTES bytes (SignedMessage). */
static rete_buf referral(const char *id)
{
	static char pad[MSG_BYTES];
	static size_t padlen;
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Referral r = RETE__REFERRAL__INIT;
	Rete__Operator op = RETE__OPERATOR__INIT;
	uint8_t sha[32] = {7};
	rete_buf out = {0};

	msg.id = (char *)id;
	msg.sender = (char *)"social.mantova";
	msg.recipient = (char *)"cpi.mantova";
	msg.case_id = (char *)"case-0001";
	msg.created_at = 1790000000000;
	msg.origin = (char *)ORIGIN;
	op.staff_id = (char *)"staff-0042";
	op.role = (char *)"social-worker";
	msg.operator_ = &op;
	r.service = (char *)"employment-orientation";
	r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	r.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	r.private_sha256.data = sha;
	r.private_sha256.len = sizeof(sha);
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	if (padlen == 0) {
		/* size the padding once so that the signed message is ~1 KiB */
		size_t base;
		r.reason_code = (char *)"";
		rete_message_sign(&msg, k_social, &out, NULL);
		base = out.len;
		rete_buf_free(&out);
		padlen = base + 8 < MSG_BYTES ? MSG_BYTES - base - 8 : 1;
		memset(pad, 'x', padlen);
		pad[padlen] = '\0';
	}
	r.reason_code = pad;
	rete_message_sign(&msg, k_social, &out, NULL);
	return out;
}

/* ---- store appends ------------------------------------------------------------- */

static int rm_store(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	return rmdir(dir);
}

static char *make_dir(const char *parent, const char *tag)
{
	size_t n = strlen(parent) + strlen(tag) + 32;
	char *d = malloc(n);
	if (d == NULL)
		return NULL;
	snprintf(d, n, "%s/rete-bench-%s-XXXXXX", parent, tag);
	if (mkdtemp(d) == NULL) {
		fprintf(stderr, "rete_bench: cannot create a folder in %s: %s\n", parent,
			strerror(errno));
		free(d);
		return NULL;
	}
	return d;
}

/* append_rate appends `commits` batches of `batch` pre-signed referrals to
 * a new store; entries per second. With keep, the store folder is left for
 * the caller (*kept). */
static double append_rate(const char *parent, size_t batch, size_t commits, char **kept)
{
	rete_store *s = NULL;
	rete_store_op *ops = calloc(batch, sizeof(*ops));
	rete_buf *bufs = calloc(batch * commits, sizeof(*bufs));
	rete_buf dir = directory_entry();
	rete_store_op dop;
	char *d = make_dir(parent, "append"), id[64];
	rete_msg m = {{0}};
	double t0, t1;
	int64_t at = 1790000000000;

	if (ops == NULL || bufs == NULL || d == NULL) {
		fprintf(stderr, "rete_bench: out of memory\n");
		exit(2);
	}
	if (rete_store_open(&s, d, RETE_STORE_CREATE, &m) != RETE_OK) {
		fprintf(stderr, "rete_bench: %s\n", m.text);
		exit(2);
	}
	memset(&dop, 0, sizeof(dop));
	dop.kind = RETE_STORE_OP_APPEND;
	dop.in.signed_message = dir.data;
	dop.in.len = dir.len;
	dop.in.logged_at = at;
	if (rete_store_commit(s, &dop, 1, &m) != RETE_OK || dop.status != RETE_STORE_ACCEPTED) {
		fprintf(stderr, "rete_bench: the directory entry: %s %s\n", m.text, dop.error_text);
		exit(2);
	}
	rete_buf_free(&dir);
	for (size_t i = 0; i < batch * commits; i++) {
		snprintf(id, sizeof(id), "ref-%zu-%zu", batch, i);
		bufs[i] = referral(id);
	}
	t0 = now_s();
	for (size_t c = 0; c < commits; c++) {
		memset(ops, 0, batch * sizeof(*ops));
		for (size_t i = 0; i < batch; i++) {
			ops[i].kind = RETE_STORE_OP_APPEND;
			ops[i].in.signed_message = bufs[c * batch + i].data;
			ops[i].in.len = bufs[c * batch + i].len;
			ops[i].in.logged_at = ++at;
		}
		if (rete_store_commit(s, ops, batch, &m) != RETE_OK) {
			fprintf(stderr, "rete_bench: commit: %s\n", m.text);
			exit(2);
		}
		if (ops[0].status != RETE_STORE_ACCEPTED) {
			fprintf(stderr, "rete_bench: refused: %s\n", ops[0].error_text);
			exit(2);
		}
	}
	t1 = now_s();
	rete_store_close(&s);
	for (size_t i = 0; i < batch * commits; i++)
		rete_buf_free(&bufs[i]);
	free(bufs);
	free(ops);
	if (kept != NULL) {
		*kept = d;
	} else {
		rm_store(d);
		free(d);
	}
	return (double)(batch * commits) / (t1 - t0);
}

/* add_checkpoints signs a checkpoint every `every` entries and at the end. */
static void add_checkpoints(const char *dir, uint64_t every)
{
	rete_store *s = NULL;
	uint64_t size;
	rete_msg m = {{0}};

	if (rete_store_open(&s, dir, 0, &m) != RETE_OK || rete_store_size(s, NULL, &size, &m)) {
		fprintf(stderr, "rete_bench: %s\n", m.text);
		exit(2);
	}
	for (uint64_t n = every; n <= size + every - 1; n += every) {
		uint8_t root[RETE_MERKLE_HASH];
		char *note = NULL;
		uint64_t at = n < size ? n : size;
		if (rete_store_root(s, NULL, at, root, &m) != RETE_OK ||
		    rete_checkpoint_sign(ORIGIN, at, root, k_broker, &note, &m) != RETE_OK ||
		    rete_store_checkpoint_put(s, at, note, &m) != RETE_OK) {
			fprintf(stderr, "rete_bench: checkpoint: %s\n", m.text);
			exit(2);
		}
		free(note);
	}
	rete_store_close(&s);
}

static double verify_rate(const char *dir, bool replay, unsigned threads, const char *parent,
			  uint64_t *entries)
{
	rete_store *s = NULL;
	rete_verify_options o;
	rete_verify_report rep;
	rete_msg m = {{0}};
	double t0, t1;

	memset(&o, 0, sizeof(o));
	o.broker_key = k_broker->pub;
	o.replay = replay;
	o.threads = threads;
	o.scratch_dir = parent;
	if (rete_store_open(&s, dir, RETE_STORE_RDONLY, &m) != RETE_OK) {
		fprintf(stderr, "rete_bench: %s\n", m.text);
		exit(2);
	}
	t0 = now_s();
	if (rete_verify_log(s, &o, &rep, &m) != RETE_OK) {
		fprintf(stderr, "rete_bench: the benchmark log does not verify: %s\n", m.text);
		exit(2);
	}
	t1 = now_s();
	rete_store_close(&s);
	*entries = rep.entries;
	return (double)rep.entries / (t1 - t0);
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "usage: rete_bench [--entries N] [--quick] [--json FILE] [--dir DIR]\n"
		     "                  [--threads N]\n"
		     "\n"
		     "Prints the raw Ed25519 sign and verify rates (1 KiB messages; one thread\n"
		     "and every core), the store's durable append rate for batches of 1, 10,\n"
		     "100 and 1000 pre-signed ~1 KiB referrals, and the rate of the auditor's\n"
		     "verification of a log of N entries (default 20000) without and with the\n"
		     "lifecycle replay, beside its bound (cores x one-thread verify rate).\n"
		     "  --quick      tiny sizes and short timings (a smoke test, not a measure)\n"
		     "  --json FILE  also write the results as JSON\n"
		     "  --dir DIR    where the temporary stores go (default $TMPDIR or /tmp);\n"
		     "               use the disk the broker will use\n"
		     "  --threads N  threads for the 'all cores' rows (default: online cores)\n");
}

int main(int argc, char **argv)
{
	uint64_t entries = 20000, verified = 0, tmp;
	bool quick = false;
	const char *json_file = NULL, *parent = getenv("TMPDIR");
	unsigned cores = rete_verify_cores();
	double secs, sign1, signn, ver1, vern, vnr, vr, bound;
	uint8_t msg[MSG_BYTES], sig[crypto_sign_BYTES];
	char *logdir = NULL;
	const size_t batches[4] = {1, 10, 100, 1000};
	static char names[4][48];
	struct result *r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
		} else if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc) {
			char *end;
			entries = strtoull(argv[++i], &end, 10);
			if (*end != '\0' || entries < 1) {
				fprintf(stderr, "rete_bench: --entries '%s': give a number >= 1\n",
					argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
			json_file = argv[++i];
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			parent = argv[++i];
		} else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			int t = atoi(argv[++i]);
			if (t < 1 || t > 256) {
				fprintf(stderr, "rete_bench: --threads '%s': give 1 to 256\n",
					argv[i]);
				return 2;
			}
			cores = (unsigned)t;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "rete_bench: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (parent == NULL || *parent == '\0')
		parent = "/tmp";
	if (quick && entries == 20000)
		entries = 300;
	secs = quick ? 0.05 : 1.0;
	if (rete_crypto_init(NULL) != RETE_OK || rete_seckey_generate(&k_broker, NULL) != RETE_OK ||
	    rete_seckey_generate(&k_social, NULL) != RETE_OK ||
	    rete_seckey_generate(&k_cpi, NULL) != RETE_OK) {
		fprintf(stderr, "rete_bench: libsodium does not start\n");
		return 2;
	}

	/* raw Ed25519 */
	randombytes_buf(msg, sizeof(msg));
	crypto_sign_detached(sig, NULL, msg, sizeof(msg), k_social->ed_sk);
	sign1 = raw_rate(false, 1, secs, k_social->ed_sk, k_social->pub.ed, msg, sig);
	signn = raw_rate(false, cores, secs, k_social->ed_sk, k_social->pub.ed, msg, sig);
	ver1 = raw_rate(true, 1, secs, k_social->ed_sk, k_social->pub.ed, msg, sig);
	vern = raw_rate(true, cores, secs, k_social->ed_sk, k_social->pub.ed, msg, sig);
	add_result("ed25519 sign, 1 thread", sign1, "signatures/s");
	r = add_result("ed25519 sign, all cores", signn, "signatures/s");
	snprintf(r->note, sizeof(r->note), "%u threads", cores);
	add_result("ed25519 verify, 1 thread", ver1, "verifications/s");
	r = add_result("ed25519 verify, all cores", vern, "verifications/s");
	snprintf(r->note, sizeof(r->note), "%u threads", cores);

	/* durable appends */
	for (int b = 0; b < 4; b++) {
		size_t commits = (size_t)(entries / batches[b]);
		size_t cap = quick ? 5 : 500;
		double rate;
		if (commits > cap)
			commits = cap;
		if (commits < 3)
			commits = quick ? 1 : 3;
		rate = append_rate(parent, batches[b], commits, NULL);
		snprintf(names[b], sizeof(names[b]), "store append, batch %zu", batches[b]);
		r = add_result(names[b], rate, "entries/s");
		snprintf(r->note, sizeof(r->note), "%zu durable commits", commits);
	}

	/* the log to verify: `entries` referrals (rounded down to whole batches)
	 * after the directory */
	{
		size_t batch = entries < 1000 ? (size_t)entries : 1000;
		append_rate(parent, batch, (size_t)(entries / batch), &logdir);
	}
	add_checkpoints(logdir, quick ? 100 : 1000);
	bound = (double)cores * ver1;
	vnr = verify_rate(logdir, false, cores, parent, &verified);
	r = add_result("audit verify, no replay", vnr, "entries/s");
	snprintf(r->note, sizeof(r->note),
		 "%.0f%% of bound %.0f/s (%u x 1-thread verify); %.0f%% of all-core raw",
		 100.0 * vnr / bound, bound, cores, 100.0 * vnr / vern);
	vr = verify_rate(logdir, true, cores, parent, &tmp);
	r = add_result("audit verify, with replay", vr, "entries/s");
	snprintf(r->note, sizeof(r->note), "%.0f%% of bound; %.0f%% of all-core raw",
		 100.0 * vr / bound, 100.0 * vr / vern);
	rm_store(logdir);
	free(logdir);

	printf("rete bench: %u cores, ~%d-byte signed referrals, audit log of %" PRIu64
	       " entries\n\n",
	       rete_verify_cores(), MSG_BYTES, verified);
	printf("%-28s %14s  %-16s %s\n", "what", "rate", "unit", "note");
	for (size_t i = 0; i < nresults; i++)
		printf("%-28s %14.0f  %-16s %s\n", results[i].name, results[i].rate,
		       results[i].unit, results[i].note);
	fflush(stdout);

	if (json_file != NULL) {
		json_t *o = json_object(), *a = json_array();
		for (size_t i = 0; i < nresults; i++) {
			json_t *e = json_object();
			json_object_set_new(e, "name", json_string(results[i].name));
			json_object_set_new(e, "rate", json_real(results[i].rate));
			json_object_set_new(e, "unit", json_string(results[i].unit));
			if (results[i].note[0] != '\0')
				json_object_set_new(e, "note", json_string(results[i].note));
			json_array_append_new(a, e);
		}
		json_object_set_new(o, "cores", json_integer(rete_verify_cores()));
		json_object_set_new(o, "threads", json_integer(cores));
		json_object_set_new(o, "messageBytes", json_integer(MSG_BYTES));
		json_object_set_new(o, "auditEntries", json_integer((json_int_t)verified));
		json_object_set_new(o, "verifyBound", json_real(bound));
		json_object_set_new(o, "results", a);
		if (json_dump_file(o, json_file, JSON_INDENT(2)) != 0) {
			fprintf(stderr, "rete_bench: cannot write %s\n", json_file);
			json_decref(o);
			return 2;
		}
		json_decref(o);
	}
	rete_seckey_free(&k_broker);
	rete_seckey_free(&k_social);
	rete_seckey_free(&k_cpi);
	return 0;
}
