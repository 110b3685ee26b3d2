/* test_edges_broker.c — the broker's side of issue 13's edges, against the
 * real rete-broker (and rete-agent where the agent is the one that prints):
 *
 *   redeliver        a connection that gets a DELIVER and does not ack gets
 *                    it again after `redeliver`, on the same connection,
 *                    without saying HELLO again                 (defect 5a)
 *   second hello     a second connection with the agency's key says HELLO
 *                    and goes away: deliveries to the first one go on
 *                                                                (defect 5b)
 *   max_frame        WELCOME carries the broker's max_frame; the default
 *                    covers the agent's 16 MiB outbox file; a frame over
 *                    the limit is logged naming the party and the limit
 *                                                           (defect 6e)
 *   whole refusal    a lifecycle refusal longer than 256 bytes reaches the
 *                    sender whole (defect 9); an id used again for other
 *                    bytes is refused naming the log entry that holds it
 *   log escape       a peer's text with control characters is escaped in
 *                    the broker's log; an outbox file named with a newline
 *                    cannot forge a line of the agent's log     (defect 10)
 *   secret key       a .key where a .pub is wanted is refused without
 *                    printing the seed (broker.ini, agent.ini)  (defect 11)
 *   stale set-aside  a list of deliveries set aside kept in the store that
 *                    names entries no longer queued, beyond the log or
 *                    twice, one that is not a list, and one of a party
 *                    broker.ini no longer names: the broker starts, keeps
 *                    what still holds, delivers every queued entry (those
 *                    left out in log order), and cleans the lists up;
 *                    of a list longer than the room of a smaller
 *                    delivery_window, what is beyond it is delivered at
 *                    once, in log order                     (session 14)
 *
 * Helpers: itest.h.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <zmq.h>

#include "itest.h"
#include "lifecycle.h"

/* ini_edit rewrites broker.ini of n: the line starting with `drop` (may be
 * NULL) is left out and `add` (may be NULL) is put right after [broker]. */
static void ini_edit(it_net *n, const char *drop, const char *add)
{
	size_t len = 0;
	char *text = tu_read_file(n->ini, &len);
	assert_non_null(text);
	char *out = malloc(len + (add ? strlen(add) : 0) + 2);
	assert_non_null(out);
	size_t o = 0;
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		size_t ll = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (!(drop && strncmp(line, drop, strlen(drop)) == 0)) {
			memcpy(out + o, line, ll);
			o += ll;
			if (add && strncmp(line, "[broker]", 8) == 0) {
				memcpy(out + o, add, strlen(add));
				o += strlen(add);
				out[o++] = '\n';
			}
		}
		line += ll;
	}
	assert_int_equal(tu_write_file(n->ini, out, o), 0);
	free(out);
	free(text);
}

/* deliver_index: the log index of a DELIVER frame (-1 if none). */
static int64_t deliver_index(const Rete__BrokerFrame *f)
{
	if (!f || f->command_case != RETE__BROKER_FRAME__COMMAND_DELIVER)
		return -1;
	Rete__LogEntry *le =
	    rete__log_entry__unpack(NULL, f->deliver->log_entry.len, f->deliver->log_entry.data);
	if (!le)
		return -1;
	int64_t i = (int64_t)le->index;
	rete__log_entry__free_unpacked(le, NULL);
	return i;
}

/* refer sends a referral social -> cpi with id over w and returns its log
 * index (asserting it was accepted). */
static int64_t refer(it_net *n, rete_wire *w, const char *id)
{
	it_msg o;
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, id, &o), RETE_OK);
	Rete__BrokerFrame *f = it_submit(w, &o, it_wait_ms());
	it_msg_free(&o);
	assert_non_null(f);
	int64_t idx = it_receipt_index(n, f);
	if (idx < 0)
		fprintf(stderr, "refused: %s\n", it_answer(f)->error_text);
	rete__broker_frame__free_unpacked(f, NULL);
	assert_true(idx >= 0);
	return idx;
}

/* --- defect 5a: an unacknowledged delivery comes again -------------------- */

static void test_redeliver(void **state)
{
	it_net *n = it_net_new("edges-redeliver", NULL);
	assert_non_null(n);
	*state = n;
	ini_edit(n, NULL, "redeliver = 1s");
	assert_true(it_broker_start(n));

	rete_wire *cpi = it_hello(n, IT_CPI);
	assert_non_null(cpi);
	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	int64_t idx = refer(n, social, "redeliver-1");

	Rete__BrokerFrame *f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms());
	assert_int_equal(deliver_index(f), idx);
	rete__broker_frame__free_unpacked(f, NULL);
	/* not acked: the same entry comes again on the same connection, with
	 * no HELLO in between */
	f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, it_scaled_ms(15000));
	if (!f)
		it_show(n, "broker.log");
	assert_non_null(f); /* the delivery was not sent again */
	assert_int_equal(deliver_index(f), idx);
	assert_int_equal(
	    it_ack_deliver(cpi, n->keys[IT_CPI], it_party_ids[IT_CPI], f->deliver, 0, NULL),
	    RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
	/* acked: the queue is empty (health says so) */
	rete_wire_close(&cpi);
	rete_wire_close(&social);
}

/* --- defect 5b: a second connection that says HELLO and goes away -------- */

static void test_second_hello_gone(void **state)
{
	it_net *n = it_net_new("edges-second", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));

	rete_wire *a = it_hello(n, IT_CPI);
	assert_non_null(a);
	rete_wire *b = it_hello(n, IT_CPI);
	assert_non_null(b);
	/* protocol 5: the first one is told, in a signed refusal, that the
	 * second took the deliveries */
	Rete__BrokerFrame *t = it_recv_kind(a, RETE__BROKER_FRAME__COMMAND_REFUSAL, it_wait_ms());
	assert_non_null(t);
	assert_int_equal(t->refusal->error, RETE__ERROR_CODE__ERROR_CODE_TAKEN_OVER);
	assert_string_equal(t->refusal->field, "hello");
	assert_non_null(strstr(t->refusal->error_text, "another connection with the key of "
						       "cpi.mantova"));
	assert_non_null(t->refusal->signed_refusal);
	rete__broker_frame__free_unpacked(t, NULL);
	rete_wire_close(&b); /* the second connection goes away */

	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	int64_t i1 = refer(n, social, "second-1");
	/* the first connection, still there, gets it (no HELLO again) */
	Rete__BrokerFrame *f =
	    it_recv_kind(a, RETE__BROKER_FRAME__COMMAND_DELIVER, it_scaled_ms(15000));
	if (!f)
		it_show(n, "broker.log");
	assert_non_null(f); /* deliveries went to the connection that left */
	assert_int_equal(deliver_index(f), i1);
	assert_int_equal(
	    it_ack_deliver(a, n->keys[IT_CPI], it_party_ids[IT_CPI], f->deliver, 0, NULL), RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
	/* and the next one too */
	int64_t i2 = refer(n, social, "second-2");
	f = it_recv_kind(a, RETE__BROKER_FRAME__COMMAND_DELIVER, it_scaled_ms(15000));
	assert_int_equal(deliver_index(f), i2);
	assert_int_equal(
	    it_ack_deliver(a, n->keys[IT_CPI], it_party_ids[IT_CPI], f->deliver, 0, NULL), RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&a);
	rete_wire_close(&social);
}

/* --- defect 6e: max_frame in WELCOME, its default, the log line ------------ */

static uint64_t welcome_max_frame(it_net *n, int who)
{
	rete_wire *w = it_connect(n, who);
	assert_non_null(w);
	assert_int_equal(rete_wire_hello(w, it_party_ids[who], "itest", NULL), RETE_OK);
	Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
	assert_non_null(f);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_WELCOME);
	uint64_t mf = f->welcome->max_frame;
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	return mf;
}

static void test_max_frame(void **state)
{
	it_net *n = it_net_new("edges-maxframe", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	/* itest.h's broker.ini says max_frame = 4MiB */
	assert_int_equal(welcome_max_frame(n, IT_SOCIAL), 4u << 20);

	/* a frame over it: ZeroMQ drops the connection; the log names the
	 * party and the limit */
	rete_wire *w = it_hello(n, IT_SOCIAL);
	assert_non_null(w);
	size_t big = (5u << 20);
	char *junk = calloc(1, big);
	assert_non_null(junk);
	assert_int_equal(zmq_send(rete_wire_socket(w), junk, big, 0), (int)big);
	free(junk);
	bool named = it_wait_occurrences(n->log, "social.mantova closed", 1, it_wait_ms());
	if (!named)
		it_show(n, "broker.log");
	assert_true(named);
	assert_true(it_wait_occurrences(n->log, "max_frame (4194304 bytes)", 1, it_wait_ms()));
	rete_wire_close(&w);

	/* the default covers the agent's own 16 MiB outbox file, sealed and
	 * signed, with room to spare */
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) >= 0, 1);
	ini_edit(n, "max_frame", NULL);
	assert_true(it_broker_start(n));
	uint64_t def = welcome_max_frame(n, IT_SOCIAL);
	fprintf(stderr, "default max_frame: %llu bytes\n", (unsigned long long)def);
	assert_true(def >= (16u << 20) + (4u << 20));
}

/* --- defect 9: a long refusal arrives whole -------------------------------- */

static void test_whole_refusal(void **state)
{
	it_net *n = it_net_new("edges-refusal", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	/* long (but valid) ids make the sentence long */
	const char *ref = "referral-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	const char *upd = "update-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	int64_t ref_index = refer(n, social, ref);

	/* the requester may not start the work: a lifecycle refusal */
	Rete__Operator op = RETE__OPERATOR__INIT;
	op.staff_id = "as-042";
	op.role = "social-worker";
	Rete__ReferralUpdate u = RETE__REFERRAL_UPDATE__INIT;
	u.referral_id = (char *)ref;
	u.status = RETE__STATUS__STATUS_IN_PROGRESS;
	Rete__Message msg;
	it_update_msg(&msg, upd, &op, it_party_ids[IT_CPI], &u);
	assert_int_equal(it_sign_send(social, &msg, it_party_ids[IT_SOCIAL], IT_ORIGIN, "case-7",
				      n->keys[IT_SOCIAL], NULL, 0),
			 RETE_OK);
	Rete__BrokerFrame *f =
	    it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_RECEIPT, it_wait_ms());
	assert_non_null(f);
	const Rete__Receipt *r = it_answer(f);
	fprintf(stderr, "refusal (%zu bytes): %s\n", strlen(r->error_text), r->error_text);
	assert_int_equal(r->error, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE);
	const char *why = NULL;
	assert_false(rete_lifecycle_check(RETE__STATUS__STATUS_REQUESTED,
					  RETE__STATUS__STATUS_IN_PROGRESS, RETE_ROLE_REQUESTER,
					  &why));
	assert_non_null(why);
	size_t tl = strlen(r->error_text), wl = strlen(why);
	assert_true(tl > 256);
	/* whole: it ends with the whole of what the requester may do */
	assert_true(tl >= wl);
	assert_string_equal(r->error_text + tl - wl, why);
	rete__broker_frame__free_unpacked(f, NULL);

	/* the same id with other bytes: ID_REUSED names the entry holding it */
	it_msg o;
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, ref, &o), RETE_OK);
	f = it_submit(social, &o, it_wait_ms());
	it_msg_free(&o);
	assert_non_null(f);
	r = it_answer(f);
	fprintf(stderr, "id reused: %s\n", r->error_text);
	assert_int_equal(r->error, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED);
	char entry[64];
	snprintf(entry, sizeof(entry), "log entry %lld holds it", (long long)ref_index);
	assert_non_null(strstr(r->error_text, entry));
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&social);
}

/* --- defect 10: log lines escape what comes from outside --------------------- */

struct notice_find {
	bool found;
	char text[1024];
};

static void notice_each(void *ctx, uint64_t index, const Rete__Message *msg)
{
	(void)index;
	struct notice_find *nf = ctx;
	if (msg->body_case == RETE__MESSAGE__BODY_NOTICE &&
	    msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED) {
		nf->found = true;
		snprintf(nf->text, sizeof(nf->text), "%s", msg->notice->text);
	}
}

static void test_broker_log_escape(void **state)
{
	it_net *n = it_net_new("edges-brokerlog", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	rete_wire *w = it_connect(n, IT_SOCIAL);
	assert_non_null(w);
	assert_int_equal(
	    rete_wire_hello(w, it_party_ids[IT_SOCIAL], "evil\x1b[31mred\nERROR forged\\x", NULL),
	    RETE_OK);
	Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
	assert_non_null(f);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	bool seen =
	    it_wait_occurrences(n->log, "evil\\x1b[31mred\\nERROR forged\\\\x", 1, it_wait_ms());
	if (!seen)
		it_show(n, "broker.log");
	assert_true(seen);

	/* a recipient's reason for refusing a delivery: escaped in the Notice
	 * the sender gets (the permanent log); the broker's log line names
	 * only its code (attack report s12, 4), so not even escaped there */
	rete_wire *cpi = it_hello(n, IT_CPI);
	assert_non_null(cpi);
	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	int64_t idx = refer(n, social, "escape-1");
	f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms());
	assert_int_equal(deliver_index(f), idx);
	assert_int_equal(it_ack_deliver(cpi, n->keys[IT_CPI], it_party_ids[IT_CPI], f->deliver,
					RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN,
					"bad\x1b[2Jthing\nWITNESS ALARM"),
			 RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
	assert_true(it_wait_occurrences(n->log, "refused delivery of entry", 1, it_wait_ms()));
	assert_int_equal(tu_occurrences(n->log, "(error cannot-open)"), 1);
	assert_int_equal(tu_occurrences(n->log, "2Jthing"), 0);
	struct notice_find nf = {0};
	for (int64_t end = it_mono_ms() + it_wait_ms(); !nf.found && it_mono_ms() < end;)
		it_log_each(n, notice_each, &nf); /* until the Notice is logged */
	assert_true(nf.found);
	fprintf(stderr, "notice: %s\n", nf.text);
	assert_non_null(strstr(nf.text, "bad\\x1b[2Jthing\\nWITNESS ALARM"));
	assert_null(strchr(nf.text, 0x1b));
	assert_null(strchr(nf.text, '\n'));
	rete_wire_close(&cpi);
	rete_wire_close(&social);

	char *text = tu_read_file(n->log, NULL);
	assert_non_null(text);
	assert_null(strchr(text, 0x1b));
	assert_null(strstr(text, "\nERROR forged"));
	assert_null(strstr(text, "\nWITNESS ALARM"));
	free(text);
}

/* count_forged: lines of text starting with `forged`; *with: the lines
 * holding `words`. */
static int count_forged(const char *text, const char *forged, const char *words, int *with)
{
	int n = 0;
	*with = 0;
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		if (strncmp(line, forged, strlen(forged)) == 0)
			n++;
		if (memmem(line, ll, words, strlen(words)))
			(*with)++;
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

static void test_agent_log_escape(void **state)
{
	it_net *n = it_net_new("edges-agentlog", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	char dir[1300], tmp[1600], name[1600];
	it_spool(n, IT_SOCIAL, "outbox", dir, sizeof(dir));
	const char *forged = "2026-01-01T00:00:00.000Z rete-agent social.mantova error";
	snprintf(tmp, sizeof(tmp), "%s/.incoming", dir);
	snprintf(name, sizeof(name), "%s/x\n%s: WITNESS ALARM the broker lies.json", dir, forged);
	assert_int_equal(tu_write_file(tmp, "{ not json", 10), 0);
	assert_int_equal(rename(tmp, name), 0);

	char log[1300];
	snprintf(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	bool seen = it_wait_occurrences(log, "WITNESS ALARM the broker lies", 1, it_wait_ms());
	char *text = tu_read_file(log, NULL);
	if (!seen || !text)
		it_show(n, "social.mantova.log");
	assert_true(seen);
	assert_non_null(text);
	int with = 0;
	int nforged = count_forged(text, forged, "WITNESS ALARM", &with);
	if (nforged)
		fprintf(stderr, "forged lines: %d\n%s\n", nforged, text);
	assert_int_equal(nforged, 0);
	assert_true(with >= 1);
	/* every line the agent wrote starts with a time and rete-agent */
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (strncmp(line, "==", 2) != 0) /* valgrind's, when under it */
			assert_non_null(memmem(line, nl ? (size_t)(nl - line) : strlen(line),
					       " rete-agent ", 12));
		line = nl ? nl + 1 : NULL;
	}
	free(text);
}

/* --- defect 11: no secret in a refusal ----------------------------------------- */

/* seed_b64: the base64 line of DIR/keys/ID.key (caller frees). */
static char *seed_b64(const it_net *n, const char *id)
{
	char path[1300];
	snprintf(path, sizeof(path), "%s/keys/%s.key", n->dir, id);
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	char *nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	assert_true(strlen(text) >= 40);
	return text;
}

static void test_secret_key_refused(void **state)
{
	it_net *n = it_net_new("edges-secret", NULL);
	assert_non_null(n);
	*state = n;
	/* the job centre's key = its .key file */
	size_t len = 0;
	char *ini = tu_read_file(n->ini, &len);
	assert_non_null(ini);
	char *at = strstr(ini, "key = keys/cpi.mantova.pub");
	assert_non_null(at);
	memcpy(strstr(at, ".pub"), ".key", 4);
	assert_int_equal(tu_write_file(n->ini, ini, len), 0);
	free(ini);
	char *seed = seed_b64(n, "cpi.mantova");
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete-broker' -c '%s' --check-config", n->bin, n->ini);
	fprintf(stderr, "%s", out ? out : "");
	assert_int_equal(rc, 2);
	assert_non_null(out);
	assert_null(strstr(out, seed)); /* the seed was printed */
	assert_non_null(strstr(out, "looks like a secret key file"));
	free(out);
	/* starting it: the same */
	rc = tu_run(&out, "'%s/rete-broker' -c '%s'", n->bin, n->ini);
	assert_int_equal(rc, 2);
	assert_null(strstr(out, seed));
	free(out);
	free(seed);

	/* the agent's broker_key pointing at the broker's .key (its spool
	 * folders made, so that the key is the one thing wrong) */
	it_write_agent_ini(n, IT_SOCIAL);
	char path[1300];
	static const char *const subs[] = {"", "outbox", "sent", "failed", "inbox"};
	for (int i = 0; i < 5; i++)
		mkdir(it_spool(n, IT_SOCIAL, subs[i], path, sizeof(path)), 0755);
	snprintf(path, sizeof(path), "%s/agents/%s/agent.ini", n->dir, it_party_ids[IT_SOCIAL]);
	char *aini = tu_read_file(path, &len);
	assert_non_null(aini);
	at = strstr(aini, IT_BROKER_ID ".pub");
	assert_non_null(at);
	memcpy(strstr(at, ".pub"), ".key", 4);
	assert_int_equal(tu_write_file(path, aini, len), 0);
	free(aini);
	seed = seed_b64(n, IT_BROKER_ID);
	rc = tu_run(&out, "cd '%s/agents/%s' && '%s/rete-agent' -c agent.ini", n->dir,
		    it_party_ids[IT_SOCIAL], n->bin);
	fprintf(stderr, "%s", out ? out : "");
	assert_int_equal(rc, 2);
	assert_null(strstr(out, seed)); /* the seed was printed */
	assert_non_null(strstr(out, "looks like a secret key file"));
	free(out);
	free(seed);
}

/* --- session 14: a stale or damaged list of what is set aside -------------- */

/* meta_put writes meta key = val[0:len] of the store in dir behind the
 * broker's back (stopped), as a damaged or stale store would hold it. */
static void meta_put(const char *dir, const char *key, const void *val, size_t len)
{
	tu_raw_put(dir, "meta", key, strlen(key), val, len);
}

/* meta_has: does the store in dir hold meta key? */
static bool meta_has(const char *dir, const char *key)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val k = {strlen(key), (void *)key}, v;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	bool has = mdb_get(txn, meta, &k, &v) == 0;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return has;
}

/* be64_list writes the n indexes as the broker keeps them (BE64 each). */
static size_t be64_list(uint8_t *out, const uint64_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			out[i * 8 + (size_t)b] = (uint8_t)(idx[i] >> (56 - 8 * b));
	return n * 8;
}

/* parked_net starts a broker (delivery_window window, redeliver far
 * beyond the test) and has social.mantova send cpi.mantova nref referrals
 * (ids tag-K), their indexes in idx; cpi.mantova is not connected. */
static it_net *parked_net(void **state, const char *tag, unsigned window, int nref, uint64_t *idx)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	n->window = window;
	assert_int_equal(it_write_ini(n), 0);
	ini_edit(n, NULL, "redeliver = 10m");
	assert_true(it_broker_start(n));
	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	for (int k = 0; k < nref; k++) {
		char id[32];
		snprintf(id, sizeof(id), "%s-%d", tag, k);
		idx[k] = (uint64_t)refer(n, social, id);
	}
	rete_wire_close(&social);
	return n;
}

static void test_parked_stale(void **state)
{
	enum { NREF = 5 };
	uint64_t idx[NREF];
	it_net *n = parked_net(state, "edges-parked", 2, NREF, idx);
	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	/* an entry queued for another party */
	it_msg o;
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_FAMILY, "parked-family", &o), RETE_OK);
	Rete__BrokerFrame *f = it_submit(social, &o, it_wait_ms());
	it_msg_free(&o);
	int64_t other = it_receipt_index(n, f);
	rete__broker_frame__free_unpacked(f, NULL);
	assert_true(other >= 0);
	rete_wire_close(&social);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);

	/* cpi.mantova's list: two entries still queued for it, one queued for
	 * family.mantova, one beyond the log, one named twice; asst.mantova's
	 * is not a list; gone.party is not in broker.ini */
	uint64_t cpi[] = {idx[0], idx[2], (uint64_t)other, 1000000, idx[2]};
	uint8_t buf[sizeof(cpi)];
	meta_put(n->data, "parked/cpi.mantova", buf, be64_list(buf, cpi, 5));
	meta_put(n->data, "parked/asst.mantova", "\1\2\3\4\5\6\7", 7);
	uint64_t gone[] = {idx[1]};
	meta_put(n->data, "parked/gone.party", buf, be64_list(buf, gone, 1));

	assert_true(it_broker_start(n));
	assert_true(it_wait_occurrences(
	    n->log,
	    "cpi.mantova: 2 deliveries it read and left unacknowledged before the restart stay "
	    "set aside (the list kept in the store)",
	    1, it_wait_ms()));
	assert_true(tu_occurrences(n->log, "when it connects; left out of it: 2 no longer queued "
					   "for it") == 1);
	assert_true(tu_occurrences(n->log, "'parked/asst.mantova') is 7 bytes") == 1);
	assert_true(tu_occurrences(n->log, "set aside of gone.party is removed from the store: "
					   "broker.ini names no such party") == 1);

	/* every entry queued for cpi comes, acked as it comes: the ones kept
	 * aside first, at once, then the others, in log order */
	rete_wire *w = it_hello(n, IT_CPI);
	assert_non_null(w);
	int64_t got[NREF];
	int ngot = 0;
	while (ngot < NREF) {
		uint64_t acked = 0;
		f = it_recv_acking(w, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms(),
				   n->keys[IT_CPI], it_party_ids[IT_CPI], &acked);
		if (!f) {
			it_show(n, "broker.log");
			fail_msg("FAIL: %d of the %d entries queued for cpi.mantova were delivered "
				 "after a start on a stale list of what is set aside",
				 ngot, NREF);
		}
		int64_t i = deliver_index(f);
		rete__broker_frame__free_unpacked(f, NULL);
		bool seen = false;
		for (int k = 0; k < ngot; k++)
			seen = seen || got[k] == i;
		if (!seen)
			got[ngot++] = i;
	}
	assert_int_equal(got[0], idx[0]);
	assert_int_equal(got[1], idx[2]);
	assert_int_equal(got[2], idx[1]);
	assert_int_equal(got[3], idx[3]);
	assert_int_equal(got[4], idx[4]);
	/* each acked once: its Delivery logged */
	for (int k = 0; k < NREF; k++) {
		char line[64];
		snprintf(line, sizeof(line), "logged delivery delivery-%" PRIu64 " ", idx[k]);
		if (!it_wait_occurrences(n->log, line, 1, it_wait_ms()))
			fail_msg("FAIL: no Delivery logged for entry %" PRIu64, idx[k]);
	}
	rete_wire_close(&w);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	/* the lists were cleaned up: nothing is set aside any more */
	assert_false(meta_has(n->data, "parked/cpi.mantova"));
	assert_false(meta_has(n->data, "parked/asst.mantova"));
	assert_false(meta_has(n->data, "parked/gone.party"));
}

/* A list kept under a larger delivery_window than the one in force (64
 * per slot): what is beyond the room of the window now is left out and
 * delivered as any queued entry, in log order, at once; the rest stays
 * set aside and comes first, in log order. */
static void test_parked_window_shrunk(void **state)
{
	enum { NREF = 66, ROOM = 64 }; /* delivery_window 1 */
	uint64_t idx[NREF];
	it_net *n = parked_net(state, "edges-parkwin", 1, NREF, idx);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	uint8_t buf[NREF * 8];
	meta_put(n->data, "parked/cpi.mantova", buf, be64_list(buf, idx, NREF));

	assert_true(it_broker_start(n));
	assert_true(it_wait_occurrences(
	    n->log, "cpi.mantova: 64 deliveries it read and left unacknowledged", 1, it_wait_ms()));
	assert_true(tu_occurrences(n->log, "left out of it: 2 beyond the room of the "
					   "delivery_window in force (64 entries") == 1);
	rete_wire *w = it_hello(n, IT_CPI);
	assert_non_null(w);
	/* the two left out come at once, in log order, while what is set
	 * aside comes one chunk (one entry) per heartbeat, in log order */
	int64_t last_aside = -1, last_window = -1;
	int window_got = 0;
	while (window_got < NREF - ROOM) {
		Rete__BrokerFrame *f =
		    it_recv_acking(w, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms(),
				   n->keys[IT_CPI], it_party_ids[IT_CPI], NULL);
		if (!f) {
			it_show(n, "broker.log");
			fail_msg("FAIL: %d of the %d entries beyond the room of the smaller "
				 "delivery_window were delivered",
				 window_got, NREF - ROOM);
		}
		int64_t i = deliver_index(f);
		rete__broker_frame__free_unpacked(f, NULL);
		if (i >= (int64_t)idx[ROOM]) { /* left out: in the window, in log order */
			assert_true(i > last_window);
			last_window = i;
			window_got++;
		} else { /* set aside: in its rounds, in log order */
			assert_true(i > last_aside);
			last_aside = i;
		}
	}
	assert_int_equal(last_window, (int64_t)idx[NREF - 1]);
	rete_wire_close(&w);
}

/* A list longer than the room in force whose first `room` entries are
 * no longer queued (here beyond the log): the line says that none of
 * those read is queued, and counts the ones beyond the room apart, not
 * among them (rev-final s14, 6); those are delivered at once. */
static void test_parked_none_read(void **state)
{
	enum { ROOM = 64, NLIST = ROOM + 2 }; /* delivery_window 1 */
	uint64_t idx[2], list[NLIST];
	it_net *n = parked_net(state, "edges-parknone", 1, 2, idx);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	for (int k = 0; k < ROOM; k++)
		list[k] = 1000000 + (uint64_t)k;
	list[ROOM] = idx[0];
	list[ROOM + 1] = idx[1];
	uint8_t buf[NLIST * 8];
	meta_put(n->data, "parked/cpi.mantova", buf, be64_list(buf, list, NLIST));

	assert_true(it_broker_start(n));
	const char *said = "cpi.mantova: none of the first 64 of the 66 deliveries set aside "
			   "before the restart (the room of the delivery_window in force) is "
			   "still queued for it: its list is removed; left out of it: 64 no "
			   "longer queued for it";
	if (!it_wait_occurrences(n->log, "deliveries set aside before the restart", 1,
				 it_wait_ms()) ||
	    tu_occurrences(n->log, said) != 1) {
		it_show(n, "broker.log");
		fail_msg("FAIL: the start's line on a list whose entries read are all gone does "
			 "not say \"%s\"",
			 said);
	}
	assert_int_equal(tu_occurrences(n->log, "2 beyond the room of the delivery_window in "
						"force (64 entries"),
			 1);
	/* the two beyond the room: delivered at once, in log order */
	rete_wire *w = it_hello(n, IT_CPI);
	assert_non_null(w);
	for (int k = 0; k < 2; k++) {
		Rete__BrokerFrame *f =
		    it_recv_acking(w, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms(),
				   n->keys[IT_CPI], it_party_ids[IT_CPI], NULL);
		if (!f) {
			it_show(n, "broker.log");
			fail_msg("FAIL: entry %" PRIu64 ", beyond the room of the list, was not "
				 "delivered",
				 idx[k]);
		}
		assert_int_equal(deliver_index(f), (int64_t)idx[k]);
		rete__broker_frame__free_unpacked(f, NULL);
	}
	rete_wire_close(&w);
}

/* Keys under "parked/" that name no party (an empty id, an id longer than
 * a party's) and a party no longer in broker.ini: all removed at the
 * first start, by their keys as they are, each said once; none stops the
 * others' removal, and a second start has nothing to remove (review s14
 * rev-setaside, 3). */
static void test_parked_stray_keys(void **state)
{
	uint64_t idx[1];
	it_net *n = parked_net(state, "edges-parkstray", 2, 1, idx);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	uint8_t buf[8];
	char longkey[128];
	snprintf(longkey, sizeof(longkey), "parked/%070d", 7); /* a 70-byte id */
	meta_put(n->data, "parked/", buf, be64_list(buf, idx, 1));
	meta_put(n->data, longkey, buf, be64_list(buf, idx, 1));
	meta_put(n->data, "parked/gone.party", buf, be64_list(buf, idx, 1));
	for (int start = 1; start <= 2; start++) {
		assert_true(it_broker_start(n));
		assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
		if (meta_has(n->data, "parked/") || meta_has(n->data, longkey) ||
		    meta_has(n->data, "parked/gone.party")) {
			it_show(n, "broker.log");
			fail_msg("FAIL: start %d: a stray list of deliveries set aside is still in "
				 "the store ('parked/' %s, the 70-byte id %s, gone.party %s)",
				 start, meta_has(n->data, "parked/") ? "there" : "gone",
				 meta_has(n->data, longkey) ? "there" : "gone",
				 meta_has(n->data, "parked/gone.party") ? "there" : "gone");
		}
	}
	assert_int_equal(tu_occurrences(n->log, "is removed from the store: broker.ini names no "
						"such party"),
			 3);
	assert_int_equal(tu_occurrences(n->log, "'parked/' with no party id"), 1);
	assert_int_equal(tu_occurrences(n->log, "'parked/' and 70 bytes, where a party id has "
						"at most 63"),
			 1);
	assert_int_equal(tu_occurrences(n->log, "cannot remove the lists"), 0);
}

/* The headline case (review s14 rev-setaside, 5): a list of what is set
 * aside is in the store; then one entry of it is acked and another is
 * withdrawn by expiry, and the broker is killed (SIGKILL) at once. After
 * the restart neither is sent again, and every other one is delivered. */
static void test_parked_ack_expire_crash(void **state)
{
	enum { GAP_S = 8, EXPIRY_S = 14 };
	uint64_t idx[4]; /* idx[0] expires; idx[1] is acked; idx[2], idx[3] wait */
	it_net *n = parked_net(state, "edges-parkcrash", 2, 1, idx);
	int64_t t0 = it_mono_ms();
	/* the others logged GAP_S later, so that idx[0] alone expires in the
	 * second run (a wait to set the case up, not an assertion) */
	while (it_mono_ms() - t0 < GAP_S * 1000)
		usleep(100000);
	rete_wire *social = it_connect(n, IT_SOCIAL);
	assert_non_null(social);
	for (int k = 1; k < 4; k++) {
		char id[32];
		snprintf(id, sizeof(id), "edges-parkcrash-late-%d", k);
		idx[k] = (uint64_t)refer(n, social, id);
	}
	rete_wire_close(&social);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	/* the list as written before: all four set aside */
	uint8_t buf[4 * 8];
	meta_put(n->data, "parked/cpi.mantova", buf, be64_list(buf, idx, 4));
	char exp[32];
	snprintf(exp, sizeof(exp), "expiry = %ds", EXPIRY_S);
	ini_edit(n, "expiry =", exp);
	assert_true(it_broker_start(n));
	assert_true(
	    it_wait_occurrences(n->log, "cpi.mantova: 4 deliveries it read", 1, it_wait_ms()));

	/* idx[1] is acked as it comes (the set-aside ones come first) */
	rete_wire *w = it_hello(n, IT_CPI);
	assert_non_null(w);
	bool acked = false;
	while (!acked) {
		Rete__BrokerFrame *f =
		    it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms());
		if (!f) {
			it_show(n, "broker.log");
			fail_msg("FAIL: entry %" PRIu64 ", set aside, was not delivered", idx[1]);
		}
		if (deliver_index(f) == (int64_t)idx[1]) {
			assert_int_equal(it_ack_deliver(w, n->keys[IT_CPI], it_party_ids[IT_CPI],
							f->deliver, 0, NULL),
					 RETE_OK);
			acked = true;
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
	char line[96];
	snprintf(line, sizeof(line), "logged delivery delivery-%" PRIu64 " ", idx[1]);
	assert_true(it_wait_occurrences(n->log, line, 1, it_wait_ms()));
	char wline[96];
	snprintf(wline, sizeof(wline), "(entry %" PRIu64 "): undelivered after", idx[0]);
	assert_true(it_wait_occurrences(n->log, wline, 1, it_wait_ms()));
	/* killed at once: the stored list may still name both */
	assert_true(WIFSIGNALED(it_stop(&n->broker_pid, SIGKILL, it_wait_ms())));
	rete_wire_close(&w);
	if (it_mono_ms() - t0 >= (GAP_S + EXPIRY_S) * 1000)
		skip(); /* too slow a machine: the others expired too */

	ini_edit(n, "expiry =", "expiry = 5d");
	assert_true(it_broker_start(n));
	w = it_hello(n, IT_CPI);
	assert_non_null(w);
	int got = 0;
	while (got < 2) {
		uint64_t a = 0;
		Rete__BrokerFrame *f =
		    it_recv_acking(w, RETE__BROKER_FRAME__COMMAND_DELIVER, it_wait_ms(),
				   n->keys[IT_CPI], it_party_ids[IT_CPI], &a);
		if (!f) {
			it_show(n, "broker.log");
			fail_msg(
			    "FAIL: %d of the 2 entries still set aside were delivered after the "
			    "broker was killed",
			    got);
		}
		int64_t i = deliver_index(f);
		rete__broker_frame__free_unpacked(f, NULL);
		if (i == (int64_t)idx[0] || i == (int64_t)idx[1])
			fail_msg("FAIL: entry %" PRId64 " (%s after the list was written) was sent "
				 "again after the broker was killed",
				 i, i == (int64_t)idx[0] ? "withdrawn by expiry" : "acked");
		if (i == (int64_t)idx[2 + got])
			got++;
	}
	for (int k = 2; k < 4; k++) {
		snprintf(line, sizeof(line), "logged delivery delivery-%" PRIu64 " ", idx[k]);
		if (!it_wait_occurrences(n->log, line, 1, it_wait_ms()))
			fail_msg("FAIL: no Delivery logged for entry %" PRIu64, idx[k]);
	}
	snprintf(line, sizeof(line), "logged delivery delivery-%" PRIu64 " ", idx[1]);
	assert_int_equal(tu_occurrences(n->log, line), 1);
	rete_wire_close(&w);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_redeliver, it_teardown),
	    cmocka_unit_test_teardown(test_second_hello_gone, it_teardown),
	    cmocka_unit_test_teardown(test_max_frame, it_teardown),
	    cmocka_unit_test_teardown(test_whole_refusal, it_teardown),
	    cmocka_unit_test_teardown(test_broker_log_escape, it_teardown),
	    cmocka_unit_test_teardown(test_agent_log_escape, it_teardown),
	    cmocka_unit_test_teardown(test_secret_key_refused, it_teardown),
	    cmocka_unit_test_teardown(test_parked_stale, it_teardown),
	    cmocka_unit_test_teardown(test_parked_window_shrunk, it_teardown),
	    cmocka_unit_test_teardown(test_parked_none_read, it_teardown),
	    cmocka_unit_test_teardown(test_parked_stray_keys, it_teardown),
	    cmocka_unit_test_teardown(test_parked_ack_expire_crash, it_teardown),
	};
	if (getenv("RETE_TEST_ONLY"))
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
