/* test_witness_cosign.c — every agency a cosigning witness (issue 14).
 *
 *   test_broker_cosign   the real broker takes a party's cosignature of a
 *                        stored checkpoint (Query.cosign), keeps one line per
 *                        party on the stored note and serves it with
 *                        CheckpointQuery{size}; it refuses, saying what was
 *                        wrong, a forged line, a line in another party's name,
 *                        a note it did not store, a size it did not store.
 *                        `rete audit verify STORE --witnesses` passes or fails
 *                        naming the missing and invalid witnesses.
 *   test_agents_cosign   real agents cosign the checkpoints they verify; the
 *                        latest checkpoint meets a policy of those agencies,
 *                        checked by `rete audit verify --witnesses` locally
 *                        and at a distance, and fails one that also requires
 *                        an agency that never cosigned; an agent with a policy
 *                        in agent.ini says it is met; `rete witnesses` writes
 *                        a policy of the directory's agencies (from the broker
 *                        or the store, checked with the broker key).
 *   test_split_view      a broker (a program holding the broker key) shows
 *                        two agencies two different checkpoints of one size:
 *                        both real agents cosign their own, check the other's
 *                        cosignature the broker hands them, raise the alarm
 *                        and keep both notes; an agent shown a second,
 *                        different checkpoint of a size it cosigned raises the
 *                        alarm and never cosigns it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "cosign.h"
#include "itest.h"

#define WAIT_MS it_scaled_ms(60000)

/* ask sends q over w and waits for its answer (NULL at the deadline). */
static Rete__BrokerFrame *ask(rete_wire *w, Rete__Query *q)
{
	uint64_t id = 0;
	rete_msg m = {{0}};
	int64_t end = it_mono_ms() + it_wait_ms();

	q->request_id = 0;
	if (rete_wire_query(w, q, &id, &m) != RETE_OK)
		return NULL;
	while (it_mono_ms() < end) {
		Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_RESULT, 1000);
		if (f != NULL && f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT &&
		    f->result->request_id == id)
			return f;
		if (f != NULL)
			rete__broker_frame__free_unpacked(f, NULL);
	}
	return NULL;
}

static Rete__BrokerFrame *ask_checkpoint(rete_wire *w, uint64_t size)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__CheckpointQuery cq = RETE__CHECKPOINT_QUERY__INIT;
	cq.size = size;
	q.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	q.checkpoint = &cq;
	return ask(w, &q);
}

static Rete__BrokerFrame *ask_cosign(rete_wire *w, const char *note, const char *line)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__CosignQuery cq = RETE__COSIGN_QUERY__INIT;
	cq.checkpoint = (char *)note;
	cq.cosignature = (char *)line;
	q.what_case = RETE__QUERY__WHAT_COSIGN;
	q.cosign = &cq;
	return ask(w, &q);
}

/* latest_note waits for the broker's first checkpoint and returns it. */
static char *latest_note(rete_wire *w)
{
	int64_t end = it_mono_ms() + WAIT_MS;
	while (it_mono_ms() < end) {
		Rete__BrokerFrame *f = ask_checkpoint(w, 0);
		char *note = NULL;
		if (f != NULL && f->result->error == 0 &&
		    f->result->answer_case == RETE__QUERY_RESULT__ANSWER_CHECKPOINT)
			note = strdup(f->result->checkpoint);
		if (f != NULL)
			rete__broker_frame__free_unpacked(f, NULL);
		if (note != NULL)
			return note;
		it_nap(100); /* pacing the question: the checkpoint comes within 1s */
	}
	return NULL;
}

static char *cosign_line(const char *note, int p, const rete_seckey *k)
{
	char *line = NULL;
	rete_msg m = {{0}};
	if (rete_cosign_line(note, strlen(note), it_party_ids[p], k, (uint64_t)time(NULL), &line,
			     &m) != RETE_OK)
		fail_msg("cosign: %s", m.text);
	return line;
}

/* expect_refused: the answer is an error of code, its sentence holding needle. */
static void expect_refused(Rete__BrokerFrame *f, Rete__ErrorCode code, const char *needle)
{
	assert_non_null(f);
	if (f->result->error != code || f->result->error_text == NULL ||
	    strstr(f->result->error_text, needle) == NULL)
		fail_msg("expected error %d with '%s'; got %d '%s'", code, needle, f->result->error,
			 f->result->error_text ? f->result->error_text : "");
	rete__broker_frame__free_unpacked(f, NULL);
}

/* answered_note: the checkpoint answered (malloc'd), failing otherwise. */
static char *answered_note(Rete__BrokerFrame *f)
{
	assert_non_null(f);
	if (f->result->error != 0)
		fail_msg("refused: %s", f->result->error_text);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_CHECKPOINT);
	char *note = strdup(f->result->checkpoint);
	rete__broker_frame__free_unpacked(f, NULL);
	return note;
}

static char *pub64(const rete_seckey *k)
{
	return rete_b64_encode(k->pub.ed, RETE_PK_LEN);
}

/* write_policy writes DIR/NAME with a witness line for each party of ps
 * (its real key, or a fresh one when forged[i]) and quorum q (0: none). */
static void write_policy(it_net *n, const char *name, const int *ps, const bool *forged, int np,
			 int q)
{
	char path[1300], text[4096];
	size_t o = 0;
	for (int i = 0; i < np; i++) {
		rete_seckey *other = NULL;
		if (forged != NULL && forged[i])
			assert_int_equal(rete_seckey_generate(&other, NULL), RETE_OK);
		char *k = pub64(other != NULL ? other : n->keys[ps[i]]);
		o += (size_t)snprintf(text + o, sizeof(text) - o, "witness %s %s\n",
				      it_party_ids[ps[i]], k);
		free(k);
		rete_seckey_free(&other);
	}
	if (q > 0)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "quorum %d\n", q);
	snprintf(path, sizeof(path), "%s/%s", n->dir, name);
	assert_int_equal(tu_write_file(path, text, o), 0);
}

/* wait_log waits until the file at path holds needle (false at the deadline). */
static bool wait_log(const char *path, const char *needle, int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (tu_occurrences(path, needle) < 1) {
		if (it_mono_ms() >= end)
			return false;
		it_nap(100); /* polling a log file for a line */
	}
	return true;
}

static int audit_local(it_net *n, const char *policy, char **out)
{
	return tu_run(out,
		      "'%s/rete' audit verify '%s' --broker-key '%s/keys/" IT_BROKER_ID
		      ".pub' --witnesses '%s/%s' 2>&1",
		      n->bin, n->data, n->dir, n->dir, policy);
}

static void expect_output(int rc, int want_rc, char *out, const char *needle)
{
	if (rc != want_rc || strstr(out != NULL ? out : "", needle) == NULL)
		fail_msg("exit %d (wanted %d), output lacks '%s':\n%s", rc, want_rc, needle,
			 out != NULL ? out : "");
	free(out);
}

/* --- the broker's side ------------------------------------------------------ */

static void test_broker_cosign(void **state)
{
	it_net *n = it_net_new("cosign-broker", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	rete_wire *ws = it_hello(n, IT_SOCIAL), *wc = it_hello(n, IT_CPI);
	assert_non_null(ws);
	assert_non_null(wc);
	char *note = latest_note(ws), *out = NULL;
	assert_non_null(note);
	rete_checkpoint cp;
	assert_int_equal(rete_checkpoint_parse(note, strlen(note), &cp, NULL), RETE_OK);
	rete_msg m = {{0}};

	/* Social services cosigns: the answer carries its line, valid. */
	char *ls = cosign_line(note, IT_SOCIAL, n->keys[IT_SOCIAL]);
	char *a1 = answered_note(ask_cosign(ws, note, ls));
	if (rete_cosign_verify(a1, strlen(a1), it_party_ids[IT_SOCIAL], &n->keys[IT_SOCIAL]->pub,
			       NULL, &m) != RETE_OK)
		fail_msg("%s", m.text);
	assert_int_equal(
	    rete_checkpoint_verify(a1, strlen(a1), IT_ORIGIN, &n->broker->pub, NULL, &m), RETE_OK);

	/* A line in social's name made with another key: refused. */
	char *forged = cosign_line(note, IT_SOCIAL, n->keys[IT_CPI]);
	expect_refused(ask_cosign(ws, note, forged), RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE,
		       "social.mantova");
	/* ... and a line named after another party than the one connected. */
	char *lc = cosign_line(note, IT_CPI, n->keys[IT_CPI]);
	expect_refused(ask_cosign(ws, note, lc), RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "a party cosigns under its own id");
	/* A note of the same size the broker did not store (another root,
	 * signed with the broker key). */
	uint8_t root[RETE_MERKLE_HASH];
	memset(root, 0x5a, sizeof(root));
	char *other = NULL, *unstored = NULL, *alien = NULL;
	assert_int_equal(rete_checkpoint_sign(IT_ORIGIN, cp.size, root, n->broker, &other, &m),
			 RETE_OK);
	char *lo = cosign_line(other, IT_SOCIAL, n->keys[IT_SOCIAL]);
	expect_refused(ask_cosign(ws, other, lo), RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "is not the one this broker stored");
	/* A size the broker never stored. */
	assert_int_equal(rete_checkpoint_sign(IT_ORIGIN, 999, root, n->broker, &unstored, &m),
			 RETE_OK);
	char *lu = cosign_line(unstored, IT_SOCIAL, n->keys[IT_SOCIAL]);
	expect_refused(ask_cosign(ws, unstored, lu), RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		       "no stored checkpoint of size 999");
	/* A note not signed by the broker. */
	assert_int_equal(
	    rete_checkpoint_sign(IT_ORIGIN, cp.size, cp.root, n->keys[IT_CPI], &alien, &m),
	    RETE_OK);
	char *la = cosign_line(alien, IT_SOCIAL, n->keys[IT_SOCIAL]);
	expect_refused(ask_cosign(ws, alien, la), RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE,
		       "not one this broker signed");

	/* The job centre cosigns too; social cosigns again: one line each. */
	char *a2 = answered_note(ask_cosign(wc, a1, lc));
	char *ls2 = cosign_line(note, IT_SOCIAL, n->keys[IT_SOCIAL]);
	char *a3 = answered_note(ask_cosign(ws, note, ls2));
	char *q0 = answered_note(ask_checkpoint(wc, 0));
	char *qs = answered_note(ask_checkpoint(wc, cp.size));
	assert_string_equal(q0, a3);
	assert_string_equal(qs, a3);
	size_t lines = 0;
	for (const char *p = strstr(a3, "\xe2\x80\x94 "); p != NULL;
	     p = strstr(p + 1, "\xe2\x80\x94 "))
		lines++;
	assert_int_equal(lines, 3); /* the broker's signature and two cosignatures */
	for (int p = IT_SOCIAL; p <= IT_CPI; p++)
		if (rete_cosign_verify(a3, strlen(a3), it_party_ids[p], &n->keys[p]->pub, NULL,
				       &m) != RETE_OK)
			fail_msg("%s: %s", it_party_ids[p], m.text);
	expect_refused(ask_checkpoint(wc, 999), RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		       "no stored checkpoint of size 999");

	/* The auditor's policy, on the store the broker writes (the log is
	 * quiet: no new checkpoint comes). */
	int both[] = {IT_SOCIAL, IT_CPI}, three[] = {IT_SOCIAL, IT_CPI, IT_ASST};
	bool bad_cpi[] = {false, true};
	write_policy(n, "both.policy", both, NULL, 2, 0);
	write_policy(n, "three.policy", three, NULL, 3, 0);
	write_policy(n, "two-of-three.policy", three, NULL, 3, 2);
	write_policy(n, "forged.policy", both, bad_cpi, 2, 0);
	int rc = audit_local(n, "both.policy", &out);
	expect_output(rc, 0, out, "meets the witness policy");
	rc = audit_local(n, "two-of-three.policy", &out);
	expect_output(rc, 0, out, "2 of 3 witnesses cosigned (need 2)");
	rc = audit_local(n, "three.policy", &out);
	expect_output(rc, 1, out,
		      "2 of 3 required witnesses cosigned (need 3): missing asst.mantova");
	rc = audit_local(n, "forged.policy", &out);
	expect_output(rc, 1, out,
		      "1 of 2 required witnesses cosigned (need 2): invalid cpi.mantova");
	/* a policy that does not parse is a usage error naming the file */
	char path[1300];
	snprintf(path, sizeof(path), "%s/bad.policy", n->dir);
	assert_int_equal(tu_write_file(path, "quorum 1\n", 9), 0);
	rc = audit_local(n, "bad.policy", &out);
	expect_output(rc, 2, out, "bad.policy");
	it_audit_verifies(n); /* cosigned notes are still the broker's checkpoints */

	free(note);
	free(ls);
	free(ls2);
	free(lc);
	free(lo);
	free(lu);
	free(la);
	free(forged);
	free(other);
	free(unstored);
	free(alien);
	free(a1);
	free(a2);
	free(a3);
	free(q0);
	free(qs);
	rete_wire_close(&ws);
	rete_wire_close(&wc);
}

/* --- real agents cosign -------------------------------------------------------- */

/* cosigned_by waits until the broker's latest checkpoint, at least of size
 * min, carries valid cosignatures of every party of ps; returns it. */
static char *cosigned_by(it_net *n, rete_wire *w, uint64_t min, const int *ps, int np)
{
	int64_t end = it_mono_ms() + WAIT_MS;
	char *last = NULL;
	while (it_mono_ms() < end) {
		free(last);
		last = latest_note(w);
		rete_checkpoint cp;
		int ok = 0;
		if (last != NULL &&
		    rete_checkpoint_parse(last, strlen(last), &cp, NULL) == RETE_OK &&
		    cp.size >= min)
			for (int i = 0; i < np; i++)
				ok +=
				    rete_cosign_verify(last, strlen(last), it_party_ids[ps[i]],
						       &n->keys[ps[i]]->pub, NULL, NULL) == RETE_OK;
		if (ok == np)
			return last;
		it_nap(200); /* pacing the question: agents cosign every `witness` */
	}
	fprintf(stderr, "latest checkpoint: %s\n", last ? last : "(none)");
	free(last);
	return NULL;
}

static void test_agents_cosign(void **state)
{
	it_net *n = it_net_new("cosign-agents", NULL);
	assert_non_null(n);
	*state = n;
	int both[] = {IT_SOCIAL, IT_CPI}, three[] = {IT_SOCIAL, IT_CPI, IT_ASST};
	write_policy(n, "both.policy", both, NULL, 2, 0);
	write_policy(n, "three.policy", three, NULL, 3, 0);
	/* A policy that does not load stops the agent's configuration, naming
	 * the file and the line. */
	char bad[1300], *cout = NULL;
	snprintf(bad, sizeof(bad), "%s/bad.policy", n->dir);
	assert_int_equal(tu_write_file(bad, "witness social.mantova\n", 23), 0);
	it_write_agent_ini_ex(n, IT_SOCIAL, "witnesses = ../../bad.policy\n");
	int crc =
	    tu_run(&cout, "'%s/rete' --check-config -c '%s/agents/social.mantova/agent.ini' 2>&1",
		   n->bin, n->dir);
	expect_output(crc, 2, cout,
		      "bad.policy: witness policy line 1: expected 'witness NAME KEY'");
	assert_true(it_broker_start(n));
	assert_true(
	    it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\nwitnesses = ../../both.policy\n"));
	assert_true(it_agent_start_ex(n, IT_CPI, "witness = 1s\n"));
	rete_wire *wa = it_connect(n, IT_AUDIT);
	assert_non_null(wa);

	/* The first checkpoint (the directory entry): both agents cosign it. */
	char *first = cosigned_by(n, wa, 1, both, 2);
	if (first == NULL) {
		it_show(n, "social.mantova.log");
		it_show(n, "broker.log");
	}
	assert_non_null(first);
	rete_checkpoint c1;
	assert_int_equal(rete_checkpoint_parse(first, strlen(first), &c1, NULL), RETE_OK);

	/* The log grows (a referral to social services, its delivery): the
	 * agents verify the new checkpoint's consistency and cosign it. */
	rete_wire *wf = it_hello(n, IT_FAMILY);
	assert_non_null(wf);
	it_msg o;
	assert_int_equal(it_referral(n, IT_FAMILY, IT_SOCIAL, "fam-cosign-1", &o), RETE_OK);
	Rete__BrokerFrame *rf = it_submit(wf, &o, it_wait_ms());
	assert_true(it_accepted(rf, "the referral", n->log));
	it_msg_free(&o);
	char inbox[1300];
	it_spool(n, IT_SOCIAL, "inbox", inbox, sizeof(inbox));
	int64_t end = it_mono_ms() + WAIT_MS;
	while (tu_count_suffix(inbox, ".json") < 1 && it_mono_ms() < end)
		it_nap(100); /* polling a folder for the delivered file */
	assert_int_equal(tu_count_suffix(inbox, ".json") >= 1, 1);
	char *later = cosigned_by(n, wa, c1.size + 2, both, 2); /* referral + delivery */
	if (later == NULL)
		it_show(n, "social.mantova.log");
	assert_non_null(later);
	rete_wire_close(&wa);
	rete_wire_close(&wf);

	/* The auditor: locally and at a distance. */
	char ini[1300], st[1300], *out = NULL;
	snprintf(ini, sizeof(ini), "%s/audit.ini", n->dir);
	snprintf(st, sizeof(st), "%s/audit.state", n->dir);
	char text[2048];
	snprintf(text, sizeof(text),
		 "[client]\nid = audit.region\nkey = keys/audit.region.key\nbroker = %s\n"
		 "broker_key = keys/" IT_BROKER_ID ".pub\ntimeout = 10s\n",
		 n->listen);
	assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
	int rc =
	    tu_run(&out, "'%s/rete' audit verify -c '%s' --state '%s' --witnesses '%s/%s' 2>&1",
		   n->bin, ini, st, n->dir, "both.policy");
	expect_output(rc, 0, out, "meets the witness policy");
	rc = tu_run(&out, "'%s/rete' audit verify -c '%s' --state '%s' --witnesses '%s/%s' 2>&1",
		    n->bin, ini, st, n->dir, "three.policy");
	expect_output(rc, 1, out, "missing asst.mantova");
	rc = tu_run(&out,
		    "'%s/rete' audit verify -c '%s' --state '%s' --json --witnesses '%s/%s' 2>&1",
		    n->bin, ini, st, n->dir, "three.policy");
	expect_output(rc, 1, out, "\"met\": false");
	rc = audit_local(n, "both.policy", &out);
	expect_output(rc, 0, out, "meets the witness policy");
	rc = audit_local(n, "three.policy", &out);
	expect_output(rc, 1, out, "missing asst.mantova");

	/* rete witnesses: a policy of the directory's four agencies (from the
	 * broker, and the same from the store); 2 of them cosigned. */
	rc = tu_run(&out, "'%s/rete' witnesses -c '%s' --quorum 2 > '%s/dir.policy'", n->bin, ini,
		    n->dir);
	assert_int_equal(rc, 0);
	free(out);
	char *from_store = NULL, path[1300];
	rc = tu_run(&from_store,
		    "'%s/rete' witnesses '%s' --broker-key '%s/keys/" IT_BROKER_ID
		    ".pub' --quorum 2",
		    n->bin, n->data, n->dir);
	assert_int_equal(rc, 0);
	size_t plen = 0;
	char *policy = tu_read_file(tu_path(path, sizeof(path), "%s/dir.policy", n->dir), &plen);
	assert_non_null(policy);
	assert_string_equal(policy, from_store);
	for (int p = IT_SOCIAL; p <= IT_FAMILY; p++) {
		char *k = pub64(n->keys[p]), line[256];
		snprintf(line, sizeof(line), "witness %s %s\n", it_party_ids[p], k);
		assert_non_null(strstr(policy, line));
		free(k);
	}
	assert_null(strstr(policy, "coord.mantova"));
	assert_null(strstr(policy, "audit.region"));
	free(policy);
	free(from_store);
	rc = audit_local(n, "dir.policy", &out);
	expect_output(rc, 0, out, "2 of 4 witnesses cosigned (need 2)");
	/* a directory checked with another key than the broker's is refused */
	rc = tu_run(&out, "'%s/rete' witnesses '%s' --broker-key '%s/keys/cpi.mantova.pub' 2>&1",
		    n->bin, n->data, n->dir);
	expect_output(rc, 1, out, "is not signed by the broker key");

	/* Social's agent.ini names the policy: it says when a checkpoint meets it. */
	char log[1300];
	snprintf(log, sizeof(log), "%s/social.mantova.log", n->dir);
	if (!wait_log(log, "meets the witness policy", 30000))
		it_show(n, "social.mantova.log");
	assert_true(tu_occurrences(log, "meets the witness policy") >= 1);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
	snprintf(log, sizeof(log), "%s/cpi.mantova.log", n->dir);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);

	/* The agents stop; the log grows once more: its new checkpoint has no
	 * cosignature, and the audit says how far back the quorum reaches. */
	rete_checkpoint cl;
	assert_int_equal(rete_checkpoint_parse(later, strlen(later), &cl, NULL), RETE_OK);
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_int_equal(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()), 0);
	wf = it_hello(n, IT_FAMILY);
	assert_non_null(wf);
	assert_int_equal(it_referral(n, IT_FAMILY, IT_SOCIAL, "fam-cosign-2", &o), RETE_OK);
	rf = it_submit(wf, &o, it_wait_ms());
	assert_true(it_accepted(rf, "the second referral", n->log));
	it_msg_free(&o);
	wa = it_connect(n, IT_AUDIT);
	assert_non_null(wa);
	char *newest = NULL;
	rete_checkpoint cn = cl;
	end = it_mono_ms() + WAIT_MS;
	while (cn.size <= cl.size && it_mono_ms() < end) {
		free(newest);
		newest = latest_note(wa);
		assert_non_null(newest);
		assert_int_equal(rete_checkpoint_parse(newest, strlen(newest), &cn, NULL), RETE_OK);
		if (cn.size <= cl.size)
			it_nap(100); /* pacing the question: a checkpoint comes within 1s */
	}
	assert_true(cn.size > cl.size);
	rete_wire_close(&wa);
	rete_wire_close(&wf);
	rc = audit_local(n, "both.policy", &out);
	char want[200];
	snprintf(want, sizeof(want), "the newest checkpoint that meets it is of size %" PRIu64,
		 cl.size);
	if (strstr(out, want) == NULL)
		fail_msg("no '%s' in:\n%s", want, out);
	expect_output(rc, 1, out,
		      "0 of 2 required witnesses cosigned (need 2): missing "
		      "social.mantova, cpi.mantova");
	rc = tu_run(&out, "'%s/rete' audit verify -c '%s' --state '%s' --witnesses '%s/%s' 2>&1",
		    n->bin, ini, st, n->dir, "both.policy");
	expect_output(rc, 1, out, "missing social.mantova, cpi.mantova");
	free(newest);
	free(first);
	free(later);
}

/* --- a split view ---------------------------------------------------------------- */

/* The fake broker of this test: each agency is shown its own checkpoint of
 * size SPLIT_SIZE; cosignatures are gathered and handed to everyone (what
 * a broker collecting cosignatures for its note would do). */
#define SPLIT_SIZE 5
struct split {
	it_fake l;
	char *note[IT_NPARTIES];  /* what party p is shown */
	char *lines[IT_NPARTIES]; /* cosignature line of party p */
	int cosigns[IT_NPARTIES];
	uint8_t rid[IT_NPARTIES][256];
	size_t rid_len[IT_NPARTIES];
};

static char *split_note_for(struct split *s, int p)
{
	char *note = strdup(s->note[p]);
	assert_non_null(note);
	for (int i = 0; i < IT_NPARTIES; i++) {
		char *next = NULL;
		if (s->lines[i] == NULL)
			continue;
		assert_int_equal(
		    rete_cosign_add(note, strlen(note), s->lines[i], &next, NULL, NULL), RETE_OK);
		free(note);
		note = next;
	}
	return note;
}

static int split_party(struct split *s, const void *id, size_t idl)
{
	for (int p = 0; p < IT_NPARTIES; p++)
		if (s->rid_len[p] == idl && memcmp(s->rid[p], id, idl) == 0)
			return p;
	return -1;
}

static void split_answer(struct split *s, const void *id, size_t idl, uint64_t request,
			 const char *note, Rete__ErrorCode code)
{
	Rete__QueryResult r = RETE__QUERY_RESULT__INIT;
	r.request_id = request;
	if (note != NULL) {
		r.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
		r.checkpoint = (char *)note;
	} else {
		r.error = code;
		r.error_text = "not here";
	}
	Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
	f.command_case = RETE__BROKER_FRAME__COMMAND_RESULT;
	f.result = &r;
	it_fake_reply(s->l.sock, id, idl, &f);
}

/* split_serve answers frames for ms, until done(s) says enough. */
static void split_serve(struct split *s, it_net *n, bool (*done)(it_net *), int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (it_mono_ms() < end && !done(n)) {
		zmq_pollitem_t pi = {s->l.sock, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&pi, 1, 200) <= 0)
			continue;
		zmq_msg_t ident, body;
		zmq_msg_init(&ident);
		zmq_msg_init(&body);
		zmq_msg_recv(&ident, s->l.sock, 0);
		zmq_msg_recv(&body, s->l.sock, 0);
		const void *id = zmq_msg_data(&ident);
		size_t idl = zmq_msg_size(&ident);
		Rete__ClientFrame *cf =
		    rete__client_frame__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
		int p = split_party(s, id, idl);
		if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_HELLO) {
			for (p = 0; p < IT_NPARTIES; p++)
				if (strcmp(cf->hello->party, it_party_ids[p]) == 0)
					break;
			if (p < IT_NPARTIES && s->note[p] != NULL && idl <= 256) {
				memcpy(s->rid[p], id, idl);
				s->rid_len[p] = idl;
				Rete__Welcome *wel = s->l.welcome->welcome;
				char *party = wel->party, *cp = wel->checkpoint;
				wel->party = (char *)it_party_ids[p];
				wel->checkpoint = s->note[p]; /* the plain note at first */
				it_fake_reply(s->l.sock, id, idl, s->l.welcome);
				wel->party = party;
				wel->checkpoint = cp;
			}
		} else if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_PING) {
			Rete__Pong pong = RETE__PONG__INIT;
			pong.nonce = cf->ping->nonce;
			Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
			f.command_case = RETE__BROKER_FRAME__COMMAND_PONG;
			f.pong = &pong;
			it_fake_reply(s->l.sock, id, idl, &f);
		} else if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_QUERY &&
			   p >= 0) {
			const Rete__Query *q = cf->query;
			if (q->what_case == RETE__QUERY__WHAT_COSIGN) {
				s->cosigns[p]++;
				free(s->lines[p]);
				s->lines[p] = strdup(q->cosign->cosignature);
			}
			if (q->what_case == RETE__QUERY__WHAT_COSIGN ||
			    q->what_case == RETE__QUERY__WHAT_CHECKPOINT) {
				char *note = split_note_for(s, p);
				split_answer(s, id, idl, q->request_id, note, 0);
				free(note);
			} else {
				split_answer(s, id, idl, q->request_id, NULL,
					     RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND);
			}
		}
		if (cf != NULL)
			rete__client_frame__free_unpacked(cf, NULL);
		zmq_msg_close(&ident);
		zmq_msg_close(&body);
	}
}

/* both agents raised the alarm and kept the notes (said after the files) */
static bool both_alarmed(it_net *n)
{
	char a[1300], b[1300];
	snprintf(a, sizeof(a), "%s/social.mantova.log", n->dir);
	snprintf(b, sizeof(b), "%s/cpi.mantova.log", n->dir);
	return tu_occurrences(a, "both notes kept") >= 1 &&
	       tu_occurrences(b, "both notes kept") >= 1;
}

static bool social_forked(it_net *n)
{
	char a[1300];
	snprintf(a, sizeof(a), "%s/social.mantova.log", n->dir);
	return tu_occurrences(a, "with different roots (a fork)") >= 1;
}

static void test_split_view(void **state)
{
	it_net *n = it_net_new("cosign-split", NULL);
	assert_non_null(n);
	*state = n;
	struct split s;
	memset(&s, 0, sizeof(s));
	it_fake_open(&s.l, n, it_real_welcome(n, IT_SOCIAL));
	uint8_t ra[RETE_MERKLE_HASH], rb[RETE_MERKLE_HASH], rc[RETE_MERKLE_HASH];
	memset(ra, 0xa1, sizeof(ra));
	memset(rb, 0xb2, sizeof(rb));
	memset(rc, 0xc3, sizeof(rc));
	rete_msg m = {{0}};
	assert_int_equal(
	    rete_checkpoint_sign(IT_ORIGIN, SPLIT_SIZE, ra, n->broker, &s.note[IT_SOCIAL], &m),
	    RETE_OK);
	assert_int_equal(
	    rete_checkpoint_sign(IT_ORIGIN, SPLIT_SIZE, rb, n->broker, &s.note[IT_CPI], &m),
	    RETE_OK);

	assert_true(it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\n"));
	assert_true(it_agent_start_ex(n, IT_CPI, "witness = 1s\n"));
	split_serve(&s, n, both_alarmed, 60000);
	char log_s[1300], log_c[1300];
	snprintf(log_s, sizeof(log_s), "%s/social.mantova.log", n->dir);
	snprintf(log_c, sizeof(log_c), "%s/cpi.mantova.log", n->dir);
	if (!both_alarmed(n)) {
		it_show(n, "social.mantova.log");
		it_show(n, "cpi.mantova.log");
	}
	/* Each cosigned its own view once, then caught the other's. */
	assert_int_equal(s.cosigns[IT_SOCIAL], 1);
	assert_int_equal(s.cosigns[IT_CPI], 1);
	assert_true(tu_occurrences(log_s, "WITNESS ALARM: split view: the cosignature of "
					  "cpi.mantova on the checkpoint of size 5") >= 1);
	assert_true(tu_occurrences(log_c, "WITNESS ALARM: split view: the cosignature of "
					  "social.mantova on the checkpoint of size 5") >= 1);
	/* Both notes kept. */
	for (int p = IT_SOCIAL; p <= IT_CPI; p++) {
		char dir[1300];
		snprintf(dir, sizeof(dir), "%s/agents/%s/data/evidence", n->dir, it_party_ids[p]);
		assert_true(tu_count_suffix(dir, "-verified.note") >= 1);
		assert_true(tu_count_suffix(dir, "-shown.note") >= 1);
	}
	{
		/* social's verified note is its own view; the shown one carries cpi's line */
		char dir[1300];
		snprintf(dir, sizeof(dir), "%s/agents/social.mantova/data/evidence", n->dir);
		DIR *d = opendir(dir);
		struct dirent *e;
		bool seen = false;
		assert_non_null(d);
		while ((e = readdir(d)) != NULL) {
			char path[1700];
			size_t len = 0;
			if (strstr(e->d_name, "-verified.note") == NULL)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			char *t = tu_read_file(path, &len);
			assert_non_null(t);
			assert_string_equal(t, s.note[IT_SOCIAL]);
			free(t);
			seen = true;
		}
		closedir(d);
		assert_true(seen);
	}

	/* Then social is shown a second, different checkpoint of the size it
	 * cosigned: the alarm, and no cosignature of it. */
	free(s.note[IT_SOCIAL]);
	s.note[IT_SOCIAL] = NULL;
	assert_int_equal(
	    rete_checkpoint_sign(IT_ORIGIN, SPLIT_SIZE, rc, n->broker, &s.note[IT_SOCIAL], &m),
	    RETE_OK);
	split_serve(&s, n, social_forked, 30000);
	if (!social_forked(n))
		it_show(n, "social.mantova.log");
	assert_true(social_forked(n));
	assert_int_equal(s.cosigns[IT_SOCIAL], 1);

	it_fake_close(&s.l);
	for (int p = 0; p < IT_NPARTIES; p++) {
		free(s.note[p]);
		free(s.lines[p]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_broker_cosign, it_teardown),
	    cmocka_unit_test_teardown(test_agents_cosign, it_teardown),
	    cmocka_unit_test_teardown(test_split_view, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
