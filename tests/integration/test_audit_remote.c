/* test_audit_remote.c — `rete audit verify` at a distance and `rete audit
 * timeline` against the real rete-broker (loopback ipc:// endpoints, real
 * LMDB store in a temporary folder).
 *
 * One scenario, in order (each step relies on the one before):
 *   1. two agencies exchange referrals and updates on two cases; every
 *      delivery is acked, so the log size is known exactly (the Directory,
 *      then each message and its Delivery entry); the broker checkpoints
 *      after every commit, and the test waits until its checkpoint covers
 *      the whole log;
 *   2. a hot backup of the store is taken (the "older backup");
 *   3. the first remote verify, without a state file, fetches and verifies
 *      every entry and writes the state;
 *   4. more messages; the second run fetches exactly the new entries
 *      (JSON: fetched, entriesChecked, fromSize), a third fetches none;
 *   5. an edited state file (a frontier hash changed, then a checkpoint note
 *      re-signed by nobody) is refused with exit 2 and the reason;
 *   6. the timeline of one case, from the store folder and from the broker:
 *      the same lines, in log order, with services, statuses, reasons,
 *      outcomes, deliveries; nothing of the other case; no personal data;
 *   7. the broker is stopped, its store replaced by the older backup, and
 *      restarted: the remote verify with the newer state raises the ALARM,
 *      exit 1, with both checkpoint notes (both sizes); the state is kept;
 *   8. the restored broker then grows past the saved size with other
 *      entries (a fork): the consistency proof fails, ALARM again.
 * Then the session API of store/verify.h on the entries of that store,
 * read directly: from 0 and resumed from a middle checkpoint (the same
 * root), an altered entry named by its index, entries fed out of order or
 * short of the target, a smaller target (rolled back), a root the broker's
 * key signed for another history (a fork), a checkpoint signed by another
 * key, and resume states that are not what a verification leaves.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "codec.h"
#include "store.h"
#include "verify.h"
#include "duration.h"
#include "keys.h"
#include "testutil.h"
#include "wire.h"

#include "../integration/itest.h"

#define BROKER_ID   "broker.mantova"
#define ORIGIN	    "rete.example/mantova"
#define WAIT_MS	    it_scaled_ms(20000) /* ms; longer under valgrind */
#define PERSON_NAME "Giulia Verdi"
#define FISCAL_CODE "VRDGLI85M41E897Z"
#define CASE_A	    "case-mn-11"
#define CASE_B	    "case-mn-12"

enum { P_SOCIAL, P_CPI, P_AUDIT, NPARTIES };
static const char *const ids[NPARTIES] = {"social.mantova", "cpi.mantova", "audit.region"};

struct env {
	it_home h; /* keys[i] is ids[i]'s */
	char audit_ini[512], store[512], backup[512], state[512];
	uint64_t expected; /* the log size once every delivery is acked */
	int serial;
};

static struct env *E;

static void show_log(void)
{
	it_show_path(E->h.log, 0);
}

static void write_files(void)
{
	FILE *f = fopen(E->h.ini, "w");
	assert_non_null(f);
	fprintf(f,
		"[broker]\norigin = " ORIGIN "\nid = " BROKER_ID "\nkey = keys/" BROKER_ID ".key\n"
		"listen = %s\nevents = %s\ndata = store\ncheckpoint_every = 1\n"
		"checkpoint_interval = 1s\nheartbeat = 1s\n\n"
		"[limits]\nroutine = 5wd\nurgent = 2wd\nemergency = 1wd\n\n"
		"[agency social.mantova]\nname = Servizi sociali\nkind = social-services\n"
		"key = keys/social.mantova.pub\nservices = family-support\n\n"
		"[agency cpi.mantova]\nname = Centro per l'Impiego\nkind = job-centre\n"
		"key = keys/cpi.mantova.pub\n"
		"services = employment-orientation, training-voucher\n\n"
		"[agency audit.region]\nname = Audit\nkind = auditor\n"
		"key = keys/audit.region.pub\n\n"
		"[policy]\nroutes = social-services>job-centre, job-centre>social-services\n",
		E->h.listen, E->h.events);
	assert_int_equal(fclose(f), 0);
	f = fopen(E->audit_ini, "w");
	assert_non_null(f);
	fprintf(f,
		"[client]\nid = audit.region\nkey = keys/audit.region.key\nbroker = %s\n"
		"broker_key = keys/" BROKER_ID ".pub\ntime_zone = Europe/Rome\ntimeout = 10s\n",
		E->h.listen);
	assert_int_equal(fclose(f), 0);
}

/* pump reads what reaches the agencies for up to ms, acking every
 * delivery; returns the first frame of `kind` from party p (or NULL). */
static Rete__BrokerFrame *pump(int p, int kind, int ms)
{
	int64_t end = it_mono_ms() + ms;
	for (;;) {
		for (int q = 0; q < P_AUDIT; q++) {
			Rete__BrokerFrame *f = NULL;
			if (rete_wire_recv(E->h.w[q], q == p ? 20 : 0, &f, NULL) != RETE_OK)
				continue;
			if (f->command_case == RETE__BROKER_FRAME__COMMAND_DELIVER)
				it_ack_deliver(E->h.w[q], E->h.keys[q], ids[q], f->deliver, 0,
					       NULL);
			if (q == p && ((int)f->command_case == kind ||
				       f->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL))
				return f;
			rete__broker_frame__free_unpacked(f, NULL);
		}
		if (it_mono_ms() > end)
			return NULL;
	}
}

static void submit_msg(int from, Rete__Message *msg, const char *case_id, const uint8_t *sealed,
		       size_t sealed_len)
{
	assert_int_equal(it_sign_send(E->h.w[from], msg, ids[from], ORIGIN, case_id,
				      E->h.keys[from], sealed, sealed_len),
			 RETE_OK);
	Rete__BrokerFrame *f = pump(from, RETE__BROKER_FRAME__COMMAND_RECEIPT, WAIT_MS);
	assert_true(it_accepted(f, msg->id, E->h.log));
	E->expected += 2; /* the message, and its Delivery once acked */
}

static void referral(const char *id, int from, int to, const char *service, const char *case_id)
{
	Rete__Person person = RETE__PERSON__INIT;
	Rete__Private priv = RETE__PRIVATE__INIT;
	Rete__Operator op = RETE__OPERATOR__INIT;
	Rete__Consent cs = RETE__CONSENT__INIT;
	Rete__Referral r = RETE__REFERRAL__INIT;
	Rete__Message msg = RETE__MESSAGE__INIT;
	rete_buf sealed = {0};
	uint8_t hash[RETE_HASH_LEN];
	rete_msg m;

	person.name = PERSON_NAME;
	person.fiscal_code = FISCAL_CODE;
	priv.person = &person;
	priv.reason = "needs support";
	assert_int_equal(rete_seal(&priv, &E->h.keys[to]->pub, &sealed, hash, &m), RETE_OK);
	op.staff_id = "op-1";
	op.role = "social-worker";
	cs.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT;
	cs.given_at = rete_now_ms() - 3600000;
	cs.reference = "form-1";
	r.service = (char *)service;
	r.priority = RETE__PRIORITY__PRIORITY_URGENT;
	r.reason_code = "support";
	r.consent = &cs;
	r.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	r.private_sha256.data = hash;
	r.private_sha256.len = RETE_HASH_LEN;
	msg.id = (char *)id;
	msg.operator_ = &op;
	msg.recipient = (char *)ids[to];
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	submit_msg(from, &msg, case_id, sealed.data, sealed.len);
	rete_buf_free(&sealed);
}

static void update(const char *ref, int from, int to, Rete__Status st, const char *business,
		   const char *reason, Rete__OutcomeResult res, const char *case_id)
{
	char id[64];
	Rete__Operator op = RETE__OPERATOR__INIT;
	Rete__StatusReason sr = RETE__STATUS_REASON__INIT;
	Rete__Outcome oc = RETE__OUTCOME__INIT;
	Rete__ReferralUpdate u = RETE__REFERRAL_UPDATE__INIT;
	Rete__Message msg;

	snprintf(id, sizeof(id), "upd-%d-%ld", ++E->serial, (long)getpid());
	op.staff_id = "op-2";
	op.role = "case-manager";
	u.referral_id = (char *)ref;
	u.status = st;
	u.business_status = (char *)business;
	if (reason != NULL) {
		sr.code = (char *)reason;
		u.status_reason = &sr;
	}
	if (st == RETE__STATUS__STATUS_COMPLETED) {
		oc.result = res;
		u.outcome = &oc;
	}
	it_update_msg(&msg, id, &op, ids[to], &u);
	submit_msg(from, &msg, case_id, NULL, 0);
}

/* query asks the broker as the auditor. */
static Rete__BrokerFrame *query(Rete__Query *q)
{
	Rete__BrokerFrame *f = NULL;
	assert_int_equal(rete_wire_call(E->h.w[P_AUDIT], q, WAIT_MS, &f, NULL), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	return f;
}

/* checkpoint_size: the size of the broker's latest checkpoint (0: none). */
static uint64_t checkpoint_size(void)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__CheckpointQuery cq = RETE__CHECKPOINT_QUERY__INIT;
	rete_checkpoint cp = {0};
	q.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	q.checkpoint = &cq;
	Rete__BrokerFrame *f = query(&q);
	if (f->result->answer_case == RETE__QUERY_RESULT__ANSWER_CHECKPOINT)
		assert_int_equal(rete_checkpoint_parse(f->result->checkpoint,
						       strlen(f->result->checkpoint), &cp, NULL),
				 RETE_OK);
	rete__broker_frame__free_unpacked(f, NULL);
	return cp.size;
}

static uint64_t log_size(void)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__HealthQuery hq = RETE__HEALTH_QUERY__INIT;
	q.what_case = RETE__QUERY__WHAT_HEALTH;
	q.health = &hq;
	Rete__BrokerFrame *f = query(&q);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_HEALTH);
	uint64_t n = f->result->health->log_size;
	rete__broker_frame__free_unpacked(f, NULL);
	return n;
}

/* settle acks deliveries until the log has E->expected entries and the
 * broker's checkpoint covers them all. */
static void settle(void)
{
	int64_t end = it_mono_ms() + WAIT_MS;
	uint64_t size = 0, cp = 0;
	while (it_mono_ms() < end) {
		size = log_size();
		cp = checkpoint_size();
		if (size == E->expected && cp == size)
			return;
		assert_true(size <= E->expected);
		Rete__BrokerFrame *f = pump(P_SOCIAL, -1, 50);
		if (f != NULL)
			rete__broker_frame__free_unpacked(f, NULL);
	}
	show_log();
	fail_msg("the log has %llu entries (checkpoint %llu); expected %llu",
		 (unsigned long long)size, (unsigned long long)cp, (unsigned long long)E->expected);
}

static void connect_all(void)
{
	rete_msg m;
	for (int i = 0; i < NPARTIES; i++)
		assert_int_equal(it_home_connect(&E->h, i), RETE_OK);
	assert_true(it_home_ready(&E->h, E->h.w[P_AUDIT], WAIT_MS));
	for (int i = 0; i < P_AUDIT; i++)
		assert_int_equal(rete_wire_hello(E->h.w[i], ids[i], "test_audit_remote", &m),
				 RETE_OK);
}

static int setup(void **state)
{
	(void)state;
	E = calloc(1, sizeof(*E));
	assert_non_null(E);
	assert_int_equal(it_home_open(&E->h, "auditremote", ids, NPARTIES), RETE_OK);
	snprintf(E->audit_ini, sizeof(E->audit_ini), "%s/audit.ini", E->h.dir);
	snprintf(E->store, sizeof(E->store), "%s/store", E->h.dir);
	snprintf(E->backup, sizeof(E->backup), "%s/backup-older", E->h.dir);
	snprintf(E->state, sizeof(E->state), "%s/audit.state", E->h.dir);
	write_files();
	assert_true(it_home_start(&E->h, false));
	connect_all();
	E->expected = 1; /* the Directory */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (E == NULL)
		return 0;
	it_home_close(&E->h);
	free(E);
	E = NULL;
	return 0;
}

static void no_personal_data(const char *text)
{
	assert_null(strstr(text, PERSON_NAME));
	assert_null(strstr(text, "Verdi"));
	assert_null(strstr(text, FISCAL_CODE));
}

/* show prints a command's output when RETE_TEST_SHOW_OUTPUT is set. */
static void show(const char *what, const char *out)
{
	if (getenv("RETE_TEST_SHOW_OUTPUT") != NULL)
		fprintf(stderr, "---- %s ----\n%s---- end ----\n", what, out);
}

/* verify_remote runs the remote verify; *out gets its output. The JSON
 * runs ask for 3 entries per query: many batches, each asked for while the
 * one before is verified. */
static int verify_remote(char **out, const char *state, bool json)
{
	/* with --json, standard error (the ALARM line) goes to a file */
	return tu_run(out, "%s/rete audit verify --broker %s -c %s --state %s%s 2>%s%s",
		      RETE_BIN_DIR, E->h.listen, E->audit_ini, state,
		      json ? " --json --batch 3" : "", json ? E->h.dir : "&1",
		      json ? "/verify.err" : "");
}

static json_t *parse_json(const char *out)
{
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	if (j == NULL)
		fprintf(stderr, "not JSON (%s):\n%s\n", je.text, out);
	assert_non_null(j);
	return j;
}

static json_int_t jint(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);
	if (k2 != NULL)
		v = json_object_get(v, k2);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

/* the_scenario runs steps 1 to 8 (see the top of the file). */
static void test_remote_audit(void **state)
{
	(void)state;
	char *out = NULL, ref_a1[32], ref_a2[32], ref_b1[32];
	const int U = RETE__OUTCOME_RESULT__OUTCOME_RESULT_UNSPECIFIED;
	int rc;

	/* 1. the first part of the log */
	snprintf(ref_a1, sizeof(ref_a1), "ref-a1-%ld", (long)getpid());
	snprintf(ref_a2, sizeof(ref_a2), "ref-a2-%ld", (long)getpid());
	snprintf(ref_b1, sizeof(ref_b1), "ref-b1-%ld", (long)getpid());
	referral(ref_a1, P_SOCIAL, P_CPI, "employment-orientation", CASE_A);
	referral(ref_b1, P_CPI, P_SOCIAL, "family-support", CASE_B);
	settle(); /* both received: updates may follow */
	update(ref_a1, P_CPI, P_SOCIAL, RETE__STATUS__STATUS_ACCEPTED, "intake-booked", NULL, U,
	       CASE_A);
	settle();
	uint64_t size1 = E->expected;

	/* 2. the older backup, taken hot */
	rc = tu_run(&out, "%s/rete store backup %s %s 2>&1", RETE_BIN_DIR, E->store, E->backup);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	free(out);

	/* 3. the first run verifies everything from 0 */
	rc = verify_remote(&out, E->state, false);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	char want[128];
	snprintf(want, sizeof(want), "fetched %llu entries, verified %llu new entries",
		 (unsigned long long)size1, (unsigned long long)size1);
	assert_non_null(strstr(out, want));
	show("first run", out);
	free(out);
	assert_int_equal(access(E->state, R_OK), 0);

	/* 4. the log grows; the second run fetches only the new entries */
	update(ref_a1, P_CPI, P_SOCIAL, RETE__STATUS__STATUS_IN_PROGRESS, NULL, NULL, U, CASE_A);
	update(ref_a1, P_CPI, P_SOCIAL, RETE__STATUS__STATUS_COMPLETED, "placed", NULL,
	       RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL, CASE_A);
	referral(ref_a2, P_SOCIAL, P_CPI, "training-voucher", CASE_A);
	update(ref_b1, P_SOCIAL, P_CPI, RETE__STATUS__STATUS_ACCEPTED, NULL, NULL, U, CASE_B);
	settle();
	update(ref_a2, P_CPI, P_SOCIAL, RETE__STATUS__STATUS_REJECTED, NULL, "lack-of-capacity", U,
	       CASE_A);
	settle();
	uint64_t size2 = E->expected;
	assert_true(size2 > size1);
	rc = verify_remote(&out, E->state, true);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	json_t *j = parse_json(out);
	assert_true(json_is_true(json_object_get(j, "holds")));
	assert_int_equal(jint(j, "fetched", NULL), (json_int_t)(size2 - size1));
	assert_int_equal(jint(j, "entriesChecked", NULL), (json_int_t)(size2 - size1));
	assert_int_equal(jint(j, "fromSize", NULL), (json_int_t)size1);
	assert_int_equal(jint(j, "savedCheckpoint", "size"), (json_int_t)size1);
	assert_int_equal(jint(j, "brokerCheckpoint", "size"), (json_int_t)size2);
	json_decref(j);
	free(out);
	rc = verify_remote(&out, E->state, false);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "fetched 0 entries, verified 0 new entries"));
	free(out);
	char *good_state = tu_read_file(E->state, NULL);
	assert_non_null(good_state);

	/* 5. an edited state file is refused, and says why */
	char tampered[600];
	snprintf(tampered, sizeof(tampered), "%s/tampered.state", E->h.dir);
	j = parse_json(good_state);
	json_t *fr = json_object_get(j, "frontier");
	assert_true(json_array_size(fr) > 0);
	json_array_set_new(fr, 0, json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	char *text = json_dumps(j, JSON_INDENT(2));
	assert_int_equal(tu_write_file(tampered, text, strlen(text)), 0);
	free(text);
	json_decref(j);
	rc = verify_remote(&out, tampered, false);
	assert_int_equal(rc, 2);
	show("tampered state", out);
	assert_non_null(strstr(out, "altered"));
	assert_null(strstr(out, "fetched"));
	free(out);
	assert_int_equal(tu_write_file(tampered, "{\"format\": 1", 12), 0);
	rc = verify_remote(&out, tampered, false);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "is not a state"));
	free(out);
	/* a state whose folder is missing (or a file) is warned about before
	 * the log is fetched; the log is verified all the same (an alarm
	 * would still be exit 1: test_audit_state_dir.sh), and the run ends
	 * in exit 2, the state not saved */
	char nodir[700];
	snprintf(nodir, sizeof(nodir), "%s/audit.ini/st.json", E->h.dir);
	const char *nostate[] = {"/nonexistent/dir/st.json", nodir};
	for (int k = 0; k < 2; k++) {
		rc = verify_remote(&out, nostate[k], false);
		if (rc != 2 || strncmp(out, "rete audit verify: warning: --state", 35) != 0 ||
		    strstr(out, "holds") == NULL || strstr(out, "was not saved") == NULL ||
		    strstr(out, "state saved in") != NULL)
			fail_msg("--state %s: exit %d, expected 2, the warning first, the log "
				 "verified, the state not saved: %s",
				 nostate[k], rc, out);
		free(out);
	}
	/* --no-replay at a distance: the remote verify never replays (the
	 * replay needs the store), so the option is refused, not ignored */
	rc = tu_run(&out, "%s/rete audit verify --broker %s -c %s --state %s --no-replay 2>&1",
		    RETE_BIN_DIR, E->h.listen, E->audit_ini, E->state);
	if (rc != 2 || strstr(out, "--no-replay") == NULL || strstr(out, "fetched") != NULL)
		fail_msg("--no-replay at a distance: exit %d, expected 2 naming it: %s", rc, out);
	free(out);
	/* the good one was left alone */
	char *now = tu_read_file(E->state, NULL);
	assert_string_equal(now, good_state);
	free(now);

	/* 6. the timeline of case A, from the store and from the broker */
	char *local = NULL, *remote = NULL;
	rc = tu_run(&local, "%s/rete audit timeline %s --case " CASE_A " 2>&1", RETE_BIN_DIR,
		    E->store);
	assert_int_equal(rc, 0);
	rc = tu_run(&remote, "%s/rete audit timeline -c %s --case " CASE_A " 2>&1", RETE_BIN_DIR,
		    E->audit_ini);
	assert_int_equal(rc, 0);
	show("timeline, local", local);
	show("timeline, remote", remote);
	no_personal_data(local);
	assert_null(strstr(local, ref_b1));
	assert_null(strstr(local, "family-support"));
	/* in log order */
	const char *steps[] = {
	    "referral ref-a1-",
	    "social.mantova -> cpi.mantova, service employment-orientation, priority urgent",
	    "delivered to cpi.mantova",
	    "status accepted, business status 'intake-booked'",
	    "status in-progress",
	    "status completed, business status 'placed', outcome successful",
	    "service training-voucher",
	    "delivered to cpi.mantova",
	    "status rejected, reason lack-of-capacity\n",
	    "delivered to social.mantova",
	    "12 entries",
	    NULL};
	const char *at = local;
	for (int i = 0; steps[i] != NULL; i++) {
		const char *hit = strstr(at, steps[i]);
		if (hit == NULL)
			fprintf(stderr, "timeline: '%s' missing (in order) in:\n%s\n", steps[i],
				local);
		assert_non_null(hit);
		at = hit + strlen(steps[i]);
	}
	assert_non_null(strstr(local, "times in Europe/Rome"));
	/* the same entries, the same lines, from the broker */
	const char *l1 = strchr(local, '\n'), *r1 = strchr(remote, '\n');
	assert_non_null(l1);
	assert_non_null(r1);
	if (strcmp(l1, r1) != 0)
		fprintf(stderr, "local:\n%s\nremote:\n%s\n", local, remote);
	assert_string_equal(l1, r1);
	free(local);
	free(remote);

	/* 7. the store is replaced by the older backup */
	it_home_stop(&E->h, WAIT_MS);
	for (int i = 0; i < NPARTIES; i++)
		rete_wire_close(&E->h.w[i]);
	tu_rmrf(E->store);
	assert_int_equal(rename(E->backup, E->store), 0);
	/* An honest broker refuses the older store: its state file remembers
	 * the checkpoint it signed (test_store_identity). An operator who
	 * deletes that file gets past it, and the auditor must still catch
	 * the shorter log. */
	char state_file[sizeof(E->store) + 8];
	snprintf(state_file, sizeof(state_file), "%s.state", E->store);
	assert_int_equal(unlink(state_file), 0);
	/* ... and strips the mark `rete store backup` leaves in its copy
	 * (meta "copy", which the broker also refuses without --restore) */
	it_strip_copy_mark(E->store);
	assert_true(it_home_start(&E->h, false));
	connect_all();
	assert_int_equal(checkpoint_size(), size1);
	rc = verify_remote(&out, E->state, false);
	if (rc != 1)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 1);
	show("older backup", out);
	assert_non_null(strstr(out, "ALARM: the broker's log is not consistent with the "
				    "checkpoint saved in"));
	char s1[64], s2[64];
	snprintf(s1, sizeof(s1), "(size %llu", (unsigned long long)size1);
	snprintf(s2, sizeof(s2), "(size %llu", (unsigned long long)size2);
	assert_non_null(strstr(out, s1));
	assert_non_null(strstr(out, s2));
	/* both notes, whole */
	snprintf(s1, sizeof(s1), ORIGIN "\n%llu\n", (unsigned long long)size1);
	snprintf(s2, sizeof(s2), ORIGIN "\n%llu\n", (unsigned long long)size2);
	assert_non_null(strstr(out, s1));
	assert_non_null(strstr(out, s2));
	free(out);
	now = tu_read_file(E->state, NULL);
	assert_string_equal(now, good_state); /* kept for the evidence */
	free(now);

	/* 8. the restored broker grows past the saved size: a fork */
	E->expected = size1;
	E->serial += 100;
	while (E->expected <= size2) {
		char rid[48];
		snprintf(rid, sizeof(rid), "ref-fork-%llu-%ld", (unsigned long long)E->expected,
			 (long)getpid());
		referral(rid, P_SOCIAL, P_CPI, "employment-orientation", CASE_B);
	}
	settle();
	rc = verify_remote(&out, E->state, true);
	if (rc != 1)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 1);
	j = parse_json(out);
	assert_true(json_is_true(json_object_get(j, "alarm")));
	assert_true(json_is_false(json_object_get(j, "holds")));
	assert_int_equal(jint(j, "savedCheckpoint", "size"), (json_int_t)size2);
	assert_int_equal(jint(j, "brokerCheckpoint", "size"), (json_int_t)E->expected);
	assert_non_null(strstr(json_string_value(json_object_get(j, "reason")), "does not extend"));
	assert_string_equal(json_string_value(json_object_get(j, "origin")), ORIGIN);
	json_decref(j);
	free(out);
	snprintf(s1, sizeof(s1), "%s/verify.err", E->h.dir);
	out = tu_read_file(s1, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, "ALARM: the broker's log is not consistent"));
	free(out);
	free(good_state);
}

/* ---- the session API on the broker's store, directly ---------------------------- */

struct lib {
	rete_store *l_s;
	rete_buf *l_e; /* every entry */
	uint64_t l_n;
	uint64_t l_mid; /* a checkpoint inside the log */
	char *l_mid_note;
	uint64_t l_size; /* the latest checkpoint */
	char *l_note;
};

static rete_err lib_proof(void *ctx, uint64_t size1, uint64_t size2,
			  uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m)
{
	struct lib *l = ctx;
	return rete_store_consistency_proof(l->l_s, NULL, size1, size2, proof, n, m);
}

static int pick_mid(void *ctx, uint64_t size, const char *note)
{
	struct lib *l = ctx;
	if (l->l_mid_note == NULL && size >= l->l_size / 2 && size < l->l_size && size > 1) {
		l->l_mid = size;
		l->l_mid_note = strdup(note);
	}
	return 0;
}

static int pick_first(void *ctx, uint64_t size, const char *note)
{
	char **out = ctx;
	(void)size;
	if (*out == NULL)
		*out = strdup(note);
	return 0;
}

static rete_verify_options lib_opt(void)
{
	rete_verify_options o;
	memset(&o, 0, sizeof(o));
	o.broker_key = E->h.broker->pub;
	o.threads = 2;
	return o;
}

/* lib_run verifies [from, size) of the store as a session resumed from
 * *res (NULL: from 0) towards note, feeding entries in batches of 2, with
 * entry `flip` (if < size) altered in its last byte. */
static rete_err lib_run(struct lib *l, const rete_verify_resume *res, const char *note,
			uint64_t flip, rete_verify_report *rep, rete_verify_session **keep)
{
	rete_verify_options o = lib_opt();
	rete_verify_session *vs = NULL;
	rete_msg m;
	rete_err e;

	assert_int_equal(rete_verify_session_open(&vs, &o, res, &m), RETE_OK);
	assert_int_equal(rete_verify_session_target(vs, note, strlen(note), lib_proof, l, &m),
			 RETE_OK);
	uint64_t target = rete_verify_session_target_size(vs);
	if (flip < target)
		l->l_e[flip].data[l->l_e[flip].len - 1] ^= 1;
	e = RETE_OK;
	for (uint64_t i = rete_verify_session_size(vs); e == RETE_OK && i < target; i += 2) {
		size_t k = target - i < 2 ? (size_t)(target - i) : 2;
		e = rete_verify_session_feed(vs, i, &l->l_e[i], k, &m);
	}
	if (flip < target)
		l->l_e[flip].data[l->l_e[flip].len - 1] ^= 1;
	e = rete_verify_session_finish(vs, rep, &m);
	if (keep != NULL)
		*keep = vs;
	else
		rete_verify_session_close(&vs);
	return e;
}

static void test_session_library(void **state)
{
	(void)state;
	struct lib l;
	rete_verify_report rep, rep2;
	rete_verify_resume res;
	rete_verify_session *vs = NULL, *mid = NULL;
	rete_verify_options o = lib_opt();
	rete_msg m;

	memset(&l, 0, sizeof(l));
	assert_int_equal(rete_store_open(&l.l_s, E->store, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_latest(l.l_s, NULL, &l.l_size, &l.l_note, &m),
			 RETE_OK);
	assert_true(l.l_size >= 8);
	assert_int_equal(rete_store_checkpoints_iter(l.l_s, NULL, 0, pick_mid, &l, &m), RETE_OK);
	assert_non_null(l.l_mid_note);
	l.l_n = l.l_size;
	l.l_e = calloc(l.l_n, sizeof(*l.l_e));
	assert_non_null(l.l_e);
	for (uint64_t i = 0; i < l.l_n; i++)
		assert_int_equal(rete_store_entry(l.l_s, NULL, i, &l.l_e[i], &m), RETE_OK);

	/* the whole log, from 0 */
	assert_int_equal(lib_run(&l, NULL, l.l_note, UINT64_MAX, &rep, NULL), RETE_OK);
	assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
	assert_int_equal(rep.entries, l.l_size);
	assert_int_equal(rep.latest_size, l.l_size);

	/* up to the middle, then resumed from its state: the same root */
	assert_int_equal(lib_run(&l, NULL, l.l_mid_note, UINT64_MAX, &rep2, &mid), RETE_OK);
	assert_int_equal(rete_verify_session_state(mid, &res, &m), RETE_OK);
	assert_int_equal(res.frontier.mf_size, l.l_mid);
	assert_non_null(res.directory);
	assert_int_equal(lib_run(&l, &res, l.l_note, UINT64_MAX, &rep2, NULL), RETE_OK);
	assert_int_equal(rep2.entries, l.l_size - l.l_mid);
	assert_memory_equal(rep2.root, rep.root, RETE_MERKLE_HASH);

	/* an altered entry after the resumed prefix is named */
	uint64_t bad = l.l_mid + (l.l_size - l.l_mid) / 2;
	assert_int_equal(lib_run(&l, &res, l.l_note, bad, &rep2, NULL), RETE_EBADSIG);
	assert_int_equal(rep2.verdict, RETE_VERIFY_FAILS);
	assert_true(rep2.has_bad_entry);
	assert_int_equal(rep2.bad_index, bad);
	assert_int_equal(rep2.entries, bad - l.l_mid);

	/* entries out of order, or past the target */
	assert_int_equal(rete_verify_session_open(&vs, &o, &res, &m), RETE_OK);
	assert_int_equal(
	    rete_verify_session_target(vs, l.l_note, strlen(l.l_note), lib_proof, &l, &m), RETE_OK);
	assert_int_equal(rete_verify_session_feed(vs, l.l_mid + 1, &l.l_e[l.l_mid + 1], 1, &m),
			 RETE_EINVAL);
	assert_int_equal(rete_verify_session_feed(vs, l.l_mid, &l.l_e[l.l_mid], 1, &m), RETE_OK);
	assert_int_equal(rete_verify_session_finish(vs, &rep2, &m), RETE_EINVAL); /* not all */
	assert_int_equal(rep2.verdict, RETE_VERIFY_ERROR);
	rete_verify_session_close(&vs);

	/* a target smaller than the resumed size: rolled back */
	assert_int_equal(rete_verify_session_open(&vs, &o, &res, &m), RETE_OK);
	char *small = NULL;
	rete_checkpoint scp;
	assert_int_equal(rete_store_checkpoints_iter(l.l_s, NULL, 0, pick_first, &small, &m),
			 RETE_OK);
	assert_non_null(small);
	assert_int_equal(rete_checkpoint_parse(small, strlen(small), &scp, &m), RETE_OK);
	assert_true(scp.size < l.l_mid);
	assert_int_equal(rete_verify_session_target(vs, small, strlen(small), lib_proof, &l, &m),
			 RETE_EPROOF);
	assert_non_null(strstr(m.text, "smaller than"));
	free(small);
	rete_verify_session_close(&vs);

	/* a fork: the broker's key signs another root at the latest size */
	uint8_t other[RETE_MERKLE_HASH];
	char *forged = NULL;
	memcpy(other, rep.root, sizeof(other));
	other[0] ^= 0x80;
	assert_int_equal(rete_checkpoint_sign(ORIGIN, l.l_size, other, E->h.broker, &forged, &m),
			 RETE_OK);
	assert_int_equal(rete_verify_session_open(&vs, &o, &res, &m), RETE_OK);
	assert_int_equal(rete_verify_session_target(vs, forged, strlen(forged), lib_proof, &l, &m),
			 RETE_EPROOF);
	assert_non_null(strstr(m.text, "does not extend"));
	rete_verify_session_close(&vs);
	/* from 0 there is nothing to be consistent with: the root decides */
	assert_int_equal(rete_verify_session_open(&vs, &o, NULL, &m), RETE_OK);
	assert_int_equal(rete_verify_session_target(vs, forged, strlen(forged), lib_proof, &l, &m),
			 RETE_OK);
	assert_int_equal(rete_verify_session_feed(vs, 0, l.l_e, (size_t)l.l_size, &m),
			 RETE_ECORRUPT);
	assert_int_equal(rete_verify_session_finish(vs, &rep2, &m), RETE_ECORRUPT);
	assert_int_equal(rep2.verdict, RETE_VERIFY_FAILS);
	rete_verify_session_close(&vs);
	free(forged);

	/* a checkpoint signed by someone else is refused */
	assert_int_equal(
	    rete_checkpoint_sign(ORIGIN, l.l_size, rep.root, E->h.keys[P_SOCIAL], &forged, &m),
	    RETE_OK);
	assert_int_equal(rete_verify_session_open(&vs, &o, NULL, &m), RETE_OK);
	assert_int_equal(rete_verify_session_target(vs, forged, strlen(forged), lib_proof, &l, &m),
			 RETE_EBADSIG);
	rete_verify_session_close(&vs);

	/* resume states that are not what a verification leaves */
	rete_verify_resume bad_res = res;
	bad_res.frontier.mf_hash[__builtin_ctzll(bad_res.frontier.mf_size)][0] ^= 1;
	assert_int_equal(rete_verify_session_open(&vs, &o, &bad_res, &m), RETE_ECORRUPT);
	assert_null(vs);
	bad_res = res;
	bad_res.note = forged; /* signed by an agency, not the broker */
	bad_res.note_len = strlen(forged);
	assert_int_equal(rete_verify_session_open(&vs, &o, &bad_res, &m), RETE_EBADSIG);
	bad_res = res;
	bad_res.directory = l.l_e[1].data; /* not a Directory */
	bad_res.directory_len = l.l_e[1].len;
	assert_int_equal(rete_verify_session_open(&vs, &o, &bad_res, &m), RETE_EINVAL);
	assert_null(vs);
	free(forged);

	rete_verify_session_close(&mid);
	for (uint64_t i = 0; i < l.l_n; i++)
		rete_buf_free(&l.l_e[i]);
	free(l.l_e);
	free(l.l_note);
	free(l.l_mid_note);
	rete_store_close(&l.l_s);
}

int main(void)
{
	/* one broker and one store for both: the library test reads the store
	 * the scenario left (the restored backup, grown into a fork) */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_remote_audit),
	    cmocka_unit_test(test_session_library),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
