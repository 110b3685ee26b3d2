/* test_witness_patience.c — a broker that stops showing its log to the
 * witness cannot leave the agent's receipts pending without a sign.
 *
 * A fake broker (itest.h, it_fake) holding the broker's key receipts one
 * message with an honest inclusion proof to a checkpoint of size 2, then
 * shows the witness only its checkpoint of size 1 (a broker withholding its
 * log, e.g. because it shows another history to others): the receipt can
 * never be shown on the log the witness verified. The real rete-agent, with
 * a tiny `witness_patience` (3 `witness` intervals, scaled):
 *   - logs the warning once, naming the receipt, its checkpoint's size and
 *     the largest verified size, and says so in /metrics
 *     (rete_agent_witness_stalled 1, the oldest pending receipt's time and
 *     checkpoint size);
 *   - keeps the time the receipt was recorded across a restart (the metric
 *     is the same after it) and warns again in the new run; a record of
 *     the version before (no time) counts as recorded at the start;
 *   - once the fake shows a larger checkpoint (size 3, with honest
 *     consistency proofs from its log), checks the receipt, forgets it, says
 *     the stall is over and the metric goes back to 0. No witness alarm: a
 *     stall is not proof of a fork.
 *
 * Waits are for log lines and metric values with deadlines, never sleeps.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <zmq.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "itest.h"
#include "merkle.h"

#define WP_WAIT 90000 /* generous: 2 cores, sanitizers */

typedef struct wp_fake {
	it_fake l;
	bool reveal;   /* show the whole log (grown by one entry) */
	int cps, cons; /* checkpoints shown, consistency proofs given */
} wp_fake;

/* wp_query answers the witness: while not revealing, the checkpoint of
 * size 1 (the fake log's first entry) only; then the whole log, one entry
 * longer than the receipt's checkpoint. Proofs are honest ones from the
 * fake's log; a cosignature is refused. */
static void wp_query(it_fake *l, const void *id, size_t idl, const Rete__Query *q)
{
	wp_fake *w = (wp_fake *)l;
	uint8_t root[RETE_MERKLE_HASH];
	char *note = NULL;
	Rete__QueryResult r = RETE__QUERY_RESULT__INIT;
	rete_msg m;

	if (w->reveal && l->tree.mm_size == 2) {
		uint8_t leaf[RETE_MERKLE_HASH];
		rete_merkle_leaf_hash(leaf, "a later entry", 13);
		assert_int_equal(rete_merkle_mem_append(&l->tree, leaf), RETE_OK);
	}
	bool shown = l->tree.mm_size >= 2; /* nothing receipted yet: nothing shown */
	if (shown && q->what_case == RETE__QUERY__WHAT_CHECKPOINT) {
		uint64_t size = w->reveal ? l->tree.mm_size : 1;
		uint32_t epoch = l->welcome->welcome->epoch ? l->welcome->welcome->epoch : 1;
		assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &l->tree, size, root),
				 RETE_OK);
		assert_int_equal(
		    rete_checkpoint_sign_epoch(IT_ORIGIN, size, root, epoch, l->key, &note, &m),
		    RETE_OK);
		w->cps++;
		r.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
		r.checkpoint = note;
	} else if (shown && q->what_case == RETE__QUERY__WHAT_CONSISTENCY) {
		w->cons++;
	}
	it_fake_result(l, id, idl, q, &r, shown, &l->tree);
	free(note);
}

/* wp_put writes one referral into social services' outbox (it_outbox_put). */
static void wp_put(it_net *n, const char *name)
{
	json_t *j = json_pack(
	    "{s:{s:s,s:s},s:s,s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:s},"
	    "s:{s:{s:s,s:s},s:s}}",
	    "operator", "staffId", "as-0042", "role", "social-worker", "id", "wp-1", "recipient",
	    "cpi.mantova", "caseId", "mn-2026-0173", "referral", "service",
	    "employment-orientation", "priority", "routine", "reasonCode", "long-term-unemployment",
	    "consent", "basis", "consent", "givenAt", "2026-11-20T09:30:00Z", "reference",
	    "CONS-2026-0412", "ageBand", "adult", "private", "person", "name", "Maria Rossi",
	    "fiscalCode", "RSSMRA85M41E897X", "reason", "Unemployed; asks for help to find work.");
	assert_non_null(j);
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	assert_non_null(text);
	it_outbox_put(n, IT_SOCIAL, name, text);
	free(text);
}

/* wp_record reads party p's pending witness record of log index 1 (the
 * agent stopped) into rec; its length, 0 when there is none. */
static size_t wp_record(it_net *n, int p, uint8_t *rec, size_t cap)
{
	char dir[1300];
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 1};
	MDB_val k = {sizeof(key), key}, v;
	size_t len = 0;

	tu_path(dir, sizeof(dir), "%s/agents/%s/data", n->dir, it_party_ids[p]);
	assert_int_equal(mdb_env_create(&env), 0);
	if (mdb_env_set_maxdbs(env, 16) == 0 && mdb_env_open(env, dir, MDB_RDONLY, 0600) == 0 &&
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
		if (mdb_dbi_open(txn, "witness", 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0 &&
		    v.mv_size <= cap) {
			memcpy(rec, v.mv_data, v.mv_size);
			len = v.mv_size;
		}
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return len;
}

/* wp_port: the port of the latest "metrics on http://127.0.0.1:PORT/" in
 * the agent's log after byte `from` (0 at the deadline), serving the fake
 * meanwhile. */
static unsigned wp_port(wp_fake *w, const char *log, long from)
{
	int64_t end = it_mono_ms() + it_scaled_ms(WP_WAIT);
	while (it_mono_ms() < end) {
		size_t len = 0;
		char *text = tu_read_file(log, &len);
		const char *p = text != NULL && (size_t)from < len
				    ? strstr(text + from, "metrics on http://127.0.0.1:")
				    : NULL;
		unsigned port = 0;
		if (p != NULL)
			sscanf(p, "metrics on http://127.0.0.1:%u/", &port);
		free(text);
		if (port)
			return port;
		it_fake_serve(&w->l, &w->l.hellos, INT32_MAX, 100);
	}
	return 0;
}

/* wp_until serves the fake until the log holds `needle` at least `times`
 * times and the metric `series` is `want` (want < 0: not looked at); the
 * last scrape is kept in *last (caller frees). */
static bool wp_until(wp_fake *w, const char *log, const char *needle, size_t times, const char *url,
		     const char *series, double want, char **last)
{
	int64_t end = it_mono_ms() + it_scaled_ms(WP_WAIT);
	for (;;) {
		free(*last);
		*last = it_scrape(url, NULL);
		bool said = needle == NULL || tu_occurrences(log, needle) >= times;
		bool shown = want < 0 || (*last != NULL && it_metric(*last, series) == want);
		if (said && shown)
			return true;
		if (it_mono_ms() >= end) {
			fprintf(stderr, "never: '%s' x%zu and %s = %g; the last scrape:\n%s\n",
				needle ? needle : "-", times, series, want,
				*last ? *last : "(none)");
			return false;
		}
		it_fake_serve(&w->l, &w->l.hellos, INT32_MAX, 200);
	}
}

/* wp_expect is wp_until that fails the test (the agent's log shown) when
 * the deadline passes first. */
static void wp_expect(wp_fake *w, it_net *n, const char *log, const char *needle, size_t times,
		      const char *url, const char *series, double want, char **last)
{
	if (!wp_until(w, log, needle, times, url, series, want, last)) {
		it_show(n, "social.mantova.log");
		fail_msg("the agent never got there");
	}
}

/* wp_url writes into url the metrics address the agent's log names after
 * byte from (wp_port), failing the test (the log shown) without one. */
static void wp_url(wp_fake *w, it_net *n, const char *log, long from, char *url, size_t len)
{
	unsigned port = wp_port(w, log, from);
	if (port == 0)
		it_show(n, "social.mantova.log");
	assert_true(port != 0);
	snprintf(url, len, "http://127.0.0.1:%u/metrics", port);
}

static void test_withheld_checkpoint(void **state)
{
	it_net *n = it_net_new("wp-stall", NULL);
	assert_non_null(n);
	*state = n;
	char log[1300], url[128], extra[256], *scrape = NULL;
	wp_fake w;

	Rete__BrokerFrame *welcome = it_real_welcome(n, IT_SOCIAL);
	/* no checkpoint in the WELCOME: the witness's first is the fake's */
	if (welcome->welcome->checkpoint != NULL && welcome->welcome->checkpoint[0] != '\0')
		welcome->welcome->checkpoint[0] = '\0';
	it_fake_open(&w.l, n, welcome);
	w.reveal = false;
	w.cps = w.cons = 0;
	w.l.honest_leaf = true;
	w.l.on_query = wp_query;

	snprintf(extra, sizeof(extra),
		 "witness = 1s\nwitness_patience = %dms\nmetrics = 127.0.0.1:0\n",
		 it_scaled_ms(3000));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, extra));
	long from = n->agent_log_at[IT_SOCIAL];
	wp_put(n, "stall.json");
	wp_url(&w, n, log, from, url, sizeof(url));

	/* the receipt (index 1, checkpoint of size 2) is taken... */
	assert_int_equal(it_fake_serve(&w.l, &w.l.receipts, 1, WP_WAIT), 1);
	/* ...and never shown on the log: the warning, once, and the metric */
	const char *warned = "witness: receipt 1 (its checkpoint of size 2) has waited ";
	wp_expect(&w, n, log, warned, 1, url, "rete_agent_witness_stalled", 1, &scrape);
	assert_true(tu_occurrences(log, "the largest checkpoint this agent verified is of "
					"size 1") >= 1);
	assert_true(it_metric(scrape, "rete_agent_witness_pending_receipts") == 1);
	assert_true(it_metric(scrape, "rete_agent_witness_oldest_pending_checkpoint_size") == 2);
	double recorded = it_metric(scrape, "rete_agent_witness_oldest_pending_timestamp_seconds");
	assert_true(recorded > 0);
	assert_true(it_metric(scrape, "rete_agent_witness_checkpoint_size") == 1);

	/* A restart keeps the time the receipt was recorded, and the new run
	 * says it again. */
	assert_true(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()) != -1);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, extra));
	wp_url(&w, n, log, n->agent_log_at[IT_SOCIAL], url, sizeof(url));
	wp_expect(&w, n, log, warned, 2, url, "rete_agent_witness_stalled", 1, &scrape);
	assert_true(it_metric(scrape, "rete_agent_witness_oldest_pending_timestamp_seconds") ==
		    recorded);

	/* The record as the agent of the version before wrote it (leaf, size,
	 * root; no time) counts as recorded when the agent started. */
	assert_true(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()) != -1);
	uint8_t rec[256];
	size_t len = wp_record(n, IT_SOCIAL, rec, sizeof(rec));
	assert_int_equal(len, 2 * RETE_MERKLE_HASH + 16); /* leaf, size, root, time */
	uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 1};
	char data[1300];
	tu_path(data, sizeof(data), "%s/agents/social.mantova/data", n->dir);
	tu_raw_put(data, "witness", key, sizeof(key), rec, len - 8);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, extra));
	wp_url(&w, n, log, n->agent_log_at[IT_SOCIAL], url, sizeof(url));
	wp_expect(&w, n, log, warned, 3, url, "rete_agent_witness_stalled", 1, &scrape);
	double at = it_metric(scrape, "rete_agent_witness_oldest_pending_timestamp_seconds");
	assert_true(at > recorded);
	assert_true(at >= it_metric(scrape, "rete_agent_start_time_seconds"));

	/* The broker shows its log again: the receipt is checked, the stall
	 * is over. */
	w.reveal = true;
	wp_expect(&w, n, log, "witness: the stall is over", 1, url, "rete_agent_witness_stalled", 0,
		  &scrape);
	wp_expect(&w, n, log, NULL, 0, url, "rete_agent_witness_pending_receipts", 0, &scrape);
	assert_true(it_metric(scrape, "rete_agent_witness_oldest_pending_timestamp_seconds") == 0);
	assert_true(it_metric(scrape, "rete_agent_witness_checkpoint_size") == 3);
	assert_int_equal(tu_occurrences(log, warned), 3); /* once per episode (per run) */
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
	assert_true(w.cons >= 1);
	free(scrape);
	it_fake_close(&w.l);
}

/* wp_unrecorded starts a broker that cannot record reads (its access
 * record, alog, a folder) and party p's agent with witness 1s and a short
 * witness_patience (*patience ms); log gets p's log file (both 1300 bytes). */
static it_net *wp_unrecorded(void **state, const char *name, int p, char *alog, char *log,
			     int *patience)
{
	it_net *n = it_net_new(name, NULL);
	assert_non_null(n);
	*state = n;
	char extra[256];
	tu_path(alog, 1300, "%s.access.log", n->data);
	assert_int_equal(mkdir(alog, 0700), 0);
	assert_true(it_broker_start(n));
	*patience = it_scaled_ms(3000);
	snprintf(extra, sizeof(extra), "witness = 1s\nwitness_patience = %dms\n", *patience);
	tu_path(log, 1300, "%s/%s.log", n->dir, it_party_ids[p]);
	assert_true(it_agent_start_ex(n, p, extra));
	return n;
}

/* wp_cannot_tell: the patience warning of party p (its log at log), whose
 * broker refuses reads it cannot record, says once that the agent cannot
 * tell whether the broker's log `what` (not that it is not withholding
 * its log: the refusal is the broker's word). */
static void wp_cannot_tell(it_net *n, int p, const char *log, const char *what)
{
	char said[160], file[96];
	snprintf(said, sizeof(said), "this agent cannot tell whether its log %s", what);
	if (tu_occurrences(log, said) != 1) {
		snprintf(file, sizeof(file), "%s.log", it_party_ids[p]);
		it_show(n, file);
		fail_msg("the patience warning of a broker that refuses reads it cannot record "
			 "does not say \"%s\"",
			 said);
	}
}

/* A real broker that cannot record reads (its access record a folder)
 * refuses the witness's proofs ("this read was not made"): the agent says
 * so at warning, once (at most once an hour), and the patience warning names
 * that cause and that the agent cannot tell, while its questions are
 * refused, whether the log holds the receipt (not that the broker is not
 * withholding its log: the refusal is its word); the record writable again,
 * the proofs are answered and the stall is over. */
static void test_unrecorded_reads(void **state)
{
	char alog[1300], log[1300];
	int patience;
	it_net *n = wp_unrecorded(state, "wp-unrec", IT_SOCIAL, alog, log, &patience);
	wp_put(n, "unrec.json");

	const char *cannot = "witness: the broker cannot record reads in its access record";
	const char *waited = "to be shown on the broker's log, longer than witness_patience";
	bool ok = it_wait_occurrences(log, cannot, 1, it_wait_ms()) &&
		  it_wait_occurrences(log, waited, 1, it_wait_ms() + patience);
	if (!ok) {
		it_show(n, "social.mantova.log");
		it_show(n, "broker.log");
	}
	assert_true(ok);
	assert_true(tu_occurrences(log, "this read was not made") >= 2);
	wp_cannot_tell(n, IT_SOCIAL, log, "shows this receipt");
	assert_int_equal(tu_occurrences(log, "withholding its log"), 0);
	assert_int_equal(tu_occurrences(log, "forked its log"), 0);
	assert_int_equal(tu_occurrences(log, cannot), 1);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);

	/* the record can be written again: the proofs come, the stall ends */
	assert_int_equal(rmdir(alog), 0);
	ok = it_wait_occurrences(log, "witness: the broker answers this agent's questions", 1,
				 it_wait_ms()) &&
	     it_wait_occurrences(log, "witness: the stall is over", 1, it_wait_ms());
	if (!ok)
		it_show(n, "social.mantova.log");
	assert_true(ok);
	assert_int_equal(tu_occurrences(log, cannot), 1);
}

/* A recipient (cpi) of a broker that cannot record reads: its witness
 * cannot check the entry delivered to it, and its patience warning says so
 * (the access record), not that the broker delivered an entry its log does
 * not hold (rev-deliv finding 2). */
static void test_unrecorded_delivered(void **state)
{
	char alog[1300], log[1300];
	int patience;
	it_net *n = wp_unrecorded(state, "wp-unrec-dlv", IT_CPI, alog, log, &patience);
	assert_true(it_agent_start(n, IT_SOCIAL));
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "wp-unrec-1");
	const char *waited = "to be shown on the broker's log, longer than witness_patience";
	bool ok = it_wait_occurrences(log, "written to inbox", 1, it_wait_ms()) &&
		  it_wait_occurrences(log, waited, 1, it_wait_ms() + 4 * patience);
	if (!ok)
		it_show(n, "cpi.mantova.log");
	assert_true(ok);
	assert_int_equal(tu_occurrences(log, "index its log does not hold"), 0);
	assert_int_equal(tu_occurrences(log, "delivered entry 1 (referral wp-unrec-1 from "
					     "social.mantova) has waited"),
			 1);
	wp_cannot_tell(n, IT_CPI, log, "holds this entry");
	assert_int_equal(tu_occurrences(log, "withholding its log"), 0);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_withheld_checkpoint, it_teardown),
	    cmocka_unit_test_teardown(test_unrecorded_reads, it_teardown),
	    cmocka_unit_test_teardown(test_unrecorded_delivered, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
