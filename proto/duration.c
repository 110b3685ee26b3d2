/* duration.c — see duration.h. */
#define _GNU_SOURCE
#include "duration.h"
#include "tz.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
		/* checked before the digit is added: n stays at most 10^10 + 9
		 * (RETE_DURATION_MAX_NUMBER), as it always has */
		if (n > (RETE_DURATION_MAX_NUMBER - 9) / 10)
			return rete_msg_set(m, RETE_EINVAL,
					    "duration '%s' is too large; expected at most %lld "
					    "of its unit (and less where the setting says so)",
					    s, (long long)RETE_DURATION_MAX_NUMBER);
		n = n * 10 + (*p - '0');
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

static bool is_holiday(int64_t day, const char *const *holidays, size_t n)
{
	int64_t y;
	int mo, d, wday;
	char text[48];
	rete_civil_from_days(day, &y, &mo, &d, &wday);
	snprintf(text, sizeof(text), "%04lld-%02d-%02d", (long long)y, mo, d);
	for (size_t i = 0; i < n; i++)
		if (strcmp(holidays[i], text) == 0)
			return true;
	return false;
}

static int64_t day_of(int64_t local_s)
{
	return local_s >= 0 ? local_s / 86400 : -((-local_s + 86399) / 86400);
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

	if (tz == NULL || *tz == '\0')
		tz = RETE_DEFAULT_TZ;
	int64_t t = start_ms / 1000, frac = start_ms % 1000;
	int64_t local = rete_tz_to_local(tz, t);
	int64_t day = day_of(local), secs = local - day * 86400;
	int64_t left = d.working_days;

	/* Step one calendar day at a time in local time, so that days with a
	 * daylight-saving change keep the same wall-clock time of day; a time
	 * a change skips moves on with the clock (02:30 becomes 03:30) and
	 * stays there, as it did when this was the C library's mktime. */
	while (left > 0) {
		t = rete_tz_to_utc(tz, (day + 1) * 86400 + secs);
		local = rete_tz_to_local(tz, t);
		day = day_of(local);
		secs = local - day * 86400;
		int64_t y;
		int mo, dd, wday;
		rete_civil_from_days(day, &y, &mo, &dd, &wday);
		if (wday != 0 && wday != 6 && !is_holiday(day, holidays, nholidays))
			left--;
	}
	*due_ms = t * 1000 + frac;
	return RETE_OK;
}

rete_err rete_day_bounds(const char *date, const char *tz, int64_t *start_ms,
			 int64_t *end_ms, rete_msg *m)
{
	int y, mo, d;

	if (!parse_date(date, &y, &mo, &d))
		return rete_msg_set(m, RETE_EINVAL,
				    "date '%s' is not valid; expected YYYY-MM-DD (e.g. 2026-11-22)",
				    date ? date : "");
	if (tz == NULL || *tz == '\0')
		tz = RETE_DEFAULT_TZ;
	int64_t a = rete_tz_to_utc(tz, rete_days_from_civil(y, mo, d) * 86400);
	int64_t b = rete_tz_to_utc(tz, rete_days_from_civil(y, mo, d + 1) * 86400);
	*start_ms = (int64_t)a * 1000;
	*end_ms = (int64_t)b * 1000;
	return RETE_OK;
}
