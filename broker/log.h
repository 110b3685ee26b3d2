/* log.h — the broker's log lines on stderr.
 *
 * One line per event, readable by a person and by grep: an RFC 3339 UTC
 * time, a level word, then what happened, who and which id; under journald
 * (JOURNAL_STREAM names our stderr) a syslog priority prefix instead of the
 * time, program and level, which journald adds itself (proto/logfmt.h).
 * Safe from any
 * thread (each line is written whole). Debug lines appear only with -v.
 * Under load the broker logs thousands of entries a second, so while
 * buffering is on (broker_log_buffer) info and debug lines are gathered and
 * written together by broker_log_flush, which the main loop calls after
 * every batch and before it waits; a warning or an error flushes at once.
 */
#ifndef RETE_BROKER_LOG_H
#define RETE_BROKER_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "logfmt.h"

/* broker_log_verbose turns debug lines on or off (default off). */
void broker_log_verbose(bool on);

/* broker_log_is_verbose: whether debug lines are on. */
bool broker_log_is_verbose(void);

/* broker_log_buffer turns the gathering of info and debug lines on or off
 * (default off: every line is written at once). Turning it off flushes. */
void broker_log_buffer(bool on);

/* broker_log_flush writes the lines gathered so far. */
void broker_log_flush(void);

/* broker_log_info, _warn, _error, _debug format one line on stderr. */
void broker_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void broker_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void broker_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void broker_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* broker_log_info_text writes text (len bytes, the caller's, formatted
 * already) as one info line: what broker_log_info("%s", text) writes,
 * without the format machinery, for the line of every logged entry
 * (rete_log_logged_text). */
void broker_log_info_text(const char *text, size_t len);

/* broker_log_limited formats one line of the given level, but at most one
 * per key and minute (proto/ratelimit.h): key names the kind of line and
 * the party or address ("refused connections from 10.0.0.7 (keys not in
 * the directory)"); the lines held back are said as "KEY: N more in the
 * last minute" when the minute ends. For lines a peer can repeat at will. */
void broker_log_limited(rete_log_level level, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* broker_log_sweep says the counts of the windows that ended (the main
 * loop calls it at least once a second, through broker_log_flush). */
void broker_log_sweep(void);

/* broker_log_limited_flush says the counts held back in windows not yet
 * ended too (the broker calls it before it stops: they would be lost). */
void broker_log_limited_flush(void);

#endif
