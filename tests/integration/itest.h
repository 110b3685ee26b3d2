/* itest.h — helpers shared by the reliability and hostile-peer integration
 * tests (test_hostile, test_full_disk, test_torture_short): a small network
 * in a temporary folder (keys, broker.ini, agent.ini files), the real
 * rete-broker and rete-agent started with fork/exec, a wire connection per
 * party, signed referrals and updates made in the test, the auditor's
 * `rete audit verify`, the metrics endpoints scraped with libcurl. The
 * lower-level pieces (keys, the broker process,
 * waiting for its PONG, frames, referrals) take plain folders, wires and
 * keys, so tests with a broker.ini of their own (test_broker,
 * test_monitor_broker, test_audit_remote) use them too.
 *
 * Header-only on purpose: CMake compiles each tests/integration/test_*.c
 * with tests/unit/testutil.c only, so everything here is `static inline`
 * (unused helpers cost nothing and raise no warning).
 *
 * The processes this starts can run under valgrind: with RETE_VALGRIND set
 * in the environment, every rete-broker and rete-agent is exec'd as
 * `valgrind --leak-check=full ... --log-file=DIR/valgrind-NAME-%p.log`
 * (the folder is kept so the reports can be read; see docs/reliability.md).
 * With RETE_KEEP set the test folder is kept too.
 *
 * Waiting is on events with deadlines (a PONG, a frame, a file), never a
 * sleep used as synchronisation; the only sleeps poll a child's exit or
 * pace a load, and say so.
 */
#ifndef RETE_ITEST_H
#define RETE_ITEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <lmdb.h>
#include <zmq.h>

#include "checkpoint.h"
#include "codec.h"
#include "duration.h"
#include "keys.h"
#include "merkle.h"
#include "testutil.h"
#include "wire.h"

#define IT_BROKER_ID "broker.mantova"
#define IT_ORIGIN    "rete.test/mantova"

/* The parties of the test network; agencies first. */
enum { IT_SOCIAL, IT_CPI, IT_ASST, IT_FAMILY, IT_COORD, IT_AUDIT, IT_NPARTIES };
static const char *const it_party_ids[IT_NPARTIES] = {"social.mantova", "cpi.mantova",
						      "asst.mantova",	"family.mantova",
						      "coord.mantova",	"audit.region"};
static const char *const it_party_kind[IT_NPARTIES] = {"social-services", "job-centre",	 "health",
						       "family-centre",	  "coordinator", "auditor"};
static const char *const it_party_services[IT_NPARTIES] = {
    "family-support",
    "employment-orientation, training-voucher",
    "family-counselling",
    "parenting-support",
    "",
    ""};
/* it_service: a service party p offers (what a referral to p asks for). */
static const char *const it_service[IT_NPARTIES] = {
    "family-support", "employment-orientation", "family-counselling", "parenting-support", "", ""};

typedef struct it_net {
	char *dir;
	char bin[1024];
	char ini[1200], log[1200], listen[1300], events[1300], sock[1200];
	char data[1200]; /* the store folder (absolute) */
	pid_t broker_pid;
	int broker_starts;
	pid_t agent_pid[IT_NPARTIES];
	int agent_starts[IT_NPARTIES];
	long agent_log_at[IT_NPARTIES]; /* size of its log when last started */
	rete_seckey *broker;
	rete_seckey *keys[IT_NPARTIES];
	/* broker.ini knobs (0/NULL = defaults) */
	unsigned window;	   /* delivery_window */
	const char *expiry;	   /* "5d" */
	const char *max_frame;	   /* "4MiB" */
	const char *cp_interval;   /* checkpoint_interval, "1s" */
	bool without[IT_NPARTIES]; /* parties left out of the directory */
	const char *extra_env;	   /* "NAME=VALUE" for the broker's environment */
} it_net;

static inline int64_t it_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* it_nap sleeps ms milliseconds: only to poll a child's exit or to pace a
 * load, never to wait for something that has an event. */
static inline void it_nap(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static inline int it_wait_ms(void)
{
	/* under valgrind everything is ~20 times slower */
	return getenv("RETE_VALGRIND") ? 240000 : 30000;
}

/* it_scaled_ms: a test's own deadline of ms, stretched like it_wait_ms
 * when the processes run under valgrind. */
static inline int it_scaled_ms(int ms)
{
	return getenv("RETE_VALGRIND") ? ms * 8 : ms;
}

/* it_wait_occurrences waits (ms, scaled) until the file at path holds
 * needle want times: polling a file another process appends to (a log,
 * the person index), which has no event to wait on. */
static inline bool it_wait_occurrences(const char *path, const char *needle, size_t want, int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (it_mono_ms() < end) {
		if (tu_occurrences(path, needle) >= want)
			return true;
		it_nap(50);
	}
	return tu_occurrences(path, needle) >= want;
}

/* it_hello_lines: how many HELLOs of agency id the broker's log at path
 * records, one line each: its info line "hello from ID (...)" or, within
 * the minute of the last one said, the -v broker's debug line "hello from
 * ID (...) (held back: ...)". Not the line that says the HELLOs held back
 * ("ID: 3 more HELLOs ... in the last minute ...; the latest HELLO, at T:
 * hello from ID (...)"), which holds the same words: a wait on the words
 * alone could end on that line instead of the HELLO it waits for. */
static inline size_t it_hello_lines(const char *path, const char *id)
{
	char info[128], debug[128];
	snprintf(info, sizeof(info), " info: hello from %s (", id);
	snprintf(debug, sizeof(debug), " debug: hello from %s (", id);
	return tu_occurrences(path, info) + tu_occurrences(path, debug);
}

/* it_wait_hellos waits (ms, scaled) until the broker's log at path records
 * want HELLOs of agency id (it_hello_lines). */
static inline bool it_wait_hellos(const char *path, const char *id, size_t want, int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (it_hello_lines(path, id) < want && it_mono_ms() < end)
		it_nap(50); /* polling a file another process appends to */
	return it_hello_lines(path, id) >= want;
}

/* it_audit_ini writes DIR/audit.ini, the auditor audit.region's client
 * configuration for n's broker, with extra lines (NULL: none) in its
 * [client] section; its path into path (len bytes). 0, or -1. */
static inline int it_audit_ini(const it_net *n, char *path, size_t len, const char *extra)
{
	char text[1500];
	tu_path(path, len, "%s/audit.ini", n->dir);
	snprintf(text, sizeof(text),
		 "[client]\nid = audit.region\nkey = keys/audit.region.key\nbroker = %s\n"
		 "broker_key = keys/" IT_BROKER_ID ".pub\n%s",
		 n->listen, extra ? extra : "");
	return tu_write_file(path, text, strlen(text));
}

/* it_write_ini writes broker.ini from the knobs of n. */
static inline int it_write_ini(it_net *n)
{
	FILE *f = fopen(n->ini, "w");
	if (!f)
		return -1;
	fprintf(f,
		"; written by itest.h\n[broker]\norigin = " IT_ORIGIN "\nid = " IT_BROKER_ID "\n"
		"key = keys/" IT_BROKER_ID ".key\nlisten = %s\nevents = %s\ndata = %s\n"
		"checkpoint_interval = %s\nexpiry = %s\nheartbeat = 1s\nmax_frame = %s\n"
		"verify_threads = 2\ndelivery_window = %u\n\n"
		"[limits]\nroutine = 5d\nurgent = 2d\nemergency = 4h\n\n"
		"[policy]\nroutes = social-services>job-centre, social-services>health, "
		"social-services>family-centre, job-centre>social-services, "
		"health>social-services, family-centre>social-services\n",
		n->listen, n->events, n->data, n->cp_interval ? n->cp_interval : "1s",
		n->expiry ? n->expiry : "5d", n->max_frame ? n->max_frame : "4MiB",
		n->window ? n->window : 64);
	for (int p = 0; p < IT_NPARTIES; p++) {
		if (n->without[p])
			continue;
		fprintf(f, "\n[agency %s]\nname = %s\nkind = %s\nkey = keys/%s.pub\n",
			it_party_ids[p], it_party_ids[p], it_party_kind[p], it_party_ids[p]);
		if (it_party_services[p][0])
			fprintf(f, "services = %s\n", it_party_services[p]);
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* it_ini_broker_add adds line (one or more "key = value" lines, no final
 * newline) at the top of the [broker] section of n's broker.ini as it is
 * now (it_write_ini's, or one edited since). */
static inline void it_ini_broker_add(it_net *n, const char *line)
{
	char *text = tu_read_file(n->ini, NULL);
	assert_non_null(text);
	char *at = strstr(text, "[broker]\n");
	assert_non_null(at);
	at += strlen("[broker]\n");
	size_t head = (size_t)(at - text), len = strlen(line), tail = strlen(at);
	char *out = malloc(head + len + 1 + tail);
	assert_non_null(out);
	memcpy(out, text, head);
	memcpy(out + head, line, len);
	out[head + len] = '\n';
	memcpy(out + head + len + 1, at, tail);
	assert_int_equal(tu_write_file(n->ini, out, head + len + 1 + tail), 0);
	free(out);
	free(text);
}

/* it_keys_make makes DIR/keys (0700) with a new key for IT_BROKER_ID in
 * *broker and one for each of the n ids in keys[i] (secret and public
 * files both); the caller frees the keys. RETE_OK, or the first error
 * (said on stderr). */
static inline rete_err it_keys_make(const char *dir, const char *const *ids, int n,
				    rete_seckey **broker, rete_seckey **keys)
{
	char kdir[1200];
	snprintf(kdir, sizeof(kdir), "%s/keys", dir);
	if (mkdir(kdir, 0700) != 0) {
		fprintf(stderr, "itest: mkdir %s: %s\n", kdir, strerror(errno));
		return RETE_EIO;
	}
	rete_msg m;
	rete_err err = rete_seckey_generate(broker, &m);
	if (err == RETE_OK)
		err = rete_keyfile_write(kdir, IT_BROKER_ID, *broker, false, &m);
	for (int p = 0; err == RETE_OK && p < n; p++) {
		err = rete_seckey_generate(&keys[p], &m);
		if (err == RETE_OK)
			err = rete_keyfile_write(kdir, ids[p], keys[p], false, &m);
	}
	if (err != RETE_OK)
		fprintf(stderr, "itest: keys in %s: %s\n", kdir, m.text);
	return err;
}

/* it_key_new makes a new key and writes it as DIR/keys/NAME.key and
 * NAME.pub; the key (the caller frees it). */
static inline rete_seckey *it_key_new(const char *dir, const char *name)
{
	char kdir[1200];
	rete_seckey *k = NULL;
	rete_msg m;
	snprintf(kdir, sizeof(kdir), "%s/keys", dir);
	assert_int_equal(rete_seckey_generate(&k, &m), RETE_OK);
	assert_int_equal(rete_keyfile_write(kdir, name, k, false, &m), RETE_OK);
	return k;
}

/* it_net_new makes the folder, the keys of every party and broker.ini
 * (data = DIR/store unless data is given). NULL on failure. */
static inline it_net *it_net_new(const char *tag, const char *data)
{
	it_net *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	const char *bin = getenv("RETE_BIN_DIR");
	snprintf(n->bin, sizeof(n->bin), "%s", bin && *bin ? bin : RETE_BIN_DIR);
	n->dir = tu_tmpdir(tag);
	if (!n->dir) {
		free(n);
		return NULL;
	}
	it_keys_make(n->dir, it_party_ids, IT_NPARTIES, &n->broker, n->keys);
	snprintf(n->ini, sizeof(n->ini), "%s/broker.ini", n->dir);
	snprintf(n->log, sizeof(n->log), "%s/broker.log", n->dir);
	snprintf(n->sock, sizeof(n->sock), "%s/broker.sock", n->dir);
	snprintf(n->listen, sizeof(n->listen), "ipc://%s", n->sock);
	snprintf(n->events, sizeof(n->events), "ipc://%s/events.sock", n->dir);
	if (data)
		snprintf(n->data, sizeof(n->data), "%s", data);
	else
		snprintf(n->data, sizeof(n->data), "%s/store", n->dir);
	if (it_write_ini(n) != 0) {
		fprintf(stderr, "itest: cannot write %s\n", n->ini);
		return n;
	}
	return n;
}

/* it_show_path prints a log file on stderr (on failure): its last `last`
 * bytes, or all of it when last is 0. */
static inline void it_show_path(const char *path, size_t last)
{
	size_t len = 0;
	char *text = tu_read_file(path, &len);
	if (text) {
		const char *from = last && len > last ? text + len - last : text;
		fprintf(stderr, "---- %s%s ----\n%s---- end ----\n", path,
			from != text ? " (last part)" : "", from);
		free(text);
	}
}

/* it_show prints the end of a log file of the test folder (on failure). */
static inline void it_show(const it_net *n, const char *name)
{
	char path[1300];
	snprintf(path, sizeof(path), "%s/%s", n->dir, name);
	it_show_path(path, 6000); /* the end is what matters */
}

/* it_spawn starts exe with args (NULL-terminated, args[0] = exe) with
 * stdout and stderr appended to DIR/LOGNAME.log, under valgrind when
 * RETE_VALGRIND is set. Returns the pid (or -1). */
static inline pid_t it_spawn(const char *dir, const char *logname, char *const args[],
			     const char *extra_env)
{
	char log[1300], vglog[1400];
	snprintf(log, sizeof(log), "%s/%s.log", dir, logname);
	snprintf(vglog, sizeof(vglog), "--log-file=%s/valgrind-%s-%%p.log", dir, logname);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	if (extra_env) {
		char kv[512];
		snprintf(kv, sizeof(kv), "%s", extra_env);
		char *eq = strchr(kv, '=');
		if (eq) {
			*eq = '\0';
			const char *old = getenv(kv);
			char val[1024];
			/* ASAN_OPTIONS and the like: append to what is there */
			if (old && *old)
				snprintf(val, sizeof(val), "%s:%s", old, eq + 1);
			else
				snprintf(val, sizeof(val), "%s", eq + 1);
			setenv(kv, val, 1);
		}
	}
	if (getenv("RETE_VALGRIND")) {
		char *vargs[64];
		int k = 0;
		vargs[k++] = "valgrind";
		vargs[k++] = "--leak-check=full";
		vargs[k++] = "--show-leak-kinds=definite,indirect";
		vargs[k++] = "--num-callers=30";
		vargs[k++] = vglog;
		for (int i = 0; args[i] && k < 62; i++)
			vargs[k++] = args[i];
		vargs[k] = NULL;
		execvp("valgrind", vargs);
		_exit(127);
	}
	execv(args[0], args);
	_exit(127);
}

/* it_broker_exec_flag starts BIN/rete-broker -c INI [FLAG] (with -v when
 * verbose; flag NULL or e.g. "--init", "--restore"), its output appended to
 * DIR/broker.log; the pid (or -1). */
static inline pid_t it_broker_exec_flag(const char *dir, const char *bin, const char *ini,
					bool verbose, const char *extra_env, const char *flag)
{
	char exe[1200];
	snprintf(exe, sizeof(exe), "%s/rete-broker", bin);
	char *args[6];
	int k = 0;
	args[k++] = exe;
	args[k++] = "-c";
	args[k++] = (char *)ini;
	if (flag)
		args[k++] = (char *)flag;
	if (verbose)
		args[k++] = "-v";
	args[k] = NULL;
	return it_spawn(dir, "broker", args, extra_env);
}

/* it_broker_exec is it_broker_exec_flag without a flag: the store must
 * exist (a new log needs --init). */
static inline pid_t it_broker_exec(const char *dir, const char *bin, const char *ini, bool verbose,
				   const char *extra_env)
{
	return it_broker_exec_flag(dir, bin, ini, verbose, extra_env, NULL);
}

/* it_exited: has pid exited (reaped here)? */
static inline bool it_reap(pid_t pid, int *status)
{
	int st = 0;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid && status)
		*status = st;
	return r == pid;
}

/* it_stop sends sig to *pid and waits (bounded) for it; SIGKILL when the
 * deadline passes. Returns the wait status, or -1 when it had to be
 * killed. *pid becomes 0. */
static inline int it_stop(pid_t *pid, int sig, int ms)
{
	if (*pid <= 0)
		return 0;
	kill(*pid, sig);
	int64_t end = it_mono_ms() + ms;
	int st = 0;
	while (it_mono_ms() < end) {
		if (it_reap(*pid, &st)) {
			*pid = 0;
			return st;
		}
		it_nap(5); /* polling a child's exit: no event to wait on */
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &st, 0);
	*pid = 0;
	return -1;
}

static inline rete_wire *it_connect(it_net *n, int who)
{
	rete_wire *w = NULL;
	rete_msg m;
	if (rete_wire_connect(&w, n->listen, &n->broker->pub, n->keys[who], &m) != RETE_OK)
		fprintf(stderr, "itest: connect as %s: %s\n", it_party_ids[who], m.text);
	return w;
}

/* it_ack_deliver acknowledges the delivery d on w as party `party`
 * holding key, signed as protocol 3 asks (rete_wire_ack_signed: the
 * origin is the delivered message's, which the broker checked is the
 * log's); error and text (may be NULL) say a refusal. RETE_OK, or the
 * wire's error (RETE_EDECODE when d's entry does not decode: nothing sent). */
static inline rete_err it_ack_deliver(rete_wire *w, const rete_seckey *key, const char *party,
				      const Rete__Deliver *d, Rete__ErrorCode error,
				      const char *text)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, d->log_entry.len, d->log_entry.data);
	if (le == NULL)
		return RETE_EDECODE;
	Rete__Message *msg = NULL;
	rete_err err =
	    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &msg, NULL);
	if (err == RETE_OK)
		err = rete_wire_ack_signed(w, key, msg->origin, party, d->log_entry.data,
					   d->log_entry.len, le->index, error, text, NULL);
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	return err;
}

/* it_recv_acking waits for the next frame of kind `kind` (or a refusal),
 * dropping others; with ack, every DELIVER that arrives meanwhile (the one
 * returned too) is acked, signed with ack (party ack_party's key), its
 * index in *acked (may be NULL). NULL at the deadline; the caller frees the
 * frame. */
static inline Rete__BrokerFrame *it_recv_acking(rete_wire *w, int kind, int ms,
						const rete_seckey *ack, const char *ack_party,
						uint64_t *acked)
{
	int64_t end = it_mono_ms() + ms;
	for (;;) {
		int left = (int)(end - it_mono_ms());
		if (left <= 0)
			return NULL;
		Rete__BrokerFrame *f = NULL;
		rete_err err = rete_wire_recv(w, left, &f, NULL);
		if (err == RETE_ETIMEDOUT || err == RETE_EREFUSED)
			return NULL;
		if (err != RETE_OK)
			continue;
		if (ack && f->command_case == RETE__BROKER_FRAME__COMMAND_DELIVER) {
			Rete__LogEntry *le = rete__log_entry__unpack(
			    NULL, f->deliver->log_entry.len, f->deliver->log_entry.data);
			if (le != NULL) {
				it_ack_deliver(w, ack, ack_party, f->deliver, 0, NULL);
				if (acked)
					*acked = le->index;
				rete__log_entry__free_unpacked(le, NULL);
			}
		}
		if ((int)f->command_case == kind ||
		    f->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL)
			return f;
		rete__broker_frame__free_unpacked(f, NULL);
	}
}

/* it_recv_kind waits for the next frame of kind `kind` (or a refusal),
 * dropping others; NULL at the deadline. */
static inline Rete__BrokerFrame *it_recv_kind(rete_wire *w, int kind, int ms)
{
	return it_recv_acking(w, kind, ms, NULL, NULL, NULL);
}

/* it_ping_ready pings the broker over w until it answers (true) or the
 * deadline passes or, when pid is not NULL, the broker *pid exits (reaped
 * here, *pid becomes 0): false. */
static inline bool it_ping_ready(rete_wire *w, pid_t *pid, int ms)
{
	int64_t end = it_mono_ms() + ms;
	bool ok = false;
	while (!ok && it_mono_ms() < end) {
		int st;
		if (pid && *pid > 0 && it_reap(*pid, &st)) {
			*pid = 0;
			break;
		}
		rete_wire_ping(w, 7, NULL);
		Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_PONG, 250);
		if (f) {
			ok = f->command_case == RETE__BROKER_FRAME__COMMAND_PONG;
			rete__broker_frame__free_unpacked(f, NULL);
		}
	}
	return ok;
}

/* it_broker_ready pings the broker as the coordinator until it answers
 * (true) or the deadline passes / the broker exits (false). */
static inline bool it_broker_ready(it_net *n, int ms)
{
	rete_wire *w = it_connect(n, IT_COORD);
	if (!w)
		return false;
	bool ok = it_ping_ready(w, &n->broker_pid, ms);
	rete_wire_close(&w);
	return ok;
}

/* it_broker_start_flag starts rete-broker with flag (NULL, "--init",
 * "--restore": after a restore of the store, docs/operations.md), the
 * socket file of an earlier, killed one removed first, and waits until it
 * answers a PING. */
static inline bool it_broker_start_flag(it_net *n, const char *flag)
{
	unlink(n->sock);
	n->broker_pid = it_broker_exec_flag(n->dir, n->bin, n->ini, true, n->extra_env, flag);
	n->broker_starts++;
	if (n->broker_pid <= 0)
		return false;
	bool ok = it_broker_ready(n, it_wait_ms());
	if (!ok)
		it_show(n, "broker.log");
	return ok;
}

/* it_broker_start is it_broker_start_flag with --init on the first start
 * (which creates the log) and no flag after. */
static inline bool it_broker_start(it_net *n)
{
	return it_broker_start_flag(n, n->broker_starts == 0 ? "--init" : NULL);
}

/* it_broker_start_preloaded starts the broker as it_broker_start does,
 * with the library `shim` preloaded (tests/shim/), in a sanitizer build
 * too: AddressSanitizer's runtime is not first in a preloaded process, and
 * its check of that is turned off for the broker alone. */
static inline bool it_broker_start_preloaded(it_net *n, const char *shim)
{
	char preload[1300], asan_before[512] = "", asan_now[600];
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", shim);
	const char *asan = getenv("ASAN_OPTIONS");
	if (asan)
		snprintf(asan_before, sizeof(asan_before), "%s", asan);
	snprintf(asan_now, sizeof(asan_now), "%s%sverify_asan_link_order=0", asan_before,
		 asan_before[0] ? ":" : "");
	setenv("ASAN_OPTIONS", asan_now, 1);
	const char *env_before = n->extra_env;
	n->extra_env = preload;
	bool started = it_broker_start(n);
	n->extra_env = env_before;
	if (asan)
		setenv("ASAN_OPTIONS", asan_before, 1);
	else
		unsetenv("ASAN_OPTIONS");
	return started;
}

/* it_broker_refused starts the broker on ini with flag (may be NULL) and expects
 * it to exit 2 on its own before it serves anything; its log, from the
 * start of this run, must hold every one of the words (NULL-terminated).
 * (cmocka's fail_msg: for tests that include cmocka.h before this.) */
static inline void it_broker_refused(it_net *n, const char *ini, const char *flag, ...)
{
	struct stat st;
	long from = stat(n->log, &st) == 0 ? (long)st.st_size : 0;
	pid_t pid = it_broker_exec_flag(n->dir, n->bin, ini, false, NULL, flag);
	assert_true(pid > 0);
	int status = 0;
	int64_t end = it_mono_ms() + it_wait_ms();
	bool gone = false;
	while (!(gone = it_reap(pid, &status)) && it_mono_ms() < end)
		it_nap(20); /* polling a child's exit */
	if (!gone) {
		it_stop(&pid, SIGKILL, 5000);
		it_show(n, "broker.log");
		fail_msg("the broker on %s %s did not refuse to start: it is still running", ini,
			 flag ? flag : "");
	}
	size_t len = 0;
	char *log = tu_read_file(n->log, &len);
	assert_non_null(log);
	const char *mine = (size_t)from <= len ? log + from : log;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 2) {
		free(log);
		it_show(n, "broker.log");
		fail_msg("the refused broker ended with status 0x%x, not exit 2", status);
	}
	va_list ap;
	va_start(ap, flag);
	for (const char *w; (w = va_arg(ap, const char *)) != NULL;)
		if (!strstr(mine, w)) {
			fprintf(stderr, "---- broker.log of this run ----\n%s----\n", mine);
			va_end(ap);
			free(log);
			fail_msg("the refusal does not say '%s'", w);
		}
	va_end(ap);
	free(log);
}

/* --- a broker run from a broker.ini the test writes itself ------------------ */

/* it_home: the folder of a test that writes its own broker.ini
 * (test_broker, test_monitor_broker, test_audit_remote): the keys, the
 * paths the broker uses and its process. Owns dir and the keys. */
#define IT_HOME_KEYS 8
typedef struct it_home {
	char *dir;
	char ini[512], log[512], listen[300], events[300];
	pid_t pid;
	rete_seckey *broker;
	const char *const *ids;		 /* the parties (borrowed) */
	rete_seckey *keys[IT_HOME_KEYS]; /* keys[i] is ids[i]'s */
	rete_wire *w[IT_HOME_KEYS];	 /* w[i] connected as ids[i] (it_home_connect) */
	int nkeys;
	int starts; /* it_home_start calls so far (the first passes --init) */
} it_home;

/* it_home_open makes a fresh folder (named after tag) with keys for the
 * broker and for ids[0..n) (it_keys_make) and sets the paths: DIR/broker.ini
 * (not written), DIR/broker.log, ipc://DIR/broker.sock and
 * ipc://DIR/events.sock. RETE_OK, or an error said on stderr; close with
 * it_home_close either way. */
static inline rete_err it_home_open(it_home *h, const char *tag, const char *const *ids, int n)
{
	memset(h, 0, sizeof(*h));
	if (n > IT_HOME_KEYS)
		return RETE_EINVAL;
	h->nkeys = n;
	h->ids = ids;
	h->dir = tu_tmpdir(tag);
	if (!h->dir)
		return RETE_EIO;
	snprintf(h->ini, sizeof(h->ini), "%s/broker.ini", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/broker.log", h->dir);
	snprintf(h->listen, sizeof(h->listen), "ipc://%s/broker.sock", h->dir);
	snprintf(h->events, sizeof(h->events), "ipc://%s/events.sock", h->dir);
	return it_keys_make(h->dir, ids, n, &h->broker, h->keys);
}

/* it_home_connect connects h->w[i] as ids[i]; RETE_OK or the wire's error
 * (said on stderr). */
static inline rete_err it_home_connect(it_home *h, int i)
{
	rete_msg m;
	rete_err err = rete_wire_connect(&h->w[i], h->listen, &h->broker->pub, h->keys[i], &m);
	if (err != RETE_OK)
		fprintf(stderr, "itest: connect as %s: %s\n", h->ids[i], m.text);
	return err;
}

/* it_home_start starts RETE_BIN_DIR/rete-broker on h->ini (with -v when
 * verbose; --init on the first start, which creates the log); false when
 * it could not be started. */
static inline bool it_home_start(it_home *h, bool verbose)
{
	h->pid = it_broker_exec_flag(h->dir, RETE_BIN_DIR, h->ini, verbose, NULL,
				     h->starts++ == 0 ? "--init" : NULL);
	return h->pid > 0;
}

/* it_home_ready pings the broker over w until it answers (true); false at
 * the deadline or when it exits, its log shown. */
static inline bool it_home_ready(it_home *h, rete_wire *w, int ms)
{
	bool ok = it_ping_ready(w, &h->pid, ms);
	if (!ok)
		it_show_path(h->log, 0);
	return ok;
}

/* it_home_stop stops the broker with SIGTERM and reaps it; one that has not
 * exited after ms is killed, and said so. Returns it_stop's status. */
static inline int it_home_stop(it_home *h, int ms)
{
	int st = it_stop(&h->pid, SIGTERM, ms);
	if (st == -1)
		fprintf(stderr, "warning: rete-broker did not exit on SIGTERM; killed\n");
	return st;
}

/* it_home_close closes the connections, stops a broker still running
 * (it_home_stop, it_wait_ms()), shows its log when RETE_TEST_SHOW_LOG is
 * set, frees the keys and removes the folder (kept, and named, with
 * RETE_KEEP or RETE_VALGRIND: the valgrind reports are in it). */
static inline void it_home_close(it_home *h)
{
	for (int i = 0; i < IT_HOME_KEYS; i++)
		rete_wire_close(&h->w[i]);
	it_home_stop(h, it_wait_ms());
	if (h->dir && getenv("RETE_TEST_SHOW_LOG"))
		it_show_path(h->log, 0);
	rete_seckey_free(&h->broker);
	for (int i = 0; i < h->nkeys; i++)
		rete_seckey_free(&h->keys[i]);
	if (h->dir && (getenv("RETE_KEEP") || getenv("RETE_VALGRIND")))
		fprintf(stderr, "itest: kept %s\n", h->dir);
	else if (h->dir)
		tu_rmrf(h->dir);
	free(h->dir);
	h->dir = NULL;
}

/* it_write_agent_ini_ex writes DIR/agents/ID/agent.ini (spool and data in
 * that folder; fast resubmit and reconnects for tests), with extra (NULL
 * or more "key = value\n" lines of [agent]) at its end. */
/* it_agent_ini_text: the agent.ini of party p talking to the broker at
 * broker, for a folder DIR/agents/NAME (keys two levels up), then extra. */
static inline void it_agent_ini_text(char *text, size_t len, int p, const char *broker,
				     const char *extra)
{
	snprintf(text, len,
		 "[agent]\nid = %s\nkey = ../../keys/%s.key\nbroker = %s\n"
		 "broker_key = ../../keys/" IT_BROKER_ID ".pub\nspool = spool\ndata = data\n"
		 "resubmit = 2s\nreconnect_min = 100ms\nreconnect_max = 1s\nwitness = 2s\n"
		 "poll = 1s\nheartbeat = 2s\n%s",
		 it_party_ids[p], it_party_ids[p], broker, extra ? extra : "");
}

static inline void it_write_agent_ini_ex(it_net *n, int p, const char *extra)
{
	char path[1300], text[4096];
	snprintf(path, sizeof(path), "%s/agents", n->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/agents/%s", n->dir, it_party_ids[p]);
	mkdir(path, 0755);
	it_agent_ini_text(text, sizeof(text), p, n->listen, extra);
	snprintf(path, sizeof(path), "%s/agents/%s/agent.ini", n->dir, it_party_ids[p]);
	tu_write_file(path, text, strlen(text));
}

static inline void it_write_agent_ini(it_net *n, int p)
{
	it_write_agent_ini_ex(n, p, NULL);
}

/* it_spool: DIR/agents/ID/spool/SUB into buf. */
static inline char *it_spool(const it_net *n, int p, const char *sub, char *buf, size_t len)
{
	snprintf(buf, len, "%s/agents/%s/spool/%s", n->dir, it_party_ids[p], sub);
	return buf;
}

/* it_set_age_s sets path's times to seconds ago. */
static inline void it_set_age_s(const char *path, long seconds)
{
	assert_int_equal(tu_age_file(path, seconds), 0);
}

/* it_set_age sets path's times to days ago. */
static inline void it_set_age(const char *path, int days)
{
	it_set_age_s(path, (long)days * 86400);
}

/* it_outbox_put_aged writes text into party p's outbox as name, through a
 * hidden temporary name (.NAME.tmp) renamed in: the agent sees it whole.
 * With age_s > 0 the file's times are set age_s seconds back before the
 * rename (a file written a moment before it was moved in): past the 2 s the
 * agent gives a file that just changed (OUT_SETTLE_MS, for writers that
 * write in place), it is taken at the agent's first look. */
static inline void it_outbox_put_aged(const it_net *n, int p, const char *name, const char *text,
				      int age_s)
{
	char dir[1300], tmp[1600], dst[1600];
	it_spool(n, p, "outbox", dir, sizeof(dir));
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	assert_int_equal(tu_write_file(tmp, text, strlen(text)), 0);
	if (age_s > 0)
		it_set_age_s(tmp, age_s);
	assert_int_equal(rename(tmp, dst), 0);
}

/* it_outbox_put is it_outbox_put_aged of a file just written. */
static inline void it_outbox_put(const it_net *n, int p, const char *name, const char *text)
{
	it_outbox_put_aged(n, p, name, text, 0);
}

/* it_outbox_referral_aged writes referral `id` (the message id too) from
 * party `from` to party `to`, for a service `to` offers, into the
 * sender's outbox as ID.json (it_outbox_put_aged, age_s). */
static inline void it_outbox_referral_aged(it_net *n, int from, int to, const char *id, int age_s)
{
	json_t *j = json_pack("{s:s,s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:s},"
			      "s:{s:{s:s},s:s}}",
			      "id", id, "operator", "staffId", "as-0042", "role", "social-worker",
			      "recipient", it_party_ids[to], "caseId", "mn-2026-0173", "referral",
			      "service", it_service[to], "priority", "routine", "reasonCode",
			      "long-term-unemployment", "consent", "basis", "consent", "givenAt",
			      "2026-11-20T09:30:00Z", "reference", "CONS-2026-0412", "ageBand",
			      "adult", "private", "person", "name", "Maria Rossi", "reason",
			      "Unemployed since March 2026.");
	assert_non_null(j);
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	assert_non_null(text);
	char name[200];
	snprintf(name, sizeof(name), "%s.json", id);
	it_outbox_put_aged(n, from, name, text, age_s);
	free(text);
}

/* it_outbox_referral is it_outbox_referral_aged of a file just written. */
static inline void it_outbox_referral(it_net *n, int from, int to, const char *id)
{
	it_outbox_referral_aged(n, from, to, id, 0);
}

/* it_agent_start_ex starts rete-agent for party p (its spool folders are
 * made first, so files may be dropped at once), extra as in
 * it_write_agent_ini_ex. */
static inline bool it_agent_start_ex(it_net *n, int p, const char *extra)
{
	char exe[1200], ini[1300], path[1300];
	it_write_agent_ini_ex(n, p, extra);
	mkdir(it_spool(n, p, "", path, sizeof(path)), 0755);
	static const char *const subs[] = {"outbox", "sent", "failed", "inbox"};
	for (int i = 0; i < 4; i++)
		mkdir(it_spool(n, p, subs[i], path, sizeof(path)), 0755);
	snprintf(exe, sizeof(exe), "%s/rete-agent", n->bin);
	snprintf(ini, sizeof(ini), "%s/agents/%s/agent.ini", n->dir, it_party_ids[p]);
	char *args[] = {exe, "-c", ini, "-v", NULL};
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s.log", n->dir, it_party_ids[p]);
	n->agent_log_at[p] = stat(path, &st) == 0 ? (long)st.st_size : 0;
	n->agent_pid[p] = it_spawn(n->dir, it_party_ids[p], args, NULL);
	n->agent_starts[p]++;
	return n->agent_pid[p] > 0;
}

static inline bool it_agent_start(it_net *n, int p)
{
	return it_agent_start_ex(n, p, NULL);
}

/* it_net_free stops what still runs (SIGTERM; the exit statuses are
 * returned through *bad: true when one did not stop cleanly with 0), frees
 * the keys and removes the folder unless RETE_KEEP / RETE_VALGRIND is set
 * or keep is true. */
static inline void it_net_free(it_net **np, bool keep, bool *bad)
{
	it_net *n = *np;
	if (!n)
		return;
	int wait = it_wait_ms();
	for (int p = 0; p < IT_NPARTIES; p++)
		if (n->agent_pid[p] > 0) {
			int st = it_stop(&n->agent_pid[p], SIGTERM, wait);
			if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				fprintf(stderr, "itest: %s did not stop cleanly (status %d)\n",
					it_party_ids[p], st);
				if (bad)
					*bad = true;
			}
		}
	if (n->broker_pid > 0) {
		int st = it_stop(&n->broker_pid, SIGTERM, wait);
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "itest: the broker did not stop cleanly (status %d)\n", st);
			it_show(n, "broker.log");
			if (bad)
				*bad = true;
		}
	}
	rete_seckey_free(&n->broker);
	for (int p = 0; p < IT_NPARTIES; p++)
		rete_seckey_free(&n->keys[p]);
	if (keep || getenv("RETE_KEEP") || getenv("RETE_VALGRIND"))
		fprintf(stderr, "itest: kept %s\n", n->dir);
	else
		tu_rmrf(n->dir);
	free(n->dir);
	free(n);
	*np = NULL;
}

/* it_teardown is the cmocka teardown of a test whose state is the it_net
 * it made (*state, NULL when it failed before): it_net_free, *state set to
 * NULL; -1 (a failed test) when a process did not stop cleanly. */
static inline int it_teardown(void **state)
{
	it_net *n = *state;
	bool bad = false;
	it_net_free(&n, false, &bad);
	*state = NULL;
	return bad ? -1 : 0;
}

#ifdef CLONE_NEWNS /* <sched.h> with _GNU_SOURCE */
#include <sys/mount.h>
#include <sys/statvfs.h>

/* A tmpfs of the test's own, for a store on a full file system: mounted at
 * BASE/disk (BASE a new temporary folder) in a mount namespace of the
 * test's own (unshare(CLONE_NEWNS), every mount made private: nothing is
 * seen outside the test, and the processes it starts inherit it). */
typedef struct it_disk {
	it_net *n; /* the network of the test, stopped first at the teardown */
	char *base;
	char mnt[1200];
	bool mounted;
} it_disk;

/* it_disk_mount makes *state a new it_disk with a tmpfs of size ("4m")
 * mounted. false, said on stderr with the test's name, where mount
 * namespaces are not allowed (not root, no CAP_SYS_ADMIN, a container
 * forbidding unshare or mount): the test is skipped, not failed. */
static inline bool it_disk_mount(void **state, const char *test, const char *size)
{
	const char *no = NULL;
	if (unshare(CLONE_NEWNS) != 0)
		no = "cannot make a mount namespace (unshare";
	else if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		no = "cannot make mounts private (mount";
	it_disk *d = NULL;
	if (no == NULL) {
		char opts[64];
		*state = d = calloc(1, sizeof(*d));
		assert_non_null(d);
		d->base = tu_tmpdir("disk");
		assert_non_null(d->base);
		snprintf(d->mnt, sizeof(d->mnt), "%s/disk", d->base);
		snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
		if (mkdir(d->mnt, 0700) != 0 ||
		    mount("tmpfs", d->mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
			no = "cannot mount a tmpfs (mount";
		d->mounted = no == NULL;
	}
	if (no != NULL)
		fprintf(stderr, "%s: SKIPPED: %s: %s); it needs root or CAP_SYS_ADMIN\n", test, no,
			strerror(errno));
	return no == NULL;
}

/* it_disk_teardown is the cmocka teardown of a test whose state is the
 * it_disk it_disk_mount made: the network stopped (as it_teardown), the
 * tmpfs unmounted, the folders removed. */
static inline int it_disk_teardown(void **state)
{
	it_disk *d = *state;
	bool bad = false;
	if (d == NULL)
		return 0;
	it_net_free(&d->n, false, &bad);
	if (d->mounted)
		umount2(d->mnt, MNT_DETACH);
	if (d->base != NULL) {
		tu_rmrf(d->base);
		free(d->base);
	}
	free(d);
	*state = NULL;
	return bad ? -1 : 0;
}

/* it_disk_fill_up fills the file system of mnt to its last byte with the
 * file path (made or emptied first; the caller removes it to make room
 * again), and fails the test unless 0 bytes are left free then. */
static inline void it_disk_fill_up(const char *mnt, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static char block[4096];
	for (size_t chunk = sizeof(block); chunk > 0; chunk /= 2)
		while (write(fd, block, chunk) == (ssize_t)chunk)
			;
	close(fd);
	struct statvfs sv;
	assert_int_equal(statvfs(mnt, &sv), 0);
	assert_int_equal(sv.f_bavail, 0);
}
#endif

/* --- messages signed in the test ------------------------------------------ */

typedef struct it_msg {
	rete_buf signed_bytes;
	rete_buf sealed;
	char id[80];
} it_msg;

static inline void it_msg_free(it_msg *o)
{
	rete_buf_free(&o->signed_bytes);
	rete_buf_free(&o->sealed);
}

/* it_ref: what it_referral_sign puts in a referral. Every field is
 * borrowed for the call. */
typedef struct it_ref {
	const char *id;
	const char *sender;	   /* the message's sender */
	const rete_seckey *signer; /* the key that signs it */
	const char *recipient;
	const rete_pubkey *seal_to; /* the sealed part is sealed to this key */
	const char *service;
	const char *origin;
	bool no_consent; /* leave the consent out */
	size_t pad;	 /* bytes of notes in the sealed part (to make it big) */
} it_ref;

/* it_referral_sign signs the referral r describes (the same person,
 * reason, operator and consent every time) into o, which the caller frees
 * with it_msg_free. RETE_OK or the codec's error. */
static inline rete_err it_referral_sign(const it_ref *r, it_msg *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", r->id);
	Rete__Person person;
	rete__person__init(&person);
	person.name = "Mario Rossi";
	Rete__Private priv;
	rete__private__init(&priv);
	priv.person = &person;
	priv.reason = "needs help finding work";
	char *notes = NULL;
	if (r->pad) {
		notes = malloc(r->pad + 1);
		if (!notes)
			return RETE_ENOMEM;
		for (size_t i = 0; i < r->pad; i++)
			notes[i] =
			    (char)('a' + (i * 7 + r->pad) % 26); /* compresses badly enough */
		notes[r->pad] = '\0';
		priv.notes = notes;
	}
	uint8_t hash[RETE_HASH_LEN];
	rete_msg m;
	rete_err err = rete_seal(&priv, r->seal_to, &o->sealed, hash, &m);
	free(notes);
	if (err != RETE_OK)
		return err;
	Rete__Operator op;
	rete__operator__init(&op);
	op.staff_id = "as-042";
	op.role = "social-worker";
	Rete__Consent cs;
	rete__consent__init(&cs);
	cs.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT;
	cs.given_at = rete_now_ms() - 86400000;
	cs.reference = "form-17";
	Rete__Referral ref;
	rete__referral__init(&ref);
	ref.service = (char *)r->service;
	ref.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	ref.reason_code = "unemployment";
	ref.consent = r->no_consent ? NULL : &cs;
	ref.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	ref.private_sha256.data = hash;
	ref.private_sha256.len = RETE_HASH_LEN;
	Rete__Message msg;
	rete__message__init(&msg);
	msg.id = o->id;
	msg.sender = (char *)r->sender;
	msg.operator_ = &op;
	msg.recipient = (char *)r->recipient;
	msg.case_id = "case-7";
	msg.created_at = rete_now_ms();
	msg.origin = (char *)r->origin;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &ref;
	return rete_message_sign(&msg, r->signer, &o->signed_bytes, &m);
}

/* it_referral_ex signs a referral from `from` to `to` with id, for origin
 * (IT_ORIGIN when NULL), signed by signer (from's key when NULL) naming
 * sender (from's id when NULL); its sealed part carries `pad` bytes of
 * notes (to make entries big). RETE_OK or the codec's error. */
static inline rete_err it_referral_ex(it_net *n, int from, int to, const char *id,
				      const char *origin, const rete_seckey *signer,
				      const char *sender, size_t pad, it_msg *o)
{
	it_ref r = {.id = id,
		    .sender = sender ? sender : it_party_ids[from],
		    .signer = signer ? signer : n->keys[from],
		    .recipient = it_party_ids[to],
		    .seal_to = &n->keys[to]->pub,
		    .service = it_service[to],
		    .origin = origin ? origin : IT_ORIGIN,
		    .pad = pad};
	return it_referral_sign(&r, o);
}

static inline rete_err it_referral(it_net *n, int from, int to, const char *id, it_msg *o)
{
	return it_referral_ex(n, from, to, id, NULL, NULL, NULL, 0, o);
}

static inline rete_err it_send(rete_wire *w, const it_msg *o)
{
	return rete_wire_submit(w, o->signed_bytes.data, o->signed_bytes.len, o->sealed.data,
				o->sealed.len, NULL);
}

/* it_submit sends o and waits for its RECEIPT (or a refusal); NULL at the
 * deadline. Caller frees. */
static inline Rete__BrokerFrame *it_submit(rete_wire *w, const it_msg *o, int ms)
{
	if (it_send(w, o) != RETE_OK)
		return NULL;
	return it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_RECEIPT, ms);
}

/* it_answer: the Receipt of a RECEIPT or REFUSAL frame. */
static inline const Rete__Receipt *it_answer(const Rete__BrokerFrame *f)
{
	return f->command_case == RETE__BROKER_FRAME__COMMAND_RECEIPT ? f->receipt : f->refusal;
}

/* it_update_msg initialises msg as update u, id, by op, to recipient (all
 * borrowed: they must outlive msg); its sender, origin and case are
 * it_sign_send's to set. */
static inline void it_update_msg(Rete__Message *msg, const char *id, Rete__Operator *op,
				 const char *recipient, Rete__ReferralUpdate *u)
{
	rete__message__init(msg);
	msg->id = (char *)id;
	msg->operator_ = op;
	msg->recipient = (char *)recipient;
	msg->body_case = RETE__MESSAGE__BODY_UPDATE;
	msg->update = u;
}

/* it_sign_send sets msg's sender, origin, case_id and created_at (now),
 * signs it with key and submits it over w with its sealed part (NULL, 0:
 * none). RETE_OK, or the codec's or the wire's error. */
static inline rete_err it_sign_send(rete_wire *w, Rete__Message *msg, const char *sender,
				    const char *origin, const char *case_id, const rete_seckey *key,
				    const uint8_t *sealed, size_t sealed_len)
{
	rete_buf sb = {0};
	rete_msg m = {{0}};
	msg->sender = (char *)sender;
	msg->origin = (char *)origin;
	msg->case_id = (char *)case_id;
	msg->created_at = rete_now_ms();
	rete_err err = rete_message_sign(msg, key, &sb, &m);
	if (err == RETE_OK)
		err = rete_wire_submit(w, sb.data, sb.len, sealed, sealed_len, &m);
	if (err != RETE_OK)
		fprintf(stderr, "itest: sending %s: %s\n", msg->id, m.text);
	rete_buf_free(&sb);
	return err;
}

/* it_accepted: is f (NULL when nothing came: then the log at log_path is
 * shown) an answer without error? A refusal is said on stderr, naming
 * what. Frees f. */
static inline bool it_accepted(Rete__BrokerFrame *f, const char *what, const char *log_path)
{
	if (!f) {
		fprintf(stderr, "no answer for %s\n", what);
		it_show_path(log_path, 0);
		return false;
	}
	const Rete__Receipt *r = it_answer(f);
	if (r->error)
		fprintf(stderr, "%s refused: %s\n", what, r->error_text);
	bool ok = r->error == 0;
	rete__broker_frame__free_unpacked(f, NULL);
	return ok;
}

/* it_entry_leaf: the RFC 6962 leaf hash of LogEntry{index, logged_at,
 * signed_message = sm}, the entry the broker logs for a submission. */
static inline void it_entry_leaf(uint8_t out[RETE_MERKLE_HASH], uint64_t index, int64_t logged_at,
				 const ProtobufCBinaryData *sm)
{
	Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
	le.index = index;
	le.logged_at = logged_at;
	le.signed_message = *sm;
	size_t n = rete__log_entry__get_packed_size(&le);
	uint8_t *b = malloc(n ? n : 1);
	assert_non_null(b);
	rete__log_entry__pack(&le, b);
	rete_merkle_leaf_hash(out, b, n);
	free(b);
}

/* it_receipt_verify checks an acceptance receipt of protocol 3 as an agent
 * does: its checkpoint note verifies with broker under key name origin and
 * names that origin, index < the note's size, and the inclusion proof leads
 * from the leaf of (index, logged_at, sm) to the note's root. With sm NULL
 * (the submitted bytes not at hand) the proof is checked for its length
 * only. Returns the index, -1 when f is a refusal or any check fails (said
 * on stderr); *cp (may be NULL) gets the checkpoint. */
static inline int64_t it_receipt_verify(const Rete__BrokerFrame *f, const rete_pubkey *broker,
					const char *origin, const ProtobufCBinaryData *sm,
					rete_checkpoint *cp)
{
	const Rete__Receipt *r = it_answer(f);
	rete_checkpoint c;
	rete_msg m = {{0}};
	if (!r || r->error || r->receipt != NULL || !r->checkpoint || !r->checkpoint[0])
		return -1;
	if (rete_checkpoint_verify(r->checkpoint, strlen(r->checkpoint), origin, broker, &c, &m) !=
		RETE_OK ||
	    strcmp(c.origin, origin) != 0) {
		fprintf(stderr, "receipt for %s: its checkpoint does not verify: %s\n",
			r->message_id, m.text);
		return -1;
	}
	if (r->index >= c.size) {
		fprintf(stderr, "receipt for %s: index %" PRIu64 " >= size %" PRIu64 "\n",
			r->message_id, r->index, c.size);
		return -1;
	}
	if (sm == NULL) {
		if (r->n_proof != rete_merkle_expected_inclusion_len(r->index, c.size))
			return -1;
	} else {
		uint8_t leaf[RETE_MERKLE_HASH];
		it_entry_leaf(leaf, r->index, r->logged_at, sm);
		rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
		if (r->n_proof > RETE_MERKLE_MAX_PROOF)
			return -1;
		for (size_t i = 0; i < r->n_proof; i++) {
			e[i].data = r->proof[i].data;
			e[i].len = r->proof[i].len;
		}
		if (rete_merkle_verify_inclusion(r->index, c.size, leaf, sizeof(leaf), e,
						 r->n_proof, c.root, sizeof(c.root),
						 &m) != RETE_OK) {
			fprintf(stderr, "receipt for %s: %s\n", r->message_id, m.text);
			return -1;
		}
	}
	if (cp)
		*cp = c;
	return (int64_t)r->index;
}

/* it_receipt_index checks an acceptance receipt (it_receipt_verify without
 * the submitted bytes) and returns its log index; -1 when it is a refusal
 * or does not verify. */
static inline int64_t it_receipt_index(const it_net *n, const Rete__BrokerFrame *f)
{
	return it_receipt_verify(f, &n->broker->pub, IT_ORIGIN, NULL, NULL);
}

/* it_hello connects as who and says HELLO; NULL unless WELCOME came. */
static inline rete_wire *it_hello(it_net *n, int who)
{
	rete_wire *w = it_connect(n, who);
	if (!w)
		return NULL;
	rete_wire_hello(w, it_party_ids[who], "itest", NULL);
	Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
	bool ok = f && f->command_case == RETE__BROKER_FRAME__COMMAND_WELCOME;
	if (f)
		rete__broker_frame__free_unpacked(f, NULL);
	if (!ok)
		rete_wire_close(&w);
	return w;
}

/* --- a fake broker ----------------------------------------------------------- */

/* it_fake: a broker that says what the test wants: the broker's key on a
 * CURVE ROUTER socket at the broker's endpoint (no ZAP handler: every
 * client key is let in), speaking the wire protocol from a WELCOME the real
 * broker gave (it_real_welcome). It answers HELLO with that WELCOME, PING
 * with PONG and SUBMIT with a receipt proving the entry in a checkpoint
 * signed by the broker key (it_fake_receipt); it counts ACKs and sends the DELIVERs the test makes
 * (it_fake_deliver) to the peer that said HELLO last. Queries go
 * unanswered, unless the test gives on_query to answer them. */
/* What a fake broker's receipts get wrong besides the leaf (honest_leaf). */
enum it_fake_lie {
	IT_LIE_NONE = 0,
	IT_LIE_SIG,    /* the checkpoint's signature does not verify */
	IT_LIE_ORIGIN, /* a checkpoint of another log, signed with the broker key */
	IT_LIE_EPOCH,  /* a checkpoint of the epoch before the WELCOME's */
	IT_LIE_INDEX   /* an index beyond the checkpoint's size */
};

typedef struct it_fake {
	void *ctx, *sock;
	const char *endpoint;
	const rete_seckey *key;
	Rete__BrokerFrame *welcome; /* replayed on HELLO (owned) */
	bool honest_leaf;	    /* receipts prove the right leaf */
	int lie;		    /* it_fake_lie: what else the receipts get wrong */
	rete_merkle_mem tree;	    /* the fake's log: the leaves it receipted */
	int hellos, submits, acks;
	uint64_t last_ack;	 /* the log index of the latest ACK */
	uint32_t last_ack_error; /* and its error code (0: acked fine) */
	char last_ack_text[512]; /* and its text */
	uint8_t peer[256];	 /* routing id of the latest HELLO */
	size_t peer_len;
	uint8_t first[4096]; /* the first SUBMIT's signed bytes */
	size_t first_len;
	bool same;		  /* every SUBMIT carried those bytes */
	int receipts;		  /* receipts signed (the last index given) */
	bool mute;		  /* SUBMITs are counted, never answered */
	uint8_t kept_rid[8][256]; /* with mute: the first SUBMITs, to answer */
	size_t kept_rid_len[8];	  /* later (it_fake_answer_kept) */
	ProtobufCBinaryData kept[8];
	/* on_query (NULL: queries unanswered) answers a QUERY from the peer
	 * with routing id ident (with it_fake_reply) */
	void (*on_query)(struct it_fake *l, const void *ident, size_t ident_len,
			 const Rete__Query *q);
	/* on_submit (NULL: a receipt, it_fake_receipt, unless mute) answers
	 * a SUBMIT of the signed bytes sm */
	void (*on_submit)(struct it_fake *l, const void *ident, size_t ident_len,
			  const ProtobufCBinaryData *sm);
} it_fake;

/* it_fake_reply sends a BrokerFrame to the peer with routing id ident of a
 * ROUTER socket. */
static inline void it_fake_reply(void *sock, const void *ident, size_t ident_len,
				 Rete__BrokerFrame *f)
{
	f->version = RETE_PROTOCOL_VERSION;
	size_t len = rete__broker_frame__get_packed_size(f);
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	rete__broker_frame__pack(f, buf);
	zmq_send(sock, ident, ident_len, ZMQ_SNDMORE);
	zmq_send(sock, buf, len, 0);
	free(buf);
}

/* it_real_welcome starts the real broker once, says HELLO as party `who`
 * and keeps the WELCOME (its directory entry is signed with the broker key,
 * so an agent believes it); the broker is stopped again. Caller frees (or
 * hands it to it_fake_open). */
static inline Rete__BrokerFrame *it_real_welcome(it_net *n, int who)
{
	assert_true(it_broker_start(n));
	rete_wire *w = it_connect(n, who);
	assert_non_null(w);
	rete_wire_hello(w, it_party_ids[who], "itest", NULL);
	Rete__BrokerFrame *welcome =
	    it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
	assert_non_null(welcome);
	assert_int_equal(welcome->command_case, RETE__BROKER_FRAME__COMMAND_WELCOME);
	rete_wire_close(&w);
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	unlink(n->sock);
	return welcome;
}

/* it_fake_bind (re)binds the fake's socket at its endpoint. */
static inline void it_fake_bind(it_fake *l)
{
	int one = 1, linger = 0;
	l->sock = zmq_socket(l->ctx, ZMQ_ROUTER);
	assert_non_null(l->sock);
	assert_int_equal(zmq_setsockopt(l->sock, ZMQ_CURVE_SERVER, &one, sizeof(one)), 0);
	assert_int_equal(zmq_setsockopt(l->sock, ZMQ_CURVE_SECRETKEY, l->key->x_sk, RETE_PK_LEN),
			 0);
	assert_int_equal(zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof(linger)), 0);
	assert_int_equal(zmq_bind(l->sock, l->endpoint), 0);
}

/* it_fake_open binds a fake broker at n's endpoint with n's broker key; it
 * takes welcome (from it_real_welcome) and frees it in it_fake_close. */
static inline void it_fake_open(it_fake *l, it_net *n, Rete__BrokerFrame *welcome)
{
	memset(l, 0, sizeof(*l));
	l->endpoint = n->listen;
	l->key = n->broker;
	l->welcome = welcome;
	l->same = true;
	rete_merkle_mem_init(&l->tree);
	l->ctx = zmq_ctx_new();
	assert_non_null(l->ctx);
	it_fake_bind(l);
}

static inline void it_fake_close(it_fake *l)
{
	if (l->sock)
		zmq_close(l->sock);
	if (l->ctx)
		zmq_ctx_term(l->ctx);
	if (l->welcome)
		rete__broker_frame__free_unpacked(l->welcome, NULL);
	for (int k = 0; k < 8; k++)
		free(l->kept[k].data); /* the SUBMITs kept while mute */
	rete_merkle_mem_free(&l->tree);
	memset(l, 0, sizeof(*l));
}

/* it_fake_receipt answers a SUBMIT with a receipt of protocol 3 for the
 * next index of the fake's own log (index 0 is a filler entry; receipts get
 * 1, 2, ...: a log that grows), logged now: the inclusion proof of that
 * index to a checkpoint of the new size signed with the broker key in the
 * WELCOME's epoch. The leaf appended is the entry of the submitted bytes
 * when honest_leaf, else the hash of other bytes (what a broker that never
 * logged the message would have to prove); `lie` spoils the rest. */
static inline void it_fake_receipt(it_fake *l, const void *ident, size_t ident_len,
				   const ProtobufCBinaryData *sm)
{
	Rete__Message *msg = NULL;
	assert_int_equal(rete_signed_decode(sm->data, sm->len, NULL, &msg, NULL), RETE_OK);
	uint8_t leaf[RETE_MERKLE_HASH], root[RETE_MERKLE_HASH];
	if (l->tree.mm_size == 0) {
		rete_merkle_leaf_hash(leaf, "the fake log's first entry", 26);
		assert_int_equal(rete_merkle_mem_append(&l->tree, leaf), RETE_OK);
	}
	uint64_t index = l->tree.mm_size;
	int64_t at = rete_now_ms();
	l->receipts++;
	if (l->honest_leaf)
		it_entry_leaf(leaf, index, at, sm);
	else
		rete_merkle_leaf_hash(leaf, "not this message", 16);
	assert_int_equal(rete_merkle_mem_append(&l->tree, leaf), RETE_OK);
	uint64_t size = l->tree.mm_size;
	assert_int_equal(rete_merkle_root(rete_merkle_mem_get, &l->tree, size, root), RETE_OK);
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	size_t np = 0;
	assert_int_equal(
	    rete_merkle_inclusion_proof(rete_merkle_mem_get, &l->tree, index, size, proof, &np),
	    RETE_OK);
	uint32_t epoch = l->welcome->welcome->epoch ? l->welcome->welcome->epoch : 1;
	if (l->lie == IT_LIE_EPOCH)
		epoch = epoch > 1 ? epoch - 1 : 1;
	char *note = NULL;
	rete_msg m;
	assert_int_equal(
	    rete_checkpoint_sign_epoch(l->lie == IT_LIE_ORIGIN ? "rete.test/elsewhere" : IT_ORIGIN,
				       size, root, epoch, l->key, &note, &m),
	    RETE_OK);
	if (l->lie == IT_LIE_SIG) {
		/* one character of the signature (after the key ID) changed */
		char *end = note + strlen(note) - 1; /* the final newline */
		char *c = end - 10;
		*c = *c == 'A' ? 'B' : 'A';
	}
	ProtobufCBinaryData pv[RETE_MERKLE_MAX_PROOF];
	for (size_t i = 0; i < np; i++) {
		pv[i].data = proof[i];
		pv[i].len = RETE_MERKLE_HASH;
	}
	Rete__Receipt r = RETE__RECEIPT__INIT;
	r.message_id = msg->id;
	r.index = l->lie == IT_LIE_INDEX ? size : index;
	r.logged_at = at;
	r.n_proof = np;
	r.proof = pv;
	r.checkpoint = note;
	Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
	f.command_case = RETE__BROKER_FRAME__COMMAND_RECEIPT;
	f.receipt = &r;
	it_fake_reply(l->sock, ident, ident_len, &f);
	free(note);
	rete__message__free_unpacked(msg, NULL);
}

/* it_fake_result answers query q on l: with r as the caller filled it (a
 * checkpoint), or, for a consistency or inclusion question, with an honest
 * proof from tree; NOT_FOUND "not here" when there is nothing to show
 * (answer false), the question is another, or the proof cannot be made. */
static inline void it_fake_result(it_fake *l, const void *ident, size_t ident_len,
				  const Rete__Query *q, Rete__QueryResult *r, bool answer,
				  rete_merkle_mem *tree)
{
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	ProtobufCBinaryData pv[RETE_MERKLE_MAX_PROOF];
	size_t np = 0;
	Rete__Proof p = RETE__PROOF__INIT;
	rete_err err = answer ? RETE_OK : RETE_EINVAL;
	r->request_id = q->request_id;
	if (answer && r->answer_case == RETE__QUERY_RESULT__ANSWER__NOT_SET) {
		if (q->what_case == RETE__QUERY__WHAT_CONSISTENCY) {
			p.size1 = q->consistency->size1;
			p.size2 = q->consistency->size2;
			err = rete_merkle_consistency_proof(rete_merkle_mem_get, tree, p.size1,
							    p.size2, proof, &np);
		} else if (q->what_case == RETE__QUERY__WHAT_INCLUSION) {
			p.leaf_index = q->inclusion->index;
			p.tree_size = q->inclusion->tree_size;
			err = rete_merkle_inclusion_proof(rete_merkle_mem_get, tree, p.leaf_index,
							  p.tree_size, proof, &np);
		} else {
			err = RETE_EINVAL;
		}
		if (err == RETE_OK) {
			for (size_t i = 0; i < np; i++) {
				pv[i].data = proof[i];
				pv[i].len = RETE_MERKLE_HASH;
			}
			p.hashes = pv;
			p.n_hashes = np;
			r->answer_case = RETE__QUERY_RESULT__ANSWER_PROOF;
			r->proof = &p;
		}
	}
	if (err != RETE_OK) {
		r->error = RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND;
		r->error_text = (char *)"not here";
	}
	Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
	f.command_case = RETE__BROKER_FRAME__COMMAND_RESULT;
	f.result = r;
	it_fake_reply(l->sock, ident, ident_len, &f);
}

/* it_fake_serve answers frames until *count (one of l's counters) reaches
 * want or ms (scaled like it_scaled_ms) have passed; returns *count. With a
 * counter that never moves it just serves for ms. */
static inline int it_fake_serve(it_fake *l, const int *count, int want, int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (*count < want && it_mono_ms() < end) {
		zmq_pollitem_t pi = {l->sock, 0, ZMQ_POLLIN, 0};
		int64_t left = end - it_mono_ms();
		if (zmq_poll(&pi, 1, left < 200 ? (long)left : 200) <= 0)
			continue;
		zmq_msg_t ident, body;
		zmq_msg_init(&ident);
		zmq_msg_init(&body);
		zmq_msg_recv(&ident, l->sock, 0);
		zmq_msg_recv(&body, l->sock, 0);
		const void *id = zmq_msg_data(&ident);
		size_t idl = zmq_msg_size(&ident);
		Rete__ClientFrame *cf =
		    rete__client_frame__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
		if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_HELLO) {
			if (idl <= sizeof(l->peer)) {
				memcpy(l->peer, id, idl);
				l->peer_len = idl;
			}
			it_fake_reply(l->sock, id, idl, l->welcome);
			l->hellos++;
		} else if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_PING) {
			Rete__Pong pong = RETE__PONG__INIT;
			pong.nonce = cf->ping->nonce;
			Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
			f.command_case = RETE__BROKER_FRAME__COMMAND_PONG;
			f.pong = &pong;
			it_fake_reply(l->sock, id, idl, &f);
		} else if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_SUBMIT) {
			const ProtobufCBinaryData *sm = &cf->submit->signed_message;
			if (l->submits == 0 && sm->len <= sizeof(l->first)) {
				memcpy(l->first, sm->data, sm->len);
				l->first_len = sm->len;
			} else if (sm->len != l->first_len ||
				   memcmp(l->first, sm->data, sm->len) != 0) {
				l->same = false;
			}
			if (l->mute && l->submits < 8) {
				int k = l->submits;
				l->kept_rid_len[k] = idl <= sizeof(l->kept_rid[k]) ? idl : 0;
				memcpy(l->kept_rid[k], id, l->kept_rid_len[k]);
				l->kept[k].len = sm->len;
				l->kept[k].data = malloc(sm->len ? sm->len : 1);
				assert_non_null(l->kept[k].data);
				memcpy(l->kept[k].data, sm->data, sm->len);
			}
			l->submits++;
			if (l->on_submit != NULL)
				l->on_submit(l, id, idl, sm);
			else if (!l->mute)
				it_fake_receipt(l, id, idl, sm);
		} else if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_ACK) {
			l->last_ack = cf->ack->index;
			l->last_ack_error = (uint32_t)cf->ack->error;
			snprintf(l->last_ack_text, sizeof(l->last_ack_text), "%s",
				 cf->ack->error_text != NULL ? cf->ack->error_text : "");
			l->acks++;
		} else if (cf != NULL && cf->command_case == RETE__CLIENT_FRAME__COMMAND_QUERY &&
			   l->on_query != NULL) {
			l->on_query(l, id, idl, cf->query);
		}
		if (cf != NULL)
			rete__client_frame__free_unpacked(cf, NULL);
		zmq_msg_close(&ident);
		zmq_msg_close(&body);
	}
	return *count;
}

/* it_fake_answer_kept answers the k-th SUBMIT kept while mute (with an
 * honest receipt when honest_leaf). */
static inline void it_fake_answer_kept(it_fake *l, int k)
{
	assert_true(k < 8 && l->kept[k].data != NULL);
	it_fake_receipt(l, l->kept_rid[k], l->kept_rid_len[k], &l->kept[k]);
}

/* it_fake_deliver sends a DELIVER of the entry (index, now, signed bytes of
 * o) with o's sealed part to the peer that said HELLO last. */
static inline void it_fake_deliver(it_fake *l, uint64_t index, const it_msg *o)
{
	assert_true(l->peer_len > 0);
	Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
	le.index = index;
	le.logged_at = rete_now_ms();
	le.signed_message.data = o->signed_bytes.data;
	le.signed_message.len = o->signed_bytes.len;
	size_t n = rete__log_entry__get_packed_size(&le);
	uint8_t *b = malloc(n);
	assert_non_null(b);
	rete__log_entry__pack(&le, b);
	Rete__Deliver d = RETE__DELIVER__INIT;
	d.log_entry.data = b;
	d.log_entry.len = n;
	d.sealed.data = o->sealed.data;
	d.sealed.len = o->sealed.len;
	Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
	f.command_case = RETE__BROKER_FRAME__COMMAND_DELIVER;
	f.deliver = &d;
	it_fake_reply(l->sock, l->peer, l->peer_len, &f);
	free(b);
}

/* it_entries_call asks the broker on w for count entries from from
 * (Query.entries); the answer in *f (caller frees), RETE_OK when one came. */
static inline rete_err it_entries_call(rete_wire *w, uint64_t from, uint64_t count,
				       Rete__BrokerFrame **f)
{
	Rete__EntriesQuery eq;
	rete__entries_query__init(&eq);
	eq.from = from;
	eq.count = count;
	Rete__Query q;
	rete__query__init(&q);
	q.what_case = RETE__QUERY__WHAT_ENTRIES;
	q.entries = &eq;
	return rete_wire_call(w, &q, it_wait_ms(), f, NULL);
}

/* it_log_ids reads the whole log as the auditor and calls fn(ctx, index,
 * msg) for each entry; returns the number of entries (-1 on error). */
typedef void (*it_entry_fn)(void *ctx, uint64_t index, const Rete__Message *msg);
static inline int64_t it_log_each(it_net *n, it_entry_fn fn, void *ctx)
{
	rete_wire *w = it_connect(n, IT_AUDIT);
	if (!w)
		return -1;
	uint64_t from = 0;
	int64_t total = 0;
	for (;;) {
		Rete__BrokerFrame *f = NULL;
		if (it_entries_call(w, from, 1000, &f) != RETE_OK) {
			total = -1;
			break;
		}
		if (f->command_case != RETE__BROKER_FRAME__COMMAND_RESULT || f->result->error ||
		    f->result->answer_case != RETE__QUERY_RESULT__ANSWER_ENTRIES) {
			rete__broker_frame__free_unpacked(f, NULL);
			total = -1;
			break;
		}
		size_t got = f->result->entries->n_entries;
		for (size_t i = 0; i < got; i++) {
			const ProtobufCBinaryData *b = &f->result->entries->entries[i];
			Rete__LogEntry *le = rete__log_entry__unpack(NULL, b->len, b->data);
			Rete__Message *msg = NULL;
			if (le &&
			    rete_signed_decode(le->signed_message.data, le->signed_message.len,
					       NULL, &msg, NULL) == RETE_OK) {
				if (fn)
					fn(ctx, le->index, msg);
				rete__message__free_unpacked(msg, NULL);
			}
			if (le)
				rete__log_entry__free_unpacked(le, NULL);
		}
		rete__broker_frame__free_unpacked(f, NULL);
		total += (int64_t)got;
		from += got;
		if (got == 0)
			break;
	}
	rete_wire_close(&w);
	return total;
}

/* it_audit_verify runs `rete audit verify` on the store (read-only, beside
 * a running broker or not); returns its exit code, the output in *out
 * (caller frees; may be NULL). */
static inline int it_audit_verify(it_net *n, char **out)
{
	char *o = NULL;
	int rc =
	    tu_run(&o, "'%s/rete' audit verify '%s' --broker-key '%s/keys/" IT_BROKER_ID ".pub'",
		   n->bin, n->data, n->dir);
	if (out)
		*out = o;
	else
		free(o);
	return rc;
}

/* it_audit_verifies runs it_audit_verify and fails the test (cmocka),
 * with the auditor's output on stderr, unless `rete audit verify` passes. */
static inline void it_audit_verifies(it_net *n)
{
	char *out = NULL;
	int rc = it_audit_verify(n, &out);
	if (rc != 0)
		fprintf(stderr, "rete audit verify: %s\n", out ? out : "");
	assert_int_equal(rc, 0);
	free(out);
}

/* it_status_kb reads a field (VmRSS, RssAnon, ...) of /proc/PID/status, in
 * kB; -1 when it is not there. */
static inline long it_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kb = -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			kb = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* it_strip_copy_mark deletes meta "copy" of the store in dir behind rete's
 * back (the mark `rete store backup` leaves in its copy), as an operator
 * bent on serving an old copy in the old epoch would: the tests of what the
 * auditors and agents catch then need it. */
static inline void it_strip_copy_mark(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val k = {4, "copy"};
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
	/* and the mark that its journal files were made (the copy has
	 * none): a store served as if never copied, not one whose journal
	 * was lost, which the broker refuses (store_journal.c) */
	MDB_val jk = {7, "journal"};
	int jrc = mdb_del(txn, meta, &jk, NULL);
	assert_true(jrc == 0 || jrc == MDB_NOTFOUND);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* --- metrics endpoints (Prometheus text over HTTP, with libcurl) ------------------- */

struct it_body {
	char *text;
	size_t len;
};

static inline size_t it_on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct it_body *b = ud;
	size_t k = sz * n;
	char *t = realloc(b->text, b->len + k + 1);
	if (!t)
		return 0;
	memcpy(t + b->len, p, k);
	b->len += k;
	t[b->len] = '\0';
	b->text = t;
	return k;
}

/* it_scrape GETs url; the body (caller frees) or NULL; *status (may be
 * NULL) the HTTP status. */
static inline char *it_scrape(const char *url, long *status)
{
	struct it_body b = {0};
	CURL *c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, it_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(c);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);
	if (status)
		*status = st;
	if (rc != CURLE_OK) {
		free(b.text);
		return NULL;
	}
	if (!b.text)
		b.text = strdup("");
	return b.text;
}

/* it_metric: the value of the sample "series" (name with its labels,
 * exactly as written) in the scraped text; -1 when it is not there. */
static inline double it_metric(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

/* it_until_metric scrapes url until series has the value want (true) or
 * the deadline passes (false; the last scrape is printed). */
static inline bool it_until_metric(const char *url, const char *series, double want)
{
	int64_t end = it_mono_ms() + it_wait_ms();
	char *last = NULL;
	for (;;) {
		free(last);
		last = it_scrape(url, NULL);
		if (last && it_metric(last, series) == want) {
			free(last);
			return true;
		}
		if (it_mono_ms() > end)
			break;
		it_nap(100); /* polling a value, not waiting for an event we could see */
	}
	fprintf(stderr, "%s never became %g; the last scrape:\n%s\n", series, want,
		last ? last : "(no answer)");
	free(last);
	return false;
}

/* it_metrics_port waits for "metrics on http://127.0.0.1:PORT/metrics" in
 * the log file (a broker or agent with metrics = 127.0.0.1:0) and returns
 * PORT (0 at the deadline). */
static inline unsigned it_metrics_port(const char *log)
{
	int64_t end = it_mono_ms() + it_wait_ms();
	while (it_mono_ms() < end) {
		char *text = tu_read_file(log, NULL);
		const char *p = text ? strstr(text, "metrics on http://127.0.0.1:") : NULL;
		unsigned port = 0;
		if (p)
			sscanf(p, "metrics on http://127.0.0.1:%u/", &port);
		free(text);
		if (port)
			return port;
		it_nap(50);
	}
	return 0;
}

/* it_metrics_url: the metrics address the program logging to log said it
 * serves, into url (fails the test when it says none in time). */
static inline void it_metrics_url(const char *log, char *url, size_t len)
{
	unsigned port = it_metrics_port(log);
	assert_true(port > 0);
	snprintf(url, len, "http://127.0.0.1:%u/metrics", port);
}

/* it_inbox_count: the delivered files (NUMBER...json) in an agent's inbox
 * folder dir. */
static inline size_t it_inbox_count(const char *dir)
{
	size_t k = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && strstr(e->d_name, ".json"))
			k++;
	closedir(d);
	return k;
}

/* it_until_inbox polls dir (files another process writes: no event to
 * wait on) until it holds want files; false at the deadline. */
static inline bool it_until_inbox(const char *dir, size_t want)
{
	int64_t end = it_mono_ms() + it_wait_ms();
	while (it_inbox_count(dir) < want && it_mono_ms() < end)
		it_nap(50);
	return it_inbox_count(dir) >= want;
}

/* it_refer submits one referral `id` from party `from` to party `to` on a
 * connection of its own, and checks that it was logged. */
static inline void it_refer(it_net *n, int from, int to, const char *id)
{
	rete_wire *w = it_connect(n, from);
	assert_non_null(w);
	it_msg o;
	assert_int_equal(it_referral(n, from, to, id, &o), RETE_OK);
	Rete__BrokerFrame *f = it_submit(w, &o, it_wait_ms());
	assert_non_null(f);
	assert_int_equal(it_answer(f)->error, 0);
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);
	rete_wire_close(&w);
}

/* it_health_problems: the broker's health problems (asked as the
 * coordinator), one a line (caller frees). */
static inline char *it_health_problems(it_net *n)
{
	rete_wire *coord = it_connect(n, IT_COORD);
	assert_non_null(coord);
	Rete__HealthQuery hq = RETE__HEALTH_QUERY__INIT;
	Rete__Query q = RETE__QUERY__INIT;
	q.what_case = RETE__QUERY__WHAT_HEALTH;
	q.health = &hq;
	Rete__BrokerFrame *f = NULL;
	rete_msg m;
	assert_int_equal(rete_wire_call(coord, &q, it_wait_ms(), &f, &m), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_HEALTH);
	size_t len = 1;
	for (size_t i = 0; i < f->result->health->n_problems; i++)
		len += strlen(f->result->health->problems[i]) + 1;
	char *out = calloc(1, len);
	assert_non_null(out);
	for (size_t i = 0; i < f->result->health->n_problems; i++) {
		strcat(out, f->result->health->problems[i]);
		strcat(out, "\n");
	}
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&coord);
	return out;
}

/* it_twin_start starts a second rete-agent for social.mantova with the
 * same key (an old machine still running, a copy of the key), talking to
 * the broker at endpoint broker, in DIR/agents/social-twin (its own spool
 * and data), its output in DIR/social-twin.log. Returns its pid. */
static inline pid_t it_twin_start(it_net *n, const char *broker)
{
	char path[1300], text[4096], exe[1200];
	static const char *const subs[] = {
	    "", "/spool", "/spool/outbox", "/spool/sent", "/spool/failed", "/spool/inbox"};
	snprintf(path, sizeof(path), "%s/agents", n->dir);
	mkdir(path, 0755);
	for (int i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "%s/agents/social-twin%s", n->dir, subs[i]);
		mkdir(path, 0755);
	}
	it_agent_ini_text(text, sizeof(text), IT_SOCIAL, broker, NULL);
	snprintf(path, sizeof(path), "%s/agents/social-twin/agent.ini", n->dir);
	tu_write_file(path, text, strlen(text));
	snprintf(exe, sizeof(exe), "%s/rete-agent", n->bin);
	char *args[] = {exe, "-c", path, "-v", NULL};
	return it_spawn(n->dir, "social-twin", args, NULL);
}

#endif
