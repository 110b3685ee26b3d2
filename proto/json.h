/* json.h — the JSON spelling of rete's protobuf messages.
 *
 * One generic mapping, driven by protobuf-c's descriptors, turns any message
 * of rete.proto into JSON and back, following the contract of DESIGN.md
 * ("The contract's small print"): lowerCamelCase keys; enum values as their
 * .proto names without the enum's prefix, lower case, '_' -> '-'
 * (STATUS_IN_PROGRESS -> "in-progress"), never "unspecified"; int64 fields
 * named `*_at` (or `at`) as RFC 3339 UTC strings; other 64-bit integers as
 * decimal strings; 32-bit integers as numbers; bytes as standard base64;
 * nested messages as objects; repeated fields as arrays; a oneof member as
 * its own key, at most one per oneof. Unknown keys, duplicate keys, wrong
 * types and unknown enum names are refused with the path of the value
 * (`referral.consent.givenAt`, `contacts[1].kind`) and a sentence naming
 * what would be accepted. Output omits unset (zero) fields, as proto3 does,
 * so JSON -> protobuf -> JSON is the identity on canonical documents.
 *
 * The outbox (spool) document is a Message object that may also carry a
 * top-level "private" key holding the Private message (the part that will be
 * sealed), in clear: rete_json_load_outbox splits and maps both.
 */
#ifndef RETE_JSON_H
#define RETE_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "problems.h"
#include "rete.pb-c.h"

/* rete_json_to_pb maps the JSON value in (borrowed) to a new message of type
 * d in *out, stopping at the first problem. The message is allocated the way
 * protobuf-c's unpack allocates (system allocator), so the caller frees it
 * with protobuf_c_message_free_unpacked(*out, NULL). On error *out is NULL
 * and m says "path: what is wrong and what would be accepted".
 * Errors: RETE_EJSON (does not map), RETE_ENOMEM, RETE_EINVAL (NULL args). */
rete_err rete_json_to_pb(const ProtobufCMessageDescriptor *d, json_t *in, ProtobufCMessage **out,
			 rete_msg *m);

/* rete_json_to_pb_all is rete_json_to_pb that reports every problem of the
 * document, not only the first: each is appended to problems (which the
 * caller owns and frees; it may already hold items). On any problem *out is
 * NULL. Errors: RETE_EJSON, RETE_ENOMEM, RETE_EINVAL (NULL args). */
rete_err rete_json_to_pb_all(const ProtobufCMessageDescriptor *d, json_t *in,
			     ProtobufCMessage **out, rete_problems *problems);

/* rete_pb_to_json maps msg (borrowed) to a new JSON object (the caller owns
 * the reference). Unset fields are omitted. NULL on out of memory. Values
 * the contract cannot spell (an enum number the schema does not know, a
 * time outside the years 0000-9999) come out as plain numbers or decimal
 * strings, which rete_json_to_pb then refuses. */
json_t *rete_pb_to_json(const ProtobufCMessage *msg);

/* rete_time_parse parses an RFC 3339 time ("2026-11-22T10:15:00Z",
 * "2026-11-22T11:15:00.250+01:00"; fractional seconds optional, truncated to
 * milliseconds; 'Z' or a numeric offset) into Unix milliseconds UTC.
 * Errors: RETE_EINVAL (not such a time, or out of range). */
rete_err rete_time_parse(const char *s, int64_t *ms);

/* rete_time_format writes ms (Unix milliseconds) into buf as RFC 3339 UTC
 * ("2026-11-22T10:15:00Z", with ".123" when the milliseconds are not zero)
 * and returns buf. Times outside the years 0000-9999 come out as the decimal
 * number of milliseconds. */
char *rete_time_format(int64_t ms, char buf[32]);

/* rete_enum_json_name returns the JSON name of value in enum d
 * (RETE__STATUS__STATUS_IN_PROGRESS -> "in-progress"), or NULL if the enum
 * has no such value (or on out of memory). The string is static: it lives as
 * long as the process. Thread-safe. */
const char *rete_enum_json_name(const ProtobufCEnumDescriptor *d, int value);

/* rete_enum_from_json_name is the reverse of rete_enum_json_name: the value
 * whose JSON name is name. Errors: RETE_ENOENT (no such name), RETE_ENOMEM. */
rete_err rete_enum_from_json_name(const ProtobufCEnumDescriptor *d, const char *name, int *value);

/* rete_json_field_name writes the lowerCamelCase JSON key of a protobuf field
 * name (private_sha256 -> privateSha256) into buf (size n, truncated if
 * needed) and returns buf. */
char *rete_json_field_name(const char *proto_name, char *buf, size_t n);

/* rete_json_loadb parses len bytes of JSON text (any JSON value, so that a
 * stray top-level value gets a mapping sentence, not a syntax one), refusing
 * duplicate keys; name (a file name, or NULL) starts the sentence in m. On
 * success *out is a new reference. A syntax error says "NAME: line L, column
 * C: ..."; a duplicate key says "NAME: PATH: duplicate key ..." with the
 * path of the repeated key. Errors: RETE_EJSON, RETE_ENOMEM. */
rete_err rete_json_loadb(const char *text, size_t len, const char *name, json_t **out, rete_msg *m);

/* rete_json_load_file reads and parses the file at path as rete_json_loadb
 * does. Errors: RETE_EIO (cannot be read; m names the file and the reason),
 * RETE_EJSON, RETE_ENOMEM. */
rete_err rete_json_load_file(const char *path, json_t **out, rete_msg *m);

/* rete_json_load_outbox maps an outbox document: a Message object that may
 * also carry a top-level "private" object (the Private message in clear).
 * doc is borrowed; when doc is NULL the document is read from path_or_null
 * with rete_json_load_file (a load failure becomes one problem with an empty
 * path). *msg gets the Message and *priv the Private (NULL when there is no
 * "private" key); the caller frees both with protobuf_c_message_free_unpacked.
 * Every mapping problem is appended to problems with its path
 * (`referral.priority`, `private.person.fiscalCode`); on any problem both
 * outputs are NULL. Errors: RETE_EJSON, RETE_EIO (file unreadable),
 * RETE_ENOMEM, RETE_EINVAL (NULL args). */
rete_err rete_json_load_outbox(const char *path_or_null, json_t *doc, Rete__Message **msg,
			       Rete__Private **priv, rete_problems *problems);

/* rete_json_outbox_doc is the reverse of rete_json_load_outbox: the JSON of
 * msg with, when priv is not NULL, the JSON of priv under "private" (the
 * inbox spelling). Both are borrowed; the caller owns the new object. NULL on
 * out of memory or msg NULL. */
json_t *rete_json_outbox_doc(const Rete__Message *msg, const Rete__Private *priv);

#endif
