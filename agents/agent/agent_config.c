/* agent_config.c — see agent_config.h. */
#include "agent_config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cosign.h"
#include "duration.h"
#include "ini_file.h"

struct cfg_parse {
	agent_config *cfg;
	char dir[PATH_MAX]; /* folder of the ini file, for relative paths */
	rete_msg *m;
	rete_err err; /* first error met */
	int line;
	rete_ini_keys given; /* [agent]'s keys so far */
};

/* cfg_time parses a timing key: "250ms" or a calendar duration of
 * duration.h ("30s", "2m"); working days make no sense for timers. */
static rete_err cfg_time(const char *value, int64_t *out, rete_msg *m)
{
	size_t len = strlen(value);
	rete_duration d;

	if (len > 2 && strcmp(value + len - 2, "ms") == 0) {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (errno == 0 && end == value + len - 2 && v > 0 && v < 86400000LL) {
			*out = v;
			return RETE_OK;
		}
		return rete_msg_set(m, RETE_EINVAL,
				    "'%s' is not a duration; use e.g. 250ms, 30s, 2m", value);
	}
	if (rete_duration_parse(value, &d, m) != RETE_OK || d.working_days > 0 || d.ms <= 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "'%s' is not a duration; use e.g. 250ms, 30s, 2m", value);
	*out = d.ms;
	return RETE_OK;
}

static int cfg_set_path(struct cfg_parse *p, char **slot, const char *value)
{
	free(*slot);
	*slot = rete_ini_abs_path(p->dir, value);
	if (*slot == NULL) {
		p->err = rete_msg_set(p->m, RETE_ENOMEM, "out of memory");
		return 0;
	}
	return 1;
}

/* hook_quotes_closed: every quote of the on_message command is closed,
 * as sh reads it (inside '...' nothing is special; inside "..." and
 * outside, a backslash takes the next character as it is). The agent
 * runs the command with sh -c, which would refuse an open quote on every
 * hook (exit 2, "Unterminated quoted string"): refused here, with m. */
static bool hook_quotes_closed(const char *cmd, rete_msg *m)
{
	char open = 0;
	size_t at = 0;
	for (size_t i = 0; cmd[i] != '\0'; i++) {
		char ch = cmd[i];
		if (open == '\'') {
			if (ch == '\'')
				open = 0;
		} else if (ch == '\\' && cmd[i + 1] != '\0') {
			i++;
		} else if (open == '"') {
			if (ch == '"')
				open = 0;
		} else if (ch == '\'' || ch == '"') {
			open = ch;
			at = i + 1;
		}
	}
	if (open == 0)
		return true;
	rete_msg_set(m, RETE_EINVAL,
		     "[agent] on_message: the %s quote at character %zu of '%.200s' is not "
		     "closed, so the shell would refuse every hook; close it (or write the "
		     "quote as \\%c)",
		     open == '\'' ? "single" : "double", at, cmd, open);
	return false;
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *p = user;
	agent_config *cfg = p->cfg;
	rete_msg sub;

	if (p->err != RETE_OK)
		return 0;
	if (strcmp(section, "agent") != 0) {
		/* Other sections belong to other tools sharing the file. */
		return 1;
	}
	/* Given again: the last one is taken (files written by tools add a
	 * key below to override one; tests do), and the start and
	 * --check-config say which keys were, never silently. */
	if (rete_ini_key_again(&p->given, name)) {
		char listed[300], item[64];
		snprintf(listed, sizeof(listed), ", %s, ", cfg->twice);
		snprintf(item, sizeof(item), ", %s, ", name);
		size_t l = strlen(cfg->twice);
		if (strstr(listed, item) == NULL)
			snprintf(cfg->twice + l, sizeof(cfg->twice) - l, "%s%s", l ? ", " : "",
				 name);
	}
	if (strcmp(name, "id") == 0) {
		p->err = rete_ini_party_id("agent", value, cfg->id, sizeof(cfg->id), p->m);
		return p->err == RETE_OK;
	}
	if (strcmp(name, "key") == 0)
		return cfg_set_path(p, &cfg->key_path, value);
	if (strcmp(name, "broker_key") == 0)
		return cfg_set_path(p, &cfg->broker_key_path, value);
	if (strcmp(name, "spool") == 0)
		return cfg_set_path(p, &cfg->spool, value);
	if (strcmp(name, "data") == 0)
		return cfg_set_path(p, &cfg->data, value);
	if (strcmp(name, "witnesses") == 0) {
		if (value[0] == '\0') {
			free(cfg->witnesses);
			cfg->witnesses = NULL;
			return 1;
		}
		return cfg_set_path(p, &cfg->witnesses, value);
	}
	if (strcmp(name, "on_message") == 0 && !hook_quotes_closed(value, p->m)) {
		p->err = RETE_EINVAL;
		return 0;
	}
	if (strcmp(name, "broker") == 0 || strcmp(name, "on_message") == 0) {
		char **slot = name[0] == 'b' ? &cfg->broker : &cfg->on_message;
		free(*slot);
		*slot = value[0] != '\0' ? strdup(value) : NULL;
		if (value[0] != '\0' && *slot == NULL) {
			p->err = rete_msg_set(p->m, RETE_ENOMEM, "out of memory");
			return 0;
		}
		return 1;
	}
	if (strcmp(name, "metrics") == 0) {
		if (rete_http_addr_parse(value, &cfg->metrics, &sub) != RETE_OK) {
			p->err = rete_msg_set(p->m, RETE_EINVAL, "[agent] metrics: %s", sub.text);
			return 0;
		}
		cfg->metrics_on = true;
		return 1;
	}
	struct {
		const char *key;
		int64_t *slot;
	} times[] = {
	    {"poll", &cfg->poll_ms},
	    {"heartbeat", &cfg->heartbeat_ms},
	    {"resubmit", &cfg->resubmit_ms},
	    {"reconnect_min", &cfg->reconnect_min_ms},
	    {"reconnect_max", &cfg->reconnect_max_ms},
	    {"hook_timeout", &cfg->hook_timeout_ms},
	    {"witness", &cfg->witness_ms},
	    {"witness_patience", &cfg->witness_patience_ms},
	};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		if (strcmp(name, times[i].key) == 0) {
			if (cfg_time(value, times[i].slot, &sub) != RETE_OK) {
				p->err = rete_msg_set(p->m, RETE_EINVAL, "[agent] %s: %s", name,
						      sub.text);
				return 0;
			}
			return 1;
		}
	}
	if (strcmp(name, "max_inflight") == 0 || strcmp(name, "map_size") == 0) {
		bool is_map = strcmp(name, "map_size") == 0;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		unsigned long long lim = is_map ? 1048576ULL : 65536ULL;
		if (errno != 0 || *end != '\0' || value[0] == '-' || v == 0 || v > lim) {
			p->err =
			    rete_msg_set(p->m, RETE_EINVAL,
					 "[agent] %s: '%s' is not accepted; use a whole number "
					 "from 1 to %llu%s",
					 name, value, lim, is_map ? " (MiB)" : "");
			return 0;
		}
		if (is_map)
			cfg->map_size = (uint64_t)v << 20;
		else
			cfg->max_inflight = (unsigned)v;
		return 1;
	}
	p->err = rete_msg_set(p->m, RETE_EINVAL,
			      "[agent] %s: unknown key; known: id, key, broker, broker_key, spool, "
			      "data, on_message, poll, heartbeat, resubmit, reconnect_min, "
			      "reconnect_max, hook_timeout, witness, witness_patience, witnesses, "
			      "max_inflight, map_size, metrics",
			      name);
	return 0;
}

/* path_norm writes path (absolute) into out with "//", "/./" and a
 * trailing "/" taken out and "/x/.." undone: two spellings of one folder
 * compare equal, whether it exists yet or not. */
static void path_norm(const char *path, char *out, size_t n)
{
	size_t len = 0;
	const char *p = path;
	out[0] = '\0';
	while (*p) {
		while (*p == '/')
			p++;
		size_t seg = strcspn(p, "/");
		if (seg == 0)
			break;
		if (seg == 1 && p[0] == '.') {
			/* nothing */
		} else if (seg == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
			out[len] = '\0';
		} else if (len + 1 + seg < n) {
			out[len++] = '/';
			memcpy(out + len, p, seg);
			len += seg;
			out[len] = '\0';
		}
		p += seg;
	}
	if (len == 0 && n > 1)
		snprintf(out, n, "/");
}

/* same_folder: a and b are one folder: the same inode when both exist
 * (a symbolic link or a bind mount), else the same normalised path. */
static bool same_folder(const char *a, const char *b)
{
	struct stat sa, sb;
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	char na[PATH_MAX], nb[PATH_MAX];
	path_norm(a, na, sizeof(na));
	path_norm(b, nb, sizeof(nb));
	return strcmp(na, nb) == 0;
}

/* cfg_places refuses a data folder that is one of the spool's folders: in
 * outbox/ the agent took its own data.mdb, lock.mdb and persons.jsonl for
 * outgoing files and moved them to failed/; in sent/, failed/ or inbox/
 * the case system and the retention would treat the store as theirs. */
static rete_err cfg_places(const char *path, const agent_config *cfg, rete_msg *m)
{
	static const char *const subs[] = {"outbox", "sent", "failed", "inbox"};
	char sub[PATH_MAX + 16], data[PATH_MAX];
	path_norm(cfg->data, data, sizeof(data));
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		agent_spool_path(cfg, subs[i], NULL, sub, sizeof(sub));
		if (same_folder(cfg->data, sub))
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "%s: [agent] data: %s is the spool's %s/ (%s): the agent's "
			    "store would be taken for the agency's files; give data a "
			    "folder of its own, outside outbox/ sent/ failed/ inbox/",
			    path, data, subs[i], sub);
	}
	return RETE_OK;
}

rete_err agent_config_load(const char *path, agent_config *cfg, rete_msg *m)
{
	struct cfg_parse p = {.cfg = cfg, .m = m, .err = RETE_OK};
	rete_err err;

	memset(cfg, 0, sizeof(*cfg));
	cfg->poll_ms = 2000;
	cfg->heartbeat_ms = 10000;
	cfg->resubmit_ms = 10000;
	cfg->reconnect_min_ms = 200;
	cfg->reconnect_max_ms = 30000;
	cfg->hook_timeout_ms = 60000;
	cfg->witness_ms = 30000;
	cfg->witness_patience_ms = 3600000;
	cfg->max_inflight = 64;
	cfg->map_size = 256ULL << 20;

	err = rete_ini_read(path, cfg_handler, &p, &p.err, &cfg->ini_path, p.dir, sizeof(p.dir), m);
	if (err != RETE_OK)
		return err;

	if (cfg->spool == NULL && !cfg_set_path(&p, &cfg->spool, "spool"))
		return p.err;
	if (cfg->data == NULL && !cfg_set_path(&p, &cfg->data, "data"))
		return p.err;
	err = rete_ini_need_party(path, "agent", "the agent", cfg->id, cfg->key_path, cfg->broker,
				  cfg->broker_key_path, m);
	if (err != RETE_OK)
		return err;
	if ((err = cfg_places(path, cfg, m)) != RETE_OK)
		return err;
	if (cfg->reconnect_max_ms < cfg->reconnect_min_ms)
		cfg->reconnect_max_ms = cfg->reconnect_min_ms;
	if (cfg->witness_patience_ms < cfg->witness_ms)
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "%s: [agent] witness_patience (%lld ms) is shorter than witness "
		    "(%lld ms): every receipt waits at least one witness interval "
		    "for the next checkpoint; use a multiple of it (default 1h)",
		    path, (long long)cfg->witness_patience_ms, (long long)cfg->witness_ms);
	if (cfg->witnesses != NULL) {
		/* a policy that does not load stops the agent here, not later */
		rete_witness_policy *wp = NULL;
		err = rete_witness_policy_load(cfg->witnesses, &wp, m);
		rete_witness_policy_free(&wp);
		if (err != RETE_OK) {
			rete_msg_prefix(m, "%s: [agent] witnesses", path);
			return err;
		}
	}
	return RETE_OK;
}

void agent_config_free(agent_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->ini_path);
	free(cfg->key_path);
	free(cfg->broker);
	free(cfg->broker_key_path);
	free(cfg->spool);
	free(cfg->data);
	free(cfg->on_message);
	free(cfg->witnesses);
	memset(cfg, 0, sizeof(*cfg));
}

char *agent_spool_path(const agent_config *cfg, const char *sub, const char *name, char *buf,
		       size_t n)
{
	if (name != NULL)
		snprintf(buf, n, "%s/%s/%s", cfg->spool, sub, name);
	else
		snprintf(buf, n, "%s/%s", cfg->spool, sub);
	return buf;
}
