/* pool.c — see pool.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct broker_pool {
	pthread_mutex_t bp_lock;
	pthread_cond_t bp_work; /* a new batch, or stop */
	pthread_cond_t bp_done; /* the last job of the batch finished */
	pthread_t *bp_threads;
	unsigned bp_nthreads;
	bool bp_stop;
	unsigned bp_ready;	     /* threads that have lowered their priority */
	unsigned long bp_generation; /* batch number */
	broker_pool_fn bp_fn;
	void *bp_ctx;
	size_t bp_n, bp_next, bp_finished;
	broker_pool_cpu_fn bp_cpu; /* told the thread CPU the jobs took */
	void *bp_cpu_ctx;
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* take_jobs does jobs of the current batch until none is left; called and
 * returns with the lock held. */
static void take_jobs(broker_pool *p)
{
	if (p->bp_next >= p->bp_n)
		return;
	uint64_t t0 = p->bp_cpu ? thread_cpu_ns() : 0;
	broker_pool_cpu_fn cpu = p->bp_cpu;
	void *cpu_ctx = p->bp_cpu_ctx;
	while (p->bp_next < p->bp_n) {
		size_t i = p->bp_next++;
		broker_pool_fn fn = p->bp_fn;
		void *ctx = p->bp_ctx;
		pthread_mutex_unlock(&p->bp_lock);
		fn(ctx, i);
		pthread_mutex_lock(&p->bp_lock);
		if (++p->bp_finished == p->bp_n)
			pthread_cond_broadcast(&p->bp_done);
	}
	if (cpu)
		cpu(cpu_ctx, thread_cpu_ns() - t0);
}

/* yield_to_the_rest lowers the calling thread's priority BROKER_POOL_NICE
 * nice steps below what it inherited (on Linux a thread's nice value is its
 * own). Under load the verify pool keeps every core busy with the next
 * batch's signatures; the committer, the main thread and ZeroMQ's I/O
 * thread, which carry the receipts of the batch before, then get a core
 * when they need one instead of a fair share beside three verifying
 * threads: a lower receipt latency under load (docs/performance.md, the
 * sixth pass). A failure leaves the priority as it was. */
static void yield_to_the_rest(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (nice == -1 && errno != 0)
		return;
	nice = nice + BROKER_POOL_NICE > 19 ? 19 : nice + BROKER_POOL_NICE;
	(void)setpriority(PRIO_PROCESS, (id_t)tid, nice);
}

static void *pool_thread(void *arg)
{
	broker_pool *p = arg;
	unsigned long seen = 0;
	yield_to_the_rest();
	pthread_mutex_lock(&p->bp_lock);
	p->bp_ready++; /* broker_pool_start waits for it */
	pthread_cond_broadcast(&p->bp_done);
	for (;;) {
		while (!p->bp_stop && p->bp_generation == seen)
			pthread_cond_wait(&p->bp_work, &p->bp_lock);
		if (p->bp_stop)
			break;
		seen = p->bp_generation;
		take_jobs(p);
	}
	pthread_mutex_unlock(&p->bp_lock);
	return NULL;
}

rete_err broker_pool_start(broker_pool **out, unsigned threads)
{
	*out = NULL;
	broker_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return RETE_ENOMEM;
	pthread_mutex_init(&p->bp_lock, NULL);
	pthread_cond_init(&p->bp_work, NULL);
	pthread_cond_init(&p->bp_done, NULL);
	p->bp_threads = calloc(threads ? threads : 1, sizeof(*p->bp_threads));
	if (!p->bp_threads) {
		broker_pool_stop(&p);
		return RETE_ENOMEM;
	}
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->bp_threads[i], NULL, pool_thread, p) != 0)
			break; /* fewer threads: slower, still correct */
		pthread_setname_np(p->bp_threads[i], "rete-verify");
		p->bp_nthreads++;
	}
	/* return once every thread has lowered its priority: from the start,
	 * the pool runs as documented (and as `top -H` then shows) */
	pthread_mutex_lock(&p->bp_lock);
	while (p->bp_ready < p->bp_nthreads)
		pthread_cond_wait(&p->bp_done, &p->bp_lock);
	pthread_mutex_unlock(&p->bp_lock);
	*out = p;
	return RETE_OK;
}

void broker_pool_count_cpu(broker_pool *p, broker_pool_cpu_fn fn, void *ctx)
{
	pthread_mutex_lock(&p->bp_lock);
	p->bp_cpu = fn;
	p->bp_cpu_ctx = ctx;
	pthread_mutex_unlock(&p->bp_lock);
}

void broker_pool_begin(broker_pool *p, size_t n, broker_pool_fn fn, void *ctx)
{
	if (n == 0)
		return;
	if (n < 4) { /* not worth waking anyone */
		uint64_t t0 = p->bp_cpu ? thread_cpu_ns() : 0;
		for (size_t i = 0; i < n; i++)
			fn(ctx, i);
		if (p->bp_cpu)
			p->bp_cpu(p->bp_cpu_ctx, thread_cpu_ns() - t0);
		return;
	}
	pthread_mutex_lock(&p->bp_lock);
	p->bp_fn = fn;
	p->bp_ctx = ctx;
	p->bp_n = n;
	p->bp_next = 0;
	p->bp_finished = 0;
	p->bp_generation++;
	pthread_cond_broadcast(&p->bp_work);
	pthread_mutex_unlock(&p->bp_lock);
}

void broker_pool_end(broker_pool *p)
{
	pthread_mutex_lock(&p->bp_lock);
	/* The caller does what the threads have not taken yet rather than
	 * sleep until they have (all of it when there is no thread): on a
	 * machine with as many busy threads as cores, a thread that waits for
	 * another to be scheduled wastes both the wait and the wake-up. */
	take_jobs(p);
	while (p->bp_finished < p->bp_n)
		pthread_cond_wait(&p->bp_done, &p->bp_lock);
	p->bp_n = 0;
	p->bp_next = 0;
	p->bp_finished = 0;
	pthread_mutex_unlock(&p->bp_lock);
}

void broker_pool_stop(broker_pool **pp)
{
	if (!pp || !*pp)
		return;
	broker_pool *p = *pp;
	pthread_mutex_lock(&p->bp_lock);
	p->bp_stop = true;
	pthread_cond_broadcast(&p->bp_work);
	pthread_mutex_unlock(&p->bp_lock);
	for (unsigned i = 0; i < p->bp_nthreads; i++)
		pthread_join(p->bp_threads[i], NULL);
	free(p->bp_threads);
	pthread_cond_destroy(&p->bp_work);
	pthread_cond_destroy(&p->bp_done);
	pthread_mutex_destroy(&p->bp_lock);
	free(p);
	*pp = NULL;
}
