/* test_store.c — the LMDB store on real files: appends of real signed
 * messages, roots and proofs against an in-memory tree, dedup, the referral
 * projection through its lifecycle, queues and sealed parts across a
 * reopen, the case index, the schema check, map growth, a read-only reader
 * in another process while the writer appends, hot backup and a full disk. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "duration.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"
#include "store_impl.h"
#include "testutil.h"

#define BROKER "broker.mantova"
#define SOCIAL "social.mantova"
#define CPI    "cpi.mantova"
#define ASST   "asst.mantova"

static const char *party_ids[] = {BROKER, SOCIAL, CPI, ASST};
static rete_seckey *party_keys[4];

static int keys_setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++)
		if (rete_seckey_generate(&party_keys[i], NULL) != RETE_OK)
			return -1;
	return 0;
}

static int keys_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++)
		rete_seckey_free(&party_keys[i]);
	return 0;
}

static const rete_seckey *key_of(const char *id)
{
	for (size_t i = 0; i < 4; i++)
		if (strcmp(party_ids[i], id) == 0)
			return party_keys[i];
	fail_msg("no key for %s", id);
	return NULL;
}

/* sign packs and signs msg with its sender's key. */
static rete_buf sign(const Rete__Message *msg)
{
	rete_buf out = {0};
	rete_msg m = {{0}};
	rete_err e = rete_message_sign(msg, key_of(msg->sender), &out, &m);
	if (e != RETE_OK)
		fail_msg("sign: %s", m.text);
	return out;
}

static void base_msg(Rete__Message *msg, const char *id, const char *sender, const char *recipient,
		     const char *case_id)
{
	rete__message__init(msg);
	msg->id = (char *)id;
	msg->sender = (char *)sender;
	msg->recipient = (char *)(recipient ? recipient : "");
	msg->case_id = (char *)(case_id ? case_id : "");
	msg->created_at = 1700000000000;
	msg->origin = (char *)"rete.test";
}

static rete_buf referral(const char *id, const char *sender, const char *recipient,
			 const char *case_id, Rete__Priority prio)
{
	Rete__Message msg;
	Rete__Referral r = RETE__REFERRAL__INIT;
	base_msg(&msg, id, sender, recipient, case_id);
	r.service = (char *)"employment-orientation";
	r.priority = prio;
	r.reason_code = (char *)"unemployment";
	r.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	return sign(&msg);
}

static rete_buf update(const char *id, const char *sender, const char *recipient,
		       const char *ref_id, Rete__Status st, const char *business, bool with_outcome)
{
	Rete__Message msg;
	Rete__ReferralUpdate u = RETE__REFERRAL_UPDATE__INIT;
	Rete__Outcome o = RETE__OUTCOME__INIT;
	base_msg(&msg, id, sender, recipient, "case-1");
	u.referral_id = (char *)ref_id;
	u.status = st;
	u.business_status = (char *)(business ? business : "");
	if (with_outcome) {
		o.result = RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL;
		o.text = (char *)"placed in a course";
		u.outcome = &o;
	}
	msg.body_case = RETE__MESSAGE__BODY_UPDATE;
	msg.update = &u;
	return sign(&msg);
}

static rete_buf note(const char *id, const char *sender, const char *ref_id)
{
	Rete__Message msg;
	Rete__CaseNote n = RETE__CASE_NOTE__INIT;
	base_msg(&msg, id, sender, "", "case-1");
	n.referral_id = (char *)ref_id;
	n.kind = (char *)"meeting-minutes";
	msg.body_case = RETE__MESSAGE__BODY_NOTE;
	msg.note = &n;
	return sign(&msg);
}

static rete_buf delivery(const char *id, const char *to, uint64_t index, const char *msg_id,
			 const char *ref_id, int64_t at)
{
	Rete__Message msg;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	base_msg(&msg, id, BROKER, to, "");
	d.index = index;
	d.message_id = (char *)msg_id;
	d.referral_id = (char *)ref_id;
	d.delivered_at = at;
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &d;
	return sign(&msg);
}

static rete_buf notice(const char *id, const char *to, Rete__NoticeKind kind, uint64_t index,
		       const char *ref_id)
{
	Rete__Message msg;
	Rete__Notice n = RETE__NOTICE__INIT;
	base_msg(&msg, id, BROKER, to, "");
	n.kind = kind;
	n.index = index;
	n.message_id = (char *)ref_id;
	n.referral_id = (char *)ref_id;
	n.text = (char *)"see the log";
	msg.body_case = RETE__MESSAGE__BODY_NOTICE;
	msg.notice = &n;
	return sign(&msg);
}

static rete_buf directory(const char *id, const char *routine_limit)
{
	Rete__Message msg;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__PriorityLimit l = RETE__PRIORITY_LIMIT__INIT;
	Rete__PriorityLimit *lp = &l;
	base_msg(&msg, id, BROKER, "", "");
	d.serial = 1;
	l.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	l.limit = (char *)routine_limit;
	d.n_limits = 1;
	d.limits = &lp;
	d.time_zone = (char *)"Europe/Rome";
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	return sign(&msg);
}

static rete_store_op append_op(const rete_buf *b, int64_t at)
{
	rete_store_op op;
	memset(&op, 0, sizeof(op));
	op.kind = RETE_STORE_OP_APPEND;
	op.in.signed_message = b->data;
	op.in.len = b->len;
	op.in.logged_at = at;
	return op;
}

/* commit1 commits one append of b (freed) and returns its result. */
static rete_store_op commit1(rete_store *s, rete_buf b, int64_t at)
{
	rete_store_op op = append_op(&b, at);
	rete_msg m = {{0}};
	rete_err e = rete_store_commit(s, &op, 1, &m);
	if (e != RETE_OK)
		fail_msg("commit: %s", m.text);
	rete_buf_free(&b);
	return op;
}

static uint64_t size_of(rete_store *s)
{
	uint64_t n = 0;
	rete_msg m = {{0}};
	if (rete_store_size(s, NULL, &n, &m) != RETE_OK)
		fail_msg("size: %s", m.text);
	return n;
}

static rete_store *open_new(const char *dir, uint64_t map_size)
{
	rete_store *s = NULL;
	rete_store_options o = {map_size, 0};
	rete_msg m = {{0}};
	if (rete_store_open_ex(&s, dir, RETE_STORE_CREATE, &o, &m) != RETE_OK)
		fail_msg("open %s: %s", dir, m.text);
	return s;
}

struct iter_check {
	rete_merkle_mem *t;
	uint64_t n;
	uint64_t bad;
};

static int iter_entry(void *ctx, uint64_t index, const uint8_t *entry, size_t len)
{
	struct iter_check *c = ctx;
	uint8_t leaf[RETE_MERKLE_HASH], want[RETE_MERKLE_HASH];
	rete_merkle_leaf_hash(leaf, entry, len);
	if (index != c->n || rete_merkle_mem_get(c->t, 0, index, want) != RETE_OK ||
	    memcmp(leaf, want, sizeof(leaf)) != 0)
		c->bad++;
	c->n++;
	return 0;
}

/* check_tree compares the store's roots and proofs at every size with an
 * in-memory tree rebuilt from the stored entry bytes. */
static void check_tree(rete_store *s, uint64_t n, unsigned proof_stride)
{
	rete_merkle_mem t;
	rete_msg m = {{0}};
	uint8_t root[RETE_MERKLE_HASH], want[RETE_MERKLE_HASH], leaf[RETE_MERKLE_HASH];
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	rete_merkle_elem el[RETE_MERKLE_MAX_PROOF];
	size_t pn;

	assert_int_equal(size_of(s), n);
	rete_merkle_mem_init(&t);
	for (uint64_t i = 0; i < n; i++) {
		rete_buf e = {0};
		Rete__LogEntry *le;
		assert_int_equal(rete_store_entry(s, NULL, i, &e, &m), RETE_OK);
		le = rete__log_entry__unpack(NULL, e.len, e.data);
		assert_non_null(le);
		assert_int_equal(le->index, i);
		rete__log_entry__free_unpacked(le, NULL);
		rete_merkle_leaf_hash(leaf, e.data, e.len);
		rete_buf_free(&e);
		assert_int_equal(rete_store_leaf_hash(s, NULL, i, root, &m), RETE_OK);
		assert_memory_equal(root, leaf, RETE_MERKLE_HASH);
		assert_int_equal(rete_merkle_mem_append(&t, leaf), RETE_OK);
	}
	{
		struct iter_check ic = {&t, 0, 0};
		assert_int_equal(rete_store_entries_iter(s, NULL, 0, n + 5, iter_entry, &ic, &m),
				 RETE_OK);
		assert_int_equal(ic.n, n);
		assert_int_equal(ic.bad, 0);
		if (n >= 2) {
			memset(&ic, 0, sizeof(ic));
			ic.t = &t;
			ic.n = 1;
			assert_int_equal(
			    rete_store_entries_iter(s, NULL, 1, 2, iter_entry, &ic, &m), RETE_OK);
			assert_int_equal(ic.n, 2);
		}
	}
	/* every complete subtree is stored, and nothing beyond */
	for (unsigned lv = 0; lv < 64 && (n >> lv) > 0; lv++) {
		uint64_t cnt = n >> lv;
		for (uint64_t i = 0; i < cnt; i += 1 + cnt / 8) {
			assert_int_equal(rete_store_node(s, NULL, lv, i, root, &m), RETE_OK);
			assert_int_equal(rete_merkle_mem_get(&t, lv, i, want), RETE_OK);
			assert_memory_equal(root, want, RETE_MERKLE_HASH);
		}
		assert_int_equal(rete_store_node(s, NULL, lv, cnt, root, &m), RETE_ENOENT);
	}
	for (uint64_t sz = 0; sz <= n; sz++) {
		assert_int_equal(rete_store_root(s, NULL, sz, root, &m), RETE_OK);
		assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &t, sz, want), RETE_OK);
		assert_memory_equal(root, want, RETE_MERKLE_HASH);
	}
	for (uint64_t sz = 1; sz <= n; sz += proof_stride) {
		uint8_t r2[RETE_MERKLE_HASH];
		rete_store_root(s, NULL, sz, r2, &m);
		for (uint64_t i = 0; i < sz; i += proof_stride) {
			assert_int_equal(rete_store_inclusion_proof(s, NULL, i, sz, proof, &pn, &m),
					 RETE_OK);
			for (size_t k = 0; k < pn; k++)
				el[k] = (rete_merkle_elem){proof[k], RETE_MERKLE_HASH};
			rete_store_leaf_hash(s, NULL, i, leaf, &m);
			assert_int_equal(
			    rete_merkle_verify_inclusion(i, sz, leaf, 32, el, pn, r2, 32, &m),
			    RETE_OK);
			/* a wrong leaf must not verify */
			leaf[0] ^= 1;
			assert_int_equal(
			    rete_merkle_verify_inclusion(i, sz, leaf, 32, el, pn, r2, 32, NULL),
			    RETE_EPROOF);
		}
		for (uint64_t s1 = 1; s1 <= sz; s1 += proof_stride) {
			uint8_t r1[RETE_MERKLE_HASH];
			rete_store_root(s, NULL, s1, r1, &m);
			assert_int_equal(
			    rete_store_consistency_proof(s, NULL, s1, sz, proof, &pn, &m), RETE_OK);
			for (size_t k = 0; k < pn; k++)
				el[k] = (rete_merkle_elem){proof[k], RETE_MERKLE_HASH};
			assert_int_equal(
			    rete_merkle_verify_consistency(s1, sz, r1, 32, r2, 32, el, pn, &m),
			    RETE_OK);
		}
	}
	rete_merkle_mem_free(&t);
}

/* ---- appends, roots, proofs ------------------------------------------------ */

static void test_append_roots_proofs(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	uint64_t next = 0;
	uint8_t root[RETE_MERKLE_HASH];
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	size_t pn;

	assert_int_equal(size_of(s), 0);
	/* empty tree: SHA-256 of nothing */
	assert_int_equal(rete_store_root(s, NULL, 0, root, &m), RETE_OK);
	{
		uint8_t e[32];
		rete_sha256(e, "", 0);
		assert_memory_equal(root, e, 32);
	}
	assert_int_equal(rete_store_root(s, NULL, 1, root, &m), RETE_EINVAL);
	for (size_t batch = 1; batch <= 13; batch++) {
		rete_store_op ops[13];
		rete_buf bufs[13];
		for (size_t i = 0; i < batch; i++) {
			char id[32];
			snprintf(id, sizeof(id), "r-%llu", (unsigned long long)next + i);
			bufs[i] =
			    referral(id, SOCIAL, CPI, "case-x", RETE__PRIORITY__PRIORITY_ROUTINE);
			ops[i] = append_op(&bufs[i], 1700000000000 + (int64_t)(next + i));
			/* half the ops hand the decoded message, half let the store decode */
			if (i % 2 == 1)
				ops[i].in.msg = NULL;
		}
		assert_int_equal(rete_store_commit(s, ops, batch, &m), RETE_OK);
		for (size_t i = 0; i < batch; i++) {
			rete_buf e = {0};
			Rete__LogEntry *le;
			uint8_t leaf[32];
			assert_int_equal(ops[i].status, RETE_STORE_ACCEPTED);
			assert_int_equal(ops[i].index, next + i);
			assert_int_equal(rete_store_entry(s, NULL, next + i, &e, &m), RETE_OK);
			le = rete__log_entry__unpack(NULL, e.len, e.data);
			assert_non_null(le);
			assert_int_equal(le->logged_at, 1700000000000 + (int64_t)(next + i));
			assert_int_equal(le->signed_message.len, bufs[i].len);
			assert_memory_equal(le->signed_message.data, bufs[i].data, bufs[i].len);
			rete__log_entry__free_unpacked(le, NULL);
			rete_merkle_leaf_hash(leaf, e.data, e.len);
			assert_memory_equal(leaf, ops[i].leaf_hash, 32);
			rete_buf_free(&e);
			rete_buf_free(&bufs[i]);
		}
		next += batch;
		assert_int_equal(size_of(s), next);
	}
	check_tree(s, next, 1);
	/* out of range */
	assert_int_equal(rete_store_inclusion_proof(s, NULL, next, next, proof, &pn, &m),
			 RETE_EINVAL);
	assert_int_equal(rete_store_consistency_proof(s, NULL, 0, next, proof, &pn, &m),
			 RETE_EINVAL);
	assert_int_equal(rete_store_consistency_proof(s, NULL, 2, next + 1, proof, &pn, &m),
			 RETE_EINVAL);
	{
		rete_buf e = {0};
		assert_int_equal(rete_store_entry(s, NULL, next, &e, &m), RETE_ENOENT);
	}
	/* reopened, the same tree */
	rete_store_close(&s);
	assert_null(s);
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_RDONLY, &m), RETE_OK);
	check_tree(s, next, 7);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* An append given the LogEntry bytes it is expected to write and their
 * leaf hash (an auditor's replay) takes that leaf hash when the bytes it
 * builds are these (it compares them instead of hashing them), and hashes
 * its own bytes when they are not: other bytes, another length, or no leaf
 * given. The tree is built from the leaf hash so taken. */
static void test_append_expected_entry(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store-expect");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	rete_buf b[5], e = {0};
	uint8_t right[RETE_MERKLE_HASH], marked[RETE_MERKLE_HASH], other[2048];

	for (int i = 0; i < 5; i++) {
		char id[32];
		snprintf(id, sizeof(id), "x-%d", i);
		b[i] = referral(id, SOCIAL, CPI, "case-x", RETE__PRIORITY__PRIORITY_ROUTINE);
	}
	/* entry 0: the store's own bytes and leaf, learned first */
	rete_store_op op = append_op(&b[0], 1700000000000);
	assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
	assert_int_equal(rete_store_entry(s, NULL, 0, &e, &m), RETE_OK);
	rete_merkle_leaf_hash(right, e.data, e.len);
	assert_memory_equal(op.leaf_hash, right, 32);
	/* entry 1: the very bytes, with a leaf hash marked so that we can
	 * tell it was taken (a replay gives the true one) */
	rete_buf_free(&e);
	op = append_op(&b[1], 1700000000001);
	{
		/* the bytes entry 1 will be: build them as the store does */
		Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
		le.index = 1;
		le.logged_at = 1700000000001;
		le.signed_message.data = b[1].data;
		le.signed_message.len = b[1].len;
		size_t n = rete__log_entry__pack(&le, other);
		rete_merkle_leaf_hash(marked, other, n);
		marked[0] ^= 0xff;
		op.in.expect_entry = other;
		op.in.expect_len = n;
		op.in.expect_leaf = marked;
		assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
		assert_int_equal(op.status, RETE_STORE_ACCEPTED);
		assert_memory_equal(op.leaf_hash, marked, 32);
		uint8_t stored[RETE_MERKLE_HASH];
		assert_int_equal(rete_store_leaf_hash(s, NULL, 1, stored, &m), RETE_OK);
		assert_memory_equal(stored, marked, 32);
		/* entry 2: other bytes of the same length: hashed */
		le.index = 2;
		le.logged_at = 1700000000002;
		le.signed_message.data = b[2].data;
		le.signed_message.len = b[2].len;
		n = rete__log_entry__pack(&le, other);
		rete_merkle_leaf_hash(right, other, n);
		other[n - 1] ^= 1;
		op = append_op(&b[2], 1700000000002);
		op.in.expect_entry = other;
		op.in.expect_len = n;
		op.in.expect_leaf = marked;
		assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
		assert_memory_equal(op.leaf_hash, right, 32);
		/* entry 3: the right bytes but one short: hashed */
		le.index = 3;
		le.logged_at = 1700000000003;
		le.signed_message.data = b[3].data;
		le.signed_message.len = b[3].len;
		n = rete__log_entry__pack(&le, other);
		rete_merkle_leaf_hash(right, other, n);
		op = append_op(&b[3], 1700000000003);
		op.in.expect_entry = other;
		op.in.expect_len = n - 1;
		op.in.expect_leaf = marked;
		assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
		assert_memory_equal(op.leaf_hash, right, 32);
		/* entry 4: the right bytes, no leaf given: hashed */
		le.index = 4;
		le.logged_at = 1700000000004;
		le.signed_message.data = b[4].data;
		le.signed_message.len = b[4].len;
		n = rete__log_entry__pack(&le, other);
		rete_merkle_leaf_hash(right, other, n);
		op = append_op(&b[4], 1700000000004);
		op.in.expect_entry = other;
		op.in.expect_len = n;
		assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
		assert_memory_equal(op.leaf_hash, right, 32);
	}
	for (int i = 0; i < 5; i++)
		rete_buf_free(&b[i]);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- dedup ---------------------------------------------------------------- */

static void test_dedup(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	rete_buf a = referral("dup-1", SOCIAL, CPI, "case-1", RETE__PRIORITY__PRIORITY_ROUTINE);
	rete_buf a2 = {malloc(a.len), a.len};
	rete_buf other = referral("dup-1", SOCIAL, ASST, "case-1", RETE__PRIORITY__PRIORITY_URGENT);
	rete_store_op ops[3], first;
	uint64_t idx;
	int64_t at;
	uint8_t sha[32];

	memcpy(a2.data, a.data, a.len);
	commit1(s, referral("x-0", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE), 5);
	ops[0] = append_op(&a, 1000);
	assert_int_equal(rete_store_commit(s, ops, 1, &m), RETE_OK);
	first = ops[0];
	assert_int_equal(first.status, RETE_STORE_ACCEPTED);
	assert_int_equal(first.index, 1);

	/* the same bytes again, later, and twice in one batch; and other bytes */
	ops[0] = append_op(&a2, 2000);
	ops[1] = append_op(&a, 3000);
	ops[2] = append_op(&other, 4000);
	assert_int_equal(rete_store_commit(s, ops, 3, &m), RETE_OK);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ops[i].status, RETE_STORE_DUPLICATE);
		assert_int_equal(ops[i].index, 1);
		assert_int_equal(ops[i].logged_at, 1000);
		assert_memory_equal(ops[i].leaf_hash, first.leaf_hash, 32);
	}
	assert_int_equal(ops[2].status, RETE_STORE_REFUSED);
	assert_int_equal(ops[2].error, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED);
	assert_non_null(strstr(ops[2].error_text, "dup-1"));
	assert_int_equal(size_of(s), 2);

	/* duplicate in the same batch as the original */
	{
		rete_buf b = referral("dup-2", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE);
		ops[0] = append_op(&b, 5000);
		ops[1] = append_op(&b, 5001);
		assert_int_equal(rete_store_commit(s, ops, 2, &m), RETE_OK);
		assert_int_equal(ops[0].status, RETE_STORE_ACCEPTED);
		assert_int_equal(ops[1].status, RETE_STORE_DUPLICATE);
		assert_int_equal(ops[1].index, ops[0].index);
		assert_int_equal(ops[1].logged_at, 5000);
		rete_buf_free(&b);
	}
	assert_int_equal(size_of(s), 3);
	assert_int_equal(rete_store_msgid(s, NULL, SOCIAL, "dup-1", &idx, sha, &at, &m), RETE_OK);
	assert_int_equal(idx, 1);
	assert_int_equal(at, 1000);
	assert_int_equal(rete_store_msgid(s, NULL, CPI, "dup-1", &idx, sha, &at, &m), RETE_ENOENT);

	/* a second referral with an id already used by another sender */
	{
		rete_store_op r = commit1(
		    s, referral("dup-1", CPI, SOCIAL, "", RETE__PRIORITY__PRIORITY_ROUTINE), 6000);
		assert_int_equal(r.status, RETE_STORE_REFUSED);
		assert_int_equal(r.error, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED);
		/* another agency's referral: the sentence names neither its sender
		 * nor its entry (no party oracle), and says what to do instead */
		if (strstr(r.error_text, SOCIAL) != NULL || strstr(r.error_text, "entry") != NULL)
			fail_msg(
			    "the refusal of cpi's referral 'dup-1' names social's referral: %s",
			    r.error_text);
		assert_non_null(strstr(r.error_text, "dup-1"));
		assert_non_null(strstr(r.error_text, "taken"));
		assert_non_null(strstr(r.error_text, CPI));
	}
	/* garbage bytes are refused, not stored */
	{
		uint8_t junk[5] = {0xff, 0xff, 0xff, 0xff, 0xff};
		rete_store_op j;
		memset(&j, 0, sizeof(j));
		j.kind = RETE_STORE_OP_APPEND;
		j.in.signed_message = junk;
		j.in.len = sizeof(junk);
		assert_int_equal(rete_store_commit(s, &j, 1, &m), RETE_OK);
		assert_int_equal(j.status, RETE_STORE_REFUSED);
		assert_int_equal(j.error, RETE__ERROR_CODE__ERROR_CODE_MALFORMED);
	}
	assert_int_equal(size_of(s), 3);
	check_tree(s, 3, 1);
	rete_buf_free(&a);
	rete_buf_free(&a2);
	rete_buf_free(&other);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- the referral projection ---------------------------------------------- */

static Rete__ReferralInfo *get_ref(rete_store *s, const char *id)
{
	Rete__ReferralInfo *r = NULL;
	rete_msg m = {{0}};
	if (rete_store_referral(s, NULL, id, &r, &m) != RETE_OK)
		fail_msg("referral %s: %s", id, m.text);
	return r;
}

static void test_projection_lifecycle(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	Rete__ReferralInfo *r;
	rete_store_op op;
	uint64_t size;
	const int64_t t0 = 1767600000000; /* 2026-01-05 08:00 UTC, a Monday */
	int64_t due;

	assert_null(rete_store_time_zone(s, NULL)); /* no Directory yet */
	op = commit1(s, directory("dir-1", "5wd"), t0 - 1000);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	{
		uint64_t di;
		rete_buf e = {0};
		char *tz = rete_store_time_zone(s, NULL);
		assert_non_null(tz);
		assert_string_equal(tz, "Europe/Rome");
		free(tz);
		assert_int_equal(rete_store_directory(s, NULL, &di, &e, &m), RETE_OK);
		assert_int_equal(di, 0);
		assert_true(e.len > 0);
		rete_buf_free(&e);
	}
	op = commit1(s, referral("ref-1", SOCIAL, CPI, "case-1", RETE__PRIORITY__PRIORITY_ROUTINE),
		     t0);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	assert_int_equal(op.index, 1);
	r = get_ref(s, "ref-1");
	assert_string_equal(r->requester, SOCIAL);
	assert_string_equal(r->performer, CPI);
	assert_string_equal(r->service, "employment-orientation");
	assert_string_equal(r->case_id, "case-1");
	assert_int_equal(r->status, RETE__STATUS__STATUS_REQUESTED);
	assert_int_equal(r->requested_at, t0);
	assert_int_equal(r->index, 1);
	assert_int_equal(rete_deadline(t0, "5wd", NULL, 0, "Europe/Rome", &due, &m), RETE_OK);
	assert_int_equal(r->due_at, due);
	assert_true(r->due_at >= t0 + 5 * 86400000LL);
	assert_int_equal(r->n_history, 1);
	rete__referral_info__free_unpacked(r, NULL);

	/* refusals leave nothing written */
	size = size_of(s);
	op = commit1(
	    s, update("u-bad", SOCIAL, CPI, "ref-1", RETE__STATUS__STATUS_ACCEPTED, NULL, false),
	    t0 + 1);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE);
	assert_non_null(strstr(op.error_text, "ref-1"));
	/* attack report s12, 7: a third agency's update or note about an
	 * existing referral gets the answer an unknown id gets (code and
	 * sentence, but for the ids it gave): no existence oracle, and no word
	 * of the referral's parties */
	char seen[2][600];
	op = commit1(
	    s, update("u-asst", ASST, CPI, "ref-1", RETE__STATUS__STATUS_CANCELLED, NULL, false),
	    t0 + 1);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	snprintf(seen[0], sizeof(seen[0]), "%d %s", (int)op.error, op.error_text);
	op = commit1(
	    s, update("u-asst", ASST, CPI, "nope!", RETE__STATUS__STATUS_CANCELLED, NULL, false),
	    t0 + 1);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	snprintf(seen[1], sizeof(seen[1]), "%d %s", (int)op.error, op.error_text);
	for (int i = 0; i < 2; i++) { /* the id given, masked */
		char *at = strstr(seen[i], i == 0 ? "'ref-1'" : "'nope!'");
		if (at != NULL)
			memcpy(at, "'#####'", 7);
	}
	if (strcmp(seen[0], seen[1]) != 0)
		fail_msg("an update by a third agency tells an existing referral (%s) from an "
			 "unknown one (%s)",
			 seen[0], seen[1]);
	assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL);
	assert_non_null(strstr(op.error_text, "check the referral id"));
	op = commit1(
	    s, update("u-unk", CPI, SOCIAL, "nope", RETE__STATUS__STATUS_ACCEPTED, NULL, false),
	    t0 + 1);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL);
	op = commit1(s, note("n-unk", CPI, "nope"), t0 + 1);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL);
	op = commit1(s, note("n-asst", ASST, "ref-1"), t0 + 1);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL);
	assert_int_equal(size_of(s), size);
	assert_int_equal(rete_store_msgid(s, NULL, SOCIAL, "u-bad", NULL, NULL, NULL, &m),
			 RETE_ENOENT);
	r = get_ref(s, "ref-1");
	assert_int_equal(r->status, RETE__STATUS__STATUS_REQUESTED);
	assert_int_equal(r->last_index, 1);
	rete__referral_info__free_unpacked(r, NULL);
	{
		/* the refused update queued nothing for cpi: only the referral */
		uint64_t idx[8];
		size_t n;
		assert_int_equal(rete_store_queue_peek(s, NULL, CPI, 0, 8, idx, &n, &m), RETE_OK);
		assert_int_equal(n, 1);
		assert_int_equal(idx[0], 1);
	}

	/* delivered (the broker's access record) -> received */
	op = commit1(s, delivery("d-1", SOCIAL, 1, "ref-1", "ref-1", t0 + 100), t0 + 110);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	r = get_ref(s, "ref-1");
	assert_int_equal(r->status, RETE__STATUS__STATUS_RECEIVED);
	assert_int_equal(r->received_at, t0 + 100);
	rete__referral_info__free_unpacked(r, NULL);

	/* a note by a party of the referral is fine */
	op = commit1(s, note("n-ok", CPI, "ref-1"), t0 + 150);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);

	/* accepted, then in progress with a business status, in one batch */
	{
		rete_buf b1 =
		    update("u-1", CPI, SOCIAL, "ref-1", RETE__STATUS__STATUS_ACCEPTED, NULL, false);
		rete_buf b2 = update("u-2", CPI, SOCIAL, "ref-1", RETE__STATUS__STATUS_IN_PROGRESS,
				     "appointment-booked", false);
		rete_buf b3 = update("u-3", CPI, SOCIAL, "ref-1", RETE__STATUS__STATUS_UNSPECIFIED,
				     "patto-di-servizio-signed", false);
		rete_store_op ops[3] = {append_op(&b1, t0 + 200), append_op(&b2, t0 + 300),
					append_op(&b3, t0 + 400)};
		assert_int_equal(rete_store_commit(s, ops, 3, &m), RETE_OK);
		for (int i = 0; i < 3; i++)
			assert_int_equal(ops[i].status, RETE_STORE_ACCEPTED);
		rete_buf_free(&b1);
		rete_buf_free(&b2);
		rete_buf_free(&b3);
	}
	r = get_ref(s, "ref-1");
	assert_int_equal(r->status, RETE__STATUS__STATUS_IN_PROGRESS);
	assert_int_equal(r->accepted_at, t0 + 200);
	assert_int_equal(r->started_at, t0 + 300);
	assert_string_equal(r->business_status, "patto-di-servizio-signed");
	assert_int_equal(r->closed_at, 0);
	rete__referral_info__free_unpacked(r, NULL);

	/* the requester may not complete it; the performer may */
	op = commit1(
	    s, update("u-4", SOCIAL, CPI, "ref-1", RETE__STATUS__STATUS_COMPLETED, NULL, true),
	    t0 + 450);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE);
	op = commit1(
	    s, update("u-5", CPI, SOCIAL, "ref-1", RETE__STATUS__STATUS_COMPLETED, NULL, true),
	    t0 + 500);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	r = get_ref(s, "ref-1");
	assert_int_equal(r->status, RETE__STATUS__STATUS_COMPLETED);
	assert_int_equal(r->completed_at, t0 + 500);
	assert_int_equal(r->closed_at, t0 + 500);
	assert_string_equal(r->business_status, "");
	assert_non_null(r->outcome);
	assert_int_equal(r->outcome->result, RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL);
	assert_int_equal(r->last_index, op.index);
	/* history: requested, received, accepted, in-progress, in-progress, completed */
	assert_int_equal(r->n_history, 6);
	{
		const Rete__Status want[6] = {
		    RETE__STATUS__STATUS_REQUESTED,   RETE__STATUS__STATUS_RECEIVED,
		    RETE__STATUS__STATUS_ACCEPTED,    RETE__STATUS__STATUS_IN_PROGRESS,
		    RETE__STATUS__STATUS_IN_PROGRESS, RETE__STATUS__STATUS_COMPLETED};
		for (int i = 0; i < 6; i++)
			assert_int_equal(r->history[i]->status, want[i]);
		assert_string_equal(r->history[0]->by, SOCIAL);
		assert_string_equal(r->history[1]->by, BROKER);
		assert_string_equal(r->history[4]->business_status, "patto-di-servizio-signed");
		assert_int_equal(r->history[5]->at, t0 + 500);
	}
	rete__referral_info__free_unpacked(r, NULL);
	/* terminal: cancelling is refused */
	op = commit1(
	    s, update("u-6", SOCIAL, CPI, "ref-1", RETE__STATUS__STATUS_CANCELLED, NULL, false),
	    t0 + 600);
	assert_int_equal(op.status, RETE_STORE_REFUSED);
	assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE);

	/* a referral and its update in one batch */
	{
		rete_buf b1 =
		    referral("ref-2", SOCIAL, ASST, "case-2", RETE__PRIORITY__PRIORITY_ROUTINE);
		rete_buf b2 = update("u-7", SOCIAL, ASST, "ref-2", RETE__STATUS__STATUS_CANCELLED,
				     NULL, false);
		rete_store_op ops[2] = {append_op(&b1, t0 + 700), append_op(&b2, t0 + 701)};
		assert_int_equal(rete_store_commit(s, ops, 2, &m), RETE_OK);
		assert_int_equal(ops[0].status, RETE_STORE_ACCEPTED);
		assert_int_equal(ops[1].status, RETE_STORE_ACCEPTED);
		rete_buf_free(&b1);
		rete_buf_free(&b2);
	}
	r = get_ref(s, "ref-2");
	assert_int_equal(r->status, RETE__STATUS__STATUS_CANCELLED);
	assert_int_equal(r->closed_at, t0 + 701);
	rete__referral_info__free_unpacked(r, NULL);
	assert_int_equal(rete_store_referral(s, NULL, "ref-404", &r, &m), RETE_ENOENT);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

struct collect {
	char ids[16][32];
	size_t n;
};

static int collect_ref(void *ctx, const Rete__ReferralInfo *r)
{
	struct collect *c = ctx;
	if (c->n < 16)
		snprintf(c->ids[c->n++], 32, "%s", r->id);
	return 0;
}

static void test_overdue_and_expiry(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	rete_store_op op;
	struct collect c;
	Rete__ReferralInfo *r;
	const int64_t t0 = 1767600000000;

	/* no directory yet: no due time */
	commit1(s, referral("early", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE), t0);
	r = get_ref(s, "early");
	assert_int_equal(r->due_at, 0);
	rete__referral_info__free_unpacked(r, NULL);
	commit1(s, directory("dir-1", "2h"), t0);
	commit1(s, referral("late", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE), t0 + 1);
	commit1(s, referral("later", SOCIAL, ASST, "", RETE__PRIORITY__PRIORITY_ROUTINE), t0 + 2);
	/* no limit for urgent in this directory */
	commit1(s, referral("urgent", SOCIAL, ASST, "", RETE__PRIORITY__PRIORITY_URGENT), t0 + 3);
	r = get_ref(s, "late");
	assert_int_equal(r->due_at, t0 + 1 + 7200000);
	rete__referral_info__free_unpacked(r, NULL);

	memset(&c, 0, sizeof(c));
	assert_int_equal(rete_store_overdue_candidates(s, NULL, t0 + 7200000, collect_ref, &c, &m),
			 RETE_OK);
	assert_int_equal(c.n, 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(rete_store_overdue_candidates(s, NULL, t0 + 7300000, collect_ref, &c, &m),
			 RETE_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[0], "late");
	assert_string_equal(c.ids[1], "later");

	op = commit1(s, notice("o-1", SOCIAL, RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE, 2, "late"),
		     t0 + 7300000);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	r = get_ref(s, "late");
	assert_true(r->overdue);
	assert_int_equal(r->status, RETE__STATUS__STATUS_REQUESTED);
	rete__referral_info__free_unpacked(r, NULL);
	memset(&c, 0, sizeof(c));
	assert_int_equal(rete_store_overdue_candidates(s, NULL, t0 + 7300000, collect_ref, &c, &m),
			 RETE_OK);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "later");

	/* withdrawn undelivered: failed, "not-delivered" */
	{
		rete_store_op ex;
		memset(&ex, 0, sizeof(ex));
		ex.kind = RETE_STORE_OP_EXPIRE;
		ex.in.recipient = ASST;
		ex.in.index = 3;
		assert_int_equal(rete_store_commit(s, &ex, 1, &m), RETE_OK);
		assert_int_equal(ex.status, RETE_STORE_DONE);
		assert_true(ex.was_present);
	}
	op = commit1(
	    s, notice("nd-1", SOCIAL, RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED, 3, "later"),
	    t0 + 8000000);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	r = get_ref(s, "later");
	assert_int_equal(r->status, RETE__STATUS__STATUS_FAILED);
	assert_non_null(r->status_reason);
	assert_string_equal(r->status_reason->code, "not-delivered");
	assert_int_equal(r->closed_at, t0 + 8000000);
	rete__referral_info__free_unpacked(r, NULL);
	memset(&c, 0, sizeof(c));
	assert_int_equal(rete_store_overdue_candidates(s, NULL, t0 + 9000000, collect_ref, &c, &m),
			 RETE_OK);
	assert_int_equal(c.n, 0);

	/* all referrals, by id */
	memset(&c, 0, sizeof(c));
	assert_int_equal(rete_store_referrals_iter(s, NULL, collect_ref, &c, &m), RETE_OK);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.ids[0], "early");
	assert_string_equal(c.ids[3], "urgent");
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- queues, blobs, cases -------------------------------------------------- */

struct qcollect {
	uint64_t idx[16];
	char who[16][64];
	size_t n;
};

static int collect_q(void *ctx, const char *recipient, uint64_t index, int64_t at)
{
	struct qcollect *c = ctx;
	(void)at;
	if (c->n < 16) {
		c->idx[c->n] = index;
		snprintf(c->who[c->n++], 64, "%s", recipient);
	}
	return 0;
}

static int collect_idx(void *ctx, uint64_t index)
{
	struct qcollect *c = ctx;
	if (c->n < 16)
		c->idx[c->n++] = index;
	return 0;
}

static void test_queue_blobs_cases(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	uint64_t idx[8], depth;
	int64_t oldest;
	size_t n;
	rete_buf blob = {0};
	const uint8_t sealed[] = "sealed private part";
	struct qcollect qc;

	for (int i = 0; i < 4; i++) {
		char id[16];
		rete_buf b;
		rete_store_op op;
		snprintf(id, sizeof(id), "q-%d", i);
		b = referral(id, SOCIAL, i == 2 ? ASST : CPI, i < 2 ? "case-A" : "case-B",
			     RETE__PRIORITY__PRIORITY_ROUTINE);
		op = append_op(&b, 1000 + i);
		op.in.sealed = sealed;
		op.in.sealed_len = sizeof(sealed);
		assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
		assert_int_equal(op.index, (uint64_t)i);
		rete_buf_free(&b);
	}
	assert_int_equal(rete_store_queue_peek(s, NULL, CPI, 0, 8, idx, &n, &m), RETE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[1], 1);
	assert_int_equal(idx[2], 3);
	assert_int_equal(rete_store_queue_peek(s, NULL, CPI, 1, 1, idx, &n, &m), RETE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(idx[0], 1);
	assert_int_equal(rete_store_queue_depth(s, NULL, CPI, &depth, &oldest, &m), RETE_OK);
	assert_int_equal(depth, 3);
	assert_int_equal(oldest, 1000);
	assert_int_equal(rete_store_queue_peek(s, NULL, "cpi", 0, 8, idx, &n, &m), RETE_OK);
	assert_int_equal(n, 0); /* a prefix of another recipient is not that recipient */
	assert_int_equal(rete_store_queue_peek(s, NULL, "", 0, 8, idx, &n, &m), RETE_EINVAL);

	/* across a close and reopen */
	rete_store_close(&s);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(rete_store_queue_peek(s, NULL, CPI, 0, 8, idx, &n, &m), RETE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(rete_store_blob(s, NULL, 1, &blob, &m), RETE_OK);
	assert_int_equal(blob.len, sizeof(sealed));
	assert_memory_equal(blob.data, sealed, sizeof(sealed));
	rete_buf_free(&blob);

	memset(&qc, 0, sizeof(qc));
	assert_int_equal(rete_store_queue_expired(s, NULL, 1002, collect_q, &qc, &m), RETE_OK);
	assert_int_equal(qc.n, 2);
	assert_string_equal(qc.who[0], CPI);
	assert_int_equal(qc.idx[0], 0);
	assert_int_equal(qc.idx[1], 1);

	{
		rete_store_op ops[3];
		memset(ops, 0, sizeof(ops));
		ops[0].kind = RETE_STORE_OP_ACK;
		ops[0].in.recipient = CPI;
		ops[0].in.index = 1;
		ops[1] = ops[0]; /* acked twice in one batch: present once */
		ops[2].kind = RETE_STORE_OP_ACK;
		ops[2].in.recipient = ASST;
		ops[2].in.index = 1; /* not asst's */
		assert_int_equal(rete_store_commit(s, ops, 3, &m), RETE_OK);
		assert_int_equal(ops[0].status, RETE_STORE_DONE);
		assert_true(ops[0].was_present);
		assert_false(ops[1].was_present);
		assert_false(ops[2].was_present);
	}
	assert_int_equal(rete_store_blob(s, NULL, 1, &blob, &m), RETE_ENOENT);
	assert_int_equal(rete_store_blob(s, NULL, 0, &blob, &m), RETE_OK);
	rete_buf_free(&blob);
	rete_store_close(&s);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(rete_store_queue_peek(s, NULL, CPI, 0, 8, idx, &n, &m), RETE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[1], 3);
	assert_int_equal(rete_store_queue_depth(s, NULL, ASST, &depth, &oldest, &m), RETE_OK);
	assert_int_equal(depth, 1);
	assert_int_equal(oldest, 1002);

	/* the case index */
	memset(&qc, 0, sizeof(qc));
	assert_int_equal(rete_store_case_entries(s, NULL, "case-A", collect_idx, &qc, &m), RETE_OK);
	assert_int_equal(qc.n, 2);
	assert_int_equal(qc.idx[0], 0);
	assert_int_equal(qc.idx[1], 1);
	memset(&qc, 0, sizeof(qc));
	assert_int_equal(rete_store_case_entries(s, NULL, "case-B", collect_idx, &qc, &m), RETE_OK);
	assert_int_equal(qc.n, 2);
	assert_int_equal(qc.idx[0], 2);
	assert_int_equal(qc.idx[1], 3);
	memset(&qc, 0, sizeof(qc));
	assert_int_equal(rete_store_case_entries(s, NULL, "case-", collect_idx, &qc, &m), RETE_OK);
	assert_int_equal(qc.n, 0);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- checkpoints, read transactions -------------------------------------- */

static int collect_cp(void *ctx, uint64_t size, const char *note)
{
	struct qcollect *c = ctx;
	(void)note;
	if (c->n < 16)
		c->idx[c->n++] = size;
	return 0;
}

static void test_checkpoints_rtxn(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_store_rtxn *rt = NULL;
	rete_msg m = {{0}};
	uint64_t sz, sz2;
	char *note = NULL;
	struct qcollect qc;
	uint8_t r1[32], r2[32];

	assert_int_equal(rete_store_checkpoint_latest(s, NULL, &sz, &note, &m), RETE_ENOENT);
	commit1(s, referral("c-0", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE), 1);
	commit1(s, referral("c-1", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE), 2);
	assert_int_equal(rete_store_checkpoint_put(s, 1, "note one\n", &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_put(s, 2, "note two\n", &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_put(s, 3, "too far\n", &m), RETE_EINVAL);
	assert_int_equal(rete_store_checkpoint_latest(s, NULL, &sz, &note, &m), RETE_OK);
	assert_int_equal(sz, 2);
	assert_string_equal(note, "note two\n");
	free(note);
	assert_int_equal(rete_store_checkpoint_get(s, NULL, 1, &note, &m), RETE_OK);
	assert_string_equal(note, "note one\n");
	free(note);
	assert_int_equal(rete_store_checkpoint_get(s, NULL, 5, &note, &m), RETE_ENOENT);
	memset(&qc, 0, sizeof(qc));
	assert_int_equal(rete_store_checkpoints_iter(s, NULL, 2, collect_cp, &qc, &m), RETE_OK);
	assert_int_equal(qc.n, 1);
	assert_int_equal(qc.idx[0], 2);

	/* a read transaction sees one fixed size while the writer goes on */
	assert_int_equal(rete_store_read_begin(s, &rt, &m), RETE_OK);
	assert_int_equal(rete_store_size(s, rt, &sz, &m), RETE_OK);
	assert_int_equal(rete_store_root(s, rt, sz, r1, &m), RETE_OK);
	rete_store_read_end(&rt);
	assert_null(rt);
	commit1(s, referral("c-2", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE), 3);
	assert_int_equal(rete_store_read_begin(s, &rt, &m), RETE_OK);
	assert_int_equal(rete_store_size(s, rt, &sz2, &m), RETE_OK);
	assert_int_equal(sz2, sz + 1);
	assert_int_equal(rete_store_root(s, rt, sz, r2, &m), RETE_OK);
	assert_memory_equal(r1, r2, 32);
	rete_store_read_end(&rt);
	{
		uint64_t ms, mu;
		assert_int_equal(rete_store_stats(s, &ms, &mu, &m), RETE_OK);
		assert_true(mu > 0 && mu <= ms);
	}
	rete_store_close(&s);
	/* read-only: commits refused */
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_put(s, 1, "x\n", &m), RETE_EPERM);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- opening ------------------------------------------------------------ */

static void test_open_errors_and_schema(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	char sub[4200];
	rete_store *s = NULL;
	rete_msg m = {{0}};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, (void *)"schema"}, v;
	uint8_t ver[4] = {0, 0, 0, 7};

	snprintf(sub, sizeof(sub), "%s/none", dir);
	assert_int_equal(rete_store_open(&s, sub, 0, &m), RETE_ENOENT);
	assert_int_equal(rete_store_open(&s, sub, RETE_STORE_RDONLY, &m), RETE_ENOENT);
	assert_int_equal(rete_store_open(&s, sub, RETE_STORE_RDONLY | RETE_STORE_CREATE, &m),
			 RETE_EINVAL);
	assert_null(s);
	s = open_new(sub, 0);
	rete_store_close(&s);

	/* another schema version written behind the store's back */
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, sub, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	v.mv_data = ver;
	v.mv_size = 4;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	assert_int_equal(rete_store_open(&s, sub, 0, &m), RETE_EVERSION);
	assert_null(s);
	assert_non_null(strstr(m.text, "version 7"));
	assert_non_null(strstr(m.text, "versions 1 to 4"));
	assert_int_equal(rete_store_open(&s, sub, RETE_STORE_RDONLY, &m), RETE_EVERSION);
	assert_int_equal(rete_store_open(&s, sub, RETE_STORE_CREATE, &m), RETE_EVERSION);

	/* some other program's LMDB data is never taken over */
	snprintf(sub, sizeof(sub), "%s/foreign", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, sub, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	k.mv_data = (void *)"other";
	k.mv_size = 5;
	assert_int_equal(mdb_put(txn, dbi, &k, &k, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(rete_store_open(&s, sub, RETE_STORE_CREATE, &m), RETE_ECORRUPT);
	assert_non_null(strstr(m.text, "not a rete store"));
	assert_int_equal(rete_store_open(&s, sub, 0, &m), RETE_ECORRUPT);
	assert_null(s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- damaged records ---------------------------------------------------------- */

static int count_referral(void *ctx, const Rete__ReferralInfo *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

static int count_checkpoint(void *ctx, uint64_t size, const char *note)
{
	(void)size;
	(void)note;
	(*(int *)ctx)++;
	return 0;
}

static int count_queued(void *ctx, const char *recipient, uint64_t index, int64_t at)
{
	(void)recipient;
	(void)index;
	(void)at;
	(*(int *)ctx)++;
	return 0;
}

/* Each walk over a database reports a record it cannot read as corruption,
 * naming what is wrong, and hands nothing of it to the callback. */
static void test_walks_refuse_damaged_records(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	const uint8_t undecodable[] = {0x07}; /* field 0, wire type 7 */
	uint8_t at[8] = {0}, due_short[4] = {0, 0, 0, 1}, due_ghost[8 + 5] = {0};
	int n = 0;

	rete_store_close(&s);
	tu_raw_put(dir, "referrals", "bad-ref", 7, undecodable, sizeof(undecodable));
	tu_raw_put(dir, "checkpoints", "abc", 3, "a note", 6);
	tu_raw_put(dir, "queue", "x", 1, at, sizeof(at));
	tu_raw_put(dir, "due", due_short, sizeof(due_short), "", 0);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);

	assert_int_equal(rete_store_referrals_iter(s, NULL, count_referral, &n, &m), RETE_ECORRUPT);
	assert_non_null(strstr(m.text, "referral 'bad-ref' does not decode"));
	assert_int_equal(rete_store_checkpoints_iter(s, NULL, 0, count_checkpoint, &n, &m),
			 RETE_ECORRUPT);
	assert_non_null(strstr(m.text, "malformed checkpoint key"));
	assert_int_equal(rete_store_queue_expired(s, NULL, INT64_MAX, count_queued, &n, &m),
			 RETE_ECORRUPT);
	assert_non_null(strstr(m.text, "malformed queue record"));
	assert_int_equal(rete_store_overdue_candidates(s, NULL, INT64_MAX, count_referral, &n, &m),
			 RETE_ECORRUPT);
	assert_non_null(strstr(m.text, "malformed due record"));
	assert_int_equal(n, 0);
	rete_store_close(&s);

	/* a due record whose referral is gone */
	tu_raw_put(dir, "due", due_short, sizeof(due_short), NULL, 0);
	due_ghost[7] = 1;
	memcpy(due_ghost + 8, "ghost", 5);
	tu_raw_put(dir, "due", due_ghost, sizeof(due_ghost), "", 0);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(rete_store_overdue_candidates(s, NULL, INT64_MAX, count_referral, &n, &m),
			 RETE_ECORRUPT);
	assert_non_null(strstr(m.text, "due record of a missing referral"));
	/* not yet due: the walk ends before it */
	assert_int_equal(rete_store_overdue_candidates(s, NULL, 1, count_referral, &n, &m),
			 RETE_OK);
	assert_int_equal(n, 0);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- map growth ------------------------------------------------------------ */

static void append_many(rete_store *s, const char *prefix, uint64_t from, uint64_t count,
			size_t batch)
{
	rete_msg m = {{0}};
	rete_store_op ops[64];
	rete_buf bufs[64];

	assert_true(batch <= 64);
	for (uint64_t done = 0; done < count;) {
		size_t k = count - done < batch ? (size_t)(count - done) : batch;
		for (size_t i = 0; i < k; i++) {
			char id[48];
			snprintf(id, sizeof(id), "%s-%llu", prefix,
				 (unsigned long long)(from + done + i));
			bufs[i] = referral(id, SOCIAL, (i % 2) ? CPI : ASST, "case-g",
					   RETE__PRIORITY__PRIORITY_ROUTINE);
			ops[i] = append_op(&bufs[i], 1000 + (int64_t)(from + done + i));
		}
		if (rete_store_commit(s, ops, k, &m) != RETE_OK)
			fail_msg("commit: %s", m.text);
		for (size_t i = 0; i < k; i++) {
			assert_int_equal(ops[i].status, RETE_STORE_ACCEPTED);
			assert_int_equal(ops[i].index, from + done + i);
			rete_buf_free(&bufs[i]);
		}
		done += k;
	}
}

/* A batch that outgrows the map is replayed whole: duplicates, refusals and
 * indexes come out as if the map had been big enough. */
static void test_growth_replays_batch(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 64 << 10);
	rete_msg m = {{0}};
	rete_store_op first =
	    commit1(s, referral("gr-0", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE), 10);
	enum { N = 300 };
	rete_store_op *ops = calloc(N, sizeof(*ops));
	rete_buf *bufs = calloc(N, sizeof(*bufs));
	uint64_t ms, ms_before;

	assert_int_equal(rete_store_stats(s, &ms_before, NULL, &m), RETE_OK);
	assert_non_null(ops);
	assert_non_null(bufs);
	bufs[0] = referral("gr-0", SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE);
	bufs[1] = update("gr-u", SOCIAL, CPI, "gr-0", RETE__STATUS__STATUS_ACCEPTED, NULL, false);
	for (int i = 2; i < N; i++) {
		char id[32];
		snprintf(id, sizeof(id), "gr-%d", i);
		bufs[i] = referral(id, SOCIAL, CPI, "case-gr", RETE__PRIORITY__PRIORITY_ROUTINE);
	}
	/* the last one reuses an id of this very batch with other bytes */
	rete_buf_free(&bufs[N - 1]);
	bufs[N - 1] = referral("gr-2", SOCIAL, ASST, "", RETE__PRIORITY__PRIORITY_URGENT);
	for (int i = 0; i < N; i++)
		ops[i] = append_op(&bufs[i], 100 + i);
	assert_int_equal(rete_store_commit(s, ops, N, &m), RETE_OK);
	assert_int_equal(rete_store_stats(s, &ms, NULL, &m), RETE_OK);
	assert_true(ms > ms_before); /* it did grow during this batch */
	assert_int_equal(ops[0].status, RETE_STORE_DUPLICATE);
	assert_int_equal(ops[0].index, 0);
	assert_memory_equal(ops[0].leaf_hash, first.leaf_hash, 32);
	assert_int_equal(ops[1].status, RETE_STORE_REFUSED);
	assert_int_equal(ops[1].error, RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE);
	for (int i = 2; i < N - 1; i++) {
		assert_int_equal(ops[i].status, RETE_STORE_ACCEPTED);
		assert_int_equal(ops[i].index, (uint64_t)i - 1);
	}
	assert_int_equal(ops[N - 1].status, RETE_STORE_REFUSED);
	assert_int_equal(ops[N - 1].error, RETE__ERROR_CODE__ERROR_CODE_ID_REUSED);
	check_tree(s, N - 2, 37);
	for (int i = 0; i < N; i++)
		rete_buf_free(&bufs[i]);
	free(bufs);
	free(ops);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

static void test_tiny_map_grows(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 64 << 10);
	rete_msg m = {{0}};
	uint64_t ms0, ms, mu;

	assert_int_equal(rete_store_stats(s, &ms0, &mu, &m), RETE_OK);
	assert_true(ms0 <= (64 << 10) + 4096);
	append_many(s, "g", 0, 5000, 50);
	assert_int_equal(size_of(s), 5000);
	assert_int_equal(rete_store_stats(s, &ms, &mu, &m), RETE_OK);
	assert_true(ms > ms0 * 16);
	check_tree(s, 5000, 997);
	rete_store_close(&s);
	/* reopened with the small size again: it adopts the grown one */
	s = open_new(dir, 64 << 10);
	append_many(s, "h", 5000, 100, 50);
	check_tree(s, 5100, 1013);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* A scratch store (the auditor's replay, thrown away after use) commits
 * without fsync, also after its map grew (the environment reopened), and
 * is what an ordinary store is otherwise; the flag is refused without
 * CREATE. */
static void test_scratch_store(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = NULL;
	rete_store_options o = {64 << 10, 0};
	rete_msg m = {{0}};
	unsigned fl = 0;

	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_SCRATCH, &m), RETE_EINVAL);
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_SCRATCH | RETE_STORE_RDONLY, &m),
			 RETE_EINVAL);
	assert_null(s);
	assert_int_equal(
	    rete_store_open_ex(&s, dir, RETE_STORE_CREATE | RETE_STORE_SCRATCH, &o, &m), RETE_OK);
	assert_int_equal(mdb_env_get_flags(s->st_env, &fl), 0);
	assert_true((fl & MDB_NOSYNC) && (fl & MDB_NOMETASYNC) && !(fl & MDB_WRITEMAP));
	append_many(s, "g", 0, 3000, 50); /* grows the map */
	assert_int_equal(mdb_env_get_flags(s->st_env, &fl), 0);
	assert_true((fl & MDB_NOSYNC) && (fl & MDB_NOMETASYNC));
	check_tree(s, 3000, 997);
	rete_store_close(&s);
	/* an ordinary store syncs */
	s = open_new(dir, 0);
	assert_int_equal(mdb_env_get_flags(s->st_env, &fl), 0);
	assert_false(fl & (MDB_NOSYNC | MDB_NOMETASYNC));
	assert_int_equal(size_of(s), 3000);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- a reader in another process ------------------------------------------ */

/* reader_child opens dir read-only (after the fork: never an env across
 * fork) and keeps reading until it sees `target` entries; exits 0 when
 * every size it saw was a batch boundary, never went back, and every root
 * matched a consistency proof from the previous one. */
static int reader_child(const char *dir, uint64_t target, uint64_t batch, int go_fd)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	uint64_t last = 0, sz;
	uint8_t last_root[32], root[32];
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	rete_merkle_elem el[RETE_MERKLE_MAX_PROOF];
	size_t pn;
	char c;
	unsigned reads = 0;

	if (read(go_fd, &c, 1) != 1)
		return 10;
	if (rete_store_open(&s, dir, RETE_STORE_RDONLY, &m) != RETE_OK) {
		fprintf(stderr, "reader: %s\n", m.text);
		return 11;
	}
	for (unsigned i = 0; i < 2000000; i++) {
		rete_store_rtxn *rt = NULL;
		if (rete_store_read_begin(s, &rt, &m) != RETE_OK) {
			fprintf(stderr, "reader: %s\n", m.text);
			return 12;
		}
		if (rete_store_size(s, rt, &sz, &m) != RETE_OK || sz < last || sz % batch != 0 ||
		    rete_store_root(s, rt, sz, root, &m) != RETE_OK) {
			fprintf(stderr, "reader: size %llu after %llu: %s\n",
				(unsigned long long)sz, (unsigned long long)last, m.text);
			return 13;
		}
		if (last > 0 && sz > last) {
			if (rete_store_consistency_proof(s, rt, last, sz, proof, &pn, &m) !=
			    RETE_OK)
				return 14;
			for (size_t k = 0; k < pn; k++)
				el[k] = (rete_merkle_elem){proof[k], 32};
			if (rete_merkle_verify_consistency(last, sz, last_root, 32, root, 32, el,
							   pn, &m) != RETE_OK) {
				fprintf(stderr, "reader: %s\n", m.text);
				return 15;
			}
		}
		rete_store_read_end(&rt);
		reads++;
		if (sz > 0) {
			last = sz;
			memcpy(last_root, root, 32);
		}
		if (sz == target)
			break;
	}
	rete_store_close(&s);
	return last == target && reads > 1 ? 0 : 16;
}

static void test_reader_process(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s;
	int go[2], st = 0;
	pid_t pid;
	char c = 'g';

	/* create the store first, closed again before the fork */
	s = open_new(dir, 64 << 10);
	rete_store_close(&s);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		_exit(reader_child(dir, 3000, 30, go[0]));
	}
	close(go[0]);
	s = open_new(dir, 64 << 10);
	assert_int_equal(write(go[1], &c, 1), 1);
	append_many(s, "p", 0, 3000, 30);
	close(go[1]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- threads: readers while the writer grows the map ----------------------- */

struct thread_arg {
	rete_store *s;
	atomic_int *done;
	int failures;
	unsigned reads;
	char first[320]; /* what went wrong first, for the assertion's message */
};

static void reader_failed(struct thread_arg *a, const char *what, const rete_msg *m)
{
	if (a->failures++ == 0)
		snprintf(a->first, sizeof(a->first), "read %u: %s: %s", a->reads, what,
			 m != NULL ? m->text : "");
}

static void *reader_thread(void *p)
{
	struct thread_arg *a = p;
	uint64_t last = 0;
	while (!atomic_load(a->done)) {
		rete_store_rtxn *rt = NULL;
		rete_msg m = {{0}};
		uint64_t sz = 0;
		uint8_t root[32], r2[32];
		if (rete_store_read_begin(a->s, &rt, &m) != RETE_OK) {
			reader_failed(a, "read_begin", &m);
			continue;
		}
		if (rete_store_size(a->s, rt, &sz, &m) != RETE_OK)
			reader_failed(a, "size", &m);
		else if (sz < last)
			reader_failed(a, "the size went back", NULL);
		else if (rete_store_root(a->s, rt, sz, root, &m) != RETE_OK)
			reader_failed(a, "root in the read transaction", &m);
		rete_store_read_end(&rt);
		/* and a short transaction of its own */
		if (rete_store_root(a->s, NULL, sz, r2, &m) != RETE_OK)
			reader_failed(a, "root in a transaction of its own", &m);
		else if (memcmp(root, r2, 32) != 0)
			reader_failed(a, "the two roots differ", NULL);
		last = sz;
		a->reads++;
	}
	return NULL;
}

static void test_threads_during_growth(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 64 << 10);
	atomic_int done = 0;
	struct thread_arg a[2] = {{s, &done, 0, 0, ""}, {s, &done, 0, 0, ""}};
	pthread_t th[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &a[i]), 0);
	append_many(s, "t", 0, 2000, 20);
	atomic_store(&done, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (a[i].failures != 0)
			fail_msg("reader %d: %d failures in %u reads; first: %s", i, a[i].failures,
				 a[i].reads, a[i].first);
		assert_true(a[i].reads > 0);
	}
	check_tree(s, 2000, 499);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* LMDB can hand a read transaction begun during a commit the snapshot
 * being committed, and the next one, begun a moment later, the snapshot
 * before it (test_threads_during_growth caught it about once in a hundred
 * runs on two busy cores). The store remembers the newest commit it has
 * read and never begins an older snapshot: here it is told it has seen a
 * commit not yet made, and a reader must wait for that commit. */
struct seen_arg {
	rete_store *s;
	atomic_int started;
	uint64_t size;
	rete_err err;
	char text[300];
};

static void *seen_reader(void *p)
{
	struct seen_arg *a = p;
	rete_store_rtxn *rt = NULL;
	rete_msg m = {{0}};

	atomic_store(&a->started, 1);
	a->err = rete_store_read_begin(a->s, &rt, &m);
	if (a->err == RETE_OK)
		a->err = rete_store_size(a->s, rt, &a->size, &m);
	rete_store_read_end(&rt);
	snprintf(a->text, sizeof(a->text), "%s", m.text);
	return NULL;
}

static void test_reads_never_go_back(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	MDB_txn *txn = NULL;
	uint64_t seq = 0;
	struct seen_arg a = {.s = s};
	pthread_t th;

	append_many(s, "n", 0, 10, 10);
	append_many(s, "n", 10, 10, 10);
	/* two commits so far, each counted */
	assert_int_equal(store_txn_read(s, &txn, NULL), RETE_OK);
	assert_int_equal(store_seq(s, txn, &seq, NULL), RETE_OK);
	store_txn_done(s, txn);
	assert_int_equal(seq, 2);
	assert_int_equal(atomic_load(&s->st_seen), 2);

	/* as if this process had already read the third commit */
	atomic_store(&s->st_seen, 3);
	assert_int_equal(pthread_create(&th, NULL, seen_reader, &a), 0);
	while (!atomic_load(&a.started))
		sched_yield();
	append_many(s, "n", 20, 10, 10);
	assert_int_equal(pthread_join(th, NULL), 0);
	if (a.err != RETE_OK)
		fail_msg("read: %s", a.text);
	assert_int_equal(a.size, 30);

	/* a batch that writes nothing (a resend) is not counted: it stays a
	 * commit LMDB need not sync */
	{
		rete_buf buf =
		    referral("n-0", SOCIAL, ASST, "case-g", RETE__PRIORITY__PRIORITY_ROUTINE);
		rete_store_op op = append_op(&buf, 1000);
		rete_msg m = {{0}};
		assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
		assert_int_equal(op.status, RETE_STORE_DUPLICATE);
		rete_buf_free(&buf);
		assert_int_equal(store_txn_read(s, &txn, NULL), RETE_OK);
		assert_int_equal(store_seq(s, txn, &seq, NULL), RETE_OK);
		store_txn_done(s, txn);
		assert_int_equal(seq, 3);
	}

	/* a commit that never comes: after a bounded wait (5 s; 0.2 s here),
	 * a sentence */
	s->st_stale_wait_ns = 200000000;
	atomic_store(&s->st_seen, 9);
	{
		rete_store_rtxn *rt = NULL;
		rete_msg m = {{0}};
		assert_int_equal(rete_store_read_begin(s, &rt, &m), RETE_ESTORE);
		assert_null(rt);
		assert_non_null(
		    strstr(m.text, "commit 9, already read here, is still not visible"));
		assert_non_null(strstr(m.text, "after 200 ms"));
		assert_non_null(strstr(m.text, "sees commit 3"));
	}
	atomic_store(&s->st_seen, 3);
	assert_int_equal(size_of(s), 30);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- hot backup ------------------------------------------------------------ */

static void test_backup_while_appending(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	char dest[4200], dest2[4200];
	rete_store *s, *b = NULL;
	rete_msg m = {{0}};
	int ready[2], st = 0;
	pid_t pid;
	char c;
	uint64_t bsize;
	uint8_t broot[32], sroot[32];

	snprintf(dest, sizeof(dest), "%s.backup", dir);
	snprintf(dest2, sizeof(dest2), "%s.backup2", dir);
	s = open_new(dir, 0);
	rete_store_close(&s);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the writer: its own environment, opened after the fork */
		rete_store *w = open_new(dir, 0);
		close(ready[0]);
		append_many(w, "b", 0, 700, 10);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		append_many(w, "b", 700, 1300, 10);
		rete_store_close(&w);
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(rete_store_backup(dir, dest, &m), RETE_OK);
	/* a destination that is not empty is refused */
	assert_int_equal(rete_store_backup(dir, dest, &m), RETE_EEXIST);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(ready[0]);

	assert_int_equal(rete_store_open(&b, dest, RETE_STORE_RDONLY, &m), RETE_OK);
	bsize = size_of(b);
	assert_true(bsize >= 700 && bsize <= 2000);
	assert_int_equal(bsize % 10, 0);
	check_tree(b, bsize, 211);
	assert_int_equal(rete_store_root(b, NULL, bsize, broot, &m), RETE_OK);
	rete_store_close(&b);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(size_of(s), 2000);
	assert_int_equal(rete_store_root(s, NULL, bsize, sroot, &m), RETE_OK);
	assert_memory_equal(broot, sroot, 32);
	/* from an open store too */
	assert_int_equal(rete_store_backup_to(s, dest2, &m), RETE_OK);
	rete_store_close(&s);
	assert_int_equal(rete_store_open(&b, dest2, 0, &m), RETE_OK);
	assert_int_equal(size_of(b), 2000);
	rete_store_close(&b);
	tu_rmrf(dest);
	tu_rmrf(dest2);
	tu_rmrf(dir);
	free(dir);
}

/* ---- the memo a commit fills (rete_store_commit_memo) ----------------------- */

/* memo_proofs_ok: every index of the log proved in the whole log through
 * memo gives the proof computed without it. */
static bool memo_proofs_ok(rete_store *s, rete_merkle_memo *memo)
{
	rete_store_rtxn *rt = NULL;
	rete_msg m = {{0}};
	uint64_t n = 0;
	bool ok = true;

	if (rete_store_read_begin(s, &rt, &m) != RETE_OK ||
	    rete_store_size(s, rt, &n, &m) != RETE_OK) {
		rete_store_read_end(&rt);
		return false;
	}
	for (uint64_t i = 0; ok && i < n; i++) {
		uint8_t a[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
		uint8_t b[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
		size_t na = 0, nb = 0;
		ok = rete_store_inclusion_proof_memo(s, rt, memo, i, n, a, &na, &m) == RETE_OK &&
		     rete_store_inclusion_proof(s, rt, i, n, b, &nb, &m) == RETE_OK && na == nb &&
		     memcmp(a, b, na * RETE_MERKLE_HASH) == 0;
	}
	rete_store_read_end(&rt);
	return ok;
}

/* The proofs of a commit's entries through the memo it filled are the
 * proofs read from the store, for every index after commits of several
 * sizes (half the appends with the decoded Message, as the broker gives
 * them; a resend of an earlier entry in each), through a new memo per
 * commit and through one memo told only every other commit. */
static void test_commit_memo_proofs(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_merkle_memo *every_other = rete_merkle_memo_new();
	const size_t batches[] = {1, 2, 3, 5, 8, 13, 16, 31, 64, 100};
	rete_msg m = {{0}};
	uint64_t next = 0;
	rete_buf first = {0};

	assert_non_null(every_other);
	for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
		rete_store_op ops[101];
		rete_buf bufs[101];
		Rete__Message *msgs[101] = {NULL};
		size_t n = batches[k], nops = 0;
		rete_merkle_memo *memo = k % 2 == 0 ? every_other : rete_merkle_memo_new();
		assert_non_null(memo);
		for (size_t i = 0; i < n; i++, nops++) {
			char id[32];
			snprintf(id, sizeof(id), "mm-%llu", (unsigned long long)(next + i));
			bufs[i] = referral(id, SOCIAL, (i % 2) ? CPI : ASST, "case-m",
					   RETE__PRIORITY__PRIORITY_URGENT);
			ops[i] = append_op(&bufs[i], 1700000000000 + (int64_t)(next + i));
			if (i % 2 == 0) {
				assert_int_equal(rete_signed_decode(bufs[i].data, bufs[i].len, NULL,
								    &msgs[i], &m),
						 RETE_OK);
				ops[i].in.msg = msgs[i];
			}
		}
		if (first.data != NULL)
			ops[nops++] = append_op(&first, 1);
		assert_int_equal(rete_store_commit_memo(s, ops, nops, memo, &m), RETE_OK);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(ops[i].status, RETE_STORE_ACCEPTED);
			assert_int_equal(ops[i].index, next + i);
		}
		if (first.data != NULL) {
			assert_int_equal(ops[n].status, RETE_STORE_DUPLICATE);
			assert_int_equal(ops[n].index, 0);
		}
		next += n;
		assert_true(memo_proofs_ok(s, memo));
		if (memo != every_other) {
			assert_true(memo_proofs_ok(s, every_other));
			rete_merkle_memo_free(memo);
		}
		for (size_t i = 0; i < n; i++) {
			if (msgs[i] != NULL)
				rete__message__free_unpacked(msgs[i], NULL);
			if (first.data == NULL && i == 0)
				first = bufs[0];
			else
				rete_buf_free(&bufs[i]);
		}
	}
	rete_buf_free(&first);
	rete_merkle_memo_free(every_other);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* no_node is a node callback that has nothing: a proof that asks it fails. */
static rete_err no_node(void *ctx, unsigned level, uint64_t index, uint8_t out[RETE_MERKLE_HASH])
{
	(void)level;
	(void)index;
	(void)out;
	(*(size_t *)ctx)++;
	return RETE_ENOENT;
}

/* The memo a commit fills holds every node it wrote, leaves included
 * (store.h): after a first commit of 8 entries, a whole tree, the proof of
 * each entry through that memo needs no node from anywhere else, and is
 * the proof read from the store. */
static void test_commit_memo_leaves(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_merkle_memo *memo = rete_merkle_memo_new();
	rete_store_op ops[8];
	rete_buf bufs[8];
	rete_msg m = {{0}};

	assert_non_null(memo);
	for (size_t i = 0; i < 8; i++) {
		char id[32];
		snprintf(id, sizeof(id), "ml-%zu", i);
		bufs[i] = referral(id, SOCIAL, CPI, "case-l", RETE__PRIORITY__PRIORITY_URGENT);
		ops[i] = append_op(&bufs[i], 1700000000000 + (int64_t)i);
	}
	assert_int_equal(rete_store_commit_memo(s, ops, 8, memo, &m), RETE_OK);
	for (uint64_t i = 0; i < 8; i++) {
		uint8_t a[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
		uint8_t b[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
		size_t na = 0, nb = 0, asked = 0;
		assert_int_equal(ops[i].status, RETE_STORE_ACCEPTED);
		rete_err e = rete_merkle_inclusion_proof_memo(no_node, &asked, memo, i, 8, a, &na);
		if (e != RETE_OK || asked != 0)
			fail_msg("entry %llu: the proof through the memo asked for %zu node(s) "
				 "(%s)",
				 (unsigned long long)i, asked, rete_strerror(e));
		assert_int_equal(rete_store_inclusion_proof(s, NULL, i, 8, b, &nb, &m), RETE_OK);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na * RETE_MERKLE_HASH);
	}
	for (size_t i = 0; i < 8; i++)
		rete_buf_free(&bufs[i]);
	rete_merkle_memo_free(memo);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* rete_store_commit_checkpoint stores a checkpoint with the batch, in its
 * transaction (the broker's way under load): both or neither. A size
 * beyond the log before the batch, or an empty note, refuses the whole
 * commit; a note alone (no ops) is a commit too. */
static void test_commit_checkpoint(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_buf bufs[4];
	rete_store_op ops[4];
	rete_msg m = {{0}};
	uint64_t sz;
	char *note = NULL;

	for (size_t i = 0; i < 4; i++) {
		char id[32];
		snprintf(id, sizeof(id), "cc-%zu", i);
		bufs[i] = referral(id, SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE);
		ops[i] = append_op(&bufs[i], 1700000000000 + (int64_t)i);
	}
	assert_int_equal(rete_store_commit_checkpoint(s, ops, 2, NULL, 0, NULL, &m), RETE_OK);
	/* the checkpoint of the log before the batch, with the batch */
	assert_int_equal(rete_store_commit_checkpoint(s, ops + 2, 1, NULL, 2, "two\n", &m),
			 RETE_OK);
	assert_int_equal(ops[2].status, RETE_STORE_ACCEPTED);
	assert_int_equal(rete_store_checkpoint_get(s, NULL, 2, &note, &m), RETE_OK);
	assert_string_equal(note, "two\n");
	free(note);
	/* beyond the log before the batch (3 entries; the batch would make
	 * 4): nothing of it is stored */
	assert_int_equal(rete_store_commit_checkpoint(s, ops + 3, 1, NULL, 4, "four\n", &m),
			 RETE_EINVAL);
	assert_non_null(strstr(m.text, "tree size 4"));
	assert_int_equal(rete_store_size(s, NULL, &sz, &m), RETE_OK);
	assert_int_equal(sz, 3);
	assert_int_equal(rete_store_checkpoint_get(s, NULL, 4, &note, &m), RETE_ENOENT);
	assert_int_equal(rete_store_commit_checkpoint(s, ops + 3, 1, NULL, 3, "", &m), RETE_EINVAL);
	assert_int_equal(rete_store_size(s, NULL, &sz, &m), RETE_OK);
	assert_int_equal(sz, 3);
	/* a note alone */
	assert_int_equal(rete_store_commit_checkpoint(s, NULL, 0, NULL, 3, "three\n", &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_latest(s, NULL, &sz, &note, &m), RETE_OK);
	assert_int_equal(sz, 3);
	assert_string_equal(note, "three\n");
	free(note);
	for (size_t i = 0; i < 4; i++)
		rete_buf_free(&bufs[i]);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* struct parties: the parties rete_store_parked_parties gives. */
struct parties {
	char id[4][64];
	size_t n;
};

static int on_party(void *ctx, const char *party)
{
	struct parties *p = ctx;
	if (p->n < 4)
		snprintf(p->id[p->n++], sizeof(p->id[0]), "%s", party);
	return 0;
}

static bool keep_social(void *ctx, const char *party)
{
	(void)ctx;
	return strcmp(party, SOCIAL) == 0;
}

/* The broker's lists of deliveries set aside (meta "parked/PARTY"): written
 * and read back across a reopen, listed, removed; a value that is not a
 * list is ECORRUPT, a bad party id EINVAL; the other meta records are not
 * listed with them. */
static void test_parked_lists(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_msg m = {{0}};
	static const uint64_t a[] = {2, 5, 1ull << 40}, c[] = {7};
	uint64_t *got = NULL;
	size_t n = 9;

	assert_int_equal(
	    rete_store_parked_get(s, NULL, CPI, RETE_STORE_PARKED_MAX, &got, &n, NULL, &m),
	    RETE_OK);
	assert_null(got);
	assert_int_equal(n, 0);
	rete_store_parked l[] = {{CPI, a, 3}, {SOCIAL, c, 1}};
	assert_int_equal(rete_store_parked_put(s, l, 2, &m), RETE_OK);
	rete_store_close(&s);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(
	    rete_store_parked_get(s, NULL, CPI, RETE_STORE_PARKED_MAX, &got, &n, NULL, &m),
	    RETE_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(got, a, sizeof(a));
	free(got);
	struct parties p = {0};
	assert_int_equal(rete_store_parked_parties(s, NULL, on_party, &p, &m), RETE_OK);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.id[0], CPI);
	assert_string_equal(p.id[1], SOCIAL);
	/* an empty list removes the record */
	l[0].n = 0;
	assert_int_equal(rete_store_parked_put(s, l, 1, &m), RETE_OK);
	memset(&p, 0, sizeof(p));
	assert_int_equal(rete_store_parked_parties(s, NULL, on_party, &p, &m), RETE_OK);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.id[0], SOCIAL);
	/* refused: no party, a party id too long */
	rete_store_parked bad = {"", c, 1};
	assert_int_equal(rete_store_parked_put(s, &bad, 1, &m), RETE_EINVAL);
	bad.party = "a-party-id-much-longer-than-the-sixty-three-bytes-a-party-id-may-have";
	assert_int_equal(rete_store_parked_put(s, &bad, 1, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "1 to 63 bytes"));
	rete_store_close(&s);
	/* a damaged record: not a list of 8-byte indexes */
	tu_raw_put(dir, "meta", "parked/" ASST, strlen("parked/" ASST), "12345", 5);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(
	    rete_store_parked_get(s, NULL, ASST, RETE_STORE_PARKED_MAX, &got, &n, NULL, &m),
	    RETE_ECORRUPT);
	assert_null(got);
	assert_non_null(strstr(m.text, "is 5 bytes"));
	/* written over */
	rete_store_parked fix = {ASST, c, 1};
	assert_int_equal(rete_store_parked_put(s, &fix, 1, &m), RETE_OK);
	assert_int_equal(
	    rete_store_parked_get(s, NULL, ASST, RETE_STORE_PARKED_MAX, &got, &n, NULL, &m),
	    RETE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(got[0], 7);
	free(got);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* The lists set aside with a batch (rete_store_commit_parked): written in
 * its commit, both or neither; without ops, or with a bad party id, the
 * whole commit is refused. rete_store_parked_get reads no more than asked
 * and says how many the list holds; rete_store_parked_sweep removes keys
 * that name no party by their keys as they are, and the parties its
 * caller does not keep (review s14 rev-setaside, 2 to 4). */
static void test_parked_with_batch(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_buf bufs[2];
	rete_store_op ops[2];
	rete_msg m = {{0}};
	static const uint64_t a[] = {0, 1, 5, 9};
	uint64_t *got = NULL;
	size_t n = 0, stored = 0;

	for (size_t i = 0; i < 2; i++) {
		char id[32];
		snprintf(id, sizeof(id), "pb-%zu", i);
		bufs[i] = referral(id, SOCIAL, CPI, "", RETE__PRIORITY__PRIORITY_ROUTINE);
		ops[i] = append_op(&bufs[i], 1700000000000 + (int64_t)i);
	}
	rete_store_parked l = {CPI, a, 4};
	assert_int_equal(
	    rete_store_commit_parked(s, NULL, 0, NULL, 0, NULL, &l, 1, NULL, NULL, NULL, &m),
	    RETE_EINVAL);
	rete_store_parked bad = {"", a, 1};
	assert_int_equal(
	    rete_store_commit_parked(s, ops, 1, NULL, 0, NULL, &bad, 1, NULL, NULL, NULL, &m),
	    RETE_EINVAL);
	uint64_t sz = 9;
	assert_int_equal(rete_store_size(s, NULL, &sz, &m), RETE_OK);
	assert_int_equal(sz, 0); /* nothing of the refused commits */
	assert_int_equal(
	    rete_store_commit_parked(s, ops, 1, NULL, 0, NULL, &l, 1, NULL, NULL, NULL, &m),
	    RETE_OK);
	rete_store_close(&s);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	assert_int_equal(rete_store_size(s, NULL, &sz, &m), RETE_OK);
	assert_int_equal(sz, 1);
	/* the first two only, and how many there are */
	assert_int_equal(rete_store_parked_get(s, NULL, CPI, 2, &got, &n, &stored, &m), RETE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(stored, 4);
	assert_memory_equal(got, a, 2 * sizeof(a[0]));
	free(got);
	/* an empty list with the next batch removes it */
	l.n = 0;
	assert_int_equal(
	    rete_store_commit_parked(s, ops + 1, 1, NULL, 0, NULL, &l, 1, NULL, NULL, NULL, &m),
	    RETE_OK);
	assert_int_equal(rete_store_parked_get(s, NULL, CPI, 9, &got, &n, &stored, &m), RETE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(stored, 0);
	rete_store_close(&s);

	/* damaged keys and a party not kept, removed by the sweep */
	uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
	char longkey[96];
	snprintf(longkey, sizeof(longkey), "parked/%070d", 1);
	tu_raw_put(dir, "meta", "parked/", 7, one, 8);
	tu_raw_put(dir, "meta", longkey, strlen(longkey), one, 8);
	tu_raw_put(dir, "meta", "parked/" ASST, strlen("parked/" ASST), one, 8);
	tu_raw_put(dir, "meta", "parked/" SOCIAL, strlen("parked/" SOCIAL), one, 8);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_OK);
	struct parties p = {0};
	assert_int_equal(rete_store_parked_parties(s, NULL, on_party, &p, &m), RETE_OK);
	assert_int_equal(p.n, 2); /* the damaged keys are not parties */
	size_t removed = 9;
	memset(&p, 0, sizeof(p));
	assert_int_equal(rete_store_parked_sweep(s, keep_social, on_party, &p, &removed, &m),
			 RETE_OK);
	assert_int_equal(removed, 3);
	assert_int_equal(p.n, 3);
	memset(&p, 0, sizeof(p));
	assert_int_equal(rete_store_parked_parties(s, NULL, on_party, &p, &m), RETE_OK);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.id[0], SOCIAL);
	assert_int_equal(rete_store_parked_sweep(s, keep_social, on_party, &p, &removed, &m),
			 RETE_OK);
	assert_int_equal(removed, 0);
	rete_store_close(&s);
	for (size_t i = 0; i < 2; i++)
		rete_buf_free(&bufs[i]);
	tu_rmrf(dir);
	free(dir);
}

/* An append handed its decoded Message (the broker's way) records in the
 * dedup index the hash of the very Message bytes inside the SignedMessage,
 * so that the same bytes sent again without it are a duplicate. */
static void test_decoded_message_dedup(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	rete_buf b = referral("dm-1", SOCIAL, CPI, "case-d", RETE__PRIORITY__PRIORITY_ROUTINE);
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_store_op op = append_op(&b, 5);
	uint8_t have[RETE_HASH_LEN], want[RETE_HASH_LEN];
	uint64_t index = 9;
	rete_msg m = {{0}};

	assert_int_equal(rete_signed_decode(b.data, b.len, &sm, &msg, &m), RETE_OK);
	op.in.msg = msg;
	assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	assert_int_equal(rete_store_msgid(s, NULL, SOCIAL, "dm-1", &index, have, NULL, &m),
			 RETE_OK);
	assert_int_equal(index, 0);
	rete_sha256(want, sm->message.data, sm->message.len);
	assert_memory_equal(have, want, RETE_HASH_LEN);
	op = append_op(&b, 6);
	assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
	assert_int_equal(op.status, RETE_STORE_DUPLICATE);
	/* bytes that are no SignedMessage are refused as before, Message or not */
	{
		uint8_t junk[3] = {0x0a, 0x05, 0x01};
		op = append_op(&b, 7);
		op.in.signed_message = junk;
		op.in.len = sizeof(junk);
		op.in.msg = msg;
		assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
		assert_int_equal(op.status, RETE_STORE_REFUSED);
		assert_int_equal(op.error, RETE__ERROR_CODE__ERROR_CODE_MALFORMED);
	}
	rete__message__free_unpacked(msg, NULL);
	rete__signed_message__free_unpacked(sm, NULL);
	rete_buf_free(&b);
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- the referral record's encoding ------------------------------------- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* rnd_str: NULL, empty, short or long (past one and two varint bytes). */
static char *rnd_str(char *buf, size_t cap)
{
	static const size_t lens[] = {1, 5, 60, 127, 128, 200, 16383, 16384};
	size_t len;
	switch (rnd() % 4) {
	case 0:
		return NULL;
	case 1:
		return (char *)"";
	default:
		len = lens[rnd() % (sizeof(lens) / sizeof(lens[0]))];
		if (len >= cap)
			len = cap - 1;
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)('a' + rnd() % 26);
		buf[len] = '\0';
		return buf;
	}
}

static int64_t rnd_i64(void)
{
	static const int64_t v[] = {0, 1, -1, 127, 128, 1700000000000, INT64_MAX, INT64_MIN};
	return rnd() % 3 == 0 ? (int64_t)rnd() : v[rnd() % 8];
}

static int rnd_enum(void)
{
	static const int v[] = {0, 1, 2, 5, 127, 128, -1, -300};
	return v[rnd() % 8];
}

/* The referral record is encoded (store_referral_encode) into the very
 * bytes protobuf-c packs, for thousands of records with every field at its
 * default or not: strings absent, empty, short and long, negative times
 * and enums, sub-messages absent, empty or full, histories of 0 to 5
 * changes; a record that does not fit, or that has fields unknown to this
 * version, is left to protobuf-c (0). */
static void test_referral_encoding(void **state)
{
	(void)state;
	static char sb[16][20000];
	static uint8_t want[400000], got[400000];

	for (int round = 0; round < 3000; round++) {
		Rete__ReferralInfo r = RETE__REFERRAL_INFO__INIT;
		Rete__StatusReason reason = RETE__STATUS_REASON__INIT, creason[5];
		Rete__Outcome outcome = RETE__OUTCOME__INIT;
		Rete__StatusChange ch[5], *hist[5];
		size_t si = 0;

		r.id = rnd_str(sb[si++], sizeof(sb[0]));
		if (r.id == NULL || *r.id == '\0')
			r.id = (char *)"r-1";
		r.requester = rnd_str(sb[si++], 80);
		r.performer = rnd_str(sb[si++], 80);
		r.service = rnd_str(sb[si++], sizeof(sb[0]));
		r.priority = (Rete__Priority)rnd_enum();
		r.case_id = rnd_str(sb[si++], 300);
		r.age_band = (Rete__AgeBand)rnd_enum();
		r.status = (Rete__Status)rnd_enum();
		r.business_status = rnd_str(sb[si++], 300);
		if (rnd() % 3 != 0) {
			reason.code = rnd_str(sb[si++], 300);
			reason.text = rnd_str(sb[si++], 300);
			r.status_reason = &reason;
		}
		if (rnd() % 3 != 0) {
			outcome.result = (Rete__OutcomeResult)rnd_enum();
			outcome.reason = (Rete__OutcomeReason)rnd_enum();
			outcome.text = rnd_str(sb[si++], 300);
			r.outcome = &outcome;
		}
		r.previous_referral = rnd_str(sb[si++], 80);
		r.index = rnd() % 2 ? rnd() : rnd() % 300;
		r.requested_at = rnd_i64();
		r.received_at = rnd_i64();
		r.accepted_at = rnd_i64();
		r.rejected_at = rnd_i64();
		r.started_at = rnd_i64();
		r.completed_at = rnd_i64();
		r.closed_at = rnd_i64();
		r.due_at = rnd_i64();
		r.overdue = rnd() % 2;
		r.last_index = rnd() % 2 ? rnd() : 0;
		r.n_history = rnd() % 6;
		r.history = hist;
		for (size_t i = 0; i < r.n_history; i++) {
			rete__status_change__init(&ch[i]);
			ch[i].index = rnd() % 2 ? rnd() : 0;
			ch[i].at = rnd_i64();
			ch[i].status = (Rete__Status)rnd_enum();
			ch[i].business_status = rnd_str(sb[si], 100);
			ch[i].by = (i % 2) ? (char *)"social.mantova" : NULL;
			if (rnd() % 2) {
				rete__status_reason__init(&creason[i]);
				creason[i].code = rnd() % 2 ? (char *)"not-delivered" : NULL;
				ch[i].status_reason = &creason[i];
			}
			hist[i] = &ch[i];
		}
		size_t n = rete__referral_info__get_packed_size(&r);
		assert_true(n <= sizeof(want));
		assert_int_equal(rete__referral_info__pack(&r, want), n);
		assert_int_equal(store_referral_encode(&r, got, sizeof(got)), n);
		assert_memory_equal(got, want, n);
		/* one byte short: left to protobuf-c */
		assert_int_equal(store_referral_encode(&r, got, n - 1), 0);
	}
	{
		/* a field unknown to this version (a newer broker's record) */
		Rete__ReferralInfo r = RETE__REFERRAL_INFO__INIT;
		ProtobufCMessageUnknownField u = {99, PROTOBUF_C_WIRE_TYPE_VARINT, 1,
						  (uint8_t *)"\x01"};
		r.id = (char *)"r-2";
		r.base.n_unknown_fields = 1;
		r.base.unknown_fields = &u;
		assert_int_equal(store_referral_encode(&r, got, sizeof(got)), 0);
	}
	{
		/* sub-messages whose size takes two and three bytes (written in
		 * place, then moved), and every buffer too short by up to 40
		 * bytes: 0, never other bytes */
		static char big[20001], mid[201];
		Rete__ReferralInfo r = RETE__REFERRAL_INFO__INIT;
		Rete__StatusReason reason = RETE__STATUS_REASON__INIT, creason = reason;
		Rete__StatusChange ch = RETE__STATUS_CHANGE__INIT, *hist[1] = {&ch};
		memset(big, 'x', sizeof(big) - 1);
		memset(mid, 'y', sizeof(mid) - 1);
		r.id = (char *)"r-3";
		reason.text = big;
		r.status_reason = &reason;
		creason.code = mid;
		ch.index = 7;
		ch.status_reason = &creason;
		r.history = hist;
		r.n_history = 1;
		size_t n = rete__referral_info__get_packed_size(&r);
		assert_int_equal(rete__referral_info__pack(&r, want), n);
		assert_int_equal(store_referral_encode(&r, got, sizeof(got)), n);
		assert_memory_equal(got, want, n);
		for (size_t cut = 1; cut <= 40; cut++)
			assert_int_equal(store_referral_encode(&r, got, n - cut), 0);
	}
}

/* The log entry is encoded (store_log_entry_encode) into the very bytes
 * protobuf-c packs, whatever the index, the time (negative ones too: ten
 * bytes of varint) and the signed message's length (none, and the lengths
 * where its varint grows); a buffer one byte short gets 0. */
static void test_log_entry_encoding(void **state)
{
	(void)state;
	static const uint64_t idx[] = {0, 1, 127, 128, 16383, 16384, 1000000, UINT64_MAX};
	static const int64_t at[] = {0, 1, -1, 127, 128, 1764000000000, INT64_MIN, INT64_MAX};
	static const size_t len[] = {0, 1, 127, 128, 1024, 16383, 16384, 70000};
	static uint8_t sm[70000], want[70100], got[70100];

	for (size_t i = 0; i < sizeof(sm); i++)
		sm[i] = (uint8_t)rnd();
	for (size_t a = 0; a < 8; a++)
		for (size_t t = 0; t < 8; t++)
			for (size_t l = 0; l < 8; l++) {
				Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
				le.index = idx[a];
				le.logged_at = at[t];
				le.signed_message.data = sm;
				le.signed_message.len = len[l];
				size_t n = rete__log_entry__get_packed_size(&le);
				assert_int_equal(rete__log_entry__pack(&le, want), n);
				assert_int_equal(
				    store_log_entry_encode(idx[a], at[t], sm, len[l], NULL, 0), n);
				assert_int_equal(store_log_entry_encode(idx[a], at[t], sm, len[l],
									got, sizeof(got)),
						 n);
				assert_memory_equal(got, want, n);
				if (n > 0)
					assert_int_equal(store_log_entry_encode(idx[a], at[t], sm,
										len[l], got, n - 1),
							 0);
			}
}

/* Appends and acks interleaved in the same commits, on the same queues
 * (through the commit's cursors, while records beside them are deleted),
 * some acks of entries appended earlier in the very commit, some of
 * entries already acked: after every commit the queues, the sealed parts
 * and was_present are those of a model. */
static void test_queue_interleaved(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	rete_store *s = open_new(dir, 0);
	static const char *to[2] = {CPI, ASST};
	static bool queued[2000];
	static int dest[2000];
	static const uint8_t sealed[40] = {7};
	rete_msg m = {{0}};
	uint64_t next = 0;

	for (int batch = 0; batch < 40; batch++) {
		rete_store_op ops[40];
		rete_buf bufs[40];
		bool present[40];
		size_t nops = 1 + rnd() % 40, nb = 0;
		for (size_t i = 0; i < nops; i++) {
			if (next == 0 || rnd() % 2 == 0) {
				char id[32];
				int d = (int)(rnd() % 2);
				snprintf(id, sizeof(id), "qi-%llu", (unsigned long long)next);
				bufs[nb] = referral(id, SOCIAL, to[d], "case-q",
						    RETE__PRIORITY__PRIORITY_ROUTINE);
				ops[i] = append_op(&bufs[nb++], 1000 + (int64_t)next);
				ops[i].in.sealed = sealed;
				ops[i].in.sealed_len = sizeof(sealed);
				queued[next] = true;
				dest[next++] = d;
			} else {
				uint64_t x = rnd() % next;
				memset(&ops[i], 0, sizeof(ops[i]));
				ops[i].kind = rnd() % 4 ? RETE_STORE_OP_ACK : RETE_STORE_OP_EXPIRE;
				ops[i].in.recipient = to[dest[x]];
				ops[i].in.index = x;
				present[i] = queued[x];
				queued[x] = false;
			}
		}
		assert_int_equal(rete_store_commit(s, ops, nops, &m), RETE_OK);
		for (size_t i = 0; i < nops; i++) {
			if (ops[i].kind == RETE_STORE_OP_APPEND) {
				assert_int_equal(ops[i].status, RETE_STORE_ACCEPTED);
			} else {
				assert_int_equal(ops[i].status, RETE_STORE_DONE);
				assert_int_equal(ops[i].was_present, present[i]);
			}
		}
		for (size_t i = 0; i < nb; i++)
			rete_buf_free(&bufs[i]);
		for (int d = 0; d < 2; d++) {
			uint64_t idx[2000];
			size_t n = 0, k = 0;
			assert_int_equal(
			    rete_store_queue_peek(s, NULL, to[d], 0, 2000, idx, &n, &m), RETE_OK);
			for (uint64_t x = 0; x < next; x++) {
				if (!queued[x] || dest[x] != d)
					continue;
				assert_true(k < n);
				assert_int_equal(idx[k], x);
				k++;
			}
			assert_int_equal(k, n);
		}
		for (uint64_t x = 0; x < next; x++) {
			rete_buf b = {0};
			assert_int_equal(rete_store_blob(s, NULL, x, &b, &m),
					 queued[x] ? RETE_OK : RETE_ENOENT);
			rete_buf_free(&b);
		}
	}
	rete_store_close(&s);
	tu_rmrf(dir);
	free(dir);
}

/* ---- a full disk ------------------------------------------------------------ */

/* full_child fills the disk as far as RLIMIT_FSIZE lets it: a commit must
 * fail with RETE_EFULL, the store must hold exactly the committed batches,
 * and once there is room again appending goes on. The commits fill one
 * memo (rete_store_commit_memo): the failed one must leave nothing of its
 * entries in it, or the proofs through it of the entries appended in
 * their place would differ. */
static int full_child(const char *dir)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	struct rlimit rl;
	struct stat st;
	char path[4200];
	uint64_t committed = 0, sz;
	rete_err e = RETE_OK;
	rete_store_options o = {16 << 20, 0};
	rete_merkle_memo *memo = rete_merkle_memo_new();

	if (memo == NULL)
		return 19;
	signal(SIGXFSZ, SIG_IGN);
	if (rete_store_open_ex(&s, dir, RETE_STORE_CREATE, &o, &m) != RETE_OK)
		return 20;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) != 0 || getrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 21;
	rl.rlim_cur = (rlim_t)st.st_size + (256 << 10);
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 22;
	for (int i = 0; i < 10000 && e == RETE_OK; i++) {
		rete_store_op ops[20];
		rete_buf bufs[20];
		for (int k = 0; k < 20; k++) {
			char id[32];
			snprintf(id, sizeof(id), "f-%d-%d", i, k);
			bufs[k] =
			    referral(id, SOCIAL, CPI, "case-f", RETE__PRIORITY__PRIORITY_ROUTINE);
			ops[k] = append_op(&bufs[k], i);
		}
		e = rete_store_commit_memo(s, ops, 20, memo, &m);
		for (int k = 0; k < 20; k++)
			rete_buf_free(&bufs[k]);
		if (e == RETE_OK)
			committed += 20;
	}
	if (e != RETE_EFULL) {
		fprintf(stderr, "full: %s (%s)\n", rete_strerror(e), m.text);
		return 23;
	}
	if (committed == 0)
		return 24;
	if (rete_store_size(s, NULL, &sz, &m) != RETE_OK || sz != committed)
		return 25;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
		return 26;
	append_many(s, "after", committed, 40, 20);
	if (rete_store_size(s, NULL, &sz, &m) != RETE_OK || sz != committed + 40)
		return 27;
	if (!memo_proofs_ok(s, memo))
		return 29;
	rete_merkle_memo_free(memo);
	rete_store_close(&s);
	if (rete_store_open(&s, dir, RETE_STORE_RDONLY, &m) != RETE_OK)
		return 28;
	check_tree(s, committed + 40, 97);
	rete_store_close(&s);
	return 0;
}

static void test_disk_full(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("store");
	int st = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_child(dir));
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_roots_proofs),
	    cmocka_unit_test(test_append_expected_entry),
	    cmocka_unit_test(test_dedup),
	    cmocka_unit_test(test_projection_lifecycle),
	    cmocka_unit_test(test_overdue_and_expiry),
	    cmocka_unit_test(test_queue_blobs_cases),
	    cmocka_unit_test(test_checkpoints_rtxn),
	    cmocka_unit_test(test_open_errors_and_schema),
	    cmocka_unit_test(test_tiny_map_grows),
	    cmocka_unit_test(test_scratch_store),
	    cmocka_unit_test(test_growth_replays_batch),
	    cmocka_unit_test(test_threads_during_growth),
	    cmocka_unit_test(test_reads_never_go_back),
	    cmocka_unit_test(test_reader_process),
	    cmocka_unit_test(test_backup_while_appending),
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_commit_memo_proofs),
	    cmocka_unit_test(test_commit_memo_leaves),
	    cmocka_unit_test(test_commit_checkpoint),
	    cmocka_unit_test(test_parked_lists),
	    cmocka_unit_test(test_parked_with_batch),
	    cmocka_unit_test(test_decoded_message_dedup),
	    cmocka_unit_test(test_referral_encoding),
	    cmocka_unit_test(test_log_entry_encoding),
	    cmocka_unit_test(test_queue_interleaved),
	    cmocka_unit_test(test_walks_refuse_damaged_records),
	};
	return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
