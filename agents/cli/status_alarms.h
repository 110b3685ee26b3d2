/* status_alarms.h — what `rete status` says first of the broker the agent
 * caught: the witness alarm (meta "alarm": the broker's log does not match
 * what it showed or delivered, agent_witness.c) and the delivery alarms
 * (meta "delivery_alarms": deliveries logged by the broker that their
 * recipient did not sign, agent_delivery.c), and an operator's acceptance
 * of a log epoch the witness had raised the alarm on (rete-agent
 * --accept-epoch). Kept apart from cmd_status.c
 * so that each part of the status reads one record.
 */
#ifndef RETE_STATUS_ALARMS_H
#define RETE_STATUS_ALARMS_H

#include <stdio.h>

#include <jansson.h>

#include "../agent/agent_db.h"

/* status_alarms_print writes one line per alarm of the agent's store db
 * (NULL: none) for agency id into out. */
void status_alarms_print(agent_db *db, const char *id, FILE *out);

/* status_alarms_json sets "witnessAlarm" (string), "deliveryAlarms"
 * (array) and "epochAccepted" (the record of rete-agent --accept-epoch,
 * agent_db.h) in doc when there are any. */
void status_alarms_json(agent_db *db, json_t *doc);

#endif
