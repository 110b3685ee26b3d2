/* store_backup.c — hot, compacted backups: a consistent copy of one read
 * snapshot (LMDB's mdb_env_copy2 with MDB_CP_COMPACT) while the writer
 * keeps appending, marked as a copy (meta "copy", store_identity.h) before
 * it is put in place. */
#include "store_impl.h"
#include "duration.h"
#include "store_identity.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* make_parents creates the missing folders above dest, each 0700: a copy
 * of the log (with the sealed parts not yet delivered) is for the broker's
 * operator alone, and so is a folder made to hold it; folders that exist
 * keep their mode. Returns 0 or an errno, with the folder at fault in bad. */
static int make_parents(const char *dest, char *bad, size_t badlen)
{
	char path[PATH_MAX];
	size_t n = strlen(dest);

	if (n >= sizeof(path))
		return ENAMETOOLONG;
	memcpy(path, dest, n + 1);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	/* every prefix ending before a '/', from the top down */
	for (size_t i = 1; i < n; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			int err = errno;
			snprintf(bad, badlen, "%s", path);
			return err;
		}
		path[i] = '/';
	}
	return 0;
}

/* The copy is made in DEST/PARTIAL_DIR and marked there; only a marked copy
 * is renamed to DEST/data.mdb. A crash in between leaves that folder (and
 * no data.mdb): never a copy without its mark, which a broker would take
 * for the store it last served. */
#define PARTIAL_DIR ".rete-backup-partial"

/* prepare_dest makes dest an empty folder (creating it and its missing
 * parents, 0700, if missing). */
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
		char bad[PATH_MAX];
		int err = make_parents(dest, bad, sizeof(bad));
		if (err != 0)
			return rete_msg_set(m, err == EACCES ? RETE_EPERM : RETE_EIO,
					    "backup: cannot create the folder %s (to hold %s): %s",
					    err == ENAMETOOLONG ? dest : bad, dest, strerror(err));
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
		if (strcmp(e->d_name, PARTIAL_DIR) == 0) {
			rete_msg_set(m, RETE_EEXIST,
				     "backup: %s holds %s, the leftover of an interrupted rete "
				     "store backup (no copy was made there): remove it (rm -r "
				     "%s/%s) and run the backup again, or give a new or empty "
				     "folder",
				     dest, PARTIAL_DIR, dest, PARTIAL_DIR);
			closedir(d);
			return RETE_EEXIST;
		}
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

/* fsync_path fsyncs the file or folder at path. Returns 0 or an errno. */
static int fsync_path(const char *path, bool dir)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0)), rc = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) != 0)
		rc = errno;
	close(fd);
	return rc;
}

/* partial_remove removes what a copy left in its partial folder. */
static void partial_remove(const char *part)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/data.mdb", part);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", part);
	unlink(path);
	rmdir(part);
}

/* mark_copy marks the copy in part as a copy of src (the folder the mark
 * records): a copy of a copy keeps the mark it has, since it holds the log
 * as of that first copy. *out gets the mark in force, *was_copy whether it
 * was there already. */
static rete_err mark_copy(const char *part, const char *src, rete_store_copy_mark *out,
			  bool *was_copy, rete_msg *m)
{
	rete_store *c = NULL;
	rete_store_identity id;
	rete_err err;

	if ((err = rete_store_open(&c, part, 0, m)) != RETE_OK)
		return err;
	err = rete_store_copy_mark_get(c, NULL, out, was_copy, m);
	if (err == RETE_OK && !*was_copy &&
	    (err = rete_store_identity_get(c, NULL, &id, m)) == RETE_OK) {
		out->size = id.size;
		out->epoch = id.epoch;
		out->made_at_ms = rete_now_ms();
		/* the folder as an absolute path: the sentence that names it
		 * is read elsewhere, later */
		char abs[PATH_MAX];
		snprintf(out->source, sizeof(out->source), "%s",
			 realpath(src, abs) != NULL ? abs : src);
		err = rete_store_copy_mark_put(c, out, m);
	}
	rete_store_close(&c);
	return err;
}

rete_err rete_store_backup_mark(rete_store *s, const char *dest_dir, rete_store_copy_mark *mark,
				bool *was_copy, rete_msg *m)
{
	char part[PATH_MAX], path[PATH_MAX], what[PATH_MAX + 64];
	rete_store_copy_mark scratch;
	bool scratch_copy;
	rete_err err;
	int rc;

	if (mark == NULL)
		mark = &scratch;
	if (was_copy == NULL)
		was_copy = &scratch_copy;
	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "backup: no store given");
	if ((err = prepare_dest(dest_dir, m)) != RETE_OK)
		return err;
	/* A batch receipted from the journal and not yet in data.mdb would be
	 * missing from the copy. With no broker on the store (its lock free)
	 * the journal stays as it is: such a batch (a crash before LMDB's
	 * commit) refuses, and the start takes it in. With a broker running,
	 * a batch there is in flight (durable in the live store, in data.mdb a
	 * moment later): the copy is the log as of its read transaction, as
	 * any copy of a live store. */
	unsigned ahead = 0;
	uint64_t to = 0;
	if (!rete_store_served(s->st_dir) &&
	    rete_store_journal_state(s, false, false, &ahead, &to, NULL) == RETE_OK && ahead > 0)
		return rete_msg_set(
		    m, RETE_ESTORE,
		    "backup: the journal of %s holds %u receipted batch(es) (the log up to %llu "
		    "entries) that its data.mdb does not hold yet (the broker stopped before "
		    "LMDB's commit): a copy would leave them out. Start the broker once (it "
		    "takes them in at its start), then back up again; no copy was made in %s",
		    s->st_dir, ahead, (unsigned long long)to, dest_dir);
	if (snprintf(part, sizeof(part), "%s/" PARTIAL_DIR, dest_dir) >= (int)sizeof(part))
		return rete_msg_set(m, RETE_EINVAL, "backup: %s: folder name too long", dest_dir);
	if (mkdir(part, 0700) != 0)
		return rete_msg_set(m, errno == EACCES ? RETE_EPERM : RETE_EIO,
				    "backup: cannot create %s: %s", part, strerror(errno));
	/* The copy runs its own read transaction: hold st_grow like any
	 * reader so the map is not resized under it. */
	pthread_rwlock_rdlock(&s->st_grow);
	if (s->st_env == NULL) {
		pthread_rwlock_unlock(&s->st_grow);
		partial_remove(part);
		return rete_msg_set(m, RETE_ESTORE, "backup: store %s is closed", s->st_dir);
	}
	rc = mdb_env_copy2(s->st_env, part, MDB_CP_COMPACT);
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&s->st_grow);
		pthread_rwlock_wrlock(&s->st_grow);
		mdb_env_set_mapsize(s->st_env, 0);
		pthread_rwlock_unlock(&s->st_grow);
		pthread_rwlock_rdlock(&s->st_grow);
		rc = mdb_env_copy2(s->st_env, part, MDB_CP_COMPACT);
	}
	pthread_rwlock_unlock(&s->st_grow);
	if (rc != 0) {
		partial_remove(part);
		snprintf(what, sizeof(what), "backup of %s into %s", s->st_dir, dest_dir);
		return store_lmdb_err(m, rc, what);
	}
	/* LMDB creates the copy 0666 less the umask; it holds the whole log
	 * (and the sealed parts not yet delivered): 0600, as the store */
	snprintf(path, sizeof(path), "%s/data.mdb", part);
	if (chmod(path, 0600) != 0) {
		int cerr = errno;
		partial_remove(part);
		return rete_msg_set(m, RETE_EIO, "backup: cannot set mode 0600 on %s: %s", path,
				    strerror(cerr));
	}
	/* the mark is written with a durable commit, which also makes the
	 * copied pages durable (LMDB syncs the whole file) */
	if ((err = mark_copy(part, s->st_dir, mark, was_copy, m)) != RETE_OK) {
		partial_remove(part);
		return err;
	}
	snprintf(path, sizeof(path), "%s/data.mdb", part);
	snprintf(what, sizeof(what), "%s/data.mdb", dest_dir);
	rc = fsync_path(path, false);
	if (rc == 0 && rename(path, what) != 0)
		rc = errno;
	if (rc == 0)
		rc = fsync_path(dest_dir, true);
	partial_remove(part);
	if (rc != 0) {
		unlink(what);
		return rete_msg_set(m, rc == ENOSPC ? RETE_EFULL : RETE_EIO,
				    "backup: cannot put the copy in place as %s: %s", what,
				    strerror(rc));
	}
	return RETE_OK;
}

rete_err rete_store_backup_to(rete_store *s, const char *dest_dir, rete_msg *m)
{
	return rete_store_backup_mark(s, dest_dir, NULL, NULL, m);
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
