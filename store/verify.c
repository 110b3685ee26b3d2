/* verify.c — verification of a whole audit log (see verify.h).
 *
 * The log is read at one fixed size inside one read transaction, in chunks
 * of CHUNK entries. Each chunk goes through three phases:
 *   A (all threads)  strict decoding, leaf hashing and signature checking
 *                    with the key of the newest Directory installed when
 *                    the grain was taken (a guess: see below), entry by
 *                    entry;
 *   B (this thread)  everything that depends on order: the index, the
 *                    stored leaf hashes and nodes against the recomputed
 *                    tree, the key each entry must be signed with (the
 *                    Directory in force changes along the log), checkpoints
 *                    reached at this size;
 *   C                settling the signatures: the key chosen in B almost
 *                    always has the bytes of the key A used; entries whose
 *                    key differs (a Directory entry changed it) are
 *                    verified again (all threads);
 * then, with replay, the entries of the chunk are appended to a scratch
 * store by a replay thread, chunk after chunk, in log order.
 *
 * The chunks are pipelined so that every core stays busy: this thread
 * reads chunk k+1 from the store and hands its phase A to the pool before
 * it runs phase B of chunk k, grain by grain as phase A finishes them; the
 * pool's threads meanwhile run phase A of chunk k+1 (and phase C of chunk
 * k when there is one); the replay thread replays chunk k-1 or k-2. This
 * thread, whenever it would wait, runs grains itself. NBUF chunk buffers
 * circulate; one is refilled only once its chunk is checked and replayed.
 * Because phase A of an entry may run before phase B has installed the
 * Directories that precede it (in this chunk or the one before), phase A
 * takes the newest Directory installed when it takes the grain (v_dir_pub,
 * under v_mu; Directories, once installed, are never changed nor freed
 * before the end); phase B chooses the right one and phase C settles it.
 * Directories are installed by phase B alone, in log order.
 *
 * Only this thread touches the store's LMDB transactions (a transaction
 * belongs to one thread at a time, and the reads are cheap next to the
 * signatures); only the replay thread touches the scratch store until the
 * replay is over. Chunks are read ahead through a second read transaction
 * on the same snapshot as the one phase B, the checkpoints and the final
 * checks read through: a failed read (MDB_CORRUPTED, MDB_PAGE_NOTFOUND)
 * spoils its transaction for every later read, and must not make phase B
 * of the chunk before fail at an earlier position. Without that second
 * transaction, chunk k+1 is read only once chunk k is checked. The
 * pipeline's state (grains handed out and finished, chunks queued for the
 * replay) is under v_mu; failures are under v_lock; the two are never held
 * together.
 *
 * Failures are ordered by a position, so that the first one in log order
 * is reported whichever phase finds it: entry i has position 2i+2, a check
 * made when the tree reaches size S (checkpoints) has position 2S+1, a
 * problem with the earlier checkpoint given has position 0. Phase B runs
 * ahead of phase C and of the replay, so the counts of a failed run
 * (checkpoints, the latest one, Directories) are taken at the end from
 * what lies before the failure's position.
 *
 * A session (rete_verify_session_*) runs the same phases on entries the
 * caller feeds (fetched over the wire): the context then has no store
 * (v_s == NULL), its one checkpoint is the target the caller fetched, the
 * checkpoint it resumes from counts as the last one reached, and its
 * consistency proofs come from the caller's function instead of the store.
 *
 * This file reads stored Merkle nodes through store_impl.h (node_read: a
 * cursor per level on st_nodes, the codes of store_node_get): no public
 * function returns a node of level >= 1, and comparing them with the
 * recomputed ones is part of what an audit checks; it reads the entries in
 * place, through a cursor on st_entries (entry_ref: no copy, the bytes
 * stay in the map while the run's read transactions last); and it begins
 * the read-ahead's transaction on the store's environment (st_env).
 *
 * What phase A decodes lives in its grain's arena (c_arena: no malloc and
 * free per field), taken back when the buffer's next chunk takes the
 * grain; a canonical LogEntry and SignedMessage are not even copied (their
 * bytes fields point into the entry's bytes).
 */
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "duration.h"
#include "json.h"
#include "lifecycle.h"
#include "store_impl.h"

#define CHUNK  4096u /* entries per chunk (memory: a few MiB of entries) */
#define GRAIN  16u   /* entries a thread takes at a time */
#define NGRAIN (CHUNK / GRAIN)
#define NBUF                                                                                       \
	4u /* chunk buffers: one in phase A, one in phase B, the                                   \
	      rest waiting for or in the replay */
#define MAX_THREADS  256u
#define POS_ENTRY(i) (2 * (uint64_t)(i) + 2)
#define POS_SIZE(s)  (2 * (uint64_t)(s) + 1)
#define POS_NONE     UINT64_MAX

/* One party's key as a Directory gives it. */
struct party_key {
	const char *pk_id; /* points into the Directory message */
	rete_pubkey pk_key;
	bool pk_valid;
};

/* A Directory met in the log; kept to the end (entries point to its keys). */
struct vdir {
	uint64_t vd_index;
	Rete__Message *vd_msg; /* owned */
	rete_buf vd_raw;       /* its LogEntry bytes (a session's state keeps them) */
	struct party_key *vd_keys;
	size_t vd_n;
	uint32_t *vd_slot; /* vd_mask + 1 slots: 1 + the index in vd_keys of the
			      first party with an id hashing there (open
			      addressing), 0 empty; NULL: none (no party) */
	size_t vd_mask;
	struct vdir *vd_next;
};

/* One key a party had in the Directories met so far (its key history,
 * kept sorted by party, then by first_index): a party removed and added
 * back is compared with its last key, not with the Directory in force. */
struct kseen {
	char *ks_party; /* malloc'd */
	uint8_t ks_key[RETE_PK_LEN];
	uint64_t ks_first; /* the first Directory entry giving it this key */
	uint64_t ks_last;  /* the last one so far */
};

/* One chunk buffer of the pipeline. */
struct chunk {
	struct item *c_items; /* CHUNK items */
	rete_buf *c_raw;      /* CHUNK: the bytes read; phase A moves them into
				 the items (after clearing the chunk before) */
	rete_arena *c_arena;  /* NGRAIN: phase A decodes grain g into c_arena[g]
				 (one thread at a time), reset when the buffer's
				 next chunk takes the grain */
	uint64_t c_seq;	      /* the chunks started before this one */
	uint64_t c_from;      /* the index of its first entry */
	size_t c_n;	      /* its entries */
	size_t c_ok;	      /* the entries to replay */
	/* under v_mu */
	size_t c_next;	     /* phase A: the first entry not handed out yet */
	unsigned c_busy;     /* phase A grains handed out, not finished */
	bool c_done[NGRAIN]; /* phase A grains finished */
	bool c_replaying;    /* queued for the replay or being replayed */
};

/* A stored checkpoint (a session's target). */
struct ckpt {
	uint64_t ck_size;
	char *ck_note;
	bool ck_consistent; /* its consistency with the one before is already shown */
	bool ck_passed;	    /* reached, and every check of it passed */
};

/* One entry of the chunk being checked. */
struct item {
	uint64_t it_index;
	rete_buf it_raw; /* the LogEntry bytes */
	bool it_raw_own; /* malloc'd (a session's copy); else they point into
			    the store's map, valid while the read transactions
			    of the run last */
	bool it_arena;	 /* it_le, it_sm, it_msg live in the grain's arena */
	Rete__LogEntry *it_le;
	Rete__SignedMessage *it_sm;
	Rete__Message *it_msg;
	uint8_t it_leaf[RETE_MERKLE_HASH];
	rete_err it_err; /* phase A failure */
	char *it_why;	 /* its sentence (malloc) */
	const rete_pubkey *it_key;
	const struct vdir *it_dir; /* NULL: signed by the broker */
	bool it_bad_sig;
	const rete_pubkey *it_spec_key; /* the key phase A verified with */
	bool it_spec_ok;		/* and whether the signature verified */
	/* the sender's party in the Directory phase A guessed with (NULL: not
	 * looked up, or not in it): phase B takes it instead of looking the
	 * sender up again when that Directory is the one in force */
	const struct vdir *it_spec_dir;
	const struct party_key *it_spec_party;
	/* a Delivery's (or DELIVERY_REFUSED notice's) signed acknowledgement,
	 * verified in phase A with the key its signer has in the Directory of
	 * the guess (phase B uses the verdict when the key in force is the same) */
	bool it_ack_spec;
	bool it_ack_ok;
	rete_pubkey it_ack_key;
};

/* An agency's entry not yet delivered (no Delivery or Notice for it met
 * yet): what its signed acknowledgement must name. */
struct pend {
	uint64_t pe_index;
	uint8_t pe_leaf[RETE_MERKLE_HASH];
	char *pe_recipient; /* malloc'd; NULL: settled (a hole, compacted later) */
	char *pe_id;	    /* its message id, malloc'd (with pe_recipient) */
	char *pe_sender;    /* its sender, malloc'd: the one its Delivery goes to */
};

struct vctx {
	rete_store *v_s; /* NULL in a session: entries come from the caller */
	rete_store_rtxn *v_rt;
	MDB_cursor *v_ncur[RETE_MERKLE_MAX_PROOF + 1]; /* phase B's reads of the stored
							  Merkle nodes, a cursor per level
							  on v_rt (NULL: not opened) */
	MDB_cursor *v_ecur;	      /* the reading's, on the transaction fill_store reads
					 through (NULL: not opened) */
	rete_store_rtxn v_ra;	      /* the read-ahead's transaction, on v_rt's snapshot
						 (rt_txn NULL: none, chunks are read through v_rt
						 once the chunk before is checked) */
	rete_verify_proof_fn v_proof; /* where consistency proofs come from */
	void *v_proof_ctx;
	const rete_verify_options *v_opt;
	rete_verify_report *v_rep;
	uint64_t v_size;
	char v_origin[RETE_ORIGIN_MAX + 1];
	uint32_t v_epoch; /* the epoch its Epoch entries so far say (0: 1) */
	bool v_acks_signed;	   /* a signed acknowledgement verified so far: the log
				      is of protocol 3 or later from there on */
	uint64_t v_acks_signed_at; /* the entry that carried the first one */
	rete_merkle_frontier v_fr;
	struct vdir *v_dirs; /* newest first; v_dirs is the one in force */
	struct kseen *v_ks;  /* each party's keys so far (see struct kseen) */
	size_t v_nks, v_kscap;
	struct ckpt *v_ck;
	size_t v_nck, v_ckcap, v_cki; /* checkpoints; the next one to reach */
	bool v_ck_oom;
	bool v_have_prev;
	rete_checkpoint v_prev; /* the last checkpoint reached */
	bool v_have_since;	/* the root at v_since.size is still to compare */
	rete_checkpoint v_since;
	bool v_watch; /* an earlier checkpoint (the one given, or resumed from):
			 a restore declared after it is reported, and checked
			 against it (restore_met) */
	rete_checkpoint v_watch_cp;
	uint32_t v_watch_epoch;
	struct chunk v_ch[NBUF]; /* the chunk buffers (v_ch[0].c_items NULL: none) */
	bool v_raw_own;		 /* the bytes read are malloc'd copies (a session's);
				    else they point into the store's map */
	uint64_t v_seq;		 /* chunks started so far */
	unsigned v_threads;
	pthread_mutex_t v_lock; /* the failure fields: the replay thread fails too */
	/* the first failure */
	uint64_t v_fail_pos;
	rete_err v_fail_err;
	bool v_fail_entry;
	uint64_t v_fail_index;
	char v_fail_text[512];
	/* the replay */
	rete_store *v_scratch;
	char *v_scratch_dir;
	rete_store_op *v_ops; /* the replay's, one chunk at a time */
	/* the pipeline (everything below under v_mu, but the thread ids) */
	pthread_mutex_t v_mu;
	pthread_cond_t v_cv_work;     /* grains to take, or the pool must stop */
	pthread_cond_t v_cv_main;     /* a grain or a replay finished */
	pthread_cond_t v_cv_rp;	      /* a chunk to replay, or the replay must stop */
	const struct vdir *v_dir_pub; /* the newest Directory installed, for phase
					 A's guesses */
	bool v_stop;		      /* the pool's threads leave */
	bool v_rp_stop;		      /* the replay thread leaves once its queue is empty */
	struct item *v_c_items;	      /* phase C: items[0..v_c_n) of the chunk in B */
	size_t v_c_n, v_c_next;
	unsigned v_c_busy;
	struct chunk *v_rpq[NBUF]; /* chunks to replay, in log order */
	size_t v_rpq_head, v_rpq_n;
	pthread_t v_tid[MAX_THREADS];
	unsigned v_nworkers;
	bool v_rp_thread; /* a replay thread runs (else this thread replays) */
	pthread_t v_rp_tid;
	/* phase B: agencies' entries awaiting their Delivery (index order) */
	struct pend *v_pend;
	size_t v_npend, v_pendcap, v_pend_holes;
	uint64_t v_pend_from; /* the first entry this run met: an agency's entry
				 from there on not pending was settled already
				 (or is not an agency's entry) */
};

/* ---- failures ------------------------------------------------------------ */

static bool io_error(rete_err e)
{
	return e == RETE_ENOMEM || e == RETE_ESTORE || e == RETE_EIO || e == RETE_EFULL ||
	       e == RETE_EPERM || e == RETE_EINVAL || e == RETE_ENET || e == RETE_ETIMEDOUT ||
	       e == RETE_EREFUSED;
}

/* fail records a failure at pos unless an earlier one is known. */
static void fail(struct vctx *v, uint64_t pos, rete_err err, bool entry, uint64_t index,
		 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void fail(struct vctx *v, uint64_t pos, rete_err err, bool entry, uint64_t index,
		 const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&v->v_lock);
	if (pos >= v->v_fail_pos && v->v_fail_pos != POS_NONE) {
		pthread_mutex_unlock(&v->v_lock);
		return;
	}
	if (pos == POS_NONE)
		pos = POS_NONE - 1;
	v->v_fail_pos = pos;
	v->v_fail_err = err;
	v->v_fail_entry = entry;
	v->v_fail_index = index;
	va_start(ap, fmt);
	vsnprintf(v->v_fail_text, sizeof(v->v_fail_text), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&v->v_lock);
}

static bool io_error(rete_err e);

static bool failed(struct vctx *v)
{
	bool f;
	pthread_mutex_lock(&v->v_lock);
	f = v->v_fail_pos != POS_NONE;
	pthread_mutex_unlock(&v->v_lock);
	return f;
}

/* failed_before: a failure is known at a position before pos. Checks of
 * later positions need not run (nothing they find would be reported). */
static bool failed_before(struct vctx *v, uint64_t pos)
{
	bool f;
	pthread_mutex_lock(&v->v_lock);
	f = v->v_fail_pos != POS_NONE && v->v_fail_pos < pos;
	pthread_mutex_unlock(&v->v_lock);
	return f;
}

/* failed_io_before: a failure that stops the check itself (I/O, memory)
 * is known at a position before pos. */
static bool failed_io_before(struct vctx *v, uint64_t pos)
{
	bool f;
	pthread_mutex_lock(&v->v_lock);
	f = v->v_fail_pos != POS_NONE && v->v_fail_pos < pos && io_error(v->v_fail_err);
	pthread_mutex_unlock(&v->v_lock);
	return f;
}

static const char *b64(const uint8_t h[RETE_MERKLE_HASH], char buf[64])
{
	sodium_bin2base64(buf, 64, h, RETE_MERKLE_HASH, sodium_base64_VARIANT_ORIGINAL);
	return buf;
}

static const char *S(const char *s)
{
	return s != NULL ? s : "";
}

/* ---- phase A: decoding ---------------------------------------------------- */

static void item_why(struct item *it, rete_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void item_why(struct item *it, rete_err err, const char *fmt, ...)
{
	va_list ap;
	char buf[600];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	it->it_err = err;
	it->it_why = strdup(buf);
}

static const struct party_key *dir_find(const struct vdir *vd, const char *id);
static rete_err dir_key_changes(struct vctx *v, const struct vdir *vd, int64_t logged_at);
static rete_err dir_index(struct vdir *vd);
static void dir_free(struct vdir *vd);

/* epoch_entry_ok checks the first entry of a log epoch (a declared
 * restore, at index idx): the checkpoint it records, the last one signed
 * before the restore, must carry the broker key's signature for this log,
 * name the epoch it says, and cover at least idx entries (the indexes from
 * idx up to its size were used in the earlier epoch too). Its own signature
 * is checked with the broker's other entries. */
static bool epoch_entry_ok(struct vctx *v, const Rete__Message *msg, uint64_t idx)
{
	const Rete__Epoch *e = msg->epoch;
	const char *origin = v->v_origin[0] != '\0' ? v->v_origin : S(msg->origin);
	unsigned long long ui = (unsigned long long)idx;
	rete_checkpoint cp;
	uint32_t named = 0;
	rete_msg m;

	if (e == NULL || e->checkpoint == NULL ||
	    rete_checkpoint_verify(e->checkpoint, strlen(e->checkpoint), origin,
				   &v->v_opt->broker_key, &cp, &m) != RETE_OK ||
	    rete_checkpoint_epoch(e->checkpoint, strlen(e->checkpoint), &named, &m) != RETE_OK) {
		fail(v, POS_ENTRY(idx), RETE_EBADSIG, true, idx,
		     "entry %llu: epoch entry %s: the checkpoint it records is not one the "
		     "broker key signed for the log '%s': %s",
		     ui, S(msg->id), origin, e == NULL ? "no epoch body" : m.text);
		return false;
	}
	if (named != e->previous_epoch || e->epoch <= named) {
		fail(v, POS_ENTRY(idx), RETE_ECORRUPT, true, idx,
		     "entry %llu: epoch entry %s starts epoch %u after epoch %u, but the "
		     "checkpoint it records is of epoch %u",
		     ui, S(msg->id), (unsigned)e->epoch, (unsigned)e->previous_epoch,
		     (unsigned)named);
		return false;
	}
	if (cp.size < idx) {
		fail(v, POS_ENTRY(idx), RETE_ECORRUPT, true, idx,
		     "entry %llu: epoch entry %s records a checkpoint of %llu entries, fewer "
		     "than the %llu before it; a restore is declared only for a log shorter "
		     "than a checkpoint already signed",
		     ui, S(msg->id), (unsigned long long)cp.size, ui);
		return false;
	}
	return true;
}

/* watch_set makes the verified checkpoint note[0:len] (v_since or a
 * resumed one, parsed into v_since / the caller's cp) the one restore_met
 * compares with. RETE_EINVAL when its epoch line is malformed. */
static rete_err watch_set_cp(struct vctx *v, const rete_checkpoint *cp, const char *note,
			     size_t len, rete_msg *m)
{
	rete_err e = rete_checkpoint_epoch(note, len, &v->v_watch_epoch, m);
	if (e != RETE_OK)
		return e;
	v->v_watch_cp = *cp;
	v->v_watch = true;
	return RETE_OK;
}

static rete_err watch_set(struct vctx *v, const char *note, size_t len, rete_msg *m)
{
	return watch_set_cp(v, &v->v_since, note, len, m);
}

/* later_epoch: the checkpoint note (verified) names an epoch later than the
 * watched checkpoint's: the log may hold a restore after it. */
static bool later_epoch(const struct vctx *v, const char *note)
{
	uint32_t ep = 0;
	return v->v_watch && rete_checkpoint_epoch(note, strlen(note), &ep, NULL) == RETE_OK &&
	       ep > v->v_watch_epoch;
}

/* restore_met: the Epoch entry msg at idx (epoch_entry_ok passed) against
 * the earlier checkpoint watched, the auditor's own evidence. The first
 * Epoch entry of an epoch later than that checkpoint's is the restore that
 * followed it: reported (v_rep->restored...). When the earlier checkpoint
 * covers entries from idx on, those entries are not in this log; the one
 * the Epoch entry records, the last checkpoint the broker says it signed
 * before the restore, must then not contradict it: of the same epoch, it
 * may not be smaller (the broker would declare less than it had signed),
 * and at the same size the roots must be equal. The earlier checkpoint's
 * root is then compared with nothing more (its size is past the restore).
 * Returns false when a failure was recorded. */
static bool restore_met(struct vctx *v, const Rete__Message *msg, uint64_t idx)
{
	const Rete__Epoch *e = msg->epoch;
	rete_verify_report *r = v->v_rep;
	unsigned long long ui = (unsigned long long)idx;
	const rete_checkpoint *w = &v->v_watch_cp;
	rete_checkpoint cp;
	char b1[64], b2[64];

	if (!v->v_watch || r->restored || e->epoch <= v->v_watch_epoch)
		return true;
	if (rete_checkpoint_parse(e->checkpoint, strlen(e->checkpoint), &cp, NULL) != RETE_OK)
		return true; /* epoch_entry_ok parsed it already */
	r->restored = true;
	r->restore_index = idx;
	r->restore_epoch = e->epoch;
	r->restore_prev_epoch = e->previous_epoch;
	r->restore_prev_size = cp.size;
	r->since_epoch = v->v_watch_epoch;
	r->since_size = w->size;
	if (idx >= w->size)
		return true; /* the earlier checkpoint lies in the prefix kept */
	r->since_past = true;
	if (e->previous_epoch == v->v_watch_epoch && cp.size < w->size) {
		fail(v, POS_ENTRY(idx), RETE_EPROOF, true, idx,
		     "entry %llu: epoch entry %s says that the last checkpoint of epoch %u was of "
		     "%llu entries, but the checkpoint of epoch %u verified earlier, signed by the "
		     "same key, is of %llu entries: the broker declares less than it had signed",
		     ui, S(msg->id), (unsigned)e->previous_epoch, (unsigned long long)cp.size,
		     (unsigned)v->v_watch_epoch, (unsigned long long)w->size);
		return false;
	}
	if (e->previous_epoch == v->v_watch_epoch && cp.size == w->size &&
	    sodium_memcmp(cp.root, w->root, RETE_MERKLE_HASH) != 0) {
		fail(v, POS_ENTRY(idx), RETE_EPROOF, true, idx,
		     "entry %llu: epoch entry %s records a checkpoint of epoch %u and %llu entries "
		     "with root %s, but the checkpoint of that size verified earlier has root %s: "
		     "the broker signed two histories",
		     ui, S(msg->id), (unsigned)e->previous_epoch, (unsigned long long)cp.size,
		     b64(cp.root, b1), b64(w->root, b2));
		return false;
	}
	v->v_have_since = false;
	return true;
}

/* checkpoint_epoch_ok: a checkpoint of size `size` names the epoch the log
 * is in at that size (its "epoch N" line; none in epoch 1): the epoch of
 * the last Epoch entry met, or, in a session resumed mid-log, of the
 * checkpoint resumed from. */
static bool checkpoint_epoch_ok(struct vctx *v, const char *note, uint64_t size)
{
	uint32_t named = 0, want = v->v_epoch != 0 ? v->v_epoch : 1;
	rete_msg m;

	if (rete_checkpoint_epoch(note, strlen(note), &named, &m) != RETE_OK) {
		fail(v, POS_SIZE(size), RETE_ECORRUPT, false, 0, "checkpoint at size %llu: %s",
		     (unsigned long long)size, m.text);
		return false;
	}
	if (named != want) {
		fail(v, POS_SIZE(size), RETE_ECORRUPT, false, 0,
		     "checkpoint at size %llu names epoch %u, but the log is in epoch %u at that "
		     "size (its epoch entries say so)",
		     (unsigned long long)size, (unsigned)named, (unsigned)want);
		return false;
	}
	return true;
}

/* speculative_key: the key it's message must be signed with under the
 * Directory dir (the newest installed when its grain was taken; NULL when
 * there is none); records the sender's party it found in dir. */
static const rete_pubkey *speculative_key(const struct vctx *v, const struct vdir *dir,
					  struct item *it)
{
	const Rete__Message *msg = it->it_msg;
	const struct party_key *k;

	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_DIRECTORY:
	case RETE__MESSAGE__BODY_DELIVERY:
	case RETE__MESSAGE__BODY_NOTICE:
	case RETE__MESSAGE__BODY_EPOCH:
		return &v->v_opt->broker_key;
	case RETE__MESSAGE__BODY_REFERRAL:
	case RETE__MESSAGE__BODY_UPDATE:
	case RETE__MESSAGE__BODY_NOTE:
		if (dir == NULL || msg->sender == NULL)
			return NULL;
		k = dir_find(dir, msg->sender);
		it->it_spec_dir = dir;
		it->it_spec_party = k;
		return k != NULL && k->pk_valid ? &k->pk_key : NULL;
	default:
		return NULL;
	}
}

/* item_ack: the recipient's signed acknowledgement msg carries (a
 * Delivery, a DELIVERY_REFUSED notice), or NULL. */
static const Rete__SignedAck *item_ack(const Rete__Message *msg)
{
	if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY && msg->delivery != NULL)
		return msg->delivery->ack;
	if (msg->body_case == RETE__MESSAGE__BODY_NOTICE && msg->notice != NULL &&
	    msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED)
		return msg->notice->ack;
	return NULL;
}

/* ack_speculate verifies, in phase A, the acknowledgement entry it carries
 * with the key its signer has in dir (the Directory of the guess): the
 * costly part of check_ack, on the pool's threads. */
static void ack_speculate(const struct vdir *dir, struct item *it, rete_arena *arena)
{
	const Rete__SignedAck *sa = item_ack(it->it_msg);
	if (sa == NULL || dir == NULL || sa->signature.len != RETE_SIG_LEN)
		return;
	/* only to name the signer: check_ack decodes it strictly */
	Rete__AckBody *b =
	    rete__ack_body__unpack(rete_arena_allocator(arena), sa->body.len, sa->body.data);
	if (b == NULL)
		return;
	const struct party_key *k = dir_find(dir, b->recipient);
	if (k != NULL && k->pk_valid) {
		it->it_ack_key = k->pk_key;
		it->it_ack_spec = true;
		it->it_ack_ok =
		    rete_verify_bytes_in(sa->signature.data, RETE_CTX_ACK, sa->body.data,
					 sa->body.len, &k->pk_key, arena) == RETE_OK;
	}
	/* in the arena: nothing to free */
}

/* phase_decode runs phase A on one item (it_index and it_raw set); dir is
 * the Directory to take the speculative key from. What it decodes goes into
 * arena (the grain's: no malloc and free per string and bytes field; a
 * refusal leaves the arena as it was), and lives until the grain's next
 * chunk. */
static void phase_decode(struct vctx *v, const struct vdir *dir, struct item *it, rete_arena *arena)
{
	rete_msg m = {{0}};
	rete_err e;

	rete_merkle_leaf_hash(it->it_leaf, it->it_raw.data, it->it_raw.len);
	it->it_arena = true;
	e = rete_log_entry_decode_in(it->it_raw.data, it->it_raw.len, arena, &it->it_le, &m);
	if (e != RETE_OK) {
		item_why(it, e == RETE_ENOMEM ? e : RETE_EDECODE,
			 "entry %llu: the LogEntry does not decode strictly: %s",
			 (unsigned long long)it->it_index, m.text);
		return;
	}
	e = rete_signed_decode_in(it->it_le->signed_message.data, it->it_le->signed_message.len,
				  arena, &it->it_sm, &it->it_msg, &m);
	if (e != RETE_OK) {
		item_why(it, e == RETE_ENOMEM ? e : RETE_EDECODE,
			 "entry %llu: the signed message does not decode strictly: %s",
			 (unsigned long long)it->it_index, m.text);
		return;
	}
	/* Verify now, in the same parallel pass, with the key the entry needs
	 * if no Directory entry since dir changed it (the usual case); phase B
	 * tells whether that guess was right. dir is a snapshot: phase B may
	 * be installing newer Directories while this runs, but never changes
	 * or frees one installed. */
	it->it_spec_key = speculative_key(v, dir, it);
	if (it->it_spec_key != NULL)
		it->it_spec_ok =
		    rete_signed_verify_in(it->it_sm, it->it_spec_key, arena, NULL) == RETE_OK;
	ack_speculate(dir, it, arena);
}

/* ---- phase C: signatures -------------------------------------------------- */

/* spec_holds: phase A verified it with the very key bytes phase B chose
 * (the outcome of a signature check depends on the key's bytes alone). */
static bool spec_holds(const struct item *it)
{
	return it->it_spec_key != NULL &&
	       (it->it_spec_key == it->it_key ||
		memcmp(it->it_spec_key->ed, it->it_key->ed, sizeof(it->it_key->ed)) == 0);
}

/* phase_verify settles the signature of an entry whose key phase B chose;
 * it verifies again only when phase A guessed another key. */
static void phase_verify(struct vctx *v, struct item *it)
{
	(void)v;
	if (it->it_key == NULL)
		return;
	if (spec_holds(it))
		it->it_bad_sig = !it->it_spec_ok;
	else
		it->it_bad_sig = rete_signed_verify(it->it_sm, it->it_key, NULL) != RETE_OK;
}

/* item_clear empties an item; what lives in its grain's arena is taken
 * back with the arena. */
static void item_clear(struct item *it)
{
	if (it->it_raw_own)
		rete_buf_free(&it->it_raw);
	if (!it->it_arena) {
		if (it->it_le != NULL)
			rete__log_entry__free_unpacked(it->it_le, NULL);
		if (it->it_sm != NULL)
			rete__signed_message__free_unpacked(it->it_sm, NULL);
		if (it->it_msg != NULL)
			rete__message__free_unpacked(it->it_msg, NULL);
	}
	free(it->it_why);
	memset(it, 0, sizeof(*it));
}

/* ---- directories ------------------------------------------------------------ */

/* dir_install makes the Directory of item it the one in force. The vdir
 * keeps a copy of the Message of its own (the item's lives in its grain's
 * arena, taken back with the next chunk), decoded again from the bytes
 * phase A decoded strictly. */
static rete_err dir_install(struct vctx *v, struct item *it)
{
	Rete__Message *own =
	    rete__message__unpack(NULL, it->it_sm->message.len, it->it_sm->message.data);
	const Rete__Directory *d = own != NULL ? own->directory : NULL;
	struct vdir *vd = own != NULL ? calloc(1, sizeof(*vd)) : NULL;
	size_t n = d != NULL ? d->n_parties : 0;

	if (vd == NULL || (n > 0 && (vd->vd_keys = calloc(n, sizeof(*vd->vd_keys))) == NULL) ||
	    (vd->vd_raw.data = malloc(it->it_raw.len + 1)) == NULL) {
		if (vd != NULL)
			free(vd->vd_keys);
		free(vd);
		if (own != NULL)
			rete__message__free_unpacked(own, NULL);
		return RETE_ENOMEM;
	}
	memcpy(vd->vd_raw.data, it->it_raw.data, it->it_raw.len);
	vd->vd_raw.len = it->it_raw.len;
	vd->vd_index = it->it_index;
	vd->vd_msg = own;
	for (size_t i = 0; i < n; i++) {
		const Rete__Party *p = d->parties[i];
		struct party_key *k = &vd->vd_keys[vd->vd_n];
		if (p == NULL || p->id == NULL || *p->id == '\0')
			continue;
		k->pk_id = p->id;
		k->pk_valid = p->public_key.len == RETE_PK_LEN &&
			      rete_pubkey_from_ed(&k->pk_key, p->public_key.data, NULL) == RETE_OK;
		vd->vd_n++;
	}
	if (dir_index(vd) != RETE_OK ||
	    dir_key_changes(v, vd, it->it_le != NULL ? it->it_le->logged_at : 0) != RETE_OK) {
		dir_free(vd);
		return RETE_ENOMEM;
	}
	vd->vd_next = v->v_dirs;
	v->v_dirs = vd;
	pthread_mutex_lock(&v->v_mu);
	v->v_dir_pub = vd; /* phase A guesses with it from now on */
	pthread_mutex_unlock(&v->v_mu);
	v->v_rep->directories++;
	return RETE_OK;
}

/* id_hash: FNV-1a of a party id, for a Directory's slots. */
static size_t id_hash(const char *id)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (const unsigned char *c = (const unsigned char *)id; *c != '\0'; c++)
		h = (h ^ *c) * UINT64_C(1099511628211);
	return (size_t)(h ^ (h >> 32));
}

/* dir_index fills the slots dir_find looks ids up in: a lookup per entry
 * (two with an acknowledgement) instead of a walk through every party of
 * the Directory, which a district's hundreds of agencies made long. An id
 * listed twice finds its first party, as the walk did. RETE_ENOMEM. */
static rete_err dir_index(struct vdir *vd)
{
	size_t cap = 8;

	if (vd->vd_n == 0)
		return RETE_OK;
	while (cap < 2 * vd->vd_n)
		cap *= 2;
	if ((vd->vd_slot = calloc(cap, sizeof(*vd->vd_slot))) == NULL)
		return RETE_ENOMEM;
	vd->vd_mask = cap - 1;
	for (size_t i = 0; i < vd->vd_n; i++) {
		size_t h = id_hash(vd->vd_keys[i].pk_id) & vd->vd_mask;
		while (vd->vd_slot[h] != 0 &&
		       strcmp(vd->vd_keys[vd->vd_slot[h] - 1].pk_id, vd->vd_keys[i].pk_id) != 0)
			h = (h + 1) & vd->vd_mask;
		if (vd->vd_slot[h] == 0)
			vd->vd_slot[h] = (uint32_t)(i + 1);
	}
	return RETE_OK;
}

/* dir_find: the first party of vd with this id, or NULL. */
static const struct party_key *dir_find(const struct vdir *vd, const char *id)
{
	if (vd->vd_slot == NULL)
		return NULL; /* no party */
	for (size_t h = id_hash(id) & vd->vd_mask; vd->vd_slot[h] != 0; h = (h + 1) & vd->vd_mask)
		if (strcmp(vd->vd_keys[vd->vd_slot[h] - 1].pk_id, id) == 0)
			return &vd->vd_keys[vd->vd_slot[h] - 1];
	return NULL;
}

/* ks_range sets [*lo, *hi) to the entries of party id in the key history. */
static void ks_range(const struct vctx *v, const char *id, size_t *lo, size_t *hi)
{
	size_t a = 0, b = v->v_nks;
	while (a < b) {
		size_t mid = a + (b - a) / 2;
		if (strcmp(v->v_ks[mid].ks_party, id) < 0)
			a = mid + 1;
		else
			b = mid;
	}
	*lo = a;
	while (b < v->v_nks && strcmp(v->v_ks[b].ks_party, id) == 0)
		b++;
	*hi = b < a ? a : b;
}

/* ks_note records that the Directory entries first to last gave party id
 * the key: the party's entry for that key is widened, or a new one is
 * added after the party's others. RETE_ENOMEM only. */
static rete_err ks_note(struct vctx *v, const char *id, const uint8_t key[RETE_PK_LEN],
			uint64_t first, uint64_t last)
{
	size_t lo, hi;
	ks_range(v, id, &lo, &hi);
	for (size_t i = lo; i < hi; i++)
		if (memcmp(v->v_ks[i].ks_key, key, RETE_PK_LEN) == 0) {
			if (first < v->v_ks[i].ks_first)
				v->v_ks[i].ks_first = first;
			if (last > v->v_ks[i].ks_last)
				v->v_ks[i].ks_last = last;
			return RETE_OK;
		}
	if (v->v_nks == v->v_kscap) {
		size_t cap = v->v_kscap == 0 ? 64 : v->v_kscap * 2;
		struct kseen *n = realloc(v->v_ks, cap * sizeof(*n));
		if (n == NULL)
			return RETE_ENOMEM;
		v->v_ks = n;
		v->v_kscap = cap;
	}
	char *party = strdup(id);
	if (party == NULL)
		return RETE_ENOMEM;
	memmove(&v->v_ks[hi + 1], &v->v_ks[hi], (v->v_nks - hi) * sizeof(*v->v_ks));
	v->v_ks[hi].ks_party = party;
	memcpy(v->v_ks[hi].ks_key, key, RETE_PK_LEN);
	v->v_ks[hi].ks_first = first;
	v->v_ks[hi].ks_last = last;
	v->v_nks++;
	return RETE_OK;
}

static void ks_free(struct vctx *v)
{
	for (size_t i = 0; i < v->v_nks; i++)
		free(v->v_ks[i].ks_party);
	free(v->v_ks);
	v->v_ks = NULL;
	v->v_nks = v->v_kscap = 0;
}

/* dir_key_changes reports each party whose key in vd (not yet installed)
 * is not the last key it had in any earlier Directory (the key history
 * v_ks, not only the Directory in force: a party removed and added back
 * under another key is a change too): counted, and told to
 * opt->key_change, flagged when the new key is one the party had in an
 * earlier Directory (a change that goes back). Then vd's keys join the
 * history. A party the history already shows at vd's index or later (the
 * Directory a session resumes from, with its saved history) is no change.
 * RETE_ENOMEM only. */
static rete_err dir_key_changes(struct vctx *v, const struct vdir *vd, int64_t logged_at)
{
	for (size_t i = 0; i < vd->vd_n; i++) {
		const struct party_key *k = &vd->vd_keys[i];
		const struct kseen *cur = NULL, *same = NULL;
		bool seen_here = false;
		size_t lo, hi;
		rete_err e;

		if (!k->pk_valid)
			continue;
		ks_range(v, k->pk_id, &lo, &hi);
		for (size_t j = lo; j < hi; j++) {
			const struct kseen *x = &v->v_ks[j];
			if (x->ks_last >= vd->vd_index)
				seen_here = true;
			if (cur == NULL || x->ks_last > cur->ks_last)
				cur = x;
			if (memcmp(x->ks_key, k->pk_key.ed, RETE_PK_LEN) == 0)
				same = x;
		}
		if (!seen_here && cur != NULL && cur != same) {
			rete_verify_key_change kc;
			memset(&kc, 0, sizeof(kc));
			kc.party = k->pk_id;
			kc.index = vd->vd_index;
			kc.logged_at = logged_at;
			kc.prev_index = cur->ks_last;
			memcpy(kc.old_key, cur->ks_key, RETE_PK_LEN);
			kc.old_from = cur->ks_first;
			memcpy(kc.new_key, k->pk_key.ed, RETE_PK_LEN);
			kc.back = same != NULL;
			kc.back_index = same != NULL ? same->ks_first : 0;
			kc.added_back = v->v_dirs == NULL || dir_find(v->v_dirs, k->pk_id) == NULL;
			v->v_rep->key_changes++;
			if (kc.back)
				v->v_rep->key_changes_back++;
			if (v->v_opt->key_change != NULL)
				v->v_opt->key_change(v->v_opt->key_change_ctx, &kc);
		}
		if ((e = ks_note(v, k->pk_id, k->pk_key.ed, vd->vd_index, vd->vd_index)) != RETE_OK)
			return e;
	}
	return RETE_OK;
}

static void dir_free(struct vdir *vd)
{
	rete__message__free_unpacked(vd->vd_msg, NULL);
	rete_buf_free(&vd->vd_raw);
	free(vd->vd_keys);
	free(vd->vd_slot);
	free(vd);
}

static void dirs_free(struct vctx *v)
{
	while (v->v_dirs != NULL) {
		struct vdir *vd = v->v_dirs;
		v->v_dirs = vd->vd_next;
		dir_free(vd);
	}
}

/* ---- checkpoints -------------------------------------------------------------- */

static int collect_ckpt(void *ctx, uint64_t size, const char *note)
{
	struct vctx *v = ctx;
	struct ckpt *nck;

	if (v->v_nck == v->v_ckcap) {
		size_t cap = v->v_ckcap == 0 ? 16 : v->v_ckcap * 2;
		nck = realloc(v->v_ck, cap * sizeof(*nck));
		if (nck == NULL) {
			v->v_ck_oom = true;
			return 1;
		}
		v->v_ck = nck;
		v->v_ckcap = cap;
	}
	v->v_ck[v->v_nck].ck_size = size;
	v->v_ck[v->v_nck].ck_consistent = false;
	v->v_ck[v->v_nck].ck_passed = false;
	if ((v->v_ck[v->v_nck].ck_note = strdup(note)) == NULL) {
		v->v_ck_oom = true;
		return 1;
	}
	v->v_nck++;
	return 0;
}

/* store_proof is the rete_verify_proof_fn of a store: proofs read from
 * its nodes inside the verification's read transaction. */
static rete_err store_proof(void *ctx, uint64_t size1, uint64_t size2,
			    uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m)
{
	struct vctx *v = ctx;
	return rete_store_consistency_proof(v->v_s, v->v_rt, size1, size2, proof, n, m);
}

/* consistency checks that the tree (size2, root2) extends the tree
 * (size1, root1), size1 <= size2, with a proof from v's source (the store,
 * or the session's caller). RETE_OK, RETE_EPROOF (m says why), or the
 * source's error (io_error: the check could not be made). */
static rete_err consistency(struct vctx *v, uint64_t size1, const uint8_t root1[RETE_MERKLE_HASH],
			    uint64_t size2, const uint8_t root2[RETE_MERKLE_HASH], rete_msg *m)
{
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	rete_merkle_elem el[RETE_MERKLE_MAX_PROOF];
	char b1[64], b2[64];
	size_t n = 0;
	rete_err e;

	if (size1 > size2)
		return rete_msg_set(m, RETE_EPROOF,
				    "a tree of %llu entries cannot extend one of %llu entries",
				    (unsigned long long)size2, (unsigned long long)size1);
	if (size1 == 0) /* the empty tree is a prefix of every tree */
		return RETE_OK;
	if (size1 == size2)
		return sodium_memcmp(root1, root2, RETE_MERKLE_HASH) == 0
			   ? RETE_OK
			   : rete_msg_set(m, RETE_EPROOF,
					  "two different roots at the same size %llu: %s and %s",
					  (unsigned long long)size1, b64(root1, b1),
					  b64(root2, b2));
	e = v->v_proof(v->v_proof_ctx, size1, size2, proof, &n, m);
	if (e != RETE_OK)
		return e == RETE_ENOENT || e == RETE_EINVAL || e == RETE_EDECODE ? RETE_EPROOF : e;
	if (n > RETE_MERKLE_MAX_PROOF)
		return rete_msg_set(m, RETE_EPROOF, "the consistency proof has %zu hashes", n);
	for (size_t i = 0; i < n; i++) {
		el[i].data = proof[i];
		el[i].len = RETE_MERKLE_HASH;
	}
	return rete_merkle_verify_consistency(size1, size2, root1, RETE_MERKLE_HASH, root2,
					      RETE_MERKLE_HASH, el, n, m);
}

/* reach_size runs the checks due when the recomputed tree has `size`
 * leaves: the stored checkpoint of that size and the earlier checkpoint
 * given. Returns false on an I/O error (recorded). */
static bool reach_size(struct vctx *v, uint64_t size)
{
	uint8_t root[RETE_MERKLE_HASH];
	char b1[64], b2[64];
	rete_msg m = {{0}};

	/* the root costs a hash per level: only at sizes where a check is due */
	if (!(v->v_have_since && v->v_since.size == size) &&
	    !(v->v_cki < v->v_nck && v->v_ck[v->v_cki].ck_size == size))
		return true;
	rete_merkle_frontier_root(&v->v_fr, root);
	if (v->v_have_since && v->v_since.size == size &&
	    sodium_memcmp(root, v->v_since.root, RETE_MERKLE_HASH) != 0)
		fail(v, POS_SIZE(size), RETE_EPROOF, false, 0,
		     "the log does not extend the checkpoint given: at size %llu its root is %s, "
		     "the checkpoint given says %s (the log was rewritten since)",
		     (unsigned long long)size, b64(root, b1), b64(v->v_since.root, b2));
	while (v->v_cki < v->v_nck && v->v_ck[v->v_cki].ck_size == size) {
		struct ckpt *ck = &v->v_ck[v->v_cki++];
		rete_checkpoint cp;
		rete_err e = rete_checkpoint_verify(ck->ck_note, strlen(ck->ck_note), v->v_origin,
						    &v->v_opt->broker_key, &cp, &m);
		if (e != RETE_OK) {
			fail(v, POS_SIZE(size), e == RETE_ENOMEM ? e : RETE_EBADSIG, false, 0,
			     "checkpoint at size %llu: %s", (unsigned long long)size, m.text);
			return true;
		}
		if (cp.size != size || strcmp(cp.origin, v->v_origin) != 0) {
			fail(v, POS_SIZE(size), RETE_ECORRUPT, false, 0,
			     "checkpoint stored under size %llu is for origin '%s' and size %llu; "
			     "expected origin '%s' and size %llu",
			     (unsigned long long)size, cp.origin, (unsigned long long)cp.size,
			     v->v_origin, (unsigned long long)size);
			return true;
		}
		if (sodium_memcmp(cp.root, root, RETE_MERKLE_HASH) != 0) {
			fail(v, POS_SIZE(size), RETE_ECORRUPT, false, 0,
			     "checkpoint at size %llu: its root %s differs from the root %s "
			     "recomputed from the entries",
			     (unsigned long long)size, b64(cp.root, b1), b64(root, b2));
			return true;
		}
		if (!checkpoint_epoch_ok(v, ck->ck_note, size))
			return true;
		if (v->v_have_prev && !ck->ck_consistent &&
		    (e = consistency(v, v->v_prev.size, v->v_prev.root, size, cp.root, &m)) !=
			RETE_OK) {
			if (io_error(e)) {
				fail(v, POS_SIZE(size), e, false, 0, "%s", m.text);
				return false;
			}
			fail(v, POS_SIZE(size), RETE_EPROOF, false, 0,
			     "checkpoints at sizes %llu and %llu: the consistency proof "
			     "from the %s does not verify: %s",
			     (unsigned long long)v->v_prev.size, (unsigned long long)size,
			     v->v_s != NULL ? "store" : "broker", m.text);
			return true;
		}
		v->v_prev = cp;
		v->v_have_prev = true;
		ck->ck_passed = true;
		v->v_rep->checkpoints++;
		v->v_rep->has_checkpoint = true;
		v->v_rep->latest_size = size;
		memcpy(v->v_rep->latest_root, cp.root, RETE_MERKLE_HASH);
	}
	return true;
}

/* ---- phase B: signed acknowledgements (protocol 3) -------------------------------- */

static void pend_free(struct vctx *v)
{
	for (size_t i = 0; i < v->v_npend; i++) {
		free(v->v_pend[i].pe_recipient);
		free(v->v_pend[i].pe_id);
		free(v->v_pend[i].pe_sender);
	}
	free(v->v_pend);
	v->v_pend = NULL;
	v->v_npend = v->v_pendcap = v->v_pend_holes = 0;
}

/* pend_add records agency entry it as awaiting its Delivery (entries come
 * in index order, so the array stays sorted). RETE_ENOMEM. */
static rete_err pend_add(struct vctx *v, const struct item *it)
{
	if (v->v_pend_holes > 64 && v->v_pend_holes * 2 > v->v_npend) {
		size_t k = 0;
		for (size_t i = 0; i < v->v_npend; i++)
			if (v->v_pend[i].pe_recipient != NULL)
				v->v_pend[k++] = v->v_pend[i];
		v->v_npend = k;
		v->v_pend_holes = 0;
	}
	if (v->v_npend == v->v_pendcap) {
		size_t cap = v->v_pendcap ? v->v_pendcap * 2 : 256;
		struct pend *p = realloc(v->v_pend, cap * sizeof(*p));
		if (p == NULL)
			return RETE_ENOMEM;
		v->v_pend = p;
		v->v_pendcap = cap;
	}
	struct pend *p = &v->v_pend[v->v_npend];
	p->pe_recipient = strdup(S(it->it_msg->recipient));
	p->pe_id = strdup(S(it->it_msg->id));
	p->pe_sender = strdup(S(it->it_msg->sender));
	if (p->pe_recipient == NULL || p->pe_id == NULL || p->pe_sender == NULL) {
		free(p->pe_recipient);
		free(p->pe_id);
		free(p->pe_sender);
		p->pe_recipient = NULL;
		return RETE_ENOMEM;
	}
	p->pe_index = it->it_index;
	memcpy(p->pe_leaf, it->it_leaf, RETE_MERKLE_HASH);
	v->v_npend++;
	return RETE_OK;
}

/* pend_find: the pending entry of log index x, or NULL. */
static struct pend *pend_find(struct vctx *v, uint64_t x)
{
	size_t lo = 0, hi = v->v_npend;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->v_pend[mid].pe_index < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < v->v_npend && v->v_pend[lo].pe_index == x && v->v_pend[lo].pe_recipient != NULL)
		return &v->v_pend[lo];
	return NULL;
}

static void pend_settle(struct vctx *v, struct pend *p)
{
	free(p->pe_recipient);
	free(p->pe_id);
	free(p->pe_sender);
	p->pe_recipient = p->pe_id = p->pe_sender = NULL;
	v->v_pend_holes++;
}

/* What a run knows of the entry a Delivery (or Notice) names. */
enum dlv_state {
	DLV_PENDING, /* an agency's entry awaiting its Delivery: *p */
	DLV_SETTLED, /* met in this run and not awaiting one: settled already
			by an earlier Delivery or Notice, or not an agency's
			entry at all */
	DLV_BEFORE   /* before this run (a session resumed after it): unknown */
};

/* delivered_entry: what this run knows of entry x (x before the entry
 * naming it); *p set when it is pending (settle it once checked). */
static enum dlv_state delivered_entry(struct vctx *v, uint64_t x, struct pend **p)
{
	*p = pend_find(v, x);
	if (*p != NULL)
		return DLV_PENDING;
	return x < v->v_pend_from ? DLV_BEFORE : DLV_SETTLED;
}

/* delivered_is: does the Delivery (or Notice) msg name the message entry x
 * is (p: its id, and its sender, whom the broker's entry goes to)? false:
 * a failure was recorded. */
static bool delivered_is(struct vctx *v, const struct item *it, uint64_t x, const char *mid,
			 enum dlv_state st, const struct pend *p)
{
	const Rete__Message *msg = it->it_msg;
	unsigned long long ui = (unsigned long long)it->it_index, ux = (unsigned long long)x;
	if (st == DLV_SETTLED) {
		fail(v, POS_ENTRY(it->it_index), RETE_ECORRUPT, true, it->it_index,
		     "entry %llu: the %s %s names entry %llu, which is not an agency's message "
		     "awaiting its delivery: its delivery, refusal or expiry is logged before, or "
		     "it is not an agency's message; a message is delivered or refused once, and "
		     "its %s names it",
		     ui, rete_message_kind(msg), S(msg->id), ux, rete_message_kind(msg));
		return false;
	}
	if (st == DLV_PENDING &&
	    (strcmp(S(mid), p->pe_id) != 0 || strcmp(S(msg->recipient), p->pe_sender) != 0)) {
		fail(v, POS_ENTRY(it->it_index), RETE_ECORRUPT, true, it->it_index,
		     "entry %llu: the %s %s says message %.64s to %.64s, but entry %llu is "
		     "message %.64s of %.64s; a %s names the entry of the message it settles",
		     ui, rete_message_kind(msg), S(msg->id), S(mid), S(msg->recipient), ux,
		     p->pe_id, p->pe_sender, rete_message_kind(msg));
		return false;
	}
	return true;
}

/* check_ack verifies the signed acknowledgement a Delivery (or a
 * DELIVERY_REFUSED Notice: error set) at idx carries for entry x: the
 * recipient's signature with its key in the Directory in force here, over
 * this log's origin, index x, the leaf hash of entry x and the error the
 * entry states. None: counted when the log has shown no signed one yet (a
 * log begun before protocol 3, upgraded in place: its unsigned deliveries
 * all come before the first signed one), a failure after one (a broker of
 * protocol 3 or later logs a delivery only with the recipient's signed
 * acknowledgement; one without is the broker's word alone). false: a
 * failure was recorded. */
static bool check_ack(struct vctx *v, const struct item *it, uint64_t x, const char *mid,
		      const Rete__SignedAck *sa, Rete__ErrorCode error)
{
	uint64_t idx = it->it_index;
	const Rete__Message *msg = it->it_msg;
	unsigned long long ui = (unsigned long long)idx, ux = (unsigned long long)x;
	const char *what = rete_message_kind(msg);
	struct pend *p = NULL;
	uint8_t leaf[RETE_MERKLE_HASH];
	char recipient[RETE_ID_MAX + 64] = "";
	enum dlv_state st = x < idx ? delivered_entry(v, x, &p) : DLV_BEFORE;
	bool known = st == DLV_PENDING;
	if (known) {
		memcpy(leaf, p->pe_leaf, RETE_MERKLE_HASH);
		snprintf(recipient, sizeof(recipient), "%s", p->pe_recipient);
	}

	if (x >= idx) {
		/* nothing to bind it to: the entry it acknowledges is not
		 * logged before it (an ack of another epoch, replayed) */
		fail(v, POS_ENTRY(idx), RETE_EBADSIG, true, idx,
		     "entry %llu: the %s %s is of entry %llu, not logged before it; a delivery "
		     "follows the entry it acknowledges (its signed acknowledgement cannot be "
		     "bound to one)",
		     ui, what, S(msg->id), ux);
		return false;
	}
	if (!delivered_is(v, it, x, mid, st, p))
		return false;
	if (sa == NULL && v->v_acks_signed) {
		fail(
		    v, POS_ENTRY(idx), RETE_EBADSIG, true, idx,
		    "entry %llu: the %s %s of entry %llu carries no acknowledgement signed by "
		    "its recipient %s, although entry %llu before it carries one: from there on "
		    "the log is of protocol 3 or later, where the broker logs a delivery only with "
		    "the recipient's signed acknowledgement; this one is the broker's word alone",
		    ui, what, S(msg->id), ux, known ? recipient : "(an entry before this session)",
		    (unsigned long long)v->v_acks_signed_at);
		return false;
	}
	if (sa == NULL) {
		v->v_rep->acks_unsigned++;
		if (p != NULL)
			pend_settle(v, p);
		return true;
	}
	ProtobufCMessage *pm = NULL;
	rete_msg m = {{0}};
	if (rete_pb_strict_unpack(&rete__ack_body__descriptor, sa->body.data, sa->body.len, &pm,
				  &m) != RETE_OK) {
		fail(v, POS_ENTRY(idx), RETE_EDECODE, true, idx,
		     "entry %llu: the recipient's acknowledgement in %s %s does not decode: %s", ui,
		     what, S(msg->id), m.text);
		return false;
	}
	Rete__AckBody *b = (Rete__AckBody *)pm;
	const struct party_key *k = v->v_dirs != NULL ? dir_find(v->v_dirs, b->recipient) : NULL;
	const char *why = NULL;
	char buf[256];
	if (known && strcmp(b->recipient, recipient) != 0) {
		snprintf(buf, sizeof(buf),
			 "it is signed as %.64s, but entry %llu is addressed to %.64s",
			 b->recipient, ux, recipient);
		why = buf;
	} else if (k == NULL || !k->pk_valid) {
		snprintf(buf, sizeof(buf), "its signer %.64s has no key in the directory in force",
			 b->recipient);
		why = buf;
	} else if (!(it->it_ack_spec && sodium_memcmp(it->it_ack_key.ed, k->pk_key.ed,
						      sizeof(k->pk_key.ed)) == 0
			 ? it->it_ack_ok /* phase A's verdict, with these very key bytes */
			 : rete_ack_verify(sa, &k->pk_key, NULL, NULL) == RETE_OK)) {
		(void)rete_ack_verify(sa, &k->pk_key, NULL, &m); /* the sentence */
		snprintf(buf, sizeof(buf), "%s", m.text);
		why = buf;
	} else if (v->v_origin[0] != '\0' && strcmp(b->origin, v->v_origin) != 0) {
		snprintf(buf, sizeof(buf), "it names log '%.64s', not this log", b->origin);
		why = buf;
	} else if (b->index != x) {
		snprintf(buf, sizeof(buf), "it acknowledges entry %llu, not entry %llu",
			 (unsigned long long)b->index, ux);
		why = buf;
	} else if (b->error != error) {
		snprintf(buf, sizeof(buf), "it says error %d where the %s says %d", (int)b->error,
			 what, (int)error);
		why = buf;
	} else if (known && (b->leaf_hash.len != RETE_MERKLE_HASH ||
			     sodium_memcmp(b->leaf_hash.data, leaf, RETE_MERKLE_HASH) != 0)) {
		snprintf(buf, sizeof(buf),
			 "its leaf hash is not the one of entry %llu: it acknowledges other bytes",
			 ux);
		why = buf;
	}
	protobuf_c_message_free_unpacked(pm, NULL);
	if (why != NULL) {
		fail(v, POS_ENTRY(idx), RETE_EBADSIG, true, idx,
		     "entry %llu: the recipient's signed acknowledgement in %s %s of entry %llu "
		     "does not hold: %s",
		     ui, what, S(msg->id), ux, why);
		return false;
	}
	v->v_rep->acks_verified++;
	if (!v->v_acks_signed) {
		v->v_acks_signed = true;
		v->v_acks_signed_at = idx;
	}
	if (!known)
		v->v_rep->acks_unbound++;
	if (p != NULL)
		pend_settle(v, p);
	return true;
}

/* check_acks runs the acknowledgement checks of one entry (phase B, in log
 * order): an agency's entry awaits its Delivery; a Delivery or a
 * DELIVERY_REFUSED Notice carries the recipient's signature; a
 * NOT_DELIVERED Notice settles the entry (no ack). false: a failure was
 * recorded. */
static bool check_acks(struct vctx *v, struct item *it)
{
	const Rete__Message *msg = it->it_msg;
	uint64_t idx = it->it_index;

	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
	case RETE__MESSAGE__BODY_UPDATE:
	case RETE__MESSAGE__BODY_NOTE:
		if (*S(msg->recipient) == '\0')
			return true;
		if (pend_add(v, it) != RETE_OK) {
			fail(v, POS_ENTRY(idx), RETE_ENOMEM, true, idx, "verify: out of memory");
			return false;
		}
		return true;
	case RETE__MESSAGE__BODY_DELIVERY:
		return msg->delivery == NULL ||
		       check_ack(v, it, msg->delivery->index, msg->delivery->message_id,
				 msg->delivery->ack, 0);
	case RETE__MESSAGE__BODY_NOTICE:
		if (msg->notice == NULL)
			return true;
		if (msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED)
			return check_ack(v, it, msg->notice->index, msg->notice->message_id,
					 msg->notice->ack, msg->notice->error);
		if (msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED) {
			struct pend *p = pend_find(v, msg->notice->index);
			if (p != NULL)
				pend_settle(v, p);
		}
		return true;
	default:
		return true;
	}
}

/* ---- phase B: order ------------------------------------------------------------ */

/* node_read reads the stored Merkle node (level, index) as store_node_get
 * does (the same codes), through the level's cursor: phase B reads each
 * level's nodes in key order, so the cursor is mostly on the right page
 * already and LMDB looks the key up there instead of from the root. */
static rete_err node_read(struct vctx *v, unsigned level, uint64_t index,
			  uint8_t out[RETE_MERKLE_HASH])
{
	struct store_node_ctx c = {v->v_s, v->v_rt->rt_txn};
	MDB_cursor **cur =
	    level < sizeof(v->v_ncur) / sizeof(v->v_ncur[0]) ? &v->v_ncur[level] : NULL;
	uint8_t key[STORE_NODE_KEY];
	MDB_val k = {sizeof(key), key}, val;
	int rc;

	if (cur == NULL)
		return store_node_get(&c, level, index, out);
	if (*cur == NULL && mdb_cursor_open(v->v_rt->rt_txn, v->v_s->st_nodes, cur) != 0) {
		*cur = NULL;
		return store_node_get(&c, level, index, out);
	}
	node_key(key, level, index);
	rc = mdb_cursor_get(*cur, &k, &val, MDB_SET_KEY);
	return node_value(rc, &val, out);
}

/* cursors_close closes the cursors of node_read and entry_ref (before
 * their transactions end: a read-only transaction's cursors are the
 * caller's to close). */
static void cursors_close(struct vctx *v)
{
	for (size_t i = 0; i < sizeof(v->v_ncur) / sizeof(v->v_ncur[0]); i++) {
		if (v->v_ncur[i] != NULL)
			mdb_cursor_close(v->v_ncur[i]);
		v->v_ncur[i] = NULL;
	}
	if (v->v_ecur != NULL)
		mdb_cursor_close(v->v_ecur);
	v->v_ecur = NULL;
}

/* check_entry runs the in-order checks of one entry: CHECK_OK, or a
 * failure was recorded and the chunk stops before this entry (CHECK_BAD) or
 * after it (CHECK_AFTER: a check at the size it completes failed, so its
 * own signature must still be checked). */
enum { CHECK_OK, CHECK_BAD, CHECK_AFTER };

/* clock_check compares the loggedAt of entry it with the latest loggedAt
 * before it and, for an agency's message, with its signed createdAt
 * (report s12, 3: a broker whose clock was set back logs its entries
 * "before" the ones it logged earlier, and before the sender wrote them).
 * A loggedAt before the createdAt has a third cause, which the log alone
 * cannot tell from the two clocks: a createdAt the sender's case system
 * wrote ahead (local time with a Z; final-read s12, 4); the warning names
 * it (audit_clock_print). Counted in the report, the first of each kind
 * with its figures; not a failure: the entries are what was signed and
 * logged, only their times are wrong, and what was done at those times is
 * not evidence. */
static void clock_check(struct vctx *v, const struct item *it)
{
	rete_verify_report *r = v->v_rep;
	int64_t at = it->it_le->logged_at;
	const Rete__Message *msg = it->it_msg;

	if (r->clock_seen && at < r->clock_latest - RETE_CLOCK_STEP_MS && r->clock_back++ == 0) {
		r->clock_back_index = it->it_index;
		r->clock_back_at = at;
		r->clock_back_prev = r->clock_latest;
		r->clock_back_prev_index = r->clock_latest_index;
	}
	if (!r->clock_seen || at > r->clock_latest) {
		r->clock_seen = true;
		r->clock_latest = at;
		r->clock_latest_index = it->it_index;
	}
	bool agency = msg->body_case == RETE__MESSAGE__BODY_REFERRAL ||
		      msg->body_case == RETE__MESSAGE__BODY_UPDATE ||
		      msg->body_case == RETE__MESSAGE__BODY_NOTE;
	if (agency && msg->created_at > 0 && at < msg->created_at - RETE_CLOCK_SKEW_MS &&
	    r->clock_early++ == 0) {
		r->clock_early_index = it->it_index;
		r->clock_early_at = at;
		r->clock_early_created = msg->created_at;
	}
}

static int check_entry(struct vctx *v, struct item *it)
{
	rete_merkle_node nodes[RETE_MERKLE_MAX_PROOF];
	uint8_t h[RETE_MERKLE_HASH];
	uint64_t idx = it->it_index;
	unsigned long long ui = (unsigned long long)idx;
	const Rete__Message *msg;
	size_t n = 0;
	rete_err e;

	if (it->it_why != NULL) {
		fail(v, POS_ENTRY(idx), it->it_err, true, idx, "%s", it->it_why);
		return CHECK_BAD;
	}
	if (it->it_le->index != idx) {
		fail(v, POS_ENTRY(idx), RETE_ECORRUPT, true, idx,
		     "entry %llu: its LogEntry says index %llu; the index must equal the "
		     "position in the log",
		     ui, (unsigned long long)it->it_le->index);
		return CHECK_BAD;
	}
	/* the tree (and, with a store, the stored leaf hash and nodes) */
	e = v->v_s != NULL ? node_read(v, 0, idx, h) : RETE_OK;
	if (v->v_s == NULL)
		memcpy(h, it->it_leaf, RETE_MERKLE_HASH);
	if (e == RETE_ESTORE) {
		fail(v, POS_ENTRY(idx), e, true, idx, "entry %llu: reading its leaf hash failed",
		     ui);
		return CHECK_BAD;
	}
	if (e != RETE_OK || sodium_memcmp(h, it->it_leaf, RETE_MERKLE_HASH) != 0) {
		fail(v, POS_ENTRY(idx), RETE_ECORRUPT, true, idx,
		     "entry %llu: %s; the entry or the tree was altered after it was logged", ui,
		     e != RETE_OK ? "its stored leaf hash is missing"
				  : "its bytes do not hash to the stored leaf hash");
		return CHECK_BAD;
	}
	if (rete_merkle_frontier_append(&v->v_fr, it->it_leaf, nodes, &n) != RETE_OK) {
		fail(v, POS_ENTRY(idx), RETE_ECORRUPT, true, idx, "entry %llu: the tree is full",
		     ui);
		return CHECK_BAD;
	}
	for (size_t i = 0; v->v_s != NULL && i < n; i++) {
		e = node_read(v, nodes[i].level, nodes[i].index, h);
		if (e == RETE_ESTORE) {
			fail(v, POS_ENTRY(idx), e, true, idx,
			     "entry %llu: reading a Merkle node failed", ui);
			return CHECK_BAD;
		}
		if (e != RETE_OK || sodium_memcmp(h, nodes[i].hash, RETE_MERKLE_HASH) != 0) {
			fail(v, POS_ENTRY(idx), RETE_ECORRUPT, true, idx,
			     "entry %llu: the stored Merkle node (level %u, index %llu) it "
			     "completes is %s the one recomputed from the entries",
			     ui, nodes[i].level, (unsigned long long)nodes[i].index,
			     e != RETE_OK ? "missing, unlike" : "different from");
			return CHECK_BAD;
		}
	}
	/* the message and its key */
	msg = it->it_msg;
	if (v->v_origin[0] != '\0' && msg->origin != NULL && *msg->origin != '\0' &&
	    strcmp(msg->origin, v->v_origin) != 0) {
		fail(v, POS_ENTRY(idx), RETE_ECORRUPT, true, idx,
		     "entry %llu: message %s of %s is meant for the log '%s', not for this log "
		     "'%s'",
		     ui, S(msg->id), S(msg->sender), msg->origin, v->v_origin);
		return CHECK_BAD;
	}
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_EPOCH:
		if (!epoch_entry_ok(v, msg, idx) || !restore_met(v, msg, idx))
			return CHECK_BAD;
		v->v_epoch = msg->epoch->epoch;
		it->it_key = &v->v_opt->broker_key;
		it->it_dir = NULL;
		break;
	case RETE__MESSAGE__BODY_DIRECTORY:
	case RETE__MESSAGE__BODY_DELIVERY:
	case RETE__MESSAGE__BODY_NOTICE:
		it->it_key = &v->v_opt->broker_key;
		it->it_dir = NULL;
		break;
	case RETE__MESSAGE__BODY_REFERRAL:
	case RETE__MESSAGE__BODY_UPDATE:
	case RETE__MESSAGE__BODY_NOTE: {
		const struct party_key *k;
		if (v->v_dirs == NULL) {
			fail(v, POS_ENTRY(idx), RETE_EBADSIG, true, idx,
			     "entry %llu: %s %s of %s comes before any Directory entry: there is "
			     "no key to verify it with",
			     ui, rete_message_kind(msg), S(msg->id), S(msg->sender));
			return CHECK_BAD;
		}
		/* phase A looked the sender up in the Directory in force
		 * (the usual case): the same party */
		k = it->it_spec_party != NULL && it->it_spec_dir == v->v_dirs
			? it->it_spec_party
			: dir_find(v->v_dirs, S(msg->sender));
		if (k == NULL || !k->pk_valid) {
			fail(v, POS_ENTRY(idx), RETE_EBADSIG, true, idx,
			     "entry %llu: sender %s %s the directory in force (entry %llu)", ui,
			     S(msg->sender),
			     k == NULL ? "is not in" : "has no valid Ed25519 key in",
			     (unsigned long long)v->v_dirs->vd_index);
			return CHECK_BAD;
		}
		it->it_key = &k->pk_key;
		it->it_dir = v->v_dirs;
		break;
	}
	default:
		fail(v, POS_ENTRY(idx), RETE_EDECODE, true, idx,
		     "entry %llu: message %s of %s has no body", ui, S(msg->id), S(msg->sender));
		return CHECK_BAD;
	}
	if (msg->body_case == RETE__MESSAGE__BODY_DIRECTORY) {
		if (dir_install(v, it) != RETE_OK) {
			fail(v, POS_ENTRY(idx), RETE_ENOMEM, true, idx,
			     "entry %llu: out of memory for its directory", ui);
			return CHECK_BAD;
		}
	}
	clock_check(v, it);
	if (!check_acks(v, it))
		return CHECK_BAD;
	/* a failure at a later position (the next chunk's reading, already
	 * done) must not stop this chunk */
	if (!reach_size(v, idx + 1) || failed_before(v, POS_ENTRY(idx + 1)))
		return CHECK_AFTER;
	return CHECK_OK;
}

/* ---- the replay ------------------------------------------------------------------ */

static rete_err rm_scratch(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];

	if (d == NULL)
		return RETE_EIO;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(dir) == 0 ? RETE_OK : RETE_EIO;
}

static rete_err scratch_open(struct vctx *v, rete_msg *m)
{
	const char *parent = v->v_opt->scratch_dir;
	size_t len;
	rete_err e;

	if (parent == NULL || *parent == '\0')
		parent = getenv("TMPDIR");
	if (parent == NULL || *parent == '\0')
		parent = "/tmp";
	len = strlen(parent) + 32;
	if ((v->v_scratch_dir = malloc(len)) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	snprintf(v->v_scratch_dir, len, "%s/rete-verify-XXXXXX", parent);
	if (mkdtemp(v->v_scratch_dir) == NULL) {
		e = rete_msg_set(m, RETE_EIO,
				 "verify: cannot create the scratch folder for the replay in %s: "
				 "%s; give another folder",
				 parent, strerror(errno));
		free(v->v_scratch_dir);
		v->v_scratch_dir = NULL;
		return e;
	}
	/* Thrown away at the end: its commits need not be durable (an fsync
	 * per chunk made the replay wait on the disk). It ends up about as
	 * large as the store: its map starts at the store's size, so that it
	 * need not grow (a growth waits for the map to be reopened and runs
	 * the chunk's commit again). The map reserves addresses, not disk. */
	rete_store_options so = {0};
	so.map_size = v->v_s != NULL && v->v_s->st_map_size > STORE_DEFAULT_MAP
			  ? v->v_s->st_map_size
			  : STORE_DEFAULT_MAP;
	e = rete_store_open_ex(&v->v_scratch, v->v_scratch_dir,
			       RETE_STORE_CREATE | RETE_STORE_SCRATCH, &so, m);
	if (e != RETE_OK) {
		rete_msg_prefix(m, "verify: the scratch store for the replay");
		return e;
	}
	/* appends, then up to two ACKs per entry (replay_acks) */
	if ((v->v_ops = calloc(3 * CHUNK, sizeof(*v->v_ops))) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	return RETE_OK;
}

static void scratch_close(struct vctx *v)
{
	rete_store_close(&v->v_scratch);
	if (v->v_scratch_dir != NULL)
		rm_scratch(v->v_scratch_dir);
	free(v->v_scratch_dir);
	v->v_scratch_dir = NULL;
	free(v->v_ops);
	v->v_ops = NULL;
}

/* recipient_of gives the recipient of entry x (malloc'd; NULL when it has
 * none or cannot be read): from items[0..n) when x is one of them, else
 * from the scratch store, where it was replayed before. */
static char *recipient_of(struct vctx *v, const struct item *items, size_t n, uint64_t x)
{
	Rete__LogEntry *le = NULL;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_buf raw = {0};
	char *r = NULL;

	if (n > 0 && x >= items[0].it_index && x - items[0].it_index < n &&
	    items[x - items[0].it_index].it_index == x) {
		const Rete__Message *im = items[x - items[0].it_index].it_msg;
		return *S(im->recipient) ? strdup(im->recipient) : NULL;
	}
	if (rete_store_entry(v->v_scratch, NULL, x, &raw, NULL) != RETE_OK)
		return NULL;
	if ((le = rete__log_entry__unpack(NULL, raw.len, raw.data)) != NULL &&
	    (sm = rete__signed_message__unpack(NULL, le->signed_message.len,
					       le->signed_message.data)) != NULL &&
	    (msg = rete__message__unpack(NULL, sm->message.len, sm->message.data)) != NULL &&
	    *S(msg->recipient))
		r = strdup(msg->recipient);
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
	if (le != NULL)
		rete__log_entry__free_unpacked(le, NULL);
	rete_buf_free(&raw);
	return r;
}

/* op_reset empties an op but for its refusal's sentence (2 KiB the store
 * writes only with a refusal): clearing whole ops cost 27 MB of memset
 * per chunk. */
static void op_reset(rete_store_op *op)
{
	memset(op, 0, offsetof(rete_store_op, error_text));
	op->error_text[0] = '\0';
	op->was_present = false;
}

/* replay_acks adds to ops (after the appends of items[0..n), in the same
 * commit: an ACK is taken into account after the appends before it) what
 * the broker takes out of its own queue (and blobs), as far as the log
 * shows it: an agency's entry acked (a Delivery entry, or a
 * DELIVERY_REFUSED Notice, logged in the same commit as the ACK) or
 * expired (a NOT_DELIVERED Notice). The broker's own entries leave no
 * trace in the log when their recipient acks them: they are taken out at
 * once, and compare_index accepts a queue row of one in the store when the
 * entry says so. Returns the ACKs added (at most 2n); the recipients read
 * back from the scratch store go to owned[0..*no) (malloc'd). */
static size_t replay_acks(struct vctx *v, struct item *items, size_t n, rete_store_op *ops,
			  char **owned, size_t *no)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const Rete__Message *msg = items[i].it_msg;
		bool broker = msg->body_case == RETE__MESSAGE__BODY_DELIVERY ||
			      msg->body_case == RETE__MESSAGE__BODY_NOTICE ||
			      msg->body_case == RETE__MESSAGE__BODY_DIRECTORY;
		uint64_t x = 0;
		bool done = false;
		if (broker && *S(msg->recipient)) {
			op_reset(&ops[k]);
			ops[k].kind = RETE_STORE_OP_ACK;
			ops[k].in.recipient = msg->recipient;
			ops[k].in.index = items[i].it_index;
			k++;
		}
		if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY && msg->delivery != NULL) {
			x = msg->delivery->index;
			done = true;
		} else if (msg->body_case == RETE__MESSAGE__BODY_NOTICE && msg->notice != NULL &&
			   (msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED ||
			    msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED)) {
			x = msg->notice->index;
			done = true;
		}
		if (done && x < items[i].it_index) {
			/* from items when x is one of them, else from the scratch
			 * store, where an earlier commit put it */
			char *r = recipient_of(v, items, n, x);
			if (r != NULL) {
				owned[(*no)++] = r;
				op_reset(&ops[k]);
				ops[k].kind = RETE_STORE_OP_ACK;
				ops[k].in.recipient = r;
				ops[k].in.index = x;
				k++;
			}
		}
	}
	return k;
}

/* replay_items appends items[0..n) to the scratch store, with the ACKs the
 * log shows (replay_acks), in one commit (a commit per chunk, not two: the
 * queue's and blobs' pages an append dirties are those its ACK dirties
 * again), and compares the results with the log. */
static void replay_items(struct vctx *v, struct item *items, size_t n)
{
	char **owned;
	size_t k, no = 0;
	rete_msg m = {{0}};
	rete_err e;

	if (n == 0)
		return;
	if ((owned = calloc(n, sizeof(*owned))) == NULL) {
		fail(v, POS_ENTRY(items[0].it_index), RETE_ENOMEM, false, 0,
		     "verify: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		rete_store_op *op = &v->v_ops[i];
		op_reset(op);
		op->kind = RETE_STORE_OP_APPEND;
		op->in.signed_message = items[i].it_le->signed_message.data;
		op->in.len = items[i].it_le->signed_message.len;
		op->in.msg = items[i].it_msg;
		op->in.logged_at = items[i].it_le->logged_at;
		/* the store compares the bytes it builds with the entry's
		 * instead of hashing them again (the check below then compares
		 * what those bytes hash to) */
		op->in.expect_entry = items[i].it_raw.data;
		op->in.expect_len = items[i].it_raw.len;
		op->in.expect_leaf = items[i].it_leaf;
		/* The sealed part itself is not in the log, its SHA-256 is:
		 * the scratch store keeps that in its place, so that its
		 * blobs database names the parts the store must still keep
		 * and what they must hash to (compare_index). */
		ProtobufCBinaryData h = rete_message_private_hash(items[i].it_msg);
		if (h.len > 0) {
			op->in.sealed = h.data;
			op->in.sealed_len = h.len;
		}
	}
	k = replay_acks(v, items, n, v->v_ops + n, owned, &no);
	e = rete_store_commit(v->v_scratch, v->v_ops, n + k, &m);
	for (size_t i = 0; i < no; i++)
		free(owned[i]);
	free(owned);
	if (e != RETE_OK) {
		fail(v, POS_ENTRY(items[0].it_index), e, false, 0,
		     "verify: appending to the scratch store for the replay failed: %s", m.text);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const rete_store_op *op = &v->v_ops[i];
		const struct item *it = &items[i];
		unsigned long long ui = (unsigned long long)it->it_index;
		if (op->status == RETE_STORE_REFUSED) {
			fail(v, POS_ENTRY(it->it_index), RETE_ELIFECYCLE, true, it->it_index,
			     "entry %llu: replaying the lifecycle refuses %s %s of %s: %s", ui,
			     rete_message_kind(it->it_msg), S(it->it_msg->id),
			     S(it->it_msg->sender), op->error_text);
			return;
		}
		if (op->status == RETE_STORE_DUPLICATE) {
			fail(v, POS_ENTRY(it->it_index), RETE_ELIFECYCLE, true, it->it_index,
			     "entry %llu: message id %s of %s was already logged at entry %llu; a "
			     "broker never logs a message twice",
			     ui, S(it->it_msg->id), S(it->it_msg->sender),
			     (unsigned long long)op->index);
			return;
		}
		if (op->index != it->it_index ||
		    sodium_memcmp(op->leaf_hash, it->it_leaf, RETE_MERKLE_HASH) != 0) {
			fail(v, POS_ENTRY(it->it_index), RETE_ECORRUPT, true, it->it_index,
			     "entry %llu: replayed, it becomes entry %llu with other bytes; the "
			     "store would not have written it this way",
			     ui, (unsigned long long)op->index);
			return;
		}
	}
}

/* Referral projections in id order, packed (the replayed ones, or the
 * store's). */
struct proj {
	char *pj_id;
	uint8_t *pj_data;
	size_t pj_len;
};

struct projs {
	struct proj *ps_v;
	size_t ps_n, ps_cap;
	bool ps_oom;
};

static int collect_proj(void *ctx, const Rete__ReferralInfo *r)
{
	struct projs *ps = ctx;
	struct proj *p;

	if (ps->ps_n == ps->ps_cap) {
		size_t cap = ps->ps_cap == 0 ? 256 : ps->ps_cap * 2;
		struct proj *nv = realloc(ps->ps_v, cap * sizeof(*nv));
		if (nv == NULL)
			goto oom;
		ps->ps_v = nv;
		ps->ps_cap = cap;
	}
	p = &ps->ps_v[ps->ps_n];
	p->pj_len = rete__referral_info__get_packed_size(r);
	p->pj_data = malloc(p->pj_len + 1);
	p->pj_id = strdup(S(r->id));
	if (p->pj_data == NULL || p->pj_id == NULL) {
		free(p->pj_data);
		free(p->pj_id);
		goto oom;
	}
	rete__referral_info__pack(r, p->pj_data);
	ps->ps_n++;
	return 0;
oom:
	ps->ps_oom = true;
	return 1;
}

static void projs_free(struct projs *ps)
{
	for (size_t i = 0; i < ps->ps_n; i++) {
		free(ps->ps_v[i].pj_id);
		free(ps->ps_v[i].pj_data);
	}
	free(ps->ps_v);
}

/* compare_projs compares the store's projections (st) with the replayed
 * ones (rp), both in id order, and records the first difference. */
static void compare_projs(struct vctx *v, const struct projs *st, const struct projs *rp)
{
	size_t j = 0;

	for (size_t i = 0; i < st->ps_n; i++) {
		const struct proj *sp = &st->ps_v[i];
		Rete__ReferralInfo *r, *rr;
		if (j >= rp->ps_n || strcmp(rp->ps_v[j].pj_id, sp->pj_id) > 0) {
			r = rete__referral_info__unpack(NULL, sp->pj_len, sp->pj_data);
			fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
			     "referral %s (entry %llu): the store has a projection of it, but "
			     "replaying the log creates no such referral",
			     sp->pj_id, r != NULL ? (unsigned long long)r->index : 0ULL);
			if (r != NULL)
				rete__referral_info__free_unpacked(r, NULL);
			return;
		}
		if (strcmp(rp->ps_v[j].pj_id, sp->pj_id) < 0)
			break; /* a replayed referral the store lacks */
		v->v_rep->referrals++;
		if (sp->pj_len == rp->ps_v[j].pj_len &&
		    memcmp(sp->pj_data, rp->ps_v[j].pj_data, sp->pj_len) == 0) {
			j++;
			continue;
		}
		r = rete__referral_info__unpack(NULL, sp->pj_len, sp->pj_data);
		rr = rete__referral_info__unpack(NULL, rp->ps_v[j].pj_len, rp->ps_v[j].pj_data);
		fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
		     "referral %s (entry %llu): the store's projection (status %s, last changed "
		     "by entry %llu) differs from the one replayed from the log (status %s, last "
		     "changed by entry %llu)",
		     sp->pj_id, r != NULL ? (unsigned long long)r->index : 0ULL,
		     r != NULL ? rete_status_name(r->status) : "?",
		     r != NULL ? (unsigned long long)r->last_index : 0ULL,
		     rr != NULL ? rete_status_name(rr->status) : "?",
		     rr != NULL ? (unsigned long long)rr->last_index : 0ULL);
		if (r != NULL)
			rete__referral_info__free_unpacked(r, NULL);
		if (rr != NULL)
			rete__referral_info__free_unpacked(rr, NULL);
		return;
	}
	if (j < rp->ps_n)
		fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
		     "referral %s: replaying the log creates it, but the store has no "
		     "projection of it",
		     rp->ps_v[j].pj_id);
}

/* ---- the derived indexes ---------------------------------------------------------- */

/* The databases the store derives from the log besides the projections,
 * compared row by row with the ones the replay derived (one merge of two
 * key-ordered cursors each: memory stays flat whatever the log's size). */
enum ix_kind {
	IX_CASES,  /* case id "\0" index -> "" */
	IX_MSGIDS, /* sender "\0" id -> index, SHA-256, logged_at */
	IX_DUE,	   /* due_at, referral id -> "" */
	IX_QUEUE,  /* recipient "\0" index -> logged_at */
	IX_BLOBS   /* index -> the sealed part (the replay: its SHA-256) */
};

struct ix_db {
	enum ix_kind ix_kind;
	const char *ix_label; /* for people */
	const char *ix_name;  /* the LMDB database */
	size_t ix_off;	      /* its handle in struct rete_store */
};

static const struct ix_db ix_dbs[] = {
    {IX_CASES, "the case index", "cases", offsetof(rete_store, st_cases)},
    {IX_MSGIDS, "the dedup index", "msgids", offsetof(rete_store, st_msgids)},
    {IX_DUE, "the due times", "due", offsetof(rete_store, st_due)},
    {IX_QUEUE, "the delivery queue", "queue", offsetof(rete_store, st_queue)},
    {IX_BLOBS, "the sealed parts", "blobs", offsetof(rete_store, st_blobs)},
};

static MDB_dbi ix_dbi(const rete_store *s, const struct ix_db *d)
{
	return *(const MDB_dbi *)(const void *)((const char *)s + d->ix_off);
}

/* ix_text copies up to n bytes of p as printable text (others as '?'). */
static const char *ix_text(const void *p, size_t n, char *buf, size_t len)
{
	const unsigned char *c = p;
	size_t i;
	for (i = 0; i < n && i + 1 < len; i++)
		buf[i] = (c[i] >= 0x20 && c[i] < 0x7f) ? (char)c[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* ix_split: a "name \0 BE64" key's name (into buf) and index. */
static bool ix_split(const MDB_val *k, char *buf, size_t len, uint64_t *index)
{
	const uint8_t *p = k->mv_data;
	if (k->mv_size < 9 || p[k->mv_size - 9] != 0)
		return false;
	ix_text(p, k->mv_size - 9, buf, len);
	*index = be64_get(p + k->mv_size - 8);
	return true;
}

/* ix_key names a row of d by its key. */
static const char *ix_key(const struct ix_db *d, const MDB_val *k, char *buf, size_t len)
{
	char name[300], tb[32];
	uint64_t index;
	const uint8_t *p = k->mv_data;
	size_t z;

	switch (d->ix_kind) {
	case IX_CASES:
	case IX_QUEUE:
		if (!ix_split(k, name, sizeof(name), &index))
			break;
		snprintf(buf, len, "%s '%s', entry %llu",
			 d->ix_kind == IX_CASES ? "case" : "recipient", name,
			 (unsigned long long)index);
		return buf;
	case IX_MSGIDS:
		for (z = 0; z < k->mv_size && p[z] != 0; z++)
			;
		if (z == k->mv_size)
			break;
		char id[300];
		snprintf(buf, len, "sender '%s', message id '%s'",
			 ix_text(p, z, name, sizeof(name)),
			 ix_text(p + z + 1, k->mv_size - z - 1, id, sizeof(id)));
		return buf;
	case IX_DUE:
		if (k->mv_size < 9)
			break;
		snprintf(buf, len, "referral '%s' due at %s",
			 ix_text(p + 8, k->mv_size - 8, name, sizeof(name)),
			 rete_time_format((int64_t)be64_get(p), tb));
		return buf;
	case IX_BLOBS:
		if (k->mv_size != 8)
			break;
		snprintf(buf, len, "entry %llu", (unsigned long long)be64_get(p));
		return buf;
	}
	snprintf(buf, len, "a malformed key of %zu bytes", k->mv_size);
	return buf;
}

/* ix_value says what a row of d holds (store: a sealed part, hashed). */
static const char *ix_value(const struct ix_db *d, const MDB_val *val, bool store, char *buf,
			    size_t len)
{
	const uint8_t *p = val->mv_data;
	char tb[32], hb[64];
	uint8_t h[RETE_MERKLE_HASH];

	switch (d->ix_kind) {
	case IX_MSGIDS:
		if (val->mv_size != 8 + RETE_HASH_LEN + 8)
			break;
		snprintf(buf, len, "entry %llu logged at %s with SHA-256 %s",
			 (unsigned long long)be64_get(p),
			 rete_time_format((int64_t)be64_get(p + 8 + RETE_HASH_LEN), tb),
			 b64(p + 8, hb));
		return buf;
	case IX_QUEUE:
		if (val->mv_size != 8)
			break;
		snprintf(buf, len, "logged at %s", rete_time_format((int64_t)be64_get(p), tb));
		return buf;
	case IX_BLOBS:
		if (store) {
			crypto_hash_sha256(h, p, val->mv_size);
			p = h;
		} else if (val->mv_size != RETE_HASH_LEN) {
			break;
		}
		snprintf(buf, len, "a sealed part with SHA-256 %s", b64(p, hb));
		return buf;
	default: /* cases, due: the key is all */
		if (val->mv_size == 0) {
			buf[0] = '\0';
			return buf;
		}
		snprintf(buf, len, "%zu bytes where none belong", val->mv_size);
		return buf;
	}
	snprintf(buf, len, "%zu malformed bytes", val->mv_size);
	return buf;
}

/* ix_entry_msg decodes the Message of entry index of the store (leniently:
 * the entries were verified strictly already); NULL when it cannot. */
static Rete__Message *ix_entry_msg(struct vctx *v, uint64_t index, int64_t *logged_at)
{
	Rete__LogEntry *le = NULL;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_buf raw = {0};

	if (index >= v->v_size || rete_store_entry(v->v_s, v->v_rt, index, &raw, NULL) != RETE_OK)
		return NULL;
	if ((le = rete__log_entry__unpack(NULL, raw.len, raw.data)) != NULL &&
	    (sm = rete__signed_message__unpack(NULL, le->signed_message.len,
					       le->signed_message.data)) != NULL)
		msg = rete__message__unpack(NULL, sm->message.len, sm->message.data);
	if (le != NULL && logged_at != NULL)
		*logged_at = le->logged_at;
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
	if (le != NULL)
		rete__log_entry__free_unpacked(le, NULL);
	rete_buf_free(&raw);
	return msg;
}

/* ix_broker_row: a queue row of the store the replay has not: right when it
 * is the broker's own entry (a Delivery or Notice) for that recipient,
 * logged then, not acked yet (its ack leaves no trace in the log). */
static bool ix_broker_row(struct vctx *v, const MDB_val *k, const MDB_val *val)
{
	char name[300];
	uint64_t index;
	int64_t at = 0;
	Rete__Message *msg;
	bool ok;

	if (!ix_split(k, name, sizeof(name), &index) || val->mv_size != 8 ||
	    (msg = ix_entry_msg(v, index, &at)) == NULL)
		return false;
	ok = (msg->body_case == RETE__MESSAGE__BODY_DELIVERY ||
	      msg->body_case == RETE__MESSAGE__BODY_NOTICE) &&
	     strcmp(S(msg->recipient), name) == 0 && (int64_t)be64_get(val->mv_data) == at &&
	     k->mv_size - 9 == strlen(name);
	rete__message__free_unpacked(msg, NULL);
	return ok;
}

/* ix_extra_why: what the log says instead of a row the store has. */
static void ix_extra_why(struct vctx *v, const struct ix_db *d, const MDB_val *k, char *buf,
			 size_t len)
{
	char name[300];
	uint64_t index;
	Rete__Message *msg;

	buf[0] = '\0';
	if (d->ix_kind == IX_CASES && ix_split(k, name, sizeof(name), &index)) {
		if ((msg = ix_entry_msg(v, index, NULL)) == NULL)
			snprintf(buf, len, " (the log has no entry %llu)",
				 (unsigned long long)index);
		else {
			snprintf(buf, len, " (entry %llu belongs to case '%s')",
				 (unsigned long long)index, S(msg->case_id));
			rete__message__free_unpacked(msg, NULL);
		}
	} else if (d->ix_kind == IX_QUEUE) {
		snprintf(buf, len,
			 " (the log records its delivery, refusal or expiry, or it is not a "
			 "message to that recipient)");
	} else if (d->ix_kind == IX_BLOBS) {
		snprintf(buf, len,
			 " (its message carries no sealed part, or it was delivered or expired "
			 "and its part deleted)");
	}
}

/* compare_index compares database d of the store (through st) with the
 * scratch store's (through rp), row by row. */
static void compare_index(struct vctx *v, MDB_txn *st, MDB_txn *rp, const struct ix_db *d)
{
	MDB_cursor *cs = NULL, *cr = NULL;
	MDB_val ks, vs, kr, vr;
	MDB_dbi ds = ix_dbi(v->v_s, d), dr = ix_dbi(v->v_scratch, d);
	char key[700], a[200], b[200], why[300];
	int rs, rr, rc;

	if ((rc = mdb_cursor_open(st, ds, &cs)) != 0 || (rc = mdb_cursor_open(rp, dr, &cr)) != 0) {
		fail(v, POS_NONE, RETE_ESTORE, false, 0, "verify: reading database '%s': %s",
		     d->ix_name, mdb_strerror(rc));
		goto out;
	}
	rs = mdb_cursor_get(cs, &ks, &vs, MDB_FIRST);
	rr = mdb_cursor_get(cr, &kr, &vr, MDB_FIRST);
	for (;;) {
		int c;
		if ((rs != 0 && rs != MDB_NOTFOUND) || (rr != 0 && rr != MDB_NOTFOUND)) {
			rc = rs != 0 && rs != MDB_NOTFOUND ? rs : rr;
			fail(v, POS_NONE,
			     rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ? RETE_ECORRUPT
									    : RETE_ESTORE,
			     false, 0, "verify: reading database '%s': %s", d->ix_name,
			     mdb_strerror(rc));
			break;
		}
		if (rs == MDB_NOTFOUND && rr == MDB_NOTFOUND)
			break;
		c = rs == MDB_NOTFOUND ? 1 : rr == MDB_NOTFOUND ? -1 : mdb_cmp(st, ds, &ks, &kr);
		if (c == 0) {
			bool same;
			if (d->ix_kind == IX_BLOBS) {
				uint8_t h[RETE_HASH_LEN];
				crypto_hash_sha256(h, vs.mv_data, vs.mv_size);
				same = vr.mv_size == RETE_HASH_LEN &&
				       memcmp(h, vr.mv_data, RETE_HASH_LEN) == 0;
			} else {
				same = vs.mv_size == vr.mv_size &&
				       memcmp(vs.mv_data, vr.mv_data, vs.mv_size) == 0;
			}
			if (!same) {
				fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
				     "%s (database '%s'): the row for %s holds %s; the log gives "
				     "%s",
				     d->ix_label, d->ix_name, ix_key(d, &ks, key, sizeof(key)),
				     ix_value(d, &vs, true, a, sizeof(a)),
				     ix_value(d, &vr, false, b, sizeof(b)));
				break;
			}
			v->v_rep->index_rows++;
			rs = mdb_cursor_get(cs, &ks, &vs, MDB_NEXT);
			rr = mdb_cursor_get(cr, &kr, &vr, MDB_NEXT);
		} else if (c < 0) {
			if (d->ix_kind == IX_QUEUE && ix_broker_row(v, &ks, &vs)) {
				v->v_rep->index_rows++;
				rs = mdb_cursor_get(cs, &ks, &vs, MDB_NEXT);
				continue;
			}
			ix_extra_why(v, d, &ks, why, sizeof(why));
			fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
			     "%s (database '%s') has a row for %s that the log does not give%s",
			     d->ix_label, d->ix_name, ix_key(d, &ks, key, sizeof(key)), why);
			break;
		} else if ((d->ix_kind == IX_QUEUE || d->ix_kind == IX_BLOBS) &&
			   v->v_opt->allow_unlogged_acks) {
			/* An entry the log shows undelivered, no longer queued (or
			 * its sealed part gone with its row): the broker never
			 * acks an agency's entry without logging a Delivery or a
			 * Notice in the same commit, but the store's API allows
			 * it (the benchmark fills its log so, and asks for this):
			 * counted, said, not a failure of the log. */
			if (d->ix_kind == IX_QUEUE)
				v->v_rep->unlogged_acks++;
			rr = mdb_cursor_get(cr, &kr, &vr, MDB_NEXT);
		} else if (d->ix_kind == IX_QUEUE) {
			/* Without a Delivery or Notice in the log, a missing row is
			 * a referral nobody will deliver nor expire: the sender
			 * would wait for good. */
			fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
			     "%s (database '%s'): the row for %s is missing, but the log shows "
			     "that entry undelivered (no Delivery or Notice entry for it): it "
			     "would never be delivered nor expire",
			     d->ix_label, d->ix_name, ix_key(d, &kr, key, sizeof(key)));
			break;
		} else {
			ix_value(d, &vr, false, b, sizeof(b));
			fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
			     "%s (database '%s'): the row for %s%s%s%s is missing; the log gives "
			     "it",
			     d->ix_label, d->ix_name, ix_key(d, &kr, key, sizeof(key)),
			     b[0] ? " (" : "", b, b[0] ? ")" : "");
			break;
		}
	}
out:
	if (cs != NULL)
		mdb_cursor_close(cs);
	if (cr != NULL)
		mdb_cursor_close(cr);
}

/* compare_indexes compares every derived database (ix_dbs) in turn; the
 * first difference is the failure. */
static void compare_indexes(struct vctx *v)
{
	MDB_txn *rp = NULL;
	rete_msg m = {{0}};
	rete_err e;

	if ((e = store_txn_read(v->v_scratch, &rp, &m)) != RETE_OK) {
		fail(v, POS_NONE, e, false, 0, "verify: reading the scratch store: %s", m.text);
		return;
	}
	for (size_t i = 0; i < sizeof(ix_dbs) / sizeof(ix_dbs[0]) && !failed(v); i++)
		compare_index(v, v->v_rt->rt_txn, rp, &ix_dbs[i]);
	store_txn_done(v->v_scratch, rp);
}

/* The scratch store's projections, read on a thread of their own while
 * this thread reads the store's (each store with its own transaction). */
struct scratch_read {
	rete_store *sr_s;
	struct projs sr_ps;
	rete_err sr_e;
	rete_msg sr_m;
};

static void *scratch_read_thread(void *arg)
{
	struct scratch_read *sr = arg;
	sr->sr_e = rete_store_referrals_iter(sr->sr_s, NULL, collect_proj, &sr->sr_ps, &sr->sr_m);
	return NULL;
}

/* projs_same reads the referral records of the store and of the scratch
 * store side by side in key order: true when both hold the same keys with
 * the same bytes (*n = how many), the usual case, which then needs neither
 * decoding nor re-encoding every projection of both (a third of the
 * replay's cost beside its appends). The scratch store's records are what
 * the store's encoder made of the replayed lifecycle: bytes equal to them
 * are what the full comparison would accept. Anything else (a difference,
 * a failed read) is left to that comparison, for its verdict and
 * sentence. */
static bool projs_same(struct vctx *v, uint64_t *n)
{
	MDB_txn *rp = NULL;
	MDB_cursor *cs = NULL, *cr = NULL;
	MDB_val ks, vs, kr, vr;
	rete_msg m = {{0}};
	bool same = false;
	int rs, rr;

	*n = 0;
	if (store_txn_read(v->v_scratch, &rp, &m) != RETE_OK)
		return false;
	if (mdb_cursor_open(v->v_rt->rt_txn, v->v_s->st_referrals, &cs) != 0 ||
	    mdb_cursor_open(rp, v->v_scratch->st_referrals, &cr) != 0)
		goto out;
	rs = mdb_cursor_get(cs, &ks, &vs, MDB_FIRST);
	rr = mdb_cursor_get(cr, &kr, &vr, MDB_FIRST);
	while (rs == 0 && rr == 0 && ks.mv_size == kr.mv_size && vs.mv_size == vr.mv_size &&
	       memcmp(ks.mv_data, kr.mv_data, ks.mv_size) == 0 &&
	       memcmp(vs.mv_data, vr.mv_data, vs.mv_size) == 0) {
		(*n)++;
		rs = mdb_cursor_get(cs, &ks, &vs, MDB_NEXT);
		rr = mdb_cursor_get(cr, &kr, &vr, MDB_NEXT);
	}
	same = rs == MDB_NOTFOUND && rr == MDB_NOTFOUND;
out:
	if (cs != NULL)
		mdb_cursor_close(cs);
	if (cr != NULL)
		mdb_cursor_close(cr);
	store_txn_done(v->v_scratch, rp);
	return same;
}

static void replay_finish(struct vctx *v, const uint8_t root[RETE_MERKLE_HASH])
{
	struct scratch_read sr;
	struct projs st = {0};
	uint8_t sroot[RETE_MERKLE_HASH];
	uint64_t ssize = 0, same = 0;
	pthread_t tid;
	bool thread;
	rete_msg m = {{0}};
	rete_err e;

	if ((e = rete_store_size(v->v_scratch, NULL, &ssize, &m)) != RETE_OK ||
	    (ssize > 0 && (e = rete_store_root(v->v_scratch, NULL, ssize, sroot, &m)) != RETE_OK)) {
		fail(v, POS_NONE, e, false, 0, "verify: reading the scratch store: %s", m.text);
		return;
	}
	if (ssize != v->v_size || (ssize > 0 && sodium_memcmp(sroot, root, RETE_MERKLE_HASH))) {
		fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
		     "the replayed log has %llu entries and another root than the log's %llu",
		     (unsigned long long)ssize, (unsigned long long)v->v_size);
		return;
	}
	if (projs_same(v, &same)) {
		v->v_rep->referrals += same;
		goto indexes;
	}
	memset(&sr, 0, sizeof(sr));
	sr.sr_s = v->v_scratch;
	thread = v->v_threads > 1 && pthread_create(&tid, NULL, scratch_read_thread, &sr) == 0;
	if (!thread)
		scratch_read_thread(&sr);
	e = rete_store_referrals_iter(v->v_s, v->v_rt, collect_proj, &st, &m);
	if (thread)
		pthread_join(tid, NULL);
	if (sr.sr_e != RETE_OK)
		fail(v, POS_NONE, sr.sr_e, false, 0, "verify: reading the referral projections: %s",
		     sr.sr_m.text);
	else if (e != RETE_OK)
		fail(v, POS_NONE, e, false, 0, "verify: reading the referral projections: %s",
		     m.text);
	else if (sr.sr_ps.ps_oom || st.ps_oom)
		fail(v, POS_NONE, RETE_ENOMEM, false, 0, "verify: out of memory");
	else
		compare_projs(v, &st, &sr.sr_ps);
	projs_free(&sr.sr_ps);
	projs_free(&st);
indexes:
	if (!failed(v))
		compare_indexes(v);
	if (!failed(v))
		v->v_rep->replayed = true;
}

/* ---- the driver ------------------------------------------------------------------- */

unsigned rete_verify_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1u : (n > (long)MAX_THREADS ? MAX_THREADS : (unsigned)n);
}

/* find_origin: the option, else the first checkpoint's, else the earlier
 * checkpoint's, else the first entry's. */
static void find_origin(struct vctx *v)
{
	rete_checkpoint cp;
	rete_buf raw = {0};

	if (v->v_opt->origin != NULL && *v->v_opt->origin != '\0') {
		snprintf(v->v_origin, sizeof(v->v_origin), "%s", v->v_opt->origin);
		return;
	}
	if (v->v_nck > 0 && rete_checkpoint_parse(v->v_ck[0].ck_note, strlen(v->v_ck[0].ck_note),
						  &cp, NULL) == RETE_OK) {
		snprintf(v->v_origin, sizeof(v->v_origin), "%s", cp.origin);
		return;
	}
	if (v->v_opt->since_note != NULL &&
	    rete_checkpoint_parse(v->v_opt->since_note, v->v_opt->since_len, &cp, NULL) ==
		RETE_OK) {
		snprintf(v->v_origin, sizeof(v->v_origin), "%s", cp.origin);
		return;
	}
	if (v->v_size > 0 && rete_store_entry(v->v_s, v->v_rt, 0, &raw, NULL) == RETE_OK) {
		Rete__Message *msg = NULL;
		Rete__LogEntry *le = rete__log_entry__unpack(NULL, raw.len, raw.data);
		if (le != NULL &&
		    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &msg,
				       NULL) == RETE_OK &&
		    msg->origin != NULL)
			snprintf(v->v_origin, sizeof(v->v_origin), "%s", msg->origin);
		if (msg != NULL)
			rete__message__free_unpacked(msg, NULL);
		if (le != NULL)
			rete__log_entry__free_unpacked(le, NULL);
		rete_buf_free(&raw);
	}
}

/* ---- the pipeline ------------------------------------------------------------------ */

/* A grain: items [g_b, g_e) of phase A of chunk g_c, or of phase C
 * (g_c NULL; g_items the chunk's items). */
struct grain {
	struct chunk *g_c;
	struct item *g_items;
	size_t g_b, g_e;
	const struct vdir *g_dir; /* phase A: the Directory to guess keys with */
};

/* grain_cut makes g the next GRAIN items (or fewer, at the end) of
 * items[*next..n), owned by chunk c (NULL: phase C's), and counts it busy. */
static void grain_cut(struct grain *g, struct chunk *c, struct item *items, size_t *next, size_t n,
		      unsigned *busy)
{
	g->g_c = c;
	g->g_items = items;
	g->g_b = *next;
	g->g_e = g->g_b + GRAIN < n ? g->g_b + GRAIN : n;
	*next = g->g_e;
	(*busy)++;
}

/* take_grain hands out the next grain (under v_mu): phase C first (this
 * thread waits for it), then phase A of the oldest chunk that has some. */
static bool take_grain(struct vctx *v, struct grain *g)
{
	struct chunk *best = NULL;

	g->g_dir = v->v_dir_pub;
	if (v->v_c_next < v->v_c_n) {
		grain_cut(g, NULL, v->v_c_items, &v->v_c_next, v->v_c_n, &v->v_c_busy);
		return true;
	}
	for (unsigned b = 0; b < NBUF; b++) {
		struct chunk *c = &v->v_ch[b];
		if (c->c_items != NULL && c->c_next < c->c_n &&
		    (best == NULL || c->c_seq < best->c_seq))
			best = c;
	}
	if (best == NULL)
		return false;
	grain_cut(g, best, best->c_items, &best->c_next, best->c_n, &best->c_busy);
	return true;
}

/* run_grain does a grain's work (v_mu not held). Phase A first clears what
 * the buffer's previous chunk left in the item and takes the bytes read. */
static void run_grain(struct vctx *v, const struct grain *g)
{
	rete_arena *arena = NULL;

	if (g->g_c != NULL) {
		for (size_t i = g->g_b; i < g->g_e; i++)
			item_clear(&g->g_items[i]);
		arena = &g->g_c->c_arena[g->g_b / GRAIN];
		rete_arena_reset(arena);
	}
	for (size_t i = g->g_b; i < g->g_e; i++) {
		struct item *it = &g->g_items[i];
		if (g->g_c == NULL) {
			phase_verify(v, it);
			continue;
		}
		it->it_index = g->g_c->c_from + i;
		it->it_raw = g->g_c->c_raw[i];
		it->it_raw_own = v->v_raw_own;
		memset(&g->g_c->c_raw[i], 0, sizeof(g->g_c->c_raw[i]));
		phase_decode(v, g->g_dir, it, arena);
	}
}

/* end_grain records a grain as finished (under v_mu). */
static void end_grain(struct vctx *v, const struct grain *g)
{
	if (g->g_c == NULL) {
		v->v_c_busy--;
	} else {
		g->g_c->c_done[g->g_b / GRAIN] = true;
		g->g_c->c_busy--;
	}
	pthread_cond_broadcast(&v->v_cv_main);
}

/* run_grains runs grains on this thread until done(v, arg) holds, and
 * waits on cv when there is none to run. done is evaluated under v_mu. */
static void run_grains(struct vctx *v, pthread_cond_t *cv,
		       bool (*done)(struct vctx *, const void *), const void *arg)
{
	struct grain g;

	pthread_mutex_lock(&v->v_mu);
	while (!done(v, arg)) {
		if (take_grain(v, &g)) {
			pthread_mutex_unlock(&v->v_mu);
			run_grain(v, &g);
			pthread_mutex_lock(&v->v_mu);
			end_grain(v, &g);
		} else {
			pthread_cond_wait(cv, &v->v_mu);
		}
	}
	pthread_mutex_unlock(&v->v_mu);
}

/* help_until: the main thread's run_grains, woken when a grain or a
 * replay finished. */
static void help_until(struct vctx *v, bool (*done)(struct vctx *, const void *), const void *arg)
{
	run_grains(v, &v->v_cv_main, done, arg);
}

static bool pool_stopping(struct vctx *v, const void *arg)
{
	(void)arg;
	return v->v_stop;
}

/* pool_thread: a pool thread's run_grains, woken when there are grains to
 * take or the pool must stop. */
static void *pool_thread(void *arg)
{
	struct vctx *v = arg;

	run_grains(v, &v->v_cv_work, pool_stopping, NULL);
	return NULL;
}

static void *replay_thread(void *arg)
{
	struct vctx *v = arg;

	pthread_mutex_lock(&v->v_mu);
	for (;;) {
		struct chunk *c;
		if (v->v_rpq_n == 0) {
			if (v->v_rp_stop)
				break;
			pthread_cond_wait(&v->v_cv_rp, &v->v_mu);
			continue;
		}
		c = v->v_rpq[v->v_rpq_head];
		pthread_mutex_unlock(&v->v_mu);
		/* after an I/O failure in an earlier chunk, replaying this one
		 * can find nothing that would be reported */
		if (!failed_io_before(v, POS_ENTRY(c->c_from)))
			replay_items(v, c->c_items, c->c_ok);
		pthread_mutex_lock(&v->v_mu);
		v->v_rpq_head = (v->v_rpq_head + 1) % NBUF;
		v->v_rpq_n--;
		c->c_replaying = false;
		pthread_cond_broadcast(&v->v_cv_main);
	}
	pthread_mutex_unlock(&v->v_mu);
	return NULL;
}

/* pipe_start starts the pool (v_threads - 1 threads beside this one) and,
 * with a scratch store, the replay thread. A thread that cannot be
 * created leaves its work to this one. */
static void pipe_start(struct vctx *v)
{
	v->v_stop = false;
	v->v_rp_stop = false;
	v->v_nworkers = 0;
	for (unsigned t = 1; t < v->v_threads; t++)
		if (pthread_create(&v->v_tid[v->v_nworkers], NULL, pool_thread, v) == 0)
			v->v_nworkers++;
	v->v_rp_thread = v->v_scratch != NULL && v->v_threads > 1 &&
			 pthread_create(&v->v_rp_tid, NULL, replay_thread, v) == 0;
}

static bool pipe_idle(struct vctx *v, const void *arg)
{
	(void)arg;
	for (unsigned b = 0; b < NBUF; b++)
		if (v->v_ch[b].c_busy > 0)
			return false;
	return v->v_rpq_n == 0;
}

/* pipe_stop drops the phase A work not handed out yet (the chunks after a
 * failure), waits for the grains running and the replays queued, and
 * stops the threads. */
static void pipe_stop(struct vctx *v)
{
	pthread_mutex_lock(&v->v_mu);
	for (unsigned b = 0; b < NBUF; b++)
		v->v_ch[b].c_next = v->v_ch[b].c_n;
	pthread_mutex_unlock(&v->v_mu);
	help_until(v, pipe_idle, NULL);
	pthread_mutex_lock(&v->v_mu);
	v->v_stop = true;
	v->v_rp_stop = true;
	pthread_cond_broadcast(&v->v_cv_work);
	pthread_cond_broadcast(&v->v_cv_rp);
	pthread_mutex_unlock(&v->v_mu);
	for (unsigned t = 0; t < v->v_nworkers; t++)
		pthread_join(v->v_tid[t], NULL);
	v->v_nworkers = 0;
	if (v->v_rp_thread)
		pthread_join(v->v_rp_tid, NULL);
	v->v_rp_thread = false;
}

static bool chunk_free(struct vctx *v, const void *arg)
{
	const struct chunk *c = arg;
	(void)v;
	return c->c_busy == 0 && !c->c_replaying;
}

struct grain_wait {
	const struct chunk *gw_c;
	size_t gw_g;
};

static bool grain_done(struct vctx *v, const void *arg)
{
	const struct grain_wait *w = arg;
	(void)v;
	return w->gw_c->c_done[w->gw_g];
}

static bool phase_c_done(struct vctx *v, const void *arg)
{
	(void)arg;
	return v->v_c_next >= v->v_c_n && v->v_c_busy == 0;
}

/* fill_fn reads entries [from, from + n) into raw[0..n) (each empty):
 * returns how many it read; when fewer than n, it recorded why. */
typedef size_t (*fill_fn)(struct vctx *v, void *ctx, uint64_t from, rete_buf *raw, size_t n);

/* chunk_start reads the next chunk, entries [from, from + n), into a free
 * buffer and hands its phase A to the pool. NULL when no entry could be
 * read; *got = the entries read. */
static struct chunk *chunk_start(struct vctx *v, uint64_t from, size_t n, fill_fn fill, void *ctx,
				 size_t *got)
{
	struct chunk *c = &v->v_ch[v->v_seq % NBUF];

	help_until(v, chunk_free, c);
	/* raw bytes the chunk before left unused (it stopped early) */
	for (size_t i = 0; i < CHUNK; i++)
		if (c->c_raw[i].data != NULL) {
			if (v->v_raw_own)
				rete_buf_free(&c->c_raw[i]);
			memset(&c->c_raw[i], 0, sizeof(c->c_raw[i]));
		}
	*got = fill(v, ctx, from, c->c_raw, n);
	if (*got == 0)
		return NULL;
	pthread_mutex_lock(&v->v_mu);
	c->c_seq = v->v_seq++;
	c->c_from = from;
	c->c_n = *got;
	c->c_ok = 0;
	c->c_busy = 0;
	memset(c->c_done, 0, sizeof(c->c_done));
	c->c_next = 0; /* hands the chunk over */
	pthread_cond_broadcast(&v->v_cv_work);
	pthread_mutex_unlock(&v->v_mu);
	return c;
}

/* replay_queue hands items[0..c_ok) of c to the replay thread (replays
 * them here when there is none). */
static void replay_queue(struct vctx *v, struct chunk *c)
{
	if (!v->v_rp_thread) {
		if (!failed_io_before(v, POS_ENTRY(c->c_from)))
			replay_items(v, c->c_items, c->c_ok);
		return;
	}
	pthread_mutex_lock(&v->v_mu);
	c->c_replaying = true;
	v->v_rpq[(v->v_rpq_head + v->v_rpq_n) % NBUF] = c;
	v->v_rpq_n++;
	pthread_cond_signal(&v->v_cv_rp);
	pthread_mutex_unlock(&v->v_mu);
}

/* check_chunk runs phase B on chunk c as phase A finishes its grains, then
 * phase C, then queues its replay when there is a scratch store. */
static void check_chunk(struct vctx *v, struct chunk *c)
{
	struct item *items = c->c_items;
	size_t n = c->c_n, stop = n, ok, again = 0;

	for (size_t g = 0; g * GRAIN < n && stop == n; g++) {
		struct grain_wait w = {c, g};
		size_t end = (g + 1) * GRAIN < n ? (g + 1) * GRAIN : n;
		help_until(v, grain_done, &w);
		for (size_t i = g * GRAIN; i < end; i++) {
			int r = check_entry(v, &items[i]);
			if (r != CHECK_OK) {
				stop = r == CHECK_BAD ? i : i + 1;
				break;
			}
		}
	}
	if (stop < n) { /* the rest of the chunk needs no phase A */
		pthread_mutex_lock(&v->v_mu);
		c->c_next = c->c_n;
		pthread_mutex_unlock(&v->v_mu);
	}
	/* on the pool only when some guess of phase A was wrong */
	for (size_t i = 0; i < stop; i++)
		again += items[i].it_key != NULL && !spec_holds(&items[i]);
	if (again > 0) {
		pthread_mutex_lock(&v->v_mu);
		v->v_c_items = items;
		v->v_c_n = stop;
		v->v_c_next = 0;
		v->v_c_busy = 0;
		pthread_cond_broadcast(&v->v_cv_work);
		pthread_mutex_unlock(&v->v_mu);
		help_until(v, phase_c_done, NULL);
		pthread_mutex_lock(&v->v_mu);
		v->v_c_items = NULL;
		v->v_c_n = v->v_c_next = 0;
		pthread_mutex_unlock(&v->v_mu);
	} else {
		for (size_t i = 0; i < stop; i++)
			phase_verify(v, &items[i]);
	}
	ok = stop;
	for (size_t i = 0; i < stop; i++) {
		const struct item *it = &items[i];
		const Rete__Message *msg = it->it_msg;
		if (!it->it_bad_sig)
			continue;
		if (it->it_dir == NULL)
			fail(v, POS_ENTRY(it->it_index), RETE_EBADSIG, true, it->it_index,
			     "entry %llu: the signature on %s %s of %s does not verify with the "
			     "broker key given (a %s is signed by the broker)",
			     (unsigned long long)it->it_index, rete_message_kind(msg), S(msg->id),
			     S(msg->sender), rete_message_kind(msg));
		else
			fail(v, POS_ENTRY(it->it_index), RETE_EBADSIG, true, it->it_index,
			     "entry %llu: signature of %s does not verify with the key of the "
			     "directory in force (entry %llu)",
			     (unsigned long long)it->it_index, S(msg->sender),
			     (unsigned long long)it->it_dir->vd_index);
		ok = i;
		break;
	}
	c->c_ok = ok;
	if (v->v_scratch != NULL && ok > 0)
		replay_queue(v, c);
}

/* pipe_check checks entries [from, from + n), read by fill, chunk by
 * chunk; it returns once they are checked and replayed, or a failure
 * stopped the check (the chunks after it are dropped). */
static void pipe_check(struct vctx *v, uint64_t from, uint64_t n, fill_fn fill, void *ctx)
{
	uint64_t at = from, end = from + n;
	struct chunk *cur = NULL;
	size_t got;
	bool more = at < end;
	/* a store is read ahead only through a transaction of its own: a read
	 * that fails with MDB_CORRUPTED or MDB_PAGE_NOTFOUND spoils the
	 * transaction for every later read, and phase B of the chunk before
	 * (an earlier position) must still read through a sound one */
	bool ahead = v->v_s == NULL || v->v_ra.rt_txn != NULL;

	pipe_start(v);
	if (more) {
		size_t k = end - at < CHUNK ? (size_t)(end - at) : CHUNK;
		cur = chunk_start(v, at, k, fill, ctx, &got);
		more = got == k;
		at += got;
	}
	while (cur != NULL) {
		uint64_t a = cur->c_from, b = a + cur->c_n;
		struct chunk *next = NULL;
		/* the next chunk is read, and its phase A started, before this
		 * one is checked: the pool works on it meanwhile */
		if (ahead && more && at < end && !failed_before(v, POS_ENTRY(b))) {
			size_t k = end - at < CHUNK ? (size_t)(end - at) : CHUNK;
			next = chunk_start(v, at, k, fill, ctx, &got);
			more = got == k;
			at += got;
		}
		check_chunk(v, cur);
		if (v->v_opt->progress != NULL)
			v->v_opt->progress(v->v_opt->progress_ctx,
					   failed_before(v, POS_ENTRY(b)) ? a : b, v->v_size);
		if (failed_before(v, POS_ENTRY(b)))
			break;
		if (!ahead && more && at < end) { /* the order before the pipeline */
			size_t k = end - at < CHUNK ? (size_t)(end - at) : CHUNK;
			next = chunk_start(v, at, k, fill, ctx, &got);
			more = got == k;
			at += got;
		}
		cur = next;
	}
	pipe_stop(v);
}

/* entry_ref points *out at the LogEntry bytes of entry index in the map
 * (no copy: they stay valid while rt, and v_rt's read lock on the map,
 * last, which is to the end of the run); the errors and sentences of
 * rete_store_entry. */
static rete_err entry_ref(struct vctx *v, rete_store_rtxn *rt, uint64_t index, rete_buf *out,
			  rete_msg *m)
{
	uint8_t key[8];
	MDB_val k = {sizeof(key), key}, val;
	char what[96];
	int rc;

	be64_put(key, index);
	/* through a cursor (entries are read in key order: see node_read),
	 * always on the same transaction within a run */
	if (v->v_ecur == NULL && mdb_cursor_open(rt->rt_txn, v->v_s->st_entries, &v->v_ecur) != 0)
		v->v_ecur = NULL;
	if (v->v_ecur != NULL && mdb_cursor_txn(v->v_ecur) == rt->rt_txn)
		rc = mdb_cursor_get(v->v_ecur, &k, &val, MDB_SET_KEY);
	else
		rc = mdb_get(rt->rt_txn, v->v_s->st_entries, &k, &val);
	if (rc == 0) {
		out->data = val.mv_data;
		out->len = val.mv_size;
		return RETE_OK;
	}
	snprintf(what, sizeof(what), "store: log entry %llu", (unsigned long long)index);
	if (rc == MDB_NOTFOUND)
		return rete_msg_set(m, RETE_ENOENT, "%s: not found", what);
	return store_lmdb_err(m, rc, what);
}

/* fill_store is the fill_fn of rete_verify_log: entries from the store,
 * through the read-ahead's transaction when there is one. */
static size_t fill_store(struct vctx *v, void *ctx, uint64_t from, rete_buf *raw, size_t n)
{
	rete_store_rtxn *rt = v->v_ra.rt_txn != NULL ? &v->v_ra : v->v_rt;
	rete_msg m = {{0}};
	rete_err e;

	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		e = entry_ref(v, rt, from + i, &raw[i], &m);
		if (e != RETE_OK) {
			fail(v, POS_ENTRY(from + i), e == RETE_ENOENT ? RETE_ECORRUPT : e, true,
			     from + i, "entry %llu: %s", (unsigned long long)(from + i), m.text);
			return i;
		}
	}
	return n;
}

/* The entries a session is fed: entries[i] is entry from + i. */
struct fed {
	const rete_buf *fd_entries;
	uint64_t fd_from;
};

/* fill_fed is the fill_fn of rete_verify_session_feed: copies of the
 * caller's entries. */
static size_t fill_fed(struct vctx *v, void *ctx, uint64_t from, rete_buf *raw, size_t n)
{
	const struct fed *fd = ctx;

	for (size_t i = 0; i < n; i++) {
		const rete_buf *b = &fd->fd_entries[from - fd->fd_from + i];
		if ((raw[i].data = malloc(b->len + 1)) == NULL) {
			fail(v, POS_ENTRY(from + i), RETE_ENOMEM, true, from + i,
			     "verify: out of memory");
			return i;
		}
		if (b->len > 0)
			memcpy(raw[i].data, b->data, b->len);
		raw[i].len = b->len;
	}
	return n;
}

/* chunks_alloc gives the context its chunk buffers. */
static rete_err chunks_alloc(struct vctx *v, rete_msg *m)
{
	for (unsigned b = 0; b < NBUF; b++) {
		struct chunk *c = &v->v_ch[b];
		if ((c->c_items = calloc(CHUNK, sizeof(*c->c_items))) == NULL ||
		    (c->c_raw = calloc(CHUNK, sizeof(*c->c_raw))) == NULL ||
		    (c->c_arena = calloc(NGRAIN, sizeof(*c->c_arena))) == NULL)
			return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	}
	return RETE_OK;
}

static void chunks_free(struct vctx *v)
{
	for (unsigned b = 0; b < NBUF; b++) {
		struct chunk *c = &v->v_ch[b];
		if (c->c_items != NULL)
			for (size_t i = 0; i < CHUNK; i++)
				item_clear(&c->c_items[i]);
		if (c->c_raw != NULL && v->v_raw_own)
			for (size_t i = 0; i < CHUNK; i++)
				rete_buf_free(&c->c_raw[i]);
		if (c->c_arena != NULL)
			for (size_t g = 0; g < NGRAIN; g++)
				rete_arena_free(&c->c_arena[g]);
		free(c->c_items);
		free(c->c_raw);
		free(c->c_arena);
		memset(c, 0, sizeof(*c));
	}
}

/* pipe_init and pipe_destroy: the pipeline's lock and conditions. */
static void pipe_init(struct vctx *v)
{
	pthread_mutex_init(&v->v_mu, NULL);
	pthread_cond_init(&v->v_cv_work, NULL);
	pthread_cond_init(&v->v_cv_main, NULL);
	pthread_cond_init(&v->v_cv_rp, NULL);
}

static void pipe_destroy(struct vctx *v)
{
	pthread_cond_destroy(&v->v_cv_rp);
	pthread_cond_destroy(&v->v_cv_main);
	pthread_cond_destroy(&v->v_cv_work);
	pthread_mutex_destroy(&v->v_mu);
}

/* ra_end ends the read-ahead's transaction (before v_rt's, whose read
 * lock on the store covers it). */
static void ra_end(struct vctx *v)
{
	if (v->v_ra.rt_txn != NULL)
		mdb_txn_abort(v->v_ra.rt_txn);
	v->v_ra.rt_txn = NULL;
}

/* read_begin begins v_rt and, beside it, the read-ahead's transaction on
 * the same snapshot (the store is opened with MDB_NOTLS: a thread may hold
 * several read transactions). A commit between the two begins gives
 * another snapshot (another commit sequence): both are begun again, a few
 * times; failing that, or when LMDB refuses a second reader, there is no
 * read-ahead (chunks are then read through v_rt, each once the one before
 * is checked). The second transaction is begun directly on the
 * environment: v_rt holds the store's read lock until after it ends. Without a read-ahead, a read
 * that spoils v_rt still makes the checks of the earlier entries of its chunk fail as I/O errors
 * (as before the pipeline): an ERROR verdict, never a wrong FAILS or HOLDS. */
static rete_err read_begin(struct vctx *v, rete_msg *m)
{
	rete_err e;

	for (int tries = 0;; tries++) {
		if ((e = rete_store_read_begin(v->v_s, &v->v_rt, m)) != RETE_OK)
			return e;
		v->v_ra.rt_store = v->v_s;
		if (mdb_txn_begin(v->v_s->st_env, NULL, MDB_RDONLY, &v->v_ra.rt_txn) != 0) {
			v->v_ra.rt_txn = NULL;
			return RETE_OK;
		}
		/* The ids are those the two readers picked, not always those of
		 * the snapshots they copied (see st_seen in store_impl.h): the
		 * commit sequence, read from the snapshots themselves, decides. */
		uint64_t seq_rt = 0, seq_ra = 0;
		if (mdb_txn_id(v->v_ra.rt_txn) == mdb_txn_id(v->v_rt->rt_txn) &&
		    store_seq(v->v_s, v->v_rt->rt_txn, &seq_rt, NULL) == RETE_OK &&
		    store_seq(v->v_s, v->v_ra.rt_txn, &seq_ra, NULL) == RETE_OK && seq_rt == seq_ra)
			return RETE_OK;
		ra_end(v);
		if (tries >= 15)
			return RETE_OK;
		rete_store_read_end(&v->v_rt);
	}
}

static rete_err v_init(struct vctx *v, rete_msg *m)
{
	const rete_verify_options *opt = v->v_opt;
	rete_msg mm = {{0}};
	rete_err e;

	v->v_threads = opt->threads == 0 ? rete_verify_cores() : opt->threads;
	if (v->v_threads > MAX_THREADS)
		v->v_threads = MAX_THREADS;
	if ((e = read_begin(v, m)) != RETE_OK)
		return e;
	if ((e = rete_store_size(v->v_s, v->v_rt, &v->v_size, m)) != RETE_OK)
		return e;
	v->v_rep->size = v->v_size;
	if ((e = rete_store_checkpoints_iter(v->v_s, v->v_rt, 0, collect_ckpt, v, m)) != RETE_OK)
		return e;
	if (v->v_ck_oom)
		return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory for the checkpoints");
	find_origin(v);
	snprintf(v->v_rep->origin, sizeof(v->v_rep->origin), "%s", v->v_origin);
	if (v->v_nck > 0 && v->v_ck[v->v_nck - 1].ck_size > v->v_size)
		fail(v, 0, RETE_ECORRUPT, false, 0,
		     "the store holds a checkpoint of size %llu but only %llu entries",
		     (unsigned long long)v->v_ck[v->v_nck - 1].ck_size,
		     (unsigned long long)v->v_size);
	if (v->v_nck > 0 && v->v_origin[0] == '\0')
		fail(v, 0, RETE_EINVAL, false, 0,
		     "no origin given and the first checkpoint does not parse; give the log's "
		     "origin (the broker's key name)");
	if (opt->since_note != NULL) {
		e = rete_checkpoint_verify(opt->since_note, opt->since_len, v->v_origin,
					   &opt->broker_key, &v->v_since, &mm);
		if (e == RETE_OK)
			e = watch_set(v, opt->since_note, opt->since_len, &mm);
		if (e != RETE_OK)
			fail(v, 0, e == RETE_ENOMEM ? e : RETE_EBADSIG, false, 0,
			     "the checkpoint given to compare with: %s", mm.text);
		else if (v->v_since.size > v->v_size &&
			 !(v->v_nck > 0 && later_epoch(v, v->v_ck[v->v_nck - 1].ck_note)))
			fail(v, 0, RETE_EPROOF, false, 0,
			     "the log holds %llu entries but the checkpoint given, signed by the "
			     "broker, has size %llu: the log was truncated or an older backup "
			     "was put back",
			     (unsigned long long)v->v_size, (unsigned long long)v->v_since.size);
		else
			v->v_have_since = true;
	}
	if ((e = chunks_alloc(v, m)) != RETE_OK)
		return e;
	if (opt->replay && !failed(v) && (e = scratch_open(v, m)) != RETE_OK)
		return e;
	return RETE_OK;
}

/* since_short: the checkpoint given is larger than the whole log, and no
 * restore after it was met (the log's latest checkpoint is of a later
 * epoch, so one was looked for): truncated, or an older copy put back. */
static void since_short(struct vctx *v, uint64_t size)
{
	fail(v, POS_NONE, RETE_EPROOF, false, 0,
	     "the log holds %llu entries but the checkpoint given, signed by the broker, has "
	     "size %llu, and no epoch entry of the log declares a restore after it: the log was "
	     "truncated or an older copy was put back",
	     (unsigned long long)size, (unsigned long long)v->v_since.size);
}

/* final_checks: the stored root at the full size, and the consistency of
 * the log with the checkpoint given. */
static void final_checks(struct vctx *v, const uint8_t root[RETE_MERKLE_HASH])
{
	uint8_t sroot[RETE_MERKLE_HASH];
	rete_msg m = {{0}};
	rete_err e;

	if (v->v_size > 0) {
		e = rete_store_root(v->v_s, v->v_rt, v->v_size, sroot, &m);
		if (e == RETE_ESTORE || e == RETE_ENOMEM) {
			fail(v, POS_NONE, e, false, 0, "%s", m.text);
			return;
		}
		if (e != RETE_OK || sodium_memcmp(sroot, root, RETE_MERKLE_HASH) != 0) {
			fail(v, POS_NONE, RETE_ECORRUPT, false, 0,
			     "the root of the stored tree at size %llu differs from the root "
			     "recomputed from the entries",
			     (unsigned long long)v->v_size);
			return;
		}
	}
	if (v->v_have_since && v->v_since.size > v->v_size) {
		since_short(v, v->v_size);
		return;
	}
	if (v->v_have_since && v->v_since.size > 0) {
		e = consistency(v, v->v_since.size, v->v_since.root, v->v_size, root, &m);
		if (io_error(e))
			fail(v, POS_NONE, e, false, 0, "%s", m.text);
		else if (e != RETE_OK)
			fail(v, POS_NONE, RETE_EPROOF, false, 0,
			     "the log of size %llu is not consistent with the checkpoint given "
			     "(size %llu): %s",
			     (unsigned long long)v->v_size, (unsigned long long)v->v_since.size,
			     m.text);
	}
}

/* v_free releases what a context holds (not the context itself). */
static void v_free(struct vctx *v)
{
	chunks_free(v);
	scratch_close(v);
	cursors_close(v);
	ra_end(v);
	rete_store_read_end(&v->v_rt);
	dirs_free(v);
	ks_free(v);
	pend_free(v);
	for (size_t i = 0; i < v->v_nck; i++)
		free(v->v_ck[i].ck_note);
	free(v->v_ck);
	v->v_ck = NULL;
	v->v_nck = 0;
	pthread_mutex_destroy(&v->v_lock);
	pipe_destroy(v);
}

/* counts_before sets the counts of rep (checkpoints, latest_*,
 * directories) to what lies before the failure at position p: phase B runs
 * ahead of phase C and of the replay (by up to NBUF - 1 chunks), so it may
 * have passed checkpoints and installed Directories after the failure, as
 * many as timing allowed. start: the first entry checked (a session's
 * resumed Directory is not counted). */
static void counts_before(const struct vctx *v, uint64_t p, uint64_t start, rete_verify_report *rep)
{
	const struct ckpt *last = NULL;
	rete_checkpoint cp;

	rep->checkpoints = 0;
	for (size_t i = 0; i < v->v_nck; i++)
		if (v->v_ck[i].ck_passed && POS_SIZE(v->v_ck[i].ck_size) < p) {
			rep->checkpoints++;
			last = &v->v_ck[i];
		}
	rep->has_checkpoint = false;
	rep->latest_size = 0;
	memset(rep->latest_root, 0, sizeof(rep->latest_root));
	/* its note passed every check: it parses */
	if (last != NULL &&
	    rete_checkpoint_parse(last->ck_note, strlen(last->ck_note), &cp, NULL) == RETE_OK) {
		rep->has_checkpoint = true;
		rep->latest_size = last->ck_size;
		memcpy(rep->latest_root, cp.root, RETE_MERKLE_HASH);
	}
	rep->directories = 0;
	for (const struct vdir *vd = v->v_dirs; vd != NULL; vd = vd->vd_next)
		if (vd->vd_index >= start && POS_ENTRY(vd->vd_index) < p)
			rep->directories++;
}

/* entries_before: how many entries precede the failure at position p. */
static uint64_t entries_before(uint64_t p)
{
	return p == 0 ? 0 : (p % 2 == 0 ? p / 2 - 1 : p / 2);
}

rete_err rete_verify_log(rete_store *s, const rete_verify_options *opt, rete_verify_report *rep,
			 rete_msg *m)
{
	struct vctx v;
	uint8_t root[RETE_MERKLE_HASH];
	rete_err e;

	if (rep == NULL)
		return rete_msg_set(m, RETE_EINVAL, "verify: no report given");
	memset(rep, 0, sizeof(*rep));
	rep->verdict = RETE_VERIFY_ERROR;
	if (s == NULL || opt == NULL)
		return rete_msg_set(m, RETE_EINVAL, "verify: no store or no options given");
	if ((e = rete_crypto_init(m)) != RETE_OK)
		return e;
	memset(&v, 0, sizeof(v));
	v.v_s = s;
	v.v_proof = store_proof;
	v.v_proof_ctx = &v;
	v.v_opt = opt;
	v.v_rep = rep;
	v.v_fail_pos = POS_NONE;
	pthread_mutex_init(&v.v_lock, NULL);
	pipe_init(&v);
	rete_merkle_frontier_init(&v.v_fr);

	e = v_init(&v, m);
	if (e == RETE_OK && !failed(&v))
		reach_size(&v, 0);
	if (e == RETE_OK && !failed(&v) && v.v_size > 0)
		pipe_check(&v, 0, v.v_size, fill_store, NULL);
	if (e == RETE_OK && !failed(&v)) {
		rete_merkle_frontier_root(&v.v_fr, root);
		memcpy(rep->root, root, RETE_MERKLE_HASH);
		final_checks(&v, root);
		if (!failed(&v) && v.v_scratch != NULL)
			replay_finish(&v, root);
	}

	if (e == RETE_OK && failed(&v)) {
		uint64_t p = v.v_fail_pos;
		e = v.v_fail_err;
		rete_msg_set(m, e, "%s", v.v_fail_text);
		snprintf(rep->reason, sizeof(rep->reason), "%s", v.v_fail_text);
		rep->verdict = io_error(e) ? RETE_VERIFY_ERROR : RETE_VERIFY_FAILS;
		rep->has_bad_entry = v.v_fail_entry;
		rep->bad_index = v.v_fail_index;
		rep->entries = entries_before(p);
		if (rep->entries > v.v_size)
			rep->entries = v.v_size;
		counts_before(&v, p, 0, rep);
	} else if (e == RETE_OK) {
		rep->verdict = RETE_VERIFY_HOLDS;
		rep->entries = v.v_size;
	} else {
		snprintf(rep->reason, sizeof(rep->reason), "%s", m != NULL ? m->text : "");
	}

	v_free(&v);
	return e;
}

/* ---- sessions: entries fed by the caller ------------------------------------ */

struct rete_verify_session {
	struct vctx vs_v;
	rete_verify_options vs_opt; /* a copy: the context points to it */
	rete_verify_report vs_rep;
	uint64_t vs_start; /* the size resumed from */
	bool vs_have_target;
	rete_checkpoint vs_target;
	bool vs_holds;		       /* finished, and everything held */
	rete_verify_key_seen *vs_keys; /* rete_verify_session_state's copy of v_ks */
};

/* session_err returns the recorded failure (code and sentence). */
static rete_err session_err(struct vctx *v, rete_msg *m)
{
	rete_err e;
	pthread_mutex_lock(&v->v_lock);
	e = v->v_fail_err;
	rete_msg_set(m, e, "%s", v->v_fail_text);
	pthread_mutex_unlock(&v->v_lock);
	return e;
}

/* session_resume installs the state *from (checked as the header says). */
static rete_err session_resume(rete_verify_session *s, const rete_verify_resume *from, rete_msg *m)
{
	struct vctx *v = &s->vs_v;
	rete_checkpoint cp;
	uint8_t root[RETE_MERKLE_HASH];
	struct item it;
	rete_arena arena;
	rete_msg mm = {{0}};
	rete_err e;

	/* the prefix showed a signed acknowledgement (the log is of protocol
	 * 3 or later from there on): an unsigned Delivery fed now fails */
	if (from->acks_signed_at > 0 && from->acks_signed_at <= from->frontier.mf_size) {
		v->v_acks_signed = true;
		v->v_acks_signed_at = from->acks_signed_at - 1;
	}
	if (from->note == NULL)
		return from->frontier.mf_size == 0
			   ? RETE_OK
			   : rete_msg_set(m, RETE_EINVAL,
					  "the saved state has a frontier of %llu entries but no "
					  "checkpoint",
					  (unsigned long long)from->frontier.mf_size);
	if (rete_checkpoint_parse(from->note, from->note_len, &cp, &mm) != RETE_OK)
		return rete_msg_set(m, RETE_EINVAL,
				    "the saved checkpoint is not a checkpoint note: %s", mm.text);
	if (v->v_origin[0] == '\0')
		snprintf(v->v_origin, sizeof(v->v_origin), "%s", cp.origin);
	if (strcmp(cp.origin, v->v_origin) != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "the saved checkpoint is for the log '%s', not for '%s'",
				    cp.origin, v->v_origin);
	e = rete_checkpoint_verify(from->note, from->note_len, v->v_origin, &s->vs_opt.broker_key,
				   &cp, &mm);
	if (e != RETE_OK)
		return rete_msg_set(m, e == RETE_ENOMEM ? e : RETE_EBADSIG,
				    "the saved checkpoint (size %llu) does not carry the broker's "
				    "signature: %s",
				    (unsigned long long)cp.size, mm.text);
	rete_merkle_frontier_root(&from->frontier, root);
	if (from->frontier.mf_size != cp.size ||
	    sodium_memcmp(root, cp.root, RETE_MERKLE_HASH) != 0)
		return rete_msg_set(m, RETE_ECORRUPT,
				    "the saved frontier (%llu entries) does not give the saved "
				    "checkpoint's root at size %llu",
				    (unsigned long long)from->frontier.mf_size,
				    (unsigned long long)cp.size);
	/* the epoch the log is in at that size; a restore after it is reported */
	if ((e = watch_set_cp(v, &cp, from->note, from->note_len, &mm)) != RETE_OK)
		return rete_msg_set(m, RETE_EINVAL, "the saved checkpoint: %s", mm.text);
	v->v_epoch = v->v_watch_epoch;
	v->v_fr = from->frontier;
	v->v_pend_from = cp.size; /* the entries before: not met in this run */
	v->v_prev = cp;
	v->v_have_prev = true;
	s->vs_start = cp.size;
	/* each party's keys in the prefix, so that a change back, or a party
	 * added back under another key, is seen across runs */
	for (size_t i = 0; i < from->n_keys; i++) {
		const rete_verify_key_seen *k = &from->keys[i];
		if (k->party == NULL || *k->party == '\0' || k->first_index > k->last_index ||
		    k->last_index >= cp.size)
			return rete_msg_set(m, RETE_EINVAL,
					    "the saved key %zu (party '%s', Directory entries "
					    "%llu to %llu) is not one of the %llu entries verified",
					    i, S(k->party), (unsigned long long)k->first_index,
					    (unsigned long long)k->last_index,
					    (unsigned long long)cp.size);
		if (ks_note(v, k->party, k->key, k->first_index, k->last_index) != RETE_OK)
			return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	}
	if (from->directory == NULL)
		return RETE_OK;

	/* the Directory in force: decoded and checked by phase A like any entry */
	memset(&it, 0, sizeof(it));
	if ((it.it_raw.data = malloc(from->directory_len + 1)) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	memcpy(it.it_raw.data, from->directory, from->directory_len);
	it.it_raw.len = from->directory_len;
	it.it_raw_own = true;
	memset(&arena, 0, sizeof(arena));
	phase_decode(v, v->v_dirs, &it, &arena);
	if (it.it_why != NULL)
		e = rete_msg_set(m, it.it_err == RETE_ENOMEM ? it.it_err : RETE_EINVAL,
				 "the saved Directory entry: %s", it.it_why);
	else if (it.it_msg->body_case != RETE__MESSAGE__BODY_DIRECTORY)
		e = rete_msg_set(m, RETE_EINVAL,
				 "the saved Directory entry holds a %s, not a directory",
				 rete_message_kind(it.it_msg));
	else if (it.it_le->index >= cp.size)
		e = rete_msg_set(
		    m, RETE_ECORRUPT,
		    "the saved Directory entry has index %llu, outside the %llu entries "
		    "verified",
		    (unsigned long long)it.it_le->index, (unsigned long long)cp.size);
	else if (!it.it_spec_ok)
		e = rete_msg_set(
		    m, RETE_EBADSIG,
		    "the saved Directory entry (index %llu) does not carry the broker's "
		    "signature",
		    (unsigned long long)it.it_le->index);
	else {
		it.it_index = it.it_le->index;
		e = dir_install(v, &it) == RETE_OK
			? RETE_OK
			: rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	}
	item_clear(&it);
	rete_arena_free(&arena);
	s->vs_rep.directories = 0;
	return e;
}

/* session_since installs opt.since_note, the earlier checkpoint the log
 * must extend (or follow with a declared restore): verified with the
 * broker's key, compared when the tree reaches its size, and watched for a
 * restore after it (restore_met). Not with a resume state (the resumed
 * checkpoint plays that part). */
static rete_err session_since(rete_verify_session *s, bool resumed, rete_msg *m)
{
	struct vctx *v = &s->vs_v;
	const rete_verify_options *o = &s->vs_opt;
	rete_checkpoint cp;
	rete_msg mm = {{0}};
	rete_err e;

	if (resumed)
		return rete_msg_set(m, RETE_EINVAL,
				    "verify: a session resumes from a state or compares with an "
				    "earlier checkpoint, not both");
	if (rete_checkpoint_parse(o->since_note, o->since_len, &cp, &mm) != RETE_OK)
		return rete_msg_set(m, RETE_EINVAL,
				    "the earlier checkpoint is not a checkpoint note: %s", mm.text);
	if (v->v_origin[0] == '\0')
		snprintf(v->v_origin, sizeof(v->v_origin), "%s", cp.origin);
	e = rete_checkpoint_verify(o->since_note, o->since_len, v->v_origin, &o->broker_key,
				   &v->v_since, &mm);
	if (e == RETE_OK)
		e = watch_set(v, o->since_note, o->since_len, &mm);
	if (e != RETE_OK)
		return rete_msg_set(m, e == RETE_ENOMEM ? e : RETE_EBADSIG,
				    "the earlier checkpoint (size %llu) is not one the broker "
				    "signed for the log '%s': %s",
				    (unsigned long long)cp.size, v->v_origin, mm.text);
	v->v_have_since = true;
	return RETE_OK;
}

rete_err rete_verify_session_open(rete_verify_session **out, const rete_verify_options *opt,
				  const rete_verify_resume *from, rete_msg *m)
{
	rete_verify_session *s;
	struct vctx *v;
	rete_err e;

	if (out == NULL || opt == NULL)
		return rete_msg_set(m, RETE_EINVAL, "verify: no session or no options given");
	*out = NULL;
	if ((e = rete_crypto_init(m)) != RETE_OK)
		return e;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	s->vs_opt = *opt;
	s->vs_opt.replay = false;
	s->vs_opt.scratch_dir = NULL;
	s->vs_opt.progress = NULL;
	v = &s->vs_v;
	v->v_opt = &s->vs_opt;
	v->v_rep = &s->vs_rep;
	v->v_fail_pos = POS_NONE;
	pthread_mutex_init(&v->v_lock, NULL);
	pipe_init(v);
	rete_merkle_frontier_init(&v->v_fr);
	v->v_threads = opt->threads == 0 ? rete_verify_cores() : opt->threads;
	if (v->v_threads > MAX_THREADS)
		v->v_threads = MAX_THREADS;
	if (opt->origin != NULL)
		snprintf(v->v_origin, sizeof(v->v_origin), "%s", opt->origin);
	if ((e = chunks_alloc(v, m)) == RETE_OK)
		e = from != NULL ? session_resume(s, from, m) : RETE_OK;
	if (e == RETE_OK && opt->since_note != NULL)
		e = session_since(s, from != NULL, m);
	if (e != RETE_OK) {
		v_free(v);
		free(s);
		return e;
	}
	*out = s;
	return RETE_OK;
}

rete_err rete_verify_session_target(rete_verify_session *s, const char *note, size_t len,
				    rete_verify_proof_fn proof, void *ctx, rete_msg *m)
{
	struct vctx *v;
	rete_checkpoint cp;
	rete_msg mm = {{0}};
	char *copy;
	rete_err e;

	if (s == NULL || note == NULL || proof == NULL || s->vs_have_target)
		return rete_msg_set(m, RETE_EINVAL, "verify: a session has one target checkpoint");
	v = &s->vs_v;
	if (rete_checkpoint_parse(note, len, &cp, &mm) != RETE_OK)
		return rete_msg_set(m, RETE_EINVAL,
				    "the broker's checkpoint is not a checkpoint note: %s",
				    mm.text);
	if (v->v_origin[0] == '\0')
		snprintf(v->v_origin, sizeof(v->v_origin), "%s", cp.origin);
	snprintf(s->vs_rep.origin, sizeof(s->vs_rep.origin), "%s", v->v_origin);
	if (strcmp(cp.origin, v->v_origin) != 0) {
		e = v->v_have_prev ? RETE_EPROOF : RETE_EBADSIG;
		fail(v, 0, e, false, 0, "the broker's checkpoint is for the log '%s', not for '%s'",
		     cp.origin, v->v_origin);
		return session_err(v, m);
	}
	e = rete_checkpoint_verify(note, len, v->v_origin, &s->vs_opt.broker_key, &cp, &mm);
	if (e != RETE_OK) {
		fail(
		    v, 0, e == RETE_ENOMEM ? e : RETE_EBADSIG, false, 0,
		    "the broker's checkpoint (size %llu) does not carry the broker's signature: %s",
		    (unsigned long long)cp.size, mm.text);
		return session_err(v, m);
	}
	v->v_proof = proof;
	v->v_proof_ctx = ctx;
	if (v->v_have_since && v->v_since.size > cp.size && !later_epoch(v, note)) {
		since_short(v, cp.size);
		return session_err(v, m);
	}
	if (v->v_have_prev && cp.size < v->v_prev.size) {
		fail(v, 0, RETE_EPROOF, false, 0,
		     "the broker's latest checkpoint has size %llu, smaller than the %llu entries "
		     "verified before: the log was truncated or an older copy was put back",
		     (unsigned long long)cp.size, (unsigned long long)v->v_prev.size);
		return session_err(v, m);
	}
	if (v->v_have_prev && (e = consistency(v, v->v_prev.size, v->v_prev.root, cp.size, cp.root,
					       &mm)) != RETE_OK) {
		if (io_error(e))
			return rete_msg_set(m, e,
					    "the consistency proof from size %llu to %llu: %s",
					    (unsigned long long)v->v_prev.size,
					    (unsigned long long)cp.size, mm.text);
		fail(v, 0, RETE_EPROOF, false, 0,
		     "the broker's checkpoint (size %llu) does not extend the one verified before "
		     "(size %llu): %s",
		     (unsigned long long)cp.size, (unsigned long long)v->v_prev.size, mm.text);
		return session_err(v, m);
	}
	if ((copy = malloc(len + 1)) == NULL || (v->v_ck = calloc(1, sizeof(*v->v_ck))) == NULL) {
		free(copy);
		return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	}
	memcpy(copy, note, len);
	copy[len] = '\0';
	v->v_ck[0].ck_size = cp.size;
	v->v_ck[0].ck_note = copy;
	v->v_ck[0].ck_consistent = true;
	v->v_nck = v->v_ckcap = 1;
	v->v_cki = cp.size == s->vs_start ? 1 : 0; /* already reached */
	v->v_size = cp.size;
	s->vs_rep.size = cp.size;
	s->vs_target = cp;
	s->vs_have_target = true;
	return RETE_OK;
}

uint64_t rete_verify_session_size(const rete_verify_session *s)
{
	return s != NULL ? s->vs_v.v_fr.mf_size : 0;
}

uint64_t rete_verify_session_target_size(const rete_verify_session *s)
{
	return s != NULL && s->vs_have_target ? s->vs_target.size : 0;
}

rete_err rete_verify_session_feed(rete_verify_session *s, uint64_t from, const rete_buf *entries,
				  size_t n, rete_msg *m)
{
	struct vctx *v;

	if (s == NULL || (entries == NULL && n > 0))
		return rete_msg_set(m, RETE_EINVAL, "verify: no session or no entries given");
	v = &s->vs_v;
	if (failed(v))
		return session_err(v, m);
	if (!s->vs_have_target || from != v->v_fr.mf_size || n > s->vs_target.size - from)
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "verify: entries [%llu, %llu) fed to a session at size %llu with "
		    "target %llu; feed the next entries, up to the target",
		    (unsigned long long)from, (unsigned long long)(from + n),
		    (unsigned long long)v->v_fr.mf_size, (unsigned long long)s->vs_target.size);
	if (n > 0) {
		struct fed fd = {entries, from};
		v->v_raw_own = true; /* fill_fed copies */
		pipe_check(v, from, n, fill_fed, &fd);
	}
	return failed(v) ? session_err(v, m) : RETE_OK;
}

rete_err rete_verify_session_finish(rete_verify_session *s, rete_verify_report *rep, rete_msg *m)
{
	struct vctx *v;
	uint8_t root[RETE_MERKLE_HASH];
	char b1[64], b2[64];
	rete_err e = RETE_OK;

	if (rep != NULL) {
		memset(rep, 0, sizeof(*rep));
		rep->verdict = RETE_VERIFY_ERROR;
	}
	if (s == NULL || rep == NULL)
		return rete_msg_set(m, RETE_EINVAL, "verify: no session or no report given");
	v = &s->vs_v;
	rete_merkle_frontier_root(&v->v_fr, root);
	if (!s->vs_have_target && !failed(v))
		return rete_msg_set(m, RETE_EINVAL, "verify: the session has no target checkpoint");
	if (!failed(v) && v->v_have_since && v->v_since.size > s->vs_target.size &&
	    v->v_fr.mf_size == s->vs_target.size)
		since_short(v, s->vs_target.size);
	else if (!failed(v) && v->v_fr.mf_size != s->vs_target.size)
		fail(v, POS_NONE, RETE_EINVAL, false, 0,
		     "verify: %llu entries verified, but the checkpoint to reach has size %llu",
		     (unsigned long long)v->v_fr.mf_size, (unsigned long long)s->vs_target.size);
	else if (!failed(v) && sodium_memcmp(root, s->vs_target.root, RETE_MERKLE_HASH) != 0)
		fail(v, POS_SIZE(s->vs_target.size), RETE_ECORRUPT, false, 0,
		     "checkpoint at size %llu: its root %s differs from the root %s recomputed "
		     "from the entries",
		     (unsigned long long)s->vs_target.size, b64(s->vs_target.root, b1),
		     b64(root, b2));
	*rep = s->vs_rep;
	rep->size = s->vs_target.size;
	snprintf(rep->origin, sizeof(rep->origin), "%s", v->v_origin);
	if (failed(v)) {
		uint64_t before;
		e = session_err(v, m);
		pthread_mutex_lock(&v->v_lock);
		snprintf(rep->reason, sizeof(rep->reason), "%s", v->v_fail_text);
		rep->has_bad_entry = v->v_fail_entry;
		rep->bad_index = v->v_fail_index;
		before = entries_before(v->v_fail_pos == POS_NONE - 1 ? v->v_fr.mf_size * 2 + 2
								      : v->v_fail_pos);
		counts_before(v, v->v_fail_pos, s->vs_start, rep);
		pthread_mutex_unlock(&v->v_lock);
		if (before > v->v_fr.mf_size)
			before = v->v_fr.mf_size;
		rep->entries = before > s->vs_start ? before - s->vs_start : 0;
		rep->verdict = io_error(e) ? RETE_VERIFY_ERROR : RETE_VERIFY_FAILS;
		s->vs_holds = false;
		return e;
	}
	memcpy(rep->root, root, RETE_MERKLE_HASH);
	rep->entries = v->v_fr.mf_size - s->vs_start;
	rep->verdict = RETE_VERIFY_HOLDS;
	rep->has_checkpoint = true;
	rep->checkpoints = 1;
	rep->latest_size = s->vs_target.size;
	memcpy(rep->latest_root, s->vs_target.root, RETE_MERKLE_HASH);
	s->vs_holds = true;
	return RETE_OK;
}

rete_err rete_verify_session_state(rete_verify_session *s, rete_verify_resume *out, rete_msg *m)
{
	if (s == NULL || out == NULL || !s->vs_holds)
		return rete_msg_set(m, RETE_EINVAL,
				    "verify: only a session that held leaves a state to keep");
	memset(out, 0, sizeof(*out));
	out->note = s->vs_v.v_ck[0].ck_note;
	out->note_len = strlen(out->note);
	out->frontier = s->vs_v.v_fr;
	if (s->vs_v.v_dirs != NULL) {
		out->directory = s->vs_v.v_dirs->vd_raw.data;
		out->directory_len = s->vs_v.v_dirs->vd_raw.len;
	}
	out->acks_signed_at = s->vs_v.v_acks_signed ? s->vs_v.v_acks_signed_at + 1 : 0;
	/* the key history, as pointers into the context's (no copy of the ids) */
	const struct vctx *v = &s->vs_v;
	free(s->vs_keys);
	s->vs_keys = NULL;
	if (v->v_nks > 0 && (s->vs_keys = calloc(v->v_nks, sizeof(*s->vs_keys))) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "verify: out of memory");
	for (size_t i = 0; i < v->v_nks; i++) {
		s->vs_keys[i].party = v->v_ks[i].ks_party;
		memcpy(s->vs_keys[i].key, v->v_ks[i].ks_key, RETE_PK_LEN);
		s->vs_keys[i].first_index = v->v_ks[i].ks_first;
		s->vs_keys[i].last_index = v->v_ks[i].ks_last;
	}
	out->keys = s->vs_keys;
	out->n_keys = v->v_nks;
	return RETE_OK;
}

void rete_verify_session_close(rete_verify_session **s)
{
	if (s == NULL || *s == NULL)
		return;
	v_free(&(*s)->vs_v);
	free((*s)->vs_keys);
	free(*s);
	*s = NULL;
}
