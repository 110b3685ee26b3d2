/* test_damaged_store.c — damaged store files get a sentence and exit 2,
 * never a signal (issue 13, defect 7).
 *
 * A real broker logs referrals that a real agent receives; both stop. A
 * compacted copy of the broker's store (`rete store backup`) and of the
 * agent's own LMDB (mdb_env_copy2 with MDB_CP_COMPACT: every page of such a
 * copy is in use, so damage to any page header is damage to the data) are
 * kept. Each case puts a damaged copy back and runs rete-broker (on the
 * store), `rete audit verify` and `rete store backup` (on the store) and
 * rete-agent (on its data folder):
 *   - data.mdb of 0 bytes (not a store; no silent new log);
 *   - data.mdb cut at half its size (a half copy), on a page boundary and
 *     not;
 *   - the meta pages garbled: the magic of both; the newer one's main root
 *     and last page pointing past the end of the file;
 *   - the header (page number, flags, bounds) or the node offsets of a page
 *     in use, several pages chosen by seed.
 * Each program must exit 2 with a sentence naming data.mdb. Bytes garbled
 * anywhere in a page in use (which may fall inside a value, where only
 * reading the log can see them) must make `rete audit verify` exit 0, 1
 * or 2 with a sentence, never die of a signal. Every program runs under `timeout`, so a
 * program that starts on a damaged store instead of refusing it fails the
 * test instead of hanging it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <lmdb.h>

#include "itest.h"

#define NREF	 24
#define PAD	 3000 /* sealed parts big enough for overflow pages in the blobs */
#define NSEEDS	 6
#define RUN_SECS 20

struct fix {
	it_net *n;
	char good[1300];  /* the compacted copy of the store: good/data.mdb */
	char agood[1300]; /* the compacted copy of the agent's data */
	char adata[1300]; /* the agent's data folder */
	char aini[1300];
};

static struct fix F;

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	it_net *n = F.n = it_net_new("damaged", NULL);
	if (!n || !it_broker_start(n))
		return -1;
	rete_wire *w = it_hello(n, IT_SOCIAL);
	if (!w)
		return -1;
	for (int i = 0; i < NREF; i++) {
		char id[32];
		it_msg o;
		snprintf(id, sizeof(id), "dmg-%02d", i);
		if (it_referral_ex(n, IT_SOCIAL, IT_CPI, id, NULL, NULL, NULL, PAD, &o) != RETE_OK)
			return -1;
		Rete__BrokerFrame *f = it_submit(w, &o, it_wait_ms());
		bool ok = it_accepted(f, id, n->log);
		it_msg_free(&o);
		if (!ok)
			return -1;
	}
	rete_wire_close(&w);
	/* the job centre's agent takes them: its own LMDB gets content */
	if (!it_agent_start(n, IT_CPI))
		return -1;
	char inbox[1300];
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	int64_t deadline = it_mono_ms() + it_wait_ms();
	while (count_files(inbox) < NREF && it_mono_ms() < deadline)
		it_nap(50);
	if (count_files(inbox) < NREF) {
		fprintf(stderr, "the agent received %d of %d\n", count_files(inbox), NREF);
		it_show(n, "cpi.mantova.log");
		return -1;
	}
	if (it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()) == -1 ||
	    it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) == -1)
		return -1;

	snprintf(F.good, sizeof(F.good), "%s/good", n->dir);
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, F.good);
	if (rc != 0) {
		fprintf(stderr, "backup: %s\n", out ? out : "");
		free(out);
		return -1;
	}
	free(out);
	snprintf(F.adata, sizeof(F.adata), "%s/agents/%s/data", n->dir, it_party_ids[IT_CPI]);
	snprintf(F.aini, sizeof(F.aini), "%s/agents/%s/agent.ini", n->dir, it_party_ids[IT_CPI]);
	snprintf(F.agood, sizeof(F.agood), "%s/agood", n->dir);
	mkdir(F.agood, 0700);
	MDB_env *env = NULL;
	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
	    mdb_env_open(env, F.adata, MDB_RDONLY, 0600) != 0 ||
	    mdb_env_copy2(env, F.agood, MDB_CP_COMPACT) != 0) {
		fprintf(stderr, "cannot copy the agent's data\n");
		mdb_env_close(env);
		return -1;
	}
	mdb_env_close(env);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	bool bad = false;
	it_net_free(&F.n, false, &bad);
	return 0;
}

/* put_back replaces folder dir by a copy of good/data.mdb; returns the
 * path of the copy's data.mdb in path. */
static void put_back(const char *good, const char *dir, char *path, size_t len)
{
	char src[1400];
	tu_rmrf(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(src, sizeof(src), "%s/data.mdb", good);
	snprintf(path, len, "%s/data.mdb", dir);
	size_t n = 0;
	char *data = tu_read_file(src, &n);
	assert_non_null(data);
	assert_int_equal(tu_write_file(path, data, n), 0);
	free(data);
}

static size_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (size_t)st.st_size;
}

static void write_at(const char *path, size_t off, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void read_at(const char *path, size_t off, void *p, size_t len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* LMDB's layout (lmdb.h does not publish it): a 16-byte page header
 * (page number u64, pad u16, flags u16, lower u16, upper u16); in a meta
 * page the meta record follows: magic u32, version u32, address, map size,
 * the free and main databases (48 bytes each: pad = page size for the
 * first, flags, depth, page counts, entries, root), the last page, the
 * transaction id. */
#define META_PSIZE  40
#define META_MROOT  128
#define META_LASTPG 136
#define META_TXNID  144
#define META_MAGIC  16
#define PAGE_FLAGS  10
#define P_BRANCH    0x01
#define P_LEAF	    0x02
#define P_OVERFLOW  0x04

static uint32_t page_size(const char *path)
{
	uint32_t ps = 0;
	read_at(path, META_PSIZE, &ps, 4);
	assert_true(ps >= 512 && ps <= 65536);
	return ps;
}

/* tree_pages: the pages whose header reads as a page of a tree (its own
 * number, branch/leaf/overflow), in pages[0..*n). */
static void tree_pages(const char *path, uint64_t *pages, size_t max, size_t *n)
{
	uint32_t ps = page_size(path);
	size_t np = file_size(path) / ps;
	*n = 0;
	for (uint64_t p = 2; p < np && *n < max; p++) {
		uint8_t h[16];
		uint64_t no;
		uint16_t fl;
		read_at(path, p * ps, h, sizeof(h));
		memcpy(&no, h, 8);
		memcpy(&fl, h + PAGE_FLAGS, 2);
		if (no == p && (fl == P_BRANCH || fl == P_LEAF || fl == P_OVERFLOW))
			pages[(*n)++] = p;
	}
	assert_true(*n > 0);
}

static uint32_t rnd(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

enum damage {
	D_ZERO,
	D_HALF,
	D_HALF_ODD,
	D_MAGIC,
	D_ROOT_PAST_END,
	D_PAGE_HEADER,
	D_PAGE_NODES,
	D_RANDOM
};

static const char *damage_name(enum damage d)
{
	static const char *const names[] = {"0-byte data.mdb",
					    "cut at half (page boundary)",
					    "cut at half (mid-page)",
					    "both meta pages' magic garbled",
					    "newer meta's root and last page past the end",
					    "a page header garbled",
					    "a page's node offsets garbled",
					    "random bytes in a page"};
	return names[d];
}

static void damage(const char *path, enum damage d, uint32_t seed)
{
	size_t size = file_size(path);
	uint32_t ps = page_size(path);
	uint64_t pages[4096];
	size_t np = 0;
	uint8_t junk[64];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rnd(&seed);
	switch (d) {
	case D_ZERO:
		assert_int_equal(truncate(path, 0), 0);
		break;
	case D_HALF:
		assert_int_equal(truncate(path, (off_t)(size / 2 / ps * ps)), 0);
		break;
	case D_HALF_ODD:
		assert_int_equal(truncate(path, (off_t)(size / 2 + 1000)), 0);
		break;
	case D_MAGIC:
		write_at(path, META_MAGIC, junk, 4);
		write_at(path, ps + META_MAGIC, junk + 4, 4);
		break;
	case D_ROOT_PAST_END: {
		uint64_t t0 = 0, t1 = 0, last = size / ps + 20, root = size / ps + 10;
		read_at(path, META_TXNID, &t0, 8);
		read_at(path, ps + META_TXNID, &t1, 8);
		size_t meta = t1 > t0 ? ps : 0;
		write_at(path, meta + META_LASTPG, &last, 8);
		write_at(path, meta + META_MROOT, &root, 8);
		break;
	}
	case D_PAGE_HEADER:
	case D_PAGE_NODES:
	case D_RANDOM: {
		tree_pages(path, pages, 4096, &np);
		uint64_t p = pages[rnd(&seed) % np];
		size_t off;
		if (d == D_PAGE_HEADER) /* number, flags, bounds: bytes 0..15 but the pad */
			off = (seed % 2) ? 0 : 10;
		else if (d == D_PAGE_NODES)
			off = 16;
		else { /* among the nodes: from the page's upper bound to its end */
			uint16_t upper = 16;
			read_at(path, p * ps + 14, &upper, 2);
			if (upper < 16 || upper > ps - 8)
				upper = 16; /* an overflow page: its data starts at 16 */
			off = upper + rnd(&seed) % (ps - upper - 8 + 1);
		}
		size_t len = d == D_RANDOM ? 8 : (off == 0 ? 8 : 6);
		print_message("    page %llu, bytes %zu..%zu\n", (unsigned long long)p, off,
			      off + len - 1);
		write_at(path, p * ps + off, junk, len);
		break;
	}
	}
}

/* run runs a command line under timeout, returns its exit code (the
 * shell's 128 + signal for a signal; 137 when it ran on past RUN_SECS) and
 * prints its output. */
static int run(char **out, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run(char **out, const char *what, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = tu_run(out, "timeout -s KILL %d %s", it_scaled_ms(RUN_SECS * 1000) / 1000, cmd);
	print_message("    %-14s exit %d: %s", what, rc, *out ? *out : "(no output)\n");
	return rc;
}

/* expect_refused: exit 2, a sentence naming data.mdb, no signal. */
static void expect_refused(int rc, char *out, const char *what)
{
	if (rc != 2 || !out || !strstr(out, "data.mdb"))
		fail_msg("%s: expected exit 2 and a sentence naming data.mdb, got exit %d%s: %s",
			 what, rc,
			 rc > 128 && rc != 137 ? " (killed by a signal)"
			 : rc == 137	       ? " (still running: it took the damaged file)"
					       : "",
			 out ? out : "");
	free(out);
}

static void check_store(enum damage d, uint32_t seed)
{
	it_net *n = F.n;
	char path[1400], dest[1400];
	char *out = NULL;
	int rc;

	print_message("store: %s (seed %u)\n", damage_name(d), seed);
	put_back(F.good, n->data, path, sizeof(path));
	damage(path, d, seed);
	unlink(n->sock);
	rc = run(&out, "rete-broker", "'%s/rete-broker' -c '%s'", n->bin, n->ini);
	expect_refused(rc, out, "rete-broker");
	rc = run(&out, "audit verify", "'%s/rete' audit verify '%s' --broker-key '%s/keys/%s.pub'",
		 n->bin, n->data, n->dir, IT_BROKER_ID);
	expect_refused(rc, out, "rete audit verify");
	snprintf(dest, sizeof(dest), "%s/backup-of-damaged", n->dir);
	tu_rmrf(dest);
	rc = run(&out, "store backup", "'%s/rete' store backup '%s' '%s'", n->bin, n->data, dest);
	expect_refused(rc, out, "rete store backup");
	tu_rmrf(dest);
	rc = run(&out, "audit log", "'%s/rete' audit log '%s'", n->bin, n->data);
	expect_refused(rc, out, "rete audit log");
}

static void check_agent(enum damage d, uint32_t seed)
{
	it_net *n = F.n;
	char path[1400];
	char *out = NULL;

	print_message("agent data: %s (seed %u)\n", damage_name(d), seed);
	put_back(F.agood, F.adata, path, sizeof(path));
	damage(path, d, seed);
	int rc = run(&out, "rete-agent", "'%s/rete-agent' -c '%s'", n->bin, F.aini);
	expect_refused(rc, out, "rete-agent");
}

static void test_empty_file(void **state)
{
	(void)state;
	check_store(D_ZERO, 0);
	check_agent(D_ZERO, 0);
}

static void test_half_copy(void **state)
{
	(void)state;
	check_store(D_HALF, 0);
	check_store(D_HALF_ODD, 0);
	check_agent(D_HALF, 0);
	check_agent(D_HALF_ODD, 0);
}

static void test_meta_pages(void **state)
{
	(void)state;
	check_store(D_MAGIC, 1);
	check_store(D_ROOT_PAST_END, 0);
	check_agent(D_MAGIC, 1);
	check_agent(D_ROOT_PAST_END, 0);
}

static void test_inner_pages(void **state)
{
	(void)state;
	for (uint32_t seed = 1; seed <= NSEEDS; seed++) {
		check_store(D_PAGE_HEADER, seed);
		check_store(D_PAGE_NODES, seed);
		check_agent(D_PAGE_HEADER, seed);
		check_agent(D_PAGE_NODES, seed);
	}
}

/* Random bytes may fall in a value: verify must then fail (1) or refuse
 * (2) with a sentence, or find nothing wrong where they changed nothing it
 * reads (0); never die of a signal. */
static void test_random_bytes_verify(void **state)
{
	it_net *n = F.n;
	char path[1400];
	(void)state;
	for (uint32_t seed = 100; seed < 100 + 3 * NSEEDS; seed++) {
		char *out = NULL;
		print_message("store: %s (seed %u)\n", damage_name(D_RANDOM), seed);
		put_back(F.good, n->data, path, sizeof(path));
		damage(path, D_RANDOM, seed);
		int rc = run(&out, "audit verify",
			     "'%s/rete' audit verify '%s' --broker-key '%s/keys/%s.pub'", n->bin,
			     n->data, n->dir, IT_BROKER_ID);
		/* 0: the bytes fell where nothing reads them (free space in a
		 * page, a part of a value no check covers) */
		if (rc < 0 || rc > 2 || !out || strlen(out) < 10)
			fail_msg("rete audit verify on random bytes (seed %u): exit %d: %s", seed,
				 rc, out ? out : "");
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_file),		cmocka_unit_test(test_half_copy),
	    cmocka_unit_test(test_meta_pages),		cmocka_unit_test(test_inner_pages),
	    cmocka_unit_test(test_random_bytes_verify),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
