/* test_witness_rollback.c — a broker that comes back without a batch it
 * receipted, in the same epoch (no declared restore), is caught by the
 * sender's witness at once (rev-restore s14, finding 1).
 *
 * The real rete-broker (checkpoint_interval 1h: its stored checkpoint, the
 * one WELCOME and the witness's question show, stays behind the receipts'
 * per-commit checkpoints, as it does for up to checkpoint_interval on any
 * network) and the real agents of social services (the sender) and the
 * job centre (the recipient, stopped while the lost referral is sent, so
 * that the broker's queue is its only copy).
 *
 *   honest lag  social's agent holds a receipt whose checkpoint (size
 *               S + 1) is larger than the broker's latest stored one (S);
 *               the agent is restarted: at its WELCOME it asks the
 *               consistency proof from S to S + 1, the broker answers it,
 *               and there is no alarm. (The broker's stored checkpoint is
 *               honestly behind its receipts: a size alone proves nothing.)
 *   rollback    the store folder (with its journal files) and the broker's
 *               state file are copied while the broker is stopped; a
 *               referral is sent and receipted (index S, checkpoint S + 1);
 *               the broker is stopped, the copy put back and the broker
 *               started WITHOUT --restore: an undeclared rollback by one
 *               batch, the same the tester made by losing the journal
 *               files. Social's agent must raise the WITNESS ALARM ("the
 *               log shrank", naming the receipt) at its reconnect, before
 *               any other message takes the index, keep it for `rete
 *               status` (text and --json), submit the referral again (the
 *               same id and bytes) and the job centre's agent must get it
 *               once.
 *   bad proof   a fake broker holding the broker's key receipts a message
 *               (index 1, checkpoint of size 2) and shows the checkpoint
 *               of size 1 only; at the agent's next WELCOME (a restart)
 *               it answers the question with a consistency proof of
 *               another history: the alarm, naming the receipt. While the
 *               agent stays on the connection that brought the receipt it
 *               is not asked (the broker that receipted it has not
 *               restarted since).
 *
 * Waits are for log lines, files and PONGs with deadlines, never sleeps.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <glob.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "checkpoint.h"
#include "itest.h"
#include "merkle.h"

#define WR_WAIT 30000

/* wr_log: party p's log file into buf. */
static char *wr_log(const it_net *n, int p, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.log", n->dir, it_party_ids[p]);
	return buf;
}

/* wr_expect waits for text in party p's log (want occurrences in all);
 * on failure the log is shown and the test fails with why. */
static void wr_expect(it_net *n, int p, const char *text, size_t want, const char *why)
{
	char log[1300];
	wr_log(n, p, log, sizeof(log));
	if (!it_wait_occurrences(log, text, want, WR_WAIT)) {
		it_show_path(log, 8000);
		it_show(n, "broker.log");
		fail_msg("%s", why);
	}
}

/* wr_receipt reads social's sent/NAME.receipt.json: its index and its
 * checkpoint's size. */
static void wr_receipt(it_net *n, const char *name, uint64_t *index, uint64_t *size)
{
	char dir[1300], path[1600];
	it_spool(n, IT_SOCIAL, "sent", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s.receipt.json", dir, name);
	json_t *j = json_load_file(path, 0, NULL);
	assert_non_null(j);
	const char *idx = json_string_value(json_object_get(j, "index"));
	const char *note = json_string_value(json_object_get(j, "checkpoint"));
	assert_non_null(idx);
	assert_non_null(note);
	rete_checkpoint cp;
	assert_int_equal(rete_checkpoint_parse(note, strlen(note), &cp, NULL), RETE_OK);
	*index = strtoull(idx, NULL, 10);
	*size = cp.size;
	json_decref(j);
}

/* wr_net: the broker (checkpoint_interval 1h) and both agents running,
 * one referral (wr-1) delivered and its delivery receipt back, then the
 * job centre's agent stopped. */
static it_net *wr_net(const char *tag)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	n->cp_interval = "1h";
	assert_int_equal(it_write_ini(n), 0);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "wr-1");
	char inbox[1300];
	assert_true(it_until_inbox(it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox)), 1));
	wr_expect(n, IT_SOCIAL, "message wr-1 delivered", 1,
		  "no delivery receipt of wr-1 in social.mantova's log");
	assert_int_equal(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()), 0);
	return n;
}

/* wr_send sends referral id from social services and waits for its
 * receipt; its index and its checkpoint's size. */
static void wr_send(it_net *n, const char *id, uint64_t *index, uint64_t *size)
{
	char want[200], name[100];
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, id);
	snprintf(want, sizeof(want), "%s.json: accepted as %s at log index", id, id);
	wr_expect(n, IT_SOCIAL, want, 1, "the referral was not receipted");
	snprintf(name, sizeof(name), "%s.json", id);
	wr_receipt(n, name, index, size);
}

static void test_honest_lag(void **state)
{
	it_net *n = wr_net("wit-lag");
	*state = n;
	char log[1300];
	wr_log(n, IT_SOCIAL, log, sizeof(log));
	uint64_t index = 0, size = 0;
	wr_send(n, "wr-lag", &index, &size);
	/* social's agent restarted: its WELCOME shows the stored checkpoint,
	 * behind the receipt's (checkpoint_interval 1h) */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	size_t hellos = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_hellos(n->log, it_party_ids[IT_SOCIAL], hellos + 1, WR_WAIT));
	char want[300];
	snprintf(want, sizeof(want),
		 "witness: the broker's log reaches the checkpoint of size %" PRIu64
		 " named by our receipt for log index %" PRIu64,
		 size, index);
	wr_expect(n, IT_SOCIAL, want, 1,
		  "the witness did not ask the broker to show the receipt's checkpoint on its "
		  "log at the WELCOME");
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
}

/* wr_faketime: libfaketime's library (the Debian package libfaketime,
 * scripts/setup), or false. */
static bool wr_faketime(char *buf, size_t len)
{
	glob_t g;
	bool found = false;
	if (glob("/usr/lib/*/faketime/libfaketimeMT.so.1", 0, NULL, &g) == 0) {
		found = g.gl_pathc > 0 && strlen(g.gl_pathv[0]) < len;
		if (found)
			snprintf(buf, len, "%s", g.gl_pathv[0]);
		globfree(&g);
	}
	return found;
}

/* wr_rollback: the broker comes back in the same epoch without the batch
 * of wr-2. With skew (a FAKETIME offset such as "-2h"), the sender is
 * stopped across the rollback and started again with its wall clock that
 * much behind (a clock corrected back at a reboot): its receipt is still
 * of an earlier connection (rev-receiptwatch s14, finding 3). */
static void wr_rollback(void **state, const char *tag, const char *skew)
{
	char lib[1024];
	if (skew != NULL && !wr_faketime(lib, sizeof(lib))) {
		fprintf(stderr, "skipped: libfaketime is not installed (scripts/setup)\n");
		skip();
	}
	it_net *n = wr_net(tag);
	*state = n;
	char log[1300], bstate[1300], want[600];
	char *out = NULL;
	wr_log(n, IT_SOCIAL, log, sizeof(log));
	snprintf(bstate, sizeof(bstate), "%s.state", n->data);

	/* the copy, made while the broker is stopped: the store folder with
	 * its journal files, and the broker's state file */
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	int rc = tu_run(&out, "cp -a '%s' '%s.copy' && cp -a '%s' '%s.copy' 2>&1", n->data, n->data,
			bstate, bstate);
	assert_int_equal(rc, 0);
	free(out);
	size_t hellos = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
	assert_true(it_broker_start(n));
	assert_true(it_wait_hellos(n->log, it_party_ids[IT_SOCIAL], hellos + 1, WR_WAIT));

	uint64_t index = 0, size = 0;
	wr_send(n, "wr-2", &index, &size);
	assert_true(size > index);

	/* the broker loses the batch: stopped, the copy put back, started
	 * without --restore (the same epoch) */
	if (skew != NULL)
		assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rc = tu_run(&out,
		    "mv '%s' '%s.lost' && mv '%s.copy' '%s' && mv '%s' '%s.lost' && "
		    "mv '%s.copy' '%s' 2>&1",
		    n->data, n->data, n->data, n->data, bstate, bstate, bstate, bstate);
	assert_int_equal(rc, 0);
	free(out);
	hellos = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
	snprintf(want, sizeof(want), "log size %" PRIu64, index);
	size_t sized = tu_occurrences(n->log, want); /* already there: the start after the copy */
	assert_true(it_broker_start(n));
	assert_true(tu_occurrences(n->log, want) == sized + 1);
	if (skew != NULL) {
		/* a sanitizer build: its runtime is not first in a preloaded
		 * process (as test_broker_tsa's libfaketime) */
		const char *asan = getenv("ASAN_OPTIONS");
		char asan_before[512] = "", asan_now[600];
		if (asan)
			snprintf(asan_before, sizeof(asan_before), "%s", asan);
		snprintf(asan_now, sizeof(asan_now), "%s%sverify_asan_link_order=0",
			 asan_before, asan_before[0] ? ":" : "");
		setenv("ASAN_OPTIONS", asan_now, 1);
		setenv("LD_PRELOAD", lib, 1);
		setenv("FAKETIME", skew, 1);
		bool started = it_agent_start(n, IT_SOCIAL);
		unsetenv("LD_PRELOAD");
		unsetenv("FAKETIME");
		if (asan)
			setenv("ASAN_OPTIONS", asan_before, 1);
		else
			unsetenv("ASAN_OPTIONS");
		assert_true(started);
	}
	assert_true(it_wait_hellos(n->log, it_party_ids[IT_SOCIAL], hellos + 1, WR_WAIT));

	/* the alarm at the reconnect: nobody else sends, so no other entry
	 * takes the index (the only way the agent noticed before) */
	snprintf(want, sizeof(want),
		 "social.mantova error: WITNESS ALARM: the log shrank: the broker's log does not "
		 "reach the checkpoint of size %" PRIu64 " it signed in our receipt for log index "
		 "%" PRIu64,
		 size, index);
	if (!it_wait_occurrences(log, want, 1, WR_WAIT)) {
		it_show_path(log, 8000);
		fail_msg(
		    "no WITNESS ALARM in social.mantova's log after the broker came back at log "
		    "size %" PRIu64 " in the same epoch, although its receipt for log index "
		    "%" PRIu64 " names the broker's signed checkpoint of size %" PRIu64,
		    index, index, size);
	}
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 1);

	/* submitted again, the same id: a new receipt */
	wr_expect(n, IT_SOCIAL, "held message wr-2 receipted again at log index", 1,
		  "wr-2 was not submitted again after the alarm");

	/* rete status: the alarm, in words and in --json */
	rc = tu_run(&out, "'%s/rete' status -c '%s/agents/social.mantova/agent.ini' --timeout 0",
		    n->bin, n->dir);
	if (rc != 0 || strstr(out, "WITNESS ALARM: the log shrank") == NULL)
		fprintf(stderr, "rete status:\n%s\n", out ? out : "");
	assert_non_null(strstr(out, "WITNESS ALARM: the log shrank"));
	free(out);
	rc = tu_run(&out,
		    "'%s/rete' status -c '%s/agents/social.mantova/agent.ini' --json --timeout 0",
		    n->bin, n->dir);
	json_t *doc = json_loads(out, 0, NULL);
	if (doc == NULL)
		fprintf(stderr, "rete status --json:\n%s\n", out ? out : "");
	assert_non_null(doc);
	const char *said = json_string_value(json_object_get(doc, "witnessAlarm"));
	assert_non_null(said);
	assert_non_null(strstr(said, "the log shrank"));
	json_decref(doc);
	free(out);

	/* the job centre gets it, once; its delivery receipt comes back */
	assert_true(it_agent_start(n, IT_CPI));
	char inbox[1300];
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	assert_true(it_until_inbox(inbox, 2));
	wr_expect(n, IT_SOCIAL, "message wr-2 delivered", 1,
		  "no delivery receipt of wr-2 in social.mantova's log");
	assert_int_equal(it_inbox_count(inbox), 2);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 1);
	it_audit_verifies(n);
}

static void test_rollback(void **state)
{
	wr_rollback(state, "wit-rollback", NULL);
}

static void test_rollback_clock_back(void **state)
{
	wr_rollback(state, "wit-rollback-clock", "-2h");
}

/* A fake broker whose consistency proofs are of another history (its
 * first entry, then another second one than the one it receipted). */
typedef struct wr_fake {
	it_fake l;
	rete_merkle_mem other;
	int cons; /* consistency questions answered */
} wr_fake;

/* wr_query answers the witness: the checkpoint of size 1 (once something
 * is receipted), consistency proofs from the other history, nothing else. */
static void wr_query(it_fake *l, const void *id, size_t idl, const Rete__Query *q)
{
	wr_fake *w = (wr_fake *)l;
	Rete__QueryResult r = RETE__QUERY_RESULT__INIT;
	char *note = NULL;
	bool shown = l->tree.mm_size >= 2;
	if (shown && q->what_case == RETE__QUERY__WHAT_CHECKPOINT) {
		uint8_t root[RETE_MERKLE_HASH];
		rete_msg m;
		uint32_t epoch = l->welcome->welcome->epoch ? l->welcome->welcome->epoch : 1;
		assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &l->tree, 1, root), RETE_OK);
		assert_int_equal(
		    rete_checkpoint_sign_epoch(IT_ORIGIN, 1, root, epoch, l->key, &note, &m),
		    RETE_OK);
		r.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
		r.checkpoint = note;
	}
	if (shown && q->what_case == RETE__QUERY__WHAT_CONSISTENCY)
		w->cons++;
	it_fake_result(l, id, idl, q, &r, shown && q->what_case != RETE__QUERY__WHAT_COSIGN,
		       &w->other);
	free(note);
}

static void test_bad_proof(void **state)
{
	it_net *n = it_net_new("wit-badproof", NULL);
	assert_non_null(n);
	*state = n;
	char log[1300];
	wr_fake w;
	uint8_t leaf[RETE_MERKLE_HASH];

	Rete__BrokerFrame *welcome = it_real_welcome(n, IT_SOCIAL);
	/* no checkpoint in the WELCOME: the witness's first is the fake's */
	if (welcome->welcome->checkpoint != NULL && welcome->welcome->checkpoint[0] != '\0')
		welcome->welcome->checkpoint[0] = '\0';
	it_fake_open(&w.l, n, welcome);
	w.cons = 0;
	w.l.honest_leaf = true;
	w.l.on_query = wr_query;
	rete_merkle_mem_init(&w.other);
	rete_merkle_leaf_hash(leaf, "the fake log's first entry", 26);
	assert_int_equal(rete_merkle_mem_append(&w.other, leaf), RETE_OK);
	rete_merkle_leaf_hash(leaf, "another history", 15);
	assert_int_equal(rete_merkle_mem_append(&w.other, leaf), RETE_OK);

	wr_log(n, IT_SOCIAL, log, sizeof(log));
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\n"));
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "wr-fake");
	assert_int_equal(it_fake_serve(&w.l, &w.l.receipts, 1, WR_WAIT), 1);
	/* the checkpoint of size 1 verified on the receipt's connection: no
	 * question about the receipt's larger one */
	const char *verified = "witness: checkpoint of size 1 verified";
	int64_t end = it_mono_ms() + it_scaled_ms(WR_WAIT);
	while (tu_occurrences(log, verified) < 1 && it_mono_ms() < end)
		it_fake_serve(&w.l, &w.l.hellos, INT32_MAX, 200);
	if (tu_occurrences(log, verified) < 1) {
		it_show_path(log, 8000);
		fail_msg("the agent never verified the fake's checkpoint of size 1");
	}
	it_fake_serve(&w.l, &w.l.hellos, INT32_MAX, 2500); /* two `witness` rounds */
	assert_int_equal(w.cons, 0);

	/* the next WELCOME: asked, and the proof is of another history */
	assert_true(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()) != -1);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\n"));
	const char *want =
	    "WITNESS ALARM: our receipt for log index 1 names a checkpoint of size 2 "
	    "(root ";
	end = it_mono_ms() + it_scaled_ms(WR_WAIT);
	while (tu_occurrences(log, want) < 1 && it_mono_ms() < end)
		it_fake_serve(&w.l, &w.l.hellos, INT32_MAX, 200);
	if (tu_occurrences(log, want) < 1) {
		it_show_path(log, 8000);
		fail_msg(
		    "no WITNESS ALARM when the broker proves a receipt's checkpoint from another "
		    "history (%d consistency questions answered)",
		    w.cons);
	}
	assert_true(tu_occurrences(log, "that does not extend the checkpoint of size 1 this agent "
					"verified") >= 1);
	assert_true(w.cons >= 1);
	it_fake_close(&w.l);
	rete_merkle_mem_free(&w.other);
}

/* A rolled-back broker that never answers the question with the refusal
 * "beyond the log" (rev-receiptwatch s14, finding 1). The fake holds the
 * broker key, receipts ev-1 at index 1 with the checkpoint of size 2 and
 * shows only the checkpoint of size 1; after the agent's restart (a new
 * WELCOME) it refuses the consistency question (mode 0: INTERNAL "busy";
 * 1: NOT_FOUND with the access record's words; 2: no answer) or shows a
 * checkpoint signed by another key (3). */
static int ev_mode, ev_cons;
static const rete_seckey *ev_other;
static bool ev_phase2;

static void ev_query(it_fake *l, const void *id, size_t idl, const Rete__Query *q)
{
	Rete__QueryResult r = RETE__QUERY_RESULT__INIT;
	char *note = NULL;
	if (l->tree.mm_size < 2)
		return;
	r.request_id = q->request_id;
	if (q->what_case == RETE__QUERY__WHAT_CHECKPOINT) {
		uint8_t root[RETE_MERKLE_HASH];
		rete_msg m;
		uint32_t epoch = l->welcome->welcome->epoch ? l->welcome->welcome->epoch : 1;
		const rete_seckey *key = ev_mode == 3 && ev_phase2 ? ev_other : l->key;
		assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &l->tree, 1, root), RETE_OK);
		assert_int_equal(
		    rete_checkpoint_sign_epoch(IT_ORIGIN, 1, root, epoch, key, &note, &m), RETE_OK);
		r.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
		r.checkpoint = note;
	} else if (q->what_case == RETE__QUERY__WHAT_CONSISTENCY) {
		ev_cons++;
		if (ev_mode == 2)
			return;
		r.error = ev_mode == 0 ? RETE__ERROR_CODE__ERROR_CODE_INTERNAL
				       : RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND;
		r.error_text = ev_mode == 0
				   ? (char *)"busy, ask again later"
				   : (char *)"no such proof: beyond the log; this read was "
					     "not made";
	} else {
		r.error = RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND;
		r.error_text = (char *)"not here";
	}
	Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
	f.command_case = RETE__BROKER_FRAME__COMMAND_RESULT;
	f.result = &r;
	it_fake_reply(l->sock, id, idl, &f);
	free(note);
}

static void ev_run(void **state, int mode, const char *tag)
{
	ev_mode = mode;
	ev_cons = 0;
	ev_phase2 = false;
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	char log[1300];
	it_fake l;
	const char *ini = "witness = 1s\nwitness_patience = 8s\n";
	Rete__BrokerFrame *welcome = it_real_welcome(n, IT_SOCIAL);
	if (welcome->welcome->checkpoint != NULL && welcome->welcome->checkpoint[0] != '\0')
		welcome->welcome->checkpoint[0] = '\0';
	it_fake_open(&l, n, welcome);
	l.honest_leaf = true;
	l.on_query = ev_query;
	wr_log(n, IT_SOCIAL, log, sizeof(log));
	assert_true(it_agent_start_ex(n, IT_SOCIAL, ini));
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "ev-1");
	assert_int_equal(it_fake_serve(&l, &l.receipts, 1, WR_WAIT), 1);
	const char *verified = "witness: checkpoint of size 1 verified";
	int64_t end = it_mono_ms() + it_scaled_ms(WR_WAIT);
	while (tu_occurrences(log, verified) < 1 && it_mono_ms() < end)
		it_fake_serve(&l, &l.hellos, INT32_MAX, 200);
	assert_true(tu_occurrences(log, verified) >= 1);
	int submits = l.submits;

	/* the broker "comes back": the agent restarts, a new WELCOME */
	assert_true(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()) != -1);
	ev_other = n->keys[IT_CPI];
	ev_phase2 = true;
	assert_true(it_agent_start_ex(n, IT_SOCIAL, ini));
	const char *want = mode == 1 ? "WITNESS ALARM: the log shrank: the broker's log does not "
				       "reach the checkpoint of size 2 it signed in our receipt "
				       "for log index 1"
				     : "WITNESS ALARM: the log may have shrunk: the broker has not "
				       "shown, within witness_patience";
	end = it_mono_ms() + it_scaled_ms(WR_WAIT);
	while ((tu_occurrences(log, want) < 1 || l.submits <= submits) && it_mono_ms() < end)
		it_fake_serve(&l, &l.hellos, INT32_MAX, 200);
	if (tu_occurrences(log, want) < 1 || l.submits <= submits) {
		it_show_path(log, 8000);
		fail_msg("mode %d: %zu alarm(s) '%s', %d submission(s) after the restart, %d "
			 "consistency question(s): a broker that does not reach its receipt's "
			 "checkpoint escaped the alarm or the resubmission",
			 mode, tu_occurrences(log, want), want, l.submits - submits, ev_cons);
	}
	if (tu_occurrences(log, "WITNESS ALARM") != 1) {
		it_show_path(log, 8000);
		fail_msg("mode %d: %zu WITNESS ALARM lines, not one", mode,
			 tu_occurrences(log, "WITNESS ALARM"));
	}
	it_fake_close(&l);
}

static void test_evade_busy(void **state)
{
	ev_run(state, 0, "wit-ev-busy");
}
static void test_evade_unrecorded(void **state)
{
	ev_run(state, 1, "wit-ev-unrec");
}
static void test_evade_silent(void **state)
{
	ev_run(state, 2, "wit-ev-silent");
}
static void test_evade_otherkey(void **state)
{
	ev_run(state, 3, "wit-ev-otherkey");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_rollback, it_teardown),
	    cmocka_unit_test_teardown(test_rollback_clock_back, it_teardown),
	    cmocka_unit_test_teardown(test_honest_lag, it_teardown),
	    cmocka_unit_test_teardown(test_bad_proof, it_teardown),
	    cmocka_unit_test_teardown(test_evade_busy, it_teardown),
	    cmocka_unit_test_teardown(test_evade_unrecorded, it_teardown),
	    cmocka_unit_test_teardown(test_evade_silent, it_teardown),
	    cmocka_unit_test_teardown(test_evade_otherkey, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
