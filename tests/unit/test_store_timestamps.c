/* test_store_timestamps.c — store schema 3: time-stamp tokens kept beside
 * their checkpoints (put, get, latest, replace, bounds, across a reopen and
 * in a read-only reader), a token dropped when its checkpoint gets another
 * body (kept when it only gains a signature line), the in-place upgrade of a schema-2 store opened
 * writable, a schema-2 store read read-only (no tokens), and the refusal of
 * a schema this program does not know. Real LMDB files; the token bytes are
 * opaque to the store (store/tsa.c checks real ones). */
#define _GNU_SOURCE
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "codec.h"
#include "keys.h"
#include "store.h"
#include "store_identity.h"
#include "testutil.h"

#define ORIGIN "rete.test/timestamps"
#define SENDER "social.mantova"

static rete_seckey *key;

static int setup(void **state)
{
	(void)state;
	return rete_seckey_generate(&key, NULL) == RETE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rete_seckey_free(&key);
	return 0;
}

static rete_store *open_store(const char *dir, unsigned flags)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	if (rete_store_open(&s, dir, flags, &m) != RETE_OK)
		fail_msg("open %s: %s", dir, m.text);
	return s;
}

/* append_n appends n signed messages (ids from *next on). */
static void append_n(rete_store *s, int n, int *next, int64_t *t)
{
	for (int i = 0; i < n; i++) {
		Rete__Message msg;
		Rete__CaseNote note;
		uint8_t sha[32] = {1};
		char id[32];
		snprintf(id, sizeof(id), "m-%d", (*next)++);
		tu_message_init(&msg, id, SENDER, "cpi.mantova", "case-1", ORIGIN);
		rete__case_note__init(&note);
		note.kind = "meeting-minutes";
		note.private_sha256.data = sha;
		note.private_sha256.len = sizeof(sha);
		msg.body_case = RETE__MESSAGE__BODY_NOTE;
		msg.note = &note;
		tu_append(s, t, tu_sign(&msg, key));
	}
}

static uint32_t schema_of(rete_store *s)
{
	rete_store_identity id;
	rete_msg m = {{0}};
	assert_int_equal(rete_store_identity_get(s, NULL, &id, &m), RETE_OK);
	return id.schema;
}

/* make_old turns the (closed) store in dir into one of schema `schema`
 * without a timestamps database, as a program before schema 3 left it. */
static void make_old(const char *dir, uint32_t schema)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t ver[4] = {0, 0, 0, (uint8_t)schema};
	MDB_val k = {6, (void *)"schema"}, v = {4, ver};

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "timestamps", 0, &dbi), 0);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "timestamps", 0, &dbi), MDB_NOTFOUND);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static void expect_token(rete_store *s, uint64_t size, const char *want)
{
	rete_buf b = {0};
	rete_msg m = {{0}};
	assert_int_equal(rete_store_timestamp_get(s, NULL, size, &b, &m), RETE_OK);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	rete_buf_free(&b);
}

static void test_put_get_latest(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("ts");
	rete_store *s = open_store(dir, RETE_STORE_CREATE), *r;
	rete_store_rtxn *rt = NULL;
	rete_msg m = {{0}};
	rete_buf b = {0};
	uint64_t size = 99;
	int next = 0;
	int64_t t = 1790000000000;
	char *n1, *n3;
	uint8_t *big;

	assert_int_equal(schema_of(s), RETE_STORE_SCHEMA);
	/* no token yet */
	assert_int_equal(rete_store_timestamp_latest(s, NULL, &size, &b, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, "no time-stamp token yet"));
	assert_int_equal(rete_store_timestamp_get(s, NULL, 1, &b, &m), RETE_ENOENT);
	assert_null(b.data);

	append_n(s, 1, &next, &t);
	n1 = tu_checkpoint(s, ORIGIN, key);
	append_n(s, 2, &next, &t);
	n3 = tu_checkpoint(s, ORIGIN, key);

	/* only beside a stored checkpoint */
	assert_int_equal(rete_store_timestamp_put(s, 2, (const uint8_t *)"tok", 3, &m),
			 RETE_EINVAL);
	assert_non_null(strstr(m.text, "no checkpoint of that size is stored"));
	assert_int_equal(rete_store_timestamp_put(s, 1, (const uint8_t *)"", 0, &m), RETE_EINVAL);
	assert_int_equal(rete_store_timestamp_put(s, 1, NULL, 3, &m), RETE_EINVAL);
	big = calloc(1, RETE_STORE_TOKEN_MAX + 1);
	assert_non_null(big);
	assert_int_equal(rete_store_timestamp_put(s, 1, big, RETE_STORE_TOKEN_MAX + 1, &m),
			 RETE_EINVAL);
	assert_non_null(strstr(m.text, "at most"));
	assert_int_equal(rete_store_timestamp_put(s, 1, big, RETE_STORE_TOKEN_MAX, &m), RETE_OK);
	free(big);

	assert_int_equal(rete_store_timestamp_put(s, 1, (const uint8_t *)"token-one", 9, &m),
			 RETE_OK);
	expect_token(s, 1, "token-one");
	assert_int_equal(rete_store_timestamp_latest(s, NULL, &size, &b, &m), RETE_OK);
	assert_int_equal(size, 1);
	rete_buf_free(&b);
	assert_int_equal(rete_store_timestamp_put(s, 3, (const uint8_t *)"token-three", 11, &m),
			 RETE_OK);
	/* replaced, not added */
	assert_int_equal(rete_store_timestamp_put(s, 3, (const uint8_t *)"token-3", 7, &m),
			 RETE_OK);
	assert_int_equal(rete_store_timestamp_get(s, NULL, 2, &b, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, "no time-stamp token for tree size 2"));

	/* with a read transaction held, at one log size */
	assert_int_equal(rete_store_read_begin(s, &rt, &m), RETE_OK);
	assert_int_equal(rete_store_timestamp_latest(s, rt, &size, &b, &m), RETE_OK);
	assert_int_equal(size, 3);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.data, "token-3", 7);
	rete_buf_free(&b);
	assert_int_equal(rete_store_timestamp_get(s, rt, 1, &b, &m), RETE_OK);
	assert_int_equal(b.len, 9);
	rete_buf_free(&b);
	rete_store_read_end(&rt);

	/* a reader beside the writer sees them and cannot write */
	r = open_store(dir, RETE_STORE_RDONLY);
	expect_token(r, 3, "token-3");
	assert_int_equal(rete_store_timestamp_put(r, 1, (const uint8_t *)"x", 1, &m), RETE_EPERM);
	rete_store_close(&r);

	/* across a reopen */
	rete_store_close(&s);
	s = open_store(dir, 0);
	expect_token(s, 1, "token-one");
	expect_token(s, 3, "token-3");
	rete_store_close(&s);
	free(n1);
	free(n3);
	tu_rmrf(dir);
	free(dir);
}

static void test_schema2_upgrade(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("ts");
	rete_store *s = open_store(dir, RETE_STORE_CREATE), *r;
	rete_msg m = {{0}};
	rete_buf b = {0};
	uint64_t size;
	int next = 0;
	int64_t t = 1790000000000;
	char *note;

	append_n(s, 2, &next, &t);
	note = tu_checkpoint(s, ORIGIN, key);
	rete_store_close(&s);
	make_old(dir, 2);

	/* read-only: read as it is, with no tokens, and not changed */
	r = open_store(dir, RETE_STORE_RDONLY);
	assert_int_equal(schema_of(r), 2);
	assert_int_equal(rete_store_timestamp_get(r, NULL, 2, &b, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, "keeps no tokens"));
	assert_int_equal(rete_store_timestamp_latest(r, NULL, &size, &b, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, "keeps no tokens"));
	assert_int_equal(rete_store_size(r, NULL, &size, &m), RETE_OK);
	assert_int_equal(size, 2);
	rete_store_close(&r);
	r = open_store(dir, RETE_STORE_RDONLY);
	assert_int_equal(schema_of(r), 2);
	rete_store_close(&r);

	/* writable: upgraded in place (to 3: only a journaled open makes 4),
	 * the log untouched */
	s = open_store(dir, 0);
	assert_int_equal(schema_of(s), 3);
	assert_int_equal(rete_store_size(s, NULL, &size, &m), RETE_OK);
	assert_int_equal(size, 2);
	assert_int_equal(rete_store_timestamp_get(s, NULL, 2, &b, &m), RETE_ENOENT);
	assert_int_equal(rete_store_timestamp_put(s, 2, (const uint8_t *)"tok-2", 5, &m), RETE_OK);
	rete_store_close(&s);
	r = open_store(dir, RETE_STORE_RDONLY);
	assert_int_equal(schema_of(r), 3);
	expect_token(r, 2, "tok-2");
	rete_store_close(&r);

	/* schema 1 opened writable gets the database too (and schema 3 with
	 * its identity, store_identity.c) */
	make_old(dir, 1);
	s = open_store(dir, 0);
	assert_int_equal(rete_store_timestamp_get(s, NULL, 2, &b, &m), RETE_ENOENT);
	assert_int_equal(rete_store_timestamp_put(s, 2, (const uint8_t *)"tok-1", 5, &m), RETE_OK);
	expect_token(s, 2, "tok-1");
	rete_store_close(&s);
	free(note);
	tu_rmrf(dir);
	free(dir);
}

static void test_replaced_checkpoint(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("ts");
	rete_store *s = open_store(dir, RETE_STORE_CREATE);
	rete_msg m = {{0}};
	rete_buf b = {0};
	int next = 0;
	int64_t t = 1790000000000;
	char *note, *more, *other = NULL;
	uint8_t root[32];

	append_n(s, 2, &next, &t);
	note = tu_checkpoint(s, ORIGIN, key);
	assert_int_equal(rete_store_timestamp_put(s, 2, (const uint8_t *)"tok", 3, &m), RETE_OK);

	/* the same body with one more signature line (a cosignature): kept */
	assert_int_equal(asprintf(&more, "%s\u2014 witness.example AAAA\n", note) > 0, 1);
	assert_int_equal(rete_store_checkpoint_put(s, 2, more, &m), RETE_OK);
	expect_token(s, 2, "tok");

	/* another body for that size (a new epoch's note): the token goes */
	assert_int_equal(rete_store_root(s, NULL, 2, root, &m), RETE_OK);
	assert_int_equal(rete_checkpoint_sign_epoch(ORIGIN, 2, root, 2, key, &other, &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_put(s, 2, other, &m), RETE_OK);
	assert_int_equal(rete_store_timestamp_get(s, NULL, 2, &b, &m), RETE_ENOENT);
	rete_store_close(&s);
	free(note);
	free(more);
	free(other);
	tu_rmrf(dir);
	free(dir);
}

static void test_unknown_schema(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("ts");
	rete_store *s = open_store(dir, RETE_STORE_CREATE);
	rete_msg m = {{0}};
	uint8_t ver[4] = {0, 0, 0, 5};

	rete_store_close(&s);
	tu_raw_put(dir, "meta", "schema", 6, ver, 4);
	assert_int_equal(rete_store_open(&s, dir, 0, &m), RETE_EVERSION);
	assert_null(s);
	assert_non_null(strstr(m.text, "has schema version 5; this program reads schema versions "
				       "1 to 4 only (use a matching rete version)"));
	assert_int_equal(rete_store_open(&s, dir, RETE_STORE_RDONLY, &m), RETE_EVERSION);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_get_latest),
	    cmocka_unit_test(test_schema2_upgrade),
	    cmocka_unit_test(test_replaced_checkpoint),
	    cmocka_unit_test(test_unknown_schema),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
