/* test_torture_short.c — the crash torture of tests/torture/torture.h, short
 * enough for CI: the real broker and four real agents under continuous
 * load, 6 SIGKILLs (broker or a random agent) at random moments, each
 * restarted, and 2 restore cycles (a hot backup, more traffic, SIGKILL of
 * the broker, the backup restored as docs/operations.md says, the broker
 * started with --restore: a new log epoch); then every file put into an
 * outbox must be delivered exactly once with its receipt at the sender, or
 * be in the sender's failed/ with a reason; no duplicates; no witness
 * alarm; `rete audit verify` passes.
 *
 * The seed is printed; RETE_TORTURE_SEED repeats a run, RETE_TORTURE_KILLS
 * and RETE_TORTURE_RESTORES make it longer (tests/torture/torture.sh runs
 * 30 and more).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../torture/torture.h"

static void test_torture_short(void **state)
{
	(void)state;
	torture_opts o;
	torture_opts_from_env(&o, 6, 2);
	torture_figures fig;
	int rc = torture_run(&o, &fig);
	assert_int_not_equal(rc, 2); /* the network came up */
	assert_int_equal(fig.kills_broker + fig.kills_agent, o.kills);
	assert_int_equal(fig.restores, o.restores);
	/* each restore was one the broker could see: it went on as a new epoch */
	assert_int_equal(fig.restores_declared, o.restores);
	assert_true(fig.messages > 0);
	assert_true(fig.delivered > 0);
	assert_int_equal(fig.losses, 0);
	assert_int_equal(fig.duplicates, 0);
	assert_int_equal(fig.misplaced, 0);
	assert_int_equal(fig.witness_alarms, 0);
	assert_true(fig.audit_ok);
	assert_true(fig.clean_stop);
	assert_int_equal(rc, 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_torture_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
