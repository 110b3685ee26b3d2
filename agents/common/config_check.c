/* config_check.c — the checks of `--check-config` for the clients' files
 * (see config_check.h). */
#define _GNU_SOURCE /* vasprintf */
#include "config_check.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"

void rete_check_add(rete_check_list *l, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	char **more = realloc(l->items, (l->n + 1) * sizeof(*more));

	if (more == NULL)
		return;
	l->items = more;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = strdup("out of memory for a sentence of the check");
	va_end(ap);
	if (text != NULL)
		l->items[l->n++] = text;
}

void rete_check_free(rete_check_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

void rete_check_secret_key(rete_check_list *problems, const char *where, const char *path)
{
	rete_seckey *sk = NULL;
	rete_msg m = {{0}};

	if (path == NULL)
		return; /* the configuration's own check said it is missing */
	if (rete_keyfile_load_secret(path, &sk, &m) != RETE_OK)
		rete_check_add(problems, "%s: %s", where, m.text);
	rete_seckey_free(&sk);
}

void rete_check_public_key(rete_check_list *problems, const char *where, const char *path)
{
	rete_pubkey pk;
	rete_msg m = {{0}};

	if (path != NULL && rete_keyfile_load_public(path, &pk, &m) != RETE_OK)
		rete_check_add(problems, "%s: %s", where, m.text);
}

bool rete_check_folder(rete_check_list *problems, rete_check_list *notes, const char *where,
		       const char *path, dev_t *dev)
{
	char up[PATH_MAX];
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			rete_check_add(problems, "%s: %s is not a folder; give a folder", where,
				       path);
			return false;
		}
		if (access(path, W_OK | X_OK) != 0) {
			rete_check_add(problems,
				       "%s: folder %s is not writable by this user (uid %ld): "
				       "%s; run the program as the folder's owner, or give "
				       "it another folder",
				       where, path, (long)getuid(), strerror(errno));
			return false;
		}
		if (dev != NULL)
			*dev = st.st_dev;
		return true;
	}
	if (errno != ENOENT) {
		rete_check_add(problems, "%s: %s: %s", where, path, strerror(errno));
		return false;
	}
	/* the nearest folder above that exists is where it will be made */
	snprintf(up, sizeof(up), "%s", path);
	for (;;) {
		char *slash = strrchr(up, '/');
		if (slash == NULL) {
			snprintf(up, sizeof(up), ".");
			break;
		}
		if (slash == up) {
			up[1] = '\0';
			break;
		}
		*slash = '\0';
		if (stat(up, &st) == 0 || errno != ENOENT)
			break;
	}
	if (stat(up, &st) != 0 || !S_ISDIR(st.st_mode) || access(up, W_OK | X_OK) != 0) {
		rete_check_add(problems,
			       "%s: %s does not exist and cannot be created: %s is not a "
			       "writable folder",
			       where, path, up);
		return false;
	}
	rete_check_add(notes, "%s: %s does not exist yet; the agent creates it at start", where,
		       path);
	if (dev != NULL)
		*dev = st.st_dev;
	return true;
}

int rete_check_report(const char *file, const rete_check_list *problems,
		      const rete_check_list *notes, const char *what)
{
	for (size_t i = 0; i < notes->n; i++)
		printf("%s: note: %s\n", file, notes->items[i]);
	for (size_t i = 0; i < problems->n; i++)
		fprintf(stderr, "%s: %s\n", file, problems->items[i]);
	if (problems->n > 0) {
		fprintf(stderr, "%s: %zu problem%s\n", file, problems->n,
			problems->n == 1 ? "" : "s");
		return 2;
	}
	printf("%s: fine: %s\n", file, what);
	return fflush(stdout) == 0 ? 0 : 2;
}
