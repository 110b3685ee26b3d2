/* monitor_session.h — the coordinator's live session with the broker, shared
 * by `rete monitor` and `rete console`: the events subscription and the query
 * connection, the monitor state (monitor.h) kept exact from a snapshot plus
 * the events (subscribe first, then the snapshot, then events in order; a gap
 * takes a new snapshot), and the health query every few seconds.
 */
#ifndef RETE_CLI_MONITOR_SESSION_H
#define RETE_CLI_MONITOR_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "coord_config.h"
#include "error.h"
#include "monitor.h"
#include "wire.h"

#define MON_HEALTH_EVERY_MS 5000
#define MON_BACKFILL_MAX    5000 /* entries read back for the rate panel */

struct mon_ctx {
	coord_config cfg;
	rete_wire *dealer, *sub;
	monitor *mo;
	monitor_filter filter;
	char error[512]; /* the latest problem, shown in the live view */
	int64_t last_health;
	uint64_t snapshots; /* how many were loaded (gaps make more) */
	FILE *trace;	    /* RETE_MONITOR_TRACE=1: every event and snapshot on stderr */
	/* called with every event received (applied or not), when set */
	void (*on_event)(void *arg, const Rete__Event *ev);
	void *on_event_arg;
};

/* mon_mono_ms: the monotonic clock in milliseconds. */
int64_t mon_mono_ms(void);

/* mon_snapshot asks the broker for a snapshot and loads it into c->mo. */
rete_err mon_snapshot(struct mon_ctx *c, rete_msg *m);

/* mon_drain applies every event already queued on the subscription; *changed
 * (may be NULL) is set when the state moved. */
rete_err mon_drain(struct mon_ctx *c, bool *changed, rete_msg *m);

/* mon_start subscribes (when [client] events is set; need_events: it must
 * be), waits until the subscription is connected, connects the query
 * socket and loads the first snapshot. */
rete_err mon_start(struct mon_ctx *c, bool need_events, rete_msg *m);

#endif
