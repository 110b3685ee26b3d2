/* fuzz_client_frame.c — libFuzzer target: the frames a peer sends.
 *
 * The input is one ZeroMQ message as it reaches the broker: it is decoded
 * strictly as a ClientFrame (rete_pb_strict_unpack), and the SignedMessage
 * inside a Submit is decoded (rete_signed_decode), its signature checked
 * against the fixed fuzz key and the Message validated in SIGNED mode. The
 * same bytes are also decoded as a BrokerFrame, what an agent or a
 * coordinator receives: the LogEntry of a Deliver, of a Welcome's directory
 * entry and of an Entries answer, the signed receipt body, the checkpoint
 * notes; and as the Private part a recipient finds inside a sealed box,
 * validated beside a referral and a case note. Properties checked besides
 * "no crash, no leak, no UB": whatever decodes strictly packs back to
 * exactly the bytes received; the broker's own decoding (in an arena, a
 * canonical SUBMIT without copies) accepts and refuses exactly as the
 * general strict decoder, with the same sentences.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "codec.h"
#include "fuzz_common.h"
#include "rete.pb-c.h"
#include "validate.h"

/* strict decodes data as d; on success checks the re-pack property and
 * returns the message (caller frees), else NULL. */
static ProtobufCMessage *strict(const ProtobufCMessageDescriptor *d, const uint8_t *data,
				size_t len)
{
	ProtobufCMessage *msg = NULL;
	rete_msg m;
	if (rete_pb_strict_unpack(d, data, len, &msg, &m) != RETE_OK) {
		if (msg)
			fuzz_fail("%s: strict unpack failed but returned a message", d->name);
		return NULL;
	}
	size_t n = protobuf_c_message_get_packed_size(msg);
	if (n != len)
		fuzz_fail("%s: decoded strictly from %zu bytes, packs to %zu", d->name, len, n);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		abort();
	protobuf_c_message_pack(msg, buf);
	if (len && memcmp(buf, data, len) != 0) /* data may be NULL when len is 0 */
		fuzz_fail("%s: decoded strictly, packs to other bytes", d->name);
	free(buf);
	return msg;
}

/* signed_message runs the broker's checks on SignedMessage bytes. */
static void signed_message(const uint8_t *data, size_t len)
{
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_msg m;
	if (rete_signed_decode(data, len, &sm, &msg, &m) == RETE_OK) {
		if (!sm || !msg)
			fuzz_fail("rete_signed_decode: RETE_OK without both outputs");
		(void)rete_signed_verify(sm, &fuzz_key()->pub, &m);
		rete_problems pr = {0};
		rete_err e = rete_validate_message(msg, NULL, RETE_VALIDATE_SIGNED, &pr);
		if ((e == RETE_OK) != (pr.n == 0))
			fuzz_fail("rete_validate_message: verdict %d with %zu problems", e, pr.n);
		rete_problems_free(&pr);
		(void)rete_message_kind(msg);
		(void)rete_message_private_hash(msg);
	}
	if (sm)
		rete__signed_message__free_unpacked(sm, NULL);
	if (msg)
		rete__message__free_unpacked(msg, NULL);
}

static void log_entry(const uint8_t *data, size_t len)
{
	Rete__LogEntry *e = (Rete__LogEntry *)strict(&rete__log_entry__descriptor, data, len);
	if (!e)
		return;
	signed_message(e->signed_message.data, e->signed_message.len);
	rete__log_entry__free_unpacked(e, NULL);
}

static void checkpoint_note(const char *note)
{
	if (!note)
		return;
	rete_checkpoint cp;
	rete_msg m;
	(void)rete_checkpoint_verify(note, strlen(note), FUZZ_ORIGIN, &fuzz_key()->pub, &cp, &m);
}

/* receipt_proof checks a protocol-3 receipt as an agent does, as far as
 * the fuzzer can without the submitted bytes: the note, then the inclusion
 * proof from a fixed leaf to its root. */
static void receipt_proof(const Rete__Receipt *r)
{
	rete_checkpoint cp;
	rete_msg m;
	if (rete_checkpoint_verify(r->checkpoint, strlen(r->checkpoint), FUZZ_ORIGIN,
				   &fuzz_key()->pub, &cp, &m) != RETE_OK ||
	    r->n_proof > RETE_MERKLE_MAX_PROOF)
		return;
	rete_merkle_elem e[RETE_MERKLE_MAX_PROOF];
	for (size_t i = 0; i < r->n_proof; i++) {
		e[i].data = r->proof[i].data;
		e[i].len = r->proof[i].len;
	}
	uint8_t leaf[RETE_MERKLE_HASH] = {0};
	(void)rete_merkle_verify_inclusion(r->index, cp.size, leaf, sizeof(leaf), e, r->n_proof,
					   cp.root, sizeof(cp.root), &m);
}

/* arena_alike: what the broker runs (rete_client_frame_decode and
 * rete_signed_decode_in in an arena: a canonical SUBMIT and its
 * SignedMessage not copied) accepts and refuses exactly as the general
 * strict decoder with malloc, with the same sentences and the same
 * values. */
static void arena_alike(const uint8_t *data, size_t len)
{
	static rete_arena arena;
	Rete__ClientFrame *cf = NULL;
	ProtobufCMessage *pm = NULL;
	rete_msg ma, mm;
	rete_err ea = rete_client_frame_decode(data, len, &arena, &cf, &ma);
	rete_err em = rete_pb_strict_unpack(&rete__client_frame__descriptor, data, len, &pm, &mm);
	if (ea != em || (ea != RETE_OK && strcmp(ma.text, mm.text) != 0))
		fuzz_fail("ClientFrame: in an arena %d (%s), with malloc %d (%s)", ea,
			  ea != RETE_OK ? ma.text : "", em, em != RETE_OK ? mm.text : "");
	if (ea == RETE_OK) {
		size_t n = protobuf_c_message_get_packed_size(&cf->base);
		uint8_t *buf = malloc(n ? n : 1);
		if (!buf)
			abort();
		protobuf_c_message_pack(&cf->base, buf);
		if (n != len || (len && memcmp(buf, data, len) != 0))
			fuzz_fail("ClientFrame decoded in an arena packs to other bytes");
		free(buf);
		if (cf->command_case == RETE__CLIENT_FRAME__COMMAND_SUBMIT && cf->submit) {
			const ProtobufCBinaryData *b = &cf->submit->signed_message;
			Rete__SignedMessage *sa = NULL, *sm = NULL;
			Rete__Message *xa = NULL, *xm = NULL;
			ea = rete_signed_decode_in(b->data, b->len, &arena, &sa, &xa, &ma);
			em = rete_signed_decode(b->data, b->len, &sm, &xm, &mm);
			if (ea != em || (ea != RETE_OK && strcmp(ma.text, mm.text) != 0))
				fuzz_fail("SignedMessage: in an arena %d (%s), with malloc %d (%s)",
					  ea, ea != RETE_OK ? ma.text : "", em,
					  em != RETE_OK ? mm.text : "");
			if (ea == RETE_OK &&
			    (sa->message.len != sm->message.len ||
			     memcmp(sa->message.data, sm->message.data, sm->message.len) != 0 ||
			     sa->signature.len != sm->signature.len ||
			     memcmp(sa->signature.data, sm->signature.data, sm->signature.len) !=
				 0 ||
			     strcmp(xa->id, xm->id) != 0))
				fuzz_fail("SignedMessage decoded in an arena differs");
			if (sm)
				rete__signed_message__free_unpacked(sm, NULL);
			if (xm)
				rete__message__free_unpacked(xm, NULL);
		}
	}
	if (pm)
		protobuf_c_message_free_unpacked(pm, NULL);
	rete_arena_reset(&arena);
}

static void client_frame(const uint8_t *data, size_t len)
{
	arena_alike(data, len);
	Rete__ClientFrame *f =
	    (Rete__ClientFrame *)strict(&rete__client_frame__descriptor, data, len);
	if (!f)
		return;
	if (f->command_case == RETE__CLIENT_FRAME__COMMAND_SUBMIT && f->submit)
		signed_message(f->submit->signed_message.data, f->submit->signed_message.len);
	rete__client_frame__free_unpacked(f, NULL);
}

static void broker_frame(const uint8_t *data, size_t len)
{
	Rete__BrokerFrame *f =
	    (Rete__BrokerFrame *)strict(&rete__broker_frame__descriptor, data, len);
	if (!f)
		return;
	switch (f->command_case) {
	case RETE__BROKER_FRAME__COMMAND_WELCOME:
		checkpoint_note(f->welcome->checkpoint);
		log_entry(f->welcome->directory_entry.data, f->welcome->directory_entry.len);
		break;
	case RETE__BROKER_FRAME__COMMAND_DELIVER:
		log_entry(f->deliver->log_entry.data, f->deliver->log_entry.len);
		break;
	case RETE__BROKER_FRAME__COMMAND_RECEIPT:
	case RETE__BROKER_FRAME__COMMAND_REFUSAL: {
		Rete__Receipt *r = f->command_case == RETE__BROKER_FRAME__COMMAND_RECEIPT
				       ? f->receipt
				       : f->refusal;
		if (r && r->receipt) {
			ProtobufCMessage *b = strict(&rete__receipt_body__descriptor,
						     r->receipt->body.data, r->receipt->body.len);
			if (b)
				protobuf_c_message_free_unpacked(b, NULL);
			if (r->receipt->signature.len == RETE_SIG_LEN)
				(void)rete_verify_bytes(r->receipt->signature.data,
							RETE_CTX_RECEIPT, r->receipt->body.data,
							r->receipt->body.len, &fuzz_key()->pub);
		}
		if (r && r->checkpoint && r->checkpoint[0])
			receipt_proof(r);
		break;
	}
	case RETE__BROKER_FRAME__COMMAND_RESULT: {
		Rete__QueryResult *q = f->result;
		if (q->answer_case == RETE__QUERY_RESULT__ANSWER_CHECKPOINT)
			checkpoint_note(q->checkpoint);
		else if (q->answer_case == RETE__QUERY_RESULT__ANSWER_PROOF)
			checkpoint_note(q->proof->checkpoint);
		else if (q->answer_case == RETE__QUERY_RESULT__ANSWER_ENTRIES)
			for (size_t i = 0; i < q->entries->n_entries; i++)
				log_entry(q->entries->entries[i].data, q->entries->entries[i].len);
		break;
	}
	default:
		break;
	}
	rete__broker_frame__free_unpacked(f, NULL);
}

/* sealed_private: what a recipient does after opening a sealed part (the
 * plaintext is the sender's choice): decode it strictly as a Private and
 * validate it beside a referral and a case note. */
static void sealed_private(const uint8_t *data, size_t len)
{
	Rete__Private *priv = (Rete__Private *)strict(&rete__private__descriptor, data, len);
	if (!priv)
		return;
	static uint8_t hash[RETE_HASH_LEN];
	Rete__Referral ref = RETE__REFERRAL__INIT;
	ref.service = (char *)"employment-orientation";
	ref.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	ref.reason_code = (char *)"long-term-unemployment";
	ref.private_sha256.data = hash;
	ref.private_sha256.len = sizeof(hash);
	Rete__CaseNote note = RETE__CASE_NOTE__INIT;
	note.kind = (char *)"meeting-minutes";
	note.private_sha256 = ref.private_sha256;
	Rete__Message msg = RETE__MESSAGE__INIT;
	msg.id = (char *)"m-1";
	msg.sender = (char *)FUZZ_SENDER;
	msg.recipient = (char *)"cpi.mantova";
	msg.case_id = (char *)"mn-2026-0173";
	msg.created_at = 1795430400000;
	msg.origin = (char *)FUZZ_ORIGIN;
	for (int k = 0; k < 2; k++) {
		msg.body_case = k ? RETE__MESSAGE__BODY_NOTE : RETE__MESSAGE__BODY_REFERRAL;
		if (k)
			msg.note = &note;
		else
			msg.referral = &ref;
		rete_problems pr = {0};
		rete_err e = rete_validate_message(&msg, priv, RETE_VALIDATE_SIGNED, &pr);
		if ((e == RETE_OK) != (pr.n == 0))
			fuzz_fail("rete_validate_message (private): verdict %d with %zu problems",
				  e, pr.n);
		rete_problems_free(&pr);
	}
	rete__private__free_unpacked(priv, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	client_frame(data, size);
	broker_frame(data, size);
	sealed_private(data, size);
	return 0;
}
