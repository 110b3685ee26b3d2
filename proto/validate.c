/* validate.c — semantic checks of a Message and its sealed part.
 *
 * Every check appends a problem (path + sentence) and goes on, so a person
 * sees everything wrong with a file at once. Paths use the JSON spelling
 * (json.h): lowerCamelCase, `private.` for the sealed part, `[i]` for
 * repeated fields. Sentences name the value (never one of the sealed part:
 * that is personal data and errors end up in logs) and what is accepted.
 */
#include "validate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "codec.h"
#include "duration.h"
#include "keys.h"
#include "lifecycle.h"

#define ID_CHARS	"letters, digits and . _ : -"
#define PARTY_FORM	"2 to 63 characters matching ^[a-z0-9][a-z0-9.-]{1,62}$ (e.g. social.mantova)"
#define AGENCY_STATUSES "accepted, rejected, in-progress, on-hold, completed, failed or cancelled"

/* One validation run: where problems go and how many this run added. */
typedef struct v_ctx {
	rete_problems *out;
	size_t count;
	rete_validate_mode mode;
} v_ctx;

static void v_add(v_ctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void v_add(v_ctx *v, const char *path, const char *fmt, ...)
{
	va_list ap;

	v->count++;
	va_start(ap, fmt);
	rete_problems_vadd(v->out, path, fmt, ap);
	va_end(ap);
}

static const char *v_str(const char *s)
{
	return s != NULL ? s : "";
}

/* v_utf8_len: length of the well-formed UTF-8 sequence at s (1..4), or 0
 * when it is not one (overlong forms, surrogates and cut sequences too). */
static size_t v_utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++) /* a NUL stops here too */
		if ((s[k] & 0xC0) != 0x80)
			return 0;
	return n;
}

/* v_show quotes s for a sentence: at most 48 bytes of it (cut on a
 * character boundary, "..." added), control characters and bytes that are
 * not UTF-8 shown as '?', so that the sentence stays short and valid UTF-8
 * whatever the value. buf needs 1 + 48 + 3 + 1 + 1 bytes. */
static const char *v_show(const char *s, char buf[64])
{
	const unsigned char *u = (const unsigned char *)v_str(s);
	size_t i = 0, o = 0;
	const size_t keep = 48;

	buf[o++] = '\'';
	while (u[i] != '\0' && i < keep) {
		size_t clen = v_utf8_len(u + i);
		if (clen == 0) {
			buf[o++] = '?';
			i++;
			continue;
		}
		if (i + clen > keep)
			break;
		if (clen == 1) {
			buf[o++] = (u[i] < 0x20 || u[i] == 0x7f) ? '?' : (char)u[i];
		} else {
			memcpy(buf + o, u + i, clen);
			o += clen;
		}
		i += clen;
	}
	if (u[i] != '\0') {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}

/* v_bad_char describes the first character of s not allowed by ok(). */
static void v_bad_char(const char *s, bool (*ok)(unsigned char), char *buf, size_t n)
{
	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (ok(c))
			continue;
		if (c > 0x20 && c < 0x7f)
			snprintf(buf, n, "'%c' at position %zu", (char)c, i + 1);
		else if (c == ' ')
			snprintf(buf, n, "a space at position %zu", i + 1);
		else
			snprintf(buf, n, "byte 0x%02X at position %zu", c, i + 1);
		return;
	}
	snprintf(buf, n, "none");
}

static bool v_idchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

static bool v_servicechar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static bool v_all(const char *s, bool (*ok)(unsigned char))
{
	for (; *s != '\0'; s++)
		if (!ok((unsigned char)*s))
			return false;
	return true;
}

bool rete_text_id_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	return n >= 1 && n <= RETE_ID_TEXT_MAX && v_all(s, v_idchar);
}

/* v_id_shape: what is wrong with s (v_str'd), a text of id characters, at
 * most max of them. An empty s is V_ID_FINE, `missing` added when
 * `required`; V_ID_CHAR describes the first character not accepted in bad. */
enum v_id_shape { V_ID_FINE, V_ID_LONG, V_ID_CHAR };

static enum v_id_shape v_id_shape(v_ctx *v, const char *path, const char *s, size_t max,
				  bool required, const char *missing, char bad[48])
{
	size_t n = strlen(s);

	if (n == 0) {
		if (required)
			v_add(v, path, "%s", missing);
		return V_ID_FINE;
	}
	if (n > max)
		return V_ID_LONG;
	if (!v_all(s, v_idchar)) {
		v_bad_char(s, v_idchar, bad, 48);
		return V_ID_CHAR;
	}
	return V_ID_FINE;
}

static bool v_personal(v_ctx *v, const char *path, const char *what, const char *s,
		       const char *hint);

/* v_text_id checks a message id, case id or referral id. An empty value is
 * a problem only when `required`; `missing` then is the sentence. */
static void v_text_id_note(v_ctx *v, const char *path, const char *what, const char *s,
			   bool required, const char *missing, const char *note)
{
	char show[64], bad[48];

	s = v_str(s);
	if (v_personal(v, path, what, s,
		       note[0] != '\0'
			   ? note
			   : "; an id is a code your system chooses (e.g. ref-2026-0042)"))
		return;
	switch (v_id_shape(v, path, s, RETE_ID_TEXT_MAX, required, missing, bad)) {
	case V_ID_LONG:
		v_add(v, path, "%s %s is %zu characters long; at most %d are accepted (%s)%s", what,
		      v_show(s, show), strlen(s), RETE_ID_TEXT_MAX, ID_CHARS, note);
		break;
	case V_ID_CHAR:
		v_add(v, path,
		      "%s %s has a character that is not accepted (%s); use 1 to %d characters: "
		      "%s%s",
		      what, v_show(s, show), bad, RETE_ID_TEXT_MAX, ID_CHARS, note);
		break;
	case V_ID_FINE:
		break;
	}
}

static void v_text_id(v_ctx *v, const char *path, const char *what, const char *s, bool required,
		      const char *missing)
{
	v_text_id_note(v, path, what, s, required, missing, "");
}

/* v_code checks a code (reason code, status reason, business status, note
 * kind): the id characters, at most RETE_SHORT_MAX. Codes are logged and
 * reported for ever, so no spaces: free text belongs in the sealed part. */
static void v_code(v_ctx *v, const char *path, const char *s, bool required, const char *missing)
{
	char show[64], bad[48];

	s = v_str(s);
	if (v_personal(v, path, path, s,
		       "; a code is a word of letters, digits and '-' from your agency's list "
		       "(e.g. lack-of-capacity)"))
		return;
	switch (v_id_shape(v, path, s, RETE_SHORT_MAX, required, missing, bad)) {
	case V_ID_LONG:
		v_add(v, path, "code %s is %zu characters long; a code is at most %d",
		      v_show(s, show), strlen(s), RETE_SHORT_MAX);
		break;
	case V_ID_CHAR:
		v_add(v, path,
		      "%s is not a code: it has %s; a code is made of %s (e.g. lack-of-capacity), "
		      "and free text belongs in the sealed part",
		      v_show(s, show), bad, ID_CHARS);
		break;
	case V_ID_FINE:
		break;
	}
}

/* v_cap checks the length of a text; `personal` texts are not quoted. */
static void v_cap(v_ctx *v, const char *path, const char *s, size_t cap, bool personal)
{
	char show[64];
	size_t n = strlen(v_str(s));

	if (n <= cap)
		return;
	if (personal)
		v_add(v, path, "the text is %zu bytes long; at most %zu are accepted", n, cap);
	else
		v_add(v, path, "%s is %zu bytes long; at most %zu are accepted", v_show(s, show), n,
		      cap);
}

static void v_party(v_ctx *v, const char *path, const char *what, const char *s, bool required)
{
	char show[64];

	s = v_str(s);
	if (s[0] == '\0') {
		if (required)
			v_add(v, path, "%s is missing; give a party id: %s", what, PARTY_FORM);
		return;
	}
	if (!rete_id_valid(s))
		v_add(v, path, "%s %s is not a valid party id; a party id is %s", what,
		      v_show(s, show), PARTY_FORM);
}

static void v_sha(v_ctx *v, const char *path, const ProtobufCBinaryData *h, bool required,
		  const char *missing)
{
	if (h->len == 0) {
		if (required)
			v_add(v, path, "%s", missing);
		return;
	}
	if (h->len != 32)
		v_add(v, path,
		      "the hash is %zu bytes long; a SHA-256 is exactly 32 bytes (44 characters of "
		      "base64)",
		      h->len);
}

/* v_enum checks an enum field: set, and a value the schema knows. */
static void v_enum(v_ctx *v, const char *path, int value, const ProtobufCEnumDescriptor *d,
		   const char *what, const char *accepted)
{
	if (value == 0)
		v_add(v, path, "%s is missing; give %s", what, accepted);
	else if (protobuf_c_enum_descriptor_get_value(d, value) == NULL)
		v_add(v, path, "%s %d is not a known value; give %s", what, value, accepted);
}

/* ------------------------------------------------------------------------
 * Personal data where only codes go (issue 18). Identifiers and codes are
 * logged for ever and can never be erased, so they refuse what looks like
 * personal data; docs/formats.md ("Codes only in the log") documents the
 * shapes, which are:
 *
 * - an Italian fiscal code: a run of exactly 16 letters and digits
 *   (bounded by other characters or the ends of the value) of the shape
 *   LLLLLL NN M NN L NNN L, case-insensitive, where L is a letter, M a
 *   month letter (A B C D E H L M P R S T) and N a digit or one of the
 *   omocodia letters (L M N P Q R S T U V) that replace digits; or the
 *   same 16 written in groups joined by single '-', '.', '/', ':', '_' or
 *   spaces (whole groups, at least one of the 16 a digit so that the
 *   words of a sentence never make one, never the groups of a UUID);
 * - a temporary fiscal code (codice fiscale provvisorio): a run of exactly
 *   11 digits (bounded as above) whose last is the check digit of the
 *   first ten, the rule private.person.fiscalCode takes it by; an 11-digit
 *   protocol number is refused too when its last digit happens to match
 *   (one in ten: docs/formats.md says what ids to use instead);
 * - an e-mail address: an '@' after a character that is not a space or an
 *   '@', followed by a domain (letters, digits, '-' and '.') with a '.'
 *   followed by a letter;
 * - a phone number: a run of digits in groups joined by single '-', '.',
 *   '/' or spaces, standing on its own (no letter or digit just before or
 *   after it), where a group of exactly four digits that is a year
 *   (1900-2099) ends the run and a UUID (8-4-4-4-12 hexadecimal) is never
 *   part of one, that is either preceded by '+' and has 8 to 15 digits, or
 *   has 9 to 11 digits beginning with 3 (a mobile) or with 0 and then 1-9
 *   (a landline), or is 0039 followed by such a number; written in several
 *   groups, the national number's first group must be a prefix: 3 digits
 *   from 3 (a mobile's) or 2 to 4 digits from 0 then 1-9 (an area code);
 * - a space or a control character: ASCII space and the bytes below 0x20
 *   or DEL, the C1 controls U+0080-U+009F and the Unicode spaces U+00A0,
 *   U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F and U+3000.
 *
 * So "ref-2026-0042", dates, times, UUIDs and hexadecimal ids never trip
 * it. The sentences say what was found and where it belongs, never the
 * value itself.
 */

enum v_pd {
	V_PD_NONE,
	V_PD_FISCAL,
	V_PD_FISCAL_GROUPS,
	V_PD_TEMPORARY,
	V_PD_EMAIL,
	V_PD_PHONE,
	V_PD_CONTROL,
	V_PD_SPACE,
	V_PD_RETRY /* v_personal_scan without the groups: look again with them */
};

/* The classes of a byte, by table: the checks below look at every byte of
 * a field (consent.legalBasis may be a long citation), so one load instead
 * of a chain of comparisons. V_K_SPACE marks the bytes a space or control
 * character starts with (v_space_len says whether one does). */
enum {
	V_K_DIGIT = 1,
	V_K_ALPHA = 2,
	V_K_HEX = 4,
	V_K_AT = 8,
	V_K_SPACE = 16,
	V_K_PSEP = 32, /* v_phone_sep */
	V_K_GSEP = 64, /* v_group_sep */
	V_K_END = 128  /* the string's NUL */
};
#define V_K_ALNUM (V_K_DIGIT | V_K_ALPHA)

static const unsigned char v_kind[256] = {
    [0x00] = V_K_END,
    [0x01 ... 0x1f] = V_K_SPACE,
    [' '] = V_K_SPACE | V_K_PSEP | V_K_GSEP,
    ['-'] = V_K_PSEP | V_K_GSEP,
    ['.'] = V_K_PSEP | V_K_GSEP,
    ['/'] = V_K_PSEP | V_K_GSEP,
    [':'] = V_K_GSEP,
    ['_'] = V_K_GSEP,
    ['0' ... '9'] = V_K_DIGIT | V_K_HEX,
    ['A' ... 'F'] = V_K_ALPHA | V_K_HEX,
    ['G' ... 'Z'] = V_K_ALPHA,
    ['a' ... 'f'] = V_K_ALPHA | V_K_HEX,
    ['g' ... 'z'] = V_K_ALPHA,
    ['@'] = V_K_AT,
    [0x7f] = V_K_SPACE,
    [0xC2] = V_K_SPACE,
    [0xE1 ... 0xE3] = V_K_SPACE,
};

static bool v_alnum(unsigned char c)
{
	return (v_kind[c] & V_K_ALNUM) != 0;
}

static bool v_digit(unsigned char c)
{
	return (v_kind[c] & V_K_DIGIT) != 0;
}

static bool v_hex(unsigned char c)
{
	return (v_kind[c] & V_K_HEX) != 0;
}

static unsigned char v_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

bool rete_fiscal_code_shape(const char *code, size_t *bad)
{
	static const char shape[] = "LLLLLLNNMNNLNNNL";
	const unsigned char *s = (const unsigned char *)code;
	for (size_t i = 0; i < 16; i++) {
		unsigned char c = v_upper(s[i]);
		bool letter = c >= 'A' && c <= 'Z';
		bool ok;
		if (shape[i] == 'L')
			ok = letter;
		else if (shape[i] == 'M')
			ok = letter && strchr("ABCDEHLMPRST", c) != NULL;
		else
			ok = v_digit(c) || (letter && strchr("LMNPQRSTUV", c) != NULL);
		if (!ok) {
			if (bad != NULL)
				*bad = i;
			return false;
		}
	}
	return true;
}

/* v_temporary_digit_ok: the last of the 11 digits at s is the check
 * digit of the first ten, reckoned as for a partita IVA: the digits in odd
 * places (1st, 3rd, ...) as they are, those in even places doubled, less 9
 * when that is over 9; the check digit takes the sum to a multiple of 10. */
static bool v_temporary_digit_ok(const char *s)
{
	int sum = 0;
	for (int i = 0; i < 10; i++) {
		int d = s[i] - '0';
		if (i % 2 == 1)
			d = 2 * d > 9 ? 2 * d - 9 : 2 * d;
		sum += d;
	}
	return (10 - sum % 10) % 10 == s[10] - '0';
}

bool rete_fiscal_code_check(const char *s, char *why, size_t n)
{
	static const char accepted[] = "a fiscal code is 16 capital letters and digits, a "
				       "temporary one (codice fiscale provvisorio) 11 digits";
	size_t chars = 0, digits = 0, first_bad = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xC0) == 0x80)
			continue; /* a UTF-8 continuation: the same character */
		chars++;
		bool digit = *p >= '0' && *p <= '9';
		digits += digit;
		if (first_bad == 0 && !digit && !(*p >= 'A' && *p <= 'Z'))
			first_bad = chars;
	}
	size_t bytes = strlen(s);
	if (bytes == 16 && first_bad == 0)
		return true;
	if (bytes == 11 && digits == 11) {
		if (v_temporary_digit_ok(s))
			return true;
		if (why != NULL)
			snprintf(
			    why, n,
			    "it has 11 digits, as a temporary fiscal code (codice fiscale "
			    "provvisorio) has, but its last digit, the check digit, does not "
			    "match the first ten: a digit is mistyped or two are swapped; copy "
			    "it again from the person's tax card or document");
		return false;
	}
	if (why == NULL)
		return false;
	if ((chars == 16 || chars == 11) && first_bad > 0)
		snprintf(why, n, "its character %zu is not a capital letter or a digit; %s",
			 first_bad, accepted);
	else if (chars == 11)
		snprintf(why, n, "it has 11 characters, not all digits; %s", accepted);
	else
		snprintf(why, n, "it has %zu character%s; %s", chars, chars == 1 ? "" : "s",
			 accepted);
	return false;
}

bool rete_fiscal_code_valid(const char *s)
{
	return rete_fiscal_code_check(s, NULL, 0);
}

/* v_fiscal_shape: the 16 characters at s have the shape of a fiscal code. */
static bool v_fiscal_shape(const unsigned char *s)
{
	return rete_fiscal_code_shape((const char *)s, NULL);
}

/* v_uuid_at: a UUID (8-4-4-4-12 hexadecimal digits) starts at s and is not
 * followed by another hexadecimal digit or '-'. */
static bool v_uuid_at(const unsigned char *s)
{
	static const int groups[] = {8, 4, 4, 4, 12};
	size_t i = 0;
	for (int g = 0; g < 5; g++) {
		for (int k = 0; k < groups[g]; k++, i++)
			if (!v_hex(s[i]))
				return false;
		if (g < 4 && s[i++] != '-')
			return false;
	}
	return !v_hex(s[i]) && s[i] != '-';
}

static bool v_phone_sep(unsigned char c)
{
	return (v_kind[c] & V_K_PSEP) != 0; /* '-', '.', '/' or ' ' */
}

/* v_national_prefix: the g digits at d begin an Italian number written in
 * groups: a mobile's 3xx, or a landline's area code (0 then 1-9, 2 to 4
 * digits). */
static bool v_national_prefix(const char *d, size_t g)
{
	return (g == 3 && d[0] == '3') ||
	       (g >= 2 && g <= 4 && d[0] == '0' && d[1] >= '1' && d[1] <= '9');
}

/* v_phone_digits: the digits of one run (d, n of them; only the first 16
 * kept) make a phone number; plus: the run follows a '+'; groups: how many
 * groups, g1 and g2 the lengths of the first two. */
static bool v_phone_digits(const char *d, size_t n, bool plus, size_t groups, size_t g1, size_t g2)
{
	if (plus)
		return n >= 8 && n <= 15;
	if (n >= 9 && n <= 11)
		return groups == 1 ? d[0] == '3' || (d[0] == '0' && d[1] >= '1' && d[1] <= '9')
				   : v_national_prefix(d, g1);
	if (n >= 13 && n <= 15 && memcmp(d, "0039", 4) == 0)
		return groups == 1 ? d[4] == '3' || (d[4] == '0' && d[5] >= '1' && d[5] <= '9')
				   : g1 == 4 && v_national_prefix(d + 4, g2);
	return false;
}

/* v_find_phone: the first run of s that is a phone number: its position
 * (0-based, at the '+' if any) in *at and its number of digits in *digits.
 * A run stands on its own: no letter or digit just before or after it, so
 * digits inside a longer code (a hexadecimal id such as the agent mints)
 * never make one. */
static bool v_find_phone(const unsigned char *s, size_t *at, size_t *digits)
{
	char d[16] = {0};
	size_t n = 0, start = 0, i = 0, groups = 0, g1 = 0, g2 = 0;
	bool plus = false, alone = false;

#define V_RUN_END(next)                                                                            \
	do {                                                                                       \
		if (n > 0 && alone && !v_alnum(next) &&                                            \
		    v_phone_digits(d, n, plus, groups, g1, g2)) {                                  \
			*at = start;                                                               \
			*digits = n;                                                               \
			return true;                                                               \
		}                                                                                  \
		n = 0;                                                                             \
	} while (0)

	for (;;) {
		if (v_hex(s[i]) && (i == 0 || !v_hex(s[i - 1])) && v_uuid_at(s + i)) {
			V_RUN_END('-'); /* a UUID is never part of a run */
			i += 36;
			continue;
		}
		if (v_digit(s[i])) {
			size_t j = i;
			while (v_digit(s[j]))
				j++;
			if (j - i == 4 &&
			    (memcmp(s + i, "19", 2) == 0 || memcmp(s + i, "20", 2) == 0)) {
				V_RUN_END('-'); /* a year ends the run */
			} else {
				if (n == 0) {
					plus = i > 0 && s[i - 1] == '+';
					start = plus ? i - 1 : i;
					alone = start == 0 || !v_alnum(s[start - 1]);
					groups = 0;
				}
				if (groups == 0)
					g1 = j - i;
				else if (groups == 1)
					g2 = j - i;
				groups++;
				for (size_t k = i; k < j; k++, n++)
					if (n < sizeof(d))
						d[n] = (char)s[k];
			}
			i = j;
			if (v_phone_sep(s[i]) && v_digit(s[i + 1])) {
				i++; /* the run goes on after one separator */
				continue;
			}
			V_RUN_END(s[i]);
		}
		if (s[i] == '\0')
			return false;
		i++;
	}
#undef V_RUN_END
}

/* v_find_email: an '@' with a character before it and a domain after it. */
static bool v_find_email(const unsigned char *s, size_t *at)
{
	if (s[0] == '\0')
		return false;
	for (size_t k = 1; s[k] != '\0'; k++) {
		if (s[k] != '@' || s[k - 1] == '@' || s[k - 1] <= ' ')
			continue;
		for (size_t j = k + 1; v_alnum(s[j]) || s[j] == '-' || s[j] == '.'; j++) {
			unsigned char c = v_upper(s[j + 1]);
			if (s[j] == '.' && j > k + 1 && c >= 'A' && c <= 'Z') {
				*at = k;
				return true;
			}
		}
	}
	return false;
}

/* v_space_len: the length of the space or control character at s (0: none);
 * *control tells which. */
static size_t v_space_len(const unsigned char *s, bool *control)
{
	*control = false;
	if (s[0] == ' ')
		return 1;
	if (s[0] < 0x20 || s[0] == 0x7f) {
		*control = true;
		return 1;
	}
	if (s[0] == 0xC2 && s[1] >= 0x80 && s[1] <= 0x9F) {
		*control = true;
		return 2;
	}
	if (s[0] == 0xC2 && s[1] == 0xA0)
		return 2;
	if (s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80)
		return 3;
	if (s[0] == 0xE2 && s[1] == 0x80 &&
	    ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
		return 3;
	if (s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F)
		return 3;
	if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
		return 3;
	return 0;
}

/* v_group_sep: what may join the groups of a fiscal code written in
 * groups: a phone number's separators, and ':' and '_' (an id may hold
 * ':'; neither makes a code out of a time or a word: the shape does not
 * start with a digit, and needs one). */
static bool v_group_sep(unsigned char c)
{
	return (v_kind[c] & V_K_GSEP) != 0; /* a phone number's, ':' or '_' */
}

/* The last groups of a run of words joined by single separators
 * (v_group_sep), for a fiscal code written in groups: 15 at most, since
 * each has a character and the code 16. */
struct v_groups {
	size_t at[15], len[15];
	size_t n;	 /* groups held */
	size_t end;	 /* where the last group ended */
	size_t uuid_end; /* the end of the last UUID seen: its groups join no run */
};

/* v_group_word: the word of len characters at s + at, the next word of s,
 * ends whole groups of its run that make 16 letters and digits, one of
 * them a digit at least, in the shape of a fiscal code: true, the first
 * group's position in *found. Keeps the run's groups in g. */
static bool v_group_word(const unsigned char *s, size_t at, size_t len, struct v_groups *g,
			 size_t *found)
{
	if (len == 8 && at >= g->uuid_end && s[at + 8] == '-' && v_uuid_at(s + at))
		g->uuid_end = at + 36;
	bool joined = g->n > 0 && at == g->end + 1 && v_group_sep(s[g->end]);
	g->end = at + len;
	if (at < g->uuid_end || len >= 16) {
		g->n = 0; /* a UUID's groups, or a word too long to be a group */
		return false;
	}
	if (!joined)
		g->n = 0;
	size_t total = len;
	for (size_t k = g->n; k-- > 0 && total < 16;) {
		total += g->len[k];
		if (total != 16)
			continue;
		unsigned char code[17];
		size_t c = 0;
		bool digit = false;
		for (size_t j = k; j <= g->n; j++) {
			size_t from = j < g->n ? g->at[j] : at, n = j < g->n ? g->len[j] : len;
			for (size_t q = 0; q < n; q++) {
				digit |= v_digit(s[from + q]);
				code[c++] = s[from + q];
			}
		}
		code[16] = '\0';
		if (digit && v_fiscal_shape(code)) {
			*found = g->at[k];
			return true;
		}
	}
	if (g->n == sizeof(g->at) / sizeof(g->at[0])) { /* the oldest can end no code */
		memmove(g->at, g->at + 1, (g->n - 1) * sizeof(g->at[0]));
		memmove(g->len, g->len + 1, (g->n - 1) * sizeof(g->len[0]));
		g->n--;
	}
	g->at[g->n] = at;
	g->len[g->n] = len;
	g->n++;
	return false;
}

/* v_temporary_at: the 11 characters at s are digits, the last the check
 * digit of the first ten (a temporary fiscal code). */
static bool v_temporary_at(const unsigned char *s)
{
	for (size_t i = 0; i < 11; i++)
		if (!v_digit(s[i]))
			return false;
	return v_temporary_digit_ok((const char *)s);
}

/* v_space_first: the first space or control character of s (its position
 * in *at), the last thing v_personal_scan looks for. */
static enum v_pd v_space_first(const unsigned char *s, size_t *at)
{
	bool control;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if ((v_kind[s[i]] & V_K_SPACE) && v_space_len(s + i, &control) > 0) {
			*at = i;
			return control ? V_PD_CONTROL : V_PD_SPACE;
		}
	}
	return V_PD_NONE;
}

/* v_personal_scan: what in s looks like personal data, and where (0-based
 * position; for a phone number also its digits). With `groups` false it
 * does not look for a fiscal code written in groups: it only adds up the
 * letters and digits of each run of words joined by single separators
 * (v_group_sep; a UUID's groups and a word of 16 or more end a run, as in
 * v_group_word), and gives up with V_PD_RETRY as soon as one reaches 16,
 * before it reports anything that word or a later one holds. Until then
 * no run could have held such a code, so what it reports is what the
 * full scan reports; most text (a law's citation: "L. 328/2000 art. 22")
 * never has such a run, and skips v_group_word's work on every word. */
static enum v_pd v_personal_scan(const char *str, size_t *at, size_t *digits, bool groups_on)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned seen = 0;	/* the classes (v_kind) of the bytes between words */
	size_t word = 0;	/* where the word (a run of letters and digits) began */
	size_t run = 0;		/* digits of the run of digit groups so far */
	bool phone = false;	/* a run of 8 digits or more: v_find_phone must look */
	struct v_groups groups; /* at[] and len[] are read below n only: not cleared */
	groups.n = groups.end = groups.uuid_end = 0;
	size_t joined = 0;   /* !groups_on: letters and digits of the run so far */
	size_t word_end = 0; /* !groups_on: where the word before ended */
	size_t uuid_end = 0; /* !groups_on: the end of the last UUID seen */
	size_t i;

	/* One pass over the bytes: the words (a fiscal code is one of 16
	 * characters), the runs of digit groups joined by one separator each
	 * (a phone number has 8 digits or more, the fewest v_phone_digits
	 * accepts; years and UUIDs only shorten v_find_phone's runs), and the
	 * classes the later checks need to find anything at all. */
	i = 0;
	for (;;) {
		unsigned k;
		while (!((k = v_kind[s[i]]) & V_K_ALNUM)) {
			if (k & V_K_END)
				goto words_done;
			seen |= k;
			i++;
		}
		word = i;
		do {
			if (k & V_K_DIGIT) {
				size_t g = i;
				while (v_kind[s[i]] & V_K_DIGIT)
					i++;
				if (g >= 2 && v_phone_sep(s[g - 1]) &&
				    (v_kind[s[g - 2]] & V_K_DIGIT))
					run += i - g; /* the run goes on after one separator */
				else
					run = i - g;
				if (run >= 8)
					phone = true;
			} else {
				i++;
			}
		} while ((k = v_kind[s[i]]) & V_K_ALNUM);
		if (i - word == 16 && v_fiscal_shape(s + word)) {
			*at = word;
			return V_PD_FISCAL;
		}
		if (i - word == 11 && v_temporary_at(s + word)) {
			*at = word;
			return V_PD_TEMPORARY;
		}
		if (groups_on) {
			if (v_group_word(s, word, i - word, &groups, at))
				return V_PD_FISCAL_GROUPS;
			continue;
		}
		/* v_group_word's runs, counted: a UUID starts with a word of 8 */
		size_t len = i - word;
		if (len == 8 && word >= uuid_end && s[i] == '-' && v_uuid_at(s + word))
			uuid_end = word + 36;
		if (word < uuid_end || len >= 16) {
			joined = 0;
		} else {
			bool on = joined > 0 && word == word_end + 1 && v_group_sep(s[word_end]);
			joined = on ? joined + len : len;
			if (joined >= 16)
				return V_PD_RETRY;
		}
		word_end = i;
	}
words_done:
	/* an e-mail address has an '@', a space or control character starts
	 * with one of the V_K_SPACE bytes */
	if ((seen & V_K_AT) && v_find_email(s, at))
		return V_PD_EMAIL;
	if (phone && v_find_phone(s, at, digits))
		return V_PD_PHONE;
	return (seen & V_K_SPACE) ? v_space_first(s, at) : V_PD_NONE;
}

/* The first pass (v_scan_plain): the classes v_personal_scan's word loop
 * needs, one bit a byte (bit i: byte i of the 16 to 48 bytes classified). */
struct v_block {
	uint64_t alnum, digit;
	uint64_t gsep; /* v_group_sep */
	bool at;       /* an '@' among them */
};

/* v_block_bytes: the classes of the blocks of 16 bytes at p (1 to 3 of
 * them), one byte at a time from v_kind: where SSE2 is missing; the test
 * compares it with v_block_sse2, hence kept, unused, where it is not. */
__attribute__((unused)) static void v_block_bytes(const unsigned char *p, unsigned blocks,
						  struct v_block *b)
{
	uint64_t alnum = 0, digit = 0, gsep = 0;
	unsigned seen = 0;
	for (unsigned i = 0; i < 16 * blocks; i++) {
		unsigned k = v_kind[p[i]];
		alnum |= (uint64_t)((k & V_K_ALNUM) != 0) << i;
		digit |= (uint64_t)((k & V_K_DIGIT) != 0) << i;
		gsep |= (uint64_t)((k & V_K_GSEP) != 0) << i;
		seen |= k;
	}
	*b = (struct v_block){alnum, digit, gsep, (seen & V_K_AT) != 0};
}

#if defined(__SSE2__)
/* v_in_range: the bytes of c from lo to lo + span (an unsigned range). */
static inline __m128i v_in_range(__m128i c, char lo, char span)
{
	__m128i d = _mm_sub_epi8(c, _mm_set1_epi8(lo));
	return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span)), d);
}

/* v_block_sse2: v_block_bytes, 16 bytes an instruction. The classes are
 * v_kind's: digits '0'-'9'; letters A-Z and a-z (a byte or'ed with 0x20 is
 * a-z for those two ranges only); the group separators ' ', '-' '.' '/'
 * (0x2D-0x2F), ':' and '_'. */
static void v_block_sse2(const unsigned char *p, unsigned blocks, struct v_block *b)
{
	uint64_t alnum = 0, digit = 0, gsep = 0;
	__m128i at = _mm_setzero_si128();
	for (unsigned q = 0; q < blocks; q++) {
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * q));
		__m128i d = v_in_range(c, '0', 9);
		__m128i a =
		    _mm_or_si128(d, v_in_range(_mm_or_si128(c, _mm_set1_epi8(0x20)), 'a', 25));
		__m128i g = _mm_or_si128(
		    _mm_or_si128(v_in_range(c, '-', 2), _mm_cmpeq_epi8(c, _mm_set1_epi8(' '))),
		    _mm_or_si128(_mm_cmpeq_epi8(c, _mm_set1_epi8(':')),
				 _mm_cmpeq_epi8(c, _mm_set1_epi8('_'))));
		at = _mm_or_si128(at, _mm_cmpeq_epi8(c, _mm_set1_epi8('@')));
		alnum |= (uint64_t)(unsigned)_mm_movemask_epi8(a) << (16 * q);
		digit |= (uint64_t)(unsigned)_mm_movemask_epi8(d) << (16 * q);
		gsep |= (uint64_t)(unsigned)_mm_movemask_epi8(g) << (16 * q);
	}
	*b = (struct v_block){alnum, digit, gsep, _mm_movemask_epi8(at) != 0};
}
#define v_block_classes v_block_sse2
#else
#define v_block_classes v_block_bytes
#endif

/* v_scan_plain: true when none of v_personal_scan's words can end its word
 * loop, so that what it reports comes from the later checks alone; false
 * when one might (then v_personal_scan decides). *at_sign: s has an '@'
 * (v_find_email must look); *phone: a run of digit groups may reach 8
 * digits (v_find_phone must look; where v_personal_scan's count says no,
 * v_find_phone finds nothing either: its runs are the same digit groups
 * joined by one phone separator, only cut at years and UUIDs, and it
 * wants 8 digits at least). s has len bytes and its NUL.
 *
 * Each test counts bytes, never fewer than v_personal_scan counts: a word
 * of 16 characters (a fiscal code) or of 11 (a temporary one) is a run of
 * 11 letters and digits or more; a run of joined words that reaches 16
 * letters and digits has a separator at least, so it is a run of 17 bytes
 * or more of letters, digits and group separators that stand between two
 * of them (the UUIDs at which v_personal_scan also cuts runs are left in:
 * the runs here are only longer); a run of digit groups of 8 digits or
 * more is 8 digits in a row or 9 bytes or more of digits and group
 * separators (phone separators, and ':' and '_' too) that stand between
 * two digits.
 *
 * The runs are found with bits, no branch a byte, in windows of 64 bytes
 * 48 apart: the 16 last bytes of one window are the first of the next, so
 * every 17 bytes in a row lie whole in one window and no run is carried
 * from one to the next. Only the string is read (the bytes after its NUL
 * need not exist): 48 bytes at a time inside it, its last part copied into
 * a block of NULs. */
static bool v_scan_plain(const unsigned char *s, size_t len, bool *at_sign, bool *phone)
{
	uint64_t alnum = 0, digit = 0, gsep = 0; /* the window's; bit 0: byte base - 16 */
	uint64_t digits = 0;			 /* 8 digits or 9 grouped somewhere */
	bool at = false;
	for (size_t base = 0; base < len; base += 48) {
		unsigned char last[48];
		const unsigned char *p = s + base;
		size_t left = len - base;
		unsigned after = 0; /* the class of the byte after the window's */
		if (left < 48) {
			memset(last, 0, sizeof(last));
			memcpy(last, p, left);
			p = last;
		} else {
			after = v_kind[s[base + 48]]; /* at most the NUL */
		}
		/* the byte before the window's: bit 47 of the window before */
		uint64_t alnum_before = alnum >> 47 & 1, digit_before = digit >> 47 & 1;
		struct v_block b;
		v_block_classes(p, left < 48 ? (unsigned)(left + 15) / 16 : 3, &b);
		at |= b.at;
		alnum = alnum >> 48 | b.alnum << 16;
		digit = digit >> 48 | b.digit << 16;
		gsep = gsep >> 48 | b.gsep << 16;
		uint64_t a_next = alnum >> 1 | (uint64_t)((after & V_K_ALNUM) != 0) << 63;
		uint64_t d_next = digit >> 1 | (uint64_t)((after & V_K_DIGIT) != 0) << 63;
		uint64_t join = alnum | (gsep & (alnum << 1 | alnum_before) & a_next);
		uint64_t group = digit | (gsep & (digit << 1 | digit_before) & d_next);
		/* x8: bit i set when bits i to i + 7 of x are */
		uint64_t a2 = alnum & alnum >> 1, a4 = a2 & a2 >> 2, a8 = a4 & a4 >> 4;
		uint64_t d2 = digit & digit >> 1, d4 = d2 & d2 >> 2, d8 = d4 & d4 >> 4;
		uint64_t j2 = join & join >> 1, j4 = j2 & j2 >> 2, j8 = j4 & j4 >> 4;
		uint64_t g2 = group & group >> 1, g4 = g2 & g2 >> 2, g8 = g4 & g4 >> 4;
		uint64_t j16 = j8 & j8 >> 8;
		if ((a8 & a8 >> 3) | (j16 & j16 >> 1))
			return false; /* 11 letters and digits, or 17 joined */
		digits |= d8 | (g8 & g8 >> 1);
	}
	*at_sign = at;
	*phone = digits != 0;
	return true;
}

/* Below this length v_personal_scan's loop costs less than v_scan_plain's
 * work (a 10-byte id: ~290 instructions through the loop, ~330 through
 * v_scan_plain; an 18-byte citation ~550 and ~320). */
#define V_PLAIN_MIN 16

/* v_personal_first: v_personal_scan without the groups (the same answer,
 * V_PD_RETRY included), through v_scan_plain's first pass where it tells
 * that the word loop finds nothing: a law's citation ("L. 328/2000 art. 22
 * c. 2; ") costs a few instructions a byte there, ~23 through the loop. */
static enum v_pd v_personal_first(const char *str, size_t len, size_t *at, size_t *digits)
{
	const unsigned char *s = (const unsigned char *)str;
	bool at_sign = false, phone = false;
	if (len < V_PLAIN_MIN || !v_scan_plain(s, len, &at_sign, &phone))
		return v_personal_scan(str, at, digits, false);
	if (at_sign && v_find_email(s, at))
		return V_PD_EMAIL;
	if (phone && v_find_phone(s, at, digits))
		return V_PD_PHONE;
	return v_space_first(s, at);
}

/* v_personal_kind: v_personal_scan, the fast ways first (see there and
 * v_personal_first). */
static enum v_pd v_personal_kind(const char *str, size_t *at, size_t *digits)
{
	enum v_pd pd = v_personal_first(str, strlen(str), at, digits);
	return pd == V_PD_RETRY ? v_personal_scan(str, at, digits, true) : pd;
}

bool rete_personal_in_text(const char *s, char *why, size_t n)
{
	size_t at = 0, digits = 0;

	switch (v_personal_kind(v_str(s), &at, &digits)) {
	case V_PD_FISCAL:
		snprintf(why, n, "an Italian fiscal code (16 characters from position %zu)",
			 at + 1);
		return true;
	case V_PD_FISCAL_GROUPS:
		snprintf(why, n,
			 "an Italian fiscal code written in groups (16 letters and digits from "
			 "position %zu)",
			 at + 1);
		return true;
	case V_PD_TEMPORARY:
		snprintf(why, n,
			 "a temporary fiscal code (11 digits from position %zu, the last their "
			 "check digit)",
			 at + 1);
		return true;
	case V_PD_EMAIL:
		snprintf(why, n, "an e-mail address (an '@' at position %zu followed by a domain)",
			 at + 1);
		return true;
	case V_PD_PHONE:
		snprintf(why, n, "a phone number (%zu digits from position %zu)", digits, at + 1);
		return true;
	default: /* a sentence has spaces; a control character is escaped */
		return false;
	}
}

static void v_add_personal(v_ctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* v_add_personal adds a problem that calls for ERROR_CODE_PERSONAL_DATA. */
static void v_add_personal(v_ctx *v, const char *path, const char *fmt, ...)
{
	va_list ap;

	v->count++;
	va_start(ap, fmt);
	rete_problems_vadd(v->out, path, fmt, ap);
	va_end(ap);
	/* cap 0: the static out-of-memory item, which is never written */
	if (v->out != NULL && v->out->n > 0 && v->out->cap > 0)
		v->out->items[v->out->n - 1].error = RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA;
}

#define V_LOGGED "identifiers and codes are logged for ever and can never be erased"

/* v_personal: when identifier s (what: how the sentence names the field)
 * looks like personal data, adds the problem saying what was found and
 * where it belongs, with hint (a clause starting "; ") about the field,
 * and returns true. Only agency messages: the broker's own entries repeat
 * ids an agency chose, already checked when they were logged. */
static bool v_personal(v_ctx *v, const char *path, const char *what, const char *s,
		       const char *hint)
{
	size_t at = 0, digits = 0;

	if (v->mode == RETE_VALIDATE_BROKER)
		return false;
	switch (v_personal_kind(v_str(s), &at, &digits)) {
	case V_PD_FISCAL:
		v_add_personal(v, path,
			       "%s looks like an Italian fiscal code (16 characters from position "
			       "%zu); " V_LOGGED ", so they never identify a person: a fiscal code "
			       "goes only in the sealed part (private.person.fiscalCode)%s",
			       what, at + 1, hint);
		return true;
	case V_PD_FISCAL_GROUPS:
		v_add_personal(v, path,
			       "%s looks like an Italian fiscal code written in groups (16 letters "
			       "and digits from position %zu); " V_LOGGED
			       ", so they never identify a person: a fiscal code goes only in the "
			       "sealed part (private.person.fiscalCode)%s",
			       what, at + 1, hint);
		return true;
	case V_PD_TEMPORARY:
		v_add_personal(
		    v, path,
		    "%s looks like a temporary fiscal code (11 digits from position %zu, "
		    "the last their check digit); " V_LOGGED ", so they never identify "
		    "a person: a fiscal code goes only in the sealed part "
		    "(private.person.fiscalCode)%s",
		    what, at + 1, hint);
		return true;
	case V_PD_EMAIL:
		v_add_personal(v, path,
			       "%s looks like an e-mail address (an '@' at position %zu followed "
			       "by a domain); " V_LOGGED ": an e-mail address goes only in the "
			       "sealed part (private.person.contacts)%s",
			       what, at + 1, hint);
		return true;
	case V_PD_PHONE:
		v_add_personal(
		    v, path,
		    "%s looks like a phone number (%zu digits from position %zu); " V_LOGGED
		    ": a phone number goes only in the sealed part "
		    "(private.person.contacts)%s",
		    what, digits, at + 1, hint);
		return true;
	case V_PD_CONTROL:
		v_add_personal(v, path,
			       "%s has a control character at position %zu; " V_LOGGED
			       " and hold no free text: what a person writes goes only in the "
			       "sealed part (private.notes, private.statusText)%s",
			       what, at + 1, hint);
		return true;
	case V_PD_SPACE:
		v_add_personal(v, path,
			       "%s has a space at position %zu; " V_LOGGED
			       " and hold no spaces: a name or a sentence goes only in the sealed "
			       "part (private.notes, private.statusText)%s",
			       what, at + 1, hint);
		return true;
	case V_PD_RETRY: /* v_personal_kind never returns it */
	case V_PD_NONE:
		break;
	}
	return false;
}

/* v_free_text: a free-text field of the metadata must be empty. */
static void v_free_text(v_ctx *v, const char *path, const char *s, const char *sealed)
{
	if (v_str(s)[0] == '\0')
		return;
	v_add_personal(v, path,
		       "%s is free text and the log keeps it for ever (it can never be erased); "
		       "leave it empty and put the sentence in the sealed part (%s), which only "
		       "the recipient reads",
		       path, sealed);
}

/* ------------------------------------------------------------------------
 * Envelope
 */

static void v_envelope(v_ctx *v, const Rete__Message *msg, bool agency)
{
	bool complete = v->mode != RETE_VALIDATE_DRAFT;
	const char *sender = v_str(msg->sender), *recipient = v_str(msg->recipient);
	char show[64];

	v_text_id(v, "id", "message id", msg->id, complete,
		  "the message id is missing; a signed message carries the id its sender chose: "
		  "1 to 64 characters of " ID_CHARS);
	v_party(v, "sender", "sender", sender, complete);

	if (msg->body_case == RETE__MESSAGE__BODY_DIRECTORY ||
	    msg->body_case == RETE__MESSAGE__BODY_EPOCH) {
		if (recipient[0] != '\0')
			v_add(v, "recipient",
			      "recipient %s is set on a %s entry; it is for everyone: leave "
			      "recipient empty",
			      v_show(recipient, show), rete_message_kind(msg));
	} else {
		/* A notice may be for the coordinators only (overdue): no
		 * recipient. Everything else is addressed to one party. */
		v_party(v, "recipient", "recipient", recipient,
			msg->body_case != RETE__MESSAGE__BODY_NOTICE);
	}
	if (sender[0] != '\0' && strcmp(sender, recipient) == 0)
		v_add(v, "recipient",
		      "recipient %s is the sender itself; a message goes to another party",
		      v_show(recipient, show));

	const char *case_id = v_str(msg->case_id);
	v_text_id_note(v, "caseId", "caseId", case_id, agency,
		       "caseId is missing; give the pseudonymous case id the agencies share for "
		       "this family (1 to 64 characters of " ID_CHARS
		       "; never a name or a fiscal code)",
		       "; a case id is pseudonymous: use the case number your system gives the "
		       "family, never a name or a fiscal code");

	if (msg->created_at < 0)
		v_add(v, "createdAt",
		      "createdAt %" PRId64 " ms is before 1970; give the time the message was "
		      "created (after 1970-01-01T00:00:00Z)",
		      msg->created_at);
	else if (msg->created_at == 0 && complete)
		v_add(v, "createdAt",
		      "createdAt is missing; a signed message carries the time it was created");

	const char *origin = v_str(msg->origin);
	if (origin[0] == '\0') {
		if (complete)
			v_add(v, "origin",
			      "origin is missing; a signed message names the log (broker) it is "
			      "meant for");
	} else if (strlen(origin) > RETE_SHORT_MAX) {
		v_cap(v, "origin", origin, RETE_SHORT_MAX, false);
	} else {
		for (const char *p = origin; *p != '\0'; p++) {
			if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
				v_add(v, "origin",
				      "origin %s has a space or control character; an origin "
				      "is the log's name, e.g. rete.mantova",
				      v_show(origin, show));
				break;
			}
		}
	}

	if (msg->operator_ == NULL) {
		if (agency)
			v_add(v, "operator",
			      "operator is missing; give who at the agency acted: staffId and "
			      "role (for the access record; never a person's name)");
		return;
	}
	if (v_str(msg->operator_->staff_id)[0] == '\0')
		v_add(v, "operator.staffId",
		      "operator.staffId is missing; give the agency's own identifier of the "
		      "staff member who acted");
	else if (!v_personal(v, "operator.staffId", "operator.staffId", msg->operator_->staff_id,
			     "; staff are named by a pseudonymous code the agency maps itself "
			     "(e.g. as-0042), never by name"))
		v_cap(v, "operator.staffId", msg->operator_->staff_id, RETE_SHORT_MAX, false);
	if (v_str(msg->operator_->role)[0] == '\0')
		v_add(v, "operator.role",
		      "operator.role is missing; give the staff member's role, e.g. "
		      "social-worker or case-manager");
	else if (!v_personal(v, "operator.role", "operator.role", msg->operator_->role,
			     "; a role is a code such as social-worker or case-manager, never a "
			     "person's name or contact"))
		v_cap(v, "operator.role", msg->operator_->role, RETE_SHORT_MAX, false);
}

/* ------------------------------------------------------------------------
 * Agency bodies
 */

static void v_referral(v_ctx *v, const Rete__Referral *r)
{
	char show[64], bad[48];
	const char *service = v_str(r->service);
	size_t n = strlen(service);

	if (v_personal(v, "referral.service", "referral.service", service,
		       "; give a service code from the recipient's catalogue (e.g. "
		       "employment-orientation)"))
		; /* said */
	else if (n == 0)
		v_add(v, "referral.service",
		      "referral.service is missing; give a service code from the recipient's "
		      "catalogue (1 to %d characters of a-z, 0-9, '.' and '-', e.g. "
		      "employment-orientation)",
		      RETE_SERVICE_MAX);
	else if (n > RETE_SERVICE_MAX)
		v_add(v, "referral.service",
		      "service %s is %zu characters long; a service code is at most %d",
		      v_show(service, show), n, RETE_SERVICE_MAX);
	else if (!v_all(service, v_servicechar)) {
		v_bad_char(service, v_servicechar, bad, sizeof(bad));
		v_add(v, "referral.service",
		      "service %s is not a service code: it has %s; a service code is made of "
		      "a-z, 0-9, '.' and '-' (e.g. employment-orientation)",
		      v_show(service, show), bad);
	}

	v_enum(v, "referral.priority", r->priority, &rete__priority__descriptor,
	       "referral.priority", "routine, urgent or emergency");
	v_code(v, "referral.reasonCode", r->reason_code, true,
	       "referral.reasonCode is missing; give a coded reason for referring (e.g. "
	       "school-dropout-risk); free text belongs in the sealed part (private.reason)");

	const Rete__Consent *c = r->consent;
	if (c == NULL) {
		v_add(v, "referral.consent",
		      "referral.consent is missing; give basis consent or guardian-consent with "
		      "givenAt, or an override basis (legal-obligation, public-interest, "
		      "vital-interest) with legalBasis naming the law");
	} else {
		v_enum(v, "referral.consent.basis", c->basis, &rete__consent_basis__descriptor,
		       "referral.consent.basis",
		       "consent, guardian-consent, legal-obligation, public-interest or "
		       "vital-interest");
		bool given = c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT ||
			     c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_GUARDIAN_CONSENT;
		bool override = c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_LEGAL_OBLIGATION ||
				c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_PUBLIC_INTEREST ||
				c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_VITAL_INTEREST;
		if (c->given_at < 0)
			v_add(v, "referral.consent.givenAt",
			      "referral.consent.givenAt %" PRId64 " ms is before 1970; give when "
			      "the consent was given",
			      c->given_at);
		else if (given && c->given_at == 0)
			v_add(v, "referral.consent.givenAt",
			      "referral.consent.givenAt is missing; with basis %s give when the "
			      "consent was given",
			      c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT
				  ? "consent"
				  : "guardian-consent");
		if (override && v_str(c->legal_basis)[0] == '\0')
			v_add(v, "referral.consent.legalBasis",
			      "referral.consent.legalBasis is missing; a referral without consent "
			      "must name the law that allows it (e.g. 'L. 184/1983 art. 9')");
		/* words (spaces are fine), logged for ever: no fiscal code,
		 * e-mail address or phone number in them */
		size_t at = 0, digits = 0;
		enum v_pd pd = v_personal_kind(v_str(c->legal_basis), &at, &digits);
		if (pd == V_PD_NONE || pd == V_PD_SPACE ||
		    !v_personal(v, "referral.consent.legalBasis", "referral.consent.legalBasis",
				c->legal_basis,
				"; name the law only (e.g. 'L. 184/1983 art. 9'): who is concerned "
				"belongs in the sealed part"))
			v_cap(v, "referral.consent.legalBasis", c->legal_basis, RETE_TEXT_MAX,
			      false);
		if (!v_personal(v, "referral.consent.reference", "referral.consent.reference",
				c->reference,
				"; give your agency's reference of the signed form (e.g. "
				"CONS-2026-0412)"))
			v_cap(v, "referral.consent.reference", c->reference, RETE_SHORT_MAX, false);
	}

	v_enum(v, "referral.ageBand", r->age_band, &rete__age_band__descriptor, "referral.ageBand",
	       "0-3, 3-5, 6-13, 14-18 or adult");
	v_text_id(v, "referral.previousReferral", "referral.previousReferral", r->previous_referral,
		  false, "");
	v_sha(v, "referral.privateSha256", &r->private_sha256, false, "");
}

/* v_status_sendable: may an agency's update set status s? If not, *why
 * says why (for a value the schema knows). */
static bool v_status_sendable(Rete__Status s, const char **why)
{
	switch (s) {
	case RETE__STATUS__STATUS_ACCEPTED:
	case RETE__STATUS__STATUS_REJECTED:
	case RETE__STATUS__STATUS_IN_PROGRESS:
	case RETE__STATUS__STATUS_ON_HOLD:
	case RETE__STATUS__STATUS_COMPLETED:
	case RETE__STATUS__STATUS_FAILED:
	case RETE__STATUS__STATUS_CANCELLED:
		return true;
	case RETE__STATUS__STATUS_REQUESTED:
		*why = "a referral becomes requested when the broker logs it";
		return false;
	case RETE__STATUS__STATUS_RECEIVED:
		*why = "the broker sets received when the performer's agent acknowledges "
		       "delivery";
		return false;
	case RETE__STATUS__STATUS_DRAFT:
		*why = "a draft is never sent";
		return false;
	default:
		*why = "rete's lifecycle does not use it";
		return false;
	}
}

static void v_update(v_ctx *v, const Rete__ReferralUpdate *u)
{
	const char *why = NULL;
	char show[64];

	v_text_id(v, "update.referralId", "update.referralId", u->referral_id, true,
		  "update.referralId is missing; give the id of the referral this update is "
		  "about (the id of the message that carried it)");

	if (u->status == RETE__STATUS__STATUS_UNSPECIFIED)
		v_add(v, "update.status", "update.status is missing; give " AGENCY_STATUSES);
	else if (protobuf_c_enum_descriptor_get_value(&rete__status__descriptor, u->status) == NULL)
		v_add(v, "update.status",
		      "update.status %d is not a known status; give " AGENCY_STATUSES,
		      (int)u->status);
	else if (!v_status_sendable(u->status, &why))
		v_add(v, "update.status",
		      "update.status '%s' cannot be sent by an agency: %s; an update may "
		      "set " AGENCY_STATUSES,
		      rete_status_name(u->status), why);

	const Rete__StatusReason *sr = u->status_reason;
	if (rete_status_needs_reason(u->status)) {
		if (sr == NULL)
			v_add(v, "update.statusReason",
			      "update.statusReason is missing; a referral that is %s needs a "
			      "reason: give statusReason.code (e.g. lack-of-capacity); the "
			      "sentence behind it goes in the sealed part (private.statusText)",
			      rete_status_name(u->status));
		else
			v_code(v, "update.statusReason.code", sr->code, true,
			       "update.statusReason.code is missing; a referral that is "
			       "rejected, cancelled, on-hold or failed needs a coded reason (e.g. "
			       "lack-of-capacity)");
	} else if (sr != NULL) {
		v_code(v, "update.statusReason.code", sr->code, false, "");
	}
	if (sr != NULL)
		v_free_text(v, "update.statusReason.text", sr->text, "private.statusText");

	v_code(v, "update.businessStatus", u->business_status, false, "");

	const Rete__Outcome *o = u->outcome;
	if (u->status == RETE__STATUS__STATUS_COMPLETED) {
		if (o == NULL)
			v_add(v, "update.outcome",
			      "update.outcome is missing; a completed referral reports its "
			      "outcome: result successful or unsuccessful, and the reason when "
			      "unsuccessful");
	} else if (o != NULL) {
		v_add(v, "update.outcome",
		      "an outcome is reported only with status completed; this update sets "
		      "status %s",
		      v_show(rete_status_name(u->status), show));
	}
	if (o != NULL) {
		v_enum(v, "update.outcome.result", o->result, &rete__outcome_result__descriptor,
		       "update.outcome.result", "successful or unsuccessful");
		if (o->result == RETE__OUTCOME_RESULT__OUTCOME_RESULT_UNSUCCESSFUL)
			v_enum(v, "update.outcome.reason", o->reason,
			       &rete__outcome_reason__descriptor, "update.outcome.reason",
			       "why it did not succeed: client-refused, lack-of-capacity, "
			       "no-longer-needed, unable-to-contact-client, "
			       "unable-to-contact-organisation or other");
		else if (o->reason != RETE__OUTCOME_REASON__OUTCOME_REASON_UNSPECIFIED &&
			 o->result == RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL)
			v_add(v, "update.outcome.reason",
			      "update.outcome.reason is set on a successful outcome; a reason "
			      "belongs only to an unsuccessful one");
		v_free_text(v, "update.outcome.text", o->text, "private.outcomeText");
	}
	v_sha(v, "update.privateSha256", &u->private_sha256, false, "");
}

static void v_note(v_ctx *v, const Rete__CaseNote *n, const Rete__Private *priv)
{
	v_text_id(v, "note.referralId", "note.referralId", n->referral_id, false, "");
	v_code(v, "note.kind", n->kind, true,
	       "note.kind is missing; give the kind of note, e.g. service-agreement or "
	       "meeting-minutes");
	if (v->mode == RETE_VALIDATE_DRAFT && n->private_sha256.len == 0) {
		/* The agent seals the private part and fills the hash. */
		if (priv == NULL)
			v_add(v, "private",
			      "a case note carries its content in the sealed part; add a private "
			      "object with notes or attachments");
		return;
	}
	v_sha(v, "note.privateSha256", &n->private_sha256, true,
	      "note.privateSha256 is missing; a case note's content travels sealed and the "
	      "message carries its SHA-256 (32 bytes)");
}

/* ------------------------------------------------------------------------
 * Broker bodies
 */

/* v_ack: the recipient's signed acknowledgement a Delivery (error 0) or a
 * DELIVERY_REFUSED notice (error: the notice's) carries, protocol 3. Its
 * signature needs the recipient's key, which is the verifier's to find
 * (store/verify.c); here: present, a 64-byte signature, a body that
 * decodes strictly as an AckBody for the entry `index`, naming the log and
 * a recipient, with a leaf hash, and the error the entry states. */
static void v_ack(v_ctx *v, const char *path, const Rete__SignedAck *sa, uint64_t index,
		  Rete__ErrorCode error)
{
	if (sa == NULL) {
		v_add(v, path,
		      "%s is missing; the broker logs a delivery (or its refusal) only with the "
		      "recipient's signed acknowledgement (SignedAck)",
		      path);
		return;
	}
	if (sa->signature.len != RETE_SIG_LEN)
		v_add(v, path, "%s.signature is %zu bytes; an Ed25519 signature is %d bytes", path,
		      sa->signature.len, RETE_SIG_LEN);
	ProtobufCMessage *pm = NULL;
	rete_msg m;
	if (rete_pb_strict_unpack(&rete__ack_body__descriptor, sa->body.data, sa->body.len, &pm,
				  &m) != RETE_OK) {
		v_add(v, path, "%s.body is not an AckBody: %s", path, m.text);
		return;
	}
	const Rete__AckBody *b = (const Rete__AckBody *)pm;
	if (b->index != index)
		v_add(v, path,
		      "%s acknowledges entry %" PRIu64 ", but the entry is about entry %" PRIu64,
		      path, b->index, index);
	if (b->origin[0] == '\0' || b->recipient[0] == '\0')
		v_add(v, path,
		      "%s names no %s; a signed acknowledgement names the log and the "
		      "recipient",
		      path, b->origin[0] == '\0' ? "origin" : "recipient");
	if (b->leaf_hash.len != 32)
		v_add(v, path, "%s.leafHash is %zu bytes; it is the SHA-256 leaf hash (32 bytes)",
		      path, b->leaf_hash.len);
	if (b->error == 0 && b->error_text[0] != '\0')
		v_add(v, path,
		      "%s says the entry was received but carries a text (errorText); the "
		      "log would keep that free text for ever: a received acknowledgement "
		      "has none",
		      path);
	if (b->error != error)
		v_add(v, path,
		      error == 0
			  ? "%s says the recipient refused the entry (error %d): a refusal is "
			    "logged as a delivery-refused notice, not as a Delivery"
			  : "%s says error %d, but the notice says %d; they must be equal",
		      path, (int)b->error, (int)error);
	protobuf_c_message_free_unpacked(pm, NULL);
}

static void v_delivery(v_ctx *v, const Rete__Delivery *d)
{
	/* index 0 is a real log index: it cannot be told from "unset". */
	v_text_id(v, "delivery.messageId", "delivery.messageId", d->message_id, true,
		  "delivery.messageId is missing; give the id of the delivered message");
	v_text_id(v, "delivery.referralId", "delivery.referralId", d->referral_id, false, "");
	if (d->delivered_at <= 0)
		v_add(v, "delivery.deliveredAt",
		      "delivery.deliveredAt is missing or before 1970; give when the recipient "
		      "acknowledged the message");
	v_ack(v, "delivery.ack", d->ack, d->index, 0);
}

static void v_notice(v_ctx *v, const Rete__Notice *n)
{
	v_enum(v, "notice.kind", n->kind, &rete__notice_kind__descriptor, "notice.kind",
	       "overdue, not-delivered or delivery-refused");
	v_text_id(v, "notice.messageId", "notice.messageId", n->message_id, true,
		  "notice.messageId is missing; give the id of the message the notice is about");
	v_text_id(v, "notice.referralId", "notice.referralId", n->referral_id, false, "");
	if (n->error != 0 &&
	    protobuf_c_enum_descriptor_get_value(&rete__error_code__descriptor, n->error) == NULL)
		v_add(v, "notice.error", "notice.error %d is not a known error code",
		      (int)n->error);
	v_cap(v, "notice.text", n->text, RETE_TEXT_MAX, false);
	if (n->due_at < 0)
		v_add(v, "notice.dueAt", "notice.dueAt %" PRId64 " ms is before 1970", n->due_at);
	if (n->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED) {
		if (n->error == 0)
			v_add(v, "notice.error",
			      "notice.error is missing; a delivery-refused notice says the "
			      "recipient's error code");
		else
			v_ack(v, "notice.ack", n->ack, n->index, n->error);
	} else if (n->ack != NULL) {
		v_add(v, "notice.ack",
		      "notice.ack is set on a notice that is not delivery-refused; only the "
		      "recipient's refusal carries its signed acknowledgement");
	}
}

/* v_epoch: the first entry of a log epoch (a declared restore); the
 * checkpoint it records is checked against the broker key by the auditor
 * (store/verify.c), here only its shape. */
static void v_epoch(v_ctx *v, const Rete__Epoch *e)
{
	if (e->epoch < 2)
		v_add(v, "epoch.epoch",
		      "epoch.epoch is %" PRIu32 "; a new epoch after a restore is 2 or more",
		      e->epoch);
	if (e->previous_epoch < 1 || e->previous_epoch >= e->epoch)
		v_add(v, "epoch.previousEpoch",
		      "epoch.previousEpoch is %" PRIu32 "; it is the epoch of the checkpoint "
		      "recorded, from 1 to epoch.epoch - 1 (%" PRIu32 ")",
		      e->previous_epoch, e->epoch > 0 ? e->epoch - 1 : 0);
	if (e->checkpoint == NULL || e->checkpoint[0] == '\0')
		v_add(v, "epoch.checkpoint",
		      "epoch.checkpoint is missing; it holds the last checkpoint note signed "
		      "before the restore");
	else
		v_cap(v, "epoch.checkpoint", e->checkpoint, 65536, false);
}

static void v_directory(v_ctx *v, const Rete__Directory *d)
{
	char path[96], show[64], bad[48];

	for (size_t i = 0; i < d->n_parties; i++) {
		const Rete__Party *p = d->parties[i];
		const char *id = v_str(p->id);

		snprintf(path, sizeof(path), "directory.parties[%zu].id", i);
		v_party(v, path, "party id", id, true);
		for (size_t j = 0; j < i && id[0] != '\0'; j++) {
			if (strcmp(id, v_str(d->parties[j]->id)) == 0) {
				v_add(v, path,
				      "party %s is listed twice (also at parties[%zu]); each party "
				      "appears once",
				      v_show(id, show), j);
				break;
			}
		}
		snprintf(path, sizeof(path), "directory.parties[%zu].publicKey", i);
		if (p->public_key.len != 32)
			v_add(v, path,
			      "the public key of %s is %zu bytes long; an Ed25519 public key is "
			      "exactly 32 bytes (44 characters of base64)",
			      v_show(id, show), p->public_key.len);
		snprintf(path, sizeof(path), "directory.parties[%zu].kind", i);
		v_enum(v, path, p->kind, &rete__party_kind__descriptor, "the party kind",
		       "social-services, job-centre, health, family-centre, school, "
		       "cooperative, coordinator, auditor or broker");
		snprintf(path, sizeof(path), "directory.parties[%zu].name", i);
		v_cap(v, path, p->name, RETE_SHORT_MAX, false);

		for (size_t k = 0; k < p->n_services; k++) {
			const Rete__Service *s = p->services[k];
			const char *code = v_str(s->code);
			snprintf(path, sizeof(path), "directory.parties[%zu].services[%zu].code", i,
				 k);
			if (code[0] == '\0' || strlen(code) > RETE_SERVICE_MAX ||
			    !v_all(code, v_servicechar)) {
				v_bad_char(code, v_servicechar, bad, sizeof(bad));
				v_add(v, path,
				      "service code %s is not valid; a service code is 1 to %d "
				      "characters of a-z, 0-9, '.' and '-'",
				      v_show(code, show), RETE_SERVICE_MAX);
			} else {
				for (size_t j = 0; j < k; j++) {
					if (strcmp(code, v_str(p->services[j]->code)) == 0) {
						v_add(v, path,
						      "service %s is listed twice for this party",
						      v_show(code, show));
						break;
					}
				}
			}
			snprintf(path, sizeof(path), "directory.parties[%zu].services[%zu].name", i,
				 k);
			v_cap(v, path, s->name, RETE_SHORT_MAX, false);
		}
	}
	for (size_t i = 0; i < d->n_routes; i++) {
		snprintf(path, sizeof(path), "directory.routes[%zu].from", i);
		v_enum(v, path, d->routes[i]->from, &rete__party_kind__descriptor,
		       "the route's from kind", "a party kind");
		snprintf(path, sizeof(path), "directory.routes[%zu].to", i);
		v_enum(v, path, d->routes[i]->to, &rete__party_kind__descriptor,
		       "the route's to kind", "a party kind");
	}
	for (size_t i = 0; i < d->n_limits; i++) {
		const Rete__PriorityLimit *l = d->limits[i];
		rete_duration dur;
		snprintf(path, sizeof(path), "directory.limits[%zu].priority", i);
		v_enum(v, path, l->priority, &rete__priority__descriptor, "the limit's priority",
		       "routine, urgent or emergency");
		snprintf(path, sizeof(path), "directory.limits[%zu].limit", i);
		if (rete_duration_parse(v_str(l->limit), &dur, NULL) != RETE_OK)
			v_add(v, path,
			      "limit %s is not a duration; give e.g. 30s, 15m, 2h, 5d or 3wd",
			      v_show(l->limit, show));
		snprintf(path, sizeof(path), "directory.limits[%zu].limitMs", i);
		if (l->limit_ms <= 0)
			v_add(v, path,
			      "limitMs %" PRId64 " is not a positive number of milliseconds",
			      l->limit_ms);
	}
	for (size_t i = 0; i < d->n_holidays; i++) {
		snprintf(path, sizeof(path), "directory.holidays[%zu]", i);
		if (!rete_date_valid(v_str(d->holidays[i])))
			v_add(v, path, "holiday %s is not a date; give YYYY-MM-DD, e.g. 2026-12-08",
			      v_show(d->holidays[i], show));
	}
	v_cap(v, "directory.timeZone", d->time_zone, 64, false);
	if (d->expiry_ms < 0)
		v_add(
		    v, "directory.expiryMs",
		    "directory.expiryMs %" PRId64 " is negative; give "
		    "the expiry of undelivered messages in milliseconds (0: the broker's default)",
		    d->expiry_ms);
}

/* ------------------------------------------------------------------------
 * The sealed part. Values are never quoted: they are personal data.
 */

static bool v_mediachar(unsigned char c)
{
	/* RFC 6838 restricted-name characters */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$&^_.+-", c) != NULL);
}

static bool v_media_type(const char *s)
{
	const char *slash = strchr(s, '/');
	if (slash == NULL || slash == s || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (p != slash && !v_mediachar((unsigned char)*p))
			return false;
	return true;
}

static void v_private(v_ctx *v, const Rete__Private *p, Rete__Message__BodyCase body)
{
	char path[96];

	const Rete__Person *person = p->person;
	if (person == NULL) {
		if (body == RETE__MESSAGE__BODY_REFERRAL)
			v_add(v, "private.person",
			      "private.person is missing; a referral's sealed part says who it is "
			      "about: give at least person.name");
	} else {
		const char *name = v_str(person->name);
		if (name[0] == '\0')
			v_add(v, "private.person.name",
			      "private.person.name is missing; give the person's name");
		v_cap(v, "private.person.name", name, RETE_SHORT_MAX, true);

		const char *fc = v_str(person->fiscal_code);
		char why[320];
		if (fc[0] != '\0' && !rete_fiscal_code_check(fc, why, sizeof(why)))
			v_add(v, "private.person.fiscalCode",
			      "private.person.fiscalCode is not a fiscal code: %s", why);
		v_cap(v, "private.person.personId", person->person_id, RETE_SHORT_MAX, true);
		const char *bd = v_str(person->birth_date);
		if (bd[0] != '\0' && (!rete_date_valid(bd) || strncmp(bd, "1900", 4) < 0))
			v_add(v, "private.person.birthDate",
			      "private.person.birthDate is not a real date of the form YYYY-MM-DD "
			      "from 1900 on (e.g. 2015-03-31)");
		for (size_t i = 0; i < person->n_contacts; i++) {
			const Rete__Contact *c = person->contacts[i];
			snprintf(path, sizeof(path), "private.person.contacts[%zu].kind", i);
			if (v_str(c->kind)[0] == '\0')
				v_add(v, path,
				      "the contact's kind is missing; give e.g. phone, email "
				      "or address");
			v_cap(v, path, c->kind, RETE_SHORT_MAX, false);
			snprintf(path, sizeof(path), "private.person.contacts[%zu].value", i);
			if (v_str(c->value)[0] == '\0')
				v_add(v, path, "the contact's value is missing");
			v_cap(v, path, c->value, RETE_SHORT_MAX, true);
		}
	}
	v_cap(v, "private.reason", p->reason, RETE_TEXT_MAX, true);
	v_cap(v, "private.statusText", p->status_text, RETE_TEXT_MAX, true);
	v_cap(v, "private.outcomeText", p->outcome_text, RETE_TEXT_MAX, true);
	v_cap(v, "private.title", p->title, RETE_SHORT_MAX, true);
	v_cap(v, "private.notes", p->notes, RETE_NOTES_MAX, true);

	if (body == RETE__MESSAGE__BODY_NOTE && v_str(p->notes)[0] == '\0' && p->n_attachments == 0)
		v_add(v, "private",
		      "a case note's sealed part is empty; give notes or attachments");

	for (size_t i = 0; i < p->n_attachments; i++) {
		const Rete__Attachment *a = p->attachments[i];
		const char *name = v_str(a->name);

		snprintf(path, sizeof(path), "private.attachments[%zu].name", i);
		if (name[0] == '\0') {
			v_add(v, path, "the attachment's file name is missing; give e.g. plan.pdf");
		} else if (strlen(name) > RETE_SHORT_MAX) {
			v_cap(v, path, name, RETE_SHORT_MAX, true);
		} else {
			bool ok = strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
			for (const char *q = name; ok && *q != '\0'; q++)
				ok = *q != '/' && *q != '\\' && (unsigned char)*q >= 0x20 &&
				     *q != 0x7f;
			if (!ok)
				v_add(v, path,
				      "the attachment's file name has a '/', a '\\' or a control "
				      "character, or is '.' or '..'; give a plain file name such "
				      "as plan.pdf");
		}

		snprintf(path, sizeof(path), "private.attachments[%zu].mediaType", i);
		const char *mt = v_str(a->media_type);
		char show[64];
		if (mt[0] == '\0')
			v_add(v, path,
			      "the attachment's mediaType is missing; give type/subtype, e.g. "
			      "application/pdf");
		else if (strlen(mt) > RETE_SHORT_MAX || !v_media_type(mt))
			v_add(v, path,
			      "mediaType %s is not of the form type/subtype (e.g. application/pdf, "
			      "image/jpeg)",
			      v_show(mt, show));

		snprintf(path, sizeof(path), "private.attachments[%zu].content", i);
		if (a->content.len == 0)
			v_add(v, path,
			      "the attachment's content is empty; attach the file's bytes");

		snprintf(path, sizeof(path), "private.attachments[%zu].sha256", i);
		if (a->sha256.len != 0) {
			uint8_t h[crypto_hash_sha256_BYTES];
			if (a->sha256.len != sizeof(h)) {
				v_add(v, path,
				      "the hash is %zu bytes long; a SHA-256 is exactly 32 bytes, "
				      "or leave it out",
				      a->sha256.len);
			} else {
				crypto_hash_sha256(h, a->content.data, a->content.len);
				if (memcmp(h, a->sha256.data, sizeof(h)) != 0)
					v_add(v, path,
					      "sha256 does not match the SHA-256 of the content; "
					      "the file changed or the hash is of another file "
					      "(or leave sha256 out)");
			}
		}
	}
}

/* ------------------------------------------------------------------------
 * Entry point
 */

size_t rete_validate_lead(const rete_problems *p)
{
	if (p == NULL)
		return 0;
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].error != 0)
			return i;
	return 0;
}

bool rete_body_is_agency(const Rete__Message *msg)
{
	if (msg == NULL)
		return false;
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		return msg->referral != NULL;
	case RETE__MESSAGE__BODY_UPDATE:
		return msg->update != NULL;
	case RETE__MESSAGE__BODY_NOTE:
		return msg->note != NULL;
	default:
		return false;
	}
}

bool rete_body_is_broker(const Rete__Message *msg)
{
	if (msg == NULL)
		return false;
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_DELIVERY:
		return msg->delivery != NULL;
	case RETE__MESSAGE__BODY_NOTICE:
		return msg->notice != NULL;
	case RETE__MESSAGE__BODY_DIRECTORY:
		return msg->directory != NULL;
	case RETE__MESSAGE__BODY_EPOCH:
		return msg->epoch != NULL;
	default:
		return false;
	}
}

rete_err rete_validate_message(const Rete__Message *msg, const Rete__Private *priv,
			       rete_validate_mode mode, rete_problems *out)
{
	v_ctx v = {.out = out, .count = 0, .mode = mode};
	const char *body = NULL;
	bool broker_body;

	if (mode != RETE_VALIDATE_DRAFT && mode != RETE_VALIDATE_SIGNED &&
	    mode != RETE_VALIDATE_BROKER) {
		v_add(&v, "", "internal: unknown validation mode %d", (int)mode);
		return RETE_EINVAL;
	}
	if (msg == NULL) {
		v_add(&v, "", "there is no message to validate");
		return RETE_EINVAL;
	}

	/* A oneof member pointer may be NULL only in a message built by hand;
	 * treat it as no body. */
	body = rete_message_kind(msg);
	if (strcmp(body, "none") == 0 || msg->referral == NULL) /* the union's members alias */
		body = NULL;
	if (body == NULL) {
		v_add(&v, "",
		      mode == RETE_VALIDATE_BROKER
			  ? "the message has no body; the broker originates delivery, notice, "
			    "directory or epoch"
			  : "the message has no body; give exactly one of referral, update or "
			    "note");
		v_envelope(&v, msg, mode != RETE_VALIDATE_BROKER);
		return RETE_EINVAL;
	}
	broker_body = !rete_body_is_agency(msg);
	if (mode == RETE_VALIDATE_BROKER && !broker_body) {
		v_add(&v, body,
		      "a %s is sent by an agency, never originated by the broker; the broker "
		      "originates delivery, notice, directory and epoch",
		      body);
		return RETE_EINVAL;
	}
	if (mode != RETE_VALIDATE_BROKER && broker_body) {
		v_add(&v, body,
		      "a %s is written only by the broker; an agency may send referral, update "
		      "or note",
		      body);
		return RETE_EINVAL;
	}

	v_envelope(&v, msg, !broker_body);
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		v_referral(&v, msg->referral);
		break;
	case RETE__MESSAGE__BODY_UPDATE:
		v_update(&v, msg->update);
		break;
	case RETE__MESSAGE__BODY_NOTE:
		v_note(&v, msg->note, priv);
		break;
	case RETE__MESSAGE__BODY_DELIVERY:
		v_delivery(&v, msg->delivery);
		break;
	case RETE__MESSAGE__BODY_NOTICE:
		v_notice(&v, msg->notice);
		break;
	case RETE__MESSAGE__BODY_DIRECTORY:
		v_directory(&v, msg->directory);
		break;
	case RETE__MESSAGE__BODY_EPOCH:
		v_epoch(&v, msg->epoch);
		break;
	default:
		break;
	}

	if (priv != NULL) {
		if (broker_body)
			v_add(&v, "private", "a %s carries no sealed part; leave private out",
			      body);
		else
			v_private(&v, priv, msg->body_case);
	}
	return v.count == 0 ? RETE_OK : RETE_EINVAL;
}
