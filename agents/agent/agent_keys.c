/* agent_keys.c — the pin rule and the own-key watch (see agent_keys.h). */
#include "agent_keys.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "duration.h"
#include "json.h"

/* At most this many own-key alarms are kept (the latest): each is one
 * Directory entry, and a broker that re-keys us again and again is told
 * by the first ones. */
#define KEYS_OWN_MAX 32

/* keys_str: the string member key of o, or "" (a record written by hand). */
static const char *keys_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "";
}

agent_key_verdict agent_keys_check(agent *a, const char *party, agent_key_verify_fn verify,
				   void *ctx, uint8_t dirkey[RETE_PK_LEN])
{
	rete_msg m = {{0}};
	rete_pubkey pk;
	rete_buf pinned = {0};
	const Rete__Party *p = agent_directory_party(a->dir, party);
	bool have_dir = p != NULL && p->public_key.len == RETE_PK_LEN;
	rete_err err = agent_db_get(a->db, AGENT_DB_PINS, party, strlen(party), &pinned, &m);

	if (err == RETE_OK) {
		bool ok = pinned.len == RETE_PK_LEN &&
			  rete_pubkey_from_ed(&pk, pinned.data, &m) == RETE_OK && verify(&pk, ctx);
		bool differs =
		    have_dir && (pinned.len != RETE_PK_LEN ||
				 sodium_memcmp(pinned.data, p->public_key.data, RETE_PK_LEN) != 0);
		rete_buf_free(&pinned);
		if (ok)
			return AGENT_KEY_OK;
		if (differs && rete_pubkey_from_ed(&pk, p->public_key.data, &m) == RETE_OK &&
		    verify(&pk, ctx)) {
			memcpy(dirkey, p->public_key.data, RETE_PK_LEN);
			return AGENT_KEY_UNCONFIRMED;
		}
		return AGENT_KEY_BAD;
	}
	if (err != RETE_ENOENT) {
		agent_log(a, "error",
			  "cannot read the pinned key of %s (%s): its message is not answered; "
			  "the broker will deliver it again",
			  party, m.text);
		return AGENT_KEY_ERROR;
	}
	if (!have_dir || rete_pubkey_from_ed(&pk, p->public_key.data, &m) != RETE_OK ||
	    !verify(&pk, ctx))
		return AGENT_KEY_BAD;
	/* First use: the directory's key is all there is to go by (the limit
	 * of trust on first use, docs/security.md); from now on a change of it
	 * waits for this agency's operator. */
	if (agent_db_put(a->db, AGENT_DB_PINS, party, strlen(party), p->public_key.data,
			 RETE_PK_LEN, &m) != RETE_OK)
		agent_log(a, "warning",
			  "the key of %s could not be pinned (%s): the next message from it is "
			  "checked against the directory again",
			  party, m.text);
	else
		agent_log(a, "info", "pinned the key of %s on first use (a signature of it)",
			  party);
	return AGENT_KEY_OK;
}

static bool keys_verify_signed(const rete_pubkey *pk, void *ctx)
{
	rete_msg m = {{0}};
	return rete_signed_verify(ctx, pk, &m) == RETE_OK;
}

agent_key_verdict agent_keys_verify_message(agent *a, const Rete__SignedMessage *sm,
					    const char *sender, uint8_t dirkey[RETE_PK_LEN])
{
	return agent_keys_check(a, sender, keys_verify_signed, (void *)sm, dirkey);
}

static bool keys_verify_ack(const rete_pubkey *pk, void *ctx)
{
	rete_msg m = {{0}};
	return rete_ack_verify(ctx, pk, NULL, &m) == RETE_OK;
}

agent_key_verdict agent_keys_verify_ack(agent *a, const Rete__SignedAck *sa, const char *party,
					uint8_t dirkey[RETE_PK_LEN])
{
	return agent_keys_check(a, party, keys_verify_ack, (void *)sa, dirkey);
}

/* keys_meta_get reads meta key as JSON (NULL when absent or unreadable:
 * a record that does not parse is replaced by the next one written). */
static json_t *keys_meta_get(agent *a, const char *key)
{
	rete_buf v = {0};
	json_t *o = NULL;
	if (agent_db_get(a->db, AGENT_DB_META, key, strlen(key), &v, NULL) == RETE_OK)
		o = json_loadb((const char *)v.data, v.len, 0, NULL);
	rete_buf_free(&v);
	return o;
}

/* keys_meta_put writes o (borrowed) as meta key; false (said) when it
 * cannot, with what `rete status` will then not show. */
static bool keys_meta_put(agent *a, const char *key, json_t *o, const char *unsaid)
{
	rete_msg m = {{0}};
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	rete_err err = text == NULL ? rete_msg_set(&m, RETE_ENOMEM, "out of memory")
				    : agent_db_put(a->db, AGENT_DB_META, key, strlen(key), text,
						   strlen(text), &m);
	free(text);
	if (err != RETE_OK)
		agent_log(a, "warning", "%s; `rete status` will not show %s", m.text, unsaid);
	return err == RETE_OK;
}

static json_t *keys_b64(const uint8_t *k, size_t len)
{
	char *s = rete_b64_encode(k, len);
	json_t *j = json_string(s ? s : "?");
	free(s);
	return j;
}

void agent_keys_unconfirmed(agent *a, const char *party, const uint8_t dirkey[RETE_PK_LEN],
			    const char *what)
{
	char now[32];
	rete_msg m = {{0}};
	rete_time_format(rete_now_ms(), now);
	/* "pending" is what --trust confirms: the same record the outbox's
	 * key-changed writes, so one --trust serves both directions. */
	if (agent_db_put(a->db, AGENT_DB_PENDING, party, strlen(party), dirkey, RETE_PK_LEN, &m) !=
	    RETE_OK)
		agent_log(a, "warning", "the changed key of %s is not recorded for --trust: %s",
			  party, m.text);
	json_t *all = keys_meta_get(a, AGENT_META_KEY_CHANGES);
	if (!json_is_object(all)) {
		json_decref(all);
		all = json_object();
	}
	json_t *rec = json_object_get(all, party);
	bool first = !json_is_object(rec);
	if (first) {
		rete_buf pinned = {0};
		rec = json_object();
		json_object_set_new(rec, "since", json_string(now));
		if (agent_db_get(a->db, AGENT_DB_PINS, party, strlen(party), &pinned, NULL) ==
		    RETE_OK)
			json_object_set_new(rec, "pinned", keys_b64(pinned.data, pinned.len));
		rete_buf_free(&pinned);
		json_object_set_new(all, party, rec);
	}
	json_object_set_new(rec, "last", json_string(now));
	json_object_set_new(rec, "what", json_string(what));
	json_object_set_new(rec, "key", keys_b64(dirkey, RETE_PK_LEN));
	json_int_t count = json_integer_value(json_object_get(rec, "count"));
	json_object_set_new(rec, "count", json_integer(count + 1));
	keys_meta_put(a, AGENT_META_KEY_CHANGES, all, "the key change");
	if (!first) {
		agent_log(a, "warning",
			  "%s verifies only with the key of %s this agency has not confirmed: not "
			  "taken (ALARM said at %s; `rete status`)",
			  what, party, keys_str(rec, "since"));
		json_decref(all);
		return;
	}
	json_decref(all);
	agent_log(a, "error",
		  "ALARM: the key of %s in the broker's directory is not the key this agency "
		  "pinned for it, and %s is signed with it: not taken, nor anything else signed "
		  "with that key until this agency's operator confirms it. If %s did not change "
		  "its key, whoever holds this one can sign as %s: tell the broker's operator and "
		  "the auditor. If it did, get the new key from %s by another channel (phone, "
		  "letter; never from the directory) and run rete-agent -c agent.ini --trust %s "
		  "--key KEY; or, if they say the pinned key is still theirs, --key with the "
		  "pinned key keeps it",
		  party, what, party, party, party, party);
}

void agent_keys_refusal(const agent *a, char *buf, size_t n, const char *party, const char *msgid)
{
	/* short: the broker's notice to the sender keeps 300 bytes of it */
	snprintf(buf, n,
		 "the key of %s in the directory changed and %s's operator has not confirmed it: "
		 "%.40s verifies only with the new key. %s's operator gets the key from %s by "
		 "phone and runs rete-agent --trust %s --key KEY; then send again",
		 party, a->cfg.id, msgid, a->cfg.id, party, party);
}

/* keys_serial_gap says, once per gap, that directories were logged that
 * this agent was never given (it was not connected when they were logged,
 * and an agency may not read the log's entries): it cannot check them for
 * its own key; the auditor can. Meta "dir_serial" keeps the latest serial
 * seen (decimal text). */
static void keys_serial_gap(agent *a, const agent_directory *d)
{
	rete_buf v = {0};
	uint64_t seen = 0, now = d->dir->serial;
	if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_DIR_SERIAL, strlen(AGENT_META_DIR_SERIAL),
			 &v, NULL) == RETE_OK) {
		char text[24];
		snprintf(text, sizeof(text), "%.*s", (int)(v.len < 23 ? v.len : 23),
			 (const char *)v.data);
		seen = strtoull(text, NULL, 10);
	}
	rete_buf_free(&v);
	if (now <= seen)
		return; /* the same one again, or a directory of an older log */
	if (seen > 0 && now > seen + 1)
		agent_log(a, "info",
			  "directories %" PRIu64 " to %" PRIu64 " were logged while this agent was "
			  "not connected: it was not given them and cannot check them for the key "
			  "of %s (agencies may not read the log); `rete audit verify` lists every "
			  "key change",
			  seen + 1, now - 1, a->cfg.id);
	char text[24];
	rete_msg m = {{0}};
	snprintf(text, sizeof(text), "%" PRIu64, now);
	if (agent_db_put(a->db, AGENT_DB_META, AGENT_META_DIR_SERIAL, strlen(AGENT_META_DIR_SERIAL),
			 text, strlen(text), &m) != RETE_OK)
		agent_debug(a, "the directory's serial is not recorded: %s", m.text);
}

void agent_keys_own_check(agent *a, const agent_directory *d)
{
	keys_serial_gap(a, d);
	const Rete__Party *p = agent_directory_party(d, a->cfg.id);
	if (p == NULL || p->public_key.len == 0)
		return; /* not in it: the broker refuses us anyway, and says so */
	if (p->public_key.len == RETE_PK_LEN &&
	    sodium_memcmp(p->public_key.data, a->sk->pub.ed, RETE_PK_LEN) == 0)
		return;
	char entry[24], at[32], now[32];
	snprintf(entry, sizeof(entry), "%" PRIu64, d->index);
	rete_time_format(d->logged_at, at);
	rete_time_format(rete_now_ms(), now);
	json_t *all = keys_meta_get(a, AGENT_META_OWN_KEY);
	if (!json_is_array(all)) {
		json_decref(all);
		all = json_array();
	}
	size_t i;
	json_t *it;
	json_array_foreach(all, i, it)
	{
		if (strcmp(keys_str(it, "entry"), entry) == 0) {
			/* said when first seen; every WELCOME repeats the directory */
			agent_debug(a,
				    "the directory of entry %s still gives %s a key that is not "
				    "ours (ALARM said)",
				    entry, a->cfg.id);
			json_decref(all);
			return;
		}
	}
	json_t *rec = json_object();
	json_object_set_new(rec, "entry", json_string(entry));
	json_object_set_new(rec, "loggedAt", json_string(at));
	json_object_set_new(rec, "seenAt", json_string(now));
	json_object_set_new(rec, "key", keys_b64(p->public_key.data, p->public_key.len));
	json_array_append_new(all, rec);
	while (json_array_size(all) > KEYS_OWN_MAX)
		json_array_remove(all, 0);
	keys_meta_put(a, AGENT_META_OWN_KEY, all, "this alarm");
	json_decref(all);
	agent_log(a, "error",
		  "ALARM: the broker's directory gave %s a key that is not ours at entry %s "
		  "(logged at %s): whoever holds it can sign as %s; tell the broker's operator and "
		  "the auditor (if this agency is changing its key and that is the new one, run "
		  "this agent with the new key: the alarm then ends)",
		  a->cfg.id, entry, at, a->cfg.id);
}

void agent_keys_start(agent *a)
{
	json_t *all = keys_meta_get(a, AGENT_META_OWN_KEY);
	if (!json_is_array(all)) {
		json_decref(all);
		return;
	}
	char *ours = rete_b64_encode(a->sk->pub.ed, RETE_PK_LEN);
	size_t before = json_array_size(all);
	for (size_t i = json_array_size(all); ours != NULL && i-- > 0;) {
		json_t *it = json_array_get(all, i);
		if (strcmp(keys_str(it, "key"), ours) == 0) {
			agent_log(a, "info",
				  "the key the directory of entry %s gave %s is this agent's key "
				  "now (a key change): that alarm is over",
				  keys_str(it, "entry"), a->cfg.id);
			json_array_remove(all, i);
		}
	}
	if (json_array_size(all) != before) {
		rete_msg m = {{0}};
		if (json_array_size(all) == 0)
			agent_db_del(a->db, AGENT_DB_META, AGENT_META_OWN_KEY,
				     strlen(AGENT_META_OWN_KEY), &m);
		else
			keys_meta_put(a, AGENT_META_OWN_KEY, all, "the alarms left");
	}
	free(ours);
	json_decref(all);
}

rete_err agent_keys_forget(agent *a, const char *party, rete_msg *m)
{
	json_t *all = keys_meta_get(a, AGENT_META_KEY_CHANGES);
	rete_err err = RETE_OK;
	if (json_is_object(all) && json_object_get(all, party) != NULL) {
		json_object_del(all, party);
		if (json_object_size(all) == 0) {
			err = agent_db_del(a->db, AGENT_DB_META, AGENT_META_KEY_CHANGES,
					   strlen(AGENT_META_KEY_CHANGES), m);
		} else {
			char *text = json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER);
			err = text == NULL
				  ? rete_msg_set(m, RETE_ENOMEM, "out of memory")
				  : agent_db_put(a->db, AGENT_DB_META, AGENT_META_KEY_CHANGES,
						 strlen(AGENT_META_KEY_CHANGES), text, strlen(text),
						 m);
			free(text);
		}
	}
	json_decref(all);
	return err;
}
