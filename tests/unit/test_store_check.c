/* test_store_check.c — rete_store_file_check on LMDB files built with LMDB
 * itself: a sound file passes (also as a folder, and beside an open
 * writer); a missing one is RETE_ENOENT; a 0-byte one, one cut short, a
 * garbled leaf page, branch page or overflow run is RETE_ECORRUPT with a
 * sentence naming the file, the page and the database. The quick check
 * (what the broker does on a large store) skips the named databases'
 * leaves but still sees a cut file (it then reads everything) and a
 * garbled branch page. */
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_check.h"
#include "testutil.h"

#define NKEYS  3000 /* a tree of two levels or more in 'entries' */
#define NBLOBS 8    /* values over a page: overflow runs in 'blobs' */

struct fx {
	char *dir;
	char file[4200];
	size_t psize;
};

static void key_of(uint8_t k[8], uint64_t i)
{
	for (int b = 0; b < 8; b++)
		k[b] = (uint8_t)(i >> (56 - 8 * b));
}

/* fx_build writes 'entries' (NKEYS values of 200 bytes) and 'blobs'
 * (NBLOBS values of 10000 bytes) with LMDB. */
static void fx_build(struct fx *f, const char *tag)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi de, db;
	MDB_stat st;
	uint8_t k[8], v[10000];

	f->dir = tu_tmpdir(tag);
	assert_non_null(f->dir);
	snprintf(f->file, sizeof(f->file), "%s/data.mdb", f->dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64 << 20), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "entries", MDB_CREATE, &de), 0);
	assert_int_equal(mdb_dbi_open(txn, "blobs", MDB_CREATE, &db), 0);
	for (uint64_t i = 0; i < NKEYS; i++) {
		MDB_val kv = {8, k}, vv = {200, v};
		key_of(k, i);
		memset(v, (int)(i & 0xff), 200);
		assert_int_equal(mdb_put(txn, de, &kv, &vv, 0), 0);
	}
	for (uint64_t i = 0; i < NBLOBS; i++) {
		MDB_val kv = {8, k}, vv = {sizeof(v), v};
		key_of(k, i);
		memset(v, (int)i, sizeof(v));
		assert_int_equal(mdb_put(txn, db, &kv, &vv, 0), 0);
	}
	assert_int_equal(mdb_stat(txn, de, &st), 0);
	assert_true(st.ms_depth >= 2);
	f->psize = st.ms_psize;
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void fx_free(struct fx *f)
{
	tu_rmrf(f->dir);
	free(f->dir);
}

/* page_of: the page holding the value of key i in database name. */
static uint64_t page_of(struct fx *f, const char *name, uint64_t i)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t k[8];
	MDB_val kv = {8, k}, vv;
	uint64_t pgno;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, f->dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
	key_of(k, i);
	assert_int_equal(mdb_get(txn, dbi, &kv, &vv), 0);
	/* the value lies in its page (a leaf, or an overflow run's first
	 * page), which starts with its own number */
	memcpy(&pgno, (const void *)((uintptr_t)vv.mv_data & ~(uintptr_t)(f->psize - 1)),
	       sizeof(pgno));
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return pgno;
}

static void poke(struct fx *f, uint64_t pgno, size_t off, const void *p, size_t len)
{
	int fd = open(f->file, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, (off_t)(pgno * f->psize + off)), (ssize_t)len);
	close(fd);
}

static void peek(struct fx *f, uint64_t pgno, size_t off, void *p, size_t len)
{
	int fd = open(f->file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, p, len, (off_t)(pgno * f->psize + off)), (ssize_t)len);
	close(fd);
}

/* expect_damage: the check fails with RETE_ECORRUPT and every needle. */
static void expect_damage(const char *path, unsigned flags, const char *const *needles)
{
	rete_msg m = {{0}};
	rete_err e = rete_store_file_check_ex(path, flags, &m);
	print_message("%s\n", m.text);
	assert_int_equal(e, RETE_ECORRUPT);
	for (const char *const *n = needles; *n; n++)
		if (!strstr(m.text, *n))
			fail_msg("'%s' is not in: %s", *n, m.text);
}

static void test_sound_file(void **state)
{
	struct fx f;
	rete_msg m = {{0}};
	(void)state;

	fx_build(&f, "check-sound");
	assert_int_equal(rete_store_file_check(f.file, &m), RETE_OK);
	assert_int_equal(rete_store_file_check(f.dir, &m), RETE_OK);
	assert_int_equal(rete_store_file_check_ex(f.dir, RETE_STORE_CHECK_SPINE, &m), RETE_OK);
	fx_free(&f);
}

static void test_missing_and_empty(void **state)
{
	struct fx f;
	rete_msg m = {{0}};
	char path[4300];
	(void)state;

	fx_build(&f, "check-empty");
	snprintf(path, sizeof(path), "%s/nothing", f.dir);
	assert_int_equal(rete_store_file_check(path, &m), RETE_ENOENT);
	assert_int_equal(truncate(f.file, 0), 0);
	expect_damage(f.dir, 0, (const char *const[]){f.file, "empty (0 bytes)", NULL});
	fx_free(&f);
}

static void test_cut_short(void **state)
{
	struct fx f;
	struct stat st;
	(void)state;

	fx_build(&f, "check-cut");
	assert_int_equal(stat(f.file, &st), 0);
	/* whole pages cut: even the quick check then reads everything */
	assert_int_equal(truncate(f.file, (off_t)(st.st_size / 2 / f.psize * f.psize)), 0);
	for (unsigned flags = 0; flags <= RETE_STORE_CHECK_SPINE; flags += RETE_STORE_CHECK_SPINE)
		expect_damage(f.file, flags,
			      (const char *const[]){"past the end of the file", "cut short", NULL});
	/* not a whole number of pages */
	assert_int_equal(truncate(f.file, (off_t)(st.st_size / 2 + 100)), 0);
	expect_damage(f.file, 0, (const char *const[]){"not a whole number", NULL});
	fx_free(&f);
}

static void test_garbled_leaf(void **state)
{
	struct fx f;
	rete_msg m = {{0}};
	uint64_t pg;
	uint16_t bounds[2] = {0xfff0, 0x0010};
	(void)state;

	fx_build(&f, "check-leaf");
	pg = page_of(&f, "entries", NKEYS / 2);
	poke(&f, pg, 12, bounds, sizeof(bounds)); /* lower, upper */
	expect_damage(f.file, 0, (const char *const[]){"database 'entries'", "free space", NULL});
	/* the quick check does not read the leaves: what it leaves to verify */
	assert_int_equal(rete_store_file_check_ex(f.file, RETE_STORE_CHECK_SPINE, &m), RETE_OK);
	fx_free(&f);

	fx_build(&f, "check-node");
	pg = page_of(&f, "entries", 7);
	uint16_t off = (uint16_t)(f.psize - 2); /* node 0 at the page's last bytes */
	poke(&f, pg, 16, &off, sizeof(off));
	expect_damage(f.file, 0, (const char *const[]){"node 0", "database 'entries'", NULL});
	fx_free(&f);
}

static void test_garbled_branch(void **state)
{
	struct fx f;
	uint8_t hdr[16];
	uint64_t root = 0;
	(void)state;

	fx_build(&f, "check-branch");
	/* the entries tree's root is a branch page: find it by its flags */
	for (uint64_t p = 2;; p++) {
		uint16_t flags;
		uint64_t no;
		peek(&f, p, 0, hdr, sizeof(hdr));
		memcpy(&no, hdr, 8);
		memcpy(&flags, hdr + 10, 2);
		if (no == p && flags == 0x01) {
			root = p;
			break;
		}
	}
	uint64_t wrong = root + 1;
	poke(&f, root, 0, &wrong, sizeof(wrong)); /* its page number */
	for (unsigned flags = 0; flags <= RETE_STORE_CHECK_SPINE; flags += RETE_STORE_CHECK_SPINE)
		expect_damage(f.file, flags, (const char *const[]){"says it is page", NULL});
	fx_free(&f);
}

static void test_garbled_overflow(void **state)
{
	struct fx f;
	uint32_t pages = 1; /* fewer than 10000 bytes need */
	(void)state;

	fx_build(&f, "check-overflow");
	uint64_t pg = page_of(&f, "blobs", 3);
	poke(&f, pg, 12, &pages, sizeof(pages));
	expect_damage(f.file, 0, (const char *const[]){"overflow run", "database 'blobs'", NULL});
	fx_free(&f);
}

static void test_beside_writer(void **state)
{
	struct fx f;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	rete_msg m = {{0}};
	uint8_t k[8], v[300];
	(void)state;

	/* an open writer with committed and uncommitted work: the file is
	 * sound between commits */
	fx_build(&f, "check-writer");
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, f.dir, 0, 0600), 0);
	for (int round = 0; round < 20; round++) {
		assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
		for (uint64_t i = 0; i < 200; i++) {
			MDB_val kv = {8, k}, vv = {sizeof(v), v};
			key_of(k, (uint64_t)round * 7919 + i * 13);
			memset(v, round, sizeof(v));
			assert_int_equal(mdb_put(txn, dbi, &kv, &vv, 0), 0);
		}
		assert_int_equal(mdb_txn_commit(txn), 0);
		assert_int_equal(rete_store_file_check(f.file, &m), RETE_OK);
	}
	mdb_env_close(env);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sound_file),	   cmocka_unit_test(test_missing_and_empty),
	    cmocka_unit_test(test_cut_short),	   cmocka_unit_test(test_garbled_leaf),
	    cmocka_unit_test(test_garbled_branch), cmocka_unit_test(test_garbled_overflow),
	    cmocka_unit_test(test_beside_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
