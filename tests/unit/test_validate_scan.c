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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scan_agrees),
	    cmocka_unit_test(citation_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
