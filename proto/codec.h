/* codec.h — signing, verifying, sealing and strict decoding.
 *
 * A SignedMessage is the exact bytes of a Message plus an Ed25519 signature
 * over RETE_CTX_MESSAGE followed by those bytes. Nobody re-encodes a message
 * before verifying or hashing it. Receipts are signed the same way with
 * RETE_CTX_RECEIPT. The private part (Private) is sealed to the recipient's
 * X25519 key with libsodium's sealed box; the Message carries its SHA-256.
 */
#ifndef RETE_CODEC_H
#define RETE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "keys.h"
#include "rete.pb-c.h"

#define RETE_PROTOCOL_VERSION 5
#define RETE_CTX_MESSAGE      "rete/message/v1\n"
#define RETE_CTX_RECEIPT      "rete/receipt/v1\n" /* v1/v2 receipts */
#define RETE_CTX_ACK	      "rete/ack/v1\n"
#define RETE_CTX_REFUSAL      "rete/refusal/v1\n"

/* A byte buffer owned by whoever holds it (free with rete_buf_free). */
typedef struct rete_buf {
	uint8_t *data;
	size_t len;
} rete_buf;

/* rete_buf_free frees b->data and zeroes b; NULL is fine. */
void rete_buf_free(rete_buf *b);

/* rete_sha256 computes SHA-256 of data into out. */
void rete_sha256(uint8_t out[RETE_HASH_LEN], const void *data, size_t len);

/* rete_sign_bytes signs ctx||msg (plain Ed25519 over the concatenation;
 * ctx NULL = "") with sk into sig. RETE_OK, or RETE_ENOMEM / RETE_ECRYPTO
 * (sig then all zeros, which never verifies). */
rete_err rete_sign_bytes(uint8_t sig[RETE_SIG_LEN], const char *ctx, const uint8_t *msg, size_t len,
			 const rete_seckey *sk);

/* rete_verify_bytes verifies sig over ctx||msg with pk: RETE_OK or
 * RETE_EBADSIG (RETE_ENOMEM when the message cannot be copied). */
rete_err rete_verify_bytes(const uint8_t sig[RETE_SIG_LEN], const char *ctx, const uint8_t *msg,
			   size_t len, const rete_pubkey *pk);

/* rete_message_pack serializes msg into out (caller owns out->data).
 * RETE_ENOMEM. */
rete_err rete_message_pack(const Rete__Message *msg, rete_buf *out);

/* rete_message_sign packs msg, signs RETE_CTX_MESSAGE||bytes with sk and
 * returns the SignedMessage bytes in *out (caller owns). RETE_ENOMEM,
 * RETE_ECRYPTO. */
rete_err rete_message_sign(const Rete__Message *msg, const rete_seckey *sk, rete_buf *out,
			   rete_msg *m);

/* rete_signed_decode decodes SignedMessage bytes strictly (see
 * rete_pb_strict_unpack; the signature must be 64 bytes) into *sm and its
 * Message, also strictly, into *msg. Both are freed by the caller with
 * protobuf-c's free_unpacked functions; either pointer may be NULL when
 * not wanted (the decoding is still done). *msg points into nothing of *sm:
 * they are freed independently. RETE_EDECODE, RETE_ENOMEM. */
rete_err rete_signed_decode(const uint8_t *data, size_t len, Rete__SignedMessage **sm,
			    Rete__Message **msg, rete_msg *m);

/* rete_signed_verify checks the signature of an already decoded
 * SignedMessage against pk: RETE_OK or RETE_EBADSIG. */
rete_err rete_signed_verify(const Rete__SignedMessage *sm, const rete_pubkey *pk, rete_msg *m);

/* rete_pb_strict_unpack decodes bytes of any message type d strictly into
 * *out (caller frees with protobuf_c_message_free_unpacked(*out, NULL)):
 * no unknown fields at any depth, every string (through nested messages,
 * repeated fields and oneofs) valid UTF-8, and re-packing must give back
 * the very same bytes, which refuses strings with an embedded NUL,
 * duplicated or overlong fields, explicitly encoded default values and
 * fields out of field-number order. RETE_EDECODE with the reason (and the
 * field path) in m; RETE_ENOMEM. */
rete_err rete_pb_strict_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
			       ProtobufCMessage **out, rete_msg *m);

/* ---- arenas: where a batch's decoded messages live ---------------------- */

/* A rete_arena hands out memory by bumping a pointer through one block and
 * takes it all back at once (rete_arena_reset): the broker decodes each
 * frame of a batch into its batch's arena and forgets the messages when
 * the batch is answered, instead of a malloc and a free per string, bytes
 * field and nested message. A zeroed rete_arena is empty and ready; the
 * first allocation takes a block of RETE_ARENA_BLOCK bytes, and a larger
 * one (twice the size, or what the request needs) when it is full: the
 * blocks filled before stay in use until the reset, which keeps only the
 * newest (the largest) for the next round, unless it is over
 * RETE_ARENA_KEEP bytes (a batch of huge frames does not pin its memory).
 * One thread at a time; nothing in it is ever freed by protobuf-c's
 * free_unpacked: a message decoded into an arena lives, with everything it
 * points to, until the next rete_arena_reset or rete_arena_free. */
#define RETE_ARENA_BLOCK (64u << 10)
#define RETE_ARENA_KEEP	 (16u << 20)

typedef struct rete_arena_block rete_arena_block;
typedef struct rete_arena {
	ProtobufCAllocator pa; /* what protobuf-c's unpack is given */
	rete_arena_block *blk; /* the block being filled (NULL: none yet) */
	size_t used;	       /* bytes of blk->data handed out */
	void *last;	       /* the latest allocation, which a free may undo */
	size_t last_used;      /* used before it */
} rete_arena;

/* A point to rewind an arena to (rete_arena_mark_get, rete_arena_rewind). */
typedef struct rete_arena_mark {
	rete_arena_block *blk;
	size_t used;
} rete_arena_mark;

/* rete_arena_alloc returns n bytes (aligned for any type) that live until
 * the arena is reset or freed; NULL when out of memory. */
void *rete_arena_alloc(rete_arena *a, size_t n);

/* rete_arena_allocator is a's protobuf-c allocator (for
 * protobuf_c_message_unpack): its free gives back the latest allocation
 * only, and forgets the others until the reset. */
ProtobufCAllocator *rete_arena_allocator(rete_arena *a);

/* rete_arena_mark_get and rete_arena_rewind take back everything allocated
 * since the mark (the blocks grown since are freed): a decoding that fails
 * leaves nothing behind. */
rete_arena_mark rete_arena_mark_get(const rete_arena *a);
void rete_arena_rewind(rete_arena *a, rete_arena_mark mark);

/* rete_arena_reset takes back everything a holds (see above for what it
 * keeps); rete_arena_free frees it all and leaves a empty (NULL is fine
 * for both). */
void rete_arena_reset(rete_arena *a);
void rete_arena_free(rete_arena *a);

/* rete_arena_size is the bytes of block memory a holds (for tests). */
size_t rete_arena_size(const rete_arena *a);

/* rete_pb_strict_unpack_in is rete_pb_strict_unpack decoding into arena
 * (NULL: malloc, as rete_pb_strict_unpack): the same checks, the same
 * refusals and sentences; *out lives in the arena (never free it) and a
 * refusal leaves the arena as it was. RETE_EDECODE, RETE_ENOMEM. */
rete_err rete_pb_strict_unpack_in(const ProtobufCMessageDescriptor *d, const uint8_t *data,
				  size_t len, rete_arena *arena, ProtobufCMessage **out,
				  rete_msg *m);

/* rete_signed_decode_in is rete_signed_decode decoding into arena (NULL:
 * malloc): the same checks and sentences; with an arena both outputs live
 * in it (never free them) and a refusal leaves the arena as it was. With an
 * arena, *sm's bytes fields may point into data (a canonical SignedMessage
 * is not copied): data must stay as it is while *sm is used (*msg is a
 * copy). RETE_EDECODE, RETE_ENOMEM. */
rete_err rete_signed_decode_in(const uint8_t *data, size_t len, rete_arena *arena,
			       Rete__SignedMessage **sm, Rete__Message **msg, rete_msg *m);

/* rete_log_entry_decode_in decodes a LogEntry as rete_pb_strict_unpack_in
 * does (the same refusals and sentences) into arena (NULL: malloc, freed
 * by the caller). With an arena, a canonical LogEntry (what the store
 * writes) is not copied: its signed_message points into data, which must
 * then stay as it is while *out is used. RETE_EDECODE, RETE_ENOMEM. */
rete_err rete_log_entry_decode_in(const uint8_t *data, size_t len, rete_arena *arena,
				  Rete__LogEntry **out, rete_msg *m);

/* rete_verify_bytes_in is rete_verify_bytes with ctx||msg put together in
 * arena (NULL: malloc, as rete_verify_bytes) and taken back at once: no
 * malloc and free for each of many verifications (the auditor's phase A).
 * The same results. */
rete_err rete_verify_bytes_in(const uint8_t sig[RETE_SIG_LEN], const char *ctx, const uint8_t *msg,
			      size_t len, const rete_pubkey *pk, rete_arena *arena);

/* rete_signed_verify_in is rete_signed_verify through rete_verify_bytes_in. */
rete_err rete_signed_verify_in(const Rete__SignedMessage *sm, const rete_pubkey *pk,
			       rete_arena *arena, rete_msg *m);

/* rete_client_frame_decode decodes a ClientFrame strictly (as
 * rete_pb_strict_unpack_in) into arena (NULL: malloc). With an arena, a
 * SUBMIT frame in canonical form is not copied: its signed_message and
 * sealed point into data, which must then stay as it is while *out is used.
 * The same refusals and sentences as rete_pb_strict_unpack: RETE_EDECODE,
 * RETE_ENOMEM. */
rete_err rete_client_frame_decode(const uint8_t *data, size_t len, rete_arena *arena,
				  Rete__ClientFrame **out, rete_msg *m);

/* rete_message_decode decodes Message bytes strictly (rete_pb_strict_unpack):
 * every string valid UTF-8 without NUL, and the re-packed bytes equal to the
 * bytes received (no duplicated or overlong fields, no unknown fields).
 * RETE_EDECODE with the reason in m. Caller frees with
 * rete__message__free_unpacked. */
rete_err rete_message_decode(const uint8_t *data, size_t len, Rete__Message **out, rete_msg *m);

/* rete_utf8_bad_offset: the offset of the first byte of s[0..len) that is
 * not strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF; the check every string of a message passes), or
 * (size_t)-1 when all of it is. */
size_t rete_utf8_bad_offset(const char *s, size_t len);

/* rete_seal packs priv and seals it to the recipient's X25519 key; *sealed
 * gets the ciphertext (caller owns) and hash (if not NULL) its SHA-256 (of
 * the ciphertext, which is what travels and what the Message signs). The
 * packed plaintext is wiped. RETE_ENOMEM, RETE_ECRYPTO. */
rete_err rete_seal(const Rete__Private *priv, const rete_pubkey *recipient, rete_buf *sealed,
		   uint8_t hash[RETE_HASH_LEN], rete_msg *m);

/* rete_open opens a sealed part with the recipient's secret key and decodes
 * it (caller frees *out with rete__private__free_unpacked). RETE_EOPEN when
 * the key is wrong or the ciphertext altered; RETE_EDECODE. */
rete_err rete_open(const uint8_t *sealed, size_t len, const rete_seckey *sk, Rete__Private **out,
		   rete_msg *m);

/* rete_broker_frame_pack_receipt writes bf, a BrokerFrame whose command
 * is a Receipt (receipt or refusal) with neither a SignedReceipt nor a
 * SignedRefusal, into out (cap bytes, the caller's): the very bytes
 * rete__broker_frame__pack writes, in one walk. Returns their length, or 0
 * when bf is of another shape or does not fit in cap (pack it with
 * protobuf-c then). Reads bf only. */
size_t rete_broker_frame_pack_receipt(const Rete__BrokerFrame *bf, uint8_t *out, size_t cap);

/* rete_event_pack_fast writes ev into out (cap bytes, the caller's): the
 * very bytes rete__event__pack writes. Returns their length, or 0 when
 * they do not fit in cap (pack it with protobuf-c then; an Event with
 * every field unset is 0 bytes either way). Reads ev only. */
size_t rete_event_pack_fast(const Rete__Event *ev, uint8_t *out, size_t cap);

/* rete_message_kind names the body of msg: "referral", "update", "note",
 * "delivery", "notice", "directory", or "none". */
const char *rete_message_kind(const Rete__Message *msg);

/* rete_message_referral_id returns the id of the referral msg concerns: the
 * message's own id for a Referral, the referral_id field of an Update, Note,
 * Delivery or Notice, and "" for any other body (or a body left NULL in a
 * message built by hand). The string belongs to msg; never NULL. */
const char *rete_message_referral_id(const Rete__Message *msg);

/* rete_message_private_hash returns the body's private_sha256 field (or an
 * empty one) so callers need not switch on the body. */
ProtobufCBinaryData rete_message_private_hash(const Rete__Message *msg);

/* ---- v3: signed acknowledgements and signed refusals -------------------- */

/* rete_ack_sign packs body (an AckBody) and signs RETE_CTX_ACK||bytes with
 * sk, the recipient's own key. *out is initialised and gets the body bytes
 * and the 64-byte signature, both malloc'd: free them with
 * rete_signed_ack_clear. RETE_ENOMEM, RETE_ECRYPTO (out then empty). */
rete_err rete_ack_sign(const Rete__AckBody *body, const rete_seckey *sk, Rete__SignedAck *out,
		       rete_msg *m);

/* rete_ack_verify checks sa's signature (64 bytes, over RETE_CTX_ACK||body)
 * with pk, the acknowledging party's key, then decodes its body strictly
 * (rete_pb_strict_unpack). With body not NULL, *body gets the decoded
 * AckBody (caller frees with rete__ack_body__free_unpacked; NULL on
 * failure). It says nothing of the body's fields: the caller compares
 * origin, recipient, index and leaf hash with what it expects. RETE_EBADSIG
 * (m says why: no signature, wrong length, does not verify), RETE_EDECODE,
 * RETE_ENOMEM. */
rete_err rete_ack_verify(const Rete__SignedAck *sa, const rete_pubkey *pk, Rete__AckBody **body,
			 rete_msg *m);

/* rete_signed_ack_clear frees what rete_ack_sign put in sa and empties it. */
void rete_signed_ack_clear(Rete__SignedAck *sa);

/* rete_refusal_sign, rete_refusal_verify and rete_signed_refusal_clear do
 * the same for a RefusalBody, signed by the broker's key over
 * RETE_CTX_REFUSAL||body. */
rete_err rete_refusal_sign(const Rete__RefusalBody *body, const rete_seckey *sk,
			   Rete__SignedRefusal *out, rete_msg *m);
rete_err rete_refusal_verify(const Rete__SignedRefusal *sr, const rete_pubkey *pk,
			     Rete__RefusalBody **body, rete_msg *m);
void rete_signed_refusal_clear(Rete__SignedRefusal *sr);

#endif
