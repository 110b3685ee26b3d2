/* pool.h — the verify pool: the broker's threads for the expensive step.
 *
 * Signature verification is the physical limit of the broker, so each
 * batch's signatures are checked by `verify_threads` threads of their own
 * while the main thread does everything else: broker_pool_begin hands out
 * the indexes of one batch to the pool's threads and returns at once; the
 * main thread answers the batch before (receipts, deliveries) meanwhile,
 * and broker_pool_end waits for the last job. Only one batch runs at a
 * time. A batch of fewer than 4 jobs (a quiet network) runs on the caller
 * inside broker_pool_begin: waking a thread would cost more latency than
 * it saves. broker_pool_end does the jobs no thread has taken yet on the
 * caller (all of them when no thread could be started) rather than sleep
 * until a thread is scheduled for them.
 */
#ifndef RETE_BROKER_POOL_H
#define RETE_BROKER_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct broker_pool broker_pool;

/* broker_pool_fn does job i of the batch; it runs on any thread. */
typedef void (*broker_pool_fn)(void *ctx, size_t i);

/* broker_pool_cpu_fn is told the CPU time (ns, of the thread that did
 * them) that jobs took; from any thread: it must be thread-safe. */
typedef void (*broker_pool_cpu_fn)(void *ctx, uint64_t ns);

/* broker_pool_count_cpu has fn told the thread CPU time of every run of
 * jobs, on whichever thread did them (the pool's or the caller's): the
 * broker's CPU spent verifying, whatever thread verified
 * (rete_broker_verify_cpu_seconds_total). fn NULL: not measured. */
void broker_pool_count_cpu(broker_pool *p, broker_pool_cpu_fn fn, void *ctx);

/* The pool's threads run this many nice steps below the thread that
 * started them (at most 19): the signatures of the next batch wait for a
 * core, the receipts of the batch before do not (pool.c). */
#define BROKER_POOL_NICE 5

/* broker_pool_start starts `threads` threads (named rete-verify, at
 * BROKER_POOL_NICE). *out is the caller's. RETE_ENOMEM. */
rete_err broker_pool_start(broker_pool **out, unsigned threads);

/* broker_pool_begin starts fn(ctx, i) for every i in [0, n) on the pool's
 * threads and returns; the jobs may run until broker_pool_end, which must
 * be called before the next begin. fn and ctx must stay valid until then. */
void broker_pool_begin(broker_pool *p, size_t n, broker_pool_fn fn, void *ctx);

/* broker_pool_end returns when every job of the batch has returned. */
void broker_pool_end(broker_pool *p);

/* broker_pool_stop stops and joins the threads, frees *p, sets it to NULL;
 * NULL is fine. A batch begun must have ended. */
void broker_pool_stop(broker_pool **p);

#endif
