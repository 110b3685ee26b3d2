/* stallwatch.c — see stallwatch.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "stallwatch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "json.h"
#include "log.h"
#include "metrics.h"

struct broker_stall {
	/* the commit in progress, by the thread that commits: its start
	 * (monotonic us, 0: none), its ops and when its oldest frame was read.
	 * A start is never 0 and two commits never start in the same
	 * microsecond on one thread, so the start names the commit: the watch
	 * reads it before and after the other two and trusts them only when
	 * it did not change */
	_Atomic int64_t st_since_us;
	_Atomic uint64_t st_entries;
	_Atomic int64_t st_read_us;
	int64_t st_after_ms;
	char *st_data;
	pthread_mutex_t st_lock;
	pthread_cond_t st_cond; /* stop */
	bool st_stop;
	bool st_threaded;
	pthread_t st_thread;
	/* the watch's thread only: the commit it warned of and the wait at
	 * which it says it again */
	int64_t st_warned_since_us;
	int64_t st_began_ms; /* its start on the wall clock, for the line */
	int64_t st_next_ms;
};

/* stall_look warns of the commit in progress when it has waited past the
 * threshold, or past the wait of the next warning of the same commit. */
static void stall_look(broker_stall *s)
{
	int64_t since = atomic_load(&s->st_since_us);
	if (since == 0)
		return;
	uint64_t entries = atomic_load(&s->st_entries);
	int64_t read_us = atomic_load(&s->st_read_us);
	if (atomic_load(&s->st_since_us) != since)
		return; /* it ended, another began: the next look */
	int64_t now = broker_metrics_now_us();
	int64_t waited_ms = (now - since) / 1000;
	if (since != s->st_warned_since_us) {
		s->st_warned_since_us = since;
		s->st_began_ms = rete_now_ms() - waited_ms;
		s->st_next_ms = s->st_after_ms;
	}
	if (waited_ms < s->st_next_ms)
		return;
	/* 5 s, 10 s, 20 s, ... of the same commit, then every REPEAT */
	int64_t next = s->st_next_ms;
	while (next <= waited_ms)
		next = next > BROKER_STALL_REPEAT_MS ? next + BROKER_STALL_REPEAT_MS : next * 2;
	s->st_next_ms = next;
	char began[32];
	int64_t oldest_s = read_us > 0 && read_us <= now ? (now - read_us) / 1000000 : waited_ms / 1000;
	broker_log_warn("a commit of %" PRIu64 " entr%s has waited %" PRId64
			" s for the disk of %s so far (it began at %s; the oldest frame in it "
			"was read %" PRId64 " s ago) and has not ended: receipts, deliveries "
			"and queries wait for it; check the disk (its errors in the kernel's log, "
			"a hung network file system, what else writes to it); said again at %" PRId64
			" s if it still waits",
			entries, entries == 1 ? "y" : "ies", waited_ms / 1000, s->st_data,
			rete_time_format(s->st_began_ms, began), oldest_s, next / 1000);
}

static void *stall_thread(void *arg)
{
	broker_stall *s = arg;
	pthread_mutex_lock(&s->st_lock);
	while (!s->st_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s->st_cond, &s->st_lock, &ts);
		if (s->st_stop)
			break;
		pthread_mutex_unlock(&s->st_lock);
		stall_look(s);
		pthread_mutex_lock(&s->st_lock);
	}
	pthread_mutex_unlock(&s->st_lock);
	return NULL;
}

rete_err broker_stall_start(broker_stall **out, const char *data, int64_t after_ms)
{
	*out = NULL;
	broker_stall *s = calloc(1, sizeof(*s));
	if (!s)
		return RETE_ENOMEM;
	s->st_data = strdup(data ? data : "");
	if (!s->st_data) {
		free(s);
		return RETE_ENOMEM;
	}
	s->st_after_ms = after_ms;
	pthread_mutex_init(&s->st_lock, NULL);
	/* the wait is on the monotonic clock: a wall clock set back must not
	 * hold the watch */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->st_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->st_thread, NULL, stall_thread, s) == 0) {
		s->st_threaded = true;
		pthread_setname_np(s->st_thread, "rete-stallwatch");
	} else {
		broker_log_warn("the watch of hung commits could not be started (no thread): a "
				"commit that hangs is said only when it ends");
	}
	*out = s;
	return RETE_OK;
}

void broker_stall_begin(broker_stall *s, size_t entries, int64_t read_us)
{
	if (!s)
		return;
	atomic_store(&s->st_since_us, 0);
	atomic_store(&s->st_entries, (uint64_t)entries);
	atomic_store(&s->st_read_us, read_us);
	int64_t now = broker_metrics_now_us();
	atomic_store(&s->st_since_us, now > 0 ? now : 1);
}

void broker_stall_end(broker_stall *s)
{
	if (s)
		atomic_store(&s->st_since_us, 0);
}

void broker_stall_stop(broker_stall **sp)
{
	broker_stall *s = *sp;
	if (!s)
		return;
	if (s->st_threaded) {
		pthread_mutex_lock(&s->st_lock);
		s->st_stop = true;
		pthread_cond_signal(&s->st_cond);
		pthread_mutex_unlock(&s->st_lock);
		pthread_join(s->st_thread, NULL);
	}
	pthread_cond_destroy(&s->st_cond);
	pthread_mutex_destroy(&s->st_lock);
	free(s->st_data);
	free(s);
	*sp = NULL;
}
