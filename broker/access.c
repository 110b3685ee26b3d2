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
 * line is written. Deliveries matter more than reads: a record the broker
 * cannot write (a folder the broker may not write, a full disk, or a
 * mistake: a folder, one of its own files) stops neither the start nor a
 * reload. A read whose line cannot be written is refused to the client
 * ("this read was not made"), and the next read tries again (the file is
 * opened anew on every append), so reads are served again as soon as the
 * record can be written. Every change, failing or working again, is said
 * in the broker's log at once; a repeated refusal is counted and said at
 * most once a minute (a client can ask again at will), by the next line
 * (a refusal after the minute, the record working again, a reload) or at
 * the stop: every refused read is said or counted. The window is the
 * HELLO lines' (proto/ratelimit.h, rete_ratewin).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <string.h>

#include "access_log.h"
#include "broker_impl.h"
#include "log.h"

static int64_t access_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ACCESS_WINDOW_MS: a refusal repeated within it is counted, not logged
 * (a client can ask again at will); a change of state is logged at once. */
#define ACCESS_WINDOW_MS (60 * 1000)

/* access_held_text writes " (N more read(s) refused WHEN)" for the
 * refusals b's window held back and takes them (nothing when none) into
 * buf (n bytes). */
static const char *access_held_text(broker *b, const char *when, char *buf, size_t n)
{
	uint64_t held = rete_ratewin_flush(&b->access_win);
	buf[0] = '\0';
	if (held > 0)
		snprintf(buf, n, " (%" PRIu64 " more read%s refused %s)", held,
			 held == 1 ? " was" : "s were", when);
	return buf;
}

/* access_failing: the record cannot be written from now on. The line that
 * says so (now) opens b's window: the refusals within it are counted, and
 * said by the next line (broker_access_query, _move, _flush). While the
 * record works the window is closed (access_held_text took it). */
static void access_failing(broker *b)
{
	uint64_t held;
	b->access_failed = true;
	rete_ratewin_admit(&b->access_win, ACCESS_WINDOW_MS, access_mono_ms(), &held);
}

/* access_open opens the record at path into b->access, unless path is a
 * mistake no write may follow (a folder, one of the broker's own files:
 * the record would write over the state file). */
static rete_err access_open(broker *b, const char *path, rete_msg *m)
{
	char why[PATH_MAX + 256];
	bool mistake;
	if (broker_access_log_bad(b->cfg, path, why, sizeof(why), &mistake) != NULL && mistake)
		return rete_msg_set(m, RETE_EINVAL, "%s", why);
	return rete_access_log_open(path, b->cfg->access_keep, false, &b->access, m);
}

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
		err = access_open(b, b->cfg->access_log, &m);
	if (err == RETE_OK) {
		rete_access_rec r = {.program = "rete-broker", .who = f->party, .what = what};
		err = rete_access_log_add(b->access, &r, &m);
	}
	char more[96] = "";
	if (err != RETE_OK) {
		uint64_t held = 0;
		if (!b->access_failed)
			access_failing(b); /* a change: said at once */
		else if (!rete_ratewin_admit(&b->access_win, ACCESS_WINDOW_MS, access_mono_ms(),
					     &held))
			return false; /* a repeat within the window: counted */
		if (held > 0)
			snprintf(more, sizeof(more),
				 " (%" PRIu64 " more refused since the last line)", held);
		broker_log_error("access record: %s; reads refused: the read of %s (%s) was "
				 "not made, and no read is until the record can be written "
				 "again%s",
				 m.text, f->party, what, more);
		return false;
	}
	if (b->access_failed)
		broker_log_info("access record: %s is written again; reads are served%s",
				b->cfg->access_log,
				access_held_text(b, "since the last line", more, sizeof(more)));
	b->access_failed = false;
	return true;
}

void broker_access_open(broker *b)
{
	rete_msg m;
	if (b->cfg->access_log == NULL || b->access != NULL)
		return;
	if (access_open(b, b->cfg->access_log, &m) == RETE_OK)
		return;
	broker_log_error("access record: %s; reads refused: the broker starts (deliveries go on), "
			 "but refuses every remote read of the log (\"this read was not made\") "
			 "until it can write the record: each read tries again",
			 m.text);
	access_failing(b);
}

void broker_access_move(broker *b, const char *path)
{
	rete_msg m;
	char more[96];
	rete_access_log_close(&b->access);
	if (access_open(b, path, &m) == RETE_OK) {
		if (b->access_failed)
			broker_log_info(
			    "access record: %s is written; reads are served%s", path,
			    access_held_text(b, "before the reload", more, sizeof(more)));
		b->access_failed = false;
		return;
	}
	broker_log_warn("reload: access record: %s; reads refused: the reload goes on, but every "
			"remote read of the log is refused until the record can be written%s",
			m.text, access_held_text(b, "before the reload", more, sizeof(more)));
	access_failing(b);
}

void broker_access_flush(broker *b)
{
	uint64_t held = rete_ratewin_flush(&b->access_win);
	if (held > 0)
		broker_log_error("access record: %" PRIu64
				 " more read%s refused since the last line "
				 "(the record %s could not be written)",
				 held, held == 1 ? " was" : "s were", b->cfg->access_log);
}
