/* store_identity.c — the log's identity in meta, the writer's lock and the
 * broker's state file (store_identity.h). */
#include "store_impl.h"
#include "store_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* meta_get: *v = meta[key]; false when absent. */
static rete_err meta_get(rete_store *s, MDB_txn *txn, const char *key, MDB_val *v, bool *found,
			 rete_msg *m)
{
	MDB_val k = {strlen(key), (void *)key};
	int rc = mdb_get(txn, s->st_meta, &k, v);

	*found = rc == 0;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_lmdb_err(m, rc, "store: reading the log's identity");
	return RETE_OK;
}

static rete_err bad_record(rete_store *s, const char *key, size_t len, rete_msg *m)
{
	return rete_msg_set(m, RETE_ECORRUPT,
			    "store %s: meta '%s' is %zu bytes long; the store is damaged",
			    s->st_dir, key, len);
}

static rete_err identity_read(rete_store *s, MDB_txn *txn, rete_store_identity *id, rete_msg *m)
{
	MDB_val v;
	bool found;
	rete_err err;

	memset(id, 0, sizeof(*id));
	id->epoch = 1;
	if ((err = meta_get(s, txn, META_SCHEMA, &v, &found, m)) != RETE_OK)
		return err;
	id->schema = found && v.mv_size == 4 ? be32_get(v.mv_data) : RETE_STORE_SCHEMA_V1;
	if ((err = meta_get(s, txn, META_ORIGIN, &v, &found, m)) != RETE_OK)
		return err;
	if (found) {
		if (v.mv_size == 0 || v.mv_size > RETE_ORIGIN_MAX)
			return bad_record(s, META_ORIGIN, v.mv_size, m);
		memcpy(id->origin, v.mv_data, v.mv_size);
		id->origin[v.mv_size] = '\0';
		if ((err = meta_get(s, txn, META_KEY, &v, &found, m)) != RETE_OK)
			return err;
		if (!found || v.mv_size != RETE_PK_LEN)
			return bad_record(s, META_KEY, found ? v.mv_size : 0, m);
		memcpy(id->broker_key, v.mv_data, RETE_PK_LEN);
		id->recorded = true;
	}
	if ((err = meta_get(s, txn, META_FIRST, &v, &found, m)) != RETE_OK)
		return err;
	if (found) {
		if (v.mv_size != RETE_MERKLE_HASH)
			return bad_record(s, META_FIRST, v.mv_size, m);
		memcpy(id->first_entry, v.mv_data, RETE_MERKLE_HASH);
		id->have_first = true;
	}
	if ((err = meta_get(s, txn, META_EPOCH, &v, &found, m)) != RETE_OK)
		return err;
	if (found) {
		if (v.mv_size != 4 || be32_get(v.mv_data) == 0)
			return bad_record(s, META_EPOCH, v.mv_size, m);
		id->epoch = be32_get(v.mv_data);
	}
	return store_log_size(s, txn, &id->size, m);
}

rete_err rete_store_identity_get(rete_store *s, rete_store_rtxn *rt, rete_store_identity *out,
				 rete_msg *m)
{
	MDB_txn *txn;
	bool own;
	rete_err err = store_rt_get(s, rt, &txn, &own, m);

	if (err != RETE_OK)
		return err;
	err = identity_read(s, txn, out, m);
	if (own)
		store_txn_done(s, txn);
	return err;
}

static void key_b64(char out[64], const uint8_t pk[RETE_PK_LEN])
{
	sodium_bin2base64(out, 64, pk, RETE_PK_LEN, sodium_base64_VARIANT_ORIGINAL);
}

/* identity_write records origin and key (and schema 2, and the first
 * entry's hash when the log has one and it is not recorded yet). */
static rete_err identity_write(rete_store *s, const char *origin, const rete_pubkey *key,
			       const rete_store_identity *id, rete_msg *m)
{
	uint8_t schema[4], first[RETE_MERKLE_HASH];
	store_meta_kv kv[4] = {{META_ORIGIN, origin, strlen(origin)},
			       {META_KEY, key->ed, RETE_PK_LEN},
			       {META_SCHEMA, schema, 4}};
	size_t n = 3;
	rete_err err;

	be32_put(schema, RETE_STORE_SCHEMA);
	if (id->size > 0 && !id->have_first) {
		if ((err = rete_store_leaf_hash(s, NULL, 0, first, m)) != RETE_OK)
			return err;
		kv[n++] = (store_meta_kv){META_FIRST, first, RETE_MERKLE_HASH};
	}
	return store_meta_put(s, kv, n, m);
}

rete_err rete_store_identity_init(rete_store *s, const char *origin, const rete_pubkey *key,
				  rete_msg *m)
{
	rete_store_identity id;
	rete_err err = rete_store_identity_get(s, NULL, &id, m);

	if (err != RETE_OK)
		return err;
	/* an --init that stopped before the first entry (say, a port in use)
	 * may be given again */
	if (id.recorded && id.size == 0 && strcmp(id.origin, origin) == 0 &&
	    sodium_memcmp(id.broker_key, key->ed, RETE_PK_LEN) == 0)
		return RETE_OK;
	if (id.recorded || id.size > 0)
		return rete_msg_set(
		    m, RETE_EEXIST,
		    "store %s already holds a log (origin %s, %llu entries); --init "
		    "creates a new log in an empty folder only: start without --init "
		    "to go on with this one",
		    s->st_dir, id.recorded ? id.origin : "not recorded",
		    (unsigned long long)id.size);
	return identity_write(s, origin, key, &id, m);
}

/* adopt_check: a store without identity takes (origin, key) only when its
 * latest checkpoint, if any, is theirs. */
static rete_err adopt_check(rete_store *s, const char *origin, const rete_pubkey *key,
			    const char *config, rete_msg *m)
{
	uint64_t size;
	char *note = NULL;
	rete_msg vm;
	rete_err err = rete_store_checkpoint_latest(s, NULL, &size, &note, m);

	if (err == RETE_ENOENT)
		return RETE_OK;
	if (err != RETE_OK)
		return err;
	err = rete_checkpoint_verify(note, strlen(note), origin, key, NULL, &vm);
	free(note);
	if (err != RETE_OK)
		return rete_msg_set(m, RETE_EINVAL,
				    "store %s records no identity yet, and its latest checkpoint "
				    "(size %llu) is not signed by the key and origin %s names "
				    "(origin %s): %s. Start it with the origin and key it was "
				    "written with",
				    s->st_dir, (unsigned long long)size, config, origin, vm.text);
	return RETE_OK;
}

rete_err rete_store_identity_check(rete_store *s, const char *origin, const rete_pubkey *key,
				   const char *config, bool *adopted, rete_store_identity *out,
				   rete_msg *m)
{
	rete_store_identity id;
	char have64[64], want64[64];
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_err err;

	*adopted = false;
	if ((err = rete_store_identity_get(s, NULL, &id, m)) != RETE_OK)
		return err;
	if (!id.recorded) {
		if (id.size == 0)
			return rete_msg_set(m, RETE_ENOENT,
					    "store %s holds no log yet; to create a new log there, "
					    "start once with --init (rete-broker -c %s --init)",
					    s->st_dir, config);
		if ((err = adopt_check(s, origin, key, config, m)) != RETE_OK ||
		    (err = identity_write(s, origin, key, &id, m)) != RETE_OK ||
		    (err = rete_store_identity_get(s, NULL, &id, m)) != RETE_OK)
			return err;
		*adopted = true;
	}
	if (strcmp(id.origin, origin) != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "store %s holds the log of origin '%s', but %s says origin = "
				    "%s; a log keeps its origin for life: put origin = %s back, or "
				    "start a new log in a new data folder with --init (see "
				    "docs/operations.md, changing the origin or the key)",
				    s->st_dir, id.origin, config, origin, id.origin);
	if (sodium_memcmp(id.broker_key, key->ed, RETE_PK_LEN) != 0) {
		key_b64(have64, id.broker_key);
		key_b64(want64, key->ed);
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "store %s holds a log signed by broker key %s, but the key %s "
		    "names has public key %s; a log keeps its key for life: put the "
		    "old key back, or start a new log in a new data folder with "
		    "--init (see docs/operations.md, changing the origin or the key)",
		    s->st_dir, have64, config, want64);
	}
	if (id.size > 0) {
		if ((err = rete_store_leaf_hash(s, NULL, 0, leaf, m)) != RETE_OK)
			return err;
		if (!id.have_first) {
			if ((err = identity_write(s, origin, key, &id, m)) != RETE_OK)
				return err;
			memcpy(id.first_entry, leaf, RETE_MERKLE_HASH);
			id.have_first = true;
		} else if (sodium_memcmp(leaf, id.first_entry, RETE_MERKLE_HASH) != 0) {
			return rete_msg_set(
			    m, RETE_ECORRUPT,
			    "store %s: its first entry is not the one its identity "
			    "records (meta first_entry); this is not the log it was "
			    "created as: put back the right store",
			    s->st_dir);
		}
	}
	if (out != NULL)
		*out = id;
	return RETE_OK;
}

/* ---- the mark of a backup copy -------------------------------------------- */

enum { COPY_FIXED = 8 + 4 + 8 }; /* size, epoch, made-at; then the source */

rete_err rete_store_copy_mark_get(rete_store *s, rete_store_rtxn *rt, rete_store_copy_mark *out,
				  bool *found, rete_msg *m)
{
	MDB_txn *txn;
	MDB_val v;
	bool own;
	rete_err err = store_rt_get(s, rt, &txn, &own, m);

	memset(out, 0, sizeof(*out));
	*found = false;
	if (err != RETE_OK)
		return err;
	err = meta_get(s, txn, META_COPY, &v, found, m);
	if (err == RETE_OK && *found) {
		const uint8_t *p = v.mv_data;
		size_t src = v.mv_size - COPY_FIXED;
		if (v.mv_size < COPY_FIXED || src > RETE_COPY_SOURCE_MAX || be32_get(p + 8) == 0) {
			err = bad_record(s, META_COPY, v.mv_size, m);
		} else {
			out->size = be64_get(p);
			out->epoch = be32_get(p + 8);
			out->made_at_ms = (int64_t)be64_get(p + 12);
			memcpy(out->source, p + COPY_FIXED, src);
			out->source[src] = '\0';
		}
	}
	if (own)
		store_txn_done(s, txn);
	if (err != RETE_OK)
		*found = false;
	return err;
}

rete_err rete_store_copy_mark_put(rete_store *s, const rete_store_copy_mark *mark, rete_msg *m)
{
	uint8_t rec[COPY_FIXED + RETE_COPY_SOURCE_MAX];
	size_t src = strnlen(mark->source, RETE_COPY_SOURCE_MAX);
	store_meta_kv kv[1] = {{META_COPY, rec, COPY_FIXED + src}};

	be64_put(rec, mark->size);
	be32_put(rec + 8, mark->epoch != 0 ? mark->epoch : 1);
	be64_put(rec + 12, (uint64_t)mark->made_at_ms);
	memcpy(rec + COPY_FIXED, mark->source, src);
	return store_meta_put(s, kv, 1, m);
}

/* ---- the writer's lock ---------------------------------------------------- */

rete_err rete_store_lock(const char *dir, rete_folder_lock *lk, rete_msg *m)
{
	char pid[32] = "unknown", path[PATH_MAX];
	rete_err err =
	    rete_folder_lock_take(dir, RETE_STORE_LOCK_FILE, NULL, lk, pid, sizeof(pid), m);

	if (err == RETE_EEXIST) {
		snprintf(path, sizeof(path), "%s/%s", dir, RETE_STORE_LOCK_FILE);
		return rete_msg_set(m, RETE_EEXIST,
				    "store %s is in use by another broker (pid %s, lock file %s); "
				    "two brokers on one store would both write its log: stop that "
				    "one first",
				    dir, pid, path);
	}
	return err; /* RETE_EIO: the sentence names the folder or the file */
}

bool rete_store_served(const char *dir)
{
	/* a shared lock is refused only while a broker holds its exclusive
	 * one (on the folder, or a 0.7.0 broker's on the lock file) */
	return dir != NULL && rete_folder_lock_held(dir, RETE_STORE_LOCK_FILE) == 1;
}

void rete_store_unlock(rete_folder_lock *lk)
{
	rete_folder_lock_release(lk);
}

/* ---- the state file ------------------------------------------------------- */

char *rete_store_state_path(const char *dir, char *buf, size_t len)
{
	size_t l = strlen(dir);

	while (l > 1 && dir[l - 1] == '/')
		l--;
	if ((size_t)snprintf(buf, len, "%.*s.state", (int)l, dir) >= len)
		return NULL;
	return buf;
}

rete_err rete_store_state_read(const char *path, char **note, rete_msg *m)
{
	enum { STATE_MAX = 64 * 1024 }; /* a checkpoint note is a few hundred bytes */
	struct stat st;
	char *buf;
	size_t got = 0;
	/* O_NONBLOCK: a named pipe put there is refused at once, never waited on */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	*note = NULL;
	if (fd < 0)
		return rete_msg_set(m, errno == ENOENT ? RETE_ENOENT : RETE_EIO,
				    "state file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATE_MAX) {
		bool big = st.st_size > STATE_MAX && S_ISREG(st.st_mode);
		close(fd);
		return rete_msg_set(m, RETE_EIO, "state file %s: %s", path,
				    big ? "larger than 64 KiB; it holds one checkpoint note"
					: "not a regular file");
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return rete_msg_set(m, RETE_ENOMEM, "state file %s: out of memory", path);
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
	if (got != (size_t)st.st_size) {
		free(buf);
		return rete_msg_set(m, RETE_EIO, "state file %s: cannot be read", path);
	}
	buf[got] = '\0';
	*note = buf;
	return RETE_OK;
}

rete_err rete_store_state_write(const char *path, const char *note, rete_msg *m)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	size_t len = strlen(note);
	int fd, e;
	char *slash;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return rete_msg_set(m, RETE_EINVAL, "state file %s: name too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto fail;
	for (size_t at = 0; at < len;) {
		ssize_t w = write(fd, note + at, len - at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail_fd;
		at += (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail_fd;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		goto fail_fd;
	close(fd);
	return RETE_OK;
fail_fd:
	e = errno;
	if (fd >= 0)
		close(fd);
	errno = e;
fail:
	e = errno;
	unlink(tmp);
	return rete_msg_set(m,
			    e == ENOSPC			  ? RETE_EFULL
			    : (e == EACCES || e == EPERM) ? RETE_EPERM
							  : RETE_EIO,
			    "state file %s: cannot replace it durably: %s", path, strerror(e));
}
