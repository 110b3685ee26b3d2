/* test_twin_agents.c — two rete-agent processes with one agency's key.
 *
 * An old virtual machine still running after a migration, a copy of the key
 * on a test machine, a restored backup started beside the live one: two
 * agents say HELLO with the same key, and the broker delivers to the one
 * that said it last (docs/protocol.md, HELLO). These tests run the real
 * broker and two real agents for social.mantova, each with its own spool:
 *
 *   twin_told          the older agent is told, says so as an error, in
 *                      its metrics and in `rete status` (text and --json;
 *                      the newer one's status does not); the broker warns and its health names
 *                      the agency; the deliveries go to the newer agent only,
 *                      also after both reconnect (a broker restart): the
 *                      older one does not take them back, nobody is told
 *                      twice
 *   restart_quiet      an agent killed (-9) and started again takes the
 *                      deliveries back without an error, and the broker's
 *                      health names nobody
 *   twin_fight         two connections, both alive, that keep taking the
 *                      deliveries from each other: each take-over is
 *                      counted once the told one answers; the third within
 *                      the hour, the broker's health names the fight; the
 *                      broker warns once a minute, not at each take-over
 *   hello_flood        one key says HELLO 200 times in a row, a new
 *                      connection each time (a flapping line, an agent
 *                      restarting in a loop, someone with the key): the
 *                      broker logs the first at info, holds the others back
 *                      and says at the minute's end how many, and whether
 *                      the agency is connected (its log must not grow by a
 *                      line per HELLO)
 *
 * Helpers: itest.h (network, broker and agent processes, signed messages).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <jansson.h>

#include "itest.h"

#define TWIN "social-twin"
/* the broker's warning: a told connection answered (two agents) */
#define WARNED	  "answered after it was told"
#define TAKEOVERS "rete_broker_agency_takeovers_answered_total{agency=\"social.mantova\"}"

static pid_t twin_pid = -1; /* the second agent (stopped by twin_teardown) */

/* twin_teardown stops the second agent if a failed test left it running,
 * then it_teardown. */
static int twin_teardown(void **state)
{
	int rc = 0;
	if (twin_pid > 0) {
		int st = it_stop(&twin_pid, SIGTERM, it_wait_ms());
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = -1;
	}
	twin_pid = -1;
	return it_teardown(state) == 0 ? rc : -1;
}

/* net_up makes the test network (*state) and starts its broker, with
 * broker_line (NULL: none) added to [broker]. */
static it_net *net_up(void **state, const char *tag, const char *broker_line)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	if (broker_line)
		it_ini_broker_add(n, broker_line);
	assert_true(it_broker_start(n));
	return n;
}

/* until_problem polls the broker's health until a problem holds words
 * (want) or none does (!want): the state of a connection the broker pings
 * each heartbeat. */
static bool until_problem(it_net *n, const char *words, bool want)
{
	int64_t end = it_mono_ms() + it_wait_ms();
	for (;;) {
		char *p = it_health_problems(n);
		bool found = strstr(p, words) != NULL;
		if (found == want || it_mono_ms() > end) {
			if (found != want)
				fprintf(stderr, "health problems:\n%s", p);
			free(p);
			return found == want;
		}
		free(p);
		it_nap(100);
	}
}

/* status_of runs `rete status -c INI --timeout 0` (--json when json) for
 * the agent whose agent.ini is DIR/agents/NAME/agent.ini, expects exit 0
 * and gives its output (caller frees). */
static char *status_of(it_net *n, const char *name, bool json)
{
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' status -c '%s/agents/%s/agent.ini' --timeout 0%s", n->bin,
			n->dir, name, json ? " --json" : "");
	assert_non_null(out);
	if (rc != 0)
		fail_msg("rete status of %s: exit %d:\n%s", name, rc, out);
	return out;
}

/* status_taken_over: what `rete status` says of agent NAME: taken over
 * (text: "TAKEN OVER at TIME" and from where, --json: "takenOver" with
 * "at" and the broker's sentence) or nothing of it. */
static void status_taken_over(it_net *n, const char *name, bool want)
{
	char *text = status_of(n, name, false);
	const char *said = strstr(text, "social.mantova: TAKEN OVER at 20");
	if ((said != NULL) != want)
		fail_msg("rete status of %s %s that another agent took the deliveries:\n%s", name,
			 want ? "does not say" : "says", text);
	if (want && !strstr(text, "another agent with this agency's key (from "))
		fail_msg("rete status of %s does not say from where:\n%s", name, text);
	free(text);
	char *js = status_of(n, name, true);
	json_t *doc = json_loads(js, 0, NULL);
	if (!doc)
		fail_msg("rete status --json of %s is not JSON:\n%s", name, js);
	json_t *t = json_object_get(doc, "takenOver");
	if ((t != NULL) != want)
		fail_msg("rete status --json of %s: takenOver %s:\n%s", name,
			 want ? "absent" : "present", js);
	if (want) {
		const char *at = json_string_value(json_object_get(t, "at"));
		assert_non_null(at);
		assert_true(strncmp(at, "20", 2) == 0 && strchr(at, 'Z'));
		assert_non_null(strstr(json_string_value(json_object_get(t, "broker")),
				       "another connection with the key of social.mantova"));
	}
	json_decref(doc);
	free(js);
}

/* log_from: the file at path from byte `from` on (caller frees). */
static char *log_from(const char *path, long from)
{
	size_t len = 0;
	char *text = tu_read_file(path, &len);
	assert_non_null(text);
	char *out = strdup((size_t)from <= len ? text + from : "");
	free(text);
	return out;
}

static void test_twin_told(void **state)
{
	/* the broker's metrics on a port of its choosing */
	it_net *n = net_up(state, "twin-told", "metrics = 127.0.0.1:0");
	int ms = it_wait_ms();
	char alog[1300], tlog[1300], ainbox[1300], tinbox[1300];
	snprintf(alog, sizeof(alog), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	snprintf(tlog, sizeof(tlog), "%s/" TWIN ".log", n->dir);
	it_spool(n, IT_SOCIAL, "inbox", ainbox, sizeof(ainbox));
	snprintf(tinbox, sizeof(tinbox), "%s/agents/" TWIN "/spool/inbox", n->dir);

	assert_true(it_agent_start_ex(n, IT_SOCIAL, "metrics = 127.0.0.1:0\n"));
	assert_true(it_wait_occurrences(alog, "connected to", 1, ms));
	twin_pid = it_twin_start(n, n->listen);
	assert_true(twin_pid > 0);
	assert_true(it_wait_occurrences(tlog, "connected to", 1, ms));

	/* the older agent is told, plainly, as an error */
	if (!it_wait_occurrences(alog, " error: another agent with the key of social.mantova", 1,
				 ms)) {
		it_show(n, "social.mantova.log");
		it_show(n, "broker.log");
		fail_msg("the older agent was not told that another one took its deliveries");
	}
	/* ...and in its metrics */
	char url[128];
	it_metrics_url(alog, url, sizeof(url));
	assert_true(it_until_metric(url, "rete_agent_taken_over", 1));
	/* ...and in `rete status`, which the newer one's does not say */
	status_taken_over(n, it_party_ids[IT_SOCIAL], true);
	status_taken_over(n, TWIN, false);
	/* the broker warns, and its health names the agency */
	assert_true(it_wait_occurrences(n->log, WARNED, 1, ms));
	assert_true(until_problem(n, "social.mantova: two connections", true));
	it_metrics_url(n->log, url, sizeof(url));
	assert_true(
	    it_until_metric(url, "rete_broker_agency_contested{agency=\"social.mantova\"}", 1));
	assert_true(it_until_metric(url, TAKEOVERS, 1));
	assert_true(
	    it_until_metric(url, "rete_broker_agency_contested{agency=\"cpi.mantova\"}", 0));

	/* the deliveries go to the newer one only */
	it_refer(n, IT_CPI, IT_SOCIAL, "twin-1");
	assert_true(it_until_inbox(tinbox, 1));
	assert_int_equal(it_inbox_count(ainbox), 0);

	/* both reconnect (a broker restart): the older one does not take the
	 * deliveries back, nobody is told again, the problem stays visible */
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, ms), 0);
	assert_true(it_broker_start(n));
	assert_true(it_wait_occurrences(alog, "connected to", 2, ms));
	assert_true(it_wait_occurrences(tlog, "connected to", 2, ms));
	it_refer(n, IT_CPI, IT_SOCIAL, "twin-2");
	assert_true(it_until_inbox(tinbox, 2));
	assert_int_equal(it_inbox_count(ainbox), 0);
	assert_int_equal(tu_occurrences(alog, "another agent with the key of"), 1);
	assert_int_equal(tu_occurrences(n->log, WARNED), 1);
	assert_int_equal(tu_occurrences(tlog, " error: "), 0);
	assert_true(until_problem(n, "social.mantova: two connections", true));

	/* the newer one stops: nothing waits for a restart of the older one,
	 * which takes what comes (never lose a referral), and health names
	 * nobody any more */
	int st = it_stop(&twin_pid, SIGTERM, ms);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	it_refer(n, IT_CPI, IT_SOCIAL, "twin-3");
	assert_true(it_until_inbox(ainbox, 1));
	assert_true(until_problem(n, "social.mantova", false));

	/* stopped, its status still says what it was when it last ran; a
	 * start takes the deliveries back, and the status says nothing more */
	st = it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, ms);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	status_taken_over(n, it_party_ids[IT_SOCIAL], true);
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_occurrences(alog, "connected to", 3, ms));
	status_taken_over(n, it_party_ids[IT_SOCIAL], false);
}

static void test_restart_quiet(void **state)
{
	it_net *n = net_up(state, "twin-restart", NULL);
	int ms = it_wait_ms();
	char alog[1300], ainbox[1300];
	snprintf(alog, sizeof(alog), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	it_spool(n, IT_SOCIAL, "inbox", ainbox, sizeof(ainbox));

	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_occurrences(alog, "connected to", 1, ms));
	it_refer(n, IT_CPI, IT_SOCIAL, "restart-1");
	assert_true(it_until_inbox(ainbox, 1));

	/* a crash, and the agent started again at once */
	assert_true(WIFSIGNALED(it_stop(&n->agent_pid[IT_SOCIAL], SIGKILL, ms)));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_occurrences(alog, "connected to", 2, ms));
	it_refer(n, IT_CPI, IT_SOCIAL, "restart-2");
	assert_true(it_until_inbox(ainbox, 2));

	/* no error on the new one, no alarm at the broker (a connection it
	 * had not yet seen go may be told, but cannot answer) */
	char *since = log_from(alog, n->agent_log_at[IT_SOCIAL]);
	if (strstr(since, " error: "))
		fprintf(stderr, "%s", since);
	assert_null(strstr(since, " error: "));
	free(since);
	assert_int_equal(tu_occurrences(n->log, WARNED), 0);
	char *p = it_health_problems(n);
	if (strstr(p, "social.mantova"))
		fprintf(stderr, "health problems:\n%s", p);
	assert_null(strstr(p, "social.mantova"));
	free(p);
}

/* hello_welcomed says HELLO on w as social.mantova and waits for the
 * WELCOME, passing over the TAKEN_OVER notices waiting on w. */
static void hello_welcomed(rete_wire *w)
{
	assert_int_equal(rete_wire_hello(w, it_party_ids[IT_SOCIAL], "old agent", NULL), RETE_OK);
	for (;;) {
		Rete__BrokerFrame *f =
		    it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
		assert_non_null(f);
		bool welcome = f->command_case == RETE__BROKER_FRAME__COMMAND_WELCOME;
		if (!welcome)
			assert_int_equal(f->refusal->error,
					 RETE__ERROR_CODE__ERROR_CODE_TAKEN_OVER);
		rete__broker_frame__free_unpacked(f, NULL);
		if (welcome)
			return;
	}
}

/* until_answered reads w (its PINGs answered inside rete_wire_recv, the
 * TAKEN_OVER notice passed over) until the broker at url has counted want
 * take-overs answered; false at the deadline. */
static bool until_answered(rete_wire *w, const char *url, double want)
{
	int64_t end = it_mono_ms() + it_wait_ms();
	while (it_mono_ms() < end) {
		Rete__BrokerFrame *f = NULL;
		if (rete_wire_recv(w, 100, &f, NULL) == RETE_OK)
			rete__broker_frame__free_unpacked(f, NULL);
		char *text = it_scrape(url, NULL);
		bool done = text && it_metric(text, TAKEOVERS) == want;
		free(text);
		if (done)
			return true;
	}
	return it_until_metric(url, TAKEOVERS, want); /* prints the last scrape */
}

/* twin_fight: two connections with one key, both alive (they answer the
 * broker's PINGs), that keep saying a plain HELLO (agents that do not
 * stand by when told, as a protocol-4 agent would after each reconnect)
 * take the deliveries from each other; the third time within the hour,
 * health names the fight. The broker warns once, not at each. */
static void test_twin_fight(void **state)
{
	it_net *n = net_up(state, "twin-fight", "metrics = 127.0.0.1:0");
	char url[128];
	it_metrics_url(n->log, url, sizeof(url));
	rete_wire *a = it_connect(n, IT_SOCIAL), *b = it_connect(n, IT_SOCIAL);
	assert_non_null(a);
	assert_non_null(b);
	hello_welcomed(a);
	hello_welcomed(b); /* 1 */
	assert_true(until_answered(a, url, 1));
	hello_welcomed(a); /* 2 */
	assert_true(until_answered(b, url, 2));
	char *p = it_health_problems(n);
	assert_null(strstr(p, "from each other"));
	free(p);
	hello_welcomed(b); /* 3 */
	assert_true(until_answered(a, url, 3));
	p = it_health_problems(n);
	if (!strstr(p, "social.mantova: two connections took its deliveries from each other 3 "
		       "times"))
		fprintf(stderr, "health problems:\n%s", p);
	assert_non_null(strstr(p, "social.mantova: two connections took its deliveries from "
				  "each other 3 times"));
	free(p);
	/* three take-overs within a minute: one warning */
	if (tu_occurrences(n->log, "warning: social.mantova: ") != 1)
		it_show(n, "broker.log");
	assert_int_equal(tu_occurrences(n->log, "warning: social.mantova: "), 1);
	assert_int_equal(tu_occurrences(n->log, WARNED), 1);
	rete_wire_close(&a);
	rete_wire_close(&b);
}

/* hello_flood: 200 HELLOs on social.mantova's key, each on a connection
 * of its own that goes at once. Few info lines about them (the first, and
 * at most one a minute after), and the count of the others said when the
 * minute ends, with the agency's state then. The broker runs with -v: the
 * HELLOs held back are debug lines there. */
static void test_hello_flood(void **state)
{
	it_net *n = net_up(state, "hello-flood", NULL);
	const int hellos = 200;
	for (int i = 0; i < hellos; i++) {
		rete_wire *w = it_hello(n, IT_SOCIAL);
		assert_non_null(w);
		rete_wire_close(&w);
	}
	/* the last one is on the log (held back or not) once the broker
	 * answers a later HELLO */
	rete_wire *w = it_hello(n, IT_CPI);
	assert_non_null(w);
	rete_wire_close(&w);
	size_t said = tu_occurrences(n->log, " info: hello from social.mantova (");
	if (said > 3) {
		it_show_path(n->log, 3000);
		fail_msg("%zu info lines 'hello from social.mantova' for %d HELLOs", said, hellos);
	}
	/* the minute's count, with the agency's state: at most a minute after
	 * the first HELLO (the wait is for the line, with a deadline) */
	if (!it_wait_occurrences(n->log, " more HELLOs", 1, it_wait_ms() + 60000)) {
		it_show_path(n->log, 3000);
		fail_msg("no line says how many HELLOs from social.mantova were not logged");
	}
	char *log = tu_read_file(n->log, NULL);
	assert_non_null(log);
	const char *sum = strstr(log, " more HELLOs");
	assert_non_null(sum);
	while (sum > log && sum[-1] != '\n')
		sum--;
	sum = strstr(sum, "social.mantova: ");
	assert_non_null(sum);
	const char *eol = strchr(sum, '\n');
	char line[1024];
	snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - sum : 1000), sum);
	/* every HELLO accounted for: the ones said at info, the ones counted */
	unsigned long long more = 0;
	assert_int_equal(sscanf(line, "social.mantova: %llu more HELLOs", &more), 1);
	if (more + said < (unsigned long long)hellos)
		fail_msg("%zu said and %llu counted of %d HELLOs: %s", said, more, hellos, line);
	assert_non_null(strstr(line, "no connection now"));
	free(log);
	/* the log did not grow by a line per HELLO at info */
	assert_true(tu_occurrences(n->log, " info: social.mantova") < 10);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_twin_told, twin_teardown),
	    cmocka_unit_test_teardown(test_restart_quiet, it_teardown),
	    cmocka_unit_test_teardown(test_twin_fight, it_teardown),
	    cmocka_unit_test_teardown(test_hello_flood, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
