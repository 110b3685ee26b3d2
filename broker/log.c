/* log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static atomic_bool log_verbose;

void broker_log_verbose(bool on)
{
	atomic_store(&log_verbose, on);
}

bool broker_log_is_verbose(void)
{
	return atomic_load(&log_verbose);
}

static void log_line(const char *level, const char *fmt, va_list ap)
{
	char text[1200];
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
	/* one fprintf per line: stdio locks the stream for the whole call */
	fprintf(stderr, "%s.%03ldZ rete-broker %s: %s\n", stamp, ts.tv_nsec / 1000000, level, text);
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

LOG_FN(broker_log_info, "info", 1)
LOG_FN(broker_log_warn, "warning", 1)
LOG_FN(broker_log_error, "error", 1)
LOG_FN(broker_log_debug, "debug", atomic_load(&log_verbose))
