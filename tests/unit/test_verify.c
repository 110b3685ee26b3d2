/* test_verify.c — rete_verify_log on real LMDB stores built from real
 * signed messages: a good log holds (with and without the replay, on one
 * or several threads, across chunk boundaries); a byte flipped inside
 * data.mdb, a signature by a key the directory does not hold, a sender the
 * directory does not know, a checkpoint signed by another key, a rewritten
 * projection, and an older backup put back over a newer log are each caught
 * and the first failing entry is named (a projection the log never created
 * or one missing too); keys rotated by a later Directory
 * entry are honoured from that entry on. Across chunks (the next chunk is
 * decoded and verified before the one before it is checked): a key rotated
 * by the last entry of a chunk, or inside a grain, holds from there on and
 * the old key, although guessed, no longer does; a lifecycle failure the replay finds in one chunk
 * is reported before a bad signature in the next, and a bad signature in one chunk before an entry
 * missing from the next; a session fed more than two chunks at once holds, and stops at a changed
 * entry. The stored tree: a Merkle node or a leaf hash overwritten (the entries intact) fails at
 * the entry that completes it. A broken LMDB page among the next chunk's entries (MDB_CORRUPTED,
 * which spoils the transaction that reads it) is reported as such at its first entry, and does not
 * hide a failure of the chunk before. The counts of a failed run (checkpoints, the latest one,
 * Directories) stop at the failure, even when phase B went past it. */
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "codec.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"
#include "testutil.h"
#include "verify.h"

#define ORIGIN "rete.test/mantova"
#define BROKER "broker.mantova"
#define SOCIAL "social.mantova"
#define CPI    "cpi.mantova"
#define ASST   "asst.mantova"

enum { K_BROKER, K_SOCIAL, K_CPI, K_ASST, K_OTHER, K_SOCIAL2, K_N };
static rete_seckey *keys[K_N];

static int keys_setup(void **state)
{
	(void)state;
	for (int i = 0; i < K_N; i++)
		if (rete_seckey_generate(&keys[i], NULL) != RETE_OK)
			return -1;
	return 0;
}

static int keys_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < K_N; i++)
		rete_seckey_free(&keys[i]);
	return 0;
}

/* A log being built. */
struct log {
	char *dir;
	rete_store *s;
	int64_t t;
	const rete_seckey *social; /* the key the directory in force has for SOCIAL */
};

/* sign_directory: the broker's Directory entry `id` listing parties
 * pp[0..n) (signed bytes: the caller frees). */
static rete_buf sign_directory(const char *id, uint64_t serial, Rete__Party **pp, size_t n)
{
	Rete__Message msg;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__PriorityLimit l = RETE__PRIORITY_LIMIT__INIT, *lp = &l;

	tu_message_init(&msg, id, BROKER, "", "", ORIGIN);
	d.serial = serial;
	d.n_parties = n;
	d.parties = pp;
	l.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	l.limit = (char *)"5d";
	d.n_limits = 1;
	d.limits = &lp;
	d.time_zone = (char *)"Europe/Rome";
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	return tu_sign(&msg, keys[K_BROKER]);
}

static rete_buf directory(const char *id, uint64_t serial, const rete_seckey *social)
{
	Rete__Party p[4], *pp[4];
	const char *ids[4] = {BROKER, SOCIAL, CPI, ASST};
	const rete_seckey *ks[4] = {keys[K_BROKER], social, keys[K_CPI], keys[K_ASST]};
	Rete__PartyKind kinds[4] = {
	    RETE__PARTY_KIND__PARTY_KIND_BROKER, RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES,
	    RETE__PARTY_KIND__PARTY_KIND_JOB_CENTRE, RETE__PARTY_KIND__PARTY_KIND_HEALTH};
	size_t np = 0;

	/* social NULL: SOCIAL is not in this Directory (removed) */
	for (int i = 0; i < 4; i++) {
		if (ks[i] == NULL)
			continue;
		rete__party__init(&p[i]);
		p[i].id = (char *)ids[i];
		p[i].name = (char *)ids[i];
		p[i].kind = kinds[i];
		p[i].public_key.data = (uint8_t *)ks[i]->pub.ed;
		p[i].public_key.len = RETE_PK_LEN;
		pp[np++] = &p[i];
	}
	return sign_directory(id, serial, pp, np);
}

static rete_buf referral(const char *id, const char *sender, const char *recipient,
			 const char *staff, const rete_seckey *k)
{
	Rete__Message msg;
	Rete__Referral r = RETE__REFERRAL__INIT;
	Rete__Operator op = RETE__OPERATOR__INIT;
	tu_message_init(&msg, id, sender, recipient, "case-7", ORIGIN);
	op.staff_id = (char *)staff;
	op.role = (char *)"social-worker";
	msg.operator_ = &op;
	r.service = (char *)"employment-orientation";
	r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	r.reason_code = (char *)"unemployment";
	r.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	return tu_sign(&msg, k);
}

static rete_buf update(const char *id, const char *sender, const char *recipient, const char *ref,
		       Rete__Status st, const rete_seckey *k)
{
	Rete__Message msg;
	tu_message_init(&msg, id, sender, recipient, "case-7", ORIGIN);
	return tu_sign_update(&msg, ref, st, k);
}

static rete_buf delivery(const char *id, const char *to, uint64_t index, const char *ref)
{
	Rete__Message msg;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	tu_message_init(&msg, id, BROKER, to, "", ORIGIN);
	d.index = index;
	d.message_id = (char *)ref;
	d.referral_id = (char *)ref;
	d.delivered_at = 1790000005000;
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &d;
	return tu_sign(&msg, keys[K_BROKER]);
}

/* append commits b (freed) and checks it was accepted at the next index. */
static uint64_t append(struct log *L, rete_buf b)
{
	return tu_append(L->s, &L->t, b);
}

/* ack records that recipient acked entry index (what the broker commits
 * beside the Delivery entry it logs). */
static void ack(struct log *L, const char *recipient, uint64_t index)
{
	rete_store_op op;
	rete_msg m = {{0}};
	memset(&op, 0, sizeof(op));
	op.kind = RETE_STORE_OP_ACK;
	op.in.recipient = recipient;
	op.in.index = index;
	assert_int_equal(rete_store_commit(L->s, &op, 1, &m), RETE_OK);
	assert_int_equal(op.status, RETE_STORE_DONE);
	assert_true(op.was_present);
}

/* checkpoint signs the current size with k and stores it; returns the note
 * (caller frees). */
static char *checkpoint(struct log *L, const rete_seckey *k)
{
	return tu_checkpoint(L->s, ORIGIN, k);
}

static void log_open(struct log *L, const char *tag)
{
	rete_msg m = {{0}};
	memset(L, 0, sizeof(*L));
	L->dir = tu_tmpdir(tag);
	assert_non_null(L->dir);
	L->t = 1790000000000;
	assert_int_equal(rete_store_open(&L->s, L->dir, RETE_STORE_CREATE, &m), RETE_OK);
}

static void log_close(struct log *L)
{
	rete_store_close(&L->s);
	tu_rmrf(L->dir);
	free(L->dir);
}

/* standard builds the 12-entry log with checkpoints at 5, 8 and 12:
 *  0 directory   1 referral r1 social->cpi ("staff-flip-01")
 *  2 update r1 accepted (cpi)   3 referral r2 social->asst
 *  4 update r1 in-progress (cpi)   [checkpoint 5]
 *  5 delivery of r2 (broker)   6 update r2 accepted (asst)
 *  7 referral r3 cpi->social ("staff-flip-07")   [checkpoint 8]
 *  8..11 referrals r4..r7 social->cpi   [checkpoint 12] */
static void standard(struct log *L)
{
	char id[32], staff[32];
	append(L, directory("dir-1", 1, keys[K_SOCIAL]));
	append(L, referral("r1", SOCIAL, CPI, "staff-flip-01", keys[K_SOCIAL]));
	append(L, update("u1", CPI, SOCIAL, "r1", RETE__STATUS__STATUS_ACCEPTED, keys[K_CPI]));
	append(L, referral("r2", SOCIAL, ASST, "staff-0003", keys[K_SOCIAL]));
	append(L, update("u2", CPI, SOCIAL, "r1", RETE__STATUS__STATUS_IN_PROGRESS, keys[K_CPI]));
	free(checkpoint(L, keys[K_BROKER]));
	append(L, delivery("d1", SOCIAL, 3, "r2"));
	ack(L, ASST, 3); /* the broker logs a Delivery with the ACK it records */
	append(L, update("u3", ASST, SOCIAL, "r2", RETE__STATUS__STATUS_ACCEPTED, keys[K_ASST]));
	append(L, referral("r3", CPI, SOCIAL, "staff-flip-07", keys[K_CPI]));
	free(checkpoint(L, keys[K_BROKER]));
	for (int i = 4; i <= 7; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		snprintf(staff, sizeof(staff), "staff-%04d", i + 4);
		append(L, referral(id, SOCIAL, CPI, staff, keys[K_SOCIAL]));
	}
	free(checkpoint(L, keys[K_BROKER]));
}

static rete_verify_options opts(bool replay, unsigned threads)
{
	rete_verify_options o;
	memset(&o, 0, sizeof(o));
	o.broker_key = keys[K_BROKER]->pub;
	o.replay = replay;
	o.threads = threads;
	return o;
}

/* reopen_ro closes the writer and opens the folder read-only. */
static void reopen_ro(struct log *L)
{
	rete_msg m = {{0}};
	rete_store_close(&L->s);
	assert_int_equal(rete_store_open(&L->s, L->dir, RETE_STORE_RDONLY, &m), RETE_OK);
}

struct progress {
	uint64_t calls, last_done, last_total;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	p->calls++;
	p->last_done = done;
	p->last_total = total;
}

/* ---- a good log ----------------------------------------------------------- */

static void test_good_log_holds(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	struct progress pr = {0};
	uint8_t root[RETE_MERKLE_HASH];
	(void)state;

	log_open(&L, "verify-good");
	standard(&L);
	assert_int_equal(rete_store_root(L.s, NULL, 12, root, &m), RETE_OK);
	reopen_ro(&L);
	for (int replay = 0; replay <= 1; replay++)
		for (unsigned threads = 1; threads <= 4; threads += 3) {
			rete_verify_options o = opts(replay, threads);
			o.progress = on_progress;
			o.progress_ctx = &pr;
			memset(&pr, 0, sizeof(pr));
			assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
			assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
			assert_int_equal(rep.size, 12);
			assert_int_equal(rep.entries, 12);
			assert_int_equal(rep.checkpoints, 3);
			assert_int_equal(rep.directories, 1);
			assert_true(rep.has_checkpoint);
			assert_int_equal(rep.latest_size, 12);
			assert_memory_equal(rep.latest_root, root, RETE_MERKLE_HASH);
			assert_memory_equal(rep.root, root, RETE_MERKLE_HASH);
			assert_false(rep.has_bad_entry);
			assert_string_equal(rep.origin, ORIGIN);
			assert_string_equal(rep.reason, "");
			assert_int_equal(rep.replayed, replay);
			assert_int_equal(rep.referrals, replay ? 7 : 0);
			assert_true(pr.calls >= 1);
			assert_int_equal(pr.last_done, 12);
			assert_int_equal(pr.last_total, 12);
		}
	log_close(&L);
}

static void test_empty_log_holds(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 0);
	rete_msg m = {{0}};
	(void)state;

	log_open(&L, "verify-empty");
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
	assert_int_equal(rep.size, 0);
	assert_int_equal(rep.checkpoints, 0);
	assert_false(rep.has_checkpoint);
	log_close(&L);
}

/* ---- tampering ------------------------------------------------------------- */

/* flip_all flips one byte of every occurrence of s in file path (LMDB may
 * keep stale copies of a page; the live one is among them). Returns how
 * many were flipped. */
static int flip_all(const char *path, const char *s)
{
	size_t len, sl = strlen(s);
	char *data = tu_read_file(path, &len);
	int n = 0;
	assert_non_null(data);
	for (size_t i = 0; i + sl <= len; i++)
		if (memcmp(data + i, s, sl) == 0) {
			data[i + sl - 1] ^= 0x01; /* '1' <-> '0', still UTF-8 */
			n++;
		}
	assert_int_equal(tu_write_file(path, data, len), 0);
	free(data);
	return n;
}

static void test_flipped_byte_names_entry(void **state)
{
	const char *which[2] = {"staff-flip-01", "staff-flip-07"};
	const uint64_t index[2] = {1, 7};
	(void)state;

	for (int k = 0; k < 2; k++) {
		struct log L;
		rete_verify_report rep;
		rete_verify_options o = opts(true, 2);
		rete_msg m = {{0}};
		char path[4096];

		log_open(&L, "verify-flip");
		standard(&L);
		rete_store_close(&L.s);
		snprintf(path, sizeof(path), "%s/data.mdb", L.dir);
		assert_true(flip_all(path, which[k]) >= 1);
		assert_int_equal(rete_store_open(&L.s, L.dir, RETE_STORE_RDONLY, &m), RETE_OK);
		assert_int_not_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
		assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
		assert_true(rep.has_bad_entry);
		assert_int_equal(rep.bad_index, index[k]);
		assert_int_equal(rep.entries, index[k]);
		assert_string_equal(m.text, rep.reason);
		print_message("%s\n", rep.reason);
		{
			char want[32];
			snprintf(want, sizeof(want), "entry %llu:", (unsigned long long)index[k]);
			assert_non_null(strstr(rep.reason, want));
		}
		log_close(&L);
	}
}

/* A stored LogEntry in the middle of the log rewritten with its index
 * field written twice (protobuf keeps the last: the same values, other
 * bytes): the auditor reads entries in place and decodes the canonical
 * form without protobuf-c, and must still refuse this one, as the strict
 * decoding did, at that entry and with that sentence. */
static void test_noncanonical_entry_refused(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(false, 2);
	rete_msg m = {{0}};
	rete_buf e = {0};
	uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 5}, *twice;
	(void)state;

	log_open(&L, "verify-noncanon");
	standard(&L);
	assert_int_equal(rete_store_entry(L.s, NULL, 5, &e, &m), RETE_OK);
	assert_int_equal(e.data[0], 0x08); /* index 5, first */
	twice = malloc(e.len + 2);
	assert_non_null(twice);
	twice[0] = 0x08;
	twice[1] = 0x05;
	memcpy(twice + 2, e.data, e.len);
	rete_store_close(&L.s);
	tu_raw_put(L.dir, "entries", key, sizeof(key), twice, e.len + 2);
	reopen_ro(&L);
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EDECODE);
	assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
	assert_true(rep.has_bad_entry);
	assert_int_equal(rep.bad_index, 5);
	assert_int_equal(rep.entries, 5);
	print_message("%s\n", rep.reason);
	char want[512];
	snprintf(want, sizeof(want),
		 "entry 5: the LogEntry does not decode strictly: LogEntry is not in canonical "
		 "form: it re-encodes to %zu bytes instead of the %zu received",
		 e.len, e.len + 2);
	assert_non_null(strstr(rep.reason, want));
	free(twice);
	rete_buf_free(&e);
	log_close(&L);
}

static void test_foreign_key_fails(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(false, 2);
	rete_msg m = {{0}};
	(void)state;

	log_open(&L, "verify-foreign");
	standard(&L);
	/* entry 12: claims to be social.mantova, signed by another key */
	append(&L, referral("r8", SOCIAL, CPI, "staff-x", keys[K_OTHER]));
	append(&L, referral("r9", SOCIAL, CPI, "staff-y", keys[K_SOCIAL]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
	assert_true(rep.has_bad_entry);
	assert_int_equal(rep.bad_index, 12);
	assert_string_equal(rep.reason, "entry 12: signature of social.mantova does not verify "
					"with the key of the directory in force (entry 0)");
	assert_int_equal(rep.checkpoints, 3);
	log_close(&L);
}

static void test_unknown_sender_fails(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(false, 1);
	rete_msg m = {{0}};
	(void)state;

	log_open(&L, "verify-unknown");
	standard(&L);
	append(&L, referral("z1", "school.mantova", CPI, "staff-z", keys[K_OTHER]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.bad_index, 12);
	assert_non_null(strstr(rep.reason, "school.mantova is not in the directory in force "
					   "(entry 0)"));
	log_close(&L);
}

static void test_forged_broker_body_fails(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(false, 2);
	rete_msg m = {{0}};
	Rete__Message msg;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	(void)state;

	log_open(&L, "verify-forged");
	standard(&L);
	/* a Delivery signed by an agency, not by the broker (to r3's sender,
	 * as the broker's would be: only its signature is wrong) */
	tu_message_init(&msg, "d9", BROKER, CPI, "", ORIGIN);
	d.index = 7;
	d.message_id = (char *)"r3";
	d.referral_id = (char *)"r3";
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &d;
	append(&L, tu_sign(&msg, keys[K_SOCIAL]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.bad_index, 12);
	assert_non_null(strstr(rep.reason, "does not verify with the broker key given"));
	log_close(&L);
}

/* A Delivery names the entry of the message it settles, once (rev-deliv
 * finding 1): one that says another message than its entry's, or a second
 * one of an entry delivered already, fails. */
static void test_delivery_other_entry_fails(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(false, 2);
	rete_msg m = {{0}};
	(void)state;

	log_open(&L, "verify-dlv-other");
	standard(&L);
	append(&L, delivery("d9", CPI, 7, "r9")); /* entry 7 is r3 of cpi */
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ECORRUPT);
	assert_int_equal(rep.bad_index, 12);
	assert_non_null(strstr(rep.reason, "says message r9 to cpi.mantova, but entry 7 is "
					   "message r3 of cpi.mantova"));
	log_close(&L);

	log_open(&L, "verify-dlv-second");
	standard(&L);
	append(&L, delivery("d9", SOCIAL, 3, "r2")); /* delivered at entry 5 */
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ECORRUPT);
	assert_int_equal(rep.bad_index, 12);
	assert_non_null(strstr(rep.reason, "names entry 3, which is not an agency's message "
					   "awaiting its delivery"));
	log_close(&L);
}

static void test_checkpoint_other_key_fails(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	(void)state;

	log_open(&L, "verify-ckpt");
	standard(&L);
	append(&L, referral("r8", SOCIAL, CPI, "staff-x", keys[K_SOCIAL]));
	free(checkpoint(&L, keys[K_OTHER])); /* size 13 signed by another key */
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
	assert_false(rep.has_bad_entry);
	print_message("%s\n", rep.reason);
	assert_non_null(strstr(rep.reason, "checkpoint at size 13"));
	assert_int_equal(rep.entries, 13);
	assert_int_equal(rep.checkpoints, 3);
	log_close(&L);
}

/* The key changes a verification reports (rete_verify_key_change). */
struct kc_seen {
	int n;
	rete_verify_key_change last;
	char party[64];
};

static void kc_note(void *ctx, const rete_verify_key_change *kc)
{
	struct kc_seen *k = ctx;
	k->n++;
	k->last = *kc;
	snprintf(k->party, sizeof(k->party), "%s", kc->party);
}

static void test_key_rotation(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	struct kc_seen seen = {0};
	(void)state;

	o.key_change = kc_note;
	o.key_change_ctx = &seen;
	log_open(&L, "verify-rotate");
	standard(&L);
	/* entry 12: a new directory gives social.mantova a new key */
	append(&L, directory("dir-2", 2, keys[K_SOCIAL2]));
	append(&L, referral("r8", SOCIAL, CPI, "staff-x", keys[K_SOCIAL2]));
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	assert_int_equal(rep.directories, 2);
	assert_int_equal(rep.entries, 14);
	/* the change is reported (not a failure): party, entry, both keys */
	assert_int_equal(rep.key_changes, 1);
	assert_int_equal(rep.key_changes_back, 0);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.party, SOCIAL);
	assert_int_equal(seen.last.index, 12);
	assert_int_equal(seen.last.prev_index, 0);
	assert_memory_equal(seen.last.old_key, keys[K_SOCIAL]->pub.ed, RETE_PK_LEN);
	assert_memory_equal(seen.last.new_key, keys[K_SOCIAL2]->pub.ed, RETE_PK_LEN);
	assert_false(seen.last.back);
	/* the old key is no longer good after entry 12 */
	append(&L, referral("r9", SOCIAL, CPI, "staff-y", keys[K_SOCIAL]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.bad_index, 14);
	assert_non_null(strstr(rep.reason, "directory in force (entry 12)"));
	log_close(&L);
}

/* A key that changes and changes back (the broker's operator's own key
 * under social.mantova for a while): both changes reported, the second
 * flagged as going back to the key of entry 0; the log still holds. */
static void test_key_change_back(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	struct kc_seen seen = {0};
	(void)state;

	o.key_change = kc_note;
	o.key_change_ctx = &seen;
	log_open(&L, "verify-back");
	standard(&L);
	append(&L, directory("dir-2", 2, keys[K_SOCIAL2])); /* entry 12 */
	append(&L, referral("r8", SOCIAL, CPI, "staff-x", keys[K_SOCIAL2]));
	append(&L, directory("dir-3", 3, keys[K_SOCIAL])); /* entry 14: back */
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	assert_int_equal(rep.key_changes, 2);
	assert_int_equal(rep.key_changes_back, 1);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.last.index, 14);
	assert_int_equal(seen.last.prev_index, 12);
	assert_int_equal(seen.last.old_from, 12);
	assert_false(seen.last.added_back);
	assert_true(seen.last.back);
	assert_int_equal(seen.last.back_index, 0);
	assert_memory_equal(seen.last.new_key, keys[K_SOCIAL]->pub.ed, RETE_PK_LEN);
	log_close(&L);
}

/* big_directory: a Directory of the four parties of directory() followed
 * by n agencies "agNNN.mantova" (keys K_CPI, K_ASST in turn), and at the
 * end social.mantova a second time with K_OTHER. */
static rete_buf big_directory(const char *id, size_t n)
{
	size_t np = n + 5;
	Rete__Party *p = calloc(np, sizeof(*p)), **pp = calloc(np, sizeof(*pp));
	char(*ids)[32] = calloc(np, sizeof(*ids));
	const char *fixed[4] = {BROKER, SOCIAL, CPI, ASST};
	const rete_seckey *fk[4] = {keys[K_BROKER], keys[K_SOCIAL], keys[K_CPI], keys[K_ASST]};
	rete_buf out;

	assert_non_null(p);
	assert_non_null(pp);
	assert_non_null(ids);
	for (size_t i = 0; i < np; i++) {
		const rete_seckey *k;
		if (i < 4) {
			snprintf(ids[i], sizeof(ids[i]), "%s", fixed[i]);
			k = fk[i];
		} else if (i < np - 1) {
			snprintf(ids[i], sizeof(ids[i]), "ag%03zu.mantova", i - 4);
			k = (i % 2) != 0 ? keys[K_CPI] : keys[K_ASST];
		} else {
			snprintf(ids[i], sizeof(ids[i]), "%s", SOCIAL);
			k = keys[K_OTHER];
		}
		rete__party__init(&p[i]);
		p[i].id = ids[i];
		p[i].name = ids[i];
		p[i].kind = i == 0 ? RETE__PARTY_KIND__PARTY_KIND_BROKER
				   : RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES;
		p[i].public_key.data = (uint8_t *)k->pub.ed;
		p[i].public_key.len = RETE_PK_LEN;
		pp[i] = &p[i];
	}
	out = sign_directory(id, 1, pp, np);
	free(p);
	free(pp);
	free(ids);
	return out;
}

/* A Directory of hundreds of parties (the auditor looks senders up in an
 * index of it): every agency's key is found, first, last and between; a
 * sender it does not list is still refused; an id it lists twice has the
 * key of its first listing, as before the index. */
static void test_big_directory(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(false, 2);
	rete_msg m = {{0}};
	char id[32], who[32];
	(void)state;

	log_open(&L, "verify-bigdir");
	append(&L, big_directory("dir-big", 400));
	for (size_t i = 0; i < 400; i += 7) {
		snprintf(id, sizeof(id), "b%zu", i);
		snprintf(who, sizeof(who), "ag%03zu.mantova", i);
		append(&L, referral(id, who, CPI, "staff-b",
				    (i + 4) % 2 != 0 ? keys[K_CPI] : keys[K_ASST]));
	}
	append(&L, referral("b-last", "ag399.mantova", CPI, "staff-b", keys[K_CPI]));
	append(&L, referral("b-social", SOCIAL, CPI, "staff-b", keys[K_SOCIAL]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
	assert_int_equal(rep.entries, 61);
	/* social.mantova's second listing (K_OTHER) is not its key */
	append(&L, referral("b-other", SOCIAL, CPI, "staff-b", keys[K_OTHER]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.bad_index, 61);
	assert_string_equal(rep.reason, "entry 61: signature of social.mantova does not verify "
					"with the key of the directory in force (entry 0)");
	log_close(&L);

	log_open(&L, "verify-bigdir-unknown");
	append(&L, big_directory("dir-big", 400));
	append(&L, referral("b0", "ag000.mantova", CPI, "staff-b", keys[K_ASST]));
	append(&L, referral("bx", "ag400.mantova", CPI, "staff-b", keys[K_CPI]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.bad_index, 2);
	assert_non_null(strstr(rep.reason, "ag400.mantova is not in the directory in force "
					   "(entry 0)"));
	log_close(&L);
}

/* A party removed from the Directory and added back under another key is
 * a key change (compared with its last key in any earlier Directory, not
 * only the one in force); added back later with its earlier key, the
 * change goes back (rev-keys finding 2). */
static void test_key_change_readd(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	struct kc_seen seen = {0};
	(void)state;

	o.key_change = kc_note;
	o.key_change_ctx = &seen;
	log_open(&L, "verify-readd");
	standard(&L);
	append(&L, directory("dir-2", 2, NULL));	    /* entry 12: social removed */
	append(&L, directory("dir-3", 3, keys[K_SOCIAL2])); /* 13: back, another key */
	append(&L, referral("r8", SOCIAL, CPI, "staff-x", keys[K_SOCIAL2])); /* 14 */
	append(&L, directory("dir-4", 4, NULL));			     /* 15: removed again */
	append(&L, directory("dir-5", 5, keys[K_SOCIAL])); /* 16: the earlier key */
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	if (rep.key_changes != 2 || rep.key_changes_back != 1)
		fail_msg("removed and added back: %llu key changes, %llu back (want 2, 1)",
			 (unsigned long long)rep.key_changes,
			 (unsigned long long)rep.key_changes_back);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.party, SOCIAL);
	assert_int_equal(seen.last.index, 16);
	assert_int_equal(seen.last.prev_index, 13); /* the last Directory that had it */
	assert_int_equal(seen.last.old_from, 13);
	assert_true(seen.last.added_back);
	assert_true(seen.last.back);
	assert_int_equal(seen.last.back_index, 0);
	assert_memory_equal(seen.last.old_key, keys[K_SOCIAL2]->pub.ed, RETE_PK_LEN);
	assert_memory_equal(seen.last.new_key, keys[K_SOCIAL]->pub.ed, RETE_PK_LEN);
	log_close(&L);
}

/* put_projection stores r (freed here) as the projection of referral key,
 * behind the store's back (closed, then opened again read-only). */
static void put_projection(struct log *L, const char *key, Rete__ReferralInfo *r)
{
	size_t len = rete__referral_info__get_packed_size(r);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	rete__referral_info__pack(r, buf);
	rete__referral_info__free_unpacked(r, NULL);
	rete_store_close(&L->s);
	tu_raw_put(L->dir, "referrals", key, strlen(key), buf, len);
	free(buf);
	reopen_ro(L);
}

/* drop_projection removes referral id's projection behind the store's
 * back (closed, then opened again read-only). */
static void drop_projection(struct log *L, const char *id)
{
	rete_store_close(&L->s);
	tu_raw_put(L->dir, "referrals", id, strlen(id), NULL, 0);
	reopen_ro(L);
}

static void test_projection_rewritten_fails(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	Rete__ReferralInfo *r = NULL;
	(void)state;

	log_open(&L, "verify-proj");
	standard(&L);
	assert_int_equal(rete_store_referral(L.s, NULL, "r1", &r, &m), RETE_OK);
	assert_int_equal(r->status, RETE__STATUS__STATUS_IN_PROGRESS);
	r->status = RETE__STATUS__STATUS_COMPLETED; /* a projection the log never said */
	put_projection(&L, "r1", r);
	/* without the replay the log itself holds */
	o.replay = false;
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	o.replay = true;
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ECORRUPT);
	assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
	print_message("%s\n", rep.reason);
	assert_non_null(strstr(rep.reason, "referral r1 (entry 1)"));
	assert_non_null(strstr(rep.reason, "status completed"));
	assert_non_null(strstr(rep.reason, "status in-progress"));
	log_close(&L);
}

/* The same projection in other bytes (a field encoded twice, the last
 * one winning, as protobuf decodes it): the records differ byte for byte,
 * so the quick comparison of the stores' records hands over to the full
 * one, which decodes both: the log holds, with every referral counted. */
static void test_projection_other_bytes_holds(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	Rete__ReferralInfo *r = NULL;
	(void)state;

	log_open(&L, "verify-proj-bytes");
	standard(&L);
	assert_int_equal(rete_store_referral(L.s, NULL, "r1", &r, &m), RETE_OK);
	size_t len = rete__referral_info__get_packed_size(r);
	uint8_t *buf = malloc(len + 2);
	assert_non_null(buf);
	/* field 1 (the id) as an empty string first: the real one follows */
	buf[0] = 0x0a;
	buf[1] = 0x00;
	rete__referral_info__pack(r, buf + 2);
	rete__referral_info__free_unpacked(r, NULL);
	rete_store_close(&L.s);
	tu_raw_put(L.dir, "referrals", "r1", 2, buf, len + 2);
	free(buf);
	reopen_ro(&L);
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
	assert_true(rep.replayed);
	assert_int_equal(rep.referrals, 7);
	log_close(&L);
}

static void test_projection_extra_or_missing(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	Rete__ReferralInfo *r = NULL;
	(void)state;

	/* a projection the log never created: r10, a copy of r1 */
	log_open(&L, "verify-proj-extra");
	standard(&L);
	assert_int_equal(rete_store_referral(L.s, NULL, "r1", &r, &m), RETE_OK);
	free(r->id);
	r->id = strdup("r10");
	put_projection(&L, "r10", r);
	for (unsigned threads = 1; threads <= 2; threads++) {
		o.threads = threads;
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ECORRUPT);
		assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
		assert_non_null(strstr(rep.reason, "referral r10 (entry 1): the store has a "
						   "projection of it, but replaying the log "
						   "creates no such referral"));
	}
	log_close(&L);

	/* a projection missing: r3 */
	log_open(&L, "verify-proj-missing");
	standard(&L);
	drop_projection(&L, "r3");
	for (unsigned threads = 1; threads <= 2; threads++) {
		o.threads = threads;
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ECORRUPT);
		assert_non_null(strstr(rep.reason, "referral r3: replaying the log creates it, but "
						   "the store has no projection of it"));
	}
	/* and the last one (r7): nothing in the store after it */
	drop_projection(&L, "r7");
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ECORRUPT);
	assert_non_null(strstr(rep.reason, "referral r3: replaying the log creates it"));
	log_close(&L);
}

/* ---- derived indexes ------------------------------------------------------- */

/* index_key: name "\0" BE64 index (the cases and queue keys) into k; its
 * length. */
static size_t index_key(uint8_t *k, const char *name, uint64_t index)
{
	size_t n = strlen(name);
	memcpy(k, name, n);
	k[n] = 0;
	for (int i = 0; i < 8; i++)
		k[n + 1 + i] = (uint8_t)(index >> (56 - 8 * i));
	return n + 9;
}

/* expect_index_fails: verify (with the replay, on 1 and 2 threads) fails
 * with a sentence holding every one of the NULL-terminated needles; and
 * without the replay the log itself holds. */
static void expect_index_fails(struct log *L, const char *const *needles)
{
	rete_verify_report rep;
	rete_verify_options o = opts(false, 2);
	rete_msg m = {{0}};

	assert_int_equal(rete_verify_log(L->s, &o, &rep, &m), RETE_OK);
	o.replay = true;
	for (unsigned threads = 1; threads <= 2; threads++) {
		o.threads = threads;
		rete_err e = rete_verify_log(L->s, &o, &rep, &m);
		print_message("%s\n", rep.reason);
		if (e != RETE_ECORRUPT)
			fail_msg("verify: %s (%s), expected a failure naming the index",
				 rete_strerror(e), rep.reason);
		assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
		for (const char *const *n = needles; *n; n++)
			if (!strstr(rep.reason, *n))
				fail_msg("'%s' is not in: %s", *n, rep.reason);
	}
}

/* Deleting rows of the case index hides entries from `rete audit timeline
 * --case`: verify must say so. */
static void test_case_index_rows_deleted(void **state)
{
	struct log L;
	uint8_t k[64];
	(void)state;

	log_open(&L, "verify-cases-del");
	standard(&L);
	rete_store_close(&L.s);
	tu_raw_put(L.dir, "cases", k, index_key(k, "case-7", 4), NULL, 0);
	tu_raw_put(L.dir, "cases", k, index_key(k, "case-7", 9), NULL, 0);
	reopen_ro(&L);
	expect_index_fails(&L, (const char *const[]){"case index", "database 'cases'", "case-7",
						     "entry 4", "missing", NULL});
	log_close(&L);
}

static void test_case_index_row_added(void **state)
{
	struct log L;
	uint8_t k[64];
	(void)state;

	log_open(&L, "verify-cases-add");
	standard(&L);
	rete_store_close(&L.s);
	tu_raw_put(L.dir, "cases", k, index_key(k, "case-9", 2), "", 0);
	reopen_ro(&L);
	expect_index_fails(
	    &L, (const char *const[]){"database 'cases'", "case-9", "entry 2", "case-7", NULL});
	log_close(&L);
}

static void test_msgids_altered(void **state)
{
	struct log L;
	uint8_t v[48];
	const char key[] = SOCIAL "\0r4";
	(void)state;

	log_open(&L, "verify-msgids");
	standard(&L);
	rete_store_close(&L.s);
	memset(v, 0, sizeof(v));
	v[7] = 2; /* entry 2 instead of 8 */
	tu_raw_put(L.dir, "msgids", key, sizeof(key) - 1, v, sizeof(v));
	reopen_ro(&L);
	expect_index_fails(&L, (const char *const[]){"dedup index", "database 'msgids'", SOCIAL,
						     "r4", "entry 8", "entry 2", NULL});
	log_close(&L);

	log_open(&L, "verify-msgids-del");
	standard(&L);
	rete_store_close(&L.s);
	tu_raw_put(L.dir, "msgids", ASST "\0u3", strlen(ASST) + 3, NULL, 0);
	reopen_ro(&L);
	expect_index_fails(&L,
			   (const char *const[]){"database 'msgids'", ASST, "u3", "missing", NULL});
	log_close(&L);
}

static void test_queue_rows(void **state)
{
	struct log L;
	uint8_t k[64], at[8] = {0};
	(void)state;

	/* a queue row for an entry whose delivery is logged (entry 5) */
	log_open(&L, "verify-queue-acked");
	standard(&L);
	rete_store_close(&L.s);
	tu_raw_put(L.dir, "queue", k, index_key(k, ASST, 3), at, sizeof(at));
	reopen_ro(&L);
	expect_index_fails(
	    &L, (const char *const[]){"delivery queue", "database 'queue'", ASST, "entry 3", NULL});
	log_close(&L);

	/* the row of an entry never delivered removed: nobody would deliver
	 * nor expire it (a review found this only counted): a failure naming
	 * the row; counted only where the caller allows acks without a trace
	 * in the log (the benchmark's fill) */
	log_open(&L, "verify-queue-missing");
	standard(&L);
	rete_store_close(&L.s);
	tu_raw_put(L.dir, "queue", k, index_key(k, CPI, 9), NULL, 0);
	reopen_ro(&L);
	expect_index_fails(&L, (const char *const[]){"delivery queue", "database 'queue'", CPI,
						     "entry 9", "is missing", "never be delivered",
						     NULL});
	{
		rete_verify_report rep;
		rete_verify_options o = opts(true, 2);
		rete_msg m = {{0}};
		o.allow_unlogged_acks = true;
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
		assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
		assert_int_equal(rep.unlogged_acks, 1);
	}
	log_close(&L);
}

static void test_blob_and_due_rows(void **state)
{
	struct log L;
	uint8_t k[64];
	(void)state;

	/* a sealed part for an entry that has none */
	log_open(&L, "verify-blob");
	standard(&L);
	rete_store_close(&L.s);
	memset(k, 0, 8);
	k[7] = 9;
	tu_raw_put(L.dir, "blobs", k, 8, "junk", 4);
	reopen_ro(&L);
	expect_index_fails(&L, (const char *const[]){"database 'blobs'", "entry 9", NULL});
	log_close(&L);

	/* a due row for a referral the log gives no such time */
	log_open(&L, "verify-due");
	standard(&L);
	rete_store_close(&L.s);
	memset(k, 0, 8);
	k[7] = 42;
	memcpy(k + 8, "r1", 2);
	tu_raw_put(L.dir, "due", k, 10, "", 0);
	reopen_ro(&L);
	expect_index_fails(&L, (const char *const[]){"database 'due'", "r1", NULL});
	log_close(&L);
}

/* forge_append writes signed message sm as entry `size` of the closed
 * store in dir with LMDB directly, with its leaf hash, every Merkle node
 * (rebuilt from the stored leaf hashes) and the new size: a log that is
 * well-formed and correctly signed, but that the store itself would have
 * refused. */
static void forge_append(const char *dir, uint64_t size, const rete_buf *sm, int64_t at)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi entries, nodes, meta;
	Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
	rete_merkle_mem t;
	uint8_t key[9], *buf, leaf[RETE_MERKLE_HASH];
	size_t len;
	MDB_val k, v;

	le.index = size;
	le.logged_at = at;
	le.signed_message.data = sm->data;
	le.signed_message.len = sm->len;
	len = rete__log_entry__get_packed_size(&le);
	buf = malloc(len);
	rete__log_entry__pack(&le, buf);
	rete_merkle_leaf_hash(leaf, buf, len);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "entries", 0, &entries), 0);
	assert_int_equal(mdb_dbi_open(txn, "nodes", 0, &nodes), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	rete_merkle_mem_init(&t);
	for (uint64_t i = 0; i < size; i++) {
		key[0] = 0;
		for (int b = 0; b < 8; b++)
			key[1 + b] = (uint8_t)(i >> (56 - 8 * b));
		k.mv_size = 9;
		k.mv_data = key;
		assert_int_equal(mdb_get(txn, nodes, &k, &v), 0);
		assert_int_equal(rete_merkle_mem_append(&t, v.mv_data), RETE_OK);
	}
	assert_int_equal(rete_merkle_mem_append(&t, leaf), RETE_OK);
	for (unsigned l = 0; l < RETE_MERKLE_LEVELS; l++)
		for (uint64_t i = 0; i < t.mm_len[l]; i++) {
			key[0] = (uint8_t)l;
			for (int b = 0; b < 8; b++)
				key[1 + b] = (uint8_t)(i >> (56 - 8 * b));
			k.mv_size = 9;
			k.mv_data = key;
			v.mv_size = RETE_MERKLE_HASH;
			v.mv_data = t.mm_nodes[l][i];
			assert_int_equal(mdb_put(txn, nodes, &k, &v, 0), 0);
		}
	rete_merkle_mem_free(&t);
	for (int b = 0; b < 8; b++)
		key[b] = (uint8_t)(size >> (56 - 8 * b));
	k.mv_size = 8;
	k.mv_data = key;
	v.mv_size = len;
	v.mv_data = buf;
	assert_int_equal(mdb_put(txn, entries, &k, &v, 0), 0);
	for (int b = 0; b < 8; b++)
		key[b] = (uint8_t)((size + 1) >> (56 - 8 * b));
	k.mv_size = 4;
	k.mv_data = (void *)"size";
	v.mv_size = 8;
	v.mv_data = key;
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(buf);
}

/* forge_completion closes the store, forges entry `index` (logged at at):
 * asst.mantova, no party of r1, moves r1 to completed, which the store
 * itself would refuse; then opens the store again with flags (0 to append
 * more, RETE_STORE_RDONLY). */
static void forge_completion(struct log *L, uint64_t index, int64_t at, unsigned flags)
{
	rete_msg m = {{0}};
	rete_store_close(&L->s);
	rete_buf b = update("u9", ASST, SOCIAL, "r1", RETE__STATUS__STATUS_COMPLETED, keys[K_ASST]);
	forge_append(L->dir, index, &b, at);
	rete_buf_free(&b);
	assert_int_equal(rete_store_open(&L->s, L->dir, flags, &m), RETE_OK);
}

static void test_lifecycle_violation_fails(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	(void)state;

	log_open(&L, "verify-lifecycle");
	standard(&L);
	/* entry 12: asst.mantova, no party of r1, moves it to completed */
	forge_completion(&L, 12, L.t + 1000, RETE_STORE_RDONLY);
	/* the log itself (signatures, tree) holds: only the replay sees it */
	o.replay = false;
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	assert_int_equal(rep.entries, 13);
	o.replay = true;
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ELIFECYCLE);
	print_message("%s\n", rep.reason);
	assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
	assert_true(rep.has_bad_entry);
	assert_int_equal(rep.bad_index, 12);
	assert_int_equal(rep.entries, 12);
	assert_non_null(strstr(rep.reason, "entry 12: replaying the lifecycle refuses update u9 "
					   "of asst.mantova"));
	log_close(&L);
}

/* ---- an older backup put back ---------------------------------------------- */

static void test_since_checkpoint(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 2);
	rete_msg m = {{0}};
	char *backup = tu_tmpdir("verify-backup"), *newer, *older;
	rete_store *b = NULL;
	(void)state;

	log_open(&L, "verify-since");
	standard(&L);
	older = NULL;
	assert_int_equal(rete_store_checkpoint_get(L.s, NULL, 8, &older, &m), RETE_OK);
	tu_rmrf(backup); /* rete_store_backup wants a new or empty folder */
	assert_int_equal(rete_store_backup_to(L.s, backup, &m), RETE_OK);
	append(&L, referral("r8", SOCIAL, CPI, "staff-x", keys[K_SOCIAL]));
	append(&L, referral("r9", SOCIAL, CPI, "staff-y", keys[K_SOCIAL]));
	newer = checkpoint(&L, keys[K_BROKER]);

	/* the live log extends both the older and the newer checkpoint */
	o.since_note = older;
	o.since_len = strlen(older);
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	o.since_note = newer;
	o.since_len = strlen(newer);
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);

	/* the backup (12 entries) is caught against the newer checkpoint (14) */
	assert_int_equal(rete_store_open(&b, backup, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_verify_log(b, &o, &rep, &m), RETE_EPROOF);
	assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
	print_message("%s\n", rep.reason);
	assert_non_null(strstr(rep.reason, "holds 12 entries"));
	assert_non_null(strstr(rep.reason, "has size 14"));
	/* and holds against the older one */
	o.since_note = older;
	o.since_len = strlen(older);
	assert_int_equal(rete_verify_log(b, &o, &rep, &m), RETE_OK);
	rete_store_close(&b);

	/* a checkpoint signed by another key is refused as the earlier one */
	{
		char *bad = NULL;
		uint8_t root[RETE_MERKLE_HASH];
		assert_int_equal(rete_store_root(L.s, NULL, 14, root, &m), RETE_OK);
		assert_int_equal(rete_checkpoint_sign(ORIGIN, 14, root, keys[K_OTHER], &bad, &m),
				 RETE_OK);
		o.since_note = bad;
		o.since_len = strlen(bad);
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
		assert_non_null(strstr(rep.reason, "the checkpoint given"));
		free(bad);
	}
	/* a forked log: same size 14, another root, signed by the broker */
	{
		char *fork_note = NULL;
		uint8_t root[RETE_MERKLE_HASH] = {1, 2, 3};
		assert_int_equal(
		    rete_checkpoint_sign(ORIGIN, 13, root, keys[K_BROKER], &fork_note, &m),
		    RETE_OK);
		o.since_note = fork_note;
		o.since_len = strlen(fork_note);
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EPROOF);
		assert_non_null(strstr(rep.reason, "at size 13"));
		assert_non_null(strstr(rep.reason, "does not extend"));
		free(fork_note);
	}
	free(newer);
	free(older);
	tu_rmrf(backup);
	free(backup);
	log_close(&L);
}

/* ---- across chunks ------------------------------------------------------------ */

/* many_referrals makes n APPEND ops for a log holding only its directory
 * (ops[0] is left empty): ops[i] appends referral m<i> of social.mantova,
 * signed with K_OTHER's key when i == bad (0: never) and with its own key
 * otherwise, logged at L->t + i. *bufs gets the signed messages; free
 * both with many_free. */
static rete_store_op *many_referrals(struct log *L, int n, int bad, rete_buf **bufs)
{
	rete_store_op *ops = calloc((size_t)n, sizeof(*ops));
	rete_buf *b = calloc((size_t)n, sizeof(*b));
	char id[32];
	assert_non_null(ops);
	assert_non_null(b);
	for (int i = 1; i < n; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		b[i] =
		    referral(id, SOCIAL, CPI, "staff", i == bad ? keys[K_OTHER] : keys[K_SOCIAL]);
		ops[i].kind = RETE_STORE_OP_APPEND;
		ops[i].in.signed_message = b[i].data;
		ops[i].in.len = b[i].len;
		ops[i].in.logged_at = L->t + i;
	}
	*bufs = b;
	return ops;
}

static void many_free(rete_store_op *ops, rete_buf *bufs, int n)
{
	for (int i = 0; i < n; i++)
		rete_buf_free(&bufs[i]);
	free(bufs);
	free(ops);
}

static void test_many_entries(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 3);
	rete_msg m = {{0}};
	enum { N = 5000, BAD = 4500 };
	rete_buf *bufs;
	rete_store_op *ops;
	(void)state;

	log_open(&L, "verify-many");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	ops = many_referrals(&L, N, BAD, &bufs);
	assert_int_equal(rete_store_commit(L.s, ops + 1, N - 1, &m), RETE_OK);
	assert_int_equal(ops[N - 1].index, N - 1);
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.bad_index, BAD);
	assert_int_equal(rep.entries, BAD);
	o.threads = 1;
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
	assert_int_equal(rep.bad_index, BAD);
	many_free(ops, bufs, N);
	log_close(&L);
}

static void test_many_entries_hold(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(true, 0);
	rete_msg m = {{0}};
	enum { N = 9000 };
	rete_buf *bufs;
	rete_store_op *ops;
	(void)state;

	log_open(&L, "verify-many2");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	ops = many_referrals(&L, N, 0, &bufs);
	/* entries 1..4096 and 4097..8191, each batch checkpointed, then the rest */
	assert_int_equal(rete_store_commit(L.s, ops + 1, 4096, &m), RETE_OK);
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_store_commit(L.s, ops + 4097, 4095, &m), RETE_OK);
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_store_commit(L.s, ops + 8192, N - 8192, &m), RETE_OK);
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
	assert_int_equal(rep.entries, N);
	assert_int_equal(rep.checkpoints, 3);
	assert_int_equal(rep.referrals, N - 1);
	many_free(ops, bufs, N);
	log_close(&L);
}

/* ---- the pipeline: chunk k+1 is decoded and verified before chunk k is checked ---- */

/* append_many commits the n signed messages bufs[0..n) (freed) in one batch. */
static void append_many(struct log *L, rete_buf *bufs, size_t n)
{
	rete_store_op *ops = calloc(n, sizeof(*ops));
	rete_msg m = {{0}};
	assert_non_null(ops);
	for (size_t i = 0; i < n; i++) {
		ops[i].kind = RETE_STORE_OP_APPEND;
		ops[i].in.signed_message = bufs[i].data;
		ops[i].in.len = bufs[i].len;
		ops[i].in.logged_at = L->t += 10;
	}
	assert_int_equal(rete_store_commit(L->s, ops, n, &m), RETE_OK);
	for (size_t i = 0; i < n; i++) {
		if (ops[i].status != RETE_STORE_ACCEPTED)
			fail_msg("append %zu refused: %s", i, ops[i].error_text);
		rete_buf_free(&bufs[i]);
	}
	free(ops);
}

/* referrals appends n referrals of SOCIAL signed with k, ids tag0, tag1... */
static void referrals(struct log *L, const char *tag, size_t n, const rete_seckey *k)
{
	rete_buf *bufs = calloc(n, sizeof(*bufs));
	char id[32];
	assert_non_null(bufs);
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%s%zu", tag, i);
		bufs[i] = referral(id, SOCIAL, CPI, "staff", k);
	}
	append_many(L, bufs, n);
	free(bufs);
}

static void test_rotation_guessed_wrong(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	(void)state;

	/* entry 4095, the last of the first chunk, gives social.mantova a new
	 * key; the next chunk is decoded and verified, with whatever Directory
	 * is installed by then, while the first is still being checked */
	log_open(&L, "verify-rotate-chunk");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	referrals(&L, "a", 4094, keys[K_SOCIAL]);
	assert_int_equal(append(&L, directory("dir-2", 2, keys[K_SOCIAL2])), 4095);
	referrals(&L, "b", 300, keys[K_SOCIAL2]);
	free(checkpoint(&L, keys[K_BROKER]));
	for (unsigned threads = 1; threads <= 3; threads += 2)
		for (int replay = 0; replay <= 1; replay++) {
			rete_verify_options o = opts(replay, threads);
			assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
			assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
			assert_int_equal(rep.entries, 4396);
			assert_int_equal(rep.directories, 2);
		}
	/* entry 4396 with the old key: a guess made with the old key (which
	 * verifies) must not stand */
	referrals(&L, "c", 1, keys[K_SOCIAL]);
	for (unsigned threads = 1; threads <= 3; threads += 2) {
		rete_verify_options o = opts(true, threads);
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
		assert_int_equal(rep.bad_index, 4396);
		assert_int_equal(rep.entries, 4396);
		assert_non_null(strstr(rep.reason, "directory in force (entry 4095)"));
	}
	log_close(&L);

	/* on one thread, phase A of a grain (entries 16..31) runs before phase
	 * B of any of its entries: entries 21..31 are guessed with the key of
	 * dir-1 (installed by phase B of entry 0), although dir-2 (entry 20)
	 * is in force for them; entry 25 is signed with the old key */
	log_open(&L, "verify-rotate-grain");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	referrals(&L, "a", 19, keys[K_SOCIAL]);
	assert_int_equal(append(&L, directory("dir-2", 2, keys[K_SOCIAL2])), 20);
	referrals(&L, "b", 4, keys[K_SOCIAL2]);
	referrals(&L, "x", 1, keys[K_SOCIAL]);
	referrals(&L, "c", 30, keys[K_SOCIAL2]);
	free(checkpoint(&L, keys[K_BROKER]));
	for (unsigned threads = 1; threads <= 2; threads++) {
		rete_verify_options o = opts(false, threads);
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
		assert_int_equal(rep.bad_index, 25);
		assert_non_null(strstr(rep.reason, "directory in force (entry 20)"));
	}
	log_close(&L);
}

/* log_broken_at opens a log (tag) of the directory, referral r1 and the
 * referrals a0.. up to entry at - 1, then forges entry at (logged 10 ms
 * later): r1 completed by asst.mantova (forge_completion). More may be
 * appended. */
static void log_broken_at(struct log *L, const char *tag, uint64_t at)
{
	log_open(L, tag);
	append(L, directory("dir-1", 1, keys[K_SOCIAL]));
	append(L, referral("r1", SOCIAL, CPI, "staff-r1", keys[K_SOCIAL]));
	referrals(L, "a", at - 2, keys[K_SOCIAL]);
	forge_completion(L, at, L->t += 10, 0);
}

static void test_first_failure_across_chunks(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	struct progress p;
	(void)state;

	/* entry 3000 (first chunk) breaks the lifecycle, which only the
	 * replay sees; entry 5000 (second chunk) has a signature by a key the
	 * directory does not hold, which phase B and C see first */
	log_broken_at(&L, "verify-first", 3000);
	referrals(&L, "b", 1999, keys[K_SOCIAL]);
	referrals(&L, "x", 1, keys[K_OTHER]);
	referrals(&L, "c", 2999, keys[K_SOCIAL]);
	free(checkpoint(&L, keys[K_BROKER]));
	for (unsigned threads = 1; threads <= 3; threads++) {
		rete_verify_options o = opts(true, threads);
		memset(&p, 0, sizeof(p));
		o.progress = on_progress;
		o.progress_ctx = &p;
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ELIFECYCLE);
		assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
		assert_int_equal(rep.bad_index, 3000);
		assert_int_equal(rep.entries, 3000);
		assert_non_null(strstr(rep.reason, "entry 3000: replaying the lifecycle refuses"));
		assert_true(p.calls >= 1);
		assert_true(p.last_done <= 4096);
		o.replay = false;
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
		assert_int_equal(rep.bad_index, 5000);
		assert_int_equal(rep.entries, 5000);
		assert_int_equal(p.last_total, 8000);
		assert_int_equal(p.last_done, 4096); /* the second chunk failed */
	}
	log_close(&L);
}

/* del_entry removes entry `index` from the entries database. */
static void del_entry(const char *dir, uint64_t index)
{
	uint8_t key[8];
	for (int b = 0; b < 8; b++)
		key[b] = (uint8_t)(index >> (56 - 8 * b));
	tu_raw_put(dir, "entries", key, sizeof(key), NULL, 0);
}

static void test_missing_entry_in_next_chunk(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	(void)state;

	/* entry 5000 is gone: reading the second chunk fails before the first
	 * is checked, and must not hide a failure of the first (entry 3000) */
	log_open(&L, "verify-missing");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	referrals(&L, "a", 2999, keys[K_SOCIAL]);
	referrals(&L, "x", 1, keys[K_OTHER]);
	referrals(&L, "b", 2999, keys[K_SOCIAL]);
	free(checkpoint(&L, keys[K_BROKER]));
	rete_store_close(&L.s);
	del_entry(L.dir, 5000);
	assert_int_equal(rete_store_open(&L.s, L.dir, RETE_STORE_RDONLY, &m), RETE_OK);
	for (unsigned threads = 1; threads <= 3; threads += 2)
		for (int replay = 0; replay <= 1; replay++) {
			rete_verify_options o = opts(replay, threads);
			assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
			assert_int_equal(rep.bad_index, 3000);
			assert_int_equal(rep.entries, 3000);
		}
	log_close(&L);
}

/* no_proof is the proof source of a session that resumes from nothing (it
 * is never asked). */
static rete_err no_proof(void *ctx, uint64_t size1, uint64_t size2,
			 uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m)
{
	(void)ctx;
	(void)proof;
	(void)n;
	return rete_msg_set(m, RETE_EPROOF, "no proof from %llu to %llu", (unsigned long long)size1,
			    (unsigned long long)size2);
}

static void test_session_many_entries(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_verify_options o = opts(false, 3);
	rete_verify_session *s = NULL;
	rete_msg m = {{0}};
	enum { N = 9000, BAD = 8000 };
	rete_buf *ents = calloc(N + 1, sizeof(*ents));
	char *note;
	(void)state;

	assert_non_null(ents);
	log_open(&L, "verify-session-many");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	referrals(&L, "a", N - 1, keys[K_SOCIAL]);
	note = checkpoint(&L, keys[K_BROKER]);
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(rete_store_entry(L.s, NULL, i, &ents[i], &m), RETE_OK);
	/* more than two chunks in one feed, then the rest */
	for (unsigned threads = 1; threads <= 3; threads += 2) {
		o.threads = threads;
		assert_int_equal(rete_verify_session_open(&s, &o, NULL, &m), RETE_OK);
		assert_int_equal(
		    rete_verify_session_target(s, note, strlen(note), no_proof, NULL, &m), RETE_OK);
		assert_int_equal(rete_verify_session_feed(s, 0, ents, 8500, &m), RETE_OK);
		assert_int_equal(rete_verify_session_size(s), 8500);
		assert_int_equal(rete_verify_session_feed(s, 8500, ents + 8500, N - 8500, &m),
				 RETE_OK);
		assert_int_equal(rete_verify_session_finish(s, &rep, &m), RETE_OK);
		assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
		assert_int_equal(rep.entries, N);
		rete_verify_session_close(&s);
	}
	/* a byte of entry BAD changed: the session stops there */
	ents[BAD].data[ents[BAD].len - 1] ^= 1;
	assert_int_equal(rete_verify_session_open(&s, &o, NULL, &m), RETE_OK);
	assert_int_equal(rete_verify_session_target(s, note, strlen(note), no_proof, NULL, &m),
			 RETE_OK);
	assert_int_not_equal(rete_verify_session_feed(s, 0, ents, N, &m), RETE_OK);
	assert_int_not_equal(rete_verify_session_finish(s, &rep, &m), RETE_OK);
	assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
	assert_true(rep.has_bad_entry);
	assert_int_equal(rep.bad_index, BAD);
	assert_int_equal(rep.entries, BAD);
	assert_non_null(strstr(rep.reason, "entry 8000"));
	rete_verify_session_close(&s);
	for (uint64_t i = 0; i < N; i++)
		rete_buf_free(&ents[i]);
	free(ents);
	free(note);
	log_close(&L);
}

/* ---- the tree as stored: nodes and leaf hashes ------------------------------- */

/* put_node overwrites the stored Merkle node (level, index) of the closed
 * store in dir with 32 bytes that are no hash of anything in the log. */
static void put_node(const char *dir, unsigned level, uint64_t index)
{
	uint8_t key[9], val[RETE_MERKLE_HASH];
	key[0] = (uint8_t)level;
	for (int b = 0; b < 8; b++)
		key[1 + b] = (uint8_t)(index >> (56 - 8 * b));
	memset(val, 0xA5, sizeof(val));
	tu_raw_put(dir, "nodes", key, sizeof(key), val, sizeof(val));
}

/* tree_log builds entries 0..199 (a directory, then referrals) with one
 * checkpoint at 200, closes the store, lets tamper change it, and reopens
 * it read-only. */
static void tree_log(struct log *L, const char *tag, unsigned level, uint64_t index)
{
	rete_msg m = {{0}};
	log_open(L, tag);
	append(L, directory("dir-1", 1, keys[K_SOCIAL]));
	referrals(L, "a", 199, keys[K_SOCIAL]);
	free(checkpoint(L, keys[K_BROKER]));
	rete_store_close(&L->s);
	put_node(L->dir, level, index);
	assert_int_equal(rete_store_open(&L->s, L->dir, RETE_STORE_RDONLY, &m), RETE_OK);
}

/* expect_fails_at: every way of verifying L (1 and 2 threads, with and
 * without the replay) fails at entry `index` with `reason`; `checkpoints`
 * checked before it, or -1 not to look. */
static void expect_fails_at(struct log *L, uint64_t index, int checkpoints, const char *reason)
{
	rete_verify_report rep;
	rete_msg m = {{0}};
	for (unsigned threads = 1; threads <= 2; threads++)
		for (int replay = 0; replay <= 1; replay++) {
			rete_verify_options o = opts(replay, threads);
			assert_int_equal(rete_verify_log(L->s, &o, &rep, &m), RETE_ECORRUPT);
			assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
			assert_true(rep.has_bad_entry);
			assert_int_equal(rep.bad_index, index);
			assert_int_equal(rep.entries, index);
			if (checkpoints >= 0)
				assert_int_equal(rep.checkpoints, checkpoints);
			assert_string_equal(rep.reason, reason);
		}
}

static void test_stored_node_changed_fails(void **state)
{
	struct log L;
	(void)state;
	/* node (1, 40) = hash(leaf 80, leaf 81): entry 81 completes it; the
	 * only checkpoint is at 200 */
	tree_log(&L, "verify-node", 1, 40);
	expect_fails_at(&L, 81, 0,
			"entry 81: the stored Merkle node (level 1, index 40) it completes is "
			"different from the one recomputed from the entries");
	log_close(&L);
}

static void test_stored_leaf_changed_fails(void **state)
{
	struct log L;
	(void)state;
	/* the leaf hash of entry 57 changes, its bytes do not */
	tree_log(&L, "verify-leaf", 0, 57);
	expect_fails_at(&L, 57, -1,
			"entry 57: its bytes do not hash to the stored leaf hash; the entry or "
			"the tree was altered after it was logged");
	log_close(&L);
}

/* find_leaf_page finds the LMDB page holding entry `index` (a leaf page of
 * the entries database) into *pgno_out and the page size; returns the first
 * entry on that page (at `from` or after). break_page then marks it as an
 * overflow page, so that reading any entry on it fails with
 * MDB_CORRUPTED. */
static uint64_t find_leaf_page(const char *dir, uint64_t index, uint64_t from, uint64_t *pgno_out,
			       size_t *psize)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;
	MDB_cursor *cur;
	MDB_val k, v;
	uint8_t key[8];
	uint64_t pgno = 0, first = UINT64_MAX;
	uintptr_t page;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
	assert_int_equal(mdb_env_stat(env, &st), 0);
	for (int b = 0; b < 8; b++)
		key[b] = (uint8_t)(index >> (56 - 8 * b));
	k.mv_size = 8;
	k.mv_data = key;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	/* the value lies inside its leaf page, which starts with its number */
	page = (uintptr_t)v.mv_data & ~(uintptr_t)(st.ms_psize - 1);
	memcpy(&pgno, (const void *)page, sizeof(pgno));
	/* the first entry on the same page */
	for (int b = 0; b < 8; b++)
		key[b] = (uint8_t)(from >> (56 - 8 * b));
	k.mv_size = 8;
	k.mv_data = key;
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t i = 0;
		for (int b = 0; b < 8; b++)
			i = (i << 8) | ((const uint8_t *)k.mv_data)[b];
		if (i > index)
			break;
		if (((uintptr_t)v.mv_data & ~(uintptr_t)(st.ms_psize - 1)) == page) {
			first = i;
			break;
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	assert_true(first >= from && first <= index);
	*pgno_out = pgno;
	*psize = st.ms_psize;
	return first;
}

/* break_page makes leaf page pgno an overflow page in the file (flags). */
static void break_page(const char *dir, uint64_t pgno, size_t psize)
{
	char path[4096], *data;
	size_t len;
	uint16_t flags;
	struct {
		size_t ms_psize;
	} st = {psize};

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	data = tu_read_file(path, &len);
	assert_non_null(data);
	assert_true((pgno + 1) * st.ms_psize <= len);
	memcpy(&flags, data + pgno * st.ms_psize + 10, sizeof(flags)); /* mp_flags */
	assert_int_equal(flags, 0x02);				       /* P_LEAF */
	flags = 0x04;						       /* P_OVERFLOW */
	memcpy(data + pgno * st.ms_psize + 10, &flags, sizeof(flags));
	assert_int_equal(tu_write_file(path, data, len), 0);
	free(data);
}

static void test_broken_page_in_next_chunk(void **state)
{
	(void)state;

	/* a page of the second chunk's entries is broken: reading it fails
	 * (MDB_CORRUPTED) while the first chunk is still to be checked, which
	 * must neither turn the verdict into an I/O error nor hide a failure
	 * of the first chunk (entry 3000 in the second log) */
	for (int bad = 0; bad <= 1; bad++) {
		struct log L;
		rete_verify_report rep;
		rete_msg m = {{0}};
		uint64_t first;

		log_open(&L, "verify-page");
		append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
		referrals(&L, "a", 2999, keys[K_SOCIAL]);
		referrals(&L, "x", 1, bad ? keys[K_OTHER] : keys[K_SOCIAL]);
		referrals(&L, "b", 2999, keys[K_SOCIAL]);
		free(checkpoint(&L, keys[K_BROKER]));
		rete_store_close(&L.s);
		uint64_t pgno;
		size_t psize;
		first = find_leaf_page(L.dir, 5000, 4096, &pgno, &psize);
		/* broken once the store is open: the check before opening
		 * (rete_store_file_check) would refuse it, and verify must
		 * also hold its own against damage that comes later */
		assert_int_equal(rete_store_open(&L.s, L.dir, RETE_STORE_RDONLY, &m), RETE_OK);
		break_page(L.dir, pgno, psize);
		for (unsigned threads = 1; threads <= 2; threads++)
			for (int replay = 0; replay <= 1; replay++) {
				rete_verify_options o = opts(replay, threads);
				rete_err e = rete_verify_log(L.s, &o, &rep, &m);
				if (bad) {
					assert_int_equal(e, RETE_EBADSIG);
					assert_int_equal(rep.bad_index, 3000);
				} else {
					char want[32];
					assert_int_equal(e, RETE_ECORRUPT);
					assert_int_equal(rep.bad_index, first);
					snprintf(want, sizeof(want),
						 "entry %llu: ", (unsigned long long)first);
					assert_non_null(strstr(rep.reason, want));
				}
				assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
				assert_true(rep.has_bad_entry);
				assert_int_equal(rep.entries, rep.bad_index);
			}
		log_close(&L);
	}
}

/* ---- the report counts only what lies before the failure -------------------- */

static void test_counts_stop_at_failure(void **state)
{
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	uint8_t root50[RETE_MERKLE_HASH];
	(void)state;

	/* entry 100 has a bad signature (found by phase C, after phase B has
	 * gone through the whole chunk); a Directory (entry 150) and a
	 * checkpoint (200) come after it, a checkpoint (50) before */
	log_open(&L, "verify-counts");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	referrals(&L, "a", 49, keys[K_SOCIAL]);
	free(checkpoint(&L, keys[K_BROKER]));
	assert_int_equal(rete_store_root(L.s, NULL, 50, root50, &m), RETE_OK);
	referrals(&L, "b", 50, keys[K_SOCIAL]);
	referrals(&L, "x", 1, keys[K_OTHER]);
	referrals(&L, "c", 49, keys[K_SOCIAL]);
	assert_int_equal(append(&L, directory("dir-2", 2, keys[K_SOCIAL])), 150);
	referrals(&L, "d", 49, keys[K_SOCIAL]);
	free(checkpoint(&L, keys[K_BROKER]));
	for (unsigned threads = 1; threads <= 2; threads++)
		for (int replay = 0; replay <= 1; replay++) {
			rete_verify_options o = opts(replay, threads);
			assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_EBADSIG);
			assert_int_equal(rep.bad_index, 100);
			assert_int_equal(rep.entries, 100);
			assert_int_equal(rep.checkpoints, 1);
			assert_int_equal(rep.directories, 1);
			assert_true(rep.has_checkpoint);
			assert_int_equal(rep.latest_size, 50);
			assert_memory_equal(rep.latest_root, root50, RETE_MERKLE_HASH);
		}
	log_close(&L);

	/* entry 30 breaks the lifecycle (only the replay sees it, after phase
	 * B has passed the checkpoint at 40 and the Directory at 35) */
	log_broken_at(&L, "verify-counts-replay", 30);
	referrals(&L, "b", 4, keys[K_SOCIAL]);
	assert_int_equal(append(&L, directory("dir-2", 2, keys[K_SOCIAL])), 35);
	referrals(&L, "c", 4, keys[K_SOCIAL]);
	free(checkpoint(&L, keys[K_BROKER]));
	referrals(&L, "d", 10, keys[K_SOCIAL]);
	for (unsigned threads = 1; threads <= 2; threads++) {
		rete_verify_options o = opts(true, threads);
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_ELIFECYCLE);
		assert_int_equal(rep.bad_index, 30);
		assert_int_equal(rep.entries, 30);
		assert_int_equal(rep.checkpoints, 0);
		assert_false(rep.has_checkpoint);
		assert_int_equal(rep.latest_size, 0);
		assert_int_equal(rep.directories, 1);
		/* without the replay the log holds, and everything counts */
		o.replay = false;
		assert_int_equal(rete_verify_log(L.s, &o, &rep, &m), RETE_OK);
		assert_int_equal(rep.checkpoints, 1);
		assert_int_equal(rep.latest_size, 40);
		assert_int_equal(rep.directories, 2);
	}
	log_close(&L);
}

/* ---- signed acknowledgements (protocol 3) ---------------------------------- */

/* The ways an acknowledgement logged in a Delivery can be wrong. */
enum ack_way {
	ACK_GOOD,
	ACK_NONE,	   /* logged before protocol 3: counted, holds */
	ACK_TAMPERED,	   /* a bit of its signature flipped */
	ACK_OTHER_KEY,	   /* signed by another party's key */
	ACK_OTHER_LEAF,	   /* over the leaf hash of other bytes */
	ACK_OTHER_INDEX,   /* for another entry */
	ACK_OTHER_ORIGIN,  /* for another log */
	ACK_OTHER_SIGNER,  /* signed (validly) by a party the entry is not for */
	ACK_REFUSED_GOOD,  /* a DELIVERY_REFUSED notice with its signed refusal */
	ACK_REFUSED_ERROR, /* ... whose signed error is not the notice's */
	ACK_FUTURE,	   /* a Delivery (and its ack) of an entry not logged yet
			      (e.g. an ack of an earlier epoch, replayed) */
};

/* acked_log builds: 0 directory, 1 referral r1 social->cpi, `filler`
 * referrals, then the broker's Delivery (or DELIVERY_REFUSED Notice) of
 * entry 1 whose acknowledgement is made `way`, and a checkpoint; returns
 * the Delivery's index. With filler past a chunk, phase A verifies the
 * acknowledgement (with the Directory of its guess). */
static uint64_t acked_log(struct log *L, enum ack_way way, size_t filler)
{
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_msg m = {{0}};
	bool refused = way == ACK_REFUSED_GOOD || way == ACK_REFUSED_ERROR;
	append(L, directory("dir-1", 1, keys[K_SOCIAL]));
	append(L, referral("r1", SOCIAL, CPI, "staff-0001", keys[K_SOCIAL]));
	if (filler > 0)
		referrals(L, "f", filler, keys[K_SOCIAL]);
	assert_int_equal(rete_store_leaf_hash(L->s, NULL, 1, leaf, &m), RETE_OK);
	if (way == ACK_OTHER_LEAF)
		rete_merkle_leaf_hash(leaf, "other bytes", 11);
	Rete__AckBody b = RETE__ACK_BODY__INIT;
	b.origin = (char *)(way == ACK_OTHER_ORIGIN ? "rete.test/elsewhere" : ORIGIN);
	b.recipient = (char *)(way == ACK_OTHER_SIGNER ? ASST : CPI);
	b.index = way == ACK_OTHER_INDEX ? 0 : way == ACK_FUTURE ? 500 : 1;
	b.leaf_hash.data = leaf;
	b.leaf_hash.len = sizeof(leaf);
	b.acked_at = 1790000004000;
	if (refused) {
		b.error = way == ACK_REFUSED_ERROR ? RETE__ERROR_CODE__ERROR_CODE_SEALED_HASH
						   : RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN;
		b.error_text = (char *)"the sealed part does not open";
	}
	Rete__SignedAck sa;
	const rete_seckey *k = way == ACK_OTHER_KEY	 ? keys[K_ASST]
			       : way == ACK_OTHER_SIGNER ? keys[K_ASST]
							 : keys[K_CPI];
	assert_int_equal(rete_ack_sign(&b, k, &sa, &m), RETE_OK);
	if (way == ACK_TAMPERED)
		sa.signature.data[5] ^= 0x20;

	Rete__Message msg;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	Rete__Notice n = RETE__NOTICE__INIT;
	tu_message_init(&msg, refused ? "refused-1" : "delivery-1", BROKER, SOCIAL, "", ORIGIN);
	if (refused) {
		n.kind = RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED;
		n.index = 1;
		n.message_id = (char *)"r1";
		n.referral_id = (char *)"r1";
		n.error = RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN;
		n.text = (char *)"cpi.mantova could not take message r1";
		n.ack = &sa;
		msg.body_case = RETE__MESSAGE__BODY_NOTICE;
		msg.notice = &n;
	} else {
		d.index = way == ACK_FUTURE ? 500 : 1;
		d.message_id = (char *)"r1";
		d.referral_id = (char *)"r1";
		d.delivered_at = 1790000005000;
		d.ack = way == ACK_NONE ? NULL : &sa;
		msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
		msg.delivery = &d;
	}
	uint64_t at = append(L, tu_sign(&msg, keys[K_BROKER])); /* a broker that logs what
								   it was given */
	rete_signed_ack_clear(&sa);
	ack(L, CPI, 1);
	free(checkpoint(L, keys[K_BROKER]));
	return at;
}

/* acks_case builds acked_log(way, filler) and verifies it (store, with
 * and without the replay, and fed to a session): it holds when why is
 * NULL, else fails at the Delivery with why in the sentence. */
static void acks_case(enum ack_way way, const char *why, size_t filler)
{
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	log_open(&L, "verify-acks");
	uint64_t at = acked_log(&L, way, filler);
	char *note = NULL;
	uint64_t size = 0;
	assert_int_equal(rete_store_checkpoint_latest(L.s, NULL, &size, &note, &m), RETE_OK);
	assert_int_equal(size, at + 1);
	rete_buf *ents = calloc(size, sizeof(*ents));
	assert_non_null(ents);
	for (uint64_t i = 0; i < size; i++)
		assert_int_equal(rete_store_entry(L.s, NULL, i, &ents[i], &m), RETE_OK);
	reopen_ro(&L);
	for (int replay = 0; replay <= (filler ? 0 : 1); replay++) {
		rete_verify_options o = opts(replay, 2);
		rete_err e = rete_verify_log(L.s, &o, &rep, &m);
		if (why == NULL) {
			if (e != RETE_OK)
				fail_msg("way %d: %s", (int)way, rep.reason);
			assert_int_equal(rep.verdict, RETE_VERIFY_HOLDS);
			assert_int_equal(rep.acks_verified, way == ACK_NONE ? 0 : 1);
			assert_int_equal(rep.acks_unsigned, way == ACK_NONE ? 1 : 0);
			continue;
		}
		if (e != RETE_EBADSIG || strstr(rep.reason, why) == NULL)
			fail_msg("way %d: got %d '%s', wanted EBADSIG with '%s'", (int)way, (int)e,
				 rep.reason, why);
		assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
		assert_true(rep.has_bad_entry);
		assert_int_equal(rep.bad_index, at);
		assert_non_null(strstr(rep.reason, "signed acknowledgement"));
	}
	/* the same entries fed to a session */
	rete_verify_options o = opts(false, 2);
	rete_verify_session *s = NULL;
	assert_int_equal(rete_verify_session_open(&s, &o, NULL, &m), RETE_OK);
	assert_int_equal(rete_verify_session_target(s, note, strlen(note), no_proof, NULL, &m),
			 RETE_OK);
	rete_err e = rete_verify_session_feed(s, 0, ents, size, &m);
	if (e == RETE_OK)
		e = rete_verify_session_finish(s, &rep, &m);
	assert_int_equal(e, why == NULL ? RETE_OK : RETE_EBADSIG);
	rete_verify_session_close(&s);
	for (uint64_t i = 0; i < size; i++)
		rete_buf_free(&ents[i]);
	free(ents);
	free(note);
	log_close(&L);
}

/* A Delivery's acknowledgement is verified with the recipient's key over
 * the log's origin, the entry's index and its leaf hash: one tampered with
 * (or signed by another key, for other bytes, another entry or log, or by
 * a party the entry is not for) fails at the Delivery; one missing (a log
 * begun before protocol 3) is counted and holds; a DELIVERY_REFUSED
 * notice's signed refusal is checked the same way. In a session too, and
 * with the Delivery in a later chunk than the directory (its signature
 * checked in phase A). */
static void test_delivery_acks(void **state)
{
	static const struct {
		enum ack_way way;
		const char *why; /* NULL: holds */
	} cases[] = {
	    {ACK_GOOD, NULL},
	    {ACK_NONE, NULL},
	    {ACK_TAMPERED, "does not verify"},
	    {ACK_OTHER_KEY, "does not verify"},
	    {ACK_OTHER_LEAF, "leaf hash"},
	    {ACK_OTHER_INDEX, "acknowledges entry 0, not entry 1"},
	    {ACK_OTHER_ORIGIN, "names log"},
	    {ACK_OTHER_SIGNER, "is addressed to cpi.mantova"},
	    {ACK_REFUSED_GOOD, NULL},
	    {ACK_REFUSED_ERROR, "says error"},
	    {ACK_FUTURE, "not logged before it"},
	};
	(void)state;
	for (int big = 0; big <= 1; big++)
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
			enum ack_way w = cases[c].way;
			if (big && w != ACK_GOOD && w != ACK_TAMPERED && w != ACK_OTHER_KEY &&
			    w != ACK_OTHER_SIGNER && w != ACK_REFUSED_GOOD)
				continue; /* the signature's cases, past a chunk */
			acks_case(w, cases[c].why, big ? 4200 : 0);
		}
}

/* delivery_of appends the broker's Delivery of entry x (the referral
 * `mid` to cpi), with cpi's signed acknowledgement or none. */
static uint64_t delivery_of(struct log *L, uint64_t x, const char *mid, bool signed_ack)
{
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_msg m = {{0}};
	char id[64];
	assert_int_equal(rete_store_leaf_hash(L->s, NULL, x, leaf, &m), RETE_OK);
	Rete__AckBody b = RETE__ACK_BODY__INIT;
	b.origin = (char *)ORIGIN;
	b.recipient = (char *)CPI;
	b.index = x;
	b.leaf_hash.data = leaf;
	b.leaf_hash.len = sizeof(leaf);
	b.acked_at = 1790000004000;
	Rete__SignedAck sa;
	assert_int_equal(rete_ack_sign(&b, keys[K_CPI], &sa, &m), RETE_OK);
	Rete__Message msg;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	snprintf(id, sizeof(id), "delivery-%llu", (unsigned long long)x);
	tu_message_init(&msg, id, BROKER, SOCIAL, "", ORIGIN);
	d.index = x;
	d.message_id = (char *)mid;
	d.referral_id = (char *)mid;
	d.delivered_at = 1790000005000;
	d.ack = signed_ack ? &sa : NULL;
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &d;
	uint64_t at = append(L, tu_sign(&msg, keys[K_BROKER]));
	rete_signed_ack_clear(&sa);
	ack(L, CPI, x);
	return at;
}

/* An unsigned Delivery after a signed one (attack report s12, finding 2:
 * a broker that takes an entry off the recipient's queue and says it was
 * delivered) fails the log at that Delivery, naming the entry that showed
 * the log is of protocol 3; unsigned ones before the first signed one (a
 * log begun before protocol 3 and upgraded in place) are counted and hold. */
static void test_unsigned_delivery_after_signed(void **state)
{
	(void)state;
	for (int order = 0; order <= 1; order++) {
		struct log L;
		rete_verify_report rep;
		rete_msg m = {{0}};
		log_open(&L, "verify-unsigned");
		append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
		uint64_t r1 = append(&L, referral("r1", SOCIAL, CPI, "staff-0001", keys[K_SOCIAL]));
		uint64_t r2 = append(&L, referral("r2", SOCIAL, CPI, "staff-0001", keys[K_SOCIAL]));
		/* order 0: r1 signed, then r2 unsigned; order 1: the other way */
		delivery_of(&L, r1, "r1", order == 0);
		uint64_t second = delivery_of(&L, r2, "r2", order == 1);
		free(checkpoint(&L, keys[K_BROKER]));
		reopen_ro(&L);
		for (int replay = 0; replay <= 1; replay++) {
			rete_verify_options o = opts(replay, 2);
			rete_err e = rete_verify_log(L.s, &o, &rep, &m);
			if (order == 1) {
				if (e != RETE_OK)
					fail_msg("legacy order: %s", rep.reason);
				assert_int_equal(rep.acks_unsigned, 1);
				assert_int_equal(rep.acks_verified, 1);
				continue;
			}
			if (e != RETE_EBADSIG)
				fail_msg("an unsigned Delivery after a signed one holds: %d '%s'",
					 (int)e, rep.reason);
			assert_int_equal(rep.verdict, RETE_VERIFY_FAILS);
			assert_true(rep.has_bad_entry);
			assert_int_equal(rep.bad_index, second);
			assert_non_null(strstr(rep.reason, "no acknowledgement signed by its "
							   "recipient cpi.mantova"));
		}
		log_close(&L);
	}
}

/* store_proof gives a resumed session its consistency proofs from the
 * store (ctx). */
static rete_err store_proof(void *ctx, uint64_t size1, uint64_t size2,
			    uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m)
{
	return rete_store_consistency_proof(ctx, NULL, size1, size2, proof, n, m);
}

/* A session resumed from a state whose prefix held a signed
 * acknowledgement (the state's acks_signed_at) fails on an unsigned
 * Delivery fed later; from a state without it (an earlier rete's) the
 * session judges only what it is fed, and holds. */
static void test_unsigned_delivery_resumed(void **state)
{
	(void)state;
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	log_open(&L, "verify-unsigned-resume");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));
	uint64_t r1 = append(&L, referral("r1", SOCIAL, CPI, "staff-0001", keys[K_SOCIAL]));
	uint64_t r2 = append(&L, referral("r2", SOCIAL, CPI, "staff-0001", keys[K_SOCIAL]));
	uint64_t signed_at = delivery_of(&L, r1, "r1", true);
	char *note1 = checkpoint(&L, keys[K_BROKER]);
	uint64_t unsigned_at = delivery_of(&L, r2, "r2", false);
	char *note2 = checkpoint(&L, keys[K_BROKER]);
	rete_buf ents[5];
	for (uint64_t i = 0; i <= unsigned_at; i++)
		assert_int_equal(rete_store_entry(L.s, NULL, i, &ents[i], &m), RETE_OK);

	rete_verify_options o = opts(false, 2);
	rete_verify_session *first = NULL;
	assert_int_equal(rete_verify_session_open(&first, &o, NULL, &m), RETE_OK);
	assert_int_equal(
	    rete_verify_session_target(first, note1, strlen(note1), no_proof, NULL, &m), RETE_OK);
	assert_int_equal(rete_verify_session_feed(first, 0, ents, signed_at + 1, &m), RETE_OK);
	assert_int_equal(rete_verify_session_finish(first, &rep, &m), RETE_OK);
	rete_verify_resume res;
	assert_int_equal(rete_verify_session_state(first, &res, &m), RETE_OK);
	assert_int_equal(res.acks_signed_at, signed_at + 1);
	for (int earlier = 0; earlier <= 1; earlier++) {
		rete_verify_resume from = res;
		if (earlier)
			from.acks_signed_at = 0; /* a state file of an earlier rete */
		rete_verify_session *next = NULL;
		assert_int_equal(rete_verify_session_open(&next, &o, &from, &m), RETE_OK);
		assert_int_equal(
		    rete_verify_session_target(next, note2, strlen(note2), store_proof, L.s, &m),
		    RETE_OK);
		rete_err e = rete_verify_session_feed(next, unsigned_at, &ents[unsigned_at], 1, &m);
		if (e == RETE_OK)
			e = rete_verify_session_finish(next, &rep, &m);
		if (earlier) {
			assert_int_equal(e, RETE_OK);
		} else {
			if (e != RETE_EBADSIG)
				fail_msg("a resumed session holds an unsigned Delivery: %d '%s'",
					 (int)e, m.text);
			assert_non_null(strstr(m.text, "no acknowledgement signed by"));
		}
		rete_verify_session_close(&next);
	}
	rete_verify_session_close(&first);
	for (uint64_t i = 0; i <= unsigned_at; i++)
		rete_buf_free(&ents[i]);
	free(note1);
	free(note2);
	log_close(&L);
}

/* A session resumed from a state keeps each party's keys of the earlier
 * runs: a party removed in one run and added back with its earlier key in
 * the next is a change back (rev-keys finding 6). From a state of an
 * earlier rete (no keys) it is compared with the saved Directory only,
 * which no longer lists the party: no change is seen. */
static void test_key_change_back_resumed(void **state)
{
	(void)state;
	struct log L;
	rete_verify_report rep;
	rete_msg m = {{0}};
	log_open(&L, "verify-back-resume");
	append(&L, directory("dir-1", 1, keys[K_SOCIAL]));		     /* 0 */
	append(&L, directory("dir-2", 2, keys[K_SOCIAL2]));		     /* 1: another key */
	append(&L, referral("r1", SOCIAL, CPI, "staff-x", keys[K_SOCIAL2])); /* 2 */
	append(&L, directory("dir-3", 3, NULL));			     /* 3: removed */
	char *note1 = checkpoint(&L, keys[K_BROKER]);
	append(&L, directory("dir-4", 4, keys[K_SOCIAL])); /* 4: the earlier key again */
	char *note2 = checkpoint(&L, keys[K_BROKER]);
	rete_buf ents[5];
	for (uint64_t i = 0; i < 5; i++)
		assert_int_equal(rete_store_entry(L.s, NULL, i, &ents[i], &m), RETE_OK);

	rete_verify_options o = opts(false, 2);
	struct kc_seen seen1 = {0};
	o.key_change = kc_note;
	o.key_change_ctx = &seen1;
	rete_verify_session *first = NULL;
	assert_int_equal(rete_verify_session_open(&first, &o, NULL, &m), RETE_OK);
	assert_int_equal(
	    rete_verify_session_target(first, note1, strlen(note1), no_proof, NULL, &m), RETE_OK);
	assert_int_equal(rete_verify_session_feed(first, 0, ents, 4, &m), RETE_OK);
	assert_int_equal(rete_verify_session_finish(first, &rep, &m), RETE_OK);
	assert_int_equal(rep.key_changes, 1);
	rete_verify_resume res;
	assert_int_equal(rete_verify_session_state(first, &res, &m), RETE_OK);
	for (int older = 0; older <= 1; older++) {
		rete_verify_resume from = res;
		struct kc_seen seen = {0};
		if (older) {
			from.keys = NULL; /* a state file of an earlier rete */
			from.n_keys = 0;
		}
		o.key_change_ctx = &seen;
		rete_verify_session *next = NULL;
		assert_int_equal(rete_verify_session_open(&next, &o, &from, &m), RETE_OK);
		assert_int_equal(
		    rete_verify_session_target(next, note2, strlen(note2), store_proof, L.s, &m),
		    RETE_OK);
		assert_int_equal(rete_verify_session_feed(next, 4, &ents[4], 1, &m), RETE_OK);
		assert_int_equal(rete_verify_session_finish(next, &rep, &m), RETE_OK);
		if (older) {
			assert_int_equal(rep.key_changes, 0);
		} else {
			if (rep.key_changes != 1 || rep.key_changes_back != 1)
				fail_msg("resumed run: %llu key changes, %llu back (want 1, 1)",
					 (unsigned long long)rep.key_changes,
					 (unsigned long long)rep.key_changes_back);
			assert_int_equal(seen.last.index, 4);
			assert_int_equal(seen.last.prev_index, 1);
			assert_true(seen.last.back);
			assert_int_equal(seen.last.back_index, 0);
			assert_memory_equal(seen.last.old_key, keys[K_SOCIAL2]->pub.ed,
					    RETE_PK_LEN);
		}
		rete_verify_session_close(&next);
	}
	rete_verify_session_close(&first);
	for (uint64_t i = 0; i < 5; i++)
		rete_buf_free(&ents[i]);
	free(note1);
	free(note2);
	log_close(&L);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unsigned_delivery_after_signed),
	    cmocka_unit_test(test_unsigned_delivery_resumed),
	    cmocka_unit_test(test_good_log_holds),
	    cmocka_unit_test(test_empty_log_holds),
	    cmocka_unit_test(test_flipped_byte_names_entry),
	    cmocka_unit_test(test_noncanonical_entry_refused),
	    cmocka_unit_test(test_foreign_key_fails),
	    cmocka_unit_test(test_unknown_sender_fails),
	    cmocka_unit_test(test_forged_broker_body_fails),
	    cmocka_unit_test(test_delivery_other_entry_fails),
	    cmocka_unit_test(test_checkpoint_other_key_fails),
	    cmocka_unit_test(test_key_rotation),
	    cmocka_unit_test(test_key_change_back),
	    cmocka_unit_test(test_big_directory),
	    cmocka_unit_test(test_key_change_readd),
	    cmocka_unit_test(test_key_change_back_resumed),
	    cmocka_unit_test(test_projection_rewritten_fails),
	    cmocka_unit_test(test_projection_other_bytes_holds),
	    cmocka_unit_test(test_projection_extra_or_missing),
	    cmocka_unit_test(test_case_index_rows_deleted),
	    cmocka_unit_test(test_case_index_row_added),
	    cmocka_unit_test(test_msgids_altered),
	    cmocka_unit_test(test_queue_rows),
	    cmocka_unit_test(test_blob_and_due_rows),
	    cmocka_unit_test(test_lifecycle_violation_fails),
	    cmocka_unit_test(test_since_checkpoint),
	    cmocka_unit_test(test_many_entries),
	    cmocka_unit_test(test_many_entries_hold),
	    cmocka_unit_test(test_rotation_guessed_wrong),
	    cmocka_unit_test(test_first_failure_across_chunks),
	    cmocka_unit_test(test_missing_entry_in_next_chunk),
	    cmocka_unit_test(test_session_many_entries),
	    cmocka_unit_test(test_stored_node_changed_fails),
	    cmocka_unit_test(test_stored_leaf_changed_fails),
	    cmocka_unit_test(test_broken_page_in_next_chunk),
	    cmocka_unit_test(test_counts_stop_at_failure),
	    cmocka_unit_test(test_delivery_acks),
	};
	return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
