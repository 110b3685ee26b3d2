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
	 * (monotonic us, 0: none) and its ops, under st_ops_lock (taken twice
	 * a commit, by the watch only when a commit has run past the
	 * threshold): the watch counts the entries of a commit it says, and
	 * the ops must not end under it */
	pthread_mutex_t st_ops_lock;
	_Atomic int64_t st_since_us;
	const rete_store_op *st_ops;
	size_t st_nops;
	/* the spell of slow commits (rev-broker s17 #2): broker_stall_calm,
	 * from the thread that commits, ends it (st_calm counts the ends);
	 * st_held counts the commits past the threshold the watch did not say */
	_Atomic uint64_t st_calm;
	_Atomic uint64_t st_held;
	int64_t st_after_ms;
	char *st_data;
	pthread_mutex_t st_lock;
	pthread_cond_t st_cond; /* stop */
	bool st_stop;
	bool st_threaded;
	pthread_t st_thread;
	/* the watch's thread only: the commit it looks at and the wait at
	 * which it says it (again); whether it was counted held; the spell's
	 * end it saw last, the wait its ladder has reached (0: no line in this
	 * spell yet) and when it said its last line (monotonic ms) */
	int64_t st_warned_since_us;
	int64_t st_began_ms; /* its start on the wall clock, for the line */
	int64_t st_next_ms;
	bool st_counted;
	bool st_said; /* this commit was said: its own ladder from now on */
	uint64_t st_calm_seen;
	int64_t st_spell_next_ms;
	int64_t st_said_ms;
};

/* A slow spell's lines beyond its first: one when a commit reaches the
 * wait the spell's ladder has reached, or else at most one this often. */
#define STALL_SPELL_EVERY_MS (60 * 1000)

/* stall_entries: the entries ops append, as far as can be told before the
 * store answers: each distinct signed message once (resubmissions of one
 * the batch already holds are answered DUPLICATE: no entry); an append the
 * store will refuse is counted all the same. Called only when a commit is
 * said, so the quadratic worst case (BROKER_BATCH_MAX ops) is rare. */
static size_t stall_entries(const rete_store_op *ops, size_t nops)
{
	size_t n = 0;
	for (size_t i = 0; i < nops; i++) {
		if (ops[i].kind != RETE_STORE_OP_APPEND)
			continue;
		bool again = false;
		for (size_t j = 0; j < i && !again; j++)
			again = ops[j].kind == RETE_STORE_OP_APPEND && ops[j].in.len == ops[i].in.len &&
				ops[j].in.signed_message && ops[i].in.signed_message &&
				memcmp(ops[j].in.signed_message, ops[i].in.signed_message,
				       ops[i].in.len) == 0;
		if (!again)
			n++;
	}
	return n;
}

/* stall_look warns of the commit in progress when it has waited past the
 * threshold, or past the wait of the next warning of the same commit.
 * Within a spell of slow commits (until broker_stall_calm) a commit after
 * the first said is said only when it reaches the wait the spell's ladder
 * has reached, or when no line was said for STALL_SPELL_EVERY_MS; the
 * others are counted into the spell's summary (commit_timed). */
static void stall_look(broker_stall *s)
{
	if (atomic_load(&s->st_since_us) == 0)
		return;
	pthread_mutex_lock(&s->st_ops_lock);
	int64_t since = atomic_load(&s->st_since_us);
	if (since == 0) {
		pthread_mutex_unlock(&s->st_ops_lock);
		return;
	}
	int64_t now = broker_metrics_now_us();
	int64_t waited_ms = (now - since) / 1000;
	if (since != s->st_warned_since_us) {
		s->st_warned_since_us = since;
		s->st_began_ms = rete_now_ms() - waited_ms;
		s->st_counted = false;
		s->st_said = false;
		uint64_t calm = atomic_load(&s->st_calm);
		if (calm != s->st_calm_seen) {
			s->st_calm_seen = calm;
			s->st_spell_next_ms = 0;
		}
		s->st_next_ms = s->st_spell_next_ms ? s->st_spell_next_ms : s->st_after_ms;
	}
	if (waited_ms < s->st_after_ms) {
		pthread_mutex_unlock(&s->st_ops_lock);
		return;
	}
	int64_t now_ms = now / 1000;
	/* a commit not said yet, in a spell that said nothing for a minute */
	bool quiet = !s->st_said && s->st_spell_next_ms &&
		     now_ms - s->st_said_ms >= STALL_SPELL_EVERY_MS;
	if (waited_ms < s->st_next_ms && !quiet) {
		if (!s->st_counted) {
			s->st_counted = true;
			atomic_fetch_add(&s->st_held, 1);
		}
		pthread_mutex_unlock(&s->st_ops_lock);
		return;
	}
	if (s->st_counted) { /* said after all: not held */
		s->st_counted = false;
		atomic_fetch_sub(&s->st_held, 1);
	}
	size_t entries = stall_entries(s->st_ops, s->st_nops);
	pthread_mutex_unlock(&s->st_ops_lock);
	/* 5 s, 10 s, 20 s, ... of the same commit, then every REPEAT */
	int64_t next = s->st_next_ms;
	while (next <= waited_ms)
		next = next > BROKER_STALL_REPEAT_MS ? next + BROKER_STALL_REPEAT_MS : next * 2;
	s->st_next_ms = next;
	if (next > s->st_spell_next_ms)
		s->st_spell_next_ms = next;
	s->st_said_ms = now_ms;
	s->st_said = true;
	char began[32];
	broker_log_warn("a commit of %zu entr%s has waited %" PRId64
			" s for the disk of %s so far (it began at %s) and has not ended: "
			"receipts, deliveries and queries wait for it; check the disk (its "
			"errors in the kernel's log, a hung network file system, what else "
			"writes to it); said again at %" PRId64 " s if it still waits",
			entries, entries == 1 ? "y" : "ies", waited_ms / 1000, s->st_data,
			rete_time_format(s->st_began_ms, began), next / 1000);
}

static void *stall_thread(void *arg)
{
	broker_stall *s = arg;
	pthread_mutex_lock(&s->st_lock);
	while (!s->st_stop) {
		/* no commit in progress: asleep until one begins
		 * (broker_stall_begin wakes it), not looking at the clock
		 * every second for nothing (the setenv("TZ") this thread's
		 * getenv under libfaketime once raced is gone: proto/tz.c) */
		if (atomic_load(&s->st_since_us) == 0) {
			pthread_cond_wait(&s->st_cond, &s->st_lock);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&s->st_cond, &s->st_lock, &ts);
		}
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
	pthread_mutex_init(&s->st_ops_lock, NULL);
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

void broker_stall_begin(broker_stall *s, const rete_store_op *ops, size_t nops)
{
	if (!s)
		return;
	int64_t now = broker_metrics_now_us();
	pthread_mutex_lock(&s->st_ops_lock);
	s->st_ops = ops;
	s->st_nops = nops;
	atomic_store(&s->st_since_us, now > 0 ? now : 1);
	pthread_mutex_unlock(&s->st_ops_lock);
	/* the watch sleeps while no commit is in progress: wake it (the
	 * store above comes first, so it cannot miss this commit) */
	pthread_mutex_lock(&s->st_lock);
	pthread_cond_signal(&s->st_cond);
	pthread_mutex_unlock(&s->st_lock);
}

void broker_stall_end(broker_stall *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->st_ops_lock);
	atomic_store(&s->st_since_us, 0);
	s->st_ops = NULL;
	s->st_nops = 0;
	pthread_mutex_unlock(&s->st_ops_lock);
}

uint64_t broker_stall_calm(broker_stall *s)
{
	if (!s)
		return 0;
	atomic_fetch_add(&s->st_calm, 1);
	return atomic_exchange(&s->st_held, 0);
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
	pthread_mutex_destroy(&s->st_ops_lock);
	free(s->st_data);
	free(s);
	*sp = NULL;
}
