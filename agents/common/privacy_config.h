/* privacy_config.h — the [privacy] section of agent.ini, coord.ini and
 * audit.ini: what a program keeps about people and for how long.
 *
 * Every tool reads its own section of a shared configuration file and
 * ignores the others; this module reads [privacy] (the same keys for the
 * agent and the command-line tool) so that all data-protection settings
 * sit in one place an operator (and a data protection officer) can read:
 *
 *   access_log    the access record's file (default: DATA/access.log for an
 *                 agent.ini; access.log beside a coord.ini or audit.ini)
 *   access_keep   how long its lines are kept (default 24mo)
 *   keep_sent     how long sent/ files are kept (default forever)
 *   keep_failed   how long failed/ files are kept (default forever)
 *   keep_inbox    how long inbox/ files are kept (default forever)
 *   keep_records  how long the agent's records of sealed parts (its keyed
 *                 person index) are kept (default forever)
 *   scan          how often the agent looks for expired files (default 1h)
 *
 * The keep_* and scan keys belong to an agent.ini only. It also notes the
 * file's party id ([agent] id or [client] id) for the access record.
 */
#ifndef RETE_PRIVACY_CONFIG_H
#define RETE_PRIVACY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "access_log.h"
#include "error.h"

typedef struct rete_privacy_config {
	char party[64];	  /* [agent] id or [client] id ("" when none) */
	char *access_log; /* absolute path (malloc'd), never NULL after a load */
	rete_keep access_keep;
	rete_keep keep_sent, keep_failed, keep_inbox, keep_records;
	int64_t scan_ms;
} rete_privacy_config;

/* rete_privacy_config_load reads [privacy] of the configuration file path
 * into *cfg (released with rete_privacy_config_free, also after a
 * failure). agent: the file is an agent.ini (data is its data folder, for
 * the default access record); otherwise a coord.ini or audit.ini and the
 * keep_* and scan keys are refused. Errors: RETE_EIO (cannot read the
 * file), RETE_EINVAL (an unknown key or a bad value: m names the file, the
 * key, the value and what is accepted), RETE_ENOMEM. */
rete_err rete_privacy_config_load(const char *path, bool agent, const char *data,
				  rete_privacy_config *cfg, rete_msg *m);

/* rete_privacy_config_free releases cfg's strings and zeroes it. */
void rete_privacy_config_free(rete_privacy_config *cfg);

/* rete_access_default_path writes where a command given no configuration
 * file keeps its access record: $RETE_ACCESS_LOG, else
 * $XDG_STATE_HOME/rete/access.log, else $HOME/.local/state/rete/access.log.
 * false when none can be named (no HOME). */
bool rete_access_default_path(char *buf, size_t n);

#endif
