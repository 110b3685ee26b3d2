/* agent_db.c — see agent_db.h. */
#include "agent_db.h"
#include "store_check.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const db_names[AGENT_DB_COUNT] = {
    "outbox",  "pins", "pending", "inbox", "referrals", "hooks",
    "witness", "meta", "held",	  "seen",  "ids",	"persons",
};

struct agent_db {
	MDB_env *env;
	MDB_dbi dbi[AGENT_DB_COUNT];
	MDB_txn *txn;  /* the write transaction begun by agent_db_begin */
	bool txn_full; /* a put in it met a full map: commit grows and fails */
	bool rdonly;
	bool absent[AGENT_DB_COUNT]; /* read-only, and not in this store yet */
	size_t map_size;
	unsigned schema_was; /* agent_db_schema_was */
	bool schema_ours;    /* the store records AGENT_STORE_SCHEMA (committed) */
	bool schema_staged;  /* ... in the open transaction (agent_db_schema_record) */
};

#define OUTREC_VERSION_1 1 /* schema 2: no content hash */
#define OUTREC_VERSION	 2

void agent_outrec_free(agent_outrec *r)
{
	if (r == NULL)
		return;
	rete_buf_free(&r->signed_msg);
	rete_buf_free(&r->sealed);
}

static rete_err db_lmdb_err(rete_msg *m, int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		return rete_msg_set(m, RETE_EFULL, "agent store: %s: the map is full", what);
	if (rc == ENOSPC)
		return rete_msg_set(m, RETE_EFULL, "agent store: %s: the disk is full", what);
	return rete_msg_set(m, RETE_ESTORE, "agent store: %s: %s", what, mdb_strerror(rc));
}

/* db_grow doubles the map; LMDB allows it only with no transaction open in
 * this process, which holds here: the agent has one thread and the caller
 * has just aborted its transaction. */
static void db_grow(agent_db *db)
{
	size_t want = db->map_size * 2;
	if (mdb_env_set_mapsize(db->env, want) == 0)
		db->map_size = want;
}

/* db_rtxn begins a read transaction, adopting a map grown by the writer
 * (MDB_MAP_RESIZED) when we are a reader in another process. */
static int db_rtxn(agent_db *db, MDB_txn **txn)
{
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(db->env, 0);
		rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn);
	}
	return rc;
}

/* schema_put records AGENT_STORE_SCHEMA in txn. */
static rete_err schema_put(agent_db *db, MDB_txn *txn, const char *dir, rete_msg *m)
{
	MDB_val k = {6, (void *)"schema"};
	char num[16];
	int n = snprintf(num, sizeof(num), "%d", AGENT_STORE_SCHEMA);
	MDB_val nv = {(size_t)n, num};
	int rc = mdb_put(txn, db->dbi[AGENT_DB_META], &k, &nv, 0);
	if (rc == MDB_MAP_FULL) {
		if (txn == db->txn)
			db->txn_full = true;
		return rete_msg_set(m, RETE_EFULL,
				    "%s: no room in the agent store to record its schema: raise "
				    "[agent] map_size",
				    dir);
	}
	return rc == 0
		   ? RETE_OK
		   : rete_msg_set(m, RETE_ESTORE, "%s: cannot record the agent store's schema: %s",
				  dir, mdb_strerror(rc));
}

/* schema_check reads the store's schema record in txn (AGENT_STORE_SCHEMA
 * in agent_db.h): a later schema is refused. Only a store created now
 * (fresh) gets our record here: one of an earlier schema keeps its own
 * until the agent's start upgrades it (agent_db_schema_record). */
static rete_err schema_check(agent_db *db, MDB_txn *txn, const char *dir, bool fresh, rete_msg *m)
{
	MDB_val k = {6, (void *)"schema"}, v;
	char num[16];
	int rc = mdb_get(txn, db->dbi[AGENT_DB_META], &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rete_msg_set(m, RETE_ESTORE, "%s: cannot read the agent store's schema: %s",
				    dir, mdb_strerror(rc));
	unsigned long have = 0;
	if (rc == 0) {
		char *end = NULL;
		if (v.mv_size == 0 || v.mv_size >= sizeof(num))
			goto bad;
		memcpy(num, v.mv_data, v.mv_size);
		num[v.mv_size] = '\0';
		if (num[0] < '1' || num[0] > '9')
			goto bad;
		errno = 0;
		have = strtoul(num, &end, 10);
		if (errno != 0 || *end != '\0')
			goto bad;
		if (have > AGENT_STORE_SCHEMA)
			return rete_msg_set(
			    m, RETE_EVERSION,
			    "%s: the agent store has schema %lu, and this agent reads schema %d "
			    "at most: a newer rete-agent wrote it. Run that version of rete-agent "
			    "(or a later one) on this folder; to go back to an older one, see "
			    "\"Upgrades and downgrades\" in docs/agent.md",
			    dir, have, AGENT_STORE_SCHEMA);
	}
	db->schema_was = (unsigned)have;
	if (db->rdonly || have != 0 || !fresh)
		return RETE_OK;
	/* a store created now is of our schema, not "from before the record" */
	rete_err err = schema_put(db, txn, dir, m);
	if (err == RETE_OK)
		db->schema_was = AGENT_STORE_SCHEMA;
	return err;
bad:
	return rete_msg_set(m, RETE_ECORRUPT,
			    "%s: the agent store's schema record (%zu bytes) is not a decimal "
			    "number from 1 to %d, as this agent writes it: the store is damaged; "
			    "restore the folder from a backup",
			    dir, v.mv_size, AGENT_STORE_SCHEMA);
}

rete_err agent_db_open(const char *dir, bool rdonly, uint64_t map_size, agent_db **out, rete_msg *m)
{
	agent_db *db;
	MDB_txn *txn = NULL;
	rete_err err;
	int rc;

	*out = NULL;
	if (!rdonly && mkdir(dir, 0700) != 0 && errno != EEXIST)
		return rete_msg_set(m, RETE_EIO, "%s: cannot create the data folder: %s", dir,
				    strerror(errno));
	if (rdonly) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		if (stat(path, &st) != 0)
			return rete_msg_set(m, RETE_ENOENT,
					    "%s: no agent store here yet (has the agent run?)",
					    dir);
	}
	{
		/* a cut or garbled data.mdb would crash LMDB: refuse it first */
		char path[4096];
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		rete_err ce = access(path, F_OK) == 0 ? rete_store_file_check(path, m) : RETE_OK;
		if (ce != RETE_OK)
			return ce;
	}
	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	db->rdonly = rdonly;
	db->map_size = map_size ? (size_t)map_size : (size_t)256 << 20;
	char mdb_path[4096];
	struct stat mdb_st;
	snprintf(mdb_path, sizeof(mdb_path), "%s/data.mdb", dir);
	bool fresh = stat(mdb_path, &mdb_st) != 0 || mdb_st.st_size == 0;
	if ((rc = mdb_env_create(&db->env)) != 0)
		goto fail;
	mdb_env_set_maxdbs(db->env, AGENT_DB_COUNT + 2);
	mdb_env_set_maxreaders(db->env, 32);
	if (!rdonly && (rc = mdb_env_set_mapsize(db->env, db->map_size)) != 0)
		goto fail;
	rc = mdb_env_open(db->env, dir, rdonly ? MDB_RDONLY : 0, 0600);
	if (rc != 0)
		goto fail;
	/* Reader slots left by killed readers (a `rete status` stopped with
	 * kill -9) would pin old pages forever: clear them. */
	if (!rdonly) {
		int dead = 0;
		mdb_reader_check(db->env, &dead);
	}
	/* The map may be larger than asked: an earlier run grew it. Growing
	 * starts from what it really is. */
	MDB_envinfo info;
	if (mdb_env_info(db->env, &info) == 0 && info.me_mapsize > db->map_size)
		db->map_size = info.me_mapsize;
	if (rdonly) {
		rc = db_rtxn(db, &txn);
	} else {
		rc = mdb_txn_begin(db->env, NULL, 0, &txn);
	}
	if (rc != 0)
		goto fail;
	/* meta first: its schema record says whether the rest is ours to read */
	rc = mdb_dbi_open(txn, db_names[AGENT_DB_META], rdonly ? 0 : MDB_CREATE,
			  &db->dbi[AGENT_DB_META]);
	if (rc != 0)
		goto fail;
	err = schema_check(db, txn, dir, fresh, m);
	if (err != RETE_OK)
		goto out;
	for (int i = 0; i < AGENT_DB_COUNT; i++) {
		if (i == AGENT_DB_META)
			continue;
		rc = mdb_dbi_open(txn, db_names[i], rdonly ? 0 : MDB_CREATE, &db->dbi[i]);
		if (rc == MDB_NOTFOUND && rdonly && i >= AGENT_DB_HELD) {
			/* A store the agent has not opened since these databases
			 * came: read as empty. */
			db->absent[i] = true;
			rc = 0;
		}
		if (rc != 0)
			goto fail;
	}
	/* Committed even when read-only: handles opened in an aborted
	 * transaction are closed with it. */
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto fail;
	db->schema_ours = db->schema_was == AGENT_STORE_SCHEMA;
	*out = db;
	return RETE_OK;
fail:
	err = rc == MDB_NOTFOUND
		  ? rete_msg_set(m, RETE_ENOENT, "%s: agent store is not complete", dir)
		  : rete_msg_set(m, RETE_ESTORE, "%s: cannot open the agent store: %s", dir,
				 mdb_strerror(rc));
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (db->env != NULL)
		mdb_env_close(db->env);
	free(db);
	return err;
}

unsigned agent_db_schema_was(const agent_db *db)
{
	return db->schema_was;
}

rete_err agent_db_schema_record(agent_db *db, rete_msg *m)
{
	if (db->schema_ours || db->schema_staged)
		return RETE_OK;
	if (db->txn == NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "agent store: the schema is recorded in a "
				    "write transaction (agent_db_begin)");
	rete_err err = schema_put(db, db->txn, "agent store", m);
	db->schema_staged = err == RETE_OK;
	return err;
}

void agent_db_close(agent_db **pdb)
{
	if (pdb == NULL || *pdb == NULL)
		return;
	agent_db *db = *pdb;
	if (db->txn != NULL)
		mdb_txn_abort(db->txn);
	mdb_env_close(db->env);
	free(db);
	*pdb = NULL;
}

rete_err agent_db_begin(agent_db *db, rete_msg *m)
{
	if (db->rdonly || db->txn != NULL)
		return rete_msg_set(m, RETE_EINVAL, "agent store: a write transaction is %s",
				    db->rdonly ? "impossible read-only" : "already open");
	int rc = mdb_txn_begin(db->env, NULL, 0, &db->txn);
	if (rc != 0) {
		db->txn = NULL;
		return db_lmdb_err(m, rc, "begin");
	}
	return RETE_OK;
}

bool agent_db_in_txn(const agent_db *db)
{
	return db->txn != NULL;
}

rete_err agent_db_commit(agent_db *db, rete_msg *m)
{
	if (db->txn == NULL)
		return RETE_OK;
	if (db->txn_full) {
		/* LMDB leaves a transaction that met MDB_MAP_FULL unusable. */
		mdb_txn_abort(db->txn);
		db->txn = NULL;
		db->txn_full = false;
		db->schema_staged = false;
		db_grow(db);
		return db_lmdb_err(m, MDB_MAP_FULL, "commit");
	}
	int rc = mdb_txn_commit(db->txn);
	db->txn = NULL;
	if (rc == 0 && db->schema_staged)
		db->schema_ours = true;
	db->schema_staged = false;
	if (rc == MDB_MAP_FULL) {
		db_grow(db);
		return db_lmdb_err(m, rc, "commit");
	}
	return rc == 0 ? RETE_OK : db_lmdb_err(m, rc, "commit");
}

void agent_db_abort(agent_db *db)
{
	if (db != NULL && db->txn != NULL) {
		mdb_txn_abort(db->txn);
		db->txn = NULL;
		db->schema_staged = false;
	}
	if (db != NULL && db->txn_full) {
		/* Dropped because the map was full: grow it for the retry. */
		db->txn_full = false;
		db_grow(db);
	}
}

rete_err agent_db_end(agent_db *db, rete_err err, rete_msg *m)
{
	if (err == RETE_OK)
		return agent_db_commit(db, m);
	agent_db_abort(db);
	return err;
}

rete_err agent_db_get(agent_db *db, agent_dbi dbi, const void *key, size_t klen, rete_buf *val,
		      rete_msg *m)
{
	MDB_txn *txn = db->txn;
	MDB_val k = {klen, (void *)key}, v;
	int rc;
	rete_err err = RETE_OK;

	val->data = NULL;
	val->len = 0;
	if (db->absent[dbi])
		return RETE_ENOENT;
	if (txn == NULL && (rc = db_rtxn(db, &txn)) != 0)
		return db_lmdb_err(m, rc, "read");
	rc = mdb_get(txn, db->dbi[dbi], &k, &v);
	if (rc == MDB_NOTFOUND) {
		err = RETE_ENOENT;
	} else if (rc != 0) {
		err = db_lmdb_err(m, rc, "read");
	} else {
		val->data = malloc(v.mv_size ? v.mv_size : 1);
		if (val->data == NULL) {
			err = rete_msg_set(m, RETE_ENOMEM, "out of memory");
		} else {
			memcpy(val->data, v.mv_data, v.mv_size);
			val->len = v.mv_size;
		}
	}
	if (txn != db->txn)
		mdb_txn_abort(txn);
	return err;
}

rete_err agent_db_put(agent_db *db, agent_dbi dbi, const void *key, size_t klen, const void *val,
		      size_t vlen, rete_msg *m)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	int rc;

	if (db->txn != NULL) {
		rc = mdb_put(db->txn, db->dbi[dbi], &k, &v, 0);
		if (rc == MDB_MAP_FULL)
			db->txn_full = true;
		return rc == 0 ? RETE_OK : db_lmdb_err(m, rc, "write");
	}
	if (db->rdonly)
		return rete_msg_set(m, RETE_EINVAL, "agent store: opened read-only");
	for (int attempt = 0; attempt < 4; attempt++) {
		MDB_txn *txn;
		if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
			return db_lmdb_err(m, rc, "begin");
		rc = mdb_put(txn, db->dbi[dbi], &k, &v, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL)
			break;
		db_grow(db);
	}
	return rc == 0 ? RETE_OK : db_lmdb_err(m, rc, "write");
}

bool agent_db_get_u32(agent_db *db, agent_dbi dbi, const void *key, size_t klen, uint32_t *out)
{
	rete_buf v;
	rete_msg m = {{0}};
	bool have = false;
	if (agent_db_get(db, dbi, key, klen, &v, &m) == RETE_OK) {
		if (v.len == 4) {
			*out = (uint32_t)v.data[0] << 24 | (uint32_t)v.data[1] << 16 |
			       (uint32_t)v.data[2] << 8 | v.data[3];
			have = true;
		}
		rete_buf_free(&v);
	}
	return have;
}

rete_err agent_db_del(agent_db *db, agent_dbi dbi, const void *key, size_t klen, rete_msg *m)
{
	MDB_val k = {klen, (void *)key};
	MDB_txn *txn = db->txn;
	int rc;

	if (txn == NULL && (rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		return db_lmdb_err(m, rc, "begin");
	rc = mdb_del(txn, db->dbi[dbi], &k, NULL);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc == MDB_MAP_FULL && txn == db->txn)
		db->txn_full = true;
	if (txn != db->txn) {
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	return rc == 0 ? RETE_OK : db_lmdb_err(m, rc, "delete");
}

rete_err agent_db_each(agent_db *db, agent_dbi dbi,
		       bool (*fn)(const void *key, size_t klen, const void *val, size_t vlen,
				  void *user),
		       void *user, rete_msg *m)
{
	return agent_db_each_from(db, dbi, NULL, 0, fn, user, m);
}

rete_err agent_db_each_from(agent_db *db, agent_dbi dbi, const void *from, size_t flen,
			    bool (*fn)(const void *key, size_t klen, const void *val, size_t vlen,
				       void *user),
			    void *user, rete_msg *m)
{
	MDB_txn *txn = db->txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (db->absent[dbi])
		return RETE_OK;
	if (txn == NULL && (rc = db_rtxn(db, &txn)) != 0)
		return db_lmdb_err(m, rc, "read");
	rc = mdb_cursor_open(txn, db->dbi[dbi], &cur);
	if (rc == 0) {
		k.mv_data = (void *)from;
		k.mv_size = flen;
		for (rc = mdb_cursor_get(cur, &k, &v, from ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (!fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, user))
				break;
		if (rc == MDB_NOTFOUND)
			rc = 0;
		mdb_cursor_close(cur);
	}
	if (txn != db->txn)
		mdb_txn_abort(txn);
	return rc == 0 ? RETE_OK : db_lmdb_err(m, rc, "read");
}

/* --- outbox records ---------------------------------------------------- */

static size_t outbox_key(uint8_t *key, size_t cap, const char *name,
			 const uint8_t hash[RETE_HASH_LEN])
{
	size_t n = strlen(name);
	if (n + 1 + RETE_HASH_LEN > cap)
		n = cap - 1 - RETE_HASH_LEN;
	memcpy(key, name, n);
	key[n] = 0;
	memcpy(key + n + 1, hash, RETE_HASH_LEN);
	return n + 1 + RETE_HASH_LEN;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = (v << 8) | p[i];
	return v;
}

void agent_db_index_key(uint8_t key[8], uint64_t index)
{
	put_be(key, index, 8);
}

/* Record layout 2: version u8 (2), state u8, id length u16, id, minted_at
 * u64, content hash [32], signed length u32, signed bytes, sealed length
 * u32, sealed bytes. Layout 1 (schema 2) has no content hash. */
rete_err agent_db_outbox_put(agent_db *db, const char *name, const uint8_t hash[RETE_HASH_LEN],
			     const agent_outrec *r, rete_msg *m)
{
	uint8_t key[480];
	size_t klen = outbox_key(key, sizeof(key), name, hash);
	size_t idlen = strlen(r->id);
	size_t hl = r->have_content ? RETE_HASH_LEN : 0;
	size_t n = 2 + 2 + idlen + 8 + hl + 4 + r->signed_msg.len + 4 + r->sealed.len;
	uint8_t *v, *p;
	rete_err err;

	/* An agent of an earlier schema does not parse layout 2: it goes only
	 * into a store that records ours (which such an agent refuses). */
	if (r->have_content && !db->schema_ours && !db->schema_staged)
		return rete_msg_set(m, RETE_EINVAL,
				    "agent store: the outbox record of %s keeps its content hash "
				    "(schema %d), and the store records schema %u: the start "
				    "upgrades it first",
				    name, AGENT_STORE_SCHEMA, db->schema_was);
	if ((v = malloc(n)) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	p = v;
	*p++ = r->have_content ? OUTREC_VERSION : OUTREC_VERSION_1;
	*p++ = (uint8_t)r->state;
	put_be(p, idlen, 2), p += 2;
	memcpy(p, r->id, idlen), p += idlen;
	put_be(p, (uint64_t)r->minted_at, 8), p += 8;
	if (hl)
		memcpy(p, r->content, hl), p += hl;
	put_be(p, r->signed_msg.len, 4), p += 4;
	if (r->signed_msg.len)
		memcpy(p, r->signed_msg.data, r->signed_msg.len), p += r->signed_msg.len;
	put_be(p, r->sealed.len, 4), p += 4;
	if (r->sealed.len)
		memcpy(p, r->sealed.data, r->sealed.len);
	err = agent_db_put(db, AGENT_DB_OUTBOX, key, klen, v, n, m);
	free(v);
	return err;
}

static rete_err outrec_bytes(rete_buf *dst, const uint8_t **p, const uint8_t *end)
{
	if (end - *p < 4)
		return RETE_ECORRUPT;
	size_t n = (size_t)get_be(*p, 4);
	*p += 4;
	if ((size_t)(end - *p) < n)
		return RETE_ECORRUPT;
	dst->data = malloc(n ? n : 1);
	if (dst->data == NULL)
		return RETE_ENOMEM;
	memcpy(dst->data, *p, n);
	dst->len = n;
	*p += n;
	return RETE_OK;
}

rete_err agent_db_outbox_get(agent_db *db, const char *name, const uint8_t hash[RETE_HASH_LEN],
			     agent_outrec *r, rete_msg *m)
{
	uint8_t key[480];
	size_t klen = outbox_key(key, sizeof(key), name, hash);
	rete_buf v;
	rete_err err;

	memset(r, 0, sizeof(*r));
	if ((err = agent_db_get(db, AGENT_DB_OUTBOX, key, klen, &v, m)) != RETE_OK)
		return err;
	const uint8_t *p = v.data, *end = v.data + v.len;
	err = RETE_ECORRUPT;
	if (v.len < 4 || (p[0] != OUTREC_VERSION && p[0] != OUTREC_VERSION_1))
		goto out;
	r->have_content = p[0] == OUTREC_VERSION;
	r->state = p[1];
	size_t idlen = (size_t)get_be(p + 2, 2);
	size_t hl = r->have_content ? RETE_HASH_LEN : 0;
	p += 4;
	if (idlen >= sizeof(r->id) || (size_t)(end - p) < idlen + 8 + hl)
		goto out;
	memcpy(r->id, p, idlen);
	r->id[idlen] = '\0';
	p += idlen;
	r->minted_at = (int64_t)get_be(p, 8);
	p += 8;
	memcpy(r->content, p, hl);
	p += hl;
	if ((err = outrec_bytes(&r->signed_msg, &p, end)) != RETE_OK)
		goto out;
	err = outrec_bytes(&r->sealed, &p, end);
out:
	rete_buf_free(&v);
	if (err != RETE_OK) {
		agent_outrec_free(r);
		return rete_msg_set(m, err, "agent store: the outbox record of %s %s", name,
				    err == RETE_ENOMEM ? ": out of memory" : "does not parse");
	}
	return RETE_OK;
}

bool agent_db_outbox_layout1(const void *val, size_t vlen)
{
	return vlen > 0 && ((const uint8_t *)val)[0] == OUTREC_VERSION_1;
}

rete_err agent_db_outbox_del(agent_db *db, const char *name, const uint8_t hash[RETE_HASH_LEN],
			     rete_msg *m)
{
	uint8_t key[480];
	size_t klen = outbox_key(key, sizeof(key), name, hash);
	return agent_db_del(db, AGENT_DB_OUTBOX, key, klen, m);
}

/* --- held messages ------------------------------------------------------- */

#define HELD_VERSION_1 1 /* before the resubmission rounds: round 0 */
#define HELD_VERSION   2
#define IDREC_VERSION  1

void agent_held_free(agent_held *h)
{
	if (h == NULL)
		return;
	rete_buf_free(&h->signed_msg);
	rete_buf_free(&h->sealed);
}

/* Record layout: version u8 (2), index u64, leaf [32], round u64, signed
 * length u32, signed bytes, sealed length u32, sealed bytes. Version 1 had
 * no round (read as round 0). */
rete_err agent_db_held_put(agent_db *db, const char *id, const agent_held *h, rete_msg *m)
{
	size_t n = 1 + 8 + RETE_HASH_LEN + 8 + 4 + h->signed_msg.len + 4 + h->sealed.len;
	uint8_t *v = malloc(n), *p;
	if (v == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	p = v;
	*p++ = HELD_VERSION;
	put_be(p, h->index, 8), p += 8;
	memcpy(p, h->leaf, RETE_HASH_LEN), p += RETE_HASH_LEN;
	put_be(p, h->round, 8), p += 8;
	put_be(p, h->signed_msg.len, 4), p += 4;
	if (h->signed_msg.len)
		memcpy(p, h->signed_msg.data, h->signed_msg.len), p += h->signed_msg.len;
	put_be(p, h->sealed.len, 4), p += 4;
	if (h->sealed.len)
		memcpy(p, h->sealed.data, h->sealed.len);
	rete_err err = agent_db_put(db, AGENT_DB_HELD, id, strlen(id), v, n, m);
	free(v);
	return err;
}

rete_err agent_db_held_parse(const void *val, size_t vlen, agent_held *h)
{
	const uint8_t *p = val, *end = p + vlen;
	rete_err err;
	memset(h, 0, sizeof(*h));
	if (vlen < 1 + 8 + RETE_HASH_LEN || (p[0] != HELD_VERSION && p[0] != HELD_VERSION_1))
		return RETE_ECORRUPT;
	bool v1 = p[0] == HELD_VERSION_1;
	h->index = get_be(p + 1, 8);
	memcpy(h->leaf, p + 9, RETE_HASH_LEN);
	p += 1 + 8 + RETE_HASH_LEN;
	if (!v1) {
		if (end - p < 8)
			return RETE_ECORRUPT;
		h->round = get_be(p, 8);
		p += 8;
	}
	if ((err = outrec_bytes(&h->signed_msg, &p, end)) == RETE_OK)
		err = outrec_bytes(&h->sealed, &p, end);
	if (err != RETE_OK)
		agent_held_free(h);
	return err;
}

rete_err agent_db_held_view(const void *val, size_t vlen, uint64_t *index,
			    const uint8_t **signed_msg, size_t *signed_len)
{
	const uint8_t *p = val, *end = p + vlen;
	if (vlen < 1 + 8 + RETE_HASH_LEN || (p[0] != HELD_VERSION && p[0] != HELD_VERSION_1))
		return RETE_ECORRUPT;
	bool v1 = p[0] == HELD_VERSION_1;
	*index = get_be(p + 1, 8);
	p += 1 + 8 + RETE_HASH_LEN + (v1 ? 0 : 8);
	if (end - p < 4)
		return RETE_ECORRUPT;
	size_t n = (size_t)get_be(p, 4);
	p += 4;
	if ((size_t)(end - p) < n)
		return RETE_ECORRUPT;
	*signed_msg = p;
	*signed_len = n;
	return RETE_OK;
}

rete_err agent_db_held_get(agent_db *db, const char *id, agent_held *h, rete_msg *m)
{
	rete_buf v;
	memset(h, 0, sizeof(*h));
	rete_err err = agent_db_get(db, AGENT_DB_HELD, id, strlen(id), &v, m);
	if (err != RETE_OK)
		return err;
	err = agent_db_held_parse(v.data, v.len, h);
	rete_buf_free(&v);
	if (err != RETE_OK)
		return rete_msg_set(m, err, "agent store: the held record of %s %s", id,
				    err == RETE_ENOMEM ? ": out of memory" : "does not parse");
	return RETE_OK;
}

/* --- message ids and their receipts --------------------------------------- */

/* Record layout: version u8, content hash [32], index u64, receipt JSON. */
rete_err agent_db_id_put(agent_db *db, const char *id, const agent_idrec *r, rete_msg *m)
{
	size_t jl = r->receipt_json ? strlen(r->receipt_json) : 0;
	size_t n = 1 + RETE_HASH_LEN + 8 + jl;
	uint8_t *v = malloc(n);
	if (v == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	v[0] = IDREC_VERSION;
	memcpy(v + 1, r->content, RETE_HASH_LEN);
	put_be(v + 1 + RETE_HASH_LEN, r->index, 8);
	if (jl)
		memcpy(v + 1 + RETE_HASH_LEN + 8, r->receipt_json, jl);
	rete_err err = agent_db_put(db, AGENT_DB_IDS, id, strlen(id), v, n, m);
	free(v);
	return err;
}

rete_err agent_db_id_get(agent_db *db, const char *id, agent_idrec *r, rete_msg *m)
{
	rete_buf v;
	memset(r, 0, sizeof(*r));
	rete_err err = agent_db_get(db, AGENT_DB_IDS, id, strlen(id), &v, m);
	if (err != RETE_OK)
		return err;
	const size_t head = 1 + RETE_HASH_LEN + 8;
	if (v.len < head || v.data[0] != IDREC_VERSION) {
		rete_buf_free(&v);
		return rete_msg_set(m, RETE_ECORRUPT,
				    "agent store: the receipt record of %s does not parse", id);
	}
	memcpy(r->content, v.data + 1, RETE_HASH_LEN);
	r->index = get_be(v.data + 1 + RETE_HASH_LEN, 8);
	r->receipt_json = malloc(v.len - head + 1);
	if (r->receipt_json == NULL) {
		rete_buf_free(&v);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	memcpy(r->receipt_json, v.data + head, v.len - head);
	r->receipt_json[v.len - head] = '\0';
	rete_buf_free(&v);
	return RETE_OK;
}

size_t agent_db_seen_key(uint8_t *key, size_t cap, const char *sender, const char *id,
			 const uint8_t hash[RETE_HASH_LEN])
{
	size_t sl = strlen(sender), il = strlen(id), n = sl + 1 + il + 1 + RETE_HASH_LEN;
	if (n > cap)
		return 0;
	memcpy(key, sender, sl);
	key[sl] = 0;
	memcpy(key + sl + 1, id, il);
	key[sl + 1 + il] = 0;
	memcpy(key + sl + 1 + il + 1, hash, RETE_HASH_LEN);
	return n;
}
