/* test_logfmt.c — proto/logfmt.c: log lines for a terminal and for
 * journald (issue 17: under journald `journalctl -p warning` showed
 * nothing, and the time and program name appeared twice). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logfmt.h"
#include "testutil.h"

/* 2026-12-06T07:01:02.345Z */
#define T_MS 1796540462345LL

static void test_terminal(void **state)
{
	(void)state;
	char out[256];
	size_t n = rete_log_format(out, sizeof(out), false, T_MS, "rete-broker", NULL,
				   RETE_LOG_WARNING, "refused x");
	assert_string_equal(out, "2026-12-06T07:01:02.345Z rete-broker warning: refused x\n");
	assert_int_equal(n, strlen(out));
	rete_log_format(out, sizeof(out), false, T_MS, "rete-agent", "social.mantova",
			RETE_LOG_INFO, "started");
	assert_string_equal(out,
			    "2026-12-06T07:01:02.345Z rete-agent social.mantova info: started\n");
}

static void test_journal(void **state)
{
	(void)state;
	char out[256];
	const struct {
		rete_log_level level;
		const char *want;
	} cases[] = {
	    {RETE_LOG_ERROR, "<3>x\n"},
	    {RETE_LOG_WARNING, "<4>x\n"},
	    {RETE_LOG_INFO, "<6>x\n"},
	    {RETE_LOG_DEBUG, "<7>x\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rete_log_format(out, sizeof(out), true, T_MS, "rete-broker", NULL, cases[i].level,
				"x");
		assert_string_equal(out, cases[i].want);
	}
	/* no time, no program: journald adds both; the agent's id stays */
	rete_log_format(out, sizeof(out), true, T_MS, "rete-agent", "cpi.mantova", RETE_LOG_INFO,
			"started");
	assert_string_equal(out, "<6>cpi.mantova: started\n");
}

static void test_cut(void **state)
{
	(void)state;
	char out[10];
	size_t n =
	    rete_log_format(out, sizeof(out), true, T_MS, "p", NULL, RETE_LOG_INFO, "a long text");
	assert_int_equal(n, strlen("<6>a long text\n"));
	assert_string_equal(out, "<6>a long");
	assert_int_equal(rete_log_format(NULL, 0, true, T_MS, "p", NULL, RETE_LOG_INFO, "ab"), 6);
	/* the terminal's line, cut the same way */
	const char *whole = "2026-12-06T07:01:02.345Z p info: a long text\n";
	n = rete_log_format(out, sizeof(out), false, T_MS, "p", NULL, RETE_LOG_INFO, "a long text");
	assert_int_equal(n, strlen(whole));
	assert_string_equal(out, "2026-12-0");
	assert_int_equal(rete_log_format(NULL, 0, false, T_MS, "p", NULL, RETE_LOG_INFO, "ab"),
			 strlen("2026-12-06T07:01:02.345Z p info: ab\n"));
	char one[1] = {'x'};
	rete_log_format(one, 1, false, T_MS, "p", NULL, RETE_LOG_INFO, "ab");
	assert_int_equal(one[0], '\0');
}

/* The seconds of the stamp are kept from one line to the next: a line of
 * another second, or of an earlier one, gets its own. */
static void test_stamp_changes(void **state)
{
	(void)state;
	char out[256];
	rete_log_format(out, sizeof(out), false, T_MS, "p", NULL, RETE_LOG_INFO, "x");
	assert_string_equal(out, "2026-12-06T07:01:02.345Z p info: x\n");
	rete_log_format(out, sizeof(out), false, T_MS + 655, "p", NULL, RETE_LOG_INFO, "x");
	assert_string_equal(out, "2026-12-06T07:01:03.000Z p info: x\n");
	rete_log_format(out, sizeof(out), false, T_MS + 86400000, "p", NULL, RETE_LOG_INFO, "x");
	assert_string_equal(out, "2026-12-07T07:01:02.345Z p info: x\n");
	rete_log_format(out, sizeof(out), false, T_MS - 345, "p", NULL, RETE_LOG_INFO, "x");
	assert_string_equal(out, "2026-12-06T07:01:02.000Z p info: x\n");
	rete_log_format(out, sizeof(out), false, T_MS + 654, "p", NULL, RETE_LOG_INFO, "x");
	assert_string_equal(out, "2026-12-06T07:01:02.999Z p info: x\n");
	/* a clock before 1970 (a machine that lost its date): still a time */
	rete_log_format(out, sizeof(out), false, -1, "p", NULL, RETE_LOG_INFO, "x");
	assert_string_equal(out, "1969-12-31T23:59:59.999Z p info: x\n");
	rete_log_format(out, sizeof(out), false, -1000, "p", NULL, RETE_LOG_INFO, "x");
	assert_string_equal(out, "1969-12-31T23:59:59.000Z p info: x\n");
}

static void test_levels(void **state)
{
	(void)state;
	const char *words[] = {"error", "warning", "info", "debug"};
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(rete_log_level_name(rete_log_level_from_name(words[i])),
				    words[i]);
	assert_int_equal(rete_log_level_from_name("nonsense"), RETE_LOG_INFO);
	assert_int_equal(rete_log_level_from_name(NULL), RETE_LOG_INFO);
}

static void test_journal_stream(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("logfmt");
	assert_non_null(dir);
	char path[512], other[512], env[96];
	snprintf(path, sizeof(path), "%s/stderr", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	int fd2 = open(other, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0 && fd2 >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_true(rete_log_journal_stream(env, fd));
	/* a service's stderr redirected elsewhere keeps JOURNAL_STREAM */
	assert_false(rete_log_journal_stream(env, fd2));
	assert_false(rete_log_journal_stream(NULL, fd));
	const char *bad[] = {
	    "", ":", "1:", ":1", "x:y", "1:2:3", "1 :2", "-1:2", "99999999999999999999999:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(rete_log_journal_stream(bad[i], fd));
	char trailing[128];
	snprintf(trailing, sizeof(trailing), "%s ", env);
	assert_false(rete_log_journal_stream(trailing, fd));
	close(fd);
	close(fd2);
	/* a closed descriptor is not journald's */
	assert_false(rete_log_journal_stream(env, fd));
	tu_rmrf(dir);
	free(dir);
}

/* rete_log_logged_text writes what snprintf writes with the broker's
 * format for a logged entry: every length of ids around the buffer's size,
 * numbers of every digit count, and every buffer size (cut alike, the same
 * NUL, the same returned length). */
static void test_logged_text(void **state)
{
	(void)state;
	static const uint64_t nums[] = {0,	   1,	       9,	  10,	     99,
					100,	   12345,      999999999, 1000000000, UINT64_MAX / 10,
					UINT64_MAX};
	static const char *const kinds[] = {"referral", "update", "", "delivery"};
	char a[64], b[64], c[64];
	uint64_t x = 0x243F6A8885A308D3ull;
	for (int round = 0; round < 3000; round++) {
		char *str[3] = {a, b, c};
		for (int k = 0; k < 3; k++) { /* 0..40 bytes, UTF-8 and controls too */
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t n = x % 41;
			for (size_t i = 0; i < n; i++)
				str[k][i] = "az-.09\xc3\xa8\n\\"[(x >> (i % 50)) % 11];
			str[k][n] = '\0';
		}
		const char *kind = kinds[round % 4];
		uint64_t idx = round < 1000 ? nums[round % 11] : x;
		char want[200], got[200];
		int wn = snprintf(want, sizeof(want), "logged %s %s from %s to %s at index %" PRIu64,
				  kind, a, b, c, idx);
		for (size_t size = 0; size <= (size_t)wn + 2; size++) {
			memset(want, 'W', sizeof(want));
			memset(got, 'G', sizeof(got));
			if (size)
				snprintf(want, size, "logged %s %s from %s to %s at index %" PRIu64, kind,
					 a, b, c, idx);
			size_t gn = rete_log_logged_text(size ? got : NULL, size, kind, a, b, c, idx);
			assert_int_equal(gn, (size_t)wn);
			if (size) /* what either wrote: the text, cut, and its NUL */
				assert_memory_equal(got, want,
						    size < (size_t)wn + 1 ? size : (size_t)wn + 1);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_terminal), cmocka_unit_test(test_journal),
	    cmocka_unit_test(test_cut),	     cmocka_unit_test(test_stamp_changes),
	    cmocka_unit_test(test_levels),   cmocka_unit_test(test_journal_stream),
	    cmocka_unit_test(test_logged_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
