/* agent_spool.c — see agent_spool.h. */
#include "agent_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

bool agent_spool_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 200 || name[0] == '.' || strchr(name, '/') != NULL)
		return false;
	if (n >= 4 && strcmp(name + n - 4, ".tmp") == 0)
		return false;
	return true;
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

rete_err agent_spool_list(const char *dir, char ***names, size_t *count, rete_msg *m)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0, cap = 0;

	*names = NULL;
	*count = 0;
	if (d == NULL)
		return rete_msg_set(m, RETE_EIO, "%s: cannot read the folder: %s", dir,
				    strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (!agent_spool_name_ok(e->d_name))
			continue;
		if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
			continue;
		if (e->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
			    !S_ISREG(st.st_mode))
				continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nv = realloc(v, nc * sizeof(*v));
			if (nv == NULL)
				goto nomem;
			v = nv;
			cap = nc;
		}
		if ((v[n] = strdup(e->d_name)) == NULL)
			goto nomem;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), name_cmp);
	*names = v;
	*count = n;
	return RETE_OK;
nomem:
	closedir(d);
	agent_spool_list_free(v, n);
	return rete_msg_set(m, RETE_ENOMEM, "out of memory");
}

rete_err agent_spool_read(const char *dir, const char *name, size_t max, char **data, size_t *len,
			  rete_msg *m)
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
	*data = buf;
	*len = got;
	return RETE_OK;
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

rete_err agent_spool_write(const char *dir, const char *name, const void *data, size_t len,
			   rete_msg *m)
{
	char tmp[4096], path[4096];
	const char *p = data;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, name, (long)getpid());
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "%s: %s", tmp, strerror(errno));
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

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

rete_err agent_spool_free_name(const char *from_dir, const char *name, const char *to_dir,
			       char *used, size_t n, rete_msg *m)
{
	char from[4096], to[4096];
	struct stat st;

	snprintf(from, sizeof(from), "%s/%s", from_dir, name);
	for (unsigned k = 1; k < 100000; k++) {
		if (k == 1)
			snprintf(used, n, "%s", name);
		else
			snprintf(used, n, "%s.%u", name, k);
		snprintf(to, sizeof(to), "%s/%s", to_dir, used);
		if (lstat(to, &st) != 0) {
			if (errno == ENOENT)
				return RETE_OK;
			return rete_msg_set(m, RETE_EIO, "%s: %s", to, strerror(errno));
		}
		if (same_file(from, to))
			return RETE_OK;
	}
	return rete_msg_set(m, RETE_EIO, "%s: no free name in %s", name, to_dir);
}

rete_err agent_spool_move(const char *from_dir, const char *name, const char *to_dir,
			  const char *used, rete_msg *m)
{
	char from[4096], to[4096];
	rete_err err;

	snprintf(from, sizeof(from), "%s/%s", from_dir, name);
	snprintf(to, sizeof(to), "%s/%s", to_dir, used);
	/* link + unlink never overwrites what is there (rename would). */
	if (link(from, to) != 0) {
		if (errno == ENOENT)
			return rete_msg_set(m, RETE_ENOENT, "%s: has gone", from);
		if (errno != EEXIST)
			return rete_msg_set(m, RETE_EIO, "%s -> %s: %s", from, to, strerror(errno));
		if (!same_file(from, to))
			return rete_msg_set(m, RETE_EEXIST, "%s: already exists", to);
	}
	if ((err = agent_spool_fsync_dir(to_dir, m)) != RETE_OK)
		return err;
	if (unlink(from) != 0 && errno != ENOENT)
		return rete_msg_set(m, RETE_EIO, "%s: %s", from, strerror(errno));
	return agent_spool_fsync_dir(from_dir, m);
}
