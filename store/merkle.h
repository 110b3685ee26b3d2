/* merkle.h — RFC 6962 / RFC 9162 Merkle tree hashing and proofs.
 *
 * Pure functions: hashing, roots, inclusion and consistency proofs and their
 * verification, over a tree whose complete subtrees are read through a
 * callback (the store reads them from its `nodes` database; tests from
 * memory). A complete subtree is named by (level, index): it covers leaves
 * [index << level, (index + 1) << level).
 *
 * Also here: the helper a writer uses to find the subtrees an append
 * completes, an in-memory tree (tests) and the frontier (a verifier replaying
 * a log in O(log n) memory).
 */
#ifndef RETE_MERKLE_H
#define RETE_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RETE_MERKLE_HASH      32
#define RETE_MERKLE_MAX_PROOF 64 /* a path in a 2^64 tree */

/* rete_merkle_get_node reads the hash of the complete subtree (level, index)
 * into out. Returns RETE_OK, or an error that the caller passes through. */
typedef rete_err (*rete_merkle_get_node)(void *ctx, unsigned level, uint64_t index,
					 uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_sha256 = SHA-256(data), by OpenSSL (the CPU's SHA
 * instructions where it has them; libsodium if OpenSSL fails). */
void rete_merkle_sha256(uint8_t out[RETE_MERKLE_HASH], const void *data, size_t len);

/* rete_merkle_leaf_hash = SHA-256(0x00 || data). */
void rete_merkle_leaf_hash(uint8_t out[RETE_MERKLE_HASH], const void *data, size_t len);

/* rete_merkle_node_hash = SHA-256(0x01 || left || right). */
void rete_merkle_node_hash(uint8_t out[RETE_MERKLE_HASH], const uint8_t left[RETE_MERKLE_HASH],
			   const uint8_t right[RETE_MERKLE_HASH]);

/* rete_merkle_root computes the root of the first `size` leaves (size 0: the
 * hash of the empty string) from O(log n) complete subtrees. */
rete_err rete_merkle_root(rete_merkle_get_node get, void *ctx, uint64_t size,
			  uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_subtree computes MTH(D[begin:end]) for any range (begin <= end;
 * an empty range gives the hash of the empty string). The ranges the proof
 * generators use start at a multiple of the next power of two >= their
 * length and read O(log n) complete subtrees; other ranges may read up to
 * O(end - begin). RETE_EINVAL when begin > end, or what get returns. */
rete_err rete_merkle_subtree(rete_merkle_get_node get, void *ctx, uint64_t begin, uint64_t end,
			     uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_inclusion_proof writes PATH(index, D[0:size]) into proof
 * (room for RETE_MERKLE_MAX_PROOF hashes) and its length into *n.
 * RETE_EINVAL when index >= size. */
rete_err rete_merkle_inclusion_proof(rete_merkle_get_node get, void *ctx, uint64_t index,
				     uint64_t size, uint8_t proof[][RETE_MERKLE_HASH], size_t *n);

/* A memo of the subtree hashes inclusion proofs took, so that the proofs of
 * neighbouring entries (a commit's receipts) read and hash their shared
 * path once. Valid for one log while no entry is rewritten (a range's hash
 * is fixed once its leaves are logged); NULL from _new when out of memory. */
typedef struct rete_merkle_memo rete_merkle_memo;
rete_merkle_memo *rete_merkle_memo_new(void);
void rete_merkle_memo_free(rete_merkle_memo *memo);

/* rete_merkle_memo_node tells memo the hash of complete subtree (level,
 * index), so that proofs through memo take it instead of asking their
 * callback (a writer gives the nodes it just wrote, once they are durable).
 * Kept per level as one run of consecutive indexes: a node that does not
 * continue its level's run starts a new one. The caller vouches for the
 * hash. RETE_EINVAL (no memo, level > 64), RETE_ENOMEM (memo unchanged). */
rete_err rete_merkle_memo_node(rete_merkle_memo *memo, unsigned level, uint64_t index,
			       const uint8_t hash[RETE_MERKLE_HASH]);

/* rete_merkle_root_memo: rete_merkle_root through memo (NULL: none), which
 * also keeps the subtrees the root folds (the complete ones and each
 * partial fold from the right), so that the inclusion proofs of the same
 * size through memo take their upper siblings from it. Errors: as
 * rete_merkle_root. */
rete_err rete_merkle_root_memo(rete_merkle_get_node get, void *ctx, rete_merkle_memo *memo,
			       uint64_t size, uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_inclusion_proof_memo: rete_merkle_inclusion_proof through
 * memo (NULL: none). */
rete_err rete_merkle_inclusion_proof_memo(rete_merkle_get_node get, void *ctx,
					  rete_merkle_memo *memo, uint64_t index, uint64_t size,
					  uint8_t proof[][RETE_MERKLE_HASH], size_t *n);

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
rete_err rete_merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t *leaf_hash,
				      size_t leaf_hash_len, const rete_merkle_elem *proof, size_t n,
				      const uint8_t *root, size_t root_len, rete_msg *m);

/* rete_merkle_verify_consistency checks a consistency proof per RFC 9162
 * 2.1.4.2. RETE_OK or RETE_EPROOF. */
rete_err rete_merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t *root1,
					size_t root1_len, const uint8_t *root2, size_t root2_len,
					const rete_merkle_elem *proof, size_t n, rete_msg *m);

/* A complete subtree just formed by an append: (level, index) and its hash. */
typedef struct rete_merkle_node {
	unsigned level;
	uint64_t index;
	uint8_t hash[RETE_MERKLE_HASH];
} rete_merkle_node;

/* rete_merkle_complete_nodes lists the complete subtrees of level >= 1 that
 * appending leaf number leaf_index (hash leaf_hash) completes, lowest level
 * first: while bit L of the index is set, the left sibling (L, (index >> L)
 * - 1) is read through get and combined. out needs room for
 * RETE_MERKLE_MAX_PROOF nodes; *n gets how many were written (0 for an even
 * index). The writer persists the leaf hash as (0, leaf_index) and then
 * exactly these nodes; get must see nodes written by earlier appends in the
 * same transaction. Errors: whatever get returns. */
rete_err rete_merkle_complete_nodes(uint64_t leaf_index, const uint8_t leaf_hash[RETE_MERKLE_HASH],
				    rete_merkle_get_node get, void *ctx,
				    rete_merkle_node out[RETE_MERKLE_MAX_PROOF], size_t *n);

/* rete_merkle_expected_inclusion_len is the number of hashes in PATH(index,
 * D[0:size]) (index < size). */
size_t rete_merkle_expected_inclusion_len(uint64_t index, uint64_t size);

/* rete_merkle_expected_consistency_len is the number of hashes in
 * PROOF(size1, D[0:size2]) (0 < size1 <= size2). */
size_t rete_merkle_expected_consistency_len(uint64_t size1, uint64_t size2);

/* --- an in-memory tree (tests, rebuilding a tree to compare with a store) --- */

#define RETE_MERKLE_LEVELS 65 /* levels 0..64 */

/* rete_merkle_mem keeps every complete subtree hash, level by level. Owns its
 * arrays (malloc); release with rete_merkle_mem_free. */
typedef struct rete_merkle_mem {
	uint8_t (*mm_nodes[RETE_MERKLE_LEVELS])[RETE_MERKLE_HASH];
	uint64_t mm_len[RETE_MERKLE_LEVELS];
	uint64_t mm_cap[RETE_MERKLE_LEVELS];
	uint64_t mm_size; /* leaves appended */
} rete_merkle_mem;

/* rete_merkle_mem_init makes an empty tree. Always RETE_OK. */
rete_err rete_merkle_mem_init(rete_merkle_mem *t);

/* rete_merkle_mem_append appends one leaf hash (copied) and stores the
 * subtrees it completes. RETE_ENOMEM (the tree is unchanged). */
rete_err rete_merkle_mem_append(rete_merkle_mem *t, const uint8_t leaf_hash[RETE_MERKLE_HASH]);

/* rete_merkle_mem_append_nodes is rete_merkle_mem_append that also reports the
 * completed subtrees of level >= 1 (as rete_merkle_complete_nodes) in out
 * (room for RETE_MERKLE_MAX_PROOF) and their number in *n. */
rete_err rete_merkle_mem_append_nodes(rete_merkle_mem *t, const uint8_t leaf_hash[RETE_MERKLE_HASH],
				      rete_merkle_node out[RETE_MERKLE_MAX_PROOF], size_t *n);

/* rete_merkle_mem_get is the rete_merkle_get_node callback over a
 * rete_merkle_mem (ctx). RETE_ENOENT for a subtree that is not complete. */
rete_err rete_merkle_mem_get(void *ctx, unsigned level, uint64_t index,
			     uint8_t out[RETE_MERKLE_HASH]);

/* rete_merkle_mem_free releases the arrays and leaves an empty tree; the
 * struct itself belongs to the caller. */
void rete_merkle_mem_free(rete_merkle_mem *t);

/* --- the frontier (compact range): O(log n) memory ------------------------ */

/* rete_merkle_frontier holds, for each set bit L of mf_size, the hash of the
 * rightmost complete subtree of level L: all a verifier needs to replay a log
 * leaf by leaf and recompute every root. A plain value, no resources. */
typedef struct rete_merkle_frontier {
	uint64_t mf_size;
	uint8_t mf_hash[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
} rete_merkle_frontier;

/* rete_merkle_frontier_init makes the frontier of the empty tree. */
void rete_merkle_frontier_init(rete_merkle_frontier *f);

/* rete_merkle_frontier_append appends one leaf hash. out (may be NULL, else
 * room for RETE_MERKLE_MAX_PROOF) receives the completed subtrees of level
 * >= 1 and *n (may be NULL) their number, so a verifier can compare them
 * with stored nodes. RETE_EINVAL when the tree already has 2^64-1 leaves. */
rete_err rete_merkle_frontier_append(rete_merkle_frontier *f,
				     const uint8_t leaf_hash[RETE_MERKLE_HASH],
				     rete_merkle_node *out, size_t *n);

/* rete_merkle_frontier_root writes the root of the frontier's tree. */
void rete_merkle_frontier_root(const rete_merkle_frontier *f, uint8_t out[RETE_MERKLE_HASH]);

#endif
