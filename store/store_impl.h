/* store_impl.h — internals shared by store.c, store_commit.c and
 * store_backup.c: the rete_store struct, key encodings and the transaction
 * helpers that keep map growth safe. Not for other modules.
 */
#ifndef RETE_STORE_IMPL_H
#define RETE_STORE_IMPL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "store.h"

#define STORE_DEFAULT_MAP     ((uint64_t)256 << 20)
#define STORE_DEFAULT_READERS 254u
#define STORE_NODE_KEY	      9 /* level u8 + index BE64 */
#define META_SCHEMA	      "schema"
#define META_SIZE	      "size"
#define META_DIRECTORY	      "directory"
#define META_SEQ	      "seq" /* commits so far: one more per write transaction */
/* The log's identity (schema 2, store_identity.c): */
#define META_ORIGIN "origin"	  /* the origin the log was created with */
#define META_KEY    "broker_key"  /* the broker's Ed25519 public key, 32 bytes */
#define META_FIRST  "first_entry" /* leaf hash of entry 0, written with it */
#define META_EPOCH  "epoch"	  /* BE32; absent = 1; an Epoch entry raises it */
/* A backup copy not yet restored (store_identity.h; an Epoch entry removes
 * it): size BE64, epoch BE32, made-at ms BE64, then the source folder. */
#define META_COPY "copy"
/* "1": the journal's files were made in this store's folder (a broker
 * opened it); a schema-4 store without a backup copy's mark that has it
 * refuses to start without them (store_journal.c) */
#define META_JOURNAL "journal"

/* store_redo: the puts and deletes of one write transaction, in order, for
 * its journal record. store_redo_add records one: op 'P' (v: the value),
 * 'R' (a put with MDB_RESERVE: the value is read back when the record is
 * written) or 'D' (v unused); an unknown database or no memory marks it
 * failed (the batch is then refused, never journaled without it). */
typedef struct store_redo {
	uint8_t *r_p;
	size_t r_n, r_cap;
	uint64_t r_nops;
	bool r_failed;
} store_redo;

struct rete_store {
	MDB_env *st_env;
	char *st_dir;
	unsigned st_flags;
	unsigned st_max_readers;
	uint64_t st_map_size; /* what the env was last opened/grown with */
	/* Read lock: held by every open transaction (read or write) of this
	 * process. Write lock: growing the map or reopening the environment,
	 * which LMDB allows only with no transaction open in the process. */
	pthread_rwlock_t st_grow;
	pthread_mutex_t st_write; /* one commit at a time */
	/* The highest commit sequence (meta "seq") this process has read or
	 * written. LMDB can give a read transaction begun during a commit the
	 * newest snapshot and the next one, begun a moment later, the one
	 * before it (a reader preempted between picking the snapshot's id and
	 * copying its meta page). store_txn_read never hands out a snapshot
	 * older than this, so the reads of a process never go back in time. */
	atomic_uint_fast64_t st_seen;
	int64_t st_stale_wait_ns; /* how long to wait for it (tests shorten it) */
	MDB_dbi st_entries, st_nodes, st_checkpoints, st_msgids, st_queue, st_blobs, st_referrals,
	    st_due, st_cases, st_meta;
	/* Schema 3: RFC 3161 tokens by checkpoint size (store_timestamp.c).
	 * st_have_timestamps is false for a schema-1/2 store opened read-only
	 * (it has no such database and reads as having no tokens). */
	MDB_dbi st_timestamps;
	bool st_have_timestamps;
	/* The decoded Directory in force, cached by the writer (under st_write):
	 * valid for the entry whose leaf hash is st_dir_leaf. */
	Rete__Message *st_dir_msg;
	Rete__SignedMessage *st_dir_sm;
	uint64_t st_dir_index;
	uint8_t st_dir_leaf[RETE_MERKLE_HASH];
	/* The journal (RETE_STORE_JOURNAL, store_journal.c): its two files
	 * (-1: not journaled), their lengths, the last record written (kept
	 * to apply it again when LMDB's commit of it failed) and whether it
	 * still waits for that (st_jpending). Under st_write. */
	int st_jfd[2];
	uint64_t st_jlen[2];
	uint8_t *st_jrec;
	size_t st_jrec_len, st_jrec_cap;
	bool st_jpending;
	/* What rete_store_behind answers, without st_write: the broker's main
	 * thread asks at every batch and health query, and a commit holds
	 * st_write through its flush, which on a failing disk takes seconds.
	 * st_jbehind is st_jpending as a write or catch-up left it (set
	 * before st_write is let go); st_jwhy, why it is, under st_jwhy_mu
	 * (held only to copy the text), with the log's size before and
	 * after the batch behind. */
	atomic_bool st_jbehind;
	pthread_mutex_t st_jwhy_mu;
	char st_jwhy[512];
	uint64_t st_jwhy_before, st_jwhy_after;
	/* At a journaled open: the schema the store had (0: made now);
	 * whether its journal files must be there (st_jstrict: meta
	 * "journal" says they were made in this folder, and it is no
	 * backup copy); whether their loss is accepted (--restore) and, if
	 * it was, why (st_jlost). */
	uint32_t st_schema_was;
	bool st_jstrict, st_jlost_ok;
	char st_jlost[768];
	store_redo st_redo; /* the batch being written, journaled */
};

struct rete_store_rtxn {
	rete_store *rt_store;
	MDB_txn *rt_txn;
};

/* Big-endian integers, so that LMDB's byte order is numeric order. */
static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void node_key(uint8_t k[STORE_NODE_KEY], unsigned level, uint64_t index)
{
	k[0] = (uint8_t)level;
	be64_put(k + 1, index);
}

/* node_value: what a read of a Merkle node (rc, v: from mdb_get or a
 * cursor) gives: its hash in out, RETE_ECORRUPT when it is missing or not
 * a hash, RETE_ESTORE when LMDB failed. */
static inline rete_err node_value(int rc, const MDB_val *v, uint8_t out[RETE_MERKLE_HASH])
{
	if (rc == MDB_NOTFOUND)
		return RETE_ECORRUPT;
	if (rc != 0)
		return RETE_ESTORE;
	if (v->mv_size != RETE_MERKLE_HASH)
		return RETE_ECORRUPT;
	memcpy(out, v->mv_data, RETE_MERKLE_HASH);
	return RETE_OK;
}

/* store_lmdb_err maps an LMDB return code to a rete_err with a sentence
 * naming what was being done. */
rete_err store_lmdb_err(rete_msg *m, int rc, const char *what);

/* store_txn_read begins a read transaction (taking st_grow for reading and
 * adopting a map grown by another process). store_txn_done ends any
 * transaction begun by store_txn_read or store_txn_write (abort if still
 * live) and releases st_grow. */
rete_err store_txn_read(rete_store *s, MDB_txn **txn, rete_msg *m);
void store_txn_done(rete_store *s, MDB_txn *txn);

/* store_rt_get gives the transaction to read with: rt's, or a new one
 * (*own = true: end it with store_txn_done). */
rete_err store_rt_get(rete_store *s, rete_store_rtxn *rt, MDB_txn **txn, bool *own, rete_msg *m);

/* store_grow doubles the map; store_reopen closes and reopens the
 * environment. Both take st_grow for writing (no transaction of this
 * process may be open in the calling thread). */
rete_err store_grow(rete_store *s, rete_msg *m);
rete_err store_reopen(rete_store *s, rete_msg *m);

/* store_log_size reads meta "size" in txn (0 when absent). */
rete_err store_log_size(rete_store *s, MDB_txn *txn, uint64_t *size, rete_msg *m);

/* store_seq reads meta "seq" in txn (0 when absent: a store written before
 * it was kept); store_seen_raise records that this process has seen it. */
rete_err store_seq(rete_store *s, MDB_txn *txn, uint64_t *seq, rete_msg *m);
void store_seen_raise(rete_store *s, uint64_t seq);

/* store_node_get is the rete_merkle_get_node callback; ctx = a
 * struct store_node_ctx. */
struct store_node_ctx {
	rete_store *nc_store;
	MDB_txn *nc_txn;
};
rete_err store_node_get(void *ctx, unsigned level, uint64_t index, uint8_t out[RETE_MERKLE_HASH]);

/* store_meta_kv: one meta record for store_meta_put. */
typedef struct store_meta_kv {
	const char *key;
	const void *val;
	size_t len;
} store_meta_kv;

/* store_meta_put writes kv[0..n) into meta in one durable write
 * transaction (store_identity.c records the log's identity this way).
 * Errors: as rete_store_checkpoint_put. */
rete_err store_meta_put(rete_store *s, const store_meta_kv *kv, size_t n, rete_msg *m);

/* store_raw_fn: one step of store_write_raw, run in the write transaction
 * txn of a log of log_size entries. On an LMDB failure it sets *lmdb_rc to
 * the LMDB code (MDB_MAP_FULL makes the store grow the map and run it
 * again) and returns the error; RETE_OK means it wrote something. */
typedef rete_err (*store_raw_fn)(rete_store *s, MDB_txn *txn, uint64_t log_size, void *ctx,
				 int *lmdb_rc, rete_msg *m);

/* store_write_raw runs fn in one durable write transaction with the map
 * growth, full-disk and reopen handling of rete_store_commit. Errors: those
 * of fn, RETE_EPERM (read-only), RETE_EFULL, RETE_ESTORE. */
rete_err store_write_raw(rete_store *s, store_raw_fn fn, void *ctx, rete_msg *m);

/* store_parked_check refuses lists[0..n) rete_store_parked_put would not
 * write (RETE_EINVAL with the sentence); store_parked_key writes the meta
 * key of party's list into key (STORE_PARKED_KEY_MAX bytes) and returns
 * its length, 0 for an id that is empty or too long (store_parked.c). */
#define STORE_PARKED_KEY_MAX (sizeof(RETE_STORE_PARKED_KEY) - 1 + RETE_ID_MAX)
rete_err store_parked_check(const rete_store_parked *lists, size_t n, rete_msg *m);
size_t store_parked_key(char key[STORE_PARKED_KEY_MAX], const char *party);

/* store_timestamp_note_replaced: before the checkpoint of `size` is
 * written as `note` in txn, drops that size's time-stamp token when a note
 * with another body (the text before the blank line: what the token
 * stamps) was stored for it. A note that only gains signature lines keeps
 * its token. *dropped: a token was removed. Returns 0 or the LMDB code. */
int store_timestamp_note_replaced(rete_store *s, MDB_txn *txn, uint64_t size, const char *note,
				  bool *dropped);

/* store_referral_encode writes r in protobuf wire format into buf (cap
 * bytes), the very bytes rete__referral_info__pack gives, and returns how
 * many; 0 when it does not fit or holds what it leaves to protobuf-c
 * (unknown fields, a NULL history element). store_commit.c. */
size_t store_referral_encode(const Rete__ReferralInfo *r, uint8_t *buf, size_t cap);

/* store_log_entry_encode writes LogEntry {index, logged_at, signed_message
 * = sm[0..smlen)} into buf (cap bytes), the very bytes rete__log_entry__pack
 * gives, and returns how many; buf NULL: only how many. 0 when it does not
 * fit, or when the entry is empty (index 0, time 0, no message: protobuf-c
 * packs that as 0 bytes too). store_commit.c. */
size_t store_log_entry_encode(uint64_t index, int64_t logged_at, const uint8_t *sm, size_t smlen,
			      uint8_t *buf, size_t cap);

/* store_dir_forget drops the cached directory. */
void store_dir_forget(rete_store *s);

/* store_disk_nearly_full: the store's file system has (almost) no room
 * left, so that an EIO from LMDB (a short write) is a full disk. */
bool store_disk_nearly_full(const rete_store *s);

/* ---- the journal (store_journal.c) ------------------------------------------ */

void store_redo_add(store_redo *r, rete_store *s, char op, MDB_dbi dbi, const MDB_val *k,
		    const MDB_val *v);
void store_redo_reset(store_redo *r);
void store_redo_free(store_redo *r);

/* store_journal_open opens (making them if missing) the store's two journal
 * files; store_journal_close closes them. A failed open removes the files
 * it made. */
rete_err store_journal_open(rete_store *s, rete_msg *m);

/* store_journal_prepare runs in the opening transaction of a journaled
 * open, before it commits (have: the schema found, 0 for a new store): a
 * store whose journal must be there is checked later (st_jstrict); any
 * other gets its files now, before its schema is raised to 4, and the
 * mark META_JOURNAL. A failure leaves the store as it was. */
rete_err store_journal_prepare(rete_store *s, MDB_txn *txn, uint32_t have, rete_msg *m);
void store_journal_close(rete_store *s);

/* store_journal_write writes and flushes the record of the batch r, run in
 * txn, that gives meta "seq" the value seq and takes the log from
 * size_before to size_after entries. Errors: RETE_EFULL, RETE_EIO,
 * RETE_ENOMEM (nothing durable: the batch must be aborted). */
rete_err store_journal_write(rete_store *s, MDB_txn *txn, const store_redo *r, uint64_t seq,
			     uint64_t size_before, uint64_t size_after, rete_msg *m);

/* store_journal_failed_commit: LMDB's commit of the batch whose record was
 * written last failed; it is applied from the record (now, and before any
 * later write: store_journal_pending, RETE_OK once it is in). Called with
 * st_write held and no transaction open in this thread. */
rete_err store_journal_failed_commit(rete_store *s, rete_msg *m);
rete_err store_journal_pending(rete_store *s, rete_msg *m);

/* store_journal_recover replays, at a writable open, the journal's records
 * beyond LMDB's last commit (*replayed: one was). RETE_ECORRUPT: a record
 * that does not follow the store (the sentence says what to do). */
rete_err store_journal_recover(rete_store *s, bool *replayed, rete_msg *m);

#endif
