/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <lmdb.h>
#include <sodium.h>

#include "checkpoint.h"
#include "merkle.h"

char *tu_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;
	size_t n;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	n = strlen(base) + strlen(tag) + 32;
	path = malloc(n);
	if (path == NULL)
		return NULL;
	snprintf(path, n, "%s/rete-%s-XXXXXX", base, tag);
	if (mkdtemp(path) == NULL) {
		free(path);
		return NULL;
	}
	return path;
}

void tu_rmrf(const char *path)
{
	char cmd[4096];
	if (path == NULL || *path == '\0' || strcmp(path, "/") == 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "testutil: could not remove %s\n", path);
}

char *tu_path(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return buf;
}

bool tu_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

size_t tu_count_suffix(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t count = 0, sl = strlen(suffix);
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] != '.' && l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
			count++;
	}
	closedir(d);
	return count;
}

size_t tu_occurrences(const char *path, const char *needle)
{
	char *data = tu_read_file(path, NULL);
	size_t k = 0;
	for (char *p = data; p && (p = strstr(p, needle)) != NULL; p++)
		k++;
	free(data);
	return k;
}

json_t *tu_load_json(const char *path)
{
	json_error_t e;
	json_t *j = json_load_file(path, 0, &e);
	if (j == NULL)
		fprintf(stderr, "%s: %s\n", path, e.text);
	assert_non_null(j);
	return j;
}

void tu_raw_put(const char *dir, const char *db, const void *key, size_t klen, const void *val,
		size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	if (val != NULL)
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	else
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n + 4097 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, 4096, f);
		n += r;
		if (r < 4096)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return -1;
	if (fwrite(data, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

int tu_run(char **out, const char *fmt, ...)
{
	char cmd[8192];
	char full[8300];
	va_list ap;
	FILE *p;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "(%s) 2>&1", cmd);
	p = popen(full, "r");
	if (p == NULL)
		return -1;
	for (;;) {
		if (n + 1025 > cap) {
			cap = cap ? cap * 2 : 4096;
			char *nb = realloc(buf, cap);
			if (nb == NULL)
				break;
			buf = nb;
		}
		size_t r = fread(buf + n, 1, 1024, p);
		n += r;
		if (r == 0)
			break;
	}
	if (buf != NULL)
		buf[n] = '\0';
	st = pclose(p);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

void tu_message_init(Rete__Message *msg, const char *id, const char *sender, const char *recipient,
		     const char *case_id, const char *origin)
{
	rete__message__init(msg);
	msg->id = (char *)id;
	msg->sender = (char *)sender;
	msg->recipient = (char *)recipient;
	msg->case_id = (char *)case_id;
	msg->created_at = 1790000000000;
	msg->origin = (char *)origin;
}

rete_buf tu_sign(const Rete__Message *msg, const rete_seckey *k)
{
	rete_buf out = {0};
	rete_msg m = {{0}};
	if (rete_message_sign(msg, k, &out, &m) != RETE_OK)
		fail_msg("sign: %s", m.text);
	return out;
}

rete_buf tu_sign_update(Rete__Message *msg, const char *ref, Rete__Status st, const rete_seckey *k)
{
	Rete__ReferralUpdate u = RETE__REFERRAL_UPDATE__INIT;
	u.referral_id = (char *)ref;
	u.status = st;
	msg->body_case = RETE__MESSAGE__BODY_UPDATE;
	msg->update = &u;
	rete_buf out = tu_sign(msg, k);
	msg->update = NULL;
	msg->body_case = RETE__MESSAGE__BODY__NOT_SET;
	return out;
}

uint64_t tu_append(rete_store *s, int64_t *t, rete_buf b)
{
	rete_store_op op;
	rete_msg m = {{0}};
	memset(&op, 0, sizeof(op));
	op.kind = RETE_STORE_OP_APPEND;
	op.in.signed_message = b.data;
	op.in.len = b.len;
	op.in.logged_at = *t += 1000;
	assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
	if (op.status != RETE_STORE_ACCEPTED)
		fail_msg("append refused: %s", op.error_text);
	rete_buf_free(&b);
	return op.index;
}

char *tu_checkpoint(rete_store *s, const char *origin, const rete_seckey *k)
{
	uint64_t size;
	uint8_t root[RETE_MERKLE_HASH];
	char *note = NULL;
	rete_msg m = {{0}};
	assert_int_equal(rete_store_size(s, NULL, &size, &m), RETE_OK);
	assert_int_equal(rete_store_root(s, NULL, size, root, &m), RETE_OK);
	assert_int_equal(rete_checkpoint_sign(origin, size, root, k, &note, &m), RETE_OK);
	assert_int_equal(rete_store_checkpoint_put(s, size, note, &m), RETE_OK);
	return note;
}

rete_seckey *tu_key_from_seed(uint8_t first)
{
	rete_seckey *k = sodium_malloc(sizeof(*k));
	uint8_t seed[32];

	assert_non_null(k);
	memset(k, 0, sizeof(*k));
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)(first + i);
	assert_int_equal(crypto_sign_seed_keypair(k->pub.ed, k->ed_sk, seed), 0);
	return k;
}

void tu_key_free(rete_seckey *k)
{
	sodium_memzero(k, sizeof(*k));
	sodium_free(k);
}

uint32_t tu_rand(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return (uint32_t)x;
}

int tu_age_file(const char *path, long seconds)
{
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= (time_t)seconds;
	ts[1] = ts[0];
	return utimensat(AT_FDCWD, path, ts, 0);
}
