/* cmd_store.c — `rete store backup STORE_DIR DEST_DIR`: a hot, compacted,
 * consistent copy of a store, taken while the broker may be writing. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "store.h"
#include "store_identity.h"

static void store_usage(FILE *out)
{
	fprintf(out, "usage: rete store backup STORE_DIR DEST_DIR\n"
		     "\n"
		     "Writes a consistent, compacted copy of the store in STORE_DIR into\n"
		     "DEST_DIR (created; it must not exist or must be empty). The store is\n"
		     "opened read-only, so the broker may keep running and writing: the copy\n"
		     "is the store as of one moment. Prints the number of log entries copied.\n"
		     "The copy is marked as a copy (its size, epoch and the time it was made):\n"
		     "a broker serves it only when started with --restore, and then goes on\n"
		     "as a new log epoch. A copy of a copy keeps the first copy's mark.\n"
		     "Check a copy with 'rete audit verify DEST_DIR --broker-key FILE.pub'.\n"
		     "\n"
		     "Restoring a copy: stop the broker, put the copy in place of its data\n"
		     "folder (leave the state file beside it), start it once with\n"
		     "'rete-broker -c broker.ini --restore': the log goes on as a new epoch.\n"
		     "To move a store, stop the broker and move the folder with its state\n"
		     "file; a copy moved instead goes on as a new epoch too.\n"
		     "docs/operations.md, \"Restoring a backup\", says what happens.\n"
		     "\n"
		     "Exit codes: 0 copied; 2 usage error, DEST_DIR not empty, the store\n"
		     "cannot be read, or the copy cannot be written (the sentence says which).\n");
}

static int store_backup(int argc, char **argv)
{
	const char *src = NULL, *dest = NULL;
	rete_store *s = NULL;
	rete_store_copy_mark mark;
	bool was_copy = false;
	char when[32];
	rete_msg m = {{0}};
	rete_err e;

	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-') {
			fprintf(stderr,
				"rete store backup: unknown option '%s'; accepted: --help\n",
				argv[i]);
			return CLI_USAGE;
		}
		if (src == NULL) {
			src = argv[i];
		} else if (dest == NULL) {
			dest = argv[i];
		} else {
			fprintf(stderr, "rete store backup: unexpected argument '%s'\n", argv[i]);
			return CLI_USAGE;
		}
	}
	if (src == NULL || dest == NULL) {
		fprintf(stderr, "rete store backup: missing %s\n",
			src == NULL ? "STORE_DIR and DEST_DIR" : "DEST_DIR");
		store_usage(stderr);
		return CLI_USAGE;
	}
	/* open the source read-only beside the broker; the copy reports what
	 * it holds from its own mark */
	e = rete_store_open(&s, src, RETE_STORE_RDONLY, &m);
	if (e == RETE_OK)
		e = rete_store_backup_mark(s, dest, &mark, &was_copy, &m);
	rete_store_close(&s);
	if (e != RETE_OK) {
		fprintf(stderr, "rete store backup: %s\n", m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	printf("backed up %s to %s: %" PRIu64 " log entries (epoch %" PRIu32 "), marked as a "
	       "copy made at %s\n",
	       src, dest, mark.size, mark.epoch, rete_time_format(mark.made_at_ms, when));
	if (was_copy)
		printf("%s is itself a backup copy (of %s, made at %s): the new copy keeps that "
		       "mark\n",
		       src, mark.source[0] ? mark.source : "a store", when);
	return fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
}

int cmd_store(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv) || strcmp(argv[1], "help") == 0) {
		store_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[1], "backup") == 0)
		return store_backup(argc - 1, argv + 1);
	fprintf(stderr, "rete store: unknown command '%s'; accepted: backup\n", argv[1]);
	return CLI_USAGE;
}
