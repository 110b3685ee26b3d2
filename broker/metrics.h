/* metrics.h — the broker's Prometheus endpoint (broker.ini `metrics`, off
 * by default; docs/operations.md "Metrics" lists every metric).
 *
 * How it reads the main loop's data without blocking it:
 *  - counters (entries appended, submissions, refusals by code, deliveries,
 *    batches) are atomics the loop adds to where the event happens;
 *  - what the loop holds between frames (connections, last seen, the
 *    latest checkpoint, the log's epoch) is copied by the loop into a
 *    snapshot under a mutex, once per turn of the loop (a few dozen
 *    words; the HTTP thread holds the mutex only to copy it back out);
 *  - what the store holds (log size, queue depth and oldest undelivered
 *    entry per agency, map use) is read by the HTTP thread itself in a
 *    short read transaction of its own (LMDB readers never wait for the
 *    writer), and disk space with statvfs.
 * So a scrape costs the loop nothing but the snapshot copy.
 */
#ifndef RETE_BROKER_METRICS_H
#define RETE_BROKER_METRICS_H

#include <stdint.h>

#include "error.h"

typedef struct broker broker;
typedef struct broker_metrics broker_metrics;

/* The counters the loop adds to (broker_metrics_add). */
typedef enum broker_counter {
	BM_APPENDED,	     /* entries appended to the log (agencies' and the broker's own) */
	BM_ACCEPTED,	     /* submissions accepted (a receipt with a new index) */
	BM_DUPLICATE,	     /* submissions of bytes already logged (the original receipt) */
	BM_DELIVERED,	     /* DELIVER frames sent */
	BM_REDELIVERED,	     /* of them, sent again after `redeliver` without an ACK */
	BM_DELIVERY_LOGGED,  /* Delivery entries logged (acknowledged deliveries) */
	BM_DELIVERY_REFUSED, /* DELIVERY_REFUSED notices logged */
	BM_VERIFY_BATCHES,   /* batches whose signatures went to the verify pool */
	BM_VERIFIED,	     /* signatures verified there */
	BM_COMMITS,	     /* durable commits of a batch */
	BM_COMMIT_FAILED,    /* commits the store refused */
	BM_VERIFY_CPU_NS,    /* thread CPU spent verifying signatures (ns) */
	BM_NCOUNTERS
} broker_counter;

/* broker_metrics_start starts the endpoint of b's configuration (does
 * nothing, *out NULL, when `metrics` is not set). RETE_EIO/ENOMEM with a
 * sentence: the broker does not start without the endpoint asked for. */
rete_err broker_metrics_start(broker *b, broker_metrics **out, rete_msg *m);

/* broker_metrics_stop stops serving and frees *bm; NULL is fine. */
void broker_metrics_stop(broker_metrics **bm);

/* The latency histograms (broker_metrics_observe). */
typedef enum broker_hist {
	BH_COMMIT,  /* one durable commit of a batch, with its signatures */
	BH_RECEIPT, /* a submission: from its batch being read to its receipt sent */
	BH_NHISTS
} broker_hist;

/* broker_metrics_now_us: the monotonic clock in microseconds (for the
 * histograms' durations). */
int64_t broker_metrics_now_us(void);

/* broker_metrics_observe records n observations of us microseconds in
 * histogram h; bm NULL is fine. Safe from any thread (the committer's). */
void broker_metrics_observe(broker_metrics *bm, broker_hist h, int64_t us, uint64_t n);

/* broker_metrics_add adds n to counter c; bm NULL (metrics off) is fine. */
void broker_metrics_add(broker_metrics *bm, broker_counter c, uint64_t n);

/* broker_metrics_refused counts one refusal with error code `code`. */
void broker_metrics_refused(broker_metrics *bm, int code);

/* broker_metrics_tick copies the loop's state of b into the snapshot
 * (main thread only). */
void broker_metrics_tick(broker *b);

#endif
