/* test_ratelimit.c — proto/ratelimit.c: repeated lines are written once a
 * window and counted (issue 17: 3,000 refused handshakes gave 3,000 warning
 * lines). Time is the caller's, so the windows are exact here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ratelimit.h"

#define W 60000

struct said {
	int n;
	char key[8][RETE_RATELIMIT_KEY_MAX + 1];
	bool null_key[8];
	int tag[8];
	uint64_t held[8];
};

static void record(const char *key, int tag, uint64_t held, void *arg)
{
	struct said *s = arg;
	assert_true(s->n < 8);
	s->null_key[s->n] = key == NULL;
	snprintf(s->key[s->n], sizeof(s->key[s->n]), "%s", key ? key : "");
	s->tag[s->n] = tag;
	s->held[s->n] = held;
	s->n++;
}

static void test_once_a_window(void **state)
{
	(void)state;
	static rete_ratelimit rl = RETE_RATELIMIT_INITIALIZER(W);
	uint64_t held = 99;
	struct said s = {0};

	assert_true(rete_ratelimit_admit(&rl, "refused key a", 4, 1000, &held));
	assert_int_equal(held, 0);
	/* 2,999 more within the minute: none written */
	for (int i = 1; i < 3000; i++)
		assert_false(rete_ratelimit_admit(&rl, "refused key a", 4, 1000 + i * 10, &held));
	/* another key is not held back by the first */
	assert_true(rete_ratelimit_admit(&rl, "refused key b", 4, 2000, &held));
	assert_int_equal(held, 0);
	/* before the window ends, the sweep says nothing */
	rete_ratelimit_sweep(&rl, 1000 + W - 1, record, &s);
	assert_int_equal(s.n, 0);
	/* then once, with the count and the tag, and the key starts afresh */
	rete_ratelimit_sweep(&rl, 1000 + W, record, &s);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.key[0], "refused key a");
	assert_int_equal(s.held[0], 2999);
	assert_int_equal(s.tag[0], 4);
	rete_ratelimit_sweep(&rl, 1000 + W + 5, record, &s);
	assert_int_equal(s.n, 1);
	assert_true(rete_ratelimit_admit(&rl, "refused key a", 4, 1000 + W + 10, &held));
	assert_int_equal(held, 0);
	/* key b's window ended with nothing held: nothing to say */
	rete_ratelimit_sweep(&rl, 2000 + W, record, &s);
	assert_int_equal(s.n, 1);
}

static void test_count_on_next_line(void **state)
{
	(void)state;
	static rete_ratelimit rl = RETE_RATELIMIT_INITIALIZER(W);
	uint64_t held;
	assert_true(rete_ratelimit_admit(&rl, "k", 6, 0, &held));
	assert_false(rete_ratelimit_admit(&rl, "k", 6, 10, &held));
	assert_false(rete_ratelimit_admit(&rl, "k", 6, 20, &held));
	/* no sweep ran: the next admitted line carries the count */
	assert_true(rete_ratelimit_admit(&rl, "k", 6, W + 1, &held));
	assert_int_equal(held, 2);
	struct said s = {0};
	rete_ratelimit_sweep(&rl, W + 2, record, &s);
	assert_int_equal(s.n, 0); /* said once, not twice */
}

static void test_long_keys(void **state)
{
	(void)state;
	static rete_ratelimit rl = RETE_RATELIMIT_INITIALIZER(W);
	char a[400], b[400];
	memset(a, 'x', sizeof(a) - 2);
	a[sizeof(a) - 2] = 'a';
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(a));
	b[sizeof(b) - 2] = 'b';
	uint64_t held;
	/* keys equal in their first 200 bytes are still two keys */
	assert_true(rete_ratelimit_admit(&rl, a, 4, 0, &held));
	assert_true(rete_ratelimit_admit(&rl, b, 4, 0, &held));
	assert_false(rete_ratelimit_admit(&rl, a, 4, 1, &held));
	struct said s = {0};
	rete_ratelimit_sweep(&rl, W, record, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(strlen(s.key[0]), RETE_RATELIMIT_KEY_MAX);
}

/* fill_slots admits RETE_RATELIMIT_SLOTS distinct keys at time 0, each
 * written (the first of its window): every slot of rl is then taken. */
static void fill_slots(rete_ratelimit *rl)
{
	uint64_t held;
	char key[32];
	for (int i = 0; i < RETE_RATELIMIT_SLOTS; i++) {
		snprintf(key, sizeof(key), "key %d", i);
		assert_true(rete_ratelimit_admit(rl, key, 4, 0, &held));
	}
}

static void test_table_full(void **state)
{
	(void)state;
	static rete_ratelimit rl = RETE_RATELIMIT_INITIALIZER(W);
	uint64_t held;
	char key[32];
	/* a flood of distinct keys (new keys at every handshake) fills the
	 * table; the rest are counted together, not written */
	fill_slots(&rl);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "other %d", i);
		assert_false(rete_ratelimit_admit(&rl, key, i == 500 ? 3 : 4, 5, &held));
	}
	struct said s = {0};
	rete_ratelimit_sweep(&rl, W + 5, record, &s);
	assert_int_equal(s.n, 1);
	assert_true(s.null_key[0]);
	assert_int_equal(s.held[0], 1000);
	assert_int_equal(s.tag[0], 3); /* the most severe held */
	/* the slots are free again */
	assert_true(rete_ratelimit_admit(&rl, "other 1", 4, W + 6, &held));
}

static void test_ended_window_reused(void **state)
{
	(void)state;
	static rete_ratelimit rl = RETE_RATELIMIT_INITIALIZER(W);
	uint64_t held;
	fill_slots(&rl);
	/* no sweep, but the windows ended with nothing held: slots reusable */
	assert_true(rete_ratelimit_admit(&rl, "late", 4, W, &held));
}

#define THREADS 4
#define PER	5000

static rete_ratelimit shared = RETE_RATELIMIT_INITIALIZER(W);

static void *hammer(void *arg)
{
	long *written = arg;
	uint64_t held;
	for (int i = 0; i < PER; i++)
		if (rete_ratelimit_admit(&shared, "one key", 4, 100, &held))
			(*written)++;
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	pthread_t t[THREADS];
	long written[THREADS] = {0};
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &written[i]), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	long total = 0;
	for (int i = 0; i < THREADS; i++)
		total += written[i];
	assert_int_equal(total, 1);
	struct said s = {0};
	rete_ratelimit_sweep(&shared, 100 + W, record, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.held[0], THREADS * PER - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_once_a_window),	cmocka_unit_test(test_count_on_next_line),
	    cmocka_unit_test(test_long_keys),		cmocka_unit_test(test_table_full),
	    cmocka_unit_test(test_ended_window_reused), cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
