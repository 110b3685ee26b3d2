/* test_console_accounts.c — the console's login throttle
 * (agents/console/accounts.c), driven with chosen times: a user throttled
 * after failed sign-ins stays throttled however many other names and
 * addresses an attacker tries meanwhile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "accounts.h"

/* A spray of one failed sign-in per name, each from an address of its own,
 * more than the table holds, must not push out the strike of the user
 * under attack (before the fix it evicted the least recently touched
 * entry, active or not, and the next guess went through at once). */
static void test_throttle_survives_a_spray(void **state)
{
	(void)state;
	int64_t now = 1000000;
	for (int i = 0; i < CONSOLE_LOGIN_FREE + 2; i++)
		console_throttle_note("alice", "192.0.2.1", false, now);
	assert_true(console_throttle_wait("alice", "192.0.2.1", now) > 0);
	assert_true(console_throttle_wait("alice", "198.51.100.7", now) > 0);
	for (int i = 0; i < 4 * CONSOLE_THROTTLE_MAX; i++) {
		char user[32], peer[32];
		snprintf(user, sizeof(user), "spray%d", i);
		snprintf(peer, sizeof(peer), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255,
			 i & 255);
		console_throttle_note(user, peer, false, now + 1 + i / 64);
	}
	now += 1 + 4 * CONSOLE_THROTTLE_MAX / 64;
	assert_true(console_throttle_wait("alice", "203.0.113.9", now) > 0);
	/* and it ends: after 15 minutes alice may try again */
	assert_int_equal(console_throttle_wait("alice", "203.0.113.9", now + 900001), 0);
}

/* A table full of live strikes (a spray of names each failed enough
 * times) makes every sign-in wait rather than forget one of them. */
static void test_throttle_full_table_waits(void **state)
{
	(void)state;
	int64_t now = 5000000000;
	for (int i = 0; i < CONSOLE_THROTTLE_MAX + 8; i++) {
		char user[32], peer[32];
		snprintf(user, sizeof(user), "full%d", i);
		snprintf(peer, sizeof(peer), "10.200.%d.%d", (i >> 8) & 255, i & 255);
		for (int k = 0; k < CONSOLE_LOGIN_FREE; k++)
			console_throttle_note(user, peer, false, now);
	}
	assert_true(console_throttle_wait("full0", "203.0.113.10", now) > 0);
	assert_true(console_throttle_wait("full1", "203.0.113.10", now) > 0);
	/* a name whose strikes found no room waits too */
	char last[32];
	snprintf(last, sizeof(last), "full%d", CONSOLE_THROTTLE_MAX + 7);
	assert_true(console_throttle_wait(last, "203.0.113.10", now) > 0);
	assert_true(console_throttle_wait("nobody", "203.0.113.11", now) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_throttle_survives_a_spray),
	    cmocka_unit_test(test_throttle_full_table_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
