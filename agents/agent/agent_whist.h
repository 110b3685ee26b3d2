/* agent_whist.h — the witness's history of the checkpoints it verified.
 *
 * At a declared restore below the checkpoint an agent verified last, the
 * consistency proof from that checkpoint no longer exists, and the checks
 * of single entries below the restore point (entry 0, the Epoch entry,
 * the directory entry) say nothing of the entries between them. The
 * witness therefore keeps a few of the checkpoints it verified (their log
 * epoch, size and root) and asks a consistency proof from the largest one
 * at or below the restore point (agent_witness.c, WIT_LINK_HIST).
 *
 * This module owns the record's layout and its thinning, nothing else (the
 * agent keeps it in meta "whist": AGENT_WHIST_REC bytes per checkpoint,
 * epoch BE32 || size BE64 || root, by size, smallest first). It never
 * holds more than AGENT_WHIST_MAX records: the first (the oldest kept) and
 * the AGENT_WHIST_DENSE newest are always kept; among the others the one
 * dropped is the one whose neighbours are nearest to each other for its
 * distance from the newest, so that older records end up spaced about in
 * proportion to their age (the recent log densely, all of it sparsely).
 */
#ifndef RETE_AGENT_WHIST_H
#define RETE_AGENT_WHIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "merkle.h"

#define AGENT_WHIST_REC	  (4 + 8 + RETE_MERKLE_HASH)
#define AGENT_WHIST_MAX	  96
#define AGENT_WHIST_DENSE 32

/* agent_whist: the records (rec[0..n-1]), sizes strictly increasing; one
 * slot more than the bound, filled by agent_whist_put before it thins. */
typedef struct agent_whist {
	size_t n;
	uint8_t rec[AGENT_WHIST_MAX + 1][AGENT_WHIST_REC];
} agent_whist;

/* agent_whist_parse fills h from the stored bytes data[0:len] (borrowed).
 * false, and h empty, when they are not whole records, more than
 * AGENT_WHIST_MAX, or not by strictly increasing size (the caller begins
 * a new history). NULL data with len 0 is an empty history. */
bool agent_whist_parse(agent_whist *h, const uint8_t *data, size_t len);

/* agent_whist_put adds the checkpoint (epoch, size, root) as the newest
 * record, after dropping the records larger than `keep` (those a declared
 * restore left off the log; UINT64_MAX: none) and those not smaller than
 * size (none on a log that only grows), then thins h to AGENT_WHIST_MAX.
 * A size of 0 is not added. The stored bytes are h->rec, h->n records. */
void agent_whist_put(agent_whist *h, uint64_t keep, uint32_t epoch, uint64_t size,
		     const uint8_t root[RETE_MERKLE_HASH]);

/* agent_whist_below: the index of the largest record whose size is at least
 * 1 and at most `bound`, of an epoch before `epoch`; -1 when none. */
long agent_whist_below(const agent_whist *h, uint64_t bound, uint32_t epoch);

/* agent_whist_epoch, _size, _root: record i's fields (i < h->n; the root
 * points into h). */
uint32_t agent_whist_epoch(const agent_whist *h, size_t i);
uint64_t agent_whist_size(const agent_whist *h, size_t i);
const uint8_t *agent_whist_root(const agent_whist *h, size_t i);

#endif
