/* test_validate_scan.c — the personal-data scan's fast way (v_personal_scan
 * without the fiscal code in groups, then with it only when a run of joined
 * words reaches 16 letters and digits) says what the full scan says: the
 * same kind, the same position, the same digits, on strings built to hold
 * fiscal codes whole and in groups, UUIDs, temporary codes, phone numbers,
 * e-mail addresses, spaces and law citations. The scan is static in
 * validate.c, so the file is taken in whole. */
#include "../../proto/validate.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "testutil.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

/* add appends str to buf (cap bytes, NUL kept) */
static void add(char *buf, size_t cap, const char *str)
{
	size_t have = strlen(buf), n = strlen(str);
	if (have + n + 1 > cap)
		n = cap - have - 1;
	memcpy(buf + have, str, n);
	buf[have + n] = '\0';
}

/* first_agrees: v_personal_first (v_scan_plain's first pass where it can
 * tell) says what v_personal_scan without the groups says, V_PD_RETRY
 * included: the kind, the position, the digits. Returns whether the
 * first pass decided (true) or handed s to the loop. */
static bool first_agrees(const char *str, size_t len)
{
	size_t at_old = 0, d_old = 0, at = 0, d = 0;
	/* in an allocation of its own size, so that the sanitizer build sees a
	 * read past the NUL */
	char *s = malloc(len + 1);
	assert_non_null(s);
	memcpy(s, str, len + 1);
	enum v_pd old = v_personal_scan(s, &at_old, &d_old, false);
	enum v_pd got = v_personal_first(s, len, &at, &d);
	if (got != old || (old != V_PD_NONE && old != V_PD_RETRY && at != at_old) ||
	    (old == V_PD_PHONE && d != d_old)) {
		char shown[1024];
		size_t k = 0;
		for (size_t i = 0; i < len && k + 5 < sizeof(shown); i++)
			k += (size_t)snprintf(
			    shown + k, sizeof(shown) - k,
			    (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? "%c"
										      : "\\x%02x",
			    (unsigned char)s[i]);
		fail_msg("'%s' (%zu bytes): the loop says kind %d at %zu (digits %zu), the first "
			 "pass's way kind %d at %zu (digits %zu)",
			 shown, len, (int)old, at_old, d_old, (int)got, at, d);
	}
	bool at_sign = false, phone = false;
	bool plain =
	    len >= V_PLAIN_MIN && v_scan_plain((const unsigned char *)s, len, &at_sign, &phone);
	free(s);
	return plain;
}

/* a piece of text: what the scan looks for, whole or cut in groups, and
 * what it must not mistake for it */
static void piece(char *buf, size_t cap)
{
	static const char *codes[] = {"RSSMRA85M41E897X", "rssmra8rm4me8vtx", "BNCLCU10T12E897Q",
				      "VRDGPP80A01H501U"};
	static const char *seps[] = {" ", "-", ".", "/", ":", "_", ". ", "; ", ", ", "  ", "\t"};
	static const char *words[] = {"L.",
				      "328/2000",
				      "art.",
				      "22",
				      "c.",
				      "2",
				      "D.Lgs",
				      "196/2003",
				      "ref",
				      "CASE",
				      "x",
				      "a1b2",
				      "2026-12-07",
				      "12:30",
				      "ABCDEFGHIJKLMNOP",
				      "0123456789ABCDEF"};
	char tmp[64];
	switch (rnd(10)) {
	case 0: { /* a fiscal code, cut in 1-5 groups */
		const char *c = codes[rnd(4)];
		size_t at = 0;
		while (at < 16) {
			size_t len = rnd(4) == 0 ? 16 : 1 + rnd(8);
			if (at + len > 16)
				len = 16 - at;
			memcpy(tmp, c + at, len);
			tmp[len] = '\0';
			add(buf, cap, tmp);
			at += len;
			if (at < 16)
				add(buf, cap, seps[rnd(rnd(3) == 0 ? 11 : 6)]);
		}
		break;
	}
	case 1: { /* a UUID, some whose groups would make a fiscal code's shape */
		static const char *uuids[] = {
		    "0d9a1c2e-5b3f-4e6a-9c7d-1234abcd5678", "deadbeef-dead-beef",
		    "abcdef12-a12b-123c-1234-123456789abc", "ABCDEF12-A12B-123C-1234-123456789ABC",
		    "abcdef12-a12b-123c"};
		add(buf, cap, uuids[rnd(5)]);
		break;
	}
	case 2: /* digits: a phone number, a temporary code, a year */
		snprintf(tmp, sizeof(tmp), "%s%u%s%u", rnd(2) ? "+39 " : "", 300 + rnd(700),
			 seps[rnd(4)], (unsigned)rnd(10000000));
		add(buf, cap, rnd(3) ? tmp : "12345678903");
		break;
	case 3:
		add(buf, cap, rnd(2) ? "mario.rossi@comune.mantova.it" : "@ x");
		break;
	case 4: /* letters and digits of random length */
		for (uint32_t n = 1 + rnd(20), i = 0; i < n; i++) {
			tmp[0] = rnd(3) ? (char)('A' + rnd(26)) : (char)('0' + rnd(10));
			tmp[1] = '\0';
			add(buf, cap, tmp);
		}
		break;
	default:
		add(buf, cap, words[rnd(16)]);
		break;
	}
	add(buf, cap, seps[rnd(11)]);
}

static void scan_agrees(void **state)
{
	(void)state;
	unsigned kinds[V_PD_RETRY + 1] = {0};
	unsigned retried = 0, fast_found = 0;
	char buf[512];
	for (int round = 0; round < 200000; round++) {
		buf[0] = '\0';
		for (uint32_t n = rnd(12), i = 0; i < n; i++)
			piece(buf, sizeof(buf));
		size_t at_full = 0, d_full = 0, at = 0, d = 0, at_fast = 0, d_fast = 0;
		enum v_pd full = v_personal_scan(buf, &at_full, &d_full, true);
		enum v_pd got = v_personal_kind(buf, &at, &d);
		enum v_pd fast = v_personal_scan(buf, &at_fast, &d_fast, false);
		first_agrees(buf, strlen(buf));
		if (got != full || (full != V_PD_NONE && at != at_full) ||
		    (full == V_PD_PHONE && d != d_full))
			fail_msg("'%s': the full scan says kind %d at %zu (digits %zu), the fast "
				 "way kind %d at %zu (digits %zu)",
				 buf, (int)full, at_full, d_full, (int)got, at, d);
		assert_int_not_equal(full, V_PD_RETRY);
		kinds[full]++;
		if (fast == V_PD_RETRY)
			retried++;
		else if (fast != V_PD_NONE)
			fast_found++;
	}
	/* the strings reached every case the scan tells apart */
	for (int k = V_PD_NONE; k < V_PD_RETRY; k++)
		if (k != V_PD_CONTROL && kinds[k] == 0)
			fail_msg("no string of kind %d was made: the test covers less than it says",
				 k);
	assert_true(retried > 1000);
	assert_true(fast_found > 1000);
}

/* a law's citation, the common legalBasis, never needs the groups' work */
static void citation_fast(void **state)
{
	(void)state;
	char bench[1024] = "";
	size_t bat = 0, bd = 0, at = 0, d = 0;
	while (strlen(bench) < 870) /* as rete_bench pads its referrals */
		add(bench, sizeof(bench), "L. 328/2000 art. 22 c. 2; ");
	assert_int_not_equal(v_personal_scan(bench, &bat, &bd, false), V_PD_RETRY);
	char buf[1024] = "";
	while (strlen(buf) < 900)
		add(buf, sizeof(buf), "L. 328/2000 art. 22 c. 2; D.Lgs. 196/2003 art. 2-sexies; ");
	enum v_pd full = v_personal_scan(buf, &at, &d, true);
	assert_true(full == V_PD_NONE || full == V_PD_SPACE);
	assert_int_equal(v_personal_scan(buf, &at, &d, false), full);
	/* a UUID is no code in groups (its groups would make one's shape),
	 * whatever run of joined words comes before it; a code's groups
	 * joined to a UUID's group are */
	assert_int_equal(
	    v_personal_kind("abcdefgh-ijklmnop-abcdef12-a12b-123c-1234-123456789abc", &at, &d),
	    V_PD_NONE);
	assert_int_equal(v_personal_kind("abcdef12-a12b-123c-1234-123456789abc", &at, &d),
			 V_PD_NONE);
	assert_int_equal(v_personal_kind("abcdef12-a12b-123c", &at, &d), V_PD_FISCAL_GROUPS);
	/* a code in groups inside it is still found, where it is */
	add(buf, sizeof(buf), "RSSMRA 85M41 E897X");
	assert_int_equal(v_personal_scan(buf, &at, &d, false), V_PD_RETRY);
	assert_int_equal(v_personal_kind(buf, &at, &d), V_PD_FISCAL_GROUPS);
	assert_int_equal(at, strlen(buf) - 18);
}

/* the classes of every byte value at every offset of the blocks, on
 * backgrounds of each kind: v_block_sse2 (where built) and v_block_bytes
 * agree, and both agree with v_kind's own tests */
static void blocks_agree(void **state)
{
	(void)state;
	static const char backgrounds[] = {'\0', 'a', '7', ' ', '-', '@', (char)0xC2, 'x'};
	unsigned char p[48];
	for (size_t bg = 0; bg < sizeof(backgrounds); bg++)
		for (unsigned v = 0; v < 256; v++)
			for (unsigned o = 0; o < sizeof(p); o++) {
				for (unsigned i = 0; i < sizeof(p); i++)
					p[i] = bg + 1 < sizeof(backgrounds)
						   ? (unsigned char)backgrounds[bg]
						   : (unsigned char)rnd(256);
				p[o] = (unsigned char)v;
				for (unsigned blocks = 1; blocks <= 3; blocks++) {
					struct v_block by, simd;
					v_block_bytes(p, blocks, &by);
					v_block_classes(p, blocks, &simd);
					bool at = false;
					for (unsigned i = 0; i < 16 * blocks; i++) {
						uint64_t bit = (uint64_t)1 << i;
						at |= p[i] == '@';
						if (((by.alnum & bit) != 0) != v_alnum(p[i]) ||
						    ((by.digit & bit) != 0) != v_digit(p[i]) ||
						    ((by.gsep & bit) != 0) != v_group_sep(p[i]))
							fail_msg("byte 0x%02x at %u: v_block_bytes "
								 "misclassifies it",
								 p[i], i);
					}
					uint64_t in = 16 * blocks == 64
							  ? ~(uint64_t)0
							  : ((uint64_t)1 << (16 * blocks)) - 1;
					if ((by.alnum & ~in) || (by.digit & ~in) ||
					    (by.gsep & ~in) || by.at != at)
						fail_msg(
						    "v_block_bytes: bits past %u blocks, or the "
						    "'@' missed",
						    blocks);
					if (simd.alnum != by.alnum || simd.digit != by.digit ||
					    simd.gsep != by.gsep || simd.at != by.at)
						fail_msg(
						    "byte 0x%02x at %u of %u blocks (background "
						    "%zu): the blocks' classes differ (alnum "
						    "%016llx/%016llx digit %016llx/%016llx gsep "
						    "%016llx/%016llx at %d/%d)",
						    v, o, blocks, bg,
						    (unsigned long long)simd.alnum,
						    (unsigned long long)by.alnum,
						    (unsigned long long)simd.digit,
						    (unsigned long long)by.digit,
						    (unsigned long long)simd.gsep,
						    (unsigned long long)by.gsep, simd.at, by.at);
				}
			}
}

/* put: the string of n bytes: background bg repeated, then at offset o
 * the candidate c, then bg again up to n (or the string ends with c) */
static size_t put(char *buf, size_t cap, const char *bg, size_t o, const char *c, size_t n)
{
	size_t bl = strlen(bg), cl = strlen(c);
	if (n < o + cl)
		n = o + cl;
	if (n + 1 > cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = bg[i % bl];
	memcpy(buf + o, c, o + cl <= n ? cl : n - o);
	buf[n] = '\0';
	return n;
}

/* what v_scan_plain's tests stand at: runs of letters and digits of 10 to
 * 17 (11: a temporary code, 16: a fiscal code), joined words of 15 to 17
 * letters and digits, digit groups of 7 to 9 digits, and what the later
 * checks find, at every offset across the windows' edges (48 apart, 16
 * shared), the string ending right after the candidate or going on */
static void first_at_every_offset(void **state)
{
	(void)state;
	static const char *bgs[] = {"L. 328/2000 art. 22 c. 2; ", "x y. ", "ab; cd, ef. 12; "};
	static const char *cands[] = {"abcdefghij",
				      "abcdefghijk",
				      "12345678903",
				      "12345678901",
				      "abcdefghijkl",
				      "abcdefghijklmno",
				      "RSSMRA85M41E897X",
				      "rssmra85m41e897x",
				      "abcdefghijklmnopq",
				      "abcdefg-hijklmno",
				      "abcdefgh-ijklmnop",
				      "abcdefgh:ijklmnopq",
				      "RSSMRA 85M41 E897X",
				      "ab cd ef gh ij kl mn op",
				      "abc de_fg",
				      "1234567",
				      "12345678",
				      "123456789",
				      "1234/567",
				      "1234/5678",
				      "123-45678",
				      "333 1234567",
				      "+39 333 1234567",
				      "0039 02 12345678",
				      "2026-12-07",
				      "12:30:45",
				      "0d9a1c2e-5b3f-4e6a-9c7d-1234abcd5678",
				      "abcdef12-a12b-123c",
				      "mario.rossi@comune.mantova.it",
				      "a@b",
				      "@",
				      "\t",
				      "\x7f",
				      "\xc2\xa0",
				      "\xc2\x85",
				      "\xe2\x80\xaf",
				      "\xe3\x80\x80",
				      "\xe2\x80"};
	static const size_t tails[] = {0, 1, 2, 15, 16, 17, 40};
	char buf[256];
	unsigned plain = 0, handed = 0;
	for (size_t b = 0; b < sizeof(bgs) / sizeof(bgs[0]); b++)
		for (size_t c = 0; c < sizeof(cands) / sizeof(cands[0]); c++)
			for (size_t o = 0; o <= 150; o++)
				for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
					size_t n = put(buf, sizeof(buf), bgs[b], o, cands[c],
						       o + strlen(cands[c]) + tails[t]);
					if (first_agrees(buf, n))
						plain++;
					else
						handed++;
				}
	/* every byte value at every offset, in a citation and in words */
	for (size_t b = 0; b < sizeof(bgs) / sizeof(bgs[0]); b++)
		for (unsigned v = 1; v < 256; v++)
			for (size_t o = 0; o <= 130; o++) {
				char one[2] = {(char)v, '\0'};
				size_t n =
				    put(buf, sizeof(buf), bgs[b], o, one, o + 1 + (o % 3) * 20);
				if (first_agrees(buf, n))
					plain++;
				else
					handed++;
			}
	/* both ways taken, often */
	assert_true(plain > 20000);
	assert_true(handed > 20000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scan_agrees),
	    cmocka_unit_test(citation_fast),
	    cmocka_unit_test(blocks_agree),
	    cmocka_unit_test(first_at_every_offset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
