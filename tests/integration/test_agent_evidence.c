/* test_agent_evidence.c — the agent holds what it sent until it is
 * delivered, checks its receipts against its own bytes, recognises a
 * message by its content, and answers a resent file with its first receipt.
 *
 * The real rete-broker and rete-agent (itest.h) in a temporary folder:
 *   - test_restore_once: the broker's store is put back from a
 *     `rete store backup` copy while traffic goes on; every referral put
 *     into the sender's outbox ends in the recipient's inbox exactly once
 *     (new messages at log indexes the recipient recorded before the
 *     restore are new files; receipted messages the restored log lost are
 *     submitted again by the sender);
 *   - test_resend_same_id: the same file with the same id sent again after
 *     it was accepted ends in sent/ with the original receipt; a changed
 *     file with that id ends in failed/ as id-reused, naming the index;
 *   - test_dishonest_receipt and test_receipt_*: a program holding the
 *     broker's key answers SUBMIT with a receipt (inclusion proof and
 *     signed checkpoint) that proves a leaf that is not the message's, or
 *     whose checkpoint does not verify, is of another log or an older
 *     epoch, or does not reach the index: the agent raises the witness
 *     alarm, keeps the file in outbox/ and submits the same bytes again;
 *   - test_receipt_proves: an honest broker's receipt proves the entry in
 *     its checkpoint, and that checkpoint is consistent with a later
 *     stored one.
 *
 * Waits are for files and log lines with deadlines, never sleeps.
 */
#include <dirent.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <zmq.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "itest.h"
#include "merkle.h"

#define EV_WAIT 90000 /* generous: 2 cores, sanitizers */

static int64_t ev_deadline(int ms)
{
	return it_mono_ms() + it_scaled_ms(ms);
}

/* ev_poll_nap: the pause between two looks at a folder or log file while
 * waiting for a condition with a deadline (there is no event to block on
 * that covers them all). */
static void ev_poll_nap(void)
{
	it_nap(50);
}

/* ev_referral_text: a referral file from social services to the job centre
 * as an agency's system writes it (id given; service and reason vary). */
static char *ev_referral_text(const char *id, const char *reason)
{
	json_t *j = json_pack(
	    "{s:s,s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:s},"
	    "s:{s:{s:s,s:s},s:s}}",
	    "id", id, "operator", "staffId", "as-0042", "role", "social-worker", "recipient",
	    "cpi.mantova", "caseId", "mn-2026-0173", "referral", "service",
	    "employment-orientation", "priority", "routine", "reasonCode", reason, "consent",
	    "basis", "consent", "givenAt", "2026-11-20T09:30:00Z", "reference", "CONS-2026-0412",
	    "ageBand", "adult", "private", "person", "name", "Maria Rossi", "fiscalCode",
	    "RSSMRA85M41E897X", "reason", "Unemployed; asks for help to find work.");
	assert_non_null(j);
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return text;
}

/* ev_put_referral puts referral id as outbox/NAME of social.mantova,
 * written 5 s before it is renamed in (its times set back): the agent
 * takes it at its first look, not after the 2 s it gives a file that just
 * changed (OUT_SETTLE_MS, for writers that write in place; test_stall's
 * inplace_waits shows it). Those 2 s were about half of most scenarios
 * here. The files other helpers put (it_outbox_put) stay fresh. */
static void ev_put_referral(it_net *n, const char *name, const char *id, const char *reason)
{
	char *t = ev_referral_text(id, reason);
	char dir[1300], tmp[1600], dst[1600];
	it_spool(n, IT_SOCIAL, "outbox", dir, sizeof(dir));
	tu_path(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	tu_path(dst, sizeof(dst), "%s/%s", dir, name);
	assert_int_equal(tu_write_file(tmp, t, strlen(t)), 0);
	it_set_age_s(tmp, 5);
	assert_int_equal(rename(tmp, dst), 0);
	free(t);
}

/* ev_wait_either waits until a or b exists; returns 1 for a, 2 for b, 0 at
 * the deadline. */
static int ev_wait_either(const char *a, const char *b, int ms)
{
	int64_t end = ev_deadline(ms);
	while (it_mono_ms() < end) {
		if (tu_exists(a))
			return 1;
		if (b && tu_exists(b))
			return 2;
		ev_poll_nap();
	}
	return tu_exists(a) ? 1 : (b && tu_exists(b)) ? 2 : 0;
}

static size_t ev_wait_count(const char *dir, const char *suffix, size_t want, int ms)
{
	int64_t end = ev_deadline(ms);
	size_t c;
	while ((c = tu_count_suffix(dir, suffix)) < want && it_mono_ms() < end)
		ev_poll_nap();
	return c;
}

/* ev_wait_log waits until the log at path holds needle `want` times. */
static bool ev_wait_log(const char *path, const char *needle, size_t want, int ms)
{
	int64_t end = ev_deadline(ms);
	while (tu_occurrences(path, needle) < want) {
		if (it_mono_ms() >= end)
			return false;
		ev_poll_nap();
	}
	return true;
}

/* ev_inbox_ids counts, per message id, the referral files of an inbox;
 * returns the array of ids (one per file; caller frees). */
static char **ev_inbox_ids(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **ids = NULL;
	size_t n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] == '.' || l < 14 || strcmp(e->d_name + l - 14, "-referral.json"))
			continue;
		char path[1500];
		json_t *j = tu_load_json(tu_path(path, sizeof(path), "%s/%s", dir, e->d_name));
		const char *id =
		    json_string_value(json_object_get(json_object_get(j, "message"), "id"));
		ids = realloc(ids, (n + 1) * sizeof(*ids));
		assert_non_null(ids);
		ids[n++] = strdup(id ? id : "?");
		json_decref(j);
	}
	closedir(d);
	*count = n;
	return ids;
}

static void ev_free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* ev_times: how many files of the list hold id. */
static size_t ev_times(char **ids, size_t n, const char *id)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += strcmp(ids[i], id) == 0;
	return k;
}

/* ev_wait_inbox_has waits until the job centre's inbox holds each of the
 * ids ev-1 .. ev-N; returns how many of them are there at least once. */
static size_t ev_wait_inbox_has(it_net *n, size_t want, int ms)
{
	char dir[1300];
	it_spool(n, IT_CPI, "inbox", dir, sizeof(dir));
	int64_t end = ev_deadline(ms);
	size_t have = 0;
	for (;;) {
		size_t cnt;
		char **ids = ev_inbox_ids(dir, &cnt);
		have = 0;
		for (size_t i = 1; i <= want; i++) {
			char id[32];
			snprintf(id, sizeof(id), "ev-%zu", i);
			have += ev_times(ids, cnt, id) > 0;
		}
		ev_free_ids(ids, cnt);
		if (have == want || it_mono_ms() >= end)
			return have;
		ev_poll_nap();
	}
}

/* ev_wait_delivered waits until social services' inbox holds a delivery
 * receipt for each of ev-1 .. ev-N; returns how many have one. */
static size_t ev_wait_delivered(it_net *n, size_t want, int ms)
{
	char dir[1300];
	it_spool(n, IT_SOCIAL, "inbox", dir, sizeof(dir));
	int64_t end = ev_deadline(ms);
	for (;;) {
		bool got[64] = {false};
		size_t have = 0;
		DIR *d = opendir(dir);
		struct dirent *e;
		assert_non_null(d);
		while ((e = readdir(d)) != NULL) {
			size_t l = strlen(e->d_name);
			if (e->d_name[0] == '.' || l < 14 ||
			    strcmp(e->d_name + l - 14, "-delivery.json") != 0)
				continue;
			char path[1500];
			json_t *j =
			    tu_load_json(tu_path(path, sizeof(path), "%s/%s", dir, e->d_name));
			const char *id = json_string_value(json_object_get(
			    json_object_get(json_object_get(j, "message"), "delivery"),
			    "messageId"));
			unsigned k;
			if (id != NULL && sscanf(id, "ev-%u", &k) == 1 && k >= 1 && k <= want &&
			    k < 64)
				got[k] = true;
			json_decref(j);
		}
		closedir(d);
		for (size_t k = 1; k <= want && k < 64; k++)
			have += got[k];
		if (have == want || it_mono_ms() >= end)
			return have;
		ev_poll_nap();
	}
}

/* --- the restore ----------------------------------------------------------- */

/* ev_backup runs `rete store backup` of the running broker's store into
 * DEST. */
static void ev_backup(it_net *n, const char *dest)
{
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, dest);
	if (rc != 0)
		fprintf(stderr, "rete store backup: %s\n", out ? out : "");
	free(out);
	assert_int_equal(rc, 0);
}

/* ev_broker_restore stops the broker, puts the store folder aside, puts the
 * backup in its place and starts the broker on it with --restore: the
 * documented restore (docs/operations.md), which goes on as a new epoch. */
static bool ev_broker_restore(it_net *n, const char *backup)
{
	char aside[1400];
	if (it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) == -1)
		fprintf(stderr, "warning: the broker did not stop on SIGTERM; killed\n");
	tu_path(aside, sizeof(aside), "%s.before-restore", n->data);
	if (rename(n->data, aside) != 0 || rename(backup, n->data) != 0) {
		fprintf(stderr, "restore: cannot swap %s: %s\n", n->data, strerror(errno));
		return false;
	}
	return it_broker_start_flag(n, "--restore");
}

static void ev_put_and_receipt(it_net *n, size_t from, size_t to)
{
	char sent[1300], path[1500];
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	for (size_t i = from; i <= to; i++) {
		char name[64], id[32];
		snprintf(name, sizeof(name), "r%02zu.json", i);
		snprintf(id, sizeof(id), "ev-%zu", i);
		ev_put_referral(n, name, id, "long-term-unemployment");
	}
	for (size_t i = from; i <= to; i++) {
		tu_path(path, sizeof(path), "%s/r%02zu.json.receipt.json", sent, i);
		if (ev_wait_either(path, NULL, EV_WAIT) != 1) {
			it_show(n, "social.mantova.log");
			fail_msg("no receipt for r%02zu.json", i);
		}
	}
}

/* --- an export before the checkpoint ---------------------------------------- */

/* A referral delivered, its Delivery logged, and no checkpoint yet that
 * covers them (checkpoint_interval = 1h): an export over the wire, as the
 * console's Caso page makes, says it is logged beyond the latest
 * checkpoint and when to try again, not that the log has no such message. */
static void test_export_before_checkpoint(void **state)
{
	it_net *n = it_net_new("evidence-early", NULL);
	assert_non_null(n);
	*state = n;
	n->cp_interval = "1h";
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	ev_put_and_receipt(n, 1, 1);
	assert_int_equal(ev_wait_delivered(n, 1, EV_WAIT), 1);

	char ini[1300], *out = NULL;
	assert_int_equal(it_audit_ini(n, ini, sizeof(ini), NULL), 0);
	int rc = tu_run(&out, "'%s/rete' evidence export social.mantova ev-1 -c '%s' -o - 2>&1",
			RETE_BIN_DIR, ini);
	if (rc != 1 || strstr(out, "the log has no message") != NULL ||
	    strstr(out, "beyond the broker's latest checkpoint") == NULL ||
	    strstr(out, "try again") == NULL)
		fail_msg("export before the checkpoint: exit %d: %s", rc, out);
	free(out);
}

static void test_restore_once(void **state)
{
	it_net *n = it_net_new("evidence-restore", NULL);
	assert_non_null(n);
	*state = n;
	char backup[1300], sdir[1300], log[1300];
	tu_path(backup, sizeof(backup), "%s/backup", n->dir);
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);

	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));

	/* Before the backup: three referrals, delivered, delivery receipts
	 * back at the sender. */
	ev_put_and_receipt(n, 1, 3);
	assert_int_equal(ev_wait_inbox_has(n, 3, EV_WAIT), 3);
	it_spool(n, IT_SOCIAL, "inbox", sdir, sizeof(sdir));
	assert_int_equal(ev_wait_count(sdir, "-delivery.json", 3, EV_WAIT), 3);
	ev_backup(n, backup);

	/* After the backup: two delivered, then two receipted while the job
	 * centre is away (the broker's store is their only copy but the
	 * sender's). */
	ev_put_and_receipt(n, 4, 5);
	assert_int_equal(ev_wait_inbox_has(n, 5, EV_WAIT), 5);
	assert_int_equal(ev_wait_count(sdir, "-delivery.json", 5, EV_WAIT), 5);
	assert_int_equal(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()) != -1, 1);
	ev_put_and_receipt(n, 6, 7);

	/* The store is put back from the backup; the job centre comes back;
	 * new referrals follow. */
	assert_true(ev_broker_restore(n, backup));
	assert_true(it_agent_start(n, IT_CPI));
	ev_put_and_receipt(n, 8, 11);

	size_t have = ev_wait_inbox_has(n, 11, 2 * EV_WAIT);
	char inbox[1300];
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	size_t cnt;
	char **ids = ev_inbox_ids(inbox, &cnt);
	for (size_t i = 1; i <= 11; i++) {
		char id[32];
		snprintf(id, sizeof(id), "ev-%zu", i);
		size_t k = ev_times(ids, cnt, id);
		if (k != 1)
			fprintf(stderr, "referral %s is in the job centre's inbox %zu times\n", id,
				k);
	}
	if (have != 11) {
		it_show(n, "cpi.mantova.log");
		it_show(n, "social.mantova.log");
	}
	assert_int_equal(have, 11); /* every receipted referral reached the inbox */
	assert_int_equal(cnt, 11);  /* ... exactly once */
	ev_free_ids(ids, cnt);
	/* Every delivery receipt reached the sender too, those logged at
	 * reused indexes included. */
	assert_int_equal(ev_wait_delivered(n, 11, EV_WAIT), 11);
	/* The sender said why it submitted again. */
	assert_true(ev_wait_log(log, "submitting again", 1, EV_WAIT));
}

/* --- resending a file ------------------------------------------------------- */

static void test_resend_same_id(void **state)
{
	it_net *n = it_net_new("evidence-resend", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], failed[1300], a[1500], b[1500], bf[1500], c[1500], cf[1500];
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));

	char *text = ev_referral_text("ev-idem-1", "long-term-unemployment");
	it_outbox_put(n, IT_SOCIAL, "first.json", text);
	assert_int_equal(ev_wait_either(tu_path(a, sizeof(a), "%s/first.json.receipt.json", sent),
					NULL, EV_WAIT),
			 1);
	/* The same file again, under another name, after acceptance. */
	it_outbox_put(n, IT_SOCIAL, "again.json", text);
	free(text);
	tu_path(b, sizeof(b), "%s/again.json.receipt.json", sent);
	tu_path(bf, sizeof(bf), "%s/again.json.error.json", failed);
	int got = ev_wait_either(b, bf, EV_WAIT);
	if (got == 2)
		it_show_path(bf, 0);
	assert_int_equal(got, 1); /* the same content: the original receipt, not id-reused */
	json_t *ja = tu_load_json(a), *jb = tu_load_json(b);
	assert_string_equal(json_string_value(json_object_get(ja, "index")),
			    json_string_value(json_object_get(jb, "index")));
	assert_string_equal(json_string_value(json_object_get(ja, "leafHash")),
			    json_string_value(json_object_get(jb, "leafHash")));
	assert_string_equal(json_string_value(json_object_get(ja, "checkpoint")),
			    json_string_value(json_object_get(jb, "checkpoint")));
	char want[200];
	snprintf(want, sizeof(want), "log index %s",
		 json_string_value(json_object_get(ja, "index")));
	json_decref(ja);
	json_decref(jb);

	/* Other content under the same id: refused, naming the entry. */
	text = ev_referral_text("ev-idem-1", "school-dropout");
	it_outbox_put(n, IT_SOCIAL, "changed.json", text);
	free(text);
	tu_path(c, sizeof(c), "%s/changed.json.receipt.json", sent);
	tu_path(cf, sizeof(cf), "%s/changed.json.error.json", failed);
	assert_int_equal(ev_wait_either(c, cf, EV_WAIT), 2);
	json_t *jc = tu_load_json(cf);
	assert_string_equal(json_string_value(json_object_get(jc, "code")), "id-reused");
	const char *err = json_string_value(json_object_get(jc, "error"));
	if (err == NULL || strstr(err, want) == NULL)
		fprintf(stderr, "error: %s (wanted it to name '%s')\n", err ? err : "", want);
	assert_non_null(err);
	assert_non_null(strstr(err, want));
	json_decref(jc);
}

/* --- a dishonest broker ------------------------------------------------------ */

/* The lying broker is itest.h's fake broker (it_fake): the broker's key,
 * a real WELCOME, receipts of protocol 3 (an inclusion proof and a
 * checkpoint signed with the broker key) that each get one thing wrong.
 *
 * ev_liar starts the social agency's agent against the fake (WELCOME epoch
 * `epoch`, 0: as the real broker said), puts referral id into its outbox as
 * NAME and answers every SUBMIT with such a receipt; it checks that the
 * agent raises the witness alarm saying why (`words`), never takes the
 * receipt (nothing in sent/, the file still in outbox/) and submits the
 * same bytes again. */
static void ev_liar(it_net *n, bool honest_leaf, int lie, uint32_t epoch, const char *name,
		    const char *id, const char *words)
{
	char outbox[1300], sent[1300], log[1300], path[1500], accepted[200];
	it_fake l;
	Rete__BrokerFrame *welcome = it_real_welcome(n, IT_SOCIAL);
	if (epoch)
		welcome->welcome->epoch = epoch;
	it_fake_open(&l, n, welcome);
	l.honest_leaf = honest_leaf;
	l.lie = lie;

	assert_true(it_agent_start(n, IT_SOCIAL));
	ev_put_referral(n, name, id, "long-term-unemployment");
	it_spool(n, IT_SOCIAL, "outbox", outbox, sizeof(outbox));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);

	/* wait for the same bytes to come a second time */
	int submits = it_fake_serve(&l, &l.submits, 2, EV_WAIT);
	bool same = l.same;
	it_fake_close(&l);
	bool alarm = ev_wait_log(log, "WITNESS ALARM", 1, EV_WAIT);
	if (submits < 2 || !alarm)
		it_show(n, "social.mantova.log");
	/* Never "accepted": no receipt in sent/, the file still ours. */
	assert_false(tu_exists(tu_path(path, sizeof(path), "%s/%s.receipt.json", sent, name)));
	assert_true(tu_exists(tu_path(path, sizeof(path), "%s/%s", outbox, name)));
	assert_int_equal(submits, 2); /* submitted again ... */
	assert_true(same);	      /* ... byte for byte the same */
	assert_true(alarm);
	if (tu_occurrences(log, words) == 0)
		it_show(n, "social.mantova.log");
	assert_true(tu_occurrences(log, words) > 0);
	snprintf(accepted, sizeof(accepted), "accepted as %s", id);
	assert_int_equal(tu_occurrences(log, accepted), 0);
}

/* test_dishonest_receipt: a valid checkpoint and a valid inclusion proof,
 * but of a leaf that is not the entry of the message's bytes. */
static void test_dishonest_receipt(void **state)
{
	it_net *n = it_net_new("evidence-liar", NULL);
	assert_non_null(n);
	*state = n;
	ev_liar(n, false, IT_LIE_NONE, 0, "liar.json", "ev-liar-1",
		"its inclusion proof does not lead from the entry of our signed bytes");
}

/* test_receipt_bad_signature: the right proof of the right leaf, to a
 * checkpoint whose signature does not verify with the pinned broker key. */
static void test_receipt_bad_signature(void **state)
{
	it_net *n = it_net_new("evidence-badsig", NULL);
	assert_non_null(n);
	*state = n;
	ev_liar(n, true, IT_LIE_SIG, 0, "badsig.json", "ev-badsig-1",
		"the signature by key 'rete.test/mantova' does not verify");
}

/* test_receipt_other_origin: the right proof, to a checkpoint signed with
 * the broker key but of another log (origin). */
static void test_receipt_other_origin(void **state)
{
	it_net *n = it_net_new("evidence-origin", NULL);
	assert_non_null(n);
	*state = n;
	ev_liar(n, true, IT_LIE_ORIGIN, 0, "origin.json", "ev-origin-1",
		"checkpoint for 'rete.test/elsewhere' at size 2 carries no signature by key "
		"'rete.test/mantova'");
}

/* test_receipt_old_epoch: the WELCOME says epoch 2; the receipt's
 * checkpoint is one of epoch 1 (a log a declared restore left behind). */
static void test_receipt_old_epoch(void **state)
{
	it_net *n = it_net_new("evidence-oldepoch", NULL);
	assert_non_null(n);
	*state = n;
	ev_liar(n, true, IT_LIE_EPOCH, 2, "oldepoch.json", "ev-oldepoch-1",
		"its checkpoint is of log epoch 1, older than epoch 2");
}

/* test_receipt_index_beyond: an index the checkpoint does not reach. */
static void test_receipt_index_beyond(void **state)
{
	it_net *n = it_net_new("evidence-beyond", NULL);
	assert_non_null(n);
	*state = n;
	ev_liar(n, true, IT_LIE_INDEX, 0, "beyond.json", "ev-beyond-1",
		"it names log index 2, beyond its checkpoint of size 2");
}

/* --- an honest broker's receipts ------------------------------------------------ */

/* ev_query asks the real broker one query as the auditor; the answer
 * (checked: a result without error) is the caller's. */
static Rete__BrokerFrame *ev_query(rete_wire *w, Rete__Query *q)
{
	Rete__BrokerFrame *f = NULL;
	assert_int_equal(rete_wire_call(w, q, it_wait_ms(), &f, NULL), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	if (f->result->error)
		fprintf(stderr, "query refused: %s\n", f->result->error_text);
	assert_int_equal(f->result->error, 0);
	return f;
}

/* ev_stored_checkpoint: the latest stored checkpoint note (verified) */
static char *ev_stored_checkpoint(it_net *n, rete_wire *w, rete_checkpoint *cp)
{
	Rete__CheckpointQuery cq = RETE__CHECKPOINT_QUERY__INIT;
	Rete__Query q = RETE__QUERY__INIT;
	q.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	q.checkpoint = &cq;
	Rete__BrokerFrame *f = ev_query(w, &q);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_CHECKPOINT);
	char *note = strdup(f->result->checkpoint);
	assert_non_null(note);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_msg m;
	assert_int_equal(
	    rete_checkpoint_verify(note, strlen(note), IT_ORIGIN, &n->broker->pub, cp, &m),
	    RETE_OK);
	return note;
}

/* test_receipt_proves: with the real broker, the receipt in sent/ is an
 * inclusion proof: its checkpoint verifies with the broker key, the log's
 * entry at its index is the message the agency sent, hashed with the proof
 * it gives the checkpoint's root; and that checkpoint is consistent with a
 * later stored checkpoint (a consistency proof asked of the broker). */
static void test_receipt_proves(void **state)
{
	it_net *n = it_net_new("evidence-proves", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], path[1500], log[1300];
	rete_msg m;
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	ev_put_referral(n, "proved.json", "ev-proved-1", "long-term-unemployment");
	tu_path(path, sizeof(path), "%s/proved.json.receipt.json", sent);
	if (ev_wait_either(path, NULL, EV_WAIT) != 1)
		it_show(n, "social.mantova.log");
	json_t *j = tu_load_json(path);
	assert_non_null(j);
	const char *idx_s = json_string_value(json_object_get(j, "index"));
	const char *note = json_string_value(json_object_get(j, "checkpoint"));
	json_t *proof = json_object_get(j, "proof");
	assert_non_null(idx_s);
	assert_non_null(note);
	assert_true(json_is_array(proof));
	uint64_t index = strtoull(idx_s, NULL, 10);

	/* the checkpoint: the broker's, of this log, reaching the index */
	rete_checkpoint cp;
	assert_int_equal(
	    rete_checkpoint_verify(note, strlen(note), IT_ORIGIN, &n->broker->pub, &cp, &m),
	    RETE_OK);
	assert_true(index < cp.size);

	/* the log's entry at that index is our message; its leaf and the
	 * proof give the checkpoint's root */
	rete_wire *w = it_connect(n, IT_AUDIT);
	assert_non_null(w);
	Rete__EntriesQuery eq = RETE__ENTRIES_QUERY__INIT;
	eq.from = index;
	eq.count = 1;
	Rete__Query q = RETE__QUERY__INIT;
	q.what_case = RETE__QUERY__WHAT_ENTRIES;
	q.entries = &eq;
	Rete__BrokerFrame *f = ev_query(w, &q);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_ENTRIES);
	assert_int_equal(f->result->entries->n_entries, 1);
	const ProtobufCBinaryData *eb = &f->result->entries->entries[0];
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, eb->len, eb->data);
	assert_non_null(le);
	Rete__Message *msg = NULL;
	assert_int_equal(
	    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &msg, NULL),
	    RETE_OK);
	assert_string_equal(msg->id, "ev-proved-1");
	rete__message__free_unpacked(msg, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_merkle_leaf_hash(leaf, eb->data, eb->len);
	rete__broker_frame__free_unpacked(f, NULL);
	size_t np = json_array_size(proof);
	assert_true(np <= RETE_MERKLE_MAX_PROOF);
	uint8_t hashes[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
	for (size_t i = 0; i < np; i++) {
		const char *b64 = json_string_value(json_array_get(proof, i));
		assert_non_null(b64);
		uint8_t *bin = NULL;
		size_t len = 0;
		assert_int_equal(rete_b64_decode(b64, &bin, &len), RETE_OK);
		assert_int_equal(len, RETE_MERKLE_HASH);
		memcpy(hashes[i], bin, RETE_MERKLE_HASH);
		free(bin);
		e[i].data = hashes[i];
		e[i].len = RETE_MERKLE_HASH;
	}
	if (rete_merkle_verify_inclusion(index, cp.size, leaf, sizeof(leaf), e, np, cp.root,
					 sizeof(cp.root), &m) != RETE_OK)
		fprintf(stderr, "inclusion: %s\n", m.text);
	assert_int_equal(rete_merkle_verify_inclusion(index, cp.size, leaf, sizeof(leaf), e, np,
						      cp.root, sizeof(cp.root), &m),
			 RETE_OK);

	/* a stored checkpoint at least as large comes (checkpoint_interval
	 * 1s; another message makes the log grow); the broker proves the
	 * receipt's checkpoint consistent with it */
	ev_put_referral(n, "later.json", "ev-proved-2", "long-term-unemployment");
	rete_checkpoint later;
	char *stored = NULL;
	int64_t end = ev_deadline(EV_WAIT);
	for (;;) {
		stored = ev_stored_checkpoint(n, w, &later);
		if (later.size > cp.size || it_mono_ms() > end)
			break;
		free(stored);
		ev_poll_nap();
	}
	free(stored);
	assert_true(later.size > cp.size);
	Rete__ConsistencyQuery cq = RETE__CONSISTENCY_QUERY__INIT;
	cq.size1 = cp.size;
	cq.size2 = later.size;
	Rete__Query q2 = RETE__QUERY__INIT;
	q2.what_case = RETE__QUERY__WHAT_CONSISTENCY;
	q2.consistency = &cq;
	f = ev_query(w, &q2);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_PROOF);
	const Rete__Proof *p = f->result->proof;
	assert_true(p->n_hashes <= RETE_MERKLE_MAX_PROOF);
	for (size_t i = 0; i < p->n_hashes; i++) {
		e[i].data = p->hashes[i].data;
		e[i].len = p->hashes[i].len;
	}
	assert_int_equal(rete_merkle_verify_consistency(cp.size, later.size, cp.root,
							sizeof(cp.root), later.root,
							sizeof(later.root), e, p->n_hashes, &m),
			 RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	json_decref(j);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
}

/* --- a new log epoch ----------------------------------------------------------- */

/* ev_receipted_in_epoch1 opens the fake broker l at n's endpoint (the real
 * broker's WELCOME, saying epoch 1; receipts naming the right leaf), starts
 * the social agency's agent and sends it referral id as outbox file name;
 * it returns once the fake had that SUBMIT and the receipt is in sent/.
 * sent and log (len bytes each) get the sent/ folder and the agent's log
 * file. l is the caller's to close (it_fake_close). */
static void ev_receipted_in_epoch1(it_net *n, it_fake *l, const char *name, const char *id,
				   char *sent, char *log, size_t len)
{
	char path[1500];
	Rete__BrokerFrame *welcome = it_real_welcome(n, IT_SOCIAL);
	welcome->welcome->epoch = 1;
	it_fake_open(l, n, welcome);
	l->honest_leaf = true;

	assert_true(it_agent_start(n, IT_SOCIAL));
	ev_put_referral(n, name, id, "long-term-unemployment");
	it_spool(n, IT_SOCIAL, "sent", sent, len);
	tu_path(log, len, "%s/social.mantova.log", n->dir);
	assert_int_equal(it_fake_serve(l, &l->submits, 1, EV_WAIT), 1);
	assert_int_equal(
	    ev_wait_either(tu_path(path, sizeof(path), "%s/%s.receipt.json", sent, name), NULL,
			   EV_WAIT),
	    1);
}

/* ev_fake_epoch2 takes the fake broker l down and makes its WELCOME that of
 * a declared restore: epoch 2, with a checkpoint of epoch 2 (as the broker
 * signs it after --restore: an agent takes the WELCOME's epoch only with a
 * checkpoint of that epoch) of the size the agent verified but a root of
 * `fill` bytes (in epoch 1 that would be a fork), signed with n's broker
 * key. The caller changes what else it wants and brings l back with
 * it_fake_bind. */
static void ev_fake_epoch2(it_net *n, it_fake *l, uint8_t fill)
{
	Rete__BrokerFrame *welcome = l->welcome;
	uint8_t root[RETE_MERKLE_HASH];
	memset(root, fill, sizeof(root));
	rete_checkpoint cp;
	rete_msg m;
	assert_int_equal(rete_checkpoint_verify(welcome->welcome->checkpoint,
						strlen(welcome->welcome->checkpoint), IT_ORIGIN,
						&n->broker->pub, &cp, &m),
			 RETE_OK);
	char *note = NULL;
	assert_int_equal(
	    rete_checkpoint_sign_epoch(IT_ORIGIN, cp.size, root, 2, n->broker, &note, &m),
	    RETE_OK);
	free(welcome->welcome->checkpoint);
	welcome->welcome->checkpoint = note;
	welcome->welcome->epoch = 2;
	zmq_close(l->sock);
	l->sock = NULL;
}

/* test_new_epoch: a broker whose WELCOME says epoch 1 receipts a message
 * (honestly); then it comes back saying epoch 2 (a declared restore) with
 * a checkpoint that does not extend the one the agent verified. The agent
 * takes it as the new baseline (no alarm), says so naming the epoch, and
 * submits the held message again, the same bytes. */
static void test_new_epoch(void **state)
{
	it_net *n = it_net_new("evidence-epoch", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], log[1300];
	it_fake l;
	ev_receipted_in_epoch1(n, &l, "ep.json", "ev-epoch-1", sent, log, sizeof(sent));

	/* Back as epoch 2, with a checkpoint of the same size as the one the
	 * agent verified but another root: in epoch 1 that is a fork. */
	ev_fake_epoch2(n, &l, 0x5a);
	it_fake_bind(&l);
	int hellos = l.hellos;
	assert_int_equal(it_fake_serve(&l, &l.hellos, hellos + 1, EV_WAIT), hellos + 1);
	assert_int_equal(it_fake_serve(&l, &l.submits, 2, EV_WAIT), 2);
	bool same = l.same;
	it_fake_close(&l);
	if (!ev_wait_log(log, "epoch 2 (was 1)", 1, 1000))
		it_show(n, "social.mantova.log");
	assert_true(same); /* the held bytes, not a new signature */
	assert_true(ev_wait_log(log, "is now epoch 2 (was 1)", 1, EV_WAIT));
	assert_true(ev_wait_log(log, "submitting again 1 message(s)", 1, EV_WAIT));
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
}

/* ev_epoch_word: WELCOME's epoch field is not signed (rev-restorenoise,
 * finding 2; rev-final s15, 1). A fake broker with the broker key delivers
 * referral ew-1 at log index 7 to the job centre's agent (WELCOME epoch
 * 1), then comes back saying epoch 2 with a checkpoint of epoch cp_epoch
 * (the same size and root), and delivers ew-2 at index 7. The agent's log
 * goes into log[cap]. */
static it_net *ev_epoch_word(void **state, const char *name, uint32_t cp_epoch, char *log,
			     size_t cap)
{
	it_net *n = it_net_new(name, NULL);
	assert_non_null(n);
	*state = n;
	it_fake l;
	it_msg o1, o2;
	Rete__BrokerFrame *welcome = it_real_welcome(n, IT_CPI);
	welcome->welcome->epoch = 1;
	it_fake_open(&l, n, welcome);
	tu_path(log, cap, "%s/cpi.mantova.log", n->dir);
	assert_true(it_agent_start(n, IT_CPI));
	assert_int_equal(it_fake_serve(&l, &l.hellos, 1, EV_WAIT), 1);
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, "ew-1", &o1), RETE_OK);
	it_fake_deliver(&l, 7, &o1);
	assert_int_equal(it_fake_serve(&l, &l.acks, 1, EV_WAIT), 1);
	assert_int_equal(l.last_ack_error, 0);

	zmq_close(l.sock);
	l.sock = NULL;
	l.welcome->welcome->epoch = 2; /* the word */
	if (cp_epoch != 1) {	       /* the checkpoint, signed */
		rete_checkpoint cp;
		rete_msg m;
		char *note = NULL;
		const char *was = l.welcome->welcome->checkpoint;
		assert_int_equal(rete_checkpoint_verify(was, strlen(was), IT_ORIGIN,
							&n->broker->pub, &cp, &m),
				 RETE_OK);
		assert_int_equal(rete_checkpoint_sign_epoch(IT_ORIGIN, cp.size, cp.root, cp_epoch,
							    n->broker, &note, &m),
				 RETE_OK);
		free(l.welcome->welcome->checkpoint);
		l.welcome->welcome->checkpoint = note;
	}
	it_fake_bind(&l);
	int hellos = l.hellos;
	assert_int_equal(it_fake_serve(&l, &l.hellos, hellos + 1, EV_WAIT), hellos + 1);
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, "ew-2", &o2), RETE_OK);
	it_fake_deliver(&l, 7, &o2);
	assert_int_equal(it_fake_serve(&l, &l.acks, 2, EV_WAIT), 2);
	it_fake_close(&l);
	it_msg_free(&o1);
	it_msg_free(&o2);
	return n;
}

#define EV_REUSED "is not the entry delivered at that index before"
#define EV_RESTORE "): a declared restore;"
#define EV_QUIET "before the declared restore"

/* test_epoch_word_unbacked: epoch 2 said, the checkpoint of epoch 1. An
 * honest broker does this right after a --restore whose first checkpoint
 * it could not store (a full disk), and a dishonest one serving an old
 * copy could say it too: no alarm, but no declared restore either until a
 * WELCOME carries a checkpoint of that epoch; ew-2 at index 7 gets the
 * warning (and a round), not the quiet line of a restore's reuse. */
static void test_epoch_word_unbacked(void **state)
{
	char log[1300];
	it_net *n = ev_epoch_word(state, "evidence-epochword", 1, log, sizeof(log));
	const char *unbacked = "not taken as a declared restore until one does";
	bool ok = ev_wait_log(log, EV_REUSED, 1, EV_WAIT) &&
		  tu_occurrences(log, unbacked) >= 1 &&
		  tu_occurrences(log, "(the one it carries is of an earlier epoch)") >= 1 &&
		  tu_occurrences(log, "WITNESS ALARM") == 0 &&
		  tu_occurrences(log, EV_RESTORE) == 0 && tu_occurrences(log, EV_QUIET) == 0;
	if (!ok) {
		it_show(n, "cpi.mantova.log");
		fail_msg("a WELCOME saying epoch 2 with a checkpoint of epoch 1: %zu '%s', %zu "
			 "alarm(s), %zu '%s', %zu '%s', %zu '%s'; expected the warning that it is "
			 "not taken as a restore yet and the index's warning, no alarm, no restore",
			 tu_occurrences(log, unbacked), unbacked,
			 tu_occurrences(log, "WITNESS ALARM"), tu_occurrences(log, EV_REUSED),
			 EV_REUSED, tu_occurrences(log, EV_RESTORE), EV_RESTORE,
			 tu_occurrences(log, EV_QUIET), EV_QUIET);
	}
}

/* test_epoch_word_behind: epoch 2 said, a checkpoint of epoch 3 signed:
 * no honest broker has signed an epoch later than the one it says. The
 * witness alarm; no declared restore. */
static void test_epoch_word_behind(void **state)
{
	char log[1300];
	it_net *n = ev_epoch_word(state, "evidence-epochahead", 3, log, sizeof(log));
	const char *alarm = "WITNESS ALARM: the broker's WELCOME says log epoch 2, but the "
			    "checkpoint it carries, signed with the broker's key, is of epoch 3";
	bool ok = ev_wait_log(log, EV_REUSED, 1, EV_WAIT) && tu_occurrences(log, alarm) >= 1 &&
		  tu_occurrences(log, EV_RESTORE) == 0 && tu_occurrences(log, EV_QUIET) == 0;
	if (!ok) {
		it_show(n, "cpi.mantova.log");
		fail_msg("a WELCOME saying epoch 2 with a checkpoint of epoch 3: %zu alarm(s) '%s', "
			 "%zu '%s', %zu '%s', %zu '%s'; expected the alarm and the index's warning, "
			 "no restore",
			 tu_occurrences(log, alarm), alarm, tu_occurrences(log, EV_REUSED), EV_REUSED,
			 tu_occurrences(log, EV_RESTORE), EV_RESTORE, tu_occurrences(log, EV_QUIET),
			 EV_QUIET);
	}
}

/* test_epoch_rollback_receipt: after a declared restore to epoch 2, the
 * broker comes back saying epoch 1 (the alarm: the log went back) and
 * receipts a new message with a checkpoint of epoch 1. The agent's epoch
 * is still 2: the receipt is refused (alarm, the file stays ours), as a
 * receipt of an epoch older than the agent's must be. */
static void test_epoch_rollback_receipt(void **state)
{
	it_net *n = it_net_new("evidence-rollback", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], log[1300], outbox[1300], path[1500];
	it_fake l;
	ev_receipted_in_epoch1(n, &l, "rb0.json", "ev-rb-0", sent, log, sizeof(sent));
	ev_fake_epoch2(n, &l, 0x5a);
	it_fake_bind(&l);
	int64_t end = ev_deadline(EV_WAIT);
	while (tu_occurrences(log, "is now epoch 2 (was 1)") == 0 && it_mono_ms() < end)
		it_fake_serve(&l, &l.hellos, l.hellos + 1, 200);
	assert_true(tu_occurrences(log, "is now epoch 2 (was 1)") > 0);

	/* back to epoch 1 */
	zmq_close(l.sock);
	l.sock = NULL;
	l.welcome->welcome->epoch = 1;
	it_fake_bind(&l);
	end = ev_deadline(EV_WAIT);
	while (tu_occurrences(log, "went back from epoch 2 to epoch 1") == 0 && it_mono_ms() < end)
		it_fake_serve(&l, &l.hellos, l.hellos + 1, 200);
	assert_true(tu_occurrences(log, "went back from epoch 2 to epoch 1") > 0);

	ev_put_referral(n, "rb1.json", "ev-rb-1", "long-term-unemployment");
	it_spool(n, IT_SOCIAL, "outbox", outbox, sizeof(outbox));
	tu_path(path, sizeof(path), "%s/rb1.json.receipt.json", sent);
	const char *refused = "its checkpoint is of log epoch 1, older than epoch 2";
	end = ev_deadline(EV_WAIT);
	while (!tu_exists(path) && tu_occurrences(log, refused) == 0 && it_mono_ms() < end)
		it_fake_serve(&l, &l.submits, l.submits + 1, 200);
	it_fake_close(&l);
	if (tu_exists(path))
		fail_msg("a receipt of epoch 1 was taken after the agent had seen epoch 2");
	assert_true(tu_occurrences(log, refused) > 0);
	assert_true(tu_exists(tu_path(path, sizeof(path), "%s/rb1.json", outbox)));
}

/* test_epoch_then_crash (review): the agent learns epoch 2, records it at
 * once, and puts its held message back in flight in memory only. The
 * broker has not answered that SUBMIT when the agent is killed. After the
 * restart the WELCOME still says epoch 2 = the recorded epoch: is the held
 * message ever submitted again? */
static void test_epoch_then_crash(void **state)
{
	it_net *n = it_net_new("review-epoch-crash", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], log[1300];
	it_fake l;
	ev_receipted_in_epoch1(n, &l, "ep.json", "ev-epoch-1", sent, log, sizeof(sent));

	/* Back as epoch 2 (a declared restore that lost the message), but it
	 * does not answer SUBMITs yet (the batch not committed) */
	ev_fake_epoch2(n, &l, 0x5a);
	l.mute = true;
	it_fake_bind(&l);
	int hellos = l.hellos;
	assert_int_equal(it_fake_serve(&l, &l.hellos, hellos + 1, EV_WAIT), hellos + 1);
	assert_int_equal(it_fake_serve(&l, &l.submits, 2, EV_WAIT), 2); /* in flight, unanswered */
	assert_true(ev_wait_log(log, "submitting again 1 message(s)", 1, EV_WAIT));

	/* the agent dies (power cut, kill -9, an operator's restart) */
	it_stop(&n->agent_pid[IT_SOCIAL], SIGKILL, it_wait_ms());
	assert_true(it_agent_start(n, IT_SOCIAL));
	hellos = l.hellos;
	assert_int_equal(it_fake_serve(&l, &l.hellos, hellos + 1, EV_WAIT), hellos + 1);
	/* the held message must come again: wait well past `resubmit` */
	int got = it_fake_serve(&l, &l.submits, 3, 30000);
	it_fake_close(&l);
	if (got < 3)
		it_show(n, "social.mantova.log");
	fprintf(stderr, "SUBMITs after the restart: %d (want >= 1)\n", got - 2);
	assert_int_equal(got, 3);
}

/* test_dup_id_false_alarm (review): two outbox files with the same id (an
 * agency's system writing the same referral again under another name)
 * are both in flight; a receipt for another file is handled first
 * (item_remove moves the last item into its slot); then the honest receipt
 * for the first of the two comes. It is matched by id only to the second
 * file, whose bytes do not hash to its leaf: a witness alarm against an
 * honest broker. */
static void test_dup_id_false_alarm(void **state)
{
	it_net *n = it_net_new("review-dup-id", NULL);
	assert_non_null(n);
	*state = n;
	char log[1300], outbox[1300], ta[1500], tb[1500], da[1500], db[1500];
	it_fake l;
	it_fake_open(&l, n, it_real_welcome(n, IT_SOCIAL));
	l.honest_leaf = true;
	l.mute = true;
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	it_spool(n, IT_SOCIAL, "outbox", outbox, sizeof(outbox));

	assert_true(it_agent_start(n, IT_SOCIAL));
	ev_put_referral(n, "z.json", "ev-z", "long-term-unemployment");
	assert_int_equal(it_fake_serve(&l, &l.submits, 1, EV_WAIT), 1);
	/* both written, then both renamed in: one scan takes them */
	char *t1 = ev_referral_text("ev-dup", "long-term-unemployment");
	char *t2 = ev_referral_text("ev-dup", "school-dropout");
	tu_path(ta, sizeof(ta), "%s/.a.tmp", outbox);
	tu_path(tb, sizeof(tb), "%s/.b.tmp", outbox);
	tu_path(da, sizeof(da), "%s/a.json", outbox);
	tu_path(db, sizeof(db), "%s/b.json", outbox);
	assert_int_equal(tu_write_file(ta, t1, strlen(t1)), 0);
	assert_int_equal(tu_write_file(tb, t2, strlen(t2)), 0);
	assert_int_equal(rename(ta, da), 0);
	assert_int_equal(rename(tb, db), 0);
	free(t1);
	free(t2);
	assert_int_equal(it_fake_serve(&l, &l.submits, 3, EV_WAIT), 3);
	it_fake_answer_kept(&l, 0); /* z.json's receipt */
	assert_true(ev_wait_log(log, "z.json: accepted", 1, EV_WAIT));
	it_fake_answer_kept(&l, 1); /* the first ev-dup's honest receipt */
	bool alarm = ev_wait_log(log, "WITNESS ALARM", 1, 5000);
	if (alarm)
		it_show(n, "social.mantova.log");
	it_fake_close(&l);
	assert_false(alarm); /* an honest broker, the agency's own two files */
}

/* --- held messages after a real restore ------------------------------------- */

/* ev_update_text: a cancellation by social services of referral rid, as
 * an agency's system writes it. */
static char *ev_update_text(const char *id, const char *rid)
{
	json_t *j = json_pack("{s:s,s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:{s:s}}}", "id", id, "operator",
			      "staffId", "as-0042", "role", "social-worker", "recipient",
			      "cpi.mantova", "caseId", "mn-2026-0173", "update", "referralId", rid,
			      "status", "cancelled", "statusReason", "code", "no-longer-needed");
	assert_non_null(j);
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return text;
}

/* ev_receipt_index: the "index" of sent/NAME.receipt.json of social
 * services (waits for it). */
static uint64_t ev_receipt_index(it_net *n, const char *name)
{
	char sent[1300], path[1500];
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	tu_path(path, sizeof(path), "%s/%s.receipt.json", sent, name);
	if (ev_wait_either(path, NULL, EV_WAIT) != 1) {
		it_show(n, "social.mantova.log");
		fail_msg("no receipt for %s", name);
	}
	json_t *j = tu_load_json(path);
	assert_non_null(j);
	const char *s = json_string_value(json_object_get(j, "index"));
	assert_non_null(s);
	uint64_t idx = strtoull(s, NULL, 10);
	json_decref(j);
	return idx;
}

/* ev_wait_rereceipt waits for the log line of held message id receipted
 * again and returns its new log index (UINT64_MAX at the deadline). */
static uint64_t ev_wait_rereceipt(const char *log, const char *id, int ms)
{
	char needle[200];
	snprintf(needle, sizeof(needle), "held message %s receipted again at log index ", id);
	if (!ev_wait_log(log, needle, 1, ms))
		return UINT64_MAX;
	size_t len = 0;
	char *text = tu_read_file(log, &len);
	if (text == NULL)
		return UINT64_MAX;
	const char *at = strstr(text, needle);
	uint64_t idx = at ? strtoull(at + strlen(needle), NULL, 10) : UINT64_MAX;
	free(text);
	return idx;
}

/* test_held_order: a referral and its cancellation, both receipted and
 * held (the job centre is away), whose ids sort cancellation first; the
 * broker's store is put back from a backup taken before both. After the
 * restore the sender submits them again in their log order, the referral
 * first: both are receipted again, the cancellation is not refused
 * (unknown-referral), and the referral comes before it in the new log. */
static void test_held_order(void **state)
{
	it_net *n = it_net_new("evidence-held-order", NULL);
	assert_non_null(n);
	*state = n;
	char backup[1300], log[1300];
	tu_path(backup, sizeof(backup), "%s/backup", n->dir);
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);

	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	ev_backup(n, backup);
	ev_put_referral(n, "zz.json", "zz-held-ref", "long-term-unemployment");
	uint64_t ref_before = ev_receipt_index(n, "zz.json");
	char *t = ev_update_text("aa-held-cancel", "zz-held-ref");
	it_outbox_put(n, IT_SOCIAL, "aa.json", t);
	free(t);
	uint64_t upd_before = ev_receipt_index(n, "aa.json");
	assert_true(ref_before < upd_before);

	assert_true(ev_broker_restore(n, backup));
	uint64_t ref_after = ev_wait_rereceipt(log, "zz-held-ref", EV_WAIT);
	uint64_t upd_after = ev_wait_rereceipt(log, "aa-held-cancel", EV_WAIT);
	size_t refused = tu_occurrences(log, "submitted again was refused");
	if (ref_after == UINT64_MAX || upd_after == UINT64_MAX || refused > 0)
		it_show(n, "social.mantova.log");
	assert_int_equal(refused, 0); /* the cancellation was not sent before its referral */
	assert_true(ref_after != UINT64_MAX);
	assert_true(upd_after != UINT64_MAX);
	assert_true(ref_after < upd_after); /* the log keeps their order */
}

/* test_held_receipt_renewed: a held message receipted again after a
 * restore (at a new log index) is the one the same file sent again is
 * answered with: its new receipt, not the one of the epoch the restore
 * left behind (that index now holds another entry). */
static void test_held_receipt_renewed(void **state)
{
	it_net *n = it_net_new("evidence-held-renewed", NULL);
	assert_non_null(n);
	*state = n;
	char backup[1300], log[1300];
	tu_path(backup, sizeof(backup), "%s/backup", n->dir);
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);

	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	ev_backup(n, backup);
	char *text = ev_referral_text("ev-renew-1", "long-term-unemployment");
	it_outbox_put(n, IT_SOCIAL, "first.json", text);
	uint64_t before = ev_receipt_index(n, "first.json");

	assert_true(ev_broker_restore(n, backup));
	uint64_t after = ev_wait_rereceipt(log, "ev-renew-1", EV_WAIT);
	if (after == UINT64_MAX)
		it_show(n, "social.mantova.log");
	assert_true(after != UINT64_MAX);
	assert_true(after != before);

	it_outbox_put(n, IT_SOCIAL, "again.json", text);
	free(text);
	uint64_t again = ev_receipt_index(n, "again.json");
	if (again != after)
		fprintf(stderr,
			"again.json: receipt of index %" PRIu64 " (before the restore: %" PRIu64
			", receipted again at %" PRIu64 ")\n",
			again, before, after);
	assert_int_equal(again, after);
}

/* test_held_too_large: a held message that the broker's max_frame no
 * longer admits when it must be submitted again (a new epoch whose broker
 * takes smaller frames) gets a file-less answer in failed/
 * (held-ID.error.json, code too-large), never an answer "for" the outbox
 * folder itself (failed/.2). */
static void test_held_too_large(void **state)
{
	it_net *n = it_net_new("evidence-held-large", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], failed[1300], log[1300], path[1500];
	it_fake l;
	ev_receipted_in_epoch1(n, &l, "big.json", "ev-big-1", sent, log, sizeof(sent));
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));

	/* Back as epoch 2 (another root at the same size), taking 300-byte
	 * frames only. */
	ev_fake_epoch2(n, &l, 0x5b);
	l.welcome->welcome->max_frame = 300;
	it_fake_bind(&l);
	int hellos = l.hellos;
	assert_int_equal(it_fake_serve(&l, &l.hellos, hellos + 1, EV_WAIT), hellos + 1);
	tu_path(path, sizeof(path), "%s/held-ev-big-1.error.json", failed);
	int got = ev_wait_either(path, NULL, 20000);
	it_fake_close(&l);
	char dot2[1500];
	bool folder_answer = tu_exists(tu_path(dot2, sizeof(dot2), "%s/.2.error.json", failed)) ||
			     tu_exists(tu_path(dot2, sizeof(dot2), "%s/.error.json", failed));
	if (got != 1 || folder_answer)
		it_show(n, "social.mantova.log");
	assert_false(folder_answer); /* never an answer for the outbox folder */
	assert_int_equal(got, 1);
	json_t *j = tu_load_json(path);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "code")), "too-large");
	assert_string_equal(json_string_value(json_object_get(j, "messageId")), "ev-big-1");
	json_decref(j);
}

/* --- what the agency's files say after a restore (eyes12 #2, #3, #4, #6) ---- */

/* ev_status runs `rete status -c agent.ini ARGS` for social services (from
 * its folder, as an operator does) and returns its exit status; *out gets
 * what it printed (stdout and stderr; the caller frees). */
static int ev_status(it_net *n, const char *args, char **out)
{
	return tu_run(out, "cd '%s/agents/social.mantova' && '%s/rete' status -c agent.ini %s 2>&1",
		      n->dir, n->bin, args);
}

/* ev_lost_by_restore: a new network (tag; *state, for the teardown) where
 * a referral (ev-1) sent by social services after the backup was delivered,
 * its delivery receipt back (so no agent holds it any more), then the
 * broker's store put back from the backup: the log of epoch 2 does not
 * have it, and nobody will submit it again. Returns when social services'
 * agent is connected to the restored broker; log gets its log's path. */
static it_net *ev_lost_by_restore(void **state, const char *tag, char *log, size_t len)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	char backup[1300];
	tu_path(backup, sizeof(backup), "%s/backup", n->dir);
	tu_path(log, len, "%s/social.mantova.log", n->dir);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	ev_backup(n, backup);
	ev_put_referral(n, "lost.json", "ev-1", "long-term-unemployment");
	assert_int_equal(ev_wait_delivered(n, 1, EV_WAIT), 1);
	if (!ev_wait_log(log, "message ev-1 delivered: no longer held", 1, EV_WAIT)) {
		it_show(n, "social.mantova.log");
		fail_msg("ev-1 is still held after its delivery receipt");
	}
	assert_true(ev_broker_restore(n, backup));
	if (!ev_wait_log(log, "the broker's log is now epoch 2", 1, EV_WAIT)) {
		it_show(n, "social.mantova.log");
		fail_msg("social services' agent did not see epoch 2");
	}
	return n;
}

/* test_restore_receipt_file (eyes12 #2): a held referral receipted again
 * after a restore, at another index: sent/NAME.receipt.json, which the
 * case system reads, names the new entry (the old index holds another
 * entry now) and keeps the old receipt as "previousReceipts"; `rete
 * status` shows the referral at its new index, saying where it was. */
static void test_restore_receipt_file(void **state)
{
	it_net *n = it_net_new("evidence-rcpt-file", NULL);
	assert_non_null(n);
	*state = n;
	char backup[1300], log[1300], sent[1300], path[1500];
	tu_path(backup, sizeof(backup), "%s/backup", n->dir);
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));

	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL)); /* the job centre away: held */
	ev_backup(n, backup);
	ev_put_referral(n, "rf.json", "ev-rf-1", "long-term-unemployment");
	uint64_t before = ev_receipt_index(n, "rf.json");
	assert_true(ev_broker_restore(n, backup));
	uint64_t after = ev_wait_rereceipt(log, "ev-rf-1", EV_WAIT);
	if (after == UINT64_MAX)
		it_show(n, "social.mantova.log");
	assert_true(after != UINT64_MAX);
	assert_true(after != before);

	json_t *j = tu_load_json(tu_path(path, sizeof(path), "%s/rf.json.receipt.json", sent));
	const char *idx = json_string_value(json_object_get(j, "index"));
	if (idx == NULL || strtoull(idx, NULL, 10) != after)
		fail_msg("sent/rf.json.receipt.json names log index %s; the referral was "
			 "receipted again at %" PRIu64 " (index %" PRIu64
			 " holds another entry now)",
			 idx ? idx : "(none)", after, before);
	json_t *prev = json_array_get(json_object_get(j, "previousReceipts"), 0);
	const char *pidx = json_string_value(json_object_get(prev, "index"));
	if (pidx == NULL || strtoull(pidx, NULL, 10) != before ||
	    json_integer_value(json_object_get(prev, "epoch")) != 1)
		fail_msg("sent/rf.json.receipt.json does not keep its receipt of epoch 1 (index "
			 "%" PRIu64 ") as previousReceipts[0]",
			 before);
	json_decref(j);

	char *out = NULL;
	assert_int_equal(ev_status(n, "ev-rf-1 --json", &out), 0);
	const char *brace = out != NULL ? strchr(out, '{') : NULL;
	json_t *doc = json_loads(brace != NULL ? brace : "", 0, NULL);
	json_t *h, *rec = json_array_get(json_object_get(doc, "referrals"), 0);
	size_t i;
	bool seen = false;
	json_array_foreach(json_object_get(rec, "history"), i, h)
	{
		const char *kind = json_string_value(json_object_get(h, "kind"));
		if (kind == NULL || strcmp(kind, "referral") != 0)
			continue;
		const char *hi = json_string_value(json_object_get(h, "index"));
		const char *hp = json_string_value(json_object_get(h, "previousIndex"));
		if (hi == NULL || strtoull(hi, NULL, 10) != after || hp == NULL ||
		    strtoull(hp, NULL, 10) != before)
			fail_msg("rete status: the referral entry of ev-rf-1 is at #%s (previous "
				 "%s); it was receipted again at #%" PRIu64 ", before at #%" PRIu64
				 ": %s",
				 hi ? hi : "?", hp ? hp : "none", after, before, out);
		seen = true;
	}
	assert_true(seen);
	json_decref(doc);
	free(out);
	assert_int_equal(ev_status(n, "ev-rf-1", &out), 0);
	if (strstr(out, "epoch 1") == NULL)
		fail_msg("rete status does not say the earlier receipt was of epoch 1: %s", out);
	free(out);
}

/* test_restore_status_lost (eyes12 #3): a referral the agency holds that
 * the restored broker's log lost: `rete status` says the broker no longer
 * has it, probably lost by a restore, and what to do; it is not silent. */
static void test_restore_status_lost(void **state)
{
	char log[1300], *out = NULL;
	it_net *n = ev_lost_by_restore(state, "evidence-status-lost", log, sizeof(log));
	int rc = ev_status(n, "ev-1", &out);
	if (rc != 0 || strstr(out, "no longer has referral ev-1") == NULL ||
	    strstr(out, "restore") == NULL || strstr(out, "previousReferral") == NULL)
		fail_msg("rete status ev-1 (lost by the restore), exit %d, says nothing of the "
			 "broker: %s",
			 rc, out);
	free(out);
	assert_int_equal(ev_status(n, "ev-1 --json", &out), 0);
	if (strstr(out, "\"brokerUnknown\": true") == NULL)
		fail_msg("rete status --json ev-1 has no brokerUnknown: %s", out);
	free(out);
	/* the job centre received it: the advice is its requester's, whose
	 * agent may still hold it (rev-restore #1) */
	rc = tu_run(&out, "cd '%s/agents/cpi.mantova' && '%s/rete' status -c agent.ini ev-1 2>&1",
		    n->dir, n->bin);
	if (rc != 0 || strstr(out, "NOT IN ITS LOG") == NULL ||
	    strstr(out, "may still hold it") == NULL)
		fail_msg("rete status ev-1 at the job centre (received, lost by the restore), "
			 "exit %d: %s",
			 rc, out);
	free(out);
}

/* test_restore_update_lost (eyes12 #4): an update of a referral the
 * restore lost is refused unknown-referral with a sentence that says why
 * (a restore of the broker's store) and what to do (send the referral
 * again first), not "check the referral id", which is right. */
static void test_restore_update_lost(void **state)
{
	char log[1300], failed[1300], path[1500];
	it_net *n = ev_lost_by_restore(state, "evidence-update-lost", log, sizeof(log));
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));
	char *t = ev_update_text("ev-cancel-1", "ev-1");
	it_outbox_put(n, IT_SOCIAL, "cancel.json", t);
	free(t);
	tu_path(path, sizeof(path), "%s/cancel.json.error.json", failed);
	if (ev_wait_either(path, NULL, EV_WAIT) != 1) {
		it_show(n, "social.mantova.log");
		fail_msg("no answer in failed/ for the cancellation of ev-1");
	}
	json_t *j = tu_load_json(path);
	const char *code = json_string_value(json_object_get(j, "code"));
	const char *err = json_string_value(json_object_get(j, "error"));
	assert_string_equal(code ? code : "", "unknown-referral");
	if (err == NULL || strstr(err, "restore") == NULL || strstr(err, "send it again") == NULL ||
	    strstr(err, "previousReferral") == NULL)
		fail_msg("the refusal of an update of a referral the restore lost: %s",
			 err ? err : "(none)");
	const char *note = json_string_value(json_object_get(j, "agentNote"));
	if (note == NULL || strstr(note, "sent/lost.json") == NULL)
		fail_msg("failed/cancel.json.error.json does not say that this agency sent ev-1 "
			 "(sent/lost.json): agentNote %s",
			 note ? note : "(none)");
	json_decref(j);
}

/* ev_social_net: a new network (tag; *state, for the teardown) with the
 * broker and social services' agent running (the job centre away); log
 * gets the path of social services' log. */
static it_net *ev_social_net(void **state, const char *tag, char *log, size_t len)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	tu_path(log, len, "%s/social.mantova.log", n->dir);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	return n;
}

/* ev_data_net: a new network (tag; *state, for the teardown) with the
 * broker and social services' agent running, which has sent a referral
 * (NAME, ID) and has its receipt; data and log get the paths of its data
 * folder and its log. */
static it_net *ev_data_net(void **state, const char *tag, const char *name, const char *id,
			   char *data, char *log, size_t len)
{
	it_net *n = ev_social_net(state, tag, log, len);
	tu_path(data, len, "%s/agents/social.mantova/data", n->dir);
	ev_put_referral(n, name, id, "long-term-unemployment");
	(void)ev_receipt_index(n, name);
	return n;
}

/* ev_data_put_back stops social services' agent, puts its data folder
 * aside as DATA.aside and a copy of from in its place, and starts it. */
static void ev_data_put_back(it_net *n, const char *data, const char *aside, const char *from)
{
	char *out = NULL;
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	int rc = tu_run(&out, "mv '%s' '%s.%s' && cp -a '%s' '%s'", data, data, aside, from, data);
	free(out);
	assert_int_equal(rc, 0);
	assert_true(it_agent_start(n, IT_SOCIAL));
}

/* test_agent_data_restored (eyes12 #6): the agent's data folder put back
 * from a copy older than its spool. At start the agent says its store is
 * older than sent/; the very same file sent again is refused id-reused by
 * the broker (signed anew: other bytes), and the answer says what
 * happened (its receipt is in sent/), never to "send the very same bytes".
 * The start says it once: two ordinary restarts say nothing more
 * (rev-restore #3); a newer gap (the folder put back again from a copy
 * without a later send) is said. */
static void test_agent_data_restored(void **state)
{
	char data[1300], log[1300], failed[1300], path[1500], bk[1400], *out = NULL;
	it_net *n =
	    ev_data_net(state, "evidence-agent-data", "first.json", "ev-first-1", data, log, 1300);
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));
	tu_path(bk, sizeof(bk), "%s.bk", data);
	/* the backup: the stopped agent's data folder, copied */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_int_equal(tu_run(&out, "cp -a '%s' '%s.bk'", data, data), 0);
	free(out);
	assert_true(it_agent_start(n, IT_SOCIAL));
	char *text = ev_referral_text("ev-rb-1", "long-term-unemployment");
	it_outbox_put(n, IT_SOCIAL, "rb.json", text);
	uint64_t idx = ev_receipt_index(n, "rb.json");
	/* the restore of the agent's data folder */
	ev_data_put_back(n, data, "new", bk);
	if (!ev_wait_log(log, "is older than its spool", 1, EV_WAIT)) {
		it_show(n, "social.mantova.log");
		fail_msg("the agent started on a data folder older than its sent/ said nothing");
	}
	it_outbox_put(n, IT_SOCIAL, "rb-again.json", text);
	free(text);
	tu_path(path, sizeof(path), "%s/rb-again.json.error.json", failed);
	if (ev_wait_either(path, NULL, EV_WAIT) != 1) {
		it_show(n, "social.mantova.log");
		fail_msg("no answer in failed/ for rb-again.json");
	}
	json_t *j = tu_load_json(path);
	const char *err = json_string_value(json_object_get(j, "error"));
	const char *note = json_string_value(json_object_get(j, "agentNote"));
	char want[64];
	snprintf(want, sizeof(want), "log index %" PRIu64, idx);
	if (err == NULL || strstr(err, "sending the very same bytes again") != NULL)
		fail_msg("id-reused tells to send the very same bytes, which was done: %s",
			 err ? err : "(none)");
	if (note == NULL || strstr(note, "sent/rb.json.receipt.json") == NULL ||
	    strstr(note, want) == NULL || strstr(note, "older") == NULL)
		fail_msg("failed/rb-again.json.error.json does not say its receipt is "
			 "sent/rb.json.receipt.json (%s) and the data folder is older: %s",
			 want, note ? note : "(none)");
	json_decref(j);

	/* said once (rev-restore #3): ordinary restarts do not say it again */
	size_t starts = tu_occurrences(log, "started: spool");
	for (size_t k = 1; k <= 2; k++) {
		assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
		assert_true(it_agent_start(n, IT_SOCIAL));
		assert_true(ev_wait_log(log, "started: spool", starts + k, EV_WAIT));
	}
	/* the start's warning (the refusal's agentNote above says "older" too) */
	static const char warned[] = "is older than its spool: of the latest receipts";
	size_t said = tu_occurrences(log, warned);
	if (said != 1)
		fail_msg("the agent said %zu times that its store is older than its spool: once "
			 "for the copy put back, then %zu time(s) at ordinary restarts",
			 said, said - 1);
	/* a newer gap is still said: this folder put back after one more send */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_int_equal(tu_run(&out, "rm -rf '%s.bk' && cp -a '%s' '%s.bk'", data, data, data), 0);
	free(out);
	assert_true(it_agent_start(n, IT_SOCIAL));
	ev_put_referral(n, "later.json", "ev-later-1", "long-term-unemployment");
	(void)ev_receipt_index(n, "later.json");
	ev_data_put_back(n, data, "later", bk);
	if (!ev_wait_log(log, warned, 2, EV_WAIT)) {
		it_show(n, "social.mantova.log");
		fail_msg("a data folder put back without the record of later.json said nothing");
	}
	assert_int_equal(tu_occurrences(log, "sent/later.json.receipt.json, message ev-later-1"),
			 1);
}

/* test_agent_data_restored_receipt (final-read #2): a delivery receipt
 * still queued for a message sent after the copy the agent's data folder
 * was put back from is not a forgery: the agent has no record of the id,
 * but sent/ has its receipt. It says so as a warning naming the receipt
 * (the store put back from an older copy; this agency sent it), never the
 * "ALARM ... this agent never sent it" of a message someone signed as it. */
static void test_agent_data_restored_receipt(void **state)
{
	char data[1300], log[1300], bk[1400], sdir[1300], *out = NULL;
	it_net *n = ev_data_net(state, "evidence-agent-data-rcpt", "first.json", "ev-first-1", data,
				log, 1300);
	tu_path(bk, sizeof(bk), "%s.bk", data);
	/* the backup: the stopped agent's data folder, copied */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_int_equal(tu_run(&out, "cp -a '%s' '%s.bk'", data, data), 0);
	free(out);
	assert_true(it_agent_start(n, IT_SOCIAL));
	/* sent after the copy, while the job centre is away: queued */
	ev_put_referral(n, "late.json", "ev-late-1", "long-term-unemployment");
	(void)ev_receipt_index(n, "late.json");
	ev_data_put_back(n, data, "new", bk);
	if (!ev_wait_log(log, "is older than its spool", 1, EV_WAIT)) {
		it_show(n, "social.mantova.log");
		fail_msg("the agent started on a data folder older than its sent/ said nothing");
	}
	/* the job centre comes back and acks it: the delivery receipt reaches
	 * the restored agent */
	assert_true(it_agent_start(n, IT_CPI));
	it_spool(n, IT_SOCIAL, "inbox", sdir, sizeof(sdir));
	if (ev_wait_count(sdir, "-delivery.json", 2, EV_WAIT) != 2) {
		it_show(n, "social.mantova.log");
		fail_msg("no delivery receipts of ev-first-1 and ev-late-1 in social services' "
			 "inbox/");
	}
	if (tu_occurrences(log, "never sent it") != 0) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery receipt of ev-late-1 (sent after the copy put back; "
			 "sent/late.json.receipt.json is its receipt) raised the forgery ALARM");
	}
	if (tu_occurrences(log, "sent/late.json.receipt.json") < 2 ||
	    tu_occurrences(log, "older copy") < 2) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery receipt of ev-late-1 was not said to be of a message this "
			 "agency sent (sent/late.json.receipt.json) before the store was put back");
	}
}

/* ev_held_net: a new network (tag; *state, for the teardown) with the
 * broker and social services' agent running, the job centre away (so what
 * social services sends is held), and a backup of the broker's store
 * taken (into backup); log gets the path of social services' log. */
static it_net *ev_held_net(void **state, const char *tag, char *backup, char *log, size_t len)
{
	it_net *n = ev_social_net(state, tag, log, len);
	tu_path(backup, len, "%s/backup", n->dir);
	ev_backup(n, backup);
	return n;
}

/* test_restore_status_held (rev-restore #1): a referral receipted and held
 * (the job centre away) when the broker's store is put back from a backup
 * taken before it, while the sender's agent is stopped: the restored log
 * does not have it, but this agency's agent still holds it and submits it
 * again when it connects. `rete status` says so ("heldHere" in --json) and
 * never tells the agency to send it again as a new referral (a second
 * referral of the same family); once the agent is back, the broker knows
 * it again. */
static void test_restore_status_held(void **state)
{
	char backup[1300], log[1300], *out = NULL;
	it_net *n = ev_held_net(state, "evidence-status-held", backup, log, sizeof(log));
	ev_put_referral(n, "h.json", "ev-h-1", "long-term-unemployment");
	(void)ev_receipt_index(n, "h.json");
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_true(ev_broker_restore(n, backup));

	int rc = ev_status(n, "ev-h-1", &out);
	if (rc != 0 || strstr(out, "NOT IN ITS LOG") == NULL || strstr(out, "a new id") != NULL ||
	    strstr(out, "still holds it") == NULL)
		fail_msg("rete status ev-h-1 (lost by the restore, held by this agency's agent), "
			 "exit %d: %s",
			 rc, out);
	free(out);
	assert_int_equal(ev_status(n, "ev-h-1 --json", &out), 0);
	if (strstr(out, "\"brokerUnknown\": true") == NULL ||
	    strstr(out, "\"heldHere\": true") == NULL)
		fail_msg("rete status --json ev-h-1 has no brokerUnknown and heldHere: %s", out);
	free(out);

	assert_true(it_agent_start(n, IT_SOCIAL));
	if (ev_wait_rereceipt(log, "ev-h-1", EV_WAIT) == UINT64_MAX) {
		it_show(n, "social.mantova.log");
		fail_msg("the held referral ev-h-1 was not submitted again");
	}
	rc = ev_status(n, "ev-h-1", &out);
	if (rc != 0 || strstr(out, "NOT IN ITS LOG") != NULL || strstr(out, "heldHere") != NULL)
		fail_msg("rete status ev-h-1 after its resubmission, exit %d: %s", rc, out);
	free(out);
}

/* ev_receipt_follows: sent/NAME.receipt.json names log index after and
 * keeps the receipt of epoch 1 at index before as previousReceipts[0];
 * the failing sentence otherwise. */
static void ev_receipt_follows(const char *sent, const char *name, uint64_t before, uint64_t after)
{
	char path[1500];
	json_t *j = tu_load_json(tu_path(path, sizeof(path), "%s/%s.receipt.json", sent, name));
	const char *idx = json_string_value(json_object_get(j, "index"));
	json_t *prev = json_array_get(json_object_get(j, "previousReceipts"), 0);
	const char *pidx = json_string_value(json_object_get(prev, "index"));
	if (idx == NULL || strtoull(idx, NULL, 10) != after || pidx == NULL ||
	    strtoull(pidx, NULL, 10) != before ||
	    json_integer_value(json_object_get(prev, "epoch")) != 1)
		fail_msg("sent/%s.receipt.json names log index %s (previous %s); the message "
			 "was receipted again at %" PRIu64 " (index %" PRIu64
			 " of epoch 1 holds another entry now)",
			 name, idx ? idx : "(none)", pidx ? pidx : "none", after, before);
	json_decref(j);
}

/* ev_restore_rereceipt restores the broker's store from backup and waits
 * for held message id, receipted at before, to be receipted again at
 * another index, which it returns. */
static uint64_t ev_restore_rereceipt(it_net *n, const char *backup, const char *log, const char *id,
				     uint64_t before)
{
	assert_true(ev_broker_restore(n, backup));
	uint64_t after = ev_wait_rereceipt(log, id, EV_WAIT);
	if (after == UINT64_MAX || after == before) {
		it_show(n, "social.mantova.log");
		fail_msg("%s, receipted at %" PRIu64 ", was not receipted again at another index",
			 id, before);
	}
	return after;
}

/* test_restore_receipt_copies (rev-restore #5): the same file sent twice
 * (h.json, then the same bytes as h-again.json: one message, two receipt
 * files), held, then the broker's store put back from a backup taken
 * before it: once it is receipted again, every receipt file naming it
 * names the new entry, keeping the old one as previousReceipts. */
static void test_restore_receipt_copies(void **state)
{
	char backup[1300], log[1300], sent[1300];
	it_net *n = ev_held_net(state, "evidence-rcpt-copies", backup, log, sizeof(log));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	ev_put_referral(n, "h.json", "ev-hc-1", "long-term-unemployment");
	uint64_t before = ev_receipt_index(n, "h.json");
	ev_put_referral(n, "h-again.json", "ev-hc-1", "long-term-unemployment");
	assert_int_equal(ev_receipt_index(n, "h-again.json"), before);
	uint64_t after = ev_restore_rereceipt(n, backup, log, "ev-hc-1", before);
	ev_receipt_follows(sent, "h.json", before, after);
	ev_receipt_follows(sent, "h-again.json", before, after);
}

/* test_restore_resent_epoch (rev-restore #5): a delivered referral the
 * restore lost (nobody holds it), whose very file is written to outbox/
 * again: it is answered with the receipt its id record keeps, of epoch 1,
 * and the receipt file says so ("epoch": 1), its index being of the log
 * before the restore. */
static void test_restore_resent_epoch(void **state)
{
	char log[1300], sent[1300], path[1500];
	it_net *n = ev_lost_by_restore(state, "evidence-resent-epoch", log, sizeof(log));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	ev_put_referral(n, "lost-again.json", "ev-1", "long-term-unemployment");
	(void)ev_receipt_index(n, "lost-again.json");
	json_t *j =
	    tu_load_json(tu_path(path, sizeof(path), "%s/lost-again.json.receipt.json", sent));
	assert_non_null(j);
	json_t *e = json_object_get(j, "epoch");
	if (!json_is_integer(e) || json_integer_value(e) != 1) {
		char *t = json_dumps(j, JSON_INDENT(2));
		fail_msg("sent/lost-again.json.receipt.json, the receipt of epoch 1 given again in "
			 "epoch 2, has no \"epoch\": 1: %s",
			 t ? t : "?");
	}
	json_decref(j);
}

/* test_agent_data_live_copy (rev-restore #2): the live backup of an agent's
 * data folder that docs/operations.md gives (mdb_copy -c of its LMDB
 * files, then privacy.key and persons.jsonl copied beside the copy), put
 * back by "Restoring an agent's data folder", keeps the person index and
 * its key: `rete sar` still finds the person of a referral sent before the
 * copy. */
static void test_agent_data_live_copy(void **state)
{
	char data[1300], log[1300], bk[1400], *out = NULL;
	it_net *n =
	    ev_data_net(state, "evidence-data-live-copy", "p.json", "ev-p-1", data, log, 1300);
	tu_path(bk, sizeof(bk), "%s.bk", data);
	/* the live copy, the agent running, as operations.md gives it */
	int rc = tu_run(&out,
			"mkdir '%s.bk' && mdb_copy -c '%s' '%s.bk' && cp -p '%s/privacy.key' "
			"'%s/persons.jsonl' '%s.bk/' 2>&1",
			data, data, data, data, data, data);
	if (rc != 0)
		fail_msg("the live copy failed (exit %d): %s", rc, out ? out : "");
	free(out);
	/* put back, as operations.md gives it */
	size_t starts = tu_occurrences(log, "started: spool");
	ev_data_put_back(n, data, "broken", bk);
	assert_true(ev_wait_log(log, "started: spool", starts + 1, EV_WAIT));
	rc = tu_run(&out,
		    "cd '%s/agents/social.mantova' && '%s/rete' sar --person RSSMRA85M41E897X -c "
		    "agent.ini 2>&1",
		    n->dir, n->bin);
	if (rc != 0 || strstr(out, "ev-p-1") == NULL)
		fail_msg("rete sar after the live copy was put back (exit %d) does not find "
			 "ev-p-1: %s",
			 rc, out ? out : "");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_export_before_checkpoint, it_teardown),
	    cmocka_unit_test_teardown(test_dishonest_receipt, it_teardown),
	    cmocka_unit_test_teardown(test_receipt_bad_signature, it_teardown),
	    cmocka_unit_test_teardown(test_receipt_other_origin, it_teardown),
	    cmocka_unit_test_teardown(test_receipt_old_epoch, it_teardown),
	    cmocka_unit_test_teardown(test_receipt_index_beyond, it_teardown),
	    cmocka_unit_test_teardown(test_receipt_proves, it_teardown),
	    cmocka_unit_test_teardown(test_new_epoch, it_teardown),
	    cmocka_unit_test_teardown(test_epoch_rollback_receipt, it_teardown),
	    cmocka_unit_test_teardown(test_epoch_word_unbacked, it_teardown),
	    cmocka_unit_test_teardown(test_epoch_word_behind, it_teardown),
	    cmocka_unit_test_teardown(test_resend_same_id, it_teardown),
	    cmocka_unit_test_teardown(test_restore_once, it_teardown),
	    cmocka_unit_test_teardown(test_epoch_then_crash, it_teardown),
	    cmocka_unit_test_teardown(test_dup_id_false_alarm, it_teardown),
	    cmocka_unit_test_teardown(test_held_order, it_teardown),
	    cmocka_unit_test_teardown(test_held_receipt_renewed, it_teardown),
	    cmocka_unit_test_teardown(test_held_too_large, it_teardown),
	    cmocka_unit_test_teardown(test_restore_receipt_file, it_teardown),
	    cmocka_unit_test_teardown(test_restore_status_lost, it_teardown),
	    cmocka_unit_test_teardown(test_restore_update_lost, it_teardown),
	    cmocka_unit_test_teardown(test_agent_data_restored, it_teardown),
	    cmocka_unit_test_teardown(test_agent_data_restored_receipt, it_teardown),
	    cmocka_unit_test_teardown(test_restore_status_held, it_teardown),
	    cmocka_unit_test_teardown(test_restore_receipt_copies, it_teardown),
	    cmocka_unit_test_teardown(test_restore_resent_epoch, it_teardown),
	    cmocka_unit_test_teardown(test_agent_data_live_copy, it_teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	if (getenv("RETE_TEST_ONLY") != NULL)
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
