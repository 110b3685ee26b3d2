/* folderlock.c — one writer per folder (folderlock.h). */
#define _GNU_SOURCE
#include "folderlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* A reader's probe holds its shared lock for an instant: a writer finding
 * the lock taken tries again this many times, 10 ms apart. */
#define LOCK_TRIES 50

static void nap_10ms(void)
{
	struct timespec ts = {0, 10 * 1000000L};
	nanosleep(&ts, NULL);
}

/* lock_ex: an exclusive flock on fd, not waiting, tried again for half a
 * second while someone holds it. 0, or the errno of the last try. */
static int lock_ex(int fd)
{
	for (int tries = 0;; tries++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		int e = errno;
		if (e != EWOULDBLOCK || tries >= LOCK_TRIES)
			return e;
		nap_10ms();
	}
}

/* pid_text keeps the digits of what a pid file holds (up to its first
 * line), so that a file someone else wrote prints as '?' where it is not
 * a number. */
static void pid_text(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	for (char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			*p = '?';
}

/* pid_from_file: the pid written in path, waiting up to half a second when
 * the file is there but still empty (its holder writes it right after
 * taking its lock). false when there is none. */
static bool pid_from_file(const char *path, char *out, size_t len)
{
	int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (f < 0)
		return false;
	ssize_t r = 0;
	for (int tries = 0; tries < LOCK_TRIES; tries++) {
		r = pread(f, out, len - 1, 0);
		if (r != 0)
			break;
		nap_10ms();
	}
	close(f);
	out[r > 0 ? r : 0] = '\0';
	pid_text(out);
	return out[0] != '\0';
}

/* pid_from_proc: the pid of the process holding a flock on the folder fd
 * is open on, from /proc/locks (Linux), for when its pid file was deleted.
 * false when it is not found there. */
static bool pid_from_proc(int fd, char *out, size_t len)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		return false;
	FILE *f = fopen("/proc/locks", "re");
	if (f == NULL)
		return false;
	char line[256], kind[16];
	long pid;
	unsigned maj, min;
	unsigned long ino;
	bool found = false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		/* "1: FLOCK  ADVISORY  WRITE 4242 08:02:1234 0 EOF"; a waiter's
		 * line has "->" where the kind is */
		if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", kind, &pid, &maj, &min, &ino) ==
			5 &&
		    strcmp(kind, "FLOCK") == 0 && ino == (unsigned long)st.st_ino &&
		    maj == major(st.st_dev) && min == minor(st.st_dev) && pid > 0) {
			snprintf(out, len, "%ld", pid);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* refused: RETE_EEXIST, holder the pid found (the folder's lock holder per
 * /proc/locks first when dir_fd is the folder refused, then the file). */
static rete_err refused(const char *dir, const char *path, int dir_fd, char *holder,
			size_t holder_len, rete_msg *m)
{
	char pid[32];
	if (!pid_from_proc(dir_fd, pid, sizeof(pid)) && !pid_from_file(path, pid, sizeof(pid)))
		snprintf(pid, sizeof(pid), "unknown");
	if (holder != NULL && holder_len > 0)
		snprintf(holder, holder_len, "%s", pid);
	return rete_msg_set(m, RETE_EEXIST, "%s is in use by another process (pid %s, %s)", dir,
			    pid, path);
}

/* same_folder: are descriptors a and b open on one file? */
static bool same_folder(int a, int b)
{
	struct stat sa, sb;
	return a >= 0 && b >= 0 && fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

rete_err rete_folder_lock_take(const char *dir, const char *name, const rete_folder_lock *beside,
			       rete_folder_lock *out, char *holder, size_t holder_len, rete_msg *m)
{
	char path[PATH_MAX], pid[32];
	rete_err err;

	out->fl_dir = out->fl_file = -1;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return rete_msg_set(m, RETE_EIO, "%s: the folder's name is too long", dir);
	int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		return rete_msg_set(m, RETE_EIO, "%s: cannot open the folder to lock it: %s", dir,
				    strerror(errno));
	if (beside != NULL && same_folder(d, beside->fl_dir)) {
		close(d); /* ours already */
		d = -1;
	} else {
		int e = lock_ex(d);
		if (e == EWOULDBLOCK) {
			err = refused(dir, path, d, holder, holder_len, m);
			close(d);
			return err;
		}
		if (e != 0) {
			/* no flock on a folder here (a network file system):
			 * the file's lock is the only one, as in rete 0.7.0 */
			close(d);
			d = -1;
		}
	}
	int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (f < 0) {
		int e = errno;
		if (d >= 0)
			close(d);
		return rete_msg_set(m, RETE_EIO, "%s: cannot open the lock file: %s", path,
				    strerror(e));
	}
	int e = lock_ex(f);
	if (e != 0) {
		/* held: a rete 0.7.0 process, which locks the file alone */
		err = e == EWOULDBLOCK
			  ? refused(dir, path, -1, holder, holder_len, m)
			  : rete_msg_set(m, RETE_EIO, "%s: cannot lock: %s", path, strerror(e));
		close(f);
		if (d >= 0)
			close(d);
		return err;
	}
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) {
		e = errno;
		close(f);
		if (d >= 0)
			close(d);
		return rete_msg_set(m, RETE_EIO, "%s: cannot write our pid: %s", path, strerror(e));
	}
	out->fl_dir = d;
	out->fl_file = f;
	return RETE_OK;
}

/* probe: 1 when someone holds an exclusive flock on fd's file, 0 when not
 * (or when this file system cannot say), -1 on another error. The shared
 * lock taken is let go at once. */
static int probe(int fd, bool folder)
{
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	if (errno == EWOULDBLOCK)
		return 1;
	return folder ? 0 : -1;
}

int rete_folder_lock_held(const char *dir, const char *name)
{
	char path[PATH_MAX];
	if (dir == NULL || snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -1;
	int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		return errno == ENOENT ? 0 : -1;
	int held = probe(d, true);
	close(d);
	if (held == 1)
		return 1;
	int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (f < 0)
		return errno == ENOENT ? 0 : -1;
	held = probe(f, false);
	close(f);
	return held;
}

void rete_folder_lock_release(rete_folder_lock *l)
{
	if (l == NULL)
		return;
	if (l->fl_file >= 0)
		close(l->fl_file);
	if (l->fl_dir >= 0)
		close(l->fl_dir);
	l->fl_dir = l->fl_file = -1;
}
