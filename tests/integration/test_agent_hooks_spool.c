/* test_agent_hooks_spool.c — the agent's hooks and its hold on the spool,
 * with the real rete-agent (and, for deliveries, itest.h's fake broker, so
 * the test decides which entry comes at which log index).
 *
 *   hook_same_index_live     two different entries delivered at one log
 *                            index (a restore of the broker's store): the
 *                            second arrives while the first one's hook
 *                            still runs; both hooks run, each once, and
 *                            tell the two files apart by their path;
 *   hook_same_index_restart  the same, with the agent stopped while both
 *                            hooks run: after the restart both run again
 *                            to their end, each once, and a third start
 *                            runs neither;
 *   hook_old_record          a hook record an older agent left (keyed by
 *                            log index) runs once and is rewritten;
 *   hook_killed_whole        a hook that hangs in a command it started (a
 *                            child of the hook's shell) is killed whole
 *                            after hook_timeout, and at the agent's stop:
 *                            nothing of it keeps running (nor runs beside
 *                            its run again after the restart);
 *   hook_not_found           on_message names no program: each hook's
 *                            failure says so (not only "exited with 127"),
 *                            and --check-config names it;
 *   sealed_bounded           forty files in outbox/ and a broker that takes
 *                            its time: the agent seals (and keeps in memory
 *                            and in its store) a bounded number ahead of
 *                            the submissions, not all forty at once;
 *   spool_lock               two agent.ini files with one spool and two
 *                            data folders: the second agent exits 2 naming
 *                            the first one's pid and the folder;
 *   lock_files_removed       DATA/agent.lock and SPOOL/spool.lock deleted
 *                            under a running agent: a second agent on the
 *                            same agent.ini still exits 2 naming its pid;
 *   inbox_sweep              a temporary file a crash left in inbox/
 *                            (".rete-PID-N.tmp", it may hold an opened
 *                            private part) is removed at start; the
 *                            agency's own hidden files are left alone.
 *
 * Waits are for files, frames and log lines with deadlines, never sleeps.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"

#define HS_WAIT 60000 /* generous: 2 cores, sanitizers */

/* hs_lines counts the lines of the file at path that start with prefix and
 * end with suffix. */
static size_t hs_lines(const char *path, const char *prefix, const char *suffix)
{
	char *data = tu_read_file(path, NULL);
	size_t k = 0, pl = strlen(prefix), sl = strlen(suffix);
	for (char *line = data; line && *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len >= pl + sl && strncmp(line, prefix, pl) == 0 &&
		    strncmp(line + len - sl, suffix, sl) == 0)
			k++;
		line = nl ? nl + 1 : line + len;
	}
	free(data);
	return k;
}

/* --- the hooks --------------------------------------------------------------- */

typedef struct hs_fx {
	it_net *n;
	it_fake f;
	pid_t second; /* a second agent, if one runs */
	char hook_out[1300], release[1300], inbox[1300], log[1300], extra[1400];
	char pids[1300]; /* pids of the commands the hooks started (killed at the teardown) */
} hs_fx;

/* hs_start starts the job centre's agent (with its hook, x->extra) and
 * waits until it said HELLO to the fake broker. */
static void hs_start(hs_fx *x)
{
	assert_true(it_agent_start_ex(x->n, IT_CPI, x->extra));
	int h = x->f.hellos;
	assert_int_equal(it_fake_serve(&x->f, &x->f.hellos, h + 1, HS_WAIT), h + 1);
}

/* hs_stop stops the job centre's agent with SIGTERM; the test fails
 * unless it exits 0. */
static void hs_stop(hs_fx *x)
{
	int st = it_stop(&x->n->agent_pid[IT_CPI], SIGTERM, it_wait_ms());
	assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* hs_hook_net_with: a fake broker (with a real WELCOME for the job centre)
 * and the job centre's agent, whose hook is the script body (DIR/hook.sh,
 * its %1$s the path of DIR/hook.out, %2$s of DIR/release, %3$s of
 * DIR/pids), run as "exec DIR/hook.sh", with more (NULL or "key = value\n"
 * lines of [agent]) in agent.ini. */
static void hs_hook_net_with(hs_fx *x, const char *tag, const char *body_fmt, const char *more)
{
	char script[1300], body[4000];
	x->n = it_net_new(tag, NULL);
	assert_non_null(x->n);
	it_fake_open(&x->f, x->n, it_real_welcome(x->n, IT_CPI));
	tu_path(x->hook_out, sizeof(x->hook_out), "%s/hook.out", x->n->dir);
	tu_path(x->release, sizeof(x->release), "%s/release", x->n->dir);
	tu_path(x->pids, sizeof(x->pids), "%s/pids", x->n->dir);
	tu_path(x->log, sizeof(x->log), "%s/cpi.mantova.log", x->n->dir);
	it_spool(x->n, IT_CPI, "inbox", x->inbox, sizeof(x->inbox));
	tu_path(script, sizeof(script), "%s/hook.sh", x->n->dir);
	snprintf(body, sizeof(body), body_fmt, x->hook_out, x->release, x->pids);
	assert_int_equal(tu_write_file(script, body, strlen(body)), 0);
	assert_int_equal(chmod(script, 0755), 0);
	snprintf(x->extra, sizeof(x->extra), "on_message = exec %s\n%s", script, more ? more : "");
	hs_start(x);
}

/* hs_hook_net: hs_hook_net_with a hook that writes "start INDEX PATH" to
 * DIR/hook.out, waits until DIR/release exists, then writes "done INDEX
 * PATH". */
static void hs_hook_net(hs_fx *x, const char *tag)
{
	hs_hook_net_with(x, tag,
			 "#!/bin/sh\n"
			 "echo \"start $RETE_INDEX $1\" >> '%1$s'\n"
			 "while [ ! -e '%2$s' ]; do sleep 0.05; done\n"
			 "echo \"done $RETE_INDEX $1\" >> '%1$s'\n",
			 NULL);
}

/* hs_running: the process pid exists and is not a zombie (one that ended
 * and waits for its parent to reap it has stopped running). */
static bool hs_running(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	char *stat = tu_read_file(path, NULL);
	const char *close = stat ? strrchr(stat, ')') : NULL;
	bool running = close != NULL && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
	free(stat);
	return running;
}

/* hs_kill_pids kills the `sleep`s listed in DIR/pids that still run (a
 * test's cleanup: they are what a hook left behind). */
static void hs_kill_pids(const char *pids)
{
	char *text = pids[0] ? tu_read_file(pids, NULL) : NULL;
	for (char *p = text; p && *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		char *comm = tu_read_file(path, NULL);
		if (pid > 1 && comm && strncmp(comm, "sleep", 5) == 0)
			kill((pid_t)pid, SIGKILL);
		free(comm);
		p = end;
		while (*p == '\n')
			p++;
	}
	free(text);
}

static int hs_setup(void **state)
{
	*state = calloc(1, sizeof(hs_fx));
	return *state == NULL ? -1 : 0;
}

/* hs_teardown stops what the test started (also after a failed assertion)
 * and removes its folder. */
static int hs_teardown(void **state)
{
	hs_fx *x = *state;
	bool bad = false;
	if (x->second > 0)
		it_stop(&x->second, SIGKILL, it_wait_ms());
	hs_kill_pids(x->pids);
	if (x->f.ctx != NULL)
		it_fake_close(&x->f);
	it_net_free(&x->n, false, &bad);
	free(x);
	*state = NULL;
	return bad ? -1 : 0;
}

/* hs_serve_for_lines serves the fake broker until hook.out holds a line
 * prefix...suffix `want` times; returns how many it holds. */
static size_t hs_serve_for_lines(hs_fx *x, const char *prefix, const char *suffix, size_t want,
				 int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	int never = 0;
	size_t k;
	while ((k = hs_lines(x->hook_out, prefix, suffix)) < want && it_mono_ms() < end)
		it_fake_serve(&x->f, &never, 1, 100);
	return k;
}

/* hs_deliver delivers o at index and waits for its ACK (without error).
 * An agent started again acks again, at its WELCOME, an entry it wrote
 * before whose ACK it never saw taken (docs/agent.md, "Stopped between the
 * file and the ACK"): such an ACK of an earlier index may come first and
 * is passed over. */
static void hs_deliver(hs_fx *x, uint64_t index, const it_msg *o)
{
	int64_t end = it_mono_ms() + it_scaled_ms(HS_WAIT);
	it_fake_deliver(&x->f, index, o);
	do {
		int acks = x->f.acks;
		if (it_fake_serve(&x->f, &x->f.acks, acks + 1, HS_WAIT) != acks + 1) {
			it_show(x->n, "cpi.mantova.log");
			break;
		}
	} while (x->f.last_ack != index && x->f.last_ack < index && it_mono_ms() < end);
	assert_int_equal(x->f.last_ack, index);
	assert_int_equal(x->f.last_ack_error, 0);
}

/* hs_collided finds the inbox file of the second entry at index (the name
 * with 8 hex digits after the index) into name. */
static void hs_collided(hs_fx *x, uint64_t index, char *name, size_t n)
{
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%012" PRIu64 ".", index);
	DIR *d = opendir(x->inbox);
	struct dirent *e;
	name[0] = '\0';
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			snprintf(name, n, "/%s", e->d_name);
	closedir(d);
	if (name[0] == '\0')
		it_show(x->n, "cpi.mantova.log");
	assert_true(name[0] != '\0');
}

/* hs_two_at delivers two different referrals at one index, the second
 * while the first one's hook runs; first and second get the inbox names
 * ("/NAME", as the hook's path ends). */
static void hs_two_at(hs_fx *x, uint64_t index, const char *id1, const char *id2, char *first,
		      char *second, size_t n)
{
	it_msg a, b;
	char want[32];
	assert_int_equal(it_referral(x->n, IT_SOCIAL, IT_CPI, id1, &a), RETE_OK);
	assert_int_equal(it_referral(x->n, IT_SOCIAL, IT_CPI, id2, &b), RETE_OK);
	snprintf(first, n, "/%012" PRIu64 "-referral.json", index);
	snprintf(want, sizeof(want), "start %" PRIu64 " ", index);
	hs_deliver(x, index, &a);
	assert_int_equal(hs_serve_for_lines(x, want, first, 1, HS_WAIT), 1);
	hs_deliver(x, index, &b); /* the first hook still waits for release */
	hs_collided(x, index, second, n);
	assert_true(hs_lines(x->hook_out, "done ", "") == 0);
	it_msg_free(&a);
	it_msg_free(&b);
}

static void test_hook_same_index_live(void **state)
{
	hs_fx *x = *state;
	char first[200], second[200];
	hs_hook_net(x, "hooks-live");
	hs_two_at(x, 5, "hk-live-a", "hk-live-b", first, second, sizeof(first));

	assert_int_equal(tu_write_file(x->release, "", 0), 0);
	size_t a = hs_serve_for_lines(x, "done 5 ", first, 1, HS_WAIT);
	size_t b = hs_serve_for_lines(x, "done 5 ", second, 1, HS_WAIT);
	if (a != 1 || b != 1) {
		it_show_path(x->hook_out, 0);
		it_show(x->n, "cpi.mantova.log");
	}
	assert_int_equal(a, 1); /* the first file's hook ran to its end, once */
	assert_int_equal(b, 1); /* so did the hook of the second file at that index */
	/* Each ran once: it started once (no stop in between). */
	assert_int_equal(hs_lines(x->hook_out, "start 5 ", first), 1);
	assert_int_equal(hs_lines(x->hook_out, "start 5 ", second), 1);
}

static void test_hook_same_index_restart(void **state)
{
	hs_fx *x = *state;
	char first[200], second[200];
	hs_hook_net(x, "hooks-restart");
	hs_two_at(x, 6, "hk-rs-c", "hk-rs-d", first, second, sizeof(first));

	/* Stopped while the hooks wait: the agent kills them at its stop, and
	 * they stay owed. */
	hs_stop(x);
	assert_int_equal(hs_lines(x->hook_out, "done ", ""), 0);
	assert_int_equal(tu_write_file(x->release, "", 0), 0);
	assert_true(it_agent_start_ex(x->n, IT_CPI, x->extra));
	size_t c = hs_serve_for_lines(x, "done 6 ", first, 1, HS_WAIT);
	size_t d = hs_serve_for_lines(x, "done 6 ", second, 1, HS_WAIT);
	if (c != 1 || d != 1) {
		it_show_path(x->hook_out, 0);
		it_show(x->n, "cpi.mantova.log");
	}
	assert_int_equal(c, 1); /* the first file's hook ran to its end after the restart */
	assert_int_equal(d, 1); /* and so did the second one's */
	assert_int_equal(tu_occurrences(x->log, "2 hook run(s) left unfinished"), 1);

	/* A third start owes nothing: no hook runs again. */
	hs_stop(x);
	hs_start(x);
	assert_int_equal(tu_occurrences(x->log, "hook run(s) left unfinished"), 1);
	assert_int_equal(hs_lines(x->hook_out, "done 6 ", first), 1);
	assert_int_equal(hs_lines(x->hook_out, "done 6 ", second), 1);
}

/* hs_old_hook_record writes, behind the agent's back, the pending hook
 * record an older agent kept: log index BE64 -> the inbox file's path. */
static void hs_old_hook_record(const char *data, uint64_t index, const char *path)
{
	uint8_t key[8];
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(index >> (56 - 8 * i));
	tu_raw_put(data, "hooks", key, sizeof(key), path, strlen(path));
}

/* test_hook_old_record: a hook left pending by an older agent (its record
 * keyed by log index) runs at the next start, once, and is rewritten by
 * file name (a regression test of the upgrade path, not of a defect). */
static void test_hook_old_record(void **state)
{
	hs_fx *x = *state;
	char data[1300], file[1500], tail[64];
	hs_hook_net(x, "hooks-old");
	assert_int_equal(tu_write_file(x->release, "", 0), 0); /* hooks end at once */
	hs_stop(x);
	tu_path(data, sizeof(data), "%s/agents/%s/data", x->n->dir, it_party_ids[IT_CPI]);
	tu_path(file, sizeof(file), "%s/000000000009-referral.json", x->inbox);
	assert_int_equal(tu_write_file(file, "{}\n", 3), 0);
	hs_old_hook_record(data, 9, file);

	assert_true(it_agent_start_ex(x->n, IT_CPI, x->extra));
	snprintf(tail, sizeof(tail), "/000000000009-referral.json");
	size_t k = hs_serve_for_lines(x, "done 9 ", tail, 1, HS_WAIT);
	if (k != 1)
		it_show(x->n, "cpi.mantova.log");
	assert_int_equal(k, 1);
	assert_int_equal(tu_occurrences(x->log, "rewritten by inbox file name"), 1);
	/* ran, so forgotten: the next start runs nothing */
	hs_stop(x);
	hs_start(x);
	assert_int_equal(tu_occurrences(x->log, "hook run(s) left unfinished"), 1);
	assert_int_equal(hs_lines(x->hook_out, "done 9 ", tail), 1);
}

static bool hs_wait_log(const char *path, const char *needle, int ms);

/* hs_nth_pid: the pid on line k (from 1) of DIR/pids, 0 when there is none. */
static pid_t hs_nth_pid(const hs_fx *x, int k)
{
	char *text = tu_read_file(x->pids, NULL);
	long pid = 0;
	char *p = text;
	for (int i = 1; p && *p && i <= k; i++) {
		char *end;
		pid = strtol(p, &end, 10);
		p = strchr(end, '\n');
		p = p ? p + 1 : NULL;
		if (i < k && p == NULL)
			pid = 0;
	}
	free(text);
	return (pid_t)pid;
}

/* hs_wait_gone waits (ms, scaled) until pid no longer runs. */
static bool hs_wait_gone(pid_t pid, int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (hs_running(pid)) {
		if (it_mono_ms() >= end)
			return false;
		it_nap(20); /* polling another process's end: no event to wait on */
	}
	return true;
}

/* test_hook_killed_whole: a hook that hangs in a command of its own (an
 * import that never returns, started by the hook's shell) is killed whole,
 * once after hook_timeout and once at the agent's stop. Killing the hook's
 * shell alone left the command running for ever: after a timeout, one
 * more hung process per delivery; after a stop, the hook of that file ran
 * again at the next start beside the old one still at work. */
static void test_hook_killed_whole(void **state)
{
	hs_fx *x = *state;
	it_msg a, b;
	/* the hook starts a command that waits 10 minutes, notes its pid, and
	 * waits for it; it never ends by itself */
	hs_hook_net_with(x, "hooks-whole",
			 "#!/bin/sh\n"
			 "sleep 600 &\n"
			 "echo $! >> '%3$s'\n"
			 "echo \"start $RETE_INDEX $1\" >> '%1$s'\n"
			 "wait\n",
			 "hook_timeout = 1s\n");
	assert_int_equal(it_referral(x->n, IT_SOCIAL, IT_CPI, "hk-whole-a", &a), RETE_OK);
	hs_deliver(x, 3, &a);
	assert_int_equal(hs_serve_for_lines(x, "start 3 ", "-referral.json", 1, HS_WAIT), 1);
	pid_t first = hs_nth_pid(x, 1);
	assert_true(first > 0);
	assert_true(hs_wait_log(x->log, "was killed", HS_WAIT));
	bool gone = hs_wait_gone(first, 10000);
	if (!gone)
		fprintf(stderr,
			"the hook was killed after hook_timeout, the command it started "
			"(pid %ld) still runs\n",
			(long)first);
	assert_true(gone);

	/* At the stop: the agent waits 5 s for a hook, then kills it. */
	hs_stop(x);
	char *t = strstr(x->extra, "hook_timeout = 1s");
	assert_non_null(t);
	snprintf(t, sizeof(x->extra) - (size_t)(t - x->extra), "hook_timeout = 10m\n");
	hs_start(x);
	assert_int_equal(it_referral(x->n, IT_SOCIAL, IT_CPI, "hk-whole-b", &b), RETE_OK);
	hs_deliver(x, 4, &b);
	assert_int_equal(hs_serve_for_lines(x, "start 4 ", "-referral.json", 1, HS_WAIT), 1);
	pid_t second = hs_nth_pid(x, 2);
	assert_true(second > 0);
	hs_stop(x);
	gone = hs_wait_gone(second, 10000); /* killed: gone once it is reaped */
	if (!gone)
		fprintf(stderr,
			"the agent stopped, the command its hook started (pid %ld) still "
			"runs, and the hook runs again at the next start\n",
			(long)second);
	assert_true(gone);
	it_msg_free(&a);
	it_msg_free(&b);
}

/* test_hook_not_found: on_message names a program that is not there (a
 * typo, a hook not yet installed). Before, each delivery's hook logged
 * "exited with 127" (the shell's code for a command not found), and
 * --check-config said "fine". */
static void test_hook_not_found(void **state)
{
	hs_fx *x = *state;
	char hook[1300], ini[1400], *out = NULL;
	it_msg a;
	x->n = it_net_new("hook-missing", NULL);
	assert_non_null(x->n);
	it_fake_open(&x->f, x->n, it_real_welcome(x->n, IT_CPI));
	tu_path(x->log, sizeof(x->log), "%s/cpi.mantova.log", x->n->dir);
	tu_path(hook, sizeof(hook), "%s/no-such-hook", x->n->dir);
	snprintf(x->extra, sizeof(x->extra), "on_message = %s --fast\n", hook);
	hs_start(x);
	assert_int_equal(it_referral(x->n, IT_SOCIAL, IT_CPI, "hk-missing-a", &a), RETE_OK);
	hs_deliver(x, 3, &a);
	assert_true(hs_wait_log(x->log, "exited with 127", HS_WAIT));
	if (tu_occurrences(x->log, "no such command") == 0)
		it_show(x->n, "cpi.mantova.log");
	assert_true(tu_occurrences(x->log, "no such command") >= 1);
	it_msg_free(&a);

	tu_path(ini, sizeof(ini), "%s/agents/%s/agent.ini", x->n->dir, it_party_ids[IT_CPI]);
	int rc = tu_run(&out, "'%s/rete-agent' -c '%s' --check-config", x->n->bin, ini);
	if (rc != 2 || strstr(out, "[agent] on_message") == NULL)
		fprintf(stderr, "--check-config: exit %d: %s\n", rc, out);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "[agent] on_message"));
	assert_non_null(strstr(out, hook));
	free(out);
}

/* --- how much the agent seals ahead ------------------------------------------- */

/* hs_outbox_states counts the outbox records of the agent store in data
 * (read with LMDB beside the running agent): *minted with an id alone
 * (state byte 1), *sealed with their signed and sealed bytes (state 2);
 * a record is version, state, ... (agent_db.c). */
static void hs_outbox_states(const char *data, size_t *minted, size_t *sealed)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	*minted = *sealed = 0;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, data, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	if (mdb_dbi_open(txn, "outbox", 0, &dbi) == 0) {
		assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			const uint8_t *b = v.mv_data;
			*minted += v.mv_size >= 2 && b[1] == 1;
			*sealed += v.mv_size >= 2 && b[1] == 2;
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* test_sealed_bounded: the agent seals ahead of its submissions a bounded
 * number of outbox files (twice max_inflight, at least 8), not every file
 * at once. Before, a backlog (a broker down for a day, then back) was
 * sealed whole, and each sealed message stays in memory until its answer:
 * 100 files of 2 MB took the agent to 267 MB; a backlog larger than the
 * machine's memory was killed, and sealed whole again at each restart. */
static void test_sealed_bounded(void **state)
{
	hs_fx *x = *state;
	char data[1300], out[1300], name[64], text[2048];
	x->n = it_net_new("sealed-bounded", NULL);
	assert_non_null(x->n);
	it_fake_open(&x->f, x->n, it_real_welcome(x->n, IT_CPI));
	x->f.mute = true; /* SUBMITs are counted, never answered */
	tu_path(x->log, sizeof(x->log), "%s/cpi.mantova.log", x->n->dir);
	snprintf(x->extra, sizeof(x->extra), "max_inflight = 2\n");
	hs_start(x);
	it_spool(x->n, IT_CPI, "outbox", out, sizeof(out));
	tu_path(data, sizeof(data), "%s/agents/%s/data", x->n->dir, it_party_ids[IT_CPI]);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "sb-%02d.json", i);
		snprintf(text, sizeof(text),
			 "{\"id\": \"sealed-bound-%02d\", \"operator\": {\"staffId\": \"cpi-017\", "
			 "\"role\": \"employment-counsellor\"}, \"recipient\": \"%s\", "
			 "\"caseId\": \"cpi-2026-%04d\", \"referral\": {\"service\": \"%s\", "
			 "\"priority\": \"routine\", \"reasonCode\": \"long-term-unemployment\", "
			 "\"consent\": {\"basis\": \"consent\", \"givenAt\": "
			 "\"2026-11-20T09:30:00Z\", \"reference\": \"CONS-2026-0412\"}, "
			 "\"ageBand\": \"adult\"}, \"private\": {\"person\": {\"name\": \"Paolo "
			 "Neri\"}, "
			 "\"reason\": \"A backlog.\"}}",
			 i, it_party_ids[IT_SOCIAL], i, it_service[IT_SOCIAL]);
		it_outbox_put(x->n, IT_CPI, name, text);
	}
	/* all forty taken in (ids recorded), and two submitted (max_inflight) */
	size_t minted = 0, sealed = 0;
	int64_t end = it_mono_ms() + it_scaled_ms(HS_WAIT);
	while (it_mono_ms() < end) {
		int never = 0;
		it_fake_serve(&x->f, &never, 1, 100);
		hs_outbox_states(data, &minted, &sealed);
		if (minted + sealed == 40 && x->f.submits >= 2)
			break;
	}
	if (minted + sealed != 40 || x->f.submits < 2)
		it_show(x->n, "cpi.mantova.log");
	assert_int_equal(minted + sealed, 40);
	assert_true(x->f.submits >= 2);
	/* and a while longer (resubmissions after 2 s), nothing more sealed */
	int never = 0;
	it_fake_serve(&x->f, &never, 1, 3000);
	hs_outbox_states(data, &minted, &sealed);
	if (sealed > 8)
		fprintf(stderr,
			"%zu of 40 outbox files sealed at once with max_inflight = 2 "
			"(each kept in memory until its answer)\n",
			sealed);
	assert_true(sealed >= 2);
	assert_true(sealed <= 8);
}

/* --- the spool's lock ----------------------------------------------------------- */

/* hs_wait_log waits until the log at path holds needle. */
static bool hs_wait_log(const char *path, const char *needle, int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (tu_occurrences(path, needle) == 0) {
		if (it_mono_ms() >= end)
			return false;
		it_nap(50); /* polling a log file: no event to wait on */
	}
	return true;
}

/* hs_second_refused runs a second rete-agent on ini (output in
 * DIR/second.log) and expects it to exit 2 on its own. */
static void hs_second_refused(hs_fx *x, const char *ini)
{
	char exe[1300];
	tu_path(exe, sizeof(exe), "%s/rete-agent", x->n->bin);
	char *args[] = {exe, "-c", (char *)ini, NULL};
	x->second = it_spawn(x->n->dir, "second", args, NULL);
	assert_true(x->second > 0);
	int64_t end = it_mono_ms() + it_scaled_ms(20000);
	int st = 0;
	bool exited = false;
	while (!exited && it_mono_ms() < end) {
		exited = it_reap(x->second, &st);
		if (!exited)
			it_nap(20); /* polling a child's exit: no event to wait on */
	}
	if (exited)
		x->second = 0;
	else
		it_show(x->n, "second.log");
	assert_true(exited); /* the second agent must not run beside the first one */
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 2);
}

static void test_spool_lock(void **state)
{
	hs_fx *x = *state;
	it_net *n = x->n = it_net_new("spool-lock", NULL);
	assert_non_null(n);
	char log[1300], spool[1300], dir[1300], ini[1400], text[4096], pid[64];
	assert_true(it_agent_start(n, IT_SOCIAL));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	/* started: it holds its locks (no broker needed for that) */
	assert_true(hs_wait_log(log, "started:", HS_WAIT));

	/* Another agent.ini: the same spool, its own data folder. */
	it_spool(n, IT_SOCIAL, "", spool, sizeof(spool));
	spool[strlen(spool) - 1] = '\0'; /* no trailing '/' */
	tu_path(dir, sizeof(dir), "%s/other", n->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(text, sizeof(text),
		 "[agent]\nid = %s\nkey = %s/keys/%s.key\nbroker = %s\n"
		 "broker_key = %s/keys/" IT_BROKER_ID ".pub\nspool = %s\ndata = data\n",
		 it_party_ids[IT_SOCIAL], n->dir, it_party_ids[IT_SOCIAL], n->listen, n->dir,
		 spool);
	tu_path(ini, sizeof(ini), "%s/agent.ini", dir);
	assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
	hs_second_refused(x, ini);
	tu_path(log, sizeof(log), "%s/second.log", n->dir);
	snprintf(pid, sizeof(pid), "pid %ld", (long)n->agent_pid[IT_SOCIAL]);
	if (tu_occurrences(log, pid) < 1 || tu_occurrences(log, spool) < 1)
		it_show(n, "second.log");
	assert_true(tu_occurrences(log, pid) >= 1);   /* names the first one's pid */
	assert_true(tu_occurrences(log, spool) >= 1); /* and the folder */

	/* rete status takes no lock: it works beside the agent. */
	char *out = NULL;
	tu_path(ini, sizeof(ini), "%s/agents/%s/agent.ini", n->dir, it_party_ids[IT_SOCIAL]);
	int rc = tu_run(&out, "'%s/rete' status -c '%s' --timeout 0", n->bin, ini);
	if (rc != 0)
		fprintf(stderr, "rete status: %s\n", out ? out : "");
	free(out);
	assert_int_equal(rc, 0);
}

/* The lock files deleted under a running agent (a tmp-cleaner, an
 * operator "cleaning a stale lock"): a second agent on the same agent.ini
 * is refused all the same, naming the first one's pid, because the locks
 * are on the folders themselves (review s16 rev-edges 5). */
static void test_lock_files_removed(void **state)
{
	hs_fx *x = *state;
	it_net *n = x->n = it_net_new("lock-removed", NULL);
	assert_non_null(n);
	char log[1300], path[1300], ini[1400], pid[64];
	assert_true(it_agent_start(n, IT_SOCIAL));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	assert_true(hs_wait_log(log, "started:", HS_WAIT));
	tu_path(path, sizeof(path), "%s/agents/%s/data/agent.lock", n->dir,
		it_party_ids[IT_SOCIAL]);
	assert_int_equal(unlink(path), 0);
	it_spool(n, IT_SOCIAL, "spool.lock", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	tu_path(ini, sizeof(ini), "%s/agents/%s/agent.ini", n->dir, it_party_ids[IT_SOCIAL]);
	hs_second_refused(x, ini);
	tu_path(log, sizeof(log), "%s/second.log", n->dir);
	snprintf(pid, sizeof(pid), "pid %ld", (long)n->agent_pid[IT_SOCIAL]);
	if (tu_occurrences(log, pid) < 1 || tu_occurrences(log, "in use by another rete-agent") < 1)
		it_show(n, "second.log");
	assert_true(tu_occurrences(log, "in use by another rete-agent") >= 1);
	assert_true(tu_occurrences(log, pid) >= 1);
	/* the first one runs on */
	assert_int_equal(kill(n->agent_pid[IT_SOCIAL], 0), 0);
}

/* --- what the agent cleans at start ------------------------------------------- */

static void test_inbox_sweep(void **state)
{
	hs_fx *x = *state;
	it_net *n = x->n = it_net_new("inbox-sweep", NULL);
	assert_non_null(n);
	char inbox[1300], root[1300], log[1300];
	char left[1500], old[1500], own[1500], own2[1500], sent_left[1500];
	it_write_agent_ini(n, IT_CPI); /* makes DIR/agents/ID */
	it_spool(n, IT_CPI, "", root, sizeof(root));
	assert_int_equal(mkdir(root, 0755), 0);
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	assert_int_equal(mkdir(inbox, 0755), 0);
	it_spool(n, IT_CPI, "sent", root, sizeof(root));
	assert_int_equal(mkdir(root, 0755), 0);
	/* what a crash in the middle of writing an inbox file leaves */
	tu_path(left, sizeof(left), "%s/.rete-4242-1.tmp", inbox);
	assert_int_equal(tu_write_file(left, "{\"private\": \"Maria Rossi\"}", 26), 0);
	tu_path(old, sizeof(old), "%s/.000000000003-referral.json.4242.tmp", inbox);
	assert_int_equal(tu_write_file(old, "{}", 2), 0); /* an older agent's */
	tu_path(sent_left, sizeof(sent_left), "%s/.rete-4242-2.tmp", root);
	assert_int_equal(tu_write_file(sent_left, "x", 1), 0);
	/* the agency's own hidden files */
	tu_path(own, sizeof(own), "%s/.seen-by-case-system", inbox);
	assert_int_equal(tu_write_file(own, "1", 1), 0);
	tu_path(own2, sizeof(own2), "%s/.rete-notes", inbox);
	assert_int_equal(tu_write_file(own2, "2", 1), 0);

	assert_true(it_agent_start(n, IT_CPI));
	tu_path(log, sizeof(log), "%s/cpi.mantova.log", n->dir);
	assert_true(hs_wait_log(log, "started:", HS_WAIT)); /* the sweep comes before */
	assert_false(tu_exists(sent_left));
	assert_false(tu_exists(left)); /* the leftover with personal data is gone */
	assert_false(tu_exists(old));
	assert_true(tu_exists(own)); /* the agency's own files stay */
	assert_true(tu_exists(own2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_hook_same_index_live, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_hook_same_index_restart, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_hook_old_record, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_hook_killed_whole, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_hook_not_found, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_sealed_bounded, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_spool_lock, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_lock_files_removed, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_sweep, hs_setup, hs_teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	if (getenv("RETE_TEST_ONLY") != NULL)
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
