/* test_endpoint.c — the endpoints of the configuration files: what ZeroMQ
 * would refuse, or take otherwise than written, is refused with a sentence
 * that names it, says why and what is accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <netdb.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "endpoint.h"
#include "testutil.h"

/* Every name lookup of this program comes here (it is linked before the C
 * library's): which socket gets ZMQ_IPV6 is decided without the resolver,
 * which may take seconds to answer, or never. */
static int lookups;
int getaddrinfo(const char *restrict node, const char *restrict service,
		const struct addrinfo *restrict hints, struct addrinfo **restrict res)
{
	(void)node, (void)service, (void)hints, (void)res;
	lookups++;
	return EAI_AGAIN;
}

static void test_good(void **state)
{
	(void)state;
	const char *both[] = {
	    "tcp://127.0.0.1:7700",	"tcp://0.0.0.0:1",
	    "tcp://10.1.2.3:65535",	"tcp://localhost:7700",
	    "tcp://eth0:7700",		"tcp://broker.comune.mantova.it:7700",
	    "tcp://rete_broker:7700",	"ipc:///run/rete/broker.sock",
	    "ipc://broker.sock",	"tcp://[::1]:7700",
	    "tcp://[2001:db8::5]:7700", "tcp://[fd00:0:0:1::12]:65535",
	};
	rete_msg m;
	for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++) {
		m.text[0] = '\0';
		assert_int_equal(rete_endpoint_check(both[i], RETE_ENDPOINT_LISTEN, &m), RETE_OK);
		assert_int_equal(rete_endpoint_check(both[i], RETE_ENDPOINT_CONNECT, &m), RETE_OK);
	}
	/* every address of the machine: to listen on only */
	assert_int_equal(rete_endpoint_check("tcp://*:7700", RETE_ENDPOINT_LISTEN, &m), RETE_OK);
	assert_int_equal(rete_endpoint_check("tcp://*:7700", RETE_ENDPOINT_CONNECT, &m),
			 RETE_EINVAL);
	assert_non_null(strstr(m.text, "'*' (every address of a machine) is for listening"));
	/* every IPv6 (and IPv4) address of the machine: to listen on only */
	assert_int_equal(rete_endpoint_check("tcp://[::]:7700", RETE_ENDPOINT_LISTEN, &m), RETE_OK);
	assert_int_equal(rete_endpoint_check("tcp://[::]:7700", RETE_ENDPOINT_CONNECT, &m),
			 RETE_EINVAL);
	assert_non_null(strstr(m.text, "'[::]' (every address of a machine) is for listening"));
	/* ZeroMQ's source address, to connect from */
	const char *src[] = {
	    "tcp://10.0.0.5:0;broker.example:7700",	"tcp://eth1:0;10.0.0.1:7700",
	    "tcp://10.0.0.5:0;10.0.0.1:7700",		"tcp://10.0.0.5:40000;10.0.0.1:7700",
	    "tcp://[2001:db8::1]:0;[2001:db8::5]:7700", "tcp://eth1:0;[2001:db8::5]:7700"};
	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++) {
		assert_int_equal(rete_endpoint_check(src[i], RETE_ENDPOINT_CONNECT, &m), RETE_OK);
		assert_int_equal(rete_endpoint_check(src[i], RETE_ENDPOINT_LISTEN, &m),
				 RETE_EINVAL);
		assert_non_null(strstr(m.text, "a source address (SOURCE;) is for connecting"));
	}
}

static void test_bad(void **state)
{
	(void)state;
	char ipc_long[160] = "ipc:///";
	memset(ipc_long + 7, 'a', 110);
	char too_long[300] = "tcp://";
	memset(too_long + 6, 'a', 260);
	memcpy(too_long + 266, ":7700", 6);
	const struct {
		const char *ep, *why;
	} bad[] = {
	    {"tcp://127.0.0.1:99999", "the port 99999 is beyond 65535"},
	    {"tcp://127.0.0.1:65536", "the port 65536 is beyond 65535"},
	    {"tcp://127.0.0.1:7700x", "the port '7700x' is not a number"},
	    {"tcp://127.0.0.1:-1", "the port '-1' is not a number"},
	    {"tcp://127.0.0.1:+7700", "the port '+7700' is not a number"},
	    {"tcp://127.0.0.1:07700", "the port '07700' begins with 0"},
	    {"tcp://127.0.0.1:*", "a port the system picks"},
	    {"tcp://127.0.0.1:0", "a port the system picks"},
	    {"tcp://127.0.0.1:", "it has no port"},
	    {"tcp://127.0.0.1", "it has no port"},
	    {"tcp://:7700", "the host before the port is missing"},
	    {"tcp://300.1.1.1:7700", "the IPv4 address is not valid"},
	    {"tcp://1.2.3:7700", "the IPv4 address is not valid"},
	    {"tcp://::1:7700", "an IPv6 address goes in brackets"},
	    {"tcp://2001:db8::5:7700", "an IPv6 address goes in brackets"},
	    {"tcp://[fe80::1%eth0]:7700", "a zone id ('%eth0') is not accepted"},
	    {"tcp://[fe80::1]:7700", "a link-local address (fe80::/10) is not accepted"},
	    {"tcp://[ff02::1]:7711", "a multicast address (ff00::/8) is not accepted"},
	    {"tcp://[ff0e::1]:7711", "a multicast address (ff00::/8) is not accepted"},
	    {"tcp://[::ffff:10.0.0.5]:7700",
	     "an IPv4 address ('::ffff:10.0.0.5') goes without brackets: tcp://10.0.0.5:PORT"},
	    {"tcp://[::1:7700", "no ']' closes the IPv6 address"},
	    {"tcp://[::1]7700", "after the ']' of the IPv6 address comes ':PORT'"},
	    {"tcp://[::1]", "after the ']' of the IPv6 address comes ':PORT'"},
	    {"tcp://[]:7700", "the brackets hold no address"},
	    {"tcp://[zz::1]:7700", "'zz::1' is not an IPv6 address"},
	    {"tcp://[127.0.0.1]:7700", "'127.0.0.1' is not an IPv6 address"},
	    {"tcp://[::1]:99999", "the port 99999 is beyond 65535"},
	    {"tcp://[::1]:0", "a port the system picks"},
	    {"tcp://::1]:7700", "an IPv6 address goes in brackets"},
	    {"ipc://*", "a file name the system picks"},
	    {"tcp://host/x:7700", "the host is not an address nor a name"},
	    {"tcp://-host:7700", "the host is not an address nor a name"},
	    {"tcp://host name:7700", "a space"},
	    {"tcp://h\xc3\xa9:7700", "outside printable ASCII"},
	    {"http://127.0.0.1:7700", "neither tcp:// nor ipc://"},
	    {"inproc://x", "neither tcp:// nor ipc://"},
	    {"127.0.0.1:7700", "neither tcp:// nor ipc://"},
	    {"ipc://", "path after ipc:// is missing"},
	    {ipc_long, "longer than 107 bytes"},
	    {too_long, "longer than 255 bytes"},
	};
	rete_msg m;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int use = 0; use < 2; use++) {
			m.text[0] = '\0';
			rete_err e = rete_endpoint_check(
			    bad[i].ep, use ? RETE_ENDPOINT_CONNECT : RETE_ENDPOINT_LISTEN, &m);
			if (e != RETE_EINVAL || !strstr(m.text, bad[i].why) ||
			    !strstr(m.text,
				    "give tcp://HOST:PORT (PORT from 1 to 65535; an IPv6 HOST in "
				    "brackets, tcp://[2001:db8::5]:7700) or ipc://PATH") ||
			    (strlen(bad[i].ep) < 200 && !strstr(m.text, bad[i].ep)))
				fail_msg("'%s' (%s): %d, \"%s\"; want EINVAL and \"%s\"", bad[i].ep,
					 use ? "connect" : "listen", (int)e, m.text, bad[i].why);
		}
	}
	/* a source address that is no address */
	const struct {
		const char *ep, *why;
	} bad_src[] = {
	    {"tcp://10.0.0.5:0;[::1]:7700", "one IPv4, the other IPv6"},
	    {"tcp://[::1]:0;10.0.0.1:7700", "one IPv4, the other IPv6"},
	    {"tcp://::1;[::1]:7700", "an IPv6 address goes in brackets"},
	    /* ZeroMQ connects from SOURCE:PORT only (never without a port) */
	    {"tcp://[::1];[::1]:7798", "the source has no port: write tcp://[::1]:0;HOST:PORT"},
	    {"tcp://lo;[::1]:7798", "the source has no port: write tcp://lo:0;HOST:PORT"},
	    {"tcp://127.0.0.1;127.0.0.1:7798",
	     "the source has no port: write tcp://127.0.0.1:0;HOST:PORT"},
	    {"tcp://10.0.0.5:65536;10.0.0.1:7700", "the source's port is not a number"},
	    /* a host name is reached over IPv4 (endpoint.h) */
	    {"tcp://[2001:db8::1]:0;broker.example:7700",
	     "an IPv6 source needs the broker's IPv6 address in brackets"},
	    {"tcp://[::]:0;[::1]:7700",
	     "'[::]' as the source says no address: leave 'SOURCE;' out"},
	    {"tcp://*:0;10.0.0.1:7700", "'*' as the source says no address: leave 'SOURCE;' out"},
	    {"tcp://[ff02::1]:0;[::1]:7700", "a multicast address (ff00::/8) is not accepted"},
	    {"tcp://[::1:0;[::1]:7700", "no ']' closes the IPv6 address"},
	    {"tcp://[::1]x;[::1]:7700", "after the source's ']' comes ':PORT' or ';'"},
	    {"tcp://;10.0.0.1:7700", "the host before the port is missing"},
	    {"tcp://10.0.0.5:x;10.0.0.1:7700", "the source's port is not a number"},
	};
	for (size_t i = 0; i < sizeof(bad_src) / sizeof(bad_src[0]); i++) {
		m.text[0] = '\0';
		if (rete_endpoint_check(bad_src[i].ep, RETE_ENDPOINT_CONNECT, &m) != RETE_EINVAL ||
		    !strstr(m.text, bad_src[i].why))
			fail_msg("'%s': \"%s\"; want \"%s\"", bad_src[i].ep, m.text,
				 bad_src[i].why);
	}
	assert_int_equal(rete_endpoint_check("", RETE_ENDPOINT_LISTEN, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "the endpoint is empty"));
	assert_int_equal(rete_endpoint_check(NULL, RETE_ENDPOINT_CONNECT, &m), RETE_EINVAL);
}

static void test_tcp_parts(void **state)
{
	(void)state;
	char host[64];
	unsigned port = 0;
	assert_true(rete_endpoint_tcp_parts("tcp://*:7700", host, sizeof(host), &port));
	assert_string_equal(host, "*");
	assert_int_equal(port, 7700);
	assert_true(rete_endpoint_tcp_parts("tcp://[::1]:9464", host, sizeof(host), &port));
	assert_string_equal(host, "[::1]");
	assert_int_equal(port, 9464);
	assert_false(rete_endpoint_tcp_parts("ipc:///run/x", host, sizeof(host), &port));
	assert_false(rete_endpoint_tcp_parts("tcp://h:77x", host, sizeof(host), &port));
	assert_false(rete_endpoint_tcp_parts("tcp://h", host, sizeof(host), &port));
	assert_false(rete_endpoint_tcp_parts("tcp://0123456789:1", host, 4, &port));
}

/* Which sockets need ZMQ_IPV6: an IPv6 address (host or source) */
static void test_ipv6(void **state)
{
	(void)state;
	assert_true(rete_endpoint_ipv6("tcp://[::1]:7700", RETE_ENDPOINT_CONNECT));
	assert_true(rete_endpoint_ipv6("tcp://[::]:7700", RETE_ENDPOINT_LISTEN));
	assert_true(
	    rete_endpoint_ipv6("tcp://[2001:db8::1]:0;[2001:db8::5]:7700", RETE_ENDPOINT_CONNECT));
	assert_true(rete_endpoint_ipv6("tcp://eth1:0;[2001:db8::5]:7700", RETE_ENDPOINT_CONNECT));
	assert_false(rete_endpoint_ipv6("tcp://127.0.0.1:7700", RETE_ENDPOINT_CONNECT));
	assert_false(rete_endpoint_ipv6("tcp://*:7700", RETE_ENDPOINT_LISTEN));
	assert_false(rete_endpoint_ipv6("tcp://lo:7700", RETE_ENDPOINT_LISTEN));
	assert_false(rete_endpoint_ipv6("ipc:///run/rete/broker.sock", RETE_ENDPOINT_CONNECT));
	/* a host name is reached over IPv4, as before IPv6 was taken, and
	 * without a lookup here (ZeroMQ's I/O thread looks it up, for its
	 * IPv4 addresses): an IPv6-only name needs its address in brackets */
	lookups = 0;
	assert_false(rete_endpoint_ipv6("tcp://localhost:7700", RETE_ENDPOINT_CONNECT));
	assert_false(rete_endpoint_ipv6("tcp://broker.rete.example:7700", RETE_ENDPOINT_CONNECT));
	assert_false(
	    rete_endpoint_ipv6("tcp://eth1:0;broker.rete.example:7700", RETE_ENDPOINT_CONNECT));
	assert_int_equal(lookups, 0);
}

/* A peer's address as ZeroMQ says it, as the logs print it: an IPv4
 * client of a [::] socket comes IPv4-mapped and is printed as IPv4. */
static void test_peer_text(void **state)
{
	(void)state;
	char out[RETE_PEER_ADDR_MAX];
	assert_string_equal(rete_endpoint_peer_text("::ffff:10.1.2.3", out, sizeof(out)),
			    "10.1.2.3");
	assert_string_equal(rete_endpoint_peer_text("2001:db8::5", out, sizeof(out)),
			    "2001:db8::5");
	assert_string_equal(rete_endpoint_peer_text("::1", out, sizeof(out)), "::1");
	assert_string_equal(rete_endpoint_peer_text("127.0.0.1", out, sizeof(out)), "127.0.0.1");
	assert_string_equal(
	    rete_endpoint_peer_text("tcp://[::ffff:127.0.0.1]:7700", out, sizeof(out)),
	    "tcp://127.0.0.1:7700");
	assert_string_equal(rete_endpoint_peer_text("tcp://[::1]:7700", out, sizeof(out)),
			    "tcp://[::1]:7700");
	assert_string_equal(rete_endpoint_peer_text("::ffff:1:2", out, sizeof(out)), "::ffff:1:2");
	assert_string_equal(rete_endpoint_peer_text("", out, sizeof(out)), "");
	assert_string_equal(rete_endpoint_peer_text(NULL, out, sizeof(out)), "");
}

/* ipc_listener binds a Unix stream socket at path; listening or not. */
static int ipc_listener(const char *path, bool listening)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening)
		assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* rete_endpoint_ipc_served: a path a program accepts on is served; no
 * file, a plain file, a socket file nobody listens on (what a killed
 * broker leaves) and tcp:// are not (review s16 rev-edges 2). */
static void test_ipc_served(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("ipc-served");
	char path[300], ep[320];
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/b.sock", dir);
	snprintf(ep, sizeof(ep), "ipc://%s", path);
	assert_int_equal(rete_endpoint_ipc_served(ep), 0); /* no file */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(rete_endpoint_ipc_served(ep), 0); /* not a socket */
	unlink(path);
	int fd = ipc_listener(path, true);
	assert_int_equal(rete_endpoint_ipc_served(ep), 1);
	close(fd); /* the file stays: a killed listener's */
	assert_int_equal(rete_endpoint_ipc_served(ep), 0);
	unlink(path);
	fd = ipc_listener(path, false); /* bound, not listening */
	assert_int_equal(rete_endpoint_ipc_served(ep), 0);
	close(fd);
	assert_int_equal(rete_endpoint_ipc_served("tcp://127.0.0.1:7700"), 0);
	assert_int_equal(rete_endpoint_ipc_served("ipc://@abstract"), 0);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),      cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_tcp_parts), cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_peer_text), cmocka_unit_test(test_ipc_served),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
