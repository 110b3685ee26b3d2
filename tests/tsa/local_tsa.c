/* local_tsa.c — see local_tsa.h. */
#define _GNU_SOURCE
#include "local_tsa.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int local_tsa_open(local_tsa **out, const char *bin_dir)
{
	local_tsa *t = calloc(1, sizeof(*t));
	char *log = NULL;

	*out = NULL;
	if (t == NULL || (t->lt_dir = tu_tmpdir("tsa")) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->lt_bin, sizeof(t->lt_bin), "%s/rete-test-tsa", bin_dir);
	/* the certificates: rete-test-tsa --make-ca, as the demo makes its own */
	if (tu_run(&log, "'%s' --make-ca '%s'", t->lt_bin, t->lt_dir) != 0) {
		fprintf(stderr, "local_tsa: cannot make the test certificates:\n%s\n",
			log ? log : "");
		free(log);
		local_tsa_close(&t);
		return -1;
	}
	free(log);
	snprintf(t->lt_ca, sizeof(t->lt_ca), "%s/ca.pem", t->lt_dir);
	snprintf(t->lt_other_ca, sizeof(t->lt_other_ca), "%s/other-ca.pem", t->lt_dir);
	if (local_tsa_start(t) != 0) {
		local_tsa_close(&t);
		return -1;
	}
	*out = t;
	return 0;
}

int local_tsa_start(local_tsa *t)
{
	char cert[4200], key[4200], state[4200], chain[4200], port[16], line[64];
	int fds[2];
	size_t n = 0;
	int64_t deadline = now_ms() + 10000;
	pid_t pid;

	if (t->lt_pid != 0)
		return 0;
	snprintf(cert, sizeof(cert), "%s/tsa.pem", t->lt_dir);
	snprintf(key, sizeof(key), "%s/tsa.key", t->lt_dir);
	snprintf(state, sizeof(state), "%s/state", t->lt_dir);
	snprintf(chain, sizeof(chain), "%s/ca.pem", t->lt_dir);
	snprintf(port, sizeof(port), "%d", t->lt_port);
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execl(t->lt_bin, t->lt_bin, "--cert", cert, "--key", key, "--dir", state, "--port",
		      port, "--chain", chain, (char *)NULL);
		fprintf(stderr, "local_tsa: cannot run %s: %s\n", t->lt_bin, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	t->lt_pid = pid;
	/* Wait for "port N\n": the server prints it once it listens. */
	while (n + 1 < sizeof(line) && (n == 0 || line[n - 1] != '\n')) {
		struct pollfd p = {fds[0], POLLIN, 0};
		int64_t left = deadline - now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		r = read(fds[0], line + n, sizeof(line) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fds[0]);
	line[n] = '\0';
	if (sscanf(line, "port %d", &t->lt_port) != 1 || t->lt_port <= 0) {
		fprintf(stderr, "local_tsa: rete-test-tsa did not start (it said '%s')\n", line);
		local_tsa_stop(t);
		return -1;
	}
	snprintf(t->lt_url, sizeof(t->lt_url), "http://127.0.0.1:%d/tsa", t->lt_port);
	return 0;
}

void local_tsa_stop(local_tsa *t)
{
	int st;

	if (t == NULL || t->lt_pid == 0)
		return;
	/* SIGTERM, and SIGKILL if it has not gone within 5 s (a signal that
	 * lands just before accept() is only seen at the next connection). */
	kill(t->lt_pid, SIGTERM);
	for (int64_t deadline = now_ms() + 5000;;) {
		pid_t r = waitpid(t->lt_pid, &st, WNOHANG);
		if (r == t->lt_pid || (r < 0 && errno != EINTR))
			break;
		if (now_ms() > deadline) {
			kill(t->lt_pid, SIGKILL);
			waitpid(t->lt_pid, &st, 0);
			break;
		}
		struct timespec nap = {0, 10 * 1000 * 1000};
		nanosleep(&nap, NULL);
	}
	t->lt_pid = 0;
}

int local_tsa_mode(local_tsa *t, const char *mode)
{
	char tmp[4200], path[4200];

	snprintf(tmp, sizeof(tmp), "%s/state/mode.tmp", t->lt_dir);
	snprintf(path, sizeof(path), "%s/state/mode", t->lt_dir);
	if (tu_write_file(tmp, mode, strlen(mode)) != 0)
		return -1;
	return rename(tmp, path) == 0 ? 0 : -1;
}

void local_tsa_close(local_tsa **t)
{
	if (t == NULL || *t == NULL)
		return;
	local_tsa_stop(*t);
	if ((*t)->lt_dir != NULL)
		tu_rmrf((*t)->lt_dir);
	free((*t)->lt_dir);
	free(*t);
	*t = NULL;
}
