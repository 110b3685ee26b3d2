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
 *                      twice; when the newer one stops, they come back to
 *                      the older one, whose log and status say so
 *   restart_quiet      an agent killed (-9) and started again takes the
 *                      deliveries back without an error, and the broker's
 *                      health names nobody
 *   twin_fight         two connections, both alive, that keep taking the
 *                      deliveries from each other: each take-over is
 *                      counted once the told one answers; the third within
 *                      the hour, the broker's health names the fight; the
 *                      broker warns once a minute, not at each take-over,
 *                      and says the ones held back when it stops
 *   hello_flood        one key says HELLO 200 times in a row, a new
 *                      connection each time (a flapping line, an agent
 *                      restarting in a loop, someone with the key): the
 *                      broker logs the first at info, holds the others back
 *                      with the connections lost, and says how many, exactly,
 *                      and whether the agency is connected, when it is
 *                      stopped within the minute (its log must not grow by
 *                      a line per HELLO)
 *   hello_gone         three HELLOs, each connection gone: every loss said
 *                      or counted once, "no connection"; one reconnect is
 *                      "1 more HELLO", not a loop
 *   hello_line_whole   the longest software, standing by: the line is whole
 *
 * The minute itself (when a count is said, a HELLO after a quiet minute)
 * is tested at exact times in tests/unit/test_ratelimit.c (rete_ratewin).
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

/* what `rete status` says of a take-over: nothing, taken over (text:
 * "TAKEN OVER at TIME" and from where, --json: "takenOver" with "at" and
 * the broker's sentence), or over since the deliveries came back (text:
 * "deliveries back since TIME", --json: "takenOver" with "back") */
enum taken { TAKEN_NONE, TAKEN_NOW, TAKEN_BACK };

static void status_taken_over(it_net *n, const char *name, enum taken want)
{
	static const char *const said[] = {"", "social.mantova: TAKEN OVER at 20",
					   "social.mantova: deliveries back since 20"};
	char *text = status_of(n, name, false);
	for (int k = TAKEN_NOW; k <= TAKEN_BACK; k++)
		if ((strstr(text, said[k]) != NULL) != (k == (int)want))
			fail_msg("rete status of %s %s '%s':\n%s", name,
				 k == (int)want ? "does not say" : "says", said[k], text);
	if (want != TAKEN_NONE && !strstr(text, "another agent with this agency's key (from "))
		fail_msg("rete status of %s does not say from where:\n%s", name, text);
	free(text);
	char *js = status_of(n, name, true);
	json_t *doc = json_loads(js, 0, NULL);
	if (!doc)
		fail_msg("rete status --json of %s is not JSON:\n%s", name, js);
	json_t *t = json_object_get(doc, "takenOver");
	if ((t != NULL) != (want != TAKEN_NONE))
		fail_msg("rete status --json of %s: takenOver %s:\n%s", name,
			 want != TAKEN_NONE ? "absent" : "present", js);
	if (want != TAKEN_NONE) {
		const char *at = json_string_value(json_object_get(t, "at"));
		assert_non_null(at);
		assert_true(strncmp(at, "20", 2) == 0 && strchr(at, 'Z'));
		assert_non_null(strstr(json_string_value(json_object_get(t, "broker")),
				       "another connection with the key of social.mantova"));
		const char *back = json_string_value(json_object_get(t, "back"));
		if ((back != NULL) != (want == TAKEN_BACK))
			fail_msg("rete status --json of %s: takenOver.back %s:\n%s", name,
				 back ? "present" : "absent", js);
		if (back)
			assert_true(strncmp(back, "20", 2) == 0 && strcmp(back, at) >= 0);
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
	status_taken_over(n, it_party_ids[IT_SOCIAL], TAKEN_NOW);
	status_taken_over(n, TWIN, TAKEN_NONE);
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
	 * which takes what comes (never lose a referral), says so, and so does
	 * its status; health names nobody any more */
	int st = it_stop(&twin_pid, SIGTERM, ms);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	it_refer(n, IT_CPI, IT_SOCIAL, "twin-3");
	assert_true(it_until_inbox(ainbox, 1));
	/* the record is updated before the delivery is written to the inbox */
	status_taken_over(n, it_party_ids[IT_SOCIAL], TAKEN_BACK);
	assert_true(it_wait_occurrences(alog,
					" info: deliveries for social.mantova come to this "
					"agent again",
					1, ms));
	assert_true(until_problem(n, "social.mantova", false));

	/* stopped, its status still says what it was when it last ran; a
	 * start takes the deliveries back, and the status says nothing more */
	st = it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, ms);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	status_taken_over(n, it_party_ids[IT_SOCIAL], TAKEN_BACK);
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_occurrences(alog, "connected to", 3, ms));
	status_taken_over(n, it_party_ids[IT_SOCIAL], TAKEN_NONE);
	assert_int_equal(tu_occurrences(alog, "come to this agent again"), 1);
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
	/* the two held back are said when the broker stops, not lost */
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rete_wire_close(&a);
	rete_wire_close(&b);
	if (tu_occurrences(n->log, " warning: social.mantova: 2 more take-overs answered since "
				   "the last warning about two agents with its key") != 1) {
		it_show_path(n->log, 3000);
		fail_msg("the take-over warnings held back are not said at the stop");
	}
}

/* count_line: the broker's line that says how many HELLOs of
 * social.mantova it held back (" info: social.mantova: ... more HELLO"),
 * which must be there once; the text from "social.mantova: " on, into
 * line (len bytes). */
static void count_line(it_net *n, char *line, size_t len)
{
	char *log = tu_read_file(n->log, NULL);
	assert_non_null(log);
	const char *c = strstr(log, " info: social.mantova: ");
	while (c && !strstr(c, " more HELLO"))
		c = NULL;
	if (!c || tu_occurrences(n->log, " info: social.mantova: ") != 1) {
		it_show_path(n->log, 6000);
		fail_msg("not one line of the HELLOs of social.mantova held back");
	}
	c += strlen(" info: ");
	const char *eol = strchr(c, '\n');
	snprintf(line, len, "%.*s", (int)(eol ? eol - c : (long)strlen(c)), c);
	/* said before the broker says it stopped */
	assert_true(strstr(log, "stopped: log size") > c);
	free(log);
}

/* counted: the delivery connections of social.mantova lost and counted
 * with its HELLOs held back (each a debug line) */
static size_t counted(it_net *n)
{
	return tu_occurrences(n->log, "(counted: held back with its HELLOs)");
}

/* losses: the lines of the broker's log that say a connection of
 * social.mantova went, at level (" info: ", " debug: "; NULL: any) */
static size_t losses(it_net *n, const char *level)
{
	char *log = tu_read_file(n->log, NULL);
	assert_non_null(log);
	size_t k = 0;
	for (char *l = log, *e; l && *l; l = e ? e + 1 : NULL) {
		e = strchr(l, '\n');
		if (e)
			*e = '\0';
		if (level && !strstr(l, level))
			continue;
		if (strstr(l, "social.mantova's delivery connection is gone") ||
		    (strstr(l, "social.mantova's new connection") &&
		     strstr(l, "the one before is gone")) ||
		    (strstr(l, "social.mantova: the connection from") &&
		     strstr(l, "went without answering")))
			k++;
	}
	free(log);
	return k;
}

/* number_before: the whole number written just before what in line (as
 * in "57 more HELLOs"), 0 when line does not say what */
static unsigned long number_before(const char *line, const char *what)
{
	const char *w = strstr(line, what), *d = w;
	while (d && d > line && d[-1] >= '0' && d[-1] <= '9')
		d--;
	return w && d < w ? strtoul(d, NULL, 10) : 0;
}

/* line_counts checks the numbers of the count line: hellos HELLOs held
 * back, and as many delivery connections gone as the broker's debug lines
 * say lost (each counted once, none left out); gives that number. */
static size_t line_counts(it_net *n, const char *line, unsigned long hellos)
{
	unsigned long said_hellos = number_before(line, " more HELLO");
	unsigned long said_gone = number_before(line, " delivery connection");
	size_t lost = losses(n, " debug: ");
	if (said_hellos != hellos || said_gone != lost)
		fail_msg("the count line says %lu HELLOs and %lu delivery connections gone; "
			 "held back: %lu HELLOs, %zu lost connections (debug lines):\n%s",
			 said_hellos, said_gone, hellos, lost, line);
	assert_int_equal(counted(n), lost);
	return lost;
}

/* hello_flood: 200 HELLOs on social.mantova's key, each on a connection
 * of its own, all gone but the last one. One info line says the first;
 * the others are held back (debug lines: the broker runs with -v) and,
 * as the broker is stopped within the minute, said in one line then, with
 * the connections lost meanwhile, each counted once, and the agency's
 * state (its log must not grow by a line per HELLO). */
static void test_hello_flood(void **state)
{
	it_net *n = net_up(state, "hello-flood", NULL);
	const int hellos = 200;
	rete_wire *w = NULL;
	for (int i = 0; i < hellos; i++) {
		rete_wire_close(&w);
		w = it_hello(n, IT_SOCIAL);
		assert_non_null(w);
	}
	/* all of them on the log once the broker answers a later HELLO */
	rete_wire *c = it_hello(n, IT_CPI);
	assert_non_null(c);
	rete_wire_close(&c);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rete_wire_close(&w);

	size_t said = tu_occurrences(n->log, " info: hello from social.mantova (");
	if (said != 1) {
		it_show_path(n->log, 3000);
		fail_msg("%zu info lines 'hello from social.mantova' for %d HELLOs", said, hellos);
	}
	/* each of the 200 connections says HELLO once; one whose handshake
	 * is made again (a reconnect on a loaded machine) says it again, as
	 * it must (agents/common/wire.c): every HELLO but the first is held
	 * back, and the count line says as many as were */
	size_t held = tu_occurrences(n->log, "(held back: HELLOs from social.mantova");
	if (held < (size_t)hellos - 1)
		fail_msg("%zu HELLOs held back for %d HELLOs (one said)", held, hellos);
	if (held != (size_t)hellos - 1)
		fprintf(stderr, "hello_flood: %zu HELLOs held back for %d connections: %zu said "
				"again after a reconnect\n",
			held, hellos, held - (size_t)hellos + 1);
	char line[1024], want[128];
	count_line(n, line, sizeof(line));
	size_t gone = line_counts(n, line, (unsigned long)held);
	if (gone)
		snprintf(want, sizeof(want),
			 "social.mantova: %zu more HELLOs and %zu delivery connection%s gone in "
			 "the last minute, not logged one by one (a line that fails",
			 held, gone, gone == 1 ? "" : "s");
	else
		snprintf(want, sizeof(want),
			 "social.mantova: %zu more HELLOs in the last minute, not logged one by "
			 "one (a line that fails",
			 held);
	if (strncmp(line, want, strlen(want)) != 0)
		fail_msg("the count line is not '%s...':\n%s", want, line);
	assert_non_null(strstr(line, "; the latest HELLO, at 20"));
	assert_non_null(strstr(line, ": hello from social.mantova (social-services, itest); "
				     "connected when the broker stopped (deliveries go to its "
				     "connection from localhost:"));
	/* a lost connection is said at info only before a HELLO is held */
	assert_true(losses(n, " info: ") <= 1);
	/* the rate-limited lines of the minute are counted at the stop too
	 * (199 connections closed: one said, the others held back) */
	assert_int_equal(tu_occurrences(n->log, " info: closed connections of social.mantova: "),
			 1);
	assert_true(tu_occurrences(n->log, " info: social.mantova") < 5);
}

/* hello_gone: three HELLOs, each connection gone after its WELCOME: the
 * first is said, the two others held back; every connection lost is said
 * or counted once, and the count, said when the broker stops, says that
 * nothing is connected. One more HELLO then (after the stop): "1 more
 * HELLO", not a loop. */
static void test_hello_gone(void **state)
{
	it_net *n = net_up(state, "hello-gone", NULL);
	for (int i = 0; i < 3; i++) {
		rete_wire *w = it_hello(n, IT_SOCIAL);
		assert_non_null(w);
		rete_wire_close(&w);
	}
	if (!it_wait_occurrences(n->log,
				 "social.mantova's delivery connection is gone; deliveries "
				 "wait for its next HELLO",
				 1, it_wait_ms()))
		it_show_path(n->log, 4000);
	/* all three seen gone (the broker pings a connection at once when
	 * ZeroMQ says one of the party's closed) */
	int64_t end = it_mono_ms() + it_wait_ms();
	while (losses(n, NULL) < 3 && it_mono_ms() < end)
		it_nap(50);
	if (losses(n, NULL) != 3) {
		it_show_path(n->log, 6000);
		fail_msg("%zu connections of social.mantova said gone, not 3", losses(n, NULL));
	}
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	char line[1024], want[160];
	count_line(n, line, sizeof(line));
	size_t gone = line_counts(n, line, 2);
	assert_true(gone >= 2); /* after the HELLOs held: the last two */
	snprintf(want, sizeof(want),
		 "social.mantova: 2 more HELLOs and %zu delivery connection%s gone in the last "
		 "minute, not logged one by one",
		 gone, gone == 1 ? "" : "s");
	if (strncmp(line, want, strlen(want)) != 0)
		fail_msg("the count line is not '%s...':\n%s", want, line);
	assert_non_null(strstr(line, "; no connection when the broker stopped"));
	/* each said once: at info, or counted (a debug line) */
	assert_int_equal(losses(n, NULL), gone + losses(n, " info: "));

	/* a restarted broker: one HELLO said, one reconnect held, counted as
	 * one, not as a loop */
	assert_true(it_broker_start(n));
	char *before = tu_read_file(n->log, NULL);
	size_t from = before ? strlen(before) : 0;
	free(before);
	rete_wire *a = it_hello(n, IT_SOCIAL);
	rete_wire *b = it_hello(n, IT_SOCIAL);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rete_wire_close(&a);
	rete_wire_close(&b);
	char *after = log_from(n->log, (long)from);
	const char *one = strstr(after, "social.mantova: 1 more HELLO in the last minute, not "
					"logged at once");
	if (!one || strstr(one, "1 more HELLOs") || strstr(after, "0 delivery"))
		fail_msg("one reconnect not said as one:\n%s", after);
	assert_null(strstr(one, "in a loop"));
	free(after);
}

/* hello_line_whole: a HELLO with the longest software the broker logs (64
 * bytes) that stands by: its line is whole, at once and in the count */
static void test_hello_line_whole(void **state)
{
	it_net *n = net_up(state, "hello-whole", NULL);
	static const char sw[] = "rete-agent 0.8.0-rc1+build.20261207.1234 (git b5f5a35-dirty) x86";
	assert_int_equal(strlen(sw), 64);
	rete_wire *w[2];
	for (int i = 0; i < 2; i++) {
		w[i] = it_connect(n, IT_SOCIAL);
		assert_non_null(w[i]);
		rete_wire_standby(w[i]);
		assert_int_equal(rete_wire_hello(w[i], it_party_ids[IT_SOCIAL], sw, NULL), RETE_OK);
		Rete__BrokerFrame *f =
		    it_recv_kind(w[i], RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
		assert_non_null(f);
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rete_wire_close(&w[0]);
	rete_wire_close(&w[1]);
	char whole[300];
	snprintf(whole, sizeof(whole),
		 "hello from social.mantova (social-services, %s), standing by: another "
		 "connection takes its deliveries",
		 sw);
	char said[320];
	snprintf(said, sizeof(said), " info: %s\n", whole);
	if (tu_occurrences(n->log, said) != 1) {
		it_show_path(n->log, 3000);
		fail_msg("the HELLO's line is not whole once: %s", said);
	}
	char line[1024];
	count_line(n, line, sizeof(line));
	if (!strstr(line, whole))
		fail_msg("the count line does not hold the latest HELLO whole: %s", line);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_twin_told, twin_teardown),
	    cmocka_unit_test_teardown(test_restart_quiet, it_teardown),
	    cmocka_unit_test_teardown(test_twin_fight, it_teardown),
	    cmocka_unit_test_teardown(test_hello_flood, it_teardown),
	    cmocka_unit_test_teardown(test_hello_gone, it_teardown),
	    cmocka_unit_test_teardown(test_hello_line_whole, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
