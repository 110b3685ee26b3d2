/* idindex.h — ids found by hash in a table of structs.
 *
 * The broker looks up a party by id for every frame (the sender) and every
 * logged entry (its recipient): in the directory (config.c) and in the
 * peer table (broker.c). Both tables are arrays of structs whose first
 * member is the id, a NUL-terminated char array. A broker_id_index maps an
 * id to its position there with one hash and, mostly, one strcmp. It owns
 * its slots only; the table is the caller's and must not move or change
 * while the index is used (build it again when it does). Static inline
 * functions: the broker's configuration parser is also compiled alone
 * (the fuzz target), and a unit test takes this header in as it is.
 */
#ifndef RETE_BROKER_IDINDEX_H
#define RETE_BROKER_IDINDEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef struct broker_id_index {
	uint32_t *slot; /* a position + 1; 0: an empty slot */
	size_t mask;	/* slots - 1 (a power of two) */
} broker_id_index;

/* FNV-1a, 64 bits: ids are short, and chosen by the network's operator */
static inline uint64_t broker_id_hash(const char *id)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h;
}

/* broker_id_index_free frees what ix holds and empties it. */
static inline void broker_id_index_free(broker_id_index *ix)
{
	free(ix->slot);
	ix->slot = NULL;
	ix->mask = 0;
}

/* broker_id_index_build indexes the n ids at base, base + stride, ...
 * (each a NUL-terminated char array at the start of its struct) by hash,
 * for broker_id_index_find; an id that comes twice is found at its first
 * place. ix is the caller's (emptied first; broker_id_index_free).
 * RETE_OK or RETE_ENOMEM (ix then empty: nothing is found). */
static inline rete_err broker_id_index_build(broker_id_index *ix, const void *base, size_t stride,
					     size_t n)
{
	broker_id_index_free(ix);
	if (n >= UINT32_MAX / 4)
		return RETE_ENOMEM;
	size_t slots = 8;
	while (slots < 2 * n) /* at most half full: short probes */
		slots *= 2;
	ix->slot = calloc(slots, sizeof(*ix->slot));
	if (!ix->slot)
		return RETE_ENOMEM;
	ix->mask = slots - 1;
	for (size_t i = 0; i < n; i++) {
		const char *id = (const char *)base + i * stride;
		size_t at = (size_t)broker_id_hash(id) & ix->mask;
		while (ix->slot[at] != 0 &&
		       strcmp((const char *)base + (ix->slot[at] - 1) * stride, id) != 0)
			at = (at + 1) & ix->mask;
		if (ix->slot[at] == 0) /* a second of the same id: the first stays */
			ix->slot[at] = (uint32_t)(i + 1);
	}
	return RETE_OK;
}

/* broker_id_index_find: the position of id among the ids ix was built
 * from (the same base and stride), or SIZE_MAX. One hash and, mostly, one
 * strcmp: it runs for each frame's sender and each entry's recipient. */
static inline size_t broker_id_index_find(const broker_id_index *ix, const void *base,
					  size_t stride, const char *id)
{
	if (!ix->slot || !id)
		return SIZE_MAX;
	for (size_t at = (size_t)broker_id_hash(id) & ix->mask; ix->slot[at] != 0;
	     at = (at + 1) & ix->mask) {
		size_t i = ix->slot[at] - 1;
		if (strcmp((const char *)base + i * stride, id) == 0)
			return i;
	}
	return SIZE_MAX;
}

#endif
