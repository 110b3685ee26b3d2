/* test_spool_edges.c — the agent's spool at its edges (issue 13, defects
 * 6a-e, the agent's halves of 3 and 5a), with the real broker and agents.
 *
 *   two_agents       two agents on one agent.ini: the second exits 2 naming
 *                    the first one's pid; `rete status` still works;
 *   replaced         a file renamed over an outbox file whose SUBMIT waits
 *                    for its receipt: sent/ gets what was sent under the
 *                    first receipt, the new file is sent as a new message;
 *   odd_names        a 230-byte name gets an answer in failed/ (shortened
 *                    name; the error names the original); a symlink in
 *                    outbox/ is named in the log once, not once per scan;
 *   receipt_taken    sent/X.json.receipt.json written by someone else is
 *                    never overwritten by the agent's receipt of X.json;
 *   other_fs         sent/ and failed/ on another file system (tmpfs):
 *                    answers arrive, each file once;
 *   unmovable        failed/ read-only: the file that cannot be answered is
 *                    named in the log once, answered when it can be;
 *   too_large        a referral over the broker's max_frame (told in
 *                    WELCOME): `too-large` in failed/ naming the limit; the
 *                    agent goes on;
 *   link_in_flight   a symbolic link renamed over a file whose SUBMIT
 *                    waits for its receipt: the link is refused
 *                    (not-a-file) and the receipt still goes to sent/,
 *                    with the message as it was signed and sent;
 *   gone_at_restart  the same across a stop: a file whose SUBMIT was
 *                    logged and whose receipt was not answered yet when
 *                    the agent stopped (sent/ blocked), removed before it
 *                    started again, is seen through to its receipt in
 *                    sent/ (the message as sent), said once in the log;
 *   put_back         such a file (no id of its own) put back, the same
 *                    bytes, after a kill -9 and the restart: sent once, the
 *                    recipient holds one delivery, one receipt in sent/;
 *   same_again       such a file with an id of its own, answered after the
 *                    restart, then written again: its original receipt
 *                    again, never a false id-reused;
 *   replaced_stopped another file renamed over it while the agent was
 *                    stopped (kill -9): the old one answered with the
 *                    message as sent, the new one sent on its own;
 *   schema2_upgrade  a schema-2 store (records without their content
 *                    hash) whose sealed file left while the agent was
 *                    stopped: upgraded at start (said once), the file seen
 *                    through to its receipt, `rete status` still reads it;
 *   downgrade_schema_recorded  a file taken in and in outbox/ at a clean
 *                    stop (its record of layout 2): the store records
 *                    schema 3, which a schema-2 agent refuses;
 *   downgrade_old_agent  (RETE_TEST_OLD_AGENT=DIR of an older rete-agent
 *                    build of schema 2; skipped with a sentence otherwise)
 *                    that agent refuses the store at start, naming both
 *                    schemas, and the file is answered by this agent after;
 *   trust_keeps_schema  a refused --trust, --check-config and `rete status`
 *                    leave a schema-2 store of schema 2; the start upgrades
 *                    it and says so once;
 *   answer_cut       a taken-back file's receipt written in sent/ and not
 *                    its message (no room left: where a kill -9 can land),
 *                    the agent killed there: the next start writes the
 *                    message beside that receipt, one receipt in all;
 *   inbox_full       the recipient's inbox/ on a full file system: no ack,
 *                    and once space comes back the file is written once and
 *                    the referral is received.
 *
 * The file-system tests make their own mount namespace (as test_full_disk
 * does) and are skipped with a sentence where that is not allowed.
 * Waits are on inotify events with deadlines, never sleeps.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/inotify.h>
#include <sys/mount.h>

#include <cmocka.h>

#include "itest.h"

static bool can_mount; /* a private mount namespace was made in main */

typedef struct fx {
	it_net *n;
	char mounts[4][1400];
	int nmounts;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->n = it_net_new("spooledge", NULL);
	if (!f->n) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bool bad = false;
	if (!f)
		return 0;
	/* stop the processes first: they hold files on the mounts */
	int wait = it_wait_ms();
	for (int p = 0; p < IT_NPARTIES; p++)
		if (f->n->agent_pid[p] > 0 && it_stop(&f->n->agent_pid[p], SIGTERM, wait) != 0)
			bad = true;
	for (int i = 0; i < f->nmounts; i++)
		umount2(f->mounts[i], MNT_DETACH);
	it_net_free(&f->n, false, &bad);
	free(f);
	*state = NULL;
	return bad ? -1 : 0;
}

/* --- helpers ---------------------------------------------------------------- */

static char *referral_json(const char *id, const char *recipient, const char *service, size_t pad)
{
	json_t *j = json_pack(
	    "{s:s,s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:s},"
	    "s:{s:{s:s},s:s}}",
	    "id", id, "operator", "staffId", "as-0042", "role", "social-worker", "recipient",
	    recipient, "caseId", "mn-2026-0173", "referral", "service", service, "priority",
	    "routine", "reasonCode", "long-term-unemployment", "consent", "basis", "consent",
	    "givenAt", "2026-11-20T09:30:00Z", "reference", "CONS-2026-0412", "ageBand", "adult",
	    "private", "person", "name", "Maria Rossi", "reason", "Unemployed since March 2026.");
	assert_non_null(j);
	if (pad > 0) {
		/* an attachment of pad bytes (notes are capped at 64 KiB) */
		uint8_t *bytes = malloc(pad);
		assert_non_null(bytes);
		for (size_t i = 0; i < pad; i++)
			bytes[i] = (uint8_t)(i * 7 + 3);
		char *b64 = rete_b64_encode(bytes, pad);
		assert_non_null(b64);
		json_object_set_new(json_object_get(j, "private"), "attachments",
				    json_pack("[{s:s,s:s,s:s}]", "name", "plan.pdf", "mediaType",
					      "application/pdf", "content", b64));
		free(b64);
		free(bytes);
	}
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	assert_non_null(text);
	return text;
}

/* put_at writes text as dir/name the way the contract asks (a hidden
 * temporary name, then rename), so the agent sees it whole. When aged,
 * the file's times are set 5 s back before the rename, as a file written
 * a moment before it was moved in: the agent takes it at its first look,
 * not after the 2 s it gives a file that just changed (OUT_SETTLE_MS, for
 * writers that write in place; test_stall's inplace_waits shows that
 * wait). Those 2 s a file were most of this test's time (50 s in the
 * sanitizer build). A file renamed over one whose SUBMIT is in flight
 * stays fresh (put_referral_fresh): the agent takes it as before, after
 * the receipt of the first has come. */
static void put_at(const char *dir, const char *name, const char *text, bool aged)
{
	char tmp[1500], path[1500];
	snprintf(tmp, sizeof(tmp), "%s/.put.tmp", dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(tu_write_file(tmp, text, strlen(text)), 0);
	if (aged)
		it_set_age_s(tmp, 5);
	assert_int_equal(rename(tmp, path), 0);
}

static void put(const char *dir, const char *name, const char *text)
{
	put_at(dir, name, text, true);
}

static void put_referral_at(fx *f, int p, const char *name, const char *id, size_t pad,
			    bool aged)
{
	char out[1300];
	char *t = referral_json(id, it_party_ids[IT_CPI], it_service[IT_CPI], pad);
	put_at(it_spool(f->n, p, "outbox", out, sizeof(out)), name, t, aged);
	free(t);
}

static void put_referral(fx *f, int p, const char *name, const char *id, size_t pad)
{
	put_referral_at(f, p, name, id, pad, true);
}

/* put_referral_fresh: put_referral of a file just written (see put_at). */
static void put_referral_fresh(fx *f, int p, const char *name, const char *id)
{
	put_referral_at(f, p, name, id, 0, false);
}

/* A condition to wait for; ctx is the test's. */
typedef bool (*cond_fn)(void *ctx);

/* wait_cond waits until cond(ctx) holds, waking on changes in the folders
 * dirs (NULL-terminated) and at least every 200 ms; false at the deadline. */
static bool wait_cond(const char *const *dirs, cond_fn cond, void *ctx, int ms)
{
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	for (int i = 0; ino >= 0 && dirs[i]; i++)
		inotify_add_watch(ino, dirs[i],
				  IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE |
				      IN_MOVED_FROM | IN_MODIFY);
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	bool ok = false;
	for (;;) {
		if (cond(ctx)) {
			ok = true;
			break;
		}
		int64_t left = end - it_mono_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = ino, .events = POLLIN};
		poll(&pfd, ino >= 0 ? 1 : 0, left < 200 ? (int)left : 200);
		char buf[4096];
		while (ino >= 0 && read(ino, buf, sizeof(buf)) > 0)
			;
	}
	if (ino >= 0)
		close(ino);
	return ok;
}

/* json_file loads a JSON file (NULL when missing or not JSON). */
static json_t *json_file(const char *dir, const char *name)
{
	char path[1600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return json_load_file(path, 0, NULL);
}

/* find_answer: the name (malloc'd) of the companion file in dir (ending in
 * suffix) whose key `key` is `value`; NULL when none. */
static char *find_answer(const char *dir, const char *suffix, const char *key, const char *value)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *found = NULL;
	size_t sl = strlen(suffix);
	if (!d)
		return NULL;
	while (!found && (e = readdir(d)) != NULL) {
		size_t nl = strlen(e->d_name);
		if (e->d_name[0] == '.' || nl <= sl || strcmp(e->d_name + nl - sl, suffix) != 0)
			continue;
		json_t *j = json_file(dir, e->d_name);
		const char *v = json_string_value(json_object_get(j, key));
		if (v && strcmp(v, value) == 0)
			found = strdup(e->d_name);
		json_decref(j);
	}
	closedir(d);
	return found;
}

/* count_with counts the files of dir (not hidden) whose content holds
 * needle. */
static int count_with(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[1600];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		char *t = tu_read_file(path, NULL);
		if (t && strstr(t, needle))
			n++;
		free(t);
	}
	closedir(d);
	return n;
}

/* count_in counts needle in the file at path (0 when missing). */
static int count_in(const char *path, const char *needle)
{
	char *t = tu_read_file(path, NULL);
	int n = 0;
	for (const char *p = t; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(t);
	return n;
}

struct with_wait {
	const char *dir, *needle;
	int want;
};

static bool with_there(void *ctx)
{
	struct with_wait *w = ctx;
	return count_with(w->dir, w->needle) >= w->want;
}

/* wait_count_with waits until want files of dir hold needle. */
static bool wait_count_with(const char *dir, const char *needle, int want, int ms)
{
	struct with_wait w = {dir, needle, want};
	const char *dirs[] = {dir, NULL};
	return wait_cond(dirs, with_there, &w, ms);
}

/* count_lines_in counts the lines of the file at path holding needle. */
static int count_lines_in(const char *path, const char *needle)
{
	char *t = tu_read_file(path, NULL);
	int n = 0;
	for (char *line = t; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strstr(line, needle))
			n++;
		line = nl ? nl + 1 : NULL;
	}
	free(t);
	return n;
}

struct answer_wait {
	const char *dir, *suffix, *key, *value;
	char *name;
};

/* answer_there: the companion is there, and so is the file beside it (the
 * agent writes the companion first: the answer is whole once both are). */
static bool answer_there(void *ctx)
{
	struct answer_wait *w = ctx;
	free(w->name);
	w->name = find_answer(w->dir, w->suffix, w->key, w->value);
	if (w->name == NULL)
		return false;
	char path[1700];
	snprintf(path, sizeof(path), "%s/%.*s", w->dir, (int)(strlen(w->name) - strlen(w->suffix)),
		 w->name);
	return access(path, F_OK) == 0;
}

struct gone_wait {
	const char *path;
};

static bool is_gone(void *ctx)
{
	struct gone_wait *w = ctx;
	return access(w->path, F_OK) != 0;
}

/* wait_gone waits until dir/name is no more (the agent removes the outbox
 * file after its answer is in place). */
static bool wait_gone(const char *dir, const char *name, int ms)
{
	char path[1700];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct gone_wait w = {path};
	const char *dirs[] = {dir, NULL};
	return wait_cond(dirs, is_gone, &w, ms);
}

/* wait_answer waits for the companion (suffix) in dir with key == value;
 * returns its name (malloc'd) or NULL at the deadline. */
static char *wait_answer(const char *dir, const char *suffix, const char *key, const char *value,
			 int ms)
{
	struct answer_wait w = {dir, suffix, key, value, NULL};
	const char *dirs[] = {dir, NULL};
	wait_cond(dirs, answer_there, &w, ms);
	return w.name;
}

/* sent_receipted puts a referral (id) from social services in their
 * outbox as name and waits until its receipt is in sent (their sent/
 * folder); the test fails at the deadline. */
static void sent_receipted(fx *f, const char *sent, const char *name, const char *id)
{
	put_referral(f, IT_SOCIAL, name, id, 0);
	char *r = wait_answer(sent, ".receipt.json", "messageId", id, 30000);
	assert_non_null(r);
	free(r);
}

static void start_net(fx *f)
{
	assert_true(it_broker_start(f->n));
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	assert_true(it_agent_start(f->n, IT_CPI));
}

static void agent_log_path(fx *f, int p, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s.log", f->n->dir, it_party_ids[p]);
}

struct log_wait {
	const char *path, *needle;
	int want;
};

static bool log_has(void *ctx)
{
	struct log_wait *w = ctx;
	return count_in(w->path, w->needle) >= w->want;
}

/* wait_log waits until the agent's log holds needle want times. */
static bool wait_log(fx *f, int p, const char *needle, int want, int ms)
{
	char path[1400];
	agent_log_path(f, p, path, sizeof(path));
	struct log_wait w = {path, needle, want};
	const char *dirs[] = {f->n->dir, NULL};
	return wait_cond(dirs, log_has, &w, ms);
}

/* --- defect 3: two agents on one agent.ini ------------------------------------ */

static void test_two_agents(void **state)
{
	fx *f = *state;
	start_net(f);
	char sent[1300], ini[1300], exe[1200], log[1400];
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	/* the first agent works (and so holds its lock) */
	sent_receipted(f, sent, "first.json", "two-agents-1");

	snprintf(exe, sizeof(exe), "%s/rete-agent", f->n->bin);
	snprintf(ini, sizeof(ini), "%s/agents/%s/agent.ini", f->n->dir, it_party_ids[IT_SOCIAL]);
	char *args[] = {exe, "-c", ini, NULL};
	pid_t second = it_spawn(f->n->dir, "second", args, NULL);
	assert_true(second > 0);
	int64_t end = it_mono_ms() + it_scaled_ms(20000);
	int st = 0;
	bool exited = false;
	while (!exited && it_mono_ms() < end) {
		exited = it_reap(second, &st);
		if (!exited)
			it_nap(20); /* polling a child's exit: no event to wait on */
	}
	if (!exited) {
		it_stop(&second, SIGKILL, 1000);
		it_show(f->n, "second.log");
	}
	assert_true(exited); /* the second agent must not run beside the first */
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 2);
	snprintf(log, sizeof(log), "%s/second.log", f->n->dir);
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %ld", (long)f->n->agent_pid[IT_SOCIAL]);
	if (count_in(log, pid) < 1)
		it_show(f->n, "second.log");
	assert_true(count_in(log, pid) >= 1);

	/* read-only users of the data folder still work beside the agent */
	char *out = NULL;
	int rc = tu_run(&out, "%s/rete status -c %s --timeout 0", f->n->bin, ini);
	if (rc != 0)
		fprintf(stderr, "rete status: %s\n", out ? out : "");
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "two-agents-1"));
	free(out);
	/* and the first agent still runs and answers */
	sent_receipted(f, sent, "after.json", "two-agents-2");
}

/* --- 6a: a file replaced while its SUBMIT waits for the receipt ------------------ */

/* in_flight starts the network, sends one referral to warm up (connected,
 * the directory in hand), stops the broker (SIGSTOP) and puts the referral
 * id as outbox/name: its SUBMIT waits for its answer when this returns. */
static void in_flight(fx *f, const char *sent, const char *name, const char *id)
{
	char said[200];
	start_net(f);
	sent_receipted(f, sent, "warm.json", "flight-warm");
	assert_int_equal(kill(f->n->broker_pid, SIGSTOP), 0);
	put_referral(f, IT_SOCIAL, name, id, 0);
	snprintf(said, sizeof(said), "submitted %s", id);
	assert_true(wait_log(f, IT_SOCIAL, said, 1, 30000));
}

static void test_replaced_in_flight(void **state)
{
	fx *f = *state;
	char sent[1300], out[1300], inbox[1300];
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(f->n, IT_SOCIAL, "outbox", out, sizeof(out));
	it_spool(f->n, IT_CPI, "inbox", inbox, sizeof(inbox));
	in_flight(f, sent, "x.json", "repl-first");
	/* another file is renamed over it */
	put_referral_fresh(f, IT_SOCIAL, "x.json", "repl-second");
	assert_int_equal(kill(f->n->broker_pid, SIGCONT), 0);

	char *r1 = wait_answer(sent, ".receipt.json", "messageId", "repl-first", 30000);
	assert_non_null(r1);
	/* the new file is sent as what it is: a message of its own */
	char *r2 = wait_answer(sent, ".receipt.json", "messageId", "repl-second", 30000);
	if (r2 == NULL) {
		it_show(f->n, "social.mantova.log");
		fprintf(stderr, "repl-second never got a receipt: the file renamed over x.json "
				"while its SUBMIT was in flight was never sent\n");
	}
	assert_non_null(r2);
	/* sent/NAME beside repl-first's receipt holds repl-first's message,
	 * not the other file */
	char name1[600], path[1700];
	snprintf(name1, sizeof(name1), "%.*s", (int)(strlen(r1) - strlen(".receipt.json")), r1);
	snprintf(path, sizeof(path), "%s/%s", sent, name1);
	assert_int_equal(count_in(path, "repl-first"), 1);
	assert_int_equal(count_in(path, "repl-second"), 0);
	char name2[600];
	snprintf(name2, sizeof(name2), "%.*s", (int)(strlen(r2) - strlen(".receipt.json")), r2);
	snprintf(path, sizeof(path), "%s/%s", sent, name2);
	assert_int_equal(count_in(path, "repl-second"), 1);
	free(r1);
	free(r2);
	/* both reached the job centre, once each */
	assert_true(wait_count_with(inbox, "\"repl-first\"", 1, 30000));
	assert_true(wait_count_with(inbox, "\"repl-second\"", 1, 30000));
	assert_int_equal(count_with(inbox, "\"repl-first\""), 1);
	assert_int_equal(count_with(inbox, "\"repl-second\""), 1);
}

/* --- 6b: names the agent will not take ------------------------------------------ */

static void test_odd_names(void **state)
{
	fx *f = *state;
	start_net(f);
	char sent[1300], failed[1300], out[1300], path[1700];
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(f->n, IT_SOCIAL, "failed", failed, sizeof(failed));
	it_spool(f->n, IT_SOCIAL, "outbox", out, sizeof(out));

	/* a name of 230 bytes (the file system takes 255) */
	char longname[240];
	memset(longname, 'n', sizeof(longname));
	memcpy(longname, "long-", 5);
	memcpy(longname + 225, ".json", 6);
	assert_int_equal(strlen(longname), 230);
	put_referral(f, IT_SOCIAL, longname, "odd-long", 0);
	char *e = wait_answer(failed, ".error.json", "file", longname, 30000);
	if (e == NULL)
		fprintf(stderr, "a 230-byte outbox name got no answer in failed/\n");
	assert_non_null(e);
	json_t *j = json_file(failed, e);
	assert_string_equal(json_string_value(json_object_get(j, "code")), "name-too-long");
	assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "200"));
	json_decref(j);
	snprintf(path, sizeof(path), "%s/%.*s", failed, (int)(strlen(e) - strlen(".error.json")),
		 e);
	assert_int_equal(count_in(path, "odd-long"), 1); /* the file itself, beside it */
	assert_true(wait_gone(out, longname, 30000));
	free(e);

	/* a symbolic link is answered too; a folder cannot be moved: named
	 * in the log once, not once per scan */
	snprintf(path, sizeof(path), "%s/link.json", out);
	assert_int_equal(symlink("/etc/hostname", path), 0);
	e = wait_answer(failed, ".error.json", "file", "link.json", 30000);
	assert_non_null(e);
	j = json_file(failed, e);
	assert_string_equal(json_string_value(json_object_get(j, "code")), "not-a-file");
	json_decref(j);
	free(e);
	snprintf(path, sizeof(path), "%s/folder.json", out);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_true(wait_log(f, IT_SOCIAL, "folder.json", 1, 30000));
	/* more scans: two more files, answered */
	sent_receipted(f, sent, "later-1.json", "odd-later-1");
	sent_receipted(f, sent, "later-2.json", "odd-later-2");
	char log[1400];
	agent_log_path(f, IT_SOCIAL, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "folder.json"), 1);
}

/* --- a link where a file in flight was ----------------------------------------- */

static void test_link_in_flight(void **state)
{
	fx *f = *state;
	char sent[1300], failed[1300], out[1300], inbox[1300], tmp[1500], path[1500];
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(f->n, IT_SOCIAL, "failed", failed, sizeof(failed));
	it_spool(f->n, IT_SOCIAL, "outbox", out, sizeof(out));
	it_spool(f->n, IT_CPI, "inbox", inbox, sizeof(inbox));
	in_flight(f, sent, "y.json", "link-first");
	/* a symbolic link is renamed over it, and refused */
	snprintf(tmp, sizeof(tmp), "%s/.y.tmp", out);
	snprintf(path, sizeof(path), "%s/y.json", out);
	assert_int_equal(symlink("/etc/hostname", tmp), 0);
	assert_int_equal(rename(tmp, path), 0);
	char *e = wait_answer(failed, ".error.json", "file", "y.json", 30000);
	assert_non_null(e);
	free(e);
	assert_int_equal(kill(f->n->broker_pid, SIGCONT), 0);

	/* the message was submitted: logged and delivered; its receipt is the
	 * agency's record of it and must reach sent/ */
	assert_true(wait_count_with(inbox, "\"link-first\"", 1, 30000));
	char *r = wait_answer(sent, ".receipt.json", "messageId", "link-first", 30000);
	if (r == NULL) {
		it_show(f->n, "social.mantova.log");
		fprintf(stderr, "link-first was logged and delivered, and its receipt never "
				"reached sent/: the agent forgot the file in flight when a link "
				"took its name\n");
	}
	assert_non_null(r);
	char name[600];
	snprintf(name, sizeof(name), "%.*s", (int)(strlen(r) - strlen(".receipt.json")), r);
	snprintf(path, sizeof(path), "%s/%s", sent, name);
	assert_int_equal(count_in(path, "link-first"), 1); /* the message as sent */
	free(r);
}

/* --- a sealed file that left outbox/ while the agent was stopped ------------------ */

/* spools: the sender's sent/, outbox/ and failed/, the job centre's inbox/ */
typedef struct spools {
	char sent[1300], out[1300], failed[1300], inbox[1300];
} spools;

/* sent_blocked puts a file where sent/ is (the folder kept as sent.away):
 * a receipt that comes then cannot be answered there, and its file stays
 * in outbox/, sealed and recorded; sent_back undoes it. */
static void sent_blocked(const spools *s)
{
	char away[1400];
	snprintf(away, sizeof(away), "%s.away", s->sent);
	assert_int_equal(rename(s->sent, away), 0);
	assert_int_equal(tu_write_file(s->sent, "not a folder", 12), 0);
}

static void sent_back(const spools *s)
{
	char away[1400];
	snprintf(away, sizeof(away), "%s.away", s->sent);
	assert_int_equal(unlink(s->sent), 0);
	assert_int_equal(rename(away, s->sent), 0);
}

/* sealed_unanswered puts text (NULL: a referral of id id) as outbox/name
 * while sent/ is blocked and waits until its SUBMIT is logged (the job
 * centre's inbox holds needle) and its receipt could not be answered: the
 * file is in outbox/, sealed, recorded, with no answer. */
static void sealed_unanswered(fx *f, const spools *s, const char *name, const char *text,
			      const char *id, const char *needle)
{
	char line[300];
	char *t = text ? NULL : referral_json(id, it_party_ids[IT_CPI], it_service[IT_CPI], 0);
	put(s->out, name, text ? text : t);
	free(t);
	snprintf(line, sizeof(line), "%s: accepted, but cannot record it or move it to sent/",
		 name);
	assert_true(wait_log(f, IT_SOCIAL, line, 1, 30000));
	assert_true(wait_count_with(s->inbox, needle, 1, 30000));
}

/* stop_social stops the sender's agent with sig (SIGKILL: as a crash) */
static void stop_social(fx *f, int sig)
{
	int st = it_stop(&f->n->agent_pid[IT_SOCIAL], sig, it_wait_ms());
	if (sig == SIGKILL)
		assert_true(st != -1 && WIFSIGNALED(st));
	else
		assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* sealed_then_stopped starts the network, sends one referral to warm up,
 * and stops the sender's agent with sig (SIGKILL: as a crash) once
 * outbox/name (sealed_unanswered) was logged and delivered and has no
 * answer; sent/ is back when it returns (sig 0: still blocked, the agent
 * running: the caller goes on, stops it and calls sent_back). */
static void warm_start(fx *f, spools *s, const char *warm_id);
static void sealed_then_stopped(fx *f, spools *s, const char *name, const char *text,
				const char *id, const char *needle, int sig)
{
	warm_start(f, s, "flight-warm");
	sent_blocked(s);
	sealed_unanswered(f, s, name, text, id, needle);
	if (sig == 0)
		return;
	stop_social(f, sig);
	sent_back(s);
}

/* removed_while_stopped takes outbox/name out while the sender's agent is
 * stopped and starts the agent again; returns what the file held
 * (malloc'd). */
static char *removed_while_stopped(fx *f, const spools *s, const char *name)
{
	char path[1500];
	snprintf(path, sizeof(path), "%s/%s", s->out, name);
	char *t = tu_read_file(path, NULL);
	assert_non_null(t);
	assert_int_equal(unlink(path), 0);
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	return t;
}

/* receipt_of waits for the receipt in sent/ whose key is value, and checks
 * that the file beside it holds want (the message as it was sent) */
static void receipt_of(fx *f, const spools *s, const char *key, const char *value, const char *want)
{
	char *r = wait_answer(s->sent, ".receipt.json", key, value, 30000);
	if (r == NULL) {
		it_show(f->n, "social.mantova.log");
		fprintf(stderr,
			"%s was logged and delivered, its receipt not answered when the agent "
			"stopped; after its restart no receipt of it reached sent/\n",
			value);
	}
	assert_non_null(r);
	char path[1700];
	snprintf(path, sizeof(path), "%s/%.*s", s->sent, (int)(strlen(r) - strlen(".receipt.json")),
		 r);
	assert_int_equal(count_in(path, want), 1);
	free(r);
}

/* delivered_once: a last referral through (the order of the log), then
 * the job centre's inbox holds needle exactly once, and failed/ nothing
 * of it */
static void delivered_once(fx *f, const spools *s, const char *needle)
{
	sent_receipted(f, s->sent, "barrier.json", "restart-barrier");
	assert_true(wait_count_with(s->inbox, "\"restart-barrier\"", 1, 30000));
	int n = count_with(s->inbox, needle);
	if (n != 1) {
		it_show(f->n, "social.mantova.log");
		fprintf(stderr, "the job centre holds %d deliveries of %s, want 1\n", n, needle);
	}
	assert_int_equal(n, 1);
	assert_int_equal(count_with(s->failed, needle), 0);
}

static void test_gone_at_restart(void **state)
{
	fx *f = *state;
	spools s;
	char log[1400];
	sealed_then_stopped(f, &s, "z.json", NULL, "gone-first", "\"gone-first\"", SIGTERM);
	free(removed_while_stopped(f, &s, "z.json"));
	receipt_of(f, &s, "messageId", "gone-first", "gone-first");
	delivered_once(f, &s, "\"gone-first\"");
	agent_log_path(f, IT_SOCIAL, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "left outbox/ while the agent was stopped"), 1);
}

/* referral_noid: a referral with no id of its own (the agent mints one)
 * and case id caseid */
static char *referral_noid(const char *caseid)
{
	char *t = referral_json("x", it_party_ids[IT_CPI], it_service[IT_CPI], 0);
	json_t *j = json_loads(t, 0, NULL);
	free(t);
	assert_non_null(j);
	json_object_del(j, "id");
	json_object_set_new(j, "caseId", json_string(caseid));
	t = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	assert_non_null(t);
	return t;
}

static void test_put_back_at_restart(void **state)
{
	fx *f = *state;
	spools s;
	char path[1500], keep[1500];
	char *t = referral_noid("mn-back-0001");
	/* killed with the SUBMIT logged and no answer; the file is taken out */
	sealed_then_stopped(f, &s, "b.json", t, NULL, "mn-back-0001", SIGKILL);
	free(t);
	snprintf(path, sizeof(path), "%s/b.json", s.out);
	snprintf(keep, sizeof(keep), "%s/b.json.kept", f->n->dir);
	assert_int_equal(rename(path, keep), 0);
	/* the agent starts (the broker stopped again: no answer yet), then the
	 * same bytes are put back under the same name */
	assert_int_equal(kill(f->n->broker_pid, SIGSTOP), 0);
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	assert_true(wait_log(f, IT_SOCIAL, "started: spool", 2, 30000));
	assert_int_equal(rename(keep, path), 0);
	assert_int_equal(kill(f->n->broker_pid, SIGCONT), 0);
	receipt_of(f, &s, "file", "b.json", "mn-back-0001");
	assert_true(wait_gone(s.out, "b.json", 30000));
	delivered_once(f, &s, "mn-back-0001");
	assert_int_equal(count_with(s.sent, "\"file\": \"b.json\""), 1); /* one receipt */
}

static void test_same_again_after_restart(void **state)
{
	fx *f = *state;
	spools s;
	char log[1400];
	sealed_then_stopped(f, &s, "a.json", NULL, "again-1", "\"again-1\"", SIGKILL);
	char *t = removed_while_stopped(f, &s, "a.json");
	receipt_of(f, &s, "messageId", "again-1", "again-1");
	/* the same file written again: the same message, its original receipt */
	put(s.out, "a.json", t);
	free(t);
	bool same = wait_log(f, IT_SOCIAL, "the same message as again-1", 1, 30000);
	if (!same)
		it_show(f->n, "social.mantova.log");
	assert_true(same);
	assert_int_equal(count_with(s.sent, "\"again-1\""), 4); /* 2 files, 2 receipts */
	assert_true(wait_gone(s.out, "a.json", 30000));
	delivered_once(f, &s, "\"again-1\"");
	agent_log_path(f, IT_SOCIAL, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "the same message as again-1"), 1);
}

static void test_replaced_while_stopped(void **state)
{
	fx *f = *state;
	spools s;
	sealed_then_stopped(f, &s, "r.json", NULL, "stopped-old", "\"stopped-old\"", SIGKILL);
	/* another file is renamed over it while the agent is stopped */
	put_referral_fresh(f, IT_SOCIAL, "r.json", "stopped-new");
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	/* the old one: its receipt, beside the message as it was sent */
	receipt_of(f, &s, "messageId", "stopped-old", "stopped-old");
	/* the new one: a message of its own, answered on its own */
	receipt_of(f, &s, "messageId", "stopped-new", "stopped-new");
	char *r = find_answer(s.sent, ".receipt.json", "messageId", "stopped-new");
	json_t *j = json_file(s.sent, r);
	assert_string_equal(json_string_value(json_object_get(j, "file")), "r.json");
	json_decref(j);
	free(r);
	assert_true(wait_gone(s.out, "r.json", 30000));
	delivered_once(f, &s, "\"stopped-old\"");
	assert_int_equal(count_with(s.inbox, "\"stopped-new\""), 1);
	assert_int_equal(count_with(s.failed, "stopped-new"), 0);
}

/* to_schema2 makes the sender's agent store what a schema-2 agent wrote:
 * meta's "schema" is "2" and every outbox record is of layout 1 (no
 * content hash: version 1, state, id length u16, id, minted_at u64, then
 * the signed and sealed parts as layout 2 has them after its content
 * hash). Returns how many records it rewrote. */
/* store_open opens the sender's agent store as LMDB holds it (flags 0 or
 * MDB_RDONLY), a transaction in it and its meta and outbox databases */
static MDB_env *store_open(fx *f, unsigned flags, MDB_txn **txn, MDB_dbi *meta, MDB_dbi *outbox)
{
	char data[1400];
	snprintf(data, sizeof(data), "%s/agents/%s/data", f->n->dir, it_party_ids[IT_SOCIAL]);
	MDB_env *env = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	assert_int_equal(mdb_env_open(env, data, flags, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, flags, txn), 0);
	assert_int_equal(mdb_dbi_open(*txn, "meta", 0, meta), 0);
	assert_int_equal(mdb_dbi_open(*txn, "outbox", 0, outbox), 0);
	return env;
}

static int to_schema2(fx *f)
{
	MDB_txn *txn = NULL;
	MDB_dbi meta, outbox;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int n = 0;
	MDB_env *env = store_open(f, 0, &txn, &meta, &outbox);
	MDB_val sk = {6, (void *)"schema"}, sv = {1, (void *)"2"};
	assert_int_equal(mdb_put(txn, meta, &sk, &sv, 0), 0);
	assert_int_equal(mdb_cursor_open(txn, outbox, &cur), 0);
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *p = v.mv_data;
		if (v.mv_size < 4 || p[0] == 1)
			continue;
		assert_int_equal(p[0], 2);
		size_t idlen = ((size_t)p[2] << 8) | p[3];
		size_t head = 4 + idlen + 8, drop = 32;
		assert_true(v.mv_size >= head + drop);
		uint8_t *nv = malloc(v.mv_size - drop);
		assert_non_null(nv);
		memcpy(nv, p, head);
		nv[0] = 1;
		memcpy(nv + head, p + head + drop, v.mv_size - head - drop);
		/* the key copied first: the put moves the page it points into */
		uint8_t kb[512];
		assert_true(k.mv_size <= sizeof(kb));
		memcpy(kb, k.mv_data, k.mv_size);
		MDB_val kk = {k.mv_size, kb}, vv = {v.mv_size - drop, nv};
		assert_int_equal(mdb_cursor_put(cur, &kk, &vv, MDB_CURRENT), 0);
		free(nv);
		n++;
	}
	mdb_cursor_close(cur);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	return n;
}

static void test_schema2_upgrade(void **state)
{
	fx *f = *state;
	spools s;
	char log[1400], ini[1300];
	/* stopped with two sealed files in flight: u.json leaves, v.json stays */
	sealed_then_stopped(f, &s, "u.json", NULL, "up-gone", "\"up-gone\"", 0);
	sealed_unanswered(f, &s, "v.json", NULL, "up-there", "\"up-there\"");
	stop_social(f, SIGTERM);
	sent_back(&s);
	assert_int_equal(to_schema2(f), 2);
	free(removed_while_stopped(f, &s, "u.json"));
	receipt_of(f, &s, "messageId", "up-gone", "up-gone");
	receipt_of(f, &s, "messageId", "up-there", "up-there");
	delivered_once(f, &s, "\"up-gone\"");
	agent_log_path(f, IT_SOCIAL, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "the agent store was of schema 2"), 1);
	assert_int_equal(count_lines_in(log, "1 rewritten with it; 1 sealed file(s)"), 1);
	/* said once: not at the next start */
	stop_social(f, SIGTERM);
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	sent_receipted(f, s.sent, "after.json", "up-after");
	assert_int_equal(count_lines_in(log, "the agent store was of schema 2"), 1);
	/* the read-only reader reads the upgraded store */
	snprintf(ini, sizeof(ini), "%s/agents/%s/agent.ini", f->n->dir, it_party_ids[IT_SOCIAL]);
	char *o = NULL;
	int rc = tu_run(&o, "%s/rete status -c %s --timeout 0", f->n->bin, ini);
	if (rc != 0)
		fprintf(stderr, "rete status: %s\n", o ? o : "");
	assert_int_equal(rc, 0);
	assert_non_null(strstr(o, "up-gone"));
	free(o);
}

/* --- going back, --trust, an answer cut after its receipt ------------------------- */

/* store_state reads the sender's agent store as LMDB holds it: meta's
 * "schema" record into schema ("" when there is none) and how many outbox
 * records are of layout 2 (with the content hash, which an agent of
 * schema 2 or older does not parse). */
static int store_state(fx *f, char *schema, size_t n)
{
	MDB_txn *txn = NULL;
	MDB_dbi meta, outbox;
	MDB_cursor *cur = NULL;
	MDB_val k = {6, (void *)"schema"}, v;
	int l2 = 0;
	MDB_env *env = store_open(f, MDB_RDONLY, &txn, &meta, &outbox);
	schema[0] = '\0';
	if (mdb_get(txn, meta, &k, &v) == 0)
		snprintf(schema, n, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
	assert_int_equal(mdb_cursor_open(txn, outbox, &cur), 0);
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		l2 += v.mv_size > 0 && ((const uint8_t *)v.mv_data)[0] == 2;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return l2;
}

/* warm_start fills s, starts the network and sends one referral (id
 * warm_id) to warm up */
static void warm_start(fx *f, spools *s, const char *warm_id)
{
	it_spool(f->n, IT_SOCIAL, "sent", s->sent, sizeof(s->sent));
	it_spool(f->n, IT_SOCIAL, "outbox", s->out, sizeof(s->out));
	it_spool(f->n, IT_SOCIAL, "failed", s->failed, sizeof(s->failed));
	it_spool(f->n, IT_CPI, "inbox", s->inbox, sizeof(s->inbox));
	start_net(f);
	sent_receipted(f, s->sent, "warm.json", warm_id);
}

/* taken_in_then_stopped: d.json (id down-1) is taken in, its id recorded,
 * with the broker paused (no answer), and the agent stopped cleanly */
static void taken_in_then_stopped(fx *f, spools *s)
{
	warm_start(f, s, "down-warm");
	assert_int_equal(kill(f->n->broker_pid, SIGSTOP), 0);
	put_referral(f, IT_SOCIAL, "d.json", "down-1", 0);
	assert_true(wait_log(f, IT_SOCIAL, "d.json: message id down-1 recorded", 1, 30000));
	stop_social(f, SIGTERM);
	assert_int_equal(kill(f->n->broker_pid, SIGCONT), 0);
}

/* A store holding a record an older agent does not parse records schema
 * 3, which an agent of schema 2 refuses. */
static void test_downgrade_schema_recorded(void **state)
{
	fx *f = *state;
	spools s;
	char schema[16];
	taken_in_then_stopped(f, &s);
	int l2 = store_state(f, schema, sizeof(schema));
	assert_true(l2 >= 1);
	assert_string_equal(schema, "3");
}

/* An older rete-agent started on that store (RETE_TEST_OLD_AGENT: the
 * folder holding it, e.g. a build of 928dbbe, the last of schema 2):
 * refused at start with the sentence naming both schemas, nothing taken;
 * this agent, back on the folder, sees d.json through to its receipt. An
 * agent from before the schema record cannot refuse it (it reads no
 * record): docs/agent.md says to go back only with the data folder's
 * backup, and this part is skipped with that sentence. */
static void test_downgrade_old_agent(void **state)
{
	fx *f = *state;
	spools s;
	char bin[sizeof(f->n->bin)], log[1400];
	const char *old = getenv("RETE_TEST_OLD_AGENT");
	if (old == NULL) {
		fprintf(stderr, "test_downgrade_old_agent: SKIPPED: set RETE_TEST_OLD_AGENT to the "
				"bin folder of an older rete-agent (a build of schema 2, e.g. "
				"928dbbe) to run it\n");
		skip();
	}
	char *o = NULL;
	assert_int_equal(tu_run(&o, "%s/rete-agent --version", old), 0);
	bool schema2 = o != NULL && strstr(o, "agent store schema 2") != NULL;
	free(o);
	if (!schema2) {
		fprintf(stderr,
			"test_downgrade_old_agent: SKIPPED: %s/rete-agent reads no schema "
			"record (from before it): it cannot refuse a schema-3 store, and "
			"docs/agent.md says to go back to it only with the data folder's "
			"backup\n",
			old);
		skip();
	}
	taken_in_then_stopped(f, &s);
	snprintf(bin, sizeof(bin), "%s", f->n->bin);
	snprintf(f->n->bin, sizeof(f->n->bin), "%s", old);
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	snprintf(f->n->bin, sizeof(f->n->bin), "%s", bin);
	bool said =
	    wait_log(f, IT_SOCIAL, "has schema 3, and this agent reads schema 2 at most", 1, 30000);
	int st = it_stop(&f->n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms());
	if (!said)
		it_show(f->n, "social.mantova.log");
	assert_true(said);
	assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2);
	agent_log_path(f, IT_SOCIAL, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "does not parse"), 0);
	assert_int_equal(count_with(s.out, "down-1"), 1); /* left as it was */
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	receipt_of(f, &s, "messageId", "down-1", "down-1");
	delivered_once(f, &s, "\"down-1\"");
}

/* A refused `rete-agent --trust` (not a key), --check-config and
 * `rete status` leave a schema-2 store of schema 2: the start that
 * upgrades it records schema 3 and says so, once. */
static int to_schema2(fx *f);
static void test_trust_keeps_schema(void **state)
{
	fx *f = *state;
	spools s;
	char log[1400], ini[1300], schema[16];
	it_spool(f->n, IT_SOCIAL, "sent", s.sent, sizeof(s.sent));
	start_net(f);
	sent_receipted(f, s.sent, "warm.json", "trust-warm");
	stop_social(f, SIGTERM);
	to_schema2(f);
	snprintf(ini, sizeof(ini), "%s/agents/%s/agent.ini", f->n->dir, it_party_ids[IT_SOCIAL]);
	char *o = NULL;
	/* a key that is neither the pinned one nor waiting, while a changed
	 * key waits, is refused (exit 1); with nothing waiting it would be
	 * confirmed in advance, a write: a key that is not one is refused
	 * before the store is opened (exit 2) */
	int rc = tu_run(&o, "%s/rete-agent -c %s --trust %s --key AAAA", f->n->bin, ini,
			it_party_ids[IT_CPI]);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(o, "is not a public key"));
	free(o);
	o = NULL;
	assert_int_equal(tu_run(&o, "%s/rete-agent -c %s --check-config", f->n->bin, ini), 0);
	free(o);
	o = NULL;
	assert_int_equal(tu_run(&o, "%s/rete status -c %s --timeout 0", f->n->bin, ini), 0);
	free(o);
	store_state(f, schema, sizeof(schema));
	if (strcmp(schema, "2") != 0)
		fprintf(stderr, "the store records schema '%s' before the agent started\n", schema);
	assert_string_equal(schema, "2");
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	sent_receipted(f, s.sent, "after.json", "trust-after");
	agent_log_path(f, IT_SOCIAL, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "the agent store was of schema 2"), 1);
	store_state(f, schema, sizeof(schema));
	assert_string_equal(schema, "3");
}

/* An answer cut between its receipt and its file: the taken-back k.json
 * (it left outbox/ while the agent was stopped) gets its receipt written
 * in sent/ and not the message as sent (sent/ on a tmpfs with room for
 * one page), where a kill -9 can land; the agent is killed there. Once
 * there is room, the next start writes the message beside that receipt:
 * one receipt in sent/, one message, one delivery. */
static bool mount_tmpfs(fx *f, const char *dir, const char *size);

/* fill_up fills the file system of dir with the file dir/.filler (its
 * path in filler), leaving room pages of 4 KiB free */
static void fill_up(const char *dir, char *filler, size_t n, int room)
{
	snprintf(filler, n, "%s/.filler", dir);
	int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	char block[4096];
	memset(block, 'x', sizeof(block));
	while (write(fd, block, sizeof(block)) > 0)
		;
	while (write(fd, block, 1) > 0)
		;
	off_t size = lseek(fd, 0, SEEK_END);
	assert_true(size >= (off_t)(room + 1) * 4096);
	if (room > 0)
		assert_int_equal(ftruncate(fd, (size / 4096 - room) * 4096), 0);
	close(fd);
}

static void test_answer_cut_after_receipt(void **state)
{
	fx *f = *state;
	spools s;
	char path[1500], filler[1500];
	if (!can_mount) {
		fprintf(stderr, "test_answer_cut_after_receipt: SKIPPED: no mount namespace\n");
		skip();
	}
	sealed_then_stopped(f, &s, "k.json", NULL, "cut-1", "\"cut-1\"", SIGKILL);
	snprintf(path, sizeof(path), "%s/k.json", s.out);
	assert_int_equal(unlink(path), 0);
	if (!mount_tmpfs(f, s.sent, "64k"))
		skip();
	fill_up(s.sent, filler, sizeof(filler), 1); /* room for the receipt only */
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	assert_true(wait_log(
	    f, IT_SOCIAL, "k.json: accepted, but cannot record it or move it to sent/", 2, 30000));
	stop_social(f, SIGKILL);
	/* where the kill landed: the receipt written, not the message */
	snprintf(path, sizeof(path), "%s/k.json.receipt.json", s.sent);
	assert_int_equal(count_in(path, "cut-1"), 1);
	snprintf(path, sizeof(path), "%s/k.json", s.sent);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(unlink(filler), 0);
	assert_true(it_agent_start(f->n, IT_SOCIAL));
	receipt_of(f, &s, "messageId", "cut-1", "cut-1");
	delivered_once(f, &s, "\"cut-1\"");
	int receipts = count_with(s.sent, "\"messageId\": \"cut-1\"");
	if (receipts != 1) {
		char *o = NULL;
		tu_run(&o, "ls -l %s", s.sent);
		fprintf(stderr, "%d receipts of cut-1 in sent/:\n%s", receipts, o ? o : "");
		free(o);
	}
	assert_int_equal(receipts, 1);
	assert_int_equal(count_in(path, "cut-1"), 1); /* sent/k.json: the message as sent */
}

/* --- 6c: never overwrite a file the agent did not write ----------------------------- */

static void test_receipt_name_taken(void **state)
{
	fx *f = *state;
	start_net(f);
	char sent[1300], path[1700];
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	put_referral(f, IT_SOCIAL, "c.json.receipt.json", "taken-1", 0);
	char *r1 = wait_answer(sent, ".receipt.json", "messageId", "taken-1", 30000);
	assert_non_null(r1);
	assert_string_equal(r1, "c.json.receipt.json.receipt.json");
	put_referral(f, IT_SOCIAL, "c.json", "taken-2", 0);
	/* wait until the receipt of taken-2 is somewhere */
	char *r2 = wait_answer(sent, ".receipt.json", "messageId", "taken-2", 30000);
	assert_non_null(r2);
	/* the agency's file is what it was */
	snprintf(path, sizeof(path), "%s/c.json.receipt.json", sent);
	assert_int_equal(count_in(path, "\"taken-1\""), 1);
	assert_int_equal(count_in(path, "\"operator\""), 1);
	assert_string_not_equal(r2, "c.json.receipt.json");
	/* and the receipt's file holds taken-2 */
	snprintf(path, sizeof(path), "%s/%.*s", sent, (int)(strlen(r2) - strlen(".receipt.json")),
		 r2);
	assert_int_equal(count_in(path, "\"taken-2\""), 1);
	free(r1);
	free(r2);
}

/* --- 6d: sent/ and failed/ on another file system ------------------------------------ */

static bool mount_tmpfs(fx *f, const char *dir, const char *size)
{
	char opts[64];
	snprintf(opts, sizeof(opts), "size=%s,mode=0755", size);
	mkdir(dir, 0755);
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
		fprintf(stderr, "cannot mount a tmpfs on %s: %s\n", dir, strerror(errno));
		return false;
	}
	snprintf(f->mounts[f->nmounts++], sizeof(f->mounts[0]), "%s", dir);
	return true;
}

static void make_spool(fx *f, int p)
{
	char path[1300];
	it_write_agent_ini(f->n, p);
	mkdir(it_spool(f->n, p, "", path, sizeof(path)), 0755);
}

static void test_other_filesystem(void **state)
{
	fx *f = *state;
	if (!can_mount) {
		fprintf(stderr, "test_other_filesystem: SKIPPED: no mount namespace\n");
		skip();
	}
	char sent[1300], failed[1300], out[1300], inbox[1300], path[1700];
	make_spool(f, IT_SOCIAL);
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(f->n, IT_SOCIAL, "failed", failed, sizeof(failed));
	it_spool(f->n, IT_SOCIAL, "outbox", out, sizeof(out));
	it_spool(f->n, IT_CPI, "inbox", inbox, sizeof(inbox));
	if (!mount_tmpfs(f, sent, "8m") || !mount_tmpfs(f, failed, "8m"))
		skip();
	start_net(f);
	put_referral(f, IT_SOCIAL, "fs-1.json", "fs-1", 0);
	put_referral(f, IT_SOCIAL, "fs-2.json", "fs-2", 0);
	put(out, "fs-bad.json", "{\"this is\": not json");
	char *r1 = wait_answer(sent, ".receipt.json", "messageId", "fs-1", 30000);
	if (r1 == NULL)
		it_show(f->n, "social.mantova.log");
	assert_non_null(r1);
	char *r2 = wait_answer(sent, ".receipt.json", "messageId", "fs-2", 30000);
	assert_non_null(r2);
	char *e = wait_answer(failed, ".error.json", "file", "fs-bad.json", 30000);
	assert_non_null(e);
	assert_string_equal(r1, "fs-1.json.receipt.json");
	assert_string_equal(r2, "fs-2.json.receipt.json");
	assert_string_equal(e, "fs-bad.json.error.json");
	snprintf(path, sizeof(path), "%s/fs-1.json", sent);
	assert_int_equal(count_in(path, "\"fs-1\""), 1);
	snprintf(path, sizeof(path), "%s/fs-bad.json", failed);
	assert_int_equal(count_in(path, "not json"), 1);
	/* outbox/ is empty, each message delivered once, nothing answered twice */
	const char *left[] = {"fs-1.json", "fs-2.json", "fs-bad.json"};
	for (int i = 0; i < 3; i++)
		assert_true(wait_gone(out, left[i], 30000));
	assert_true(wait_count_with(inbox, "\"fs-2\"", 1, 30000));
	assert_true(wait_count_with(inbox, "\"fs-1\"", 1, 30000));
	/* a later file still goes (the agent is not stuck resubmitting) */
	put_referral(f, IT_SOCIAL, "fs-3.json", "fs-3", 0);
	char *r3 = wait_answer(sent, ".receipt.json", "messageId", "fs-3", 30000);
	assert_non_null(r3);
	assert_int_equal(count_with(sent, "\"fs-1\""), 2); /* the file and its receipt */
	assert_int_equal(count_with(inbox, "\"fs-1\""), 1);
	free(r1);
	free(r2);
	free(r3);
	free(e);
}

/* --- 6b: a file that cannot be moved is named in the log once -------------------------- */

static void test_unmovable_said_once(void **state)
{
	fx *f = *state;
	if (!can_mount) {
		fprintf(stderr, "test_unmovable_said_once: SKIPPED: no mount namespace\n");
		skip();
	}
	char sent[1300], failed[1300], out[1300], log[1400];
	make_spool(f, IT_SOCIAL);
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(f->n, IT_SOCIAL, "failed", failed, sizeof(failed));
	it_spool(f->n, IT_SOCIAL, "outbox", out, sizeof(out));
	if (!mount_tmpfs(f, failed, "1m"))
		skip();
	/* failed/ read-only: nothing can be answered there */
	assert_int_equal(mount(NULL, failed, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
	start_net(f);
	put(out, "ro-bad.json", "{\"not\": json");
	assert_true(wait_log(f, IT_SOCIAL, "ro-bad.json", 1, 30000));
	/* more scans: files arrive and are answered */
	sent_receipted(f, sent, "ro-1.json", "ro-1");
	sent_receipted(f, sent, "ro-2.json", "ro-2");
	agent_log_path(f, IT_SOCIAL, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "ro-bad.json"), 1);
	/* writable again: the answer comes */
	assert_int_equal(mount(NULL, failed, NULL, MS_REMOUNT, NULL), 0);
	char *e = wait_answer(failed, ".error.json", "file", "ro-bad.json", 30000);
	assert_non_null(e);
	assert_string_equal(e, "ro-bad.json.error.json");
	free(e);
	assert_true(wait_gone(out, "ro-bad.json", 30000));
}

/* --- 6e: over the broker's max_frame ---------------------------------------------------- */

static void test_too_large(void **state)
{
	fx *f = *state;
	f->n->max_frame = "64KiB";
	assert_int_equal(it_write_ini(f->n), 0);
	start_net(f);
	char sent[1300], failed[1300];
	it_spool(f->n, IT_SOCIAL, "sent", sent, sizeof(sent));
	it_spool(f->n, IT_SOCIAL, "failed", failed, sizeof(failed));
	put_referral(f, IT_SOCIAL, "big.json", "big-1", 100000);
	char *e = wait_answer(failed, ".error.json", "messageId", "big-1", 30000);
	if (e == NULL) {
		it_show(f->n, "social.mantova.log");
		fprintf(stderr, "a referral over the broker's max_frame got no answer\n");
	}
	assert_non_null(e);
	json_t *j = json_file(failed, e);
	assert_string_equal(json_string_value(json_object_get(j, "code")), "too-large");
	const char *why = json_string_value(json_object_get(j, "error"));
	assert_non_null(why);
	assert_non_null(strstr(why, "65536"));
	json_decref(j);
	free(e);
	/* the agent goes on */
	sent_receipted(f, sent, "small.json", "big-2");
	assert_true(wait_log(f, IT_SOCIAL, "big.json", 1, 1000));
}

/* --- 5a: the recipient's inbox on a full file system ---------------------------------------- */

static void test_inbox_full(void **state)
{
	fx *f = *state;
	if (!can_mount) {
		fprintf(stderr, "test_inbox_full: SKIPPED: no mount namespace\n");
		skip();
	}
	char inbox[1300], sinbox[1300], filler[1400], log[1400];
	make_spool(f, IT_CPI);
	it_spool(f->n, IT_CPI, "inbox", inbox, sizeof(inbox));
	it_spool(f->n, IT_SOCIAL, "inbox", sinbox, sizeof(sinbox));
	if (!mount_tmpfs(f, inbox, "64k"))
		skip();
	fill_up(inbox, filler, sizeof(filler), 0);
	start_net(f);
	put_referral(f, IT_SOCIAL, "full.json", "full-1", 0);
	/* the write fails: said in the log, not acked */
	assert_true(wait_log(f, IT_CPI, "No space left", 1, 30000));
	assert_int_equal(count_with(inbox, "\"full-1\""), 0);
	/* space comes back: the same agent, same connection, writes it */
	assert_int_equal(unlink(filler), 0);
	bool in = wait_count_with(inbox, "\"full-1\"", 1, 60000);
	if (!in) {
		it_show(f->n, "cpi.mantova.log");
		fprintf(stderr, "the delivery never reached inbox/ after space came back\n");
	}
	assert_true(in);
	/* the referral is received: the delivery receipt reaches the sender */
	assert_true(wait_count_with(sinbox, "\"delivery\"", 1, 60000));
	assert_int_equal(count_with(sinbox, "not-delivered"), 0);
	assert_int_equal(count_with(inbox, "\"full-1\""), 1);
	/* one line for the problem, not one per try */
	agent_log_path(f, IT_CPI, log, sizeof(log));
	assert_int_equal(count_lines_in(log, "No space left"), 1);
}

int main(void)
{
	/* our own mount namespace for the file-system tests */
	if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
		can_mount = true;
	else
		fprintf(stderr,
			"test_spool_edges: no mount namespace (%s); the file-system "
			"tests are skipped\n",
			strerror(errno));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_two_agents, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replaced_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_odd_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_link_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gone_at_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_back_at_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_again_after_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replaced_while_stopped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema2_upgrade, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_downgrade_schema_recorded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_downgrade_old_agent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trust_keeps_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_answer_cut_after_receipt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receipt_name_taken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_filesystem, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unmovable_said_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_full, setup, teardown),
	};
	if (getenv("RETE_TEST_ONLY") != NULL) /* e.g. RETE_TEST_ONLY=test_link_in_flight */
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
