/* cli_access.c — see cli_access.h. */
#include "cli_access.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../agent/agent_config.h"
#include "access_log.h"
#include "privacy_config.h"

/* cli_user: the operating-system user running the command. */
static void cli_user(char *buf, size_t n)
{
	struct passwd *pw = getpwuid(geteuid());
	if (pw != NULL && pw->pw_name != NULL)
		snprintf(buf, n, "%s", pw->pw_name);
	else
		snprintf(buf, n, "uid %u", (unsigned)geteuid());
}

bool cli_access_record(const char *ini, const char *program, const char *what)
{
	rete_privacy_config pc = {0};
	rete_msg m = {{0}};
	char path[4096], user[256];
	rete_keep keep = RETE_ACCESS_KEEP_DEFAULT;
	const char *party = NULL;

	if (ini != NULL) {
		/* An agent.ini (its [agent] section loads) keeps the record in
		 * its data folder by default; a coord.ini or audit.ini beside
		 * the file. */
		agent_config ac;
		rete_msg ignored;
		bool agent = agent_config_load_paths(ini, &ac, &ignored) == RETE_OK ||
			     ac.agent_section; /* an agent.ini with a problem is still
						* one: its record is not put beside it */
		char *data = agent && ac.data ? strdup(ac.data) : NULL;
		agent_config_free(&ac);
		rete_err err = rete_privacy_config_load(ini, agent, data, &pc, &m);
		free(data);
		if (err != RETE_OK) {
			fprintf(stderr, "%s: %s\n", program, m.text);
			rete_privacy_config_free(&pc);
			return false;
		}
		snprintf(path, sizeof(path), "%s", pc.access_log);
		keep = pc.access_keep;
		party = pc.party[0] ? pc.party : NULL;
	} else if (!rete_access_default_path(path, sizeof(path))) {
		fprintf(stderr,
			"%s: no access record to write this read to: set RETE_ACCESS_LOG to a "
			"file (HOME is not set)\n",
			program);
		return false;
	}
	cli_user(user, sizeof(user));
	rete_access_rec r = {.program = program, .who = user, .party = party, .what = what};
	rete_err err = rete_access_record(path, keep, &r, &m);
	rete_privacy_config_free(&pc);
	if (err != RETE_OK) {
		fprintf(stderr,
			"%s: %s; this read was not made, since every read of the log is recorded "
			"(set [privacy] access_log in the configuration, or RETE_ACCESS_LOG)\n",
			program, m.text);
		return false;
	}
	return true;
}

bool cli_access_argv(const char *prefix, int argc, char **argv, bool subcommand)
{
	char program[128], what[2048];
	const char *ini = NULL;
	size_t len = 0;
	int first = subcommand ? 2 : 1;

	if (subcommand && argc > 1)
		snprintf(program, sizeof(program), "%s %s %s", prefix, argv[0], argv[1]);
	else
		snprintf(program, sizeof(program), "%s %s", prefix, argv[0]);
	what[0] = '\0';
	for (int i = first; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc)
			ini = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			ini = argv[i] + 9;
		int w = snprintf(what + len, sizeof(what) - len, "%s%s", len ? " " : "", argv[i]);
		if (w < 0 || (size_t)w >= sizeof(what) - len)
			break;
		len += (size_t)w;
	}
	return cli_access_record(ini, program, what);
}
