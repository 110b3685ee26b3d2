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
 * The log says a problem once (its sentence), not at every try, and says
 * when the held deliveries could be written after all.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "duration.h"

/* Beyond this many, rely on the broker delivering it again. The broker
 * sets aside what is read and not acked (broker.c) and goes on with what
 * follows, so a full disk is sent far more than its delivery window (64 by
 * default); each kept copy is a whole frame (up to max_frame, 24 MiB by
 * default): a window's worth bounds the memory as the window did. */
#define HELD_MAX      64
#define HELD_FIRST_MS 250
#define HELD_LAST_MS  8000

typedef struct held_item {
	uint64_t index;
	uint8_t *frame; /* the packed Deliver */
	size_t len;
} held_item;

struct agent_inbox_held {
	held_item *v;
	size_t n, cap;
	int64_t next_try; /* 0: nothing scheduled */
	int64_t backoff_ms;
	char said[512]; /* the problem last said in the log ("": none) */
	bool retrying;	/* inside a retry round: keep the backoff */
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

void agent_inbox_hold(agent *a, const Rete__Deliver *d, uint64_t index, const char *problem)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL) {
		h = calloc(1, sizeof(*h));
		if (h == NULL) {
			agent_log(a, "error", "log entry %" PRIu64 ": %s; not acked", index,
				  problem);
			return;
		}
		a->inbox_held = h;
	}
	const char *key = problem_key(problem);
	if (strcmp(key, h->said) != 0) {
		agent_log(a, "error",
			  "log entry %" PRIu64 ": %s; not acked: the agent keeps it and writes it "
			  "as soon as it can (tries again with a backoff up to %d s; this is said "
			  "once)",
			  index, problem, HELD_LAST_MS / 1000);
		snprintf(h->said, sizeof(h->said), "%s", key);
	} else {
		agent_debug(a, "log entry %" PRIu64 ": still cannot write it; kept", index);
	}
	size_t i;
	for (i = 0; i < h->n; i++)
		if (h->v[i].index == index)
			break;
	if (i == h->n) {
		if (h->n == HELD_MAX) {
			agent_debug(a,
				    "log entry %" PRIu64 " not kept (%d held already): the "
				    "broker delivers it again",
				    index, HELD_MAX);
			return;
		}
		if (h->n == h->cap) {
			size_t nc = h->cap ? h->cap * 2 : 16;
			held_item *v = realloc(h->v, nc * sizeof(*v));
			if (v == NULL)
				return;
			h->v = v;
			h->cap = nc;
		}
		h->v[h->n].frame = NULL;
		h->v[h->n].len = 0;
		h->v[h->n].index = index;
		h->n++;
	}
	size_t len = rete__deliver__get_packed_size(d);
	uint8_t *frame = malloc(len ? len : 1);
	if (frame == NULL) {
		h->v[i] = h->v[--h->n];
		return;
	}
	rete__deliver__pack(d, frame);
	free(h->v[i].frame);
	h->v[i].frame = frame;
	h->v[i].len = len;
	if (!h->retrying && h->next_try == 0) {
		h->backoff_ms = HELD_FIRST_MS;
		h->next_try = rete_now_ms() + h->backoff_ms;
	}
}

int64_t agent_inbox_held_tick(agent *a, int64_t now)
{
	struct agent_inbox_held *h = a->inbox_held;
	if (h == NULL || h->n == 0)
		return -1;
	if (now < h->next_try)
		return h->next_try - now;
	/* This round's items are taken out first: one that fails again is
	 * held again by agent_inbox_on_deliver (through agent_inbox_hold). */
	held_item *round = h->v;
	size_t n = h->n;
	h->v = NULL;
	h->n = h->cap = 0;
	h->retrying = true;
	for (size_t i = 0; i < n; i++) {
		Rete__Deliver *d = rete__deliver__unpack(NULL, round[i].len, round[i].frame);
		if (d != NULL) {
			agent_inbox_on_deliver(a, d);
			rete__deliver__free_unpacked(d, NULL);
		}
		free(round[i].frame);
	}
	free(round);
	h->retrying = false;
	if (h->n > 0) {
		h->written += n > h->n ? n - h->n : 0;
		h->backoff_ms = h->backoff_ms * 2 > HELD_LAST_MS ? HELD_LAST_MS : h->backoff_ms * 2;
		h->next_try = now + h->backoff_ms;
		return h->backoff_ms;
	}
	h->written += n;
	agent_log(a, "info", "inbox/ can be written again: %zu held deliver%s handled and acked",
		  h->written, h->written == 1 ? "y" : "ies");
	h->said[0] = '\0';
	h->written = 0;
	h->next_try = 0;
	h->backoff_ms = 0;
	return -1;
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
