/* test_journal.c — the broker store's journal (store/store_journal.c,
 * schema 4) on real files and real processes.
 *
 * A batch whose durable callback ran was receipted: it must be in the
 * store after anything that can happen next. Each test builds the same
 * sequence of batches twice: in a journaled store, through
 * rete_store_commit_durable, and in a reference store committed the plain
 * way; then compares the two stores database by database, byte by byte
 * (every key and value of every named database), so that a write the
 * journal failed to record (a put, a delete, a reserved value) shows.
 *
 *  - a writer killed inside the callback (the journal flushed, LMDB not
 *    yet committed): the next writable open replays the batch;
 *  - LMDB losing its last two commits (the power cut MDB_NOMETASYNC
 *    allows, played by putting back an earlier copy of data.mdb): both
 *    records are replayed, in order;
 *  - a record cut short (a write the kill interrupted) is ignored;
 *  - a journal that does not follow the store (a copy of data.mdb put
 *    into a folder holding later records) refuses the open, saying so;
 *  - another store's data.mdb at the same commit and size, put by hand
 *    into the folder: its record is not applied (the last leaf differs);
 *  - a read-only open reads LMDB as it is and leaves the journal alone;
 *  - a tool's writable open keeps a schema-3 store at 3, the broker's
 *    (journaled) makes it 4.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"
#include "store_identity.h"
#include "testutil.h"

#define SOCIAL "social.mantova"
#define CPI    "cpi.mantova"
#define BATCH  5

static rete_seckey *social_key;

/* sign_msg signs message n: a referral "j-<n>" (even n) or an update of
 * referral "j-<n-1>" to accepted... kept simple: referrals, and every
 * third batch a checkpoint and acks, so that puts, reserved puts and
 * deletes all occur. */
static int sign_referral(uint64_t n, rete_buf *out)
{
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Referral r = RETE__REFERRAL__INIT;
	char id[32];

	snprintf(id, sizeof(id), "j-%llu", (unsigned long long)n);
	msg.id = id;
	msg.sender = (char *)SOCIAL;
	msg.recipient = (char *)CPI;
	msg.case_id = (char *)(n % 2 ? "case-odd" : "case-even");
	msg.created_at = 1800000000000 + (int64_t)n;
	r.service = (char *)"employment-orientation";
	r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	return rete_message_sign(&msg, social_key, out, NULL) == RETE_OK ? 0 : -1;
}

struct job {
	rete_store_op ops[2 * BATCH];
	rete_buf bufs[BATCH];
	size_t n;
	char note[64]; /* a checkpoint with it, or "" */
	uint64_t cp_size;
};

/* job_make builds batch k on a log of `size` entries: BATCH referrals
 * with a sealed part, the acks of the batch before the last (queue and
 * sealed part deleted), and every third batch a checkpoint. */
static void job_make(struct job *j, uint64_t k, uint64_t size)
{
	static const uint8_t sealed[48] = {7, 7, 7};
	memset(j, 0, sizeof(*j));
	for (size_t i = 0; i < BATCH; i++) {
		assert_int_equal(sign_referral(size + i, &j->bufs[i]), 0);
		rete_store_op *op = &j->ops[j->n++];
		op->kind = RETE_STORE_OP_APPEND;
		op->in.signed_message = j->bufs[i].data;
		op->in.len = j->bufs[i].len;
		op->in.logged_at = 1800000000000 + (int64_t)(size + i);
		op->in.sealed = sealed;
		op->in.sealed_len = sizeof(sealed);
	}
	for (size_t i = 0; size >= 2 * BATCH && i < BATCH; i++) {
		rete_store_op *op = &j->ops[j->n++];
		op->kind = RETE_STORE_OP_ACK;
		op->in.recipient = CPI;
		op->in.index = size - 2 * BATCH + i;
	}
	if (k % 3 == 2 && size > 0) {
		snprintf(j->note, sizeof(j->note), "checkpoint of %llu", (unsigned long long)size);
		j->cp_size = size;
	}
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < BATCH; i++)
		rete_buf_free(&j->bufs[i]);
}

struct told {
	int fd;	       /* the size is written here when durable (or -1) */
	bool die;      /* SIGKILL itself inside the callback */
	uint64_t size; /* the log size the batch leaves */
	int calls;
};

static void on_durable(void *ctx, rete_store_rtxn *rt)
{
	struct told *t = ctx;
	(void)rt;
	t->calls++;
	if (t->fd >= 0 && write(t->fd, &t->size, sizeof(t->size)) != (ssize_t)sizeof(t->size))
		_exit(90);
	if (t->die)
		raise(SIGKILL); /* after the journal's flush, before LMDB's commit */
}

/* run_jobs commits batches [from, to) to the store in dir; journaled:
 * through the journal (the callback told each time), else plainly. The
 * last batch kills the process when die. Returns the log size. */
static uint64_t run_jobs(const char *dir, bool journaled, uint64_t from, uint64_t to, int fd,
			 bool die)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	uint64_t size;

	if (rete_store_open(&s, dir, journaled ? RETE_STORE_JOURNAL : 0, &m) != RETE_OK)
		fail_msg("open %s: %s", dir, m.text);
	assert_int_equal(rete_store_size(s, NULL, &size, &m), RETE_OK);
	for (uint64_t k = from; k < to; k++) {
		struct job j;
		struct told t = {fd, die && k + 1 == to, size + BATCH, 0};
		bool called = false;
		job_make(&j, k, size);
		rete_err err = rete_store_commit_durable(
		    s, j.ops, j.n, NULL, j.cp_size, j.note[0] ? j.note : NULL,
		    journaled ? on_durable : NULL, &t, &called, &m);
		if (err != RETE_OK)
			fail_msg("batch %llu: %s", (unsigned long long)k, m.text);
		assert_int_equal(called, journaled);
		assert_int_equal(t.calls, journaled ? 1 : 0);
		for (size_t i = 0; i < BATCH; i++)
			assert_int_equal(j.ops[i].status, RETE_STORE_ACCEPTED);
		job_free(&j);
		size += BATCH;
	}
	rete_store_close(&s);
	return size;
}

/* in_child runs run_jobs in a child process; returns its wait status. */
static int in_child(const char *dir, uint64_t from, uint64_t to, int fd, bool die)
{
	int st = 0;
	pid_t pid = fork(); /* no environment is open in this process here */
	assert_true(pid >= 0);
	if (pid == 0) {
		run_jobs(dir, true, from, to, fd, die);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

/* store_digest hashes every named database's keys and values (and the
 * databases' names), in LMDB's order. */
static void store_digest(const char *dir, uint8_t out[32])
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi main_dbi;
	MDB_cursor *c;
	MDB_val k, v;
	crypto_generichash_state h;

	crypto_generichash_init(&h, NULL, 0, 32);
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &main_dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, main_dbi, &c), 0);
	char names[32][64];
	size_t nn = 0;
	while (mdb_cursor_get(c, &k, &v, nn == 0 ? MDB_FIRST : MDB_NEXT) == 0 && nn < 32) {
		snprintf(names[nn], sizeof(names[nn]), "%.*s", (int)k.mv_size, (char *)k.mv_data);
		nn++;
	}
	mdb_cursor_close(c);
	assert_true(nn >= 10);
	for (size_t i = 0; i < nn; i++) {
		MDB_dbi d;
		uint64_t count = 0;
		assert_int_equal(mdb_dbi_open(txn, names[i], 0, &d), 0);
		crypto_generichash_update(&h, (const uint8_t *)names[i], strlen(names[i]) + 1);
		assert_int_equal(mdb_cursor_open(txn, d, &c), 0);
		for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			uint8_t len[16];
			for (int b = 0; b < 8; b++) {
				len[b] = (uint8_t)(k.mv_size >> (8 * b));
				len[8 + b] = (uint8_t)(v.mv_size >> (8 * b));
			}
			crypto_generichash_update(&h, len, sizeof(len));
			crypto_generichash_update(&h, k.mv_data, k.mv_size);
			crypto_generichash_update(&h, v.mv_data, v.mv_size);
			count++;
		}
		mdb_cursor_close(c);
		crypto_generichash_update(&h, (const uint8_t *)&count, sizeof(count));
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	crypto_generichash_final(&h, out, 32);
}

static uint64_t store_size_of(const char *dir, unsigned flags)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	uint64_t size = 0;
	if (rete_store_open(&s, dir, flags, &m) != RETE_OK)
		fail_msg("open %s: %s", dir, m.text);
	assert_int_equal(rete_store_size(s, NULL, &size, &m), RETE_OK);
	rete_store_close(&s);
	return size;
}

static void make_store(const char *dir)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_CREATE, &m), RETE_OK);
	rete_store_close(&s);
}

/* make_reference: a store committed without a journal, to compare with a
 * journaled one: it gets the mark the broker's open writes (meta
 * "journal", the files were made) */
static void make_reference(const char *dir)
{
	make_store(dir);
	tu_raw_put(dir, "meta", "journal", 7, "1", 1);
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	char *d = tu_read_file(from, &len);
	assert_non_null(d);
	assert_int_equal(tu_write_file(to, d, len), 0);
	free(d);
}

/* A writer killed after the journal's flush and before LMDB's commit, in
 * round after round: each time the batch it was told of is there after
 * the next open, and the store equals one committed without a journal. */
static void test_killed_before_lmdb(void **state)
{
	(void)state;
	char *root = tu_tmpdir("jnl");
	char jdir[512], rdir[512];
	uint64_t done = 0;
	uint8_t a[32], b[32];

	tu_path(jdir, sizeof(jdir), "%s/journaled", root);
	tu_path(rdir, sizeof(rdir), "%s/reference", root);
	make_store(jdir);
	make_reference(rdir);
	for (int round = 0; round < 6; round++) {
		int p[2];
		uint64_t told = 0, v;
		assert_int_equal(pipe(p), 0);
		/* 1 to 3 batches, the last one killed in its callback */
		uint64_t n = 1 + (uint64_t)round % 3;
		int st = in_child(jdir, done, done + n, p[1], true);
		close(p[1]);
		while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
			told = v;
		close(p[0]);
		if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
			fail_msg("round %d: the writer was not killed in its callback (status "
				 "0x%x)",
				 round, st);
		done += n;
		assert_int_equal(told, done * BATCH);
		/* what LMDB alone holds (a reader does not replay) */
		uint64_t lmdb = store_size_of(jdir, RETE_STORE_RDONLY);
		if (lmdb != told - BATCH)
			fail_msg("round %d: LMDB held %llu entries before the replay; %llu "
				 "expected (the last batch in the journal only)",
				 round, (unsigned long long)lmdb,
				 (unsigned long long)(told - BATCH));
		/* the next writable open replays it */
		uint64_t after = store_size_of(jdir, 0);
		if (after != told)
			fail_msg("round %d: the store holds %llu entries after the kill; the "
				 "writer was told %llu were durable",
				 round, (unsigned long long)after, (unsigned long long)told);
		run_jobs(rdir, false, done - n, done, -1, false);
		store_digest(jdir, a);
		store_digest(rdir, b);
		if (memcmp(a, b, 32) != 0)
			fail_msg("round %d: the store replayed from its journal differs from the "
				 "one committed without it",
				 round);
	}
	tu_rmrf(root);
	free(root);
}

/* The broker's lists of deliveries set aside go with a batch
 * (rete_store_commit_parked), in its journal record: a batch killed in
 * its callback (durable in the journal, not in LMDB) is replayed with its
 * list, which replaces the one of the batch before (review s14
 * rev-setaside, 2: the ACK and the list change in one commit). */
static void test_parked_between_batches(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jnlpark");
	static const uint64_t list[] = {1, 3, 4};
	make_store(dir);
	pid_t pid = fork(); /* no environment is open in this process here */
	assert_true(pid >= 0);
	if (pid == 0) {
		rete_store *s = NULL;
		rete_msg m = {{0}};
		if (rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m) != RETE_OK)
			_exit(91);
		for (uint64_t k = 0; k < 2; k++) {
			struct job j;
			struct told t = {-1, k == 1, (k + 1) * BATCH, 0};
			bool called = false;
			job_make(&j, k, k * BATCH);
			rete_store_parked l = {"cpi.mantova", list, k == 0 ? 1 : 3};
			if (rete_store_commit_parked(s, j.ops, j.n, NULL, j.cp_size,
						     j.note[0] ? j.note : NULL, &l, 1, on_durable,
						     &t, &called, &m) != RETE_OK)
				_exit(92);
			job_free(&j);
		}
		_exit(94); /* not killed in the second batch's callback */
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
		fail_msg("the writer was not killed in its callback (status 0x%x)", st);
	assert_int_equal(store_size_of(dir, RETE_STORE_RDONLY), BATCH);
	assert_int_equal(store_size_of(dir, 0), 2 * BATCH); /* replayed */
	rete_store *s = NULL;
	rete_msg m = {{0}};
	uint64_t *got = NULL;
	size_t n = 0;
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(rete_store_parked_get(s, NULL, "cpi.mantova", RETE_STORE_PARKED_MAX, &got,
					       &n, NULL, &m),
			 RETE_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(got, list, sizeof(list));
	free(got);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* flip_record flips a byte of the body of the record of journal file
 * path (its hash fails: damage, or a write torn by a crash). */
static void flip_record(const char *path)
{
	size_t l;
	char *d = tu_read_file(path, &l);
	assert_non_null(d);
	assert_true(l > 200);
	d[200] ^= 0x55;
	assert_int_equal(tu_write_file(path, d, l), 0);
	free(d);
}

/* record_seq: the commit the record of journal file path holds. */
static uint64_t record_seq(const char *path)
{
	size_t l;
	uint64_t seq = 0;
	char *d = tu_read_file(path, &l);
	assert_non_null(d);
	for (int i = 0; i < 8; i++)
		seq = (seq << 8) | (uint8_t)d[8 + i];
	free(d);
	return seq;
}

/* LMDB loses its last two commits (MDB_NOMETASYNC's power cut, played by
 * an earlier copy of data.mdb): both journal records are replayed. A
 * record cut short is ignored; records that do not follow the store
 * refuse the open. */
static void test_lmdb_behind(void **state)
{
	(void)state;
	char *root = tu_tmpdir("jnl");
	char jdir[512], rdir[512], data[600], keep[600], keep2[600], j0[600], j1[600];
	uint8_t a[32], b[32];
	rete_store *s = NULL;
	rete_msg m = {{0}};

	tu_path(jdir, sizeof(jdir), "%s/journaled", root);
	tu_path(rdir, sizeof(rdir), "%s/reference", root);
	tu_path(data, sizeof(data), "%s/data.mdb", jdir);
	tu_path(keep, sizeof(keep), "%s/data.mdb.3", root);
	tu_path(keep2, sizeof(keep2), "%s/data.mdb.2", root);
	tu_path(j0, sizeof(j0), "%s/journal.0", jdir);
	tu_path(j1, sizeof(j1), "%s/journal.1", jdir);
	make_store(jdir);
	make_reference(rdir);
	run_jobs(jdir, true, 0, 2, -1, false);
	copy_file(data, keep2); /* after 2 batches */
	run_jobs(jdir, true, 2, 3, -1, false);
	copy_file(data, keep); /* after 3 batches */
	run_jobs(jdir, true, 3, 5, -1, false);
	run_jobs(rdir, false, 0, 5, -1, false);
	assert_true(tu_exists(j0) && tu_exists(j1));

	/* LMDB back at 3 batches, the journal holding batches 4 and 5 */
	copy_file(keep, data);
	assert_int_equal(store_size_of(jdir, RETE_STORE_RDONLY), 3 * BATCH);
	assert_int_equal(store_size_of(jdir, 0), 5 * BATCH);
	store_digest(jdir, a);
	store_digest(rdir, b);
	assert_memory_equal(a, b, 32);

	/* the newest record cut short: only the one before is replayed */
	copy_file(keep, data);
	flip_record(record_seq(j0) > record_seq(j1) ? j0 : j1);
	assert_int_equal(store_size_of(jdir, 0), 4 * BATCH);

	/* a journal that does not follow: LMDB two batches behind its older
	 * record */
	run_jobs(jdir, true, 4, 6, -1, false); /* two fresh records: 5 and 6 */
	copy_file(keep2, data);
	assert_int_equal(rete_store_open(&s, jdir, 0, &m), RETE_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(m.text, "its journal holds commit"));
	assert_non_null(strstr(m.text, "out of the folder"));
	/* read-only, it reads LMDB as it is */
	assert_int_equal(store_size_of(jdir, RETE_STORE_RDONLY), 2 * BATCH);
	tu_rmrf(root);
	free(root);
}

/* data.mdb two batches behind its journal (records seq+1 and seq+2): the
 * seq+1 record damaged is a receipted batch lost (it was flushed before
 * seq+2 was written), RETE_ECORRUPT "is damaged"; the seq+2 record damaged
 * is a crash's trace (its batch was never receipted): the open goes on
 * with seq+1 replayed (rev-jnlcheck, session 14). */
static void test_damaged_before_next(void **state)
{
	(void)state;
	char *root = tu_tmpdir("jnl");
	char jdir[512], data[600], keep[600], j[2][600], save[2][600];
	rete_store *s = NULL;
	rete_msg m = {{0}};

	tu_path(jdir, sizeof(jdir), "%s/journaled", root);
	tu_path(data, sizeof(data), "%s/data.mdb", jdir);
	tu_path(keep, sizeof(keep), "%s/data.mdb.2", root);
	for (int i = 0; i < 2; i++) {
		tu_path(j[i], sizeof(j[i]), "%s/journal.%d", jdir, i);
		tu_path(save[i], sizeof(save[i]), "%s/journal.%d.saved", root, i);
	}
	make_store(jdir);
	run_jobs(jdir, true, 0, 2, -1, false);
	copy_file(data, keep); /* after 2 batches */
	run_jobs(jdir, true, 2, 4, -1, false);
	for (int i = 0; i < 2; i++)
		copy_file(j[i], save[i]);
	int older = record_seq(j[0]) < record_seq(j[1]) ? 0 : 1;

	/* the older record (seq+1) damaged */
	copy_file(keep, data);
	flip_record(j[older]);
	assert_int_equal(rete_store_open(&s, jdir, RETE_STORE_JOURNAL, &m), RETE_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(m.text, "is damaged"));
	assert_non_null(strstr(m.text, "--restore"));
	assert_int_equal(store_size_of(jdir, RETE_STORE_RDONLY), 2 * BATCH);

	/* the newer record (seq+2) damaged: seq+1 is taken in */
	for (int i = 0; i < 2; i++)
		copy_file(save[i], j[i]);
	copy_file(keep, data);
	flip_record(j[1 - older]);
	assert_int_equal(store_size_of(jdir, RETE_STORE_JOURNAL), 3 * BATCH);
	tu_rmrf(root);
	free(root);
}

/* A journal file whose header says its body is 256 MiB (a sparse file,
 * the hash failing): rete_store_journal_state (audit verify, backup,
 * --check-config) reads the body in pieces and does not hold it in memory
 * (rev-jnlcheck, session 14: it read the whole record, up to 16 GiB). */
static void test_state_big_header(void **state)
{
	(void)state;
	char *root = tu_tmpdir("jnl");
	char jdir[512], j0[600];
	rete_store *s = NULL;
	rete_msg m = {{0}};
	const uint64_t flen = 256ull << 20;
	struct rusage ru;

	tu_path(jdir, sizeof(jdir), "%s/journaled", root);
	tu_path(j0, sizeof(j0), "%s/journal.0", jdir);
	make_store(jdir);
	run_jobs(jdir, true, 0, 1, -1, false);
	uint8_t head[112] = "RETEJNL1";
	for (int i = 0; i < 8; i++)
		head[32 + i] = (uint8_t)((flen - sizeof(head)) >> (56 - 8 * i));
	int fd = open(j0, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
	assert_int_equal(ftruncate(fd, (off_t)flen), 0);
	close(fd);

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	long before = ru.ru_maxrss; /* KiB */
	assert_int_equal(rete_store_open(&s, jdir, RETE_STORE_RDONLY, &m), RETE_OK);
	unsigned ahead = 7;
	uint64_t to = 7;
	assert_int_equal(rete_store_journal_state(s, false, false, &ahead, &to, &m), RETE_OK);
	assert_int_equal(ahead, 0);
	rete_store_close(&s);
	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	long grew = ru.ru_maxrss - before;
	if (grew > 64 * 1024)
		fail_msg("reading a journal whose header says 256 MiB took %ld KiB more memory",
			 grew);
	tu_rmrf(root);
	free(root);
}

/* Another store's data.mdb, at the same commit and size, copied by hand
 * into a folder whose journal holds the next batch: the record is not
 * applied to a log it was not made on (the last leaf differs). */
static void test_other_store(void **state)
{
	(void)state;
	char *root = tu_tmpdir("jnl");
	char xdir[512], ydir[512], xdata[600], ydata[600];
	rete_store *s = NULL;
	rete_msg m = {{0}};
	rete_seckey *mine = social_key, *other = NULL;

	tu_path(xdir, sizeof(xdir), "%s/x", root);
	tu_path(ydir, sizeof(ydir), "%s/y", root);
	tu_path(xdata, sizeof(xdata), "%s/data.mdb", xdir);
	tu_path(ydata, sizeof(ydata), "%s/data.mdb", ydir);
	make_store(xdir);
	make_store(ydir);
	run_jobs(xdir, true, 0, 2, -1, false); /* records of commits 1 and 2 */
	assert_int_equal(rete_seckey_generate(&other, NULL), RETE_OK);
	social_key = other; /* the same kind of log, other entries */
	run_jobs(ydir, true, 0, 1, -1, false);
	social_key = mine;
	rete_seckey_free(&other);
	copy_file(ydata, xdata); /* commit 1, BATCH entries: as x's record 2 expects */
	assert_int_equal(rete_store_open(&s, xdir, 0, &m), RETE_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(m.text, "another last entry"));
	assert_int_equal(store_size_of(xdir, RETE_STORE_RDONLY), BATCH);
	tu_rmrf(root);
	free(root);
}

/* The journal's files are made at the first journaled open, and an older
 * store (schema 3) opened writable becomes schema 4. */
static void test_files_and_schema(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jnl");
	char j0[600];
	uint8_t ver[4] = {0, 0, 0, 3};
	rete_store *s = NULL;
	rete_msg m = {{0}};
	rete_store_identity id;

	tu_path(j0, sizeof(j0), "%s/journal.0", dir);
	make_store(dir);
	assert_false(tu_exists(j0)); /* not journaled: no files */
	tu_raw_put(dir, "meta", "schema", 6, ver, 4);
	/* a tool's writable open (a backup copy's mark) keeps schema 3: an
	 * older program reads it still */
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(rete_store_identity_get(s, NULL, &id, &m), RETE_OK);
	assert_int_equal(id.schema, 3);
	rete_store_close(&s);
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m), RETE_OK);
	assert_true(tu_exists(j0));
	assert_int_equal(rete_store_identity_get(s, NULL, &id, &m), RETE_OK);
	assert_int_equal(id.schema, 4);
	rete_store_close(&s);
	/* flags it is not for */
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_JOURNAL | RETE_STORE_RDONLY, &m),
			 RETE_EINVAL);
	assert_non_null(strstr(m.text, "JOURNAL without RDONLY"));
	tu_rmrf(dir);
	free(dir);
}

/* kill_in_journal: a store in dir whose last batch (of n) was receipted
 * and is in the journal only (the writer killed after the journal's flush,
 * before LMDB's commit). Returns the size the writer was told. */
static uint64_t kill_in_journal(const char *dir, uint64_t n)
{
	int p[2];
	uint64_t told = 0, v;
	make_store(dir);
	run_jobs(dir, true, 0, 1, -1, false); /* the journal files exist */
	assert_int_equal(pipe(p), 0);
	int st = in_child(dir, 1, n, p[1], true);
	close(p[1]);
	while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
		told = v;
	close(p[0]);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(told, n * BATCH);
	assert_int_equal(store_size_of(dir, RETE_STORE_RDONLY), told - BATCH);
	return told;
}

/* journal_refused: the broker's (journaled) open of dir is refused with
 * a sentence holding each of the words; the store is left as it was. */
static void journal_refused(const char *dir, uint64_t lmdb, const char *what, const char *w1,
			    const char *w2)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	rete_err err = rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m);
	if (err == RETE_OK) {
		uint64_t size = 0;
		(void)rete_store_size(s, NULL, &size, &m);
		rete_store_close(&s);
		fail_msg("%s: the broker's open went on (log size %llu) where the batch "
			 "receipted last is lost",
			 what, (unsigned long long)size);
	}
	assert_null(s);
	if (strstr(m.text, w1) == NULL || strstr(m.text, w2) == NULL ||
	    strstr(m.text, "--restore") == NULL)
		fail_msg("%s: the refusal does not say what happened (%s, %s) and what to do "
			 "(--restore): %s",
			 what, w1, w2, m.text);
	assert_int_equal(store_size_of(dir, RETE_STORE_RDONLY), lmdb);
}

/* A schema-4 store whose journal files are missing, cut short or
 * overwritten may have lost the batch receipted last: the broker's open
 * refuses, naming the file and the remedies (put them back; --restore).
 * A torn record (its whole length there, its hash failing) is the trace
 * of a crash during the journal's write and does not refuse. */
static void test_journal_lost(void **state)
{
	(void)state;
	char *root = tu_tmpdir("jnl");
	char dir[512], j0[600], j1[600], a0[600], a1[600];
	tu_path(dir, sizeof(dir), "%s/store", root);
	tu_path(j0, sizeof(j0), "%s/journal.0", dir);
	tu_path(j1, sizeof(j1), "%s/journal.1", dir);
	tu_path(a0, sizeof(a0), "%s/journal.0", root);
	tu_path(a1, sizeof(a1), "%s/journal.1", root);
	uint64_t told = kill_in_journal(dir, 3);

	/* missing (a copy of the .mdb files alone) */
	assert_int_equal(rename(j0, a0), 0);
	assert_int_equal(rename(j1, a1), 0);
	journal_refused(dir, told - BATCH, "journal files missing", "journal.0", "missing");
	/* put back: the batch is taken in */
	assert_int_equal(rename(a0, j0), 0);
	assert_int_equal(rename(a1, j1), 0);
	size_t l0, l1;
	char *d0 = tu_read_file(j0, &l0), *d1 = tu_read_file(j1, &l1);
	assert_non_null(d0);
	assert_non_null(d1);
	/* cut to 0 bytes, and mid-record */
	assert_int_equal(truncate(j0, 0), 0);
	journal_refused(dir, told - BATCH, "journal.0 cut to 0 bytes", "journal.0", "256 KiB");
	assert_int_equal(truncate(j0, 100), 0);
	journal_refused(dir, told - BATCH, "journal.0 cut to 100 bytes", "journal.0", "256 KiB");
	/* overwritten with other bytes */
	char *junk = malloc(l0);
	assert_non_null(junk);
	randombytes_buf(junk, l0);
	assert_int_equal(tu_write_file(j0, junk, l0), 0);
	journal_refused(dir, told - BATCH, "journal.0 overwritten", "journal.0", "not a journal");
	free(junk);
	assert_int_equal(tu_write_file(j0, d0, l0), 0);
	assert_int_equal(tu_write_file(j1, d1, l1), 0);
	/* the newest record torn (its hash fails, its length there): the
	 * crash's trace, not a loss: the open goes on */
	{
		uint64_t s0 = 0, s1 = 0;
		for (int i = 0; i < 8; i++) {
			s0 = (s0 << 8) | (uint8_t)d0[8 + i];
			s1 = (s1 << 8) | (uint8_t)d1[8 + i];
		}
		char *dn = s0 > s1 ? d0 : d1;
		dn[200] ^= 0x55;
		assert_int_equal(tu_write_file(s0 > s1 ? j0 : j1, dn, s0 > s1 ? l0 : l1), 0);
		assert_int_equal(store_size_of(dir, RETE_STORE_JOURNAL), told - BATCH);
		dn[200] ^= 0x55;
		assert_int_equal(tu_write_file(s0 > s1 ? j0 : j1, dn, s0 > s1 ? l0 : l1), 0);
	}
	/* read-only, the journal's state: one batch beyond data.mdb */
	{
		rete_store *s = NULL;
		rete_msg m = {{0}};
		unsigned ahead = 9;
		uint64_t to = 0;
		assert_int_equal(rete_store_open(&s, dir, RETE_STORE_RDONLY, &m), RETE_OK);
		assert_int_equal(rete_store_journal_state(s, true, false, &ahead, &to, &m),
				 RETE_OK);
		assert_int_equal(ahead, 1);
		assert_int_equal(to, told);
		rete_store_close(&s);
	}
	/* a backup would leave the receipted batch out: refused */
	{
		char bk[600];
		tu_path(bk, sizeof(bk), "%s/backup0", root);
		rete_msg m = {{0}};
		rete_err err = rete_store_backup(dir, bk, &m);
		if (err == RETE_OK)
			fail_msg("rete store backup copied a store whose journal holds a receipted "
				 "batch its data.mdb lacks, without a word");
		assert_non_null(strstr(m.text, "Start the broker once"));
	}
	/* lost for good: --restore's open goes on and says why */
	assert_int_equal(unlink(j0), 0);
	assert_int_equal(unlink(j1), 0);
	{
		rete_store *s = NULL;
		rete_msg m = {{0}};
		char why[800];
		rete_store_options o = {.journal_lost_ok = true};
		assert_int_equal(rete_store_open_ex(&s, dir, RETE_STORE_JOURNAL, &o, &m), RETE_OK);
		assert_true(rete_store_journal_lost(s, why, sizeof(why)));
		assert_non_null(strstr(why, "missing"));
		rete_store_close(&s);
		/* its files made again: the next start is a plain one */
		assert_int_equal(rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m), RETE_OK);
		assert_false(rete_store_journal_lost(s, NULL, 0));
		rete_store_close(&s);
	}
	/* a backup copy (marked) opens without journal files, as before */
	{
		char bk[600], bj0[700];
		tu_path(bk, sizeof(bk), "%s/backup", root);
		tu_path(bj0, sizeof(bj0), "%s/journal.0", bk);
		rete_msg m = {{0}};
		assert_int_equal(rete_store_backup(dir, bk, &m), RETE_OK);
		assert_false(tu_exists(bj0));
		assert_int_equal(store_size_of(bk, RETE_STORE_JOURNAL), told - BATCH);
		assert_true(tu_exists(bj0));
	}
	free(d0);
	free(d1);
	tu_rmrf(root);
	free(root);
}

/* A schema-3 store whose journal cannot be made (journal.1 a folder here,
 * as a full disk or a folder the broker cannot write in) stays schema 3
 * after the refused open, so the older broker still opens it. */
static void test_raise_needs_journal(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jnl");
	char j0[600], j1[600];
	uint8_t ver[4] = {0, 0, 0, 3};
	rete_store *s = NULL;
	rete_msg m = {{0}};
	rete_store_identity id;

	tu_path(j0, sizeof(j0), "%s/journal.0", dir);
	tu_path(j1, sizeof(j1), "%s/journal.1", dir);
	make_store(dir);
	tu_raw_put(dir, "meta", "schema", 6, ver, 4);
	assert_int_equal(mkdir(j1, 0700), 0);
	assert_int_not_equal(rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m), RETE_OK);
	assert_null(s);
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_identity_get(s, NULL, &id, &m), RETE_OK);
	rete_store_close(&s);
	if (id.schema != 3)
		fail_msg("a refused open (no journal could be made) left the store at schema "
			 "%u; an older broker no longer opens it",
			 (unsigned)id.schema);
	assert_false(tu_exists(j0)); /* what it made, it removed */
	assert_int_equal(rmdir(j1), 0);
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m), RETE_OK);
	assert_int_equal(rete_store_identity_get(s, NULL, &id, &m), RETE_OK);
	assert_int_equal(id.schema, 4);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

static int setup(void **state)
{
	(void)state;
	return rete_seckey_generate(&social_key, NULL) == RETE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rete_seckey_free(&social_key);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_killed_before_lmdb),
	    cmocka_unit_test(test_lmdb_behind),
	    cmocka_unit_test(test_damaged_before_next),
	    cmocka_unit_test(test_state_big_header),
	    cmocka_unit_test(test_other_store),
	    cmocka_unit_test(test_files_and_schema),
	    cmocka_unit_test(test_journal_lost),
	    cmocka_unit_test(test_raise_needs_journal),
	    cmocka_unit_test(test_parked_between_batches),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
