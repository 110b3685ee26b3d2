/* bench_util.h — what the small drivers in bench/ share (a header: each
 * bench/NAME.c is a program of its own): die(), which names the program
 * (BENCH_NAME, defined before this header), and a temporary folder that is
 * removed with everything in it when the program exits. */
#ifndef RETE_BENCH_UTIL_H
#define RETE_BENCH_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME (the program's name, for its messages) before bench_util.h"
#endif

/* bench_tmp: the program's temporary folder ("" until bench_tmp_make). */
static char bench_tmp[PATH_MAX];

static inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(BENCH_NAME ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static inline int bench_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void bench_tmp_remove(void)
{
	if (bench_tmp[0] != '\0')
		nftw(bench_tmp, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* bench_tmp_make makes bench_tmp, PARENT/NAME-XXXXXX, removed at exit; dies
 * when it cannot. */
static inline void bench_tmp_make(const char *parent)
{
	snprintf(bench_tmp, sizeof(bench_tmp), "%s/" BENCH_NAME "-XXXXXX", parent);
	if (mkdtemp(bench_tmp) == NULL) {
		int e = errno;
		bench_tmp[0] = '\0';
		die("cannot make a folder in %s: %s", parent, strerror(e));
	}
	atexit(bench_tmp_remove);
}

#endif
