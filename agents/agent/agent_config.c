/* agent_config.c — see agent_config.h. */
#include "agent_config.h"

#include <assert.h>
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
	char dir[PATH_MAX];  /* folder of the ini file, for relative paths */
	rete_check_list *pr; /* every problem, with its line */
	rete_err err;	     /* out of memory: the reading stops */
	int line;	     /* the line the handler was given */
	rete_ini_keys given; /* [agent]'s keys so far */
	bool timers;	     /* the timing keys are judged (the agent, its check) */
};

/* The timing keys and their ranges (docs/agent.md, "Timing", says why
 * each bound). Below min_ms a timer would spin (more than ten times a
 * second: a rescan, a PING, a SUBMIT, a reconnect, a checkpoint asked
 * for): refused. Above max_ms the value is no harm to the machine, and
 * rete 0.7.0 took it: max_ms is used, and the check and the start say so
 * in one line, so that a file that started before starts after an
 * upgrade (under Restart=on-failure a refusal is a restart loop). */
static const struct cfg_timing {
	const char *key;
	int64_t max_ms;
	const char *max, *example;
} cfg_timings[] = {
    {"poll", 3600000, "1h", "2s"},	     {"heartbeat", 600000, "10m", "10s"},
    {"resubmit", 3600000, "1h", "10s"},	     {"reconnect_min", 300000, "5m", "200ms"},
    {"reconnect_max", 3600000, "1h", "30s"}, {"hook_timeout", 86400000, "24h", "60s"},
    {"witness", 3600000, "1h", "30s"},	     {"witness_patience", 604800000, "7d", "1h"},
};
#define CFG_TIMING_MIN_MS 100 /* the floor of every timing key */

/* cfg_time parses a timing key: "250ms" or a calendar duration of
 * duration.h ("30s", "2m"); working days make no sense for timers. A value
 * that is none, or below the floor, gets one sentence naming the key, the
 * value and what is accepted; one above the key's range is taken as its
 * longest, with a note (cfg->adjusted). p->timers false (a command that
 * does not run the timers): nothing is judged, the default stays. */
static bool cfg_time(struct cfg_parse *p, const char *key, const char *value, int64_t *slot)
{
	const struct cfg_timing *t = NULL;
	for (size_t i = 0; i < sizeof(cfg_timings) / sizeof(cfg_timings[0]); i++)
		if (strcmp(cfg_timings[i].key, key) == 0)
			t = &cfg_timings[i];
	assert(t != NULL); /* every timing key of cfg_handler has its range */
	size_t len = strlen(value);
	int64_t ms = -1;
	rete_duration d;

	if (!p->timers)
		return false;
	if (len > 2 && strcmp(value + len - 2, "ms") == 0) {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (errno == 0 && end == value + len - 2 && value[0] != '-')
			ms = v;
	} else if (rete_duration_parse(value, &d, NULL) == RETE_OK && d.working_days == 0) {
		ms = d.ms;
	}
	if (ms < 0) {
		rete_check_add(p->pr,
			       "[agent] %s: '%s' is not a duration; give e.g. %s (the default), "
			       "250ms, 30s, 2m: at least 100ms, at most %s",
			       t->key, value, t->example, t->max);
		return false;
	}
	if (ms < CFG_TIMING_MIN_MS) {
		rete_check_add(p->pr,
			       "[agent] %s: '%s' is shorter than the timer may be: give at least "
			       "100ms (more often than ten times a second it would spin; e.g. "
			       "%s, the default; docs/agent.md, Timing)",
			       t->key, value, t->example);
		return false;
	}
	if (ms > t->max_ms) {
		rete_check_at(&p->cfg->adjusted, p->line);
		rete_check_add(&p->cfg->adjusted,
			       "[agent] %s: %s is longer than %s, the longest it takes: %s is used "
			       "(write %s or less to say what runs; docs/agent.md, Timing)",
			       t->key, value, t->max, t->max, t->max);
		ms = t->max_ms;
	}
	*slot = ms;
	return true;
}

static int cfg_set_path(struct cfg_parse *p, char **slot, const char *value)
{
	free(*slot);
	*slot = rete_ini_abs_path(p->dir, value);
	if (*slot == NULL) {
		p->err = RETE_ENOMEM;
		return 0;
	}
	return 1;
}

/* cfg_key_line notes the line of key (for the checks that judge what it
 * names: a key file, a folder, say FILE:LINE too). */
static void cfg_key_line(agent_config *cfg, const char *key, int line)
{
	size_t i;
	for (i = 0; i < cfg->nlines; i++)
		if (strcmp(cfg->lines[i].key, key) == 0)
			break;
	if (i == sizeof(cfg->lines) / sizeof(cfg->lines[0]) ||
	    strlen(key) >= sizeof(cfg->lines[0].key))
		return;
	snprintf(cfg->lines[i].key, sizeof(cfg->lines[i].key), "%s", key);
	cfg->lines[i].line = line;
	if (i == cfg->nlines)
		cfg->nlines++;
}

int agent_config_line(const agent_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->nlines; i++)
		if (strcmp(cfg->lines[i].key, key) == 0)
			return cfg->lines[i].line;
	return 0;
}

/* hook_quotes_closed: every quote of the on_message command is closed,
 * as sh reads it (inside '...' nothing is special; inside "..." and
 * outside, a backslash takes the next character as it is). The agent
 * runs the command with sh -c, which would refuse an open quote on every
 * hook (exit 2, "Unterminated quoted string"): a problem of pr here. */
static bool hook_quotes_closed(const char *cmd, rete_check_list *pr)
{
	char open = 0;
	size_t at = 0;
	/* an unquoted # at the start of a word begins a comment, as in sh:
	 * nothing after it counts (on_message = /opt/hook.sh # a note) */
	bool word_start = true;
	for (size_t i = 0; cmd[i] != '\0'; i++) {
		char ch = cmd[i];
		bool at_word_start = word_start;
		word_start = false;
		if (open == '\'') {
			if (ch == '\'')
				open = 0;
		} else if (ch == '\\' && cmd[i + 1] != '\0') {
			i++;
		} else if (open == '"') {
			if (ch == '"')
				open = 0;
		} else if (ch == '#' && at_word_start) {
			break;
		} else if (ch == '\'' || ch == '"') {
			open = ch;
			at = i + 1;
		} else if (strchr(" \t\n;&|()<>", ch) != NULL) {
			word_start = true;
		}
	}
	if (open == 0)
		return true;
	rete_check_add(pr,
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
	cfg->agent_section = true;
	rete_check_at(p->pr, p->line);
	cfg_key_line(cfg, name, p->line);
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
		if (rete_ini_party_id("agent", value, cfg->id, sizeof(cfg->id), &sub) != RETE_OK) {
			rete_check_add(p->pr, "%s", sub.text);
			cfg->id_bad = true;
		}
		return 1;
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
	if (strcmp(name, "on_message") == 0 && !hook_quotes_closed(value, p->pr))
		return 1; /* the problem is listed; the hook stays unset */
	if (strcmp(name, "broker") == 0 || strcmp(name, "on_message") == 0) {
		char **slot = name[0] == 'b' ? &cfg->broker : &cfg->on_message;
		free(*slot);
		*slot = value[0] != '\0' ? strdup(value) : NULL;
		if (value[0] != '\0' && *slot == NULL) {
			p->err = RETE_ENOMEM;
			return 0;
		}
		return 1;
	}
	if (strcmp(name, "metrics") == 0) {
		static const rete_http_addr_use use = {
		    "9465", "and the agent's metrics are not authenticated; give the address of "
			    "the one interface the scraper reaches, e.g. 127.0.0.1:9465"};
		if (rete_http_addr_parse_as(value, &use, &cfg->metrics, &sub) != RETE_OK) {
			rete_check_add(p->pr, "[agent] metrics: %s", sub.text);
			cfg->metrics_on = false;
			return 1;
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
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		if (strcmp(name, times[i].key) == 0) {
			/* reconnect_min and reconnect_max are judged together
			 * once both are known: as written, in the sentence */
			char *text = strcmp(name, "reconnect_min") == 0	  ? cfg->reconnect_min_text
				     : strcmp(name, "reconnect_max") == 0 ? cfg->reconnect_max_text
									  : NULL;
			if (cfg_time(p, name, value, times[i].slot) && text != NULL)
				snprintf(text, sizeof(cfg->reconnect_min_text), "%s", value);
			return 1;
		}
	if (strcmp(name, "max_inflight") == 0 || strcmp(name, "map_size") == 0) {
		bool is_map = strcmp(name, "map_size") == 0;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		unsigned long long lim = is_map ? 1048576ULL : 65536ULL;
		if (errno != 0 || *end != '\0' || value[0] == '-' || v == 0 || v > lim) {
			rete_check_add(p->pr,
				       "[agent] %s: '%s' is not accepted; use a whole number "
				       "from 1 to %llu%s",
				       name, value, lim, is_map ? " (MiB)" : "");
			return 1;
		}
		if (is_map)
			cfg->map_size = (uint64_t)v << 20;
		else
			cfg->max_inflight = (unsigned)v;
		return 1;
	}
	rete_check_add(p->pr,
		       "[agent] %s: unknown key; known: id, key, broker, broker_key, spool, "
		       "data, on_message, poll, heartbeat, resubmit, reconnect_min, "
		       "reconnect_max, hook_timeout, witness, witness_patience, witnesses, "
		       "max_inflight, map_size, metrics",
		       name);
	return 1;
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
static void cfg_places(const agent_config *cfg, rete_check_list *pr)
{
	static const char *const subs[] = {"outbox", "sent", "failed", "inbox"};
	char sub[PATH_MAX + 16], data[PATH_MAX];
	path_norm(cfg->data, data, sizeof(data));
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		agent_spool_path(cfg, subs[i], NULL, sub, sizeof(sub));
		if (same_folder(cfg->data, sub)) {
			rete_check_at(pr, agent_config_line(cfg, "data"));
			rete_check_add(pr,
				       "[agent] data: %s is the spool's %s/ (%s): the agent's "
				       "store would be taken for the agency's files; give data a "
				       "folder of its own, outside outbox/ sent/ failed/ inbox/",
				       data, subs[i], sub);
			return;
		}
	}
}

/* cfg_pairs judges the timing keys that go in pairs. reconnect_min
 * longer than reconnect_max: refused when the file gives both (it says
 * two things that cannot both be); when it gives one, the other's default
 * moves to it, as rete 0.7.0 did, with a note at the given key's line.
 * witness_patience shorter than witness is refused (0.7.0 refused it). */
static void cfg_pairs(agent_config *cfg, rete_check_list *pr)
{
	/* given: taken from the file (a refused value keeps the default) */
	bool gmin = cfg->reconnect_min_text[0] != '\0', gmax = cfg->reconnect_max_text[0] != '\0';
	int lmin = agent_config_line(cfg, "reconnect_min");
	int lmax = agent_config_line(cfg, "reconnect_max");
	if (cfg->reconnect_max_ms < cfg->reconnect_min_ms && gmin && gmax) {
		rete_check_at(pr, lmin);
		rete_check_add(pr,
			       "[agent] reconnect_min (%s) is longer than reconnect_max (%s, line "
			       "%d): the wait after a refusal starts at reconnect_min and doubles "
			       "up to reconnect_max; give reconnect_min at most reconnect_max",
			       cfg->reconnect_min_text, cfg->reconnect_max_text, lmax);
	} else if (cfg->reconnect_max_ms < cfg->reconnect_min_ms && gmin) {
		rete_check_at(&cfg->adjusted, lmin);
		rete_check_add(&cfg->adjusted,
			       "[agent] reconnect_min: %s is longer than reconnect_max's default "
			       "(30s), so reconnect_max is %s (set reconnect_max to say so)",
			       cfg->reconnect_min_text, cfg->reconnect_min_text);
		cfg->reconnect_max_ms = cfg->reconnect_min_ms;
	} else if (cfg->reconnect_max_ms < cfg->reconnect_min_ms) {
		rete_check_at(&cfg->adjusted, lmax);
		rete_check_add(&cfg->adjusted,
			       "[agent] reconnect_max: %s is shorter than reconnect_min's default "
			       "(200ms), so reconnect_min is %s (set reconnect_min to say so)",
			       cfg->reconnect_max_text, cfg->reconnect_max_text);
		cfg->reconnect_min_ms = cfg->reconnect_max_ms;
	}
	if (cfg->witness_patience_ms < cfg->witness_ms) {
		rete_check_at(pr, agent_config_line(cfg, "witness_patience") > 0
				      ? agent_config_line(cfg, "witness_patience")
				      : agent_config_line(cfg, "witness"));
		rete_check_add(pr,
			       "[agent] witness_patience (%lld ms) is shorter than witness "
			       "(%lld ms): every receipt waits at least one witness interval "
			       "for the next checkpoint; use a multiple of it (default 1h)",
			       (long long)cfg->witness_patience_ms, (long long)cfg->witness_ms);
	}
}

/* config_read is agent_config_read; timers false leaves the timing keys
 * unjudged (agent_config_load_paths). */
static rete_err config_read(const char *path, agent_config *cfg, rete_check_list *pr, bool timers)
{
	struct cfg_parse p = {.cfg = cfg, .pr = pr, .err = RETE_OK, .timers = timers};
	size_t before = pr->n;
	rete_msg m;
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

	err = rete_ini_read_list(path, cfg_handler, &p, &p.err, &p.line, &cfg->ini_path, p.dir,
				 sizeof(p.dir), pr, &cfg->unreadable);
	if (err != RETE_OK)
		return err;
	if (cfg->spool == NULL && !cfg_set_path(&p, &cfg->spool, "spool"))
		return RETE_ENOMEM;
	if (cfg->data == NULL && !cfg_set_path(&p, &cfg->data, "data"))
		return RETE_ENOMEM;
	const int lines[4] = {agent_config_line(cfg, "id"), agent_config_line(cfg, "key"),
			      agent_config_line(cfg, "broker"),
			      agent_config_line(cfg, "broker_key")};
	rete_ini_need_party_list("agent", "the agent", cfg->id_bad ? "bad" : cfg->id, cfg->key_path,
				 cfg->broker, cfg->broker_key_path, lines, pr);
	cfg_places(cfg, pr);
	if (p.timers)
		cfg_pairs(cfg, pr);
	if (cfg->witnesses != NULL) {
		/* a policy that does not load stops the agent here, not later */
		rete_witness_policy *wp = NULL;
		if (rete_witness_policy_load(cfg->witnesses, &wp, &m) != RETE_OK) {
			rete_check_at(pr, agent_config_line(cfg, "witnesses"));
			rete_check_add(pr, "[agent] witnesses: %s", m.text);
		}
		rete_witness_policy_free(&wp);
	}
	rete_check_at(pr, 0);
	return pr->n == before ? RETE_OK : RETE_EINVAL;
}

rete_err agent_config_read(const char *path, agent_config *cfg, rete_check_list *pr)
{
	return config_read(path, cfg, pr, true);
}

/* config_load is agent_config_load; timers as config_read. */
static rete_err config_load(const char *path, agent_config *cfg, rete_msg *m, bool timers)
{
	rete_check_list pr = {0};
	rete_err err = config_read(path, cfg, &pr, timers);

	if (err != RETE_OK && pr.n == 0)
		rete_msg_set(m, RETE_ENOMEM, "out of memory");
	else if (err != RETE_OK && pr.lines[0] > 0)
		rete_msg_set(m, err, "%s:%d: %s%s", path, pr.lines[0], pr.items[0],
			     pr.n > 1 ? " (and more: rete-agent --check-config lists every "
					"problem)"
				      : "");
	else if (err != RETE_OK && !cfg->unreadable)
		rete_msg_set(m, err, "%s: %s%s", path, pr.items[0],
			     pr.n > 1 ? " (and more: rete-agent --check-config lists every "
					"problem)"
				      : "");
	else if (err != RETE_OK)
		rete_msg_set(m, err, "%s", pr.items[0]);
	rete_check_free(&pr);
	return err;
}

rete_err agent_config_load(const char *path, agent_config *cfg, rete_msg *m)
{
	return config_load(path, cfg, m, true);
}

rete_err agent_config_load_paths(const char *path, agent_config *cfg, rete_msg *m)
{
	return config_load(path, cfg, m, false);
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
	rete_check_free(&cfg->adjusted);
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
