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
 * The record is an accountability promise: a read is served only once its
 * line is written. The file is opened at the start (a broker that cannot
 * open it does not start); a read whose line cannot be written is refused
 * to the client, and the next read tries again (the file is opened anew
 * on every append), so reads are served again as soon as the record can
 * be written. The failure is said in the broker's log at most once a
 * minute (a client can ask again at will), and the recovery once.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "access_log.h"
#include "broker_impl.h"
#include "log.h"

bool broker_access_query(broker *b, broker_frame *f)
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
		return true; /* health, checkpoints, time-stamps, cosignatures: no entry read */
	}
	if (b->cfg->access_log == NULL)
		return true; /* not a running broker's configuration: none is without one */
	rete_err err = RETE_OK;
	if (b->access == NULL)
		err = rete_access_log_open(b->cfg->access_log, b->cfg->access_keep, false,
					   &b->access, &m);
	if (err == RETE_OK) {
		rete_access_rec r = {.program = "rete-broker", .who = f->party, .what = what};
		err = rete_access_log_add(b->access, &r, &m);
	}
	if (err != RETE_OK) {
		b->access_failed = true;
		broker_log_limited(RETE_LOG_ERROR,
				   "reads refused: the access record cannot be written",
				   "access record: %s; the read of %s (%s) was refused, and every "
				   "read is until the record can be written again",
				   m.text, f->party, what);
		return false;
	}
	if (b->access_failed)
		broker_log_info("access record: %s is written again; reads are served",
				b->cfg->access_log);
	b->access_failed = false;
	return true;
}

rete_err broker_access_open(broker *b, rete_msg *m)
{
	if (b->cfg->access_log == NULL || b->access != NULL)
		return RETE_OK;
	return rete_access_log_open(b->cfg->access_log, b->cfg->access_keep, false, &b->access, m);
}
