/* agent_spool.c — see agent_spool.h. */
#include "agent_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

rete_err agent_spool_prepare(const char *spool, rete_msg *m)
{
	static const char *const subs[] = {"", "/outbox", "/sent", "/failed", "/inbox"};
	char path[4096];

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", spool, subs[i]);
		if (mkdir(path, 0750) != 0 && errno != EEXIST)
			return rete_msg_set(m, RETE_EIO, "%s: cannot create the spool folder: %s",
					    path, strerror(errno));
	}
	return RETE_OK;
}

bool agent_spool_name_ignored(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || name[0] == '.')
		return true;
	return n >= 4 && strcmp(name + n - 4, ".tmp") == 0;
}

/* utf8_len: the length of the valid UTF-8 sequence at s (at most left
 * bytes), 0 when s does not start one. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
	size_t n;
	uint32_t c;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, c = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, c = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and beyond U+10FFFF are not UTF-8 */
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	return n;
}

static bool utf8_valid(const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t left = strlen(name);
	while (left > 0) {
		size_t k = utf8_len(s, left);
		if (k == 0)
			return false;
		s += k;
		left -= k;
	}
	return true;
}

const char *agent_spool_name_problem(const char *name, char *why, size_t n)
{
	size_t len = strlen(name);
	if (strchr(name, '/') != NULL || strcmp(name, "..") == 0) {
		snprintf(why, n, "not a file name");
		return "bad-name";
	}
	if (len > AGENT_SPOOL_NAME_MAX) {
		snprintf(why, n,
			 "the name is %zu bytes long; the agent takes names of at most %d bytes "
			 "(its answers add to them); rename the file",
			 len, AGENT_SPOOL_NAME_MAX);
		return "name-too-long";
	}
	if (!utf8_valid(name)) {
		snprintf(why, n,
			 "the name is not valid UTF-8 (the answers' JSON cannot name it); "
			 "rename the file");
		return "bad-name";
	}
	return NULL;
}

bool agent_spool_name_ok(const char *name)
{
	char why[256];
	return !agent_spool_name_ignored(name) &&
	       agent_spool_name_problem(name, why, sizeof(why)) == NULL;
}

json_t *agent_spool_name_json(const char *name)
{
	if (utf8_valid(name))
		return json_string(name);
	size_t len = strlen(name), o = 0;
	char *buf = malloc(len * 4 + 1);
	if (buf == NULL)
		return NULL;
	const unsigned char *s = (const unsigned char *)name;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_len(s + i, len - i);
		if (k == 0) {
			o += (size_t)sprintf(buf + o, "\\x%02x", s[i]);
			i++;
		} else {
			memcpy(buf + o, s + i, k);
			o += k;
			i += k;
		}
	}
	buf[o] = '\0';
	json_t *j = json_string(buf);
	free(buf);
	return j;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void agent_spool_list_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* spool_vec: a growing list of names. */
typedef struct spool_vec {
	char **v;
	size_t n, cap;
} spool_vec;

static bool vec_add(spool_vec *x, const char *name)
{
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 64;
		char **nv = realloc(x->v, nc * sizeof(*nv));
		if (nv == NULL)
			return false;
		x->v = nv;
		x->cap = nc;
	}
	if ((x->v[x->n] = strdup(name)) == NULL)
		return false;
	x->n++;
	return true;
}

rete_err agent_spool_list_all(const char *dir, char ***names, size_t *count, char ***others,
			      size_t *nothers, rete_msg *m)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	spool_vec reg = {0}, odd = {0};

	*names = NULL;
	*count = 0;
	if (others != NULL) {
		*others = NULL;
		*nothers = 0;
	}
	if (d == NULL)
		return rete_msg_set(m, RETE_EIO, "%s: cannot read the folder: %s", dir,
				    strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (agent_spool_name_ignored(e->d_name) || strcmp(e->d_name, "..") == 0)
			continue;
		bool is_reg = e->d_type == DT_REG;
		if (e->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			is_reg = S_ISREG(st.st_mode);
		}
		if (!is_reg && others == NULL)
			continue;
		if (!vec_add(is_reg ? &reg : &odd, e->d_name))
			goto nomem;
	}
	closedir(d);
	if (reg.n > 1)
		qsort(reg.v, reg.n, sizeof(*reg.v), name_cmp);
	if (odd.n > 1)
		qsort(odd.v, odd.n, sizeof(*odd.v), name_cmp);
	*names = reg.v;
	*count = reg.n;
	if (others != NULL) {
		*others = odd.v;
		*nothers = odd.n;
	}
	return RETE_OK;
nomem:
	closedir(d);
	agent_spool_list_free(reg.v, reg.n);
	agent_spool_list_free(odd.v, odd.n);
	return rete_msg_set(m, RETE_ENOMEM, "out of memory");
}

rete_err agent_spool_list(const char *dir, char ***names, size_t *count, rete_msg *m)
{
	rete_err err = agent_spool_list_all(dir, names, count, NULL, NULL, m);
	if (err != RETE_OK)
		return err;
	size_t k = 0;
	for (size_t i = 0; i < *count; i++) {
		if (agent_spool_name_ok((*names)[i]))
			(*names)[k++] = (*names)[i];
		else
			free((*names)[i]);
	}
	*count = k;
	return RETE_OK;
}

rete_err agent_spool_read_ident(const char *dir, const char *name, size_t max, char **data,
				size_t *len, agent_spool_ident *id, rete_msg *m)
{
	char path[4096];
	struct stat st;
	int fd;
	char *buf;
	size_t got = 0;

	*data = NULL;
	*len = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return rete_msg_set(m, errno == ENOENT ? RETE_ENOENT : RETE_EIO, "%s: %s", path,
				    strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return rete_msg_set(m, RETE_EIO, "%s: not a regular file", path);
	}
	if (id != NULL) {
		memset(id, 0, sizeof(*id));
		id->dev = st.st_dev;
		id->ino = st.st_ino;
	}
	if ((size_t)st.st_size > max) {
		close(fd);
		return rete_msg_set(m, RETE_EINVAL, "%s: %lld bytes; at most %zu are accepted",
				    path, (long long)st.st_size, max);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	if (id != NULL) {
		crypto_hash_sha256((unsigned char *)id->hash, (const unsigned char *)buf, got);
		id->have_hash = true;
	}
	*data = buf;
	*len = got;
	return RETE_OK;
}

rete_err agent_spool_read(const char *dir, const char *name, size_t max, char **data, size_t *len,
			  rete_msg *m)
{
	return agent_spool_read_ident(dir, name, max, data, len, NULL, m);
}

rete_err agent_spool_fsync_dir(const char *dir, rete_msg *m)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "%s: %s", dir, strerror(errno));
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	if (rc != 0)
		return rete_msg_set(m, RETE_EIO, "%s: fsync: %s", dir, strerror(e));
	return RETE_OK;
}

static int tmp_create(const char *dir, char *path, size_t n);

rete_err agent_spool_write(const char *dir, const char *name, const void *data, size_t len,
			   rete_msg *m)
{
	char tmp[4096], path[4096];
	const char *p = data;
	int fd;

	/* The temporary name is one agent_spool_sweep recognises: an inbox
	 * file holds the opened private part, and a crash must not leave a
	 * copy of it behind for good. */
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = tmp_create(dir, tmp, sizeof(tmp));
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "%s: cannot create a file: %s", dir,
				    strerror(errno));
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return rete_msg_set(m, RETE_EIO, "%s: %s", tmp, strerror(e));
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return rete_msg_set(m, RETE_EIO, "%s: fsync: %s", tmp, strerror(e));
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(e));
	}
	return agent_spool_fsync_dir(dir, m);
}

/* --- locks ------------------------------------------------------------------ */

rete_err agent_spool_lock(const char *dir, const char *name, const char *what,
			  const rete_folder_lock *beside, rete_folder_lock *lk, rete_msg *m)
{
	char pid[32] = "unknown";
	rete_err err = rete_folder_lock_take(dir, name, beside, lk, pid, sizeof(pid), m);
	if (err != RETE_EEXIST)
		return err;
	return rete_msg_set(m, RETE_EEXIST,
			    "%s is in use by another rete-agent (pid %s, holding %s/%s): one "
			    "agent per %s; stop that one first, or give this agent.ini its own %s",
			    dir, pid, dir, name, what, what);
}

/* --- answers ------------------------------------------------------------------ */

/* The source of an answer as found now: src_fd open on a regular file (its
 * stat in src_st, its content's SHA-256 in hash), or a non-regular entry
 * (src_fd -1, exists), or nothing. */
typedef struct answer_src {
	int fd;
	bool exists, regular, is_orig;
	struct stat st;
	uint8_t hash[32];
} answer_src;

/* hash_fd hashes what fd holds from its start. */
static rete_err hash_fd(int fd, uint8_t out[32], const char *path, rete_msg *m)
{
	crypto_hash_sha256_state h;
	uint8_t buf[65536];
	crypto_hash_sha256_init(&h);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(errno));
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(errno));
		if (r == 0)
			break;
		crypto_hash_sha256_update(&h, buf, (size_t)r);
	}
	crypto_hash_sha256_final(&h, out);
	return RETE_OK;
}

static rete_err src_open(const agent_spool_answer *ans, answer_src *s, rete_msg *m)
{
	char path[4096];
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	snprintf(path, sizeof(path), "%s/%s", ans->from_dir, ans->name);
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return RETE_OK;
		return rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(errno));
	}
	s->exists = true;
	s->st = st;
	if (!S_ISREG(st.st_mode)) {
		/* a link, a folder...: the entry itself when nothing was taken in */
		s->is_orig = ans->orig == NULL;
		return RETE_OK;
	}
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (s->fd < 0) {
		if (errno == ENOENT || errno == ELOOP) { /* changed under us: look again */
			s->exists = errno != ENOENT;
			return RETE_OK;
		}
		return rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(errno));
	}
	s->regular = true;
	rete_err err;
	if (fstat(s->fd, &s->st) != 0 || (err = hash_fd(s->fd, s->hash, path, m)) != RETE_OK) {
		close(s->fd);
		s->fd = -1;
		return rete_msg_set(m, RETE_EIO, "%s: cannot read it", path);
	}
	if (ans->orig == NULL)
		s->is_orig = true;
	else if (ans->orig->have_hash)
		s->is_orig = memcmp(s->hash, ans->orig->hash, 32) == 0;
	else
		s->is_orig = s->st.st_dev == ans->orig->dev && s->st.st_ino == ans->orig->ino;
	return RETE_OK;
}

static void src_close(answer_src *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* base_name: the name to answer under: name itself, or, when longer than
 * AGENT_SPOOL_NAME_MAX, its first bytes (cut on a character boundary) and
 * 16 hex digits of its SHA-256 (the companion names the original). */
static void base_name(const char *name, char *out, size_t n)
{
	size_t len = strlen(name);
	if (len <= AGENT_SPOOL_NAME_MAX) {
		snprintf(out, n, "%s", name);
		return;
	}
	size_t keep = 160;
	while (keep > 0 && ((unsigned char)name[keep] & 0xc0) == 0x80)
		keep--;
	uint8_t h[32];
	char hex[17];
	crypto_hash_sha256(h, (const unsigned char *)name, len);
	sodium_bin2hex(hex, sizeof(hex), h, 8);
	snprintf(out, n, "%.*s~%s", (int)keep, name, hex);
}

/* companion_ours: is the file at path an answer the agent wrote for this
 * file (its "file" names name, its "messageId" is id)? */
static bool companion_ours(const char *path, const char *name, const char *id)
{
	struct stat st;
	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20))
		return false;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	json_t *want = agent_spool_name_json(name);
	const char *mid = json_string_value(json_object_get(doc, "messageId"));
	bool ours = doc != NULL && want != NULL && json_equal(json_object_get(doc, "file"), want) &&
		    (id == NULL ? mid == NULL : (mid != NULL && strcmp(mid, id) == 0));
	json_decref(want);
	json_decref(doc);
	return ours;
}

bool agent_spool_file_hash(const char *path, uint8_t out[32])
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok =
	    fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && hash_fd(fd, out, path, NULL) == RETE_OK;
	close(fd);
	return ok;
}

bool agent_spool_hash_is(const char *path, const uint8_t h[32])
{
	uint8_t got[32];
	return agent_spool_file_hash(path, got) && memcmp(got, h, 32) == 0;
}

/* tmp_create makes a new hidden temporary file in dir; its name in path. */
static int tmp_create(const char *dir, char *path, size_t n)
{
	static unsigned seq;
	for (int i = 0; i < 100; i++) {
		snprintf(path, n, "%s/.rete-%ld-%u.tmp", dir, (long)getpid(), ++seq);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

static rete_err write_all(int fd, const void *data, size_t len, const char *path, rete_msg *m)
{
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return rete_msg_set(m, RETE_EIO, "%s: %s", path,
					    w < 0 ? strerror(errno) : "short write");
		p += w;
		len -= (size_t)w;
	}
	return RETE_OK;
}

/* put_new writes dir/name as a new file, never replacing one: data (or,
 * when src_fd >= 0, a copy of what src_fd holds) goes to a temporary file,
 * fsync, then link() to the name. RETE_EEXIST when the name is taken. */
static rete_err put_new(const char *dir, const char *name, const void *data, size_t len, int src_fd,
			rete_msg *m)
{
	char tmp[4096], path[4096];
	rete_err err = RETE_OK;
	int fd = tmp_create(dir, tmp, sizeof(tmp));
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "%s: cannot create a file: %s", dir,
				    strerror(errno));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (src_fd >= 0) {
		char buf[65536];
		if (lseek(src_fd, 0, SEEK_SET) < 0)
			err = rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(errno));
		while (err == RETE_OK) {
			ssize_t r = read(src_fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				err = rete_msg_set(m, RETE_EIO, "copying to %s: %s", path,
						   strerror(errno));
			if (r <= 0)
				break;
			err = write_all(fd, buf, (size_t)r, tmp, m);
		}
	} else {
		err = write_all(fd, data, len, tmp, m);
	}
	if (err == RETE_OK && fsync(fd) != 0)
		err = rete_msg_set(m, RETE_EIO, "%s: fsync: %s", tmp, strerror(errno));
	close(fd);
	if (err == RETE_OK && link(tmp, path) != 0)
		err = errno == EEXIST ? rete_msg_set(m, RETE_EEXIST, "%s: already exists", path)
				      : rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(errno));
	unlink(tmp);
	return err;
}

/* same_inode: is path (not followed) the inode of st? */
static bool same_inode(const char *path, const struct stat *st)
{
	struct stat now;
	return lstat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

enum { PICK_FRESH, PICK_NEED_FILE, PICK_DONE };

/* pick chooses USED in to_dir: a fresh name (USED and its companion both
 * free), or the name of an answer cut short for this very file (or, when
 * the file is no longer there, for its message). */
static rete_err pick(agent_spool_answer *ans, const answer_src *s, const char *base,
		     unsigned from_k, unsigned *kk, int *how, rete_msg *m)
{
	char upath[4096], cpath[4096];
	struct stat st;
	for (unsigned k = from_k; k < 100000; k++) {
		if (k == 1)
			snprintf(ans->used, sizeof(ans->used), "%s", base);
		else
			snprintf(ans->used, sizeof(ans->used), "%s.%u", base, k);
		snprintf(upath, sizeof(upath), "%s/%s", ans->to_dir, ans->used);
		snprintf(cpath, sizeof(cpath), "%s/%s%s", ans->to_dir, ans->used, ans->suffix);
		bool uexists = lstat(upath, &st) == 0;
		if (!uexists && errno != ENOENT)
			return rete_msg_set(m, RETE_EIO, "%s: %s", upath, strerror(errno));
		bool cexists = lstat(cpath, &st) == 0;
		if (!cexists && errno != ENOENT)
			return rete_msg_set(m, RETE_EIO, "%s: %s", cpath, strerror(errno));
		*kk = k;
		if (!uexists && !cexists) {
			*how = PICK_FRESH;
			return RETE_OK;
		}
		if (!cexists)
			continue;
		if (!s->is_orig) {
			/* The file left outbox/ or was replaced there: the answer's
			 * file is the fallback. Our companion alone is an answer
			 * cut after it (a stop between the two writes): its file is
			 * still to write there, never a second companion. */
			if (uexists || !companion_ours(cpath, ans->name, ans->id))
				continue;
			*how = PICK_NEED_FILE;
			return RETE_OK;
		}
		/* A companion is there: is it ours, an answer to this very file
		 * cut short by a crash? Cheap tests first (a name sent often has
		 * many answers): the file must be this inode, or a copy of the
		 * same size and content. */
		if (uexists) {
			bool same = same_inode(upath, &s->st);
			if (!same && s->regular) {
				struct stat ust;
				same = lstat(upath, &ust) == 0 && S_ISREG(ust.st_mode) &&
				       ust.st_size == s->st.st_size &&
				       agent_spool_hash_is(upath, s->hash);
			}
			if (!same)
				continue;
		}
		if (!companion_ours(cpath, ans->name, ans->id))
			continue;
		*how = uexists ? PICK_DONE : PICK_NEED_FILE;
		return RETE_OK;
	}
	return rete_msg_set(m, RETE_EIO, "%s: no free name in %s", ans->name, ans->to_dir);
}

bool agent_spool_answer_find(const char *to_dir, const char *name, const char *suffix,
			     const char *id, char *used, size_t n, struct timespec *answered)
{
	char base[AGENT_SPOOL_NAME_MAX + 1], path[4096], cpath[4096];
	size_t bl, sl = strlen(suffix);
	struct stat st;
	bool found = false;
	base_name(name, base, sizeof(base));
	bl = strlen(base);
	DIR *d = opendir(to_dir);
	struct dirent *e;
	while (d != NULL && !found && (e = readdir(d)) != NULL) {
		const char *u = e->d_name;
		size_t ul = strlen(u);
		/* USED is BASE or BASE.K (K a number from 2), never a companion */
		if (strncmp(u, base, bl) != 0 || (ul > sl && strcmp(u + ul - sl, suffix) == 0))
			continue;
		if (u[bl] != '\0') {
			const char *k = u + bl + 1;
			if (u[bl] != '.' || *k < '1' || *k > '9' ||
			    strspn(k, "0123456789") != strlen(k))
				continue;
		}
		snprintf(path, sizeof(path), "%s/%s", to_dir, u);
		snprintf(cpath, sizeof(cpath), "%s/%s%s", to_dir, u, suffix);
		if (lstat(path, &st) != 0 || !companion_ours(cpath, name, id) ||
		    stat(cpath, &st) != 0)
			continue;
		snprintf(used, n, "%s", u);
		*answered = st.st_mtim;
		found = true;
	}
	if (d != NULL)
		closedir(d);
	return found;
}

rete_err agent_spool_answer_put(agent_spool_answer *ans, rete_msg *m)
{
	char base[AGENT_SPOOL_NAME_MAX + 1], from[4096], upath[4096], cpath[4096];
	rete_err err = RETE_OK;
	unsigned k = 1;

	ans->replaced = ans->gone = false;
	ans->used[0] = '\0';
	base_name(ans->name, base, sizeof(base));
	snprintf(from, sizeof(from), "%s/%s", ans->from_dir, ans->name);
	/* Each round either answers or lost a race (a name taken meanwhile,
	 * the source replaced during the move) and looks again. */
	for (int round = 0; round < 16; round++) {
		answer_src s;
		int how = PICK_FRESH;
		if ((err = src_open(ans, &s, m)) != RETE_OK)
			return err;
		if (!s.exists && ans->orig == NULL)
			return rete_msg_set(m, RETE_ENOENT, "%s: has gone", from);
		if ((err = pick(ans, &s, base, k, &k, &how, m)) != RETE_OK)
			goto fail;
		snprintf(upath, sizeof(upath), "%s/%s", ans->to_dir, ans->used);
		snprintf(cpath, sizeof(cpath), "%s/%s%s", ans->to_dir, ans->used, ans->suffix);
		char cname[AGENT_SPOOL_NAME_MAX + 64];
		snprintf(cname, sizeof(cname), "%s%s", ans->used, ans->suffix);
		if (how == PICK_FRESH) {
			err =
			    put_new(ans->to_dir, cname, ans->companion, ans->companion_len, -1, m);
			if (err == RETE_EEXIST)
				goto name_taken;
			if (err != RETE_OK)
				goto fail;
		}
		if (s.is_orig && how != PICK_DONE) {
			/* The file itself: link (no overwrite), or a copy across
			 * file systems from the descriptor whose content was
			 * checked. */
			if (link(from, upath) == 0) {
				if (!same_inode(upath, &s.st)) {
					/* replaced between the check and the link:
					 * take our link back, look again */
					unlink(upath);
					if (how == PICK_FRESH)
						unlink(cpath);
					src_close(&s);
					continue;
				}
			} else if ((errno == EXDEV || errno == EPERM) && s.regular) {
				/* EXDEV: another file system; EPERM: a file of another
				 * user where protected_hardlinks forbids the link */
				err = put_new(ans->to_dir, ans->used, NULL, 0, s.fd, m);
			} else if (errno == EEXIST) {
				err = RETE_EEXIST;
			} else if (errno == ENOENT) {
				src_close(&s); /* gone meanwhile: look again */
				continue;
			} else {
				err = rete_msg_set(m, RETE_EIO, "%s -> %s: %s", from, upath,
						   strerror(errno));
			}
			if (err == RETE_EEXIST) {
				/* someone took the name: our companion goes */
				if (how == PICK_FRESH)
					unlink(cpath);
				goto name_taken;
			}
			if (err != RETE_OK)
				goto fail;
		}
		if (!s.is_orig) {
			ans->replaced = s.exists;
			ans->gone = !s.exists;
			char *made = NULL;
			size_t mlen = 0;
			const void *fb = ans->fallback;
			size_t flen = ans->fallback_len;
			if (fb == NULL && ans->fallback_fn != NULL &&
			    ans->fallback_fn(ans->fallback_user, &made, &mlen) == RETE_OK) {
				fb = made;
				flen = mlen;
			}
			if (fb != NULL)
				err = put_new(ans->to_dir, ans->used, fb, flen, -1, m);
			free(made);
			if (err == RETE_EEXIST) {
				unlink(cpath);
				goto name_taken;
			}
			if (err != RETE_OK)
				goto fail;
		}
		if ((err = agent_spool_fsync_dir(ans->to_dir, m)) != RETE_OK)
			goto fail;
		/* The source leaves outbox/ only while it is still the inode we
		 * checked: a file renamed over it meanwhile stays, a new file. */
		if (s.is_orig && s.exists) {
			if (same_inode(from, &s.st)) {
				if (unlink(from) != 0 && errno != ENOENT) {
					err = rete_msg_set(m, RETE_EIO, "%s: %s", from,
							   strerror(errno));
					goto fail;
				}
			} else {
				ans->replaced = true;
			}
		}
		src_close(&s);
		return agent_spool_fsync_dir(ans->from_dir, m);
	name_taken:
		/* someone took USED (or its companion) meanwhile: the next name */
		src_close(&s);
		k++;
		continue;
	fail:
		src_close(&s);
		return err;
	}
	return rete_msg_set(m, RETE_EIO,
			    "%s: cannot answer in %s: its names kept changing while the agent "
			    "wrote there",
			    ans->name, ans->to_dir);
}

/* sweep_ours: a temporary name of this agent: ".rete-PID-N.tmp". */
static bool sweep_ours(const char *name)
{
	const char *p = name + 6;
	size_t len = strlen(name);
	if (strncmp(name, ".rete-", 6) != 0 || len < 12 || strcmp(name + len - 4, ".tmp") != 0)
		return false;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p++ != '-' || *p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	return strcmp(p, ".tmp") == 0;
}

/* sweep_old_inbox: the temporary name an older agent gave an inbox file:
 * ".<12 digits>[.<8 hex>]-<kind>.json.<pid>.tmp". */
static bool sweep_old_inbox(const char *name)
{
	const char *p = name + 1;
	if (name[0] != '.')
		return false;
	for (int i = 0; i < 12; i++, p++)
		if (*p < '0' || *p > '9')
			return false;
	if (*p == '.') {
		p++;
		for (int i = 0; i < 8; i++, p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
				return false;
	}
	if (*p++ != '-')
		return false;
	if (*p < 'a' || *p > 'z')
		return false;
	while (*p >= 'a' && *p <= 'z')
		p++;
	if (strncmp(p, ".json.", 6) != 0)
		return false;
	p += 6;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	return strcmp(p, ".tmp") == 0;
}

size_t agent_spool_sweep(const char *dir, bool inbox)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if ((sweep_ours(e->d_name) || (inbox && sweep_old_inbox(e->d_name))) &&
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}
