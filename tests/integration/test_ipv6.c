/* test_ipv6.c — rete's ZeroMQ endpoints over IPv6, with the real programs:
 *
 *   loopback     the broker listens on tcp://[::1]:PORT (its events on
 *                another port of ::1), after its --check-config said fine;
 *                two rete-agents connect there, a referral submitted over
 *                ::1 reaches the recipient agent's inbox, `rete monitor
 *                --once` (requests and events) and `rete status` (from the
 *                agent's agent.ini) talk to it over ::1; a key not in the
 *                directory is refused and the broker's log names its peer
 *                as ::1.
 *   every        the broker listens on tcp://[::]:PORT, every address:
 *                an agent on tcp://[::1]:PORT and one on
 *                tcp://127.0.0.1:PORT both connect (ZeroMQ's [::] socket
 *                takes IPv4 too); a refused key from 127.0.0.1 is logged
 *                as 127.0.0.1, not as the IPv4-mapped ::ffff:127.0.0.1.
 *   netns        (run as `test_ipv6 netns`, its own ctest test
 *                integration.test_ipv6_netns; in a network namespace of
 *                its own with fd00:1::1, fd00:1::a, fd00:1::b and fd00:2::a
 *                on lo: needs root, else exit 77, SKIP) the broker listens
 *                on tcp://[fd00:1::1]:PORT; an agent connects from a source
 *                address, tcp://[fd00:1::b]:0;[fd00:1::1]:PORT; a key not
 *                in the directory, from fd00:1::a, fd00:1::b (one /64) and
 *                fd00:2::a, is refused, and the broker's log says so once
 *                for the /64 (its limit of one line a minute is per /64)
 *                and once for fd00:2::a.
 *
 * A host name is reached over IPv4 (no lookup of rete's own decides the
 * family: test_endpoint's test_ipv6 shows none is made).
 *
 * Skipped (exit 77: ctest's SKIP) on a machine without an IPv6 loopback
 * (no ::1 on lo in /proc/net/if_inet6, or ::1 cannot be bound).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include "itest.h"

#define SKIP_CODE 77

/* ipv6_loopback: ::1 is on lo and can be bound. */
static bool ipv6_loopback(void)
{
	FILE *f = fopen("/proc/net/if_inet6", "r");
	if (f == NULL)
		return false;
	char line[256];
	bool on_lo = false;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "00000000000000000000000000000001 ", 33) == 0 &&
		    strstr(line, " lo\n"))
			on_lo = true;
	fclose(f);
	if (!on_lo)
		return false;
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	if (s < 0)
		return false;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

/* free_port: a port free on ::1 (every: on [::], IPv4 included) now. */
static unsigned free_port(bool every)
{
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	assert_true(s >= 0);
	int zero = 0;
	setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	struct sockaddr_in6 a = {.sin6_family = AF_INET6};
	if (!every)
		a.sin6_addr = in6addr_loopback;
	socklen_t l = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
	close(s);
	return ntohs(a.sin6_port);
}

/* agent_connected: party p's agent says it is connected (its log). */
static bool agent_connected(it_net *n, int p)
{
	char log[1300];
	snprintf(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[p]);
	bool ok = it_wait_occurrences(log, "connected to", 1, it_wait_ms());
	if (!ok)
		it_show_path(log, 4000);
	return ok;
}

/* stranger_refused: a key not in the directory connects to endpoint; the
 * broker's log then says it refused a connection from `from`. */
static void stranger_refused(it_net *n, const char *endpoint, const char *from)
{
	rete_seckey *k = it_key_new(n->dir, "stranger");
	rete_wire *w = NULL;
	rete_msg m;
	assert_int_equal(rete_wire_connect(&w, endpoint, &n->broker->pub, k, &m), RETE_OK);
	assert_int_equal(rete_wire_hello(w, "stranger.mantova", "test_ipv6", &m), RETE_OK);
	char line[128];
	snprintf(line, sizeof(line), "refused a connection from %s:", from);
	bool said = it_wait_occurrences(n->log, line, 1, it_wait_ms());
	if (!said)
		it_show(n, "broker.log");
	assert_true(said);
	rete_wire_close(&w);
	rete_seckey_free(&k);
}

/* config_fine: rete-broker --check-config says n's broker.ini is fine
 * (it tries the addresses to listen on). */
static void config_fine(it_net *n)
{
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete-broker' -c '%s' --check-config", n->bin, n->ini);
	if (rc != 0 || strstr(out, "fine") == NULL)
		fail_msg("rete-broker --check-config on listen %s: exit %d: %s", n->listen, rc,
			 out);
	free(out);
}

/* agents_connected: the agents of social.mantova and cpi.mantova (started)
 * are connected. */
static void agents_connected(it_net *n)
{
	assert_true(agent_connected(n, IT_SOCIAL));
	assert_true(agent_connected(n, IT_CPI));
}

/* delivered: referral id, submitted by social.mantova on a connection of
 * its own to n->listen, reaches cpi.mantova's agent's inbox. */
static void delivered(it_net *n, const char *id)
{
	char inbox[1300];
	it_refer(n, IT_SOCIAL, IT_CPI, id);
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	assert_true(it_until_inbox(inbox, 1));
}

static void test_loopback(void **state)
{
	it_net *n = it_net_new("ipv6-loop", NULL);
	assert_non_null(n);
	*state = n;
	snprintf(n->listen, sizeof(n->listen), "tcp://[::1]:%u", free_port(false));
	snprintf(n->events, sizeof(n->events), "tcp://[::1]:%u", free_port(false));
	assert_int_equal(it_write_ini(n), 0);
	config_fine(n);

	assert_true(it_broker_start(n)); /* a PING over ::1 answered */
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	agents_connected(n);

	/* submitted over ::1, delivered over ::1 to the recipient's agent */
	delivered(n, "REF-IPV6-1");

	/* the coordinator's `rete monitor`: a request and the events, both
	 * over ::1 */
	char coord[1300], text[3000];
	snprintf(coord, sizeof(coord), "%s/coord.ini", n->dir);
	snprintf(text, sizeof(text),
		 "[client]\nid = coord.mantova\nkey = keys/coord.mantova.key\nbroker = %s\n"
		 "broker_key = keys/" IT_BROKER_ID ".pub\nevents = %s\ntime_zone = Europe/Rome\n",
		 n->listen, n->events);
	assert_int_equal(tu_write_file(coord, text, strlen(text)), 0);
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' monitor -c '%s' --once", n->bin, coord);
	if (rc != 0 || strstr(out, "social.mantova -> cpi.mantova") == NULL)
		fail_msg("rete monitor --once over %s: exit %d: %s", n->listen, rc, out);
	free(out);
	/* the agency's `rete status`, from its agent.ini's broker */
	rc = tu_run(&out, "'%s/rete' status -c '%s/agents/%s/agent.ini' REF-IPV6-1 --json", n->bin,
		    n->dir, it_party_ids[IT_CPI]);
	if (rc != 0 || strstr(out, "\"brokerReachable\": true") == NULL)
		fail_msg("rete status over %s: exit %d: %s", n->listen, rc, out);
	free(out);

	stranger_refused(n, n->listen, "::1");
}

static void test_every_address(void **state)
{
	it_net *n = it_net_new("ipv6-every", NULL);
	assert_non_null(n);
	*state = n;
	unsigned port = free_port(true);
	snprintf(n->listen, sizeof(n->listen), "tcp://[::]:%u", port);
	assert_int_equal(it_write_ini(n), 0);
	config_fine(n);

	/* the programs connect to ::1 and to 127.0.0.1 */
	snprintf(n->listen, sizeof(n->listen), "tcp://[::1]:%u", port);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	snprintf(n->listen, sizeof(n->listen), "tcp://127.0.0.1:%u", port);
	assert_true(it_agent_start(n, IT_CPI));
	agents_connected(n);
	delivered(n, "REF-IPV6-2");

	stranger_refused(n, n->listen, "127.0.0.1");
	if (tu_occurrences(n->log, "::ffff:") != 0)
		it_show(n, "broker.log");
	assert_int_equal(tu_occurrences(n->log, "::ffff:"), 0);
}

/* refused_from: k, a key not in the directory, connects to the broker from
 * source (an address of this machine, any port) and is refused. */
static void refused_from(it_net *n, const rete_seckey *k, const char *source, unsigned port)
{
	rete_wire *w = NULL;
	rete_msg m;
	char ep[200];
	snprintf(ep, sizeof(ep), "tcp://[%s]:0;[fd00:1::1]:%u", source, port);
	assert_int_equal(rete_wire_connect(&w, ep, &n->broker->pub, k, &m), RETE_OK);
	assert_int_equal(rete_wire_hello(w, "stranger.mantova", "test_ipv6", &m), RETE_OK);
	rete_err e = RETE_ETIMEDOUT;
	for (int64_t end = it_mono_ms() + it_wait_ms();
	     e == RETE_ETIMEDOUT && it_mono_ms() < end;) {
		Rete__BrokerFrame *f = NULL;
		e = rete_wire_recv(w, 200, &f, &m);
		if (f != NULL)
			rete__broker_frame__free_unpacked(f, NULL);
	}
	if (e != RETE_EREFUSED)
		fail_msg("a stranger from %s (%s): %d, not refused: %s", source, ep, (int)e,
			 m.text);
	rete_wire_close(&w);
}

/* netns: exits 0, 77 (no network namespace or addresses here: said) or
 * cmocka's failures. */
static void test_netns(void **state)
{
	it_net *n = it_net_new("ipv6-netns", NULL);
	assert_non_null(n);
	*state = n;
	unsigned port = 7700;
	snprintf(n->listen, sizeof(n->listen), "tcp://[fd00:1::1]:%u", port);
	assert_int_equal(it_write_ini(n), 0);
	config_fine(n);
	assert_true(it_broker_start(n));
	/* an agent leaving from a source address (its port: any) */
	snprintf(n->listen, sizeof(n->listen), "tcp://[fd00:1::b]:0;[fd00:1::1]:%u", port);
	assert_true(it_agent_start(n, IT_CPI));
	assert_true(agent_connected(n, IT_CPI));

	rete_seckey *k = it_key_new(n->dir, "stranger");
	refused_from(n, k, "fd00:1::a", port);
	refused_from(n, k, "fd00:1::b", port);
	refused_from(n, k, "fd00:2::a", port);
	rete_seckey_free(&k);
	assert_true(
	    it_wait_occurrences(n->log, "refused a connection from fd00:2::a:", 1, it_wait_ms()));
	size_t lines = tu_occurrences(n->log, "refused a connection from");
	if (lines != 2) {
		it_show(n, "broker.log");
		fail_msg("%zu 'refused a connection' lines for strangers from fd00:1::a, "
			 "fd00:1::b (one /64) and fd00:2::a; want 2",
			 lines);
	}
}

/* in_netns: this process is in a network namespace of its own with the
 * addresses test_netns uses on lo; false (said) where that cannot be. */
static bool in_netns(void)
{
	if (unshare(CLONE_NEWNET) != 0) {
		printf("test_ipv6 netns: SKIP: cannot make a network namespace (unshare: %s); "
		       "it needs root or CAP_SYS_ADMIN\n",
		       strerror(errno));
		return false;
	}
	if (system("ip link set lo up && for a in fd00:1::1 fd00:1::a fd00:1::b fd00:2::a; do "
		   "ip -6 addr add $a/128 dev lo nodad || exit 1; done") != 0) {
		printf("test_ipv6 netns: SKIP: cannot put IPv6 addresses on lo (ip -6 addr "
		       "add)\n");
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "netns") == 0) {
		if (!in_netns())
			return SKIP_CODE;
		const struct CMUnitTest ns[] = {
		    cmocka_unit_test_teardown(test_netns, it_teardown),
		};
		return cmocka_run_group_tests(ns, NULL, NULL);
	}
	if (!ipv6_loopback()) {
		printf("test_ipv6: SKIP: this machine has no IPv6 loopback (no ::1 on lo in "
		       "/proc/net/if_inet6, or ::1 cannot be bound): nothing to test over "
		       "IPv6\n");
		return SKIP_CODE;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_loopback, it_teardown),
	    cmocka_unit_test_teardown(test_every_address, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
