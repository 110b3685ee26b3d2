/* agent_hook.c — runs the on_message hook for each new inbox file.
 *
 * The hook is the agency's own command (`sh -c 'CMD "$@"' sh PATH`, with
 * RETE_INDEX=<log index> in its environment). It runs beside the agent,
 * never in its way: at most HOOK_PARALLEL at a time, a failing or hung hook
 * is logged (and killed after hook_timeout) and the next ones still run.
 * A job is recorded in the store with the inbox file (agent_inbox.c) and
 * forgotten when its hook has ended, so a crash re-runs the hooks that had
 * not finished: at least once, as DESIGN.md promises.
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
#include "duration.h"

#define HOOK_PARALLEL 4

struct hook_job {
	uint64_t index;
	char *path;
	pid_t pid; /* 0 while queued */
	int64_t started;
	bool killed;
};

struct agent_hooks {
	struct hook_job *jobs; /* queued and running, in order */
	size_t n, cap;
};

void agent_hooks_queue(agent *a, uint64_t index, const char *path)
{
	struct agent_hooks *h = a->hooks;
	if (h == NULL || a->cfg.on_message == NULL)
		return;
	for (size_t i = 0; i < h->n; i++)
		if (h->jobs[i].index == index)
			return;
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
	j->path = strdup(path);
	if (j->path == NULL)
		return;
	h->n++;
}

static bool hook_requeue(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	agent *a = user;
	char path[4300];
	uint64_t index = 0;
	if (klen != 8 || vlen >= sizeof(path))
		return true;
	for (int i = 0; i < 8; i++)
		index = (index << 8) | ((const uint8_t *)key)[i];
	memcpy(path, val, vlen);
	path[vlen] = '\0';
	agent_hooks_queue(a, index, path);
	return true;
}

rete_err agent_hooks_start(agent *a, rete_msg *m)
{
	a->hooks = calloc(1, sizeof(*a->hooks));
	if (a->hooks == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	if (a->cfg.on_message == NULL)
		return RETE_OK;
	rete_err err = agent_db_each(a->db, AGENT_DB_HOOKS, hook_requeue, a, m);
	if (err == RETE_OK && a->hooks->n > 0)
		agent_log(a, "info",
			  "%zu hook run(s) left unfinished by the last stop: running again",
			  a->hooks->n);
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
		if (devnull >= 0)
			dup2(devnull, 0);
		execve("/bin/sh", argv, env);
		_exit(127);
	}
	int e = errno;
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

static void hook_done(agent *a, size_t i, int status)
{
	struct agent_hooks *h = a->hooks;
	struct hook_job *j = &h->jobs[i];
	rete_msg m = {{0}};
	uint8_t key[8];

	if (j->killed)
		agent_log(a, "error",
			  "hook for %s (index %" PRIu64 ") ran past %" PRId64
			  " ms and was killed; later deliveries go on",
			  j->path, j->index, a->cfg.hook_timeout_ms);
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		agent_log(a, "error",
			  "hook for %s (index %" PRIu64 ") exited with %d; later "
			  "deliveries go on",
			  j->path, j->index, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		agent_log(a, "error", "hook for %s (index %" PRIu64 ") died of signal %d", j->path,
			  j->index, WTERMSIG(status));
	else
		agent_debug(a, "hook for %s done", j->path);
	agent_db_index_key(key, j->index);
	if (agent_db_del(a->db, AGENT_DB_HOOKS, key, sizeof(key), &m) != RETE_OK)
		agent_log(a, "error", "hook for %s: %s", j->path, m.text);
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
			kill(j->pid, SIGKILL);
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
				kill(j->pid, SIGKILL);
				waitpid(j->pid, &status, 0);
				ended = false; /* stays recorded: runs again next start */
				break;
			}
			usleep(10000);
		}
		if (!ended)
			continue;
		/* Finished during the stop: forget the job like hook_done. */
		uint8_t key[8];
		rete_msg m;
		agent_db_index_key(key, j->index);
		agent_db_del(a->db, AGENT_DB_HOOKS, key, sizeof(key), &m);
	}
	for (size_t i = 0; i < h->n; i++)
		free(h->jobs[i].path);
	free(h->jobs);
	free(h);
	a->hooks = NULL;
}
