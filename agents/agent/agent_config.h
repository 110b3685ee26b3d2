/* agent_config.h — the agency agent's configuration file (agent.ini).
 *
 * One [agent] section names the party, its key, the broker and its pinned
 * key, the spool folder (outbox/ sent/ failed/ inbox/), the data folder
 * (the agent's own LMDB) and the optional hook; the timing keys have
 * defaults (docs/agent.md lists them all). Relative paths are taken
 * relative to the folder of the ini file, so a network folder can be moved
 * as a whole. The `rete` tool (send, status) reads the same file through
 * this module, so both always agree on where the spool and the store are.
 */
#ifndef RETE_AGENT_CONFIG_H
#define RETE_AGENT_CONFIG_H

#include <stdint.h>

#include "config_check.h"
#include "error.h"
#include "httpd.h"
#include "keys.h"

/* agent_config: every path is absolute (or as written when it was already
 * absolute), in malloc'd strings owned by the struct. */
typedef struct agent_config {
	char id[RETE_ID_MAX + 1];    /* the agency's party id */
	char *ini_path;		     /* the configuration file itself */
	char *key_path;		     /* [agent] key: ID.key */
	char *broker;		     /* [agent] broker: ZeroMQ endpoint */
	char *broker_key_path;	     /* [agent] broker_key: the broker's .pub (pinned) */
	char *spool;		     /* [agent] spool (default "spool") */
	char *data;		     /* [agent] data (default "data") */
	char *on_message;	     /* [agent] on_message: hook command, or NULL */
	int64_t poll_ms;	     /* [agent] poll: outbox rescan interval (2s) */
	int64_t heartbeat_ms;	     /* [agent] heartbeat: PING when idle (10s) */
	int64_t resubmit_ms;	     /* [agent] resubmit: resend unanswered SUBMITs (10s) */
	int64_t reconnect_min_ms;    /* [agent] reconnect_min: first backoff (200ms) */
	int64_t reconnect_max_ms;    /* [agent] reconnect_max: backoff ceiling (30s) */
	int64_t hook_timeout_ms;     /* [agent] hook_timeout: kill a hung hook (60s) */
	int64_t witness_ms;	     /* [agent] witness: checkpoint check interval (30s) */
	int64_t witness_patience_ms; /* [agent] witness_patience: warn when a receipt waits (1h) */
	unsigned max_inflight;	     /* [agent] max_inflight: SUBMITs unanswered (64) */
	uint64_t map_size;	     /* [agent] map_size: LMDB map in MiB (default 256) */
	bool metrics_on;	     /* [agent] metrics set: the Prometheus endpoint */
	rete_http_addr metrics;	     /* [agent] metrics: where it listens (agent_metrics.h) */
	char *witnesses;	     /* [agent] witnesses: a witness policy file, or NULL */
	char twice[256];	     /* [agent] keys given more than once ("a, b"): the last
					one of each is taken, and the start and --check-config
					say so */
	bool id_bad;		     /* [agent] id given, and refused */
	bool unreadable;	     /* agent_config_read: the file could not be read (its one
					sentence names it) */
	bool agent_section;	     /* the file has an [agent] section (it is an agent.ini,
					whatever else it says) */
	rete_check_list adjusted;    /* timing values not taken as written (above their
					range, or a reconnect default moved), each a
					sentence with its line: notes of the check, warnings
					of the start */
	char reconnect_min_text[32], reconnect_max_text[32]; /* as written, or "" */
	struct {
		char key[24];
		int line;
	} lines[32]; /* the line each key was last given on (agent_config_line) */
	size_t nlines;
} agent_config;

/* agent_config_load reads path into *cfg (the caller releases it with
 * agent_config_free, also after a failure). Errors: RETE_EIO (cannot read
 * the file), RETE_EINVAL (a missing or bad key: m names the file, the key,
 * the value and what is accepted), RETE_ENOMEM. */
rete_err agent_config_load(const char *path, agent_config *cfg, rete_msg *m);

/* agent_config_load_paths is agent_config_load for the commands that read
 * agent.ini for its id, paths and keys and run no timer (rete send,
 * status, sar, the access record): the timing keys are not judged, so a
 * value the agent would refuse does not stop them. */
rete_err agent_config_load_paths(const char *path, agent_config *cfg, rete_msg *m);

/* agent_config_read is agent_config_load listing every problem of the file
 * in pr (each about the line of its key, rete_check_at), not only the
 * first: for --check-config and the start. *cfg holds what was accepted
 * (the caller frees it). Errors: RETE_EINVAL (pr has the problems),
 * RETE_EIO or RETE_EINVAL with cfg->unreadable (the file cannot be read,
 * or is no configuration file: one sentence naming it), RETE_ENOMEM. */
rete_err agent_config_read(const char *path, agent_config *cfg, rete_check_list *pr);

/* agent_config_line is the line of the file key was last given on, 0 when
 * it was not given. */
int agent_config_line(const agent_config *cfg, const char *key);

/* agent_config_free releases the strings of cfg and zeroes it; NULL is fine. */
void agent_config_free(agent_config *cfg);

/* agent_spool_path writes SPOOL/sub[/name] into buf (size n); returns buf.
 * sub is "outbox", "sent", "failed" or "inbox"; name may be NULL. */
char *agent_spool_path(const agent_config *cfg, const char *sub, const char *name, char *buf,
		       size_t n);

#endif
