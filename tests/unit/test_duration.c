/* test_duration.c — durations, working-day deadlines, day bounds. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "duration.h"
#include "tz.h"

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
	/* what was accepted stays accepted: a Directory already in the log is
	 * validated again with this parser (proto/validate.c) */
	static const char *const logged[] = {"1000000001s", "9999999999m", "10000000009d",
					     "10000000009wd", "00000000000000000001s"};
	for (size_t i = 0; i < sizeof(logged) / sizeof(logged[0]); i++)
		if (rete_duration_parse(logged[i], &d, &m) != RETE_OK)
			fail_msg("a duration accepted before: '%s': %s", logged[i], m.text);
	assert_int_equal(rete_duration_parse("100000000010d", &d, &m), RETE_EINVAL);
	if (strstr(m.text, "at most 10000000009") == NULL)
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

/* The conversions leave the process's environment alone: a broker or a
 * console computes dues and days on several threads, and a setenv("TZ")
 * there races every getenv of the others (session 17's CI: the broker's
 * stall watch killed by SIGSEGV in getenv under libfaketime). Runs first,
 * before anything in this file sets TZ. */
static void test_environment_untouched(void **state)
{
	(void)state;
	int64_t due, a, b;
	rete_msg m;

	unsetenv("TZ");
	assert_int_equal(rete_deadline(1795165200000, "1wd", NULL, 0, "America/New_York", &due,
				       &m),
			 RETE_OK);
	assert_int_equal(rete_day_bounds("2026-11-22", "Asia/Kolkata", &a, &b, &m), RETE_OK);
	assert_int_equal(rete_deadline(1795165200000, "3wd", NULL, 0, NULL, &due, &m), RETE_OK);
	if (getenv("TZ") != NULL)
		fail_msg("working-day dues and day bounds set the process's TZ to '%s': a "
			 "setenv there races getenv on the broker's other threads",
			 getenv("TZ"));
}

struct tz_worker {
	const char *tz;
	int64_t start_ms;
	int64_t want;
	int wrong;
};

static void *tz_worker_run(void *arg)
{
	struct tz_worker *w = arg;
	for (int i = 0; i < 2000; i++) {
		int64_t due = 0;
		if (rete_deadline(w->start_ms, "7wd", NULL, 0, w->tz, &due, NULL) != RETE_OK ||
		    due != w->want)
			w->wrong++;
	}
	return NULL;
}

/* Four threads, four zones, at once: each gets its own zone's answer. */
static void test_zones_on_threads(void **state)
{
	(void)state;
	struct tz_worker w[4] = {
	    {"Europe/Rome", 1795165200000, 0, 0},
	    {"America/New_York", 1795165200000, 0, 0},
	    {"Asia/Kolkata", 1795165200000, 0, 0},
	    {"Australia/Lord_Howe", 1795165200000, 0, 0},
	};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(rete_deadline(w[i].start_ms, "7wd", NULL, 0, w[i].tz, &w[i].want,
					       NULL),
				 RETE_OK);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, tz_worker_run, &w[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (w[i].wrong != 0)
			fail_msg("%s: %d of 2000 dues computed beside other zones' differ from "
				 "the one computed alone",
				 w[i].tz, w[i].wrong);
	}
}

/* What the C library computes, in this single-threaded test: the reference
 * the old code was (one calendar day at a time, mktime with tm_isdst -1). */
static int64_t libc_deadline(const char *tz, int64_t start_ms, int n)
{
	setenv("TZ", tz, 1);
	tzset();
	time_t t = (time_t)(start_ms / 1000);
	struct tm lt;
	localtime_r(&t, &lt);
	while (n > 0) {
		lt.tm_mday += 1;
		lt.tm_isdst = -1;
		time_t next = mktime(&lt);
		localtime_r(&next, &lt);
		if (lt.tm_wday != 0 && lt.tm_wday != 6)
			n--;
	}
	lt.tm_isdst = -1;
	return (int64_t)mktime(&lt) * 1000 + start_ms % 1000;
}

static void libc_day(const char *tz, int y, int mo, int d, int64_t *a, int64_t *b)
{
	setenv("TZ", tz, 1);
	tzset();
	struct tm lt = {0};
	lt.tm_year = y - 1900;
	lt.tm_mon = mo - 1;
	lt.tm_mday = d;
	lt.tm_isdst = -1;
	*a = (int64_t)mktime(&lt) * 1000;
	memset(&lt, 0, sizeof(lt));
	lt.tm_year = y - 1900;
	lt.tm_mon = mo - 1;
	lt.tm_mday = d + 1;
	lt.tm_isdst = -1;
	*b = (int64_t)mktime(&lt) * 1000;
}

/* The zone database read by rete gives the C library's answers: zones east
 * and west, half-hour and half-hour-DST zones, a southern one whose change
 * is at midnight, and years past 2037, where the zone file's closing rule
 * takes over from its table. Start times are kept off the small hours,
 * where a change can make a local time happen twice and the C library's
 * pick depends on its previous call. */
static void test_zones_match_libc(void **state)
{
	(void)state;
	static const char *zones[] = {"Europe/Rome",        "America/New_York",
				      "Asia/Kolkata",       "Australia/Lord_Howe",
				      "America/Santiago",   "UTC",
				      "Pacific/Chatham",    "Europe/London",
				      "America/St_Johns",   "Africa/Casablanca"};
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int compared = 0;

	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		for (int i = 0; i < 400; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			/* 1990 .. 2070 */
			int64_t start_ms = 631152000000LL +
					   (int64_t)((seed >> 11) % 2524608000000ULL);
			setenv("TZ", zones[z], 1);
			tzset();
			time_t t = (time_t)(start_ms / 1000);
			struct tm lt;
			localtime_r(&t, &lt);
			if (lt.tm_hour < 4 || lt.tm_hour == 23)
				continue;
			int n = 1 + (int)((seed >> 40) % 12);
			char limit[16];
			snprintf(limit, sizeof(limit), "%dwd", n);
			int64_t want = libc_deadline(zones[z], start_ms, n), got = 0;
			assert_int_equal(rete_deadline(start_ms, limit, NULL, 0, zones[z], &got,
						       NULL),
					 RETE_OK);
			if (got != want)
				fail_msg("%s: %lld + %s: rete says %lld, the C library %lld",
					 zones[z], (long long)start_ms, limit, (long long)got,
					 (long long)want);
			char day[16];
			snprintf(day, sizeof(day), "%04d-%02d-%02d", lt.tm_year + 1900,
				 lt.tm_mon + 1, lt.tm_mday);
			int64_t a, b, wa, wb;
			rete_msg m;
			assert_int_equal(rete_day_bounds(day, zones[z], &a, &b, &m), RETE_OK);
			libc_day(zones[z], lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday, &wa, &wb);
			if (a != wa || b != wb)
				fail_msg("%s: day %s: rete says [%lld, %lld), the C library "
					 "[%lld, %lld)",
					 zones[z], day, (long long)a, (long long)b, (long long)wa,
					 (long long)wb);
			compared++;
		}
	}
	unsetenv("TZ");
	assert_true(compared > 2000);
}

/* The small hours of a change, where the answer is rete's own rule: a wall
 * time read with the offset in force before the change. In a gap (spring)
 * that is the C library's answer; for a time that happens twice (autumn) it
 * is the earlier one, what the old day-by-day stepping got from the day
 * before. */
static void test_changes(void **state)
{
	(void)state;
	int64_t due, a, b;
	rete_msg m;

	/* Saturday 2026-03-28 02:30 in Rome (01:30Z) + 1wd: Sunday's 02:30 does
	 * not exist and becomes 03:30, Monday keeps 03:30 CEST = 01:30Z. */
	assert_int_equal(rete_deadline(1774661400000, "1wd", NULL, 0, "Europe/Rome", &due, &m),
			 RETE_OK);
	assert_int_equal(due, 1774834200000); /* 2026-03-30T01:30:00Z */
	/* Saturday 2026-10-24 02:30 CEST (00:30Z) + 1wd: Monday 02:30 CET. */
	assert_int_equal(rete_deadline(1792801800000, "1wd", NULL, 0, "Europe/Rome", &due, &m),
			 RETE_OK);
	assert_int_equal(due, 1792978200000); /* 2026-10-26T01:30:00Z */
	/* The first of the two 02:30s of 2026-10-25 in Rome is 00:30Z; the
	 * skipped 02:30 of 2026-03-29 is 01:30Z. */
	assert_int_equal(rete_days_from_civil(2026, 10, 25), 20751);
	assert_int_equal(rete_tz_to_utc("Europe/Rome", 20751 * 86400LL + 9000), 1792888200);
	assert_int_equal(rete_tz_to_utc("Europe/Rome", rete_days_from_civil(2026, 3, 29) * 86400 +
							   9000),
			 1774747800);
	/* Santiago's spring change is at midnight: 2026-09-06 begins at 01:00. */
	assert_int_equal(rete_day_bounds("2026-09-06", "America/Santiago", &a, &b, &m), RETE_OK);
	assert_int_equal(a, 1788667200000); /* 04:00Z */
	assert_int_equal(b, 1788750000000); /* 2026-09-07 00:00 -03 */
	/* Past 2037 the closing rule of the zone file: 2050's summer in Rome. */
	assert_int_equal(rete_day_bounds("2050-07-01", "Europe/Rome", &a, &b, &m), RETE_OK);
	assert_int_equal(a, 2540239200000); /* 2050-06-30T22:00:00Z */
	assert_int_equal(b - a, 86400000);
	assert_int_equal(rete_day_bounds("2050-03-27", "Europe/Rome", &a, &b, &m), RETE_OK);
	assert_int_equal(b - a, 23 * 3600000);
	/* A zone this machine does not know is counted in UTC, as the C library
	 * did; configurations refuse such zones before they get here. */
	assert_int_equal(rete_day_bounds("2026-11-22", "Mars/Olympus", &a, &b, &m), RETE_OK);
	assert_int_equal(a, 1795305600000);
	assert_int_equal(rete_day_bounds("2026-11-22", "../../etc/passwd", &a, &b, &m), RETE_OK);
	assert_int_equal(a, 1795305600000);
}

/* libc_offset: the C library's offset east of UTC at t in the zone TZ is set to */
static long libc_offset(time_t t)
{
	struct tm lt;
	localtime_r(&t, &lt);
	return lt.tm_gmtoff;
}

/* Every spring gap of 2010-2045 in zones whose gaps differ in kind: an
 * ordinary one (Rome, New York), half an hour (Lord Howe), at midnight
 * (Santiago), one whose winter is the type flagged daylight saving
 * (Dublin, Casablanca: the C library then reads the gap in that type).
 * A wall time in the gap is read as the C library's mktime reads it,
 * which is what 0.7.0's dues were: the same log must verify (session 18's
 * review, finding 1). Plain offset changes (Cancun 2015, Pyongyang 2018),
 * neither side flagged, are left out: there the C library's pick follows
 * its previous call (Cancun's reads the offset before, Pyongyang's the
 * one after, each in this test), and rete reads the offset before. */
static void test_gaps_match_libc(void **state)
{
	(void)state;
	static const char *zones[] = {"Europe/Rome",	  "America/New_York", "Australia/Lord_Howe",
				      "America/Santiago", "Europe/Dublin",    "Africa/Casablanca",
				      "America/Cancun",	  "Asia/Pyongyang"};
	int compared = 0, dublin = 0;
	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		setenv("TZ", zones[z], 1);
		tzset();
		for (time_t t = 1262304000; t < 2398291200; t += 6 * 3600) {
			long o1 = libc_offset(t), o2 = libc_offset(t + 6 * 3600);
			if (o2 <= o1)
				continue;
			time_t lo = t, hi = t + 6 * 3600; /* the change in (lo, hi] */
			while (hi - lo > 1) {
				time_t mid = lo + (hi - lo) / 2;
				if (libc_offset(mid) == o1)
					lo = mid;
				else
					hi = mid;
			}
			/* a plain offset change (neither side flagged daylight
			 * saving): the C library's pick follows its previous
			 * call; rete reads it with the offset before (below) */
			struct tm b4, af;
			time_t before = hi - 1;
			localtime_r(&before, &b4);
			localtime_r(&hi, &af);
			if (b4.tm_isdst == af.tm_isdst)
				continue;
			int64_t wall = (int64_t)hi + o1 + (o2 - o1) / 2;
			time_t back = (time_t)wall;
			struct tm lt;
			gmtime_r(&back, &lt);
			lt.tm_isdst = -1;
			time_t want = mktime(&lt);
			if (want == (time_t)-1)
				continue;
			int64_t got = rete_tz_to_utc(zones[z], wall);
			if (got != (int64_t)want)
				fail_msg("%s: the wall time %04d-%02d-%02d %02d:%02d:%02d in the gap "
					 "of the change at %lld: rete reads %lld, the C library %lld",
					 zones[z], lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday,
					 lt.tm_hour, lt.tm_min, lt.tm_sec, (long long)hi,
					 (long long)got, (long long)want);
			compared++;
			if (z == 4)
				dublin++;
		}
	}
	unsetenv("TZ");
	assert_true(compared > 150);
	assert_true(dublin > 30);
	/* Cancun's change of 2015-02-01 (CST to EST, neither flagged): 02:30
	 * read with the offset before, CST: 08:30Z */
	assert_int_equal(rete_tz_to_utc("America/Cancun",
					rete_days_from_civil(2015, 2, 1) * 86400 + 9000),
			 1422779400);
	/* the review's case: Saturday 2015-03-28 01:00 GMT in Dublin + 1wd is
	 * Monday 00:00 (0.7.0 walked through Sunday's gap to 00:00) */
	int64_t due = 0;
	assert_int_equal(rete_deadline(1427504400000, "1wd", NULL, 0, "Europe/Dublin", &due, NULL),
			 RETE_OK);
	assert_int_equal(due, 1427670000000); /* 2015-03-29T23:00:00Z */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_environment_untouched),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_calendar_deadline),
	    cmocka_unit_test(test_working_days),
	    cmocka_unit_test(test_day_bounds),
	    cmocka_unit_test(test_zones_on_threads),
	    cmocka_unit_test(test_zones_match_libc),
	    cmocka_unit_test(test_changes),
	    cmocka_unit_test(test_gaps_match_libc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
