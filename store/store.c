/* store.c — opening the LMDB environment, the transaction helpers that make
 * map growth safe, and every read of the store. Writing is in
 * store_commit.c, backup in store_backup.c. */
#include "store_impl.h"
#include "store_check.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

rete_err store_lmdb_err(rete_msg *m, int rc, const char *what)
{
	switch (rc) {
	case 0:
		return RETE_OK;
	case ENOMEM:
		return rete_msg_set(m, RETE_ENOMEM, "%s: out of memory", what);
	case ENOSPC:
	case EFBIG:
	case EDQUOT:
		return rete_msg_set(m, RETE_EFULL,
				    "%s: the disk is full (%s); free space and retry", what,
				    mdb_strerror(rc));
	case EACCES:
	case EPERM:
	case EROFS:
		return rete_msg_set(m, RETE_EPERM, "%s: %s", what, mdb_strerror(rc));
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		return rete_msg_set(m, RETE_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
	case MDB_VERSION_MISMATCH:
		return rete_msg_set(m, RETE_EVERSION, "%s: %s", what, mdb_strerror(rc));
	case EIO:
		return rete_msg_set(m, RETE_EIO, "%s: %s", what, mdb_strerror(rc));
	default:
		return rete_msg_set(m, RETE_ESTORE, "%s: %s", what, mdb_strerror(rc));
	}
}

/* ---- transactions ------------------------------------------------------- */

rete_err store_seq(rete_store *s, MDB_txn *txn, uint64_t *seq, rete_msg *m)
{
	MDB_val k = {strlen(META_SEQ), (void *)META_SEQ}, v;
	int rc = mdb_get(txn, s->st_meta, &k, &v);

	*seq = 0;
	if (rc == MDB_NOTFOUND)
		return RETE_OK;
	if (rc != 0)
		return store_lmdb_err(m, rc, "store: reading the commit sequence");
	if (v.mv_size != 8)
		return rete_msg_set(
		    m, RETE_ECORRUPT,
		    "store %s: meta 'seq' is %zu bytes, not 8; the store is damaged", s->st_dir,
		    v.mv_size);
	*seq = be64_get(v.mv_data);
	return RETE_OK;
}

void store_seen_raise(rete_store *s, uint64_t seq)
{
	uint_fast64_t cur = atomic_load(&s->st_seen);
	while (cur < seq && !atomic_compare_exchange_weak(&s->st_seen, &cur, seq))
		;
}

/* How long a new read transaction waits for LMDB to publish a commit this
 * process has already read: in practice the few instructions between the
 * writer's meta page write and its publishing of the transaction id. */
#define STORE_STALE_WAIT_NS (5LL * 1000000000)

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* txn_begin_fresh begins a read transaction no older than anything this
 * process has read or committed. Called with st_grow held for reading. */
static int txn_begin_fresh(rete_store *s, MDB_txn **txn, uint64_t *seq, uint64_t *seen)
{
	int64_t deadline = 0;
	int rc;

	for (;;) {
		rc = mdb_txn_begin(s->st_env, NULL, MDB_RDONLY, txn);
		if (rc != 0)
			return rc;
		if (store_seq(s, *txn, seq, NULL) != RETE_OK)
			return 0; /* the caller's reads will meet the damage and say so */
		*seen = atomic_load(&s->st_seen);
		if (*seq >= *seen) {
			store_seen_raise(s, *seq);
			return 0;
		}
		mdb_txn_abort(*txn);
		*txn = NULL;
		if (deadline == 0)
			deadline = mono_ns() + s->st_stale_wait_ns;
		else if (mono_ns() > deadline)
			return -1;
		sched_yield();
	}
}

rete_err store_txn_read(rete_store *s, MDB_txn **txn, rete_msg *m)
{
	uint64_t seq = 0, seen = 0;
	int rc;

	pthread_rwlock_rdlock(&s->st_grow);
	if (s->st_env == NULL) {
		pthread_rwlock_unlock(&s->st_grow);
		*txn = NULL;
		return rete_msg_set(m, RETE_ESTORE,
				    "store %s: the environment could not be reopened after a "
				    "failed commit; restart the program",
				    s->st_dir);
	}
	for (int tries = 0;; tries++) {
		rc = txn_begin_fresh(s, txn, &seq, &seen);
		if (rc != MDB_MAP_RESIZED || tries >= 5)
			break;
		/* The writer (another process) grew the map: adopt its size,
		 * which LMDB allows only with no transaction open here. */
		pthread_rwlock_unlock(&s->st_grow);
		pthread_rwlock_wrlock(&s->st_grow);
		mdb_env_set_mapsize(s->st_env, 0);
		pthread_rwlock_unlock(&s->st_grow);
		pthread_rwlock_rdlock(&s->st_grow);
	}
	if (rc == -1) {
		pthread_rwlock_unlock(&s->st_grow);
		*txn = NULL;
		return rete_msg_set(
		    m, RETE_ESTORE,
		    "store %s: commit %llu, already read here, is still not visible "
		    "to a new read transaction after %lld ms (it sees commit %llu); "
		    "a writer may have died while committing: retry once it has "
		    "restarted",
		    s->st_dir, (unsigned long long)seen, (long long)(s->st_stale_wait_ns / 1000000),
		    (unsigned long long)seq);
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&s->st_grow);
		*txn = NULL;
		return store_lmdb_err(m, rc, "store: beginning a read transaction");
	}
	return RETE_OK;
}

void store_txn_done(rete_store *s, MDB_txn *txn)
{
	if (txn != NULL)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->st_grow);
}

rete_err store_rt_get(rete_store *s, rete_store_rtxn *rt, MDB_txn **txn, bool *own, rete_msg *m)
{
	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store given");
	if (rt != NULL) {
		if (rt->rt_store != s)
			return rete_msg_set(m, RETE_EINVAL,
					    "store: read transaction belongs to another store");
		*txn = rt->rt_txn;
		*own = false;
		return RETE_OK;
	}
	*own = true;
	return store_txn_read(s, txn, m);
}

rete_err store_grow(rete_store *s, rete_msg *m)
{
	MDB_envinfo info;
	uint64_t want;
	int rc;

	pthread_rwlock_wrlock(&s->st_grow);
	mdb_env_info(s->st_env, &info);
	want = (uint64_t)info.me_mapsize * 2;
	if (want < ((uint64_t)1 << 20))
		want = (uint64_t)1 << 20;
	rc = mdb_env_set_mapsize(s->st_env, (size_t)want);
	if (rc == 0)
		s->st_map_size = want;
	pthread_rwlock_unlock(&s->st_grow);
	if (rc != 0)
		return store_lmdb_err(m, rc, "store: growing the map");
	return RETE_OK;
}

/* ---- opening ------------------------------------------------------------ */

static rete_err open_dbi(rete_store *s, MDB_txn *txn, const char *name, unsigned flags,
			 MDB_dbi *dbi, rete_msg *m)
{
	int rc = mdb_dbi_open(txn, name, flags, dbi);
	if (rc == MDB_NOTFOUND)
		return rete_msg_set(m, RETE_ECORRUPT,
				    "store %s: database '%s' is missing; this is not a complete "
				    "rete store",
				    s->st_dir, name);
	if (rc != 0) {
		char what[128];
		snprintf(what, sizeof(what), "store: opening database '%s'", name);
		return store_lmdb_err(m, rc, what);
	}
	return RETE_OK;
}

/* open_dbis opens (creating if `create`) every named database and checks
 * the schema version. Called with the environment open and no txn. */
static rete_err open_dbis(rete_store *s, bool create, rete_msg *m)
{
	MDB_txn *txn = NULL;
	unsigned dflags = create ? MDB_CREATE : 0;
	MDB_val k, v;
	uint8_t ver[4];
	uint32_t have = RETE_STORE_SCHEMA;
	bool rdonly = (s->st_flags & RETE_STORE_RDONLY) != 0;
	rete_err err;
	int rc;

	rc = mdb_txn_begin(s->st_env, NULL, (s->st_flags & RETE_STORE_RDONLY) ? MDB_RDONLY : 0,
			   &txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(s->st_env, 0);
		rc = mdb_txn_begin(s->st_env, NULL,
				   (s->st_flags & RETE_STORE_RDONLY) ? MDB_RDONLY : 0, &txn);
	}
	if (rc != 0)
		return store_lmdb_err(m, rc, "store: beginning the opening transaction");

	/* meta first: a store of another schema may lack our databases, and
	 * the version is the better sentence. */
	rc = mdb_dbi_open(txn, "meta", 0, &s->st_meta);
	if (rc == MDB_NOTFOUND && create) {
		/* Only an empty environment becomes a new store: never take
		 * over a folder holding some other LMDB data. */
		MDB_dbi main_dbi;
		MDB_stat st;
		if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
		    (rc = mdb_stat(txn, main_dbi, &st)) != 0) {
			err = store_lmdb_err(m, rc, "store: inspecting the environment");
			goto fail;
		}
		if (st.ms_entries != 0) {
			err = rete_msg_set(m, RETE_ECORRUPT,
					   "store %s: the folder holds an LMDB environment that is "
					   "not a rete store; give an empty folder",
					   s->st_dir);
			goto fail;
		}
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		err = store_lmdb_err(m, rc, "store: opening database 'meta'");
		goto fail;
	}
	if ((err = open_dbi(s, txn, "meta", dflags, &s->st_meta, m)) != RETE_OK)
		goto fail;
	k.mv_data = (void *)META_SCHEMA;
	k.mv_size = strlen(META_SCHEMA);
	rc = mdb_get(txn, s->st_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		if (!create) {
			err = rete_msg_set(m, RETE_ECORRUPT,
					   "store %s: no schema version in meta; this is not a "
					   "rete store (or its creation was interrupted)",
					   s->st_dir);
			goto fail;
		}
		have = 0; /* a new store */
		ver[0] = (uint8_t)(RETE_STORE_SCHEMA >> 24);
		ver[1] = (uint8_t)(RETE_STORE_SCHEMA >> 16);
		ver[2] = (uint8_t)(RETE_STORE_SCHEMA >> 8);
		ver[3] = (uint8_t)RETE_STORE_SCHEMA;
		v.mv_data = ver;
		v.mv_size = 4;
		if ((rc = mdb_put(txn, s->st_meta, &k, &v, 0)) != 0) {
			err = store_lmdb_err(m, rc, "store: writing the schema version");
			goto fail;
		}
	} else if (rc != 0) {
		err = store_lmdb_err(m, rc, "store: reading the schema version");
		goto fail;
	} else {
		const uint8_t *p = v.mv_data;
		if (v.mv_size != 4) {
			err = rete_msg_set(m, RETE_ECORRUPT,
					   "store %s: schema version in meta is %zu bytes long, "
					   "expected 4",
					   s->st_dir, v.mv_size);
			goto fail;
		}
		have =
		    ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
		/* schema 1 = 2 without the log's identity: read as it is; the
		 * broker records the identity (store_identity.c). Schema 2 =
		 * 3 without the timestamps: upgraded below when writable. */
		if (have != RETE_STORE_SCHEMA && have != RETE_STORE_SCHEMA_V3 &&
		    have != RETE_STORE_SCHEMA_V2 && have != RETE_STORE_SCHEMA_V1) {
			err =
			    rete_msg_set(m, RETE_EVERSION,
					 "store %s has schema version %u; this program reads "
					 "schema versions %u to %u only (use a matching rete "
					 "version)",
					 s->st_dir, (unsigned)have, (unsigned)RETE_STORE_SCHEMA_V1,
					 (unsigned)RETE_STORE_SCHEMA);
			goto fail;
		}
	}
	if ((err = open_dbi(s, txn, "entries", dflags, &s->st_entries, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "nodes", dflags, &s->st_nodes, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "checkpoints", dflags, &s->st_checkpoints, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "msgids", dflags, &s->st_msgids, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "queue", dflags, &s->st_queue, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "blobs", dflags, &s->st_blobs, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "referrals", dflags, &s->st_referrals, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "due", dflags, &s->st_due, m)) != RETE_OK ||
	    (err = open_dbi(s, txn, "cases", dflags, &s->st_cases, m)) != RETE_OK)
		goto fail;
	/* Schema 3's timestamps: created in an older store opened writable
	 * (and its schema raised from 2; a schema-1 store gets 3 with its
	 * identity); an older store read read-only has none. */
	s->st_have_timestamps = false;
	if (have == 0 || have >= RETE_STORE_SCHEMA_V3 || !rdonly) {
		if ((err = open_dbi(s, txn, "timestamps", rdonly ? 0 : MDB_CREATE,
				    &s->st_timestamps, m)) != RETE_OK)
			goto fail;
		s->st_have_timestamps = true;
	}
	/* schema 2 opened writable: 3 (the timestamps); 2 and 3 opened to
	 * journal (the broker): 4, since an older program must not open a
	 * store whose journal may hold receipted batches. A tool's writable
	 * open (the mark of a backup copy) raises no more than it needs:
	 * an older program still reads what it wrote. */
	uint32_t want = (s->st_flags & RETE_STORE_JOURNAL) ? RETE_STORE_SCHEMA : RETE_STORE_SCHEMA_V3;
	if ((have == RETE_STORE_SCHEMA_V2 || have == RETE_STORE_SCHEMA_V3) && have < want &&
	    !rdonly) {
		ver[0] = (uint8_t)(want >> 24);
		ver[1] = (uint8_t)(want >> 16);
		ver[2] = (uint8_t)(want >> 8);
		ver[3] = (uint8_t)want;
		k.mv_data = (void *)META_SCHEMA;
		k.mv_size = strlen(META_SCHEMA);
		v.mv_data = ver;
		v.mv_size = 4;
		if ((rc = mdb_put(txn, s->st_meta, &k, &v, 0)) != 0) {
			err = store_lmdb_err(m, rc, "store: upgrading the schema version");
			goto fail;
		}
	}
	/* the broker's open: the journal's files are made (or, in a store
	 * that has them, checked later) before this commit raises the
	 * schema to 4 or makes the store: a failure leaves it as it was */
	if (!rdonly && (s->st_flags & RETE_STORE_JOURNAL) && s->st_jfd[0] < 0 &&
	    (err = store_journal_prepare(s, txn, have, m)) != RETE_OK)
		goto fail;
	/* Commit (also for a read txn) keeps the dbi handles for the env. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		return store_lmdb_err(m, rc, "store: committing the opening transaction");
	return RETE_OK;
fail:
	mdb_txn_abort(txn);
	return err;
}

/* env_open creates and opens s->st_env for s->st_dir. */
static rete_err env_open(rete_store *s, bool create, rete_msg *m)
{
	unsigned eflags = MDB_NOTLS;
	bool rdonly = (s->st_flags & RETE_STORE_RDONLY) != 0;
	char path[PATH_MAX];
	bool fresh;
	int rc, dead = 0;
	rete_err err;

	if (rdonly)
		eflags |= MDB_RDONLY;
	/* A scratch store is thrown away: no fsync per commit. Not
	 * MDB_WRITEMAP, which would turn a full disk into SIGBUS. */
	if (s->st_flags & RETE_STORE_SCRATCH)
		eflags |= MDB_NOSYNC | MDB_NOMETASYNC;
	/* Journaled: the journal's record makes a commit durable, and the
	 * next commit's flush its meta page (store_journal.c) */
	if (s->st_jfd[0] >= 0)
		eflags |= MDB_NOMETASYNC;
	snprintf(path, sizeof(path), "%s/data.mdb", s->st_dir);
	fresh = access(path, F_OK) != 0;
	if ((rc = mdb_env_create(&s->st_env)) != 0)
		return store_lmdb_err(m, rc, "store: creating the environment");
	mdb_env_set_maxdbs(s->st_env, 16);
	mdb_env_set_maxreaders(s->st_env, s->st_max_readers);
	/* An existing store keeps the map size it grew to (LMDB adopts the
	 * file's own when none is set); only a new one starts at ours. */
	if (fresh)
		mdb_env_set_mapsize(s->st_env, (size_t)s->st_map_size);
	rc = mdb_env_open(s->st_env, s->st_dir, eflags, 0600);
	if (rc != 0 && rdonly && (rc == EACCES || rc == EROFS)) {
		/* A copy on read-only media (an auditor's): no lock file can
		 * be written, and no writer can be running on it either. */
		mdb_env_close(s->st_env);
		s->st_env = NULL;
		if ((rc = mdb_env_create(&s->st_env)) != 0)
			return store_lmdb_err(m, rc, "store: creating the environment");
		mdb_env_set_maxdbs(s->st_env, 16);
		mdb_env_set_maxreaders(s->st_env, s->st_max_readers);
		rc = mdb_env_open(s->st_env, s->st_dir, eflags | MDB_NOLOCK, 0600);
	}
	if (rc == 0 && !rdonly) {
		MDB_envinfo info;
		mdb_env_info(s->st_env, &info);
		if (info.me_mapsize < s->st_map_size)
			rc = mdb_env_set_mapsize(s->st_env, (size_t)s->st_map_size);
	}
	if (rc != 0) {
		char what[600];
		snprintf(what, sizeof(what), "store %s: opening", s->st_dir);
		err = store_lmdb_err(m, rc, what);
		mdb_env_close(s->st_env);
		s->st_env = NULL;
		return err;
	}
	/* Reader slots of processes that died (kill -9) would pin old pages
	 * forever and eventually exhaust the table. */
	mdb_reader_check(s->st_env, &dead);
	if ((err = open_dbis(s, create, m)) != RETE_OK) {
		mdb_env_close(s->st_env);
		s->st_env = NULL;
		return err;
	}
	{
		MDB_envinfo info;
		mdb_env_info(s->st_env, &info);
		s->st_map_size = info.me_mapsize;
	}
	return RETE_OK;
}

rete_err store_reopen(rete_store *s, rete_msg *m)
{
	rete_err err;

	pthread_rwlock_wrlock(&s->st_grow);
	mdb_env_close(s->st_env);
	s->st_env = NULL;
	store_dir_forget(s);
	err = env_open(s, false, m);
	pthread_rwlock_unlock(&s->st_grow);
	return err;
}

rete_err rete_store_open(rete_store **out, const char *dir, unsigned flags, rete_msg *m)
{
	return rete_store_open_ex(out, dir, flags, NULL, m);
}

rete_err rete_store_open_ex(rete_store **out, const char *dir, unsigned flags,
			    const rete_store_options *opt, rete_msg *m)
{
	rete_store *s;
	struct stat st;
	char path[PATH_MAX];
	rete_err err;

	if (out == NULL || dir == NULL || *dir == '\0')
		return rete_msg_set(m, RETE_EINVAL, "store: no folder given");
	*out = NULL;
	if ((flags & ~(RETE_STORE_CREATE | RETE_STORE_RDONLY | RETE_STORE_SCRATCH |
		       RETE_STORE_JOURNAL)) != 0 ||
	    ((flags & RETE_STORE_CREATE) && (flags & RETE_STORE_RDONLY)) ||
	    ((flags & RETE_STORE_SCRATCH) && !(flags & RETE_STORE_CREATE)) ||
	    ((flags & RETE_STORE_JOURNAL) && (flags & (RETE_STORE_RDONLY | RETE_STORE_SCRATCH))))
		return rete_msg_set(m, RETE_EINVAL,
				    "store %s: flags 0x%x; accepted: CREATE or RDONLY, not both, "
				    "SCRATCH only with CREATE, JOURNAL without RDONLY and SCRATCH",
				    dir, flags);
	if (strlen(dir) + 16 >= sizeof(path))
		return rete_msg_set(m, RETE_EINVAL, "store: folder name too long");

	if (stat(dir, &st) != 0) {
		if (errno != ENOENT)
			return rete_msg_set(m, errno == EACCES ? RETE_EPERM : RETE_EIO,
					    "store %s: %s", dir, strerror(errno));
		if (!(flags & RETE_STORE_CREATE))
			return rete_msg_set(m, RETE_ENOENT, "store %s: no such folder", dir);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return rete_msg_set(m, errno == EACCES ? RETE_EPERM : RETE_EIO,
					    "store %s: cannot create the folder: %s", dir,
					    strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		return rete_msg_set(m, RETE_EINVAL, "store %s: not a folder", dir);
	}
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (!(flags & RETE_STORE_CREATE) && access(path, F_OK) != 0)
		return rete_msg_set(m, RETE_ENOENT,
				    "store %s: no store there (data.mdb missing); is it the "
				    "broker's data folder? a broker makes a new log there only "
				    "when started once with --init",
				    dir);
	/* LMDB trusts its file: a cut or garbled one would be a signal, not a
	 * sentence (a missing one is created, with CREATE, below). The writer
	 * (the broker, whose start-up is timed) checks a large store quickly;
	 * readers read every page (store_check.h). */
	if (access(path, F_OK) == 0 &&
	    (err = rete_store_file_check_ex(
		 path, (flags & RETE_STORE_RDONLY) ? 0 : RETE_STORE_CHECK_QUICK, m)) != RETE_OK)
		return err;

	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->st_dir = strdup(dir)) == NULL) {
		free(s);
		return rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
	}
	s->st_flags = flags;
	s->st_map_size = (opt != NULL && opt->map_size != 0) ? opt->map_size : STORE_DEFAULT_MAP;
	s->st_max_readers =
	    (opt != NULL && opt->max_readers != 0) ? opt->max_readers : STORE_DEFAULT_READERS;
	s->st_stale_wait_ns = STORE_STALE_WAIT_NS;
	s->st_jfd[0] = s->st_jfd[1] = -1;
	s->st_schema_was = RETE_STORE_SCHEMA;
	s->st_jlost_ok = opt != NULL && opt->journal_lost_ok;
	pthread_rwlock_init(&s->st_grow, NULL);
	pthread_mutex_init(&s->st_write, NULL);
	pthread_mutex_init(&s->st_jwhy_mu, NULL);
	if ((err = env_open(s, (flags & RETE_STORE_CREATE) != 0, m)) != RETE_OK) {
		pthread_rwlock_destroy(&s->st_grow);
		pthread_mutex_destroy(&s->st_write);
		pthread_mutex_destroy(&s->st_jwhy_mu);
		free(s->st_dir);
		free(s);
		return err;
	}
	/* a writer first takes in what the journal holds beyond LMDB (a
	 * crash between a batch's receipts and LMDB's commit of it); then the
	 * broker journals */
	if (!(flags & RETE_STORE_RDONLY) &&
	    ((err = store_journal_recover(s, NULL, m)) != RETE_OK ||
	     ((flags & RETE_STORE_JOURNAL) && s->st_jfd[0] < 0 &&
	      (err = store_journal_open(s, m)) != RETE_OK))) {
		rete_store_close(&s);
		return err;
	}
	if (s->st_jfd[0] >= 0 && (err = mdb_env_set_flags(s->st_env, MDB_NOMETASYNC, 1)) != 0) {
		err = store_lmdb_err(m, (int)err, "store: setting MDB_NOMETASYNC");
		rete_store_close(&s);
		return err;
	}
	*out = s;
	return RETE_OK;
}

bool rete_store_journal_lost(const rete_store *s, char *why, size_t cap)
{
	if (s == NULL || s->st_jlost[0] == '\0')
		return false;
	if (why != NULL && cap > 0)
		snprintf(why, cap, "%s", s->st_jlost);
	return true;
}

uint32_t rete_store_schema_was(const rete_store *s)
{
	return s != NULL ? s->st_schema_was : 0;
}

void store_dir_forget(rete_store *s)
{
	if (s->st_dir_msg != NULL)
		rete__message__free_unpacked(s->st_dir_msg, NULL);
	if (s->st_dir_sm != NULL)
		rete__signed_message__free_unpacked(s->st_dir_sm, NULL);
	s->st_dir_msg = NULL;
	s->st_dir_sm = NULL;
	s->st_dir_index = 0;
	memset(s->st_dir_leaf, 0, sizeof(s->st_dir_leaf));
}

void rete_store_close(rete_store **sp)
{
	rete_store *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	*sp = NULL;
	store_dir_forget(s);
	if (s->st_env != NULL) {
		/* journaled: the last commit's meta page, flushed (a clean stop
		 * leaves nothing to the journal) */
		if (s->st_jfd[0] >= 0)
			mdb_env_sync(s->st_env, 1);
		mdb_env_close(s->st_env);
	}
	store_journal_close(s);
	store_redo_free(&s->st_redo);
	pthread_rwlock_destroy(&s->st_grow);
	pthread_mutex_destroy(&s->st_write);
	pthread_mutex_destroy(&s->st_jwhy_mu);
	free(s->st_dir);
	free(s);
}

/* ---- read transactions ---------------------------------------------------- */

rete_err rete_store_read_begin(rete_store *s, rete_store_rtxn **out, rete_msg *m)
{
	rete_store_rtxn *rt;
	rete_err err;

	if (s == NULL || out == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store given");
	*out = NULL;
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
	if ((err = store_txn_read(s, &rt->rt_txn, m)) != RETE_OK) {
		free(rt);
		return err;
	}
	rt->rt_store = s;
	*out = rt;
	return RETE_OK;
}

void rete_store_read_end(rete_store_rtxn **rtp)
{
	if (rtp == NULL || *rtp == NULL)
		return;
	store_txn_done((*rtp)->rt_store, (*rtp)->rt_txn);
	free(*rtp);
	*rtp = NULL;
}

/* ---- reads ---------------------------------------------------------------- */

rete_err store_log_size(rete_store *s, MDB_txn *txn, uint64_t *size, rete_msg *m)
{
	MDB_val k = {strlen(META_SIZE), (void *)META_SIZE}, v;
	int rc = mdb_get(txn, s->st_meta, &k, &v);

	if (rc == MDB_NOTFOUND) {
		*size = 0;
		return RETE_OK;
	}
	if (rc != 0)
		return store_lmdb_err(m, rc, "store: reading the log size");
	if (v.mv_size != 8)
		return rete_msg_set(m, RETE_ECORRUPT, "store %s: log size in meta is %zu bytes",
				    s->st_dir, v.mv_size);
	*size = be64_get(v.mv_data);
	return RETE_OK;
}

rete_err store_node_get(void *ctx, unsigned level, uint64_t index, uint8_t out[RETE_MERKLE_HASH])
{
	struct store_node_ctx *c = ctx;
	uint8_t key[STORE_NODE_KEY];
	MDB_val k = {sizeof(key), key}, v;
	int rc;

	node_key(key, level, index);
	rc = mdb_get(c->nc_txn, c->nc_store->st_nodes, &k, &v);
	return node_value(rc, &v, out);
}

/* The merkle callbacks return bare codes; give them a sentence. */
static rete_err node_err(rete_store *s, rete_err err, rete_msg *m, const char *what)
{
	if (err == RETE_ECORRUPT)
		return rete_msg_set(m, err,
				    "store %s: %s: a Merkle node is missing or malformed in "
				    "'nodes'",
				    s->st_dir, what);
	if (err == RETE_ESTORE)
		return rete_msg_set(m, err, "store %s: %s: reading 'nodes' failed", s->st_dir,
				    what);
	return err;
}

rete_err rete_store_size(rete_store *s, rete_store_rtxn *rt, uint64_t *size, rete_msg *m)
{
	MDB_txn *txn;
	bool own;
	rete_err err;

	if (size == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no size output given");
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	err = store_log_size(s, txn, size, m);
	if (own)
		store_txn_done(s, txn);
	return err;
}

/* A database of the store, named by its field (STORE_DB(st_queue)) so that
 * the store itself is looked at only once store_rt_get has checked it. */
#define STORE_DB(field) offsetof(rete_store, field)

/* store_db: the handle of database db (STORE_DB) of s. */
static MDB_dbi store_db(const rete_store *s, size_t db)
{
	return *(const MDB_dbi *)(const void *)((const char *)s + db);
}

/* get_copy reads key from dbi into a malloc'd rete_buf. */
static rete_err get_copy(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, rete_buf *out, rete_msg *m,
			 const char *what)
{
	MDB_val v;
	int rc = mdb_get(txn, dbi, k, &v);

	if (rc == MDB_NOTFOUND)
		return rete_msg_set(m, RETE_ENOENT, "%s: not found", what);
	if (rc != 0)
		return store_lmdb_err(m, rc, what);
	out->data = malloc(v.mv_size ? v.mv_size : 1);
	if (out->data == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "%s: out of memory", what);
	memcpy(out->data, v.mv_data, v.mv_size);
	out->len = v.mv_size;
	return RETE_OK;
}

/* copy_index reads the record of index in database db of s (STORE_DB) into
 * *out (malloc'd, the caller's); noun names the record in the sentence of
 * an error ("log entry" gives "store: log entry 7: not found"). */
static rete_err copy_index(rete_store *s, rete_store_rtxn *rt, size_t db, uint64_t index,
			   const char *noun, rete_buf *out, rete_msg *m)
{
	uint8_t key[8];
	MDB_val k = {8, key};
	MDB_txn *txn;
	bool own;
	rete_err err;
	char what[96];

	if (out == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no output buffer given");
	out->data = NULL;
	out->len = 0;
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	be64_put(key, index);
	snprintf(what, sizeof(what), "store: %s %llu", noun, (unsigned long long)index);
	err = get_copy(txn, store_db(s, db), &k, out, m, what);
	if (own)
		store_txn_done(s, txn);
	return err;
}

rete_err rete_store_entry(rete_store *s, rete_store_rtxn *rt, uint64_t index, rete_buf *out,
			  rete_msg *m)
{
	return copy_index(s, rt, STORE_DB(st_entries), index, "log entry", out, m);
}

/* ---- walking a database ------------------------------------------------- */

/* store_walk_fn handles one record of a walk; k and v point into the map
 * and live only during the call. It returns RETE_OK to go on (setting
 * *stop to end the walk there without an error) or an error, set in m,
 * that ends the walk with it. txn is the walk's transaction, for lookups
 * in other databases. */
typedef rete_err (*store_walk_fn)(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
				  bool *stop, rete_msg *m);

/* walk_txn calls fn on the records of dbi in key order, from the first
 * key at or after *start (the first key when start is NULL). A failure of
 * LMDB is reported as `what` (e.g. "store: reading the queue"). */
static rete_err walk_txn(MDB_txn *txn, MDB_dbi dbi, const MDB_val *start, const char *what,
			 store_walk_fn fn, void *arg, rete_msg *m)
{
	MDB_cursor *cur = NULL;
	MDB_val k = {0, NULL}, v;
	bool stop = false;
	rete_err err = RETE_OK;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return store_lmdb_err(m, rc, what);
	if (start != NULL)
		k = *start;
	for (rc = mdb_cursor_get(cur, &k, &v, start != NULL ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		err = fn(arg, txn, &k, &v, &stop, m);
		if (err != RETE_OK || stop)
			break;
	}
	if (err == RETE_OK && !stop && rc != MDB_NOTFOUND)
		err = store_lmdb_err(m, rc, what);
	mdb_cursor_close(cur);
	return err;
}

/* walk is walk_txn in rt's transaction (or a read transaction of its own)
 * over the database at offset db of s (WALK_DB). Errors: those of
 * store_rt_get, of LMDB (as `what`) and of fn. */
static rete_err walk(rete_store *s, rete_store_rtxn *rt, size_t db, const MDB_val *start,
		     const char *what, store_walk_fn fn, void *arg, rete_msg *m)
{
	MDB_txn *txn;
	bool own;
	rete_err err;

	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	err = walk_txn(txn, store_db(s, db), start, what, fn, arg, m);
	if (own)
		store_txn_done(s, txn);
	return err;
}

/* entries_walk: the entries [want, to) rete_store_entries_iter has yet to
 * give, and whether its callback stopped it. */
struct entries_walk {
	rete_store_entry_fn ew_fn;
	void *ew_ctx;
	uint64_t ew_want, ew_to;
	bool ew_stopped;
};

static rete_err entries_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
			     bool *stop, rete_msg *m)
{
	struct entries_walk *w = arg;

	(void)txn;
	(void)m;
	/* a key other than the next index is a gap, reported by the caller */
	if (w->ew_want >= w->ew_to || k->mv_size != 8 || be64_get(k->mv_data) != w->ew_want) {
		*stop = true;
		return RETE_OK;
	}
	if (w->ew_fn(w->ew_ctx, w->ew_want, v->mv_data, v->mv_size)) {
		w->ew_stopped = *stop = true;
		return RETE_OK;
	}
	w->ew_want++;
	return RETE_OK;
}

rete_err rete_store_entries_iter(rete_store *s, rete_store_rtxn *rt, uint64_t from, uint64_t to,
				 rete_store_entry_fn fn, void *ctx, rete_msg *m)
{
	struct entries_walk w = {fn, ctx, from, to, false};
	uint8_t key[8];
	MDB_val k = {8, key};
	uint64_t size;
	MDB_txn *txn;
	bool own;
	rete_err err;

	if (fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no callback given");
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	if ((err = store_log_size(s, txn, &size, m)) != RETE_OK)
		goto done;
	if (w.ew_to > size)
		w.ew_to = size;
	if (from >= w.ew_to)
		goto done;
	be64_put(key, from);
	err = walk_txn(txn, s->st_entries, &k, "store: reading the log", entries_step, &w, m);
	if (err == RETE_OK && !w.ew_stopped && w.ew_want < w.ew_to)
		err = rete_msg_set(
		    m, RETE_ECORRUPT, "store %s: log entry %llu is missing (the log size is %llu)",
		    s->st_dir, (unsigned long long)w.ew_want, (unsigned long long)size);
done:
	if (own)
		store_txn_done(s, txn);
	return err;
}

rete_err rete_store_node(rete_store *s, rete_store_rtxn *rt, unsigned level, uint64_t index,
			 uint8_t out[RETE_MERKLE_HASH], rete_msg *m)
{
	struct store_node_ctx c;
	MDB_txn *txn;
	bool own;
	rete_err err;

	if (level > 64)
		return rete_msg_set(m, RETE_ENOENT, "store: no Merkle level %u", level);
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	c.nc_store = s;
	c.nc_txn = txn;
	err = store_node_get(&c, level, index, out);
	if (err == RETE_ECORRUPT) {
		/* absent: distinguish from malformed */
		uint8_t key[STORE_NODE_KEY];
		MDB_val k = {sizeof(key), key}, v;
		node_key(key, level, index);
		if (mdb_get(txn, s->st_nodes, &k, &v) == MDB_NOTFOUND)
			err =
			    rete_msg_set(m, RETE_ENOENT,
					 "store: no Merkle node (%u, %llu) (not a complete subtree "
					 "of this log)",
					 level, (unsigned long long)index);
		else
			err = node_err(s, err, m, "Merkle node");
	} else {
		err = node_err(s, err, m, "Merkle node");
	}
	if (own)
		store_txn_done(s, txn);
	return err;
}

/* tree_ask: one question about the Merkle tree of the log, as asked by
 * rete_store_leaf_hash (index a), rete_store_root (size a),
 * rete_store_inclusion_proof (index a, size b) and
 * rete_store_consistency_proof (size1 a, size2 b). hash is the output of
 * the first two, proof and n of the proofs. */
struct tree_ask {
	enum { TREE_LEAF, TREE_ROOT, TREE_INCLUSION, TREE_CONSISTENCY } ta_kind;
	uint64_t ta_a, ta_b;
	uint8_t *ta_hash;
	uint8_t (*ta_proof)[RETE_MERKLE_HASH];
	size_t *ta_n;
	rete_merkle_memo *ta_memo; /* the root's, or NULL */
};

/* tree_answer answers q in c's transaction, over a log of `have` entries:
 * a question beyond the log is refused here (RETE_ENOENT for a leaf,
 * RETE_EINVAL otherwise), the rest is merkle.h's work. */
static rete_err tree_answer(rete_store *s, struct store_node_ctx *c, const struct tree_ask *q,
			    uint64_t have, rete_msg *m)
{
	unsigned long long a = q->ta_a, b = q->ta_b, h = have;

	switch (q->ta_kind) {
	case TREE_LEAF:
		if (q->ta_a >= have)
			return rete_msg_set(m, RETE_ENOENT,
					    "store: no log entry %llu (the log has %llu entries)",
					    a, h);
		return node_err(s, store_node_get(c, 0, q->ta_a, q->ta_hash), m, "leaf hash");
	case TREE_ROOT:
		if (q->ta_a > have)
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "store: tree size %llu is beyond the log (%llu entries)", a, h);
		return node_err(
		    s, rete_merkle_root_memo(store_node_get, c, q->ta_memo, q->ta_a, q->ta_hash), m,
		    "root");
	case TREE_INCLUSION:
		if (q->ta_b > have || q->ta_a >= q->ta_b)
			return rete_msg_set(m, RETE_EINVAL,
					    "store: no inclusion proof for index %llu in tree size "
					    "%llu (the log has %llu entries; need index < size <= "
					    "%llu)",
					    a, b, h, h);
		return node_err(s,
				rete_merkle_inclusion_proof(store_node_get, c, q->ta_a, q->ta_b,
							    q->ta_proof, q->ta_n),
				m, "inclusion proof");
	case TREE_CONSISTENCY:
	default:
		if (q->ta_a == 0 || q->ta_a > q->ta_b || q->ta_b > have)
			return rete_msg_set(m, RETE_EINVAL,
					    "store: no consistency proof from size %llu to %llu "
					    "(need 0 < size1 <= size2 <= %llu, the log size)",
					    a, b, h);
		return node_err(s,
				rete_merkle_consistency_proof(store_node_get, c, q->ta_a, q->ta_b,
							      q->ta_proof, q->ta_n),
				m, "consistency proof");
	}
}

/* tree_read answers q in rt's transaction (or a read transaction of its
 * own) against the log size it sees. Errors: those of store_rt_get,
 * store_log_size and tree_answer. */
static rete_err tree_read(rete_store *s, rete_store_rtxn *rt, const struct tree_ask *q, rete_msg *m)
{
	struct store_node_ctx c = {.nc_store = s};
	uint64_t have;
	bool own;
	rete_err err;

	if ((err = store_rt_get(s, rt, &c.nc_txn, &own, m)) != RETE_OK)
		return err;
	if ((err = store_log_size(s, c.nc_txn, &have, m)) == RETE_OK)
		err = tree_answer(s, &c, q, have, m);
	if (own)
		store_txn_done(s, c.nc_txn);
	return err;
}

rete_err rete_store_leaf_hash(rete_store *s, rete_store_rtxn *rt, uint64_t index,
			      uint8_t out[RETE_MERKLE_HASH], rete_msg *m)
{
	struct tree_ask q = {.ta_kind = TREE_LEAF, .ta_a = index, .ta_hash = out};

	return tree_read(s, rt, &q, m);
}

rete_err rete_store_root(rete_store *s, rete_store_rtxn *rt, uint64_t size,
			 uint8_t out[RETE_MERKLE_HASH], rete_msg *m)
{
	struct tree_ask q = {.ta_kind = TREE_ROOT, .ta_a = size, .ta_hash = out};

	return tree_read(s, rt, &q, m);
}

rete_err rete_store_root_memo(rete_store *s, rete_store_rtxn *rt, rete_merkle_memo *memo,
			      uint64_t size, uint8_t out[RETE_MERKLE_HASH], rete_msg *m)
{
	struct tree_ask q = {.ta_kind = TREE_ROOT, .ta_a = size, .ta_hash = out, .ta_memo = memo};

	return tree_read(s, rt, &q, m);
}

rete_err rete_store_inclusion_proof(rete_store *s, rete_store_rtxn *rt, uint64_t index,
				    uint64_t size, uint8_t proof[][RETE_MERKLE_HASH], size_t *n,
				    rete_msg *m)
{
	struct tree_ask q = {
	    .ta_kind = TREE_INCLUSION, .ta_a = index, .ta_b = size, .ta_proof = proof, .ta_n = n};

	return tree_read(s, rt, &q, m);
}

rete_err rete_store_consistency_proof(rete_store *s, rete_store_rtxn *rt, uint64_t size1,
				      uint64_t size2, uint8_t proof[][RETE_MERKLE_HASH], size_t *n,
				      rete_msg *m)
{
	struct tree_ask q = {.ta_kind = TREE_CONSISTENCY,
			     .ta_a = size1,
			     .ta_b = size2,
			     .ta_proof = proof,
			     .ta_n = n};

	return tree_read(s, rt, &q, m);
}

/* ---- checkpoints -------------------------------------------------------- */

static char *note_dup(const MDB_val *v)
{
	char *p = malloc(v->mv_size + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, v->mv_data, v->mv_size);
	p[v->mv_size] = '\0';
	return p;
}

rete_err rete_store_checkpoint_latest(rete_store *s, rete_store_rtxn *rt, uint64_t *size,
				      char **note, rete_msg *m)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_txn *txn;
	bool own;
	rete_err err = RETE_OK;
	int rc;

	if (size == NULL || note == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no output given");
	*note = NULL;
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	if ((rc = mdb_cursor_open(txn, s->st_checkpoints, &cur)) != 0) {
		err = store_lmdb_err(m, rc, "store: reading checkpoints");
		goto done;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == MDB_NOTFOUND) {
		err = rete_msg_set(m, RETE_ENOENT, "store %s: no checkpoint yet", s->st_dir);
	} else if (rc != 0) {
		err = store_lmdb_err(m, rc, "store: reading checkpoints");
	} else if (k.mv_size != 8) {
		err =
		    rete_msg_set(m, RETE_ECORRUPT, "store %s: malformed checkpoint key", s->st_dir);
	} else {
		*size = be64_get(k.mv_data);
		if ((*note = note_dup(&v)) == NULL)
			err = rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
	}
done:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (own)
		store_txn_done(s, txn);
	return err;
}

rete_err rete_store_checkpoint_get(rete_store *s, rete_store_rtxn *rt, uint64_t size, char **note,
				   rete_msg *m)
{
	uint8_t key[8];
	MDB_val k = {8, key}, v;
	MDB_txn *txn;
	bool own;
	rete_err err = RETE_OK;
	int rc;

	if (note == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no output given");
	*note = NULL;
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	be64_put(key, size);
	rc = mdb_get(txn, s->st_checkpoints, &k, &v);
	if (rc == MDB_NOTFOUND)
		err = rete_msg_set(m, RETE_ENOENT, "store %s: no checkpoint for tree size %llu",
				   s->st_dir, (unsigned long long)size);
	else if (rc != 0)
		err = store_lmdb_err(m, rc, "store: reading a checkpoint");
	else if ((*note = note_dup(&v)) == NULL)
		err = rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
	if (own)
		store_txn_done(s, txn);
	return err;
}

/* checkpoints_walk: rete_store_checkpoints_iter's callback and store. */
struct checkpoints_walk {
	rete_store *cw_store;
	rete_store_checkpoint_fn cw_fn;
	void *cw_ctx;
};

static rete_err checkpoints_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
				 bool *stop, rete_msg *m)
{
	struct checkpoints_walk *w = arg;
	char *note;

	(void)txn;
	if (k->mv_size != 8)
		return rete_msg_set(m, RETE_ECORRUPT, "store %s: malformed checkpoint key",
				    w->cw_store->st_dir);
	if ((note = note_dup(v)) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
	*stop = w->cw_fn(w->cw_ctx, be64_get(k->mv_data), note) != 0;
	free(note);
	return RETE_OK;
}

rete_err rete_store_checkpoints_iter(rete_store *s, rete_store_rtxn *rt, uint64_t from,
				     rete_store_checkpoint_fn fn, void *ctx, rete_msg *m)
{
	struct checkpoints_walk w = {s, fn, ctx};
	uint8_t key[8];
	MDB_val k = {8, key};

	if (fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no callback given");
	be64_put(key, from);
	return walk(s, rt, STORE_DB(st_checkpoints), &k, "store: reading checkpoints",
		    checkpoints_step, &w, m);
}

/* ---- queues --------------------------------------------------------------- */

/* A queue key: recipient "\0" index BE64. */
static rete_err queue_prefix(rete_store *s, const char *recipient, uint8_t *key, size_t *len,
			     rete_msg *m)
{
	size_t rl = recipient ? strlen(recipient) : 0;
	(void)s;
	if (rl == 0)
		return rete_msg_set(m, RETE_EINVAL, "store: queue: empty recipient");
	if (rl > 255)
		return rete_msg_set(m, RETE_EINVAL,
				    "store: queue: recipient is %zu bytes long; at most 255", rl);
	memcpy(key, recipient, rl);
	key[rl] = '\0';
	*len = rl + 1;
	return RETE_OK;
}

/* queue_walk: the recipient's key prefix a queue walk stays within, and
 * what rete_store_queue_peek and rete_store_queue_depth gather. */
struct queue_walk {
	const uint8_t *qw_prefix;
	size_t qw_plen;
	uint64_t *qw_indexes; /* peek: the indexes found, at most qw_max */
	size_t qw_n, qw_max;
	int64_t qw_oldest; /* depth: the oldest time seen (0 when none) */
};

/* queue_mine: whether k is a queue record of the walk's recipient. */
static bool queue_mine(const struct queue_walk *w, const MDB_val *k)
{
	return k->mv_size == w->qw_plen + 8 && memcmp(k->mv_data, w->qw_prefix, w->qw_plen) == 0;
}

static rete_err queue_peek_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
				bool *stop, rete_msg *m)
{
	struct queue_walk *w = arg;

	(void)txn;
	(void)v;
	(void)m;
	if (w->qw_n >= w->qw_max || !queue_mine(w, k)) {
		*stop = true;
		return RETE_OK;
	}
	w->qw_indexes[w->qw_n++] = be64_get((const uint8_t *)k->mv_data + w->qw_plen);
	return RETE_OK;
}

rete_err rete_store_queue_peek(rete_store *s, rete_store_rtxn *rt, const char *recipient,
			       uint64_t from, size_t max, uint64_t *indexes, size_t *n, rete_msg *m)
{
	uint8_t key[256 + 8];
	struct queue_walk w = {.qw_prefix = key, .qw_indexes = indexes, .qw_max = max};
	MDB_val k;
	rete_err err;

	if (n == NULL || (max > 0 && indexes == NULL))
		return rete_msg_set(m, RETE_EINVAL, "store: queue: no output given");
	*n = 0;
	if ((err = queue_prefix(s, recipient, key, &w.qw_plen, m)) != RETE_OK)
		return err;
	be64_put(key + w.qw_plen, from);
	k.mv_data = key;
	k.mv_size = w.qw_plen + 8;
	err =
	    walk(s, rt, STORE_DB(st_queue), &k, "store: reading the queue", queue_peek_step, &w, m);
	*n = w.qw_n;
	return err;
}

static rete_err queue_depth_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
				 bool *stop, rete_msg *m)
{
	struct queue_walk *w = arg;

	(void)txn;
	(void)m;
	if (!queue_mine(w, k)) {
		*stop = true;
		return RETE_OK;
	}
	if (v->mv_size == 8) {
		int64_t at = (int64_t)be64_get(v->mv_data);
		if (w->qw_n == 0 || at < w->qw_oldest)
			w->qw_oldest = at;
	}
	w->qw_n++;
	return RETE_OK;
}

rete_err rete_store_queue_depth(rete_store *s, rete_store_rtxn *rt, const char *recipient,
				uint64_t *depth, int64_t *oldest_at, rete_msg *m)
{
	uint8_t key[256 + 8];
	struct queue_walk w = {.qw_prefix = key};
	MDB_val k;
	rete_err err;

	if ((err = queue_prefix(s, recipient, key, &w.qw_plen, m)) != RETE_OK)
		return err;
	be64_put(key + w.qw_plen, 0);
	k.mv_data = key;
	k.mv_size = w.qw_plen + 8;
	err = walk(s, rt, STORE_DB(st_queue), &k, "store: reading the queue", queue_depth_step, &w,
		   m);
	if (depth != NULL)
		*depth = w.qw_n;
	if (oldest_at != NULL)
		*oldest_at = w.qw_oldest;
	return err;
}

/* expired_walk: rete_store_queue_expired's bound, callback and store. */
struct expired_walk {
	rete_store *xw_store;
	int64_t xw_before;
	rete_store_queue_fn xw_fn;
	void *xw_ctx;
};

static rete_err expired_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
			     bool *stop, rete_msg *m)
{
	struct expired_walk *w = arg;
	char recipient[256];
	size_t rl;
	int64_t at;

	(void)txn;
	if (k->mv_size < 10 || k->mv_size > 255 + 9 || v->mv_size != 8 ||
	    ((const uint8_t *)k->mv_data)[k->mv_size - 9] != 0)
		return rete_msg_set(m, RETE_ECORRUPT, "store %s: malformed queue record",
				    w->xw_store->st_dir);
	at = (int64_t)be64_get(v->mv_data);
	if (at >= w->xw_before)
		return RETE_OK;
	rl = k->mv_size - 9;
	memcpy(recipient, k->mv_data, rl);
	recipient[rl] = '\0';
	*stop =
	    w->xw_fn(w->xw_ctx, recipient, be64_get((const uint8_t *)k->mv_data + rl + 1), at) != 0;
	return RETE_OK;
}

rete_err rete_store_queue_expired(rete_store *s, rete_store_rtxn *rt, int64_t before_ms,
				  rete_store_queue_fn fn, void *ctx, rete_msg *m)
{
	struct expired_walk w = {s, before_ms, fn, ctx};

	if (fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no callback given");
	return walk(s, rt, STORE_DB(st_queue), NULL, "store: reading the queue", expired_step, &w,
		    m);
}

rete_err rete_store_blob(rete_store *s, rete_store_rtxn *rt, uint64_t index, rete_buf *out,
			 rete_msg *m)
{
	return copy_index(s, rt, STORE_DB(st_blobs), index, "sealed part of entry", out, m);
}

/* ---- projections -------------------------------------------------------- */

rete_err rete_store_referral(rete_store *s, rete_store_rtxn *rt, const char *id,
			     Rete__ReferralInfo **out, rete_msg *m)
{
	MDB_val k, v;
	MDB_txn *txn;
	bool own;
	rete_err err = RETE_OK;
	int rc;

	if (out == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no output given");
	*out = NULL;
	if (id == NULL || *id == '\0' || strlen(id) > 511)
		return rete_msg_set(m, RETE_ENOENT,
				    "store: no referral with an empty or over-long id");
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	k.mv_data = (void *)id;
	k.mv_size = strlen(id);
	rc = mdb_get(txn, s->st_referrals, &k, &v);
	if (rc == MDB_NOTFOUND)
		err = rete_msg_set(m, RETE_ENOENT, "store: no referral '%s'", id);
	else if (rc != 0)
		err = store_lmdb_err(m, rc, "store: reading a referral");
	else if ((*out = rete__referral_info__unpack(NULL, v.mv_size, v.mv_data)) == NULL)
		err = rete_msg_set(m, RETE_ECORRUPT, "store %s: referral '%s' does not decode",
				   s->st_dir, id);
	if (own)
		store_txn_done(s, txn);
	return err;
}

/* referral_walk: the callback and store of a walk that gives referrals,
 * and for rete_store_overdue_candidates the time due records end at. */
struct referral_walk {
	rete_store *rw_store;
	rete_store_referral_fn rw_fn;
	void *rw_ctx;
	int64_t rw_now;
};

/* referral_give decodes a referral record, hands it to the walk's callback
 * and frees it; name is the record's key, for the error (NULL: none). */
static rete_err referral_give(struct referral_walk *w, const MDB_val *rec, const MDB_val *name,
			      bool *stop, rete_msg *m)
{
	Rete__ReferralInfo *r = rete__referral_info__unpack(NULL, rec->mv_size, rec->mv_data);

	if (r == NULL && name != NULL)
		return rete_msg_set(m, RETE_ECORRUPT, "store %s: referral '%.*s' does not decode",
				    w->rw_store->st_dir,
				    (int)(name->mv_size > 200 ? 200 : name->mv_size),
				    (const char *)name->mv_data);
	if (r == NULL)
		return rete_msg_set(m, RETE_ECORRUPT, "store %s: a referral does not decode",
				    w->rw_store->st_dir);
	*stop = w->rw_fn(w->rw_ctx, r) != 0;
	rete__referral_info__free_unpacked(r, NULL);
	return RETE_OK;
}

static rete_err referrals_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
			       bool *stop, rete_msg *m)
{
	(void)txn;
	return referral_give(arg, v, k, stop, m);
}

rete_err rete_store_referrals_iter(rete_store *s, rete_store_rtxn *rt, rete_store_referral_fn fn,
				   void *ctx, rete_msg *m)
{
	struct referral_walk w = {s, fn, ctx, 0};

	if (fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no callback given");
	return walk(s, rt, STORE_DB(st_referrals), NULL, "store: reading referrals", referrals_step,
		    &w, m);
}

/* A due record: due time BE64 then the referral id; the walk ends at the
 * first one not yet due. */
static rete_err overdue_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
			     bool *stop, rete_msg *m)
{
	struct referral_walk *w = arg;
	MDB_val rk, rv;
	int rc;

	(void)v;
	if (k->mv_size <= 8)
		return rete_msg_set(m, RETE_ECORRUPT, "store %s: malformed due record",
				    w->rw_store->st_dir);
	if ((int64_t)be64_get(k->mv_data) >= w->rw_now) {
		*stop = true;
		return RETE_OK;
	}
	rk.mv_data = (uint8_t *)k->mv_data + 8;
	rk.mv_size = k->mv_size - 8;
	if ((rc = mdb_get(txn, w->rw_store->st_referrals, &rk, &rv)) != 0)
		return rc == MDB_NOTFOUND
			   ? rete_msg_set(m, RETE_ECORRUPT,
					  "store %s: due record of a missing referral",
					  w->rw_store->st_dir)
			   : store_lmdb_err(m, rc, "store: reading a referral");
	return referral_give(w, &rv, NULL, stop, m);
}

rete_err rete_store_overdue_candidates(rete_store *s, rete_store_rtxn *rt, int64_t now_ms,
				       rete_store_referral_fn fn, void *ctx, rete_msg *m)
{
	struct referral_walk w = {s, fn, ctx, now_ms};

	if (fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no callback given");
	return walk(s, rt, STORE_DB(st_due), NULL, "store: reading due times", overdue_step, &w, m);
}

/* case_walk: the case key prefix (id "\0") and rete_store_case_entries'
 * callback. */
struct case_walk {
	const uint8_t *cw_prefix;
	size_t cw_plen;
	rete_store_index_fn cw_fn;
	void *cw_ctx;
};

static rete_err case_step(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v, bool *stop,
			  rete_msg *m)
{
	struct case_walk *w = arg;

	(void)txn;
	(void)v;
	(void)m;
	if (k->mv_size != w->cw_plen + 8 || memcmp(k->mv_data, w->cw_prefix, w->cw_plen) != 0)
		*stop = true;
	else
		*stop =
		    w->cw_fn(w->cw_ctx, be64_get((const uint8_t *)k->mv_data + w->cw_plen)) != 0;
	return RETE_OK;
}

rete_err rete_store_case_entries(rete_store *s, rete_store_rtxn *rt, const char *case_id,
				 rete_store_index_fn fn, void *ctx, rete_msg *m)
{
	uint8_t key[512];
	size_t cl = case_id ? strlen(case_id) : 0;
	struct case_walk w = {key, cl + 1, fn, ctx};
	MDB_val k = {cl + 9, key};

	if (fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no callback given");
	if (cl == 0)
		return rete_msg_set(m, RETE_EINVAL, "store: empty case id");
	if (cl + 9 > 511)
		return RETE_OK; /* could not have been indexed: no entries */
	memcpy(key, case_id, cl);
	key[cl] = '\0';
	be64_put(key + cl + 1, 0);
	return walk(s, rt, STORE_DB(st_cases), &k, "store: reading the case index", case_step, &w,
		    m);
}

rete_err rete_store_directory(rete_store *s, rete_store_rtxn *rt, uint64_t *index, rete_buf *entry,
			      rete_msg *m)
{
	MDB_val k = {strlen(META_DIRECTORY), (void *)META_DIRECTORY}, v;
	MDB_txn *txn;
	bool own;
	rete_err err = RETE_OK;
	int rc;

	if (entry != NULL) {
		entry->data = NULL;
		entry->len = 0;
	}
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	rc = mdb_get(txn, s->st_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		err = rete_msg_set(m, RETE_ENOENT, "store %s: no Directory logged yet", s->st_dir);
	} else if (rc != 0) {
		err = store_lmdb_err(m, rc, "store: reading the directory index");
	} else if (v.mv_size != 8) {
		err = rete_msg_set(m, RETE_ECORRUPT, "store %s: malformed directory index",
				   s->st_dir);
	} else {
		uint8_t key[8];
		MDB_val ek = {8, key};
		uint64_t idx = be64_get(v.mv_data);
		if (index != NULL)
			*index = idx;
		if (entry != NULL) {
			memcpy(key, v.mv_data, 8);
			err = get_copy(txn, s->st_entries, &ek, entry, m,
				       "store: the Directory entry in force");
			if (err == RETE_ENOENT)
				err = rete_msg_set(m, RETE_ECORRUPT,
						   "store %s: the Directory in force (entry %llu) "
						   "is missing",
						   s->st_dir, (unsigned long long)idx);
		}
	}
	if (own)
		store_txn_done(s, txn);
	return err;
}

char *rete_store_time_zone(rete_store *s, rete_store_rtxn *rt)
{
	uint64_t idx;
	rete_buf e = {0};
	Rete__LogEntry *le;
	Rete__Message *msg = NULL;
	char *tz = NULL;

	if (rete_store_directory(s, rt, &idx, &e, NULL) != RETE_OK)
		return NULL;
	le = rete__log_entry__unpack(NULL, e.len, e.data);
	rete_buf_free(&e);
	if (le == NULL)
		return NULL;
	if (rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &msg, NULL) ==
		RETE_OK &&
	    msg->body_case == RETE__MESSAGE__BODY_DIRECTORY && msg->directory->time_zone != NULL &&
	    msg->directory->time_zone[0] != '\0')
		tz = strdup(msg->directory->time_zone);
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	return tz;
}

rete_err rete_store_msgid(rete_store *s, rete_store_rtxn *rt, const char *sender, const char *id,
			  uint64_t *index, uint8_t sha256[RETE_HASH_LEN], int64_t *logged_at,
			  rete_msg *m)
{
	uint8_t key[512];
	size_t sl = sender ? strlen(sender) : 0, il = id ? strlen(id) : 0;
	MDB_val k, v;
	MDB_txn *txn;
	bool own;
	rete_err err = RETE_OK;
	int rc;

	if (sl == 0 || il == 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "store: message id look-up needs a sender and an id");
	if (sl + 1 + il > 511)
		return rete_msg_set(m, RETE_ENOENT, "store: no message '%s' from '%s'", id, sender);
	memcpy(key, sender, sl);
	key[sl] = '\0';
	memcpy(key + sl + 1, id, il);
	k.mv_data = key;
	k.mv_size = sl + 1 + il;
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	rc = mdb_get(txn, s->st_msgids, &k, &v);
	if (rc == MDB_NOTFOUND) {
		err = rete_msg_set(m, RETE_ENOENT, "store: no message '%s' from '%s'", id, sender);
	} else if (rc != 0) {
		err = store_lmdb_err(m, rc, "store: reading the message id index");
	} else if (v.mv_size != 8 + RETE_HASH_LEN + 8) {
		err = rete_msg_set(m, RETE_ECORRUPT, "store %s: malformed message id record",
				   s->st_dir);
	} else {
		const uint8_t *p = v.mv_data;
		if (index != NULL)
			*index = be64_get(p);
		if (sha256 != NULL)
			memcpy(sha256, p + 8, RETE_HASH_LEN);
		if (logged_at != NULL)
			*logged_at = (int64_t)be64_get(p + 8 + RETE_HASH_LEN);
	}
	if (own)
		store_txn_done(s, txn);
	return err;
}

rete_err rete_store_stats(rete_store *s, uint64_t *map_size, uint64_t *map_used, rete_msg *m)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store given");
	pthread_rwlock_rdlock(&s->st_grow);
	if (s->st_env == NULL) {
		pthread_rwlock_unlock(&s->st_grow);
		return rete_msg_set(m, RETE_ESTORE, "store %s: the environment is closed",
				    s->st_dir);
	}
	rc = mdb_env_info(s->st_env, &info);
	if (rc == 0)
		rc = mdb_env_stat(s->st_env, &st);
	pthread_rwlock_unlock(&s->st_grow);
	if (rc != 0)
		return store_lmdb_err(m, rc, "store: reading statistics");
	if (map_size != NULL)
		*map_size = info.me_mapsize;
	if (map_used != NULL)
		*map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	return RETE_OK;
}
