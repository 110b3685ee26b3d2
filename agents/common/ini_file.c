/* ini_file.c — see ini_file.h. */
#include "ini_file.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

	f = fopen(real, "r");
	if (f == NULL)
		return rete_msg_set(m, RETE_EIO, "%s: cannot read the configuration: %s", path,
				    strerror(errno));
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

/* endpoint_ok: tcp://HOST:PORT (PORT 1 to 65535; HOST a name, an IPv4
 * address or a bracketed IPv6 one) or ipc://PATH, which is what the
 * programs connect to (zmq_connect refuses anything else, at every try). */
static bool endpoint_ok(const char *s)
{
	if (strncmp(s, "ipc://", 6) == 0)
		return s[6] != '\0';
	if (strncmp(s, "tcp://", 6) != 0)
		return false;
	const char *host = s + 6, *colon = strrchr(host, ':');
	if (colon == NULL || colon == host || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5)
		return false;
	long port = strtol(colon + 1, NULL, 10);
	return port >= 1 && port <= 65535;
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
	if (!endpoint_ok(broker))
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "%s: [%s] broker: '%s' is not accepted; give tcp://HOST:PORT or "
		    "ipc://PATH (the broker's listen endpoint, e.g. "
		    "tcp://broker.example:7700)",
		    path, section, broker);
	return RETE_OK;
}
