/* agent_net.h — the broker connection's life cycle, for the main loop
 * (agent_net_send and agent_net_ready, used by every part, are in agent.h).
 */
#ifndef RETE_AGENT_NET_H
#define RETE_AGENT_NET_H

#include <stdint.h>

#include "agent.h"

/* agent_net_start connects (in the background) and says HELLO.
 * RETE_ENOMEM; a failing connect is logged and retried, not returned. */
rete_err agent_net_start(agent *a, rete_msg *m);

/* agent_net_flush says, as the agent stops (before agent_net_stop), the
 * count of refusals of our key not said yet (agent_net.c: a refused key is
 * said once, then counted). */
void agent_net_flush(agent *a);

/* agent_net_stop closes the connection and frees its state. */
void agent_net_stop(agent *a);

/* agent_net_socket: the ZeroMQ socket to poll, or NULL while waiting to
 * reconnect. */
void *agent_net_socket(agent *a);

/* agent_net_poll handles every frame ready (WELCOME, RECEIPT, DELIVER...),
 * notices a lost or refusing broker, reconnects when the backoff is over
 * and sends the heartbeat PING. */
void agent_net_poll(agent *a, int64_t now);

/* agent_net_backoff drops the connection and schedules the next attempt
 * (exponential backoff between reconnect_min and reconnect_max, jittered). */
void agent_net_backoff(agent *a, int64_t now);

/* agent_net_wire: the connection (for QUERYs), or NULL between attempts. */
struct rete_wire *agent_net_wire(agent *a);

/* agent_net_wait: at most how many ms the loop may sleep for the
 * connection's sake. */
int64_t agent_net_wait(const agent *a, int64_t now);

#endif
