/* test_duration.c — durations, working-day deadlines, day bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "duration.h"

static void test_parse(void **state)
{
	(void)state;
	rete_duration d;
	rete_msg m;

	assert_int_equal(rete_duration_parse("30s", &d, &m), RETE_OK);
	assert_int_equal(d.ms, 30000);
	assert_int_equal(rete_duration_parse("15m", &d, &m), RETE_OK);
	assert_int_equal(d.ms, 900000);
	assert_int_equal(rete_duration_parse("2h", &d, &m), RETE_OK);
	assert_int_equal(d.ms, 7200000);
	assert_int_equal(rete_duration_parse("5d", &d, &m), RETE_OK);
	assert_int_equal(d.ms, 432000000);
	assert_int_equal(rete_duration_parse("3wd", &d, &m), RETE_OK);
	assert_int_equal(d.working_days, 3);
	assert_int_equal(d.ms, 0);

	const char *bad[] = {"", "s", "10", "10x", "-5s", "1.5h", "0s", "3 wd", "3WD"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.text[0] = '\0';
		assert_int_equal(rete_duration_parse(bad[i], &d, &m), RETE_EINVAL);
		assert_non_null(strstr(m.text, "30s, 15m, 2h, 5d, 3wd"));
	}
	/* what was wrong, in words: no "has unit ''"; the bound of a number */
	assert_int_equal(rete_duration_parse("10", &d, &m), RETE_EINVAL);
	if (strstr(m.text, "'10' has no unit") == NULL)
		fail_msg("a duration without a unit: %s", m.text);
	assert_int_equal(rete_duration_parse("99999999999d", &d, &m), RETE_EINVAL);
	if (strstr(m.text, "at most 1000000000") == NULL)
		fail_msg("a duration too large: %s", m.text);
}

static void test_calendar_deadline(void **state)
{
	(void)state;
	int64_t due;
	assert_int_equal(rete_deadline(1000, "2h", NULL, 0, NULL, &due, NULL), RETE_OK);
	assert_int_equal(due, 1000 + 7200000);
}

static void test_working_days(void **state)
{
	(void)state;
	int64_t due;
	/* Friday 2026-11-20 10:00 in Rome + 1 working day = Monday 10:00. */
	assert_int_equal(rete_deadline(1795165200000, "1wd", NULL, 0, "Europe/Rome", &due, NULL),
			 RETE_OK);
	assert_int_equal(due, 1795424400000);
	/* With Monday a holiday it is Tuesday. */
	const char *hol[] = {"2026-11-23"};
	assert_int_equal(rete_deadline(1795165200000, "1wd", hol, 1, "Europe/Rome", &due, NULL),
			 RETE_OK);
	assert_int_equal(due, 1795510800000);
	/* Across the spring daylight-saving change (29 March 2026) the local
	 * time of day stays 10:00, so the UTC hour moves. */
	assert_int_equal(rete_deadline(1774602000000, "1wd", NULL, 0, "Europe/Rome", &due, NULL),
			 RETE_OK);
	assert_int_equal(due, 1774857600000);
	/* A bad holiday is refused. */
	const char *badhol[] = {"2026-02-30"};
	rete_msg m;
	assert_int_equal(rete_deadline(0, "1wd", badhol, 1, NULL, &due, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "2026-02-30"));
}

static void test_day_bounds(void **state)
{
	(void)state;
	int64_t a, b;
	rete_msg m;
	assert_int_equal(rete_day_bounds("2026-11-22", "Europe/Rome", &a, &b, &m), RETE_OK);
	assert_int_equal(a, 1795302000000);
	assert_int_equal(b, 1795388400000);
	/* The day of the DST change has 23 hours. */
	assert_int_equal(rete_day_bounds("2026-03-29", "Europe/Rome", &a, &b, &m), RETE_OK);
	assert_int_equal(a, 1774738800000);
	assert_int_equal(b, 1774821600000);
	assert_int_equal(rete_day_bounds("2026-13-01", NULL, &a, &b, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "YYYY-MM-DD"));
	assert_false(rete_date_valid("2025-02-29"));
	assert_true(rete_date_valid("2024-02-29"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_calendar_deadline),
	    cmocka_unit_test(test_working_days),
	    cmocka_unit_test(test_day_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
