/* coord_config.c — see coord_config.h. */
#include "coord_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "endpoint.h"
#include "ini_file.h"
#include "report.h"

#include "config_check.h"

struct cc_parse {
	coord_config *cfg;
	char dir[PATH_MAX];  /* folder of the ini file, for relative paths */
	rete_check_list *pr; /* every problem, with its line */
	rete_err err;	     /* out of memory: the reading stops */
	int line;	     /* the line the handler was given */
	bool id_bad;	     /* [client] id given, and refused */
};

static int cc_set(struct cc_parse *p, char **slot, char *value)
{
	free(*slot);
	*slot = value;
	if (value == NULL) {
		p->err = RETE_ENOMEM;
		return 0;
	}
	return 1;
}

/* cc_tz_valid: a time zone name as the tz database spells it (no "..",
 * no leading '/', only the characters zone names use), so that it cannot
 * name a file outside the zone folder. */
static int cc_tz_valid(const char *s)
{
	if (s[0] == '\0' || s[0] == '/' || strstr(s, "..") != NULL || strlen(s) > 64)
		return 0;
	for (const char *c = s; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr("/_+-", *c) != NULL))
			return 0;
	return 1;
}

static int cc_report(struct cc_parse *p, const char *name, const char *value);

/* the keys of [client] whose line is kept (coord_config.lines) */
static const char *const cc_line_keys[CC_LINES] = {"id",	 "key",	   "broker",
						   "broker_key", "events", "time_zone"};

static int cc_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cc_parse *p = user;
	coord_config *cfg = p->cfg;
	rete_msg sub;

	if (p->err != RETE_OK)
		return 0;
	rete_check_at(p->pr, p->line);
	if (strcmp(section, "report") == 0)
		return cc_report(p, name, value);
	if (strcmp(section, "client") != 0)
		return 1; /* other sections belong to other tools sharing the file */
	for (int i = 0; i < CC_LINES; i++)
		if (strcmp(cc_line_keys[i], name) == 0)
			cfg->lines[i] = p->line;
	if (strcmp(name, "id") == 0) {
		if (rete_ini_party_id("client", value, cfg->id, sizeof(cfg->id), &sub) != RETE_OK) {
			rete_check_add(p->pr, "%s", sub.text);
			p->id_bad = true;
		}
		return 1;
	}
	if (strcmp(name, "key") == 0)
		return cc_set(p, &cfg->key_path, rete_ini_abs_path(p->dir, value));
	if (strcmp(name, "broker_key") == 0)
		return cc_set(p, &cfg->broker_key_path, rete_ini_abs_path(p->dir, value));
	if (strcmp(name, "broker") == 0)
		return cc_set(p, &cfg->broker, strdup(value));
	if (strcmp(name, "events") == 0) {
		if (rete_endpoint_check(value, RETE_ENDPOINT_CONNECT, &sub) != RETE_OK) {
			rete_check_add(p->pr, "[client] events: %s", sub.text);
			return 1;
		}
		return cc_set(p, &cfg->events, strdup(value));
	}
	if (strcmp(name, "time_zone") == 0) {
		if (!cc_tz_valid(value)) {
			rete_check_add(p->pr,
				       "[client] time_zone: '%s' is not a time zone name; use "
				       "e.g. Europe/Rome",
				       value);
			return 1;
		}
		return cc_set(p, &cfg->time_zone, strdup(value));
	}
	if (strcmp(name, "timeout") == 0) {
		rete_duration d;
		if (rete_duration_parse(value, &d, NULL) != RETE_OK || d.working_days > 0 ||
		    d.ms <= 0 || d.ms > 3600000) {
			rete_check_add(p->pr,
				       "[client] timeout: '%s' is not accepted; use a duration "
				       "from 1s to 1h, e.g. 10s",
				       value);
			return 1;
		}
		cfg->timeout_ms = (int)d.ms;
		return 1;
	}
	rete_check_add(p->pr,
		       "[client] %s: unknown key; known: id, key, broker, broker_key, events, "
		       "time_zone, timeout",
		       name);
	return 1;
}

/* cc_report reads a key of [report]: the steering group's counts, in
 * rete report -c and the console. */
static int cc_report(struct cc_parse *p, const char *name, const char *value)
{
	rete_msg em;

	if (strcmp(name, "min_count") == 0) {
		if (report_parse_min_count(value, &p->cfg->min_count, &em) != RETE_OK)
			rete_check_add(p->pr, "[report] min_count: %s", em.text);
		return 1;
	}
	rete_check_add(p->pr, "[report] %s: unknown key; known: min_count", name);
	return 1;
}

rete_err coord_config_read(const char *path, coord_config *cfg, rete_check_list *pr)
{
	struct cc_parse p = {.cfg = cfg, .pr = pr, .err = RETE_OK};
	size_t before = pr->n;
	rete_err err;

	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = 10000;
	cfg->min_count = REPORT_MIN_COUNT;
	err = rete_ini_read_list(path, cc_handler, &p, &p.err, &p.line, &cfg->ini_path, p.dir,
				 sizeof(p.dir), pr, &cfg->unreadable);
	if (err != RETE_OK)
		return err;
	const int lines[4] = {cfg->lines[0], cfg->lines[1], cfg->lines[2], cfg->lines[3]};
	rete_ini_need_party_list("client", "a coordinator", p.id_bad ? "bad" : cfg->id,
				 cfg->key_path, cfg->broker, cfg->broker_key_path, lines, pr);
	cfg->time_zone_default = cfg->time_zone == NULL;
	if (cfg->time_zone == NULL && (cfg->time_zone = strdup(RETE_DEFAULT_TZ)) == NULL) {
		cfg->unreadable = true;
		rete_check_add(pr, "out of memory");
		return RETE_ENOMEM;
	}
	rete_check_at(pr, 0);
	return pr->n == before ? RETE_OK : RETE_EINVAL;
}

rete_err coord_config_load(const char *path, coord_config *cfg, rete_msg *m)
{
	rete_check_list pr = {0};
	rete_err err = coord_config_read(path, cfg, &pr);

	if (err != RETE_OK && pr.n == 0)
		rete_msg_set(m, RETE_ENOMEM, "out of memory");
	else if (err != RETE_OK && cfg->unreadable)
		rete_msg_set(m, err, "%s", pr.items[0]);
	else if (err != RETE_OK && pr.lines[0] > 0)
		rete_msg_set(m, err, "%s:%d: %s%s", path, pr.lines[0], pr.items[0],
			     pr.n > 1 ? " (and more: rete --check-config -c FILE lists every "
					"problem)"
				      : "");
	else if (err != RETE_OK)
		rete_msg_set(m, err, "%s: %s%s", path, pr.items[0],
			     pr.n > 1 ? " (and more: rete --check-config -c FILE lists every "
					"problem)"
				      : "");
	rete_check_free(&pr);
	return err;
}

void coord_config_free(coord_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->ini_path);
	free(cfg->key_path);
	free(cfg->broker);
	free(cfg->broker_key_path);
	free(cfg->events);
	free(cfg->time_zone);
	memset(cfg, 0, sizeof(*cfg));
}

rete_err coord_config_keys(const coord_config *cfg, rete_seckey **sk, rete_pubkey *broker_key,
			   rete_msg *m)
{
	rete_err err;

	*sk = NULL;
	if ((err = rete_keyfile_load_public(cfg->broker_key_path, broker_key, m)) != RETE_OK)
		return err;
	return rete_keyfile_load_secret(cfg->key_path, sk, m);
}

rete_err coord_connect(const coord_config *cfg, bool events, rete_wire **out, rete_msg *m)
{
	rete_seckey *sk = NULL;
	rete_pubkey bk;
	rete_err err;

	*out = NULL;
	if (events && (cfg->events == NULL || cfg->events[0] == '\0'))
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: [client] events is missing; set it to the broker's events "
				    "endpoint (its [broker] events)",
				    cfg->ini_path);
	if ((err = coord_config_keys(cfg, &sk, &bk, m)) != RETE_OK)
		return err;
	if (events)
		err = rete_wire_subscribe(out, cfg->events, &bk, sk, m);
	else
		err = rete_wire_connect(out, cfg->broker, &bk, sk, m);
	rete_seckey_free(&sk);
	return err;
}

rete_err coord_query(const coord_config *cfg, rete_wire *w, Rete__Query__WhatCase what,
		     Rete__BrokerFrame **out, rete_msg *m)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__SnapshotQuery sq = RETE__SNAPSHOT_QUERY__INIT;
	Rete__HealthQuery hq = RETE__HEALTH_QUERY__INIT;
	Rete__QueryResult__AnswerCase want;
	Rete__BrokerFrame *f = NULL;
	rete_err err;

	*out = NULL;
	q.what_case = what;
	if (what == RETE__QUERY__WHAT_SNAPSHOT) {
		q.snapshot = &sq;
		want = RETE__QUERY_RESULT__ANSWER_SNAPSHOT;
	} else {
		q.health = &hq;
		want = RETE__QUERY_RESULT__ANSWER_HEALTH;
	}
	err = rete_wire_call(w, &q, cfg->timeout_ms, &f, m);
	if (err == RETE_ETIMEDOUT)
		return coord_silent(cfg, NULL, m);
	if (err != RETE_OK)
		return err;
	if (f->command_case != RETE__BROKER_FRAME__COMMAND_RESULT || f->result == NULL) {
		rete__broker_frame__free_unpacked(f, NULL);
		return rete_msg_set(m, RETE_EDECODE,
				    "the broker answered with something else than "
				    "the answer to our query");
	}
	if ((err = coord_answer(f, want, NULL, m)) != RETE_OK)
		return err;
	*out = f;
	return RETE_OK;
}

rete_err coord_answer(Rete__BrokerFrame *f, Rete__QueryResult__AnswerCase want,
		      Rete__ErrorCode *code, rete_msg *m)
{
	if (f->result->error != RETE__ERROR_CODE__ERROR_CODE_UNSPECIFIED) {
		if (code != NULL)
			*code = f->result->error;
		rete_msg_set(m, RETE_EREFUSED, "the broker refused the query: %s",
			     f->result->error_text != NULL && *f->result->error_text != '\0'
				 ? f->result->error_text
				 : "(no reason given)");
		rete__broker_frame__free_unpacked(f, NULL);
		return RETE_EREFUSED;
	}
	if (f->result->answer_case != want) {
		rete__broker_frame__free_unpacked(f, NULL);
		return rete_msg_set(m, RETE_EDECODE,
				    "the broker's answer is not of the kind asked for");
	}
	return RETE_OK;
}

rete_err coord_silent(const coord_config *cfg, const char *endpoint, rete_msg *m)
{
	return rete_msg_set(m, RETE_ETIMEDOUT,
			    "the broker at %s did not answer within %d s; is it running, is "
			    "%s right, and is [client] broker_key (%s) its public key? (with "
			    "another key the connection never opens, without a word) Or it is "
			    "running but too busy to answer: a slow or full disk (its log and "
			    "`df` on its data folder say which)",
			    endpoint != NULL ? endpoint : cfg->broker, cfg->timeout_ms / 1000,
			    endpoint != NULL ? "the endpoint" : "[client] broker",
			    cfg->broker_key_path);
}
