/* access_log_bench.c — what it costs a writer of an access record to drop
 * the lines past their retention, for a record of many lines.
 *
 * The record is built with rete_access_log_add (retention "forever", so
 * nothing is dropped while it grows, not durable): --lines lines of about
 * 150 bytes, the first --expired of them 25 months old, the others within
 * the last 24 months, in time order. Then a writer opens it with the
 * default retention (24 months), as the agent, the broker or a command
 * does, and appends one line: that append finds old lines and drops them.
 * Printed: the wall and thread CPU time of that one append, the bytes of
 * the record before and after, and the files it is in. Run it twice with
 * the same arguments to see the second append (nothing left to drop) too.
 *
 *   build/bin/access_log_bench --lines 1000000 --expired 10000 [--dir D]
 *
 * A benchmark, never a test: it asserts nothing about the numbers.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access_log.h"
#include "duration.h"

static double ms_of(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* record_size: the bytes of the files of dir whose names begin with
 * access.log (the record and its closed parts), and how many. */
static long long record_size(const char *dir, int *files)
{
	long long total = 0;
	*files = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "access.log", 10) != 0)
			continue;
		char path[4200];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0) {
			total += st.st_size;
			(*files)++;
		}
	}
	if (d != NULL)
		closedir(d);
	return total;
}

int main(int argc, char **argv)
{
	long lines = 1000000, expired = 10000;
	const char *dir = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--lines") == 0)
			lines = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--expired") == 0)
			expired = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
	}
	char tmpl[] = "/tmp/access_log_bench-XXXXXX";
	if (dir == NULL && (dir = mkdtemp(tmpl)) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/access.log", dir);
	rete_msg m;
	int files;
	int64_t now = rete_now_ms(), day = 86400000;
	if (record_size(dir, &files) == 0) {
		rete_access_log *l = NULL;
		if (rete_access_log_open(path, (rete_keep){0}, false, &l, &m) != RETE_OK) {
			fprintf(stderr, "%s\n", m.text);
			return 2;
		}
		int64_t old = now - 25 * 31 * day, recent = now - 23 * 30 * day;
		int64_t step = (now - recent) / (lines > expired ? lines - expired : 1);
		char what[64];
		for (long i = 0; i < lines; i++) {
			snprintf(what, sizeof(what), "entries %ld-%ld", i, i + 9);
			rete_access_rec r = {.at_ms = i < expired ? old + i
								  : recent + (i - expired) * step,
					     .program = "rete-broker",
					     .who = "social.mantova",
					     .what = what};
			if (rete_access_log_add(l, &r, &m) != RETE_OK) {
				fprintf(stderr, "%s\n", m.text);
				return 2;
			}
		}
		rete_access_log_close(&l);
	}
	long long before = record_size(dir, &files);
	printf("record: %lld bytes in %d file(s) in %s\n", before, files, dir);
	rete_access_log *l = NULL;
	if (rete_access_log_open(path, RETE_ACCESS_KEEP_DEFAULT, false, &l, &m) != RETE_OK) {
		fprintf(stderr, "%s\n", m.text);
		return 2;
	}
	rete_access_rec r = {.program = "rete-broker", .who = "cpi.mantova", .what = "bench"};
	double w0 = ms_of(CLOCK_MONOTONIC), c0 = ms_of(CLOCK_THREAD_CPUTIME_ID);
	rete_err err = rete_access_log_add(l, &r, &m);
	double c1 = ms_of(CLOCK_THREAD_CPUTIME_ID), w1 = ms_of(CLOCK_MONOTONIC);
	rete_access_log_close(&l);
	if (err != RETE_OK) {
		fprintf(stderr, "%s\n", m.text);
		return 2;
	}
	long long after = record_size(dir, &files);
	printf("one append with the default retention: %.1f ms wall, %.1f ms thread CPU; "
	       "record after: %lld bytes in %d file(s)\n",
	       w1 - w0, c1 - c0, after, files);
	return 0;
}
