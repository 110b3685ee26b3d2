/* monitor.h — the coordinator's live picture of the network, kept from the
 * broker's snapshot plus its event stream, and its panels as text or JSON.
 *
 * The state holds one small record per referral (ids of the parties, the
 * service, priority, status, the times of its steps, the due time and the
 * overdue mark), the agencies' health, a per-minute count of log entries,
 * and the next log index it expects. The protocol that keeps it exact (no
 * gap, no double count): subscribe to events FIRST, then load a snapshot
 * (which reflects log size S), then apply only events with index >= S, in
 * order; an event beyond the next expected index is a gap, and the caller
 * loads a new snapshot, then offers that event again. Checkpoint events are
 * not log entries and are ignored.
 *
 * Nothing personal enters: the snapshot's ReferralInfo and the events carry
 * only metadata, and of that the monitor keeps no case id either.
 *
 * Panels (in this order; the overdue referrals first):
 *   MONITOR_PANEL_OVERDUE   requested/received referrals past their due
 *                           time (or with an overdue notice): age, how late,
 *                           priority, requester waiting on performer;
 *                           emergency first, then the latest
 *   MONITOR_PANEL_STATUS    referrals by status per requester -> performer
 *                           pair and service
 *   MONITOR_PANEL_TIMES     time to receive, accept, complete (from the
 *                           request): count, median, 90th percentile
 *   MONITOR_PANEL_RATE      log entries per minute (the last minute, the
 *                           last ten), network-wide
 *   MONITOR_PANEL_AGENCIES  agencies connected or silent, queue depth
 * A filter (agency: a substring of the requester or performer id; service:
 * a substring of the service code) narrows the first three panels.
 */
#ifndef RETE_CLI_MONITOR_H
#define RETE_CLI_MONITOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "rete.pb-c.h"

typedef struct monitor monitor;

enum {
	MONITOR_PANEL_OVERDUE = 0,
	MONITOR_PANEL_STATUS,
	MONITOR_PANEL_TIMES,
	MONITOR_PANEL_RATE,
	MONITOR_PANEL_AGENCIES,
	MONITOR_NPANELS
};

/* What monitor_apply_event did with an event. */
typedef enum monitor_apply {
	MONITOR_APPLIED = 0, /* index == the next expected: applied */
	MONITOR_OLD,	     /* index below the next expected: already counted */
	MONITOR_GAP,	     /* index beyond the next expected: load a snapshot */
	MONITOR_IGNORED,     /* not a log entry (checkpoint), or no snapshot yet */
	MONITOR_NOMEM	     /* out of memory: the state is unchanged */
} monitor_apply;

/* monitor_filter: empty strings match everything. */
typedef struct monitor_filter {
	char agency[96];
	char service[96];
} monitor_filter;

/* monitor_col: one column of a panel's table: where it starts in each line,
 * how wide it is, and when it is dropped on a narrow screen (0: never;
 * otherwise the higher first). */
typedef struct monitor_col {
	int start, width, drop;
} monitor_col;

#define MONITOR_COLS_MAX 24

/* monitor_lines: lines of text (malloc'd, owned by the struct); a table
 * panel also says where its columns are (ncol > 0). */
typedef struct monitor_lines {
	char **line;
	size_t n, cap;
	size_t ncol;
	monitor_col col[MONITOR_COLS_MAX];
} monitor_lines;

/* monitor_lines_fit writes line i of l into out (n bytes) for a screen
 * width columns wide: when the table does not fit, whole columns are
 * dropped (the highest drop value first; a column with drop 0, such as
 * who refers to whom, never), never a word cut in half; *hidden (may be
 * NULL) says how many columns were dropped. A panel without columns is
 * copied as it is. */
void monitor_lines_fit(const monitor_lines *l, size_t i, int width, char *out, size_t n,
		       int *hidden);

/* monitor_new makes an empty state (*out is the caller's; free with
 * monitor_free). Errors: RETE_ENOMEM. */
rete_err monitor_new(monitor **out, rete_msg *m);

/* monitor_free frees *mo and sets it to NULL; NULL is fine. */
void monitor_free(monitor **mo);

/* monitor_load_snapshot replaces the referrals and agencies with those of
 * sn (borrowed; copied) and expects index sn->log_size next. The rate
 * counts are left alone: after it, count the entries the rate has not seen
 * yet (monitor_rate_floor up to sn->log_size) with monitor_rate_entry, or,
 * when the log's entries cannot be read, with monitor_rate_from_history.
 * Errors: RETE_ENOMEM (the state is then empty, with no snapshot: load
 * again). */
rete_err monitor_load_snapshot(monitor *mo, const Rete__Snapshot *sn, rete_msg *m);

/* monitor_rate_floor: the lowest log index the entries-per-minute counts
 * have not seen (every entry below it was counted, or is older than any
 * minute shown). */
uint64_t monitor_rate_floor(const monitor *mo);

/* monitor_rate_entry counts log entry `index`, logged at logged_at, in the
 * entries per minute, unless an index at or above it was counted already;
 * the floor moves past it. Call it in index order. */
void monitor_rate_entry(monitor *mo, uint64_t index, int64_t logged_at);

/* monitor_rate_from_history is the fallback of monitor_rate_entry: it
 * counts the entries the referrals' histories of sn (borrowed) show from
 * the floor up to sn->log_size (requests and status changes; notes and
 * other entries are missed), and moves the floor to sn->log_size. */
void monitor_rate_from_history(monitor *mo, const Rete__Snapshot *sn);

/* monitor_apply_event applies ev (borrowed) as described above; an applied
 * event is also counted in the entries per minute. */
monitor_apply monitor_apply_event(monitor *mo, const Rete__Event *ev);

/* monitor_set_agencies replaces the agencies' health with a[0..n)
 * (borrowed; copied). Errors: RETE_ENOMEM (the old list is kept). */
rete_err monitor_set_agencies(monitor *mo, Rete__AgencyHealth *const *a, size_t n, rete_msg *m);

/* monitor_loaded: true once a snapshot is in. */
bool monitor_loaded(const monitor *mo);

/* monitor_next_index: the log index the state expects next (= the log size
 * it reflects). */
uint64_t monitor_next_index(const monitor *mo);

/* monitor_referral_count: how many referrals the state holds. */
size_t monitor_referral_count(const monitor *mo);

/* monitor_panel_title: the static title of panel p. */
const char *monitor_panel_title(int p);

/* monitor_panel_lines writes panel p as of now_ms, narrowed by f (may be
 * NULL), into out (appended; the caller frees with monitor_lines_free).
 * Errors: RETE_ENOMEM. */
rete_err monitor_panel_lines(const monitor *mo, int p, int64_t now_ms, const monitor_filter *f,
			     monitor_lines *out, rete_msg *m);

/* monitor_lines_free frees the lines of l and zeroes it. */
void monitor_lines_free(monitor_lines *l);

/* monitor_print writes every panel as text (title, then its lines) to out,
 * headed by the log size, the time and the filter. Errors: RETE_ENOMEM,
 * RETE_EIO. */
rete_err monitor_print(const monitor *mo, int64_t now_ms, const monitor_filter *f, FILE *out,
		       rete_msg *m);

/* monitor_to_json returns every panel as one new JSON object (the caller's
 * reference; lowerCamelCase keys, times RFC 3339, enums in their JSON
 * spelling). NULL on out of memory. */
json_t *monitor_to_json(const monitor *mo, int64_t now_ms, const monitor_filter *f);

/* monitor_label writes a referral's short readable label, "#" and the log
 * index of its request ("#42"), into buf (size n) and returns buf: the
 * console and the monitor name referrals by it instead of their 34-character
 * message id. */
char *monitor_label(uint64_t index, char *buf, size_t n);

/* monitor_duration_text writes a duration as "45s", "12m", "3h05m" or
 * "2d04h" into buf (size n) and returns buf; negative durations as 0s. */
char *monitor_duration_text(int64_t ms, char *buf, size_t n);

#endif
