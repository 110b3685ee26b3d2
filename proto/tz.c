/* tz.c — see tz.h. */
#define _GNU_SOURCE
#include "tz.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A day of a POSIX rule: Jn (1..365, no 29 February), n (0..365), or
 * Mm.w.d (month m, week w where 5 is the last, weekday d with 0 Sunday),
 * and the local time of day of the change, in seconds (may be negative or
 * past midnight, RFC 8536 3.3.1). */
struct tz_rule_day {
	char kind; /* 'J', 'n' or 'M' */
	int a, b, c;
	int32_t time;
};

struct tz_zone {
	char name[208];
	uint32_t ntrans;
	int64_t *trans;  /* ntrans instants, ascending */
	uint8_t *idx;    /* ntrans types */
	uint32_t ntypes; /* 0: UTC (a zone that could not be read) */
	int32_t *utoff;  /* ntypes offsets from UTC, seconds east */
	uint8_t *isdst;  /* ntypes: the type is flagged daylight saving */
	bool has_rule;   /* the closing POSIX rule, after the last change */
	bool rule_dst;
	int32_t std_off, dst_off;
	struct tz_rule_day start, end;
};

/* Zones read, kept for the life of the process. A process that asks for
 * more names than this reads each further zone at every call. */
#define TZ_CACHE 32
static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz_zone *tz_cache[TZ_CACHE];
static size_t tz_ncache;

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static bool leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* leap years in [0, y) on the proleptic calendar, for differences only */
static int64_t leaps_before(int64_t y)
{
	return floor_div(y - 1, 4) - floor_div(y - 1, 100) + floor_div(y - 1, 400);
}

int64_t rete_days_from_civil(int64_t y, int mo, int d)
{
	static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
	y += floor_div(mo - 1, 12);
	mo = (int)(mo - 1 - 12 * floor_div(mo - 1, 12)) + 1;
	int64_t days = 365 * (y - 1970) + leaps_before(y) - leaps_before(1970);
	days += before[mo - 1] + (mo > 2 && leap_year(y) ? 1 : 0);
	return days + d - 1;
}

void rete_civil_from_days(int64_t days, int64_t *y, int *mo, int *d, int *wday)
{
	int64_t yy = 1970 + floor_div(days * 400, 146097);
	while (rete_days_from_civil(yy, 1, 1) > days)
		yy--;
	while (rete_days_from_civil(yy + 1, 1, 1) <= days)
		yy++;
	int m = 12;
	while (m > 1 && rete_days_from_civil(yy, m, 1) > days)
		m--;
	*y = yy;
	*mo = m;
	*d = (int)(days - rete_days_from_civil(yy, m, 1)) + 1;
	*wday = (int)(days + 4 - 7 * floor_div(days + 4, 7)); /* 1970-01-01: Thursday */
}

/* ---- the closing POSIX rule ("CET-1CEST,M3.5.0,M10.5.0/3") ---- */

static const char *rule_name(const char *p)
{
	const char *s = p;
	if (*p == '<') {
		while (*p != '\0' && *p != '>')
			p++;
		return *p == '>' ? p + 1 : NULL;
	}
	while (isalpha((unsigned char)*p))
		p++;
	return p - s >= 3 ? p : NULL;
}

/* [+-]h[h..][:mm[:ss]], hours at most max_h */
static const char *rule_hms(const char *p, int max_h, int32_t *out)
{
	int sign = 1, h = 0, mi = 0, se = 0;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p)) {
		h = h * 10 + (*p++ - '0');
		if (h > max_h)
			return NULL;
	}
	for (int part = 0; part < 2 && *p == ':'; part++) {
		p++;
		if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
			return NULL;
		int v = (p[0] - '0') * 10 + (p[1] - '0');
		if (v > 59)
			return NULL;
		if (part == 0)
			mi = v;
		else
			se = v;
		p += 2;
	}
	*out = sign * (h * 3600 + mi * 60 + se);
	return p;
}

static const char *rule_number(const char *p, int lo, int hi, int *out)
{
	int v = 0;
	if (!isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (*p++ - '0');
		if (v > hi)
			return NULL;
	}
	if (v < lo)
		return NULL;
	*out = v;
	return p;
}

static const char *rule_day(const char *p, struct tz_rule_day *r)
{
	memset(r, 0, sizeof(*r));
	r->time = 2 * 3600;
	if (*p == 'J') {
		r->kind = 'J';
		p = rule_number(p + 1, 1, 365, &r->a);
	} else if (*p == 'M') {
		r->kind = 'M';
		p = rule_number(p + 1, 1, 12, &r->a);
		if (p == NULL || *p++ != '.')
			return NULL;
		p = rule_number(p, 1, 5, &r->b);
		if (p == NULL || *p++ != '.')
			return NULL;
		p = rule_number(p, 0, 6, &r->c);
	} else {
		r->kind = 'n';
		p = rule_number(p, 0, 365, &r->a);
	}
	if (p != NULL && *p == '/')
		p = rule_hms(p + 1, 167, &r->time);
	return p;
}

/* rule_parse fills the zone's closing rule from s; false when it is not a
 * rule this reader knows (the zone then keeps its last change's offset). */
static bool rule_parse(struct tz_zone *z, const char *s)
{
	int32_t off;
	const char *p = rule_name(s);
	if (p == NULL || (p = rule_hms(p, 24, &off)) == NULL)
		return false;
	z->std_off = -off;
	z->rule_dst = false;
	if (*p == '\0')
		return true;
	if ((p = rule_name(p)) == NULL)
		return false;
	z->dst_off = z->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if ((p = rule_hms(p, 24, &off)) == NULL)
			return false;
		z->dst_off = -off;
	}
	if (*p != ',') /* a DST name with no rule: not written by zic */
		return false;
	if ((p = rule_day(p + 1, &z->start)) == NULL || *p != ',' ||
	    (p = rule_day(p + 1, &z->end)) == NULL || *p != '\0')
		return false;
	z->rule_dst = true;
	return true;
}

/* the instant of a rule's change in year y, given the offset in force before it */
static int64_t rule_instant(const struct tz_rule_day *r, int64_t y, int32_t before)
{
	int64_t day;
	if (r->kind == 'J')
		day = rete_days_from_civil(y, 1, 1) + r->a - 1 + (leap_year(y) && r->a >= 60 ? 1 : 0);
	else if (r->kind == 'n')
		day = rete_days_from_civil(y, 1, 1) + r->a;
	else {
		int64_t first = rete_days_from_civil(y, r->a, 1), yy;
		int mo, d, wday;
		rete_civil_from_days(first, &yy, &mo, &d, &wday);
		day = first + (r->c - wday + 7) % 7 + 7 * (r->b - 1);
		while (day >= rete_days_from_civil(y, r->a + 1, 1))
			day -= 7;
	}
	return day * 86400 + r->time - before;
}

static int32_t rule_offset(const struct tz_zone *z, int64_t u, bool *dst_out)
{
	*dst_out = false;
	if (!z->rule_dst)
		return z->std_off;
	int64_t y;
	int mo, d, wday;
	rete_civil_from_days(floor_div(u + z->std_off, 86400), &y, &mo, &d, &wday);
	int64_t s = rule_instant(&z->start, y, z->std_off);
	int64_t e = rule_instant(&z->end, y, z->dst_off);
	bool dst = s < e ? (u >= s && u < e) : !(u >= e && u < s);
	*dst_out = dst;
	return dst ? z->dst_off : z->std_off;
}

/* zone_type: seconds east of UTC in force at instant u; *dst whether that
 * type is flagged daylight saving */
static int32_t zone_type(const struct tz_zone *z, int64_t u, bool *dst)
{
	*dst = false;
	if (z->ntypes == 0)
		return 0;
	if (z->ntrans == 0) {
		if (z->has_rule)
			return rule_offset(z, u, dst);
		*dst = z->isdst[0] != 0;
		return z->utoff[0];
	}
	uint32_t i = 0;
	if (u >= z->trans[0]) {
		uint32_t lo = 0, hi = z->ntrans - 1; /* the last change at or before u */
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo + 1) / 2;
			if (z->trans[mid] <= u)
				lo = mid;
			else
				hi = mid - 1;
		}
		if (lo == z->ntrans - 1 && z->has_rule)
			return rule_offset(z, u, dst);
		i = z->idx[lo];
	}
	*dst = z->isdst[i] != 0;
	return z->utoff[i];
}

/* zone_offset: seconds east of UTC in force at instant u */
static int32_t zone_offset(const struct tz_zone *z, int64_t u)
{
	bool dst;
	return zone_type(z, u, &dst);
}

/* ---- reading a TZif file (RFC 8536) ---- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* tzif_parse reads buf into z; false when it is not a TZif file whose
 * counts fit its length (the zone is then UTC). */
static bool tzif_parse(struct tz_zone *z, const uint8_t *buf, size_t len)
{
	size_t at = 0;
	int timesize = 4;

	for (int pass = 0; pass < 2; pass++) {
		if (len - at < 44 || memcmp(buf + at, "TZif", 4) != 0)
			return false;
		char version = (char)buf[at + 4];
		uint64_t isut = be32(buf + at + 20), isstd = be32(buf + at + 24),
			 leap = be32(buf + at + 28), timecnt = be32(buf + at + 32),
			 typecnt = be32(buf + at + 36), charcnt = be32(buf + at + 40);
		if (typecnt == 0 || typecnt > 256 || timecnt > 1000000 || leap > 100000 ||
		    charcnt > 100000 || isut > typecnt || isstd > typecnt)
			return false;
		uint64_t size = timecnt * (uint64_t)timesize + timecnt + typecnt * 6 + charcnt +
				leap * (uint64_t)(timesize + 4) + isstd + isut;
		at += 44;
		if (size > len - at)
			return false;
		if (pass == 0 && version >= '2') {
			at += size; /* the version 1 block; the 64-bit one follows */
			timesize = 8;
			continue;
		}
		const uint8_t *p = buf + at;
		z->ntrans = (uint32_t)timecnt;
		z->ntypes = (uint32_t)typecnt;
		z->trans = calloc(timecnt + 1, sizeof(*z->trans));
		z->idx = calloc(timecnt + 1, 1);
		z->utoff = calloc(typecnt, sizeof(*z->utoff));
		z->isdst = calloc(typecnt, 1);
		if (z->trans == NULL || z->idx == NULL || z->utoff == NULL || z->isdst == NULL)
			return false;
		for (uint64_t i = 0; i < timecnt; i++, p += timesize) {
			z->trans[i] = timesize == 8 ? be64(p) : (int32_t)be32(p);
			if (i > 0 && z->trans[i] <= z->trans[i - 1])
				return false;
		}
		for (uint64_t i = 0; i < timecnt; i++, p++) {
			if (*p >= typecnt)
				return false;
			z->idx[i] = *p;
		}
		for (uint64_t i = 0; i < typecnt; i++, p += 6) {
			int32_t off = (int32_t)be32(p);
			if (off <= -26 * 3600 || off >= 26 * 3600)
				return false;
			z->utoff[i] = off;
			z->isdst[i] = p[4] != 0;
		}
		at += size;
		if (timesize == 8 && len - at >= 2 && buf[at] == '\n') {
			const uint8_t *nl = memchr(buf + at + 1, '\n', len - at - 1);
			char rule[128];
			size_t n = nl != NULL ? (size_t)(nl - (buf + at + 1)) : 0;
			if (nl != NULL && n > 0 && n < sizeof(rule)) {
				memcpy(rule, buf + at + 1, n);
				rule[n] = '\0';
				z->has_rule = rule_parse(z, rule);
			}
		}
		return true;
	}
	return false;
}

static void zone_free(struct tz_zone *z)
{
	if (z == NULL)
		return;
	free(z->trans);
	free(z->idx);
	free(z->utoff);
	free(z->isdst);
	free(z);
}

static bool zone_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= 200 || name[0] == '/' || strstr(name, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("/_+-.", name[i]) == NULL)
			return false;
	return true;
}

/* zone_load reads the zone's file; what cannot be read is UTC (no types).
 * NULL only when memory ran out. */
static struct tz_zone *zone_load(const char *name)
{
	struct tz_zone *z = calloc(1, sizeof(*z));
	if (z == NULL)
		return NULL;
	snprintf(z->name, sizeof(z->name), "%s", name);
	if (!zone_name_ok(name))
		return z;
	const char *dir = getenv("TZDIR");
	if (dir == NULL || dir[0] == '\0' || strlen(dir) > 256)
		dir = "/usr/share/zoneinfo";
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* O_NONBLOCK: a named pipe put there answers at once instead of hanging */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return z;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size <= (1 << 20)) {
		uint8_t *buf = malloc((size_t)st.st_size);
		size_t got = 0;
		while (buf != NULL && got < (size_t)st.st_size) {
			ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (buf != NULL && got == (size_t)st.st_size && !tzif_parse(z, buf, got)) {
			free(z->trans);
			free(z->idx);
			free(z->utoff);
			free(z->isdst);
			z->trans = NULL;
			z->idx = NULL;
			z->utoff = NULL;
			z->isdst = NULL;
			z->ntrans = z->ntypes = 0;
			z->has_rule = false;
		}
		free(buf);
	}
	close(fd);
	return z;
}

/* zone_get: the zone named (NULL or "" is UTC). *tmp is set when the zone
 * was read for this call only; the caller frees it with zone_free. */
static const struct tz_zone *zone_get(const char *name, struct tz_zone **tmp)
{
	static const struct tz_zone utc;
	*tmp = NULL;
	if (name == NULL || name[0] == '\0')
		return &utc;
	pthread_mutex_lock(&tz_lock);
	for (size_t i = 0; i < tz_ncache; i++)
		if (strcmp(tz_cache[i]->name, name) == 0) {
			const struct tz_zone *z = tz_cache[i];
			pthread_mutex_unlock(&tz_lock);
			return z;
		}
	struct tz_zone *z = zone_load(name);
	if (z != NULL && tz_ncache < TZ_CACHE && strlen(name) < sizeof(z->name))
		tz_cache[tz_ncache++] = z;
	else
		*tmp = z;
	pthread_mutex_unlock(&tz_lock);
	return z != NULL ? z : &utc;
}

int64_t rete_tz_to_local(const char *tz, int64_t utc_s)
{
	struct tz_zone *tmp;
	const struct tz_zone *z = zone_get(tz, &tmp);
	int64_t l = utc_s + zone_offset(z, utc_s);
	zone_free(tmp);
	return l;
}

int64_t rete_tz_to_utc(const char *tz, int64_t local_s)
{
	struct tz_zone *tmp;
	const struct tz_zone *z = zone_get(tz, &tmp);
	/* the offsets a day and a half either side; a change between them makes
	 * local_s fall before it, after it, in its gap or in its overlap */
	int32_t oe = zone_offset(z, local_s - 129600), ol = zone_offset(z, local_s + 129600);
	int64_t te = local_s - oe, tl = local_s - ol, t;
	bool ve = zone_offset(z, te) == oe, vl = zone_offset(z, tl) == ol;
	if (ve)
		t = te; /* before the change, or the first of a time that happens twice */
	else if (vl)
		t = tl;
	else if (oe != ol) {
		/* in the gap: as the C library's mktime reads it, the candidate
		 * whose instant falls in a type flagged daylight saving when one
		 * alone does (02:30 in Rome's spring gap is 01:30Z, CEST; 01:30
		 * in Dublin's, whose winter is the flagged type, is 00:30Z, GMT),
		 * else the offset before the change (Cancun's 2015 change) */
		bool de, dl;
		(void)zone_type(z, te, &de);
		(void)zone_type(z, tl, &dl);
		t = dl && !de ? tl : te;
	}
	else
		/* two changes within three days (none in today's zones) */
		t = local_s - zone_offset(z, local_s - zone_offset(z, local_s));
	zone_free(tmp);
	return t;
}
