/* agent_undelivered.c — see agent_undelivered.h. */
#include "agent_undelivered.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent.h"
#include "agent_metrics.h"
#include "agent_track.h"
#include "duration.h"
#include "json.h"

/* How often the held messages are looked at: their ages count in days, and
 * each look reads every held record and its id record (review rev-held
 * s17, 5). Nothing is judged before the connection has been welcomed for
 * as long without a break: what the broker queued for this agent while it
 * was stopped or cut off (delivery receipts, withdrawal notices) comes
 * first (review rev-held s17, 2). Both are UND_HEARTBEATS of [agent]
 * heartbeat (60 s by its default of 10 s; never under 1 s). */
#define UND_HEARTBEATS 6

static int64_t und_every_ms(const agent *a)
{
	int64_t ms = UND_HEARTBEATS * a->cfg.heartbeat_ms;
	return ms < 1000 ? 1000 : ms;
}

/* und_mono_ms: the monotonic clock, so that a step of the wall clock does
 * not stop the looks (review rev-held s17, 7). */
static int64_t und_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* und_expiry_record keeps meta "dir_expiry" equal to the expiry of the
 * directory in force (written only when it changes), and returns the
 * expiry to judge by: the directory's, or, before this run's WELCOME, the
 * one recorded (0: none known). */
static int64_t und_expiry_record(agent *a)
{
	if (a->dir == NULL || a->dir->dir == NULL || a->dir->dir->expiry_ms <= 0) {
		if (a->undelivered_expiry <= 0)
			a->undelivered_expiry = agent_track_expiry(a->db);
		return a->undelivered_expiry;
	}
	int64_t exp = a->dir->dir->expiry_ms;
	if (exp == a->undelivered_expiry)
		return exp;
	if (agent_track_expiry(a->db) != exp) {
		char buf[24];
		rete_msg m = {{0}};
		snprintf(buf, sizeof(buf), "%" PRId64, exp);
		if (agent_db_put(a->db, AGENT_DB_META, AGENT_META_DIR_EXPIRY,
				 strlen(AGENT_META_DIR_EXPIRY), buf, strlen(buf), &m) != RETE_OK) {
			agent_log(a, "error",
				  "the directory's expiry (%s ms) cannot be recorded for rete "
				  "status: %s; tried again in a few seconds",
				  buf, m.text);
			return exp;
		}
	}
	a->undelivered_expiry = exp;
	return exp;
}

static bool und_in(json_t *arr, const char *id)
{
	size_t i;
	json_t *it;
	json_array_foreach(arr, i, it)
	{
		const char *s = json_string_value(it);
		if (s != NULL && strcmp(s, id) == 0)
			return true;
	}
	return false;
}

/* und_what names the message for the log: "referral R", "update of
 * referral R", or its kind alone. */
static void und_what(const agent_undelivered *u, char *buf, size_t n)
{
	if (strcmp(u->kind, "referral") == 0 && u->referral[0])
		snprintf(buf, n, "referral %s", u->referral);
	else if (u->referral[0])
		snprintf(buf, n, "%s of referral %s", u->kind, u->referral);
	else
		snprintf(buf, n, "%s", u->kind);
}

void agent_undelivered_free(agent *a)
{
	json_decref(a->undelivered_said);
	a->undelivered_said = NULL;
}

void agent_undelivered_tick(agent *a, int64_t now)
{
	if (a->db == NULL)
		return;
	/* at every turn (a comparison, unless it changed): `rete status`
	 * judges by it as soon as the agent holds a directory */
	int64_t expiry = und_expiry_record(a);
	int64_t mono = und_mono_ms();
	if (!agent_net_ready(a)) {
		a->undelivered_ready = 0;
		return;
	}
	if (a->undelivered_ready == 0) {
		a->undelivered_ready = mono;
		if (a->undelivered_next < mono + und_every_ms(a))
			a->undelivered_next = mono + und_every_ms(a);
	}
	if (mono < a->undelivered_next)
		return;
	a->undelivered_next = mono + und_every_ms(a);

	agent_undelivered *u = NULL;
	size_t n = 0;
	rete_msg m = {{0}};
	if (agent_track_undelivered(a->db, &u, &n, &m) != RETE_OK) {
		agent_log(a, "error", "held messages cannot be read to judge their age: %s",
			  m.text);
		return;
	}
	if (a->undelivered_said == NULL)
		a->undelivered_said = json_array();
	json_t *said = agent_delivery_meta_array(a, AGENT_META_UNDELIVERED_SAID);
	json_t *keep = json_array();
	bool changed = a->undelivered_unstored;
	int64_t oldest = 0, limit_ms = expiry + RETE_CLOCK_SKEW_MS;
	uint64_t overdue = 0;
	for (size_t i = 0; i < n && keep != NULL; i++) {
		if (u[i].receipted_at <= 0)
			continue;
		if (oldest == 0 || u[i].receipted_at < oldest)
			oldest = u[i].receipted_at;
		int64_t age = now - u[i].receipted_at;
		/* past the expiry and the tolerance between two clocks: the
		 * broker's own expiry runs on its clock, and its notice follows
		 * its next scan (review rev-held s17, 4) */
		if (expiry <= 0 || age <= limit_ms)
			continue;
		overdue++;
		json_array_append_new(keep, json_string(u[i].id));
		if (und_in(said, u[i].id) || und_in(a->undelivered_said, u[i].id))
			continue;
		char what[300], span[32], limit[32], skew[32], at[32];
		und_what(&u[i], what, sizeof(what));
		agent_log(a, "warning",
			  "held message %s (%s) NOT DELIVERED after %s: the broker receipted it at "
			  "log index %" PRIu64
			  " (%s), and neither its delivery receipt nor a notice "
			  "that it was withdrawn has reached this agent, although the directory's "
			  "expiry is %s (judged after %s more, the tolerance between two clocks). "
			  "Either the broker withholds it, or it was delivered or withdrawn while "
			  "this agent was stopped for longer than the expiry and that receipt "
			  "expired at the broker: rete status shows what the broker says of it; "
			  "check rete health, or ask the broker's operator (the evidence: its "
			  "receipt, %s%s%s); said once",
			  u[i].id, what, agent_track_span(age, span), u[i].index,
			  rete_time_format(u[i].receipted_at, at), agent_track_span(expiry, limit),
			  agent_track_span(RETE_CLOCK_SKEW_MS, skew),
			  u[i].file ? "sent/" : "in sent/ with its messageId",
			  u[i].file ? u[i].file : "", u[i].file ? ".receipt.json" : "");
		changed = true;
	}
	/* forget the ids no longer held past the expiry (delivered, answered,
	 * or a longer expiry now): said again if they ever are; with no expiry
	 * known nothing is judged, and nothing forgotten. The ids are kept in
	 * memory too: a store that refuses the write does not make the agent
	 * say them again at every look (review rev-held s17, 6). */
	if (keep != NULL && expiry > 0) {
		if (json_array_size(keep) != json_array_size(said))
			changed = true;
		json_t *now_said = json_copy(keep);
		if (now_said != NULL) {
			json_decref(a->undelivered_said);
			a->undelivered_said = now_said;
		}
	}
	if (changed && keep != NULL) {
		a->undelivered_unstored =
		    agent_delivery_meta_store(a, AGENT_META_UNDELIVERED_SAID, keep, &m) != RETE_OK;
		if (a->undelivered_unstored)
			agent_log(a, "error",
				  "which held messages were said past the expiry cannot be "
				  "recorded: %s; kept in memory, so not said again while this "
				  "agent runs; the record is tried again at the next look",
				  m.text);
	}
	json_decref(keep);
	json_decref(said);
	agent_track_undelivered_free(u, n);
	agent_metrics_undelivered(a, oldest, overdue);
	if (!a->undelivered_looked) {
		char limit[32];
		agent_log(a, "info",
			  "held messages looked at (then every %lld s): %zu held, %" PRIu64
			  " past the directory's expiry (%s) and the tolerance between two "
			  "clocks",
			  (long long)(und_every_ms(a) / 1000), n, overdue,
			  expiry > 0 ? agent_track_span(expiry, limit) : "not known");
		a->undelivered_looked = true;
	}
}
