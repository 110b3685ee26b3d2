/* monitor_session.c — see monitor_session.h. */
#include "monitor_session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

int64_t mon_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* mon_rate_backfill counts, for the entries-per-minute panel, the log
 * entries below the snapshot's size that the monitor has not counted yet
 * (at most the last MON_BACKFILL_MAX: older ones are past any minute
 * shown), reading their times from the broker's entries. When the broker
 * does not give them, the referrals' histories stand in. */
static void mon_rate_backfill(struct mon_ctx *c, const Rete__Snapshot *sn)
{
	uint64_t lo = monitor_rate_floor(c->mo), size = sn->log_size;

	if (size > MON_BACKFILL_MAX && lo < size - MON_BACKFILL_MAX)
		lo = size - MON_BACKFILL_MAX;
	while (lo < size) {
		Rete__Query q = RETE__QUERY__INIT;
		Rete__EntriesQuery eq = RETE__ENTRIES_QUERY__INIT;
		Rete__BrokerFrame *f = NULL;
		eq.from = lo;
		eq.count = size - lo;
		q.what_case = RETE__QUERY__WHAT_ENTRIES;
		q.entries = &eq;
		if (rete_wire_call(c->dealer, &q, c->cfg.timeout_ms, &f, NULL) != RETE_OK ||
		    f->command_case != RETE__BROKER_FRAME__COMMAND_RESULT ||
		    f->result->answer_case != RETE__QUERY_RESULT__ANSWER_ENTRIES ||
		    f->result->entries->from != lo || f->result->entries->n_entries == 0) {
			if (f != NULL)
				rete__broker_frame__free_unpacked(f, NULL);
			monitor_rate_from_history(c->mo, sn);
			return;
		}
		const Rete__Entries *e = f->result->entries;
		for (size_t i = 0; i < e->n_entries && lo < size; i++, lo++) {
			/* only the entry's index and time are read */
			Rete__LogEntry *le =
			    rete__log_entry__unpack(NULL, e->entries[i].len, e->entries[i].data);
			if (le != NULL && le->index == lo)
				monitor_rate_entry(c->mo, le->index, le->logged_at);
			if (le != NULL)
				rete__log_entry__free_unpacked(le, NULL);
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
}

/* mon_snapshot asks for a snapshot and loads it. */
rete_err mon_snapshot(struct mon_ctx *c, rete_msg *m)
{
	Rete__BrokerFrame *f = NULL;
	rete_err err = coord_query(&c->cfg, c->dealer, RETE__QUERY__WHAT_SNAPSHOT, &f, m);

	if (err != RETE_OK)
		return err;
	err = monitor_load_snapshot(c->mo, f->result->snapshot, m);
	if (c->trace != NULL)
		fprintf(c->trace, "snapshot: log size %llu, %zu referrals\n",
			(unsigned long long)f->result->snapshot->log_size,
			f->result->snapshot->n_referrals);
	if (err == RETE_OK)
		mon_rate_backfill(c, f->result->snapshot);
	rete__broker_frame__free_unpacked(f, NULL);
	if (err == RETE_OK)
		c->snapshots++;
	return err;
}

static const char *mon_apply_name(monitor_apply r)
{
	static const char *const names[] = {"applied", "old", "gap", "ignored", "no memory"};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

/* mon_event applies one event; a gap loads a new snapshot and the event is
 * offered again (it is then either in the snapshot or the next one). */
static rete_err mon_event(struct mon_ctx *c, const Rete__Event *ev, rete_msg *m)
{
	monitor_apply r = monitor_apply_event(c->mo, ev);
	rete_err err;

	if (c->on_event != NULL)
		c->on_event(c->on_event_arg, ev);

	if (c->trace != NULL)
		fprintf(c->trace, "event %llu %s: %s (next %llu)\n", (unsigned long long)ev->index,
			ev->kind ? ev->kind : "", mon_apply_name(r),
			(unsigned long long)monitor_next_index(c->mo));

	if (r == MONITOR_NOMEM)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	if (r != MONITOR_GAP)
		return RETE_OK;
	if ((err = mon_snapshot(c, m)) != RETE_OK)
		return err;
	r = monitor_apply_event(c->mo, ev);
	return r == MONITOR_NOMEM ? rete_msg_set(m, RETE_ENOMEM, "out of memory") : RETE_OK;
}

/* mon_drain applies every event already queued on the subscription. */
rete_err mon_drain(struct mon_ctx *c, bool *changed, rete_msg *m)
{
	for (;;) {
		Rete__Event *ev = NULL;
		rete_err err = rete_wire_event_recv(c->sub, 0, &ev, m);
		if (err == RETE_ETIMEDOUT)
			return RETE_OK;
		if (err == RETE_EDECODE)
			continue; /* dropped by the wire; the index gap will show */
		if (err != RETE_OK)
			return err;
		uint64_t before = monitor_next_index(c->mo);
		err = mon_event(c, ev, m);
		if (monitor_next_index(c->mo) != before && changed != NULL)
			*changed = true;
		rete__event__free_unpacked(ev, NULL);
		if (err != RETE_OK)
			return err;
	}
}

/* mon_start: subscribe, wait until the subscription is connected (so that
 * events from now on reach us), then load the first snapshot. */
rete_err mon_start(struct mon_ctx *c, bool need_events, rete_msg *m)
{
	rete_err err;

	if (c->cfg.events != NULL && c->cfg.events[0] != '\0') {
		if ((err = coord_connect(&c->cfg, true, &c->sub, m)) != RETE_OK)
			return err;
		int64_t deadline = mon_mono_ms() + c->cfg.timeout_ms;
		while (!rete_wire_connected(c->sub)) {
			Rete__Event *ev = NULL;
			if (mon_mono_ms() > deadline)
				return rete_msg_set(
				    m, RETE_ETIMEDOUT,
				    "the broker's events at %s did not connect within "
				    "%d s; is the broker running, is [client] events "
				    "right, and is [client] broker_key (%s) its public "
				    "key? (with another key the connection never opens, "
				    "without a word)",
				    c->cfg.events, c->cfg.timeout_ms / 1000,
				    c->cfg.broker_key_path);
			/* before the snapshot every event is in it: drop them */
			err = rete_wire_event_recv(c->sub, 50, &ev, m);
			if (err == RETE_OK)
				rete__event__free_unpacked(ev, NULL);
			else if (err != RETE_ETIMEDOUT && err != RETE_EDECODE)
				return err;
		}
	} else if (need_events) {
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: [client] events is missing; the live view needs the "
				    "broker's events endpoint",
				    c->cfg.ini_path);
	}
	if ((err = coord_connect(&c->cfg, false, &c->dealer, m)) != RETE_OK)
		return err;
	if ((err = mon_snapshot(c, m)) != RETE_OK)
		return err;
	c->last_health = mon_mono_ms();
	return c->sub != NULL ? mon_drain(c, NULL, m) : RETE_OK;
}
