/* agent_track.h — the agency's own view of its referrals, for `rete status`.
 *
 * From what the agent sends (once receipted) and what it receives (once
 * written to the inbox) it keeps, per referral, one JSON record in its
 * store (agent_db, database "referrals"):
 *
 *   {"id", "role": "requester"|"performer", "requester", "performer",
 *    "service", "priority", "caseId", "status", "businessStatus",
 *    "statusReason", "outcome", "overdue", "lastIndex", "updatedAt",
 *    "history": [{"index", "at", "kind", "status", "businessStatus",
 *                 "statusReason", "outcome", "by", "messageId", "text"}]}
 *
 * The broker's projection stays the authoritative one (`rete status`
 * queries it when it can); this record is what the agency can show when
 * the broker cannot be reached. Applying the same log entry twice changes
 * nothing (history entries are keyed by log index and kind).
 */
#ifndef RETE_AGENT_TRACK_H
#define RETE_AGENT_TRACK_H

#include <jansson.h>
#include <stdint.h>

#include "agent_db.h"
#include "codec.h"
#include "error.h"

/* agent_track_apply records msg (borrowed), logged at `index` and
 * `logged_at`, in the referral it concerns; me is the agency's own id. Runs
 * in the caller's open transaction, if any. Messages that concern no
 * referral (directory, a case note without referral) change nothing.
 * RETE_ESTORE, RETE_EFULL, RETE_ENOMEM. */
rete_err agent_track_apply(agent_db *db, const char *me, const Rete__Message *msg, uint64_t index,
			   int64_t logged_at, rete_msg *m);

/* agent_track_moved: our message msg (borrowed), recorded at log index
 * `was` (of log epoch was_epoch), was receipted again at `index` (epoch
 * `epoch`) after a restore of the broker's store lost that entry: its
 * history item names the new index and time, keeping "previousIndex",
 * "previousEpoch" and "previousAt"; the referral's "index" and
 * "lastIndex" follow when they named it. Nothing when the record has no
 * such item. In the caller's open transaction, if any. RETE_ESTORE,
 * RETE_EFULL, RETE_ENOMEM. */
rete_err agent_track_moved(agent_db *db, const Rete__Message *msg, uint64_t was, uint32_t was_epoch,
			   uint64_t index, int64_t logged_at, uint32_t epoch, rete_msg *m);

/* agent_track_withdrawn: message msgid (of referral refid), delivered to
 * this agency at log `index` and written to its inbox, had been withdrawn
 * by the broker (by) at its expiry before that (the broker refused our ACK,
 * EXPIRED): a history item of kind "withdrawn" with notice
 * "withdrawn-at-expiry" and text, and, when msgid is the referral itself,
 * the referral failed (as its sender has it). Applying it twice changes
 * nothing. In the caller's open transaction, if any. RETE_ENOENT (no
 * record), RETE_ESTORE, RETE_EFULL, RETE_ENOMEM. */
rete_err agent_track_withdrawn(agent_db *db, const char *refid, const char *msgid, const char *by,
			       uint64_t index, int64_t at, const char *text, rete_msg *m);

/* agent_track_get returns the record of one referral as a new JSON
 * reference in *out. RETE_ENOENT, RETE_ECORRUPT, RETE_ESTORE. */
rete_err agent_track_get(agent_db *db, const char *referral_id, json_t **out, rete_msg *m);

/* agent_track_all returns every record, in referral id order, as a new
 * JSON array in *out. RETE_ESTORE, RETE_ENOMEM. */
rete_err agent_track_all(agent_db *db, json_t **out, rete_msg *m);

/* agent_undelivered: one message this agency sent that the broker receipted
 * and that is still held by its agent: no delivery receipt yet, no final
 * refusal, no not-delivered notice (agent_db.h, "held"). The strings are
 * owned by the array (agent_track_undelivered_free). */
typedef struct agent_undelivered {
	char *id;	      /* the message id */
	char *referral;	      /* the referral it concerns ("" when none) */
	const char *kind;     /* "referral", "update", "note"... (static) */
	uint64_t index;	      /* log index of its latest receipt */
	int64_t receipted_at; /* the loggedAt of its receipt, or this machine's
				 time of receipt ("receivedAt") when earlier
				 (Unix ms; 0 when not known): the latest
				 receipt, as the broker's expiry runs */
	int64_t logged_at;    /* the loggedAt of its receipt (0: not known) */
	char *file;	      /* the outbox file it was sent as: its receipt is
				 sent/FILE.receipt.json (NULL when not known) */
} agent_undelivered;

/* agent_track_undelivered lists the held messages (above) in *out, *n
 * (malloc'd: agent_track_undelivered_free), in message id order. Outside
 * any write transaction. A held record that does not parse is left out (the
 * agent says it where it uses it). RETE_ESTORE, RETE_ENOMEM. */
rete_err agent_track_undelivered(agent_db *db, agent_undelivered **out, size_t *n, rete_msg *m);

/* agent_track_undelivered_free frees what agent_track_undelivered gave. */
void agent_track_undelivered_free(agent_undelivered *u, size_t n);

/* agent_track_expiry: the expiry of undelivered messages in the directory
 * the agent holds (meta "dir_expiry", written by the agent), in ms; 0 when
 * it has recorded none (no directory yet, or an agent older than it). */
int64_t agent_track_expiry(agent_db *db);

/* agent_track_span writes a length of time ms as a person reads it ("6d
 * 3h", "5d", "2h 15m", "4m 10s", "12s": the smaller unit left out when 0)
 * into buf and returns buf. */
char *agent_track_span(int64_t ms, char buf[32]);

#endif
