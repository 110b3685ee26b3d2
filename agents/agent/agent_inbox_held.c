/* agent_inbox_held.c — deliveries the agent could not write yet (see
 * agent.h).
 *
 * When inbox/ or the agent's store cannot be written (a full disk, an I/O
 * error) the delivery is not the message's fault: it is not acked (an ACK,
 * even with an error, would make the broker move on and the referral end
 * as not delivered). The agent keeps the DELIVER it received (the packed
 * frame, so nothing of it is lost) and hands it to agent_inbox_on_deliver
 * again with a backoff (250 ms doubling to 8 s) until the write succeeds;
 * then it is acked like any other. It does not wait for the broker to
 * deliver again: that needs a reconnect (or the broker's redelivery timer),
 * and a copy is at hand. Should the broker deliver it again meanwhile, the
 * inbox's own dedup makes that harmless. What is held lives in memory only:
 * after a restart the broker delivers it again, since it was never acked.
 *
 * Log order. The broker sets aside what a recipient read and left unacked
 * and goes on with what follows (broker.c), so while the agent holds an
 * entry it is sent later ones. Those are not written either
 * (agent_inbox_held_back): every delivery above the lowest index held is
 * kept too, unacked, and the held ones are written in index order, the next one at
 * once after each success. So inbox/ gets what was sent in log order,
 * whatever the order the broker's rounds send it in (the technique of
 * key_taking, agent_keys.c). Copies are kept of the lowest HELD_MAX only;
 * above that the index alone is kept, and the broker's copy, when it
 * comes, is written in its turn.
 *
 * The log says a problem once (its sentence), not at every try, and says
 * when the held deliveries could be written after all.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "duration.h"
#include "json.h"
#include "merkle.h"
#include "wire.h"
#include <jansson.h>

/* Copies kept: each is a whole frame (up to max_frame, 24 MiB by default);
 * a default delivery window's worth bounds the memory as the window did. */
#define HELD_MAX 64
/* Indexes held (8 bytes each, plus the copies above). The broker sets
 * aside at most 64 per slot of its delivery window (4096 at the default
 * window of 64); this covers windows up to 1024. Past it the highest index
 * is forgotten (said in the log): when it comes again it may be written
 * after an entry above it. */
#define HELD_IDX_MAX 65536
/* How many times an entry is held back while the lower ones held without a
 * copy do not come again before it: then the broker no longer holds those
 * (withdrawn at its expiry) and they are forgotten. The broker sends what
 * it set aside in log order, so a lower one still queued comes first. */
#define HELD_PASS_MAX 3
#define HELD_FIRST_MS 250
#define HELD_LAST_MS  8000

typedef struct held_item {
	uint64_t index;
	uint8_t *frame; /* the packed Deliver; NULL: not kept (the broker's copy) */
	size_t len;
	unsigned times;	   /* came while held back (agent_inbox_held_back) */
	int64_t logged_at; /* the entry's loggedAt (0: not known) */
} held_item;

/* What was last written and acked (agent_inbox_acked_note): the broker
 * answers an ACK at once, so a refusal of it finds its entry here. */
#define ACKED_MAX 32
typedef struct acked_item {
	uint64_t index;
	bool used;
	char id[130], refid[130], sender[RETE_ID_MAX + 1];
	char kind[24], fname[160];
} acked_item;

/* ACKs sent of entries recorded as not yet taken ('u' records of the
 * inbox database, agent_db.h), each with the nonce of the last PING sent
 * before it: a PONG to a later PING shows that the broker received the
 * ACK (not that its Delivery is logged: a PING is answered at once, its
 * batch's ACKs checked and committed after; docs/agent.md says what that
 * leaves), and the record goes.
 * Past PENDING_MAX the record stays until the next WELCOME acks it again. */
#define PENDING_MAX 4096
typedef struct pending_ack {
	uint64_t index, stamp;
} pending_ack;

struct agent_inbox_held {
	acked_item acked[ACKED_MAX];
	size_t acked_next;
	pending_ack pend[PENDING_MAX];
	size_t npend;
	uint64_t late_said; /* the last entry said to be past the expiry (+1) */
	int64_t since;	    /* deliveries held since (0: none) */
	size_t recorded;    /* the count in AGENT_META_INBOX_HELD */
	char problem[512];  /* the latest sentence of the problem */
	held_item *v;	    /* sorted by index, no index twice */
	size_t n, cap;
	size_t frames;	  /* items with a frame */
	int64_t next_try; /* 0: nothing scheduled */
	int64_t backoff_ms;
	char said[512]; /* the problem last said in the log ("": none) */
	bool retrying;	/* inside a retry round: keep the backoff */
	bool forgot;	/* an index was forgotten (HELD_IDX_MAX): said once */
	size_t written; /* held deliveries handled since the problem began */
};

/* problem_key: the part of a sentence that names the problem, not the file
 * (the text after the last ": "), so that the next entry failing for the
 * same reason is not said again. */
static const char *problem_key(const char *problem)
{
	const char *k = problem, *p;
	while ((p = strstr(k, ": ")) != NULL)
		k = p + 2;
	return k;
}

/* held_find: the position of index in h->v, or where it would go. */
static size_t held_find(const struct agent_inbox_held *h, uint64_t index)
{
	size_t lo = 0, hi = h->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->v[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void held_drop_at(struct agent_inbox_held *h, size_t i)
{
	if (h->v[i].frame != NULL)
		h->frames--;
	free(h->v[i].frame);
	memmove(h->v + i, h->v + i + 1, (h->n - i - 1) * sizeof(*h->v));
	h->n--;
}

/* held_keep records index (and a copy of d, if among the lowest HELD_MAX)
 * as held. */
static void held_keep(agent *a, struct agent_inbox_held *h, const Rete__Deliver *d, uint64_t index)
{
	size_t i = held_find(h, index);
	if (i == h->n || h->v[i].index != index) {
		if (h->n == HELD_IDX_MAX) {
			if (i == h->n)
				return; /* the highest: forgotten */
			held_drop_at(h, h->n - 1);
			if (!h->forgot)
				agent_log(a, "warning",
					  "more than %d deliveries held: the highest are "
					  "forgotten (the broker delivers them again; they may be "
					  "written after a later entry)",
					  HELD_IDX_MAX);
			h->forgot = true;
		}
		if (h->n == h->cap) {
			size_t nc = h->cap ? h->cap * 2 : 16;
			held_item *v = realloc(h->v, nc * sizeof(*v));
			if (v == NULL)
				return;
			h->v = v;
			h->cap = nc;
		}
		memmove(h->v + i + 1, h->v + i, (h->n - i) * sizeof(*h->v));
		h->v[i].index = index;
		h->v[i].frame = NULL;
		h->v[i].len = 0;
		h->v[i].times = 0;
		h->v[i].logged_at = 0;
		Rete__LogEntry *le =
		    rete__log_entry__unpack(NULL, d->log_entry.len, d->log_entry.data);
		if (le != NULL) {
			h->v[i].logged_at = (int64_t)le->logged_at;
			rete__log_entry__free_unpacked(le, NULL);
		}
		h->n++;
	}
	if (h->v[i].frame != NULL)
		return; /* the same entry: the copy at hand serves */
	if (h->frames == HELD_MAX) {
		/* keep the copies of the lowest: the next to be written */
		size_t j = h->n;
		while (j > i + 1 && h->v[j - 1].frame == NULL)
			j--;
		if (j == i + 1)
			return; /* none higher has one */
		free(h->v[j - 1].frame);
		h->v[j - 1].frame = NULL;
		h->v[j - 1].len = 0;
		h->frames--;
	}
	size_t len = rete__deliver__get_packed_size(d);
	uint8_t *frame = malloc(len ? len : 1);
	if (frame == NULL)
		return; /* the index stays: the broker's copy is written in turn */
	rete__deliver__pack(d, frame);
	h->v[i].frame = frame;
	h->v[i].len = len;
	h->frames++;
}

static struct agent_inbox_held *held_get(agent *a)
{
	if (a->inbox_held == NULL)
		a->inbox_held = calloc(1, sizeof(struct agent_inbox_held));
	return a->inbox_held;
}

static void held_schedule(struct agent_inbox_held *h)
{
	if (!h->retrying && h->next_try == 0) {
		h->backoff_ms = HELD_FIRST_MS;
		h->next_try = rete_now_ms() + h->backoff_ms;
	}
}

/* held_record keeps AGENT_META_INBOX_HELD (agent_db.h) up to date for
 * `rete status`: since when deliveries are held, how many, and the problem
 * (problem: the latest sentence, NULL: keep the one recorded); written when
 * the count changes, removed when none is held. "since" is when the oldest
 * held entry was logged (its loggedAt; when it is not known, when the hold
 * began): the recipient has not had it since then, and its withdrawal
 * comes at that time plus the network's expiry, whether or not the agent
 * was restarted meanwhile (review s17 rev-late, finding 4: the start of
 * the hold in this run said less after a restart). The agent's store may
 * be on the same full disk: a write that fails is only a debug line (the
 * log line of the hold says it all the same). */
static void held_record(agent *a, struct agent_inbox_held *h, const char *problem)
{
	rete_msg m = {{0}};
	if (h->n == 0) {
		if (h->since != 0)
			(void)agent_db_del(a->db, AGENT_DB_META, AGENT_META_INBOX_HELD,
					   strlen(AGENT_META_INBOX_HELD), &m);
		h->since = 0;
		h->recorded = 0;
		return;
	}
	int64_t oldest = h->v[0].logged_at, was = h->since;
	if (h->since == 0)
		h->since = oldest > 0 ? oldest : rete_now_ms();
	else if (oldest > 0 && oldest < h->since)
		h->since = oldest;
	bool changed = (problem != NULL && strcmp(problem_key(problem), h->said) != 0) ||
		       (was != 0 && was != h->since);
	if (problem != NULL)
		snprintf(h->problem, sizeof(h->problem), "%s", problem);
	if (h->recorded == h->n && !changed)
		return;
	char when[32];
	json_t *o = json_pack("{s:s, s:I, s:s}", "since", rete_time_format(h->since, when), "held",
			      (json_int_t)h->n, "problem", h->problem);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (text == NULL)
		return;
	if (agent_db_put(a->db, AGENT_DB_META, AGENT_META_INBOX_HELD, strlen(AGENT_META_INBOX_HELD),
			 text, strlen(text), &m) == RETE_OK)
		h->recorded = h->n;
	else
		agent_debug(a, "the record of the held deliveries for rete status: %s", m.text);
	free(text);
}

void agent_inbox_hold(agent *a, const Rete__Deliver *d, uint64_t index, const char *problem)
{
	struct agent_inbox_held *h = held_get(a);
	if (h == NULL) {
		agent_log(a, "error", "log entry %" PRIu64 ": %s; not acked", index, problem);
		return;
	}
	const char *key = problem_key(problem);
	held_keep(a, h, d, index);
	held_record(a, h, problem);
	if (strcmp(key, h->said) != 0) {
		agent_log(a, "error",
			  "log entry %" PRIu64 ": %s; not acked: the agent keeps it and writes it "
			  "as soon as it can (tries again with a backoff up to %d s; this is said "
			  "once); entries after it wait for it, to keep log order",
			  index, problem, HELD_LAST_MS / 1000);
		snprintf(h->said, sizeof(h->said), "%s", key);
	} else {
		agent_debug(a, "log entry %" PRIu64 ": still cannot write it; kept", index);
	}
	held_schedule(h);
}

bool agent_inbox_held_back(agent *a, const Rete__Deliver *d, uint64_t index)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL || h->n == 0 || index <= h->v[0].index)
		return false;
	held_keep(a, h, d, index);
	held_record(a, h, NULL);
	held_schedule(h);
	size_t i = held_find(h, index);
	if (i < h->n && h->v[i].index == index && ++h->v[i].times > HELD_PASS_MAX &&
	    h->v[0].frame == NULL) {
		size_t k = 0;
		while (k < i && h->v[k].frame == NULL)
			k++;
		agent_log(a, "warning",
			  "log entr%s %" PRIu64 "..%" PRIu64 " (not written, no copy kept) did "
			  "not come again while log entry %" PRIu64 " did (%d times): the broker "
			  "no longer holds them (withdrawn at its expiry, or the log went back); "
			  "no longer waiting for them",
			  k == 1 ? "y" : "ies", h->v[0].index, h->v[k - 1].index, index,
			  HELD_PASS_MAX);
		for (size_t j = 0; j < k; j++)
			held_drop_at(h, 0);
		if (index <= h->v[0].index)
			return false;
	}
	agent_debug(a,
		    "log entry %" PRIu64 " not taken yet: log entry %" PRIu64 " before it could "
		    "not be written; kept, written after it",
		    index, h->v[0].index);
	return true;
}

void agent_inbox_held_done(agent *a, uint64_t index)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL || h->n == 0)
		return;
	size_t i = held_find(h, index);
	if (i == h->n || h->v[i].index != index)
		return;
	held_drop_at(h, i);
	h->written++;
	held_record(a, h, NULL);
	if (h->n > 0) {
		/* the next one's turn: at once, if its copy is at hand */
		if (!h->retrying && h->v[0].frame != NULL)
			h->next_try = rete_now_ms();
		return;
	}
	agent_log(a, "info", "inbox/ can be written again: %zu held deliver%s handled and acked",
		  h->written, h->written == 1 ? "y" : "ies");
	h->said[0] = '\0';
	h->written = 0;
	h->next_try = 0;
	h->backoff_ms = 0;
	h->forgot = false;
}

/* held_late says, once per entry, that the kept copy d about to be written
 * was logged longer ago than the network's expiry (the Directory's
 * expiry_ms): the broker may have withdrawn it and told its sender it was
 * not delivered. It is written all the same: the broker's scan runs at its
 * own pace, so the entry may still be queued, and a copy dropped here
 * would be a referral lost if it is; the broker's answer to the ACK says
 * which (agent_inbox_withdrawn: a warning, a notice in inbox/, the
 * referral failed). */
static void held_late(agent *a, struct agent_inbox_held *h, const Rete__Deliver *d, int64_t now)
{
	if (a->dir == NULL || a->dir->dir == NULL || a->dir->dir->expiry_ms <= 0)
		return;
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, d->log_entry.len, d->log_entry.data);
	if (le == NULL)
		return;
	if (le->logged_at + a->dir->dir->expiry_ms < now && h->late_said != le->index + 1) {
		char at[32];
		h->late_said = le->index + 1;
		agent_log(a, "warning",
			  "log entry %" PRIu64 " (held since inbox/ could not be written) was "
			  "logged at %s, longer ago than the network's expiry (%" PRId64 " s): "
			  "the broker may have withdrawn it and told its sender it was not "
			  "delivered; it is written now all the same, and if the broker refuses "
			  "the ACK a notice beside it in inbox/ says so",
			  le->index, rete_time_format(le->logged_at, at),
			  a->dir->dir->expiry_ms / 1000);
	}
	rete__log_entry__free_unpacked(le, NULL);
}

/* acked_put remembers the entry at index in the ring of the last
 * ACKED_MAX acked (the oldest goes). */
static void acked_put(struct agent_inbox_held *h, uint64_t index, const char *kind, const char *id,
		      const char *refid, const char *sender, const char *fname)
{
	acked_item *it = &h->acked[h->acked_next];
	h->acked_next = (h->acked_next + 1) % ACKED_MAX;
	it->used = true;
	it->index = index;
	snprintf(it->id, sizeof(it->id), "%s", id);
	snprintf(it->refid, sizeof(it->refid), "%s", refid);
	snprintf(it->sender, sizeof(it->sender), "%s", sender);
	snprintf(it->kind, sizeof(it->kind), "%s", kind);
	snprintf(it->fname, sizeof(it->fname), "%s", fname);
}

void agent_inbox_acked_note(agent *a, uint64_t index, const Rete__Message *msg, const char *fname)
{
	struct agent_inbox_held *h = held_get(a);
	if (h == NULL || msg == NULL)
		return;
	acked_put(h, index, rete_message_kind(msg), msg->id ? msg->id : "",
		  rete_message_referral_id(msg), msg->sender ? msg->sender : "", fname);
}

/* The newest first: after a restore of the broker's log one run can write
 * two entries at one index (the second as NNN.<hex>-kind.json), and the
 * refusal is of the later ACK. A slot counts only when the broker's signed
 * sentence names its message: it begins "entry N (KIND ID from SENDER)",
 * as ack_withdrawn (broker.c) writes it, the id cut at 64 characters
 * (review s17 rev-late, finding 5). */
bool agent_inbox_acked_of(agent *a, uint64_t index, const char *said, const char **id,
			  const char **refid, const char **sender, const char **kind,
			  const char **fname)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL || said == NULL)
		return false;
	char head[RETE_ID_MAX + 300];
	for (size_t k = 1; k <= ACKED_MAX; k++) {
		const acked_item *it = &h->acked[(h->acked_next + ACKED_MAX - k) % ACKED_MAX];
		if (!it->used || it->index != index)
			continue;
		snprintf(head, sizeof(head), "entry %" PRIu64 " (%s %.64s from %s)", index,
			 it->kind, it->id, it->sender);
		if (strncmp(said, head, strlen(head)) != 0)
			continue;
		*id = it->id;
		*refid = it->refid;
		*sender = it->sender;
		*kind = it->kind;
		*fname = it->fname;
		return true;
	}
	return false;
}

/* --- entries written whose ACK the broker was not seen to take ----------
 *
 * Review s17 rev-late, finding 1: an agent that stops after it recorded an
 * entry and before the broker took its ACK, and stays down past the
 * network's expiry, is never delivered that entry again (the broker
 * withdrew it), so it never acks it again and never learns that its
 * sender was told "not delivered". So each agency's entry written is also
 * recorded as not yet taken (the 'u' record, agent_db.h, in the very
 * transaction that records the file), with what acking it again needs
 * (its leaf hash) and what a refusal's notice names. The record goes once
 * a PONG to a later PING shows that the broker received the ACK (see
 * pending_ack), or with the notice
 * of its refusal. At every WELCOME the agent acks again every entry still
 * recorded: the broker takes the ACK of an entry still queued (its
 * Delivery logged), says nothing of one delivered (a debug line), and
 * refuses, EXPIRED, one it withdrew (agent_inbox_withdrawn). A PING comes
 * only after a heartbeat with nothing from the broker, so a busy agent
 * removes its records when the traffic pauses: at most one commit per
 * heartbeat. */

static void unacked_key(uint8_t k[9], uint64_t index)
{
	k[0] = 'u';
	agent_db_index_key(k + 1, index);
}

rete_err agent_inbox_unacked_put(agent *a, uint64_t index, const Rete__Message *msg,
				 const uint8_t *entry, size_t len, const char *fname, rete_msg *m)
{
	uint8_t k[9], v[RETE_MERKLE_HASH + 4 * (RETE_ID_MAX + 160) + 200];
	const char *parts[5] = {rete_message_kind(msg), msg->id ? msg->id : "",
				rete_message_referral_id(msg), msg->sender ? msg->sender : "",
				fname};
	size_t at = RETE_MERKLE_HASH;
	rete_merkle_leaf_hash(v, entry, len);
	for (size_t i = 0; i < 5; i++) {
		size_t l = strlen(parts[i]);
		if (at + l + 1 > sizeof(v))
			return rete_msg_set(m, RETE_EINVAL,
					    "the record of log entry %" PRIu64 " is too long",
					    index);
		memcpy(v + at, parts[i], l + 1);
		at += l + 1;
	}
	unacked_key(k, index);
	return agent_db_put(a->db, AGENT_DB_INBOX, k, sizeof(k), v, at, m);
}

rete_err agent_inbox_unacked_del(agent *a, uint64_t index, rete_msg *m)
{
	uint8_t k[9];
	unacked_key(k, index);
	return agent_db_del(a->db, AGENT_DB_INBOX, k, sizeof(k), m);
}

void agent_inbox_unacked_sent(agent *a, uint64_t index)
{
	struct agent_inbox_held *h = held_get(a);
	if (h == NULL || h->npend == PENDING_MAX)
		return; /* the record stays: acked again at the next WELCOME */
	h->pend[h->npend].index = index;
	h->pend[h->npend].stamp = agent_net_ping_nonce(a);
	h->npend++;
}

void agent_inbox_on_pong(agent *a, uint64_t nonce)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL || h->npend == 0 || agent_db_in_txn(a->db))
		return;
	rete_msg m = {{0}};
	rete_err err = RETE_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		err = agent_db_begin(a->db, &m);
		for (size_t i = 0; err == RETE_OK && i < h->npend; i++)
			if (h->pend[i].stamp < nonce)
				err = agent_inbox_unacked_del(a, h->pend[i].index, &m);
		if ((err = agent_db_end(a->db, err, &m)) != RETE_EFULL)
			break;
	}
	if (err != RETE_OK) {
		agent_debug(a,
			    "the records of entries acked could not be removed (%s); tried "
			    "again at the next PONG",
			    m.text);
		return;
	}
	size_t kept = 0;
	for (size_t i = 0; i < h->npend; i++)
		if (h->pend[i].stamp >= nonce)
			h->pend[kept++] = h->pend[i];
	h->npend = kept;
}

/* unacked_cstr: the NUL-ended string at *at in v (vlen bytes), *at moved
 * past it; NULL when it is not ended there. */
static const char *unacked_cstr(const uint8_t *v, size_t vlen, size_t *at)
{
	const uint8_t *nul = *at < vlen ? memchr(v + *at, 0, vlen - *at) : NULL;
	if (nul == NULL)
		return NULL;
	const char *str = (const char *)v + *at;
	*at = (size_t)(nul - v) + 1;
	return str;
}

typedef struct resend_ctx {
	agent *a;
	size_t sent, bad;
	uint64_t *drop; /* unacked_list: the records' indexes */
	size_t ndrop, cap;
} resend_ctx;

/* unacked_list collects the indexes of the 'u' records (no read of the
 * store inside the walk: a second read transaction of this thread) */
static bool unacked_list(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	resend_ctx *c = user;
	const uint8_t *k = key;
	(void)val;
	(void)vlen;
	if (klen == 0 || k[0] != 'u')
		return false; /* past the records */
	if (klen != 9)
		return true;
	if (c->ndrop == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		uint64_t *d = realloc(c->drop, cap * sizeof(*d));
		if (d == NULL)
			return false; /* the rest kept: looked at a later WELCOME */
		c->drop = d;
		c->cap = cap;
	}
	uint64_t index = 0;
	for (size_t i = 1; i < 9; i++)
		index = (index << 8) | k[i];
	c->drop[c->ndrop++] = index;
	return true;
}

static bool unacked_resend(const void *key, size_t klen, const void *val, size_t vlen, void *user)
{
	resend_ctx *c = user;
	const uint8_t *k = key, *v = val;
	if (klen == 0 || k[0] != 'u')
		return false; /* past the records */
	if (klen != 9 || vlen < RETE_MERKLE_HASH) {
		c->bad++;
		return true;
	}
	uint64_t index = 0;
	for (size_t i = 1; i < 9; i++)
		index = (index << 8) | k[i];
	size_t at = RETE_MERKLE_HASH;
	const char *kind = unacked_cstr(v, vlen, &at), *id = unacked_cstr(v, vlen, &at),
		   *refid = unacked_cstr(v, vlen, &at), *sender = unacked_cstr(v, vlen, &at),
		   *fname = unacked_cstr(v, vlen, &at);
	if (fname == NULL) {
		c->bad++;
		return true;
	}
	struct agent_inbox_held *h = held_get(c->a);
	if (h != NULL)
		acked_put(h, index, kind, id, refid, sender, fname);
	Rete__Ack ack;
	Rete__SignedAck sa;
	Rete__ClientFrame f = RETE__CLIENT_FRAME__INIT;
	rete_msg m = {{0}};
	if (rete_wire_ack_build_leaf(&ack, &sa, c->a->sk, c->a->origin, c->a->cfg.id, v, index, 0,
				     NULL, &m) != RETE_OK) {
		agent_debug(c->a, "the ACK of log entry %" PRIu64 " cannot be signed again (%s)",
			    index, m.text);
		return true;
	}
	f.command_case = RETE__CLIENT_FRAME__COMMAND_ACK;
	f.ack = &ack;
	if (agent_net_send(c->a, &f) == RETE_OK) {
		agent_inbox_unacked_sent(c->a, index);
		c->sent++;
	}
	rete_signed_ack_clear(&sa);
	return true;
}

void agent_inbox_on_welcome(agent *a)
{
	struct agent_inbox_held *h = held_get(a);
	if (h != NULL)
		h->npend = 0; /* stamps of another connection: acked again below */
	resend_ctx c = {.a = a};
	rete_msg m = {{0}};
	uint8_t from = 'u';
	/* an entry recorded in an epoch before a declared restore: the new
	 * epoch's entry at that index is another one (the sender's agent
	 * submits again what the restore dropped), so its ACK would be refused
	 * as of other bytes; its record goes, unsent (the final read of
	 * session 17, finding 1) */
	size_t dropped = 0;
	if (a->epoch >= 2 &&
	    agent_db_each_from(a->db, AGENT_DB_INBOX, &from, 1, unacked_list, &c, &m) == RETE_OK)
		for (size_t i = 0; i < c.ndrop; i++)
			if (agent_inbox_before_restore(a, c.drop[i]) &&
			    agent_inbox_unacked_del(a, c.drop[i], &m) == RETE_OK)
				dropped++;
	free(c.drop);
	c.drop = NULL;
	if (dropped > 0)
		agent_log(a, "info",
			  "%zu entr%s written to inbox/ in an epoch the broker's restore ended "
			  "(now epoch %u), whose ACK the broker was not seen to take: not acked "
			  "again (the new epoch's entries at those indexes are others; what the "
			  "restore dropped is submitted again by its sender)",
			  dropped, dropped == 1 ? "y" : "ies", a->epoch);
	if (agent_db_each_from(a->db, AGENT_DB_INBOX, &from, 1, unacked_resend, &c, &m) != RETE_OK)
		agent_log(a, "warning",
			  "the entries written whose ACK the broker was not seen to take cannot "
			  "be read (%s): they are not acked again now",
			  m.text);
	if (c.sent > 0)
		agent_log(a, "info",
			  "acked again %zu entr%s written to inbox/ whose ACK the broker was not "
			  "seen to take (the agent or the connection stopped right after): the "
			  "broker refuses the ACK of any it withdrew at its expiry meanwhile",
			  c.sent, c.sent == 1 ? "y" : "ies");
	if (c.bad > 0)
		agent_log(a, "warning",
			  "%zu record%s of entries written whose ACK the broker was not seen to "
			  "take do%s not read: not acked again",
			  c.bad, c.bad == 1 ? "" : "s", c.bad == 1 ? "es" : "");
}

int64_t agent_inbox_held_tick(agent *a, int64_t now)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL || h->n == 0 || h->next_try == 0)
		return -1;
	if (now < h->next_try)
		return h->next_try - now;
	/* In index order: each is handled (agent_inbox_held_done takes it off)
	 * or fails again (kept where it is); the first that stays, or has no
	 * copy (the broker's is awaited), ends the round. */
	h->retrying = true;
	bool failed = false;
	while (h->n > 0 && h->v[0].frame != NULL) {
		uint64_t index = h->v[0].index;
		Rete__Deliver *d = rete__deliver__unpack(NULL, h->v[0].len, h->v[0].frame);
		if (d == NULL) {
			/* our own copy does not decode: await the broker's */
			free(h->v[0].frame);
			h->v[0].frame = NULL;
			h->frames--;
			break;
		}
		held_late(a, h, d, now);
		agent_inbox_on_deliver(a, d);
		rete__deliver__free_unpacked(d, NULL);
		if (h->n > 0 && h->v[0].index == index) {
			failed = true;
			break;
		}
	}
	h->retrying = false;
	if (h->n == 0)
		return -1;
	if (failed) {
		h->backoff_ms = h->backoff_ms * 2 > HELD_LAST_MS ? HELD_LAST_MS : h->backoff_ms * 2;
		if (h->backoff_ms < HELD_FIRST_MS)
			h->backoff_ms = HELD_FIRST_MS;
	} else {
		/* the lowest has no copy: try it when the broker sends it, and
		 * meanwhile again at the slowest pace */
		h->backoff_ms = HELD_LAST_MS;
	}
	h->next_try = now + h->backoff_ms;
	return h->backoff_ms;
}

void agent_inbox_held_free(agent *a)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].frame);
	free(h->v);
	free(h);
	a->inbox_held = NULL;
}
