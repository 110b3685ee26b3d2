/* ini_file.c — see ini_file.h. */
#include "ini_file.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config_check.h"
#include "conffile.h"
#include "endpoint.h"
#include "keys.h"

char *rete_ini_abs_path(const char *dir, const char *value)
{
	char *out;
	size_t n;

	if (value[0] == '/')
		return strdup(value);
	n = strlen(dir) + strlen(value) + 2;
	out = malloc(n);
	if (out != NULL)
		snprintf(out, n, "%s/%s", dir, value);
	return out;
}

/* ini_lines: the stream ini_read gives inih, which counts lines. inih
 * reads a line in pieces of its buffer (INI_MAX_LINE, 200 bytes with its
 * newline) and takes each piece for a line: a longer line would be cut in
 * two, its tail parsed as a line of its own and every line number after it
 * one too high. Such a line is given to inih as an empty line instead
 * (its whole text skipped, so inih's count stays the file's) and the
 * first one noted in *long_line: the caller refuses it with its own
 * sentence. */
struct ini_lines {
	FILE *f;
	int *line;
	int long_line;
	char raw[256]; /* the current line as read (inih then cuts it up) */
	ini_handler handler;
	void *user;
	rete_check_list *pr; /* list mode: a value that is no UTF-8 goes here */
	int bad_line;	     /* otherwise the first such value: its line */
	char bad[700];	     /* and its sentence ("[section] key: ...") */
};

/* whether the line last read (in this thread) began with white space, as
 * inih's isspace sees it (a space, a tab, \v, \f, \r) (rete_ini_indented) */
static __thread bool ini_indented;

bool rete_ini_indented(void)
{
	return ini_indented;
}

static char *ini_lines_read(char *str, int num, void *stream)
{
	struct ini_lines *s = stream;
	char *r = fgets(str, num, s->f);
	if (r == NULL)
		return NULL;
	(*s->line)++;
	ini_indented = r[0] != '\n' && r[0] != '\0' && isspace((unsigned char)r[0]);
	if (strchr(r, '\n') == NULL && (int)strlen(r) == num - 1) {
		int ch;
		while ((ch = fgetc(s->f)) != EOF && ch != '\n')
			;
		if (ch == EOF && strlen(r) < (size_t)num - 1)
			return r; /* the last line, without a newline, not too long */
		if (s->long_line == 0)
			s->long_line = *s->line;
		snprintf(str, (size_t)num, "\n");
	}
	snprintf(s->raw, sizeof(s->raw), "%s", r);
	return r;
}

/* ini_value_utf8 is the handler inih calls: a value with a byte that is no
 * UTF-8 (an accented letter saved by an editor set to Windows-1252 or
 * Latin-1) is a problem at its line, naming its section and key (in list
 * mode, listed; otherwise the first one is the error); then the tool's
 * handler has the key as before. A comment is not read, so not checked. */
static int ini_value_utf8(void *user, const char *section, const char *name, const char *value)
{
	struct ini_lines *s = user;
	size_t len = value != NULL ? strlen(value) : 0;
	size_t bad = value != NULL ? rete_utf8_bad_offset(value, len) : (size_t)-1;
	if (bad != (size_t)-1 && (s->pr != NULL || s->bad_line == 0)) {
		unsigned char byte = 0;
		size_t col = rete_conffile_utf8_column(s->raw, strlen(s->raw), &byte);
		if (col == 0) /* not found in the line: the value's own byte, no column */
			byte = (unsigned char)value[bad];
		char why[600];
		rete_conffile_not_utf8(why, sizeof(why), byte, col);
		if (s->pr != NULL) {
			int at = s->pr->at;
			rete_check_at(s->pr, *s->line);
			rete_check_add(s->pr, "[%s] %s: %s", section, name, why);
			rete_check_at(s->pr, at);
		} else {
			s->bad_line = *s->line;
			snprintf(s->bad, sizeof(s->bad), "[%s] %s: %s", section, name, why);
		}
	}
	return s->handler(s->user, section, name, value);
}

/* ini_read reads path with handler (see rete_ini_read_at); a value that is
 * no UTF-8 is listed in pr when given (rete_ini_read_list), the error when
 * neither pr nor syntax_line is (rete_ini_read), and left to the file's own
 * reader otherwise (rete_ini_read_at: a second reader of agent.ini or
 * coord.ini, for [privacy] or [console], would say it twice). */
static rete_err ini_read(const char *path, ini_handler handler, void *user,
			 const rete_err *handler_err, int *line, int *syntax_line, int *long_line,
			 rete_check_list *pr, char **ini_path, char *dir, size_t dirlen,
			 rete_msg *m)
{
	char real[PATH_MAX];
	char *slash;
	FILE *f;
	int rc, own_line;

	if (realpath(path, real) == NULL)
		return rete_msg_set(m, RETE_EIO, "%s: cannot read the configuration: %s", path,
				    strerror(errno));
	*ini_path = strdup(real);
	if (*ini_path == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	snprintf(dir, dirlen, "%s", real);
	slash = strrchr(dir, '/');
	if (slash == dir) /* a file in the root folder */
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';

	rete_err err = rete_conffile_open(real, &f, m);
	if (err != RETE_OK) {
		rete_msg_prefix(m, "%s", path);
		return err;
	}
	struct ini_lines s = {.f = f,
			      .line = line != NULL ? line : &own_line,
			      .handler = handler,
			      .user = user,
			      .pr = pr};
	*s.line = 0;
	rc = ini_parse_stream(ini_lines_read, &s, ini_value_utf8, &s);
	fclose(f);
	if (s.bad_line > 0 && syntax_line == NULL && *handler_err != RETE_ENOMEM)
		return rete_msg_set(m, RETE_EINVAL, "%s:%d: %s", path, s.bad_line, s.bad);
	if (*handler_err != RETE_OK) {
		if (line == NULL)
			rete_msg_prefix(m, "%s", path);
		return *handler_err;
	}
	if (rc < 0)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	if (syntax_line != NULL) {
		*syntax_line = rc;
		*long_line = s.long_line;
		return RETE_OK;
	}
	if (s.long_line > 0)
		return rete_msg_set(m, RETE_EINVAL, "%s:%d: %s", path, s.long_line,
				    rete_ini_long_line_text);
	if (rc != 0)
		return rete_msg_set(m, RETE_EINVAL, "%s:%d: %s", path, rc, rete_ini_syntax_text);
	return RETE_OK;
}

const char rete_ini_long_line_text[] =
    "the line is longer than 199 characters, the most a line of the file may "
    "hold (a comment too); it was not read: shorten it or split it";
const char rete_ini_syntax_text[] =
    "not 'key = value' or '[section]'; the line was not read (the lines after "
    "it were)";

rete_err rete_ini_read(const char *path, ini_handler handler, void *user,
		       const rete_err *handler_err, char **ini_path, char *dir, size_t dirlen,
		       rete_msg *m)
{
	return ini_read(path, handler, user, handler_err, NULL, NULL, NULL, NULL, ini_path, dir,
			dirlen, m);
}

rete_err rete_ini_read_at(const char *path, ini_handler handler, void *user,
			  const rete_err *handler_err, int *line, int *syntax_line, int *long_line,
			  char **ini_path, char *dir, size_t dirlen, rete_msg *m)
{
	return ini_read(path, handler, user, handler_err, line, syntax_line, long_line, NULL,
			ini_path, dir, dirlen, m);
}

rete_err rete_ini_read_list(const char *path, ini_handler handler, void *user,
			    const rete_err *handler_err, int *line, char **ini_path, char *dir,
			    size_t dirlen, rete_check_list *pr, bool *unreadable)
{
	int syntax = 0, long_line = 0;
	rete_msg m;
	rete_err err = ini_read(path, handler, user, handler_err, line, &syntax, &long_line, pr,
				ini_path, dir, dirlen, &m);
	if (err != RETE_OK) {
		rete_check_at(pr, 0);
		rete_check_add(pr, "%s", err == RETE_ENOMEM ? "out of memory" : m.text);
		*unreadable = true;
		return err;
	}
	rete_ini_syntax_list(syntax, long_line, pr);
	return RETE_OK;
}

void rete_ini_syntax_list(int syntax_line, int long_line, rete_check_list *pr)
{
	if (long_line > 0) {
		rete_check_at(pr, long_line);
		rete_check_add(pr, "%s", rete_ini_long_line_text);
	}
	if (syntax_line > 0) {
		rete_check_at(pr, syntax_line);
		rete_check_add(pr, "%s", rete_ini_syntax_text);
	}
	rete_check_at(pr, 0);
}

bool rete_ini_key_again(rete_ini_keys *k, const char *name)
{
	if (strlen(name) >= sizeof(k->names[0]))
		return false;
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->names[i], name) == 0)
			return true;
	if (k->n < sizeof(k->names) / sizeof(k->names[0]))
		snprintf(k->names[k->n++], sizeof(k->names[0]), "%s", name);
	return false;
}

rete_err rete_ini_party_id(const char *section, const char *value, char *id, size_t idlen,
			   rete_msg *m)
{
	if (!rete_id_valid(value))
		return rete_msg_set(m, RETE_EINVAL,
				    "[%s] id: '%s' is not a party id; use lower-case letters, "
				    "digits, '.' and '-', 2 to 63 characters",
				    section, value);
	snprintf(id, idlen, "%s", value);
	return RETE_OK;
}

void rete_ini_need_party_list(const char *section, const char *who, const char *id, const char *key,
			      const char *broker, const char *broker_key, const int lines[4],
			      rete_check_list *pr)
{
	const char *const names[4] = {"id", "key", "broker", "broker_key"};
	const bool given[4] = {id[0] != '\0', key != NULL, broker != NULL, broker_key != NULL};

	for (int i = 0; i < 4; i++)
		if (!given[i]) {
			rete_check_at(pr, 0);
			rete_check_add(
			    pr, "[%s] %s is missing; %s needs id, key, broker and broker_key",
			    section, names[i], who);
		}
	rete_msg em;
	if (broker != NULL && rete_endpoint_check(broker, RETE_ENDPOINT_CONNECT, &em) != RETE_OK) {
		rete_check_at(pr, lines[2]);
		rete_check_add(pr, "[%s] broker: %s", section, em.text);
	}
	rete_check_at(pr, 0);
}
