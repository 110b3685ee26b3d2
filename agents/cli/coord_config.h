/* coord_config.h — the coordinator's configuration file (coord.ini).
 *
 * One [client] section says who the coordinator is (party id and key), where
 * the broker is (request endpoint, events endpoint, pinned public key) and
 * the network's time zone for dates on the command line. It is written in
 * the same style as the agent's agent.ini: `key = value` lines, relative
 * paths taken relative to the folder of the ini file, other sections
 * ignored (they belong to other tools sharing the file). `rete monitor`
 * and `rete report -c` read it through this module; docs/coordinator.md
 * lists the keys.
 */
#ifndef RETE_CLI_COORD_CONFIG_H
#define RETE_CLI_COORD_CONFIG_H

#include <stdbool.h>

#include "error.h"
#include "keys.h"
#include "rete.pb-c.h"
#include "wire.h"

/* coord_config: malloc'd strings owned by the struct. */
typedef struct coord_config {
	char id[RETE_ID_MAX + 1]; /* [client] id: the coordinator's party id */
	char *ini_path;		  /* the configuration file itself */
	char *key_path;		  /* [client] key: ID.key (absolute) */
	char *broker;		  /* [client] broker: request endpoint (ROUTER) */
	char *broker_key_path;	  /* [client] broker_key: the broker's .pub (absolute) */
	char *events;		  /* [client] events: the broker's PUB endpoint, or NULL */
	char *time_zone;	  /* [client] time_zone (default Europe/Rome) */
	bool time_zone_default;	  /* time_zone is the default: the file gave none */
	int timeout_ms;		  /* [client] timeout: wait for an answer (10s) */
	unsigned min_count;	  /* [report] min_count: counts below it hidden (3) */
#define CC_LINES   6
#define CC_LINE_TZ 5
	int lines[CC_LINES]; /* the lines of id, key, broker, broker_key, events,
				time_zone (CC_LINE_TZ) in the file (0: not given) */
	bool unreadable;     /* coord_config_read: the file could not be read (its one
				sentence names it) */
} coord_config;

/* coord_config_load reads path into *cfg (the caller releases it with
 * coord_config_free, also after a failure). id, key, broker and broker_key
 * are required. Errors: RETE_EIO (cannot read the file), RETE_EINVAL (a
 * missing or bad key; m names the file, the key, the value and what is
 * accepted), RETE_ENOMEM. */
rete_err coord_config_load(const char *path, coord_config *cfg, rete_msg *m);

/* coord_config_read is coord_config_load listing every problem of the
 * file in pr (config_check.h), each at the line of its key (rete_check_at):
 * [client] and [report], a line that is no `key = value`, the keys
 * missing. *cfg holds what was accepted (the caller frees it). Errors:
 * RETE_EINVAL (pr has the problems), RETE_EIO or RETE_EINVAL with
 * cfg->unreadable (the file cannot be read: one sentence naming it),
 * RETE_ENOMEM. */
struct rete_check_list;
rete_err coord_config_read(const char *path, coord_config *cfg, struct rete_check_list *pr);

/* coord_config_free releases the strings of cfg and zeroes it; NULL is
 * fine. */
void coord_config_free(coord_config *cfg);

/* coord_config_keys loads the coordinator's secret key (*sk, the caller
 * frees it with rete_seckey_free) and the broker's pinned public key.
 * Errors: those of rete_keyfile_load_secret / rete_keyfile_load_public,
 * with the sentence naming the file. */
rete_err coord_config_keys(const coord_config *cfg, rete_seckey **sk, rete_pubkey *broker_key,
			   rete_msg *m);

/* coord_connect connects to the broker as the coordinator: a DEALER on
 * [client] broker for queries, or (events true) a SUB on [client] events.
 * *out is the caller's (rete_wire_close). The keys are loaded here and
 * wiped again once the connection holds its copies. Errors: those of
 * coord_config_keys and rete_wire_connect; RETE_EINVAL when events are
 * asked for and [client] events is not set. */
rete_err coord_connect(const coord_config *cfg, bool events, rete_wire **out, rete_msg *m);

/* coord_query asks the broker one question (what: RETE__QUERY__WHAT_SNAPSHOT
 * or RETE__QUERY__WHAT_HEALTH) and waits up to cfg->timeout_ms. On RETE_OK
 * *out holds the answer frame, its result of the kind asked (the caller
 * frees it with rete__broker_frame__free_unpacked). Errors: RETE_ETIMEDOUT
 * (no answer: m names the endpoint), RETE_EREFUSED (the broker refused our
 * key, or answered with an error: m has its sentence), RETE_EDECODE (an
 * answer of another kind), and those of rete_wire_call. */
rete_err coord_query(const coord_config *cfg, rete_wire *w, Rete__Query__WhatCase what,
		     Rete__BrokerFrame **out, rete_msg *m);

/* coord_answer checks f, the broker's result frame for one of our queries:
 * RETE_OK when it answers without an error and with the kind want (f stays
 * the caller's); otherwise f is freed and the error returned: RETE_EREFUSED
 * (the broker's error: m has its sentence, *code, when code is not NULL,
 * its code) or RETE_EDECODE (an answer of another kind). */
rete_err coord_answer(Rete__BrokerFrame *f, Rete__QueryResult__AnswerCase want,
		      Rete__ErrorCode *code, rete_msg *m);

/* coord_silent sets m to RETE_ETIMEDOUT and the sentence for a broker at
 * endpoint (NULL: cfg->broker) that did not answer within cfg->timeout_ms:
 * not running, the wrong endpoint, or the wrong [client] broker_key (with
 * another key the CURVE handshake fails without a word, so a wrong key
 * looks like silence). Returns RETE_ETIMEDOUT. */
rete_err coord_silent(const coord_config *cfg, const char *endpoint, rete_msg *m);

#endif
