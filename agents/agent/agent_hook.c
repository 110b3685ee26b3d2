/* agent_hook.c — runs the on_message hook for each new inbox file.
 *
 * The hook is the agency's own command (`sh -c 'CMD "$@"' sh PATH`, with
 * RETE_INDEX=<log index> in its environment). It runs beside the agent,
 * never in its way: at most HOOK_PARALLEL at a time, a failing or hung hook
 * is logged (and killed after hook_timeout) and the next ones still run.
 * Each hook runs in a process group of its own, and a kill is of that
 * group: a hook hung in a command it started (its shell's child: an import
 * tool, a curl) ends with it, instead of running on for ever after the
 * timeout, or beside the hook's run again after a stop.
 * A job is recorded in the store with the inbox file (agent_inbox.c) and
 * forgotten when its hook has ended, so a crash re-runs the hooks that had
 * not finished: at least once, as DESIGN.md promises.
 *
 * Jobs are keyed by the inbox file's name, not by its log index: after a
 * restore of the broker's store two inbox files can carry one index
 * (NNN-kind.json and NNN.<8 hex>-kind.json), and each gets its hook. The
 * record (database "hooks") is name -> log index BE64. An older agent
 * keyed it by the index (index BE64 -> path): such records are rewritten
 * to the new form when the agent starts (agent_hooks_start).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "agent_be.h"
#include "duration.h"

#define HOOK_PARALLEL 4
#define HOOK_NAME_MAX 255 /* a file name */

struct hook_job {
	uint64_t index;
	char *name; /* the inbox file's name: the job's identity */
	char *path; /* inbox/name: the hook's argument */
	pid_t pid;  /* 0 while queued */
	int64_t started;
	bool killed;
};

struct agent_hooks {
	struct hook_job *jobs; /* queued and running, in order */
	size_t n, cap;
};

void agent_hooks_queue(agent *a, uint64_t index, const char *name)
{
	struct agent_hooks *h = a->hooks;
	char path[4400];
	if (h == NULL || a->cfg.on_message == NULL)
		return;
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->jobs[i].name, name) == 0)
			return;
	snprintf(path, sizeof(path), "%s/%s", a->inbox_dir, name);
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 64;
		struct hook_job *v = realloc(h->jobs, nc * sizeof(*v));
		if (v == NULL) {
			agent_log(a, "error", "hook for %s not queued: out of memory", path);
			return;
		}
		h->jobs = v;
		h->cap = nc;
	}
	struct hook_job *j = &h->jobs[h->n];
	memset(j, 0, sizeof(*j));
	j->index = index;
	j->name = strdup(name);
	j->path = strdup(path);
	if (j->name == NULL || j->path == NULL) {
		agent_log(a, "error", "hook for %s not queued: out of memory", path);
		free(j->name);
		free(j->path);
		return;
	}
	h->n++;
}

/* The records found at start: (name, index), and which were written by an
 * older agent (key = index BE64) and must be rewritten. */
struct hook_rec {
	char name[HOOK_NAME_MAX + 1];
	uint64_t index;
	bool old;
};

struct hook_found {
	struct hook_rec *v;
	size_t n, cap;
	size_t bad; /* records that parse as neither form */
	bool nomem;
};

/* hook_name_ok: a name an inbox file can have (no '/', no NUL, not empty). */
static bool hook_name_ok(const char *name, size_t len)
{
	return len > 0 && len <= HOOK_NAME_MAX && memchr(name, '/', len) == NULL &&
	       memchr(name, 0, len) == NULL && !(len <= 2 && name[0] == '.');
}

static bool hook_collect(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	struct hook_found *f = user;
	struct hook_rec r;
	memset(&r, 0, sizeof(r));
	if (klen == 8) {
		/* index -> path (older agents): the file is the path's last name */
		const char *p = val;
		size_t from = vlen;
		while (from > 0 && p[from - 1] != '/')
			from--;
		const char *nm = p + from;
		size_t nl = vlen - from;
		if (!hook_name_ok(nm, nl)) {
			f->bad++;
			return true;
		}
		memcpy(r.name, nm, nl);
		r.index = agent_be64_get(key);
		r.old = true;
	} else {
		if (vlen != 8 || !hook_name_ok(key, klen)) {
			f->bad++;
			return true;
		}
		memcpy(r.name, key, klen);
		r.index = agent_be64_get(val);
	}
	if (f->n == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 16;
		struct hook_rec *v = realloc(f->v, nc * sizeof(*v));
		if (v == NULL) {
			f->nomem = true;
			return false;
		}
		f->v = v;
		f->cap = nc;
	}
	f->v[f->n++] = r;
	return true;
}

static int hook_rec_cmp(const void *x, const void *y)
{
	return strcmp(((const struct hook_rec *)x)->name, ((const struct hook_rec *)y)->name);
}

/* hook_migrate rewrites the records of an older agent (index -> path) as
 * name -> index, in one transaction. */
static rete_err hook_migrate(agent *a, const struct hook_found *f, size_t old, rete_msg *m)
{
	rete_err err = RETE_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		err = agent_db_begin(a->db, m);
		for (size_t i = 0; err == RETE_OK && i < f->n; i++) {
			if (!f->v[i].old)
				continue;
			uint8_t key[8];
			agent_db_index_key(key, f->v[i].index);
			err = agent_db_put(a->db, AGENT_DB_HOOKS, f->v[i].name,
					   strlen(f->v[i].name), key, sizeof(key), m);
			if (err == RETE_OK)
				err = agent_db_del(a->db, AGENT_DB_HOOKS, key, sizeof(key), m);
		}
		err = agent_db_end(a->db, err, m);
		if (err != RETE_EFULL)
			break;
	}
	if (err == RETE_OK)
		agent_log(a, "info",
			  "%zu pending hook record(s) of an older agent (kept by log index) "
			  "rewritten by inbox file name",
			  old);
	else
		rete_msg_prefix(m, "rewriting the pending hook records of an older agent");
	return err;
}

rete_err agent_hooks_start(agent *a, rete_msg *m)
{
	struct hook_found f = {0};
	size_t old = 0;
	a->hooks = calloc(1, sizeof(*a->hooks));
	if (a->hooks == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	if (a->cfg.on_message == NULL)
		return RETE_OK;
	rete_err err = agent_db_each(a->db, AGENT_DB_HOOKS, hook_collect, &f, m);
	if (err == RETE_OK && f.nomem)
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory reading the pending hooks");
	for (size_t i = 0; err == RETE_OK && i < f.n; i++)
		old += f.v[i].old;
	if (err == RETE_OK && old > 0)
		err = hook_migrate(a, &f, old, m);
	if (err == RETE_OK) {
		if (f.bad > 0)
			agent_log(a, "warning",
				  "%zu pending hook record(s) in %s that name no inbox file were "
				  "ignored",
				  f.bad, a->cfg.data);
		/* In name order, which is log index order (12 digits first). */
		if (f.n > 1)
			qsort(f.v, f.n, sizeof(*f.v), hook_rec_cmp);
		for (size_t i = 0; i < f.n; i++)
			agent_hooks_queue(a, f.v[i].index, f.v[i].name);
		if (a->hooks->n > 0)
			agent_log(a, "info",
				  "%zu hook run(s) left unfinished by the last stop: running again",
				  a->hooks->n);
	}
	free(f.v);
	return err;
}

extern char **environ;

static void hook_spawn(agent *a, struct hook_job *j, int64_t now)
{
	char idx[48], cmd[4200];
	size_t n = 0;

	/* Everything the child needs is made before fork: the agent has
	 * ZeroMQ's threads, so the child only calls async-signal-safe
	 * functions before exec. */
	snprintf(idx, sizeof(idx), "RETE_INDEX=%" PRIu64, j->index);
	snprintf(cmd, sizeof(cmd), "%s \"$@\"", a->cfg.on_message);
	while (environ[n] != NULL)
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	if (env == NULL) {
		agent_log(a, "error", "hook for %s: out of memory; will retry", j->path);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "RETE_INDEX=", 11) != 0)
			env[k++] = environ[i];
	env[k++] = idx;
	env[k] = NULL;
	char *const argv[] = {"sh", "-c", cmd, "sh", j->path, NULL};
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		/* Default dispositions and mask for the hook. */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setpgid(0, 0); /* its own group: killed whole (hook_kill) */
		if (devnull >= 0)
			dup2(devnull, 0);
		execve("/bin/sh", argv, env);
		_exit(127);
	}
	int e = errno;
	if (pid > 0)
		setpgid(pid, pid); /* also here: a kill may come before the child ran */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (devnull >= 0)
		close(devnull);
	free(env);
	if (pid < 0) {
		agent_log(a, "error", "hook for %s: fork: %s; will retry", j->path, strerror(e));
		return;
	}
	j->pid = pid;
	j->started = now;
}

/* hook_kill kills the hook whose shell is pid with all it started (its
 * process group, hook_spawn); the shell itself when the group is not there
 * (setpgid failed). */
static void hook_kill(pid_t pid)
{
	if (kill(-pid, SIGKILL) != 0)
		kill(pid, SIGKILL);
}

static void hook_done(agent *a, size_t i, int status)
{
	struct agent_hooks *h = a->hooks;
	struct hook_job *j = &h->jobs[i];
	rete_msg m = {{0}};

	if (j->killed)
		agent_log(a, "error",
			  "hook for %s (index %" PRIu64 ") ran past %" PRId64
			  " ms and was killed; later deliveries go on",
			  j->path, j->index, a->cfg.hook_timeout_ms);
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		agent_log(a, "error",
			  "hook for %s (index %" PRIu64 ") exited with %d%s; later "
			  "deliveries go on",
			  j->path, j->index, WEXITSTATUS(status),
			  /* the shell's own codes: the hook never ran */
			  WEXITSTATUS(status) == 127
			      ? " (the shell found no such command: check on_message in agent.ini)"
			  : WEXITSTATUS(status) == 126
			      ? " (the shell could not run the command: is it executable? check "
				"on_message in agent.ini)"
			      : "");
	else if (WIFSIGNALED(status))
		agent_log(a, "error", "hook for %s (index %" PRIu64 ") died of signal %d", j->path,
			  j->index, WTERMSIG(status));
	else
		agent_debug(a, "hook for %s done", j->path);
	if (agent_db_del(a->db, AGENT_DB_HOOKS, j->name, strlen(j->name), &m) != RETE_OK)
		agent_log(a, "error", "hook for %s: %s", j->path, m.text);
	free(j->name);
	free(j->path);
	memmove(&h->jobs[i], &h->jobs[i + 1], (h->n - i - 1) * sizeof(*j));
	h->n--;
}

int64_t agent_hooks_poll(agent *a, int64_t now)
{
	struct agent_hooks *h = a->hooks;
	size_t running = 0;
	int64_t wait = -1;

	if (h == NULL)
		return -1;
	for (size_t i = 0; i < h->n;) {
		struct hook_job *j = &h->jobs[i];
		if (j->pid == 0) {
			i++;
			continue;
		}
		int status;
		pid_t r = waitpid(j->pid, &status, WNOHANG);
		if (r == j->pid || (r < 0 && errno == ECHILD)) {
			hook_done(a, i, r == j->pid ? status : 0);
			continue;
		}
		if (!j->killed && now - j->started > a->cfg.hook_timeout_ms) {
			hook_kill(j->pid);
			j->killed = true;
		}
		running++;
		i++;
	}
	for (size_t i = 0; i < h->n && running < HOOK_PARALLEL; i++) {
		if (h->jobs[i].pid != 0)
			continue;
		hook_spawn(a, &h->jobs[i], now);
		if (h->jobs[i].pid != 0)
			running++;
	}
	if (running > 0)
		wait = 20; /* reap promptly; SIGCHLD also wakes the loop */
	return h->n > 0 ? 20 : wait;
}

void agent_hooks_stop(agent *a)
{
	struct agent_hooks *h = a->hooks;
	if (h == NULL)
		return;
	int64_t deadline = rete_now_ms() + 5000;
	for (size_t i = 0; i < h->n; i++) {
		struct hook_job *j = &h->jobs[i];
		if (j->pid == 0)
			continue;
		int status;
		bool ended = true;
		while (waitpid(j->pid, &status, WNOHANG) == 0) {
			if (rete_now_ms() > deadline) {
				hook_kill(j->pid);
				waitpid(j->pid, &status, 0);
				ended = false; /* stays recorded: runs again next start */
				break;
			}
			usleep(10000);
		}
		if (!ended)
			continue;
		/* Finished during the stop: forget the job like hook_done. */
		rete_msg m;
		agent_db_del(a->db, AGENT_DB_HOOKS, j->name, strlen(j->name), &m);
	}
	for (size_t i = 0; i < h->n; i++) {
		free(h->jobs[i].name);
		free(h->jobs[i].path);
	}
	free(h->jobs);
	free(h);
	a->hooks = NULL;
}
