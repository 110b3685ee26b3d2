/* accounts.c — see accounts.h. */
#define _GNU_SOURCE
#include "accounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conffile.h"

#define LINE_MAX_ (CONSOLE_USER_MAX + crypto_pwhash_STRBYTES + 8)

bool console_user_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CONSOLE_USER_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' ||
		      *s == '_' || *s == '-'))
			return false;
	return true;
}

/* each_line calls fn for every account line of path; fn returns nonzero to
 * stop. A missing file has no line. */
static rete_err each_line(const char *path, int (*fn)(void *, const char *, const char *),
			  void *arg, rete_msg *m)
{
	FILE *f = fopen(path, "r");
	char line[LINE_MAX_ + 2];
	unsigned no = 0;

	if (f == NULL)
		return errno == ENOENT
			   ? RETE_OK
			   : rete_msg_set(m, RETE_EIO, "%s: cannot read the accounts: %s", path,
					  strerror(errno));
	/* a UTF-8 byte order mark skipped, UTF-16 refused: as every
	 * configuration file (the file may be edited by hand) */
	rete_err err = rete_conffile_start(f, m);
	if (err != RETE_OK) {
		fclose(f);
		rete_msg_prefix(m, "%s", path);
		return err;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		no++;
		size_t n = strlen(line);
		if (n > 0 && line[n - 1] != '\n' && !feof(f)) {
			fclose(f);
			return rete_msg_set(m, RETE_EINVAL,
					    "%s: line %u is too long for an account", path, no);
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (colon == NULL || strncmp(colon + 1, "$argon2", 7) != 0) {
			fclose(f);
			return rete_msg_set(m, RETE_EINVAL,
					    "%s: line %u is not USER:HASH (write accounts with "
					    "`rete console passwd USER`)",
					    path, no);
		}
		*colon = '\0';
		if (!console_user_valid(line)) {
			fclose(f);
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "%s: line %u: '%.64s' is not a user name (a-z, 0-9, '.', "
			    "'_', '-')",
			    path, no, line);
		}
		if (fn(arg, line, colon + 1) != 0)
			break;
	}
	fclose(f);
	return RETE_OK;
}

static int count_one(void *arg, const char *user, const char *hash)
{
	(void)user;
	(void)hash;
	(*(size_t *)arg)++;
	return 0;
}

rete_err console_accounts_count(const char *path, size_t *n, rete_msg *m)
{
	struct stat st;
	*n = 0;
	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: the accounts file is readable by others; chmod 600 %s "
				    "(its hashes could be guessed offline)",
				    path, path);
	return each_line(path, count_one, n, m);
}

struct find {
	const char *user;
	char hash[crypto_pwhash_STRBYTES];
	bool found;
};

static int find_one(void *arg, const char *user, const char *hash)
{
	struct find *f = arg;
	if (strcmp(user, f->user) != 0)
		return 0;
	snprintf(f->hash, sizeof(f->hash), "%s", hash);
	f->found = true;
	return 1;
}

rete_err console_account_exists(const char *path, const char *user, bool *found, rete_msg *m)
{
	struct find f = {.user = user};
	rete_err err = each_line(path, find_one, &f, m);
	sodium_memzero(f.hash, sizeof(f.hash));
	*found = f.found;
	return err;
}

static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
	uint8_t pw[16];
	randombytes_buf(pw, sizeof(pw));
	if (crypto_pwhash_str(dummy_hash, (const char *)pw, sizeof(pw),
			      crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		dummy_hash[0] = '\0';
}

rete_err console_accounts_check(const char *path, const char *user, const char *password,
				uint8_t stamp[CONSOLE_STAMP_LEN], rete_msg *m)
{
	struct find f = {.user = user};
	rete_err err;

	if ((err = each_line(path, find_one, &f, m)) != RETE_OK)
		return err;
	if (!f.found) {
		/* the same work for an unknown name: its time tells nothing */
		pthread_once(&dummy_once, dummy_make);
		if (dummy_hash[0] != '\0')
			if (crypto_pwhash_str_verify(dummy_hash, password, strlen(password)) == 0)
				dummy_hash[0] = '\0'; /* a random password guessed: never again */
		return rete_msg_set(m, RETE_EREFUSED, "wrong user or password");
	}
	if (crypto_pwhash_str_verify(f.hash, password, strlen(password)) != 0) {
		sodium_memzero(f.hash, sizeof(f.hash));
		return rete_msg_set(m, RETE_EREFUSED, "wrong user or password");
	}
	if (stamp != NULL) /* of the line checked, not of the file later */
		crypto_generichash(stamp, CONSOLE_STAMP_LEN, (const uint8_t *)f.hash,
				   strlen(f.hash), NULL, 0);
	sodium_memzero(f.hash, sizeof(f.hash));
	return RETE_OK;
}

bool console_accounts_known(const char *path, const char *user)
{
	bool found = false;
	rete_msg m = {{0}};
	return console_account_exists(path, user, &found, &m) == RETE_OK && found;
}

struct rewrite {
	FILE *out;
	const char *user;
	const char *hash;
	bool done, bad;
};

static int copy_one(void *arg, const char *user, const char *hash)
{
	struct rewrite *w = arg;
	bool mine = strcmp(user, w->user) == 0;
	if (fprintf(w->out, "%s:%s\n", user, mine ? w->hash : hash) < 0)
		w->bad = true;
	w->done |= mine;
	return 0;
}

/* How long a writer waits for the accounts' lock. A writer holds it for a
 * read, a write and two fsyncs (milliseconds; the password is hashed before),
 * so seconds mean a writer stuck on its disk, or a person holding the lock
 * by hand (docs/operations.md: `flock console-users.lock ...`). */
#define ACCOUNTS_LOCK_WAIT_MS 5000

/* accounts_lock takes the exclusive lock of the accounts file at path: a
 * flock on PATH.lock beside it (made 0600, the accounts file's owner when
 * root makes it, and never removed: a lock file removed and made again
 * under its holder would be a second lock, so the lock taken is checked to
 * be on the file now at PATH.lock, and taken again when not). *fd gets the
 * locked descriptor (close it to unlock). RETE_ETIMEDOUT when another
 * holds it for ACCOUNTS_LOCK_WAIT_MS; RETE_EIO, RETE_EINVAL. */
static rete_err accounts_lock(const char *path, const struct stat *owner, int *fd, rete_msg *m)
{
	char lock[4096];
	struct timespec now, step = {0, 20 * 1000 * 1000};
	int64_t until;

	*fd = -1;
	if (snprintf(lock, sizeof(lock), "%s.lock", path) >= (int)sizeof(lock))
		return rete_msg_set(m, RETE_EINVAL, "%.200s: the path is too long", path);
	clock_gettime(CLOCK_MONOTONIC, &now);
	until = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + ACCOUNTS_LOCK_WAIT_MS;
	for (;;) {
		int f = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (f < 0)
			return rete_msg_set(m, RETE_EIO,
					    "%s: cannot open the accounts' lock %s: %s", path, lock,
					    strerror(errno));
		struct stat a, b;
		/* made by root beside a service user's accounts: the service
		 * user's, so that it can take the lock too */
		if (owner != NULL && geteuid() == 0 && owner->st_uid != 0 && fstat(f, &a) == 0 &&
		    a.st_uid == 0 && fchown(f, owner->st_uid, owner->st_gid) != 0) {
			int e = errno;
			close(f);
			return rete_msg_set(
			    m, RETE_EIO,
			    "%s: cannot give its lock %s the accounts file's owner: %s", path, lock,
			    strerror(e));
		}
		/* flock has no timeout of its own: tried every 20 ms */
		while (flock(f, LOCK_EX | LOCK_NB) != 0) {
			int e = errno;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (e != EWOULDBLOCK && e != EINTR) {
				close(f);
				return rete_msg_set(m, RETE_EIO, "%s: cannot lock %s: %s", path,
						    lock, strerror(e));
			}
			if ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 >= until) {
				close(f);
				return rete_msg_set(
				    m, RETE_ETIMEDOUT,
				    "another program holds the accounts' lock %s for over %d s "
				    "(another `rete console passwd`, or an edit of the accounts "
				    "file; `lslocks` names it); nothing changed: run the command "
				    "again once it is done\n"
				    "  un altro programma tiene il lock degli account da "
				    "oltre %d s; nulla è cambiato: ripetete il comando "
				    "quando ha finito",
				    lock, ACCOUNTS_LOCK_WAIT_MS / 1000,
				    ACCOUNTS_LOCK_WAIT_MS / 1000);
			}
			nanosleep(&step, NULL);
		}
		if (fstat(f, &a) == 0 && stat(lock, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			*fd = f;
			return RETE_OK;
		}
		close(f); /* removed or replaced while we waited: the file there now */
	}
}

/* fsync_folder: the folder of path to disk (a rename in it is then kept
 * through a power cut). */
static rete_err fsync_folder(const char *path, rete_msg *m)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return rete_msg_set(m, RETE_EIO,
				    "%s: replaced, but its folder %s could not be written to disk "
				    "(%s): the change may not survive a power cut; run the command "
				    "again",
				    path, dir, strerror(e));
	}
	close(fd);
	return RETE_OK;
}

/* stale_temps removes what a writer killed before its rename left beside
 * path: PATH.new.XXXXXX (mkostemp's) and 0.7.0's PATH.new. Called under
 * the lock, when no other writer has one open. They hold every account's
 * hash as it was, old passwords included, and would otherwise pile up. */
static void stale_temps(const char *path)
{
	char dir[4096];
	const char *base = strrchr(path, '/');
	if (base == NULL) {
		snprintf(dir, sizeof(dir), ".");
		base = path;
	} else {
		size_t dl = (size_t)(base - path);
		snprintf(dir, sizeof(dir), "%.*s", (int)(dl ? dl : 1), path);
		base++;
	}
	size_t bl = strlen(base);
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	int dfd = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *n = e->d_name;
		if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".new", 4) != 0)
			continue;
		const char *rest = n + bl + 4;
		if (*rest == '\0' || (rest[0] == '.' && strlen(rest) == 7))
			unlinkat(dfd, n, 0);
	}
	closedir(d);
}

rete_err console_accounts_set(const char *path, const char *user, const char *password, rete_msg *m)
{
	char hash[crypto_pwhash_STRBYTES], tmp[4096];
	rete_err err;
	int lock = -1;

	if (!console_user_valid(user))
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "'%.64s' is not a user name: 1 to %d of a-z, 0-9, '.', '_', '-'", user,
		    CONSOLE_USER_MAX);
	if (password[0] == '\0')
		return rete_msg_set(m, RETE_EINVAL, "the password is empty; give one");
	if (snprintf(tmp, sizeof(tmp), "%s.new.XXXXXX", path) >= (int)sizeof(tmp))
		return rete_msg_set(m, RETE_EINVAL, "%.200s: the path is too long", path);
	/* hashed before the lock: the lock is held only for the file's
	 * rewrite, not for Argon2's tenth of a second and 64 MiB */
	if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory while hashing the password");
	struct stat old;
	bool had = stat(path, &old) == 0;
	/* the whole read-modify-write under one lock: two writers at once
	 * each copied the file as it was and the last rename dropped the
	 * other's account (rev-edges s16 #3) */
	if ((err = accounts_lock(path, had ? &old : NULL, &lock, m)) != RETE_OK)
		goto out;
	had = stat(path, &old) == 0; /* as it is now, under the lock */
	stale_temps(path);
	/* a temporary of its own (two writers truncated one PATH.new under
	 * each other), with the accounts file's owner bits (never group's
	 * or others': the console refuses those) and, made by root, owner */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		err = rete_msg_set(m, RETE_EIO, "%s: cannot write: %s", tmp, strerror(errno));
		goto out;
	}
	if (had && (fchmod(fd, old.st_mode & 0700) != 0 ||
		    (geteuid() == 0 && fchown(fd, old.st_uid, old.st_gid) != 0))) {
		err = rete_msg_set(m, RETE_EIO,
				   "%s: cannot give it the accounts file's mode and owner: %s", tmp,
				   strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	FILE *out = fdopen(fd, "w");
	if (out == NULL) {
		err = rete_msg_set(m, RETE_EIO, "%s: cannot write: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	fprintf(out, "# rete console accounts: USER:HASH (crypto_pwhash_str); written by "
		     "`rete console passwd USER`\n");
	struct rewrite w = {.out = out, .user = user, .hash = hash};
	err = each_line(path, copy_one, &w, m);
	if (err == RETE_OK && !w.done && fprintf(out, "%s:%s\n", user, hash) < 0)
		w.bad = true;
	if (err == RETE_OK && (w.bad || fflush(out) != 0 || fsync(fileno(out)) != 0))
		err = rete_msg_set(m, RETE_EIO, "%s: cannot write: %s", tmp, strerror(errno));
	if (fclose(out) != 0 && err == RETE_OK)
		err = rete_msg_set(m, RETE_EIO, "%s: cannot write: %s", tmp, strerror(errno));
	if (err == RETE_OK && rename(tmp, path) != 0)
		err = rete_msg_set(m, RETE_EIO, "%s: cannot replace: %s", path, strerror(errno));
	if (err != RETE_OK)
		unlink(tmp);
	else
		err = fsync_folder(path, m);
out:
	if (lock >= 0)
		close(lock); /* after the rename and its folder's fsync: the next
			      * writer copies this file */
	sodium_memzero(hash, sizeof(hash));
	return err;
}

/* ---- sessions ---------------------------------------------------------------- */

#define STAMP_LEN CONSOLE_STAMP_LEN

struct session {
	char token[CONSOLE_TOKEN_HEX + 1];
	char user[CONSOLE_USER_MAX + 1];
	int64_t created, last;
	uint8_t stamp[STAMP_LEN]; /* of its user's account line at the sign-in */
	unsigned auto_noted;	  /* routes (bits) whose page's own read was recorded
				   * since the last use */
};

static pthread_mutex_t sess_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session sessions[CONSOLE_SESSIONS_MAX];
static char sess_accounts[4096]; /* the accounts file the sessions hang on; "": none */

void console_sessions_accounts(const char *path)
{
	pthread_mutex_lock(&sess_lock);
	snprintf(sess_accounts, sizeof(sess_accounts), "%s", path ? path : "");
	pthread_mutex_unlock(&sess_lock);
}

/* account_stamp: a digest of user's line in the accounts file at path
 * (its password's hash, salted), or false when the file has no such user
 * or cannot be read. */
static bool account_stamp(const char *path, const char *user, uint8_t stamp[STAMP_LEN])
{
	struct find f = {.user = user};
	rete_msg m = {{0}};
	if (each_line(path, find_one, &f, &m) != RETE_OK || !f.found)
		return false;
	crypto_generichash(stamp, STAMP_LEN, (const uint8_t *)f.hash, strlen(f.hash), NULL, 0);
	sodium_memzero(f.hash, sizeof(f.hash));
	return true;
}

/* session_over: s is no session, or one past its idle time or its end */
static bool session_over(const struct session *s, int64_t now_ms)
{
	return s->token[0] == '\0' || now_ms - s->last > CONSOLE_SESSION_IDLE_MS ||
	       now_ms - s->created > CONSOLE_SESSION_MAX_MS;
}

/* session_of_biggest_holder: with every place a live session, the least
 * recently used session of the user holding the most (of those users, the
 * one whose session was used longest ago), if that user holds more than
 * one (a few accounts must not keep everyone else out); else
 * CONSOLE_SESSIONS_MAX. Under sess_lock. */
static size_t session_of_biggest_holder(int64_t now_ms)
{
	size_t pick = CONSOLE_SESSIONS_MAX, most = 1;
	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++) {
		if (session_over(&sessions[i], now_ms))
			continue;
		size_t held = 0;
		for (size_t j = 0; j < CONSOLE_SESSIONS_MAX; j++)
			held += !session_over(&sessions[j], now_ms) &&
				strcmp(sessions[j].user, sessions[i].user) == 0;
		if (held > most || (held == most && pick != CONSOLE_SESSIONS_MAX &&
				    sessions[i].last < sessions[pick].last)) {
			most = held;
			pick = i;
		}
	}
	return pick;
}

bool console_session_new(const char *user, int64_t now_ms, const uint8_t given[CONSOLE_STAMP_LEN],
			 char token[CONSOLE_TOKEN_HEX + 1])
{
	uint8_t raw[CONSOLE_TOKEN_HEX / 2], stamp[STAMP_LEN] = {0};
	char path[sizeof(sess_accounts)];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(token, CONSOLE_TOKEN_HEX + 1, raw, sizeof(raw));
	pthread_mutex_lock(&sess_lock);
	memcpy(path, sess_accounts, sizeof(path));
	pthread_mutex_unlock(&sess_lock);
	if (given != NULL)
		memcpy(stamp, given, STAMP_LEN);
	else if (path[0] != '\0')
		account_stamp(path, user, stamp);
	pthread_mutex_lock(&sess_lock);
	/* a free place (empty, or a session over), unless the user holds
	 * CONSOLE_SESSIONS_PER_USER live ones: then that user's least
	 * recently used; with no free place, the least recently used of the
	 * user holding the most, if more than one */
	size_t free_at = CONSOLE_SESSIONS_MAX, own = CONSOLE_SESSIONS_MAX, nown = 0;
	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++) {
		if (session_over(&sessions[i], now_ms)) {
			if (free_at == CONSOLE_SESSIONS_MAX)
				free_at = i;
			continue;
		}
		if (strcmp(sessions[i].user, user) != 0)
			continue;
		nown++;
		if (own == CONSOLE_SESSIONS_MAX || sessions[i].last < sessions[own].last)
			own = i;
	}
	size_t pick = nown >= CONSOLE_SESSIONS_PER_USER ? own : free_at;
	if (pick == CONSOLE_SESSIONS_MAX)
		pick = session_of_biggest_holder(now_ms);
	if (pick == CONSOLE_SESSIONS_MAX) {
		pthread_mutex_unlock(&sess_lock);
		sodium_memzero(token, CONSOLE_TOKEN_HEX + 1);
		return false;
	}
	struct session *s = &sessions[pick];
	memset(s, 0, sizeof(*s));
	snprintf(s->token, sizeof(s->token), "%s", token);
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->created = s->last = now_ms;
	memcpy(s->stamp, stamp, STAMP_LEN);
	pthread_mutex_unlock(&sess_lock);
	return true;
}

/* how session_look counts a look: a person's use (the idle time
 * restarted), a page's own read (not restarted; *first set on the first
 * since the last use), or a look only */
enum look { LOOK_USE, LOOK_AUTO, LOOK_PEEK, LOOK_UNNOTE };

static bool session_look(const char *token, int64_t now_ms, char *user, enum look how,
			 unsigned route, bool *first);

bool console_session_user(const char *token, int64_t now_ms, char user[CONSOLE_USER_MAX + 1])
{
	return session_look(token, now_ms, user, LOOK_USE, 0, NULL);
}

bool console_session_auto(const char *token, int64_t now_ms, char user[CONSOLE_USER_MAX + 1],
			  unsigned route, bool *first)
{
	return session_look(token, now_ms, user, LOOK_AUTO, route, first);
}

void console_session_auto_unnote(const char *token, int64_t now_ms, unsigned route)
{
	char user[CONSOLE_USER_MAX + 1];
	session_look(token, now_ms, user, LOOK_UNNOTE, route, NULL);
}

bool console_session_peek(const char *token, int64_t now_ms, char user[CONSOLE_USER_MAX + 1])
{
	return session_look(token, now_ms, user, LOOK_PEEK, 0, NULL);
}

bool console_session_live(const char *token, int64_t now_ms)
{
	return session_look(token, now_ms, NULL, LOOK_PEEK, 0, NULL);
}

static bool session_look(const char *token, int64_t now_ms, char *user, enum look how,
			 unsigned route, bool *first)
{
	bool ok = false;
	char who[CONSOLE_USER_MAX + 1], path[sizeof(sess_accounts)];
	uint8_t stamp[STAMP_LEN], now_stamp[STAMP_LEN];
	if (first != NULL)
		*first = false;
	if (strlen(token) != CONSOLE_TOKEN_HEX)
		return false;
	pthread_mutex_lock(&sess_lock);
	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++) {
		struct session *s = &sessions[i];
		if (s->token[0] == '\0' || sodium_memcmp(s->token, token, CONSOLE_TOKEN_HEX) != 0)
			continue;
		if (now_ms - s->last > CONSOLE_SESSION_IDLE_MS ||
		    now_ms - s->created > CONSOLE_SESSION_MAX_MS) {
			memset(s, 0, sizeof(*s));
			break;
		}
		if (how == LOOK_USE) {
			s->last = now_ms;
			s->auto_noted = 0;
		} else if (how == LOOK_AUTO) {
			if (first != NULL)
				*first = (s->auto_noted & route) == 0;
			s->auto_noted |= route;
		} else if (how == LOOK_UNNOTE) {
			s->auto_noted &= ~route;
		}
		memcpy(who, s->user, sizeof(who));
		memcpy(stamp, s->stamp, STAMP_LEN);
		ok = true;
		break;
	}
	memcpy(path, sess_accounts, sizeof(path));
	pthread_mutex_unlock(&sess_lock);
	/* the account as it is now: deleted, or another password, ends it */
	if (ok && path[0] != '\0' &&
	    (!account_stamp(path, who, now_stamp) ||
	     sodium_memcmp(stamp, now_stamp, STAMP_LEN) != 0)) {
		console_session_end(token);
		ok = false;
	}
	if (ok && user != NULL)
		snprintf(user, CONSOLE_USER_MAX + 1, "%s", who);
	return ok;
}

void console_session_end(const char *token)
{
	pthread_mutex_lock(&sess_lock);
	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++)
		if (sessions[i].token[0] != '\0' && strcmp(sessions[i].token, token) == 0)
			memset(&sessions[i], 0, sizeof(sessions[i]));
	pthread_mutex_unlock(&sess_lock);
}

/* ---- the login throttle ------------------------------------------------------------ */

struct strike {
	char key[CONSOLE_USER_MAX + 72]; /* "p:USER@ADDRESS", "a:ADDRESS" or "u:USER" */
	unsigned fails;
	int64_t until, last;
};

static pthread_mutex_t thr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct strike strikes[CONSOLE_THROTTLE_MAX];

/* Set when a new strike found the table full of live ones: every sign-in
 * from an address not known for its user waits until then (a spray of
 * names must not make the table forget the strike of the user under
 * attack). */
static int64_t thr_full_until;

/* The console-wide brake on failures from addresses not known for their
 * user, a leaky bucket of CONSOLE_LOGIN_FREE_CONSOLE that empties by one
 * every CONSOLE_LOGIN_CONSOLE_MS: brake_due is when it is empty again
 * (it holds (brake_due - now) / CONSOLE_LOGIN_CONSOLE_MS failures); brake_on
 * is set from when it is full until it is empty (the log says it once). */
static int64_t brake_due;
static bool brake_on;

/* strike_stale: s throttles nobody and was not touched for
 * CONSOLE_THROTTLE_FORGET_MS: its count is forgotten */
static bool strike_stale(const struct strike *s, int64_t now_ms)
{
	return s->until <= now_ms && now_ms - s->last > CONSOLE_THROTTLE_FORGET_MS;
}

/* strike_sooner: a is given up for a new strike before b (neither
 * throttles anyone now): an empty or forgotten one first, then the one with
 * fewer failures (one guess per name must not push out the count of a
 * user or an address under attack), then the one touched longer ago */
static bool strike_sooner(const struct strike *a, const struct strike *b, int64_t now_ms)
{
	bool fa = a->key[0] == '\0' || strike_stale(a, now_ms);
	bool fb = b->key[0] == '\0' || strike_stale(b, now_ms);
	if (fa || fb)
		return fa && !fb;
	if (a->fails != b->fails)
		return a->fails < b->fails;
	return a->last < b->last;
}

/* The user-wide counts ("u:USER") of names that are accounts, apart from
 * the strikes: a stranger's failures (of names that are no account, which
 * get no user-wide count) never push one out (rev-throttle #2: a table full
 * of two-failure strikes and one filler failure after each guess kept an
 * account's count at 1). A place is given up as a strike's is, only to
 * another account's count: with at most CONSOLE_THROTTLE_MAX accounts
 * failing in a day, never. */
static struct strike ucounts[CONSOLE_THROTTLE_MAX];

/* strike_find_in: key's strike in table (strikes or ucounts; its count
 * forgotten when stale), or (make) a new one in place of one that
 * throttles nobody now and is not in keep (the strikes of the same
 * sign-in, nkeep of them: one must not push out another) */
static struct strike *strike_find_in(struct strike *table, const char *key, bool make,
				     int64_t now_ms, struct strike *const *keep, int nkeep)
{
	size_t pick = CONSOLE_THROTTLE_MAX;
	int64_t soonest = INT64_MAX;
	for (size_t i = 0; i < CONSOLE_THROTTLE_MAX; i++) {
		struct strike *s = &table[i];
		if (s->key[0] != '\0' && strcmp(s->key, key) == 0) {
			if (strike_stale(s, now_ms))
				s->fails = 0, s->until = 0;
			return s;
		}
		bool kept = false;
		for (int j = 0; j < nkeep; j++)
			kept = kept || keep[j] == s;
		if (kept)
			continue;
		if (s->until > now_ms) { /* throttles someone: kept */
			if (s->until < soonest)
				soonest = s->until;
			continue;
		}
		if (pick == CONSOLE_THROTTLE_MAX || strike_sooner(s, &table[pick], now_ms))
			pick = i;
	}
	if (!make)
		return NULL;
	if (pick == CONSOLE_THROTTLE_MAX) {
		if (soonest > thr_full_until)
			thr_full_until = soonest;
		return NULL;
	}
	memset(&table[pick], 0, sizeof(table[pick]));
	snprintf(table[pick].key, sizeof(table[pick].key), "%s", key);
	table[pick].last = now_ms;
	return &table[pick];
}

static struct strike *strike_find(const char *key, bool make, int64_t now_ms)
{
	return strike_find_in(strikes, key, make, now_ms, NULL, 0);
}

static struct strike *ucount_find(const char *key, bool make, int64_t now_ms)
{
	return strike_find_in(ucounts, key, make, now_ms, NULL, 0);
}

/* The addresses each user signed in from (a user-wide pause and the
 * console-wide brake spare them): at most CONSOLE_GOOD_PER_USER a user, its
 * most recent, and CONSOLE_THROTTLE_MAX in all; under thr_lock. */
static struct {
	char key[CONSOLE_USER_MAX + 72]; /* "USER@ADDRESS" */
	int64_t at;
} goods[CONSOLE_THROTTLE_MAX];

static bool good_find(const char *key)
{
	for (size_t i = 0; i < CONSOLE_THROTTLE_MAX; i++)
		if (goods[i].key[0] != '\0' && strcmp(goods[i].key, key) == 0)
			return true;
	return false;
}

/* good_note: key ("USER@ADDRESS") is an address its user signed in from.
 * A user with CONSOLE_GOOD_PER_USER of them gives up its oldest (one
 * account signing in from many addresses must not push out the others'),
 * else an empty place, else the oldest of all. */
static void good_note(const char *key, int64_t now_ms)
{
	size_t ulen = strcspn(key, "@"), empty = CONSOLE_THROTTLE_MAX, oldest = 0;
	size_t own = CONSOLE_THROTTLE_MAX, nown = 0;
	for (size_t i = 0; i < CONSOLE_THROTTLE_MAX; i++) {
		if (goods[i].key[0] == '\0') {
			if (empty == CONSOLE_THROTTLE_MAX)
				empty = i;
			continue;
		}
		if (strcmp(goods[i].key, key) == 0) {
			goods[i].at = now_ms;
			return;
		}
		if (strncmp(goods[i].key, key, ulen + 1) == 0) {
			nown++;
			if (own == CONSOLE_THROTTLE_MAX || goods[i].at < goods[own].at)
				own = i;
		}
		if (goods[oldest].key[0] == '\0' || goods[i].at < goods[oldest].at)
			oldest = i;
	}
	size_t pick = nown >= CONSOLE_GOOD_PER_USER   ? own
		      : empty != CONSOLE_THROTTLE_MAX ? empty
						      : oldest;
	snprintf(goods[pick].key, sizeof(goods[pick].key), "%s", key);
	goods[pick].at = now_ms;
}

/* the three keys of a sign-in: the pair, the address, the user */
static void throttle_keys(const char *user, const char *peer, char k[3][CONSOLE_USER_MAX + 72])
{
	snprintf(k[0], CONSOLE_USER_MAX + 72, "p:%.64s@%.64s", user, peer);
	snprintf(k[1], CONSOLE_USER_MAX + 72, "a:%.64s", peer);
	snprintf(k[2], CONSOLE_USER_MAX + 72, "u:%.64s", user);
}

/* the brake's wait now: 0 while fewer than CONSOLE_LOGIN_FREE_CONSOLE
 * failures are in the bucket */
static int64_t brake_wait(int64_t now_ms)
{
	int64_t w =
	    brake_due - now_ms - (CONSOLE_LOGIN_FREE_CONSOLE - 1) * CONSOLE_LOGIN_CONSOLE_MS;
	return w > 0 ? w : 0;
}

int64_t console_throttle_wait_why(const char *user, const char *peer, int64_t now_ms, bool *brake)
{
	char k[3][sizeof(strikes[0].key)];
	int64_t wait = 0;
	bool braked = false;
	throttle_keys(user, peer, k);
	pthread_mutex_lock(&thr_lock);
	/* an address the user signed in from before is held neither by the
	 * user-wide pause nor by the console-wide brake (a stranger's guesses
	 * must not lock the user out) */
	bool good = good_find(k[0] + 2), suspect = false;
	for (int i = 0; i < (good ? 2 : 3); i++) {
		struct strike *s =
		    i == 2 ? ucount_find(k[i], false, now_ms) : strike_find(k[i], false, now_ms);
		if (s != NULL && s->until > now_ms && s->until - now_ms > wait)
			wait = s->until - now_ms;
		/* the name or the address failed in the last 24 h */
		if (i > 0 && s != NULL && s->fails > 0)
			suspect = true;
	}
	if (!good) {
		/* the brake holds only a sign-in whose name or address failed
		 * lately (rev-throttle #1: an attacker polling from 16
		 * addresses took every slot it let through, and a person with
		 * the right password at a new PC never got in) */
		int64_t b = suspect ? brake_wait(now_ms) : 0;
		if (thr_full_until > now_ms && thr_full_until - now_ms > b)
			b = thr_full_until - now_ms;
		if (b > wait)
			wait = b, braked = true;
	}
	pthread_mutex_unlock(&thr_lock);
	if (brake != NULL)
		*brake = braked;
	return wait;
}

int64_t console_throttle_wait(const char *user, const char *peer, int64_t now_ms)
{
	return console_throttle_wait_why(user, peer, now_ms, NULL);
}

unsigned console_throttle_note(const char *user, const char *peer, bool ok, int64_t now_ms)
{
	return console_throttle_note_as(user, peer, ok, true, now_ms);
}

unsigned console_throttle_note_as(const char *user, const char *peer, bool ok, bool account,
				  int64_t now_ms)
{
	char k[3][sizeof(strikes[0].key)];
	/* free failures before a pause, for each key */
	static const unsigned free_[3] = {CONSOLE_LOGIN_FREE, CONSOLE_LOGIN_FREE_ADDRESS,
					  CONSOLE_LOGIN_FREE_USER};
	unsigned started = 0;
	throttle_keys(user, peer, k);
	pthread_mutex_lock(&thr_lock);
	if (ok) {
		/* the pair's count starts again, and the address is one the
		 * user signed in from; the user-wide count is kept (a sign-in
		 * must not clear an attacker's count of that user) */
		struct strike *s = strike_find(k[0], false, now_ms);
		if (s != NULL)
			memset(s, 0, sizeof(*s));
		good_note(k[0] + 2, now_ms);
		pthread_mutex_unlock(&thr_lock);
		return 0;
	}
	struct strike *got[3] = {NULL, NULL, NULL};
	for (int i = 0; i < 3; i++) {
		if (i == 2 && !account)
			break; /* no account: nobody to guess into */
		struct strike *s = got[i] =
		    i == 2 ? ucount_find(k[i], true, now_ms)
			   : strike_find_in(strikes, k[i], true, now_ms, got, i);
		if (s == NULL)
			continue; /* the table is full of live strikes: all wait */
		s->fails++;
		s->last = now_ms;
		if (s->fails >= free_[i]) {
			unsigned sh = s->fails - free_[i];
			int64_t d = sh >= 20 ? CONSOLE_THROTTLE_MAX_MS : 2000LL << sh;
			s->until =
			    now_ms + (d > CONSOLE_THROTTLE_MAX_MS ? CONSOLE_THROTTLE_MAX_MS : d);
			if (i == 2 && s->fails == free_[i])
				started |= CONSOLE_THROTTLE_USER_PAUSED;
		}
	}
	/* the console-wide bucket takes the failures from addresses not known
	 * for their user; it holds at most CONSOLE_LOGIN_FREE_CONSOLE (a wait
	 * of one CONSOLE_LOGIN_CONSOLE_MS at most) */
	if (!good_find(k[0] + 2)) {
		if (brake_due < now_ms) {
			brake_due = now_ms;
			brake_on = false;
		}
		brake_due += CONSOLE_LOGIN_CONSOLE_MS;
		int64_t most = now_ms + CONSOLE_LOGIN_FREE_CONSOLE * CONSOLE_LOGIN_CONSOLE_MS;
		if (brake_due > most)
			brake_due = most;
		if (!brake_on && brake_wait(now_ms) > 0) {
			brake_on = true;
			started |= CONSOLE_THROTTLE_BRAKE_ON;
		}
	}
	pthread_mutex_unlock(&thr_lock);
	return started;
}

/* The held sign-ins' lines in the access record: at most one a minute
 * from an address, saying how many more were held there since (polling
 * must not grow the record; rev-throttle #3); under thr_lock. */
static struct {
	char addr[72];
	int64_t at;
	unsigned more;
} helds[64];

bool console_throttle_held_line(const char *peer, int64_t now_ms, unsigned *more)
{
	size_t pick = 0;
	bool say = true;
	pthread_mutex_lock(&thr_lock);
	for (size_t i = 0; i < sizeof(helds) / sizeof(helds[0]); i++) {
		if (helds[i].addr[0] != '\0' && strcmp(helds[i].addr, peer) == 0) {
			pick = i;
			say = now_ms - helds[i].at >= CONSOLE_HELD_LINE_MS || now_ms < helds[i].at;
			goto found;
		}
		if (helds[i].at < helds[pick].at || helds[i].addr[0] == '\0')
			pick = i;
	}
	snprintf(helds[pick].addr, sizeof(helds[pick].addr), "%s", peer);
	helds[pick].more = 0;
found:
	*more = helds[pick].more;
	if (say)
		helds[pick].at = now_ms, helds[pick].more = 0;
	else
		helds[pick].more++;
	pthread_mutex_unlock(&thr_lock);
	return say;
}

/* ---- what a browser sends -------------------------------------------------------- */

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

bool console_form_field(const char *body, size_t len, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name), i = 0;
	if (n == 0)
		return false;
	while (i < len) {
		size_t end = i;
		while (end < len && body[end] != '&')
			end++;
		if (end - i > nl && memcmp(body + i, name, nl) == 0 && body[i + nl] == '=') {
			size_t o = 0;
			for (size_t k = i + nl + 1; k < end; k++) {
				char ch = body[k];
				if (ch == '+') {
					ch = ' ';
				} else if (ch == '%') {
					if (k + 2 >= end)
						return false;
					int hi = hexval(body[k + 1]), lo = hexval(body[k + 2]);
					if (hi < 0 || lo < 0)
						return false;
					ch = (char)(hi * 16 + lo);
					k += 2;
				}
				if (ch == '\0' || o + 1 >= n)
					return false;
				out[o++] = ch;
			}
			out[o] = '\0';
			return true;
		}
		i = end + 1;
	}
	return false;
}

bool console_cookie(const char *header, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);
	const char *p = header;
	while (p != NULL && *p) {
		while (*p == ' ' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t vl = len - nl - 1;
			if (vl + 1 > n)
				return false;
			memcpy(out, p + nl + 1, vl);
			out[vl] = '\0';
			return true;
		}
		p = end;
	}
	return false;
}
