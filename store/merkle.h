/* merkle.h — RFC 6962 / RFC 9162 Merkle tree hashing and proofs.
 *
 * Pure functions: hashing, roots, inclusion and consistency proofs and their
 * verification, over a tree whose complete subtrees are read through a
 * callback (the store reads them from its `nodes` database; tests from
 * memory). A complete subtree is named by (level, index): it covers leaves
 * [index << level, (index + 1) << level).
 */
#ifndef RETE_MERKLE_H
#define RETE_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RETE_MERKLE_HASH 32
#define RETE_MERKLE_MAX_PROOF 64 /* a path in a 2^64 tree */

/* rete_merkle_get_node reads the hash of the complete subtree (level, index)
 * into out. Returns RETE_OK, or an error that the caller passes through. */
typedef rete_err (*rete_merkle_get_node)(void *ctx, unsigned level, uint64_t index,
					 uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_leaf_hash = SHA-256(0x00 || data). */
void rete_merkle_leaf_hash(uint8_t out[RETE_MERKLE_HASH], const void *data, size_t len);

/* rete_merkle_node_hash = SHA-256(0x01 || left || right). */
void rete_merkle_node_hash(uint8_t out[RETE_MERKLE_HASH], const uint8_t left[RETE_MERKLE_HASH],
			   const uint8_t right[RETE_MERKLE_HASH]);

/* rete_merkle_root computes the root of the first `size` leaves (size 0: the
 * hash of the empty string) from O(log n) complete subtrees. */
rete_err rete_merkle_root(rete_merkle_get_node get, void *ctx, uint64_t size,
			  uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_subtree computes MTH(D[begin:end]) for any range (used by the
 * proof generators); reads O(log n) complete subtrees. */
rete_err rete_merkle_subtree(rete_merkle_get_node get, void *ctx, uint64_t begin,
			     uint64_t end, uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_inclusion_proof writes PATH(index, D[0:size]) into proof
 * (room for RETE_MERKLE_MAX_PROOF hashes) and its length into *n.
 * RETE_EINVAL when index >= size. */
rete_err rete_merkle_inclusion_proof(rete_merkle_get_node get, void *ctx, uint64_t index,
				     uint64_t size, uint8_t proof[][RETE_MERKLE_HASH],
				     size_t *n);

/* rete_merkle_consistency_proof writes PROOF(size1, D[0:size2]). RETE_EINVAL
 * when size1 == 0 or size1 > size2. */
rete_err rete_merkle_consistency_proof(rete_merkle_get_node get, void *ctx, uint64_t size1,
				       uint64_t size2, uint8_t proof[][RETE_MERKLE_HASH],
				       size_t *n);

/* A proof as received from outside: elements of any length, checked here. */
typedef struct rete_merkle_elem {
	const uint8_t *data;
	size_t len;
} rete_merkle_elem;

/* rete_merkle_verify_inclusion checks an inclusion proof per RFC 9162
 * 2.1.3.2. RETE_OK or RETE_EPROOF (with the reason in m). */
rete_err rete_merkle_verify_inclusion(uint64_t index, uint64_t size,
				      const uint8_t *leaf_hash, size_t leaf_hash_len,
				      const rete_merkle_elem *proof, size_t n,
				      const uint8_t *root, size_t root_len, rete_msg *m);

/* rete_merkle_verify_consistency checks a consistency proof per RFC 9162
 * 2.1.4.2. RETE_OK or RETE_EPROOF. */
rete_err rete_merkle_verify_consistency(uint64_t size1, uint64_t size2,
					const uint8_t *root1, size_t root1_len,
					const uint8_t *root2, size_t root2_len,
					const rete_merkle_elem *proof, size_t n, rete_msg *m);

#endif
