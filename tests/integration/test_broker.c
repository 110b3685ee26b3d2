/* test_broker.c — the real rete-broker, started by the test, spoken to
 * through the wire library: acceptance, refusals, delivery, receipts,
 * expiry, a kill -9 under load, garbage on the wire, a reload.
 *
 * Each test writes keys and a broker.ini into a fresh temporary folder,
 * starts the broker (fork/exec) on ipc:// endpoints in that folder, waits
 * for it by pinging (never by sleeping), and kills and reaps it in every
 * path (teardown). The broker's log is kept in the folder and printed when
 * a test fails.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "codec.h"
#include "duration.h"
#include "checkpoint.h"
#include "keys.h"
#include "merkle.h"
#include "store_identity.h"
#include "testutil.h"
#include "wire.h"

#include "../integration/itest.h"

#define BROKER_ID "broker.mantova"
#define ORIGIN	  "rete.example/mantova"
#define WAIT_MS	  it_scaled_ms(10000) /* ms; longer under valgrind */

enum { P_SOCIAL, P_CPI, P_ASST, P_COORD, P_AUDIT, P_STRANGER, NPARTIES };
static const char *const party_ids[NPARTIES] = {"social.mantova", "cpi.mantova",  "asst.mantova",
						"coord.mantova",  "audit.region", "stranger.x"};

struct env {
	it_home h; /* keys[i] is party_ids[i]'s */
	const char *expiry;
	const char *max_frame;
	const char *routine; /* the routine limit ("5wd" when NULL) */
	bool with_asst;
};

/* checkpoint_every of the next env_new ("1000", the default, when NULL) */
static const char *next_checkpoint_every;

static void write_ini(struct env *e)
{
	FILE *f = fopen(e->h.ini, "w");
	assert_non_null(f);
	fprintf(f,
		"; written by test_broker\n"
		"[broker]\n"
		"origin = " ORIGIN "\n"
		"id = " BROKER_ID "\n"
		"key = keys/" BROKER_ID ".key\n"
		"listen = %s\n"
		"events = %s\n"
		"data = store\n"
		"checkpoint_interval = 1s\n"
		"checkpoint_every = %s\n"
		"expiry = %s\n"
		"heartbeat = 1s\n"
		"max_frame = %s\n"
		"verify_threads = 2\n"
		"delivery_window = 16\n\n"
		"[limits]\nroutine = %s\nurgent = 1wd\nemergency = 4h\n\n"
		"[agency social.mantova]\nname = Servizi sociali\nkind = social-services\n"
		"key = keys/social.mantova.pub\nservices = family-support\n\n"
		"[agency cpi.mantova]\nname = Centro per l'Impiego\nkind = job-centre\n"
		"key = keys/cpi.mantova.pub\n"
		"services = employment-orientation, training-voucher\n\n",
		e->h.listen, e->h.events, next_checkpoint_every ? next_checkpoint_every : "1000",
		e->expiry ? e->expiry : "5d", e->max_frame ? e->max_frame : "4MiB",
		e->routine ? e->routine : "5wd");
	if (e->with_asst)
		fprintf(f, "[agency asst.mantova]\nname = ASST\nkind = health\n"
			   "key = keys/asst.mantova.pub\n"
			   "services = psychological-support, paediatrics\n"
			   "consent_services = psychological-support\n\n");
	fprintf(f, "[agency coord.mantova]\nname = Coordinamento\nkind = coordinator\n"
		   "key = keys/coord.mantova.pub\n\n"
		   "[agency audit.region]\nname = Regione\nkind = auditor\n"
		   "key = keys/audit.region.pub\n\n"
		   "[policy]\nroutes = social-services>job-centre, social-services>health, "
		   "job-centre>social-services\n");
	assert_int_equal(fclose(f), 0);
}

static void broker_start(struct env *e)
{
	assert_true(it_home_start(&e->h, true));
}

/* broker_alive: the broker process has not exited. */
static bool broker_alive(struct env *e)
{
	int st;
	return e->h.pid > 0 && waitpid(e->h.pid, &st, WNOHANG) == 0;
}

static rete_wire *connect_as(struct env *e, int who)
{
	rete_wire *w = NULL;
	rete_msg m;
	rete_err err = rete_wire_connect(&w, e->h.listen, &e->h.broker->pub, e->h.keys[who], &m);
	if (err != RETE_OK)
		fprintf(stderr, "connect: %s\n", m.text);
	assert_int_equal(err, RETE_OK);
	return w;
}

/* wait_ready pings the broker as the coordinator until it answers. */
static void wait_ready(struct env *e)
{
	rete_wire *w = connect_as(e, P_COORD);
	bool ok = it_home_ready(&e->h, w, WAIT_MS);
	rete_wire_close(&w);
	assert_true(ok);
}

static struct env *env_new_ex(const char *expiry, const char *max_frame, bool with_asst,
			      const char *routine)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	assert_int_equal(it_home_open(&e->h, "broker", party_ids, NPARTIES), RETE_OK);
	e->expiry = expiry;
	e->max_frame = max_frame;
	e->with_asst = with_asst;
	e->routine = routine;
	write_ini(e);
	broker_start(e);
	wait_ready(e);
	return e;
}

static struct env *env_new(const char *expiry, const char *max_frame, bool with_asst)
{
	return env_new_ex(expiry, max_frame, with_asst, NULL);
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (!e)
		return 0;
	int rc = 0;
	if (e->h.pid > 0) {
		/* a clean stop exits 0 (under ASan: also without leaks) */
		int st = it_stop(&e->h.pid, SIGTERM, WAIT_MS);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "the broker did not stop cleanly (status %d)\n", st);
			rc = -1;
		}
		if (rc != 0)
			it_show_path(e->h.log, 0);
	}
	it_home_close(&e->h);
	free(e);
	*state = NULL;
	return rc;
}

/* --- messages ---------------------------------------------------------------- */

/* make_referral signs a referral from party `from` to `to`. */
static void make_referral(struct env *e, int from, int to, const char *id, const char *service,
			  bool consent, const rete_seckey *signer, const char *sender, it_msg *o)
{
	it_ref r = {.id = id,
		    .sender = sender ? sender : party_ids[from],
		    .signer = signer ? signer : e->h.keys[from],
		    .recipient = party_ids[to],
		    .seal_to = &e->h.keys[to]->pub,
		    .service = service,
		    .origin = ORIGIN,
		    .no_consent = !consent};
	assert_int_equal(it_referral_sign(&r, o), RETE_OK);
}

/* make_update_ex signs an update; staff (NULL: "x-1") names the operator and
 * reason_text (NULL: none) is put in the status reason's free text, which
 * protocol 3 refuses in the metadata. */
static void make_update_ex(struct env *e, int from, int to, const char *id, const char *ref,
			   Rete__Status status, const char *staff, const char *reason_text,
			   it_msg *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", id);
	Rete__Operator op = RETE__OPERATOR__INIT;
	op.staff_id = (char *)(staff ? staff : "x-1");
	op.role = "case-manager";
	Rete__StatusReason sr = RETE__STATUS_REASON__INIT;
	sr.code = "no-longer-needed";
	if (reason_text != NULL)
		sr.text = (char *)reason_text;
	Rete__ReferralUpdate u = RETE__REFERRAL_UPDATE__INIT;
	u.referral_id = (char *)ref;
	u.status = status;
	if (status == RETE__STATUS__STATUS_CANCELLED || status == RETE__STATUS__STATUS_REJECTED ||
	    reason_text != NULL)
		u.status_reason = &sr;
	Rete__Message msg;
	it_update_msg(&msg, id, &op, party_ids[to], &u);
	msg.sender = (char *)party_ids[from];
	msg.case_id = "case-7";
	msg.created_at = rete_now_ms();
	msg.origin = ORIGIN;
	rete_msg m;
	assert_int_equal(rete_message_sign(&msg, e->h.keys[from], &o->signed_bytes, &m), RETE_OK);
}

static void make_update(struct env *e, int from, int to, const char *id, const char *ref,
			Rete__Status status, it_msg *o)
{
	make_update_ex(e, from, to, id, ref, status, NULL, NULL, o);
}

/* submit sends o and waits for its receipt (or refusal). */
static Rete__BrokerFrame *submit(rete_wire *w, const it_msg *o)
{
	assert_int_equal(it_send(w, o), RETE_OK);
	Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_RECEIPT, WAIT_MS);
	assert_non_null(f);
	return f;
}

/* expect_refused submits o and checks the error code and that the
 * sentence contains `words` (if not NULL). */
static void expect_refused_at(rete_wire *w, const it_msg *o, Rete__ErrorCode code,
			      const char *words, const char *field)
{
	Rete__BrokerFrame *f = submit(w, o);
	const Rete__Receipt *r = it_answer(f);
	if (r->error != code || (words && !strstr(r->error_text, words)))
		fprintf(stderr, "expected error %d with '%s', got %d: %s\n", code,
			words ? words : "", r->error, r->error_text);
	assert_int_equal(r->error, code);
	assert_null(r->receipt);
	assert_true(r->error_text[0] != '\0');
	if (words)
		assert_non_null(strstr(r->error_text, words));
	if (field)
		assert_string_equal(r->field, field);
	assert_string_equal(r->message_id, o->id);
	rete__broker_frame__free_unpacked(f, NULL);
}

static void expect_refused(rete_wire *w, const it_msg *o, Rete__ErrorCode code, const char *words)
{
	expect_refused_at(w, o, code, words, NULL);
}

/* receipt_index checks an acceptance receipt of protocol 3 (its checkpoint
 * signed by the broker's key for this log, an inclusion proof of the
 * index) and returns its index. */
static uint64_t receipt_index(struct env *e, const Rete__BrokerFrame *f, const char *id)
{
	const Rete__Receipt *r = it_answer(f);
	if (r->error)
		fprintf(stderr, "refused: %s\n", r->error_text);
	assert_int_equal(r->error, 0);
	assert_string_equal(r->message_id, id);
	assert_null(r->receipt); /* never the per-message signed receipt of v1/v2 */
	int64_t idx = it_receipt_verify(f, &e->h.broker->pub, ORIGIN, NULL, NULL);
	assert_true(idx >= 0);
	return (uint64_t)idx;
}

/* receipt_proves checks an acceptance receipt for o as o's sender would:
 * the leaf of o's own bytes at the receipt's index and time, with the
 * proof, gives the root of the broker's signed checkpoint. Returns the
 * index. */
static uint64_t receipt_proves(struct env *e, const Rete__BrokerFrame *f, const it_msg *o)
{
	const Rete__Receipt *r = it_answer(f);
	if (r->error)
		fprintf(stderr, "refused: %s\n", r->error_text);
	assert_int_equal(r->error, 0);
	assert_string_equal(r->message_id, o->id);
	ProtobufCBinaryData sm = {o->signed_bytes.len, o->signed_bytes.data};
	int64_t idx = it_receipt_verify(f, &e->h.broker->pub, ORIGIN, &sm, NULL);
	assert_true(idx >= 0);
	return (uint64_t)idx;
}

/* make_referrals signs n referrals social -> cpi (employment-orientation),
 * the i-th with the id fmt makes of i; the caller frees each and the array. */
static it_msg *make_referrals(struct env *e, const char *fmt, int n)
{
	it_msg *v = calloc((size_t)n, sizeof(*v));
	assert_non_null(v);
	for (int i = 0; i < n; i++) {
		char id[64];
		snprintf(id, sizeof(id), fmt, i);
		make_referral(e, P_SOCIAL, P_CPI, id, "employment-orientation", true, NULL, NULL,
			      &v[i]);
	}
	return v;
}

/* refer signs a referral social -> cpi (employment-orientation) with id,
 * sends it over w and returns the index of its receipt (checked). */
static uint64_t refer(struct env *e, rete_wire *w, const char *id)
{
	it_msg o;
	make_referral(e, P_SOCIAL, P_CPI, id, "employment-orientation", true, NULL, NULL, &o);
	Rete__BrokerFrame *f = submit(w, &o);
	uint64_t idx = receipt_proves(e, f, &o);
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);
	return idx;
}

/* ack acknowledges the DELIVER frame f on w as party who, signed with its
 * key (protocol 3). */
static rete_err ack(struct env *e, rete_wire *w, int who, const Rete__BrokerFrame *f,
		    Rete__ErrorCode error, const char *text)
{
	return it_ack_deliver(w, e->h.keys[who], party_ids[who], f->deliver, error, text);
}

static rete_wire *hello(struct env *e, int who)
{
	rete_wire *w = connect_as(e, who);
	rete_msg m;
	assert_int_equal(rete_wire_hello(w, party_ids[who], "test_broker", &m), RETE_OK);
	Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, WAIT_MS);
	assert_non_null(f);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_WELCOME);
	assert_string_equal(f->welcome->party, party_ids[who]);
	assert_string_equal(f->welcome->origin, ORIGIN);
	assert_true(f->welcome->directory_entry.len > 0);
	rete__broker_frame__free_unpacked(f, NULL);
	return w;
}

/* entry_msg_at decodes a packed log entry: its Message (caller frees) and,
 * when index is not NULL, its index. */
static Rete__Message *entry_msg_at(const ProtobufCBinaryData *bytes, uint64_t *index)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, bytes->len, bytes->data);
	assert_non_null(le);
	if (index)
		*index = le->index;
	Rete__Message *msg = NULL;
	assert_int_equal(
	    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &msg, NULL),
	    RETE_OK);
	rete__log_entry__free_unpacked(le, NULL);
	return msg;
}

/* deliver_msg decodes a DELIVER's entry: its index and Message. */
static Rete__Message *deliver_msg(const Rete__BrokerFrame *f, uint64_t *index)
{
	return entry_msg_at(&f->deliver->log_entry, index);
}

static Rete__BrokerFrame *query(rete_wire *w, Rete__Query *q)
{
	Rete__BrokerFrame *f = NULL;
	rete_msg m;
	assert_int_equal(rete_wire_call(w, q, WAIT_MS, &f, &m), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	return f;
}

/* log_entries reads the whole log as the auditor (entries, caller frees). */
static Rete__BrokerFrame *log_entries(struct env *e)
{
	rete_wire *w = connect_as(e, P_AUDIT);
	Rete__EntriesQuery eq;
	rete__entries_query__init(&eq);
	eq.from = 0;
	eq.count = 1000;
	Rete__Query q;
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_ENTRIES;
	q.entries = &eq;
	Rete__BrokerFrame *f = query(w, &q);
	rete_wire_close(&w);
	assert_int_equal(f->result->error, 0);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_ENTRIES);
	return f;
}

static Rete__Message *entry_msg(const ProtobufCBinaryData *bytes)
{
	return entry_msg_at(bytes, NULL);
}

/* referral_info asks the broker, as the coordinator, for referral id; the
 * answer has no error (caller frees the frame). */
static Rete__BrokerFrame *referral_info(struct env *e, const char *id)
{
	Rete__ReferralQuery rq;
	rete__referral_query__init(&rq);
	rq.referral_id = (char *)id;
	Rete__Query q;
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_REFERRAL;
	q.referral = &rq;
	rete_wire *coordw = connect_as(e, P_COORD);
	Rete__BrokerFrame *f = query(coordw, &q);
	rete_wire_close(&coordw);
	assert_int_equal(f->result->error, 0);
	return f;
}

/* audit_verify runs the auditor's own tool, when it exists, on the store
 * of the running broker (read-only, beside the writer); it must hold. */
static void audit_verify(struct env *e)
{
	char *out = NULL;
	if (access(RETE_BIN_DIR "/rete", X_OK) != 0 ||
	    tu_run(&out, "%s/rete --help 2>&1 | grep -q 'audit verify'", RETE_BIN_DIR) != 0) {
		free(out);
		return;
	}
	free(out);
	out = NULL;
	int rc = tu_run(&out, "%s/rete audit verify %s/store --broker-key %s/keys/%s.pub",
			RETE_BIN_DIR, e->h.dir, e->h.dir, BROKER_ID);
	if (rc != 0)
		fprintf(stderr, "rete audit verify: %s\n", out ? out : "");
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "verified"));
	free(out);
}

/* --- the scenarios ------------------------------------------------------------ */

static void test_submit_deliver_ack(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, true); /* asst.mantova: a third agency */
	rete_wire *social = hello(e, P_SOCIAL), *cpi = hello(e, P_CPI);
	it_msg o;
	make_referral(e, P_SOCIAL, P_CPI, "ref-1", "employment-orientation", true, NULL, NULL, &o);
	Rete__BrokerFrame *f = submit(social, &o);
	uint64_t idx = receipt_index(e, f, "ref-1");
	rete__broker_frame__free_unpacked(f, NULL);
	assert_int_equal(idx, 1); /* 0 is the directory */

	/* the recipient gets the entry and the sealed part, which opens */
	f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	uint64_t didx;
	Rete__Message *msg = deliver_msg(f, &didx);
	assert_int_equal(didx, idx);
	assert_string_equal(msg->id, "ref-1");
	Rete__Private *priv = NULL;
	assert_int_equal(rete_open(f->deliver->sealed.data, f->deliver->sealed.len,
				   e->h.keys[P_CPI], &priv, NULL),
			 RETE_OK);
	assert_string_equal(priv->person->name, "Mario Rossi");
	rete__private__free_unpacked(priv, NULL);
	rete__message__free_unpacked(msg, NULL);
	assert_int_equal(ack(e, cpi, P_CPI, f, 0, NULL), RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);

	/* the sender gets the delivery receipt: a broker-signed Delivery */
	f = it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	msg = deliver_msg(f, &didx);
	assert_int_equal(didx, idx + 1);
	assert_string_equal(msg->sender, BROKER_ID);
	assert_int_equal(msg->body_case, RETE__MESSAGE__BODY_DELIVERY);
	assert_int_equal(msg->delivery->index, idx);
	assert_string_equal(msg->delivery->message_id, "ref-1");
	assert_true(msg->delivery->delivered_at > 0);
	assert_int_equal(f->deliver->sealed.len, 0);
	rete__message__free_unpacked(msg, NULL);
	assert_int_equal(ack(e, social, P_SOCIAL, f, 0, NULL), RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);

	/* the referral is now received, as its requester can read */
	f = referral_info(e, "ref-1");
	assert_int_equal(f->result->referral->status, RETE__STATUS__STATUS_RECEIVED);
	assert_string_equal(f->result->referral->performer, "cpi.mantova");
	rete__broker_frame__free_unpacked(f, NULL);

	/* the log: directory, referral, delivery */
	f = log_entries(e);
	assert_int_equal(f->result->entries->n_entries, 3);
	const char *kinds[3] = {"directory", "referral", "delivery"};
	for (int i = 0; i < 3; i++) {
		msg = entry_msg(&f->result->entries->entries[i]);
		assert_string_equal(rete_message_kind(msg), kinds[i]);
		rete__message__free_unpacked(msg, NULL);
	}
	rete__broker_frame__free_unpacked(f, NULL);

	/* an agency may not read the log's raw entries: it is given the
	 * broker's own Epoch entries alone (its witness checks a declared
	 * restore), and this log has none (rev-edges s16, finding 1) */
	Rete__EntriesQuery eq;
	rete__entries_query__init(&eq);
	eq.count = 10;
	Rete__Query q;
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_ENTRIES;
	q.entries = &eq;
	rete_wire *probe = connect_as(e, P_CPI);
	f = query(probe, &q);
	assert_int_equal(f->result->error, 0);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_ENTRIES);
	assert_int_equal(f->result->entries->n_entries, 0);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&probe);

	/* attack report s12, 7: an agency that is not party to ref-1 gets the
	 * very answer it gets for an id nobody used (code and sentence, but for
	 * the id it gave): the status query is no existence oracle */
	probe = connect_as(e, P_ASST);
	const char *ids[2] = {"ref-1", "ref-9"};
	Rete__ErrorCode codes[2];
	char texts[2][512];
	for (int i = 0; i < 2; i++) {
		Rete__ReferralQuery rq;
		rete__referral_query__init(&rq);
		rq.referral_id = (char *)ids[i];
		rete__query__init(&q);
		q.what_case = RETE__QUERY__WHAT_REFERRAL;
		q.referral = &rq;
		f = query(probe, &q);
		codes[i] = f->result->error;
		snprintf(texts[i], sizeof(texts[i]), "%s",
			 f->result->error_text != NULL ? f->result->error_text : "");
		rete__broker_frame__free_unpacked(f, NULL);
		char *at = strstr(texts[i], ids[i]); /* the id given, masked */
		if (at != NULL)
			memset(at, '#', strlen(ids[i]));
	}
	if (codes[0] != codes[1] || strcmp(texts[0], texts[1]) != 0)
		fail_msg("the status query tells an existing referral of others (error %d: %s) "
			 "from an unknown one (error %d: %s)",
			 (int)codes[0], texts[0], (int)codes[1], texts[1]);
	assert_int_equal(codes[1], RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND);
	assert_non_null(strstr(texts[1], "check the id"));
	rete_wire_close(&probe);

	audit_verify(e);
	it_msg_free(&o);
	rete_wire_close(&social);
	rete_wire_close(&cpi);
}

static void test_duplicate(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, false);
	rete_wire *social = connect_as(e, P_SOCIAL);
	it_msg o, o2;
	make_referral(e, P_SOCIAL, P_CPI, "dup-1", "training-voucher", true, NULL, NULL, &o);
	Rete__BrokerFrame *f1 = submit(social, &o);
	Rete__BrokerFrame *f2 = submit(social, &o);
	uint64_t i1 = receipt_proves(e, f1, &o), i2 = receipt_proves(e, f2, &o);
	assert_int_equal(i1, i2);
	/* the original entry: the same index and time, proved again */
	assert_int_equal(f1->receipt->logged_at, f2->receipt->logged_at);
	rete__broker_frame__free_unpacked(f1, NULL);
	rete__broker_frame__free_unpacked(f2, NULL);
	/* the same id with other bytes is refused */
	make_referral(e, P_SOCIAL, P_CPI, "dup-1", "employment-orientation", true, NULL, NULL, &o2);
	expect_refused_at(social, &o2, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED, NULL, "id");
	Rete__BrokerFrame *f = log_entries(e);
	assert_int_equal(f->result->entries->n_entries, 2);
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);
	it_msg_free(&o2);
	rete_wire_close(&social);
}

/* cp_print names a stored checkpoint (when one is missing) */
static int cp_print(void *ctx, uint64_t size, const char *note)
{
	(void)ctx;
	(void)note;
	fprintf(stderr, "stored: %" PRIu64 "\n", size);
	return 0;
}

/* thread_nice reads the nice value of thread tid of process pid, and its
 * name into name; false when it cannot be read. */
static bool thread_nice(pid_t pid, const char *tid, char *name, size_t len, long *nice)
{
	char path[128], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fgets(name, (int)len, f) != NULL;
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, tid);
	if (!ok || !(f = fopen(path, "r")))
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after the name's closing parenthesis: state is field 3, nice field 19 */
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 19; field++)
		p = strchr(p + 1, ' ');
	return p && sscanf(p + 1, "%ld", nice) == 1;
}

/* test_verify_threads_yield: the verify pool's threads run 5 nice steps
 * below the main thread, so that under load the committer, the main thread
 * and ZeroMQ's thread (receipts, reading) are not kept waiting for a core
 * by the next batch's signatures. */
static void test_verify_threads_yield(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, false);
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)e->h.pid);
	long main_nice = 99;
	char name[64], tid[32];
	snprintf(tid, sizeof(tid), "%d", (int)e->h.pid);
	assert_true(thread_nice(e->h.pid, tid, name, sizeof(name), &main_nice));
	int verify = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		long nice;
		if (de->d_name[0] == '.' ||
		    !thread_nice(e->h.pid, de->d_name, name, sizeof(name), &nice))
			continue;
		long want = strcmp(name, "rete-verify") == 0
				? (main_nice + 5 > 19 ? 19 : main_nice + 5)
				: main_nice;
		if (nice != want)
			fail_msg("thread %s (%s) of the broker runs at nice %ld, want %ld (the "
				 "main thread: %ld)",
				 de->d_name, name, nice, want, main_nice);
		verify += strcmp(name, "rete-verify") == 0;
	}
	closedir(d);
	assert_int_equal(verify, 2); /* verify_threads = 2 */
}

/* test_pipelined_batches: 200 referrals, the same 200 again and a
 * cancellation of each, all sent without waiting, so that the broker reads
 * them in batches big enough to be committed on its committer thread while
 * the next is read and verified. Every frame gets exactly one answer; a
 * resend gets the very receipt of its original (found in the log by the
 * batch before or the same batch); every cancellation is accepted (its
 * referral was logged by an earlier batch, or earlier in its own); the log
 * holds each message once and verifies. With checkpoint_every = 1, every
 * commit's checkpoint (the note of its receipts) is also stored while the
 * batches keep coming, byte for byte (Ed25519 signs deterministically):
 * the stored checkpoint is made between batches, never skipped because a
 * commit is in flight. */
#define PIPE_N	 200
#define PIPE_CPS (3 * PIPE_N)
static void test_pipelined_batches(void **state)
{
	next_checkpoint_every = "1";
	struct env *e = *state = env_new(NULL, NULL, false);
	next_checkpoint_every = NULL;
	/* the distinct checkpoints the receipts carried, by size */
	uint64_t cp_size[PIPE_CPS];
	char *cp_note[PIPE_CPS];
	size_t ncp = 0;
	rete_wire *social = connect_as(e, P_SOCIAL);
	it_msg *ref = make_referrals(e, "pipe-ref-%d", PIPE_N), *upd = calloc(PIPE_N, sizeof(*upd));
	assert_non_null(upd);
	char uid[64];
	for (int i = 0; i < PIPE_N; i++) {
		snprintf(uid, sizeof(uid), "pipe-cancel-%d", i);
		make_update(e, P_SOCIAL, P_CPI, uid, ref[i].id, RETE__STATUS__STATUS_CANCELLED,
			    &upd[i]);
	}
	for (int pass = 0; pass < 3; pass++)
		for (int i = 0; i < PIPE_N; i++) {
			const it_msg *o = pass < 2 ? &ref[i] : &upd[i];
			assert_int_equal(it_send(social, o), RETE_OK);
		}
	/* the answers: receipts of referrals by id, twice each */
	uint64_t first[PIPE_N];
	int64_t first_at[PIPE_N];
	int seen_ref[PIPE_N] = {0}, seen_upd[PIPE_N] = {0};
	for (int k = 0; k < 3 * PIPE_N; k++) {
		Rete__BrokerFrame *f =
		    it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_RECEIPT, WAIT_MS);
		assert_non_null(f);
		const Rete__Receipt *r = it_answer(f);
		if (r->error)
			fprintf(stderr, "refused %s: %s\n", r->message_id, r->error_text);
		assert_int_equal(r->error, 0);
		const char *nl = strchr(r->checkpoint, '\n');
		assert_non_null(nl);
		uint64_t size = strtoull(nl + 1, NULL, 10);
		size_t c = 0;
		while (c < ncp && cp_size[c] != size)
			c++;
		if (c == ncp) {
			assert_true(ncp < PIPE_CPS);
			cp_size[ncp] = size;
			cp_note[ncp] = strdup(r->checkpoint);
			assert_non_null(cp_note[ncp++]);
		} else { /* one note per commit */
			assert_string_equal(cp_note[c], r->checkpoint);
		}
		int i = -1;
		if (sscanf(r->message_id, "pipe-ref-%d", &i) == 1) {
			assert_true(i >= 0 && i < PIPE_N);
			/* each receipt proves the sender's own bytes */
			uint64_t idx = receipt_proves(e, f, &ref[i]);
			if (seen_ref[i]++ == 0) {
				first[i] = idx;
				first_at[i] = r->logged_at;
			} else {
				/* the resend: the original entry, proved again */
				assert_int_equal(idx, first[i]);
				assert_int_equal(r->logged_at, first_at[i]);
			}
		} else {
			assert_int_equal(sscanf(r->message_id, "pipe-cancel-%d", &i), 1);
			assert_true(i >= 0 && i < PIPE_N);
			receipt_proves(e, f, &upd[i]);
			seen_upd[i]++;
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
	for (int i = 0; i < PIPE_N; i++) {
		assert_int_equal(seen_ref[i], 2);
		assert_int_equal(seen_upd[i], 1);
	}
	/* every commit's checkpoint but the last (stored once the broker
	 * has answered its batch) is a stored checkpoint already */
	uint64_t last = 0;
	for (size_t c = 0; c < ncp; c++)
		if (cp_size[c] > last)
			last = cp_size[c];
	char dir[1200];
	snprintf(dir, sizeof(dir), "%s/store", e->h.dir);
	rete_store *st = NULL;
	rete_msg m;
	assert_int_equal(rete_store_open(&st, dir, RETE_STORE_RDONLY, &m), RETE_OK);
	for (size_t c = 0; c < ncp; c++) {
		char *note = NULL;
		if (cp_size[c] != last) {
			rete_err err = rete_store_checkpoint_get(st, NULL, cp_size[c], &note, &m);
			if (err != RETE_OK) {
				fprintf(stderr,
					"no stored checkpoint at size %" PRIu64 " (%zu commits, "
					"the last at %" PRIu64 "): %s\n",
					cp_size[c], ncp, last, m.text);
				rete_store_checkpoints_iter(st, NULL, 0, cp_print, NULL, &m);
			}
			assert_int_equal(err, RETE_OK);
			assert_string_equal(note, cp_note[c]);
		}
		free(note);
		free(cp_note[c]);
	}
	rete_store_close(&st);
	/* the log: the directory, each referral once, each cancellation once,
	 * every cancellation after its referral */
	Rete__BrokerFrame *f = log_entries(e);
	assert_int_equal(f->result->entries->n_entries, 1 + 2 * PIPE_N);
	uint64_t ref_at[PIPE_N];
	for (int i = 0; i < PIPE_N; i++)
		ref_at[i] = UINT64_MAX;
	for (size_t j = 1; j < f->result->entries->n_entries; j++) {
		Rete__Message *msg = entry_msg(&f->result->entries->entries[j]);
		int i = -1;
		if (sscanf(msg->id, "pipe-ref-%d", &i) == 1) {
			assert_int_equal(ref_at[i], UINT64_MAX);
			ref_at[i] = j;
			assert_int_equal(first[i], j);
		} else {
			assert_int_equal(sscanf(msg->id, "pipe-cancel-%d", &i), 1);
			assert_true(ref_at[i] < j);
		}
		rete__message__free_unpacked(msg, NULL);
	}
	rete__broker_frame__free_unpacked(f, NULL);
	/* a referral's final status */
	f = referral_info(e, "pipe-ref-137");
	assert_int_equal(f->result->referral->status, RETE__STATUS__STATUS_CANCELLED);
	rete__broker_frame__free_unpacked(f, NULL);
	audit_verify(e);
	for (int i = 0; i < PIPE_N; i++) {
		it_msg_free(&ref[i]);
		it_msg_free(&upd[i]);
	}
	free(ref);
	free(upd);
	rete_wire_close(&social);
	/* after a clean stop the state file names the latest stored
	 * checkpoint, the last batch's too */
	int stopped = it_home_stop(&e->h, WAIT_MS);
	assert_true(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0);
	char spath[1300], *snote = NULL, *latest = NULL;
	uint64_t lsize = 0;
	assert_non_null(rete_store_state_path(dir, spath, sizeof(spath)));
	assert_int_equal(rete_store_state_read(spath, &snote, &m), RETE_OK);
	assert_int_equal(rete_store_open(&st, dir, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_latest(st, NULL, &lsize, &latest, &m), RETE_OK);
	assert_true(lsize >= last);
	assert_string_equal(snote, latest);
	rete_store_close(&st);
	free(snote);
	free(latest);
}

static void test_unknown_key(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, false);
	rete_wire *w = connect_as(e, P_STRANGER);
	rete_wire_ping(w, 1, NULL);
	Rete__BrokerFrame *f = NULL;
	rete_msg m;
	rete_err err = rete_wire_recv(w, WAIT_MS, &f, &m);
	assert_int_equal(err, RETE_EREFUSED);
	assert_null(f);
	assert_true(rete_wire_auth_failed(w));
	assert_non_null(strstr(m.text, "refused our key"));
	rete_wire_close(&w);
	/* an agency may not subscribe to events: also refused */
	rete_wire *sub = NULL;
	assert_int_equal(
	    rete_wire_subscribe(&sub, e->h.events, &e->h.broker->pub, e->h.keys[P_CPI], &m),
	    RETE_OK);
	Rete__Event *ev = NULL;
	assert_int_equal(rete_wire_event_recv(sub, WAIT_MS, &ev, &m), RETE_EREFUSED);
	rete_wire_close(&sub);
}

static void test_refusals(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, true);
	rete_wire *social = connect_as(e, P_SOCIAL), *cpi = connect_as(e, P_CPI),
		  *coord = connect_as(e, P_COORD);
	it_msg o;

	/* signing as another party */
	make_referral(e, P_SOCIAL, P_CPI, "as-other", "employment-orientation", true,
		      e->h.keys[P_ASST], "asst.mantova", &o);
	expect_refused_at(social, &o, RETE__ERROR_CODE__ERROR_CODE_SENDER_MISMATCH,
			  "social.mantova", "sender");
	it_msg_free(&o);

	/* a long sender in 3-byte characters: the sentence that quotes it cut
	 * is still UTF-8 the client decodes */
	char euros[3 * 100 + 1] = "";
	for (int i = 0; i < 100; i++)
		strcat(euros, "\xe2\x82\xac");
	make_referral(e, P_SOCIAL, P_CPI, "euro", "employment-orientation", true, NULL, euros, &o);
	expect_refused_at(social, &o, RETE__ERROR_CODE__ERROR_CODE_SENDER_MISMATCH, "\xe2\x82\xac",
			  "sender");
	it_msg_free(&o);

	/* a bad signature */
	make_referral(e, P_SOCIAL, P_CPI, "bad-sig", "employment-orientation", true, NULL, NULL,
		      &o);
	o.signed_bytes.data[o.signed_bytes.len - 5] ^= 0x40; /* inside the signature */
	expect_refused(social, &o, RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE, NULL);
	it_msg_free(&o);

	/* a sealed part that is not the one signed */
	make_referral(e, P_SOCIAL, P_CPI, "bad-seal", "employment-orientation", true, NULL, NULL,
		      &o);
	o.sealed.data[3] ^= 1;
	expect_refused(social, &o, RETE__ERROR_CODE__ERROR_CODE_SEALED_HASH, NULL);
	it_msg_free(&o);

	/* a forbidden route: job-centre may refer to social-services only */
	make_referral(e, P_CPI, P_ASST, "route-1", "paediatrics", true, NULL, NULL, &o);
	expect_refused(cpi, &o, RETE__ERROR_CODE__ERROR_CODE_ROUTE_FORBIDDEN,
		       "may not refer to a health; it may refer to: social-services");
	it_msg_free(&o);

	/* a service the recipient does not offer */
	make_referral(e, P_SOCIAL, P_CPI, "svc-1", "housing-support", true, NULL, NULL, &o);
	expect_refused_at(social, &o, RETE__ERROR_CODE__ERROR_CODE_SERVICE_NOT_OFFERED,
			  "offered: employment-orientation, training-voucher", "referral.service");
	it_msg_free(&o);

	/* no consent for a service that needs it */
	make_referral(e, P_SOCIAL, P_ASST, "consent-1", "psychological-support", false, NULL, NULL,
		      &o);
	expect_refused_at(social, &o, RETE__ERROR_CODE__ERROR_CODE_CONSENT_REQUIRED, "legal basis",
			  "referral.consent");
	it_msg_free(&o);

	/* an unknown recipient */
	make_referral(e, P_SOCIAL, P_STRANGER, "who-1", "x", true, NULL, NULL, &o);
	expect_refused(social, &o, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_PARTY, "stranger.x");
	it_msg_free(&o);

	/* a coordinator does not submit */
	make_referral(e, P_COORD, P_CPI, "coord-1", "employment-orientation", true, NULL, NULL, &o);
	expect_refused(coord, &o, RETE__ERROR_CODE__ERROR_CODE_NOT_AUTHORIZED, "coordinator");
	it_msg_free(&o);

	/* the lifecycle: an accepted referral, then moves by the wrong party */
	make_referral(e, P_SOCIAL, P_CPI, "life-1", "employment-orientation", true, NULL, NULL, &o);
	Rete__BrokerFrame *f = submit(social, &o);
	receipt_index(e, f, "life-1");
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);
	make_update(e, P_SOCIAL, P_CPI, "life-1-acc", "life-1", RETE__STATUS__STATUS_ACCEPTED, &o);
	expect_refused_at(social, &o, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE, "requester",
			  "update.status");
	it_msg_free(&o);
	make_update(e, P_CPI, P_SOCIAL, "life-1-can", "life-1", RETE__STATUS__STATUS_CANCELLED, &o);
	expect_refused(cpi, &o, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE, NULL);
	it_msg_free(&o);
	/* and the right moves are accepted */
	make_update(e, P_CPI, P_SOCIAL, "life-1-acc2", "life-1", RETE__STATUS__STATUS_ACCEPTED, &o);
	f = submit(cpi, &o);
	receipt_index(e, f, "life-1-acc2");
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);

	/* protocol 3, only codes in the log: a free-text reason and a staff
	 * member's name are refused with ERROR_CODE_PERSONAL_DATA, the
	 * sentence saying where they belong and not repeating them */
	make_update_ex(e, P_CPI, P_SOCIAL, "life-1-rej", "life-1", RETE__STATUS__STATUS_IN_PROGRESS,
		       NULL, "Places are full until March.", &o);
	expect_refused_at(cpi, &o, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA, "private.statusText",
			  "update.statusReason.text");
	f = submit(cpi, &o);
	assert_null(strstr(it_answer(f)->error_text, "Places are full"));
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);
	make_update_ex(e, P_CPI, P_SOCIAL, "life-1-ip", "life-1", RETE__STATUS__STATUS_IN_PROGRESS,
		       "Giulia Bianchi", NULL, &o);
	expect_refused_at(cpi, &o, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA, "pseudonymous",
			  "operator.staffId");
	it_msg_free(&o);

	/* personal data is refused before the policy, whose sentences and the
	 * broker's log would repeat the id: a message id that is a fiscal code,
	 * to a service not offered, is refused PERSONAL_DATA and the broker's
	 * log never shows the id */
	make_referral(e, P_SOCIAL, P_CPI, "RSSMRA85M41E897X", "housing-support", true, NULL, NULL,
		      &o);
	expect_refused_at(social, &o, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA, "fiscal code",
			  "id");
	it_msg_free(&o);
	make_update_ex(e, P_CPI, P_SOCIAL, "life-1-x", "maria.rossi@example.org",
		       RETE__STATUS__STATUS_IN_PROGRESS, NULL, NULL, &o);
	expect_refused_at(cpi, &o, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA, "e-mail address",
			  "update.referralId");
	it_msg_free(&o);
	/* session 13: an 11-digit temporary fiscal code with its check digit,
	 * and a fiscal code written in groups, sent raw (no agent checked them) */
	make_referral(e, P_SOCIAL, P_CPI, "RSS-MRA-85M41-E897X", "employment-orientation", true,
		      NULL, NULL, &o);
	expect_refused_at(social, &o, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA, "fiscal code",
			  "id");
	it_msg_free(&o);
	make_update_ex(e, P_CPI, P_SOCIAL, "life-1-y", "98765432103",
		       RETE__STATUS__STATUS_IN_PROGRESS, NULL, NULL, &o);
	expect_refused_at(cpi, &o, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA,
			  "temporary fiscal code", "update.referralId");
	it_msg_free(&o);
	{
		/* the log does say refusals: the line of the last one comes just
		 * after its answer, so wait for it (a deadline, not a sleep) */
		size_t len = 0;
		char *log = NULL;
		int64_t until = it_mono_ms() + WAIT_MS;
		while ((log = tu_read_file(e->h.log, &len)) != NULL &&
		       strstr(log, "life-1-y") == NULL && it_mono_ms() < until) {
			free(log);
			it_nap(50); /* polling another process's file */
		}
		assert_non_null(log);
		assert_non_null(strstr(log, "life-1-y"));
		assert_null(strstr(log, "RSSMRA85M41E897X"));
		assert_null(strstr(log, "maria.rossi@example.org"));
		assert_null(strstr(log, "98765432103"));
		assert_null(strstr(log, "RSS-MRA-85M41-E897X"));
		free(log);
	}

	/* only the accepted referral and its update were logged */
	f = log_entries(e);
	assert_int_equal(f->result->entries->n_entries, 3);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&social);
	rete_wire_close(&cpi);
	rete_wire_close(&coord);
}

static void test_offline_in_order(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, false);
	rete_wire *social = connect_as(e, P_SOCIAL);
	char id[32];
	uint64_t idx[3];
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "off-%d", i);
		idx[i] = refer(e, social, id);
	}
	rete_wire *cpi = hello(e, P_CPI);
	for (int i = 0; i < 3; i++) {
		Rete__BrokerFrame *f =
		    it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
		assert_non_null(f);
		uint64_t got;
		Rete__Message *msg = deliver_msg(f, &got);
		snprintf(id, sizeof(id), "off-%d", i);
		assert_int_equal(got, idx[i]);
		assert_string_equal(msg->id, id);
		rete__message__free_unpacked(msg, NULL);
		ack(e, cpi, P_CPI, f, 0, NULL);
		rete__broker_frame__free_unpacked(f, NULL);
	}
	rete_wire_close(&cpi);
	rete_wire_close(&social);
}

static void test_expiry_notice(void **state)
{
	struct env *e = *state = env_new("2s", NULL, false);
	rete_wire *social = hello(e, P_SOCIAL);
	it_msg o;
	make_referral(e, P_SOCIAL, P_CPI, "exp-1", "employment-orientation", true, NULL, NULL, &o);
	Rete__BrokerFrame *f = submit(social, &o);
	uint64_t idx = receipt_index(e, f, "exp-1");
	rete__broker_frame__free_unpacked(f, NULL);
	f = it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	uint64_t nidx;
	Rete__Message *msg = deliver_msg(f, &nidx);
	assert_int_equal(msg->body_case, RETE__MESSAGE__BODY_NOTICE);
	assert_int_equal(msg->notice->kind, RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED);
	assert_int_equal(msg->notice->error, RETE__ERROR_CODE__ERROR_CODE_EXPIRED);
	assert_int_equal(msg->notice->index, idx);
	assert_string_equal(msg->notice->referral_id, "exp-1");
	assert_string_equal(msg->sender, BROKER_ID);
	rete__message__free_unpacked(msg, NULL);
	rete__broker_frame__free_unpacked(f, NULL);
	/* the withdrawn message is never delivered afterwards */
	rete_wire *cpi = hello(e, P_CPI);
	f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, 1500);
	assert_null(f);
	rete_wire_close(&cpi);
	it_msg_free(&o);
	rete_wire_close(&social);
}

static void test_events_and_queries(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, false);
	rete_msg m;
	rete_wire *sub = NULL;
	assert_int_equal(
	    rete_wire_subscribe(&sub, e->h.events, &e->h.broker->pub, e->h.keys[P_COORD], &m),
	    RETE_OK);
	rete_wire *social = connect_as(e, P_SOCIAL);
	/* PUB/SUB drops what is published before the subscription arrives:
	 * send referrals until one is seen as an event */
	Rete__Event *ev = NULL;
	uint64_t idx[64];
	char id[32];
	int sent = 0;
	while (!ev && sent < 40) {
		snprintf(id, sizeof(id), "ev-%d", sent);
		idx[sent++] = refer(e, social, id);
		int64_t end = it_mono_ms() + 250;
		while (!ev && it_mono_ms() < end) {
			Rete__Event *x = NULL;
			if (rete_wire_event_recv(sub, 50, &x, NULL) != RETE_OK)
				continue;
			if (strcmp(x->kind, "referral") == 0)
				ev = x;
			else
				rete__event__free_unpacked(x, NULL);
		}
	}
	assert_non_null(ev);
	int n = atoi(ev->message_id + 3);
	assert_true(n >= 0 && n < sent);
	assert_int_equal(ev->index, idx[n]);
	assert_string_equal(ev->sender, "social.mantova");
	assert_string_equal(ev->recipient, "cpi.mantova");
	assert_string_equal(ev->referral_id, ev->message_id);
	assert_string_equal(ev->service, "employment-orientation");
	assert_int_equal(ev->status, RETE__STATUS__STATUS_REQUESTED);
	assert_int_equal(ev->priority, RETE__PRIORITY__PRIORITY_ROUTINE);
	rete__event__free_unpacked(ev, NULL);

	rete_wire *coord = connect_as(e, P_COORD);
	Rete__Query q;
	/* health: cpi has never connected and has everything queued */
	Rete__HealthQuery hq;
	rete__health_query__init(&hq);
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_HEALTH;
	q.health = &hq;
	Rete__BrokerFrame *f = query(coord, &q);
	assert_int_equal(f->result->error, 0);
	const Rete__Health *h = f->result->health;
	assert_int_equal(h->log_size, (uint64_t)sent + 1);
	assert_int_equal(h->n_agencies, 2);
	bool seen_cpi = false;
	for (size_t i = 0; i < h->n_agencies; i++)
		if (strcmp(h->agencies[i]->id, "cpi.mantova") == 0) {
			seen_cpi = true;
			assert_int_equal(h->agencies[i]->queue_depth, (uint64_t)sent);
			assert_true(h->agencies[i]->oldest_undelivered_at > 0);
			assert_false(h->agencies[i]->connected);
		}
	assert_true(seen_cpi);
	assert_true(h->disk_free > 0);
	rete__broker_frame__free_unpacked(f, NULL);

	/* snapshot: every referral, at the log size it reflects */
	Rete__SnapshotQuery sq;
	rete__snapshot_query__init(&sq);
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_SNAPSHOT;
	q.snapshot = &sq;
	f = query(coord, &q);
	assert_int_equal(f->result->error, 0);
	assert_int_equal(f->result->snapshot->n_referrals, (size_t)sent);
	assert_int_equal(f->result->snapshot->log_size, (uint64_t)sent + 1);
	rete__broker_frame__free_unpacked(f, NULL);

	/* an agency may not ask for health */
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_HEALTH;
	q.health = &hq;
	f = query(social, &q);
	assert_int_equal(f->result->error, RETE__ERROR_CODE__ERROR_CODE_NOT_AUTHORIZED);
	rete__broker_frame__free_unpacked(f, NULL);

	/* an inclusion proof of the first referral up to a checkpoint that
	 * covers it (checkpoint_interval is 1s), checked against the note */
	Rete__InclusionQuery iq;
	rete__inclusion_query__init(&iq);
	iq.index = idx[0];
	rete_checkpoint cp;
	int64_t end = it_mono_ms() + WAIT_MS;
	for (;;) {
		rete__query__init(&q);
		q.what_case = RETE__QUERY__WHAT_INCLUSION;
		q.inclusion = &iq;
		f = query(social, &q);
		if (f->result->error == 0 && f->result->proof->tree_size == (uint64_t)sent + 1)
			break;
		rete__broker_frame__free_unpacked(f, NULL);
		assert_true(it_mono_ms() < end);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL); /* the next checkpoint is a timer away */
	}
	const Rete__Proof *p = f->result->proof;
	assert_int_equal(rete_checkpoint_verify(p->checkpoint, strlen(p->checkpoint), ORIGIN,
						&e->h.broker->pub, &cp, &m),
			 RETE_OK);
	assert_int_equal(cp.size, p->tree_size);
	rete_merkle_elem elems[RETE_MERKLE_MAX_PROOF];
	assert_true(p->n_hashes <= RETE_MERKLE_MAX_PROOF);
	for (size_t i = 0; i < p->n_hashes; i++) {
		elems[i].data = p->hashes[i].data;
		elems[i].len = p->hashes[i].len;
	}
	assert_int_equal(rete_merkle_verify_inclusion(p->leaf_index, p->tree_size,
						      p->leaf_hash.data, p->leaf_hash.len, elems,
						      p->n_hashes, cp.root, sizeof(cp.root), &m),
			 RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);

	/* a consistency proof from size 1 to the checkpoint */
	Rete__ConsistencyQuery cq;
	rete__consistency_query__init(&cq);
	cq.size1 = 1;
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_CONSISTENCY;
	q.consistency = &cq;
	f = query(social, &q);
	assert_int_equal(f->result->error, 0);
	assert_int_equal(f->result->proof->size1, 1);
	assert_true(f->result->proof->size2 >= 2);
	assert_true(f->result->proof->n_hashes > 0);
	rete__broker_frame__free_unpacked(f, NULL);

	/* the newest connection of a party takes its deliveries over */
	rete_wire *cpi1 = hello(e, P_CPI);
	f = it_recv_kind(cpi1, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	uint64_t first;
	Rete__Message *msg = deliver_msg(f, &first);
	rete__message__free_unpacked(msg, NULL);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire *cpi2 = hello(e, P_CPI); /* cpi1 never acked */
	f = it_recv_kind(cpi2, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	uint64_t again;
	msg = deliver_msg(f, &again);
	assert_int_equal(again, first);
	rete__message__free_unpacked(msg, NULL);
	rete__broker_frame__free_unpacked(f, NULL);

	rete_wire_close(&cpi1);
	rete_wire_close(&cpi2);
	rete_wire_close(&coord);
	rete_wire_close(&social);
	rete_wire_close(&sub);
}

/* attack report s12, 7: asst.mantova, party to neither, updates a
 * referral of social.mantova to cpi.mantova and one nobody made: the two
 * refusals are the same (code, field and sentence, but for the id given),
 * and neither names the referral's parties. */
static void test_third_party_update(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, true);
	rete_wire *social = connect_as(e, P_SOCIAL), *asst = connect_as(e, P_ASST);
	const char *refs[2] = {"ref-third", "ref-nobod"};
	char seen[2][700];
	it_msg o;

	refer(e, social, "ref-third");
	for (int i = 0; i < 2; i++) {
		make_update(e, P_ASST, P_CPI, "u-third", refs[i], RETE__STATUS__STATUS_CANCELLED,
			    &o);
		Rete__BrokerFrame *f = submit(asst, &o);
		const Rete__Receipt *r = it_answer(f);
		snprintf(seen[i], sizeof(seen[i]), "%d [%s] %s", (int)r->error, r->field,
			 r->error_text);
		rete__broker_frame__free_unpacked(f, NULL);
		it_msg_free(&o);
		for (char *at = strstr(seen[i], refs[i]); at != NULL; at = strstr(at, refs[i]))
			memset(at, '#', strlen(refs[i]));
	}
	if (strcmp(seen[0], seen[1]) != 0)
		fail_msg("a third agency's update tells an existing referral (%s) from an unknown "
			 "one (%s)",
			 seen[0], seen[1]);
	assert_null(strstr(seen[0], "social.mantova"));
	assert_non_null(strstr(seen[0], "check the referral id"));
	rete_wire_close(&asst);
	rete_wire_close(&social);
}

/* cannot_open takes the next DELIVER on cpi (it must be entry want) and
 * refuses it, as cpi.mantova, with CANNOT_OPEN and a sentence. */
static void cannot_open(struct env *e, rete_wire *cpi, uint64_t want)
{
	Rete__BrokerFrame *f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	uint64_t got = 0;
	Rete__Message *msg = deliver_msg(f, &got);
	assert_int_equal(got, want);
	rete__message__free_unpacked(msg, NULL);
	assert_int_equal(ack(e, cpi, P_CPI, f, RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN,
			     "the sealed part does not open with our key"),
			 RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
}

static void test_overdue_and_refused_delivery(void **state)
{
	struct env *e = *state = env_new_ex(NULL, NULL, false, "2s");
	rete_wire *social = hello(e, P_SOCIAL);
	uint64_t i1 = refer(e, social, "late-1");
	uint64_t i2 = refer(e, social, "late-2");

	/* the recipient cannot open the first: ACK with an error; the queue
	 * moves on to the second */
	rete_wire *cpi = hello(e, P_CPI);
	cannot_open(e, cpi, i1);
	uint64_t got;
	Rete__Message *msg;
	Rete__BrokerFrame *f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	msg = deliver_msg(f, &got);
	assert_int_equal(got, i2);
	rete__message__free_unpacked(msg, NULL);
	rete__broker_frame__free_unpacked(f, NULL);

	/* the sender hears of the refusal, then (2 s later) of the overdue
	 * referral, which nobody accepted */
	bool refused = false, overdue = false;
	int64_t end = it_mono_ms() + WAIT_MS;
	while ((!refused || !overdue) && it_mono_ms() < end) {
		f = it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_DELIVER, 500);
		if (!f)
			continue;
		msg = deliver_msg(f, &got);
		if (msg->body_case == RETE__MESSAGE__BODY_NOTICE) {
			const Rete__Notice *n = msg->notice;
			if (n->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED) {
				assert_int_equal(n->index, i1);
				assert_int_equal(n->error,
						 RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN);
				assert_non_null(strstr(n->text, "does not open"));
				refused = true;
			} else if (n->kind == RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE) {
				assert_true(n->due_at > 0);
				assert_true(strcmp(n->referral_id, "late-2") == 0 ||
					    strcmp(n->referral_id, "late-1") == 0);
				overdue = true;
			}
		}
		ack(e, social, P_SOCIAL, f, 0, NULL);
		rete__message__free_unpacked(msg, NULL);
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_true(refused);
	assert_true(overdue);
	rete_wire_close(&cpi);
	rete_wire_close(&social);
}

/* file_has: does the file at path hold the bytes of s (NUL-free)? */
static bool file_has(const char *path, const char *s)
{
	size_t len = 0;
	char *text = tu_read_file(path, &len);
	bool has = text != NULL && memmem(text, len, s, strlen(s)) != NULL;
	free(text);
	return has;
}

/* attack report s12, 4: a recipient refuses a delivery with a text that
 * holds a fiscal code and a phone number. The signed text would go into
 * the DELIVERY_REFUSED notice the log keeps for ever (and into the
 * broker's log line): the broker refuses that ACK (PERSONAL_DATA, saying
 * what it found and where, not the value), logs nothing, and the entry
 * stays queued; a refusal with a text without personal data is then
 * logged as before. Neither the store nor the broker's log holds the
 * fiscal code. */
static void test_refusal_personal_data(void **state)
{
	static const char *const pd =
	    "persona RSSMRA85M41E897X Maria Rossi, tel 0376 5550101: non in carico";
	struct env *e = *state = env_new(NULL, NULL, false);
	rete_wire *social = hello(e, P_SOCIAL);
	uint64_t i1 = refer(e, social, "pd-1");
	char store[600];
	snprintf(store, sizeof(store), "%s/store/data.mdb", e->h.dir);

	rete_wire *cpi = hello(e, P_CPI);
	Rete__BrokerFrame *f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
	assert_non_null(f);
	assert_int_equal(ack(e, cpi, P_CPI, f, RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN, pd),
			 RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
	f = it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_REFUSAL, WAIT_MS);
	if (f == NULL || f->command_case != RETE__BROKER_FRAME__COMMAND_REFUSAL)
		fail_msg("the broker took a refusal whose text holds a fiscal code (no refusal of "
			 "the ACK came); in the store: %s; in the broker's log: %s",
			 file_has(store, "RSSMRA85M41E897X") ? "yes" : "no",
			 file_has(e->h.log, "RSSMRA85M41E897X") ? "yes" : "no");
	assert_int_equal(f->refusal->error, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA);
	assert_non_null(
	    strstr(f->refusal->error_text, "looks like personal data: an Italian fiscal code"));
	assert_null(strstr(f->refusal->error_text, "RSSMRA"));
	rete__broker_frame__free_unpacked(f, NULL);

	/* nothing logged; delivered again on the next connection, and a
	 * refusal without personal data is logged */
	f = log_entries(e);
	assert_int_equal(f->result->entries->n_entries, 2); /* directory, pd-1 */
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&cpi);
	cpi = hello(e, P_CPI);
	cannot_open(e, cpi, i1);
	int64_t end = it_mono_ms() + WAIT_MS;
	size_t n = 0;
	while (n < 3 && it_mono_ms() < end) {
		f = log_entries(e);
		n = f->result->entries->n_entries;
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_int_equal(n, 3); /* the refusal's notice */
	rete_wire_close(&cpi);
	rete_wire_close(&social);
	int stopped = it_home_stop(&e->h, WAIT_MS);
	assert_true(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0);
	assert_false(file_has(store, "RSSMRA85M41E897X"));
	assert_false(file_has(e->h.log, "RSSMRA85M41E897X"));
	assert_false(file_has(e->h.log, "5550101"));
	/* nor the recipient's words of the refusal logged: the code only */
	if (file_has(e->h.log, "does not open with our key"))
		fail_msg("the broker's log line repeats the recipient's refusal text");
	assert_true(file_has(e->h.log, "refused delivery of entry 1 (error cannot-open)"));
}

#define LOAD_N 300

static void test_kill9_under_load(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, false);
	rete_wire *social = hello(e, P_SOCIAL);
	it_msg *o = make_referrals(e, "load-%03d", LOAD_N);
	bool *receipted = calloc(LOAD_N, sizeof(bool));
	uint64_t *index = calloc(LOAD_N, sizeof(uint64_t));
	assert_non_null(receipted);
	assert_non_null(index);
	/* pipeline everything, kill -9 once some receipts are in */
	for (int i = 0; i < LOAD_N; i++)
		assert_int_equal(it_send(social, &o[i]), RETE_OK);
	int got = 0;
	while (got < 40) {
		Rete__BrokerFrame *f =
		    it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_RECEIPT, WAIT_MS);
		assert_non_null(f);
		int n = atoi(f->receipt->message_id + 5);
		assert_true(n >= 0 && n < LOAD_N);
		index[n] = receipt_index(e, f, o[n].id);
		receipted[n] = true;
		got++;
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_true(it_stop(&e->h.pid, SIGKILL, WAIT_MS) != -1);
	/* receipts already on their way count too */
	for (;;) {
		Rete__BrokerFrame *f =
		    it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_RECEIPT, 100);
		if (!f)
			break;
		int n = atoi(f->receipt->message_id + 5);
		if (f->receipt->error == 0 && !receipted[n]) {
			index[n] = receipt_index(e, f, o[n].id);
			receipted[n] = true;
			got++;
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
	broker_start(e);
	wait_ready(e);
	/* the agent's way: send again everything without a receipt (and a few
	 * with one: the broker must answer with the original receipt) */
	for (int i = 0; i < LOAD_N; i++)
		if (!receipted[i] || i % 50 == 0)
			assert_int_equal(it_send(social, &o[i]), RETE_OK);
	int64_t end = it_mono_ms() + 4 * WAIT_MS;
	while (got < LOAD_N && it_mono_ms() < end) {
		Rete__BrokerFrame *f =
		    it_recv_kind(social, RETE__BROKER_FRAME__COMMAND_RECEIPT, 2000);
		if (!f) {
			/* a submission sent while the old connection died: again */
			for (int i = 0; i < LOAD_N; i++)
				if (!receipted[i])
					it_send(social, &o[i]);
			continue;
		}
		int n = atoi(f->receipt->message_id + 5);
		uint64_t ix = receipt_index(e, f, o[n].id);
		if (receipted[n])
			assert_int_equal(ix, index[n]); /* the original receipt */
		else {
			index[n] = ix;
			receipted[n] = true;
			got++;
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_int_equal(got, LOAD_N);

	/* everything is delivered, each log entry once */
	rete_wire *cpi = hello(e, P_CPI);
	bool *delivered = calloc(LOAD_N, sizeof(bool));
	assert_non_null(delivered);
	int ndel = 0;
	int restarts = 0;
	end = it_mono_ms() + 4 * WAIT_MS;
	while (ndel < LOAD_N && it_mono_ms() < end) {
		if (ndel >= (restarts + 1) * LOAD_N / 3 && restarts < 2) {
			/* twice more, while delivering: the recipient's connection
			 * comes back by itself (HELLO again) and the queue resumes */
			restarts++;
			assert_true(it_stop(&e->h.pid, SIGKILL, WAIT_MS) != -1);
			broker_start(e);
			wait_ready(e);
		}
		Rete__BrokerFrame *f =
		    it_recv_kind(cpi, RETE__BROKER_FRAME__COMMAND_DELIVER, WAIT_MS);
		assert_non_null(f);
		uint64_t ix;
		Rete__Message *msg = deliver_msg(f, &ix);
		int n = atoi(msg->id + 5);
		assert_int_equal(ix, index[n]);
		if (!delivered[n]) {
			delivered[n] = true;
			ndel++;
		}
		ack(e, cpi, P_CPI, f, 0, NULL);
		rete__message__free_unpacked(msg, NULL);
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_int_equal(ndel, LOAD_N);
	Rete__BrokerFrame *f = log_entries(e);
	int seen[LOAD_N] = {0};
	for (size_t i = 0; i < f->result->entries->n_entries; i++) {
		Rete__Message *msg = entry_msg(&f->result->entries->entries[i]);
		if (msg->body_case == RETE__MESSAGE__BODY_REFERRAL)
			seen[atoi(msg->id + 5)]++;
		rete__message__free_unpacked(msg, NULL);
	}
	for (int i = 0; i < LOAD_N; i++)
		assert_int_equal(seen[i], 1);
	rete__broker_frame__free_unpacked(f, NULL);
	audit_verify(e); /* three kill -9s later the log still verifies */
	for (int i = 0; i < LOAD_N; i++)
		it_msg_free(&o[i]);
	free(o);
	free(receipted);
	free(index);
	free(delivered);
	rete_wire_close(&cpi);
	rete_wire_close(&social);
}

#define GARBAGE_N 10000

static void test_garbage(void **state)
{
	struct env *e = *state = env_new(NULL, "64KiB", false);
	rete_wire *w = connect_as(e, P_SOCIAL);
	void *s = rete_wire_socket(w);
	it_msg good;
	make_referral(e, P_SOCIAL, P_CPI, "garbage-ok", "employment-orientation", true, NULL, NULL,
		      &good);
	/* a valid SUBMIT frame, to mutate */
	Rete__Submit sub;
	rete__submit__init(&sub);
	sub.signed_message.data = good.signed_bytes.data;
	sub.signed_message.len = good.signed_bytes.len;
	Rete__ClientFrame cf;
	rete__client_frame__init(&cf);
	cf.version = RETE_PROTOCOL_VERSION;
	cf.command_case = RETE__CLIENT_FRAME__COMMAND_SUBMIT;
	cf.submit = &sub;
	size_t vlen = rete__client_frame__get_packed_size(&cf);
	uint8_t *valid = malloc(vlen);
	assert_non_null(valid);
	rete__client_frame__pack(&cf, valid);
	uint8_t buf[2048];
	srand(12345);
	for (int i = 0; i < GARBAGE_N; i++) {
		size_t len;
		switch (i % 3) {
		case 0: /* random bytes */
			len = (size_t)(rand() % 300);
			for (size_t j = 0; j < len; j++)
				buf[j] = (uint8_t)rand();
			break;
		case 1: /* a valid frame with a few bytes changed */
			len = vlen < sizeof(buf) ? vlen : sizeof(buf);
			memcpy(buf, valid, len);
			for (int k = 0; k < 1 + rand() % 4; k++)
				buf[(size_t)rand() % len] ^= (uint8_t)(1u << (rand() % 8));
			break;
		default: /* a valid frame cut short */
			len = (size_t)rand() % vlen;
			memcpy(buf, valid, len);
			break;
		}
		assert_true(zmq_send(s, buf, len, 0) >= 0);
	}
	/* drain the answers until the broker has gone through them all */
	int answers = 0;
	for (;;) {
		Rete__BrokerFrame *f = NULL;
		if (rete_wire_recv(w, 1500, &f, NULL) != RETE_OK)
			break;
		answers++;
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_true(answers > GARBAGE_N / 2);
	assert_true(broker_alive(e));

	/* one frame over max_frame: ZeroMQ drops that connection */
	rete_wire *big = connect_as(e, P_SOCIAL);
	size_t blen = 100 * 1024;
	uint8_t *huge = calloc(1, blen);
	assert_non_null(huge);
	assert_true(zmq_send(rete_wire_socket(big), huge, blen, 0) >= 0);
	free(huge);
	rete_wire_ping(big, 3, NULL);
	Rete__BrokerFrame *f = it_recv_kind(big, RETE__BROKER_FRAME__COMMAND_PONG, 1000);
	if (f)
		rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&big);
	assert_true(broker_alive(e));

	/* and the broker still works */
	rete_wire *w2 = connect_as(e, P_SOCIAL);
	f = submit(w2, &good);
	receipt_index(e, f, "garbage-ok");
	rete__broker_frame__free_unpacked(f, NULL);
	assert_true(broker_alive(e));
	free(valid);
	it_msg_free(&good);
	rete_wire_close(&w2);
	rete_wire_close(&w);
}

static void test_reload_cuts_off(void **state)
{
	struct env *e = *state = env_new(NULL, NULL, true);
	rete_wire *asst = connect_as(e, P_ASST);
	rete_wire_ping(asst, 1, NULL);
	Rete__BrokerFrame *f = it_recv_kind(asst, RETE__BROKER_FRAME__COMMAND_PONG, WAIT_MS);
	assert_non_null(f);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_PONG);
	rete__broker_frame__free_unpacked(f, NULL);

	/* a broken configuration is refused: the old one stays */
	tu_write_file(e->h.ini, "[broker]\nnonsense\n", 18);
	kill(e->h.pid, SIGHUP);
	/* then asst leaves the directory */
	e->with_asst = false;
	write_ini(e);
	kill(e->h.pid, SIGHUP);
	int64_t end = it_mono_ms() + WAIT_MS;
	bool refused = false;
	while (!refused && it_mono_ms() < end) {
		rete_wire_ping(asst, 2, NULL);
		f = it_recv_kind(asst, RETE__BROKER_FRAME__COMMAND_PONG, 200);
		if (f) {
			refused = f->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL &&
				  f->refusal->error == RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_PARTY;
			rete__broker_frame__free_unpacked(f, NULL);
		}
	}
	assert_true(refused);
	assert_true(broker_alive(e));
	/* the new directory is in the log */
	f = log_entries(e);
	assert_int_equal(f->result->entries->n_entries, 2);
	Rete__Message *msg = entry_msg(&f->result->entries->entries[1]);
	assert_int_equal(msg->body_case, RETE__MESSAGE__BODY_DIRECTORY);
	assert_int_equal(msg->directory->serial, 2);
	rete__message__free_unpacked(msg, NULL);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&asst);
}

static void test_check_config(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("brokercfg");
	assert_non_null(dir);
	char ini[512];
	snprintf(ini, sizeof(ini), "%s/bad.ini", dir);
	const char *text = "[broker]\norigin = a b\nlisten = http://x\ncolour = blue\n"
			   "[agency x.y]\nkind = wizard\n[policy]\nroutes = a>b\n";
	assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
	char *out = NULL;
	int rc = tu_run(&out, "%s/rete-broker -c %s --check-config", RETE_BIN_DIR, ini);
	assert_int_equal(rc, 2);
	assert_non_null(out);
	assert_non_null(strstr(out, "bad.ini:2: [broker] origin"));
	assert_non_null(strstr(out, "bad.ini:3: [broker] listen"));
	assert_non_null(strstr(out, "bad.ini:4: [broker] colour: unknown key"));
	assert_non_null(strstr(out, "bad.ini:6: [agency x.y] kind: 'wizard'"));
	assert_non_null(strstr(out, "bad.ini:8: [policy] routes: 'a>b'"));
	assert_non_null(strstr(out, "[broker] key: missing"));
	free(out);

	/* the example configuration is valid (with keys where it expects them) */
	char path[600];
	static const char *const ids[] = {"social.mantova", "cpi.mantova",   "asst.mantova",
					  "family.mantova", "coord.mantova", "audit.region"};
	enum { NIDS = sizeof(ids) / sizeof(ids[0]) };
	rete_seckey *bk = NULL, *k[NIDS] = {0};
	assert_int_equal(it_keys_make(dir, ids, NIDS, &bk, k), RETE_OK); /* and broker.mantova's */
	rete_seckey_free(&bk);
	for (int i = 0; i < NIDS; i++)
		rete_seckey_free(&k[i]);
	snprintf(path, sizeof(path), "%s/broker", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	size_t len = 0;
	char *example = tu_read_file(RETE_SOURCE_DIR "/examples/broker.ini", &len);
	assert_non_null(example);
	snprintf(path, sizeof(path), "%s/broker/broker.ini", dir);
	assert_int_equal(tu_write_file(path, example, len), 0);
	free(example);
	rc = tu_run(&out, "%s/rete-broker -c %s --check-config", RETE_BIN_DIR, path);
	if (rc != 0)
		fprintf(stderr, "%s\n", out ? out : "");
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "fine: broker broker.mantova"));
	assert_non_null(strstr(out, "6 parties (4 agencies), 7 routes"));
	free(out);

	/* a party named like the log's origin is refused: signature lines of a
	 * checkpoint are told apart by name, so that party's cosignature would
	 * replace the broker's own signature line on the stored note */
	char *same = tu_read_file(path, &len);
	assert_non_null(same);
	char *o = strstr(same, "origin = rete.example/mantova\n");
	assert_non_null(o);
	char *patched = NULL;
	assert_true(asprintf(&patched, "%.*sorigin = social.mantova\n%s", (int)(o - same), same,
			     o + strlen("origin = rete.example/mantova\n")) > 0);
	assert_int_equal(tu_write_file(path, patched, strlen(patched)), 0);
	free(same);
	free(patched);
	rc = tu_run(&out, "%s/rete-broker -c %s --check-config", RETE_BIN_DIR, path);
	assert_int_equal(rc, 2);
	assert_non_null(
	    strstr(out, "[agency social.mantova]: 'social.mantova' is the log's origin"));
	free(out);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_config),
	    cmocka_unit_test_teardown(test_submit_deliver_ack, teardown),
	    cmocka_unit_test_teardown(test_duplicate, teardown),
	    cmocka_unit_test_teardown(test_pipelined_batches, teardown),
	    cmocka_unit_test_teardown(test_verify_threads_yield, teardown),
	    cmocka_unit_test_teardown(test_unknown_key, teardown),
	    cmocka_unit_test_teardown(test_refusals, teardown),
	    cmocka_unit_test_teardown(test_offline_in_order, teardown),
	    cmocka_unit_test_teardown(test_expiry_notice, teardown),
	    cmocka_unit_test_teardown(test_events_and_queries, teardown),
	    cmocka_unit_test_teardown(test_overdue_and_refused_delivery, teardown),
	    cmocka_unit_test_teardown(test_refusal_personal_data, teardown),
	    cmocka_unit_test_teardown(test_third_party_update, teardown),
	    cmocka_unit_test_teardown(test_kill9_under_load, teardown),
	    cmocka_unit_test_teardown(test_garbage, teardown),
	    cmocka_unit_test_teardown(test_reload_cuts_off, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
