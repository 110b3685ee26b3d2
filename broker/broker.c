/* broker.c — see broker.h. The loop, batches, delivery, the broker's own
 * entries (Delivery, Notice, Directory), scans, checkpoints and events.
 *
 * One thread runs everything that touches sockets and the store (ZeroMQ
 * sockets are not thread-safe, and one writer keeps the log's order simple);
 * the verify pool's threads only check signatures, and the ZAP thread only
 * reads its own table. Signals arrive through a signalfd polled beside the
 * ROUTER socket, so a signal is never lost between two polls.
 */
#define _GNU_SOURCE
#include "broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "access_log.h"
#include "endpoint.h"
#include "broker_impl.h"
#include "checkpoint.h"
#include "timestamp.h"
#include "tsa.h"
#include "duration.h"
#include "json.h"
#include "log.h"
#include "version.h"
#include "logline.h"
#include "store_identity.h"
#include "validate.h"

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- peers --------------------------------------------------------------------- */

static int peer_cmp(const void *a, const void *b)
{
	return strcmp(((const broker_peer *)a)->id, ((const broker_peer *)b)->id);
}

static int peer_id_cmp(const void *id, const void *peer)
{
	return strcmp(id, ((const broker_peer *)peer)->id);
}

/* once per frame and per logged entry: by the hash of the id (config.h,
 * broker_id_index), or, when its index could not be had (out of memory),
 * the binary search of the sorted table */
_Static_assert(offsetof(broker_peer, id) == 0, "broker_id_index reads the id at a peer's start");
broker_peer *broker_peer_find(broker *b, const char *id)
{
	if (b->peer_index.slot == NULL)
		return bsearch(id, b->peers, b->npeers, sizeof(broker_peer), peer_id_cmp);
	size_t i = broker_id_index_find(&b->peer_index, b->peers, sizeof(broker_peer), id);
	return i == SIZE_MAX ? NULL : &b->peers[i];
}

/* peers_rebuild makes the peer table of the configuration in force,
 * keeping the state of parties that stay. */
static rete_err peers_rebuild(broker *b)
{
	const broker_config *c = b->cfg;
	broker_peer *np = calloc(c->nparties ? c->nparties : 1, sizeof(*np));
	if (!np)
		return RETE_ENOMEM;
	for (size_t i = 0; i < c->nparties; i++) {
		snprintf(np[i].id, sizeof(np[i].id), "%s", c->parties[i].id);
		np[i].inflight = calloc(c->delivery_window, sizeof(broker_inflight));
		if (!np[i].inflight) {
			for (size_t j = 0; j < i; j++)
				free(np[j].inflight);
			free(np);
			return RETE_ENOMEM;
		}
		broker_peer *old = b->peers ? broker_peer_find(b, np[i].id) : NULL;
		if (old) {
			memcpy(np[i].conns, old->conns, sizeof(old->conns));
			np[i].nconns = old->nconns;
			np[i].last_seen_ms = old->last_seen_ms;
			np[i].takeovers = old->takeovers;
			memcpy(np[i].takeover_ms, old->takeover_ms, sizeof(old->takeover_ms));
			np[i].warn = old->warn;
			np[i].note_ms = old->note_ms;
			np[i].acks_lost_ms = old->acks_lost_ms;
			np[i].acks_refused_since = old->acks_refused_since;
			np[i].acks_refused = old->acks_refused;
			np[i].hello = old->hello;
			np[i].gone_held = old->gone_held;
			np[i].last_hello_ms = old->last_hello_ms;
			np[i].last_kind = old->last_kind;
			np[i].last_standby = old->last_standby;
			memcpy(np[i].last_software, old->last_software, sizeof(old->last_software));
			/* deliveries in flight are sent again from the queue; the
			 * ones set aside stay aside (a round begins at once) */
			np[i].dirty = true;
			np[i].parked = old->parked;
			np[i].nparked = old->nparked;
			np[i].parked_cap = old->parked_cap;
			np[i].park_round = old->nparked > 0;
			np[i].park_round_ms = old->park_round_ms;
			np[i].park_keep_due = old->park_keep_due;
			old->parked = NULL;
			old->nparked = old->parked_cap = 0;
		}
	}
	qsort(np, c->nparties, sizeof(*np), peer_cmp);
	for (size_t i = 0; i < b->npeers; i++) {
		free(b->peers[i].inflight);
		free(b->peers[i].parked);
	}
	free(b->peers);
	b->peers = np;
	b->npeers = c->nparties;
	/* out of memory: left empty, broker_peer_find searches the table */
	(void)broker_id_index_build(&b->peer_index, np, sizeof(*np), c->nparties);
	return RETE_OK;
}

/* --- sending ------------------------------------------------------------------- */

int broker_send(broker *b, const uint8_t *rid, size_t rid_len, Rete__BrokerFrame *bf)
{
	bf->version = RETE_PROTOCOL_VERSION;
	/* a receipt (one a referral) is written by hand, in one walk: the
	 * same bytes as protobuf-c's two (rete_broker_frame_pack_receipt) */
	uint8_t quick[4096];
	size_t qlen = rete_broker_frame_pack_receipt(bf, quick, sizeof(quick));
	size_t len = qlen ? qlen : rete__broker_frame__get_packed_size(bf);
	zmq_msg_t msg;
	if (zmq_msg_init_size(&msg, len) < 0) {
		broker_log_error("out of memory for a %zu-byte answer", len);
		return ENOMEM;
	}
	if (qlen)
		memcpy(zmq_msg_data(&msg), quick, qlen);
	else
		rete__broker_frame__pack(bf, zmq_msg_data(&msg));
	if (zmq_send(b->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_msg_send(&msg, b->router, ZMQ_DONTWAIT) < 0) {
		int e = zmq_errno();
		zmq_msg_close(&msg);
		broker_log_debug("an answer was dropped: %s", zmq_strerror(e));
		return e ? e : EIO;
	}
	return 0;
}

/* refusal_sign signs f's refusal (protocol 3): RefusalBody{origin, the
 * party, the message's id and the SHA-256 of the SignedMessage bytes when
 * the frame held one, the code, the sentence, the field, now} with the
 * broker key, so the party can prove it was refused and why. Only for a
 * party that proved its directory key, and not for a refusal of the
 * protocol version (an older peer could not decode the field it would
 * come in, and would miss the sentence). false: not signed. */
static bool refusal_sign(broker *b, broker_frame *f, Rete__SignedRefusal *sr)
{
	if (!f->authed || f->error == RETE__ERROR_CODE__ERROR_CODE_VERSION)
		return false;
	uint8_t h[RETE_HASH_LEN];
	Rete__RefusalBody rb;
	rete__refusal_body__init(&rb);
	rb.origin = b->cfg->origin;
	rb.party = f->party;
	if (f->msg)
		rb.message_id = f->msg->id;
	if (f->cf && f->cf->command_case == RETE__CLIENT_FRAME__COMMAND_SUBMIT &&
	    f->cf->submit->signed_message.len) {
		rete_sha256(h, f->cf->submit->signed_message.data,
			    f->cf->submit->signed_message.len);
		rb.message_sha256.data = h;
		rb.message_sha256.len = sizeof(h);
	}
	rb.error = f->error;
	rb.error_text = f->error_text;
	rb.field = f->field;
	rb.refused_at = rete_now_ms();
	rete_msg m;
	if (rete_refusal_sign(&rb, b->key, sr, &m) != RETE_OK) {
		broker_log_error("the refusal of %s's frame goes unsigned: %s", f->party, m.text);
		return false;
	}
	return true;
}

/* send_refusal answers a frame refused before it became a submission (or
 * a submission refused), with the code, the field and the sentence, signed
 * (refusal_sign). */
static void send_refusal(broker *b, broker_frame *f, bool as_receipt)
{
	broker_metrics_refused(b->metrics, f->error);
	Rete__Receipt r;
	rete__receipt__init(&r);
	if (f->msg)
		r.message_id = f->msg->id;
	r.error = f->error;
	r.error_text = f->error_text;
	r.field = f->field;
	Rete__SignedRefusal sr;
	rete__signed_refusal__init(&sr);
	if (refusal_sign(b, f, &sr))
		r.signed_refusal = &sr;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	if (as_receipt) {
		bf.command_case = RETE__BROKER_FRAME__COMMAND_RECEIPT;
		bf.receipt = &r;
	} else {
		bf.command_case = RETE__BROKER_FRAME__COMMAND_REFUSAL;
		bf.refusal = &r;
	}
	broker_send(b, f->rid, f->rid_len, &bf);
	rete_signed_refusal_clear(&sr);
	/* an id refused as personal data is not repeated in the log */
	bool id_personal =
	    f->error == RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA && strcmp(f->field, "id") == 0;
	broker_log_info("refused %s from %s: %s",
			f->msg == NULL ? "a frame"
			: id_personal  ? "a message (its id looks like personal data)"
				       : f->msg->id,
			f->party[0] ? f->party : "?", f->error_text);
}

/* receipt_op: f's op when f owes a receipt (an accepted or duplicate
 * submission), else NULL. */
static const rete_store_op *receipt_op(const broker_batch *bt, const broker_frame *f)
{
	if (f->op < 0)
		return NULL;
	const rete_store_op *op = &bt->ops[f->op];
	return op->status == RETE_STORE_ACCEPTED || op->status == RETE_STORE_DUPLICATE ? op : NULL;
}

/* receipts_prove follows a durable commit of bt that owes receipts, on the
 * committer's thread: it signs ONE checkpoint note of the log as the commit
 * left it (the same size keeps the note signed before: Ed25519 is
 * deterministic, so the note is the same) and writes each accepted or
 * duplicate frame's inclusion proof in that tree. The note is not stored
 * here; when a stored checkpoint of that size falls due, it is this note
 * that is stored (checkpoint_note), and every note of this log is
 * consistent with the stored ones. On a store error or out of memory bt->note
 * stays NULL and the frames get no receipt (their agents submit again and
 * get the original entry's). memo is the commit's (rete_store_commit_memo:
 * the nodes it wrote are in it); NULL: one of its own. */
static void receipts_prove(broker *b, broker_batch *bt, rete_merkle_memo *memo,
			   rete_store_rtxn *in)
{
	rete_store_rtxn *rt = in;
	rete_merkle_memo *own = NULL;
	rete_msg m = {{0}};
	uint64_t size = 0;
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	size_t n;

	free(bt->note);
	bt->note = NULL;
	if ((in == NULL && rete_store_read_begin(b->store, &rt, &m) != RETE_OK) ||
	    rete_store_size(b->store, rt, &size, &m) != RETE_OK)
		goto fail;
	/* the proofs of the batch share their upper path: read and hashed once
	 * (without the memo, if it cannot be had, each reads its own); the
	 * root's subtrees are the upper siblings of the last entries' proofs,
	 * so the root goes through the memo too */
	if (memo == NULL)
		memo = own = rete_merkle_memo_new();
	if (b->rc_note == NULL || b->rc_size != size) {
		uint8_t root[RETE_MERKLE_HASH];
		char *note = NULL;
		if (rete_store_root_memo(b->store, rt, memo, size, root, &m) != RETE_OK ||
		    rete_checkpoint_sign_epoch(b->cfg->origin, size, root, b->epoch, b->key, &note,
					       &m) != RETE_OK)
			goto fail;
		free(b->rc_note);
		b->rc_note = note;
		b->rc_size = size;
	}
	for (size_t i = 0; i < bt->n; i++) {
		broker_frame *f = &bt->frames[i];
		const rete_store_op *op = receipt_op(bt, f);
		if (op == NULL)
			continue;
		if (rete_store_inclusion_proof_memo(b->store, rt, memo, op->index, size, proof, &n,
						    &m) != RETE_OK)
			goto fail;
		rete_buf_free(&f->proof);
		f->proof.data = malloc(n ? n * RETE_MERKLE_HASH : 1);
		if (f->proof.data == NULL) {
			rete_msg_set(&m, RETE_ENOMEM, "out of memory");
			goto fail;
		}
		memcpy(f->proof.data, proof, n * RETE_MERKLE_HASH);
		f->proof.len = n * RETE_MERKLE_HASH;
	}
	if (in == NULL)
		rete_store_read_end(&rt);
	rete_merkle_memo_free(own);
	own = NULL;
	bt->note = strdup(b->rc_note);
	if (bt->note == NULL)
		rete_msg_set(&m, RETE_ENOMEM, "out of memory");
	else
		return;
fail:
	rete_merkle_memo_free(own);
	if (in == NULL)
		rete_store_read_end(&rt);
	/* the sentence is logged on the main thread (send_receipt) */
	snprintf(bt->m.text, sizeof(bt->m.text), "%s", m.text);
}

/* send_receipt sends f's receipt: its entry's index and time (with the
 * bytes it submitted, the sender rebuilds the leaf), the inclusion proof
 * and the checkpoint of bt's commit (receipts_prove). */
static void send_receipt(broker *b, broker_batch *bt, broker_frame *f)
{
	const rete_store_op *op = &bt->ops[f->op];
	if (bt->note == NULL) {
		broker_log_error("no receipt for %s's %.64s (logged at index %" PRIu64
				 "): %s; it will have it when it sends the message again",
				 f->party, f->msg->id, op->index, bt->m.text);
		return;
	}
	size_t n = f->proof.len / RETE_MERKLE_HASH;
	ProtobufCBinaryData hashes[RETE_MERKLE_MAX_PROOF];
	for (size_t i = 0; i < n && i < RETE_MERKLE_MAX_PROOF; i++) {
		hashes[i].data = f->proof.data + i * RETE_MERKLE_HASH;
		hashes[i].len = RETE_MERKLE_HASH;
	}
	Rete__Receipt r;
	rete__receipt__init(&r);
	r.message_id = f->msg->id;
	r.index = op->index;
	r.logged_at = op->logged_at;
	r.n_proof = n;
	r.proof = hashes;
	r.checkpoint = bt->note;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_RECEIPT;
	bf.receipt = &r;
	broker_send(b, f->rid, f->rid_len, &bf);
}

/* --- the batch's ops and the broker's own entries ----------------------------------- */

/* op_add adds an op to the batch being built (NULL: out of memory). */
static rete_store_op *op_add(broker *b, rete_store_op_kind kind, const Rete__Message *msg)
{
	broker_batch *bt = b->bt;
	if (bt->nops == bt->capops) {
		size_t cap = bt->capops ? bt->capops * 2 : 64;
		rete_store_op *o = realloc(bt->ops, cap * sizeof(*o));
		if (!o)
			return NULL;
		bt->ops = o;
		const Rete__Message **mm = realloc(bt->op_msg, cap * sizeof(*mm));
		if (!mm)
			return NULL;
		bt->op_msg = mm;
		bt->capops = cap;
	}
	rete_store_op *op = &bt->ops[bt->nops];
	/* every member after error_text is set by hand below: a new one
	 * there would keep the last batch's value (bt->ops is reused) */
	_Static_assert(offsetof(rete_store_op, was_present) ==
			   offsetof(rete_store_op, error_text) + RETE_STORE_ERROR_MAX,
		       "op_add: was_present must follow error_text");
	_Static_assert(sizeof(rete_store_op) - offsetof(rete_store_op, was_present) <=
			   _Alignof(rete_store_op),
		       "op_add: a member after was_present is not reset");
	/* all but the store's sentence buffer (RETE_STORE_ERROR_MAX bytes,
	 * most of the op): emptied, not zeroed, one op a referral */
	memset(op, 0, offsetof(rete_store_op, error_text));
	op->error_text[0] = '\0';
	op->was_present = false;
	op->kind = kind;
	bt->op_msg[bt->nops] = msg;
	bt->nops++;
	return op;
}

/* own_new starts a broker-signed message (body set by the caller). */
static broker_own *own_new(broker *b, const char *id, const char *recipient, const char *case_id)
{
	broker_batch *bt = b->bt;
	if (bt->nown == bt->capown) {
		size_t cap = bt->capown ? bt->capown * 2 : 32;
		broker_own **o = realloc(bt->own, cap * sizeof(*o));
		if (!o)
			return NULL;
		bt->own = o;
		bt->capown = cap;
	}
	broker_own *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->op = -1;
	bt->own[bt->nown++] = o;
	rete__message__init(&o->msg);
	rete__delivery__init(&o->delivery);
	rete__notice__init(&o->notice);
	snprintf(o->id, sizeof(o->id), "%s", id);
	snprintf(o->recipient, sizeof(o->recipient), "%s", recipient ? recipient : "");
	snprintf(o->case_id, sizeof(o->case_id), "%s", case_id ? case_id : "");
	o->msg.id = o->id;
	o->msg.sender = b->cfg->id;
	o->msg.recipient = o->recipient;
	o->msg.case_id = o->case_id;
	o->msg.origin = b->cfg->origin;
	o->msg.created_at = rete_now_ms();
	return o;
}

/* own_append adds o's APPEND op (signed by batch_commit, with the
 * commit). false when it could not. */
static bool own_append(broker *b, broker_own *o, int64_t now)
{
	broker_utf8_clean(o->text);
	rete_problems pr = {0};
	if (rete_validate_message(&o->msg, NULL, RETE_VALIDATE_BROKER, &pr) != RETE_OK) {
		broker_log_error("internal: the broker's own %s %s is not valid: %s: %s",
				 rete_message_kind(&o->msg), o->id, pr.n ? pr.items[0].path : "",
				 pr.n ? pr.items[0].text : "");
		rete_problems_free(&pr);
		return false;
	}
	rete_problems_free(&pr);
	rete_store_op *op = op_add(b, RETE_STORE_OP_APPEND, &o->msg);
	if (!op)
		return false;
	op->in.msg = &o->msg;
	op->in.logged_at = now;
	o->op = (long)(b->bt->nops - 1);
	return true;
}

/* own_sign signs the broker's own entries of bt and points their ops at
 * the signed bytes; an entry that cannot be signed (out of memory) is left
 * without bytes, and the store refuses it. */
static void own_sign(broker *b, broker_batch *bt)
{
	for (size_t i = 0; i < bt->nown; i++) {
		broker_own *o = bt->own[i];
		if (o->op < 0)
			continue;
		rete_msg m;
		if (rete_message_sign(&o->msg, b->key, &o->signed_bytes, &m) != RETE_OK) {
			broker_log_error("cannot sign the broker's %s: %s", o->id, m.text);
			continue;
		}
		bt->ops[o->op].in.signed_message = o->signed_bytes.data;
		bt->ops[o->op].in.len = o->signed_bytes.len;
	}
}

/* batch_parked_free drops the lists set aside bt carried (parked_attach) */
static void batch_parked_free(broker_batch *bt)
{
	for (size_t i = 0; i < bt->nparked; i++)
		free((void *)bt->parked[i].index);
	free(bt->parked);
	free(bt->parked_id);
	bt->parked = NULL;
	bt->parked_id = NULL;
	bt->nparked = 0;
}

/* batch_reset empties bt (its frames were cleared by whoever answered
 * them). */
static void batch_reset(broker_batch *bt)
{
	for (size_t i = 0; i < bt->nown; i++) {
		rete_buf_free(&bt->own[i]->signed_bytes);
		free(bt->own[i]->ack_body);
		if (bt->own[i]->msg.body_case == RETE__MESSAGE__BODY_DIRECTORY)
			broker_directory_free(&bt->own[i]->msg.directory);
		free(bt->own[i]);
	}
	bt->nown = 0;
	bt->nops = 0;
	bt->n = 0;
	bt->err = RETE_OK;
	free(bt->note);
	bt->note = NULL;
	free(bt->cp_note); /* not stored: its commit failed (it is due again) */
	bt->cp_note = NULL;
	bt->cp_size = 0;
	bt->cp_err[0] = '\0';
	batch_parked_free(bt);
	rete_arena_reset(&bt->arena); /* its frames were answered */
}

/* read_message reads entry index and decodes its Message (caller frees). */
static rete_err read_message(broker *b, rete_store_rtxn *rt, uint64_t index, Rete__Message **out)
{
	*out = NULL;
	rete_buf e = {0};
	rete_err err = rete_store_entry(b->store, rt, index, &e, NULL);
	if (err != RETE_OK)
		return err;
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, e.len, e.data);
	rete_buf_free(&e);
	if (!le)
		return RETE_ECORRUPT;
	err = rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, out, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	return err;
}

/* broker_wrote: is msg an entry the broker wrote (a Delivery, a Notice, a
 * Directory, an Epoch)? By its body, which only the broker writes (an
 * agency's submission of one is refused, and the broker writes no other),
 * as rete-agent decides when it acks one unsigned (protocol 4). Not by its
 * sender: an entry logged under an id the broker had before (`id` in
 * broker.ini changed) is the broker's all the same, and an unsigned ACK of
 * it refused would deliver it again for ever; an agency's entry whose
 * sender is the broker's id now (once an agency's, since removed) is
 * still an agency's, acked signed and its Delivery logged. */
static bool broker_wrote(const Rete__Message *msg)
{
	return rete_body_is_broker(msg);
}

/* --- events ---------------------------------------------------------------------- */

static void publish(broker *b, Rete__Event *ev)
{
	/* one an entry: written by hand, the same bytes as protobuf-c's
	 * (rete_event_pack_fast) */
	uint8_t quick[2048];
	size_t qlen = rete_event_pack_fast(ev, quick, sizeof(quick));
	size_t len = qlen ? qlen : rete__event__get_packed_size(ev);
	zmq_msg_t msg;
	if (zmq_msg_init_size(&msg, len) < 0)
		return;
	if (qlen)
		memcpy(zmq_msg_data(&msg), quick, qlen);
	else
		rete__event__pack(ev, zmq_msg_data(&msg));
	if (zmq_msg_send(&msg, b->pub, ZMQ_DONTWAIT) < 0)
		zmq_msg_close(&msg);
}

static void publish_entry(broker *b, const Rete__Message *msg, const rete_store_op *op)
{
	Rete__Event ev;
	rete__event__init(&ev);
	ev.index = op->index;
	ev.logged_at = op->logged_at;
	ev.kind = (char *)rete_message_kind(msg);
	ev.sender = msg->sender;
	ev.recipient = msg->recipient;
	ev.case_id = msg->case_id;
	ev.referral_id = (char *)rete_message_referral_id(msg);
	ev.message_id = msg->id;
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		ev.status = RETE__STATUS__STATUS_REQUESTED;
		ev.service = msg->referral->service;
		ev.priority = msg->referral->priority;
		ev.age_band = msg->referral->age_band;
		break;
	case RETE__MESSAGE__BODY_UPDATE:
		ev.status = msg->update->status;
		ev.business_status = msg->update->business_status;
		break;
	case RETE__MESSAGE__BODY_DELIVERY:
		if (msg->delivery->referral_id[0] &&
		    strcmp(msg->delivery->referral_id, msg->delivery->message_id) == 0)
			ev.status = RETE__STATUS__STATUS_RECEIVED;
		break;
	case RETE__MESSAGE__BODY_NOTICE:
		ev.notice = msg->notice->kind;
		if (msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED)
			ev.status = RETE__STATUS__STATUS_FAILED;
		break;
	default:
		break;
	}
	publish(b, &ev);
}

/* --- delivery --------------------------------------------------------------------- */

/* --- set aside ---------------------------------------------------------------
 *
 * The delivery window bounds what is sent to a party and not acked, so
 * that a recipient that reads nothing does not get the whole queue piled
 * up in memory. But a recipient may read a delivery and choose not to ack
 * it yet: rete-agent leaves with the broker a message signed with a key of
 * its sender that the agency's operator has not confirmed (agents/agent/
 * agent_keys.h), so that an honest rotation loses nothing and a forged
 * message is not taken. Held in the window, such entries stalled every
 * other delivery to the agency once they filled it: one partner's
 * unconfirmed key stopped every partner's referrals (session 12 review).
 *
 * So an entry in flight for `redeliver` without an ACK, on a connection
 * that has shown it read past it (it answered a PING sent after it: the
 * same proof redelivery asks), is set aside: it leaves the window, which
 * goes on with what follows in the queue, and it stays queued (in the
 * store: nothing is logged, acked or lost). The recipient says nothing
 * new (no protocol change): the broker infers from what it already knows
 * that the recipient has the entry and is not taking it for now. What is
 * set aside is sent again in rounds, in log order, every `redeliver`, at
 * most delivery_window at a time (each chunk once the connection read past
 * the one before, so that a round never piles up more than a window in the
 * connection's queue), and at once, first, on a new delivery connection.
 * An ACK (or a refusal) takes it off as it takes any entry. The room is
 * bounded (PARK_PER_SLOT x delivery_window entries a party): beyond it an
 * unacked entry keeps its slot, as before, said once. A recipient that
 * reads nothing has nothing set aside: its window stays full.
 *
 * The list is kept in the store too (meta "parked/PARTY", store.h), so
 * that a restart of the broker (an upgrade, a reboot, a crash) does not
 * put what waits back in the window: there each window of it stalled the
 * party's other deliveries for one `redeliver` until set aside anew (about
 * 32 to 37 minutes with the room full at the defaults; session 14). It is
 * written when it changes, at most once a second, with the next batch's
 * commit (parked_attach) or alone on a quiet network (parked_keep), never
 * per delivery, and read back, checked against the queue, at the start
 * (parked_load). */
#define PARK_PER_SLOT 64

/* parked_at: where index is, or would go, in p's ascending parked list. */
static size_t parked_at(const broker_peer *p, uint64_t index)
{
	size_t lo = 0, hi = p->nparked;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->parked[mid] < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool parked_has(const broker_peer *p, uint64_t index)
{
	size_t i = parked_at(p, index);
	return i < p->nparked && p->parked[i] == index;
}

/* parked_add sets index aside for p; false when the room (max) is full or
 * memory is short (then it stays in the window). One that goes before the
 * round's next one is sent in the next round. */
static bool parked_add(broker_peer *p, uint64_t index, size_t max)
{
	size_t i = parked_at(p, index);
	if (i < p->nparked && p->parked[i] == index)
		return true;
	if (p->nparked >= max)
		return false;
	if (p->nparked == p->parked_cap) {
		size_t nc = p->parked_cap ? p->parked_cap * 2 : 16;
		if (nc > max)
			nc = max;
		uint64_t *v = realloc(p->parked, nc * sizeof(*v));
		if (!v)
			return false;
		p->parked = v;
		p->parked_cap = nc;
	}
	memmove(&p->parked[i + 1], &p->parked[i], (p->nparked - i) * sizeof(p->parked[0]));
	p->parked[i] = index;
	p->nparked++;
	p->park_keep_due = true;
	if (i < p->park_pos)
		p->park_pos++;
	return true;
}

static void parked_remove(broker_peer *p, uint64_t index)
{
	size_t i = parked_at(p, index);
	if (i >= p->nparked || p->parked[i] != index)
		return;
	memmove(&p->parked[i], &p->parked[i + 1], (p->nparked - i - 1) * sizeof(p->parked[0]));
	p->nparked--;
	p->park_keep_due = true;
	if (i < p->park_pos)
		p->park_pos--;
	if (p->nparked == 0) {
		p->park_round = false;
		p->park_full_said = false;
	}
}

/* inflight_remove: entry index of p was acked (or refused, or expired):
 * out of the window, or of what is set aside. */
static void inflight_remove(broker_peer *p, uint64_t index)
{
	parked_remove(p, index);
	for (size_t i = 0; i < p->ninflight; i++)
		if (p->inflight[i].index == index) {
			p->inflight[i] = p->inflight[--p->ninflight];
			return;
		}
}

/* inflight_restart forgets what was in flight on p's delivery connection:
 * pump sends it again, from the queue, in log order. What is set aside
 * stays aside and goes first, at once (a round that needs no proof of
 * reading on the new connection). */
static void inflight_restart(broker_peer *p)
{
	p->ninflight = 0;
	p->next_from = 0;
	p->dirty = true;
	p->park_round = p->nparked > 0;
	p->park_pos = 0;
	p->park_seq = 0;
}

/* conn_find: the position of routing id rid in p's connections, or -1. */
static int conn_find(const broker_peer *p, const uint8_t *rid, size_t rid_len)
{
	for (size_t i = 0; i < p->nconns; i++)
		if (p->conns[i].rid_len == rid_len && memcmp(p->conns[i].rid, rid, rid_len) == 0)
			return (int)i;
	return -1;
}

/* conn_front makes c the delivery connection: nothing to prove there. */
static void conn_front(broker_conn *c)
{
	c->taken_seq = 0;
	c->displaced = false;
	c->told = false;
}

/* conn_behind marks c, just put behind another connection of its party: a
 * PONG to a PING sent from now on proves it alive there (displaced). */
static void conn_behind(broker *b, broker_conn *c)
{
	if (c->taken_seq)
		return; /* behind already: what proves it is unchanged */
	c->taken_seq = ++b->send_seq;
	c->displaced = false;
}

/* conn_hello lists the connection rid that said HELLO from addr: first
 * (the newest plain HELLO gets the deliveries), or, with standby
 * (protocol 5), behind a connection that has them by a plain HELLO, but
 * ahead of the standby ones and those put behind (a told agent whose line
 * failed must not wait behind its own dead connection, nor behind a
 * standby one). The oldest one listed falls off a full list. Returns true
 * when the delivery connection (conns[0]) changed. */
static bool conn_hello(broker *b, broker_peer *p, const uint8_t *rid, size_t rid_len, bool standby,
		       const char *addr)
{
	int at = conn_find(p, rid, rid_len);
	bool front_was = p->nconns > 0 && at == 0;
	broker_conn c = {0};
	if (at >= 0) {
		c = p->conns[at];
		memmove(&p->conns[at], &p->conns[at + 1],
			(p->nconns - (size_t)at - 1) * sizeof(p->conns[0]));
		p->nconns--;
	} else {
		memcpy(c.rid, rid, rid_len);
		c.rid_len = rid_len;
	}
	snprintf(c.addr, sizeof(c.addr), "%s", addr);
	c.standby = standby;
	if (p->nconns == BROKER_CONNS_MAX)
		p->nconns--; /* the oldest one listed falls off */
	size_t pos = 0;
	if (standby)
		while (pos < p->nconns && !p->conns[pos].standby && !p->conns[pos].taken_seq)
			pos++;
	memmove(&p->conns[pos + 1], &p->conns[pos], (p->nconns - pos) * sizeof(p->conns[0]));
	p->nconns++;
	if (pos > 0) {
		p->conns[pos] = c;
		conn_behind(b, &p->conns[pos]);
		return front_was; /* it was first: the next one is now */
	}
	conn_front(&c);
	p->conns[0] = c;
	if (p->nconns > 1)
		conn_behind(b, &p->conns[1]);
	return true;
}

/* hello_hushed: are the lines of p's HELLOs held back at now (monotonic)?
 * Yes while a window in which a HELLO was held runs: the delivery
 * connections lost then are counted with them (a flapping line drops one
 * at each HELLO), not written one by one. */
static bool hello_hushed(const broker_peer *p, int64_t now)
{
	return p->hello.rw_open && now - p->hello.rw_since < BROKER_WARN_MS &&
	       (p->hello.rw_held || p->gone_held);
}

/* conn_lost drops p's connection i, which the ROUTER no longer knows; when
 * it was the delivery connection, what was in flight on it goes to the
 * next one listed (if any). The loss of an agency's delivery connection,
 * or of one told it lost the deliveries, is an info line, or counted
 * (hello_hushed); a standby one's is not said. */
static void conn_lost(broker *b, broker_peer *p, size_t i)
{
	broker_conn c = p->conns[i];
	memmove(&p->conns[i], &p->conns[i + 1], (p->nconns - i - 1) * sizeof(p->conns[0]));
	p->nconns--;
	if (i == 0) {
		if (p->nconns)
			conn_front(&p->conns[0]);
		inflight_restart(p);
	}
	if (i != 0 && !c.told)
		return;
	/* nothing is delivered to a coordinator or an auditor: the end of
	 * their `rete monitor`, `health` or `report` is routine, debug */
	const broker_party *bp = broker_config_party(b->cfg, p->id);
	if (bp && !broker_kind_is_agency(bp->kind)) {
		broker_log_debug("%s's connection is gone", p->id);
		return;
	}
	bool hushed = hello_hushed(p, mono_ms());
	if (hushed)
		p->gone_held++;
	const char *next = i != 0      ? ""
			   : p->nconns ? "; deliveries go on on its other connection"
				       : "; deliveries wait for its next HELLO";
	const char *note = hushed ? " (counted: held back with its HELLOs)" : "";
	if (c.told)
		(hushed ? broker_log_debug : broker_log_info)(
		    "%s: the connection from %s, told that a new one (from %s) took its "
		    "deliveries, went without answering: a line that failed, an agent "
		    "restarted, or a second agent stopped before it was asked%s%s",
		    p->id, c.addr[0] ? c.addr : "?", c.taker[0] ? c.taker : "?", next, note);
	else
		(hushed ? broker_log_debug : broker_log_info)(
		    "%s's delivery connection is gone%s%s", p->id, next, note);
}

/* deliver_one sends entry idx to p's delivery connection (read in rt).
 * Returns broker_send's verdict (0 when the entry is not there: nothing to
 * send). */
static int deliver_one(broker *b, broker_peer *p, rete_store_rtxn *rt, uint64_t idx)
{
	rete_buf e = {0}, blob = {0};
	if (rete_store_entry(b->store, rt, idx, &e, NULL) != RETE_OK)
		return 0;
	rete_store_blob(b->store, rt, idx, &blob, NULL);
	Rete__Deliver d;
	rete__deliver__init(&d);
	d.log_entry.data = e.data;
	d.log_entry.len = e.len;
	d.sealed.data = blob.data;
	d.sealed.len = blob.len;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_DELIVER;
	bf.deliver = &d;
	int rc = broker_send(b, p->conns[0].rid, p->conns[0].rid_len, &bf);
	rete_buf_free(&e);
	rete_buf_free(&blob);
	return rc;
}

/* pump sends party p what is queued for it, in log order, up to the
 * delivery window, on its delivery connection. A delivery that could not
 * be queued (EAGAIN: the connection's queue is full) stays in flight and
 * goes again after `redeliver`; a connection that is gone is dropped and
 * the pump starts again on the next one. */
static void park_step(broker *b, broker_peer *p);

static void pump(broker *b, broker_peer *p)
{
	p->dirty = false;
	/* its ACKs cannot be logged now (acks_unlogged; or the clock behind
	 * the log at the start, clock_start): nothing is sent to it, since
	 * nothing it acknowledges could be logged; clock_hold_end pumps */
	if (p->acks_lost_ms || b->clock_hold)
		return;
	park_step(b, p);
	unsigned window = b->cfg->delivery_window;
	while (p->nconns && p->ninflight < window) {
		uint64_t idx[64];
		size_t n = 0, want = window - p->ninflight;
		if (want > 64)
			want = 64;
		rete_store_rtxn *rt = NULL;
		if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK)
			return;
		if (rete_store_queue_peek(b->store, rt, p->id, p->next_from, want, idx, &n, NULL) !=
		    RETE_OK)
			n = 0;
		bool lost = false;
		for (size_t i = 0; i < n && !lost; i++) {
			if (parked_has(p, idx[i])) { /* set aside: sent in its rounds */
				p->next_from = idx[i] + 1;
				continue;
			}
			if (deliver_one(b, p, rt, idx[i]) == EHOSTUNREACH) {
				conn_lost(b, p, 0);
				lost = true;
				break;
			}
			p->inflight[p->ninflight].index = idx[i];
			p->inflight[p->ninflight].sent_seq = ++b->send_seq;
			p->inflight[p->ninflight++].sent_ms = mono_ms();
			p->next_from = idx[i] + 1;
			broker_metrics_add(b->metrics, BM_DELIVERED, 1);
			broker_log_debug("delivered entry %" PRIu64 " to %s", idx[i], p->id);
		}
		rete_store_read_end(&rt);
		if (!lost && n < want)
			break;
	}
}

static void pump_dirty(broker *b)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i].dirty)
			pump(b, &b->peers[i]);
}

static int inflight_cmp(const void *x, const void *y)
{
	const broker_inflight *a = x, *c = y;
	return a->index < c->index ? -1 : a->index > c->index;
}

/* redelivery_due: is f to be sent again on connection c? It waited
 * `redeliver` for its ACK, and c has read past it (it answered a PING sent
 * after it): a recipient that reads but could not take it (a full disk)
 * gets it again, while one that reads nothing (stalled) does not get copy
 * after copy piling up in its queue. */
static bool redelivery_due(const broker *b, const broker_conn *c, const broker_inflight *f,
			   int64_t now)
{
	return now - f->sent_ms >= b->cfg->redeliver_ms && c->read_seq > f->sent_seq;
}

/* park_step sends the next chunk (at most delivery_window) of the round
 * in progress of what p has set aside, in log order, once the connection
 * read past the chunk before (or nothing was sent on it yet). A full
 * connection queue (EAGAIN) ends the chunk: the rest at the next step. */
static void park_step(broker *b, broker_peer *p)
{
	if (!p->nconns || !p->park_round)
		return;
	if (p->park_seq && p->conns[0].read_seq <= p->park_seq)
		return;
	rete_store_rtxn *rt = NULL;
	if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK)
		return;
	size_t sent = 0;
	bool lost = false;
	while (p->park_pos < p->nparked && sent < b->cfg->delivery_window) {
		int rc = deliver_one(b, p, rt, p->parked[p->park_pos]);
		if (rc == EHOSTUNREACH) {
			lost = true;
			break;
		}
		if (rc != 0)
			break;
		p->park_seq = ++b->send_seq;
		p->park_pos++;
		sent++;
	}
	rete_store_read_end(&rt);
	broker_metrics_add(b->metrics, BM_DELIVERED, sent);
	broker_metrics_add(b->metrics, BM_REDELIVERED, sent);
	if (sent)
		broker_log_debug("sent %zu of the deliveries set aside for %s again (%zu of %zu "
				 "in this round)",
				 sent, p->id, p->park_pos, p->nparked);
	if (lost) {
		conn_lost(b, p, 0); /* the round begins again on the next one */
		return;
	}
	if (p->park_pos >= p->nparked)
		p->park_round = false;
}

/* park_due sets aside p's deliveries in flight that are due again
 * (redelivery_due: unacked for `redeliver` on a connection that read past
 * them), and begins a round of what is set aside when some were, or when
 * `redeliver` passed since the last round began and the connection read
 * past what it was sent last. */
static void park_due(broker *b, broker_peer *p, int64_t now)
{
	size_t max = (size_t)b->cfg->delivery_window * PARK_PER_SLOT, now_aside = 0;
	bool full = false;
	for (size_t j = 0; j < p->ninflight;) {
		broker_inflight *f = &p->inflight[j];
		if (!redelivery_due(b, &p->conns[0], f, now)) {
			j++;
		} else if (parked_add(p, f->index, max)) {
			p->inflight[j] = p->inflight[--p->ninflight];
			now_aside++;
		} else {
			full = true;
			j++;
		}
	}
	if (now_aside) {
		p->dirty = true; /* their slots go to what follows in the queue */
		broker_log_info("%s read %zu deliver%s without acknowledging %s within %" PRId64
				" ms: set aside, out of its delivery window, so that what "
				"follows is delivered; %s sent again every `redeliver`, in log "
				"order, until acknowledged (%zu set aside for %s)",
				p->id, now_aside, now_aside == 1 ? "y" : "ies",
				now_aside == 1 ? "it" : "them", b->cfg->redeliver_ms,
				now_aside == 1 ? "it is" : "they are", p->nparked, p->id);
	}
	if (full && !p->park_full_said) {
		p->park_full_said = true;
		broker_log_warn(
		    "%s has %zu deliveries set aside, unacknowledged, the most a party "
		    "may have (%u per slot of its delivery_window): further unacknowledged "
		    "ones keep their slot in the window, and once they fill it nothing "
		    "else is delivered to %s until it acknowledges some (rete-agent "
		    "leaves unacknowledged what is signed with a partner's key its "
		    "operator has not confirmed: rete status -c agent.ini says which)",
		    p->id, p->nparked, (unsigned)PARK_PER_SLOT, p->id);
	}
	if (p->park_round || !p->nparked)
		return;
	if (now_aside || (now - p->park_round_ms >= b->cfg->redeliver_ms &&
			  (!p->park_seq || p->conns[0].read_seq > p->park_seq))) {
		p->park_round = true;
		p->park_pos = 0;
		p->park_round_ms = now;
	}
}

/* PARK_KEEP_MS: how often, at most, the lists set aside that changed go
 * to the store. Under load they go with the next batch's commit
 * (parked_attach), in its transaction and its journal record: no commit
 * or sync of their own, and an ACK that takes an entry off a list changes
 * the stored list in its own commit (handle_ack takes it off before the
 * batch is committed). When no batch came for PARK_KEEP_MS after that
 * (a quiet network) parked_keep writes them alone, at the second's tick.
 * A list is rewritten whole: 8 bytes an index, 32 KiB with the room full
 * at the defaults (docs/performance.md, "Deliveries set aside"). */
#define PARK_KEEP_MS 1000

/* parked_due: how many parties' lists changed since the store got them */
static size_t parked_due(const broker *b)
{
	size_t due = 0;
	for (size_t i = 0; i < b->npeers; i++)
		due += b->peers[i].park_keep_due;
	return due;
}

/* parked_attach has bt's commit write the lists set aside that changed
 * (park_keep_due), at most once per PARK_KEEP_MS: copies, since the
 * main thread changes the lists while the committer writes them. What
 * is set aside after this goes with a later commit; a crash before that
 * puts it back in the window (set aside anew, nothing lost), and a list
 * naming an entry acked since is cleaned by parked_load. bt's commit
 * must not have been handed over yet. */
static void parked_attach(broker *b, broker_batch *bt)
{
	int64_t now = mono_ms();
	size_t due = parked_due(b);
	if (due == 0 || bt->nparked || now - b->park_kept_ms < PARK_KEEP_MS)
		return;
	bt->parked = calloc(due, sizeof(*bt->parked));
	bt->parked_id = calloc(due, sizeof(*bt->parked_id));
	if (!bt->parked || !bt->parked_id)
		goto none;
	for (size_t i = 0; i < b->npeers; i++) {
		broker_peer *p = &b->peers[i];
		if (!p->park_keep_due)
			continue;
		uint64_t *copy = NULL;
		if (p->nparked && !(copy = malloc(p->nparked * sizeof(*copy))))
			goto none;
		if (p->nparked)
			memcpy(copy, p->parked, p->nparked * sizeof(*copy));
		snprintf(bt->parked_id[bt->nparked], sizeof(bt->parked_id[0]), "%s", p->id);
		bt->parked[bt->nparked] =
		    (rete_store_parked){bt->parked_id[bt->nparked], copy, p->nparked};
		bt->nparked++;
	}
	for (size_t i = 0; i < b->npeers; i++)
		b->peers[i].park_keep_due = false;
	b->park_kept_ms = now;
	return;
none: /* out of memory: parked_keep writes them at the tick */
	batch_parked_free(bt);
}

/* parked_unattached: bt's commit failed, so the lists it carried were not
 * written: they are due again. */
static void parked_unattached(broker *b, const broker_batch *bt)
{
	for (size_t i = 0; i < bt->nparked; i++) {
		broker_peer *p = broker_peer_find(b, bt->parked[i].party);
		if (p)
			p->park_keep_due = true;
	}
}

/* parked_keep writes into the store, alone, the lists set aside that
 * changed since they last went (park_keep_due), all in one durable
 * transaction of their own (rete_store_parked_put: not journaled, it ends
 * with a sync like a checkpoint's, on the main thread). At the second's
 * tick only when no batch carried them for PARK_KEEP_MS after the last
 * time (parked_attach: under load a batch does), or when forced (the
 * start, a reload, the stop). So never per delivery: a list changes when entries
 * are set aside (at most once per `redeliver` for an entry) or one set
 * aside is acked or withdrawn. A crash before a change is written leaves
 * a stored list naming an entry no longer queued, which parked_load
 * leaves out, or lacking one set aside since, which takes the window
 * again and is set aside anew. A list the store refuses stays due (tried
 * at the next tick) and is said once until it goes through; a restart
 * before then puts what it lacks back in the window, set aside anew
 * `redeliver` after it is read. No commit may be in flight (the
 * committer's batch is collected first). */
static void parked_keep(broker *b, bool force)
{
	int64_t now = mono_ms();
	if (b->fly)
		return;
	size_t due = parked_due(b);
	if (due == 0 || (!force && now - b->park_kept_ms < 2 * PARK_KEEP_MS))
		return;
	rete_store_parked *l = calloc(due, sizeof(*l));
	if (!l)
		return;
	size_t n = 0;
	for (size_t i = 0; i < b->npeers; i++) {
		broker_peer *p = &b->peers[i];
		if (p->park_keep_due)
			l[n++] = (rete_store_parked){p->id, p->parked, p->nparked};
	}
	rete_msg m;
	if (rete_store_parked_put(b->store, l, n, &m) == RETE_OK) {
		for (size_t i = 0; i < b->npeers; i++)
			b->peers[i].park_keep_due = false;
		b->park_kept_ms = now;
		if (b->park_keep_failed)
			broker_log_info("the lists of deliveries set aside are in the store again");
		b->park_keep_failed = false;
	} else if (!b->park_keep_failed) {
		b->park_keep_failed = true;
		broker_log_error("cannot keep the lists of deliveries set aside in the store: %s; "
				 "they stay aside while the broker runs and the store is tried "
				 "again every second (a restart before then puts the entries "
				 "missing from the store back in the delivery window, where they "
				 "are set aside anew `redeliver` after they are read)",
				 m.text);
	}
	free(l);
}

/* parked_kept: a list in the store is kept when broker.ini names its
 * party (parked_sweep) */
static bool parked_kept(void *ctx, const char *party)
{
	return broker_peer_find(ctx, party) != NULL;
}

static int parked_gone(void *ctx, const char *what)
{
	(void)ctx;
	broker_log_info("the list of deliveries set aside of %s is removed from the store: "
			"broker.ini names no such party (what is queued for it stays queued)",
			what);
	return 0;
}

/* parked_sweep removes from the store the lists of parties the
 * configuration no longer names, and keys under "parked/" that name no
 * party at all (damaged), by their keys as they are (at the start and at
 * each reload): what is queued for them stays queued, as any entry
 * (orphans_say names such queues), and a party named again later starts
 * with nothing set aside. */
static void parked_sweep(broker *b)
{
	rete_msg m;
	if (rete_store_parked_sweep(b->store, parked_kept, parked_gone, b, NULL, &m) != RETE_OK)
		broker_log_warn("cannot remove the lists of deliveries set aside of parties "
				"broker.ini does not name: %s; tried again at the next start or "
				"reload",
				m.text);
}

/* parked_queued: is entry idx (in a log of size entries) still queued for
 * party (read in rt)? */
static bool parked_queued(broker *b, rete_store_rtxn *rt, const char *party, uint64_t idx,
			  uint64_t size)
{
	uint64_t first = 0;
	size_t got = 0;
	return idx < size &&
	       rete_store_queue_peek(b->store, rt, party, idx, 1, &first, &got, NULL) == RETE_OK &&
	       got == 1 && first == idx;
}

/* parked_load takes back at the start the lists set aside that
 * parked_keep wrote before the stop (or the crash): what a party read and
 * left unacknowledged does not take its delivery window again, what
 * follows it in the queue is delivered at once, and it goes first, at
 * once, on the party's first delivery connection (inflight_restart), as
 * on any new connection. Only the first `room` indexes (delivery_window x
 * PARK_PER_SLOT, the room in force) are read and checked against the
 * store as it is now: one no longer queued for the party (acked or
 * withdrawn after the list was last written, a restored copy's), beyond
 * the log or repeated is left out (one out of order is put in order);
 * those beyond the room are left out without a look (a damaged list as
 * long as the largest room costs no more than the room in force), and a
 * list that cannot be read (a value longer than the largest room, or not
 * of 8-byte indexes) is dropped; one the store fails to read (an I/O
 * error, no memory) is left in the store for the next start: such entries
 * are delivered as any queued entry, in log order, and set aside anew
 * when read and left unacknowledged. Nothing queued is lost either way;
 * lists that were cleaned up are written again, and those of parties no
 * longer configured removed (parked_sweep). No commit may be in flight. */
static void parked_load(broker *b)
{
	rete_store_rtxn *rt = NULL;
	rete_msg m;
	if (rete_store_read_begin(b->store, &rt, &m) != RETE_OK) {
		broker_log_warn("cannot read the lists of deliveries set aside: %s; what waits "
				"takes the delivery windows again until set aside anew",
				m.text);
		return;
	}
	size_t max = (size_t)b->cfg->delivery_window * PARK_PER_SLOT;
	uint64_t size = 0;
	if (rete_store_size(b->store, rt, &size, &m) != RETE_OK) {
		/* every index would look beyond the log: the lists are left as
		 * they are for the next start */
		rete_store_read_end(&rt);
		broker_log_warn("cannot read the lists of deliveries set aside: %s; what waits "
				"takes the delivery windows again until set aside anew",
				m.text);
		return;
	}
	int64_t now = mono_ms();
	for (size_t i = 0; i < b->npeers; i++) {
		broker_peer *p = &b->peers[i];
		uint64_t *idx = NULL;
		size_t n = 0, stored = 0, gone = 0, over = 0, bad = 0;
		rete_err err =
		    rete_store_parked_get(b->store, rt, p->id, max, &idx, &n, &stored, &m);
		if (err == RETE_ECORRUPT) { /* m names the list and what it holds */
			broker_log_warn(
			    "%s; it is dropped: the entries it named stay queued and are "
			    "delivered in log order (set aside anew once read and left "
			    "unacknowledged for `redeliver`)",
			    m.text);
			p->park_keep_due = true; /* written over */
			continue;
		}
		if (err != RETE_OK) { /* the store failed to read it: it stays */
			broker_log_warn(
			    "%s: its list of deliveries set aside cannot be read now (%s): it is "
			    "left in the store, read again at the next start (or written over "
			    "once a delivery to %s is set aside anew); meanwhile the entries "
			    "it named stay queued and are delivered in log order (set aside "
			    "anew once read and left unacknowledged for `redeliver`)",
			    p->id, m.text, p->id);
			continue;
		}
		for (size_t j = 0; j < n; j++) {
			if (j > 0 && idx[j] <= idx[j - 1])
				bad++; /* out of order or repeated: put in order */
			if (!parked_queued(b, rt, p->id, idx[j], size))
				gone++;
			else if (!parked_add(p, idx[j], max))
				over++;
		}
		free(idx);
		size_t read = n;
		over += stored - n; /* beyond the room: not read */
		n = stored;
		p->park_keep_due = gone || over || bad;
		p->park_round_ms = now;
		if (n == 0)
			continue;
		char left[320] = "", part[2][160] = {"", ""};
		if (gone)
			snprintf(part[0], sizeof(part[0]),
				 "%zu no longer queued for it (acknowledged or withdrawn since the "
				 "list was written: nothing to deliver)",
				 gone);
		if (over)
			snprintf(
			    part[1], sizeof(part[1]),
			    "%zu beyond the room of the delivery_window in force (%zu entries: "
			    "delivered in log order as any queued entry)",
			    over, max);
		if (gone || over)
			snprintf(left, sizeof(left), "; left out of it: %s%s%s", part[0],
				 gone && over ? ", " : "", part[1]);
		if (p->nparked == 0 && read == n)
			broker_log_info("%s: none of the %zu deliveries set aside before the "
					"restart is still queued for it: its list is removed%s",
					p->id, n, left);
		else if (p->nparked == 0) /* those beyond the room were not read */
			broker_log_info("%s: none of the first %zu of the %zu deliveries set "
					"aside before the restart (the room of the delivery_window "
					"in force) is still queued for it: its list is removed%s",
					p->id, read, n, left);
		else
			broker_log_info(
			    "%s: %zu deliver%s it read and left unacknowledged before the "
			    "restart stay%s set aside (the list kept in the store): what follows "
			    "in its queue is delivered at once, and %s sent again first, in log "
			    "order, when it connects%s",
			    p->id, p->nparked, p->nparked == 1 ? "y" : "ies",
			    p->nparked == 1 ? "s" : "", p->nparked == 1 ? "it is" : "they are",
			    left);
	}
	rete_store_read_end(&rt);
	parked_sweep(b);
	parked_keep(b, true);
}

/* redeliver sets aside what is due again (park_due) and sends the next
 * chunk of what is set aside; then sends again, on the delivery connection,
 * every delivery that is due (redelivery_due) and could not be set aside
 * (the room is full), in log order, without waiting for a new HELLO. A
 * party paused since `redeliver` because the store refused its ACKs
 * (acks_unlogged) gets its queue again from the start. While it is paused
 * nothing of this is done for it: setting aside would only put the due
 * entries first when the pause ends (inflight_restart sends all that is
 * in flight again anyway), and nothing follows them in the meantime. */
static void redeliver(broker *b, int64_t now)
{
	for (size_t i = 0; i < b->npeers; i++) {
		broker_peer *p = &b->peers[i];
		if (p->acks_lost_ms && now - p->acks_lost_ms >= b->cfg->redeliver_ms) {
			p->acks_lost_ms = 0; /* its queue again, from the start */
			inflight_restart(p);
		}
		if (!p->nconns || p->acks_lost_ms || b->clock_hold)
			continue;
		park_due(b, p, now);
		park_step(b, p);
		if (!p->nconns || !p->ninflight)
			continue;
		bool due = false;
		for (size_t j = 0; j < p->ninflight && !due; j++)
			due = redelivery_due(b, &p->conns[0], &p->inflight[j], now);
		if (!due)
			continue;
		qsort(p->inflight, p->ninflight, sizeof(p->inflight[0]), inflight_cmp);
		rete_store_rtxn *rt = NULL;
		if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK)
			return;
		size_t again = 0;
		for (size_t j = 0; j < p->ninflight; j++) {
			broker_inflight *f = &p->inflight[j];
			if (!redelivery_due(b, &p->conns[0], f, now))
				continue;
			if (deliver_one(b, p, rt, f->index) == EHOSTUNREACH) {
				conn_lost(b, p, 0); /* restarts the window on the next one */
				break;
			}
			f->sent_ms = now;
			f->sent_seq = ++b->send_seq;
			again++;
		}
		rete_store_read_end(&rt);
		broker_metrics_add(b->metrics, BM_DELIVERED, again);
		broker_metrics_add(b->metrics, BM_REDELIVERED, again);
		if (again)
			broker_log_info("sent %zu unacknowledged deliver%s to %s again (no ACK "
					"after %" PRId64 " ms)",
					again, again == 1 ? "y" : "ies", p->id,
					b->cfg->redeliver_ms);
	}
	pump_dirty(b);
}

/* pump_dirty_now pumps the dirty peers outside a batch's answer: the batch
 * in flight, if any, is answered first, so that the queues read hold its
 * ACKs (otherwise an entry acked in it could be sent once more). */
static void pipe_collect(broker *b);
static void pump_dirty_now(broker *b)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i].dirty) {
			pipe_collect(b); /* answers it, and pumps */
			pump_dirty(b);
			return;
		}
}

static void mark_dirty(broker *b, const char *id)
{
	broker_peer *p = id && id[0] ? broker_peer_find(b, id) : NULL;
	if (p)
		p->dirty = true;
}

/* --- commit and what follows it ---------------------------------------------------- */

static void checkpoint_done(broker *b, uint64_t size, char *note);

/* batch_commit signs bt's own entries, commits its ops in one durable
 * transaction (bt->err, bt->m), with the stored checkpoint bt carries if
 * one is due (checkpoint_attach; a checkpoint the store refuses does not
 * cost the batch: it is committed again without it, and the main thread
 * says why) and, when it owes receipts (accepted or duplicate
 * submissions), signs one checkpoint of the new size and proves each entry
 * in it (receipts_prove). It touches nothing of the broker but the store,
 * the key and the per-commit note, so it runs on the committer's thread
 * while the main thread reads and verifies the next batch. */
/* owes_receipts: bt has accepted or duplicate submissions. */
static bool owes_receipts(const broker_batch *bt)
{
	for (size_t i = 0; i < bt->n; i++)
		if (receipt_op(bt, &bt->frames[i]) != NULL)
			return true;
	return false;
}

struct early {
	broker *b;
	broker_batch *bt;
	rete_merkle_memo *memo;
	bool send; /* on the main thread: the receipts go now */
};

/* receipts_early: the store's journal holds bt (rete_store_commit_durable),
 * LMDB has yet to commit it: its receipts are proved in the batch's own
 * transaction and, on the main thread, sent, while LMDB writes. The
 * thread is in the commit until LMDB is done, so nothing it answers after
 * (a query, a delivery) reads the store without the batch. */
static void receipts_early(void *ctx, rete_store_rtxn *rt)
{
	struct early *e = ctx;
	broker_batch *bt = e->bt;

	if (!owes_receipts(bt))
		return;
	receipts_prove(e->b, bt, e->memo, rt);
	if (!e->send || bt->note == NULL)
		return; /* batch_answer sends them, or says why it cannot */
	for (size_t i = 0; i < bt->n; i++) {
		broker_frame *f = &bt->frames[i];
		if (receipt_op(bt, f) == NULL)
			continue;
		send_receipt(e->b, bt, f);
		broker_metrics_observe(e->b->metrics, BH_RECEIPT,
				       broker_metrics_now_us() - bt->read_us, 1);
		f->receipted = true;
	}
}

/* A commit longer than this is said (commit_timed): a healthy disk
 * flushes in milliseconds, and receipts wait for the flush. */
#define BROKER_COMMIT_SLOW_MS 5000

/* commit_timed says a commit of bt that took took_us when it is slow: a
 * warning (at most one a minute, the others counted) naming what waited
 * and for how long, and, at the first commit after that is not slow, a
 * line that the disk keeps up again. While a flush stalls the broker's
 * log said nothing at all, the agents' submissions waiting unanswered on
 * live connections (s16 rev-edges 4); a commit that has not finished is
 * in no histogram bucket yet. This line comes when the slow commit ends
 * (the thread that would say it is the one waiting for the disk); while
 * it hangs, the watch's thread says it (stallwatch.h, s16 rev-stall #3). */
static void commit_timed(broker *b, const broker_batch *bt, int64_t took_us)
{
	char when[32];
	/* a batch that wrote nothing (resubmissions answered DUPLICATE while
	 * the slow commit before was in flight, acknowledgements of what was
	 * gone) flushes nothing: its speed says nothing of the disk's, and
	 * must not end a slow spell (rev-stall s16 #1) */
	bool wrote = false;
	for (size_t i = 0; i < bt->nops && !wrote; i++)
		wrote = bt->ops[i].status == RETE_STORE_ACCEPTED ||
			(bt->ops[i].status == RETE_STORE_DONE && bt->ops[i].was_present);
	if (!wrote)
		return;
	if (took_us >= (int64_t)BROKER_COMMIT_SLOW_MS * 1000) {
		if (b->slow_since_ms == 0)
			b->slow_since_ms = rete_now_ms() - took_us / 1000;
		b->slow_commits++;
		if (took_us > b->slow_worst_us)
			b->slow_worst_us = took_us;
		broker_log_limited(RETE_LOG_WARNING, "slow commits",
				   "the commit of %zu entr%s took %.1f s (its flushes to the disk "
				   "of %s): the disk is stalling or overloaded; receipts and "
				   "deliveries wait for each commit; check the disk (its space, "
				   "its errors in the kernel's log, what else writes to it)",
				   bt->nops, bt->nops == 1 ? "y" : "ies", (double)took_us / 1e6,
				   b->cfg->data);
		return;
	}
	if (b->slow_since_ms == 0)
		return;
	/* the watch's lines of the spell it did not say (rev-broker s17 #2) */
	uint64_t unsaid = broker_stall_calm(b->stall);
	char held[160] = "";
	if (unsaid > 0)
		snprintf(held, sizeof(held),
			 "; %" PRIu64 " of them waited past %d s without a line of their own "
			 "while they waited (said at most one a minute in a slow spell)",
			 unsaid, BROKER_COMMIT_SLOW_MS / 1000);
	broker_log_info("commits are fast again (%.3f s for the last one): %" PRIu64
			" commit%s took longer than %d s since %s, the longest %.1f s%s",
			(double)took_us / 1e6, b->slow_commits, b->slow_commits == 1 ? "" : "s",
			BROKER_COMMIT_SLOW_MS / 1000, rete_time_format(b->slow_since_ms, when),
			(double)b->slow_worst_us / 1e6, held);
	b->slow_since_ms = 0;
	b->slow_commits = 0;
	b->slow_worst_us = 0;
}

static void batch_commit(broker *b, broker_batch *bt, bool main_thread)
{
	bt->err = RETE_OK;
	if (bt->nops == 0)
		return;
	int64_t t0 = broker_metrics_now_us();
	own_sign(b, bt);
	/* the watch says it while the commit hangs (stallwatch.h);
	 * commit_timed says it when it ends. After own_sign: the watch reads
	 * the ops' signed bytes */
	broker_stall_begin(b->stall, bt->ops, bt->nops);
	/* the commit tells the memo the Merkle nodes it wrote, once they are
	 * durable, and the proofs take them from there instead of reading
	 * them back (without a memo, if none can be had, they read them) */
	rete_merkle_memo *memo = rete_merkle_memo_new();
	/* on the main thread a batch's receipts go as soon as the journal has
	 * it (docs/performance.md, "The journal"); the committer's go after
	 * LMDB's commit, when the main thread collects it */
	struct early e = {b, bt, memo, main_thread};
	bool early = false;
	bt->err = rete_store_commit_parked(b->store, bt->ops, bt->nops, memo, bt->cp_size,
					   bt->cp_note, bt->parked, bt->nparked,
					   main_thread ? receipts_early : NULL, &e, &early, &bt->m);
	if (bt->err != RETE_OK && bt->err != RETE_EFULL && bt->cp_note != NULL) {
		snprintf(bt->cp_err, sizeof(bt->cp_err), "%s", bt->m.text);
		free(bt->cp_note);
		bt->cp_note = NULL;
		bt->err = rete_store_commit_parked(
		    b->store, bt->ops, bt->nops, memo, 0, NULL, bt->parked, bt->nparked,
		    main_thread ? receipts_early : NULL, &e, &early, &bt->m);
	}
	if (bt->err == RETE_OK && !early && owes_receipts(bt))
		receipts_prove(b, bt, memo, NULL);
	rete_merkle_memo_free(memo);
	broker_stall_end(b->stall);
	commit_timed(b, bt, broker_metrics_now_us() - t0);
}

static void batch_commit_job(void *ctx)
{
	broker *b = ctx;
	int64_t t0 = broker_metrics_now_us();
	batch_commit(b, b->fly, false);
	if (b->fly->nops)
		broker_metrics_observe(b->metrics, BH_COMMIT, broker_metrics_now_us() - t0, 1);
}

/* acks_unlogged: bt's commit failed, so its ACKs were not logged and
 * their entries are still queued. Sent again at once, they only brought
 * the same ACKs into the next batch, which the store refused the same way
 * while its disk was full: thousands of deliveries and hundreds of error
 * lines a second (s14 rev-restore, 3). So each recipient whose ACKs were
 * refused pauses: pump sends it nothing until `redeliver` after the first
 * refusal (redeliver) or the next commit that goes through (acks_resume);
 * then its queue goes again from the start, as to a new connection, and
 * what it already holds it acks again. */
static void acks_unlogged(broker *b, const broker_batch *bt)
{
	int64_t now = mono_ms();
	for (size_t i = 0; i < bt->nops; i++) {
		if (bt->ops[i].kind != RETE_STORE_OP_ACK)
			continue;
		broker_peer *p = broker_peer_find(b, bt->ops[i].in.recipient);
		if (!p)
			continue;
		if (!p->acks_refused_since)
			p->acks_refused_since = rete_now_ms();
		p->acks_refused++;
		if (!p->acks_lost_ms)
			p->acks_lost_ms = now;
		b->acks_paused = true;
	}
}

/* acks_resume: the store commits again; the recipients acks_unlogged
 * paused get their queues again, from the start, at the next pump, and
 * health no longer says their ACKs are refused. */
static void acks_resume(broker *b)
{
	if (!b->acks_paused)
		return;
	b->acks_paused = false;
	for (size_t i = 0; i < b->npeers; i++) {
		b->peers[i].acks_refused_since = 0;
		b->peers[i].acks_refused = 0;
		if (b->peers[i].acks_lost_ms) {
			b->peers[i].acks_lost_ms = 0;
			inflight_restart(&b->peers[i]);
		}
	}
}

/* refusal_said writes the line of a batch the store refused, the
 * refused_batches-th of this spell. The first of a spell is said at once,
 * whatever was said of the spell before (a store that refuses again after
 * a commit is news, not a repeat), and so is the first with each new
 * store sentence in the spell (a full disk, then a quota or an EIO); the
 * repeats are counted and said once a minute (refusals_sweep), since a
 * full disk refuses batch after batch. A new spell needs a commit that
 * went through before it, and each commit logs its entries anyway: these
 * lines cannot outnumber them. */
/* refused_held_say writes how many refused batches were held back, not
 * said one by one: those of the last window, or (since_last, as the broker
 * stops) all since the last line about them. */
static void refused_held_say(uint64_t held, bool since_last)
{
	if (held)
		broker_log_error("batches the store refused: %" PRIu64 " more %s", held,
				 since_last ? "since the last line about them"
					    : "in the last minute");
}

static void refusal_said(broker *b, const broker_batch *bt)
{
	int64_t now = mono_ms();
	uint64_t held = 0;
	bool news = b->refused_batches == 1;
	if (news) {
		b->nrefused_texts = 0;
		(void)rete_ratewin_admit(&b->refused_win, BROKER_WARN_MS, now, &held);
	} else if (b->nrefused_texts < BROKER_REFUSED_TEXTS) {
		news = true;
		for (size_t i = 0; i < b->nrefused_texts && news; i++)
			news = strcmp(b->refused_texts[i], bt->m.text) != 0;
	}
	if (news && b->nrefused_texts < BROKER_REFUSED_TEXTS)
		snprintf(b->refused_texts[b->nrefused_texts++], sizeof(b->refused_texts[0]), "%s",
			 bt->m.text);
	if (!news && !rete_ratewin_admit(&b->refused_win, BROKER_WARN_MS, now, &held))
		return;
	refused_held_say(held, false);
	broker_log_error("the store refused a batch of %zu operations: %s; nothing of it is "
			 "logged: its submissions are refused (their agents send them again) "
			 "and the deliveries it acknowledged go again `redeliver` after, or once "
			 "the store commits; while it refuses, the same is said once a minute "
			 "with a count",
			 bt->nops, bt->m.text);
}

/* refusals_sweep says how many refused batches were held back, once their
 * window ended (each second's scan): a spell that goes on writes a line a
 * minute. */
static void refusals_sweep(broker *b, int64_t now)
{
	uint64_t held;
	if (rete_ratewin_ended(&b->refused_win, BROKER_WARN_MS, now, true, &held))
		refused_held_say(held, false);
}

/* batch_logged follows a commit of bt on the main thread: on success it
 * publishes the events, marks the recipients and logs the entries.
 * Returns the store's verdict. A store that refuses (a full disk) refuses
 * batch after batch: refusal_said; the spell's end is said when it
 * commits again. */
static rete_err batch_logged(broker *b, broker_batch *bt)
{
	if (bt->nops == 0)
		return RETE_OK;
	if (bt->err != RETE_OK) {
		broker_metrics_add(b->metrics, BM_COMMIT_FAILED, 1);
		if (b->refused_batches++ == 0)
			b->refused_since_ms = mono_ms();
		refusal_said(b, bt);
		return bt->err;
	}
	broker_metrics_add(b->metrics, BM_COMMITS, 1);
	/* (a batch receipted from the journal whose LMDB commit failed is
	 * not the store writing again: catch_up says so, and resumes) */
	rete_msg why;
	if ((b->refused_batches || b->acks_paused) && !rete_store_behind(b->store, &why)) {
		/* (the count held in refused_win is in this one) */
		(void)rete_ratewin_flush(&b->refused_win);
		if (b->refused_batches)
			broker_log_info("the store commits again, after %" PRIu64
					" batch(es) refused in %" PRId64 " s",
					b->refused_batches, (mono_ms() - b->refused_since_ms) / 1000);
		b->refused_batches = 0;
		acks_resume(b);
	}
	if (bt->cp_note != NULL) {
		checkpoint_done(b, bt->cp_size, bt->cp_note);
		bt->cp_note = NULL;
		b->state_due = true; /* once the batch is answered */
	} else if (bt->cp_err[0]) {
		broker_log_error("cannot store the checkpoint at size %" PRIu64
				 " with a batch: %s; "
				 "the batch was committed without it, the checkpoint is tried "
				 "again in a second",
				 bt->cp_size, bt->cp_err);
		b->cp_failed_ms = mono_ms();
	}
	for (size_t i = 0; i < bt->nops; i++) {
		rete_store_op *op = &bt->ops[i];
		if (op->kind != RETE_STORE_OP_APPEND || op->status != RETE_STORE_ACCEPTED)
			continue;
		const Rete__Message *msg = bt->op_msg[i];
		if (op->index + 1 > b->log_size)
			b->log_size = op->index + 1;
		broker_metrics_add(b->metrics, BM_APPENDED, 1);
		if (msg && msg->body_case == RETE__MESSAGE__BODY_DELIVERY)
			broker_metrics_add(b->metrics, BM_DELIVERY_LOGGED, 1);
		else if (msg && msg->body_case == RETE__MESSAGE__BODY_NOTICE &&
			 msg->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED)
			broker_metrics_add(b->metrics, BM_DELIVERY_REFUSED, 1);
		if (msg) {
			publish_entry(b, msg, op);
			mark_dirty(b, msg->recipient);
			/* one line an entry: put together without vsnprintf,
			 * the same text (rete_log_logged_text) */
			char line[1024];
			const char *kind = rete_message_kind(msg);
			const char *to = msg->recipient[0] ? msg->recipient : "-";
			size_t len = rete_log_logged_text(line, sizeof(line), kind, msg->id,
							  msg->sender, to, op->index);
			if (len < sizeof(line))
				broker_log_info_text(line, len);
			else
				broker_log_info("logged %s %s from %s to %s at index %" PRIu64,
						kind, msg->id, msg->sender, to, op->index);
		}
	}
	return RETE_OK;
}

/* commit_now commits the batch being built on the main thread (the
 * broker's own entries: directory, expiries, overdue notices); no batch
 * may be in flight. */
static rete_err commit_now(broker *b)
{
	batch_commit(b, b->bt, false);
	return batch_logged(b, b->bt);
}

/* --- checkpoints -------------------------------------------------------------------- */

/* checkpoint_note signs the checkpoint of the log at size: the note of the
 * committer's last receipts when it is of that size (Ed25519 is
 * deterministic: the same bytes), else a new signature over the root read
 * from the store. No commit may be in flight. NULL with m set when it
 * cannot. */
static char *checkpoint_note(broker *b, uint64_t size, rete_msg *m)
{
	if (b->rc_note != NULL && b->rc_size == size)
		return strdup(b->rc_note);
	uint8_t root[RETE_MERKLE_HASH];
	char *note = NULL;
	if (rete_store_root(b->store, NULL, size, root, m) != RETE_OK ||
	    rete_checkpoint_sign_epoch(b->cfg->origin, size, root, b->epoch, b->key, &note, m) !=
		RETE_OK) {
		free(note);
		return NULL;
	}
	return note;
}

static void clock_mark(broker *b);

/* checkpoint_state writes the state file: the broker's memory of what it
 * signed (the latest stored checkpoint), outside the store folder (a
 * restore replaces that). Once per checkpoint, never per commit: a tail
 * shorter than the checkpoint period is the agents' witnesses' to catch
 * (docs/operations.md). After the checkpoint is stored, never before: the
 * state file never names more than the store holds. */
static void checkpoint_state(broker *b)
{
	rete_msg m;
	b->state_due = false;
	if (b->cp_note != NULL && rete_store_state_write(b->cfg->state, b->cp_note, &m) != RETE_OK)
		broker_log_error("checkpoint at size %" PRIu64 ": %s; a restore of an older "
				 "copy may go unnoticed until it is written",
				 b->cp_size, m.text);
	else
		clock_mark(b);
}

/* checkpoint_done follows a stored checkpoint (main thread): it becomes
 * the latest, its event goes out and the time-stamp authority is asked. It
 * takes note. */
static void checkpoint_done(broker *b, uint64_t size, char *note)
{
	free(b->cp_note);
	b->cp_note = note;
	b->cp_size = size;
	b->cp_at_ms = rete_now_ms();
	b->cp_mono_ms = mono_ms();
	Rete__Event ev;
	rete__event__init(&ev);
	ev.index = size;
	ev.logged_at = b->cp_at_ms;
	ev.kind = "checkpoint";
	ev.checkpoint = note;
	publish(b, &ev);
	broker_tsa_checkpoint(b->tsa, size); /* stamped on its own thread */
	broker_log_debug("checkpoint at size %" PRIu64, size);
}

/* checkpoint_make stores a checkpoint of the log as it is, in a
 * transaction of its own, and writes the state file (when the network is
 * quiet, and at a stop). No commit may be in flight. */
static void checkpoint_make(broker *b)
{
	uint64_t size = b->log_size;
	if (size == 0 || size == b->cp_size)
		return;
	rete_msg m;
	char *note = checkpoint_note(b, size, &m);
	if (note == NULL || rete_store_checkpoint_put(b->store, size, note, &m) != RETE_OK) {
		/* tried every second: on a full disk, one line a minute */
		broker_log_limited(RETE_LOG_ERROR, "checkpoints the store could not take",
				   "cannot make the checkpoint at size %" PRIu64
				   ": %s; it is tried again every second, and while it fails "
				   "this is said once a minute with a count",
				   size, m.text);
		free(note);
		return;
	}
	checkpoint_done(b, size, note);
	checkpoint_state(b);
}

/* checkpoint_due: a stored checkpoint is due (the log grew by
 * checkpoint_every entries since the latest, or checkpoint_interval went
 * by and it grew at all). */
static bool checkpoint_due(const broker *b, int64_t mono_now)
{
	return b->log_size > b->cp_size &&
	       (b->log_size - b->cp_size >= b->cfg->checkpoint_every ||
		mono_now - b->cp_mono_ms >= b->cfg->checkpoint_interval_ms);
}

/* checkpoint_attach has bt's commit store the checkpoint that is due, in
 * the same transaction (no sync of its own); the main thread writes the
 * state file once bt is answered (checkpoint_state, while the pool
 * verifies the next batch). Under load that is every checkpoint: the main
 * thread used to store it itself, waiting for the batch in flight and then
 * for the checkpoint's own syncs, while the verify pool had nothing to do
 * (10-15 ms of every ~50 ms batch of 1,024 frames; docs/performance.md).
 * bt's commit must not have been handed over yet, and none may be in
 * flight. */
static void checkpoint_attach(broker *b, broker_batch *bt)
{
	int64_t now = mono_ms();
	if (bt->cp_note != NULL || !checkpoint_due(b, now) ||
	    (b->cp_failed_ms != 0 && now - b->cp_failed_ms < 1000))
		return;
	rete_msg m;
	bt->cp_note = checkpoint_note(b, b->log_size, &m);
	if (bt->cp_note == NULL) {
		broker_log_error("cannot make the checkpoint at size %" PRIu64
				 ": %s; it is tried again in a second",
				 b->log_size, m.text);
		b->cp_failed_ms = now; /* not at every batch */
	}
	bt->cp_size = b->log_size;
}

static void pipe_collect(broker *b);

/* checkpoint_maybe makes the stored checkpoint when one is due and no
 * batch is in flight (a quiet network: under load it goes with a batch's
 * commit, checkpoint_attach). */
static void checkpoint_maybe(broker *b, int64_t mono_now)
{
	if (b->fly == NULL && b->state_due)
		checkpoint_state(b);
	if (b->fly == NULL && checkpoint_due(b, mono_now)) {
		checkpoint_make(b);
		b->cp_mono_ms = mono_now; /* a failed one is tried again later */
	}
}

/* --- the directory -------------------------------------------------------------------- */

static rete_err directory_load_cache(broker *b)
{
	rete_buf_free(&b->dir_entry);
	uint64_t idx;
	return rete_store_directory(b->store, NULL, &idx, &b->dir_entry, NULL);
}

/* directory_sync logs the configuration's Directory when it differs from
 * the one in force (or none is logged yet). */
static rete_err directory_sync(broker *b)
{
	Rete__Directory *d = NULL;
	if (broker_config_directory(b->cfg, 0, &d) != RETE_OK)
		return RETE_ENOMEM;
	uint64_t serial = 1;
	if (directory_load_cache(b) == RETE_OK) {
		Rete__LogEntry *le =
		    rete__log_entry__unpack(NULL, b->dir_entry.len, b->dir_entry.data);
		Rete__Message *old = NULL;
		bool same = false;
		if (le &&
		    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &old,
				       NULL) == RETE_OK &&
		    old->body_case == RETE__MESSAGE__BODY_DIRECTORY) {
			uint64_t old_serial = old->directory->serial;
			serial = old_serial + 1;
			old->directory->serial = 0;
			size_t l1 = rete__directory__get_packed_size(old->directory);
			size_t l2 = rete__directory__get_packed_size(d);
			if (l1 == l2) {
				uint8_t *p1 = malloc(l1 ? l1 : 1), *p2 = malloc(l2 ? l2 : 1);
				if (p1 && p2) {
					rete__directory__pack(old->directory, p1);
					rete__directory__pack(d, p2);
					same = memcmp(p1, p2, l1) == 0;
				}
				free(p1);
				free(p2);
			}
			b->dir_serial = old_serial;
		}
		if (old)
			rete__message__free_unpacked(old, NULL);
		if (le)
			rete__log_entry__free_unpacked(le, NULL);
		if (same) {
			broker_directory_free(&d);
			return RETE_OK;
		}
	}
	d->serial = serial;
	char id[64];
	snprintf(id, sizeof(id), "directory-%" PRIu64, serial);
	batch_reset(b->bt);
	broker_own *o = own_new(b, id, "", "");
	if (!o) {
		broker_directory_free(&d);
		return RETE_ENOMEM;
	}
	o->msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	o->msg.directory = d;
	rete_err err = RETE_EINVAL;
	if (own_append(b, o, rete_now_ms())) {
		err = commit_now(b);
		if (err == RETE_OK && b->bt->ops[0].status != RETE_STORE_ACCEPTED) {
			broker_log_error("the store refused directory %" PRIu64 ": %s", serial,
					 b->bt->ops[0].error_text);
			err = RETE_EINVAL;
		}
	}
	batch_reset(b->bt);
	if (err == RETE_OK) {
		b->dir_serial = serial;
		broker_log_info("logged directory %" PRIu64 " (%zu parties, %zu routes)", serial,
				b->cfg->nparties, b->cfg->nroutes);
		err = directory_load_cache(b);
	}
	return err;
}

/* --- ACK ----------------------------------------------------------------------------- */

/* ack_check verifies the recipient's signature on ACK a from f's party
 * (protocol 3): a SignedAck whose signature verifies with the party's key
 * in the directory in force, whose body names this log, this party, the
 * entry acked and the leaf hash stored for it, and whose error and text
 * the Ack repeats. An ACK of an entry the broker wrote (own: a Delivery, a
 * Notice, a Directory; broker_wrote) may come unsigned (protocol 4): nothing is logged
 * for it, and the connection's CURVE key says who acks; signed, it is
 * checked all the same. false when it does not check: f is refused
 * (broker_refuse) with ERROR_CODE_BAD_ACK and a sentence naming what was
 * wrong. */
/* ack_personal: does the refusal text of the ACK a, or of its signed body,
 * look like personal data (report s12, 4: it would go into the
 * DELIVERY_REFUSED notice the log keeps for ever, inside the recipient's
 * signature, so it cannot be cut out)? What was found is said in why
 * (never the value). */
static bool ack_personal(const Rete__Ack *a, const Rete__AckBody *body, char *why, size_t n)
{
	/* a received ACK with a text is refused as free text (below), whatever
	 * the text: that sentence does not quote it */
	if (a->error == 0 && body->error == 0)
		return false;
	return rete_personal_in_text(a->error_text, why, n) ||
	       rete_personal_in_text(body->error_text, why, n);
}

static bool ack_check(broker *b, broker_frame *f, const Rete__Ack *a, bool own)
{
	const Rete__ErrorCode bad = RETE__ERROR_CODE__ERROR_CODE_BAD_ACK;
	if (!a->signed_ && own)
		return true;
	if (!a->signed_) {
		broker_refuse(f, bad, "signed",
			      "the ACK of entry %" PRIu64
			      " is not signed; an agency's entry is acknowledged "
			      "with the recipient's SignedAck (AckBody signed with its key over "
			      "\"rete/ack/v1\"); only an entry the broker wrote is acknowledged "
			      "unsigned",
			      a->index);
		return false;
	}
	const Rete__SignedAck *sa = a->signed_;
	if (!f->sig_ok) { /* verify_job's verdict */
		if (sa->signature.len != RETE_SIG_LEN)
			broker_refuse(f, bad, "signed.signature",
				      "the ACK of entry %" PRIu64
				      " from %s carries a signature of %zu "
				      "bytes; an Ed25519 signature is %d bytes",
				      a->index, f->party, sa->signature.len, RETE_SIG_LEN);
		else
			broker_refuse(
			    f, bad, "signed.signature",
			    "the ACK of entry %" PRIu64 " from %s: its signature does not "
			    "verify with %s's key in the directory: it was signed by another "
			    "key, or its body was altered",
			    a->index, f->party, f->party);
		return false;
	}
	ProtobufCMessage *pm = NULL;
	rete_msg m;
	if (rete_pb_strict_unpack(&rete__ack_body__descriptor, sa->body.data, sa->body.len, &pm,
				  &m) != RETE_OK) {
		broker_refuse(f, bad, "signed.body",
			      "the ACK of entry %" PRIu64 " from %s: its signed body is not an "
			      "AckBody: %s",
			      a->index, f->party, m.text);
		return false;
	}
	Rete__AckBody *body = (Rete__AckBody *)pm;
	bool ok = false;
	uint8_t leaf[RETE_MERKLE_HASH];
	char pd[128];
	/* first: the sentences below (and the broker's log line) would quote
	 * the text */
	if (ack_personal(a, body, pd, sizeof(pd)))
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA,
			      "signed.body.errorText",
			      "the ACK of entry %" PRIu64 " refuses it with a text that looks like "
			      "personal data: %s. The log keeps a refusal's text for ever, so it "
			      "may hold no fiscal code, e-mail address, phone number or name: "
			      "acknowledge again with a text without them (the error code says "
			      "why; who is concerned is for the sender to ask). Nothing was "
			      "logged; the entry will be delivered again",
			      a->index, pd);
	else if (strcmp(body->origin, b->cfg->origin) != 0)
		broker_refuse(f, bad, "signed.body.origin",
			      "the signed ACK of entry %" PRIu64 " names log '%.64s', not this log "
			      "'%s'",
			      a->index, body->origin, b->cfg->origin);
	else if (strcmp(body->recipient, f->party) != 0)
		broker_refuse(f, bad, "signed.body.recipient",
			      "the signed ACK of entry %" PRIu64 " names recipient '%.64s', but "
			      "this connection is %s's",
			      a->index, body->recipient, f->party);
	else if (body->index != a->index)
		broker_refuse(f, bad, "signed.body.index",
			      "the signed ACK is for entry %" PRIu64 ", but the ACK is for entry "
			      "%" PRIu64 "; sign the index of the entry you acknowledge",
			      body->index, a->index);
	else if (body->error != a->error || strcmp(body->error_text, a->error_text) != 0)
		broker_refuse(f, bad, "error",
			      "the ACK of entry %" PRIu64 " says error %d ('%.64s') but its signed "
			      "body says error %d ('%.64s'); they must be equal",
			      a->index, (int)a->error, a->error_text, (int)body->error,
			      body->error_text);
	else if (a->error == 0 && body->error_text[0] != '\0')
		broker_refuse(f, bad, "signed.body.errorText",
			      "the ACK of entry %" PRIu64
			      " says the entry was received but carries "
			      "a text; the log would keep that free text for ever: a received ACK "
			      "has none (a refusal's reason goes with its error code)",
			      a->index);
	else if (a->error != 0 && !protobuf_c_enum_descriptor_get_value(
				      &rete__error_code__descriptor, (int)a->error))
		broker_refuse(f, bad, "error",
			      "the ACK of entry %" PRIu64 " says error %d, which is not an error "
			      "code of this protocol; refuse a delivery with a known code (e.g. "
			      "CANNOT_OPEN)",
			      a->index, (int)a->error);
	else if (rete_store_leaf_hash(b->store, NULL, a->index, leaf, &m) != RETE_OK)
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_BUSY, "",
			      "the broker cannot read the leaf hash of entry %" PRIu64 " (%s); "
			      "the entry will be delivered again",
			      a->index, m.text);
	else if (body->leaf_hash.len != RETE_MERKLE_HASH ||
		 sodium_memcmp(body->leaf_hash.data, leaf, RETE_MERKLE_HASH) != 0)
		broker_refuse(f, bad, "signed.body.leafHash",
			      "the signed ACK of entry %" PRIu64 " carries a leaf hash that is not "
			      "the hash of entry %" PRIu64 " as logged: it acknowledges other "
			      "bytes; hash the LogEntry bytes delivered",
			      a->index, a->index);
	else
		ok = true;
	rete__ack_body__free_unpacked(body, NULL);
	return ok;
}

/* own_ack puts a copy of the SignedAck sa in o, as Delivery.ack or
 * Notice.ack (o's body). false when out of memory. */
static bool own_ack(broker_own *o, const Rete__SignedAck *sa)
{
	o->ack_body = malloc(sa->body.len ? sa->body.len : 1);
	if (!o->ack_body)
		return false;
	memcpy(o->ack_body, sa->body.data, sa->body.len);
	memcpy(o->ack_sig, sa->signature.data, RETE_SIG_LEN);
	rete__signed_ack__init(&o->ack);
	o->ack.body.data = o->ack_body;
	o->ack.body.len = sa->body.len;
	o->ack.signature.data = o->ack_sig;
	o->ack.signature.len = RETE_SIG_LEN;
	return true;
}

/* ack_withdrawn answers the ACK a of an entry no longer queued for f's
 * party when the broker withdrew that entry at its expiry: the expiry scan
 * logged a not-delivered notice for it, found in the message-id index under
 * the broker's own id and "expired-INDEX" (a lookup and two reads, no scan
 * of the log). The agent wrote it too late: its sender was told it was not
 * delivered, and nothing is logged for this ACK. The agent is told so in a
 * signed refusal, EXPIRED, field "index", whose signed sentence begins
 * "entry INDEX (" (no message id: an agent older than this one takes it
 * as a refusal of a frame and logs it as a warning, touching none of its
 * own messages); the
 * broker's log says it at warning level (at most once a minute per party).
 * false, nothing said: not such an entry (a repeated ACK of an entry
 * delivered, or one never delivered). */
/* ack_names_logged: the ACK a is signed by this connection's party (the
 * verify pool's verdict) over the very bytes logged at its index (the
 * signed body's index and leaf hash). An ACK of another entry that once
 * had that index (an agent's unconfirmed ACK re-sent after a declared
 * restore) is not: the final read of session 17, finding 1. */
static bool ack_names_logged(broker *b, const broker_frame *f, const Rete__Ack *a)
{
	if (a->signed_ == NULL || !f->sig_ok)
		return false;
	ProtobufCMessage *pm = NULL;
	uint8_t leaf[RETE_MERKLE_HASH];
	bool ok = false;
	if (rete_pb_strict_unpack(&rete__ack_body__descriptor, a->signed_->body.data,
				  a->signed_->body.len, &pm, NULL) != RETE_OK)
		return false;
	const Rete__AckBody *body = (const Rete__AckBody *)pm;
	ok = body->index == a->index && body->leaf_hash.len == RETE_MERKLE_HASH &&
	     rete_store_leaf_hash(b->store, NULL, a->index, leaf, NULL) == RETE_OK &&
	     sodium_memcmp(body->leaf_hash.data, leaf, RETE_MERKLE_HASH) == 0;
	protobuf_c_message_free_unpacked(pm, NULL);
	return ok;
}

static bool ack_withdrawn(broker *b, broker_frame *f, const Rete__Ack *a)
{
	char nid[64];
	uint64_t at = 0;
	snprintf(nid, sizeof(nid), "expired-%" PRIu64, a->index);
	if (rete_store_msgid(b->store, NULL, b->cfg->id, nid, &at, NULL, NULL, NULL) != RETE_OK)
		return false;
	Rete__Message *notice = NULL, *msg = NULL;
	bool ours = false;
	if (read_message(b, NULL, at, &notice) == RETE_OK &&
	    notice->body_case == RETE__MESSAGE__BODY_NOTICE &&
	    notice->notice->kind == RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED &&
	    notice->notice->index == a->index && read_message(b, NULL, a->index, &msg) == RETE_OK)
		ours = strcmp(msg->recipient, f->party) == 0 && ack_names_logged(b, f, a);
	if (ours) {
		char when[32];
		/* the store fails the referral only when the entry withdrawn is
		 * the referral itself (plan_notice): an update or a note fails
		 * nothing, and the sentence says no more than that */
		bool referral = msg->body_case == RETE__MESSAGE__BODY_REFERRAL;
		broker_refuse(
		    f, RETE__ERROR_CODE__ERROR_CODE_EXPIRED, "index",
		    "entry %" PRIu64 " (%s %.64s from %s) was withdrawn at its expiry "
		    "(%s) before this ACK: its sender was told it was not delivered "
		    "(not-delivered notice, entry %" PRIu64 ", %s)%s; nothing is logged "
		    "for this ACK. Tell the sender that %s has it after all",
		    a->index, rete_message_kind(msg), msg->id, msg->sender, b->cfg->expiry, at,
		    rete_time_format(notice->created_at - notice->created_at % 1000, when),
		    referral ? " and the referral is failed there" : "", f->party);
		char key[RETE_ID_MAX + 48];
		snprintf(key, sizeof(key), "ACKs of withdrawn entries from %s", f->party);
		broker_log_limited(
		    RETE_LOG_WARNING, key,
		    "%s acked entry %" PRIu64 " (%s %.64s from %s) after it was "
		    "withdrawn at its expiry (not-delivered notice, entry %" PRIu64
		    "): its agent wrote it too late; refused (EXPIRED), nothing logged",
		    f->party, a->index, rete_message_kind(msg), msg->id, msg->sender, at);
		send_refusal(b, f, false);
	}
	if (notice)
		rete__message__free_unpacked(notice, NULL);
	if (msg)
		rete__message__free_unpacked(msg, NULL);
	return ours;
}

/* handle_ack takes a recipient's ACK of a queued entry: when its signature
 * checks (ack_check), the entry leaves the queue and the broker logs the
 * Delivery (or, with an error, the DELIVERY_REFUSED notice) carrying the
 * SignedAck. A bad ACK logs nothing: the agent is told why (BAD_ACK) and
 * the entry, still in flight, is delivered again after `redeliver`. */
static void handle_ack(broker *b, broker_frame *f, int64_t now)
{
	const Rete__Ack *a = f->cf->ack;
	broker_peer *p = broker_peer_find(b, f->party);
	/* Is it still queued for this party? Otherwise it is a repeated ACK. */
	uint64_t first = 0;
	size_t n = 0;
	if (rete_store_queue_peek(b->store, NULL, f->party, a->index, 1, &first, &n, NULL) !=
		RETE_OK ||
	    n == 0 || first != a->index) {
		if (p)
			inflight_remove(p, a->index);
		if (!ack_withdrawn(b, f, a))
			broker_log_debug("%s acked entry %" PRIu64 " again (or never had it)",
					 f->party, a->index);
		return;
	}
	const broker_batch *bt = b->bt;
	for (size_t i = 0; i < bt->nops; i++) /* the same ACK twice in one batch */
		if (bt->ops[i].kind == RETE_STORE_OP_ACK && bt->ops[i].in.index == a->index &&
		    strcmp(bt->ops[i].in.recipient, f->party) == 0)
			return;
	if (b->clock_hold) { /* nothing logged (clock_start): delivered again later */
		char at[32];
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_BUSY, "",
			      "the ACK of entry %" PRIu64
			      " waits: the broker's clock is behind the "
			      "newest entry of its log (%s)",
			      a->index, rete_time_format(b->clock_floor_ms, at));
		broker_log_limited(RETE_LOG_WARNING, "acks held: the clock behind the log",
				   "%s's ACK of entry %" PRIu64 " not taken: the clock is behind "
				   "the newest entry of the log (%s); the entry is delivered again",
				   f->party, a->index, at);
		send_refusal(b, f, false);
		return;
	}
	Rete__Message *msg = NULL;
	if (read_message(b, NULL, a->index, &msg) != RETE_OK) {
		broker_log_error("cannot read entry %" PRIu64 " acked by %s", a->index, f->party);
		return;
	}
	bool agency = !broker_wrote(msg);
	if (!ack_check(b, f, a, !agency)) {
		broker_log_warn("%s's ACK of entry %" PRIu64 " was not taken (nothing logged; the "
				"entry will be delivered again): %s",
				f->party, a->index, f->error_text);
		send_refusal(b, f, false);
		rete__message__free_unpacked(msg, NULL);
		return;
	}
	if (p)
		inflight_remove(p, a->index);
	rete_store_op *op = op_add(b, RETE_STORE_OP_ACK, NULL);
	if (!op) {
		rete__message__free_unpacked(msg, NULL);
		return;
	}
	op->in.recipient = p ? p->id : b->cfg->id; /* p is in the directory: checked */
	op->in.index = a->index;
	if (agency) {
		char id[64];
		broker_own *o;
		if (a->error == 0) {
			snprintf(id, sizeof(id), "delivery-%" PRIu64, a->index);
			o = own_new(b, id, msg->sender, msg->case_id);
			if (o) {
				snprintf(o->msg_id, sizeof(o->msg_id), "%s", msg->id);
				snprintf(o->ref_id, sizeof(o->ref_id), "%s",
					 rete_message_referral_id(msg));
				o->delivery.index = a->index;
				o->delivery.message_id = o->msg_id;
				o->delivery.referral_id = o->ref_id;
				o->delivery.delivered_at = now;
				if (own_ack(o, a->signed_))
					o->delivery.ack = &o->ack;
				o->msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
				o->msg.delivery = &o->delivery;
				own_append(b, o, now);
			}
		} else {
			Rete__ErrorCode code = a->error;
			if (!protobuf_c_enum_descriptor_get_value(&rete__error_code__descriptor,
								  (int)code))
				code =
				    RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN; /* unknown: say so */
			snprintf(id, sizeof(id), "refused-%" PRIu64, a->index);
			o = own_new(b, id, msg->sender, msg->case_id);
			if (o) {
				snprintf(o->msg_id, sizeof(o->msg_id), "%s", msg->id);
				snprintf(o->ref_id, sizeof(o->ref_id), "%s",
					 rete_message_referral_id(msg));
				/* the recipient's words go into the permanent log and
				 * onto the sender's terminal: escaped, and bounded */
				char why[301];
				const char *t =
				    a->error_text[0] ? a->error_text : "no reason given";
				rete_log_escape(why, sizeof(why), t, strlen(t));
				snprintf(o->text, sizeof(o->text),
					 "%s could not take message %s (entry %" PRIu64 "): %s",
					 f->party, msg->id, a->index, why);
				o->notice.kind = RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED;
				o->notice.index = a->index;
				o->notice.message_id = o->msg_id;
				o->notice.referral_id = o->ref_id;
				o->notice.error = code;
				o->notice.text = o->text;
				if (own_ack(o, a->signed_))
					o->notice.ack = &o->ack;
				o->msg.body_case = RETE__MESSAGE__BODY_NOTICE;
				o->msg.notice = &o->notice;
				own_append(b, o, now);
			}
			/* the code, not the recipient's words: a name the detector
			 * cannot tell from a word would be copied into one more
			 * file (they are in the notice, for those who may read it) */
			broker_log_warn(
			    "%s refused delivery of entry %" PRIu64 " (error %s); its "
			    "sentence is in the delivery-refused notice to %s",
			    f->party, a->index,
			    rete_enum_json_name(&rete__error_code__descriptor, (int)code),
			    msg->sender);
		}
	}
	rete__message__free_unpacked(msg, NULL);
	if (p)
		p->dirty = true;
}

/* --- HELLO, PING ---------------------------------------------------------------------- */

/* send_welcome sends WELCOME (who the party is, the log's origin, the
 * latest checkpoint, the Directory in force) to one connection. */
static void send_welcome(broker *b, const uint8_t *rid, size_t rid_len, const char *party,
			 Rete__PartyKind kind)
{
	Rete__Welcome w;
	rete__welcome__init(&w);
	w.party = (char *)party;
	w.kind = kind;
	w.origin = b->cfg->origin;
	w.epoch = b->epoch;
	if (b->cp_note)
		w.checkpoint = b->cp_note;
	w.directory_entry.data = b->dir_entry.data;
	w.directory_entry.len = b->dir_entry.len;
	/* the largest frame taken: an agent refuses a larger message itself,
	 * with a sentence, instead of being disconnected by ZeroMQ */
	w.max_frame = b->cfg->max_frame;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_WELCOME;
	bf.welcome = &w;
	broker_send(b, rid, rid_len, &bf);
}

static void copy_str(char *dst, size_t n, const char *s);

/* takeover_notice tells connection c of party p, which just lost the
 * deliveries to a connection from addr, in an unsolicited, signed refusal
 * with ERROR_CODE_TAKEN_OVER (protocol 5). Returns broker_send's verdict;
 * on success c->taken_seq numbers the notice (a PONG past it proves c
 * alive after it: broker_peer_contest). */
static int takeover_notice(broker *b, broker_peer *p, broker_conn *c, const char *addr, int64_t now)
{
	broker_frame t;
	memset(&t, 0, sizeof(t));
	copy_str(t.party, sizeof(t.party), p->id);
	t.authed = true;
	t.error = RETE__ERROR_CODE__ERROR_CODE_TAKEN_OVER;
	copy_str(t.field, sizeof(t.field), "hello");
	char when[32];
	rete_time_format(now - now % 1000, when);
	snprintf(t.error_text, sizeof(t.error_text),
		 "another connection with the key of %s (from %s) said HELLO at %s and takes %s's "
		 "deliveries now; this connection gets none while that one is connected. Two "
		 "agents must not run with one "
		 "key (an old machine still running, a copy of the key, a restored backup): stop "
		 "the one that should not run, then restart the other",
		 p->id, addr[0] ? addr : "an address ZeroMQ does not say", when, p->id);
	/* not counted as a refusal: it answers no request, and a line that
	 * failed gets it too (rete_broker_agency_takeovers_answered_total
	 * counts those the told connection answers) */
	Rete__Receipt r;
	rete__receipt__init(&r);
	r.error = t.error;
	r.error_text = t.error_text;
	r.field = t.field;
	Rete__SignedRefusal sr;
	rete__signed_refusal__init(&sr);
	if (refusal_sign(b, &t, &sr))
		r.signed_refusal = &sr;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_REFUSAL;
	bf.refusal = &r;
	int rc = broker_send(b, c->rid, c->rid_len, &bf);
	rete_signed_refusal_clear(&sr);
	if (rc == 0)
		c->taken_seq = ++b->send_seq;
	return rc;
}

/* takeover follows a HELLO from addr that took p's deliveries from old, a
 * connection that said a plain HELLO: old is told (takeover_notice). One
 * the ROUTER no longer knows is dropped quietly (an agent restarted after
 * a crash: an info line when say, as the HELLO's own line, else counted
 * with the HELLOs held back, a debug line).
 * One it still knows may be a live agent or a line that failed and that
 * ZeroMQ has not yet given up on (a send to it succeeds until then):
 * nothing is counted nor warned of until it answers (takeover_proven); a
 * note says so, once a minute at most per agency. */
static void takeover(broker *b, broker_peer *p, const broker_conn *old, const char *addr, bool say)
{
	int k = conn_find(p, old->rid, old->rid_len);
	if (k <= 0)
		return;
	int64_t now = rete_now_ms();
	broker_conn *c = &p->conns[k];
	int rc = takeover_notice(b, p, c, addr, now);
	if (rc == EHOSTUNREACH) {
		c->told = false; /* said here, once */
		conn_lost(b, p, (size_t)k);
		if (!say)
			p->gone_held++; /* with the HELLO held back */
		(say ? broker_log_info : broker_log_debug)(
		    "%s's new connection (from %s) takes its deliveries; the one before "
		    "is gone (an agent restarted)%s",
		    p->id, addr[0] ? addr : "?",
		    say ? "" : " (counted: held back with its HELLOs)");
		return;
	}
	c->told = rc == 0; /* not when its queue is full: it was not told */
	c->displaced = false;
	/* it stands by from now on, as the told agent does (its next HELLO
	 * says so): told once, and no HELLO with standby waits behind it
	 * should it get the deliveries back when the other one goes */
	c->standby = true;
	copy_str(c->taker, sizeof(c->taker), addr);
	int64_t mono = mono_ms();
	bool note = c->told && (!p->note_ms || mono - p->note_ms >= BROKER_WARN_MS);
	if (note)
		p->note_ms = mono;
	(note ? broker_log_info : broker_log_debug)(
	    "%s's new connection (from %s) takes its deliveries; the one before (from %s) is "
	    "still listed: told; if it answers, two agents run with this key",
	    p->id, addr[0] ? addr : "?", c->addr[0] ? c->addr : "?");
}

/* takeover_proven: c, told it lost p's deliveries, is alive after the
 * notice (it answered a PING sent after it, or said HELLO again): two
 * agents run with p's key. Counted (rete_broker_agency_takeovers_answered_total,
 * the 3-within-an-hour rule of broker_peer_contest) and warned of, one
 * line a minute at most per agency (the others counted in the next one). */
static void takeover_proven(broker_peer *p, broker_conn *c)
{
	c->told = false;
	p->takeovers++;
	int64_t now = mono_ms();
	memmove(&p->takeover_ms[1], &p->takeover_ms[0],
		(BROKER_FIGHTS - 1) * sizeof(p->takeover_ms[0]));
	p->takeover_ms[0] = now;
	uint64_t held;
	if (!rete_ratewin_admit(&p->warn, BROKER_WARN_MS, now, &held))
		return;
	char more[128] = "";
	if (held)
		snprintf(more, sizeof(more),
			 " (and %" PRIu64 " more such take-overs since the last line like this, "
			 "not logged)",
			 held);
	broker_log_warn("%s: the connection from %s, which a new connection with its key (from "
			"%s) took the deliveries from, answered after it was told: two agents "
			"are running with the key of %s (an old machine, a copy of the key, a "
			"restored backup)%s",
			p->id, c->addr[0] ? c->addr : "?", c->taker[0] ? c->taker : "?", p->id,
			more);
}

bool broker_peer_contest(const broker_peer *p, char *text, size_t len)
{
	/* on every turn of the loop with metrics on, for every agency: the
	 * common case (one connection, never a fight) without the clock */
	if (p->nconns < 2 && p->takeover_ms[BROKER_FIGHTS - 1] == 0)
		return false;
	/* a fight first: the sentence that says the most */
	int64_t now = mono_ms();
	size_t recent = 0;
	for (size_t i = 0; i < BROKER_FIGHTS; i++)
		recent += p->takeover_ms[i] && now - p->takeover_ms[i] < BROKER_FIGHT_MS;
	if (recent >= BROKER_FIGHTS) {
		if (text)
			snprintf(
			    text, len,
			    "%s: two connections took its deliveries from each other %zu times "
			    "within %d min: two agents run with its key and say HELLO in turn; "
			    "stop the one that should not run, then restart the other",
			    p->id, recent, BROKER_FIGHT_MS / 60000);
		return true;
	}
	for (size_t i = 1; i < p->nconns; i++) {
		if (!p->conns[i].displaced)
			continue;
		if (text)
			snprintf(text, len,
				 "%s: two connections hold its key: deliveries go to the one from "
				 "%s; the one from %s, behind it, answers too (two agents "
				 "running with one key? an old machine, a copy of the "
				 "key, a restored backup): stop the one that should not run, then "
				 "restart the other",
				 p->id, p->conns[0].addr[0] ? p->conns[0].addr : "?",
				 p->conns[i].addr[0] ? p->conns[i].addr : "?");
		return true;
	}
	return false;
}

/* The "hello from" line of an agency: id, kind, software (at most 64
 * bytes of it) and, standing by, HELLO_STANDBY; HELLO_TEXT_MAX holds the
 * longest (kind names are shorter than 32 bytes), so it is never cut. */
#define HELLO_STANDBY  ", standing by: another connection takes its deliveries"
#define HELLO_TEXT_MAX (sizeof("hello from  (, )") + RETE_ID_MAX + 32 + 64 + sizeof(HELLO_STANDBY))

static void hello_text(char line[HELLO_TEXT_MAX], const char *id, Rete__PartyKind kind,
		       const char *software, bool standby)
{
	snprintf(line, HELLO_TEXT_MAX, "hello from %s (%s, %.64s)%s", id, broker_kind_name(kind),
		 software, standby ? HELLO_STANDBY : "");
}

/* held_words: "1 more HELLO", "57 more HELLOs and 3 delivery connections
 * gone", "1 delivery connection gone" (a zero part left out). */
#define HELD_WORDS_MAX 96
static void held_words(char words[HELD_WORDS_MAX], uint64_t hellos, uint64_t gone)
{
	char h[40] = "", g[56] = "";
	if (hellos)
		snprintf(h, sizeof(h), "%" PRIu64 " more HELLO%s", hellos, hellos == 1 ? "" : "s");
	if (gone)
		snprintf(g, sizeof(g), "%" PRIu64 " delivery connection%s gone", gone,
			 gone == 1 ? "" : "s");
	snprintf(words, HELD_WORDS_MAX, "%s%s%s", h, hellos && gone ? " and " : "", g);
}

static void handle_hello(broker *b, broker_frame *f)
{
	const Rete__Hello *h = f->cf->hello;
	if (h->party[0] && strcmp(h->party, f->party) != 0) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_SENDER_MISMATCH, "party",
			      "HELLO says '%.64s' but this connection is authenticated as '%s' "
			      "(by its key); say HELLO as %s",
			      h->party, f->party, f->party);
		send_refusal(b, f, false);
		return;
	}
	broker_peer *p = broker_peer_find(b, f->party);
	bool agency = broker_kind_is_agency(f->who->kind);
	/* an agency's HELLO at info, one a minute (hellos_sweep) */
	uint64_t held = 0;
	bool say =
	    agency && (!p || rete_ratewin_admit(&p->hello, BROKER_WARN_MS, mono_ms(), &held));
	if (p) {
		/* The newest plain HELLO takes over: what was in flight on the
		 * old connection is sent again here. The others stay listed: if
		 * this one goes away, the next one listed takes over again. A
		 * connection that loses the deliveries while alive is told
		 * (protocol 5; takeover). */
		char peer[RETE_PEER_ADDR_MAX];
		const char *addr = rete_endpoint_peer_text(
		    f->has_body ? zmq_msg_gets(&f->body, "Peer-Address") : NULL, peer,
		    sizeof(peer));
		broker_conn old = {0};
		bool had = p->nconns > 0;
		if (had)
			old = p->conns[0];
		/* a told connection that says HELLO again is alive after it */
		int at = conn_find(p, f->rid, f->rid_len);
		if (at > 0 && p->conns[at].told)
			takeover_proven(p, &p->conns[at]);
		if (conn_hello(b, p, f->rid, f->rid_len, h->standby, addr))
			inflight_restart(p);
		if (agency && had && !old.standby && !h->standby && p->conns[0].rid_len &&
		    conn_find(p, old.rid, old.rid_len) > 0)
			takeover(b, p, &old, addr, say);
	}
	send_welcome(b, f->rid, f->rid_len, f->party, f->who->kind);
	/* every `rete monitor`, `health` or `report` says HELLO: routine */
	if (!agency) {
		broker_log_debug("hello from %s (%s, %.64s)", f->party,
				 broker_kind_name(f->who->kind), h->software);
		return;
	}
	char line[HELLO_TEXT_MAX];
	hello_text(line, f->party, f->who->kind, h->software, h->standby);
	if (p) {
		copy_str(p->last_software, sizeof(p->last_software), h->software);
		p->last_kind = f->who->kind;
		p->last_standby = h->standby;
		p->last_hello_ms = rete_now_ms();
	}
	if (!say) {
		/* counted, said at the window's end (hellos_sweep) */
		broker_log_debug("%s (held back: HELLOs from %s are logged once a minute)", line,
				 f->party);
		return;
	}
	char more[HELD_WORDS_MAX + 64] = "";
	if (p && (held || p->gone_held)) {
		char words[HELD_WORDS_MAX];
		held_words(words, held, p->gone_held);
		snprintf(more, sizeof(more), " (in the minute before: %s, not logged)", words);
	}
	if (p)
		p->gone_held = 0;
	broker_log_info("%s%s", line, more);
}

/* hello_said writes p's count line: hellos HELLOs and p->gone_held
 * delivery connections lost not logged one by one, the latest HELLO, and
 * whether p is connected now. */
static void hello_said(broker_peer *p, uint64_t hellos, bool stopping)
{
	char words[HELD_WORDS_MAX], when[32], line[HELLO_TEXT_MAX];
	held_words(words, hellos, p->gone_held);
	rete_time_format(p->last_hello_ms - p->last_hello_ms % 1000, when);
	hello_text(line, p->id, p->last_kind, p->last_software, p->last_standby);
	/* several HELLOs within a minute are a loop; one is a reconnect */
	const char *why = hellos > 1 ? "not logged one by one (a line that fails and comes back, "
				       "an agent restarting in a loop, or two agents with its key)"
			  : hellos   ? "not logged at once (one HELLO line a minute per agency; a "
				       "single reconnect, not a loop)"
				     : "not logged one by one";
	if (p->nconns)
		broker_log_info("%s: %s in the last minute, %s; the latest HELLO, at %s: %s; %s "
				"(deliveries go to its connection from %s)",
				p->id, words, why, when, line,
				stopping ? "connected when the broker stopped" : "connected now",
				p->conns[0].addr[0] ? p->conns[0].addr : "?");
	else
		broker_log_info("%s: %s in the last minute, %s; the latest HELLO, at %s: %s; %s",
				p->id, words, why, when, line,
				stopping ? "no connection when the broker stopped"
					 : "no connection now: deliveries wait for its next HELLO");
	p->gone_held = 0;
}

/* hellos_sweep says, for each agency whose HELLO window ended with lines
 * held back, how many, the latest HELLO and whether the agency is
 * connected now (hello_said): so the operator of a flapping agency sees
 * where it stands within a minute. The window goes on from the latest
 * HELLO held (rete_ratewin_ended): a loop that goes on writes a line a
 * minute, and a HELLO after a quiet minute is said at once. */
static void hellos_sweep(broker *b, int64_t now)
{
	for (size_t i = 0; i < b->npeers; i++) {
		broker_peer *p = &b->peers[i];
		uint64_t held;
		if (rete_ratewin_ended(&p->hello, BROKER_WARN_MS, now, true, &held) &&
		    (held || p->gone_held))
			hello_said(p, held, false);
	}
}

/* hush_flush says, as the broker stops, every count not said yet: the
 * HELLOs and delivery connections lost of each agency (hello_said) and
 * the take-over warnings held back; then those of broker_log_limited. */
static void hush_flush(broker *b)
{
	for (size_t i = 0; i < b->npeers; i++) {
		broker_peer *p = &b->peers[i];
		uint64_t held = rete_ratewin_flush(&p->hello);
		if (held || p->gone_held)
			hello_said(p, held, true);
		held = rete_ratewin_flush(&p->warn);
		if (held)
			broker_log_warn(
			    "%s: %" PRIu64 " more take-over%s answered since the last "
			    "warning about two agents with its key, not logged one by one",
			    p->id, held, held == 1 ? "" : "s");
	}
	refused_held_say(rete_ratewin_flush(&b->refused_win), true);
	broker_log_limited_flush();
}

static void send_pong(broker *b, broker_frame *f)
{
	Rete__Pong pong;
	rete__pong__init(&pong);
	pong.nonce = f->cf->ping->nonce;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_PONG;
	bf.pong = &pong;
	broker_send(b, f->rid, f->rid_len, &bf);
}

/* ping_peer pings every connection listed for p, dropping those the
 * ROUTER no longer knows (conn_lost). Each PING has a random nonce and a
 * send number: its PONG says how far that connection has read. */
static void ping_peer(broker *b, broker_peer *p)
{
	for (size_t j = p->nconns; j-- > 0;) {
		broker_conn *c = &p->conns[j];
		Rete__Ping ping;
		rete__ping__init(&ping);
		randombytes_buf(&ping.nonce, sizeof(ping.nonce));
		Rete__BrokerFrame bf;
		rete__broker_frame__init(&bf);
		bf.command_case = RETE__BROKER_FRAME__COMMAND_PING;
		bf.ping = &ping;
		int rc = broker_send(b, c->rid, c->rid_len, &bf);
		if (rc == EHOSTUNREACH)
			conn_lost(b, p, j);
		else if (rc == 0) {
			/* the one before stays good: a PONG may come after the next
			 * PING went out */
			c->ping_nonce[1] = c->ping_nonce[0];
			c->ping_seq[1] = c->ping_seq[0];
			c->ping_nonce[0] = ping.nonce;
			c->ping_seq[0] = ++b->send_seq;
		}
	}
}

/* handle_pong notes how far the connection that answered has read. */
static void handle_pong(broker *b, broker_frame *f)
{
	broker_peer *p = broker_peer_find(b, f->party);
	int at = p ? conn_find(p, f->rid, f->rid_len) : -1;
	if (at < 0)
		return;
	broker_conn *c = &p->conns[at];
	for (int k = 0; k < 2; k++)
		if (c->ping_seq[k] && f->cf->pong->nonce == c->ping_nonce[k] &&
		    c->ping_seq[k] + 1 > c->read_seq)
			c->read_seq = c->ping_seq[k] + 1;
	/* alive behind another connection (a told one read the notice):
	 * counted once */
	if (c->taken_seq && c->read_seq > c->taken_seq && !c->displaced) {
		c->displaced = true;
		if (c->told)
			takeover_proven(p, c);
	}
}

static void ping_peers(broker *b)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i].nconns)
			ping_peer(b, &b->peers[i]);
	pump_dirty_now(b);
}

/* --- reading a batch ---------------------------------------------------------------------- */

/* hex_eq: is hex the lowercase hex of p's key (as zap.c writes it with
 * sodium_bin2hex)? Against the hex the configuration made once
 * (broker_party.keyhex): it runs for every frame. */
static bool hex_eq(const char *hex, const broker_party *p)
{
	return hex && strcmp(hex, p->keyhex) == 0;
}

/* fd_note remembers that party's frames come on file descriptor fd, so
 * that a disconnection ZeroMQ reports by fd (a frame over max_frame among
 * them) can be logged with the party's name. */
/* copy_str copies s into dst (n bytes), cut to fit and terminated: what
 * snprintf(dst, n, "%s", s) gives, without its formatting machinery on
 * the path of every frame. */
static void copy_str(char *dst, size_t n, const char *s)
{
	size_t l = strnlen(s, n - 1);
	memcpy(dst, s, l);
	dst[l] = '\0';
}

static void fd_note(broker *b, int fd, const char *party)
{
	if (fd < 0 || fd >= 1 << 20)
		return;
	if ((size_t)fd >= b->nfd_party) {
		size_t n = (size_t)fd + 64;
		char(*t)[RETE_ID_MAX + 1] = realloc(b->fd_party, n * sizeof(*t));
		if (!t)
			return;
		memset(t + b->nfd_party, 0, (n - b->nfd_party) * sizeof(*t));
		b->fd_party = t;
		b->nfd_party = n;
	}
	if (strcmp(b->fd_party[fd], party) != 0)
		copy_str(b->fd_party[fd], sizeof(b->fd_party[fd]), party);
}

/* frame_admit checks the frame body from f->rid (extra: the parts after
 * it, dropped) and decodes it into f->cf: the sender is a party of the
 * directory, with the key the directory holds, the frame is one part, a
 * ClientFrame of our protocol version carrying a command. false when f is
 * refused (broker_refuse); the caller answers it. body is f->body: f->cf
 * may point into it. */
static bool frame_admit(broker *b, broker_frame *f, zmq_msg_t *body, size_t extra)
{
	const char *user = zmq_msg_gets(body, "User-Id");
	const char *keyhex = zmq_msg_gets(body, BROKER_ZAP_KEY_PROPERTY);
	copy_str(f->party, sizeof(f->party), user ? user : "");
	f->who = broker_config_party(b->cfg, f->party);
	if (!f->who) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_PARTY, "",
			      "party '%s' is not in the broker's directory (any more); ask the "
			      "network's operator to add it",
			      f->party);
		return false;
	}
	if (!hex_eq(keyhex, f->who)) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_NOT_AUTHORIZED, "",
			      "this connection authenticated with a key that is no longer %s's "
			      "key in the directory; reconnect with the current key",
			      f->party);
		return false;
	}
	f->authed = true; /* its key is the directory's: refusals are signed */
	broker_peer *p = broker_peer_find(b, f->party);
	if (p)
		p->last_seen_ms = rete_now_ms();
	fd_note(b, zmq_msg_get(body, ZMQ_SRCFD), f->party);
	if (extra) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_MALFORMED, "",
			      "a message of %zu parts; send one protobuf ClientFrame per ZeroMQ "
			      "message",
			      extra + 1);
		return false;
	}
	rete_msg m;
	/* a SUBMIT's bytes fields point into body, which the frame keeps */
	rete_err err =
	    rete_client_frame_decode(zmq_msg_data(body), zmq_msg_size(body), f->arena, &f->cf, &m);
	if (err != RETE_OK) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_MALFORMED, "",
			      "a %zu-byte frame that is not a ClientFrame: %s", zmq_msg_size(body),
			      m.text);
		return false;
	}
	if (f->cf->version != RETE_PROTOCOL_VERSION) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_VERSION, "version",
			      "protocol version %u is not spoken here; this broker speaks version "
			      "%d",
			      f->cf->version, RETE_PROTOCOL_VERSION);
		return false;
	}
	if (f->cf->command_case == RETE__CLIENT_FRAME__COMMAND__NOT_SET) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_MALFORMED, "command",
			      "the frame carries no command; send hello, submit, ack, ping, pong "
			      "or query");
		return false;
	}
	return true;
}

/* read_frame receives one ROUTER message into f; false when none is
 * waiting. Frames refused at this stage are answered here. */
static bool read_frame(broker *b, broker_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->op = -1;
	f->arena = &b->bt->arena; /* f is one of b->bt's frames */
	zmq_msg_t rid;
	zmq_msg_init(&rid);
	if (zmq_msg_recv(&rid, b->router, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&rid);
		return false;
	}
	size_t rl = zmq_msg_size(&rid);
	if (rl > BROKER_RID_MAX)
		rl = BROKER_RID_MAX;
	memcpy(f->rid, zmq_msg_data(&rid), rl);
	f->rid_len = rl;
	bool more = zmq_msg_more(&rid);
	zmq_msg_close(&rid);
	/* received into the frame, which keeps it until the batch is answered:
	 * the decoded SUBMIT points into it */
	zmq_msg_t *body = &f->body;
	zmq_msg_init(body);
	f->has_body = true;
	if (!more || zmq_msg_recv(body, b->router, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(body);
		f->has_body = false;
		return true; /* nothing to answer */
	}
	size_t extra = 0;
	while (zmq_msg_more(body)) { /* one frame per message: drop the rest */
		zmq_msg_t x;
		zmq_msg_init(&x);
		if (zmq_msg_recv(&x, b->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&x);
			break;
		}
		extra++;
		bool m2 = zmq_msg_more(&x);
		zmq_msg_close(&x);
		if (!m2)
			break;
	}
	if (!frame_admit(b, f, body, extra)) {
		send_refusal(b, f, false);
		f->who = NULL;
		zmq_msg_close(body); /* answered: nothing reads it any more */
		f->has_body = false;
	}
	return true;
}

/* frame_clear forgets what f holds (its batch is being answered). */
static void frame_clear(broker_frame *f)
{
	rete_buf_free(&f->proof);
	/* cf, sm and msg live in the batch's arena: batch_reset frees them;
	 * a SUBMIT's bytes in the body */
	if (f->has_body)
		zmq_msg_close(&f->body);
	f->has_body = false;
	f->cf = NULL;
	f->sm = NULL;
	f->msg = NULL;
}

static void verify_job(void *ctx, size_t i)
{
	broker_frame **jobs = ctx;
	broker_frame *f = jobs[i];
	if (f->cf->command_case == RETE__CLIENT_FRAME__COMMAND_ACK) {
		/* the recipient's signature on its ACK (ack_check reads the rest) */
		const Rete__SignedAck *sa = f->cf->ack->signed_;
		f->sig_ok = sa->signature.len == RETE_SIG_LEN &&
			    rete_verify_bytes(sa->signature.data, RETE_CTX_ACK, sa->body.data,
					      sa->body.len, &f->who->key) == RETE_OK;
		return;
	}
	f->sig_ok = rete_signed_verify(f->sm, &f->who->key, NULL) == RETE_OK;
}

/* verify_cpu_add adds the thread CPU a run of verifications took
 * (pool.h), on whichever thread ran them. */
static void verify_cpu_add(void *ctx, uint64_t ns)
{
	broker_metrics_add(ctx, BM_VERIFY_CPU_NS, ns);
}

/* store_field names the field a store refusal is about. */
static const char *store_field(const Rete__Message *msg, Rete__ErrorCode code)
{
	bool update = msg->body_case == RETE__MESSAGE__BODY_UPDATE;
	switch (code) {
	case RETE__ERROR_CODE__ERROR_CODE_ID_REUSED:
		return "id";
	case RETE__ERROR_CODE__ERROR_CODE_LIFECYCLE:
		return "update.status";
	case RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_REFERRAL:
		return update ? "update.referralId" : "note.referralId";
	case RETE__ERROR_CODE__ERROR_CODE_NOT_AUTHORIZED:
		return "sender";
	default:
		return "";
	}
}

/* resent: is this SUBMIT the very message already logged under its
 * (sender, id)? Agents resend until they get a receipt (after a crash,
 * thousands at once); those need no signature check, and no policy check
 * either: the answer is the original receipt even if the directory changed
 * since, and nothing of this frame is logged. The store still decides
 * (DUPLICATE). */
static bool resent(broker *b, rete_store_rtxn **rt, const broker_frame *f)
{
	uint8_t have[RETE_HASH_LEN], got[RETE_HASH_LEN];
	/* one read transaction for the batch's lookups (begun at the first;
	 * if it cannot be, each lookup begins its own) */
	if (*rt == NULL)
		rete_store_read_begin(b->store, rt, NULL);
	if (rete_store_msgid(b->store, *rt, f->msg->sender, f->msg->id, NULL, have, NULL, NULL) !=
	    RETE_OK)
		return false;
	rete_sha256(got, f->sm->message.data, f->sm->message.len);
	return sodium_memcmp(have, got, RETE_HASH_LEN) == 0;
}

static bool clock_holds(broker *b, broker_frame *f);

/* timestamp_refuses refuses f (ERROR_CODE_NO_TIMESTAMP) while a checkpoint
 * has waited for its time-stamp token longer than timestamp_grace
 * (timestamp.h); a resend of what is logged still gets its receipt. */
static bool timestamp_refuses(broker *b, broker_frame *f)
{
	char text[1536];
	if (!broker_tsa_refusal(b->tsa, text, sizeof(text)))
		return false;
	broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_NO_TIMESTAMP, "", "message %.64s: %s",
		      f->msg->id, text);
	broker_log_limited(RETE_LOG_WARNING, "submissions refused: no time-stamp token",
			   "submission %.64s of %s refused: %s", f->msg->id, f->party, text);
	return true;
}

/* storage_full_note keeps what health tells of a store that cannot write:
 * a commit of submissions that failed as storage full (they were refused)
 * starts or continues the spell, one that went through ends it. writes is
 * the number of the batch's frames that wrote (an op in the commit),
 * counted by batch_answer in its own walk of the frames: the per-batch
 * path walks them once. */
static void storage_full_note(broker *b, uint64_t writes, rete_err err)
{
	if (writes == 0) /* queries only: nothing was written, nothing learnt */
		return;
	if (err == RETE_OK) {
		b->full_since_ms = 0;
		b->full_refused = 0;
	} else if (err == RETE_EFULL) {
		if (b->full_since_ms == 0)
			b->full_since_ms = rete_now_ms();
		b->full_refused += writes;
	}
}

/* batch_answer answers bt on the main thread once its commit is done:
 * receipts and refusals, then the queries of the batch (which see its
 * entries), then the deliveries. */
static void batch_answer(broker *b, broker_batch *bt)
{
	rete_err err = batch_logged(b, bt);
	uint64_t writes = 0;
	for (size_t i = 0; i < bt->n; i++) {
		broker_frame *f = &bt->frames[i];
		if (f->op < 0)
			continue;
		writes++;
		const rete_store_op *op = &bt->ops[f->op];
		if (err != RETE_OK) {
			broker_refuse(f,
				      err == RETE_EFULL ? RETE__ERROR_CODE__ERROR_CODE_STORAGE_FULL
							: RETE__ERROR_CODE__ERROR_CODE_BUSY,
				      "",
				      "the broker could not log message %.64s (%s); nothing was "
				      "logged, send it again later",
				      f->msg->id, rete_strerror(err));
			send_refusal(b, f, true);
		} else if (op->status == RETE_STORE_ACCEPTED ||
			   op->status == RETE_STORE_DUPLICATE) {
			broker_metrics_add(
			    b->metrics,
			    op->status == RETE_STORE_ACCEPTED ? BM_ACCEPTED : BM_DUPLICATE, 1);
			if (!f->receipted) {
				send_receipt(b, bt, f);
				broker_metrics_observe(b->metrics, BH_RECEIPT,
						       broker_metrics_now_us() - bt->read_us, 1);
			}
			if (op->status == RETE_STORE_DUPLICATE)
				broker_log_info("%s sent %s again: the original receipt (index "
						"%" PRIu64 ") was sent again",
						f->party, f->msg->id, op->index);
		} else {
			broker_refuse(f,
				      op->error ? op->error : RETE__ERROR_CODE__ERROR_CODE_INVALID,
				      store_field(f->msg, op->error), "%s", op->error_text);
			send_refusal(b, f, true);
		}
	}
	/* before the queries below: a health query in this batch sees it */
	storage_full_note(b, writes, err);
	if (err != RETE_OK) { /* the ACKs of this batch were not recorded */
		acks_unlogged(b, bt);
		parked_unattached(b, bt);
	}
	for (size_t i = 0; i < bt->n; i++) {
		broker_frame *f = &bt->frames[i];
		if (f->who && f->cf && f->cf->command_case == RETE__CLIENT_FRAME__COMMAND_QUERY)
			broker_answer_query(b, f);
		frame_clear(f);
	}
	batch_reset(bt);
	pump_dirty(b);
}

/* pipe_collect waits for the batch in flight, if any, and answers it:
 * afterwards the store holds everything the broker has accepted, and the
 * main thread may commit itself. */
static void pipe_collect(broker *b)
{
	if (!b->fly)
		return;
	broker_worker_wait(b->worker);
	broker_batch *bt = b->fly;
	b->fly = NULL;
	batch_answer(b, bt);
}

/* catch_up: a batch receipted from the store's journal whose LMDB commit
 * failed (rete_store_commit_durable) goes into LMDB before anything reads
 * or writes the store (each batch, each second's scan); the log says why
 * it could not, once a minute, and when it could. Its recipients' queues
 * are read again then. */
static void catch_up(broker *b)
{
	rete_msg m;
	if (!b->behind) {
		if (!rete_store_behind(b->store, &m))
			return;
		b->behind = true;
		b->behind_said_ms = mono_ms();
		broker_log_error("the store could not commit a batch already receipted: %s; it is "
				 "in the store's journal (durable) and goes into the store as soon "
				 "as it can be written; until then it is not delivered",
				 m.text);
	}
	if (rete_store_catch_up(b->store, &m) != RETE_OK) {
		if (mono_ms() - b->behind_said_ms >= 60000) {
			b->behind_said_ms = mono_ms();
			broker_log_error("a batch receipted from the store's journal is still not "
					 "in the store: %s",
					 m.text);
		}
		return;
	}
	b->behind = false;
	broker_log_info("the batch receipted from the store's journal is in the store now");
	for (size_t i = 0; i < b->npeers; i++)
		b->peers[i].dirty = true;
	acks_resume(b);
}

/* run_batch reads what is waiting and takes it through the pipeline. The
 * batch before may still be committing: its commit overlaps this batch's
 * reading and verification, and it is answered before this batch's checks,
 * which read what it logged (lifecycle, dedup, queues). */
static void run_batch(broker *b, broker_frame **jobs)
{
	broker_batch *bt = b->bt;
	broker_frame *frames = bt->frames;
	size_t n = 0;
	while (n < BROKER_BATCH_MAX && read_frame(b, &frames[n]))
		n++;
	if (n == 0)
		return;
	bt->n = n;
	bt->read_us = broker_metrics_now_us();
	int64_t now = rete_now_ms();
	if (b->fly == NULL)
		catch_up(b);

	/* 1. what needs no signature; HELLO and PING are answered at once */
	size_t njobs = 0;
	rete_store_rtxn *rt = NULL;
	for (size_t i = 0; i < n; i++) {
		broker_frame *f = &frames[i];
		if (!f->who || !f->cf)
			continue;
		switch (f->cf->command_case) {
		case RETE__CLIENT_FRAME__COMMAND_HELLO:
			handle_hello(b, f);
			break;
		case RETE__CLIENT_FRAME__COMMAND_PING:
			send_pong(b, f);
			break;
		case RETE__CLIENT_FRAME__COMMAND_PONG:
			handle_pong(b, f);
			break;
		case RETE__CLIENT_FRAME__COMMAND_ACK:
			if (f->cf->ack->signed_) /* its signature, with the batch's */
				jobs[njobs++] = f;
			break;
		case RETE__CLIENT_FRAME__COMMAND_SUBMIT:
			broker_submit_precheck(b, f);
			/* a resend of what the batch in flight logs is not seen
			 * here: it is verified and checked, and the store answers
			 * DUPLICATE all the same */
			if (f->pending && resent(b, &rt, f))
				f->resent = true; /* no checks: the original receipt */
			else if (f->pending && (clock_holds(b, f) || timestamp_refuses(b, f)))
				send_refusal(b, f, true);
			else if (f->pending)
				jobs[njobs++] = f;
			else
				send_refusal(b, f, f->msg != NULL);
			break;
		default:
			break;
		}
	}
	rete_store_read_end(&rt);
	/* 2. the signatures of the whole batch, on the verify pool's threads,
	 * while this thread answers the batch before once it is committed */
	broker_pool_begin(b->pool, njobs, verify_job, jobs);
	if (njobs) {
		broker_metrics_add(b->metrics, BM_VERIFY_BATCHES, 1);
		broker_metrics_add(b->metrics, BM_VERIFIED, njobs);
	}
	pipe_collect(b);
	if (b->state_due) /* the checkpoint the batch before stored */
		checkpoint_state(b);
	broker_pool_end(b->pool);

	/* 3. the checks after the signature, then the ops, in frame order */
	for (size_t i = 0; i < n; i++) {
		broker_frame *f = &frames[i];
		if (!f->who || !f->cf)
			continue;
		if (f->cf->command_case == RETE__CLIENT_FRAME__COMMAND_ACK) {
			handle_ack(b, f, now);
			continue;
		}
		if (f->cf->command_case != RETE__CLIENT_FRAME__COMMAND_SUBMIT || !f->pending)
			continue;
		if (!f->resent)
			broker_submit_check(b, f, f->cf->submit);
		if (!f->pending) {
			send_refusal(b, f, true);
			continue;
		}
		rete_store_op *op = op_add(b, RETE_STORE_OP_APPEND, f->msg);
		if (!op) {
			broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL, "",
				      "the broker is out of memory; try again");
			send_refusal(b, f, true);
			continue;
		}
		f->op = (long)(bt->nops - 1);
		op->in.signed_message = f->cf->submit->signed_message.data;
		op->in.len = f->cf->submit->signed_message.len;
		op->in.msg = f->msg;
		op->in.logged_at = now;
		if (f->cf->submit->sealed.len) {
			op->in.sealed = f->cf->submit->sealed.data;
			op->in.sealed_len = f->cf->submit->sealed.len;
		}
	}
	if (bt->nops == 0) { /* nothing to commit: answer now */
		batch_answer(b, bt);
		return;
	}
	checkpoint_attach(b, bt);
	parked_attach(b, bt);
	if (n < BROKER_PIPE_MIN) {
		/* A quiet network: no next batch to overlap with, and handing
		 * the commit over, then being woken for its answer, costs two
		 * thread wake-ups (measured: +0.3-0.5 ms p50 at 1,000/s). */
		int64_t t0 = broker_metrics_now_us();
		batch_commit(b, bt, true);
		broker_metrics_observe(b->metrics, BH_COMMIT, broker_metrics_now_us() - t0, 1);
		batch_answer(b, bt);
		catch_up(b); /* says so at once if LMDB's commit of it failed */
		return;
	}

	/* 4. one durable commit, and the receipts' signatures, on the
	 * committer; 5. receipts, queries and deliveries when it is done */
	b->fly = bt;
	b->bt = bt == &b->batches[0] ? &b->batches[1] : &b->batches[0];
	broker_worker_post(b->worker, batch_commit_job, b);
	if (!broker_worker_busy(b->worker)) /* no thread: it ran in post */
		pipe_collect(b);
}

/* --- scans: expiry and overdue ---------------------------------------------------------- */

struct expired {
	char recipient[RETE_ID_MAX + 1];
	uint64_t index;
};

struct scan_ctx {
	struct expired *e;
	size_t n, cap;
	Rete__ReferralInfo **r;
	size_t nr;
};

static int on_expired(void *ctx, const char *recipient, uint64_t index, int64_t logged_at)
{
	(void)logged_at;
	struct scan_ctx *s = ctx;
	if (s->n == s->cap)
		return 1;
	snprintf(s->e[s->n].recipient, sizeof(s->e[s->n].recipient), "%s", recipient);
	s->e[s->n++].index = index;
	return 0;
}

static int on_overdue(void *ctx, const Rete__ReferralInfo *r)
{
	struct scan_ctx *s = ctx;
	if (s->nr == BROKER_SCAN_MAX)
		return 1;
	/* copy: r lives only during the call */
	size_t len = rete__referral_info__get_packed_size(r);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return 1;
	rete__referral_info__pack(r, buf);
	s->r[s->nr] = rete__referral_info__unpack(NULL, len, buf);
	free(buf);
	if (s->r[s->nr])
		s->nr++;
	return 0;
}

/* BROKER_CLOCK_JUMP_MS: a wall clock that moves this much more (or less)
 * than the boot clock between two scans has jumped. */
#define BROKER_CLOCK_JUMP_MS (60 * 1000)

/* boot_ms: CLOCK_BOOTTIME (it counts a suspend, which CLOCK_MONOTONIC does
 * not: a machine resumed after two days has not jumped). */
static int64_t boot_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return mono_ms();
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* span_text writes ms (>= 0) as 6d00h, 3h05m or 4m10s. */
static char *span_text(int64_t ms, char *buf, size_t n)
{
	int64_t s = ms / 1000;
	if (s >= 86400)
		snprintf(buf, n, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(buf, n, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(buf, n, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	return buf;
}

/* clock_watch compares how far the wall clock moved since the last scan
 * with how far the boot clock did (rev-edges s13, 2). A wall clock that
 * moved more than BROKER_CLOCK_JUMP_MS ahead of it jumped forward (a VM
 * resumed with a wrong clock, a bad RTC or NTP source, or a clock that was
 * behind put right): the jump is not counted (clock_ahead_ms), so that
 * expiry and overdue go on in real time, and nothing is withdrawn or
 * flagged before its time; an error says it, and health lists it until
 * the clock comes back. A step back takes back what is not counted. The
 * wall clock itself (the entries' loggedAt) is left as it is. */
static void clock_watch(broker *b)
{
	int64_t wall = rete_now_ms(), boot = boot_ms();
	char jump[32], ahead[32], at[32];
	if (b->clock_boot_ms != 0) {
		int64_t drift = (wall - b->clock_wall_ms) - (boot - b->clock_boot_ms);
		int64_t was = b->clock_ahead_ms;
		if (drift > BROKER_CLOCK_JUMP_MS && b->clock_hold) {
			/* behind the log since the start (clock_start): this is
			 * the clock put right, which the hold waits for, up to the
			 * log's newest time; a step beyond it (a bad RTC or NTP
			 * source overshooting) is a jump like any other below */
			int64_t shortfall = b->clock_floor_ms - (wall - drift);
			if (shortfall < 0)
				shortfall = 0;
			broker_log_info("the clock moved forward by %s while behind the newest "
					"entry of the log: taken as the clock put right",
					span_text(drift < shortfall ? drift : shortfall, jump,
						  sizeof(jump)));
			drift = drift > shortfall ? drift - shortfall : 0;
		}
		if (drift > BROKER_CLOCK_JUMP_MS) {
			b->clock_ahead_ms += drift;
			span_text(drift, jump, sizeof(jump));
			span_text(b->clock_ahead_ms, ahead, sizeof(ahead));
			snprintf(b->clock_text, sizeof(b->clock_text),
				 "the broker's clock jumped forward by %s at %s (%s ahead of the "
				 "time that passed): expiry and overdue count without it; check "
				 "the clock (timedatectl) before a restart, which counts on the "
				 "clock as it then is",
				 jump, rete_time_format(wall, at), ahead);
			broker_log_error("the clock jumped forward by %s (the wall clock moved "
					 "%s ahead of the boot clock since the last scan, now %s): "
					 "expiry and overdue count without the jump (%s in all), "
					 "so nothing is withdrawn or flagged overdue for it; check "
					 "the clock (timedatectl) before restarting the broker, "
					 "which counts on the clock as it then is",
					 jump, jump, at, ahead);
		} else if (drift < -BROKER_CLOCK_JUMP_MS &&
			   (was > 0 || b->clock_start_ahead_ms > 0)) {
			/* a step back takes back the jump first, then the start's
			 * gap (clock_start); what is left under a minute is the
			 * milliseconds between the reads, not a jump */
			int64_t back = -drift, take = back < was ? back : was;
			b->clock_ahead_ms = was - take > BROKER_CLOCK_JUMP_MS ? was - take : 0;
			back -= take;
			int64_t gap = b->clock_start_ahead_ms;
			take = back < gap ? back : gap;
			b->clock_start_ahead_ms =
			    gap - take > BROKER_CLOCK_JUMP_MS ? gap - take : 0;
			span_text(-drift, jump, sizeof(jump));
			int64_t left = b->clock_ahead_ms + b->clock_start_ahead_ms;
			if (b->clock_ahead_ms == 0)
				b->clock_text[0] = '\0';
			if (b->clock_start_ahead_ms == 0)
				b->clock_start_text[0] = '\0';
			if (left == 0)
				broker_log_info("the clock is back (it went back by %s): expiry "
						"and overdue count on it again",
						jump);
			else
				broker_log_warn(
				    "the clock went back by %s; %s of its forward "
				    "jump (or of its gap at the start) is still not counted",
				    jump, span_text(left, ahead, sizeof(ahead)));
		}
	}
	b->clock_wall_ms = wall;
	b->clock_boot_ms = boot;
}

/* clock_ref: a time the store (or the state file) holds, and what it is */
struct clock_ref {
	int64_t at; /* Unix ms, 0: none */
	char what[176];
};

static void ref_take(struct clock_ref *r, int64_t at, const char *what)
{
	if (at > r->at) {
		r->at = at;
		snprintf(r->what, sizeof(r->what), "%s", what);
	}
}

/* BROKER_CLOCK_MARK_MS: how often the state file's time is set to the
 * wall clock (clock_mark), so that the next start knows when this run was
 * last seen, even after a crash or a spell with nothing logged. */
#define BROKER_CLOCK_MARK_MS (60 * 1000)

/* store_newest_time: the newest times the broker knows from before its
 * start. *log: the newest entry's loggedAt (a later entry must not be
 * dated before it). *seen: where the downtime began: that, or the state
 * file's time when later (clock_mark: when the last run was last seen
 * running with its clock trusted); but when the newest entry is later
 * than the state file's time by more than the mark's period and a minute,
 * the entries after that time were logged while the clock was in doubt
 * (a start's gap or a jump not counted, which keeps the file's time back):
 * the state file's time, then. *tok: the newest time-stamp token's genTime,
 * a TSA's time, which decides nothing here (a TSA's clock may be the wrong
 * one): clock_start only names it. */
static void store_newest_time(broker *b, struct clock_ref *log, struct clock_ref *seen,
			      struct clock_ref *tok)
{
	char t[32], t2[32], what[176];
	uint64_t size = 0, cp = 0;
	rete_buf buf = {0};
	memset(log, 0, sizeof(*log));
	memset(tok, 0, sizeof(*tok));
	if (rete_store_size(b->store, NULL, &size, NULL) == RETE_OK && size > 0 &&
	    rete_store_entry(b->store, NULL, size - 1, &buf, NULL) == RETE_OK) {
		Rete__LogEntry *le = rete__log_entry__unpack(NULL, buf.len, buf.data);
		if (le) {
			snprintf(what, sizeof(what), "entry %" PRIu64 ", logged at %s", size - 1,
				 rete_time_format(le->logged_at, t));
			ref_take(log, le->logged_at, what);
			rete__log_entry__free_unpacked(le, NULL);
		}
	}
	rete_buf_free(&buf);
	int64_t gen = 0;
	if (rete_store_timestamp_latest(b->store, NULL, &cp, &buf, NULL) == RETE_OK &&
	    broker_tsa_gen_time(buf.data, buf.len, &gen, NULL) == RETE_OK) {
		snprintf(what, sizeof(what), "checkpoint %" PRIu64 "'s, at %s", cp,
			 rete_time_format(gen, t));
		ref_take(tok, gen, what);
	}
	rete_buf_free(&buf);
	*seen = *log;
	struct stat st;
	if (log->at > 0 && stat(b->cfg->state, &st) == 0) {
		int64_t at = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		if (log->at - at > BROKER_CLOCK_MARK_MS + BROKER_CLOCK_JUMP_MS) {
			snprintf(what, sizeof(what),
				 "the broker last seen with its clock trusted at %s; entries up "
				 "to %s were logged in doubt",
				 rete_time_format(at, t), rete_time_format(log->at, t2));
			seen->at = at;
			snprintf(seen->what, sizeof(seen->what), "%s", what);
		} else {
			snprintf(what, sizeof(what), "the broker last seen running at %s",
				 rete_time_format(at, t));
			ref_take(seen, at, what);
		}
	}
}

/* clock_mark sets the state file's modification time to now: the broker's
 * "last seen running" (clock_start reads it), a time and not a write (no
 * sync: a mark lost to a power cut only makes the next start's gap
 * longer, which defers, never withdraws). Not while the clock is doubted
 * (a jump or a start's gap not counted, or the log held): a wrong time
 * there would hide the gap from the next start. */
static void clock_mark(broker *b)
{
	struct timespec ts[2] = {{0, UTIME_OMIT}, {0, 0}};
	b->clock_mark_mono_ms = mono_ms();
	/* doubted: the state file keeps the time last set while trusted (a
	 * checkpoint's rewrite of the file set it to the wall clock) */
	if (b->clock_ahead_ms == 0 && b->clock_start_ahead_ms == 0 && !b->clock_hold)
		b->clock_seen_ms = rete_now_ms();
	if (b->clock_seen_ms == 0)
		return;
	/* the time itself, not UTIME_NOW: the clock this process reads */
	ts[1].tv_sec = b->clock_seen_ms / 1000;
	ts[1].tv_nsec = b->clock_seen_ms % 1000 * 1000000;
	if (utimensat(AT_FDCWD, b->cfg->state, ts, 0) != 0 && errno != ENOENT)
		broker_log_debug("cannot set the time of the state file %s: %s", b->cfg->state,
				 strerror(errno));
}

/* clock_start compares the wall clock at the start with the newest time
 * the store holds (s14; docs/operations.md "Trusted time"). The broker
 * cannot tell from its own clocks a clock that is wrong from a downtime
 * that was real, and a withdrawal cannot be undone: so for clock_grace
 *   - ahead by more than BROKER_CLOCK_JUMP_MS: the gap is not counted
 *     (clock_start_ahead_ms, as clock_watch does a jump): expiry and
 *     overdue go on from the store's newest time; a step back (NTP) takes
 *     it back; once clock_grace has passed the gap is counted (it was the
 *     downtime);
 *   - behind by more than that: nothing is logged (clock_hold) until the
 *     clock passes the store's newest time, so that no entry gets a time
 *     before the one before it; once clock_grace has passed, the clock is
 *     taken as it is.
 * clock_grace off: the clock is counted on at once, as before. */
static void clock_start(broker *b)
{
	char gap[32], until[32];
	int64_t wall = rete_now_ms();
	struct clock_ref log, seen, tok;
	b->clock_start_boot_ms = boot_ms();
	store_newest_time(b, &log, &seen, &tok);
	b->clock_seen_ms = seen.at;
	if (tok.at - wall > BROKER_CLOCK_JUMP_MS)
		/* not a reason to hold: the TSA's clock may be the wrong one */
		broker_log_warn("the newest time-stamp token (%s, from the TSA at %s) is %s ahead "
				"of the broker's clock: the TSA's clock or this one is wrong; "
				"check this one (timedatectl) and ask the TSA's operator about "
				"theirs; the log is not held for a token's time",
				tok.what, b->cfg->tsa_url ? b->cfg->tsa_url : "(no longer configured)",
				span_text(tok.at - wall, gap, sizeof(gap)));
	if (seen.at == 0 || b->cfg->clock_grace_ms == 0)
		return;
	rete_time_format(wall + b->cfg->clock_grace_ms, until);
	if (wall - seen.at > BROKER_CLOCK_JUMP_MS) {
		b->clock_start_ahead_ms = wall - seen.at;
		span_text(wall - seen.at, gap, sizeof(gap));
		snprintf(b->clock_start_what, sizeof(b->clock_start_what), "%s", seen.what);
		const char *what = seen.what;
		broker_log_info(
		    "the clock is %s ahead of the newest time the broker knew at its "
		    "start (%s): it was down that long, or its clock is wrong; until %s "
		    "(clock_grace %s) expiry and overdue do not count the gap",
		    gap, what, until, b->cfg->clock_grace);
	} else if (log.at - wall > BROKER_CLOCK_JUMP_MS) {
		const char *what = log.what;
		b->clock_hold = true;
		b->clock_floor_ms = log.at;
		span_text(log.at - wall, gap, sizeof(gap));
		snprintf(b->clock_start_text, sizeof(b->clock_start_text),
			 "the broker's clock is %s behind the newest entry of its log (%s): "
			 "nothing is logged until the clock passes it (submissions are answered "
			 "BUSY and sent again by the agents, acknowledgements wait, no expiry "
			 "or overdue), or until %s (clock_grace %s); check the clock "
			 "(timedatectl): if it is wrong, set it right; if it is right, the "
			 "entries before were logged with a clock ahead, and a reload with "
			 "clock_grace 1s logs with this clock now (the log's times then go back, "
			 "and rete audit verify warns of it)",
			 gap, what, until, b->cfg->clock_grace);
		/* what the start itself must log is logged all the same, with
		 * this clock: a declared restore's epoch entry (the restore is
		 * recorded before anything else, or the broker does not run),
		 * a changed directory (the one in force) */
		broker_log_error("the clock is %s behind the newest entry of the log (%s): "
				 "nothing is logged until the clock passes it, or until %s "
				 "(clock_grace %s); check the clock (timedatectl)%s",
				 gap, what, until, b->cfg->clock_grace,
				 b->restore_note
				     ? "; the restore's epoch entry is logged now all the same, "
				       "with this clock (a restore is recorded before anything "
				       "else): rete audit verify will warn that the clock went "
				       "back at it"
				     : "");
	}
}

static int on_count(void *ctx, const char *recipient, uint64_t index, int64_t logged_at)
{
	(void)recipient, (void)index, (void)logged_at;
	(*(size_t *)ctx)++;
	return 0;
}

static int on_count_overdue(void *ctx, const Rete__ReferralInfo *r)
{
	(void)r;
	(*(size_t *)ctx)++;
	return 0;
}

/* clock_start_check, at every scan: ends what clock_start began once the
 * clock is right or clock_grace has passed (a reload may shorten it), and
 * says once, at error level and in health, when the start's gap holds
 * back a withdrawal or an overdue notice. false: nothing may be logged
 * (clock_hold). */
/* clock_hold_end: entries are logged again; every agency gets its queue,
 * which pump held back while nothing it acknowledged could be logged. */
static void clock_hold_end(broker *b)
{
	b->clock_hold = false;
	b->clock_start_text[0] = '\0';
	for (size_t i = 0; i < b->npeers; i++)
		inflight_restart(&b->peers[i]);
}

static bool clock_start_check(broker *b, int64_t wall)
{
	char gap[32], at[32];
	bool over = b->cfg->clock_grace_ms == 0 ||
		    boot_ms() - b->clock_start_boot_ms >= b->cfg->clock_grace_ms;
	if (b->clock_hold) {
		if (wall >= b->clock_floor_ms) {
			clock_hold_end(b);
			broker_log_info("the clock has passed the newest entry of the log (%s): "
					"entries are logged again",
					rete_time_format(b->clock_floor_ms, at));
		} else if (over) {
			clock_hold_end(b);
			broker_log_warn(
			    "clock_grace (%s) has passed with the clock still %s behind "
			    "the newest entry of the log (%s): entries are logged with "
			    "it from now on, and the log's times go back (rete audit "
			    "verify warns of it)",
			    b->cfg->clock_grace,
			    span_text(b->clock_floor_ms - wall, gap, sizeof(gap)),
			    rete_time_format(b->clock_floor_ms, at));
		}
		return !b->clock_hold;
	}
	if (b->clock_start_ahead_ms == 0)
		return true;
	span_text(b->clock_start_ahead_ms, gap, sizeof(gap));
	if (over) {
		broker_log_warn("clock_grace (%s) has passed: the clock's gap of %s at the start "
				"is taken as the time the broker was down, and expiry and overdue "
				"count on the clock",
				b->cfg->clock_grace, gap);
		b->clock_start_ahead_ms = 0;
		b->clock_start_text[0] = '\0';
		return true;
	}
	if (!b->clock_held_said) {
		/* what the clock as it is would withdraw or flag, and the
		 * gap does not */
		int64_t now = wall - b->clock_ahead_ms;
		size_t would = 0, will = 0, odue = 0, odue_will = 0;
		rete_store_queue_expired(b->store, NULL, now - b->cfg->expiry_ms, on_count, &would,
					 NULL);
		rete_store_queue_expired(b->store, NULL,
					 now - b->clock_start_ahead_ms - b->cfg->expiry_ms,
					 on_count, &will, NULL);
		rete_store_overdue_candidates(b->store, NULL, now, on_count_overdue, &odue, NULL);
		rete_store_overdue_candidates(b->store, NULL, now - b->clock_start_ahead_ms,
					      on_count_overdue, &odue_will, NULL);
		/* a gap no longer than clock_grace is what a restart, an
		 * upgrade or a reboot takes: a warning, no health problem (a
		 * clock wrong by that much would withdraw that much early) */
		bool short_gap = b->clock_start_ahead_ms <= b->cfg->clock_grace_ms;
		if (would > will || odue > odue_will) {
			char line[640];
			b->clock_held_said = true;
			snprintf(line, sizeof(line),
				 "the clock is %s ahead of the newest time the broker knew at its "
				 "start (%s): %zu withdrawal%s and %zu overdue notice%s wait for "
				 "clock_grace (%s) before the gap is counted; if the broker was not "
				 "down that long, set its clock right (timedatectl) now",
				 gap, b->clock_start_what, would - will,
				 would - will == 1 ? "" : "s", odue - odue_will,
				 odue - odue_will == 1 ? "" : "s", b->cfg->clock_grace);
			if (short_gap)
				broker_log_warn("%s", line);
			else {
				broker_log_error("%s", line);
				snprintf(b->clock_start_text, sizeof(b->clock_start_text),
					 "%s; if it was, nothing to do (a reload with clock_grace "
					 "1s counts the gap now)",
					 line);
			}
		}
	}
	return true;
}

/* clock_holds refuses f (ERROR_CODE_BUSY) while clock_start holds the log
 * (its clock behind the newest entry): the agent sends it again. */
static bool clock_holds(broker *b, broker_frame *f)
{
	if (!b->clock_hold)
		return false;
	char at[32];
	broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_BUSY, "",
		      "message %.64s: the broker's clock is behind the newest entry of its log "
		      "(%s); nothing is logged until it is set right: try again later",
		      f->msg ? f->msg->id : "", rete_time_format(b->clock_floor_ms, at));
	broker_log_limited(RETE_LOG_WARNING, "held: the clock behind the log",
			   "submission %.64s of %s held: the clock is behind the newest entry "
			   "of the log (%s)",
			   f->msg ? f->msg->id : "", f->party, at);
	return true;
}

static void scan(broker *b)
{
	clock_watch(b);
	/* now: what expiry and overdue count on; wall: the own entries' time */
	int64_t wall = rete_now_ms();
	if (!clock_start_check(b, wall))
		return;
	/* the store behind its journal (catch_up, just before): what the
	 * batch behind withdrew is not in data.mdb yet, so the candidates
	 * read from it are stale, and nothing can be written; the scan waits
	 * until the batch is in */
	if (b->behind)
		return;
	int64_t now = wall - b->clock_ahead_ms - b->clock_start_ahead_ms;
	struct scan_ctx s = {0};
	/* what the scan did, said once its commit is done: a line saying
	 * "withdrew" before that could be undone by a crash or a full disk */
	struct scan_said {
		rete_log_level level;
		char text[384];
	} *said = NULL;
	size_t nsaid = 0;
	s.cap = BROKER_SCAN_MAX;
	s.e = calloc(s.cap, sizeof(*s.e));
	s.r = calloc(BROKER_SCAN_MAX, sizeof(*s.r));
	if (!s.e || !s.r)
		goto out;
	rete_store_queue_expired(b->store, NULL, now - b->cfg->expiry_ms, on_expired, &s, NULL);
	rete_store_overdue_candidates(b->store, NULL, now, on_overdue, &s, NULL);
	if (s.n == 0 && s.nr == 0)
		goto out;
	if (!(said = calloc(s.n + s.nr, sizeof(*said))))
		goto out; /* out of memory: the next scan tries again */
	batch_reset(b->bt);
	for (size_t i = 0; i < s.n; i++) {
		Rete__Message *msg = NULL;
		if (read_message(b, NULL, s.e[i].index, &msg) != RETE_OK)
			continue;
		rete_store_op *op = op_add(b, RETE_STORE_OP_EXPIRE, NULL);
		if (!op) {
			rete__message__free_unpacked(msg, NULL);
			break;
		}
		broker_peer *p = broker_peer_find(b, s.e[i].recipient);
		op->in.recipient = p ? p->id : s.e[i].recipient;
		op->in.index = s.e[i].index;
		if (p)
			inflight_remove(p, s.e[i].index);
		if (!broker_wrote(msg)) {
			char id[64];
			snprintf(id, sizeof(id), "expired-%" PRIu64, s.e[i].index);
			broker_own *o = own_new(b, id, msg->sender, msg->case_id);
			if (o) {
				snprintf(o->msg_id, sizeof(o->msg_id), "%s", msg->id);
				snprintf(o->ref_id, sizeof(o->ref_id), "%s",
					 rete_message_referral_id(msg));
				snprintf(
				    o->text, sizeof(o->text),
				    "message %s to %s was not delivered within %s (the expiry): "
				    "%s's agent did not collect it; it was withdrawn%s",
				    msg->id, msg->recipient, b->cfg->expiry, msg->recipient,
				    msg->body_case == RETE__MESSAGE__BODY_REFERRAL
					? " and the referral is now failed"
					: "");
				o->notice.kind = RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED;
				o->notice.index = s.e[i].index;
				o->notice.message_id = o->msg_id;
				o->notice.referral_id = o->ref_id;
				o->notice.error = RETE__ERROR_CODE__ERROR_CODE_EXPIRED;
				o->notice.text = o->text;
				o->msg.body_case = RETE__MESSAGE__BODY_NOTICE;
				o->msg.notice = &o->notice;
				own_append(b, o, wall);
			}
			said[nsaid].level = RETE_LOG_WARNING;
			snprintf(said[nsaid++].text, sizeof(said->text),
				 "withdrew %s from %s to %s (entry %" PRIu64 "): undelivered "
				 "after %s",
				 msg->id, msg->sender, msg->recipient, s.e[i].index,
				 b->cfg->expiry);
		}
		rete__message__free_unpacked(msg, NULL);
	}
	for (size_t i = 0; i < s.nr; i++) {
		const Rete__ReferralInfo *r = s.r[i];
		char id[64], due[32];
		snprintf(id, sizeof(id), "overdue-%" PRIu64, r->index);
		broker_own *o = own_new(b, id, r->requester, r->case_id);
		if (!o)
			break;
		time_t t = (time_t)(r->due_at / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(due, sizeof(due), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(o->msg_id, sizeof(o->msg_id), "%s", r->id);
		snprintf(o->ref_id, sizeof(o->ref_id), "%s", r->id);
		snprintf(o->text, sizeof(o->text),
			 "referral %s to %s (service %s) was due to be accepted or rejected by %s "
			 "and is still %s",
			 r->id, r->performer, r->service, due,
			 r->status == RETE__STATUS__STATUS_RECEIVED ? "received" : "requested");
		o->notice.kind = RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE;
		o->notice.index = r->index;
		o->notice.message_id = o->msg_id;
		o->notice.referral_id = o->ref_id;
		o->notice.due_at = r->due_at;
		o->notice.text = o->text;
		o->msg.body_case = RETE__MESSAGE__BODY_NOTICE;
		o->msg.notice = &o->notice;
		own_append(b, o, wall);
		said[nsaid].level = RETE_LOG_INFO;
		snprintf(said[nsaid++].text, sizeof(said->text),
			 "referral %s to %s is overdue (due %s)", r->id, r->performer, due);
	}
	if (commit_now(b) == RETE_OK) {
		for (size_t i = 0; i < b->bt->nops; i++)
			if (b->bt->ops[i].kind == RETE_STORE_OP_APPEND &&
			    b->bt->ops[i].status == RETE_STORE_REFUSED)
				broker_log_warn("the store refused the broker's own entry: %s",
						b->bt->ops[i].error_text);
		for (size_t i = 0; i < nsaid; i++) {
			if (said[i].level == RETE_LOG_WARNING)
				broker_log_warn("%s", said[i].text);
			else
				broker_log_info("%s", said[i].text);
		}
	} else if (nsaid) {
		/* once a minute at most: a full disk refuses scan after scan */
		broker_log_limited(RETE_LOG_WARNING, "scan: the store did not take it",
				   "the store did not take the scan's %zu withdrawal(s) and overdue "
				   "notice(s): %s; nothing was withdrawn, and the next scan tries "
				   "again",
				   nsaid, b->bt->m.text[0] ? b->bt->m.text : "its commit failed");
	}
	batch_reset(b->bt);
	pump_dirty(b);
out:
	for (size_t i = 0; i < s.nr; i++)
		rete__referral_info__free_unpacked(s.r[i], NULL);
	free(s.r);
	free(s.e);
	free(said);
}

static void orphans_say(broker *b);

/* --- reload ----------------------------------------------------------------------------- */

/* keep_warn says that a reload leaves key as it runs. */
static void keep_warn(const char *key, const char *running, const char *asked)
{
	broker_log_warn("reload: %s changed from %s to %s; restart the broker to apply it (the "
			"running value stays in force)",
			key, running, asked);
}

/* size_text writes bytes as broker.ini does ("24MiB", "64KiB", "1000B")
 * into buf (n bytes) and returns buf. */
static char *size_text(uint64_t bytes, char *buf, size_t n)
{
	if (bytes != 0 && bytes % (1u << 20) == 0)
		snprintf(buf, n, "%" PRIu64 "MiB", bytes >> 20);
	else if (bytes != 0 && bytes % 1024 == 0)
		snprintf(buf, n, "%" PRIu64 "KiB", bytes >> 10);
	else
		snprintf(buf, n, "%" PRIu64 "B", bytes);
	return buf;
}

static void reload(broker *b)
{
	rete_problems pr = {0};
	broker_config *nc = NULL;
	broker_log_info("SIGHUP: reloading %s", b->cfg->path);
	if (broker_config_load(b->cfg->path, &nc, &pr) != RETE_OK) {
		for (size_t i = 0; i < pr.n; i++)
			broker_log_error("%s: %s", pr.items[i].path, pr.items[i].text);
		broker_log_error("the new configuration was refused (%zu problem%s); the old one "
				 "stays in force",
				 pr.n, pr.n == 1 ? "" : "s");
		rete_problems_free(&pr);
		return;
	}
	rete_problems_free(&pr);
	broker_config *old = b->cfg;
	if (broker_config_party(nc, old->id) != NULL) {
		/* broker.ini names another broker id (applied at the next
		 * start) and an agency under the id still in force */
		broker_log_error("%s: [agency %s]: '%s' is the id of this running broker (a new "
				 "[broker] id applies at the next start only); give the agency "
				 "another id. The new configuration was refused; the old one "
				 "stays in force",
				 old->path, old->id, old->id);
		broker_config_free(&nc);
		return;
	}
	/* the access record follows the store folder in force: with no
	 * access_log, the default is the running data's, not the new one's
	 * (a new data applies at the next start) */
	if (nc->access_log_line == 0 && strcmp(nc->data, old->data) != 0) {
		char *kept = broker_access_log_default(old->data);
		if (kept == NULL) {
			broker_log_error("reload: out of memory; the old configuration stays in "
					 "force");
			broker_config_free(&nc);
			return;
		}
		free(nc->access_log);
		nc->access_log = kept;
	}
	/* What the running sockets, store, key, pool and TSA thread were
	 * made with cannot change without a restart: keep it in force (and
	 * in b->cfg, which says what runs), and say so, once per key and
	 * reload, with the running and the new value. */
	char was[64], now[64];
#define KEEP_STR(key, field)                                                                       \
	if (strcmp(nc->field, old->field) != 0)                                                    \
		keep_warn(key, old->field, nc->field);
#define KEEP_OPT(key, field)                                                                       \
	if ((nc->field == NULL) != (old->field == NULL) ||                                         \
	    (nc->field && strcmp(nc->field, old->field) != 0))                                     \
		keep_warn(key, old->field ? old->field : "(not set)",                              \
			  nc->field ? nc->field : "(not set)");
#define KEEP_MS(key, field)                                                                        \
	if (nc->field != old->field)                                                               \
		keep_warn(key, broker_duration_text(old->field, was, sizeof(was)),                 \
			  broker_duration_text(nc->field, now, sizeof(now)));
	KEEP_STR("listen", listen)
	KEEP_STR("events", events)
	KEEP_STR("data", data)
	KEEP_STR("origin", origin)
	KEEP_STR("id", id)
	KEEP_STR("key", key_path)
	KEEP_STR("state", state)
	if (nc->metrics_on != old->metrics_on ||
	    (nc->metrics_on && strcmp(nc->metrics.text, old->metrics.text) != 0))
		keep_warn("metrics", old->metrics_on ? old->metrics.text : "(not set)",
			  nc->metrics_on ? nc->metrics.text : "(not set)");
	if (nc->max_frame != old->max_frame)
		keep_warn("max_frame", size_text(old->max_frame, was, sizeof(was)),
			  size_text(nc->max_frame, now, sizeof(now)));
	if (nc->verify_threads != old->verify_threads) {
		snprintf(was, sizeof(was), "%u", old->verify_threads);
		snprintf(now, sizeof(now), "%u", nc->verify_threads);
		keep_warn("verify_threads", was, now);
	}
	KEEP_MS("heartbeat", heartbeat_ms)
	KEEP_OPT("tsa_url", tsa_url)
	KEEP_OPT("tsa_ca", tsa_ca)
	KEEP_OPT("tsa_user", tsa_user)
	if ((nc->tsa_password == NULL) != (old->tsa_password == NULL) ||
	    (nc->tsa_password && strcmp(nc->tsa_password, old->tsa_password) != 0))
		/* never the password itself, in a log line */
		broker_log_warn("reload: tsa_password_file: the password changed; restart the "
				"broker to apply it (the running one stays in force)");
	KEEP_MS("tsa_timeout", tsa_timeout_ms)
	if (nc->timestamp_grace_ms != old->timestamp_grace_ms) /* 4h is 240m */
		keep_warn("timestamp_grace", old->timestamp_grace, nc->timestamp_grace);
#undef KEEP_STR
#undef KEEP_OPT
#undef KEEP_MS
	nc->metrics_on = old->metrics_on;
	nc->metrics = old->metrics;
	snprintf(nc->listen, sizeof(nc->listen), "%s", old->listen);
	snprintf(nc->events, sizeof(nc->events), "%s", old->events);
	snprintf(nc->id, sizeof(nc->id), "%s", old->id);
	char *t;
	t = nc->data, nc->data = old->data, old->data = t;
	t = nc->state, nc->state = old->state, old->state = t;
	t = nc->origin, nc->origin = old->origin, old->origin = t;
	t = nc->key_path, nc->key_path = old->key_path, old->key_path = t;
	t = nc->tsa_url, nc->tsa_url = old->tsa_url, old->tsa_url = t;
	t = nc->tsa_ca, nc->tsa_ca = old->tsa_ca, old->tsa_ca = t;
	t = nc->tsa_user, nc->tsa_user = old->tsa_user, old->tsa_user = t;
	t = nc->tsa_password, nc->tsa_password = old->tsa_password, old->tsa_password = t;
	nc->tsa_timeout_ms = old->tsa_timeout_ms;
	nc->timestamp_grace_ms = old->timestamp_grace_ms;
	memcpy(nc->timestamp_grace, old->timestamp_grace, sizeof(nc->timestamp_grace));
	nc->key_pub = old->key_pub;
	nc->max_frame = old->max_frame;
	nc->verify_threads = old->verify_threads;
	nc->heartbeat_ms = old->heartbeat_ms;
	b->cfg = nc;
	if (peers_rebuild(b) != RETE_OK || broker_zap_update(b->zap, nc) != RETE_OK) {
		broker_log_error("reload: out of memory; the old configuration stays in force");
		b->cfg = old;
		broker_config_free(&nc);
		peers_rebuild(b);
		return;
	}
	/* the record applies at once (a read is served only once it is
	 * recorded), after the one refusal above, so that b->access and b->cfg
	 * always agree; a record that cannot be opened refuses reads, not
	 * the reload (access.c) */
	if (strcmp(nc->access_log, old->access_log) != 0 ||
	    nc->access_keep.ms != old->access_keep.ms ||
	    nc->access_keep.months != old->access_keep.months) {
		if (strcmp(nc->access_log, old->access_log) != 0)
			broker_log_warn("reload: the access record moves from %s to %s",
					old->access_log, nc->access_log);
		broker_access_move(b, nc->access_log);
	}
	broker_config_free(&old);
	rete_buf before = {0};
	if (b->dir_entry.len && (before.data = malloc(b->dir_entry.len)) != NULL) {
		memcpy(before.data, b->dir_entry.data, b->dir_entry.len);
		before.len = b->dir_entry.len;
	}
	if (directory_sync(b) != RETE_OK)
		broker_log_error("reload: the new directory could not be logged");
	else if (before.len != b->dir_entry.len ||
		 memcmp(before.data, b->dir_entry.data, before.len) != 0) {
		/* A new Directory is in force (a key rotated, a party or service
		 * added): connected agencies get it now, in a fresh WELCOME, so
		 * they seal to the new keys without waiting for a reconnect. */
		for (size_t i = 0; i < b->npeers; i++) {
			const broker_party *pa = broker_config_party(nc, b->peers[i].id);
			for (size_t j = 0; pa != NULL && j < b->peers[i].nconns; j++)
				send_welcome(b, b->peers[i].conns[j].rid,
					     b->peers[i].conns[j].rid_len, b->peers[i].id,
					     pa->kind);
		}
	}
	rete_buf_free(&before);
	broker_log_info("reload: %zu parties, %zu routes in force", nc->nparties, nc->nroutes);
	orphans_say(b);
	parked_sweep(b);
	parked_keep(b, true);
	pump_dirty(b);
}

/* --- start and stop ------------------------------------------------------------------------ */

/* store_say says one sentence of starting on the store, at level. In a
 * --check-config run (b->check_problems set: broker_check_store) what would
 * be logged as an error becomes a problem of the check, with the very
 * sentence, and a warning a note; nothing is written and no info line is
 * said. The check prints them whole here: a problem's text is cut at 384
 * bytes, and these sentences name folders and say what to do. */
static void store_say(broker *b, rete_log_level level, const char *fmt, va_list ap)
{
	char text[4096];

	if (level == RETE_LOG_INFO && b->check_problems != NULL)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	if (level == RETE_LOG_ERROR && b->check_problems != NULL) {
		fprintf(stderr, "%s: %s\n", b->cfg->path, text);
		rete_problems_add(b->check_problems, b->cfg->path, "%s", text);
	} else if (level == RETE_LOG_WARNING && b->check_notes != NULL) {
		printf("%s: note: %s\n", b->cfg->path, text);
		rete_problems_add(b->check_notes, b->cfg->path, "%s", text);
	} else if (level == RETE_LOG_ERROR) {
		broker_log_error("%s", text);
	} else if (level == RETE_LOG_WARNING) {
		broker_log_warn("%s", text);
	} else {
		broker_log_info("%s", text);
	}
}

/* store_error, store_warn and store_info: store_say at their level. */
static void store_error(broker *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void store_warn(broker *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void store_info(broker *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void store_error(broker *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	store_say(b, RETE_LOG_ERROR, fmt, ap);
	va_end(ap);
}

static void store_warn(broker *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	store_say(b, RETE_LOG_WARNING, fmt, ap);
	va_end(ap);
}

static void store_info(broker *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	store_say(b, RETE_LOG_INFO, fmt, ap);
	va_end(ap);
}

/* --- queues of parties no longer in the directory ---------------------------------------- */

struct orphan_walk {
	const broker_config *cfg;
	struct orphan {
		char id[RETE_ID_MAX + 1];
		uint64_t n;
		int64_t oldest;
	} *o;
	size_t n, cap;
	bool oom;
};

static int orphan_step(void *ctx, const char *recipient, uint64_t index, int64_t logged_at)
{
	(void)index;
	struct orphan_walk *w = ctx;
	if (broker_config_party(w->cfg, recipient) != NULL)
		return 0;
	/* the queue is in recipient order: a party's entries come together */
	struct orphan *o = w->n ? &w->o[w->n - 1] : NULL;
	if (o == NULL || strcmp(o->id, recipient) != 0) {
		if (w->n == w->cap) {
			size_t cap = w->cap ? 2 * w->cap : 8;
			struct orphan *t = realloc(w->o, cap * sizeof(*t));
			if (t == NULL) {
				w->oom = true;
				return 1;
			}
			w->o = t, w->cap = cap;
		}
		o = &w->o[w->n++];
		snprintf(o->id, sizeof(o->id), "%s", recipient);
		o->n = 0;
		o->oldest = logged_at;
	}
	o->n++;
	if (logged_at < o->oldest)
		o->oldest = logged_at;
	return 0;
}

/* orphans_say names each stored queue of a party the configuration in
 * force no longer has (rev-edges s13, 3): its count, its oldest, and that
 * the expiry withdraws them unless the section is put back. At the start
 * and at a reload a warning, in --check-config a note; b->orphans keeps
 * the ids for health. */
static void orphans_say(broker *b)
{
	struct orphan_walk w = {.cfg = b->cfg};
	rete_msg m = {{0}};
	if (rete_store_queue_expired(b->store, NULL, INT64_MAX, orphan_step, &w, &m) != RETE_OK)
		store_warn(b, "the queues of parties no longer in the configuration could not be "
			      "read: %s",
			   m.text);
	else if (w.oom)
		store_warn(b, "out of memory reading the queues of parties no longer in the "
			      "configuration");
	free(b->orphans);
	b->orphans = NULL;
	b->norphans = 0;
	if (w.n && (b->orphans = calloc(w.n, sizeof(*b->orphans))) != NULL)
		b->norphans = w.n;
	for (size_t i = 0; i < w.n; i++) {
		char at[32];
		if (i < b->norphans)
			snprintf(b->orphans[i], sizeof(b->orphans[i]), "%s", w.o[i].id);
		store_warn(b, "%s: %" PRIu64 " message%s wait%s in its queue (the oldest logged at "
			      "%s), and %s has no [agency %s] section: %s withdrawn after expiry "
			      "%s unless the section is put back (a reload then delivers them; "
			      "docs/operations.md, \"Removing a party\")",
			   w.o[i].id, w.o[i].n, w.o[i].n == 1 ? "" : "s", w.o[i].n == 1 ? "s" : "",
			   rete_time_format(w.o[i].oldest, at), b->cfg->path, w.o[i].id,
			   w.o[i].n == 1 ? "it is" : "they are", b->cfg->expiry);
	}
	free(w.o);
}

/* copy_sign signs a checkpoint of the store as it is (a restored backup
 * copy, in epoch b->epoch) for the Epoch entry to record when the state
 * file holds none longer: the copy's mark says entries may have been
 * receipted after it, and this is the last checkpoint the broker can
 * vouch for. *note is malloc'd. */
static rete_err copy_sign(broker *b, char **note)
{
	uint8_t root[RETE_MERKLE_HASH];
	rete_msg m;
	rete_err err;

	if (b->check_problems != NULL)
		return RETE_OK; /* a check signs nothing */

	if ((err = rete_store_root(b->store, NULL, b->log_size, root, &m)) != RETE_OK ||
	    (err = rete_checkpoint_sign_epoch(b->cfg->origin, b->log_size, root, b->epoch, b->key,
					      note, &m)) != RETE_OK)
		store_error(b,
			    "--restore: cannot sign a checkpoint of the restored copy %s (size "
			    "%" PRIu64 "): %s",
			    b->cfg->data, b->log_size, m.text);
	return err;
}

/* own_epoch: the restored store goes on as the next epoch, its Epoch
 * entry recording a checkpoint of the store as it is (copy_sign). */
static rete_err own_epoch(broker *b)
{
	b->restore_prev = b->epoch;
	b->restore_epoch = b->epoch + 1;
	b->restore_own = true;
	return copy_sign(b, &b->restore_note);
}

/* copy_refuse says why a store marked as a backup copy is not served
 * without --restore; ahead (may be NULL) is the longer checkpoint of the
 * state file, of epoch ahead_epoch. */
static void copy_refuse(broker *b, const rete_store_copy_mark *mark, const rete_checkpoint *ahead,
			uint32_t ahead_epoch)
{
	const broker_config *c = b->cfg;
	char when[32], state[1400] = "";
	uint32_t next = (ahead != NULL && ahead_epoch > b->epoch ? ahead_epoch : b->epoch) + 1;

	if (ahead != NULL)
		snprintf(state, sizeof(state),
			 ", and this broker already signed a checkpoint of %" PRIu64
			 " entries (epoch %" PRIu32 ", kept in %s)",
			 ahead->size, ahead_epoch, c->state);
	store_error(
	    b,
	    "store %s is a backup copy made by 'rete store backup' at %s (of %s: %" PRIu64
	    " entries, epoch %" PRIu32 ")%s: entries logged after the copy was made may have "
	    "been receipted, and delivered, at indexes this copy would give again. If you "
	    "restored it, start once with --restore (rete-broker -c %s --restore): the log goes "
	    "on as epoch %" PRIu32 " (docs/operations.md, restoring a backup). To move a store, "
	    "stop the broker and move the folder itself with its state file, not a copy",
	    c->data, rete_time_format(mark->made_at_ms, when),
	    mark->source[0] ? mark->source : "a store", mark->size, mark->epoch, state, c->path,
	    next);
}

/* --- where each epoch began: the state file's companion ---------------------------------
 *
 * The state file keeps the last checkpoint the broker signed; the store it
 * belongs to is replaced by a restore. Beside it, STATE.epochs lists where
 * each epoch of that log began (its Epoch entries' indexes), written at
 * every start: a --restore of a copy of an earlier epoch is refused when
 * the copy holds entries past the index where the log the state file
 * follows left the copy's (an epoch began there, rev-broker s17 #1). The
 * text: a line "rete-epochs 1", then "EPOCH INDEX" for each Epoch entry in
 * log order (epoch 1 begins at 0 and has none). docs/operations.md. */

struct epochs {
	size_t n;
	uint32_t *no;
	uint64_t *at;
};

static void epochs_free(struct epochs *e)
{
	free(e->no);
	free(e->at);
	memset(e, 0, sizeof(*e));
}

static bool epochs_path(const broker *b, char *out, size_t cap)
{
	return b->cfg->state != NULL &&
	       (size_t)snprintf(out, cap, "%s.epochs", b->cfg->state) < cap;
}

/* epochs_parse reads text into e; false with why (a line number and what
 * is wrong) when it is not such a list. */
static bool epochs_parse(const char *text, struct epochs *e, char *why, size_t cap)
{
	const char *p = text;
	size_t line = 1;
	memset(e, 0, sizeof(*e));
	if (strncmp(p, "rete-epochs 1\n", 14) != 0) {
		snprintf(why, cap, "its first line is not \"rete-epochs 1\"");
		return false;
	}
	p += 14;
	while (*p != '\0') {
		line++;
		char *end;
		errno = 0;
		unsigned long long no = strtoull(p, &end, 10), at;
		if (end == p || *end != ' ' || errno != 0 || no < 2 || no > UINT32_MAX)
			goto bad;
		p = end + 1;
		at = strtoull(p, &end, 10);
		if (end == p || *end != '\n' || errno != 0)
			goto bad;
		p = end + 1;
		if (e->n > 0 && (no <= e->no[e->n - 1] || at <= e->at[e->n - 1]))
			goto bad;
		uint32_t *nos = realloc(e->no, (e->n + 1) * sizeof(*nos));
		if (nos)
			e->no = nos;
		uint64_t *ats = nos ? realloc(e->at, (e->n + 1) * sizeof(*ats)) : NULL;
		if (!ats) {
			snprintf(why, cap, "out of memory");
			epochs_free(e);
			return false;
		}
		e->at = ats;
		e->no[e->n] = (uint32_t)no;
		e->at[e->n++] = at;
	}
	return true;
bad:
	snprintf(why, cap,
		 "line %zu is not \"EPOCH INDEX\" (two whole numbers, the epoch from 2 up, both "
		 "rising from line to line)",
		 line);
	epochs_free(e);
	return false;
}

/* epochs_read reads the list beside the state file (read as the state
 * file is: a named pipe refused at once): RETE_OK, RETE_ENOENT (none), or
 * RETE_EINVAL with why. */
static rete_err epochs_read(const char *path, struct epochs *e, char *why, size_t cap)
{
	char *text = NULL;
	rete_msg m;
	rete_err err = rete_store_state_read(path, &text, &m);
	memset(e, 0, sizeof(*e));
	if (err == RETE_ENOENT)
		return err;
	if (err != RETE_OK) {
		/* the sentence names the file as "state file PATH: ..." */
		size_t skip = strlen("state file ") + strlen(path) + 2;
		snprintf(why, cap, "%s", strlen(m.text) > skip ? m.text + skip : m.text);
		return RETE_EINVAL;
	}
	bool ok = epochs_parse(text, e, why, cap);
	free(text);
	return ok ? RETE_OK : RETE_EINVAL;
}

/* epochs_write writes the list of this store's Epoch entries (b->epoch_no,
 * b->epoch_at) beside the state file. Said, never fatal: without it a
 * restore is checked against the state file's checkpoint alone. */
static void epochs_write(broker *b)
{
	char path[PATH_MAX];
	rete_msg m;
	size_t cap = 32 + b->nepoch_at * 32, len;
	char *text = malloc(cap);
	if (!epochs_path(b, path, sizeof(path)) || text == NULL) {
		free(text);
		return;
	}
	len = (size_t)snprintf(text, cap, "rete-epochs 1\n");
	for (size_t i = 0; i < b->nepoch_at; i++)
		len += (size_t)snprintf(text + len, cap - len, "%" PRIu32 " %" PRIu64 "\n",
					b->epoch_no[i], b->epoch_at[i]);
	if (rete_store_state_write(path, text, &m) != RETE_OK)
		broker_log_warn("%s (the list of where each epoch began, beside the state "
				   "file): a --restore of an earlier epoch's copy is then checked "
				   "against the state file's checkpoint alone",
				   m.text);
	free(text);
}

/* epochs_check: a --restore of a copy of epoch b->epoch, older than the
 * state file's epoch cp_epoch. The copy and the log the state file follows
 * share the entries below the first index where their epochs differ (an
 * Epoch entry the one has and the other not); a copy longer than that is
 * refused. No list, or one of another log than the state file's, is said
 * and the copy checked as before. */
static rete_err epochs_check(broker *b, uint32_t cp_epoch, uint64_t cp_size)
{
	const broker_config *c = b->cfg;
	char path[PATH_MAX], why[256];
	struct epochs e;
	rete_err err;

	if (!epochs_path(b, path, sizeof(path)))
		return RETE_OK;
	err = epochs_read(path, &e, why, sizeof(why));
	if (err == RETE_ENOENT) {
		store_warn(b,
			   "--restore: no %s says where epoch %" PRIu32 " began (a broker before "
			   "0.7.1 kept none): the copy of epoch %" PRIu32 " is checked against the "
			   "state file's checkpoint alone; check with the backups' dates that it "
			   "was made before that epoch began (docs/operations.md)",
			   path, cp_epoch, b->epoch);
		return RETE_OK;
	}
	if (err != RETE_OK) {
		store_error(b,
			    "--restore: %s: %s; it lists where each epoch of the log began and is "
			    "written at every start. Put back the right one, or remove it: the "
			    "copy is then checked against the state file's checkpoint alone",
			    path, why);
		return RETE_EINVAL;
	}
	/* written at the start before the state file: a start stopped between
	 * the two leaves the list one epoch ahead of the state file's, whose
	 * own part is still right */
	while (e.n > 0 && e.no[e.n - 1] > cp_epoch)
		e.n--;
	if ((e.n == 0 ? 1 : e.no[e.n - 1]) != cp_epoch) {
		store_warn(b,
			   "--restore: %s ends with epoch %" PRIu32 ", the state file's checkpoint "
			   "is of epoch %" PRIu32 ": not the same log's, not used; the copy is "
			   "checked against the state file's checkpoint alone",
			   path, e.n == 0 ? 1 : e.no[e.n - 1], cp_epoch);
		epochs_free(&e);
		return RETE_OK;
	}
	if ((err = broker_epochs_load(b)) != RETE_OK) {
		epochs_free(&e);
		return err;
	}
	size_t i = 0;
	while (i < e.n && i < b->nepoch_at && e.no[i] == b->epoch_no[i] &&
	       e.at[i] == b->epoch_at[i])
		i++;
	uint64_t split = UINT64_MAX;
	uint32_t split_no = 0;
	bool theirs = false;
	if (i < e.n) {
		split = e.at[i];
		split_no = e.no[i];
		theirs = true;
	}
	if (i < b->nepoch_at && b->epoch_at[i] < split) {
		split = b->epoch_at[i];
		split_no = b->epoch_no[i];
		theirs = false;
	}
	epochs_free(&e);
	if (b->log_size <= split)
		return RETE_OK;
	char where[300];
	if (theirs)
		snprintf(where, sizeof(where),
			 "epoch %" PRIu32 " of the log this broker signed last began at log index "
			 "%" PRIu64,
			 split_no, split);
	else
		snprintf(where, sizeof(where),
			 "the copy's own epoch %" PRIu32 ", which the log this broker signed last "
			 "does not hold, began at log index %" PRIu64,
			 split_no, split);
	store_error(b,
		    "--restore: store %s is of epoch %" PRIu32 " and holds %" PRIu64
		    " entries, but %s (%s says so; the state file %s holds its checkpoint of %" PRIu64
		    " entries, epoch %" PRIu32 "): the copy's entries from that index are not the "
		    "ones that log holds and receipted; it cannot go on from here. Restore instead "
		    "the newest backup made in epoch %" PRIu32 ", or a copy of at most %" PRIu64
		    " entries (docs/operations.md, backup and restore)",
		    c->data, b->epoch, b->log_size, where, path, c->state, cp_size, cp_epoch,
		    cp_epoch, split);
	return RETE_EINVAL;
}

/* state_check compares the store with the state file (the last checkpoint
 * this broker signed, kept outside the store folder) and with its copy
 * mark (copy: NULL when the store is not a backup copy). A store shorter
 * than that checkpoint, or of an older epoch, was restored from a copy or
 * lost its tail: the indexes from its size up to the checkpoint's were
 * already receipted and delivered once. A marked copy may be as long as
 * the state file's checkpoint (the file is written once per checkpoint)
 * and still miss entries receipted after it was made. Either is served
 * only when the operator declares the restore (BROKER_RESTORE); then
 * b->restore_note is set and epoch_begin logs the new epoch's first entry:
 * a copy always goes on as a new epoch, recording the state file's
 * checkpoint when it is longer, else one of the copy as it is. */
static rete_err state_check(broker *b, unsigned flags, const rete_store_copy_mark *copy)
{
	const broker_config *c = b->cfg;
	char *note = NULL;
	rete_msg m;
	rete_checkpoint cp;
	uint32_t cp_epoch = 1;
	rete_err err = rete_store_state_read(c->state, &note, &m);

	if (err == RETE_ENOENT) {
		if (copy != NULL && !(flags & BROKER_RESTORE)) {
			copy_refuse(b, copy, NULL, 0);
			return RETE_EINVAL;
		}
		if (!(flags & BROKER_INIT) && b->log_size > 0)
			store_info(b,
				   "no state file %s yet (a store from before it was kept): it "
				   "is written now, then at every checkpoint",
				   c->state);
		if (copy != NULL) {
			store_warn(b,
				   "--restore: there is no state file %s, so nothing says "
				   "which checkpoint the broker signed last; the store is a "
				   "backup copy, so the log goes on as epoch %" PRIu32,
				   c->state, b->epoch + 1);
			return own_epoch(b);
		}
		if (b->journal_lost) {
			store_warn(b,
				   "--restore: the store's journal was lost and there is no state "
				   "file %s: the log goes on as epoch %" PRIu32,
				   c->state, b->epoch + 1);
			return own_epoch(b);
		}
		if (flags & BROKER_RESTORE)
			store_warn(b,
				   "--restore: there is no state file %s and the store is not "
				   "a backup copy, so nothing says entries were lost; starting "
				   "in epoch %" PRIu32 " as the store says",
				   c->state, b->epoch);
		return RETE_OK;
	}
	if (err != RETE_OK) {
		store_error(b, "%s", m.text);
		return err;
	}
	if (flags & BROKER_INIT)
		store_warn(b,
			   "--init: the state file %s names a checkpoint of an earlier log; "
			   "it is replaced by this new log's",
			   c->state);
	else if ((err = rete_checkpoint_verify(note, strlen(note), c->origin, &c->key_pub, &cp,
					       &m)) != RETE_OK ||
		 (err = rete_checkpoint_epoch(note, strlen(note), &cp_epoch, &m)) != RETE_OK) {
		store_error(b,
			    "state file %s does not hold a checkpoint of this log (origin %s, "
			    "broker key of %s): %s; it is the broker's memory of the last "
			    "checkpoint it signed: put back the right one, or remove it if it "
			    "belongs to another log",
			    c->state, c->origin, c->path, m.text);
		free(note);
		return err;
	}
	if (flags & BROKER_INIT) {
		free(note);
		return RETE_OK;
	}
	bool shorter = cp_epoch > b->epoch || (cp_epoch == b->epoch && b->log_size < cp.size);
	if (!shorter) {
		uint8_t root[RETE_MERKLE_HASH];
		if (cp_epoch == b->epoch &&
		    (err = rete_store_root(b->store, NULL, cp.size, root, &m)) != RETE_OK) {
			store_error(b, "cannot read the store %s: %s", c->data, m.text);
			free(note);
			return err;
		}
		if (cp_epoch == b->epoch && sodium_memcmp(root, cp.root, RETE_MERKLE_HASH) != 0) {
			store_error(b,
				    "store %s: its first %" PRIu64 " entries are not those of "
				    "the checkpoint this broker signed last (state file %s): "
				    "this is not the log it wrote; put back the right store",
				    c->data, cp.size, c->state);
			free(note);
			return RETE_ECORRUPT;
		}
		free(note);
		if (copy != NULL) {
			if (!(flags & BROKER_RESTORE)) {
				copy_refuse(b, copy, NULL, 0);
				return RETE_EINVAL;
			}
			/* as long as the state file's checkpoint, but what was
			 * receipted after the copy is unknown: a new epoch all
			 * the same, recording the copy's own checkpoint */
			store_warn(b,
				   "--restore: store %s is a backup copy made at %s of %" PRIu64
				   " entries; the state file's checkpoint (size %" PRIu64
				   ", epoch %" PRIu32 ") is not longer, but entries may "
				   "have been receipted after the copy: the log goes on as "
				   "epoch %" PRIu32,
				   c->data, rete_time_format(copy->made_at_ms, (char[32]){0}),
				   b->log_size, cp.size, cp_epoch, b->epoch + 1);
			return own_epoch(b);
		}
		if (b->journal_lost) {
			/* the batches receipted last may be lost with it: the
			 * agents hold their receipts and submit them again in
			 * the new epoch */
			store_warn(b,
				   "--restore: store %s lost its journal; entries may have been "
				   "receipted after its last commit (%" PRIu64 " entries): the log "
				   "goes on as epoch %" PRIu32,
				   c->data, b->log_size, b->epoch + 1);
			return own_epoch(b);
		}
		if (flags & BROKER_RESTORE)
			store_info(b,
				   "--restore: nothing to declare: store %s is not a backup copy "
				   "(no copy mark) and holds every entry of the last checkpoint "
				   "this broker signed (%" PRIu64 " entries, epoch %" PRIu32
				   ", state file %s); it goes on in epoch %" PRIu32 " as it is. "
				   "Start without --restore from now on",
				   c->data, cp.size, cp_epoch, c->state, b->epoch);
		return RETE_OK;
	}
	if (!(flags & BROKER_RESTORE)) {
		if (copy != NULL)
			copy_refuse(b, copy, &cp, cp_epoch);
		else
			store_error(
			    b,
			    "store %s holds %" PRIu64 " entries (epoch %" PRIu32
			    "), but this broker "
			    "already signed a checkpoint of %" PRIu64 " entries (epoch %" PRIu32
			    ", kept in %s): the store was restored from an older copy or lost its "
			    "tail. If you restored a backup, start once with --restore "
			    "(rete-broker "
			    "-c %s --restore): the log goes on as epoch %" PRIu32 " (docs/"
			    "operations.md, backup and restore); otherwise put back the store that "
			    "holds the whole log",
			    c->data, b->log_size, b->epoch, cp.size, cp_epoch, c->state, c->path,
			    (cp_epoch > b->epoch ? cp_epoch : b->epoch) + 1);
		free(note);
		return RETE_EINVAL;
	}
	if (cp_epoch > b->epoch && b->log_size > cp.size) {
		/* a copy of an epoch before the state file's, longer than its
		 * checkpoint (a backup older than an earlier restore): its
		 * entries from where that epoch began are not the ones the
		 * later epoch logged and receipted, and the Epoch entry would
		 * record a checkpoint shorter than the entries before it,
		 * which the verifiers refuse (every agent would raise its
		 * alarm; s16 rev-final #5) */
		store_error(b,
			    "--restore: store %s is of epoch %" PRIu32 " and holds %" PRIu64
			    " entries, more than the %" PRIu64 " of the checkpoint of epoch %" PRIu32
			    " this broker signed last (state file %s): it is a copy from before an "
			    "earlier restore, and its entries past where epoch %" PRIu32
			    " began are not the ones that epoch logged and receipted; it cannot go on "
			    "from here. Restore instead the newest backup made in epoch %" PRIu32
			    " (docs/operations.md, backup and restore)",
			    c->data, b->epoch, b->log_size, cp.size, cp_epoch, c->state, b->epoch + 1,
			    cp_epoch);
		free(note);
		return RETE_EINVAL;
	}
	if (cp_epoch > b->epoch && (err = epochs_check(b, cp_epoch, cp.size)) != RETE_OK) {
		free(note);
		return err;
	}
	b->restore_note = note;
	b->restore_prev = cp_epoch;
	b->restore_epoch = (cp_epoch > b->epoch ? cp_epoch : b->epoch) + 1;
	return RETE_OK;
}

/* empty_data_file: DIR/data.mdb exists with 0 bytes (an interrupted copy,
 * a file system that lost it): no store, and no place for a new one. */
static bool empty_data_file(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	return snprintf(path, sizeof(path), "%s/data.mdb", dir) < (int)sizeof(path) &&
	       stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
}

/* --- the broker's id ------------------------------------------------------------------- */

/* id_party: what id_check looks for, the broker's id as a party other than
 * the broker in the log's Directories, and the last one that listed it. */
struct id_party {
	const char *id;
	rete_arena arena;
	bool found;
	uint64_t index, serial;
	char kind[32], name[RETE_SHORT_MAX + 1];
};

/* id_party_entry: a rete_store_entry_fn for id_check. Only an entry that
 * holds the id's bytes can name it: the others are not decoded. */
static int id_party_entry(void *ctx, uint64_t index, const uint8_t *entry, size_t len)
{
	struct id_party *s = ctx;
	Rete__LogEntry *le = NULL;
	Rete__Message *msg = NULL;
	rete_msg m;

	if (memmem(entry, len, s->id, strlen(s->id)) == NULL)
		return 0;
	if (rete_log_entry_decode_in(entry, len, &s->arena, &le, &m) == RETE_OK &&
	    rete_signed_decode_in(le->signed_message.data, le->signed_message.len, &s->arena, NULL,
				  &msg, &m) == RETE_OK &&
	    msg->body_case == RETE__MESSAGE__BODY_DIRECTORY) {
		for (size_t i = 0; i < msg->directory->n_parties; i++) {
			const Rete__Party *pa = msg->directory->parties[i];
			if (pa->kind == RETE__PARTY_KIND__PARTY_KIND_BROKER ||
			    strcmp(pa->id, s->id) != 0)
				continue;
			s->found = true;
			s->index = index;
			s->serial = msg->directory->serial;
			snprintf(s->kind, sizeof(s->kind), "%s", broker_kind_name(pa->kind));
			snprintf(s->name, sizeof(s->name), "%s", pa->name);
		}
	}
	rete_arena_reset(&s->arena);
	return 0;
}

/* id_check refuses a broker id that names a party of the log other than
 * the broker: an agency removed from the directory (or an auditor, a
 * coordinator) whose entries stay in the log as its own. A broker under
 * that id would take them for its own and log no Delivery for them.
 * (An agency of broker.ini with the broker's id is the configuration's to
 * refuse, broker/config.c; an agency under the id of the broker in the
 * Directory in force, when broker.ini gives another, is refused here.)
 * The id of the broker in the Directory in force
 * was checked when it came in, so only a changed id costs a walk through
 * the log; only entries that hold the id's bytes are decoded. */
static rete_err id_check(broker *b)
{
	const broker_config *c = b->cfg;
	struct id_party s = {.id = c->id};
	rete_buf entry = {0};
	Rete__LogEntry *le = NULL;
	Rete__Message *msg = NULL;
	char was[64] = "";
	uint64_t at;
	rete_msg m;
	rete_err err;

	err = rete_store_directory(b->store, NULL, &at, &entry, &m);
	if (err == RETE_ENOENT)
		return RETE_OK; /* a new log: no Directory yet */
	if (err != RETE_OK) {
		store_error(b, "store %s: cannot read the directory in force: %s", c->data, m.text);
		return err;
	}
	if (rete_log_entry_decode_in(entry.data, entry.len, &s.arena, &le, &m) == RETE_OK &&
	    rete_signed_decode_in(le->signed_message.data, le->signed_message.len, &s.arena, NULL,
				  &msg, &m) == RETE_OK &&
	    msg->body_case == RETE__MESSAGE__BODY_DIRECTORY)
		for (size_t i = 0; i < msg->directory->n_parties; i++)
			if (msg->directory->parties[i]->kind == RETE__PARTY_KIND__PARTY_KIND_BROKER)
				snprintf(was, sizeof(was), "%s", msg->directory->parties[i]->id);
	rete_arena_reset(&s.arena);
	rete_buf_free(&entry);
	if (strcmp(was, c->id) == 0) {
		rete_arena_free(&s.arena);
		return RETE_OK;
	}
	if (broker_config_party(c, was) != NULL) {
		store_error(b,
			    "[agency %s]: '%s' is the broker's id in the log's directory in force "
			    "(broker.ini gives the broker the id '%s'); the log's entries under it "
			    "are the broker's: give the agency another id",
			    was, was, c->id);
		rete_arena_free(&s.arena);
		return RETE_EINVAL;
	}
	err = rete_store_entries_iter(b->store, NULL, 0, UINT64_MAX, id_party_entry, &s, &m);
	rete_arena_free(&s.arena);
	if (err != RETE_OK) {
		store_error(b, "store %s: cannot read the log's directories: %s", c->data, m.text);
		return err;
	}
	if (!s.found)
		return RETE_OK;
	char keep[128] = "Keep the broker's earlier id";
	if (was[0])
		snprintf(keep, sizeof(keep),
			 "Keep the id the broker has in the directory in force, '%s'", was);
	store_error(b,
		    "[broker] id: '%s' is the id of a party of this log (%s '%s', in directory "
		    "%" PRIu64 ", entry %" PRIu64 ", the last to list it): the log's entries under "
		    "that id are that party's, and a broker with its id would take them for its "
		    "own (their deliveries would go unrecorded). %s, or give the broker an id no "
		    "party of the log ever had",
		    c->id, s.kind, s.name, s.serial, s.index, keep);
	return RETE_EINVAL;
}

/* store_start locks, opens and checks the store before anything listens:
 * the writer's lock (one broker per store), a new log only with
 * BROKER_INIT (never over a backup copy or an empty data.mdb), the log's
 * identity against broker.ini, the broker's id against the parties of the
 * log (id_check), then the state file and the copy mark. */
static rete_err store_start(broker *b, unsigned flags)
{
	const broker_config *c = b->cfg;
	struct stat st;
	rete_store_identity id;
	rete_store_copy_mark mark;
	bool adopted = false, copy = false;
	rete_msg m;
	rete_err err;

	bool check = b->check_problems != NULL;

	if (stat(c->data, &st) != 0) {
		if (!(flags & BROKER_INIT)) {
			/* a check before the first start (--init) is usual: a note */
			(check ? store_warn : store_error)(
			    b,
			    "the store folder %s does not exist; to create a new log "
			    "there, start once with --init (rete-broker -c %s --init); "
			    "if the store was moved, set data in %s",
			    c->data, c->path, c->path);
			return check ? RETE_OK : RETE_ENOENT;
		}
		if (check)
			return RETE_OK; /* --init will create it */
		if (mkdir(c->data, 0700) != 0 && errno != EEXIST) {
			store_error(b, "cannot create the store folder %s: %s", c->data,
				    strerror(errno));
			return RETE_EIO;
		}
	}
	if (empty_data_file(c->data)) {
		store_error(b,
			    "store %s: data.mdb is empty (0 bytes): it is not a store (an "
			    "interrupted copy?). Put back the whole store folder; %s",
			    c->data,
			    (flags & BROKER_INIT)
				? "--init creates a new log in an empty folder only: remove "
				  "data.mdb first if a new log is really meant"
				: "a new log is created only with --init, in an empty folder");
		return RETE_ECORRUPT;
	}
	/* a check reads beside a running broker (systemctl reload checks the
	 * file first): no lock, read-only */
	if (!check && (err = rete_store_lock(c->data, &b->store_lock, &m)) != RETE_OK) {
		store_error(b, "%s", m.text);
		return err;
	}
	/* --restore: a journal file lost is one more reason for a new epoch */
	rete_store_options sopt = {.journal_lost_ok = (flags & BROKER_RESTORE) != 0};
	err = rete_store_open_ex(&b->store, c->data,
				 check			 ? RETE_STORE_RDONLY
				 : (flags & BROKER_INIT) ? RETE_STORE_CREATE | RETE_STORE_JOURNAL
							 : RETE_STORE_JOURNAL,
				 &sopt, &m);
	if (err == RETE_ENOENT && check && (flags & BROKER_INIT))
		return RETE_OK; /* --init will create it */
	if (err == RETE_ENOENT) {
		(check ? store_warn : store_error)(
		    b,
		    "there is no log in %s (data.mdb missing); to create a new log "
		    "there, start once with --init (rete-broker -c %s --init); if "
		    "the store was moved, set data in %s",
		    c->data, c->path, c->path);
		return check ? RETE_OK : err;
	}
	if (err != RETE_OK) {
		store_error(b, "cannot open the store %s: %s", c->data, m.text);
		return err;
	}
	if ((err = rete_store_copy_mark_get(b->store, NULL, &mark, &copy, &m)) != RETE_OK) {
		store_error(b, "%s", m.text);
		return err;
	}
	if (check) {
		/* the journal, read as the start reads it (nothing changed) */
		m.text[0] = '\0';
		if ((err = rete_store_journal_state(b->store, true, (flags & BROKER_RESTORE) != 0,
						    NULL, NULL, &m)) != RETE_OK) {
			store_error(b, "cannot open the store %s: %s", c->data, m.text);
			return err;
		}
		if (m.text[0] != '\0')
			store_warn(b, "--restore: %s", m.text);
	} else {
		char why[800];
		uint32_t was = rete_store_schema_was(b->store);
		if (was == RETE_STORE_SCHEMA_V2 || was == RETE_STORE_SCHEMA_V3)
			store_info(b,
				   "store %s was of schema %" PRIu32 ": it is of schema %d now, "
				   "with its journal (journal.0 and journal.1 beside data.mdb); "
				   "older rete versions (store schema %" PRIu32 " and below) no "
				   "longer open it: going back takes a backup made before "
				   "(docs/operations.md, \"Upgrading\")",
				   c->data, was, RETE_STORE_SCHEMA, was);
		if (rete_store_journal_lost(b->store, why, sizeof(why))) {
			b->journal_lost = true;
			store_warn(b, "--restore: %s", why);
		}
	}
	if (copy && (flags & BROKER_INIT)) {
		char when[32];
		store_error(b,
			    "--init: store %s is a backup copy made at %s (of %s: %" PRIu64
			    " entries, epoch %" PRIu32 "), not an empty folder; --init creates "
			    "a new log in an empty folder only. To serve this copy, start "
			    "with --restore (rete-broker -c %s --restore): it goes on as a "
			    "new epoch",
			    c->data, rete_time_format(mark.made_at_ms, when),
			    mark.source[0] ? mark.source : "a store", mark.size, mark.epoch,
			    c->path);
		return RETE_EEXIST;
	}
	if ((flags & BROKER_INIT) && !check &&
	    (err = rete_store_identity_init(b->store, c->origin, &c->key_pub, &m)) != RETE_OK) {
		store_error(b, "%s", m.text);
		return err;
	}
	if (check && (err = rete_store_identity_get(b->store, NULL, &id, &m)) != RETE_OK) {
		store_error(b, "cannot read the store %s: %s", c->data, m.text);
		return err;
	}
	if (check && (flags & BROKER_INIT)) {
		/* what rete_store_identity_init would refuse */
		if (id.size > 0 || (id.recorded && (strcmp(id.origin, c->origin) != 0 ||
						    sodium_memcmp(id.broker_key, c->key_pub.ed,
								  RETE_PK_LEN) != 0))) {
			store_error(b,
				    "--init: store %s already holds a log (%" PRIu64
				    " entries, origin %s); --init creates a new log in an empty "
				    "folder only",
				    c->data, id.size, id.recorded ? id.origin : "not recorded");
			return RETE_EEXIST;
		}
		return RETE_OK;
	}
	if (check && !id.recorded && id.size > 0) {
		/* adopting writes the identity: at start, not in a check */
		store_warn(b,
			   "store %s records no identity (schema 1): at start it becomes the log "
			   "of origin %s and this broker's key, if its latest checkpoint is "
			   "signed by them",
			   c->data, c->origin);
	} else if ((err = rete_store_identity_check(b->store, c->origin, &c->key_pub, c->path,
						    &adopted, &id, &m)) != RETE_OK) {
		store_error(b, "%s", m.text);
		return err;
	}
	if (flags & BROKER_INIT)
		store_info(b, "--init: a new log in %s (origin %s)", c->data, c->origin);
	/* The identity's record raises schema 1 straight to this one (the
	 * journal's files were made at the open): said as the raise from 2
	 * or 3 is, since the programs that read the store before no longer
	 * open it. */
	if (adopted)
		store_info(b,
			   "store %s recorded no identity (schema 1): it is now the log of "
			   "origin %s and this broker's key, as %s says; a change of either "
			   "is refused from now on; it is of schema %d now, with its journal "
			   "(journal.0 and journal.1 beside data.mdb); older rete versions "
			   "(store schema 3 and below) no longer open it: going back takes a "
			   "backup made before (docs/operations.md, \"Upgrading\")",
			   c->data, c->origin, c->path, RETE_STORE_SCHEMA);
	if ((err = id_check(b)) != RETE_OK)
		return err;
	b->epoch = id.epoch;
	b->log_size = id.size;
	if (rete_store_checkpoint_latest(b->store, NULL, &b->cp_size, &b->cp_note, NULL) !=
	    RETE_OK) {
		b->cp_size = 0;
		b->cp_note = NULL;
	}
	return state_check(b, flags, copy ? &mark : NULL);
}

/* probe_say says a problem (or, not problem, a note) of --check-config
 * about the key on line of the file (0: none), as store_say does, with
 * the line: "broker.ini:5: [broker] listen: ...". */
static void probe_say(broker *b, int line, bool problem, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void probe_say(broker *b, int line, bool problem, const char *fmt, ...)
{
	char where[PATH_MAX + 16], text[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d", b->cfg->path, line);
	else
		snprintf(where, sizeof(where), "%s", b->cfg->path);
	if (problem) {
		fprintf(stderr, "%s: %s\n", where, text);
		rete_problems_add(b->check_problems, where, "%s", text);
	} else {
		printf("%s: note: %s\n", where, text);
		rete_problems_add(b->check_notes, where, "%s", text);
	}
}

/* endpoint_probe, for --check-config: what the start would meet where the
 * broker's key (listen or events) would listen. A name must be an
 * interface of this machine (ZeroMQ resolves no host names to listen on);
 * on an address, '*' or '[::]' it binds a plain socket as ZeroMQ would
 * ('[::]' taking IPv4 too): an address not of this machine or a port
 * below 1024 is a problem, a port in use (by this broker, running?) a
 * note. On an ipc:// path a program listens on, the start is refused
 * (ipc_taken): a problem, unless a broker runs on this configuration's
 * store (this broker, running?: a note). The configuration has refused
 * everything else
 * (rete_endpoint_check: an IPv4 address, an IPv6 one in brackets, a name,
 * '*'). */
static void endpoint_probe(broker *b, const char *key, const char *ep, int line)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl = sizeof(*s4);
	char host[256];
	unsigned port;

	if (!rete_endpoint_tcp_parts(ep, host, sizeof(host), &port)) {
		/* ipc://: the start refuses a path a program listens on (its
		 * bind would take the socket from it); the running broker of
		 * this store is the one there when checked beside it */
		/* a broker running on this store is asked nothing: connecting
		 * to its socket would make it log a peer that left (every
		 * `systemctl reload` runs this check beside it) */
		bool ours = rete_store_served(b->cfg->data);
		struct stat st;
		int served = !ours ? rete_endpoint_ipc_served(ep)
			     : strncmp(ep, "ipc://", 6) == 0 && lstat(ep + 6, &st) == 0 ? 1
											: 0;
		if (served == 1 && ours)
			probe_say(b, line, false,
				  "[broker] %s: %s is in use (by this broker, running?); the "
				  "start fails while another program listens there",
				  key, ep);
		else if (served != 0)
			probe_say(b, line, true,
				  "[broker] %s: %s: %s; the start would be refused: stop it, "
				  "or give another path",
				  key, ep,
				  served == 1 ? "another program (another rete-broker?) listens "
						"there, and no broker runs on this store"
					      : "cannot tell whether another program listens "
						"there");
		return;
	}
	size_t hl = strlen(host);
	if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
		host[hl - 1] = ']';
	} else if (strcmp(host, "*") == 0) {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else {
		if (if_nametoindex(host) == 0)
			probe_say(b, line, true,
				  "[broker] %s: %s: '%s' is no network interface of this "
				  "machine, and ZeroMQ listens on an interface, an address, * or "
				  "[::], without resolving host names; give an address of this "
				  "machine (e.g. tcp://10.0.0.5:7700 or tcp://[2001:db8::5]:7700), "
				  "* for all its IPv4 addresses or [::] for all of them",
				  key, ep, host);
		return;
	}
	if (ss.ss_family == AF_INET)
		s4->sin_port = htons((uint16_t)port);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return; /* no IPv6 here: the start says so */
	int one = 1, zero = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* ZeroMQ's IPv6 sockets take IPv4 too: [::] holds the port on both */
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	int e = bind(fd, (struct sockaddr *)&ss, sl) == 0 ? 0 : errno;
	close(fd);
	if (e == EADDRNOTAVAIL)
		probe_say(b, line, true,
			  "[broker] %s: %s is not an address of this machine, so the broker "
			  "could not listen there; give one of its addresses, * for all its "
			  "IPv4 addresses or [::] for all of them",
			  key, ep);
	else if (e == EACCES)
		probe_say(b, line, true,
			  "[broker] %s: %s: a port below 1024 needs privileges the broker does "
			  "not have; give a port from 1024 up",
			  key, ep);
	else if (e == EADDRINUSE)
		probe_say(b, line, false,
			  "[broker] %s: %s is in use (by this broker, running?); the start "
			  "fails while another program listens there",
			  key, ep);
}

/* access_check says, in --check-config, what keeps the broker from
 * writing its access record: a mistake in the file (a folder, one of the
 * broker's own files) is a problem; a record that cannot be written now is
 * a WARNING, not a problem: the start refuses the remote reads, not
 * itself (ExecStartPre runs --check-config). */
static void access_check(broker *b)
{
	const broker_config *c = b->cfg;
	char why[PATH_MAX + 256], where[PATH_MAX + 64], text[2 * PATH_MAX + 800];
	bool mistake;
	if (c->access_log == NULL)
		return;
	if (c->access_log_line > 0)
		snprintf(where, sizeof(where), "%s:%d", c->path, c->access_log_line);
	else
		snprintf(where, sizeof(where), "%s", c->path);
	const char *key = c->access_log_line > 0
			      ? "[broker] access_log"
			      : "[broker] access_log (not set: the default, DATA.access.log)";
	if (broker_access_log_bad(c, c->access_log, why, sizeof(why), &mistake) == NULL) {
		/* 0.7.0 took a record in the store folder: a warning, not a
		 * problem (ExecStartPre would keep an upgraded broker down) */
		if (broker_access_log_in_store(c, c->access_log))
			printf("%s: WARNING: %s: %s is in the store folder %s: a restore "
			       "replaces that folder, and with it the record of the remote "
			       "reads; move the file beside the folder (stop the broker, mv "
			       "it, set access_log to the new place, e.g. the default "
			       "DATA.access.log, start)\n",
			       where, key, c->access_log, c->data);
		return;
	}
	if (mistake) {
		snprintf(text, sizeof(text),
			 "%s: %s; give a file of its own that this broker may write, e.g. the "
			 "default, DATA.access.log beside the store folder: every remote read of "
			 "the log is recorded there before it is served",
			 key, why);
		fprintf(stderr, "%s: %s\n", where, text);
		rete_problems_add(b->check_problems, where, "%s", text);
		return;
	}
	printf("%s: WARNING: %s: %s; the broker starts, but refuses every remote read of the "
	       "log (\"this read was not made\") until it can write the record there: make "
	       "it writable, or give another access_log\n",
	       where, key, why);
}

int broker_check_store(broker_config *c, unsigned flags, rete_problems *problems,
		       rete_problems *notes)
{
	broker b = {.cfg = c, .sigfd = -1, .store_lock = RETE_FOLDER_LOCK_NONE, .epoch = 1};
	size_t before = problems->n;

	b.check_problems = problems;
	b.check_notes = notes;
	endpoint_probe(&b, "listen", c->listen, c->listen_line);
	endpoint_probe(&b, "events", c->events, c->events_line);
	access_check(&b);
	if (store_start(&b, flags) != RETE_OK) {
		if (problems->n == before)
			store_error(&b, "store %s cannot be checked", c->data);
	} else if (b.store != NULL)
		orphans_say(&b);
	free(b.orphans);
	rete_store_close(&b.store);
	free(b.restore_note);
	free(b.cp_note);
	return problems->n == before ? 0 : 2;
}

/* epoch_said logs that the log goes on as epoch e->epoch from index at,
 * naming the checkpoint the Epoch entry records: the state file's or the
 * restored copy's own, and its size (the operator need not read the entry
 * to know which). */
static void epoch_said(const broker *b, const Rete__Epoch *e, uint64_t at)
{
	rete_checkpoint cp;
	char size[48] = "";
	if (rete_checkpoint_parse(e->checkpoint, strlen(e->checkpoint), &cp, NULL) == RETE_OK)
		snprintf(size, sizeof(size), " of %" PRIu64 " entries", cp.size);
	broker_log_warn("--restore: the log goes on as epoch %" PRIu32 " from index %" PRIu64
			"; that entry records %s checkpoint%s (epoch %" PRIu32 ")%s",
			e->epoch, at,
			b->restore_own ? "the restored copy's own" : "the state file's", size,
			e->previous_epoch,
			b->restore_own ? ", signed now (no state file holds a longer one)" : "");
}

/* epoch_begin logs the first entry of a new epoch after a declared
 * restore: it records the last checkpoint signed before (the indexes from
 * the restored size up to its size were used twice). */
static rete_err epoch_begin(broker *b)
{
	char id[64];
	Rete__Epoch e;
	rete_err err = RETE_EINVAL;

	rete__epoch__init(&e);
	e.epoch = b->restore_epoch;
	e.previous_epoch = b->restore_prev;
	e.checkpoint = b->restore_note;
	snprintf(id, sizeof(id), "epoch-%" PRIu32, e.epoch);
	batch_reset(b->bt);
	broker_own *o = own_new(b, id, "", "");
	if (!o)
		return RETE_ENOMEM;
	o->msg.body_case = RETE__MESSAGE__BODY_EPOCH;
	o->msg.epoch = &e;
	uint64_t at = b->log_size;
	if (own_append(b, o, rete_now_ms())) {
		err = commit_now(b);
		if (err == RETE_OK && b->bt->ops[0].status != RETE_STORE_ACCEPTED) {
			broker_log_error("the store refused the epoch entry: %s",
					 b->bt->ops[0].error_text);
			err = RETE_EINVAL;
		}
	}
	batch_reset(b->bt);
	if (err != RETE_OK) {
		broker_log_error("cannot log the start of epoch %" PRIu32, e.epoch);
		return err;
	}
	b->epoch = e.epoch;
	epoch_said(b, &e, at);
	return RETE_OK;
}

/* ipc_taken: is endpoint an ipc:// path a program listens on (or one it
 * cannot tell)? Then it says so, naming the key, and binding is refused:
 * ZeroMQ's ipc bind deletes the socket file of a broker still running
 * there, which would go on unreachable and silent (review s16 rev-edges
 * 2). A socket file nobody listens on (a killed broker's) is not taken. */
static bool ipc_taken(const char *endpoint, const char *key)
{
	int served = rete_endpoint_ipc_served(endpoint);
	if (served == 1)
		broker_log_error("cannot bind %s ([broker] %s): another program (another "
				 "rete-broker?) listens there: stop it, or give another path",
				 endpoint, key);
	else if (served != 0)
		broker_log_error("cannot bind %s ([broker] %s): cannot tell whether another "
				 "program listens there (%s), and binding would take its socket "
				 "from it: remove the file if it is nobody's, or give another path",
				 endpoint, key, strerror(errno));
	return served != 0;
}

static void *server_socket(broker *b, int type, const char *domain, const char *endpoint)
{
	if (ipc_taken(endpoint, type == ZMQ_ROUTER ? "listen" : "events"))
		return NULL;
	void *s = zmq_socket(b->zctx, type);
	int one = 1, linger = 1000;
	int hb = (int)b->cfg->heartbeat_ms, hbt = (int)(3 * b->cfg->heartbeat_ms);
	int64_t maxmsg = (int64_t)b->cfg->max_frame;
	int hwm = 100000;
	/* an IPv6 address to listen on ([::] takes IPv4 too); '*' stays IPv4 */
	int ipv6 = rete_endpoint_ipv6(endpoint, RETE_ENDPOINT_LISTEN);
	if (!s)
		return NULL;
	if (zmq_setsockopt(s, ZMQ_IPV6, &ipv6, sizeof(ipv6)) < 0 ||
	    zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) < 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof(one)) < 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, b->key->x_sk, RETE_PK_LEN) < 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, b->key->pub.x, RETE_PK_LEN) < 0 ||
	    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &hb, sizeof(hb)) < 0 ||
	    zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof(hbt)) < 0 ||
	    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) < 0 ||
	    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
	    /* a send to a connection that is gone fails (EHOSTUNREACH)
	     * instead of vanishing: deliveries follow the live ones */
	    (type == ZMQ_ROUTER &&
	     zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) < 0) ||
	    zmq_bind(s, endpoint) < 0) {
		int e = zmq_errno();
		const char *key = type == ZMQ_ROUTER ? "listen" : "events";
		broker_log_error(
		    "cannot bind %s ([broker] %s): %s%s", endpoint, key, zmq_strerror(e),
		    e == EADDRINUSE ? "; another program (another rete-broker?) listens there: "
				      "stop it, or give another port"
		    : e == EADDRNOTAVAIL ? "; the address is not one of this machine's: give one "
					   "of its addresses, * for all its IPv4 addresses or "
					   "[::] for all of them"
		    : e == ENODEV ? "; this machine has no interface of that name (ZeroMQ resolves "
				    "no host names to listen on: give an address, * or [::])"
		    : e == EACCES ? "; a port below 1024 needs privileges the broker "
				    "does not have: give a port from 1024 up"
				  : "");
		zmq_close(s);
		return NULL;
	}
	return s;
}

/* monitor_drain logs connections coming and going on the ROUTER socket;
 * a peer whose frame exceeded max_frame is disconnected by ZeroMQ itself
 * and shows up here. */
static void monitor_drain(broker *b)
{
	for (;;) {
		zmq_msg_t ev;
		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, b->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		uint16_t event = 0;
		uint32_t value = 0;
		if (zmq_msg_size(&ev) >= 6) {
			memcpy(&event, zmq_msg_data(&ev), 2);
			memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
		}
		bool more = zmq_msg_more(&ev);
		zmq_msg_close(&ev);
		char addr[128] = "";
		if (more) {
			zmq_msg_t a;
			zmq_msg_init(&a);
			if (zmq_msg_recv(&a, b->mon, 0) >= 0) {
				size_t l = zmq_msg_size(&a);
				if (l >= sizeof(addr))
					l = sizeof(addr) - 1;
				memcpy(addr, zmq_msg_data(&a), l);
			}
			zmq_msg_close(&a);
		}
		const char *party =
		    value < b->nfd_party && b->fd_party[value][0] ? b->fd_party[value] : NULL;
		if (event == ZMQ_EVENT_DISCONNECTED) {
			if (party) {
				/* A coordinator's or auditor's `rete monitor`, `health` or
				 * `report` closing its connection is routine: debug. An
				 * agency's is news, but one on a flapping line must not
				 * fill the log: one line per agency and minute. */
				const broker_party *bp = broker_config_party(b->cfg, party);
				char key[RETE_ID_MAX + 64];
				snprintf(key, sizeof(key), "closed connections of %s", party);
				broker_log_limited(
				    bp && !broker_kind_is_agency(bp->kind) ? RETE_LOG_DEBUG
									   : RETE_LOG_INFO,
				    key,
				    "the connection of %s closed (fd %u): it left or "
				    "fell silent, or sent a frame over max_frame "
				    "(%" PRIu64 " bytes)",
				    party, value, b->cfg->max_frame);
				/* is its delivery connection still there? */
				broker_peer *p = broker_peer_find(b, party);
				if (p && p->nconns)
					ping_peer(b, p);
			} else
				/* also every refused handshake: limited like those */
				broker_log_limited(
				    RETE_LOG_INFO, "connections closed before their first frame",
				    "a connection closed (fd %u) before its first "
				    "frame: the peer left, or its first frame was over "
				    "max_frame (%" PRIu64 " bytes)",
				    value, b->cfg->max_frame);
			if (party)
				b->fd_party[value][0] = '\0';
		} else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
			broker_log_debug("a handshake was refused (fd %u)", value);
		else if (event == ZMQ_EVENT_ACCEPTED) {
			if (party) /* the fd of a connection that is gone */
				b->fd_party[value][0] = '\0';
			char local[sizeof(addr)];
			broker_log_debug("a connection was accepted on %s (fd %u)",
					 rete_endpoint_peer_text(addr, local, sizeof(local)),
					 value);
		}
	}
}

static void broker_free(broker *b)
{
	int linger = 0;
	free(b->orphans);
	b->orphans = NULL;
	broker_access_flush(b);
	rete_access_log_close(&b->access);
	/* Stop the monitor BEFORE closing the socket that reads it: otherwise
	 * an I/O thread can block sending a monitor event nobody reads, and
	 * zmq_ctx_term waits for it forever (seen as a hang after SIGTERM).
	 * Nothing unsent matters at exit: undelivered entries stay queued in
	 * the store, so every socket closes with linger 0. */
	if (b->router && b->mon)
		zmq_socket_monitor(b->router, NULL, 0);
	if (b->mon) {
		zmq_setsockopt(b->mon, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_close(b->mon);
	}
	if (b->router) {
		zmq_setsockopt(b->router, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_close(b->router);
	}
	if (b->pub) {
		zmq_setsockopt(b->pub, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_close(b->pub);
	}
	if (b->zctx)
		zmq_ctx_shutdown(b->zctx);
	broker_zap_stop(&b->zap);
	if (b->zctx)
		zmq_ctx_term(b->zctx);
	broker_worker_stop(&b->worker); /* collects a batch in flight, unanswered */
	broker_stall_stop(&b->stall); /* after the commits it watches */
	broker_pool_stop(&b->pool);
	/* after the committer (it times its commits), before the store (a
	 * scrape reads it) */
	broker_metrics_stop(&b->metrics);
	broker_tsa_stop(&b->tsa); /* before the store it writes to */
	rete_store_close(&b->store);
	rete_store_unlock(&b->store_lock); /* after the store: no writer left */
	free(b->restore_note);
	free(b->epoch_at);
	free(b->epoch_no);
	rete_seckey_free(&b->key);
	for (size_t i = 0; i < b->npeers; i++) {
		free(b->peers[i].inflight);
		free(b->peers[i].parked);
	}
	broker_id_index_free(&b->peer_index);
	free(b->peers);
	free(b->fd_party);
	for (int i = 0; i < 2; i++) {
		broker_batch *bt = &b->batches[i];
		if (bt->frames)
			for (size_t j = 0; j < BROKER_BATCH_MAX; j++)
				frame_clear(&bt->frames[j]);
		batch_reset(bt);
		rete_arena_free(&bt->arena);
		free(bt->frames);
		free(bt->own);
		free(bt->ops);
		free(bt->op_msg);
	}
	rete_buf_free(&b->dir_entry);
	free(b->cp_note);
	free(b->rc_note);
	if (b->sigfd >= 0)
		close(b->sigfd);
	broker_config_free(&b->cfg);
}

int broker_run(broker_config *c, unsigned flags)
{
	broker b = {.cfg = c, .sigfd = -1, .store_lock = RETE_FOLDER_LOCK_NONE, .epoch = 1};
	rete_msg m;
	broker_frame **jobs = NULL;
	int rc = 2;
	bool curl = false; /* libcurl set up: cleaned up at the end (c may be
			      freed by then: a reload replaces the config) */

	/* Block the signals before any thread exists (ZeroMQ's, the ZAP
	 * handler, the pool), so that only the signalfd sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	b.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (b.sigfd < 0) {
		broker_log_error("cannot watch signals: %s", strerror(errno));
		goto out;
	}
	if (rete_keyfile_load_secret(c->key_path, &b.key, &m) != RETE_OK) {
		broker_log_error("%s", m.text);
		goto out;
	}
	/* libcurl's global set-up, before any thread of ours or ZeroMQ's */
	if (c->tsa_url && rete_tsa_global_init(&m) != RETE_OK) {
		broker_log_error("%s", m.text);
		goto out;
	}
	curl = c->tsa_url != NULL;
	/* before --init makes a log; server_socket asks again at the bind. A
	 * broker already running on this store is left to store_start's lock,
	 * whose refusal names it (its pid) */
	if (!rete_store_served(c->data) &&
	    (ipc_taken(c->listen, "listen") || ipc_taken(c->events, "events")))
		goto out;
	if (store_start(&b, flags) != RETE_OK)
		goto out;
	/* every remote read is recorded before it is served; a record that
	 * cannot be written refuses the reads, not the start (access.c) */
	broker_access_open(&b);
	if (broker_tsa_start(&b.tsa, b.store, c, &m) != RETE_OK) {
		broker_log_error("time stamps: %s", m.text);
		goto out;
	}
	if (b.tsa)
		broker_log_info("time stamps: every stored checkpoint is sent to the TSA at %s "
				"(tokens checked against %s; timestamp_grace %s)",
				c->tsa_url, c->tsa_ca, c->timestamp_grace);
	if (peers_rebuild(&b) != RETE_OK ||
	    broker_pool_start(&b.pool, c->verify_threads) != RETE_OK) {
		broker_log_error("out of memory");
		goto out;
	}
	b.batches[0].frames = calloc(BROKER_BATCH_MAX, sizeof(broker_frame));
	b.batches[1].frames = calloc(BROKER_BATCH_MAX, sizeof(broker_frame));
	b.bt = &b.batches[0];
	jobs = calloc(BROKER_BATCH_MAX, sizeof(*jobs));
	b.zctx = zmq_ctx_new();
	if (!b.batches[0].frames || !b.batches[1].frames || !jobs || !b.zctx ||
	    broker_worker_start(&b.worker) != RETE_OK ||
	    broker_stall_start(&b.stall, c->data, BROKER_COMMIT_SLOW_MS) != RETE_OK) {
		broker_log_error("out of memory");
		goto out;
	}
	/* The ZAP handler first: a CURVE server without one admits anyone. */
	if (broker_zap_start(&b.zap, b.zctx, c, &m) != RETE_OK) {
		broker_log_error("%s", m.text);
		goto out;
	}
	b.router = server_socket(&b, ZMQ_ROUTER, BROKER_ZAP_DOMAIN, c->listen);
	if (!b.router)
		goto out;
	if (zmq_socket_monitor(b.router, "inproc://rete-broker-monitor",
			       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
				   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0) {
		b.mon = zmq_socket(b.zctx, ZMQ_PAIR);
		if (b.mon && zmq_connect(b.mon, "inproc://rete-broker-monitor") < 0) {
			zmq_close(b.mon);
			b.mon = NULL;
		}
	}
	b.pub = server_socket(&b, ZMQ_PUB, BROKER_ZAP_DOMAIN_EVENTS, c->events);
	if (!b.pub)
		goto out;
	/* before the restore's epoch entry, which the clock dates: after it,
	 * that entry would be the newest time and hide any gap */
	clock_start(&b);
	if (b.restore_note && epoch_begin(&b) != RETE_OK)
		goto out;
	if (broker_epochs_load(&b) != RETE_OK)
		goto out;
	epochs_write(&b);
	if (directory_sync(&b) != RETE_OK) {
		broker_log_error("cannot log the directory");
		goto out;
	}
	checkpoint_make(&b);
	/* the state file is written at every checkpoint; at start too, so that
	 * a broker that cannot keep it does not run at all */
	if (b.cp_note && rete_store_state_write(c->state, b.cp_note, &m) != RETE_OK) {
		broker_log_error("%s; it keeps the last checkpoint the broker signed (broker.ini "
				 "state, docs/broker-config.md)",
				 m.text);
		goto out;
	}
	clock_mark(&b);
	if (broker_metrics_start(&b, &b.metrics, &m) != RETE_OK) {
		broker_log_error("%s", m.text);
		goto out;
	}
	if (b.metrics) /* measured only where someone can read it */
		broker_pool_count_cpu(b.pool, verify_cpu_add, b.metrics);
	parked_load(&b);
	orphans_say(&b);
	char version[128];
	broker_log_info("started: broker %s, origin %s, epoch %" PRIu32 ", log size %" PRIu64
			", %zu parties, listening on %s, events on %s; rete-broker %s, protocol "
			"%" PRIu32 ", store schema %" PRIu32,
			b.cfg->id, b.cfg->origin, b.epoch, b.log_size, b.cfg->nparties,
			b.cfg->listen, b.cfg->events, rete_version_short(version, sizeof(version)),
			rete_version_protocol(), rete_version_store_schema());
	broker_log_buffer(true); /* written before every wait for the network */

	int64_t now = mono_ms();
	b.clock_wall_ms = rete_now_ms(); /* a jump before the first scan counts too */
	b.clock_boot_ms = boot_ms();
	b.last_scan_ms = now;
	b.last_ping_ms = now;
	b.cp_mono_ms = now;
	while (!b.stop) {
		/* the committer's fd: a batch whose commit is done, to answer */
		int wfd = b.fly ? broker_worker_fd(b.worker) : -1;
		zmq_pollitem_t items[4] = {{b.router, 0, ZMQ_POLLIN, 0},
					   {NULL, b.sigfd, ZMQ_POLLIN, 0}};
		int nitems = 2, imon = -1, iw = -1;
		broker_log_flush();
		if (b.mon) {
			imon = nitems++;
			items[imon] = (zmq_pollitem_t){b.mon, 0, ZMQ_POLLIN, 0};
		}
		if (wfd >= 0) {
			iw = nitems++;
			items[iw] = (zmq_pollitem_t){NULL, wfd, ZMQ_POLLIN, 0};
		}
		long timeout = 1000 - (mono_ms() - b.last_scan_ms);
		if (timeout < 0)
			timeout = 0;
		if (zmq_poll(items, nitems, timeout) < 0 && zmq_errno() != EINTR) {
			broker_log_error("poll failed: %s", zmq_strerror(zmq_errno()));
			break;
		}
		if (items[1].revents & ZMQ_POLLIN) {
			struct signalfd_siginfo si;
			while (read(b.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					pipe_collect(&b);
					reload(&b);
				} else {
					broker_log_info(
					    "signal %u: stopping after the batch in hand",
					    si.ssi_signo);
					b.stop = true;
				}
			}
		}
		if (imon >= 0 && (items[imon].revents & ZMQ_POLLIN)) {
			monitor_drain(&b);
			pump_dirty_now(&b); /* a connection dropped: deliveries moved */
		}
		if (items[0].revents & ZMQ_POLLIN)
			run_batch(&b, jobs);
		else if (iw >= 0 && (items[iw].revents & ZMQ_POLLIN))
			pipe_collect(&b);
		now = mono_ms();
		if (now - b.last_scan_ms >= 1000) {
			b.last_scan_ms = now;
			pipe_collect(&b);
			catch_up(&b);
			scan(&b);
			if (now - b.clock_mark_mono_ms >= BROKER_CLOCK_MARK_MS)
				clock_mark(&b);
			redeliver(&b, now);
			parked_keep(&b, false);
			hellos_sweep(&b, now);
			refusals_sweep(&b, now);
		}
		if (now - b.last_ping_ms >= b.cfg->heartbeat_ms) {
			b.last_ping_ms = now;
			ping_peers(&b);
		}
		checkpoint_maybe(&b, now);
		broker_metrics_tick(&b);
	}
	pipe_collect(&b); /* the batch in flight is answered */
	parked_keep(&b, true);
	checkpoint_make(&b);
	if (b.state_due) /* the last batch stored the last checkpoint */
		checkpoint_state(&b);
	clock_mark(&b); /* the last time seen running */
	hush_flush(&b);
	/* the TSA's exchange ends (abandoned) before "stopped" is said:
	 * what the log says last is what the process did last; freed later
	 * (broker_free), after the metrics thread that reads its state */
	broker_tsa_halt(b.tsa);
	broker_log_info("stopped: log size %" PRIu64, b.log_size);
	rc = 0;
out:
	broker_log_buffer(false);
	free(jobs);
	broker_free(&b);
	if (curl)
		rete_tsa_global_cleanup();
	return rc;
}
