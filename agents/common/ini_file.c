/* ini_file.c — see ini_file.h. */
#include "ini_file.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

/* whether the line last read (in this thread) began with a space or a tab
 * (rete_ini_indented) */
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
	ini_indented = r[0] == ' ' || r[0] == '\t';
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
	return r;
}

static rete_err ini_read(const char *path, ini_handler handler, void *user,
			 const rete_err *handler_err, int *line, int *syntax_line, int *long_line,
			 char **ini_path, char *dir, size_t dirlen, rete_msg *m)
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
	struct ini_lines s = {.f = f, .line = line != NULL ? line : &own_line};
	*s.line = 0;
	rc = ini_parse_stream(ini_lines_read, &s, handler, user);
	fclose(f);
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
	return ini_read(path, handler, user, handler_err, NULL, NULL, NULL, ini_path, dir, dirlen,
			m);
}

rete_err rete_ini_read_at(const char *path, ini_handler handler, void *user,
			  const rete_err *handler_err, int *line, int *syntax_line, int *long_line,
			  char **ini_path, char *dir, size_t dirlen, rete_msg *m)
{
	return ini_read(path, handler, user, handler_err, line, syntax_line, long_line, ini_path,
			dir, dirlen, m);
}

rete_err rete_ini_read_list(const char *path, ini_handler handler, void *user,
			    const rete_err *handler_err, int *line, char **ini_path, char *dir,
			    size_t dirlen, rete_check_list *pr, bool *unreadable)
{
	int syntax = 0, long_line = 0;
	rete_msg m;
	rete_err err = rete_ini_read_at(path, handler, user, handler_err, line, &syntax, &long_line,
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
