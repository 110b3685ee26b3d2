/* merkle.c — RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their
 * verification. See merkle.h and shared/specs/transparency-log.md. */
#include "merkle.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

/* SHA-256 by OpenSSL, whose implementation uses the CPU's SHA extensions
 * where it has them: over a ~1.2 KiB log entry 0.9 us against libsodium's
 * portable 3.5 us (docs/performance.md). libsodium stays the fallback if
 * OpenSSL cannot allocate its context; both give the same hash.
 *
 * Each thread has its own fetched EVP_MD and its own context, kept until
 * the thread ends: a digest context takes a reference on its EVP_MD and
 * gives it back when it is reset, an atomic on the EVP_MD's count, so with
 * one EVP_MD for the process the broker's main thread and committer (and
 * the auditor's threads) bounced that cache line between cores at every
 * hash: a 145-byte sealed part cost the main thread ~1.6 us in the broker
 * against 0.3 us in a loop of its own. (EVP_sha256() would fetch at every
 * digest, which costs more than hashing a Merkle node.) */
struct sha256_tls {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
};

static pthread_key_t sha256_key;
static bool sha256_key_ok;

static void sha256_tls_free(void *p)
{
	struct sha256_tls *t = p;
	EVP_MD_CTX_free(t->ctx);
	EVP_MD_free(t->md);
	free(t);
}

static void sha256_key_make(void)
{
	sha256_key_ok = pthread_key_create(&sha256_key, sha256_tls_free) == 0;
}

/* sha256_ctx: this thread's context, ready for EVP_DigestInit_ex with
 * *md; NULL when OpenSSL cannot give one (the caller uses libsodium). */
static EVP_MD_CTX *sha256_ctx(const EVP_MD **md)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sha256_key_make);
	if (!sha256_key_ok)
		return NULL;
	struct sha256_tls *t = pthread_getspecific(sha256_key);
	if (t == NULL) {
		t = calloc(1, sizeof(*t));
		if (t == NULL)
			return NULL;
		t->md = EVP_MD_fetch(NULL, "SHA256", NULL);
		t->ctx = t->md != NULL ? EVP_MD_CTX_new() : NULL;
		if (t->ctx == NULL || pthread_setspecific(sha256_key, t) != 0) {
			sha256_tls_free(t);
			return NULL;
		}
	}
	*md = t->md;
	return t->ctx;
}

static void sha256_two(uint8_t out[RETE_MERKLE_HASH], const void *a, size_t alen, const void *b,
		       size_t blen)
{
	const EVP_MD *md = NULL;
	EVP_MD_CTX *c = sha256_ctx(&md);
	unsigned int olen = 0;

	if (c != NULL && EVP_DigestInit_ex(c, md, NULL) == 1 &&
	    (alen == 0 || EVP_DigestUpdate(c, a, alen) == 1) &&
	    (blen == 0 || EVP_DigestUpdate(c, b, blen) == 1) &&
	    EVP_DigestFinal_ex(c, out, &olen) == 1 && olen == RETE_MERKLE_HASH)
		return;
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	if (alen > 0)
		crypto_hash_sha256_update(&st, a, alen);
	if (blen > 0)
		crypto_hash_sha256_update(&st, b, blen);
	crypto_hash_sha256_final(&st, out);
}

void rete_merkle_sha256(uint8_t out[RETE_MERKLE_HASH], const void *data, size_t len)
{
	sha256_two(out, data, len, NULL, 0);
}

void rete_merkle_leaf_hash(uint8_t out[RETE_MERKLE_HASH], const void *data, size_t len)
{
	static const uint8_t prefix = 0x00;
	sha256_two(out, &prefix, 1, data, len);
}

void rete_merkle_node_hash(uint8_t out[RETE_MERKLE_HASH], const uint8_t left[RETE_MERKLE_HASH],
			   const uint8_t right[RETE_MERKLE_HASH])
{
	uint8_t buf[1 + 2 * RETE_MERKLE_HASH];

	/* One buffer: out may alias left or right. */
	buf[0] = 0x01;
	memcpy(buf + 1, left, RETE_MERKLE_HASH);
	memcpy(buf + 1 + RETE_MERKLE_HASH, right, RETE_MERKLE_HASH);
	rete_merkle_sha256(out, buf, sizeof(buf));
}

static bool is_pow2(uint64_t n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

/* The largest power of two strictly smaller than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

static unsigned bit_len(uint64_t x)
{
	return x == 0 ? 0 : 64 - (unsigned)__builtin_clzll(x);
}

static bool memo_node(const rete_merkle_memo *memo, unsigned level, uint64_t index,
		      uint8_t out[RETE_MERKLE_HASH]);

/* A range that is one complete subtree: read it (from the memo's nodes if
 * it has it); *done tells. */
static rete_err read_if_complete(const rete_merkle_memo *memo, rete_merkle_get_node get, void *ctx,
				 uint64_t b, uint64_t n, uint8_t out[RETE_MERKLE_HASH], bool *done)
{
	unsigned level;

	*done = false;
	if (!is_pow2(n) || (b & (n - 1)) != 0)
		return RETE_OK;
	level = (unsigned)__builtin_ctzll(n);
	*done = true;
	if (memo != NULL && memo_node(memo, level, b >> level, out))
		return RETE_OK;
	return get(ctx, level, b >> level, out);
}

static void memo_put(rete_merkle_memo *memo, uint64_t b, uint64_t e,
		     const uint8_t h[RETE_MERKLE_HASH]);

/* MTH(D[b:e]) for b < e. Walks down the right spine iteratively, keeping the
 * left halves (complete subtrees for the aligned ranges the proofs use;
 * recursion only for unaligned ones), then folds right to left. keep (or
 * NULL) is told each left half and each fold MTH(D[start:e]) of the spine. */
static rete_err mth(const rete_merkle_memo *memo, rete_merkle_memo *keep, rete_merkle_get_node get,
		    void *ctx, uint64_t b, uint64_t e, uint8_t out[RETE_MERKLE_HASH])
{
	uint8_t lefts[64][RETE_MERKLE_HASH];
	uint64_t starts[64];
	uint8_t cur[RETE_MERKLE_HASH];
	size_t nl = 0;
	rete_err err;
	bool done;

	for (;;) {
		uint64_t n = e - b, k;

		err = read_if_complete(memo, get, ctx, b, n, cur, &done);
		if (err != RETE_OK)
			return err;
		if (done)
			break;
		k = split_point(n);
		err = read_if_complete(memo, get, ctx, b, k, lefts[nl], &done);
		if (err == RETE_OK && !done)
			err = mth(memo, keep, get, ctx, b, b + k, lefts[nl]);
		if (err != RETE_OK)
			return err;
		if (keep != NULL)
			memo_put(keep, b, b + k, lefts[nl]);
		starts[nl++] = b; /* at most 63: each step at least halves n */
		b += k;
	}
	if (keep != NULL)
		memo_put(keep, b, e, cur);
	while (nl > 0) {
		nl--;
		rete_merkle_node_hash(cur, lefts[nl], cur);
		if (keep != NULL)
			memo_put(keep, starts[nl], e, cur);
	}
	memcpy(out, cur, RETE_MERKLE_HASH);
	return RETE_OK;
}

rete_err rete_merkle_subtree(rete_merkle_get_node get, void *ctx, uint64_t begin, uint64_t end,
			     uint8_t out[RETE_MERKLE_HASH])
{
	if (begin > end)
		return RETE_EINVAL;
	if (begin == end) {
		crypto_hash_sha256(out, (const uint8_t *)"", 0);
		return RETE_OK;
	}
	return mth(NULL, NULL, get, ctx, begin, end, out);
}

rete_err rete_merkle_root(rete_merkle_get_node get, void *ctx, uint64_t size,
			  uint8_t out[RETE_MERKLE_HASH])
{
	return rete_merkle_subtree(get, ctx, 0, size, out);
}

/* Reverse n hashes in place: the generators collect siblings top-down while
 * RFC 9162 lists them bottom-up. */
static void reverse(uint8_t proof[][RETE_MERKLE_HASH], size_t n)
{
	uint8_t tmp[RETE_MERKLE_HASH];

	for (size_t i = 0; i < n / 2; i++) {
		memcpy(tmp, proof[i], RETE_MERKLE_HASH);
		memcpy(proof[i], proof[n - 1 - i], RETE_MERKLE_HASH);
		memcpy(proof[n - 1 - i], tmp, RETE_MERKLE_HASH);
	}
}

/* The memo: MTH(D[b:e]) of the ranges the proofs took, direct-mapped. A
 * range's hash never changes once its leaves are logged, whatever the
 * tree size of the proof. And the nodes given by rete_merkle_memo_node
 * (those a commit wrote), one run of consecutive indexes per level, looked
 * up before the callback is asked for a complete subtree. */
#define MEMO_SLOTS 1024
struct memo_run {
	uint64_t lo; /* the first index of the run */
	size_t n, cap;
	uint8_t (*h)[RETE_MERKLE_HASH];
};

struct rete_merkle_memo {
	/* which slots hold a range: zeroed at creation instead of the 48 KiB
	 * of slots (a memo per commit) */
	uint64_t used[MEMO_SLOTS / 64];
	struct {
		uint64_t b, e;
		uint8_t h[RETE_MERKLE_HASH];
	} slot[MEMO_SLOTS];
	struct memo_run run[RETE_MERKLE_LEVELS];
};

rete_merkle_memo *rete_merkle_memo_new(void)
{
	rete_merkle_memo *memo = malloc(sizeof(*memo));

	if (memo != NULL) {
		memset(memo->used, 0, sizeof(memo->used));
		memset(memo->run, 0, sizeof(memo->run));
	}
	return memo;
}

void rete_merkle_memo_free(rete_merkle_memo *memo)
{
	if (memo == NULL)
		return;
	for (unsigned l = 0; l < RETE_MERKLE_LEVELS; l++)
		free(memo->run[l].h);
	free(memo);
}

rete_err rete_merkle_memo_node(rete_merkle_memo *memo, unsigned level, uint64_t index,
			       const uint8_t hash[RETE_MERKLE_HASH])
{
	struct memo_run *r;

	if (memo == NULL || level >= RETE_MERKLE_LEVELS)
		return RETE_EINVAL;
	r = &memo->run[level];
	/* a node that does not continue the run starts a new one */
	if (r->n > 0 && index != r->lo + r->n)
		r->n = 0;
	if (r->n == r->cap) {
		size_t cap = r->cap == 0 ? 64 : r->cap * 2;
		uint8_t(*h)[RETE_MERKLE_HASH] = realloc(r->h, cap * RETE_MERKLE_HASH);
		if (h == NULL)
			return RETE_ENOMEM; /* the run stays as it was */
		r->h = h;
		r->cap = cap;
	}
	if (r->n == 0)
		r->lo = index;
	memcpy(r->h[r->n++], hash, RETE_MERKLE_HASH);
	return RETE_OK;
}

static bool memo_node(const rete_merkle_memo *memo, unsigned level, uint64_t index,
		      uint8_t out[RETE_MERKLE_HASH])
{
	const struct memo_run *r = &memo->run[level];

	if (r->n == 0 || index < r->lo || index - r->lo >= r->n)
		return false;
	memcpy(out, r->h[index - r->lo], RETE_MERKLE_HASH);
	return true;
}

/* memo_put records MTH(D[b:e]) = h in memo's slots (the one mth_memo
 * looks in first). */
static void memo_put(rete_merkle_memo *memo, uint64_t b, uint64_t e,
		     const uint8_t h[RETE_MERKLE_HASH])
{
	uint64_t x = (b * 0x9E3779B97F4A7C15ull) ^ (e * 0xC2B2AE3D27D4EB4Full);
	size_t i = (size_t)(x >> 54) & (MEMO_SLOTS - 1);

	memo->used[i / 64] |= (uint64_t)1 << (i % 64);
	memo->slot[i].b = b;
	memo->slot[i].e = e;
	memcpy(memo->slot[i].h, h, RETE_MERKLE_HASH);
}

static rete_err mth_memo(rete_merkle_memo *memo, rete_merkle_get_node get, void *ctx, uint64_t b,
			 uint64_t e, uint8_t out[RETE_MERKLE_HASH])
{
	if (memo == NULL)
		return mth(NULL, NULL, get, ctx, b, e, out);
	uint64_t x = (b * 0x9E3779B97F4A7C15ull) ^ (e * 0xC2B2AE3D27D4EB4Full);
	size_t i = (size_t)(x >> 54) & (MEMO_SLOTS - 1);
	if ((memo->used[i / 64] >> (i % 64) & 1) != 0 && memo->slot[i].e == e &&
	    memo->slot[i].b == b) {
		memcpy(out, memo->slot[i].h, RETE_MERKLE_HASH);
		return RETE_OK;
	}
	rete_err err = mth(memo, NULL, get, ctx, b, e, out);
	if (err == RETE_OK)
		memo_put(memo, b, e, out);
	return err;
}

rete_err rete_merkle_root_memo(rete_merkle_get_node get, void *ctx, rete_merkle_memo *memo,
			       uint64_t size, uint8_t out[RETE_MERKLE_HASH])
{
	if (memo == NULL || size == 0)
		return rete_merkle_root(get, ctx, size, out);
	/* The right spine of D[0:size]: the complete subtrees of size's set
	 * bits, largest first, then folded from the right. Each one and each
	 * fold (MTH(D[b:size]) for the start b of a complete subtree) is a
	 * sibling of the inclusion proofs of the last entries: kept in memo,
	 * the proofs of the same size read and hash none of them again. */
	return mth(memo, memo, get, ctx, 0, size, out);
}

rete_err rete_merkle_inclusion_proof(rete_merkle_get_node get, void *ctx, uint64_t index,
				     uint64_t size, uint8_t proof[][RETE_MERKLE_HASH], size_t *n)
{
	return rete_merkle_inclusion_proof_memo(get, ctx, NULL, index, size, proof, n);
}

rete_err rete_merkle_inclusion_proof_memo(rete_merkle_get_node get, void *ctx,
					  rete_merkle_memo *memo, uint64_t index, uint64_t size,
					  uint8_t proof[][RETE_MERKLE_HASH], size_t *n)
{
	uint64_t b = 0, e = size;
	size_t count = 0;
	rete_err err;

	*n = 0;
	if (index >= size)
		return RETE_EINVAL;
	/* PATH(m, D[b:e]): descend towards the leaf, taking the other half. */
	while (e - b > 1) {
		uint64_t k = split_point(e - b);

		if (count == RETE_MERKLE_MAX_PROOF)
			return RETE_EINVAL;
		if (index < b + k) {
			err = mth_memo(memo, get, ctx, b + k, e, proof[count]);
			e = b + k;
		} else {
			err = mth_memo(memo, get, ctx, b, b + k, proof[count]);
			b += k;
		}
		if (err != RETE_OK)
			return err;
		count++;
	}
	reverse(proof, count);
	*n = count;
	return RETE_OK;
}

rete_err rete_merkle_consistency_proof(rete_merkle_get_node get, void *ctx, uint64_t size1,
				       uint64_t size2, uint8_t proof[][RETE_MERKLE_HASH], size_t *n)
{
	uint64_t m = size1, b = 0, e = size2;
	bool whole = true; /* SUBPROOF's flag: m is still the old tree itself */
	size_t count = 0;
	rete_err err;

	*n = 0;
	if (size1 == 0 || size1 > size2)
		return RETE_EINVAL;
	for (;;) {
		uint64_t k;

		if (m == e - b) {
			if (whole)
				break;
			if (count == RETE_MERKLE_MAX_PROOF)
				return RETE_EINVAL;
			err = mth(NULL, NULL, get, ctx, b, e, proof[count]);
			if (err != RETE_OK)
				return err;
			count++;
			break;
		}
		if (count == RETE_MERKLE_MAX_PROOF)
			return RETE_EINVAL;
		k = split_point(e - b);
		if (m <= k) {
			err = mth(NULL, NULL, get, ctx, b + k, e, proof[count]);
			e = b + k;
		} else {
			err = mth(NULL, NULL, get, ctx, b, b + k, proof[count]);
			b += k;
			m -= k;
			whole = false;
		}
		if (err != RETE_OK)
			return err;
		count++;
	}
	reverse(proof, count);
	*n = count;
	return RETE_OK;
}

size_t rete_merkle_expected_inclusion_len(uint64_t index, uint64_t size)
{
	unsigned inner;

	if (size == 0 || index >= size)
		return 0;
	/* Below the level where the paths of index and size-1 part, every level
	 * has a sibling; above it, only the levels where index is a right
	 * child (the ones bits). */
	inner = bit_len(index ^ (size - 1));
	return inner + (inner >= 64 ? 0 : (size_t)__builtin_popcountll(index >> inner));
}

size_t rete_merkle_expected_consistency_len(uint64_t size1, uint64_t size2)
{
	unsigned level;
	uint64_t index, sub;

	if (size1 == 0 || size1 >= size2)
		return 0;
	/* The proof is the inclusion proof of the rightmost complete subtree of
	 * the old tree (level = trailing zeros of size1) in the new tree seen at
	 * that level, plus that subtree's own hash unless it is the whole old
	 * tree (size1 a power of two). */
	level = (unsigned)__builtin_ctzll(size1);
	index = (size1 - 1) >> level;
	sub = ((size2 - 1) >> level) + 1;
	return rete_merkle_expected_inclusion_len(index, sub) + (index == 0 ? 0 : 1);
}

/* Lowercase hex of the first 8 bytes, for sentences. */
static const char *short_hex(char buf[20], const uint8_t *h, size_t len)
{
	size_t n = len < 8 ? len : 8;

	if (len == 0) {
		strcpy(buf, "(empty)");
		return buf;
	}
	sodium_bin2hex(buf, 17, h, n);
	if (len > 8)
		strcat(buf, "..");
	return buf;
}

static bool same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void shift_until_odd(uint64_t *fn, uint64_t *sn)
{
	while ((*fn & 1) == 0 && *fn != 0) {
		*fn >>= 1;
		*sn >>= 1;
	}
}

rete_err rete_merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t *leaf_hash,
				      size_t leaf_hash_len, const rete_merkle_elem *proof, size_t n,
				      const uint8_t *root, size_t root_len, rete_msg *m)
{
	uint8_t r[RETE_MERKLE_HASH];
	uint64_t fn, sn;
	size_t want;
	char h1[20], h2[20];

	if (size == 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "inclusion proof for leaf %" PRIu64
				    " in a tree of size 0: the empty tree has no leaves",
				    index);
	if (index >= size)
		return rete_msg_set(m, RETE_EPROOF,
				    "inclusion proof for leaf %" PRIu64
				    " in a tree of size %" PRIu64
				    ": the index must be below the size",
				    index, size);
	if (leaf_hash == NULL || leaf_hash_len != RETE_MERKLE_HASH)
		return rete_msg_set(
		    m, RETE_EPROOF,
		    "inclusion proof: the leaf hash is %zu bytes; a leaf hash is %d",
		    leaf_hash == NULL ? 0 : leaf_hash_len, RETE_MERKLE_HASH);
	for (size_t i = 0; i < n; i++)
		if (proof[i].data == NULL || proof[i].len != RETE_MERKLE_HASH)
			return rete_msg_set(m, RETE_EPROOF,
					    "inclusion proof: hash %zu is %zu bytes; every hash "
					    "must be %d",
					    i, proof[i].data == NULL ? 0 : proof[i].len,
					    RETE_MERKLE_HASH);
	want = rete_merkle_expected_inclusion_len(index, size);
	if (n != want)
		return rete_msg_set(m, RETE_EPROOF,
				    "inclusion proof has %zu hashes; a proof for leaf %" PRIu64
				    " in a tree of %" PRIu64 " needs %zu",
				    n, index, size, want);
	if (root == NULL || root_len != RETE_MERKLE_HASH)
		return rete_msg_set(m, RETE_EPROOF,
				    "inclusion proof: the root is %zu bytes; a root is %d",
				    root == NULL ? 0 : root_len, RETE_MERKLE_HASH);

	/* RFC 9162 section 2.1.3.2. */
	fn = index;
	sn = size - 1;
	memcpy(r, leaf_hash, RETE_MERKLE_HASH);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return rete_msg_set(m, RETE_EPROOF,
					    "inclusion proof for leaf %" PRIu64
					    " in a tree of %" PRIu64
					    " has hashes beyond the root (from hash %zu on)",
					    index, size, i);
		if ((fn & 1) != 0 || fn == sn) {
			rete_merkle_node_hash(r, proof[i].data, r);
			shift_until_odd(&fn, &sn);
		} else {
			rete_merkle_node_hash(r, r, proof[i].data);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "inclusion proof for leaf %" PRIu64 " in a tree of %" PRIu64
				    " ends below the root (too few hashes)",
				    index, size);
	if (memcmp(r, root, RETE_MERKLE_HASH) != 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "inclusion proof for leaf %" PRIu64 " in a tree of %" PRIu64
				    ": computed root %s differs from the checkpoint's root %s",
				    index, size, short_hex(h1, r, RETE_MERKLE_HASH),
				    short_hex(h2, root, root_len));
	return RETE_OK;
}

rete_err rete_merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t *root1,
					size_t root1_len, const uint8_t *root2, size_t root2_len,
					const rete_merkle_elem *proof, size_t n, rete_msg *m)
{
	uint8_t fr[RETE_MERKLE_HASH], sr[RETE_MERKLE_HASH];
	const uint8_t *first;
	uint64_t fn, sn;
	size_t want, i;
	char h1[20], h2[20];

	if (root1 == NULL)
		root1_len = 0;
	if (root2 == NULL)
		root2_len = 0;
	if (size1 == 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "consistency proof from size 0 to %" PRIu64
				    ": a proof from the empty tree proves nothing; the old size "
				    "must be at least 1",
				    size2);
	if (size1 > size2)
		return rete_msg_set(m, RETE_EPROOF,
				    "consistency proof from size %" PRIu64 " to %" PRIu64
				    ": the new size must not be smaller than the old one",
				    size1, size2);
	if (size1 == size2) {
		if (n != 0)
			return rete_msg_set(m, RETE_EPROOF,
					    "consistency proof between equal sizes %" PRIu64
					    " has %zu hashes; it must be empty",
					    size1, n);
		if (!same(root1, root1_len, root2, root2_len))
			return rete_msg_set(m, RETE_EPROOF,
					    "consistency at size %" PRIu64
					    ": the two roots differ (%s, %s); a tree of one size "
					    "has one root",
					    size1, short_hex(h1, root1, root1_len),
					    short_hex(h2, root2, root2_len));
		return RETE_OK;
	}
	if (n == 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "consistency proof from size %" PRIu64 " to %" PRIu64
				    " is empty; a growing tree needs hashes",
				    size1, size2);
	for (i = 0; i < n; i++)
		if (proof[i].data == NULL || proof[i].len != RETE_MERKLE_HASH)
			return rete_msg_set(m, RETE_EPROOF,
					    "consistency proof: hash %zu is %zu bytes; every hash "
					    "must be %d",
					    i, proof[i].data == NULL ? 0 : proof[i].len,
					    RETE_MERKLE_HASH);
	want = rete_merkle_expected_consistency_len(size1, size2);
	if (n != want)
		return rete_msg_set(m, RETE_EPROOF,
				    "consistency proof has %zu hashes; a proof from size %" PRIu64
				    " to %" PRIu64 " needs %zu",
				    n, size1, size2, want);
	if (root1_len != RETE_MERKLE_HASH || root2_len != RETE_MERKLE_HASH)
		return rete_msg_set(
		    m, RETE_EPROOF,
		    "consistency proof: the roots are %zu and %zu bytes; a root is %d", root1_len,
		    root2_len, RETE_MERKLE_HASH);

	/* RFC 9162 section 2.1.4.2. Step 2: when size1 is a power of two the
	 * old root is the first element (conceptually prepended). */
	if (is_pow2(size1)) {
		first = root1;
		i = 0;
	} else {
		first = proof[0].data;
		i = 1;
	}
	fn = size1 - 1;
	sn = size2 - 1;
	while ((fn & 1) != 0) {
		fn >>= 1;
		sn >>= 1;
	}
	memcpy(fr, first, RETE_MERKLE_HASH);
	memcpy(sr, first, RETE_MERKLE_HASH);
	for (; i < n; i++) {
		const uint8_t *c = proof[i].data;

		if (sn == 0)
			return rete_msg_set(m, RETE_EPROOF,
					    "consistency proof from size %" PRIu64 " to %" PRIu64
					    " has hashes beyond the root (from hash %zu on)",
					    size1, size2, i);
		if ((fn & 1) != 0 || fn == sn) {
			rete_merkle_node_hash(fr, c, fr);
			rete_merkle_node_hash(sr, c, sr);
			shift_until_odd(&fn, &sn);
		} else {
			rete_merkle_node_hash(sr, sr, c);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "consistency proof from size %" PRIu64 " to %" PRIu64
				    " ends below the root (too few hashes)",
				    size1, size2);
	if (memcmp(fr, root1, RETE_MERKLE_HASH) != 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "consistency proof from size %" PRIu64 " to %" PRIu64
				    ": computed old root %s differs from the given old root %s",
				    size1, size2, short_hex(h1, fr, RETE_MERKLE_HASH),
				    short_hex(h2, root1, root1_len));
	if (memcmp(sr, root2, RETE_MERKLE_HASH) != 0)
		return rete_msg_set(m, RETE_EPROOF,
				    "consistency proof from size %" PRIu64 " to %" PRIu64
				    ": computed new root %s differs from the given new root %s",
				    size1, size2, short_hex(h1, sr, RETE_MERKLE_HASH),
				    short_hex(h2, root2, root2_len));
	return RETE_OK;
}

rete_err rete_merkle_complete_nodes(uint64_t leaf_index, const uint8_t leaf_hash[RETE_MERKLE_HASH],
				    rete_merkle_get_node get, void *ctx,
				    rete_merkle_node out[RETE_MERKLE_MAX_PROOF], size_t *n)
{
	uint8_t cur[RETE_MERKLE_HASH], left[RETE_MERKLE_HASH];
	uint64_t idx = leaf_index;
	unsigned level = 0;
	size_t count = 0;
	rete_err err;

	*n = 0;
	memcpy(cur, leaf_hash, RETE_MERKLE_HASH);
	/* A right child completes its parent; continue while the parent is a
	 * right child too. At most 64 rounds (the bits of a uint64_t). */
	while ((idx & 1) != 0) {
		err = get(ctx, level, idx - 1, left);
		if (err != RETE_OK)
			return err;
		rete_merkle_node_hash(cur, left, cur);
		idx >>= 1;
		level++;
		out[count].level = level;
		out[count].index = idx;
		memcpy(out[count].hash, cur, RETE_MERKLE_HASH);
		count++;
	}
	*n = count;
	return RETE_OK;
}

/* --- in-memory tree --------------------------------------------------------- */

rete_err rete_merkle_mem_init(rete_merkle_mem *t)
{
	memset(t, 0, sizeof(*t));
	return RETE_OK;
}

static rete_err mem_reserve(rete_merkle_mem *t, unsigned level)
{
	uint8_t(*p)[RETE_MERKLE_HASH];
	uint64_t cap;

	if (t->mm_len[level] < t->mm_cap[level])
		return RETE_OK;
	cap = t->mm_cap[level] == 0 ? 16 : t->mm_cap[level] * 2;
	if (cap > SIZE_MAX / RETE_MERKLE_HASH)
		return RETE_ENOMEM;
	p = realloc(t->mm_nodes[level], (size_t)cap * RETE_MERKLE_HASH);
	if (p == NULL)
		return RETE_ENOMEM;
	t->mm_nodes[level] = p;
	t->mm_cap[level] = cap;
	return RETE_OK;
}

rete_err rete_merkle_mem_get(void *ctx, unsigned level, uint64_t index,
			     uint8_t out[RETE_MERKLE_HASH])
{
	const rete_merkle_mem *t = ctx;

	if (level >= RETE_MERKLE_LEVELS || index >= t->mm_len[level])
		return RETE_ENOENT;
	memcpy(out, t->mm_nodes[level][index], RETE_MERKLE_HASH);
	return RETE_OK;
}

rete_err rete_merkle_mem_append_nodes(rete_merkle_mem *t, const uint8_t leaf_hash[RETE_MERKLE_HASH],
				      rete_merkle_node out[RETE_MERKLE_MAX_PROOF], size_t *n)
{
	rete_err err;

	*n = 0;
	if (t->mm_size == UINT64_MAX)
		return RETE_EINVAL;
	err = rete_merkle_complete_nodes(t->mm_size, leaf_hash, rete_merkle_mem_get, t, out, n);
	if (err != RETE_OK)
		return err;
	/* Reserve everything first so a failed allocation changes nothing. */
	err = mem_reserve(t, 0);
	for (size_t i = 0; err == RETE_OK && i < *n; i++)
		err = mem_reserve(t, out[i].level);
	if (err != RETE_OK) {
		*n = 0;
		return err;
	}
	memcpy(t->mm_nodes[0][t->mm_len[0]++], leaf_hash, RETE_MERKLE_HASH);
	for (size_t i = 0; i < *n; i++) {
		unsigned l = out[i].level;
		memcpy(t->mm_nodes[l][t->mm_len[l]++], out[i].hash, RETE_MERKLE_HASH);
	}
	t->mm_size++;
	return RETE_OK;
}

rete_err rete_merkle_mem_append(rete_merkle_mem *t, const uint8_t leaf_hash[RETE_MERKLE_HASH])
{
	rete_merkle_node nodes[RETE_MERKLE_MAX_PROOF];
	size_t n;

	return rete_merkle_mem_append_nodes(t, leaf_hash, nodes, &n);
}

void rete_merkle_mem_free(rete_merkle_mem *t)
{
	if (t == NULL)
		return;
	for (unsigned l = 0; l < RETE_MERKLE_LEVELS; l++)
		free(t->mm_nodes[l]);
	memset(t, 0, sizeof(*t));
}

/* --- frontier --------------------------------------------------------------- */

void rete_merkle_frontier_init(rete_merkle_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

rete_err rete_merkle_frontier_append(rete_merkle_frontier *f,
				     const uint8_t leaf_hash[RETE_MERKLE_HASH],
				     rete_merkle_node *out, size_t *n)
{
	uint8_t cur[RETE_MERKLE_HASH];
	uint64_t idx;
	unsigned level = 0;
	size_t count = 0;

	if (n != NULL)
		*n = 0;
	if (f->mf_size == UINT64_MAX)
		return RETE_EINVAL;
	idx = f->mf_size;
	memcpy(cur, leaf_hash, RETE_MERKLE_HASH);
	/* The left sibling at level L is exactly the frontier's level-L hash
	 * (bit L of the size is set). Since size < 2^64 - 1, level stays < 64. */
	while ((idx & 1) != 0) {
		rete_merkle_node_hash(cur, f->mf_hash[level], cur);
		idx >>= 1;
		level++;
		if (out != NULL) {
			out[count].level = level;
			out[count].index = idx;
			memcpy(out[count].hash, cur, RETE_MERKLE_HASH);
		}
		count++;
	}
	memcpy(f->mf_hash[level], cur, RETE_MERKLE_HASH);
	f->mf_size++;
	if (n != NULL)
		*n = count;
	return RETE_OK;
}

void rete_merkle_frontier_root(const rete_merkle_frontier *f, uint8_t out[RETE_MERKLE_HASH])
{
	uint8_t r[RETE_MERKLE_HASH];
	unsigned level;

	if (f->mf_size == 0) {
		crypto_hash_sha256(out, (const uint8_t *)"", 0);
		return;
	}
	/* Fold the perfect subtrees (binary digits of the size) right to left:
	 * the smallest, rightmost one first. */
	level = (unsigned)__builtin_ctzll(f->mf_size);
	memcpy(r, f->mf_hash[level], RETE_MERKLE_HASH);
	for (level++; level < 64; level++)
		if ((f->mf_size >> level) & 1)
			rete_merkle_node_hash(r, f->mf_hash[level], r);
	memcpy(out, r, RETE_MERKLE_HASH);
}
