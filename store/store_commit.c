/* store_commit.c — the write side of the store: one batch of appends, acks
 * and expiries in one durable LMDB write transaction, with the Merkle nodes,
 * dedup index, queues, sealed parts, case index and the referral
 * projection; map growth and full-disk recovery around it. */
#include "store_impl.h"

#include <errno.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "lifecycle.h"

#define KEY_MAX 511 /* LMDB's default maximum key size */

/* The cursors of one write attempt, opened when first used and closed
 * before it commits or aborts. An append reads and writes eight databases;
 * through a cursor kept for the whole transaction LMDB starts from the page
 * it was last on (a key on that page needs no search from the root), and a
 * lookup followed by the put of the same key (the dedup record, the
 * referral record) searches once. Merkle nodes have a cursor per level
 * (the low ones): level L's keys only grow, but the levels interleave. */
enum {
	CUR_ENTRIES,
	CUR_MSGIDS,
	CUR_QUEUE,
	CUR_BLOBS,
	CUR_CASES,
	CUR_REFERRALS,
	CUR_DUE,
	CUR_NODES, /* level 0; CUR_NODES + L for level L < NODE_CURSORS */
	NODE_CURSORS = 8,
	CUR_N = CUR_NODES + NODE_CURSORS
};

/* The last Merkle node of each level an attempt wrote (struct batch). */
struct batch_last {
	uint64_t bl_index[64];
	uint8_t bl_hash[64][RETE_MERKLE_HASH];
};

/* One write attempt. */
struct batch {
	rete_store *b_store;
	MDB_txn *b_txn;
	uint64_t b_size; /* next log index */
	int b_rc;	 /* LMDB code of the call that failed, 0 if none */
	bool b_changed;	 /* something was written or deleted: commit it */
	rete_msg *b_msg;
	/* due_for's last answer: the referrals of a batch share their time
	 * (and mostly their priority), and a calendar deadline is costly */
	bool b_dir_ok; /* b_dir is the Directory in force (none appended since) */
	const Rete__Directory *b_dir;
	bool b_due_ok;
	const Rete__Directory *b_due_dir;
	uint64_t b_due_dir_index;
	Rete__Priority b_due_priority;
	int64_t b_due_at, b_due;
	MDB_cursor *b_cur[CUR_N];
	/* the last Merkle node this attempt wrote at each level (bit L of
	 * b_last_ok): the left sibling an append completes its parent with,
	 * when the batch wrote it, is the last one written at its level */
	uint64_t b_last_ok;
	struct batch_last *b_last;  /* not cleared per attempt: b_last_ok says */
	struct node_stage *b_stage; /* the nodes written, for a memo (or NULL) */
	store_redo *b_redo;	    /* what it wrote, for the journal (or NULL) */
};

/* The Merkle nodes (leaves included) a commit wrote, kept in memory until
 * it is durable; then they go into the caller's memo. */
struct node_stage {
	rete_merkle_node *ns_node;
	size_t ns_n, ns_cap;
	bool ns_failed; /* out of memory: the memo gets nothing */
};

static void stage_node(struct batch *b, unsigned level, uint64_t index,
		       const uint8_t hash[RETE_MERKLE_HASH])
{
	struct node_stage *st = b->b_stage;

	if (level < 64 && b->b_last != NULL) {
		b->b_last_ok |= (uint64_t)1 << level;
		b->b_last->bl_index[level] = index;
		memcpy(b->b_last->bl_hash[level], hash, RETE_MERKLE_HASH);
	}
	if (st == NULL || st->ns_failed)
		return;
	if (st->ns_n == st->ns_cap) {
		size_t cap = st->ns_cap == 0 ? 256 : st->ns_cap * 2;
		rete_merkle_node *v = realloc(st->ns_node, cap * sizeof(*v));
		if (v == NULL) {
			st->ns_failed = true;
			return;
		}
		st->ns_node = v;
		st->ns_cap = cap;
	}
	st->ns_node[st->ns_n].level = level;
	st->ns_node[st->ns_n].index = index;
	memcpy(st->ns_node[st->ns_n].hash, hash, RETE_MERKLE_HASH);
	st->ns_n++;
}

static const char *S(const char *s)
{
	return s != NULL ? s : "";
}

static rete_err lmdb_fail(struct batch *b, int rc, const char *what)
{
	b->b_rc = rc;
	return store_lmdb_err(b->b_msg, rc, what);
}

/* cursor gives cursor `id` on dbi, opened in the batch's transaction the
 * first time (NULL if LMDB cannot open one: the callers then use the plain
 * calls, which do the same). */
static MDB_cursor *cursor(struct batch *b, unsigned id, MDB_dbi dbi)
{
	if (b->b_cur[id] == NULL && mdb_cursor_open(b->b_txn, dbi, &b->b_cur[id]) != 0)
		b->b_cur[id] = NULL;
	return b->b_cur[id];
}

static void cursors_close(struct batch *b)
{
	for (unsigned i = 0; i < CUR_N; i++) {
		if (b->b_cur[i] != NULL)
			mdb_cursor_close(b->b_cur[i]);
		b->b_cur[i] = NULL;
	}
}

static unsigned node_cursor(unsigned level)
{
	return CUR_NODES + (level < NODE_CURSORS ? level : NODE_CURSORS - 1);
}

/* get_at is mdb_get through cursor id: 0 (v set), MDB_NOTFOUND or an LMDB
 * code. It positions the cursor at the key or where it would go (a range
 * lookup), so that the put of that key which often follows finds its page
 * without a search. */
static int get_at(struct batch *b, unsigned id, MDB_dbi dbi, const MDB_val *k, MDB_val *v)
{
	MDB_cursor *c = cursor(b, id, dbi);
	MDB_val fk = *k;
	int rc;

	if (c == NULL)
		return mdb_get(b->b_txn, dbi, &fk, v);
	rc = mdb_cursor_get(c, &fk, v, MDB_SET_RANGE);
	if (rc != 0)
		return rc;
	if (fk.mv_size != k->mv_size || memcmp(fk.mv_data, k->mv_data, k->mv_size) != 0)
		return MDB_NOTFOUND;
	return 0;
}

/* put_at is mdb_put through cursor id (v->mv_data points at the reserved
 * room after an MDB_RESERVE). */
static int put_at(struct batch *b, unsigned id, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags)
{
	MDB_cursor *c = cursor(b, id, dbi);
	MDB_val key = *k; /* LMDB may point k elsewhere */
	int rc = c != NULL ? mdb_cursor_put(c, k, v, flags) : mdb_put(b->b_txn, dbi, k, v, flags);
	if (rc == 0) {
		b->b_changed = true;
		if (b->b_redo != NULL)
			store_redo_add(b->b_redo, b->b_store, (flags & MDB_RESERVE) ? 'R' : 'P', dbi,
				       &key, v);
	}
	return rc;
}

/* cput: put through cursor id, with the sentence `what` on failure. */
static rete_err cput(struct batch *b, unsigned id, MDB_dbi dbi, const void *key, size_t klen,
		     const void *val, size_t vlen, unsigned flags, const char *what)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	int rc = put_at(b, id, dbi, &k, &v, flags);
	if (rc != 0)
		return lmdb_fail(b, rc, what);
	return RETE_OK;
}

static rete_err put(struct batch *b, MDB_dbi dbi, const void *key, size_t klen, const void *val,
		    size_t vlen, unsigned flags, const char *what)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	MDB_val kk = k;
	int rc = mdb_put(b->b_txn, dbi, &k, &v, flags);
	if (rc != 0)
		return lmdb_fail(b, rc, what);
	b->b_changed = true;
	if (b->b_redo != NULL)
		store_redo_add(b->b_redo, b->b_store, 'P', dbi, &kk, &v);
	return RETE_OK;
}

/* del removes key; *present (if not NULL) says whether it was there. */
static rete_err del(struct batch *b, MDB_dbi dbi, const void *key, size_t klen, bool *present,
		    const char *what)
{
	MDB_val k = {klen, (void *)key};
	MDB_val kk = k;
	int rc = mdb_del(b->b_txn, dbi, &k, NULL);
	if (present != NULL)
		*present = rc == 0;
	if (rc == 0) {
		b->b_changed = true;
		if (b->b_redo != NULL)
			store_redo_add(b->b_redo, b->b_store, 'D', dbi, &kk, NULL);
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_fail(b, rc, what);
	return RETE_OK;
}

static void refuse(rete_store_op *op, Rete__ErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(rete_store_op *op, Rete__ErrorCode code, const char *fmt, ...)
{
	va_list ap;
	op->status = RETE_STORE_REFUSED;
	op->error = code;
	va_start(ap, fmt);
	vsnprintf(op->error_text, sizeof(op->error_text), fmt, ap);
	va_end(ap);
}

/* ---- the referral projection -------------------------------------------- */

/* load_ref reads referral id in the batch (*out NULL when absent). */
static rete_err load_ref(struct batch *b, const char *id, Rete__ReferralInfo **out)
{
	MDB_val k = {strlen(id), (void *)id}, v;
	int rc;

	*out = NULL;
	if (k.mv_size == 0 || k.mv_size > KEY_MAX - 8)
		return RETE_OK;
	rc = get_at(b, CUR_REFERRALS, b->b_store->st_referrals, &k, &v);
	if (rc == MDB_NOTFOUND)
		return RETE_OK;
	if (rc != 0)
		return lmdb_fail(b, rc, "store: reading a referral");
	*out = rete__referral_info__unpack(NULL, v.mv_size, v.mv_data);
	if (*out == NULL)
		return rete_msg_set(b->b_msg, RETE_ECORRUPT,
				    "store %s: referral '%s' does not decode", b->b_store->st_dir,
				    id);
	return RETE_OK;
}

/* A referral waits in `due` while it awaits an answer and no overdue notice
 * was issued for it. */
static bool due_active(const Rete__ReferralInfo *r)
{
	return r != NULL && r->due_at > 0 && !r->overdue &&
	       (r->status == RETE__STATUS__STATUS_REQUESTED ||
		r->status == RETE__STATUS__STATUS_RECEIVED);
}

static size_t due_key(uint8_t key[KEY_MAX], const Rete__ReferralInfo *r)
{
	size_t il = strlen(r->id);
	be64_put(key, (uint64_t)r->due_at);
	memcpy(key + 8, r->id, il);
	return 8 + il;
}

/* The change an append makes to one referral: `old` as stored (owned,
 * NULL for a new one) and `nr`, a shallow copy pointing into old, into the
 * message and into this struct, packed when the append is written. */
struct plan {
	bool p_write;
	Rete__ReferralInfo *p_old;
	Rete__ReferralInfo p_nr;
	Rete__StatusChange p_change;
	Rete__StatusChange **p_hist;
	Rete__StatusReason p_reason;
};

static void plan_free(struct plan *p)
{
	if (p->p_old != NULL)
		rete__referral_info__free_unpacked(p->p_old, NULL);
	free(p->p_hist);
	memset(p, 0, sizeof(*p));
}

/* plan_begin starts a change of existing referral r (taken over). */
static void plan_begin(struct plan *p, Rete__ReferralInfo *r)
{
	p->p_old = r;
	p->p_nr = *r;
	p->p_write = true;
}

/* plan_history appends a StatusChange for the new status of p_nr. */
static rete_err plan_history(struct batch *b, struct plan *p, uint64_t index, int64_t at,
			     const char *by)
{
	size_t n = p->p_nr.n_history;

	p->p_hist = malloc((n + 1) * sizeof(*p->p_hist));
	if (p->p_hist == NULL)
		return rete_msg_set(b->b_msg, RETE_ENOMEM, "store: out of memory");
	if (n > 0)
		memcpy(p->p_hist, p->p_nr.history, n * sizeof(*p->p_hist));
	rete__status_change__init(&p->p_change);
	p->p_change.index = index;
	p->p_change.at = at;
	p->p_change.status = p->p_nr.status;
	p->p_change.business_status = (char *)S(p->p_nr.business_status);
	p->p_change.by = (char *)S(by);
	p->p_change.status_reason = p->p_nr.status_reason;
	p->p_hist[n] = &p->p_change;
	p->p_nr.history = p->p_hist;
	p->p_nr.n_history = n + 1;
	return RETE_OK;
}

/* dir_in_force returns the decoded Directory in force in the batch (NULL
 * when none), through the store's cache keyed by the entry's leaf hash. */
static rete_err dir_in_force(struct batch *b, const Rete__Directory **out)
{
	rete_store *s = b->b_store;
	MDB_val k = {strlen(META_DIRECTORY), (void *)META_DIRECTORY}, v;
	uint8_t key[8], leaf[RETE_MERKLE_HASH];
	struct store_node_ctx c = {s, b->b_txn};
	Rete__LogEntry *le;
	uint64_t idx;
	int rc;

	*out = NULL;
	rc = mdb_get(b->b_txn, s->st_meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return RETE_OK;
	if (rc != 0)
		return lmdb_fail(b, rc, "store: reading the directory index");
	if (v.mv_size != 8)
		return rete_msg_set(b->b_msg, RETE_ECORRUPT, "store %s: malformed directory index",
				    s->st_dir);
	idx = be64_get(v.mv_data);
	if (store_node_get(&c, 0, idx, leaf) != RETE_OK)
		return rete_msg_set(b->b_msg, RETE_ECORRUPT,
				    "store %s: no leaf hash for the Directory entry %llu",
				    s->st_dir, (unsigned long long)idx);
	if (s->st_dir_msg == NULL || s->st_dir_index != idx ||
	    memcmp(s->st_dir_leaf, leaf, sizeof(leaf)) != 0) {
		store_dir_forget(s);
		be64_put(key, idx);
		k.mv_data = key;
		k.mv_size = 8;
		if ((rc = mdb_get(b->b_txn, s->st_entries, &k, &v)) != 0)
			return rc == MDB_NOTFOUND
				   ? rete_msg_set(b->b_msg, RETE_ECORRUPT,
						  "store %s: the Directory entry %llu is missing",
						  s->st_dir, (unsigned long long)idx)
				   : lmdb_fail(b, rc, "store: reading the Directory entry");
		le = rete__log_entry__unpack(NULL, v.mv_size, v.mv_data);
		if (le != NULL) {
			s->st_dir_sm = rete__signed_message__unpack(NULL, le->signed_message.len,
								    le->signed_message.data);
			if (s->st_dir_sm != NULL)
				s->st_dir_msg = rete__message__unpack(
				    NULL, s->st_dir_sm->message.len, s->st_dir_sm->message.data);
			rete__log_entry__free_unpacked(le, NULL);
		}
		if (s->st_dir_msg == NULL ||
		    s->st_dir_msg->body_case != RETE__MESSAGE__BODY_DIRECTORY) {
			store_dir_forget(s);
			return rete_msg_set(
			    b->b_msg, RETE_ECORRUPT,
			    "store %s: entry %llu, the Directory in force, does not "
			    "decode as a Directory",
			    s->st_dir, (unsigned long long)idx);
		}
		s->st_dir_index = idx;
		memcpy(s->st_dir_leaf, leaf, sizeof(leaf));
	}
	*out = s->st_dir_msg->directory;
	return RETE_OK;
}

/* due_for computes the answer deadline of a referral of `priority` logged
 * at `at` from the Directory in force (0 when none applies). A limit the
 * duration parser refuses falls back to its limit_ms. */
static rete_err due_for(struct batch *b, Rete__Priority priority, int64_t at, int64_t *due)
{
	const Rete__Directory *d;
	rete_err err;

	*due = 0;
	if (b->b_dir_ok) {
		d = b->b_dir;
	} else {
		if ((err = dir_in_force(b, &d)) != RETE_OK)
			return err;
		b->b_dir_ok = true;
		b->b_dir = d;
	}
	if (d == NULL)
		return RETE_OK;
	if (b->b_due_ok && b->b_due_dir == d && b->b_due_dir_index == b->b_store->st_dir_index &&
	    b->b_due_priority == priority && b->b_due_at == at) {
		*due = b->b_due;
		return RETE_OK;
	}
	for (size_t i = 0; i < d->n_limits; i++) {
		const Rete__PriorityLimit *l = d->limits[i];
		if (l == NULL || l->priority != priority)
			continue;
		if (l->limit == NULL || *l->limit == '\0' ||
		    rete_deadline(at, l->limit, (const char *const *)d->holidays, d->n_holidays,
				  d->time_zone, due, NULL) != RETE_OK)
			*due = l->limit_ms > 0 ? at + l->limit_ms : 0;
		break;
	}
	b->b_due_ok = true;
	b->b_due_dir = d;
	b->b_due_dir_index = b->b_store->st_dir_index;
	b->b_due_priority = priority;
	b->b_due_at = at;
	b->b_due = *due;
	return RETE_OK;
}

/* find_concerned finds the referral an entry-naming broker body concerns:
 * the referral whose own log entry is `index`, named by referral_id or
 * message_id. */
static rete_err find_concerned(struct batch *b, const char *referral_id, const char *message_id,
			       uint64_t index, Rete__ReferralInfo **out)
{
	const char *ids[2] = {referral_id, message_id};
	rete_err err;

	*out = NULL;
	for (int i = 0; i < 2; i++) {
		Rete__ReferralInfo *r;
		if (ids[i] == NULL || *ids[i] == '\0')
			continue;
		if ((err = load_ref(b, ids[i], &r)) != RETE_OK)
			return err;
		if (r != NULL && r->index == index) {
			*out = r;
			return RETE_OK;
		}
		if (r != NULL)
			rete__referral_info__free_unpacked(r, NULL);
	}
	return RETE_OK;
}

static const char *role_name(rete_role r)
{
	switch (r) {
	case RETE_ROLE_REQUESTER:
		return "the requester";
	case RETE_ROLE_PERFORMER:
		return "the performer";
	case RETE_ROLE_BROKER:
		return "the broker";
	default:
		return "this party";
	}
}

/* plan_referral: a new referral. */
static rete_err plan_referral(struct batch *b, rete_store_op *op, const Rete__Message *msg,
			      uint64_t index, struct plan *p)
{
	const Rete__Referral *ref = msg->referral;
	Rete__ReferralInfo *r = NULL;
	Rete__ReferralInfo *nr = &p->p_nr;
	rete_err err;

	if (ref == NULL) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID, "referral %s: the body is empty",
		       msg->id);
		return RETE_OK;
	}
	if (*S(msg->recipient) == '\0') {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "referral %s: no recipient; a referral names the agency asked to act",
		       msg->id);
		return RETE_OK;
	}
	if (strlen(msg->id) > KEY_MAX - 8) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "referral id is %zu bytes long; at most %d are accepted", strlen(msg->id),
		       KEY_MAX - 8);
		return RETE_OK;
	}
	if ((err = load_ref(b, msg->id, &r)) != RETE_OK)
		return err;
	if (r != NULL && strcmp(S(r->requester), msg->sender) == 0) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED,
		       "referral id '%s' is already the id of a referral from %s (entry %llu); "
		       "send it with a new message id",
		       msg->id, S(r->requester), (unsigned long long)r->index);
		rete__referral_info__free_unpacked(r, NULL);
		return RETE_OK;
	} else if (r != NULL) {
		/* Referral ids are one namespace (the store is keyed by the id
		 * alone), so another agency's referral holds it. Its sender and
		 * entry are not the sender's to know (review s12 small-eyes, 1:
		 * a party oracle): the sentence is the same whoever holds it and
		 * whatever the entry. That the id is taken is still told by the
		 * refusal itself (docs/security.md, "Referral ids"). */
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED,
		       "referral id '%s' is taken in this network; %s must choose another, "
		       "for example one that begins with its own agency id ('%s-...')",
		       msg->id, msg->sender, msg->sender);
		rete__referral_info__free_unpacked(r, NULL);
		return RETE_OK;
	}
	rete__referral_info__init(nr);
	nr->id = msg->id;
	nr->requester = msg->sender;
	nr->performer = msg->recipient;
	nr->service = (char *)S(ref->service);
	nr->priority = ref->priority;
	nr->case_id = (char *)S(msg->case_id);
	nr->age_band = ref->age_band;
	nr->status = RETE__STATUS__STATUS_REQUESTED;
	nr->previous_referral = (char *)S(ref->previous_referral);
	nr->index = index;
	nr->requested_at = op->in.logged_at;
	nr->last_index = index;
	if ((err = due_for(b, ref->priority, op->in.logged_at, &nr->due_at)) != RETE_OK)
		return err;
	p->p_write = true;
	return plan_history(b, p, index, op->in.logged_at, msg->sender);
}

/* read_epoch: the log's epoch in the batch (meta "epoch", 1 when absent).
 * Errors: LMDB's, RETE_ECORRUPT (a record not of 4 bytes). */
static rete_err read_epoch(struct batch *b, uint32_t *epoch)
{
	MDB_val k = {strlen(META_EPOCH), (void *)META_EPOCH}, v;
	int rc = mdb_get(b->b_txn, b->b_store->st_meta, &k, &v);

	*epoch = 1;
	if (rc == 0 && v.mv_size == 4) {
		const uint8_t *p = v.mv_data;
		*epoch =
		    ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
	} else if (rc != MDB_NOTFOUND) {
		return rc != 0 ? lmdb_fail(b, rc, "store: reading the log epoch")
			       : rete_msg_set(b->b_msg, RETE_ECORRUPT,
					      "store %s: meta 'epoch' is %zu bytes, not 4",
					      b->b_store->st_dir, v.mv_size);
	}
	return RETE_OK;
}

/* refuse_unknown_ref refuses op, an update or note (kind) naming referral
 * id, which the log does not have. In epoch 1 the id is most likely wrong.
 * After a declared restore (a later epoch) a right id is as likely: a
 * referral logged after the backup the store was restored from, and
 * delivered (no agent holds it to submit it again), is not in the log any
 * more, and the sentence says so and what the sender does. The sentence
 * depends on the id given and the epoch only, never on whether another
 * agency has a referral of that id. Errors: reading the epoch. */
static rete_err refuse_unknown_ref(struct batch *b, rete_store_op *op, const Rete__Message *msg,
				   const char *kind, const char *id, const char *hint)
{
	uint32_t epoch = 1;
	rete_err err = read_epoch(b, &epoch);
	if (err != RETE_OK)
		return err;
	if (epoch <= 1) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL,
		       "%s %s: no referral '%s' that %s is party to; check the referral id (an "
		       "agency updates or annotates only the referrals it sent or received)%s",
		       kind, msg->id, id, msg->sender, hint);
		return RETE_OK;
	}
	refuse(op, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL,
	       "%s %s: no referral '%s' that %s is party to: its log (epoch %u, after a "
	       "restore of the broker's store) has none. If the id is right, the "
	       "referral was logged after the backup the store was restored from, and the "
	       "restore lost it: its sender must first send it again, as a new referral with "
	       "a new id and previousReferral '%s', and this %s must then name that new "
	       "referral (docs/operations.md, \"Restoring a backup\"); otherwise check the "
	       "referral id%s",
	       kind, msg->id, id, msg->sender, (unsigned)epoch, id, kind, hint);
	return RETE_OK;
}

/* load_party_ref loads referral id, named by msg (a `kind`: update or
 * note), for its sender, who must be the referral's requester or
 * performer (*role: which). *r is the caller's to free; it stays NULL when
 * op was refused (UNKNOWN_REFERRAL, `hint` ending the sentence): the
 * referral is unknown, or the sender is neither (the same answer). Errors:
 * those of load_ref. */
static rete_err load_party_ref(struct batch *b, rete_store_op *op, const Rete__Message *msg,
			       const char *kind, const char *id, const char *hint,
			       Rete__ReferralInfo **r, rete_role *role)
{
	rete_err err;

	if ((err = load_ref(b, id, r)) != RETE_OK)
		return err;
	if (*r != NULL) {
		*role = rete_role_of(msg->sender, (*r)->requester, (*r)->performer);
		if (*role != RETE_ROLE_OTHER)
			return RETE_OK;
		rete__referral_info__free_unpacked(*r, NULL);
		*r = NULL;
	}
	/* A referral of others gets the answer an unknown id gets (report s12,
	 * 7): referral ids are the sender's, often sequential, and "X is
	 * neither the requester (A) nor the performer (B)" told a third agency
	 * that the referral exists and who its parties are. */
	return refuse_unknown_ref(b, op, msg, kind, id, hint);
}

/* plan_update: a status change or new business status. */
static rete_err plan_update(struct batch *b, rete_store_op *op, const Rete__Message *msg,
			    uint64_t index, struct plan *p)
{
	const Rete__ReferralUpdate *u = msg->update;
	Rete__ReferralInfo *r, *nr;
	Rete__Status from, to;
	rete_role role;
	const char *why = NULL;
	rete_err err;

	if (u == NULL || *S(u->referral_id) == '\0') {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "update %s: referral_id is empty; it must name the referral being updated",
		       msg->id);
		return RETE_OK;
	}
	err = load_party_ref(b, op, msg, "update", u->referral_id, "", &r, &role);
	if (err != RETE_OK || r == NULL)
		return err;
	from = r->status;
	to = u->status == RETE__STATUS__STATUS_UNSPECIFIED ? from : u->status;
	if (!rete_lifecycle_check(from, to, role, &why)) {
		/* An agency referring to itself holds both roles. */
		rete_role other =
		    role == RETE_ROLE_REQUESTER ? RETE_ROLE_PERFORMER : RETE_ROLE_REQUESTER;
		if (strcmp(S(r->requester), S(r->performer)) == 0 &&
		    rete_lifecycle_check(from, to, other, NULL)) {
			role = other;
		} else {
			refuse(op, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE,
			       "update %s: referral %s is %s; %s (%s) may not move it to %s: %s",
			       msg->id, r->id, rete_status_name(from), role_name(role), msg->sender,
			       rete_status_name(to), why ? why : "not allowed");
			rete__referral_info__free_unpacked(r, NULL);
			return RETE_OK;
		}
	}
	plan_begin(p, r);
	nr = &p->p_nr;
	nr->status = to;
	if (to != from) {
		nr->business_status = (char *)S(u->business_status);
		nr->status_reason = u->status_reason;
	} else {
		if (*S(u->business_status) != '\0')
			nr->business_status = u->business_status;
		if (u->status_reason != NULL)
			nr->status_reason = u->status_reason;
	}
	if (u->outcome != NULL)
		nr->outcome = u->outcome;
	rete_referral_apply_times(nr, to, op->in.logged_at);
	nr->last_index = index;
	return plan_history(b, p, index, op->in.logged_at, msg->sender);
}

/* plan_note: a note must belong to a known referral of its sender. */
static rete_err plan_note(struct batch *b, rete_store_op *op, const Rete__Message *msg)
{
	const Rete__CaseNote *note = msg->note;
	Rete__ReferralInfo *r;
	rete_role role;
	rete_err err;

	if (note == NULL || *S(note->referral_id) == '\0')
		return RETE_OK;
	err = load_party_ref(b, op, msg, "note", note->referral_id,
			     " or leave it empty for a note on the case", &r, &role);
	if (r != NULL)
		rete__referral_info__free_unpacked(r, NULL);
	return err;
}

/* plan_broker_move moves referral r (taken over) to `to` as the broker. */
static rete_err plan_broker_move(rete_store_op *op, const Rete__Message *msg, uint64_t index,
				 struct plan *p, Rete__ReferralInfo *r, Rete__Status to, int64_t at)
{
	const char *why = NULL;

	if (!rete_lifecycle_check(r->status, to, RETE_ROLE_BROKER, &why)) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE,
		       "%s %s: referral %s is %s; the broker may not move it to %s: %s",
		       rete_message_kind(msg), msg->id, r->id, rete_status_name(r->status),
		       rete_status_name(to), why ? why : "not allowed");
		rete__referral_info__free_unpacked(r, NULL);
		return RETE_OK;
	}
	plan_begin(p, r);
	p->p_nr.status = to;
	p->p_nr.business_status = (char *)"";
	p->p_nr.status_reason = NULL;
	rete_referral_apply_times(&p->p_nr, to, at);
	p->p_nr.last_index = index;
	return RETE_OK;
}

static rete_err plan_delivery(struct batch *b, rete_store_op *op, const Rete__Message *msg,
			      uint64_t index, struct plan *p)
{
	const Rete__Delivery *d = msg->delivery;
	Rete__ReferralInfo *r;
	rete_err err;

	if (d == NULL)
		return RETE_OK;
	if ((err = find_concerned(b, d->referral_id, d->message_id, d->index, &r)) != RETE_OK)
		return err;
	if (r == NULL)
		return RETE_OK;
	if (r->status != RETE__STATUS__STATUS_REQUESTED) {
		/* already answered or withdrawn: the access record changes
		 * nothing */
		rete__referral_info__free_unpacked(r, NULL);
		return RETE_OK;
	}
	if ((err = plan_broker_move(op, msg, index, p, r, RETE__STATUS__STATUS_RECEIVED,
				    d->delivered_at ? d->delivered_at : op->in.logged_at)) !=
	    RETE_OK)
		return err;
	if (!p->p_write)
		return RETE_OK;
	return plan_history(b, p, index, op->in.logged_at, msg->sender);
}

static rete_err plan_notice(struct batch *b, rete_store_op *op, const Rete__Message *msg,
			    uint64_t index, struct plan *p)
{
	const Rete__Notice *nt = msg->notice;
	Rete__ReferralInfo *r = NULL;
	rete_err err;

	if (nt == NULL)
		return RETE_OK;
	if (nt->kind == RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE) {
		const char *id = *S(nt->referral_id) ? nt->referral_id : S(nt->message_id);
		if ((err = load_ref(b, id, &r)) != RETE_OK)
			return err;
		if (r == NULL)
			return RETE_OK;
		plan_begin(p, r);
		p->p_nr.overdue = true;
		p->p_nr.last_index = index;
		return RETE_OK;
	}
	if (nt->kind != RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED)
		return RETE_OK;
	if ((err = find_concerned(b, nt->referral_id, nt->message_id, nt->index, &r)) != RETE_OK)
		return err;
	if (r == NULL)
		return RETE_OK;
	if (rete_status_terminal(r->status)) {
		/* withdrawn (e.g. cancelled) before it expired: nothing moves */
		rete__referral_info__free_unpacked(r, NULL);
		return RETE_OK;
	}
	if ((err = plan_broker_move(op, msg, index, p, r, RETE__STATUS__STATUS_FAILED,
				    op->in.logged_at)) != RETE_OK)
		return err;
	if (!p->p_write)
		return RETE_OK;
	rete__status_reason__init(&p->p_reason);
	p->p_reason.code = (char *)"not-delivered";
	p->p_reason.text = *S(nt->text) ? nt->text : (char *)"not delivered before the expiry";
	p->p_nr.status_reason = &p->p_reason;
	return plan_history(b, p, index, op->in.logged_at, msg->sender);
}

/* check_epoch: an Epoch entry (a declared restore) must raise the log's
 * epoch (meta "epoch", 1 when absent); it changes no referral. */
static rete_err check_epoch(struct batch *b, rete_store_op *op, const Rete__Message *msg)
{
	uint32_t have = 1;
	rete_err err = read_epoch(b, &have);

	if (err != RETE_OK)
		return err;
	if (msg->epoch == NULL || msg->epoch->epoch <= have)
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "epoch entry %s starts epoch %u, but the log is already in epoch %u; a "
		       "new epoch is higher",
		       S(msg->id), msg->epoch ? (unsigned)msg->epoch->epoch : 0u, (unsigned)have);
	return RETE_OK;
}

/* ---- the referral record, encoded ---------------------------------------- */

/* A writer of protobuf wire format: counts only when p is NULL. Encodes
 * ReferralInfo exactly as protobuf-c packs it (proto3: fields in number
 * order, those at their default value left out, a sub-message present when
 * its pointer is not NULL, enums as sign-extended varints), without
 * protobuf-c's walk of the descriptors (twice: the size, then the bytes).
 * unit.test_store checks it against protobuf-c. */
struct pbw {
	uint8_t *p;
	size_t n, cap;
	bool over;
};

static void pbw_byte(struct pbw *w, uint8_t c)
{
	if (w->p != NULL) {
		if (w->n < w->cap)
			w->p[w->n] = c;
		else
			w->over = true;
	}
	w->n++;
}

static void pbw_varint(struct pbw *w, uint64_t v)
{
	while (v >= 0x80) {
		pbw_byte(w, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	pbw_byte(w, (uint8_t)v);
}

static void pbw_bytes(struct pbw *w, unsigned field, const uint8_t *b, size_t len)
{
	if (len == 0)
		return;
	pbw_varint(w, (uint64_t)field << 3 | 2);
	pbw_varint(w, len);
	if (w->p != NULL && w->n + len <= w->cap)
		memcpy(w->p + w->n, b, len);
	else if (w->p != NULL)
		w->over = true;
	w->n += len;
}

static void pbw_str(struct pbw *w, unsigned field, const char *s)
{
	if (s != NULL && *s != '\0')
		pbw_bytes(w, field, (const uint8_t *)s, strlen(s));
}

static void pbw_u64(struct pbw *w, unsigned field, uint64_t v)
{
	if (v == 0)
		return;
	pbw_varint(w, (uint64_t)field << 3);
	pbw_varint(w, v);
}

static void pbw_enum(struct pbw *w, unsigned field, int v)
{
	pbw_u64(w, field, (uint64_t)(int64_t)v);
}

typedef bool (*pbw_fn)(struct pbw *w, const void *msg);

/* pbw_msg writes sub-message msg (not NULL) as field: its size first.
 * Written once: one byte is kept for the size (a status change or reason
 * is shorter than 128 bytes but for long texts), and a longer body is moved
 * right by the size's other bytes; only a writer that counts (p NULL)
 * walks the sub-message for its size. */
static bool pbw_msg(struct pbw *w, unsigned field, pbw_fn fn, const void *msg)
{
	size_t at, len, extra = 0;

	pbw_varint(w, (uint64_t)field << 3 | 2);
	if (w->p == NULL) {
		struct pbw size = {NULL, 0, 0, false};
		if (!fn(&size, msg))
			return false;
		pbw_varint(w, size.n);
		w->n += size.n;
		return true;
	}
	at = w->n;
	pbw_byte(w, 0);
	if (!fn(w, msg))
		return false;
	if (w->over)
		return true; /* the record does not fit: the caller gets 0 */
	len = w->n - at - 1;
	for (size_t v = len; v >= 0x80; v >>= 7)
		extra++;
	if (extra > 0) {
		if (w->n + extra > w->cap) {
			w->over = true;
			w->n += extra;
			return true;
		}
		memmove(w->p + at + 1 + extra, w->p + at + 1, len);
	}
	for (size_t v = len, i = 0;; i++) {
		w->p[at + i] = (uint8_t)(v >= 0x80 ? (v | 0x80) : v);
		if (v < 0x80)
			break;
		v >>= 7;
	}
	w->n += extra;
	return true;
}

static bool enc_reason(struct pbw *w, const void *m)
{
	const Rete__StatusReason *r = m;
	if (r->base.n_unknown_fields != 0)
		return false;
	pbw_str(w, 1, r->code);
	pbw_str(w, 2, r->text);
	return true;
}

static bool enc_outcome(struct pbw *w, const void *m)
{
	const Rete__Outcome *o = m;
	if (o->base.n_unknown_fields != 0)
		return false;
	pbw_enum(w, 1, o->result);
	pbw_enum(w, 2, o->reason);
	pbw_str(w, 3, o->text);
	return true;
}

static bool enc_change(struct pbw *w, const void *m)
{
	const Rete__StatusChange *c = m;
	if (c->base.n_unknown_fields != 0)
		return false;
	pbw_u64(w, 1, c->index);
	pbw_u64(w, 2, (uint64_t)c->at);
	pbw_enum(w, 3, c->status);
	pbw_str(w, 4, c->business_status);
	pbw_str(w, 5, c->by);
	return c->status_reason == NULL || pbw_msg(w, 6, enc_reason, c->status_reason);
}

size_t store_referral_encode(const Rete__ReferralInfo *r, uint8_t *buf, size_t cap)
{
	struct pbw w = {buf, 0, cap, false};

	if (r->base.n_unknown_fields != 0)
		return 0;
	pbw_str(&w, 1, r->id);
	pbw_str(&w, 2, r->requester);
	pbw_str(&w, 3, r->performer);
	pbw_str(&w, 4, r->service);
	pbw_enum(&w, 5, r->priority);
	pbw_str(&w, 6, r->case_id);
	pbw_enum(&w, 7, r->age_band);
	pbw_enum(&w, 8, r->status);
	pbw_str(&w, 9, r->business_status);
	if (r->status_reason != NULL && !pbw_msg(&w, 10, enc_reason, r->status_reason))
		return 0;
	if (r->outcome != NULL && !pbw_msg(&w, 11, enc_outcome, r->outcome))
		return 0;
	pbw_str(&w, 12, r->previous_referral);
	pbw_u64(&w, 13, r->index);
	pbw_u64(&w, 14, (uint64_t)r->requested_at);
	pbw_u64(&w, 15, (uint64_t)r->received_at);
	pbw_u64(&w, 16, (uint64_t)r->accepted_at);
	pbw_u64(&w, 17, (uint64_t)r->rejected_at);
	pbw_u64(&w, 18, (uint64_t)r->started_at);
	pbw_u64(&w, 19, (uint64_t)r->completed_at);
	pbw_u64(&w, 20, (uint64_t)r->closed_at);
	pbw_u64(&w, 21, (uint64_t)r->due_at);
	pbw_u64(&w, 22, r->overdue ? 1 : 0);
	pbw_u64(&w, 23, r->last_index);
	for (size_t i = 0; i < r->n_history; i++)
		if (r->history[i] == NULL || !pbw_msg(&w, 24, enc_change, r->history[i]))
			return 0;
	return w.over || w.n > cap ? 0 : w.n;
}

size_t store_log_entry_encode(uint64_t index, int64_t logged_at, const uint8_t *sm, size_t smlen,
			      uint8_t *buf, size_t cap)
{
	struct pbw w = {buf, 0, cap, false};

	pbw_u64(&w, 1, index);
	pbw_u64(&w, 2, (uint64_t)logged_at);
	pbw_bytes(&w, 3, sm, smlen);
	return w.over || (buf != NULL && w.n > cap) ? 0 : w.n;
}

/* write_plan stores p_nr and keeps `due` in step. */
static rete_err write_plan(struct batch *b, struct plan *p)
{
	rete_store *s = b->b_store;
	uint8_t key[KEY_MAX], buf[2048];
	size_t len, klen;
	MDB_val k, v;
	int rc;
	rete_err err;

	if (due_active(p->p_old) && (!due_active(&p->p_nr) || p->p_old->due_at != p->p_nr.due_at)) {
		klen = due_key(key, p->p_old);
		if ((err = del(b, s->st_due, key, klen, NULL, "store: updating due times")) !=
		    RETE_OK)
			return err;
	}
	if (due_active(&p->p_nr) && !(due_active(p->p_old) && p->p_old->due_at == p->p_nr.due_at)) {
		klen = due_key(key, &p->p_nr);
		if ((err = cput(b, CUR_DUE, s->st_due, key, klen, "", 0, 0,
				"store: updating due times")) != RETE_OK)
			return err;
	}
	k.mv_data = p->p_nr.id;
	k.mv_size = strlen(p->p_nr.id);
	/* most records fit the buffer; a long history, or a record with
	 * fields this version does not know, is packed by protobuf-c */
	len = store_referral_encode(&p->p_nr, buf, sizeof(buf));
	if (len > 0) {
		v.mv_data = buf;
		v.mv_size = len;
		if ((rc = put_at(b, CUR_REFERRALS, s->st_referrals, &k, &v, 0)) != 0)
			return lmdb_fail(b, rc, "store: writing a referral");
		return RETE_OK;
	}
	v.mv_data = NULL;
	v.mv_size = rete__referral_info__get_packed_size(&p->p_nr);
	if ((rc = put_at(b, CUR_REFERRALS, s->st_referrals, &k, &v, MDB_RESERVE)) != 0)
		return lmdb_fail(b, rc, "store: writing a referral");
	rete__referral_info__pack(&p->p_nr, v.mv_data);
	return RETE_OK;
}

/* ---- appending ------------------------------------------------------------ */

/* batch_node_get is the rete_merkle_get_node callback of an append (ctx =
 * the batch): the node the batch wrote last at that level when it is the
 * one asked for (the same bytes LMDB holds for it in this transaction),
 * else store_node_get through the level's cursor, which the last append
 * left beside the sibling it needs. */
static rete_err batch_node_get(void *ctx, unsigned level, uint64_t index,
			       uint8_t out[RETE_MERKLE_HASH])
{
	struct batch *b = ctx;
	uint8_t key[STORE_NODE_KEY];
	MDB_val k = {sizeof(key), key}, v;
	int rc;

	if (level < 64 && (b->b_last_ok >> level & 1) != 0 &&
	    b->b_last->bl_index[level] == index) {
		memcpy(out, b->b_last->bl_hash[level], RETE_MERKLE_HASH);
		return RETE_OK;
	}
	node_key(key, level, index);
	rc = get_at(b, node_cursor(level), b->b_store->st_nodes, &k, &v);
	return node_value(rc, &v, out);
}

/* write_entry writes LogEntry `index` and its Merkle nodes; leaf gets its
 * leaf hash (op's expected one when the bytes are the ones it expects: see
 * store.h). */
static rete_err write_entry(struct batch *b, const rete_store_op *op, uint64_t index,
			    int64_t logged_at, const uint8_t *sm, size_t smlen,
			    uint8_t leaf[RETE_MERKLE_HASH])
{
	rete_store *s = b->b_store;
	rete_merkle_node nodes[RETE_MERKLE_MAX_PROOF];
	uint8_t key[STORE_NODE_KEY];
	size_t n = 0;
	MDB_val k, v;
	rete_err err;
	int rc;

	be64_put(key, index);
	k.mv_data = key;
	k.mv_size = 8;
	v.mv_data = NULL;
	/* the bytes rete__log_entry__pack gives, without its two walks of
	 * the descriptors (store_log_entry_encode) */
	v.mv_size = store_log_entry_encode(index, logged_at, sm, smlen, NULL, 0);
	/* Keys only grow: MDB_APPEND also catches a log that is not where
	 * meta says it ends. */
	rc = put_at(b, CUR_ENTRIES, s->st_entries, &k, &v, MDB_RESERVE | MDB_APPEND);
	if (rc == MDB_KEYEXIST)
		return rete_msg_set(b->b_msg, RETE_ECORRUPT,
				    "store %s: entry %llu already exists though the log size "
				    "says %llu",
				    s->st_dir, (unsigned long long)index,
				    (unsigned long long)index);
	if (rc != 0)
		return lmdb_fail(b, rc, "store: writing a log entry");
	store_log_entry_encode(index, logged_at, sm, smlen, v.mv_data, v.mv_size);
	if (op->in.expect_entry != NULL && op->in.expect_leaf != NULL &&
	    op->in.expect_len == v.mv_size &&
	    memcmp(op->in.expect_entry, v.mv_data, v.mv_size) == 0)
		memcpy(leaf, op->in.expect_leaf, RETE_MERKLE_HASH);
	else
		rete_merkle_leaf_hash(leaf, v.mv_data, v.mv_size);

	node_key(key, 0, index);
	if ((err = cput(b, node_cursor(0), s->st_nodes, key, sizeof(key), leaf, RETE_MERKLE_HASH, 0,
			"store: writing a leaf hash")) != RETE_OK)
		return err;
	stage_node(b, 0, index, leaf); /* the proofs' first sibling is a leaf */
	err = rete_merkle_complete_nodes(index, leaf, batch_node_get, b, nodes, &n);
	if (err != RETE_OK)
		return rete_msg_set(b->b_msg, err,
				    "store %s: a Merkle node needed by entry %llu is missing",
				    s->st_dir, (unsigned long long)index);
	for (size_t i = 0; i < n; i++) {
		node_key(key, nodes[i].level, nodes[i].index);
		if ((err = cput(b, node_cursor(nodes[i].level), s->st_nodes, key, sizeof(key),
				nodes[i].hash, RETE_MERKLE_HASH, 0,
				"store: writing a Merkle node")) != RETE_OK)
			return err;
		stage_node(b, nodes[i].level, nodes[i].index, nodes[i].hash);
	}
	return RETE_OK;
}

/* key_fits checks the LMDB key limits of an append before anything is
 * written. */
static bool key_fits(rete_store_op *op, const Rete__Message *msg)
{
	size_t sl = strlen(msg->sender), il = strlen(msg->id);
	size_t rl = strlen(S(msg->recipient)), cl = strlen(S(msg->case_id));

	if (sl + 1 + il > KEY_MAX) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "message id is %zu bytes long; sender and id together may have at most "
		       "%d bytes",
		       il, KEY_MAX - 1);
		return false;
	}
	if (rl > 255) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "recipient is %zu bytes long; at most 255 are accepted", rl);
		return false;
	}
	if (cl + 9 > KEY_MAX) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "case id is %zu bytes long; at most %d are accepted", cl, KEY_MAX - 9);
		return false;
	}
	return true;
}

/* wire_varint reads a varint of at most 10 bytes at *p (< end). */
static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t c = *(*p)++;
		*v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0)
			return true;
	}
	return false;
}

/* signed_message_bytes finds the `message` field (1) of SignedMessage
 * bytes without unpacking them (protobuf-c would copy both fields into
 * new memory). Only the plainest encoding is taken: fields 1 and 2, each
 * once, length-delimited and in bounds, a non-empty message; anything else
 * returns false and the caller unpacks with protobuf-c as before. */
static bool signed_message_bytes(const uint8_t *data, size_t len, const uint8_t **msg,
				 size_t *msg_len)
{
	const uint8_t *p = data, *end = data + len;
	bool seen[3] = {false, false, false};

	*msg = NULL;
	*msg_len = 0;
	while (p < end) {
		uint64_t tag, n;
		if (!wire_varint(&p, end, &tag) || (tag != 0x0a && tag != 0x12) ||
		    !wire_varint(&p, end, &n) || n > (uint64_t)(end - p))
			return false;
		unsigned field = (unsigned)(tag >> 3);
		if (seen[field])
			return false;
		seen[field] = true;
		if (field == 1) {
			*msg = p;
			*msg_len = (size_t)n;
		}
		p += n;
	}
	return *msg != NULL && *msg_len > 0;
}

static rete_err do_append(struct batch *b, rete_store_op *op)
{
	rete_store *s = b->b_store;
	Rete__SignedMessage *sm = NULL;
	const uint8_t *mbytes = NULL;
	size_t mlen = 0;
	Rete__Message *own_msg = NULL;
	const Rete__Message *msg;
	struct plan p;
	uint8_t sha[RETE_HASH_LEN], key[KEY_MAX + 1], val[8 + RETE_HASH_LEN + 8];
	uint8_t leaf[RETE_MERKLE_HASH];
	size_t sl, il, klen;
	uint64_t index = b->b_size;
	MDB_val k, v;
	rete_err err = RETE_OK;
	int rc;

	memset(&p, 0, sizeof(p));
	/* The Message's bytes (hashed for the dedup record): found in place
	 * when the caller gives the decoded Message (it decoded the
	 * SignedMessage strictly), else by protobuf-c, which decides what is
	 * malformed. */
	if (op->in.msg == NULL || op->in.signed_message == NULL ||
	    !signed_message_bytes(op->in.signed_message, op->in.len, &mbytes, &mlen)) {
		if (op->in.signed_message == NULL || op->in.len == 0 ||
		    (sm = rete__signed_message__unpack(NULL, op->in.len, op->in.signed_message)) ==
			NULL ||
		    sm->message.len == 0) {
			refuse(op, RETE__ERROR_CODE__ERROR_CODE_MALFORMED,
			       "the signed message (%zu bytes) does not decode as a "
			       "SignedMessage",
			       op->in.len);
			goto out;
		}
		mbytes = sm->message.data;
		mlen = sm->message.len;
	}
	msg = op->in.msg;
	if (msg == NULL) {
		own_msg = rete__message__unpack(NULL, mlen, mbytes);
		if (own_msg == NULL) {
			refuse(op, RETE__ERROR_CODE__ERROR_CODE_MALFORMED,
			       "the signed bytes (%zu) do not decode as a Message", mlen);
			goto out;
		}
		msg = own_msg;
	}
	if (*S(msg->sender) == '\0' || *S(msg->id) == '\0') {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "message has no %s; every message needs a sender and an id",
		       *S(msg->sender) == '\0' ? "sender" : "id");
		goto out;
	}
	if (msg->body_case == RETE__MESSAGE__BODY__NOT_SET) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "message %s has no body; accepted: referral, update, note, delivery, "
		       "notice, directory, epoch",
		       msg->id);
		goto out;
	}
	if (!key_fits(op, msg))
		goto out;

	/* dedup on (sender, id) -> SHA-256 of the Message bytes */
	rete_merkle_sha256(sha, mbytes, mlen);
	sl = strlen(msg->sender);
	il = strlen(msg->id);
	memcpy(key, msg->sender, sl);
	key[sl] = '\0';
	memcpy(key + sl + 1, msg->id, il);
	klen = sl + 1 + il;
	k.mv_data = key;
	k.mv_size = klen;
	rc = get_at(b, CUR_MSGIDS, s->st_msgids, &k, &v);
	if (rc == 0) {
		const uint8_t *pv = v.mv_data;
		struct store_node_ctx c = {s, b->b_txn};
		if (v.mv_size != sizeof(val)) {
			err = rete_msg_set(b->b_msg, RETE_ECORRUPT,
					   "store %s: malformed message id record", s->st_dir);
			goto out;
		}
		op->index = be64_get(pv);
		op->logged_at = (int64_t)be64_get(pv + 8 + RETE_HASH_LEN);
		if (sodium_memcmp(pv + 8, sha, RETE_HASH_LEN) != 0) {
			/* Not "send the very same bytes": a sender that did just
			 * that, with the same content signed anew (an agent whose
			 * data folder was put back from an older copy), reads it
			 * as a contradiction. */
			refuse(op, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED,
			       "message id '%s' of %s is already the id of other bytes: log "
			       "entry %llu holds it; a new message needs a new id. Only that "
			       "entry's own signed message, sent again byte for byte, gets its "
			       "receipt; the same content signed anew is other bytes (a "
			       "rete-agent signs anew a file it has no record of having sent, "
			       "as when its data folder was put back from an older copy: that "
			       "entry's receipt is then in its sent/; docs/operations.md, "
			       "\"Restoring an agent's data folder\")",
			       msg->id, msg->sender, (unsigned long long)op->index);
			goto out;
		}
		if (store_node_get(&c, 0, op->index, op->leaf_hash) != RETE_OK) {
			err = rete_msg_set(b->b_msg, RETE_ECORRUPT,
					   "store %s: no leaf hash for entry %llu", s->st_dir,
					   (unsigned long long)op->index);
			goto out;
		}
		op->status = RETE_STORE_DUPLICATE;
		goto out;
	}
	if (rc != MDB_NOTFOUND) {
		err = lmdb_fail(b, rc, "store: reading the message id index");
		goto out;
	}

	/* the projection: every check before the first write */
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		err = plan_referral(b, op, msg, index, &p);
		break;
	case RETE__MESSAGE__BODY_UPDATE:
		err = plan_update(b, op, msg, index, &p);
		break;
	case RETE__MESSAGE__BODY_NOTE:
		err = plan_note(b, op, msg);
		break;
	case RETE__MESSAGE__BODY_DELIVERY:
		err = plan_delivery(b, op, msg, index, &p);
		break;
	case RETE__MESSAGE__BODY_NOTICE:
		err = plan_notice(b, op, msg, index, &p);
		break;
	case RETE__MESSAGE__BODY_EPOCH:
		err = check_epoch(b, op, msg);
		break;
	default:
		break;
	}
	if (err != RETE_OK || op->status == RETE_STORE_REFUSED)
		goto out;

	/* writes */
	if ((err = write_entry(b, op, index, op->in.logged_at, op->in.signed_message, op->in.len,
			       leaf)) != RETE_OK)
		goto out;
	be64_put(val, index);
	memcpy(val + 8, sha, RETE_HASH_LEN);
	be64_put(val + 8 + RETE_HASH_LEN, (uint64_t)op->in.logged_at);
	if ((err = cput(b, CUR_MSGIDS, s->st_msgids, key, klen, val, sizeof(val), 0,
			"store: writing the message id index")) != RETE_OK)
		goto out;
	if (*S(msg->recipient) != '\0') {
		size_t rl = strlen(msg->recipient);
		uint8_t at[8];
		memcpy(key, msg->recipient, rl);
		key[rl] = '\0';
		be64_put(key + rl + 1, index);
		be64_put(at, (uint64_t)op->in.logged_at);
		if ((err = cput(b, CUR_QUEUE, s->st_queue, key, rl + 9, at, 8, 0,
				"store: queueing")) != RETE_OK)
			goto out;
	}
	if (op->in.sealed != NULL && op->in.sealed_len > 0) {
		MDB_val bk = {8, key}, bv = {op->in.sealed_len, (void *)op->in.sealed};
		be64_put(key, index);
		/* Blob keys are log indexes: a new entry's is above every
		 * one kept, so it goes at the end without a search. A store
		 * where it is not (damaged) gets the plain put, as before. */
		rc = put_at(b, CUR_BLOBS, s->st_blobs, &bk, &bv, MDB_APPEND);
		if (rc == MDB_KEYEXIST)
			rc = put_at(b, CUR_BLOBS, s->st_blobs, &bk, &bv, 0);
		if (rc != 0) {
			err = lmdb_fail(b, rc, "store: keeping the sealed part");
			goto out;
		}
	}
	if (*S(msg->case_id) != '\0') {
		size_t cl = strlen(msg->case_id);
		memcpy(key, msg->case_id, cl);
		key[cl] = '\0';
		be64_put(key + cl + 1, index);
		if ((err = cput(b, CUR_CASES, s->st_cases, key, cl + 9, "", 0, 0,
				"store: writing the case index")) != RETE_OK)
			goto out;
	}
	if (p.p_write && (err = write_plan(b, &p)) != RETE_OK)
		goto out;
	if (index == 0 &&
	    (err = put(b, s->st_meta, META_FIRST, strlen(META_FIRST), leaf, RETE_MERKLE_HASH, 0,
		       "store: recording the first entry")) != RETE_OK)
		goto out;
	if (msg->body_case == RETE__MESSAGE__BODY_EPOCH) {
		uint8_t e[4] = {(uint8_t)(msg->epoch->epoch >> 24),
				(uint8_t)(msg->epoch->epoch >> 16),
				(uint8_t)(msg->epoch->epoch >> 8), (uint8_t)msg->epoch->epoch};
		if ((err = put(b, s->st_meta, META_EPOCH, strlen(META_EPOCH), e, 4, 0,
			       "store: recording the log epoch")) != RETE_OK)
			goto out;
		/* a restored backup copy stops being one with the entry that
		 * declares its restore, in the same commit (store_identity.h) */
		if ((err = del(b, s->st_meta, META_COPY, strlen(META_COPY), NULL,
			       "store: removing the copy mark")) != RETE_OK)
			goto out;
	}
	if (msg->body_case == RETE__MESSAGE__BODY_DIRECTORY) {
		be64_put(val, index);
		b->b_dir_ok = false; /* a new Directory is in force */
		if ((err = put(b, s->st_meta, META_DIRECTORY, strlen(META_DIRECTORY), val, 8, 0,
			       "store: recording the directory in force")) != RETE_OK)
			goto out;
	}
	b->b_size = index + 1;
	op->status = RETE_STORE_ACCEPTED;
	op->index = index;
	op->logged_at = op->in.logged_at;
	memcpy(op->leaf_hash, leaf, RETE_MERKLE_HASH);
out:
	plan_free(&p);
	if (own_msg != NULL)
		rete__message__free_unpacked(own_msg, NULL);
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
	return err;
}

static rete_err do_remove(struct batch *b, rete_store_op *op)
{
	rete_store *s = b->b_store;
	uint8_t key[256 + 8];
	size_t rl = strlen(S(op->in.recipient));
	bool present = false;
	rete_err err;

	if (rl == 0 || rl > 255) {
		refuse(op, RETE__ERROR_CODE__ERROR_CODE_INVALID,
		       "%s of entry %llu: the recipient is %s",
		       op->kind == RETE_STORE_OP_ACK ? "ack" : "expiry",
		       (unsigned long long)op->in.index, rl == 0 ? "empty" : "too long");
		return RETE_OK;
	}
	memcpy(key, op->in.recipient, rl);
	key[rl] = '\0';
	be64_put(key + rl + 1, op->in.index);
	if ((err = del(b, s->st_queue, key, rl + 9, &present, "store: removing a queue record")) !=
	    RETE_OK)
		return err;
	be64_put(key, op->in.index);
	if ((err = del(b, s->st_blobs, key, 8, NULL, "store: removing a sealed part")) != RETE_OK)
		return err;
	op->status = RETE_STORE_DONE;
	op->index = op->in.index;
	op->was_present = present;
	return RETE_OK;
}

static void op_reset(rete_store_op *op)
{
	op->status = 0;
	op->index = 0;
	memset(op->leaf_hash, 0, sizeof(op->leaf_hash));
	op->logged_at = 0;
	op->error = RETE__ERROR_CODE__ERROR_CODE_UNSPECIFIED;
	op->error_text[0] = '\0';
	op->was_present = false;
}

/* ---- the write loop -------------------------------------------------------- */

typedef rete_err (*write_fn)(struct batch *b, void *ctx);

/* store_write runs fn in a write transaction and commits it durably. On a
 * full map it aborts, grows the map and runs fn again from the start; after
 * a failed commit it reopens the environment (LMDB may have marked it
 * unusable) and reports the failure. */
/* store_disk_nearly_full: LMDB reports a short write (pwrite writing fewer
 * bytes than asked, which is how a full file system often answers) as EIO,
 * not ENOSPC. When the store's file system has (almost) no room left, that
 * EIO is a full disk, and the caller must hear "storage full". */
bool store_disk_nearly_full(const rete_store *s)
{
	struct statvfs sv;
	if (statvfs(s->st_dir, &sv) != 0)
		return false;
	uint64_t blocks = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
	return blocks * (uint64_t)sv.f_frsize < (1u << 20);
}

/* durable_hook: a journaled write's caller, told once its batch is
 * durable in the journal, before LMDB commits it (store_journal.c). */
struct durable_hook {
	void (*fn)(struct batch *b, void *ctx);
	void *ctx;
};

static rete_err store_write_ex(rete_store *s, write_fn fn, void *ctx,
			       const struct durable_hook *hook, rete_msg *m)
{
	rete_err err = RETE_OK;
	struct batch b;
	struct batch_last last;
	int rc;

	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store given");
	if (s->st_flags & RETE_STORE_RDONLY)
		return rete_msg_set(m, RETE_EPERM, "store %s is open read-only", s->st_dir);
	/* without the journal's files (not opened for it), never journaled */
	bool journal = s->st_jfd[0] >= 0, journaled = journal && hook != NULL;
	pthread_mutex_lock(&s->st_write);
	for (int attempt = 0;; attempt++) {
		bool reopen = false, durable = false;
		uint64_t seq = 0, start = 0;

		/* a batch receipted from the journal whose LMDB commit failed
		 * goes in first */
		if ((err = store_journal_pending(s, m)) != RETE_OK)
			break;
		memset(&b, 0, sizeof(b));
		b.b_store = s;
		b.b_msg = m;
		b.b_last = &last;
		if (journaled) {
			store_redo_reset(&s->st_redo);
			b.b_redo = &s->st_redo;
		}
		pthread_rwlock_rdlock(&s->st_grow);
		if (s->st_env == NULL) {
			pthread_rwlock_unlock(&s->st_grow);
			err = rete_msg_set(m, RETE_ESTORE,
					   "store %s: the environment could not be reopened after "
					   "a failed commit; restart the program",
					   s->st_dir);
			break;
		}
		rc = mdb_txn_begin(s->st_env, NULL, 0, &b.b_txn);
		if (rc != 0) {
			pthread_rwlock_unlock(&s->st_grow);
			err = store_lmdb_err(m, rc, "store: beginning a write transaction");
			if (rc == MDB_PANIC)
				reopen = true;
			else
				break;
		} else {
			err = store_log_size(s, b.b_txn, &b.b_size, m);
			start = b.b_size;
			if (err == RETE_OK)
				err = store_seq(s, b.b_txn, &seq, m);
			if (err == RETE_OK)
				err = fn(&b, ctx);
			if (err == RETE_OK && b.b_changed) {
				/* A transaction that wrote nothing (a batch of
				 * duplicates) stays free: LMDB skips its sync. */
				uint8_t val[8];
				be64_put(val, ++seq);
				err = put(&b, s->st_meta, META_SEQ, strlen(META_SEQ), val, 8, 0,
					  "store: writing the commit sequence");
			}
			cursors_close(&b);
			if (err == RETE_OK && b.b_changed && journaled) {
				/* durable once this returns: the caller may answer */
				err = store_journal_write(s, b.b_txn, &s->st_redo, seq, start,
							  b.b_size, m);
				if (err == RETE_OK) {
					durable = true;
					hook->fn(&b, hook->ctx);
				}
			}
			if (err != RETE_OK) {
				mdb_txn_abort(b.b_txn);
			} else {
				rc = mdb_txn_commit(b.b_txn);
				/* MDB_NOMETASYNC (the journal's): the meta page
				 * of a commit no record covers is flushed here */
				if (rc == 0 && journal && !durable && b.b_changed &&
				    mdb_env_sync(s->st_env, 1) != 0)
					rc = errno ? errno : EIO;
				if (rc == 0) {
					store_seen_raise(s, seq);
				} else if (!durable) {
					b.b_rc = rc;
					if (rc == EIO && store_disk_nearly_full(s))
						rc = ENOSPC;
					err = store_lmdb_err(m, rc, "store: committing");
					reopen = rc != MDB_MAP_FULL;
				} else {
					reopen = rc != MDB_MAP_FULL;
				}
			}
			b.b_txn = NULL;
			pthread_rwlock_unlock(&s->st_grow);
		}
		if (durable && rc != 0) {
			/* receipted from the journal: it goes into LMDB from
			 * there, now or before the next write (a failure is
			 * that write's to say) */
			rete_msg keep;
			if (reopen)
				store_reopen(s, &keep);
			store_journal_failed_commit(s, &keep);
			err = RETE_OK;
			break;
		}
		if (b.b_rc == MDB_MAP_FULL && attempt < 48) {
			rete_err gerr = store_grow(s, m);
			if (gerr != RETE_OK) {
				err = gerr;
				break;
			}
			continue;
		}
		if (reopen) {
			rete_msg keep;
			rete_err rerr;
			if (m != NULL)
				keep = *m;
			rerr = store_reopen(s, NULL);
			if (m != NULL)
				*m = keep;
			if (rerr != RETE_OK)
				rete_msg_prefix(m, "and reopening failed (%s)",
						rete_strerror(rerr));
		}
		break;
	}
	pthread_mutex_unlock(&s->st_write);
	return err;
}

static rete_err store_write(rete_store *s, write_fn fn, void *ctx, rete_msg *m)
{
	return store_write_ex(s, fn, ctx, NULL, m);
}

struct checkpoint_ctx {
	uint64_t size;
	const char *note;
};

static rete_err put_checkpoint(struct batch *b, void *ctx)
{
	struct checkpoint_ctx *c = ctx;
	uint8_t key[8];

	if (c->size > b->b_size)
		return rete_msg_set(b->b_msg, RETE_EINVAL,
				    "store: checkpoint for tree size %llu, but the log has %llu "
				    "entries",
				    (unsigned long long)c->size, (unsigned long long)b->b_size);
	be64_put(key, c->size);
	/* a note of another body for this size (a new epoch's, after a
	 * restore) makes the time-stamp token of the old one meaningless */
	bool dropped;
	int rc = store_timestamp_note_replaced(b->b_store, b->b_txn, c->size, c->note, &dropped);
	if (rc != 0)
		return lmdb_fail(b, rc, "store: dropping the token of a replaced checkpoint");
	if (dropped && b->b_redo != NULL) {
		MDB_val k = {8, key};
		store_redo_add(b->b_redo, b->b_store, 'D', b->b_store->st_timestamps, &k, NULL);
	}
	return put(b, b->b_store->st_checkpoints, key, 8, c->note, strlen(c->note), 0,
		   "store: writing a checkpoint");
}

struct commit_ctx {
	rete_store_op *ops;
	size_t n;
	struct node_stage *stage;	 /* NULL: no memo wanted */
	struct checkpoint_ctx cp;	 /* note NULL: no checkpoint to store */
	const rete_store_parked *parked; /* lists to write with the batch */
	size_t nparked;
};

/* put_parked writes the broker's lists of deliveries set aside in the
 * batch (rete_store_commit_parked, rete_store_parked_put): with put and
 * del, so that a journaled batch's record holds them too. A list of none
 * removes the party's key. */
static rete_err put_parked(struct batch *b, const rete_store_parked *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char key[STORE_PARKED_KEY_MAX];
		size_t klen = store_parked_key(key, l[i].party);
		rete_err err;
		if (l[i].n == 0) {
			err = del(b, b->b_store->st_meta, key, klen, NULL,
				  "store: removing a list of deliveries set aside");
		} else {
			uint8_t *v = malloc(l[i].n * 8);
			if (v == NULL)
				return rete_msg_set(b->b_msg, RETE_ENOMEM, "store: out of memory");
			for (size_t j = 0; j < l[i].n; j++)
				be64_put(v + j * 8, l[i].index[j]);
			err = put(b, b->b_store->st_meta, key, klen, v, l[i].n * 8, 0,
				  "store: writing a list of deliveries set aside");
			free(v);
		}
		if (err != RETE_OK)
			return err;
	}
	return RETE_OK;
}

struct parked_ctx {
	const rete_store_parked *lists;
	size_t n;
};

/* run_parked writes the lists alone (rete_store_parked_put). The commit is
 * counted (meta "seq") even when it only removed lists that were not
 * there, as every lone meta write is. */
static rete_err run_parked(struct batch *b, void *ctx)
{
	const struct parked_ctx *c = ctx;
	rete_err err = put_parked(b, c->lists, c->n);
	if (err == RETE_OK)
		b->b_changed = true;
	return err;
}

rete_err rete_store_parked_put(rete_store *s, const rete_store_parked *lists, size_t n, rete_msg *m)
{
	struct parked_ctx c = {lists, n};
	rete_err err;

	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store given");
	if ((err = store_parked_check(lists, n, m)) != RETE_OK || n == 0)
		return err;
	return store_write(s, run_parked, &c, m);
}

static rete_err run_batch(struct batch *b, void *ctx)
{
	struct commit_ctx *c = ctx;
	rete_store *s = b->b_store;
	uint64_t start = b->b_size;
	uint8_t val[8];
	rete_err err;

	/* an attempt after a grown map starts the nodes again */
	b->b_stage = c->stage;
	if (c->stage != NULL)
		c->stage->ns_n = 0;
	/* the checkpoint first: its size is checked against the log before
	 * this batch */
	if (c->cp.note != NULL && (err = put_checkpoint(b, &c->cp)) != RETE_OK)
		return err;
	for (size_t i = 0; i < c->n; i++) {
		rete_store_op *op = &c->ops[i];
		op_reset(op);
		if (op->kind == RETE_STORE_OP_APPEND)
			err = do_append(b, op);
		else
			err = do_remove(b, op);
		if (err != RETE_OK)
			return err;
	}
	if (c->nparked > 0 && (err = put_parked(b, c->parked, c->nparked)) != RETE_OK)
		return err;
	if (b->b_size != start) {
		be64_put(val, b->b_size);
		return put(b, s->st_meta, META_SIZE, strlen(META_SIZE), val, 8, 0,
			   "store: writing the log size");
	}
	return RETE_OK;
}

/* commit_check refuses ops of unknown kinds. */
static rete_err commit_check(const rete_store_op *ops, size_t n, rete_msg *m)
{
	if (n > 0 && ops == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: commit: no operations given");
	for (size_t i = 0; i < n; i++) {
		if (ops[i].kind != RETE_STORE_OP_APPEND && ops[i].kind != RETE_STORE_OP_ACK &&
		    ops[i].kind != RETE_STORE_OP_EXPIRE)
			return rete_msg_set(m, RETE_EINVAL,
					    "store: commit: operation %zu has kind %d; accepted: "
					    "APPEND (1), ACK (2), EXPIRE (3)",
					    i, (int)ops[i].kind);
	}
	return RETE_OK;
}

rete_err rete_store_commit(rete_store *s, rete_store_op *ops, size_t n, rete_msg *m)
{
	struct commit_ctx c = {ops, n, NULL};
	rete_err err = commit_check(ops, n, m);

	if (err != RETE_OK || n == 0)
		return err;
	return store_write(s, run_batch, &c, m);
}

rete_err rete_store_commit_memo(rete_store *s, rete_store_op *ops, size_t n, rete_merkle_memo *memo,
				rete_msg *m)
{
	return rete_store_commit_checkpoint(s, ops, n, memo, 0, NULL, m);
}

struct durable_ctx {
	struct commit_ctx *c;
	rete_merkle_memo *memo;
	rete_store_durable_fn fn;
	void *ctx;
	bool called;
};

static void stage_to_memo(const struct node_stage *st, rete_merkle_memo *memo)
{
	if (memo == NULL || st->ns_failed)
		return;
	for (size_t i = 0; i < st->ns_n; i++)
		rete_merkle_memo_node(memo, st->ns_node[i].level, st->ns_node[i].index,
				      st->ns_node[i].hash);
}

/* on_durable: the batch is in the journal; its nodes are durable too */
static void on_durable(struct batch *b, void *ctx)
{
	struct durable_ctx *d = ctx;
	struct rete_store_rtxn rt = {b->b_store, b->b_txn};

	if (d->c->stage != NULL)
		stage_to_memo(d->c->stage, d->memo);
	d->called = true;
	d->fn(d->ctx, &rt);
}

rete_err rete_store_commit_durable(rete_store *s, rete_store_op *ops, size_t n,
				   rete_merkle_memo *memo, uint64_t size, const char *note,
				   rete_store_durable_fn fn, void *fn_ctx, bool *called,
				   rete_msg *m)
{
	return rete_store_commit_parked(s, ops, n, memo, size, note, NULL, 0, fn, fn_ctx, called,
					m);
}

rete_err rete_store_commit_parked(rete_store *s, rete_store_op *ops, size_t n,
				  rete_merkle_memo *memo, uint64_t size, const char *note,
				  const rete_store_parked *lists, size_t nlists,
				  rete_store_durable_fn fn, void *fn_ctx, bool *called, rete_msg *m)
{
	struct node_stage stage = {NULL, 0, 0, false};
	struct commit_ctx c = {ops, n, memo != NULL ? &stage : NULL, {size, note}, lists, nlists};
	struct durable_ctx d = {&c, memo, fn, fn_ctx, false};
	struct durable_hook hook = {on_durable, &d};
	rete_err err = commit_check(ops, n, m);

	if (called != NULL)
		*called = false;
	if (err == RETE_OK && note != NULL && *note == '\0')
		err = rete_msg_set(m, RETE_EINVAL, "store: empty checkpoint note");
	if (err == RETE_OK && nlists > 0 && n == 0)
		err = rete_msg_set(m, RETE_EINVAL,
				   "store: lists of deliveries set aside go with a batch: no "
				   "operations given (rete_store_parked_put writes them alone)");
	if (err == RETE_OK)
		err = store_parked_check(lists, nlists, m);
	if (err != RETE_OK || (n == 0 && note == NULL))
		return err;
	err = store_write_ex(s, run_batch, &c, fn != NULL ? &hook : NULL, m);
	/* only a durable commit's nodes: after a failed one, the indexes it
	 * used are written again by the next, with other entries */
	if (err == RETE_OK && !d.called)
		stage_to_memo(&stage, memo);
	if (called != NULL)
		*called = d.called;
	free(stage.ns_node);
	return err;
}

rete_err rete_store_commit_checkpoint(rete_store *s, rete_store_op *ops, size_t n,
				      rete_merkle_memo *memo, uint64_t size, const char *note,
				      rete_msg *m)
{
	return rete_store_commit_durable(s, ops, n, memo, size, note, NULL, NULL, NULL, m);
}

rete_err rete_store_checkpoint_put(rete_store *s, uint64_t size, const char *note, rete_msg *m)
{
	if (note == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: empty checkpoint note");
	return rete_store_commit_checkpoint(s, NULL, 0, NULL, size, note, m);
}

struct meta_ctx {
	const store_meta_kv *kv;
	size_t n;
};

static rete_err put_meta(struct batch *b, void *ctx)
{
	struct meta_ctx *c = ctx;
	rete_err err = RETE_OK;

	for (size_t i = 0; i < c->n && err == RETE_OK; i++)
		err = put(b, b->b_store->st_meta, c->kv[i].key, strlen(c->kv[i].key), c->kv[i].val,
			  c->kv[i].len, 0, "store: writing meta");
	return err;
}

rete_err store_meta_put(rete_store *s, const store_meta_kv *kv, size_t n, rete_msg *m)
{
	struct meta_ctx c = {kv, n};

	return store_write(s, put_meta, &c, m);
}

struct raw_ctx {
	store_raw_fn fn;
	void *ctx;
};

static rete_err run_raw(struct batch *b, void *ctx)
{
	struct raw_ctx *c = ctx;
	int rc = 0;
	rete_err err = c->fn(b->b_store, b->b_txn, b->b_size, c->ctx, &rc, b->b_msg);

	if (rc != 0)
		b->b_rc = rc;
	if (err == RETE_OK)
		b->b_changed = true;
	return err;
}

rete_err store_write_raw(rete_store *s, store_raw_fn fn, void *ctx, rete_msg *m)
{
	struct raw_ctx c = {fn, ctx};

	return store_write(s, run_raw, &c, m);
}

/* ---- the receipts of a commit ----------------------------------------------- */

rete_err rete_store_inclusion_proof_memo(rete_store *s, rete_store_rtxn *rt, rete_merkle_memo *memo,
					 uint64_t index, uint64_t size,
					 uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m)
{
	struct store_node_ctx c = {.nc_store = s};
	uint64_t have;
	bool own;
	rete_err err;

	if ((err = store_rt_get(s, rt, &c.nc_txn, &own, m)) != RETE_OK)
		return err;
	if ((err = store_log_size(s, c.nc_txn, &have, m)) != RETE_OK)
		goto out;
	if (size > have || index >= size) {
		err =
		    rete_msg_set(m, RETE_EINVAL,
				 "store: no inclusion proof for index %llu in tree size %llu (the "
				 "log has %llu entries; need index < size <= %llu)",
				 (unsigned long long)index, (unsigned long long)size,
				 (unsigned long long)have, (unsigned long long)have);
		goto out;
	}
	err = rete_merkle_inclusion_proof_memo(store_node_get, &c, memo, index, size, proof, n);
	if (err == RETE_ECORRUPT)
		err =
		    rete_msg_set(m, err,
				 "store %s: inclusion proof: a Merkle node is missing or malformed "
				 "in 'nodes'",
				 s->st_dir);
	else if (err == RETE_ESTORE)
		err = rete_msg_set(m, err, "store %s: inclusion proof: reading 'nodes' failed",
				   s->st_dir);
out:
	if (own)
		store_txn_done(s, c.nc_txn);
	return err;
}
