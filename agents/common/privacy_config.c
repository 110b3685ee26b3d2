/* privacy_config.c — see privacy_config.h. */
#include "privacy_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "ini_file.h"

struct pc_parse {
	rete_privacy_config *cfg;
	bool agent;
	char dir[PATH_MAX];
	rete_msg *m;
	rete_err err;
	rete_ini_keys given; /* [privacy]'s keys so far */
};

/* pc_party notes the file's party id ([agent] id or [client] id), for the
 * access record's "party"; the tool's own parser checks it. */
static void pc_party(rete_privacy_config *cfg, const char *section, const char *name,
		     const char *value)
{
	static const char id_key[] = "id";
	if (strcmp(name, id_key) == 0 &&
	    (strcmp(section, "agent") == 0 || strcmp(section, "client") == 0))
		snprintf(cfg->party, sizeof(cfg->party), "%s", value);
}

/* pc_handler: the keys of [privacy] (tests/integration/test_docs_config.sh
 * reads the key names compared here against docs/operations.md). */
static int pc_handler(void *user, const char *section, const char *name, const char *value)
{
	struct pc_parse *p = user;
	rete_privacy_config *cfg = p->cfg;
	rete_msg sub;

	if (p->err != RETE_OK)
		return 0;
	if (strcmp(section, "privacy") != 0) {
		pc_party(cfg, section, name, value);
		return 1; /* other sections belong to other tools */
	}
	if (rete_ini_key_again(&p->given, name)) {
		p->err =
		    rete_msg_set(p->m, RETE_EINVAL, "[privacy] %s: given twice; keep one", name);
		return 0;
	}
	if (strcmp(name, "access_log") == 0) {
		free(cfg->access_log);
		cfg->access_log = value[0] ? rete_ini_abs_path(p->dir, value) : NULL;
		if (cfg->access_log == NULL) {
			p->err = value[0]
				     ? rete_msg_set(p->m, RETE_ENOMEM, "out of memory")
				     : rete_msg_set(p->m, RETE_EINVAL,
						    "[privacy] access_log: empty; give a file");
			return 0;
		}
		return 1;
	}
	struct {
		const char *key;
		rete_keep *slot;
		bool agent_only;
	} keeps[] = {
	    {"access_keep", &cfg->access_keep, false},	{"keep_sent", &cfg->keep_sent, true},
	    {"keep_failed", &cfg->keep_failed, true},	{"keep_inbox", &cfg->keep_inbox, true},
	    {"keep_records", &cfg->keep_records, true},
	};
	for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
		if (strcmp(name, keeps[i].key) != 0)
			continue;
		if (keeps[i].agent_only && !p->agent) {
			p->err = rete_msg_set(p->m, RETE_EINVAL,
					      "[privacy] %s: belongs in an agent.ini (the agent "
					      "keeps the files); this file takes access_log and "
					      "access_keep",
					      name);
			return 0;
		}
		if (rete_keep_parse(value, keeps[i].slot, &sub) != RETE_OK) {
			p->err =
			    rete_msg_set(p->m, RETE_EINVAL, "[privacy] %s: %s", name, sub.text);
			return 0;
		}
		return 1;
	}
	if (strcmp(name, "scan") == 0) {
		rete_duration d;
		if (!p->agent) {
			p->err = rete_msg_set(p->m, RETE_EINVAL,
					      "[privacy] scan: belongs in an agent.ini (the agent "
					      "keeps the files); this file takes access_log and "
					      "access_keep");
			return 0;
		}
		if (rete_duration_parse(value, &d, &sub) != RETE_OK || d.working_days > 0) {
			p->err =
			    rete_msg_set(p->m, RETE_EINVAL,
					 "[privacy] scan: '%s' is not accepted; write e.g. 1h, "
					 "30m, 10s",
					 value);
			return 0;
		}
		cfg->scan_ms = d.ms;
		return 1;
	}
	p->err = rete_msg_set(p->m, RETE_EINVAL, "[privacy] %s: unknown key; known: %s", name,
			      p->agent ? "access_log, access_keep, keep_sent, keep_failed, "
					 "keep_inbox, keep_records, scan"
				       : "access_log, access_keep");
	return 0;
}

rete_err rete_privacy_config_load(const char *path, bool agent, const char *data,
				  rete_privacy_config *cfg, rete_msg *m)
{
	struct pc_parse p = {.cfg = cfg, .agent = agent, .m = m, .err = RETE_OK};
	char *ini_path = NULL;

	memset(cfg, 0, sizeof(*cfg));
	cfg->access_keep = RETE_ACCESS_KEEP_DEFAULT;
	cfg->scan_ms = 3600 * 1000;
	/* a line that is not key = value, or too long, is the problem of the
	 * file's own reader (agent.ini's, coord.ini's), which lists it: here
	 * it would be said twice */
	int line = 0, syntax = 0, long_line = 0;
	rete_err err = rete_ini_read_at(path, pc_handler, &p, &p.err, &line, &syntax, &long_line,
					&ini_path, p.dir, sizeof(p.dir), m);
	if (err == RETE_EINVAL)
		rete_msg_prefix(m, "%s", path);
	free(ini_path);
	if (err != RETE_OK)
		return err;
	if (cfg->access_log == NULL) {
		cfg->access_log = agent && data != NULL ? rete_ini_abs_path(data, "access.log")
							: rete_ini_abs_path(p.dir, "access.log");
		if (cfg->access_log == NULL)
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	return RETE_OK;
}

void rete_privacy_config_free(rete_privacy_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->access_log);
	memset(cfg, 0, sizeof(*cfg));
}

bool rete_access_default_path(char *buf, size_t n)
{
	const char *v = getenv("RETE_ACCESS_LOG");
	if (v != NULL && v[0] != '\0') {
		snprintf(buf, n, "%s", v);
		return true;
	}
	v = getenv("XDG_STATE_HOME");
	if (v != NULL && v[0] == '/') {
		snprintf(buf, n, "%s/rete/access.log", v);
		return true;
	}
	v = getenv("HOME");
	if (v != NULL && v[0] == '/') {
		snprintf(buf, n, "%s/.local/state/rete/access.log", v);
		return true;
	}
	return false;
}
