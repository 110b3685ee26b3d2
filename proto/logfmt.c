/* logfmt.c — see logfmt.h. */
#include "logfmt.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *rete_log_level_name(rete_log_level level)
{
	switch (level) {
	case RETE_LOG_ERROR:
		return "error";
	case RETE_LOG_WARNING:
		return "warning";
	case RETE_LOG_DEBUG:
		return "debug";
	case RETE_LOG_INFO:
	default:
		return "info";
	}
}

rete_log_level rete_log_level_from_name(const char *name)
{
	if (name == NULL)
		return RETE_LOG_INFO;
	if (strcmp(name, "error") == 0)
		return RETE_LOG_ERROR;
	if (strcmp(name, "warning") == 0)
		return RETE_LOG_WARNING;
	if (strcmp(name, "debug") == 0)
		return RETE_LOG_DEBUG;
	return RETE_LOG_INFO;
}

/* parse_u64 reads a decimal number from *p up to stop (or the end). */
static bool parse_u64(const char **p, char stop, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s != stop)
		return false;
	*out = v;
	*p = stop ? s + 1 : s;
	return true;
}

bool rete_log_journal_stream(const char *journal_stream, int fd)
{
	uint64_t dev, ino;
	const char *p = journal_stream;
	struct stat st;
	if (p == NULL || !parse_u64(&p, ':', &dev) || !parse_u64(&p, '\0', &ino))
		return false;
	if (fstat(fd, &st) != 0)
		return false;
	return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

static bool to_journal;
static pthread_once_t to_journal_once = PTHREAD_ONCE_INIT;

static void decide_journal(void)
{
	to_journal = rete_log_journal_stream(getenv("JOURNAL_STREAM"), STDERR_FILENO);
}

bool rete_log_to_journal(void)
{
	pthread_once(&to_journal_once, decide_journal);
	return to_journal;
}

/* put appends n bytes of p at *at in out (size bytes), as far as they fit
 * with a NUL after them, and moves *at on by n whatever fitted. */
static void put(char *out, size_t size, size_t *at, const char *p, size_t n)
{
	if (*at < size) {
		size_t room = size - 1 - *at; /* keep one for the NUL */
		memcpy(out + *at, p, n < room ? n : room);
	}
	*at += n;
}

/* put_end puts the NUL after what fitted of at bytes and returns at, the
 * length the whole needs (as snprintf returns it). */
static size_t put_end(char *out, size_t size, size_t at)
{
	if (size > 0)
		out[at < size ? at : size - 1] = '\0';
	return at;
}

/* The time stamp's seconds, formatted once per second per thread: every
 * logged entry has a line, and gmtime_r and strftime were a third of its
 * cost. */
static __thread time_t stamp_sec = (time_t)-1;
static __thread char stamp_text[32];
static __thread size_t stamp_len;

size_t rete_log_format(char *out, size_t size, bool journal, int64_t time_ms, const char *program,
		       const char *who, rete_log_level level, const char *text)
{
	if (journal) {
		char none[1];
		int n = snprintf(size ? out : none, size ? size : 1, "<%d>%s%s%s\n", (int)level,
				 who ? who : "", who ? ": " : "", text);
		return n < 0 ? 0 : (size_t)n;
	}
	/* "TIME PROGRAM [WHO ]LEVEL: TEXT\n", TIME as 2026-12-06T10:43:21.042Z */
	int64_t whole = time_ms / 1000, ms = time_ms % 1000;
	if (ms < 0) { /* before 1970: the second below, and what is past it */
		whole--;
		ms += 1000;
	}
	time_t sec = (time_t)whole;
	if (sec != stamp_sec) {
		struct tm tm;
		gmtime_r(&sec, &tm);
		stamp_len = strftime(stamp_text, sizeof(stamp_text), "%Y-%m-%dT%H:%M:%S", &tm);
		stamp_sec = sec;
	}
	char frac[6] = {
	    '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z',
	    ' '};
	const char *lv = rete_log_level_name(level);
	size_t at = 0;
	put(out, size, &at, stamp_text, stamp_len);
	put(out, size, &at, frac, sizeof(frac));
	put(out, size, &at, program, strlen(program));
	put(out, size, &at, " ", 1);
	if (who) {
		put(out, size, &at, who, strlen(who));
		put(out, size, &at, " ", 1);
	}
	put(out, size, &at, lv, strlen(lv));
	put(out, size, &at, ": ", 2);
	put(out, size, &at, text, strlen(text));
	put(out, size, &at, "\n", 1);
	return put_end(out, size, at);
}

size_t rete_log_logged_text(char *out, size_t size, const char *kind, const char *id,
			    const char *sender, const char *recipient, uint64_t index)
{
	char digits[20];
	size_t nd = 0;
	do { /* the decimal digits, last first */
		digits[sizeof(digits) - 1 - nd++] = (char)('0' + index % 10);
		index /= 10;
	} while (index);
	size_t at = 0;
	put(out, size, &at, "logged ", 7);
	put(out, size, &at, kind, strlen(kind));
	put(out, size, &at, " ", 1);
	put(out, size, &at, id, strlen(id));
	put(out, size, &at, " from ", 6);
	put(out, size, &at, sender, strlen(sender));
	put(out, size, &at, " to ", 4);
	put(out, size, &at, recipient, strlen(recipient));
	put(out, size, &at, " at index ", 10);
	put(out, size, &at, digits + sizeof(digits) - nd, nd);
	return put_end(out, size, at);
}
