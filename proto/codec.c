/* codec.c — signing, verifying, sealing and strict decoding (see codec.h). */
#include "codec.h"

#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rete_buf_free(rete_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

void rete_sha256(uint8_t out[RETE_HASH_LEN], const void *data, size_t len)
{
	static const uint8_t empty[1];

	/* SHA-256 needs no initialisation of libsodium, but its CPU feature
	 * detection does no harm and keeps every entry point alike. */
	(void)rete_crypto_init(NULL);
	crypto_hash_sha256(out, data != NULL ? data : empty, len);
}

/* concat returns a malloc'd ctx||msg (never NULL-sized) or NULL. Plain
 * Ed25519 needs the whole message in one buffer: libsodium's multi-part
 * crypto_sign_init/update/final is Ed25519ph, a different algorithm. */
static uint8_t *concat(const char *ctx, const uint8_t *msg, size_t len, size_t *total)
{
	size_t clen = ctx != NULL ? strlen(ctx) : 0;
	uint8_t *buf;

	if (len > SIZE_MAX - clen - 1)
		return NULL;
	buf = malloc(clen + len + 1);
	if (buf == NULL)
		return NULL;
	if (clen > 0)
		memcpy(buf, ctx, clen);
	if (len > 0)
		memcpy(buf + clen, msg, len);
	*total = clen + len;
	return buf;
}

rete_err rete_sign_bytes(uint8_t sig[RETE_SIG_LEN], const char *ctx, const uint8_t *msg, size_t len,
			 const rete_seckey *sk)
{
	size_t total = 0;
	uint8_t *buf;

	memset(sig, 0, RETE_SIG_LEN);
	if (rete_crypto_init(NULL) != RETE_OK)
		return RETE_ECRYPTO;
	buf = concat(ctx, msg, len, &total);
	if (buf == NULL)
		return RETE_ENOMEM;
	crypto_sign_detached(sig, NULL, buf, total, sk->ed_sk);
	free(buf);
	return RETE_OK;
}

rete_err rete_verify_bytes(const uint8_t sig[RETE_SIG_LEN], const char *ctx, const uint8_t *msg,
			   size_t len, const rete_pubkey *pk)
{
	return rete_verify_bytes_in(sig, ctx, msg, len, pk, NULL);
}

rete_err rete_verify_bytes_in(const uint8_t sig[RETE_SIG_LEN], const char *ctx, const uint8_t *msg,
			      size_t len, const rete_pubkey *pk, rete_arena *arena)
{
	size_t total = 0;
	uint8_t *buf;
	int rc;

	if (rete_crypto_init(NULL) != RETE_OK)
		return RETE_ECRYPTO;
	if (arena == NULL) {
		buf = concat(ctx, msg, len, &total);
		if (buf == NULL)
			return RETE_ENOMEM;
		rc = crypto_sign_verify_detached(sig, buf, total, pk->ed);
		free(buf);
		return rc == 0 ? RETE_OK : RETE_EBADSIG;
	}
	size_t clen = ctx != NULL ? strlen(ctx) : 0;
	rete_arena_mark mk = rete_arena_mark_get(arena);
	if (len > SIZE_MAX / 2 - clen - 1 ||
	    (buf = rete_arena_alloc(arena, clen + len + 1)) == NULL)
		return RETE_ENOMEM;
	if (clen > 0)
		memcpy(buf, ctx, clen);
	if (len > 0)
		memcpy(buf + clen, msg, len);
	rc = crypto_sign_verify_detached(sig, buf, clen + len, pk->ed);
	/* given back when it fitted in the block being filled; a block grown
	 * for it stays for what comes next (freeing it would make the next
	 * verification grow one again) */
	if (arena->blk == mk.blk)
		rete_arena_rewind(arena, mk);
	return rc == 0 ? RETE_OK : RETE_EBADSIG;
}

/* pack_any serializes any protobuf-c message into a malloc'd buffer. */
static rete_err pack_any(const ProtobufCMessage *msg, rete_buf *out)
{
	size_t n = protobuf_c_message_get_packed_size(msg);

	out->data = malloc(n > 0 ? n : 1);
	out->len = 0;
	if (out->data == NULL)
		return RETE_ENOMEM;
	out->len = protobuf_c_message_pack(msg, out->data);
	return RETE_OK;
}

rete_err rete_message_pack(const Rete__Message *msg, rete_buf *out)
{
	return pack_any(&msg->base, out);
}

/* ---- arenas ------------------------------------------------------------- */

struct rete_arena_block {
	rete_arena_block *prev; /* filled before this one, in use until the reset */
	size_t size;		/* bytes of data */
	max_align_t data[];
};

#define ARENA_ALIGN _Alignof(max_align_t)

/* Under AddressSanitizer what an arena has taken back is poisoned, so a
 * pointer kept past its batch's reset is caught as a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_POISON(p, n)   ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* arena_poison_rest poisons what the block being filled has not handed out. */
static void arena_poison_rest(rete_arena *a)
{
	if (a->blk != NULL)
		ARENA_POISON((char *)a->blk->data + a->used, a->blk->size - a->used);
}

void *rete_arena_alloc(rete_arena *a, size_t n)
{
	rete_arena_block *b = a->blk;
	size_t need;
	void *p;

	if (n > SIZE_MAX / 2)
		return NULL;
	need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (b == NULL || b->size - a->used < need) {
		/* a new block, at least twice the last: a batch that needs
		 * more than the first block grows it in few steps, and the
		 * reset keeps the largest */
		size_t size = b != NULL ? b->size : RETE_ARENA_BLOCK;
		if (b != NULL && size <= SIZE_MAX / 4)
			size *= 2;
		if (size < need)
			size = need;
		rete_arena_block *nb = malloc(sizeof(*nb) + size);
		if (nb == NULL)
			return NULL;
		nb->prev = b;
		nb->size = size;
		ARENA_POISON(nb->data, size);
		a->blk = b = nb;
		a->used = 0;
	}
	p = (char *)b->data + a->used;
	a->last = p;
	a->last_used = a->used;
	a->used += need;
	ARENA_UNPOISON(p, n);
	return p;
}

static void *arena_pb_alloc(void *data, size_t n)
{
	return rete_arena_alloc(data, n);
}

/* arena_pb_free: protobuf-c frees the scratch it allocated last (its
 * slabs of scanned fields) and, on a failed unpack, the message it was
 * building; the latest allocation is taken back, the rest waits for the
 * reset (or the caller's rewind). */
static void arena_pb_free(void *data, void *p)
{
	rete_arena *a = data;

	if (p != NULL && p == a->last) {
		a->used = a->last_used;
		a->last = NULL;
		arena_poison_rest(a);
	}
}

ProtobufCAllocator *rete_arena_allocator(rete_arena *a)
{
	a->pa.alloc = arena_pb_alloc;
	a->pa.free = arena_pb_free;
	a->pa.allocator_data = a;
	return &a->pa;
}

rete_arena_mark rete_arena_mark_get(const rete_arena *a)
{
	rete_arena_mark mk = {a->blk, a->used};
	return mk;
}

void rete_arena_rewind(rete_arena *a, rete_arena_mark mark)
{
	while (a->blk != NULL && a->blk != mark.blk) {
		rete_arena_block *b = a->blk;
		a->blk = b->prev;
		ARENA_UNPOISON(b->data, b->size);
		free(b);
	}
	a->used = a->blk != NULL ? mark.used : 0;
	a->last = NULL;
	arena_poison_rest(a);
}

void rete_arena_reset(rete_arena *a)
{
	if (a == NULL || a->blk == NULL)
		return;
	while (a->blk->prev != NULL) {
		rete_arena_block *old = a->blk->prev;
		a->blk->prev = old->prev;
		ARENA_UNPOISON(old->data, old->size);
		free(old);
	}
	if (a->blk->size > RETE_ARENA_KEEP) {
		ARENA_UNPOISON(a->blk->data, a->blk->size);
		free(a->blk);
		a->blk = NULL;
	}
	a->used = 0;
	a->last = NULL;
	arena_poison_rest(a);
}

void rete_arena_free(rete_arena *a)
{
	if (a == NULL)
		return;
	rete_arena_reset(a);
	if (a->blk != NULL)
		ARENA_UNPOISON(a->blk->data, a->blk->size);
	free(a->blk);
	a->blk = NULL;
	a->used = 0;
	a->last = NULL;
}

size_t rete_arena_size(const rete_arena *a)
{
	size_t n = 0;

	for (const rete_arena_block *b = a->blk; b != NULL; b = b->prev)
		n += b->size;
	return n;
}

/* ---- strict decoding ---------------------------------------------------- */

/* utf8_valid: strict UTF-8 (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF. Returns the offset of the first bad byte or
 * (size_t)-1 when s[0..len) is valid. */
static size_t utf8_bad_offset(const unsigned char *s, size_t len);

size_t rete_utf8_bad_offset(const char *s, size_t len)
{
	return utf8_bad_offset((const unsigned char *)s, len);
}

static size_t utf8_bad_offset(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp, min;

		/* ASCII, the common case, eight bytes at a time */
		while (len - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & UINT64_C(0x8080808080808080))
				break;
			i += 8;
		}
		if (i >= len)
			break;
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n + 1;
	}
	return (size_t)-1;
}

/* A field path for messages such as "Message.referral.service" or
 * "Directory.parties[2].name". */
struct path {
	char text[256];
	size_t len;
};

static size_t path_push(struct path *p, const char *name, size_t idx, bool indexed)
{
	size_t old;
	int w;

	old = p->len;

	if (indexed) {
		w = snprintf(p->text + p->len, sizeof(p->text) - p->len, ".%s[%zu]", name, idx);
	} else {
		/* as snprintf ".%s" would, without its cost (once per field) */
		size_t room = sizeof(p->text) - p->len, nl = strlen(name);
		size_t c = nl + 1 < room - 1 ? nl + 1 : room - 1;
		if (c > 0) {
			p->text[p->len] = '.';
			memcpy(p->text + p->len + 1, name, c - 1);
		}
		p->text[p->len + c] = '\0';
		w = (int)(nl + 1);
	}
	if (w > 0) {
		p->len += (size_t)w;
		if (p->len >= sizeof(p->text))
			p->len = sizeof(p->text) - 1;
	}
	return old;
}

static void path_pop(struct path *p, size_t old)
{
	p->len = old;
	p->text[old] = '\0';
}

static rete_err check_msg(const ProtobufCMessage *msg, struct path *p, rete_msg *m);

static rete_err check_string(const char *s, struct path *p, rete_msg *m)
{
	size_t bad;

	if (s == NULL)
		return RETE_OK;
	bad = utf8_bad_offset((const unsigned char *)s, strlen(s));
	if (bad != (size_t)-1 && p == NULL)
		return RETE_EDECODE;
	if (bad != (size_t)-1)
		return rete_msg_set(m, RETE_EDECODE,
				    "field %s is not valid UTF-8 (bad byte 0x%02x at offset %zu); "
				    "strings must be UTF-8 without NUL",
				    p->text, (unsigned)(unsigned char)s[bad], bad);
	return RETE_OK;
}

static rete_err check_value(const ProtobufCFieldDescriptor *f, const void *slot, struct path *p,
			    rete_msg *m)
{
	if (f->type == PROTOBUF_C_TYPE_STRING)
		return check_string(*(char *const *)slot, p, m);
	if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
		return sub != NULL ? check_msg(sub, p, m) : RETE_OK;
	}
	return RETE_OK;
}

/* check_msg walks msg by its descriptor: refuses unknown fields (protobuf-c
 * keeps them and would re-pack them, so the size check cannot see them) and
 * strings that are not UTF-8, through nested messages, repeated fields and
 * oneofs. With p NULL it only says whether msg passes (RETE_EDECODE, m
 * untouched): the field path costs a copy per field, so it is made only
 * for the sentence of a message that fails. */
static rete_err check_msg(const ProtobufCMessage *msg, struct path *p, rete_msg *m)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const char *base = (const char *)msg;
	rete_err e;

	if (msg->n_unknown_fields > 0 && p == NULL)
		return RETE_EDECODE;
	if (msg->n_unknown_fields > 0)
		return rete_msg_set(m, RETE_EDECODE,
				    "%s carries field number %u, which the schema does not "
				    "define; unknown fields are refused",
				    p->text, (unsigned)msg->unknown_fields[0].tag);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *slot = base + f->offset;
		size_t old;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
			if (which != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(const char *const *)slot;
			for (size_t k = 0; k < n; k++) {
				if (p == NULL) {
					e = check_value(f, arr + k * sizeof(void *), p, m);
				} else {
					old = path_push(p, f->name, k, true);
					e = check_value(f, arr + k * sizeof(void *), p, m);
					path_pop(p, old);
				}
				if (e != RETE_OK)
					return e;
			}
		} else if (p == NULL) {
			e = check_value(f, slot, p, m);
			if (e != RETE_OK)
				return e;
		} else {
			old = path_push(p, f->name, 0, false);
			e = check_value(f, slot, p, m);
			path_pop(p, old);
			if (e != RETE_OK)
				return e;
		}
	}
	return RETE_OK;
}

/* ---- the canonical form, read on the wire -------------------------------- */

/* wire_varint reads the varint at *i of d[0..end) in its shortest form
 * (at most 9 bytes: a value below 2^63); false for anything else. */
static inline bool wire_varint(const uint8_t *d, size_t end, size_t *i, uint64_t *out)
{
	uint64_t v = 0;

	if (*i < end && d[*i] < 0x80) { /* one byte: tags and short lengths */
		*out = d[(*i)++];
		return true;
	}
	for (unsigned k = 0; k < 9 && *i < end; k++) {
		uint8_t c = d[(*i)++];
		v |= (uint64_t)(c & 0x7f) << (7 * k);
		if ((c & 0x80) == 0) {
			if (k > 0 && c == 0)
				return false;
			*out = v;
			return true;
		}
	}
	return false;
}

#define CANON_DEPTH  32
#define CANON_ONEOFS 8

/* canon_wire says whether data is already what protobuf-c packs the message
 * it decodes to, reading the bytes once instead of packing and comparing:
 * every field once (a repeated string, bytes or message field: its
 * elements one after the other), in field-number order, in the shortest
 * encodings, never its default value, at most one member of a oneof, no
 * string with a NUL, and the same for every nested message; and what
 * check_msg checks: no unknown field, every string valid UTF-8 (its bytes
 * on the wire are the decoded string's). It only accepts: false means
 * "not sure" (the cases protobuf-c would pack differently or check_msg
 * refuse, and the rarer ones it might not: a zero, an empty string or
 * message, a negative number, a packed repeated field, another wire type),
 * and the caller checks, packs and compares as before, which decides and
 * words the refusal. Run after protobuf-c decoded data (so every tag has
 * the wire type its field has). */
static bool canon_wire(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
		       unsigned depth)
{
	unsigned last = 0, oneofs[CANON_ONEOFS], noneofs = 0, next = 0;
	size_t i = 0;

	if (depth > CANON_DEPTH)
		return false;
	while (i < len) {
		uint64_t tag, v;
		if (!wire_varint(data, len, &i, &tag) || tag > UINT32_MAX)
			return false;
		unsigned id = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
		/* the fields in field-number order (protobuf-c's descriptors
		 * list them so, and pack them in that order): looked up by
		 * walking on from the last one */
		if (id == 0 || id < last)
			return false;
		if (id > last) {
			while (next < d->n_fields && d->fields[next].id < id)
				next++;
			if (next == d->n_fields || d->fields[next].id != id)
				return false;
			next++;
		}
		const ProtobufCFieldDescriptor *f = &d->fields[next - 1];
		bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
		if (f->label != PROTOBUF_C_LABEL_NONE && !repeated)
			return false; /* proto2 labels: not in rete.proto */
		if (id == last && !repeated)
			return false;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && id != last) {
			for (unsigned k = 0; k < noneofs; k++)
				if (oneofs[k] == f->quantifier_offset)
					return false; /* a second member */
			if (noneofs == CANON_ONEOFS)
				return false;
			oneofs[noneofs++] = f->quantifier_offset;
		}
		last = id;
		switch (f->type) {
		case PROTOBUF_C_TYPE_STRING:
		case PROTOBUF_C_TYPE_BYTES:
		case PROTOBUF_C_TYPE_MESSAGE:
			if (wt != 2 || !wire_varint(data, len, &i, &v) || v == 0 || v > len - i)
				return false;
			if (f->type == PROTOBUF_C_TYPE_STRING &&
			    (memchr(data + i, 0, (size_t)v) != NULL ||
			     utf8_bad_offset(data + i, (size_t)v) != (size_t)-1))
				return false;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    !canon_wire(f->descriptor, data + i, (size_t)v, depth + 1))
				return false;
			i += (size_t)v;
			break;
		case PROTOBUF_C_TYPE_INT32:
		case PROTOBUF_C_TYPE_ENUM:
			if (repeated || wt != 0 || !wire_varint(data, len, &i, &v) || v == 0 ||
			    v > INT32_MAX)
				return false;
			break;
		case PROTOBUF_C_TYPE_UINT32:
			if (repeated || wt != 0 || !wire_varint(data, len, &i, &v) || v == 0 ||
			    v > UINT32_MAX)
				return false;
			break;
		case PROTOBUF_C_TYPE_INT64:
		case PROTOBUF_C_TYPE_UINT64:
			if (repeated || wt != 0 || !wire_varint(data, len, &i, &v) || v == 0)
				return false;
			break;
		case PROTOBUF_C_TYPE_BOOL:
			if (repeated || wt != 0 || i >= len || data[i] != 1)
				return false;
			i++;
			break;
		default:
			return false;
		}
	}
	return true;
}

rete_err rete_pb_strict_unpack_in(const ProtobufCMessageDescriptor *d, const uint8_t *data,
				  size_t len, rete_arena *arena, ProtobufCMessage **out,
				  rete_msg *m)
{
	static const uint8_t empty[1];
	ProtobufCMessage *msg;
	struct path p;
	uint8_t *again = NULL;
	rete_arena_mark start = {0}, scratch;
	size_t n;
	rete_err e;

	*out = NULL;
	if (data == NULL) {
		if (len > 0)
			return rete_msg_set(m, RETE_EDECODE, "%s: no bytes to decode",
					    d->short_name);
		data = empty;
	}
	if (arena != NULL)
		start = rete_arena_mark_get(arena);
	msg = protobuf_c_message_unpack(d, arena != NULL ? rete_arena_allocator(arena) : NULL, len,
					data);
	if (msg == NULL) {
		if (arena != NULL)
			rete_arena_rewind(arena, start);
		return rete_msg_set(m, RETE_EDECODE,
				    "%zu bytes are not a valid %s (protobuf decoding failed: "
				    "truncated, wrong wire type or malformed field)",
				    len, d->short_name);
	}
	/* Bytes already in the form protobuf-c packs, with valid strings and
	 * nothing unknown (read on the wire, in one pass), need neither the
	 * walk below nor to be packed again and compared. */
	if (canon_wire(d, data, len, 0)) {
		*out = msg;
		return RETE_OK;
	}
	if (check_msg(msg, NULL, NULL) != RETE_OK) {
		/* again, for the sentence with the field path */
		p.len = strlen(d->short_name);
		if (p.len >= sizeof(p.text))
			p.len = sizeof(p.text) - 1;
		memcpy(p.text, d->short_name, p.len);
		p.text[p.len] = '\0';
		e = check_msg(msg, &p, m);
		if (e == RETE_OK) /* the same walk: cannot happen */
			e = rete_msg_set(m, RETE_EDECODE, "%s does not decode strictly",
					 d->short_name);
		goto fail;
	}

	/* Re-packing must give back the very bytes received. protobuf-c
	 * packs strings with strlen, so an embedded NUL shortens the result;
	 * a duplicated singular field, an overlong varint, an explicitly
	 * encoded default value, or fields out of field-number order all
	 * change the size or the bytes. */
	n = protobuf_c_message_get_packed_size(msg);
	if (n != len) {
		e = rete_msg_set(m, RETE_EDECODE,
				 "%s is not in canonical form: it re-encodes to %zu bytes "
				 "instead of the %zu received (a string with an embedded NUL, "
				 "a duplicated or overlong field, or an explicit default value); "
				 "send each field once, in the shortest encoding",
				 d->short_name, n, len);
		goto fail;
	}
	if (arena != NULL) {
		scratch = rete_arena_mark_get(arena);
		again = rete_arena_alloc(arena, n > 0 ? n : 1);
	} else {
		again = malloc(n > 0 ? n : 1);
	}
	if (again == NULL) {
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory decoding %s", d->short_name);
		goto fail;
	}
	protobuf_c_message_pack(msg, again);
	if (n > 0 && memcmp(again, data, n) != 0) {
		e = rete_msg_set(m, RETE_EDECODE,
				 "%s is not in canonical form: its fields are not in "
				 "field-number order or a value is encoded unusually; send "
				 "the canonical encoding",
				 d->short_name);
		goto fail;
	}
	if (arena != NULL)
		rete_arena_rewind(arena, scratch); /* the copy only */
	else
		free(again);
	*out = msg;
	return RETE_OK;
fail:
	if (arena != NULL) {
		rete_arena_rewind(arena, start);
	} else {
		free(again);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	return e;
}

rete_err rete_pb_strict_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
			       ProtobufCMessage **out, rete_msg *m)
{
	return rete_pb_strict_unpack_in(d, data, len, NULL, out, m);
}

rete_err rete_message_decode(const uint8_t *data, size_t len, Rete__Message **out, rete_msg *m)
{
	ProtobufCMessage *msg = NULL;
	rete_err e = rete_pb_strict_unpack(&rete__message__descriptor, data, len, &msg, m);

	*out = (Rete__Message *)msg;
	return e;
}

/* ---- signed messages ---------------------------------------------------- */

rete_err rete_message_sign(const Rete__Message *msg, const rete_seckey *sk, rete_buf *out,
			   rete_msg *m)
{
	Rete__SignedMessage sm = RETE__SIGNED_MESSAGE__INIT;
	uint8_t sig[RETE_SIG_LEN];
	rete_buf bytes = {0};
	rete_err e;

	out->data = NULL;
	out->len = 0;
	if (rete_message_pack(msg, &bytes) != RETE_OK)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory packing a message");
	e = rete_sign_bytes(sig, RETE_CTX_MESSAGE, bytes.data, bytes.len, sk);
	if (e != RETE_OK) {
		rete_buf_free(&bytes);
		return rete_msg_set(m, e, "cannot sign message '%s': %s", msg->id ? msg->id : "",
				    rete_strerror(e));
	}
	sm.message.data = bytes.data;
	sm.message.len = bytes.len;
	sm.signature.data = sig;
	sm.signature.len = sizeof(sig);
	e = pack_any(&sm.base, out);
	rete_buf_free(&bytes);
	if (e != RETE_OK)
		return rete_msg_set(m, e, "out of memory packing a signed message");
	return RETE_OK;
}

/* ---- the common frames without copies ---------------------------------- */

/* The broker decodes a SUBMIT ClientFrame and the SignedMessage in it for
 * every submission: two wrappers of bytes fields around the Message. Their
 * canonical encodings are few and fixed, so they are recognised here on the
 * wire and their bytes fields pointed into the bytes received instead of
 * copied by protobuf-c, unpacked, packed again and compared. Whatever is
 * not exactly such an encoding takes the general path
 * (rete_pb_strict_unpack_in), which accepts and refuses as always: the
 * fast path accepts only bytes that the general path accepts too, and
 * decodes them to the same values (fuzz_client_frame checks it). */

/* wire_len reads the length varint at *i of d[0..end): true when it is in
 * its shortest form and the length fits before end (anything else is for
 * the general path to judge). */
static bool wire_len(const uint8_t *d, size_t end, size_t *i, size_t *out)
{
	uint64_t v = 0;

	for (unsigned k = 0; k < 5 && *i < end; k++) {
		uint8_t c = d[(*i)++];
		v |= (uint64_t)(c & 0x7f) << (7 * k);
		if ((c & 0x80) == 0) {
			if (k > 0 && c == 0) /* overlong */
				return false;
			if (v > end - *i)
				return false;
			*out = (size_t)v;
			return true;
		}
	}
	return false;
}

/* wire_bytes reads a bytes field with tag at *i of d[0..end): present,
 * not empty (an empty one is not canonical in proto3), shortest length. */
static bool wire_bytes(const uint8_t *d, size_t end, size_t *i, uint8_t tag,
		       ProtobufCBinaryData *out)
{
	size_t n;

	if (*i >= end || d[*i] != tag)
		return false;
	(*i)++;
	if (!wire_len(d, end, i, &n) || n == 0)
		return false;
	out->data = (uint8_t *)(uintptr_t)(d + *i); /* read only: the caller's bytes */
	out->len = n;
	*i += n;
	return true;
}

/* submit_fast: ClientFrame{version (one byte, 1-127, or absent), submit =
 * Submit{signed_message (not empty), sealed (absent or not empty)}} and
 * nothing else. */
static bool submit_fast(const uint8_t *d, size_t len, rete_arena *a, ProtobufCMessage **out)
{
	ProtobufCBinaryData sm = {0}, sealed = {0};
	uint32_t version = 0;
	size_t i = 0, n;

	if (len >= 2 && d[0] == 0x08 && d[1] > 0 && d[1] < 0x80) {
		version = d[1];
		i = 2;
	}
	if (i >= len || d[i] != 0x5a) /* field 11, length-delimited */
		return false;
	i++;
	if (!wire_len(d, len, &i, &n) || i + n != len)
		return false;
	if (!wire_bytes(d, len, &i, 0x0a, &sm))
		return false;
	if (i < len && !wire_bytes(d, len, &i, 0x12, &sealed))
		return false;
	if (i != len)
		return false;
	Rete__ClientFrame *cf = rete_arena_alloc(a, sizeof(*cf));
	Rete__Submit *sub = rete_arena_alloc(a, sizeof(*sub));
	if (cf == NULL || sub == NULL)
		return false; /* the general path says out of memory */
	rete__client_frame__init(cf);
	rete__submit__init(sub);
	sub->signed_message = sm;
	sub->sealed = sealed;
	cf->version = version;
	cf->command_case = RETE__CLIENT_FRAME__COMMAND_SUBMIT;
	cf->submit = sub;
	*out = &cf->base;
	return true;
}

/* signed_fast: SignedMessage{message (not empty), signature (64 bytes)}
 * and nothing else. */
static bool signed_fast(const uint8_t *d, size_t len, rete_arena *a, Rete__SignedMessage **out)
{
	ProtobufCBinaryData msg = {0}, sig = {0};
	size_t i = 0;

	if (!wire_bytes(d, len, &i, 0x0a, &msg) || len - i != 2 + RETE_SIG_LEN ||
	    !wire_bytes(d, len, &i, 0x12, &sig) || i != len)
		return false;
	Rete__SignedMessage *s = rete_arena_alloc(a, sizeof(*s));
	if (s == NULL)
		return false;
	rete__signed_message__init(s);
	s->message = msg;
	s->signature = sig;
	*out = s;
	return true;
}

/* wire_u63 reads the varint field with tag at *i of d[0..end) when it is
 * there: a value from 1 to 2^63 - 1 (a 0 would not be written) in its
 * shortest form; *out stays 0 when the field is absent. false for anything
 * else (the general path judges it). */
static bool wire_u63(const uint8_t *d, size_t end, size_t *i, uint8_t tag, uint64_t *out)
{
	uint64_t v = 0;

	*out = 0;
	if (*i >= end || d[*i] != tag)
		return true;
	(*i)++;
	for (unsigned k = 0; k < 9 && *i < end; k++) {
		uint8_t c = d[(*i)++];
		v |= (uint64_t)(c & 0x7f) << (7 * k);
		if ((c & 0x80) == 0) {
			if (c == 0) /* overlong, or a 0 written */
				return false;
			*out = v;
			return true;
		}
	}
	return false;
}

/* log_entry_fast: LogEntry{index (absent or 1 to 2^63 - 1), logged_at
 * (absent or 1 to 2^63 - 1), signed_message (not empty)} and nothing
 * else, each in its shortest form, in field order: what the store writes. */
static bool log_entry_fast(const uint8_t *d, size_t len, rete_arena *a, ProtobufCMessage **out)
{
	ProtobufCBinaryData sm = {0};
	uint64_t index, at;
	size_t i = 0;

	if (!wire_u63(d, len, &i, 0x08, &index) || !wire_u63(d, len, &i, 0x10, &at) ||
	    !wire_bytes(d, len, &i, 0x1a, &sm) || i != len)
		return false;
	Rete__LogEntry *le = rete_arena_alloc(a, sizeof(*le));
	if (le == NULL)
		return false; /* the general path says out of memory */
	rete__log_entry__init(le);
	le->index = index;
	le->logged_at = (int64_t)at;
	le->signed_message = sm;
	*out = &le->base;
	return true;
}

/* decode_in decodes data as desc's message into arena: by fast, the
 * reading of its one canonical form without a copy, when it applies (an
 * arena is given); else by the strict general path, whose verdict and
 * sentence stand. */
static rete_err decode_in(const ProtobufCMessageDescriptor *desc,
			  bool (*fast)(const uint8_t *, size_t, rete_arena *, ProtobufCMessage **),
			  const uint8_t *data, size_t len, rete_arena *arena,
			  ProtobufCMessage **out, rete_msg *m)
{
	*out = NULL;
	if (arena != NULL && data != NULL) {
		rete_arena_mark start = rete_arena_mark_get(arena);
		if (fast(data, len, arena, out))
			return RETE_OK;
		*out = NULL;
		rete_arena_rewind(arena, start);
	}
	return rete_pb_strict_unpack_in(desc, data, len, arena, out, m);
}

rete_err rete_log_entry_decode_in(const uint8_t *data, size_t len, rete_arena *arena,
				  Rete__LogEntry **out, rete_msg *m)
{
	ProtobufCMessage *pm = NULL;
	rete_err e =
	    decode_in(&rete__log_entry__descriptor, log_entry_fast, data, len, arena, &pm, m);
	*out = (Rete__LogEntry *)pm;
	return e;
}

rete_err rete_client_frame_decode(const uint8_t *data, size_t len, rete_arena *arena,
				  Rete__ClientFrame **out, rete_msg *m)
{
	ProtobufCMessage *pm = NULL;
	rete_err e =
	    decode_in(&rete__client_frame__descriptor, submit_fast, data, len, arena, &pm, m);
	*out = (Rete__ClientFrame *)pm;
	return e;
}

rete_err rete_signed_decode_in(const uint8_t *data, size_t len, rete_arena *arena,
			       Rete__SignedMessage **sm, Rete__Message **msg, rete_msg *m)
{
	ProtobufCMessage *outer = NULL, *inner = NULL;
	Rete__SignedMessage *s;
	rete_arena_mark start = {0};
	rete_err e;

	if (sm != NULL)
		*sm = NULL;
	if (msg != NULL)
		*msg = NULL;
	if (arena != NULL)
		start = rete_arena_mark_get(arena);
	if (arena != NULL && data != NULL && signed_fast(data, len, arena, &s)) {
		/* canonical, the signature 64 bytes: on to the Message */
	} else {
		if (arena != NULL)
			rete_arena_rewind(arena, start);
		e = rete_pb_strict_unpack_in(&rete__signed_message__descriptor, data, len, arena,
					     &outer, m);
		if (e != RETE_OK)
			return e;
		s = (Rete__SignedMessage *)outer;
	}
	if (s->signature.len != RETE_SIG_LEN) {
		e = rete_msg_set(m, RETE_EDECODE,
				 "SignedMessage.signature is %zu bytes; an Ed25519 signature "
				 "is %d bytes",
				 s->signature.len, RETE_SIG_LEN);
		goto fail;
	}
	e = rete_pb_strict_unpack_in(&rete__message__descriptor, s->message.data, s->message.len,
				     arena, &inner, m);
	if (e != RETE_OK) {
		rete_msg_prefix(m, "SignedMessage.message");
		goto fail;
	}
	if (arena != NULL) {
		/* in the arena: nothing to free, what is not wanted waits
		 * for the reset */
		if (msg != NULL)
			*msg = (Rete__Message *)inner;
		if (sm != NULL)
			*sm = s;
		return RETE_OK;
	}
	if (msg != NULL)
		*msg = (Rete__Message *)inner;
	else
		protobuf_c_message_free_unpacked(inner, NULL);
	if (sm != NULL)
		*sm = s;
	else
		rete__signed_message__free_unpacked(s, NULL);
	return RETE_OK;
fail:
	if (arena != NULL)
		rete_arena_rewind(arena, start);
	else
		rete__signed_message__free_unpacked(s, NULL);
	return e;
}

rete_err rete_signed_decode(const uint8_t *data, size_t len, Rete__SignedMessage **sm,
			    Rete__Message **msg, rete_msg *m)
{
	return rete_signed_decode_in(data, len, NULL, sm, msg, m);
}

rete_err rete_signed_verify(const Rete__SignedMessage *sm, const rete_pubkey *pk, rete_msg *m)
{
	return rete_signed_verify_in(sm, pk, NULL, m);
}

rete_err rete_signed_verify_in(const Rete__SignedMessage *sm, const rete_pubkey *pk,
			       rete_arena *arena, rete_msg *m)
{
	rete_err e;

	if (sm->signature.len != RETE_SIG_LEN)
		return rete_msg_set(m, RETE_EBADSIG,
				    "signature is %zu bytes; an Ed25519 signature is %d bytes",
				    sm->signature.len, RETE_SIG_LEN);
	e = rete_verify_bytes_in(sm->signature.data, RETE_CTX_MESSAGE, sm->message.data,
				 sm->message.len, pk, arena);
	if (e == RETE_EBADSIG)
		return rete_msg_set(m, e,
				    "the message signature does not verify with the sender's "
				    "public key");
	if (e != RETE_OK)
		return rete_msg_set(m, e, "cannot verify the message signature: %s",
				    rete_strerror(e));
	return RETE_OK;
}

/* ---- sealed parts ------------------------------------------------------- */

rete_err rete_seal(const Rete__Private *priv, const rete_pubkey *recipient, rete_buf *sealed,
		   uint8_t hash[RETE_HASH_LEN], rete_msg *m)
{
	rete_buf plain = {0};
	uint8_t *c;
	size_t clen;
	rete_err e;

	sealed->data = NULL;
	sealed->len = 0;
	if ((e = rete_crypto_init(m)) != RETE_OK)
		return e;
	if (pack_any(&priv->base, &plain) != RETE_OK)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory packing the private part");
	if (plain.len > SIZE_MAX - crypto_box_SEALBYTES) {
		sodium_memzero(plain.data, plain.len);
		rete_buf_free(&plain);
		return rete_msg_set(m, RETE_EINVAL, "private part too large to seal");
	}
	clen = plain.len + crypto_box_SEALBYTES;
	c = malloc(clen);
	if (c == NULL) {
		sodium_memzero(plain.data, plain.len);
		rete_buf_free(&plain);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory sealing the private part");
	}
	if (crypto_box_seal(c, plain.data, plain.len, recipient->x) != 0) {
		sodium_memzero(plain.data, plain.len);
		rete_buf_free(&plain);
		free(c);
		return rete_msg_set(m, RETE_ECRYPTO,
				    "the private part cannot be sealed to the recipient's key");
	}
	/* The plaintext is personal data: wipe it before giving it back. */
	sodium_memzero(plain.data, plain.len);
	rete_buf_free(&plain);
	if (hash != NULL)
		rete_sha256(hash, c, clen);
	sealed->data = c;
	sealed->len = clen;
	return RETE_OK;
}

rete_err rete_open(const uint8_t *sealed, size_t len, const rete_seckey *sk, Rete__Private **out,
		   rete_msg *m)
{
	ProtobufCMessage *priv = NULL;
	uint8_t *plain;
	size_t plen;
	rete_err e;

	*out = NULL;
	if ((e = rete_crypto_init(m)) != RETE_OK)
		return e;
	if (sealed == NULL || len < crypto_box_SEALBYTES)
		return rete_msg_set(m, RETE_EOPEN,
				    "the sealed part is %zu bytes, shorter than the %u bytes "
				    "of an empty sealed box",
				    len, (unsigned)crypto_box_SEALBYTES);
	plen = len - crypto_box_SEALBYTES;
	plain = malloc(plen > 0 ? plen : 1);
	if (plain == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory opening the sealed part");
	if (crypto_box_seal_open(plain, sealed, len, sk->pub.x, sk->x_sk) != 0) {
		free(plain);
		return rete_msg_set(m, RETE_EOPEN,
				    "the sealed part does not open with our key: it was sealed "
				    "to another key or altered on the way");
	}
	e = rete_pb_strict_unpack(&rete__private__descriptor, plain, plen, &priv, m);
	if (e != RETE_OK)
		rete_msg_prefix(m, "the opened sealed part");
	sodium_memzero(plain, plen);
	free(plain);
	*out = (Rete__Private *)priv;
	return e;
}

/* ---- small accessors ---------------------------------------------------- */

const char *rete_message_kind(const Rete__Message *msg)
{
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		return "referral";
	case RETE__MESSAGE__BODY_UPDATE:
		return "update";
	case RETE__MESSAGE__BODY_NOTE:
		return "note";
	case RETE__MESSAGE__BODY_DELIVERY:
		return "delivery";
	case RETE__MESSAGE__BODY_NOTICE:
		return "notice";
	case RETE__MESSAGE__BODY_DIRECTORY:
		return "directory";
	case RETE__MESSAGE__BODY_EPOCH:
		return "epoch";
	default:
		return "none";
	}
}

const char *rete_message_referral_id(const Rete__Message *msg)
{
	const char *id = NULL;

	/* the oneof members alias one pointer: NULL only in a hand-built message */
	if (msg->referral == NULL)
		return "";
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		id = msg->id;
		break;
	case RETE__MESSAGE__BODY_UPDATE:
		id = msg->update->referral_id;
		break;
	case RETE__MESSAGE__BODY_NOTE:
		id = msg->note->referral_id;
		break;
	case RETE__MESSAGE__BODY_DELIVERY:
		id = msg->delivery->referral_id;
		break;
	case RETE__MESSAGE__BODY_NOTICE:
		id = msg->notice->referral_id;
		break;
	default:
		break;
	}
	return id != NULL ? id : "";
}

ProtobufCBinaryData rete_message_private_hash(const Rete__Message *msg)
{
	ProtobufCBinaryData none = {0, NULL};

	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		return msg->referral ? msg->referral->private_sha256 : none;
	case RETE__MESSAGE__BODY_UPDATE:
		return msg->update ? msg->update->private_sha256 : none;
	case RETE__MESSAGE__BODY_NOTE:
		return msg->note ? msg->note->private_sha256 : none;
	default:
		return none;
	}
}

/* ---- v3: signed acknowledgements and signed refusals -------------------- */

/* sign_body packs msg and signs ctx||bytes: *body and *sig get malloc'd
 * copies (both NULL on failure). what names it in the sentences. */
static rete_err sign_body(const ProtobufCMessage *msg, const char *ctx, const rete_seckey *sk,
			  ProtobufCBinaryData *body, ProtobufCBinaryData *sig, const char *what,
			  rete_msg *m)
{
	rete_buf b = {0};
	uint8_t *s;
	rete_err e;

	body->data = NULL;
	body->len = 0;
	sig->data = NULL;
	sig->len = 0;
	if (pack_any(msg, &b) != RETE_OK)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory packing the %s", what);
	s = malloc(RETE_SIG_LEN);
	if (s == NULL) {
		rete_buf_free(&b);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory signing the %s", what);
	}
	e = rete_sign_bytes(s, ctx, b.data, b.len, sk);
	if (e != RETE_OK) {
		rete_buf_free(&b);
		free(s);
		return rete_msg_set(m, e, "the %s cannot be signed (%s)", what, rete_strerror(e));
	}
	body->data = b.data;
	body->len = b.len;
	sig->data = s;
	sig->len = RETE_SIG_LEN;
	return RETE_OK;
}

/* verify_body checks sig over ctx||body with pk, then decodes body
 * strictly as d into *out (if out is not NULL). */
static rete_err verify_body(const ProtobufCBinaryData *body, const ProtobufCBinaryData *sig,
			    const char *ctx, const rete_pubkey *pk,
			    const ProtobufCMessageDescriptor *d, ProtobufCMessage **out,
			    const char *what, const char *signer, rete_msg *m)
{
	ProtobufCMessage *pm = NULL;
	rete_err e;

	if (out != NULL)
		*out = NULL;
	if (sig->len == 0)
		return rete_msg_set(m, RETE_EBADSIG,
				    "the %s carries no signature; it must be "
				    "signed by %s",
				    what, signer);
	if (sig->len != RETE_SIG_LEN)
		return rete_msg_set(m, RETE_EBADSIG,
				    "the %s's signature is %zu bytes; an Ed25519 signature is "
				    "%d bytes",
				    what, sig->len, RETE_SIG_LEN);
	e = rete_verify_bytes(sig->data, ctx, body->data, body->len, pk);
	if (e == RETE_ENOMEM)
		return rete_msg_set(m, e, "out of memory verifying the %s", what);
	if (e != RETE_OK)
		return rete_msg_set(m, RETE_EBADSIG,
				    "the %s's signature does not verify with %s's key: it was "
				    "signed by another key, or its body was altered",
				    what, signer);
	e = rete_pb_strict_unpack(d, body->data, body->len, &pm, m);
	if (e != RETE_OK) {
		rete_msg_prefix(m, "%s", what);
		return e;
	}
	if (out != NULL)
		*out = pm;
	else
		protobuf_c_message_free_unpacked(pm, NULL);
	return RETE_OK;
}

rete_err rete_ack_sign(const Rete__AckBody *body, const rete_seckey *sk, Rete__SignedAck *out,
		       rete_msg *m)
{
	rete__signed_ack__init(out);
	return sign_body(&body->base, RETE_CTX_ACK, sk, &out->body, &out->signature,
			 "acknowledgement", m);
}

rete_err rete_ack_verify(const Rete__SignedAck *sa, const rete_pubkey *pk, Rete__AckBody **body,
			 rete_msg *m)
{
	if (body != NULL)
		*body = NULL;
	if (sa == NULL)
		return rete_msg_set(m, RETE_EBADSIG,
				    "the acknowledgement is not signed (no SignedAck); it must be "
				    "signed by the recipient");
	return verify_body(&sa->body, &sa->signature, RETE_CTX_ACK, pk, &rete__ack_body__descriptor,
			   (ProtobufCMessage **)body, "acknowledgement", "the recipient", m);
}

void rete_signed_ack_clear(Rete__SignedAck *sa)
{
	if (sa == NULL)
		return;
	free(sa->body.data);
	free(sa->signature.data);
	rete__signed_ack__init(sa);
}

rete_err rete_refusal_sign(const Rete__RefusalBody *body, const rete_seckey *sk,
			   Rete__SignedRefusal *out, rete_msg *m)
{
	rete__signed_refusal__init(out);
	return sign_body(&body->base, RETE_CTX_REFUSAL, sk, &out->body, &out->signature, "refusal",
			 m);
}

rete_err rete_refusal_verify(const Rete__SignedRefusal *sr, const rete_pubkey *pk,
			     Rete__RefusalBody **body, rete_msg *m)
{
	if (body != NULL)
		*body = NULL;
	if (sr == NULL)
		return rete_msg_set(m, RETE_EBADSIG,
				    "the refusal is not signed (no SignedRefusal); a broker of "
				    "protocol 3 or later signs every refusal with its key");
	return verify_body(&sr->body, &sr->signature, RETE_CTX_REFUSAL, pk,
			   &rete__refusal_body__descriptor, (ProtobufCMessage **)body, "refusal",
			   "the broker", m);
}

void rete_signed_refusal_clear(Rete__SignedRefusal *sr)
{
	if (sr == NULL)
		return;
	free(sr->body.data);
	free(sr->signature.data);
	rete__signed_refusal__init(sr);
}

/* --- the two frames packed per logged entry, by hand ---------------------------------
 *
 * protobuf-c packs a message in two walks of its descriptor (the size,
 * then the bytes), and sizes a nested message again while packing it: a
 * receipt cost the broker's main thread ~3,000 instructions and each
 * entry's event ~2,700 (callgrind, session 16), for a few dozen bytes.
 * These write the same bytes directly: proto3 rules (a zero number, an
 * empty or NULL string are not written; an enum is an int32, a negative
 * one ten bytes long), fields in number order. test_codec compares them
 * with protobuf-c on every field set and unset. */

static size_t pb_vlen(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *pb_vput(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* pb_u: the bytes of a varint field (tag of one byte) holding v, 0 when v is 0 */
static size_t pb_u(uint64_t v)
{
	return v ? 1 + pb_vlen(v) : 0;
}

/* pb_enum: an enum (an int32 on the wire) as a varint */
static uint64_t pb_enum(int v)
{
	return (uint64_t)(int64_t)(int32_t)v;
}

static size_t pb_s(size_t len)
{
	return len ? 1 + pb_vlen(len) + len : 0;
}

static uint8_t *pb_put_u(uint8_t *p, uint8_t tag, uint64_t v)
{
	if (v == 0)
		return p;
	*p++ = tag;
	return pb_vput(p, v);
}

static uint8_t *pb_put_s(uint8_t *p, uint8_t tag, const char *s, size_t len)
{
	if (len == 0)
		return p;
	*p++ = tag;
	p = pb_vput(p, len);
	memcpy(p, s, len);
	return p + len;
}

static size_t pb_strlen(const char *s)
{
	return s ? strlen(s) : 0;
}

size_t rete_broker_frame_pack_receipt(const Rete__BrokerFrame *bf, uint8_t *out, size_t cap)
{
	const Rete__Receipt *r;
	if (bf->command_case == RETE__BROKER_FRAME__COMMAND_RECEIPT)
		r = bf->receipt;
	else if (bf->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL)
		r = bf->refusal;
	else
		return 0;
	if (r == NULL || r->receipt != NULL || r->signed_refusal != NULL ||
	    (r->n_proof && r->proof == NULL))
		return 0;
	size_t l_id = pb_strlen(r->message_id), l_text = pb_strlen(r->error_text),
	       l_field = pb_strlen(r->field), l_cp = pb_strlen(r->checkpoint);
	size_t body = pb_s(l_id) + pb_u(pb_enum(r->error)) + pb_s(l_text) + pb_s(l_field) +
		      pb_u(r->index) + pb_u((uint64_t)r->logged_at) + pb_s(l_cp);
	for (size_t i = 0; i < r->n_proof; i++)
		body += 1 + pb_vlen(r->proof[i].len) + r->proof[i].len;
	bool refusal = bf->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL;
	size_t total = pb_u(bf->version) + (refusal ? 2 : 1) + pb_vlen(body) + body;
	if (total > cap)
		return 0;
	uint8_t *p = pb_put_u(out, 0x08, bf->version);
	if (refusal) { /* field 16: a two-byte tag */
		*p++ = 0x82;
		*p++ = 0x01;
	} else
		*p++ = 0x5a;
	p = pb_vput(p, body);
	p = pb_put_s(p, 0x0a, r->message_id, l_id);
	p = pb_put_u(p, 0x10, pb_enum(r->error));
	p = pb_put_s(p, 0x1a, r->error_text, l_text);
	p = pb_put_s(p, 0x22, r->field, l_field);
	p = pb_put_u(p, 0x30, r->index);
	p = pb_put_u(p, 0x38, (uint64_t)r->logged_at);
	for (size_t i = 0; i < r->n_proof; i++) { /* repeated: each, even empty */
		size_t n = r->proof[i].len;
		*p++ = 0x42;
		if (n == RETE_HASH_LEN) { /* a proof's hash: a copy of known size */
			*p++ = RETE_HASH_LEN;
			memcpy(p, r->proof[i].data, RETE_HASH_LEN);
		} else {
			p = pb_vput(p, n);
			if (n)
				memcpy(p, r->proof[i].data, n);
		}
		p += n;
	}
	p = pb_put_s(p, 0x4a, r->checkpoint, l_cp);
	return (size_t)(p - out);
}

size_t rete_event_pack_fast(const Rete__Event *ev, uint8_t *out, size_t cap)
{
	const char *s[] = {ev->kind,	   ev->sender,		ev->recipient,	ev->case_id,
			   ev->referral_id, ev->service,	ev->business_status, ev->checkpoint,
			   ev->message_id};
	size_t l[sizeof(s) / sizeof(s[0])];
	size_t total = pb_u(ev->index) + pb_u((uint64_t)ev->logged_at) + pb_u(pb_enum(ev->status)) +
		       pb_u(pb_enum(ev->priority)) + pb_u(pb_enum(ev->age_band)) +
		       pb_u(pb_enum(ev->notice));
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		l[i] = pb_strlen(s[i]);
		total += pb_s(l[i]);
	}
	if (total > cap)
		return 0;
	uint8_t *p = pb_put_u(out, 0x08, ev->index);
	p = pb_put_u(p, 0x10, (uint64_t)ev->logged_at);
	p = pb_put_s(p, 0x1a, s[0], l[0]); /* kind */
	p = pb_put_s(p, 0x22, s[1], l[1]); /* sender */
	p = pb_put_s(p, 0x2a, s[2], l[2]); /* recipient */
	p = pb_put_s(p, 0x32, s[3], l[3]); /* case_id */
	p = pb_put_s(p, 0x3a, s[4], l[4]); /* referral_id */
	p = pb_put_u(p, 0x40, pb_enum(ev->status));
	p = pb_put_s(p, 0x4a, s[5], l[5]); /* service */
	p = pb_put_u(p, 0x50, pb_enum(ev->priority));
	p = pb_put_u(p, 0x58, pb_enum(ev->age_band));
	p = pb_put_u(p, 0x60, pb_enum(ev->notice));
	p = pb_put_s(p, 0x6a, s[6], l[6]); /* business_status */
	p = pb_put_s(p, 0x72, s[7], l[7]); /* checkpoint */
	p = pb_put_s(p, 0x7a, s[8], l[8]); /* message_id */
	return (size_t)(p - out);
}
