/* report.c — see report.h. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xlsxwriter.h>

#include "duration.h"
#include "json.h"
#include "lifecycle.h"

#define MS_PER_HOUR 3600000.0

/* the counts of a row, in column order (num_of) */
#define REPORT_NNUM 23

static uint8_t hidden_at(const report *r, const report_row *w, size_t v);

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

/* times_keep gives t's values to row (its hours, for the others row's
 * medians); t is empty after it. */
static void times_keep(struct times *t, report_row *row)
{
	for (int k = 0; k < 3; k++) {
		row->hours[k] = t->v[k];
		row->nhours[k] = t->n[k];
		t->v[k] = NULL;
		t->n[k] = t->cap[k] = 0;
	}
}

static void times_finish(struct times *t, report_row *row)
{
	row->median_receive_h = report_median(t->v[0], t->n[0]);
	row->median_accept_h = report_median(t->v[1], t->n[1]);
	row->median_complete_h = report_median(t->v[2], t->n[2]);
	row->p90_receive_h = report_percentile(t->v[0], t->n[0], 90);
	row->p90_accept_h = report_percentile(t->v[1], t->n[1], 90);
	row->p90_complete_h = report_percentile(t->v[2], t->n[2], 90);
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

static const char *S(const char *s)
{
	return s != NULL ? s : "";
}

/* key_of fills k with ri's group key (by; its status at p's end) */
static void key_of(struct keyed *k, const Rete__ReferralInfo *ri, unsigned by,
		   const struct period *p)
{
	k->r = ri;
	k->requester = (by & REPORT_BY_AGENCY) ? S(ri->requester) : "";
	k->performer = (by & REPORT_BY_AGENCY) ? S(ri->performer) : "";
	k->service = (by & REPORT_BY_SERVICE) ? S(ri->service) : "";
	k->age_band = (by & REPORT_BY_AGE_BAND) ? (int)ri->age_band : 0;
	k->status = (by & REPORT_BY_STATUS) ? (int)status_at_end(ri, p) : 0;
}

/* row_keys copies k's group key into row w; false out of memory */
static bool row_keys(report_row *w, const struct keyed *k, unsigned by)
{
	w->requester = dup_or_null(by & REPORT_BY_AGENCY, k->requester);
	w->performer = dup_or_null(by & REPORT_BY_AGENCY, k->performer);
	w->service = dup_or_null(by & REPORT_BY_SERVICE, k->service);
	w->age_band = (Rete__AgeBand)k->age_band;
	w->status = (Rete__Status)k->status;
	return !(((by & REPORT_BY_AGENCY) && (w->requester == NULL || w->performer == NULL)) ||
		 ((by & REPORT_BY_SERVICE) && w->service == NULL));
}

static void row_free(report_row *row)
{
	free(row->requester);
	free(row->performer);
	free(row->service);
	free(row->sent_month);
	free(row->hide);
	for (int k = 0; k < 3; k++)
		free(row->hours[k]);
}

void report_free(report **r)
{
	if (r == NULL || *r == NULL)
		return;
	for (size_t i = 0; i < (*r)->nrows; i++)
		row_free(&(*r)->rows[i]);
	free((*r)->rows);
	free((*r)->total.sent_month);
	free((*r)->total.hide);
	for (size_t i = 0; i < (*r)->nref; i++)
		row_free(&(*r)->ref[i]);
	free((*r)->ref);
	free((*r)->month);
	free((*r)->month_start);
	free(*r);
	*r = NULL;
}

static int row_cmp(const void *a, const void *b)
{
	const report_row *x = a, *y = b;
	int c;
	if ((c = strcmp(S(x->requester), S(y->requester))) != 0 ||
	    (c = strcmp(S(x->performer), S(y->performer))) != 0 ||
	    (c = strcmp(S(x->service), S(y->service))) != 0)
		return c;
	if (x->age_band != y->age_band)
		return x->age_band < y->age_band ? -1 : 1;
	if (x->status != y->status)
		return x->status < y->status ? -1 : 1;
	return 0;
}

/* zero_rows adds a row of zeros for every expected group that has none (see
 * report.h): the (pair, service) keys of every referral of infos, times the
 * five age bands when grouped by them; not when grouped by status. */
static int zero_rows(report *r, const Rete__ReferralInfo *const *infos, size_t n)
{
	static const Rete__AgeBand bands[] = {
	    RETE__AGE_BAND__AGE_BAND_0_3, RETE__AGE_BAND__AGE_BAND_3_5,
	    RETE__AGE_BAND__AGE_BAND_6_13, RETE__AGE_BAND__AGE_BAND_14_18,
	    RETE__AGE_BAND__AGE_BAND_ADULT};
	unsigned by = r->by;
	size_t nb = (by & REPORT_BY_AGE_BAND) ? 5 : 1;

	if ((by & REPORT_BY_STATUS) || by == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const Rete__ReferralInfo *ri = infos[i];
		if (ri == NULL ||
		    !(by & (REPORT_BY_AGENCY | REPORT_BY_SERVICE | REPORT_BY_AGE_BAND)))
			continue;
		for (size_t b = 0; b < nb; b++) {
			report_row key = {0};
			key.requester = (by & REPORT_BY_AGENCY) ? (char *)S(ri->requester) : NULL;
			key.performer = (by & REPORT_BY_AGENCY) ? (char *)S(ri->performer) : NULL;
			key.service = (by & REPORT_BY_SERVICE) ? (char *)S(ri->service) : NULL;
			key.age_band = (by & REPORT_BY_AGE_BAND) ? bands[b] : 0;
			bool have = false;
			for (size_t k = 0; k < r->nrows && !have; k++)
				have = row_cmp(&r->rows[k], &key) == 0;
			if (have)
				continue;
			report_row *nr = realloc(r->rows, (r->nrows + 1) * sizeof(*nr));
			if (nr == NULL)
				return -1;
			r->rows = nr;
			report_row *w = &r->rows[r->nrows];
			memset(w, 0, sizeof(*w));
			w->requester = key.requester ? strdup(key.requester) : NULL;
			w->performer = key.performer ? strdup(key.performer) : NULL;
			w->service = key.service ? strdup(key.service) : NULL;
			w->age_band = key.age_band;
			w->median_receive_h = w->median_accept_h = w->median_complete_h = NAN;
			w->p90_receive_h = w->p90_accept_h = w->p90_complete_h = NAN;
			r->nrows++;
			if ((key.requester && !w->requester) || (key.performer && !w->performer) ||
			    (key.service && !w->service))
				return -1;
		}
	}
	if (r->nrows > 1)
		qsort(r->rows, r->nrows, sizeof(*r->rows), row_cmp);
	return 0;
}

/* ref_rows sets r->ref: every group key of infos (the whole of what the
 * report reads, each referral's status as it is now) with its number of
 * referrals; report_suppress names a row by it, not by its period's
 * count, so that the rows named are the same for every period (report.h).
 * -1 out of memory. */
static int ref_rows(report *r, const Rete__ReferralInfo *const *infos, size_t n)
{
	struct period always = {INT64_MIN, INT64_MAX, INT64_MAX};
	struct keyed *ks = n ? calloc(n, sizeof(*ks)) : NULL;
	size_t nk = 0;
	unsigned by = r->by;

	if (n > 0 && ks == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const Rete__ReferralInfo *ri = infos[i];
		if (ri == NULL)
			continue;
		key_of(&ks[nk++], ri, by, &always);
	}
	if (nk > 1)
		qsort(ks, nk, sizeof(*ks), keyed_cmp);
	if (nk > 0 && (r->ref = calloc(nk, sizeof(*r->ref))) == NULL) {
		free(ks);
		return -1;
	}
	for (size_t i = 0; i < nk;) {
		size_t j = i;
		report_row *w = &r->ref[r->nref++];
		bool ok = row_keys(w, &ks[i], by);
		while (j < nk && keyed_cmp(&ks[i], &ks[j]) == 0)
			j++;
		w->referrals = j - i;
		i = j;
		if (!ok) {
			free(ks);
			return -1;
		}
	}
	free(ks);
	return 0;
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
		key_of(&ks[nk++], ri, by, &p);
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
		if (!row_keys(row, &ks[i], by))
			goto nomem;
		while (j < nk && keyed_cmp(&ks[i], &ks[j]) == 0) {
			if (count_one(ks[j].r, &p, row, &tr) != 0 ||
			    count_one(ks[j].r, &p, &r->total, &tt) != 0)
				goto nomem;
			j++;
		}
		row->referrals = j - i;
		times_finish(&tr, row);
		times_keep(&tr, row);
		i = j;
	}
	times_finish(&tt, &r->total);
	times_free(&tt);
	free(ks);
	if (zero_rows(r, infos, n) != 0 || ref_rows(r, infos, n) != 0) {
		report_free(&r);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
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

/* csv_field_q writes one field, quoted when RFC 4180 requires it, when it
 * looks like a formula (then with a leading apostrophe) or when
 * always is set. */
static void csv_field_q(FILE *out, const char *s, char sep, bool always)
{
	/* a text a spreadsheet would run as a formula gets a leading
	 * apostrophe (the codes and ids come from the network) */
	bool formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;
	bool quote = always || formula || s[strcspn(s, "\"\r\n")] != '\0' || strchr(s, sep) != NULL;

	if (!quote) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	if (formula)
		fputc('\'', out);
	for (const char *c = s; *c != '\0'; c++) {
		if (*c == '"')
			fputc('"', out);
		fputc(*c, out);
	}
	fputc('"', out);
}

/* csv_hours writes a median with two decimals and the chosen decimal mark;
 * nothing (an empty field) when there is none. A number, written as one:
 * never quoted (the mark is not the separator) nor guarded as a formula
 * (a negative median, after the broker's clock stepped back, stays a
 * number a spreadsheet sums). */
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
	fputs(buf, out);
}

static const char *age_band_name(Rete__AgeBand b)
{
	const char *s = rete_enum_json_name(&rete__age_band__descriptor, (int)b);
	return s != NULL ? s : "";
}

rete_err report_write_csv(const report *r, FILE *out, char sep, char dec, rete_msg *m)
{
	return report_write_csv_lang(r, out, sep, dec, REPORT_EN, m);
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

/* j_count: value v of row w as a JSON number, or its mark as a string
 * when hidden (report_suppress) */
static json_t *j_count(const report *r, const report_row *w, size_t v, uint64_t x)
{
	char buf[32];
	uint8_t h = hidden_at(r, w, v);
	return h ? json_string(report_hidden_text(r, h, REPORT_EN, buf, sizeof(buf)))
		 : json_integer((json_int_t)x);
}

static json_t *j_median(const report *r, const report_row *w, size_t k, double hours)
{
	char buf[32];
	uint8_t h = hidden_at(r, w, REPORT_NNUM + k);
	return h ? json_string(report_hidden_text(r, h, REPORT_EN, buf, sizeof(buf)))
		 : j_hours(hours);
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
	if (keys && w->others) {
		/* the rows of fewer than min referrals, merged: no group keys */
		bad |= jset(o, "others", json_true());
		keys = false;
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
	bad |= jset(o, "sent", j_count(r, w, 0, w->sent));
	bad |= jset(o, "received", j_count(r, w, 1, w->received));
	bad |= jset(o, "accepted", j_count(r, w, 2, w->accepted));
	bad |= jset(o, "rejected", j_count(r, w, 3, w->rejected));
	for (int k = 1; k < REPORT_NREASONS; k++) {
		bad |= jset(rej, report_reason_names[k],
			    j_count(r, w, (size_t)k + 3, w->rejected_by[k]));
		bad |= jset(uns, report_reason_names[k],
			    j_count(r, w, (size_t)k + 12, w->unsuccessful_by[k]));
	}
	bad |= jset(o, "rejectedByReason", rej);
	bad |= jset(o, "completed", j_count(r, w, 10, w->completed));
	bad |= jset(o, "completedSuccessful", j_count(r, w, 11, w->successful));
	bad |= jset(o, "completedUnsuccessful", j_count(r, w, 12, w->unsuccessful));
	bad |= jset(o, "unsuccessfulByReason", uns);
	bad |= jset(o, "cancelled", j_count(r, w, 19, w->cancelled));
	bad |= jset(o, "failed", j_count(r, w, 20, w->failed));
	bad |= jset(o, "overdue", j_count(r, w, 21, w->overdue));
	bad |= jset(o, "openAtEnd", j_count(r, w, 22, w->open_at_end));
	bad |= jset(o, "medianHoursToReceive", j_median(r, w, 0, w->median_receive_h));
	bad |= jset(o, "medianHoursToAccept", j_median(r, w, 1, w->median_accept_h));
	bad |= jset(o, "medianHoursToComplete", j_median(r, w, 2, w->median_complete_h));
	if (r->nmonths > 0 && w->sent_month != NULL) {
		json_t *sm = json_array();
		for (size_t k = 0; sm != NULL && k < r->nmonths; k++)
			bad |= json_array_append_new(
			    sm, j_count(r, w, REPORT_NNUM + 3 + k, w->sent_month[k]));
		bad |= jset(o, "sentByMonth", sm);
	}
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
	/* the threshold below which counts are hidden (1: none) */
	bad |= jset(o, "minCount", json_integer(r->min_count > 1 ? r->min_count : 1));
	/* every other count rounded to this (1: exact) */
	bad |= jset(o, "roundedTo", json_integer(r->min_count > 1 ? REPORT_ROUND : 1));
	if (r->nmonths > 0) {
		json_t *ms = json_array();
		for (size_t k = 0; ms != NULL && k < r->nmonths; k++)
			bad |= json_array_append_new(ms, json_string(r->month[k]));
		bad |= jset(o, "months", ms);
	}
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

/* ------------------------------------------------------------------------
 * Months, headers in two languages, the column model, XLSX
 * ---------------------------------------------------------------------- */

rete_err report_add_months(report *r, const Rete__ReferralInfo *const *infos, size_t n,
			   const char *from, const char *to, const char *tz, rete_msg *m)
{
	int y0, m0, y1, m1;
	if (!rete_date_valid(from) || !rete_date_valid(to) ||
	    sscanf(from, "%4d-%2d", &y0, &m0) != 2 || sscanf(to, "%4d-%2d", &y1, &m1) != 2)
		return rete_msg_set(m, RETE_EINVAL,
				    "'%s' to '%s' is not a period of dates YYYY-MM-DD", from, to);
	size_t nm = (size_t)((y1 - y0) * 12 + (m1 - m0) + 1);
	if (y1 * 12 + m1 < y0 * 12 + m0 || nm > 1200)
		return rete_msg_set(m, RETE_EINVAL,
				    "'%s' to '%s': months are shown for periods of up to 100 "
				    "years, from before to",
				    from, to);
	r->month = calloc(nm, sizeof(*r->month));
	r->month_start = calloc(nm + 1, sizeof(*r->month_start));
	r->total.sent_month = calloc(nm, sizeof(uint64_t));
	if (!r->month || !r->month_start || !r->total.sent_month)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	r->nmonths = nm;
	for (size_t k = 0; k < nm; k++) {
		int y = y0 + (int)((m0 - 1 + (int)k) / 12), mo = (m0 - 1 + (int)k) % 12 + 1;
		char day[16];
		int64_t a, b;
		snprintf(r->month[k], sizeof(r->month[k]), "%04d-%02d", y % 10000, mo);
		snprintf(day, sizeof(day), "%04d-%02d-01", y % 10000, mo);
		rete_err e = rete_day_bounds(day, tz, &a, &b, m);
		if (e != RETE_OK)
			return e;
		r->month_start[k] = k == 0 ? r->from_ms : a;
	}
	r->month_start[nm] = r->to_ms;
	for (size_t i = 0; i < r->nrows; i++)
		if ((r->rows[i].sent_month = calloc(nm, sizeof(uint64_t))) == NULL)
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const Rete__ReferralInfo *ri = infos[i];
		if (ri == NULL || ri->requested_at < r->from_ms || ri->requested_at >= r->to_ms ||
		    ri->requested_at == 0)
			continue;
		size_t k = 0;
		while (k + 1 < nm && ri->requested_at >= r->month_start[k + 1])
			k++;
		r->total.sent_month[k]++;
		report_row key = {0};
		key.requester = (r->by & REPORT_BY_AGENCY) ? (char *)S(ri->requester) : NULL;
		key.performer = (r->by & REPORT_BY_AGENCY) ? (char *)S(ri->performer) : NULL;
		key.service = (r->by & REPORT_BY_SERVICE) ? (char *)S(ri->service) : NULL;
		key.age_band = (r->by & REPORT_BY_AGE_BAND) ? ri->age_band : 0;
		if (r->by & REPORT_BY_STATUS) {
			struct period p = {r->from_ms, r->to_ms, r->now_ms};
			key.status = status_at_end(ri, &p);
		}
		report_row *w =
		    r->nrows ? bsearch(&key, r->rows, r->nrows, sizeof(*r->rows), row_cmp) : NULL;
		if (w != NULL)
			w->sent_month[k]++;
	}
	return RETE_OK;
}

rete_err report_parse_lang(const char *s, report_lang *out, rete_msg *m)
{
	if (strcmp(s, "en") == 0)
		*out = REPORT_EN;
	else if (strcmp(s, "it") == 0)
		*out = REPORT_IT;
	else
		return rete_msg_set(m, RETE_EINVAL,
				    "'%s' is not a language of the report; use it (Italian) or en "
				    "(English)",
				    s);
	return RETE_OK;
}

enum colkind { C_REQ, C_PERF, C_SVC, C_BAND, C_STATUS, C_NUM, C_HOURS, C_MONTH };

struct col {
	enum colkind k;
	size_t which;
};

static const char *const num_en[REPORT_NNUM] = {"sent",
						"received",
						"accepted",
						"rejected",
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						"completed",
						"completedSuccessful",
						"completedUnsuccessful",
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						"cancelled",
						"failed",
						"overdue",
						"openAtEnd"};
static const char *const num_it[REPORT_NNUM] = {"Inviate",
						"Ricevute",
						"Accettate",
						"Rifiutate",
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						"Completate",
						"Completate con esito positivo",
						"Completate con esito negativo",
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						NULL,
						"Annullate",
						"Non consegnate",
						"In ritardo",
						"Aperte a fine periodo"};
static const char *const reason_it[REPORT_NREASONS] = {NULL,
						       "rifiuto della persona",
						       "mancanza di capacità",
						       "non più necessario",
						       "persona non raggiungibile",
						       "ente non raggiungibile",
						       "altro motivo"};
static const char *const hours_en[3] = {"medianHoursToReceive", "medianHoursToAccept",
					"medianHoursToComplete"};
static const char *const hours_it[3] = {"Ore alla ricezione (mediana)",
					"Ore all'accettazione (mediana)",
					"Ore al completamento (mediana)"};

/* num_ptr: row w's k-th count, in column order */
static uint64_t *num_ptr(report_row *w, size_t k)
{
	if (k >= 4 && k <= 9)
		return &w->rejected_by[k - 3];
	if (k >= 13 && k <= 18)
		return &w->unsuccessful_by[k - 12];
	switch (k) {
	case 0:
		return &w->sent;
	case 1:
		return &w->received;
	case 2:
		return &w->accepted;
	case 3:
		return &w->rejected;
	case 10:
		return &w->completed;
	case 11:
		return &w->successful;
	case 12:
		return &w->unsuccessful;
	case 19:
		return &w->cancelled;
	case 20:
		return &w->failed;
	case 21:
		return &w->overdue;
	default:
		return &w->open_at_end;
	}
}

/* col_at: the i-th column of r; false past the last. */
static bool col_at(const report *r, size_t i, struct col *c)
{
	size_t k = 0;
	if (r->by & REPORT_BY_AGENCY) {
		if (i == k++)
			return *c = (struct col){C_REQ, 0}, true;
		if (i == k++)
			return *c = (struct col){C_PERF, 0}, true;
	}
	if ((r->by & REPORT_BY_SERVICE) && i == k++)
		return *c = (struct col){C_SVC, 0}, true;
	if ((r->by & REPORT_BY_AGE_BAND) && i == k++)
		return *c = (struct col){C_BAND, 0}, true;
	if ((r->by & REPORT_BY_STATUS) && i == k++)
		return *c = (struct col){C_STATUS, 0}, true;
	if (i < k + REPORT_NNUM)
		return *c = (struct col){C_NUM, i - k}, true;
	k += REPORT_NNUM;
	if (i < k + 3)
		return *c = (struct col){C_HOURS, i - k}, true;
	k += 3;
	if (i < k + r->nmonths)
		return *c = (struct col){C_MONTH, i - k}, true;
	return false;
}

size_t report_header_count(const report *r)
{
	struct col c;
	size_t i = 0;
	while (col_at(r, i, &c))
		i++;
	return i;
}

char *report_header(const report *r, report_lang lang, size_t i, char *buf, size_t n)
{
	struct col c;
	bool it = lang == REPORT_IT;
	buf[0] = '\0';
	if (!col_at(r, i, &c))
		return buf;
	switch (c.k) {
	case C_REQ:
		snprintf(buf, n, "%s", it ? "Chi invia" : "requester");
		break;
	case C_PERF:
		snprintf(buf, n, "%s", it ? "Chi riceve" : "performer");
		break;
	case C_SVC:
		snprintf(buf, n, "%s", it ? "Servizio" : "service");
		break;
	case C_BAND:
		snprintf(buf, n, "%s", it ? "Fascia d'età" : "ageBand");
		break;
	case C_STATUS:
		snprintf(buf, n, "%s", it ? "Stato a fine periodo" : "status");
		break;
	case C_NUM:
		if (c.which >= 4 && c.which <= 9)
			snprintf(buf, n, it ? "Rifiutate: %s" : "rejected%s",
				 it ? reason_it[c.which - 3] : report_reason_camel[c.which - 3]);
		else if (c.which >= 13 && c.which <= 18)
			snprintf(buf, n, it ? "Esito negativo: %s" : "unsuccessful%s",
				 it ? reason_it[c.which - 12] : report_reason_camel[c.which - 12]);
		else
			snprintf(buf, n, "%s", it ? num_it[c.which] : num_en[c.which]);
		break;
	case C_HOURS:
		snprintf(buf, n, "%s", it ? hours_it[c.which] : hours_en[c.which]);
		break;
	case C_MONTH:
		snprintf(buf, n, it ? "Inviate %s" : "sent %s", r->month[c.which]);
		break;
	}
	return buf;
}

static uint64_t num_of(const report_row *w, size_t k)
{
	return *num_ptr((report_row *)w, k);
}

void report_cell(const report *r, const report_row *w, size_t i, char *buf, size_t n, double *num,
		 bool *is_num)
{
	report_cell_lang(r, w, i, REPORT_EN, buf, n, num, is_num);
}

void report_cell_lang(const report *r, const report_row *w, size_t i, report_lang lang, char *buf,
		      size_t n, double *num, bool *is_num)
{
	struct col c;
	buf[0] = '\0';
	*num = NAN;
	*is_num = false;
	if (!col_at(r, i, &c))
		return;
	uint8_t h = c.k == C_NUM     ? hidden_at(r, w, c.which)
		    : c.k == C_HOURS ? hidden_at(r, w, REPORT_NNUM + c.which)
		    : c.k == C_MONTH ? hidden_at(r, w, REPORT_NNUM + 3 + c.which)
				     : 0;
	if (h) {
		report_hidden_text(r, h, lang, buf, n);
		return;
	}
	if (w->others && c.k < C_NUM) {
		/* its name in the first key column, the others empty */
		snprintf(buf, n, "%s", i == 0 ? report_others_text(lang) : "");
		return;
	}
	switch (c.k) {
	case C_REQ:
		snprintf(buf, n, "%s", S(w->requester));
		return;
	case C_PERF:
		snprintf(buf, n, "%s", S(w->performer));
		return;
	case C_SVC:
		snprintf(buf, n, "%s", S(w->service));
		return;
	case C_BAND:
		snprintf(buf, n, "%s", w == &r->total ? "" : age_band_name(w->age_band));
		return;
	case C_STATUS:
		snprintf(buf, n, "%s", w == &r->total ? "" : rete_status_name(w->status));
		return;
	case C_NUM:
		*num = (double)num_of(w, c.which);
		break;
	case C_HOURS:
		*num = c.which == 0   ? w->median_receive_h
		       : c.which == 1 ? w->median_accept_h
				      : w->median_complete_h;
		break;
	case C_MONTH:
		*num = w->sent_month ? (double)w->sent_month[c.which] : 0;
		break;
	}
	*is_num = true;
}

const char *report_note(const report *r, report_lang lang, char *buf, size_t n)
{
	unsigned k = r->min_count;
	snprintf(buf, n,
		 lang == REPORT_IT
		     ? "Numeri arrotondati a %d (ciascuno per sé, totali compresi); < %u: da 0 a "
		       "%u segnalazioni; riservato: mediana di meno di %u "
		       "segnalazioni; altri: la somma dei gruppi con meno di %u segnalazioni "
		       "in tutto il registro. Riservatezza delle persone (GDPR art. 25 e 89)."
		     : "Counts rounded to %d (each on its own, totals included); < %u: 0 to %u "
		       "referrals; suppressed: a median of fewer than %u referrals; others: the "
		       "groups of fewer than %u referrals in the whole log, summed. "
		       "To protect the people (GDPR art. 25 and 89).",
		 REPORT_ROUND, k, k - 1, k, k);
	return buf;
}

rete_err report_write_csv_lang(const report *r, FILE *out, char sep, char dec, report_lang lang,
			       rete_msg *m)
{
	size_t nc = report_header_count(r);
	char buf[160];
	/* with another separator than ',' the header's texts but its first
	 * are quoted: a spreadsheet that guesses the separator (gnumeric, for
	 * one) takes the character before a quoted text that does not begin
	 * its line, and ',' when there is none (each line in one cell); the
	 * rows' fields are quoted only when they need it, as with ',' */
	bool q = sep != ',';

	for (size_t i = 0; i < nc; i++) {
		if (i)
			fputc(sep, out);
		csv_field_q(out, report_header(r, lang, i, buf, sizeof(buf)), sep, q && i > 0);
	}
	fputs("\r\n", out);
	for (size_t k = 0; k < r->nrows; k++) {
		const report_row *w = &r->rows[k];
		for (size_t i = 0; i < nc; i++) {
			double v;
			bool isnum;
			struct col c;
			col_at(r, i, &c);
			report_cell_lang(r, w, i, lang, buf, sizeof(buf), &v, &isnum);
			if (c.k == C_HOURS && isnum) {
				/* csv_hours writes its own separator */
				if (i == 0)
					fputs("", out);
				csv_hours(out, sep, dec, v);
				continue;
			}
			if (i)
				fputc(sep, out);
			if (isnum)
				fprintf(out, "%llu", (unsigned long long)v);
			else
				csv_field_q(out, buf, sep, false);
		}
		fputs("\r\n", out);
	}
	/* protected: what the marks and the figures are, in a last line of
	 * one field (its first column), as under the XLSX's table */
	if (r->min_count > 1) {
		char note[400];
		csv_field_q(out, report_note(r, lang, note, sizeof(note)), sep, false);
		fputs("\r\n", out);
	}
	if (fflush(out) != 0 || ferror(out))
		return rete_msg_set(m, RETE_EIO, "cannot write the report");
	return RETE_OK;
}

rete_err report_write_xlsx(const report *r, const char *path, report_lang lang, const char *title,
			   rete_msg *m)
{
	lxw_workbook *wb = workbook_new(path);
	if (wb == NULL)
		return rete_msg_set(m, RETE_EIO, "%s: cannot make the workbook", path);
	lxw_worksheet *ws = workbook_add_worksheet(wb, lang == REPORT_IT ? "Rapporto" : "Report");
	lxw_format *bold = workbook_add_format(wb);
	lxw_format *hours = workbook_add_format(wb);
	lxw_format *tot = workbook_add_format(wb);
	format_set_bold(bold);
	format_set_text_wrap(bold);
	format_set_num_format(hours, "0.00");
	format_set_bold(tot);
	size_t nc = report_header_count(r);
	char buf[160], note[400];
	lxw_row_t row = 0;

	if (title != NULL && title[0] != '\0') {
		worksheet_write_string(ws, row++, 0, title, bold);
		row++;
	}
	for (size_t i = 0; i < nc; i++)
		worksheet_write_string(ws, row, (lxw_col_t)i,
				       report_header(r, lang, i, buf, sizeof(buf)), bold);
	worksheet_freeze_panes(ws, row + 1, 0);
	row++;
	for (size_t k = 0; k <= r->nrows; k++, row++) {
		const report_row *w = k < r->nrows ? &r->rows[k] : &r->total;
		for (size_t i = 0; i < nc; i++) {
			double v;
			bool isnum;
			struct col c;
			col_at(r, i, &c);
			report_cell_lang(r, w, i, lang, buf, sizeof(buf), &v, &isnum);
			if (k == r->nrows && i == 0 && c.k < C_NUM) {
				worksheet_write_string(ws, row, 0,
						       lang == REPORT_IT ? "Totale" : "Total", tot);
				continue;
			}
			if (!isnum)
				worksheet_write_string(ws, row, (lxw_col_t)i, buf, NULL);
			else if (!isnan(v))
				worksheet_write_number(ws, row, (lxw_col_t)i, v,
						       c.k == C_HOURS ? hours : NULL);
		}
	}
	if (r->min_count > 1)
		worksheet_write_string(ws, row + 1, 0, report_note(r, lang, note, sizeof(note)),
				       NULL);
	worksheet_set_column(ws, 0, (lxw_col_t)(nc ? nc - 1 : 0), 14, NULL);
	lxw_error e = workbook_close(wb);
	if (e != LXW_NO_ERROR)
		return rete_msg_set(m, RETE_EIO, "%s: cannot write the workbook: %s", path,
				    lxw_strerror(e));
	return RETE_OK;
}

/* ------------------------------------------------------------------------
 * Small counts
 * ---------------------------------------------------------------------- */

/* the values of a row, by index: REPORT_NNUM counts (num_of), the 3
 * medians, then one count per month */
#define VAL_HOURS  REPORT_NNUM
#define VAL_MONTHS (REPORT_NNUM + 3)

static size_t report_nvals(const report *r)
{
	return VAL_MONTHS + r->nmonths;
}

uint64_t report_round(uint64_t x, unsigned min, uint8_t *mark)
{
	if (min <= 1)
		return x;
	if (x < min) { /* 0 too: a "< 3" beside zeros shown would be 1 at least */
		*mark = REPORT_HIDE_SMALL;
		return 0;
	}
	/* to the nearest multiple (x mod 5 of 0 to 2 down, 3 and 4 up: no
	 * ties), but never below the first multiple of 5 that min + 2 rounds
	 * to: the lowest figure shown then stands for 5 counts at least
	 * (min 3: 3 to 7 read 5; min 7: 7 to 12 read 10, where plain rounding
	 * gave 5 for 7 alone) */
	uint64_t r = (x + REPORT_ROUND / 2) / REPORT_ROUND * REPORT_ROUND;
	uint64_t floor5 = ((uint64_t)min + 2 + REPORT_ROUND - 1) / REPORT_ROUND * REPORT_ROUND;
	return r > floor5 ? r : floor5;
}

rete_err report_parse_min_count(const char *s, unsigned *out, rete_msg *m)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (s[0] < '0' || s[0] > '9' || *end != '\0' || v < 1 || v > REPORT_MIN_COUNT_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "'%s' is not accepted; give a number from 1 (every count "
				    "shown) to %d; counts below it are shown as '< N'",
				    s, REPORT_MIN_COUNT_MAX);
	*out = (unsigned)v;
	return RETE_OK;
}

const char *report_others_text(report_lang lang)
{
	return lang == REPORT_IT ? "altri" : "others";
}

/* hours_add appends n values v to *dst (of *nd); -1 out of memory. */
static int hours_add(double **dst, size_t *nd, const double *v, size_t n)
{
	if (n == 0)
		return 0;
	double *nv = realloc(*dst, (*nd + n) * sizeof(*nv));
	if (nv == NULL)
		return -1;
	memcpy(nv + *nd, v, n * sizeof(*nv));
	*dst = nv;
	*nd += n;
	return 0;
}

/* named: whether row w (a group of r) is listed by name with threshold
 * min: its group has min referrals or more in what the report read
 * (r->ref, the whole log), whatever its period's count. The one decision
 * of merge_small. */
static bool named(const report *r, const report_row *w, unsigned min)
{
	const report_row *k =
	    r->nref ? bsearch(w, r->ref, r->nref, sizeof(*r->ref), row_cmp) : NULL;
	return k != NULL && k->referrals >= min;
}

/* zero_named adds a row of zeros for every group named (named) that has
 * no row in the period (grouped by status: no referral of the group was at
 * that status at the period's end), so that the rows named are the same
 * in every period. -1 out of memory. */
static int zero_named(report *r, unsigned min)
{
	size_t add = 0;
	for (size_t i = 0; i < r->nref; i++)
		add += r->ref[i].referrals >= min &&
		       !(r->nrows &&
			 bsearch(&r->ref[i], r->rows, r->nrows, sizeof(*r->rows), row_cmp));
	if (add == 0)
		return 0;
	report_row *rows = realloc(r->rows, (r->nrows + add) * sizeof(*rows));
	if (rows == NULL)
		return -1;
	r->rows = rows;
	size_t n = r->nrows;
	for (size_t i = 0; i < r->nref; i++) {
		const report_row *k = &r->ref[i];
		if (k->referrals < min || bsearch(k, rows, r->nrows, sizeof(*rows), row_cmp))
			continue;
		report_row *w = &rows[n++];
		memset(w, 0, sizeof(*w));
		w->age_band = k->age_band;
		w->status = k->status;
		w->median_receive_h = w->median_accept_h = w->median_complete_h = NAN;
		w->p90_receive_h = w->p90_accept_h = w->p90_complete_h = NAN;
		w->requester = k->requester ? strdup(k->requester) : NULL;
		w->performer = k->performer ? strdup(k->performer) : NULL;
		w->service = k->service ? strdup(k->service) : NULL;
		if (r->nmonths > 0)
			w->sent_month = calloc(r->nmonths, sizeof(uint64_t));
		if ((k->requester && !w->requester) || (k->performer && !w->performer) ||
		    (k->service && !w->service) || (r->nmonths > 0 && !w->sent_month)) {
			r->nrows = n;
			return -1;
		}
	}
	r->nrows = n;
	qsort(r->rows, r->nrows, sizeof(*r->rows), row_cmp);
	return 0;
}

/* merge_small: the rows of r not named (named: fewer than min referrals
 * in the whole log) become one row "others", last (report_suppress says
 * why); it is there even when no row is merged, so that its presence says
 * nothing either. Its counts are the sums of the merged rows' exact
 * counts, its medians those of their referrals' times. -1 out of memory. */
static int merge_small(report *r, unsigned min)
{
	report_row o;
	size_t keep = 0;
	bool *in = NULL;

	if (zero_named(r, min) != 0)
		return -1;
	memset(&o, 0, sizeof(o));
	o.others = true;
	report_row *rows = realloc(r->rows, (r->nrows + 1) * sizeof(*rows));
	if (rows == NULL)
		return -1;
	r->rows = rows;
	if ((in = calloc(r->nrows + 1, sizeof(*in))) == NULL)
		return -1;
	if (r->nmonths > 0 && (o.sent_month = calloc(r->nmonths, sizeof(uint64_t))) == NULL) {
		free(in);
		return -1;
	}
	for (size_t k = 0; k < r->nrows; k++) {
		report_row *w = &rows[k];
		in[k] = !named(r, w, min);
		for (int t = 0; in[k] && t < 3; t++)
			if (hours_add(&o.hours[t], &o.nhours[t], w->hours[t], w->nhours[t]) != 0) {
				row_free(&o);
				free(in);
				return -1;
			}
	}
	/* nothing fails past here: sum, free and drop the merged rows */
	for (size_t k = 0; k < r->nrows; k++) {
		report_row *w = &rows[k];
		if (!in[k]) {
			rows[keep++] = *w;
			continue;
		}
		for (size_t i = 0; i < REPORT_NNUM; i++)
			*num_ptr(&o, i) += num_of(w, i);
		for (size_t i = 0; o.sent_month != NULL && w->sent_month != NULL && i < r->nmonths;
		     i++)
			o.sent_month[i] += w->sent_month[i];
		o.referrals += w->referrals;
		row_free(w);
	}
	free(in);
	o.median_receive_h = report_median(o.hours[0], o.nhours[0]);
	o.median_accept_h = report_median(o.hours[1], o.nhours[1]);
	o.median_complete_h = report_median(o.hours[2], o.nhours[2]);
	o.p90_receive_h = report_percentile(o.hours[0], o.nhours[0], 90);
	o.p90_accept_h = report_percentile(o.hours[1], o.nhours[1], 90);
	o.p90_complete_h = report_percentile(o.hours[2], o.nhours[2], 90);
	rows[keep++] = o;
	r->nrows = keep;
	return 0;
}

rete_err report_suppress(report *r, unsigned min, rete_msg *m)
{
	size_t nv, nr;

	r->min_count = min > 1 ? min : 0;
	if (min <= 1)
		return RETE_OK;
	/* without a grouping the one row is the total: nothing to merge */
	if (r->by != 0 && merge_small(r, min) != 0)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	nv = report_nvals(r);
	nr = r->nrows + 1;
	for (size_t k = 0; k < nr; k++) {
		report_row *w = k < r->nrows ? &r->rows[k] : &r->total;
		free(w->hide);
		if ((w->hide = calloc(nv, 1)) == NULL)
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
		/* a median (and 90th percentile) of fewer than min values
		 * (received, accepted, completed): too few people to describe;
		 * of none as well, or "suppressed" would say one at least */
		const uint64_t base[3] = {w->received, w->accepted, w->completed};
		double *med[3] = {&w->median_receive_h, &w->median_accept_h, &w->median_complete_h};
		double *p90[3] = {&w->p90_receive_h, &w->p90_accept_h, &w->p90_complete_h};
		for (size_t i = 0; i < 3; i++)
			if (base[i] < min) {
				w->hide[VAL_HOURS + i] = REPORT_HIDE_OTHER;
				*med[i] = *p90[i] = NAN;
			}
		/* every count on its own, totals included: a sum of rounded
		 * figures does not give back a hidden one */
		for (size_t i = 0; i < REPORT_NNUM; i++) {
			uint64_t *x = num_ptr(w, i);
			*x = report_round(*x, min, &w->hide[i]);
		}
		for (size_t i = 0; w->sent_month != NULL && i < r->nmonths; i++)
			w->sent_month[i] =
			    report_round(w->sent_month[i], min, &w->hide[VAL_MONTHS + i]);
	}
	return RETE_OK;
}

const char *report_hidden_text(const report *r, uint8_t h, report_lang lang, char *buf, size_t n)
{
	if (h == REPORT_HIDE_SMALL)
		snprintf(buf, n, "< %u", r->min_count);
	else
		snprintf(buf, n, "%s", lang == REPORT_IT ? "riservato" : "suppressed");
	return buf;
}

/* hidden_at: the mark of row w's value v (0: shown) */
static uint8_t hidden_at(const report *r, const report_row *w, size_t v)
{
	return w->hide != NULL && v < report_nvals(r) ? w->hide[v] : 0;
}
