/* query.c — answers to QUERY: a referral's status, the monitors' snapshot,
 * the broker's health, log entries by range, the latest checkpoint, and
 * inclusion and consistency proofs.
 *
 * Who may ask what: a referral's requester and performer may read it; the
 * snapshot, health and raw entries are for coordinators and auditors (they
 * hold only metadata: the log never holds personal data), except the
 * broker's own Epoch entries, which an agency may read too (its witness
 * checks a declared restore); checkpoints and proofs are for everyone,
 * since every agent is a witness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "broker_impl.h"
#include "checkpoint.h"
#include "cosign.h"
#include "duration.h"
#include "json.h"
#include "log.h"
#include "version.h"

#define HEALTH_QUEUE_AGE_MS (3600 * 1000) /* undelivered for an hour: a problem */

static bool is_overseer(const broker_party *p)
{
	return p->kind == RETE__PARTY_KIND__PARTY_KIND_COORDINATOR ||
	       p->kind == RETE__PARTY_KIND__PARTY_KIND_AUDITOR;
}

static void answer(broker *b, broker_frame *f, Rete__QueryResult *r)
{
	r->request_id = f->cf->query->request_id;
	Rete__BrokerFrame bf;
	rete__broker_frame__init(&bf);
	bf.command_case = RETE__BROKER_FRAME__COMMAND_RESULT;
	bf.result = r;
	broker_send(b, f->rid, f->rid_len, &bf);
}

static void answer_error(broker *b, broker_frame *f, Rete__ErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void answer_error(broker *b, broker_frame *f, Rete__ErrorCode code, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	broker_utf8_clean(text);
	Rete__QueryResult r;
	rete__query_result__init(&r);
	r.error = code;
	r.error_text = text;
	answer(b, f, &r);
}

static bool deny_unless_overseer(broker *b, broker_frame *f, const char *what)
{
	if (is_overseer(f->who))
		return false;
	answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_AUTHORIZED,
		     "%s is for coordinators and auditors; %s is a %s", what, f->party,
		     broker_kind_name(f->who->kind));
	return true;
}

void broker_agency_health(broker *b, rete_store_rtxn *rt, const broker_party *p,
			  Rete__AgencyHealth *h)
{
	rete__agency_health__init(h);
	h->id = (char *)p->id;
	int64_t oldest = 0;
	rete_store_queue_depth(b->store, rt, p->id, &h->queue_depth, &oldest, NULL);
	h->oldest_undelivered_at = oldest;
	broker_peer *peer = broker_peer_find(b, p->id);
	if (peer) {
		h->last_seen_at = peer->last_seen_ms;
		h->connected = peer->nconns > 0 &&
			       rete_now_ms() - peer->last_seen_ms < 3 * b->cfg->heartbeat_ms;
	}
}

/* agencies_fill makes the AgencyHealth list (array owned by the caller). */
static Rete__AgencyHealth **agencies_fill(broker *b, rete_store_rtxn *rt,
					  Rete__AgencyHealth **store, size_t *n)
{
	const broker_config *c = b->cfg;
	Rete__AgencyHealth *hs = calloc(c->nparties ? c->nparties : 1, sizeof(*hs));
	Rete__AgencyHealth **ptrs = calloc(c->nparties ? c->nparties : 1, sizeof(*ptrs));
	*n = 0;
	*store = hs;
	if (!hs || !ptrs) {
		free(ptrs);
		return NULL;
	}
	for (size_t i = 0; i < c->nparties; i++) {
		if (!broker_kind_is_agency(c->parties[i].kind))
			continue;
		broker_agency_health(b, rt, &c->parties[i], &hs[*n]);
		ptrs[*n] = &hs[*n];
		(*n)++;
	}
	return ptrs;
}

/* health_room adds to problems[np..max) what the map and the disk say
 * (map_err, disk_err: why a figure could not be read, NULL when it was);
 * returns the new count. A figure that could not be read is a problem of
 * its own, never taken for 0: 0 bytes free is a full disk, the worst case
 * of all (every submission refused as "storage full"). */
static size_t health_room(const Rete__Health *h, const char *map_err, const char *disk_err,
			  char **problems, size_t np, size_t max)
{
	const uint64_t low = (uint64_t)256 << 20;
	int r = 0;

	if (map_err && np < max)
		r = asprintf(&problems[np], "the store's map size cannot be read: %s", map_err);
	else if (disk_err == NULL && h->map_size && h->map_used > h->map_size / 10 * 9 &&
		 h->disk_free < h->map_size && np < max)
		/* the store doubles its map when full: that needs the room */
		r = asprintf(&problems[np],
			     "the store's map is %" PRIu64 "%% used and the disk "
			     "has %" PRIu64 " MiB free, less than the %" PRIu64 " MiB it needs to "
			     "grow",
			     h->map_used * 100 / h->map_size, h->disk_free >> 20,
			     h->map_size >> 20);
	else
		r = -1;
	if (r >= 0)
		np++;
	if (np >= max)
		return np;
	if (disk_err)
		r = asprintf(&problems[np],
			     "the free space on the store's disk cannot be read (statvfs %s); "
			     "check the disk yourself (df)",
			     disk_err);
	else if (h->disk_free == 0)
		r = asprintf(&problems[np],
			     "the store's disk is full (0 bytes free): every submission is "
			     "refused as 'storage full' until room is made on it");
	else if (h->disk_free < ((uint64_t)1 << 20))
		r = asprintf(&problems[np],
			     "only %" PRIu64 " KiB free on the store's disk: submissions are "
			     "refused as 'storage full' when they do not fit",
			     h->disk_free >> 10);
	else if (h->disk_free < low)
		r = asprintf(&problems[np], "only %" PRIu64 " MiB free on the store's disk",
			     h->disk_free >> 20);
	else
		r = -1;
	if (r >= 0)
		np++;
	return np;
}

/* health_full adds to problems[np..max) the spell of commits failing as
 * storage full, when one lasts (broker_impl.h, full_since_ms); returns the
 * new count. Told apart from the free space: a quota or a file size limit
 * fails the writes on a disk that has room. */
static size_t health_full(const broker *b, char **problems, size_t np, size_t max)
{
	char when[32];
	if (b->full_since_ms == 0 || np >= max)
		return np;
	if (asprintf(&problems[np],
		     "the store cannot write: %" PRIu64 " submission%s refused as 'storage "
		     "full' since %s (a full disk, a quota or a file size limit: the broker's "
		     "log says which); the agents send them again once it can",
		     b->full_refused, b->full_refused == 1 ? "" : "s",
		     rete_time_format(b->full_since_ms, when)) >= 0)
		np++;
	return np;
}

/* health_acks_refused adds to problems[np..max) each party whose ACKs the
 * store refuses (broker_peer.acks_refused_since): a spell of ACK batches
 * only (a quiet network draining a backlog) refuses no submission, so
 * health_full says nothing of it, and with a quota or a file size limit
 * the free space says nothing either. Returns the new count. */
static size_t health_acks_refused(const broker *b, char **problems, size_t np, size_t max)
{
	for (size_t i = 0; i < b->npeers && np < max; i++) {
		const broker_peer *p = &b->peers[i];
		char when[32];
		if (p->acks_refused_since == 0)
			continue;
		if (asprintf(&problems[np],
			     "deliveries to %s are paused because the store refuses their "
			     "acknowledgements: %" PRIu64 " refused since %s (a full disk, a quota "
			     "or a file size limit: the broker's log says which); they go again "
			     "one window every `redeliver` (%" PRId64 " ms) until the store "
			     "commits, and nothing is lost meanwhile",
			     p->id, p->acks_refused, rete_time_format(p->acks_refused_since, when),
			     b->cfg->redeliver_ms) >= 0)
			np++;
	}
	return np;
}

/* behind_said writes into out[cap] the one sentence for a store behind
 * its journal (why: rete_store_behind_range's, the batch behind appended
 * entries [before, after)): health_behind and q_proof's STORAGE_FULL
 * answer each add what their reader does about it. A batch of
 * acknowledgements or expiries appended no entry: the sentence names none
 * (rev-tidy s15, 2). Returns whether it named entries. */
static bool behind_said(const broker *b, const char *why, uint64_t before, uint64_t after,
			char *out, size_t cap)
{
	if (after > b->log_size)
		after = b->log_size; /* the record could not be read: any of them */
	if (after <= before) {
		snprintf(out, cap,
			 "the last batch receipted appended no entry (it holds acknowledgements "
			 "or expiries of deliveries), and it is in the broker's journal only "
			 "until its store can be written (%s)",
			 why);
		return false;
	}
	if (after - before == 1)
		snprintf(out, cap,
			 "the entry %" PRIu64 " is in the broker's journal only until its store "
			 "can be written (%s)",
			 before, why);
	else
		snprintf(out, cap,
			 "the entries %" PRIu64 " to %" PRIu64 " are in the broker's journal only "
			 "until its store can be written (%s)",
			 before, after - 1, why);
	return true;
}

/* health_behind adds to problems[np..max) a batch receipted from the
 * store's journal that LMDB could not commit yet (a full disk, an I/O
 * error): it is in no reader's view of the log, and its entries, if it
 * appended any, are not delivered. */
static size_t health_behind(const broker *b, char **problems, size_t np, size_t max)
{
	rete_msg m = {{0}};
	uint64_t before = 0, after = 0;
	char said[1024];
	if (np >= max || !rete_store_behind_range(b->store, &m, &before, &after))
		return np;
	bool entries = behind_said(b, m.text, before, after, said, sizeof(said));
	int rc = entries ? asprintf(&problems[np],
				    "%s: the last batch receipted is not yet in data.mdb, so not "
				    "delivered, and not read by rete audit or a backup; the broker "
				    "takes it in as soon as the store can write: free space now (its "
				    "senders' agents raise a WITNESS ALARM when this lasts longer "
				    "than their witness_patience)",
				    said)
			 : asprintf(&problems[np],
				    "%s: it is not yet in data.mdb, so not read by rete audit or a "
				    "backup, and nothing new is logged until it is; the broker takes "
				    "it in as soon as the store can write: free space now",
				    said);
	if (rc >= 0)
		np++;
	return np;
}

static void q_health(broker *b, broker_frame *f)
{
	if (deny_unless_overseer(b, f, "broker health"))
		return;
	Rete__Health h;
	rete__health__init(&h);
	rete_store_rtxn *rt = NULL;
	if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the store cannot be read");
		return;
	}
	rete_store_size(b->store, rt, &h.log_size, NULL);
	Rete__AgencyHealth *hs = NULL;
	size_t n = 0;
	Rete__AgencyHealth **ptrs = agencies_fill(b, rt, &hs, &n);
	char *problems[64];
	size_t np = 0;
	/* (rev-edges s13, 3) a queue of a party the configuration no longer
	 * has: no row of its own, so a problem */
	for (size_t i = 0; i < b->norphans && np < 8; i++) {
		uint64_t depth = 0;
		int64_t oldest = 0;
		char at[32];
		if (rete_store_queue_depth(b->store, rt, b->orphans[i], &depth, &oldest, NULL) !=
			RETE_OK ||
		    depth == 0 || broker_config_party(b->cfg, b->orphans[i]) != NULL)
			continue;
		if (asprintf(&problems[np],
			     "%s is not in the configuration, yet %" PRIu64 " message%s wait%s in "
			     "its queue (the oldest logged at %s): %s withdrawn after expiry %s "
			     "unless its [agency %s] section is put back",
			     b->orphans[i], depth, depth == 1 ? "" : "s", depth == 1 ? "s" : "",
			     rete_time_format(oldest, at), depth == 1 ? "it is" : "they are",
			     b->cfg->expiry, b->orphans[i]) >= 0)
			np++;
	}
	rete_store_read_end(&rt);
	h.agencies = ptrs;
	h.n_agencies = ptrs ? n : 0;
	/* each figure with whether it is known: 0 bytes free is a full disk,
	 * not an unknown one */
	char stats_err[sizeof(((rete_msg *)0)->text) + 64] = "", disk_err[1200] = "";
	rete_msg sm = {{0}};
	bool map_known = rete_store_stats(b->store, &h.map_size, &h.map_used, &sm) == RETE_OK;
	if (!map_known)
		snprintf(stats_err, sizeof(stats_err), "%s", sm.text);
	struct statvfs sv;
	bool disk_known = statvfs(b->cfg->data, &sv) == 0;
	if (disk_known)
		h.disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	else
		snprintf(disk_err, sizeof(disk_err), "%s: %s", b->cfg->data, strerror(errno));
	h.checkpoint_at = b->cp_at_ms;
	char version[128];
	h.version = rete_version_short(version, sizeof(version));

	/* the ages below are on the wall clock, as the agencies' rows are:
	 * after a forward jump they are too long, and the jump is a problem
	 * of its own, first (clock_watch, broker.c) */
	int64_t now = rete_now_ms();
	if (b->clock_text[0] != '\0' && (problems[np] = strdup(b->clock_text)) != NULL)
		np++;
	if (b->clock_start_text[0] != '\0' && (problems[np] = strdup(b->clock_start_text)) != NULL)
		np++;
	for (size_t i = 0; i < h.n_agencies && np < 60; i++) {
		const Rete__AgencyHealth *a = h.agencies[i];
		if (a->queue_depth && a->oldest_undelivered_at &&
		    now - a->oldest_undelivered_at > HEALTH_QUEUE_AGE_MS) {
			if (asprintf(&problems[np],
				     "%s has %" PRIu64 " undelivered message%s, the "
				     "oldest waiting for %" PRId64 " min; is its agent running?",
				     a->id, a->queue_depth, a->queue_depth == 1 ? "" : "s",
				     (now - a->oldest_undelivered_at) / 60000) >= 0)
				np++;
		}
	}
	/* two connections with one agency's key (protocol 5: one behind the
	 * delivery connection answers a PING too, or 3 take-overs within an
	 * hour whose told connection answered: broker_peer_contest) */
	for (size_t i = 0; i < b->npeers && np < 60; i++) {
		const broker_party *pa = broker_config_party(b->cfg, b->peers[i].id);
		char text[1024];
		if (pa && broker_kind_is_agency(pa->kind) &&
		    broker_peer_contest(&b->peers[i], text, sizeof(text)) &&
		    (problems[np] = strdup(text)) != NULL)
			np++;
	}
	if (h.log_size > b->cp_size &&
	    now - b->cp_at_ms > 3 * b->cfg->checkpoint_interval_ms + 5000 && np < 62) {
		if (asprintf(&problems[np],
			     "the latest checkpoint (size %" PRIu64 ") is older "
			     "than 3 checkpoint intervals while the log grew to %" PRIu64,
			     b->cp_size, h.log_size) >= 0)
			np++;
	}
	char tsa_text[1536];
	if (broker_tsa_problem(b->tsa, tsa_text, sizeof(tsa_text), &h.timestamp_at) &&
	    np < 63 && (problems[np] = strdup(tsa_text)) != NULL)
		np++;
	if (broker_tsa_clock_problem(b->tsa, tsa_text, sizeof(tsa_text)) && np < 63 &&
	    (problems[np] = strdup(tsa_text)) != NULL)
		np++;
	np = health_room(&h, map_known ? NULL : stats_err, disk_known ? NULL : disk_err, problems,
			 np, 64);
	np = health_full(b, problems, np, 64);
	/* the journal's batch first: one line, while the paused agencies are
	 * one each and could fill the list */
	np = health_behind(b, problems, np, 64);
	np = health_acks_refused(b, problems, np, 64);
	h.problems = problems;
	h.n_problems = np;
	h.ok = np == 0;
	Rete__QueryResult r;
	rete__query_result__init(&r);
	r.answer_case = RETE__QUERY_RESULT__ANSWER_HEALTH;
	r.health = &h;
	answer(b, f, &r);
	for (size_t i = 0; i < np; i++)
		free(problems[i]);
	free(ptrs);
	free(hs);
}

struct snap {
	Rete__ReferralInfo **r;
	size_t n, cap;
	bool oom;
};

static int on_referral(void *ctx, const Rete__ReferralInfo *ri)
{
	struct snap *s = ctx;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		Rete__ReferralInfo **r = realloc(s->r, cap * sizeof(*r));
		if (!r) {
			s->oom = true;
			return 1;
		}
		s->r = r;
		s->cap = cap;
	}
	size_t len = rete__referral_info__get_packed_size(ri);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		s->oom = true;
		return 1;
	}
	rete__referral_info__pack(ri, buf);
	s->r[s->n] = rete__referral_info__unpack(NULL, len, buf);
	free(buf);
	if (!s->r[s->n]) {
		s->oom = true;
		return 1;
	}
	s->n++;
	return 0;
}

static void q_snapshot(broker *b, broker_frame *f)
{
	if (deny_unless_overseer(b, f, "the snapshot"))
		return;
	Rete__Snapshot sn;
	rete__snapshot__init(&sn);
	struct snap s = {0};
	rete_store_rtxn *rt = NULL;
	if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the store cannot be read");
		return;
	}
	/* one read transaction: the referrals are those of exactly log_size */
	rete_store_size(b->store, rt, &sn.log_size, NULL);
	rete_err err = rete_store_referrals_iter(b->store, rt, on_referral, &s, NULL);
	Rete__AgencyHealth *hs = NULL;
	size_t n = 0;
	Rete__AgencyHealth **ptrs = agencies_fill(b, rt, &hs, &n);
	rete_store_read_end(&rt);
	if (err != RETE_OK || s.oom) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the referrals could not be read (%s)", rete_strerror(err));
	} else {
		sn.referrals = s.r;
		sn.n_referrals = s.n;
		sn.agencies = ptrs;
		sn.n_agencies = ptrs ? n : 0;
		Rete__QueryResult r;
		rete__query_result__init(&r);
		r.answer_case = RETE__QUERY_RESULT__ANSWER_SNAPSHOT;
		r.snapshot = &sn;
		answer(b, f, &r);
	}
	for (size_t i = 0; i < s.n; i++)
		rete__referral_info__free_unpacked(s.r[i], NULL);
	free(s.r);
	free(ptrs);
	free(hs);
}

/* referral_unknown answers a referral query that finds nothing the caller
 * may read. An agency asking about a referral of others gets the very
 * answer it gets for an id nobody used (report s12, 7: ids are chosen by
 * the sender, often sequential, and two answers would tell another agency
 * which referrals exist and when they appear); the sentence says what an
 * honest caller should check. Coordinators and auditors read every
 * referral: for them it only means the id is not in the log. */
static void referral_unknown(broker *b, broker_frame *f, const char *id)
{
	if (is_overseer(f->who))
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
			     "no referral with id '%.64s' in the log", id);
	else
		answer_error(
		    b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		    "no referral with id '%.64s' that %s may read: an agency reads the "
		    "referrals it sent or received; check the id (its sent/NAME.receipt.json "
		    "or inbox/ file gives it) and that %s is its requester or performer",
		    id, f->party, f->party);
}

static void q_referral(broker *b, broker_frame *f, const Rete__ReferralQuery *q)
{
	Rete__ReferralInfo *ri = NULL;
	rete_err err = rete_store_referral(b->store, NULL, q->referral_id, &ri, NULL);
	if (err == RETE_ENOENT) {
		referral_unknown(b, f, q->referral_id);
		return;
	}
	if (err != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "referral %.64s cannot be read (%s)", q->referral_id,
			     rete_strerror(err));
		return;
	}
	if (!is_overseer(f->who) && strcmp(ri->requester, f->party) != 0 &&
	    strcmp(ri->performer, f->party) != 0) {
		referral_unknown(b, f, q->referral_id);
	} else {
		Rete__QueryResult r;
		rete__query_result__init(&r);
		r.answer_case = RETE__QUERY_RESULT__ANSWER_REFERRAL;
		r.referral = ri;
		answer(b, f, &r);
	}
	rete__referral_info__free_unpacked(ri, NULL);
}

/* broker_epoch_entry: whether buf (LogEntry bytes) is the broker's own
 * Epoch entry (a declared restore): the only entries an agency may read. */
static bool broker_epoch_entry(broker *b, const rete_buf *buf)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, buf->len, buf->data);
	Rete__Message *msg = NULL;
	bool yes = false;
	if (le != NULL && rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL,
					     &msg, NULL) == RETE_OK) {
		yes = msg->body_case == RETE__MESSAGE__BODY_EPOCH && msg->sender != NULL &&
		      strcmp(msg->sender, b->cfg->id) == 0;
		rete__message__free_unpacked(msg, NULL);
	}
	if (le != NULL)
		rete__log_entry__free_unpacked(le, NULL);
	return yes;
}

rete_err broker_epochs_load(broker *b)
{
	rete_store_rtxn *rt = NULL;
	rete_msg m = {{0}};
	rete_err err = rete_store_read_begin(b->store, &rt, &m);
	if (err != RETE_OK) {
		broker_log_error("cannot read the store %s: %s", b->cfg->data, m.text);
		return err;
	}
	free(b->epoch_at);
	free(b->epoch_no);
	b->epoch_at = NULL;
	b->epoch_no = NULL;
	b->nepoch_at = 0;
	/* epoch 1 has no Epoch entry; a later one may be missing (the epoch
	 * of a store the restore after it dropped: the numbers skip it) */
	for (uint32_t k = 2; k <= b->epoch && err == RETE_OK; k++) {
		char id[32];
		uint64_t at = 0;
		snprintf(id, sizeof(id), "epoch-%" PRIu32, k);
		err = rete_store_msgid(b->store, rt, b->cfg->id, id, &at, NULL, NULL, &m);
		if (err == RETE_ENOENT) {
			err = RETE_OK;
			continue;
		}
		if (err != RETE_OK)
			break;
		rete_buf buf = {0};
		if ((err = rete_store_entry(b->store, rt, at, &buf, &m)) != RETE_OK)
			break;
		bool yes = broker_epoch_entry(b, &buf);
		rete_buf_free(&buf);
		if (!yes)
			continue; /* that id names another entry: not the broker's Epoch */
		uint64_t *more = realloc(b->epoch_at, (b->nepoch_at + 1) * sizeof(*more));
		if (more)
			b->epoch_at = more;
		uint32_t *nos = more ? realloc(b->epoch_no, (b->nepoch_at + 1) * sizeof(*nos))
				     : NULL;
		if (!nos) {
			err = RETE_ENOMEM;
			snprintf(m.text, sizeof(m.text), "out of memory");
			break;
		}
		/* epochs are numbered in log order, so the list stays sorted */
		b->epoch_no = nos;
		b->epoch_no[b->nepoch_at] = k;
		b->epoch_at[b->nepoch_at++] = at;
	}
	rete_store_read_end(&rt);
	if (err != RETE_OK)
		broker_log_error("cannot list the Epoch entries of the store %s: %s", b->cfg->data,
				 m.text);
	return err;
}

/* q_entries answers EntriesQuery{from, count}: the entries from `from`, at
 * most `count` (and BROKER_ENTRIES_MAX) in a frame. Coordinators and
 * auditors read every entry. An agency reads only the broker's own Epoch
 * entries in that range (a declared restore: no personal data, no other
 * party's metadata), the others left out: its witness checks a new epoch
 * against the checkpoint it verified before (agent_witness.c,
 * docs/protocol.md "Entries"). Each LogEntry carries its index. */
static void q_entries(broker *b, broker_frame *f, const Rete__EntriesQuery *q)
{
	bool epochs_only = !is_overseer(f->who);
	if (epochs_only && !broker_kind_is_agency(f->who->kind) &&
	    deny_unless_overseer(b, f, "reading the log's entries"))
		return;
	uint64_t size = 0;
	rete_store_rtxn *rt = NULL;
	if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the store cannot be read");
		return;
	}
	rete_store_size(b->store, rt, &size, NULL);
	uint64_t count = q->count;
	if (count > BROKER_ENTRIES_MAX)
		count = BROKER_ENTRIES_MAX;
	if (q->from >= size)
		count = 0;
	else if (count > size - q->from)
		count = size - q->from;
	ProtobufCBinaryData *items = calloc(count ? count : 1, sizeof(*items));
	Rete__Entries e;
	rete__entries__init(&e);
	e.from = q->from;
	e.entries = items;
	size_t bytes = 0, budget = BROKER_ENTRIES_BYTES;
	if (budget > b->cfg->max_frame / 2)
		budget = b->cfg->max_frame / 2;
	/* an agency reads the broker's Epoch entries in the range alone: from
	 * their list (broker_epochs_load), not by reading every entry of the
	 * range (s16 rev-final #6: up to 1,000 reads and decodes of other
	 * parties' entries per question, on the main thread) */
	size_t ep = 0;
	if (epochs_only)
		while (ep < b->nepoch_at && b->epoch_at[ep] < q->from)
			ep++;
	for (uint64_t i = 0; items && i < count; i++) {
		rete_buf buf = {0};
		if (epochs_only) {
			if (ep == b->nepoch_at || b->epoch_at[ep] >= q->from + count)
				break;
			i = b->epoch_at[ep++] - q->from;
		}
		if (rete_store_entry(b->store, rt, q->from + i, &buf, NULL) != RETE_OK)
			break;
		if (e.n_entries > 0 && bytes + buf.len + 16 > budget) {
			rete_buf_free(&buf);
			break; /* the client asks again from where this answer ends */
		}
		bytes += buf.len + 16;
		items[e.n_entries].data = buf.data;
		items[e.n_entries].len = buf.len;
		e.n_entries++;
	}
	rete_store_read_end(&rt);
	Rete__QueryResult r;
	rete__query_result__init(&r);
	if (!items) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL, "out of memory");
		return;
	}
	r.answer_case = RETE__QUERY_RESULT__ANSWER_ENTRIES;
	r.entries = &e;
	answer(b, f, &r);
	for (size_t i = 0; i < e.n_entries; i++)
		free(items[i].data);
	free(items);
}

/* q_checkpoint answers CheckpointQuery{size}: the stored note of that size
 * (0 = the latest) with the cosignature lines gathered (q_cosign). */
static void q_checkpoint(broker *b, broker_frame *f, const Rete__CheckpointQuery *q)
{
	uint64_t size = q != NULL ? q->size : 0;
	char *note = NULL;
	rete_msg m = {{0}};
	rete_err err;

	if (!b->cp_note) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
			     "no checkpoint yet; the first comes with the first entries");
		return;
	}
	if (size == 0)
		size = b->cp_size;
	err = rete_store_checkpoint_get(b->store, NULL, size, &note, &m);
	if (err == RETE_ENOENT) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
			     "no stored checkpoint of size %" PRIu64
			     "; the broker stores the periodic ones (the latest has size %" PRIu64
			     "; ask with size 0 for it)",
			     size, b->cp_size);
		return;
	}
	if (err != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the checkpoint of size %" PRIu64 " cannot be read: %s", size, m.text);
		return;
	}
	Rete__QueryResult r;
	rete__query_result__init(&r);
	r.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
	r.checkpoint = note;
	answer(b, f, &r);
	free(note);
}

/* q_cosign takes a witness's cosignature of a stored checkpoint: the line
 * must be named after the authenticated party and verify with its key in
 * the directory, over the very note the broker stored for that size (its
 * signature included; cosignatures aside). The line is kept on the stored
 * note (one per party: a new one replaces the party's older line) and the
 * answer is the note with every cosignature gathered. */
static void q_cosign(broker *b, broker_frame *f, const Rete__CosignQuery *q)
{
	const char *line = q->cosignature != NULL ? q->cosignature : "";
	const char *given = q->checkpoint != NULL ? q->checkpoint : "";
	const size_t dash = sizeof("\xe2\x80\x94 ") - 1;
	char *stored = NULL, *mine = NULL, *theirs = NULL, *cosigned = NULL;
	size_t mine_len = 0, theirs_len = 0, cos_len = 0, nlen = strlen(f->party);
	rete_checkpoint cp;
	rete_msg m = {{0}};
	rete_err err;

	if (strlen(line) < dash + nlen + 1 || memcmp(line, "\xe2\x80\x94 ", dash) != 0 ||
	    memcmp(line + dash, f->party, nlen) != 0 || line[dash + nlen] != ' ') {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INVALID,
			     "cosign: the cosignature '%.80s' is not a line '\xe2\x80\x94 %s "
			     "BASE64': a party cosigns under its own id",
			     line, f->party);
		return;
	}
	err =
	    rete_checkpoint_verify(given, strlen(given), b->cfg->origin, &b->cfg->key_pub, &cp, &m);
	if (err != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE,
			     "cosign: the checkpoint given is not one this broker signed (origin "
			     "%s): %s",
			     b->cfg->origin, m.text);
		return;
	}
	err = rete_store_checkpoint_get(b->store, NULL, cp.size, &stored, &m);
	if (err != RETE_OK) {
		answer_error(b, f,
			     err == RETE_ENOENT ? RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND
						: RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "cosign: no stored checkpoint of size %" PRIu64
			     " (%s); cosign the ones CheckpointQuery and WELCOME give (the latest "
			     "has size %" PRIu64 ")",
			     cp.size, err == RETE_ENOENT ? "not stored" : m.text, b->cp_size);
		return;
	}
	if (rete_cosign_strip(stored, strlen(stored), b->cfg->origin, &mine, &mine_len, &m) !=
		RETE_OK ||
	    rete_cosign_strip(given, strlen(given), b->cfg->origin, &theirs, &theirs_len, &m) !=
		RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "cosign: the checkpoint of size %" PRIu64 " cannot be read: %s",
			     cp.size, m.text);
		goto out;
	}
	if (mine_len != theirs_len || memcmp(mine, theirs, mine_len) != 0) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INVALID,
			     "cosign: the checkpoint of size %" PRIu64
			     " given is not the one this broker stored for that size (its text or "
			     "signature differs); cosign the note CheckpointQuery gives",
			     cp.size);
		goto out;
	}
	err = rete_cosign_add(stored, strlen(stored), line, &cosigned, &cos_len, &m);
	if (err == RETE_OK)
		err = rete_cosign_verify(cosigned, cos_len, f->party, &f->who->key, NULL, &m);
	if (err != RETE_OK) {
		answer_error(b, f,
			     err == RETE_EBADSIG || err == RETE_ENOENT
				 ? RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE
				 : RETE__ERROR_CODE__ERROR_CODE_INVALID,
			     "cosign: %s (checked with %s's key in the directory)", m.text,
			     f->party);
		goto out;
	}
	if (strcmp(cosigned, stored) != 0) {
		/* A thread must hold no read transaction here (store.h). */
		err = rete_store_checkpoint_put(b->store, cp.size, cosigned, &m);
		if (err != RETE_OK) {
			answer_error(b, f,
				     err == RETE_EFULL ? RETE__ERROR_CODE__ERROR_CODE_STORAGE_FULL
						       : RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
				     "cosign: the cosignature could not be kept: %s", m.text);
			goto out;
		}
		broker_log_info("%s cosigned the checkpoint of size %" PRIu64, f->party, cp.size);
	}
	Rete__QueryResult r;
	rete__query_result__init(&r);
	r.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
	r.checkpoint = cosigned;
	answer(b, f, &r);
out:
	free(stored);
	free(mine);
	free(theirs);
	free(cosigned);
}

static void q_proof(broker *b, broker_frame *f, bool inclusion)
{
	uint8_t hashes[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	size_t n = 0;
	Rete__Proof p;
	rete__proof__init(&p);
	rete_msg m;
	rete_err err;
	uint64_t size;
	char *note = NULL;
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_store_rtxn *rt = NULL;
	if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the store cannot be read");
		return;
	}
	if (inclusion) {
		const Rete__InclusionQuery *q = f->cf->query->inclusion;
		size = q->tree_size ? q->tree_size : b->cp_size;
		p.leaf_index = q->index;
		p.tree_size = size;
		err = rete_store_inclusion_proof(b->store, rt, q->index, size, hashes, &n, &m);
		if (err == RETE_OK)
			err = rete_store_leaf_hash(b->store, rt, q->index, leaf, &m);
		if (err == RETE_OK) {
			p.leaf_hash.data = leaf;
			p.leaf_hash.len = RETE_MERKLE_HASH;
		}
	} else {
		const Rete__ConsistencyQuery *q = f->cf->query->consistency;
		size = q->size2 ? q->size2 : b->cp_size;
		p.size1 = q->size1;
		p.size2 = size;
		err = rete_store_consistency_proof(b->store, rt, q->size1, size, hashes, &n, &m);
	}
	if (err == RETE_OK)
		rete_store_checkpoint_get(b->store, rt, size, &note, NULL);
	rete_store_read_end(&rt);
	rete_msg behind;
	uint64_t need = size; /* the tree size the proof needs */
	uint64_t before = 0, after = 0;
	if (err == RETE_EINVAL && need > 0 && need <= b->log_size &&
	    rete_store_behind_range(b->store, &behind, &before, &after) && need > before) {
		/* receipted, in the journal, not yet in LMDB (its commit failed):
		 * not beyond the log. "Later", not NOT_FOUND, which an agent's
		 * witness takes as a log that shrank (rev-receiptwatch s14, 2).
		 * need > before: the proof needs an entry of the batch behind */
		char said[1024];
		behind_said(b, behind.text, before, after, said, sizeof(said));
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_STORAGE_FULL, "%s; ask again later",
			     said);
		return;
	}
	if (err != RETE_OK) {
		answer_error(b, f,
			     err == RETE_EINVAL ? RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND
						: RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "no such proof: %s (the log has %" PRIu64
			     " entries; latest checkpoint "
			     "at size %" PRIu64 ")",
			     m.text, b->log_size, b->cp_size);
		return;
	}
	ProtobufCBinaryData items[RETE_MERKLE_MAX_PROOF];
	for (size_t i = 0; i < n; i++) {
		items[i].data = hashes[i];
		items[i].len = RETE_MERKLE_HASH;
	}
	p.hashes = items;
	p.n_hashes = n;
	if (note)
		p.checkpoint = note;
	Rete__QueryResult r;
	rete__query_result__init(&r);
	r.answer_case = RETE__QUERY_RESULT__ANSWER_PROOF;
	r.proof = &p;
	answer(b, f, &r);
	free(note);
}

/* q_timestamp answers the time-stamp token of a stored checkpoint (size 0:
 * the newest that has one) with that checkpoint's note. For everyone, like
 * checkpoints: the token dates what every witness checks. */
static void q_timestamp(broker *b, broker_frame *f, const Rete__TimestampQuery *q)
{
	rete_store_rtxn *rt = NULL;
	rete_buf tok = {0};
	uint64_t size = q->size;
	char *note = NULL;
	rete_msg m = {{0}};
	rete_err err;
	if (rete_store_read_begin(b->store, &rt, NULL) != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the store cannot be read");
		return;
	}
	if (size == 0)
		err = rete_store_timestamp_latest(b->store, rt, &size, &tok, &m);
	else
		err = rete_store_timestamp_get(b->store, rt, size, &tok, &m);
	if (err == RETE_OK)
		err = rete_store_checkpoint_get(b->store, rt, size, &note, &m);
	rete_store_read_end(&rt);
	Rete__Timestamp ts;
	rete__timestamp__init(&ts);
	if (err == RETE_OK)
		err = broker_tsa_gen_time(tok.data, tok.len, &ts.gen_time, &m);
	if (err == RETE_ENOENT) {
		if (!b->cfg->tsa_url)
			answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				     "no time-stamp token%s: this broker asks no time-stamping "
				     "authority (broker.ini tsa_url is not set)",
				     q->size ? " for that checkpoint" : "");
		else if (q->size)
			answer_error(
			    b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
			    "no time-stamp token for checkpoint %" PRIu64
			    " (not a stored checkpoint, skipped while the TSA was late, or "
			    "not stamped yet); ask with size 0 for the newest token",
			    q->size);
		else
			answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				     "no time-stamp token yet; the first comes once the TSA has "
				     "stamped a checkpoint");
	} else if (err != RETE_OK) {
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the time-stamp token of checkpoint %" PRIu64 " cannot be read: %s",
			     size, m.text);
	} else {
		ts.size = size;
		ts.checkpoint = note;
		ts.token.data = tok.data;
		ts.token.len = tok.len;
		Rete__QueryResult r;
		rete__query_result__init(&r);
		r.answer_case = RETE__QUERY_RESULT__ANSWER_TIMESTAMP;
		r.timestamp = &ts;
		answer(b, f, &r);
	}
	free(note);
	rete_buf_free(&tok);
}

void broker_answer_query(broker *b, broker_frame *f)
{
	const Rete__Query *q = f->cf->query;
	if (!broker_access_query(b, f)) { /* issue 18: every read recorded, or not made */
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_INTERNAL,
			     "the broker cannot write its access record, where every read of the "
			     "log is recorded before it is served; this read was not made: ask "
			     "again later, or tell the broker's operator (the broker's log says "
			     "why)");
		return;
	}
	switch (q->what_case) {
	case RETE__QUERY__WHAT_REFERRAL:
		q_referral(b, f, q->referral);
		break;
	case RETE__QUERY__WHAT_SNAPSHOT:
		q_snapshot(b, f);
		break;
	case RETE__QUERY__WHAT_HEALTH:
		q_health(b, f);
		break;
	case RETE__QUERY__WHAT_ENTRIES:
		q_entries(b, f, q->entries);
		break;
	case RETE__QUERY__WHAT_CHECKPOINT:
		q_checkpoint(b, f, q->checkpoint);
		break;
	case RETE__QUERY__WHAT_COSIGN:
		q_cosign(b, f, q->cosign);
		break;
	case RETE__QUERY__WHAT_INCLUSION:
		q_proof(b, f, true);
		break;
	case RETE__QUERY__WHAT_CONSISTENCY:
		q_proof(b, f, false);
		break;
	case RETE__QUERY__WHAT_TIMESTAMP:
		q_timestamp(b, f, q->timestamp);
		break;
	default:
		answer_error(b, f, RETE__ERROR_CODE__ERROR_CODE_MALFORMED,
			     "the query asks nothing; ask for referral, snapshot, health, entries, "
			     "checkpoint, inclusion, consistency, timestamp or cosign");
		break;
	}
}
