/* A full disk for LMDB alone, for tests (LD_PRELOAD, given to the broker
 * only): while the file named by $RETE_ENOSPC_WHILE exists, every write and
 * sync of a file whose name ends in "data.mdb" fails with ENOSPC. The
 * preallocated journal and the access record still take their writes, as
 * on a disk with a few KiB left: LMDB's commit of a batch the journal has
 * already made durable (and receipted) fails, rete_store_behind() is true.
 * Nothing of the broker is replaced: only the disk's answer.
 *
 * A slow disk, too: while the file named by $RETE_SLOW_SYNC_WHILE exists,
 * every fsync and fdatasync (of any file) first waits $RETE_SLOW_SYNC_MS
 * milliseconds (default 3000), or until the file is removed, as a disk
 * whose flushes stall: what the broker does before a commit is durable
 * (or while it hangs) can be seen, and killed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int full(int fd)
{
	const char *marker = getenv("RETE_ENOSPC_WHILE");
	char link[64], path[4096];
	if (marker == NULL || access(marker, F_OK) != 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n < 8)
		return 0;
	path[n] = '\0';
	if (strcmp(path + n - 8, "data.mdb") != 0)
		return 0;
	errno = ENOSPC;
	return 1;
}

#define NEXT(var, name)                                                                            \
	do {                                                                                       \
		if (var == NULL)                                                                   \
			*(void **)&var = dlsym(RTLD_NEXT, name);                                   \
	} while (0)

ssize_t write(int fd, const void *buf, size_t len)
{
	static ssize_t (*next)(int, const void *, size_t);
	NEXT(next, "write");
	return full(fd) ? -1 : next(fd, buf, len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t at)
{
	static ssize_t (*next)(int, const void *, size_t, off_t);
	NEXT(next, "pwrite");
	return full(fd) ? -1 : next(fd, buf, len, at);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t at)
{
	static ssize_t (*next)(int, const void *, size_t, off_t);
	NEXT(next, "pwrite64");
	return full(fd) ? -1 : next(fd, buf, len, at);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	static ssize_t (*next)(int, const struct iovec *, int);
	NEXT(next, "writev");
	return full(fd) ? -1 : next(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t at)
{
	static ssize_t (*next)(int, const struct iovec *, int, off_t);
	NEXT(next, "pwritev");
	return full(fd) ? -1 : next(fd, iov, cnt, at);
}

static void slow(void)
{
	const char *marker = getenv("RETE_SLOW_SYNC_WHILE");
	if (marker == NULL || access(marker, F_OK) != 0)
		return;
	const char *ms = getenv("RETE_SLOW_SYNC_MS");
	long wait = ms ? atol(ms) : 3000;
	/* in steps of 20 ms, ending early once the marker is gone: a disk
	 * that recovers ends the flush it held, so a test can hang the disk
	 * for as long as it needs and no longer (test_stall's hang_said) */
	for (long left = wait; left > 0 && access(marker, F_OK) == 0; left -= 20) {
		long step = left < 20 ? left : 20;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000L};
		while (nanosleep(&ts, &ts) != 0)
			;
	}
}

int fsync(int fd)
{
	static int (*next)(int);
	NEXT(next, "fsync");
	slow();
	return full(fd) ? -1 : next(fd);
}

int fdatasync(int fd)
{
	static int (*next)(int);
	NEXT(next, "fdatasync");
	slow();
	return full(fd) ? -1 : next(fd);
}
