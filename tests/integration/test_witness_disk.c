/* test_witness_disk: an honest broker whose LMDB store is behind its
 * journal (the commit of a batch already receipted failed: a full disk)
 * and a sender that reconnects meanwhile (rev-receiptwatch s14, finding 2).
 * The sender's witness asks for the proof up to its receipt's checkpoint;
 * the broker's store cannot give it yet, and it says "ask again later"
 * (STORAGE_FULL), not "beyond the log" (NOT_FOUND, the alarm). Once the
 * disk has room the proof comes, and no alarm was raised.
 *
 * The full disk is tests/shim/enospc.c, preloaded into the broker only:
 * while a marker file exists, writes of data.mdb fail with ENOSPC (the
 * journal and the access record still take theirs). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"

#define WD_WAIT 30000

/* wd_broker_start starts n's broker with the full-disk shim preloaded:
 * data.mdb's writes fail while marker (n->dir/disk-full) exists. */
static bool wd_broker_start(it_net *n, char *marker, size_t cap)
{
	snprintf(marker, cap, "%s/disk-full", n->dir);
	setenv("RETE_ENOSPC_WHILE", marker, 1);
	return it_broker_start_preloaded(n, RETE_ENOSPC_SHIM);
}

/* wd_net: a network named name whose broker has the full-disk shim
 * (wd_broker_start) and a metrics endpoint (its address in url[ucap]);
 * the stored checkpoint lags (a receipt's is larger). */
static it_net *wd_net(void **state, const char *name, char *marker, size_t cap, char *url,
		      size_t ucap)
{
	it_net *n = it_net_new(name, NULL);
	assert_non_null(n);
	*state = n;
	n->cp_interval = "1h";
	assert_int_equal(it_write_ini(n), 0);
	it_ini_broker_add(n, "metrics = 127.0.0.1:0");
	assert_true(wd_broker_start(n, marker, cap));
	it_metrics_url(n->log, url, ucap);
	return n;
}

static void test_store_behind(void **state)
{
	char marker[1300], log[1300], inbox[1300], url[200];
	it_net *n = wd_net(state, "wit-disk", marker, sizeof(marker), url, sizeof(url));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	snprintf(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "d-1");
	assert_true(it_until_inbox(inbox, 1));
	assert_true(it_wait_occurrences(log, "message d-1 delivered", 1, WD_WAIT));
	assert_int_equal(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()), 0);
	/* every acknowledgement committed (social's of the delivery entry):
	 * the first batch the full disk refuses is d-2's */
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"social.mantova\"}", 0));
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"cpi.mantova\"}", 0));

	/* the disk fills: d-2 is receipted from the journal, LMDB's commit
	 * of it fails */
	assert_int_equal(tu_write_file(marker, "x", 1), 0);
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "d-2");
	assert_true(it_wait_occurrences(log, "d-2.json: accepted as d-2 at log index", 1, WD_WAIT));
	assert_true(it_wait_occurrences(
	    n->log, "the store could not commit a batch already receipted", 1, WD_WAIT));

	/* the sender reconnects while the store is behind */
	size_t hellos = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_hellos(n->log, it_party_ids[IT_SOCIAL], hellos + 1, WD_WAIT));
	const char *later = "in the broker's journal only until its store can be written";
	bool asked = it_wait_occurrences(log, later, 1, WD_WAIT);
	if (!asked || tu_occurrences(log, "WITNESS ALARM") != 0) {
		it_show_path(log, 8000);
		fail_msg("the sender's witness, reconnected while the broker's store is behind its "
			 "journal: %zu WITNESS ALARM line(s), %s the broker's \"ask again later\"",
			 tu_occurrences(log, "WITNESS ALARM"), asked ? "after" : "without");
	}
	/* rete health says it in the same words, and what it means */
	char *problems = it_health_problems(n);
	if (problems == NULL || strstr(problems, later) == NULL ||
	    strstr(problems, "not yet in data.mdb") == NULL)
		fail_msg("rete health, while the store is behind its journal, does not say "
			 "\"%s\" as the witness's refused proof does: %s",
			 later, problems ? problems : "(no answer)");
	free(problems);

	/* room again: the batch goes into the store, the proof comes */
	assert_int_equal(unlink(marker), 0);
	assert_true(it_wait_occurrences(n->log, "is in the store now", 1, WD_WAIT));
	assert_true(it_wait_occurrences(
	    log, "witness: the broker's log reaches the checkpoint of size", 1, WD_WAIT));
	assert_true(it_agent_start(n, IT_CPI));
	assert_true(it_until_inbox(inbox, 2));
	assert_true(it_wait_occurrences(log, "message d-2 delivered", 1, WD_WAIT));
	assert_int_equal(it_inbox_count(inbox), 2);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
	/* caught up: health no longer says the batch is behind, and the
	 * broker said it was behind once (rev-tidy s15, 1) */
	problems = it_health_problems(n);
	if (problems != NULL && strstr(problems, "not yet in data.mdb") != NULL)
		fail_msg("rete health, after the batch behind its journal went into the store "
			 "(\"is in the store now\"), still says it is behind: %s",
			 problems);
	free(problems);
	size_t behind = tu_occurrences(n->log, "the store could not commit a batch already receipted");
	if (behind != 1)
		fail_msg("the broker said %zu times that the store could not commit a batch "
			 "already receipted (one batch went behind once)",
			 behind);
	unsetenv("RETE_ENOSPC_WHILE");
}

/* The batch behind the journal holds an acknowledgement only (a quiet
 * network commits every batch, ACKs too, journaled on the main thread):
 * every entry is in data.mdb, and rete health says the store is behind
 * without saying that entries are in the journal only (rev-tidy s15, 2). */
static void test_acks_behind(void **state)
{
	char marker[1300], inbox[1300], url[200];
	it_net *n = wd_net(state, "wit-diskack", marker, sizeof(marker), url, sizeof(url));
	/* a-1 logged and queued for cpi; social's agent stops */
	assert_true(it_agent_start(n, IT_SOCIAL));
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "a-1");
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"cpi.mantova\"}", 1));
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"social.mantova\"}", 0));
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	/* cpi receives and acknowledges it: its delivery entry is queued for
	 * social, and every batch so far is committed */
	assert_true(it_agent_start(n, IT_CPI));
	assert_true(it_until_inbox(inbox, 1));
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"cpi.mantova\"}", 0));
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"social.mantova\"}", 1));
	size_t logged = tu_occurrences(n->log, "info: logged ");

	/* the disk fills; social connects and acknowledges the delivery entry */
	assert_int_equal(tu_write_file(marker, "x", 1), 0);
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_occurrences(
	    n->log, "the store could not commit a batch already receipted", 1, WD_WAIT));
	/* the batch behind logged no entry */
	if (tu_occurrences(n->log, "info: logged ") != logged) {
		it_show(n, "broker.log");
		fail_msg("the batch behind was to hold social's acknowledgement only, but the "
			 "broker logged %zu entries more",
			 tu_occurrences(n->log, "info: logged ") - logged);
	}
	char *problems = it_health_problems(n);
	if (problems == NULL || strstr(problems, "not yet in data.mdb") == NULL ||
	    strstr(problems, "entries") != NULL || strstr(problems, "the entry") != NULL)
		fail_msg("rete health, while a batch of acknowledgements only is behind the "
			 "store's journal (every entry is in data.mdb), should say it is behind "
			 "without naming entries: %s",
			 problems ? problems : "(no answer)");
	if (strstr(problems, "acknowledgements") == NULL)
		fail_msg("rete health does not say the batch behind holds acknowledgements: %s",
			 problems);
	free(problems);

	/* room again: caught up, health has nothing to say of it */
	assert_int_equal(unlink(marker), 0);
	assert_true(it_wait_occurrences(n->log, "is in the store now", 1, WD_WAIT));
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"social.mantova\"}", 0));
	problems = it_health_problems(n);
	if (problems != NULL && strstr(problems, "not yet in data.mdb") != NULL)
		fail_msg("rete health, caught up, still says the store is behind: %s", problems);
	free(problems);
	unsetenv("RETE_ENOSPC_WHILE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_store_behind, it_teardown),
	    cmocka_unit_test_teardown(test_acks_behind, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
