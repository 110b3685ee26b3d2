/* test_monitor_broker.c — `rete monitor` and `rete report` against the real
 * rete-broker.
 *
 * The group setup writes keys, broker.ini and coord.ini into a fresh
 * folder, starts the broker on ipc:// endpoints there and waits for it by
 * pinging; it starts the live monitor in a private tmux server BEFORE any
 * referral exists (so the live view is built from events alone), then
 * drives six referrals through the lifecycle as the agencies (signed
 * messages, deliveries acked by the performers): completed successful,
 * rejected for lack of capacity, completed unsuccessful, cancelled, one
 * emergency referral left unanswered until the broker flags it overdue,
 * and one on hold. The sealed parts carry a person's name and fiscal code;
 * no output may contain them.
 *
 * Then: `rete monitor --once --json` gives exactly the expected counts;
 * `rete report --format csv` gives the expected rows, the same from the
 * broker (-c) and from the store folder read beside the running broker
 * (--store); the tmux pane shows the overdue referral at the top, the
 * counts built from events, and the agency filter working. Last, a real
 * gap: a second live monitor is frozen (SIGSTOP) while the broker restarts
 * and logs an entry nobody receives the event of; continued, it notices the
 * gap, takes a new snapshot and shows the same counts with every entry
 * counted once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
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

#include <cmocka.h>

#include "codec.h"
#include "duration.h"
#include "keys.h"
#include "testutil.h"
#include "wire.h"

#include "../integration/itest.h"

#define BROKER_ID   "broker.mantova"
#define ORIGIN	    "rete.example/mantova"
#define WAIT_MS	    it_scaled_ms(15000) /* ms; longer under valgrind */
#define PERSON_NAME "Maria Bianchi"
#define FISCAL_CODE "BNCMRA80A41E897X"

enum { P_SOCIAL, P_CPI, P_ASST, P_COORD, NPARTIES };
static const char *const ids[NPARTIES] = {"social.mantova", "cpi.mantova", "asst.mantova",
					  "coord.mantova"};

struct env {
	it_home h; /* keys[i] is ids[i]'s */
	char coord_ini[512], tmux[64];
	const char *session; /* the tmux session pane() reads */
	pid_t frozen;	     /* a monitor stopped with SIGSTOP, until SIGCONT */
	bool tmux_started;
	char rid[6][32]; /* referral ids R1..R6 */
};

static struct env *E;

static void show_log(void)
{
	it_show_path(E->h.log, 0);
}

static void write_files(struct env *e)
{
	FILE *f = fopen(e->h.ini, "w");
	assert_non_null(f);
	fprintf(f,
		"[broker]\norigin = " ORIGIN "\nid = " BROKER_ID "\nkey = keys/" BROKER_ID ".key\n"
		"listen = %s\nevents = %s\ndata = store\ncheckpoint_interval = 1s\n"
		"heartbeat = 1s\n\n"
		"[limits]\nroutine = 5wd\nurgent = 1wd\nemergency = 2s\n\n"
		"[agency social.mantova]\nname = Servizi sociali\nkind = social-services\n"
		"key = keys/social.mantova.pub\nservices = family-support\n\n"
		"[agency cpi.mantova]\nname = Centro per l'Impiego\nkind = job-centre\n"
		"key = keys/cpi.mantova.pub\n"
		"services = employment-orientation, training-voucher\n\n"
		"[agency asst.mantova]\nname = ASST\nkind = health\n"
		"key = keys/asst.mantova.pub\nservices = paediatrics\n\n"
		"[agency coord.mantova]\nname = Coordinamento\nkind = coordinator\n"
		"key = keys/coord.mantova.pub\n\n"
		"[policy]\nroutes = social-services>job-centre, social-services>health, "
		"job-centre>social-services\n",
		e->h.listen, e->h.events);
	assert_int_equal(fclose(f), 0);
	f = fopen(e->coord_ini, "w");
	assert_non_null(f);
	fprintf(f,
		"; the coordinator of the test network\n[client]\nid = coord.mantova\n"
		"key = keys/coord.mantova.key\nbroker = %s\nbroker_key = keys/" BROKER_ID ".pub\n"
		"events = %s\ntime_zone = Europe/Rome\ntimeout = 10s\n",
		e->h.listen, e->h.events);
	assert_int_equal(fclose(f), 0);
}

static void submit_msg(int from, Rete__Message *msg, const uint8_t *sealed, size_t sealed_len)
{
	assert_int_equal(it_sign_send(E->h.w[from], msg, ids[from], ORIGIN, "case-mn-7",
				      E->h.keys[from], sealed, sealed_len),
			 RETE_OK);
	Rete__BrokerFrame *f = it_recv_acking(E->h.w[from], RETE__BROKER_FRAME__COMMAND_RECEIPT,
					      WAIT_MS, E->h.keys[from], ids[from], NULL);
	assert_true(it_accepted(f, msg->id, E->h.log));
}

static void referral(int k, int from, int to, const char *service, Rete__Priority prio,
		     Rete__AgeBand band)
{
	Rete__Contact ct = RETE__CONTACT__INIT;
	Rete__Contact *cts[1] = {&ct};
	Rete__Person person = RETE__PERSON__INIT;
	Rete__Private priv = RETE__PRIVATE__INIT;
	Rete__Operator op = RETE__OPERATOR__INIT;
	Rete__Consent cs = RETE__CONSENT__INIT;
	Rete__Referral r = RETE__REFERRAL__INIT;
	Rete__Message msg = RETE__MESSAGE__INIT;
	rete_buf sealed = {0};
	uint8_t hash[RETE_HASH_LEN];
	rete_msg m;

	snprintf(E->rid[k], sizeof(E->rid[k]), "ref-%d-%ld", k + 1, (long)getpid());
	ct.kind = "phone";
	ct.value = "+39 0376 000000";
	person.name = PERSON_NAME;
	person.fiscal_code = FISCAL_CODE;
	person.birth_date = "1980-01-01";
	person.contacts = cts;
	person.n_contacts = 1;
	priv.person = &person;
	priv.reason = "needs support";
	assert_int_equal(rete_seal(&priv, &E->h.keys[to]->pub, &sealed, hash, &m), RETE_OK);
	op.staff_id = "op-1";
	op.role = "social-worker";
	cs.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT;
	cs.given_at = rete_now_ms() - 3600000;
	cs.reference = "form-1";
	r.service = (char *)service;
	r.priority = prio;
	r.reason_code = "support";
	r.consent = &cs;
	r.age_band = band;
	r.private_sha256.data = hash;
	r.private_sha256.len = RETE_HASH_LEN;
	msg.id = E->rid[k];
	msg.operator_ = &op;
	msg.recipient = (char *)ids[to];
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	submit_msg(from, &msg, sealed.data, sealed.len);
	rete_buf_free(&sealed);
}

static void update(int k, int from, int to, Rete__Status st, const char *reason,
		   Rete__OutcomeResult res, Rete__OutcomeReason why)
{
	static int serial;
	char id[64];
	Rete__Operator op = RETE__OPERATOR__INIT;
	Rete__StatusReason sr = RETE__STATUS_REASON__INIT;
	Rete__Outcome oc = RETE__OUTCOME__INIT;
	Rete__ReferralUpdate u = RETE__REFERRAL_UPDATE__INIT;
	Rete__Message msg;

	snprintf(id, sizeof(id), "upd-%d-%ld", ++serial, (long)getpid());
	op.staff_id = "op-2";
	op.role = "case-manager";
	u.referral_id = E->rid[k];
	u.status = st;
	if (reason != NULL) {
		sr.code = (char *)reason;
		u.status_reason = &sr;
	}
	if (st == RETE__STATUS__STATUS_COMPLETED) {
		oc.result = res;
		oc.reason = why;
		u.outcome = &oc;
	}
	it_update_msg(&msg, id, &op, ids[to], &u);
	submit_msg(from, &msg, NULL, 0);
}

/* touch_r6 gives the on-hold referral R6 a new business status (the same
 * status): one more log entry and event, no count changes. */
static void touch_r6(int k)
{
	char id[64], bs[32];
	Rete__Operator op = RETE__OPERATOR__INIT;
	Rete__ReferralUpdate u = RETE__REFERRAL_UPDATE__INIT;
	Rete__StatusReason sr = RETE__STATUS_REASON__INIT;
	Rete__Message msg;

	snprintf(id, sizeof(id), "touch-%d-%ld", k, (long)getpid());
	sr.code = "other";
	u.status_reason = &sr;
	snprintf(bs, sizeof(bs), "waiting-%d", k);
	op.staff_id = "op-3";
	op.role = "social-worker";
	u.referral_id = E->rid[5];
	u.status = RETE__STATUS__STATUS_ON_HOLD; /* the same status */
	u.business_status = bs;
	it_update_msg(&msg, id, &op, ids[P_CPI], &u);
	submit_msg(P_SOCIAL, &msg, NULL, 0);
}

/* snapshot asks the broker as the coordinator. */
static Rete__BrokerFrame *snapshot(void)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__SnapshotQuery sq = RETE__SNAPSHOT_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	q.what_case = RETE__QUERY__WHAT_SNAPSHOT;
	q.snapshot = &sq;
	assert_int_equal(rete_wire_call(E->h.w[P_COORD], &q, WAIT_MS, &f, NULL), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_SNAPSHOT);
	return f;
}

static const Rete__ReferralInfo *find_ref(const Rete__Snapshot *s, const char *id)
{
	for (size_t i = 0; i < s->n_referrals; i++)
		if (strcmp(s->referrals[i]->id, id) == 0)
			return s->referrals[i];
	return NULL;
}

/* wait_until polls the snapshot until referral k has status st (and is
 * overdue when want_overdue), keeping the agencies' deliveries acked. */
static void wait_until(int k, Rete__Status st, bool want_overdue)
{
	int64_t end = it_mono_ms() + WAIT_MS;
	for (;;) {
		Rete__BrokerFrame *f = snapshot();
		const Rete__ReferralInfo *r = find_ref(f->result->snapshot, E->rid[k]);
		bool ok = r != NULL && r->status == st && (!want_overdue || r->overdue);
		if (!ok && it_mono_ms() > end)
			fprintf(stderr, "referral %s: %s, status %d, overdue %d, log size %llu\n",
				E->rid[k], r ? "known" : "unknown", r ? (int)r->status : 0,
				r ? (int)r->overdue : 0,
				(unsigned long long)f->result->snapshot->log_size);
		rete__broker_frame__free_unpacked(f, NULL);
		if (ok)
			return;
		if (it_mono_ms() > end) {
			show_log();
			fail_msg("referral %s never reached status %d%s", E->rid[k], st,
				 want_overdue ? " overdue" : "");
		}
		/* let the agencies take and ack what is delivered to them */
		for (int p = 0; p < P_COORD; p++) {
			if (p == P_ASST)
				continue;
			Rete__BrokerFrame *x =
			    it_recv_acking(E->h.w[p], -1, 30, E->h.keys[p], ids[p], NULL);
			if (x)
				rete__broker_frame__free_unpacked(x, NULL);
		}
	}
}

/* pane returns the screen of the session (caller frees). Not inlined: GCC
 * then mistakes pointers into the copy for pointers to tu_run's local. */
__attribute__((noinline)) static char *pane(void)
{
	char *out = NULL;
	tu_run(&out, "tmux -L %s capture-pane -p -t %s", E->tmux, E->session);
	assert_non_null(out);
	return out;
}

/* wait_pane waits until the pane shows every string of want (NULL-ended)
 * and none of avoid; returns the pane (caller frees). */
static char *wait_pane(const char *const *want, const char *const *avoid)
{
	int64_t end = it_mono_ms() + WAIT_MS;
	for (;;) {
		char *p = pane();
		bool ok = true;
		for (size_t i = 0; want && want[i]; i++)
			ok = ok && strstr(p, want[i]) != NULL;
		for (size_t i = 0; avoid && avoid[i]; i++)
			ok = ok && strstr(p, avoid[i]) == NULL;
		if (ok)
			return p;
		if (it_mono_ms() > end) {
			fprintf(stderr, "---- pane ----\n%s---- end ----\n", p);
			free(p);
			fail_msg("the monitor's pane never showed what was expected");
		}
		free(p);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL); /* polling a terminal screen: no event to wait on */
	}
}

/* quit_monitor presses q in the monitor of session and waits until the
 * session has ended; teardown then leaves tmux alone (tmux_started). */
static void quit_monitor(const char *session)
{
	assert_int_equal(tu_run(NULL, "tmux -L %s send-keys -t %s q", E->tmux, session), 0);
	int64_t end = it_mono_ms() + WAIT_MS;
	while (tu_run(NULL, "tmux -L %s has-session -t %s", E->tmux, session) == 0) {
		if (it_mono_ms() > end)
			fail_msg("the monitor did not quit on q");
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL); /* waiting for another process's exit */
	}
	E->tmux_started = false;
}

static void label5(char *out, size_t n);

/* At 80x24 (issue 16): the live view fits; columns that do not fit are
 * dropped whole and said so, never cut mid-word; the requester column and
 * who waits on whom stay; statuses are words; the referral is named by its
 * label; the time in the header is local (the network's zone). */
static void test_monitor_80x24(void **state)
{
	(void)state;
	char lab[32];
	label5(lab, sizeof(lab));
	int rc = tu_run(NULL,
			"tmux -L %s new-session -d -s narrow -x 80 -y 24 "
			"'TERM=xterm %s/rete monitor -c %s 2>%s/monitor-narrow.err'",
			E->tmux, RETE_BIN_DIR, E->coord_ini, E->h.dir);
	assert_int_equal(rc, 0);
	E->tmux_started = true;
	E->session = "narrow";
	const char *want[] = {lab,
			      "social.mantova waiting on asst.mantova",
			      "REQUESTER -> PERFORMER",
			      "social.mantova -> cpi.mantova",
			      "columns hidden)",
			      NULL};
	char *p = wait_pane(want, NULL);
	if (getenv("RETE_TEST_SHOW_PANE"))
		fprintf(stderr, "---- 80x24 ----\n%s---- end ----\n", p);
	/* the status table's header: only whole words */
	char *h = strstr(p, "REQUESTER -> PERFORMER");
	char *eol = strchr(h, '\n');
	assert_non_null(eol);
	*eol = '\0';
	static const char *const words[] = {"REQUESTER", "->",	      "PERFORMER", "SERVICE",
					    "requested", "received",  "accepted",  "in-progress",
					    "on-hold",	 "completed", "rejected",  "cancelled",
					    "failed",	 "total",     NULL};
	char *save = NULL;
	for (char *tok = strtok_r(h, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		bool known = false;
		for (size_t i = 0; words[i] && !known; i++)
			known = strcmp(tok, words[i]) == 0;
		if (!known)
			fail_msg("a word cut in the 80-column header: '%s'", tok);
	}
	/* the header's time is local: Rome is CET or CEST */
	*eol = '\n';
	assert_true(strstr(p, " CET") != NULL || strstr(p, " CEST") != NULL);
	free(p);
	quit_monitor("narrow");
	E->session = "mon";
}

static int setup(void **state)
{
	(void)state;
	rete_msg m;

	E = calloc(1, sizeof(*E));
	assert_non_null(E);
	assert_int_equal(it_home_open(&E->h, "monitor", ids, NPARTIES), RETE_OK);
	snprintf(E->coord_ini, sizeof(E->coord_ini), "%s/coord.ini", E->h.dir);
	snprintf(E->tmux, sizeof(E->tmux), "rete-mon-%ld", (long)getpid());
	E->session = "mon";
	write_files(E);

	assert_true(it_home_start(&E->h, false));

	/* asst.mantova never connects: its referral stays requested and
	 * becomes overdue, and the agencies panel shows it silent */
	for (int i = 0; i < NPARTIES; i++)
		if (i != P_ASST)
			assert_int_equal(it_home_connect(&E->h, i), RETE_OK);
	assert_true(it_home_ready(&E->h, E->h.w[P_COORD], WAIT_MS));
	for (int i = 0; i < P_COORD; i++)
		if (i != P_ASST)
			assert_int_equal(rete_wire_hello(E->h.w[i], ids[i], "test_monitor", &m),
					 RETE_OK);

	/* the live monitor, before anything happens: it will know the
	 * referrals only from events */
	int rc = tu_run(NULL,
			"tmux -L %s new-session -d -s mon -x 200 -y 60 "
			"'TERM=xterm %s/rete monitor -c %s 2>%s/monitor.err'",
			E->tmux, RETE_BIN_DIR, E->coord_ini, E->h.dir);
	assert_int_equal(rc, 0);
	E->tmux_started = true;
	const char *ready_want[] = {"rete monitor", "log size", "(no referral)", NULL};
	free(wait_pane(ready_want, NULL));

	/* the scenario */
	const Rete__Priority R = RETE__PRIORITY__PRIORITY_ROUTINE;
	referral(0, P_SOCIAL, P_CPI, "employment-orientation", R, RETE__AGE_BAND__AGE_BAND_ADULT);
	referral(1, P_SOCIAL, P_CPI, "training-voucher", R, RETE__AGE_BAND__AGE_BAND_14_18);
	referral(2, P_SOCIAL, P_CPI, "employment-orientation", R, RETE__AGE_BAND__AGE_BAND_ADULT);
	referral(3, P_SOCIAL, P_CPI, "employment-orientation", R, RETE__AGE_BAND__AGE_BAND_ADULT);
	referral(4, P_SOCIAL, P_ASST, "paediatrics", RETE__PRIORITY__PRIORITY_EMERGENCY,
		 RETE__AGE_BAND__AGE_BAND_0_3);
	referral(5, P_CPI, P_SOCIAL, "family-support", RETE__PRIORITY__PRIORITY_URGENT,
		 RETE__AGE_BAND__AGE_BAND_6_13);
	for (int k = 0; k < 6; k++)
		if (k != 4)
			wait_until(k, RETE__STATUS__STATUS_RECEIVED, false);

	const Rete__Status ACC = RETE__STATUS__STATUS_ACCEPTED,
			   PROG = RETE__STATUS__STATUS_IN_PROGRESS,
			   DONE = RETE__STATUS__STATUS_COMPLETED;
	update(0, P_CPI, P_SOCIAL, ACC, NULL, 0, 0);
	update(0, P_CPI, P_SOCIAL, PROG, NULL, 0, 0);
	update(0, P_CPI, P_SOCIAL, DONE, NULL, RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL, 0);
	update(1, P_CPI, P_SOCIAL, RETE__STATUS__STATUS_REJECTED, "lack-of-capacity", 0, 0);
	update(2, P_CPI, P_SOCIAL, ACC, NULL, 0, 0);
	update(2, P_CPI, P_SOCIAL, PROG, NULL, 0, 0);
	update(2, P_CPI, P_SOCIAL, DONE, NULL, RETE__OUTCOME_RESULT__OUTCOME_RESULT_UNSUCCESSFUL,
	       RETE__OUTCOME_REASON__OUTCOME_REASON_UNABLE_TO_CONTACT_CLIENT);
	update(3, P_SOCIAL, P_CPI, RETE__STATUS__STATUS_CANCELLED, "no-longer-needed", 0, 0);
	update(5, P_SOCIAL, P_CPI, ACC, NULL, 0, 0);
	update(5, P_SOCIAL, P_CPI, PROG, NULL, 0, 0);
	update(5, P_SOCIAL, P_CPI, RETE__STATUS__STATUS_ON_HOLD, "other", 0, 0);
	wait_until(4, RETE__STATUS__STATUS_REQUESTED, true);
	wait_until(5, RETE__STATUS__STATUS_ON_HOLD, false);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (E == NULL)
		return 0;
	if (E->frozen > 0)
		kill(E->frozen, SIGCONT);
	if (E->tmux_started)
		tu_run(NULL, "tmux -L %s kill-server", E->tmux);
	it_home_close(&E->h);
	free(E);
	E = NULL;
	return 0;
}

static void no_personal_data(const char *text)
{
	assert_null(strstr(text, PERSON_NAME));
	assert_null(strstr(text, "Bianchi"));
	assert_null(strstr(text, FISCAL_CODE));
	assert_null(strstr(text, "+39 0376"));
}

/* label5: the overdue referral's short label ("#N", its log index) as
 * `rete monitor --json` gives it: the text views name it by that, never by
 * its id (issue 16) */
static void label5(char *out, size_t n)
{
	char *txt = NULL;
	json_error_t je;
	assert_int_equal(tu_run(&txt, "%s/rete monitor -c %s --json", RETE_BIN_DIR, E->coord_ini),
			 0);
	json_t *j = json_loads(txt, 0, &je);
	assert_non_null(j);
	const char *l = json_string_value(
	    json_object_get(json_array_get(json_object_get(j, "overdue"), 0), "label"));
	assert_non_null(l);
	assert_true(l[0] == '#');
	snprintf(out, n, "%s", l);
	json_decref(j);
	free(txt);
}

static json_int_t jint(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void test_monitor_once_json(void **state)
{
	(void)state;
	char *out = NULL;
	assert_int_equal(
	    tu_run(&out, "%s/rete monitor -c %s --once --json", RETE_BIN_DIR, E->coord_ini), 0);
	no_personal_data(out);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	if (j == NULL)
		fprintf(stderr, "not JSON: %s\n%s\n", je.text, out);
	assert_non_null(j);

	/* overdue: only the emergency referral to asst */
	json_t *ov = json_object_get(j, "overdue");
	assert_int_equal(json_array_size(ov), 1);
	json_t *o = json_array_get(ov, 0);
	assert_string_equal(json_string_value(json_object_get(o, "referralId")), E->rid[4]);
	assert_string_equal(json_string_value(json_object_get(o, "requester")), "social.mantova");
	assert_string_equal(json_string_value(json_object_get(o, "performer")), "asst.mantova");
	assert_string_equal(json_string_value(json_object_get(o, "priority")), "emergency");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "requested");

	/* by status, per pair and service, sorted */
	json_t *bs = json_object_get(j, "byStatus");
	assert_int_equal(json_array_size(bs), 4);
	const struct {
		const char *req, *perf, *svc, *status[3];
		int count[3], total;
	} exp[4] = {
	    {"cpi.mantova", "social.mantova", "family-support", {"on-hold"}, {1}, 1},
	    {"social.mantova", "asst.mantova", "paediatrics", {"requested"}, {1}, 1},
	    {"social.mantova",
	     "cpi.mantova",
	     "employment-orientation",
	     {"completed", "cancelled", "in-progress"},
	     {2, 1, 0},
	     3},
	    {"social.mantova", "cpi.mantova", "training-voucher", {"rejected"}, {1}, 1},
	};
	for (size_t i = 0; i < 4; i++) {
		json_t *g = json_array_get(bs, i);
		assert_string_equal(json_string_value(json_object_get(g, "requester")), exp[i].req);
		assert_string_equal(json_string_value(json_object_get(g, "performer")),
				    exp[i].perf);
		assert_string_equal(json_string_value(json_object_get(g, "service")), exp[i].svc);
		for (int k = 0; k < 3 && exp[i].status[k]; k++)
			assert_int_equal(jint(g, "counts", exp[i].status[k]), exp[i].count[k]);
		assert_int_equal(jint(g, "total", NULL), exp[i].total);
	}
	json_t *t = json_object_get(j, "statusTotals");
	assert_int_equal(jint(t, "requested", NULL), 1);
	assert_int_equal(jint(t, "received", NULL), 0);
	assert_int_equal(jint(t, "on-hold", NULL), 1);
	assert_int_equal(jint(t, "completed", NULL), 2);
	assert_int_equal(jint(t, "rejected", NULL), 1);
	assert_int_equal(jint(t, "cancelled", NULL), 1);
	assert_int_equal(jint(t, "total", NULL), 6);

	/* times: received 5 (all but the emergency), accepted 3, completed 2 */
	json_t *tm = json_object_get(j, "times");
	assert_int_equal(jint(json_object_get(tm, "toReceive"), "count", NULL), 5);
	assert_int_equal(jint(json_object_get(tm, "toAccept"), "count", NULL), 3);
	assert_int_equal(jint(json_object_get(tm, "toComplete"), "count", NULL), 2);
	assert_true(json_is_number(json_object_get(json_object_get(tm, "toComplete"), "p90Hours")));

	/* agencies: asst never connected; the others did */
	json_t *ag = json_object_get(j, "agencies");
	assert_true(json_array_size(ag) >= 3);
	bool seen_asst = false;
	for (size_t i = 0; i < json_array_size(ag); i++) {
		json_t *a = json_array_get(ag, i);
		if (strcmp(json_string_value(json_object_get(a, "id")), "asst.mantova") == 0) {
			seen_asst = true;
			assert_string_equal(json_string_value(json_object_get(a, "state")),
					    "silent");
		}
	}
	assert_true(seen_asst);
	/* the rate panel counted the entries of this minute or the last ones */
	json_t *per = json_object_get(json_object_get(j, "messagesPerMinute"), "lastMinutes");
	json_int_t sum = 0;
	for (size_t i = 0; i < json_array_size(per); i++)
		sum += json_integer_value(json_array_get(per, i));
	/* every entry of the log was logged within these ten minutes, and
	 * each is counted once: from the log's entries below the snapshot's
	 * size, from events above it */
	assert_int_equal(sum, atoll(json_string_value(json_object_get(j, "logSize"))));
	assert_true(sum > 30);
	json_decref(j);
	free(out);

	/* the same as text, overdue panel first */
	assert_int_equal(tu_run(&out, "%s/rete monitor -c %s --once", RETE_BIN_DIR, E->coord_ini),
			 0);
	no_personal_data(out);
	if (getenv("RETE_TEST_SHOW_PANE"))
		fprintf(stderr, "---- monitor --once ----\n%s---- end ----\n", out);
	char *ovp = strstr(out, "== Overdue");
	char *stp = strstr(out, "== Referrals by status");
	assert_non_null(ovp);
	assert_non_null(stp);
	assert_true(ovp < stp);
	char lab[32];
	label5(lab, sizeof(lab));
	char *r5 = strstr(out, lab);
	assert_non_null(r5);
	assert_true(r5 > ovp && r5 < stp);
	assert_non_null(strstr(out, "social.mantova waiting on asst.mantova"));
	/* statuses in words, not abbreviations */
	assert_non_null(strstr(out, "requested received accepted in-progress"));
	assert_null(strstr(out, " req  recv"));
	free(out);
}

/* the CSV rows without the three median columns (their values depend on
 * timing); the header is kept whole */
static void strip_medians(char *csv)
{
	char *src = csv, *dst = csv;
	bool header = true;
	while (*src) {
		char *eol = strstr(src, "\r\n");
		assert_non_null(eol);
		size_t len = (size_t)(eol - src);
		if (!header) {
			int commas = 0;
			for (size_t i = len; i > 0; i--)
				if (src[i - 1] == ',' && ++commas == 3) {
					len = i - 1;
					break;
				}
		}
		memmove(dst, src, len);
		dst += len;
		*dst++ = '\n';
		src = eol + 2;
		header = false;
	}
	*dst = '\0';
}

/* period_around_now: yesterday and tomorrow (UTC), the dates of a report
 * that holds every referral of the test */
static void period_around_now(char from[16], char to[16])
{
	time_t now = time(NULL), a = now - 86400, b = now + 86400;
	struct tm tm;
	gmtime_r(&a, &tm);
	strftime(from, 16, "%Y-%m-%d", &tm);
	gmtime_r(&b, &tm);
	strftime(to, 16, "%Y-%m-%d", &tm);
}

/* store_report runs `rete report --store` on the broker's store over
 * from..to with args; its exit status, the output in *out */
static int store_report(char **out, const char *from, const char *to, const char *args)
{
	return tu_run(out, "%s/rete report --store %s/store --from %s --to %s %s", RETE_BIN_DIR,
		      E->h.dir, from, to, args);
}

static void test_report_csv(void **state)
{
	(void)state;
	char from[16], to[16], *out = NULL, *out2 = NULL;
	period_around_now(from, to);

	assert_int_equal(tu_run(&out,
				"%s/rete report -c %s --from %s --to %s --by agency --min-count 1",
				RETE_BIN_DIR, E->coord_ini, from, to),
			 0);
	assert_int_equal(
	    tu_run(&out2,
		   "%s/rete report --store %s/store --from %s --to %s --by agency --min-count 1",
		   RETE_BIN_DIR, E->h.dir, from, to),
	    0);
	no_personal_data(out);
	assert_null(strstr(out, "case-mn-7"));
	/* the broker's snapshot and the store read beside it agree */
	assert_string_equal(out, out2);
	strip_medians(out);
	const char *expect =
	    "requester,performer,sent,received,accepted,rejected,rejectedClientRefused,"
	    "rejectedLackOfCapacity,rejectedNoLongerNeeded,rejectedUnableToContactClient,"
	    "rejectedUnableToContactOrganisation,rejectedOther,completed,completedSuccessful,"
	    "completedUnsuccessful,unsuccessfulClientRefused,unsuccessfulLackOfCapacity,"
	    "unsuccessfulNoLongerNeeded,unsuccessfulUnableToContactClient,"
	    "unsuccessfulUnableToContactOrganisation,unsuccessfulOther,cancelled,failed,overdue,"
	    "openAtEnd,medianHoursToReceive,medianHoursToAccept,medianHoursToComplete\n"
	    "cpi.mantova,social.mantova,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1\n"
	    "social.mantova,asst.mantova,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1\n"
	    "social.mantova,cpi.mantova,4,4,2,1,0,1,0,0,0,0,2,1,1,0,0,0,1,0,0,1,0,0,0\n";
	assert_string_equal(out, expect);
	free(out);
	free(out2);

	/* JSON and the Italian spreadsheet spelling */
	assert_int_equal(tu_run(&out,
				"%s/rete report --store %s/store --from %s --to %s "
				"--format json --min-count 1",
				RETE_BIN_DIR, E->h.dir, from, to),
			 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	json_t *t = json_object_get(j, "total");
	assert_int_equal(jint(t, "sent", NULL), 6);
	assert_int_equal(jint(t, "overdue", NULL), 1);
	assert_int_equal(jint(t, "openAtEnd", NULL), 2);
	assert_int_equal(jint(t, "rejectedByReason", "lack-of-capacity"), 1);
	assert_int_equal(jint(t, "unsuccessfulByReason", "unable-to-contact-client"), 1);
	assert_string_equal(json_string_value(json_object_get(j, "timeZone")), "Europe/Rome");
	json_decref(j);
	free(out);
	assert_int_equal(store_report(&out, from, to, "--sep ';' --by service --min-count 1"), 0);
	assert_non_null(strstr(out, "service;\"sent\";\"received\";"));
	assert_non_null(strstr(out, "\r\nemployment-orientation;3;3;2;"));
	free(out);

	/* the rows' fields quoted only when they need it, with ';' and tab as
	 * with ',' (the header's, but its first, are: gnumeric guesses the
	 * separator from the character before a quoted text) */
	assert_int_equal(store_report(&out, from, to, "--sep ';' --by agency --min-count 1"), 0);
	assert_non_null(strstr(out, "\r\nsocial.mantova;cpi.mantova;4;4;"));
	free(out);
	assert_int_equal(store_report(&out, from, to, "--sep tab --by agency --min-count 1"), 0);
	assert_non_null(strstr(out, "\r\nsocial.mantova\tcpi.mantova\t4\t4\t"));
	free(out);

	/* a bad date is a usage error naming the value and the range */
	assert_int_equal(tu_run(&out, "%s/rete report --store %s/store --from 2026-02-30 --to %s",
				RETE_BIN_DIR, E->h.dir, to),
			 2);
	assert_non_null(strstr(out, "2026-02-30"));
	free(out);
	assert_int_equal(tu_run(&out, "%s/rete report --store %s/store --from 0001-01-01 --to %s",
				RETE_BIN_DIR, E->h.dir, to),
			 2);
	assert_non_null(strstr(out, "'0001-01-01' is out of range; dates from 1970-01-01 to "
				    "9999-12-31 are accepted"));
	free(out);

	/* -o: a folder that does not exist, or a folder, said so before
	 * anything is read (libxlsxwriter said "Usually a permissions error") */
	assert_int_equal(store_report(&out, from, to, "--format xlsx -o /nonexistent/x.xlsx"), 2);
	assert_non_null(strstr(out, "the folder '/nonexistent' does not exist"));
	assert_null(strstr(out, "[ERROR]"));
	free(out);
	assert_int_equal(store_report(&out, from, to, "--format xlsx -o /tmp"), 2);
	assert_non_null(strstr(out, "-o '/tmp' is a folder"));
	assert_null(strstr(out, "permissions"));
	free(out);
}

/* published: a count as the steering group may read it: "< min", 0, or a
 * positive multiple of 5 (rounded on its own) */
static bool published(json_t *v, json_int_t min)
{
	char lt[32];
	snprintf(lt, sizeof(lt), "< %lld", (long long)min);
	if (json_is_string(v))
		return strcmp(json_string_value(v), lt) == 0;
	/* never 0: zeros read "< min" too */
	return json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) % 5 == 0;
}

/* report_protected: the JSON report r (its groups and its total) shows
 * every count as "< min" (0 included) or rounded to 5 (roundedTo 5), totals
 * included, so that no sum gives a hidden count back; a median over fewer
 * than min referrals is hidden ("suppressed"). */
static void report_protected(json_t *r, json_int_t min)
{
	static const char *const nums[] = {"sent",
					   "received",
					   "accepted",
					   "rejected",
					   "completed",
					   "completedSuccessful",
					   "completedUnsuccessful",
					   "cancelled",
					   "failed",
					   "overdue",
					   "openAtEnd"};
	static const char *const med[][2] = {{"medianHoursToReceive", "received"},
					     {"medianHoursToAccept", "accepted"},
					     {"medianHoursToComplete", "completed"}};
	json_t *groups = json_object_get(r, "groups"), *total = json_object_get(r, "total"), *g, *x;
	const char *key;
	size_t i;
	assert_int_equal(jint(r, "roundedTo", NULL), 5);
	assert_true(json_is_array(groups));
	assert_true(json_is_object(total));
	for (i = 0; i <= json_array_size(groups); i++) {
		g = i < json_array_size(groups) ? json_array_get(groups, i) : total;
		for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++)
			if (!published(json_object_get(g, nums[k]), min)) {
				fprintf(stderr, "group %zu shows %s %s (min %lld)\n", i, nums[k],
					json_dumps(json_object_get(g, nums[k]), JSON_ENCODE_ANY),
					(long long)min);
				fail();
			}
		json_object_foreach(json_object_get(g, "rejectedByReason"), key, x)
		    assert_true(published(x, min));
		json_object_foreach(json_object_get(g, "unsuccessfulByReason"), key, x)
		    assert_true(published(x, min));
		for (size_t k = 0; k < 3; k++) {
			json_t *base = json_object_get(g, med[k][1]);
			if (json_is_number(json_object_get(g, med[k][0])))
				assert_true(json_is_integer(base) &&
					    json_integer_value(base) >= min);
		}
	}
}

/* Small counts identify families (GDPR art. 25, 89): by default the report
 * shows a count below 3 as "< 3", hides what would let one be worked out
 * (in every format), takes [report] min_count from coord.ini and
 * --min-count over it. */
static void test_report_small_counts(void **state)
{
	(void)state;
	char from[16], to[16], ini[600], *out = NULL;
	period_around_now(from, to);

	/* CSV from the broker: no field of a row is 1 or 2 */
	assert_int_equal(tu_run(&out, "%s/rete report -c %s --from %s --to %s --by agency",
				RETE_BIN_DIR, E->coord_ini, from, to),
			 0);
	char *line = strstr(out, "\r\n");
	assert_non_null(line);
	for (char *f = line + 2; *f != '\0';) {
		size_t len = strcspn(f, ",\r");
		if ((len == 1 && (f[0] == '1' || f[0] == '2'))) {
			fprintf(stderr, "a count below 3 in the report:\n%s", out);
			fail();
		}
		f += len;
		f += strspn(f, ",\r\n");
	}
	/* zeros read "< 3" too: a "< 3" beside a 0 would be 1 at least; the
	 * pair cpi.mantova -> social.mantova, of fewer than 3 referrals, is
	 * not a row of its own (its being there said one at least) but in
	 * the others row */
	assert_non_null(strstr(out, "\r\nothers,,< 3,< 3,< 3,< 3,"));
	assert_null(strstr(out, "\r\ncpi.mantova,social.mantova,"));
	free(out);

	/* JSON, from the store, by agency and by service */
	const char *bys[] = {"agency", "service", "agency,service", ""};
	for (size_t k = 0; k < sizeof(bys) / sizeof(bys[0]); k++) {
		assert_int_equal(tu_run(&out,
					"%s/rete report --store %s/store --from %s --to %s "
					"--by '%s' --format json",
					RETE_BIN_DIR, E->h.dir, from, to, bys[k]),
				 0);
		json_t *j = json_loads(out, 0, NULL);
		assert_non_null(j);
		assert_int_equal(jint(j, "minCount", NULL), 3);
		report_protected(j, 3);
		/* what is big enough stays a number, rounded: 6 sent reads 5 */
		assert_int_equal(jint(json_object_get(j, "total"), "sent", NULL), 5);
		json_decref(j);
		free(out);
	}

	/* Italian spreadsheets: the same marks, as text */
	assert_int_equal(store_report(&out, from, to, "--by agency --sep ';' --lang it --months"),
			 0);
	assert_non_null(strstr(out, "\r\naltri;;< 3;"));
	free(out);

	/* [report] min_count in coord.ini; --min-count over it */
	snprintf(ini, sizeof(ini), "%s/coord-min.ini", E->h.dir);
	assert_int_equal(tu_run(NULL, "cp %s %s && printf '\\n[report]\\nmin_count = 7\\n' >>%s",
				E->coord_ini, ini, ini),
			 0);
	assert_int_equal(tu_run(&out, "%s/rete report -c %s --from %s --to %s --format json",
				RETE_BIN_DIR, ini, from, to),
			 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(jint(j, "minCount", NULL), 7);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "total"), "sent")),
			    "< 7");
	json_decref(j);
	free(out);
	assert_int_equal(tu_run(&out, "%s/rete report -c %s --from %s --to %s --min-count 1",
				RETE_BIN_DIR, ini, from, to),
			 0);
	assert_null(strstr(out, "< "));
	free(out);
	assert_int_equal(store_report(&out, from, to, "--min-count 0"), 2);
	assert_non_null(strstr(out, "--min-count '0'"));
	free(out);
	assert_int_equal(tu_run(NULL, "printf 'min_count = lots\\n' >>%s", ini), 0);
	assert_int_equal(
	    tu_run(&out, "%s/rete report -c %s --from %s --to %s", RETE_BIN_DIR, ini, from, to), 2);
	assert_non_null(strstr(out, "[report] min_count"));
	free(out);
}

/* row_counts_ok: the pane's status row of pair `pair` and service
 * employment-orientation reads 0 req, 0 recv, 0 acc, 0 prog, 0 hold,
 * 2 done, 0 rej, 1 canc, 0 fail, 3 in all. */
static bool row_counts_ok(const char *p, const char *pair)
{
	const char *svc = "employment-orientation";
	for (const char *line = p; line && *line;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[512];
		if (len >= sizeof(buf))
			continue;
		memcpy(buf, line, len);
		buf[len] = '\0';
		char *a = strstr(buf, pair), *b = strstr(buf, svc);
		if (a == NULL || b == NULL)
			continue;
		unsigned c[10];
		return sscanf(b + strlen(svc), "%u %u %u %u %u %u %u %u %u %u", &c[0], &c[1], &c[2],
			      &c[3], &c[4], &c[5], &c[6], &c[7], &c[8], &c[9]) == 10 &&
		       c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0 && c[4] == 0 && c[5] == 2 &&
		       c[6] == 0 && c[7] == 1 && c[8] == 0 && c[9] == 3;
	}
	return false;
}

static void test_monitor_live_tmux(void **state)
{
	(void)state;
	char pair_asst[] = "social.mantova -> asst.mantova";
	char done_row[] = "social.mantova -> cpi.mantova";
	char lab[32];
	label5(lab, sizeof(lab));
	const char *want[] = {lab, "social.mantova waiting on asst.mantova", pair_asst, NULL};
	char *p = wait_pane(want, NULL);
	if (getenv("RETE_TEST_SHOW_PANE"))
		fprintf(stderr, "---- pane ----\n%s---- end ----\n", p);
	no_personal_data(p);
	/* the overdue referral is at the top: in the first panel, before the
	 * status panel's title */
	char *ovp = strstr(p, "Overdue referrals");
	char *stp = strstr(p, "Referrals by status");
	char *r5 = strstr(p, lab);
	assert_non_null(ovp);
	assert_non_null(stp);
	assert_true(ovp < r5 && r5 < stp);
	free(p);

	/* the counts the live view built from events alone: the
	 * employment-orientation row says 2 completed, 1 cancelled, 3 in all */
	int64_t end = it_mono_ms() + WAIT_MS;
	for (;;) {
		p = pane();
		bool ok = row_counts_ok(p, done_row);
		free(p);
		if (ok)
			break;
		if (it_mono_ms() > end)
			fail_msg("the live view's employment-orientation row is not 2 done, 1 "
				 "cancelled");
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL); /* polling a terminal screen */
	}

	/* filter by agency: cpi -> the asst pair and the overdue one go away */
	assert_int_equal(tu_run(NULL, "tmux -L %s send-keys -t mon a", E->tmux), 0);
	const char *prompt[] = {"agency (empty = any", NULL};
	free(wait_pane(prompt, NULL));
	assert_int_equal(tu_run(NULL, "tmux -L %s send-keys -t mon cpi Enter", E->tmux), 0);
	const char *want_f[] = {"agency ~ cpi", "(no overdue referral)", "training-voucher", NULL};
	const char *avoid_f[] = {pair_asst, "social.mantova waiting on", NULL};
	p = wait_pane(want_f, avoid_f);
	free(p);
	/* filter by service, then clear */
	assert_int_equal(tu_run(NULL, "tmux -L %s send-keys -t mon s", E->tmux), 0);
	free(wait_pane((const char *[]){"service (empty = any", NULL}, NULL));
	assert_int_equal(tu_run(NULL, "tmux -L %s send-keys -t mon training Enter", E->tmux), 0);
	p = wait_pane((const char *[]){"service ~ training", "training-voucher", NULL},
		      (const char *[]){"employment-orientation", "family-support", NULL});
	free(p);
	assert_int_equal(tu_run(NULL, "tmux -L %s send-keys -t mon c", E->tmux), 0);
	p = wait_pane(want, (const char *[]){"agency ~", "service ~", NULL});
	no_personal_data(p);
	free(p);
	/* Tab moves the focus marker to the next panel */
	assert_int_equal(tu_run(NULL, "tmux -L %s send-keys -t mon Tab", E->tmux), 0);
	free(wait_pane((const char *[]){"> Referrals by status", NULL}, NULL));
	/* q quits: the session ends */
	quit_monitor("mon");
	char path[600];
	snprintf(path, sizeof(path), "%s/monitor.err", E->h.dir);
	char *err = tu_read_file(path, NULL);
	if (err && err[0])
		fprintf(stderr, "monitor stderr: %s\n", err);
	free(err);
}

/* A gap: the live monitor is frozen (SIGSTOP) while the broker restarts
 * and logs an entry, so that entry's event is published to nobody. When
 * the monitor runs again, the next event's index is beyond what it
 * expects: it takes a new snapshot, and shows the broker's log size, the
 * same referrals, "gaps", and every entry counted once in the rate. */
static void test_monitor_gap(void **state)
{
	(void)state;
	Rete__BrokerFrame *f = snapshot();
	unsigned long long size = f->result->snapshot->log_size;
	rete__broker_frame__free_unpacked(f, NULL);
	char want_size[64], *out = NULL;

	E->session = "gap";
	assert_int_equal(tu_run(NULL,
				"tmux -L %s new-session -d -s gap -x 200 -y 60 "
				"'env TERM=xterm RETE_MONITOR_TRACE=1 %s/rete monitor -c %s "
				"2>>%s/monitor.err; exit 0'",
				E->tmux, RETE_BIN_DIR, E->coord_ini, E->h.dir),
			 0);
	E->tmux_started = true;
	snprintf(want_size, sizeof(want_size), "log size %llu ", size);
	free(wait_pane((const char *[]){want_size, "referrals 6", NULL}, NULL));
	/* the monitor is the pane shell's child, not the pane's process: tmux
	 * continues a pane process that stops, but not its children */
	assert_int_equal(tu_run(&out, "tmux -L %s list-panes -t gap -F '#{pane_pid}'", E->tmux), 0);
	long shell = atol(out);
	free(out);
	assert_true(shell > 1);
	assert_int_equal(tu_run(&out, "ps -o pid= --ppid %ld", shell), 0);
	pid_t mon = (pid_t)atol(out);
	free(out);
	assert_true(mon > 1);

	assert_int_equal(kill(mon, SIGSTOP), 0);
	E->frozen = mon;
	it_home_stop(&E->h, WAIT_MS);
	assert_true(it_home_start(&E->h, false));
	assert_true(it_home_ready(&E->h, E->h.w[P_COORD], WAIT_MS));
	touch_r6(0); /* its event reaches no subscriber: the monitor is frozen */
	assert_int_equal(kill(mon, SIGCONT), 0);
	E->frozen = 0;

	/* more entries until one's event reaches the monitor again (its
	 * subscription reconnects by itself); it then sees the gap */
	int64_t end = it_mono_ms() + WAIT_MS;
	for (int k = 1;; k++) {
		touch_r6(k);
		f = snapshot();
		size = f->result->snapshot->log_size;
		rete__broker_frame__free_unpacked(f, NULL);
		snprintf(want_size, sizeof(want_size), "log size %llu ", size);
		char *p = pane();
		bool ok = strstr(p, want_size) != NULL && strstr(p, "  gaps ") != NULL;
		if (ok || it_mono_ms() > end) {
			if (!ok) {
				fprintf(stderr, "---- pane ----\n%s---- end ----\n", p);
				char path[600];
				snprintf(path, sizeof(path), "%s/monitor.err", E->h.dir);
				char *tr = tu_read_file(path, NULL);
				fprintf(stderr, "---- monitor trace ----\n%s---- end ----\n",
					tr ? tr : "");
				free(tr);
				show_log();
			}
			assert_true(ok);
			/* the same referrals and counts as before the gap */
			assert_non_null(strstr(p, "referrals 6"));
			assert_true(row_counts_ok(p, "social.mantova -> cpi.mantova"));
			/* every entry once: the rate's ten minutes hold the whole log */
			char *r = strstr(p, "last 10 minutes: ");
			assert_non_null(r);
			assert_int_equal(strtoull(r + strlen("last 10 minutes: "), NULL, 10), size);
			no_personal_data(p);
			free(p);
			break;
		}
		free(p);
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL); /* pacing the entries while polling the screen */
	}
	quit_monitor("gap");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_monitor_once_json),	cmocka_unit_test(test_report_csv),
	    cmocka_unit_test(test_report_small_counts), cmocka_unit_test(test_monitor_live_tmux),
	    cmocka_unit_test(test_monitor_80x24),	cmocka_unit_test(test_monitor_gap),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
