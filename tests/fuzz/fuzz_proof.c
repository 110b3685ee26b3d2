/* fuzz_proof.c — libFuzzer target: Merkle proof verification.
 *
 * Proofs come from outside (a broker's answer, a proof file an auditor is
 * handed), so the verifiers of merkle.h must take any sizes, indexes,
 * element counts and element lengths. The first byte of the input picks
 * the mode:
 *  - '{': a proof JSON document in the spelling of testdata/merkle
 *    (leafIdx, treeSize, root, leafHash, proof / size1, size2, root1, root2,
 *    proof), the seeds' form, verified as it says;
 *  - otherwise, byte % 3 = 0: raw inclusion, 1: raw consistency: sizes,
 *    index, hashes and proof elements of any length read from the input;
 *  - byte % 3 = 2: a model: a tree of up to 300 leaves is built in memory,
 *    a proof generated for an index and sizes taken from the input must
 *    verify, and the same proof with one bit flipped (position from the
 *    input) in a hash, the root(s) or the proof must not.
 * Properties: whatever verifies has the expected shape (index < size, every
 * hash 32 bytes, the expected number of elements); generated proofs verify;
 * tampered ones do not; the frontier's root and completed nodes agree with
 * the in-memory tree's.
 */
#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "merkle.h"

/* A cursor over the input: reads past the end give zeroes. */
struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

/* num reads a small number (one byte) or a full 64-bit one, as the flag
 * says, so that both small trees and the extremes are reachable. */
static uint64_t num(struct in *in, bool wide)
{
	return wide ? u64(in) : u8(in);
}

/* elem takes a length (0..63) and then that many bytes (or what is left). */
static rete_merkle_elem elem(struct in *in)
{
	size_t len = u8(in) & 0x3f;
	if (len > in->n)
		len = in->n;
	rete_merkle_elem e = {in->p, len};
	in->p += len;
	in->n -= len;
	return e;
}

static void check_inclusion(uint64_t index, uint64_t size, rete_merkle_elem leaf,
			    const rete_merkle_elem *proof, size_t n, rete_merkle_elem root)
{
	rete_msg m;
	if (rete_merkle_verify_inclusion(index, size, leaf.data, leaf.len, proof, n, root.data,
					 root.len, &m) != RETE_OK)
		return;
	if (index >= size || leaf.len != RETE_MERKLE_HASH || root.len != RETE_MERKLE_HASH)
		fuzz_fail("inclusion verified with index %llu, size %llu, leaf %zu, root %zu bytes",
			  (unsigned long long)index, (unsigned long long)size, leaf.len, root.len);
	if (n != rete_merkle_expected_inclusion_len(index, size))
		fuzz_fail("inclusion verified with %zu elements, expected %zu", n,
			  rete_merkle_expected_inclusion_len(index, size));
	for (size_t i = 0; i < n; i++)
		if (proof[i].len != RETE_MERKLE_HASH)
			fuzz_fail("inclusion verified with a %zu-byte element", proof[i].len);
}

static void check_consistency(uint64_t size1, uint64_t size2, rete_merkle_elem r1,
			      rete_merkle_elem r2, const rete_merkle_elem *proof, size_t n)
{
	rete_msg m;
	if (rete_merkle_verify_consistency(size1, size2, r1.data, r1.len, r2.data, r2.len, proof, n,
					   &m) != RETE_OK)
		return;
	/* Equal sizes with equal roots verify whatever the roots' length, as
	 * the shared vectors (consistency/additional/sizes-are-equal-one-and-
	 * proof-is-empty.json) require: the caller compares the roots with
	 * its checkpoints. Growing trees need real 32-byte roots. */
	if (size1 > size2 || r1.len != r2.len ||
	    (size1 != size2 && (r1.len != RETE_MERKLE_HASH || r2.len != RETE_MERKLE_HASH)))
		fuzz_fail("consistency verified with sizes %llu, %llu, roots %zu, %zu bytes",
			  (unsigned long long)size1, (unsigned long long)size2, r1.len, r2.len);
	if (size1 > 0 && n != rete_merkle_expected_consistency_len(size1, size2))
		fuzz_fail("consistency verified with %zu elements, expected %zu", n,
			  rete_merkle_expected_consistency_len(size1, size2));
	if (size1 == size2 && r1.len && memcmp(r1.data, r2.data, r1.len) != 0)
		fuzz_fail("consistency verified between different roots of the same size");
	for (size_t i = 0; i < n; i++)
		if (proof[i].len != RETE_MERKLE_HASH)
			fuzz_fail("consistency verified with a %zu-byte element", proof[i].len);
}

#define MAX_ELEMS 70 /* a few more than any valid proof has */

static void raw(struct in *in, bool consistency)
{
	uint8_t flags = u8(in);
	uint64_t a = num(in, flags & 1), b = num(in, flags & 2);
	rete_merkle_elem h1 = elem(in), h2 = elem(in);
	size_t n = u8(in) % MAX_ELEMS;
	rete_merkle_elem proof[MAX_ELEMS];
	for (size_t i = 0; i < n; i++)
		proof[i] = elem(in);
	if (consistency)
		check_consistency(a, b, h1, h2, proof, n);
	else
		check_inclusion(a, b, h1, proof, n, h2);
}

/* --- JSON (testdata/merkle spelling) -------------------------------------- */

struct b64 {
	uint8_t buf[96];
	rete_merkle_elem e;
};

/* b64 decodes s (NULL or invalid: an empty element). */
static void b64(const char *s, struct b64 *out)
{
	out->e.data = out->buf;
	out->e.len = 0;
	size_t len = 0;
	if (s && sodium_base642bin(out->buf, sizeof(out->buf), s, strlen(s), NULL, &len, NULL,
				   sodium_base64_VARIANT_ORIGINAL) == 0)
		out->e.len = len;
}

static const char *jstr(json_t *doc, const char *key)
{
	return json_string_value(json_object_get(doc, key));
}

static uint64_t jnum(json_t *doc, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(doc, key));
}

static void from_json(const uint8_t *data, size_t size)
{
	json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return;
	}
	static struct b64 elems[MAX_ELEMS];
	rete_merkle_elem proof[MAX_ELEMS];
	json_t *arr = json_object_get(doc, "proof");
	size_t n = json_array_size(arr);
	if (n > MAX_ELEMS)
		n = MAX_ELEMS;
	for (size_t i = 0; i < n; i++) {
		b64(json_string_value(json_array_get(arr, i)), &elems[i]);
		proof[i] = elems[i].e;
	}
	struct b64 x, y;
	if (json_object_get(doc, "size1")) {
		b64(jstr(doc, "root1"), &x);
		b64(jstr(doc, "root2"), &y);
		check_consistency(jnum(doc, "size1"), jnum(doc, "size2"), x.e, y.e, proof, n);
	} else {
		b64(jstr(doc, "leafHash"), &x);
		b64(jstr(doc, "root"), &y);
		check_inclusion(jnum(doc, "leafIdx"), jnum(doc, "treeSize"), x.e, proof, n, y.e);
	}
	json_decref(doc);
}

/* --- the model ------------------------------------------------------------ */

#define MODEL_MAX 300

static void flip(uint8_t (*hashes)[RETE_MERKLE_HASH], size_t count, struct in *in)
{
	size_t bit = ((size_t)u8(in) << 8 | u8(in)) % (count * RETE_MERKLE_HASH * 8);
	hashes[bit / (RETE_MERKLE_HASH * 8)][bit / 8 % RETE_MERKLE_HASH] ^=
	    (uint8_t)(1u << (bit % 8));
}

static void model(struct in *in)
{
	size_t nleaves = 1 + (((size_t)u8(in) << 8 | u8(in)) % MODEL_MAX);
	uint8_t salt = u8(in);
	rete_merkle_mem t;
	rete_merkle_mem_init(&t);
	rete_merkle_frontier f;
	rete_merkle_frontier_init(&f);
	for (size_t i = 0; i < nleaves; i++) {
		uint8_t leaf[9], h[RETE_MERKLE_HASH];
		for (int k = 0; k < 8; k++)
			leaf[k] = (uint8_t)((uint64_t)i >> (8 * k));
		leaf[8] = salt;
		rete_merkle_leaf_hash(h, leaf, sizeof(leaf));
		rete_merkle_node a[RETE_MERKLE_MAX_PROOF], b[RETE_MERKLE_MAX_PROOF];
		size_t na = 0, nb = 0;
		if (rete_merkle_mem_append_nodes(&t, h, a, &na) != RETE_OK)
			abort(); /* out of memory only */
		if (rete_merkle_frontier_append(&f, h, b, &nb) != RETE_OK)
			fuzz_fail("frontier refused leaf %zu", i);
		if (na != nb)
			fuzz_fail("leaf %zu: tree completes %zu nodes, frontier %zu", i, na, nb);
		for (size_t k = 0; k < na; k++) /* field by field: padding differs */
			if (a[k].level != b[k].level || a[k].index != b[k].index ||
			    memcmp(a[k].hash, b[k].hash, RETE_MERKLE_HASH) != 0)
				fuzz_fail("leaf %zu: tree and frontier complete different nodes",
					  i);
	}
	uint8_t root_all[RETE_MERKLE_HASH], root_f[RETE_MERKLE_HASH];
	if (rete_merkle_root(rete_merkle_mem_get, &t, nleaves, root_all) != RETE_OK)
		fuzz_fail("root of %zu leaves failed", nleaves);
	rete_merkle_frontier_root(&f, root_f);
	if (memcmp(root_all, root_f, RETE_MERKLE_HASH) != 0)
		fuzz_fail("tree and frontier roots differ at size %zu", nleaves);

	/* hashes[0..1] = leaf hash / root1 and root; hashes[2..] = proof. */
	uint8_t hashes[2 + RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
	size_t n = 0;
	rete_msg m;
	if (u8(in) & 1) {
		uint64_t size1 = 1 + u64(in) % nleaves;
		uint64_t size2 = size1 + u64(in) % (nleaves - size1 + 1);
		if (rete_merkle_consistency_proof(rete_merkle_mem_get, &t, size1, size2, &hashes[2],
						  &n) != RETE_OK)
			fuzz_fail("consistency proof %llu -> %llu failed",
				  (unsigned long long)size1, (unsigned long long)size2);
		if (n != rete_merkle_expected_consistency_len(size1, size2))
			fuzz_fail("consistency proof has %zu elements, expected %zu", n,
				  rete_merkle_expected_consistency_len(size1, size2));
		if (rete_merkle_root(rete_merkle_mem_get, &t, size1, hashes[0]) != RETE_OK ||
		    rete_merkle_root(rete_merkle_mem_get, &t, size2, hashes[1]) != RETE_OK)
			fuzz_fail("roots failed");
		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < n; i++)
				e[i] = (rete_merkle_elem){hashes[2 + i], RETE_MERKLE_HASH};
			rete_err r = rete_merkle_verify_consistency(size1, size2, hashes[0],
								    RETE_MERKLE_HASH, hashes[1],
								    RETE_MERKLE_HASH, e, n, &m);
			if (pass == 0 && r != RETE_OK)
				fuzz_fail("consistency %llu -> %llu does not verify: %s",
					  (unsigned long long)size1, (unsigned long long)size2,
					  m.text);
			if (pass == 1 && r == RETE_OK)
				fuzz_fail("consistency %llu -> %llu verifies with a flipped bit",
					  (unsigned long long)size1, (unsigned long long)size2);
			flip(hashes, 2 + n, in);
		}
	} else {
		uint64_t size = 1 + u64(in) % nleaves;
		uint64_t index = u64(in) % size;
		if (rete_merkle_inclusion_proof(rete_merkle_mem_get, &t, index, size, &hashes[2],
						&n) != RETE_OK)
			fuzz_fail("inclusion proof %llu in %llu failed", (unsigned long long)index,
				  (unsigned long long)size);
		if (n != rete_merkle_expected_inclusion_len(index, size))
			fuzz_fail("inclusion proof has %zu elements, expected %zu", n,
				  rete_merkle_expected_inclusion_len(index, size));
		if (rete_merkle_mem_get(&t, 0, index, hashes[0]) != RETE_OK ||
		    rete_merkle_root(rete_merkle_mem_get, &t, size, hashes[1]) != RETE_OK)
			fuzz_fail("leaf or root failed");
		uint64_t other = u64(in) % size;
		for (int pass = 0; pass < 3; pass++) {
			for (size_t i = 0; i < n; i++)
				e[i] = (rete_merkle_elem){hashes[2 + i], RETE_MERKLE_HASH};
			uint64_t idx = pass == 1 ? other : index;
			rete_err r =
			    rete_merkle_verify_inclusion(idx, size, hashes[0], RETE_MERKLE_HASH, e,
							 n, hashes[1], RETE_MERKLE_HASH, &m);
			if (pass == 0 && r != RETE_OK)
				fuzz_fail("inclusion %llu in %llu does not verify: %s",
					  (unsigned long long)index, (unsigned long long)size,
					  m.text);
			if (pass == 1 && idx != index && r == RETE_OK)
				fuzz_fail("inclusion proof of %llu verifies for index %llu",
					  (unsigned long long)index, (unsigned long long)idx);
			if (pass == 2 && r == RETE_OK)
				fuzz_fail("inclusion %llu in %llu verifies with a flipped bit",
					  (unsigned long long)index, (unsigned long long)size);
			if (pass == 1)
				flip(hashes, 2 + n, in);
		}
	}
	rete_merkle_mem_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] == '{') {
		from_json(data, size);
		return 0;
	}
	struct in in = {data + 1, size - 1};
	switch (data[0] % 3) {
	case 0:
		raw(&in, false);
		break;
	case 1:
		raw(&in, true);
		break;
	default:
		model(&in);
		break;
	}
	return 0;
}
