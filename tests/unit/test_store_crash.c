/* test_store_crash.c — crash safety of the store: a child process appends
 * batches in a loop, reporting each committed size through a pipe, and is
 * killed with SIGKILL at random moments, 50 times. After each kill the
 * store must open, hold exactly the batches whose commit returned (the last
 * reported size, or one batch more whose report the kill cut off), every
 * entry must parse, the stored-node root must equal the root recomputed
 * from the entries, and the indexes must point only at entries that exist.
 * Then the same with the broker's journaled store (store_journal.c), where
 * a batch is reported as soon as its journal record is flushed, before
 * LMDB commits it: a reported batch must survive every kill.
 *
 * The kill delays are the point of the test, not synchronisation: the
 * parent first waits for the child's first report (an event), then kills
 * after a random delay from a seeded PRNG so runs are reproducible. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"
#include "testutil.h"

#define BATCH  7
#define ROUNDS 50
#define SOCIAL "social.mantova"
#define CPI    "cpi.mantova"

static rete_seckey *social_key;

/* sign_referral signs a referral with id "c-<n>" from social to cpi. */
static int sign_referral(uint64_t n, rete_buf *out)
{
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Referral r = RETE__REFERRAL__INIT;
	char id[32];

	snprintf(id, sizeof(id), "c-%llu", (unsigned long long)n);
	msg.id = id;
	msg.sender = (char *)SOCIAL;
	msg.recipient = (char *)CPI;
	msg.case_id = (char *)"case-crash";
	msg.created_at = 1700000000000 + (int64_t)n;
	r.service = (char *)"employment-orientation";
	r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	return rete_message_sign(&msg, social_key, out, NULL) == RETE_OK ? 0 : -1;
}

struct durable_report {
	int fd;
	uint64_t size;
};

/* report_durable: the journal holds the batch (its receipts would go now,
 * before LMDB's commit): it is reported as committed. */
static void report_durable(void *ctx, rete_store_rtxn *rt)
{
	struct durable_report *d = ctx;
	(void)rt;
	if (write(d->fd, &d->size, sizeof(d->size)) != (ssize_t)sizeof(d->size))
		_exit(36);
}

/* writer_child appends batches of BATCH referrals (and acks the
 * batch before the previous one) until killed; after each commit it writes the
 * log size to fd. Journaled (the broker's store, schema 4), it writes it
 * as soon as the journal holds the batch, before LMDB commits it. Exit
 * codes say what failed. */
static int writer_child(const char *dir, int fd, bool journaled)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	uint64_t size;
	static const uint8_t sealed[64] = {1, 2, 3};

	if (rete_store_open(&s, dir, journaled ? RETE_STORE_JOURNAL : 0, &m) != RETE_OK) {
		fprintf(stderr, "child: %s\n", m.text);
		return 30;
	}
	if (rete_store_size(s, NULL, &size, &m) != RETE_OK)
		return 31;
	for (;;) {
		rete_store_op ops[2 * BATCH];
		rete_buf bufs[BATCH];
		size_t n = 0;
		for (size_t i = 0; i < BATCH; i++) {
			if (sign_referral(size + i, &bufs[i]) != 0)
				return 32;
			memset(&ops[n], 0, sizeof(ops[n]));
			ops[n].kind = RETE_STORE_OP_APPEND;
			ops[n].in.signed_message = bufs[i].data;
			ops[n].in.len = bufs[i].len;
			ops[n].in.logged_at = 1700000000000 + (int64_t)(size + i);
			ops[n].in.sealed = sealed;
			ops[n].in.sealed_len = sizeof(sealed);
			n++;
		}
		for (size_t i = 0; size >= 2 * BATCH && i < BATCH; i++) {
			memset(&ops[n], 0, sizeof(ops[n]));
			ops[n].kind = RETE_STORE_OP_ACK;
			ops[n].in.recipient = CPI;
			ops[n].in.index = size - 2 * BATCH + i;
			n++;
		}
		struct durable_report d = {fd, size + BATCH};
		bool told = false;
		if (rete_store_commit_durable(s, ops, n, NULL, 0, NULL,
					      journaled ? report_durable : NULL, &d, &told,
					      &m) != RETE_OK) {
			fprintf(stderr, "child: %s\n", m.text);
			return 33;
		}
		if (told != journaled)
			return 37;
		for (size_t i = 0; i < BATCH; i++) {
			if (ops[i].status != RETE_STORE_ACCEPTED || ops[i].index != size + i)
				return 34;
			rete_buf_free(&bufs[i]);
		}
		size += BATCH;
		if (!journaled && write(fd, &size, sizeof(size)) != (ssize_t)sizeof(size))
			return 35;
	}
}

struct qcheck {
	uint64_t size;
	uint64_t bad;
	uint64_t n;
};

static int check_case(void *ctx, uint64_t index)
{
	struct qcheck *q = ctx;
	if (index != q->n || index >= q->size)
		q->bad++;
	q->n++;
	return 0;
}

/* verify_store opens dir and checks it after a kill; returns its size.
 * Signatures are checked from entry `verified` on (the earlier ones were
 * checked after an earlier kill); every entry is parsed every time. */
static uint64_t verify_store(const char *dir, uint64_t reported, uint64_t verified)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	uint64_t size, qidx[BATCH * 4], depth;
	size_t qn;
	uint8_t stored[RETE_MERKLE_HASH], recomputed[RETE_MERKLE_HASH];
	rete_merkle_frontier f;
	struct qcheck qc;
	int64_t oldest;

	if (rete_store_open(&s, dir, 0, &m) != RETE_OK)
		fail_msg("open after kill: %s", m.text);
	assert_int_equal(rete_store_size(s, NULL, &size, &m), RETE_OK);
	if (size != reported && size != reported + BATCH)
		fail_msg("size %llu after kill; last committed %llu", (unsigned long long)size,
			 (unsigned long long)reported);
	assert_int_equal(size % BATCH, 0);

	rete_merkle_frontier_init(&f);
	for (uint64_t i = 0; i < size; i++) {
		rete_buf e = {0};
		Rete__LogEntry *le;
		Rete__SignedMessage *sm = NULL;
		Rete__Message *msg = NULL;
		uint8_t leaf[RETE_MERKLE_HASH];
		char id[32];

		assert_int_equal(rete_store_entry(s, NULL, i, &e, &m), RETE_OK);
		le = rete__log_entry__unpack(NULL, e.len, e.data);
		assert_non_null(le);
		assert_int_equal(le->index, i);
		assert_int_equal(rete_signed_decode(le->signed_message.data, le->signed_message.len,
						    &sm, &msg, &m),
				 RETE_OK);
		if (i >= verified)
			assert_int_equal(rete_signed_verify(sm, &social_key->pub, &m), RETE_OK);
		snprintf(id, sizeof(id), "c-%llu", (unsigned long long)i);
		assert_string_equal(msg->id, id);
		rete__message__free_unpacked(msg, NULL);
		rete__signed_message__free_unpacked(sm, NULL);
		rete__log_entry__free_unpacked(le, NULL);
		rete_merkle_leaf_hash(leaf, e.data, e.len);
		rete_buf_free(&e);
		assert_int_equal(rete_merkle_frontier_append(&f, leaf, NULL, NULL), RETE_OK);
	}
	rete_merkle_frontier_root(&f, recomputed);
	assert_int_equal(rete_store_root(s, NULL, size, stored, &m), RETE_OK);
	assert_memory_equal(stored, recomputed, RETE_MERKLE_HASH);

	/* the indexes agree with the log: the last message is known, the
	 * next is not, the queue holds exactly the last two batches */
	if (size > 0) {
		char id[32];
		uint64_t idx;
		snprintf(id, sizeof(id), "c-%llu", (unsigned long long)(size - 1));
		assert_int_equal(rete_store_msgid(s, NULL, SOCIAL, id, &idx, NULL, NULL, &m),
				 RETE_OK);
		assert_int_equal(idx, size - 1);
		snprintf(id, sizeof(id), "c-%llu", (unsigned long long)size);
		assert_int_equal(rete_store_msgid(s, NULL, SOCIAL, id, &idx, NULL, NULL, &m),
				 RETE_ENOENT);
	}
	assert_int_equal(rete_store_queue_peek(s, NULL, CPI, 0, BATCH * 4, qidx, &qn, &m), RETE_OK);
	assert_int_equal(qn, size < 2 * BATCH ? size : 2 * BATCH);
	for (size_t i = 0; i < qn; i++)
		assert_int_equal(qidx[i], size - qn + i);
	assert_int_equal(rete_store_queue_depth(s, NULL, CPI, &depth, &oldest, &m), RETE_OK);
	assert_int_equal(depth, qn);
	memset(&qc, 0, sizeof(qc));
	qc.size = size;
	assert_int_equal(rete_store_case_entries(s, NULL, "case-crash", check_case, &qc, &m),
			 RETE_OK);
	assert_int_equal(qc.n, size);
	assert_int_equal(qc.bad, 0);
	rete_store_close(&s);
	return size;
}

static void kill_while_appending(bool journaled)
{
	char *dir = tu_tmpdir("crash");
	rete_store *s = NULL;
	rete_msg m = {{0}};
	uint64_t committed = 0;
	unsigned seed = 20261122;
	unsigned killed_mid = 0;

	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_CREATE, &m), RETE_OK);
	rete_store_close(&s);
	for (int round = 0; round < ROUNDS; round++) {
		int p[2], st = 0;
		pid_t pid;
		uint64_t v, last = committed, size;
		struct timespec ts;
		long delay_us;

		assert_int_equal(pipe(p), 0);
		pid = fork(); /* no environment is open in this process here */
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			_exit(writer_child(dir, p[1], journaled));
		}
		close(p[1]);
		/* wait for the first commit of this child, then let it run */
		assert_int_equal(read(p[0], &v, sizeof(v)), (ssize_t)sizeof(v));
		last = v;
		delay_us = 2000 + (long)(rand_r(&seed) % 48000);
		ts.tv_sec = 0;
		ts.tv_nsec = delay_us * 1000;
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
			fail_msg("round %d: the writer ended by itself (status 0x%x)", round, st);
		while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
			last = v;
		close(p[0]);
		assert_true(last >= committed);
		size = verify_store(dir, last, committed);
		if (size != last)
			killed_mid++;
		committed = size;
	}
	print_message("crash%s: %d kills, final size %llu, %u killed after a commit before its "
		      "report\n",
		      journaled ? " (journaled)" : "", ROUNDS, (unsigned long long)committed,
		      killed_mid);
	assert_true(committed >= (uint64_t)ROUNDS * BATCH);
	tu_rmrf(dir);
	free(dir);
}

static void test_kill_while_appending(void **state)
{
	(void)state;
	kill_while_appending(false);
}

/* The broker's store: a batch is reported (its receipts would go) once
 * the journal holds it, before LMDB commits it; whatever the kill cuts,
 * a reported batch is in the store after the next open. */
static void test_kill_while_journaling(void **state)
{
	(void)state;
	kill_while_appending(true);
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
	    cmocka_unit_test(test_kill_while_appending),
	    cmocka_unit_test(test_kill_while_journaling),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
