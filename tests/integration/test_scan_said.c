/* test_scan_said: the broker says it withdrew an expired message (or that
 * a referral is overdue) only once the store holds it.
 *
 * The expiry scan used to log "withdrew ... undelivered after" before its
 * commit: a crash (or a refused commit) after the line left the message
 * queued, and a broker restarted with a longer expiry delivered what its
 * log said it had withdrawn (test_edges_broker's
 * test_parked_ack_expire_crash failed 2 times in 3 on a loaded machine,
 * s15). Here the broker's flushes stall (tests/shim/enospc.c, slow mode)
 * once the referral is receipted; the test kills the broker as soon as the
 * line appears, restarts it with expiry 5d, and the sender must get the
 * broker's notice that the referral was not delivered: the withdrawal the
 * line announced is in the log. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"

#define SLOW_MS "4000"

static void test_withdrew_said_when_durable(void **state)
{
	it_net *n = it_net_new("scan-said", NULL);
	assert_non_null(n);
	*state = n;
	n->expiry = "3s";
	n->cp_interval = "1h"; /* no stored checkpoint's stalled flushes first */
	assert_int_equal(it_write_ini(n), 0);
	char marker[1300];
	snprintf(marker, sizeof(marker), "%s/slow-disk", n->dir);
	setenv("RETE_SLOW_SYNC_WHILE", marker, 1);
	setenv("RETE_SLOW_SYNC_MS", SLOW_MS, 1);
	assert_true(it_broker_start_preloaded(n, RETE_ENOSPC_SHIM));
	it_refer(n, IT_SOCIAL, IT_CPI, "said-1");

	/* the disk's flushes stall from now on; the job centre never comes */
	assert_int_equal(tu_write_file(marker, "x", 1), 0);
	const char *said = "withdrew said-1 from social.mantova to cpi.mantova";
	assert_true(it_wait_occurrences(n->log, said, 1, it_wait_ms()));
	assert_true(WIFSIGNALED(it_stop(&n->broker_pid, SIGKILL, it_wait_ms())));
	assert_int_equal(unlink(marker), 0);
	unsetenv("RETE_SLOW_SYNC_WHILE");
	unsetenv("RETE_SLOW_SYNC_MS");

	/* a longer expiry now: only a withdrawal in the log stands */
	n->expiry = "5d";
	assert_int_equal(it_write_ini(n), 0);
	assert_true(it_broker_start(n));
	rete_wire *w = it_hello(n, IT_SOCIAL);
	assert_non_null(w);
	bool notice = false;
	while (!notice) {
		uint64_t acked = 0;
		Rete__BrokerFrame *f =
		    it_recv_acking(w, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms(),
				   n->keys[IT_SOCIAL], it_party_ids[IT_SOCIAL], &acked);
		if (!f) {
			it_show(n, "broker.log");
			fail_msg(
			    "FAIL: the broker logged \"%s\" and was killed after it; restarted, "
			    "it never sent social.mantova its notice that said-1 was not "
			    "delivered: the withdrawal its log announced was not in the store",
			    said);
		}
		Rete__LogEntry *le = rete__log_entry__unpack(NULL, f->deliver->log_entry.len,
							     f->deliver->log_entry.data);
		assert_non_null(le);
		Rete__SignedMessage *sm = NULL;
		Rete__Message *m = NULL;
		assert_int_equal(rete_signed_decode(le->signed_message.data, le->signed_message.len,
						    &sm, &m, NULL),
				 RETE_OK);
		if (m->body_case == RETE__MESSAGE__BODY_NOTICE &&
		    m->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED &&
		    strcmp(m->notice->message_id, "said-1") == 0)
			notice = true;
		rete__message__free_unpacked(m, NULL);
		rete__signed_message__free_unpacked(sm, NULL);
		rete__log_entry__free_unpacked(le, NULL);
		rete__broker_frame__free_unpacked(f, NULL);
	}
	rete_wire_close(&w);
}

/* test_scan_waits_behind (rev-final s15, 2): while the store is behind its
 * journal (a batch receipted, LMDB's commit of it refused: a full disk),
 * the scan would read stale candidates from data.mdb and its own commit
 * would be refused, saying "nothing was withdrawn" once a minute about
 * what it may already have withdrawn. It waits instead: once the disk has
 * room and the batch is in, each expired referral is withdrawn once, and
 * nothing said meanwhile claims the scan failed. */
static void test_scan_waits_behind(void **state)
{
	it_net *n = it_net_new("scan-behind", NULL);
	assert_non_null(n);
	*state = n;
	n->expiry = "3s";
	n->cp_interval = "1h";
	assert_int_equal(it_write_ini(n), 0);
	char marker[1300];
	snprintf(marker, sizeof(marker), "%s/disk-full", n->dir);
	setenv("RETE_ENOSPC_WHILE", marker, 1);
	assert_true(it_broker_start_preloaded(n, RETE_ENOSPC_SHIM));
	it_refer(n, IT_SOCIAL, IT_CPI, "behind-1");
	int64_t t0 = it_mono_ms();
	assert_int_equal(tu_write_file(marker, "x", 1), 0);
	{ /* a commit now goes behind (its journal takes it, data.mdb does not), or
	   * behind-2 is refused as storage full after another one did */
		rete_wire *w = it_connect(n, IT_SOCIAL);
		assert_non_null(w);
		it_msg o;
		assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, "behind-2", &o), RETE_OK);
		Rete__BrokerFrame *f = it_submit(w, &o, it_wait_ms());
		assert_non_null(f);
		rete__broker_frame__free_unpacked(f, NULL);
		it_msg_free(&o);
		rete_wire_close(&w);
	}
	assert_true(it_wait_occurrences(
	    n->log, "the store could not commit a batch already receipted", 1, it_wait_ms()));
	/* behind-1 expires while the store is behind, and several scans run
	 * (the time the case needs, not an assertion) */
	while (it_mono_ms() - t0 < 7000)
		it_nap(100);
	assert_int_equal(unlink(marker), 0);
	assert_true(it_wait_occurrences(n->log, "is in the store now", 1, it_wait_ms()));
	assert_true(it_wait_occurrences(n->log, "withdrew behind-1 from", 1, it_wait_ms()));
	size_t failed = tu_occurrences(n->log, "the store did not take the scan's");
	size_t w1 = tu_occurrences(n->log, "withdrew behind-1 from");
	if (failed != 0 || w1 != 1) {
		it_show(n, "broker.log");
		fail_msg("FAIL: while the store was behind its journal the scan said %zu time(s) "
			 "that the store did not take its withdrawals, and behind-1 was said "
			 "withdrawn %zu time(s); expected none, and once",
			 failed, w1);
	}
	unsetenv("RETE_ENOSPC_WHILE");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_withdrew_said_when_durable, it_teardown),
	    cmocka_unit_test_teardown(test_scan_waits_behind, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
