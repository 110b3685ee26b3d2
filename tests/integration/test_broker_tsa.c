/* test_broker_tsa.c — the broker's trusted time (issue 14): the real broker
 * asks a real local TSA (tests/tsa/: rete-test-tsa, a test CA made with the
 * openssl command) for a token over each stored checkpoint.
 *
 *   tokens served     a submission's checkpoint gets a token; Query.timestamp
 *                     serves it (latest and by size) with the checkpoint
 *                     note; it verifies against the test CA with
 *                     store/tsa.c's verifier and with `openssl ts -verify`;
 *                     the store holds the same bytes; health reports its
 *                     genTime and no problem
 *   grace             timestamp_grace 3s: with the TSA stopped, submissions
 *                     are refused (NO_TIMESTAMP, a sentence naming the last
 *                     token and the setting) and health says so; the TSA
 *                     started again, the same message is accepted without
 *                     a restart of the broker; an agent's message is kept in
 *                     its outbox meanwhile and goes through by itself
 *   clock jumps       timestamp_grace 10s, the broker run under libfaketime
 *                     (its wall clock moved at run time, its monotonic clock
 *                     the real one), the TSA stopped: the wall clock 2 hours
 *                     ahead, a submission right after is still accepted;
 *                     once the real grace is over, refused, and still
 *                     refused when the wall clock jumps back 4 hours; the
 *                     TSA started again, accepted without a restart. Skipped
 *                     (with a sentence) without libfaketime.
 *   configuration     --check-config names each wrong TSA setting (URL,
 *                     credentials in it, no CA, a CA file without a
 *                     certificate, a password file others may read, a grace
 *                     without a TSA, ...); a right one passes and its
 *                     password never appears
 *   stop, TSA hung    tsa_timeout 10m, a TSA that reads the request and
 *                     never answers: SIGTERM still ends the broker at once
 *                     (exit 0; the exchange is abandoned, not waited for),
 *                     "stopped" is the log's last line, and the checkpoint
 *                     left without a token gets one at the next start
 *   bad answers       a TSA answering garbage, rejections, HTTP 500,
 *                     another nonce, too much: the broker stays up, health
 *                     names the failure, the log says it rate-limited; back
 *                     to good answers, a token comes
 */
#define _GNU_SOURCE
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "itest.h"
#include "local_tsa.h"
#include "store.h"
#include "tsa.h"

typedef struct fixture {
	local_tsa *tsa;
	it_net *n;
	rete_wire *sender; /* social, submitting */
	rete_wire *coord;  /* health */
	rete_wire *audit;  /* time-stamp queries */
	int next_id;
	char rc_file[1300]; /* the broker's libfaketime file, or "" */
} fixture;

/* ini_add_tsa puts the TSA settings (and `extra` lines) into [broker]. */
static void ini_add_tsa(it_net *n, const local_tsa *t, const char *extra)
{
	size_t len = 0;
	char *text = tu_read_file(n->ini, &len);
	assert_non_null(text);
	char *at = strstr(text, "[broker]\n");
	assert_non_null(at);
	at += strlen("[broker]\n");
	FILE *f = fopen(n->ini, "w");
	assert_non_null(f);
	fprintf(f, "%.*s", (int)(at - text), text);
	/* extra may set its own tsa_timeout */
	fprintf(f, "tsa_url = %s\ntsa_ca = %s\n%s%s", t->lt_url, t->lt_ca,
		extra && strstr(extra, "tsa_timeout") ? "" : "tsa_timeout = 5s\n",
		extra ? extra : "");
	fputs(at, f);
	assert_int_equal(fclose(f), 0);
	free(text);
}

/* set_clock sets the wall clock of a broker run under libfaketime (see
 * start) to the real one plus offset ("+0", "+2h", "-2h"): its
 * FAKETIME_TIMESTAMP_FILE, replaced in one rename; libfaketime reads it
 * again at each clock call (FAKETIME_NO_CACHE), so the jump happens at the
 * broker's next look at the time. */
static void set_clock(const char *rc_file, const char *offset)
{
	char tmp[1400];
	tu_path(tmp, sizeof(tmp), "%s.tmp", rc_file);
	assert_int_equal(tu_write_file(tmp, offset, strlen(offset)), 0);
	assert_int_equal(rename(tmp, rc_file), 0);
}

/* start: the TSA and the broker; the fixture is in *state before anything
 * can fail, so that the teardown stops what was started. With faketime
 * (the libfaketime library), the broker runs with it preloaded: its wall
 * clock is the real one plus the offset in DIR/faketime.rc (set_clock; the
 * real one to begin with), its monotonic clock is the real one. */
static fixture *start(void **state, const char *extra, const char *faketime)
{
	fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	*state = fx;
	assert_int_equal(local_tsa_open(&fx->tsa, RETE_BIN_DIR), 0);
	fx->n = it_net_new("btsa", NULL);
	assert_non_null(fx->n);
	ini_add_tsa(fx->n, fx->tsa, extra);
	char preload[1300], asan_before[1024] = "", asan_now[1100];
	if (faketime) {
		tu_path(fx->rc_file, sizeof(fx->rc_file), "%s/faketime.rc", fx->n->dir);
		set_clock(fx->rc_file, "+0");
		/* the broker's environment: LD_PRELOAD through it_spawn, the
		 * rest inherited (and inert in any process without the
		 * library); taken away again once it runs */
		tu_path(preload, sizeof(preload), "LD_PRELOAD=%s", faketime);
		fx->n->extra_env = preload;
		unsetenv("FAKETIME");
		setenv("FAKETIME_TIMESTAMP_FILE", fx->rc_file, 1);
		setenv("FAKETIME_NO_CACHE", "1", 1);
		setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
		/* a sanitizer build: AddressSanitizer wants its runtime first
		 * among the libraries, and the preloaded one comes before it */
		const char *asan = getenv("ASAN_OPTIONS");
		snprintf(asan_before, sizeof(asan_before), "%s", asan ? asan : "");
		tu_path(asan_now, sizeof(asan_now), "%s%sverify_asan_link_order=0", asan_before,
			asan_before[0] ? ":" : "");
		setenv("ASAN_OPTIONS", asan_now, 1);
	}
	bool started = it_broker_start(fx->n);
	if (faketime) {
		fx->n->extra_env = NULL;
		unsetenv("FAKETIME_TIMESTAMP_FILE");
		unsetenv("FAKETIME_NO_CACHE");
		unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
		if (asan_before[0])
			setenv("ASAN_OPTIONS", asan_before, 1);
		else
			unsetenv("ASAN_OPTIONS");
	}
	assert_true(started);
	fx->sender = it_connect(fx->n, IT_SOCIAL);
	fx->coord = it_connect(fx->n, IT_COORD);
	fx->audit = it_connect(fx->n, IT_AUDIT);
	assert_non_null(fx->sender);
	assert_non_null(fx->coord);
	assert_non_null(fx->audit);
	return fx;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	bool bad = false;
	if (!fx)
		return 0;
	rete_wire_close(&fx->sender);
	rete_wire_close(&fx->coord);
	rete_wire_close(&fx->audit);
	it_net_free(&fx->n, false, &bad);
	local_tsa_close(&fx->tsa);
	free(fx);
	*state = NULL;
	return bad ? -1 : 0;
}

/* submit signs a new referral and submits it; the answer (caller frees). */
static Rete__BrokerFrame *submit_new(fixture *fx, it_msg *o)
{
	char id[32];
	snprintf(id, sizeof(id), "ref-%d", fx->next_id++);
	assert_int_equal(it_referral(fx->n, IT_SOCIAL, IT_CPI, id, o), RETE_OK);
	Rete__BrokerFrame *f = it_submit(fx->sender, o, it_wait_ms());
	if (!f)
		it_show(fx->n, "broker.log");
	assert_non_null(f);
	return f;
}

static void submit_ok(fixture *fx)
{
	it_msg o = {0};
	assert_true(it_accepted(submit_new(fx, &o), "a referral", fx->n->log));
	it_msg_free(&o);
}

/* query_ts asks Query.timestamp{size}; the answer (caller frees). */
static Rete__BrokerFrame *query_ts(fixture *fx, uint64_t size)
{
	Rete__TimestampQuery tq;
	rete__timestamp_query__init(&tq);
	tq.size = size;
	Rete__Query q;
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_TIMESTAMP;
	q.timestamp = &tq;
	Rete__BrokerFrame *f = NULL;
	assert_int_equal(rete_wire_call(fx->audit, &q, it_wait_ms(), &f, NULL), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	return f;
}

/* wait_token waits until the latest token is of a checkpoint of at least
 * min_size; its answer (caller frees). */
static Rete__BrokerFrame *wait_token(fixture *fx, uint64_t min_size)
{
	int64_t end = it_mono_ms() + it_scaled_ms(60000);
	while (it_mono_ms() < end) {
		Rete__BrokerFrame *f = query_ts(fx, 0);
		if (f->result->error == 0 &&
		    f->result->answer_case == RETE__QUERY_RESULT__ANSWER_TIMESTAMP &&
		    f->result->timestamp->size >= min_size)
			return f;
		rete__broker_frame__free_unpacked(f, NULL);
		it_nap(100);
	}
	it_show(fx->n, "broker.log");
	fail_msg("no token for a checkpoint of size >= %" PRIu64 " in time", min_size);
	return NULL;
}

static Rete__BrokerFrame *health(fixture *fx)
{
	Rete__Query q;
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_HEALTH;
	q.health = &(Rete__HealthQuery)RETE__HEALTH_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	assert_int_equal(rete_wire_call(fx->coord, &q, it_wait_ms(), &f, NULL), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_HEALTH);
	return f;
}

/* tsa_problem: the health problem about time stamps, or NULL. */
static const char *tsa_problem(const Rete__Health *h)
{
	for (size_t i = 0; i < h->n_problems; i++)
		if (strstr(h->problems[i], "time stamps are late"))
			return h->problems[i];
	return NULL;
}

/* wait_problem waits until health names a time-stamp problem containing
 * want (and, when submit is set, submits a message each round so that a new
 * checkpoint makes the broker ask at once); returns health (caller frees). */
static Rete__BrokerFrame *wait_problem(fixture *fx, const char *want, bool submit)
{
	int64_t end = it_mono_ms() + it_scaled_ms(60000);
	const char *last = NULL;
	char seen[2048] = "none";
	Rete__BrokerFrame *h = NULL;
	while (it_mono_ms() < end) {
		if (submit)
			submit_ok(fx);
		h = health(fx);
		last = tsa_problem(h->result->health);
		if (last && strstr(last, want))
			return h;
		if (last)
			snprintf(seen, sizeof(seen), "%s", last);
		rete__broker_frame__free_unpacked(h, NULL);
		it_nap(200);
	}
	it_show(fx->n, "broker.log");
	fail_msg("health never named a time-stamp problem with '%s' (the last: %s)", want, seen);
	return NULL;
}

/* wait_healthy waits until health names no time-stamp problem (a
 * checkpoint stored a moment ago may be waiting for its token). */
static void wait_healthy(fixture *fx)
{
	int64_t end = it_mono_ms() + it_scaled_ms(60000);
	for (;;) {
		Rete__BrokerFrame *h = health(fx);
		bool ok = tsa_problem(h->result->health) == NULL;
		rete__broker_frame__free_unpacked(h, NULL);
		if (ok)
			return;
		if (it_mono_ms() >= end) {
			it_show(fx->n, "broker.log");
			fail_msg("health still names a time-stamp problem");
		}
		it_nap(200);
	}
}

/* failures_in: N of "N failed exchange(s)" in a health problem. */
static unsigned long failures_in(const char *p)
{
	const char *q = strstr(p, " failed exchange");
	if (!q)
		return 0;
	const char *d = q;
	while (d > p && d[-1] >= '0' && d[-1] <= '9')
		d--;
	return strtoul(d, NULL, 10);
}

static void write_file(const char *path, const void *data, size_t len)
{
	assert_int_equal(tu_write_file(path, data, len), 0);
}

static void test_tokens_served(void **state)
{
	fixture *fx = start(state, NULL, NULL);
	rete_msg m = {{0}};

	submit_ok(fx);
	submit_ok(fx);
	Rete__BrokerFrame *f = wait_token(fx, 2);
	const Rete__Timestamp *ts = f->result->timestamp;
	int64_t now = rete_now_ms();
	assert_true(ts->gen_time > now - 120000 && ts->gen_time <= now + 5000);

	/* the checkpoint is the broker's, and the token is over it */
	rete_checkpoint cp;
	assert_int_equal(rete_checkpoint_verify(ts->checkpoint, strlen(ts->checkpoint), IT_ORIGIN,
						&fx->n->broker->pub, &cp, &m),
			 RETE_OK);
	assert_int_equal(cp.size, ts->size);
	rete_tsa_info info;
	rete_err err = rete_tsa_token_verify(ts->token.data, ts->token.len, ts->checkpoint,
					     strlen(ts->checkpoint), fx->tsa->lt_ca, &info, &m);
	if (err != RETE_OK)
		fail_msg("token: %s", m.text);
	assert_int_equal(info.gen_time_ms, ts->gen_time);
	assert_int_equal(rete_tsa_token_verify(ts->token.data, ts->token.len, ts->checkpoint,
					       strlen(ts->checkpoint), fx->tsa->lt_other_ca, NULL,
					       &m),
			 RETE_EBADSIG);

	/* how a third party checks it: openssl ts -verify over the note body */
	char tok[1400], body[1400], *out = NULL;
	const char *blank = strstr(ts->checkpoint, "\n\n");
	assert_non_null(blank);
	tu_path(tok, sizeof(tok), "%s/token.der", fx->n->dir);
	tu_path(body, sizeof(body), "%s/body.txt", fx->n->dir);
	write_file(tok, ts->token.data, ts->token.len);
	write_file(body, ts->checkpoint, (size_t)(blank - ts->checkpoint) + 1);
	int rc = tu_run(&out, "openssl ts -verify -token_in -in '%s' -data '%s' -CAfile '%s'", tok,
			body, fx->tsa->lt_ca);
	if (rc != 0 || !strstr(out, "Verification: OK"))
		fail_msg("openssl ts -verify: %s", out);
	free(out);
	rc = tu_run(&out, "openssl ts -verify -token_in -in '%s' -data '%s' -CAfile '%s'", tok,
		    body, fx->tsa->lt_other_ca);
	assert_int_not_equal(rc, 0);
	free(out);

	/* by size: the same token; another size: not found, with a sentence */
	Rete__BrokerFrame *g = query_ts(fx, ts->size);
	assert_int_equal(g->result->error, 0);
	assert_int_equal(g->result->timestamp->token.len, ts->token.len);
	assert_memory_equal(g->result->timestamp->token.data, ts->token.data, ts->token.len);
	assert_string_equal(g->result->timestamp->checkpoint, ts->checkpoint);
	rete__broker_frame__free_unpacked(g, NULL);
	g = query_ts(fx, ts->size + 1000);
	assert_int_equal(g->result->error, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND);
	assert_non_null(strstr(g->result->error_text, "no time-stamp token for checkpoint"));
	rete__broker_frame__free_unpacked(g, NULL);

	/* the store holds those bytes beside the checkpoint (a reader beside
	 * the running broker) */
	rete_store *s = NULL;
	rete_buf b = {0};
	assert_int_equal(rete_store_open(&s, fx->n->data, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_timestamp_get(s, NULL, ts->size, &b, &m), RETE_OK);
	assert_int_equal(b.len, ts->token.len);
	assert_memory_equal(b.data, ts->token.data, b.len);
	rete_buf_free(&b);
	rete_store_close(&s);

	/* health: the token's time, no problem; and so says `rete health` */
	Rete__BrokerFrame *h = health(fx);
	assert_true(h->result->health->timestamp_at >= ts->gen_time);
	assert_null(tsa_problem(h->result->health));
	rete__broker_frame__free_unpacked(h, NULL);
	char coord[1300];
	tu_path(coord, sizeof(coord), "%s/coord.ini", fx->n->dir);
	FILE *cf = fopen(coord, "w");
	assert_non_null(cf);
	fprintf(cf,
		"[client]\nid = coord.mantova\nkey = keys/coord.mantova.key\nbroker = %s\n"
		"broker_key = keys/" IT_BROKER_ID ".pub\nevents = %s\ntimeout = 10s\n",
		fx->n->listen, fx->n->events);
	assert_int_equal(fclose(cf), 0);
	rc = tu_run(&out, "%s/rete health -c %s", fx->n->bin, coord);
	if (rc != 0 || !strstr(out, "latest time stamp: ") || strstr(out, "time stamps are late"))
		fail_msg("rete health: exit %d:\n%s", rc, out);
	free(out);
	rc = tu_run(&out, "%s/rete health -c %s --json", fx->n->bin, coord);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"timestampAt\""));
	free(out);
	rete__broker_frame__free_unpacked(f, NULL);
}

/* metric scrapes the broker's /metrics (metrics = 127.0.0.1:0 in its
 * broker.ini: the port is read from its log) and returns the value of
 * series, -1 when absent or unreachable. */
static double metric(fixture *fx, const char *series)
{
	unsigned port = it_metrics_port(fx->n->log);
	char url[64], *text;
	double v;

	if (port == 0)
		return -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
	text = it_scrape(url, NULL);
	v = text != NULL ? it_metric(text, series) : -1;
	free(text);
	return v;
}

static void test_grace_refuses_and_recovers(void **state)
{
	fixture *fx = start(state, "timestamp_grace = 3s\nmetrics = 127.0.0.1:0\n", NULL);

	submit_ok(fx);
	Rete__BrokerFrame *f = wait_token(fx, 1);
	uint64_t first = f->result->timestamp->size;
	rete__broker_frame__free_unpacked(f, NULL);

	/* the TSA goes away: submissions go on until the grace is over */
	local_tsa_stop(fx->tsa);
	it_msg o = {0};
	Rete__BrokerFrame *r = NULL;
	int64_t end = it_mono_ms() + it_scaled_ms(60000);
	for (;;) {
		assert_true(it_mono_ms() < end);
		it_msg_free(&o);
		r = submit_new(fx, &o);
		if (it_answer(r)->error)
			break;
		rete__broker_frame__free_unpacked(r, NULL);
		it_nap(250);
	}
	const Rete__Receipt *rc = it_answer(r);
	if (rc->error != RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP)
		fail_msg("refused with %d: %s", rc->error, rc->error_text);
	fprintf(stderr, "refusal: %s\n", rc->error_text);
	assert_non_null(strstr(rc->error_text, "timestamp_grace 3s"));
	assert_non_null(strstr(rc->error_text, "the last token is of"));
	assert_non_null(strstr(rc->error_text, "cannot connect"));
	assert_non_null(strstr(rc->error_text, "send this message again later"));
	rete__broker_frame__free_unpacked(r, NULL);

	Rete__BrokerFrame *h = wait_problem(fx, "new submissions are refused", false);
	assert_false(h->result->health->ok);
	rete__broker_frame__free_unpacked(h, NULL);
	/* the metrics say so too */
	assert_true(metric(fx, "rete_broker_timestamp_configured") == 1);
	assert_true(metric(fx, "rete_broker_timestamp_refusing") == 1);
	assert_true(metric(fx, "rete_broker_timestamp_failures") >= 1);
	assert_true(metric(fx, "rete_broker_timestamp_waiting_seconds") >= 3);
	assert_true(metric(fx, "rete_broker_timestamp_stamped_size") == (double)first);
	/* an agent's message meanwhile stays in its outbox, tried again */
	char outbox[1300], sent[1300], failed[1300], alog[1300], tmp[1400], dst[1400];
	assert_true(it_agent_start(fx->n, IT_SOCIAL));
	it_spool(fx->n, IT_SOCIAL, "outbox", outbox, sizeof(outbox));
	it_spool(fx->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(fx->n, IT_SOCIAL, "failed", failed, sizeof(failed));
	tu_path(alog, sizeof(alog), "%s/%s.log", fx->n->dir, it_party_ids[IT_SOCIAL]);
	size_t elen = 0;
	char *example = tu_read_file(RETE_SOURCE_DIR "/examples/messages/referral.json", &elen);
	assert_non_null(example);
	tu_path(tmp, sizeof(tmp), "%s/.referral.json.tmp", outbox);
	tu_path(dst, sizeof(dst), "%s/referral.json", outbox);
	assert_int_equal(tu_write_file(tmp, example, elen), 0);
	assert_int_equal(rename(tmp, dst), 0);
	free(example);
	end = it_mono_ms() + it_scaled_ms(60000);
	/* refused (the agent says it once), then submitted again */
	while (tu_occurrences(alog, "no time-stamp token for the log") < 1 ||
	       tu_occurrences(alog, "submitted social.mantova-2026-0001") < 2) {
		if (it_mono_ms() >= end) {
			it_show_path(alog, 0);
			fail_msg("the agent was not refused for want of a time stamp, then "
				 "trying again");
		}
		it_nap(100);
	}
	assert_int_equal(tu_count_suffix(failed, ".json"), 0);
	assert_true(tu_exists(dst));

	/* still refused, the same message */
	r = it_submit(fx->sender, &o, it_wait_ms());
	assert_non_null(r);
	assert_int_equal(it_answer(r)->error, RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP);
	rete__broker_frame__free_unpacked(r, NULL);

	/* the TSA is back: the same message is accepted, without a restart */
	assert_int_equal(local_tsa_start(fx->tsa), 0);
	end = it_mono_ms() + it_scaled_ms(90000);
	for (;;) {
		if (it_mono_ms() >= end) {
			it_show(fx->n, "broker.log");
			fail_msg("submissions still refused after the TSA came back");
		}
		r = it_submit(fx->sender, &o, it_wait_ms());
		assert_non_null(r);
		Rete__ErrorCode e = it_answer(r)->error;
		rete__broker_frame__free_unpacked(r, NULL);
		if (e == 0)
			break;
		assert_int_equal(e, RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP);
		it_nap(250);
	}
	it_msg_free(&o);
	/* the agent's message goes through by itself */
	end = it_mono_ms() + it_scaled_ms(60000);
	while (tu_count_suffix(sent, ".receipt.json") < 1) {
		if (it_mono_ms() >= end) {
			it_show_path(alog, 0);
			fail_msg("the agent's message did not go through after the TSA came back");
		}
		it_nap(100);
	}
	assert_int_equal(tu_count_suffix(failed, ".json"), 0);
	f = wait_token(fx, first + 1);
	rete__broker_frame__free_unpacked(f, NULL);
	wait_healthy(fx);
	assert_true(tu_occurrences(fx->n->log, "answers again after") > 0);
	assert_true(metric(fx, "rete_broker_timestamp_refusing") == 0);
	assert_true(metric(fx, "rete_broker_timestamp_failures") == 0);
	assert_true(metric(fx, "rete_broker_timestamp_stamped_size") > (double)first);
	assert_true(metric(fx, "rete_broker_timestamp_last_token_timestamp_seconds") > 0);
}

/* faketime_lib finds libfaketime's library for multi-threaded programs
 * (the Debian package libfaketime, in scripts/setup) and writes its path
 * into buf; false when it is not installed. */
static bool faketime_lib(char *buf, size_t n)
{
	static const char *const where[] = {
	    "/usr/lib/*/faketime/libfaketimeMT.so.1",
	    "/usr/lib/faketime/libfaketimeMT.so.1",
	    "/usr/local/lib/faketime/libfaketimeMT.so.1",
	};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		glob_t g;
		bool found = glob(where[i], 0, NULL, &g) == 0 && g.gl_pathc > 0;
		if (found)
			snprintf(buf, n, "%s", g.gl_pathv[0]);
		globfree(&g);
		if (found)
			return true;
	}
	return false;
}

/* refused_at: the broker's time in the signed refusal of r. */
static int64_t refused_at(const Rete__Receipt *r)
{
	assert_non_null(r->signed_refusal);
	Rete__RefusalBody *b = rete__refusal_body__unpack(NULL, r->signed_refusal->body.len,
							  r->signed_refusal->body.data);
	assert_non_null(b);
	int64_t at = b->refused_at;
	rete__refusal_body__free_unpacked(b, NULL);
	return at;
}

#define HOUR_MS (3600 * (int64_t)1000)

static void test_grace_ignores_clock_jumps(void **state)
{
	char lib[1024];
	if (!faketime_lib(lib, sizeof(lib))) {
		fprintf(stderr, "skipped: libfaketime is not installed (the Debian package "
				"libfaketime, scripts/setup installs it); without it the broker's "
				"wall clock cannot be moved\n");
		skip();
	}
	if (getenv("RETE_VALGRIND")) {
		fprintf(stderr, "skipped under valgrind: libfaketime is preloaded into the "
				"broker, which valgrind would run instead\n");
		skip();
	}
	fixture *fx = start(state, "timestamp_grace = 10s\n", lib);

	submit_ok(fx);
	Rete__BrokerFrame *f = wait_token(fx, 1);
	uint64_t first = f->result->timestamp->size;
	rete__broker_frame__free_unpacked(f, NULL);

	/* the TSA goes away; a new checkpoint waits for its token, from a
	 * moment of the real wall clock on */
	local_tsa_stop(fx->tsa);
	submit_ok(fx);
	Rete__BrokerFrame *h = wait_problem(fx, "will be refused after timestamp_grace", false);
	rete__broker_frame__free_unpacked(h, NULL);

	/* 1. the wall clock jumps 2 hours ahead: the grace is not over, the
	 * broker has waited seconds, not hours */
	set_clock(fx->rc_file, "+2h");
	it_msg o = {0};
	Rete__BrokerFrame *r = submit_new(fx, &o);
	const Rete__Receipt *rc = it_answer(r);
	if (rc->error)
		fail_msg("refused right after the wall clock jumped 2 hours ahead (the grace of "
			 "10s measured on the wall clock?): %d: %s",
			 rc->error, rc->error_text);
	/* the jump did happen, in the broker: its log time is 2 hours ahead */
	if (rc->logged_at < rete_now_ms() + HOUR_MS)
		fail_msg("the broker's wall clock did not jump: logged_at %" PRId64 ", now %" PRId64
			 " (libfaketime not in effect?)",
			 rc->logged_at, rete_now_ms());
	rete__broker_frame__free_unpacked(r, NULL);
	h = health(fx);
	assert_non_null(tsa_problem(h->result->health));
	assert_non_null(
	    strstr(tsa_problem(h->result->health), "will be refused after timestamp_grace 10s"));
	rete__broker_frame__free_unpacked(h, NULL);

	/* 2. once the real grace is over, refused... */
	int64_t end = it_mono_ms() + it_scaled_ms(60000);
	for (;;) {
		assert_true(it_mono_ms() < end);
		it_msg_free(&o);
		r = submit_new(fx, &o);
		if (it_answer(r)->error)
			break;
		rete__broker_frame__free_unpacked(r, NULL);
		it_nap(250);
	}
	rc = it_answer(r);
	if (rc->error != RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP)
		fail_msg("refused with %d: %s", rc->error, rc->error_text);
	assert_non_null(strstr(rc->error_text, "timestamp_grace 10s"));
	rete__broker_frame__free_unpacked(r, NULL);

	/* ... and still refused when the wall clock jumps back 4 hours, to
	 * before the moment the checkpoint began to wait */
	set_clock(fx->rc_file, "-2h");
	r = it_submit(fx->sender, &o, it_wait_ms());
	assert_non_null(r);
	rc = it_answer(r);
	if (rc->error != RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP)
		fail_msg("after the wall clock jumped back 4 hours: %s %d: %s",
			 rc->error ? "refused with" : "accepted", rc->error,
			 rc->error ? rc->error_text : "");
	if (refused_at(rc) > rete_now_ms() - HOUR_MS)
		fail_msg("the broker's wall clock did not jump back: refused_at %" PRId64
			 ", now %" PRId64,
			 refused_at(rc), rete_now_ms());
	rete__broker_frame__free_unpacked(r, NULL);
	h = wait_problem(fx, "new submissions are refused", false);
	rete__broker_frame__free_unpacked(h, NULL);

	/* 3. the TSA is back: accepted again, without a restart */
	assert_int_equal(local_tsa_start(fx->tsa), 0);
	end = it_mono_ms() + it_scaled_ms(90000);
	for (;;) {
		if (it_mono_ms() >= end) {
			it_show(fx->n, "broker.log");
			fail_msg("submissions still refused after the TSA came back");
		}
		r = it_submit(fx->sender, &o, it_wait_ms());
		assert_non_null(r);
		rc = it_answer(r);
		if (rc->error == 0)
			break;
		assert_int_equal(rc->error, RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP);
		rete__broker_frame__free_unpacked(r, NULL);
		it_nap(250);
	}
	/* logged at the broker's clock, 2 hours behind the real one */
	assert_true(rc->logged_at < rete_now_ms() - HOUR_MS);
	rete__broker_frame__free_unpacked(r, NULL);
	it_msg_free(&o);
	f = wait_token(fx, first + 1);
	rete__broker_frame__free_unpacked(f, NULL);
	wait_healthy(fx);
}

static void test_bad_answers(void **state)
{
	fixture *fx = start(state, NULL, NULL);
	static const struct {
		const char *mode, *said;
	} bad[] = {
	    {"garbage", "is not a DER TimeStampResp"},
	    {"reject", "refuses the request"},
	    {"http-error", "HTTP 500"},
	    {"wrong-nonce", "nonce"},
	    {"huge", "more than"},
	};

	submit_ok(fx);
	Rete__BrokerFrame *f = wait_token(fx, 1);
	uint64_t good = f->result->timestamp->size;
	rete__broker_frame__free_unpacked(f, NULL);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(local_tsa_mode(fx->tsa, bad[i].mode), 0);
		Rete__BrokerFrame *h = wait_problem(fx, bad[i].said, true);
		fprintf(stderr, "%s: %s\n", bad[i].mode, tsa_problem(h->result->health));
		assert_false(h->result->health->ok);
		/* grace is off: submissions are still accepted */
		assert_non_null(strstr(tsa_problem(h->result->health), "timestamp_grace is off"));
		rete__broker_frame__free_unpacked(h, NULL);
		assert_true(it_broker_ready(fx->n, it_wait_ms()));
	}
	/* nothing it sent was stored as a token */
	f = query_ts(fx, 0);
	assert_int_equal(f->result->timestamp->size, good);
	rete__broker_frame__free_unpacked(f, NULL);

	/* the failures were logged, but not one line per failure */
	size_t lines = tu_occurrences(fx->n->log, "time stamps: no token for checkpoint");
	Rete__BrokerFrame *h = health(fx);
	const char *p = tsa_problem(h->result->health);
	assert_non_null(p);
	unsigned long failures = failures_in(p);
	fprintf(stderr, "%zu log lines for %lu failed exchanges\n", lines, failures);
	assert_true(lines >= 1);
	assert_true(failures >= 5);
	assert_true(lines < failures);
	rete__broker_frame__free_unpacked(h, NULL);

	/* good answers again: a token for a newer checkpoint, no problem */
	assert_int_equal(local_tsa_mode(fx->tsa, "ok"), 0);
	submit_ok(fx);
	f = wait_token(fx, good + 1);
	rete__broker_frame__free_unpacked(f, NULL);
	wait_healthy(fx);
}

/* after_last: the text after the last occurrence of needle in the file at
 * path, up to the end (caller frees), or NULL when needle is not there. */
static char *after_last(const char *path, const char *needle)
{
	size_t len = 0;
	char *text = tu_read_file(path, &len);
	assert_non_null(text);
	char *at = NULL;
	for (char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		at = p;
	char *out = at ? strdup(at + strlen(needle)) : NULL;
	free(text);
	return out;
}

static void test_stop_with_hung_tsa(void **state)
{
	fixture *fx = start(state, "tsa_timeout = 10m\n", NULL);
	char tsa_log[4200];
	snprintf(tsa_log, sizeof(tsa_log), "%s/state/log", fx->tsa->lt_dir);

	/* a TSA that takes the request and never answers */
	assert_int_equal(local_tsa_mode(fx->tsa, "hang"), 0);
	submit_ok(fx);
	assert_true(it_wait_occurrences(tsa_log, "hang", 1, it_wait_ms()));

	/* the stop does not wait for the 10 minutes of tsa_timeout (systemd
	 * kills at TimeoutStopSec=60): the exchange is abandoned */
	int st = it_stop(&fx->n->broker_pid, SIGTERM, it_wait_ms());
	if (st == -1) {
		it_show(fx->n, "broker.log");
		fail_msg("the broker did not exit within %d ms of SIGTERM while the TSA hung "
			 "(tsa_timeout 10m); it was killed",
			 it_wait_ms());
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* "stopped" is what it said last: nothing after its line */
	char *rest = after_last(fx->n->log, "rete-broker info: stopped: log size");
	assert_non_null(rest);
	const char *nl = strchr(rest, '\n');
	if (nl && nl[1] != '\0')
		fail_msg("the broker logged after 'stopped':%s", rest);
	free(rest);
	assert_true(tu_occurrences(fx->n->log, "was ended by the stop; the next start asks again") >
		    0);

	/* nothing lost: the TSA answers again, the next start asks for the
	 * checkpoint left without a token */
	local_tsa_stop(fx->tsa);
	assert_int_equal(local_tsa_mode(fx->tsa, "ok"), 0);
	assert_int_equal(local_tsa_start(fx->tsa), 0);
	assert_true(it_broker_start(fx->n));
	rete_wire_close(&fx->audit);
	fx->audit = it_connect(fx->n, IT_AUDIT);
	assert_non_null(fx->audit);
	Rete__BrokerFrame *f = wait_token(fx, 1);
	rete__broker_frame__free_unpacked(f, NULL);
}

/* check_config writes n's broker.ini with `lines` in [broker] and runs
 * rete-broker --check-config on it; its output (caller frees), *rc. */
static char *check_config(it_net *n, const char *lines, int *rc)
{
	char *out = NULL;
	assert_int_equal(it_write_ini(n), 0);
	size_t len = 0;
	char *text = tu_read_file(n->ini, &len);
	assert_non_null(text);
	char *at = strstr(text, "[broker]\n") + strlen("[broker]\n");
	FILE *f = fopen(n->ini, "w");
	assert_non_null(f);
	fprintf(f, "%.*s%s%s", (int)(at - text), text, lines, at);
	assert_int_equal(fclose(f), 0);
	free(text);
	*rc = tu_run(&out, "%s/rete-broker -c %s --check-config", n->bin, n->ini);
	assert_non_null(out);
	return out;
}

static void expect_problem(it_net *n, const char *lines, const char *want)
{
	int rc;
	char *out = check_config(n, lines, &rc);
	if (rc != 2 || !strstr(out, want))
		fail_msg("--check-config with\n%s\nexit %d, expected 2 and '%s':\n%s", lines, rc,
			 want, out);
	free(out);
}

static void test_config_checks(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	*state = fx;
	assert_int_equal(local_tsa_open(&fx->tsa, RETE_BIN_DIR), 0);
	fx->n = it_net_new("btsacfg", NULL);
	assert_non_null(fx->n);
	it_net *n = fx->n;
	char lines[6000], notpem[1300], pw[1300];

	expect_problem(n, "tsa_url = ftp://tsa.example/tsa\n", "[broker] tsa_url: 'ftp://");
	expect_problem(n, "tsa_url = https://u:secret@tsa.example/tsa\n",
		       "credentials in the URL are not accepted");
	expect_problem(n, "tsa_url = https://tsa.example/tsa\n", "given without tsa_ca");
	expect_problem(n, "timestamp_grace = 4h\n", "timestamp_grace: '4h' without tsa_url");
	snprintf(lines, sizeof(lines), "tsa_ca = %s\n", fx->tsa->lt_ca);
	expect_problem(n, lines, "tsa_ca: given without tsa_url");
	tu_path(notpem, sizeof(notpem), "%s/not.pem", n->dir);
	assert_int_equal(tu_write_file(notpem, "hello\n", 6), 0);
	snprintf(lines, sizeof(lines), "tsa_url = %s\ntsa_ca = %s\n", fx->tsa->lt_url, notpem);
	expect_problem(n, lines, "holds no PEM certificate");
	snprintf(lines, sizeof(lines), "tsa_url = %s\ntsa_ca = %s/none.pem\n", fx->tsa->lt_url,
		 n->dir);
	expect_problem(n, lines, "cannot be read");
	snprintf(lines, sizeof(lines), "tsa_url = %s\ntsa_ca = %s\ntsa_timeout = 20m\n",
		 fx->tsa->lt_url, fx->tsa->lt_ca);
	expect_problem(n, lines, "tsa_timeout: '20m' is too large: at most 10m");
	snprintf(lines, sizeof(lines), "tsa_url = %s\ntsa_ca = %s\ntimestamp_grace = 2wd\n",
		 fx->tsa->lt_url, fx->tsa->lt_ca);
	expect_problem(n, lines, "timestamp_grace: '2wd' counts working days");
	snprintf(lines, sizeof(lines), "tsa_url = %s\ntsa_ca = %s\ntsa_user = rete\n",
		 fx->tsa->lt_url, fx->tsa->lt_ca);
	expect_problem(n, lines, "tsa_user: given without tsa_password_file");
	tu_path(pw, sizeof(pw), "%s/tsa.password", n->dir);
	assert_int_equal(tu_write_file(pw, "s3cret-Pw\n", 10), 0);
	assert_int_equal(chmod(pw, 0644), 0);
	snprintf(lines, sizeof(lines),
		 "tsa_url = %s\ntsa_ca = %s\ntsa_user = rete\ntsa_password_file = %s\n",
		 fx->tsa->lt_url, fx->tsa->lt_ca, pw);
	expect_problem(n, lines, "may be read by others (mode 644)");

	/* all right: accepted, and the password is nowhere */
	assert_int_equal(chmod(pw, 0600), 0);
	snprintf(lines, sizeof(lines),
		 "tsa_url = %s\ntsa_ca = %s\ntsa_user = rete\ntsa_password_file = %s\n"
		 "tsa_timeout = 10s\ntimestamp_grace = 4h\n",
		 fx->tsa->lt_url, fx->tsa->lt_ca, pw);
	int rc;
	char *out = check_config(n, lines, &rc);
	if (rc != 0)
		fail_msg("--check-config: exit %d:\n%s", rc, out);
	assert_null(strstr(out, "s3cret"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_config_checks, teardown),
	    cmocka_unit_test_teardown(test_tokens_served, teardown),
	    cmocka_unit_test_teardown(test_grace_refuses_and_recovers, teardown),
	    cmocka_unit_test_teardown(test_grace_ignores_clock_jumps, teardown),
	    cmocka_unit_test_teardown(test_bad_answers, teardown),
	    cmocka_unit_test_teardown(test_stop_with_hung_tsa, teardown),
	};
	if (getenv("RETE_TEST_ONLY") !=
	    NULL) /* e.g. RETE_TEST_ONLY=test_grace_ignores_clock_jumps */
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
