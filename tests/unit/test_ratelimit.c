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
static void fill_slots_from(rete_ratelimit *rl, int from)
{
	uint64_t held;
	char key[32];
	for (int i = from; i < RETE_RATELIMIT_SLOTS; i++) {
		snprintf(key, sizeof(key), "key %d", i);
		assert_true(rete_ratelimit_admit(rl, key, 4, 0, &held));
	}
}

static void fill_slots(rete_ratelimit *rl)
{
	fill_slots_from(rl, 0);
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

/* test_flush: the program stops within a window: its count is said then,
 * not lost (the broker's "stopped" came after counts never said) */
static void test_flush(void **state)
{
	(void)state;
	static rete_ratelimit rl = RETE_RATELIMIT_INITIALIZER(W);
	uint64_t held;
	assert_true(rete_ratelimit_admit(&rl, "k", 4, 0, &held));
	for (int i = 1; i <= 3; i++)
		assert_false(rete_ratelimit_admit(&rl, "k", 4, i * 10, &held));
	assert_true(rete_ratelimit_admit(&rl, "quiet", 6, 0, &held));
	fill_slots_from(&rl, 2);
	assert_false(rete_ratelimit_admit(&rl, "over", 3, 50, &held));
	struct said s = {0};
	rete_ratelimit_flush(&rl, record, &s);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.key[0], "k");
	assert_int_equal(s.held[0], 3);
	assert_int_equal(s.tag[0], 4);
	assert_true(s.null_key[1]);
	assert_int_equal(s.held[1], 1);
	/* said once: neither a sweep nor the next line says it again */
	rete_ratelimit_sweep(&rl, W + 100, record, &s);
	assert_int_equal(s.n, 2);
	assert_true(rete_ratelimit_admit(&rl, "k", 4, 60, &held));
	assert_int_equal(held, 0);
}

/* the window of one key kept by the caller (the broker's HELLO lines) */
static void test_win_quiet_minute(void **state)
{
	(void)state;
	rete_ratewin w = {0};
	uint64_t held = 99;
	assert_false(rete_ratewin_ended(&w, W, 0, true, &held)); /* no window */
	assert_true(rete_ratewin_admit(&w, W, 1000, &held));
	assert_int_equal(held, 0);
	assert_false(rete_ratewin_admit(&w, W, 1010, &held));
	assert_false(rete_ratewin_admit(&w, W, 1020, &held));
	assert_false(rete_ratewin_ended(&w, W, 1000 + W - 1, true, &held));
	assert_int_equal(held, 0);
	/* the minute's count, once */
	assert_true(rete_ratewin_ended(&w, W, 1000 + W, true, &held));
	assert_int_equal(held, 2);
	/* a line a minute after the latest one held (at 1020) is written at
	 * once, however close to the count line */
	assert_true(rete_ratewin_admit(&w, W, 1020 + W, &held));
	assert_int_equal(held, 0);
	/* one line held in the new window; nobody swept: the next written
	 * line carries it */
	assert_false(rete_ratewin_admit(&w, W, 1030 + W, &held));
	assert_true(rete_ratewin_admit(&w, W, 1020 + 2 * W, &held));
	assert_int_equal(held, 1);
}

static void test_win_goes_on(void **state)
{
	(void)state;
	/* a line every second for 150 s, swept every second: one written,
	 * then one count a window, each line counted once */
	rete_ratewin w = {0};
	uint64_t held, counted = 0;
	int written = 0, counts = 0;
	for (int64_t t = 0; t <= 150000; t += 1000) {
		if (rete_ratewin_ended(&w, W, t, true, &held) && held) {
			counts++;
			counted += held;
		}
		if (rete_ratewin_admit(&w, W, t, &held)) {
			written++;
			counted += held;
		}
	}
	assert_int_equal(written, 1);
	assert_int_equal(counts, 2); /* at 60 s and at 119 s */
	assert_int_equal(counted + rete_ratewin_flush(&w), 150);
	/* quiet after the flood: the window ends empty, then a line goes out */
	assert_true(rete_ratewin_admit(&w, W, 200000, &held));
	assert_false(rete_ratewin_admit(&w, W, 200001, &held));
	assert_true(rete_ratewin_ended(&w, W, 260000, true, &held));
	assert_int_equal(held, 1);
	assert_true(rete_ratewin_ended(&w, W, 260001, true, &held));
	assert_int_equal(held, 0);
	assert_false(rete_ratewin_ended(&w, W, 400000, true, &held)); /* closed */
	/* without go_on the window closes with its count */
	assert_true(rete_ratewin_admit(&w, W, 500000, &held));
	assert_false(rete_ratewin_admit(&w, W, 500001, &held));
	assert_true(rete_ratewin_ended(&w, W, 500000 + W, false, &held));
	assert_int_equal(held, 1);
	assert_true(rete_ratewin_admit(&w, W, 500002 + W, &held));
	/* flush: held lines of a window that runs on */
	assert_false(rete_ratewin_admit(&w, W, 500003 + W, &held));
	assert_false(rete_ratewin_admit(&w, W, 500004 + W, &held));
	assert_int_equal(rete_ratewin_flush(&w), 2);
	assert_int_equal(rete_ratewin_flush(&w), 0);
	assert_true(rete_ratewin_admit(&w, W, 500005 + W, &held));
	assert_int_equal(held, 0);
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
	    cmocka_unit_test(test_once_a_window),
	    cmocka_unit_test(test_count_on_next_line),
	    cmocka_unit_test(test_long_keys),
	    cmocka_unit_test(test_table_full),
	    cmocka_unit_test(test_ended_window_reused),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_flush),
	    cmocka_unit_test(test_win_quiet_minute),
	    cmocka_unit_test(test_win_goes_on),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
