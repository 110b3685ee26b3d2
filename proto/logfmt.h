/* logfmt.h — the shape of a log line, for a terminal, a file or journald.
 *
 * The broker and the agent write one line per event on stderr. Run by hand
 * or into a file, a line reads
 *   2026-12-06T07:01:02.345Z rete-broker warning: what happened
 * Under systemd, stderr is a stream to journald, which adds the time and
 * the program name itself and takes the priority from an sd-daemon prefix
 * (<3> error, <4> warning, <6> info, <7> debug), so the same line becomes
 *   <4>what happened
 * and `journalctl -u rete-broker -p warning` shows exactly the warnings and
 * errors. systemd names the stream in JOURNAL_STREAM ("DEV:INO" of the
 * stream); the prefix is used only when stderr is still that very stream
 * (a program started from a service with 2>file is not logging to journald).
 * Owns nothing; pure functions except rete_log_to_journal (decided once).
 */
#ifndef RETE_LOGFMT_H
#define RETE_LOGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The levels, numbered as syslog's priorities. */
typedef enum {
	RETE_LOG_ERROR = 3,
	RETE_LOG_WARNING = 4,
	RETE_LOG_INFO = 6,
	RETE_LOG_DEBUG = 7,
} rete_log_level;

/* rete_log_level_name is "error", "warning", "info" or "debug" (static). */
const char *rete_log_level_name(rete_log_level level);

/* rete_log_level_from_name maps those words back (anything else is info:
 * a line is never lost for a misspelt level). */
rete_log_level rete_log_level_from_name(const char *name);

/* rete_log_journal_stream: whether fd is the stream journal_stream names
 * ("DEV:INO" in decimal, as systemd sets JOURNAL_STREAM; NULL or malformed
 * is false), compared with fstat(fd). */
bool rete_log_journal_stream(const char *journal_stream, int fd);

/* rete_log_to_journal: rete_log_journal_stream(getenv("JOURNAL_STREAM"),
 * stderr), decided on the first call and kept (safe from any thread). */
bool rete_log_to_journal(void);

/* rete_log_format writes one whole line, newline included, into out (size
 * bytes, the caller's; NUL-terminated when size > 0) and returns the length
 * the whole line needs, as snprintf does. text must already be escaped
 * (logline.h); who (the agent's id) may be NULL. journal: "<N>[WHO: ]TEXT";
 * otherwise "TIME PROGRAM [WHO ]LEVEL: TEXT" with time_ms as RFC 3339 UTC. */
size_t rete_log_format(char *out, size_t size, bool journal, int64_t time_ms, const char *program,
		       const char *who, rete_log_level level, const char *text);

/* rete_log_logged_text writes the broker's line for an entry it logged,
 * "logged KIND ID from SENDER to RECIPIENT at index INDEX", into out
 * (size bytes, the caller's; NUL-terminated when size > 0) and returns the
 * length the whole needs, as snprintf(out, size, "logged %s %s from %s to
 * %s at index %" PRIu64, ...) does, with no format to parse: it is one
 * line per logged entry. Not escaped (rete_log_escape is the logger's). */
size_t rete_log_logged_text(char *out, size_t size, const char *kind, const char *id,
			    const char *sender, const char *recipient, uint64_t index);

#endif
