/* main.c — `rete`, the command-line tool for people: keys, messages, and
 * (as the project grows) sending, status, the coordinator's monitor and
 * reports, and the auditor's commands. This file only dispatches. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "duration.h"

struct cli_command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *also; /* a second form of the command, or NULL */
};

static const struct cli_command commands[] = {
	{"keygen", cmd_keygen, "keygen ID --out DIR     create a party's Ed25519 key pair"},
	{"message", cmd_message, "message check FILE.json check a message file against the schema"},
	{"audit", cmd_audit, "audit verify|log|timeline|proof|consistency|check-proof STORE_DIR ...  the auditor's commands"},
	{"evidence", cmd_evidence, "evidence export|verify ...  one message's evidence bundle: write it, check it offline"},
	{"checkpoint", cmd_checkpoint, "checkpoint STORE_DIR   print the latest signed checkpoint"},
	{"witnesses", cmd_witnesses, "witnesses (-c audit.ini | STORE_DIR --broker-key FILE.pub) [--quorum K]  a witness policy of the directory's agencies"},
	{"store", cmd_store, "store backup STORE_DIR DEST_DIR  hot, compacted copy of a store"},
	{"send", cmd_send, "send -c agent.ini FILE.json [--wait [S]]  queue a message in the agent's outbox"},
	{"status", cmd_status, "status -c agent.ini [REFERRAL_ID] [--json]  the agency's referrals and their history"},
	{"monitor", cmd_monitor, "monitor -c coord.ini [--once] [--json]  the coordinator's live view (overdue first)"},
	{"console", cmd_console, "console -c coord.ini [--listen ADDR]  the web console (Panoramica, Salute), live",
	 "console passwd USER -c coord.ini  set a console user's password (accounts file)"},
	{"report", cmd_report, "report (-c coord.ini | --store DIR) --from D --to D [--by ...] [--format csv|json]  period counts and median times"},
	{"sar", cmd_sar, "sar --person FISCALCODE -c agent.ini [--json | --html FILE]  one person's subject-access answer"},
	{"health", cmd_health, "health -c coord.ini [--json]  the broker's health (exit 0 healthy, 1 problems)"},
	{"version", cmd_version, "version [--json]        this rete's version, protocol and store schema"},
};

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

/* cli_tz_dir: where the C library looks for zones (glibc: $TZDIR). */
static const char *cli_tz_dir(void)
{
	const char *d = getenv("TZDIR");
	return d != NULL && d[0] != '\0' && strlen(d) < 256 ? d : "/usr/share/zoneinfo";
}

bool cli_tz_known(const char *tz)
{
	char path[512];
	struct stat st;

	if (tz == NULL || tz[0] == '\0' || tz[0] == '/' || strstr(tz, "..") != NULL ||
	    strlen(tz) > 200)
		return false;
	if (strcmp(tz, "UTC") == 0)
		return true;
	snprintf(path, sizeof(path), "%s/%s", cli_tz_dir(), tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void cli_tz_refuse(const char *who, const char *tz, const char *from, const char *instead)
{
	const char *dir = cli_tz_dir();
	if (!cli_tz_known(RETE_DEFAULT_TZ)) {
		/* not even the default: the database is missing, not the zone */
		fprintf(stderr,
			"%s: time zone '%s' (%s) cannot be used: this machine has no time zone "
			"database (no %s/%s: the tzdata package is not installed); %s. Install "
			"tzdata (apt-get install tzdata), or give --tz UTC\n",
			who, tz, from, dir, RETE_DEFAULT_TZ, instead);
		return;
	}
	fprintf(stderr,
		"%s: time zone '%s' (%s) is not known on this machine (no %s/%s); %s. Give a "
		"zone such as " RETE_DEFAULT_TZ " with --tz (or --tz UTC)\n",
		who, tz, from, dir, tz, instead);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: rete COMMAND [ARGS...]\n\n"
		     "rete is the command-line tool of the rete referral network.\n\n"
		     "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		fprintf(out, "  rete %s\n", commands[i].summary);
		if (commands[i].also != NULL)
			fprintf(out, "  rete %s\n", commands[i].also);
	}
	fprintf(out, "  rete --check-config -c FILE  check an agent.ini, coord.ini or audit.ini\n");
	fprintf(out, "\n'rete COMMAND --help' explains one command; 'rete --version' (or\n"
		     "'rete version') says which rete this is.\n"
		     "Exit codes: 0 done/holds, 1 false or refused, 2 usage or I/O error.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "rete: no command given\n");
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		return cmd_version(argc - 1, argv + 1);
	if (strcmp(argv[1], "--check-config") == 0)
		return cmd_check(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "rete: unknown command '%s'; 'rete --help' lists the commands\n",
		argv[1]);
	return CLI_USAGE;
}
