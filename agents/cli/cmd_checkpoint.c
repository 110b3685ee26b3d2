/* cmd_checkpoint.c — `rete checkpoint STORE_DIR`: print the latest signed
 * checkpoint note of a store, exactly as stored (an auditor keeps it to
 * give to `rete audit verify --since-checkpoint` next time). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static void checkpoint_usage(FILE *out)
{
	fprintf(out, "usage: rete checkpoint STORE_DIR\n"
		     "\n"
		     "Prints the latest signed checkpoint note of the store in STORE_DIR\n"
		     "(C2SP signed note: origin, tree size, root hash, a blank line, the\n"
		     "broker's signature line and the witnesses' cosignature lines gathered\n"
		     "so far), byte for byte as stored. The store is opened read-only, so\n"
		     "this works while the broker runs. Keep the note: 'rete audit verify\n"
		     "--since-checkpoint FILE' later proves the log still extends it.\n"
		     "\n"
		     "Exit codes: 0 printed; 1 the store has no checkpoint yet; 2 usage error\n"
		     "or the store cannot be read.\n");
}

int cmd_checkpoint(int argc, char **argv)
{
	const char *dir = NULL;
	rete_store *s = NULL;
	char *note = NULL;
	uint64_t size = 0;
	rete_msg m = {{0}};
	rete_err e;

	if (cli_wants_help(argc, argv)) {
		checkpoint_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-') {
			fprintf(stderr, "rete checkpoint: unknown option '%s'; accepted: --help\n",
				argv[i]);
			return CLI_USAGE;
		}
		if (dir != NULL) {
			fprintf(stderr, "rete checkpoint: unexpected argument '%s'\n", argv[i]);
			return CLI_USAGE;
		}
		dir = argv[i];
	}
	if (dir == NULL) {
		fprintf(stderr, "rete checkpoint: missing STORE_DIR\n");
		checkpoint_usage(stderr);
		return CLI_USAGE;
	}
	e = rete_store_open(&s, dir, RETE_STORE_RDONLY, &m);
	if (e != RETE_OK) {
		fprintf(stderr, "rete checkpoint: %s\n", m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	e = rete_store_checkpoint_latest(s, NULL, &size, &note, &m);
	rete_store_close(&s);
	if (e == RETE_ENOENT) {
		fprintf(stderr, "rete checkpoint: %s\n", m.text);
		return CLI_FALSE;
	}
	if (e != RETE_OK) {
		fprintf(stderr, "rete checkpoint: %s\n", m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	fputs(note, stdout);
	free(note);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "rete checkpoint: cannot write to standard output: %s\n",
			strerror(errno));
		return CLI_USAGE;
	}
	return CLI_OK;
}
