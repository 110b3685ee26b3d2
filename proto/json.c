/* json.c — the generic JSON mapping of rete's protobuf messages (json.h).
 *
 * Both directions walk protobuf-c's descriptors, so a field added to
 * rete.proto is mapped without touching this file. The input side writes
 * straight into a message allocated the way protobuf_c_message_unpack does
 * (system allocator: every string, byte buffer, repeated array and
 * submessage malloc'd; singular empty strings left at the descriptor's
 * default pointer, which free_unpacked knows not to free), so a half-mapped
 * message can always be released with protobuf_c_message_free_unpacked.
 */
#include "json.h"
#include "keys.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------ */

char *rete_json_field_name(const char *proto_name, char *buf, size_t n)
{
	size_t o = 0;
	bool up = false;
	if (n == 0)
		return buf;
	for (const char *p = proto_name; *p && o + 1 < n; p++) {
		if (*p == '_') {
			up = o > 0;
			continue;
		}
		char c = *p;
		if (up && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		up = false;
		buf[o++] = c;
	}
	buf[o] = '\0';
	return buf;
}

/* The enum's prefix is its short name in UPPER_SNAKE: AgeBand -> AGE_BAND_.
 * A new word starts at an upper-case letter that follows a lower-case letter
 * or a digit. */
static void enum_prefix(const ProtobufCEnumDescriptor *d, char *buf, size_t n)
{
	const char *s = d->short_name ? d->short_name : d->name;
	size_t o = 0;
	for (const char *p = s; *p && o + 2 < n; p++) {
		char c = *p;
		bool upper = c >= 'A' && c <= 'Z';
		if (upper && p > s &&
		    ((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= '0' && p[-1] <= '9')))
			buf[o++] = '_';
		if (o + 2 >= n)
			break;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		buf[o++] = c;
	}
	buf[o++] = '_';
	buf[o] = '\0';
}

/* The JSON names of each enum are computed once and kept for the life of the
 * process, so rete_enum_json_name can hand out plain static strings. The
 * cache is a short list (one node per enum of the schema). */
struct enum_names {
	const ProtobufCEnumDescriptor *en_desc;
	char **en_names; /* parallel to en_desc->values */
	struct enum_names *en_next;
};

static pthread_mutex_t enum_lock = PTHREAD_MUTEX_INITIALIZER;
static struct enum_names *enum_cache;

static struct enum_names *enum_names_get(const ProtobufCEnumDescriptor *d)
{
	struct enum_names *e;
	pthread_mutex_lock(&enum_lock);
	for (e = enum_cache; e; e = e->en_next)
		if (e->en_desc == d)
			goto out;
	e = calloc(1, sizeof(*e));
	if (!e)
		goto out;
	e->en_desc = d;
	e->en_names = calloc(d->n_values ? d->n_values : 1, sizeof(char *));
	if (!e->en_names) {
		free(e);
		e = NULL;
		goto out;
	}
	char prefix[128];
	enum_prefix(d, prefix, sizeof(prefix));
	size_t plen = strlen(prefix);
	for (unsigned i = 0; i < d->n_values; i++) {
		const char *vn = d->values[i].name;
		if (strncmp(vn, prefix, plen) == 0 && vn[plen])
			vn += plen;
		char *s = strdup(vn);
		if (!s) {
			for (unsigned j = 0; j < i; j++)
				free(e->en_names[j]);
			free(e->en_names);
			free(e);
			e = NULL;
			goto out;
		}
		for (char *c = s; *c; c++) {
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
			else if (*c == '_')
				*c = '-';
		}
		e->en_names[i] = s;
	}
	e->en_next = enum_cache;
	enum_cache = e;
out:
	pthread_mutex_unlock(&enum_lock);
	return e;
}

const char *rete_enum_json_name(const ProtobufCEnumDescriptor *d, int value)
{
	if (!d)
		return NULL;
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
	if (!v)
		return NULL;
	struct enum_names *e = enum_names_get(d);
	if (!e)
		return NULL;
	return e->en_names[v - d->values];
}

rete_err rete_enum_from_json_name(const ProtobufCEnumDescriptor *d, const char *name, int *value)
{
	struct enum_names *e = enum_names_get(d);
	if (!e)
		return RETE_ENOMEM;
	for (unsigned i = 0; i < d->n_values; i++)
		if (strcmp(e->en_names[i], name) == 0) {
			*value = d->values[i].value;
			return RETE_OK;
		}
	return RETE_ENOENT;
}

/* A time field is an int64 named `at` or ending in `_at` (Unix ms). */
static bool field_is_time(const ProtobufCFieldDescriptor *f)
{
	if (f->type != PROTOBUF_C_TYPE_INT64 && f->type != PROTOBUF_C_TYPE_SINT64 &&
	    f->type != PROTOBUF_C_TYPE_SFIXED64)
		return false;
	size_t n = strlen(f->name);
	return strcmp(f->name, "at") == 0 || (n > 3 && strcmp(f->name + n - 3, "_at") == 0);
}

/* ---------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date, by counting whole
 * 400-year eras (146097 days each) from 0000-03-01, so that the leap day
 * falls at the end of each counted year. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;			     /* [0, 399] */
	int64_t mp = (m + 9) % 12;			     /* March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + d - 1;	     /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

/* The reverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
	static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* digits reads exactly n decimal digits at *p. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

rete_err rete_time_parse(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac = 0;
	const char *p = s;
	if (!s || !ms)
		return RETE_EINVAL;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		return RETE_EINVAL;
	if (*p != 'T' && *p != 't')
		return RETE_EINVAL;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
	    !digits(&p, 2, &sec))
		return RETE_EINVAL;
	if (*p == '.') {
		/* Up to nanoseconds; beyond the millisecond the digits are
		 * dropped (truncation), since the schema keeps milliseconds. */
		int nd = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (nd < 3)
				frac = frac * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0 || nd > 9)
			return RETE_EINVAL;
		for (int i = nd; i < 3; i++)
			frac *= 10;
	}
	int off = 0; /* minutes east of UTC */
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om))
			return RETE_EINVAL;
		if (oh > 23 || om > 59)
			return RETE_EINVAL;
		off = sign * (oh * 60 + om);
	} else {
		return RETE_EINVAL;
	}
	if (*p != '\0')
		return RETE_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
		return RETE_EINVAL;
	int64_t days = days_from_civil(y, mo, d);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
	*ms = secs * 1000 + frac;
	return RETE_OK;
}

char *rete_time_format(int64_t ms, char buf[32])
{
	/* Years 0000-9999 only: RFC 3339 has four-digit years. */
	const int64_t lo = days_from_civil(0, 1, 1) * 86400000LL;
	const int64_t hi = days_from_civil(10000, 1, 1) * 86400000LL;
	if (ms < lo || ms >= hi) {
		snprintf(buf, 32, "%lld", (long long)ms);
		return buf;
	}
	int64_t days = ms / 86400000LL, rem = ms % 86400000LL;
	if (rem < 0) {
		rem += 86400000LL;
		days--;
	}
	int64_t y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60),
	    milli = (int)(rem % 1000);
	if (milli)
		snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, m, d, h, mi, s,
			 milli);
	else
		snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)y, m, d, h, mi, s);
	return buf;
}

/* ---------------------------------------------------------------------
 * JSON -> protobuf
 * ------------------------------------------------------------------ */

/* The mapping context: where we are (the path of the value being mapped)
 * and where problems go. limit 1 stops at the first problem. */
struct jctx {
	rete_problems *jc_probs;
	size_t jc_found; /* problems found in this mapping */
	size_t jc_limit; /* 0 = all */
	bool jc_oom;
	char jc_path[512];
	size_t jc_plen;
};

static bool jc_stop(const struct jctx *c)
{
	return c->jc_oom || (c->jc_limit && c->jc_found >= c->jc_limit);
}

static void jc_problem(struct jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jc_problem(struct jctx *c, const char *fmt, ...)
{
	va_list ap;
	if (jc_stop(c))
		return;
	va_start(ap, fmt);
	rete_problems_vadd(c->jc_probs, c->jc_path, fmt, ap);
	va_end(ap);
	c->jc_found++;
}

static size_t jc_push_key(struct jctx *c, const char *key)
{
	size_t saved = c->jc_plen;
	int n = snprintf(c->jc_path + c->jc_plen, sizeof(c->jc_path) - c->jc_plen, "%s%s",
			 c->jc_plen ? "." : "", key);
	if (n > 0)
		c->jc_plen += (size_t)n;
	if (c->jc_plen >= sizeof(c->jc_path))
		c->jc_plen = sizeof(c->jc_path) - 1;
	return saved;
}

static size_t jc_push_index(struct jctx *c, size_t i)
{
	size_t saved = c->jc_plen;
	int n = snprintf(c->jc_path + c->jc_plen, sizeof(c->jc_path) - c->jc_plen, "[%zu]", i);
	if (n > 0)
		c->jc_plen += (size_t)n;
	if (c->jc_plen >= sizeof(c->jc_path))
		c->jc_plen = sizeof(c->jc_path) - 1;
	return saved;
}

static void jc_pop(struct jctx *c, size_t saved)
{
	c->jc_plen = saved;
	c->jc_path[saved] = '\0';
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

/* What a field expects, for the sentences. */
static const char *field_expects(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return "an integer (32-bit)";
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return "a non-negative integer (32-bit)";
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return field_is_time(f) ? "an RFC 3339 time string such as \"2026-11-22T10:15:00Z\""
					: "a 64-bit integer as a decimal string such as \"42\"";
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return "a non-negative 64-bit integer as a decimal string such as \"42\"";
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return "a number";
	case PROTOBUF_C_TYPE_BOOL:
		return "true or false";
	case PROTOBUF_C_TYPE_ENUM:
		return "a string naming a value";
	case PROTOBUF_C_TYPE_STRING:
		return "a string";
	case PROTOBUF_C_TYPE_BYTES:
		return "a base64 string";
	case PROTOBUF_C_TYPE_MESSAGE:
		return "an object";
	}
	return "a value";
}

/* accepted_fields lists the JSON keys of d, comma-separated, into buf. */
static void accepted_fields(const ProtobufCMessageDescriptor *d, char *buf, size_t n)
{
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < d->n_fields && o + 1 < n; i++) {
		char name[128];
		rete_json_field_name(d->fields[i].name, name, sizeof(name));
		int k = snprintf(buf + o, n - o, "%s%s", i ? ", " : "", name);
		if (k < 0)
			break;
		o += (size_t)k;
	}
}

/* accepted_enum lists the JSON names of d except the 0 (unspecified) one. */
static void accepted_enum(const ProtobufCEnumDescriptor *d, char *buf, size_t n)
{
	size_t o = 0;
	bool first = true;
	buf[0] = '\0';
	for (unsigned i = 0; i < d->n_values && o + 1 < n; i++) {
		if (d->values[i].value == 0)
			continue;
		const char *jn = rete_enum_json_name(d, d->values[i].value);
		if (!jn)
			continue;
		int k = snprintf(buf + o, n - o, "%s%s", first ? "" : ", ", jn);
		if (k < 0)
			break;
		o += (size_t)k;
		first = false;
	}
}

/* Decimal 64-bit integers: an optional '-' (signed only) then digits, no
 * spaces or '+' (which strtoll would let through). */
static bool parse_i64(const char *s, bool is_signed, int64_t *si, uint64_t *ui)
{
	const char *p = s;
	if (is_signed && *p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return false;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return false;
	char *end;
	errno = 0;
	if (is_signed)
		*si = strtoll(s, &end, 10);
	else
		*ui = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static void map_message(struct jctx *c, const ProtobufCMessageDescriptor *d, json_t *obj,
			ProtobufCMessage *msg);

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);
	if (m)
		d->message_init(m);
	return m;
}

/* map_value maps v into the storage dst of field f (for repeated fields: one
 * element). Returns false when the value was refused or memory ran out. */
static bool map_value(struct jctx *c, const ProtobufCFieldDescriptor *f, json_t *v, void *dst,
		      bool repeated)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: {
		bool is_signed =
		    f->type != PROTOBUF_C_TYPE_UINT32 && f->type != PROTOBUF_C_TYPE_FIXED32;
		if (!json_is_integer(v)) {
			jc_problem(c, "expected %s, got %s", field_expects(f), json_type_name(v));
			return false;
		}
		json_int_t x = json_integer_value(v);
		if (is_signed ? (x < INT32_MIN || x > INT32_MAX)
			      : (x < 0 || x > (json_int_t)UINT32_MAX)) {
			jc_problem(c, "%lld is out of range; expected %s", (long long)x,
				   field_expects(f));
			return false;
		}
		if (is_signed)
			*(int32_t *)dst = (int32_t)x;
		else
			*(uint32_t *)dst = (uint32_t)x;
		return true;
	}
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		bool is_signed =
		    f->type != PROTOBUF_C_TYPE_UINT64 && f->type != PROTOBUF_C_TYPE_FIXED64;
		if (!json_is_string(v)) {
			jc_problem(c, "expected %s, got %s", field_expects(f), json_type_name(v));
			return false;
		}
		const char *s = json_string_value(v);
		if (field_is_time(f)) {
			int64_t ms;
			if (rete_time_parse(s, &ms) != RETE_OK) {
				jc_problem(
				    c,
				    "'%.64s' is not an RFC 3339 time; expected e.g. "
				    "\"2026-11-22T10:15:00Z\" or \"2026-11-22T11:15:00.250+01:00\"",
				    s);
				return false;
			}
			*(int64_t *)dst = ms;
			return true;
		}
		int64_t si = 0;
		uint64_t ui = 0;
		if (!parse_i64(s, is_signed, &si, &ui)) {
			jc_problem(c, "'%.64s' is not %s", s, field_expects(f));
			return false;
		}
		if (is_signed)
			*(int64_t *)dst = si;
		else
			*(uint64_t *)dst = ui;
		return true;
	}
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!json_is_number(v)) {
			jc_problem(c, "expected a number, got %s", json_type_name(v));
			return false;
		}
		if (f->type == PROTOBUF_C_TYPE_FLOAT)
			*(float *)dst = (float)json_number_value(v);
		else
			*(double *)dst = json_number_value(v);
		return true;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v)) {
			jc_problem(c, "expected true or false, got %s", json_type_name(v));
			return false;
		}
		*(protobuf_c_boolean *)dst = json_is_true(v);
		return true;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		char names[384];
		if (!json_is_string(v)) {
			accepted_enum(ed, names, sizeof(names));
			jc_problem(c, "expected a string, got %s; accepted: %s", json_type_name(v),
				   names);
			return false;
		}
		int value = 0;
		rete_err e = rete_enum_from_json_name(ed, json_string_value(v), &value);
		if (e == RETE_ENOMEM) {
			c->jc_oom = true;
			return false;
		}
		if (e != RETE_OK || value == 0) {
			accepted_enum(ed, names, sizeof(names));
			jc_problem(c, "'%.64s' is not accepted; accepted: %s", json_string_value(v),
				   names);
			return false;
		}
		*(int *)dst = value;
		return true;
	}
	case PROTOBUF_C_TYPE_STRING: {
		if (!json_is_string(v)) {
			jc_problem(c, "expected a string, got %s", json_type_name(v));
			return false;
		}
		size_t len = json_string_length(v);
		const char *s = json_string_value(v);
		/* A C string cannot hold a NUL: the message would say one
		 * thing to the signer and another to the reader. */
		if (strlen(s) != len) {
			jc_problem(c, "the string contains a NUL character (\\u0000), which is "
				      "not accepted");
			return false;
		}
		if (len == 0 && !repeated)
			return true; /* keep the default pointer (not freed) */
		char *copy = malloc(len + 1);
		if (!copy) {
			c->jc_oom = true;
			return false;
		}
		memcpy(copy, s, len + 1);
		*(char **)dst = copy;
		return true;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		if (!json_is_string(v)) {
			jc_problem(c, "expected a base64 string, got %s", json_type_name(v));
			return false;
		}
		const char *s = json_string_value(v);
		size_t slen = json_string_length(v);
		ProtobufCBinaryData *bd = dst;
		if (slen == 0)
			return true;
		size_t cap = slen / 4 * 3 + 3;
		uint8_t *buf = malloc(cap);
		if (!buf) {
			c->jc_oom = true;
			return false;
		}
		size_t blen = 0;
		const char *end = NULL;
		if (!rete_b64_alphabet(s, slen) ||
		    sodium_base642bin(buf, cap, s, slen, NULL, &blen, &end,
				      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    end != s + slen) {
			free(buf);
			jc_problem(c,
				   "'%.48s%s' is not standard base64 (A-Z a-z 0-9 + /, padded "
				   "with '=')",
				   s, slen > 48 ? "..." : "");
			return false;
		}
		if (blen == 0) {
			free(buf);
			return true;
		}
		bd->data = buf;
		bd->len = blen;
		return true;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *sd = f->descriptor;
		if (!json_is_object(v)) {
			jc_problem(c, "expected an object (%s), got %s", sd->short_name,
				   json_type_name(v));
			return false;
		}
		ProtobufCMessage *sub = new_message(sd);
		if (!sub) {
			c->jc_oom = true;
			return false;
		}
		*(ProtobufCMessage **)dst = sub; /* owned by the parent from here */
		size_t before = c->jc_found;
		map_message(c, sd, v, sub);
		return c->jc_found == before && !c->jc_oom;
	}
	}
	jc_problem(c, "this field's type cannot be mapped from JSON");
	return false;
}

static size_t repeated_elt_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return 4;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

static const ProtobufCFieldDescriptor *field_by_json_name(const ProtobufCMessageDescriptor *d,
							  const char *key)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		char name[128];
		rete_json_field_name(d->fields[i].name, name, sizeof(name));
		if (strcmp(name, key) == 0)
			return &d->fields[i];
	}
	return NULL;
}

static const ProtobufCFieldDescriptor *field_by_id(const ProtobufCMessageDescriptor *d, uint32_t id)
{
	for (unsigned i = 0; i < d->n_fields; i++)
		if (d->fields[i].id == id)
			return &d->fields[i];
	return NULL;
}

static void map_field(struct jctx *c, const ProtobufCMessageDescriptor *d,
		      const ProtobufCFieldDescriptor *f, json_t *v, ProtobufCMessage *msg)
{
	char *base = (char *)msg;
	if (json_is_null(v)) {
		jc_problem(c, "null is not accepted; leave the key out instead (expected %s)",
			   f->label == PROTOBUF_C_LABEL_REPEATED ? "an array" : field_expects(f));
		return;
	}
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		if (!json_is_array(v)) {
			jc_problem(c, "expected an array (of %s), got %s", field_expects(f),
				   json_type_name(v));
			return;
		}
		size_t n = json_array_size(v);
		if (n == 0)
			return;
		size_t esz = repeated_elt_size(f->type);
		/* Zeroed elements are safe for free_unpacked (free(NULL),
		 * free_unpacked(NULL)) if we stop half-way. */
		void *arr = calloc(n, esz);
		if (!arr) {
			c->jc_oom = true;
			return;
		}
		*(void **)(base + f->offset) = arr;
		*(size_t *)(base + f->quantifier_offset) = n;
		for (size_t i = 0; i < n && !jc_stop(c); i++) {
			size_t saved = jc_push_index(c, i);
			if (json_is_null(json_array_get(v, i)))
				jc_problem(c, "null is not accepted in an array (expected %s)",
					   field_expects(f));
			else
				map_value(c, f, json_array_get(v, i), (char *)arr + i * esz, true);
			jc_pop(c, saved);
		}
		return;
	}
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
		if (*which != 0 && *which != f->id) {
			const ProtobufCFieldDescriptor *other = field_by_id(d, *which);
			char oname[128];
			rete_json_field_name(other ? other->name : "?", oname, sizeof(oname));
			jc_problem(c,
				   "'%s' is already set and belongs to the same oneof; set only "
				   "one of them",
				   oname);
			return;
		}
		if (map_value(c, f, v, base + f->offset, false))
			*which = f->id;
		else if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
			 *(ProtobufCMessage **)(base + f->offset))
			*which = f->id; /* so free_unpacked releases the half-mapped submessage */
		return;
	}
	if (map_value(c, f, v, base + f->offset, false) && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
	    f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
		*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
}

static void map_message(struct jctx *c, const ProtobufCMessageDescriptor *d, json_t *obj,
			ProtobufCMessage *msg)
{
	const char *key;
	json_t *v;
	if (!json_is_object(obj)) {
		jc_problem(c, "expected an object (%s), got %s", d->short_name,
			   json_type_name(obj));
		return;
	}
	json_object_foreach(obj, key, v)
	{
		if (jc_stop(c))
			return;
		size_t saved = jc_push_key(c, key);
		const ProtobufCFieldDescriptor *f = field_by_json_name(d, key);
		if (!f) {
			char names[300];
			accepted_fields(d, names, sizeof(names));
			jc_problem(c, "unknown field of %s; accepted: %s", d->short_name, names);
		} else {
			map_field(c, d, f, v, msg);
		}
		jc_pop(c, saved);
	}
}

/* map_root maps in to a new message of type d under the path prefix. */
static rete_err map_root(struct jctx *c, const ProtobufCMessageDescriptor *d, json_t *in,
			 ProtobufCMessage **out)
{
	*out = NULL;
	ProtobufCMessage *msg = new_message(d);
	if (!msg)
		return RETE_ENOMEM;
	size_t before = c->jc_found;
	map_message(c, d, in, msg);
	if (c->jc_oom) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return RETE_ENOMEM;
	}
	if (c->jc_found != before) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return RETE_EJSON;
	}
	*out = msg;
	return RETE_OK;
}

rete_err rete_json_to_pb_all(const ProtobufCMessageDescriptor *d, json_t *in,
			     ProtobufCMessage **out, rete_problems *problems)
{
	if (!out)
		return RETE_EINVAL;
	*out = NULL;
	if (!d || !in)
		return RETE_EINVAL;
	struct jctx c = {.jc_probs = problems};
	return map_root(&c, d, in, out);
}

rete_err rete_json_to_pb(const ProtobufCMessageDescriptor *d, json_t *in, ProtobufCMessage **out,
			 rete_msg *m)
{
	if (!out)
		return rete_msg_set(m, RETE_EINVAL, "no output given");
	*out = NULL;
	if (!d || !in)
		return rete_msg_set(m, RETE_EINVAL, "no descriptor or no JSON given");
	rete_problems probs = {0};
	struct jctx c = {.jc_probs = &probs, .jc_limit = 1};
	rete_err e = map_root(&c, d, in, out);
	if (e == RETE_ENOMEM)
		rete_msg_set(m, e, "out of memory while mapping JSON to %s", d->short_name);
	else if (e != RETE_OK && probs.n > 0) {
		if (probs.items[0].path[0])
			rete_msg_set(m, e, "%s: %s", probs.items[0].path, probs.items[0].text);
		else
			rete_msg_set(m, e, "%s", probs.items[0].text);
	} else if (e != RETE_OK)
		rete_msg_set(m, e, "the JSON does not map to %s", d->short_name);
	rete_problems_free(&probs);
	return e;
}

/* ---------------------------------------------------------------------
 * protobuf -> JSON
 * ------------------------------------------------------------------ */

/* json_text makes a JSON string of a C string. jansson refuses invalid
 * UTF-8, which a strictly decoded message never holds; should one get here
 * anyway, each byte outside ASCII is shown as U+FFFD rather than dropping
 * the whole document. */
static json_t *json_text(const char *s)
{
	json_t *j = json_string(s);
	if (j || !s)
		return j;
	size_t n = strlen(s);
	char *buf = malloc(n * 3 + 1);
	if (!buf)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x80) {
			buf[o++] = (char)ch;
		} else {
			buf[o++] = (char)0xEF;
			buf[o++] = (char)0xBF;
			buf[o++] = (char)0xBD;
		}
	}
	buf[o] = '\0';
	j = json_string(buf);
	free(buf);
	return j;
}

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *src)
{
	char buf[32];
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)src);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)src);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (field_is_time(f))
			return json_string(rete_time_format(*(const int64_t *)src, buf));
		snprintf(buf, sizeof(buf), "%lld", (long long)*(const int64_t *)src);
		return json_string(buf);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)*(const uint64_t *)src);
		return json_string(buf);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)src);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)src);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)src);
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)src;
		const char *name = rete_enum_json_name(f->descriptor, v);
		return name ? json_string(name) : json_integer(v);
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)src;
		return json_text(s ? s : "");
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = src;
		size_t n = sodium_base64_encoded_len(bd->len, sodium_base64_VARIANT_ORIGINAL);
		char *b = malloc(n);
		if (!b)
			return NULL;
		sodium_bin2base64(b, n, bd->data ? bd->data : (const unsigned char *)"", bd->len,
				  sodium_base64_VARIANT_ORIGINAL);
		json_t *j = json_string(b);
		free(b);
		return j;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)src;
		if (!sub) {
			/* Only reachable through a set oneof member holding
			 * NULL: show it as an empty object. */
			return json_object();
		}
		return rete_pb_to_json(sub);
	}
	}
	return NULL;
}

/* field_present: proto3 presence. Oneof members and optional fields carry
 * their own flag; plain proto3 fields are present when not zero/empty. */
static bool field_present(const ProtobufCFieldDescriptor *f, const char *base)
{
	const void *p = base + f->offset;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	if (f->label == PROTOBUF_C_LABEL_REQUIRED)
		return true;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
			return *(void *const *)p != NULL;
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
	}
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return *(const uint32_t *)p != 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return *(const uint64_t *)p != 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *)p != 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *)p != 0;
	case PROTOBUF_C_TYPE_BOOL:
		return *(const protobuf_c_boolean *)p != 0;
	case PROTOBUF_C_TYPE_ENUM:
		return *(const int *)p != 0;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		return s && s[0];
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len != 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(void *const *)p != NULL;
	}
	return false;
}

json_t *rete_pb_to_json(const ProtobufCMessage *msg)
{
	if (!msg || !msg->descriptor)
		return NULL;
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const char *base = (const char *)msg;
	json_t *obj = json_object();
	if (!obj)
		return NULL;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		json_t *v;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(char *const *)(base + f->offset);
			if (n == 0 || !arr)
				continue;
			size_t esz = repeated_elt_size(f->type);
			v = json_array();
			if (!v)
				goto oom;
			for (size_t k = 0; k < n; k++)
				if (json_array_append_new(v, value_to_json(f, arr + k * esz)) !=
				    0) {
					json_decref(v);
					goto oom;
				}
		} else {
			if (!field_present(f, base))
				continue;
			v = value_to_json(f, base + f->offset);
			if (!v)
				goto oom;
		}
		char name[128];
		rete_json_field_name(f->name, name, sizeof(name));
		if (json_object_set_new(obj, name, v) != 0)
			goto oom;
	}
	return obj;
oom:
	json_decref(obj);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Loading files
 * ------------------------------------------------------------------ */

/* dup_key_path finds the path of the duplicate key that jansson stopped at:
 * it walks the (syntactically valid up to there) text to byte offset pos,
 * keeping a stack of the containers it is in, and writes the path of the
 * last key read into buf. */
static void dup_key_path(const char *text, size_t len, size_t pos, char *buf, size_t n)
{
	enum { MAXD = 64 };
	struct {
		bool is_obj;
		size_t idx;
		char key[96];
	} st[MAXD];
	int depth = 0;
	bool expect_key = false;
	if (pos > len)
		pos = len;
	buf[0] = '\0';
	for (size_t i = 0; i < pos; i++) {
		char ch = text[i];
		if (ch == '{' || ch == '[') {
			if (depth < MAXD) {
				st[depth].is_obj = ch == '{';
				st[depth].idx = 0;
				st[depth].key[0] = '\0';
			}
			depth++;
			expect_key = ch == '{';
		} else if (ch == '}' || ch == ']') {
			if (depth > 0)
				depth--;
			expect_key = false;
		} else if (ch == ',') {
			if (depth > 0 && depth <= MAXD) {
				st[depth - 1].idx++;
				expect_key = st[depth - 1].is_obj;
			}
		} else if (ch == '"') {
			size_t start = ++i, o = 0;
			char key[96];
			while (i < len && text[i] != '"') {
				if (text[i] == '\\' && i + 1 < len)
					i++;
				i++;
			}
			/* keep the raw key text (escapes as written) */
			for (size_t k = start; k < i && o + 1 < sizeof(key); k++)
				key[o++] = text[k];
			key[o] = '\0';
			if (expect_key && depth > 0 && depth <= MAXD)
				memcpy(st[depth - 1].key, key, sizeof(key));
			expect_key = false;
		}
	}
	size_t o = 0;
	for (int k = 0; k < depth && k < MAXD && o + 1 < n; k++) {
		int w;
		if (st[k].is_obj)
			w = snprintf(buf + o, n - o, "%s%s", o ? "." : "", st[k].key);
		else
			w = snprintf(buf + o, n - o, "[%zu]", st[k].idx);
		if (w < 0)
			break;
		o += (size_t)w;
		if (o >= n)
			o = n - 1;
	}
}

rete_err rete_json_loadb(const char *text, size_t len, const char *name, json_t **out, rete_msg *m)
{
	json_error_t err;
	const char *nm = name ? name : "JSON";
	*out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (*out)
		return RETE_OK;
	switch (json_error_code(&err)) {
	case json_error_out_of_memory:
		return rete_msg_set(m, RETE_ENOMEM, "%s: out of memory while reading JSON", nm);
	case json_error_duplicate_key: {
		char path[256];
		dup_key_path(text, len, err.position > 0 ? (size_t)err.position : 0, path,
			     sizeof(path));
		return rete_msg_set(m, RETE_EJSON,
				    "%s: %s: duplicate key (line %d, column %d); each key may "
				    "appear only once",
				    nm, path[0] ? path : "?", err.line, err.column);
	}
	default:
		return rete_msg_set(m, RETE_EJSON, "%s: line %d, column %d: %s", nm, err.line,
				    err.column, err.text);
	}
}

rete_err rete_json_load_file(const char *path, json_t **out, rete_msg *m)
{
	*out = NULL;
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return rete_msg_set(m, RETE_EIO, "%s: cannot open: %s", path, strerror(errno));
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		fclose(fp);
		return rete_msg_set(m, RETE_ENOMEM, "%s: out of memory", path);
	}
	for (;;) {
		if (len == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				fclose(fp);
				return rete_msg_set(m, RETE_ENOMEM, "%s: out of memory", path);
			}
			buf = nb;
			cap *= 2;
		}
		size_t k = fread(buf + len, 1, cap - len, fp);
		len += k;
		if (k == 0)
			break;
	}
	if (ferror(fp)) {
		int e = errno;
		free(buf);
		fclose(fp);
		return rete_msg_set(m, RETE_EIO, "%s: cannot read: %s", path, strerror(e));
	}
	fclose(fp);
	rete_err e = rete_json_loadb(buf, len, path, out, m);
	free(buf);
	return e;
}

rete_err rete_json_load_outbox(const char *path_or_null, json_t *doc, Rete__Message **msg,
			       Rete__Private **priv, rete_problems *problems)
{
	if (!msg || !priv)
		return RETE_EINVAL;
	*msg = NULL;
	*priv = NULL;
	json_t *owned = NULL;
	if (!doc) {
		rete_msg m;
		if (!path_or_null)
			return RETE_EINVAL;
		rete_err e = rete_json_load_file(path_or_null, &owned, &m);
		if (e != RETE_OK) {
			rete_problems_add(problems, "", "%s", m.text);
			return e;
		}
		doc = owned;
	}
	struct jctx c = {.jc_probs = problems};
	rete_err e = RETE_OK;
	if (!json_is_object(doc)) {
		jc_problem(&c,
			   "expected an object (a Message, optionally with \"private\"), got %s",
			   json_type_name(doc));
		json_decref(owned);
		return RETE_EJSON;
	}
	json_t *pj = json_object_get(doc, "private");
	json_t *mj = doc;
	if (pj) {
		/* shallow copy without "private": the values are shared */
		mj = json_copy(doc);
		if (!mj || json_object_del(mj, "private") != 0) {
			json_decref(mj);
			json_decref(owned);
			return RETE_ENOMEM;
		}
	}
	ProtobufCMessage *m1 = NULL, *m2 = NULL;
	rete_err e1 = map_root(&c, &rete__message__descriptor, mj, &m1);
	rete_err e2 = RETE_OK;
	if (pj && e1 != RETE_ENOMEM) {
		size_t saved = jc_push_key(&c, "private");
		e2 = map_root(&c, &rete__private__descriptor, pj, &m2);
		jc_pop(&c, saved);
	}
	if (mj != doc)
		json_decref(mj);
	json_decref(owned);
	if (e1 == RETE_ENOMEM || e2 == RETE_ENOMEM)
		e = RETE_ENOMEM;
	else if (e1 != RETE_OK || e2 != RETE_OK)
		e = RETE_EJSON;
	if (e != RETE_OK) {
		protobuf_c_message_free_unpacked(m1, NULL);
		protobuf_c_message_free_unpacked(m2, NULL);
		return e;
	}
	*msg = (Rete__Message *)m1;
	*priv = (Rete__Private *)m2;
	return RETE_OK;
}

json_t *rete_json_outbox_doc(const Rete__Message *msg, const Rete__Private *priv)
{
	if (!msg)
		return NULL;
	json_t *doc = rete_pb_to_json(&msg->base);
	if (!doc || !priv)
		return doc;
	json_t *pj = rete_pb_to_json(&priv->base);
	if (!pj || json_object_set_new(doc, "private", pj) != 0) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}
