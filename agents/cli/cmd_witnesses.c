/* cmd_witnesses.c — `rete witnesses`: write a witness policy (store/cosign.h)
 * naming every agency of the directory in force with its key, for `rete
 * audit verify --witnesses` and the agents' `witnesses`. The directory comes
 * from a store (STORE_DIR --broker-key FILE.pub) or from the broker's
 * WELCOME (-c audit.ini); either way it must be signed by the broker key. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "coord_config.h"
#include "cosign.h"
#include "store.h"
#include "wire.h"

static void witnesses_usage(FILE *out)
{
	fprintf(out, "usage: rete witnesses -c audit.ini [--quorum K]\n"
		     "       rete witnesses STORE_DIR --broker-key FILE.pub [--quorum K]\n"
		     "\n"
		     "Prints a witness policy (docs/auditing.md, Witnesses): one line 'witness ID\n"
		     "KEY' for every agency of the directory in force (coordinators and auditors\n"
		     "left out), KEY its Ed25519 public key in base64, and 'quorum K' when given\n"
		     "(default: every agency listed must have cosigned; K from 1 to the number of\n"
		     "agencies listed, more is refused with exit 2). The directory comes from\n"
		     "the broker (-c: the coordinator's or auditor's configuration; the broker's\n"
		     "WELCOME) or from a store folder (opened read-only); it must verify with the\n"
		     "pinned broker key (-c) or --broker-key. Save the output and give it to\n"
		     "'rete audit verify --witnesses FILE' or an agent's 'witnesses' key; edit it\n"
		     "to list fewer witnesses.\n"
		     "\n"
		     "Exit codes: 0 printed; 1 the directory does not verify or lists no agency;\n"
		     "2 usage, configuration, connection or I/O error.\n");
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_agency(Rete__PartyKind k)
{
	return k != RETE__PARTY_KIND__PARTY_KIND_COORDINATOR &&
	       k != RETE__PARTY_KIND__PARTY_KIND_AUDITOR &&
	       k != RETE__PARTY_KIND__PARTY_KIND_BROKER &&
	       k != RETE__PARTY_KIND__PARTY_KIND_UNSPECIFIED;
}

/* print_policy decodes the Directory entry (LogEntry bytes), verifies it with
 * bk and prints the policy. */
static int print_policy(const uint8_t *entry, size_t len, const rete_pubkey *bk, uint64_t quorum)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, len, entry);
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_witness_policy *p = NULL;
	char *text = NULL;
	size_t tlen = 0, n = 0;
	FILE *f = NULL;
	rete_msg m = {{0}};
	int rc = CLI_FALSE;

	if (le == NULL) {
		fprintf(stderr, "rete witnesses: the directory entry is not a LogEntry\n");
		return CLI_FALSE;
	}
	if (rete_signed_decode(le->signed_message.data, le->signed_message.len, &sm, &msg, &m) !=
		RETE_OK ||
	    msg->body_case != RETE__MESSAGE__BODY_DIRECTORY || msg->directory == NULL) {
		fprintf(stderr, "rete witnesses: entry %" PRIu64 " is not a directory%s%s\n",
			le->index, m.text[0] ? ": " : "", m.text);
		goto out;
	}
	if (rete_signed_verify(sm, bk, &m) != RETE_OK) {
		fprintf(stderr,
			"rete witnesses: the directory (entry %" PRIu64
			") is not signed by the broker key: %s\n",
			le->index, m.text);
		goto out;
	}
	if ((f = open_memstream(&text, &tlen)) == NULL) {
		fprintf(stderr, "rete witnesses: out of memory\n");
		rc = CLI_USAGE;
		goto out;
	}
	fprintf(f,
		"# witness policy of the log %s: the agencies of its directory (entry %" PRIu64
		"), written by rete witnesses\n",
		msg->origin, le->index);
	for (size_t i = 0; i < msg->directory->n_parties; i++) {
		const Rete__Party *pa = msg->directory->parties[i];
		char *k64;
		if (!is_agency(pa->kind) || pa->public_key.len != RETE_PK_LEN)
			continue;
		k64 = rete_b64_encode(pa->public_key.data, RETE_PK_LEN);
		if (k64 == NULL)
			break;
		fprintf(f, "witness %s %s\n", pa->id, k64);
		free(k64);
		n++;
	}
	if (quorum > 0)
		fprintf(f, "quorum %" PRIu64 "\n", quorum);
	if (fclose(f) != 0) {
		fprintf(stderr, "rete witnesses: out of memory\n");
		rc = CLI_USAGE;
		goto out;
	}
	if (n == 0) {
		fprintf(stderr,
			"rete witnesses: the directory (entry %" PRIu64 ") lists no agency\n",
			le->index);
		goto out;
	}
	/* said as the option it is: the policy's lines are ours, not the
	 * user's, and a quorum above the witnesses could never be met */
	if (quorum > n) {
		fprintf(stderr,
			"rete witnesses: --quorum %" PRIu64 " is more than the %zu agencies the "
			"directory (entry %" PRIu64 ") lists; give 1 to %zu\n",
			quorum, n, le->index, n);
		rc = CLI_USAGE;
		goto out;
	}
	/* what is printed must load as a policy */
	if (rete_witness_policy_parse(text, tlen, &p, &m) != RETE_OK) {
		fprintf(stderr, "rete witnesses: %s (the directory lists %zu agencies)\n", m.text,
			n);
		rc = CLI_USAGE;
		goto out;
	}
	rete_witness_policy_free(&p);
	if (fwrite(text, 1, tlen, stdout) != tlen || fflush(stdout) != 0) {
		fprintf(stderr, "rete witnesses: cannot write to standard output: %s\n",
			strerror(errno));
		rc = CLI_USAGE;
		goto out;
	}
	rc = CLI_OK;
out:
	free(text);
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	return rc;
}

static int from_store(const char *dir, const char *keyfile, uint64_t quorum)
{
	rete_store *s = NULL;
	rete_pubkey bk;
	rete_buf entry = {0};
	uint64_t index = 0;
	rete_msg m = {{0}};
	rete_err e;
	int rc;

	if ((e = rete_keyfile_load_public(keyfile, &bk, &m)) != RETE_OK) {
		fprintf(stderr, "rete witnesses: %s\n", m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	if ((e = rete_store_open(&s, dir, RETE_STORE_RDONLY, &m)) != RETE_OK) {
		fprintf(stderr, "rete witnesses: %s\n", m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	e = rete_store_directory(s, NULL, &index, &entry, &m);
	rete_store_close(&s);
	if (e != RETE_OK) {
		fprintf(stderr, "rete witnesses: the store %s: %s\n", dir,
			m.text[0] ? m.text : rete_strerror(e));
		return e == RETE_ENOENT ? CLI_FALSE : CLI_USAGE;
	}
	rc = print_policy(entry.data, entry.len, &bk, quorum);
	rete_buf_free(&entry);
	return rc;
}

static int from_broker(const char *ini, uint64_t quorum)
{
	coord_config cfg;
	rete_seckey *sk = NULL;
	rete_pubkey bk;
	rete_wire *w = NULL;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	rete_err e;
	int rc = CLI_USAGE;

	if ((e = coord_config_load(ini, &cfg, &m)) != RETE_OK ||
	    (e = coord_config_keys(&cfg, &sk, &bk, &m)) != RETE_OK ||
	    (e = rete_wire_connect(&w, cfg.broker, &bk, sk, &m)) != RETE_OK ||
	    (e = rete_wire_hello(w, cfg.id, "rete witnesses", &m)) != RETE_OK) {
		fprintf(stderr, "rete witnesses: %s\n", m.text[0] ? m.text : rete_strerror(e));
		goto out;
	}
	int64_t end = mono_ms() + cfg.timeout_ms;
	for (;;) {
		int64_t left = end - mono_ms();
		if (left <= 0) {
			coord_silent(&cfg, NULL, &m);
			fprintf(stderr, "rete witnesses: no WELCOME: %s\n", m.text);
			goto out;
		}
		e = rete_wire_recv(w, (int)left, &f, &m);
		if (e == RETE_ETIMEDOUT)
			continue;
		if (e != RETE_OK) {
			fprintf(stderr, "rete witnesses: %s: %s\n", cfg.broker,
				m.text[0] ? m.text : rete_strerror(e));
			goto out;
		}
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_WELCOME)
			break;
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL) {
			fprintf(stderr, "rete witnesses: the broker refused our HELLO: %s\n",
				f->refusal->error_text ? f->refusal->error_text : "");
			goto out;
		}
		rete__broker_frame__free_unpacked(f, NULL);
		f = NULL;
	}
	rc = print_policy(f->welcome->directory_entry.data, f->welcome->directory_entry.len, &bk,
			  quorum);
out:
	if (f != NULL)
		rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	rete_seckey_free(&sk);
	coord_config_free(&cfg);
	return rc;
}

int cmd_witnesses(int argc, char **argv)
{
	const char *dir = NULL, *keyfile = NULL, *ini = NULL;
	uint64_t quorum = 0;

	if (cli_wants_help(argc, argv)) {
		witnesses_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		bool takes = strcmp(opt, "-c") == 0 || strcmp(opt, "--config") == 0 ||
			     strcmp(opt, "--broker-key") == 0 || strcmp(opt, "--quorum") == 0;
		if (takes && i + 1 >= argc) {
			fprintf(stderr, "rete witnesses: %s needs a value\n", opt);
			return CLI_USAGE;
		}
		if (strcmp(opt, "-c") == 0 || strcmp(opt, "--config") == 0) {
			ini = argv[++i];
		} else if (strcmp(opt, "--broker-key") == 0) {
			keyfile = argv[++i];
		} else if (strcmp(opt, "--quorum") == 0) {
			char *e;
			const char *v = argv[++i];
			errno = 0;
			quorum = strtoull(v, &e, 10);
			if (errno != 0 || *e != '\0' || v[0] < '1' || v[0] > '9') {
				fprintf(stderr,
					"rete witnesses: --quorum '%s' is not accepted; give a "
					"number from 1 to the number of agencies\n",
					v);
				return CLI_USAGE;
			}
		} else if (opt[0] == '-') {
			fprintf(stderr,
				"rete witnesses: unknown option '%s'; accepted: -c, --broker-key, "
				"--quorum, --help\n",
				opt);
			return CLI_USAGE;
		} else if (dir == NULL) {
			dir = opt;
		} else {
			fprintf(stderr, "rete witnesses: unexpected argument '%s'\n", opt);
			return CLI_USAGE;
		}
	}
	if ((ini != NULL) == (dir != NULL) || (dir != NULL && keyfile == NULL) ||
	    (ini != NULL && keyfile != NULL)) {
		fprintf(stderr, "rete witnesses: give either -c audit.ini, or STORE_DIR and "
				"--broker-key FILE.pub\n");
		witnesses_usage(stderr);
		return CLI_USAGE;
	}
	return ini != NULL ? from_broker(ini, quorum) : from_store(dir, keyfile, quorum);
}
