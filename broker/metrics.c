/* metrics.c — see metrics.h. */
#define _GNU_SOURCE
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "broker_impl.h"
#include "checkpoint.h"
#include "duration.h"
#include "httpd.h"
#include "log.h"
#include "version.h"

#define BM_CODES 64 /* error codes counted (the enum's values are below this) */

/* The histograms' bucket bounds, in seconds (+Inf is the count). */
static const double bm_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				   0.05,   0.1,	  0.25,	  0.5,	 1,    2.5};
#define BM_BUCKETS (sizeof(bm_bounds) / sizeof(bm_bounds[0]))

struct bm_hist {
	_Atomic uint64_t bucket[BM_BUCKETS]; /* observations <= bound i and > bound i-1 */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_us;
};

/* One agency as the loop last saw it. */
struct bm_agency {
	char id[RETE_ID_MAX + 1];
	bool connected;
	int64_t last_seen_ms; /* wall clock; 0: not since the start */
	bool contested;	      /* broker_peer_contest */
	uint64_t takeovers;   /* answered after the notice */
};

struct broker_metrics {
	rete_httpd *http;
	rete_store *store; /* lives as long as the broker: read by the HTTP thread */
	broker_tsa *tsa;   /* the time-stamping thread (NULL: no TSA); thread-safe */
	char *data;	   /* the store folder (disk space) */
	int64_t started_ms;
	_Atomic uint64_t counters[BM_NCOUNTERS];
	_Atomic uint64_t refused[BM_CODES];
	struct bm_hist hist[BH_NHISTS];
	/* the loop's snapshot, under lock */
	pthread_mutex_t lock;
	uint64_t log_size; /* as the loop knows it (the store's is read too) */
	uint64_t cp_size;
	int64_t cp_at_ms;
	uint32_t epoch;
	struct bm_agency *agencies;
	size_t nagencies, cap;
};

void broker_metrics_add(broker_metrics *bm, broker_counter c, uint64_t n)
{
	if (bm && n)
		atomic_fetch_add_explicit(&bm->counters[c], n, memory_order_relaxed);
}

int64_t broker_metrics_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void broker_metrics_observe(broker_metrics *bm, broker_hist h, int64_t us, uint64_t n)
{
	if (!bm || !n)
		return;
	if (us < 0)
		us = 0;
	struct bm_hist *hi = &bm->hist[h];
	double s = (double)us / 1e6;
	for (size_t i = 0; i < BM_BUCKETS; i++)
		if (s <= bm_bounds[i]) {
			atomic_fetch_add_explicit(&hi->bucket[i], n, memory_order_relaxed);
			break;
		}
	atomic_fetch_add_explicit(&hi->sum_us, (uint64_t)us * n, memory_order_relaxed);
	atomic_fetch_add_explicit(&hi->count, n, memory_order_relaxed);
}

/* hist writes histogram h as name (cumulative buckets, _sum, _count). */
static void hist(rete_http_answer *a, const broker_metrics *bm, broker_hist h, const char *name,
		 const char *help)
{
	const struct bm_hist *hi = &bm->hist[h];
	uint64_t count = atomic_load_explicit(&hi->count, memory_order_relaxed);
	uint64_t sum = atomic_load_explicit(&hi->sum_us, memory_order_relaxed);
	rete_http_printf(a, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cum = 0;
	for (size_t i = 0; i < BM_BUCKETS; i++) {
		cum += atomic_load_explicit(&hi->bucket[i], memory_order_relaxed);
		rete_http_printf(a, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, bm_bounds[i], cum);
	}
	/* read one by one, the three may differ by an observation in flight:
	 * +Inf is never below a bucket */
	if (count < cum)
		count = cum;
	rete_http_printf(a,
			 "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n",
			 name, count, name, (double)sum / 1e6, name, count);
}

void broker_metrics_refused(broker_metrics *bm, int code)
{
	if (bm)
		atomic_fetch_add_explicit(&bm->refused[code >= 0 && code < BM_CODES ? code : 0], 1,
					  memory_order_relaxed);
}

void broker_metrics_tick(broker *b)
{
	broker_metrics *bm = b->metrics;
	if (!bm)
		return;
	const broker_config *c = b->cfg;
	int64_t now = rete_now_ms();
	pthread_mutex_lock(&bm->lock);
	if (bm->cap < c->nparties) {
		struct bm_agency *n = realloc(bm->agencies, c->nparties * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&bm->lock);
			return; /* the next turn tries again */
		}
		bm->agencies = n;
		bm->cap = c->nparties;
	}
	size_t k = 0;
	for (size_t i = 0; i < c->nparties; i++) {
		const broker_party *pa = &c->parties[i];
		if (!broker_kind_is_agency(pa->kind))
			continue;
		struct bm_agency *a = &bm->agencies[k++];
		memcpy(a->id, pa->id, sizeof(a->id));
		const broker_peer *p = broker_peer_find(b, pa->id);
		a->connected = p && p->nconns > 0 && now - p->last_seen_ms < 3 * c->heartbeat_ms;
		a->last_seen_ms = p ? p->last_seen_ms : 0;
		a->contested = p && broker_peer_contest(p, NULL, 0);
		a->takeovers = p ? p->takeovers : 0;
	}
	bm->nagencies = k;
	bm->log_size = b->log_size;
	bm->cp_size = b->cp_size;
	bm->cp_at_ms = b->cp_at_ms;
	bm->epoch = b->epoch;
	pthread_mutex_unlock(&bm->lock);
}

/* --- the answer ------------------------------------------------------------------- */

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

/* per_agency writes one sample per agency of metric name. */
static void per_agency(rete_http_answer *a, const char *name, const struct bm_agency *ag, size_t n,
		       const double *v)
{
	for (size_t i = 0; i < n; i++) {
		rete_http_printf(a, "%s{agency=\"", name);
		rete_http_label(a, ag[i].id);
		rete_http_printf(a, "\"} %.15g\n", v[i]);
	}
}

/* code_label: "ERROR_CODE_ID_REUSED" -> "id-reused" */
static void code_label(int code, char *out, size_t n)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&rete__error_code__descriptor, code);
	if (!v) {
		snprintf(out, n, "code-%d", code);
		return;
	}
	const char *s = v->name;
	if (strncmp(s, "ERROR_CODE_", 11) == 0)
		s += 11;
	size_t i = 0;
	for (; *s && i + 1 < n; s++)
		out[i++] = *s == '_' ? '-' : (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
	out[i] = '\0';
}

/* note_cosignatures counts a stored note's signature lines beyond the
 * first (the broker's own): the witnesses' cosignatures. */
static uint64_t note_cosignatures(const char *note)
{
	size_t len = strlen(note), body = rete_checkpoint_body_len(note, len);
	if (body == len)
		return 0;
	uint64_t lines = 0;
	for (const char *p = note + body + 1; *p; p++)
		if (*p == '\n')
			lines++;
	return lines > 1 ? lines - 1 : 0;
}

static void serve(void *ctx, const char *path, rete_http_answer *a)
{
	broker_metrics *bm = ctx;
	(void)path;
	a->content_type = "text/plain; version=0.0.4; charset=utf-8";

	/* 1. the loop's snapshot, copied out under the lock */
	pthread_mutex_lock(&bm->lock);
	size_t n = bm->nagencies;
	struct bm_agency *ag = calloc(n ? n : 1, sizeof(*ag));
	if (ag && n)
		memcpy(ag, bm->agencies, n * sizeof(*ag));
	uint64_t cp_size = bm->cp_size, loop_size = bm->log_size;
	int64_t cp_at = bm->cp_at_ms;
	uint32_t epoch = bm->epoch;
	pthread_mutex_unlock(&bm->lock);
	double *v = calloc(n ? n : 1, sizeof(*v));
	uint64_t *depth = calloc(n ? n : 1, sizeof(*depth));
	int64_t *oldest = calloc(n ? n : 1, sizeof(*oldest));
	if (!ag || !v || !depth || !oldest) {
		a->oom = true;
		goto out;
	}

	/* 2. the store, in a read transaction of this thread */
	uint64_t size = loop_size, map_size = 0, map_used = 0, disk_free = 0;
	uint64_t cosigs = 0, cosig_size = 0;
	bool readable = false;
	rete_store_rtxn *rt = NULL;
	if (rete_store_read_begin(bm->store, &rt, NULL) == RETE_OK) {
		readable = rete_store_size(bm->store, rt, &size, NULL) == RETE_OK;
		for (size_t i = 0; i < n && readable; i++)
			readable = rete_store_queue_depth(bm->store, rt, ag[i].id, &depth[i],
							  &oldest[i], NULL) == RETE_OK;
		uint64_t stored_size = 0;
		char *stored = NULL;
		if (readable &&
		    rete_store_checkpoint_latest(bm->store, rt, &stored_size, &stored, NULL) ==
			RETE_OK &&
		    stored) {
			cosigs = note_cosignatures(stored);
			cosig_size = stored_size;
		}
		free(stored);
		rete_store_read_end(&rt);
	}
	if (rete_store_stats(bm->store, &map_size, &map_used, NULL) != RETE_OK)
		readable = false;
	struct statvfs sv;
	/* 0 is a full disk: an unknown figure is left out, not shown as 0 */
	bool disk_known = statvfs(bm->data, &sv) == 0;
	if (disk_known)
		disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	int64_t now = rete_now_ms();

	/* 3. the text */
	head(a, "rete_build_info", "gauge",
	     "The program's release, git commit, protocol and store schema (always 1).");
	rete_http_printf(a,
			 "rete_build_info{program=\"rete-broker\",version=\"%s\",commit=\"%s\","
			 "protocol=\"%" PRIu32 "\",schema=\"%" PRIu32 "\"} 1\n",
			 rete_version(), rete_version_commit(), rete_version_protocol(),
			 rete_version_store_schema());
	one_f(a, "rete_broker_start_time_seconds", "gauge",
	      "When this broker process started (Unix time).", (double)bm->started_ms / 1000.0);
	one(a, "rete_broker_store_readable", "gauge",
	    "1 when this scrape could read the store (log size, queues, map); 0 otherwise.",
	    readable);
	one(a, "rete_broker_log_entries", "gauge", "Entries in the log (its size).", size);
	one(a, "rete_broker_log_epoch", "gauge",
	    "The log's epoch (1, then one more per declared restore).", epoch);
	static const struct {
		broker_counter c;
		const char *name, *help;
	} cs[] = {
	    {BM_APPENDED, "rete_broker_entries_appended_total",
	     "Entries appended to the log since the start (agencies' messages and the broker's "
	     "own: deliveries, notices, directories)."},
	    {BM_ACCEPTED, "rete_broker_submissions_accepted_total",
	     "Submissions accepted and logged since the start."},
	    {BM_DUPLICATE, "rete_broker_submissions_duplicate_total",
	     "Submissions of bytes already logged, answered with the original receipt."},
	    {BM_DELIVERED, "rete_broker_deliveries_sent_total",
	     "DELIVER frames sent to recipients (first sends and resends)."},
	    {BM_REDELIVERED, "rete_broker_redeliveries_total",
	     "Deliveries sent again because no ACK came within `redeliver`."},
	    {BM_DELIVERY_LOGGED, "rete_broker_deliveries_acknowledged_total",
	     "Delivery entries logged: deliveries the recipient acknowledged."},
	    {BM_DELIVERY_REFUSED, "rete_broker_deliveries_refused_total",
	     "DELIVERY_REFUSED notices logged: deliveries the recipient could not take."},
	    {BM_VERIFY_BATCHES, "rete_broker_verify_batches_total",
	     "Batches whose signatures were verified on the verify pool."},
	    {BM_VERIFIED, "rete_broker_signatures_verified_total",
	     "Signatures verified (submissions and signed ACKs), by the verify pool or the main "
	     "thread."},
	    {BM_COMMITS, "rete_broker_commits_total", "Durable commits of a batch to the store."},
	    {BM_COMMIT_FAILED, "rete_broker_commit_failures_total",
	     "Commits the store refused (disk full, store error): their frames were refused."},
	};
	for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++)
		one(a, cs[i].name, "counter", cs[i].help,
		    atomic_load_explicit(&bm->counters[cs[i].c], memory_order_relaxed));
	head(a, "rete_broker_verify_cpu_seconds_total", "counter",
	     "CPU time the broker's threads spent verifying signatures (the verify pool's, "
	     "and the main thread's when it verifies), since the start.");
	rete_http_printf(
	    a, "rete_broker_verify_cpu_seconds_total %.6f\n",
	    (double)atomic_load_explicit(&bm->counters[BM_VERIFY_CPU_NS], memory_order_relaxed) /
		1e9);
	head(a, "rete_broker_refusals_total", "counter",
	     "Frames and submissions refused since the start, by error code.");
	for (int c = 0; c < BM_CODES; c++) {
		uint64_t k = atomic_load_explicit(&bm->refused[c], memory_order_relaxed);
		if (!k)
			continue;
		char label[64];
		code_label(c, label, sizeof(label));
		rete_http_printf(a, "rete_broker_refusals_total{code=\"%s\"} %" PRIu64 "\n", label,
				 k);
	}

	hist(a, bm, BH_COMMIT, "rete_broker_commit_seconds",
	     "Time of one durable commit of a batch to the store, with its signatures.");
	hist(a, bm, BH_RECEIPT, "rete_broker_receipt_seconds",
	     "Time from a submission's batch being read to its receipt being sent (the "
	     "broker's part of a submission's round trip).");

	head(a, "rete_broker_queue_depth", "gauge",
	     "Entries logged for the agency and not yet acknowledged by it.");
	for (size_t i = 0; i < n; i++)
		v[i] = (double)depth[i];
	per_agency(a, "rete_broker_queue_depth", ag, n, v);
	head(a, "rete_broker_queue_oldest_age_seconds", "gauge",
	     "Age of the agency's oldest undelivered entry (0 when none waits).");
	for (size_t i = 0; i < n; i++)
		v[i] = depth[i] && oldest[i] && now > oldest[i] ? (double)(now - oldest[i]) / 1000.0
								: 0.0;
	per_agency(a, "rete_broker_queue_oldest_age_seconds", ag, n, v);
	head(a, "rete_broker_agency_connected", "gauge",
	     "1 when the agency has a connection that said HELLO and was heard within 3 "
	     "heartbeats.");
	size_t connected = 0;
	for (size_t i = 0; i < n; i++) {
		v[i] = ag[i].connected;
		connected += ag[i].connected;
	}
	per_agency(a, "rete_broker_agency_connected", ag, n, v);
	head(a, "rete_broker_agency_last_seen_timestamp_seconds", "gauge",
	     "When the broker last heard from the agency (Unix time; 0: not since the start).");
	for (size_t i = 0; i < n; i++)
		v[i] = (double)ag[i].last_seen_ms / 1000.0;
	per_agency(a, "rete_broker_agency_last_seen_timestamp_seconds", ag, n, v);
	head(a, "rete_broker_agency_takeovers_answered_total", "counter",
	     "HELLOs that took the agency's deliveries from a connection which, told so "
	     "(TAKEN_OVER, protocol 5), answered afterwards: each one is two agents running "
	     "with its key. A connection that goes without answering (a line that failed, an "
	     "agent restarted) is not counted.");
	for (size_t i = 0; i < n; i++)
		v[i] = (double)ag[i].takeovers;
	per_agency(a, "rete_broker_agency_takeovers_answered_total", ag, n, v);
	head(a, "rete_broker_agency_contested", "gauge",
	     "1 while two connections hold the agency's key: one behind the one that has its "
	     "deliveries answers too, or they took them from each other 3 times within an "
	     "hour, each time answering after being told (health names it).");
	for (size_t i = 0; i < n; i++)
		v[i] = ag[i].contested;
	per_agency(a, "rete_broker_agency_contested", ag, n, v);
	one(a, "rete_broker_agencies_connected", "gauge", "Agencies connected now.", connected);
	one(a, "rete_broker_agencies", "gauge", "Agencies in the directory in force.", n);

	one(a, "rete_broker_checkpoint_size", "gauge",
	    "Size of the latest stored checkpoint (0: none yet).", cp_size);
	one_f(a, "rete_broker_checkpoint_timestamp_seconds", "gauge",
	      "When the latest checkpoint was signed by this process (Unix time; 0: none since "
	      "the start).",
	      (double)cp_at / 1000.0);
	one_f(a, "rete_broker_checkpoint_age_seconds", "gauge",
	      "Seconds since the latest checkpoint was signed (since the start when none was).",
	      (double)(now - (cp_at ? cp_at : bm->started_ms)) / 1000.0);
	one(a, "rete_broker_checkpoint_behind_entries", "gauge",
	    "Entries logged after the latest checkpoint.", size > cp_size ? size - cp_size : 0);
	one(a, "rete_broker_checkpoint_cosignatures", "gauge",
	    "Witness cosignatures gathered on the latest stored checkpoint (agencies that "
	    "verified it and signed: c2sp.org/tlog-cosignature).",
	    cosigs);
	one(a, "rete_broker_checkpoint_cosigned_size", "gauge",
	    "Size of the stored checkpoint those cosignatures are on.", cosig_size);
	broker_tsa_state ts;
	bool tsa_on = broker_tsa_state_get(bm->tsa, &ts);
	one(a, "rete_broker_timestamp_configured", "gauge",
	    "1 when a time-stamping authority is configured (tsa_url).", tsa_on);
	if (tsa_on) {
		one(a, "rete_broker_timestamp_stamped_size", "gauge",
		    "Size of the newest checkpoint with an RFC 3161 token (0: none yet).",
		    ts.stamped);
		one_f(a, "rete_broker_timestamp_last_token_timestamp_seconds", "gauge",
		      "genTime of the newest token (Unix time; 0: none yet).",
		      (double)ts.last_gen_ms / 1000.0);
		one_f(a, "rete_broker_timestamp_waiting_seconds", "gauge",
		      "How long the oldest stored checkpoint without a token has waited (0: "
		      "none waits).",
		      (double)ts.waited_ms / 1000.0);
		one(a, "rete_broker_timestamp_failures", "gauge",
		    "Failed exchanges with the TSA since the last token.", ts.failures);
		one(a, "rete_broker_timestamp_refusing", "gauge",
		    "1 while timestamp_grace refuses new submissions (no token for too long).",
		    ts.refusing);
	}
	one(a, "rete_broker_store_map_bytes", "gauge",
	    "Size of the store's memory map (it grows by doubling).", map_size);
	one(a, "rete_broker_store_used_bytes", "gauge", "Bytes of the map in use.", map_used);
	if (disk_known)
		one(a, "rete_broker_disk_free_bytes", "gauge",
		    "Free bytes for the broker on the store's file system.", disk_free);
out:
	free(ag);
	free(v);
	free(depth);
	free(oldest);
}

rete_err broker_metrics_start(broker *b, broker_metrics **out, rete_msg *m)
{
	*out = NULL;
	const broker_config *c = b->cfg;
	if (!c->metrics_on)
		return RETE_OK;
	broker_metrics *bm = calloc(1, sizeof(*bm));
	if (!bm || !(bm->data = strdup(c->data))) {
		free(bm);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&bm->lock, NULL);
	bm->store = b->store;
	bm->tsa = b->tsa;
	bm->started_ms = rete_now_ms();
	b->metrics = bm;
	broker_metrics_tick(b);
	b->metrics = NULL;
	rete_err err = rete_httpd_new(&bm->http, "metrics", m);
	if (err == RETE_OK)
		err = rete_httpd_route(bm->http, "/metrics", serve, bm, m);
	if (err == RETE_OK)
		err = rete_httpd_start(bm->http, &c->metrics, m);
	if (err != RETE_OK) {
		rete_msg_prefix(m, "%s", c->path);
		broker_metrics_stop(&bm);
		return err;
	}
	*out = bm;
	broker_log_info("metrics on http://%s%s%s:%u/metrics", c->metrics.v6 ? "[" : "",
			c->metrics.host, c->metrics.v6 ? "]" : "", rete_httpd_port(bm->http));
	return RETE_OK;
}

void broker_metrics_stop(broker_metrics **bmp)
{
	broker_metrics *bm = bmp ? *bmp : NULL;
	if (!bm)
		return;
	rete_httpd_free(&bm->http); /* a scrape running finishes first */
	pthread_mutex_destroy(&bm->lock);
	free(bm->agencies);
	free(bm->data);
	free(bm);
	*bmp = NULL;
}
