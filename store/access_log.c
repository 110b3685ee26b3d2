/* access_log.c — see access_log.h. */
#define _GNU_SOURCE
#include "access_log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "duration.h"
#include "json.h"

/* How often a long-running writer looks for lines past the retention. */
#define PRUNE_EVERY_MS (3600 * 1000)

/* A part closed at time T is PATH.YYYYMMDDTHHMMSSmmmZ (T in UTC, 19
 * characters), with -N after it for a second part closed in the same
 * millisecond. */
#define SEG_STAMP_LEN 19

struct rete_access_log {
	char *al_path;
	rete_keep al_keep;
	bool al_sync;
	int64_t al_pruned_at; /* when the lines were last looked at (ms) */
	int64_t al_segment;   /* close the file at this size (0: never) */
};

rete_err rete_keep_parse(const char *s, rete_keep *out, rete_msg *m)
{
	static const char accepted[] = "e.g. 24mo (calendar months), 2y, 30d, 12h, or forever";
	rete_duration d;
	memset(out, 0, sizeof(*out));
	if (s == NULL || *s == '\0')
		return rete_msg_set(m, RETE_EINVAL, "retention is empty; write %s", accepted);
	if (strcmp(s, "forever") == 0)
		return RETE_OK;
	const char *p = s;
	long n = 0;
	while (isdigit((unsigned char)*p) && n < 100000)
		n = n * 10 + (*p++ - '0');
	if (p != s && n > 0 && n <= 1200 && (strcmp(p, "mo") == 0 || strcmp(p, "y") == 0)) {
		out->months = (int)(p[0] == 'y' ? n * 12 : n);
		if (out->months <= 1200)
			return RETE_OK;
	}
	if (rete_duration_parse(s, &d, NULL) == RETE_OK && d.working_days == 0 && d.ms > 0) {
		out->months = 0;
		out->ms = d.ms;
		return RETE_OK;
	}
	out->months = 0;
	return rete_msg_set(m, RETE_EINVAL, "retention '%s' is not accepted; write %s", s,
			    accepted);
}

int64_t rete_keep_cutoff(rete_keep keep, int64_t now_ms)
{
	if (keep.months <= 0 && keep.ms <= 0)
		return INT64_MIN;
	if (keep.months <= 0)
		return now_ms - keep.ms;
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	int total = tm.tm_year * 12 + tm.tm_mon - keep.months;
	tm.tm_year = total / 12;
	tm.tm_mon = total % 12;
	if (tm.tm_mon < 0) {
		tm.tm_mon += 12;
		tm.tm_year--;
	}
	int y = tm.tm_year + 1900;
	int last =
	    mdays[tm.tm_mon] + (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	if (tm.tm_mday > last)
		tm.tm_mday = last;
	return (int64_t)timegm(&tm) * 1000 + now_ms % 1000;
}

char *rete_keep_format(rete_keep keep, char *buf, size_t n)
{
	if (keep.months > 0)
		snprintf(buf, n, "%d month%s", keep.months, keep.months == 1 ? "" : "s");
	else if (keep.ms <= 0)
		snprintf(buf, n, "forever");
	else if (keep.ms % 86400000 == 0)
		snprintf(buf, n, "%lld day%s", (long long)(keep.ms / 86400000),
			 keep.ms == 86400000 ? "" : "s");
	else if (keep.ms % 3600000 == 0)
		snprintf(buf, n, "%lld hour(s)", (long long)(keep.ms / 3600000));
	else
		snprintf(buf, n, "%lld second(s)", (long long)(keep.ms / 1000));
	return buf;
}

static int al_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void al_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* al_mkdirs makes the folders above path (0700), like mkdir -p. */
static void al_mkdirs(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(dir, 0700);
		*p = '/';
	}
}

/* al_lock opens path for appending (creating it) and takes its exclusive
 * lock; when the file was replaced by a prune between open and lock, it
 * opens the new one. Returns the descriptor, or -1 with errno. */
static int al_lock(const char *path)
{
	for (int tries = 0; tries < 100; tries++) {
		int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX) != 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return fd;
		close(fd); /* replaced under us: take the new file */
	}
	errno = EAGAIN;
	return -1;
}

/* al_line_time: the "at" of one line, or false when it does not parse. */
static bool al_line_time(const char *line, size_t len, int64_t *at)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	const char *s = o ? json_string_value(json_object_get(o, "at")) : NULL;
	bool ok = s != NULL && rete_time_parse(s, at) == RETE_OK;
	json_decref(o);
	return ok;
}

/* al_time24 writes ms as "2026-12-06T09:00:00.000Z" (always 24
 * characters, the milliseconds too; false outside the years 0-9999). */
static bool al_time24(int64_t ms, char out[32])
{
	struct tm tm;
	time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return false;
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)t * 1000));
	return strlen(out) == 24;
}

/* al_stamp writes the name part of a segment closed at ms. */
static void al_stamp(int64_t ms, char out[SEG_STAMP_LEN + 1])
{
	char t[32];
	size_t k = 0;
	if (!al_time24(ms, t))
		snprintf(t, sizeof(t), "0000-01-01T00:00:00.000Z");
	for (const char *p = t; *p != '\0' && k < SEG_STAMP_LEN; p++)
		if (isdigit((unsigned char)*p) || *p == 'T' || *p == 'Z')
			out[k++] = *p;
	out[k] = '\0';
}

/* al_stamp_time: the time a segment's name part s says it was closed;
 * false when s is not one. */
static bool al_stamp_time(const char *s, int64_t *ms)
{
	for (int i = 0; i < SEG_STAMP_LEN; i++) {
		bool ok = i == 8    ? s[i] == 'T'
			  : i == 18 ? s[i] == 'Z'
				    : isdigit((unsigned char)s[i]);
		if (!ok)
			return false;
	}
	for (const char *p = s + SEG_STAMP_LEN; *p != '\0'; p++)
		if (!(p == s + SEG_STAMP_LEN ? *p == '-' : isdigit((unsigned char)*p)))
			return false;
	char t[32];
	snprintf(t, sizeof(t), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2s.%.3sZ", s, s + 4, s + 6, s + 9,
		 s + 11, s + 13, s + 15);
	return rete_time_parse(t, ms) == RETE_OK;
}

/* al_segments lists the closed parts of the record at path, oldest first
 * (*out: malloc'd full paths, *n of them; the caller frees them with
 * al_free_list). */
static void al_segments(const char *path, char ***out, size_t *n)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t bl = strlen(base), cap = 0;
	int64_t ms;
	*out = NULL;
	*n = 0;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		if (strncmp(name, base, bl) != 0 || name[bl] != '.' ||
		    !al_stamp_time(name + bl + 1, &ms))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			char **grown = realloc(*out, cap * sizeof(**out));
			if (grown == NULL)
				break;
			*out = grown;
		}
		/* PATH.STAMP: the record's own path and the name's tail */
		size_t need = strlen(path) + strlen(name + bl) + 1;
		if (((*out)[*n] = malloc(need)) == NULL)
			break;
		snprintf((*out)[*n], need, "%s%s", path, name + bl);
		(*n)++;
	}
	if (d != NULL)
		closedir(d);
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), al_cmp);
}

rete_err rete_access_log_parts(const char *path, int64_t since_ms, char ***out, size_t *n)
{
	size_t pl = strlen(path), k = 0;
	al_segments(path, out, n);
	for (size_t i = 0; i < *n; i++) {
		int64_t ms;
		/* (*out)[i] is PATH.STAMP: a part closed before since_ms holds
		 * nothing newer */
		if (al_stamp_time((*out)[i] + pl + 1, &ms) && ms >= since_ms)
			(*out)[k++] = (*out)[i];
		else
			free((*out)[i]);
	}
	*n = k;
	return RETE_OK;
}

void rete_access_log_parts_free(char **list, size_t n)
{
	al_free_list(list, n);
}

/* al_line_old: is the line older than cutoff (cut: cutoff in the form
 * below, al_time24; NULL when it has none)? A line
 * that does not parse is not (kept). The lines this file writes begin with
 * their time, UTC, mostly in one fixed form
 * ("{\"at\":\"2026-12-06T09:00:00.123Z\",", 24 characters) whose order
 * is the order of the times: a line of that form is compared as text,
 * without parsing its JSON (1 M lines: 3.3 s of CPU before); any other
 * line (a time at a whole second is written without ".000", and lines of
 * other writers) is parsed. */
static bool al_line_old(const char *line, size_t len, int64_t cutoff, const char *cut)
{
	static const char head[] = "{\"at\":\"";
	size_t hl = sizeof(head) - 1;
	if (cut != NULL && len > hl + 26 && memcmp(line, head, hl) == 0) {
		const char *t = line + hl;
		bool form = t[24] == '"' && t[23] == 'Z' && t[4] == '-' && t[7] == '-' &&
			    t[10] == 'T' && t[13] == ':' && t[16] == ':' && t[19] == '.';
		for (int i = 0; form && i < 23; i++)
			if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19)
				form = t[i] >= '0' && t[i] <= '9';
		size_t end = line[len - 1] == '\n' ? len - 1 : len;
		if (form && end > 0 && line[end - 1] == '}')
			return memcmp(t, cut, 24) < 0;
	}
	int64_t at;
	return al_line_time(line, len, &at) && at < cutoff;
}

/* al_rewrite rewrites the file at path without the lines older than
 * cutoff; the caller holds the lock on the record's descriptor. Two
 * passes: the first counts the old lines (most calls find none and write
 * nothing), the second copies the kept ones into PATH.tmp, which then
 * replaces the file. */
static rete_err al_rewrite(const char *path, int64_t cutoff, size_t *dropped, rete_msg *m)
{
	FILE *in = fopen(path, "re");
	if (in == NULL)
		return errno == ENOENT ? RETE_OK
				       : rete_msg_set(m, RETE_EIO, "%s: cannot read: %s", path,
						      strerror(errno));
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *out = NULL;
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;
	rete_err err = RETE_OK;
	char cutbuf[32];
	const char *cut = al_time24(cutoff, cutbuf) ? cutbuf : NULL;
	while ((len = getline(&line, &cap, in)) > 0)
		if (al_line_old(line, (size_t)len, cutoff, cut))
			n++;
	if (n > 0) {
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		out = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (out == NULL) {
			if (fd >= 0)
				close(fd);
			err = rete_msg_set(m, RETE_EIO, "%s: cannot create: %s", tmp,
					   strerror(errno));
		}
		rewind(in);
		while (out != NULL && (len = getline(&line, &cap, in)) > 0) {
			if (al_line_old(line, (size_t)len, cutoff, cut))
				continue;
			if (fwrite(line, 1, (size_t)len, out) != (size_t)len) {
				err = rete_msg_set(m, RETE_EIO, "%s: cannot write: %s", tmp,
						   strerror(errno));
				break;
			}
		}
	}
	free(line);
	fclose(in);
	if (out != NULL) {
		if (err == RETE_OK && (fflush(out) != 0 || fsync(fileno(out)) != 0))
			err =
			    rete_msg_set(m, RETE_EIO, "%s: cannot write: %s", tmp, strerror(errno));
		fclose(out);
		if (err == RETE_OK && rename(tmp, path) != 0)
			err = rete_msg_set(m, RETE_EIO, "%s: cannot replace: %s", path,
					   strerror(errno));
		if (err != RETE_OK)
			unlink(tmp);
	}
	if (dropped != NULL)
		*dropped = err == RETE_OK ? n : 0;
	return err;
}

/* al_count_lines: the lines of the file at path. */
static size_t al_count_lines(const char *path)
{
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = fd >= 0 ? malloc(1 << 20) : NULL;
	ssize_t got;
	while (buf != NULL && (got = read(fd, buf, 1 << 20)) > 0)
		for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))) != NULL; p++)
			n++;
	free(buf);
	if (fd >= 0)
		close(fd);
	return n;
}

/* al_prune_locked drops the lines older than cutoff from the record at
 * path, its closed parts first, oldest first: a part closed before cutoff
 * holds old lines only and is removed whole; the first part closed after
 * it is rewritten without its old lines, and then the newer ones and the
 * file itself hold none (lines are appended in time order). With no part
 * left, the file itself is rewritten. So one prune rewrites at most one
 * file of at most the part size. The caller holds the lock on path's
 * descriptor. */
static rete_err al_prune_locked(const char *path, int64_t cutoff, size_t *dropped, rete_msg *m)
{
	char **segs;
	size_t nseg, total = 0, n = 0, i;
	rete_err err = RETE_OK;
	al_segments(path, &segs, &nseg);
	for (i = 0; i < nseg && err == RETE_OK; i++) {
		int64_t closed;
		if (!al_stamp_time(segs[i] + strlen(path) + 1, &closed))
			continue;
		if (closed < cutoff) {
			n = dropped != NULL ? al_count_lines(segs[i]) : 0;
			if (unlink(segs[i]) != 0 && errno != ENOENT)
				err = rete_msg_set(m, RETE_EIO, "%s: cannot remove: %s", segs[i],
						   strerror(errno));
			else
				total += n;
			continue;
		}
		err = al_rewrite(segs[i], cutoff, &n, m);
		total += n;
		break;
	}
	if (err == RETE_OK && i == nseg) {
		err = al_rewrite(path, cutoff, &n, m);
		total += n;
	}
	al_free_list(segs, nseg);
	if (dropped != NULL)
		*dropped = err == RETE_OK ? total : 0;
	return err;
}

/* al_rotate closes the record at path as a part named after now (the
 * caller holds its lock; the next writer starts a new file, as after a
 * rewrite). A part of that name already there (closed in the same
 * millisecond) is never replaced. */
static void al_rotate(const char *path, int64_t now)
{
	char stamp[SEG_STAMP_LEN + 1], seg[PATH_MAX + 64];
	struct stat st;
	al_stamp(now, stamp);
	for (unsigned k = 1; k < 1000; k++) {
		if (k == 1)
			snprintf(seg, sizeof(seg), "%s.%s", path, stamp);
		else
			snprintf(seg, sizeof(seg), "%s.%s-%u", path, stamp, k);
		if (lstat(seg, &st) == 0 || errno != ENOENT)
			continue;
		rename(path, seg);
		return;
	}
}

/* al_first_time: the time of the file's first line (false when none). */
static bool al_first_time(const char *path, int64_t *at)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len = getline(&line, &cap, f);
	bool ok = len > 0 && al_line_time(line, (size_t)len, at);
	free(line);
	fclose(f);
	return ok;
}

rete_err rete_access_log_prune(const char *path, rete_keep keep, int64_t now_ms, size_t *dropped,
			       rete_msg *m)
{
	if (dropped != NULL)
		*dropped = 0;
	int64_t cutoff = rete_keep_cutoff(keep, now_ms);
	if (cutoff == INT64_MIN)
		return RETE_OK;
	int fd = al_lock(path);
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "%s: cannot open the access record: %s", path,
				    strerror(errno));
	rete_err err = al_prune_locked(path, cutoff, dropped, m);
	close(fd);
	return err;
}

rete_err rete_access_log_open(const char *path, rete_keep keep, bool sync, rete_access_log **out,
			      rete_msg *m)
{
	*out = NULL;
	rete_access_log *l = calloc(1, sizeof(*l));
	if (l == NULL || (l->al_path = strdup(path)) == NULL) {
		free(l);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	l->al_keep = keep;
	l->al_sync = sync;
	l->al_segment = RETE_ACCESS_SEGMENT_DEFAULT;
	al_mkdirs(path);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rete_err e = rete_msg_set(m, RETE_EIO,
					  "%s: cannot open the access record: %s; set "
					  "access_log to a file this program may write",
					  path, strerror(errno));
		rete_access_log_close(&l);
		return e;
	}
	close(fd);
	*out = l;
	return RETE_OK;
}

rete_err rete_access_log_add(rete_access_log *l, const rete_access_rec *r, rete_msg *m)
{
	char at[32];
	if (r->program == NULL || r->what == NULL)
		return rete_msg_set(m, RETE_EINVAL, "an access record needs a program and a what");
	int64_t now = r->at_ms != 0 ? r->at_ms : rete_now_ms();
	json_t *o = json_object();
	if (o == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	json_object_set_new(o, "at", json_string(rete_time_format(now, at)));
	json_object_set_new(o, "program", json_string(r->program));
	if (r->who != NULL)
		json_object_set_new(o, "who", json_string(r->who));
	if (r->party != NULL && r->party[0] != '\0')
		json_object_set_new(o, "party", json_string(r->party));
	json_object_set_new(o, "what", json_string(r->what));
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(o);
	if (text == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	size_t len = strlen(text);
	char *line = realloc(text, len + 2);
	if (line == NULL) {
		free(text);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	line[len++] = '\n';

	rete_err err = RETE_OK;
	int fd = al_lock(l->al_path);
	if (fd < 0) {
		err = rete_msg_set(m, RETE_EIO, "%s: cannot open the access record: %s", l->al_path,
				   strerror(errno));
		goto out;
	}
	/* Now and then, and at the first append, drop what is past the
	 * retention: the first line of the oldest part (or of the file) is
	 * the oldest, so a record whose first line is recent needs nothing. */
	int64_t cutoff = rete_keep_cutoff(l->al_keep, now);
	if (cutoff != INT64_MIN &&
	    (l->al_pruned_at == 0 || now - l->al_pruned_at >= PRUNE_EVERY_MS)) {
		int64_t first;
		char **segs;
		size_t nseg;
		l->al_pruned_at = now;
		al_segments(l->al_path, &segs, &nseg);
		bool old = al_first_time(nseg > 0 ? segs[0] : l->al_path, &first) && first < cutoff;
		al_free_list(segs, nseg);
		if (old) {
			rete_msg sub;
			if (al_prune_locked(l->al_path, cutoff, NULL, &sub) == RETE_OK) {
				close(fd);
				fd = al_lock(l->al_path); /* the new file */
				if (fd < 0) {
					err = rete_msg_set(m, RETE_EIO,
							   "%s: cannot open the access record: %s",
							   l->al_path, strerror(errno));
					goto out;
				}
			}
		}
	}
	/* a line a crash cut short is ended first, so this one stays whole */
	struct stat st = {0};
	char last = '\n';
	if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 &&
	    last != '\n' && write(fd, "\n", 1) != 1) {
		err = rete_msg_set(m, RETE_EIO, "%s: cannot append to the access record: %s",
				   l->al_path, strerror(errno));
		close(fd);
		goto out;
	}
	ssize_t w = write(fd, line, len);
	if (w != (ssize_t)len)
		err = rete_msg_set(m, RETE_EIO, "%s: cannot append to the access record: %s",
				   l->al_path, w < 0 ? strerror(errno) : "short write");
	else if (l->al_sync && fdatasync(fd) != 0)
		err = rete_msg_set(m, RETE_EIO, "%s: cannot sync the access record: %s", l->al_path,
				   strerror(errno));
	/* a full file is closed as a part: a prune then rewrites at most one
	 * part, and drops the older ones whole */
	if (err == RETE_OK && l->al_segment > 0 && st.st_size + (off_t)len >= l->al_segment)
		al_rotate(l->al_path, now);
	close(fd);
out:
	free(line);
	return err;
}

void rete_access_log_set_segment(rete_access_log *l, int64_t bytes)
{
	l->al_segment = bytes > 0 ? bytes : 0;
}

void rete_access_log_close(rete_access_log **l)
{
	if (l == NULL || *l == NULL)
		return;
	free((*l)->al_path);
	free(*l);
	*l = NULL;
}

rete_err rete_access_record(const char *path, rete_keep keep, const rete_access_rec *r, rete_msg *m)
{
	rete_access_log *l = NULL;
	rete_err err = rete_access_log_open(path, keep, true, &l, m);
	if (err == RETE_OK)
		err = rete_access_log_add(l, r, m);
	rete_access_log_close(&l);
	return err;
}
