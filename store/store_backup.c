/* store_backup.c — hot, compacted backups: a consistent copy of one read
 * snapshot (LMDB's mdb_env_copy2 with MDB_CP_COMPACT) while the writer
 * keeps appending. */
#include "store_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* prepare_dest makes dest an empty folder (creating it if missing). */
static rete_err prepare_dest(const char *dest, rete_msg *m)
{
	struct stat st;
	DIR *d;
	struct dirent *e;

	if (dest == NULL || *dest == '\0')
		return rete_msg_set(m, RETE_EINVAL, "backup: no destination folder given");
	if (stat(dest, &st) != 0) {
		if (errno != ENOENT)
			return rete_msg_set(m, RETE_EIO, "backup: %s: %s", dest, strerror(errno));
		if (mkdir(dest, 0700) != 0)
			return rete_msg_set(m, errno == EACCES ? RETE_EPERM : RETE_EIO,
					    "backup: cannot create %s: %s", dest, strerror(errno));
		return RETE_OK;
	}
	if (!S_ISDIR(st.st_mode))
		return rete_msg_set(m, RETE_EEXIST, "backup: %s exists and is not a folder", dest);
	if ((d = opendir(dest)) == NULL)
		return rete_msg_set(m, RETE_EIO, "backup: %s: %s", dest, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			rete_msg_set(m, RETE_EEXIST,
				     "backup: %s is not empty (it holds %s); give a new or empty "
				     "folder",
				     dest, e->d_name);
			closedir(d);
			return RETE_EEXIST;
		}
	}
	closedir(d);
	return RETE_OK;
}

/* sync_dest makes the copy durable: the data file, then its folder (the
 * copy itself is written without fsync). Returns 0 or an errno value. */
static int sync_dest(const char *dest)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/data.mdb", dest);
	if ((fd = open(path, O_RDONLY)) < 0)
		return errno;
	if (fsync(fd) != 0)
		rc = errno;
	close(fd);
	if (rc == 0 && (fd = open(dest, O_RDONLY | O_DIRECTORY)) >= 0) {
		if (fsync(fd) != 0)
			rc = errno;
		close(fd);
	}
	return rc;
}

rete_err rete_store_backup_to(rete_store *s, const char *dest_dir, rete_msg *m)
{
	char path[PATH_MAX];
	rete_err err;
	int rc;

	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "backup: no store given");
	if ((err = prepare_dest(dest_dir, m)) != RETE_OK)
		return err;
	/* The copy runs its own read transaction: hold st_grow like any
	 * reader so the map is not resized under it. */
	pthread_rwlock_rdlock(&s->st_grow);
	if (s->st_env == NULL) {
		pthread_rwlock_unlock(&s->st_grow);
		return rete_msg_set(m, RETE_ESTORE, "backup: store %s is closed", s->st_dir);
	}
	rc = mdb_env_copy2(s->st_env, dest_dir, MDB_CP_COMPACT);
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&s->st_grow);
		pthread_rwlock_wrlock(&s->st_grow);
		mdb_env_set_mapsize(s->st_env, 0);
		pthread_rwlock_unlock(&s->st_grow);
		pthread_rwlock_rdlock(&s->st_grow);
		rc = mdb_env_copy2(s->st_env, dest_dir, MDB_CP_COMPACT);
	}
	pthread_rwlock_unlock(&s->st_grow);
	if (rc == 0)
		rc = sync_dest(dest_dir);
	if (rc != 0) {
		char what[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/data.mdb", dest_dir);
		unlink(path);
		snprintf(what, sizeof(what), "backup of %s into %s", s->st_dir, dest_dir);
		return store_lmdb_err(m, rc, what);
	}
	return RETE_OK;
}

rete_err rete_store_backup(const char *src_dir, const char *dest_dir, rete_msg *m)
{
	rete_store *s = NULL;
	rete_err err;

	if ((err = prepare_dest(dest_dir, m)) != RETE_OK)
		return err;
	if ((err = rete_store_open(&s, src_dir, RETE_STORE_RDONLY, m)) != RETE_OK)
		return err;
	err = rete_store_backup_to(s, dest_dir, m);
	rete_store_close(&s);
	return err;
}
