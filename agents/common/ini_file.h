/* ini_file.h — reading a tool's `key = value` configuration file.
 *
 * The agent's agent.ini and the coordinator's coord.ini are read the same
 * way: the file is resolved to its absolute name, inih hands each line to
 * the tool's own handler, and paths written in the file are taken relative
 * to the file's folder. This module does those shared steps, and the
 * checks of the keys both tools have (the party id; id, key, broker and
 * broker_key all given); which other keys a section has, their checks and
 * defaults stay with each tool.
 */
#ifndef RETE_INI_FILE_H
#define RETE_INI_FILE_H

#include <ini.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* rete_ini_abs_path returns value as an absolute path: value itself when it
 * starts with '/', otherwise dir "/" value. The string is malloc'd and the
 * caller's; NULL when out of memory. */
char *rete_ini_abs_path(const char *dir, const char *value);

/* rete_ini_read resolves path, stores its absolute name in *ini_path
 * (malloc'd, the caller frees it, also after a later failure) and its
 * folder in dir (dirlen bytes, for rete_ini_abs_path), then parses the file
 * with handler and user. *handler_err is where the handler records the
 * first error it met, with its sentence in m; that error is returned with
 * the sentence prefixed by path. Errors: RETE_EIO (the file cannot be
 * read), RETE_ENOMEM, RETE_EINVAL (a line that is neither `key = value` nor
 * `[section]`, one longer than 199 characters, or a value with a byte that
 * is no UTF-8 (a file saved as Windows-1252): "PATH:LINE: ..."), or the
 * handler's. */
rete_err rete_ini_read(const char *path, ini_handler handler, void *user,
		       const rete_err *handler_err, char **ini_path, char *dir, size_t dirlen,
		       rete_msg *m);

/* rete_ini_read_at is rete_ini_read for a handler that lists every problem
 * itself (a check that says everything at once): *line is set, while
 * handler runs, to the number of the line it was given (1 the first), so
 * that each problem can say FILE:LINE. *syntax_line gets the first line
 * that is neither `key = value` nor `[section]`, *long_line the first
 * longer than 199 characters (not read: inih would cut it in two), 0 when
 * none; the lines after either are read. Those are the caller's to list
 * (rete_ini_syntax_list), not an error returned. A value with a byte that
 * is no UTF-8 is not said here either: the file's own reader
 * (rete_ini_read_list) lists it. Errors: RETE_EIO, RETE_ENOMEM, the
 * handler's. */
rete_err rete_ini_read_at(const char *path, ini_handler handler, void *user,
			  const rete_err *handler_err, int *line, int *syntax_line, int *long_line,
			  char **ini_path, char *dir, size_t dirlen, rete_msg *m);

/* rete_ini_indented: whether the line rete_ini_read_at (or rete_ini_read)
 * last handed to its handler, in this thread, began with white space (a
 * space, a tab, \v, \f: isspace, as inih reads an indent).
 * inih gives such a line, after a key of the same section, to the handler
 * as that key again with the line's text as its value (a continuation): a
 * handler that sees its previous key again on an indented line is given a
 * continuation, not the key twice. */
bool rete_ini_indented(void);

/* rete_ini_syntax_list adds to pr the problems of rete_ini_read_at's
 * syntax_line and long_line (none when 0), each at its line. */
struct rete_check_list;
void rete_ini_syntax_list(int syntax_line, int long_line, struct rete_check_list *pr);

/* rete_ini_read_list is rete_ini_read_at for a reader that lists every
 * problem in pr: the lines that are no `key = value` or too long, and each
 * value with a byte that is no UTF-8 ("[section] key: byte 0xE8 at column
 * N is not UTF-8 ...; save the file as UTF-8", at its line), are listed
 * (the handler still gets that key); a file that cannot be read is one problem (its sentence names
 * it) with *unreadable set. Errors: RETE_EIO, RETE_ENOMEM, the
 * handler's. */
rete_err rete_ini_read_list(const char *path, ini_handler handler, void *user,
			    const rete_err *handler_err, int *line, char **ini_path, char *dir,
			    size_t dirlen, struct rete_check_list *pr, bool *unreadable);

/* The sentences of those two problems (after "FILE:LINE: "). */
extern const char rete_ini_long_line_text[];
extern const char rete_ini_syntax_text[];

/* rete_ini_keys: the keys one section gave so far (a parser's, zeroed
 * before the file is read). */
typedef struct rete_ini_keys {
	char names[32][32];
	size_t n;
} rete_ini_keys;

/* rete_ini_key_again notes name as given in its section and says whether
 * it was given before, so that a key given twice is not the last one taken
 * silently: [privacy] refuses it, as rete-broker does; [agent] takes the
 * last one with a warning (the tests' itest.h overrides its keys so).
 * Names longer than 31 bytes or past the 32nd are not tracked (no known
 * key is one). */
bool rete_ini_key_again(rete_ini_keys *k, const char *name);

/* rete_ini_party_id copies value, the `id` key of [section], into id
 * (idlen bytes; RETE_ID_MAX + 1 hold any party id). Errors: RETE_EINVAL
 * when value is not a party id, with a sentence naming the section, the
 * value and what is accepted. */
rete_err rete_ini_party_id(const char *section, const char *value, char *id, size_t idlen,
			   rete_msg *m);

/* rete_ini_need_party_list checks that the file gave in [section] the
 * four keys every client of the broker needs: id (empty when not given),
 * key, broker and broker_key (NULL when not given), listing in pr
 * (config_check.h) each one missing, saying that `who` (e.g. "the agent")
 * needs all four, and a broker that is no endpoint to connect to
 * (rete_endpoint_check: a port beyond 65535, none, '*', ...): lines holds the lines of id, key,
 * broker and broker_key (0: not given) for the problems' FILE:LINE. An id given and refused is
 * passed as any non-empty text: its own problem is listed already. */
struct rete_check_list;
void rete_ini_need_party_list(const char *section, const char *who, const char *id, const char *key,
			      const char *broker, const char *broker_key, const int lines[4],
			      struct rete_check_list *pr);

#endif
