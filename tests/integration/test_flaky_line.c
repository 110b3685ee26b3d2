/* test_flaky_line.c — one agent on a line that rebinds is one agent.
 *
 * A NAT rebinding, a WAN fail-over or a VPN re-key leaves the broker's side
 * of an agent's TCP connection half-open: nothing reaches it any more, no
 * FIN, no RST, and the broker keeps it listed until ZeroMQ's heartbeat
 * gives up on it (3 heartbeats), while the agent, reset, reconnects at
 * once and says HELLO again. These tests put a relay (a child process of
 * the test, relay_run) between a real rete-agent and the real broker
 * (listening on TCP, heartbeat 5s as in production); on SIGUSR1 the relay
 * resets the agent's side of every connection and leaves the broker's side
 * silent:
 *
 *   flaky_one_agent     one agent, three rebinds: the broker tells each
 *                       dead connection (it never reads it), warns of
 *                       nothing, counts no take-over, and its health names
 *                       nobody, also once the dead connections are gone;
 *                       each HELLO waited for is one line (it_hello_lines:
 *                       the broker's line counting HELLOs held back, which
 *                       its clean stop writes, is not one)
 *   standby_alone       the agent told to stand by (its twin, which took
 *                       the deliveries, since stopped) has its line rebind:
 *                       its new connection takes the deliveries at once
 *                       (not after its dead one is dropped), and health
 *                       does not call it two agents
 *
 * Helpers: itest.h (network, broker and agent processes, signed messages).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "itest.h"

#define TWIN	  "social-twin"
#define RELAY_MAX 32

static pid_t relay_pid = -1, twin_pid = -1;

static int flaky_teardown(void **state)
{
	if (relay_pid > 0)
		it_stop(&relay_pid, SIGKILL, it_wait_ms());
	if (twin_pid > 0)
		it_stop(&twin_pid, SIGTERM, it_wait_ms());
	relay_pid = twin_pid = -1;
	return it_teardown(state);
}

/* --- the relay (a child process) ------------------------------------------------------------ */

static volatile sig_atomic_t relay_rebind;

static void relay_on_usr1(int sig)
{
	(void)sig;
	relay_rebind = 1;
}

/* relay_run relays every connection accepted on listener ls to
 * 127.0.0.1:up, both ways, until killed. On SIGUSR1 the agent's side of
 * each connection relayed so far is reset (SO_LINGER 0) and the broker's
 * side is kept open and read, what comes on it dropped: half-open, as
 * after a NAT rebinding. Never returns. */
static void relay_run(int ls, unsigned up)
{
	struct sigaction sa = {.sa_handler = relay_on_usr1};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: poll returns EINTR */
	int cl[RELAY_MAX], br[RELAY_MAX];
	size_t n = 0;
	char buf[65536];
	for (;;) {
		if (relay_rebind) {
			relay_rebind = 0;
			for (size_t i = 0; i < n; i++) {
				if (cl[i] < 0)
					continue;
				struct linger lg = {.l_onoff = 1, .l_linger = 0};
				setsockopt(cl[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(cl[i]);
				cl[i] = -1;
			}
		}
		struct pollfd pf[1 + 2 * RELAY_MAX];
		size_t k = 0;
		pf[k++] = (struct pollfd){.fd = ls, .events = POLLIN};
		for (size_t i = 0; i < n; i++) {
			pf[k++] = (struct pollfd){.fd = cl[i], .events = POLLIN};
			pf[k++] = (struct pollfd){.fd = br[i], .events = POLLIN};
		}
		if (poll(pf, k, -1) < 0)
			continue; /* EINTR: a rebind */
		if ((pf[0].revents & POLLIN) && n < RELAY_MAX) {
			int c = accept(ls, NULL, NULL);
			int u = socket(AF_INET, SOCK_STREAM, 0);
			struct sockaddr_in a = {.sin_family = AF_INET,
						.sin_port = htons((uint16_t)up),
						.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			if (c >= 0 && u >= 0 && connect(u, (struct sockaddr *)&a, sizeof(a)) == 0) {
				cl[n] = c;
				br[n] = u;
				n++;
			} else {
				if (c >= 0)
					close(c);
				if (u >= 0)
					close(u);
			}
		}
		for (size_t i = n; i-- > 0;) {
			int *side[2] = {&cl[i], &br[i]};
			bool gone = false;
			for (int s = 0; s < 2 && !gone; s++) {
				short ev = pf[1 + 2 * i + (size_t)s].revents;
				if (*side[s] < 0 || !(ev & (POLLIN | POLLHUP | POLLERR)))
					continue;
				ssize_t got = read(*side[s], buf, sizeof(buf));
				if (got <= 0) {
					gone = true;
					break;
				}
				int to = *side[1 - s];
				for (ssize_t off = 0; to >= 0 && off < got;) {
					ssize_t w = write(to, buf + off, (size_t)(got - off));
					if (w <= 0)
						break;
					off += w;
				}
			}
			if (gone) {
				if (cl[i] >= 0)
					close(cl[i]);
				close(br[i]);
				cl[i] = cl[n - 1];
				br[i] = br[n - 1];
				n--;
			}
		}
	}
}

/* loopback_listener: a TCP socket listening on 127.0.0.1 (a free port,
 * in *port). */
static int loopback_listener(unsigned *port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
	assert_int_equal(listen(s, 16), 0);
	*port = ntohs(a.sin_port);
	return s;
}

/* net_relayed makes the test network (*state): its broker listens on TCP
 * with heartbeat 5s and metrics on a port of its choosing; a relay
 * (relay_run) listens in front of it. n->listen is then the relay's: the
 * agents started from then on connect through it. *direct gets the
 * broker's own endpoint. */
static it_net *net_relayed(void **state, const char *tag, char *direct, size_t len)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	unsigned bp, rp;
	int probe = loopback_listener(&bp); /* a free port for the broker */
	close(probe);
	snprintf(n->listen, sizeof(n->listen), "tcp://127.0.0.1:%u", bp);
	snprintf(direct, len, "%s", n->listen);
	assert_int_equal(it_write_ini(n), 0);
	char *ini = tu_read_file(n->ini, NULL); /* production's heartbeat */
	assert_non_null(ini);
	char *hb = strstr(ini, "heartbeat = 1s");
	assert_non_null(hb);
	hb[strlen("heartbeat = ")] = '5';
	assert_int_equal(tu_write_file(n->ini, ini, strlen(ini)), 0);
	free(ini);
	it_ini_broker_add(n, "metrics = 127.0.0.1:0");
	assert_true(it_broker_start(n));
	int ls = loopback_listener(&rp);
	relay_pid = fork();
	assert_true(relay_pid >= 0);
	if (relay_pid == 0)
		relay_run(ls, bp);
	close(ls); /* the child listens on it */
	snprintf(n->listen, sizeof(n->listen), "tcp://127.0.0.1:%u", rp);
	return n;
}

/* --- helpers -------------------------------------------------------------------------------- */

/* no_problem: health names no problem of social.mantova (printed if it
 * does). */
static bool no_problem(it_net *n)
{
	char *p = it_health_problems(n);
	bool ok = strstr(p, it_party_ids[IT_SOCIAL]) == NULL;
	if (!ok)
		fprintf(stderr, "health problems:\n%s", p);
	free(p);
	return ok;
}

/* the broker's sentences: the warning (any release) of two agents, and
 * the line that says a told connection went without answering */
#define WARN_OLD  "two agents may be running"
#define WARN_NEW  "answered after it was told"
#define GONE_LINE "went without answering"

static void test_flaky_one_agent(void **state)
{
	char direct[300];
	it_net *n = net_relayed(state, "flaky-one", direct, sizeof(direct));
	int ms = it_wait_ms();
	char alog[1300], ainbox[1300], url[128];
	snprintf(alog, sizeof(alog), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	it_spool(n, IT_SOCIAL, "inbox", ainbox, sizeof(ainbox));
	it_metrics_url(n->log, url, sizeof(url));

	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_occurrences(alog, "connected to", 1, ms));
	for (size_t i = 1; i <= 3; i++) {
		/* the line rebinds; the agent reconnects and says HELLO (these
		 * HELLOs, within the minute of the first, are held back: only
		 * the debug line "hello from ... (held back ...)" of the -v
		 * broker says them; the info line comes once a minute, and the
		 * line counting them is no HELLO: it_hello_lines) */
		size_t hellos = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
		assert_int_equal(kill(relay_pid, SIGUSR1), 0);
		assert_true(it_wait_occurrences(alog, "connected to", i + 1, ms));
		assert_true(it_wait_hellos(n->log, it_party_ids[IT_SOCIAL], hellos + 1, ms));
	}
	it_refer(n, IT_CPI, IT_SOCIAL, "flaky-1");
	assert_true(it_until_inbox(ainbox, 1)); /* one agent, and it works */

	/* while the dead connections are still listed: no alarm */
	size_t warned = tu_occurrences(n->log, WARN_OLD) + tu_occurrences(n->log, WARN_NEW);
	if (warned)
		it_show(n, "broker.log");
	assert_int_equal(warned, 0);
	assert_true(no_problem(n));
	assert_true(it_until_metric(
	    url, "rete_broker_agency_takeovers_answered_total{agency=\"social.mantova\"}", 0));

	/* ...nor once the broker has dropped them (told, never answered) */
	if (!it_wait_occurrences(n->log, GONE_LINE, 3, 3 * ms)) {
		it_show(n, "broker.log");
		fail_msg("the three dead connections were not dropped");
	}
	assert_int_equal(tu_occurrences(n->log, WARN_OLD) + tu_occurrences(n->log, WARN_NEW), 0);
	assert_true(no_problem(n));
	assert_true(it_until_metric(
	    url, "rete_broker_agency_takeovers_answered_total{agency=\"social.mantova\"}", 0));
	assert_true(
	    it_until_metric(url, "rete_broker_agency_contested{agency=\"social.mantova\"}", 0));
	/* nor as refusals (R4): a notice answers no request, and the
	 * refusals' alert would have fired for a failing line */
	char *text = it_scrape(url, NULL);
	assert_non_null(text);
	double refused = it_metric(text, "rete_broker_refusals_total{code=\"taken-over\"}");
	if (refused > 0)
		print_message("taken-over refusals counted: %g\n", refused);
	free(text);
	assert_true(refused < 0); /* the series is not there: none */

	/* what the waits above count are HELLOs, one line each: the broker's
	 * clean stop says the HELLOs it held back and had not said ("ID: N
	 * HELLOs in the last minute ...; the latest HELLO, at T: hello from
	 * ID (...)"), a line that is no HELLO and must not be counted as one */
	size_t before = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
	int st = it_stop(&n->broker_pid, SIGTERM, ms);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	size_t after = it_hello_lines(n->log, it_party_ids[IT_SOCIAL]);
	if (after != before)
		it_show(n, "broker.log");
	assert_int_equal(after, before);
}

static void test_standby_alone(void **state)
{
	char direct[300];
	it_net *n = net_relayed(state, "flaky-standby", direct, sizeof(direct));
	int ms = it_wait_ms();
	char alog[1300], tlog[1300], ainbox[1300];
	snprintf(alog, sizeof(alog), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	snprintf(tlog, sizeof(tlog), "%s/" TWIN ".log", n->dir);
	it_spool(n, IT_SOCIAL, "inbox", ainbox, sizeof(ainbox));

	/* the agent, through the relay, is told by its twin (direct) */
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_wait_occurrences(alog, "connected to", 1, ms));
	twin_pid = it_twin_start(n, direct);
	assert_true(twin_pid > 0);
	assert_true(it_wait_occurrences(tlog, "connected to", 1, ms));
	assert_true(it_wait_occurrences(alog, "another agent with the key of", 1, ms));
	/* the twin, the one that should not run, is stopped */
	int st = it_stop(&twin_pid, SIGTERM, ms);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(it_wait_occurrences(n->log, "delivery connection is gone", 1, ms));
	size_t gone = tu_occurrences(n->log, "delivery connection is gone");

	/* the told agent's own line rebinds: it says HELLO with standby on a
	 * new connection while its dead one is still listed */
	size_t standing = tu_occurrences(n->log, "standing by");
	assert_int_equal(kill(relay_pid, SIGUSR1), 0);
	assert_true(it_wait_occurrences(alog, "connected to", 2, ms));
	assert_true(it_wait_occurrences(n->log, "standing by", standing + 1, ms));
	/* one agent, alive on one connection: not two agents */
	assert_true(no_problem(n));

	/* its new connection has the deliveries: a referral reaches it without
	 * waiting for the dead one to be dropped */
	it_refer(n, IT_CPI, IT_SOCIAL, "alone-1");
	assert_true(it_until_inbox(ainbox, 1));
	size_t gone_now = tu_occurrences(n->log, "delivery connection is gone");
	if (gone_now != gone)
		it_show(n, "broker.log");
	assert_int_equal(gone_now, gone);
	assert_true(no_problem(n));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_flaky_one_agent, flaky_teardown),
	    cmocka_unit_test_teardown(test_standby_alone, flaky_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
