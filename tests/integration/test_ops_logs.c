/* test_ops_logs.c — issue 17, "Versions" and "Logs fit journald and
 * syslog", with the real programs:
 *
 *   versions   `rete --version`, `rete-broker --version`, `rete-agent
 *              --version` exit 0 and print the release, protocol and store
 *              schema; `rete version --json` has the four fields; every
 *              --help mentions --version; `rete health` (text and --json)
 *              shows the broker's version
 *   journald   with JOURNAL_STREAM naming its stderr, every line of the
 *              broker and of an agent starts with <3>, <4>, <6> or <7> and
 *              carries no time nor program name; a coordinator's connection
 *              coming and going is debug (<7>), not info; 50 refused
 *              handshakes give a handful of lines, not 50, and once the
 *              minute is over one line saying how many were held back
 *              (the broker under libfaketime, whose clocks then jump a
 *              minute on; without it the test waits the minute)
 *   agent stop the agent says at a clean stop (SIGTERM) what it held back
 *              and had not said yet: the lines of a repeated warning (a
 *              fake broker sends 5 deliveries before any WELCOME: one
 *              warning, then "...: 4 more in the last minute" at the stop),
 *              and the refusals of its key since "the broker refused our
 *              key" (an agent left out of the directory, reconnecting every
 *              100 ms to 1 s: as many as its attempts, less the first and
 *              perhaps the last, in flight at the stop)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agents/agent/agent_db.h" /* AGENT_STORE_SCHEMA */
#include "itest.h"
#include "version.h"

#define NREFUSED 50

static const char *bin_dir(void)
{
	const char *b = getenv("RETE_BIN_DIR");
	return b && *b ? b : RETE_BIN_DIR;
}

static void test_versions(void **state)
{
	(void)state;
	const char *progs[] = {"rete", "rete-broker", "rete-agent"};
	for (size_t i = 0; i < 3; i++) {
		char *out = NULL, want[256];
		int rc = tu_run(&out, "%s/%s --version", bin_dir(), progs[i]);
		rete_version_text(want, sizeof(want), progs[i]);
		if (strcmp(progs[i], "rete-broker") != 0) /* and the agent store's */
			snprintf(want + strlen(want), sizeof(want) - strlen(want),
				 "agent store schema %d\n", AGENT_STORE_SCHEMA);
		if (rc != 0 || strcmp(out ? out : "", want) != 0)
			fprintf(stderr, "%s --version: exit %d\n%s", progs[i], rc, out ? out : "");
		assert_int_equal(rc, 0);
		assert_string_equal(out, want);
		free(out);
		/* and --help says that --version exists */
		rc = tu_run(&out, "%s/%s --help", bin_dir(), progs[i]);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "--version"));
		free(out);
	}

	char *out = NULL;
	int rc = tu_run(&out, "%s/rete version --json", bin_dir());
	assert_int_equal(rc, 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	if (!j)
		fprintf(stderr, "not JSON: %s\n%s\n", je.text, out);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 5);
	assert_string_equal(json_string_value(json_object_get(j, "version")), rete_version());
	json_t *commit = json_object_get(j, "commit");
	assert_true(json_is_string(commit) || json_is_null(commit));
	assert_int_equal(json_integer_value(json_object_get(j, "protocol")), RETE_PROTOCOL_VERSION);
	assert_int_equal(json_integer_value(json_object_get(j, "storeSchema")),
			 rete_version_store_schema());
	assert_int_equal(json_integer_value(json_object_get(j, "agentStoreSchema")),
			 AGENT_STORE_SCHEMA);
	json_decref(j);
	free(out);

	/* the plain form is --version's, and arguments are checked */
	rc = tu_run(&out, "%s/rete version", bin_dir());
	assert_int_equal(rc, 0);
	char want[256];
	rete_version_text(want, sizeof(want), "rete");
	snprintf(want + strlen(want), sizeof(want) - strlen(want), "agent store schema %d\n",
		 AGENT_STORE_SCHEMA);
	assert_string_equal(out, want);
	free(out);
	rc = tu_run(&out, "%s/rete version --bogus", bin_dir());
	assert_int_equal(rc, 2);
	free(out);
}

/* journal_env names the file path (created empty if missing) as
 * JOURNAL_STREAM would name a stream to journald: "NAME=DEV:INO". */
static void journal_env(const char *path, char *out, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	snprintf(out, n, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
}

/* count_lines counts the lines of path containing needle (all: NULL) whose
 * priority prefix is one of prios ("46": <4> and <6>; NULL: any). */
static int count_lines(const char *path, const char *needle, const char *prios)
{
	char *text = tu_read_file(path, NULL);
	int n = 0;
	for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (needle && !strstr(line, needle))
			continue;
		if (prios && !(line[0] == '<' && line[1] && strchr(prios, line[1])))
			continue;
		n++;
	}
	free(text);
	return n;
}

/* all_journal: every line of path has a priority prefix and no time nor
 * program name (journald adds both). */
static bool all_journal(const char *path, const char *program)
{
	char *text = tu_read_file(path, NULL);
	bool ok = text != NULL && *text;
	for (char *line = text, *nl; ok && line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		bool prefixed = strlen(line) >= 3 && line[0] == '<' && strchr("3467", line[1]) &&
				line[1] && line[2] == '>';
		/* "2026-12-06T07:01:02.345Z": a time at the start would be
		 * journald's second one */
		bool stamped = strlen(line) > 13 && line[7] == '-' && line[13] == 'T';
		bool named = prefixed && strncmp(line + 3, program, strlen(program)) == 0;
		if (!prefixed || stamped || named) {
			fprintf(stderr, "not a journald line: '%s'\n", line);
			ok = false;
		}
	}
	free(text);
	return ok;
}

/* wait_line waits (with a deadline) until path has a line containing needle. */
static bool wait_line_ms(const char *path, const char *needle, int ms)
{
	int64_t end = it_mono_ms() + ms;
	while (it_mono_ms() < end) {
		if (count_lines(path, needle, NULL) > 0)
			return true;
		it_nap(20);
	}
	fprintf(stderr, "no line '%s' in %s\n", needle, path);
	return false;
}

static bool wait_line(const char *path, const char *needle)
{
	return wait_line_ms(path, needle, it_wait_ms());
}

/* held_count: the N of the first "...: N more in the last minute" line of
 * path containing needle (-1: none). */
static long held_count(const char *path, const char *needle)
{
	char *text = tu_read_file(path, NULL);
	long n = -1;
	for (char *line = text, *nl; n < 0 && line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *more = strstr(line, " more in the last minute");
		char *colon = more ? strstr(line, "): ") : NULL;
		if (more && colon && strstr(line, needle))
			n = strtol(colon + 3, NULL, 10);
	}
	free(text);
	return n;
}

/* faketime_lib: libfaketime's multi-thread library (scripts/setup
 * installs faketime), or NULL when it is not installed. */
static const char *faketime_lib(void)
{
	static const char *const where[] = {
	    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
	    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
	    "/usr/lib/faketime/libfaketimeMT.so.1"};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		if (access(where[i], R_OK) == 0)
			return where[i];
	return NULL;
}

/* set_clock sets the clocks of a broker run under libfaketime to the real
 * ones plus offset ("+0", "+61"): its FAKETIME_TIMESTAMP_FILE, replaced in
 * one rename (read again at each clock call: FAKETIME_NO_CACHE). */
static void set_clock(const char *rc_file, const char *offset)
{
	char tmp[1400];
	tu_path(tmp, sizeof(tmp), "%s.tmp", rc_file);
	assert_int_equal(tu_write_file(tmp, offset, strlen(offset)), 0);
	assert_int_equal(rename(tmp, rc_file), 0);
}

static void test_journald(void **state)
{
	char env[128], path[1400];
	rete_msg m;
	unsetenv("JOURNAL_STREAM"); /* the test itself may run under systemd */
	it_net *n = it_net_new("opslogs", NULL);
	assert_non_null(n);
	/* it_teardown stops what runs, also after a failure */
	*state = n;
	/* family.mantova is left out of the directory: its key is refused */
	n->without[IT_FAMILY] = true;
	assert_int_equal(it_write_ini(n), 0);
	journal_env(n->log, env, sizeof(env));
	/* the broker under libfaketime when it is installed, its wall and
	 * monotonic clocks the real ones plus the offset in DIR/faketime.rc
	 * ("+0" until the minute of the refusals below is to end): the
	 * minute is the broker's, not waited out in real time (61 s of every
	 * CI pass). Without the library the minute is waited. */
	char rc_file[1300] = "";
	const char *ft = faketime_lib();
	if (ft != NULL) {
		tu_path(rc_file, sizeof(rc_file), "%s/faketime.rc", n->dir);
		set_clock(rc_file, "+0");
		/* JOURNAL_STREAM inherited: the broker's extra_env is the
		 * preload (it_broker_start_preloaded) */
		setenv("JOURNAL_STREAM", env + strlen("JOURNAL_STREAM="), 1);
		unsetenv("FAKETIME");
		setenv("FAKETIME_TIMESTAMP_FILE", rc_file, 1);
		setenv("FAKETIME_NO_CACHE", "1", 1);
		bool started = it_broker_start_preloaded(n, ft);
		unsetenv("FAKETIME_TIMESTAMP_FILE");
		unsetenv("FAKETIME_NO_CACHE");
		unsetenv("JOURNAL_STREAM");
		assert_true(started);
	} else {
		n->extra_env = env;
		assert_true(it_broker_start(n));
	}
	assert_true(wait_line(n->log, "<6>started: broker " IT_BROKER_ID));
	char v[128], want[256];
	snprintf(want, sizeof(want), "rete-broker %s, protocol %u, store schema %u",
		 rete_version_short(v, sizeof(v)), (unsigned)rete_version_protocol(),
		 (unsigned)rete_version_store_schema());
	assert_int_equal(count_lines(n->log, want, "6"), 1);

	/* a coordinator's call (what `rete monitor`, `health` and `report`
	 * do): its HELLO and its closed connection are debug lines */
	rete_wire *w = it_connect(n, IT_COORD);
	assert_non_null(w);
	assert_int_equal(rete_wire_hello(w, it_party_ids[IT_COORD], "test_ops_logs", &m), RETE_OK);
	Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
	assert_non_null(f);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	/* the broker finds the HELLO'd connection gone at its next PING
	 * (heartbeat 1s): its last line about this call */
	assert_true(wait_line(n->log, "<7>coord.mantova's connection is gone"));
	assert_true(count_lines(n->log, "the connection of coord.mantova closed", "7") >= 1);
	assert_true(count_lines(n->log, "hello from coord.mantova", "7") == 1);
	assert_int_equal(count_lines(n->log, "coord.mantova", "346"), 0);

	/* `rete health` shows the broker's version, text and JSON */
	char coord_ini[1300];
	snprintf(coord_ini, sizeof(coord_ini), "%s/coord.ini", n->dir);
	FILE *cf = fopen(coord_ini, "w");
	assert_non_null(cf);
	fprintf(cf,
		"[client]\nid = coord.mantova\nkey = keys/coord.mantova.key\nbroker = %s\n"
		"broker_key = keys/" IT_BROKER_ID ".pub\nevents = %s\ntime_zone = Europe/Rome\n"
		"timeout = 10s\n",
		n->listen, n->events);
	assert_int_equal(fclose(cf), 0);
	char *out = NULL;
	tu_run(&out, "%s/rete health -c %s", n->bin, coord_ini);
	snprintf(want, sizeof(want), "broker version: %s\n", v);
	if (!strstr(out, want))
		fprintf(stderr, "rete health:\n%s", out);
	assert_non_null(strstr(out, want));
	free(out);
	tu_run(&out, "%s/rete health -c %s --json 2>/dev/null", n->bin, coord_ini);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "version")), v);
	json_decref(j);
	free(out);

	/* 50 refused handshakes of the same key (an agent on an old key
	 * retrying, or someone hammering): a handful of lines, not 50 */
	int before = count_lines(n->log, NULL, "346");
	for (int i = 0; i < NREFUSED; i++) {
		w = it_connect(n, IT_FAMILY);
		assert_non_null(w);
		rete_err err = RETE_OK;
		int64_t end = it_mono_ms() + it_wait_ms();
		while (err != RETE_EREFUSED && it_mono_ms() < end) {
			f = NULL;
			err = rete_wire_recv(w, 100, &f, &m);
			if (f)
				rete__broker_frame__free_unpacked(f, NULL);
		}
		assert_int_equal(err, RETE_EREFUSED);
		rete_wire_close(&w);
	}
	/* the broker answered every one: its warnings were written by then
	 * (a warning is written at once, before the ZAP reply) */
	int refused = count_lines(n->log, "refused a connection from", "4");
	int after = count_lines(n->log, NULL, "346");
	fprintf(stderr, "%d refused handshakes: %d warning line(s), %d line(s) above debug\n",
		NREFUSED, refused, after - before);
	assert_true(refused >= 1 && refused <= 2);
	assert_true(after - before <= 5);
	/* when the minute is over the broker says how many it held back:
	 * at least the 49 other refusals (ZeroMQ may retry some handshakes).
	 * Not before the minute is over: nothing said yet (the broker's
	 * clocks still the real ones), then they move on 61 s. */
	assert_int_equal(count_lines(n->log, "refused connections from", NULL), 0);
	if (rc_file[0])
		set_clock(rc_file, "+61");
	assert_true(wait_line_ms(n->log, "<4>refused connections from",
				 (rc_file[0] ? 0 : it_scaled_ms(60000)) + it_wait_ms()));
	long held = held_count(n->log, "<4>refused connections from");
	fprintf(stderr, "the broker said: %ld more in the last minute\n", held);
	assert_true(held >= NREFUSED - 1);
	/* under -v each handshake still has its debug line, for whoever asks */
	assert_true(all_journal(n->log, "rete-broker"));

	/* the agent: the same prefixes, its id kept, no time nor program
	 * (under libfaketime the broker's clock is a minute ahead of the
	 * agent's now: whatever the agent says of that is a line too) */
	snprintf(path, sizeof(path), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	journal_env(path, env, sizeof(env));
	putenv(env);
	assert_true(it_agent_start(n, IT_SOCIAL));
	unsetenv("JOURNAL_STREAM");
	assert_true(wait_line(path, "<6>social.mantova: started"));
	assert_true(all_journal(path, "rete-agent"));
}

/* line_number: the N after prefix in the first line of text holding
 * prefix (-1: none). */
static long line_number(const char *text, const char *prefix)
{
	const char *at = text ? strstr(text, prefix) : NULL;
	return at ? strtol(at + strlen(prefix), NULL, 10) : -1;
}

static void test_agent_stop_counts(void **state)
{
	char path[1400];
	it_net *n = it_net_new("opslogs-stop", NULL);
	assert_non_null(n);
	/* it_teardown stops what runs, also after a failure */
	*state = n;
	n->without[IT_FAMILY] = true; /* its key is refused */
	assert_int_equal(it_write_ini(n), 0);
	assert_true(it_broker_start(n));

	/* the refusals of its key: said once, then counted; at the stop the
	 * count is said. Each attempt is a "connecting to" (-v); the next one
	 * comes after a refusal (the backoff), so all but perhaps the last
	 * were refused, and all but the first held back. */
	snprintf(path, sizeof(path), "%s/%s.log", n->dir, it_party_ids[IT_FAMILY]);
	assert_true(it_agent_start(n, IT_FAMILY));
	assert_true(it_wait_occurrences(path, "connecting to", 5, it_wait_ms()));
	assert_int_equal(it_stop(&n->agent_pid[IT_FAMILY], SIGTERM, it_wait_ms()), 0);
	char *text = tu_read_file(path, NULL);
	long attempts = (long)tu_occurrences(path, "connecting to");
	long held = line_number(text, "the broker still refused our key when the agent stopped: ");
	fprintf(stderr, "%ld attempts; the agent said at its stop: %ld refusals held back\n%s",
		attempts, held, held < 0 ? text : "");
	assert_int_equal(tu_occurrences(path, "the broker refused our key"), 1);
	assert_true(held >= attempts - 2 && held <= attempts - 1);
	free(text);
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	unlink(n->sock);

	/* a repeated warning: a fake broker (the broker's key, no WELCOME)
	 * sends 5 deliveries; a refusal for a message the agent does not
	 * know follows them, so that its line says all 5 were read */
	it_fake l;
	it_fake_open(&l, n, NULL);
	snprintf(path, sizeof(path), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	assert_true(it_agent_start(n, IT_SOCIAL));
	int64_t end = it_mono_ms() + it_wait_ms();
	while (l.peer_len == 0 && it_mono_ms() < end) { /* its HELLO, left unanswered */
		zmq_pollitem_t pi = {l.sock, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&pi, 1, 200) <= 0)
			continue;
		zmq_msg_t ident, body;
		zmq_msg_init(&ident);
		zmq_msg_init(&body);
		zmq_msg_recv(&ident, l.sock, 0);
		zmq_msg_recv(&body, l.sock, 0);
		Rete__ClientFrame *cf =
		    rete__client_frame__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
		if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_HELLO &&
		    zmq_msg_size(&ident) <= sizeof(l.peer)) {
			memcpy(l.peer, zmq_msg_data(&ident), zmq_msg_size(&ident));
			l.peer_len = zmq_msg_size(&ident);
		}
		if (cf != NULL)
			rete__client_frame__free_unpacked(cf, NULL);
		zmq_msg_close(&ident);
		zmq_msg_close(&body);
	}
	assert_true(l.peer_len > 0);
	for (int i = 0; i < 5; i++) {
		Rete__Deliver d = RETE__DELIVER__INIT;
		Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
		f.command_case = RETE__BROKER_FRAME__COMMAND_DELIVER;
		f.deliver = &d;
		it_fake_reply(l.sock, l.peer, l.peer_len, &f);
	}
	Rete__Receipt r = RETE__RECEIPT__INIT;
	r.message_id = "after-the-deliveries";
	r.error = RETE__ERROR_CODE__ERROR_CODE_INVALID;
	r.error_text = "the last frame";
	Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
	f.command_case = RETE__BROKER_FRAME__COMMAND_REFUSAL;
	f.refusal = &r;
	it_fake_reply(l.sock, l.peer, l.peer_len, &f);
	assert_true(wait_line(path, "refused a frame for after-the-deliveries"));
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	text = tu_read_file(path, NULL);
	held = line_number(text, "a delivery came before the directory; not acked: ");
	fprintf(stderr, "the agent said at its stop: %ld deliveries' warnings held back\n%s", held,
		held != 4 ? text : "");
	assert_int_equal(tu_occurrences(path, "a delivery came before the directory"), 2);
	assert_int_equal(held, 4);
	assert_non_null(strstr(text, "not acked: 4 more in the last minute"));
	free(text);
	it_fake_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_versions),
	    cmocka_unit_test_teardown(test_journald, it_teardown),
	    cmocka_unit_test_teardown(test_agent_stop_counts, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
