/* cmd_send.c — `rete send -c agent.ini FILE.json [--wait [SECONDS]]`.
 *
 * Checks the file the way the agent will (JSON mapping and draft
 * validation: every problem printed at once, exit 1), then copies it into
 * the agent's outbox atomically (temporary name the agent ignores, fsync,
 * rename). With --wait it waits (inotify, bounded) for the agent's answer:
 * the receipt in sent/ (printed, exit 0) or the error in failed/ (printed,
 * exit 1), or the timeout (exit 1).
 *
 * The agent's configuration and spool code are compiled into this command
 * from agents/agent/ (the build gives `rete` only the files of agents/cli), so both
 * read agent.ini and write spool files in exactly one way.
 */
#include "../agent/agent_config.c"
#include "../agent/agent_spool.c"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/inotify.h>

#include "cli.h"
#include "duration.h"
#include "json.h"
#include "validate.h"

static void send_usage(FILE *f)
{
	fprintf(f, "usage: rete send -c agent.ini FILE.json [--wait [SECONDS]]\n\n"
		   "Checks FILE.json (a message for the agency's outbox, with an optional\n"
		   "\"private\" part) and queues it in the agent's outbox/. With --wait (default\n"
		   "60 seconds; 1 to 86400) waits for the answer: prints the receipt (exit 0)\n"
		   "or the error (exit 1); exit 1 also when the time runs out.\n"
		   "\n"
		   "Exit codes: 0 queued (with --wait: the broker took it, its receipt\n"
		   "printed); 1 the file is not JSON or not a valid message (nothing queued),\n"
		   "or with --wait the broker refused it or no answer came in time (it stays\n"
		   "queued); 2 usage, configuration or I/O error (nothing queued).\n");
}

static bool send_exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

/* send_pick_name chooses the outbox name: the file's own name when neither
 * outbox/, sent/ nor failed/ holds it, otherwise STEM-2.EXT, STEM-3.EXT...
 * so that the answer --wait looks for is this file's and no earlier one. */
static bool send_pick_name(const agent_config *cfg, const char *base, char *out, size_t n)
{
	char dirs[3][PATH_MAX], stem[256], ext[64] = "";
	agent_spool_path(cfg, "outbox", NULL, dirs[0], sizeof(dirs[0]));
	agent_spool_path(cfg, "sent", NULL, dirs[1], sizeof(dirs[1]));
	agent_spool_path(cfg, "failed", NULL, dirs[2], sizeof(dirs[2]));
	snprintf(stem, sizeof(stem), "%s", base);
	char *dot = strrchr(stem, '.');
	if (dot != NULL && dot != stem) {
		snprintf(ext, sizeof(ext), "%s", dot);
		*dot = '\0';
	}
	for (unsigned k = 1; k < 10000; k++) {
		if (k == 1)
			snprintf(out, n, "%s", base);
		else
			snprintf(out, n, "%s-%u%s", stem, k, ext);
		char rec[PATH_MAX], err[PATH_MAX];
		snprintf(rec, sizeof(rec), "%s.receipt.json", out);
		snprintf(err, sizeof(err), "%s.error.json", out);
		if (!send_exists(dirs[0], out) && !send_exists(dirs[1], out) &&
		    !send_exists(dirs[2], out) && !send_exists(dirs[1], rec) &&
		    !send_exists(dirs[2], err))
			return true;
	}
	return false;
}

/* send_check validates the file as the agent will; prints every problem. */
static int send_check(const agent_config *cfg, const char *file)
{
	rete_problems problems = {0};
	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	int rc = CLI_OK;

	/* parsed here, so that a syntax error is said once: its sentence
	 * already names the file */
	json_t *doc = NULL;
	rete_msg m = {{0}};
	rete_err err = rete_json_load_file(file, &doc, &m);
	if (err != RETE_OK) {
		/* the sentence names the file (once) and where the JSON breaks */
		fprintf(stderr, "rete send: %s\n", m.text);
		if (err == RETE_EJSON)
			fprintf(stderr, "rete send: %s: not JSON; nothing was queued\n", file);
		else
			fprintf(stderr, "rete send: nothing was queued\n");
		return err == RETE_EJSON ? CLI_FALSE : CLI_USAGE;
	}
	err = rete_json_load_outbox(file, doc, &msg, &priv, &problems);
	json_decref(doc);
	if (err == RETE_OK)
		rete_validate_message(msg, priv, RETE_VALIDATE_DRAFT, &problems);
	if (msg != NULL && msg->sender != NULL && msg->sender[0] != '\0' &&
	    strcmp(msg->sender, cfg->id) != 0)
		rete_problems_add(&problems, "sender",
				  "'%s' is not this agency (%s); leave it out or write '%s'",
				  msg->sender, cfg->id, cfg->id);
	if (problems.n > 0) {
		for (size_t i = 0; i < problems.n; i++)
			fprintf(stderr, "%s: %s%s%s\n", file, problems.items[i].path,
				problems.items[i].path[0] ? ": " : "", problems.items[i].text);
		fprintf(stderr, "rete send: %s: %zu problem%s; nothing was queued\n", file,
			problems.n, problems.n == 1 ? "" : "s");
		rc = CLI_FALSE;
	}
	if (msg != NULL)
		protobuf_c_message_free_unpacked(&msg->base, NULL);
	if (priv != NULL)
		protobuf_c_message_free_unpacked(&priv->base, NULL);
	rete_problems_free(&problems);
	return rc;
}

static bool send_print_if(const char *dir, const char *name, FILE *to)
{
	char *text = NULL;
	size_t len = 0;
	if (agent_spool_read(dir, name, 16u << 20, &text, &len, NULL) != RETE_OK)
		return false;
	fwrite(text, 1, len, to);
	if (len > 0 && text[len - 1] != '\n')
		fputc('\n', to);
	free(text);
	return true;
}

/* send_wait waits for sent/NAME.receipt.json or failed/NAME.error.json. */
static int send_wait(const agent_config *cfg, const char *name, int64_t seconds)
{
	char sent[PATH_MAX], failed[PATH_MAX], rec[PATH_MAX], err[PATH_MAX];
	int64_t deadline = rete_now_ms() + seconds * 1000;
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	agent_spool_path(cfg, "sent", NULL, sent, sizeof(sent));
	agent_spool_path(cfg, "failed", NULL, failed, sizeof(failed));
	snprintf(rec, sizeof(rec), "%s.receipt.json", name);
	snprintf(err, sizeof(err), "%s.error.json", name);
	if (ino >= 0) {
		inotify_add_watch(ino, sent, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE);
		inotify_add_watch(ino, failed, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE);
	}
	for (;;) {
		/* The agent writes the answer before it moves the file: the
		 * answer is complete when the file itself has arrived too. */
		if (send_exists(sent, name) && send_print_if(sent, rec, stdout)) {
			if (ino >= 0)
				close(ino);
			return CLI_OK;
		}
		if (send_exists(failed, name) && send_print_if(failed, err, stdout)) {
			if (ino >= 0)
				close(ino);
			return CLI_FALSE;
		}
		int64_t left = deadline - rete_now_ms();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = ino, .events = POLLIN};
		/* inotify wakes us at once; the bound only covers a spool on a
		 * file system without inotify. */
		poll(&p, ino >= 0 ? 1 : 0, (int)(left < 500 ? left : 500));
		if (ino >= 0) {
			char buf[4096];
			while (read(ino, buf, sizeof(buf)) > 0) {
			}
		}
	}
	if (ino >= 0)
		close(ino);
	fprintf(stderr,
		"rete send: no answer for %s within %lld s (is rete-agent running?); "
		"it stays queued\n",
		name, (long long)seconds);
	return CLI_FALSE;
}

int cmd_send(int argc, char **argv)
{
	const char *ini = NULL, *file = NULL;
	bool wait = false;
	int64_t seconds = 60;
	agent_config cfg;
	rete_msg m = {{0}};
	int rc;

	if (cli_wants_help(argc, argv)) {
		send_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr,
					"rete send: %s needs a value: the agent's agent.ini\n", a);
				send_usage(stderr);
				return CLI_USAGE;
			}
			ini = argv[++i];
		} else if (strcmp(a, "--wait") == 0) {
			wait = true;
			/* the seconds are optional: a number (or what tries to be
			 * one, "-5") is taken as them, anything else is the file */
			const char *v = i + 1 < argc ? argv[i + 1] : "";
			bool number = (v[0] >= '0' && v[0] <= '9') ||
				      (v[0] == '-' && v[1] >= '0' && v[1] <= '9');
			if (number) {
				char *end;
				errno = 0;
				long long n = strtoll(v, &end, 10);
				if (errno != 0 || *end != '\0' || n <= 0 || n > 86400) {
					fprintf(stderr,
						"rete send: --wait %s is not accepted: give whole "
						"seconds, 1 to 86400 (or --wait alone: 60)\n",
						v);
					send_usage(stderr);
					return CLI_USAGE;
				}
				seconds = n;
				i++;
			}
		} else if (a[0] == '-') {
			if (a[1] == '\0')
				fprintf(stderr,
					"rete send: '-' is not accepted: the message is read "
					"from a file, never from standard input; give "
					"FILE.json\n");
			else
				fprintf(stderr,
					"rete send: unknown option '%s'; accepted: -c, --wait, "
					"--help\n",
					a);
			send_usage(stderr);
			return CLI_USAGE;
		} else if (file != NULL) {
			bool after_wait = i > 1 && strcmp(argv[i - 1], "--wait") == 0;
			fprintf(stderr,
				"rete send: unexpected argument '%s': the file to send is already "
				"'%s' (one file per run)%s\n",
				a, file,
				after_wait ? "; --wait takes whole seconds, 1 to 86400" : "");
			send_usage(stderr);
			return CLI_USAGE;
		} else {
			file = a;
		}
	}
	if (ini == NULL || file == NULL) {
		fprintf(stderr, "rete send: missing %s\n",
			ini == NULL && file == NULL ? "-c agent.ini and FILE.json"
			: ini == NULL		    ? "-c agent.ini (the agent's configuration)"
						    : "FILE.json (the message to send)");
		send_usage(stderr);
		return CLI_USAGE;
	}
	if (agent_config_load_paths(ini, &cfg, &m) != RETE_OK) {
		fprintf(stderr, "rete send: %s\n", m.text);
		agent_config_free(&cfg);
		return CLI_USAGE;
	}
	rc = send_check(&cfg, file);
	if (rc != CLI_OK)
		goto out;

	char *text = NULL;
	size_t len = 0;
	char outbox[PATH_MAX], name[300];
	const char *slash = strrchr(file, '/');
	const char *base = slash ? slash + 1 : file;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - file) : 1, slash ? file : ".");
	char why[300];
	if (agent_spool_name_ignored(base)) {
		fprintf(stderr,
			"rete send: %s: the agent ignores names starting with '.' or "
			"ending in '.tmp'; rename the file\n",
			file);
		rc = CLI_USAGE;
		goto out;
	}
	if (agent_spool_name_problem(base, why, sizeof(why)) != NULL) {
		fprintf(stderr, "rete send: %s: %s\n", file, why);
		rc = CLI_USAGE;
		goto out;
	}
	if (agent_spool_prepare(cfg.spool, &m) != RETE_OK ||
	    agent_spool_read(slash ? dir : ".", base, 16u << 20, &text, &len, &m) != RETE_OK) {
		fprintf(stderr, "rete send: %s\n", m.text);
		rc = CLI_USAGE;
		goto out;
	}
	agent_spool_path(&cfg, "outbox", NULL, outbox, sizeof(outbox));
	/* a numbered name (STEM-2.EXT) must still be one the agent takes */
	if (!send_pick_name(&cfg, base, name, sizeof(name)) || !agent_spool_name_ok(name) ||
	    agent_spool_write(outbox, name, text, len, &m) != RETE_OK) {
		fprintf(stderr, "rete send: %s\n",
			m.text[0] ? m.text
				  : "no free name in outbox/ for it; rename it (a shorter name)");
		free(text);
		rc = CLI_USAGE;
		goto out;
	}
	free(text);
	fprintf(stderr, "rete send: %s queued as %s/%s\n", file, outbox, name);
	if (wait)
		rc = send_wait(&cfg, name, seconds);
out:
	agent_config_free(&cfg);
	return rc;
}
