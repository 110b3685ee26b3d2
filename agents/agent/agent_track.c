/* agent_track.c — see agent_track.h. */
#include "agent_track.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "json.h"
#include "lifecycle.h"

static void set_str(json_t *o, const char *key, const char *v)
{
	if (v != NULL && v[0] != '\0')
		json_object_set_new(o, key, json_string(v));
}

static void set_time(json_t *o, const char *key, int64_t ms)
{
	char buf[32];
	if (ms != 0)
		json_object_set_new(o, key, json_string(rete_time_format(ms, buf)));
}

static void set_index(json_t *o, const char *key, uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	json_object_set_new(o, key, json_string(buf));
}

static void set_enum(json_t *o, const char *key, const ProtobufCEnumDescriptor *d, int v)
{
	const char *name = v ? rete_enum_json_name(d, v) : NULL;
	if (name != NULL)
		json_object_set_new(o, key, json_string(name));
}

static uint64_t get_index(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? strtoull(s, NULL, 10) : 0;
}

static rete_err track_load(agent_db *db, const char *id, json_t **out, rete_msg *m)
{
	rete_buf v;
	rete_err err = agent_db_get(db, AGENT_DB_REFERRALS, id, strlen(id), &v, m);
	*out = NULL;
	if (err != RETE_OK)
		return err;
	*out = json_loadb((const char *)v.data, v.len, 0, NULL);
	rete_buf_free(&v);
	if (*out == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return rete_msg_set(m, RETE_ECORRUPT, "agent store: referral %s does not parse",
				    id);
	}
	return RETE_OK;
}

static rete_err track_store(agent_db *db, const char *id, json_t *rec, rete_msg *m)
{
	char *text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	rete_err err = agent_db_put(db, AGENT_DB_REFERRALS, id, strlen(id), text, strlen(text), m);
	free(text);
	return err;
}

/* track_seen: the history already holds this (index, kind). */
static bool track_seen(json_t *hist, uint64_t index, const char *kind)
{
	size_t i;
	json_t *h;
	json_array_foreach(hist, i, h)
	{
		const char *k = json_string_value(json_object_get(h, "kind"));
		if (get_index(h, "index") == index && k != NULL && strcmp(k, kind) == 0)
			return true;
	}
	return false;
}

rete_err agent_track_apply(agent_db *db, const char *me, const Rete__Message *msg, uint64_t index,
			   int64_t logged_at, rete_msg *m)
{
	const char *refid = NULL;
	const char *kind = rete_message_kind(msg);
	json_t *rec = NULL, *hist, *ev;
	rete_err err;

	refid = rete_message_referral_id(msg);
	if (refid[0] == '\0')
		return RETE_OK;

	err = track_load(db, refid, &rec, m);
	if (err == RETE_ENOENT || err == RETE_ECORRUPT) {
		rec = json_object();
		if (rec == NULL)
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
		json_object_set_new(rec, "id", json_string(refid));
		json_object_set_new(rec, "history", json_array());
	} else if (err != RETE_OK) {
		return err;
	}
	hist = json_object_get(rec, "history");
	if (!json_is_array(hist)) {
		hist = json_array();
		json_object_set_new(rec, "history", hist);
	}
	if (track_seen(hist, index, kind)) {
		json_decref(rec);
		return RETE_OK;
	}
	ev = json_object();
	set_index(ev, "index", index);
	set_time(ev, "at", logged_at);
	json_object_set_new(ev, "kind", json_string(kind));
	set_str(ev, "by", msg->sender);
	set_str(ev, "messageId", msg->id);

	const char *cur = json_string_value(json_object_get(rec, "status"));
	const char *newstatus = NULL;

	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL: {
		const Rete__Referral *r = msg->referral;
		json_object_set_new(
		    rec, "role",
		    json_string(strcmp(msg->sender, me) == 0 ? "requester" : "performer"));
		set_str(rec, "requester", msg->sender);
		set_str(rec, "performer", msg->recipient);
		set_str(rec, "service", r->service);
		set_enum(rec, "priority", &rete__priority__descriptor, r->priority);
		set_str(rec, "caseId", msg->case_id);
		set_index(rec, "index", index);
		set_time(rec, "requestedAt", logged_at);
		json_object_set_new(ev, "status", json_string("requested"));
		/* The performer's agent records a referral only when it has it
		 * in its inbox, about to ack it: for the performer it is
		 * received already (the broker logs the Delivery on our ACK). */
		if (strcmp(msg->sender, me) != 0) {
			if (cur == NULL || strcmp(cur, "requested") == 0)
				newstatus = "received";
			set_time(rec, "receivedAt", rete_now_ms());
		} else if (cur == NULL) {
			newstatus = "requested";
		}
		break;
	}
	case RETE__MESSAGE__BODY_UPDATE: {
		const Rete__ReferralUpdate *u = msg->update;
		const char *st = rete_status_name(u->status);
		json_object_set_new(ev, "status", json_string(st));
		set_str(ev, "businessStatus", u->business_status);
		if (u->status_reason != NULL)
			json_object_set_new(ev, "statusReason",
					    rete_pb_to_json(&u->status_reason->base));
		if (u->outcome != NULL)
			json_object_set_new(ev, "outcome", rete_pb_to_json(&u->outcome->base));
		/* Entries arrive in log order per recipient, but what we sent and
		 * what we received interleave: the newest log index wins. */
		if (index >= get_index(rec, "lastIndex")) {
			newstatus = st;
			if (u->business_status != NULL && u->business_status[0] != '\0')
				set_str(rec, "businessStatus", u->business_status);
			else if (strcmp(cur ? cur : "", st) != 0)
				json_object_del(rec, "businessStatus");
			if (u->status_reason != NULL)
				json_object_set(rec, "statusReason",
						json_object_get(ev, "statusReason"));
			if (u->outcome != NULL)
				json_object_set(rec, "outcome", json_object_get(ev, "outcome"));
		}
		break;
	}
	case RETE__MESSAGE__BODY_NOTE:
		set_str(ev, "noteKind", msg->note->kind);
		break;
	case RETE__MESSAGE__BODY_DELIVERY: {
		const Rete__Delivery *d = msg->delivery;
		set_str(ev, "messageId", d->message_id);
		set_index(ev, "deliveredIndex", d->index);
		set_time(ev, "deliveredAt", d->delivered_at);
		/* A delivery of the referral itself moves it to received; the
		 * delivery of a later note or update changes no status. */
		if (d->message_id != NULL && strcmp(d->message_id, refid) == 0) {
			json_object_set_new(ev, "status", json_string("received"));
			set_time(rec, "receivedAt", d->delivered_at ? d->delivered_at : logged_at);
			if (cur == NULL || strcmp(cur, "requested") == 0)
				newstatus = "received";
		}
		break;
	}
	case RETE__MESSAGE__BODY_NOTICE: {
		const Rete__Notice *n = msg->notice;
		set_enum(ev, "notice", &rete__notice_kind__descriptor, n->kind);
		set_enum(ev, "error", &rete__error_code__descriptor, n->error);
		set_str(ev, "text", n->text);
		set_str(ev, "messageId", n->message_id);
		if (n->kind == RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE)
			json_object_set_new(rec, "overdue", json_true());
		if (n->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED &&
		    n->message_id != NULL && strcmp(n->message_id, refid) == 0) {
			newstatus = "failed";
			json_object_set_new(ev, "status", json_string("failed"));
		}
		break;
	}
	default:
		break;
	}
	json_array_append_new(hist, ev);
	if (newstatus != NULL) {
		json_object_set_new(rec, "status", json_string(newstatus));
		if (index >= get_index(rec, "lastIndex"))
			set_index(rec, "lastIndex", index);
	}
	set_time(rec, "updatedAt", logged_at ? logged_at : rete_now_ms());
	err = track_store(db, refid, rec, m);
	json_decref(rec);
	return err;
}

rete_err agent_track_moved(agent_db *db, const Rete__Message *msg, uint64_t was, uint32_t was_epoch,
			   uint64_t index, int64_t logged_at, uint32_t epoch, rete_msg *m)
{
	const char *refid = rete_message_referral_id(msg);
	const char *kind = rete_message_kind(msg);
	json_t *rec = NULL, *h;
	size_t i, moved = 0;

	if (refid[0] == '\0' || msg->id == NULL)
		return RETE_OK;
	rete_err err = track_load(db, refid, &rec, m);
	if (err == RETE_ENOENT || err == RETE_ECORRUPT)
		return RETE_OK; /* nothing recorded to follow */
	if (err != RETE_OK)
		return err;
	json_array_foreach(json_object_get(rec, "history"), i, h)
	{
		const char *k = json_string_value(json_object_get(h, "kind"));
		const char *id = json_string_value(json_object_get(h, "messageId"));
		if (get_index(h, "index") != was || k == NULL || strcmp(k, kind) != 0 ||
		    id == NULL || strcmp(id, msg->id) != 0)
			continue;
		set_index(h, "previousIndex", was);
		if (was_epoch != 0)
			json_object_set_new(h, "previousEpoch", json_integer(was_epoch));
		if (json_object_get(h, "at") != NULL)
			json_object_set(h, "previousAt", json_object_get(h, "at"));
		set_index(h, "index", index);
		set_time(h, "at", logged_at);
		if (epoch != 0)
			json_object_set_new(h, "epoch", json_integer(epoch));
		moved++;
	}
	if (moved > 0) {
		if (msg->body_case == RETE__MESSAGE__BODY_REFERRAL &&
		    get_index(rec, "index") == was)
			set_index(rec, "index", index);
		if (get_index(rec, "lastIndex") == was)
			set_index(rec, "lastIndex", index);
		err = track_store(db, refid, rec, m);
	}
	json_decref(rec);
	return err;
}

rete_err agent_track_withdrawn(agent_db *db, const char *refid, const char *msgid, const char *by,
			       uint64_t index, int64_t at, const char *text, rete_msg *m)
{
	json_t *rec = NULL;
	rete_err err = track_load(db, refid, &rec, m);
	if (err != RETE_OK)
		return err;
	json_t *hist = json_object_get(rec, "history");
	if (!json_is_array(hist)) {
		hist = json_array();
		json_object_set_new(rec, "history", hist);
	}
	if (track_seen(hist, index, "withdrawn")) {
		json_decref(rec);
		return RETE_OK;
	}
	bool itself = strcmp(msgid, refid) == 0;
	json_t *ev = json_object();
	set_index(ev, "index", index);
	set_time(ev, "at", at);
	json_object_set_new(ev, "kind", json_string("withdrawn"));
	if (itself)
		json_object_set_new(ev, "status", json_string("failed"));
	set_str(ev, "by", by);
	set_str(ev, "messageId", msgid);
	json_object_set_new(ev, "notice", json_string("withdrawn-at-expiry"));
	set_str(ev, "text", text);
	json_array_append_new(hist, ev);
	if (itself)
		json_object_set_new(rec, "status", json_string("failed"));
	set_time(rec, "updatedAt", at);
	err = track_store(db, refid, rec, m);
	json_decref(rec);
	return err;
}

rete_err agent_track_get(agent_db *db, const char *referral_id, json_t **out, rete_msg *m)
{
	rete_err err = track_load(db, referral_id, out, m);
	if (err == RETE_ENOENT)
		rete_msg_set(m, err, "referral %s: not in this agency's store", referral_id);
	return err;
}

static bool track_collect(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	(void)key;
	(void)klen;
	json_t *rec = json_loadb(val, vlen, 0, NULL);
	if (rec != NULL)
		json_array_append_new(user, rec);
	return true;
}

rete_err agent_track_all(agent_db *db, json_t **out, rete_msg *m)
{
	json_t *arr = json_array();
	if (arr == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	rete_err err = agent_db_each(db, AGENT_DB_REFERRALS, track_collect, arr, m);
	if (err != RETE_OK) {
		json_decref(arr);
		return err;
	}
	*out = arr;
	return RETE_OK;
}

/* --- messages receipted and not delivered ------------------------------------------ */

/* und_list: what und_collect gathers from the held records (their ids and
 * indexes only: the id records are read after, outside the cursor). */
typedef struct und_list {
	agent_undelivered *u;
	size_t n, cap;
	bool oom;
} und_list;

static bool und_collect(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	und_list *l = user;
	uint64_t index;
	const uint8_t *sm;
	size_t smlen;
	/* in place: the sealed part (up to the attachments' size) is neither
	 * copied nor read (review rev-held s17, 5) */
	if (vlen == 0 || agent_db_held_view(val, vlen, &index, &sm, &smlen) != RETE_OK)
		return true; /* delivered (empty), or not ours to judge here */
	Rete__Message *msg = NULL;
	const char *kind = "message", *refid = "";
	if (rete_signed_decode(sm, smlen, NULL, &msg, NULL) == RETE_OK) {
		kind = rete_message_kind(msg);
		refid = rete_message_referral_id(msg);
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		agent_undelivered *nu = realloc(l->u, cap * sizeof(*nu));
		if (nu == NULL)
			l->oom = true;
		else
			l->u = nu, l->cap = cap;
	}
	if (!l->oom) {
		agent_undelivered *u = &l->u[l->n];
		u->id = strndup(key, klen);
		u->referral = strdup(refid);
		u->kind = kind;
		u->index = index;
		u->receipted_at = 0;
		u->logged_at = 0;
		u->file = NULL;
		if (u->id == NULL || u->referral == NULL) {
			free(u->id);
			free(u->referral);
			l->oom = true;
		} else {
			l->n++;
		}
	}
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	return !l->oom;
}

rete_err agent_track_undelivered(agent_db *db, agent_undelivered **out, size_t *n, rete_msg *m)
{
	und_list l = {0};
	*out = NULL;
	*n = 0;
	rete_err err = agent_db_each(db, AGENT_DB_HELD, und_collect, &l, m);
	if (err == RETE_OK && l.oom)
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory");
	if (err != RETE_OK) {
		agent_track_undelivered_free(l.u, l.n);
		return err;
	}
	/* When it was receipted: the receipt the id record keeps, whose
	 * loggedAt the broker signed (a held message submitted again after a
	 * restore of the broker's store follows its new receipt there,
	 * out_held_renew_id: the broker's expiry runs from that entry too). */
	for (size_t i = 0; i < l.n; i++) {
		agent_idrec r;
		rete_msg im = {{0}};
		if (agent_db_id_get(db, l.u[i].id, &r, &im) != RETE_OK)
			continue;
		json_t *doc = json_loads(r.receipt_json ? r.receipt_json : "", 0, NULL);
		const char *at = json_string_value(json_object_get(doc, "loggedAt"));
		int64_t ms;
		if (at != NULL && rete_time_parse(at, &ms) == RETE_OK)
			l.u[i].receipted_at = l.u[i].logged_at = ms;
		/* this machine's time of receipt, when recorded: a broker that
		 * post-dates its receipts does not put off the judgement */
		at = json_string_value(json_object_get(doc, "receivedAt"));
		if (at != NULL && rete_time_parse(at, &ms) == RETE_OK && ms > 0 &&
		    (l.u[i].receipted_at <= 0 || ms < l.u[i].receipted_at))
			l.u[i].receipted_at = ms;
		const char *file = json_string_value(json_object_get(doc, "file"));
		if (file != NULL && file[0] && strchr(file, '/') == NULL)
			l.u[i].file = strdup(file); /* NULL when out of memory: not said */
		json_decref(doc);
		free(r.receipt_json);
	}
	*out = l.u;
	*n = l.n;
	return RETE_OK;
}

void agent_track_undelivered_free(agent_undelivered *u, size_t n)
{
	for (size_t i = 0; u != NULL && i < n; i++) {
		free(u[i].id);
		free(u[i].referral);
		free(u[i].file);
	}
	free(u);
}

int64_t agent_track_expiry(agent_db *db)
{
	rete_buf v = {0};
	int64_t ms = 0;
	if (agent_db_get(db, AGENT_DB_META, AGENT_META_DIR_EXPIRY, strlen(AGENT_META_DIR_EXPIRY),
			 &v, NULL) == RETE_OK &&
	    v.len > 0 && v.len < 24) {
		char buf[24];
		memcpy(buf, v.data, v.len);
		buf[v.len] = '\0';
		char *end;
		long long x = strtoll(buf, &end, 10);
		if (*end == '\0' && x > 0)
			ms = x;
	}
	rete_buf_free(&v);
	return ms;
}

char *agent_track_span(int64_t ms, char buf[32])
{
	long long s = ms > 0 ? ms / 1000 : 0, big, small;
	const char *u1, *u2;
	if (s >= 86400)
		big = s / 86400, small = s % 86400 / 3600, u1 = "d", u2 = "h";
	else if (s >= 3600)
		big = s / 3600, small = s % 3600 / 60, u1 = "h", u2 = "m";
	else
		big = s / 60, small = s % 60, u1 = "m", u2 = "s";
	if (big == 0)
		snprintf(buf, 32, "%lld%s", small, u2);
	else if (small == 0) /* "5d", as an expiry is written */
		snprintf(buf, 32, "%lld%s", big, u1);
	else
		snprintf(buf, 32, "%lld%s %lld%s", big, u1, small, u2);
	return buf;
}
