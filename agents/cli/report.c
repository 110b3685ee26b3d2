/* report.c — see report.h. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lifecycle.h"

#define MS_PER_HOUR 3600000.0

/* The reason names, by Rete__OutcomeReason value (the JSON spelling). */
static const char *const report_reason_names[REPORT_NREASONS] = {
    NULL,
    "client-refused",
    "lack-of-capacity",
    "no-longer-needed",
    "unable-to-contact-client",
    "unable-to-contact-organisation",
    "other",
};

/* The same names in the CSV column spelling (camel case after a prefix). */
static const char *const report_reason_camel[REPORT_NREASONS] = {
    NULL,
    "ClientRefused",
    "LackOfCapacity",
    "NoLongerNeeded",
    "UnableToContactClient",
    "UnableToContactOrganisation",
    "Other",
};

int report_reason_index(const char *code)
{
	if (code != NULL)
		for (int i = 1; i < REPORT_NREASONS; i++)
			if (strcmp(code, report_reason_names[i]) == 0)
				return i;
	return RETE__OUTCOME_REASON__OUTCOME_REASON_OTHER;
}

rete_err report_parse_by(const char *s, unsigned *by, rete_msg *m)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {
	    {"agency", REPORT_BY_AGENCY},
	    {"service", REPORT_BY_SERVICE},
	    {"age-band", REPORT_BY_AGE_BAND},
	    {"status", REPORT_BY_STATUS},
	};
	const char *p = s;

	*by = 0;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			if (strlen(words[i].word) == len && strncmp(p, words[i].word, len) == 0) {
				*by |= words[i].bit;
				found = true;
			}
		}
		if (!found)
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "--by: '%.*s' is not a dimension; use a comma-separated "
			    "list of agency, service, age-band, status",
			    (int)len, p);
		p += len;
		if (*p == ',')
			p++;
	}
	return RETE_OK;
}

static int report_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double report_median(double *v, size_t n)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), report_cmp_double);
	if (n % 2 == 1)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double report_percentile(double *v, size_t n, unsigned pct)
{
	size_t rank;

	if (n == 0)
		return NAN;
	if (pct < 1)
		pct = 1;
	if (pct > 100)
		pct = 100;
	qsort(v, n, sizeof(*v), report_cmp_double);
	/* nearest rank: ceil(pct/100 * n), 1-based */
	rank = ((size_t)pct * n + 99) / 100;
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

/* ------------------------------------------------------------------------
 * Counting one referral
 * ---------------------------------------------------------------------- */

struct period {
	int64_t from, to, now;
};

static bool in_period(const struct period *p, int64_t t)
{
	return t != 0 && t >= p->from && t < p->to;
}

/* first_answer: the earliest of accepted, rejected, closed (0 when none). */
static int64_t first_answer(const Rete__ReferralInfo *r)
{
	int64_t ts[3] = {r->accepted_at, r->rejected_at, r->closed_at}, best = 0;
	for (int i = 0; i < 3; i++)
		if (ts[i] != 0 && (best == 0 || ts[i] < best))
			best = ts[i];
	return best;
}

static bool is_overdue_in(const Rete__ReferralInfo *r, const struct period *p)
{
	int64_t end = p->to < p->now ? p->to : p->now;
	int64_t ans;

	if (r->due_at == 0 || r->due_at < p->from || r->due_at >= end)
		return false;
	ans = first_answer(r);
	return ans == 0 || ans > r->due_at;
}

static bool is_open_at_end(const Rete__ReferralInfo *r, const struct period *p)
{
	return r->requested_at != 0 && r->requested_at < p->to &&
	       (r->closed_at == 0 || r->closed_at >= p->to);
}

/* touches: whether r has anything to count in the period. */
static bool touches(const Rete__ReferralInfo *r, const struct period *p)
{
	return in_period(p, r->requested_at) || in_period(p, r->received_at) ||
	       in_period(p, r->accepted_at) || in_period(p, r->rejected_at) ||
	       in_period(p, r->completed_at) || in_period(p, r->closed_at) || is_overdue_in(r, p) ||
	       is_open_at_end(r, p);
}

/* status_at_end: the status r had at the end of the period, from its
 * history (changes are in log order); the current status without one. */
static Rete__Status status_at_end(const Rete__ReferralInfo *r, const struct period *p)
{
	Rete__Status s = RETE__STATUS__STATUS_UNSPECIFIED;

	if (r->n_history == 0)
		return r->status;
	for (size_t i = 0; i < r->n_history; i++) {
		const Rete__StatusChange *c = r->history[i];
		if (c == NULL || c->at >= p->to)
			break;
		if (c->status != RETE__STATUS__STATUS_UNSPECIFIED)
			s = c->status;
	}
	return s != RETE__STATUS__STATUS_UNSPECIFIED ? s : RETE__STATUS__STATUS_REQUESTED;
}

/* Response times collected for one row. */
struct times {
	double *v[3]; /* receive, accept, complete */
	size_t n[3], cap[3];
};

static int times_add(struct times *t, int k, double hours)
{
	if (t->n[k] == t->cap[k]) {
		size_t cap = t->cap[k] ? t->cap[k] * 2 : 16;
		double *nv = realloc(t->v[k], cap * sizeof(*nv));
		if (nv == NULL)
			return -1;
		t->v[k] = nv;
		t->cap[k] = cap;
	}
	t->v[k][t->n[k]++] = hours;
	return 0;
}

static void times_free(struct times *t)
{
	for (int k = 0; k < 3; k++) {
		free(t->v[k]);
		t->v[k] = NULL;
		t->n[k] = t->cap[k] = 0;
	}
}

static void times_finish(struct times *t, report_row *row)
{
	row->median_receive_h = report_median(t->v[0], t->n[0]);
	row->median_accept_h = report_median(t->v[1], t->n[1]);
	row->median_complete_h = report_median(t->v[2], t->n[2]);
}

/* count_one adds r's contribution to row and its times to t. */
static int count_one(const Rete__ReferralInfo *r, const struct period *p, report_row *row,
		     struct times *t)
{
	if (in_period(p, r->requested_at))
		row->sent++;
	if (in_period(p, r->received_at)) {
		row->received++;
		if (r->requested_at != 0 &&
		    times_add(t, 0, (double)(r->received_at - r->requested_at) / MS_PER_HOUR))
			return -1;
	}
	if (in_period(p, r->accepted_at)) {
		row->accepted++;
		if (r->requested_at != 0 &&
		    times_add(t, 1, (double)(r->accepted_at - r->requested_at) / MS_PER_HOUR))
			return -1;
	}
	if (in_period(p, r->rejected_at)) {
		row->rejected++;
		row->rejected_by[report_reason_index(r->status_reason ? r->status_reason->code
								      : NULL)]++;
	}
	if (in_period(p, r->completed_at)) {
		row->completed++;
		if (r->outcome != NULL &&
		    r->outcome->result == RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL) {
			row->successful++;
		} else {
			int k = RETE__OUTCOME_REASON__OUTCOME_REASON_OTHER;
			if (r->outcome != NULL && r->outcome->reason > 0 &&
			    (int)r->outcome->reason < REPORT_NREASONS)
				k = (int)r->outcome->reason;
			row->unsuccessful++;
			row->unsuccessful_by[k]++;
		}
		if (r->requested_at != 0 &&
		    times_add(t, 2, (double)(r->completed_at - r->requested_at) / MS_PER_HOUR))
			return -1;
	}
	if (in_period(p, r->closed_at)) {
		if (r->status == RETE__STATUS__STATUS_CANCELLED)
			row->cancelled++;
		else if (r->status == RETE__STATUS__STATUS_FAILED)
			row->failed++;
	}
	if (is_overdue_in(r, p))
		row->overdue++;
	if (is_open_at_end(r, p))
		row->open_at_end++;
	return 0;
}

/* ------------------------------------------------------------------------
 * Grouping
 * ---------------------------------------------------------------------- */

struct keyed {
	const Rete__ReferralInfo *r;
	const char *requester, *performer, *service; /* "" when not grouped by */
	int age_band, status;
};

static int str_cmp(const char *a, const char *b)
{
	return strcmp(a, b);
}

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c;

	if ((c = str_cmp(x->requester, y->requester)) != 0)
		return c;
	if ((c = str_cmp(x->performer, y->performer)) != 0)
		return c;
	if ((c = str_cmp(x->service, y->service)) != 0)
		return c;
	if (x->age_band != y->age_band)
		return x->age_band < y->age_band ? -1 : 1;
	if (x->status != y->status)
		return x->status < y->status ? -1 : 1;
	return 0;
}

static char *dup_or_null(bool want, const char *s)
{
	return want ? strdup(s) : NULL;
}

static void row_free(report_row *row)
{
	free(row->requester);
	free(row->performer);
	free(row->service);
}

void report_free(report **r)
{
	if (r == NULL || *r == NULL)
		return;
	for (size_t i = 0; i < (*r)->nrows; i++)
		row_free(&(*r)->rows[i]);
	free((*r)->rows);
	free(*r);
	*r = NULL;
}

static const char *S(const char *s)
{
	return s != NULL ? s : "";
}

rete_err report_build(const Rete__ReferralInfo *const *infos, size_t n, int64_t from_ms,
		      int64_t to_ms, int64_t now_ms, unsigned by, report **out, rete_msg *m)
{
	struct period p = {from_ms, to_ms, now_ms};
	struct keyed *ks = NULL;
	struct times tt = {0}, tr = {0};
	size_t nk = 0;
	report *r;

	*out = NULL;
	if (from_ms >= to_ms)
		return rete_msg_set(m, RETE_EINVAL,
				    "the period is empty: --from must not be after --to");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	r->by = by;
	r->from_ms = from_ms;
	r->to_ms = to_ms;
	r->now_ms = now_ms;
	if (n > 0) {
		ks = calloc(n, sizeof(*ks));
		if (ks == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < n; i++) {
		const Rete__ReferralInfo *ri = infos[i];
		if (ri == NULL || !touches(ri, &p))
			continue;
		struct keyed *k = &ks[nk++];
		k->r = ri;
		k->requester = (by & REPORT_BY_AGENCY) ? S(ri->requester) : "";
		k->performer = (by & REPORT_BY_AGENCY) ? S(ri->performer) : "";
		k->service = (by & REPORT_BY_SERVICE) ? S(ri->service) : "";
		k->age_band = (by & REPORT_BY_AGE_BAND) ? (int)ri->age_band : 0;
		k->status = (by & REPORT_BY_STATUS) ? (int)status_at_end(ri, &p) : 0;
	}
	if (nk > 0)
		qsort(ks, nk, sizeof(*ks), keyed_cmp);

	/* rows: one per run of equal keys; at most nk */
	if (nk > 0) {
		r->rows = calloc(nk, sizeof(*r->rows));
		if (r->rows == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < nk;) {
		size_t j = i;
		report_row *row = &r->rows[r->nrows++];
		row->requester = dup_or_null(by & REPORT_BY_AGENCY, ks[i].requester);
		row->performer = dup_or_null(by & REPORT_BY_AGENCY, ks[i].performer);
		row->service = dup_or_null(by & REPORT_BY_SERVICE, ks[i].service);
		if (((by & REPORT_BY_AGENCY) &&
		     (row->requester == NULL || row->performer == NULL)) ||
		    ((by & REPORT_BY_SERVICE) && row->service == NULL))
			goto nomem;
		row->age_band = (Rete__AgeBand)ks[i].age_band;
		row->status = (Rete__Status)ks[i].status;
		while (j < nk && keyed_cmp(&ks[i], &ks[j]) == 0) {
			if (count_one(ks[j].r, &p, row, &tr) != 0 ||
			    count_one(ks[j].r, &p, &r->total, &tt) != 0)
				goto nomem;
			j++;
		}
		times_finish(&tr, row);
		times_free(&tr);
		i = j;
	}
	times_finish(&tt, &r->total);
	times_free(&tt);
	free(ks);
	*out = r;
	return RETE_OK;
nomem:
	times_free(&tt);
	times_free(&tr);
	free(ks);
	report_free(&r);
	return rete_msg_set(m, RETE_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------------------
 * CSV
 * ---------------------------------------------------------------------- */

/* csv_field writes one field, quoted when RFC 4180 requires it. */
static void csv_field(FILE *out, const char *s, char sep)
{
	bool quote = s[strcspn(s, "\"\r\n")] != '\0' || strchr(s, sep) != NULL;

	if (!quote) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (const char *c = s; *c != '\0'; c++) {
		if (*c == '"')
			fputc('"', out);
		fputc(*c, out);
	}
	fputc('"', out);
}

static void csv_u64(FILE *out, char sep, uint64_t v)
{
	fputc(sep, out);
	fprintf(out, "%llu", (unsigned long long)v);
}

/* csv_hours writes a median with two decimals and the chosen decimal mark;
 * nothing (an empty field) when there is none. */
static void csv_hours(FILE *out, char sep, char dec, double h)
{
	char buf[64];

	fputc(sep, out);
	if (isnan(h))
		return;
	snprintf(buf, sizeof(buf), "%.2f", h);
	for (char *c = buf; *c != '\0'; c++)
		if (*c == '.')
			*c = dec;
	csv_field(out, buf, sep);
}

static const char *age_band_name(Rete__AgeBand b)
{
	const char *s = rete_enum_json_name(&rete__age_band__descriptor, (int)b);
	return s != NULL ? s : "";
}

rete_err report_write_csv(const report *r, FILE *out, char sep, char dec, rete_msg *m)
{
	bool first = true;

#define CSV_HEAD(name)                                                                             \
	do {                                                                                       \
		if (!first)                                                                        \
			fputc(sep, out);                                                           \
		fputs(name, out);                                                                  \
		first = false;                                                                     \
	} while (0)

	if (r->by & REPORT_BY_AGENCY) {
		CSV_HEAD("requester");
		CSV_HEAD("performer");
	}
	if (r->by & REPORT_BY_SERVICE)
		CSV_HEAD("service");
	if (r->by & REPORT_BY_AGE_BAND)
		CSV_HEAD("ageBand");
	if (r->by & REPORT_BY_STATUS)
		CSV_HEAD("status");
	CSV_HEAD("sent");
	CSV_HEAD("received");
	CSV_HEAD("accepted");
	CSV_HEAD("rejected");
	for (int k = 1; k < REPORT_NREASONS; k++) {
		fputc(sep, out);
		fprintf(out, "rejected%s", report_reason_camel[k]);
	}
	CSV_HEAD("completed");
	CSV_HEAD("completedSuccessful");
	CSV_HEAD("completedUnsuccessful");
	for (int k = 1; k < REPORT_NREASONS; k++) {
		fputc(sep, out);
		fprintf(out, "unsuccessful%s", report_reason_camel[k]);
	}
	CSV_HEAD("cancelled");
	CSV_HEAD("failed");
	CSV_HEAD("overdue");
	CSV_HEAD("openAtEnd");
	CSV_HEAD("medianHoursToReceive");
	CSV_HEAD("medianHoursToAccept");
	CSV_HEAD("medianHoursToComplete");
	fputs("\r\n", out);
#undef CSV_HEAD

	for (size_t i = 0; i < r->nrows; i++) {
		const report_row *w = &r->rows[i];
		bool lead = true;
#define CSV_KEY(s)                                                                                 \
	do {                                                                                       \
		if (!lead)                                                                         \
			fputc(sep, out);                                                           \
		csv_field(out, s, sep);                                                            \
		lead = false;                                                                      \
	} while (0)
		if (r->by & REPORT_BY_AGENCY) {
			CSV_KEY(S(w->requester));
			CSV_KEY(S(w->performer));
		}
		if (r->by & REPORT_BY_SERVICE)
			CSV_KEY(S(w->service));
		if (r->by & REPORT_BY_AGE_BAND)
			CSV_KEY(age_band_name(w->age_band));
		if (r->by & REPORT_BY_STATUS)
			CSV_KEY(rete_status_name(w->status));
#undef CSV_KEY
		/* the first number needs no separator when there are no keys */
		if (lead)
			fprintf(out, "%llu", (unsigned long long)w->sent);
		else
			csv_u64(out, sep, w->sent);
		csv_u64(out, sep, w->received);
		csv_u64(out, sep, w->accepted);
		csv_u64(out, sep, w->rejected);
		for (int k = 1; k < REPORT_NREASONS; k++)
			csv_u64(out, sep, w->rejected_by[k]);
		csv_u64(out, sep, w->completed);
		csv_u64(out, sep, w->successful);
		csv_u64(out, sep, w->unsuccessful);
		for (int k = 1; k < REPORT_NREASONS; k++)
			csv_u64(out, sep, w->unsuccessful_by[k]);
		csv_u64(out, sep, w->cancelled);
		csv_u64(out, sep, w->failed);
		csv_u64(out, sep, w->overdue);
		csv_u64(out, sep, w->open_at_end);
		csv_hours(out, sep, dec, w->median_receive_h);
		csv_hours(out, sep, dec, w->median_accept_h);
		csv_hours(out, sep, dec, w->median_complete_h);
		fputs("\r\n", out);
	}
	if (fflush(out) != 0 || ferror(out))
		return rete_msg_set(m, RETE_EIO, "cannot write the report");
	return RETE_OK;
}

/* ------------------------------------------------------------------------
 * JSON
 * ---------------------------------------------------------------------- */

static int jset(json_t *o, const char *k, json_t *v)
{
	return v == NULL ? -1 : json_object_set_new(o, k, v);
}

static json_t *j_hours(double h)
{
	/* two decimals, as in the CSV, so both formats agree */
	return isnan(h) ? json_null() : json_real(round(h * 100.0) / 100.0);
}

static json_t *row_json(const report *r, const report_row *w, bool keys)
{
	json_t *o = json_object(), *rej = json_object(), *uns = json_object();
	int bad = 0;

	if (o == NULL || rej == NULL || uns == NULL) {
		json_decref(o);
		json_decref(rej);
		json_decref(uns);
		return NULL;
	}
	if (keys && (r->by & REPORT_BY_AGENCY)) {
		bad |= jset(o, "requester", json_string(S(w->requester)));
		bad |= jset(o, "performer", json_string(S(w->performer)));
	}
	if (keys && (r->by & REPORT_BY_SERVICE))
		bad |= jset(o, "service", json_string(S(w->service)));
	if (keys && (r->by & REPORT_BY_AGE_BAND))
		bad |= jset(o, "ageBand", json_string(age_band_name(w->age_band)));
	if (keys && (r->by & REPORT_BY_STATUS))
		bad |= jset(o, "status", json_string(rete_status_name(w->status)));
	bad |= jset(o, "sent", json_integer((json_int_t)w->sent));
	bad |= jset(o, "received", json_integer((json_int_t)w->received));
	bad |= jset(o, "accepted", json_integer((json_int_t)w->accepted));
	bad |= jset(o, "rejected", json_integer((json_int_t)w->rejected));
	for (int k = 1; k < REPORT_NREASONS; k++) {
		bad |=
		    jset(rej, report_reason_names[k], json_integer((json_int_t)w->rejected_by[k]));
		bad |= jset(uns, report_reason_names[k],
			    json_integer((json_int_t)w->unsuccessful_by[k]));
	}
	bad |= jset(o, "rejectedByReason", rej);
	bad |= jset(o, "completed", json_integer((json_int_t)w->completed));
	bad |= jset(o, "completedSuccessful", json_integer((json_int_t)w->successful));
	bad |= jset(o, "completedUnsuccessful", json_integer((json_int_t)w->unsuccessful));
	bad |= jset(o, "unsuccessfulByReason", uns);
	bad |= jset(o, "cancelled", json_integer((json_int_t)w->cancelled));
	bad |= jset(o, "failed", json_integer((json_int_t)w->failed));
	bad |= jset(o, "overdue", json_integer((json_int_t)w->overdue));
	bad |= jset(o, "openAtEnd", json_integer((json_int_t)w->open_at_end));
	bad |= jset(o, "medianHoursToReceive", j_hours(w->median_receive_h));
	bad |= jset(o, "medianHoursToAccept", j_hours(w->median_accept_h));
	bad |= jset(o, "medianHoursToComplete", j_hours(w->median_complete_h));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *report_to_json(const report *r, const char *from, const char *to, const char *tz)
{
	json_t *o = json_object(), *by = json_array(), *groups = json_array();
	int bad = 0;
	static const struct {
		unsigned bit;
		const char *name;
	} dims[] = {{REPORT_BY_AGENCY, "agency"},
		    {REPORT_BY_SERVICE, "service"},
		    {REPORT_BY_AGE_BAND, "age-band"},
		    {REPORT_BY_STATUS, "status"}};

	if (o == NULL || by == NULL || groups == NULL) {
		json_decref(o);
		json_decref(by);
		json_decref(groups);
		return NULL;
	}
	bad |= jset(o, "from", json_string(S(from)));
	bad |= jset(o, "to", json_string(S(to)));
	bad |= jset(o, "timeZone", json_string(S(tz)));
	for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
		if (r->by & dims[i].bit)
			bad |= json_array_append_new(by, json_string(dims[i].name));
	bad |= jset(o, "by", by);
	for (size_t i = 0; i < r->nrows; i++)
		bad |= json_array_append_new(groups, row_json(r, &r->rows[i], true));
	bad |= jset(o, "groups", groups);
	bad |= jset(o, "total", row_json(r, &r->total, false));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}
