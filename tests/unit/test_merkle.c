/* test_merkle.c — the Merkle tree against the RFC 6962/9162 vectors of
 * shared/testdata/merkle (every file, accept exactly the happy ones), the
 * README's reference roots, and a definition-based model for every size up
 * to 300. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <sodium.h>
#include <sys/stat.h>

#include "merkle.h"
#include "testutil.h"

#define H RETE_MERKLE_HASH

/* --- the README's reference data ------------------------------------------ */

static const char *const ref_inputs_hex[8] = {
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};

static const char *const ref_leaf_hex[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
};

static const char *const ref_root_hex[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void hex32(uint8_t out[H], const char *hex)
{
	size_t n = 0;
	assert_int_equal(sodium_hex2bin(out, H, hex, strlen(hex), NULL, &n, NULL), 0);
	assert_int_equal(n, H);
}

/* The eight reference leaves in a rete_merkle_mem, built from the inputs. */
static void ref_tree(rete_merkle_mem *t)
{
	rete_merkle_mem_init(t);
	for (int i = 0; i < 8; i++) {
		uint8_t in[32], leaf[H], want[H];
		size_t n = 0;
		const char *hx = ref_inputs_hex[i];

		assert_int_equal(sodium_hex2bin(in, sizeof(in), hx, strlen(hx), NULL, &n, NULL), 0);
		rete_merkle_leaf_hash(leaf, in, n);
		hex32(want, ref_leaf_hex[i]);
		assert_memory_equal(leaf, want, H);
		assert_int_equal(rete_merkle_mem_append(t, leaf), RETE_OK);
	}
}

/* --- reading the vectors ---------------------------------------------------- */

typedef struct blob {
	uint8_t *p;
	size_t len;
} blob;

/* Standard base64 (the vectors' "" is zero bytes). */
static blob b64(const char *s)
{
	blob b = {malloc(strlen(s) + 1), 0};
	const char *end = NULL;

	assert_non_null(b.p);
	assert_int_equal(sodium_base642bin(b.p, strlen(s) + 1, s, strlen(s), NULL, &b.len, &end,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	assert_ptr_equal(end, s + strlen(s));
	return b;
}

static blob field_b64(json_t *o, const char *key, const char *path)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("%s: field %s is not a string", path, key);
	return b64(json_string_value(v));
}

/* jansson's integers are signed 64-bit and the vectors hold 2^64-1, so the
 * sizes are read from the raw text (the tree of numbers is loaded with
 * JSON_DECODE_INT_AS_REAL only so that it loads at all). */
static uint64_t field_u64(const char *text, const char *key, const char *path)
{
	char quoted[32];
	const char *p;
	char *end;
	unsigned long long v;

	snprintf(quoted, sizeof(quoted), "\"%s\"", key);
	p = strstr(text, quoted);
	if (p == NULL)
		fail_msg("%s: no field %s", path, key);
	p += strlen(quoted);
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p != ':')
		fail_msg("%s: field %s has no ':'", path, key);
	p++;
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p < '0' || *p > '9')
		fail_msg("%s: field %s is not a non-negative integer", path, key);
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno != 0 || (*end != ',' && *end != ' ' && *end != '\n' && *end != '}'))
		fail_msg("%s: field %s does not fit 64 bits", path, key);
	return (uint64_t)v;
}

/* The proof array; "proof": null is an empty proof. */
static size_t field_proof(json_t *o, const char *path, blob **out, rete_merkle_elem **elems)
{
	json_t *v = json_object_get(o, "proof");
	size_t n;

	*out = NULL;
	*elems = NULL;
	if (json_is_null(v))
		return 0;
	if (!json_is_array(v))
		fail_msg("%s: proof is neither an array nor null", path);
	n = json_array_size(v);
	*out = calloc(n + 1, sizeof(blob));
	*elems = calloc(n + 1, sizeof(rete_merkle_elem));
	assert_non_null(*out);
	assert_non_null(*elems);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_string(e))
			fail_msg("%s: proof[%zu] is not a string", path, i);
		(*out)[i] = b64(json_string_value(e));
		(*elems)[i].data = (*out)[i].p;
		(*elems)[i].len = (*out)[i].len;
	}
	return n;
}

static void free_proof(blob *b, rete_merkle_elem *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(b[i].p);
	free(b);
	free(e);
}

static bool field_want_err(json_t *o, const char *path)
{
	json_t *v = json_object_get(o, "wantErr");
	if (!json_is_boolean(v))
		fail_msg("%s: wantErr is not a boolean", path);
	return json_is_true(v);
}

typedef struct vec_stats {
	size_t files, accepted, refused;
	size_t happy_compared; /* happy paths whose proof we regenerated */
	size_t folder_happy;   /* happy-path.json files in folders 0..4 */
	rete_merkle_mem *ref;  /* the eight reference leaves */
	uint8_t ref_roots[9][H];
} vec_stats;

/* A happy path in one of the numbered folders 0..4 directly under the
 * group: these are built over the reference leaves. */
static bool numbered_happy(const char *path, const char *group)
{
	char tail[64];
	for (int d = 0; d <= 4; d++) {
		snprintf(tail, sizeof(tail), "/%s/%d/happy-path.json", group, d);
		if (strlen(path) >= strlen(tail) &&
		    strcmp(path + strlen(path) - strlen(tail), tail) == 0)
			return true;
	}
	return false;
}

static bool is_ref_root(const vec_stats *st, uint64_t size, const blob *r)
{
	return size <= 8 && r->len == H && memcmp(r->p, st->ref_roots[size], H) == 0;
}

static void compare_proof(const char *path, uint8_t gen[][H], size_t gn, const rete_merkle_elem *e,
			  size_t n)
{
	if (gn != n)
		fail_msg("%s: generated proof has %zu hashes, the file %zu", path, gn, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(e[i].len, H);
		if (memcmp(gen[i], e[i].data, H) != 0)
			fail_msg("%s: generated proof hash %zu differs from the file", path, i);
	}
}

static void run_inclusion(const char *path, const char *text, json_t *o, vec_stats *st)
{
	uint64_t idx = field_u64(text, "leafIdx", path), size = field_u64(text, "treeSize", path);
	blob root = field_b64(o, "root", path), leaf = field_b64(o, "leafHash", path);
	blob *pb;
	rete_merkle_elem *pe;
	size_t n = field_proof(o, path, &pb, &pe);
	bool want_err = field_want_err(o, path);
	rete_msg m = {{0}};
	rete_err err;

	err =
	    rete_merkle_verify_inclusion(idx, size, leaf.p, leaf.len, pe, n, root.p, root.len, &m);
	if (want_err) {
		if (err == RETE_OK)
			fail_msg("%s: accepted, but wantErr is true", path);
		assert_int_equal(err, RETE_EPROOF);
		assert_true(strlen(m.text) > 10);
		st->refused++;
	} else {
		if (err != RETE_OK)
			fail_msg("%s: refused (%s), but wantErr is false", path, m.text);
		st->accepted++;
		if (is_ref_root(st, size, &root) && idx < 8 && leaf.len == H) {
			uint8_t want_leaf[H];
			hex32(want_leaf, ref_leaf_hex[idx]);
			if (memcmp(leaf.p, want_leaf, H) == 0) {
				uint8_t gen[RETE_MERKLE_MAX_PROOF][H];
				size_t gn;
				assert_int_equal(rete_merkle_inclusion_proof(rete_merkle_mem_get,
									     st->ref, idx, size,
									     gen, &gn),
						 RETE_OK);
				compare_proof(path, gen, gn, pe, n);
				st->happy_compared++;
				if (numbered_happy(path, "inclusion"))
					st->folder_happy++;
			}
		}
		if (numbered_happy(path, "inclusion") && !is_ref_root(st, size, &root))
			fail_msg("%s: a numbered happy path not over the reference leaves", path);
	}
	free(root.p);
	free(leaf.p);
	free_proof(pb, pe, n);
}

static void run_consistency(const char *path, const char *text, json_t *o, vec_stats *st)
{
	uint64_t s1 = field_u64(text, "size1", path), s2 = field_u64(text, "size2", path);
	blob r1 = field_b64(o, "root1", path), r2 = field_b64(o, "root2", path);
	blob *pb;
	rete_merkle_elem *pe;
	size_t n = field_proof(o, path, &pb, &pe);
	bool want_err = field_want_err(o, path);
	rete_msg m = {{0}};
	rete_err err;

	err = rete_merkle_verify_consistency(s1, s2, r1.p, r1.len, r2.p, r2.len, pe, n, &m);
	if (want_err) {
		if (err == RETE_OK)
			fail_msg("%s: accepted, but wantErr is true", path);
		assert_int_equal(err, RETE_EPROOF);
		assert_true(strlen(m.text) > 10);
		st->refused++;
	} else {
		if (err != RETE_OK)
			fail_msg("%s: refused (%s), but wantErr is false", path, m.text);
		st->accepted++;
		if (s1 >= 1 && is_ref_root(st, s1, &r1) && is_ref_root(st, s2, &r2)) {
			uint8_t gen[RETE_MERKLE_MAX_PROOF][H];
			size_t gn;
			assert_int_equal(rete_merkle_consistency_proof(rete_merkle_mem_get, st->ref,
								       s1, s2, gen, &gn),
					 RETE_OK);
			compare_proof(path, gen, gn, pe, n);
			st->happy_compared++;
			if (numbered_happy(path, "consistency"))
				st->folder_happy++;
		} else if (numbered_happy(path, "consistency")) {
			fail_msg("%s: a numbered happy path not over the reference leaves", path);
		}
	}
	free(r1.p);
	free(r2.p);
	free_proof(pb, pe, n);
}

/* Walks dir recursively; every regular file must be a .json vector. */
static void walk(const char *dir, bool inclusion, vec_stats *st)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		fail_msg("cannot open the vector folder %s", dir);
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat sb;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(stat(path, &sb), 0);
		if (S_ISDIR(sb.st_mode)) {
			walk(path, inclusion, st);
		} else if (S_ISREG(sb.st_mode)) {
			json_error_t je;
			json_t *o;
			size_t l = strlen(path);
			char *text;

			if (l < 5 || strcmp(path + l - 5, ".json") != 0)
				fail_msg("%s: not a .json vector", path);
			text = tu_read_file(path, NULL);
			assert_non_null(text);
			o = json_loads(text, JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, &je);
			if (!json_is_object(o))
				fail_msg("%s: not a JSON object (%s)", path, je.text);
			if (inclusion)
				run_inclusion(path, text, o, st);
			else
				run_consistency(path, text, o, st);
			json_decref(o);
			free(text);
			st->files++;
		}
	}
	closedir(d);
}

/* An independent count of the regular files under dir. */
static size_t count_files(const char *dir)
{
	char *out = NULL;
	size_t n;

	assert_int_equal(tu_run(&out, "find '%s' -type f | wc -l", dir), 0);
	assert_non_null(out);
	n = strtoul(out, NULL, 10);
	free(out);
	return n;
}

static void init_stats(vec_stats *st, rete_merkle_mem *ref)
{
	memset(st, 0, sizeof(*st));
	ref_tree(ref);
	st->ref = ref;
	for (int i = 0; i <= 8; i++)
		hex32(st->ref_roots[i], ref_root_hex[i]);
}

static void test_inclusion_vectors(void **state)
{
	const char *dir = RETE_SHARED_DIR "/testdata/merkle/inclusion";
	rete_merkle_mem ref;
	vec_stats st;

	(void)state;
	init_stats(&st, &ref);
	walk(dir, true, &st);
	print_message("inclusion: %zu files, %zu accepted, %zu refused, %zu proofs regenerated\n",
		      st.files, st.accepted, st.refused, st.happy_compared);
	assert_true(st.files > 0);
	assert_int_equal(st.files, count_files(dir));
	assert_int_equal(st.files, st.accepted + st.refused);
	assert_true(st.accepted >= 6);
	assert_int_equal(st.folder_happy, 5); /* folders 0..4 */
	rete_merkle_mem_free(&ref);
}

static void test_consistency_vectors(void **state)
{
	const char *dir = RETE_SHARED_DIR "/testdata/merkle/consistency";
	rete_merkle_mem ref;
	vec_stats st;

	(void)state;
	init_stats(&st, &ref);
	walk(dir, false, &st);
	print_message("consistency: %zu files, %zu accepted, %zu refused, %zu proofs "
		      "regenerated\n",
		      st.files, st.accepted, st.refused, st.happy_compared);
	assert_true(st.files > 0);
	assert_int_equal(st.files, count_files(dir));
	assert_int_equal(st.files, st.accepted + st.refused);
	assert_int_equal(st.folder_happy, 5);
	rete_merkle_mem_free(&ref);
}

static void test_reference_roots(void **state)
{
	rete_merkle_mem t;
	rete_merkle_frontier f;

	(void)state;
	ref_tree(&t);
	rete_merkle_frontier_init(&f);
	for (uint64_t n = 0; n <= 8; n++) {
		uint8_t want[H], got[H];

		hex32(want, ref_root_hex[n]);
		assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &t, n, got), RETE_OK);
		assert_memory_equal(got, want, H);
		rete_merkle_frontier_root(&f, got);
		assert_memory_equal(got, want, H);
		if (n < 8) {
			uint8_t leaf[H];
			hex32(leaf, ref_leaf_hex[n]);
			assert_int_equal(rete_merkle_frontier_append(&f, leaf, NULL, NULL),
					 RETE_OK);
		}
	}
	rete_merkle_mem_free(&t);
}

/* --- the model: MTH, PATH and PROOF straight from their definitions ------- */

#define MAXN 300

typedef struct model {
	uint64_t n;
	uint8_t leaf[MAXN][H];
	uint8_t memo[MAXN + 1][MAXN + 1][H];
	bool have[MAXN + 1][MAXN + 1];
} model;

static uint64_t lp2(uint64_t n)
{
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	return k;
}

static const uint8_t *model_mth(model *md, uint64_t b, uint64_t e)
{
	if (!md->have[b][e]) {
		if (e - b == 0) {
			crypto_hash_sha256(md->memo[b][e], (const uint8_t *)"", 0);
		} else if (e - b == 1) {
			memcpy(md->memo[b][e], md->leaf[b], H);
		} else {
			uint64_t k = lp2(e - b);
			uint8_t buf[1 + 2 * H];
			buf[0] = 1;
			memcpy(buf + 1, model_mth(md, b, b + k), H);
			memcpy(buf + 1 + H, model_mth(md, b + k, e), H);
			crypto_hash_sha256(md->memo[b][e], buf, sizeof(buf));
		}
		md->have[b][e] = true;
	}
	return md->memo[b][e];
}

/* PATH(m, D[b:e]) appended to out (in RFC order). */
static void model_path(model *md, uint64_t m, uint64_t b, uint64_t e, uint8_t out[][H], size_t *n)
{
	uint64_t k;
	if (e - b == 1)
		return;
	k = lp2(e - b);
	if (m < k) {
		model_path(md, m, b, b + k, out, n);
		memcpy(out[(*n)++], model_mth(md, b + k, e), H);
	} else {
		model_path(md, m - k, b + k, e, out, n);
		memcpy(out[(*n)++], model_mth(md, b, b + k), H);
	}
}

static void model_subproof(model *md, uint64_t m, uint64_t b, uint64_t e, bool flag,
			   uint8_t out[][H], size_t *n)
{
	uint64_t k;
	if (m == e - b) {
		if (!flag)
			memcpy(out[(*n)++], model_mth(md, b, e), H);
		return;
	}
	k = lp2(e - b);
	if (m <= k) {
		model_subproof(md, m, b, b + k, flag, out, n);
		memcpy(out[(*n)++], model_mth(md, b + k, e), H);
	} else {
		model_subproof(md, m - k, b + k, e, false, out, n);
		memcpy(out[(*n)++], model_mth(md, b, b + k), H);
	}
}

static uint64_t rng_state;
static uint64_t rng(void)
{
	/* xorshift64*: reproducible from the printed seed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

typedef struct counting {
	rete_merkle_mem *t;
	size_t reads;
} counting;

static rete_err counting_get(void *ctx, unsigned level, uint64_t index, uint8_t out[H])
{
	counting *c = ctx;
	c->reads++;
	return rete_merkle_mem_get(c->t, level, index, out);
}

static void elems_of(uint8_t p[][H], size_t n, rete_merkle_elem *e)
{
	for (size_t i = 0; i < n; i++) {
		e[i].data = p[i];
		e[i].len = H;
	}
}

static void test_model_cross_check(void **state)
{
	model *md = calloc(1, sizeof(model));
	rete_merkle_mem t;
	rete_merkle_frontier f;
	counting cnt;
	/* RETE_TEST_SEED=N repeats the run of a printed seed */
	const char *env_seed = getenv("RETE_TEST_SEED");
	uint64_t seed =
	    (env_seed != NULL ? strtoull(env_seed, NULL, 10) : (uint64_t)time(NULL)) | 1;

	(void)state;
	assert_non_null(md);
	print_message("model seed %llu\n", (unsigned long long)seed);
	rng_state = seed;
	rete_merkle_mem_init(&t);
	rete_merkle_frontier_init(&f);
	cnt.t = &t;
	for (uint64_t n = 1; n <= MAXN; n++) {
		uint8_t data[40], root[H], froot[H];
		size_t len, nn, fnn;
		rete_merkle_node nodes[RETE_MERKLE_MAX_PROOF], fnodes[RETE_MERKLE_MAX_PROOF];

		/* Neighbours must differ (two empty leaves in a row, one run in
		 * ten, made a proof rightly prove both, failing the check below
		 * that a proof does not prove its neighbour): draw again. */
		do {
			len = rng() % sizeof(data);
			for (size_t i = 0; i < len; i++)
				data[i] = (uint8_t)rng();
			rete_merkle_leaf_hash(md->leaf[n - 1], data, len);
		} while (n > 1 && memcmp(md->leaf[n - 1], md->leaf[n - 2], H) == 0);
		md->n = n;
		assert_int_equal(rete_merkle_mem_append_nodes(&t, md->leaf[n - 1], nodes, &nn),
				 RETE_OK);
		assert_int_equal(rete_merkle_frontier_append(&f, md->leaf[n - 1], fnodes, &fnn),
				 RETE_OK);
		/* Leaf n-1 completes one subtree per trailing one bit. */
		assert_int_equal(nn, (size_t)__builtin_ctzll(~(n - 1)));
		assert_int_equal(fnn, nn);
		for (size_t i = 0; i < nn; i++) {
			uint64_t b = nodes[i].index << nodes[i].level;
			uint64_t e = (nodes[i].index + 1) << nodes[i].level;
			assert_int_equal(nodes[i].level, i + 1);
			assert_int_equal(e, n);
			assert_memory_equal(nodes[i].hash, model_mth(md, b, e), H);
			assert_int_equal(fnodes[i].level, nodes[i].level);
			assert_int_equal(fnodes[i].index, nodes[i].index);
			assert_memory_equal(fnodes[i].hash, nodes[i].hash, H);
		}

		cnt.reads = 0;
		assert_int_equal(rete_merkle_root(counting_get, &cnt, n, root), RETE_OK);
		assert_true(cnt.reads <= (size_t)__builtin_popcountll(n));
		assert_memory_equal(root, model_mth(md, 0, n), H);
		rete_merkle_frontier_root(&f, froot);
		assert_memory_equal(froot, root, H);
	}

	/* Every inclusion and consistency proof of every size up to MAXN. */
	for (uint64_t n = 1; n <= MAXN; n++) {
		const uint8_t *root = model_mth(md, 0, n);
		unsigned logn = 64 - (unsigned)__builtin_clzll(n);

		for (uint64_t i = 0; i < n; i++) {
			uint8_t gen[RETE_MERKLE_MAX_PROOF][H], want[RETE_MERKLE_MAX_PROOF][H];
			rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
			size_t gn, wn = 0;
			rete_msg m;

			cnt.reads = 0;
			assert_int_equal(
			    rete_merkle_inclusion_proof(counting_get, &cnt, i, n, gen, &gn),
			    RETE_OK);
			assert_true(cnt.reads <= 2 * logn + 2);
			model_path(md, i, 0, n, want, &wn);
			assert_int_equal(gn, wn);
			assert_int_equal(gn, rete_merkle_expected_inclusion_len(i, n));
			assert_memory_equal(gen, want, gn * H);
			elems_of(gen, gn, e);
			if (rete_merkle_verify_inclusion(i, n, md->leaf[i], H, e, gn, root, H,
							 &m) != RETE_OK)
				fail_msg("inclusion %llu/%llu refused: %s", (unsigned long long)i,
					 (unsigned long long)n, m.text);
			/* The same proof must not prove a neighbouring leaf. */
			if (i + 1 < n)
				assert_int_equal(rete_merkle_verify_inclusion(i + 1, n, md->leaf[i],
									      H, e, gn, root, H,
									      NULL),
						 RETE_EPROOF);
		}
		for (uint64_t s1 = 1; s1 <= n; s1++) {
			uint8_t gen[RETE_MERKLE_MAX_PROOF][H], want[RETE_MERKLE_MAX_PROOF][H];
			rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
			size_t gn, wn = 0;
			rete_msg m;

			cnt.reads = 0;
			assert_int_equal(
			    rete_merkle_consistency_proof(counting_get, &cnt, s1, n, gen, &gn),
			    RETE_OK);
			assert_true(cnt.reads <= 2 * logn + 3);
			model_subproof(md, s1, 0, n, true, want, &wn);
			assert_int_equal(gn, wn);
			assert_int_equal(gn, rete_merkle_expected_consistency_len(s1, n));
			assert_memory_equal(gen, want, gn * H);
			elems_of(gen, gn, e);
			if (rete_merkle_verify_consistency(s1, n, model_mth(md, 0, s1), H, root, H,
							   e, gn, &m) != RETE_OK)
				fail_msg("consistency %llu->%llu refused: %s",
					 (unsigned long long)s1, (unsigned long long)n, m.text);
			/* A wrong old root is caught. */
			if (s1 < n)
				assert_int_equal(
				    rete_merkle_verify_consistency(s1, n, model_mth(md, 0, s1 + 1),
								   H, root, H, e, gn, NULL),
				    RETE_EPROOF);
		}
	}

	/* Random ranges, aligned or not, against the definition. */
	for (int r = 0; r < 2000; r++) {
		uint64_t b = rng() % (MAXN + 1), e = rng() % (MAXN + 1);
		uint8_t got[H];
		if (b > e) {
			uint64_t x = b;
			b = e;
			e = x;
		}
		assert_int_equal(rete_merkle_subtree(rete_merkle_mem_get, &t, b, e, got), RETE_OK);
		assert_memory_equal(got, model_mth(md, b, e), H);
	}
	rete_merkle_mem_free(&t);
	free(md);
}

/* Every single bit flip of every element is refused; so are wrong lengths. */
static void test_tampering(void **state)
{
	rete_merkle_mem t;
	uint8_t leaf[H], root[H], root7[H], p[RETE_MERKLE_MAX_PROOF][H];
	rete_merkle_elem e[RETE_MERKLE_MAX_PROOF + 1];
	size_t n;
	rete_msg m;

	(void)state;
	ref_tree(&t);
	hex32(root, ref_root_hex[8]);
	hex32(root7, ref_root_hex[7]);
	hex32(leaf, ref_leaf_hex[5]);

	assert_int_equal(rete_merkle_inclusion_proof(rete_merkle_mem_get, &t, 5, 8, p, &n),
			 RETE_OK);
	assert_int_equal(n, 3);
	elems_of(p, n, e);
	assert_int_equal(rete_merkle_verify_inclusion(5, 8, leaf, H, e, n, root, H, &m), RETE_OK);
	for (size_t i = 0; i < n; i++)
		for (int bit = 0; bit < H * 8; bit += 7) {
			p[i][bit / 8] ^= (uint8_t)(1 << (bit % 8));
			assert_int_equal(
			    rete_merkle_verify_inclusion(5, 8, leaf, H, e, n, root, H, &m),
			    RETE_EPROOF);
			assert_non_null(strstr(m.text, "differs from the checkpoint's root"));
			p[i][bit / 8] ^= (uint8_t)(1 << (bit % 8));
		}
	/* Too few, too many hashes. */
	assert_int_equal(rete_merkle_verify_inclusion(5, 8, leaf, H, e, 2, root, H, &m),
			 RETE_EPROOF);
	assert_string_equal(
	    m.text, "inclusion proof has 2 hashes; a proof for leaf 5 in a tree of 8 needs 3");
	e[3] = e[0];
	assert_int_equal(rete_merkle_verify_inclusion(5, 8, leaf, H, e, 4, root, H, &m),
			 RETE_EPROOF);
	assert_non_null(strstr(m.text, "has 4 hashes"));
	/* A 31-byte element, a 33-byte root. */
	e[1].len = 31;
	assert_int_equal(rete_merkle_verify_inclusion(5, 8, leaf, H, e, n, root, H, &m),
			 RETE_EPROOF);
	assert_non_null(strstr(m.text, "hash 1 is 31 bytes"));
	e[1].len = H;
	assert_int_equal(rete_merkle_verify_inclusion(5, 8, leaf, H, e, n, root, H + 1, &m),
			 RETE_EPROOF);
	assert_int_equal(rete_merkle_verify_inclusion(8, 8, leaf, H, e, n, root, H, &m),
			 RETE_EPROOF);
	assert_non_null(strstr(m.text, "below the size"));
	assert_int_equal(rete_merkle_verify_inclusion(0, 0, leaf, H, e, 0, root, H, &m),
			 RETE_EPROOF);

	/* Consistency 7 -> 8. */
	assert_int_equal(rete_merkle_consistency_proof(rete_merkle_mem_get, &t, 7, 8, p, &n),
			 RETE_OK);
	elems_of(p, n, e);
	assert_int_equal(rete_merkle_verify_consistency(7, 8, root7, H, root, H, e, n, &m),
			 RETE_OK);
	for (size_t i = 0; i < n; i++) {
		p[i][i] ^= 0x40;
		assert_int_equal(rete_merkle_verify_consistency(7, 8, root7, H, root, H, e, n, &m),
				 RETE_EPROOF);
		assert_non_null(strstr(m.text, "differs from the given"));
		p[i][i] ^= 0x40;
	}
	assert_int_equal(rete_merkle_verify_consistency(7, 8, root, H, root7, H, e, n, &m),
			 RETE_EPROOF);
	assert_int_equal(rete_merkle_verify_consistency(0, 0, root, H, root, H, e, 0, &m),
			 RETE_EPROOF);
	assert_non_null(strstr(m.text, "size 0"));
	assert_int_equal(rete_merkle_verify_consistency(8, 7, root, H, root7, H, e, 0, &m),
			 RETE_EPROOF);
	assert_int_equal(rete_merkle_verify_consistency(7, 8, root7, H, root, H, e, 0, &m),
			 RETE_EPROOF);
	assert_non_null(strstr(m.text, "is empty"));
	assert_int_equal(rete_merkle_verify_consistency(8, 8, root, H, root, H, NULL, 0, &m),
			 RETE_OK);
	assert_int_equal(rete_merkle_verify_consistency(8, 8, root, H, root, H - 1, NULL, 0, &m),
			 RETE_EPROOF);

	/* Generators refuse impossible requests. */
	assert_int_equal(rete_merkle_inclusion_proof(rete_merkle_mem_get, &t, 8, 8, p, &n),
			 RETE_EINVAL);
	assert_int_equal(rete_merkle_consistency_proof(rete_merkle_mem_get, &t, 0, 8, p, &n),
			 RETE_EINVAL);
	assert_int_equal(rete_merkle_consistency_proof(rete_merkle_mem_get, &t, 5, 4, p, &n),
			 RETE_EINVAL);
	/* A node the tree does not have: the getter's error comes through. */
	assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &t, 9, root), RETE_ENOENT);
	assert_int_equal(rete_merkle_subtree(rete_merkle_mem_get, &t, 5, 4, root), RETE_EINVAL);
	rete_merkle_mem_free(&t);
}

/* Large sizes: a tree whose leaves are all the same hash has a perfect
 * subtree hash per level (h[l+1] = H(h[l], h[l])), so a getter can answer
 * for any (level, index) at once and the proof shapes near 2^63 can be
 * checked without 2^63 leaves. */
static uint8_t same_leaf_level[RETE_MERKLE_LEVELS][H];

static rete_err same_leaf_get(void *ctx, unsigned level, uint64_t index, uint8_t out[H])
{
	(void)ctx;
	(void)index;
	memcpy(out, same_leaf_level[level], H);
	return RETE_OK;
}

static void test_large_sizes(void **state)
{
	uint64_t sizes[] = {(1ULL << 40) + 3, (1ULL << 62) + 12345, (1ULL << 63) - 1, (1ULL << 63),
			    (1ULL << 63) + 5};
	(void)state;
	rete_merkle_leaf_hash(same_leaf_level[0], "x", 1);
	for (unsigned l = 1; l < RETE_MERKLE_LEVELS; l++)
		rete_merkle_node_hash(same_leaf_level[l], same_leaf_level[l - 1],
				      same_leaf_level[l - 1]);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t n = sizes[s];
		uint64_t idxs[] = {0, 1, n / 2, n - 2, n - 1};
		uint8_t root[H], leaf[H], p[RETE_MERKLE_MAX_PROOF][H];
		rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
		size_t pn;
		rete_msg m;

		assert_int_equal(rete_merkle_root(same_leaf_get, NULL, n, root), RETE_OK);
		for (size_t j = 0; j < 5; j++) {
			uint64_t i = idxs[j];
			memcpy(leaf, same_leaf_level[0], H);
			assert_int_equal(
			    rete_merkle_inclusion_proof(same_leaf_get, NULL, i, n, p, &pn),
			    RETE_OK);
			elems_of(p, pn, e);
			if (rete_merkle_verify_inclusion(i, n, leaf, H, e, pn, root, H, &m) !=
			    RETE_OK)
				fail_msg("large inclusion refused: %s", m.text);
			if (i >= 1 && i < n) {
				uint8_t r1[H];
				assert_int_equal(rete_merkle_root(same_leaf_get, NULL, i, r1),
						 RETE_OK);
				assert_int_equal(rete_merkle_consistency_proof(same_leaf_get, NULL,
									       i, n, p, &pn),
						 RETE_OK);
				elems_of(p, pn, e);
				if (rete_merkle_verify_consistency(i, n, r1, H, root, H, e, pn,
								   &m) != RETE_OK)
					fail_msg("large consistency refused: %s", m.text);
			}
		}
	}
}

/* tree_of_3000 fills t (initialised here) with 3,000 leaves. */
static void tree_of_3000(rete_merkle_mem *t)
{
	rete_merkle_mem_init(t);
	for (uint64_t i = 0; i < 3000; i++) {
		uint8_t leaf[H], data[8];
		memcpy(data, &i, sizeof(data));
		rete_merkle_leaf_hash(leaf, data, sizeof(data));
		assert_int_equal(rete_merkle_mem_append(t, leaf), RETE_OK);
	}
}

/* proofs_alike: every proof of size through memo is the proof alone. */
static void proofs_alike(rete_merkle_mem *t, rete_merkle_memo *memo, uint64_t size)
{
	uint8_t a[RETE_MERKLE_MAX_PROOF][H], b[RETE_MERKLE_MAX_PROOF][H];
	size_t na, nb;

	for (uint64_t i = 0; i < size; i++) {
		assert_int_equal(
		    rete_merkle_inclusion_proof(rete_merkle_mem_get, t, i, size, a, &na), RETE_OK);
		assert_int_equal(
		    rete_merkle_inclusion_proof_memo(rete_merkle_mem_get, t, memo, i, size, b, &nb),
		    RETE_OK);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na * H);
	}
}

/* The memo a commit's receipts share gives the very proofs each computes
 * alone: for every index of several tree sizes, through one memo kept
 * across the sizes (as the broker keeps one per commit), and through a
 * memo of few slots where ranges collide. */
static void test_inclusion_memo(void **state)
{
	rete_merkle_mem t;
	rete_merkle_memo *memo = rete_merkle_memo_new();
	uint8_t b[RETE_MERKLE_MAX_PROOF][H];
	size_t nb;
	const uint64_t sizes[] = {1, 2, 3, 7, 8, 100, 1000, 1023, 1024, 1025, 3000};

	(void)state;
	assert_non_null(memo);
	tree_of_3000(&t);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t size = sizes[k];
		proofs_alike(&t, memo, size);
		assert_int_equal(rete_merkle_inclusion_proof_memo(rete_merkle_mem_get, &t, memo,
								  size, size, b, &nb),
				 RETE_EINVAL);
	}
	rete_merkle_memo_free(memo);
	rete_merkle_mem_free(&t);
}

/* A get callback that refuses every node a "commit" of leaves [lo, ...)
 * completed (its last leaf at lo or later): proofs through a memo that was
 * told those nodes must not ask for them. */
struct newer_refused {
	rete_merkle_mem *t;
	uint64_t lo;
	uint64_t asked; /* how many nodes the callback was asked for */
};

/* get_counted: rete_merkle_mem_get that counts the nodes asked (lo is
 * not looked at). */
static rete_err get_counted(void *ctx, unsigned level, uint64_t index, uint8_t out[H])
{
	struct newer_refused *c = ctx;
	c->asked++;
	return rete_merkle_mem_get(c->t, level, index, out);
}

/* The root through a memo (rete_merkle_root_memo, as a commit's receipts
 * take it) is the root, and the proofs of that size through the same memo
 * are the very proofs computed alone; the last entry's proof then asks the
 * callback only for the nodes inside the root's last complete subtree (its
 * other siblings are the root's). */
static void test_root_memo(void **state)
{
	rete_merkle_mem t;
	uint8_t a[RETE_MERKLE_MAX_PROOF][H], b[RETE_MERKLE_MAX_PROOF][H], r1[H], r2[H];
	size_t na, nb;
	const uint64_t sizes[] = {1, 2, 3, 5, 7, 8, 100, 1000, 1023, 1024, 1025, 3000};

	(void)state;
	tree_of_3000(&t);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t size = sizes[k];
		rete_merkle_memo *memo = rete_merkle_memo_new();
		struct newer_refused c = {&t, 0, 0};
		assert_non_null(memo);
		assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &t, size, r1), RETE_OK);
		assert_int_equal(rete_merkle_root_memo(rete_merkle_mem_get, &t, memo, size, r2),
				 RETE_OK);
		assert_memory_equal(r1, r2, H);
		/* the last entry: its siblings all come from the root's */
		assert_int_equal(
		    rete_merkle_inclusion_proof_memo(get_counted, &c, memo, size - 1, size, b, &nb),
		    RETE_OK);
		assert_int_equal(
		    rete_merkle_inclusion_proof(rete_merkle_mem_get, &t, size - 1, size, a, &na),
		    RETE_OK);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na * H);
		if (c.asked > (uint64_t)__builtin_ctzll(size))
			fail_msg("size %llu: the last entry's proof asked %llu nodes after the "
				 "root; at most %d (those inside its last complete subtree)",
				 (unsigned long long)size, (unsigned long long)c.asked,
				 __builtin_ctzll(size));
		proofs_alike(&t, memo, size);
		/* again through the memo: the same root */
		assert_int_equal(rete_merkle_root_memo(rete_merkle_mem_get, &t, memo, size, r2),
				 RETE_OK);
		assert_memory_equal(r1, r2, H);
		rete_merkle_memo_free(memo);
	}
	rete_merkle_mem_free(&t);
}

static rete_err get_old_only(void *ctx, unsigned level, uint64_t index, uint8_t out[H])
{
	struct newer_refused *c = ctx;
	c->asked++;
	if (((index + 1) << level) - 1 >= c->lo)
		return RETE_ECORRUPT;
	return rete_merkle_mem_get(c->t, level, index, out);
}

/* The nodes a commit wrote, told to the memo (rete_merkle_memo_node, as
 * rete_store_commit_memo does once the commit is durable), give the very
 * proofs computed without them, for every index of the tree after each of
 * several commits, and none of them is asked of the callback; a memo told
 * the nodes of every other commit only (its runs broken) gives the same
 * proofs too. */
static void test_inclusion_memo_nodes(void **state)
{
	rete_merkle_mem t;
	rete_merkle_memo *every_other = rete_merkle_memo_new();
	uint8_t a[RETE_MERKLE_MAX_PROOF][H], b[RETE_MERKLE_MAX_PROOF][H];
	size_t na, nb;
	const size_t batches[] = {1, 2, 3, 5, 8, 13, 64, 100, 1, 7, 256};
	uint64_t size = 0;

	(void)state;
	assert_non_null(every_other);
	rete_merkle_mem_init(&t);
	for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
		rete_merkle_memo *memo = rete_merkle_memo_new();
		struct newer_refused c = {&t, size, 0};
		assert_non_null(memo);
		for (size_t j = 0; j < batches[k]; j++, size++) {
			rete_merkle_node nodes[RETE_MERKLE_MAX_PROOF];
			uint8_t leaf[H], data[8];
			size_t n;
			memcpy(data, &size, sizeof(data));
			rete_merkle_leaf_hash(leaf, data, sizeof(data));
			assert_int_equal(rete_merkle_mem_append_nodes(&t, leaf, nodes, &n),
					 RETE_OK);
			assert_int_equal(rete_merkle_memo_node(memo, 0, size, leaf), RETE_OK);
			if (k % 2 == 0)
				assert_int_equal(rete_merkle_memo_node(every_other, 0, size, leaf),
						 RETE_OK);
			for (size_t i = 0; i < n; i++) {
				assert_int_equal(rete_merkle_memo_node(memo, nodes[i].level,
								       nodes[i].index,
								       nodes[i].hash),
						 RETE_OK);
				if (k % 2 == 0)
					assert_int_equal(
					    rete_merkle_memo_node(every_other, nodes[i].level,
								  nodes[i].index, nodes[i].hash),
					    RETE_OK);
			}
		}
		for (uint64_t i = 0; i < size; i++) {
			assert_int_equal(
			    rete_merkle_inclusion_proof(rete_merkle_mem_get, &t, i, size, a, &na),
			    RETE_OK);
			assert_int_equal(rete_merkle_inclusion_proof_memo(get_old_only, &c, memo, i,
									  size, b, &nb),
					 RETE_OK);
			assert_int_equal(na, nb);
			assert_memory_equal(a, b, na * H);
			assert_int_equal(rete_merkle_inclusion_proof_memo(
					     rete_merkle_mem_get, &t, every_other, i, size, b, &nb),
					 RETE_OK);
			assert_int_equal(na, nb);
			assert_memory_equal(a, b, na * H);
		}
		rete_merkle_memo_free(memo);
	}
	assert_int_equal(rete_merkle_memo_node(NULL, 0, 0, a[0]), RETE_EINVAL);
	assert_int_equal(rete_merkle_memo_node(every_other, RETE_MERKLE_LEVELS, 0, a[0]),
			 RETE_EINVAL);
	rete_merkle_memo_free(every_other);
	rete_merkle_mem_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reference_roots),	 cmocka_unit_test(test_inclusion_vectors),
	    cmocka_unit_test(test_consistency_vectors),	 cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_model_cross_check),	 cmocka_unit_test(test_large_sizes),
	    cmocka_unit_test(test_inclusion_memo),	 cmocka_unit_test(test_root_memo),
	    cmocka_unit_test(test_inclusion_memo_nodes),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
