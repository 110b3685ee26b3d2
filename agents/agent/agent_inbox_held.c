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
	unsigned times; /* came while held back (agent_inbox_held_back) */
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

struct agent_inbox_held {
	acked_item acked[ACKED_MAX];
	size_t acked_next;
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
 * the count changes, removed when none is held. The agent's store may be on
 * the same full disk: a write that fails is only a debug line (the log
 * line of the hold says it all the same). */
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
	if (h->since == 0)
		h->since = rete_now_ms();
	bool changed = problem != NULL && strcmp(problem_key(problem), h->said) != 0;
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

void agent_inbox_acked_note(agent *a, uint64_t index, const Rete__Message *msg, const char *fname)
{
	struct agent_inbox_held *h = held_get(a);
	if (h == NULL || msg == NULL)
		return;
	acked_item *it = &h->acked[h->acked_next];
	h->acked_next = (h->acked_next + 1) % ACKED_MAX;
	it->used = true;
	it->index = index;
	snprintf(it->id, sizeof(it->id), "%s", msg->id ? msg->id : "");
	snprintf(it->refid, sizeof(it->refid), "%s", rete_message_referral_id(msg));
	snprintf(it->sender, sizeof(it->sender), "%s", msg->sender ? msg->sender : "");
	snprintf(it->kind, sizeof(it->kind), "%s", rete_message_kind(msg));
	snprintf(it->fname, sizeof(it->fname), "%s", fname);
}

bool agent_inbox_acked_of(agent *a, uint64_t index, const char **id, const char **refid,
			  const char **sender, const char **kind, const char **fname)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL)
		return false;
	for (size_t i = 0; i < ACKED_MAX; i++) {
		const acked_item *it = &h->acked[i];
		if (!it->used || it->index != index)
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
