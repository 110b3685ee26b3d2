/* evidence.c — evidence bundles (see evidence.h). */
#define _GNU_SOURCE
#include "evidence.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cosign.h"
#include "duration.h"
#include "json.h"
#include "tsa.h"

/* ---- the bundle in memory --------------------------------------------------- */

static void proof_free(rete_evidence_proof *p)
{
	free(p->h);
	p->h = NULL;
	p->n = 0;
}

void rete_evidence_free(rete_evidence *ev)
{
	if (ev == NULL)
		return;
	rete_buf_free(&ev->message);
	proof_free(&ev->message_proof);
	rete_buf_free(&ev->directory);
	proof_free(&ev->directory_proof);
	rete_buf_free(&ev->delivery);
	proof_free(&ev->delivery_proof);
	rete_buf_free(&ev->delivery_directory);
	proof_free(&ev->delivery_directory_proof);
	free(ev->checkpoint);
	rete_buf_free(&ev->timestamp);
	free(ev->latest);
	proof_free(&ev->consistency);
	memset(ev, 0, sizeof(*ev));
}

/* proof_set copies n hashes into *p. */
static rete_err proof_set(rete_evidence_proof *p, const uint8_t (*h)[RETE_MERKLE_HASH], size_t n)
{
	proof_free(p);
	if (n == 0)
		return RETE_OK;
	if ((p->h = malloc(n * RETE_MERKLE_HASH)) == NULL)
		return RETE_ENOMEM;
	memcpy(p->h, h, n * RETE_MERKLE_HASH);
	p->n = n;
	return RETE_OK;
}

/* ---- the form ------------------------------------------------------------------ */

/* The keys in their canonical order, the part each belongs to, and whether
 * it may be absent. */
enum kind { K_BYTES, K_PROOF, K_TEXT };
static const struct key {
	const char *name;
	const char *part;
	enum kind kind;
	bool optional;
} keys[] = {
    {"format", "form", K_TEXT, false},
    {"message", "message", K_BYTES, false},
    {"messageProof", "message", K_PROOF, false},
    {"directory", "directory", K_BYTES, false},
    {"directoryProof", "directory", K_PROOF, false},
    {"delivery", "delivery", K_BYTES, false},
    {"deliveryProof", "delivery", K_PROOF, false},
    {"deliveryDirectory", "delivery", K_BYTES, true},
    {"deliveryDirectoryProof", "delivery", K_PROOF, true},
    {"checkpoint", "checkpoint", K_TEXT, false},
    {"timestamp", "timestamp", K_BYTES, true},
    {"latest", "consistency", K_TEXT, false},
    {"consistency", "consistency", K_PROOF, false},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* slot_* map key i to the member of ev. */
static rete_buf *slot_bytes(rete_evidence *ev, size_t i)
{
	switch (i) {
	case 1:
		return &ev->message;
	case 3:
		return &ev->directory;
	case 5:
		return &ev->delivery;
	case 7:
		return &ev->delivery_directory;
	case 10:
		return &ev->timestamp;
	default:
		return NULL;
	}
}

static rete_evidence_proof *slot_proof(rete_evidence *ev, size_t i)
{
	switch (i) {
	case 2:
		return &ev->message_proof;
	case 4:
		return &ev->directory_proof;
	case 6:
		return &ev->delivery_proof;
	case 8:
		return &ev->delivery_directory_proof;
	case 12:
		return &ev->consistency;
	default:
		return NULL;
	}
}

static char **slot_text(rete_evidence *ev, size_t i)
{
	switch (i) {
	case 9:
		return &ev->checkpoint;
	case 11:
		return &ev->latest;
	default:
		return NULL;
	}
}

static json_t *b64_json(const uint8_t *p, size_t n)
{
	char *s = rete_b64_encode(p, n);
	json_t *j = s != NULL ? json_string(s) : NULL;
	free(s);
	return j;
}

rete_err rete_evidence_write(const rete_evidence *ev_in, char **text, rete_msg *m)
{
	rete_evidence *ev = (rete_evidence *)ev_in; /* the slots are only read */
	json_t *doc = json_object();
	char *s = NULL;
	bool ok = doc != NULL;

	*text = NULL;
	if (ev->message.len == 0 || ev->directory.len == 0 || ev->delivery.len == 0 ||
	    ev->checkpoint == NULL || ev->latest == NULL) {
		json_decref(doc);
		return rete_msg_set(m, RETE_EINVAL,
				    "an evidence bundle needs the message, the directory, the "
				    "delivery, a checkpoint and the latest checkpoint");
	}
	for (size_t i = 0; ok && i < NKEYS; i++) {
		json_t *v = NULL;
		if (i == 0) {
			v = json_string(RETE_EVIDENCE_FORMAT);
		} else if (slot_bytes(ev, i) != NULL) {
			const rete_buf *b = slot_bytes(ev, i);
			if (b->len == 0 && keys[i].optional)
				continue;
			v = b64_json(b->data, b->len);
		} else if (slot_proof(ev, i) != NULL) {
			const rete_evidence_proof *p = slot_proof(ev, i);
			if (p->n == 0 && keys[i].optional)
				continue;
			v = json_array();
			for (size_t j = 0; v != NULL && j < p->n; j++)
				if (json_array_append_new(v, b64_json(p->h[j], RETE_MERKLE_HASH)) !=
				    0)
					ok = false;
		} else {
			v = json_string(*slot_text(ev, i));
		}
		ok = ok && v != NULL && json_object_set_new(doc, keys[i].name, v) == 0;
	}
	if (ok)
		s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (s == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory writing the evidence bundle");
	if ((*text = malloc(strlen(s) + 2)) == NULL) {
		free(s);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory writing the evidence bundle");
	}
	sprintf(*text, "%s\n", s);
	free(s);
	return RETE_OK;
}

static rete_err bad_value(rete_msg *m, const char *key, const char *what)
{
	return rete_msg_set(m, RETE_EINVAL, "\"%s\" is not %s", key, what);
}

rete_err rete_evidence_parse(const char *text, size_t len, rete_evidence *ev, const char **part,
			     rete_msg *m)
{
	json_t *doc = NULL, *v;
	const char *key;
	char *canon = NULL;
	size_t clen;
	rete_err e = RETE_OK;

	memset(ev, 0, sizeof(*ev));
	if (part != NULL)
		*part = "form";
	if (len > RETE_EVIDENCE_MAX)
		return rete_msg_set(m, RETE_EJSON,
				    "the bundle is %zu bytes; an evidence bundle is at most %u",
				    len, RETE_EVIDENCE_MAX);
	if ((e = rete_json_loadb(text, len, "the bundle", &doc, m)) != RETE_OK)
		return e == RETE_ENOMEM ? e : RETE_EJSON;
	if (!json_is_object(doc)) {
		e = rete_msg_set(m, RETE_EJSON, "the bundle is not a JSON object");
		goto out;
	}
	size_t prev = NKEYS; /* the key before, in the bundle's order */
	json_object_foreach(doc, key, v)
	{
		size_t i = 0;
		while (i < NKEYS && strcmp(keys[i].name, key) != 0)
			i++;
		if (i < NKEYS && prev < NKEYS && i < prev) {
			/* the layout check below would pass it: jansson writes the
			 * keys back in the order they were read */
			e = rete_msg_set(m, RETE_EJSON,
					 "the bundle's members are not in the order rete evidence "
					 "export writes them: \"%s\" comes after \"%s\" (it was "
					 "edited)",
					 key, keys[prev].name);
			goto out;
		}
		if (i < NKEYS)
			prev = i;
		if (i == NKEYS) {
			e = rete_msg_set(
			    m, RETE_EJSON,
			    "the bundle has an unknown key \"%.60s\"; a " RETE_EVIDENCE_FORMAT
			    " bundle has only format, message, messageProof, directory, "
			    "directoryProof, delivery, deliveryProof, deliveryDirectory, "
			    "deliveryDirectoryProof, checkpoint, timestamp, latest, "
			    "consistency",
			    key);
			goto out;
		}
	}
	for (size_t i = 0; i < NKEYS; i++) {
		v = json_object_get(doc, keys[i].name);
		if (v == NULL && !keys[i].optional) {
			e = rete_msg_set(m, RETE_EJSON, "the bundle has no \"%s\"", keys[i].name);
			goto out;
		}
		if (v == NULL)
			continue;
		if (keys[i].kind == K_PROOF ? !json_is_array(v) : !json_is_string(v)) {
			e = rete_msg_set(m, RETE_EJSON, "\"%s\" is not %s", keys[i].name,
					 keys[i].kind == K_PROOF ? "an array" : "a string");
			goto out;
		}
	}
	if (strcmp(json_string_value(json_object_get(doc, "format")), RETE_EVIDENCE_FORMAT) != 0) {
		e = rete_msg_set(m, RETE_EJSON, "the format is not \"" RETE_EVIDENCE_FORMAT "\"");
		goto out;
	}
	/* one layout only: what the writer gives, byte for byte */
	if ((canon = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL) {
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory reading the bundle");
		goto out;
	}
	clen = strlen(canon);
	if (len != clen + 1 || memcmp(text, canon, clen) != 0 || text[clen] != '\n') {
		size_t at = 0;
		while (at < len && at < clen && text[at] == canon[at])
			at++;
		e = rete_msg_set(m, RETE_EJSON,
				 "the bundle is not in the layout rete evidence export writes "
				 "(it differs at byte %zu): it was edited",
				 at);
		goto out;
	}
	/* the values, each named by its part */
	for (size_t i = 1; i < NKEYS; i++) {
		const char *name = keys[i].name;
		if ((v = json_object_get(doc, name)) == NULL)
			continue;
		if (part != NULL)
			*part = keys[i].part;
		if (keys[i].kind == K_BYTES) {
			rete_buf *b = slot_bytes(ev, i);
			if (rete_b64_decode(json_string_value(v), &b->data, &b->len) != RETE_OK ||
			    b->len == 0) {
				e = bad_value(m, name, "standard base64 of some bytes");
				goto out;
			}
		} else if (keys[i].kind == K_PROOF) {
			rete_evidence_proof *p = slot_proof(ev, i);
			size_t n = json_array_size(v);
			if (n > RETE_MERKLE_MAX_PROOF) {
				e = bad_value(m, name, "a proof (at most 64 hashes)");
				goto out;
			}
			if (n > 0 && (p->h = calloc(n, RETE_MERKLE_HASH)) == NULL) {
				e = rete_msg_set(m, RETE_ENOMEM, "out of memory");
				goto out;
			}
			for (size_t j = 0; j < n; j++) {
				uint8_t *bin = NULL;
				size_t bl = 0;
				const char *s = json_string_value(json_array_get(v, j));
				if (s == NULL || rete_b64_decode(s, &bin, &bl) != RETE_OK ||
				    bl != RETE_MERKLE_HASH) {
					free(bin);
					e = rete_msg_set(m, RETE_EINVAL,
							 "hash %zu of \"%s\" is not 32 bytes of "
							 "base64",
							 j, name);
					goto out;
				}
				memcpy(p->h[j], bin, RETE_MERKLE_HASH);
				free(bin);
				p->n = j + 1;
			}
		} else if ((*slot_text(ev, i) = strdup(json_string_value(v))) == NULL) {
			e = rete_msg_set(m, RETE_ENOMEM, "out of memory");
			goto out;
		}
	}
	if ((json_object_get(doc, "deliveryDirectory") == NULL) !=
	    (json_object_get(doc, "deliveryDirectoryProof") == NULL)) {
		if (part != NULL)
			*part = "delivery";
		e = rete_msg_set(m, RETE_EJSON,
				 "deliveryDirectory and deliveryDirectoryProof come together");
		goto out;
	}
	if (part != NULL)
		*part = NULL;
out:
	free(canon);
	json_decref(doc);
	return e;
}

/* ---- assembly ------------------------------------------------------------------- */

struct rete_evidence_scan {
	char *sc_sender, *sc_id;
	rete_buf sc_dir; /* the Directory in force so far */
	uint64_t sc_dir_index;
	bool sc_found; /* the message */
	rete_buf sc_msg, sc_msg_dir;
	uint64_t sc_msg_index, sc_msg_dir_index;
	bool sc_delivered;
	rete_buf sc_dlv, sc_dlv_dir;
	uint64_t sc_dlv_index, sc_dlv_dir_index;
	char sc_refused[300]; /* what a Notice about it said, if any */
};

rete_err rete_evidence_scan_new(rete_evidence_scan **out, const char *sender, const char *id,
				rete_msg *m)
{
	rete_evidence_scan *sc;

	*out = NULL;
	if (sender == NULL || id == NULL || *sender == '\0' || *id == '\0')
		return rete_msg_set(m, RETE_EINVAL,
				    "give the sender's party id and the message id");
	if ((sc = calloc(1, sizeof(*sc))) == NULL || (sc->sc_sender = strdup(sender)) == NULL ||
	    (sc->sc_id = strdup(id)) == NULL) {
		rete_evidence_scan_free(&sc);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	*out = sc;
	return RETE_OK;
}

void rete_evidence_scan_free(rete_evidence_scan **scp)
{
	rete_evidence_scan *sc = scp != NULL ? *scp : NULL;
	if (sc == NULL)
		return;
	free(sc->sc_sender);
	free(sc->sc_id);
	rete_buf_free(&sc->sc_dir);
	rete_buf_free(&sc->sc_msg);
	rete_buf_free(&sc->sc_msg_dir);
	rete_buf_free(&sc->sc_dlv);
	rete_buf_free(&sc->sc_dlv_dir);
	free(sc);
	*scp = NULL;
}

static rete_err buf_copy(rete_buf *dst, const uint8_t *p, size_t n)
{
	rete_buf_free(dst);
	if ((dst->data = malloc(n > 0 ? n : 1)) == NULL)
		return RETE_ENOMEM;
	memcpy(dst->data, p, n);
	dst->len = n;
	return RETE_OK;
}

/* entry_decode decodes LogEntry bytes strictly, and the Message inside
 * (either out may be NULL). */
static rete_err entry_decode(const uint8_t *p, size_t n, Rete__LogEntry **le_out,
			     Rete__SignedMessage **sm, Rete__Message **msg, rete_msg *m)
{
	ProtobufCMessage *pm = NULL;
	Rete__LogEntry *le;
	rete_err e;

	if (sm != NULL)
		*sm = NULL;
	if (msg != NULL)
		*msg = NULL;
	if ((e = rete_pb_strict_unpack(&rete__log_entry__descriptor, p, n, &pm, m)) != RETE_OK)
		return e;
	le = (Rete__LogEntry *)pm;
	e = rete_signed_decode(le->signed_message.data, le->signed_message.len, sm, msg, m);
	if (e != RETE_OK || le_out == NULL)
		rete__log_entry__free_unpacked(le, NULL);
	else
		*le_out = le;
	return e;
}

rete_err rete_evidence_scan_feed(rete_evidence_scan *sc, uint64_t index, const uint8_t *entry,
				 size_t len, bool *done, rete_msg *m)
{
	Rete__Message *msg = NULL;
	rete_err e;

	*done = sc->sc_delivered;
	if (sc->sc_delivered)
		return RETE_OK;
	if ((e = entry_decode(entry, len, NULL, NULL, &msg, m)) != RETE_OK) {
		rete_msg_prefix(m, "entry %" PRIu64, index);
		return e;
	}
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_DIRECTORY:
		e = buf_copy(&sc->sc_dir, entry, len);
		sc->sc_dir_index = index;
		break;
	case RETE__MESSAGE__BODY_REFERRAL:
	case RETE__MESSAGE__BODY_UPDATE:
	case RETE__MESSAGE__BODY_NOTE:
		if (sc->sc_found || strcmp(msg->sender, sc->sc_sender) != 0 ||
		    strcmp(msg->id, sc->sc_id) != 0)
			break;
		sc->sc_found = true;
		sc->sc_msg_index = index;
		sc->sc_msg_dir_index = sc->sc_dir_index;
		e = buf_copy(&sc->sc_msg, entry, len);
		if (e == RETE_OK && sc->sc_dir.len > 0)
			e = buf_copy(&sc->sc_msg_dir, sc->sc_dir.data, sc->sc_dir.len);
		break;
	case RETE__MESSAGE__BODY_DELIVERY:
		if (!sc->sc_found || msg->delivery->index != sc->sc_msg_index)
			break;
		sc->sc_delivered = true;
		sc->sc_dlv_index = index;
		sc->sc_dlv_dir_index = sc->sc_dir_index;
		e = buf_copy(&sc->sc_dlv, entry, len);
		if (e == RETE_OK && sc->sc_dir_index != sc->sc_msg_dir_index)
			e = buf_copy(&sc->sc_dlv_dir, sc->sc_dir.data, sc->sc_dir.len);
		break;
	case RETE__MESSAGE__BODY_NOTICE:
		if (sc->sc_found && msg->notice->index == sc->sc_msg_index &&
		    msg->notice->kind != RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE)
			snprintf(sc->sc_refused, sizeof(sc->sc_refused),
				 "entry %" PRIu64 " is a notice: %.240s", index,
				 msg->notice->text != NULL ? msg->notice->text : "");
		break;
	default:
		break;
	}
	rete__message__free_unpacked(msg, NULL);
	if (e != RETE_OK)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	*done = sc->sc_delivered;
	return RETE_OK;
}

static void buf_move(rete_buf *dst, rete_buf *src)
{
	rete_buf_free(dst);
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

bool rete_evidence_scan_found(const rete_evidence_scan *sc)
{
	return sc->sc_found;
}

rete_err rete_evidence_scan_take(rete_evidence_scan *sc, rete_evidence *ev, uint64_t idx[4],
				 uint64_t *last, rete_msg *m)
{
	if (!sc->sc_found)
		return rete_msg_set(m, RETE_ENOENT,
				    "the log has no message '%s' of %s (a referral, update or note "
				    "with that id and sender)",
				    sc->sc_id, sc->sc_sender);
	if (sc->sc_msg_dir.len == 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "message '%s' of %s (entry %" PRIu64
				    ") precedes every Directory "
				    "of the log: no key of its sender is logged",
				    sc->sc_id, sc->sc_sender, sc->sc_msg_index);
	if (!sc->sc_delivered)
		return rete_msg_set(m, RETE_ENOENT,
				    "message '%s' of %s (entry %" PRIu64 ") has no Delivery in the "
				    "log%s%s; export it once its recipient has acknowledged it",
				    sc->sc_id, sc->sc_sender, sc->sc_msg_index,
				    sc->sc_refused[0] ? ": " : " yet",
				    sc->sc_refused[0] ? sc->sc_refused : "");
	buf_move(&ev->message, &sc->sc_msg);
	buf_move(&ev->directory, &sc->sc_msg_dir);
	buf_move(&ev->delivery, &sc->sc_dlv);
	buf_move(&ev->delivery_directory, &sc->sc_dlv_dir);
	idx[0] = sc->sc_msg_index;
	idx[1] = sc->sc_msg_dir_index;
	idx[2] = sc->sc_dlv_index;
	idx[3] = sc->sc_dlv_dir_index;
	*last = sc->sc_dlv_index;
	return RETE_OK;
}

/* ---- from a store ---------------------------------------------------------------- */

/* note_sig_lines counts a note's signature lines (after its blank line). */
static unsigned note_sig_lines(const char *note)
{
	size_t len = strlen(note), body = rete_checkpoint_body_len(note, len);
	unsigned n = 0;
	if (body == len)
		return 0;
	for (const char *p = note + body + 1; *p != '\0'; p++)
		n += *p == '\n';
	return n;
}

/* sig_lines_named counts the note's signature lines named name (*others:
 * those named otherwise). */
static unsigned sig_lines_named(const char *note, const char *name, unsigned *others)
{
	size_t len = strlen(note), body = rete_checkpoint_body_len(note, len);
	size_t nl = strlen(name), dash = strlen("\xe2\x80\x94 ");
	unsigned n = 0;
	*others = 0;
	if (body == len)
		return 0;
	for (const char *p = note + body + 1; *p != '\0'; p = strchr(p, '\n') + 1) {
		if (strncmp(p + dash, name, nl) == 0 && p[dash + nl] == ' ')
			n++;
		else
			(*others)++;
	}
	return n;
}

/* strip_latest keeps only the log's own signature on *note (the latest
 * checkpoint's cosignatures are not what the bundle proves: the verifier
 * would have nothing to check them against). */
rete_err rete_evidence_strip_latest(char **note, rete_msg *m)
{
	rete_checkpoint cp;
	char *out = NULL;
	size_t len = 0;
	rete_err e;
	if ((e = rete_checkpoint_parse(*note, strlen(*note), &cp, m)) != RETE_OK ||
	    (e = rete_cosign_strip(*note, strlen(*note), cp.origin, &out, &len, m)) != RETE_OK)
		return e;
	free(*note);
	*note = out;
	return RETE_OK;
}

struct pick {
	rete_store *pk_store;
	rete_store_rtxn *pk_rt;
	uint64_t pk_size;
	char *pk_note;
	int pk_score;
};

/* pick_one keeps the best checkpoint: one with a time-stamp token first,
 * then the most signature lines (cosignatures), the smallest of equals. */
static int pick_one(void *ctx, uint64_t size, const char *note)
{
	struct pick *pk = ctx;
	rete_buf tok = {0};
	int score = (int)note_sig_lines(note);
	if (rete_store_timestamp_get(pk->pk_store, pk->pk_rt, size, &tok, NULL) == RETE_OK)
		score += 1000; /* a token first: trusted time */
	rete_buf_free(&tok);
	if (pk->pk_note == NULL || score > pk->pk_score) {
		char *copy = strdup(note);
		if (copy == NULL)
			return 1;
		free(pk->pk_note);
		pk->pk_note = copy;
		pk->pk_size = size;
		pk->pk_score = score;
	}
	return 0;
}

struct feed {
	rete_evidence_scan *fd_sc;
	rete_err fd_err;
	rete_msg *fd_m;
};

static int feed_one(void *ctx, uint64_t index, const uint8_t *entry, size_t len)
{
	struct feed *fd = ctx;
	bool done = false;
	fd->fd_err = rete_evidence_scan_feed(fd->fd_sc, index, entry, len, &done, fd->fd_m);
	return fd->fd_err != RETE_OK || done;
}

static rete_err store_proof(rete_store *s, rete_store_rtxn *rt, uint64_t index, uint64_t size,
			    rete_evidence_proof *p, rete_msg *m)
{
	uint8_t h[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	size_t n = 0;
	rete_err e = rete_store_inclusion_proof(s, rt, index, size, h, &n, m);
	if (e == RETE_OK && proof_set(p, (const uint8_t(*)[RETE_MERKLE_HASH])h, n) != RETE_OK)
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory");
	return e;
}

rete_err rete_evidence_from_store(rete_store *s, const char *sender, const char *id,
				  rete_evidence *ev, rete_msg *m)
{
	rete_evidence_scan *sc = NULL;
	rete_store_rtxn *rt = NULL;
	struct pick pk = {s, NULL, 0, NULL, -1};
	struct feed fd;
	uint64_t size = 0, idx[4], last = 0, lsize = 0;
	uint8_t h[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	size_t n = 0;
	rete_err e;

	memset(ev, 0, sizeof(*ev));
	if ((e = rete_evidence_scan_new(&sc, sender, id, m)) != RETE_OK)
		return e;
	if ((e = rete_store_read_begin(s, &rt, m)) != RETE_OK)
		goto out;
	pk.pk_rt = rt;
	if ((e = rete_store_size(s, rt, &size, m)) != RETE_OK)
		goto out;
	fd.fd_sc = sc;
	fd.fd_err = RETE_OK;
	fd.fd_m = m;
	if ((e = rete_store_entries_iter(s, rt, 0, size, feed_one, &fd, m)) != RETE_OK)
		goto out;
	if ((e = fd.fd_err) != RETE_OK)
		goto out;
	if ((e = rete_evidence_scan_take(sc, ev, idx, &last, m)) != RETE_OK)
		goto out;
	if ((e = rete_store_checkpoints_iter(s, rt, last + 1, pick_one, &pk, m)) != RETE_OK)
		goto out;
	if (pk.pk_note == NULL) {
		e = rete_msg_set(m, RETE_ENOENT,
				 "no stored checkpoint covers entry %" PRIu64 " (the delivery of "
				 "message '%s') yet; try again after the broker's next checkpoint",
				 last, id);
		goto out;
	}
	ev->checkpoint = pk.pk_note;
	pk.pk_note = NULL;
	if ((e = rete_evidence_keep_checkable(ev, m)) != RETE_OK)
		goto out;
	e = rete_store_timestamp_get(s, rt, pk.pk_size, &ev->timestamp, m);
	if (e != RETE_OK && e != RETE_ENOENT)
		goto out;
	if ((e = store_proof(s, rt, idx[0], pk.pk_size, &ev->message_proof, m)) != RETE_OK ||
	    (e = store_proof(s, rt, idx[1], pk.pk_size, &ev->directory_proof, m)) != RETE_OK ||
	    (e = store_proof(s, rt, idx[2], pk.pk_size, &ev->delivery_proof, m)) != RETE_OK)
		goto out;
	if (ev->delivery_directory.len > 0 &&
	    (e = store_proof(s, rt, idx[3], pk.pk_size, &ev->delivery_directory_proof, m)) !=
		RETE_OK)
		goto out;
	if ((e = rete_store_checkpoint_latest(s, rt, &lsize, &ev->latest, m)) != RETE_OK ||
	    (e = rete_evidence_strip_latest(&ev->latest, m)) != RETE_OK)
		goto out;
	if (lsize > pk.pk_size) {
		if ((e = rete_store_consistency_proof(s, rt, pk.pk_size, lsize, h, &n, m)) !=
		    RETE_OK)
			goto out;
		if (proof_set(&ev->consistency, (const uint8_t(*)[RETE_MERKLE_HASH])h, n) !=
		    RETE_OK)
			e = rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
out:
	rete_store_read_end(&rt);
	free(pk.pk_note);
	rete_evidence_scan_free(&sc);
	if (e != RETE_OK)
		rete_evidence_free(ev);
	return e;
}

/* ---- verification ------------------------------------------------------------------ */

/* A decoded log entry of the bundle. */
typedef struct ventry {
	Rete__LogEntry *le;
	Rete__SignedMessage *sm;
	Rete__Message *msg;
	uint8_t leaf[RETE_MERKLE_HASH];
} ventry;

static void ventry_free(ventry *v)
{
	if (v->le != NULL)
		rete__log_entry__free_unpacked(v->le, NULL);
	if (v->sm != NULL)
		rete__signed_message__free_unpacked(v->sm, NULL);
	if (v->msg != NULL)
		rete__message__free_unpacked(v->msg, NULL);
	memset(v, 0, sizeof(*v));
}

/* ventry_check decodes an entry of the bundle (what names it in sentences)
 * and proves it is in the checkpoint's tree. */
static rete_err ventry_check(ventry *v, const rete_buf *b, const rete_evidence_proof *p,
			     const rete_checkpoint *cp, const char *what, rete_msg *m)
{
	rete_merkle_elem el[RETE_MERKLE_MAX_PROOF];
	rete_err e;

	if ((e = entry_decode(b->data, b->len, &v->le, &v->sm, &v->msg, m)) != RETE_OK) {
		rete_msg_prefix(m, "the %s's log entry does not decode", what);
		return e;
	}
	rete_merkle_leaf_hash(v->leaf, b->data, b->len);
	for (size_t i = 0; i < p->n; i++) {
		el[i].data = p->h[i];
		el[i].len = RETE_MERKLE_HASH;
	}
	if (v->le->index >= cp->size)
		return rete_msg_set(m, RETE_EPROOF,
				    "the %s is entry %" PRIu64
				    ", outside the checkpoint of %" PRIu64 " entries",
				    what, v->le->index, cp->size);
	if ((e = rete_merkle_verify_inclusion(v->le->index, cp->size, v->leaf, RETE_MERKLE_HASH, el,
					      p->n, cp->root, RETE_MERKLE_HASH, m)) != RETE_OK) {
		rete_msg_prefix(m,
				"the %s (entry %" PRIu64 ") is not proven in the checkpoint of "
				"%" PRIu64 " entries",
				what, v->le->index, cp->size);
		return e;
	}
	if (v->msg->origin == NULL || strcmp(v->msg->origin, cp->origin) != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "the %s (entry %" PRIu64 ") is meant for the log '%.80s', not "
				    "'%s'",
				    what, v->le->index, v->msg->origin ? v->msg->origin : "",
				    cp->origin);
	return RETE_OK;
}

/* broker_entry checks that v is the broker's own body of kind body,
 * signed with the broker's key. */
static rete_err broker_entry(const ventry *v, Rete__Message__BodyCase body, const char *what,
			     const rete_pubkey *bk, rete_msg *m)
{
	rete_err e;
	if (v->msg->body_case != body)
		return rete_msg_set(m, RETE_EINVAL, "entry %" PRIu64 " is a %s, not a %s",
				    v->le->index, rete_message_kind(v->msg), what);
	if ((e = rete_signed_verify(v->sm, bk, m)) != RETE_OK) {
		rete_msg_set(m, e, "the %s (entry %" PRIu64 ") is not signed by the broker's key",
			     what, v->le->index);
		return e;
	}
	return RETE_OK;
}

/* party_key finds id's key in the Directory entry d. */
static rete_err party_key(const ventry *d, const char *id, rete_pubkey *pk, rete_msg *m)
{
	const Rete__Directory *dir = d->msg->directory;
	for (size_t i = 0; i < dir->n_parties; i++) {
		const Rete__Party *p = dir->parties[i];
		if (strcmp(p->id, id) != 0)
			continue;
		if (p->public_key.len != RETE_PK_LEN)
			return rete_msg_set(m, RETE_EINVAL,
					    "the directory (entry %" PRIu64
					    ") gives %s a key of %zu "
					    "bytes",
					    d->le->index, id, p->public_key.len);
		return rete_pubkey_from_ed(pk, p->public_key.data, m);
	}
	return rete_msg_set(m, RETE_ENOENT,
			    "%s is not a party of the directory in force (entry %" PRIu64 ")", id,
			    d->le->index);
}

rete_err rete_evidence_keep_checkable(rete_evidence *ev, rete_msg *m)
{
	const rete_buf *db =
	    ev->delivery_directory.len > 0 ? &ev->delivery_directory : &ev->directory;
	ventry d = {0};
	rete_checkpoint cp;
	char *out = NULL;
	size_t len = 0;
	rete_err e;

	if (ev->checkpoint == NULL || db->len == 0)
		return RETE_OK;
	if ((e = rete_checkpoint_parse(ev->checkpoint, strlen(ev->checkpoint), &cp, m)) !=
		RETE_OK ||
	    (e = rete_cosign_strip(ev->checkpoint, strlen(ev->checkpoint), cp.origin, &out, &len,
				   m)) != RETE_OK)
		return e;
	if (entry_decode(db->data, db->len, &d.le, &d.sm, &d.msg, NULL) != RETE_OK ||
	    d.msg->body_case != RETE__MESSAGE__BODY_DIRECTORY) {
		ventry_free(&d);
		free(out); /* verify names what is wrong with the directory */
		return RETE_OK;
	}
	const char *note = ev->checkpoint;
	const char *p = note + rete_checkpoint_body_len(note, strlen(note)) + 1; /* parsed */
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		const char *name = p + strlen("\xe2\x80\x94 ");
		const char *sp = memchr(name, ' ', (size_t)(nl - name));
		char id[RETE_ORIGIN_MAX + 1], line[1024];
		rete_pubkey pk;
		size_t llen = (size_t)(nl - p);

		snprintf(id, sizeof(id), "%.*s", (int)(sp - name), name);
		if (strcmp(id, cp.origin) != 0 && llen < sizeof(line) &&
		    party_key(&d, id, &pk, NULL) == RETE_OK &&
		    rete_cosign_verify(note, strlen(note), id, &pk, NULL, NULL) == RETE_OK) {
			char *next = NULL;
			memcpy(line, p, llen);
			line[llen] = '\0';
			if ((e = rete_cosign_add(out, len, line, &next, &len, m)) != RETE_OK) {
				free(out);
				ventry_free(&d);
				return e;
			}
			free(out);
			out = next;
		}
		p = nl + 1;
	}
	ventry_free(&d);
	free(ev->checkpoint);
	ev->checkpoint = out;
	return RETE_OK;
}

/* fail sets the part and passes e on. */
#define FAIL(p, expr)                                                                              \
	do {                                                                                       \
		if ((e = (expr)) != RETE_OK) {                                                     \
			*part = (p);                                                               \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

static rete_err check_ack(const ventry *dlv, const ventry *msg, const rete_pubkey *rk,
			  const char *origin, int64_t *acked_at, rete_msg *m)
{
	const Rete__SignedAck *sa = dlv->msg->delivery->ack;
	Rete__AckBody *ab = NULL;
	rete_err e;

	if (sa == NULL)
		return rete_msg_set(m, RETE_EBADSIG,
				    "the delivery (entry %" PRIu64 ") carries no acknowledgement "
				    "signed by the recipient: unsigned (logged before protocol 3); "
				    "it proves only the broker's word",
				    dlv->le->index);
	if ((e = rete_ack_verify(sa, rk, &ab, m)) != RETE_OK) {
		rete_msg_prefix(m,
				"the acknowledgement in the delivery (entry %" PRIu64 "), checked "
				"with %s's key in the directory in force at the delivery",
				dlv->le->index, msg->msg->recipient);
		return e;
	}
	if (strcmp(ab->origin, origin) != 0)
		e = rete_msg_set(m, RETE_EINVAL,
				 "the acknowledgement names the log '%.80s', not '%s'", ab->origin,
				 origin);
	else if (strcmp(ab->recipient, msg->msg->recipient) != 0)
		e = rete_msg_set(m, RETE_EINVAL,
				 "the acknowledgement is by '%.64s', not by the recipient %s",
				 ab->recipient, msg->msg->recipient);
	else if (ab->index != msg->le->index)
		e = rete_msg_set(m, RETE_EINVAL,
				 "the acknowledgement is of entry %" PRIu64 ", not %" PRIu64,
				 ab->index, msg->le->index);
	else if (ab->leaf_hash.len != RETE_MERKLE_HASH ||
		 memcmp(ab->leaf_hash.data, msg->leaf, RETE_MERKLE_HASH) != 0)
		e = rete_msg_set(m, RETE_EINVAL,
				 "the acknowledgement's leaf hash is not the message entry's: the "
				 "recipient acknowledged other bytes");
	else if (ab->error != 0)
		e = rete_msg_set(m, RETE_EINVAL,
				 "the recipient signed a refusal (error %d: %.200s), not a receipt",
				 (int)ab->error, ab->error_text);
	*acked_at = ab->acked_at;
	rete__ack_body__free_unpacked(ab, NULL);
	return e;
}

static rete_err check_timestamp(const rete_evidence *ev, const rete_evidence_opts *o,
				rete_evidence_facts *f, rete_msg *m)
{
	rete_tsa_info info;
	rete_err e;

	f->timestamped = ev->timestamp.len > 0;
	if (o->tsa_ca == NULL)
		return RETE_OK; /* told in the story: not checked */
	if (!f->timestamped)
		return rete_msg_set(m, RETE_ENOENT,
				    "the bundle has no time-stamp token over its checkpoint, and "
				    "--tsa-ca asks for one");
	e = rete_tsa_token_verify(ev->timestamp.data, ev->timestamp.len, ev->checkpoint,
				  strlen(ev->checkpoint), o->tsa_ca, &info, m);
	if (e != RETE_OK)
		return e;
	f->timestamp_trusted = true;
	f->timestamp_at = info.gen_time_ms;
	snprintf(f->tsa_name, sizeof(f->tsa_name), "%s", info.tsa_name);
	for (char *p = f->tsa_name; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return RETE_OK;
}

/* cosigner_add appends name to the facts' list of cosigners. */
static void cosigner_add(rete_evidence_facts *f, const char *name)
{
	size_t l = strlen(f->cosigners);
	snprintf(f->cosigners + l, sizeof(f->cosigners) - l, "%s%s", l > 0 ? ", " : "", name);
	f->cosigned++;
}

/* check_cosignatures: with a witness policy, its quorum must have cosigned
 * the checkpoint. And every signature line other than the broker's must be
 * a valid cosignature: of a witness of the policy (with its key there), or
 * of a party of the directory (with its directory key; the most recent
 * directory of the bundle). A line nobody can check is refused: the bundle
 * carries nothing unverified. */
static rete_err check_cosignatures(const rete_evidence *ev, const rete_evidence_opts *o,
				   const rete_checkpoint *cp, const ventry *dir,
				   rete_evidence_facts *f, rete_msg *m)
{
	const char *note = ev->checkpoint, *p;
	size_t len = strlen(note);
	rete_witness_policy *pol = NULL;
	rete_err e = RETE_OK;

	if (o->witnesses != NULL) {
		if ((e = rete_witness_policy_load(o->witnesses, &pol, m)) != RETE_OK) {
			rete_msg_prefix(m, "--witnesses");
			return e == RETE_ENOMEM ? e : RETE_EIO; /* a file the user gave */
		}
		f->witnesses = (unsigned)rete_witness_policy_count(pol);
		f->quorum = (unsigned)rete_witness_policy_quorum(pol);
		if ((e = rete_witness_policy_check(pol, note, len, m)) != RETE_OK)
			goto out;
	}
	/* the signature lines (the note was parsed strictly) */
	for (p = note + rete_checkpoint_body_len(note, len) + 1; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		const char *name = p + strlen("\xe2\x80\x94 ");
		const char *sp = memchr(name, ' ', (size_t)(nl - name));
		char id[RETE_ORIGIN_MAX + 1];
		const rete_pubkey *wk = NULL;
		rete_pubkey pk;
		unsigned n, others;

		p = nl + 1;
		snprintf(id, sizeof(id), "%.*s", (int)(sp - name), name);
		if (strcmp(id, cp->origin) == 0)
			continue; /* the broker's: rete_checkpoint_verify checked it */
		/* one line per party, as the broker keeps them: a second line of
		 * a name (a copy, another cosignature of it, or bytes under
		 * another key ID, which rete_cosign_verify passes over) would be
		 * counted twice or carried unchecked */
		if ((n = sig_lines_named(note, id, &others)) != 1) {
			e = rete_msg_set(m, RETE_EINVAL,
					 "the checkpoint carries %u signature lines of %s; a "
					 "party cosigns it on one line (the bundle was edited)",
					 n, id);
			goto out;
		}
		for (size_t i = 0; pol != NULL && i < rete_witness_policy_count(pol); i++)
			if (strcmp(rete_witness_policy_name(pol, i), id) == 0)
				wk = rete_witness_policy_key(pol, i);
		if (wk == NULL && party_key(dir, id, &pk, NULL) == RETE_OK)
			wk = &pk;
		if (wk == NULL) {
			e = rete_msg_set(
			    m, RETE_EBADSIG,
			    "the checkpoint carries a signature line of '%.64s', neither "
			    "the broker, a witness of the policy nor a party of the "
			    "directory: nothing can check it",
			    id);
			goto out;
		}
		if ((e = rete_cosign_verify(note, len, id, wk, NULL, m)) != RETE_OK) {
			rete_msg_prefix(m, "the cosignature of %s", id);
			if (e != RETE_EINVAL)
				e = RETE_EBADSIG;
			goto out;
		}
		if (pol == NULL)
			cosigner_add(f, id);
	}
	if (pol != NULL) {
		/* the story counts the policy's witnesses only */
		f->cosigned = 0;
		f->cosigners[0] = '\0';
		for (size_t i = 0; i < rete_witness_policy_count(pol); i++)
			if (rete_cosign_verify(note, len, rete_witness_policy_name(pol, i),
					       rete_witness_policy_key(pol, i), NULL,
					       NULL) == RETE_OK)
				cosigner_add(f, rete_witness_policy_name(pol, i));
	}
out:
	rete_witness_policy_free(&pol);
	return e;
}

/* fact copies a string of the log into the facts, control characters
 * shown as '?' (the story goes to a terminal). */
static void fact(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "");
	for (char *p = dst; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

rete_err rete_evidence_verify(const char *text, size_t len, const rete_evidence_opts *o,
			      rete_evidence_facts *facts, const char **part_out, rete_msg *m)
{
	rete_evidence ev;
	rete_evidence_facts fbuf;
	rete_evidence_facts *f = facts != NULL ? facts : &fbuf;
	const char *pbuf = NULL, **part = part_out != NULL ? part_out : &pbuf;
	rete_checkpoint cp, lp;
	ventry msg = {0}, dir = {0}, dlv = {0}, ddir = {0};
	const ventry *rdir = &dir;
	rete_pubkey sk, rk;
	rete_err e;

	memset(f, 0, sizeof(*f));
	*part = NULL;
	if ((e = rete_evidence_parse(text, len, &ev, part, m)) != RETE_OK)
		goto out;
	*part = NULL;

	/* the checkpoint everything leads to: the broker's */
	FAIL("checkpoint", rete_checkpoint_parse(ev.checkpoint, strlen(ev.checkpoint), &cp, m));
	FAIL("checkpoint", rete_checkpoint_verify(ev.checkpoint, strlen(ev.checkpoint), cp.origin,
						  &o->broker_key, &cp, m));
	{
		unsigned others, own = sig_lines_named(ev.checkpoint, cp.origin, &others);
		if (own != 1)
			FAIL("checkpoint",
			     rete_msg_set(m, RETE_EINVAL,
					  "the checkpoint carries %u signature lines of the "
					  "broker (%s); one is expected",
					  own, cp.origin));
	}
	snprintf(f->origin, sizeof(f->origin), "%s", cp.origin);
	f->checkpoint_size = cp.size;
	{
		char *r = rete_b64_encode(cp.root, RETE_MERKLE_HASH);
		snprintf(f->checkpoint_root, sizeof(f->checkpoint_root), "%s", r ? r : "");
		free(r);
	}

	/* the message: in the log */
	FAIL("message", ventry_check(&msg, &ev.message, &ev.message_proof, &cp, "message", m));
	if (msg.msg->body_case != RETE__MESSAGE__BODY_REFERRAL &&
	    msg.msg->body_case != RETE__MESSAGE__BODY_UPDATE &&
	    msg.msg->body_case != RETE__MESSAGE__BODY_NOTE)
		FAIL("message", rete_msg_set(m, RETE_EINVAL,
					     "entry %" PRIu64 " is a %s, not an agency's message",
					     msg.le->index, rete_message_kind(msg.msg)));

	/* the directory in force: the broker's, logged before it, naming the
	 * sender's key */
	FAIL("directory",
	     ventry_check(&dir, &ev.directory, &ev.directory_proof, &cp, "directory", m));
	FAIL("directory",
	     broker_entry(&dir, RETE__MESSAGE__BODY_DIRECTORY, "directory", &o->broker_key, m));
	if (dir.le->index >= msg.le->index)
		FAIL("directory", rete_msg_set(m, RETE_EINVAL,
					       "the directory is entry %" PRIu64 ", not before the "
					       "message (entry %" PRIu64 ")",
					       dir.le->index, msg.le->index));
	FAIL("directory", party_key(&dir, msg.msg->sender, &sk, m));

	/* the message: signed by its sender */
	if ((e = rete_signed_verify(msg.sm, &sk, m)) != RETE_OK) {
		*part = "message";
		rete_msg_set(m, e,
			     "the message (entry %" PRIu64 ") is not signed by %s's key in the "
			     "directory (entry %" PRIu64 ")",
			     msg.le->index, msg.msg->sender, dir.le->index);
		goto out;
	}
	fact(f->message_id, sizeof(f->message_id), msg.msg->id);
	fact(f->kind, sizeof(f->kind), rete_message_kind(msg.msg));
	fact(f->sender, sizeof(f->sender), msg.msg->sender);
	fact(f->recipient, sizeof(f->recipient), msg.msg->recipient);
	fact(f->case_id, sizeof(f->case_id), msg.msg->case_id);
	f->index = msg.le->index;
	f->created_at = msg.msg->created_at;
	f->logged_at = msg.le->logged_at;
	f->directory_index = dir.le->index;

	/* the delivery: the broker's, of this message, after it */
	FAIL("delivery", ventry_check(&dlv, &ev.delivery, &ev.delivery_proof, &cp, "delivery", m));
	FAIL("delivery",
	     broker_entry(&dlv, RETE__MESSAGE__BODY_DELIVERY, "delivery", &o->broker_key, m));
	if (dlv.le->index <= msg.le->index || dlv.msg->delivery->index != msg.le->index ||
	    strcmp(dlv.msg->delivery->message_id, msg.msg->id) != 0 ||
	    strcmp(dlv.msg->recipient, msg.msg->sender) != 0)
		FAIL("delivery",
		     rete_msg_set(m, RETE_EINVAL,
				  "the delivery (entry %" PRIu64 ") is of entry %" PRIu64
				  " ('%.80s', receipt to %.64s), not of the message (entry %" PRIu64
				  " '%.80s' of %s)",
				  dlv.le->index, dlv.msg->delivery->index,
				  dlv.msg->delivery->message_id, dlv.msg->recipient, msg.le->index,
				  msg.msg->id, msg.msg->sender));
	f->delivery_index = dlv.le->index;
	f->delivered_at = dlv.msg->delivery->delivered_at;
	f->delivery_directory_index = dir.le->index;
	if (ev.delivery_directory.len > 0) {
		FAIL("delivery",
		     ventry_check(&ddir, &ev.delivery_directory, &ev.delivery_directory_proof, &cp,
				  "directory at the delivery", m));
		FAIL("delivery", broker_entry(&ddir, RETE__MESSAGE__BODY_DIRECTORY, "directory",
					      &o->broker_key, m));
		if (ddir.le->index <= dir.le->index || ddir.le->index >= dlv.le->index)
			FAIL("delivery",
			     rete_msg_set(m, RETE_EINVAL,
					  "the directory at the delivery is entry %" PRIu64
					  ", not between the message's directory (entry %" PRIu64
					  ") and the delivery (entry %" PRIu64 ")",
					  ddir.le->index, dir.le->index, dlv.le->index));
		rdir = &ddir;
		f->delivery_directory_index = ddir.le->index;
	}

	/* the acknowledgement: signed by the recipient */
	FAIL("acknowledgement", party_key(rdir, msg.msg->recipient, &rk, m));
	FAIL("acknowledgement", check_ack(&dlv, &msg, &rk, cp.origin, &f->acked_at, m));

	/* trusted time, witnesses */
	FAIL("timestamp", check_timestamp(&ev, o, f, m));
	FAIL("cosignatures", check_cosignatures(&ev, o, &cp, rdir, f, m));

	/* the latest checkpoint extends it */
	FAIL("consistency", rete_checkpoint_verify(ev.latest, strlen(ev.latest), cp.origin,
						   &o->broker_key, &lp, m));
	{
		unsigned others, own = sig_lines_named(ev.latest, cp.origin, &others);
		if (own != 1 || others != 0)
			FAIL("consistency",
			     rete_msg_set(m, RETE_EINVAL,
					  "the latest checkpoint carries %u signature "
					  "lines; the bundle keeps only the broker's",
					  own + others));
	}
	f->latest_size = lp.size;
	if (lp.size < cp.size)
		FAIL("consistency", rete_msg_set(m, RETE_EPROOF,
						 "the latest checkpoint (%" PRIu64 " entries) is "
						 "smaller than the checkpoint (%" PRIu64 ")",
						 lp.size, cp.size));
	if (lp.size == cp.size) {
		if (memcmp(lp.root, cp.root, RETE_MERKLE_HASH) != 0 || ev.consistency.n != 0)
			FAIL("consistency", rete_msg_set(m, RETE_EPROOF,
							 "the latest checkpoint has the same size "
							 "as the checkpoint but another root (or a "
							 "proof)"));
	} else {
		rete_merkle_elem el[RETE_MERKLE_MAX_PROOF];
		for (size_t i = 0; i < ev.consistency.n; i++) {
			el[i].data = ev.consistency.h[i];
			el[i].len = RETE_MERKLE_HASH;
		}
		FAIL("consistency", rete_merkle_verify_consistency(
					cp.size, lp.size, cp.root, RETE_MERKLE_HASH, lp.root,
					RETE_MERKLE_HASH, el, ev.consistency.n, m));
	}
	e = RETE_OK;
out:
	ventry_free(&msg);
	ventry_free(&dir);
	ventry_free(&dlv);
	ventry_free(&ddir);
	rete_evidence_free(&ev);
	return e;
}

/* ---- the story -------------------------------------------------------------------- */

static const struct {
	const char *part, *en, *it;
} part_names[] = {
    {"form", "the bundle's form", "la forma del fascicolo"},
    {"checkpoint", "the checkpoint", "il checkpoint"},
    {"message", "the message", "il messaggio"},
    {"directory", "the directory (the sender's key)", "la directory (la chiave del mittente)"},
    {"delivery", "the delivery", "la consegna"},
    {"acknowledgement", "the recipient's acknowledgement",
     "la conferma di ricezione del destinatario"},
    {"timestamp", "the time stamp", "la marca temporale"},
    {"cosignatures", "the witnesses' cosignatures", "le cofirme dei testimoni"},
    {"consistency", "the consistency with the latest checkpoint",
     "la coerenza con l'ultimo checkpoint"},
};

const char *rete_evidence_part_name(const char *part, rete_evidence_lang lang)
{
	for (size_t i = 0; part != NULL && i < sizeof(part_names) / sizeof(part_names[0]); i++)
		if (strcmp(part_names[i].part, part) == 0)
			return lang == RETE_EVIDENCE_IT ? part_names[i].it : part_names[i].en;
	return part != NULL ? part : "?";
}

/* when formats a time for the story: UTC, to the second. */
static const char *when(int64_t ms, char buf[40])
{
	char t[32];
	rete_time_format(ms, t);
	/* 2026-12-06T09:12:03.123Z -> 2026-12-06 09:12:03 UTC */
	snprintf(buf, 40, "%.10s %.8s UTC", t, t + 11);
	return buf;
}

static const char *kind_it(const char *kind)
{
	if (strcmp(kind, "referral") == 0)
		return "invio (referral)";
	if (strcmp(kind, "update") == 0)
		return "aggiornamento";
	if (strcmp(kind, "note") == 0)
		return "nota";
	return kind;
}

/* span writes the length of ms (> 0) for the story: "2 h 05 min". */
static const char *span(int64_t ms, bool it, char buf[40])
{
	int64_t t = ms / 1000;
	if (t >= 86400)
		snprintf(buf, 40, "%" PRId64 " %s %" PRId64 " h", t / 86400,
			 it ? (t / 86400 == 1 ? "giorno" : "giorni")
			    : (t / 86400 == 1 ? "day" : "days"),
			 t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(buf, 40, "%" PRId64 " h %02" PRId64 " min", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, 40, "%" PRId64 " min %02" PRId64 " s", t / 60, t % 60);
	else
		snprintf(buf, 40, "%" PRId64 " s", t);
	return buf;
}

/* EVIDENCE_TSA_LATE_MS: a time-stamp later than the entry's loggedAt by
 * more than this is said (not a contradiction: the token may stamp a
 * checkpoint made that much later), docs/auditing.md "The times". */
#define EVIDENCE_TSA_LATE_MS (3600 * 1000)

/* story_clocks tells, in the story, where the bundle's own times
 * contradict each other beyond RETE_CLOCK_SKEW_MS (report s12, 6): the
 * RFC 3161 token stamps a checkpoint that covers the entry and its
 * delivery, so both existed at its time; a loggedAt later than it is the
 * broker's clock ahead (the TSA's time is the one to trust); the
 * recipient signed its acknowledgement before the broker logged the
 * delivery, so an ackedAt after the token, or far from the delivery's
 * time, is a clock that is wrong. Not a failure: every signature and proof
 * holds, only the times a clock gave do not (docs/auditing.md). */
static void story_clocks(FILE *s, const rete_evidence_facts *f, bool it)
{
	char a[40], b[40], d[40];
	bool tsa = f->timestamp_trusted;
	int64_t t = f->timestamp_at;

	if (tsa && f->logged_at > t + RETE_CLOCK_SKEW_MS)
		fprintf(
		    s,
		    it ? "ATTENZIONE, orologio del broker: la voce #%" PRIu64 " dice registrata "
			 "alle %s, %s dopo la marca temporale (%s) che la contiene già; fa fede "
			 "l'ora della TSA: l'orologio del broker era avanti di almeno %s\n"
		       : "WARNING, the broker's clock: entry #%" PRIu64 " says it was logged at "
			 "%s, %s after the time stamp (%s) that already covers it; trust the "
			 "TSA's time: the broker's clock was ahead by %s at least\n",
		    f->index, when(f->logged_at, a), span(f->logged_at - t, it, d), when(t, b), d);
	else if (tsa && t > f->logged_at + EVIDENCE_TSA_LATE_MS)
		fprintf(
		    s,
		    it ? "nota: la marca temporale (%s) è di %s dopo l'ora di registrazione "
			 "(%s): prova che la voce esisteva alle %s, non che sia stata registrata "
			 "prima; un checkpoint tanto successivo, o un orologio del broker "
			 "indietro di tanto, lo spiegano; per una data che deve reggere fa fede "
			 "la marca temporale\n"
		       : "note: the time stamp (%s) is %s after the time the entry was logged "
			 "(%s): it proves the entry existed at %s, not that it was logged "
			 "earlier; a checkpoint that much later, or a broker's clock that much "
			 "behind, explains it; for a date that must hold, take the time "
			 "stamp's\n",
		    when(t, a), span(t - f->logged_at, it, d), when(f->logged_at, b), a);
	if (tsa && f->delivered_at > t + RETE_CLOCK_SKEW_MS)
		fprintf(
		    s,
		    it ? "ATTENZIONE, orologio del broker: la consegna (voce #%" PRIu64 ") dice "
			 "registrata alle %s, %s dopo la marca temporale (%s) che la contiene "
			 "già; fa fede l'ora della TSA\n"
		       : "WARNING, the broker's clock: the delivery (entry #%" PRIu64 ") says it "
			 "was logged at %s, %s after the time stamp (%s) that already covers "
			 "it; trust the TSA's time\n",
		    f->delivery_index, when(f->delivered_at, a), span(f->delivered_at - t, it, d),
		    when(t, b));
	if (tsa && f->acked_at > t + RETE_CLOCK_SKEW_MS)
		fprintf(
		    s,
		    it ? "ATTENZIONE, orologio di %s: la conferma dice firmata alle %s, %s dopo "
			 "la marca temporale (%s) del checkpoint che contiene già la consegna; "
			 "fa fede l'ora della TSA\n"
		       : "WARNING, %s's clock: its acknowledgement says it was signed at %s, %s "
			 "after the time stamp (%s) of a checkpoint that already covers the "
			 "delivery; trust the TSA's time\n",
		    f->recipient, when(f->acked_at, a), span(f->acked_at - t, it, d), when(t, b));
	else if (f->acked_at > f->delivered_at + RETE_CLOCK_SKEW_MS ||
		 f->acked_at < f->delivered_at - RETE_CLOCK_SKEW_MS)
		fprintf(s,
			it ? "ATTENZIONE: %s ha firmato la conferma alle %s (il suo orologio), il "
			     "broker ha registrato la consegna alle %s (il suo): i due orologi "
			     "differiscono di %s; %s\n"
			   : "WARNING: %s signed its acknowledgement at %s (its clock), the broker "
			     "logged the delivery at %s (its own): the two clocks differ by %s; "
			     "%s\n",
			f->recipient, when(f->acked_at, a), when(f->delivered_at, b),
			span(f->acked_at > f->delivered_at ? f->acked_at - f->delivered_at
							   : f->delivered_at - f->acked_at,
			     it, d),
			tsa ? (it ? "fa fede l'ora della marca temporale"
				  : "trust the time stamp's time")
			    : (it ? "senza una marca temporale verificata nessuna delle due fa fede"
				  : "without a verified time stamp neither is evidence of when"));
}

char *rete_evidence_story(const rete_evidence_facts *f, rete_evidence_lang lang)
{
	char *out = NULL, a[40], b[40];
	size_t len = 0;
	FILE *s = open_memstream(&out, &len);
	bool it = lang == RETE_EVIDENCE_IT;

	if (s == NULL)
		return NULL;
	if (it) {
		fprintf(s,
			"%s '%s' (fascicolo %s) inviato da %s a %s, firmato con la sua chiave "
			"(directory, voce #%" PRIu64 ")\n",
			kind_it(f->kind), f->message_id, f->case_id[0] ? f->case_id : "-",
			f->sender, f->recipient, f->directory_index);
		fprintf(s, "registrato alle %s come voce #%" PRIu64 " del registro %s\n",
			when(f->logged_at, a), f->index, f->origin);
		fprintf(s, "nel checkpoint di %" PRIu64 " voci firmato dal broker (radice %s)\n",
			f->checkpoint_size, f->checkpoint_root);
		if (f->timestamp_trusted)
			fprintf(s,
				"marcato temporalmente da %s alle %s (token verificato con la CA "
				"indicata)\n",
				f->tsa_name, when(f->timestamp_at, a));
		else if (f->timestamped)
			fprintf(s, "con una marca temporale RFC 3161 non verificata (indicare "
				   "--tsa-ca CERT per verificarla)\n");
		else
			fprintf(s, "senza marca temporale\n");
		fprintf(s, "consegnato a %s: voce #%" PRIu64 ", registrata dal broker alle %s\n",
			f->recipient, f->delivery_index, when(f->delivered_at, a));
		fprintf(s,
			"ricezione confermata da %s alle %s (il suo orologio), con la sua firma "
			"(directory, voce #%" PRIu64 ")\n",
			f->recipient, when(f->acked_at, b), f->delivery_directory_index);
		if (f->witnesses > 0)
			fprintf(s, "cofirmato da %u di %u testimoni (ne servono %u): %s\n",
				f->cosigned, f->witnesses, f->quorum,
				f->cosigned ? f->cosigners : "nessuno");
		else if (f->cosigned > 0)
			fprintf(s,
				"cofirmato da %u enti della directory: %s (nessuna politica dei "
				"testimoni indicata)\n",
				f->cosigned, f->cosigners);
		else
			fprintf(s, "senza cofirme di testimoni\n");
		fprintf(s,
			"l'ultimo checkpoint (%" PRIu64 " voci) lo estende (prova di "
			"coerenza)\n",
			f->latest_size);
		story_clocks(s, f, true);
		fprintf(s, "la prova regge\n");
	} else {
		fprintf(s,
			"%s '%s' (case %s) sent by %s to %s, signed with its key (directory, "
			"entry #%" PRIu64 ")\n",
			f->kind, f->message_id, f->case_id[0] ? f->case_id : "-", f->sender,
			f->recipient, f->directory_index);
		fprintf(s, "logged at %s as entry #%" PRIu64 " of the log %s\n",
			when(f->logged_at, a), f->index, f->origin);
		fprintf(s,
			"in the checkpoint of %" PRIu64 " entries signed by the broker (root %s)\n",
			f->checkpoint_size, f->checkpoint_root);
		if (f->timestamp_trusted)
			fprintf(s,
				"timestamped by %s at %s (token verified against the CA given)\n",
				f->tsa_name, when(f->timestamp_at, a));
		else if (f->timestamped)
			fprintf(s, "with an RFC 3161 time stamp not checked (give --tsa-ca CERT to "
				   "check it)\n");
		else
			fprintf(s, "not timestamped\n");
		fprintf(s, "delivered to %s: entry #%" PRIu64 ", logged by the broker at %s\n",
			f->recipient, f->delivery_index, when(f->delivered_at, a));
		fprintf(s,
			"acknowledged by %s at %s (its own clock), signed with its key "
			"(directory, entry #%" PRIu64 ")\n",
			f->recipient, when(f->acked_at, b), f->delivery_directory_index);
		if (f->witnesses > 0)
			fprintf(s, "cosigned by %u of %u witnesses (%u needed): %s\n", f->cosigned,
				f->witnesses, f->quorum, f->cosigned ? f->cosigners : "none");
		else if (f->cosigned > 0)
			fprintf(s,
				"cosigned by %u parties of the directory: %s (no witness policy "
				"given)\n",
				f->cosigned, f->cosigners);
		else
			fprintf(s, "not cosigned by any witness\n");
		fprintf(s,
			"the latest checkpoint (%" PRIu64 " entries) extends it (consistency "
			"proof)\n",
			f->latest_size);
		story_clocks(s, f, false);
		fprintf(s, "the evidence holds\n");
	}
	if (fclose(s) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- the reasons in Italian ---------------------------------------------------------- */

/* The sentences rete_evidence_verify gives (its own, and those of the
 * checkpoint, proof, cosignature, decoding and time-stamp code it calls),
 * each with its Italian. In en, %s stands for any text kept as it is (a
 * name, a number, a hash), %r for a reason of its own, put in Italian in
 * turn; in it, %1 to %9 are those texts in the order of en. The first
 * that matches the whole sentence is taken: longer, more specific ones
 * first. %w, %k and %o are words of reason_words. */
static const struct {
	const char *en, *it;
} reason_it[] = {
    /* frames around another reason */
    {"the acknowledgement in the delivery (entry %s), checked with %s's key in the directory in "
     "force at the delivery: %r",
     "la conferma nella consegna (voce %1), verificata con la chiave di %2 nella directory in "
     "vigore alla consegna: %3"},
    {"the cosignature of %s: %r", "la cofirma di %1: %2"},
    {"the bundle: line %s, column %s: %s",
     "il pacchetto di prova non è JSON valido alla riga %1, colonna %2 (%3)"},
    {"the %w's log entry does not decode: %r", "la voce del registro per %1 non si decodifica: %2"},
    {"the time-stamp token: %r", "il token della marca temporale: %1"},
    {"SignedMessage.message: %r", "il messaggio firmato: %1"},
    /* files and usage (rete evidence verify, exit 2): the path as it is,
     * the system's detail said to be in English */
    {"--witnesses: %r", "--witnesses: %1"},
    {"cannot open the witness policy %s: %s",
     "non si può aprire la politica dei testimoni %1 (dettaglio tecnico, in inglese: %2)"},
    {"%s: witness policy line %s: %s",
     "%1, riga %2 della politica dei testimoni (dettaglio tecnico, in inglese: %3)"},
    {"cannot read the TSA CA certificates from '%s'; expected a PEM file with the CA that "
     "issued the TSA's certificate",
     "non si possono leggere i certificati della CA della TSA da '%1'; serve un file PEM con "
     "la CA che ha emesso il certificato della TSA"},
    {"key file %s looks like a secret key file (.key); a public key is wanted here: give the "
     "party's .pub (made beside it by rete keygen); the secret key never leaves its party",
     "il file di chiave %1 sembra una chiave segreta (.key); qui serve una chiave pubblica: "
     "date il file .pub della parte (creato accanto da rete keygen); la chiave segreta non "
     "lascia mai la sua parte"},
    {"cannot open key file %s: %s",
     "non si può aprire il file di chiave %1 (dettaglio tecnico, in inglese: %2)"},
    {"key file %s is not a regular file (a folder, device, pipe or socket); give the path of "
     "the key file",
     "il file di chiave %1 non è un file regolare (è una cartella, un dispositivo, una pipe o "
     "un socket); indicate il percorso del file di chiave"},
    {"the TSA CA certificates '%s' are not a regular file (a folder, device, pipe or socket); "
     "expected a PEM file with the CA that issued the TSA's certificate",
     "i certificati della CA della TSA '%1' non sono un file regolare (è una cartella, un "
     "dispositivo, una pipe o un socket); serve un file PEM con la CA che ha emesso il "
     "certificato della TSA"},
    {"cannot read the TSA CA certificates from '%s': %s",
     "non si possono leggere i certificati della CA della TSA da '%1' (dettaglio tecnico, in "
     "inglese: %2)"},
    {"%s is not a regular file of at most 16 MiB",
     "%1 non è un file regolare di al massimo 16 MiB"},
    {"cannot read %s: %s", "non si può leggere %1 (dettaglio tecnico, in inglese: %2)"},
    /* the bundle's form */
    {"an evidence bundle needs the message, the directory, the delivery, a checkpoint and the "
     "latest checkpoint",
     "un pacchetto di prova deve contenere il messaggio, la directory, la consegna, un "
     "checkpoint e l'ultimo checkpoint"},
    {"the bundle is %s bytes; an evidence bundle is at most %s",
     "il pacchetto di prova è di %1 byte; al massimo ne può avere %2"},
    {"the bundle is not a JSON object", "il pacchetto di prova non è un oggetto JSON"},
    {"the bundle's members are not in the order rete evidence export writes them: \"%s\" comes "
     "after \"%s\" (it was edited)",
     "le parti del pacchetto non sono nell'ordine in cui le scrive rete evidence export: "
     "\"%1\" viene dopo \"%2\" (è stato modificato)"},
    {"the bundle has an unknown key \"%s\"; a %s bundle has only %s",
     "il pacchetto ha una chiave sconosciuta \"%1\"; un pacchetto %2 ha solo %3"},
    {"the bundle has no \"%s\"", "il pacchetto non ha \"%1\""},
    {"\"%s\" is not standard base64 of some bytes", "\"%1\" non è base64 standard"},
    {"\"%s\" is not an array", "\"%1\" non è un array"},
    {"\"%s\" is not a string", "\"%1\" non è una stringa"},
    {"the format is not \"%s\"", "il formato non è \"%1\""},
    {"the bundle is not in the layout rete evidence export writes (it differs at byte %s): it "
     "was edited",
     "il pacchetto non è nella forma in cui lo scrive rete evidence export (differisce al byte "
     "%1): è stato modificato"},
    {"hash %s of \"%s\" is not 32 bytes of base64",
     "l'hash %1 di \"%2\" non è di 32 byte in base64"},
    {"deliveryDirectory and deliveryDirectoryProof come together",
     "deliveryDirectory e deliveryDirectoryProof vanno insieme"},
    /* the entries and their proofs */
    {"the %w is entry %s, outside the checkpoint of %s entries",
     "%1 è la voce %2, fuori dal checkpoint di %3 voci"},
    {"the %w (entry %s) is meant for the log '%s', not '%s'",
     "%1 (voce %2) è per il registro '%3', non per '%4'"},
    {"the %w (entry %s) is not proven in the checkpoint of %s entries: %r",
     "%1 (voce %2) non risulta nel checkpoint di %3 voci: %4"},
    {"the %w (entry %s) is not proven in the checkpoint of %s entries",
     "%1 (voce %2) non risulta nel checkpoint di %3 voci"},
    {"the %w (entry %s) is not signed by the broker's key: %r",
     "%1 (voce %2) non porta la firma del broker: %3"},
    {"the %w (entry %s) is not signed by the broker's key",
     "%1 (voce %2) non porta la firma del broker"},
    {"entry %s is a %k, not an agency's message", "la voce %1 è %2, non il messaggio di un ente"},
    {"entry %s is a %k, not a %k", "la voce %1 è %2, non %3"},
    {"the directory (entry %s) gives %s a key of %s bytes",
     "la directory (voce %1) dà a %2 una chiave di %3 byte"},
    {"%s is not a party of the directory in force (entry %s)",
     "%1 non è un ente della directory in vigore (voce %2)"},
    {"the directory is entry %s, not before the message (entry %s)",
     "la directory è la voce %1, non precede il messaggio (voce %2)"},
    {"the message (entry %s) is not signed by %s's key in the directory (entry %s)",
     "il messaggio (voce %1) non è firmato con la chiave di %2 nella directory (voce %3)"},
    {"the delivery (entry %s) is of entry %s ('%s', receipt to %s), not of the message (entry %s "
     "'%s' of %s)",
     "la consegna (voce %1) è della voce %2 ('%3', ricevuta a %4), non del messaggio (voce %5 "
     "'%6' di %7)"},
    {"the directory at the delivery is entry %s, not between the message's directory (entry %s) "
     "and the delivery (entry %s)",
     "la directory alla consegna è la voce %1, non tra la directory del messaggio (voce %2) e "
     "la consegna (voce %3)"},
    /* the acknowledgement */
    {"the delivery (entry %s) carries no acknowledgement signed by the recipient: unsigned "
     "(logged before protocol 3); it proves only the broker's word",
     "la consegna (voce %1) non porta una conferma firmata dal destinatario: senza firma "
     "(registrata prima del protocollo 3); prova solo la parola del broker"},
    {"the acknowledgement names the log '%s', not '%s'",
     "la conferma nomina il registro '%1', non '%2'"},
    {"the acknowledgement is by '%s', not by the recipient %s",
     "la conferma è di '%1', non del destinatario %2"},
    {"the acknowledgement is of entry %s, not %s", "la conferma è della voce %1, non della %2"},
    {"the acknowledgement's leaf hash is not the message entry's: the recipient acknowledged "
     "other bytes",
     "l'hash della foglia nella conferma non è quello della voce del messaggio: il "
     "destinatario ha confermato altri byte"},
    {"the recipient signed a refusal (error %s: %s), not a receipt",
     "il destinatario ha firmato un rifiuto (errore %1, con le sue parole: '%2'), non una "
     "ricevuta"},
    {"the %o's signature does not verify with the recipient's key: it was signed by another "
     "key, or its body was altered",
     "la firma %1 non è valida con la chiave del destinatario: è stata fatta con un'altra "
     "chiave, o il contenuto è stato alterato"},
    {"the %o's signature does not verify with the sender's key: it was signed by another key, "
     "or its body was altered",
     "la firma %1 non è valida con la chiave del mittente: è stata fatta con un'altra chiave, o "
     "il contenuto è stato alterato"},
    {"the %o's signature does not verify with %s's key: it was signed by another key, or its "
     "body was altered",
     "la firma %1 non è valida con la chiave di %2: è stata fatta con un'altra chiave, o il "
     "contenuto è stato alterato"},
    {"the %o's signature is %s bytes; an Ed25519 signature is %s bytes",
     "la firma %1 è di %2 byte; una firma Ed25519 è di %3 byte"},
    {"the message signature does not verify with the sender's public key",
     "la firma del messaggio non è valida con la chiave pubblica del mittente"},
    {"signature is %s bytes; an Ed25519 signature is %s bytes",
     "la firma è di %1 byte; una firma Ed25519 è di %2 byte"},
    {"the signature does not verify", "la firma non è valida"},
    {"the signature is not by %s", "la firma non è di %1"},
    /* the checkpoint and the cosignatures */
    {"the checkpoint carries %s signature lines of the broker (%s); one is expected",
     "il checkpoint porta %1 righe di firma del broker (%2); ne è attesa una"},
    {"the checkpoint carries %s signature lines of %s; a party cosigns it on one line (the "
     "bundle was edited)",
     "il checkpoint porta %1 righe di firma di %2; un ente lo cofirma su una riga sola (il "
     "pacchetto è stato modificato)"},
    {"the checkpoint carries a signature line of '%s', neither the broker, a witness of the "
     "policy nor a party of the directory: nothing can check it",
     "il checkpoint porta una riga di firma di '%1', che non è il broker, né un testimone "
     "della politica, né un ente della directory: nessuno può verificarla"},
    {"the latest checkpoint carries %s signature lines; the bundle keeps only the broker's",
     "l'ultimo checkpoint porta %1 righe di firma; il pacchetto tiene solo quella del broker"},
    {"the latest checkpoint (%s entries) is smaller than the checkpoint (%s)",
     "l'ultimo checkpoint (%1 voci) è più piccolo del checkpoint (%2)"},
    {"the latest checkpoint has the same size as the checkpoint but another root (or a proof)",
     "l'ultimo checkpoint ha la stessa dimensione del checkpoint ma un'altra radice (o una "
     "prova)"},
    {"checkpoint for '%s' at size %s carries no signature by key '%s' (key ID %s)",
     "il checkpoint di '%1' a %2 voci non porta una firma della chiave '%3' (ID chiave %4)"},
    {"checkpoint for '%s' at size %s: the signature by key '%s' does not verify",
     "il checkpoint di '%1' a %2 voci: la firma della chiave '%3' non è valida"},
    {"checkpoint line %s (%w) '%s' is not the standard base64 of exactly %s bytes",
     "la riga %1 del checkpoint (%2) '%3' non è il base64 standard di esattamente %4 byte"},
    {"checkpoint line %s (%w) '%s' is not a decimal number",
     "la riga %1 del checkpoint (%2) '%3' non è un numero decimale"},
    {"checkpoint line %s (%w) '%s' has a leading zero; the size is decimal without leading "
     "zeroes",
     "la riga %1 del checkpoint (%2) '%3' ha uno zero iniziale; la dimensione si scrive in "
     "decimale senza zeri iniziali"},
    {"checkpoint line %s (%w) '%s' is larger than %s",
     "la riga %1 del checkpoint (%2) '%3' supera %4"},
    {"checkpoint line %s (%w) is %s bytes; at most %s are accepted",
     "la riga %1 del checkpoint (%2) è di %3 byte; ne sono accettati al massimo %4"},
    {"checkpoint line %s is empty; the first three lines are origin, tree size and root hash",
     "la riga %1 del checkpoint è vuota; le prime tre righe sono l'origine, la dimensione "
     "dell'albero e la radice"},
    {"checkpoint line %s is empty; extension lines must not be empty",
     "la riga %1 del checkpoint è vuota; le righe di estensione non possono essere vuote"},
    {"checkpoint line %s: '%s' is not an epoch line; expected 'epoch N' with N a decimal number "
     ">= 2",
     "la riga %1 del checkpoint: '%2' non è una riga di epoca; attesa 'epoch N' con N un numero "
     "decimale >= 2"},
    {"note line %s '%s' is not a signature line; after the last blank line every line must be "
     "%s",
     "la riga %1 della nota '%2' non è una riga di firma; dopo l'ultima riga vuota ogni riga "
     "deve essere %3"},
    {"note line %s '%s': a signature line needs a key name, a space and the base64 signature",
     "la riga %1 della nota '%2': una riga di firma vuole il nome di una chiave, uno spazio e "
     "la firma in base64"},
    {"note line %s: the signature '%s' is not standard base64 (with padding) of a key ID and a "
     "signature",
     "la riga %1 della nota: la firma '%2' non è base64 standard (con riempimento) di un ID "
     "chiave e di una firma"},
    {"note line %s: the key name '%s' %r", "la riga %1 della nota: il nome di chiave '%2' %3"},
    {"the key name '%s' %r", "il nome di chiave '%1' %2"},
    {"checkpoint origin '%s' %r; the origin is also the key name: non-empty, at most %s bytes, "
     "printable, no spaces, no '+'",
     "l'origine del checkpoint '%1' %2; l'origine è anche il nome della chiave: non vuoto, al "
     "massimo %3 byte, stampabile, senza spazi né '+'"},
    /* what is wrong with a key name (store/checkpoint.c) */
    {"is empty", "è vuoto"},
    {"is longer than %s bytes", "è più lungo di %1 byte"},
    {"has a control character or invalid UTF-8", "ha un carattere di controllo o UTF-8 non valido"},
    {"contains a space", "contiene uno spazio"},
    {"contains '+'", "contiene '+'"},
    {"the checkpoint note is empty", "la nota del checkpoint è vuota"},
    {"the checkpoint note does not end with a newline",
     "la nota del checkpoint non termina con un a capo"},
    {"the checkpoint note has no signature lines after its blank line",
     "la nota del checkpoint non ha righe di firma dopo la riga vuota"},
    {"the checkpoint note has a control character or invalid UTF-8 at byte %s ('%s'); only "
     "UTF-8 text and newlines are allowed",
     "la nota del checkpoint ha un carattere di controllo o UTF-8 non valido al byte %1 ('%2'); "
     "sono ammessi solo testo UTF-8 e a capo"},
    {"the checkpoint note has a control character or invalid UTF-8 at byte %s",
     "la nota del checkpoint ha un carattere di controllo o UTF-8 non valido al byte %1"},
    {"the checkpoint note has more than %s signature lines",
     "la nota del checkpoint ha più di %1 righe di firma"},
    {"the checkpoint's line named '%s' is not a cosignature by its key (cosignature key ID %s)",
     "la riga del checkpoint di '%1' non è una cofirma della sua chiave (ID chiave %2)"},
    {"the cosignature of '%s' (time %s) does not verify over this checkpoint",
     "la cofirma di '%1' (ora %2) non è valida per questo checkpoint"},
    {"the checkpoint carries no cosignature of '%s'", "il checkpoint non porta cofirme di '%1'"},
    {"%s of %s required witnesses cosigned (need %s): missing %s; invalid %s",
     "hanno cofirmato %1 dei %2 testimoni richiesti (ne servono %3): mancano %4; non valide %5"},
    {"%s of %s required witnesses cosigned (need %s): missing %s",
     "hanno cofirmato %1 dei %2 testimoni richiesti (ne servono %3): mancano %4"},
    {"%s of %s required witnesses cosigned (need %s): invalid %s",
     "hanno cofirmato %1 dei %2 testimoni richiesti (ne servono %3): non valide %4"},
    {"%s of %s required witnesses cosigned (need %s)",
     "hanno cofirmato %1 dei %2 testimoni richiesti (ne servono %3)"},
    /* the Merkle proofs */
    {"inclusion proof for leaf %s in a tree of %s: computed root %s differs from the "
     "checkpoint's root %s",
     "prova di inclusione della foglia %1 in un albero di %2: la radice calcolata %3 differisce "
     "da quella del checkpoint %4"},
    {"inclusion proof for leaf %s in a tree of %s ends below the root (too few hashes)",
     "prova di inclusione della foglia %1 in un albero di %2: finisce sotto la radice (troppo "
     "pochi hash)"},
    {"inclusion proof for leaf %s in a tree of %s has hashes beyond the root (from hash %s on)",
     "prova di inclusione della foglia %1 in un albero di %2: ha hash oltre la radice (dal %3 "
     "in poi)"},
    {"consistency proof from size %s to %s: computed old root %s differs from the given old root "
     "%s",
     "prova di coerenza da %1 a %2 voci: la radice vecchia calcolata %3 differisce da quella "
     "data %4"},
    {"consistency proof from size %s to %s: computed new root %s differs from the given new root "
     "%s",
     "prova di coerenza da %1 a %2 voci: la radice nuova calcolata %3 differisce da quella data "
     "%4"},
    {"inclusion proof for leaf %s in a tree of size 0: the empty tree has no leaves",
     "prova di inclusione della foglia %1 in un albero vuoto: un albero vuoto non ha foglie"},
    {"inclusion proof for leaf %s in a tree of size %s: the index must be below the size",
     "prova di inclusione della foglia %1 in un albero di %2: l'indice deve essere minore della "
     "dimensione"},
    {"inclusion proof: the leaf hash is %s bytes; a leaf hash is %s",
     "prova di inclusione: l'hash della foglia è di %1 byte; deve essere di %2"},
    {"inclusion proof: hash %s is %s bytes; every hash must be %s",
     "prova di inclusione: l'hash %1 è di %2 byte; ogni hash deve essere di %3"},
    {"inclusion proof has %s hashes; a proof for leaf %s in a tree of %s needs %s",
     "la prova di inclusione ha %1 hash; per la foglia %2 in un albero di %3 ne servono %4"},
    {"inclusion proof: the root is %s bytes; a root is %s",
     "prova di inclusione: la radice è di %1 byte; deve essere di %2"},
    {"consistency proof from size 0 to %s: a proof from the empty tree proves nothing; the old "
     "size must be at least 1",
     "prova di coerenza da 0 a %1 voci: una prova dall'albero vuoto non prova nulla; la "
     "dimensione vecchia deve essere almeno 1"},
    {"consistency proof from size %s to %s: the new size must not be smaller than the old one",
     "prova di coerenza da %1 a %2 voci: la dimensione nuova non può essere minore della "
     "vecchia"},
    {"consistency at size %s: the two roots differ (%s, %s); a tree of one size has one root",
     "coerenza a %1 voci: le due radici differiscono (%2, %3); un albero di una dimensione ha "
     "una sola radice"},
    {"consistency proof: hash %s is %s bytes; every hash must be %s",
     "prova di coerenza: l'hash %1 è di %2 byte; ogni hash deve essere di %3"},
    {"consistency proof has %s hashes; a proof from size %s to %s needs %s",
     "la prova di coerenza ha %1 hash; da %2 a %3 voci ne servono %4"},
    {"consistency proof: the roots are %s and %s bytes; a root is %s",
     "prova di coerenza: le radici sono di %1 e %2 byte; una radice è di %3"},
    {"consistency proof from size %s to %s ends below the root (too few hashes)",
     "prova di coerenza da %1 a %2 voci: finisce sotto la radice (troppo pochi hash)"},
    {"consistency proof from size %s to %s has hashes beyond the root (from hash %s on)",
     "prova di coerenza da %1 a %2 voci: ha hash oltre la radice (dal %3 in poi)"},
    {"consistency proof from size %s to %s is empty%s",
     "prova di coerenza da %1 a %2 voci: è vuota"},
    {"consistency proof between equal sizes %s has %s hashes%s",
     "prova di coerenza tra dimensioni uguali (%1): ha %2 hash"},
    /* decoding */
    {"%s bytes are not a valid %s (protobuf decoding failed: truncated, wrong wire type or "
     "malformed field)",
     "%1 byte non sono un %2 valido (decodifica protobuf fallita: troncato, tipo errato o "
     "campo malformato)"},
    {"field %s is not valid UTF-8 (%s); strings must be UTF-8 without NUL",
     "il campo %1 non è UTF-8 valido (%2); le stringhe devono essere UTF-8 senza NUL"},
    /* the time stamp */
    {"the bundle has no time-stamp token over its checkpoint, and --tsa-ca asks for one",
     "il pacchetto non ha un token di marca temporale sul suo checkpoint, e --tsa-ca lo "
     "richiede"},
    {"the time-stamp token is not a DER TimeStampToken (%s bytes); expected a CMS SignedData "
     "over a TSTInfo",
     "il token della marca temporale non è un TimeStampToken DER (%1 byte); atteso un CMS "
     "SignedData su un TSTInfo"},
    {"the time-stamp token is not a CMS SignedData",
     "il token della marca temporale non è un CMS SignedData"},
    {"the time-stamp token does not carry a TSTInfo (%s); expected the content type "
     "id-ct-TSTInfo, not detached",
     "il token della marca temporale non porta un TSTInfo (%1); atteso il tipo di contenuto "
     "id-ct-TSTInfo, non separato"},
    {"the time-stamp token stamps the hash %s, not this note's %s: it is the token of another "
     "note",
     "il token della marca temporale marca l'hash %1, non quello di questa nota %2: è il token "
     "di un'altra nota"},
    {"the time-stamp token stamps a hash made with %s; rete stamps SHA-256",
     "il token della marca temporale marca un hash fatto con %1; rete marca SHA-256"},
    {"its signature does not verify against the CA in %s: %s; accepted: a token signed by a TSA "
     "certificate with the critical extendedKeyUsage timeStamping that this CA issued",
     "la sua firma non è valida rispetto alla CA in %1 (%2); è accettato un token firmato da un "
     "certificato TSA con l'extendedKeyUsage critico timeStamping emesso da questa CA"},
    {"its certificate %s is not signed by the CA file's certificates or the token's own; "
     "accepted: the TSA's certificate and its chain, unchanged",
     "il suo certificato %1 non è firmato dai certificati del file della CA né da quelli del "
     "token; sono accettati il certificato della TSA e la sua catena, invariati"},
    {"its digest algorithm %s has parameters; expected none or NULL",
     "il suo algoritmo di hash %1 ha parametri; attesi nessuno o NULL"},
    {"its signer names its signature algorithm with parameters; expected none or NULL",
     "il firmatario indica il suo algoritmo di firma con parametri; attesi nessuno o NULL"},
    {"its signer info has version %s; expected 1",
     "le informazioni del firmatario hanno la versione %1; attesa la 1"},
    {"its TSTInfo has version %s; expected 1", "il suo TSTInfo ha la versione %1; attesa la 1"},
    {"the time-stamp token is empty; expected a DER TimeStampToken",
     "il token della marca temporale è vuoto; atteso un TimeStampToken DER"},
    {"the time-stamp token is not in DER's one encoding (it re-encodes to %s bytes, not %s); "
     "expected the token exactly as the TSA signed it",
     "il token della marca temporale non è nell'unica codifica DER (ricodificato è di %1 byte, "
     "non %2); atteso il token esattamente come la TSA lo ha firmato"},
    {"the time-stamp token is a SignedData of version %s; expected 1 or 3",
     "il token della marca temporale è un SignedData della versione %1; attese la 1 o la 3"},
    {"the time-stamp token has %s signers; a time-stamp token has exactly one",
     "il token della marca temporale ha %1 firmatari; ne deve avere esattamente uno"},
    {"the checkpoint note has no blank line; a signed note is text, a blank line, then "
     "signature lines",
     "la nota del checkpoint non ha una riga vuota; una nota firmata è testo, una riga vuota, "
     "poi le righe di firma"},
    {"the checkpoint note has no text before its blank line; a signed note is text, a blank "
     "line, then signature lines",
     "la nota del checkpoint non ha testo prima della riga vuota; una nota firmata è testo, una "
     "riga vuota, poi le righe di firma"},
    {"the checkpoint has %s text lines; it needs origin, tree size and root hash (3 lines)",
     "il checkpoint ha %1 righe di testo; ne servono 3: origine, dimensione dell'albero e "
     "radice"},
    {"%s carries field number %s, which the schema does not define; unknown fields are refused",
     "%1 porta il campo numero %2, che lo schema non definisce; i campi sconosciuti sono "
     "rifiutati"},
    {"%s is not in canonical form: it re-encodes to %s bytes instead of the %s received (a "
     "string with an embedded NUL, a duplicated or overlong field, or an explicit default "
     "value); send each field once, in the shortest encoding",
     "%1 non è in forma canonica: ricodificato è di %2 byte invece dei %3 ricevuti (una "
     "stringa con un NUL, un campo ripetuto o troppo lungo, o un valore predefinito esplicito)"},
    {"its genTime is not a valid GeneralizedTime (YYYYMMDDhhmmss[.f]Z)",
     "il suo genTime non è un GeneralizedTime valido (AAAAMMGGhhmmss[.f]Z)"},
    {"its signer info %r; accepted: SHA-256, SHA-384 or SHA-512 with the signature algorithm "
     "of the TSA's key",
     "le informazioni del firmatario: %1; sono accettati SHA-256, SHA-384 o SHA-512 con "
     "l'algoritmo di firma della chiave della TSA"},
    {"names a signature algorithm for another kind of key",
     "indicano un algoritmo di firma per un altro tipo di chiave"},
    {"names a signature algorithm for another digest",
     "indicano un algoritmo di firma per un altro hash"},
    {"uses a digest other than SHA-2", "usano un hash diverso da SHA-2"},
    {"names no signer certificate", "non indicano il certificato del firmatario"},
    {"its signer names its digest algorithm with parameters; expected none or NULL",
     "il firmatario indica il suo algoritmo di hash con parametri; attesi nessuno o NULL"},
};

/* The words the sentences put in for %w (the part: "the message"), %k (a
 * kind of entry: "a referral") and %o ("of the message"), in Italian. */
static const struct {
	const char *en, *the, *a, *of;
} reason_words[] = {
    {"message", "il messaggio", "un messaggio", "del messaggio"},
    {"directory", "la directory", "una directory", "della directory"},
    {"delivery", "la consegna", "una consegna", "della consegna"},
    {"directory at the delivery", "la directory alla consegna", "una directory",
     "della directory alla consegna"},
    {"acknowledgement", "la conferma", "una conferma", "della conferma"},
    {"referral", "l'invio", "un invio (referral)", "dell'invio"},
    {"update", "l'aggiornamento", "un aggiornamento", "dell'aggiornamento"},
    {"note", "la nota", "una nota", "della nota"},
    {"notice", "l'avviso", "un avviso del broker", "dell'avviso"},
    {"checkpoint", "il checkpoint", "un checkpoint", "del checkpoint"},
    {"epoch", "il cambio di epoca", "un cambio di epoca", "del cambio di epoca"},
    /* the checkpoint's three lines */
    {"origin", "origine", "un'origine", "dell'origine"},
    {"tree size", "dimensione dell'albero", "una dimensione", "della dimensione"},
    {"root hash", "radice", "una radice", "della radice"},
};

static bool reason_hole(const char *p)
{
	return p[0] == '%' && p[1] != '\0' && strchr("srwko", p[1]) != NULL;
}

/* reason_match matches s against the pattern p (see reason_it), setting
 * the texts of its %s, %r, %w and %k (at most 9) */
static bool reason_match(const char *p, const char *s, const char **cap, size_t *len, size_t nc)
{
	while (*p != '\0') {
		if (reason_hole(p)) {
			if (nc >= 9)
				return false;
			/* the shortest text that lets the rest match */
			for (size_t k = 0;; k++) {
				cap[nc] = s;
				len[nc] = k;
				if (reason_match(p + 2, s + k, cap, len, nc + 1))
					return true;
				if (s[k] == '\0')
					return false;
			}
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

/* reason_put appends the Italian of reason (len bytes) to out; false when
 * some of it had none */
static bool reason_put(FILE *out, const char *reason, size_t len, int depth)
{
	char *s = strndup(reason, len);
	const char *cap[9];
	size_t clen[9];
	bool all = true;

	if (s == NULL)
		return false;
	for (size_t i = 0; depth < 4 && i < sizeof(reason_it) / sizeof(reason_it[0]); i++) {
		if (!reason_match(reason_it[i].en, s, cap, clen, 0))
			continue;
		/* what each capture is: s, r, w or k */
		char sub[9] = {0};
		size_t k = 0;
		for (const char *p = reason_it[i].en; *p != '\0'; p++)
			if (reason_hole(p))
				sub[k++] = p[1];
		for (const char *t = reason_it[i].it; *t != '\0'; t++) {
			if (t[0] == '%' && t[1] >= '1' && t[1] <= '9' && (size_t)(t[1] - '1') < k) {
				size_t c = (size_t)(t[1] - '1'), w;
				for (w = 0; w < sizeof(reason_words) / sizeof(reason_words[0]); w++)
					if (strlen(reason_words[w].en) == clen[c] &&
					    strncmp(reason_words[w].en, cap[c], clen[c]) == 0)
						break;
				bool known = w < sizeof(reason_words) / sizeof(reason_words[0]);
				if (sub[c] == 'r')
					all = reason_put(out, cap[c], clen[c], depth + 1) && all;
				else if (sub[c] != 's' && known)
					fputs(sub[c] == 'w'   ? reason_words[w].the
					      : sub[c] == 'o' ? reason_words[w].of
							      : reason_words[w].a,
					      out);
				else
					fwrite(cap[c], 1, clen[c], out);
				all = all && (sub[c] == 's' || sub[c] == 'r' || known);
				t++;
			} else {
				fputc(*t, out);
			}
		}
		free(s);
		return all;
	}
	/* none: the detail as it is, said to be in English */
	fprintf(out, "dettaglio tecnico, in inglese: %s", s);
	free(s);
	return false;
}

bool rete_evidence_reason(const char *reason, rete_evidence_lang lang, char *buf, size_t n)
{
	char *text = NULL;
	size_t len = 0;
	bool all;
	FILE *f;

	if (lang != RETE_EVIDENCE_IT || (f = open_memstream(&text, &len)) == NULL) {
		snprintf(buf, n, "%s", reason);
		return lang != RETE_EVIDENCE_IT;
	}
	all = reason_put(f, reason, strlen(reason), 0);
	if (fclose(f) != 0 || text == NULL) {
		free(text);
		snprintf(buf, n, "%s", reason);
		return false;
	}
	snprintf(buf, n, "%s", text);
	free(text);
	return all;
}
