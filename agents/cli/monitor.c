/* monitor.c — see monitor.h. */
#define _GNU_SOURCE /* vasprintf */
#include "monitor.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "lifecycle.h"
#include "report.h"

#define MON_RATE_SLOTS 60 /* minutes of entry counts kept */
#define MON_RATE_SHOWN 10 /* minutes shown */
#define MON_MINUTE     60000LL

/* One referral as the monitor keeps it: metadata only. */
struct mref {
	char *id, *requester, *performer, *service;
	Rete__Priority priority;
	Rete__Status status;
	int64_t requested_at, due_at;
	rete_status_times t; /* received, accepted, completed and closed are read */
	bool overdue;
	uint64_t index; /* the referral's log index: its short label */
};

struct magency {
	char *id;
	uint64_t queue_depth;
	int64_t oldest_undelivered_at, last_seen_at;
	bool connected;
};

struct monitor {
	struct mref *refs;
	size_t nrefs, caprefs;
	size_t *slots; /* open addressing by id: refs index + 1, 0 = empty */
	size_t nslots;
	struct magency *ag;
	size_t nag;
	bool loaded;
	uint64_t next;
	/* entries per minute: rate_min[k] is the minute number counted in
	 * rate_cnt[k]; rate_upto is one past the highest index counted, so a
	 * new snapshot adds only what no earlier one or event counted */
	int64_t rate_min[MON_RATE_SLOTS];
	uint32_t rate_cnt[MON_RATE_SLOTS];
	uint64_t rate_upto;
};

static const char *mon_s(const char *s)
{
	return s != NULL ? s : "";
}

/* ------------------------------------------------------------------------
 * The referral table
 * ---------------------------------------------------------------------- */

static size_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static struct mref *ref_find(const monitor *mo, const char *id)
{
	if (mo->nslots == 0 || id == NULL)
		return NULL;
	for (size_t i = hash_id(id) & (mo->nslots - 1);; i = (i + 1) & (mo->nslots - 1)) {
		size_t v = mo->slots[i];
		if (v == 0)
			return NULL;
		if (strcmp(mo->refs[v - 1].id, id) == 0)
			return &mo->refs[v - 1];
	}
}

/* slots_rebuild sizes the table for at least `want` referrals (load <= 1/2). */
static int slots_rebuild(monitor *mo, size_t want)
{
	size_t n = 16;
	while (n < want * 2)
		n *= 2;
	size_t *s = calloc(n, sizeof(*s));
	if (s == NULL)
		return -1;
	free(mo->slots);
	mo->slots = s;
	mo->nslots = n;
	for (size_t r = 0; r < mo->nrefs; r++) {
		size_t i = hash_id(mo->refs[r].id) & (n - 1);
		while (s[i] != 0)
			i = (i + 1) & (n - 1);
		s[i] = r + 1;
	}
	return 0;
}

static void ref_clear(struct mref *r)
{
	free(r->id);
	free(r->requester);
	free(r->performer);
	free(r->service);
	memset(r, 0, sizeof(*r));
}

/* ref_add appends a referral whose strings are copied; NULL on no memory. */
static struct mref *ref_add(monitor *mo, const char *id, const char *req, const char *perf,
			    const char *service)
{
	struct mref *r;

	if (mo->nrefs == mo->caprefs) {
		size_t cap = mo->caprefs ? mo->caprefs * 2 : 64;
		struct mref *nr = realloc(mo->refs, cap * sizeof(*nr));
		if (nr == NULL)
			return NULL;
		mo->refs = nr;
		mo->caprefs = cap;
	}
	if ((mo->nrefs + 1) * 2 > mo->nslots && slots_rebuild(mo, mo->nrefs + 1) != 0)
		return NULL;
	r = &mo->refs[mo->nrefs];
	memset(r, 0, sizeof(*r));
	r->id = strdup(mon_s(id));
	r->requester = strdup(mon_s(req));
	r->performer = strdup(mon_s(perf));
	r->service = strdup(mon_s(service));
	if (r->id == NULL || r->requester == NULL || r->performer == NULL || r->service == NULL) {
		ref_clear(r);
		return NULL;
	}
	size_t i = hash_id(r->id) & (mo->nslots - 1);
	while (mo->slots[i] != 0)
		i = (i + 1) & (mo->nslots - 1);
	mo->slots[i] = mo->nrefs + 1;
	mo->nrefs++;
	return r;
}

static void refs_clear(monitor *mo)
{
	for (size_t i = 0; i < mo->nrefs; i++)
		ref_clear(&mo->refs[i]);
	mo->nrefs = 0;
	if (mo->slots != NULL)
		memset(mo->slots, 0, mo->nslots * sizeof(*mo->slots));
}

static void agencies_clear(struct magency *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].id);
	free(a);
}

rete_err monitor_new(monitor **out, rete_msg *m)
{
	*out = calloc(1, sizeof(**out));
	if (*out == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	return RETE_OK;
}

void monitor_free(monitor **mo)
{
	if (mo == NULL || *mo == NULL)
		return;
	refs_clear(*mo);
	free((*mo)->refs);
	free((*mo)->slots);
	agencies_clear((*mo)->ag, (*mo)->nag);
	free(*mo);
	*mo = NULL;
}

bool monitor_loaded(const monitor *mo)
{
	return mo->loaded;
}

uint64_t monitor_next_index(const monitor *mo)
{
	return mo->next;
}

size_t monitor_referral_count(const monitor *mo)
{
	return mo->nrefs;
}

/* ------------------------------------------------------------------------
 * Rate
 * ---------------------------------------------------------------------- */

static void rate_add(monitor *mo, int64_t at)
{
	int64_t minute = at / MON_MINUTE;
	size_t k = (size_t)(minute % MON_RATE_SLOTS);

	if (at <= 0)
		return;
	if (mo->rate_min[k] != minute) {
		if (mo->rate_min[k] > minute)
			return; /* older than what the slot holds now */
		mo->rate_min[k] = minute;
		mo->rate_cnt[k] = 0;
	}
	mo->rate_cnt[k]++;
}

static uint32_t rate_at(const monitor *mo, int64_t minute)
{
	size_t k = (size_t)(minute % MON_RATE_SLOTS);
	return mo->rate_min[k] == minute ? mo->rate_cnt[k] : 0;
}

uint64_t monitor_rate_floor(const monitor *mo)
{
	return mo->rate_upto;
}

void monitor_rate_entry(monitor *mo, uint64_t index, int64_t logged_at)
{
	if (index < mo->rate_upto)
		return;
	rate_add(mo, logged_at);
	mo->rate_upto = index + 1;
}

void monitor_rate_from_history(monitor *mo, const Rete__Snapshot *sn)
{
	for (size_t i = 0; i < sn->n_referrals; i++) {
		const Rete__ReferralInfo *ri = sn->referrals[i];
		if (ri == NULL)
			continue;
		if (ri->n_history == 0 && ri->index >= mo->rate_upto && ri->index < sn->log_size)
			rate_add(mo, ri->requested_at);
		for (size_t k = 0; k < ri->n_history; k++) {
			const Rete__StatusChange *c = ri->history[k];
			if (c != NULL && c->index >= mo->rate_upto && c->index < sn->log_size)
				rate_add(mo, c->at);
		}
	}
	if (sn->log_size > mo->rate_upto)
		mo->rate_upto = sn->log_size;
}

/* ------------------------------------------------------------------------
 * Snapshot and events
 * ---------------------------------------------------------------------- */

rete_err monitor_set_agencies(monitor *mo, Rete__AgencyHealth *const *a, size_t n, rete_msg *m)
{
	struct magency *ag = n ? calloc(n, sizeof(*ag)) : NULL;

	if (n > 0 && ag == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		ag[i].id = strdup(a[i] ? mon_s(a[i]->id) : "");
		if (ag[i].id == NULL) {
			agencies_clear(ag, i);
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
		}
		if (a[i] == NULL)
			continue;
		ag[i].queue_depth = a[i]->queue_depth;
		ag[i].oldest_undelivered_at = a[i]->oldest_undelivered_at;
		ag[i].last_seen_at = a[i]->last_seen_at;
		ag[i].connected = a[i]->connected;
	}
	agencies_clear(mo->ag, mo->nag);
	mo->ag = ag;
	mo->nag = n;
	return RETE_OK;
}

rete_err monitor_load_snapshot(monitor *mo, const Rete__Snapshot *sn, rete_msg *m)
{
	refs_clear(mo);
	mo->loaded = false;
	if (slots_rebuild(mo, sn->n_referrals) != 0)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	for (size_t i = 0; i < sn->n_referrals; i++) {
		const Rete__ReferralInfo *ri = sn->referrals[i];
		if (ri == NULL || ri->id == NULL || ri->id[0] == '\0')
			continue;
		struct mref *r = ref_add(mo, ri->id, ri->requester, ri->performer, ri->service);
		if (r == NULL) {
			refs_clear(mo);
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
		}
		r->priority = ri->priority;
		r->status = ri->status;
		r->requested_at = ri->requested_at;
		r->t.received_at = ri->received_at;
		r->t.accepted_at = ri->accepted_at;
		r->t.rejected_at = ri->rejected_at;
		r->t.started_at = ri->started_at;
		r->t.completed_at = ri->completed_at;
		r->t.closed_at = ri->closed_at;
		r->due_at = ri->due_at;
		r->overdue = ri->overdue;
		r->index = ri->index;
	}
	if (monitor_set_agencies(mo, sn->agencies, sn->n_agencies, m) != RETE_OK) {
		refs_clear(mo);
		return RETE_ENOMEM;
	}
	mo->next = sn->log_size;
	mo->loaded = true;
	return RETE_OK;
}

/* set_status moves r to status `to` at `at`, recording the time of the
 * step as the store's projection does. */
static void set_status(struct mref *r, Rete__Status to, int64_t at)
{
	r->status = to;
	rete_status_times_apply(&r->t, to, at);
}

monitor_apply monitor_apply_event(monitor *mo, const Rete__Event *ev)
{
	const char *kind = mon_s(ev->kind);
	struct mref *r;

	if (strcmp(kind, "checkpoint") == 0 || !mo->loaded)
		return MONITOR_IGNORED;
	if (ev->index < mo->next)
		return MONITOR_OLD;
	if (ev->index > mo->next)
		return MONITOR_GAP;

	r = ref_find(mo, mon_s(ev->referral_id));
	if (strcmp(kind, "referral") == 0) {
		if (r == NULL) {
			const char *id =
			    mon_s(ev->referral_id)[0] ? ev->referral_id : mon_s(ev->message_id);
			r = ref_add(mo, id, ev->sender, ev->recipient, ev->service);
			if (r == NULL)
				return MONITOR_NOMEM;
			r->priority = ev->priority;
			r->status = RETE__STATUS__STATUS_REQUESTED;
			r->requested_at = ev->logged_at;
			r->index = ev->index;
		}
	} else if (r != NULL && strcmp(kind, "update") == 0) {
		/* the broker published it, so the lifecycle allowed it;
		 * status unspecified = the same status, a new business status */
		if (ev->status != RETE__STATUS__STATUS_UNSPECIFIED && ev->status != r->status)
			set_status(r, ev->status, ev->logged_at);
	} else if (r != NULL && strcmp(kind, "delivery") == 0) {
		if (ev->status == RETE__STATUS__STATUS_RECEIVED &&
		    r->status == RETE__STATUS__STATUS_REQUESTED)
			set_status(r, RETE__STATUS__STATUS_RECEIVED, ev->logged_at);
	} else if (r != NULL && strcmp(kind, "notice") == 0) {
		if (ev->notice == RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE) {
			r->overdue = true;
			/* events carry no due time; the broker flags a referral
			 * within a scan (a second) of it, so the notice's time
			 * stands in for it when the snapshot did not give one */
			if (r->due_at == 0)
				r->due_at = ev->logged_at;
		} else if (ev->notice == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED &&
			   r->status == RETE__STATUS__STATUS_REQUESTED)
			set_status(r, RETE__STATUS__STATUS_FAILED, ev->logged_at);
	}
	rate_add(mo, ev->logged_at);
	mo->next = ev->index + 1;
	if (mo->next > mo->rate_upto)
		mo->rate_upto = mo->next;
	return MONITOR_APPLIED;
}

/* ------------------------------------------------------------------------
 * What the panels show
 * ---------------------------------------------------------------------- */

static bool matches(const struct mref *r, const monitor_filter *f)
{
	if (f == NULL)
		return true;
	if (f->agency[0] != '\0' && strstr(r->requester, f->agency) == NULL &&
	    strstr(r->performer, f->agency) == NULL)
		return false;
	if (f->service[0] != '\0' && strstr(r->service, f->service) == NULL)
		return false;
	return true;
}

static bool is_overdue(const struct mref *r, int64_t now)
{
	if (r->status != RETE__STATUS__STATUS_REQUESTED &&
	    r->status != RETE__STATUS__STATUS_RECEIVED)
		return false;
	return r->overdue || (r->due_at != 0 && r->due_at <= now);
}

static int overdue_cmp(const void *a, const void *b)
{
	const struct mref *x = *(const struct mref *const *)a, *y = *(const struct mref *const *)b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	int64_t dx = x->due_at ? x->due_at : x->requested_at;
	int64_t dy = y->due_at ? y->due_at : y->requested_at;
	if (dx != dy)
		return dx < dy ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* overdue_list: the overdue referrals matching f, most urgent first
 * (priority, then the earliest due), as a malloc'd array of pointers. */
static const struct mref **overdue_list(const monitor *mo, int64_t now, const monitor_filter *f,
					size_t *n)
{
	const struct mref **v = malloc((mo->nrefs ? mo->nrefs : 1) * sizeof(*v));
	*n = 0;
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < mo->nrefs; i++)
		if (matches(&mo->refs[i], f) && is_overdue(&mo->refs[i], now))
			v[(*n)++] = &mo->refs[i];
	qsort(v, *n, sizeof(*v), overdue_cmp);
	return v;
}

/* The statuses the status panel counts, in lifecycle order. */
static const Rete__Status status_cols[] = {
    RETE__STATUS__STATUS_REQUESTED, RETE__STATUS__STATUS_RECEIVED,
    RETE__STATUS__STATUS_ACCEPTED,  RETE__STATUS__STATUS_IN_PROGRESS,
    RETE__STATUS__STATUS_ON_HOLD,   RETE__STATUS__STATUS_COMPLETED,
    RETE__STATUS__STATUS_REJECTED,  RETE__STATUS__STATUS_CANCELLED,
    RETE__STATUS__STATUS_FAILED,
};
#define NSTATUS (sizeof(status_cols) / sizeof(status_cols[0]))
/* the status columns' headers: the statuses in words (one word each, so
 * that a column is never cut in half) */
static const char *const status_short[NSTATUS] = {"requested",	 "received",  "accepted",
						  "in-progress", "on-hold",   "completed",
						  "rejected",	 "cancelled", "failed"};

struct group {
	const char *requester, *performer, *service;
	uint64_t count[NSTATUS];
	uint64_t total;
};

static int ref_group_cmp(const void *a, const void *b)
{
	const struct mref *x = *(const struct mref *const *)a, *y = *(const struct mref *const *)b;
	int c;
	if ((c = strcmp(x->requester, y->requester)) != 0)
		return c;
	if ((c = strcmp(x->performer, y->performer)) != 0)
		return c;
	return strcmp(x->service, y->service);
}

/* groups_build: status counts per (requester, performer, service). */
static struct group *groups_build(const monitor *mo, const monitor_filter *f, size_t *ng)
{
	const struct mref **v = malloc((mo->nrefs ? mo->nrefs : 1) * sizeof(*v));
	struct group *g = calloc(mo->nrefs ? mo->nrefs : 1, sizeof(*g));
	size_t n = 0;

	*ng = 0;
	if (v == NULL || g == NULL) {
		free(v);
		free(g);
		return NULL;
	}
	for (size_t i = 0; i < mo->nrefs; i++)
		if (matches(&mo->refs[i], f))
			v[n++] = &mo->refs[i];
	qsort(v, n, sizeof(*v), ref_group_cmp);
	for (size_t i = 0; i < n; i++) {
		if (*ng == 0 || ref_group_cmp(&v[i], &v[i - 1]) != 0) {
			struct group *ng_ = &g[(*ng)++];
			ng_->requester = v[i]->requester;
			ng_->performer = v[i]->performer;
			ng_->service = v[i]->service;
		}
		struct group *cur = &g[*ng - 1];
		cur->total++;
		for (size_t k = 0; k < NSTATUS; k++)
			if (v[i]->status == status_cols[k])
				cur->count[k]++;
	}
	free(v);
	return g;
}

struct stat3 {
	size_t n;
	double median_h, p90_h;
};

/* times_stats: time to receive (k 0), accept (1), complete (2). */
static int times_stats(const monitor *mo, const monitor_filter *f, struct stat3 out[3])
{
	double *v = malloc((mo->nrefs ? mo->nrefs : 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	for (int k = 0; k < 3; k++) {
		size_t n = 0;
		for (size_t i = 0; i < mo->nrefs; i++) {
			const struct mref *r = &mo->refs[i];
			int64_t t = k == 0   ? r->t.received_at
				    : k == 1 ? r->t.accepted_at
					     : r->t.completed_at;
			if (!matches(r, f) || t == 0 || r->requested_at == 0)
				continue;
			v[n++] = (double)(t - r->requested_at) / 3600000.0;
		}
		out[k].n = n;
		out[k].median_h = report_median(v, n);
		out[k].p90_h = report_percentile(v, n, 90);
	}
	free(v);
	return 0;
}

char *monitor_label(uint64_t index, char *buf, size_t n)
{
	snprintf(buf, n, "#%llu", (unsigned long long)index);
	return buf;
}

char *monitor_duration_text(int64_t ms, char *buf, size_t n)
{
	int64_t s = ms > 0 ? ms / 1000 : 0;

	if (s < 60)
		snprintf(buf, n, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(buf, n, "%" PRId64 "m", s / 60);
	else if (s < 86400)
		snprintf(buf, n, "%" PRId64 "h%02" PRId64 "m", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, n, "%" PRId64 "d%02" PRId64 "h", s / 86400, (s % 86400) / 3600);
	return buf;
}

static const char *priority_name(Rete__Priority p)
{
	const char *s = rete_enum_json_name(&rete__priority__descriptor, (int)p);
	return s != NULL ? s : "-";
}

/* ------------------------------------------------------------------------
 * Text
 * ---------------------------------------------------------------------- */

void monitor_lines_free(monitor_lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->line[i]);
	free(l->line);
	memset(l, 0, sizeof(*l));
}

static int lines_add(monitor_lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int lines_add(monitor_lines *l, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **nl = realloc(l->line, cap * sizeof(*nl));
		if (nl == NULL)
			return -1;
		l->line = nl;
		l->cap = cap;
	}
	va_start(ap, fmt);
	int rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	l->line[l->n++] = s;
	return 0;
}

/* col_add records a column [start, start + width) of the table being
 * written into l. */
static void col_add(monitor_lines *l, int start, int width, int drop)
{
	if (l->ncol < MONITOR_COLS_MAX)
		l->col[l->ncol++] = (monitor_col){start, width, drop};
}

void monitor_lines_fit(const monitor_lines *l, size_t i, int width, char *out, size_t n,
		       int *hidden)
{
	bool keep[MONITOR_COLS_MAX];
	int total = 0, dropped = 0;
	const char *line = i < l->n ? l->line[i] : "";
	size_t len = strlen(line), o = 0;

	if (hidden != NULL)
		*hidden = 0;
	if (n == 0)
		return;
	if (l->ncol == 0) {
		snprintf(out, n, "%s", line);
		return;
	}
	for (size_t k = 0; k < l->ncol; k++) {
		keep[k] = true;
		total += l->col[k].width + (k ? 1 : 0);
	}
	while (total > width) {
		int best = -1;
		for (size_t k = 0; k < l->ncol; k++)
			if (keep[k] && l->col[k].drop > 0 &&
			    (best < 0 || l->col[k].drop >= l->col[best].drop))
				best = (int)k;
		if (best < 0)
			break;
		keep[best] = false;
		total -= l->col[best].width + 1;
		dropped++;
	}
	for (size_t k = 0; k < l->ncol && o + 1 < n; k++) {
		if (!keep[k])
			continue;
		if (o > 0 && o + 1 < n)
			out[o++] = ' ';
		for (int c = 0; c < l->col[k].width && o + 1 < n; c++) {
			size_t at = (size_t)(l->col[k].start + c);
			out[o++] = at < len ? line[at] : ' ';
		}
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	if (hidden != NULL)
		*hidden = dropped;
}

const char *monitor_panel_title(int p)
{
	static const char *const titles[MONITOR_NPANELS] = {
	    "Overdue referrals (requester waiting on performer)",
	    "Referrals by status, per agency pair and service",
	    "Response times from the request",
	    "Log entries per minute (network-wide)",
	    "Agencies",
	};
	return p >= 0 && p < MONITOR_NPANELS ? titles[p] : "";
}

/* local_hm writes ms as local "DD/MM HH:MM" (the process time zone: the
 * monitor sets it to the network's). */
static char *local_hm(int64_t ms, char *buf, size_t n)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || localtime_r(&secs, &tm) == NULL || strftime(buf, n, "%d/%m %H:%M", &tm) == 0)
		snprintf(buf, n, "-");
	return buf;
}

static int panel_overdue(const monitor *mo, int64_t now, const monitor_filter *f,
			 monitor_lines *out)
{
	size_t n;
	const struct mref **v = overdue_list(mo, now, f, &n);
	char age[32], late[32], since[32], lab[32];
	int bad = 0, wwho = (int)strlen("WHO WAITS ON WHOM"), wsvc = (int)strlen("SERVICE");

	if (v == NULL)
		return -1;
	if (n == 0) {
		free(v);
		return lines_add(out, "(no overdue referral)");
	}
	for (size_t i = 0; i < n; i++) {
		int w = (int)(strlen(v[i]->requester) + strlen(v[i]->performer) + 12);
		if (w > wwho)
			wwho = w;
		if ((int)strlen(v[i]->service) > wsvc)
			wsvc = (int)strlen(v[i]->service);
	}
	/* WHO WAITS ON WHOM (never dropped), LATE, REFERRAL, SINCE, PRIORITY,
	 * STATUS, SERVICE, AGE: dropped from the last on a narrow screen */
	static const int widths[] = {0, 6, 8, 11, 9, 11, 0, 6};
	int wd[8], at = 0;
	memcpy(wd, widths, sizeof(wd));
	wd[0] = wwho;
	wd[6] = wsvc;
	static const int drops[8] = {0, 1, 2, 5, 4, 3, 7, 6};
	for (int k = 0; k < 8; k++) {
		col_add(out, at, wd[k], drops[k]);
		at += wd[k] + 1;
	}
	bad |= lines_add(out, "%-*s %-6s %-8s %-11s %-9s %-11s %-*s %s", wwho, "WHO WAITS ON WHOM",
			 "LATE", "REFERRAL", "SINCE", "PRIORITY", "STATUS", wsvc, "SERVICE", "AGE");
	for (size_t i = 0; i < n && !bad; i++) {
		const struct mref *r = v[i];
		char who[200];
		snprintf(who, sizeof(who), "%s waiting on %s", r->requester, r->performer);
		monitor_duration_text(now - r->requested_at, age, sizeof(age));
		if (r->due_at != 0)
			monitor_duration_text(now - r->due_at, late, sizeof(late));
		else
			snprintf(late, sizeof(late), "-");
		bad |= lines_add(out, "%-*s %-6s %-8s %-11s %-9s %-11s %-*s %s", wwho, who, late,
				 monitor_label(r->index, lab, sizeof(lab)),
				 local_hm(r->requested_at, since, sizeof(since)),
				 priority_name(r->priority), rete_status_name(r->status), wsvc,
				 r->service, age);
	}
	free(v);
	return bad;
}

static int panel_status(const monitor *mo, const monitor_filter *f, monitor_lines *out)
{
	size_t ng;
	struct group *g = groups_build(mo, f, &ng);
	char head[512];
	int bad = 0, off, wpair = (int)strlen("REQUESTER -> PERFORMER"),
	    wsvc = (int)strlen("SERVICE");

	if (g == NULL)
		return -1;
	if (ng == 0) {
		free(g);
		return lines_add(out, "(no referral)");
	}
	/* columns as wide as their widest value, so that narrow terminals see
	 * as many counts as they can */
	for (size_t i = 0; i < ng; i++) {
		int wp = (int)(strlen(g[i].requester) + strlen(g[i].performer) + 4);
		int ws = (int)strlen(g[i].service);
		if (wp > wpair)
			wpair = wp;
		if (ws > wsvc)
			wsvc = ws;
	}
	/* columns: the pair (never dropped), the service, each status (as wide
	 * as its word), the total; on a narrow screen the statuses no row has
	 * go first, then the others from the right, then the service */
	int wst[NSTATUS], at = 0, any[NSTATUS] = {0};
	for (size_t i = 0; i < ng; i++)
		for (size_t k = 0; k < NSTATUS; k++)
			any[k] |= g[i].count[k] != 0;
	col_add(out, at, wpair, 0);
	at += wpair + 1;
	col_add(out, at, wsvc, 30);
	at += wsvc + 1;
	for (size_t k = 0; k < NSTATUS; k++) {
		wst[k] = (int)strlen(status_short[k]);
		col_add(out, at, wst[k], any[k] ? 10 + (int)k : 40 + (int)k);
		at += wst[k] + 1;
	}
	col_add(out, at, 6, 1);
	off = snprintf(head, sizeof(head), "%-*s %-*s", wpair, "REQUESTER -> PERFORMER", wsvc,
		       "SERVICE");
	for (size_t k = 0; k < NSTATUS; k++)
		off += snprintf(head + off, sizeof(head) - (size_t)off, " %*s", wst[k],
				status_short[k]);
	snprintf(head + off, sizeof(head) - (size_t)off, " %6s", "total");
	bad |= lines_add(out, "%s", head);
	for (size_t i = 0; i < ng && !bad; i++) {
		char pair[160], row[512];
		snprintf(pair, sizeof(pair), "%s -> %s", g[i].requester, g[i].performer);
		off = snprintf(row, sizeof(row), "%-*s %-*s", wpair, pair, wsvc, g[i].service);
		for (size_t k = 0; k < NSTATUS; k++)
			off += snprintf(row + off, sizeof(row) - (size_t)off, " %*" PRIu64, wst[k],
					g[i].count[k]);
		snprintf(row + off, sizeof(row) - (size_t)off, " %6" PRIu64, g[i].total);
		bad |= lines_add(out, "%s", row);
	}
	free(g);
	return bad;
}

static void hours_text(double h, char *buf, size_t n)
{
	if (isnan(h))
		snprintf(buf, n, "-");
	else
		monitor_duration_text((int64_t)llround(h * 3600000.0), buf, n);
}

static int panel_times(const monitor *mo, const monitor_filter *f, monitor_lines *out)
{
	static const char *const names[3] = {"to receive", "to accept", "to complete"};
	struct stat3 st[3];
	int bad = 0;

	if (times_stats(mo, f, st) != 0)
		return -1;
	bad |= lines_add(out, "%-12s %7s %9s %9s", "", "count", "median", "p90");
	for (int k = 0; k < 3; k++) {
		char med[32], p90[32];
		hours_text(st[k].median_h, med, sizeof(med));
		hours_text(st[k].p90_h, p90, sizeof(p90));
		bad |= lines_add(out, "%-12s %7zu %9s %9s", names[k], st[k].n, med, p90);
	}
	return bad;
}

static int panel_rate(const monitor *mo, int64_t now, monitor_lines *out)
{
	int64_t cur = now / MON_MINUTE;
	uint32_t sum = 0;
	char row[256];
	int off = 0;

	for (int64_t k = MON_RATE_SHOWN - 1; k >= 0; k--) {
		uint32_t c = rate_at(mo, cur - k);
		sum += c;
		off += snprintf(row + off, sizeof(row) - (size_t)off, "%s%u", off ? " " : "", c);
	}
	if (lines_add(out, "this minute: %u   last %d minutes: %u (%.1f per minute)",
		      rate_at(mo, cur), MON_RATE_SHOWN, sum, (double)sum / MON_RATE_SHOWN))
		return -1;
	return lines_add(out, "per minute, oldest first: %s", row);
}

static int panel_agencies(const monitor *mo, int64_t now, monitor_lines *out)
{
	int bad = 0;

	if (mo->nag == 0)
		return lines_add(out, "(no agency health known)");
	bad |= lines_add(out, "%-28s %-10s %-12s %6s %s", "AGENCY", "STATE", "LAST SEEN", "QUEUE",
			 "OLDEST UNDELIVERED");
	for (size_t i = 0; i < mo->nag && !bad; i++) {
		const struct magency *a = &mo->ag[i];
		char seen[48], oldest[48], d[32];
		if (a->last_seen_at != 0)
			snprintf(seen, sizeof(seen), "%s ago",
				 monitor_duration_text(now - a->last_seen_at, d, sizeof(d)));
		else
			snprintf(seen, sizeof(seen), "never");
		if (a->oldest_undelivered_at != 0)
			snprintf(
			    oldest, sizeof(oldest), "%s ago",
			    monitor_duration_text(now - a->oldest_undelivered_at, d, sizeof(d)));
		else
			snprintf(oldest, sizeof(oldest), "-");
		bad |=
		    lines_add(out, "%-28s %-10s %-12s %6" PRIu64 " %s", a->id,
			      a->connected ? "connected" : "silent", seen, a->queue_depth, oldest);
	}
	return bad;
}

rete_err monitor_panel_lines(const monitor *mo, int p, int64_t now_ms, const monitor_filter *f,
			     monitor_lines *out, rete_msg *m)
{
	int bad;

	switch (p) {
	case MONITOR_PANEL_OVERDUE:
		bad = panel_overdue(mo, now_ms, f, out);
		break;
	case MONITOR_PANEL_STATUS:
		bad = panel_status(mo, f, out);
		break;
	case MONITOR_PANEL_TIMES:
		bad = panel_times(mo, f, out);
		break;
	case MONITOR_PANEL_RATE:
		bad = panel_rate(mo, now_ms, out);
		break;
	case MONITOR_PANEL_AGENCIES:
		bad = panel_agencies(mo, now_ms, out);
		break;
	default:
		return rete_msg_set(m, RETE_EINVAL, "panel %d does not exist; panels are 0 to %d",
				    p, MONITOR_NPANELS - 1);
	}
	return bad ? rete_msg_set(m, RETE_ENOMEM, "out of memory") : RETE_OK;
}

rete_err monitor_print(const monitor *mo, int64_t now_ms, const monitor_filter *f, FILE *out,
		       rete_msg *m)
{
	char at[32];

	fprintf(out, "rete monitor  log size %" PRIu64 "  referrals %zu  at %s", mo->next,
		mo->nrefs, rete_time_format(now_ms, at));
	if (f != NULL && f->agency[0] != '\0')
		fprintf(out, "  agency ~ %s", f->agency);
	if (f != NULL && f->service[0] != '\0')
		fprintf(out, "  service ~ %s", f->service);
	fputc('\n', out);
	for (int p = 0; p < MONITOR_NPANELS; p++) {
		monitor_lines l = {0};
		rete_err err = monitor_panel_lines(mo, p, now_ms, f, &l, m);
		if (err != RETE_OK) {
			monitor_lines_free(&l);
			return err;
		}
		fprintf(out, "\n== %s ==\n", monitor_panel_title(p));
		for (size_t i = 0; i < l.n; i++)
			fprintf(out, "%s\n", l.line[i]);
		monitor_lines_free(&l);
	}
	if (fflush(out) != 0 || ferror(out))
		return rete_msg_set(m, RETE_EIO, "cannot write the monitor's output");
	return RETE_OK;
}

/* ------------------------------------------------------------------------
 * JSON
 * ---------------------------------------------------------------------- */

static int mon_jset(json_t *o, const char *k, json_t *v)
{
	return v == NULL ? -1 : json_object_set_new(o, k, v);
}

static json_t *mon_time(int64_t ms)
{
	char buf[32];
	return ms != 0 ? json_string(rete_time_format(ms, buf)) : json_null();
}

static json_t *mon_hours(double h)
{
	return isnan(h) ? json_null() : json_real(round(h * 100.0) / 100.0);
}

static json_t *mon_u64(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

json_t *monitor_to_json(const monitor *mo, int64_t now, const monitor_filter *f)
{
	json_t *o = json_object();
	int bad = 0;
	size_t n, ng;

	if (o == NULL)
		return NULL;
	bad |= mon_jset(o, "logSize", mon_u64(mo->next));
	bad |= mon_jset(o, "at", mon_time(now));
	json_t *fj = json_object();
	if (fj != NULL && f != NULL && f->agency[0] != '\0')
		bad |= mon_jset(fj, "agency", json_string(f->agency));
	if (fj != NULL && f != NULL && f->service[0] != '\0')
		bad |= mon_jset(fj, "service", json_string(f->service));
	bad |= mon_jset(o, "filter", fj);

	/* overdue */
	const struct mref **v = overdue_list(mo, now, f, &n);
	json_t *ov = json_array();
	if (v == NULL || ov == NULL)
		bad = 1;
	for (size_t i = 0; v != NULL && ov != NULL && i < n; i++) {
		const struct mref *r = v[i];
		json_t *e = json_object();
		char lab[32];
		if (e == NULL) {
			bad = 1;
			break;
		}
		bad |= mon_jset(e, "referralId", json_string(r->id));
		bad |= mon_jset(e, "label", json_string(monitor_label(r->index, lab, sizeof(lab))));
		bad |= mon_jset(e, "requester", json_string(r->requester));
		bad |= mon_jset(e, "performer", json_string(r->performer));
		bad |= mon_jset(e, "service", json_string(r->service));
		bad |= mon_jset(e, "priority", json_string(priority_name(r->priority)));
		bad |= mon_jset(e, "status", json_string(rete_status_name(r->status)));
		bad |= mon_jset(e, "requestedAt", mon_time(r->requested_at));
		bad |= mon_jset(e, "dueAt", mon_time(r->due_at));
		bad |=
		    mon_jset(e, "ageMinutes", json_integer((now - r->requested_at) / MON_MINUTE));
		bad |= mon_jset(e, "lateMinutes",
				r->due_at ? json_integer((now - r->due_at) / MON_MINUTE)
					  : json_null());
		bad |= json_array_append_new(ov, e);
	}
	free(v);
	bad |= mon_jset(o, "overdue", ov);

	/* by status */
	struct group *g = groups_build(mo, f, &ng);
	json_t *bs = json_array();
	uint64_t tot[NSTATUS] = {0}, all = 0;
	if (g == NULL || bs == NULL)
		bad = 1;
	for (size_t i = 0; g != NULL && bs != NULL && i < ng; i++) {
		json_t *e = json_object(), *c = json_object();
		if (e == NULL || c == NULL) {
			json_decref(e);
			json_decref(c);
			bad = 1;
			break;
		}
		bad |= mon_jset(e, "requester", json_string(g[i].requester));
		bad |= mon_jset(e, "performer", json_string(g[i].performer));
		bad |= mon_jset(e, "service", json_string(g[i].service));
		for (size_t k = 0; k < NSTATUS; k++) {
			bad |= mon_jset(c, rete_status_name(status_cols[k]),
					json_integer((json_int_t)g[i].count[k]));
			tot[k] += g[i].count[k];
		}
		all += g[i].total;
		bad |= mon_jset(e, "counts", c);
		bad |= mon_jset(e, "total", json_integer((json_int_t)g[i].total));
		bad |= json_array_append_new(bs, e);
	}
	free(g);
	bad |= mon_jset(o, "byStatus", bs);
	json_t *tj = json_object();
	if (tj == NULL)
		bad = 1;
	for (size_t k = 0; tj != NULL && k < NSTATUS; k++)
		bad |= mon_jset(tj, rete_status_name(status_cols[k]),
				json_integer((json_int_t)tot[k]));
	if (tj != NULL)
		bad |= mon_jset(tj, "total", json_integer((json_int_t)all));
	bad |= mon_jset(o, "statusTotals", tj);

	/* times */
	struct stat3 st[3];
	static const char *const tnames[3] = {"toReceive", "toAccept", "toComplete"};
	json_t *times = json_object();
	if (times == NULL || times_stats(mo, f, st) != 0) {
		bad = 1;
	} else {
		for (int k = 0; k < 3; k++) {
			json_t *e = json_object();
			if (e == NULL) {
				bad = 1;
				break;
			}
			bad |= mon_jset(e, "count", json_integer((json_int_t)st[k].n));
			bad |= mon_jset(e, "medianHours", mon_hours(st[k].median_h));
			bad |= mon_jset(e, "p90Hours", mon_hours(st[k].p90_h));
			bad |= mon_jset(times, tnames[k], e);
		}
	}
	bad |= mon_jset(o, "times", times);

	/* rate */
	json_t *rate = json_object(), *per = json_array();
	int64_t cur = now / MON_MINUTE;
	uint32_t sum = 0;
	if (rate == NULL || per == NULL)
		bad = 1;
	for (int64_t k = MON_RATE_SHOWN - 1; per != NULL && k >= 0; k--) {
		uint32_t c = rate_at(mo, cur - k);
		sum += c;
		bad |= json_array_append_new(per, json_integer(c));
	}
	if (rate != NULL) {
		bad |= mon_jset(rate, "thisMinute", json_integer(rate_at(mo, cur)));
		bad |= mon_jset(rate, "lastMinutes", per);
		bad |= mon_jset(rate, "average", json_real((double)sum / MON_RATE_SHOWN));
	} else {
		json_decref(per);
	}
	bad |= mon_jset(o, "messagesPerMinute", rate);

	/* agencies */
	json_t *ag = json_array();
	if (ag == NULL)
		bad = 1;
	for (size_t i = 0; ag != NULL && i < mo->nag; i++) {
		const struct magency *a = &mo->ag[i];
		json_t *e = json_object();
		if (e == NULL) {
			bad = 1;
			break;
		}
		bad |= mon_jset(e, "id", json_string(a->id));
		bad |= mon_jset(e, "state", json_string(a->connected ? "connected" : "silent"));
		bad |= mon_jset(e, "connected", json_boolean(a->connected));
		bad |= mon_jset(e, "lastSeenAt", mon_time(a->last_seen_at));
		bad |= mon_jset(e, "queueDepth", mon_u64(a->queue_depth));
		bad |= mon_jset(e, "oldestUndeliveredAt", mon_time(a->oldest_undelivered_at));
		bad |= json_array_append_new(ag, e);
	}
	bad |= mon_jset(o, "agencies", ag);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
