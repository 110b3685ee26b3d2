/* test_journal_faults.c — the journal's failure paths (store/store_journal.c)
 * on real files, with LMDB's and the kernel's failures made to order: this
 * program defines mdb_txn_commit, mdb_env_open and fdatasync itself (the
 * store code linked into it calls these; each passes through to the real
 * one unless the test arms a failure, which then happens once).
 *
 *  - LMDB's commit of a journaled batch fails after the callback (its
 *    receipts went): the batch is applied from the record at once;
 *  - the same, and the reopen of the environment fails too (the disk is
 *    going): no crash; the store says it is behind and why ("restart the
 *    program"), later writes fail with that sentence, and the next open
 *    takes the batch in;
 *  - the journal's flush fails: the batch is refused, and the record the
 *    page cache may still hold is not taken in at the next open (the
 *    refusal said "nothing was logged");
 *  - a commit hangs in its flush (a slow or failing disk) on another
 *    thread: rete_store_behind, which the broker's main thread asks at
 *    every batch and every health query, still answers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "keys.h"
#include "store.h"
#include "testutil.h"

static int fail_commit, fail_open, fail_sync;

/* A flush held (test_behind_during_flush): while hold_armed, the next
 * fdatasync says so (hold_in) and waits until the test lets it go. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static bool hold_armed, hold_in;

int mdb_txn_commit(MDB_txn *txn)
{
	static int (*real)(MDB_txn *);
	if (real == NULL)
		real = (int (*)(MDB_txn *))dlsym(RTLD_NEXT, "mdb_txn_commit");
	/* bit i of fail_commit: the i-th commit from now fails */
	int fail = fail_commit & 1;
	fail_commit >>= 1;
	if (fail) {
		mdb_txn_abort(txn); /* a failed commit frees its transaction */
		return EIO;
	}
	return real(txn);
}

int mdb_env_open(MDB_env *env, const char *path, unsigned flags, mdb_mode_t mode)
{
	static int (*real)(MDB_env *, const char *, unsigned, mdb_mode_t);
	if (real == NULL)
		real = (int (*)(MDB_env *, const char *, unsigned, mdb_mode_t))dlsym(
		    RTLD_NEXT, "mdb_env_open");
	if (fail_open)
		return EIO;
	return real(env, path, flags, mode);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	pthread_mutex_lock(&hold_mu);
	if (hold_armed) {
		hold_in = true;
		pthread_cond_broadcast(&hold_cv);
		while (hold_armed)
			pthread_cond_wait(&hold_cv, &hold_mu);
	}
	pthread_mutex_unlock(&hold_mu);
	if (fail_sync) {
		fail_sync = 0;
		errno = EIO;
		return -1;
	}
	return real(fd);
}

static rete_seckey *key;

/* one_op fills op with a referral n of social to cpi (its bytes in *b). */
static void one_op(rete_store_op *op, rete_buf *b, int n)
{
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Referral r = RETE__REFERRAL__INIT;
	char id[32];
	snprintf(id, sizeof(id), "f-%d", n);
	msg.id = id;
	msg.sender = (char *)"social.mantova";
	msg.recipient = (char *)"cpi.mantova";
	msg.case_id = (char *)"case-faults";
	msg.created_at = 1800000000000 + n;
	r.service = (char *)"employment-orientation";
	r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	assert_int_equal(rete_message_sign(&msg, key, b, NULL), RETE_OK);
	memset(op, 0, sizeof(*op));
	op->kind = RETE_STORE_OP_APPEND;
	op->in.signed_message = b->data;
	op->in.len = b->len;
	op->in.logged_at = 1800000000000 + n;
}

enum arm { ARM_NONE, ARM_COMMIT, ARM_COMMIT_AND_OPEN, ARM_COMMIT_AND_APPLY };

static void on_durable(void *ctx, rete_store_rtxn *rt)
{
	(void)rt;
	enum arm a = *(enum arm *)ctx;
	if (a != ARM_NONE)
		fail_commit = 1; /* LMDB's commit of this batch fails */
	if (a == ARM_COMMIT_AND_APPLY)
		fail_commit = 5; /* and so does the first taking in of its record
				  * (after the reopen's own commit) */
	if (a == ARM_COMMIT_AND_OPEN)
		fail_open = 1; /* and so does the reopen after it */
}

static rete_err commit_one(rete_store *s, int n, enum arm a, bool *called, rete_msg *m)
{
	rete_store_op op;
	rete_buf b = {0};
	one_op(&op, &b, n);
	rete_err err = rete_store_commit_durable(s, &op, 1, NULL, 0, NULL, on_durable, &a, called, m);
	rete_buf_free(&b);
	return err;
}

static uint64_t size_of(rete_store *s)
{
	rete_msg m;
	uint64_t size = 0;
	assert_int_equal(rete_store_size(s, NULL, &size, &m), RETE_OK);
	return size;
}

/* receipt_two opens a journaled store in dir, commits entry 0, then entry
 * 1 with the failures a arms; called: whether entry 1 was receipted. */
static rete_store *receipt_two(const char *dir, enum arm a, bool *called, rete_msg *m)
{
	rete_store *s = NULL;
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_CREATE | RETE_STORE_JOURNAL, m),
			 RETE_OK);
	assert_int_equal(commit_one(s, 0, ARM_NONE, called, m), RETE_OK);
	assert_int_equal(commit_one(s, 1, a, called, m), RETE_OK);
	assert_true(*called);
	return s;
}

static void test_commit_fails(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jflt");
	rete_msg m = {{0}};
	bool called;

	/* LMDB's commit fails once the batch was receipted: it is taken in
	 * from the record before the call returns */
	rete_store *s = receipt_two(dir, ARM_COMMIT, &called, &m);
	assert_false(rete_store_behind(s, &m));
	assert_int_equal(size_of(s), 2);
	assert_int_equal(commit_one(s, 2, ARM_NONE, &called, &m), RETE_OK);
	assert_int_equal(size_of(s), 3);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

static void test_commit_and_reopen_fail(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jflt");
	rete_msg m = {{0}};
	bool called;

	/* receipted, then LMDB's commit and the reopen fail: no crash */
	rete_store *s = receipt_two(dir, ARM_COMMIT_AND_OPEN, &called, &m);
	assert_true(rete_store_behind(s, &m));
	assert_non_null(strstr(m.text, "restart the program"));
	assert_int_not_equal(rete_store_catch_up(s, &m), RETE_OK);
	/* a later write says why it cannot */
	assert_int_equal(commit_one(s, 2, ARM_NONE, &called, &m), RETE_ESTORE);
	assert_false(called);
	assert_non_null(strstr(m.text, "restart the program"));
	rete_store_close(&s);
	fail_open = 0;
	/* the next open takes the receipted batch in */
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m), RETE_OK);
	assert_int_equal(size_of(s), 2);
	assert_false(rete_store_behind(s, &m));
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* The store goes behind its journal and catches up on the same open store
 * (the broker's case: a full disk that gets room again): afterwards
 * rete_store_behind says it is not behind (rev-tidy s15, 1: nothing
 * noticed the flag never cleared, as a reopen clears it too). */
static void test_behind_then_caught_up(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jflt");
	rete_msg m = {{0}};
	bool called;

	/* receipted; LMDB's commit and the first taking in of the record fail */
	rete_store *s = receipt_two(dir, ARM_COMMIT_AND_APPLY, &called, &m);
	uint64_t before = 0, after = 0;
	assert_true(rete_store_behind_range(s, &m, &before, &after));
	/* the batch behind appended entry 1 */
	assert_int_equal(before, 1);
	assert_int_equal(after, 2);
	assert_int_equal(size_of(s), 1);
	/* room again: the batch goes in, and the store says it is not behind */
	assert_int_equal(rete_store_catch_up(s, &m), RETE_OK);
	assert_int_equal(size_of(s), 2);
	if (rete_store_behind(s, &m))
		fail_msg("the store took in the batch behind its journal (its log has 2 entries "
			 "now) but rete_store_behind still says it is behind: %s",
			 m.text);
	assert_int_equal(commit_one(s, 2, ARM_NONE, &called, &m), RETE_OK);
	assert_int_equal(size_of(s), 3);
	assert_false(rete_store_behind(s, &m));
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

static void test_journal_flush_fails(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jflt");
	rete_store *s = NULL;
	rete_msg m = {{0}};
	bool called;

	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_CREATE | RETE_STORE_JOURNAL, &m),
			 RETE_OK);
	assert_int_equal(commit_one(s, 0, ARM_NONE, &called, &m), RETE_OK);
	/* the journal's flush fails: the batch is refused, nothing logged */
	fail_sync = 1;
	assert_int_equal(commit_one(s, 1, ARM_NONE, &called, &m), RETE_EIO);
	assert_false(called);
	assert_non_null(strstr(m.text, "journal"));
	assert_int_equal(size_of(s), 1);
	rete_store_close(&s);
	/* and the next open does not take it in from the page cache */
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_JOURNAL, &m), RETE_OK);
	assert_int_equal(size_of(s), 1);
	assert_int_equal(commit_one(s, 1, ARM_NONE, &called, &m), RETE_OK);
	assert_int_equal(size_of(s), 2);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

struct flush_run {
	rete_store *s;
	rete_err err;
	bool called;
	bool behind, behind_done;
	rete_msg m, bm;
};

static void *flush_commit(void *arg)
{
	struct flush_run *r = arg;
	r->err = commit_one(r->s, 1, ARM_NONE, &r->called, &r->m);
	return NULL;
}

static void *flush_behind(void *arg)
{
	struct flush_run *r = arg;
	bool behind = rete_store_behind(r->s, &r->bm);
	pthread_mutex_lock(&hold_mu);
	r->behind = behind;
	r->behind_done = true;
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);
	return NULL;
}

/* wait_for waits on hold_cv until *flag, for at most 10 s (a deadline for
 * a test that must end, not a measure: the answer wanted takes no I/O).
 * Called with hold_mu held. */
static bool wait_for(const bool *flag)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	while (!*flag)
		if (pthread_cond_timedwait(&hold_cv, &hold_mu, &until) != 0)
			break;
	return *flag;
}

/* The broker's main thread asks rete_store_behind at every batch and every
 * health query; a commit holds the commit lock through its flush, which on
 * a failing disk takes seconds. The answer must not wait for that flush. */
static void test_behind_during_flush(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("jflt");
	struct flush_run r = {0};
	pthread_t committer, asker;
	bool in_flush, answered;
	bool called;

	assert_int_equal(rete_store_open(&r.s, dir, RETE_STORE_CREATE | RETE_STORE_JOURNAL, &r.m),
			 RETE_OK);
	assert_int_equal(commit_one(r.s, 0, ARM_NONE, &called, &r.m), RETE_OK);
	pthread_mutex_lock(&hold_mu);
	hold_armed = true;
	hold_in = false;
	pthread_mutex_unlock(&hold_mu);
	assert_int_equal(pthread_create(&committer, NULL, flush_commit, &r), 0);
	pthread_mutex_lock(&hold_mu);
	in_flush = wait_for(&hold_in);
	pthread_mutex_unlock(&hold_mu);
	if (in_flush)
		assert_int_equal(pthread_create(&asker, NULL, flush_behind, &r), 0);
	pthread_mutex_lock(&hold_mu);
	answered = in_flush && wait_for(&r.behind_done);
	hold_armed = false; /* the flush goes on: every thread ends */
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);
	pthread_join(committer, NULL);
	if (in_flush)
		pthread_join(asker, NULL);
	if (!in_flush)
		fail_msg("the commit never reached its flush");
	if (!answered)
		fail_msg("rete_store_behind did not answer in 10 s while a commit was in its "
			 "flush on another thread (it waits for the commit lock)");
	assert_false(r.behind);
	assert_int_equal(r.err, RETE_OK);
	assert_true(r.called);
	assert_int_equal(size_of(r.s), 2);
	rete_store_close(&r.s);
	tu_rmrf(dir);
	free(dir);
}

static int setup(void **state)
{
	(void)state;
	return rete_seckey_generate(&key, NULL) == RETE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rete_seckey_free(&key);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commit_fails),
	    cmocka_unit_test(test_commit_and_reopen_fail),
	    cmocka_unit_test(test_behind_then_caught_up),
	    cmocka_unit_test(test_journal_flush_fails),
	    cmocka_unit_test(test_behind_during_flush),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
