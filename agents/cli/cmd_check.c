/* cmd_check.c — `rete --check-config -c FILE`: checks a client's
 * configuration (agent.ini, coord.ini or audit.ini, told apart by their
 * section) as the program reading it would at start: the keys and, for an
 * agent, the folders (agents/common/config_check.h). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "../agent/agent_check.c"
#include "conffile.h"
#include "console_check.h"
#include "coord_config.h"
#include "privacy_config.h"

/* first_section finds the first "[name]" line of path into name; false
 * when the file cannot be read or has none; false with *why set when it is
 * no configuration file at all (a folder, a device, far too large). */
static bool first_section(const char *path, char *name, size_t len, rete_msg *why)
{
	char line[1024];
	FILE *f = NULL;
	bool found = false;

	rete_err err = rete_conffile_open(path, &f, why);
	if (err != RETE_OK) {
		if (err == RETE_EIO) /* said as before: cannot be read */
			why->text[0] = '\0';
		return false;
	}
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *p = line + strspn(line, " \t");
		char *end = strchr(p, ']');
		if (*p == '[' && end != NULL) {
			*end = '\0';
			snprintf(name, len, "%s", p + 1);
			found = true;
		}
	}
	fclose(f);
	return found;
}

int cmd_check(int argc, char **argv)
{
	const char *ini = NULL;
	char section[64] = "", what[512];
	rete_check_list problems = {0}, notes = {0};
	rete_msg m = {{0}};
	int rc;

	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc)
			ini = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf(
			    "usage: rete --check-config -c FILE\n\n"
			    "Checks agent.ini ([agent]), coord.ini or audit.ini ([client]) as the\n"
			    "program reading it would at start: the keys (a secret key 0600, a\n"
			    "secret where a secret is wanted, a public key where a public one is)\n"
			    "and an agent's folders; a coord.ini's time_zone and [console] as "
			    "rete\n"
			    "console reads them. Every problem is listed, with FILE:LINE: where a\n"
			    "key is the cause; no key material is printed. Exit 0 fine, 2\n"
			    "problems. broker.ini: rete-broker --check-config.\n");
			return CLI_OK;
		} else {
			fprintf(stderr,
				"rete --check-config: unexpected argument '%s'; usage: rete "
				"--check-config -c FILE\n",
				argv[i]);
			return CLI_USAGE;
		}
	}
	if (ini == NULL) {
		fprintf(stderr, "rete --check-config: -c FILE is required (agent.ini, coord.ini "
				"or audit.ini)\n");
		return CLI_USAGE;
	}
	m.text[0] = '\0';
	if (!first_section(ini, section, sizeof(section), &m)) {
		if (m.text[0]) {
			fprintf(stderr, "%s: %s\n", ini, m.text);
			return CLI_USAGE;
		}
		fprintf(stderr,
			"%s: cannot be read, or holds no [section]; an agent.ini has "
			"[agent], a coord.ini or audit.ini [client]\n",
			ini);
		return CLI_USAGE;
	}
	if (strcmp(section, "agent") == 0) {
		return agent_check_run("rete --check-config", ini) == 0 ? CLI_OK : CLI_USAGE;
	} else if (strcmp(section, "client") == 0) {
		coord_config cfg;
		if (coord_config_read(ini, &cfg, &problems) != RETE_OK && cfg.unreadable) {
			fprintf(stderr, "%s\n", problems.n ? problems.items[0] : "out of memory");
			coord_config_free(&cfg);
			rete_check_free(&problems);
			return CLI_USAGE;
		}
		/* every problem of [client] and [report] is listed; what the
		 * file names is opened even when some keys were refused */
		rete_check_at(&problems, cfg.lines[1]);
		if (cfg.key_path != NULL)
			rete_check_secret_key(&problems, "[client] key", cfg.key_path);
		rete_check_at(&problems, cfg.lines[3]);
		if (cfg.broker_key_path != NULL)
			rete_check_public_key(&problems, "[client] broker_key",
					      cfg.broker_key_path);
		rete_check_at(&problems, 0);
		rete_privacy_config pc;
		if (rete_privacy_config_load(ini, false, NULL, &pc, &m) != RETE_OK)
			rete_check_add(&problems, "%s",
				       strstr(m.text, "[privacy]") ? strstr(m.text, "[privacy]")
								   : m.text);
		rete_privacy_config_free(&pc);
		/* time_zone and [console]: the console's own reading and the
		 * judgements of its start (rete report refuses the same zone) */
		console_check(ini, &problems, &notes);
		snprintf(what, sizeof(what), "client %s (coordinator or auditor), broker %s%s%s",
			 cfg.id, cfg.broker, cfg.events ? ", events " : "",
			 cfg.events ? cfg.events : "");
		coord_config_free(&cfg);
	} else if (strcmp(section, "broker") == 0) {
		fprintf(stderr,
			"%s: a broker.ini: check it with rete-broker -c %s --check-config\n", ini,
			ini);
		return CLI_USAGE;
	} else {
		fprintf(stderr,
			"%s: its first section is [%s]; rete --check-config reads an "
			"agent.ini ([agent]), a coord.ini or audit.ini ([client])\n",
			ini, section);
		return CLI_USAGE;
	}
	rc = rete_check_report(ini, &problems, &notes, what);
	rete_check_free(&problems);
	rete_check_free(&notes);
	return rc;
}
