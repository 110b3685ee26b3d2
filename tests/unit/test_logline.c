/* test_logline.c — rete_log_escape: one call, one line, nothing a terminal
 * or a log reader could take for something else (issue 13, defect 10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
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
	/* a C1 control is one escape of 8: not cut after its first byte */
	char c1[7];
	assert_int_equal(rete_log_escape(c1, sizeof(c1), "ab\xc2\x9b", 4), 10);
	assert_string_equal(c1, "ab");
	char *d = rete_log_escape_dup("line one\nline two");
	assert_non_null(d);
	assert_string_equal(d, "line one\\nline two");
	assert_null(strchr(d, '\n'));
	free(d);
}

/* Any buffer size: the longest run of whole escapes that fits (an escape
 * ends where the escape of some prefix of the input ends), the full length
 * returned. Random inputs of plain text, escapes, UTF-8 good and bad (not
 * a C1 control, whose two bytes are one escape although the escape of its
 * first byte alone ends inside it: test_small_buffer has it). */
static void test_every_size(void **state)
{
	(void)state;
	static const char *bits[] = {"plain ",
				     "L. 328/2000",
				     "\\",
				     "\n",
				     "\t",
				     "\x1b",
				     "\x7f",
				     "\xc3\xb2",
				     "\xe2\x82\xac",
				     "\xf0\x9f\x98\x80",
				     "\x80",
				     "\xe2\x82",
				     "~",
				     " ",
				     "x"};
	uint32_t r = 12345;
	for (int round = 0; round < 3000; round++) {
		char in[128] = "";
		size_t len = 0;
		for (int n = (int)((r = r * 1103515245u + 12345u) >> 16) % 9; n > 0; n--) {
			const char *b = bits[((r = r * 1103515245u + 12345u) >> 16) % 15];
			size_t bl = strlen(b);
			if (len + bl >= sizeof(in))
				break;
			memcpy(in + len, b, bl);
			len += bl;
		}
		char full[640], pre[640], out[640];
		size_t flen = rete_log_escape(full, sizeof(full), in, len);
		assert_int_equal(flen, strlen(full));
		/* where whole escapes end in full */
		bool ends[640] = {false};
		ends[0] = true;
		for (size_t j = 1; j <= len; j++) {
			size_t pl = rete_log_escape(pre, sizeof(pre), in, j);
			if (pl <= flen && memcmp(pre, full, pl) == 0)
				ends[pl] = true;
		}
		assert_true(ends[flen]);
		for (size_t size = 0; size <= flen + 1; size++) {
			memset(out, 'Z', sizeof(out));
			assert_int_equal(rete_log_escape(out, size, in, len), flen);
			if (size == 0) {
				assert_int_equal(out[0], 'Z');
				continue;
			}
			size_t want = size - 1 < flen ? size - 1 : flen;
			while (!ends[want])
				want--;
			assert_int_equal(strlen(out), want);
			assert_memory_equal(out, full, want);
		}
	}
}

/* Every byte value at every place of a run of plain text, long enough
 * that the run is read eight bytes at a time: the line is the plain text
 * around that byte's own escape (the byte alone, read one at a time). */
static void test_each_byte_in_a_run(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		char one[8], alone[8];
		one[0] = (char)c;
		size_t an = rete_log_escape(alone, sizeof(alone), one, 1);
		for (size_t len = 1; len <= 40; len++)
			for (size_t at = 0; at < len; at++) {
				char in[40], want[64], out[64];
				for (size_t i = 0; i < len; i++)
					in[i] = (char)('a' + i % 26);
				in[at] = (char)c;
				memcpy(want, in, at);
				memcpy(want + at, alone, an);
				memcpy(want + at + an, in + at + 1, len - at - 1);
				want[len - 1 + an] = '\0';
				size_t n = rete_log_escape(out, sizeof(out), in, len);
				if (n != len - 1 + an || strcmp(out, want) != 0)
					fail_msg("byte 0x%02x at %zu of %zu: '%s', want '%s'", c, at, len,
						 out, want);
			}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_controls),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_small_buffer),
	    cmocka_unit_test(test_every_size),
	    cmocka_unit_test(test_each_byte_in_a_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
