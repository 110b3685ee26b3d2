/* ini_file.c — see ini_file.h. */
#include "ini_file.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

rete_err rete_ini_read(const char *path, ini_handler handler, void *user,
		       const rete_err *handler_err, char **ini_path, char *dir, size_t dirlen,
		       rete_msg *m)
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
	rc = ini_parse_file(f, handler, user);
	fclose(f);
	if (*handler_err != RETE_OK) {
		rete_msg_prefix(m, "%s", path);
		return *handler_err;
	}
	if (rc != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: line %d is not 'key = value' or '[section]'", path, rc);
	return RETE_OK;
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

rete_err rete_ini_need_party(const char *path, const char *section, const char *who, const char *id,
			     const char *key, const char *broker, const char *broker_key,
			     rete_msg *m)
{
	const char *missing = id[0] == '\0'	   ? "id"
			      : key == NULL	   ? "key"
			      : broker == NULL	   ? "broker"
			      : broker_key == NULL ? "broker_key"
						   : NULL;

	if (missing != NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: [%s] %s is missing; %s needs id, key, broker and "
				    "broker_key",
				    path, section, missing, who);
	rete_msg em;
	if (rete_endpoint_check(broker, RETE_ENDPOINT_CONNECT, &em) != RETE_OK)
		return rete_msg_set(m, RETE_EINVAL, "%s: [%s] broker: %s", path, section, em.text);
	return RETE_OK;
}
