/* pool.h — the verify pool: the broker's threads for the expensive step.
 *
 * Signature verification is the physical limit of the broker, so each
 * batch's signatures are checked on every core: broker_pool_run hands out
 * the indexes of one batch to the pool's threads and to the caller, and
 * returns when all are done. Only one batch runs at a time.
 */
#ifndef RETE_BROKER_POOL_H
#define RETE_BROKER_POOL_H

#include <stddef.h>

#include "error.h"

typedef struct broker_pool broker_pool;

/* broker_pool_fn does job i of the batch; it runs on any thread. */
typedef void (*broker_pool_fn)(void *ctx, size_t i);

/* broker_pool_start starts threads - 1 helper threads (the caller of
 * broker_pool_run is the last one). *out is the caller's. RETE_ENOMEM. */
rete_err broker_pool_start(broker_pool **out, unsigned threads);

/* broker_pool_run runs fn(ctx, i) for every i in [0, n) and returns when
 * all have returned. */
void broker_pool_run(broker_pool *p, size_t n, broker_pool_fn fn, void *ctx);

/* broker_pool_stop stops and joins the threads, frees *p, sets it to NULL;
 * NULL is fine. */
void broker_pool_stop(broker_pool **p);

#endif
