/* agent_metrics.h — the agent's Prometheus endpoint (agent.ini `metrics`,
 * off by default; docs/operations.md "Metrics" lists every metric).
 *
 * The agent is one thread around one poll loop; the endpoint answers on
 * libmicrohttpd's thread (proto/httpd.h). It never touches the agent's
 * state or its LMDB:
 *  - frame counters and times (receipts, refusals, deliveries) are atomics
 *    the loop adds to as the frames arrive (agent_net.c);
 *  - what needs the agent's database (messages held until their delivery
 *    receipt, the witness alarm) and the connection state are copied by
 *    the loop into atomics at most once a second (agent_metrics_tick);
 *  - the spool folders (outbox/, sent/, failed/, inbox/) are counted by the
 *    HTTP thread itself with readdir at each scrape.
 */
#ifndef RETE_AGENT_METRICS_H
#define RETE_AGENT_METRICS_H

#include <stdint.h>

#include "error.h"

struct agent;

/* What agent_net.c counts as frames arrive. */
typedef enum agent_metric_event {
	AM_RECEIPT,  /* a RECEIPT frame (acceptance or refusal of a submission) */
	AM_REFUSAL,  /* a REFUSAL frame */
	AM_DELIVERY, /* a DELIVER frame */
	AM_WELCOME,  /* a WELCOME: a (re)connection */
	AM_NEVENTS
} agent_metric_event;

/* agent_metrics_start starts the endpoint when agent.ini sets `metrics`
 * (nothing otherwise). RETE_EIO/ENOMEM with a sentence: the agent does not
 * start without the endpoint asked for. */
rete_err agent_metrics_start(struct agent *a, rete_msg *m);

/* agent_metrics_stop stops it (a scrape in progress finishes first). */
void agent_metrics_stop(struct agent *a);

/* agent_metrics_event counts one frame of kind ev, now (Unix ms). */
void agent_metrics_event(struct agent *a, agent_metric_event ev, int64_t now);

/* agent_metrics_taken_over records that another connection with our key
 * took the deliveries at `at` (Unix ms; agent_net.c): the gauge stays 1
 * until the agent is restarted. */
void agent_metrics_taken_over(struct agent *a, int64_t at);

/* agent_metrics_undelivered records what agent_undelivered_tick found:
 * when the oldest held message was receipted (Unix ms; 0: none held with a
 * known receipt time) and how many are past the directory's expiry. */
void agent_metrics_undelivered(struct agent *a, int64_t oldest_at, uint64_t overdue);

/* agent_metrics_tick refreshes the connection state every turn and, at
 * most once a second, the held count and the alarm (loop thread only). */
void agent_metrics_tick(struct agent *a, int64_t now);

#endif
