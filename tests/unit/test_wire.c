/* test_wire.c — the client library's limits that need no broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "keys.h"
#include "wire.h"

/* One process (a load generator, a tool watching many brokers) can hold
 * more than the 341 connections ZeroMQ's default socket limit allowed
 * (three sockets per connection). Connecting needs no listener: ZeroMQ
 * connects in the background. */
static void test_many_connections(void **state)
{
	(void)state;
	enum { N = 400 };
	static rete_wire *w[N];
	rete_seckey *me = NULL, *broker = NULL;
	rete_msg m = {{0}};
	struct rlimit rl;

	/* each connection also holds file descriptors: raise the soft limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	assert_int_equal(rete_seckey_generate(&me, &m), RETE_OK);
	assert_int_equal(rete_seckey_generate(&broker, &m), RETE_OK);
	for (int i = 0; i < N; i++) {
		rete_err err = rete_wire_connect(&w[i], "tcp://127.0.0.1:9", &broker->pub, me, &m);
		if (err != RETE_OK)
			fail_msg("connection %d of %d: %s", i + 1, N, m.text);
	}
	for (int i = 0; i < N; i++)
		rete_wire_close(&w[i]);
	rete_seckey_free(&me);
	rete_seckey_free(&broker);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_many_connections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
