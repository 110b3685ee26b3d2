/* duration.c — see duration.h. */
#define _GNU_SOURCE
#include "duration.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* localtime_r and mktime read the process-wide TZ; every conversion here
 * sets it to the zone asked for under this lock, so two zones never mix. */
static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static char tz_current[128];

static void tz_enter(const char *tz)
{
	pthread_mutex_lock(&tz_lock);
	if (tz == NULL || *tz == '\0')
		tz = RETE_DEFAULT_TZ;
	if (strcmp(tz_current, tz) != 0) {
		setenv("TZ", tz, 1);
		tzset();
		snprintf(tz_current, sizeof(tz_current), "%s", tz);
	}
}

static void tz_leave(void)
{
	pthread_mutex_unlock(&tz_lock);
}

int64_t rete_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rete_err rete_duration_parse(const char *s, rete_duration *out, rete_msg *m)
{
	static const char accepted[] =
	    "a whole number followed by s, m, h, d or wd (e.g. 30s, 15m, 2h, 5d, 3wd)";
	const char *p = s;
	int64_t n = 0;

	if (s == NULL || !isdigit((unsigned char)*s))
		return rete_msg_set(m, RETE_EINVAL, "duration '%s' is not valid; expected %s",
				    s ? s : "", accepted);
	while (isdigit((unsigned char)*p)) {
		n = n * 10 + (*p - '0'); /* at most 10^10 + 9: no overflow */
		if (n > 1000000000)
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "duration '%s' is too large; expected at most 1000000000 "
			    "of its unit (and less where the setting says so)",
			    s);
		p++;
	}
	memset(out, 0, sizeof(*out));
	if (strcmp(p, "s") == 0)
		out->ms = n * 1000;
	else if (strcmp(p, "m") == 0)
		out->ms = n * 60 * 1000;
	else if (strcmp(p, "h") == 0)
		out->ms = n * 3600 * 1000;
	else if (strcmp(p, "d") == 0)
		out->ms = n * 86400 * 1000;
	else if (strcmp(p, "wd") == 0)
		out->working_days = n;
	else if (*p == '\0')
		return rete_msg_set(m, RETE_EINVAL, "duration '%s' has no unit; expected %s", s,
				    accepted);
	else
		return rete_msg_set(m, RETE_EINVAL, "duration '%s' has unit '%s'; expected %s", s,
				    p, accepted);
	if (out->ms == 0 && out->working_days == 0)
		return rete_msg_set(m, RETE_EINVAL, "duration '%s' is zero; expected %s", s,
				    accepted);
	return RETE_OK;
}

static bool parse_date(const char *s, int *y, int *mo, int *d)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return false;
	*y = atoi(s);
	*mo = atoi(s + 5);
	*d = atoi(s + 8);
	if (*y < 1970 || *mo < 1 || *mo > 12 || *d < 1)
		return false;
	int max = mdays[*mo - 1];
	if (*mo == 2 && ((*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0))
		max = 29;
	return *d <= max;
}

bool rete_date_valid(const char *s)
{
	int y, mo, d;
	return parse_date(s, &y, &mo, &d);
}

static bool is_holiday(const struct tm *t, const char *const *holidays, size_t n)
{
	char day[48];
	snprintf(day, sizeof(day), "%04d-%02d-%02d", t->tm_year + 1900, t->tm_mon + 1,
		 t->tm_mday);
	for (size_t i = 0; i < n; i++)
		if (strcmp(holidays[i], day) == 0)
			return true;
	return false;
}

rete_err rete_deadline(int64_t start_ms, const char *limit, const char *const *holidays,
		       size_t nholidays, const char *tz, int64_t *due_ms, rete_msg *m)
{
	rete_duration d;
	rete_err err = rete_duration_parse(limit, &d, m);
	if (err != RETE_OK)
		return err;
	for (size_t i = 0; i < nholidays; i++)
		if (!rete_date_valid(holidays[i]))
			return rete_msg_set(m, RETE_EINVAL,
					    "holiday '%s' is not a date; expected YYYY-MM-DD",
					    holidays[i]);
	if (d.working_days == 0) {
		*due_ms = start_ms + d.ms;
		return RETE_OK;
	}

	time_t t = (time_t)(start_ms / 1000);
	int64_t frac = start_ms % 1000;
	struct tm lt;
	int64_t left = d.working_days;

	tz_enter(tz);
	localtime_r(&t, &lt);
	/* Step one calendar day at a time in local time, so that days with a
	 * daylight-saving change keep the same wall-clock time of day. */
	while (left > 0) {
		lt.tm_mday += 1;
		lt.tm_isdst = -1;
		time_t next = mktime(&lt);
		localtime_r(&next, &lt);
		if (lt.tm_wday != 0 && lt.tm_wday != 6 && !is_holiday(&lt, holidays, nholidays))
			left--;
	}
	lt.tm_isdst = -1;
	t = mktime(&lt);
	tz_leave();
	*due_ms = (int64_t)t * 1000 + frac;
	return RETE_OK;
}

rete_err rete_day_bounds(const char *date, const char *tz, int64_t *start_ms,
			 int64_t *end_ms, rete_msg *m)
{
	int y, mo, d;
	struct tm lt;

	if (!parse_date(date, &y, &mo, &d))
		return rete_msg_set(m, RETE_EINVAL,
				    "date '%s' is not valid; expected YYYY-MM-DD (e.g. 2026-11-22)",
				    date ? date : "");
	tz_enter(tz);
	memset(&lt, 0, sizeof(lt));
	lt.tm_year = y - 1900;
	lt.tm_mon = mo - 1;
	lt.tm_mday = d;
	lt.tm_isdst = -1;
	time_t a = mktime(&lt);
	memset(&lt, 0, sizeof(lt));
	lt.tm_year = y - 1900;
	lt.tm_mon = mo - 1;
	lt.tm_mday = d + 1;
	lt.tm_isdst = -1;
	time_t b = mktime(&lt);
	tz_leave();
	*start_ms = (int64_t)a * 1000;
	*end_ms = (int64_t)b * 1000;
	return RETE_OK;
}
