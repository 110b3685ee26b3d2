/* testutil.h — small helpers shared by the unit and integration tests:
 * temporary folders, whole-file reads and writes, running a command. */
#ifndef RETE_TESTUTIL_H
#define RETE_TESTUTIL_H

#include <stddef.h>

/* tu_tmpdir creates a fresh folder under $TMPDIR (or /tmp) and returns its
 * path in a static-per-call malloc'd string the caller frees. */
char *tu_tmpdir(const char *tag);

/* tu_rmrf removes a folder tree (like rm -rf); ignores errors. */
void tu_rmrf(const char *path);

/* tu_read_file reads a whole file into a malloc'd, NUL-terminated buffer;
 * *len (if not NULL) gets its length. NULL on error. */
char *tu_read_file(const char *path, size_t *len);

/* tu_write_file writes len bytes to path (created 0644, truncated). 0 on
 * success. */
int tu_write_file(const char *path, const void *data, size_t len);

/* tu_run runs a shell command line, capturing stdout+stderr into a malloc'd
 * string (*out, may be NULL) and returns the exit status (or -1). */
int tu_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
