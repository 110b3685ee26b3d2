/* cmd_store.c — `rete store backup STORE_DIR DEST_DIR [--verify
 * --broker-key PUB]`: a hot, compacted, consistent copy of a store, taken
 * while the broker may be writing, and optionally verified as `rete audit
 * verify` does (store/verify.h). */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "keys.h"
#include "store.h"
#include "store_identity.h"
#include "verify.h"

static void store_usage(FILE *out)
{
	fprintf(out, "usage: rete store backup STORE_DIR DEST_DIR [--verify --broker-key PUB]\n"
		     "\n"
		     "Writes a consistent, compacted copy of the store in STORE_DIR into\n"
		     "DEST_DIR (it must not exist or must be empty; it and its missing parent\n"
		     "folders are created mode 0700, the copy's files are 0600). The store is\n"
		     "opened read-only, so the broker may keep running and writing: the copy\n"
		     "is the store as of one moment. Prints the number of log entries copied.\n"
		     "The copy is marked as a copy (its size, epoch and the time it was made):\n"
		     "a broker serves it only when started with --restore, and then goes on\n"
		     "as a new log epoch. A copy of a copy keeps the first copy's mark.\n"
		     "\n"
		     "  --verify          verify the copy once it is made, as 'rete audit verify\n"
		     "                    DEST_DIR --broker-key PUB' does (signatures, the tree,\n"
		     "                    every checkpoint, the lifecycle replay); prints\n"
		     "                    'verified N entries, M checkpoints' or 'the copy does\n"
		     "                    not verify: WHY' (the copy stays, for inspection)\n"
		     "  --broker-key PUB  the broker's public key file (.pub), needed by --verify\n"
		     "\n"
		     "Restoring a copy: stop the broker, put the copy in place of its data\n"
		     "folder (leave the state file beside it), start it once with\n"
		     "'rete-broker -c broker.ini --restore': the log goes on as a new epoch.\n"
		     "To move a store, stop the broker and move the folder with its state\n"
		     "file; a copy moved instead goes on as a new epoch too.\n"
		     "docs/operations.md, \"Restoring a backup\", says what happens.\n"
		     "\n"
		     "Exit codes: 0 copied (and with --verify, the copy verifies); 1 the copy\n"
		     "does not verify; 2 usage error, DEST_DIR not empty, the store cannot be\n"
		     "read, the copy cannot be written or verified, or the store's journal\n"
		     "holds a receipted batch its data.mdb lacks: start the broker once first\n"
		     "(the sentence says which).\n");
}

/* verify_copy verifies the copy in dest against the broker key: the exit
 * code (0 holds, 1 does not, 2 the check could not be done). */
static int verify_copy(const char *dest, const rete_pubkey *key)
{
	rete_verify_options opt;
	rete_verify_report rep;
	rete_store *s = NULL;
	rete_msg m = {{0}};
	rete_err e;

	memset(&opt, 0, sizeof(opt));
	memset(&rep, 0, sizeof(rep));
	opt.broker_key = *key;
	opt.replay = true;
	if ((e = rete_store_open(&s, dest, RETE_STORE_RDONLY, &m)) != RETE_OK) {
		fprintf(stderr, "rete store backup: cannot open the copy %s to verify it: %s\n",
			dest, m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	e = rete_verify_log(s, &opt, &rep, &m);
	rete_store_close(&s);
	if (rep.verdict == RETE_VERIFY_HOLDS) {
		printf("verified the copy %s: %" PRIu64 " entries, %" PRIu64 " checkpoints\n", dest,
		       rep.entries, rep.checkpoints);
		return CLI_OK;
	}
	if (rep.verdict == RETE_VERIFY_FAILS) {
		printf("the copy %s does not verify: %s\n", dest, rep.reason);
		return CLI_FALSE;
	}
	fprintf(stderr, "rete store backup: the copy %s could not be verified: %s\n", dest,
		m.text[0] ? m.text : rete_strerror(e));
	return CLI_USAGE;
}

static int store_backup(int argc, char **argv)
{
	const char *src = NULL, *dest = NULL, *keyfile = NULL;
	bool verify = false;
	rete_pubkey key;
	rete_store *s = NULL;
	rete_store_copy_mark mark;
	bool was_copy = false;
	char when[32];
	rete_msg m = {{0}};
	rete_err e;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--verify") == 0) {
			verify = true;
			continue;
		}
		if (strcmp(argv[i], "--broker-key") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr,
					"rete store backup: --broker-key needs the broker's "
					"public key file (.pub)\n");
				return CLI_USAGE;
			}
			keyfile = argv[++i];
			continue;
		}
		if (argv[i][0] == '-') {
			fprintf(stderr,
				"rete store backup: unknown option '%s'; accepted: --verify, "
				"--broker-key PUB, --help\n",
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
	if (verify != (keyfile != NULL)) {
		fprintf(stderr, "rete store backup: %s\n",
			verify ? "--verify needs --broker-key PUB (the broker's public key file)"
			       : "--broker-key is only for --verify");
		return CLI_USAGE;
	}
	/* the key first: a wrong file is said before anything is copied */
	if (keyfile != NULL && (e = rete_keyfile_load_public(keyfile, &key, &m)) != RETE_OK) {
		fprintf(stderr, "rete store backup: --broker-key: %s\n",
			m.text[0] ? m.text : rete_strerror(e));
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
	int rc = verify ? verify_copy(dest, &key) : CLI_OK;
	return fflush(stdout) == 0 ? rc : CLI_USAGE;
}

int cmd_store(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv) || strcmp(argv[1], "help") == 0) {
		if (argc < 2)
			fprintf(stderr, "rete store: no subcommand given; accepted: backup\n");
		store_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[1], "backup") == 0)
		return store_backup(argc - 1, argv + 1);
	fprintf(stderr, "rete store: unknown command '%s'; accepted: backup\n", argv[1]);
	return CLI_USAGE;
}
