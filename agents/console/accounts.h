/* accounts.h — the console's accounts, sessions and login throttle, and the
 * small parsers of what a browser sends (a form body, a cookie header).
 *
 * Accounts: a file of lines "USER:HASH", HASH being libsodium's
 * crypto_pwhash_str (Argon2id, interactive limits); USER is 1 to 64 of
 * a-z 0-9 . _ -. Written by `rete console passwd USER` (mode 0600, replaced
 * atomically under the lock PATH.lock); lines starting with '#' and blank lines are ignored.
 *
 * Sessions: a random 256-bit token (hex) per login, in the cookie
 * rete_session (HttpOnly; Secure; SameSite=Strict; Path=/), ended after
 * CONSOLE_SESSION_IDLE_MS without a person's request or CONSOLE_SESSION_MAX_MS in
 * all. Throttle: after CONSOLE_LOGIN_FREE failed logins for one user name
 * from one address, or CONSOLE_LOGIN_FREE_ADDRESS from one address (any
 * names), each next attempt there waits twice as long as the last (from
 * 2 s up to CONSOLE_THROTTLE_MAX_MS); after CONSOLE_LOGIN_FREE_USER for one
 * user name from any addresses, that user waits the same way from every
 * address it did not sign in from before (CONSOLE_GOOD_PER_USER of them,
 * the most recent, kept): nobody keeps a user out by guessing from
 * elsewhere, and a guesser with many addresses gets a few guesses an
 * hour. Over the whole console, after CONSOLE_LOGIN_FREE_CONSOLE failures
 * from addresses not known for their user, one more is let through every
 * CONSOLE_LOGIN_CONSOLE_MS from such an address, of a sign-in whose name
 * or address failed in the last CONSOLE_THROTTLE_FORGET_MS (a spray of
 * names from many addresses meets this brake; the addresses a user signed
 * in from do not, nor a person at a new PC whose name and address did not
 * fail lately). User-wide counts are kept only for names that are
 * accounts, in a table of their own. A success
 * clears the count of its user from its address. A count not touched for
 * CONSOLE_THROTTLE_FORGET_MS starts again from 0.
 */
#ifndef RETE_CONSOLE_ACCOUNTS_H
#define RETE_CONSOLE_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define CONSOLE_USER_MAX	   64
#define CONSOLE_SESSIONS_MAX	   256
#define CONSOLE_SESSIONS_PER_USER  16
#define CONSOLE_SESSION_IDLE_MS	   (30LL * 60 * 1000)
#define CONSOLE_SESSION_MAX_MS	   (12LL * 3600 * 1000)
#define CONSOLE_LOGIN_FREE	   3
#define CONSOLE_LOGIN_FREE_ADDRESS 10
#define CONSOLE_LOGIN_FREE_USER	   10
#define CONSOLE_LOGIN_FREE_CONSOLE 30
#define CONSOLE_LOGIN_CONSOLE_MS   60000
#define CONSOLE_THROTTLE_MAX_MS	   (15LL * 60 * 1000)
#define CONSOLE_THROTTLE_FORGET_MS (24LL * 3600 * 1000)
#define CONSOLE_THROTTLE_MAX	   512
#define CONSOLE_GOOD_PER_USER	   8
#define CONSOLE_TOKEN_HEX	   64
/* The longest password, in bytes: the sign-in form takes no more, so
 * `rete console passwd` refuses a longer one (it could never be typed). */
#define CONSOLE_PASSWORD_MAX 511

/* console_user_valid: s is a user name as above. */
bool console_user_valid(const char *s);

/* console_accounts_count: how many accounts the file at path holds (0 for a
 * missing file). RETE_EIO (unreadable), RETE_EINVAL (a bad line: m names
 * the file and the line; a file whose mode lets others in: 077 bits). */
rete_err console_accounts_count(const char *path, size_t *n, rete_msg *m);

/* console_account_exists: *found says whether the file at path has an
 * account named user (a missing file has none). RETE_EIO, RETE_EINVAL as
 * above. */
rete_err console_account_exists(const char *path, const char *user, bool *found, rete_msg *m);

/* A digest of an account's line (its password's hash): a session keeps
 * the one of the line its password was checked against. */
#define CONSOLE_STAMP_LEN 16

/* console_accounts_check: RETE_OK when user's password is right, and then
 * *stamp (may be NULL) the digest of the very line it was checked against,
 * for console_session_new; RETE_EREFUSED otherwise (an unknown user costs
 * the same time as a known one). RETE_EIO/RETE_EINVAL as above. */
rete_err console_accounts_check(const char *path, const char *user, const char *password,
				uint8_t stamp[CONSOLE_STAMP_LEN], rete_msg *m);

/* console_accounts_known: the file at path holds an account for user
 * (false when not, or when the file cannot be read). For the access
 * record of a refused sign-in, which names only a user that exists. */
bool console_accounts_known(const char *path, const char *user);

/* console_accounts_set sets (adds or replaces) user's password in the file
 * at path: under an exclusive flock on PATH.lock (every writer, for the
 * whole read-modify-write), a temporary file of its own beside it (0600,
 * or the old file's owner bits and, for root, its owner) is written,
 * synced, renamed over the file, and the folder synced; RETE_OK only then.
 * RETE_EINVAL (a bad user name, an empty password), RETE_ETIMEDOUT (another
 * held the lock for 5 s; nothing written), RETE_EIO, RETE_ENOMEM. */
rete_err console_accounts_set(const char *path, const char *user, const char *password,
			      rete_msg *m);

/* Sessions and throttle: one table each, for a process; thread-safe. */

/* console_sessions_accounts ties the sessions to the accounts file at path
 * (NULL: to none): a session then lives only while its user's line in the
 * file is the one it signed in with. An account deleted, or given a new
 * password, loses its sessions at its next request, not at their end up
 * to CONSOLE_SESSION_MAX_MS later. The file is read again at each look. */
void console_sessions_accounts(const char *path);

/* console_session_new makes a session for user at now_ms and writes its
 * token (CONSOLE_TOKEN_HEX hex digits and a NUL) into token. stamp is
 * console_accounts_check's of the sign-in: the session lives while the
 * user's line is that one (a password changed between the check and this
 * call ends it at its first look). NULL: the line as the file holds it
 * now. A user holds at most CONSOLE_SESSIONS_PER_USER sessions: a new one
 * ends that user's least recently used. When the table holds
 * CONSOLE_SESSIONS_MAX live sessions, the least recently used session of
 * the user holding the most ends, if that user holds more than one: false
 * (token emptied) only when each live session is of another user. */
bool console_session_new(const char *user, int64_t now_ms, const uint8_t stamp[CONSOLE_STAMP_LEN],
			 char token[CONSOLE_TOKEN_HEX + 1]);

/* console_session_user: the user of the live session with token (copied
 * into user, CONSOLE_USER_MAX + 1 bytes), its idle time restarted; false
 * when there is none (unknown, expired, its account deleted or its password
 * changed since: that session is ended). */
bool console_session_user(const char *token, int64_t now_ms, char user[CONSOLE_USER_MAX + 1]);

/* console_session_auto: console_session_user for a read a page makes by
 * itself (its refresh at each update of its live stream, not a person's
 * action): the idle time is not restarted, so an open page left alone
 * still ends its session after CONSOLE_SESSION_IDLE_MS. route is the
 * route read, one bit (CONSOLE_AUTO_OVERVIEW, CONSOLE_AUTO_HEALTH); *first
 * says whether it is that route's first such read since the session's
 * last use (the console records that one, not every refresh: each route's
 * first, since each shows other data). */
#define CONSOLE_AUTO_OVERVIEW 1u
#define CONSOLE_AUTO_HEALTH   2u
bool console_session_auto(const char *token, int64_t now_ms, char user[CONSOLE_USER_MAX + 1],
			  unsigned route, bool *first);

/* console_session_auto_unnote: the route's first read by the page was not
 * recorded (its line could not be written, the read refused): the next
 * one is that route's first again, and must be recorded. */
void console_session_auto_unnote(const char *token, int64_t now_ms, unsigned route);

/* console_session_peek: the user of the live session with token, without
 * counting this as a use (the live stream opening, again by itself after
 * a network error). */
bool console_session_peek(const char *token, int64_t now_ms, char user[CONSOLE_USER_MAX + 1]);

/* console_session_live: the session of token is live, without counting
 * this as its use (the events stream asks, and must not keep an idle
 * session alive). */
bool console_session_live(const char *token, int64_t now_ms);

/* console_session_end ends the session with token, if any. */
void console_session_end(const char *token);

/* console_throttle_wait: how many ms a login for user from peer must still
 * wait (0: it may try now). */
int64_t console_throttle_wait(const char *user, const char *peer, int64_t now_ms);

/* console_throttle_wait_why: console_throttle_wait, and *brake (may be
 * NULL) says whether the wait is the console-wide one (too many failures
 * from addresses not known for their user, or a full table), not this
 * user's or this address's own. */
int64_t console_throttle_wait_why(const char *user, const char *peer, int64_t now_ms, bool *brake);

/* What a failed login started, for the log: */
#define CONSOLE_THROTTLE_USER_PAUSED 1u /* the user-wide pause of its user */
#define CONSOLE_THROTTLE_BRAKE_ON    2u /* the console-wide brake */

/* console_throttle_note records a login's outcome for user from peer, and
 * says (the bits above) what a failure started. A strike that throttles
 * someone now is never dropped for a new one, and of the others the one
 * with the fewest failures goes first: when the table
 * (CONSOLE_THROTTLE_MAX) is full of live ones, every login from an address
 * not known for its user waits until the soonest ends. */
unsigned console_throttle_note(const char *user, const char *peer, bool ok, int64_t now_ms);

/* console_throttle_note_as: console_throttle_note, told whether user is an
 * account: only an account's failures make a user-wide count (kept apart,
 * never given up for a stranger's strikes); console_throttle_note takes it
 * as one. */
unsigned console_throttle_note_as(const char *user, const char *peer, bool ok, bool account,
				  int64_t now_ms);

/* console_throttle_held_line: should a held sign-in from peer write its
 * line in the access record now? At most one every CONSOLE_HELD_LINE_MS an
 * address; *more says how many were held there since its last line. */
#define CONSOLE_HELD_LINE_MS 60000
bool console_throttle_held_line(const char *peer, int64_t now_ms, unsigned *more);

/* console_form_field finds field name in an application/x-www-form-
 * urlencoded body (len bytes) and writes its decoded value into out (n
 * bytes). false when absent, badly encoded (a '%' not followed by two hex
 * digits, a decoded NUL) or longer than n - 1. */
bool console_form_field(const char *body, size_t len, const char *name, char *out, size_t n);

/* console_cookie finds cookie name in a Cookie header and writes its value
 * into out (n bytes); false when absent or longer than n - 1. */
bool console_cookie(const char *header, const char *name, char *out, size_t n);

#endif
