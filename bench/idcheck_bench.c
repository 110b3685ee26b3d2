/* idcheck_bench — what the broker's id check (broker.c id_check) costs at
 * start: `rete-broker --check-config` (the store read as the start reads
 * it) on a log of N referrals, run with three broker ids:
 *
 *   kept     the broker's id in the directory in force: no walk
 *   new      an id no party ever had: the whole log walked, no entry holds
 *            the id's bytes, none decoded
 *   former   the id of an agency removed from the directory, sender or
 *            recipient of every referral: the whole log walked and every
 *            entry decoded (the worst case); refused
 *
 * The log: a Directory with the broker and two agencies, N ~1 KiB
 * referrals between them (signatures of zeros: the store does not verify,
 * and --check-config reads no signature), a Directory without the first
 * agency. Prints the check's CPU time (user + system, from wait4), best of
 * --rounds runs, and its exit code (and, when not 0, the first line of
 * what it said). A benchmark, not a test; the files go
 * in a temporary folder (--dir to choose its parent), removed at exit.
 *
 *   bin/idcheck_bench [--entries N] [--rounds R] [--dir DIR] [--broker PATH]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_NAME "idcheck_bench"
#include "bench_referral.h"
#include "bench_util.h"
#include "codec.h"
#include "keys.h"
#include "store.h"
#include "store_identity.h"

#define ORIGIN "bench.rete"
#define BROKER "broker.bench"
#define GONE   "gone.bench"
#define STAY   "stay.bench"
#define BATCH  1000

/* signed_zero packs msg as a SignedMessage with a signature of zeros. */
static void signed_zero(const Rete__Message *msg, rete_buf *out)
{
	rete_buf body = {0};
	uint8_t sig[RETE_SIG_LEN] = {0};
	Rete__SignedMessage sm = RETE__SIGNED_MESSAGE__INIT;
	if (rete_message_pack(msg, &body) != RETE_OK)
		die("out of memory");
	sm.message.data = body.data;
	sm.message.len = body.len;
	sm.signature.data = sig;
	sm.signature.len = sizeof(sig);
	out->len = rete__signed_message__get_packed_size(&sm);
	out->data = malloc(out->len);
	if (out->data == NULL)
		die("out of memory");
	rete__signed_message__pack(&sm, out->data);
	rete_buf_free(&body);
}

static void commit(rete_store *s, rete_store_op *ops, size_t n)
{
	rete_msg m;
	if (rete_store_commit(s, ops, n, &m) != RETE_OK)
		die("commit: %s", m.text);
	for (size_t i = 0; i < n; i++)
		if (ops[i].status != RETE_STORE_ACCEPTED)
			die("entry refused: %s", ops[i].error_text);
}

/* directory appends Directory serial: the broker, STAY and, when gone,
 * GONE. */
static void directory(rete_store *s, uint64_t serial, bool gone, rete_pubkey *const keys[3])
{
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__Party p[3] = {RETE__PARTY__INIT, RETE__PARTY__INIT, RETE__PARTY__INIT};
	Rete__Party *pp[3] = {&p[0], &p[1], &p[2]};
	const char *id[3] = {BROKER, STAY, GONE};
	const Rete__PartyKind kind[3] = {RETE__PARTY_KIND__PARTY_KIND_BROKER,
					 RETE__PARTY_KIND__PARTY_KIND_JOB_CENTRE,
					 RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES};
	char mid[32];
	for (int i = 0; i < 3; i++) {
		p[i].id = (char *)id[i];
		p[i].name = (char *)id[i];
		p[i].kind = kind[i];
		p[i].public_key.data = keys[i]->ed;
		p[i].public_key.len = RETE_PK_LEN;
	}
	d.serial = serial;
	d.parties = pp;
	d.n_parties = gone ? 3 : 2;
	d.time_zone = (char *)"Europe/Rome";
	d.expiry_ms = 30LL * 86400000;
	snprintf(mid, sizeof(mid), "directory-%llu", (unsigned long long)serial);
	msg.id = mid;
	msg.sender = (char *)BROKER;
	msg.created_at = 1764000000000;
	msg.origin = (char *)ORIGIN;
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	rete_buf b = {0};
	signed_zero(&msg, &b);
	rete_store_op op;
	memset(&op, 0, sizeof(op));
	op.kind = RETE_STORE_OP_APPEND;
	op.in.signed_message = b.data;
	op.in.len = b.len;
	op.in.logged_at = 1764000000000;
	commit(s, &op, 1);
	rete_buf_free(&b);
}

/* write_ini writes DIR/ID.ini: the broker under id, STAY its one agency. */
static void write_ini(const char *id, char *path, size_t len)
{
	snprintf(path, len, "%s/%s.ini", bench_tmp, id);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		die("cannot write %s", path);
	fprintf(f,
		"[broker]\norigin = " ORIGIN "\nid = %s\nkey = keys/" BROKER ".key\n"
		"listen = ipc://%s/b.sock\nevents = ipc://%s/e.sock\ndata = store\n\n"
		"[limits]\nroutine = 5d\nurgent = 2d\nemergency = 4h\n\n"
		"[policy]\nroutes = social-services>job-centre\n\n"
		"[agency " STAY "]\nname = " STAY "\nkind = job-centre\nkey = keys/" STAY
		".pub\nservices = employment-orientation\n",
		id, bench_tmp, bench_tmp);
	if (fclose(f) != 0)
		die("cannot write %s", path);
}

/* check_cpu runs `broker -c ini --check-config` rounds times: the least
 * CPU time (ms) of a run, and its exit code in *rc. */
static double check_cpu(const char *broker, const char *ini, int rounds, int *rc)
{
	double best = -1;
	for (int r = 0; r < rounds; r++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork failed");
		if (pid == 0) {
			char err[PATH_MAX + 16];
			snprintf(err, sizeof(err), "%s/check.err", bench_tmp);
			int null = open("/dev/null", O_WRONLY);
			int efd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			dup2(null, 1);
			dup2(efd, 2);
			execl(broker, broker, "-c", ini, "--check-config", (char *)NULL);
			_exit(127);
		}
		int st = 0;
		struct rusage ru;
		if (wait4(pid, &st, 0, &ru) != pid)
			die("wait4 failed");
		*rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		double ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
			    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
		if (best < 0 || ms < best)
			best = ms;
	}
	return best;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"entries", required_argument, NULL, 'n'},
					     {"rounds", required_argument, NULL, 'r'},
					     {"dir", required_argument, NULL, 'd'},
					     {"broker", required_argument, NULL, 'b'},
					     {NULL, 0, NULL, 0}};
	size_t entries = 100000;
	int rounds = 3, ch;
	const char *parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char broker[PATH_MAX] = "";
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			entries = strtoul(optarg, NULL, 10);
		else if (ch == 'r')
			rounds = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else if (ch == 'd')
			parent = optarg;
		else if (ch == 'b')
			snprintf(broker, sizeof(broker), "%s", optarg);
		else
			die("usage: idcheck_bench [--entries N] [--rounds R] [--dir DIR] "
			    "[--broker PATH]");
	}
	if (broker[0] == '\0') {
		const char *slash = strrchr(argv[0], '/');
		snprintf(broker, sizeof(broker), "%.*srete-broker",
			 slash ? (int)(slash - argv[0] + 1) : 0, argv[0]);
	}
	bench_tmp_make(parent);

	/* keys: the broker's and the two agencies' */
	char kdir[PATH_MAX + 8], sdir[PATH_MAX + 8];
	snprintf(kdir, sizeof(kdir), "%s/keys", bench_tmp);
	snprintf(sdir, sizeof(sdir), "%s/store", bench_tmp);
	if (mkdir(kdir, 0700) != 0)
		die("cannot make %s", kdir);
	rete_seckey *k[3] = {NULL, NULL, NULL};
	const char *kid[3] = {BROKER, STAY, GONE};
	rete_msg m;
	for (int i = 0; i < 3; i++)
		if (rete_seckey_generate(&k[i], &m) != RETE_OK ||
		    rete_keyfile_write(kdir, kid[i], k[i], false, &m) != RETE_OK)
			die("keys: %s", m.text);
	rete_pubkey *pub[3] = {&k[0]->pub, &k[1]->pub, &k[2]->pub};

	/* the log */
	rete_store *s = NULL;
	if (rete_store_open(&s, sdir, RETE_STORE_CREATE, &m) != RETE_OK ||
	    rete_store_identity_init(s, ORIGIN, &k[0]->pub, &m) != RETE_OK)
		die("store: %s", m.text);
	directory(s, 1, true, pub);
	char pad[800], id[32];
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	uint8_t hash[32] = {0};
	rete_store_op *ops = calloc(BATCH, sizeof(*ops));
	rete_buf *bytes = calloc(BATCH, sizeof(*bytes));
	if (ops == NULL || bytes == NULL)
		die("out of memory");
	for (size_t done = 0; done < entries;) {
		size_t n = entries - done < BATCH ? entries - done : BATCH;
		for (size_t i = 0; i < n; i++) {
			struct bench_referral b;
			bool out = (done + i) % 2 == 0;
			snprintf(id, sizeof(id), "R-%08zu", done + i);
			signed_zero(bench_referral_init(&b, id, out ? GONE : STAY,
							out ? STAY : GONE, ORIGIN, 1764000000000,
							pad, hash),
				    &bytes[i]);
			memset(&ops[i], 0, sizeof(ops[i]));
			ops[i].kind = RETE_STORE_OP_APPEND;
			ops[i].in.signed_message = bytes[i].data;
			ops[i].in.len = bytes[i].len;
			ops[i].in.logged_at = 1764000000000 + (int64_t)(done + i);
		}
		commit(s, ops, n);
		for (size_t i = 0; i < n; i++)
			rete_buf_free(&bytes[i]);
		done += n;
	}
	directory(s, 2, false, pub);
	rete_store_close(&s);
	free(ops);
	free(bytes);
	for (int i = 0; i < 3; i++)
		rete_seckey_free(&k[i]);

	static const struct {
		const char *name, *id;
	} runs[] = {{"kept", BROKER}, {"new", "broker.nuovo"}, {"former", GONE}};
	printf("rete-broker --check-config on a log of %zu referrals (+2 directories), CPU "
	       "time, best of %d:\n",
	       entries, rounds);
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		char ini[PATH_MAX + 80];
		int rc = 0;
		write_ini(runs[i].id, ini, sizeof(ini));
		double ms = check_cpu(broker, ini, rounds, &rc);
		printf("  %-7s id %-14s %9.1f ms  exit %d\n", runs[i].name, runs[i].id, ms, rc);
		if (rc != 0) {
			/* what the check said (its first line, cut) */
			char err[PATH_MAX + 16], line[512] = "";
			snprintf(err, sizeof(err), "%s/check.err", bench_tmp);
			FILE *f = fopen(err, "r");
			if (f != NULL && fgets(line, sizeof(line), f) != NULL)
				printf("          %s", line);
			if (f != NULL)
				fclose(f);
		}
	}
	return 0;
}
