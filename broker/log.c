/* log.c — see log.h. */
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "logline.h"

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

static void log_line(const char *level, bool urgent, const char *fmt, va_list ap)
{
	char small[2048], esc_small[4096], stamp[40];
	char *text = small, *esc = esc_small, *line = NULL;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* The whole text, however long (a refusal's sentence is not cut). */
	va_list ap2;
	va_copy(ap2, ap);
	int tn = vsnprintf(small, sizeof(small), fmt, ap);
	if (tn >= (int)sizeof(small) && (text = malloc((size_t)tn + 1)) != NULL)
		vsnprintf(text, (size_t)tn + 1, fmt, ap2);
	else if (tn >= (int)sizeof(small))
		text = small; /* out of memory: the cut text */
	va_end(ap2);
	/* Peers choose ids, names and texts: everything is escaped, so one
	 * call is one line (a newline would forge a line of its own). */
	size_t tl = strlen(text);
	size_t need = rete_log_escape(esc_small, sizeof(esc_small), text, tl);
	if (need >= sizeof(esc_small) && (esc = malloc(need + 1)) != NULL)
		rete_log_escape(esc, need + 1, text, tl);
	else if (need >= sizeof(esc_small))
		esc = esc_small;
	size_t cap = strlen(esc) + strlen(stamp) + strlen(level) + 64;
	char line_small[6200];
	line = cap <= sizeof(line_small) ? line_small : malloc(cap);
	size_t len = 0;
	if (line) {
		int n = snprintf(line, cap, "%s.%03ldZ rete-broker %s: %s\n", stamp,
				 ts.tv_nsec / 1000000, level, esc);
		len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
	}
	pthread_mutex_lock(&gather.lock);
	if (!gather.on || urgent || gather.len + len > sizeof(gather.data))
		flush_locked();
	if (len && gather.on && !urgent && len <= sizeof(gather.data)) {
		memcpy(gather.data + gather.len, line, len);
		gather.len += len;
	} else if (len)
		write_all(line, len);
	pthread_mutex_unlock(&gather.lock);
	if (text != small)
		free(text);
	if (esc != esc_small)
		free(esc);
	if (line != line_small)
		free(line);
}

#define LOG_FN(name, level, urgent, cond)                                                          \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		if (!(cond))                                                                       \
			return;                                                                    \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_line(level, urgent, fmt, ap);                                                  \
		va_end(ap);                                                                        \
	}

LOG_FN(broker_log_info, "info", false, 1)
LOG_FN(broker_log_warn, "warning", true, 1)
LOG_FN(broker_log_error, "error", true, 1)
LOG_FN(broker_log_debug, "debug", false, atomic_load(&log_verbose))
