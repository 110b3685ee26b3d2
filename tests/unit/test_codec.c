/* test_codec.c — signatures (RFC 8032 known answers, bit flips), SHA-256,
 * sealing, and strict decoding of hand-built protobuf bytes. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "testutil.h"

static void hex(uint8_t *out, size_t n, const char *h)
{
	size_t got = 0;
	assert_int_equal(strlen(h), 2 * n);
	assert_int_equal(sodium_hex2bin(out, n, h, strlen(h), NULL, &got, NULL), 0);
	assert_int_equal(got, n);
}

static rete_seckey *key_from_hex(const char *seedhex)
{
	uint8_t seed[32];
	rete_seckey *sk = NULL;
	hex(seed, 32, seedhex);
	assert_int_equal(rete_seckey_from_seed(&sk, seed, NULL), RETE_OK);
	return sk;
}

/* ---- SHA-256 and Ed25519 known answers ---------------------------------- */

static void test_sha256_known(void **state)
{
	(void)state;
	uint8_t got[32], want[32];

	/* FIPS 180-2 appendix B.1 and the empty string. */
	rete_sha256(got, "abc", 3);
	hex(want, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_memory_equal(got, want, 32);
	rete_sha256(got, NULL, 0);
	hex(want, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_memory_equal(got, want, 32);
}

/* RFC 8032 section 7.1, tests 1 and 2: an empty ctx makes rete_sign_bytes
 * plain Ed25519, so it must reproduce the RFC's signatures. */
static void test_rfc8032_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *seed, *pk, *msg, *sig;
	} v[] = {
	    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
	     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
	    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
	     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
	     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
	     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	};
	for (size_t i = 0; i < 2; i++) {
		rete_seckey *sk = key_from_hex(v[i].seed);
		uint8_t pk[32], want[64], sig[64], msg[1];
		size_t mlen = strlen(v[i].msg) / 2;

		hex(pk, 32, v[i].pk);
		hex(want, 64, v[i].sig);
		if (mlen > 0)
			hex(msg, mlen, v[i].msg);
		assert_memory_equal(sk->pub.ed, pk, 32);

		assert_int_equal(rete_sign_bytes(sig, "", msg, mlen, sk), RETE_OK);
		assert_memory_equal(sig, want, 64);
		assert_int_equal(rete_verify_bytes(sig, "", msg, mlen, &sk->pub), RETE_OK);
		assert_int_equal(rete_sign_bytes(sig, NULL, msg, mlen, sk), RETE_OK);
		assert_memory_equal(sig, want, 64);
		/* The context is simply prepended: signing test 2's message as
		 * the context of an empty message gives the same signature. */
		if (mlen == 1) {
			char ctx[2] = {(char)msg[0], 0};
			assert_int_equal(rete_sign_bytes(sig, ctx, NULL, 0, sk), RETE_OK);
			assert_memory_equal(sig, want, 64);
		}
		/* Another context does not verify. */
		assert_int_equal(rete_verify_bytes(want, RETE_CTX_MESSAGE, msg, mlen, &sk->pub),
				 RETE_EBADSIG);
		rete_seckey_free(&sk);
	}
}

static void test_contexts_differ(void **state)
{
	(void)state;
	rete_seckey *sk = NULL;
	const uint8_t body[] = "receipt body";
	uint8_t sig[64];

	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);
	assert_int_equal(rete_sign_bytes(sig, RETE_CTX_RECEIPT, body, sizeof(body), sk), RETE_OK);
	assert_int_equal(rete_verify_bytes(sig, RETE_CTX_RECEIPT, body, sizeof(body), &sk->pub),
			 RETE_OK);
	assert_int_equal(rete_verify_bytes(sig, RETE_CTX_MESSAGE, body, sizeof(body), &sk->pub),
			 RETE_EBADSIG);
	rete_seckey_free(&sk);
}

/* rete_verify_bytes_in gives rete_verify_bytes' answers, and an arena
 * used for a thousand verifications keeps the one block it had: ctx||msg
 * is taken back after each. */
static void test_verify_bytes_in_arena(void **state)
{
	(void)state;
	rete_seckey *sk = NULL;
	rete_arena a;
	uint8_t body[1024], sig[64];

	memset(&a, 0, sizeof(a));
	memset(body, 'x', sizeof(body));
	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);
	assert_int_equal(rete_sign_bytes(sig, RETE_CTX_MESSAGE, body, sizeof(body), sk), RETE_OK);
	assert_non_null(rete_arena_alloc(&a, 100));
	size_t size = rete_arena_size(&a);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(
		    rete_verify_bytes_in(sig, RETE_CTX_MESSAGE, body, sizeof(body), &sk->pub, &a),
		    RETE_OK);
		assert_int_equal(
		    rete_verify_bytes_in(sig, RETE_CTX_RECEIPT, body, sizeof(body), &sk->pub, &a),
		    RETE_EBADSIG);
	}
	assert_int_equal(rete_arena_size(&a), size);
	/* an empty arena, and a message larger than a block */
	rete_arena_free(&a);
	uint8_t *big = malloc(RETE_ARENA_BLOCK * 2);
	assert_non_null(big);
	memset(big, 'y', RETE_ARENA_BLOCK * 2);
	assert_int_equal(rete_sign_bytes(sig, RETE_CTX_MESSAGE, big, RETE_ARENA_BLOCK * 2, sk),
			 RETE_OK);
	assert_int_equal(
	    rete_verify_bytes_in(sig, RETE_CTX_MESSAGE, big, RETE_ARENA_BLOCK * 2, &sk->pub, &a),
	    RETE_OK);
	big[7] ^= 1;
	assert_int_equal(
	    rete_verify_bytes_in(sig, RETE_CTX_MESSAGE, big, RETE_ARENA_BLOCK * 2, &sk->pub, &a),
	    RETE_EBADSIG);
	free(big);
	rete_arena_free(&a);
	rete_seckey_free(&sk);
}

/* le_same: rete_log_entry_decode_in with an arena (the fast path for
 * canonical bytes) gives what the general strict decoding gives: the same
 * code, and the same fields when it decodes. */
static void le_same(const uint8_t *d, size_t len)
{
	rete_arena a;
	Rete__LogEntry *fast = NULL;
	ProtobufCMessage *pm = NULL;
	rete_msg m1 = {{0}}, m2 = {{0}};

	memset(&a, 0, sizeof(a));
	rete_err e1 = rete_log_entry_decode_in(d, len, &a, &fast, &m1);
	rete_err e2 = rete_pb_strict_unpack(&rete__log_entry__descriptor, d, len, &pm, &m2);
	assert_int_equal(e1, e2);
	if (e1 == RETE_OK) {
		const Rete__LogEntry *slow = (const Rete__LogEntry *)pm;
		assert_true(fast->index == slow->index);
		assert_true(fast->logged_at == slow->logged_at);
		assert_int_equal(fast->signed_message.len, slow->signed_message.len);
		assert_memory_equal(fast->signed_message.data, slow->signed_message.data,
				    slow->signed_message.len);
		protobuf_c_message_free_unpacked(pm, NULL);
	} else {
		assert_string_equal(m1.text, m2.text);
	}
	rete_arena_free(&a);
}

static void test_log_entry_decode_in(void **state)
{
	(void)state;
	static const uint64_t idx[] = {
	    0, 1, 127, 128, 300, 1ull << 40, (1ull << 63) - 1, 1ull << 63, UINT64_MAX};
	static const int64_t at[] = {0, 1, 1764000000000, -1, INT64_MIN, INT64_MAX};
	uint8_t sm[40], buf[128];

	for (size_t i = 0; i < sizeof(sm); i++)
		sm[i] = (uint8_t)(i * 7 + 1);
	/* every combination, as protobuf-c packs it (empty signed_message too) */
	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++)
		for (size_t j = 0; j < sizeof(at) / sizeof(at[0]); j++)
			for (size_t k = 0; k < 2; k++) {
				Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
				le.index = idx[i];
				le.logged_at = at[j];
				le.signed_message.data = sm;
				le.signed_message.len = k == 0 ? sizeof(sm) : 0;
				size_t n = rete__log_entry__pack(&le, buf);
				le_same(buf, n);
				/* and every byte of it changed, and every prefix */
				for (size_t p = 0; p < n; p++) {
					le_same(buf, p);
					for (unsigned x = 1; x < 256; x += 37) {
						buf[p] ^= (uint8_t)x;
						le_same(buf, n);
						buf[p] ^= (uint8_t)x;
					}
				}
			}
	/* not canonical: overlong varints, a written 0, fields out of order or
	 * twice, an unknown field */
	static const uint8_t odd[][12] = {
	    {0x08, 0x81, 0x00, 0x1a, 0x01, 0x55},
	    {0x08, 0x00, 0x1a, 0x01, 0x55},
	    {0x10, 0x05, 0x08, 0x05, 0x1a, 0x01, 0x55},
	    {0x08, 0x05, 0x08, 0x06, 0x1a, 0x01, 0x55},
	    {0x1a, 0x01, 0x55, 0x08, 0x05},
	    {0x08, 0x05, 0x1a, 0x81, 0x00},
	    {0x08, 0x05, 0x1a, 0x01, 0x55, 0x20, 0x01},
	    {0x08, 0x05, 0x1a, 0x01, 0x55, 0x1a, 0x01, 0x56},
	};
	static const size_t oddlen[] = {6, 5, 7, 7, 5, 5, 7, 8};
	for (size_t i = 0; i < sizeof(oddlen) / sizeof(oddlen[0]); i++)
		le_same(odd[i], oddlen[i]);
}

/* ---- signed messages ---------------------------------------------------- */

/* sample_message fills a small referral message (static strings). */
static void sample_message(Rete__Message *msg, Rete__Referral *ref, Rete__Operator *op,
			   uint8_t *hash32)
{
	rete__message__init(msg);
	rete__referral__init(ref);
	rete__operator__init(op);
	op->staff_id = "sw-17";
	op->role = "social-worker";
	ref->service = "employment-orientation";
	ref->priority = RETE__PRIORITY__PRIORITY_URGENT;
	ref->age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	ref->private_sha256.data = hash32;
	ref->private_sha256.len = 32;
	msg->id = "m-0001";
	msg->sender = "social.mantova";
	msg->recipient = "cpi.mantova";
	msg->case_id = "case-\xc3\xa8-42"; /* UTF-8 is welcome */
	msg->created_at = 1767225600000;
	msg->origin = "broker.mantova";
	msg->operator_ = op;
	msg->body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg->referral = ref;
}

static void test_sign_decode_verify(void **state)
{
	(void)state;
	Rete__Message msg;
	Rete__Referral ref;
	Rete__Operator op;
	uint8_t hash[32];
	rete_seckey *sk = NULL, *other = NULL;
	rete_buf out = {0};
	Rete__SignedMessage *sm = NULL;
	Rete__Message *back = NULL;
	rete_msg m = {{0}};

	memset(hash, 0xab, sizeof(hash));
	sample_message(&msg, &ref, &op, hash);
	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);
	assert_int_equal(rete_seckey_generate(&other, NULL), RETE_OK);
	assert_int_equal(rete_message_sign(&msg, sk, &out, &m), RETE_OK);
	assert_int_equal(rete_signed_decode(out.data, out.len, &sm, &back, &m), RETE_OK);
	assert_string_equal(back->id, "m-0001");
	assert_string_equal(back->sender, "social.mantova");
	assert_string_equal(back->case_id, "case-\xc3\xa8-42");
	assert_string_equal(back->operator_->role, "social-worker");
	assert_string_equal(rete_message_kind(back), "referral");
	assert_string_equal(back->referral->service, "employment-orientation");
	{
		ProtobufCBinaryData h = rete_message_private_hash(back);
		assert_int_equal(h.len, 32);
		assert_memory_equal(h.data, hash, 32);
	}
	/* The signed bytes are exactly the packed Message. */
	{
		rete_buf packed = {0};
		assert_int_equal(rete_message_pack(&msg, &packed), RETE_OK);
		assert_int_equal(sm->message.len, packed.len);
		assert_memory_equal(sm->message.data, packed.data, packed.len);
		rete_buf_free(&packed);
		assert_null(packed.data);
	}
	assert_int_equal(rete_signed_verify(sm, &sk->pub, &m), RETE_OK);
	assert_int_equal(rete_signed_verify(sm, &other->pub, &m), RETE_EBADSIG);
	assert_non_null(strstr(m.text, "does not verify"));
	rete__signed_message__free_unpacked(sm, NULL);
	rete__message__free_unpacked(back, NULL);

	/* Either output may be left out. */
	assert_int_equal(rete_signed_decode(out.data, out.len, NULL, NULL, &m), RETE_OK);

	rete_buf_free(&out);
	rete_seckey_free(&sk);
	rete_seckey_free(&other);
}

/* Every single-bit change of the message bytes or of the signature must
 * fail verification; every single-bit change of the SignedMessage bytes
 * must fail decoding or verification. */
static void test_every_bit_flip(void **state)
{
	(void)state;
	Rete__Message msg = RETE__MESSAGE__INIT;
	rete_seckey *sk = NULL;
	rete_buf out = {0};
	Rete__SignedMessage *sm = NULL;
	uint8_t *mb, sig[64];
	size_t mlen, rejected = 0, total = 0;

	msg.id = "n1";
	msg.sender = "asst.mantova";
	msg.recipient = "social.mantova";
	msg.created_at = 42;
	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);
	assert_int_equal(rete_message_sign(&msg, sk, &out, NULL), RETE_OK);
	assert_int_equal(rete_signed_decode(out.data, out.len, &sm, NULL, NULL), RETE_OK);
	mlen = sm->message.len;
	mb = malloc(mlen);
	assert_non_null(mb);
	memcpy(mb, sm->message.data, mlen);
	memcpy(sig, sm->signature.data, 64);
	assert_int_equal(rete_verify_bytes(sig, RETE_CTX_MESSAGE, mb, mlen, &sk->pub), RETE_OK);

	for (size_t bit = 0; bit < mlen * 8; bit++) {
		mb[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (rete_verify_bytes(sig, RETE_CTX_MESSAGE, mb, mlen, &sk->pub) != RETE_EBADSIG)
			fail_msg("message bit %zu flipped still verifies", bit);
		mb[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < 64 * 8; bit++) {
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (rete_verify_bytes(sig, RETE_CTX_MESSAGE, mb, mlen, &sk->pub) != RETE_EBADSIG)
			fail_msg("signature bit %zu flipped still verifies", bit);
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < out.len * 8; bit++) {
		Rete__SignedMessage *s2 = NULL;
		out.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		total++;
		if (rete_signed_decode(out.data, out.len, &s2, NULL, NULL) != RETE_OK ||
		    rete_signed_verify(s2, &sk->pub, NULL) == RETE_EBADSIG)
			rejected++;
		else
			fail_msg("SignedMessage bit %zu flipped is still accepted", bit);
		if (s2 != NULL)
			rete__signed_message__free_unpacked(s2, NULL);
		out.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(rejected, total);
	assert_true(total > 8 * 70);
	/* And the untouched bytes still pass. */
	assert_int_equal(rete_verify_bytes(sig, RETE_CTX_MESSAGE, mb, mlen, &sk->pub), RETE_OK);

	free(mb);
	rete__signed_message__free_unpacked(sm, NULL);
	rete_buf_free(&out);
	rete_seckey_free(&sk);
}

/* ---- sealing ------------------------------------------------------------ */

static void sample_private(Rete__Private *priv, Rete__Person *person, Rete__Contact *c,
			   Rete__Contact **cs)
{
	rete__private__init(priv);
	rete__person__init(person);
	rete__contact__init(c);
	c->kind = "phone";
	c->value = "+39 0376 000000";
	cs[0] = c;
	person->name = "Maria Rossi";
	person->fiscal_code = "RSSMRA80A41E897X";
	person->birth_date = "1980-01-01";
	person->n_contacts = 1;
	person->contacts = cs;
	priv->person = person;
	priv->reason = "needs job orientation after long leave";
}

static void test_seal_open(void **state)
{
	(void)state;
	Rete__Private priv;
	Rete__Person person;
	Rete__Contact c, *cs[1];
	rete_seckey *to = NULL, *other = NULL;
	rete_buf sealed = {0};
	uint8_t hash[32], want[32];
	Rete__Private *back = NULL;
	rete_msg m = {{0}};

	sample_private(&priv, &person, &c, cs);
	assert_int_equal(rete_seckey_generate(&to, NULL), RETE_OK);
	assert_int_equal(rete_seckey_generate(&other, NULL), RETE_OK);
	assert_int_equal(rete_seal(&priv, &to->pub, &sealed, hash, &m), RETE_OK);
	assert_int_equal(sealed.len, rete__private__get_packed_size(&priv) + crypto_box_SEALBYTES);
	rete_sha256(want, sealed.data, sealed.len);
	assert_memory_equal(hash, want, 32);
	/* The plaintext does not appear in the ciphertext. */
	assert_null(memmem(sealed.data, sealed.len, "Maria", 5));

	assert_int_equal(rete_open(sealed.data, sealed.len, to, &back, &m), RETE_OK);
	assert_string_equal(back->person->name, "Maria Rossi");
	assert_string_equal(back->person->fiscal_code, "RSSMRA80A41E897X");
	assert_int_equal(back->person->n_contacts, 1);
	assert_string_equal(back->person->contacts[0]->value, "+39 0376 000000");
	assert_string_equal(back->reason, "needs job orientation after long leave");
	rete__private__free_unpacked(back, NULL);

	/* Wrong key. */
	assert_int_equal(rete_open(sealed.data, sealed.len, other, &back, &m), RETE_EOPEN);
	assert_null(back);
	assert_non_null(strstr(m.text, "does not open"));
	/* Truncated, at every length. */
	for (size_t n = 0; n < sealed.len; n++) {
		if (rete_open(sealed.data, n, to, &back, NULL) != RETE_EOPEN)
			fail_msg("sealed part truncated to %zu bytes was not refused", n);
		assert_null(back);
	}
	/* Altered: any single byte. */
	for (size_t i = 0; i < sealed.len; i++) {
		sealed.data[i] ^= 0x01;
		if (rete_open(sealed.data, sealed.len, to, &back, NULL) != RETE_EOPEN)
			fail_msg("sealed part altered at byte %zu was not refused", i);
		sealed.data[i] ^= 0x01;
	}
	/* Two seals of the same data differ (fresh ephemeral keys). */
	{
		rete_buf again = {0};
		uint8_t h2[32];
		assert_int_equal(rete_seal(&priv, &to->pub, &again, h2, NULL), RETE_OK);
		assert_memory_not_equal(h2, hash, 32);
		rete_buf_free(&again);
	}
	rete_buf_free(&sealed);
	rete_seckey_free(&to);
	rete_seckey_free(&other);
}

/* A sealed part that opens but does not decode strictly is EDECODE. */
static void test_open_not_strict(void **state)
{
	(void)state;
	rete_seckey *to = NULL;
	static const uint8_t plain[] = {0x12, 0x02, 'a', 0x00}; /* reason "a\0" */
	uint8_t c[sizeof(plain) + crypto_box_SEALBYTES];
	Rete__Private *back = NULL;
	rete_msg m = {{0}};

	assert_int_equal(rete_seckey_generate(&to, NULL), RETE_OK);
	assert_int_equal(crypto_box_seal(c, plain, sizeof(plain), to->pub.x), 0);
	assert_int_equal(rete_open(c, sizeof(c), to, &back, &m), RETE_EDECODE);
	assert_null(back);
	assert_non_null(strstr(m.text, "sealed part"));
	rete_seckey_free(&to);
}

/* ---- strict decoding ---------------------------------------------------- */

struct wire_case {
	const char *what;
	const uint8_t *bytes;
	size_t len;
	const char *says; /* a piece of the expected sentence */
};

#define W(what, says, ...)                                                                         \
	{                                                                                          \
		what, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), says \
	}

static void test_strict_refusals(void **state)
{
	(void)state;
	const struct wire_case cases[] = {
	    W("embedded NUL in id", "re-encodes", 0x0a, 0x03, 'a', 0x00, 'b'),
	    W("NUL at end of id", "re-encodes", 0x0a, 0x02, 'a', 0x00),
	    W("duplicated id", "re-encodes", 0x0a, 0x01, 'a', 0x0a, 0x01, 'b'),
	    W("duplicated created_at", "re-encodes", 0x30, 0x01, 0x30, 0x01),
	    W("unknown field 99", "field number 99", 0x0a, 0x01, 'a', 0x98, 0x06, 0x01),
	    W("invalid UTF-8 in id", "Message.id", 0x0a, 0x02, 0xc3, 0x28),
	    W("lone continuation byte", "Message.sender", 0x12, 0x01, 0x80),
	    W("overlong UTF-8 NUL", "UTF-8", 0x0a, 0x02, 0xc0, 0x80),
	    W("UTF-16 surrogate", "UTF-8", 0x0a, 0x03, 0xed, 0xa0, 0x80),
	    W("above U+10FFFF", "UTF-8", 0x0a, 0x04, 0xf4, 0x90, 0x80, 0x80),
	    W("truncated UTF-8", "UTF-8", 0x0a, 0x02, 'a', 0xe2),
	    /* past the decoder's eight-bytes-at-a-time ASCII scan: the offset
	     * is still the bad byte's */
	    W("invalid UTF-8 after ten ASCII bytes", "offset 10", 0x0a, 0x0b, 'a', 'b', 'c', 'd',
	      'e', 'f', 'g', 'h', 'i', 'j', 0xff),
	    W("invalid UTF-8 after ASCII, a valid e-grave and ASCII", "offset 19", 0x0a, 0x15, 'a',
	      'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 0xc3, 0xa8, 'a', 'b', 'c', 'd', 'e', 'f', 'g',
	      'h', 0xc3, 0x28),
	    W("surrogate after sixteen ASCII bytes", "offset 16", 0x0a, 0x13, 'a', 'b', 'c', 'd',
	      'e', 'f', 'g', 'h', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0xed, 0xa0, 0x80),
	    W("invalid UTF-8 in oneof referral.service", "Message.referral.service", 0x52, 0x04,
	      0x0a, 0x02, 0xff, 0xfe),
	    W("NUL in referral.service", "re-encodes", 0x52, 0x03, 0x0a, 0x01, 0x00),
	    W("unknown field inside referral", "Message.referral", 0x52, 0x03, 0xf8, 0x06, 0x01),
	    W("invalid UTF-8 in repeated directory.parties[1].name",
	      "Message.directory.parties[1].name", 0x7a, 0x0b, 0x12, 0x04, 0x0a, 0x02, 'a', 'b',
	      0x12, 0x03, 0x12, 0x01, 0xff),
	    W("operator.role invalid UTF-8", "Message.operator.role", 0x1a, 0x03, 0x12, 0x01, 0xfe),
	    W("overlong varint", "re-encodes", 0x30, 0x81, 0x00),
	    W("explicit default value", "re-encodes", 0x0a, 0x01, 'a', 0x30, 0x00),
	    W("explicit empty string", "re-encodes", 0x0a, 0x00),
	    W("fields out of order", "field-number order", 0x12, 0x01, 'b', 0x0a, 0x01, 'a'),
	    W("two bodies of the oneof", "re-encodes", 0x52, 0x00, 0x5a, 0x00),
	    W("an enum above 2^31-1", "re-encodes", 0x52, 0x06, 0x10, 0x80, 0x80, 0x80, 0x80, 0x08),
	    W("a bool of 2", "canonical form", 0x52, 0x02, 0x28, 0x02),
	    W("two bodies of the oneof, neither empty", "re-encodes", 0x52, 0x03, 0x0a, 0x01, 'x',
	      0x5a, 0x03, 0x0a, 0x01, 'y'),
	    W("truncated string", "protobuf decoding failed", 0x0a, 0x05, 'a'),
	    W("wrong wire type", "protobuf decoding failed", 0x08, 0x01),
	    W("bad varint", "protobuf decoding failed", 0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	      0xff, 0xff, 0xff, 0xff, 0xff),
	};
	rete_arena arena = {0};
	assert_non_null(rete_arena_alloc(&arena, 100)); /* something before */
	rete_arena_mark before = rete_arena_mark_get(&arena);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Rete__Message *msg = (Rete__Message *)1;
		rete_msg m = {{0}}, ma = {{0}};
		rete_err e = rete_message_decode(cases[i].bytes, cases[i].len, &msg, &m);
		if (e != RETE_EDECODE)
			fail_msg("%s: got %d (%s), want RETE_EDECODE", cases[i].what, e,
				 rete_strerror(e));
		assert_null(msg);
		if (strstr(m.text, cases[i].says) == NULL)
			fail_msg("%s: sentence \"%s\" does not mention \"%s\"", cases[i].what,
				 m.text, cases[i].says);
		/* decoded into an arena: the same refusal, the same sentence,
		 * and nothing left in the arena */
		ProtobufCMessage *pm = (ProtobufCMessage *)1;
		e = rete_pb_strict_unpack_in(&rete__message__descriptor, cases[i].bytes,
					     cases[i].len, &arena, &pm, &ma);
		if (e != RETE_EDECODE || strcmp(m.text, ma.text) != 0)
			fail_msg("%s: in an arena %d \"%s\", with malloc \"%s\"", cases[i].what, e,
				 ma.text, m.text);
		assert_null(pm);
		rete_arena_mark after = rete_arena_mark_get(&arena);
		assert_ptr_equal(after.blk, before.blk);
		assert_int_equal(after.used, before.used);
	}
	rete_arena_free(&arena);
}

static void test_strict_accepts(void **state)
{
	(void)state;
	/* Hand-built: id "m1", sender "social.mantova", created_at 1,
	 * directory with two parties. */
	static const uint8_t ok[] = {0x0a, 0x02, 'm',  '1',  0x12, 0x0e, 's',  'o',  'c',
				     'i',  'a',	 'l',  '.',  'm',  'a',	 'n',  't',  'o',
				     'v',  'a',	 0x30, 0x01, 0x7a, 0x0b, 0x12, 0x04, 0x0a,
				     0x02, 'a',	 'b',  0x12, 0x03, 0x12, 0x01, 'z'};
	Rete__Message *msg = NULL;
	rete_msg m = {{0}};

	assert_int_equal(rete_message_decode(ok, sizeof(ok), &msg, &m), RETE_OK);
	assert_string_equal(msg->id, "m1");
	assert_string_equal(msg->sender, "social.mantova");
	assert_int_equal(msg->created_at, 1);
	assert_string_equal(rete_message_kind(msg), "directory");
	assert_int_equal(msg->directory->n_parties, 2);
	assert_string_equal(msg->directory->parties[0]->id, "ab");
	assert_string_equal(msg->directory->parties[1]->name, "z");
	assert_int_equal(rete_message_private_hash(msg).len, 0);
	rete__message__free_unpacked(msg, NULL);

	/* Empty bytes are the empty message (its content is for validation
	 * to judge, not the decoder). */
	assert_int_equal(rete_message_decode(NULL, 0, &msg, &m), RETE_OK);
	assert_string_equal(rete_message_kind(msg), "none");
	rete__message__free_unpacked(msg, NULL);

	/* A full message packed by protobuf-c decodes. */
	{
		Rete__Message full;
		Rete__Referral ref;
		Rete__Operator op;
		uint8_t hash[32] = {1, 2, 3};
		rete_buf b = {0};
		sample_message(&full, &ref, &op, hash);
		assert_int_equal(rete_message_pack(&full, &b), RETE_OK);
		assert_int_equal(rete_message_decode(b.data, b.len, &msg, &m), RETE_OK);
		assert_int_equal(msg->referral->priority, RETE__PRIORITY__PRIORITY_URGENT);
		rete__message__free_unpacked(msg, NULL);
		rete_buf_free(&b);
	}
}

/* The generic helper works for any message type (the broker's frames). */
static void test_strict_generic(void **state)
{
	(void)state;
	/* ClientFrame{version 1, hello{party "cpi.mantova"}} */
	static const uint8_t ok[] = {0x08, 0x01, 0x52, 0x0d, 0x0a, 0x0b, 'c', 'p', 'i',
				     '.',  'm',	 'a',  'n',  't',  'o',	 'v', 'a'};
	static const uint8_t nul[] = {0x08, 0x01, 0x52, 0x05, 0x0a, 0x03, 'c', 0x00, 'x'};
	ProtobufCMessage *pm = NULL;
	rete_msg m = {{0}};

	assert_int_equal(
	    rete_pb_strict_unpack(&rete__client_frame__descriptor, ok, sizeof(ok), &pm, &m),
	    RETE_OK);
	{
		Rete__ClientFrame *cf = (Rete__ClientFrame *)pm;
		assert_int_equal(cf->version, 1);
		assert_int_equal(cf->command_case, RETE__CLIENT_FRAME__COMMAND_HELLO);
		assert_string_equal(cf->hello->party, "cpi.mantova");
	}
	protobuf_c_message_free_unpacked(pm, NULL);
	assert_int_equal(
	    rete_pb_strict_unpack(&rete__client_frame__descriptor, nul, sizeof(nul), &pm, &m),
	    RETE_EDECODE);
	assert_null(pm);
	assert_non_null(strstr(m.text, "ClientFrame"));
	{ /* a uint32 above 2^32-1: decoded cut to 32 bits, so not canonical */
		static const uint8_t big[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x10,
					      0x52, 0x03, 0x0a, 0x01, 'c'};
		assert_int_equal(rete_pb_strict_unpack(&rete__client_frame__descriptor, big,
						       sizeof(big), &pm, &m),
				 RETE_EDECODE);
		assert_null(pm);
		assert_non_null(strstr(m.text, "re-encodes"));
	}
}

/* SignedMessage decoding is strict too, outside and inside. */
static void test_signed_strict(void **state)
{
	(void)state;
	rete_seckey *sk = NULL;
	uint8_t inner_ok[] = {0x0a, 0x02, 'm', '1'};
	uint8_t inner_nul[] = {0x0a, 0x03, 'm', 0x00, '1'};
	uint8_t buf[128];
	uint8_t sig[64];
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_msg m = {{0}};
	size_t n;

	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);

	/* build: 0a len inner 12 siglen sig [extra] */
#define BUILD(inner, ilen, slen, extra, elen)                                                      \
	do {                                                                                       \
		n = 0;                                                                             \
		buf[n++] = 0x0a;                                                                   \
		buf[n++] = (uint8_t)(ilen);                                                        \
		memcpy(buf + n, inner, ilen);                                                      \
		n += ilen;                                                                         \
		buf[n++] = 0x12;                                                                   \
		buf[n++] = (uint8_t)(slen);                                                        \
		memcpy(buf + n, sig, slen);                                                        \
		n += slen;                                                                         \
		memcpy(buf + n, extra, elen);                                                      \
		n += elen;                                                                         \
	} while (0)

	assert_int_equal(rete_sign_bytes(sig, RETE_CTX_MESSAGE, inner_ok, sizeof(inner_ok), sk),
			 RETE_OK);
	BUILD(inner_ok, sizeof(inner_ok), 64, "", 0);
	assert_int_equal(rete_signed_decode(buf, n, &sm, &msg, &m), RETE_OK);
	assert_string_equal(msg->id, "m1");
	assert_int_equal(rete_signed_verify(sm, &sk->pub, &m), RETE_OK);
	rete__signed_message__free_unpacked(sm, NULL);
	rete__message__free_unpacked(msg, NULL);

	/* An unknown field after the signature. */
	BUILD(inner_ok, sizeof(inner_ok), 64, "\x18\x01", 2);
	assert_int_equal(rete_signed_decode(buf, n, &sm, &msg, &m), RETE_EDECODE);
	assert_null(sm);
	assert_null(msg);
	assert_non_null(strstr(m.text, "field number 3"));

	/* A short signature. */
	BUILD(inner_ok, sizeof(inner_ok), 63, "", 0);
	assert_int_equal(rete_signed_decode(buf, n, &sm, &msg, &m), RETE_EDECODE);
	assert_non_null(strstr(m.text, "63 bytes"));

	/* A duplicated signature field. */
	BUILD(inner_ok, sizeof(inner_ok), 64, "\x12\x00", 2);
	assert_int_equal(rete_signed_decode(buf, n, &sm, &msg, &m), RETE_EDECODE);

	/* A validly signed inner Message with an embedded NUL is still
	 * refused: the signature does not make it canonical. */
	assert_int_equal(rete_sign_bytes(sig, RETE_CTX_MESSAGE, inner_nul, sizeof(inner_nul), sk),
			 RETE_OK);
	assert_int_equal(
	    rete_verify_bytes(sig, RETE_CTX_MESSAGE, inner_nul, sizeof(inner_nul), &sk->pub),
	    RETE_OK);
	BUILD(inner_nul, sizeof(inner_nul), 64, "", 0);
	assert_int_equal(rete_signed_decode(buf, n, &sm, &msg, &m), RETE_EDECODE);
	assert_null(sm);
	assert_null(msg);
	assert_non_null(strstr(m.text, "SignedMessage.message"));
#undef BUILD
	rete_seckey_free(&sk);
}

/* The strict decoder reads canonical bytes on the wire instead of packing
 * and comparing them (canon_wire): it must accept nothing that packs to
 * other bytes, and still accept what packs back although it is not in the
 * shape that reading takes for sure (an empty body, negative numbers). */
static void test_canonical_on_the_wire(void **state)
{
	(void)state;
	Rete__Message full;
	Rete__Referral ref;
	Rete__Operator op;
	Rete__Consent cs = RETE__CONSENT__INIT;
	uint8_t hash[32] = {3};
	rete_buf b = {0};
	rete_msg m = {{0}};
	Rete__Message *msg = NULL;
	static uint8_t v[2048];
	size_t accepted = 0;

	sample_message(&full, &ref, &op, hash);
	cs.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_LEGAL_OBLIGATION;
	cs.legal_basis = "L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 c. 2";
	ref.consent = &cs;
	ref.reason_code = "unemployment";
	assert_int_equal(rete_message_pack(&full, &b), RETE_OK);
	assert_int_equal(rete_message_decode(b.data, b.len, &msg, &m), RETE_OK);
	rete__message__free_unpacked(msg, NULL);
	/* every bit flipped, every length cut, a byte added: accepted only
	 * when it packs back to the very bytes */
	memcpy(v, b.data, b.len);
	for (size_t k = 0; k <= b.len * 8 + b.len + 1; k++) {
		size_t n = b.len;
		if (k < b.len * 8)
			v[k / 8] ^= (uint8_t)(1u << (k % 8));
		else if (k < b.len * 8 + b.len)
			n = k - b.len * 8;
		else
			v[n++] = 0x01;
		if (rete_message_decode(v, n, &msg, &m) == RETE_OK) {
			rete_buf again = {0};
			assert_int_equal(rete_message_pack(msg, &again), RETE_OK);
			if (again.len != n || memcmp(again.data, v, n) != 0)
				fail_msg("variant %zu accepted but packs to other bytes", k);
			rete_buf_free(&again);
			rete__message__free_unpacked(msg, NULL);
			accepted++;
		}
		memcpy(v, b.data, b.len);
	}
	assert_true(accepted > 0); /* some flips stay canonical (in strings) */
	rete_buf_free(&b);

	/* canonical, though not in the shape read for sure: still accepted */
	const struct wire_case ok[] = {
	    W("an empty referral body", "", 0x0a, 0x01, 'a', 0x52, 0x00),
	    W("a negative created_at", "", 0x0a, 0x01, 'a', 0x30, 0xff, 0xff, 0xff, 0xff, 0xff,
	      0xff, 0xff, 0xff, 0xff, 0x01),
	    W("a negative priority", "", 0x52, 0x0b, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	      0xff, 0xff, 0x01),
	    W("an empty operator", "", 0x0a, 0x01, 'a', 0x1a, 0x00),
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		rete_buf again = {0};
		if (rete_message_decode(ok[i].bytes, ok[i].len, &msg, &m) != RETE_OK)
			fail_msg("%s: refused: %s", ok[i].what, m.text);
		assert_int_equal(rete_message_pack(msg, &again), RETE_OK);
		assert_int_equal(again.len, ok[i].len);
		assert_memory_equal(again.data, ok[i].bytes, ok[i].len);
		rete_buf_free(&again);
		rete__message__free_unpacked(msg, NULL);
	}
}

/* ---- arenas ------------------------------------------------------------- */

static void test_arena_alignment(void **state)
{
	(void)state;
	rete_arena a = {0};
	static const size_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1, 0, 2, 4096, 5};
	const size_t align = _Alignof(max_align_t);
	uint8_t *prev = NULL;
	size_t prev_n = 0;

	assert_int_equal(rete_arena_size(&a), 0); /* a zeroed arena holds nothing */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = rete_arena_alloc(&a, sizes[i]);
		assert_non_null(p);
		if ((uintptr_t)p % align != 0)
			fail_msg("allocation %zu (%zu bytes) at %p is not aligned to %zu", i,
				 sizes[i], (void *)p, align);
		memset(p, (int)i, sizes[i]);
		if (prev != NULL) /* the one before is intact */
			for (size_t k = 0; k < prev_n; k++)
				assert_int_equal(prev[k], (uint8_t)(i - 1));
		prev = p;
		prev_n = sizes[i];
	}
	assert_int_equal(rete_arena_size(&a), RETE_ARENA_BLOCK);
	/* a double and a pointer stored through an odd-sized neighbour */
	(void)rete_arena_alloc(&a, 3);
	double *d = rete_arena_alloc(&a, sizeof(double));
	*d = 1.5;
	assert_true(*d == 1.5);
	rete_arena_free(&a);
	assert_int_equal(rete_arena_size(&a), 0);
	rete_arena_free(&a); /* twice is fine */
	rete_arena_free(NULL);
	rete_arena_reset(NULL);
}

static void test_arena_growth(void **state)
{
	(void)state;
	rete_arena a = {0};
	const size_t half = RETE_ARENA_BLOCK / 2;
	uint8_t *p[4];

	/* three halves: the third does not fit the first block */
	for (int i = 0; i < 3; i++) {
		p[i] = rete_arena_alloc(&a, half);
		assert_non_null(p[i]);
		memset(p[i], 0x10 + i, half);
	}
	assert_int_equal(rete_arena_size(&a), RETE_ARENA_BLOCK + 2 * RETE_ARENA_BLOCK);
	/* larger than twice the last block: a block of its own size */
	p[3] = rete_arena_alloc(&a, 10 * RETE_ARENA_BLOCK);
	assert_non_null(p[3]);
	memset(p[3], 0x33, 10 * RETE_ARENA_BLOCK);
	assert_int_equal(rete_arena_size(&a), 13 * RETE_ARENA_BLOCK);
	/* everything handed out before the growth is still there */
	for (int i = 0; i < 3; i++)
		for (size_t k = 0; k < half; k += 997)
			assert_int_equal(p[i][k], 0x10 + i);
	assert_null(rete_arena_alloc(&a, SIZE_MAX - 8)); /* no overflow */
	rete_arena_free(&a);
}

static void test_arena_reset_reuse(void **state)
{
	(void)state;
	rete_arena a = {0};

	for (int i = 0; i < 3; i++)
		assert_non_null(rete_arena_alloc(&a, RETE_ARENA_BLOCK / 2 + 1));
	size_t largest = 2 * RETE_ARENA_BLOCK;
	assert_int_equal(rete_arena_size(&a), RETE_ARENA_BLOCK + largest);
	/* the reset keeps the newest (largest) block only, and hands it out
	 * again from its start */
	rete_arena_reset(&a);
	assert_int_equal(rete_arena_size(&a), largest);
	uint8_t *first = rete_arena_alloc(&a, 10);
	assert_non_null(first);
	for (int round = 0; round < 5; round++) {
		rete_arena_reset(&a);
		uint8_t *p = rete_arena_alloc(&a, 10);
		assert_ptr_equal(p, first);
		/* what the first block held fits in the one kept: no growth */
		for (int i = 0; i < 3; i++)
			assert_non_null(rete_arena_alloc(&a, RETE_ARENA_BLOCK / 2 + 1));
		assert_int_equal(rete_arena_size(&a), largest);
	}
	/* a batch of huge frames does not pin its memory */
	assert_non_null(rete_arena_alloc(&a, RETE_ARENA_KEEP + 1));
	rete_arena_reset(&a);
	assert_int_equal(rete_arena_size(&a), 0);
	assert_non_null(rete_arena_alloc(&a, 1));
	assert_int_equal(rete_arena_size(&a), RETE_ARENA_BLOCK);
	rete_arena_free(&a);
}

/* A decoding that fails midway (the SignedMessage decoded, the Message
 * inside refused) takes back all it took, even a block it grew. */
static void test_arena_decode_failure(void **state)
{
	(void)state;
	rete_arena a = {0};
	rete_seckey *sk = NULL;
	rete_msg m = {{0}}, mm = {{0}};
	Rete__SignedMessage *sm = (Rete__SignedMessage *)1;
	Rete__Message *msg = (Rete__Message *)1;
	Rete__Message full;
	Rete__Referral ref;
	Rete__Operator op;
	uint8_t hash[32] = {7};
	rete_buf good = {0};

	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);
	/* a signed message whose Message has an embedded NUL at its end */
	uint8_t inner[40] = {0x0a, 0x03, 'm', 0x00, '1'};
	uint8_t outer[128];
	size_t n = 0;
	outer[n++] = 0x0a;
	outer[n++] = 5;
	memcpy(outer + n, inner, 5);
	n += 5;
	outer[n++] = 0x12;
	outer[n++] = 64;
	assert_int_equal(rete_sign_bytes(outer + n, RETE_CTX_MESSAGE, inner, 5, sk), RETE_OK);
	n += 64;

	/* something decoded before stays, and what failed leaves nothing */
	sample_message(&full, &ref, &op, hash);
	assert_int_equal(rete_message_sign(&full, sk, &good, &m), RETE_OK);
	Rete__SignedMessage *gsm = NULL;
	Rete__Message *gmsg = NULL;
	assert_int_equal(rete_signed_decode_in(good.data, good.len, &a, &gsm, &gmsg, &m), RETE_OK);
	rete_arena_mark before = rete_arena_mark_get(&a);
	assert_int_equal(rete_signed_decode_in(outer, n, &a, &sm, &msg, &m), RETE_EDECODE);
	assert_null(sm);
	assert_null(msg);
	assert_int_equal(rete_signed_decode(outer, n, NULL, NULL, &mm), RETE_EDECODE);
	assert_string_equal(m.text, mm.text); /* the same sentence as with malloc */
	assert_non_null(strstr(m.text, "SignedMessage.message"));
	rete_arena_mark after = rete_arena_mark_get(&a);
	assert_ptr_equal(after.blk, before.blk);
	assert_int_equal(after.used, before.used);

	/* the same when the failed decoding had to grow the arena */
	size_t room = RETE_ARENA_BLOCK - before.used;
	assert_non_null(rete_arena_alloc(&a, room - 16));
	before = rete_arena_mark_get(&a);
	size_t size = rete_arena_size(&a);
	assert_int_equal(rete_signed_decode_in(outer, n, &a, &sm, &msg, &m), RETE_EDECODE);
	after = rete_arena_mark_get(&a);
	assert_ptr_equal(after.blk, before.blk);
	assert_int_equal(after.used, before.used);
	assert_int_equal(rete_arena_size(&a), size);

	/* what was decoded first is intact */
	assert_string_equal(gmsg->id, "m-0001");
	assert_string_equal(gmsg->referral->service, "employment-orientation");
	assert_int_equal(gsm->signature.len, 64);
	assert_memory_equal(gsm->signature.data, good.data + good.len - 64, 64);
	rete_buf_free(&good);
	rete_arena_free(&a);
	rete_seckey_free(&sk);
}

/* Decoded into an arena, a message is the message decoded with malloc:
 * it packs back to the same bytes; many of them fill several blocks. */
static void test_arena_decodes_alike(void **state)
{
	(void)state;
	rete_arena a = {0};
	rete_seckey *sk = NULL;
	rete_msg m = {{0}};
	Rete__Message full;
	Rete__Referral ref;
	Rete__Operator op;
	uint8_t hash[32] = {9};
	rete_buf signed_ = {0}, packed = {0};
	Rete__SignedMessage *sm[400];
	Rete__Message *msg[400];

	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);
	sample_message(&full, &ref, &op, hash);
	assert_int_equal(rete_message_sign(&full, sk, &signed_, &m), RETE_OK);
	assert_int_equal(rete_message_pack(&full, &packed), RETE_OK);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < 400; i++)
			assert_int_equal(rete_signed_decode_in(signed_.data, signed_.len, &a,
							       &sm[i], &msg[i], &m),
					 RETE_OK);
		assert_true(rete_arena_size(&a) > RETE_ARENA_BLOCK);
		for (size_t i = 0; i < 400; i++) {
			rete_buf again = {0};
			assert_int_equal(rete_message_pack(msg[i], &again), RETE_OK);
			assert_int_equal(again.len, packed.len);
			assert_memory_equal(again.data, packed.data, packed.len);
			rete_buf_free(&again);
			assert_int_equal(rete_signed_verify(sm[i], &sk->pub, &m), RETE_OK);
		}
		rete_arena_reset(&a);
	}
	rete_buf_free(&signed_);
	rete_buf_free(&packed);
	rete_arena_free(&a);
	rete_seckey_free(&sk);
}

/* ---- the common frames without copies ---------------------------------- */

/* frame_agree decodes bytes as a ClientFrame with rete_client_frame_decode
 * in an arena and with rete_pb_strict_unpack: the same verdict, the same
 * sentence, the same values (packed back); returns the verdict. */
static rete_err frame_agree(const uint8_t *bytes, size_t len, rete_arena *a, const char *what)
{
	Rete__ClientFrame *cf = (Rete__ClientFrame *)1;
	ProtobufCMessage *pm = NULL;
	rete_msg ma = {{0}}, mm = {{0}};
	rete_arena_mark before = rete_arena_mark_get(a);
	rete_err ea = rete_client_frame_decode(bytes, len, a, &cf, &ma);
	rete_err em = rete_pb_strict_unpack(&rete__client_frame__descriptor, bytes, len, &pm, &mm);
	if (ea != em || (ea != RETE_OK && strcmp(ma.text, mm.text) != 0))
		fail_msg("%s: arena %d \"%s\", malloc %d \"%s\"", what, ea, ma.text, em, mm.text);
	if (ea != RETE_OK) {
		rete_arena_mark after = rete_arena_mark_get(a);
		assert_null(cf);
		assert_ptr_equal(after.blk, before.blk);
		assert_int_equal(after.used, before.used);
		return ea;
	}
	rete_buf x = {0}, y = {0};
	assert_int_equal(rete_message_pack((const Rete__Message *)(void *)cf, &x), RETE_OK);
	assert_int_equal(rete_message_pack((const Rete__Message *)(void *)pm, &y), RETE_OK);
	if (x.len != len || y.len != len || memcmp(x.data, bytes, len) != 0 ||
	    memcmp(y.data, bytes, len) != 0)
		fail_msg("%s: decoded values differ", what);
	rete_buf_free(&x);
	rete_buf_free(&y);
	protobuf_c_message_free_unpacked(pm, NULL);
	return ea;
}

/* signed_agree: the same for rete_signed_decode_in and rete_signed_decode. */
static rete_err signed_agree(const uint8_t *bytes, size_t len, rete_arena *a, const char *what)
{
	Rete__SignedMessage *sa = (Rete__SignedMessage *)1, *sm = NULL;
	Rete__Message *ma_ = (Rete__Message *)1, *mm_ = NULL;
	rete_msg ma = {{0}}, mm = {{0}};
	rete_err ea = rete_signed_decode_in(bytes, len, a, &sa, &ma_, &ma);
	rete_err em = rete_signed_decode(bytes, len, &sm, &mm_, &mm);
	if (ea != em || (ea != RETE_OK && strcmp(ma.text, mm.text) != 0))
		fail_msg("%s: arena %d \"%s\", malloc %d \"%s\"", what, ea, ma.text, em, mm.text);
	if (ea != RETE_OK) {
		assert_null(sa);
		assert_null(ma_);
		return ea;
	}
	assert_int_equal(sa->message.len, sm->message.len);
	assert_memory_equal(sa->message.data, sm->message.data, sm->message.len);
	assert_int_equal(sa->signature.len, sm->signature.len);
	assert_memory_equal(sa->signature.data, sm->signature.data, sm->signature.len);
	rete_buf x = {0}, y = {0};
	assert_int_equal(rete_message_pack(ma_, &x), RETE_OK);
	assert_int_equal(rete_message_pack(mm_, &y), RETE_OK);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.data, y.data, x.len);
	rete_buf_free(&x);
	rete_buf_free(&y);
	rete__signed_message__free_unpacked(sm, NULL);
	rete__message__free_unpacked(mm_, NULL);
	return ea;
}

/* submit_frame packs ClientFrame{version, submit{sm, sealed}} into out. */
static size_t submit_frame(uint8_t *out, uint32_t version, const uint8_t *sm, size_t smlen,
			   const uint8_t *sealed, size_t sealed_len)
{
	Rete__ClientFrame f = RETE__CLIENT_FRAME__INIT;
	Rete__Submit sub = RETE__SUBMIT__INIT;
	sub.signed_message.data = (uint8_t *)sm;
	sub.signed_message.len = smlen;
	sub.sealed.data = (uint8_t *)sealed;
	sub.sealed.len = sealed_len;
	f.version = version;
	f.command_case = RETE__CLIENT_FRAME__COMMAND_SUBMIT;
	f.submit = &sub;
	return rete__client_frame__pack(&f, out);
}

/* A canonical SUBMIT frame and its SignedMessage are decoded without
 * copies, and every variant of them (each byte cut short, each bit
 * flipped, fields added, doubled or left empty) is accepted or refused
 * exactly as the general strict decoder does, with the same sentence. */
static void test_submit_without_copies(void **state)
{
	(void)state;
	rete_arena a = {0};
	rete_seckey *sk = NULL;
	rete_msg m = {{0}};
	Rete__Message msg;
	Rete__Referral ref;
	Rete__Operator op;
	uint8_t hash[32] = {5}, sealed[200];
	rete_buf sm = {0};
	static uint8_t frame[4096], v[4096];

	assert_int_equal(rete_seckey_generate(&sk, NULL), RETE_OK);
	sample_message(&msg, &ref, &op, hash);
	assert_int_equal(rete_message_sign(&msg, sk, &sm, &m), RETE_OK);
	for (size_t i = 0; i < sizeof(sealed); i++)
		sealed[i] = (uint8_t)(i * 7 + 1);
	size_t len = submit_frame(frame, RETE_PROTOCOL_VERSION, sm.data, sm.len, sealed, 145);

	/* not copied: the bytes fields point into the frame */
	Rete__ClientFrame *cf = NULL;
	assert_int_equal(rete_client_frame_decode(frame, len, &a, &cf, &m), RETE_OK);
	assert_int_equal(cf->version, RETE_PROTOCOL_VERSION);
	assert_int_equal(cf->command_case, RETE__CLIENT_FRAME__COMMAND_SUBMIT);
	assert_true(cf->submit->signed_message.data > frame &&
		    cf->submit->signed_message.data < frame + len);
	assert_true(cf->submit->sealed.data > frame && cf->submit->sealed.data < frame + len);
	assert_int_equal(cf->submit->sealed.len, 145);
	Rete__SignedMessage *s = NULL;
	Rete__Message *back = NULL;
	assert_int_equal(rete_signed_decode_in(cf->submit->signed_message.data,
					       cf->submit->signed_message.len, &a, &s, &back, &m),
			 RETE_OK);
	assert_true(s->message.data > frame && s->message.data < frame + len);
	assert_int_equal(rete_signed_verify(s, &sk->pub, &m), RETE_OK);
	assert_string_equal(back->id, "m-0001");
	/* with malloc (no arena) the general path copies, as before */
	assert_int_equal(rete_client_frame_decode(frame, len, NULL, &cf, &m), RETE_OK);
	assert_true(cf->submit->signed_message.data < frame ||
		    cf->submit->signed_message.data >= frame + len);
	rete__client_frame__free_unpacked(cf, NULL);

	/* variants that take the general path or are refused by it */
	assert_int_equal(frame_agree(frame, len, &a, "canonical"), RETE_OK);
	size_t n = submit_frame(v, RETE_PROTOCOL_VERSION, sm.data, sm.len, NULL, 0);
	assert_int_equal(frame_agree(v, n, &a, "no sealed part"), RETE_OK);
	n = submit_frame(v, 0, sm.data, sm.len, sealed, 10);
	assert_int_equal(frame_agree(v, n, &a, "no version"), RETE_OK);
	n = submit_frame(v, 300, sm.data, sm.len, sealed, 10);
	assert_int_equal(frame_agree(v, n, &a, "version of two bytes"), RETE_OK);
	n = submit_frame(v, RETE_PROTOCOL_VERSION, NULL, 0, NULL, 0);
	assert_int_equal(frame_agree(v, n, &a, "an empty submit"), RETE_OK);
	n = submit_frame(v, RETE_PROTOCOL_VERSION, NULL, 0, sealed, 3);
	assert_int_equal(frame_agree(v, n, &a, "only a sealed part"), RETE_OK);
	{
		static const uint8_t cases[][12] = {
		    {0x08, 0x03, 0x5a, 0x05, 0x0a, 0x01, 'x', 0x12, 0x00}, /* empty sealed */
		    {0x08, 0x03, 0x5a, 0x02, 0x0a, 0x00},		   /* empty sm */
		    {0x08, 0x83, 0x00, 0x5a, 0x03, 0x0a, 0x01, 'x'},	   /* overlong version */
		    {0x08, 0x00, 0x5a, 0x03, 0x0a, 0x01, 'x'},		   /* version 0 */
		    {0x08, 0x03, 0x5a, 0x83, 0x00, 0x0a, 0x01, 'x'},	   /* overlong length */
		    {0x08, 0x03, 0x5a, 0x04, 0x0a, 0x81, 0x00, 'x'},	   /* overlong length */
		    {0x08, 0x03, 0x5a, 0x03, 0x0a, 0x01, 'x', 0x08, 0x03}, /* version again */
		    {0x08, 0x03, 0x5a, 0x03, 0x0a, 0x01, 'x', 0x18, 0x01}, /* unknown field 3 */
		    {0x08, 0x03, 0x5a, 0x05, 0x0a, 0x01, 'x', 0x18, 0x01}, /* unknown inside */
		    {0x08, 0x03, 0x5a, 0x05, 0x12, 0x01, 'y', 0x0a, 0x01, 'x'}, /* out of order */
		    {0x5a, 0x03, 0x0a, 0x01, 'x', 0x08, 0x03},			/* version last */
		    {0x08, 0x03, 0x5a, 0x03, 0x0a, 0x01, 'x', 0x5a, 0x00},	/* submit twice */
		};
		static const size_t lens[] = {9, 6, 8, 7, 8, 8, 9, 9, 9, 10, 7, 9};
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			char what[32];
			snprintf(what, sizeof(what), "hand-made case %zu", i);
			assert_int_equal(frame_agree(cases[i], lens[i], &a, what), RETE_EDECODE);
		}
	}
	/* every length cut short, every bit flipped, a byte added */
	for (size_t k = 0; k < len; k++)
		(void)frame_agree(frame, k, &a, "cut short");
	memcpy(v, frame, len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		char what[48];
		snprintf(what, sizeof(what), "bit %zu flipped", bit);
		v[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		(void)frame_agree(v, len, &a, what);
		v[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	v[len] = 0x00;
	assert_int_equal(frame_agree(v, len + 1, &a, "a byte added"), RETE_EDECODE);
	rete_arena_reset(&a);

	/* the SignedMessage the same way */
	assert_int_equal(signed_agree(sm.data, sm.len, &a, "canonical"), RETE_OK);
	for (size_t k = 0; k < sm.len; k++)
		(void)signed_agree(sm.data, k, &a, "cut short");
	memcpy(v, sm.data, sm.len);
	for (size_t bit = 0; bit < sm.len * 8; bit++) {
		char what[48];
		snprintf(what, sizeof(what), "bit %zu flipped", bit);
		v[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		(void)signed_agree(v, sm.len, &a, what);
		v[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (bit % 512 == 0)
			rete_arena_reset(&a);
	}
	v[sm.len] = 0x18;
	v[sm.len + 1] = 0x01;
	assert_int_equal(signed_agree(v, sm.len + 2, &a, "a field added"), RETE_EDECODE);
	rete_buf_free(&sm);
	rete_arena_free(&a);
	rete_seckey_free(&sk);
}

/* ---- random frames built from the schema -------------------------------- */

static uint64_t gen_state = 0x9E3779B97F4A7C15ull;

static uint32_t gen_rnd(void)
{
	gen_state ^= gen_state << 13;
	gen_state ^= gen_state >> 7;
	gen_state ^= gen_state << 17;
	return (uint32_t)gen_state;
}

static size_t gen_varint(uint8_t *o, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		o[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	o[n++] = (uint8_t)v;
	return n;
}

/* gen_fields writes up to cap bytes of fields of d, valid on the wire but
 * often not canonical: any field in any order, repeated or not, every wire
 * type a field can take (packed scalars too), edge values (zero, 2^31,
 * 2^32, 2^63, negative numbers as 10 bytes), overlong tags and varints,
 * unknown fields, strings with NULs, bad or cut UTF-8, nested messages. */
static size_t gen_fields(const ProtobufCMessageDescriptor *d, uint8_t *o, size_t cap, int depth)
{
	static const uint64_t edge[] = {0,
					1,
					2,
					127,
					128,
					0x7fffffffu,
					0x80000000u,
					0xffffffffu,
					0x100000000ull,
					0x7fffffffffffffffull,
					0x8000000000000000ull,
					0xffffffffffffffffull};
	size_t n = 0, nf = d->n_fields > 0 ? gen_rnd() % 6 : 0;

	for (size_t k = 0; k < nf && n + 80 < cap; k++) {
		const ProtobufCFieldDescriptor *f = &d->fields[gen_rnd() % d->n_fields];
		unsigned id = f->id, wt;
		if (gen_rnd() % 20 == 0) { /* a number the schema may not know */
			id = 1 + gen_rnd() % 40;
			f = NULL;
			for (unsigned j = 0; j < d->n_fields; j++)
				if (d->fields[j].id == id)
					f = &d->fields[j];
		}
		if (f == NULL)
			wt = gen_rnd() % 2 ? 0 : 2;
		else if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES ||
			 f->type == PROTOBUF_C_TYPE_MESSAGE)
			wt = 2;
		else
			wt = gen_rnd() % 8 == 0 ? 2 : 0;
		uint64_t tag = (uint64_t)id << 3 | wt;
		if (gen_rnd() % 30 == 0 && tag < 0x80) { /* an overlong tag */
			o[n++] = (uint8_t)(tag | 0x80);
			o[n++] = 0;
		} else {
			n += gen_varint(o + n, tag);
		}
		if (wt == 0) {
			uint64_t v = gen_rnd() % 3 == 0 ? edge[gen_rnd() % 12] : gen_rnd() % 300;
			size_t l = gen_varint(o + n, v);
			if (gen_rnd() % 25 == 0 && l < 10) { /* overlong */
				o[n + l - 1] |= 0x80;
				o[n + l++] = 0;
			}
			n += l;
			continue;
		}
		uint8_t sub[600];
		size_t sl = 0;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 4 && gen_rnd() % 4) {
			sl = gen_fields(f->descriptor, sub, sizeof(sub), depth + 1);
		} else if (f != NULL && f->type != PROTOBUF_C_TYPE_STRING &&
			   f->type != PROTOBUF_C_TYPE_BYTES && f->type != PROTOBUF_C_TYPE_MESSAGE) {
			for (unsigned q = gen_rnd() % 4; q > 0; q--) /* packed */
				sl += gen_varint(sub + sl, edge[gen_rnd() % 12]);
		} else {
			sl = gen_rnd() % (gen_rnd() % 5 == 0 ? 300 : 8);
			for (size_t q = 0; q < sl; q++) {
				unsigned r = gen_rnd() % 10;
				sub[q] = r < 6	 ? (uint8_t)('a' + gen_rnd() % 26)
					 : r < 8 ? (uint8_t)gen_rnd()
					 : r < 9 ? 0
						 : 0xc3;
			}
		}
		if (n + sl + 8 > cap)
			break;
		n += gen_varint(o + n, sl);
		memcpy(o + n, sub, sl);
		n += sl;
	}
	return n;
}

/* gen_signed wraps Message fields into a SignedMessage (a 64-byte
 * signature mostly, the shape read without copies) and, for a ClientFrame,
 * that into a SUBMIT; the wrappers themselves sometimes out of shape. */
static size_t gen_signed(uint8_t *o, bool frame)
{
	uint8_t msg[4096], sm[4300], sub[4500];
	size_t ml = gen_fields(&rete__message__descriptor, msg, sizeof(msg), 0), sn = 0, su = 0,
	       n = 0;

	if (gen_rnd() % 10 != 0) {
		sm[sn++] = 0x0a;
		sn += gen_varint(sm + sn, ml);
		memcpy(sm + sn, msg, ml);
		sn += ml;
	}
	if (gen_rnd() % 10 != 0) {
		size_t sl = gen_rnd() % 6 != 0 ? 64 : gen_rnd() % 70;
		sm[sn++] = 0x12;
		sn += gen_varint(sm + sn, sl);
		for (size_t q = 0; q < sl; q++)
			sm[sn++] = (uint8_t)gen_rnd();
	}
	if (gen_rnd() % 20 == 0) { /* an empty field after */
		sm[sn++] = 0x12;
		sm[sn++] = 0;
	}
	if (!frame) {
		memcpy(o, sm, sn);
		n = sn;
	} else {
		if (gen_rnd() % 10 != 0) {
			sub[su++] = 0x0a;
			su += gen_varint(sub + su, sn);
			memcpy(sub + su, sm, sn);
			su += sn;
		}
		if (gen_rnd() % 2) {
			size_t sl = gen_rnd() % 3 ? 1 + gen_rnd() % 150 : 0;
			sub[su++] = 0x12;
			su += gen_varint(sub + su, sl);
			for (size_t q = 0; q < sl; q++)
				sub[su++] = (uint8_t)gen_rnd();
		}
		if (gen_rnd() % 5 != 0) {
			o[n++] = 0x08;
			n += gen_varint(o + n, gen_rnd() % 4 ? 3 : gen_rnd() % 300);
		}
		o[n++] = 0x5a;
		n += gen_varint(o + n, su);
		memcpy(o + n, sub, su);
		n += su;
	}
	if (gen_rnd() % 10 == 0 && n > 0)
		o[gen_rnd() % n] ^= (uint8_t)(1u << (gen_rnd() % 8));
	if (gen_rnd() % 20 == 0 && n > 0)
		n -= gen_rnd() % n;
	return n;
}

/* Frames built at random from the schema (300,000 of them, a fifth
 * accepted): whatever the strict decoder accepts packs back to the very
 * bytes (canon_wire accepts nothing protobuf-c would pack otherwise), and
 * decoded into an arena, or by the broker's decoders of a SUBMIT and its
 * SignedMessage without copies, the verdicts and sentences are the same. */
static void test_schema_random(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *ds[] = {
	    &rete__message__descriptor,	       &rete__client_frame__descriptor,
	    &rete__signed_message__descriptor, &rete__log_entry__descriptor,
	    &rete__broker_frame__descriptor,   &rete__referral_info__descriptor};
	static uint8_t buf[9000];
	rete_arena a = {0};
	size_t accepted = 0, total = 300000;

	for (size_t it = 0; it < total; it++) {
		const ProtobufCMessageDescriptor *d = ds[it % 6];
		size_t n;
		if (d == &rete__signed_message__descriptor && gen_rnd() % 2)
			n = gen_signed(buf, false);
		else if (d == &rete__client_frame__descriptor && gen_rnd() % 2)
			n = gen_signed(buf, true);
		else
			n = gen_fields(d, buf, sizeof(buf), 0);
		ProtobufCMessage *pm = NULL, *pa = NULL;
		rete_msg m = {{0}}, ma = {{0}};
		rete_err e = rete_pb_strict_unpack(d, buf, n, &pm, &m);
		rete_err ea = rete_pb_strict_unpack_in(d, buf, n, &a, &pa, &ma);
		if (e != ea || strcmp(m.text, ma.text) != 0)
			fail_msg("%s, case %zu: malloc %d \"%s\", arena %d \"%s\"", d->short_name,
				 it, e, m.text, ea, ma.text);
		if (e == RETE_OK) {
			rete_buf again = {0};
			accepted++;
			assert_int_equal(
			    rete_message_pack((const Rete__Message *)(void *)pm, &again), RETE_OK);
			if (again.len != n || (n > 0 && memcmp(again.data, buf, n) != 0))
				fail_msg("%s, case %zu: accepted, but packs to other bytes",
					 d->short_name, it);
			rete_buf_free(&again);
			protobuf_c_message_free_unpacked(pm, NULL);
		}
		if (d == &rete__client_frame__descriptor)
			(void)frame_agree(buf, n, &a, "a random frame");
		else if (d == &rete__signed_message__descriptor)
			(void)signed_agree(buf, n, &a, "a random signed message");
		if (it % 64 == 0)
			rete_arena_reset(&a);
	}
	assert_true(accepted > total / 10);
	rete_arena_free(&a);
}

static void test_kind_names(void **state)
{
	(void)state;
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__ReferralUpdate up = RETE__REFERRAL_UPDATE__INIT;
	Rete__CaseNote note = RETE__CASE_NOTE__INIT;
	Rete__Notice notice = RETE__NOTICE__INIT;
	Rete__Delivery del = RETE__DELIVERY__INIT;
	uint8_t h[32] = {9};

	assert_string_equal(rete_message_kind(&msg), "none");
	msg.body_case = RETE__MESSAGE__BODY_UPDATE;
	msg.update = &up;
	up.private_sha256.data = h;
	up.private_sha256.len = 32;
	assert_string_equal(rete_message_kind(&msg), "update");
	assert_ptr_equal(rete_message_private_hash(&msg).data, h);
	msg.body_case = RETE__MESSAGE__BODY_NOTE;
	msg.note = &note;
	assert_string_equal(rete_message_kind(&msg), "note");
	assert_int_equal(rete_message_private_hash(&msg).len, 0);
	msg.body_case = RETE__MESSAGE__BODY_NOTICE;
	msg.notice = &notice;
	assert_string_equal(rete_message_kind(&msg), "notice");
	assert_int_equal(rete_message_private_hash(&msg).len, 0);
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &del;
	assert_string_equal(rete_message_kind(&msg), "delivery");
}

/* Every body that concerns a referral names it; the others give "". */
static void test_referral_id(void **state)
{
	(void)state;
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Referral ref = RETE__REFERRAL__INIT;
	Rete__ReferralUpdate up = RETE__REFERRAL_UPDATE__INIT;
	Rete__CaseNote note = RETE__CASE_NOTE__INIT;
	Rete__Notice notice = RETE__NOTICE__INIT;
	Rete__Delivery del = RETE__DELIVERY__INIT;
	Rete__Directory dir = RETE__DIRECTORY__INIT;

	msg.id = "m-1";
	assert_string_equal(rete_message_referral_id(&msg), "");
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	assert_string_equal(rete_message_referral_id(&msg), ""); /* body left NULL */
	msg.referral = &ref;
	assert_string_equal(rete_message_referral_id(&msg), "m-1");
	msg.body_case = RETE__MESSAGE__BODY_UPDATE;
	msg.update = &up;
	up.referral_id = "r-up";
	assert_string_equal(rete_message_referral_id(&msg), "r-up");
	msg.body_case = RETE__MESSAGE__BODY_NOTE;
	msg.note = &note;
	note.referral_id = "r-note";
	assert_string_equal(rete_message_referral_id(&msg), "r-note");
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &del;
	del.referral_id = "r-del";
	assert_string_equal(rete_message_referral_id(&msg), "r-del");
	msg.body_case = RETE__MESSAGE__BODY_NOTICE;
	msg.notice = &notice;
	notice.referral_id = "r-notice";
	assert_string_equal(rete_message_referral_id(&msg), "r-notice");
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &dir;
	assert_string_equal(rete_message_referral_id(&msg), "");
}

/* ---- v3: signed acknowledgements and refusals --------------------------- */

/* An ACK signed with the recipient's key verifies with that key and gives
 * back the same body; with another key, another context (a refusal's or a
 * message's), a flipped bit of body or signature, a cut signature or none
 * at all it is refused with a sentence saying so. */
static void test_ack_sign_verify(void **state)
{
	(void)state;
	rete_seckey *rk =
	    key_from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
	rete_seckey *other =
	    key_from_hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
	uint8_t leaf[32];
	rete_msg m;
	memset(leaf, 0xab, sizeof(leaf));
	Rete__AckBody body = RETE__ACK_BODY__INIT;
	body.origin = "rete.example/test";
	body.recipient = "jobcentre";
	body.index = 42;
	body.leaf_hash.data = leaf;
	body.leaf_hash.len = sizeof(leaf);
	body.acked_at = 1700000000123;
	body.error = RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN;
	body.error_text = "the sealed part does not open";

	Rete__SignedAck sa;
	assert_int_equal(rete_ack_sign(&body, rk, &sa, &m), RETE_OK);
	assert_int_equal(sa.signature.len, RETE_SIG_LEN);
	/* the signature is plain Ed25519 over the context and the body */
	assert_int_equal(
	    rete_verify_bytes(sa.signature.data, RETE_CTX_ACK, sa.body.data, sa.body.len, &rk->pub),
	    RETE_OK);
	assert_int_equal(rete_verify_bytes(sa.signature.data, RETE_CTX_REFUSAL, sa.body.data,
					   sa.body.len, &rk->pub),
			 RETE_EBADSIG);

	Rete__AckBody *got = NULL;
	assert_int_equal(rete_ack_verify(&sa, &rk->pub, &got, &m), RETE_OK);
	assert_non_null(got);
	assert_string_equal(got->origin, "rete.example/test");
	assert_string_equal(got->recipient, "jobcentre");
	assert_int_equal(got->index, 42);
	assert_int_equal(got->leaf_hash.len, 32);
	assert_memory_equal(got->leaf_hash.data, leaf, 32);
	assert_int_equal(got->acked_at, 1700000000123);
	assert_int_equal(got->error, RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN);
	assert_string_equal(got->error_text, "the sealed part does not open");
	rete__ack_body__free_unpacked(got, NULL);
	assert_int_equal(rete_ack_verify(&sa, &rk->pub, NULL, &m), RETE_OK);

	/* another key */
	assert_int_equal(rete_ack_verify(&sa, &other->pub, &got, &m), RETE_EBADSIG);
	assert_null(got);
	assert_non_null(strstr(m.text, "does not verify"));

	/* every bit of the body and of the signature */
	for (size_t i = 0; i < sa.body.len * 8; i++) {
		sa.body.data[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(rete_ack_verify(&sa, &rk->pub, NULL, NULL), RETE_OK);
		sa.body.data[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	for (size_t i = 0; i < RETE_SIG_LEN * 8; i++) {
		sa.signature.data[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(rete_ack_verify(&sa, &rk->pub, NULL, NULL), RETE_EBADSIG);
		sa.signature.data[i / 8] ^= (uint8_t)(1u << (i % 8));
	}

	/* a cut signature, none, no SignedAck at all */
	sa.signature.len = 63;
	assert_int_equal(rete_ack_verify(&sa, &rk->pub, NULL, &m), RETE_EBADSIG);
	assert_non_null(strstr(m.text, "63 bytes"));
	sa.signature.len = 0;
	assert_int_equal(rete_ack_verify(&sa, &rk->pub, NULL, &m), RETE_EBADSIG);
	assert_non_null(strstr(m.text, "no signature"));
	sa.signature.len = RETE_SIG_LEN;
	assert_int_equal(rete_ack_verify(NULL, &rk->pub, &got, &m), RETE_EBADSIG);
	assert_null(got);
	assert_non_null(strstr(m.text, "not signed"));

	/* a body signed but not an AckBody (strict decoding) */
	uint8_t junk[] = {0x08, 0x01, 0xf8, 0x07, 0x01}; /* field 127: unknown */
	Rete__SignedAck bad = RETE__SIGNED_ACK__INIT;
	uint8_t sig[RETE_SIG_LEN];
	assert_int_equal(rete_sign_bytes(sig, RETE_CTX_ACK, junk, sizeof(junk), rk), RETE_OK);
	bad.body.data = junk;
	bad.body.len = sizeof(junk);
	bad.signature.data = sig;
	bad.signature.len = RETE_SIG_LEN;
	assert_int_equal(rete_ack_verify(&bad, &rk->pub, &got, &m), RETE_EDECODE);
	assert_null(got);
	assert_non_null(strstr(m.text, "acknowledgement"));

	rete_signed_ack_clear(&sa);
	assert_null(sa.body.data);
	assert_null(sa.signature.data);
	rete_signed_ack_clear(&sa); /* twice is fine */
	rete_seckey_free(&rk);
	rete_seckey_free(&other);
}

/* A refusal signed with the broker's key verifies with it and gives back
 * the body; an ACK's signature (another context) or another key does not. */
static void test_refusal_sign_verify(void **state)
{
	(void)state;
	rete_seckey *bk =
	    key_from_hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
	rete_seckey *other =
	    key_from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
	uint8_t h[32];
	rete_msg m;
	rete_sha256(h, "signed message bytes", 20);
	Rete__RefusalBody body = RETE__REFUSAL_BODY__INIT;
	body.origin = "rete.example/test";
	body.party = "social";
	body.message_id = "ref-1";
	body.message_sha256.data = h;
	body.message_sha256.len = sizeof(h);
	body.error = RETE__ERROR_CODE__ERROR_CODE_INVALID;
	body.error_text = "field referral.service is empty";
	body.field = "referral.service";
	body.refused_at = 1700000000999;

	Rete__SignedRefusal sr;
	assert_int_equal(rete_refusal_sign(&body, bk, &sr, &m), RETE_OK);
	Rete__RefusalBody *got = NULL;
	assert_int_equal(rete_refusal_verify(&sr, &bk->pub, &got, &m), RETE_OK);
	assert_string_equal(got->party, "social");
	assert_string_equal(got->message_id, "ref-1");
	assert_memory_equal(got->message_sha256.data, h, 32);
	assert_int_equal(got->error, RETE__ERROR_CODE__ERROR_CODE_INVALID);
	assert_string_equal(got->field, "referral.service");
	assert_int_equal(got->refused_at, 1700000000999);
	rete__refusal_body__free_unpacked(got, NULL);

	assert_int_equal(rete_refusal_verify(&sr, &other->pub, &got, &m), RETE_EBADSIG);
	assert_null(got);
	assert_non_null(strstr(m.text, "broker"));
	assert_int_equal(rete_refusal_verify(NULL, &bk->pub, NULL, &m), RETE_EBADSIG);
	assert_non_null(strstr(m.text, "not signed"));

	/* the same bytes signed as an ACK do not pass for a refusal */
	uint8_t sig[RETE_SIG_LEN];
	assert_int_equal(rete_sign_bytes(sig, RETE_CTX_ACK, sr.body.data, sr.body.len, bk),
			 RETE_OK);
	memcpy(sr.signature.data, sig, RETE_SIG_LEN);
	assert_int_equal(rete_refusal_verify(&sr, &bk->pub, NULL, &m), RETE_EBADSIG);

	rete_signed_refusal_clear(&sr);
	rete_seckey_free(&bk);
	rete_seckey_free(&other);
}

/* ---- the receipt and the event packed by hand --------------------------- */

/* hp_num: a number for a field: often 0 (not written), else an edge of
 * the varint sizes or any 64 bits */
static uint64_t hp_num(void)
{
	static const uint64_t edge[] = {0, 1, 127, 128, 16383, 16384, 0x7fffffffull,
					0x80000000ull, 0xffffffffull, 1ull << 63, UINT64_MAX};
	switch (gen_rnd() % 4) {
	case 0:
		return 0;
	case 1:
		return edge[gen_rnd() % (sizeof(edge) / sizeof(edge[0]))];
	case 2:
		return gen_rnd() % 300;
	default:
		return ((uint64_t)gen_rnd() << 32) | gen_rnd();
	}
}

/* hp_enum: an enum's value, negative ones too (ten bytes on the wire) */
static int hp_enum(void)
{
	static const int v[] = {0, 0, 1, 2, 3, 7, 127, 128, 300, -1, INT32_MIN, INT32_MAX};
	return v[gen_rnd() % (sizeof(v) / sizeof(v[0]))];
}

/* hp_str: NULL, "" or a string of 1..max bytes (max <= 299) in buf */
static char *hp_str(char *buf, size_t max)
{
	switch (gen_rnd() % 5) {
	case 0:
		return NULL;
	case 1:
		return buf + max; /* "" */
	default: {
		size_t n = 1 + gen_rnd() % max;
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)('a' + gen_rnd() % 26);
		buf[n] = '\0';
		return buf;
	}
	}
}

/* packed_alike: the bytes written by hand are protobuf-c's */
static void packed_alike(const uint8_t *got, size_t gn, const uint8_t *want, size_t wn, int round)
{
	if (gn != wn || memcmp(got, want, wn) != 0)
		fail_msg("round %d: by hand %zu bytes, protobuf-c %zu (or other bytes)", round, gn,
			 wn);
}

/* Every field of a Receipt set or unset, at random, in a receipt and in a
 * refusal frame: rete_broker_frame_pack_receipt writes what protobuf-c
 * does, byte for byte; a frame of another shape, a signed one or one too
 * big for the room is left to protobuf-c (0). */
static void test_receipt_packed_by_hand(void **state)
{
	(void)state;
	static char sbuf[4][300];
	static uint8_t hashes[40][40];
	uint8_t want[8192], got[8192];
	for (int round = 0; round < 20000; round++) {
		Rete__Receipt r;
		rete__receipt__init(&r);
		char *str[4];
		for (int k = 0; k < 4; k++) {
			memset(sbuf[k], 0, sizeof(sbuf[k]));
			str[k] = hp_str(sbuf[k], round % 3 ? 64 : 299);
		}
		r.message_id = str[0];
		r.error = (Rete__ErrorCode)hp_enum();
		r.error_text = str[1];
		r.field = str[2];
		r.index = hp_num();
		r.logged_at = (int64_t)hp_num();
		r.checkpoint = str[3];
		ProtobufCBinaryData proof[40];
		r.n_proof = gen_rnd() % 3 ? gen_rnd() % 40 : 0;
		for (size_t i = 0; i < r.n_proof; i++) {
			proof[i].len = gen_rnd() % 5 ? 32 : gen_rnd() % 40; /* empty too */
			for (size_t j = 0; j < proof[i].len; j++)
				hashes[i][j] = (uint8_t)gen_rnd();
			proof[i].data = hashes[i];
		}
		r.proof = r.n_proof ? proof : NULL;
		Rete__BrokerFrame bf;
		rete__broker_frame__init(&bf);
		bf.version = round % 7 ? RETE_PROTOCOL_VERSION : (uint32_t)hp_num();
		if (round % 2) {
			bf.command_case = RETE__BROKER_FRAME__COMMAND_RECEIPT;
			bf.receipt = &r;
		} else {
			bf.command_case = RETE__BROKER_FRAME__COMMAND_REFUSAL;
			bf.refusal = &r;
		}
		size_t wn = rete__broker_frame__get_packed_size(&bf);
		assert_true(wn <= sizeof(want));
		assert_int_equal(rete__broker_frame__pack(&bf, want), wn);
		size_t gn = rete_broker_frame_pack_receipt(&bf, got, sizeof(got));
		packed_alike(got, gn, want, wn, round);
		/* exactly the room it needs, and one byte less */
		assert_int_equal(rete_broker_frame_pack_receipt(&bf, got, wn), wn);
		assert_int_equal(rete_broker_frame_pack_receipt(&bf, got, wn - 1), 0);
	}
	/* what it leaves to protobuf-c */
	Rete__Receipt r;
	rete__receipt__init(&r);
	Rete__SignedRefusal sr;
	rete__signed_refusal__init(&sr);
	r.signed_refusal = &sr;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_REFUSAL;
	bf.refusal = &r;
	assert_int_equal(rete_broker_frame_pack_receipt(&bf, got, sizeof(got)), 0);
	Rete__Pong pong;
	rete__pong__init(&pong);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_PONG;
	bf.pong = &pong;
	assert_int_equal(rete_broker_frame_pack_receipt(&bf, got, sizeof(got)), 0);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_RECEIPT;
	bf.receipt = NULL;
	assert_int_equal(rete_broker_frame_pack_receipt(&bf, got, sizeof(got)), 0);
}

/* Every field of an Event set or unset, at random: rete_event_pack_fast
 * writes what protobuf-c does, byte for byte, and 0 when short of room. */
static void test_event_packed_by_hand(void **state)
{
	(void)state;
	static char sbuf[9][300];
	uint8_t want[4096], got[4096];
	for (int round = 0; round < 20000; round++) {
		char *s[9];
		for (int k = 0; k < 9; k++) {
			memset(sbuf[k], 0, sizeof(sbuf[k]));
			s[k] = hp_str(sbuf[k], round % 3 ? 64 : 299);
		}
		Rete__Event ev;
		rete__event__init(&ev);
		ev.index = hp_num();
		ev.logged_at = (int64_t)hp_num();
		ev.kind = s[0];
		ev.sender = s[1];
		ev.recipient = s[2];
		ev.case_id = s[3];
		ev.referral_id = s[4];
		ev.status = (Rete__Status)hp_enum();
		ev.service = s[5];
		ev.priority = (Rete__Priority)hp_enum();
		ev.age_band = (Rete__AgeBand)hp_enum();
		ev.notice = (Rete__NoticeKind)hp_enum();
		ev.business_status = s[6];
		ev.checkpoint = s[7];
		ev.message_id = s[8];
		size_t wn = rete__event__get_packed_size(&ev);
		assert_true(wn <= sizeof(want));
		assert_int_equal(rete__event__pack(&ev, want), wn);
		size_t gn = rete_event_pack_fast(&ev, got, sizeof(got));
		packed_alike(got, gn, want, wn, round);
		assert_int_equal(rete_event_pack_fast(&ev, got, wn), wn);
		if (wn)
			assert_int_equal(rete_event_pack_fast(&ev, got, wn - 1), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256_known),
	    cmocka_unit_test(test_rfc8032_vectors),
	    cmocka_unit_test(test_contexts_differ),
	    cmocka_unit_test(test_sign_decode_verify),
	    cmocka_unit_test(test_every_bit_flip),
	    cmocka_unit_test(test_seal_open),
	    cmocka_unit_test(test_open_not_strict),
	    cmocka_unit_test(test_strict_refusals),
	    cmocka_unit_test(test_strict_accepts),
	    cmocka_unit_test(test_strict_generic),
	    cmocka_unit_test(test_signed_strict),
	    cmocka_unit_test(test_kind_names),
	    cmocka_unit_test(test_referral_id),
	    cmocka_unit_test(test_ack_sign_verify),
	    cmocka_unit_test(test_refusal_sign_verify),
	    cmocka_unit_test(test_arena_alignment),
	    cmocka_unit_test(test_verify_bytes_in_arena),
	    cmocka_unit_test(test_log_entry_decode_in),
	    cmocka_unit_test(test_arena_growth),
	    cmocka_unit_test(test_arena_reset_reuse),
	    cmocka_unit_test(test_arena_decode_failure),
	    cmocka_unit_test(test_arena_decodes_alike),
	    cmocka_unit_test(test_submit_without_copies),
	    cmocka_unit_test(test_schema_random),
	    cmocka_unit_test(test_canonical_on_the_wire),
	    cmocka_unit_test(test_receipt_packed_by_hand),
	    cmocka_unit_test(test_event_packed_by_hand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
