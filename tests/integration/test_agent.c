/* test_agent.c — the agency agent against the real broker.
 *
 * Every test builds a small network in a fresh folder: keys made with
 * `rete keygen`, a broker.ini and one agent.ini per agency written here,
 * the real rete-broker and rete-agent binaries started with fork/exec from
 * RETE_BIN_DIR. Tests wait for files to appear (inotify, with deadlines),
 * never sleep to synchronise, and kill and reap every process they started.
 *
 * What it shows (the issue "It must show"):
 *   - the closed loop social services -> job centre: receipt, inbox with
 *     the person's data readable, delivery receipt, accept / in-progress /
 *     completed arriving back, `rete status` history, `rete audit verify`;
 *   - the person's name and fiscal code nowhere in the broker's LMDB files,
 *     its log, or the events;
 *   - kill -9 of the receiving agent during 500 deliveries: each once;
 *   - the broker stopped 20 s while files keep coming: all delivered once;
 *   - malformed file, unknown recipient, service not offered -> failed/
 *     with the problem named, and the agent keeps working;
 *   - a hook exiting non-zero does not stop later deliveries.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <lmdb.h>
#include <sodium.h>

#include "checkpoint.h"
#include "codec.h"
#include "json.h"
#include "keys.h"
#include "testutil.h"
#include "wire.h"

#define PERSON_NAME "Maria Rossi"
#define PERSON_CF   "RSSMRA85M41E897X"
#define WAIT_MS	    90000 /* generous: 2 cores, sanitizers */

enum { P_BROKER, P_SOCIAL, P_CPI, P_ASST, P_COUNT };
static const char *const party_ids[P_COUNT] = {"broker.mantova", "social.mantova", "cpi.mantova",
					       "asst.mantova"};

typedef struct net {
	char *dir;
	char bin[1024];
	pid_t pid[P_COUNT];
	int starts[P_COUNT];
	char hook[P_COUNT][512]; /* on_message per agent, "" = none */
	char expiry[16];	 /* broker expiry ("" = 5d) */
} net;

/* --- small helpers ------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

/* put_outbox writes text as party p's outbox/NAME through a hidden
 * temporary name, its times set 5 s back before the rename (a file written
 * a moment before it was moved in): the agent takes it at its first look,
 * not after the 2 s it gives a file that just changed (OUT_SETTLE_MS, for
 * writers that write in place; test_stall's inplace_waits shows it). */
static void put_outbox(net *n, int p, const char *name, const char *text)
{
	char tmp[1200], dst[1200];
	tu_path(tmp, sizeof(tmp), "%s/agents/%s/spool/outbox/.%s.tmp", n->dir, party_ids[p], name);
	tu_path(dst, sizeof(dst), "%s/agents/%s/spool/outbox/%s", n->dir, party_ids[p], name);
	write_text(tmp, text);
	assert_int_equal(tu_age_file(tmp, 5), 0);
	assert_int_equal(rename(tmp, dst), 0);
}

static char *spool(net *n, int p, const char *sub, char *buf, size_t len)
{
	return tu_path(buf, len, "%s/agents/%s/spool/%s", n->dir, party_ids[p], sub);
}

/* A watch on a folder for the waits below: inotify wakes a wait as soon as
 * something happens there; the 200 ms bound of a round only covers a
 * missed event. */
typedef struct watch {
	int ino;
	int64_t deadline;
} watch;

#define ARRIVALS (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) /* files appear */
#define WRITES	 (IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE)   /* files grow */

static watch watch_open(const char *dir, uint32_t mask, int timeout_ms)
{
	watch w = {inotify_init1(IN_NONBLOCK | IN_CLOEXEC), now_ms() + timeout_ms};
	if (w.ino >= 0)
		inotify_add_watch(w.ino, dir, mask);
	return w;
}

/* watch_next waits (at most 200 ms) for something to happen in the folder
 * and returns true; false once the deadline has passed. */
static bool watch_next(watch *w)
{
	if (now_ms() >= w->deadline)
		return false;
	struct pollfd p = {.fd = w->ino, .events = POLLIN};
	poll(&p, w->ino >= 0 ? 1 : 0, 200);
	char buf[4096];
	while (w->ino >= 0 && read(w->ino, buf, sizeof(buf)) > 0) {
	}
	return true;
}

static void watch_close(watch *w)
{
	if (w->ino >= 0)
		close(w->ino);
	w->ino = -1;
}

/* wait_count waits until dir holds at least want files ending in suffix.
 * Returns the count seen last. */
static size_t wait_count(const char *dir, const char *suffix, size_t want, int timeout_ms)
{
	watch w = watch_open(dir, ARRIVALS, timeout_ms);
	size_t c;
	while ((c = tu_count_suffix(dir, suffix)) < want && watch_next(&w)) {
	}
	watch_close(&w);
	return c;
}

/* wait_gone waits until dir holds no file ending in suffix and returns the
 * count seen last. The agent moves a file by link, fsync, unlink (never
 * overwriting), so for a moment a file is in both folders: a count taken
 * right after the destination's must wait for the source to empty. */
static size_t wait_gone(const char *dir, const char *suffix, int timeout_ms)
{
	watch w = watch_open(dir, IN_DELETE | IN_MOVED_FROM, timeout_ms);
	size_t c;
	while ((c = tu_count_suffix(dir, suffix)) != 0 && watch_next(&w)) {
	}
	watch_close(&w);
	return c;
}

static bool wait_file(const char *path, int timeout_ms)
{
	char dir[1200];
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	watch w = watch_open(dir, ARRIVALS, timeout_ms);
	bool ok;
	while (!(ok = access(path, F_OK) == 0) && watch_next(&w)) {
	}
	watch_close(&w);
	return ok;
}

static size_t count_lines(const char *path)
{
	char *data = tu_read_file(path, NULL);
	size_t lines = 0;
	for (char *p = data; p && *p; p++)
		lines += *p == '\n';
	free(data);
	return lines;
}

/* wait_lines waits until the file at path (in folder dir) has want lines. */
static size_t wait_lines(const char *dir, const char *path, size_t want, int timeout_ms)
{
	watch w = watch_open(dir, WRITES, timeout_ms);
	size_t c;
	while ((c = count_lines(path)) < want && watch_next(&w)) {
	}
	watch_close(&w);
	return c;
}

static bool file_contains(const char *path, const char *needle);

/* wait_contains waits until the file at path (in folder dir) holds needle. */
static bool wait_contains(const char *dir, const char *path, const char *needle, int timeout_ms)
{
	watch w = watch_open(dir, WRITES, timeout_ms);
	bool ok;
	while (!(ok = file_contains(path, needle)) && watch_next(&w)) {
	}
	watch_close(&w);
	return ok;
}

/* wait_occurrences waits until the file at path (in folder dir) holds
 * needle `want` times; returns the count seen last. */
static size_t wait_occurrences(const char *dir, const char *path, const char *needle, size_t want,
			       int timeout_ms)
{
	watch w = watch_open(dir, WRITES, timeout_ms);
	size_t k;
	while ((k = tu_occurrences(path, needle)) < want && watch_next(&w)) {
	}
	watch_close(&w);
	return k;
}

/* list_suffix returns the (sorted) k-th file name of dir ending in
 * suffix, in a malloc'd string, or NULL. */
static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list_suffix(const char *dir, const char *suffix, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0, sl = strlen(suffix);
	*count = 0;
	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] == '.' || l < sl || strcmp(e->d_name + l - sl, suffix) != 0)
			continue;
		v = realloc(v, (n + 1) * sizeof(*v));
		assert_non_null(v);
		v[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), name_cmp);
	*count = n;
	return v;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *jget(json_t *o, const char *dotted)
{
	char key[128];
	const char *p = dotted;
	while (o != NULL) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		snprintf(key, sizeof(key), "%.*s", (int)l, p);
		o = json_object_get(o, key);
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	return json_string_value(o);
}

/* --- messages ------------------------------------------------------------- */

static char *referral_text(const char *id, const char *recipient, const char *service)
{
	json_t *j = json_pack(
	    "{s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:s},"
	    "s:{s:{s:s,s:s,s:s,s:[{s:s,s:s}]},s:s}}",
	    "operator", "staffId", "as-0042", "role", "social-worker", "recipient", recipient,
	    "caseId", "mn-2026-0173", "referral", "service", service, "priority", "routine",
	    "reasonCode", "long-term-unemployment", "consent", "basis", "consent", "givenAt",
	    "2026-11-20T09:30:00Z", "reference", "CONS-2026-0412", "ageBand", "adult", "private",
	    "person", "name", PERSON_NAME, "fiscalCode", PERSON_CF, "birthDate", "1985-08-01",
	    "contacts", "kind", "phone", "value", "+39 0376 555 0101", "reason",
	    "Unemployed since March 2026; asks for help to find work.");
	assert_non_null(j);
	/* Notes of a few KiB: 500 of them outgrow the agents' 1 MiB initial
	 * map, so the tests also cover the map growing under load. */
	char notes[2601];
	for (size_t i = 0; i < sizeof(notes) - 1; i++)
		notes[i] = "Meeting notes. "[i % 15];
	notes[sizeof(notes) - 1] = '\0';
	json_object_set_new(json_object_get(j, "private"), "notes", json_string(notes));
	if (id != NULL)
		json_object_set_new(j, "id", json_string(id));
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return text;
}

/* put_referral drops referral_text(id, recipient, service) into p's outbox
 * as name. */
static void put_referral(net *n, int p, const char *name, const char *id, const char *recipient,
			 const char *service)
{
	char *t = referral_text(id, recipient, service);
	put_outbox(n, p, name, t);
	free(t);
}

/* load_nth loads the k-th (sorted) file of dir ending in suffix, which
 * must be there (caller json_decref's). */
static json_t *load_nth(const char *dir, const char *suffix, size_t k)
{
	size_t cnt;
	char **names = list_suffix(dir, suffix, &cnt);
	assert_true(k < cnt);
	char path[1400];
	json_t *j = tu_load_json(tu_path(path, sizeof(path), "%s/%s", dir, names[k]));
	free_list(names, cnt);
	return j;
}

static char *update_text(const char *refid, const char *status, const char *business, bool outcome,
			 const char *notes)
{
	json_t *j =
	    json_pack("{s:{s:s,s:s},s:s,s:s,s:{s:s,s:s}}", "operator", "staffId", "cpi-017", "role",
		      "employment-counsellor", "recipient", "social.mantova", "caseId",
		      "mn-2026-0173", "update", "referralId", refid, "status", status);
	json_t *u = json_object_get(j, "update");
	if (business != NULL)
		json_object_set_new(u, "businessStatus", json_string(business));
	if (outcome)
		json_object_set_new(u, "outcome", json_pack("{s:s}", "result", "successful"));
	if (notes != NULL)
		json_object_set_new(j, "private", json_pack("{s:s}", "notes", notes));
	if (outcome) { /* the comment travels sealed (protocol 3) */
		if (json_object_get(j, "private") == NULL)
			json_object_set_new(j, "private", json_object());
		json_object_set_new(json_object_get(j, "private"), "outcomeText",
				    json_string("Enrolled in a six-month traineeship."));
	}
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return text;
}

/* --- the network ---------------------------------------------------------- */

static pid_t spawn(net *n, const char *logname, char *const argv[])
{
	char log[1200];
	tu_path(log, sizeof(log), "%s/%s.log", n->dir, logname);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Should this test die (a crash, a timeout), its broker and agents
		 * die with it instead of running on. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void start_broker(net *n)
{
	char exe[1200], ini[1200];
	tu_path(exe, sizeof(exe), "%s/rete-broker", n->bin);
	tu_path(ini, sizeof(ini), "%s/broker/broker.ini", n->dir);
	/* the first start creates the log (--init) */
	char mdb[1200];
	bool first =
	    access(tu_path(mdb, sizeof(mdb), "%s/broker/store/data.mdb", n->dir), F_OK) != 0;
	char *argv[] = {exe, "-c", ini, "-v", first ? "--init" : NULL, NULL};
	n->pid[P_BROKER] = spawn(n, "broker", argv);
	/* Ready when its socket file is there (ipc endpoint). */
	char sock[1200];
	assert_true(
	    wait_file(tu_path(sock, sizeof(sock), "%s/broker/broker.sock", n->dir), WAIT_MS));
}

static void write_agent_ini(net *n, int p)
{
	char path[1200], text[4096];
	tu_path(path, sizeof(path), "%s/agents/%s", n->dir, party_ids[p]);
	mkdir(path, 0755);
	snprintf(text, sizeof(text),
		 "[agent]\nid = %s\nkey = ../../keys/%s.key\nbroker = ipc://%s/broker/broker.sock\n"
		 "broker_key = ../../keys/broker.mantova.pub\nspool = spool\ndata = data\n"
		 "resubmit = 2s\nreconnect_min = 100ms\nreconnect_max = 1s\nwitness = 1s\n"
		 "map_size = 1\n%s%s%s",
		 party_ids[p], party_ids[p], n->dir, n->hook[p][0] ? "on_message = " : "",
		 n->hook[p], n->hook[p][0] ? "\n" : "");
	write_text(tu_path(path, sizeof(path), "%s/agents/%s/agent.ini", n->dir, party_ids[p]),
		   text);
}

static void start_agent(net *n, int p)
{
	char exe[1200], ini[1200], name[64];
	write_agent_ini(n, p);
	tu_path(exe, sizeof(exe), "%s/rete-agent", n->bin);
	tu_path(ini, sizeof(ini), "%s/agents/%s/agent.ini", n->dir, party_ids[p]);
	snprintf(name, sizeof(name), "%s", party_ids[p]);
	char *argv[] = {exe, "-c", ini, "-v", NULL};
	n->pid[p] = spawn(n, name, argv);
	n->starts[p]++;
	char outbox[1200];
	/* Ready to take files when its spool exists (it also takes files that
	 * were there before it started, so this is only for tidiness). */
	assert_true(wait_file(spool(n, p, "outbox", outbox, sizeof(outbox)), WAIT_MS));
}

/* fill_outbox fills p's outbox with count referrals (bulk-NNNN.json)
 * before its agent runs: its agent.ini and spool are made here. */
static void fill_outbox(net *n, int p, size_t count)
{
	char dir[1200];
	write_agent_ini(n, p);
	mkdir(spool(n, p, "", dir, sizeof(dir)), 0755);
	mkdir(spool(n, p, "outbox", dir, sizeof(dir)), 0755);
	for (size_t i = 0; i < count; i++) {
		char name[64];
		snprintf(name, sizeof(name), "bulk-%04zu.json", i);
		put_referral(n, p, name, NULL, "cpi.mantova", "employment-orientation");
	}
}

/* set_hook makes DIR/hook.sh, with body, p's on_message hook. */
static void set_hook(net *n, int p, const char *body)
{
	char script[1200];
	tu_path(script, sizeof(script), "%s/hook.sh", n->dir);
	write_text(script, body);
	chmod(script, 0755);
	snprintf(n->hook[p], sizeof(n->hook[p]), "%s", script);
}

/* stop sends sig and reaps; returns the exit status (or -1). */
static int stop(net *n, int p, int sig)
{
	int st = -1;
	if (n->pid[p] <= 0)
		return -1;
	kill(n->pid[p], sig);
	waitpid(n->pid[p], &st, 0);
	n->pid[p] = 0;
	return st;
}

/* stop_within sends SIGTERM and waits (pidfd, bounded) for the exit;
 * SIGKILL when the deadline passes. Returns the wait status, or -1 when
 * it had to be killed. */
static int stop_within(net *n, int p, int timeout_ms)
{
	int st = -1;
	if (n->pid[p] <= 0)
		return 0;
	int pfd = (int)syscall(SYS_pidfd_open, n->pid[p], 0);
	kill(n->pid[p], SIGTERM);
	struct pollfd pl = {.fd = pfd, .events = POLLIN};
	bool exited = pfd >= 0 && poll(&pl, 1, timeout_ms) == 1;
	if (pfd >= 0)
		close(pfd);
	if (!exited)
		kill(n->pid[p], SIGKILL);
	waitpid(n->pid[p], &st, 0);
	n->pid[p] = 0;
	return exited ? st : -1;
}

/* write_broker_ini writes broker/broker.ini for the network (n->expiry:
 * the broker's expiry, default 5d). */
static void write_broker_ini(net *n)
{
	char path[1200];
	char ini[4096];
	snprintf(
	    ini, sizeof(ini),
	    "[broker]\norigin = rete.test/mantova\nid = broker.mantova\n"
	    "key = ../keys/broker.mantova.key\nlisten = ipc://%s/broker/broker.sock\n"
	    "events = ipc://%s/broker/events.sock\ndata = store\ncheckpoint_interval = 1s\n"
	    "expiry = %s\n"
	    "\n[limits]\nroutine = 5d\nurgent = 2d\nemergency = 4h\n"
	    "\n[policy]\nroutes = social-services>job-centre, social-services>health, "
	    "job-centre>social-services, health>social-services, health>job-centre\n"
	    "\n[agency social.mantova]\nname = Servizi sociali Mantova\nkind = social-services\n"
	    "key = ../keys/social.mantova.pub\nservices = family-support, home-care\n"
	    "\n[agency cpi.mantova]\nname = Centro per l'Impiego Mantova\nkind = job-centre\n"
	    "key = ../keys/cpi.mantova.pub\n"
	    "services = employment-orientation, training-voucher\n"
	    "\n[agency asst.mantova]\nname = ASST Mantova\nkind = health\n"
	    "key = ../keys/asst.mantova.pub\nservices = family-counselling\n"
	    "\n[agency coord.mantova]\nname = Coordinamento\nkind = coordinator\n"
	    "key = ../keys/coord.mantova.pub\n",
	    n->dir, n->dir, n->expiry[0] ? n->expiry : "5d");
	write_text(tu_path(path, sizeof(path), "%s/broker/broker.ini", n->dir), ini);
}

static int net_setup(void **state)
{
	net *n = calloc(1, sizeof(*n));
	char path[1200], *out = NULL;
	const char *bin = getenv("RETE_BIN_DIR");
	snprintf(n->bin, sizeof(n->bin), "%s", bin && *bin ? bin : RETE_BIN_DIR);
	n->dir = tu_tmpdir("agent");
	assert_non_null(n->dir);
	mkdir(tu_path(path, sizeof(path), "%s/keys", n->dir), 0755);
	mkdir(tu_path(path, sizeof(path), "%s/broker", n->dir), 0755);
	mkdir(tu_path(path, sizeof(path), "%s/agents", n->dir), 0755);
	static const char *const all[] = {"broker.mantova", "social.mantova", "cpi.mantova",
					  "asst.mantova", "coord.mantova"};
	for (size_t i = 0; i < 5; i++) {
		int rc =
		    tu_run(&out, "'%s/rete' keygen %s --out '%s/keys'", n->bin, all[i], n->dir);
		if (rc != 0)
			fprintf(stderr, "keygen: %s\n", out ? out : "");
		free(out);
		assert_int_equal(rc, 0);
	}
	write_broker_ini(n);
	*state = n;
	return 0;
}

static int net_teardown(void **state)
{
	net *n = *state;
	int bad = 0;
	/* The agents must stop cleanly on SIGTERM (exit 0; under the
	 * sanitizers that also means no leak). */
	for (int p = P_COUNT - 1; p > P_BROKER; p--) {
		if (n->pid[p] <= 0)
			continue;
		int st = stop_within(n, p, 20000);
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "%s did not stop cleanly (status %d); see its log\n",
				party_ids[p], st);
			bad = -1;
		}
	}
	stop_within(n, P_BROKER, 20000);
	if (getenv("RETE_KEEP") == NULL && bad == 0)
		tu_rmrf(n->dir);
	else
		fprintf(stderr, "kept %s\n", n->dir);
	free(n->dir);
	free(n);
	return bad;
}

static int run_rete(net *n, char **out, const char *args)
{
	return tu_run(out, "'%s/rete' %s", n->bin, args);
}

/* status_until runs `rete CMD` (a `status`) until its output holds needle
 * or WAIT_MS pass; returns the last exit code, *out the last output. The
 * agent renames an inbox file into place a moment before it commits the
 * referral's new status (a crash in between rewrites the same file), so a
 * status read right after the file appeared may still show the one before:
 * ask again, with a deadline. */
static int status_until(net *n, char **out, const char *cmd, const char *needle)
{
	int64_t by = now_ms() + WAIT_MS;
	for (;;) {
		int rc = run_rete(n, out, cmd);
		if ((rc == 0 && strstr(*out, needle) != NULL) || now_ms() >= by)
			return rc;
		free(*out);
		*out = NULL;
		struct timespec nap = {0, 50 * 1000000L}; /* polling a read-only view */
		nanosleep(&nap, NULL);
	}
}

/* --- the closed loop and privacy ----------------------------------------- */

/* scan_file: does the file at path contain needle, byte by byte? */
static bool file_contains(const char *path, const char *needle)
{
	size_t len = 0, nl = strlen(needle);
	char *data = tu_read_file(path, &len);
	bool found = false;
	if (data == NULL)
		return false;
	for (size_t i = 0; i + nl <= len && !found; i++)
		found = memcmp(data + i, needle, nl) == 0;
	free(data);
	return found;
}

static void test_closed_loop(void **state)
{
	net *n = *state;
	char path[1200], dir[1200], cmd[2400], *out = NULL;

	start_broker(n);
	/* A coordinator watches the events from the start. */
	rete_seckey *coord = NULL;
	rete_pubkey bpk;
	rete_wire *sub = NULL;
	rete_msg m;
	assert_int_equal(
	    rete_keyfile_load_secret(
		tu_path(path, sizeof(path), "%s/keys/coord.mantova.key", n->dir), &coord, &m),
	    RETE_OK);
	assert_int_equal(
	    rete_keyfile_load_public(
		tu_path(path, sizeof(path), "%s/keys/broker.mantova.pub", n->dir), &bpk, &m),
	    RETE_OK);
	assert_int_equal(
	    rete_wire_subscribe(&sub,
				tu_path(path, sizeof(path), "ipc://%s/broker/events.sock", n->dir),
				&bpk, coord, &m),
	    RETE_OK);
	int64_t dl = now_ms() + 10000;
	while (!rete_wire_connected(sub) && now_ms() < dl) {
		Rete__Event *ev = NULL;
		if (rete_wire_event_recv(sub, 100, &ev, &m) == RETE_OK)
			rete__event__free_unpacked(ev, NULL);
	}
	assert_true(rete_wire_connected(sub));

	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);

	/* 1. social services refers with `rete send --wait`. */
	char *text = referral_text("soc-2026-0001", "cpi.mantova", "employment-orientation");
	write_text(tu_path(path, sizeof(path), "%s/referral.json", n->dir), text);
	free(text);
	snprintf(cmd, sizeof(cmd),
		 "send -c '%s/agents/social.mantova/agent.ini' '%s/referral.json' --wait 60",
		 n->dir, n->dir);
	int rc = run_rete(n, &out, cmd);
	if (rc != 0)
		fprintf(stderr, "rete send: %s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"messageId\": \"soc-2026-0001\""));
	free(out);
	json_t *rec = tu_load_json(
	    tu_path(path, sizeof(path),
		    "%s/agents/social.mantova/spool/sent/referral.json.receipt.json", n->dir));
	assert_string_equal(jget(rec, "messageId"), "soc-2026-0001");
	assert_string_equal(jget(rec, "origin"), "rete.test/mantova");
	assert_non_null(jget(rec, "leafHash"));
	assert_non_null(jget(rec, "checkpoint"));
	assert_non_null(strstr(jget(rec, "checkpoint"), "rete.test/mantova\n"));
	assert_true(json_is_array(json_object_get(rec, "proof")));
	json_decref(rec);

	/* 2. it is in the job centre's inbox, the person's data readable. */
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-referral.json", 1, WAIT_MS), 1);
	json_t *in = load_nth(dir, "-referral.json", 0);
	assert_string_equal(jget(in, "sender"), "social.mantova");
	assert_string_equal(jget(in, "message.id"), "soc-2026-0001");
	assert_string_equal(jget(in, "message.referral.service"), "employment-orientation");
	assert_string_equal(jget(in, "private.person.name"), PERSON_NAME);
	assert_string_equal(jget(in, "private.person.fiscalCode"), PERSON_CF);
	json_decref(in);

	/* 3. the delivery receipt at social services; status received. */
	spool(n, P_SOCIAL, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-delivery.json", 1, WAIT_MS), 1);
	in = load_nth(dir, "-delivery.json", 0);
	assert_string_equal(jget(in, "message.delivery.referralId"), "soc-2026-0001");
	assert_string_equal(jget(in, "referral.status"), "received");
	json_decref(in);
	snprintf(cmd, sizeof(cmd),
		 "status -c '%s/agents/social.mantova/agent.ini' soc-2026-0001 --json", n->dir);
	assert_int_equal(status_until(n, &out, cmd, "\"status\": \"received\""), 0);
	assert_non_null(strstr(out, "\"status\": \"received\""));
	free(out);

	/* 4. the job centre accepts, works on it, completes it. */
	text = update_text("soc-2026-0001", "accepted", NULL, false, NULL);
	put_outbox(n, P_CPI, "u1-accept.json", text);
	free(text);
	assert_int_equal(wait_count(dir, "-update.json", 1, WAIT_MS), 1);
	text = update_text("soc-2026-0001", "in-progress", "appointment-booked", false,
			   "Interview booked for Thursday at 10:00.");
	put_outbox(n, P_CPI, "u2-progress.json", text);
	free(text);
	assert_int_equal(wait_count(dir, "-update.json", 2, WAIT_MS), 2);
	text = update_text("soc-2026-0001", "completed", "traineeship-started", true, NULL);
	put_outbox(n, P_CPI, "u3-complete.json", text);
	free(text);
	assert_int_equal(wait_count(dir, "-update.json", 3, WAIT_MS), 3);
	static const char *const want[] = {"accepted", "in-progress", "completed"};
	for (size_t i = 0; i < 3; i++) {
		in = load_nth(dir, "-update.json", i);
		assert_string_equal(jget(in, "message.update.status"), want[i]);
		assert_string_equal(jget(in, "sender"), "cpi.mantova");
		if (i == 1) {
			assert_string_equal(jget(in, "message.update.businessStatus"),
					    "appointment-booked");
			assert_string_equal(jget(in, "private.notes"),
					    "Interview booked for Thursday at 10:00.");
		}
		if (i == 2) {
			assert_string_equal(jget(in, "message.update.outcome.result"),
					    "successful");
			/* the comment reached the recipient, sealed */
			assert_string_equal(jget(in, "private.outcomeText"),
					    "Enrolled in a six-month traineeship.");
		}
		json_decref(in);
	}

	/* 5. `rete status` shows the history (and the broker's status). */
	snprintf(cmd, sizeof(cmd), "status -c '%s/agents/social.mantova/agent.ini' soc-2026-0001",
		 n->dir);
	rc = status_until(n, &out, cmd, "status completed");
	if (rc != 0 || strstr(out, "completed") == NULL)
		fprintf(stderr, "rete status: %s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "status completed"));
	assert_non_null(strstr(out, "requested"));
	assert_non_null(strstr(out, "received"));
	assert_non_null(strstr(out, "accepted"));
	assert_non_null(strstr(out, "in-progress"));
	assert_non_null(strstr(out, "business status appointment-booked"));
	assert_non_null(strstr(out, "outcome successful"));
	assert_non_null(strstr(out, "broker: completed")); /* the broker's own status */
	free(out);
	/* The job centre's own record: complete once its file is in sent/. */
	char sent[1200];
	spool(n, P_CPI, "sent", sent, sizeof(sent));
	assert_true(wait_file(tu_path(path, sizeof(path), "%s/u3-complete.json", sent), WAIT_MS));
	snprintf(cmd, sizeof(cmd), "status -c '%s/agents/cpi.mantova/agent.ini' --json", n->dir);
	assert_int_equal(run_rete(n, &out, cmd), 0);
	assert_non_null(strstr(out, "\"role\": \"performer\""));
	assert_non_null(strstr(out, "\"status\": \"completed\""));
	free(out);

	/* 6. social services, a witness, saw its receipts included in a
	 * checkpoint consistent with the ones before. */
	char log[1200];
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	assert_true(
	    wait_contains(n->dir, log, "witness: receipt 1 included in checkpoint", WAIT_MS));
	assert_false(file_contains(log, "WITNESS ALARM"));

	/* 7. the log verifies, if the auditor's command exists yet. */
	if (run_rete(n, &out, "audit --help") == 0) {
		free(out);
		snprintf(cmd, sizeof(cmd),
			 "audit verify '%s/broker/store' --broker-key '%s/keys/broker.mantova.pub'",
			 n->dir, n->dir);
		rc = run_rete(n, &out, cmd);
		if (rc != 0)
			fprintf(stderr, "rete audit verify: %s\n", out);
		assert_int_equal(rc, 0);
	}
	free(out);

	/* 8. privacy: the name and fiscal code nowhere at the broker. */
	stop(n, P_SOCIAL, SIGTERM);
	stop(n, P_CPI, SIGTERM);
	stop(n, P_BROKER, SIGTERM);
	size_t nfiles = 0;
	char storedir[1200];
	tu_path(storedir, sizeof(storedir), "%s/broker/store", n->dir);
	DIR *d = opendir(storedir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		tu_path(path, sizeof(path), "%s/%s", storedir, e->d_name);
		assert_false(file_contains(path, PERSON_NAME));
		assert_false(file_contains(path, PERSON_CF));
		/* The store does hold the referral's metadata: the scan can fail. */
		if (file_contains(path, "soc-2026-0001"))
			nfiles++;
	}
	closedir(d);
	assert_true(nfiles >= 1);
	tu_path(path, sizeof(path), "%s/broker.log", n->dir);
	assert_false(file_contains(path, PERSON_NAME));
	assert_false(file_contains(path, PERSON_CF));
	size_t nevents = 0;
	bool saw_referral = false;
	for (;;) {
		Rete__Event *ev = NULL;
		if (rete_wire_event_recv(sub, 200, &ev, &m) != RETE_OK)
			break;
		size_t len = rete__event__get_packed_size(ev);
		uint8_t *buf = malloc(len + 1);
		rete__event__pack(ev, buf);
		for (size_t i = 0; i + strlen(PERSON_NAME) <= len; i++) {
			assert_true(memcmp(buf + i, PERSON_NAME, strlen(PERSON_NAME)) != 0);
			assert_true(i + strlen(PERSON_CF) > len ||
				    memcmp(buf + i, PERSON_CF, strlen(PERSON_CF)) != 0);
		}
		if (ev->referral_id != NULL && strcmp(ev->referral_id, "soc-2026-0001") == 0)
			saw_referral = true;
		free(buf);
		rete__event__free_unpacked(ev, NULL);
		nevents++;
	}
	assert_true(nevents >= 4);
	assert_true(saw_referral);
	rete_wire_close(&sub);
	rete_seckey_free(&coord);
}

/* --- the privacy sweep (issue 18: only codes in the log) ----------------- */

/* One document of the sweep: an example file sent from one agency to
 * another, its personal values (every string of its sealed part) allowed
 * only in the recipient's inbox and the sender's own copies. */
typedef struct sweep {
	json_t *allowed; /* value -> array of folders (relative to n->dir) */
	json_t *seen;	 /* value -> true once found where it is allowed */
	size_t files;
} sweep;

static void sweep_collect(sweep *s, json_t *v, const char *key, int from, int to)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach(v, k, x) sweep_collect(s, x, k, from, to);
		return;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) sweep_collect(s, x, key, from, to);
		return;
	}
	if (!json_is_string(v))
		return;
	/* words every document has, and the hash, are no one's data */
	if (strcmp(key, "kind") == 0 || strcmp(key, "mediaType") == 0 || strcmp(key, "sha256") == 0)
		return;
	char value[4096];
	snprintf(value, sizeof(value), "%s", json_string_value(v));
	if (strcmp(key, "content") == 0) { /* an attachment: its bytes */
		size_t len = 0;
		char bin[4096];
		assert_int_equal(sodium_base642bin((unsigned char *)bin, sizeof(bin) - 1, value,
						   strlen(value), NULL, &len, NULL,
						   sodium_base64_VARIANT_ORIGINAL),
				 0);
		bin[len] = '\0';
		char *nl = strchr(bin, '\n'); /* its first line */
		if (nl != NULL)
			*nl = '\0';
		snprintf(value, sizeof(value), "%s", bin);
	}
	if (strlen(value) < 6)
		return;
	json_t *dirs = json_object_get(s->allowed, value);
	if (dirs == NULL) {
		dirs = json_array();
		json_object_set_new(s->allowed, value, dirs);
	}
	char d[256];
	snprintf(d, sizeof(d), "agents/%s/spool/inbox/", party_ids[to]);
	json_array_append_new(dirs, json_string(d));
	static const char *const own[] = {"sent", "failed", "outbox"};
	for (size_t j = 0; j < 3; j++) {
		snprintf(d, sizeof(d), "agents/%s/spool/%s/", party_ids[from], own[j]);
		json_array_append_new(dirs, json_string(d));
	}
}

/* sweep_send loads an example file (examples/REL), applies the changes
 * (a JSON object merged into the document's top level and into its body:
 * "top" and "body" keys), records its personal values and drops it into
 * from's outbox as name. */
static void sweep_send(net *n, sweep *s, int from, int to, const char *rel, const char *name,
		       const char *changes)
{
	char path[1200];
	json_t *doc =
	    tu_load_json(tu_path(path, sizeof(path), "%s/examples/%s", RETE_SOURCE_DIR, rel));
	assert_non_null(doc);
	json_object_set_new(doc, "recipient", json_string(party_ids[to]));
	if (changes != NULL) {
		json_t *c = json_loads(changes, 0, NULL);
		assert_non_null(c);
		json_object_update(doc, json_object_get(c, "top"));
		if (json_is_null(json_object_get(doc, "private"))) /* null: no sealed part */
			json_object_del(doc, "private");
		const char *bodies[] = {"referral", "update", "note"};
		for (size_t i = 0; i < 3; i++)
			if (json_object_get(doc, bodies[i]) != NULL && json_object_get(c, "body"))
				json_object_update(json_object_get(doc, bodies[i]),
						   json_object_get(c, "body"));
		json_t *drop = json_object_get(c, "drop");
		size_t i;
		json_t *x;
		json_array_foreach(drop, i, x)
		    json_object_del(json_object_get(doc, "referral"), json_string_value(x));
		json_decref(c);
	}
	if (json_object_get(doc, "private") != NULL)
		sweep_collect(s, json_object_get(doc, "private"), "", from, to);
	char *text = json_dumps(doc, JSON_INDENT(2));
	put_outbox(n, from, name, text);
	free(text);
	json_decref(doc);
}

/* in_has_value: an inbox file of dir has `value` at the dotted path. */
static void in_has_value(const char *dir, const char *dotted, const char *value)
{
	size_t cnt;
	char **names = list_suffix(dir, ".json", &cnt);
	bool found = false;
	for (size_t i = 0; i < cnt && !found; i++) {
		json_t *in = load_nth(dir, ".json", i);
		const char *v = jget(in, dotted);
		found = v != NULL && strcmp(v, value) == 0;
		json_decref(in);
	}
	free_list(names, cnt);
	if (!found)
		fail_msg("no file of %s has %s = '%s'", dir, dotted, value);
}

/* sweep_bytes: no value of s is in data (len bytes) from `where`, unless
 * where is under one of the value's allowed folders. */
static void sweep_bytes(sweep *s, const char *where, const char *data, size_t len)
{
	const char *value;
	json_t *dirs;
	json_object_foreach(s->allowed, value, dirs)
	{
		size_t vl = strlen(value);
		bool found = false;
		for (size_t i = 0; i + vl <= len && !found; i++)
			found = data[i] == value[0] && memcmp(data + i, value, vl) == 0;
		if (!found)
			continue;
		bool ok = false;
		size_t k;
		json_t *d;
		json_array_foreach(dirs, k, d) ok =
		    ok || strncmp(where, json_string_value(d), strlen(json_string_value(d))) == 0;
		if (!ok)
			fail_msg("personal data '%s' of the examples found in %s", value, where);
		json_object_set_new(s->seen, value, json_true());
	}
}

/* sweep_dir scans every regular file in n->dir/rel (and, when recurse,
 * under it), raw bytes: LMDB files, logs, configuration, spool files. */
static void sweep_dir(net *n, sweep *s, const char *rel, bool recurse)
{
	char path[1400];
	DIR *d = opendir(tu_path(path, sizeof(path), "%s/%s", n->dir, rel));
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char sub[1200];
		snprintf(sub, sizeof(sub), "%s%s", rel, e->d_name);
		struct stat st;
		assert_int_equal(lstat(tu_path(path, sizeof(path), "%s/%s", n->dir, sub), &st), 0);
		if (S_ISDIR(st.st_mode)) {
			strncat(sub, "/", sizeof(sub) - strlen(sub) - 1);
			if (recurse)
				sweep_dir(n, s, sub, true);
		} else if (S_ISREG(st.st_mode)) {
			size_t len = 0;
			char *data = tu_read_file(path, &len);
			assert_non_null(data);
			sweep_bytes(s, sub, data, len);
			free(data);
			s->files++;
		}
	}
	closedir(d);
}

/* The examples' personal values (names, fiscal codes, phone numbers,
 * e-mail addresses, free texts, an attachment) travel a small network of
 * real processes; afterwards every file under the broker's and the agents'
 * folders (LMDB files included, raw bytes), every log line, the monitor's
 * and the report's outputs and the broker's events are scanned: none of
 * those values is anywhere but in the recipient's inbox and the sender's
 * own copies (sent/, failed/, outbox/). */
/* sweep_wait is wait_count that, short of want, shows what the agents put
 * in failed/ and the ends of their logs. */
static void sweep_wait(net *n, const char *dir, const char *suffix, size_t want)
{
	size_t got = wait_count(dir, suffix, want, WAIT_MS);
	if (got >= want)
		return;
	char path[1200], *out = NULL;
	for (int p = P_SOCIAL; p <= P_ASST; p++) {
		tu_run(&out, "cat '%s'/*.error.json 2>/dev/null; tail -n 15 '%s/%s.log'",
		       spool(n, p, "failed", path, sizeof(path)), n->dir, party_ids[p]);
		fprintf(stderr, "---- %s ----\n%s\n", party_ids[p], out ? out : "");
		free(out);
	}
	fail_msg("%s: %zu files ending in %s, %zu expected", dir, got, suffix, want);
}

#define HABIT_TEXT    "Maria Rossi found a job on her own."
#define HABIT_OUTCOME "She starts the traineeship at Officine Bassi on Monday."

static void test_privacy_sweep(void **state)
{
	net *n = *state;
	char path[1200], dir[1200], cmd[2600], *out = NULL;
	sweep s = {.allowed = json_object(), .seen = json_object()};
	json_t *habit;

	start_broker(n);
	rete_seckey *coord = NULL;
	rete_pubkey bpk;
	rete_wire *sub = NULL;
	rete_msg m;
	assert_int_equal(
	    rete_keyfile_load_secret(
		tu_path(path, sizeof(path), "%s/keys/coord.mantova.key", n->dir), &coord, &m),
	    RETE_OK);
	assert_int_equal(
	    rete_keyfile_load_public(
		tu_path(path, sizeof(path), "%s/keys/broker.mantova.pub", n->dir), &bpk, &m),
	    RETE_OK);
	assert_int_equal(
	    rete_wire_subscribe(&sub,
				tu_path(path, sizeof(path), "ipc://%s/broker/events.sock", n->dir),
				&bpk, coord, &m),
	    RETE_OK);
	int64_t dl = now_ms() + WAIT_MS;
	while (!rete_wire_connected(sub) && now_ms() < dl) {
		Rete__Event *ev = NULL;
		if (rete_wire_event_recv(sub, 100, &ev, &m) == RETE_OK)
			rete__event__free_unpacked(ev, NULL);
	}
	assert_true(rete_wire_connected(sub));
	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);
	start_agent(n, P_ASST);

	/* R1: the example referral, accepted, in progress, a note, completed */
	sweep_send(n, &s, P_SOCIAL, P_CPI, "messages/referral.json", "r1.json", NULL);
	sweep_wait(n, spool(n, P_CPI, "inbox", dir, sizeof(dir)), "-referral.json", 1);
	static const char *const r1_updates[] = {"update-accepted", "update-in-progress",
						 "update-completed"};
	spool(n, P_SOCIAL, "inbox", dir, sizeof(dir));
	size_t updates = 0;
	for (size_t i = 0; i < 3; i++) {
		char rel[128], name[64];
		snprintf(rel, sizeof(rel), "messages/%s.json", r1_updates[i]);
		snprintf(name, sizeof(name), "u1-%zu.json", i);
		sweep_send(n, &s, P_CPI, P_SOCIAL, rel, name, NULL);
		updates++;
		sweep_wait(n, dir, "-update.json", updates);
	}
	sweep_send(n, &s, P_SOCIAL, P_CPI, "messages/note.json", "n1.json", NULL);
	/* the outcome's comment written in the metadata: refused before sealing */
	sweep_send(n, &s, P_CPI, P_SOCIAL, "messages/update-completed.json", "u1-habit.json",
		   "{\"top\": {\"private\": null}, \"body\": {\"outcome\": {\"result\": "
		   "\"successful\", \"text\": \"" HABIT_OUTCOME "\"}}}");
	habit = json_string(HABIT_OUTCOME);
	sweep_collect(&s, habit, "text", P_CPI, P_SOCIAL);
	json_decref(habit);

	/* R2, R3, R4: the mother's demo referral, rejected (with the reason's
	 * sentence sealed), cancelled, completed unsuccessfully */
	sweep_send(n, &s, P_SOCIAL, P_CPI, "demo/referral-mother.json", "r2.json",
		   "{\"top\": {\"id\": \"soc-sweep-2\"}}");
	sweep_send(n, &s, P_SOCIAL, P_CPI, "demo/referral-mother.json", "r3.json",
		   "{\"top\": {\"id\": \"soc-sweep-3\"}}");
	sweep_send(n, &s, P_SOCIAL, P_CPI, "demo/referral-mother.json", "r4.json",
		   "{\"top\": {\"id\": \"soc-sweep-4\"}}");
	/* R5: the son's, to the clinic, rejected with the demo's sentence */
	sweep_send(n, &s, P_SOCIAL, P_ASST, "demo/referral-son.json", "r5.json",
		   "{\"top\": {\"id\": \"soc-sweep-5\"}, \"body\": {\"service\": "
		   "\"family-counselling\"}}");
	/* R6: the health visitor's referral without consent (legal obligation) */
	sweep_send(n, &s, P_ASST, P_SOCIAL, "messages/referral-legal-obligation.json", "r6.json",
		   "{\"top\": {\"id\": \"asst-sweep-6\"}, \"body\": {\"service\": "
		   "\"family-support\"}, \"drop\": [\"previousReferral\"]}");
	sweep_wait(n, spool(n, P_CPI, "inbox", dir, sizeof(dir)), "-referral.json", 4);
	sweep_wait(n, spool(n, P_ASST, "inbox", dir, sizeof(dir)), "-referral.json", 1);
	sweep_send(n, &s, P_CPI, P_SOCIAL, "messages/update-rejected.json", "u2.json",
		   "{\"body\": {\"referralId\": \"soc-sweep-2\"}}");
	/* an operator who writes the sentence in the metadata by habit, as
	 * protocol 2 allowed: the agent keeps it in failed/, the log never
	 * sees it; then the right way, sealed (the agent takes the files in
	 * the order of their names) */
	sweep_send(n, &s, P_SOCIAL, P_CPI, "messages/update-cancelled.json", "u3-habit.json",
		   "{\"top\": {\"private\": null}, \"body\": {\"referralId\": \"soc-sweep-3\", "
		   "\"statusReason\": {\"code\": \"no-longer-needed\", \"text\": \"" HABIT_TEXT
		   "\"}}}");
	habit = json_string(HABIT_TEXT);
	sweep_collect(&s, habit, "text", P_SOCIAL, P_CPI);
	json_decref(habit);
	sweep_send(n, &s, P_SOCIAL, P_CPI, "messages/update-cancelled.json", "u3.json",
		   "{\"body\": {\"referralId\": \"soc-sweep-3\"}}");
	sweep_send(n, &s, P_ASST, P_SOCIAL, "messages/update-rejected.json", "u5.json",
		   "{\"top\": {\"private\": {\"statusText\": \"No psychologist free for new "
		   "cases before February.\"}, \"operator\": {\"staffId\": \"cf-003\", \"role\": "
		   "\"psychologist\"}}, \"body\": {\"referralId\": \"soc-sweep-5\"}}");
	spool(n, P_SOCIAL, "inbox", dir, sizeof(dir));
	updates += 2;
	for (size_t i = 0; i < 3; i++) {
		char name[64];
		snprintf(name, sizeof(name), "u4-%zu.json", i);
		sweep_send(n, &s, P_CPI, P_SOCIAL,
			   i == 0   ? "messages/update-accepted.json"
			   : i == 1 ? "messages/update-in-progress.json"
				    : "messages/update-completed-unsuccessful.json",
			   name, "{\"body\": {\"referralId\": \"soc-sweep-4\"}}");
		updates++;
		sweep_wait(n, dir, "-update.json", updates);
	}
	/* everything arrived: R6 and the cancellation included */
	sweep_wait(n, dir, "-referral.json", 1);
	sweep_wait(n, spool(n, P_CPI, "inbox", dir, sizeof(dir)), "-update.json", 1);
	sweep_wait(n, dir, "-note.json", 1);
	/* the sealed free text reached the recipient */
	in_has_value(spool(n, P_SOCIAL, "inbox", dir, sizeof(dir)), "private.statusText",
		     "No psychologist free for new cases before February.");

	/* the coordinator's monitor and report (a later console's pages join
	 * this list) */
	tu_path(path, sizeof(path), "%s/coord.ini", n->dir);
	snprintf(cmd, sizeof(cmd),
		 "[client]\nid = coord.mantova\nkey = keys/coord.mantova.key\n"
		 "broker = ipc://%s/broker/broker.sock\nbroker_key = keys/broker.mantova.pub\n"
		 "events = ipc://%s/broker/events.sock\ntime_zone = Europe/Rome\n",
		 n->dir, n->dir);
	write_text(path, cmd);
	static const char *const views[] = {
	    "monitor -c '%s/coord.ini' --once", "monitor -c '%s/coord.ini' --once --json",
	    "report -c '%s/coord.ini' --from 2026-01-01 --to 2099-12-31 --by agency,service "
	    "--format csv",
	    "report -c '%s/coord.ini' --from 2026-01-01 --to 2099-12-31 --by service --format "
	    "json"};
	for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		char args[1600];
		snprintf(args, sizeof(args), views[i], n->dir);
		int rc = run_rete(n, &out, args);
		if (rc != 0)
			fprintf(stderr, "rete %s: %s\n", args, out);
		assert_int_equal(rc, 0);
		/* they do show the referrals' codes: the scan can fail */
		if (strstr(out, "employment-orientation") == NULL)
			fprintf(stderr, "rete %s:\n%s\n", args, out);
		assert_non_null(strstr(out, "employment-orientation"));
		sweep_bytes(&s, args, out, strlen(out));
		free(out);
	}

	/* every event the broker published */
	size_t nevents = 0;
	for (;;) {
		Rete__Event *ev = NULL;
		if (rete_wire_event_recv(sub, 500, &ev, &m) != RETE_OK)
			break;
		size_t len = rete__event__get_packed_size(ev);
		uint8_t *buf = malloc(len + 1);
		assert_non_null(buf);
		rete__event__pack(ev, buf);
		sweep_bytes(&s, "an event", (const char *)buf, len);
		free(buf);
		rete__event__free_unpacked(ev, NULL);
		nevents++;
	}
	assert_true(nevents >= 20);
	rete_wire_close(&sub);
	rete_seckey_free(&coord);

	/* every file, once the processes have written all they will */
	stop(n, P_SOCIAL, SIGTERM);
	stop(n, P_CPI, SIGTERM);
	stop(n, P_ASST, SIGTERM);
	stop(n, P_BROKER, SIGTERM);
	sweep_dir(n, &s, "broker/", true); /* the log first */
	sweep_dir(n, &s, "agents/", true);
	sweep_dir(n, &s, "", false); /* the logs, coord.ini */
	/* nothing failed but the habit: every example is valid under protocol 3 */
	for (int p = P_SOCIAL; p <= P_ASST; p++)
		assert_int_equal(
		    tu_count_suffix(spool(n, p, "failed", dir, sizeof(dir)), ".error.json"),
		    p == P_ASST ? 0 : 1);
	json_t *e = tu_load_json(tu_path(path, sizeof(path), "%s/u1-habit.json.error.json",
					 spool(n, P_CPI, "failed", dir, sizeof(dir))));
	assert_string_equal(jget(e, "code"), "personal-data");
	assert_string_equal(jget(e, "field"), "update.outcome.text");
	assert_non_null(strstr(jget(e, "error"), "private.outcomeText"));
	assert_null(strstr(jget(e, "error"), "Maria")); /* never repeated */
	json_decref(e);
	e = tu_load_json(tu_path(path, sizeof(path), "%s/u3-habit.json.error.json",
				 spool(n, P_SOCIAL, "failed", dir, sizeof(dir))));
	assert_string_equal(jget(e, "code"), "personal-data");
	assert_string_equal(jget(e, "field"), "update.statusReason.text");
	assert_non_null(strstr(jget(e, "error"), "private.statusText"));
	json_decref(e);

	/* the scan sees the values where they belong (so it can fail) */
	static const char *const must_see[] = {
	    PERSON_NAME,
	    PERSON_CF,
	    "BNCLCU10T12E897Q",
	    "+39 0376 555 0101",
	    "maria.rossi@example.org",
	    "No psychologist free for new cases before February.",
	    "Enrolled in a six-month traineeship.",
	    "SM-P-000417",
	    "Service agreement, 24 November 2026",
	    HABIT_TEXT};
	for (size_t i = 0; i < sizeof(must_see) / sizeof(must_see[0]); i++) {
		if (json_object_get(s.allowed, must_see[i]) == NULL)
			fail_msg("'%s' is not among the examples' values", must_see[i]);
		if (json_object_get(s.seen, must_see[i]) == NULL)
			fail_msg("'%s' was not found in the recipient's inbox", must_see[i]);
	}
	assert_true(s.files >= 20);
	print_message("privacy sweep: %zu values, %zu files, %zu events: only where allowed\n",
		      json_object_size(s.allowed), s.files, nevents);
	json_decref(s.allowed);
	json_decref(s.seen);
}

/* --- failures do not stop the agent -------------------------------------- */

static void test_failed_files(void **state)
{
	net *n = *state;
	char dir[1200], path[1200];

	start_broker(n);
	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);
	spool(n, P_SOCIAL, "failed", dir, sizeof(dir));

	put_outbox(n, P_SOCIAL, "a-malformed.json",
		   "{\"recipient\": \"cpi.mantova\", \"referral\": ");
	put_referral(n, P_SOCIAL, "b-unknown.json", NULL, "nobody.mantova",
		     "employment-orientation");
	put_referral(n, P_SOCIAL, "c-service.json", NULL, "cpi.mantova", "housing-support");
	char *t = referral_text(NULL, "cpi.mantova", "employment-orientation");
	json_t *j = json_loads(t, 0, NULL);
	free(t);
	json_object_set_new(json_object_get(j, "referral"), "priority", json_string("whenever"));
	json_object_del(json_object_get(j, "referral"), "service");
	t = json_dumps(j, 0);
	json_decref(j);
	put_outbox(n, P_SOCIAL, "d-invalid.json", t);
	free(t);

	assert_int_equal(wait_count(dir, ".error.json", 4, WAIT_MS), 4);
	json_t *e =
	    tu_load_json(tu_path(path, sizeof(path), "%s/a-malformed.json.error.json", dir));
	assert_string_equal(jget(e, "file"), "a-malformed.json");
	assert_string_equal(jget(e, "code"), "invalid");
	assert_non_null(strstr(jget(e, "error"), "line 1"));
	json_decref(e);
	e = tu_load_json(tu_path(path, sizeof(path), "%s/b-unknown.json.error.json", dir));
	assert_string_equal(jget(e, "code"), "unknown-party");
	assert_string_equal(jget(e, "field"), "recipient");
	assert_non_null(strstr(jget(e, "error"), "nobody.mantova"));
	json_decref(e);
	e = tu_load_json(tu_path(path, sizeof(path), "%s/c-service.json.error.json", dir));
	assert_string_equal(jget(e, "code"), "service-not-offered");
	assert_string_equal(jget(e, "field"), "referral.service");
	assert_non_null(strstr(jget(e, "error"), "housing-support"));
	json_decref(e);
	e = tu_load_json(tu_path(path, sizeof(path), "%s/d-invalid.json.error.json", dir));
	assert_string_equal(jget(e, "code"), "invalid");
	assert_true(json_array_size(json_object_get(e, "problems")) >= 1);
	char *dump = json_dumps(e, 0);
	assert_non_null(strstr(dump, "referral.priority"));
	free(dump);
	json_decref(e);
	/* The answer is written first, then the file itself moves beside it. */
	assert_true(wait_file(tu_path(path, sizeof(path), "%s/c-service.json", dir), WAIT_MS));

	/* The agent keeps working. */
	put_referral(n, P_SOCIAL, "e-good.json", "soc-ok-1", "cpi.mantova",
		     "employment-orientation");
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-referral.json", 1, WAIT_MS), 1);
	spool(n, P_SOCIAL, "sent", dir, sizeof(dir));
	assert_true(
	    wait_file(tu_path(path, sizeof(path), "%s/e-good.json.receipt.json", dir), WAIT_MS));

	/* `rete send` refuses an invalid file before it reaches the outbox. */
	char *out = NULL, cmd[2400];
	write_text(tu_path(path, sizeof(path), "%s/bad.json", n->dir),
		   "{\"recipient\": \"cpi.mantova\", \"referral\": {\"priority\": \"whenever\"}}");
	snprintf(cmd, sizeof(cmd), "send -c '%s/agents/social.mantova/agent.ini' '%s/bad.json'",
		 n->dir, n->dir);
	assert_int_equal(run_rete(n, &out, cmd), 1);
	assert_non_null(strstr(out, "referral.priority"));
	free(out);
	assert_int_equal(
	    tu_count_suffix(spool(n, P_SOCIAL, "outbox", dir, sizeof(dir)), "bad.json"), 0);

	/* `rete send --wait` reports a refusal by the broker: error printed,
	 * exit 1; the second file of the same name is queued under a new one. */
	t = referral_text(NULL, "cpi.mantova", "housing-support");
	write_text(tu_path(path, sizeof(path), "%s/c-service.json", n->dir), t);
	free(t);
	snprintf(cmd, sizeof(cmd),
		 "send -c '%s/agents/social.mantova/agent.ini' '%s/c-service.json' --wait 60",
		 n->dir, n->dir);
	assert_int_equal(run_rete(n, &out, cmd), 1);
	assert_non_null(strstr(out, "\"code\": \"service-not-offered\""));
	assert_non_null(strstr(out, "c-service-2.json"));
	free(out);
}

/* --- a delivery that cannot be opened does not block the queue ------------- */

/* submit_as sends one referral as `party` over its own connection, its
 * private part sealed to seal_to (NULL: a fresh random key nobody has). */
static void submit_as(net *n, const char *party, const char *id, const rete_pubkey *seal_to)
{
	char path[1200], ep[1200];
	rete_msg m;
	rete_seckey *sk = NULL, *other = NULL;
	rete_pubkey bpk;
	rete_wire *w = NULL;
	assert_int_equal(rete_keyfile_load_secret(
			     tu_path(path, sizeof(path), "%s/keys/%s.key", n->dir, party), &sk, &m),
			 RETE_OK);
	assert_int_equal(
	    rete_keyfile_load_public(
		tu_path(path, sizeof(path), "%s/keys/broker.mantova.pub", n->dir), &bpk, &m),
	    RETE_OK);
	assert_int_equal(
	    rete_wire_connect(&w, tu_path(ep, sizeof(ep), "ipc://%s/broker/broker.sock", n->dir),
			      &bpk, sk, &m),
	    RETE_OK);
	assert_int_equal(rete_wire_hello(w, party, "test_agent", &m), RETE_OK);
	Rete__BrokerFrame *f = NULL;
	int64_t dl = now_ms() + WAIT_MS;
	char origin[256] = "";
	while (origin[0] == '\0' && now_ms() < dl) {
		if (rete_wire_recv(w, 200, &f, &m) != RETE_OK)
			continue;
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_WELCOME)
			snprintf(origin, sizeof(origin), "%s", f->welcome->origin);
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_string_equal(origin, "rete.test/mantova");

	char *text = referral_text(id, "cpi.mantova", "employment-orientation");
	json_t *doc = json_loads(text, 0, NULL);
	free(text);
	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	rete_problems pr = {0};
	assert_int_equal(rete_json_load_outbox(NULL, doc, &msg, &priv, &pr), RETE_OK);
	json_decref(doc);
	/* Unset strings are protobuf-c's shared "", never to be freed. */
	if (msg->sender != protobuf_c_empty_string)
		free(msg->sender);
	msg->sender = strdup(party);
	if (msg->origin != protobuf_c_empty_string)
		free(msg->origin);
	msg->origin = strdup(origin);
	msg->created_at = 1763800000000;
	if (seal_to == NULL) {
		assert_int_equal(rete_seckey_generate(&other, &m), RETE_OK);
		seal_to = &other->pub;
	}
	rete_buf sealed = {0}, signed_msg = {0};
	uint8_t hash[RETE_HASH_LEN];
	assert_int_equal(rete_seal(priv, seal_to, &sealed, hash, &m), RETE_OK);
	msg->referral->private_sha256.data = malloc(RETE_HASH_LEN);
	memcpy(msg->referral->private_sha256.data, hash, RETE_HASH_LEN);
	msg->referral->private_sha256.len = RETE_HASH_LEN;
	assert_int_equal(rete_message_sign(msg, sk, &signed_msg, &m), RETE_OK);
	assert_int_equal(
	    rete_wire_submit(w, signed_msg.data, signed_msg.len, sealed.data, sealed.len, &m),
	    RETE_OK);
	/* Wait for the receipt: the broker took it. */
	bool receipted = false;
	dl = now_ms() + WAIT_MS;
	while (!receipted && now_ms() < dl) {
		if (rete_wire_recv(w, 200, &f, &m) != RETE_OK)
			continue;
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_RECEIPT) {
			assert_int_equal(f->receipt->error, 0);
			receipted = true;
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
	assert_true(receipted);
	rete_buf_free(&sealed);
	rete_buf_free(&signed_msg);
	protobuf_c_message_free_unpacked(&msg->base, NULL);
	protobuf_c_message_free_unpacked(&priv->base, NULL);
	rete_seckey_free(&other);
	rete_seckey_free(&sk);
	rete_wire_close(&w);
}

static void test_unopenable_delivery(void **state)
{
	net *n = *state;
	char dir[1200], log[1200];

	start_broker(n);
	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);
	/* The health service (no agent of its own here) sends a referral whose
	 * sealed part was sealed to a key the job centre does not have. */
	submit_as(n, "asst.mantova", "asst-bad-1", NULL);
	tu_path(log, sizeof(log), "%s/cpi.mantova.log", n->dir);
	assert_true(
	    wait_contains(n->dir, log, "refused: message asst-bad-1 from asst.mantova", WAIT_MS));
	/* The queue moves on: a good referral behind it arrives. */
	put_referral(n, P_SOCIAL, "good.json", "soc-after-bad", "cpi.mantova",
		     "employment-orientation");
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-referral.json", 1, WAIT_MS), 1);
	json_t *in = load_nth(dir, "-referral.json", 0);
	assert_string_equal(jget(in, "message.id"), "soc-after-bad");
	json_decref(in);
	/* And nothing was written for the entry that could not be opened. */
	assert_int_equal(tu_count_suffix(dir, ".json"), 1);
}

/* --- configuration mistakes are named, exit 2 ------------------------------ */

/* agent_refuses runs rete-agent -c ini FLAG (flag "" to start it) and
 * checks that it exits 2 saying said (under a timeout: an agent that takes
 * the file starts, and runs). */
static void agent_refuses(net *n, const char *ini, const char *flag, const char *said)
{
	char *out = NULL;
	int rc = tu_run(&out, "timeout 60 '%s/rete-agent' -c '%s' %s", n->bin, ini, flag);
	if (rc != 2 || strstr(out, said) == NULL)
		fprintf(stderr, "rete-agent -c %s %s: exit %d: %s\n", ini, flag, rc, out);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, said));
	free(out);
}

static void test_config_errors(void **state)
{
	net *n = *state;
	char ini[1200], *out = NULL;
	struct {
		const char *text;
		const char *said;
	} cases[] = {
	    {"[agent]\nid = social.mantova\nkey = ../keys/social.mantova.key\n"
	     "broker = ipc:///nowhere\nbroker_key = ../keys/broker.mantova.pub\ncolour = red\n",
	     "colour: unknown key"},
	    {"[agent]\nid = social.mantova\nkey = ../keys/social.mantova.key\n"
	     "broker = ipc:///nowhere\n",
	     "broker_key is missing"},
	    {"[agent]\nid = Social Services\n", "is not a party id"},
	    {"[agent]\nid = social.mantova\nkey = ../keys/social.mantova.key\n"
	     "broker = ipc:///nowhere\nbroker_key = ../keys/broker.mantova.pub\npoll = soon\n",
	     "poll: 'soon' is not a duration"},
	    {"[agent]\nid = social.mantova\nkey = ../keys/nobody.key\n"
	     "broker = ipc:///nowhere\nbroker_key = ../keys/broker.mantova.pub\n",
	     "nobody.key"},
	    /* a key given twice: refused (the last one was taken silently) */
	    {"[agent]\nid = social.mantova\nkey = ../keys/social.mantova.key\n"
	     "broker = ipc:///nowhere\nbroker_key = ../keys/broker.mantova.pub\n"
	     "[privacy]\nkeep_inbox = 30d\nkeep_inbox = 10y\n",
	     "[privacy] keep_inbox: given twice; keep one"},
	};
	tu_path(ini, sizeof(ini), "%s/agents/bad.ini", n->dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_text(ini, cases[i].text);
		agent_refuses(n, ini, "", cases[i].said);
	}
	assert_int_equal(tu_run(&out, "'%s/rete-agent'", n->bin), 2);
	free(out);
	/* What the start would not get past, --check-config says too. A
	 * metrics address of no interface of this host: the start refused
	 * it, the check said "fine". */
	struct {
		const char *line, *said;
	} checks[] = {
	    {"broker = ipc:///nowhere\nmetrics = 192.0.2.1:9465\n",
	     "no interface of this host has"},
	    /* the store in a folder of the spool: it took its own data.mdb,
	     * lock.mdb and persons.jsonl for outgoing files and moved them to
	     * failed/ (persons.jsonl again at each sync, thousands of times) */
	    {"broker = ipc:///nowhere\nspool = sp\ndata = sp/outbox\n",
	     "/agents/sp/outbox is the spool's outbox/"},
	    {"broker = ipc:///nowhere\nspool = sp\ndata = ./sp/inbox/\n",
	     "/agents/sp/inbox is the spool's inbox/"},
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text),
			 "[agent]\nid = social.mantova\nkey = ../keys/social.mantova.key\n"
			 "broker_key = ../keys/broker.mantova.pub\n%s",
			 checks[i].line);
		write_text(ini, text);
		agent_refuses(n, ini, "--check-config", checks[i].said);
		agent_refuses(n, ini, "", checks[i].said); /* and the start, at once */
	}
	/* `rete send --wait` with no agent running: queued, then exit 1 at
	 * the timeout. */
	write_agent_ini(n, P_SOCIAL);
	char file[1200], cmd[2600], queued[1300];
	char *t = referral_text(NULL, "cpi.mantova", "employment-orientation");
	write_text(tu_path(file, sizeof(file), "%s/r.json", n->dir), t);
	free(t);
	snprintf(cmd, sizeof(cmd), "send -c '%s/agents/social.mantova/agent.ini' '%s' --wait 1",
		 n->dir, file);
	assert_int_equal(run_rete(n, &out, cmd), 1);
	assert_non_null(strstr(out, "no answer for r.json within 1 s"));
	free(out);
	tu_path(queued, sizeof(queued), "%s/agents/social.mantova/spool/outbox/r.json", n->dir);
	assert_int_equal(access(queued, F_OK), 0);
	/* A secret key others can read is refused. */
	char key[1200];
	tu_path(key, sizeof(key), "%s/keys/social.mantova.key", n->dir);
	chmod(key, 0644);
	write_text(ini, "[agent]\nid = social.mantova\nkey = ../keys/social.mantova.key\n"
			"broker = ipc:///nowhere\nbroker_key = ../keys/broker.mantova.pub\n");
	assert_int_equal(tu_run(&out, "'%s/rete-agent' -c '%s'", n->bin, ini), 2);
	assert_non_null(strstr(out, "social.mantova.key"));
	free(out);
	chmod(key, 0600);
}

/* --- a referral nobody collects ------------------------------------------- */

static void test_not_delivered(void **state)
{
	net *n = *state;
	char dir[1200], cmd[2400], *out = NULL;

	snprintf(n->expiry, sizeof(n->expiry), "2s");
	write_broker_ini(n);
	start_broker(n);
	start_agent(n, P_SOCIAL);
	/* The health service's agent is not running: the referral expires. */
	put_referral(n, P_SOCIAL, "e1.json", "soc-expire-1", "asst.mantova", "family-counselling");
	spool(n, P_SOCIAL, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-notice.json", 1, WAIT_MS), 1);
	json_t *in = load_nth(dir, "-notice.json", 0);
	assert_string_equal(jget(in, "kind"), "notice");
	assert_string_equal(jget(in, "message.notice.kind"), "not-delivered");
	assert_string_equal(jget(in, "message.notice.referralId"), "soc-expire-1");
	/* The notice comes with the referral it concerns. */
	assert_string_equal(jget(in, "referral.id"), "soc-expire-1");
	assert_string_equal(jget(in, "referral.performer"), "asst.mantova");
	assert_string_equal(jget(in, "referral.status"), "failed");
	json_decref(in);
	snprintf(cmd, sizeof(cmd), "status -c '%s/agents/social.mantova/agent.ini' soc-expire-1",
		 n->dir);
	assert_int_equal(status_until(n, &out, cmd, "status failed"), 0);
	assert_non_null(strstr(out, "status failed"));
	assert_non_null(strstr(out, "notice not-delivered"));
	free(out);
}

/* --- hooks ---------------------------------------------------------------- */

static void test_failing_hook(void **state)
{
	net *n = *state;
	char dir[1200], path[1200];

	char body[2048];
	snprintf(body, sizeof(body),
		 "#!/bin/sh\necho \"$RETE_INDEX $1\" >> '%s/hook.out'\nexit 3\n", n->dir);
	set_hook(n, P_CPI, body);

	start_broker(n);
	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);
	for (int i = 0; i < 3; i++) {
		char name[64], id[64];
		snprintf(name, sizeof(name), "r%d.json", i);
		snprintf(id, sizeof(id), "soc-hook-%d", i);
		put_referral(n, P_SOCIAL, name, id, "cpi.mantova", "training-voucher");
	}
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-referral.json", 3, WAIT_MS), 3);
	/* Each hook ran (and failed) once per file. */
	tu_path(path, sizeof(path), "%s/hook.out", n->dir);
	assert_int_equal(wait_lines(n->dir, path, 3, WAIT_MS), 3);
	char *data = tu_read_file(path, NULL);
	assert_non_null(strstr(data, "-referral.json"));
	free(data);
	tu_path(path, sizeof(path), "%s/cpi.mantova.log", n->dir);
	/* Each failure is logged (once reaped) and did not stop the others. */
	assert_int_equal(wait_occurrences(n->dir, path, "exited with 3", 3, WAIT_MS), 3);
}

/* --- a key the broker does not know ----------------------------------------- */

static void test_refused_key(void **state)
{
	net *n = *state;
	char path[1200], log[1200], *out = NULL;

	start_broker(n);
	/* asst.mantova runs with a key that is not the directory's. */
	mkdir(tu_path(path, sizeof(path), "%s/other", n->dir), 0755);
	assert_int_equal(tu_run(&out,
				"'%s/rete' keygen asst.mantova --out '%s/other' && "
				"cp '%s/other/asst.mantova.key' '%s/keys/asst.mantova.key'",
				n->bin, n->dir, n->dir, n->dir),
			 0);
	free(out);
	start_agent(n, P_ASST);
	tu_path(log, sizeof(log), "%s/asst.mantova.log", n->dir);
	assert_true(wait_contains(n->dir, log, "the broker refused our key", WAIT_MS));
	/* Said once, not once per reconnect; the agent stays up and stops
	 * cleanly (teardown). */
	start_agent(n, P_SOCIAL);
	put_referral(n, P_SOCIAL, "x.json", "soc-refused-1", "cpi.mantova",
		     "employment-orientation");
	char sent[1200];
	spool(n, P_SOCIAL, "sent", sent, sizeof(sent));
	assert_true(
	    wait_file(tu_path(path, sizeof(path), "%s/x.json.receipt.json", sent), WAIT_MS));
	assert_int_equal(tu_occurrences(log, "refused our key"), 1);
	assert_true(kill(n->pid[P_ASST], 0) == 0);
}

/* --- the witness catches a forked log -------------------------------------- */

static void test_witness_alarm(void **state)
{
	net *n = *state;
	char path[1200], sent[1200], log[1200];

	start_broker(n);
	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);
	put_referral(n, P_SOCIAL, "w1.json", "soc-wit-1", "cpi.mantova", "employment-orientation");
	spool(n, P_SOCIAL, "sent", sent, sizeof(sent));
	assert_true(
	    wait_file(tu_path(path, sizeof(path), "%s/w1.json.receipt.json", sent), WAIT_MS));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	assert_true(wait_contains(n->dir, log, "included in checkpoint", WAIT_MS));
	stop(n, P_SOCIAL, SIGTERM);

	/* A broker showing social services another history: a checkpoint of
	 * size 1, signed with the broker's key, whose root is not the log's. */
	rete_seckey *bk = NULL;
	rete_msg m;
	assert_int_equal(
	    rete_keyfile_load_secret(
		tu_path(path, sizeof(path), "%s/keys/broker.mantova.key", n->dir), &bk, &m),
	    RETE_OK);
	uint8_t root[RETE_MERKLE_HASH];
	memset(root, 0x5a, sizeof(root));
	char *note = NULL;
	assert_int_equal(rete_checkpoint_sign("rete.test/mantova", 1, root, bk, &note, &m),
			 RETE_OK);
	rete_seckey_free(&bk);
	tu_raw_put(tu_path(path, sizeof(path), "%s/agents/social.mantova/data", n->dir), "meta",
		   "checkpoint", 10, note, strlen(note));
	free(note);

	/* The log grows; social services comes back and checks. */
	put_referral(n, P_SOCIAL, "w2.json", "soc-wit-2", "cpi.mantova", "employment-orientation");
	start_agent(n, P_SOCIAL);
	assert_true(wait_contains(n->dir, log, "WITNESS ALARM", WAIT_MS));
	assert_true(wait_contains(n->dir, log, "no valid consistency proof from size 1", WAIT_MS));
}

/* --- a recipient's key changes ------------------------------------------------ */

static void test_key_change(void **state)
{
	net *n = *state;
	char dir[1200], failed[1200], path[1200], cmd[2400], *out = NULL;

	start_broker(n);
	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);
	put_referral(n, P_SOCIAL, "k1.json", "soc-key-1", "cpi.mantova", "employment-orientation");
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-referral.json", 1, WAIT_MS), 1);

	/* The job centre gets a new key; the broker restarts with it. */
	stop(n, P_CPI, SIGTERM);
	stop(n, P_BROKER, SIGTERM);
	unlink(tu_path(path, sizeof(path), "%s/broker/broker.sock", n->dir));
	assert_int_equal(
	    tu_run(&out, "'%s/rete' keygen cpi.mantova --out '%s/keys' --force", n->bin, n->dir),
	    0);
	free(out);
	start_broker(n);
	start_agent(n, P_CPI);
	/* Social services has the new directory once it is welcomed again. */
	char log[1200];
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	assert_int_equal(wait_occurrences(n->dir, log, "info: connected to", 2, WAIT_MS), 2);

	/* Social services will not seal to the new key on its own... */
	put_referral(n, P_SOCIAL, "k2.json", "soc-key-2", "cpi.mantova", "employment-orientation");
	spool(n, P_SOCIAL, "failed", failed, sizeof(failed));
	assert_true(
	    wait_file(tu_path(path, sizeof(path), "%s/k2.json.error.json", failed), WAIT_MS));
	json_t *e = tu_load_json(path);
	assert_string_equal(jget(e, "code"), "key-changed");
	assert_string_equal(jget(e, "field"), "recipient");
	assert_non_null(strstr(jget(e, "error"), "--trust cpi.mantova"));
	json_decref(e);

	/* ...until an operator confirms it, with the key cpi gave by phone
	 * (--key is required) */
	char *newkey =
	    tu_read_file(tu_path(path, sizeof(path), "%s/keys/cpi.mantova.pub", n->dir), NULL);
	assert_non_null(newkey);
	newkey[strcspn(newkey, "\r\n")] = '\0';
	snprintf(cmd, sizeof(cmd),
		 "'%s/rete-agent' -c '%s/agents/social.mantova/agent.ini' --trust cpi.mantova",
		 n->bin, n->dir);
	assert_int_equal(tu_run(&out, "%s", cmd), 2); /* no --key: a usage error */
	assert_non_null(strstr(out, "needs --key"));
	free(out);
	snprintf(cmd, sizeof(cmd),
		 "'%s/rete-agent' -c '%s/agents/social.mantova/agent.ini' --trust cpi.mantova "
		 "--key '%s'",
		 n->bin, n->dir, newkey);
	free(newkey);
	int rc = tu_run(&out, "%s", cmd);
	if (rc != 0)
		fprintf(stderr, "trust: %s\n", out);
	assert_int_equal(rc, 0);
	free(out);
	assert_int_equal(tu_run(&out, "%s", cmd), 0); /* nothing left to confirm */
	assert_non_null(strstr(out, "nothing to confirm"));
	free(out);
	put_referral(n, P_SOCIAL, "k3.json", "soc-key-3", "cpi.mantova", "employment-orientation");
	assert_int_equal(wait_count(dir, "-referral.json", 2, WAIT_MS), 2);
	json_t *in = load_nth(dir, "-referral.json", 1);
	assert_string_equal(jget(in, "message.id"), "soc-key-3");
	assert_string_equal(jget(in, "private.person.fiscalCode"), PERSON_CF);
	json_decref(in);
}

/* hook_covers: every inbox referral's log index is a line of hookout. */
static bool hook_covers(const char *hookout, const char *inbox)
{
	size_t cnt;
	char **names = list_suffix(inbox, "-referral.json", &cnt);
	char *data = tu_read_file(hookout, NULL);
	bool all = data != NULL;
	for (size_t i = 0; all && i < cnt; i++) {
		char line[40];
		snprintf(line, sizeof(line), "\n%llu\n", strtoull(names[i], NULL, 10));
		/* The first line has no newline before it. */
		all = strstr(data, line) != NULL || strncmp(data, line + 1, strlen(line) - 1) == 0;
	}
	free(data);
	free_list(names, cnt);
	return all;
}

static bool wait_hook_covers(const char *dir, const char *hookout, const char *inbox,
			     int timeout_ms)
{
	watch w = watch_open(dir, WRITES, timeout_ms);
	bool ok;
	while (!(ok = hook_covers(hookout, inbox)) && watch_next(&w)) {
	}
	watch_close(&w);
	return ok;
}

/* --- kill -9 during 500 deliveries ----------------------------------------- */

/* check_inbox_once: the inbox holds exactly `want` referral files, each
 * referral id once. */
static void check_inbox_once(const char *dir, size_t want)
{
	size_t cnt;
	char **names = list_suffix(dir, "-referral.json", &cnt);
	assert_int_equal(cnt, want);
	char **ids = calloc(cnt, sizeof(*ids));
	for (size_t i = 0; i < cnt; i++) {
		char path[1400];
		json_t *j = tu_load_json(tu_path(path, sizeof(path), "%s/%s", dir, names[i]));
		ids[i] = strdup(jget(j, "message.id"));
		assert_string_equal(jget(j, "private.person.fiscalCode"), PERSON_CF);
		json_decref(j);
	}
	qsort(ids, cnt, sizeof(*ids), name_cmp);
	for (size_t i = 1; i < cnt; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free_list(ids, cnt);
	free_list(names, cnt);
}

static void test_kill9_receiver(void **state)
{
	net *n = *state;
	char dir[1200], sdir[1200];
	const size_t N = 500;
	char hookout[1200];

	/* The receiver's hook records every log index it is run for. */
	tu_path(hookout, sizeof(hookout), "%s/hook.out", n->dir);
	char body[2048];
	snprintf(body, sizeof(body), "#!/bin/sh\necho \"$RETE_INDEX\" >> '%s'\n", hookout);
	set_hook(n, P_CPI, body);

	start_broker(n);
	start_agent(n, P_CPI);
	/* The sender starts with its outbox already full. */
	fill_outbox(n, P_SOCIAL, N);
	start_agent(n, P_SOCIAL);
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	size_t got = wait_count(dir, "-referral.json", 30, WAIT_MS);
	assert_true(got >= 30);
	int st = stop(n, P_CPI, SIGKILL);
	assert_true(WIFSIGNALED(st));
	size_t at_kill = tu_count_suffix(dir, "-referral.json");
	fprintf(stderr, "killed the receiver with %zu of %zu in its inbox\n", at_kill, N);
	start_agent(n, P_CPI);
	assert_int_equal(wait_count(dir, "-referral.json", N, 4 * WAIT_MS), N);
	/* Every delivery acked: the sender has a delivery receipt for each. */
	spool(n, P_SOCIAL, "inbox", sdir, sizeof(sdir));
	assert_int_equal(wait_count(sdir, "-delivery.json", N, 4 * WAIT_MS), N);
	check_inbox_once(dir, N);
	/* ... and a receipt of its submission for each (waited for: the agent
	 * may write a receipt after a delivery receipt that came in the same
	 * read; one lost would still time out here) */
	spool(n, P_SOCIAL, "sent", sdir, sizeof(sdir));
	assert_int_equal(wait_count(sdir, ".receipt.json", N, WAIT_MS), N);
	/* The hook ran at least once for every inbox file, the kill
	 * notwithstanding (a run cut short by it runs again). */
	assert_true(wait_hook_covers(n->dir, hookout, dir, WAIT_MS));
}

/* --- kill -9 of the sender, then of the broker, while submitting ---------- */

static void test_kill9_sender_and_broker(void **state)
{
	net *n = *state;
	char dir[1200], sent[1200], p[1200];
	const size_t N = 300;

	start_broker(n);
	start_agent(n, P_CPI);
	/* The sender starts with its outbox already full. */
	fill_outbox(n, P_SOCIAL, N);
	start_agent(n, P_SOCIAL);
	spool(n, P_SOCIAL, "sent", sent, sizeof(sent));
	assert_true(wait_count(sent, ".receipt.json", 20, WAIT_MS) >= 20);
	assert_true(WIFSIGNALED(stop(n, P_SOCIAL, SIGKILL)));
	fprintf(stderr, "killed the sender with %zu of %zu receipted\n",
		tu_count_suffix(sent, ".receipt.json"), N);
	start_agent(n, P_SOCIAL);
	size_t at = wait_count(sent, ".receipt.json", 100, WAIT_MS);
	assert_true(at >= 100);
	assert_true(WIFSIGNALED(stop(n, P_BROKER, SIGKILL)));
	fprintf(stderr, "killed the broker with %zu of %zu receipted\n",
		tu_count_suffix(sent, ".receipt.json"), N);
	unlink(tu_path(p, sizeof(p), "%s/broker/broker.sock", n->dir));
	start_broker(n);
	assert_int_equal(wait_count(sent, ".receipt.json", N, 4 * WAIT_MS), N);
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-referral.json", N, 4 * WAIT_MS), N);
	check_inbox_once(dir, N);
	/* Each file left the outbox once: no "NAME.2" in sent/, nothing failed. */
	assert_int_equal(wait_count(sent, ".json", 2 * N, WAIT_MS), 2 * N);
	assert_int_equal(tu_count_suffix(spool(n, P_SOCIAL, "failed", p, sizeof(p)), ".json"), 0);
	assert_int_equal(wait_gone(spool(n, P_SOCIAL, "outbox", p, sizeof(p)), ".json", WAIT_MS),
			 0);
}

/* --- the broker away for 20 seconds ---------------------------------------- */

static void test_broker_down(void **state)
{
	net *n = *state;
	char dir[1200], sent[1200];
	size_t written = 0;

	start_broker(n);
	start_agent(n, P_SOCIAL);
	start_agent(n, P_CPI);
	spool(n, P_SOCIAL, "sent", sent, sizeof(sent));
	for (; written < 5; written++) {
		char name[64];
		snprintf(name, sizeof(name), "pre-%02zu.json", written);
		put_referral(n, P_SOCIAL, name, NULL, "cpi.mantova", "employment-orientation");
	}
	assert_int_equal(wait_count(sent, ".receipt.json", 5, WAIT_MS), 5);

	stop(n, P_BROKER, SIGTERM);
	char sock[1200];
	unlink(tu_path(sock, sizeof(sock), "%s/broker/broker.sock", n->dir));
	/* 20 seconds without a broker, one new file a second. */
	int64_t end = now_ms() + 20000;
	while (now_ms() < end) {
		char name[64];
		snprintf(name, sizeof(name), "down-%02zu.json", written);
		put_referral(n, P_SOCIAL, name, NULL, "cpi.mantova", "employment-orientation");
		written++;
		/* Pacing of the scenario (files arriving over time), not a wait
		 * for anything: the outcome is checked by waiting below. */
		struct timespec ts = {1, 0};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(tu_count_suffix(sent, ".receipt.json"), 5);
	start_broker(n);
	assert_int_equal(wait_count(sent, ".receipt.json", written, 2 * WAIT_MS), written);
	spool(n, P_CPI, "inbox", dir, sizeof(dir));
	assert_int_equal(wait_count(dir, "-referral.json", written, 2 * WAIT_MS), written);
	check_inbox_once(dir, written);
	/* Every file moved beside its receipt (written first), none left. */
	assert_int_equal(wait_count(sent, ".json", 2 * written, WAIT_MS), 2 * written);
	char out[1200];
	assert_int_equal(
	    wait_gone(spool(n, P_SOCIAL, "outbox", out, sizeof(out)), ".json", WAIT_MS), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_closed_loop, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_failed_files, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_privacy_sweep, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_unopenable_delivery, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_config_errors, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_not_delivered, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_failing_hook, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_refused_key, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_witness_alarm, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_key_change, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_kill9_receiver, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_kill9_sender_and_broker, net_setup, net_teardown),
	    cmocka_unit_test_setup_teardown(test_broker_down, net_setup, net_teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	if (getenv("RETE_TEST_ONLY") != NULL) /* e.g. RETE_TEST_ONLY=test_closed_loop */
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
