/* agent_be.h — big-endian integers in the agent's stored records (keys and
 * values of its LMDB store: receipts, the witness's records, its history of
 * checkpoints). Header-only: nothing is owned, every pointer is the
 * caller's, read or written in place.
 */
#ifndef RETE_AGENT_BE_H
#define RETE_AGENT_BE_H

#include <stdint.h>

/* agent_be32_get reads p[0..3] as a big-endian 32-bit integer. */
static inline uint32_t agent_be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* agent_be64_get reads p[0..7] as a big-endian 64-bit integer. */
static inline uint64_t agent_be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* agent_be32_put writes v big-endian into p[0..3]. */
static inline void agent_be32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* agent_be64_put writes v big-endian into p[0..7]. */
static inline void agent_be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

#endif
