/* agent_whist.c — the witness's history of verified checkpoints: see
 * agent_whist.h. */
#include "agent_whist.h"

#include <string.h>

#include "agent_be.h"

uint32_t agent_whist_epoch(const agent_whist *h, size_t i)
{
	return agent_be32_get(h->rec[i]);
}

uint64_t agent_whist_size(const agent_whist *h, size_t i)
{
	return agent_be64_get(h->rec[i] + 4);
}

const uint8_t *agent_whist_root(const agent_whist *h, size_t i)
{
	return h->rec[i] + 12;
}

bool agent_whist_parse(agent_whist *h, const uint8_t *data, size_t len)
{
	size_t n = len / AGENT_WHIST_REC;
	h->n = 0;
	if (len % AGENT_WHIST_REC != 0 || n > AGENT_WHIST_MAX || (len > 0 && data == NULL))
		return false;
	for (size_t i = 1; i < n; i++)
		if (agent_be64_get(data + (i - 1) * AGENT_WHIST_REC + 4) >=
		    agent_be64_get(data + i * AGENT_WHIST_REC + 4))
			return false;
	if (n > 0)
		memcpy(h->rec, data, len);
	h->n = n;
	return true;
}

/* whist_thin drops one record of h, which holds more than two beyond the
 * dense ones: the one, between the first and the AGENT_WHIST_DENSE newest,
 * whose neighbours' distance (the gap its removal leaves) is smallest for
 * its distance from the newest record. Steady records thinned so end up
 * with gaps that grow with their age. */
static void whist_thin(agent_whist *h)
{
	uint64_t newest = agent_whist_size(h, h->n - 1);
	size_t drop = 0;
	double best = 0;
	for (size_t i = 1; i + AGENT_WHIST_DENSE < h->n; i++) {
		double gap = (double)(agent_whist_size(h, i + 1) - agent_whist_size(h, i - 1));
		double score = gap / (double)(newest - agent_whist_size(h, i));
		if (drop == 0 || score < best) {
			best = score;
			drop = i;
		}
	}
	if (drop == 0)
		drop = h->n - 2; /* AGENT_WHIST_MAX is above AGENT_WHIST_DENSE + 1: not met */
	memmove(h->rec[drop], h->rec[drop + 1], (h->n - drop - 1) * AGENT_WHIST_REC);
	h->n--;
}

void agent_whist_put(agent_whist *h, uint64_t keep, uint32_t epoch, uint64_t size,
		     const uint8_t root[RETE_MERKLE_HASH])
{
	while (h->n > 0 &&
	       (agent_whist_size(h, h->n - 1) > keep || agent_whist_size(h, h->n - 1) >= size))
		h->n--;
	if (size == 0)
		return;
	uint8_t *r = h->rec[h->n++];
	agent_be32_put(r, epoch);
	agent_be64_put(r + 4, size);
	memcpy(r + 12, root, RETE_MERKLE_HASH);
	while (h->n > AGENT_WHIST_MAX)
		whist_thin(h);
}

long agent_whist_below(const agent_whist *h, uint64_t bound, uint32_t epoch)
{
	long best = -1;
	for (size_t i = 0; i < h->n; i++) {
		uint64_t size = agent_whist_size(h, i);
		if (size > 0 && size <= bound && agent_whist_epoch(h, i) < epoch &&
		    (best < 0 || size > agent_whist_size(h, (size_t)best)))
			best = (long)i;
	}
	return best;
}
