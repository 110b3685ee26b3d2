/* agent_metrics.c — see agent_metrics.h. */
#define _GNU_SOURCE
#include "agent_metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "agent.h"
#include "checkpoint.h"
#include "duration.h"
#include "httpd.h"
#include "version.h"

struct agent_metrics {
	rete_httpd *http;
	char id[RETE_ID_MAX + 1];
	char *dirs[4]; /* outbox, sent, failed, inbox */
	int64_t started_ms;
	_Atomic uint64_t events[AM_NEVENTS];
	_Atomic int64_t last_ms[AM_NEVENTS];  /* Unix ms of the latest; 0: none */
	_Atomic int connected;		      /* connected and welcomed */
	_Atomic uint64_t held;		      /* messages held until their delivery receipt */
	_Atomic int alarm;		      /* meta "alarm" is set */
	_Atomic int db_ok;		      /* the last tick could read the database */
	_Atomic uint64_t witness_size;	      /* the last checkpoint the witness verified */
	_Atomic uint64_t witness_pending;     /* own receipts not yet shown included */
	_Atomic uint64_t witness_delivered;   /* entries delivered to us, not yet shown */
	_Atomic uint64_t delivery_alarms;     /* meta "delivery_alarms" entries */
	_Atomic int witness_stalled;	      /* the oldest waited longer than witness_patience */
	_Atomic int64_t witness_oldest_ms;    /* when the oldest was recorded (0: none) */
	_Atomic uint64_t witness_oldest_size; /* its checkpoint's size */
	_Atomic int64_t taken_over_ms;	      /* another agent took our deliveries (0: no) */
	_Atomic int64_t und_oldest_ms;	      /* the oldest held message's receipt (0: none) */
	_Atomic uint64_t und_overdue;	      /* held past the directory's expiry */
	int64_t next_db_ms;		      /* loop only */
};

static const char *const sub_names[4] = {"outbox", "sent", "failed", "inbox"};

void agent_metrics_event(agent *a, agent_metric_event ev, int64_t now)
{
	struct agent_metrics *am = a->metrics;
	if (!am)
		return;
	atomic_fetch_add_explicit(&am->events[ev], 1, memory_order_relaxed);
	atomic_store_explicit(&am->last_ms[ev], now, memory_order_relaxed);
}

void agent_metrics_taken_over(agent *a, int64_t at)
{
	struct agent_metrics *am = a->metrics;
	if (am)
		atomic_store_explicit(&am->taken_over_ms, at, memory_order_relaxed);
}

void agent_metrics_undelivered(agent *a, int64_t oldest_at, uint64_t overdue)
{
	struct agent_metrics *am = a->metrics;
	if (!am)
		return;
	atomic_store_explicit(&am->und_oldest_ms, oldest_at, memory_order_relaxed);
	atomic_store_explicit(&am->und_overdue, overdue, memory_order_relaxed);
}

static bool count_one(const void *k, size_t kl, const void *v, size_t vl, void *user)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	(*(uint64_t *)user)++;
	return true;
}

/* count_witness counts the witness records: [0] our receipts (8-byte
 * keys), [1] the entries delivered to us ('d' + index, agent_witness.c). */
static bool count_witness(const void *k, size_t kl, const void *v, size_t vl, void *user)
{
	(void)k;
	(void)v;
	(void)vl;
	((uint64_t *)user)[kl == 8 ? 0 : 1]++;
	return true;
}

/* delivery_alarms: how many delivery receipts did not hold (meta
 * "delivery_alarms", agent_delivery.c). */
static uint64_t delivery_alarms(agent_db *db)
{
	rete_buf v = {0};
	uint64_t n = 0;
	if (agent_db_get(db, AGENT_DB_META, AGENT_META_DELIVERY_ALARMS,
			 strlen(AGENT_META_DELIVERY_ALARMS), &v, NULL) == RETE_OK) {
		json_t *arr = json_loadb((const char *)v.data, v.len, 0, NULL);
		n = json_is_array(arr) ? json_array_size(arr) : 0;
		json_decref(arr);
	}
	rete_buf_free(&v);
	return n;
}

void agent_metrics_tick(agent *a, int64_t now)
{
	struct agent_metrics *am = a->metrics;
	if (!am)
		return;
	atomic_store_explicit(&am->connected, agent_net_ready(a), memory_order_relaxed);
	/* the witness's own look at its pending receipts (once a second) */
	int64_t oldest_ms = 0;
	uint64_t oldest_size = 0;
	bool stalled = agent_witness_stall(a, &oldest_ms, &oldest_size);
	atomic_store_explicit(&am->witness_stalled, stalled, memory_order_relaxed);
	atomic_store_explicit(&am->witness_oldest_ms, oldest_ms, memory_order_relaxed);
	atomic_store_explicit(&am->witness_oldest_size, oldest_size, memory_order_relaxed);
	/* a look due more than a second ahead: the wall clock stepped back;
	 * look now rather than freeze for as long as the step (review
	 * rev-held s17, 7) */
	if ((now < am->next_db_ms && am->next_db_ms - now <= 1000) || !a->db)
		return;
	am->next_db_ms = now + 1000;
	uint64_t held = 0, pending[2] = {0, 0};
	rete_buf alarm = {0}, note = {0};
	bool ok = agent_db_each(a->db, AGENT_DB_HELD, count_one, &held, NULL) == RETE_OK &&
		  agent_db_each(a->db, AGENT_DB_WITNESS, count_witness, pending, NULL) == RETE_OK;
	rete_err err = agent_db_get(a->db, AGENT_DB_META, "alarm", 5, &alarm, NULL);
	ok = ok && (err == RETE_OK || err == RETE_ENOENT);
	/* the witness's last verified checkpoint (meta "checkpoint") */
	rete_checkpoint cp = {0};
	rete_err cerr = agent_db_get(a->db, AGENT_DB_META, "checkpoint", 10, &note, NULL);
	if (cerr == RETE_OK &&
	    rete_checkpoint_parse((const char *)note.data, note.len, &cp, NULL) != RETE_OK)
		cerr = RETE_ECORRUPT;
	ok = ok && (cerr == RETE_OK || cerr == RETE_ENOENT);
	if (ok) {
		atomic_store_explicit(&am->held, held, memory_order_relaxed);
		atomic_store_explicit(&am->alarm, err == RETE_OK, memory_order_relaxed);
		atomic_store_explicit(&am->witness_size, cp.size, memory_order_relaxed);
		atomic_store_explicit(&am->witness_pending, pending[0], memory_order_relaxed);
		atomic_store_explicit(&am->witness_delivered, pending[1], memory_order_relaxed);
		atomic_store_explicit(&am->delivery_alarms, delivery_alarms(a->db),
				      memory_order_relaxed);
	}
	atomic_store_explicit(&am->db_ok, ok, memory_order_relaxed);
	rete_buf_free(&alarm);
	rete_buf_free(&note);
}

/* --- the answer -------------------------------------------------------------------- */

/* spool_count counts the files of dir an operator would see there (not
 * the agent's temporary dot-files) and the newest one's mtime. */
static bool spool_count(const char *dir, uint64_t *n, int64_t *newest_ms)
{
	*n = 0;
	*newest_ms = 0;
	DIR *d = opendir(dir);
	if (!d)
		return false;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		(*n)++;
		int64_t ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		if (ms > *newest_ms)
			*newest_ms = ms;
	}
	closedir(d);
	return true;
}

static void head(rete_http_answer *a, const char *name, const char *type, const char *help)
{
	rete_http_printf(a, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(rete_http_answer *a, const char *name, const char *type, const char *help,
		uint64_t v)
{
	head(a, name, type, help);
	rete_http_printf(a, "%s %" PRIu64 "\n", name, v);
}

static void one_f(rete_http_answer *a, const char *name, const char *type, const char *help,
		  double v)
{
	head(a, name, type, help);
	rete_http_printf(a, "%s %.3f\n", name, v);
}

static void serve(void *ctx, const char *path, rete_http_answer *a)
{
	struct agent_metrics *am = ctx;
	(void)path;
	a->content_type = "text/plain; version=0.0.4; charset=utf-8";
	head(a, "rete_build_info", "gauge",
	     "The program's release, git commit, protocol and store schema (always 1).");
	rete_http_printf(a,
			 "rete_build_info{program=\"rete-agent\",version=\"%s\",commit=\"%s\","
			 "protocol=\"%" PRIu32 "\",schema=\"%" PRIu32 "\"} 1\n",
			 rete_version(), rete_version_commit(), rete_version_protocol(),
			 rete_version_store_schema());
	head(a, "rete_agent_info", "gauge", "The agency this agent serves (always 1).");
	rete_http_printf(a, "rete_agent_info{agency=\"");
	rete_http_label(a, am->id);
	rete_http_printf(a, "\"} 1\n");
	one_f(a, "rete_agent_start_time_seconds", "gauge",
	      "When this agent process started (Unix time).", (double)am->started_ms / 1000.0);
	one(a, "rete_agent_connected", "gauge",
	    "1 when connected to the broker and welcomed (the directory received).",
	    (uint64_t)atomic_load(&am->connected));
	one(a, "rete_agent_alarm", "gauge",
	    "1 when the witness alarm is raised (the broker's log did not match what it showed "
	    "before; docs/operations.md says what to do).",
	    (uint64_t)atomic_load(&am->alarm));
	one(a, "rete_agent_held_messages", "gauge",
	    "Messages sent and kept until their delivery receipt reaches the inbox.",
	    atomic_load(&am->held));
	one(a, "rete_agent_witness_checkpoint_size", "gauge",
	    "Size of the last broker checkpoint this agent verified as a witness (0: none yet).",
	    atomic_load(&am->witness_size));
	one(a, "rete_agent_witness_pending_receipts", "gauge",
	    "This agency's receipts not yet shown included in a verified checkpoint.",
	    atomic_load(&am->witness_pending));
	one(a, "rete_agent_witness_pending_deliveries", "gauge",
	    "Entries of other agencies delivered to this agent whose inclusion in a verified "
	    "checkpoint is not yet checked (docs/agent.md, \"What was delivered\").",
	    atomic_load(&am->witness_delivered));
	one(a, "rete_agent_delivery_alarms", "gauge",
	    "Delivery receipts of ours that the recipient did not sign (DELIVERY ALARM in the log; "
	    "rete status shows them; docs/agent.md, \"Delivery receipts\").",
	    atomic_load(&am->delivery_alarms));
	one(a, "rete_agent_witness_stalled", "gauge",
	    "1 when a receipt has waited longer than witness_patience to be shown on the "
	    "broker's log (a warning in the log says which; docs/agent.md, Witness).",
	    (uint64_t)atomic_load(&am->witness_stalled));
	one_f(a, "rete_agent_witness_oldest_pending_timestamp_seconds", "gauge",
	      "When the oldest receipt not yet shown on the log was recorded (Unix time; 0: "
	      "none pending).",
	      (double)atomic_load(&am->witness_oldest_ms) / 1000.0);
	one(a, "rete_agent_witness_oldest_pending_checkpoint_size", "gauge",
	    "The size of that receipt's checkpoint (0: none pending, or an older agent's "
	    "record); larger than rete_agent_witness_checkpoint_size: it waits for the broker "
	    "to show a checkpoint that large.",
	    atomic_load(&am->witness_oldest_size));
	/* the age at the scrape, from the receipt's time: it grows between
	 * the agent's looks (agent_undelivered.c) */
	int64_t oldest = atomic_load(&am->und_oldest_ms), now = rete_now_ms();
	one_f(a, "rete_agent_undelivered_oldest_age_seconds", "gauge",
	      "Age of the oldest message this agency sent that the broker receipted and whose "
	      "delivery receipt or withdrawal notice has not reached this agent (0: none); past "
	      "the directory's expiry and 5 min it is in "
	      "rete_agent_undelivered_overdue_messages (docs/agent.md, \"Not delivered after "
	      "the expiry\").",
	      oldest > 0 && now > oldest ? (double)(now - oldest) / 1000.0 : 0.0);
	one(a, "rete_agent_undelivered_overdue_messages", "gauge",
	    "Messages receipted with no delivery receipt or withdrawal notice after the "
	    "directory's expiry and 5 min: withheld by the broker, or delivered while this "
	    "agent was stopped longer than the expiry (a warning in the log names each, once; "
	    "rete status shows them with what the broker says).",
	    atomic_load(&am->und_overdue));
	int64_t taken = atomic_load(&am->taken_over_ms);
	one(a, "rete_agent_taken_over", "gauge",
	    "1 when another agent with this agency's key took its deliveries (the broker said "
	    "TAKEN_OVER; an error in the log says from where): two agents run with one key. "
	    "Stays 1 until this agent is restarted.",
	    taken != 0);
	one_f(a, "rete_agent_taken_over_timestamp_seconds", "gauge",
	      "When another agent with this agency's key took its deliveries (Unix time; 0: "
	      "not since the start).",
	      (double)taken / 1000.0);
	one(a, "rete_agent_database_readable", "gauge",
	    "1 when the agent's last look at its database (held, alarm) succeeded.",
	    (uint64_t)atomic_load(&am->db_ok));

	static const struct {
		agent_metric_event ev;
		const char *count, *last, *help_count, *help_last;
	} evs[] = {
	    {AM_RECEIPT, "rete_agent_receipts_total", "rete_agent_last_receipt_timestamp_seconds",
	     "RECEIPT frames received from the broker (acceptances and refusals of submissions).",
	     "When the latest RECEIPT frame came (Unix time; 0: none since the start)."},
	    {AM_REFUSAL, "rete_agent_refusals_total", "rete_agent_last_refusal_timestamp_seconds",
	     "REFUSAL frames received (a frame the broker would not take).",
	     "When the latest REFUSAL frame came (Unix time; 0: none since the start)."},
	    {AM_DELIVERY, "rete_agent_deliveries_total",
	     "rete_agent_last_delivery_timestamp_seconds",
	     "DELIVER frames received (messages for this agency, resends included).",
	     "When the latest DELIVER frame came (Unix time; 0: none since the start)."},
	    {AM_WELCOME, "rete_agent_connections_total",
	     "rete_agent_last_connection_timestamp_seconds",
	     "WELCOMEs received: connections to the broker made since the start.",
	     "When the latest WELCOME came (Unix time; 0: none since the start)."},
	};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		one(a, evs[i].count, "counter", evs[i].help_count,
		    atomic_load_explicit(&am->events[evs[i].ev], memory_order_relaxed));
		one_f(a, evs[i].last, "gauge", evs[i].help_last,
		      (double)atomic_load_explicit(&am->last_ms[evs[i].ev], memory_order_relaxed) /
			  1000.0);
	}

	uint64_t n[4];
	int64_t newest[4];
	bool ok[4];
	for (int i = 0; i < 4; i++)
		ok[i] = spool_count(am->dirs[i], &n[i], &newest[i]);
	head(a, "rete_agent_spool_files", "gauge",
	     "Files in each spool folder (outbox: waiting to be sent or answered; sent: "
	     "accepted and their receipts; failed: refused and their reasons; inbox: "
	     "delivered).");
	for (int i = 0; i < 4; i++)
		if (ok[i])
			rete_http_printf(a, "rete_agent_spool_files{folder=\"%s\"} %" PRIu64 "\n",
					 sub_names[i], n[i]);
	head(a, "rete_agent_spool_newest_timestamp_seconds", "gauge",
	     "Modification time of the newest file in each spool folder (Unix time; 0: empty).");
	for (int i = 0; i < 4; i++)
		if (ok[i])
			rete_http_printf(a,
					 "rete_agent_spool_newest_timestamp_seconds{folder=\"%s\"} "
					 "%.3f\n",
					 sub_names[i], (double)newest[i] / 1000.0);
}

rete_err agent_metrics_start(agent *a, rete_msg *m)
{
	if (!a->cfg.metrics_on)
		return RETE_OK;
	struct agent_metrics *am = calloc(1, sizeof(*am));
	if (!am)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	a->metrics = am;
	snprintf(am->id, sizeof(am->id), "%s", a->cfg.id);
	am->started_ms = rete_now_ms();
	const char *dirs[4] = {a->outbox_dir, a->sent_dir, a->failed_dir, a->inbox_dir};
	for (int i = 0; i < 4; i++)
		if (!(am->dirs[i] = strdup(dirs[i]))) {
			agent_metrics_stop(a);
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
		}
	agent_metrics_tick(a, am->started_ms);
	rete_err err = rete_httpd_new(&am->http, "metrics", m);
	if (err == RETE_OK)
		err = rete_httpd_route(am->http, "/metrics", serve, am, m);
	if (err == RETE_OK)
		err = rete_httpd_start(am->http, &a->cfg.metrics, m);
	if (err != RETE_OK) {
		rete_msg_prefix(m, "%s", a->cfg.ini_path);
		agent_metrics_stop(a);
		return err;
	}
	agent_log(a, "info", "metrics on http://%s%s%s:%u/metrics", a->cfg.metrics.v6 ? "[" : "",
		  a->cfg.metrics.host, a->cfg.metrics.v6 ? "]" : "", rete_httpd_port(am->http));
	return RETE_OK;
}

void agent_metrics_stop(agent *a)
{
	struct agent_metrics *am = a->metrics;
	if (!am)
		return;
	rete_httpd_free(&am->http); /* a scrape running finishes first */
	for (int i = 0; i < 4; i++)
		free(am->dirs[i]);
	free(am);
	a->metrics = NULL;
}
