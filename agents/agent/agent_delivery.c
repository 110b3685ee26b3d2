/* agent_delivery.c — a delivery receipt stands on the recipient's signature
 * (see agent.h, "agent_delivery.c").
 *
 * The broker logs a Delivery (or a DELIVERY_REFUSED notice) of our message
 * once the recipient's agent acknowledged it; since protocol 3 the entry
 * carries that acknowledgement, signed by the recipient (AckBody: the log's
 * origin, the recipient, the delivered entry's index and leaf hash, the
 * error if refused). The broker signs the entry itself, so without the
 * recipient's signature "delivered to X" is the broker's word alone: a
 * broker (or its operator) could take an entry off X's queue and say it was
 * delivered. The sender's agent therefore settles a message (its held copy
 * released, the referral `received`) only on an acknowledgement that
 * verifies with X's pinned key (pinned on first use when we sealed to X, or
 * confirmed since by an operator with --trust), or with a key of X pinned
 * before it (X acknowledged before a rotation this agency's operator
 * confirmed, and the Delivery reached us after: the key watch takes it so
 * too, agent_keys.h), names this log, X, the
 * entry delivered and its leaf hash; and only a message we hold, at the
 * entry our receipt names: X is the recipient in the bytes we submitted,
 * the entry and leaf hash those of our receipt (an ack of another entry,
 * replayed under our message's id, settles nothing). A delivery receipt of
 * a message not held, or held as another entry, settles nothing and is no
 * alarm (AGENT_DLV_NOT_OURS: a second delivery after a restore looks so
 * too).
 *
 * One that comes before its receipt (the receipt lost with a connection:
 * the agent submits the same bytes again and the broker answers with the
 * original receipt; or the recipient was simply quick) names a message we
 * signed and have no receipt for: we do not know our entry's index and
 * leaf hash yet, and cannot compute the leaf ourselves (it hashes the
 * entry's loggedAt, which only the receipt gives; a Delivery names the
 * index alone). Judging it at once would be on the broker's word, dropping
 * it left the message held for good (nothing brings the Delivery again).
 * So it is kept (AGENT_DLV_EARLY: its log entry, in meta
 * AGENT_META_EARLY_DELIVERIES, the newest AGENT_EARLY_DELIVERIES_MAX, in
 * the transaction that writes it to inbox/) and judged in the transaction
 * that records the receipt (agent_delivery_judge_early, from out_accept),
 * by the same rule against the entry and leaf hash the receipt proved
 * (whether an ack is due too: an unsigned one is kept, never LEGACY before
 * the receipt says the broker is of protocol 3); an
 * ack of another entry than the receipt's is then the alarm, not NOT_OURS:
 * the broker named two entries for one message. A held message submitted
 * again in a resubmission round is not kept so (its delivery of a new
 * entry before the new receipt is NOT_OURS, as before).
 *
 * Which deliveries must carry one: a message whose receipt was a protocol-3
 * receipt (an inclusion proof to a signed checkpoint, kept in its id
 * record) was logged by a broker of protocol 3 or later, which logs its
 * delivery only with the recipient's signed acknowledgement; so is any
 * delivery after this agent verified one signed acknowledgement (meta
 * AGENT_META_ACK_SIGNED: a log does not go back to protocol 2). Only a
 * message receipted by an agent of protocol 2 (an upgraded store) may have
 * an unsigned delivery receipt.
 *
 * One that does not hold raises the delivery alarm: an error line, and a
 * record in meta AGENT_META_DELIVERY_ALARMS (JSON array, the newest
 * AGENT_DELIVERY_ALARMS_MAX) that `rete status` shows.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "agent_keys.h"
#include "agent_track.h"
#include "duration.h"
#include "json.h"
#include "merkle.h"

#define AGENT_DELIVERY_ALARMS_MAX 100
/* early delivery receipts kept at most (meta "early_deliveries") */
#define AGENT_EARLY_DELIVERIES_MAX 100

/* dlv_required: must the delivery receipt of our message id carry the
 * recipient's signature? (See above.) */
static bool dlv_required(agent *a, const char *id)
{
	agent_idrec rec;
	rete_msg m = {{0}};
	bool req = false;
	rete_buf v = {0};
	if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_ACK_SIGNED, strlen(AGENT_META_ACK_SIGNED),
			 &v, &m) == RETE_OK) {
		rete_buf_free(&v);
		return true;
	}
	if (agent_db_id_get(a->db, id, &rec, &m) == RETE_OK) {
		json_t *r = json_loads(rec.receipt_json ? rec.receipt_json : "", 0, NULL);
		/* a protocol-3 receipt: an inclusion proof to a checkpoint */
		req = r != NULL && json_object_get(r, "checkpoint") != NULL;
		json_decref(r);
		free(rec.receipt_json);
	}
	return req || agent_outbox_submitted_here(a, id);
}

/* dlv_held: the recipient of our held message id (from the
 * signed bytes we submitted) into to, and its receipt's index and leaf.
 * false when it is not held (settled already, or unknown). */
static bool dlv_held(agent *a, const char *id, char *to, size_t tlen, uint64_t *index,
		     uint8_t leaf[RETE_MERKLE_HASH])
{
	agent_held h;
	rete_msg m = {{0}};
	Rete__Message *msg = NULL;
	bool ok = false;
	memset(&h, 0, sizeof(h));
	if (agent_db_held_get(a->db, id, &h, &m) != RETE_OK)
		return false;
	if (h.signed_msg.len > 0 &&
	    rete_signed_decode(h.signed_msg.data, h.signed_msg.len, NULL, &msg, &m) == RETE_OK) {
		snprintf(to, tlen, "%s", msg->recipient);
		*index = h.index;
		memcpy(leaf, h.leaf, RETE_MERKLE_HASH);
		ok = true;
		rete__message__free_unpacked(msg, NULL);
	}
	agent_held_free(&h);
	return ok;
}

/* dlv_recipient_key: the key X's acknowledgement must verify with: the one
 * pinned for X (on first use, or confirmed by an operator), else, for a
 * party we never pinned, the directory's (*whose says which). */
static bool dlv_recipient_key(agent *a, const char *to, rete_pubkey *pk, const char **whose)
{
	rete_buf pinned = {0};
	rete_msg m = {{0}};
	if (agent_db_get(a->db, AGENT_DB_PINS, to, strlen(to), &pinned, &m) == RETE_OK) {
		bool ok = pinned.len == RETE_PK_LEN &&
			  rete_pubkey_from_ed(pk, pinned.data, &m) == RETE_OK;
		rete_buf_free(&pinned);
		*whose = "its pinned key";
		return ok;
	}
	const Rete__Party *p = agent_directory_party(a->dir, to);
	*whose = "its key in the directory (none pinned)";
	return p != NULL && p->public_key.len == RETE_PK_LEN &&
	       rete_pubkey_from_ed(pk, p->public_key.data, &m) == RETE_OK;
}

/* struct dlv_ack: an acknowledgement to verify with the earlier keys of
 * its signer (agent_keys_earlier_verify's ctx), and its body once one
 * does (the caller frees it). */
struct dlv_ack {
	const Rete__SignedAck *sa;
	Rete__AckBody *body;
};

/* dlv_ack_verifies: does pk verify the acknowledgement of ctx (a struct
 * dlv_ack)? Its body is kept from the first key that does. */
static bool dlv_ack_verifies(const rete_pubkey *pk, void *ctx)
{
	struct dlv_ack *c = ctx;
	rete_msg m = {{0}};
	return c->body != NULL || rete_ack_verify(c->sa, pk, &c->body, &m) == RETE_OK;
}

/* dlv_judge: agent_delivery_check, or (judging) the judgment of a delivery
 * receipt kept as EARLY, once its message's receipt is recorded: then it
 * is not EARLY again, and one that names another entry than that receipt
 * is UNPROVEN (the broker said one entry in the Delivery and another in
 * the receipt that came after it: the acknowledgement is of another
 * entry), not NOT_OURS. */
static agent_dlv dlv_judge(agent *a, const Rete__Message *msg, bool judging, char *to, size_t tlen,
			   char *why, size_t wlen)
{
	const Rete__SignedAck *sa = NULL;
	const char *id = NULL;
	uint64_t x = 0;
	Rete__ErrorCode error = 0;
	to[0] = '\0';
	why[0] = '\0';
	if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY && msg->delivery != NULL) {
		sa = msg->delivery->ack;
		id = msg->delivery->message_id;
		x = msg->delivery->index;
	} else if (msg->body_case == RETE__MESSAGE__BODY_NOTICE && msg->notice != NULL &&
		   msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED) {
		sa = msg->notice->ack;
		id = msg->notice->message_id;
		x = msg->notice->index;
		error = msg->notice->error;
	} else {
		return AGENT_DLV_NONE;
	}
	if (id == NULL || id[0] == '\0')
		return AGENT_DLV_NONE;

	uint64_t held_index = 0;
	uint8_t leaf[RETE_MERKLE_HASH];
	bool held = dlv_held(a, id, to, tlen, &held_index, leaf);
	Rete__AckBody *b = NULL;
	rete_msg m = {{0}};
	/* Before its receipt, even whether an ack is due is not known (the
	 * receipt says whether the broker is of protocol 3; this agent may not
	 * have submitted the message on this connection yet): kept first, so
	 * that an unsigned delivery settles nothing on the broker's word. */
	if (!held && !judging && agent_outbox_awaits_receipt(a, id)) {
		snprintf(to, tlen, "its recipient");
		snprintf(why, wlen,
			 "it came before the receipt of our message %.64s (that receipt was lost "
			 "with a connection, or is still to come): kept, and judged once the "
			 "receipt names our entry and its leaf hash; it settles nothing before",
			 id);
		return AGENT_DLV_EARLY;
	}
	if (sa == NULL && !dlv_required(a, id))
		return AGENT_DLV_LEGACY;
	/* Only our message, held, at the entry our receipt names: the ack
	 * must be of that entry, signed by that message's recipient (from the
	 * bytes we submitted, never from the ack), over our entry's leaf. An
	 * ack of another entry, replayed, settles nothing. */
	if (!held) {
		snprintf(to, tlen, "its recipient");
		snprintf(why, wlen,
			 "this agent holds no message %.64s awaiting its delivery (delivered or "
			 "answered already, or not one this agent signed): it settles nothing",
			 id);
		return AGENT_DLV_NOT_OURS;
	}
	if (x != held_index && judging) {
		snprintf(why, wlen,
			 "it came before our receipt and names entry %" PRIu64
			 " as our message %.64s, but the receipt that came after it proves our "
			 "message is entry %" PRIu64 ": the acknowledgement it carries is not of "
			 "our entry, and the message stays held until a delivery of entry %" PRIu64
			 " signed by %s",
			 x, id, held_index, held_index, to);
		return AGENT_DLV_UNPROVEN;
	}
	if (x != held_index) {
		snprintf(why, wlen,
			 "it names entry %" PRIu64 ", but our message %.64s is entry %" PRIu64
			 " (our receipt): it settles nothing, and the message stays held until a "
			 "delivery of entry %" PRIu64 " signed by %s",
			 x, id, held_index, held_index, to);
		return AGENT_DLV_NOT_OURS;
	}
	if (sa == NULL) {
		snprintf(
		    why, wlen,
		    "it carries no acknowledgement signed by %s, and this log is of protocol 3 "
		    "or later (the message's receipt was an inclusion proof), where the broker "
		    "logs a delivery only with the recipient's signed acknowledgement",
		    to);
		return AGENT_DLV_UNPROVEN;
	}
	/* the signer it names, checked against our message's recipient */
	rete_pubkey pk;
	const char *whose = "";
	ProtobufCMessage *pm = NULL;
	if (rete_pb_strict_unpack(&rete__ack_body__descriptor, sa->body.data, sa->body.len, &pm,
				  &m) != RETE_OK) {
		snprintf(why, wlen, "its acknowledgement does not decode: %s", m.text);
		return AGENT_DLV_UNPROVEN;
	}
	const Rete__AckBody *named = (const Rete__AckBody *)pm;
	bool same_signer = strcmp(named->recipient, to) == 0;
	protobuf_c_message_free_unpacked(pm, NULL);
	if (!same_signer) {
		snprintf(why, wlen, "its acknowledgement is signed as another party, not as %s",
			 to);
		return AGENT_DLV_UNPROVEN;
	}
	if (!dlv_recipient_key(a, to, &pk, &whose)) {
		snprintf(why, wlen,
			 "this agent has no key of %s to verify its acknowledgement with", to);
		return AGENT_DLV_UNPROVEN;
	}
	if (rete_ack_verify(sa, &pk, &b, &m) != RETE_OK) {
		/* signed before X's rotation, which this agency's operator
		 * confirmed (--trust) before the Delivery came */
		struct dlv_ack earlier = {.sa = sa, .body = NULL};
		if (!agent_keys_earlier_verify(a, to, dlv_ack_verifies, &earlier)) {
			snprintf(why, wlen,
				 "its acknowledgement does not verify with %s of %s, nor with an "
				 "earlier key of %s this agency confirmed: %s",
				 whose, to, to, m.text);
			return AGENT_DLV_UNPROVEN;
		}
		b = earlier.body;
	}
	if (strcmp(b->origin, a->origin) != 0)
		snprintf(why, wlen, "the acknowledgement of %s names log '%.64s', not this one", to,
			 b->origin);
	else if (b->index != x)
		snprintf(why, wlen,
			 "the acknowledgement of %s is of entry %" PRIu64 ", not entry %" PRIu64,
			 to, b->index, x);
	else if (b->error != error)
		snprintf(why, wlen,
			 "the acknowledgement of %s says error %d where the entry says %d", to,
			 (int)b->error, (int)error);
	else if ((b->leaf_hash.len != RETE_MERKLE_HASH ||
		  sodium_memcmp(b->leaf_hash.data, leaf, RETE_MERKLE_HASH) != 0))
		snprintf(why, wlen,
			 "the acknowledgement of %s is over other bytes than our entry %" PRIu64
			 " (its leaf hash is not the one of our receipt)",
			 to, x);
	rete__ack_body__free_unpacked(b, NULL);
	return why[0] != '\0' ? AGENT_DLV_UNPROVEN : AGENT_DLV_PROVEN;
}

agent_dlv agent_delivery_check(agent *a, const Rete__Message *msg, char *to, size_t tlen, char *why,
			       size_t wlen)
{
	return dlv_judge(a, msg, false, to, tlen, why, wlen);
}

json_t *agent_delivery_meta_array(agent *a, const char *key)
{
	rete_buf v = {0};
	rete_msg im = {{0}};
	json_t *arr = NULL;
	if (agent_db_get(a->db, AGENT_DB_META, key, strlen(key), &v, &im) == RETE_OK) {
		arr = json_loadb((const char *)v.data, v.len, 0, NULL);
		rete_buf_free(&v);
	}
	if (!json_is_array(arr)) {
		json_decref(arr);
		arr = json_array();
	}
	return arr;
}

rete_err agent_delivery_meta_store(agent *a, const char *key, json_t *arr, rete_msg *m)
{
	if (json_array_size(arr) == 0)
		return agent_db_del(a->db, AGENT_DB_META, key, strlen(key), m);
	char *text = json_dumps(arr, JSON_COMPACT);
	if (text == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	rete_err err = agent_db_put(a->db, AGENT_DB_META, key, strlen(key), text, strlen(text), m);
	free(text);
	return err;
}

rete_err agent_delivery_record(agent *a, uint64_t at, const Rete__Message *msg, agent_dlv verdict,
			       const char *to, const char *why, rete_msg *m)
{
	uint8_t be[8];
	if (verdict == AGENT_DLV_PROVEN) {
		rete_buf v = {0};
		rete_msg im = {{0}};
		if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_ACK_SIGNED,
				 strlen(AGENT_META_ACK_SIGNED), &v, &im) == RETE_OK) {
			rete_buf_free(&v);
			return RETE_OK;
		}
		agent_db_index_key(be, at);
		return agent_db_put(a->db, AGENT_DB_META, AGENT_META_ACK_SIGNED,
				    strlen(AGENT_META_ACK_SIGNED), be, sizeof(be), m);
	}
	if (verdict != AGENT_DLV_UNPROVEN)
		return RETE_OK;
	json_t *arr = agent_delivery_meta_array(a, AGENT_META_DELIVERY_ALARMS);
	json_t *o = json_object();
	if (arr == NULL || o == NULL) {
		json_decref(arr);
		json_decref(o);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	char buf[32], idx[24];
	bool notice = msg->body_case == RETE__MESSAGE__BODY_NOTICE;
	uint64_t x = notice ? msg->notice->index : msg->delivery->index;
	const char *mid = notice ? msg->notice->message_id : msg->delivery->message_id;
	snprintf(idx, sizeof(idx), "%" PRIu64, at);
	json_object_set_new(o, "entry", json_string(idx));
	json_object_set_new(o, "kind", json_string(notice ? "delivery-refused" : "delivery"));
	snprintf(idx, sizeof(idx), "%" PRIu64, x);
	json_object_set_new(o, "deliveredIndex", json_string(idx));
	json_object_set_new(o, "messageId", json_string(mid));
	json_object_set_new(o, "recipient", json_string(to));
	json_object_set_new(o, "why", json_string(why));
	json_object_set_new(o, "at", json_string(rete_time_format(rete_now_ms(), buf)));
	json_array_append_new(arr, o);
	while (json_array_size(arr) > AGENT_DELIVERY_ALARMS_MAX)
		json_array_remove(arr, 0);
	rete_err err = agent_delivery_meta_store(a, AGENT_META_DELIVERY_ALARMS, arr, m);
	json_decref(arr);
	return err;
}

/* dlv_alarm_text: the alarm line of an UNPROVEN entry at `at` into buf. */
static void dlv_alarm_text(char *buf, size_t n, uint64_t at, const Rete__Message *msg,
			   const char *to, const char *why)
{
	bool notice = msg->body_case == RETE__MESSAGE__BODY_NOTICE;
	uint64_t x = notice ? msg->notice->index : msg->delivery->index;
	const char *mid = notice ? msg->notice->message_id : msg->delivery->message_id;
	snprintf(buf, n,
		 "DELIVERY ALARM: the broker logged a %s to %s that %s did not sign (entry %" PRIu64
		 "): %s. Message %s (log entry %" PRIu64 ") is kept as not yet %s: its held copy "
		 "stays and the referral keeps its status; the entry is the broker's word alone. "
		 "Keep data/ and tell the network's auditors (rete audit verify fails on it when "
		 "the acknowledgement is missing or verifies with no key the directory gave %s, "
		 "and lists the key change when it was signed with a key the directory gave; "
		 "docs/agent.md, \"Delivery receipts\")",
		 notice ? "refusal of delivery" : "delivery", to, to, at, why, mid, x,
		 notice ? "answered" : "delivered", to);
}

void agent_delivery_alarm_log(agent *a, uint64_t at, const Rete__Message *msg, const char *to,
			      const char *why)
{
	char line[2048];
	dlv_alarm_text(line, sizeof(line), at, msg, to, why);
	agent_log(a, "error", "%s", line);
}

rete_err agent_delivery_settles(agent *a, const Rete__Message *msg, rete_msg *m)
{
	if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY && msg->delivery != NULL)
		return agent_outbox_settled(a, msg->delivery->message_id, m);
	if (msg->body_case == RETE__MESSAGE__BODY_NOTICE && msg->notice != NULL &&
	    (msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED ||
	     msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED))
		return agent_outbox_settled(a, msg->notice->message_id, m);
	return RETE_OK;
}

/* --- delivery receipts before their receipt ------------------------------ */

/* dlv_message_id: the message a delivery receipt names. */
static const char *dlv_message_id(const Rete__Message *msg)
{
	return msg->body_case == RETE__MESSAGE__BODY_NOTICE ? msg->notice->message_id
							    : msg->delivery->message_id;
}

rete_err agent_delivery_keep_early(agent *a, const ProtobufCBinaryData *entry,
				   const Rete__Message *msg, char *why, size_t wlen, rete_msg *m)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, entry->len, entry->data);
	if (le == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	char idx[24];
	snprintf(idx, sizeof(idx), "%" PRIu64, le->index);
	rete__log_entry__free_unpacked(le, NULL);
	json_t *arr = agent_delivery_meta_array(a, AGENT_META_EARLY_DELIVERIES);
	char *b64 = rete_b64_encode(entry->data, entry->len);
	json_t *o = json_object();
	if (arr == NULL || b64 == NULL || o == NULL) {
		json_decref(arr);
		json_decref(o);
		free(b64);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	json_object_set_new(o, "messageId", json_string(dlv_message_id(msg)));
	json_object_set_new(o, "entry", json_string(idx));
	json_object_set_new(o, "logEntry", json_string(b64));
	free(b64);
	json_array_append_new(arr, o);
	/* Bounded: a broker must not grow the store with Deliveries of a
	 * message whose receipt it never gives. What is let go settles
	 * nothing, as any delivery receipt of a message not held. */
	while (json_array_size(arr) > AGENT_EARLY_DELIVERIES_MAX) {
		json_t *old = json_array_get(arr, 0);
		size_t have = strlen(why);
		/* said once, when the transaction is redone */
		if (have < wlen && strstr(why, " (to keep it, the oldest kept") == NULL)
			snprintf(why + have, wlen - have,
				 " (to keep it, the oldest kept, entry %s of message %.64s, is let "
				 "go: it settles nothing)",
				 json_string_value(json_object_get(old, "entry")),
				 json_string_value(json_object_get(old, "messageId")));
		json_array_remove(arr, 0);
	}
	rete_err err = agent_delivery_meta_store(a, AGENT_META_EARLY_DELIVERIES, arr, m);
	json_decref(arr);
	return err;
}

/* dlv_said: one line for agent_delivery_say_early. */
static void dlv_said(json_t *said, const char *level, const char *text)
{
	json_t *o = json_pack("{s:s,s:s}", "level", level, "text", text);
	if (o != NULL)
		json_array_append_new(said, o);
}

/* dlv_judge_one judges one kept early delivery receipt (its log entry's
 * bytes) of a message whose receipt is now recorded, and records what it
 * leaves (in the open transaction); the line to say goes into said. */
static rete_err dlv_judge_one(agent *a, const uint8_t *bytes, size_t len, json_t *said, rete_msg *m)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, len, bytes);
	Rete__Message *msg = NULL;
	rete_msg dm = {{0}};
	if (le == NULL || rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL,
					     &msg, &dm) != RETE_OK) {
		/* what this agent wrote itself: cannot happen */
		dlv_said(said, "error", "a kept early delivery receipt does not decode: let go");
		if (le != NULL)
			rete__log_entry__free_unpacked(le, NULL);
		return RETE_OK;
	}
	char to[RETE_ID_MAX + 32], why[600], line[2048];
	agent_dlv v = dlv_judge(a, msg, true, to, sizeof(to), why, sizeof(why));
	rete_err err = RETE_OK;
	const char *mid = dlv_message_id(msg);
	if (v == AGENT_DLV_PROVEN || v == AGENT_DLV_LEGACY) {
		err = agent_track_apply(a->db, a->cfg.id, msg, le->index, le->logged_at, m);
		if (err == RETE_OK)
			err = agent_delivery_settles(a, msg, m);
		snprintf(line, sizeof(line),
			 "log entry %" PRIu64 ", a %s of message %.64s that came before its "
			 "receipt: %s now that the receipt came; message %.64s settled",
			 le->index, rete_message_kind(msg), mid,
			 v == AGENT_DLV_PROVEN
			     ? "its signed acknowledgement verifies for the entry "
			       "and leaf hash of our receipt"
			     : "no signed acknowledgement was due",
			 mid);
		dlv_said(said, "info", line);
	} else if (v == AGENT_DLV_UNPROVEN) {
		dlv_alarm_text(line, sizeof(line), le->index, msg, to, why);
		dlv_said(said, "error", line);
	} else {
		snprintf(line, sizeof(line),
			 "log entry %" PRIu64 ", a %s of message %.64s that came before its "
			 "receipt: %s",
			 le->index, rete_message_kind(msg), mid, why);
		dlv_said(said, "warning", line);
	}
	if (err == RETE_OK)
		err = agent_delivery_record(a, le->index, msg, v, to, why, m);
	rete__message__free_unpacked(msg, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	return err;
}

rete_err agent_delivery_judge_early(agent *a, const char *id, json_t **said, rete_msg *m)
{
	if (*said == NULL && (*said = json_array()) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	rete_buf v = {0};
	rete_msg im = {{0}};
	/* the common case, nothing kept: no parse */
	if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_EARLY_DELIVERIES,
			 strlen(AGENT_META_EARLY_DELIVERIES), &v, &im) != RETE_OK)
		return RETE_OK;
	rete_buf_free(&v);
	json_t *arr = agent_delivery_meta_array(a, AGENT_META_EARLY_DELIVERIES);
	if (arr == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	rete_err err = RETE_OK;
	bool changed = false;
	/* in the order they came */
	for (size_t i = 0; err == RETE_OK && i < json_array_size(arr);) {
		json_t *o = json_array_get(arr, i);
		const char *mid = json_string_value(json_object_get(o, "messageId"));
		if (mid == NULL || strcmp(mid, id) != 0) {
			i++;
			continue;
		}
		const char *b64 = json_string_value(json_object_get(o, "logEntry"));
		uint8_t *bytes = NULL;
		size_t len = 0;
		if (b64 != NULL && rete_b64_decode(b64, &bytes, &len) == RETE_OK) {
			err = dlv_judge_one(a, bytes, len, *said, m);
			free(bytes);
		}
		json_array_remove(arr, i);
		changed = true;
	}
	if (err == RETE_OK && changed)
		err = agent_delivery_meta_store(a, AGENT_META_EARLY_DELIVERIES, arr, m);
	json_decref(arr);
	return err;
}

void agent_delivery_say_early(agent *a, json_t **said)
{
	size_t i;
	json_t *o;
	if (*said == NULL)
		return;
	json_array_foreach(*said, i, o)
	{
		agent_log(a, json_string_value(json_object_get(o, "level")), "%s",
			  json_string_value(json_object_get(o, "text")));
	}
	json_decref(*said);
	*said = NULL;
}
