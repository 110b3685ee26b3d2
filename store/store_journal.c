/* store_journal.c — the broker store's journal (schema 4): a batch made
 * durable by one flush of a small file, so that its receipts need not wait
 * for LMDB's commit.
 *
 * LMDB makes a commit durable with two flushes of its data file: the pages
 * the transaction wrote (twenty or so, scattered over the file, for one
 * referral), then its meta page. A store opened with RETE_STORE_JOURNAL
 * writes a batch that owes receipts (rete_store_commit_durable) first as
 * one record into a journal file, flushes that file (one flush of a few
 * pages written where they were written before: no metadata), tells the
 * caller (which sends the receipts) and only then commits the LMDB
 * transaction. That commit runs with MDB_NOMETASYNC: LMDB flushes the
 * pages and writes the meta page without flushing it, and the next
 * commit's flush (or mdb_env_sync) takes it to the disk. LMDB keeps its
 * integrity so (the meta page is written after the pages it points to are
 * flushed, and a commit never reuses the pages of the two latest metas);
 * a power cut may only undo its last commit, and that commit's journal
 * record is still there.
 *
 * Two files, journal.0 and journal.1, one record each, at offset 0: the
 * record of the commit giving meta "seq" the value q goes into journal.(q
 * mod 2). When it is written, the record it replaces is that of commit
 * q - 2 (or older), whose meta page commit q - 1's flush made durable: the
 * journal never drops a record LMDB may still need. A commit that owes no
 * receipts (the broker's own entries, a checkpoint, a token, meta) is not
 * journaled: it ends with mdb_env_sync, as durable as a commit without
 * MDB_NOMETASYNC.
 *
 * A record: "RETEJNL1", then big-endian the commit's seq, the log size
 * before and after it, the body's length and its number of operations,
 * the leaf hash of the log's last entry before the batch (zeros for an
 * empty log: the record belongs to this log at this size, not to another
 * store's at the same size) (80 bytes), BLAKE2b-256 of those 80 bytes and
 * the body, and the body:
 * every put and delete the transaction made, in order (op 'P' or 'D', the
 * database's number in jdbs below, key and value lengths as BE32, key,
 * value). Replaying it onto the store as the commit before left it gives
 * the store that commit gives, byte for byte (tests/unit/test_journal.c
 * compares every database). A record whose hash does not match was being
 * written when the program stopped: it was never flushed, so nothing was
 * receipted from it, and it is ignored.
 *
 * Every writable open (the broker, `rete` tools, tests; journaled or not)
 * first replays the records beyond LMDB's last commit (store_journal_recover):
 * those of seq + 1, then seq + 2, each only onto the log it was made on
 * (its size and last leaf). A record beyond that does not follow is a store that was changed by
 * hand (a data.mdb copied into a folder holding another store's journal):
 * the open is refused with a sentence saying so, since ignoring the record
 * could lose receipted entries. A read-only open reads LMDB as it is (a
 * crash may have left its last one or two batches in the journal only).
 *
 * When LMDB's commit of a journaled batch fails (a full disk, an I/O
 * error), the batch is durable all the same: its receipts went. The record
 * is applied again at once; until that succeeds every later write first
 * tries it and fails with its sentence (store_journal_pending), and the
 * next open replays it.
 */
#include "store_impl.h"
#include "store_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define J_MAGIC	     "RETEJNL1"
#define J_HEAD	     80 /* magic, 5 x BE64, the last leaf before the batch */
#define J_HASH	     32
#define J_PRE	     (J_HEAD + J_HASH)
#define J_OP	     10		  /* op, db, klen BE32, vlen BE32 */
#define J_PREALLOC   (256u << 10) /* each file starts this long, zero-filled */
#define J_RECORD_MAX (1ull << 34) /* a record longer than this is not one */

/* The databases a batch writes, by their number in a record. */
static MDB_dbi *jdb(rete_store *s, unsigned i)
{
	MDB_dbi *t[] = {&s->st_entries, &s->st_nodes, &s->st_checkpoints, &s->st_msgids,
			&s->st_queue,	&s->st_blobs, &s->st_referrals,	  &s->st_due,
			&s->st_cases,	&s->st_meta,  &s->st_timestamps};
	return i < sizeof(t) / sizeof(t[0]) ? t[i] : NULL;
}

static int jdb_index(rete_store *s, MDB_dbi dbi)
{
	MDB_dbi *d;
	for (unsigned i = 0; (d = jdb(s, i)) != NULL; i++)
		if (*d == dbi)
			return (int)i;
	return -1;
}

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool redo_room(store_redo *r, size_t more)
{
	if (r->r_failed)
		return false;
	if (r->r_n + more <= r->r_cap)
		return true;
	size_t cap = r->r_cap ? r->r_cap : 4096;
	while (cap < r->r_n + more)
		cap *= 2;
	uint8_t *p = realloc(r->r_p, cap);
	if (p == NULL) {
		r->r_failed = true;
		return false;
	}
	r->r_p = p;
	r->r_cap = cap;
	return true;
}

void store_redo_add(store_redo *r, rete_store *s, char op, MDB_dbi dbi, const MDB_val *k,
		    const MDB_val *v)
{
	int db = jdb_index(s, dbi);
	size_t vlen = op == 'P' ? v->mv_size : 0;

	if (r == NULL)
		return;
	if (db < 0 || k->mv_size > UINT32_MAX || vlen > UINT32_MAX) {
		r->r_failed = true; /* a database the journal does not know */
		return;
	}
	if (!redo_room(r, J_OP + k->mv_size + vlen))
		return;
	uint8_t *p = r->r_p + r->r_n;
	p[0] = (uint8_t)op;
	p[1] = (uint8_t)db;
	be32_put(p + 2, (uint32_t)k->mv_size);
	be32_put(p + 6, (uint32_t)vlen);
	memcpy(p + J_OP, k->mv_data, k->mv_size);
	if (vlen)
		memcpy(p + J_OP + k->mv_size, v->mv_data, vlen);
	r->r_n += J_OP + k->mv_size + vlen;
	r->r_nops++;
}

void store_redo_reset(store_redo *r)
{
	r->r_n = 0;
	r->r_nops = 0;
	r->r_failed = false;
}

void store_redo_free(store_redo *r)
{
	free(r->r_p);
	memset(r, 0, sizeof(*r));
}

/* ---- the files ------------------------------------------------------------ */

static void jpath(const rete_store *s, unsigned slot, char *out, size_t cap)
{
	snprintf(out, cap, "%s/journal.%u", s->st_dir, slot);
}

static rete_err jerr(rete_msg *m, int e, const char *what, const char *path)
{
	return rete_msg_set(m, e == ENOSPC || e == EDQUOT ? RETE_EFULL : RETE_EIO,
			    "store: %s %s: %s", what, path, strerror(e));
}

static bool write_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return false;
		}
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return true;
}

/* remedy: what to do about errno e met on a journal file of the store in
 * dir (the sentence's end, after "strerror: "). */
static const char *remedy(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
		return "the journal needs 512 KiB in the store folder (journal.0 and journal.1, "
		       "256 KiB each, made once): free that much there and start again";
	case EACCES:
	case EPERM:
	case EROFS:
		return "the broker's user must be able to make, read and write files in the store "
		       "folder (e.g. chown -R rete:rete on it), on a file system mounted "
		       "read-write";
	case EISDIR:
	case EINVAL:
	case ENXIO:
	case ENODEV:
		return "journal.0 and journal.1 must be plain files the broker's user can read and "
		       "write: move away what is there if it is not this store's journal";
	default:
		return "see docs/operations.md, \"Backups\" (the journal)";
	}
}

/* jfail: a journal file at path could not be opened or made (errno e). */
static rete_err jfail(rete_msg *m, int e, const char *what, const char *path)
{
	return rete_msg_set(m,
			    e == ENOSPC || e == EDQUOT		      ? RETE_EFULL
			    : e == EACCES || e == EPERM || e == EROFS ? RETE_EPERM
								      : RETE_EIO,
			    "store: %s %s: %s; %s", what, path, strerror(e), remedy(e));
}

rete_err store_journal_open(rete_store *s, rete_msg *m)
{
	char path[PATH_MAX];
	bool made = false, created[2] = {false, false};
	rete_err err = RETE_OK;

	for (unsigned i = 0; i < 2; i++) {
		struct stat st;
		jpath(s, i, path, sizeof(path));
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			created[i] = fd >= 0;
		}
		if (fd < 0 || fstat(fd, &st) != 0) {
			err = jfail(m, errno,
				    created[i] ? "cannot make its journal"
					       : "cannot open its journal",
				    path);
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		s->st_jfd[i] = fd;
		s->st_jlen[i] = (uint64_t)st.st_size;
		if (!S_ISREG(st.st_mode)) {
			err = jfail(m, EINVAL, "cannot use as its journal", path);
			goto fail;
		}
		if (st.st_size < (off_t)J_PREALLOC) {
			/* written zeros, not fallocate: a write into an extent
			 * fallocate left unwritten changes metadata, and its
			 * flush would cost what the journal saves */
			uint8_t *zero = calloc(1, J_PREALLOC);
			bool ok =
			    zero != NULL &&
			    write_all(fd, zero, J_PREALLOC - (size_t)st.st_size, st.st_size) &&
			    fdatasync(fd) == 0;
			int e = zero == NULL ? ENOMEM : errno;
			free(zero);
			if (!ok) {
				err = jfail(m, e, "cannot make its journal", path);
				if (!created[i] && ftruncate(fd, st.st_size) != 0)
					(void)0; /* best effort: as it was */
				goto fail;
			}
			s->st_jlen[i] = J_PREALLOC;
			made = true;
		}
	}
	if (made) { /* the files' names, durable before a record counts on them */
		int dfd = open(s->st_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	return RETE_OK;
fail:
	store_journal_close(s);
	for (unsigned i = 0; i < 2; i++) /* what this open made, it removes */
		if (created[i]) {
			jpath(s, i, path, sizeof(path));
			unlink(path);
		}
	return err;
}

rete_err store_journal_prepare(rete_store *s, MDB_txn *txn, uint32_t have, rete_msg *m)
{
	MDB_val k = {strlen(META_JOURNAL), (void *)META_JOURNAL}, v;
	MDB_val ck = {strlen(META_COPY), (void *)META_COPY};
	int rc;

	s->st_schema_was = have;
	rc = mdb_get(txn, s->st_meta, &ck, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_lmdb_err(m, rc, "store: reading the copy mark");
	bool copy = rc == 0;
	rc = mdb_get(txn, s->st_meta, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_lmdb_err(m, rc, "store: reading the journal's mark");
	s->st_jstrict = have == RETE_STORE_SCHEMA && rc == 0 && !copy;
	if (s->st_jstrict)
		return RETE_OK; /* store_journal_recover checks the files */
	rete_err err = store_journal_open(s, m);
	if (err != RETE_OK) {
		if (have != RETE_STORE_SCHEMA)
			rete_msg_prefix(m, "store %s %s", s->st_dir,
					have == 0 ? "was not made"
						  : "was left as it was (its schema is not raised "
						    "to 4; an older broker still opens it)");
		return err;
	}
	if (!copy) { /* a copy gets it when the broker's restore removes its mark */
		v.mv_data = (void *)"1";
		v.mv_size = 1;
		if ((rc = mdb_put(txn, s->st_meta, &k, &v, 0)) != 0) {
			store_journal_close(s);
			return store_lmdb_err(m, rc, "store: writing the journal's mark");
		}
	}
	return RETE_OK;
}

void store_journal_close(rete_store *s)
{
	for (unsigned i = 0; i < 2; i++) {
		if (s->st_jfd[i] >= 0)
			close(s->st_jfd[i]);
		s->st_jfd[i] = -1;
	}
	free(s->st_jrec);
	s->st_jrec = NULL;
	s->st_jrec_len = s->st_jrec_cap = 0;
}

/* last_leaf reads the leaf hash of entry size - 1 in txn (zeros for an
 * empty log). */
static int last_leaf(rete_store *s, MDB_txn *txn, uint64_t size, uint8_t out[RETE_MERKLE_HASH])
{
	uint8_t key[STORE_NODE_KEY];
	MDB_val k = {sizeof(key), key}, v;
	memset(out, 0, RETE_MERKLE_HASH);
	if (size == 0)
		return 0;
	node_key(key, 0, size - 1);
	int rc = mdb_get(txn, s->st_nodes, &k, &v);
	if (rc == 0 && v.mv_size == RETE_MERKLE_HASH)
		memcpy(out, v.mv_data, RETE_MERKLE_HASH);
	return rc == 0 && v.mv_size != RETE_MERKLE_HASH ? MDB_CORRUPTED : rc;
}

/* ---- writing a record -------------------------------------------------------- */

rete_err store_journal_write(rete_store *s, MDB_txn *txn, const store_redo *r, uint64_t seq,
			     uint64_t size_before, uint64_t size_after, rete_msg *m)
{
	char path[PATH_MAX];
	size_t body = 0;

	if (r->r_failed)
		return rete_msg_set(m, RETE_ENOMEM,
				    "store: out of memory recording the batch for the journal");
	/* a reserved value ('R': written in place after the put) is read
	 * back now, as the transaction leaves it */
	for (size_t off = 0; off < r->r_n;) {
		const uint8_t *p = r->r_p + off;
		uint32_t kl = be32_get(p + 2), vl = be32_get(p + 6);
		if (p[0] == 'R') {
			MDB_val k = {kl, (void *)(p + J_OP)}, v;
			if (mdb_get(txn, *jdb(s, p[1]), &k, &v) == 0)
				body += J_OP + kl + v.mv_size;
		} else {
			body += J_OP + kl + vl;
		}
		off += J_OP + kl + vl;
	}
	size_t len = J_PRE + body;
	if (len > s->st_jrec_cap) {
		uint8_t *p = realloc(s->st_jrec, len);
		if (p == NULL)
			return rete_msg_set(m, RETE_ENOMEM,
					    "store: out of memory writing the journal");
		s->st_jrec = p;
		s->st_jrec_cap = len;
	}
	uint8_t *rec = s->st_jrec, *o = rec + J_PRE;
	uint64_t nops = 0;
	for (size_t off = 0; off < r->r_n;) {
		const uint8_t *p = r->r_p + off;
		uint32_t kl = be32_get(p + 2), vl = be32_get(p + 6);
		const uint8_t *val = p + J_OP + kl;
		size_t vn = vl;
		off += J_OP + kl + vl;
		if (p[0] == 'R') {
			MDB_val k = {kl, (void *)(p + J_OP)}, v;
			if (mdb_get(txn, *jdb(s, p[1]), &k, &v) != 0)
				continue; /* deleted later in the batch: its 'D' says so */
			val = v.mv_data;
			vn = v.mv_size;
		}
		o[0] = p[0] == 'D' ? 'D' : 'P';
		o[1] = p[1];
		be32_put(o + 2, kl);
		be32_put(o + 6, (uint32_t)vn);
		memcpy(o + J_OP, p + J_OP, kl);
		if (vn)
			memcpy(o + J_OP + kl, val, vn);
		o += J_OP + kl + vn;
		nops++;
	}
	memcpy(rec, J_MAGIC, 8);
	be64_put(rec + 8, seq);
	be64_put(rec + 16, size_before);
	be64_put(rec + 24, size_after);
	be64_put(rec + 32, body);
	be64_put(rec + 40, nops);
	int lrc = last_leaf(s, txn, size_before, rec + 48);
	if (lrc != 0)
		return store_lmdb_err(m, lrc, "store: reading the last leaf for the journal");
	crypto_generichash_state h;
	crypto_generichash_init(&h, NULL, 0, J_HASH);
	crypto_generichash_update(&h, rec, J_HEAD);
	crypto_generichash_update(&h, rec + J_PRE, body);
	crypto_generichash_final(&h, rec + J_HEAD, J_HASH);
	s->st_jrec_len = len;

	unsigned slot = (unsigned)(seq & 1);
	int fd = s->st_jfd[slot];
	if (!write_all(fd, rec, len, 0) || fdatasync(fd) != 0) {
		int e = errno;
		jpath(s, slot, path, sizeof(path));
		/* the batch is refused ("nothing was logged"): a record whose
		 * write went through but whose flush failed must not be taken
		 * in at the next start; a half-written one fails its hash.
		 * Best effort: the disk is failing */
		static const uint8_t none[8];
		if (pwrite(fd, none, sizeof(none), 0) == (ssize_t)sizeof(none))
			(void)fdatasync(fd);
		return jerr(m, e, "cannot write its journal", path);
	}
	if (len > s->st_jlen[slot])
		s->st_jlen[slot] = len;
	return RETE_OK;
}

/* ---- reading and applying a record -------------------------------------------- */

struct jrec {
	uint64_t seq, size_before, size_after, body, nops;
	const uint8_t *leaf; /* the last leaf before the batch */
	const uint8_t *ops;
};

/* jrec_parse: rec[0..len) is a whole record whose hash holds. */
static bool jrec_parse(const uint8_t *rec, size_t len, struct jrec *j)
{
	uint8_t h[J_HASH];
	if (len < J_PRE || memcmp(rec, J_MAGIC, 8) != 0)
		return false;
	j->seq = be64_get(rec + 8);
	j->size_before = be64_get(rec + 16);
	j->size_after = be64_get(rec + 24);
	j->body = be64_get(rec + 32);
	j->nops = be64_get(rec + 40);
	j->leaf = rec + 48;
	if (j->body > len - J_PRE)
		return false;
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, J_HASH);
	crypto_generichash_update(&st, rec, J_HEAD);
	crypto_generichash_update(&st, rec + J_PRE, j->body);
	crypto_generichash_final(&st, h, J_HASH);
	if (sodium_memcmp(h, rec + J_HEAD, J_HASH) != 0)
		return false;
	j->ops = rec + J_PRE;
	/* the body is well formed (its hash holds, so a program wrote it; a
	 * bug should not become an overread) */
	uint64_t n = 0;
	for (uint64_t off = 0; off < j->body; n++) {
		if (j->body - off < J_OP)
			return false;
		const uint8_t *p = j->ops + off;
		uint64_t kl = be32_get(p + 2), vl = be32_get(p + 6);
		if ((p[0] != 'P' && p[0] != 'D') || j->body - off - J_OP < kl + vl || kl == 0)
			return false;
		off += J_OP + kl + vl;
	}
	return n == j->nops;
}

/* jrec_apply runs j's operations in txn. */
static int jrec_apply(rete_store *s, MDB_txn *txn, const struct jrec *j)
{
	for (uint64_t off = 0; off < j->body;) {
		const uint8_t *p = j->ops + off;
		uint32_t kl = be32_get(p + 2), vl = be32_get(p + 6);
		MDB_dbi *d = jdb(s, p[1]);
		MDB_val k = {kl, (void *)(p + J_OP)}, v = {vl, (void *)(p + J_OP + kl)};
		int rc;
		if (d == NULL)
			return MDB_INCOMPATIBLE;
		rc = p[0] == 'P' ? mdb_put(txn, *d, &k, &v, 0) : mdb_del(txn, *d, &k, NULL);
		if (rc != 0 && !(p[0] == 'D' && rc == MDB_NOTFOUND))
			return rc;
		off += J_OP + kl + vl;
	}
	return 0;
}

/* other_store_say writes in m that the journal holds commit jseq made on a
 * log of jbefore entries, which does not follow the store's last commit
 * seq with size entries (the start's refusal and --check-config's). */
static rete_err other_store_say(rete_store *s, uint64_t jseq, uint64_t jbefore, uint64_t seq,
				uint64_t size, rete_msg *m)
{
	return rete_msg_set(m, RETE_ECORRUPT,
			    "store %s: its journal holds commit %llu, made on a log of %llu "
			    "entries, but the store's last commit is %llu with %llu entries "
			    "(or another last entry): the journal is another store's (a "
			    "data.mdb copied by hand into this folder?). Put back the data.mdb "
			    "it belongs to; or move journal.0 and journal.1 out of the folder "
			    "and start the broker once with --restore (docs/operations.md, "
			    "\"Backups\")",
			    s->st_dir, (unsigned long long)jseq, (unsigned long long)jbefore,
			    (unsigned long long)seq, (unsigned long long)size);
}

/* journal_apply commits record j onto the store, which must be at j's
 * base (seq - 1, size_before); a store already at j's seq is left alone.
 * Grows the map as often as needed. Called with st_write held (or at the
 * open) and no transaction of this thread open. */
static rete_err journal_apply(rete_store *s, const struct jrec *j, rete_msg *m)
{
	for (int attempt = 0;; attempt++) {
		MDB_txn *txn = NULL;
		uint64_t seq = 0, size = 0;
		uint8_t leaf[RETE_MERKLE_HASH];
		rete_err err = RETE_OK;
		int rc;

		pthread_rwlock_rdlock(&s->st_grow);
		if (s->st_env == NULL) { /* a reopen after a failed commit failed */
			pthread_rwlock_unlock(&s->st_grow);
			return rete_msg_set(m, RETE_ESTORE,
					    "store %s: the environment could not be reopened after "
					    "a failed commit; restart the program (it takes in the "
					    "batch its journal holds)",
					    s->st_dir);
		}
		rc = mdb_txn_begin(s->st_env, NULL, 0, &txn);
		if (rc != 0) {
			pthread_rwlock_unlock(&s->st_grow);
			return store_lmdb_err(m, rc, "store: replaying the journal");
		}
		if ((err = store_seq(s, txn, &seq, m)) != RETE_OK ||
		    (err = store_log_size(s, txn, &size, m)) != RETE_OK) {
			mdb_txn_abort(txn);
			pthread_rwlock_unlock(&s->st_grow);
			return err;
		}
		if (seq >= j->seq) { /* LMDB has it */
			mdb_txn_abort(txn);
			pthread_rwlock_unlock(&s->st_grow);
			return RETE_OK;
		}
		rc = last_leaf(s, txn, size, leaf);
		if (rc != 0) {
			mdb_txn_abort(txn);
			pthread_rwlock_unlock(&s->st_grow);
			return store_lmdb_err(m, rc, "store: replaying the journal");
		}
		if (seq + 1 != j->seq || size != j->size_before ||
		    sodium_memcmp(leaf, j->leaf, RETE_MERKLE_HASH) != 0) {
			mdb_txn_abort(txn);
			pthread_rwlock_unlock(&s->st_grow);
			return other_store_say(s, j->seq, j->size_before, seq, size, m);
		}
		rc = jrec_apply(s, txn, j);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		pthread_rwlock_unlock(&s->st_grow);
		if (rc == MDB_MAP_FULL && attempt < 48) {
			if ((err = store_grow(s, m)) != RETE_OK)
				return err;
			continue;
		}
		if (rc == 0 && mdb_env_sync(s->st_env, 1) != 0)
			rc = errno ? errno : EIO;
		if (rc == EIO && store_disk_nearly_full(s))
			rc = ENOSPC;
		if (rc != 0)
			return store_lmdb_err(m, rc, "store: applying a batch of its journal");
		store_seen_raise(s, j->seq);
		return RETE_OK;
	}
}

/* journal_behind_say publishes to rete_store_behind that a receipted batch
 * is behind (why: the sentence; the batch: st_jrec) or that none is (why
 * NULL). Called with st_write held, so the answer is the store's as this
 * write leaves it. */
static void journal_behind_say(rete_store *s, const char *why)
{
	if (why != NULL) {
		/* the record's sizes, read from its header as written (its
		 * hash is not needed to say which entries it holds) */
		bool head = s->st_jrec_len >= J_PRE && memcmp(s->st_jrec, J_MAGIC, 8) == 0;
		pthread_mutex_lock(&s->st_jwhy_mu);
		snprintf(s->st_jwhy, sizeof(s->st_jwhy), "%s", why);
		s->st_jwhy_before = head ? be64_get(s->st_jrec + 16) : 0;
		s->st_jwhy_after = head ? be64_get(s->st_jrec + 24) : UINT64_MAX;
		pthread_mutex_unlock(&s->st_jwhy_mu);
	}
	atomic_store(&s->st_jbehind, why != NULL);
}

rete_err store_journal_pending(rete_store *s, rete_msg *m)
{
	struct jrec j;
	rete_err err;

	if (!s->st_jpending)
		return RETE_OK;
	if (!jrec_parse(s->st_jrec, s->st_jrec_len, &j))
		return rete_msg_set(m, RETE_ESTORE,
				    "store %s: its journal record was lost in memory", s->st_dir);
	if ((err = journal_apply(s, &j, m)) != RETE_OK) {
		rete_msg_prefix(m,
				"store %s: a batch receipted from its journal is not yet in "
				"the store, and nothing new is logged until it is",
				s->st_dir);
		return err;
	}
	s->st_jpending = false;
	journal_behind_say(s, NULL);
	return RETE_OK;
}

rete_err store_journal_failed_commit(rete_store *s, rete_msg *m)
{
	s->st_jpending = true;
	rete_err err = store_journal_pending(s, m);
	if (err != RETE_OK)
		journal_behind_say(s, m->text);
	return err;
}

bool rete_store_behind_range(rete_store *s, rete_msg *m, uint64_t *size_before,
			     uint64_t *size_after)
{
	if (!atomic_load(&s->st_jbehind))
		return false;
	pthread_mutex_lock(&s->st_jwhy_mu);
	rete_msg_set(m, RETE_ESTORE, "%s", s->st_jwhy);
	if (size_before != NULL)
		*size_before = s->st_jwhy_before;
	if (size_after != NULL)
		*size_after = s->st_jwhy_after;
	pthread_mutex_unlock(&s->st_jwhy_mu);
	return true;
}

bool rete_store_behind(rete_store *s, rete_msg *m)
{
	return rete_store_behind_range(s, m, NULL, NULL);
}

rete_err rete_store_catch_up(rete_store *s, rete_msg *m)
{
	pthread_mutex_lock(&s->st_write);
	rete_err err = store_journal_pending(s, m);
	if (err != RETE_OK)
		journal_behind_say(s, m->text);
	pthread_mutex_unlock(&s->st_write);
	return err;
}

/* What a journal file holds, as the start reads it. */
enum jstate {
	JS_NONE,    /* zeros, or a record torn by a crash (its hash fails): nothing receipted */
	JS_RECORD,  /* a whole record whose hash holds */
	JS_MISSING, /* no file */
	JS_SHORT,   /* shorter than the files are made, and no whole record */
	JS_JUNK,    /* begins with neither a record nor zeros */
	JS_NOTFILE, /* a folder, a device... */
};

struct jslot {
	enum jstate st;
	uint8_t head[J_PRE]; /* the record's header (a look without its body) */
	uint8_t *buf;
	size_t len;
	uint64_t fsize;
	struct jrec j;
};

/* hash_slot: a look at the record whose header is sl->head, without its
 * body in memory (read-only tools: audit verify, backup, --check-config):
 * the body is hashed in fixed chunks as it is read; a record whose hash
 * holds is JS_RECORD with its header's fields (no ops). */
static void hash_slot(int fd, struct jslot *sl, uint64_t body)
{
	uint8_t chunk[64 << 10], h[J_HASH];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, J_HASH);
	crypto_generichash_update(&st, sl->head, J_HEAD);
	for (uint64_t off = 0; off < body;) {
		size_t want = body - off < sizeof(chunk) ? (size_t)(body - off) : sizeof(chunk);
		ssize_t r = pread(fd, chunk, want, (off_t)(J_PRE + off));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		crypto_generichash_update(&st, chunk, (size_t)r);
		off += (uint64_t)r;
	}
	crypto_generichash_final(&st, h, J_HASH);
	if (sodium_memcmp(h, sl->head + J_HEAD, J_HASH) != 0)
		return;
	sl->j.seq = be64_get(sl->head + 8);
	sl->j.size_before = be64_get(sl->head + 16);
	sl->j.size_after = be64_get(sl->head + 24);
	sl->j.body = body;
	sl->j.nops = be64_get(sl->head + 40);
	sl->j.leaf = sl->head + 48;
	sl->j.ops = NULL;
	sl->st = JS_RECORD;
}

/* read_slot reads journal file `path` into *sl: with whole, the record in
 * memory (the start, which applies it), else its header only (hash_slot).
 * Errors: a file that is there but cannot be read (the sentence says what
 * to do). */
static rete_err read_slot(const char *path, struct jslot *sl, bool whole, rete_msg *m)
{
	uint8_t head[J_PRE];
	struct stat st;
	memset(sl, 0, sizeof(*sl));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT) {
			sl->st = JS_MISSING;
			return RETE_OK;
		}
		return jfail(m, errno, "cannot read its journal", path);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		sl->st = JS_NOTFILE;
		return RETE_OK;
	}
	sl->fsize = (uint64_t)st.st_size;
	ssize_t r = pread(fd, head, sizeof(head), 0);
	static const uint8_t zero[8];
	if (r >= 8 && memcmp(head, J_MAGIC, 8) != 0 && memcmp(head, zero, 8) != 0)
		sl->st = JS_JUNK;
	else
		sl->st = st.st_size < (off_t)J_PREALLOC ? JS_SHORT : JS_NONE;
	if (r == (ssize_t)sizeof(head) && memcmp(head, J_MAGIC, 8) == 0) {
		uint64_t body = be64_get(head + 32);
		/* a length the file cannot hold is no whole record (and no
		 * allocation of what a damaged header says) */
		if (body <= J_RECORD_MAX && (uint64_t)st.st_size >= (uint64_t)J_PRE + body &&
		    !whole) {
			memcpy(sl->head, head, sizeof(head));
			hash_slot(fd, sl, body);
		} else if (body <= J_RECORD_MAX && (uint64_t)st.st_size >= (uint64_t)J_PRE + body) {
			uint8_t *p = malloc(J_PRE + body);
			if (p == NULL) {
				close(fd);
				return rete_msg_set(m, RETE_ENOMEM,
						    "store: out of memory reading its journal");
			}
			size_t got = 0;
			while (got < J_PRE + body) {
				r = pread(fd, p + got, J_PRE + body - got, (off_t)got);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					break;
				got += (size_t)r;
			}
			sl->buf = p;
			sl->len = got;
			if (jrec_parse(p, got, &sl->j))
				sl->st = JS_RECORD;
		}
	}
	close(fd);
	return RETE_OK;
}

/* lost_say writes in m why the journal of a store whose files must be
 * there (st_jstrict) may have lost a receipted batch: slot i in state st
 * (other: the other file's state); restore: the sentence is --restore's
 * note (the start goes on), not a refusal. */
static rete_err lost_say(rete_store *s, unsigned i, const struct jslot *sl, enum jstate other,
			 bool restore, rete_msg *m)
{
	char what[256];
	bool both = sl->st == JS_MISSING && other == JS_MISSING;
	switch (sl->st) {
	case JS_MISSING:
		snprintf(what, sizeof(what), "%s missing",
			 both ? "journal.0 and journal.1 are"
			 : i  ? "journal.1 is"
			      : "journal.0 is");
		break;
	case JS_SHORT:
		snprintf(what, sizeof(what),
			 "journal.%u is %llu bytes, shorter than the 256 KiB the broker makes it "
			 "(cut short, or copied in part)",
			 i, (unsigned long long)sl->fsize);
		break;
	case JS_NOTFILE:
		snprintf(what, sizeof(what), "journal.%u is not a plain file", i);
		break;
	default:
		snprintf(what, sizeof(what),
			 "journal.%u is not a journal (it begins neither with a record nor with "
			 "zeros: overwritten or damaged)",
			 i);
		break;
	}
	if (restore)
		return rete_msg_set(
		    m, RETE_ECORRUPT,
		    "store %s: %s: the batches receipted last may have been only "
		    "there; the log goes on as a new epoch (the agents submit again "
		    "what they hold)",
		    s->st_dir, what);
	return rete_msg_set(m, RETE_ECORRUPT,
			    "store %s: %s: the batches receipted last may be only there. Put "
			    "back the journal files copied with this data.mdb; if they are lost, "
			    "%sstart the broker once with --restore (a new epoch: the agents "
			    "submit again what they hold; docs/operations.md, \"Backups\")",
			    s->st_dir, what, sl->st == JS_MISSING ? "" : "move it away and ");
}

/* journal_look reads both files and says (RETE_ECORRUPT, sentence in m)
 * whether a store whose files must be there (strict) may have lost a
 * receipted batch; seq: LMDB's last commit. With lost_ok a file that is
 * missing or short only sets *lost (the sentence in m). With whole each
 * record is read into memory (to be applied), else only its header. */
static rete_err journal_look(rete_store *s, struct jslot sl[2], bool whole, bool strict,
			     bool lost_ok, uint64_t seq, bool *lost, rete_msg *m)
{
	char path[PATH_MAX];
	rete_err err;
	*lost = false;
	for (unsigned i = 0; i < 2; i++) {
		jpath(s, i, path, sizeof(path));
		if ((err = read_slot(path, &sl[i], whole, m)) != RETE_OK)
			return err;
	}
	if (!strict)
		return RETE_OK;
	/* a file that is overwritten or not a file refuses even with
	 * --restore (it must be moved away first); missing or short ones
	 * refuse unless lost_ok. The sentence names the worst. */
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < 2; i++) {
			enum jstate st = sl[i].st;
			bool hard = st == JS_JUNK || st == JS_NOTFILE;
			if (st == JS_NONE || st == JS_RECORD || hard != (pass == 0))
				continue;
			err = lost_say(s, i, &sl[i], sl[1 - i].st, lost_ok && !hard, m);
			if (hard || !lost_ok)
				return err;
			*lost = true;
			goto gap;
		}
gap:
	/* a record two commits beyond LMDB whose predecessor (the other
	 * file) is not whole: that one was flushed before it was written,
	 * so it is damage, not a crash's trace */
	for (unsigned i = 0; i < 2; i++)
		if (sl[i].st == JS_RECORD && sl[i].j.seq == seq + 2 &&
		    (sl[1 - i].st == JS_NONE || sl[1 - i].st == JS_SHORT))
			return rete_msg_set(
			    m, RETE_ECORRUPT,
			    "store %s: journal.%u holds commit %llu, but commit %llu before it, "
			    "receipted and not in data.mdb, is damaged in journal.%u. Put back "
			    "the journal files copied with this data.mdb; if they are lost, move "
			    "them away and start the broker once with --restore (a new epoch: "
			    "the agents submit again what they hold; docs/operations.md, "
			    "\"Backups\")",
			    s->st_dir, i, (unsigned long long)sl[i].j.seq,
			    (unsigned long long)(seq + 1), 1 - i);
	return RETE_OK;
}

rete_err store_journal_recover(rete_store *s, bool *replayed, rete_msg *m)
{
	struct jslot sl[2];
	bool lost = false;
	rete_err err = RETE_OK;
	MDB_txn *txn = NULL;
	uint64_t seq = 0;

	if (replayed != NULL)
		*replayed = false;
	memset(sl, 0, sizeof(sl));
	if ((err = store_txn_read(s, &txn, m)) != RETE_OK)
		return err;
	err = store_seq(s, txn, &seq, m);
	store_txn_done(s, txn);
	if (err != RETE_OK)
		return err;
	if ((err = journal_look(s, sl, true, s->st_jstrict, s->st_jlost_ok, seq, &lost, m)) !=
	    RETE_OK)
		goto out;
	if (lost)
		snprintf(s->st_jlost, sizeof(s->st_jlost), "%s", m->text);
	bool ok[2] = {sl[0].st == JS_RECORD, sl[1].st == JS_RECORD};
	if (!ok[0] && !ok[1])
		goto out;
	/* in seq order: the lower first */
	unsigned first = ok[0] && (!ok[1] || sl[0].j.seq < sl[1].j.seq) ? 0 : 1;
	for (unsigned n = 0; n < 2; n++) {
		unsigned i = n == 0 ? first : 1 - first;
		if (!ok[i] || sl[i].j.seq <= seq)
			continue;
		if ((err = journal_apply(s, &sl[i].j, m)) != RETE_OK)
			goto out;
		seq = sl[i].j.seq;
		if (replayed != NULL)
			*replayed = true;
	}
out:
	free(sl[0].buf);
	free(sl[1].buf);
	return err;
}

/* room_for: the store folder has room for the journal files still to make
 * (need bytes). */
static bool room_for(const char *dir, uint64_t need)
{
	struct statvfs v;
	if (need == 0 || statvfs(dir, &v) != 0)
		return true;
	return (uint64_t)v.f_bavail * v.f_frsize >= need;
}

rete_err rete_store_journal_state(rete_store *s, bool start, bool restore, unsigned *ahead,
				  uint64_t *ahead_size, rete_msg *m)
{
	struct jslot sl[2];
	MDB_txn *txn = NULL;
	uint64_t seq = 0, size = 0;
	uint32_t schema = 0;
	bool marked = false, copy = false, lost = false;
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_err err;
	int rc;

	if (ahead != NULL)
		*ahead = 0;
	if (ahead_size != NULL)
		*ahead_size = 0;
	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store given");
	memset(sl, 0, sizeof(sl));
	if ((err = store_txn_read(s, &txn, m)) != RETE_OK)
		return err;
	MDB_val k = {strlen(META_JOURNAL), (void *)META_JOURNAL}, v;
	MDB_val ck = {strlen(META_COPY), (void *)META_COPY};
	MDB_val sk = {strlen(META_SCHEMA), (void *)META_SCHEMA};
	marked = mdb_get(txn, s->st_meta, &k, &v) == 0;
	copy = mdb_get(txn, s->st_meta, &ck, &v) == 0;
	if (mdb_get(txn, s->st_meta, &sk, &v) == 0 && v.mv_size == 4)
		schema = be32_get(v.mv_data);
	if ((err = store_seq(s, txn, &seq, m)) != RETE_OK ||
	    (err = store_log_size(s, txn, &size, m)) != RETE_OK) {
		store_txn_done(s, txn);
		return err;
	}
	rc = last_leaf(s, txn, size, leaf);
	store_txn_done(s, txn);
	if (rc != 0)
		return store_lmdb_err(m, rc, "store: reading the log's last entry");
	/* a broker running on the store (--check-config before a reload)
	 * writes its journal and data.mdb while they are read here: what the
	 * start would refuse concerns a stopped store and is not checked then
	 * (the writability and room checks are) */
	bool live = start && rete_store_served(s->st_dir);
	bool strict = start && !live && schema == RETE_STORE_SCHEMA && marked && !copy;
	if ((err = journal_look(s, sl, false, strict, restore, seq, &lost, m)) != RETE_OK)
		goto out;
	/* the records beyond LMDB, in seq order, as journal_apply takes them */
	for (uint64_t want = seq + 1;; want++) {
		unsigned i = sl[0].st == JS_RECORD && sl[0].j.seq == want   ? 0
			     : sl[1].st == JS_RECORD && sl[1].j.seq == want ? 1
									    : 2;
		if (i == 2)
			break;
		if (sl[i].j.size_before != size ||
		    (want == seq + 1 && sodium_memcmp(leaf, sl[i].j.leaf, RETE_MERKLE_HASH) != 0))
			break; /* the start refuses: below */
		size = sl[i].j.size_after;
		if (ahead != NULL)
			(*ahead)++;
		if (ahead_size != NULL)
			*ahead_size = size;
		sl[i].st = JS_NONE; /* taken */
	}
	if (start && !live) /* a record beyond LMDB that does not follow */
		for (unsigned i = 0; i < 2; i++)
			if (sl[i].st == JS_RECORD && sl[i].j.seq > seq) {
				err = other_store_say(s, sl[i].j.seq, sl[i].j.size_before, seq,
						      size, m);
				goto out;
			}
	if (start) { /* what the start will write */
		char path[PATH_MAX];
		uint64_t need = 0;
		for (unsigned i = 0; i < 2; i++) {
			jpath(s, i, path, sizeof(path));
			if (sl[i].st == JS_MISSING || sl[i].fsize < J_PREALLOC)
				need += J_PREALLOC - sl[i].fsize;
			if (sl[i].st == JS_NOTFILE) {
				err = jfail(m, EISDIR, "cannot use as its journal", path);
				goto out;
			}
			if (sl[i].st != JS_MISSING && access(path, R_OK | W_OK) != 0) {
				err = jfail(m, errno, "cannot open its journal", path);
				goto out;
			}
		}
		if (access(s->st_dir, W_OK) != 0) {
			int e = errno;
			err =
			    rete_msg_set(m, e == EROFS || e == EACCES ? RETE_EPERM : RETE_EIO,
					 "store %s: the broker cannot write in the folder: %s; %s",
					 s->st_dir, strerror(e), remedy(e));
			goto out;
		}
		if (!room_for(s->st_dir, need)) {
			err = jfail(m, ENOSPC, "has no room for its journal in", s->st_dir);
			goto out;
		}
	}
	err = RETE_OK; /* lost (with restore): the sentence stays in m */
out:
	free(sl[0].buf);
	free(sl[1].buf);
	return err;
}
