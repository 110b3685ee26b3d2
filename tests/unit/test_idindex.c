/* test_idindex.c — broker/idindex.h: the hash index finds what a scan of
 * the table in order finds (the first of an id that comes twice), and
 * nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../broker/idindex.h"
#include "testutil.h"

/* like broker_party and broker_peer: the id first, then other fields */
struct row {
	char id[24];
	int other;
};

static size_t scan(const struct row *t, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].id, id) == 0)
			return i;
	return SIZE_MAX;
}

static uint64_t rnd_state = 0x2545F4914F6CDD1Dull;

static uint32_t rnd(void)
{
	return tu_rand(&rnd_state);
}

/* an id of a small alphabet, so that tables share prefixes and repeat ids */
static void rnd_id(char *out, size_t cap)
{
	size_t n = rnd() % 8; /* "" too */
	for (size_t i = 0; i < n && i + 1 < cap; i++)
		out[i] = "ab.-1"[rnd() % 5];
	out[n < cap ? n : cap - 1] = '\0';
}

static void test_finds_what_a_scan_finds(void **state)
{
	(void)state;
	static struct row t[700];
	for (int round = 0; round < 400; round++) {
		size_t n = round < 20 ? (size_t)round : rnd() % 700;
		for (size_t i = 0; i < n; i++) {
			rnd_id(t[i].id, sizeof(t[i].id));
			t[i].other = (int)i;
		}
		broker_id_index ix = {0};
		assert_int_equal(broker_id_index_build(&ix, t, sizeof(t[0]), n), RETE_OK);
		for (int q = 0; q < 300; q++) {
			char id[24];
			if (n && q % 2)
				memcpy(id, t[rnd() % n].id, sizeof(id));
			else
				rnd_id(id, sizeof(id));
			size_t want = scan(t, n, id);
			size_t got = broker_id_index_find(&ix, t, sizeof(t[0]), id);
			if (got != want)
				fail_msg("round %d, %zu rows, id '%s': index %zu, scan %zu", round,
					 n, id, got, want);
		}
		assert_int_equal(broker_id_index_find(&ix, t, sizeof(t[0]), NULL), SIZE_MAX);
		broker_id_index_free(&ix);
		assert_null(ix.slot);
		/* an empty index finds nothing */
		assert_int_equal(broker_id_index_find(&ix, t, sizeof(t[0]), "a"), SIZE_MAX);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_finds_what_a_scan_finds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
