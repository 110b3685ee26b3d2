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

static void test_rollback(void **state)
{
	it_net *n = wr_net("wit-rollback");
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
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rc = tu_run(&out,
		    "mv '%s' '%s.lost' && mv '%s.copy' '%s' && mv '%s' '%s.lost' && "
		    "mv '%s.copy' '%s' 2>&1",
		    n->data, n->data, n->data, n->data, bstate, bstate, bstate, bstate);
	assert_int_equal(rc, 0);
	free(out);
	hellos = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
	assert_true(it_broker_start(n));
	snprintf(want, sizeof(want), "log size %" PRIu64, index);
	assert_true(tu_occurrences(n->log, want) >= 1);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_rollback, it_teardown),
	    cmocka_unit_test_teardown(test_honest_lag, it_teardown),
	    cmocka_unit_test_teardown(test_bad_proof, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
