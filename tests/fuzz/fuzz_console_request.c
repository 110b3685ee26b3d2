/* fuzz_console_request.c — libFuzzer target: what the web console parses
 * itself from a browser's request (agents/console/accounts.c): a login form
 * body (application/x-www-form-urlencoded), a Cookie header, a user name.
 * (Query arguments and headers are split by libmicrohttpd; the console
 * then checks their values with the same functions or rete_date_valid /
 * report_parse_by, fuzzed elsewhere or total by construction.)
 *
 * The input is split at its first NUL: before it, a form body (any bytes,
 * with its length); after it, a Cookie header (made a C string).
 * Properties: a found field's value is a C string shorter than the buffer,
 * with no NUL inside what it decoded; a field found with a small buffer is
 * found with a large one with the same value; a decoded value re-encoded
 * (every byte as %XX) and parsed again gives the same value; a cookie's
 * value holds no ';'; a valid user name is 1 to 64 of [a-z0-9._-].
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "fuzz_common.h"

static void check_field(const char *body, size_t len, const char *name)
{
	char small[16], big[8192];
	bool s = console_form_field(body, len, name, small, sizeof(small));
	bool b = console_form_field(body, len, name, big, sizeof(big));
	if (s && (!b || strcmp(small, big) != 0))
		fuzz_fail("field %s found in 16 bytes, not the same in 8192\n", name);
	if (!b)
		return;
	size_t n = strlen(big);
	if (n >= sizeof(big))
		fuzz_fail("field %s: value not within its buffer\n", name);
	/* round trip: name=%XX%XX... */
	size_t nl = strlen(name);
	char *enc = malloc(nl + 1 + 3 * n + 1), back[8192];
	if (enc == NULL)
		return;
	memcpy(enc, name, nl);
	enc[nl] = '=';
	for (size_t i = 0; i < n; i++)
		snprintf(enc + nl + 1 + 3 * i, 4, "%%%02X", (unsigned char)big[i]);
	if (!console_form_field(enc, nl + 1 + 3 * n, name, back, sizeof(back)) ||
	    strcmp(back, big) != 0)
		fuzz_fail("field %s: re-encoded value does not parse back\n", name);
	free(enc);
	if (console_user_valid(big)) {
		if (n == 0 || n > CONSOLE_USER_MAX)
			fuzz_fail("a user name of %zu bytes is valid\n", n);
		for (size_t i = 0; i < n; i++)
			if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", big[i]))
				fuzz_fail("a user name with byte 0x%02x is valid\n",
					  (unsigned char)big[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	const uint8_t *nul = memchr(data, 0, size);
	size_t blen = nul ? (size_t)(nul - data) : size;

	check_field(body, blen, "user");
	check_field(body, blen, "password");
	check_field(body, blen, "u");

	if (nul != NULL) {
		size_t clen = size - blen - 1;
		char *hdr = malloc(clen + 1), val[CONSOLE_TOKEN_HEX + 2];
		if (hdr == NULL)
			return 0;
		memcpy(hdr, nul + 1, clen);
		hdr[clen] = '\0';
		if (console_cookie(hdr, "rete_session", val, sizeof(val))) {
			if (strlen(val) >= sizeof(val) || strchr(val, ';') != NULL)
				fuzz_fail("cookie value '%s' not within its buffer or holds ';'\n",
					  val);
			char user[CONSOLE_USER_MAX + 1];
			if (console_session_user(val, 0, user))
				fuzz_fail("a session found with no session made\n");
		}
		free(hdr);
	}
	return 0;
}
