/* test_witness_questions.c — what the agent's witness asks the broker, and
 * what a dishonest broker cannot hide from it.
 *
 * The real rete-broker and rete-agent (itest.h) in a temporary folder:
 *   - test_questions_per_message: social services sends N referrals to the
 *     job centre, both witnesses on (`witness = 1s`); once every receipt
 *     has been checked, the broker's access record (one line per proof it
 *     computed and answered) shows no inclusion proof asked by the sender
 *     (each receipt already carries one to its own checkpoint) and at most
 *     one consistency proof per distinct receipt checkpoint beside the ones
 *     that verify the broker's newer checkpoints. The figures (questions per
 *     message) are printed; the recipient asks one inclusion proof per
 *     referral delivered to it (its witness checks what it was delivered);
 *   - test_old_witness_record: a pending receipt recorded by an older agent
 *     (the leaf hash only, no checkpoint) is still checked, by an inclusion
 *     proof, and forgotten once shown included;
 *   - test_receipt_off_log: a program holding the broker's key receipts a
 *     message with an honest inclusion proof to a checkpoint of size 2, then
 *     shows the witness a log (checkpoints and proofs of its own) that holds
 *     the same entry at the same index but a different first entry: the
 *     entry is included in what it shows, yet the receipt's checkpoint is
 *     not on that log. The witness raises the alarm (test_receipt_fork: the
 *     log shown has the receipt's size and another root).
 *
 * Waits are for files, records and log lines with deadlines, never sleeps.
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

#define WQ_WAIT 90000 /* generous: 2 cores, sanitizers */
#define WQ_N	200   /* referrals of test_questions_per_message */

static int64_t wq_deadline(int ms)
{
	return it_mono_ms() + it_scaled_ms(ms);
}

/* wq_nap: the pause between two looks at a folder, a store or a log while
 * waiting for a condition with a deadline. */
static void wq_nap(void)
{
	it_nap(50);
}

static char *wq_referral_text(const char *id)
{
	json_t *j = json_pack(
	    "{s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:s},"
	    "s:{s:{s:s,s:s},s:s}}",
	    "operator", "staffId", "as-0042", "role", "social-worker", "recipient", "cpi.mantova",
	    "caseId", "mn-2026-0173", "referral", "service", "employment-orientation", "priority",
	    "routine", "reasonCode", "long-term-unemployment", "consent", "basis", "consent",
	    "givenAt", "2026-11-20T09:30:00Z", "reference", "CONS-2026-0412", "ageBand", "adult",
	    "private", "person", "name", "Maria Rossi", "fiscalCode", "RSSMRA85M41E897X", "reason",
	    "Unemployed; asks for help to find work.");
	assert_non_null(j);
	if (id != NULL)
		json_object_set_new(j, "id", json_string(id));
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return text;
}

/* wq_put writes a referral into social services' outbox the way the
 * contract asks (temporary name, then rename); its folders are made. */
static void wq_put(it_net *n, const char *name, const char *id)
{
	char dir[1300], tmp[1500], dst[1500];
	char *text = wq_referral_text(id);
	it_spool(n, IT_SOCIAL, "", dir, sizeof(dir));
	tu_path(tmp, sizeof(tmp), "%s/agents", n->dir);
	mkdir(tmp, 0755);
	tu_path(tmp, sizeof(tmp), "%s/agents/%s", n->dir, it_party_ids[IT_SOCIAL]);
	mkdir(tmp, 0755);
	mkdir(dir, 0755);
	it_spool(n, IT_SOCIAL, "outbox", dir, sizeof(dir));
	mkdir(dir, 0755);
	tu_path(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	tu_path(dst, sizeof(dst), "%s/%s", dir, name);
	assert_int_equal(tu_write_file(tmp, text, strlen(text)), 0);
	assert_int_equal(rename(tmp, dst), 0);
	free(text);
}

static size_t wq_wait_count(const char *dir, const char *suffix, size_t want, int ms)
{
	int64_t end = wq_deadline(ms);
	size_t c;
	while ((c = tu_count_suffix(dir, suffix)) < want && it_mono_ms() < end)
		wq_nap();
	return c;
}

static bool wq_wait_log(const char *path, const char *needle, int ms)
{
	int64_t end = wq_deadline(ms);
	while (tu_occurrences(path, needle) == 0) {
		if (it_mono_ms() >= end)
			return false;
		wq_nap();
	}
	return true;
}

/* wq_pending: how many receipts party p's witness still has to check (the
 * entries of its store's `witness` database, read-only beside the running
 * agent); -1 when the store cannot be read. */
static long wq_pending(it_net *n, int p)
{
	char dir[1300];
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_stat st;
	long count = -1;

	tu_path(dir, sizeof(dir), "%s/agents/%s/data", n->dir, it_party_ids[p]);
	if (mdb_env_create(&env) != 0)
		return -1;
	if (mdb_env_set_maxdbs(env, 16) == 0 && mdb_env_open(env, dir, MDB_RDONLY, 0600) == 0 &&
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
		int rc = mdb_dbi_open(txn, "witness", 0, &dbi);
		if (rc == MDB_NOTFOUND)
			count = 0;
		else if (rc == 0 && mdb_stat(txn, dbi, &st) == 0)
			count = (long)st.ms_entries;
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return count;
}

/* wq_meta_alarm: the alarm party p's agent kept in its store (meta
 * "alarm"; malloc'd, NUL-terminated), or NULL. */
static char *wq_meta_alarm(it_net *n, int p)
{
	char dir[1300];
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = {5, "alarm"}, v;
	char *text = NULL;

	tu_path(dir, sizeof(dir), "%s/agents/%s/data", n->dir, it_party_ids[p]);
	if (mdb_env_create(&env) != 0)
		return NULL;
	if (mdb_env_set_maxdbs(env, 16) == 0 && mdb_env_open(env, dir, MDB_RDONLY, 0600) == 0 &&
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
		if (mdb_dbi_open(txn, "meta", 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0)
			text = strndup(v.mv_data, v.mv_size);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return text;
}

static bool wq_wait_checked(it_net *n, int p, int ms)
{
	int64_t end = wq_deadline(ms);
	while (wq_pending(n, p) != 0) {
		if (it_mono_ms() >= end)
			return false;
		wq_nap();
	}
	return true;
}

/* The broker's access record, read back: how many proofs party `who` asked
 * for (inclusion and consistency) and the distinct end sizes of the
 * consistency proofs (the checkpoints the witness verified). Entry 0's
 * inclusion proofs (the witness pins its leaf once: agent_witness.c,
 * wit_ask_pin) are counted apart, in pin. */
typedef struct wq_asked {
	size_t inclusion, consistency, lines, pin;
	uint64_t ends[4096];
	size_t n_ends;
} wq_asked;

static void wq_count_asked(it_net *n, const char *who, wq_asked *a)
{
	char path[1300], party[200];
	memset(a, 0, sizeof(*a));
	tu_path(path, sizeof(path), "%s.access.log", n->data);
	snprintf(party, sizeof(party), "\"%s\"", who);
	char *text = tu_read_file(path, NULL);
	for (char *line = text, *nl; line != NULL && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		a->lines++;
		if (strstr(line, party) == NULL)
			continue;
		if (strstr(line, "inclusion proof of entry 0 (") != NULL)
			a->pin++;
		else if (strstr(line, "inclusion proof of entry") != NULL)
			a->inclusion++;
		const char *c = strstr(line, "consistency proof ");
		uint64_t s1, s2;
		if (c == NULL ||
		    sscanf(c, "consistency proof %" SCNu64 " to %" SCNu64, &s1, &s2) != 2)
			continue;
		a->consistency++;
		size_t k = 0;
		while (k < a->n_ends && a->ends[k] != s2)
			k++;
		if (k == a->n_ends && a->n_ends < sizeof(a->ends) / sizeof(a->ends[0]))
			a->ends[a->n_ends++] = s2;
	}
	free(text);
}

/* wq_distinct_notes: the distinct checkpoint notes of the receipts in
 * social services' sent/. */
static size_t wq_distinct_notes(it_net *n)
{
	char dir[1300], path[1600];
	char **notes = NULL;
	size_t count = 0;
	it_spool(n, IT_SOCIAL, "sent", dir, sizeof(dir));
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 13 || strcmp(e->d_name + l - 13, ".receipt.json") != 0)
			continue;
		json_t *j = tu_load_json(tu_path(path, sizeof(path), "%s/%s", dir, e->d_name));
		const char *note = json_string_value(json_object_get(j, "checkpoint"));
		assert_non_null(note);
		size_t k = 0;
		while (k < count && strcmp(notes[k], note) != 0)
			k++;
		if (k == count) {
			notes = realloc(notes, (count + 1) * sizeof(*notes));
			assert_non_null(notes);
			notes[count++] = strdup(note);
		}
		json_decref(j);
	}
	closedir(d);
	for (size_t k = 0; k < count; k++)
		free(notes[k]);
	free(notes);
	return count;
}

/* --- the questions per message ----------------------------------------------- */

static void test_questions_per_message(void **state)
{
	it_net *n = it_net_new("wq-count", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], inbox[1300], name[64];

	/* The sender's outbox is full before it starts: its receipts come in
	 * batches, as at a high rate. */
	for (int i = 0; i < WQ_N; i++) {
		snprintf(name, sizeof(name), "q-%04d.json", i);
		wq_put(n, name, NULL);
	}
	assert_true(it_broker_start(n));
	assert_true(it_agent_start_ex(n, IT_CPI, "witness = 1s\n"));
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\n"));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	assert_int_equal(wq_wait_count(sent, ".receipt.json", WQ_N, WQ_WAIT), WQ_N);
	assert_int_equal(wq_wait_count(inbox, "-referral.json", WQ_N, WQ_WAIT), WQ_N);
	bool checked = wq_wait_checked(n, IT_SOCIAL, WQ_WAIT);
	if (!checked)
		it_show(n, "social.mantova.log");
	assert_true(checked);

	wq_asked s, c;
	wq_count_asked(n, it_party_ids[IT_SOCIAL], &s);
	wq_count_asked(n, it_party_ids[IT_CPI], &c);
	size_t notes = wq_distinct_notes(n);
	fprintf(stderr,
		"witness questions for %d messages: the broker answered %zu proofs (%.2f per "
		"message); social.mantova: %zu inclusion, %zu consistency (%zu checkpoints "
		"verified, %zu distinct receipt checkpoints); cpi.mantova: %zu inclusion, %zu "
		"consistency\n",
		WQ_N, s.inclusion + s.consistency + c.inclusion + c.consistency,
		(double)(s.inclusion + s.consistency + c.inclusion + c.consistency) / WQ_N,
		s.inclusion, s.consistency, s.n_ends, notes, c.inclusion, c.consistency);
	/* Every receipt carried its checkpoint: no inclusion proof asked
	 * (entry 0's aside, once: the pin). */
	assert_int_equal(s.inclusion, 0);
	assert_int_equal(s.pin, 1);
	/* One consistency proof per checkpoint verified, and one per distinct
	 * receipt checkpoint older than the checkpoint it is checked against
	 * (none for one of the same size). */
	assert_true(s.consistency <= s.n_ends + notes);
	char log[1300];
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
}

/* --- a pending receipt of an older agent ------------------------------------- */

static void test_old_witness_record(void **state)
{
	it_net *n = it_net_new("wq-old", NULL);
	assert_non_null(n);
	*state = n;
	char sent[1300], path[1600], log[1300], data[1300];

	wq_put(n, "old.json", "wq-old-1");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start_ex(n, IT_CPI, "witness = 1s\n"));
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\n"));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	assert_int_equal(wq_wait_count(sent, ".receipt.json", 1, WQ_WAIT), 1);
	assert_true(wq_wait_checked(n, IT_SOCIAL, WQ_WAIT));
	assert_true(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()) != -1);

	/* The receipt as an agent of the version before recorded it: log index
	 * -> the leaf hash alone. */
	json_t *j = tu_load_json(tu_path(path, sizeof(path), "%s/old.json.receipt.json", sent));
	uint64_t index =
	    (uint64_t)strtoull(json_string_value(json_object_get(j, "index")), NULL, 10);
	const char *b64 = json_string_value(json_object_get(j, "leafHash"));
	assert_non_null(b64);
	uint8_t *leaf = NULL;
	size_t leaf_len = 0;
	assert_int_equal(rete_b64_decode(b64, &leaf, &leaf_len), RETE_OK);
	assert_int_equal(leaf_len, RETE_MERKLE_HASH);
	json_decref(j);
	uint8_t key[8];
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(index >> (56 - 8 * i));
	tu_path(data, sizeof(data), "%s/agents/social.mantova/data", n->dir);
	tu_raw_put(data, "witness", key, sizeof(key), leaf, leaf_len);
	free(leaf);
	assert_int_equal(wq_pending(n, IT_SOCIAL), 1);

	/* A new message makes the log grow, so the next checkpoint covers it. */
	wq_put(n, "old2.json", "wq-old-2");
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\n"));
	assert_int_equal(wq_wait_count(sent, ".receipt.json", 2, WQ_WAIT), 2);
	bool checked = wq_wait_checked(n, IT_SOCIAL, WQ_WAIT);
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	if (!checked)
		it_show(n, "social.mantova.log");
	assert_true(checked);
	wq_asked s;
	wq_count_asked(n, it_party_ids[IT_SOCIAL], &s);
	assert_int_equal(s.inclusion, 1); /* the old record's, and only it */
	char needle[100];
	snprintf(needle, sizeof(needle), "witness: receipt %" PRIu64 " included in checkpoint",
		 index);
	assert_true(wq_wait_log(log, needle, WQ_WAIT));
	assert_int_equal(tu_occurrences(log, "WITNESS ALARM"), 0);
}

/* --- a receipt whose checkpoint is not on the log shown ----------------------- */

/* The fake broker's other history: the entry it receipted (index 1) at the
 * same index, after a different first entry, then more up to `size`: its
 * checkpoint of that size includes our entry, but its size-2 tree is not
 * the one the receipt's checkpoint names. */
typedef struct wq_liar {
	it_fake l;
	uint64_t size;
	rete_merkle_mem other;
	bool have_other;
	char *note; /* the checkpoint of the other history (signed) */
	int cons, incl, cps;
} wq_liar;

static void wq_other_history(wq_liar *w)
{
	uint8_t leaf[RETE_MERKLE_HASH], root[RETE_MERKLE_HASH];
	rete_msg m;
	assert_true(w->l.tree.mm_size >= 2); /* the receipt was given */
	rete_merkle_mem_init(&w->other);
	w->have_other = true;
	rete_merkle_leaf_hash(leaf, "another first entry", 19);
	assert_int_equal(rete_merkle_mem_append(&w->other, leaf), RETE_OK);
	assert_int_equal(rete_merkle_mem_get(&w->l.tree, 0, 1, leaf), RETE_OK);
	assert_int_equal(rete_merkle_mem_append(&w->other, leaf), RETE_OK);
	for (uint64_t i = 2; i < w->size; i++) {
		char text[32];
		snprintf(text, sizeof(text), "later entry %" PRIu64, i);
		rete_merkle_leaf_hash(leaf, text, strlen(text));
		assert_int_equal(rete_merkle_mem_append(&w->other, leaf), RETE_OK);
	}
	assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &w->other, w->size, root), RETE_OK);
	uint32_t epoch = w->l.welcome->welcome->epoch ? w->l.welcome->welcome->epoch : 1;
	assert_int_equal(
	    rete_checkpoint_sign_epoch(IT_ORIGIN, w->size, root, epoch, w->l.key, &w->note, &m),
	    RETE_OK);
}

/* wq_liar_query answers the witness's questions from the other history:
 * its checkpoint, honest inclusion and consistency proofs in it; a
 * cosignature is refused. */
static void wq_liar_query(it_fake *l, const void *id, size_t idl, const Rete__Query *q)
{
	wq_liar *w = (wq_liar *)l;
	Rete__QueryResult r = RETE__QUERY_RESULT__INIT;
	if (!w->have_other && l->tree.mm_size >= 2)
		wq_other_history(w);
	/* nothing receipted yet: nothing to show */
	if (w->have_other && q->what_case == RETE__QUERY__WHAT_CHECKPOINT) {
		w->cps++;
		r.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
		r.checkpoint = w->note;
	} else if (w->have_other && q->what_case == RETE__QUERY__WHAT_CONSISTENCY) {
		w->cons++;
	} else if (w->have_other && q->what_case == RETE__QUERY__WHAT_INCLUSION &&
		   q->inclusion->index != 0) {
		w->incl++; /* entry 0's is the witness pinning its leaf, no receipt's */
	}
	it_fake_result(l, id, idl, q, &r, w->have_other, &w->other);
}

/* wq_off_log: the fake receipts one message (index 1, a checkpoint of size
 * 2), then shows the other history of size `size`; the witness must raise
 * the alarm for that receipt, saying `words`, and never ask for an
 * inclusion proof. */
static void wq_off_log(const char *tag, uint64_t size, const char *words)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	char sent[1300], path[1600], log[1300];
	wq_liar w;

	Rete__BrokerFrame *welcome = it_real_welcome(n, IT_SOCIAL);
	/* no checkpoint in the WELCOME: the witness's first is the fake's */
	if (welcome->welcome->checkpoint != NULL && welcome->welcome->checkpoint[0] != '\0')
		welcome->welcome->checkpoint[0] = '\0';
	it_fake_open(&w.l, n, welcome);
	w.size = size;
	w.have_other = false;
	w.note = NULL;
	w.cons = w.incl = w.cps = 0;
	w.l.honest_leaf = true;
	w.l.on_query = wq_liar_query;

	wq_put(n, "off.json", "wq-off-1");
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "witness = 1s\n"));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	/* the honest receipt is taken... */
	it_fake_serve(&w.l, &w.l.receipts, 1, WQ_WAIT);
	/* ...and the witness checks it against the history it is shown */
	int64_t end = wq_deadline(WQ_WAIT);
	while (tu_occurrences(log, "WITNESS ALARM") == 0 &&
	       tu_occurrences(log, "witness: receipt 1 included") == 0 && it_mono_ms() < end)
		it_fake_serve(&w.l, &w.l.hellos, INT32_MAX, 200);
	bool alarm = tu_occurrences(log, "WITNESS ALARM") > 0;
	int incl = w.incl;
	it_fake_close(&w.l);
	if (w.have_other)
		rete_merkle_mem_free(&w.other);
	free(w.note);
	bool taken = tu_exists(tu_path(path, sizeof(path), "%s/off.json.receipt.json", sent));
	bool said = tu_occurrences(log, words) > 0 &&
		    tu_occurrences(log, "WITNESS ALARM: our receipt for log index 1 names a "
					"checkpoint of size 2 (root ") > 0;
	int st = it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms());
	char *kept = wq_meta_alarm(n, IT_SOCIAL);
	bool kept_said = kept != NULL && strstr(kept, words) != NULL;
	free(kept);
	if (!alarm || !said)
		it_show(n, "social.mantova.log");
	bool bad = false;
	it_net_free(&n, false, &bad);
	assert_true(taken);
	assert_true(alarm);
	assert_true(said);
	assert_int_equal(incl, 0); /* the receipt's own proof is not asked again */
	assert_true(kept_said);	   /* the evidence: the sentence kept (meta "alarm") */
	assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_false(bad); /* the agent stopped cleanly */
}

/* test_receipt_off_log: the log shown is larger; the consistency proof
 * from the receipt's checkpoint to it does not verify. */
static void test_receipt_off_log(void **state)
{
	(void)state;
	wq_off_log("wq-offlog", 5,
		   "is not consistent with the checkpoint of size 5 this agent verified: "
		   "consistency proof from size 2 to 5");
}

/* test_receipt_fork: the log shown has the receipt's size and another
 * root: no question is needed to see it. */
static void test_receipt_fork(void **state)
{
	(void)state;
	wq_off_log("wq-fork", 2,
		   "is not consistent with the checkpoint of size 2 this agent verified: two "
		   "checkpoints of one size with different roots (a fork)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_questions_per_message, it_teardown),
	    cmocka_unit_test_teardown(test_old_witness_record, it_teardown),
	    cmocka_unit_test(test_receipt_off_log),
	    cmocka_unit_test(test_receipt_fork),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
