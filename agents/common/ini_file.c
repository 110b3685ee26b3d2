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

/* ini_lines: the stream rete_ini_read_at gives inih, which counts lines
 * (a line longer than inih's buffer comes in pieces: counted once). */
struct ini_lines {
	FILE *f;
	int *line;
	bool at_start;
};

static char *ini_lines_read(char *str, int num, void *stream)
{
	struct ini_lines *s = stream;
	char *r = fgets(str, num, s->f);
	if (r == NULL)
		return NULL;
	if (s->at_start)
		(*s->line)++;
	s->at_start = strchr(r, '\n') != NULL;
	return r;
}

static rete_err ini_read(const char *path, ini_handler handler, void *user,
			 const rete_err *handler_err, int *line, int *syntax_line, char **ini_path,
			 char *dir, size_t dirlen, rete_msg *m)
{
	char real[PATH_MAX];
	char *slash;
	FILE *f;
	int rc;

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
	if (line != NULL) {
		struct ini_lines s = {.f = f, .line = line, .at_start = true};
		*line = 0;
		rc = ini_parse_stream(ini_lines_read, &s, handler, user);
	} else {
		rc = ini_parse_file(f, handler, user);
	}
	fclose(f);
	if (*handler_err != RETE_OK) {
		if (line == NULL)
			rete_msg_prefix(m, "%s", path);
		return *handler_err;
	}
	if (syntax_line != NULL) {
		*syntax_line = rc > 0 ? rc : 0;
		return rc < 0 ? rete_msg_set(m, RETE_ENOMEM, "out of memory") : RETE_OK;
	}
	if (rc != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: line %d is not 'key = value' or '[section]'", path, rc);
	return RETE_OK;
}

rete_err rete_ini_read(const char *path, ini_handler handler, void *user,
		       const rete_err *handler_err, char **ini_path, char *dir, size_t dirlen,
		       rete_msg *m)
{
	return ini_read(path, handler, user, handler_err, NULL, NULL, ini_path, dir, dirlen, m);
}

rete_err rete_ini_read_at(const char *path, ini_handler handler, void *user,
			  const rete_err *handler_err, int *line, int *syntax_line, char **ini_path,
			  char *dir, size_t dirlen, rete_msg *m)
{
	return ini_read(path, handler, user, handler_err, line, syntax_line, ini_path, dir, dirlen,
			m);
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

rete_err rete_ini_need_party(const char *path, const char *section, const char *who, const char *id,
			     const char *key, const char *broker, const char *broker_key,
			     rete_msg *m)
{
	rete_check_list pr = {0};
	const int lines[4] = {0, 0, 0, 0};
	rete_ini_need_party_list(section, who, id, key, broker, broker_key, lines, &pr);
	if (pr.n == 0)
		return RETE_OK;
	rete_msg_set(m, RETE_EINVAL, "%s: %s", path, pr.items[0]);
	rete_check_free(&pr);
	return RETE_EINVAL;
}
