/* duration.h — durations of the configuration and deadlines.
 *
 * Durations are written `30s`, `15m`, `2h`, `5d` (calendar time) or `3wd`
 * (working days: Monday to Friday, minus listed holidays, counted in the
 * network's time zone). Dates on the command line are `YYYY-MM-DD`, whole
 * days in the network's time zone. Zones are read by proto/tz.c, never
 * through the process's TZ: these functions may run on any thread.
 */
#ifndef RETE_DURATION_H
#define RETE_DURATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RETE_DEFAULT_TZ "Europe/Rome"

/* A parsed duration: either milliseconds of calendar time or a number of
 * working days. */
typedef struct rete_duration {
	int64_t ms;           /* calendar duration, when working_days == 0 */
	int64_t working_days; /* > 0 for a `wd` duration */
} rete_duration;

/* The largest number a duration may have, of any unit. It never narrows:
 * a Directory already in the log is validated again with this parser
 * (proto/validate.c), so what was accepted once must stay accepted. */
#define RETE_DURATION_MAX_NUMBER 10000000009LL

/* rete_duration_parse parses s ("30s", "15m", "2h", "5d", "3wd"), a number
 * of at most RETE_DURATION_MAX_NUMBER. RETE_EINVAL with a sentence naming
 * the value and the accepted forms. */
rete_err rete_duration_parse(const char *s, rete_duration *out, rete_msg *m);

/* rete_date_valid: true when s is a real calendar date YYYY-MM-DD. */
bool rete_date_valid(const char *s);

/* rete_deadline computes start_ms + limit. For working days, the deadline is
 * the same local time of day on the Nth working day after the start (in tz,
 * NULL or "" = RETE_DEFAULT_TZ), skipping Saturdays, Sundays and the
 * holidays (YYYY-MM-DD). Errors: RETE_EINVAL (bad limit or holiday). */
rete_err rete_deadline(int64_t start_ms, const char *limit, const char *const *holidays,
		       size_t nholidays, const char *tz, int64_t *due_ms, rete_msg *m);

/* rete_day_bounds converts a date YYYY-MM-DD in tz into [*start_ms, *end_ms),
 * the milliseconds of that whole local day. RETE_EINVAL for a bad date. */
rete_err rete_day_bounds(const char *date, const char *tz, int64_t *start_ms,
			 int64_t *end_ms, rete_msg *m);

/* rete_now_ms is the current Unix time in milliseconds. */
int64_t rete_now_ms(void);

/* The tolerances the checks of the broker's clock allow (docs/auditing.md,
 * "The broker's clock"). RETE_CLOCK_STEP_MS: how far a loggedAt may go back
 * behind an earlier entry's. NTP slews, and steps the clock only by the
 * offset it measured, which on a synchronised server is well under a
 * second and a few seconds after a boot or a long suspend; a minute back
 * is a clock set by hand or by a wrong time source. RETE_CLOCK_SKEW_MS:
 * how far two machines' clocks (an agency's createdAt and the broker's
 * loggedAt; the broker's and its time-stamping authority's) may differ:
 * five minutes, the skew Kerberos accepts between hosts that keep time
 * with NTP, and what an agency's office PC without NTP keeps for months. */
#define RETE_CLOCK_STEP_MS (60 * 1000)
#define RETE_CLOCK_SKEW_MS (5 * 60 * 1000)

#endif
