/* test_full_disk_acks.c — deliveries and their ACKs while the broker's
 * store disk is full.
 *
 * While the store cannot commit, a recipient's ACKs cannot be logged. The
 * broker used to send the deliveries of a failed ACK batch again at once:
 * the agent acked them again, that batch failed too, and so on, thousands
 * of deliveries and hundreds of error lines a second, on the full disk
 * that often holds the log too (s14 rev-restore, finding 3). Now those
 * deliveries wait for `redeliver` (or for a commit that goes through), and
 * the refused batches are said once, then counted once a minute.
 *
 * As test_full_disk, the test makes its own mount namespace and mounts a
 * 4 MiB tmpfs for the store (skipped, with a sentence, where it cannot).
 * Then:
 *
 *   1. referrals to the job centre (32 KiB sealed parts) are receipted
 *      while its agent is stopped, until the disk is full; the disk is
 *      then filled to its last byte, and small referrals use up what
 *      LMDB has left of its own free pages (three refused in a row);
 *   2. the job centre's agent (the real rete-agent) starts, takes the
 *      deliveries and acks them: the ACK batches are refused. Over 10 s
 *      after the first refusal, the broker sends few deliveries
 *      (rete_broker_deliveries_sent_total, at most MAX_SENT: one window
 *      per `redeliver`, 2 s here, is about 80) and writes few error lines
 *      (at most MAX_ERRORS);
 *   3. the space is freed: every referral is delivered and acked (the
 *      queue empties, one Delivery entry per referral, each referral once
 *      in the inbox), and `rete audit verify` passes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"

#define MAX_REFS   400
#define PAD	   (32 * 1024)
#define WINDOW	   16
#define SPELL_MS   10000
#define MAX_SENT   400 /* the old loop sent tens of thousands in 10 s */
#define MAX_ERRORS 10  /* and wrote hundreds of error lines */

#define QUEUE_CPI     "rete_broker_queue_depth{agency=\"cpi.mantova\"}"
#define SENT_TOTAL    "rete_broker_deliveries_sent_total"
#define ACKED_TOTAL   "rete_broker_deliveries_acknowledged_total"
#define REFUSED_BATCH "the store refused a batch"

static double scrape_metric(const char *url, const char *series)
{
	char *text = it_scrape(url, NULL);
	assert_non_null(text);
	double v = it_metric(text, series);
	free(text);
	assert_true(v >= 0);
	return v;
}

/* the referrals receipted (their log indexes) and how many were refused */
struct refs {
	uint64_t index[MAX_REFS];
	size_t n;
	int refused;
};

/* submit_until submits referrals from the social services to the job
 * centre, with pad bytes of sealed part, until `row` in a row are refused
 * as storage full (any other refusal fails the test). */
static void submit_until(it_net *n, rete_wire *w, size_t pad, int row, struct refs *r)
{
	int ms = it_wait_ms(), in_row = 0;
	while (in_row < row) {
		char id[32];
		snprintf(id, sizeof(id), "fda-%03zu-%d", r->n, r->refused);
		assert_true(r->n < MAX_REFS);
		it_msg o;
		assert_int_equal(
		    it_referral_ex(n, IT_SOCIAL, IT_CPI, id, NULL, NULL, NULL, pad, &o), RETE_OK);
		Rete__BrokerFrame *f = it_submit(w, &o, ms);
		it_msg_free(&o);
		assert_non_null(f);
		const Rete__Receipt *a = it_answer(f);
		if (a->error == 0) {
			int64_t idx = it_receipt_index(n, f);
			assert_true(idx > 0);
			r->index[r->n++] = (uint64_t)idx;
			in_row = 0;
		} else {
			if (a->error != RETE__ERROR_CODE__ERROR_CODE_STORAGE_FULL)
				fprintf(stderr, "%s refused: %s\n", id, a->error_text);
			assert_int_equal(a->error, RETE__ERROR_CODE__ERROR_CODE_STORAGE_FULL);
			r->refused++;
			in_row++;
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
}

struct deliveries {
	const struct refs *r;
	int seen[MAX_REFS];
};

/* on_entry counts the Delivery entries (the recipient's logged ACKs) of
 * the referrals' indexes. */
static void on_entry(void *ctx, uint64_t index, const Rete__Message *msg)
{
	(void)index;
	struct deliveries *d = ctx;
	if (msg->body_case != RETE__MESSAGE__BODY_DELIVERY)
		return;
	for (size_t i = 0; i < d->r->n; i++)
		if (d->r->index[i] == msg->delivery->index)
			d->seen[i]++;
}

static void test_full_disk_acks(void **state)
{
	if (!it_disk_mount(state, "test_full_disk_acks", "4m"))
		skip();
	it_disk *d = *state;
	char filler[1300], topup[1300], data[1300], url[200], inbox[1300];
	snprintf(filler, sizeof(filler), "%s/filler", d->mnt);
	snprintf(topup, sizeof(topup), "%s/topup", d->mnt);
	snprintf(data, sizeof(data), "%s/store", d->mnt);
	char *mib = calloc(1, 1 << 20);
	assert_non_null(mib);
	assert_int_equal(tu_write_file(filler, mib, 1 << 20), 0);
	free(mib);

	it_net *n = d->n = it_net_new("fdacks-net", data);
	assert_non_null(n);
	n->window = WINDOW;
	assert_int_equal(it_write_ini(n), 0);
	it_ini_broker_add(n, "redeliver = 2s\nmetrics = 127.0.0.1:0");
	assert_true(it_broker_start(n));
	pid_t pid = n->broker_pid;
	it_metrics_url(n->log, url, sizeof(url));
	int ms = it_wait_ms();

	/* 1. the referrals, receipted while the job centre is away, until
	 * the store's disk is full; then the disk is filled to its last
	 * byte, and small referrals take what LMDB has left of its own pages
	 * until three in a row are refused: no commit goes through now */
	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	struct refs r = {0};
	submit_until(n, social, PAD, 1, &r);
	it_disk_fill_up(d->mnt, topup);
	submit_until(n, social, 0, 3, &r);
	rete_wire_close(&social);
	fprintf(stderr, "full disk: %zu referrals receipted, %d refused\n", r.n, r.refused);
	assert_true(r.n > 2 * WINDOW);

	/* 2. the job centre's agent takes them; its ACKs cannot be logged */
	assert_true(it_agent_start(n, IT_CPI));
	if (!it_wait_occurrences(n->log, REFUSED_BATCH, 1, ms)) {
		it_show(n, "broker.log");
		fail_msg("no ACK batch was refused on the full disk");
	}
	double sent0 = scrape_metric(url, SENT_TOTAL);
	size_t errors0 = tu_occurrences(n->log, " error: ");
	size_t refused0 = tu_occurrences(n->log, REFUSED_BATCH);
	/* a count over a fixed spell of full disk (ended early once the bound
	 * is passed): the bound is an order of magnitude above what the
	 * broker sends now, and orders of magnitude below the old loop */
	double sent = 0;
	int64_t start = it_mono_ms(), end = start + SPELL_MS;
	while (it_mono_ms() < end && sent <= MAX_SENT) {
		it_nap(250); /* sampling a counter over the spell */
		sent = scrape_metric(url, SENT_TOTAL) - sent0;
	}
	size_t errors = tu_occurrences(n->log, " error: ") - errors0;
	size_t refused = tu_occurrences(n->log, REFUSED_BATCH) - refused0;
	fprintf(stderr,
		"full disk, %zu referrals acked by a running agent: %.0f deliveries sent and %zu "
		"error lines (%zu of them '" REFUSED_BATCH "') in %.1f s after the first refusal "
		"(at most %d and %d in %d s)\n",
		r.n, sent, errors, refused, (double)(it_mono_ms() - start) / 1000.0, MAX_SENT,
		MAX_ERRORS, SPELL_MS / 1000);
	assert_true(sent <= MAX_SENT);
	assert_true(errors <= MAX_ERRORS);
	/* the broker is still the one it was, and it was not idle: the
	 * deliveries were sent again (after `redeliver`) */
	assert_int_equal(n->broker_pid, pid);
	assert_true(sent > 0);

	/* 3. room again: everything is delivered and acked, once */
	assert_int_equal(unlink(topup), 0);
	assert_int_equal(unlink(filler), 0);
	assert_true(it_until_metric(url, QUEUE_CPI, 0));
	assert_true(it_until_metric(url, ACKED_TOTAL, (double)r.n));
	struct deliveries dl = {.r = &r};
	assert_true(it_log_each(n, on_entry, &dl) > 0);
	for (size_t i = 0; i < r.n; i++) {
		if (dl.seen[i] != 1)
			fprintf(stderr, "entry %" PRIu64 ": %d Delivery entries\n", r.index[i],
				dl.seen[i]);
		assert_int_equal(dl.seen[i], 1);
	}
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	assert_int_equal(it_inbox_count(inbox), r.n);
	it_audit_verifies(n);
	assert_int_equal(n->broker_pid, pid);
	assert_int_equal(n->broker_starts, 1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_full_disk_acks, it_disk_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
