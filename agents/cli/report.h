/* report.h — the coordinator's period report: counts of referrals and
 * median response times over a period, grouped by the dimensions asked for.
 *
 * Everything here is pure: the input is an array of Rete__ReferralInfo (the
 * store's referral projection, or the broker's snapshot of it) and a period
 * [from_ms, to_ms) in Unix milliseconds; the output is a report (rows of
 * counts) that can be written as CSV or JSON. No personal data goes in
 * (ReferralInfo carries none) and none comes out: only party ids, service
 * codes, age bands, statuses and numbers. Referral and case ids are not
 * copied into the report either.
 *
 * What each count means (an "event in the period" view: each number counts
 * the referrals for which that thing happened inside the period):
 *   sent        requested_at in the period
 *   received    received_at in the period (the performer's agent took it)
 *   accepted    accepted_at in the period
 *   rejected    rejected_at in the period, split by the status reason code
 *               (the OutcomeReason names; any other or no code: "other")
 *   completed   completed_at in the period, split by outcome: successful,
 *               unsuccessful (split by outcome reason; none: "other")
 *   cancelled   closed_at in the period and status cancelled
 *   failed      closed_at in the period and status failed
 *   overdue     due_at in the period (and already past "now") and no answer
 *               (accepted, rejected or closed) by due_at
 *   openAtEnd   requested before the end of the period and not closed
 *               before it
 * Response times, in hours, measured from requested_at: to receive (over
 * the referrals received in the period), to accept (accepted in the
 * period), to complete (completed in the period); the median of an even
 * number of values is the mean of the middle two.
 *
 * Grouping dimensions: agency = the requester -> performer pair (two
 * columns: who asked whom, which is what a steering group reads); service;
 * age band; status = the referral's status at the end of the period (from
 * its history; the current status when it has no history).
 */
#ifndef RETE_CLI_REPORT_H
#define RETE_CLI_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "rete.pb-c.h"

/* Grouping dimensions, or'ed together. */
#define REPORT_BY_AGENCY   0x1u /* requester -> performer */
#define REPORT_BY_SERVICE  0x2u /* requested service code */
#define REPORT_BY_AGE_BAND 0x4u /* age band of the person */
#define REPORT_BY_STATUS   0x8u /* status at the end of the period */

/* Reasons are indexed by Rete__OutcomeReason value (1..6); slot 0 unused. */
#define REPORT_NREASONS 7

/* report_row: one group and its numbers. Group fields that are not grouped
 * by are NULL / 0; strings are owned by the row (freed by report_free). */
typedef struct report_row {
	char *requester;
	char *performer;
	char *service;
	Rete__AgeBand age_band;
	Rete__Status status;
	uint64_t sent, received, accepted;
	uint64_t rejected, rejected_by[REPORT_NREASONS];
	uint64_t completed, successful, unsuccessful, unsuccessful_by[REPORT_NREASONS];
	uint64_t cancelled, failed, overdue, open_at_end;
	/* median hours; NAN when there is no value in the period */
	double median_receive_h, median_accept_h, median_complete_h;
	/* 90th percentile hours (nearest rank); NAN when there is none */
	double p90_receive_h, p90_accept_h, p90_complete_h;
	uint64_t *sent_month; /* report_add_months: sent per month, or NULL */
	uint8_t *hide;	      /* report_suppress: per value (REPORT_HIDE_*), or NULL */
	/* the referrals counted in this row (those with anything in the
	 * period); in report.ref, the group's referrals in the whole log */
	uint64_t referrals;
	bool others; /* report_suppress: the row of the rows merged ("others") */
	/* the row's response times in hours (receive, accept, complete), kept
	 * so that the others row's medians are those of its referrals */
	double *hours[3];
	size_t nhours[3];
} report_row;

/* report: the rows (sorted by requester, performer, service, age band,
 * status) and the total over all of them. Owned by whoever built it. */
typedef struct report {
	unsigned by;
	int64_t from_ms, to_ms, now_ms;
	report_row *rows;
	size_t nrows;
	report_row total;
	size_t nmonths;	      /* report_add_months: the months of the period */
	char (*month)[8];     /* "YYYY-MM", nmonths of them */
	int64_t *month_start; /* nmonths + 1 bounds (ms); the last is to_ms */
	unsigned min_count;   /* report_suppress: the threshold (0: none applied) */
	/* report_build: every group key of the referrals read (the whole
	 * log; status: each referral's status now) with its number of
	 * referrals (report_row.referrals), sorted; report_suppress names a
	 * row by it */
	report_row *ref;
	size_t nref;
} report;

/* report_parse_by parses a --by list ("agency,service,age-band,status", any
 * subset in any order; "" = no grouping) into *by. Errors: RETE_EINVAL
 * naming the unknown word and the accepted ones. */
rete_err report_parse_by(const char *s, unsigned *by, rete_msg *m);

/* report_build counts infos[0..n) (borrowed) over [from_ms, to_ms) as of
 * now_ms (overdue needs it), grouped by `by`, into a new *out (the
 * caller's; free with report_free). Groups with nothing in the period get
 * no row. Errors: RETE_EINVAL (from_ms >= to_ms), RETE_ENOMEM. */
rete_err report_build(const Rete__ReferralInfo *const *infos, size_t n, int64_t from_ms,
		      int64_t to_ms, int64_t now_ms, unsigned by, report **out, rete_msg *m);

/* Zero rows (report_build): every group a steering group expects to read is
 * shown, with zeros when nothing happened in the period: every agency pair
 * (and, grouped by service, every pair and service) that any referral of
 * infos has, in the period or not; and, grouped by age band, each of the five
 * bands (0-3, 3-5, 6-13, 14-18, adult) for each of them. Grouped by status,
 * only the statuses that occur get a row. */

/* report_add_months adds one column per calendar month of the period (in
 * tz; the first and last months cut to the period): the referrals sent in
 * that month, per row and in total. from and to are the period's dates
 * YYYY-MM-DD (both inclusive), as given to report_build's bounds. Errors:
 * RETE_EINVAL (a bad date or zone), RETE_ENOMEM. */
rete_err report_add_months(report *r, const Rete__ReferralInfo *const *infos, size_t n,
			   const char *from, const char *to, const char *tz, rete_msg *m);

/* report_lang: the language of the headers. */
typedef enum report_lang { REPORT_EN = 0, REPORT_IT } report_lang;

/* report_parse_lang: "en" or "it". RETE_EINVAL naming the value. */
rete_err report_parse_lang(const char *s, report_lang *out, rete_msg *m);

/* report_header_count: how many columns report_header gives for r. */
size_t report_header_count(const report *r);

/* report_header: the column headers of r in lang (Italian: "Inviate",
 * "Rifiutate: mancanza di capacità"...), the i-th of report_header_count
 * written into buf (n bytes); returns buf. */
char *report_header(const report *r, report_lang lang, size_t i, char *buf, size_t n);

/* report_cell: row w's i-th column as text (keys) or number: *num is set
 * and the text empty for a number; NAN with empty text for an empty
 * median. Keys are written as their codes (party ids, service codes, age
 * band and status names). */
void report_cell(const report *r, const report_row *w, size_t i, char *buf, size_t n, double *num,
		 bool *is_num);

/* report_cell_lang is report_cell with a hidden value (report_suppress)
 * given as its text in lang (report_hidden_text), not as a number. */
void report_cell_lang(const report *r, const report_row *w, size_t i, report_lang lang, char *buf,
		      size_t n, double *num, bool *is_num);

/* report_write_csv_lang is report_write_csv with headers in lang and the
 * month columns when there are months. */
rete_err report_write_csv_lang(const report *r, FILE *out, char sep, char dec, report_lang lang,
			       rete_msg *m);

/* report_write_xlsx writes r as an XLSX workbook at path (libxlsxwriter):
 * one sheet, the headers in lang (bold, frozen), numbers as numbers,
 * medians with two decimals, a total row. Errors: RETE_EIO (m names the
 * file and libxlsxwriter's reason). */
rete_err report_write_xlsx(const report *r, const char *path, report_lang lang, const char *title,
			   rete_msg *m);

/* Small counts (data protection by design, GDPR art. 25 and 89): a count
 * of 1 or 2 referrals to one service of one agency in a month points at a
 * family. Italian official statistics publish a frequency only from a
 * threshold of at least 3 (the "regola della soglia" of the Garante's
 * rules for statistics, Sistan rules art. 4 and the 2019 rules art. 5).
 * REPORT_MIN_COUNT is rete's default: the steering group's counts. */
#define REPORT_MIN_COUNT     3
#define REPORT_MIN_COUNT_MAX 100
#define REPORT_HIDE_SMALL    1 /* a count from 1 to min-1: shown as "< min" */
#define REPORT_HIDE_OTHER    2 /* a median of fewer than min referrals: "suppressed" */
#define REPORT_ROUND	     5 /* with a threshold, every other count to the nearest 5 */

/* report_round: count x as published with threshold min: x itself when
 * min is 1 (or 0); 0 with *mark = REPORT_HIDE_SMALL when x is from 0 to
 * min-1 (zeros too: with zeros shown, every "< 3" is 1 at least, and a sum
 * of them can pin each one); else x to the nearest multiple of
 * REPORT_ROUND (never 0). Each figure is rounded on its own, sums included: a hidden count is
 * not the difference of figures shown exactly, since none is (R3's
 * findings: '< 3' beside a total, a cell from its parts, two periods). */
uint64_t report_round(uint64_t x, unsigned min, uint8_t *mark);

/* report_note: the note of a protected report r (min_count > 1) in lang:
 * figures rounded to 5, what "< N" and "suppressed" mean; into buf. */
const char *report_note(const report *r, report_lang lang, char *buf, size_t n);

/* report_parse_min_count: "1" to "100" (1: nothing hidden) into *out.
 * RETE_EINVAL naming the value and the range. */
rete_err report_parse_min_count(const char *s, unsigned *out, rete_msg *m);

/* report_suppress publishes r with threshold min (1 or 0: every count
 * exact), after report_add_months when months are wanted. With a grouping,
 * a row is listed by name only when its group has min referrals or more
 * in all that report_build read (the whole log; grouped by status, the
 * referrals at that status now): r->ref, not the period's count, so that
 * the rows named are the same for every period of the log. A row named
 * and empty in the period is there with zeros (grouped by status too).
 * The other rows are merged into one row "others" (report_row.others,
 * last; always there, even with nothing in it). Naming by the period's
 * count said ">= N" of a row in the period and "<= N - 1" when it was not
 * named, and three whole-month reports (October, November, both) pinned a
 * 1 or a 2 (session 11); before that, naming every row that had a
 * referral said "one at least" (session 10). Then every count of every
 * row and of the total, the months' included, goes through report_round
 * (in place: the exact counts are gone), and a median (and 90th
 * percentile) over 0 to min - 1 referrals is hidden ("suppressed" for
 * none too: else it said one at least). Every writer (CSV, JSON, XLSX,
 * report_cell) shows the marks and the others row ("others", "altri") and
 * says the figures are rounded. Errors: RETE_ENOMEM. */
rete_err report_suppress(report *r, unsigned min, rete_msg *m);

/* report_others_text: the name of the others row in lang ("others",
 * "altri"). */
const char *report_others_text(report_lang lang);

/* report_hidden_text: the text of a hidden value of mark h in lang ("< 3";
 * "suppressed" / "riservato"), into buf; returns buf. */
const char *report_hidden_text(const report *r, uint8_t h, report_lang lang, char *buf, size_t n);

/* report_free frees *r and sets it to NULL; NULL is fine. */
void report_free(report **r);

/* report_write_csv writes r as CSV (RFC 4180: a header row, one row per
 * group, fields quoted when they hold the separator, a quote or a line
 * break, CRLF line ends) with separator sep (',' or ';' or a tab) and
 * decimal mark dec ('.' or ','; use ',' with ';' for Italian spreadsheets).
 * An empty median is an empty field. Errors: RETE_EIO (write failed). */
rete_err report_write_csv(const report *r, FILE *out, char sep, char dec, rete_msg *m);

/* report_to_json returns r as a new JSON object (the caller's reference):
 * from, to, timeZone (the strings given, borrowed), by, groups, total;
 * lowerCamelCase keys, medians as numbers or null. NULL on out of memory. */
json_t *report_to_json(const report *r, const char *from, const char *to, const char *tz);

/* report_median sorts v[0..n) in place and returns its median (mean of the
 * middle two when n is even); NAN when n == 0. */
double report_median(double *v, size_t n);

/* report_percentile sorts v[0..n) in place and returns its pct-th
 * percentile by nearest rank (the smallest value with at least pct% of the
 * values at or below it); NAN when n == 0. pct from 1 to 100. */
double report_percentile(double *v, size_t n, unsigned pct);

/* report_reason_index maps a reason code ("lack-of-capacity") to its
 * Rete__OutcomeReason value; anything else, NULL or "" included, is
 * OUTCOME_REASON_OTHER. */
int report_reason_index(const char *code);

#endif
