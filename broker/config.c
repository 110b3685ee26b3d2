/* config.c — see config.h.
 *
 * inih calls us once per key; we only record (section, key, value, line)
 * there and check everything afterwards, so that duplicates, missing keys
 * and cross-references (consent_services within services, unique keys) are
 * all found in one pass and reported together. inih reports only the first
 * syntax error, so the line reader checks the syntax of every line itself.
 */
#define _GNU_SOURCE
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "conffile.h"
#include "duration.h"
#include "endpoint.h"
#include "fileplace.h"
#include "store_identity.h"
#include "validate.h"

/* --- kinds --------------------------------------------------------------- */

static const struct {
	const char *name;
	Rete__PartyKind kind;
} kinds[] = {
    {"social-services", RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES},
    {"job-centre", RETE__PARTY_KIND__PARTY_KIND_JOB_CENTRE},
    {"health", RETE__PARTY_KIND__PARTY_KIND_HEALTH},
    {"family-centre", RETE__PARTY_KIND__PARTY_KIND_FAMILY_CENTRE},
    {"school", RETE__PARTY_KIND__PARTY_KIND_SCHOOL},
    {"cooperative", RETE__PARTY_KIND__PARTY_KIND_COOPERATIVE},
    {"coordinator", RETE__PARTY_KIND__PARTY_KIND_COORDINATOR},
    {"auditor", RETE__PARTY_KIND__PARTY_KIND_AUDITOR},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))
#define KIND_LIST                                                                                  \
	"social-services, job-centre, health, family-centre, school, cooperative, "                \
	"coordinator, auditor"
#define AGENCY_KIND_LIST "social-services, job-centre, health, family-centre, school, cooperative"

const char *broker_kind_name(Rete__PartyKind k)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (kinds[i].kind == k)
			return kinds[i].name;
	if (k == RETE__PARTY_KIND__PARTY_KIND_BROKER)
		return "broker";
	return "unknown";
}

static bool kind_from_name(const char *s, Rete__PartyKind *out)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strcmp(kinds[i].name, s) == 0) {
			*out = kinds[i].kind;
			return true;
		}
	return false;
}

bool broker_kind_is_agency(Rete__PartyKind k)
{
	return k >= RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES &&
	       k <= RETE__PARTY_KIND__PARTY_KIND_COOPERATIVE;
}

/* --- raw parse ------------------------------------------------------------ */

struct kv {
	char *section, *key, *value;
	int line;
	bool used;
};

struct sec {
	char *name;
	int line;
};

struct parse {
	const char *file;
	char *dir;
	FILE *f;
	int line;
	bool at_line_start;
	bool had_key; /* a key was seen in this section (continuations follow it) */
	bool cont;    /* the current line continues the previous key's value */
	struct kv *kvs;
	size_t nkv, capkv;
	struct sec *secs;
	size_t nsec, capsec;
	rete_problems *pr;
	bool oom;
	char *raw; /* the current line as read, before inih cuts it up */
	size_t raw_len, raw_cap;
};

static void problem(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct parse *p, int line, const char *fmt, ...)
{
	char where[128];
	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d", p->file, line);
	else
		snprintf(where, sizeof(where), "%s", p->file);
	va_list ap;
	va_start(ap, fmt);
	rete_problems_vadd(p->pr, where, fmt, ap);
	va_end(ap);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* check_line looks at one raw line the way inih will, to report every
 * syntax error (inih itself returns only the first) and to remember where
 * each section starts. */
static void check_line(struct parse *p, const char *raw)
{
	char *copy = strdup(raw);
	if (!copy) {
		p->oom = true;
		return;
	}
	char *s = trim(copy);
	if (*s == '\0' || *s == ';' || *s == '#') {
		free(copy);
		return;
	}
	if (*s == '[') {
		char *end = strchr(s, ']');
		if (!end) {
			problem(p, p->line, "section header '%s' has no closing ']'; write [name]",
				s);
		} else {
			*end = '\0';
			char *name = trim(s + 1);
			bool known = false;
			for (size_t i = 0; i < p->nsec; i++)
				if (strcmp(p->secs[i].name, name) == 0)
					known = true;
			if (!known) {
				if (p->nsec == p->capsec) {
					size_t cap = p->capsec ? p->capsec * 2 : 16;
					struct sec *n = realloc(p->secs, cap * sizeof(*n));
					if (!n) {
						p->oom = true;
						free(copy);
						return;
					}
					p->secs = n;
					p->capsec = cap;
				}
				p->secs[p->nsec].name = strdup(name);
				if (!p->secs[p->nsec].name)
					p->oom = true;
				else
					p->secs[p->nsec++].line = p->line;
			}
		}
	} else if (!strchr(s, '=') && !strchr(s, ':')) {
		problem(p, p->line,
			"'%s' is not a setting; write 'key = value', '[section]' or a comment "
			"starting with ';' or '#'",
			s);
	}
	free(copy);
}

/* line_reader is inih's fgets: it also counts lines and checks each one. */
static char *line_reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *r = fgets(str, num, p->f);
	if (!r)
		return NULL;
	if (p->at_line_start) {
		p->line++;
		/* a byte order mark opening the file was skipped, and UTF-16
		 * refused, by rete_conffile_open; one further on (two files
		 * joined together) is invisible in a key's name: named, and
		 * taken out */
		for (char *bom; (bom = strstr(r, "\xEF\xBB\xBF")) != NULL;) {
			problem(
			    p, p->line,
			    "a byte order mark (U+FEFF, an invisible character) is in this line "
			    "at byte %zu; remove it (it opens a file saved as UTF-8 with BOM, "
			    "and belongs only at the start of the file)",
			    (size_t)(bom - r) + 1);
			memmove(bom, bom + 3, strlen(bom + 3) + 1);
		}
		/* An indented line after a key continues its value (inih's
		 * multi-line values): long lists can be wrapped. */
		const char *t = r;
		while (*t == ' ' || *t == '\t')
			t++;
		bool content = *t && *t != '\n' && *t != '\r' && *t != ';' && *t != '#';
		p->cont = t > r && content && p->had_key;
		if (!p->cont) {
			check_line(p, r);
			if (*t == '[')
				p->had_key = false;
			else if (content)
				p->had_key = true;
		}
	}
	size_t n = strlen(r);
	/* keep the line whole (inih may read a long one in pieces), for the
	 * column of a byte that is no UTF-8 (on_key) */
	if (p->at_line_start)
		p->raw_len = 0;
	if (p->raw_len + n + 1 > p->raw_cap) {
		size_t cap = (p->raw_len + n + 1) * 2;
		char *nr = realloc(p->raw, cap);
		if (!nr) {
			p->oom = true;
			return r;
		}
		p->raw = nr;
		p->raw_cap = cap;
	}
	memcpy(p->raw + p->raw_len, r, n + 1);
	p->raw_len += n;
	p->at_line_start = n > 0 && r[n - 1] == '\n';
	return r;
}

/* value_utf8: a value with a byte that is no UTF-8 (an accented letter
 * saved by an editor set to Windows-1252 or Latin-1) is a problem at its
 * line, naming its section and key: found later, in the directory made
 * from the file, it could only name a field of a message. A comment is not
 * read, so not checked. */
static void value_utf8(struct parse *p, const char *section, const char *name, const char *value)
{
	if (rete_utf8_bad_offset(value, strlen(value)) == (size_t)-1)
		return;
	unsigned char byte = 0;
	size_t col = p->raw ? rete_conffile_utf8_column(p->raw, p->raw_len, &byte) : 0;
	if (col == 0) /* not found in the line: the value's own byte, no column */
		byte = (unsigned char)value[rete_utf8_bad_offset(value, strlen(value))];
	char why[512];
	rete_conffile_not_utf8(why, sizeof(why), byte, col);
	problem(p, p->line, "[%s] %s: %s", section, name, why);
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	value_utf8(p, section, name, value ? value : "");
	if (p->cont && p->nkv > 0) {
		struct kv *last = &p->kvs[p->nkv - 1];
		char *joined = NULL;
		size_t ll = strlen(last->value);
		bool comma = ll > 0 && last->value[ll - 1] == ',';
		if (asprintf(&joined, "%s%s%s", last->value, comma ? " " : ", ",
			     value ? value : "") < 0) {
			p->oom = true;
			return 1;
		}
		free(last->value);
		last->value = joined;
		return 1;
	}
	if (p->nkv == p->capkv) {
		size_t cap = p->capkv ? p->capkv * 2 : 32;
		struct kv *n = realloc(p->kvs, cap * sizeof(*n));
		if (!n) {
			p->oom = true;
			return 1;
		}
		p->kvs = n;
		p->capkv = cap;
	}
	struct kv *kv = &p->kvs[p->nkv];
	kv->section = strdup(section);
	kv->key = strdup(name);
	kv->value = strdup(value ? value : "");
	kv->line = p->line;
	kv->used = false;
	if (!kv->section || !kv->key || !kv->value) {
		free(kv->section);
		free(kv->key);
		free(kv->value);
		p->oom = true;
		return 1;
	}
	p->nkv++;
	return 1;
}

static int section_line(const struct parse *p, const char *name)
{
	for (size_t i = 0; i < p->nsec; i++)
		if (strcmp(p->secs[i].name, name) == 0)
			return p->secs[i].line;
	return 0;
}

/* get finds key in section (the first occurrence; duplicates are reported
 * separately) and marks it used. */
static struct kv *get(struct parse *p, const char *section, const char *key)
{
	for (size_t i = 0; i < p->nkv; i++)
		if (strcmp(p->kvs[i].section, section) == 0 && strcmp(p->kvs[i].key, key) == 0) {
			p->kvs[i].used = true;
			return &p->kvs[i];
		}
	return NULL;
}

static struct kv *require(struct parse *p, const char *section, const char *key, const char *what)
{
	struct kv *kv = get(p, section, key);
	if (!kv)
		problem(p, section_line(p, section), "[%s] %s: missing; give %s", section, key,
			what);
	else if (kv->value[0] == '\0') {
		problem(p, kv->line, "[%s] %s: empty; give %s", section, key, what);
		return NULL;
	}
	return kv;
}

/* --- value checks ----------------------------------------------------------- */

static char *resolve_path(struct parse *p, const char *v)
{
	char *out = NULL;
	if (v[0] == '/')
		out = strdup(v);
	else if (asprintf(&out, "%s/%s", p->dir, v) < 0)
		out = NULL;
	if (!out)
		p->oom = true;
	return out;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		return false;
	*out = v;
	return true;
}

static void check_directory(struct parse *p, const broker_config *c);

static bool code_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		/* the rule of validate.c for service codes: what the broker
		 * accepts here must be what its agents accept in the directory */
		if (!(islower(ch) || isdigit(ch) || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

/* split_list splits a comma list into trimmed, non-empty, malloc'd items. */
static char **split_list(struct parse *p, const struct kv *kv, size_t *n)
{
	*n = 0;
	char *copy = strdup(kv->value);
	if (!copy) {
		p->oom = true;
		return NULL;
	}
	size_t cap = 1;
	for (const char *c = copy; *c; c++)
		cap += *c == ',';
	char **items = calloc(cap, sizeof(*items));
	if (!items) {
		free(copy);
		p->oom = true;
		return NULL;
	}
	char *s = copy;
	size_t pos = 0;
	for (char *tok = strsep(&s, ","); tok; tok = strsep(&s, ","), pos++) {
		char *t = trim(tok);
		if (*t == '\0') {
			if (cap > 1 || pos > 0)
				problem(p, kv->line,
					"[%s] %s: item %zu of the list is empty; "
					"separate items with single commas",
					kv->section, kv->key, pos + 1);
			continue;
		}
		items[*n] = strdup(t);
		if (!items[*n]) {
			p->oom = true;
			break;
		}
		(*n)++;
	}
	free(copy);
	return items;
}

static void free_list(char **items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

char *broker_duration_text(int64_t ms, char *buf, size_t n)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, n, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return buf;
		}
	snprintf(buf, n, "%lldms", (long long)ms);
	return buf;
}

/* calendar_duration reads [section] key, a calendar duration of at least
 * min_ms (def when the key is not given; a def of "off" makes "off"
 * accepted, as 0). max_ms is 0 for a key with no maximum of its own (then
 * the number takes what rete_duration_parse takes, RETE_DURATION_MAX_NUMBER
 * of its unit, so that a broker.ini that ran keeps running), else the
 * largest value that works, and why_max says why. Every refusal says what
 * was wrong and what this key takes: s, m, h or d, the range, an example,
 * and "or off" where it applies. None of these keys counts working days,
 * so wd is never offered. */
static void calendar_duration(struct parse *p, const char *section, const char *key,
			      const char *def, int64_t min_ms, int64_t max_ms, const char *why_max,
			      int64_t *out, char *text, size_t textlen)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	struct kv *kv = get(p, section, key);
	const char *v = kv ? kv->value : def;
	bool off_ok = strcmp(def, "off") == 0;
	char lo[32], hi[32], range[80], accepted[240], what[300];
	int64_t ms = -1;

	if (text)
		snprintf(text, textlen, "%s", def);
	*out = 0;
	if (off_ok && strcmp(v, "off") == 0)
		return;
	broker_duration_text(min_ms, lo, sizeof(lo));
	if (max_ms > 0)
		snprintf(range, sizeof(range), "from %s to %s", lo,
			 broker_duration_text(max_ms, hi, sizeof(hi)));
	else
		snprintf(range, sizeof(range), "of at least %s", lo);
	snprintf(accepted, sizeof(accepted),
		 "give a whole number and a unit, s, m, h or d, %s (e.g. %s)%s", range,
		 off_ok ? "4h" : def, off_ok ? ", or off" : "");
	size_t digits = strspn(v, "0123456789");
	const char *unit = v + digits;
	uint64_t n = 0;
	for (size_t i = 0; i < digits && n <= (uint64_t)INT64_MAX / 10; i++)
		n = n * 10 + (uint64_t)(v[i] - '0');
	if (digits == 0)
		snprintf(what, sizeof(what), "is not a duration");
	else if (*unit == '\0')
		snprintf(what, sizeof(what), "has no unit (%.20ss? %.20sm?)", v, v);
	else if (strcmp(unit, "wd") == 0)
		snprintf(what, sizeof(what), "counts working days, which %s does not take", key);
	else {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strcmp(unit, units[i].unit) == 0)
				ms = n > (uint64_t)RETE_DURATION_MAX_NUMBER
					 ? INT64_MAX
					 : (int64_t)n * units[i].ms;
		if (ms < 0)
			snprintf(what, sizeof(what), "has the unit '%.20s', which is not one",
				 unit);
		else if (ms == 0)
			snprintf(what, sizeof(what), "is zero%s",
				 !off_ok ? ""
				 : strcmp(key, "clock_grace") == 0
				     ? " (off: the clock is counted on at once at the start, "
				       "as 0.7.0 and earlier did)"
				     : " (off: submissions are never refused for want of a token)");
		else if (max_ms > 0 && ms > max_ms)
			snprintf(what, sizeof(what), "is too large: at most %s (%s)", hi, why_max);
		else if (ms == INT64_MAX)
			snprintf(what, sizeof(what), "is too large: the number is at most %lld",
				 (long long)RETE_DURATION_MAX_NUMBER);
		else if (ms < min_ms)
			snprintf(what, sizeof(what), "is too small: at least %s", lo);
		else {
			*out = ms;
			if (text)
				snprintf(text, textlen, "%s", v);
			return;
		}
	}
	problem(p, kv ? kv->line : 0, "[%s] %s: '%.40s' %s; %s", section, key, v, what, accepted);
}

static void number(struct parse *p, const char *section, const char *key, uint64_t def,
		   uint64_t min, uint64_t max, uint64_t *out)
{
	struct kv *kv = get(p, section, key);
	*out = def;
	if (!kv)
		return;
	uint64_t v;
	if (!parse_u64(kv->value, &v) || v < min || v > max) {
		problem(p, kv->line,
			"[%s] %s: '%s' is not accepted; give a whole number from "
			"%llu to %llu",
			section, key, kv->value, (unsigned long long)min, (unsigned long long)max);
		return;
	}
	*out = v;
}

static void byte_size(struct parse *p, const char *section, const char *key, uint64_t def,
		      uint64_t min, uint64_t max, uint64_t *out)
{
	struct kv *kv = get(p, section, key);
	*out = def;
	if (!kv)
		return;
	char num[32];
	const char *v = kv->value;
	size_t i = 0;
	while (isdigit((unsigned char)v[i]) && i < sizeof(num) - 1) {
		num[i] = v[i];
		i++;
	}
	num[i] = '\0';
	const char *unit = v + i;
	while (*unit == ' ')
		unit++;
	uint64_t mult = 0, n = 0;
	if (*unit == '\0' || strcmp(unit, "B") == 0)
		mult = 1;
	else if (strcmp(unit, "KiB") == 0 || strcmp(unit, "K") == 0)
		mult = 1024;
	else if (strcmp(unit, "MiB") == 0 || strcmp(unit, "M") == 0)
		mult = 1024 * 1024;
	if (!mult || !parse_u64(num, &n) || n > max / mult || n * mult < min) {
		problem(p, kv->line,
			"[%s] %s: '%s' is not accepted; give a size from %llu KiB "
			"to %llu MiB, in bytes or with KiB/MiB (e.g. 4MiB)",
			section, key, v, (unsigned long long)(min / 1024),
			(unsigned long long)(max >> 20));
		return;
	}
	*out = n * mult;
}

static bool zone_exists(const char *tz)
{
	if (strcmp(tz, "UTC") == 0)
		return true;
	if (tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 60)
		return false;
	char path[128];
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* --- the sections ------------------------------------------------------------ */

/* broker_access_settings reads [broker] access_log (default DATA.access.log:
 * beside the store folder like the state file, since a restore replaces
 * the folder and the record must outlive it) and access_keep (default 24
 * months; issue 18). */
static void broker_access_settings(struct parse *p, broker_config *c)
{
	struct kv *kv;
	rete_msg m;
	c->access_keep = RETE_ACCESS_KEEP_DEFAULT;
	if ((kv = get(p, "broker", "access_keep")) &&
	    rete_keep_parse(kv->value, &c->access_keep, &m) != RETE_OK)
		problem(p, kv->line, "[broker] access_keep: %s", m.text);
	if ((kv = get(p, "broker", "access_log"))) {
		c->access_log = resolve_path(p, kv->value);
		c->access_log_line = kv->line;
	} else if (c->data && !(c->access_log = broker_access_log_default(c->data))) {
		p->oom = true;
	}
	/* whether the record can be written is not a problem of the file:
	 * an access record the broker cannot write refuses the remote reads,
	 * never the start nor a reload (deliveries matter more); --check-config
	 * warns of it, and refuses what is a mistake in the file (a folder,
	 * one of the broker's own files): broker_access_log_bad */
}

char *broker_access_log_default(const char *data)
{
	char *out = NULL;
	size_t l = strlen(data);
	while (l > 1 && data[l - 1] == '/')
		l--;
	if (asprintf(&out, "%.*s.access.log", (int)l, data) < 0)
		return NULL;
	return out;
}

/* canon writes path with its folder's real path (symbolic links, "..")
 * to out (PATH_MAX bytes): path as given when the folder does not exist. */
static void canon(const char *path, char *out)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (strlen(path) >= sizeof(dir)) {
		snprintf(out, PATH_MAX, "%s", path);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		dir[slash == path ? 1 : slash - path] = '\0'; /* "/x" -> "/" */
	if (realpath(dir, real) == NULL) {
		snprintf(out, PATH_MAX, "%s", path);
		return;
	}
	snprintf(out, PATH_MAX, "%s/%s", strcmp(real, "/") == 0 ? "" : real,
		 slash ? slash + 1 : path);
}

const char *broker_access_log_bad(const broker_config *c, const char *path, char *buf, size_t n,
				  bool *mistake)
{
	char a[PATH_MAX], d[PATH_MAX], o[PATH_MAX];
	struct stat sa, so;
	bool sa_ok = stat(path, &sa) == 0;

	*mistake = true;
	canon(path, a);
	if (c->data) {
		if (realpath(c->data, d) == NULL)
			snprintf(d, sizeof(d), "%s", c->data);
		size_t dl = strlen(d);
		while (dl > 1 && d[dl - 1] == '/')
			d[--dl] = '\0';
		/* the folder itself, LMDB's two files, the journal's two
		 * (store schema 4) and the writer's lock are the broker's own;
		 * any other file there is only a poor place (0.7.0 took it, and
		 * a broker.ini that ran must go on running): access_check warns */
		if (strcmp(a, d) == 0 || (strncmp(a, d, dl) == 0 && a[dl] == '/' &&
					  (strcmp(a + dl + 1, "data.mdb") == 0 ||
					   strcmp(a + dl + 1, "lock.mdb") == 0 ||
					   strcmp(a + dl + 1, "journal.0") == 0 ||
					   strcmp(a + dl + 1, "journal.1") == 0 ||
					   strcmp(a + dl + 1, RETE_STORE_LOCK_FILE) == 0))) {
			snprintf(buf, n,
				 "%s is the store folder %s or one of the store's files in it "
				 "(data.mdb, lock.mdb, journal.0, journal.1, " RETE_STORE_LOCK_FILE
				 "), the broker's own: the record would write over it",
				 path, c->data);
			return buf;
		}
	}
	/* the files of the file, and those in force (a reload keeps the
	 * running state and key, which the new file may no longer name) */
	for (size_t i = 0; i < c->nown_files + 2; i++) {
		const char *f = i < c->nown_files    ? c->own_files[i].path
				: i == c->nown_files ? c->state
						     : c->key_path;
		const char *what = i < c->nown_files	? c->own_files[i].what
				   : i == c->nown_files ? "the state file"
							: "[broker] key";
		if (f == NULL)
			continue;
		canon(f, o);
		if (strcmp(a, o) == 0 || (sa_ok && stat(f, &so) == 0 && sa.st_dev == so.st_dev &&
					  sa.st_ino == so.st_ino)) {
			snprintf(buf, n,
				 "%s is one of the broker's own files (%s): the record would write "
				 "over it",
				 path, what);
			return buf;
		}
	}
	const char *why = rete_file_place(path, RETE_PLACE_MAKE_FOLDERS, buf, n);
	*mistake = why != NULL && sa_ok && !S_ISREG(sa.st_mode);
	return why;
}

bool broker_access_log_in_store(const broker_config *c, const char *path)
{
	char a[PATH_MAX], d[PATH_MAX];
	if (c->data == NULL)
		return false;
	canon(path, a);
	if (realpath(c->data, d) == NULL)
		snprintf(d, sizeof(d), "%s", c->data);
	size_t dl = strlen(d);
	while (dl > 1 && d[dl - 1] == '/')
		d[--dl] = '\0';
	return strncmp(a, d, dl) == 0 && a[dl] == '/';
}

/* own_files lists what the broker reads as its own (broker_access_log_bad):
 * broker.ini, the state file, and every key, state, tsa_ca and
 * tsa_password_file of the file. */
static void own_files(struct parse *p, broker_config *c)
{
	size_t cap = p->nkv + 3;
	if (!(c->own_files = calloc(cap, sizeof(*c->own_files)))) {
		p->oom = true;
		return;
	}
#define OWN(path_expr, ...)                                                                        \
	do {                                                                                       \
		struct broker_own_file *f = &c->own_files[c->nown_files];                          \
		f->path = (path_expr);                                                             \
		if (f->path == NULL || asprintf(&f->what, __VA_ARGS__) < 0) {                      \
			free(f->path);                                                             \
			p->oom = true;                                                             \
			return;                                                                    \
		}                                                                                  \
		c->nown_files++;                                                                   \
	} while (0)
	OWN(strdup(p->file), "broker.ini itself");
	if (c->state)
		OWN(strdup(c->state), "the state file");
	for (size_t i = 0; i < p->nkv; i++) {
		const struct kv *kv = &p->kvs[i];
		if (strcmp(kv->key, "key") == 0 || strcmp(kv->key, "state") == 0 ||
		    strcmp(kv->key, "tsa_ca") == 0 || strcmp(kv->key, "tsa_password_file") == 0)
			OWN(resolve_path(p, kv->value), "[%s] %s", kv->section, kv->key);
	}
#undef OWN
}

static const char *const broker_keys[] = {"origin",
					  "id",
					  "key",
					  "listen",
					  "events",
					  "data",
					  "state",
					  "checkpoint_every",
					  "checkpoint_interval",
					  "delivery_window",
					  "expiry",
					  "heartbeat",
					  "redeliver",
					  "max_frame",
					  "verify_threads",
					  "time_zone",
					  "holidays",
					  "metrics",
					  "access_log",
					  "access_keep",
					  "tsa_url",
					  "tsa_ca",
					  "tsa_timeout",
					  "tsa_user",
					  "tsa_password_file",
					  "timestamp_grace",
					  "clock_grace",
					  NULL};
static const char *const limit_keys[] = {"routine", "urgent", "emergency", NULL};
static const char *const policy_keys[] = {"routes", NULL};
static const char *const agency_keys[] = {"name", "kind", "key", "services", "consent_services",
					  NULL};

static bool in_list(const char *const *list, const char *k)
{
	for (; *list; list++)
		if (strcmp(*list, k) == 0)
			return true;
	return false;
}

static void list_text(const char *const *list, char *buf, size_t n)
{
	buf[0] = '\0';
	for (size_t i = 0; list[i]; i++) {
		strncat(buf, list[i], n - strlen(buf) - 1);
		if (list[i + 1])
			strncat(buf, ", ", n - strlen(buf) - 1);
	}
}

/* check_names reports unknown sections, unknown keys and duplicates. */
static void check_names(struct parse *p)
{
	for (size_t i = 0; i < p->nsec; i++) {
		const char *s = p->secs[i].name;
		if (strcmp(s, "broker") == 0 || strcmp(s, "limits") == 0 ||
		    strcmp(s, "policy") == 0)
			continue;
		if (strncmp(s, "agency ", 7) == 0) {
			const char *id = s + 7;
			while (*id == ' ')
				id++;
			if (!rete_id_valid(id))
				problem(p, p->secs[i].line,
					"[%s]: '%s' is not a valid party id; use 2-63 characters "
					"a-z, 0-9, '.', '-', starting with a letter or digit",
					s, id);
			continue;
		}
		problem(p, p->secs[i].line,
			"[%s]: unknown section; accepted: [broker], [limits], [policy], "
			"[agency ID]",
			s);
	}
	for (size_t i = 0; i < p->nkv; i++) {
		struct kv *kv = &p->kvs[i];
		const char *const *list = NULL;
		if (strcmp(kv->section, "broker") == 0)
			list = broker_keys;
		else if (strcmp(kv->section, "limits") == 0)
			list = limit_keys;
		else if (strcmp(kv->section, "policy") == 0)
			list = policy_keys;
		else if (strncmp(kv->section, "agency ", 7) == 0)
			list = agency_keys;
		else if (kv->section[0] == '\0') {
			problem(p, kv->line,
				"%s: a setting before any [section]; put it under "
				"[broker], [limits], [policy] or [agency ID]",
				kv->key);
			continue;
		} else
			continue; /* the unknown section is reported once, above */
		if (!in_list(list, kv->key)) {
			char accepted[512];
			list_text(list, accepted, sizeof(accepted));
			problem(p, kv->line, "[%s] %s: unknown key; accepted: %s", kv->section,
				kv->key, accepted);
			continue;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->kvs[j].section, kv->section) == 0 &&
			    strcmp(p->kvs[j].key, kv->key) == 0) {
				problem(p, kv->line,
					"[%s] %s: given twice (first on line %d); "
					"keep one",
					kv->section, kv->key, p->kvs[j].line);
				break;
			}
	}
}

static void load_tsa(struct parse *p, broker_config *c);

/* A host to listen on, as shared_port compares them: its family (4 or 6;
 * 0 an interface's name, which listens on its IPv4 address), whether it is
 * every address of the family ('*', 0.0.0.0, [::]) and the address. */
typedef struct listen_host {
	int lh_fam;
	bool lh_any;
	uint8_t lh_addr[16];
} listen_host;

static void listen_host_of(const char *h, listen_host *out)
{
	char a[BROKER_ENDPOINT_MAX];
	size_t n = strlen(h);
	memset(out, 0, sizeof(*out));
	if (h[0] == '[' && n >= 2 && n - 2 < sizeof(a)) {
		memcpy(a, h + 1, n - 2);
		a[n - 2] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, a, &a6) != 1)
			return;
		/* no IPv4-mapped one ([::ffff:10.0.0.5]): the endpoints and the
		 * metrics' address refuse them */
		out->lh_fam = 6;
		memcpy(out->lh_addr, &a6, 16);
	} else if (strcmp(h, "*") == 0 || inet_pton(AF_INET, h, out->lh_addr) == 1) {
		out->lh_fam = 4;
	}
	static const uint8_t zero[16];
	out->lh_any = out->lh_fam != 0 && memcmp(out->lh_addr, zero, sizeof(zero)) == 0;
}

/* shared_port: tcp endpoints a and b (checked) would listen on one port of
 * one address (the second bind of the start would fail: address in use):
 * the same port, and the same address, or every address of the family on
 * either side. [::] is every IPv6 address and every IPv4 one too (ZeroMQ
 * clears IPV6_V6ONLY); '*' every IPv4 one only, so an IPv6 address ([::1],
 * the metrics', bound apart with IPV6_V6ONLY) may share its port.
 * Interface names are compared as written. */
static bool shared_port(const char *a, const char *b)
{
	char ha[BROKER_ENDPOINT_MAX], hb[BROKER_ENDPOINT_MAX];
	unsigned pa, pb;
	listen_host la, lb;
	if (!rete_endpoint_tcp_parts(a, ha, sizeof(ha), &pa) ||
	    !rete_endpoint_tcp_parts(b, hb, sizeof(hb), &pb) || pa != pb)
		return false;
	listen_host_of(ha, &la);
	listen_host_of(hb, &lb);
	if ((la.lh_fam == 6 && la.lh_any) || (lb.lh_fam == 6 && lb.lh_any))
		return true;
	if (la.lh_fam == 6 || lb.lh_fam == 6)
		return la.lh_fam == lb.lh_fam && memcmp(la.lh_addr, lb.lh_addr, 16) == 0;
	if ((la.lh_fam == 4 && la.lh_any) || (lb.lh_fam == 4 && lb.lh_any))
		return true;
	if (la.lh_fam == 4 && lb.lh_fam == 4)
		return memcmp(la.lh_addr, lb.lh_addr, 4) == 0;
	return strcmp(ha, hb) == 0;
}

/* ipc_place: kv (listen or events, a checked endpoint) is an ipc:// one
 * whose socket file the broker cannot make (ZeroMQ makes the file, never
 * its folder): said, and true. */
static bool ipc_place(struct parse *p, const struct kv *kv)
{
	char why[PATH_MAX + 128];
	const char *path = kv->value + 6;
	if (strncmp(kv->value, "ipc://", 6) != 0 || path[0] == '@' ||
	    !rete_file_place(path, RETE_PLACE_SOCKET, why, sizeof(why)))
		return false;
	problem(p, kv->line,
		"[broker] %s: '%s': %s; ZeroMQ makes the socket file but not its folder: "
		"create the folder, or give an ipc:// path in a folder the broker may write",
		kv->key, kv->value, why);
	return true;
}

static void load_broker(struct parse *p, broker_config *c)
{
	const char *S = "broker";
	struct kv *kv;
	rete_msg em;
	if (!section_line(p, S))
		problem(p, 0,
			"[broker]: section missing; it names the broker (origin, id, "
			"key), its endpoints (listen, events) and its store (data)");

	if ((kv = require(p, S, "origin", "the log's origin, e.g. rete.example/mantova"))) {
		bool ok = strlen(kv->value) <= 255;
		for (const char *s = kv->value; *s; s++)
			if ((unsigned char)*s <= ' ' || *s == '+' || (unsigned char)*s >= 0x7f)
				ok = false;
		if (!ok)
			problem(p, kv->line,
				"[broker] origin: '%s' is not accepted; use up to "
				"255 printable ASCII characters without spaces or '+', e.g. "
				"rete.example/mantova",
				kv->value);
		else if (!(c->origin = strdup(kv->value)))
			p->oom = true;
	}
	if ((kv = require(p, S, "id", "the broker's party id, e.g. broker.mantova"))) {
		if (!rete_id_valid(kv->value))
			problem(p, kv->line,
				"[broker] id: '%s' is not a valid party id; use 2-63 "
				"characters a-z, 0-9, '.', '-', starting with a letter or digit",
				kv->value);
		else
			snprintf(c->id, sizeof(c->id), "%s", kv->value);
	}
	if ((kv = require(p, S, "key", "the path of the broker's .key file"))) {
		c->key_path = resolve_path(p, kv->value);
		rete_seckey *sk = NULL;
		rete_msg m;
		if (c->key_path) {
			if (rete_keyfile_load_secret(c->key_path, &sk, &m) != RETE_OK)
				problem(p, kv->line, "[broker] key: %s", m.text);
			else
				c->key_pub = sk->pub;
			rete_seckey_free(&sk);
		}
	}
	if ((kv = require(p, S, "listen", "the ROUTER endpoint, e.g. tcp://0.0.0.0:7700"))) {
		c->listen_line = kv->line;
		if (rete_endpoint_check(kv->value, RETE_ENDPOINT_LISTEN, &em) != RETE_OK)
			problem(p, kv->line, "[broker] listen: %s", em.text);
		else if (!ipc_place(p, kv))
			snprintf(c->listen, sizeof(c->listen), "%s", kv->value);
	}
	if ((kv = require(p, S, "events", "the PUB endpoint, e.g. tcp://0.0.0.0:7701"))) {
		c->events_line = kv->line;
		if (rete_endpoint_check(kv->value, RETE_ENDPOINT_LISTEN, &em) != RETE_OK)
			problem(p, kv->line, "[broker] events: %s", em.text);
		else if (ipc_place(p, kv))
			;
		else if (strcmp(kv->value, c->listen) == 0)
			problem(p, kv->line,
				"[broker] events: '%s' is also the listen endpoint; "
				"give each its own",
				kv->value);
		else if (c->listen[0] && shared_port(kv->value, c->listen))
			problem(p, kv->line,
				"[broker] events: '%s' would listen on port %s of an address "
				"listen ('%s') holds; give events a port of its own",
				kv->value, strrchr(kv->value, ':') + 1, c->listen);
		else
			snprintf(c->events, sizeof(c->events), "%s", kv->value);
	}
	if ((kv = require(p, S, "data", "the store folder, e.g. store")))
		c->data = resolve_path(p, kv->value);
	/* the broker's memory of the last checkpoint it signed: outside the
	 * store folder, which a restore replaces (store_identity.h) */
	if ((kv = get(p, S, "state"))) {
		c->state = resolve_path(p, kv->value);
		size_t dl = c->data ? strlen(c->data) : 0;
		while (dl > 1 && c->data[dl - 1] == '/')
			dl--;
		if (c->state && c->data && strncmp(c->state, c->data, dl) == 0 &&
		    (c->state[dl] == '/' || c->state[dl] == '\0'))
			problem(p, kv->line,
				"[broker] state: '%s' is in the data folder; give a file beside "
				"it (a restore replaces the folder, and the state file is what "
				"notices it), e.g. the default %.*s.state",
				kv->value, (int)dl, c->data);
	} else if (c->data) {
		size_t l = strlen(c->data);
		while (l > 1 && c->data[l - 1] == '/')
			l--;
		if (asprintf(&c->state, "%.*s.state", (int)l, c->data) < 0) {
			c->state = NULL;
			p->oom = true;
		}
	}

	char why[PATH_MAX + 128];
	if (c->state && rete_file_place(c->state, RETE_PLACE_RENAMED, why, sizeof(why)))
		problem(p, (kv = get(p, S, "state")) ? kv->line : 0,
			"[broker] state: %s; give a file in an existing folder that the broker may "
			"write (it replaces the file at every checkpoint), beside the store "
			"folder, e.g. the default DATA.state",
			why);
	broker_access_settings(p, c);

	uint64_t v;
	number(p, S, "checkpoint_every", 1000, 1, 100000000, &c->checkpoint_every);
	calendar_duration(p, S, "checkpoint_interval", "10s", 1000, 0, NULL,
			  &c->checkpoint_interval_ms, NULL, 0);
	number(p, S, "delivery_window", 64, 1, 100000, &v);
	c->delivery_window = (unsigned)v;
	calendar_duration(p, S, "expiry", "5d", 1000, 0, NULL, &c->expiry_ms, c->expiry,
			  sizeof(c->expiry));
	/* 30m unless given; given, "off" is a value too (said in the sentence) */
	snprintf(c->clock_grace, sizeof(c->clock_grace), "30m");
	c->clock_grace_ms = 30 * 60 * 1000;
	if (get(p, S, "clock_grace"))
		calendar_duration(p, S, "clock_grace", "off", 1000, 86400000,
				  "longer, a wrong clock holds the log or the expiries that "
				  "long, and each restart begins it again; a real downtime is "
				  "confirmed at once by a reload with clock_grace 1s",
				  &c->clock_grace_ms, c->clock_grace, sizeof(c->clock_grace));
	/* ZeroMQ takes the heartbeat and 3 times it as ints of milliseconds,
	 * which stop at 2^31 - 1 (24.8 days, so a heartbeat of 8.28 days): 9d
	 * made the start fail with "Invalid argument", on main too. 8d is the
	 * largest whole day below it (3 x 8d = 2,073,600,000 ms fits), and
	 * 0.7.0 took it; no other duration has a maximum (a broker.ini that
	 * ran must go on running after an upgrade) */
	calendar_duration(p, S, "heartbeat", "5s", 1000, 8 * 86400000LL,
			  "ZeroMQ takes 3 times the heartbeat as a number of milliseconds that "
			  "stops at 2^31 - 1, about 24.8 days: 8.28 days of heartbeat and more "
			  "cannot work",
			  &c->heartbeat_ms, NULL, 0);
	/* an unacknowledged delivery is sent again after this (on the same
	 * connection): a recipient that could not take it tries again */
	calendar_duration(p, S, "redeliver", "30s", 1000, 0, NULL, &c->redeliver_ms, NULL, 0);
	/* The default takes what an agent may send: an outbox file of up to
	 * 16 MiB (the agent's own limit) becomes a sealed part of about the
	 * same size (attachments travel as bytes, not base64; sealing adds 48
	 * bytes), plus the signed message and the frame's few bytes of
	 * framing. 24 MiB leaves half again as much room. */
	byte_size(p, S, "max_frame", 24u << 20, 64u << 10, 1ull << 30, &c->max_frame);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	number(p, S, "verify_threads", cores > 0 ? (uint64_t)cores : 1, 1, 256, &v);
	c->verify_threads = (unsigned)v;

	/* the Prometheus endpoint: off unless given */
	if ((kv = get(p, S, "metrics"))) {
		rete_msg m;
		char as_tcp[RETE_HTTP_ADDR_MAX + 8];
		snprintf(as_tcp, sizeof(as_tcp), "tcp://%s", kv->value);
		const char *held = c->listen[0] && shared_port(as_tcp, c->listen)   ? "listen"
				   : c->events[0] && shared_port(as_tcp, c->events) ? "events"
										    : NULL;
		if (rete_http_addr_parse(kv->value, &c->metrics, &m) != RETE_OK)
			problem(p, kv->line, "[broker] metrics: %s", m.text);
		else if (held != NULL)
			problem(p, kv->line,
				"[broker] metrics: '%s' is on the port %s ('%s') holds; give the "
				"metrics a port of their own, e.g. 9464",
				kv->value, held,
				strcmp(held, "listen") == 0 ? c->listen : c->events);
		else
			c->metrics_on = true;
	}

	kv = get(p, S, "time_zone");
	const char *tz = kv ? kv->value : RETE_DEFAULT_TZ;
	if (!zone_exists(tz))
		problem(p, kv ? kv->line : 0,
			"[broker] time_zone: '%s' is not a known time "
			"zone; give a name from /usr/share/zoneinfo, e.g. Europe/Rome",
			tz);
	else
		snprintf(c->time_zone, sizeof(c->time_zone), "%s", tz);

	if ((kv = get(p, S, "holidays"))) {
		c->holidays = split_list(p, kv, &c->nholidays);
		for (size_t i = 0; i < c->nholidays; i++)
			if (!rete_date_valid(c->holidays[i]))
				problem(p, kv->line,
					"[broker] holidays: '%s' is not a date; give "
					"YYYY-MM-DD dates separated by commas",
					c->holidays[i]);
	}
	load_tsa(p, c);
}

/* url_authority_bad says what is wrong with the host[:port] that rest (a
 * URL after its scheme, without credentials) starts with, in buf (n
 * bytes), or returns NULL when nothing is: a host (an IPv6 address in
 * brackets), then no port, an empty one (RFC 3986: the scheme's default)
 * or one from 1 to 65535. libcurl would refuse the rest only at the first
 * exchange, once the broker runs. */
static const char *url_authority_bad(const char *rest, char *buf, size_t n)
{
	size_t len = strcspn(rest, "/?#");
	const char *end = rest + len, *colon;
	if (rest[0] == '[') {
		const char *close = memchr(rest, ']', len);
		if (close == NULL) {
			snprintf(buf, n, "no ']' closes the IPv6 address");
			return buf;
		}
		if (close == rest + 1) {
			snprintf(buf, n, "the brackets hold no address");
			return buf;
		}
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon != NULL && *colon != ':') {
			snprintf(
			    buf, n,
			    "after the IPv6 address comes '%.*s' where only ':' and a port may",
			    (int)(end - colon > 40 ? 40 : end - colon), colon);
			return buf;
		}
	} else {
		colon = memchr(rest, ':', len);
		if ((colon ? colon : end) == rest) {
			snprintf(buf, n, "it names no host");
			return buf;
		}
	}
	if (colon == NULL || colon + 1 == end)
		return NULL; /* no port, or an empty one: the scheme's own */
	const char *port = colon + 1;
	size_t plen = (size_t)(end - port);
	size_t digits = strspn(port, "0123456789");
	long v = digits == plen && digits <= 5 ? strtol(port, NULL, 10) : 0;
	if (v >= 1 && v <= 65535)
		return NULL;
	snprintf(buf, n, "the port '%.*s' is not a whole number from 1 to 65535",
		 (int)(plen > 40 ? 40 : plen), port);
	return buf;
}

/* load_tsa reads the time-stamping settings (issue 14, broker/timestamp.c):
 * all optional; without tsa_url the broker asks no TSA. */
static void load_tsa(struct parse *p, broker_config *c)
{
	const char *S = "broker";
	struct kv *url = get(p, S, "tsa_url"), *kv;
	bool url_ok = false;

	if (url) {
		const char *v = url->value;
		const char *rest = strncmp(v, "https://", 8) == 0  ? v + 8
				   : strncmp(v, "http://", 7) == 0 ? v + 7
								   : NULL;
		bool clean = strlen(v) < 1024;
		for (const char *q = v; *q; q++)
			if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
				clean = false;
		const char *slash = rest ? strchr(rest, '/') : NULL;
		const char *at = rest ? strchr(rest, '@') : NULL;
		char why[160];
		const char *bad;
		if (!rest || !clean || *rest == '\0' || *rest == '/')
			problem(p, url->line,
				"[broker] tsa_url: '%.200s' is not accepted; give the RFC 3161 "
				"time-stamping authority's http:// or https:// URL (printable, "
				"no spaces), e.g. https://tsa.provider.example/tsa",
				v);
		else if (at && (!slash || at < slash))
			problem(p, url->line,
				"[broker] tsa_url: credentials in the URL are not accepted (they "
				"would be in every copy of broker.ini); give the user in tsa_user "
				"and the password in tsa_password_file");
		else if ((bad = url_authority_bad(rest, why, sizeof(why))) != NULL)
			problem(
			    p, url->line,
			    "[broker] tsa_url: '%.200s': %s; give a host and, if it is not the "
			    "scheme's own (443 for https, 80 for http), a port from 1 to 65535; "
			    "an IPv6 address is written in brackets, e.g. "
			    "https://[2001:db8::1]:8443/tsa",
			    v, bad);
		else if (!(c->tsa_url = strdup(v)))
			p->oom = true;
		else
			url_ok = true;
	}
	if ((kv = get(p, S, "tsa_ca"))) {
		c->tsa_ca = resolve_path(p, kv->value);
		char *text = NULL;
		size_t len = 0;
		FILE *f = c->tsa_ca ? fopen(c->tsa_ca, "r") : NULL;
		if (f) {
			char buf[4096];
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = '\0';
			text = strstr(buf, "-----BEGIN CERTIFICATE-----") ? buf : NULL;
			len = n;
			fclose(f);
			if (!text)
				problem(
				    p, kv->line,
				    "[broker] tsa_ca: '%s' holds no PEM certificate (%zu bytes "
				    "read, no '-----BEGIN CERTIFICATE-----' in its first 4 KiB); "
				    "give the CA certificate(s) that issued the TSA's certificate, "
				    "in PEM",
				    kv->value, len);
		} else if (c->tsa_ca) {
			problem(p, kv->line,
				"[broker] tsa_ca: '%s' cannot be read (%s); give the PEM file of "
				"the CA that issued the TSA's certificate",
				kv->value, strerror(errno));
		}
		if (!url)
			problem(p, kv->line,
				"[broker] tsa_ca: given without tsa_url; it checks the tokens of "
				"the TSA that tsa_url names");
	} else if (url_ok) {
		problem(p, url->line,
			"[broker] tsa_url: given without tsa_ca; the broker checks every token "
			"against the CA that issued the TSA's certificate and stores only "
			"tokens that verify: give tsa_ca = the PEM file of that CA (for a "
			"qualified TSA, from the EU trusted list or the provider)");
	}
	/* at most 10 min: the broker asks again with a growing pause when the
	 * TSA does not answer */
	calendar_duration(p, S, "tsa_timeout", "30s", 1000, 600000,
			  "the broker asks again, with a growing pause, when the TSA does not "
			  "answer",
			  &c->tsa_timeout_ms, NULL, 0);
	if ((kv = get(p, S, "tsa_user"))) {
		if (!url)
			problem(p, kv->line,
				"[broker] tsa_user: given without tsa_url; it is the user of the "
				"TSA's HTTP basic authentication");
		else if (strchr(kv->value, ':') || !*kv->value)
			problem(p, kv->line,
				"[broker] tsa_user: '%s' is not accepted; HTTP basic "
				"authentication takes a non-empty user name without ':'",
				kv->value);
		else if (!(c->tsa_user = strdup(kv->value)))
			p->oom = true;
	}
	if ((kv = get(p, S, "tsa_password_file"))) {
		char *path = resolve_path(p, kv->value);
		struct stat st;
		FILE *f = path ? fopen(path, "r") : NULL;
		if (path && !f)
			problem(p, kv->line,
				"[broker] tsa_password_file: '%s' cannot be read (%s); give the "
				"file that holds the TSA password on its first line (mode 0600)",
				kv->value, strerror(errno));
		else if (f && fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
			problem(p, kv->line,
				"[broker] tsa_password_file: '%s' may be read by others (mode "
				"%03o); chmod 600 it",
				kv->value, (unsigned)(st.st_mode & 0777));
		else if (f) {
			char line[512];
			if (!fgets(line, sizeof(line), f))
				line[0] = '\0';
			line[strcspn(line, "\r\n")] = '\0';
			if (!line[0])
				problem(p, kv->line,
					"[broker] tsa_password_file: '%s' holds no password on its "
					"first line",
					kv->value);
			else if (!(c->tsa_password = strdup(line)))
				p->oom = true;
			explicit_bzero(line, sizeof(line));
		}
		if (f)
			fclose(f);
		free(path);
		if (!get(p, S, "tsa_user"))
			problem(p, kv->line,
				"[broker] tsa_password_file: given without tsa_user; HTTP basic "
				"authentication needs both");
	} else if (get(p, S, "tsa_user")) {
		problem(p, get(p, S, "tsa_user")->line,
			"[broker] tsa_user: given without tsa_password_file; HTTP basic "
			"authentication needs both");
	}
	snprintf(c->timestamp_grace, sizeof(c->timestamp_grace), "off");
	if ((kv = get(p, S, "timestamp_grace")) && strcmp(kv->value, "off") != 0) {
		calendar_duration(p, S, "timestamp_grace", "off", 1000, 0, NULL,
				  &c->timestamp_grace_ms, c->timestamp_grace,
				  sizeof(c->timestamp_grace));
		if (!url)
			problem(p, kv->line,
				"[broker] timestamp_grace: '%s' without tsa_url would refuse every "
				"submission once that time has passed; set tsa_url (and tsa_ca), "
				"or leave timestamp_grace off",
				kv->value);
	}
}

static void load_limits(struct parse *p, broker_config *c)
{
	static const char *const defaults[BROKER_NLIMITS] = {"5wd", "1wd", "4h"};
	for (int i = 0; i < BROKER_NLIMITS; i++) {
		struct kv *kv = get(p, "limits", limit_keys[i]);
		const char *v = kv ? kv->value : defaults[i];
		rete_duration d;
		rete_msg m;
		if (rete_duration_parse(v, &d, &m) != RETE_OK) {
			problem(p, kv ? kv->line : 0, "[limits] %s: %s", limit_keys[i], m.text);
			continue;
		}
		snprintf(c->limit[i], sizeof(c->limit[i]), "%s", v);
		/* A working-day limit has no fixed length; the directory carries
		 * its nominal calendar length (24 h per day) beside the text,
		 * which is what deadlines are computed from. */
		c->limit_ms[i] = d.working_days ? d.working_days * 86400000 : d.ms;
	}
}

static void load_agency(struct parse *p, broker_config *c, const struct sec *sec, int *key_line)
{
	const char *id = sec->name + 7;
	while (*id == ' ')
		id++;
	if (!rete_id_valid(id))
		return; /* reported by check_names */
	broker_party *pa = &c->parties[c->nparties++];
	snprintf(pa->id, sizeof(pa->id), "%s", id);
	const char *S = sec->name;
	struct kv *kv;
	if (c->id[0] && strcmp(c->id, id) == 0)
		problem(p, sec->line,
			"[%s]: '%s' is also the broker's id ([broker] id); each party needs an "
			"id of its own, the broker too: give the agency another id, or the "
			"broker an id no party of the log ever had",
			S, id);
	if (c->origin != NULL && strcmp(c->origin, id) == 0)
		problem(p, sec->line,
			"[%s]: '%s' is the log's origin, the name of the broker's signature "
			"on every checkpoint; a party cosigns checkpoints under its id, so "
			"give the agency another id (or the log another origin)",
			S, id);

	if ((kv = require(p, S, "name", "the party's name for people"))) {
		if (strlen(kv->value) > RETE_SHORT_MAX)
			problem(p, kv->line, "[%s] name: %zu bytes long; at most %d are accepted",
				S, strlen(kv->value), RETE_SHORT_MAX);
		if (!(pa->name = strdup(kv->value)))
			p->oom = true;
	}
	if ((kv = require(p, S, "kind", "one of " KIND_LIST))) {
		if (!kind_from_name(kv->value, &pa->kind))
			problem(p, kv->line, "[%s] kind: '%s' is not a kind; accepted: " KIND_LIST,
				S, kv->value);
	}
	if ((kv = require(p, S, "key", "the path of the party's .pub file"))) {
		*key_line = kv->line; /* what check_cross cites */
		char *path = resolve_path(p, kv->value);
		rete_msg m;
		if (path && rete_keyfile_load_public(path, &pa->key, &m) != RETE_OK)
			problem(p, kv->line, "[%s] key: %s", S, m.text);
		sodium_bin2hex(pa->keyhex, sizeof(pa->keyhex), pa->key.x, RETE_PK_LEN);
		free(path);
	}
	if ((kv = get(p, S, "services"))) {
		pa->services = split_list(p, kv, &pa->nservices);
		for (size_t i = 0; i < pa->nservices; i++) {
			if (!code_valid(pa->services[i]))
				problem(p, kv->line,
					"[%s] services: '%s' is not a service code; "
					"use a-z, 0-9, '.' and '-', up to 63 characters",
					S, pa->services[i]);
			for (size_t j = 0; j < i; j++)
				if (strcmp(pa->services[i], pa->services[j]) == 0)
					problem(p, kv->line, "[%s] services: '%s' is listed twice",
						S, pa->services[i]);
		}
		if (pa->kind && !broker_kind_is_agency(pa->kind) && pa->nservices)
			problem(p, kv->line,
				"[%s] services: a %s offers no services; remove "
				"the key or make the party one of " AGENCY_KIND_LIST,
				S, broker_kind_name(pa->kind));
	}
	if ((kv = get(p, S, "consent_services"))) {
		pa->consent = split_list(p, kv, &pa->nconsent);
		for (size_t i = 0; i < pa->nconsent; i++) {
			bool found = false;
			for (size_t j = 0; j < pa->nservices; j++)
				if (strcmp(pa->consent[i], pa->services[j]) == 0)
					found = true;
			if (!found)
				problem(p, kv->line,
					"[%s] consent_services: '%s' is not one of "
					"this party's services; list only codes from its "
					"services key",
					S, pa->consent[i]);
		}
	}
}

static void load_policy(struct parse *p, broker_config *c)
{
	struct kv *kv = get(p, "policy", "routes");
	if (!kv) {
		problem(p, section_line(p, "policy"),
			"[policy] routes: missing; give a comma "
			"list of FROM>TO kind pairs, e.g. social-services>job-centre");
		return;
	}
	size_t n;
	char **items = split_list(p, kv, &n);
	if (!items)
		return;
	c->routes = calloc(n ? n : 1, sizeof(*c->routes));
	if (!c->routes) {
		p->oom = true;
		free_list(items, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char *gt = strchr(items[i], '>');
		Rete__PartyKind from = 0, to = 0;
		bool ok = gt != NULL;
		if (ok) {
			*gt = '\0';
			char *a = trim(items[i]), *b = trim(gt + 1);
			ok = kind_from_name(a, &from) && kind_from_name(b, &to) &&
			     broker_kind_is_agency(from) && broker_kind_is_agency(to);
			if (!ok)
				*gt = '>';
		}
		if (!ok) {
			problem(p, kv->line,
				"[policy] routes: '%s' is not a route; write "
				"FROM>TO with FROM and TO among " AGENCY_KIND_LIST,
				items[i]);
			continue;
		}
		c->routes[c->nroutes].from = from;
		c->routes[c->nroutes].to = to;
		c->nroutes++;
	}
	free_list(items, n);
}

/* check_cross: what only the whole file can tell. lines: each party's key
 * line (its section's, when the key is missing). */
static void check_cross(struct parse *p, broker_config *c, const int *lines)
{
	for (size_t i = 0; i < c->nparties; i++) {
		broker_party *a = &c->parties[i];
		static const uint8_t zero[RETE_PK_LEN];
		if (memcmp(a->key.ed, zero, RETE_PK_LEN) == 0)
			continue; /* its key did not load: reported already */
		if (memcmp(a->key.ed, c->key_pub.ed, RETE_PK_LEN) == 0)
			problem(p, lines[i],
				"[agency %s] key: it is the broker's own key; every "
				"party needs its own key pair (rete keygen)",
				a->id);
		for (size_t j = 0; j < i; j++)
			if (memcmp(a->key.ed, c->parties[j].key.ed, RETE_PK_LEN) == 0)
				problem(p, lines[i],
					"[agency %s] key: the same key as party %s; "
					"every party needs its own key pair (rete keygen)",
					a->id, c->parties[j].id);
	}
}

static long problem_line(const rete_problem *pr)
{
	const char *colon = strrchr(pr->path, ':');
	return colon ? strtol(colon + 1, NULL, 10) : 0;
}

static rete_err index_parties(broker_config *c);

rete_err broker_config_load(const char *path, broker_config **out, rete_problems *problems)
{
	*out = NULL;
	struct parse p = {.file = path, .at_line_start = true, .pr = problems};
	broker_config *c = calloc(1, sizeof(*c));
	if (!c)
		return RETE_ENOMEM;
	size_t before = problems->n;
	rete_err err = RETE_OK;
	int *lines = NULL;

	rete_msg fm;
	if ((err = rete_conffile_open(path, &p.f, &fm)) != RETE_OK) {
		problem(&p, 0, "%s", fm.text);
		free(c);
		return err;
	}
	char *slash = strrchr(path, '/');
	p.dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	if (slash && slash == path) {
		free(p.dir);
		p.dir = strdup("/");
	}
	c->path = strdup(path);
	if (!p.dir || !c->path) {
		fclose(p.f);
		err = RETE_ENOMEM;
		goto done;
	}
	/* The broker is inih's only user in its process: lines of any length
	 * (long service lists); indented continuation lines join the previous
	 * key's value with ", " (so lists can be wrapped), while a repeated
	 * key is a duplicate. */
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 1 << 20;
	ini_allow_multiline = true;
	int r = ini_parse_stream(line_reader, &p, on_key, &p);
	fclose(p.f);
	if (r == -2 || p.oom) {
		err = RETE_ENOMEM;
		goto done;
	}

	check_names(&p);
	load_broker(&p, c);
	load_limits(&p, c);
	size_t nag = 0;
	for (size_t i = 0; i < p.nsec; i++)
		nag += strncmp(p.secs[i].name, "agency ", 7) == 0;
	c->parties = calloc(nag ? nag : 1, sizeof(*c->parties));
	lines = calloc(nag ? nag : 1, sizeof(*lines));
	if (!c->parties || !lines) {
		err = RETE_ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < p.nsec; i++)
		if (strncmp(p.secs[i].name, "agency ", 7) == 0) {
			lines[c->nparties] = p.secs[i].line;
			load_agency(&p, c, &p.secs[i], &lines[c->nparties]);
		}
	if (c->nparties == 0)
		problem(&p, 0,
			"no [agency ID] section; list every party of the network, "
			"one section each");
	if (index_parties(c) != RETE_OK) {
		err = RETE_ENOMEM;
		goto done;
	}
	load_policy(&p, c);
	check_cross(&p, c, lines);
	own_files(&p, c);
	if (!p.oom && problems->n == before)
		check_directory(&p, c);
	if (p.oom)
		err = RETE_ENOMEM;
	else if (problems->n > before)
		err = RETE_EINVAL;
	/* Report in file order (insertion sort: stable, and lists are short). */
	for (size_t i = before + 1; i < problems->n; i++) {
		rete_problem it = problems->items[i];
		size_t j = i;
		while (j > before && problem_line(&problems->items[j - 1]) > problem_line(&it)) {
			problems->items[j] = problems->items[j - 1];
			j--;
		}
		problems->items[j] = it;
	}

done:
	free(lines);
	for (size_t i = 0; i < p.nkv; i++) {
		free(p.kvs[i].section);
		free(p.kvs[i].key);
		free(p.kvs[i].value);
	}
	free(p.kvs);
	for (size_t i = 0; i < p.nsec; i++)
		free(p.secs[i].name);
	free(p.secs);
	free(p.dir);
	free(p.raw);
	if (err != RETE_OK)
		broker_config_free(&c);
	*out = c;
	return err;
}

void broker_config_free(broker_config **pc)
{
	if (!pc || !*pc)
		return;
	broker_config *c = *pc;
	free(c->path);
	free(c->origin);
	free(c->key_path);
	free(c->data);
	free(c->state);
	free(c->access_log);
	free(c->tsa_url);
	free(c->tsa_ca);
	free(c->tsa_user);
	if (c->tsa_password) {
		explicit_bzero(c->tsa_password, strlen(c->tsa_password));
		free(c->tsa_password);
	}
	free_list(c->holidays, c->nholidays);
	for (size_t i = 0; i < c->nparties; i++) {
		free(c->parties[i].name);
		free_list(c->parties[i].services, c->parties[i].nservices);
		free_list(c->parties[i].consent, c->parties[i].nconsent);
	}
	free(c->parties);
	broker_id_index_free(&c->party_index);
	free(c->routes);
	for (size_t i = 0; i < c->nown_files; i++) {
		free(c->own_files[i].path);
		free(c->own_files[i].what);
	}
	free(c->own_files);
	free(c);
	*pc = NULL;
}

/* The lookup by id is on every frame (the sender, then the recipient of a
 * submission): by the hash of the id (idindex.h), not a binary search of
 * ~7 strcmp (~310 instructions a lookup, twice a referral; callgrind,
 * session 16). With the same id twice (refused by check_names) the first
 * in file order is found, as the scan found it. */
_Static_assert(offsetof(broker_party, id) == 0, "broker_id_index reads the id at a party's start");
static rete_err index_parties(broker_config *c)
{
	return broker_id_index_build(&c->party_index, c->parties, sizeof(*c->parties), c->nparties);
}

const broker_party *broker_config_party(const broker_config *c, const char *id)
{
	if (!c || !id)
		return NULL;
	size_t i = broker_id_index_find(&c->party_index, c->parties, sizeof(*c->parties), id);
	return i == SIZE_MAX ? NULL : &c->parties[i];
}

bool broker_config_route_allowed(const broker_config *c, Rete__PartyKind from, Rete__PartyKind to)
{
	for (size_t i = 0; i < c->nroutes; i++)
		if (c->routes[i].from == from && c->routes[i].to == to)
			return true;
	return false;
}

bool broker_party_offers(const broker_party *p, const char *code, bool *consent)
{
	if (consent)
		*consent = false;
	for (size_t i = 0; i < p->nservices; i++)
		if (strcmp(p->services[i], code) == 0) {
			for (size_t j = 0; consent && j < p->nconsent; j++)
				if (strcmp(p->consent[j], code) == 0)
					*consent = true;
			return true;
		}
	return false;
}

/* --- the Directory message ------------------------------------------------------ */

static bool party_fill(Rete__Party *pp, const char *id, const char *name, Rete__PartyKind kind,
		       const uint8_t ed[RETE_PK_LEN])
{
	rete__party__init(pp);
	pp->id = strdup(id);
	pp->name = strdup(name);
	pp->kind = kind;
	pp->public_key.data = malloc(RETE_PK_LEN);
	if (!pp->id || !pp->name || !pp->public_key.data)
		return false;
	memcpy(pp->public_key.data, ed, RETE_PK_LEN);
	pp->public_key.len = RETE_PK_LEN;
	return true;
}

rete_err broker_config_directory(const broker_config *c, uint64_t serial, Rete__Directory **out)
{
	static const Rete__Priority prio[BROKER_NLIMITS] = {RETE__PRIORITY__PRIORITY_ROUTINE,
							    RETE__PRIORITY__PRIORITY_URGENT,
							    RETE__PRIORITY__PRIORITY_EMERGENCY};
	Rete__Directory *d = calloc(1, sizeof(*d));
	*out = NULL;
	if (!d)
		return RETE_ENOMEM;
	rete__directory__init(d);
	d->serial = serial;
	d->parties = calloc(c->nparties + 1, sizeof(*d->parties));
	d->routes = calloc(c->nroutes + 1, sizeof(*d->routes));
	d->limits = calloc(BROKER_NLIMITS, sizeof(*d->limits));
	d->holidays = calloc(c->nholidays + 1, sizeof(*d->holidays));
	d->time_zone = strdup(c->time_zone);
	if (!d->parties || !d->routes || !d->limits || !d->holidays || !d->time_zone)
		goto oom;
	d->expiry_ms = c->expiry_ms;

	Rete__Party *bp = calloc(1, sizeof(*bp));
	if (!bp)
		goto oom;
	d->parties[d->n_parties++] = bp;
	if (!party_fill(bp, c->id, "broker", RETE__PARTY_KIND__PARTY_KIND_BROKER, c->key_pub.ed))
		goto oom;
	for (size_t i = 0; i < c->nparties; i++) {
		const broker_party *a = &c->parties[i];
		Rete__Party *pp = calloc(1, sizeof(*pp));
		if (!pp)
			goto oom;
		d->parties[d->n_parties++] = pp;
		if (!party_fill(pp, a->id, a->name, a->kind, a->key.ed))
			goto oom;
		if (a->nservices) {
			pp->services = calloc(a->nservices, sizeof(*pp->services));
			if (!pp->services)
				goto oom;
		}
		for (size_t j = 0; j < a->nservices; j++) {
			Rete__Service *sv = calloc(1, sizeof(*sv));
			if (!sv)
				goto oom;
			rete__service__init(sv);
			pp->services[pp->n_services++] = sv;
			bool consent = false;
			broker_party_offers(a, a->services[j], &consent);
			sv->code = strdup(a->services[j]);
			sv->name = strdup(a->services[j]);
			sv->consent_required = consent;
			if (!sv->code || !sv->name)
				goto oom;
		}
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		Rete__Route *r = calloc(1, sizeof(*r));
		if (!r)
			goto oom;
		rete__route__init(r);
		r->from = c->routes[i].from;
		r->to = c->routes[i].to;
		d->routes[d->n_routes++] = r;
	}
	for (int i = 0; i < BROKER_NLIMITS; i++) {
		Rete__PriorityLimit *l = calloc(1, sizeof(*l));
		if (!l)
			goto oom;
		rete__priority_limit__init(l);
		d->limits[d->n_limits++] = l;
		l->priority = prio[i];
		l->limit = strdup(c->limit[i]);
		l->limit_ms = c->limit_ms[i];
		if (!l->limit)
			goto oom;
	}
	for (size_t i = 0; i < c->nholidays; i++) {
		if (!(d->holidays[i] = strdup(c->holidays[i])))
			goto oom;
		d->n_holidays++;
	}
	*out = d;
	return RETE_OK;
oom:
	broker_directory_free(&d);
	return RETE_ENOMEM;
}

void broker_directory_free(Rete__Directory **pd)
{
	if (!pd || !*pd)
		return;
	/* Everything was allocated with malloc, field by field, exactly the way
	 * protobuf-c's unpack does, so its generic free releases it all. */
	rete__directory__free_unpacked(*pd, NULL);
	*pd = NULL;
}

/* check_directory: the Directory this configuration makes must be one the
 * agents accept: strict decoding (valid UTF-8, no NUL) and the validation of
 * broker bodies. The per-key checks above should already catch everything;
 * this is the net under them, so that a configuration the broker takes can
 * never cut its agencies off from the directory. */
static void check_directory(struct parse *p, const broker_config *c)
{
	Rete__Directory *d = NULL;
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Message *back = NULL;
	rete_buf packed = {0};
	rete_msg m = {{0}};
	rete_problems pr = {0};

	if (broker_config_directory(c, 1, &d) != RETE_OK) {
		p->oom = true;
		return;
	}
	msg.id = (char *)"directory-check";
	msg.sender = (char *)c->id;
	msg.created_at = 1;
	msg.origin = (char *)c->origin;
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = d;
	if (rete_message_pack(&msg, &packed) != RETE_OK) {
		p->oom = true;
	} else if (rete_message_decode(packed.data, packed.len, &back, &m) != RETE_OK) {
		problem(p, 0,
			"the directory made from this file would be refused by the agents: %s",
			m.text);
	} else if (rete_validate_message(back, NULL, RETE_VALIDATE_BROKER, &pr) != RETE_OK) {
		for (size_t i = 0; i < pr.n; i++)
			problem(p, 0,
				"the directory made from this file would be refused by the agents: "
				"%s: %s",
				pr.items[i].path, pr.items[i].text);
	}
	if (back != NULL)
		rete__message__free_unpacked(back, NULL);
	rete_problems_free(&pr);
	rete_buf_free(&packed);
	broker_directory_free(&d);
}
