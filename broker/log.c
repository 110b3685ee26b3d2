/* log.c — see log.h. */
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "logfmt.h"
#include "logline.h"
#include "ratelimit.h"

static atomic_bool log_verbose;

#define LOG_BUF (64 * 1024)

static struct {
	pthread_mutex_t lock;
	bool on;
	size_t len;
	char data[LOG_BUF];
} gather = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* write_all writes n bytes to stderr; a log that cannot be written is
 * dropped (there is nowhere to say so). Called with gather.lock held. */
static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void flush_locked(void)
{
	write_all(gather.data, gather.len);
	gather.len = 0;
}

void broker_log_buffer(bool on)
{
	pthread_mutex_lock(&gather.lock);
	gather.on = on;
	if (!on)
		flush_locked();
	pthread_mutex_unlock(&gather.lock);
}

void broker_log_flush(void)
{
	broker_log_sweep(); /* the "N more" of windows that ended go out too */
	pthread_mutex_lock(&gather.lock);
	flush_locked();
	pthread_mutex_unlock(&gather.lock);
}

void broker_log_verbose(bool on)
{
	atomic_store(&log_verbose, on);
}

bool broker_log_is_verbose(void)
{
	return atomic_load(&log_verbose);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* write_line formats the escaped text as one line (logfmt.h: for journald
 * or with the time) and writes it, or gathers it while buffering. */
static void write_line(rete_log_level level, const char *esc)
{
	bool urgent = level <= RETE_LOG_WARNING;
	bool journal = rete_log_to_journal();
	int64_t now = wall_ms();
	char line_small[6200];
	char *line = line_small;
	size_t need = rete_log_format(line_small, sizeof(line_small), journal, now, "rete-broker",
				      NULL, level, esc);
	if (need >= sizeof(line_small)) {
		line = malloc(need + 1);
		if (line != NULL)
			rete_log_format(line, need + 1, journal, now, "rete-broker", NULL, level,
					esc);
		else { /* out of memory: the cut line, its newline restored */
			line = line_small;
			need = sizeof(line_small) - 1;
			line_small[need - 1] = '\n';
		}
	}
	size_t len = need;
	pthread_mutex_lock(&gather.lock);
	if (!gather.on || urgent || gather.len + len > sizeof(gather.data))
		flush_locked();
	if (len && gather.on && !urgent && len <= sizeof(gather.data)) {
		memcpy(gather.data + gather.len, line, len);
		gather.len += len;
	} else if (len)
		write_all(line, len);
	pthread_mutex_unlock(&gather.lock);
	if (line != line_small)
		free(line);
}

/* log_text escapes text (tl bytes) and writes it as one line. Peers
 * choose ids, names and texts: everything is escaped, so one call is one
 * line (a newline would forge a line of its own). */
static void log_text(rete_log_level level, const char *text, size_t tl)
{
	char esc_small[4096];
	char *esc = esc_small;
	size_t need = rete_log_escape(esc_small, sizeof(esc_small), text, tl);
	if (need >= sizeof(esc_small) && (esc = malloc(need + 1)) != NULL)
		rete_log_escape(esc, need + 1, text, tl);
	else if (need >= sizeof(esc_small))
		esc = esc_small;
	write_line(level, esc);
	if (esc != esc_small)
		free(esc);
}

static void log_line(rete_log_level level, const char *fmt, va_list ap)
{
	char small[2048];
	char *text = small;
	/* The whole text, however long (a refusal's sentence is not cut). */
	va_list ap2;
	va_copy(ap2, ap);
	int tn = vsnprintf(small, sizeof(small), fmt, ap);
	if (tn >= (int)sizeof(small) && (text = malloc((size_t)tn + 1)) != NULL)
		vsnprintf(text, (size_t)tn + 1, fmt, ap2);
	else if (tn >= (int)sizeof(small))
		text = small; /* out of memory: the cut text */
	va_end(ap2);
	log_text(level, text, strlen(text));
	if (text != small)
		free(text);
}

void broker_log_info_text(const char *text, size_t len)
{
	log_text(RETE_LOG_INFO, text, len);
}

/* One minute per key: an agent on an old key retries every few seconds,
 * and a flood of handshakes can come at thousands a second. */
#define LIMIT_WINDOW_MS 60000

static rete_ratelimit limiter = RETE_RATELIMIT_INITIALIZER(LIMIT_WINDOW_MS);

/* say_held writes the "N more" line of a key whose lines were held back. */
static void say_held(const char *key, int level, uint64_t held, void *arg)
{
	(void)arg;
	char text[RETE_RATELIMIT_KEY_MAX + 128];
	if (key != NULL)
		snprintf(text, sizeof(text), "%s: %" PRIu64 " more in the last minute", key, held);
	else
		snprintf(text, sizeof(text),
			 "%" PRIu64 " more lines of other repeated kinds in the last minute "
			 "(too many kinds at once to tell apart)",
			 held);
	char *esc = rete_log_escape_dup(text);
	write_line((rete_log_level)level, esc ? esc : "(out of memory for a log line)");
	free(esc);
}

void broker_log_limited(rete_log_level level, const char *key, const char *fmt, ...)
{
	if (level == RETE_LOG_DEBUG && !atomic_load(&log_verbose))
		return;
	uint64_t held = 0;
	if (!rete_ratelimit_admit(&limiter, key, (int)level, mono_ms(), &held))
		return;
	if (held > 0)
		say_held(key, (int)level, held, NULL);
	va_list ap;
	va_start(ap, fmt);
	log_line(level, fmt, ap);
	va_end(ap);
}

void broker_log_sweep(void)
{
	rete_ratelimit_sweep(&limiter, mono_ms(), say_held, NULL);
}

void broker_log_limited_flush(void)
{
	rete_ratelimit_flush(&limiter, say_held, NULL);
}

#define LOG_FN(name, level, cond)                                                                  \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		if (!(cond))                                                                       \
			return;                                                                    \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_line(level, fmt, ap);                                                          \
		va_end(ap);                                                                        \
	}

LOG_FN(broker_log_info, RETE_LOG_INFO, 1)
LOG_FN(broker_log_warn, RETE_LOG_WARNING, 1)
LOG_FN(broker_log_error, RETE_LOG_ERROR, 1)
LOG_FN(broker_log_debug, RETE_LOG_DEBUG, atomic_load(&log_verbose))
