/* tz.h — local time in a named zone, without the process's TZ.
 *
 * The C library converts local time only in the zone of the environment
 * variable TZ, which belongs to the whole process: setting it on one thread
 * races every getenv of the others. This module reads the zone database's
 * files itself (RFC 8536 TZif, and the POSIX rule at the end of a version 2+
 * file for the years after its table) and answers for any zone on any
 * thread. Zones are read once and kept for the life of the process.
 */
#ifndef RETE_TZ_H
#define RETE_TZ_H

#include <stdint.h>

/* rete_tz_to_local returns the local wall-clock time, in seconds counted
 * like Unix time, of the instant utc_s in zone tz (a name such as
 * "Europe/Rome" under $TZDIR or /usr/share/zoneinfo). A zone that cannot be
 * read is UTC, as it is for the C library. */
int64_t rete_tz_to_local(const char *tz, int64_t utc_s);

/* rete_tz_to_utc returns the instant whose wall-clock time in tz is local_s.
 * A wall time that a change skips is read as the C library's mktime reads
 * it: in the type flagged daylight saving when one side alone is (02:30 on
 * a spring change day in Rome is 01:30Z, shown as 03:30; 01:30 in Dublin's
 * gap is 00:30Z, GMT), else with the offset before the change. One that
 * happens twice is the first (02:30 on an autumn day in Rome: 00:30Z). */
int64_t rete_tz_to_utc(const char *tz, int64_t local_s);

/* rete_days_from_civil: days since 1970-01-01 of the date y-mo-d (mo 1..12,
 * d may run past the month's end: it counts on). */
int64_t rete_days_from_civil(int64_t y, int mo, int d);

/* rete_civil_from_days: the date of day `days` since 1970-01-01; *wday is
 * 0 for Sunday .. 6 for Saturday. */
void rete_civil_from_days(int64_t days, int64_t *y, int *mo, int *d, int *wday);

#endif
