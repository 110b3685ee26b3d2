/* fuzz_signed_message.c — libFuzzer target: SignedMessage bytes.
 *
 * The input is what a Submit carries (and what a LogEntry holds): decoded
 * with rete_signed_decode, the signature checked against the fixed fuzz key
 * (seeds are signed with it, so mutations near a valid message reach the
 * verifier's success path), the Message validated in SIGNED mode. Properties
 * checked besides "no crash, no leak, no UB":
 *  - the validator's verdict agrees with the problems it reports;
 *  - a Message that decodes strictly and whose JSON (rete_pb_to_json, then
 *    printed and parsed again with rete_json_loadb) maps back cleanly packs
 *    to exactly the signed bytes: what the agent writes into inbox/ is the
 *    message that was signed.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz_common.h"
#include "json.h"
#include "rete.pb-c.h"
#include "validate.h"

static void json_round_trip(const Rete__Message *msg, const uint8_t *bytes, size_t len)
{
	json_t *j = rete_pb_to_json(&msg->base);
	if (!j)
		abort(); /* out of memory only */
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		abort();
	json_t *back = NULL;
	rete_msg m;
	if (rete_json_loadb(text, strlen(text), "fuzz", &back, &m) != RETE_OK)
		fuzz_fail("rete_pb_to_json printed text rete_json_loadb refuses: %s (%s)", m.text,
			  text);
	ProtobufCMessage *again = NULL;
	if (rete_json_to_pb(&rete__message__descriptor, back, &again, &m) == RETE_OK) {
		size_t n = protobuf_c_message_get_packed_size(again);
		uint8_t *buf = malloc(n ? n : 1);
		if (!buf)
			abort();
		protobuf_c_message_pack(again, buf);
		if (n != len || (len && memcmp(buf, bytes, len) != 0))
			fuzz_fail("Message -> JSON -> Message changed the bytes (%zu -> %zu): %s",
				  len, n, text);
		free(buf);
		protobuf_c_message_free_unpacked(again, NULL);
	}
	json_decref(back);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_msg m;
	rete_err e = rete_signed_decode(data, size, &sm, &msg, &m);
	if (e != RETE_OK) {
		if (sm || msg)
			fuzz_fail("rete_signed_decode failed (%d) but returned outputs", e);
		return 0;
	}
	if (!sm || !msg)
		fuzz_fail("rete_signed_decode: RETE_OK without both outputs");
	if (sm->signature.len != RETE_SIG_LEN)
		fuzz_fail("rete_signed_decode accepted a %zu-byte signature", sm->signature.len);
	(void)rete_signed_verify(sm, &fuzz_key()->pub, &m);

	rete_problems pr = {0};
	e = rete_validate_message(msg, NULL, RETE_VALIDATE_SIGNED, &pr);
	if ((e == RETE_OK) != (pr.n == 0))
		fuzz_fail("rete_validate_message: verdict %d with %zu problems", e, pr.n);
	for (size_t i = 0; i < pr.n; i++)
		if (!memchr(pr.items[i].path, 0, sizeof(pr.items[i].path)) ||
		    !memchr(pr.items[i].text, 0, sizeof(pr.items[i].text)))
			fuzz_fail("problem %zu is not NUL-terminated", i);
	rete_problems_free(&pr);
	/* The other modes must not crash on a signed message either. */
	(void)rete_validate_message(msg, NULL, RETE_VALIDATE_BROKER, NULL);
	(void)rete_validate_message(msg, NULL, RETE_VALIDATE_DRAFT, NULL);

	json_round_trip(msg, sm->message.data, sm->message.len);

	rete__signed_message__free_unpacked(sm, NULL);
	rete__message__free_unpacked(msg, NULL);
	return 0;
}
