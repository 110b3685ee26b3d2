/* cmd_message.c — `rete message check FILE.json...`: check message files
 * (the outbox spelling: a Message object, optionally with a "private" part)
 * against the schema's JSON mapping (json.h) and the semantic rules
 * (validate.h), printing every problem with its path. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "validate.h"

static void message_usage(FILE *out)
{
	fprintf(out,
		"usage: rete message check FILE.json [FILE.json...]\n"
		"\n"
		"Checks message files as an agency writes them into its outbox: a JSON\n"
		"Message (lowerCamelCase keys, enum values such as \"in-progress\", times\n"
		"in RFC 3339) with one body (referral, update or note) and, optionally, a\n"
		"top-level \"private\" object: the part that is sealed to the recipient.\n"
		"id, sender, createdAt, origin and the body's privateSha256 may be left\n"
		"out: the agent fills them in. See examples/messages/ for one file per\n"
		"message type.\n"
		"\n"
		"For a valid file it prints \"FILE: valid KIND message\"; otherwise one line\n"
		"per problem, \"FILE: PATH: what is wrong and what would be accepted\".\n"
		"\n"
		"Exit codes: 0 every file is valid; 1 a file is invalid (bad JSON, a field\n"
		"that does not map, or a rule it breaks); 2 usage error or unreadable file.\n");
}

static void print_problems(const char *file, const rete_problems *p, size_t from)
{
	for (size_t i = from; i < p->n; i++) {
		if (p->items[i].path[0])
			printf("%s: %s: %s\n", file, p->items[i].path, p->items[i].text);
		else
			printf("%s: %s\n", file, p->items[i].text);
	}
}

/* check_file checks one file and returns its exit code. */
static int check_file(const char *file)
{
	json_t *doc = NULL;
	rete_msg m = {{0}};
	rete_err e = rete_json_load_file(file, &doc, &m);
	if (e == RETE_EIO || e == RETE_ENOMEM) {
		fprintf(stderr, "rete message check: %s\n", m.text);
		return CLI_USAGE;
	}
	if (e != RETE_OK) {
		/* the sentence already names the file */
		printf("%s\n", m.text);
		return CLI_FALSE;
	}

	rete_problems probs = {0};
	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	int rc = CLI_OK;
	e = rete_json_load_outbox(file, doc, &msg, &priv, &probs);
	json_decref(doc);
	if (e == RETE_ENOMEM) {
		fprintf(stderr, "rete message check: %s: out of memory\n", file);
		rc = CLI_USAGE;
		goto out;
	}
	if (e != RETE_OK) {
		print_problems(file, &probs, 0);
		rc = CLI_FALSE;
		goto out;
	}

	/* An outbox file is a draft: the agent fills in id, sender, time,
	 * origin and the sealed part's hash. Bodies only the broker writes are
	 * checked as the broker's own messages. */
	rete_validate_mode mode = RETE_VALIDATE_DRAFT;
	if (msg->body_case != RETE__MESSAGE__BODY__NOT_SET && !rete_body_is_agency(msg))
		mode = RETE_VALIDATE_BROKER;
	if (rete_validate_message(msg, priv, mode, &probs) != RETE_OK || probs.n > 0) {
		if (probs.n == 0)
			printf("%s: the message is not valid\n", file);
		print_problems(file, &probs, 0);
		rc = CLI_FALSE;
		goto out;
	}
	const ProtobufCFieldDescriptor *body =
	    protobuf_c_message_descriptor_get_field(&rete__message__descriptor, msg->body_case);
	printf("%s: valid %s message\n", file, body ? body->name : "");
out:
	protobuf_c_message_free_unpacked((ProtobufCMessage *)msg, NULL);
	protobuf_c_message_free_unpacked((ProtobufCMessage *)priv, NULL);
	rete_problems_free(&probs);
	return rc;
}

int cmd_message(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		message_usage(stdout);
		return CLI_OK;
	}
	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2)
			fprintf(stderr, "rete message: unknown subcommand '%s'; accepted: check\n",
				argv[1]);
		else
			fprintf(stderr, "rete message: no subcommand given; accepted: check\n");
		message_usage(stderr);
		return CLI_USAGE;
	}
	if (argc < 3) {
		fprintf(stderr, "rete message check: no file given\n");
		message_usage(stderr);
		return CLI_USAGE;
	}
	for (int i = 2; i < argc; i++)
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "rete message check: unknown option '%s'\n", argv[i]);
			message_usage(stderr);
			return CLI_USAGE;
		}
	int rc = CLI_OK;
	for (int i = 2; i < argc; i++) {
		int r = check_file(argv[i]);
		if (r > rc)
			rc = r;
	}
	return rc;
}
