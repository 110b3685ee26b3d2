/* cmd_keygen.c — `rete keygen ID --out DIR [--force]`: create a party's
 * Ed25519 key pair as DIR/ID.key (0600) and DIR/ID.pub. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keys.h"

static void keygen_usage(FILE *out)
{
	fprintf(out, "usage: rete keygen ID --out DIR [--force]\n"
		     "\n"
		     "Creates a new Ed25519 key pair for the party ID:\n"
		     "  DIR/ID.key  the secret: one line, base64 of the 32-byte seed, mode 0600\n"
		     "  DIR/ID.pub  the public key: one line, base64 of 32 bytes\n"
		     "and prints the public key (base64) on standard output. DIR is created\n"
		     "(mode 0700) if missing. The same key also gives the party's X25519 keys\n"
		     "for CURVE and for sealed parts.\n"
		     "\n"
		     "ID must match ^[a-z0-9][a-z0-9.-]{1,62}$ (e.g. social.mantova).\n"
		     "\n"
		     "options:\n"
		     "  --out DIR   folder for the key files (required)\n"
		     "  --force     replace an existing key pair of ID in DIR; without it an\n"
		     "              existing ID.key or ID.pub is left untouched and refused\n"
		     "\n"
		     "Exit codes: 0 written; 2 usage error, invalid ID, existing key (without\n"
		     "--force) or I/O error.\n");
}

/* mkdir_p creates dir and its missing parents (mode 0700 for new ones). */
static int mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	struct stat st;
	int rc = 0;

	if (p == NULL)
		return -1;
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			rc = -1;
			break;
		}
		*s = '/';
	}
	if (rc == 0 && mkdir(p, 0700) != 0 && errno != EEXIST)
		rc = -1;
	if (rc == 0 && (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))) {
		errno = ENOTDIR;
		rc = -1;
	}
	free(p);
	return rc;
}

int cmd_keygen(int argc, char **argv)
{
	const char *id = NULL, *out = NULL;
	bool force = false;
	rete_seckey *sk = NULL;
	rete_msg m = {{0}};
	rete_err e;
	char *b64;

	if (cli_wants_help(argc, argv)) {
		keygen_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0) {
			force = true;
		} else if (strcmp(argv[i], "--out") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "rete keygen: --out needs a folder\n");
				return CLI_USAGE;
			}
			out = argv[++i];
		} else if (strncmp(argv[i], "--out=", 6) == 0) {
			out = argv[i] + 6;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr,
				"rete keygen: unknown option '%s'; accepted: --out DIR, --force, "
				"--help\n",
				argv[i]);
			return CLI_USAGE;
		} else if (id == NULL) {
			id = argv[i];
		} else {
			fprintf(stderr,
				"rete keygen: unexpected argument '%s'; give exactly one ID\n",
				argv[i]);
			return CLI_USAGE;
		}
	}
	if (id == NULL || out == NULL || *out == '\0') {
		fprintf(stderr, "rete keygen: %s\n",
			id == NULL ? "missing ID" : "missing --out DIR");
		keygen_usage(stderr);
		return CLI_USAGE;
	}
	if (!rete_id_valid(id)) {
		fprintf(stderr,
			"rete keygen: party id '%s' is not valid; an id is 2 to 63 characters "
			"matching ^[a-z0-9][a-z0-9.-]{1,62}$ (lower-case letters, digits, '.' "
			"and '-', starting with a letter or digit), e.g. social.mantova\n",
			id);
		return CLI_USAGE;
	}
	if (mkdir_p(out) != 0) {
		fprintf(stderr, "rete keygen: cannot create folder %s: %s\n", out, strerror(errno));
		return CLI_USAGE;
	}
	e = rete_seckey_generate(&sk, &m);
	if (e == RETE_OK)
		e = rete_keyfile_write(out, id, sk, force, &m);
	if (e != RETE_OK) {
		fprintf(stderr, "rete keygen: %s\n", m.text[0] ? m.text : rete_strerror(e));
		rete_seckey_free(&sk);
		return CLI_USAGE;
	}
	b64 = rete_b64_encode(sk->pub.ed, RETE_PK_LEN);
	rete_seckey_free(&sk);
	if (b64 == NULL) {
		fprintf(stderr, "rete keygen: out of memory\n");
		return CLI_USAGE;
	}
	printf("%s\n", b64);
	free(b64);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "rete keygen: cannot write to standard output: %s\n",
			strerror(errno));
		return CLI_USAGE;
	}
	return CLI_OK;
}
