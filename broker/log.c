/* log.c — see log.h. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	char text[1200], line[1300];
	char stamp[40];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(text, sizeof(text), fmt, ap);
	/* Peers choose ids and texts: no control characters (a newline would
	 * forge a log line of its own). */
	for (char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	int n = snprintf(line, sizeof(line), "%s.%03ldZ rete-broker %s: %s\n", stamp,
			 ts.tv_nsec / 1000000, level, text);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (len > 0 && line[len - 1] != '\n')
		line[len - 1] = '\n'; /* cut: still one line */
	pthread_mutex_lock(&gather.lock);
	if (!gather.on || urgent || gather.len + len > sizeof(gather.data))
		flush_locked();
	if (gather.on && !urgent) {
		memcpy(gather.data + gather.len, line, len);
		gather.len += len;
	} else
		write_all(line, len);
	pthread_mutex_unlock(&gather.lock);
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
