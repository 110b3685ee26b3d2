/* config_check.h — the checks of `--check-config` for the clients' files.
 *
 * rete-agent --check-config and rete --check-config -c FILE (agent.ini,
 * coord.ini, audit.ini) open what the file names, as the program would at
 * start, and list every problem at once in the style of rete-broker
 * --check-config: the keys (a secret key's mode and format, that a secret
 * is a secret and a public key is public: proto/keys.h judges both; no
 * sentence ever holds key material) and the folders (exist or can be
 * created, writable). Problems make the check fail (exit 2); notes say
 * what the program will do about something that is not an error.
 */
#ifndef RETE_CONFIG_CHECK_H
#define RETE_CONFIG_CHECK_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* rete_check_list: sentences of a check, each malloc'd (whole: they name
 * paths and may be long), with the line of the file each is about (0: the
 * whole file); a zeroed struct is an empty list. at is the line the next
 * sentences added are about (rete_check_at). */
typedef struct rete_check_list {
	char **items;
	int *lines;
	size_t n;
	int at;
} rete_check_list;

/* rete_check_add appends one sentence, about line l->at (out of memory:
 * it is lost). */
void rete_check_add(rete_check_list *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* rete_check_at says which line of the file the sentences added next to l
 * are about (the line of the key they judge; 0: the whole file;
 * RETE_CHECK_NOT_FILE: not the file but the command line, e.g. an option
 * given over a key), so that rete_check_report prints FILE:LINE: as
 * rete-broker --check-config does (nothing before a sentence of the
 * command line). */
#define RETE_CHECK_NOT_FILE (-1)
void rete_check_at(rete_check_list *l, int line);

/* rete_check_file checks that path, a file the program appends to (an
 * access record), is a regular file it can write, or can be created (its
 * folder exists and is writable, or can be made): a folder, a device or a
 * file of a read-only or pseudo file system (/proc, /sys) is a problem.
 * The judge is the broker's too (proto/fileplace.h, rete_file_place). */
void rete_check_file(rete_check_list *problems, const char *where, const char *path);

/* rete_check_free frees the sentences and empties l; NULL is fine. */
void rete_check_free(rete_check_list *l);

/* rete_check_secret_key loads the secret key file path (rete_keyfile_load_
 * secret), wipes it again, and adds a problem "where: sentence" to problems
 * when it is refused. */
void rete_check_secret_key(rete_check_list *problems, const char *where, const char *path);

/* rete_check_public_key loads the public key file path and adds a problem
 * when it is refused. */
void rete_check_public_key(rete_check_list *problems, const char *where, const char *path);

/* rete_check_folder checks that path is a folder the program can write, or
 * that it can be created (its nearest existing parent is a writable
 * folder of a file system that holds files, not /proc or /sys: then a note
 * says it will be created). *dev (may be NULL) gets
 * the file system it is (or will be) on; false when it is unusable. */
bool rete_check_folder(rete_check_list *problems, rete_check_list *notes, const char *where,
		       const char *path, dev_t *dev);

/* rete_check_report prints the notes (stdout, "FILE: note: ..." or
 * "FILE:LINE: note: ..."), the
 * problems (stderr, "FILE:LINE: ..." or "FILE: ...") and a last line: "FILE: fine: what" or
 * "FILE: N problems". Returns the exit code: 0 without problems, else 2. */
int rete_check_report(const char *file, const rete_check_list *problems,
		      const rete_check_list *notes, const char *what);

#endif
