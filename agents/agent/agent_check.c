/* agent_check.c — `--check-config` of an agent.ini (see agent_check.h). */
#include "agent_check.h"

#include "agent_db.h"
#include "privacy_config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* check_metrics: the metrics address is one of this host's (the start
 * would refuse it). Its port is not tried: the agent running beside the
 * check holds it. */
static void check_metrics(rete_check_list *problems, const rete_http_addr *addr)
{
	struct sockaddr_storage sa = addr->sa;
	if (sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&sa)->sin6_port = 0;
	else
		((struct sockaddr_in *)&sa)->sin_port = 0;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return; /* nothing to say about the address */
	if (bind(fd, (const struct sockaddr *)&sa, addr->salen) != 0 && errno == EADDRNOTAVAIL)
		rete_check_add(problems,
			       "[agent] metrics: no interface of this host has the address %s, so "
			       "the agent cannot listen on %s; give an address of this host "
			       "(e.g. 127.0.0.1 and a port)",
			       addr->host, addr->text);
	close(fd);
}

/* check_hook: on_message's program, when it is named by its path (the
 * first word, after an `exec`), is there and may be run: else every hook
 * would fail (the shell's 127 or 126). A name looked up in PATH is not
 * judged: the service's PATH is not the check's. */
static void check_hook(rete_check_list *problems, const char *cmd)
{
	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	if (strncmp(cmd, "exec ", 5) == 0)
		for (cmd += 5; *cmd == ' ' || *cmd == '\t';)
			cmd++;
	size_t len = strcspn(cmd, " \t");
	if (cmd[0] != '/' || len >= 4096)
		return;
	char prog[4096];
	memcpy(prog, cmd, len);
	prog[len] = '\0';
	struct stat st;
	if (stat(prog, &st) != 0)
		rete_check_add(problems,
			       "[agent] on_message: %s: %s; every hook would fail (exit 127)", prog,
			       strerror(errno));
	else if (!S_ISREG(st.st_mode) || access(prog, X_OK) != 0)
		rete_check_add(problems,
			       "[agent] on_message: %s is not an executable file; every hook would "
			       "fail (exit 126)",
			       prog);
}

void agent_check_config(const agent_config *cfg, rete_check_list *problems, rete_check_list *notes)
{
	static const char *subs[] = {"outbox", "sent", "failed", "inbox"};
	dev_t dev[4] = {0};
	bool ok[4] = {false};
	char path[4096], where[64];

	rete_check_at(problems, agent_config_line(cfg, "key"));
	rete_check_secret_key(problems, "[agent] key", cfg->key_path);
	rete_check_at(problems, agent_config_line(cfg, "broker_key"));
	rete_check_public_key(problems, "[agent] broker_key", cfg->broker_key_path);
	rete_check_at(problems, agent_config_line(cfg, "data"));
	rete_check_folder(problems, notes, "[agent] data", cfg->data, NULL);
	rete_check_at(problems, agent_config_line(cfg, "metrics"));
	if (cfg->metrics_on)
		check_metrics(problems, &cfg->metrics);
	rete_check_at(problems, agent_config_line(cfg, "on_message"));
	if (cfg->on_message != NULL)
		check_hook(problems, cfg->on_message);
	rete_check_at(problems, 0);
	for (size_t i = 0; i < cfg->adjusted.n; i++) {
		rete_check_at(notes, cfg->adjusted.lines[i]);
		rete_check_add(notes, "%s", cfg->adjusted.items[i]);
	}
	rete_check_at(notes, 0);
	if (cfg->twice[0] != '\0')
		rete_check_add(notes,
			       "[agent] %s: given more than once; the last of each is taken (keep "
			       "one, so that what you read is what runs)",
			       cfg->twice);
	/* a store this agent cannot read: a newer agent's schema, a damaged
	 * one, one it may not open. Only where LMDB's lock.mdb is: opening
	 * would write one (after a restore of data.mdb alone), and the check
	 * writes nothing; the agent's start then checks the store. */
	char lock[4096];
	struct stat lst;
	snprintf(lock, sizeof(lock), "%s/lock.mdb", cfg->data);
	if (stat(lock, &lst) == 0) {
		agent_db *db = NULL;
		rete_msg dm;
		rete_err derr = agent_db_open(cfg->data, true, 0, &db, &dm);
		if (derr == RETE_OK)
			agent_db_close(&db);
		else if (derr != RETE_ENOENT) {
			rete_check_at(problems, agent_config_line(cfg, "data"));
			rete_check_add(problems, "[agent] data: %s", dm.text);
			rete_check_at(problems, 0);
		}
	}
	/* [privacy]: retention and the access record (issue 18) */
	rete_privacy_config pc;
	rete_msg pm;
	if (cfg->ini_path != NULL &&
	    rete_privacy_config_load(cfg->ini_path, true, cfg->data, &pc, &pm) != RETE_OK)
		rete_check_add(problems, "%s",
			       strstr(pm.text, "[privacy]") ? strstr(pm.text, "[privacy]")
							    : pm.text);
	else if (cfg->ini_path != NULL) /* rete sar and the agent append to it */
		rete_check_file(problems, "[privacy] access_log", pc.access_log);
	rete_privacy_config_free(&pc);
	struct stat st;
	bool spool_there = stat(cfg->spool, &st) == 0;
	rete_check_at(problems, agent_config_line(cfg, "spool"));
	bool spool_ok = rete_check_folder(problems, notes, "[agent] spool", cfg->spool, NULL);
	rete_check_at(problems, 0);
	if (!spool_ok || !spool_there)
		return; /* its subfolders would only repeat it, or are made with it */
	for (int i = 0; i < 4; i++) {
		snprintf(where, sizeof(where), "[agent] spool, %s/", subs[i]);
		agent_spool_path(cfg, subs[i], NULL, path, sizeof(path));
		ok[i] = rete_check_folder(problems, notes, where, path, &dev[i]);
	}
	/* sent/ and failed/ on another file system than outbox/: not an error
	 * (docs/agent.md, "Other file systems"), but each answer is a copy */
	for (int i = 1; i <= 2; i++)
		if (ok[0] && ok[i] && dev[i] != dev[0]) {
			agent_spool_path(cfg, subs[i], NULL, path, sizeof(path));
			rete_check_add(
			    notes,
			    "[agent] spool: %s is on another file system than outbox/: "
			    "the agent cannot move a file there, so it copies it (fsync'd, "
			    "then the outbox file removed; docs/agent.md, other file "
			    "systems)",
			    path);
		}
}

int agent_check_run(const char *prog, const char *ini)
{
	agent_config cfg;
	rete_check_list problems = {0}, notes = {0};
	char what[512];
	int rc;

	if (agent_config_read(ini, &cfg, &problems) != RETE_OK && cfg.unreadable) {
		fprintf(stderr, "%s: %s\n", prog, problems.n ? problems.items[0] : "out of memory");
		rc = 2;
	} else {
		/* what the file names is opened even when some keys were
		 * refused: every problem at once */
		agent_check_config(&cfg, &problems, &notes);
		snprintf(what, sizeof(what), "agent %s, broker %s, spool %s, data %s", cfg.id,
			 cfg.broker, cfg.spool, cfg.data);
		rc = rete_check_report(ini, &problems, &notes, what);
	}
	rete_check_free(&problems);
	rete_check_free(&notes);
	agent_config_free(&cfg);
	return rc;
}
