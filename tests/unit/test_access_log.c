/* test_access_log.c — the access record: lines appended, retention by
 * calendar months, old lines dropped by an atomic rewrite, the file's mode. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "access_log.h"
#include "duration.h"
#include "json.h"
#include "testutil.h"

static void test_keep_parse(void **state)
{
	(void)state;
	rete_keep k;
	rete_msg m;
	assert_int_equal(rete_keep_parse("24mo", &k, &m), RETE_OK);
	assert_int_equal(k.months, 24);
	assert_int_equal(rete_keep_parse("2y", &k, &m), RETE_OK);
	assert_int_equal(k.months, 24);
	assert_int_equal(rete_keep_parse("30d", &k, &m), RETE_OK);
	assert_int_equal(k.months, 0);
	assert_int_equal(k.ms, 30LL * 86400000);
	assert_int_equal(rete_keep_parse("forever", &k, &m), RETE_OK);
	assert_true(rete_keep_cutoff(k, 1000) == INT64_MIN);
	const char *bad[] = {"", "0mo", "24", "3wd", "-1d", "24 mo", "1.5y", "99999mo"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(rete_keep_parse(bad[i], &k, &m), RETE_EINVAL);
		assert_non_null(strstr(m.text, "24mo"));
	}
}

static void test_cutoff(void **state)
{
	(void)state;
	int64_t now, want;
	assert_int_equal(rete_time_parse("2026-12-06T09:00:00Z", &now), RETE_OK);
	assert_int_equal(rete_time_parse("2024-12-06T09:00:00Z", &want), RETE_OK);
	assert_true(rete_keep_cutoff(RETE_ACCESS_KEEP_DEFAULT, now) == want);
	/* 31 March minus one month: the last day of February */
	assert_int_equal(rete_time_parse("2027-03-31T10:00:00Z", &now), RETE_OK);
	assert_int_equal(rete_time_parse("2027-02-28T10:00:00Z", &want), RETE_OK);
	assert_true(rete_keep_cutoff((rete_keep){.months = 1}, now) == want);
	assert_true(rete_keep_cutoff((rete_keep){.ms = 5000}, 10000) == 5000);
}

static void test_append_and_prune(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("access_log");
	char path[1024];
	rete_msg m;
	int64_t now, old;
	assert_int_equal(rete_time_parse("2026-12-06T09:00:00Z", &now), RETE_OK);
	assert_int_equal(rete_time_parse("2024-11-01T09:00:00Z", &old), RETE_OK);
	tu_path(path, sizeof(path), "%s/sub/access.log", dir);

	rete_access_rec r = {.at_ms = old,
			     .program = "rete audit log",
			     .who = "alice",
			     .party = NULL,
			     .what = "entries 0-9"};
	assert_int_equal(rete_access_record(path, (rete_keep){0}, &r, &m), RETE_OK);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	r.at_ms = now;
	r.what = "case mn-2026-0173";
	r.party = "audit.region";
	/* an append with the default retention drops the 25-month-old line */
	assert_int_equal(rete_access_record(path, RETE_ACCESS_KEEP_DEFAULT, &r, &m), RETE_OK);
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "entries 0-9"));
	assert_non_null(strstr(text, "\"program\":\"rete audit log\""));
	assert_non_null(strstr(text, "\"party\":\"audit.region\""));
	assert_non_null(strstr(text, "\"what\":\"case mn-2026-0173\""));
	assert_non_null(strstr(text, "\"at\":\"2026-12-06T09:00:00"));
	free(text);

	/* a line that does not parse is kept, an old one dropped, counted */
	FILE *f = fopen(path, "a");
	fputs("not json\n{\"at\":\"2020-01-01T00:00:00Z\",\"program\":\"x\",\"what\":\"y\"}\n", f);
	fclose(f);
	size_t dropped = 99;
	assert_int_equal(rete_access_log_prune(path, RETE_ACCESS_KEEP_DEFAULT, now, &dropped, &m),
			 RETE_OK);
	assert_int_equal(dropped, 1);
	text = tu_read_file(path, NULL);
	assert_non_null(strstr(text, "not json\n"));
	assert_null(strstr(text, "2020-01-01"));
	assert_non_null(strstr(text, "case mn-2026-0173"));
	free(text);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* the lines in the form this file writes are judged by their time as
	 * text: the same verdicts as parsing them (an old one dropped, a new
	 * one after it kept, one cut short or with another time form parsed:
	 * kept when it does not parse) */
	f = fopen(path, "a");
	fputs("{\"at\":\"2020-01-01T00:00:00.000Z\",\"program\":\"x\",\"what\":\"old-fast\"}\n"
	      "{\"at\":\"2026-12-06T08:59:59.999Z\",\"program\":\"x\",\"what\":\"new-fast\"}\n"
	      "{\"at\":\"2020-01-01T00:00:00.000Z\",\"progr\n"
	      "{\"at\":\"2020-01-01T00:00:00.000+01:00\",\"program\":\"x\",\"what\":\"old-tz\"}\n"
	      "{\"at\":\"2020-01-01T00:00:00.000Z\", \"what\": \"old-spaced\" }\n",
	      f);
	fclose(f);
	assert_int_equal(rete_access_log_prune(path, RETE_ACCESS_KEEP_DEFAULT, now, &dropped, &m),
			 RETE_OK);
	assert_int_equal(dropped, 3);
	text = tu_read_file(path, NULL);
	assert_null(strstr(text, "old-fast"));
	assert_null(strstr(text, "old-tz"));
	assert_null(strstr(text, "old-spaced"));
	assert_non_null(strstr(text, "new-fast"));
	assert_non_null(strstr(text, "\"progr\n"));
	assert_non_null(strstr(text, "not json\n"));
	free(text);
	tu_path(path, sizeof(path), "%s/sub/access.log.tmp", dir);
	assert_false(tu_exists(path));

	/* a line cut short by a crash: the next append starts a line of its own */
	tu_path(path, sizeof(path), "%s/sub/access.log", dir);
	f = fopen(path, "a");
	fputs("{\"at\":\"2026-12-06T09:00:00Z\",\"progr", f);
	fclose(f);
	r.what = "after the cut";
	assert_int_equal(rete_access_record(path, RETE_ACCESS_KEEP_DEFAULT, &r, &m), RETE_OK);
	text = tu_read_file(path, NULL);
	assert_non_null(strstr(text, "\"progr\n{\"at\""));
	free(text);

	/* a missing file prunes to nothing; an unwritable place is a sentence */
	tu_path(path, sizeof(path), "%s/none.log", dir);
	assert_int_equal(rete_access_log_prune(path, RETE_ACCESS_KEEP_DEFAULT, now, &dropped, &m),
			 RETE_OK);
	assert_int_equal(dropped, 0);
	assert_int_equal(
	    rete_access_record("/proc/nope/access.log", RETE_ACCESS_KEEP_DEFAULT, &r, &m),
	    RETE_EIO);
	assert_non_null(strstr(m.text, "/proc/nope/access.log"));
	r.what = NULL;
	tu_path(path, sizeof(path), "%s/x.log", dir);
	assert_int_equal(rete_access_record(path, RETE_ACCESS_KEEP_DEFAULT, &r, &m), RETE_EINVAL);
	tu_rmrf(dir);
	free(dir);
}

enum { WRITERS = 4, LINES = 150 };

/* run_writers has WRITERS processes append LINES lines each ("writer W
 * line I") to the record at path, each pruning it at every tenth line;
 * part > 0: through a rete_access_log that closes parts of part bytes. */
static void run_writers(const char *path, int64_t part)
{
	pid_t pids[WRITERS];
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] != 0)
			continue;
		char what[64];
		rete_msg cm;
		for (int i = 0; i < LINES; i++) {
			snprintf(what, sizeof(what), "writer %d line %d", w, i);
			rete_access_rec r = {.program = "conc", .what = what};
			rete_err e;
			if (part == 0) {
				e = rete_access_record(path, RETE_ACCESS_KEEP_DEFAULT, &r, &cm);
			} else {
				rete_access_log *al = NULL;
				e = rete_access_log_open(path, RETE_ACCESS_KEEP_DEFAULT, true, &al,
							 &cm);
				if (e == RETE_OK) {
					rete_access_log_set_segment(al, part);
					e = rete_access_log_add(al, &r, &cm);
					rete_access_log_close(&al);
				}
			}
			if (e != RETE_OK)
				_exit(1);
			if (i % 10 == 0 &&
			    rete_access_log_prune(path, RETE_ACCESS_KEEP_DEFAULT, rete_now_ms(),
						  NULL, &cm) != RETE_OK)
				_exit(2);
		}
		_exit(0);
	}
	for (int w = 0; w < WRITERS; w++) {
		int st = 0;
		assert_int_equal(waitpid(pids[w], &st, 0), pids[w]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

/* check_once: text holds every line of run_writers exactly once, whole,
 * and nothing else. */
static void check_once(char *text)
{
	int seen[WRITERS][LINES] = {{0}};
	size_t lines = 0;
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		json_t *o = json_loads(line, 0, NULL);
		if (o == NULL)
			fail_msg("a line is not whole: %s", line);
		int w = -1, i = -1;
		const char *what = json_string_value(json_object_get(o, "what"));
		assert_non_null(what);
		assert_int_equal(sscanf(what, "writer %d line %d", &w, &i), 2);
		assert_true(w >= 0 && w < WRITERS && i >= 0 && i < LINES);
		seen[w][i]++;
		lines++;
		json_decref(o);
	}
	assert_int_equal(lines, WRITERS * LINES);
	for (int w = 0; w < WRITERS; w++)
		for (int i = 0; i < LINES; i++)
			if (seen[w][i] != 1)
				fail_msg("writer %d line %d is there %d times", w, i, seen[w][i]);
}

/* Writers in several processes at once, each pruning the old lines as it
 * opens the record: every line appended is in the file exactly once and
 * whole, and the old lines are gone (a prune's rewrite never drops a line
 * appended while it ran). */
static void test_concurrent_writers(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("access_log_conc");
	char path[1024];
	rete_msg m;
	int64_t old;
	assert_int_equal(rete_time_parse("2020-01-01T09:00:00Z", &old), RETE_OK);
	tu_path(path, sizeof(path), "%s/access.log", dir);
	for (int i = 0; i < 3; i++) {
		rete_access_rec r = {.at_ms = old + i, .program = "old", .what = "old"};
		assert_int_equal(rete_access_record(path, RETE_ACCESS_KEEP_DEFAULT, &r, &m),
				 RETE_OK);
	}
	run_writers(path, 0);
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	check_once(text);
	free(text);
	tu_rmrf(dir);
	free(dir);
}

/* record_lines reads the record at path and its parts (PATH.*, oldest
 * first, then PATH) into one malloc'd text; *files says how many files. */
static char *record_lines(const char *dir, const char *path, int *files)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	size_t total = 0, bl = strlen(strrchr(path, '/') + 1);
	char *all = calloc(1, 1);
	*files = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n; i++) {
			const char *name = names[i]->d_name;
			bool part = strncmp(name, strrchr(path, '/') + 1, bl) == 0 &&
				    name[bl] == '.' && strstr(name, ".tmp") == NULL;
			bool live = strcmp(name, strrchr(path, '/') + 1) == 0;
			if (pass == 0 ? !part : !live)
				continue;
			char p[1200];
			size_t len = 0;
			snprintf(p, sizeof(p), "%s/%s", dir, name);
			char *text = tu_read_file(p, &len);
			assert_non_null(text);
			all = realloc(all, total + len + 1);
			memcpy(all + total, text, len);
			total += len;
			all[total] = '\0';
			free(text);
			(*files)++;
		}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return all;
}

/* A record that reaches its part size is closed as a part and goes on in
 * a new file; a prune removes the parts closed before the retention whole,
 * rewrites the one that straddles it, and every line kept is there once,
 * in order. */
static void test_parts(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("access_log_parts");
	char path[1024], what[64];
	rete_msg m;
	int64_t now, old;
	assert_int_equal(rete_time_parse("2026-12-06T09:00:00Z", &now), RETE_OK);
	assert_int_equal(rete_time_parse("2024-11-01T09:00:00Z", &old), RETE_OK);
	tu_path(path, sizeof(path), "%s/access.log", dir);
	rete_access_log *l = NULL;
	assert_int_equal(rete_access_log_open(path, (rete_keep){0}, false, &l, &m), RETE_OK);
	rete_access_log_set_segment(l, 1000);
	for (int i = 0; i < 80; i++) {
		snprintf(what, sizeof(what), "line %02d", i);
		rete_access_rec r = {.at_ms = i < 40 ? old + i * 1000 : now - 3600000 + i * 1000,
				     .program = "rete sar",
				     .what = what};
		assert_int_equal(rete_access_log_add(l, &r, &m), RETE_OK);
	}
	rete_access_log_close(&l);
	int files = 0;
	char *text = record_lines(dir, path, &files);
	assert_true(files >= 5); /* ~6,000 bytes in parts of 1,000 */
	const char *at = text;
	for (int i = 0; i < 80; i++) {
		snprintf(what, sizeof(what), "\"what\":\"line %02d\"", i);
		const char *hit = strstr(at, what);
		if (hit == NULL)
			fail_msg("line %02d is missing or out of order", i);
		at = hit + 1;
		assert_null(strstr(at, what));
	}
	free(text);
	/* a part is named after the time of its last line */
	char part[1100];
	tu_path(part, sizeof(part), "%s.20241101T090000000Z", path);
	assert_false(tu_exists(part)); /* line 00 closes no part */

	size_t dropped = 0;
	assert_int_equal(rete_access_log_prune(path, RETE_ACCESS_KEEP_DEFAULT, now, &dropped, &m),
			 RETE_OK);
	assert_int_equal(dropped, 40);
	int after = 0;
	text = record_lines(dir, path, &after);
	assert_true(after < files);
	assert_null(strstr(text, "2024-11-01"));
	at = text;
	for (int i = 40; i < 80; i++) {
		snprintf(what, sizeof(what), "\"what\":\"line %02d\"", i);
		const char *hit = strstr(at, what);
		if (hit == NULL)
			fail_msg("line %02d (kept) is missing or out of order after the prune", i);
		at = hit + 1;
	}
	free(text);
	/* nothing more to drop: nothing changes */
	assert_int_equal(rete_access_log_prune(path, RETE_ACCESS_KEEP_DEFAULT, now, &dropped, &m),
			 RETE_OK);
	assert_int_equal(dropped, 0);
	tu_rmrf(dir);
	free(dir);
}

/* Writers in several processes, closing parts of 600 bytes and pruning as
 * they go: every line is in the record (its parts and the file) once. */
static void test_concurrent_parts(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("access_log_conc_parts");
	char path[1024];
	tu_path(path, sizeof(path), "%s/access.log", dir);
	run_writers(path, 600);
	int files = 0;
	char *text = record_lines(dir, path, &files);
	assert_true(files > 1);
	check_once(text);
	free(text);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keep_parse),
	    cmocka_unit_test(test_cutoff),
	    cmocka_unit_test(test_append_and_prune),
	    cmocka_unit_test(test_concurrent_writers),
	    cmocka_unit_test(test_parts),
	    cmocka_unit_test(test_concurrent_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
