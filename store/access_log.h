/* access_log.h — the access record: who read the log, when, what, with
 * which program.
 *
 * Every program that reads the log for a person (the `rete` commands audit,
 * timeline, report, sar, evidence; the broker answering a remote query)
 * appends one JSON line per read to a local file of its own:
 *
 *   {"at":"2026-12-06T09:00:00.000Z","program":"rete audit timeline",
 *    "who":"alice","party":"audit.region","what":"case mn-2026-0173"}
 *
 * The file is append-only for its writers: a line is written with one
 * write(2) on an O_APPEND descriptor while holding an exclusive flock, so
 * lines of concurrent writers never interleave. Lines older than the
 * retention (default 24 calendar months, what the Italian data protection
 * authority expects as a minimum) are dropped by rewriting the kept lines
 * into a new file that replaces the old one atomically (rename), under the
 * same lock; a writer that finds the file replaced under it opens the new
 * one. The file is created mode 0600. A file that reaches the part size
 * (64 MiB by default) is closed as a part, renamed PATH.YYYYMMDDTHHMMSSmmmZ
 * (the UTC time of its last line), and the next line starts a new PATH:
 * the record is PATH and its parts, and a prune removes the parts closed
 * before the retention whole and rewrites at most one file (the oldest
 * part it keeps, or PATH), never the whole record. Nothing here ever holds personal
 * data: callers write codes and pseudonyms in `what` (a person asked for by
 * `rete sar` appears as the agency's keyed pseudonym, never as a fiscal
 * code).
 */
#ifndef RETE_ACCESS_LOG_H
#define RETE_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* rete_keep: how long lines (or files) are kept: calendar months, or a
 * fixed number of milliseconds (months == 0). Zero for both: kept for
 * ever. */
typedef struct rete_keep {
	int64_t ms;
	int months;
} rete_keep;

/* RETE_ACCESS_KEEP_DEFAULT: 24 calendar months. */
#define RETE_ACCESS_KEEP_DEFAULT ((rete_keep){.ms = 0, .months = 24})

/* rete_keep_parse parses a retention: "24mo" (calendar months), "2y"
 * (years of 12 months), or a calendar duration of duration.h ("30d",
 * "12h", "90s"); "forever" keeps for ever. RETE_EINVAL with a sentence
 * naming the value and the accepted forms. */
rete_err rete_keep_parse(const char *s, rete_keep *out, rete_msg *m);

/* rete_keep_cutoff: the oldest time (Unix ms) still kept at now_ms;
 * INT64_MIN when kept for ever. Months are counted on the UTC calendar
 * (the day of the month clamped to the target month's length). */
int64_t rete_keep_cutoff(rete_keep keep, int64_t now_ms);

/* rete_keep_format writes keep for people ("24 months", "30 days",
 * "forever") into buf (n bytes) and returns buf. */
char *rete_keep_format(rete_keep keep, char *buf, size_t n);

/* rete_access_rec: one read of the log. Strings are the caller's; who and
 * party may be NULL (not said). at_ms 0 means now. */
typedef struct rete_access_rec {
	int64_t at_ms;
	const char *program; /* "rete audit timeline", "rete-broker" */
	const char *who;     /* the person (OS user) or party that read */
	const char *party;   /* the party the program acted as, if any */
	const char *what;    /* what was read: codes only */
} rete_access_rec;

/* rete_access_log: an open access record (a long-running program keeps one;
 * a command uses rete_access_record). */
typedef struct rete_access_log rete_access_log;

/* rete_access_log_open opens (creating, 0600, and its folder, 0700, when
 * missing) the access record at path, with retention keep; *out is the
 * caller's (rete_access_log_close). Lines past the retention are dropped
 * now and then again at most once an hour, on an append. sync: each append
 * is made durable (fdatasync) before it returns. Errors: RETE_EIO (m names
 * the file and the reason), RETE_ENOMEM. */
rete_err rete_access_log_open(const char *path, rete_keep keep, bool sync, rete_access_log **out,
			      rete_msg *m);

/* rete_access_log_add appends one line for r. Errors: RETE_EIO,
 * RETE_ENOMEM, RETE_EINVAL (r->program or r->what missing). */
rete_err rete_access_log_add(rete_access_log *l, const rete_access_rec *r, rete_msg *m);

/* RETE_ACCESS_SEGMENT_DEFAULT: the size at which the file is closed as a
 * part. */
#define RETE_ACCESS_SEGMENT_DEFAULT ((int64_t)64 << 20)

/* rete_access_log_set_segment sets l's part size (bytes; 0: one file). */
void rete_access_log_set_segment(rete_access_log *l, int64_t bytes);

/* rete_access_log_close closes *l and sets it to NULL; NULL is fine. */
void rete_access_log_close(rete_access_log **l);

/* rete_access_log_parts lists the closed parts of the record at path
 * closed at since_ms or later, oldest first (*out: malloc'd paths, *n of
 * them; free with rete_access_log_parts_free). A directory that cannot be
 * read lists none. */
rete_err rete_access_log_parts(const char *path, int64_t since_ms, char ***out, size_t *n);
void rete_access_log_parts_free(char **list, size_t n);

/* rete_access_log_prune drops the lines of path older than the retention
 * at now_ms (lines that do not parse are kept: never lose a record we
 * cannot read), rewriting the file atomically, and the parts of the record
 * closed before the retention (see above); *dropped (may be NULL) says
 * how many. A missing file is fine (0 dropped). Errors: RETE_EIO,
 * RETE_ENOMEM. */
rete_err rete_access_log_prune(const char *path, rete_keep keep, int64_t now_ms, size_t *dropped,
			       rete_msg *m);

/* rete_access_record appends one line to the access record at path, once:
 * open, add (durably), close. For commands (and `rete evidence`). Errors:
 * those of rete_access_log_open and rete_access_log_add. */
rete_err rete_access_record(const char *path, rete_keep keep, const rete_access_rec *r,
			    rete_msg *m);

#endif
