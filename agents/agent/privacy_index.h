/* privacy_index.h — the agency's keyed index of the persons its sealed
 * parts concerned, for subject-access answers (`rete sar`).
 *
 * For each message the agent sealed (outbox) or opened (inbox), one JSON
 * line in DATA/persons.jsonl says which persons the sealed part named,
 * as keyed pseudonyms only: HMAC-SHA-256, under a key only this agency
 * holds (DATA/privacy.key: 32 random bytes made at the agent's first
 * start, mode 0600, never logged or printed), of the fiscal code (upper
 * case, spaces removed) and of the person's id in the case system. Without
 * the key the index says nothing about anyone (a code cannot be tested
 * against it); with it, the agency answers for one person alone, never for
 * the whole family of a case (an update or note whose sealed part names
 * nobody, or has none, takes the persons of its referral, "via":"referral"):
 *
 *   {"at":MS,"persons":["<hex>",...],"dir":"sent","sender":S,"recipient":R,
 *    "id":ID,"kind":"referral","referral":REF,"case":CASE,"file":NAME}
 *   {"at":MS,"persons":[...],"dir":"received",...,"index":N,"loggedAt":MS,
 *    "file":INBOX_NAME}
 *   {"at":MS,"dir":"sent","sender":S,"id":ID,"file":USED,"filed":true}
 *   {"at":MS,"delivered":ID,"sender":S,"recipient":R,"index":N,
 *    "deliveryIndex":N,"deliveredAt":MS}
 *
 * The "filed" kind records the name one of our messages took in sent/ at
 * its receipt (NAME, or NAME.2... when sent/ held a NAME), for every
 * message, naming someone or not; the last kind records the broker's
 * Delivery entry for one of our messages (from the log, delivered to us
 * as its sender). Lines are appended, and synced many at once: until
 * then the agent keeps them in its store (agent_db.h, "persons"), with the
 * event each records, and appends them again at its start if a stop took
 * them (privacy_index_merge; rete sar reads them there too). Records past the retention
 * ([privacy] keep_records) are dropped by rewriting the file atomically
 * (all lines of one message together, counted from its latest line: its
 * delivery), except those the caller says must stay (privacy_pending:
 * the message still held, or a file a line names still kept).
 */
#ifndef RETE_PRIVACY_INDEX_H
#define RETE_PRIVACY_INDEX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access_log.h"
#include "codec.h"
#include "error.h"

#define PRIVACY_KEY_LEN	   32
#define PRIVACY_MAC_HEX	   65 /* 64 hex digits and the NUL */
#define PRIVACY_KEY_FILE   "privacy.key"
#define PRIVACY_INDEX_FILE "persons.jsonl"

/* privacy_key: the agency's index key, in sodium_malloc'd memory. */
typedef struct privacy_key {
	uint8_t k[PRIVACY_KEY_LEN];
} privacy_key;

/* privacy_key_load loads DATA/privacy.key into *out (sodium_malloc'd; the
 * caller frees it with privacy_key_free); with create, a missing key is
 * made (random, 0600, written durably). A key file readable by others is
 * refused. Errors: RETE_ENOENT (missing, !create: m says the agent makes
 * it at its first start), RETE_EPERM, RETE_EIO, RETE_ENOMEM. */
rete_err privacy_key_load(const char *data, bool create, privacy_key **out, rete_msg *m);

/* privacy_key_free wipes and frees *k; NULL is fine. */
void privacy_key_free(privacy_key **k);

/* privacy_fiscal_norm writes code as the index keys it (spaces dropped,
 * upper case) into out (n bytes, NUL-terminated, cut short at n - 1) and
 * returns the length of the whole normalised code (as snprintf does). */
size_t privacy_fiscal_norm(const char *code, char *out, size_t n);

/* privacy_mac_fiscal writes the hex pseudonym of a fiscal code (upper case,
 * spaces dropped) into out; privacy_mac_person_id that of a person id
 * (as written). false when the value is empty. */
bool privacy_mac_fiscal(const privacy_key *k, const char *code, char out[PRIVACY_MAC_HEX]);
bool privacy_mac_person_id(const privacy_key *k, const char *id, char out[PRIVACY_MAC_HEX]);

/* privacy_persons returns the JSON array of the pseudonyms of the persons
 * priv names (new reference; an empty array when none). A person id is
 * the id in the case system of the agency that wrote it: system NULL for
 * ours (what we sealed), the sender's party id for what we opened, whose
 * person ids get a pseudonym of that agency's own (another agency's
 * "P-0042" is not ours, and never answers a --person-id of ours). */
json_t *privacy_persons(const privacy_key *k, const Rete__Private *priv, const char *system);

/* privacy_index_append appends one line (rec, borrowed; "at" set to now
 * when absent) to DATA/persons.jsonl durably. RETE_EIO, RETE_ENOMEM. */
rete_err privacy_index_append(const char *data, json_t *rec, rete_msg *m);

/* privacy_index_line: the text of rec as one line of the index (its
 * newline included; "at" set to now when absent), malloc'd; NULL when out
 * of memory. */
char *privacy_index_line(json_t *rec);

/* privacy_index_write appends text (len bytes of whole lines) to
 * DATA/persons.jsonl, ending first a line a crash cut short; with sync,
 * durably (fdatasync; len 0 syncs what was appended before). RETE_EIO. */
rete_err privacy_index_write(const char *data, const char *text, size_t len, bool sync,
			     rete_msg *m);

/* privacy_index_load reads every line of DATA/persons.jsonl into a new
 * array (*out, the caller's; a missing file gives an empty array; a line
 * that does not parse, e.g. one cut by a crash, is skipped).
 * RETE_EIO, RETE_ENOMEM. */
rete_err privacy_index_load(const char *data, json_t **out, rete_msg *m);

/* privacy_index_merge appends to lines (as privacy_index_load gives them)
 * each line of texts (an array of JSON strings, each one line's text) it
 * does not hold yet, and to added (may be NULL) its text; returns how many.
 * For the lines the agent keeps in its store until the file is synced. */
size_t privacy_index_merge(json_t *lines, json_t *texts, json_t *added);

/* privacy_pending: must the message of index line (borrowed) stay, though
 * the line is older than the retention: still waiting for its delivery
 * (its retention has not started), or a file it names still held? */
typedef bool (*privacy_pending)(void *ctx, json_t *line);

/* privacy_index_prune drops the records of messages whose latest line is
 * older than keep at now_ms, except those of which pending (may be NULL)
 * says a line older than that must stay, rewriting the file atomically; *erased
 * (a new array, may be NULL) lists the message ids dropped ("sender/id").
 * RETE_EIO, RETE_ENOMEM. */
rete_err privacy_index_prune(const char *data, rete_keep keep, int64_t now_ms,
			     privacy_pending pending, void *ctx, json_t **erased, rete_msg *m);

/* privacy_journal: the lines the agent keeps in its store until the index
 * is synced (agent_db.h "persons": 8-byte big-endian sequence number ->
 * one line's text), as privacy_journal_collect gathers them
 * (agent_db_each): texts, in order, and the sequence number after the
 * last. */
struct privacy_journal {
	json_t *texts;
	uint64_t next;
};
bool privacy_journal_collect(const void *key, size_t klen, const void *val, size_t vlen,
			     void *user);

/* privacy_file_regular: is dir/name a regular file (name one component,
 * no '/')? */
bool privacy_file_regular(const char *dir, const char *name);

/* privacy_companion_id: the messageId of dir/NAME+suffix, the answer the
 * agent wrote beside a spool file (NAME.receipt.json, NAME.error.json);
 * malloc'd, NULL when there is none. */
char *privacy_companion_id(const char *dir, const char *name, const char *suffix);

/* privacy_file_is_copy: is dir/name a regular file whose companion
 * (name+suffix) names message id, i.e. the agency's copy of it? */
bool privacy_file_is_copy(const char *dir, const char *name, const char *suffix, const char *id);

#endif
