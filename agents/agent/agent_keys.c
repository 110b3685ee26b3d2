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

static json_t *keys_meta_get(agent *a, const char *key);
static bool keys_meta_put(agent *a, const char *key, json_t *o, const char *unsaid);
static json_t *keys_b64(const uint8_t *k, size_t len);

/* At most this many earlier keys (and refused keys) are kept a party: a
 * party rotates once in years. */
#define KEYS_EARLIER_MAX 16

/* keys_party_get: party's record in meta "party_keys" (all, borrowed),
 * created when create; NULL when absent. */
static json_t *keys_party_get(json_t *all, const char *party, bool create)
{
	json_t *rec = json_object_get(all, party);
	if (!json_is_object(rec) && create) {
		rec = json_object();
		json_object_set_new(all, party, rec);
	}
	return json_is_object(rec) ? rec : NULL;
}

/* keys_list_has: does array arr hold the string b64? */
static bool keys_list_has(const json_t *arr, const char *b64)
{
	size_t i;
	json_t *it;
	json_array_foreach(arr, i, it)
	{
		if (json_is_string(it) && strcmp(json_string_value(it), b64) == 0)
			return true;
	}
	return false;
}

/* keys_list_add adds b64 to the array member key of rec (once; the
 * oldest go beyond KEYS_EARLIER_MAX). */
static void keys_list_add(json_t *rec, const char *key, const char *b64)
{
	json_t *arr = json_object_get(rec, key);
	if (!json_is_array(arr)) {
		arr = json_array();
		json_object_set_new(rec, key, arr);
	}
	if (keys_list_has(arr, b64))
		return;
	json_array_append_new(arr, json_string(b64));
	while (json_array_size(arr) > KEYS_EARLIER_MAX)
		json_array_remove(arr, 0);
}

/* keys_list_del removes b64 from the array member key of rec. */
static void keys_list_del(json_t *rec, const char *key, const char *b64)
{
	json_t *arr = json_object_get(rec, key);
	for (size_t i = json_array_size(arr); i-- > 0;)
		if (strcmp(json_string_value(json_array_get(arr, i)) ?: "", b64) == 0)
			json_array_remove(arr, i);
}

/* keys_party_keys: meta "party_keys" (an empty object when absent). */
static json_t *keys_party_keys(agent *a)
{
	json_t *all = keys_meta_get(a, AGENT_META_PARTY_KEYS);
	if (!json_is_object(all)) {
		json_decref(all);
		all = json_object();
	}
	return all;
}

bool agent_keys_earlier_verify(agent *a, const char *party, agent_key_verify_fn verify, void *ctx)
{
	json_t *all = keys_party_keys(a);
	json_t *rec = keys_party_get(all, party, false);
	size_t i;
	json_t *it;
	bool ok = false;
	json_array_foreach(json_object_get(rec, "earlier"), i, it)
	{
		uint8_t *k = NULL;
		size_t kl = 0;
		rete_pubkey pk;
		rete_msg m = {{0}};
		if (!ok && json_is_string(it) &&
		    rete_b64_decode(json_string_value(it), &k, &kl) == RETE_OK &&
		    kl == RETE_PK_LEN && rete_pubkey_from_ed(&pk, k, &m) == RETE_OK)
			ok = verify(&pk, ctx);
		free(k);
	}
	json_decref(all);
	return ok;
}

/* keys_standing: what this agency's operator said of party's directory
 * key dirkey: 'a' confirmed in advance, 'r' refused (the pinned key was
 * kept), 0 nothing. */
static char keys_standing(agent *a, const char *party, const uint8_t dirkey[RETE_PK_LEN])
{
	char *b64 = rete_b64_encode(dirkey, RETE_PK_LEN);
	json_t *all = keys_party_keys(a);
	json_t *rec = keys_party_get(all, party, false);
	char r = 0;
	if (b64 != NULL && rec != NULL) {
		if (strcmp(keys_str(rec, "advance"), b64) == 0)
			r = 'a';
		else if (keys_list_has(json_object_get(rec, "refused"), b64))
			r = 'r';
	}
	free(b64);
	json_decref(all);
	return r;
}

/* --- taking in log order what waited for a key -------------------------
 *
 * The broker sends again what it set aside in rounds, in log order, a
 * chunk at a time; --trust (another process) may confirm the key between
 * two chunks, or while a later entry of the party comes through the
 * window: the agent would take the later ones first. So the entries still
 * waiting when the key is confirmed are listed (meta "key_taking"), and an
 * entry of that party above one of them waits (not acked: the broker sets
 * it aside and sends it again after them). */

/* How many times an entry is left for later while lower ones of the list
 * never come again (the broker withdrew them at its expiry): one round may
 * have begun before the confirmation, the next brings them in order. */
#define KEYS_HOLD_MAX 3

/* Entries listed per party as waiting for its key (meta "key_changes"):
 * above the 4096 the broker sets aside at its default window (64 per
 * slot); what waits beyond is counted, not listed (agent_keys_unconfirmed). */
#define KEYS_WAIT_LIST 8192

/* keys_json_put writes o (borrowed) as meta key, in the open transaction
 * (or one of its own). */
static rete_err keys_json_put(agent *a, const char *key, json_t *o, rete_msg *m)
{
	char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	rete_err err = text == NULL ? rete_msg_set(m, RETE_ENOMEM, "out of memory")
				    : agent_db_put(a->db, AGENT_DB_META, key, strlen(key), text,
						   strlen(text), m);
	free(text);
	return err;
}

/* keys_taking_put writes all (borrowed) as meta "key_taking", or deletes
 * it when empty, in the open transaction (or one of its own). */
static rete_err keys_taking_put(agent *a, json_t *all, rete_msg *m)
{
	if (json_object_size(all) == 0) {
		rete_err err = agent_db_del(a->db, AGENT_DB_META, AGENT_META_KEY_TAKING,
					    strlen(AGENT_META_KEY_TAKING), m);
		return err == RETE_ENOENT ? RETE_OK : err;
	}
	return keys_json_put(a, AGENT_META_KEY_TAKING, all, m);
}

/* keys_taking_begin lists, at the confirmation of party's key, the
 * entries that waited for it (meta "key_changes"), to be taken in order. */
static rete_err keys_taking_begin(agent *a, const char *party, rete_msg *m)
{
	json_t *changes = keys_meta_get(a, AGENT_META_KEY_CHANGES);
	json_t *entries = json_object_get(json_object_get(changes, party), "entries");
	rete_err err = RETE_OK;
	if (json_is_array(entries) && json_array_size(entries) > 0) {
		json_t *all = keys_meta_get(a, AGENT_META_KEY_TAKING);
		if (!json_is_object(all)) {
			json_decref(all);
			all = json_object();
		}
		json_t *rec = json_object();
		json_object_set(rec, "entries", entries);
		json_object_set_new(all, party, rec);
		err = keys_taking_put(a, all, m);
		json_decref(all);
	}
	json_decref(changes);
	return err;
}

bool agent_keys_hold_back(agent *a, const char *party, uint64_t index)
{
	json_t *all = keys_meta_get(a, AGENT_META_KEY_TAKING);
	json_t *rec = json_object_get(all, party);
	json_t *entries = json_object_get(rec, "entries");
	size_t i, lower = 0;
	json_t *it;
	uint64_t first = 0;
	json_array_foreach(entries, i, it)
	{
		uint64_t e = (uint64_t)json_integer_value(it);
		if (e < index && (lower++ == 0 || e < first))
			first = e;
	}
	if (lower == 0) {
		json_decref(all);
		return false;
	}
	char key[24];
	rete_msg m = {{0}};
	snprintf(key, sizeof(key), "%" PRIu64, index);
	json_t *held = json_object_get(rec, "held");
	if (!json_is_object(held)) {
		held = json_object();
		json_object_set_new(rec, "held", held);
	}
	json_int_t times = json_integer_value(json_object_get(held, key)) + 1;
	bool hold = times <= KEYS_HOLD_MAX;
	if (hold) {
		json_object_set_new(held, key, json_integer(times));
		agent_debug(a,
			    "log entry %" PRIu64 " of %s waits: %zu entr%s of %s that waited for "
			    "its key, from log entry %" PRIu64 ", come first (log order)",
			    index, party, lower, lower == 1 ? "y" : "ies", party, first);
	} else {
		for (size_t k = json_array_size(entries); k-- > 0;)
			if ((uint64_t)json_integer_value(json_array_get(entries, k)) < index)
				json_array_remove(entries, k);
		json_object_del(rec, "held");
		if (json_array_size(entries) == 0)
			json_object_del(all, party);
		agent_log(a, "warning",
			  "%zu entr%s of %s that waited for its key (from log entry %" PRIu64
			  ") did not come again while later ones did (%d times): most likely the "
			  "broker no longer holds them (withdrawn at its expiry: the sender was "
			  "told they were not delivered; or its log went back); taking log entry "
			  "%" PRIu64 " and what follows",
			  lower, lower == 1 ? "y" : "ies", party, first, KEYS_HOLD_MAX, index);
	}
	if (keys_taking_put(a, all, &m) != RETE_OK) {
		agent_log(a, "warning", "%s; log entry %" PRIu64 " of %s is taken without waiting",
			  m.text, index, party);
		hold = false;
	}
	json_decref(all);
	return hold;
}

void agent_keys_taken(agent *a, uint64_t index)
{
	json_t *all = keys_meta_get(a, AGENT_META_KEY_TAKING);
	if (!json_is_object(all)) {
		json_decref(all);
		return;
	}
	const char *party;
	json_t *rec, *tmp;
	bool found = false;
	json_object_foreach_safe(all, tmp, party, rec)
	{
		json_t *entries = json_object_get(rec, "entries");
		bool here = false;
		for (size_t k = json_array_size(entries); k-- > 0;)
			if ((uint64_t)json_integer_value(json_array_get(entries, k)) == index) {
				json_array_remove(entries, k);
				here = true;
			}
		if (!here)
			continue;
		found = true;
		json_object_del(rec, "held"); /* progress: the order is kept so far */
		if (json_array_size(entries) == 0)
			json_object_del(all, party);
	}
	rete_msg m = {{0}};
	if (found && keys_taking_put(a, all, &m) != RETE_OK)
		agent_log(a, "warning", "%s: log entry %" PRIu64 " stays listed as waiting", m.text,
			  index);
	json_decref(all);
}

rete_err agent_keys_pin(agent *a, const char *party, const uint8_t key[RETE_PK_LEN], rete_msg *m)
{
	rete_buf old = {0};
	bool own_txn = !agent_db_in_txn(a->db);
	rete_err err = own_txn ? agent_db_begin(a->db, m) : RETE_OK;
	if (err != RETE_OK)
		return err;
	json_t *all = keys_party_keys(a);
	json_t *rec = keys_party_get(all, party, true);
	char *nk = rete_b64_encode(key, RETE_PK_LEN);
	if (agent_db_get(a->db, AGENT_DB_PINS, party, strlen(party), &old, NULL) == RETE_OK &&
	    old.len == RETE_PK_LEN && sodium_memcmp(old.data, key, RETE_PK_LEN) != 0) {
		char *ok = rete_b64_encode(old.data, old.len);
		if (ok != NULL)
			keys_list_add(rec, "earlier", ok);
		free(ok);
	}
	rete_buf_free(&old);
	if (nk != NULL) {
		keys_list_del(rec, "earlier", nk);
		keys_list_del(rec, "refused", nk);
	}
	json_object_del(rec, "advance");
	char *text = json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER);
	err = text == NULL ? rete_msg_set(m, RETE_ENOMEM, "out of memory")
			   : agent_db_put(a->db, AGENT_DB_META, AGENT_META_PARTY_KEYS,
					  strlen(AGENT_META_PARTY_KEYS), text, strlen(text), m);
	free(text);
	free(nk);
	json_decref(all);
	if (err == RETE_OK)
		err = agent_db_put(a->db, AGENT_DB_PINS, party, strlen(party), key, RETE_PK_LEN, m);
	if (err == RETE_OK) {
		err = agent_db_del(a->db, AGENT_DB_PENDING, party, strlen(party), m);
		if (err == RETE_ENOENT)
			err = RETE_OK;
	}
	if (err == RETE_OK)
		err = keys_taking_begin(a, party, m);
	if (err == RETE_OK)
		err = agent_keys_forget(a, party, m);
	return own_txn ? agent_db_end(a->db, err, m) : err;
}

rete_err agent_keys_mark(agent *a, const char *party, const char *b64, bool advance, rete_msg *m)
{
	json_t *all = keys_party_keys(a);
	json_t *rec = keys_party_get(all, party, true);
	if (advance) {
		json_object_set_new(rec, "advance", json_string(b64));
		keys_list_del(rec, "refused", b64);
	} else {
		keys_list_add(rec, "refused", b64);
		if (strcmp(keys_str(rec, "advance"), b64) == 0)
			json_object_del(rec, "advance");
	}
	rete_err err = keys_json_put(a, AGENT_META_PARTY_KEYS, all, m);
	json_decref(all);
	return err;
}

/* keys_adopt pins party's directory key dirkey, which this agency's
 * operator confirmed in advance (--trust before the directory showed it):
 * said at info level. */
static bool keys_adopt(agent *a, const char *party, const uint8_t dirkey[RETE_PK_LEN])
{
	rete_msg m = {{0}};
	if (agent_keys_pin(a, party, dirkey, &m) != RETE_OK) {
		agent_log(a, "warning",
			  "the key of %s confirmed in advance is in the directory now but could "
			  "not be pinned (%s): tried again with its next signature",
			  party, m.text);
		return false;
	}
	agent_log(a, "info",
		  "the directory shows the key of %s that this agency's operator confirmed in "
		  "advance (--trust): pinned now; the key pinned before still verifies what %s "
		  "signed before",
		  party, party);
	return true;
}

bool agent_keys_take_advance(agent *a, const char *party, const uint8_t dirkey[RETE_PK_LEN])
{
	return keys_standing(a, party, dirkey) == 'a' && keys_adopt(a, party, dirkey);
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
		if (ok || agent_keys_earlier_verify(a, party, verify, ctx))
			return AGENT_KEY_OK;
		if (differs && rete_pubkey_from_ed(&pk, p->public_key.data, &m) == RETE_OK &&
		    verify(&pk, ctx)) {
			switch (keys_standing(a, party, p->public_key.data)) {
			case 'a': /* confirmed in advance: pinned now */
				return keys_adopt(a, party, p->public_key.data) ? AGENT_KEY_OK
										: AGENT_KEY_ERROR;
			case 'r': /* the operator kept the pinned key: refused */
				return AGENT_KEY_BAD;
			default:
				memcpy(dirkey, p->public_key.data, RETE_PK_LEN);
				return AGENT_KEY_UNCONFIRMED;
			}
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
			    const char *what, uint64_t entry)
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
	/* the entries left waiting, each once: the broker delivers them again
	 * every `redeliver` until the key is confirmed */
	json_t *entries = json_object_get(rec, "entries");
	if (!json_is_array(entries)) {
		entries = json_array();
		json_object_set_new(rec, "entries", entries);
	}
	bool again = false;
	size_t i;
	json_t *it;
	json_array_foreach(entries, i, it)
	{
		if ((uint64_t)json_integer_value(it) == entry)
			again = true;
	}
	/* an entry at or below the highest one no longer listed was counted
	 * when it first came (the broker sends what it set aside in log order) */
	json_int_t beyond = json_integer_value(json_object_get(rec, "beyond"));
	uint64_t beyond_max = (uint64_t)json_integer_value(json_object_get(rec, "beyondMax"));
	if (again || (beyond > 0 && entry <= beyond_max)) {
		agent_debug(a, "%s: still waiting for the key of %s to be confirmed", what, party);
		json_decref(all);
		return;
	}
	json_array_append_new(entries, json_integer((json_int_t)entry));
	/* The list is rewritten at each new entry, so it is bounded; the broker
	 * sets aside up to 64 per slot of its delivery window (4096 by
	 * default, 6.4 million at the largest window), so KEYS_WAIT_LIST covers
	 * the default and the oldest beyond it are only counted ("beyond"):
	 * `rete status` says how many wait, and --trust takes the unlisted ones
	 * as they come (the broker sends them first, in log order). */
	while (json_array_size(entries) > KEYS_WAIT_LIST) {
		uint64_t old = (uint64_t)json_integer_value(json_array_get(entries, 0));
		if (old > beyond_max)
			beyond_max = old;
		beyond++;
		json_array_remove(entries, 0);
	}
	if (beyond > 0) {
		json_object_set_new(rec, "beyond", json_integer(beyond));
		json_object_set_new(rec, "beyondMax", json_integer((json_int_t)beyond_max));
	}
	json_object_set_new(rec, "last", json_string(now));
	json_object_set_new(rec, "what", json_string(what));
	json_object_set_new(rec, "key", keys_b64(dirkey, RETE_PK_LEN));
	json_object_set_new(rec, "count",
			    json_integer(beyond + (json_int_t)json_array_size(entries)));
	keys_meta_put(a, AGENT_META_KEY_CHANGES, all, "the key change");
	if (!first) {
		agent_log(a, "warning",
			  "%s verifies only with the key of %s this agency has not confirmed: not "
			  "taken yet, left with the broker, which delivers it again; taken once "
			  "the key is confirmed (ALARM said at %s; `rete status`)",
			  what, party, keys_str(rec, "since"));
		json_decref(all);
		return;
	}
	json_decref(all);
	agent_log(
	    a, "error",
	    "ALARM: the key of %s in the broker's directory is not the key this agency "
	    "pinned for it, and %s is signed with it: not taken yet, nor anything else "
	    "signed with that key: left with the broker, which delivers it again, until "
	    "this agency's operator confirms the key (the broker sets such entries aside, out "
	    "of this agency's delivery window, so they do not hold up what other partners "
	    "send; `rete status` counts them). If "
	    "%s did not change its key, whoever holds this one can sign as %s: tell the "
	    "broker's operator and the auditor. If it did, get the new key from %s by "
	    "another channel (phone, letter; never from the directory) and run rete-agent "
	    "-c agent.ini --trust %s --key KEY: what waits is then taken, nothing needs "
	    "sending again; or, if they say the pinned key is still theirs, --key with the "
	    "pinned key keeps it (what is signed with the other is then refused)",
	    party, what, party, party, party, party);
}

/* keys_serial_gap says, once per gap, that directories were logged that
 * this agent was never given (it was not connected when they were logged,
 * and an agency may not read the log's entries): it cannot check them for
 * its own key; the auditor can. Meta "dir_serial" keeps the latest serial
 * seen (decimal text). */
static uint64_t keys_serial_seen(agent *a)
{
	rete_buf v = {0};
	uint64_t seen = 0;
	if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_DIR_SERIAL, strlen(AGENT_META_DIR_SERIAL),
			 &v, NULL) == RETE_OK) {
		char text[24];
		snprintf(text, sizeof(text), "%.*s", (int)(v.len < 23 ? v.len : 23),
			 (const char *)v.data);
		seen = strtoull(text, NULL, 10);
	}
	rete_buf_free(&v);
	return seen;
}

static void keys_serial_gap(agent *a, const agent_directory *d)
{
	uint64_t seen = keys_serial_seen(a), now = d->dir->serial;
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

/* keys_directory applies what this agency's operator said of the keys to
 * directory d: a key confirmed in advance that d shows is pinned; a changed
 * key waiting for --trust ("pending") of a party d shows with its pinned key
 * again is dropped (a --trust later cannot pin it: review s12 rev-keys, 3).
 * The key change stays in `rete status` until --trust answers it. */
static void keys_directory(agent *a, const agent_directory *d)
{
	json_t *all = keys_party_keys(a);
	const char *party;
	json_t *rec;
	json_object_foreach(all, party, rec)
	{
		const Rete__Party *p = agent_directory_party(d, party);
		if (p == NULL || p->public_key.len != RETE_PK_LEN ||
		    keys_str(rec, "advance")[0] == 0)
			continue;
		if (keys_standing(a, party, p->public_key.data) == 'a')
			keys_adopt(a, party, p->public_key.data);
	}
	json_decref(all);
	for (size_t i = 0; d->dir != NULL && i < d->dir->n_parties; i++) {
		const Rete__Party *p = d->dir->parties[i];
		rete_buf pend = {0}, pin = {0};
		rete_msg m = {{0}};
		if (p->id == NULL || p->public_key.len != RETE_PK_LEN ||
		    agent_db_get(a->db, AGENT_DB_PENDING, p->id, strlen(p->id), &pend, NULL) !=
			RETE_OK) {
			rete_buf_free(&pend);
			continue;
		}
		if (agent_db_get(a->db, AGENT_DB_PINS, p->id, strlen(p->id), &pin, NULL) ==
			RETE_OK &&
		    pin.len == RETE_PK_LEN &&
		    sodium_memcmp(pin.data, p->public_key.data, RETE_PK_LEN) == 0 &&
		    agent_db_del(a->db, AGENT_DB_PENDING, p->id, strlen(p->id), &m) == RETE_OK)
			agent_log(a, "warning",
				  "the directory of entry %" PRIu64
				  " gives %s its pinned key again: "
				  "the other key it showed is no longer waiting for confirmation "
				  "(what is signed with it is refused); the key change stays in "
				  "`rete status` until this agency's operator answers it with "
				  "--trust %s --key KEY",
				  d->index, p->id, p->id);
		rete_buf_free(&pend);
		rete_buf_free(&pin);
	}
}

/* keys_own_add records, in meta AGENT_META_OWN_KEY (the latest
 * KEYS_OWN_MAX), the own-key alarm of directory d: p is this agency's
 * entry in it with a key not ours, or NULL when d does not name it
 * ("missing", with d's serial: the broker's operator removed it, and may
 * add it back under another key, which this agent, refused meanwhile,
 * would never be shown; review s12 rev-keys, 2). false when the entry was
 * recorded before (every WELCOME repeats the directory). entry and at get
 * d's index and logging time. */
static bool keys_own_add(agent *a, const agent_directory *d, const Rete__Party *p, char entry[24],
			 char at[32])
{
	char now[32];
	uint64_t serial = d != NULL ? d->dir->serial : keys_serial_seen(a);
	/* d NULL: the broker refused us as a party it does not know, in a
	 * directory this agent was not given: keyed by the last serial seen */
	if (d != NULL)
		snprintf(entry, 24, "%" PRIu64, d->index);
	else
		snprintf(entry, 24, "after-%" PRIu64, serial);
	rete_time_format(d != NULL ? d->logged_at : rete_now_ms(), at);
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
			json_decref(all);
			return false;
		}
	}
	json_t *rec = json_object();
	json_object_set_new(rec, "entry", json_string(entry));
	if (p == NULL)
		json_object_set_new(rec, "serial", json_integer((json_int_t)serial));
	if (d == NULL)
		json_object_set_new(rec, "refused", json_true());
	json_object_set_new(rec, "loggedAt", json_string(at));
	json_object_set_new(rec, "seenAt", json_string(now));
	if (p == NULL)
		json_object_set_new(rec, "missing", json_true());
	else
		json_object_set_new(rec, "key", keys_b64(p->public_key.data, p->public_key.len));
	json_array_append_new(all, rec);
	while (json_array_size(all) > KEYS_OWN_MAX)
		json_array_remove(all, 0);
	keys_meta_put(a, AGENT_META_OWN_KEY, all, "this alarm");
	json_decref(all);
	return true;
}

void agent_keys_own_check(agent *a, const agent_directory *d)
{
	char entry[24], at[32];
	keys_serial_gap(a, d);
	keys_directory(a, d);
	const Rete__Party *p = agent_directory_party(d, a->cfg.id);
	if (p == NULL || p->public_key.len == 0) {
		if (keys_own_add(a, d, NULL, entry, at))
			agent_log(
			    a, "error",
			    "ALARM: the broker's directory %" PRIu64 " (log entry %s, logged "
			    "at %s) does not name %s: the broker refuses this agency while it "
			    "is in force, and if the id is added back under a key that is not "
			    "ours, whoever holds that key can sign as %s and this agent is not "
			    "shown it; unless this agency was removed on purpose, tell the "
			    "broker's operator and the auditor (rete audit verify lists every "
			    "key change)",
			    (uint64_t)d->dir->serial, entry, at, a->cfg.id, a->cfg.id);
		return;
	}
	if (p->public_key.len == RETE_PK_LEN &&
	    sodium_memcmp(p->public_key.data, a->sk->pub.ed, RETE_PK_LEN) == 0)
		return;
	if (!keys_own_add(a, d, p, entry, at)) {
		agent_debug(a,
			    "the directory of entry %s still gives %s a key that is not ours "
			    "(ALARM said)",
			    entry, a->cfg.id);
		return;
	}
	agent_log(a, "error",
		  "ALARM: the broker's directory gave %s a key that is not ours at entry %s "
		  "(logged at %s): whoever holds it can sign as %s; tell the broker's operator and "
		  "the auditor (if this agency is changing its key and that is the new one, run "
		  "this agent with the new key: the alarm then ends)",
		  a->cfg.id, entry, at, a->cfg.id);
}

void agent_keys_own_refused(agent *a)
{
	char entry[24], at[32];
	if (!keys_own_add(a, NULL, NULL, entry, at))
		return;
	uint64_t serial = keys_serial_seen(a);
	agent_log(a, "error",
		  "ALARM: the broker says %s is not in its directory (any more): a directory "
		  "after %" PRIu64 ", the last this agent was given, does not name it, and this "
		  "agent is not given that one. While it is in force the broker refuses this "
		  "agency, and if the id is added back under a key that is not ours, whoever "
		  "holds that key can sign as %s; unless this agency was removed on purpose, "
		  "tell the broker's operator and the auditor (rete audit verify lists every key "
		  "change)",
		  a->cfg.id, serial, a->cfg.id);
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
