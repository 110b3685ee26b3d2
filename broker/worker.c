/* worker.c — see worker.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "worker.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct broker_worker {
	pthread_mutex_t bw_lock;
	pthread_cond_t bw_cond; /* a job posted, finished, or stop */
	pthread_t bw_thread;
	bool bw_threaded;
	int bw_fd; /* eventfd: one count per finished job, read when collected */
	broker_worker_fn bw_fn;
	void *bw_ctx;
	bool bw_posted;	  /* the thread has a job to run */
	bool bw_finished; /* it ran it */
	bool bw_busy;	  /* posted and not collected (main thread's view) */
	bool bw_stop;
};

static void *worker_thread(void *arg)
{
	broker_worker *w = arg;
	pthread_mutex_lock(&w->bw_lock);
	for (;;) {
		while (!w->bw_posted && !w->bw_stop)
			pthread_cond_wait(&w->bw_cond, &w->bw_lock);
		if (!w->bw_posted) /* stop, nothing left to run */
			break;
		broker_worker_fn fn = w->bw_fn;
		void *ctx = w->bw_ctx;
		pthread_mutex_unlock(&w->bw_lock);
		fn(ctx);
		pthread_mutex_lock(&w->bw_lock);
		w->bw_posted = false;
		w->bw_finished = true;
		pthread_cond_broadcast(&w->bw_cond);
		uint64_t one = 1;
		if (write(w->bw_fd, &one, sizeof(one)) < 0) {
			/* only with a full counter (2^64 - 2 jobs); broker_worker_wait
			 * does not depend on it */
		}
	}
	pthread_mutex_unlock(&w->bw_lock);
	return NULL;
}

rete_err broker_worker_start(broker_worker **out)
{
	*out = NULL;
	broker_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return RETE_ENOMEM;
	pthread_mutex_init(&w->bw_lock, NULL);
	pthread_cond_init(&w->bw_cond, NULL);
	w->bw_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->bw_fd >= 0 && pthread_create(&w->bw_thread, NULL, worker_thread, w) == 0) {
		w->bw_threaded = true;
		pthread_setname_np(w->bw_thread, "rete-commit"); /* for top -H, perf */
	}
	else if (w->bw_fd >= 0) {
		close(w->bw_fd);
		w->bw_fd = -1;
	}
	*out = w;
	return RETE_OK;
}

void broker_worker_post(broker_worker *w, broker_worker_fn fn, void *ctx)
{
	if (!w->bw_threaded) {
		fn(ctx);
		return;
	}
	pthread_mutex_lock(&w->bw_lock);
	w->bw_fn = fn;
	w->bw_ctx = ctx;
	w->bw_posted = true;
	w->bw_finished = false;
	w->bw_busy = true;
	pthread_cond_broadcast(&w->bw_cond);
	pthread_mutex_unlock(&w->bw_lock);
}

bool broker_worker_busy(const broker_worker *w)
{
	return w->bw_busy;
}

void broker_worker_wait(broker_worker *w)
{
	if (!w->bw_busy)
		return;
	pthread_mutex_lock(&w->bw_lock);
	while (!w->bw_finished)
		pthread_cond_wait(&w->bw_cond, &w->bw_lock);
	w->bw_finished = false;
	w->bw_busy = false;
	uint64_t count;
	/* the thread wrote before it let go of the lock: the count is there */
	if (read(w->bw_fd, &count, sizeof(count)) != (ssize_t)sizeof(count))
		count = 0;
	pthread_mutex_unlock(&w->bw_lock);
}

int broker_worker_fd(const broker_worker *w)
{
	return w->bw_threaded ? w->bw_fd : -1;
}

void broker_worker_stop(broker_worker **pw)
{
	if (!pw || !*pw)
		return;
	broker_worker *w = *pw;
	broker_worker_wait(w);
	if (w->bw_threaded) {
		pthread_mutex_lock(&w->bw_lock);
		w->bw_stop = true;
		pthread_cond_broadcast(&w->bw_cond);
		pthread_mutex_unlock(&w->bw_lock);
		pthread_join(w->bw_thread, NULL);
	}
	if (w->bw_fd >= 0)
		close(w->bw_fd);
	pthread_cond_destroy(&w->bw_cond);
	pthread_mutex_destroy(&w->bw_lock);
	free(w);
	*pw = NULL;
}
