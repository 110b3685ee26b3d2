/* test_whist.c — the witness's history of verified checkpoints
 * (agents/agent/agent_whist.c): its bound and thinning, what a declared
 * restore drops from it, the stored form read back, and the choice of the
 * checkpoint asked about at a restore. */
#include "../../agents/agent/agent_whist.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

static void root_of(uint64_t size, uint8_t root[RETE_MERKLE_HASH])
{
	for (int i = 0; i < RETE_MERKLE_HASH; i++)
		root[i] = (uint8_t)(size * 31 + (uint64_t)i);
}

/* a checkpoint verified every 10 entries, 10,000 of them: the bound holds,
 * the first and the dense newest stay, sizes stay increasing with the right
 * roots, and the older records are spaced out with their age */
static void test_thinning(void **state)
{
	(void)state;
	agent_whist *h = calloc(1, sizeof(*h));
	uint8_t root[RETE_MERKLE_HASH];
	assert_non_null(h);
	for (uint64_t s = 10; s <= 100000; s += 10) {
		root_of(s, root);
		agent_whist_put(h, UINT64_MAX, 1, s, root);
		assert_true(h->n <= AGENT_WHIST_MAX);
	}
	assert_int_equal(h->n, AGENT_WHIST_MAX);
	assert_int_equal(agent_whist_size(h, 0), 10);
	for (size_t k = 0; k < AGENT_WHIST_DENSE; k++)
		assert_int_equal(agent_whist_size(h, h->n - 1 - k), 100000 - 10 * k);
	for (size_t i = 0; i < h->n; i++) {
		root_of(agent_whist_size(h, i), root);
		assert_memory_equal(agent_whist_root(h, i), root, RETE_MERKLE_HASH);
		assert_int_equal(agent_whist_epoch(h, i), 1);
		if (i > 0)
			assert_true(agent_whist_size(h, i) > agent_whist_size(h, i - 1));
	}
	/* each gap is small for its age: a restore point anywhere finds a kept
	 * checkpoint at most an eighth of its age (plus one step) below it
	 * (0.12 measured; docs/agent.md, "The history of verified checkpoints") */
	for (size_t i = 1; i < h->n; i++) {
		uint64_t gap = agent_whist_size(h, i) - agent_whist_size(h, i - 1);
		uint64_t age = 100000 - agent_whist_size(h, i - 1);
		assert_true(gap <= age / 8 + 10);
	}
	/* and the old part is sparser than the recent one */
	assert_true(agent_whist_size(h, 2) - agent_whist_size(h, 1) >
		    4 * (agent_whist_size(h, h->n - AGENT_WHIST_DENSE) -
			 agent_whist_size(h, h->n - AGENT_WHIST_DENSE - 1)));
	free(h);
}

/* a year of checkpoints at the default witness interval (30 s: 1,051,200):
 * the 64 thinned records span all of them, so the gaps grow with the log's
 * length: at most a quarter of their age (0.21 measured, 0.15 on average),
 * not the eighth of 10,000 */
static void test_year(void **state)
{
	(void)state;
	agent_whist *h = calloc(1, sizeof(*h));
	uint8_t root[RETE_MERKLE_HASH] = {0};
	const uint64_t year = 365ull * 24 * 3600 / 30;
	assert_non_null(h);
	for (uint64_t s = 1; s <= year; s++)
		agent_whist_put(h, UINT64_MAX, 1, s, root);
	assert_int_equal(h->n, AGENT_WHIST_MAX);
	assert_int_equal(agent_whist_size(h, 0), 1);
	uint64_t worst = 0;
	for (size_t i = 1; i < h->n; i++) {
		uint64_t gap = agent_whist_size(h, i) - agent_whist_size(h, i - 1);
		uint64_t age = year - agent_whist_size(h, i - 1);
		assert_true(gap <= age / 4 + 1);
		if (gap * 8 > age + 8 && gap > worst)
			worst = gap;
	}
	/* and more than an eighth somewhere: the figure for 10,000 does not hold */
	assert_true(worst > 0);
	free(h);
}

/* a restore's link passed at restore point 45: the records above it go, the
 * new epoch's checkpoint is added; an accepted epoch (keep 0) keeps none of
 * the old; a size not above the newest replaces the ones not below it */
static void test_keep(void **state)
{
	(void)state;
	agent_whist *h = calloc(1, sizeof(*h));
	uint8_t root[RETE_MERKLE_HASH];
	assert_non_null(h);
	for (uint64_t s = 10; s <= 100; s += 10) {
		root_of(s, root);
		agent_whist_put(h, UINT64_MAX, 1, s, root);
	}
	/* the new epoch's first checkpoint (75) is larger than old ones past
	 * the restore point (50 to 70): they go all the same */
	root_of(75, root);
	agent_whist_put(h, 45, 2, 75, root);
	assert_int_equal(h->n, 5);
	assert_int_equal(agent_whist_size(h, 3), 40);
	assert_int_equal(agent_whist_size(h, 4), 75);
	assert_int_equal(agent_whist_epoch(h, 4), 2);
	root_of(90, root);
	agent_whist_put(h, UINT64_MAX, 2, 90, root);
	agent_whist_put(h, UINT64_MAX, 2, 75, root); /* not above: replaces */
	assert_int_equal(h->n, 5);
	assert_int_equal(agent_whist_size(h, 4), 75);
	agent_whist_put(h, 0, 3, 80, root);
	assert_int_equal(h->n, 1);
	assert_int_equal(agent_whist_size(h, 0), 80);
	assert_int_equal(agent_whist_epoch(h, 0), 3);
	agent_whist_put(h, 0, 3, 0, root); /* size 0: nothing added */
	assert_int_equal(h->n, 0);
	free(h);
}

/* the stored bytes read back; what is not a history is refused, empty */
static void test_parse(void **state)
{
	(void)state;
	agent_whist *h = calloc(1, sizeof(*h)), *g = calloc(1, sizeof(*g));
	uint8_t root[RETE_MERKLE_HASH] = {0};
	assert_non_null(h);
	assert_non_null(g);
	assert_true(agent_whist_parse(g, NULL, 0));
	assert_int_equal(g->n, 0);
	for (uint64_t s = 1; s <= 5; s++)
		agent_whist_put(h, UINT64_MAX, 1, s * 1000000000000ULL, root);
	assert_true(agent_whist_parse(g, h->rec[0], h->n * AGENT_WHIST_REC));
	assert_int_equal(g->n, 5);
	assert_int_equal(agent_whist_size(g, 4), 5000000000000ULL);
	assert_false(agent_whist_parse(g, h->rec[0], 5 * AGENT_WHIST_REC - 1));
	assert_int_equal(g->n, 0);
	memcpy(h->rec[5], h->rec[0], AGENT_WHIST_REC); /* not by size */
	assert_false(agent_whist_parse(g, h->rec[0], 6 * AGENT_WHIST_REC));
	uint8_t *big = calloc(AGENT_WHIST_MAX + 1, AGENT_WHIST_REC);
	assert_non_null(big);
	assert_false(agent_whist_parse(g, big, (AGENT_WHIST_MAX + 1) * AGENT_WHIST_REC));
	free(big);
	free(g);
	free(h);
}

/* the checkpoint asked about at a restore: the largest at or below the
 * restore point, of an epoch before the restore's */
static void test_below(void **state)
{
	(void)state;
	agent_whist *h = calloc(1, sizeof(*h));
	uint8_t root[RETE_MERKLE_HASH] = {0};
	assert_non_null(h);
	assert_int_equal(agent_whist_below(h, 100, 2), -1);
	agent_whist_put(h, UINT64_MAX, 1, 5, root);
	agent_whist_put(h, UINT64_MAX, 1, 7, root);
	agent_whist_put(h, UINT64_MAX, 2, 9, root);
	agent_whist_put(h, UINT64_MAX, 2, 15, root);
	assert_int_equal(agent_whist_below(h, 4, 3), -1);
	assert_int_equal(agent_whist_below(h, 5, 3), 0);
	assert_int_equal(agent_whist_below(h, 8, 3), 1);
	assert_int_equal(agent_whist_below(h, 14, 3), 2);
	assert_int_equal(agent_whist_below(h, 100, 3), 3);
	assert_int_equal(agent_whist_below(h, 100, 2), 1); /* epoch 2's own: not */
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_thinning), cmocka_unit_test(test_year),
	    cmocka_unit_test(test_keep),     cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_below),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
