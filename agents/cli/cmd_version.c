/* cmd_version.c — `rete version [--json]` (and `rete --version`): which rete
 * this is, for the upgrade steps of docs/operations.md and for bug reports:
 * the release, the git commit it was built from, the wire protocol version,
 * the store schema (store/version.h) and the agent store's schema, which
 * `rete status` and `rete sar` read (agents/agent/agent_db.h). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "../agent/agent_db.h"
#include "cli.h"
#include "version.h"

static void version_usage(FILE *out)
{
	fprintf(out,
		"usage: rete version [--json]\n"
		"       rete --version\n\n"
		"Prints the release of this rete, the git commit it was built from (when\n"
		"built from a checkout), the wire protocol version it speaks and the store\n"
		"schema it writes, and the agent store's schema that rete status and rete sar\n"
		"read. rete-broker --version and rete-agent --version say the same for those\n"
		"programs.\n\n"
		"  --json    {\"version\", \"commit\" (null outside a checkout), \"protocol\",\n"
		"            \"storeSchema\", \"agentStoreSchema\"}\n");
}

int cmd_version(int argc, char **argv)
{
	bool json = false;
	if (cli_wants_help(argc, argv)) {
		version_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else {
			fprintf(stderr, "rete version: unexpected argument '%s'\n", argv[i]);
			version_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (json) {
		json_t *j = rete_version_json();
		if (j != NULL)
			json_object_set_new(j, "agentStoreSchema",
					    json_integer(AGENT_STORE_SCHEMA));
		if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
			json_decref(j);
			fprintf(stderr, "rete version: out of memory\n");
			return CLI_USAGE;
		}
		fputc('\n', stdout);
		json_decref(j);
	} else {
		char text[256];
		fputs(rete_version_text(text, sizeof(text), "rete"), stdout);
		printf("agent store schema %d\n", AGENT_STORE_SCHEMA);
	}
	return fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
}
