/* privacy_index.c — see privacy_index.h. */
#define _GNU_SOURCE
#include "privacy_index.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "duration.h"

static void pi_path(char *buf, size_t n, const char *data, const char *name)
{
	snprintf(buf, n, "%s/%s", data, name);
}

rete_err privacy_key_load(const char *data, bool create, privacy_key **out, rete_msg *m)
{
	char path[PATH_MAX];
	struct stat st;
	*out = NULL;
	pi_path(path, sizeof(path), data, PRIVACY_KEY_FILE);
	if (sodium_init() < 0)
		return rete_msg_set(m, RETE_ECRYPTO, "libsodium cannot start");
	privacy_key *k = sodium_malloc(sizeof(*k));
	if (k == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		/* First start: a new key, written under a temporary name and
		 * renamed, so a crash never leaves a short key behind. */
		char tmp[PATH_MAX + 8];
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		randombytes_buf(k->k, sizeof(k->k));
		/* a new file, never one already there (a symlink planted in
		 * the folder, a leftover of another mode): one left by a crash
		 * is removed first, without following it */
		unlink(tmp);
		int w = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		bool ok = w >= 0 && write(w, k->k, sizeof(k->k)) == (ssize_t)sizeof(k->k) &&
			  fsync(w) == 0;
		int e = errno;
		if (w >= 0)
			close(w);
		if (!ok || rename(tmp, path) != 0) {
			e = ok ? errno : e;
			unlink(tmp);
			privacy_key_free(&k);
			return rete_msg_set(m, RETE_EIO, "%s: cannot write the index key: %s", path,
					    strerror(e));
		}
		int d = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d >= 0) {
			fsync(d);
			close(d);
		}
		*out = k;
		return RETE_OK;
	}
	if (fd < 0) {
		int e = errno;
		privacy_key_free(&k);
		if (e == ENOENT)
			return rete_msg_set(
			    m, RETE_ENOENT,
			    "%s: no index key yet; the agent makes it at its first "
			    "start (with this version), and indexes the messages it "
			    "seals or opens from then on",
			    path);
		return rete_msg_set(m, RETE_EIO, "%s: cannot read the index key: %s", path,
				    strerror(e));
	}
	if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
		close(fd);
		privacy_key_free(&k);
		return rete_msg_set(m, RETE_EPERM,
				    "%s: the index key is readable by others; chmod 600 %s", path,
				    path);
	}
	ssize_t r = read(fd, k->k, sizeof(k->k));
	close(fd);
	if (r != (ssize_t)sizeof(k->k)) {
		privacy_key_free(&k);
		return rete_msg_set(m, RETE_EIO, "%s: the index key is not %d bytes", path,
				    PRIVACY_KEY_LEN);
	}
	*out = k;
	return RETE_OK;
}

void privacy_key_free(privacy_key **k)
{
	if (k == NULL || *k == NULL)
		return;
	sodium_free(*k); /* sodium_free wipes the memory */
	*k = NULL;
}

static bool pi_mac(const privacy_key *k, const char *domain, const char *value,
		   char out[PRIVACY_MAC_HEX])
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	if (value == NULL || value[0] == '\0')
		return false;
	crypto_auth_hmacsha256_init(&st, k->k, sizeof(k->k));
	/* the domain keeps a person id from ever matching a fiscal code */
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)domain, strlen(domain) + 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)value, strlen(value));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_bin2hex(out, PRIVACY_MAC_HEX, mac, sizeof(mac));
	return true;
}

size_t privacy_fiscal_norm(const char *code, char *out, size_t n)
{
	size_t len = 0;
	for (const char *p = code ? code : ""; *p; p++) {
		if (isspace((unsigned char)*p))
			continue;
		if (len + 1 < n)
			out[len] = (char)toupper((unsigned char)*p);
		len++;
	}
	if (n > 0)
		out[len < n ? len : n - 1] = '\0';
	return len;
}

bool privacy_mac_fiscal(const privacy_key *k, const char *code, char out[PRIVACY_MAC_HEX])
{
	char norm[64];
	privacy_fiscal_norm(code, norm, sizeof(norm));
	bool ok = pi_mac(k, "fiscal-code", norm, out);
	sodium_memzero(norm, sizeof(norm));
	return ok;
}

bool privacy_mac_person_id(const privacy_key *k, const char *id, char out[PRIVACY_MAC_HEX])
{
	return pi_mac(k, "person-id", id, out);
}

/* pi_mac_foreign_id: the pseudonym of another agency's person id, in a
 * domain of its own per agency, so that it never matches ours. */
static bool pi_mac_foreign_id(const privacy_key *k, const char *system, const char *id,
			      char out[PRIVACY_MAC_HEX])
{
	char domain[300];
	snprintf(domain, sizeof(domain), "person-id@%s", system);
	return pi_mac(k, domain, id, out);
}

json_t *privacy_persons(const privacy_key *k, const Rete__Private *priv, const char *system)
{
	json_t *a = json_array();
	char hex[PRIVACY_MAC_HEX];
	if (a == NULL || priv == NULL || priv->person == NULL)
		return a;
	if (privacy_mac_fiscal(k, priv->person->fiscal_code, hex))
		json_array_append_new(a, json_string(hex));
	if (system == NULL ? privacy_mac_person_id(k, priv->person->person_id, hex)
			   : pi_mac_foreign_id(k, system, priv->person->person_id, hex))
		json_array_append_new(a, json_string(hex));
	return a;
}

rete_err privacy_index_write(const char *data, const char *text, size_t len, bool sync, rete_msg *m)
{
	char path[PATH_MAX];
	pi_path(path, sizeof(path), data, PRIVACY_INDEX_FILE);
	rete_err err = RETE_OK;
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	/* a line a crash cut short is ended first, so these stay whole */
	struct stat st;
	char last = '\n';
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0 &&
	    pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n' && write(fd, "\n", 1) != 1)
		last = 0;
	if (fd < 0 || last == 0 || (len > 0 && write(fd, text, len) != (ssize_t)len) ||
	    (sync && fdatasync(fd) != 0))
		err = rete_msg_set(m, RETE_EIO, "%s: cannot append: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return err;
}

char *privacy_index_line(json_t *rec)
{
	if (json_object_get(rec, "at") == NULL)
		json_object_set_new(rec, "at", json_integer(rete_now_ms()));
	char *text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER), *line = NULL;
	if (text != NULL && asprintf(&line, "%s\n", text) < 0)
		line = NULL;
	free(text);
	return line;
}

rete_err privacy_index_append(const char *data, json_t *rec, rete_msg *m)
{
	char *line = privacy_index_line(rec);
	if (line == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	rete_err err = privacy_index_write(data, line, strlen(line), true, m);
	free(line);
	return err;
}

rete_err privacy_index_load(const char *data, json_t **out, rete_msg *m)
{
	char path[PATH_MAX];
	pi_path(path, sizeof(path), data, PRIVACY_INDEX_FILE);
	*out = json_array();
	if (*out == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT)
			return RETE_OK;
		json_decref(*out);
		*out = NULL;
		return rete_msg_set(m, RETE_EIO, "%s: cannot read: %s", path, strerror(errno));
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *o = json_loadb(line, (size_t)len, 0, NULL);
		if (json_is_object(o))
			json_array_append_new(*out, o);
		else
			json_decref(o);
	}
	free(line);
	fclose(f);
	return RETE_OK;
}

size_t privacy_index_merge(json_t *lines, json_t *texts, json_t *added)
{
	json_t *have = json_object(), *o;
	size_t i, n = 0;
	json_array_foreach(lines, i, o)
	{
		char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (t != NULL)
			json_object_set_new(have, t, json_true());
		free(t);
	}
	json_array_foreach(texts, i, o)
	{
		json_t *line = json_loadb(json_string_value(o), json_string_length(o), 0, NULL);
		char *key = json_is_object(line)
				? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER)
				: NULL;
		if (key != NULL && json_object_get(have, key) == NULL) {
			json_object_set_new(have, key, json_true());
			json_array_append(lines, line);
			if (added != NULL)
				json_array_append(added, o);
			n++;
		}
		free(key);
		json_decref(line);
	}
	json_decref(have);
	return n;
}

/* pi_msgkey: "sender/id" of the message a line is about. */
static void pi_msgkey(json_t *o, char *buf, size_t n)
{
	const char *id = json_string_value(json_object_get(o, "id"));
	if (id == NULL)
		id = json_string_value(json_object_get(o, "delivered"));
	snprintf(buf, n, "%s/%s", json_string_value(json_object_get(o, "sender")) ?: "",
		 id ? id : "");
}

rete_err privacy_index_prune(const char *data, rete_keep keep, int64_t now_ms,
			     privacy_pending pending, void *ctx, json_t **erased, rete_msg *m)
{
	json_t *lines = NULL, *latest = NULL;
	char key[512], path[PATH_MAX], tmp[PATH_MAX + 8];
	rete_err err;
	size_t i;
	json_t *o;

	if (erased != NULL)
		*erased = json_array();
	int64_t cutoff = rete_keep_cutoff(keep, now_ms);
	if (cutoff == INT64_MIN)
		return RETE_OK;
	if ((err = privacy_index_load(data, &lines, m)) != RETE_OK)
		return err;
	latest = json_object();
	json_array_foreach(lines, i, o)
	{
		pi_msgkey(o, key, sizeof(key));
		json_int_t at = json_integer_value(json_object_get(o, "at"));
		if (at < cutoff && pending != NULL && pending(ctx, o))
			at = INT64_MAX; /* not yet: undelivered, or its file still held */
		json_t *have = json_object_get(latest, key);
		if (have == NULL || json_integer_value(have) < at)
			json_object_set_new(latest, key, json_integer(at));
	}
	size_t old = 0;
	const char *k;
	json_t *v;
	json_object_foreach(latest, k, v)
	{
		if (json_integer_value(v) < cutoff) {
			old++;
			if (erased != NULL)
				json_array_append_new(*erased, json_string(k));
		}
	}
	if (old == 0)
		goto out;
	pi_path(path, sizeof(path), data, PRIVACY_INDEX_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		err = rete_msg_set(m, RETE_EIO, "%s: cannot create: %s", tmp, strerror(errno));
		goto out;
	}
	json_array_foreach(lines, i, o)
	{
		pi_msgkey(o, key, sizeof(key));
		if (json_integer_value(json_object_get(latest, key)) < cutoff)
			continue;
		if (json_dumpf(o, f, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || fputc('\n', f) < 0)
			err = rete_msg_set(m, RETE_EIO, "%s: cannot write", tmp);
	}
	if (err == RETE_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		err = rete_msg_set(m, RETE_EIO, "%s: cannot write: %s", tmp, strerror(errno));
	fclose(f);
	if (err == RETE_OK && rename(tmp, path) != 0)
		err = rete_msg_set(m, RETE_EIO, "%s: cannot replace: %s", path, strerror(errno));
	if (err != RETE_OK)
		unlink(tmp);
out:
	if (err != RETE_OK && erased != NULL)
		json_array_clear(*erased);
	json_decref(lines);
	json_decref(latest);
	return err;
}

bool privacy_journal_collect(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	struct privacy_journal *r = user;
	uint64_t seq = 0;
	for (size_t i = 0; i < klen && i < 8; i++)
		seq = seq << 8 | ((const uint8_t *)key)[i];
	if (seq + 1 > r->next)
		r->next = seq + 1;
	json_array_append_new(r->texts, json_stringn(val, vlen));
	return true;
}

bool privacy_file_regular(const char *dir, const char *name)
{
	char path[PATH_MAX * 2];
	struct stat st;
	if (strchr(name, '/') != NULL)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *privacy_companion_id(const char *dir, const char *name, const char *suffix)
{
	char path[PATH_MAX * 2];
	snprintf(path, sizeof(path), "%s/%s%s", dir, name, suffix);
	json_t *o = json_load_file(path, 0, NULL);
	const char *id = json_string_value(json_object_get(o, "messageId"));
	char *out = id ? strdup(id) : NULL;
	json_decref(o);
	return out;
}

bool privacy_file_is_copy(const char *dir, const char *name, const char *suffix, const char *id)
{
	if (!privacy_file_regular(dir, name))
		return false;
	char *cid = privacy_companion_id(dir, name, suffix);
	bool yes = cid != NULL && strcmp(cid, id) == 0;
	free(cid);
	return yes;
}
