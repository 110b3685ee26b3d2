/* agent_inbox.c — DELIVER in, inbox/<index>-<kind>.json out (see agent.h).
 *
 * Exactly once: the file name is a function of the log entry, the file is
 * written atomically (temporary name, fsync, rename, fsync of the folder)
 * and the entry is recorded in the agent's store, in the same transaction
 * as the referral's status and the pending hook, before the ACK. A crash
 * between the rename and the record rewrites the same name with the same
 * content.
 *
 * A message is recognised by its content, never by its log index alone:
 * (sender, message id, SHA-256 of the SignedMessage bytes) in database
 * "seen". The same message delivered again, at its index or at another one
 * (submitted again after a restore of the broker's store), is only acked
 * again. Another message at a log index we recorded (the broker's log went
 * back: a restore) is a new message: written as
 * inbox/<index 12 digits>.<first 8 hex digits of that SHA-256>-<kind>.json,
 * a name no other entry can take. When the index was recorded in the
 * current log epoch (the log went back without declaring it) that is a
 * witness warning, and the held messages are submitted again, since the
 * log lost what it receipted. When it was recorded before a declared
 * restore (a later epoch: the witness has said so, and the held messages
 * were submitted again for it) it is what a restore means: said once per
 * epoch (and run), the rest at debug level; inbox_epoch_put records the
 * epoch of each entry for that.
 *
 * Before all that, agent_inbox_deliver applies the pin rule (agent_keys.h):
 * a party's signature is checked with the key this agency pinned for it,
 * not with whatever key the broker's directory shows now.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "agent_keys.h"
#include "agent_spool.h"
#include "agent_track.h"
#include "duration.h"
#include "json.h"
#include "validate.h"
#include "wire.h"

static bool broker_body(const Rete__Message *msg);

/* The sentence of a refusal whose own one looked like personal data. */
#define INBOX_TEXT_WITHHELD                                                                        \
	"the recipient's agent refused this delivery (the error code says why); its sentence "     \
	"was withheld because it looked like personal data, which the log keeps for ever"

/* inbox_ack acknowledges the delivered entry d (log index `index`; msg is
 * its message, NULL when it did not decode). An agency's entry is acked
 * signed with the agency's key over the log's origin, the index and the
 * leaf hash of the very LogEntry bytes received (protocol 3): the broker
 * logs that signature in the Delivery entry (or, with error set, in the
 * DELIVERY_REFUSED notice), so the delivery is provable without trusting
 * the broker. An entry the broker wrote (a Delivery, a Notice, a Directory)
 * is acked unsigned (protocol 4): nothing is logged for it, so a signature
 * would prove nothing, and the connection's CURVE key says who acks. */
static void inbox_ack(agent *a, const Rete__Deliver *d, const Rete__Message *msg, uint64_t index,
		      Rete__ErrorCode error, const char *text)
{
	Rete__Ack ack;
	Rete__SignedAck sa;
	Rete__ClientFrame f = RETE__CLIENT_FRAME__INIT;
	rete_msg m = {{0}};
	bool own = msg != NULL && broker_body(msg);
	char pd[128];
	/* report s12, 4: a refusal's text goes, inside our signature, into the
	 * DELIVERY_REFUSED notice the log keeps for ever (the broker refuses
	 * such an ACK); our sentences name message ids and libraries' errors,
	 * which a dishonest sender or broker chooses: one that looks like
	 * personal data goes out as a fixed sentence (the code says why; the
	 * whole sentence is in our own log, inbox_refuse) */
	if (error != 0 && rete_personal_in_text(text, pd, sizeof(pd))) {
		agent_log(a, "error",
			  "the refusal of log entry %" PRIu64 " would have carried %s in its text, "
			  "which the broker's log keeps for ever; it goes with the sentence \"%s\" "
			  "instead",
			  index, pd, INBOX_TEXT_WITHHELD);
		text = INBOX_TEXT_WITHHELD;
	}
	if (own) {
		rete__ack__init(&ack);
		rete__signed_ack__init(&sa);
		ack.index = index;
		ack.error = error;
		ack.error_text = (char *)(text ? text : "");
	} else if (rete_wire_ack_build(&ack, &sa, a->sk, a->origin, a->cfg.id, d->log_entry.data,
				       d->log_entry.len, index, error, text, &m) != RETE_OK) {
		agent_log(a, "error",
			  "the ACK of log entry %" PRIu64 " cannot be signed (%s); the broker "
			  "will deliver it again",
			  index, m.text);
		return;
	}
	f.command_case = RETE__CLIENT_FRAME__COMMAND_ACK;
	f.ack = &ack;
	if (agent_net_send(a, &f) != RETE_OK)
		agent_debug(a, "ack of %" PRIu64 " not sent; the broker will deliver it again",
			    index);
	else if (!own)
		agent_inbox_unacked_sent(a, index); /* its record goes at the next PONG */
	if (!own)
		rete_signed_ack_clear(&sa);
	/* answered: no longer one that waited for its signer's key, nor one
	 * held for a disk that could not be written */
	agent_keys_taken(a, index);
	agent_inbox_held_done(a, index);
}

/* inbox_refuse acks an entry that cannot be verified or opened: logged,
 * told to the broker in a refusal (the ACK with error set: signed for an
 * agency's entry, unsigned for the broker's, as inbox_ack has it), and the
 * queue moves on. */
static void inbox_refuse(agent *a, const Rete__Deliver *d, const Rete__Message *msg, uint64_t index,
			 Rete__ErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void inbox_refuse(agent *a, const Rete__Deliver *d, const Rete__Message *msg, uint64_t index,
			 Rete__ErrorCode code, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	agent_log(a, "error", "delivery of log entry %" PRIu64 " refused: %s", index, text);
	inbox_ack(a, d, msg, index, code, text);
}

/* broker_body: an entry only the broker writes (validate.h), verified
 * with the pinned broker key and acked unsigned (protocol 4). */
static bool broker_body(const Rete__Message *msg)
{
	return rete_body_is_broker(msg);
}

/* inbox_verify verifies msg: a broker body with the pinned broker key;
 * an agency's message with the key this agency pinned for its sender (or
 * confirmed with --trust), the sender being pinned here on first use
 * (agent_keys.h: the pin rule). A message that verifies only with a new key
 * of the directory was left with the broker before this (inbox_key_refused). */
static bool inbox_verify(agent *a, const Rete__SignedMessage *sm, const Rete__Message *msg)
{
	rete_msg m = {{0}};
	uint8_t dirkey[RETE_PK_LEN];
	if (broker_body(msg))
		return rete_signed_verify(sm, &a->broker_pk, &m) == RETE_OK;
	return agent_keys_verify_message(a, sm, msg->sender, dirkey) == AGENT_KEY_OK;
}

/* inbox_ack_of: the recipient's signed acknowledgement a delivery receipt
 * or a delivery-refused notice carries (NULL: none), and the message id
 * it is about. */
static const Rete__SignedAck *inbox_ack_of(const Rete__Message *msg, const char **id)
{
	const Rete__SignedAck *sa = NULL;
	*id = "";
	if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY && msg->delivery != NULL) {
		sa = msg->delivery->ack;
		*id = msg->delivery->message_id;
	} else if (msg->body_case == RETE__MESSAGE__BODY_NOTICE && msg->notice != NULL &&
		   (msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED ||
		    msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED)) {
		sa = msg->notice->ack;
		*id = msg->notice->message_id;
	}
	return sa != NULL && sa->body.len > 0 ? sa : NULL;
}

/* inbox_never_sent: the broker's receipt or notice msg (verified) is
 * about a message of ours, id, that this agent has no record of sending
 * (database "ids" keeps every id it got a receipt for): someone signed as
 * this agency, with a key the directory gave it. Said, not refused: the
 * entry is the broker's true word that it logged such a message. When
 * sent/ has a receipt of id, the store was put back from an older copy
 * (docs/operations.md): a warning naming the receipt, not the alarm
 * (final-read s12 #2). Nor is one of a message this agent signed whose
 * receipt has not come (a receipt lost with a connection). */
static void inbox_never_sent(agent *a, const Rete__Message *msg, uint64_t index, const char *id)
{
	rete_buf v = {0};
	/* a message of ours signed and not yet receipted is ours: its
	 * delivery receipt came first (agent_delivery.c, AGENT_DLV_EARLY) */
	if (id == NULL || id[0] == '\0' || agent_outbox_awaits_receipt(a, id) ||
	    agent_db_get(a->db, AGENT_DB_IDS, id, strlen(id), &v, NULL) != RETE_ENOENT ||
	    agent_db_get(a->db, AGENT_DB_HELD, id, strlen(id), &v, NULL) != RETE_ENOENT) {
		rete_buf_free(&v);
		return;
	}
	bool refused = msg->body_case == RETE__MESSAGE__BODY_NOTICE;
	char used[300];
	if (agent_outbox_sent_receipt(a, id, used, sizeof(used))) {
		/* sent after the copy the data folder was put back from */
		agent_log(a, "warning",
			  "log entry %" PRIu64 " says that message %s of %s was %s; this agent's "
			  "store has no record of it because its data folder was put back from an "
			  "older copy, but this agency sent it: sent/%s.receipt.json is its "
			  "receipt (see docs/operations.md, \"Restoring an agent's data folder\")",
			  index, id, a->cfg.id, refused ? "refused by its recipient" : "delivered",
			  used);
		return;
	}
	agent_log(a, "error",
		  "ALARM: log entry %" PRIu64 " says that message %s of %s was %s, but this "
		  "agent never sent it (no receipt of it in its store): unless another agent "
		  "sends as %s, someone signed it with a key the broker's directory gave %s; "
		  "tell the broker's operator and the auditor (rete audit verify lists every key "
		  "change)",
		  index, id, a->cfg.id, refused ? "refused by its recipient" : "delivered",
		  a->cfg.id, a->cfg.id);
}

/* inbox_key_refused applies the pin rule (agent_keys.h) to a delivery
 * before the inbox takes it: an agency's message that verifies only with
 * an unconfirmed new key of its sender is not acked (nor refused: the
 * broker would take it off the queue, and an honest rotation would lose the
 * referral; review s12 rev-keys, 1): the broker delivers it again and it is
 * taken once this agency's operator confirms the key, or refused as a bad
 * signature once the directory no longer shows that key or the operator
 * kept the pinned one; a delivery receipt or refusal notice of ours
 * whose acknowledgement verifies only with an unconfirmed new key of the
 * recipient is not acked (kept by the broker and delivered again: taken
 * once this agency's operator confirms the key, never taken as proof
 * before); one whose acknowledgement verifies with neither key is refused
 * (it proves nothing). true when the delivery was answered here. What
 * does not decode or verify at all is left to agent_inbox_on_deliver,
 * which refuses it. */
static bool inbox_key_refused(agent *a, const Rete__Deliver *d)
{
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_msg m = {{0}};
	uint8_t hash[RETE_HASH_LEN], seenkey[512], dirkey[RETE_PK_LEN];
	rete_buf have = {0};
	char what[200];
	bool done = false;
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, d->log_entry.len, d->log_entry.data);
	if (le == NULL || rete_signed_decode(le->signed_message.data, le->signed_message.len, &sm,
					     &msg, &m) != RETE_OK)
		goto out;
	/* a message already in the inbox was checked when it came */
	rete_sha256(hash, le->signed_message.data, le->signed_message.len);
	size_t seenlen = agent_db_seen_key(seenkey, sizeof(seenkey), msg->sender, msg->id, hash);
	if (seenlen > 0 &&
	    agent_db_get(a->db, AGENT_DB_SEEN, seenkey, seenlen, &have, &m) == RETE_OK) {
		rete_buf_free(&have);
		goto out;
	}
	if (!broker_body(msg)) {
		agent_key_verdict v = agent_keys_verify_message(a, sm, msg->sender, dirkey);
		if (v == AGENT_KEY_ERROR) {
			done = true; /* said; not answered: delivered again */
		} else if (v == AGENT_KEY_OK && agent_keys_hold_back(a, msg->sender, le->index)) {
			done = true; /* not acked: after what waited before it */
		} else if (v == AGENT_KEY_UNCONFIRMED) {
			snprintf(what, sizeof(what), "%s %.64s (log entry %" PRIu64 ")",
				 rete_message_kind(msg), msg->id, le->index);
			agent_keys_unconfirmed(a, msg->sender, dirkey, what, le->index);
			done = true; /* not acked: delivered again */
		}
		goto out;
	}
	if (rete_signed_verify(sm, &a->broker_pk, &m) != RETE_OK)
		goto out;
	const char *about;
	const Rete__SignedAck *sa = inbox_ack_of(msg, &about);
	if (strcmp(msg->recipient, a->cfg.id) == 0)
		inbox_never_sent(a, msg, le->index, about);
	if (sa == NULL)
		goto out;
	Rete__AckBody *body = rete__ack_body__unpack(NULL, sa->body.len, sa->body.data);
	if (body == NULL)
		goto out;
	if (body->recipient != NULL && body->recipient[0] != '\0') {
		agent_key_verdict v = agent_keys_verify_ack(a, sa, body->recipient, dirkey);
		if (v == AGENT_KEY_ERROR) {
			done = true;
		} else if (v == AGENT_KEY_UNCONFIRMED) {
			snprintf(what, sizeof(what),
				 "the acknowledgement in the %s of our message %.64s (log entry "
				 "%" PRIu64 ")",
				 msg->body_case == RETE__MESSAGE__BODY_DELIVERY ? "delivery receipt"
										: "refusal notice",
				 about, le->index);
			agent_keys_unconfirmed(a, body->recipient, dirkey, what, le->index);
			agent_debug(
			    a,
			    "log entry %" PRIu64 " not taken: %s is signed with a key of %s "
			    "this agency has not confirmed; the broker delivers it again, and "
			    "it is taken once the key is confirmed (--trust); our message "
			    "stays held meanwhile",
			    le->index, what, body->recipient);
			done = true;
		} else if (v == AGENT_KEY_BAD) {
			/* signed by a key that is neither the pinned one nor the
			 * directory's now (say, one the directory gave for a while,
			 * which this agency's operator did not keep): not proof */
			inbox_refuse(
			    a, d, msg, le->index, RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE,
			    "the acknowledgement in the %s of our message %.64s does not "
			    "verify with the key of %s this agency pinned, nor with its key "
			    "in the directory: not taken as %s's word; our message stays "
			    "held",
			    msg->body_case == RETE__MESSAGE__BODY_DELIVERY ? "delivery receipt"
									   : "refusal notice",
			    about, body->recipient, body->recipient);
			done = true;
		}
	}
	rete__ack_body__free_unpacked(body, NULL);
out:
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
	if (le != NULL)
		rete__log_entry__free_unpacked(le, NULL);
	return done;
}

void agent_inbox_deliver(agent *a, const Rete__Deliver *d)
{
	if (!inbox_key_refused(a, d))
		agent_inbox_on_deliver(a, d);
}

/* inbox_concerns adds what the agency knows of the referral a delivery
 * receipt or notice concerns. */
static void inbox_concerns(agent *a, json_t *doc, const char *refid)
{
	json_t *rec = NULL;
	rete_msg m = {{0}};
	if (refid == NULL || refid[0] == '\0')
		return;
	if (agent_track_get(a->db, refid, &rec, &m) != RETE_OK)
		return;
	json_t *sum = json_object();
	static const char *const keys[] = {"id",       "requester", "performer", "service",
					   "priority", "caseId",    "status",	 "businessStatus"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(rec, keys[i]);
		if (v != NULL)
			json_object_set(sum, keys[i], v);
	}
	json_object_set_new(doc, "referral", sum);
	json_decref(rec);
}

/* inbox_new_directory adopts a delivered Directory entry (already verified
 * with the broker key as a SignedMessage). */
static void inbox_new_directory(agent *a, const Rete__Deliver *d)
{
	agent_directory *nd = NULL;
	rete_msg m = {{0}};
	if (agent_directory_load(d->log_entry.data, d->log_entry.len, &a->broker_pk, &nd, &m) !=
	    RETE_OK) {
		agent_log(a, "error", "delivered directory not adopted: %s", m.text);
		return;
	}
	if (a->dir != NULL && a->dir->index > nd->index) {
		agent_directory_free(&nd);
		return;
	}
	agent_keys_own_check(a, nd);
	agent_directory_free(&a->dir);
	a->dir = nd;
	agent_log(a, "info", "directory of log entry %" PRIu64 " in force", nd->index);
}

/* inbox_name writes the inbox file name of an entry into fname:
 * <index 12 digits>-<kind>.json, or, when another entry was recorded at
 * that index (collided), <index>.<8 hex digits of the SignedMessage's
 * SHA-256>-<kind>.json: the same entry always gets the same name. */
static void inbox_name(char *fname, size_t fsize, uint64_t index, const char *kind,
		       const uint8_t hash[RETE_HASH_LEN], bool collided)
{
	if (!collided) {
		snprintf(fname, fsize, "%012" PRIu64 "-%s.json", index, kind);
		return;
	}
	char hex[9];
	sodium_bin2hex(hex, sizeof(hex), hash, 4);
	snprintf(fname, fsize, "%012" PRIu64 ".%s-%s.json", index, hex, kind);
}

/* inbox_write writes inbox/fname atomically and durably. RETE_ENOMEM,
 * RETE_EIO. */
static rete_err inbox_write(agent *a, const Rete__LogEntry *le, const Rete__Message *msg,
			    const Rete__Private *priv, const Rete__Deliver *d, const char *fname,
			    const char *alarm, rete_msg *m)
{
	char idx[24], buf[32];
	const char *kind = rete_message_kind(msg);
	json_t *doc = json_object();
	if (doc == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	snprintf(idx, sizeof(idx), "%" PRIu64, le->index);
	json_object_set_new(doc, "index", json_string(idx));
	json_object_set_new(doc, "loggedAt", json_string(rete_time_format(le->logged_at, buf)));
	json_object_set_new(doc, "sender", json_string(msg->sender));
	json_object_set_new(doc, "kind", json_string(kind));
	json_object_set_new(doc, "message", rete_pb_to_json(&msg->base));
	if (priv != NULL)
		json_object_set_new(doc, "private", rete_pb_to_json(&priv->base));
	if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY ||
	    msg->body_case == RETE__MESSAGE__BODY_NOTICE)
		inbox_concerns(a, doc, rete_message_referral_id(msg));
	/* a delivery receipt the recipient did not sign: the broker's word */
	if (alarm != NULL)
		json_object_set_new(doc, "deliveryAlarm", json_string(alarm));
	char *b64 = rete_b64_encode(d->log_entry.data, d->log_entry.len);
	if (b64 != NULL)
		json_object_set_new(doc, "logEntry", json_string(b64));
	free(b64);
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	size_t len = strlen(text);
	text[len] = '\n';
	rete_err err = agent_spool_write(a->inbox_dir, fname, text, len + 1, m);
	free(text);
	if (err != RETE_OK)
		rete_msg_prefix(m, "cannot write inbox/%s", fname);
	return err;
}

/* inbox_epoch_key: the key of the record of the log epoch in which the
 * entry at index (its 8-byte key) was recorded: 'e' || index BE64, in the
 * inbox database beside the index's own record (agent_db.h). */
static void inbox_epoch_key(uint8_t ek[9], const uint8_t key[8])
{
	ek[0] = 'e';
	memcpy(ek + 1, key, 8);
}

/* inbox_epoch_of: the log epoch in which this agent recorded the entry at
 * index (its key). An index recorded without its epoch (in epoch 1, where
 * it is not kept so that a log never restored costs nothing more, or by an
 * agent older than the record, rete 0.7.0, in whatever epoch the broker
 * was in then) counts as of a->inbox_unkeyed_epoch: the epoch the agent
 * was in when this version first opened the store (agent_inbox_start).
 * Every unkeyed record was made in that epoch or before, and not "before
 * the current one": a 0.7.0 agent's record of the current epoch 2 must
 * still warn when a log that went back undeclared reuses its index. */
static uint32_t inbox_epoch_of(agent *a, const uint8_t key[8])
{
	uint8_t ek[9];
	uint32_t e = 0;
	inbox_epoch_key(ek, key);
	if (!agent_db_get_u32(a->db, AGENT_DB_INBOX, ek, sizeof(ek), &e))
		e = a->inbox_unkeyed_epoch ? a->inbox_unkeyed_epoch : 1;
	return e;
}

#define INBOX_UNKEYED_EPOCH "inbox_unkeyed_epoch"

rete_err agent_inbox_start(agent *a, rete_msg *m)
{
	uint32_t e = 1;
	/* deliveries held by the last run are in memory no more (the broker
	 * delivers them again): its record for `rete status` goes (a store
	 * that cannot be written now keeps it until the next hold ends) */
	rete_msg dm = {{0}};
	(void)agent_db_del(a->db, AGENT_DB_META, AGENT_META_INBOX_HELD,
			   strlen(AGENT_META_INBOX_HELD), &dm);
	if (agent_db_get_u32(a->db, AGENT_DB_META, INBOX_UNKEYED_EPOCH, strlen(INBOX_UNKEYED_EPOCH),
			  &e)) {
		a->inbox_unkeyed_epoch = e ? e : 1;
		return RETE_OK;
	}
	/* The first start of this version on the store (a new store, or one
	 * an older agent wrote): its records without an epoch were made in
	 * the epoch of the last WELCOME or before. */
	if (!agent_db_get_u32(a->db, AGENT_DB_META, "epoch", 5, &e) || e == 0)
		e = 1;
	uint8_t be[4] = {(uint8_t)(e >> 24), (uint8_t)(e >> 16), (uint8_t)(e >> 8), (uint8_t)e};
	rete_err err = RETE_OK;
	for (int attempt = 0; attempt < 2; attempt++) { /* again once: map grown */
		err = agent_db_begin(a->db, m);
		if (err == RETE_OK)
			err = agent_db_put(a->db, AGENT_DB_META, INBOX_UNKEYED_EPOCH,
					   strlen(INBOX_UNKEYED_EPOCH), be, sizeof(be), m);
		if ((err = agent_db_end(a->db, err, m)) != RETE_EFULL)
			break;
	}
	if (err == RETE_OK)
		a->inbox_unkeyed_epoch = e;
	return err;
}

/* inbox_epoch_put records, in the open transaction, that the entry at
 * index (its key) was recorded in the log epoch the last WELCOME said,
 * once that is 2 or more (a declared restore is known; 0: an older broker
 * that says none). */
static rete_err inbox_epoch_put(agent *a, const uint8_t key[8], rete_msg *m)
{
	uint8_t ek[9], be[4] = {(uint8_t)(a->epoch >> 24), (uint8_t)(a->epoch >> 16),
				(uint8_t)(a->epoch >> 8), (uint8_t)a->epoch};
	inbox_epoch_key(ek, key);
	if (a->epoch < 2 || !a->epoch_signed) {
		/* no epoch to say: an older one recorded for this index no
		 * longer says when the entry now there was recorded (unkeyed,
		 * it counts as of inbox_unkeyed_epoch) */
		return agent_db_del(a->db, AGENT_DB_INBOX, ek, sizeof(ek), m);
	}
	return agent_db_put(a->db, AGENT_DB_INBOX, ek, sizeof(ek), be, sizeof(be), m);
}

/* inbox_record records, in the open transaction, an entry written as
 * inbox/fname: by index (the name and the content hash, and the log epoch
 * once a restore is known: inbox_epoch_put) and by content. */
static rete_err inbox_record(agent *a, const uint8_t key[8], const uint8_t *seenkey, size_t seenlen,
			     uint64_t index, const char *fname, const uint8_t hash[RETE_HASH_LEN],
			     rete_msg *m)
{
	size_t fl = strlen(fname);
	uint8_t v[8 + 200];
	if (fl + 1 + RETE_HASH_LEN > sizeof(v))
		return rete_msg_set(m, RETE_EINVAL, "inbox name %s too long", fname);
	memcpy(v, fname, fl);
	v[fl] = 0;
	memcpy(v + fl + 1, hash, RETE_HASH_LEN);
	rete_err err = agent_db_put(a->db, AGENT_DB_INBOX, key, 8, v, fl + 1 + RETE_HASH_LEN, m);
	if (err == RETE_OK)
		err = inbox_epoch_put(a, key, m);
	if (err != RETE_OK || seenlen == 0)
		return err;
	agent_db_index_key(v, index);
	memcpy(v + 8, fname, fl);
	return agent_db_put(a->db, AGENT_DB_SEEN, seenkey, seenlen, v, 8 + fl, m);
}

/* inbox_reuse_said says that log entry index (msg), written as
 * inbox/fname, takes an index at which this agent recorded another entry
 * (inbox/before) in an epoch before the current one: the first time in an
 * epoch (and run) as an info line, then at debug level. A restore from an
 * old backup gives every index between the restore point and the old
 * log's length a new entry: a line each would drown the log, and there is
 * nothing to do about them (the witness said the restore at WELCOME). */
static void inbox_reuse_said(agent *a, uint64_t index, const Rete__Message *msg, const char *before,
			     const char *fname)
{
	if (a->inbox_reuse_said == a->epoch) {
		agent_debug(a,
			    "log entry %" PRIu64 " (%s %s from %s) takes an index used before the "
			    "declared restore (inbox/%s): a new message, inbox/%s",
			    index, rete_message_kind(msg), msg->id, msg->sender, before, fname);
		return;
	}
	a->inbox_reuse_said = a->epoch;
	agent_log(a, "info",
		  "log entry %" PRIu64 " (%s %s from %s) takes a log index this agent was "
		  "delivered another entry at before the declared restore of the broker's log "
		  "(it is in epoch %" PRIu32 " now; inbox/%s): a new message, written as "
		  "inbox/%s. The entries of epoch %" PRIu32 " at indexes used before the restore "
		  "are all new messages, written the same way; only the debug log (-v) names "
		  "the others",
		  index, rete_message_kind(msg), msg->id, msg->sender, a->epoch, before, fname,
		  a->epoch);
}

/* inbox_before_restore: the entry this agent recorded at log index `at`
 * was recorded in an epoch before the current one, which the WELCOME's
 * signed checkpoint backs (a declared restore came between). */
static bool inbox_before_restore(agent *a, uint64_t at)
{
	uint8_t key[8];
	agent_db_index_key(key, at);
	return a->epoch >= 2 && a->epoch_signed && inbox_epoch_of(a, key) < a->epoch;
}

bool agent_inbox_before_restore(agent *a, uint64_t index)
{
	return inbox_before_restore(a, index);
}

/* inbox_resent_said says that log entry index (msg) is a message this
 * agent was delivered at index `at` (have: the seen record, its index then
 * the inbox file name) before the declared restore: the first time in an
 * epoch (and run) as an info line, then at debug level, as
 * inbox_reuse_said does. */
static void inbox_resent_said(agent *a, uint64_t index, const Rete__Message *msg, uint64_t at,
			      const rete_buf *have)
{
	int nl = have->len > 8 ? (int)(have->len - 8) : 0;
	const char *name = (const char *)have->data + 8;
	if (a->inbox_resent_said == a->epoch) {
		agent_debug(a,
			    "log entry %" PRIu64 " is message %s from %s, delivered before the "
			    "declared restore as log entry %" PRIu64 " (inbox/%.*s); acking",
			    index, msg->id, msg->sender, at, nl, name);
		return;
	}
	a->inbox_resent_said = a->epoch;
	agent_log(a, "info",
		  "log entry %" PRIu64 " is message %s from %s, which this agent was delivered "
		  "as log entry %" PRIu64 " (inbox/%.*s) in an earlier log epoch (epoch %" PRIu32
		  " now, since a declared restore of the broker's log): its sender submitted it "
		  "again after the restore, never having had the delivery receipt the restore "
		  "lost; acking, no second inbox file. The others of epoch %" PRIu32
		  " only in the debug log (-v)",
		  index, msg->id, msg->sender, at, nl, name, a->epoch, a->epoch);
}

void agent_inbox_on_deliver(agent *a, const Rete__Deliver *d)
{
	Rete__LogEntry *le;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	rete_msg m = {{0}};
	uint8_t key[8], hash[RETE_HASH_LEN], seenkey[512];
	size_t seenlen;
	bool collided = false, restored = false;
	rete_buf have;
	char fname[160], before[200] = "";

	le = rete__log_entry__unpack(NULL, d->log_entry.len, d->log_entry.data);
	if (le == NULL) {
		agent_log(a, "error", "a delivery whose log entry does not decode was dropped");
		return;
	}
	uint64_t index = le->index;
	agent_db_index_key(key, index);
	if (rete_signed_decode(le->signed_message.data, le->signed_message.len, &sm, &msg, &m) !=
	    RETE_OK) {
		inbox_refuse(a, d, NULL, index, RETE__ERROR_CODE__ERROR_CODE_MALFORMED,
			     "the signed message does not decode: %s", m.text);
		goto out;
	}
	rete_sha256(hash, le->signed_message.data, le->signed_message.len);
	seenlen = agent_db_seen_key(seenkey, sizeof(seenkey), msg->sender, msg->id, hash);
	if (seenlen > 0 &&
	    agent_db_get(a->db, AGENT_DB_SEEN, seenkey, seenlen, &have, &m) == RETE_OK) {
		/* This very message is in the inbox: the broker did not see our
		 * ACK, or it was submitted again (after a restore) and logged at
		 * another index. */
		uint64_t at = 0;
		for (size_t i = 0; i < 8 && i < have.len; i++)
			at = (at << 8) | have.data[i];
		if (at == index) {
			agent_debug(a, "log entry %" PRIu64 " already in inbox/%.*s; acking again",
				    index, have.len > 8 ? (int)(have.len - 8) : 0,
				    (const char *)have.data + 8);
		} else if (inbox_before_restore(a, at)) {
			/* Delivered before a declared restore (an earlier epoch, said
			 * at WELCOME), and again now: its sender did not see the
			 * delivery receipt the restore lost and submitted it again,
			 * which is what a restore means. The witness checks this
			 * index too. */
			inbox_resent_said(a, index, msg, at, &have);
			if (!broker_body(msg))
				(void)agent_witness_delivered(a, index, d->log_entry.data,
							      d->log_entry.len, msg, &m);
		} else {
			/* One message at two indexes: submitted again after a
			 * restore, or delivered once at an index where the log does
			 * not hold it. The witness checks this index too. */
			agent_log(a, "warning",
				  "witness: log entry %" PRIu64 " is message %s from %s, which "
				  "this agent was delivered before as log entry %" PRIu64
				  " (inbox/%.*s): one message at two log indexes; it was "
				  "submitted again after a restore of the broker's log, or one of "
				  "the two deliveries is not what the log holds there (the witness "
				  "checks both against the log); acking",
				  index, msg->id, msg->sender, at,
				  have.len > 8 ? (int)(have.len - 8) : 0,
				  (const char *)have.data + 8);
			if (!broker_body(msg))
				(void)agent_witness_delivered(a, index, d->log_entry.data,
							      d->log_entry.len, msg, &m);
		}
		rete_buf_free(&have);
		inbox_ack(a, d, msg, index, 0, NULL);
		goto out;
	}
	if (agent_db_get(a->db, AGENT_DB_INBOX, key, sizeof(key), &have, &m) == RETE_OK) {
		const uint8_t *nul = memchr(have.data, 0, have.len);
		size_t nl = nul ? (size_t)(nul - have.data) : have.len;
		if (nul == NULL || have.len != nl + 1 + RETE_HASH_LEN ||
		    sodium_memcmp(nul + 1, hash, RETE_HASH_LEN) == 0) {
			/* The same entry (or one recorded before the agent kept
			 * hashes): the broker did not see our ACK. */
			agent_debug(a, "log entry %" PRIu64 " already in inbox/%.*s; acking again",
				    index, (int)nl, (const char *)have.data);
			rete_buf_free(&have);
			inbox_ack(a, d, msg, index, 0, NULL);
			goto out;
		}
		/* Another entry at an index we recorded: the broker's log went
		 * back. A new message all the same (said once it verifies).
		 * Recorded in an epoch before the current one: a declared
		 * restore, which the witness said at WELCOME and which began
		 * the resubmission round; else (this epoch, or a log never
		 * restored) a log that went back without saying so. */
		collided = true;
		restored = inbox_before_restore(a, index);
		snprintf(before, sizeof(before), "%.*s", (int)nl, (const char *)have.data);
		rete_buf_free(&have);
	}
	/* An entry below this one could not be written yet: this one waits
	 * for it (unacked, kept), so that inbox/ gets them in log order. */
	if (agent_inbox_held_back(a, d, index))
		goto out;
	if (!inbox_verify(a, sm, msg)) {
		inbox_refuse(a, d, msg, index, RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE,
			     "the signature of %s by '%s' does not verify with %s", msg->id,
			     msg->sender,
			     broker_body(msg) ? "the pinned broker key" : "the sender's key");
		goto out;
	}
	if (!broker_body(msg) && strcmp(msg->recipient, a->cfg.id) != 0) {
		inbox_refuse(a, d, msg, index, RETE__ERROR_CODE__ERROR_CODE_INVALID,
			     "message %s is addressed to '%s', not to %s", msg->id, msg->recipient,
			     a->cfg.id);
		goto out;
	}
	ProtobufCBinaryData ph = rete_message_private_hash(msg);
	if (ph.len > 0) {
		uint8_t h[RETE_HASH_LEN];
		if (d->sealed.len == 0) {
			inbox_refuse(a, d, msg, index, RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN,
				     "message %s announces a sealed part but none came with it",
				     msg->id);
			goto out;
		}
		rete_sha256(h, d->sealed.data, d->sealed.len);
		if (ph.len != RETE_HASH_LEN || memcmp(h, ph.data, RETE_HASH_LEN) != 0) {
			inbox_refuse(a, d, msg, index, RETE__ERROR_CODE__ERROR_CODE_SEALED_HASH,
				     "the sealed part of %s does not match its signed SHA-256",
				     msg->id);
			goto out;
		}
		if (rete_open(d->sealed.data, d->sealed.len, a->sk, &priv, &m) != RETE_OK) {
			inbox_refuse(a, d, msg, index, RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN,
				     "message %s from %s: %s", msg->id, msg->sender, m.text);
			goto out;
		}
	}
	if (msg->body_case == RETE__MESSAGE__BODY_DIRECTORY)
		inbox_new_directory(a, d);

	inbox_name(fname, sizeof(fname), index, rete_message_kind(msg), hash, collided);
	if (collided && restored)
		inbox_reuse_said(a, index, msg, before, fname);
	else if (collided) {
		agent_log(a, "warning",
			  "witness: log entry %" PRIu64 " (%s %s from %s) is not the entry "
			  "delivered at that index before (inbox/%s): the broker's log no longer "
			  "holds what it delivered (a restore?); taking it as a new message",
			  index, rete_message_kind(msg), msg->id, msg->sender, before);
		agent_outbox_resubmit_held(a, "the broker's log went back");
	}
	/* The referral's status, the index and the pending hook are recorded in
	 * one transaction, committed only once the file is in place; the
	 * document shows the referral as this entry leaves it. */
	/* A delivery receipt of ours settles the message only when its
	 * recipient signed it (agent_delivery.c): one that does not hold is
	 * still written and acked (it is what the broker logged) but changes
	 * nothing, and raises the delivery alarm. */
	char dlv_to[RETE_ID_MAX + 32], dlv_why[600];
	agent_dlv dlv = broker_body(msg) ? agent_delivery_check(a, msg, dlv_to, sizeof(dlv_to),
								dlv_why, sizeof(dlv_why))
					 : AGENT_DLV_NONE;
	bool unproven = dlv == AGENT_DLV_UNPROVEN;
	bool early = dlv == AGENT_DLV_EARLY;
	bool settles = !unproven && !early && dlv != AGENT_DLV_NOT_OURS;
	rete_err err = RETE_OK;
	/* The person-index line of the entry joins that transaction too
	 * (agent_privacy_journal): a delivery in inbox/ is never missing from
	 * the index, whenever the agent stops. */
	size_t mark = agent_privacy_mark(a);
	agent_privacy_opened(a, le, msg, priv, fname);
	for (int attempt = 0; attempt < 2; attempt++) {
		err = agent_db_begin(a->db, &m);
		if (err == RETE_OK && settles)
			err = agent_track_apply(a->db, a->cfg.id, msg, index, le->logged_at, &m);
		if (err == RETE_OK && settles)
			err = agent_delivery_settles(a, msg, &m);
		if (err == RETE_OK)
			err = agent_delivery_record(a, index, msg, dlv, dlv_to, dlv_why, &m);
		/* one that came before our receipt: kept with the entry, to be
		 * judged when the receipt comes (agent_delivery.c) */
		if (err == RETE_OK && early)
			err = agent_delivery_keep_early(a, &d->log_entry, msg, dlv_why,
							sizeof(dlv_why), &m);
		if (err == RETE_OK)
			err =
			    inbox_write(a, le, msg, priv, d, fname, unproven ? dlv_why : NULL, &m);
		if (err == RETE_OK)
			err = inbox_record(a, key, seenkey, seenlen, index, fname, hash, &m);
		/* not yet seen taken: acked again at the next WELCOME until a
		 * PONG says the broker read the ACK (agent_inbox_held.c); the
		 * broker's own entries are never withdrawn with a notice */
		if (err == RETE_OK && !broker_body(msg))
			err = agent_inbox_unacked_put(a, index, msg, d->log_entry.data,
						      d->log_entry.len, fname, &m);
		/* an agency's entry delivered is checked against the log
		 * (agent_witness.c); the broker's own (delivery receipts,
		 * notices, directories) are not: what a delivery receipt says
		 * is bound by the recipient's signature (agent_delivery.c), and
		 * a question per receipt would double the sender's questions */
		if (err == RETE_OK && !broker_body(msg))
			err = agent_witness_delivered(a, index, d->log_entry.data, d->log_entry.len,
						      msg, &m);
		/* The pending hook, by file name: two files can share an index
		 * (a restore), and each gets its hook. */
		if (err == RETE_OK && a->cfg.on_message != NULL)
			err = agent_db_put(a->db, AGENT_DB_HOOKS, fname, strlen(fname), key,
					   sizeof(key), &m);
		if (err == RETE_OK)
			err = agent_privacy_journal(a, &m);
		err = agent_db_end(a->db, err, &m);
		if (err != RETE_EFULL)
			break;
	}
	if (err != RETE_OK) {
		/* An I/O error is not the message's fault: not acked (never acked
		 * with an error), kept and written again (agent_inbox_held.c). */
		agent_privacy_unstage(a, mark);
		agent_inbox_hold(a, d, index, m.text);
		goto out;
	}
	agent_privacy_written(a);
	agent_log(a, "info", "log entry %" PRIu64 " (%s from %s) written to inbox/%s", index,
		  rete_message_kind(msg), msg->sender, fname);
	if (unproven)
		agent_delivery_alarm_log(a, index, msg, dlv_to, dlv_why);
	else if (dlv == AGENT_DLV_NOT_OURS || early)
		agent_log(a, early ? "info" : "warning",
			  "log entry %" PRIu64 ", a %s of message %s: %s", index,
			  rete_message_kind(msg),
			  msg->body_case == RETE__MESSAGE__BODY_NOTICE ? msg->notice->message_id
								       : msg->delivery->message_id,
			  dlv_why);
	if (a->cfg.on_message != NULL)
		agent_hooks_queue(a, index, fname);
	agent_inbox_acked_note(a, index, msg, fname);
	inbox_ack(a, d, msg, index, 0, NULL);
out:
	if (priv != NULL)
		rete__private__free_unpacked(priv, NULL);
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
	rete__log_entry__free_unpacked(le, NULL);
}

/* inbox_withdrawn_trusted: r is the broker's own word, signed with the
 * pinned broker key, for this log and this agency, EXPIRED on field
 * "index", and its signed sentence (the one r carries) names log entry
 * `index`. *b64 gets the SignedRefusal's bytes in base64
 * (caller frees; NULL when it did not hold). */
static bool inbox_withdrawn_trusted(agent *a, const Rete__Receipt *r, uint64_t index, char **b64)
{
	Rete__RefusalBody *body = NULL;
	rete_msg m = {{0}};
	char head[40];
	*b64 = NULL;
	if (r->signed_refusal == NULL ||
	    rete_refusal_verify(r->signed_refusal, &a->broker_pk, &body, &m) != RETE_OK)
		return false;
	snprintf(head, sizeof(head), "entry %" PRIu64 " (", index);
	bool ok = strcmp(body->origin, a->origin) == 0 && strcmp(body->party, a->cfg.id) == 0 &&
		  body->error == RETE__ERROR_CODE__ERROR_CODE_EXPIRED &&
		  strcmp(body->field, "index") == 0 &&
		  strncmp(body->error_text, head, strlen(head)) == 0 &&
		  strcmp(body->error_text, r->error_text ? r->error_text : "") == 0;
	rete__refusal_body__free_unpacked(body, NULL);
	if (!ok)
		return false;
	size_t len = rete__signed_refusal__get_packed_size(r->signed_refusal);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return true;
	rete__signed_refusal__pack(r->signed_refusal, buf);
	*b64 = rete_b64_encode(buf, len);
	free(buf);
	return true;
}

void agent_inbox_withdrawn(agent *a, const Rete__Receipt *r)
{
	/* the entry is named by the broker's signed sentence, "entry N (" */
	const char *said = r->error_text ? r->error_text : "";
	uint64_t index = strncmp(said, "entry ", 6) == 0 ? strtoull(said + 6, NULL, 10) : 0;
	const char *id = "", *refid = "", *sender = "", *kind = "", *fname = "";
	char *b64 = NULL, name[64], text[900], when[32];
	rete_msg m = {{0}};
	if (!inbox_withdrawn_trusted(a, r, index, &b64)) {
		agent_log(
		    a, "warning",
		    "the broker refused our ACK of log entry %" PRIu64 " (EXPIRED) in a "
		    "refusal that does not verify with the pinned broker key or names another "
		    "entry: not taken; it says: %s",
		    index, r->error_text ? r->error_text : "");
		return;
	}
	bool known = agent_inbox_acked_of(a, index, said, &id, &refid, &sender, &kind, &fname);
	bool referral = known && strcmp(id, refid) == 0;
	const char *by = a->dir != NULL && a->dir->msg != NULL ? a->dir->msg->sender : "broker";
	int64_t now = rete_now_ms();
	rete_time_format(now, when);
	snprintf(name, sizeof(name), "%012" PRIu64 "-withdrawn.json", index);
	if (referral)
		snprintf(text, sizeof(text),
			 "%s %s from %s (log entry %" PRIu64 ", inbox/%s) was withdrawn at its "
			 "expiry before this agent could write it: the broker had withdrawn it "
			 "and told its sender it was not delivered, and the referral is failed "
			 "there and here. This agency has it all the same: agree with %s what to "
			 "do with it, since a new referral sent in its place would be a second "
			 "one for the same person",
			 kind, id, sender, index, fname, sender);
	else if (known) /* an update or a note: no referral fails for it */
		snprintf(text, sizeof(text),
			 "%s %s from %s (log entry %" PRIu64 ", inbox/%s, of referral %s) was "
			 "withdrawn at its expiry before this agent could write it: the broker "
			 "had withdrawn it and told its sender it was not delivered. This agency "
			 "has it all the same, and its sender may send it again: agree with %s "
			 "whether it still holds",
			 kind, id, sender, index, fname, refid, sender);
	else
		snprintf(text, sizeof(text),
			 "log entry %" PRIu64 " was withdrawn at its expiry before this agent "
			 "could write it: the broker had withdrawn it and told its sender it was "
			 "not delivered. "
			 "This agent no longer remembers which inbox/ file it is (the broker's "
			 "sentence, in \"broker\", names the message)",
			 index);
	agent_log(a, "warning", "%s; the broker says: %s", text,
		  r->error_text ? r->error_text : "");
	json_t *doc = json_object();
	char idx[24];
	snprintf(idx, sizeof(idx), "%" PRIu64, index);
	json_object_set_new(doc, "index", json_string(idx));
	json_object_set_new(doc, "kind", json_string("withdrawn"));
	json_object_set_new(doc, "at", json_string(when));
	if (known) {
		json_object_set_new(doc, "file", json_string(fname));
		json_object_set_new(doc, "messageKind", json_string(kind));
		json_object_set_new(doc, "messageId", json_string(id));
		json_object_set_new(doc, "sender", json_string(sender));
	}
	json_object_set_new(doc, "text", json_string(text));
	json_object_set_new(doc, "broker", json_string(r->error_text ? r->error_text : ""));
	if (b64 != NULL)
		json_object_set_new(doc, "signedRefusal", json_string(b64));
	free(b64);
	rete_err err = RETE_OK;
	uint8_t key[8];
	agent_db_index_key(key, index);
	for (int attempt = 0; attempt < 2; attempt++) {
		err = agent_db_begin(a->db, &m);
		/* answered: no longer acked again at WELCOME */
		if (err == RETE_OK)
			err = agent_inbox_unacked_del(a, index, &m);
		if (err == RETE_OK && known && refid[0] != '\0') {
			err = agent_track_withdrawn(a->db, refid, id, by, index, now, text, &m);
			if (err == RETE_ENOENT)
				err = RETE_OK;
		}
		if (known && refid[0] != '\0')
			inbox_concerns(a, doc, refid);
		char *out = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (err == RETE_OK && out == NULL)
			err = rete_msg_set(&m, RETE_ENOMEM, "out of memory");
		if (err == RETE_OK) {
			size_t len = strlen(out);
			out[len] = '\n';
			err = agent_spool_write(a->inbox_dir, name, out, len + 1, &m);
			if (err != RETE_OK)
				rete_msg_prefix(&m, "cannot write inbox/%s", name);
		}
		free(out);
		if (err == RETE_OK && a->cfg.on_message != NULL)
			err = agent_db_put(a->db, AGENT_DB_HOOKS, name, strlen(name), key,
					   sizeof(key), &m);
		err = agent_db_end(a->db, err, &m);
		if (err != RETE_EFULL)
			break;
	}
	json_decref(doc);
	if (err != RETE_OK) {
		agent_log(a, "error",
			  "log entry %" PRIu64 " withdrawn at its expiry: the notice inbox/%s or "
			  "the referral's record could not be written (%s); this log line is all "
			  "that says it",
			  index, name, m.text);
		return;
	}
	agent_log(a, "info", "log entry %" PRIu64 ": notice written to inbox/%s", index, name);
	if (a->cfg.on_message != NULL)
		agent_hooks_queue(a, index, name);
}
