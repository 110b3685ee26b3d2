/* main.c — `rete-broker -c broker.ini [-v] [--check-config] [--init]
 * [--restore]`: reads the configuration, then runs the broker until SIGTERM
 * or SIGINT. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "config.h"
#include "log.h"
#include "version.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rete-broker -c broker.ini [-v] [--check-config] [--init] [--restore]\n"
		"       rete-broker --version\n\n"
		"rete-broker is the central broker of a rete network: it authenticates the\n"
		"parties of its directory, checks, logs and delivers their messages.\n\n"
		"  -c, --config FILE   the configuration (see docs/broker-config.md)\n"
		"  -v, --verbose       more log lines (every frame, every connection)\n"
		"      --check-config  check the configuration, its keys and the store (opened\n"
		"                      read-only: schema, the log's origin and key, a backup\n"
		"                      copy's mark, the state file; as the start would with\n"
		"                      the --init or --restore given), list every problem,\n"
		"                      exit (0 = fine, 2 = problems)\n"
		"      --init          create a new, empty log in the data folder (first\n"
		"                      start only; without it a missing store is refused)\n"
		"      --restore       the store was restored from a backup: go on as a new\n"
		"                      log epoch (see docs/operations.md, backup and restore)\n"
		"      --version       the version, protocol version and store schema, exit\n\n"
		"Signals: SIGHUP reloads the configuration (a bad one is refused and the old\n"
		"one kept); SIGTERM and SIGINT stop after the batch in hand.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"verbose", no_argument, NULL, 'v'},
					     {"check-config", no_argument, NULL, 'C'},
					     {"init", no_argument, NULL, 'I'},
					     {"restore", no_argument, NULL, 'R'},
					     {"help", no_argument, NULL, 'h'},
					     {"version", no_argument, NULL, 'V'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL;
	bool check = false;
	unsigned flags = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'v':
			broker_log_verbose(true);
			break;
		case 'C':
			check = true;
			break;
		case 'I':
			flags |= BROKER_INIT;
			break;
		case 'R':
			flags |= BROKER_RESTORE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V': {
			char text[256];
			fputs(rete_version_text(text, sizeof(text), "rete-broker"), stdout);
			return 0;
		}
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc || flags == (BROKER_INIT | BROKER_RESTORE)) {
		fprintf(stderr, "rete-broker: %s\n",
			!config		 ? "-c broker.ini is required"
			: optind != argc ? "unexpected argument"
					 : "--init (a new log) and --restore (a log restored from "
					   "a copy) exclude each other");
		usage(stderr);
		return 2;
	}

	rete_problems problems = {0};
	broker_config *c = NULL;
	rete_err err = broker_config_load(config, &c, &problems);
	if (err != RETE_OK) {
		for (size_t i = 0; i < problems.n; i++)
			fprintf(stderr, "%s: %s\n", problems.items[i].path, problems.items[i].text);
		if (problems.n == 0)
			fprintf(stderr, "%s: %s\n", config, rete_strerror(err));
		fprintf(stderr, "%s: %zu problem%s; nothing was started\n", config, problems.n,
			problems.n == 1 ? "" : "s");
		rete_problems_free(&problems);
		return 2;
	}
	rete_problems_free(&problems);
	if (check) {
		/* the store too, read-only, as the start would judge it (with the
		 * --init or --restore given beside --check-config) */
		rete_problems notes = {0};
		int rc = broker_check_store(c, flags, &problems, &notes); /* prints them */
		fflush(stdout);
		if (rc != 0) {
			fprintf(stderr, "%s: %zu problem%s; nothing was started\n", config,
				problems.n, problems.n == 1 ? "" : "s");
		} else {
			size_t agencies = 0;
			for (size_t i = 0; i < c->nparties; i++)
				agencies += broker_kind_is_agency(c->parties[i].kind);
			printf("%s: fine: broker %s, origin %s, %zu parties (%zu agencies), %zu "
			       "routes, listen %s, events %s, store %s\n",
			       config, c->id, c->origin, c->nparties, agencies, c->nroutes,
			       c->listen, c->events, c->data);
		}
		rete_problems_free(&notes);
		rete_problems_free(&problems);
		broker_config_free(&c);
		return rc;
	}
	return broker_run(c, flags); /* takes c over */
}
