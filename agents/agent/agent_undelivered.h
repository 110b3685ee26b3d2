/* agent_undelivered.h — the sender's own watch on what the broker receipted
 * and never delivered.
 *
 * A broker that withholds a message (or a recipient whose agent is down)
 * leaves it receipted and held (agent_db.h, "held"): no delivery receipt,
 * no not-delivered notice. Every other signal of it is the broker's own
 * word; this one is the agent's: the age of each held message, from its
 * signed receipt, against the expiry of the directory the agent holds
 * plus the tolerance between two clocks (past it the broker should have
 * withdrawn it and said so). It cannot tell a broker that withholds from a
 * delivery receipt the broker let expire while this agent was stopped for
 * longer than the expiry: its sentence says both. The agent
 * records that expiry in its store (meta "dir_expiry") for `rete status`,
 * says each held message past it once in its log (meta "undelivered_said"
 * remembers which, across restarts), and gives /metrics the age of the
 * oldest and how many are past it. Nothing here is sent to the broker.
 */
#ifndef RETE_AGENT_UNDELIVERED_H
#define RETE_AGENT_UNDELIVERED_H

#include <stdint.h>

struct agent;

/* agent_undelivered_tick looks at the held messages once a minute on the
 * monotonic clock, and only once the connection has been welcomed for a
 * minute without a break (what the broker queued for this agent comes
 * first); a message is past its time after the directory's expiry plus
 * RETE_CLOCK_SKEW_MS (loop thread, outside any transaction). Errors of the
 * store are said in the log and tried again at the next look. now: the
 * wall clock, for the ages. */
void agent_undelivered_tick(struct agent *a, int64_t now);

/* agent_undelivered_free frees what the watch keeps in memory. */
void agent_undelivered_free(struct agent *a);

#endif
