/* audit_remote.c — the auditor at a distance (see audit_remote.h).
 *
 * The state file is one JSON object:
 *   format      "rete-audit-state/1"
 *   auditor     the auditor's party id
 *   origin      the log's origin
 *   size        the verified size, a decimal string
 *   checkpoint  the signed checkpoint note of that size
 *   frontier    the compact range of the verified prefix: the hashes of its
 *               perfect subtrees, left to right (one per set bit of size,
 *               the largest first), base64
 *   directory   the LogEntry bytes of the Directory in force, base64 (absent
 *               before the first Directory)
 *   keys        each key a party had in the Directories of the verified
 *               prefix: [{party, key (base64), first, last (the first and
 *               last Directory entry giving it, decimal strings)}] (absent
 *               in a file of an earlier rete)
 *   savedAt     when it was written (RFC 3339 UTC; informative)
 *   signature   Ed25519 of the auditor's key over "rete/audit-state/v1\n"
 *               followed by the other members as compact JSON, keys sorted
 * The signature makes an edited file (a frontier, a checkpoint or a
 * directory swapped for another) fail loudly instead of steering the next
 * audit; the structural checks name what is wrong when the file is merely
 * damaged. */
#define _GNU_SOURCE
#include "audit_remote.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "checkpoint.h"
#include "cli.h"
#include "coord_config.h"
#include "duration.h"
#include "json.h"
#include "monitor.h"
#include "wire.h"

#define STATE_FORMAT "rete-audit-state/1"
#define STATE_CTX    "rete/audit-state/v1\n"
#define STATE_MAX    (1u << 20) /* a state file is a few KiB; more is not one */
#define BATCH	     1000u	/* entries asked for per query (the broker may cap) */
#define SOFTWARE     "rete audit"

/* ---- the state file ---------------------------------------------------------- */

void audit_state_free(audit_state *st)
{
	if (st == NULL)
		return;
	free(st->note);
	free(st->directory);
	for (size_t i = 0; i < st->n_keys; i++)
		free((char *)st->keys[i].party);
	free(st->keys);
	memset(st, 0, sizeof(*st));
}

/* state_body is the object to sign: everything but the signature. */
static char *state_signed_text(json_t *body)
{
	return json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
}

static rete_err state_bad(rete_msg *m, const char *path, const char *what)
{
	return rete_msg_set(m, RETE_EINVAL,
			    "the state file %s is not a state this auditor wrote: %s; remove it "
			    "only if you are sure (the next run then verifies the log from 0)",
			    path, what);
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* state_dec reads a decimal string member of o into *v; false when it is
 * not one. */
static bool state_dec(json_t *o, const char *key, uint64_t *v)
{
	const char *s = jstr(o, key);
	char *end;
	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* state_keys_load reads the member "keys" (arr) of a state of size into
 * st: RETE_EINVAL (m says which key and what is wrong), RETE_ENOMEM. */
static rete_err state_keys_load(json_t *arr, uint64_t size, audit_state *st, rete_msg *m)
{
	size_t n = json_array_size(arr), i;
	json_t *o;

	st->has_keys = true;
	if (n > 0 && (st->keys = calloc(n, sizeof(*st->keys))) == NULL)
		return RETE_ENOMEM;
	json_array_foreach(arr, i, o)
	{
		rete_verify_key_seen *k = &st->keys[i];
		const char *party = jstr(o, "party"), *key = jstr(o, "key");
		uint8_t *bin = NULL;
		size_t binlen = 0;
		if (!json_is_object(o) || json_object_size(o) != 4 || party == NULL ||
		    !rete_id_valid(party) || key == NULL ||
		    rete_b64_decode(key, &bin, &binlen) != RETE_OK || binlen != RETE_PK_LEN ||
		    !state_dec(o, "first", &k->first_index) ||
		    !state_dec(o, "last", &k->last_index) || k->first_index > k->last_index ||
		    k->last_index >= size) {
			free(bin);
			return rete_msg_set(m, RETE_EINVAL,
					    "keys[%zu] is not {party, key (32 bytes, base64), "
					    "first, last (decimal entries, first <= last < size)}",
					    i);
		}
		memcpy(k->key, bin, RETE_PK_LEN);
		free(bin);
		if ((k->party = strdup(party)) == NULL)
			return RETE_ENOMEM;
		st->n_keys++;
	}
	return RETE_OK;
}

rete_err audit_state_load(const char *path, const rete_pubkey *auditor, audit_state *st,
			  rete_msg *m)
{
	static const char *const known[] = {"format",	  "auditor",	  "origin",    "size",
					    "checkpoint", "frontier",	  "directory", "savedAt",
					    "signature",  "acksSignedAt", "keys",      NULL};
	uint8_t sig[RETE_SIG_LEN];
	uint8_t *bin = NULL;
	size_t binlen = 0, n;
	rete_checkpoint cp;
	rete_msg mm = {{0}};
	json_error_t je;
	json_t *doc = NULL, *fr, *val;
	const char *key, *s;
	char *text = NULL, *end;
	unsigned long long size;
	struct stat sb;
	FILE *f;
	rete_err e = RETE_OK;

	memset(st, 0, sizeof(*st));
	if ((f = fopen(path, "rb")) == NULL) {
		/* ENOTDIR: a part of the path is a file, so no state was
		 * ever saved there (the run goes on, as a first one) */
		if (errno == ENOENT || errno == ENOTDIR)
			return rete_msg_set(m, RETE_ENOENT, "no state file %s", path);
		return rete_msg_set(m, RETE_EIO, "cannot read the state file %s: %s", path,
				    strerror(errno));
	}
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > STATE_MAX) {
		fclose(f);
		return state_bad(m, path, "it is not a regular file of at most 1 MiB");
	}
	doc = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	if (doc == NULL) {
		snprintf(mm.text, sizeof(mm.text), "it is not JSON (line %d: %s)", je.line,
			 je.text);
		return state_bad(m, path, mm.text);
	}
	if (!json_is_object(doc)) {
		e = state_bad(m, path, "it is not a JSON object");
		goto out;
	}
	json_object_foreach(doc, key, val)
	{
		bool ok = false;
		for (int i = 0; known[i] != NULL; i++)
			ok = ok || strcmp(key, known[i]) == 0;
		bool array = strcmp(key, "frontier") == 0 || strcmp(key, "keys") == 0;
		if (!ok || !json_is_string(val) != array) {
			snprintf(mm.text, sizeof(mm.text),
				 "member '%s' is unknown or of the wrong type", key);
			e = state_bad(m, path, mm.text);
			goto out;
		}
	}
	if ((s = jstr(doc, "format")) == NULL || strcmp(s, STATE_FORMAT) != 0) {
		e = state_bad(m, path, "its format is not " STATE_FORMAT);
		goto out;
	}
	/* the signature first: nothing of an altered file is believed */
	if ((s = jstr(doc, "signature")) == NULL || rete_b64_decode(s, &bin, &binlen) != RETE_OK ||
	    binlen != RETE_SIG_LEN) {
		e = state_bad(m, path, "it has no signature (64 bytes, base64)");
		goto out;
	}
	memcpy(sig, bin, RETE_SIG_LEN);
	free(bin);
	bin = NULL;
	json_object_del(doc, "signature");
	if ((text = state_signed_text(doc)) == NULL) {
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory");
		goto out;
	}
	if (rete_verify_bytes(sig, STATE_CTX, (const uint8_t *)text, strlen(text), auditor) !=
	    RETE_OK) {
		e = rete_msg_set(
		    m, RETE_EBADSIG,
		    "the state file %s does not carry this auditor's signature: it was "
		    "altered after it was written, or written with another key; it is "
		    "not used",
		    path);
		goto out;
	}
	/* then its form */
	if ((s = jstr(doc, "auditor")) == NULL || !rete_id_valid(s)) {
		e = state_bad(m, path, "auditor is not a party id");
		goto out;
	}
	snprintf(st->auditor, sizeof(st->auditor), "%s", s);
	if ((s = jstr(doc, "size")) == NULL || *s < '0' || *s > '9' ||
	    (errno = 0, size = strtoull(s, &end, 10), errno != 0 || *end != '\0')) {
		e = state_bad(m, path, "size is not a decimal number");
		goto out;
	}
	if ((s = jstr(doc, "checkpoint")) == NULL ||
	    rete_checkpoint_parse(s, strlen(s), &cp, &mm) != RETE_OK || cp.size != size ||
	    (st->note = strdup(s)) == NULL) {
		e = state_bad(m, path, "checkpoint is not a checkpoint note of the size given");
		goto out;
	}
	if ((s = jstr(doc, "origin")) == NULL || strcmp(s, cp.origin) != 0) {
		e = state_bad(m, path, "origin is not the checkpoint's origin");
		goto out;
	}
	fr = json_object_get(doc, "frontier");
	n = (size_t)__builtin_popcountll(size);
	if (!json_is_array(fr) || json_array_size(fr) != n) {
		snprintf(mm.text, sizeof(mm.text),
			 "frontier must hold %zu hashes for size %llu (one per perfect subtree)", n,
			 size);
		e = state_bad(m, path, mm.text);
		goto out;
	}
	rete_merkle_frontier_init(&st->frontier);
	st->frontier.mf_size = size;
	for (int level = 63, i = 0; level >= 0; level--) {
		if (((size >> level) & 1) == 0)
			continue;
		s = json_string_value(json_array_get(fr, (size_t)i++));
		if (s == NULL || rete_b64_decode(s, &bin, &binlen) != RETE_OK ||
		    binlen != RETE_MERKLE_HASH) {
			free(bin);
			bin = NULL;
			e = state_bad(m, path, "a frontier hash is not 32 bytes of base64");
			goto out;
		}
		memcpy(st->frontier.mf_hash[level], bin, RETE_MERKLE_HASH);
		free(bin);
		bin = NULL;
	}
	if ((s = jstr(doc, "directory")) != NULL &&
	    rete_b64_decode(s, &st->directory, &st->directory_len) != RETE_OK) {
		e = state_bad(m, path, "directory is not base64");
		goto out;
	}
	/* optional (a file of an earlier rete has none): the entry, plus one,
	 * after which every delivery must carry its signed acknowledgement */
	if ((s = jstr(doc, "acksSignedAt")) != NULL &&
	    (*s < '1' || *s > '9' ||
	     (errno = 0, st->acks_signed_at = strtoull(s, &end, 10), errno != 0 || *end != '\0') ||
	     st->acks_signed_at > size)) {
		e = state_bad(m, path, "acksSignedAt is not a decimal number within the size");
		goto out;
	}
	/* optional (a file of an earlier rete has none): each party's keys */
	if ((val = json_object_get(doc, "keys")) != NULL &&
	    (e = state_keys_load(val, size, st, &mm)) != RETE_OK) {
		e = e == RETE_ENOMEM ? rete_msg_set(m, e, "out of memory")
				     : state_bad(m, path, mm.text);
		goto out;
	}
out:
	free(text);
	json_decref(doc);
	return e;
}

/* write_all writes len bytes to fd. */
static bool write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		len -= (size_t)w;
	}
	return true;
}

rete_err audit_state_save(const char *path, const rete_verify_resume *r, const char *id,
			  const rete_seckey *sk, rete_msg *m)
{
	uint8_t sig[RETE_SIG_LEN];
	rete_checkpoint cp;
	json_t *doc = json_object(), *fr = json_array();
	char tb[32], *text = NULL, *out = NULL, *tmp = NULL, *dcopy = NULL;
	int fd = -1;
	rete_err e = RETE_ENOMEM;

	if (doc == NULL || fr == NULL) {
		json_decref(fr);
		goto fail;
	}
	if (rete_checkpoint_parse(r->note, r->note_len, &cp, m) != RETE_OK) {
		e = RETE_EINVAL;
		json_decref(fr);
		goto fail;
	}
	for (int level = 63; level >= 0; level--) {
		if (((r->frontier.mf_size >> level) & 1) == 0)
			continue;
		char *h = rete_b64_encode(r->frontier.mf_hash[level], RETE_MERKLE_HASH);
		if (h == NULL) {
			json_decref(fr);
			goto fail;
		}
		json_array_append_new(fr, json_string(h));
		free(h);
	}
	snprintf(tb, sizeof(tb), "%" PRIu64, r->frontier.mf_size);
	json_object_set_new(doc, "format", json_string(STATE_FORMAT));
	json_object_set_new(doc, "auditor", json_string(id));
	json_object_set_new(doc, "origin", json_string(cp.origin));
	json_object_set_new(doc, "size", json_string(tb));
	json_object_set_new(doc, "checkpoint", json_stringn(r->note, r->note_len));
	json_object_set_new(doc, "frontier", fr);
	if (r->directory != NULL) {
		char *d = rete_b64_encode(r->directory, r->directory_len);
		if (d == NULL)
			goto fail;
		json_object_set_new(doc, "directory", json_string(d));
		free(d);
	}
	if (r->acks_signed_at > 0) {
		char ab[24];
		snprintf(ab, sizeof(ab), "%" PRIu64, r->acks_signed_at);
		json_object_set_new(doc, "acksSignedAt", json_string(ab));
	}
	{
		json_t *ks = json_array();
		if (ks == NULL)
			goto fail;
		json_object_set_new(doc, "keys", ks);
		for (size_t i = 0; i < r->n_keys; i++) {
			const rete_verify_key_seen *k = &r->keys[i];
			char fb[24], lb[24], *kb = rete_b64_encode(k->key, RETE_PK_LEN);
			if (kb == NULL)
				goto fail;
			snprintf(fb, sizeof(fb), "%" PRIu64, k->first_index);
			snprintf(lb, sizeof(lb), "%" PRIu64, k->last_index);
			json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "party", k->party, "key", kb,
					      "first", fb, "last", lb);
			free(kb);
			if (o == NULL || json_array_append_new(ks, o) != 0)
				goto fail;
		}
	}
	json_object_set_new(doc, "savedAt", json_string(rete_time_format(rete_now_ms(), tb)));
	if ((text = state_signed_text(doc)) == NULL)
		goto fail;
	if ((e = rete_sign_bytes(sig, STATE_CTX, (const uint8_t *)text, strlen(text), sk)) !=
	    RETE_OK) {
		rete_msg_set(m, e, "cannot sign the state file %s", path);
		goto fail;
	}
	{
		char *sb = rete_b64_encode(sig, RETE_SIG_LEN);
		if (sb == NULL)
			goto fail;
		json_object_set_new(doc, "signature", json_string(sb));
		free(sb);
	}
	if ((out = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		goto fail;
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		tmp = NULL;
		goto fail;
	}
	e = RETE_EIO;
	if ((fd = mkstemp(tmp)) < 0) {
		rete_msg_set(m, e, "cannot create a temporary file beside %s: %s", path,
			     strerror(errno));
		free(tmp);
		tmp = NULL;
		goto fail;
	}
	if (fchmod(fd, 0644) != 0 || !write_all(fd, out, strlen(out)) || !write_all(fd, "\n", 1) ||
	    fsync(fd) != 0) {
		rete_msg_set(m, e, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		rete_msg_set(m, e, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rete_msg_set(m, e, "cannot replace %s: %s", path, strerror(errno));
		goto fail;
	}
	free(tmp);
	tmp = NULL;
	/* the rename itself must survive a power loss */
	if ((dcopy = strdup(path)) != NULL) {
		int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	e = RETE_OK;
fail:
	if (e == RETE_ENOMEM)
		rete_msg_set(m, e, "out of memory writing the state file %s", path);
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	free(dcopy);
	free(out);
	free(text);
	json_decref(doc);
	return e;
}

/* ---- talking to the broker ---------------------------------------------------- */

struct remote {
	coord_config r_cfg;
	const char *r_endpoint;
	rete_wire *r_w;
	rete_seckey *r_sk;
	rete_pubkey r_bk;
};

static void remote_close(struct remote *r)
{
	rete_wire_close(&r->r_w);
	rete_seckey_free(&r->r_sk);
	coord_config_free(&r->r_cfg);
}

/* remote_open loads the configuration and the keys and connects. */
static rete_err remote_open(struct remote *r, const char *ini, const char *endpoint, rete_msg *m)
{
	rete_err e;

	memset(r, 0, sizeof(*r));
	if ((e = coord_config_load(ini, &r->r_cfg, m)) != RETE_OK)
		return e;
	r->r_endpoint = endpoint != NULL && *endpoint != '\0' ? endpoint : r->r_cfg.broker;
	if ((e = coord_config_keys(&r->r_cfg, &r->r_sk, &r->r_bk, m)) != RETE_OK)
		return e;
	return rete_wire_connect(&r->r_w, r->r_endpoint, &r->r_bk, r->r_sk, m);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* remote_wait waits for the answer to query id, of kind want (other frames
 * are dropped: an auditor's connection receives no deliveries). Errors:
 * RETE_ETIMEDOUT, RETE_EREFUSED (our key, the query refused, or the
 * broker's error: *code gets it), RETE_EDECODE (another answer), and those
 * of rete_wire_recv. */
static rete_err remote_wait(struct remote *r, uint64_t id, Rete__QueryResult__AnswerCase want,
			    Rete__BrokerFrame **out, Rete__ErrorCode *code, rete_msg *m)
{
	int64_t deadline = mono_ms() + r->r_cfg.timeout_ms;
	Rete__BrokerFrame *f = NULL;
	rete_err e;

	*out = NULL;
	if (code != NULL)
		*code = RETE__ERROR_CODE__ERROR_CODE_UNSPECIFIED;
	for (;;) {
		int64_t left = deadline - mono_ms();
		e = rete_wire_recv(r->r_w, left > 0 ? (int)left : 0, &f, m);
		if (e == RETE_ETIMEDOUT)
			return coord_silent(&r->r_cfg, r->r_endpoint, m);
		if (e != RETE_OK)
			return e;
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT && f->result != NULL &&
		    f->result->request_id == id)
			break;
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL && f->refusal != NULL) {
			rete_msg_set(m, RETE_EREFUSED, "the broker refused our query: %s",
				     f->refusal->error_text != NULL ? f->refusal->error_text : "");
			rete__broker_frame__free_unpacked(f, NULL);
			return RETE_EREFUSED;
		}
		rete__broker_frame__free_unpacked(f, NULL);
		f = NULL;
	}
	if ((e = coord_answer(f, want, code, m)) != RETE_OK)
		return e;
	*out = f;
	return RETE_OK;
}

/* remote_call asks q and waits for its answer (see remote_wait). */
static rete_err remote_call(struct remote *r, Rete__Query *q, Rete__QueryResult__AnswerCase want,
			    Rete__BrokerFrame **out, Rete__ErrorCode *code, rete_msg *m)
{
	uint64_t id = 0;
	rete_err e;

	*out = NULL;
	q->request_id = 0;
	if ((e = rete_wire_query(r->r_w, q, &id, m)) != RETE_OK)
		return e;
	return remote_wait(r, id, want, out, code, m);
}

/* remote_checkpoint fetches the latest checkpoint note (*note malloc'd;
 * NULL with RETE_OK when the broker has none yet). */
static rete_err remote_checkpoint(struct remote *r, char **note, rete_msg *m)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__CheckpointQuery cq = RETE__CHECKPOINT_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	Rete__ErrorCode code;
	rete_err e;

	*note = NULL;
	q.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	q.checkpoint = &cq;
	e = remote_call(r, &q, RETE__QUERY_RESULT__ANSWER_CHECKPOINT, &f, &code, m);
	if (e == RETE_EREFUSED && code == RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND)
		return RETE_OK;
	if (e != RETE_OK)
		return e;
	*note = strdup(f->result->checkpoint != NULL ? f->result->checkpoint : "");
	rete__broker_frame__free_unpacked(f, NULL);
	return *note != NULL ? RETE_OK : rete_msg_set(m, RETE_ENOMEM, "out of memory");
}

/* remote_checkpoint_of fetches the stored checkpoint of size (with the
 * cosignatures gathered), *note malloc'd. */
static rete_err remote_checkpoint_of(struct remote *r, uint64_t size, char **note, rete_msg *m)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__CheckpointQuery cq = RETE__CHECKPOINT_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	Rete__ErrorCode code;
	rete_err e;

	*note = NULL;
	cq.size = size;
	q.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	q.checkpoint = &cq;
	if ((e = remote_call(r, &q, RETE__QUERY_RESULT__ANSWER_CHECKPOINT, &f, &code, m)) !=
	    RETE_OK)
		return e;
	*note = strdup(f->result->checkpoint != NULL ? f->result->checkpoint : "");
	rete__broker_frame__free_unpacked(f, NULL);
	return *note != NULL ? RETE_OK : rete_msg_set(m, RETE_ENOMEM, "out of memory");
}

/* same_checkpoint: b verifies with the broker key and carries the same
 * checkpoint text as a (cosignature lines may differ). */
static bool same_checkpoint(const char *a, const char *b, const char *origin, const rete_pubkey *bk)
{
	size_t la, lb;
	return a != NULL && b != NULL &&
	       rete_checkpoint_verify(b, strlen(b), origin, bk, NULL, NULL) == RETE_OK &&
	       rete_cosign_body_len(a, strlen(a), &la, NULL) == RETE_OK &&
	       rete_cosign_body_len(b, strlen(b), &lb, NULL) == RETE_OK && la == lb &&
	       memcmp(a, b, la) == 0;
}

/* remote_proof is the session's rete_verify_proof_fn: a consistency query. */
static rete_err remote_proof(void *ctx, uint64_t size1, uint64_t size2,
			     uint8_t proof[][RETE_MERKLE_HASH], size_t *n, rete_msg *m)
{
	struct remote *r = ctx;
	Rete__Query q = RETE__QUERY__INIT;
	Rete__ConsistencyQuery cq = RETE__CONSISTENCY_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	Rete__ErrorCode code;
	const Rete__Proof *p;
	rete_err e;

	*n = 0;
	q.what_case = RETE__QUERY__WHAT_CONSISTENCY;
	q.consistency = &cq;
	cq.size1 = size1;
	cq.size2 = size2;
	e = remote_call(r, &q, RETE__QUERY_RESULT__ANSWER_PROOF, &f, &code, m);
	if (e == RETE_EREFUSED && code == RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND)
		return RETE_EPROOF; /* the broker cannot prove it: m has its sentence */
	if (e != RETE_OK)
		return e;
	p = f->result->proof;
	if (p->size1 != size1 || p->size2 != size2 || p->n_hashes > RETE_MERKLE_MAX_PROOF) {
		e = rete_msg_set(m, RETE_EPROOF,
				 "the broker answered with a proof from %" PRIu64 " to %" PRIu64
				 " (%zu hashes) when asked for one from %" PRIu64 " to %" PRIu64,
				 p->size1, p->size2, p->n_hashes, size1, size2);
		goto out;
	}
	for (size_t i = 0; i < p->n_hashes; i++) {
		if (p->hashes[i].len != RETE_MERKLE_HASH) {
			e = rete_msg_set(
			    m, RETE_EPROOF,
			    "hash %zu of the broker's consistency proof has %zu bytes, "
			    "not 32",
			    i, p->hashes[i].len);
			goto out;
		}
		memcpy(proof[i], p->hashes[i].data, RETE_MERKLE_HASH);
	}
	*n = p->n_hashes;
out:
	rete__broker_frame__free_unpacked(f, NULL);
	return e;
}

/* entries_ask sends a query for entries from `from` (at most count);
 * *id gets its request id. */
static rete_err entries_ask(struct remote *r, uint64_t from, uint64_t count, uint64_t *id,
			    rete_msg *m)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__EntriesQuery eq = RETE__ENTRIES_QUERY__INIT;

	q.what_case = RETE__QUERY__WHAT_ENTRIES;
	q.entries = &eq;
	eq.from = from;
	eq.count = count;
	return rete_wire_query(r->r_w, &q, id, m);
}

/* entries_wait waits for the answer to entries_ask(from): *f holds it
 * (its entries may be fewer than asked, none past the log's end). */
static rete_err entries_wait(struct remote *r, uint64_t id, uint64_t from, Rete__BrokerFrame **f,
			     rete_msg *m)
{
	rete_err e = remote_wait(r, id, RETE__QUERY_RESULT__ANSWER_ENTRIES, f, NULL, m);
	if (e == RETE_OK && (*f)->result->entries->from != from) {
		uint64_t got = (*f)->result->entries->from;
		rete__broker_frame__free_unpacked(*f, NULL);
		*f = NULL;
		return rete_msg_set(m, RETE_EDECODE,
				    "the broker answered with entries from %" PRIu64
				    " when asked for entries from %" PRIu64,
				    got, from);
	}
	return e;
}

/* ---- rete audit verify --broker ------------------------------------------------ */

/* batch_of: how many entries to ask for from `from` towards target. */
static uint64_t batch_of(uint64_t from, uint64_t target, uint64_t batch)
{
	return target - from < batch ? target - from : batch;
}

static void progress(uint64_t done, uint64_t total, uint64_t start)
{
	uint64_t span = total - start;
	fprintf(stderr, "\rfetching and verifying: %" PRIu64 " of %" PRIu64 " new entries (%d%%)",
		done - start, span, span == 0 ? 100 : (int)((done - start) * 100 / span));
	fflush(stderr);
}

static void set_b64(json_t *o, const char *key, const uint8_t *h)
{
	char *s = rete_b64_encode(h, RETE_MERKLE_HASH);
	json_object_set_new(o, key, s != NULL ? json_string(s) : json_null());
	free(s);
}

static json_t *ckpt_json(const char *note)
{
	rete_checkpoint cp;
	json_t *o;

	if (note == NULL || rete_checkpoint_parse(note, strlen(note), &cp, NULL) != RETE_OK)
		return json_null();
	o = json_object();
	json_object_set_new(o, "size", json_integer((json_int_t)cp.size));
	set_b64(o, "root", cp.root);
	json_object_set_new(o, "note", json_string(note));
	return o;
}

static uint64_t note_size(const char *note)
{
	rete_checkpoint cp;
	if (note == NULL || rete_checkpoint_parse(note, strlen(note), &cp, NULL) != RETE_OK)
		return 0;
	return cp.size;
}

/* note_epoch: the epoch a (parsed) note names; 1 when it names none or is
 * NULL. */
static uint32_t note_epoch(const char *note)
{
	uint32_t ep = 1;
	if (note == NULL || rete_checkpoint_epoch(note, strlen(note), &ep, NULL) != RETE_OK)
		return 1;
	return ep;
}

/* alarm prints the loud report of a log inconsistent with the saved
 * checkpoint, with both notes. */
static void alarm_print(const audit_remote_opts *o, const char *saved, const char *theirs,
			const char *why)
{
	const char *line = "ALARM: the broker's log is not consistent with the checkpoint saved in";

	if (o->json) {
		/* the JSON on standard output says it too (alarm: true) */
		fprintf(stderr, "%s %s\n%s\n", line, o->state, why);
		return;
	}
	printf("%s %s\n", line, o->state);
	printf("%s\n\n", why);
	printf("the checkpoint saved in %s (size %" PRIu64 ", verified earlier):\n%s\n", o->state,
	       note_size(saved), saved);
	if (theirs != NULL)
		printf("the checkpoint the broker presents now (size %" PRIu64 "):\n%s\n",
		       note_size(theirs), theirs);
	else
		printf("the checkpoint the broker presents now: none (it has no checkpoint)\n\n");
	if (theirs != NULL && note_epoch(theirs) < note_epoch(saved))
		printf("Keep both notes: each carries the broker's signature; the saved one is of "
		       "a later\nepoch than the log the broker serves now.\n");
	else if (theirs != NULL && note_epoch(theirs) > note_epoch(saved))
		printf("Keep both notes: each carries the broker's signature, and the log's epoch "
		       "entries\n(rete audit log, kind \"epoch\") say what the broker declares "
		       "about them.\n");
	else if (theirs != NULL && note_size(theirs) >= note_size(saved))
		printf("Keep both notes: each carries the broker's signature, so together they "
		       "prove\nthat the broker signed two histories that cannot both be true.\n");
	else
		printf(
		    "Keep both notes: each carries the broker's signature. The broker signed the "
		    "saved\none earlier, and now presents less than it as its whole log.\n");
}

/* The key changes the verification met (rete_verify_key_change), kept
 * to be said after its verdict: one JSON object each. */
void audit_key_change_keep(void *ctx, const rete_verify_key_change *kc)
{
	json_t *o = json_object();
	char idx[24], at[32];
	if (o == NULL)
		return;
	json_object_set_new(o, "party", json_string(kc->party));
	snprintf(idx, sizeof(idx), "%" PRIu64, kc->index);
	json_object_set_new(o, "index", json_string(idx));
	json_object_set_new(o, "loggedAt", json_string(rete_time_format(kc->logged_at, at)));
	snprintf(idx, sizeof(idx), "%" PRIu64, kc->prev_index);
	json_object_set_new(o, "previousDirectory", json_string(idx));
	snprintf(idx, sizeof(idx), "%" PRIu64, kc->old_from);
	json_object_set_new(o, "oldKeyFrom", json_string(idx));
	char *k = rete_b64_encode(kc->old_key, RETE_PK_LEN);
	json_object_set_new(o, "oldKey", json_string(k ? k : "?"));
	free(k);
	k = rete_b64_encode(kc->new_key, RETE_PK_LEN);
	json_object_set_new(o, "newKey", json_string(k ? k : "?"));
	free(k);
	json_object_set_new(o, "addedBack", json_boolean(kc->added_back));
	json_object_set_new(o, "backToEarlier", json_boolean(kc->back));
	if (kc->back) {
		snprintf(idx, sizeof(idx), "%" PRIu64, kc->back_index);
		json_object_set_new(o, "earlierDirectory", json_string(idx));
	}
	json_array_append_new(ctx, o);
}

/* shell_word writes s into buf as one word of a command line: as it is
 * when it holds only letters, digits and _ . / - + , : @ =, else in
 * single quotes (a quote inside as '\''); cut to len. */
static const char *shell_word(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	bool plain = *s != '\0';
	for (const char *p = s; *p != '\0' && plain; p++)
		plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || strchr("_./-+,:@=", *p) != NULL;
	if (plain) {
		snprintf(buf, len, "%s", s);
		return buf;
	}
	for (const char *p = s; o + 5 < len; p++) {
		if (p == s)
			buf[o++] = '\'';
		if (*p == '\0') {
			buf[o++] = '\'';
			break;
		}
		if (*p == '\'') {
			memcpy(buf + o, "'\\''", 4);
			o += 4;
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* audit_key_changes_print says each key change of a party, and warns of
 * one that goes back to a key the party had before, with a hint that
 * works where the audit ran: rete audit log on the store folder, or, at a
 * distance (no store), the broker's operator or rete audit timeline -c. */
void audit_key_changes_print(json_t *changes, const char *store_dir, const char *ini)
{
	size_t i;
	json_t *c;
	char where[PATH_MAX * 4 + 8];
	const char *w = store_dir != NULL ? store_dir : ini;
	shell_word(w != NULL ? w : "audit.ini", where, sizeof(where));
	json_array_foreach(changes, i, c)
	{
		const char *party = json_string_value(json_object_get(c, "party"));
		const char *idx = json_string_value(json_object_get(c, "index"));
		printf("key change: %s at entry %s (logged at %s): %s -> %s", party, idx,
		       json_string_value(json_object_get(c, "loggedAt")),
		       json_string_value(json_object_get(c, "oldKey")),
		       json_string_value(json_object_get(c, "newKey")));
		if (json_is_true(json_object_get(c, "addedBack")))
			printf(" (removed from the directory after entry %s, added back with "
			       "another key)",
			       json_string_value(json_object_get(c, "previousDirectory")));
		printf("\n");
		if (!json_is_true(json_object_get(c, "backToEarlier")))
			continue;
		const char *from = json_string_value(json_object_get(c, "oldKeyFrom"));
		printf("warning: %s's key at entry %s is the key it had at entry %s, "
		       "replaced at entry %s: a key that changes and changes back is what "
		       "a broker's operator leaves who signed as %s for a while. Ask %s "
		       "whether it changed its key twice; ",
		       party, idx, json_string_value(json_object_get(c, "earlierDirectory")), from,
		       party, party);
		if (store_dir != NULL)
			printf("what was signed with the key in between is in rete audit log %s "
			       "--from %s --to %s\n",
			       where, from, idx);
		else
			printf(
			    "what was signed with the key in between lies in entries %s to %s "
			    "of the broker's log: this auditor keeps no store, so see a case of "
			    "them with rete audit timeline -c %s --case ID, or have the broker's "
			    "operator run rete audit log STORE_DIR --from %s --to %s in front of "
			    "you\n",
			    from, idx, where, from, idx);
	}
}

void audit_acks_print(const rete_verify_report *rep)
{
	if (rep->acks_verified == 0 && rep->acks_unsigned == 0)
		return;
	printf("deliveries: %" PRIu64 " acknowledgement%s signed by the recipient verified",
	       rep->acks_verified, rep->acks_verified == 1 ? "" : "s");
	if (rep->acks_unbound > 0)
		printf(" (%" PRIu64 " of entries verified in an earlier run: signature, log and "
		       "index checked)",
		       rep->acks_unbound);
	if (rep->acks_unsigned > 0)
		printf("; %" PRIu64 " unsigned (logged before protocol 3)", rep->acks_unsigned);
	printf("\n");
}

void audit_clock_print(const rete_verify_report *rep)
{
	char t1[32], t2[32], d[32];

	if (rep->clock_back > 0)
		printf(
		    "warning: the broker's clock went back: %" PRIu64 " entr%s logged more "
		    "than %ds before an entry logged earlier; the first, entry %" PRIu64
		    ", at %s, %s before entry %" PRIu64 "'s %s. The log still holds (its "
		    "entries are what was signed), but its times there are the broker's "
		    "wrong clock: take the time-stamps (rete evidence verify) for when, and "
		    "ask the broker's operator\n",
		    rep->clock_back, rep->clock_back == 1 ? "y" : "ies", RETE_CLOCK_STEP_MS / 1000,
		    rep->clock_back_index, rete_time_format(rep->clock_back_at, t1),
		    monitor_duration_text(rep->clock_back_prev - rep->clock_back_at, d, sizeof(d)),
		    rep->clock_back_prev_index, rete_time_format(rep->clock_back_prev, t2));
	if (rep->clock_early > 0)
		printf("warning: the broker logged %" PRIu64 " agency message%s more than %d min "
		       "before its sender wrote it (createdAt); the first, entry %" PRIu64
		       ", logged at %s, %s before its createdAt %s. Either one of the two "
		       "clocks is wrong (the broker's, when the time-stamps say so), or the "
		       "sender's createdAt is ahead (written by its case system, e.g. local "
		       "time with a Z suffix, with both clocks right): the log still holds; "
		       "when a clock is wrong, its time there is no evidence\n",
		       rep->clock_early, rep->clock_early == 1 ? "" : "s",
		       RETE_CLOCK_SKEW_MS / 60000, rep->clock_early_index,
		       rete_time_format(rep->clock_early_at, t1),
		       monitor_duration_text(rep->clock_early_created - rep->clock_early_at, d,
					     sizeof(d)),
		       rete_time_format(rep->clock_early_created, t2));
}

json_t *audit_clock_json(const rete_verify_report *rep)
{
	char t1[32], t2[32];

	if (rep->clock_back == 0 && rep->clock_early == 0)
		return NULL;
	json_t *o = json_object();
	if (o != NULL && rep->clock_back > 0)
		json_object_set_new(
		    o, "loggedBack",
		    json_pack("{sIsIsssIss}", "entries", (json_int_t)rep->clock_back, "firstIndex",
			      (json_int_t)rep->clock_back_index, "loggedAt",
			      rete_time_format(rep->clock_back_at, t1), "afterIndex",
			      (json_int_t)rep->clock_back_prev_index, "afterLoggedAt",
			      rete_time_format(rep->clock_back_prev, t2)));
	if (o != NULL && rep->clock_early > 0)
		json_object_set_new(o, "loggedBeforeCreated",
				    json_pack("{sIsIssss}", "entries", (json_int_t)rep->clock_early,
					      "firstIndex", (json_int_t)rep->clock_early_index,
					      "loggedAt", rete_time_format(rep->clock_early_at, t1),
					      "createdAt",
					      rete_time_format(rep->clock_early_created, t2)));
	return o;
}

void audit_restore_print(const rete_verify_report *rep, const char *state, const char *kept)
{
	unsigned pe = (unsigned)rep->restore_prev_epoch;

	printf("the log was restored: epoch %u began at index %" PRIu64
	       "; the last checkpoint of epoch %u was of %" PRIu64 " entries; ",
	       (unsigned)rep->restore_epoch, rep->restore_index, pe, rep->restore_prev_size);
	if (rep->restore_prev_size > rep->restore_index)
		printf("entries %" PRIu64 "..%" PRIu64 " of epoch %u are not in this log (the "
		       "broker's old store is their evidence)\n",
		       rep->restore_index, rep->restore_prev_size - 1, pe);
	else
		printf("no entry of epoch %u is missing from this log\n", pe);
	if (rep->since_past)
		printf("the earlier checkpoint (epoch %u, %" PRIu64 " entries) covered entries "
		       "%" PRIu64 "..%" PRIu64 " too: those indexes hold entries of epoch %u now, "
		       "verified here\n",
		       (unsigned)rep->since_epoch, rep->since_size, rep->restore_index,
		       rep->since_size - 1, (unsigned)rep->restore_epoch);
	else
		printf("the earlier checkpoint (epoch %u, %" PRIu64 " entries) lies in the part "
		       "kept: the log extends it\n",
		       (unsigned)rep->since_epoch, rep->since_size);
	if (rep->since_past && rep->restore_prev_epoch != rep->since_epoch)
		printf("the broker records its last checkpoint of epoch %u, which was never "
		       "verified here (the earlier checkpoint is of epoch %u)\n",
		       pe, (unsigned)rep->since_epoch);
	if (state != NULL && kept != NULL && kept[0] != '\0')
		printf("the state of epoch %u is kept in %s (its checkpoint carries the broker's "
		       "signature); %s holds epoch %u now\n",
		       (unsigned)rep->since_epoch, kept, state, (unsigned)rep->restore_epoch);
}

json_t *audit_restore_json(const rete_verify_report *rep, const char *kept)
{
	json_t *o = json_object();
	json_object_set_new(o, "epoch", json_integer(rep->restore_epoch));
	json_object_set_new(o, "index", json_integer((json_int_t)rep->restore_index));
	json_object_set_new(o, "previousEpoch", json_integer(rep->restore_prev_epoch));
	json_object_set_new(o, "previousCheckpointSize",
			    json_integer((json_int_t)rep->restore_prev_size));
	json_object_set_new(o, "savedEpoch", json_integer(rep->since_epoch));
	json_object_set_new(o, "savedSize", json_integer((json_int_t)rep->since_size));
	json_object_set_new(o, "savedPastRestore", json_boolean(rep->since_past));
	if (kept != NULL && kept[0] != '\0')
		json_object_set_new(o, "earlierStateKeptIn", json_string(kept));
	return o;
}

/* state_keep copies the state file of an earlier epoch to
 * STATE.epoch-N (STATE.epoch-N.2, .3, ... when taken) before the new
 * state replaces it; the copy's name goes to kept. */
static rete_err state_keep(const char *state, uint32_t epoch, char *kept, size_t len, rete_msg *m)
{
	size_t n = 0;
	char *text = NULL;
	int fd = -1;

	{
		FILE *f = fopen(state, "rb");
		if (f == NULL)
			return rete_msg_set(m, RETE_EIO, "cannot read %s: %s", state,
					    strerror(errno));
		text = malloc(STATE_MAX + 1);
		if (text != NULL)
			n = fread(text, 1, STATE_MAX + 1, f);
		fclose(f);
		if (text == NULL)
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	for (unsigned k = 1; k < 1000 && fd < 0; k++) {
		if (k == 1)
			snprintf(kept, len, "%s.epoch-%" PRIu32, state, epoch);
		else
			snprintf(kept, len, "%s.epoch-%" PRIu32 ".%u", state, epoch, k);
		fd = open(kept, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0 || !write_all(fd, text, n) || fsync(fd) != 0) {
		rete_msg_set(m, RETE_EIO, "cannot keep the state of epoch %" PRIu32 " in %s: %s",
			     epoch, kept, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(kept);
		}
		free(text);
		kept[0] = '\0';
		return RETE_EIO;
	}
	free(text);
	if (close(fd) != 0) {
		rete_msg_set(m, RETE_EIO, "cannot keep the state of epoch %" PRIu32 " in %s: %s",
			     epoch, kept, strerror(errno));
		unlink(kept);
		kept[0] = '\0';
		return RETE_EIO;
	}
	return RETE_OK;
}

bool audit_witnesses_check(const rete_witness_policy *p, const char *path, const char *note,
			   bool json, json_t *j)
{
	rete_checkpoint cp;
	rete_msg m = {{0}};
	bool met;

	memset(&cp, 0, sizeof(cp));
	if (note == NULL || note[0] == '\0') {
		met = false;
		rete_msg_set(&m, RETE_ENOENT, "there is no checkpoint to check");
	} else {
		rete_checkpoint_parse(note, strlen(note), &cp, NULL);
		met = rete_witness_policy_check(p, note, strlen(note), &m) == RETE_OK;
	}
	if (!json) {
		if (met)
			printf("the checkpoint of size %" PRIu64
			       " meets the witness policy %s: %s\n",
			       cp.size, path, m.text);
		else
			printf("the checkpoint of size %" PRIu64
			       " does not meet the witness policy %s: %s\n",
			       cp.size, path, m.text);
	}
	if (j != NULL) {
		json_t *w = json_object();
		json_object_set_new(w, "policy", json_string(path));
		json_object_set_new(w, "met", json_boolean(met));
		json_object_set_new(w, "size", json_integer((json_int_t)cp.size));
		json_object_set_new(w, "detail", json_string(m.text));
		json_object_set_new(j, "witnesses", w);
	}
	return met;
}

int audit_remote_verify(const audit_remote_opts *o)
{
	struct remote r;
	audit_state st;
	rete_verify_resume res, *resp = NULL, next;
	rete_verify_session *sess = NULL;
	rete_verify_options opt;
	rete_verify_report rep;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	char *note = NULL;
	uint64_t fetched = 0, start = 0, target, pend_from, pend_id = 0;
	uint64_t batch = o->batch > 0 ? o->batch : BATCH;
	bool pending;
	bool tty = isatty(STDERR_FILENO), alarm = false, progressed = false, restoring = false;
	bool witnesses_checked = false, witnesses_met = false, saved = false;
	uint32_t saved_epoch = 1, their_epoch = 1;
	char kept[PATH_MAX] = "";
	json_t *j = NULL, *changes = json_array();
	rete_err e;
	int rc = CLI_USAGE;

	memset(&st, 0, sizeof(st));
	memset(&rep, 0, sizeof(rep));
	if ((e = remote_open(&r, o->ini, o->endpoint, &m)) != RETE_OK) {
		fprintf(stderr, "rete audit verify: %s\n", m.text[0] ? m.text : rete_strerror(e));
		goto out;
	}
	/* the state kept by the previous run, checked with our own key */
	e = audit_state_load(o->state, &r.r_sk->pub, &st, &m);
	if (e == RETE_OK && strcmp(st.auditor, r.r_cfg.id) != 0) {
		rete_msg_set(&m, RETE_EINVAL, "the state file %s was written by %s, not by %s",
			     o->state, st.auditor, r.r_cfg.id);
		e = RETE_EINVAL;
	}
	if (e != RETE_OK && e != RETE_ENOENT) {
		fprintf(stderr, "rete audit verify: %s\n", m.text);
		goto out;
	}
	if (e == RETE_OK) {
		memset(&res, 0, sizeof(res));
		res.note = st.note;
		res.note_len = strlen(st.note);
		res.frontier = st.frontier;
		res.directory = st.directory;
		res.directory_len = st.directory_len;
		res.acks_signed_at = st.acks_signed_at;
		res.keys = st.keys;
		res.n_keys = st.n_keys;
		resp = &res;
		start = st.frontier.mf_size;
	}
	memset(&opt, 0, sizeof(opt));
	opt.broker_key = r.r_bk;
	opt.threads = o->threads;
	/* the key changes of the entries fetched (those of an earlier run were
	 * said then), said after the verdict */
	opt.key_change = audit_key_change_keep;
	opt.key_change_ctx = changes;
	if ((e = rete_verify_session_open(&sess, &opt, resp, &m)) != RETE_OK) {
		fprintf(stderr, "rete audit verify: the state file %s is refused: %s\n", o->state,
			m.text);
		goto out;
	}
	/* the broker's latest checkpoint */
	if ((e = remote_checkpoint(&r, &note, &m)) != RETE_OK) {
		fprintf(stderr, "rete audit verify: asking the broker for its checkpoint: %s\n",
			m.text[0] ? m.text : rete_strerror(e));
		goto out;
	}
	if (note == NULL) {
		if (start > 0) {
			alarm = true;
			snprintf(rep.reason, sizeof(rep.reason),
				 "the broker has no checkpoint at all, but %" PRIu64
				 " entries were verified before: its log was removed or replaced",
				 start);
			alarm_print(o, st.note, NULL, rep.reason);
			rc = CLI_FALSE;
			goto report;
		}
		if (!o->json)
			printf("the broker has no checkpoint yet: nothing to verify\n");
		rc = CLI_OK;
		goto report;
	}
	if ((e = rete_checkpoint_epoch(note, strlen(note), &their_epoch, &m)) != RETE_OK) {
		snprintf(rep.reason, sizeof(rep.reason), "the broker's checkpoint: %s", m.text);
		if (!o->json)
			printf("the log does not verify: %s\n", rep.reason);
		rc = CLI_FALSE;
		goto report;
	}
	saved_epoch = note_epoch(st.note);
	if (resp != NULL && their_epoch < saved_epoch) {
		alarm = true;
		snprintf(rep.reason, sizeof(rep.reason),
			 "the broker presents a checkpoint of epoch %" PRIu32
			 ", but the one saved, verified earlier, is of epoch %" PRIu32
			 ": the broker went back to a log it had left (an older store is served "
			 "again)",
			 their_epoch, saved_epoch);
		alarm_print(o, st.note, note, rep.reason);
		rc = CLI_FALSE;
		goto report;
	}
	if (resp != NULL && their_epoch > saved_epoch) {
		/* a restore was declared since the saved checkpoint: the log is
		 * verified again from entry 0 (the restored prefix is a copy
		 * nobody checked yet), comparing the saved checkpoint with the
		 * Epoch entry that followed it (store/verify.h: restore_*) */
		rete_verify_session_close(&sess);
		opt.since_note = st.note;
		opt.since_len = strlen(st.note);
		if ((e = rete_verify_session_open(&sess, &opt, NULL, &m)) != RETE_OK) {
			fprintf(stderr, "rete audit verify: the state file %s is refused: %s\n",
				o->state, m.text);
			goto out;
		}
		restoring = true;
		start = 0;
		if (!o->json)
			printf("the broker's log is in epoch %" PRIu32
			       ", the checkpoint saved in %s "
			       "is of epoch %" PRIu32 ": verifying the log again from entry 0\n",
			       their_epoch, o->state, saved_epoch);
	}
	e = rete_verify_session_target(sess, note, strlen(note), remote_proof, &r, &m);
	if (e == RETE_EPROOF && resp != NULL) {
		alarm = true;
		snprintf(rep.reason, sizeof(rep.reason), "%s", m.text);
		alarm_print(o, st.note, note, m.text);
		rc = CLI_FALSE;
		goto report;
	}
	if (e == RETE_EBADSIG || e == RETE_EPROOF) {
		snprintf(rep.reason, sizeof(rep.reason), "%s", m.text);
		if (!o->json)
			printf("the log does not verify: %s\n", m.text);
		rc = CLI_FALSE;
		goto report;
	}
	if (e != RETE_OK) {
		fprintf(stderr, "rete audit verify: %s\n", m.text);
		goto out;
	}
	/* the entries not verified yet, in batches; the next batch is asked for
	 * before this one is checked, so the broker and the wire work while we
	 * verify */
	target = rete_verify_session_target_size(sess);
	pend_from = rete_verify_session_size(sess);
	pending = pend_from < target;
	if (pending && (e = entries_ask(&r, pend_from, batch_of(pend_from, target, batch), &pend_id,
					&m)) != RETE_OK) {
		fprintf(stderr, "rete audit verify: asking for entries: %s\n", m.text);
		goto out;
	}
	while (pending) {
		uint64_t from = pend_from, want = batch_of(from, target, batch);
		const Rete__Entries *en;
		rete_buf *bufs;
		size_t k;

		pending = false;
		if ((e = entries_wait(&r, pend_id, from, &f, &m)) != RETE_OK) {
			if (progressed)
				fputc('\n', stderr);
			fprintf(stderr,
				"rete audit verify: fetching entries from %" PRIu64 ": %s\n", from,
				m.text[0] ? m.text : rete_strerror(e));
			goto out;
		}
		en = f->result->entries;
		k = en->n_entries < want ? en->n_entries : (size_t)want;
		if (k == 0) {
			rete__broker_frame__free_unpacked(f, NULL);
			f = NULL;
			snprintf(rep.reason, sizeof(rep.reason),
				 "the broker gives no entry %" PRIu64
				 " although its signed checkpoint covers %" PRIu64 " entries",
				 from, target);
			if (progressed)
				fputc('\n', stderr);
			if (!o->json)
				printf("the log does not verify: %s\n", rep.reason);
			rc = CLI_FALSE;
			goto report;
		}
		if ((bufs = calloc(k, sizeof(*bufs))) == NULL) {
			fprintf(stderr, "rete audit verify: out of memory\n");
			goto out;
		}
		for (size_t i = 0; i < k; i++) {
			bufs[i].data = en->entries[i].data;
			bufs[i].len = en->entries[i].len;
		}
		fetched += k;
		if (from + k < target) {
			pend_from = from + k;
			if ((e = entries_ask(&r, pend_from, batch_of(pend_from, target, batch),
					     &pend_id, &m)) != RETE_OK) {
				free(bufs);
				fprintf(stderr, "%srete audit verify: asking for entries: %s\n",
					progressed ? "\n" : "", m.text);
				goto out;
			}
			pending = true;
		}
		e = rete_verify_session_feed(sess, from, bufs, k, &m);
		free(bufs);
		rete__broker_frame__free_unpacked(f, NULL);
		f = NULL;
		if (tty) {
			progress(rete_verify_session_size(sess), target, start);
			progressed = true;
		}
		if (e != RETE_OK)
			break;
	}
	if (progressed)
		fputc('\n', stderr);
	e = rete_verify_session_finish(sess, &rep, &m);
	if (rep.verdict == RETE_VERIFY_ERROR) {
		fprintf(stderr, "rete audit verify: %s\n", m.text[0] ? m.text : rete_strerror(e));
		goto out;
	}
	if (rep.verdict == RETE_VERIFY_FAILS && restoring && e == RETE_EPROOF) {
		/* the broker's declaration contradicts what this auditor saw */
		alarm = true;
		alarm_print(o, st.note, note, rep.reason);
		rc = CLI_FALSE;
		goto report;
	}
	if (rep.verdict == RETE_VERIFY_FAILS) {
		if (!o->json) {
			printf("the log does not verify: %s\n", rep.reason);
			printf("(fetched %" PRIu64 " entries this run; %" PRIu64
			       " of them verified before the failure; the state in %s is kept "
			       "as it was)\n",
			       fetched, rep.entries, o->state);
		}
		rc = CLI_FALSE;
		goto report;
	}
	/* it holds: only now the new state replaces the old; the state of an
	 * earlier epoch is kept beside it (its note is the auditor's evidence
	 * of what the broker signed before the restore). A state that cannot
	 * be saved does not stop the report (nor the witnesses): the run ends
	 * in exit 2 when all else held. */
	if (restoring && (e = state_keep(o->state, saved_epoch, kept, sizeof(kept), &m)) != RETE_OK)
		saved = false;
	else if ((e = rete_verify_session_state(sess, &next, &m)) != RETE_OK ||
		 (e = audit_state_save(o->state, &next, r.r_cfg.id, r.r_sk, &m)) != RETE_OK)
		saved = false;
	else
		saved = true;
	if (!saved)
		fprintf(stderr,
			"rete audit verify: the log holds, but the state was not saved: %s; the "
			"state in %s is kept as it was\n",
			m.text, o->state);
	if (!o->json) {
		char *root = rete_b64_encode(rep.latest_root, RETE_MERKLE_HASH);
		printf("fetched %" PRIu64 " entries, verified %" PRIu64 " new entries (%" PRIu64
		       " to %" PRIu64 "); the log of %s holds up to its checkpoint of size %" PRIu64
		       " root %s\n",
		       fetched, rep.entries, start, rep.latest_size, rep.origin, rep.latest_size,
		       root != NULL ? root : "?");
		if (start > 0)
			printf("consistent with the checkpoint of size %" PRIu64 " saved in %s\n",
			       start, o->state);
		if (start > 0 && !restoring && !st.has_keys)
			printf(
			    "note: the state file %s, written by an earlier rete, keeps only the "
			    "directory in force, not each party's earlier keys: a key that "
			    "changes back, or a party added back under another key, is checked "
			    "from this run on (entry %" PRIu64 "); the new state keeps them\n",
			    o->state, start);
		audit_acks_print(&rep);
		audit_key_changes_print(changes, NULL, o->ini);
		audit_clock_print(&rep);
		if (rep.restored)
			audit_restore_print(&rep, o->state, kept);
		if (saved)
			printf("state saved in %s\n", o->state);
		free(root);
	}
	rc = CLI_OK;
	/* the log holds (and the state is saved): now the witnesses of its
	 * latest checkpoint, as the broker gave it with its cosignatures */
	witnesses_checked = o->witnesses != NULL;
	if (witnesses_checked) {
		/* the same checkpoint asked for again: cosignatures gathered while
		 * the log was being verified count too */
		char *again = NULL;
		if (remote_checkpoint_of(&r, rep.latest_size, &again, &m) == RETE_OK &&
		    same_checkpoint(note, again, rep.origin, &r.r_bk)) {
			free(note);
			note = again;
		} else {
			free(again);
		}
		witnesses_met =
		    audit_witnesses_check(o->witnesses, o->witnesses_path, note, o->json, NULL);
		if (!witnesses_met)
			rc = CLI_FALSE;
	}
report:
	if (o->json) {
		/* holds and verdict speak of the log; "witnesses" of its cosigners */
		bool held = rc == CLI_OK || (witnesses_checked && !witnesses_met);
		const char *verdict = held ? "holds" : "fails";
		rete_checkpoint cp;
		if (rep.origin[0] == '\0' &&
		    ((note != NULL &&
		      rete_checkpoint_parse(note, strlen(note), &cp, NULL) == RETE_OK) ||
		     (st.note != NULL &&
		      rete_checkpoint_parse(st.note, strlen(st.note), &cp, NULL) == RETE_OK)))
			snprintf(rep.origin, sizeof(rep.origin), "%s", cp.origin);
		j = json_object();
		json_object_set_new(j, "holds", json_boolean(held));
		json_object_set_new(j, "verdict", json_string(verdict));
		json_object_set_new(j, "alarm", json_boolean(alarm));
		json_object_set_new(j, "broker", json_string(r.r_endpoint));
		json_object_set_new(j, "origin", json_string(rep.origin));
		json_object_set_new(j, "fetched", json_integer((json_int_t)fetched));
		json_object_set_new(j, "entriesChecked", json_integer((json_int_t)rep.entries));
		json_object_set_new(j, "acksVerified", json_integer((json_int_t)rep.acks_verified));
		json_object_set_new(j, "acksUnsigned", json_integer((json_int_t)rep.acks_unsigned));
		json_object_set(j, "keyChanges", changes);
		json_object_set_new(j, "keyChangesBack",
				    json_integer((json_int_t)rep.key_changes_back));
		/* the entry the key history starts from (a state file of an
		 * earlier rete kept none: from this run on) */
		json_object_set_new(
		    j, "keyHistoryFrom",
		    json_integer(
			(json_int_t)(resp != NULL && !restoring && !st.has_keys ? start : 0)));
		json_t *clock = audit_clock_json(&rep);
		if (clock != NULL)
			json_object_set_new(j, "clock", clock);
		json_object_set_new(j, "fromSize", json_integer((json_int_t)start));
		json_object_set_new(j, "savedCheckpoint", ckpt_json(st.note));
		json_object_set_new(j, "brokerCheckpoint", ckpt_json(note));
		if (rep.has_bad_entry)
			json_object_set_new(j, "badEntry", json_integer((json_int_t)rep.bad_index));
		if (rep.reason[0] != '\0')
			json_object_set_new(j, "reason", json_string(rep.reason));
		if (rep.restored)
			json_object_set_new(j, "restore", audit_restore_json(&rep, kept));
		json_object_set_new(j, "stateFile", json_string(o->state));
		json_object_set_new(j, "stateSaved", json_boolean(saved));
		if (witnesses_checked)
			audit_witnesses_check(o->witnesses, o->witnesses_path, note, true, j);
		if (json_dumpf(j, stdout, JSON_INDENT(2)) != 0 || fputc('\n', stdout) == EOF)
			rc = CLI_USAGE;
		json_decref(j);
	}
	if (fflush(stdout) != 0)
		rc = CLI_USAGE;
	if (rc == CLI_OK && !saved)
		rc = CLI_USAGE; /* all held, but the next run cannot start from here */
out:
	if (f != NULL)
		rete__broker_frame__free_unpacked(f, NULL);
	rete_verify_session_close(&sess);
	free(note);
	audit_state_free(&st);
	remote_close(&r);
	json_decref(changes);
	return rc;
}

/* ---- rete audit timeline -c ----------------------------------------------------- */

int audit_remote_case_entries(const char *ini, const char *case_id, const char *who,
			      audit_entry_fn fn, void *ctx)
{
	struct remote r;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	uint64_t from = 0;
	rete_err e;
	int rc = CLI_OK;

	if ((e = remote_open(&r, ini, NULL, &m)) != RETE_OK) {
		fprintf(stderr, "rete audit %s: %s\n", who, m.text[0] ? m.text : rete_strerror(e));
		remote_close(&r);
		return CLI_USAGE;
	}
	/* no query by case: the whole log, by range, filtered here */
	for (;;) {
		const Rete__Entries *en;
		uint64_t id = 0;
		if ((e = entries_ask(&r, from, BATCH, &id, &m)) != RETE_OK ||
		    (e = entries_wait(&r, id, from, &f, &m)) != RETE_OK) {
			fprintf(stderr, "rete audit %s: fetching entries from %" PRIu64 ": %s\n",
				who, from, m.text[0] ? m.text : rete_strerror(e));
			rc = CLI_USAGE;
			break;
		}
		en = f->result->entries;
		if (en->n_entries == 0)
			break;
		for (size_t i = 0; rc == CLI_OK && i < en->n_entries; i++) {
			rete_buf raw = {en->entries[i].data, en->entries[i].len};
			Rete__LogEntry *le = rete__log_entry__unpack(NULL, raw.len, raw.data);
			Rete__Message *msg = NULL;
			bool mine = false;
			if (le != NULL &&
			    rete_signed_decode(le->signed_message.data, le->signed_message.len,
					       NULL, &msg, NULL) == RETE_OK)
				mine = msg->case_id != NULL && strcmp(msg->case_id, case_id) == 0;
			if (msg != NULL)
				rete__message__free_unpacked(msg, NULL);
			if (le != NULL)
				rete__log_entry__free_unpacked(le, NULL);
			if (mine)
				rc = fn(ctx, from + i, &raw);
		}
		from += en->n_entries;
		rete__broker_frame__free_unpacked(f, NULL);
		f = NULL;
		if (rc != CLI_OK)
			break;
	}
	if (f != NULL)
		rete__broker_frame__free_unpacked(f, NULL);
	remote_close(&r);
	return rc;
}
