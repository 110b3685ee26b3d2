/* agent_outbox.c — outbox files in, SUBMITs out, receipts to sent/ and
 * refusals to failed/ (see agent.h).
 *
 * The order of the durable steps is what makes a crash harmless:
 *   1. (name, content hash) -> message id is committed before anything
 *      else, so the same file always gets the same id;
 *   2. the signed and sealed bytes are committed before the first SUBMIT,
 *      so a resubmission after a restart is byte for byte the same and the
 *      broker's dedup answers it with the original receipt;
 *   3. the receipt (or error) file is written before the file leaves
 *      outbox/, and the record is forgotten only after it has left.
 *
 * A receipt (protocol 3) is an inclusion proof, believed only when it
 * proves our own bytes in the log: its checkpoint note verifies with the
 * pinned broker key and names our log, its epoch is not older than the
 * WELCOME's, the index is below the note's size, and the RFC 6962 leaf of
 * the entry the broker says it wrote (index, loggedAt, our SignedMessage
 * bytes) with the proof gives the note's root. Anything else is a witness
 * alarm; the file stays in outbox/ and is submitted again.
 *
 * The sender is responsible until the delivery receipt: with the receipt,
 * the signed bytes and the sealed part move from the outbox record to the
 * "held" database, where they stay until the broker's Delivery entry for
 * the message reaches our inbox (or a final non-delivery notice). On any
 * sign that the broker's log lost what it receipted (a new log epoch, a
 * witness alarm, another entry at a log index we recorded) a resubmission
 * round begins: its number and reason are committed first (meta "round",
 * "resubmit", with the sign when it is ours to record), then every held
 * message is submitted again, the same bytes, as an item with no file, one
 * at a time in the order of the log index of its latest receipt (a
 * referral's update must not reach a restored broker before the referral).
 * Each receipt of the round is recorded with the round's number; while the
 * round is not complete every WELCOME (after a restart too) submits again
 * the held messages it has not receipted yet, and once none is left the
 * "resubmit" marker goes. A held message that ends with a final refusal
 * (or cannot be sent at all) is answered with a file of its own,
 * failed/held-ID.error.json: its outbox file went to sent/ long ago.
 *
 * Resending is idempotent: every receipted id keeps the SHA-256 of the
 * file's canonical JSON and its receipt ("ids"); a file with that id and
 * that content gets the same receipt in sent/, one with other content is
 * refused id-reused, naming the log index of the first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "agent_keys.h"
#include "agent_spool.h"
#include "agent_track.h"
#include "checkpoint.h"
#include "duration.h"
#include "json.h"
#include "merkle.h"
#include "validate.h"

#define OUT_FILE_MAX (16u << 20) /* an outbox file larger than this is refused */

struct agent_out_item {
	char name[256];
	uint8_t hash[RETE_HASH_LEN];
	char id[128];
	int state; /* AGENT_OUT_MINTED (needs the directory) or SIGNED */
	rete_buf signed_msg;
	rete_buf sealed;
	int64_t minted_at;		/* when the id was recorded: the default createdAt */
	int64_t sent_at;		/* last SUBMIT on this connection, 0 = none */
	int64_t retry_at;		/* not before (after a "busy" answer) */
	int64_t waiting_since;		/* first SUBMIT on this connection still without any
					   answer (0: none waits): out_stall_check */
	bool seen;			/* still in outbox/ at the last scan */
	bool held;			/* a held message submitted again: no file (name "") */
	uint64_t held_index;		/* held: log index of its latest receipt (the order) */
	int held_tries;			/* held: refusals that may be the order's (see below) */
	uint8_t content[RETE_HASH_LEN]; /* SHA-256 of the file's canonical JSON */
	agent_spool_ident ident;	/* what the file was when read (device, inode, hash) */
	bool left;			/* its file left outbox/ after it was sealed (said once) */
	bool no_content;		/* content unknown: taken back from a schema-2 record whose
					   file had left outbox/ (its id gets no "ids" record) */
};

typedef struct agent_out_item out_item;

/* An outbox file not taken in yet (out_settled). */
struct agent_out_look {
	char *name;
	bool closed; /* inotify: closed after writing, or moved in */
	bool known;  /* size and mtime below were seen */
	bool gone;   /* taken in by this scan: forgotten at the next */
	off_t size;
	int64_t mtime; /* ms */
};

static void item_clear(out_item *it)
{
	rete_buf_free(&it->signed_msg);
	rete_buf_free(&it->sealed);
}

static void item_remove(agent *a, size_t i)
{
	item_clear(&a->out_items[i]);
	a->out_items[i] = a->out_items[a->out_n - 1];
	a->out_n--;
}

static out_item *item_add(agent *a)
{
	if (a->out_n == a->out_cap) {
		size_t nc = a->out_cap ? a->out_cap * 2 : 64;
		out_item *v = realloc(a->out_items, nc * sizeof(*v));
		if (v == NULL)
			return NULL;
		a->out_items = v;
		a->out_cap = nc;
	}
	out_item *it = &a->out_items[a->out_n++];
	memset(it, 0, sizeof(*it));
	return it;
}

bool agent_outbox_submitted_here(const agent *a, const char *id)
{
	for (size_t i = 0; i < a->out_n; i++)
		if (a->out_items[i].sent_at != 0 && strcmp(a->out_items[i].id, id) == 0)
			return true;
	return false;
}

bool agent_outbox_awaits_receipt(const agent *a, const char *id)
{
	for (size_t i = 0; i < a->out_n; i++)
		if (!a->out_items[i].held && a->out_items[i].state == AGENT_OUT_SIGNED &&
		    strcmp(a->out_items[i].id, id) == 0)
			return true;
	return false;
}

void agent_outbox_free(agent *a)
{
	for (size_t i = 0; i < a->out_n; i++)
		item_clear(&a->out_items[i]);
	free(a->out_items);
	a->out_items = NULL;
	a->out_n = a->out_cap = 0;
	for (size_t i = 0; i < a->out_said_n; i++)
		free(a->out_said[i]);
	free(a->out_said);
	a->out_said = NULL;
	a->out_said_n = 0;
	free(a->out_note);
	a->out_note = NULL;
	for (size_t i = 0; i < a->out_looks_n; i++)
		free(a->out_looks[i].name);
	free(a->out_looks);
	a->out_looks = NULL;
	a->out_looks_n = a->out_looks_cap = a->out_looks_sorted = 0;
}

/* --- failed/ ------------------------------------------------------------- */

/* out_said: has the log already said that outbox/name cannot be answered?
 * Remembers it when not (so the line comes once, not at every scan). */
static bool out_said(agent *a, const char *name)
{
	for (size_t i = 0; i < a->out_said_n; i++)
		if (strcmp(a->out_said[i], name) == 0)
			return true;
	char **v = realloc(a->out_said, (a->out_said_n + 1) * sizeof(*v));
	if (v == NULL)
		return false;
	a->out_said = v;
	if ((v[a->out_said_n] = strdup(name)) != NULL)
		a->out_said_n++;
	return false;
}

/* out_said_forget forgets the names that have left outbox/ (names: the
 * sorted listing of the last scan, regular and other entries). */
static void out_said_forget(agent *a, char **names, size_t n, char **others, size_t no)
{
	for (size_t i = 0; i < a->out_said_n;) {
		const char *s = a->out_said[i];
		bool there = false;
		for (size_t k = 0; !there && k < n; k++)
			there = strcmp(names[k], s) == 0;
		for (size_t k = 0; !there && k < no; k++)
			there = strcmp(others[k], s) == 0;
		if (there) {
			i++;
			continue;
		}
		free(a->out_said[i]);
		a->out_said[i] = a->out_said[--a->out_said_n];
	}
}

/* --- files still being written ------------------------------------------ */

/* A file the periodic scan finds in outbox/ may still be open and growing:
 * the contract is "write under a temporary name, then rename", but a file
 * written in place (an ETL tool, a share, a `cp` of a big file) was read
 * half-written and refused `invalid`, while the writer's descriptor went on
 * filling it in failed/ (s16 rev-edges 6). inotify says when a file is
 * closed after writing or moved in; a file the scan finds without that word
 * waits while it is younger than OUT_SETTLE_MS or its size or time changed
 * since the last look, and one that ends before its JSON does is looked at
 * again until OUT_PARTIAL_MS after its last change. */
#define OUT_SETTLE_MS  2000
#define OUT_PARTIAL_MS 10000

/* The looks are kept sorted by name up to out_looks_sorted (made so at
 * each scan, out_looks_prepare); those added since (inotify's names, the
 * files this scan holds back) follow unsorted. A burst of thousands of
 * files costs a sort a scan, not a search of the whole list per file. */
static int look_cmp(const void *x, const void *y)
{
	return strcmp(((const struct agent_out_look *)x)->name,
		      ((const struct agent_out_look *)y)->name);
}

/* out_look_find: the look of name among the sorted ones (a scan asks for
 * each name once, so those added during it need no search), or NULL. */
static struct agent_out_look *out_look_find(agent *a, const char *name)
{
	struct agent_out_look key = {.name = (char *)name};
	if (a->out_looks_sorted == 0) /* none: out_looks may be NULL, which bsearch may not be given */
		return NULL;
	struct agent_out_look *lk =
	    bsearch(&key, a->out_looks, a->out_looks_sorted, sizeof(key), look_cmp);
	return lk != NULL && !lk->gone ? lk : NULL;
}

/* out_look_append adds a look of name at the end (unsorted); NULL when
 * out of memory (the file is then taken as before: nothing is lost). */
static struct agent_out_look *out_look_append(agent *a, const char *name)
{
	if (a->out_looks_n == a->out_looks_cap) {
		size_t nc = a->out_looks_cap ? a->out_looks_cap * 2 : 16;
		struct agent_out_look *v = realloc(a->out_looks, nc * sizeof(*v));
		if (v == NULL)
			return NULL;
		a->out_looks = v;
		a->out_looks_cap = nc;
	}
	char *copy = strdup(name);
	if (copy == NULL)
		return NULL;
	struct agent_out_look *lk = &a->out_looks[a->out_looks_n++];
	*lk = (struct agent_out_look){.name = copy};
	return lk;
}

/* out_look_get: the look of name (out_look_find), or a new one. */
static struct agent_out_look *out_look_get(agent *a, const char *name)
{
	struct agent_out_look *lk = out_look_find(a, name);
	return lk != NULL ? lk : out_look_append(a, name);
}

void agent_outbox_closed(agent *a, const char *name)
{
	/* appended: merged with the look of the same name at the next scan */
	struct agent_out_look *lk = out_look_append(a, name);
	if (lk != NULL)
		lk->closed = true;
	a->out_rescan = true;
}

static bool name_listed(char **names, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(names[mid], name);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* out_looks_prepare, at the start of a scan, sorts the looks, merges those
 * of one name (a close event and a held-back file: closed wins, the size
 * and time seen are kept), and forgets the looks taken (gone) and those of
 * names no longer in outbox/ (names: the scan's sorted listing), so that
 * the list is never longer than the folder plus a scan's events. */
static void out_looks_prepare(agent *a, char **names, size_t n)
{
	struct agent_out_look *v = a->out_looks;
	size_t k = 0;
	if (a->out_looks_n > 1) /* none yet: v is NULL, which qsort may not be given */
		qsort(v, a->out_looks_n, sizeof(*v), look_cmp);
	for (size_t i = 0; i < a->out_looks_n; i++) {
		if (v[i].gone || !name_listed(names, n, v[i].name)) {
			free(v[i].name);
			continue;
		}
		if (k > 0 && strcmp(v[k - 1].name, v[i].name) == 0) {
			v[k - 1].closed |= v[i].closed;
			if (!v[k - 1].known && v[i].known) {
				v[k - 1].known = true;
				v[k - 1].size = v[i].size;
				v[k - 1].mtime = v[i].mtime;
			}
			free(v[i].name);
			continue;
		}
		v[k++] = v[i];
	}
	a->out_looks_n = a->out_looks_sorted = k;
}

enum { OUT_WAIT, OUT_TAKE, OUT_TAKE_CLOSED };

/* out_recorded: are outbox/name's bytes those of a record in the agent's
 * store (a file taken in before a restart, held until its receipt or
 * delivery)? It was whole when recorded: no need to wait for it to
 * settle, and a delivery that comes before its receipt must find it held
 * (test_delivery_proof test_early_delivery). */
static bool out_recorded(agent *a, const char *name)
{
	char *text = NULL;
	size_t len = 0;
	rete_msg m = {{0}};
	agent_outrec rec;
	agent_spool_ident ident;
	uint8_t hash[RETE_HASH_LEN];
	if (agent_spool_read_ident(a->outbox_dir, name, OUT_FILE_MAX, &text, &len, &ident, &m) !=
	    RETE_OK)
		return false;
	rete_sha256(hash, text, len);
	free(text);
	memset(&rec, 0, sizeof(rec));
	bool known = agent_db_outbox_get(a->db, name, hash, &rec, &m) == RETE_OK;
	agent_outrec_free(&rec);
	return known;
}

/* out_settled: may outbox/name be read now? OUT_TAKE_CLOSED when inotify
 * said it was closed or moved in since; OUT_TAKE when it is older than
 * OUT_SETTLE_MS and, if it was looked at before, unchanged since, or, at
 * its first look, when its bytes are a record's (out_recorded); else
 * OUT_WAIT, its size and time remembered for the next scan. *mtime gets its
 * time (ms; 0 when it cannot be had: then it is taken, and the reading
 * says what is wrong). */
static int out_settled(agent *a, const char *name, int64_t now, int64_t *mtime)
{
	char path[4400];
	struct stat st;
	struct agent_out_look *lk = out_look_find(a, name);
	*mtime = 0;
	snprintf(path, sizeof(path), "%s/%s", a->outbox_dir, name);
	if (lstat(path, &st) != 0)
		return OUT_TAKE;
	*mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	if (lk != NULL && lk->closed) {
		lk->gone = true;
		return OUT_TAKE_CLOSED;
	}
	/* a time ahead of this machine's clock (a share's server) is not
	 * young: only a change between two looks holds it back */
	bool young = *mtime <= now && now - *mtime < OUT_SETTLE_MS;
	bool changed =
	    lk == NULL ? *mtime > now : !lk->known || lk->size != st.st_size || lk->mtime != *mtime;
	if ((!young && !changed) || (lk == NULL && out_recorded(a, name))) {
		if (lk != NULL)
			lk->gone = true;
		return OUT_TAKE;
	}
	if (lk == NULL)
		lk = out_look_append(a, name);
	if (lk == NULL)
		return OUT_TAKE; /* out of memory: as before */
	lk->known = true;
	lk->size = st.st_size;
	lk->mtime = *mtime;
	return OUT_WAIT;
}

/* out_as_sent makes the JSON of a signed message as it was sent (the
 * fallback of an answer whose outbox file was replaced): the message, its
 * sealed part only as the hash it was signed with. */
static rete_err out_as_sent(void *user, char **data, size_t *len)
{
	const rete_buf *sm_bytes = user;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_msg m = {{0}};
	if (rete_signed_decode(sm_bytes->data, sm_bytes->len, &sm, &msg, &m) != RETE_OK)
		return RETE_EDECODE;
	json_t *j = rete_pb_to_json(&msg->base);
	char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	rete__message__free_unpacked(msg, NULL);
	rete__signed_message__free_unpacked(sm, NULL);
	if (text == NULL)
		return RETE_ENOMEM;
	size_t l = strlen(text);
	char *t = realloc(text, l + 2);
	if (t == NULL) {
		free(text);
		return RETE_ENOMEM;
	}
	t[l] = '\n';
	t[l + 1] = '\0';
	*data = t;
	*len = l + 1;
	return RETE_OK;
}

/* out_forget forgets the outbox record of (name, hash) once its file has
 * been answered, in one transaction with the person-index line of the move
 * (agent_privacy_filed, staged): a stop before it commits leaves the record
 * (the move is recorded at the next start, agent_outbox_settle), after it
 * the line is in the journal. Within an open transaction, it joins it. */
static void out_forget(agent *a, const char *name, const uint8_t *hash)
{
	rete_msg m = {{0}};
	bool own = !agent_db_in_txn(a->db);
	rete_err err = RETE_OK;
	/* its own transaction is done again once when the map was full */
	for (int attempt = 0; attempt < (own ? 2 : 1); attempt++) {
		err = own ? agent_db_begin(a->db, &m) : RETE_OK;
		if (err == RETE_OK)
			err = agent_privacy_journal(a, &m);
		if (err == RETE_OK)
			err = agent_db_outbox_del(a->db, name, hash, &m);
		if (own)
			err = agent_db_end(a->db, err, &m);
		if (err != RETE_EFULL)
			break;
	}
	if (own && err == RETE_OK)
		agent_privacy_written(a);
	if (err != RETE_OK)
		agent_log(a, "error", "%s: %s", name, m.text);
}

/* out_where_said writes where problem p is, as the log may say it: its
 * field path, or, for a key the schema does not know (its name is the
 * file's own text) or a path of other characters, "an unknown key" / "a
 * key of the file"; a problem of the whole file with the parser's line and
 * column from error. */
static void out_where_said(char *buf, size_t n, const rete_problem *p, const char *error)
{
	unsigned line, col;
	const char *at = error != NULL ? strstr(error, "line ") : NULL;
	if (p->path[0] == '\0' && at != NULL && sscanf(at, "line %u, column %u", &line, &col) == 2)
		snprintf(buf, n, "the file, line %u, column %u", line, col);
	else if (p->path[0] == '\0')
		snprintf(buf, n, "the file");
	else if (strncmp(p->text, "unknown field", 13) == 0)
		snprintf(buf, n, "an unknown key");
	else if (strspn(p->path,
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._[]") ==
		 strlen(p->path))
		snprintf(buf, n, "%s", p->path);
	else
		snprintf(buf, n, "a key of the file");
}

/* out_problems_said writes into buf what the log says of a refusal's
 * problems: how many and where (out_where_said). Never the sentences: they
 * quote what they refuse ("'Maria Rossi' is not accepted", the parser's
 * "near '...'"), and the journal is beyond keep_failed and `rete sar`;
 * they are in the answer's NAME.error.json. */
static void out_problems_said(char *buf, size_t n, const rete_problems *p, const char *error)
{
	size_t used = (size_t)snprintf(buf, n, "%zu problem%s (", p->n, p->n == 1 ? "" : "s");
	for (size_t i = 0; i < p->n && used < n; i++) {
		char where[160];
		if (i == 8 && p->n > 9) {
			used += (size_t)snprintf(buf + used, n - used, ", and %zu more", p->n - i);
			break;
		}
		out_where_said(where, sizeof(where), &p->items[i], error);
		used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", where);
	}
	if (used < n)
		snprintf(buf + used, n - used, ")");
}

/* out_fail_doc moves outbox/name to failed/ with NAME.error.json beside it
 * (agent_spool_answer_put: never overwriting, across file systems, only
 * while it is still orig; else the fallback: text, or the message as
 * signed, is written in its place). problems (may be NULL) adds one entry
 * per problem; signed_refusal (may be NULL), the broker's SignedRefusal in
 * base64, goes in as "signedRefusal". A file that cannot be answered is
 * said in the log once. */
static void out_fail_doc(agent *a, const char *name, const agent_spool_ident *orig,
			 const rete_buf *signed_msg, const void *text_in, size_t text_len,
			 const uint8_t *hash, const char *id, const char *code, const char *field,
			 const char *error, const rete_problems *problems,
			 const char *signed_refusal, const char *note)
{
	rete_msg m = {{0}};
	json_t *doc = json_object();

	if (doc == NULL)
		return;
	json_object_set_new(doc, "file", agent_spool_name_json(name));
	if (id != NULL && id[0] != '\0')
		json_object_set_new(doc, "messageId", json_string(id));
	json_object_set_new(doc, "code", json_string(code));
	if (field != NULL && field[0] != '\0')
		json_object_set_new(doc, "field", json_string(field));
	json_object_set_new(doc, "error", json_string(error));
	if (problems != NULL && problems->n > 0) {
		json_t *arr = json_array();
		for (size_t i = 0; i < problems->n; i++) {
			json_t *p = json_object();
			json_object_set_new(p, "field", json_string(problems->items[i].path));
			json_object_set_new(p, "error", json_string(problems->items[i].text));
			json_array_append_new(arr, p);
		}
		json_object_set_new(doc, "problems", arr);
	}
	/* the broker's signed statement of the refusal (protocol 3): the
	 * sender's proof that it was refused and why */
	if (signed_refusal != NULL)
		json_object_set_new(doc, "signedRefusal", json_string(signed_refusal));
	/* what the agent itself knows of the refusal (out_refusal_note) */
	if (note != NULL && note[0] != '\0')
		json_object_set_new(doc, "agentNote", json_string(note));
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		return;
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL; written with its length */
	agent_spool_answer ans = {.from_dir = a->outbox_dir,
				  .name = name,
				  .orig = orig,
				  .to_dir = a->failed_dir,
				  .suffix = ".error.json",
				  .companion = text,
				  .companion_len = len + 1,
				  .id = id != NULL && id[0] != '\0' ? id : NULL,
				  .fallback = text_in,
				  .fallback_len = text_len};
	if (text_in == NULL && signed_msg != NULL && signed_msg->len > 0) {
		ans.fallback_fn = out_as_sent;
		ans.fallback_user = (void *)signed_msg;
	}
	rete_err err = agent_spool_answer_put(&ans, &m);
	free(text);
	if (err == RETE_ENOENT) {
		agent_debug(a, "%s: left outbox/ before its answer (%s)", name, code);
		return;
	}
	/* the problems of the file's content: where they are, not what they
	 * say (out_problems_said) */
	char said[1200], field_said[160];
	bool quoted = problems != NULL && problems->n > 0;
	if (quoted) {
		out_problems_said(said, sizeof(said), problems, error);
		/* the lead field, as the log may say it */
		for (size_t i = 0; field != NULL && field[0] && i < problems->n; i++)
			if (strcmp(problems->items[i].path, field) == 0) {
				out_where_said(field_said, sizeof(field_said), &problems->items[i],
					       error);
				field = field_said;
				break;
			}
	}
	if (err != RETE_OK) {
		/* once, not at every scan (it is tried again at each one) */
		if (!out_said(a, name))
			agent_log(a, "error",
				  "%s: refused (%s: %s), but cannot move it to failed/: %s; "
				  "trying again at each scan",
				  name, code, quoted ? said : error, m.text);
		return;
	}
	agent_privacy_filed(a, "failed", id, ans.used, NULL);
	if (note != NULL && note[0] != '\0')
		agent_log(a, "warning", "%s: %s", name, note);
	agent_log(a, "warning", "%s: refused (%s%s%s): %s%s%s%s; moved to failed/%s%s", name, code,
		  field && field[0] ? ", " : "", field ? field : "", quoted ? said : error,
		  quoted ? "; what is wrong and what would be accepted: failed/" : "",
		  quoted ? ans.used : "",
		  quoted ? ".error.json (not said here: it quotes the file, which may name a "
			   "person)"
			 : "",
		  ans.used,
		  ans.replaced ? " (what was refused: outbox/ holds another file of that name now, "
				 "taken in as a new file)"
			       : "");
	if (ans.replaced)
		a->out_rescan = true;
	if (hash != NULL)
		out_forget(a, name, hash);
}

/* out_fail_ex is out_fail_doc without a signed refusal. */
static void out_fail_ex(agent *a, const char *name, const agent_spool_ident *orig,
			const rete_buf *signed_msg, const void *text_in, size_t text_len,
			const uint8_t *hash, const char *id, const char *code, const char *field,
			const char *error, const rete_problems *problems)
{
	out_fail_doc(a, name, orig, signed_msg, text_in, text_len, hash, id, code, field, error,
		     problems, NULL, NULL);
}

/* out_fail answers the outbox file of an item (found by name) in failed/. */
static void out_fail(agent *a, const char *name, const uint8_t *hash, const char *id,
		     const char *code, const char *field, const char *error,
		     const rete_problems *problems)
{
	const struct agent_out_item *it = NULL;
	for (size_t i = 0; i < a->out_n && it == NULL; i++)
		if (strcmp(a->out_items[i].name, name) == 0)
			it = &a->out_items[i];
	out_fail_ex(a, name, it ? &it->ident : NULL,
		    it && it->state == AGENT_OUT_SIGNED ? &it->signed_msg : NULL, NULL, 0, hash, id,
		    code, field, error, problems);
}

/* --- intake -------------------------------------------------------------- */

static void mint_id(char out[128])
{
	uint8_t rnd[16];
	char hex[33];
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(out, 128, "m-%s", hex);
}

/* Outcomes of out_prepare. */
enum { PREP_SIGNED, PREP_WAIT, PREP_FAILED, PREP_RETRY };

static ProtobufCBinaryData *body_private_hash(Rete__Message *msg)
{
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		return &msg->referral->private_sha256;
	case RETE__MESSAGE__BODY_UPDATE:
		return &msg->update->private_sha256;
	case RETE__MESSAGE__BODY_NOTE:
		return &msg->note->private_sha256;
	default:
		return NULL;
	}
}

static bool replace_str(char **slot, const char *v)
{
	char *s = strdup(v);
	if (s == NULL)
		return false;
	/* Strings of a mapped message belong to the system allocator; the
	 * schema's default for an empty string is a static "" that must not be
	 * freed, so only free what is not that default. */
	if (*slot != NULL && *slot != protobuf_c_empty_string)
		free(*slot);
	*slot = s;
	return true;
}

/* out_check_pin compares the directory's key of party with the one pinned
 * on first use; pins it when new. false (and a sentence) when it changed. */
static bool out_check_pin(agent *a, const Rete__Party *party, char *why, size_t n)
{
	rete_buf pinned;
	rete_msg m = {{0}};
	const char *id = party->id;
	rete_err err = agent_db_get(a->db, AGENT_DB_PINS, id, strlen(id), &pinned, &m);

	if (err == RETE_ENOENT) {
		if (agent_db_put(a->db, AGENT_DB_PINS, id, strlen(id), party->public_key.data,
				 party->public_key.len, &m) != RETE_OK) {
			snprintf(why, n, "cannot pin the key of %s: %s", id, m.text);
			return false;
		}
		agent_log(a, "info", "pinned the key of %s on first use", id);
		return true;
	}
	if (err != RETE_OK) {
		snprintf(why, n, "cannot read the pinned key of %s: %s", id, m.text);
		return false;
	}
	bool same = pinned.len == party->public_key.len &&
		    sodium_memcmp(pinned.data, party->public_key.data, pinned.len) == 0;
	rete_buf_free(&pinned);
	if (same)
		return true;
	/* the key this agency's operator confirmed in advance (--trust) */
	if (party->public_key.len == RETE_PK_LEN &&
	    agent_keys_take_advance(a, id, party->public_key.data))
		return true;
	agent_db_put(a->db, AGENT_DB_PENDING, id, strlen(id), party->public_key.data,
		     party->public_key.len, &m);
	/* The directory's key is not shown: copied from here into --trust it
	 * would confirm whatever the broker says, the very swap the pin stops. */
	snprintf(why, n,
		 "the directory shows a new key for %s, different from the one pinned on first "
		 "use; personal data is not sealed to it until an operator confirms it: obtain "
		 "%s's new public key from that agency through another channel (phone, letter, "
		 "in person; never from the directory or this message), then run rete-agent -c "
		 "agent.ini --trust %s --key KEY with KEY the key they gave you: it is confirmed "
		 "only if it is the directory's",
		 id, id, id);
	return false;
}

/* out_prepare maps, validates, fills, seals and signs one file whose id is
 * recorded; on success the item holds the signed bytes (not yet durable:
 * the caller commits them before the first SUBMIT). */
static int out_prepare(agent *a, out_item *it, const char *text, size_t len)
{
	rete_problems problems = {0};
	json_t *doc = NULL;
	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	rete_msg m = {{0}};
	char why[600];
	int rc = PREP_FAILED;

	if (rete_json_loadb(text, len, it->name, &doc, &m) != RETE_OK) {
		rete_problems_add(&problems, "", "%s", m.text);
		out_fail(a, it->name, it->hash, it->id, "invalid", "", m.text, &problems);
		goto out;
	}
	if (rete_json_load_outbox(NULL, doc, &msg, &priv, &problems) != RETE_OK ||
	    rete_validate_message(msg, priv, RETE_VALIDATE_DRAFT, &problems) != RETE_OK) {
		/* personal data or free text in the metadata leads, with the
		 * broker's code for it (protocol 3): never signed nor sent */
		size_t k = rete_validate_lead(&problems);
		bool personal = problems.n > 0 && problems.items[k].error ==
						      RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA;
		snprintf(why, sizeof(why), "%zu problem%s: %s%s%s", problems.n,
			 problems.n == 1 ? "" : "s", problems.n ? problems.items[k].path : "",
			 problems.n && problems.items[k].path[0] ? ": " : "",
			 problems.n ? problems.items[k].text : "does not map");
		out_fail(a, it->name, it->hash, it->id, personal ? "personal-data" : "invalid",
			 problems.n ? problems.items[k].path : "", why, &problems);
		goto out;
	}
	if (msg->sender != NULL && msg->sender[0] != '\0' && strcmp(msg->sender, a->cfg.id) != 0) {
		snprintf(why, sizeof(why),
			 "sender '%s' is not this agency; leave it out or write '%s'", msg->sender,
			 a->cfg.id);
		out_fail(a, it->name, it->hash, it->id, "sender-mismatch", "sender", why, NULL);
		goto out;
	}
	if (msg->id != NULL && msg->id[0] != '\0' && strcmp(msg->id, it->id) != 0) {
		/* The file was read again with another id than recorded: cannot
		 * happen for the same content hash, but never sign a second id. */
		snprintf(why, sizeof(why),
			 "id '%s' differs from the id recorded for this file (%s)", msg->id,
			 it->id);
		out_fail(a, it->name, it->hash, it->id, "invalid", "id", why, NULL);
		goto out;
	}
	if (!a->welcomed || a->dir == NULL) {
		rc = PREP_WAIT;
		goto out;
	}
	if (msg->origin != NULL && msg->origin[0] != '\0' && strcmp(msg->origin, a->origin) != 0) {
		snprintf(why, sizeof(why), "origin '%s' is not this broker's log ('%s')",
			 msg->origin, a->origin);
		out_fail(a, it->name, it->hash, it->id, "wrong-origin", "origin", why, NULL);
		goto out;
	}
	const Rete__Party *party = agent_directory_party(a->dir, msg->recipient);
	if (party == NULL || party->public_key.len != RETE_PK_LEN) {
		snprintf(why, sizeof(why),
			 "recipient '%s' is not in the broker's directory; check the party id",
			 msg->recipient);
		out_fail(a, it->name, it->hash, it->id, "unknown-party", "recipient", why, NULL);
		goto out;
	}
	if (!out_check_pin(a, party, why, sizeof(why))) {
		out_fail(a, it->name, it->hash, it->id, "key-changed", "recipient", why, NULL);
		goto out;
	}
	if (!replace_str(&msg->sender, a->cfg.id) || !replace_str(&msg->id, it->id) ||
	    !replace_str(&msg->origin, a->origin)) {
		rc = PREP_RETRY;
		goto out;
	}
	if (msg->created_at == 0)
		msg->created_at = it->minted_at;
	if (priv != NULL) {
		rete_pubkey rpk;
		uint8_t hash[RETE_HASH_LEN];
		ProtobufCBinaryData *slot = body_private_hash(msg);
		if (slot == NULL ||
		    rete_pubkey_from_ed(&rpk, party->public_key.data, &m) != RETE_OK ||
		    rete_seal(priv, &rpk, &it->sealed, hash, &m) != RETE_OK) {
			snprintf(why, sizeof(why), "cannot seal the private part to %s: %s",
				 msg->recipient,
				 slot == NULL ? "this body has no sealed part" : m.text);
			out_fail(a, it->name, it->hash, it->id, "invalid", "private", why, NULL);
			goto out;
		}
		free(slot->data);
		slot->data = malloc(RETE_HASH_LEN);
		if (slot->data == NULL) {
			slot->len = 0;
			rc = PREP_RETRY;
			goto out;
		}
		memcpy(slot->data, hash, RETE_HASH_LEN);
		slot->len = RETE_HASH_LEN;
	}
	if (rete_message_sign(msg, a->sk, &it->signed_msg, &m) != RETE_OK) {
		agent_log(a, "error", "%s: cannot sign: %s", it->name, m.text);
		rc = PREP_RETRY;
		goto out;
	}
	agent_privacy_sealed(a, it->name, msg, priv);
	it->state = AGENT_OUT_SIGNED;
	rc = PREP_SIGNED;
out:
	if (rc != PREP_SIGNED) {
		rete_buf_free(&it->signed_msg);
		rete_buf_free(&it->sealed);
	}
	if (msg != NULL)
		protobuf_c_message_free_unpacked(&msg->base, NULL);
	if (priv != NULL)
		protobuf_c_message_free_unpacked(&priv->base, NULL);
	json_decref(doc);
	rete_problems_free(&problems);
	return rc;
}

/* out_content_hash: SHA-256 of the file as the agency wrote it, in
 * canonical form (keys sorted, no spaces), so that the same message written
 * again with other spacing or key order is the same; a file that is not
 * JSON hashes as its bytes. */
static void out_content_hash(const char *text, size_t len, uint8_t out[RETE_HASH_LEN])
{
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	char *canon = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII |
						JSON_ENCODE_ANY)
			  : NULL;
	if (canon != NULL)
		rete_sha256(out, canon, strlen(canon));
	else
		rete_sha256(out, text, len);
	free(canon);
	json_decref(doc);
}

static uint32_t out_rcpt_epoch(json_t *doc);

/* out_epoch_latest: the latest log epoch this agent knows of: the one the
 * last WELCOME said (meta "epoch"), or this connection's (0: none said). */
static uint32_t out_epoch_latest(agent *a)
{
	uint32_t e = 0;
	(void)agent_db_get_u32(a->db, AGENT_DB_META, "epoch", 5, &e);
	return a->epoch > e ? a->epoch : e;
}

/* out_known_id answers a new file whose id already got a receipt: the same
 * content gets that receipt again in sent/ (the message is in the log
 * once; with its "epoch" when that is before the log's latest, after a
 * restore of the broker's store), other content is refused id-reused
 * naming the first's log index.
 * false when the id is new to us (the file goes the normal way). */
static bool out_known_id(agent *a, const char *name, const agent_spool_ident *orig, const char *id,
			 const uint8_t content[RETE_HASH_LEN])
{
	agent_idrec rec;
	rete_msg m = {{0}};
	char why[600];

	if (id == NULL || id[0] == '\0' || agent_db_id_get(a->db, id, &rec, &m) != RETE_OK)
		return false;
	if (sodium_memcmp(content, rec.content, RETE_HASH_LEN) != 0) {
		snprintf(why, sizeof(why),
			 "message id '%s' was already used by this agency for another message, "
			 "accepted at log index %" PRIu64 "; the same id may only be sent again "
			 "with the same content: give this message a new id",
			 id, rec.index);
		out_fail_ex(a, name, orig, NULL, NULL, 0, NULL, id, "id-reused", "id", why, NULL);
		free(rec.receipt_json);
		return true;
	}
	json_t *doc = json_loads(rec.receipt_json ? rec.receipt_json : "", 0, NULL);
	char *text2 = NULL, older[120] = "";
	if (doc != NULL) {
		json_object_set_new(doc, "file", agent_spool_name_json(name));
		/* of an epoch before the log's latest: say which, as a receipt
		 * rewritten after a restore does (its index may name another
		 * entry in the log now) */
		uint32_t e = out_rcpt_epoch(doc), latest = out_epoch_latest(a);
		if (e > 0 && e < latest) {
			json_object_set_new(doc, "epoch", json_integer(e));
			snprintf(older, sizeof(older),
				 ", of epoch %" PRIu32 " (the log is in epoch %" PRIu32
				 " now: that index may name another entry)",
				 e, latest);
		}
		text2 = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(doc);
	}
	free(rec.receipt_json);
	if (text2 == NULL) {
		agent_log(a, "error",
			  "%s: the receipt kept for %s does not parse; sending it again", name, id);
		return false;
	}
	size_t tl = strlen(text2);
	text2[tl] = '\n';
	/* the same never-overwriting, file-following move as any answer */
	agent_spool_answer ans = {.from_dir = a->outbox_dir,
				  .name = name,
				  .orig = orig,
				  .to_dir = a->sent_dir,
				  .suffix = ".receipt.json",
				  .companion = text2,
				  .companion_len = tl + 1,
				  .id = id};
	rete_err err = agent_spool_answer_put(&ans, &m);
	free(text2);
	if (err == RETE_ENOENT)
		return true;
	if (err != RETE_OK) {
		if (!out_said(a, name))
			agent_log(a, "error",
				  "%s: sent before as %s, but cannot move it to sent/: %s; trying "
				  "again at each scan",
				  name, id, m.text);
		return true;
	}
	agent_privacy_filed(a, "sent", id, ans.used, NULL);
	if (ans.replaced)
		a->out_rescan = true;
	agent_log(a, "info",
		  "%s: the same message as %s, accepted before at log index %" PRIu64
		  "; moved to sent/%s with its original receipt%s",
		  name, id, rec.index, ans.used, older);
	return true;
}

/* out_intake reads one new outbox file into a new item: the id is
 * recorded durably (minted when the file has none) before anything else. */
static void out_intake(agent *a, const char *name, bool closed, int64_t mtime)
{
	char *text = NULL, peek_id[128] = "";
	size_t len = 0;
	rete_msg m = {{0}};
	agent_outrec rec;
	uint8_t hash[RETE_HASH_LEN];
	agent_spool_ident ident;
	rete_err err;

	err = agent_spool_read_ident(a->outbox_dir, name, OUT_FILE_MAX, &text, &len, &ident, &m);
	if (err == RETE_ENOENT)
		return;
	if (err == RETE_EINVAL) {
		out_fail_ex(a, name, &ident, NULL, NULL, 0, NULL, NULL, "too-large", "", m.text,
			    NULL);
		return;
	}
	if (err != RETE_OK) {
		agent_log(a, "error", "%s", m.text);
		return;
	}
	rete_sha256(hash, text, len);
	err = agent_db_outbox_get(a->db, name, hash, &rec, &m);
	if (err == RETE_ENOENT) {
		/* A file that is not even JSON gets no id: refuse it now. */
		json_t *doc = NULL;
		if (rete_json_loadb(text, len, name, &doc, &m) != RETE_OK) {
			int64_t now = rete_now_ms();
			if (!closed && strstr(m.text, "premature end of input") != NULL &&
			    mtime != 0 && mtime <= now && now - mtime < OUT_PARTIAL_MS) {
				/* ends before its JSON does, and changed a moment
				 * ago: most likely still being written (a time
				 * ahead of this clock is no such moment: it would
				 * be looked at again until this clock passes it,
				 * rev-stall s16 #2) */
				struct agent_out_look *lk = out_look_get(a, name);
				if (lk != NULL) {
					lk->known = true;
					lk->size = (off_t)len;
					lk->mtime = mtime;
					agent_debug(a,
						    "%s: ends before its JSON does and changed "
						    "%lld ms ago: looked at again at the next scan",
						    name, (long long)(now - mtime));
					free(text);
					return;
				}
			}
			/* the likely cause, for the person reading failed/ */
			char why[sizeof(m.text) + 256];
			snprintf(why, sizeof(why),
				 "%s; if the file was still being written when the agent read "
				 "it, write it under a temporary name (NAME.tmp, or a name "
				 "starting with '.') and rename it into outbox/ once complete",
				 m.text);
			rete_problems p = {0};
			rete_problems_add(&p, "", "%s", why);
			out_fail_ex(a, name, &ident, NULL, text, len, NULL, NULL, "invalid", "",
				    why, &p);
			rete_problems_free(&p);
			free(text);
			return;
		}
		const char *fid = json_string_value(json_object_get(doc, "id"));
		if (fid != NULL && rete_text_id_valid(fid))
			snprintf(peek_id, sizeof(peek_id), "%s", fid);
		json_decref(doc);
		uint8_t content[RETE_HASH_LEN];
		out_content_hash(text, len, content);
		if (out_known_id(a, name, &ident, peek_id, content)) {
			free(text);
			return;
		}
		memset(&rec, 0, sizeof(rec));
		rec.state = AGENT_OUT_MINTED;
		rec.have_content = true;
		memcpy(rec.content, content, RETE_HASH_LEN);
		if (peek_id[0] != '\0')
			snprintf(rec.id, sizeof(rec.id), "%s", peek_id);
		else
			mint_id(rec.id);
		rec.minted_at = rete_now_ms();
		if (agent_db_outbox_put(a->db, name, hash, &rec, &m) != RETE_OK) {
			agent_log(a, "error", "%s: cannot record its message id: %s", name, m.text);
			free(text);
			return;
		}
		agent_debug(a, "%s: message id %s recorded", name, rec.id);
	} else if (err != RETE_OK) {
		agent_log(a, "error", "%s: %s", name, m.text);
		free(text);
		return;
	}
	out_item *it = item_add(a);
	if (it == NULL) {
		agent_outrec_free(&rec);
		free(text);
		return;
	}
	snprintf(it->name, sizeof(it->name), "%s", name);
	memcpy(it->hash, hash, RETE_HASH_LEN);
	it->ident = ident;
	snprintf(it->id, sizeof(it->id), "%s", rec.id);
	it->minted_at = rec.minted_at;
	it->seen = true;
	out_content_hash(text, len, it->content);
	if (rec.state == AGENT_OUT_SIGNED) {
		/* Prepared before a restart: resubmit exactly these bytes. */
		it->state = AGENT_OUT_SIGNED;
		it->signed_msg = rec.signed_msg;
		it->sealed = rec.sealed;
		free(text);
		return;
	}
	agent_outrec_free(&rec);
	it->state = AGENT_OUT_MINTED;
	free(text);
}

/* out_ahead: how many outbox files may be sealed and not yet answered at
 * once: twice max_inflight, at least 8. Each keeps its signed and sealed
 * bytes in memory (and in the store) until its answer; a backlog sealed
 * whole (a broker down for a day, then back) took memory in proportion,
 * up to the machine's limit. The rest wait with their ids recorded. */
static size_t out_ahead(const agent *a)
{
	size_t n = 2 * (size_t)a->cfg.max_inflight;
	return n < 8 ? 8 : n;
}

/* out_counts: outbox files (not held messages) sealed and not answered,
 * and those waiting to be sealed. */
static void out_counts(const agent *a, size_t *sealed, size_t *minted)
{
	*sealed = *minted = 0;
	for (size_t i = 0; i < a->out_n; i++) {
		const out_item *it = &a->out_items[i];
		*sealed += !it->held && it->state == AGENT_OUT_SIGNED;
		*minted += it->state == AGENT_OUT_MINTED;
	}
}

/* out_sign_pending prepares the items still waiting for the directory, up
 * to out_ahead sealed at once, and commits the signed bytes of all of them
 * in one transaction. */
static void out_sign_pending(agent *a)
{
	rete_msg m = {{0}};
	size_t i = 0, sealed, minted;
	bool any = false;
	/* the "sealed" lines out_prepare stages go with the transaction that
	 * records what was sealed, or not at all */
	size_t mark = agent_privacy_mark(a);

	out_counts(a, &sealed, &minted);
	while (i < a->out_n && sealed < out_ahead(a)) {
		out_item *it = &a->out_items[i];
		if (it->state != AGENT_OUT_MINTED) {
			i++;
			continue;
		}
		char *text = NULL;
		size_t len = 0;
		agent_spool_ident ident;
		rete_err err = agent_spool_read_ident(a->outbox_dir, it->name, OUT_FILE_MAX, &text,
						      &len, &ident, &m);
		if (err != RETE_OK) {
			agent_log(a, "warning", "%s: %s", it->name, m.text);
			item_remove(a, i);
			continue;
		}
		uint8_t hash[RETE_HASH_LEN];
		rete_sha256(hash, text, len);
		if (sodium_memcmp(hash, it->hash, RETE_HASH_LEN) != 0) {
			/* Rewritten in place: take it in again as a new file. */
			free(text);
			agent_log(a, "warning", "%s: changed while in outbox/; taking it again",
				  it->name);
			item_remove(a, i);
			a->out_rescan = true;
			continue;
		}
		it->ident = ident; /* the same content, perhaps copied anew */
		int rc = out_prepare(a, it, text, len);
		free(text);
		if (rc == PREP_FAILED) {
			item_remove(a, i);
			continue;
		}
		if (rc == PREP_SIGNED) {
			it->retry_at = -1; /* signed, not yet durable */
			any = true;
			sealed++;
		}
		i++;
	}
	if (!any)
		return;
	for (int attempt = 0; attempt < 8; attempt++) {
		rete_err err = agent_db_begin(a->db, &m);
		for (size_t k = 0; err == RETE_OK && k < a->out_n; k++) {
			out_item *it = &a->out_items[k];
			if (it->state != AGENT_OUT_SIGNED || it->sent_at != 0 || it->retry_at != -1)
				continue;
			agent_outrec rec = {.state = AGENT_OUT_SIGNED,
					    .minted_at = it->minted_at,
					    .have_content = true,
					    .signed_msg = it->signed_msg,
					    .sealed = it->sealed};
			snprintf(rec.id, sizeof(rec.id), "%s", it->id);
			memcpy(rec.content, it->content, RETE_HASH_LEN);
			err = agent_db_outbox_put(a->db, it->name, it->hash, &rec, &m);
		}
		/* the person-index lines of what was sealed, with it */
		if (err == RETE_OK)
			err = agent_privacy_journal(a, &m);
		err = agent_db_end(a->db, err, &m);
		if (err == RETE_OK) {
			agent_privacy_written(a);
			for (size_t k = 0; k < a->out_n; k++)
				if (a->out_items[k].retry_at == -1)
					a->out_items[k].retry_at = 0;
			return;
		}
		if (err != RETE_EFULL)
			break;
	}
	/* Said for a disk full at every try too (before, only for another
	 * error: an agent whose disk was full sealed again at every turn and
	 * said nothing); agent_log holds back the same line said again. */
	agent_log(a, "error",
		  "cannot record signed messages: %s; nothing is sent until they are "
		  "(sealed again at the next try)",
		  m.text);
	/* Not durable: never submit these; prepare them again later (their
	 * lines staged again then). */
	agent_privacy_unstage(a, mark);
	for (size_t k = 0; k < a->out_n; k++) {
		out_item *it = &a->out_items[k];
		if (it->retry_at == -1) {
			it->retry_at = 0;
			it->state = AGENT_OUT_MINTED;
			rete_buf_free(&it->signed_msg);
			rete_buf_free(&it->sealed);
		}
	}
}

static bool out_held_final(agent *a, size_t i, const char *code, const char *field,
			   const char *error, const char *what);
static void out_round_check(agent *a);

/* out_submit_frame fills *f as the SUBMIT of it, with *sub as its command:
 * both point into it->signed_msg and it->sealed (nothing is copied), so they
 * are good while it is unchanged; out_check_frames measures the very frame
 * agent_outbox_pump sends. */
static void out_submit_frame(const out_item *it, Rete__Submit *sub, Rete__ClientFrame *f)
{
	*sub = (Rete__Submit)RETE__SUBMIT__INIT;
	*f = (Rete__ClientFrame)RETE__CLIENT_FRAME__INIT;
	sub->signed_message.data = it->signed_msg.data;
	sub->signed_message.len = it->signed_msg.len;
	sub->sealed.data = it->sealed.data;
	sub->sealed.len = it->sealed.len;
	f->version = RETE_PROTOCOL_VERSION;
	f->command_case = RETE__CLIENT_FRAME__COMMAND_SUBMIT;
	f->submit = sub;
}

/* The limit assumed when the broker's WELCOME does not say its max_frame
 * (a broker older than that field): its default then, 4 MiB. */
#define OUT_DEFAULT_MAX_FRAME (4u << 20)

/* out_check_frames answers `too-large` for every signed message whose
 * SUBMIT frame would exceed the broker's max_frame: ZeroMQ would drop such
 * a frame and the connection with it, again at every resubmission, and
 * nobody would be told. Needs WELCOME (the limit comes with it). */
static void out_check_frames(agent *a)
{
	if (!a->welcomed)
		return;
	uint64_t limit = a->max_frame ? a->max_frame : OUT_DEFAULT_MAX_FRAME;
	for (size_t i = 0; i < a->out_n;) {
		out_item *it = &a->out_items[i];
		if (it->state != AGENT_OUT_SIGNED || it->retry_at < 0) {
			i++;
			continue;
		}
		Rete__Submit sub;
		Rete__ClientFrame f;
		out_submit_frame(it, &sub, &f);
		size_t size = rete__client_frame__get_packed_size(&f);
		if (size <= limit) {
			i++;
			continue;
		}
		char why[600];
		snprintf(why, sizeof(why),
			 "the message is %zu bytes as submitted (signed message %zu, sealed part "
			 "%zu, frame), over the broker's limit of %" PRIu64 " bytes%s; send the "
			 "attachments smaller or in several messages, or ask the network's "
			 "operator to raise max_frame",
			 size, it->signed_msg.len, it->sealed.len, limit,
			 a->max_frame ? " (its max_frame)"
				      : " (assumed: the broker does not say its max_frame)");
		if (it->held) {
			/* no file: its own answer, never out_fail (which would
			 * answer for outbox/ itself). Never sent as it is: when the
			 * answer cannot be written it leaves memory, still held,
			 * and the round tries again at the next WELCOME. */
			if (!out_held_final(a, i, "too-large", "", why,
					    "cannot be submitted again"))
				item_remove(a, i);
			continue;
		}
		char name[sizeof(it->name)], id[sizeof(it->id)];
		uint8_t hash[RETE_HASH_LEN];
		snprintf(name, sizeof(name), "%s", it->name);
		snprintf(id, sizeof(id), "%s", it->id);
		memcpy(hash, it->hash, sizeof(hash));
		out_fail(a, name, hash, id, "too-large", "", why, NULL);
		item_remove(a, i);
	}
}

/* out_prepare_pending signs what waits for it, then refuses what the
 * broker could not take in one frame. */
static void out_prepare_pending(agent *a)
{
	out_sign_pending(a);
	out_check_frames(a);
}

struct prune_ctx {
	const char *outbox;
	uint8_t **keys;
	size_t *lens;
	bool *other;   /* a file of other content is at outbox/NAME */
	bool *upgrade; /* the file is there; the record lacks its content hash */
	size_t n, cap;
};

static bool prune_collect(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	struct prune_ctx *p = user;
	char path[4400];
	const char *name = key;
	size_t nl = strnlen(name, klen);
	if (nl == klen)
		return true;
	snprintf(path, sizeof(path), "%s/%.*s", p->outbox, (int)nl, name);
	/* a file there is the record's only with the record's content: after
	 * a move, the case system may have written a new file of that name
	 * (or one replaced the source and the move wrote the fallback) */
	bool other = false, upgrade = false;
	if (access(path, F_OK) == 0) {
		if (klen != nl + 1 + RETE_HASH_LEN)
			return true;
		if (agent_spool_hash_is(path, (const uint8_t *)key + nl + 1)) {
			/* the record's own file: kept; rewritten with the
			 * content hash when a schema-2 agent wrote it */
			if (!agent_db_outbox_layout1(val, vlen))
				return true;
			upgrade = true;
		} else {
			other = true;
		}
	}
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 16;
		uint8_t **k = realloc(p->keys, nc * sizeof(*k));
		if (k == NULL)
			return false;
		p->keys = k;
		size_t *l = realloc(p->lens, nc * sizeof(*l));
		if (l == NULL)
			return false;
		p->lens = l;
		bool *o = realloc(p->other, nc * sizeof(*o));
		if (o == NULL)
			return false;
		p->other = o;
		bool *u = realloc(p->upgrade, nc * sizeof(*u));
		if (u == NULL)
			return false;
		p->upgrade = u;
		p->cap = nc;
	}
	p->other[p->n] = other;
	p->upgrade[p->n] = upgrade;
	p->keys[p->n] = malloc(klen);
	if (p->keys[p->n] == NULL)
		return false;
	memcpy(p->keys[p->n], key, klen);
	p->lens[p->n++] = klen;
	return true;
}

/* out_settle: the record of outbox/NAME outlived the file (name, hash: its
 * key), the sign of an agent stopped (kill -9, a power cut) after the move
 * to sent/ or failed/ and before the move was recorded: the file kept the
 * time the case system gave it, and the person index has no "filed" line
 * to find it by at its delivery or for rete sar. Its answer is looked for
 * (the companion naming NAME and the record's id) and the move recorded as
 * it would have been, the file's time set to its answer's (the companion
 * is written, durably, just before the move): its retention counts from
 * its receipt or refusal, never from earlier. A file the agency removed
 * before its answer has none: nothing to record. true: the answer was
 * found. */
static bool out_settle(agent *a, const uint8_t *key, size_t klen)
{
	static const char *const subs[] = {"sent", "failed"};
	static const char *const suffixes[] = {".receipt.json", ".error.json"};
	const char *dirs[] = {a->sent_dir, a->failed_dir};
	const char *name = (const char *)key;
	size_t nl = strnlen(name, klen);
	agent_outrec rec;
	rete_msg m = {{0}};
	char used[AGENT_SPOOL_NAME_MAX + 32], when[32];
	struct timespec at;
	bool found = false;
	if (klen != nl + 1 + RETE_HASH_LEN ||
	    agent_db_outbox_get(a->db, name, key + nl + 1, &rec, &m) != RETE_OK)
		return false;
	for (int k = 0; k < 2 && !found; k++) {
		if (!agent_spool_answer_find(dirs[k], name, suffixes[k], rec.id, used, sizeof(used),
					     &at))
			continue;
		agent_privacy_filed(a, subs[k], rec.id, used, &at);
		agent_log(a, "info",
			  "%s: its move to %s/%s as %s was not recorded (the agent stopped "
			  "there): recorded now, its retention counting from %s",
			  name, subs[k], used, rec.id,
			  rete_time_format((int64_t)at.tv_sec * 1000 + at.tv_nsec / 1000000, when));
		found = true;
	}
	agent_outrec_free(&rec);
	return found;
}

/* out_adopt takes back, as an item in flight, the record (key) of a file
 * that was sealed and left outbox/ (other: another file of that name is
 * there now) while the agent was stopped, with no answer found for it:
 * its SUBMIT may be on the log. The start keeps it as the running agent
 * keeps a sealed file that leaves (agent_outbox_scan): submitted again, the
 * same bytes (the broker answers with its receipt), answered in sent/ or
 * failed/ with the message as it was signed. The file's identity is the
 * record's content hash (the same bytes put back are the file, moved with
 * the answer; another file of the name is taken in after it, as a new
 * file), and the id keeps the content hash of the file as the agency wrote
 * it (a schema-2 record has none: no_content). A record not sealed is not
 * taken (nothing was sent): false. The record itself stays until the
 * answer, as for any item: a kill -9 meanwhile takes it back again. */
static bool out_adopt(agent *a, const uint8_t *key, size_t klen, bool other)
{
	const char *name = (const char *)key;
	size_t nl = strnlen(name, klen);
	agent_outrec rec;
	rete_msg m = {{0}};
	if (klen != nl + 1 + RETE_HASH_LEN || nl >= sizeof(a->out_items[0].name) ||
	    agent_db_outbox_get(a->db, name, key + nl + 1, &rec, &m) != RETE_OK)
		return false;
	out_item *it = rec.state == AGENT_OUT_SIGNED ? item_add(a) : NULL;
	if (it == NULL) {
		agent_outrec_free(&rec);
		return false;
	}
	memcpy(it->name, name, nl);
	it->name[nl] = '\0';
	memcpy(it->hash, key + nl + 1, RETE_HASH_LEN);
	it->ident.have_hash = true; /* what outbox/NAME must hold to be the file */
	memcpy(it->ident.hash, it->hash, RETE_HASH_LEN);
	snprintf(it->id, sizeof(it->id), "%s", rec.id);
	it->minted_at = rec.minted_at;
	it->state = AGENT_OUT_SIGNED;
	it->signed_msg = rec.signed_msg; /* the item owns the buffers now */
	it->sealed = rec.sealed;
	it->no_content = !rec.have_content;
	memcpy(it->content, rec.content, RETE_HASH_LEN);
	it->left = true; /* said here, not again at the scan */
	if (other)
		agent_log(a, "warning",
			  "%s: replaced in outbox/ while the agent was stopped, after %s was "
			  "sealed; its answer will come with the message as sent, and the file "
			  "there now is taken in after it as a new file",
			  it->name, it->id);
	else
		agent_log(a, "warning",
			  "%s: left outbox/ while the agent was stopped, after %s was sealed; "
			  "its answer will come with the message as sent",
			  it->name, it->id);
	return true;
}

/* out_upgrade_rec rewrites, in the open transaction, the schema-2 record
 * (key) of a file still in outbox/ with the content hash of that file:
 * 1 when rewritten, 0 when not (the file changed meanwhile: the record is
 * read as it is); *err gets a failure of the transaction. */
static size_t out_upgrade_rec(agent *a, const uint8_t *key, size_t klen, rete_err *err, rete_msg *m)
{
	const char *name = (const char *)key;
	size_t nl = strnlen(name, klen);
	agent_outrec rec;
	char *text = NULL;
	size_t len = 0;
	rete_msg rm = {{0}};
	uint8_t h[RETE_HASH_LEN];
	size_t done = 0;
	if (klen != nl + 1 + RETE_HASH_LEN ||
	    agent_db_outbox_get(a->db, name, key + nl + 1, &rec, &rm) != RETE_OK)
		return 0;
	/* read again: the file may have changed since the listing */
	if (!rec.have_content &&
	    agent_spool_read(a->outbox_dir, name, OUT_FILE_MAX, &text, &len, &rm) == RETE_OK) {
		rete_sha256(h, text, len);
		if (sodium_memcmp(h, key + nl + 1, RETE_HASH_LEN) == 0) {
			out_content_hash(text, len, rec.content);
			rec.have_content = true;
			*err = agent_db_outbox_put(a->db, name, h, &rec, m);
			done = *err == RETE_OK;
		}
	}
	free(text);
	agent_outrec_free(&rec);
	return done;
}

/* out_prune settles the records of files no longer in outbox/ as they
 * were (a file of other content there counts as no longer there): a move
 * to sent/ or failed/ that a stop left unrecorded is recorded and the
 * record forgotten (out_settle); a sealed file is taken back until its
 * answer (out_adopt); the id of a file never sealed is forgotten (nothing
 * was sent), unless a file of other content has the name now (kept, as it
 * always has been). The records a schema-2 agent wrote of files still in
 * outbox/ get their content hash, and a store of an earlier schema records
 * ours in that same transaction (the upgrade, said once): a store of
 * records an older agent does not parse always records a schema that
 * agent refuses. A store it cannot upgrade is an error of the start
 * (em). */
static rete_err out_prune(agent *a, rete_msg *em)
{
	struct prune_ctx p = {.outbox = a->outbox_dir};
	rete_msg m = {{0}};
	size_t blind = 0, upgraded = 0;
	unsigned was = agent_db_schema_was(a->db);
	bool upgrade = was < AGENT_STORE_SCHEMA;
	rete_err err = agent_db_each(a->db, AGENT_DB_OUTBOX, prune_collect, &p, &m);
	if (err == RETE_OK && p.n > 0) {
		for (size_t i = 0; i < p.n; i++) {
			if (p.upgrade[i])
				continue;
			if (out_settle(a, p.keys[i], p.lens[i]))
				continue; /* answered: forgotten below */
			if (out_adopt(a, p.keys[i], p.lens[i], p.other[i])) {
				blind += a->out_items[a->out_n - 1].no_content;
				p.lens[i] = 0; /* kept until its answer */
			} else if (p.other[i]) {
				p.lens[i] = 0; /* kept */
			}
		}
	}
	if (err == RETE_OK && (p.n > 0 || upgrade)) {
		size_t gone = 0;
		for (int attempt = 0; attempt < 2; attempt++) { /* again once: map grown */
			err = agent_db_begin(a->db, &m);
			if (err == RETE_OK && upgrade)
				err = agent_db_schema_record(a->db, &m);
			if (err == RETE_OK)
				err = agent_privacy_journal(a, &m);
			gone = upgraded = 0;
			for (size_t i = 0; i < p.n && err == RETE_OK; i++) {
				if (p.lens[i] == 0)
					continue;
				if (p.upgrade[i]) {
					upgraded +=
					    out_upgrade_rec(a, p.keys[i], p.lens[i], &err, &m);
					continue;
				}
				err =
				    agent_db_del(a->db, AGENT_DB_OUTBOX, p.keys[i], p.lens[i], &m);
				gone++;
			}
			if ((err = agent_db_end(a->db, err, &m)) != RETE_EFULL)
				break;
		}
		if (err == RETE_OK) {
			agent_privacy_written(a);
			if (gone > 0)
				agent_debug(
				    a, "forgot %zu record(s) of files that had left outbox/", gone);
		} else if (!upgrade) {
			upgraded = 0;
			agent_log(a, "error",
				  "cannot settle the records of files that left outbox/: %s",
				  m.text);
		}
	}
	rete_err ret = RETE_OK;
	char blind_said[300] = "";
	if (blind > 0)
		snprintf(blind_said, sizeof(blind_said),
			 "; %zu sealed file(s) that had left outbox/ are seen through without it "
			 "(their ids keep no content record: the same file written again under "
			 "such an id is refused id-reused)",
			 blind);
	char from[64];
	if (was == 0)
		snprintf(from, sizeof(from), "a schema from before the record");
	else
		snprintf(from, sizeof(from), "schema %u", was);
	if (upgrade && err != RETE_OK) {
		/* not started: what it would take in needs schema 3 recorded */
		ret = rete_msg_set(em, err,
				   "cannot upgrade the agent store (of %s) to schema %d: %s; it "
				   "was left as it was",
				   from, AGENT_STORE_SCHEMA, m.text);
	} else if (upgrade) {
		agent_log(a, "info",
			  "the agent store was of %s: it is of schema %d now, which an older "
			  "rete-agent refuses. Outbox records keep the content hash of their "
			  "file: %zu rewritten with it%s",
			  from, AGENT_STORE_SCHEMA, upgraded, blind_said);
	} else if (upgraded > 0 || blind > 0) {
		agent_log(a, "info",
			  "outbox records of schema 2 (no content hash): %zu rewritten with the "
			  "content hash of their file%s",
			  upgraded, blind_said);
	}
	for (size_t i = 0; i < p.n; i++)
		free(p.keys[i]);
	free(p.keys);
	free(p.lens);
	free(p.other);
	free(p.upgrade);
	return ret;
}

/* out_each_receipt calls fn(a, NAME, its stat, ctx) for each receipt in
 * sent/ (a regular NAME.receipt.json of at most 1 MiB, not hidden) until
 * fn returns false. */
static void
out_each_receipt(agent *a, bool (*fn)(agent *a, const char *name, const struct stat *st, void *ctx),
		 void *ctx)
{
	static const char sfx[] = ".receipt.json";
	DIR *d = opendir(a->sent_dir);
	struct dirent *e;
	bool more = true;
	while (d != NULL && more && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), sl = sizeof(sfx) - 1;
		char path[4400];
		struct stat st;
		if (e->d_name[0] == '.' || l <= sl || strcmp(e->d_name + l - sl, sfx) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", a->sent_dir, e->d_name);
		if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20))
			continue;
		more = fn(a, e->d_name, &st, ctx);
	}
	if (d != NULL)
		closedir(d);
}

/* How many of the latest receipts in sent/ the start looks at. */
#define OUT_BEHIND_LOOK 64

static const char out_since_key[] = "ids_since";

/* out_since_put records ms as meta "ids_since" (its own transaction). */
static rete_err out_since_put(agent *a, int64_t ms, rete_msg *m)
{
	uint8_t be[8];
	uint64_t v = (uint64_t)ms;
	for (int k = 7; k >= 0; k--, v >>= 8)
		be[k] = (uint8_t)v;
	return agent_db_put(a->db, AGENT_DB_META, out_since_key, sizeof(out_since_key) - 1, be,
			    sizeof(be), m);
}

/* out_since: meta "ids_since", the time (ms) from which this store keeps
 * an id record of every receipt it writes to sent/; recorded at the first
 * start of an agent that looks (an older agent's receipts may have none),
 * and moved forward once a gap before it was said (out_behind_check).
 * 0 when it was not recorded before this start (nothing to compare yet). */
static int64_t out_since(agent *a)
{
	rete_buf v;
	rete_msg m = {{0}};
	int64_t since = 0;
	if (agent_db_get(a->db, AGENT_DB_META, out_since_key, sizeof(out_since_key) - 1, &v, &m) ==
	    RETE_OK) {
		for (size_t k = 0; k < v.len && k < 8; k++)
			since = (int64_t)(((uint64_t)since << 8) | v.data[k]);
		rete_buf_free(&v);
		return since;
	}
	out_since_put(a, rete_now_ms(), &m);
	return 0;
}

struct out_behind {
	char name[OUT_BEHIND_LOOK][AGENT_SPOOL_NAME_MAX + 32];
	int64_t at[OUT_BEHIND_LOOK];
	size_t n;
	int64_t since; /* meta "ids_since" */
};

/* out_behind_add keeps name (a receipt written at `at`) if it is among the
 * latest OUT_BEHIND_LOOK. */
static void out_behind_add(struct out_behind *b, const char *name, int64_t at)
{
	size_t k = b->n;
	if (b->n == OUT_BEHIND_LOOK) {
		k = 0; /* replace the oldest, if this one is later */
		for (size_t i = 1; i < b->n; i++)
			if (b->at[i] < b->at[k])
				k = i;
		if (b->at[k] >= at)
			return;
	} else {
		b->n++;
	}
	snprintf(b->name[k], sizeof(b->name[k]), "%s", name);
	b->at[k] = at;
}

/* out_behind_take: out_each_receipt's fn for out_behind_check: keeps a
 * receipt written after "ids_since" if it is among the latest. */
static bool out_behind_take(agent *a, const char *name, const struct stat *st, void *ctx)
{
	struct out_behind *b = ctx;
	int64_t at = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
	(void)a;
	if (at > b->since)
		out_behind_add(b, name, at);
	return true;
}

/* out_behind_check, at start: is this agent's store older than its spool?
 * The latest receipts in sent/ (written after "ids_since") name messages
 * whose id record the store must have; when some have none, its data
 * folder was put back from an older copy, and the log says so, with what
 * that costs and where the procedure is (docs/operations.md). Said once:
 * "ids_since" then moves to the time of the latest receipt said, so that
 * later starts compare only receipts written after it (a newer gap is said
 * again). Only the latest OUT_BEHIND_LOOK are read: a start reads no more
 * than that however long sent/ is kept. */
static void out_behind_check(agent *a)
{
	int64_t since = out_since(a);
	struct out_behind *b = since > 0 ? calloc(1, sizeof(*b)) : NULL;
	if (b != NULL) {
		b->since = since;
		out_each_receipt(a, out_behind_take, b);
	}
	size_t missing = 0, latest = 0;
	char id[128] = "", idx[24] = "";
	for (size_t i = 0; b != NULL && i < b->n; i++) {
		char path[4400];
		agent_idrec rec;
		rete_msg m = {{0}};
		snprintf(path, sizeof(path), "%s/%s", a->sent_dir, b->name[i]);
		json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
		const char *mid = json_string_value(json_object_get(j, "messageId"));
		const char *ix = json_string_value(json_object_get(j, "index"));
		if (mid != NULL && agent_db_id_get(a->db, mid, &rec, &m) == RETE_OK) {
			free(rec.receipt_json);
		} else if (mid != NULL) {
			if (missing++ == 0 || b->at[i] > b->at[latest]) {
				latest = i;
				snprintf(id, sizeof(id), "%s", mid);
				snprintf(idx, sizeof(idx), "%s", ix ? ix : "?");
			}
		}
		json_decref(j);
	}
	if (missing > 0)
		agent_log(
		    a, "warning",
		    "the agent store in %s is older than its spool: of the latest receipts "
		    "in sent/, %zu (the latest: sent/%s, message %s, log index %s) are of "
		    "messages it has no record of: its data folder was put back from an "
		    "older copy. "
		    "What it lost: the records of what it sent after that copy (such a file "
		    "sent again is signed anew and refused id-reused by the broker: its "
		    "receipt is the one in sent/), and the messages held until their delivery "
		    "receipt (not submitted again if the broker's store is restored); see "
		    "docs/operations.md, \"Restoring an agent's data folder\"",
		    a->cfg.data, missing, b->name[latest], id, idx);
	if (missing > 0) {
		rete_msg m = {{0}};
		if (out_since_put(a, b->at[latest], &m) != RETE_OK)
			agent_log(a, "error",
				  "cannot record that the gap up to sent/%s was said (meta "
				  "ids_since): %s; it will be said again at the next start",
				  b->name[latest], m.text);
	}
	free(b);
}

rete_err agent_outbox_settle(agent *a, rete_msg *m)
{
	a->out_pruned = true;
	rete_err err = out_prune(a, m);
	if (err == RETE_OK)
		out_behind_check(a);
	return err;
}

/* out_refuse_names answers the entries of outbox/ the agent will not take:
 * names it cannot answer under (too long, not UTF-8) and entries that are
 * not files; a folder cannot even be moved and is only said in the log
 * (once). Those names are taken out of names (and n). */
static void out_refuse_names(agent *a, char **names, size_t *n, char **others, size_t no)
{
	char why[600];
	size_t k = 0;
	for (size_t i = 0; i < *n; i++) {
		const char *code = agent_spool_name_problem(names[i], why, sizeof(why));
		if (code == NULL) {
			names[k++] = names[i];
			continue;
		}
		out_fail_ex(a, names[i], NULL, NULL, NULL, 0, NULL, NULL, code, "", why, NULL);
		free(names[i]);
	}
	*n = k;
	for (size_t i = 0; i < no; i++) {
		char path[4400];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", a->outbox_dir, others[i]);
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (!out_said(a, others[i]))
				agent_log(a, "warning",
					  "outbox/%s is a folder: the agent sends files only and "
					  "leaves it where it is",
					  others[i]);
			continue;
		}
		snprintf(why, sizeof(why),
			 "not a regular file (a %s); write the message itself into outbox/",
			 S_ISLNK(st.st_mode) ? "symbolic link" : "special file");
		out_fail_ex(a, others[i], NULL, NULL, NULL, 0, NULL, NULL, "not-a-file", "", why,
			    NULL);
	}
}

void agent_outbox_scan(agent *a)
{
	char **names = NULL, **others = NULL;
	size_t n = 0, no = 0;
	rete_msg m = {{0}};
	int64_t now = rete_now_ms();

	a->out_rescan = false;
	if (!a->out_pruned) {
		a->out_pruned = true;
		if (out_prune(a, &m) != RETE_OK)
			agent_log(a, "error", "%s", m.text);
	}
	if (agent_spool_list_all(a->outbox_dir, &names, &n, &others, &no, &m) != RETE_OK) {
		agent_log(a, "error", "%s", m.text);
		return;
	}
	out_said_forget(a, names, n, others, no);
	out_looks_prepare(a, names, n);
	out_refuse_names(a, names, &n, others, no);
	agent_spool_list_free(others, no);
	for (size_t i = 0; i < a->out_n; i++)
		a->out_items[i].seen = a->out_items[i].held; /* held: no file */
	/* The ids of all new files are recorded in one durable transaction:
	 * one fsync for a burst of files, not one each. Until it commits no
	 * new item may go further, so a failed commit drops them all (they are
	 * taken in again at the next scan). */
	size_t before = a->out_n;
	bool in_txn = agent_db_begin(a->db, &m) == RETE_OK;
	for (size_t k = 0; k < n; k++) {
		bool known = false;
		for (size_t i = 0; i < a->out_n; i++) {
			if (!a->out_items[i].held && strcmp(a->out_items[i].name, names[k]) == 0) {
				a->out_items[i].seen = true;
				known = true;
				break;
			}
		}
		if (known)
			continue;
		int64_t mtime;
		int how = out_settled(a, names[k], now, &mtime);
		if (how != OUT_WAIT)
			out_intake(a, names[k], how == OUT_TAKE_CLOSED, mtime);
	}
	agent_spool_list_free(names, n);
	/* the moves of the files answered at once (a known id, a refusal)
	 * are recorded with the ids */
	if (in_txn && agent_db_end(a->db, agent_privacy_journal(a, &m), &m) == RETE_OK)
		agent_privacy_written(a);
	else if (in_txn) {
		agent_log(a, "error", "cannot record the ids of new outbox files: %s; trying again",
			  m.text);
		while (a->out_n > before)
			item_remove(a, a->out_n - 1);
		a->out_rescan = true;
		return;
	}
	for (size_t i = 0; i < a->out_n;) {
		out_item *it = &a->out_items[i];
		if (it->seen) {
			i++;
		} else if (it->state == AGENT_OUT_SIGNED) {
			/* Sealed and recorded: it may be on the log already (its
			 * SUBMIT sent). Kept until its answer, which goes to sent/
			 * or failed/ with the message as it was signed: forgetting
			 * it left a logged, delivered message without a receipt. */
			if (!it->left)
				agent_log(
				    a, "warning",
				    "%s: left outbox/ (or is no longer a file there) after %s "
				    "was sealed; its answer will come with the message as "
				    "sent",
				    it->name, it->id);
			it->left = true;
			i++;
		} else {
			agent_log(a, "warning", "%s: removed from outbox/ before an answer came",
				  it->name);
			item_remove(a, i);
		}
	}
	out_prepare_pending(a);
}

void agent_outbox_on_welcome(agent *a)
{
	/* A resubmission round not complete (the agent stopped in it, or a
	 * connection was lost): what it has not receipted yet goes again. */
	agent_outbox_held_due(a, NULL);
	for (size_t i = 0; i < a->out_n; i++) {
		a->out_items[i].sent_at = 0;
		a->out_items[i].retry_at = 0;
		a->out_items[i].waiting_since = 0;
	}
	/* a wait said on the old connection is not said over: "lost the
	 * broker" and "connected" told what happened; a new one is said if
	 * the new connection waits as long */
	a->out_stall_said_at = 0;
	out_prepare_pending(a);
}

/* out_refill seals more of the files that wait (out_ahead) once half of
 * those sealed ahead have been answered: one transaction for many, as at a
 * scan. When none could be sealed (the store cannot record them, the
 * files changed), not again before the next poll interval. */
static void out_refill(agent *a, int64_t now)
{
	size_t sealed, minted;
	if (now < a->out_fill_at)
		return;
	out_counts(a, &sealed, &minted);
	if (minted == 0 || sealed > out_ahead(a) / 2)
		return;
	out_prepare_pending(a);
	size_t after;
	out_counts(a, &after, &minted);
	if (minted > 0 && after <= sealed)
		a->out_fill_at = now + a->cfg.poll_ms;
}

/* out_stall_check says, once, when the oldest submission still without an
 * answer on this connection has waited 3 x `resubmit` (the broker took
 * none of the resubmissions in that time either: a broker stalled on its
 * disk keeps the connection and its heartbeats, so nothing else in the
 * agent's log would say it; finding s16 rev-edges 4), and says when no
 * submission waits that long any more. */
static void out_stall_check(agent *a, int64_t now)
{
	int64_t after = 3 * a->cfg.resubmit_ms;
	const out_item *oldest = NULL;
	size_t waiting = 0;
	for (size_t i = 0; i < a->out_n; i++) {
		const out_item *it = &a->out_items[i];
		if (it->waiting_since == 0)
			continue;
		waiting++;
		if (oldest == NULL || it->waiting_since < oldest->waiting_since)
			oldest = it;
	}
	bool stalled = oldest != NULL && now - oldest->waiting_since >= after;
	char t1[32], t2[32];
	if (stalled && a->out_stall_said_at == 0) {
		agent_log(a, "warning",
			  "%s: no answer from the broker for %lld s although the connection is up "
			  "(%zu submission%s waiting, the oldest since %s): the broker may be "
			  "stalled on its disk or overloaded; check the broker's disk and its log, "
			  "and `rete health`; the agent goes on submitting them every %lld s",
			  oldest->held ? "held message" : oldest->name,
			  (long long)((now - oldest->waiting_since) / 1000), waiting,
			  waiting == 1 ? "" : "s", rete_time_format(oldest->waiting_since, t1),
			  (long long)(a->cfg.resubmit_ms / 1000));
		a->out_stall_said_at = now;
		a->out_stall_since = oldest->waiting_since;
	} else if (!stalled && a->out_stall_said_at != 0) {
		char more[80] = "";
		if (waiting > 0)
			snprintf(more, sizeof(more), "; %zu submission%s waiting less long",
				 waiting, waiting == 1 ? "" : "s");
		agent_log(a, "info",
			  "the broker answers again: no submission has waited %lld s without an "
			  "answer any more (the wait said at %s: the oldest had waited since %s, "
			  "%lld s ago%s)",
			  (long long)(after / 1000), rete_time_format(a->out_stall_said_at, t1),
			  rete_time_format(a->out_stall_since, t2),
			  (long long)((now - a->out_stall_since) / 1000), more);
		a->out_stall_said_at = 0;
	}
}

void agent_outbox_pump(agent *a, int64_t now)
{
	unsigned inflight = 0;

	if (a->held_check)
		out_round_check(a);
	if (!agent_net_ready(a))
		return;
	out_stall_check(a, now);
	out_refill(a, now);
	/* Held messages go one at a time, in the order of their log index:
	 * after a restore a referral's update (or cancellation) must not reach
	 * the broker before the referral, which it would refuse
	 * (unknown-referral). Each waits until those before it are answered. */
	uint64_t first_held = UINT64_MAX;
	for (size_t i = 0; i < a->out_n; i++) {
		out_item *it = &a->out_items[i];
		if (it->state == AGENT_OUT_SIGNED && it->sent_at != 0 &&
		    now - it->sent_at < a->cfg.resubmit_ms)
			inflight++;
		if (it->held && it->held_index < first_held)
			first_held = it->held_index;
	}
	for (size_t i = 0; i < a->out_n && inflight < a->cfg.max_inflight; i++) {
		out_item *it = &a->out_items[i];
		if (it->state != AGENT_OUT_SIGNED || it->retry_at < 0 || now < it->retry_at)
			continue;
		if (it->held && it->held_index != first_held)
			continue;
		if (it->sent_at != 0 && now - it->sent_at < a->cfg.resubmit_ms)
			continue;
		Rete__Submit sub;
		Rete__ClientFrame f;
		out_submit_frame(it, &sub, &f);
		if (agent_net_send(a, &f) != RETE_OK)
			return;
		const char *what = it->held ? "held message" : it->name;
		if (it->sent_at != 0)
			agent_debug(a, "%s: resubmitting %s", what, it->id);
		else
			agent_debug(a, "%s: submitted %s", what, it->id);
		it->sent_at = now;
		if (it->waiting_since == 0)
			it->waiting_since = now;
		inflight++;
	}
}

/* --- answers ------------------------------------------------------------- */

/* A receipt of protocol 3 that proved our bytes (out_receipt_check). */
typedef struct out_rcpt {
	const Rete__Receipt *r; /* its proof and checkpoint note */
	uint64_t index;
	int64_t logged_at;
	uint8_t leaf[RETE_MERKLE_HASH]; /* the leaf of our entry */
	rete_checkpoint cp;		/* the note's tree */
} out_rcpt;

/* out_leaf: the RFC 6962 leaf hash of the log entry the store builds from
 * an index, a loggedAt and our signed bytes (store_commit.c). The
 * protobuf-c packing of a LogEntry is deterministic, so these are the bytes
 * the broker hashed, if it logged ours. false when out of memory. */
static bool out_leaf(const out_item *it, uint64_t index, int64_t logged_at,
		     uint8_t ours[RETE_MERKLE_HASH])
{
	Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
	le.index = index;
	le.logged_at = logged_at;
	le.signed_message.data = it->signed_msg.data;
	le.signed_message.len = it->signed_msg.len;
	size_t n = rete__log_entry__get_packed_size(&le);
	uint8_t *buf = malloc(n ? n : 1);
	if (buf == NULL)
		return false;
	rete__log_entry__pack(&le, buf);
	rete_merkle_leaf_hash(ours, buf, n);
	free(buf);
	return true;
}

/* out_proved: does r's inclusion proof lead from the leaf of our entry
 * (r's index and time, it's bytes; into ours) to the root of the tree cp
 * (whose signature the caller checks)? m says why not. */
static bool out_proved(const out_item *it, const Rete__Receipt *r, const rete_checkpoint *cp,
		       uint8_t ours[RETE_MERKLE_HASH], rete_msg *m)
{
	rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
	if (r->n_proof > RETE_MERKLE_MAX_PROOF) {
		rete_msg_set(m, RETE_EPROOF,
			     "the inclusion proof has %zu hashes; a proof has at most %d",
			     r->n_proof, RETE_MERKLE_MAX_PROOF);
		return false;
	}
	if (!out_leaf(it, r->index, r->logged_at, ours)) {
		rete_msg_set(m, RETE_ENOMEM, "out of memory");
		return false;
	}
	for (size_t i = 0; i < r->n_proof; i++) {
		e[i].data = r->proof[i].data;
		e[i].len = r->proof[i].len;
	}
	return rete_merkle_verify_inclusion(r->index, cp->size, ours, RETE_MERKLE_HASH, e,
					    r->n_proof, cp->root, RETE_MERKLE_HASH, m) == RETE_OK;
}

/* out_note_verify verifies a receipt's checkpoint note with the pinned
 * broker key under our log's origin. The broker signs one note per commit,
 * so consecutive receipts mostly carry the same one: the note verified
 * last is only parsed again. */
static rete_err out_note_verify(agent *a, const char *note, size_t len, rete_checkpoint *cp,
				rete_msg *m)
{
	if (a->out_note != NULL && strcmp(a->out_note, note) == 0)
		return rete_checkpoint_parse(note, len, cp, m);
	rete_err err = rete_checkpoint_verify(note, len, a->origin, &a->broker_pk, cp, m);
	if (err == RETE_OK) {
		free(a->out_note);
		a->out_note = strdup(note); /* NULL: verified again next time */
	}
	return err;
}

/* CLOCK_SAY_AGAIN_MS: a spell of differing clocks is said again after
 * this long (with the count of messages since), not once per message */
#define CLOCK_SAY_AGAIN_MS (3600 * 1000)

/* out_clock_check says, at error level, when the broker logged our message
 * (its receipt's loggedAt, logged_at) more than RETE_CLOCK_SKEW_MS before
 * this machine took its file (the item's minted_at, this machine's clock
 * when it recorded the id; report s12, 3): one of the two clocks is wrong,
 * and the broker's times are its evidence (deadlines, overdue notices,
 * "registrato alle"). Not the signed createdAt: a case system may write it
 * itself (Italian local time with a Z, 1-2 h ahead), and both clocks are
 * then right (final-read s12, 4). This agent cannot tell which clock is
 * wrong: the commonest case is its own machine's (an office PC without
 * NTP), so it says to check this machine first, then to tell the broker's
 * operator (review s12 small-eyes, 3). Said once per spell: at its first
 * receipt, again after CLOCK_SAY_AGAIN_MS with the number of receipts in
 * between, and its end (a receipt within the tolerance) at info level with
 * that number. The receipt still holds (it proves the entry). */
static void out_clock_check(agent *a, const out_item *it, int64_t logged_at)
{
	char t1[32], t2[32], since[160] = "";
	int64_t now = rete_now_ms(), took = it->minted_at;

	/* ahead: a wrong clock, or a broker that post-dates its receipts (and
	 * so puts off the sender's watch on what it never delivers,
	 * agent_undelivered.c; review rev-held s17, 3). Said once per spell. */
	if (logged_at > now + RETE_CLOCK_SKEW_MS) {
		if (!a->clock_ahead_said)
			agent_log(a, "error",
				  "the broker logged %s at %s, %" PRId64 " s after this machine "
				  "received its receipt (at %s by this machine's clock): the "
				  "broker's clock and this machine's differ by more than the %d "
				  "min two clocks may differ, or the broker post-dates its "
				  "receipts. The age of a message not delivered is counted from "
				  "this machine's time of receipt instead. Check this machine's "
				  "clock first (timedatectl: \"System clock synchronized: yes\", "
				  "NTP); if it is right, tell the broker's operator. Said once "
				  "until a receipt is dated within the tolerance",
				  it->id, rete_time_format(logged_at, t2), (logged_at - now) / 1000,
				  rete_time_format(now, t1), RETE_CLOCK_SKEW_MS / 60000);
		a->clock_ahead_said = true;
		return;
	}
	a->clock_ahead_said = false;
	if (took <= 0) {
		/* no time of taking recorded: nothing to compare */
	} else if (logged_at >= took - RETE_CLOCK_SKEW_MS) {
		if (a->clock_said_at != 0)
			agent_log(a, "info",
				  "the broker's clock and this machine's agree again (%s logged "
				  "%" PRId64
				  " s after this machine took it); since it was said at %s, %" PRIu64
				  " more message%s had the difference",
				  it->id, (logged_at - took) / 1000,
				  rete_time_format(a->clock_said_at, t1), a->clock_since,
				  a->clock_since == 1 ? "" : "s");
		a->clock_said_at = 0;
		a->clock_since = 0;
	} else if (a->clock_said_at != 0 && now >= a->clock_said_at &&
		   now - a->clock_said_at < CLOCK_SAY_AGAIN_MS) {
		a->clock_since++;
	} else {
		if (a->clock_said_at != 0)
			snprintf(since, sizeof(since),
				 " (still: %" PRIu64 " more message%s had the difference since it "
				 "was said at %s)",
				 a->clock_since, a->clock_since == 1 ? "" : "s",
				 rete_time_format(a->clock_said_at, t1));
		agent_log(a, "error",
			  "the broker logged %s at %s, %" PRId64 " s before this machine took it "
			  "(at %s by this machine's clock): the broker's clock and this machine's "
			  "differ by at least that, more than the %d min two clocks may differ%s. "
			  "Check this machine's clock first (timedatectl: \"System clock "
			  "synchronized: yes\", NTP); if it is right, tell the broker's operator: "
			  "the times the broker logs are its evidence (deadlines, overdue notices). "
			  "Said again in an hour while it lasts",
			  it->id, rete_time_format(logged_at, t2), (took - logged_at) / 1000,
			  rete_time_format(took, t1), RETE_CLOCK_SKEW_MS / 60000, since);
		a->clock_said_at = now;
		a->clock_since = 0;
	}
}

/* out_receipt_check verifies the receipt r for item it (protocol 3): the
 * checkpoint note with the pinned broker key and our log's origin, its
 * epoch not older than the WELCOME's, the index inside its tree, and the
 * proof from the leaf of OUR bytes to its root. true with *rc filled;
 * false raises the witness alarm (a receipt that does not prove what we
 * submitted, from the holder of the broker key) and the item is due again
 * after `resubmit`. */
static bool out_receipt_check(agent *a, out_item *it, const Rete__Receipt *r, out_rcpt *rc)
{
	const char *what = it->held ? "held message" : it->name;
	const char *note = r->checkpoint ? r->checkpoint : "";
	size_t len = strlen(note);
	rete_msg m = {{0}};
	uint32_t epoch = 0;
	char why[600];

	it->retry_at = rete_now_ms() + a->cfg.resubmit_ms;
	it->sent_at = 0;
	memset(rc, 0, sizeof(*rc));
	if (len == 0)
		snprintf(why, sizeof(why), "it has no checkpoint");
	else if (out_note_verify(a, note, len, &rc->cp, &m) != RETE_OK)
		snprintf(why, sizeof(why),
			 "its checkpoint does not verify with the pinned broker key as a "
			 "checkpoint of log '%s': %s",
			 a->origin, m.text);
	else if (strcmp(rc->cp.origin, a->origin) != 0)
		snprintf(why, sizeof(why), "its checkpoint is of log '%s', not '%s'", rc->cp.origin,
			 a->origin);
	else if (rete_checkpoint_epoch(note, len, &epoch, &m) != RETE_OK)
		snprintf(why, sizeof(why), "its checkpoint's epoch: %s", m.text);
	else if (epoch < a->epoch)
		snprintf(why, sizeof(why),
			 "its checkpoint is of log epoch %" PRIu32 ", older than epoch %" PRIu32
			 " the broker said it is in",
			 epoch, a->epoch);
	else if (r->index >= rc->cp.size)
		snprintf(why, sizeof(why),
			 "it names log index %" PRIu64 ", beyond its checkpoint of size %" PRIu64,
			 r->index, rc->cp.size);
	else if (!out_proved(it, r, &rc->cp, rc->leaf, &m)) {
		char hex[2 * RETE_MERKLE_HASH + 1];
		sodium_bin2hex(hex, sizeof(hex), rc->leaf, RETE_MERKLE_HASH);
		snprintf(why, sizeof(why),
			 "its inclusion proof does not lead from the entry of our signed bytes at "
			 "index %" PRIu64 " and that time (leaf %s) to the root of its checkpoint "
			 "of size %" PRIu64 ": %s",
			 r->index, hex, rc->cp.size, m.text);
	} else {
		rc->r = r;
		rc->index = r->index;
		rc->logged_at = r->logged_at;
		it->retry_at = 0;
		out_clock_check(a, it, r->logged_at);
		return true;
	}
	agent_witness_alarm(a,
			    "the broker's receipt for %s (%s) does not prove it is in the log: %s; "
			    "%s stays ours and is submitted again",
			    it->id, what, why, it->held ? "it" : "the file");
	return false;
}

/* out_receipt_json makes the text of a NAME.receipt.json: file (a new
 * reference, taken), our message id and the receipt's values (index,
 * loggedAt, the leaf of our entry, the inclusion proof and the checkpoint
 * note). malloc'd, NULL when out of memory. */
static char *out_receipt_json(agent *a, json_t *file, const char *id, const out_rcpt *rc)
{
	char buf[32], idx[24];
	json_t *doc = json_object();
	json_t *proof = json_array();
	char *leaf = rete_b64_encode(rc->leaf, RETE_MERKLE_HASH);
	bool ok = doc != NULL && proof != NULL && leaf != NULL;
	for (size_t i = 0; ok && i < rc->r->n_proof; i++) {
		char *h = rete_b64_encode(rc->r->proof[i].data, rc->r->proof[i].len);
		ok = h != NULL && json_array_append_new(proof, json_string(h)) == 0;
		free(h);
	}
	char *text = NULL;
	if (ok) {
		snprintf(idx, sizeof(idx), "%" PRIu64, rc->index);
		json_object_set_new(doc, "file", file ? json_incref(file) : json_string(""));
		json_object_set_new(doc, "messageId", json_string(id));
		json_object_set_new(doc, "sender", json_string(a->cfg.id));
		json_object_set_new(doc, "index", json_string(idx));
		json_object_set_new(doc, "leafHash", json_string(leaf));
		json_object_set_new(doc, "loggedAt",
				    json_string(rete_time_format(rc->logged_at, buf)));
		json_object_set_new(doc, "origin", json_string(rc->cp.origin));
		json_object_set_new(doc, "proof", json_incref(proof));
		json_object_set_new(doc, "checkpoint", json_string(rc->r->checkpoint));
		/* this machine's time of receipt: the age of a message not
		 * delivered counts from the earlier of it and loggedAt
		 * (agent_track_undelivered; review rev-held s17, 3) */
		json_object_set_new(doc, "receivedAt",
				    json_string(rete_time_format(rete_now_ms(), buf)));
		text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	}
	free(leaf);
	json_decref(proof);
	json_decref(doc);
	json_decref(file);
	return text;
}

/* out_round: the number of the latest resubmission round (meta "round";
 * 0 before any), read in the open transaction if there is one. */
static uint64_t out_round(agent *a)
{
	rete_buf v;
	rete_msg m = {{0}};
	uint64_t g = 0;
	if (agent_db_get(a->db, AGENT_DB_META, "round", 5, &v, &m) != RETE_OK)
		return 0;
	if (v.len == 8)
		for (int k = 0; k < 8; k++)
			g = (g << 8) | v.data[k];
	rete_buf_free(&v);
	return g;
}

/* out_round_reason: is a resubmission round due (meta "resubmit")? Its
 * reason into why (n bytes). */
static bool out_round_reason(agent *a, char *why, size_t n)
{
	rete_buf v;
	rete_msg m = {{0}};
	if (agent_db_get(a->db, AGENT_DB_META, "resubmit", 8, &v, &m) != RETE_OK)
		return false;
	snprintf(why, n, "%.*s", (int)v.len, v.data ? (const char *)v.data : "");
	rete_buf_free(&v);
	return true;
}

/* out_write_new writes dir/name with data, durably, only if the name is
 * free (a temporary file, then link(), which never replaces). RETE_EEXIST
 * when the name is taken, RETE_EIO. */
static rete_err out_write_new(const char *dir, const char *name, const char *data, size_t len,
			      rete_msg *m)
{
	char tmp[4400], path[4400];
	static unsigned seq;
	snprintf(tmp, sizeof(tmp), "%s/.rete-%ld-held%u.tmp", dir, (long)getpid(), ++seq);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "%s: %s", tmp, strerror(errno));
	rete_err err = RETE_OK;
	while (len > 0 && err == RETE_OK) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			err = rete_msg_set(m, RETE_EIO, "%s: %s", tmp, strerror(errno));
		else
			data += w, len -= (size_t)w;
	}
	if (err == RETE_OK && fsync(fd) != 0)
		err = rete_msg_set(m, RETE_EIO, "%s: fsync: %s", tmp, strerror(errno));
	close(fd);
	if (err == RETE_OK && link(tmp, path) != 0)
		err = errno == EEXIST ? RETE_EEXIST
				      : rete_msg_set(m, RETE_EIO, "%s: %s", path, strerror(errno));
	unlink(tmp);
	if (err == RETE_OK)
		err = agent_spool_fsync_dir(dir, m);
	return err;
}

/* out_held_answer writes the answer of a held message that ends without
 * its delivery receipt (a final refusal when it was submitted again, or a
 * frame the broker no longer takes). Its outbox file went to sent/ long
 * ago, so the answer is a file of its own: failed/held-ID.error.json
 * (held-ID.2.error.json ... when taken; never overwriting), with the name
 * it was sent as ("file") and the log index of its latest receipt; note
 * (may be NULL) is the agent's own (out_refusal_note), as "agentNote". The
 * name taken goes into used. RETE_EIO, RETE_ENOMEM. */
static rete_err out_held_answer(agent *a, const out_item *it, const char *code, const char *field,
				const char *error, const char *signed_refusal, const char *note,
				char *used, size_t used_len, rete_msg *m)
{
	agent_idrec rec;
	rete_msg im = {{0}};
	char idx[24];
	json_t *doc = json_object();
	if (doc == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	if (agent_db_id_get(a->db, it->id, &rec, &im) == RETE_OK) {
		json_t *r = json_loads(rec.receipt_json ? rec.receipt_json : "", 0, NULL);
		json_t *f = r ? json_object_get(r, "file") : NULL;
		if (f != NULL)
			json_object_set(doc, "file", f);
		json_decref(r);
		free(rec.receipt_json);
	}
	json_object_set_new(doc, "messageId", json_string(it->id));
	json_object_set_new(doc, "code", json_string(code));
	if (field != NULL && field[0] != '\0')
		json_object_set_new(doc, "field", json_string(field));
	json_object_set_new(doc, "error", json_string(error));
	snprintf(idx, sizeof(idx), "%" PRIu64, it->held_index);
	json_object_set_new(doc, "receiptIndex", json_string(idx));
	if (signed_refusal != NULL) /* the broker's signed statement (protocol 3) */
		json_object_set_new(doc, "signedRefusal", json_string(signed_refusal));
	if (note != NULL && note[0] != '\0')
		json_object_set_new(doc, "agentNote", json_string(note));
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL; written with its length */
	rete_err err = RETE_EEXIST;
	for (unsigned k = 1; k < 1000 && err == RETE_EEXIST; k++) {
		if (k == 1)
			snprintf(used, used_len, "held-%s.error.json", it->id);
		else
			snprintf(used, used_len, "held-%s.%u.error.json", it->id, k);
		err = out_write_new(a->failed_dir, used, text, len + 1, m);
	}
	free(text);
	if (err == RETE_EEXIST)
		err = rete_msg_set(m, RETE_EIO, "%s: no free name for held-%s.error.json",
				   a->failed_dir, it->id);
	return err;
}

/* out_held_final ends held item i without its delivery receipt: the answer
 * in failed/ first, then the held record goes (a crash between: the round
 * submits it again and the same answer comes once more, under a new name).
 * what says in the log what happened; signed_refusal (may be NULL) is the
 * broker's SignedRefusal in base64, kept in the answer, note (may be NULL)
 * the agent's own words. false when the answer could not be written: the
 * item stays, and is tried again. */
static bool out_held_final_doc(agent *a, size_t i, const char *code, const char *field,
			       const char *error, const char *what, const char *signed_refusal,
			       const char *note)
{
	out_item *it = &a->out_items[i];
	char used[300];
	rete_msg m = {{0}};
	if (out_held_answer(a, it, code, field, error, signed_refusal, note, used, sizeof(used),
			    &m) != RETE_OK) {
		agent_log(a, "error",
			  "held message %s %s (%s): %s; but its answer cannot be written in "
			  "failed/: %s; still held, trying again later",
			  it->id, what, code, error, m.text);
		it->retry_at = rete_now_ms() + a->cfg.resubmit_ms;
		it->sent_at = 0;
		return false;
	}
	if (note != NULL && note[0] != '\0')
		agent_log(a, "warning", "held message %s: %s", it->id, note);
	agent_log(a, "warning",
		  "held message %s %s (%s): %s; no longer held; answered in failed/%s", it->id,
		  what, code, error, used);
	if (agent_db_del(a->db, AGENT_DB_HELD, it->id, strlen(it->id), &m) != RETE_OK)
		agent_log(a, "error", "held message %s: %s", it->id, m.text);
	item_remove(a, i);
	a->held_check = true;
	return true;
}

static bool out_held_final(agent *a, size_t i, const char *code, const char *field,
			   const char *error, const char *what)
{
	return out_held_final_doc(a, i, code, field, error, what, NULL, NULL);
}

/* out_hold records, in the open transaction, what we must keep of a
 * receipted message: the signed bytes and sealed part until its delivery
 * receipt ("held"), the content hash and receipt of its id for good
 * ("ids"). receipt_json NULL: keep the id record as it is. */
static rete_err out_hold(agent *a, const out_item *it, const out_rcpt *rc, const char *receipt_json,
			 rete_msg *m)
{
	agent_held h = {.index = rc->index,
			.round = out_round(a),
			.signed_msg = it->signed_msg,
			.sealed = it->sealed};
	rete_buf have = {0};
	memcpy(h.leaf, rc->leaf, RETE_MERKLE_HASH);
	rete_err err = agent_db_get(a->db, AGENT_DB_HELD, it->id, strlen(it->id), &have, m);
	bool delivered = err == RETE_OK && have.len == 0;
	rete_buf_free(&have);
	if (err != RETE_OK && err != RETE_ENOENT)
		return err;
	err = delivered ? RETE_OK : agent_db_held_put(a->db, it->id, &h, m);
	/* never a content the file did not have: an id record of the wrong
	 * content would refuse the same file later as id-reused */
	if (err == RETE_OK && receipt_json != NULL && !it->no_content) {
		agent_idrec r = {.index = rc->index, .receipt_json = (char *)receipt_json};
		memcpy(r.content, it->content, RETE_HASH_LEN);
		err = agent_db_id_put(a->db, it->id, &r, m);
	}
	return err;
}

/* out_rcpt_is: does the receipt document doc (a NAME.receipt.json, or the
 * text an id record keeps) name the entry rc proves: the same index and
 * the same leaf (the same index in a later epoch is another entry)? */
static bool out_rcpt_is(json_t *doc, const out_rcpt *rc)
{
	const char *idx = json_string_value(json_object_get(doc, "index"));
	const char *leaf = json_string_value(json_object_get(doc, "leafHash"));
	char *want = rete_b64_encode(rc->leaf, RETE_MERKLE_HASH);
	bool same = idx != NULL && leaf != NULL && want != NULL &&
		    strtoull(idx, NULL, 10) == rc->index && strcmp(leaf, want) == 0;
	free(want);
	return same;
}

/* out_rcpt_epoch: the log epoch of the checkpoint a receipt document
 * carries (1 for a note without an epoch line, 0 when it has none). */
static uint32_t out_rcpt_epoch(json_t *doc)
{
	const char *note = json_string_value(json_object_get(doc, "checkpoint"));
	uint32_t epoch = 0;
	rete_msg m = {{0}};
	if (note == NULL || rete_checkpoint_epoch(note, strlen(note), &epoch, &m) != RETE_OK)
		return 0;
	return epoch;
}

/* out_sent_renewed makes the text of sent/USED.receipt.json (now: what it
 * holds) once the message it answers was receipted again at rc: the new
 * receipt (out_receipt_json, the same "file"), its "epoch", and
 * "previousReceipts": those the file kept already, then the one it held
 * (every member but file, messageId and sender, with its epoch), so that
 * it stays the evidence of what the earlier epoch's log held. malloc'd;
 * NULL when out of memory. */
static char *out_sent_renewed(agent *a, json_t *now, const char *id, const out_rcpt *rc)
{
	char *text = out_receipt_json(a, json_incref(json_object_get(now, "file")), id, rc);
	json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
	json_t *prev = json_array(), *was = json_object();
	const char *key;
	json_t *v;
	free(text);
	text = NULL;
	if (doc != NULL && prev != NULL && was != NULL) {
		json_object_foreach(now, key, v)
		{
			if (strcmp(key, "previousReceipts") == 0)
				json_array_extend(prev, v);
			else if (strcmp(key, "file") && strcmp(key, "messageId") &&
				 strcmp(key, "sender") && strcmp(key, "epoch"))
				json_object_set(was, key, v);
		}
		json_object_set_new(was, "epoch", json_integer(out_rcpt_epoch(now)));
		json_array_append(prev, was);
		json_object_set_new(doc, "epoch", json_integer(out_rcpt_epoch(doc)));
		json_object_set(doc, "previousReceipts", prev);
		text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	}
	json_decref(was);
	json_decref(prev);
	json_decref(doc);
	return text;
}

struct out_sent_find {
	const char *id;
	char *used;
	size_t n;
	json_t *doc;
	json_t *all; /* out_sent_renew: every NAME.receipt.json naming id */
};

/* out_sent_take: out_each_receipt's fn for out_sent_of and out_sent_renew:
 * stops at the first receipt naming the message id, or, with all, appends
 * the names of all of them to it. */
static bool out_sent_take(agent *a, const char *name, const struct stat *st, void *ctx)
{
	struct out_sent_find *f = ctx;
	char path[4400];
	(void)st;
	snprintf(path, sizeof(path), "%s/%s", a->sent_dir, name);
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	const char *mid = json_string_value(json_object_get(j, "messageId"));
	if (mid == NULL || strcmp(mid, f->id) != 0 || f->all != NULL) {
		if (mid != NULL && strcmp(mid, f->id) == 0)
			json_array_append_new(f->all, json_string(name));
		json_decref(j);
		return true;
	}
	snprintf(f->used, f->n, "%.*s", (int)(strlen(name) - strlen(".receipt.json")), name);
	f->doc = j;
	return false;
}

/* out_sent_renew_one: sent/cname, a receipt of held message id, is
 * rewritten with rc (out_sent_renewed; durably, replacing it; its time
 * kept, so that its retention still counts from the first acceptance)
 * when it names another entry. true when rewritten; what it named goes
 * to was (its index) and *epoch. */
static bool out_sent_renew_one(agent *a, const char *id, const char *cname, const out_rcpt *rc,
			       char *was, size_t wn, uint32_t *epoch)
{
	char path[4400];
	struct stat st;
	rete_msg m = {{0}};
	snprintf(path, sizeof(path), "%s/%s", a->sent_dir, cname);
	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	json_t *now = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	if (now == NULL || out_rcpt_is(now, rc)) {
		json_decref(now);
		return false;
	}
	const char *idx = json_string_value(json_object_get(now, "index"));
	snprintf(was, wn, "%s", idx ? idx : "?");
	*epoch = out_rcpt_epoch(now);
	char *text = out_sent_renewed(a, now, id, rc);
	json_decref(now);
	rete_err err = text ? RETE_OK : rete_msg_set(&m, RETE_ENOMEM, "out of memory");
	if (err == RETE_OK) {
		size_t len = strlen(text);
		text[len] = '\n'; /* replaces the NUL; written with its length */
		err = agent_spool_write(a->sent_dir, cname, text, len + 1, &m);
	}
	free(text);
	if (err != RETE_OK) {
		agent_log(a, "error",
			  "held message %s: receipted again at log index %" PRIu64
			  ", but sent/%s cannot be rewritten with it: %s; it still names log "
			  "index %s, which may hold another entry now",
			  id, rc->index, cname, m.text, was);
		return false;
	}
	struct timespec ts[2] = {st.st_mtim, st.st_mtim};
	utimensat(AT_FDCWD, path, ts, 0); /* its retention: from the first receipt */
	return true;
}

/* out_sent_renew: held message id was receipted again at rc, another
 * entry (a restore lost the one its receipts name, whose index may hold
 * another entry now): every receipt the case system may read, each
 * sent/USED.receipt.json naming the message (the file it was sent as, and
 * copies given to the same file sent again), is rewritten with the new one
 * (out_sent_renew_one). sent/ is read whole: this is rare, after a restore
 * only. Done before the id record follows, and only while a file names
 * another entry: a stop in between rewrites nothing twice. said gets the
 * log's words for it ("" when no file was rewritten: none there any more,
 * or they name rc already). */
static void out_sent_renew(agent *a, const char *id, const out_rcpt *rc, char *said, size_t n)
{
	struct out_sent_find f = {.id = id, .all = json_array()};
	size_t i, done = 0, unsaid = 0;
	json_t *v;
	said[0] = '\0';
	if (f.all == NULL)
		return;
	out_each_receipt(a, out_sent_take, &f);
	json_array_foreach(f.all, i, v)
	{
		const char *cname = json_string_value(v);
		char was[24];
		uint32_t epoch = 0;
		if (!out_sent_renew_one(a, id, cname, rc, was, sizeof(was), &epoch))
			continue;
		size_t l = strlen(said);
		int w = done++ == 0 ? snprintf(said + l, n - l,
					       "; sent/%s now names it (it named log index %s of "
					       "epoch %" PRIu32 ", kept in it as previousReceipts)",
					       cname, was, epoch)
				    : snprintf(said + l, n - l, ", and so does sent/%s", cname);
		if (w < 0 || (size_t)w + 64 >= n - l) {
			said[l] = '\0'; /* no room (64 kept for the count): said below */
			unsaid++;
		}
	}
	if (unsaid > 0) {
		size_t l = strlen(said);
		snprintf(said + l, n - l, "%s%zu receipt file(s) of it in sent/ rewritten too",
			 l ? ", and " : "; ", unsaid);
	}
	json_decref(f.all);
}

/* out_was: what the agent recorded of a held message's latest receipt,
 * when a new receipt names another entry (moved). */
typedef struct out_was {
	bool moved;
	uint64_t index;
	uint32_t epoch;
	uint8_t content[RETE_HASH_LEN]; /* the id record's content hash */
	char *kept;			/* the receipt text its id record keeps (malloc'd) */
} out_was;

/* out_held_was: does rc name another entry than the receipt the id record
 * of id keeps (a restore lost that one)? Then *w gets that receipt's index,
 * epoch and text. false when it is the same entry, or there is no record
 * (an older store: nothing to follow). */
static bool out_held_was(agent *a, const char *id, const out_rcpt *rc, out_was *w)
{
	agent_idrec rec;
	rete_msg m = {{0}};
	if (agent_db_id_get(a->db, id, &rec, &m) != RETE_OK)
		return false;
	json_t *kept = json_loads(rec.receipt_json ? rec.receipt_json : "", 0, NULL);
	w->moved = kept != NULL ? !out_rcpt_is(kept, rc) : rec.index != rc->index;
	w->index = rec.index;
	memcpy(w->content, rec.content, RETE_HASH_LEN);
	w->epoch = kept ? out_rcpt_epoch(kept) : 0;
	json_decref(kept);
	if (w->moved)
		w->kept = rec.receipt_json;
	else
		free(rec.receipt_json);
	return w->moved;
}

/* out_held_renew_id: the id record of held message id, receipted again
 * at rc, another entry than the one its record names (w, from
 * out_held_was), follows its receipt (index and receipt text, under the
 * name it was sent as), so that the same file sent again is answered with
 * the receipt the log holds now, not one of an epoch a restore left behind.
 * In the open transaction. */
static rete_err out_held_renew_id(agent *a, const char *id, const out_was *w, const out_rcpt *rc,
				  rete_msg *m)
{
	json_t *old = json_loads(w->kept ? w->kept : "", 0, NULL);
	json_t *file = old ? json_object_get(old, "file") : NULL;
	char *text = out_receipt_json(a, file ? json_incref(file) : NULL, id, rc);
	json_decref(old);
	if (text == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	agent_idrec rec = {.index = rc->index, .receipt_json = text};
	memcpy(rec.content, w->content, RETE_HASH_LEN);
	rete_err err = agent_db_id_put(a->db, id, &rec, m);
	free(text);
	return err;
}

/* out_held_track: the referral's record (`rete status`) follows held item
 * it, receipted again at rc instead of at w's entry (agent_track_moved),
 * in the open transaction. */
static rete_err out_held_track(agent *a, const out_item *it, const out_was *w, const out_rcpt *rc,
			       rete_msg *m)
{
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_msg dm = {{0}};
	const char *note = rc->r->checkpoint ? rc->r->checkpoint : "";
	uint32_t epoch = 0;
	if (rete_checkpoint_epoch(note, strlen(note), &epoch, &dm) != RETE_OK)
		epoch = 0;
	if (rete_signed_decode(it->signed_msg.data, it->signed_msg.len, &sm, &msg, &dm) != RETE_OK)
		return RETE_OK; /* our own bytes: cannot happen; the status stays */
	rete_err err =
	    agent_track_moved(a->db, msg, w->index, w->epoch, rc->index, rc->logged_at, epoch, m);
	rete__message__free_unpacked(msg, NULL);
	rete__signed_message__free_unpacked(sm, NULL);
	return err;
}

/* out_held_receipted: a held message submitted again has its receipt (the
 * original one when the broker still had it, else a new entry): the held
 * record (with the round's number), its id record and the witness follow
 * the receipt; no file moves. */
static void out_held_receipted(agent *a, size_t i, const out_rcpt *rc)
{
	out_item *it = &a->out_items[i];
	rete_msg m = {{0}};
	rete_err err = RETE_OK;
	char said[4 * AGENT_SPOOL_NAME_MAX + 400] = "";
	out_was was = {0};
	/* another entry than its receipt names: the agency's files first */
	if (out_held_was(a, it->id, rc, &was))
		out_sent_renew(a, it->id, rc, said, sizeof(said));
	for (int attempt = 0; attempt < 2; attempt++) {
		rete_buf have;
		err = agent_db_begin(a->db, &m);
		/* Still held? Its delivery receipt may have come meanwhile. */
		bool still = err == RETE_OK && agent_db_get(a->db, AGENT_DB_HELD, it->id,
							    strlen(it->id), &have, &m) == RETE_OK;
		if (still) {
			still = have.len > 0; /* empty: delivered meanwhile */
			rete_buf_free(&have);
		}
		if (still)
			err = out_hold(a, it, rc, NULL, &m);
		if (err == RETE_OK && still && was.moved)
			err = out_held_renew_id(a, it->id, &was, rc, &m);
		if (err == RETE_OK && was.moved)
			err = out_held_track(a, it, &was, rc, &m);
		if (err == RETE_OK && still)
			agent_witness_receipt(a, rc->index, rc->leaf, rc->cp.size, rc->cp.root);
		err = agent_db_end(a->db, err, &m);
		if (err != RETE_EFULL)
			break;
	}
	free(was.kept);
	if (err != RETE_OK) {
		agent_log(a, "error", "held message %s: cannot record its receipt: %s", it->id,
			  m.text);
		it->retry_at = rete_now_ms() + a->cfg.resubmit_ms;
		return;
	}
	agent_log(a, "info",
		  "held message %s receipted again at log index %" PRIu64
		  "; held until its delivery receipt%s",
		  it->id, rc->index, said);
	item_remove(a, i);
	a->held_check = true;
}

/* out_accept writes sent/NAME.receipt.json, moves the file, records the
 * referral's status, holds the message until its delivery receipt and
 * forgets the outbox record. */
static void out_accept(agent *a, size_t i, const Rete__Receipt *r)
{
	out_item *it = &a->out_items[i];
	rete_msg m = {{0}};
	out_rcpt rc;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	json_t *said = NULL;

	if (!out_receipt_check(a, it, r, &rc))
		return;
	if (it->held) {
		out_held_receipted(a, i, &rc);
		return;
	}
	char *text = out_receipt_json(a, json_string(it->name), it->id, &rc);
	if (text == NULL)
		goto out;
	/* The referral's status and the receipt to witness are recorded
	 * first (applying them twice changes nothing), so that a file in
	 * sent/ always has its status recorded; the outbox record is forgotten
	 * last, once the file has left outbox/ (never before: a crash would
	 * then mint the file a second id). */
	rete_err terr = agent_db_begin(a->db, &m);
	if (terr == RETE_OK &&
	    rete_signed_decode(it->signed_msg.data, it->signed_msg.len, &sm, &msg, &m) == RETE_OK)
		terr = agent_track_apply(a->db, a->cfg.id, msg, rc.index, rc.logged_at, &m);
	if (terr == RETE_OK)
		agent_witness_receipt(a, rc.index, rc.leaf, rc.cp.size, rc.cp.root);
	if (terr == RETE_OK)
		terr = out_hold(a, it, &rc, text, &m);
	/* a delivery receipt that came before this receipt is judged now,
	 * against the entry and leaf hash just recorded (agent_delivery.c) */
	if (terr == RETE_OK)
		terr = agent_delivery_judge_early(a, it->id, &said, &m);
	terr = agent_db_end(a->db, terr, &m);
	if (terr != RETE_OK)
		goto fail;
	agent_delivery_say_early(a, &said);
	/* --- sent/ naming and the move (agent_spool_answer_put): never
	 * overwriting; only the file that was submitted moves (identity and
	 * content); one replaced meanwhile stays in outbox/ as a new file and
	 * sent/ gets the message as it was signed and sent. */
	size_t len = strlen(text);
	text[len] = '\n';
	agent_spool_answer ans = {.from_dir = a->outbox_dir,
				  .name = it->name,
				  .orig = &it->ident,
				  .to_dir = a->sent_dir,
				  .suffix = ".receipt.json",
				  .companion = text,
				  .companion_len = len + 1,
				  .id = it->id,
				  .fallback_fn = out_as_sent,
				  .fallback_user = &it->signed_msg};
	if (agent_spool_answer_put(&ans, &m) != RETE_OK)
		goto fail;
	agent_privacy_filed(a, "sent", it->id, ans.used, NULL);
	out_forget(a, it->name, it->hash);
	agent_log(a, "info", "%s: accepted as %s at log index %" PRIu64 "; moved to sent/%s%s",
		  it->name, it->id, rc.index, ans.used,
		  ans.replaced ? " (the message as sent: outbox/ holds another file of that name "
				 "now, taken in as a new file)"
		  : ans.gone   ? " (the message as sent: the file had left outbox/)"
			       : "");
	if (ans.replaced)
		a->out_rescan = true;
	item_remove(a, i);
	goto out;
fail:
	agent_log(a, "error", "%s: accepted, but cannot record it or move it to sent/: %s",
		  it->name, m.text);
	it->retry_at = rete_now_ms() + a->cfg.resubmit_ms;
	it->sent_at = 0;
out:
	json_decref(said);
	free(text);
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
}

static bool transient_error(Rete__ErrorCode e)
{
	/* NO_TIMESTAMP: the broker's timestamp_grace; it accepts again
	 * once its TSA answers */
	return e == RETE__ERROR_CODE__ERROR_CODE_BUSY ||
	       e == RETE__ERROR_CODE__ERROR_CODE_STORAGE_FULL ||
	       e == RETE__ERROR_CODE__ERROR_CODE_INTERNAL ||
	       e == RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP;
}

/* The refusals of a held message submitted again that may only say that it
 * came before what it depends on (a referral's update before the referral,
 * after a restore): it goes behind the other held messages and is tried
 * again, at most this many times, before the refusal is taken as final. */
#define OUT_HELD_TRIES 3

static bool order_error(Rete__ErrorCode e)
{
	return e == RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL ||
	       e == RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE;
}

/* out_find_item: the signed item an answer for message id r->message_id
 * is about. Two items may carry one id (the same id written twice into
 * outbox/, or a held message and a file sent again): a receipt belongs to
 * the one whose entry its proof leads from, so an honest receipt is never
 * checked against the other's bytes (a false witness alarm); when none
 * matches (or for a refusal), the first. a->out_n when there is none. */
static size_t out_find_item(agent *a, const Rete__Receipt *r)
{
	size_t first = a->out_n;
	rete_checkpoint cp;
	rete_msg m = {{0}};
	bool proof =
	    r->message_id != NULL && r->error == 0 && r->checkpoint != NULL &&
	    rete_checkpoint_parse(r->checkpoint, strlen(r->checkpoint), &cp, &m) == RETE_OK &&
	    r->index < cp.size;
	if (r->message_id == NULL)
		return first;
	for (size_t i = 0; i < a->out_n; i++) {
		out_item *it = &a->out_items[i];
		if (it->state != AGENT_OUT_SIGNED || strcmp(it->id, r->message_id) != 0)
			continue;
		if (first == a->out_n)
			first = i;
		uint8_t ours[RETE_MERKLE_HASH];
		if (!proof || !out_proved(it, r, &cp, ours, &m))
			continue;
		first = i;
		break;
	}
	return first;
}

/* out_refusal_trusted checks the broker's signed statement of refusal r of
 * item it (protocol 3): a SignedRefusal that verifies with the pinned
 * broker key, whose body names this log, our party, the message's id, the
 * SHA-256 of the very bytes we submitted, and the code, sentence and field
 * the refusal says. *b64 gets the SignedRefusal's bytes in base64 (caller
 * frees) for failed/NAME.error.json. false (with the witness alarm, and the
 * item due again after `resubmit`): a refusal the broker did not sign, or
 * not of this message, is not taken as the answer. */
static bool out_refusal_trusted(agent *a, out_item *it, const Rete__Receipt *r, char **b64)
{
	Rete__RefusalBody *body = NULL;
	rete_msg m = {{0}};
	uint8_t ours[RETE_HASH_LEN];
	const char *why = NULL;
	*b64 = NULL;
	rete_sha256(ours, it->signed_msg.data, it->signed_msg.len);
	if (rete_refusal_verify(r->signed_refusal, &a->broker_pk, &body, &m) != RETE_OK)
		why = m.text;
	else if (a->origin[0] != '\0' && strcmp(body->origin, a->origin) != 0)
		why = "its signed body names another log";
	else if (strcmp(body->party, a->cfg.id) != 0)
		why = "its signed body names another party";
	else if (strcmp(body->message_id, it->id) != 0)
		why = "its signed body names another message";
	else if (body->message_sha256.len != RETE_HASH_LEN ||
		 sodium_memcmp(body->message_sha256.data, ours, RETE_HASH_LEN) != 0)
		why = "its signed body names other bytes than the ones we submitted";
	else if (body->error != r->error ||
		 strcmp(body->error_text, r->error_text ? r->error_text : "") != 0 ||
		 strcmp(body->field, r->field ? r->field : "") != 0)
		why = "its signed body says another code, sentence or field than the refusal";
	if (body != NULL)
		rete__refusal_body__free_unpacked(body, NULL);
	if (why == NULL) {
		size_t len = rete__signed_refusal__get_packed_size(r->signed_refusal);
		uint8_t *bytes = malloc(len ? len : 1);
		if (bytes != NULL) {
			rete__signed_refusal__pack(r->signed_refusal, bytes);
			*b64 = rete_b64_encode(bytes, len);
			free(bytes);
		}
		return true;
	}
	agent_witness_alarm(a,
			    "the broker's refusal of %s (%s: %s) is not its signed statement: "
			    "%s; the refusal is not taken, %s stays ours and is submitted again",
			    it->id, it->held ? "held message" : it->name,
			    r->error_text ? r->error_text : "", why, it->held ? "it" : "the file");
	it->retry_at = rete_now_ms() + a->cfg.resubmit_ms;
	it->sent_at = 0;
	return false;
}

static void out_refused(agent *a, size_t i, const Rete__Receipt *r, const char *signed_refusal);

void agent_outbox_on_receipt(agent *a, const Rete__Receipt *r)
{
	size_t i = out_find_item(a, r);

	if (i == a->out_n) {
		if (r->error == RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_PARTY)
			agent_keys_own_refused(a);
		if (r->error != 0)
			agent_log(a, "warning", "the broker refused a frame%s%s: %s",
				  r->message_id && r->message_id[0] ? " for " : "",
				  r->message_id ? r->message_id : "",
				  r->error_text ? r->error_text : "");
		else
			agent_debug(a, "receipt for %s, which is no longer in outbox/",
				    r->message_id ? r->message_id : "?");
		return;
	}
	out_item *it = &a->out_items[i];
	it->waiting_since = 0; /* answered: the broker is not stalled on it */
	if (r->error == 0 && r->checkpoint != NULL && r->checkpoint[0] != '\0') {
		out_accept(a, i, r);
		return;
	}
	if (r->error == 0 || transient_error(r->error)) {
		agent_log(a, "warning",
			  "%s: the broker cannot take %s now (%s); trying again later",
			  it->held ? "held message" : it->name, it->id,
			  r->error_text ? r->error_text : "no receipt");
		it->retry_at = rete_now_ms() + a->cfg.resubmit_ms;
		it->sent_at = 0;
		return;
	}
	/* A final refusal ends the message's journey: only on the broker's
	 * signature (a transient one changes nothing: it is tried again). */
	char *signed_refusal = NULL;
	if (!out_refusal_trusted(a, it, r, &signed_refusal))
		return;
	out_refused(a, i, r, signed_refusal);
	free(signed_refusal);
}

/* out_sent_of: the receipt in sent/ of message id, whose id record this
 * agent does not have: the first USED.receipt.json naming it (found: USED
 * into used, the receipt, a new reference, into *doc). sent/ is read whole:
 * for a refusal that is rare (id-reused), never in the normal path. */
static bool out_sent_of(agent *a, const char *id, char *used, size_t n, json_t **doc)
{
	struct out_sent_find f = {.id = id, .used = used, .n = n};
	out_each_receipt(a, out_sent_take, &f);
	*doc = f.doc;
	return f.doc != NULL;
}

bool agent_outbox_sent_receipt(agent *a, const char *id, char *used, size_t n)
{
	json_t *doc = NULL;
	bool found = out_sent_of(a, id, used, n, &doc);
	json_decref(doc);
	return found;
}

/* out_note_reused: the agent's own words on the broker's id-reused refusal
 * of item it when this agent has no record of its id but sent/ has a
 * receipt of it: its data folder is older than its spool (put back from an
 * older copy). The same content: the receipt in sent/ is this file's, and
 * nothing is lost; other content: a new id is needed. "" otherwise (the
 * broker's sentence says it all). */
static void out_note_reused(agent *a, const out_item *it, char *note, size_t n)
{
	agent_idrec rec;
	rete_msg m = {{0}};
	char used[300], path[4400];
	json_t *doc = NULL;
	if (agent_db_id_get(a->db, it->id, &rec, &m) == RETE_OK) {
		free(rec.receipt_json); /* known here: the refusal is what it says */
		return;
	}
	if (!out_sent_of(a, it->id, used, sizeof(used), &doc))
		return;
	const char *idx = json_string_value(json_object_get(doc, "index"));
	char *text = NULL;
	size_t len = 0;
	uint8_t content[RETE_HASH_LEN];
	bool same = !it->no_content &&
		    agent_spool_read(a->sent_dir, used, OUT_FILE_MAX, &text, &len, &m) == RETE_OK;
	if (same) {
		out_content_hash(text, len, content);
		same = sodium_memcmp(content, it->content, RETE_HASH_LEN) == 0;
	}
	free(text);
	snprintf(path, sizeof(path), "sent/%s.receipt.json", used);
	if (same)
		snprintf(note, n,
			 "this very message (the same content) was sent before by this agency: "
			 "%s is its receipt (message %s, log index %s). The broker refused it "
			 "again because this agent signed it anew, having no record of sending it: "
			 "its data folder (%s) is older than its spool (put back from an older "
			 "copy?). Nothing is lost and nothing more is needed for this file; see "
			 "docs/operations.md, \"Restoring an agent's data folder\"",
			 path, it->id, idx ? idx : "?", a->cfg.data);
	else
		snprintf(note, n,
			 "this agency used message id %s before, for sent/%s (receipt: %s, log "
			 "index %s), which this agent has no record of: its data folder (%s) is "
			 "older than its spool (put back from an older copy?). Give this message a "
			 "new id; see docs/operations.md, \"Restoring an agent's data folder\"",
			 it->id, used, path, idx ? idx : "?", a->cfg.data);
	json_decref(doc);
}

/* out_note_unknown: the agent's own words on an unknown-referral refusal
 * of item it (an update or note) when this agency has the referral in its
 * records (it sent or received it): the id is right, and the broker's log
 * lost the referral (a restore of its store). "" otherwise. */
static void out_note_unknown(agent *a, const out_item *it, char *note, size_t n)
{
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_msg m = {{0}};
	json_t *rec = NULL;
	if (rete_signed_decode(it->signed_msg.data, it->signed_msg.len, &sm, &msg, &m) != RETE_OK)
		return;
	const char *rid = rete_message_referral_id(msg);
	if (rid[0] != '\0' && agent_track_get(a->db, rid, &rec, &m) == RETE_OK) {
		const char *req = json_string_value(json_object_get(rec, "requester"));
		const char *idx = json_string_value(json_object_get(rec, "index"));
		bool ours = req != NULL && strcmp(req, a->cfg.id) == 0;
		char where[800] = "";
		agent_idrec ir;
		if (ours && agent_db_id_get(a->db, rid, &ir, &m) == RETE_OK) {
			json_t *r = json_loads(ir.receipt_json ? ir.receipt_json : "", 0, NULL);
			const char *file = json_string_value(json_object_get(r, "file"));
			char used[300];
			struct timespec at;
			if (file != NULL &&
			    agent_spool_answer_find(a->sent_dir, file, ".receipt.json", rid, used,
						    sizeof(used), &at))
				snprintf(where, sizeof(where),
					 ", sent as sent/%s (its receipt: "
					 "sent/%s.receipt.json)",
					 used, used);
			else if (file != NULL)
				snprintf(where, sizeof(where), ", sent as %s", file);
			json_decref(r);
			free(ir.receipt_json);
		}
		snprintf(
		    note, n,
		    "the referral id is right: this agency has referral %s in its records "
		    "(%s%s, at log index %s%s). The broker's log no longer has it, most likely "
		    "lost by a restore of the broker's store (epoch %" PRIu32 " now): %s "
		    "must first send it again as a new referral, with a new id and "
		    "previousReferral \"%s\", and this message must then name the new "
		    "referral (docs/operations.md, \"Restoring a backup\")",
		    rid, ours ? "requested by this agency" : "received from ",
		    ours ? "" : (req ? req : "its requester"), idx ? idx : "?", where, a->epoch,
		    ours ? "this agency" : (req ? req : "its requester"), rid);
		json_decref(rec);
	}
	rete__message__free_unpacked(msg, NULL);
	rete__signed_message__free_unpacked(sm, NULL);
}

/* out_refusal_note: what the agent adds of its own to a final refusal of
 * item it (code) in its failed/ file ("agentNote") and log: "" when it
 * knows nothing more than the broker said. */
static void out_refusal_note(agent *a, const out_item *it, Rete__ErrorCode code, char *note,
			     size_t n)
{
	note[0] = '\0';
	if (it->state != AGENT_OUT_SIGNED)
		return;
	if (code == RETE__ERROR_CODE__ERROR_CODE_ID_REUSED)
		out_note_reused(a, it, note, n);
	else if (code == RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL)
		out_note_unknown(a, it, note, n);
}

/* out_refused ends item i on the broker's final refusal r (signed:
 * signed_refusal, its SignedRefusal in base64, or NULL). */
static void out_refused(agent *a, size_t i, const Rete__Receipt *r, const char *signed_refusal)
{
	out_item *it = &a->out_items[i];
	const char *code = rete_enum_json_name(&rete__error_code__descriptor, (int)r->error);
	if (!it->held && r->error == RETE__ERROR_CODE__ERROR_CODE_ID_REUSED) {
		/* The same file twice in outbox/ at once: the first's receipt
		 * came before this refusal. Same content: its receipt too. */
		char name[256];
		uint8_t hash[RETE_HASH_LEN], content[RETE_HASH_LEN];
		char id[128];
		snprintf(name, sizeof(name), "%s", it->name);
		memcpy(hash, it->hash, sizeof(hash));
		memcpy(content, it->content, sizeof(content));
		snprintf(id, sizeof(id), "%s", it->id);
		rete_msg m = {{0}};
		agent_idrec rec;
		if (agent_db_id_get(a->db, id, &rec, &m) == RETE_OK) {
			bool same = sodium_memcmp(rec.content, content, RETE_HASH_LEN) == 0;
			free(rec.receipt_json);
			if (same) {
				agent_spool_ident ident = it->ident;
				item_remove(a, i);
				out_known_id(a, name, &ident, id, content);
				out_forget(a, name, hash);
				return;
			}
		}
	}
	if (it->held && order_error(r->error) && it->held_tries < OUT_HELD_TRIES) {
		/* Perhaps only out of order (what it depends on is itself being
		 * submitted again, here or by another agency): behind the other
		 * held messages, and again after `resubmit`. */
		uint64_t last = it->held_index;
		for (size_t k = 0; k < a->out_n; k++)
			if (a->out_items[k].held && a->out_items[k].held_index > last)
				last = a->out_items[k].held_index;
		it->held_tries++;
		it->held_index = last + 1; /* in memory only: the order of this round */
		it->sent_at = 0;
		it->retry_at = rete_now_ms() + a->cfg.resubmit_ms;
		agent_log(a, "warning",
			  "held message %s: the broker answered %s (%s) when it was submitted "
			  "again; trying again after the other held messages (%d of %d)",
			  it->id, code ? code : "refused", r->error_text ? r->error_text : "",
			  it->held_tries, OUT_HELD_TRIES);
		return;
	}
	char note[1500];
	out_refusal_note(a, it, r->error, note, sizeof(note));
	if (it->held) {
		/* A final refusal of a message submitted again: nothing more the
		 * agent can do with it; the refusal is the answer, in failed/. */
		out_held_final_doc(a, i, code ? code : "refused", r->field,
				   r->error_text && r->error_text[0] ? r->error_text
								     : "refused by the broker",
				   "submitted again was refused", signed_refusal, note);
		return;
	}
	char name[256];
	uint8_t hash[RETE_HASH_LEN];
	char id[128];
	snprintf(name, sizeof(name), "%s", it->name);
	memcpy(hash, it->hash, sizeof(hash));
	snprintf(id, sizeof(id), "%s", it->id);
	/* out_fail_doc answers what was submitted (the item, found by name):
	 * remove it after */
	out_fail_doc(a, name, &it->ident, it->state == AGENT_OUT_SIGNED ? &it->signed_msg : NULL,
		     NULL, 0, hash, id, code ? code : "refused", r->field,
		     r->error_text && r->error_text[0] ? r->error_text : "refused by the broker",
		     NULL, signed_refusal, note);
	item_remove(a, i);
}

/* --- held messages --------------------------------------------------------- */

struct held_load {
	agent *a;
	uint64_t round; /* load the records receipted before this round */
	size_t added, due;
	bool count_only; /* count the due records, load nothing */
};

static bool held_collect(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	struct held_load *hl = user;
	agent *a = hl->a;
	char id[128];
	agent_held h;

	if (klen == 0 || klen >= sizeof(id) || vlen == 0) /* vlen 0: delivered */
		return true;
	memcpy(id, key, klen);
	id[klen] = '\0';
	if (agent_db_held_parse(val, vlen, &h) != RETE_OK) {
		if (!hl->count_only)
			agent_log(a, "error", "held message %s: its record does not parse; skipped",
				  id);
		return true;
	}
	if (h.round >= hl->round) {
		agent_held_free(&h); /* receipted in this round already */
		return true;
	}
	hl->due++;
	bool on_its_way = hl->count_only;
	for (size_t i = 0; !on_its_way && i < a->out_n; i++)
		on_its_way = strcmp(a->out_items[i].id, id) == 0;
	if (on_its_way) {
		agent_held_free(&h);
		return true;
	}
	out_item *it = item_add(a);
	if (it == NULL) {
		agent_held_free(&h);
		return false;
	}
	snprintf(it->id, sizeof(it->id), "%s", id);
	it->state = AGENT_OUT_SIGNED;
	it->held = true;
	it->held_index = h.index;
	it->seen = true;
	it->signed_msg = h.signed_msg;
	it->sealed = h.sealed;
	hl->added++;
	return true;
}

/* out_held_load puts in flight the held messages not receipted in round
 * (or later) and not already on their way; says it with why. */
static void out_held_load(agent *a, const char *why, uint64_t round)
{
	struct held_load hl = {.a = a, .round = round};
	rete_msg m = {{0}};

	if (agent_db_each(a->db, AGENT_DB_HELD, held_collect, &hl, &m) != RETE_OK) {
		agent_log(a, "error", "cannot read the held messages: %s", m.text);
		return;
	}
	if (hl.added == 0) {
		a->held_check = true; /* perhaps nothing left to do: see */
		return;
	}
	agent_log(a, "warning",
		  "%s: submitting again %zu message(s) held until their delivery receipt, in "
		  "their log order (the broker answers those it still has with their original "
		  "receipt)",
		  why, hl.added);
	out_check_frames(a);
}

rete_err agent_outbox_round_begin(agent *a, const char *why, rete_msg *m)
{
	uint64_t g = out_round(a) + 1;
	uint8_t be[8];
	for (int k = 7; k >= 0; k--, g >>= 8)
		be[k] = (uint8_t)g;
	rete_err err = agent_db_put(a->db, AGENT_DB_META, "round", 5, be, sizeof(be), m);
	if (err == RETE_OK)
		err = agent_db_put(a->db, AGENT_DB_META, "resubmit", 8, why, strlen(why), m);
	if (err == RETE_OK)
		a->held_resubmitted = true;
	return err;
}

void agent_outbox_held_due(agent *a, const char *why)
{
	char reason[600], text[700];
	if (!out_round_reason(a, reason, sizeof(reason)))
		return;
	if (why == NULL) {
		snprintf(text, sizeof(text), "%s (a resubmission not complete before)", reason);
		why = text;
	}
	out_held_load(a, why, out_round(a));
}

void agent_outbox_resubmit_held(agent *a, const char *why)
{
	rete_msg m = {{0}};
	rete_err err = RETE_OK;

	if (a->held_resubmitted)
		return;
	/* Durable before anything is in flight: a restart in the middle of the
	 * round goes on with it (every WELCOME), instead of forgetting it. */
	for (int attempt = 0; attempt < 4; attempt++) {
		err = agent_db_begin(a->db, &m);
		if (err == RETE_OK)
			err = agent_outbox_round_begin(a, why, &m);
		err = agent_db_end(a->db, err, &m);
		if (err != RETE_EFULL)
			break;
	}
	a->held_resubmitted = true;
	if (err != RETE_OK) {
		/* Not recorded: submitted all the same, on this connection. */
		agent_log(a, "error", "cannot record that the held messages are due again (%s): %s",
			  why, m.text);
		out_held_load(a, why, UINT64_MAX);
		return;
	}
	agent_outbox_held_due(a, why);
}

/* out_round_check: when no held message is in flight any more, is the
 * round complete (every held record has a receipt of it)? Then its marker
 * goes; else what is left is put in flight. Outside any transaction. */
static void out_round_check(agent *a)
{
	char reason[600];
	rete_msg m = {{0}};
	a->held_check = false;
	for (size_t i = 0; i < a->out_n; i++)
		if (a->out_items[i].held)
			return;
	if (!out_round_reason(a, reason, sizeof(reason)))
		return;
	uint64_t g = out_round(a);
	struct held_load hl = {.a = a, .round = g, .count_only = true};
	if (agent_db_each(a->db, AGENT_DB_HELD, held_collect, &hl, &m) != RETE_OK)
		return;
	if (hl.due > 0) {
		/* not loaded (another item carried the id, or memory was short) */
		return;
	}
	if (agent_db_del(a->db, AGENT_DB_META, "resubmit", 8, &m) != RETE_OK) {
		agent_log(a, "error", "cannot record the end of the resubmission: %s", m.text);
		return;
	}
	agent_log(a, "info",
		  "resubmission %" PRIu64 " complete (%s): every held message was receipted "
		  "again or answered",
		  g, reason);
}

rete_err agent_outbox_settled(agent *a, const char *id, rete_msg *m)
{
	if (id == NULL || id[0] == '\0')
		return RETE_OK;
	/* An empty record marks the message delivered: a receipt that comes
	 * after its delivery receipt (the first receipt was lost with a
	 * connection) must not hold it again. */
	rete_err err = agent_db_put(a->db, AGENT_DB_HELD, id, strlen(id), "", 0, m);
	if (err != RETE_OK)
		return err;
	for (size_t i = 0; i < a->out_n; i++)
		if (a->out_items[i].held && strcmp(a->out_items[i].id, id) == 0) {
			item_remove(a, i);
			a->held_check = true;
			break;
		}
	agent_debug(a, "message %s delivered: no longer held", id);
	return RETE_OK;
}
