/* evidence.h — evidence bundles: one self-contained file that proves one
 * message was sent, logged, delivered and acknowledged, checkable offline
 * with the broker's public key alone (rete evidence export / verify).
 *
 * The file is JSON "rete-evidence/v1" (docs/auditing.md, "Evidence
 * bundles"). It holds only what the verifier checks, so that no byte of it
 * can change unnoticed:
 *   message                  the LogEntry bytes of the message (its index,
 *                            logged time and SignedMessage)
 *   messageProof             its inclusion proof to `checkpoint`
 *   directory                the LogEntry bytes of the Directory in force at
 *                            the message (the sender's key), and its proof
 *   directoryProof
 *   delivery                 the LogEntry bytes of the broker's Delivery of the
 *   deliveryProof            message, carrying the recipient's SignedAck
 *   deliveryDirectory        (only when another Directory came into force
 *   deliveryDirectoryProof   between the message and its delivery: the
 *                            recipient's key at the delivery)
 *   checkpoint               a stored checkpoint note covering all of them, with
 *                            the witnesses' cosignature lines it gathered
 *   timestamp                (when there is one) the RFC 3161 token over that
 *                            checkpoint's body (DER, base64)
 *   latest                   the latest checkpoint when exported (the
 *                            broker's signature only)
 *   consistency              the consistency proof from `checkpoint` to it
 * The writer emits it in one canonical layout; the reader refuses anything
 * else (unknown, duplicate or missing keys, another layout), so a changed
 * byte either breaks the form or changes a value that is verified.
 *
 * This module owns the bundle's form (write, strict parse), its assembly
 * from log entries fed in order (a store, or the broker at a distance) and
 * the verification, which fills plain facts that rete_evidence_story tells
 * in Italian or English.
 */
#ifndef RETE_CLI_EVIDENCE_H
#define RETE_CLI_EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "codec.h"
#include "error.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"

#define RETE_EVIDENCE_FORMAT "rete-evidence/v1"
#define RETE_EVIDENCE_MAX    (16u << 20) /* a bundle is a few KiB; more is not one */

/* A Merkle proof: n hashes of 32 bytes (malloc'd, owned by the holder). */
typedef struct rete_evidence_proof {
	uint8_t (*h)[RETE_MERKLE_HASH];
	size_t n;
} rete_evidence_proof;

/* rete_evidence: a bundle in memory. Every member is owned by the struct
 * (rete_evidence_free). timestamp.len == 0: no token; delivery_directory
 * .len == 0: the recipient's key is in `directory`. */
typedef struct rete_evidence {
	rete_buf message;
	rete_evidence_proof message_proof;
	rete_buf directory;
	rete_evidence_proof directory_proof;
	rete_buf delivery;
	rete_evidence_proof delivery_proof;
	rete_buf delivery_directory;
	rete_evidence_proof delivery_directory_proof;
	char *checkpoint;
	rete_buf timestamp;
	char *latest;
	rete_evidence_proof consistency;
} rete_evidence;

/* rete_evidence_free releases what *ev holds and zeroes it; NULL is fine. */
void rete_evidence_free(rete_evidence *ev);

/* rete_evidence_write formats *ev as the canonical bundle text (*text
 * malloc'd, NUL-terminated, the caller frees it). Errors: RETE_EINVAL (a
 * required member is missing), RETE_ENOMEM. */
rete_err rete_evidence_write(const rete_evidence *ev, char **text, rete_msg *m);

/* rete_evidence_parse reads text[0:len] strictly into *ev (release with
 * rete_evidence_free, also after a failure). *part (may be NULL) gets the
 * name of the part at fault (static): "form" for the document itself, or
 * the part whose value does not decode ("message", "directory", ...).
 * Errors: RETE_EJSON (not the canonical rete-evidence/v1 document: m says
 * why), RETE_EINVAL (a value is not what its key holds), RETE_ENOMEM. */
rete_err rete_evidence_parse(const char *text, size_t len, rete_evidence *ev, const char **part,
			     rete_msg *m);

/* ---- assembly ------------------------------------------------------------- */

/* rete_evidence_scan finds, in log entries fed in index order from 0, the
 * message (sender, id), the Directory in force at it, its Delivery and the
 * Directory in force at the Delivery. Opaque; rete_evidence_scan_free. */
typedef struct rete_evidence_scan rete_evidence_scan;

/* rete_evidence_scan_new starts a scan for the message id of sender (both
 * copied). Errors: RETE_EINVAL (empty sender or id), RETE_ENOMEM. */
rete_err rete_evidence_scan_new(rete_evidence_scan **out, const char *sender, const char *id,
				rete_msg *m);

/* rete_evidence_scan_feed gives the scan entry `index` (LogEntry bytes,
 * borrowed for the call); entries must come in order from 0. *done turns
 * true once the Delivery is found (nothing more is needed). Entries that do
 * not decode are refused: RETE_EDECODE (the log needs an audit), and
 * RETE_ENOMEM. */
rete_err rete_evidence_scan_feed(rete_evidence_scan *sc, uint64_t index, const uint8_t *entry,
				 size_t len, bool *done, rete_msg *m);

/* rete_evidence_scan_found: the scan has met the message (its Delivery
 * perhaps not). */
bool rete_evidence_scan_found(const rete_evidence_scan *sc);

/* rete_evidence_scan_take moves what the scan found into ev (message,
 * directory, delivery and delivery_directory; proofs, checkpoints and
 * token are the caller's to add) and gives the indexes: *last is the
 * largest index of an entry the bundle holds (a checkpoint must be larger).
 * Errors: RETE_ENOENT (no such message; or not delivered yet: m says which
 * and what the log shows), RETE_EINVAL (the message precedes every
 * Directory). */
rete_err rete_evidence_scan_take(rete_evidence_scan *sc, rete_evidence *ev, uint64_t idx[4],
				 uint64_t *last, rete_msg *m);

/* rete_evidence_scan_free releases *sc and sets it to NULL; NULL is fine. */
void rete_evidence_scan_free(rete_evidence_scan **sc);

/* rete_evidence_from_store builds the bundle for message id of sender from
 * the store s (read-only is fine; one read transaction, so one fixed log
 * size): the entries, a stored checkpoint covering them (the one with a
 * time-stamp token and the most cosignatures, the smallest of equals),
 * their inclusion proofs to it, the token, the latest checkpoint and the
 * consistency proof to it. Errors: RETE_ENOENT (no such message, not
 * delivered, or no stored checkpoint covers the delivery yet: m says which
 * and when to try again), RETE_EDECODE, RETE_ESTORE, RETE_ENOMEM. */
rete_err rete_evidence_from_store(rete_store *s, const char *sender, const char *id,
				  rete_evidence *ev, rete_msg *m);

/* rete_evidence_from_broker builds the bundle for message id of sender from
 * the broker at the other end of w, asking as the party of cfg (a
 * coordinator's or auditor's configuration; both borrowed): the latest
 * checkpoint, the log's entries up to the Delivery, the newest time-stamp
 * token when its checkpoint covers the Delivery (else the latest
 * checkpoint), the inclusion proofs (whose answers carry the stored note
 * with its cosignatures) and the consistency proof to the latest. Defined
 * in cmd_evidence.c (it needs the connection code the library leaves out);
 * `rete evidence export -c` and the web console both call it. Errors as
 * rete_evidence_from_store, and the connection's (RETE_ETIMEDOUT,
 * RETE_EREFUSED: the broker refused a query, m has its sentence). */
struct coord_config;
struct rete_wire;
rete_err rete_evidence_from_broker(const struct coord_config *cfg, struct rete_wire *w,
				   const char *sender, const char *id, rete_evidence *ev,
				   rete_msg *m);

/* rete_evidence_strip_latest replaces the note *note (malloc'd) by the
 * same note with only the log's own signature line (its origin's): what a
 * bundle keeps of the latest checkpoint. Errors: RETE_EINVAL (not a
 * checkpoint note), RETE_ENOMEM. */
rete_err rete_evidence_strip_latest(char **note, rete_msg *m);

/* rete_evidence_keep_checkable keeps, of the cosignature lines on
 * ev->checkpoint, those that verify with their party's key in the bundle's
 * directory (the one at the delivery, else the message's): a line of a
 * party that joined, or cosigned under a key that replaced its key, after
 * the delivery could not be checked from the bundle and is left out (the
 * bundle holds only what it can prove). Errors: RETE_EINVAL, RETE_ENOMEM. */
rete_err rete_evidence_keep_checkable(rete_evidence *ev, rete_msg *m);

/* ---- verification ---------------------------------------------------------- */

/* rete_evidence_opts: what to verify against (borrowed for the call). */
typedef struct rete_evidence_opts {
	rete_pubkey broker_key; /* the broker's key (required) */
	const char *tsa_ca;	/* PEM file of the TSA's CA: a token is required and
				   must verify against it; NULL: a token present is
				   read (its imprint checked) but its signer not
				   trusted */
	const char *witnesses;	/* a witness policy file (store/cosign.h); NULL: the
				   cosignature lines are checked with the keys of
				   the directory */
} rete_evidence_opts;

/* What a bundle that holds says (plain values). */
typedef struct rete_evidence_facts {
	char origin[RETE_ORIGIN_MAX + 1];
	char message_id[256];
	char kind[16]; /* referral, update, note */
	char sender[RETE_ID_MAX + 1];
	char recipient[RETE_ID_MAX + 1];
	char case_id[256];
	uint64_t index;
	int64_t created_at, logged_at;
	uint64_t directory_index;
	uint64_t delivery_index;
	int64_t delivered_at; /* the broker's time of the Delivery */
	int64_t acked_at;     /* the recipient's clock in its signed ACK */
	uint64_t delivery_directory_index;
	uint64_t checkpoint_size, latest_size;
	char checkpoint_root[48];
	bool timestamped;	/* a token is in the bundle */
	bool timestamp_trusted; /* it verified against --tsa-ca */
	int64_t timestamp_at;
	char tsa_name[256];
	unsigned cosigned;   /* valid cosignatures counted */
	unsigned witnesses;  /* witnesses of the policy (0: none given) */
	unsigned quorum;     /* the policy's quorum */
	char cosigners[512]; /* their names, ", " separated */
} rete_evidence_facts;

/* rete_evidence_verify checks the bundle text[0:len] offline, part by
 * part, and fills *facts (may be NULL). Returns RETE_OK when every part
 * holds. Otherwise *part (static; may be NULL) names the first part that
 * fails — "form", "checkpoint", "message", "directory", "delivery",
 * "acknowledgement", "timestamp", "cosignatures", "consistency" — and m
 * says why: RETE_EJSON/RETE_EINVAL (form or a value), RETE_EDECODE,
 * RETE_EBADSIG, RETE_EPROOF, RETE_ENOENT (no token, and --tsa-ca asks for
 * one), RETE_EIO (the CA or policy file cannot be read, or the policy is
 * not one: a usage error, not a verdict), RETE_ENOMEM. */
rete_err rete_evidence_verify(const char *text, size_t len, const rete_evidence_opts *o,
			      rete_evidence_facts *facts, const char **part, rete_msg *m);

/* The languages of the story. */
typedef enum rete_evidence_lang { RETE_EVIDENCE_EN = 0, RETE_EVIDENCE_IT = 1 } rete_evidence_lang;

/* rete_evidence_story tells *f in words (malloc'd text, lines ending in a
 * newline; the caller frees it; NULL on out of memory). */
char *rete_evidence_story(const rete_evidence_facts *f, rete_evidence_lang lang);

/* rete_evidence_part_name is the part's name in lang (part as returned by
 * rete_evidence_verify). */
const char *rete_evidence_part_name(const char *part, rete_evidence_lang lang);

/* rete_evidence_reason writes into buf (n bytes) reason, a sentence of
 * rete_evidence_verify (English), in lang: unchanged for
 * RETE_EVIDENCE_EN; in Italian for RETE_EVIDENCE_IT, names, numbers and
 * hashes kept as they are. A part it has no Italian for (a library's
 * detail, e.g. OpenSSL's or the JSON parser's) is written as "dettaglio
 * tecnico, in inglese: ..." and the result is false; true when all of it
 * is in lang. */
bool rete_evidence_reason(const char *reason, rete_evidence_lang lang, char *buf, size_t n);

#endif
