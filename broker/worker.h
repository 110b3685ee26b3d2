/* worker.h — the committer: one background job at a time, for the
 * broker's durable commits.
 *
 * A commit waits for the disk (fsync) and signs the batch's receipts; the
 * main thread need not wait for it. It hands the batch to the worker with
 * broker_worker_post and goes on reading and verifying the next batch; the
 * worker runs the job on its own thread and then makes broker_worker_fd
 * readable, so that the main thread's poll wakes to answer the batch. At
 * most one job is in flight: broker_worker_wait collects it (blocking until
 * it has finished) before the next may be posted. Without a thread (one
 * could not be started) the job runs inside broker_worker_post: slower,
 * the same results.
 */
#ifndef RETE_BROKER_WORKER_H
#define RETE_BROKER_WORKER_H

#include <stdbool.h>

#include "error.h"

typedef struct broker_worker broker_worker;

/* broker_worker_fn is the job; it runs on the worker's thread. */
typedef void (*broker_worker_fn)(void *ctx);

/* broker_worker_start starts the worker's thread. *out is the caller's;
 * RETE_ENOMEM when not even the struct could be had (a thread that cannot
 * be started leaves a worker that runs jobs inline). */
rete_err broker_worker_start(broker_worker **out);

/* broker_worker_post runs fn(ctx) on the worker. The worker must be idle
 * (nothing posted, or the last job collected by broker_worker_wait). */
void broker_worker_post(broker_worker *w, broker_worker_fn fn, void *ctx);

/* broker_worker_busy: was a job posted and not yet collected? */
bool broker_worker_busy(const broker_worker *w);

/* broker_worker_wait blocks until the posted job has finished and collects
 * it: the worker is idle afterwards. Returns at once when nothing is
 * posted. */
void broker_worker_wait(broker_worker *w);

/* broker_worker_fd is readable while a finished job waits to be collected
 * (-1 for a worker without a thread: its jobs finish inside post). */
int broker_worker_fd(const broker_worker *w);

/* broker_worker_stop collects any job, stops and joins the thread, frees
 * *w and sets it to NULL; NULL is fine. */
void broker_worker_stop(broker_worker **w);

#endif
