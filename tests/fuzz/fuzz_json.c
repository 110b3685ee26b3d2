/* fuzz_json.c — libFuzzer target: JSON documents (outbox files, --json).
 *
 * The input is the text of a file an agency's system drops into outbox/ (or
 * any JSON rete reads): parsed with rete_json_loadb (duplicate keys
 * refused), mapped as an outbox document with rete_json_load_outbox and
 * validated in DRAFT mode, and mapped with rete_json_to_pb_all onto a few
 * message types (Message, Private, Directory, BrokerFrame). Properties
 * checked besides "no crash, no leak, no UB":
 *  - rete_json_to_pb and rete_json_to_pb_all agree on the verdict, and a
 *    refusal always comes with at least one problem;
 *  - when a document maps cleanly, protobuf -> JSON -> protobuf packs to
 *    identical bytes (for the outbox: rete_json_outbox_doc, then
 *    rete_json_load_outbox again), also through printed JSON text.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "json.h"
#include "rete.pb-c.h"
#include "validate.h"

/* packed returns the packed bytes of msg (caller frees; NULL msg gives an
 * empty buffer). */
static uint8_t *packed(const ProtobufCMessage *msg, size_t *len)
{
	*len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	uint8_t *buf = malloc(*len ? *len : 1);
	if (!buf)
		abort();
	if (msg)
		protobuf_c_message_pack(msg, buf);
	return buf;
}

static bool same(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t na, nb;
	uint8_t *pa = packed(a, &na), *pb = packed(b, &nb);
	bool eq = (a == NULL) == (b == NULL) && na == nb && memcmp(pa, pb, na) == 0;
	free(pa);
	free(pb);
	return eq;
}

/* reparse prints j and parses the text again (the file path). */
static json_t *reparse(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		abort();
	json_t *back = NULL;
	rete_msg m;
	if (rete_json_loadb(text, strlen(text), "fuzz", &back, &m) != RETE_OK)
		fuzz_fail("JSON printed by jansson is refused by rete_json_loadb: %s (%s)", m.text,
			  text);
	free(text);
	return back;
}

static void map_as(const ProtobufCMessageDescriptor *d, json_t *doc)
{
	rete_problems pr = {0};
	ProtobufCMessage *pb = NULL;
	rete_err e = rete_json_to_pb_all(d, doc, &pb, &pr);
	if ((e == RETE_OK) != (pr.n == 0) || (e == RETE_OK) != (pb != NULL))
		fuzz_fail("%s: rete_json_to_pb_all verdict %d, %zu problems, out %p", d->name, e,
			  pr.n, (void *)pb);
	rete_problems_free(&pr);

	ProtobufCMessage *first = NULL;
	rete_msg m;
	rete_err e1 = rete_json_to_pb(d, doc, &first, &m);
	if ((e1 == RETE_OK) != (e == RETE_OK))
		fuzz_fail("%s: rete_json_to_pb says %d, rete_json_to_pb_all says %d", d->name, e1,
			  e);
	if (first) {
		if (!same(pb, first))
			fuzz_fail("%s: rete_json_to_pb and _all map to different messages",
				  d->name);
		protobuf_c_message_free_unpacked(first, NULL);
	}
	if (!pb)
		return;

	json_t *j = rete_pb_to_json(pb);
	if (!j)
		abort();
	json_t *text = reparse(j);
	json_t *docs[2] = {j, text};
	for (int k = 0; k < 2; k++) {
		ProtobufCMessage *again = NULL;
		if (rete_json_to_pb(d, docs[k], &again, &m) != RETE_OK)
			fuzz_fail("%s: a document that mapped cleanly does not map back after "
				  "rete_pb_to_json: %s",
				  d->name, m.text);
		if (!same(pb, again))
			fuzz_fail("%s: protobuf -> JSON -> protobuf changed the bytes", d->name);
		protobuf_c_message_free_unpacked(again, NULL);
	}
	json_decref(text);
	json_decref(j);
	protobuf_c_message_free_unpacked(pb, NULL);
}

static void outbox(json_t *doc)
{
	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	rete_problems pr = {0};
	rete_err e = rete_json_load_outbox(NULL, doc, &msg, &priv, &pr);
	if ((e == RETE_OK) != (pr.n == 0) || (e != RETE_OK && (msg || priv)) ||
	    (e == RETE_OK && !msg))
		fuzz_fail("rete_json_load_outbox verdict %d with %zu problems", e, pr.n);
	rete_problems_free(&pr);
	if (e != RETE_OK)
		return;

	rete_problems vp = {0};
	rete_err ve = rete_validate_message(msg, priv, RETE_VALIDATE_DRAFT, &vp);
	if ((ve == RETE_OK) != (vp.n == 0))
		fuzz_fail("rete_validate_message: verdict %d with %zu problems", ve, vp.n);
	rete_problems_free(&vp);

	json_t *j = rete_json_outbox_doc(msg, priv);
	if (!j)
		abort();
	json_t *text = reparse(j);
	json_t *docs[2] = {j, text};
	for (int k = 0; k < 2; k++) {
		Rete__Message *msg2 = NULL;
		Rete__Private *priv2 = NULL;
		if (rete_json_load_outbox(NULL, docs[k], &msg2, &priv2, &pr) != RETE_OK)
			fuzz_fail("outbox: rete_json_outbox_doc gave a document that does not "
				  "map back: %s: %s",
				  pr.n ? pr.items[0].path : "", pr.n ? pr.items[0].text : "");
		if (!same(&msg->base, &msg2->base) ||
		    !same(priv ? &priv->base : NULL, priv2 ? &priv2->base : NULL))
			fuzz_fail("outbox: document -> protobuf -> document changed the bytes");
		rete__message__free_unpacked(msg2, NULL);
		if (priv2)
			rete__private__free_unpacked(priv2, NULL);
	}
	json_decref(text);
	json_decref(j);
	rete__message__free_unpacked(msg, NULL);
	if (priv)
		rete__private__free_unpacked(priv, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL;
	rete_msg m;
	memset(&m, 0x41, sizeof(m));
	rete_err e = rete_json_loadb((const char *)data, size, "fuzz.json", &doc, &m);
	if (e != RETE_OK) {
		if (doc)
			fuzz_fail("rete_json_loadb failed but returned a document");
		if (!memchr(m.text, 0, sizeof(m.text)))
			fuzz_fail("rete_json_loadb left no sentence");
		return 0;
	}
	outbox(doc);
	map_as(&rete__message__descriptor, doc);
	map_as(&rete__private__descriptor, doc);
	map_as(&rete__directory__descriptor, doc);
	map_as(&rete__broker_frame__descriptor, doc);
	json_decref(doc);
	return 0;
}
