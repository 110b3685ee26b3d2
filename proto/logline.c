/* logline.c — see logline.h. */
#include "logline.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* utf8_len: the length of the well-formed UTF-8 sequence at p (at most n
 * bytes available), or 0 when the byte at p does not start one (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t want;
	unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (c >= 0xc2 && c <= 0xdf)
		want = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		want = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		want = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < want || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < want; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return want;
}

/* plain: the byte stands for itself in a log line (printable ASCII but
 * the backslash, which starts an escape). */
static bool plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

/* plain8: all eight bytes of x are plain, tested at once (any byte below
 * 0x20, from 0x80, 0x7f or a backslash says no; each test is exact for
 * "some byte is", whatever the byte order): a log line is mostly plain
 * text, and the byte at a time loop was ~9 instructions a byte, every
 * logged entry's line (callgrind, session 16). */
static bool plain8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t del = x ^ (0x7f * ones), bs = x ^ ('\\' * ones);
	uint64_t below = (x - 0x20 * ones) & ~x;		 /* a byte < 0x20 */
	uint64_t zero = ((del - ones) & ~del) | ((bs - ones) & ~bs); /* 0x7f, '\\' */
	return ((below | zero | x) & highs) == 0;		 /* x: a byte >= 0x80 */
}

/* put appends the k bytes of s to out when the whole of them fits. */
static void put(char *out, size_t size, size_t *at, bool *cut, const char *s, size_t k)
{
	if (!*cut && size > 0 && *at + k < size)
		memcpy(out + *at, s, k);
	else
		*cut = true;
	*at += k;
}

size_t rete_log_escape(char *out, size_t size, const char *in, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t at = 0, written = 0;
	bool cut = false;
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		char esc[4 * 4];
		size_t k = 0, take = 1;
		if (plain(c)) {
			/* a run of bytes that stand for themselves, as one put
			 * each would write it: what fits, then cut */
			size_t n = 1;
			for (uint64_t x; i + n + 8 <= len; n += 8) {
				memcpy(&x, p + i + n, 8);
				if (!plain8(x))
					break;
			}
			while (i + n < len && plain(p[i + n]))
				n++;
			size_t room = !cut && size > 0 && at + 1 < size ? size - 1 - at : 0;
			size_t m = n < room ? n : room;
			if (m > 0) {
				memcpy(out + at, p + i, m);
				written = at + m;
			}
			if (m < n)
				cut = true;
			at += n;
			i += n;
			continue;
		}
		if (c == '\n' || c == '\r' || c == '\t' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
		} else if (c < 0x20 || c == 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'x';
			esc[k++] = hex[c >> 4];
			esc[k++] = hex[c & 15];
		} else if (c < 0x80) {
			esc[k++] = (char)c;
		} else if ((take = utf8_len(p + i, len - i)) == 0 ||
			   (c == 0xc2 && p[i + 1] <= 0x9f)) {
			/* not UTF-8, or a C1 control: each byte as \xHH */
			take = take ? take : 1;
			for (size_t j = 0; j < take; j++) {
				esc[k++] = '\\';
				esc[k++] = 'x';
				esc[k++] = hex[p[i + j] >> 4];
				esc[k++] = hex[p[i + j] & 15];
			}
		} else {
			memcpy(esc, p + i, take);
			k = take;
		}
		put(out, size, &at, &cut, esc, k);
		if (!cut)
			written = at;
		i += take;
	}
	if (size > 0)
		out[written < size ? written : size - 1] = '\0';
	return at;
}

char *rete_log_escape_dup(const char *s)
{
	size_t len = strlen(s);
	size_t need = rete_log_escape(NULL, 0, s, len);
	char *out = malloc(need + 1);
	if (out)
		rete_log_escape(out, need + 1, s, len);
	return out;
}
