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

#include "fileplace.h"
#include "keys.h"

void rete_check_add(rete_check_list *l, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	char **more = realloc(l->items, (l->n + 1) * sizeof(*more));

	if (more == NULL)
		return;
	l->items = more;
	int *lines = realloc(l->lines, (l->n + 1) * sizeof(*lines));
	if (lines == NULL)
		return;
	l->lines = lines;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = strdup("out of memory for a sentence of the check");
	va_end(ap);
	if (text != NULL) {
		l->lines[l->n] = l->at;
		l->items[l->n++] = text;
	}
}

void rete_check_at(rete_check_list *l, int line)
{
	l->at = line > 0 ? line : line < 0 ? RETE_CHECK_NOT_FILE : 0;
}

void rete_check_free(rete_check_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	free(l->lines);
	l->items = NULL;
	l->lines = NULL;
	l->n = 0;
	l->at = 0;
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

	const char *fs_kind = NULL;
	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			rete_check_add(problems, "%s: %s is not a folder; give a folder", where,
				       path);
			return false;
		}
		if ((fs_kind = rete_fs_unusable(path)) != NULL) {
			rete_check_add(problems,
				       "%s: folder %s is on %s, where the program can write "
				       "nothing; give a folder on a disk",
				       where, path, fs_kind);
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
	if ((fs_kind = rete_fs_unusable(up)) != NULL) {
		rete_check_add(problems,
			       "%s: %s does not exist and cannot be created: %s is on %s, where "
			       "no folder can be made; give a folder on a disk",
			       where, path, up, fs_kind);
		return false;
	}
	rete_check_add(notes, "%s: %s does not exist yet; the agent creates it at start", where,
		       path);
	if (dev != NULL)
		*dev = st.st_dev;
	return true;
}

void rete_check_file(rete_check_list *problems, const char *where, const char *path)
{
	char why[PATH_MAX + 256];
	struct stat st;

	if (path == NULL || rete_file_place(path, RETE_PLACE_MAKE_FOLDERS | RETE_PLACE_APPEND, why,
					    sizeof(why)) == NULL)
		return;
	/* the file is made at the first record, its folders too when missing;
	 * a file there is appended to (0.7.0 took one in a folder the user may
	 * not write: it still starts) */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		rete_check_add(problems, "%s: %s; give a file (e.g. %s/access.log)", where, why,
			       path);
	else
		rete_check_add(problems,
			       "%s: %s; give a regular file on a disk that this user may "
			       "write, in a folder it may write (missing folders are made)",
			       where, why);
}

int rete_check_report(const char *file, const rete_check_list *problems,
		      const rete_check_list *notes, const char *what)
{
	for (size_t i = 0; i < notes->n; i++)
		if (notes->lines != NULL && notes->lines[i] > 0)
			printf("%s:%d: note: %s\n", file, notes->lines[i], notes->items[i]);
		else
			printf("%s: note: %s\n", file, notes->items[i]);
	for (size_t i = 0; i < problems->n; i++) {
		if (problems->lines != NULL && problems->lines[i] == RETE_CHECK_NOT_FILE)
			fprintf(stderr, "%s\n", problems->items[i]);
		else if (problems->lines != NULL && problems->lines[i] > 0)
			fprintf(stderr, "%s:%d: %s\n", file, problems->lines[i],
				problems->items[i]);
		else
			fprintf(stderr, "%s: %s\n", file, problems->items[i]);
	}
	if (problems->n > 0) {
		fprintf(stderr, "%s: %zu problem%s\n", file, problems->n,
			problems->n == 1 ? "" : "s");
		return 2;
	}
	printf("%s: fine: %s\n", file, what);
	return fflush(stdout) == 0 ? 0 : 2;
}
