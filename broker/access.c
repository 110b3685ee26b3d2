/* access.c — the broker's access record: each remote read of the log it
 * serves (entries, inclusion and consistency proofs, a referral, the
 * snapshot), by whom, in [broker] access_log (default DATA.access.log,
 * beside the store folder like the state file: a restore replaces the
 * folder, and the record must outlive it), kept [broker] access_keep
 * (default 24 months). See store/access_log.h for the format.
 *
 * The broker writes the line before it answers, without an fsync of its
 * own (the checkpoints' and the store's syncs follow within seconds): a
 * query per agent per witness interval must not wait for a disk flush.
 * The file is opened at the first query; a failure to write is said in
 * the broker's log once per problem and does not stop the answer (the
 * broker's log line of the failure is then the record).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "access_log.h"
#include "broker_impl.h"
#include "log.h"

void broker_access_query(broker *b, broker_frame *f)
{
	const Rete__Query *q = f->cf->query;
	char what[300];
	rete_msg m = {{0}};

	switch (q->what_case) {
	case RETE__QUERY__WHAT_ENTRIES:
		snprintf(what, sizeof(what), "entries from %" PRIu64 " (up to %" PRIu64 ")",
			 q->entries->from, q->entries->count);
		break;
	case RETE__QUERY__WHAT_INCLUSION:
		snprintf(what, sizeof(what),
			 "inclusion proof of entry %" PRIu64 " (size %" PRIu64 ")",
			 q->inclusion->index, q->inclusion->tree_size);
		break;
	case RETE__QUERY__WHAT_CONSISTENCY:
		snprintf(what, sizeof(what), "consistency proof %" PRIu64 " to %" PRIu64,
			 q->consistency->size1, q->consistency->size2);
		break;
	case RETE__QUERY__WHAT_REFERRAL:
		snprintf(what, sizeof(what), "referral %.200s",
			 q->referral->referral_id ? q->referral->referral_id : "");
		broker_utf8_clean(what);
		break;
	case RETE__QUERY__WHAT_SNAPSHOT:
		snprintf(what, sizeof(what), "snapshot of the referrals");
		break;
	default:
		return; /* health, checkpoints, time-stamps, cosignatures: no entry read */
	}
	if (b->cfg->access_log == NULL)
		return;
	if (b->access == NULL && !b->access_failed) {
		if (rete_access_log_open(b->cfg->access_log, b->cfg->access_keep, false, &b->access,
					 &m) != RETE_OK) {
			b->access_failed = true;
			broker_log_error("access record: %s", m.text);
			return;
		}
	}
	if (b->access == NULL)
		return;
	rete_access_rec r = {.program = "rete-broker", .who = f->party, .what = what};
	if (rete_access_log_add(b->access, &r, &m) != RETE_OK) {
		if (!b->access_failed)
			broker_log_error("access record: %s", m.text);
		b->access_failed = true;
	} else {
		b->access_failed = false;
	}
}
