/* test_logline.c — rete_log_escape: one call, one line, nothing a terminal
 * or a log reader could take for something else (issue 13, defect 10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "logline.h"

static void check(const char *in, size_t len, const char *want)
{
	char out[256];
	size_t need = rete_log_escape(out, sizeof(out), in, len);
	assert_string_equal(out, want);
	assert_int_equal(need, strlen(want));
}

static void test_controls(void **state)
{
	(void)state;
	check("plain text", 10, "plain text");
	check("a\nb", 3, "a\\nb");
	check("a\r\nb\tc", 6, "a\\r\\nb\\tc");
	check("\x1b[31mred", 8, "\\x1b[31mred");
	check("bell\a del\x7f", 10, "bell\\x07 del\\x7f");
	check("nul\0after", 9, "nul\\x00after");
	/* a backslash is doubled: "\n" in the output is always an escape */
	check("a\\nb", 4, "a\\\\nb");
}

static void test_utf8(void **state)
{
	(void)state;
	check("Nicol\xc3\xb2 \xe2\x82\xac \xf0\x9f\x98\x80", 16,
	      "Nicol\xc3\xb2 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* invalid: a lone continuation byte, a cut sequence, an overlong '/',
	 * a surrogate, beyond U+10FFFF */
	check("\x80", 1, "\\x80");
	check("\xc3", 1, "\\xc3");
	check("\xe2\x82", 2, "\\xe2\\x82");
	check("\xc0\xaf", 2, "\\xc0\\xaf");
	check("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");
	check("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80");
	/* C1 control U+009B (a CSI for some terminals) */
	check("\xc2\x9b"
	      "31m",
	      5, "\\xc2\\x9b31m");
}

static void test_small_buffer(void **state)
{
	(void)state;
	char out[6];
	/* cut only at a whole escape, and the full length is returned */
	size_t need = rete_log_escape(out, sizeof(out), "ab\ncd", 5);
	assert_int_equal(need, 6);
	assert_string_equal(out, "ab\\nc");
	need = rete_log_escape(out, sizeof(out), "\x1b\x1b", 2);
	assert_int_equal(need, 8);
	assert_string_equal(out, "\\x1b");
	assert_int_equal(rete_log_escape(NULL, 0, "x\n", 2), 3);
	char *d = rete_log_escape_dup("line one\nline two");
	assert_non_null(d);
	assert_string_equal(d, "line one\\nline two");
	assert_null(strchr(d, '\n'));
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_controls),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_small_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
