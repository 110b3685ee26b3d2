/* agent_privacy.c — what the agent keeps about people, and for how long
 * (issue 18): the keyed person index of the sealed parts it sealed or
 * opened (privacy_index.h), the retention of the spool's files and of that
 * index, and the record of each erasure in the agent's access record.
 *
 * Retention ([privacy] keep_sent, keep_failed, keep_inbox, keep_records;
 * default: kept for ever) is counted from a file's modification time: the
 * agent writes an inbox/ file when the entry is delivered to it; it moves a
 * file to sent/ at its receipt, or to failed/ at its refusal, and sets its
 * time then (a move keeps the time the case system wrote it); it sets the
 * time of sent/USED and sent/USED.receipt.json again when the log's
 * Delivery entry of the message comes, so a sent file counts from its
 * delivery. Which sent/ file is the message's: USED is the name the move
 * took (NAME, or NAME.2... when sent/ held one of that name), recorded in
 * the person index at the move ("filed" lines, for every message, naming
 * someone or not), and a file is touched only when its .receipt.json names
 * the message. In sent/ and failed/ a file's clock is never before its
 * answer's (NAME.receipt.json, NAME.error.json, written just before the
 * move), and a move a stop cut short before its "filed" line is recorded
 * at the next start (agent_outbox_settle), so that a crash never makes a
 * file count from when the case system wrote it. A sent file whose
 * message is still held for its delivery ("held" in the store) is never
 * erased. Where the
 * case system records that it took a file, by writing NAME.ack beside it
 * (any content), the count starts from the later of the two; the .ack goes
 * with its file. The scan runs at the start and every [privacy] scan.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "agent_spool.h"
#include "duration.h"
#include "json.h"
#include "privacy_config.h"
#include "privacy_index.h"

struct agent_privacy {
	rete_privacy_config cfg;
	privacy_key *key;
	rete_access_log *access;
	int64_t next_scan;
	json_t *sent_files; /* our message id -> its sent/ file names (array) */
	json_t *referrals;  /* "case\nreferral id" -> the persons its referral named */
	/* Lines of the person index on their way (see "The journal" below):
	 * staged (made, not yet journalled: texts), then journalled under
	 * sequence numbers jfirst.. jnext-1 and appended to the file unsynced
	 * until ap_flush syncs it and empties the journal. */
	json_t *staged;
	uint64_t jfirst, jnext;
	/* an append of journalled lines failed: until they are appended again
	 * (ap_journal_append), the journal is never emptied on a sync alone */
	bool append_failed;
	/* a flush that failed is tried again at the next scan, at a stop, or
	 * AP_FLUSH_PAUSE after it; said at most once per AP_FLUSH_SAY */
	int64_t flush_retry_at, flush_said_at;
	unsigned flush_fails;
};

#define AP_FLUSH_PAUSE 1000
#define AP_FLUSH_SAY   60000

/* The journal. A line of the person index is durable with the event it
 * records, in the agent store's transaction that makes that event durable
 * (the delivery written to inbox/ with its inbox record, the move's outbox
 * record forgotten, the signed bytes recorded): agent_privacy_journal puts
 * the staged lines in the open transaction (store "persons"), and once it
 * is committed agent_privacy_written appends them to persons.jsonl without
 * a sync of its own. ap_flush syncs the file once for many lines (every
 * AP_JOURNAL_MAX lines, at each retention scan, at a clean stop) and only
 * then empties the journal; at a start, what the journal holds and the
 * file lacks (a stop before that sync) is appended again
 * (ap_journal_recover). A line staged where no transaction follows is
 * appended and synced at the end of the loop's turn, as before. */
#define AP_JOURNAL_MAX 256

/* ap_refkey: the key of a referral in referrals (case and referral id). */
static void ap_refkey(json_t *o, char *buf, size_t n)
{
	snprintf(buf, n, "%s\n%s", json_string_value(json_object_get(o, "case")) ?: "",
		 json_string_value(json_object_get(o, "referral")) ?: "");
}

/* ap_remember_referral: a referral's own line says whom its updates and
 * notes concern when their sealed part names nobody (or there is none). */
static void ap_remember_referral(struct agent_privacy *p, json_t *o)
{
	char key[600];
	const char *kind = json_string_value(json_object_get(o, "kind"));
	json_t *persons = json_object_get(o, "persons");
	if (kind == NULL || strcmp(kind, "referral") != 0 ||
	    json_object_get(o, "referral") == NULL || json_array_size(persons) == 0)
		return;
	ap_refkey(o, key, sizeof(key));
	json_object_set(p->referrals, key, persons);
}

/* ap_add_file records name as one of the sent/ files of our message id. */
static void ap_add_file(struct agent_privacy *p, const char *id, const char *name)
{
	json_t *names = json_object_get(p->sent_files, id);
	size_t i;
	json_t *v;
	if (id == NULL || id[0] == '\0' || name == NULL || name[0] == '\0')
		return;
	if (names == NULL) {
		names = json_array();
		json_object_set_new(p->sent_files, id, names);
	}
	json_array_foreach(names, i, v)
	{
		if (strcmp(json_string_value(v), name) == 0)
			return;
	}
	json_array_append_new(names, json_string(name));
}

/* ap_record writes one line of the agent's access record (erasures). */
static void ap_record(agent *a, const char *what)
{
	rete_msg m = {{0}};
	rete_access_rec r = {.program = "rete-agent", .who = a->cfg.id, .what = what};
	if (a->privacy == NULL || a->privacy->access == NULL)
		return;
	if (rete_access_log_add(a->privacy->access, &r, &m) != RETE_OK)
		agent_log(a, "error", "access record: %s", m.text);
}

static void ap_be64(uint8_t k[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		k[i] = (uint8_t)v;
}

/* ap_stage adds line o (borrowed) to the staged lines. */
static void ap_stage(agent *a, json_t *o)
{
	char *line = privacy_index_line(o);
	if (line != NULL)
		json_array_append_new(a->privacy->staged, json_string(line));
	free(line);
}

size_t agent_privacy_mark(agent *a)
{
	return a->privacy != NULL ? json_array_size(a->privacy->staged) : 0;
}

void agent_privacy_unstage(agent *a, size_t mark)
{
	while (a->privacy != NULL && json_array_size(a->privacy->staged) > mark)
		json_array_remove(a->privacy->staged, json_array_size(a->privacy->staged) - 1);
}

rete_err agent_privacy_journal(agent *a, rete_msg *m)
{
	struct agent_privacy *p = a->privacy;
	size_t i;
	json_t *v;
	rete_err err = RETE_OK;
	if (p == NULL)
		return RETE_OK;
	json_array_foreach(p->staged, i, v)
	{
		uint8_t k[8];
		ap_be64(k, p->jnext + i);
		const char *t = json_string_value(v);
		err = agent_db_put(a->db, AGENT_DB_PERSONS, k, sizeof(k), t, strlen(t), m);
		if (err != RETE_OK)
			break;
	}
	return err;
}

/* ap_staged_text: the staged lines as one text (malloc'd; NULL when none
 * or out of memory). */
static char *ap_staged_text(struct agent_privacy *p, size_t *len)
{
	size_t i, n = 0;
	json_t *v;
	json_array_foreach(p->staged, i, v) n += json_string_length(v);
	char *text = n > 0 ? malloc(n) : NULL;
	if (text == NULL)
		return NULL;
	*len = 0;
	json_array_foreach(p->staged, i, v)
	{
		memcpy(text + *len, json_string_value(v), json_string_length(v));
		*len += json_string_length(v);
	}
	return text;
}

void agent_privacy_written(agent *a)
{
	struct agent_privacy *p = a->privacy;
	rete_msg m = {{0}};
	size_t len = 0;
	if (p == NULL || json_array_size(p->staged) == 0)
		return;
	char *text = ap_staged_text(p, &len);
	/* journalled: a failed append is made good from the journal (ap_flush
	 * appends its lines again before it empties it, or the next start) */
	if (text == NULL || privacy_index_write(a->cfg.data, text, len, false, &m) != RETE_OK) {
		p->append_failed = true;
		agent_log(a, "error", "person index: %s; its lines are kept in the agent's store",
			  text == NULL ? "out of memory" : m.text);
	}
	free(text);
	p->jnext += json_array_size(p->staged);
	json_array_clear(p->staged);
}

/* ap_write_staged appends and syncs the lines staged where no transaction
 * followed (the loop's turn is over), as each line was before the
 * journal. */
static void ap_write_staged(agent *a)
{
	struct agent_privacy *p = a->privacy;
	rete_msg m = {{0}};
	size_t len = 0;
	char *text = ap_staged_text(p, &len);
	if (text == NULL)
		return;
	if (privacy_index_write(a->cfg.data, text, len, true, &m) != RETE_OK)
		agent_log(a, "error",
			  "person index: %s; `rete sar` will not find %zu record(s) of this moment",
			  m.text, json_array_size(p->staged));
	free(text);
	json_array_clear(p->staged);
}

/* ap_journal_clear empties the journal (one transaction, done again once
 * when the map was full: grown then). */
static rete_err ap_journal_clear(agent *a, uint64_t from, uint64_t to, rete_msg *m)
{
	rete_err err = RETE_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		err = agent_db_begin(a->db, m);
		for (uint64_t s = from; err == RETE_OK && s < to; s++) {
			uint8_t k[8];
			ap_be64(k, s);
			err = agent_db_del(a->db, AGENT_DB_PERSONS, k, sizeof(k), m);
		}
		if ((err = agent_db_end(a->db, err, m)) != RETE_EFULL)
			break;
	}
	return err;
}

/* ap_journal_append: the journal's lines missing from the file (lines, as
 * loaded) are appended to both (*n: how many), the file synced, and the
 * journal emptied; the failed append (append_failed) made good. */
static rete_err ap_journal_append(agent *a, json_t *lines, size_t *n, rete_msg *m)
{
	struct privacy_journal r = {.texts = json_array()};
	*n = 0;
	rete_err err = agent_db_each(a->db, AGENT_DB_PERSONS, privacy_journal_collect, &r, m);
	if (err != RETE_OK || json_array_size(r.texts) == 0)
		goto out;
	json_t *added = json_array();
	size_t i;
	*n = privacy_index_merge(lines, r.texts, added);
	json_t *o;
	json_array_foreach(added, i, o)
	{
		err = privacy_index_write(a->cfg.data, json_string_value(o), json_string_length(o),
					  false, m);
		if (err != RETE_OK)
			break;
	}
	json_decref(added);
	if (err == RETE_OK)
		err = privacy_index_write(a->cfg.data, NULL, 0, true, m);
	if (err == RETE_OK)
		err = ap_journal_clear(a, 0, r.next, m);
out:
	if (err == RETE_OK)
		a->privacy->append_failed = false;
	json_decref(r.texts);
	return err;
}

/* ap_journal_recover: at the start, what a stop took from the file is
 * appended again from the journal (ap_journal_append). */
static rete_err ap_journal_recover(agent *a, json_t *lines, rete_msg *m)
{
	size_t n = 0;
	rete_err err = ap_journal_append(a, lines, &n, m);
	if (err == RETE_OK && n > 0)
		agent_log(a, "info",
			  "person index: %zu line(s) not yet synced when the agent stopped "
			  "written again from its store",
			  n);
	return err;
}

/* ap_flush syncs persons.jsonl and then empties the journal, when it holds
 * AP_JOURNAL_MAX lines or more (or any, with all). false: the journal
 * could not be emptied. */
static bool ap_flush(agent *a, bool all)
{
	struct agent_privacy *p = a->privacy;
	rete_msg m = {{0}};
	if (json_array_size(p->staged) > 0)
		ap_write_staged(a);
	if (p->jnext == p->jfirst)
		p->append_failed = false; /* nothing of it left in the journal */
	if (p->jnext == p->jfirst || (!all && p->jnext - p->jfirst < AP_JOURNAL_MAX))
		return true;
	int64_t now = rete_now_ms();
	if (!all && now < p->flush_retry_at)
		return false;
	rete_err err;
	if (p->append_failed) {
		/* lines journalled but never appended: appended again (those
		 * the file holds already left out), synced, then the journal
		 * emptied */
		json_t *lines = NULL;
		size_t n = 0;
		err = privacy_index_load(a->cfg.data, &lines, &m);
		if (err == RETE_OK)
			err = ap_journal_append(a, lines, &n, &m);
		json_decref(lines);
		if (err == RETE_OK && n > 0)
			agent_log(a, "info",
				  "person index: %zu line(s) an append had failed written again "
				  "from the agent's store",
				  n);
	} else {
		err = privacy_index_write(a->cfg.data, NULL, 0, true, &m);
		if (err == RETE_OK)
			err = ap_journal_clear(a, p->jfirst, p->jnext, &m);
	}
	if (err != RETE_OK) {
		p->flush_fails++;
		p->flush_retry_at = now + AP_FLUSH_PAUSE;
		if (p->flush_said_at == 0 || now - p->flush_said_at >= AP_FLUSH_SAY) {
			agent_log(a, "error",
				  "person index: %s; its lines stay in the agent's store "
				  "(%u failed sync(s) since this was last said)",
				  m.text, p->flush_fails);
			p->flush_said_at = now;
			p->flush_fails = 0;
		}
		return false;
	}
	if (p->flush_said_at != 0)
		agent_log(a, "info",
			  "person index: synced again, its lines taken from the "
			  "agent's store (%u failed sync(s) since the failure was last said)",
			  p->flush_fails);
	p->flush_retry_at = p->flush_said_at = 0;
	p->flush_fails = 0;
	p->jfirst = p->jnext;
	return true;
}

rete_err agent_privacy_start(agent *a, rete_msg *m)
{
	struct agent_privacy *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	a->privacy = p;
	rete_err err = rete_privacy_config_load(a->cfg.ini_path, true, a->cfg.data, &p->cfg, m);
	if (err == RETE_OK)
		err = privacy_key_load(a->cfg.data, true, &p->key, m);
	if (err == RETE_OK)
		err = rete_access_log_open(p->cfg.access_log, p->cfg.access_keep, true, &p->access,
					   m);
	if (err != RETE_OK)
		return err;
	p->sent_files = json_object();
	p->referrals = json_object();
	p->staged = json_array();
	json_t *lines = NULL;
	if (privacy_index_load(a->cfg.data, &lines, m) != RETE_OK)
		return RETE_EIO;
	if ((err = ap_journal_recover(a, lines, m)) != RETE_OK) {
		json_decref(lines);
		return err;
	}
	size_t i;
	json_t *o;
	json_array_foreach(lines, i, o)
	{
		const char *dir = json_string_value(json_object_get(o, "dir"));
		const char *id = json_string_value(json_object_get(o, "id"));
		const char *sender = json_string_value(json_object_get(o, "sender"));
		const char *file = json_string_value(json_object_get(o, "file"));
		if (dir && id && sender && strcmp(dir, "sent") == 0 &&
		    strcmp(sender, a->cfg.id) == 0)
			ap_add_file(p, id, file);
		ap_remember_referral(p, o);
	}
	json_decref(lines);
	p->next_scan = 0; /* a scan at the first tick */
	return RETE_OK;
}

void agent_privacy_free(agent *a)
{
	struct agent_privacy *p = a->privacy;
	if (p == NULL)
		return;
	if (p->staged != NULL && a->db != NULL)
		ap_flush(a, true);
	json_decref(p->staged);
	privacy_key_free(&p->key);
	rete_access_log_close(&p->access);
	rete_privacy_config_free(&p->cfg);
	json_decref(p->sent_files);
	json_decref(p->referrals);
	free(p);
	a->privacy = NULL;
}

/* ap_base: the index line common to a sealed and an opened message. */
static json_t *ap_base(agent *a, const char *dir, const Rete__Message *msg,
		       const Rete__Private *priv)
{
	/* a person id in what we opened is in the sender's case system */
	json_t *persons =
	    privacy_persons(a->privacy->key, priv,
			    strcmp(dir, "received") == 0 ? (msg->sender ? msg->sender : "") : NULL);
	if (persons == NULL)
		return NULL;
	json_t *o = json_object();
	json_object_set_new(o, "at", json_integer(rete_now_ms()));
	json_object_set_new(o, "persons", persons);
	json_object_set_new(o, "dir", json_string(dir));
	json_object_set_new(o, "sender", json_string(msg->sender ? msg->sender : ""));
	json_object_set_new(o, "recipient", json_string(msg->recipient ? msg->recipient : ""));
	json_object_set_new(o, "id", json_string(msg->id ? msg->id : ""));
	json_object_set_new(o, "kind", json_string(rete_message_kind(msg)));
	const char *ref = rete_message_referral_id(msg);
	if (ref != NULL && ref[0] != '\0')
		json_object_set_new(o, "referral", json_string(ref));
	if (msg->case_id != NULL && msg->case_id[0] != '\0')
		json_object_set_new(o, "case", json_string(msg->case_id));
	if (json_array_size(persons) == 0) {
		/* An update or note whose sealed part names nobody (or that has
		 * none) concerns the person of its referral, and that person
		 * alone; one of the case with no referral concerns nobody we
		 * can name (never the whole family). */
		char key[600];
		ap_refkey(o, key, sizeof(key));
		bool follows = msg->body_case == RETE__MESSAGE__BODY_UPDATE ||
			       msg->body_case == RETE__MESSAGE__BODY_NOTE;
		json_t *of = follows && json_object_get(o, "referral") != NULL
				 ? json_object_get(a->privacy->referrals, key)
				 : NULL;
		if (of == NULL) {
			json_decref(o);
			return NULL; /* nobody named: nothing to answer for */
		}
		json_object_set(o, "persons", of);
		json_object_set_new(o, "via", json_string("referral"));
	}
	ap_remember_referral(a->privacy, o);
	return o;
}

void agent_privacy_sealed(agent *a, const char *file, const Rete__Message *msg,
			  const Rete__Private *priv)
{
	if (a->privacy == NULL)
		return;
	json_t *o = ap_base(a, "sent", msg, priv);
	if (o == NULL)
		return;
	json_object_set_new(o, "file", json_string(file));
	ap_stage(a, o);
	ap_add_file(a->privacy, msg->id, file);
	json_decref(o);
}

void agent_privacy_filed(agent *a, const char *sub, const char *id, const char *used,
			 const struct timespec *at)
{
	char path[4400];
	bool sent = strcmp(sub, "sent") == 0;
	/* a move keeps the time the case system wrote the file: its retention
	 * counts from now (the receipt, or the refusal), or from the answer's
	 * time when the move is recorded after a crash */
	struct timespec ts[2];
	if (at != NULL)
		ts[0] = ts[1] = *at;
	snprintf(path, sizeof(path), "%s/%s", sent ? a->sent_dir : a->failed_dir, used);
	utimensat(AT_FDCWD, path, at != NULL ? ts : NULL, 0);
	if (a->privacy == NULL || id == NULL || id[0] == '\0')
		return;
	/* which sent/ or failed/ file is the message's (for its delivery, and
	 * for rete sar once keep_records has passed: ap_pending): USED is not
	 * NAME when the folder held a NAME already. "dir" stays "sent": the
	 * record is of a message we sent, whichever folder keeps its copy. */
	json_t *o = json_object();
	json_object_set_new(o, "at", json_integer(rete_now_ms()));
	json_object_set_new(o, "dir", json_string("sent"));
	json_object_set_new(o, "sender", json_string(a->cfg.id));
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "file", json_string(used));
	json_object_set_new(o, "filed", json_true());
	ap_stage(a, o);
	ap_add_file(a->privacy, id, used);
	json_decref(o);
}

/* ap_touch sets the times of our message id's sent/ files (and their
 * .receipt.json) to now: a sent file's retention counts from its delivery.
 * Only a file whose receipt names the message: another message's file of
 * the same name keeps its clock. */
static void ap_touch(agent *a, const char *id, json_t *names)
{
	char path[4400];
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v)
	{
		const char *name = json_string_value(v);
		if (name == NULL || !privacy_file_is_copy(a->sent_dir, name, ".receipt.json", id))
			continue;
		snprintf(path, sizeof(path), "%s/%s", a->sent_dir, name);
		utimensat(AT_FDCWD, path, NULL, 0);
		snprintf(path, sizeof(path), "%s/%s.receipt.json", a->sent_dir, name);
		utimensat(AT_FDCWD, path, NULL, 0);
	}
}

void agent_privacy_opened(agent *a, const Rete__LogEntry *le, const Rete__Message *msg,
			  const Rete__Private *priv, const char *fname)
{
	json_t *o = NULL;
	if (a->privacy == NULL)
		return;
	if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY && msg->delivery != NULL &&
	    msg->delivery->message_id != NULL) {
		/* The broker's Delivery entry of one of our messages: who got it
		 * and when, from the log (the sar answer's "delivered"). */
		const Rete__Delivery *d = msg->delivery;
		json_t *files = json_object_get(a->privacy->sent_files, d->message_id);
		if (files == NULL)
			return; /* none of ours we know a file of */
		ap_touch(a, d->message_id, files);
		o = json_object();
		json_object_set_new(o, "at", json_integer(rete_now_ms()));
		json_object_set_new(o, "delivered", json_string(d->message_id));
		json_object_set_new(o, "sender", json_string(a->cfg.id));
		json_object_set_new(o, "index", json_integer((json_int_t)d->index));
		json_object_set_new(o, "deliveryIndex", json_integer((json_int_t)le->index));
		json_object_set_new(o, "deliveredAt", json_integer(d->delivered_at));
		json_object_set_new(o, "file", json_string(fname));
	} else if (msg->body_case != RETE__MESSAGE__BODY_DELIVERY) {
		o = ap_base(a, "received", msg, priv);
		if (o == NULL)
			return;
		json_object_set_new(o, "index", json_integer((json_int_t)le->index));
		json_object_set_new(o, "loggedAt", json_integer(le->logged_at));
		json_object_set_new(o, "file", json_string(fname));
	} else {
		return;
	}
	ap_stage(a, o);
	json_decref(o);
}

/* ap_mtime: the modification time of path in ms, or INT64_MIN. */
static int64_t ap_mtime(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return INT64_MIN;
	return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* ap_expired: the clock of dir/name is before cutoff. The clock is the
 * latest of its time, its .ack's and, in sent/ and failed/ (suffix not
 * NULL), its answer's (name+suffix: written, durably, just before the
 * move, and set again with the file at the delivery): a move a crash cut
 * short before the file's time was set still counts from the answer. */
static bool ap_expired(const char *dir, const char *name, const char *suffix, int64_t cutoff,
		       int64_t *clock)
{
	char path[4400];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	int64_t t = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	const char *const ends[] = {".ack", suffix};
	for (size_t i = 0; i < 2; i++) {
		if (ends[i] == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s%s", dir, name, ends[i]);
		int64_t other = ap_mtime(path);
		if (other > t)
			t = other;
	}
	*clock = t;
	return t < cutoff;
}

/* ap_held: is our message id still held for its delivery? */
static bool ap_held(agent *a, const char *id)
{
	rete_buf v = {0};
	bool held = false;
	if (id[0] != '\0' &&
	    agent_db_get(a->db, AGENT_DB_HELD, id, strlen(id), &v, NULL) == RETE_OK) {
		held = v.len > 0; /* an empty record marks it delivered */
		rete_buf_free(&v);
	}
	return held;
}

/* ap_undelivered: is sent/NAME (or the message file that NAME, a
 * .receipt.json or .ack, goes with) a message still held for its
 * delivery? Its retention counts from the delivery, which has not come.
 * The message is the one its receipt names (the file has no "id" when the
 * agent minted it), or its own "id". */
static bool ap_undelivered(agent *a, const char *dir, const char *name)
{
	char base[1024], path[4400];
	size_t len = strlen(name);
	static const char *const ends[] = {".receipt.json", ".ack"};
	snprintf(base, sizeof(base), "%s", name);
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		size_t el = strlen(ends[i]);
		if (len > el && strcmp(name + len - el, ends[i]) == 0) {
			snprintf(base, sizeof(base), "%.*s", (int)(len - el), name);
			break;
		}
	}
	char *rid = privacy_companion_id(dir, base, ".receipt.json");
	bool held = rid != NULL && ap_held(a, rid);
	free(rid);
	snprintf(path, sizeof(path), "%s/%s", dir, base);
	struct stat st;
	if (held || lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return held;
	json_t *o = json_load_file(path, 0, NULL);
	const char *id = json_string_value(json_object_get(o, "id"));
	held = id != NULL && ap_held(a, id);
	json_decref(o);
	return held;
}

/* ap_scan_dir erases the expired files of one spool folder. */
static void ap_scan_dir(agent *a, const char *sub, const char *dir, rete_keep keep, const char *key,
			int64_t now)
{
	const char *suffix = strcmp(sub, "sent") == 0	  ? ".receipt.json"
			     : strcmp(sub, "failed") == 0 ? ".error.json"
							  : NULL;
	int64_t cutoff = rete_keep_cutoff(keep, now);
	if (cutoff == INT64_MIN)
		return;
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		size_t len = strlen(name);
		if (name[0] == '.' || (len > 4 && strcmp(name + len - 4, ".tmp") == 0))
			continue; /* temporary files: the agent's sweep owns them */
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(names, cap * sizeof(*names));
			if (nn == NULL)
				break;
			names = nn;
		}
		if ((names[n] = strdup(name)) != NULL)
			n++;
	}
	closedir(d);
	size_t erased = 0;
	char keeps[64], when[32], what[1024], path[4400];
	rete_keep_format(keep, keeps, sizeof(keeps));
	for (size_t i = 0; i < n; i++) {
		int64_t clock;
		size_t len = strlen(names[i]);
		bool is_ack = len > 4 && strcmp(names[i] + len - 4, ".ack") == 0;
		if (is_ack) {
			/* an acknowledgement goes with its file, or alone when its
			 * file is gone and it is itself old */
			char base[1024];
			snprintf(base, sizeof(base), "%.*s", (int)(len - 4), names[i]);
			snprintf(path, sizeof(path), "%s/%s", dir, base);
			if (access(path, F_OK) == 0)
				continue;
		}
		if (!ap_expired(dir, names[i], suffix, cutoff, &clock))
			continue;
		rete_buf hook = {0};
		if (strcmp(sub, "inbox") == 0 &&
		    agent_db_get(a->db, AGENT_DB_HOOKS, names[i], strlen(names[i]), &hook, NULL) ==
			RETE_OK) {
			rete_buf_free(&hook); /* its hook has not run yet: next scan */
			continue;
		}
		if (strcmp(sub, "sent") == 0 && ap_undelivered(a, dir, names[i]))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (unlink(path) != 0) {
			agent_log(a, "error", "retention: cannot erase %s/%s: %s", sub, names[i],
				  strerror(errno));
			continue;
		}
		if (!is_ack) {
			snprintf(path, sizeof(path), "%s/%s.ack", dir, names[i]);
			unlink(path);
		}
		erased++;
		snprintf(what, sizeof(what), "erased %s/%s: %s %s, counted from %s", sub, names[i],
			 key, keeps, rete_time_format(clock, when));
		ap_record(a, what);
		agent_log(a, "info", "retention: %s", what);
	}
	if (erased > 0)
		agent_spool_fsync_dir(dir, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ap_pending: the person index's question (privacy_pending): a record of
 * ours still held for its delivery stays, and so does a record naming a
 * file the agency still holds (inbox/NAME for what it received; sent/NAME
 * or failed/NAME whose receipt or refusal names the message for what it
 * sent): rete sar must find every copy it holds. */
static bool ap_pending(void *ctx, json_t *line)
{
	agent *a = ctx;
	const char *sender = json_string_value(json_object_get(line, "sender"));
	const char *id = json_string_value(json_object_get(line, "id"));
	const char *dir = json_string_value(json_object_get(line, "dir"));
	const char *file = json_string_value(json_object_get(line, "file"));
	if (sender == NULL || id == NULL)
		return false;
	bool ours = strcmp(sender, a->cfg.id) == 0;
	if (ours && ap_held(a, id))
		return true;
	if (dir == NULL || file == NULL || file[0] == '\0' || file[0] == '.' ||
	    strchr(file, '/') != NULL)
		return false;
	if (strcmp(dir, "received") == 0)
		return privacy_file_regular(a->inbox_dir, file);
	if (strcmp(dir, "sent") == 0 && ours)
		return privacy_file_is_copy(a->sent_dir, file, ".receipt.json", id) ||
		       privacy_file_is_copy(a->failed_dir, file, ".error.json", id);
	return false;
}

/* ap_scan erases what is past its retention: spool files and index
 * records. */
static void ap_scan(agent *a, int64_t now)
{
	struct agent_privacy *p = a->privacy;
	/* the file synced and the journal emptied first: a line erased below
	 * must not come back from the journal at the next start */
	bool flushed = ap_flush(a, true);
	ap_scan_dir(a, "sent", a->sent_dir, p->cfg.keep_sent, "keep_sent", now);
	ap_scan_dir(a, "failed", a->failed_dir, p->cfg.keep_failed, "keep_failed", now);
	ap_scan_dir(a, "inbox", a->inbox_dir, p->cfg.keep_inbox, "keep_inbox", now);
	json_t *erased = NULL;
	rete_msg m = {{0}};
	if (!flushed) {
		/* records erased now would come back from the journal */
	} else if (privacy_index_prune(a->cfg.data, p->cfg.keep_records, now, ap_pending, a,
				       &erased, &m) != RETE_OK) {
		agent_log(a, "error", "retention: person index: %s", m.text);
	} else if (json_array_size(erased) > 0) {
		char keeps[64];
		rete_keep_format(p->cfg.keep_records, keeps, sizeof(keeps));
		size_t i;
		json_t *v;
		json_array_foreach(erased, i, v)
		{
			char what[700];
			const char *k = json_string_value(v);
			const char *slash = strchr(k, '/');
			snprintf(what, sizeof(what),
				 "erased the person-index record of message %s: keep_records %s", k,
				 keeps);
			ap_record(a, what);
			/* ours only: the whole sender before the slash is our id (a
			 * sender whose id is a prefix of ours is another party) */
			if (slash != NULL && strlen(a->cfg.id) == (size_t)(slash - k) &&
			    strncmp(k, a->cfg.id, (size_t)(slash - k)) == 0)
				json_object_del(p->sent_files, slash + 1);
		}
		agent_log(a, "info", "retention: erased %zu person-index record(s)",
			  json_array_size(erased));
	}
	json_decref(erased);
}

int64_t agent_privacy_tick(agent *a, int64_t now)
{
	struct agent_privacy *p = a->privacy;
	if (p == NULL)
		return -1;
	ap_flush(a, false);
	if (now >= p->next_scan) {
		ap_scan(a, now);
		p->next_scan = now + p->cfg.scan_ms;
	}
	return p->next_scan - now;
}
