/* ratelimit.c — see ratelimit.h. */
#include "ratelimit.h"

#include <string.h>

/* key_hash is FNV-1a over the whole key; never 0 (0 marks a free slot). */
static uint64_t key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

bool rete_ratelimit_admit(rete_ratelimit *rl, const char *key, int tag, int64_t now_ms,
			  uint64_t *held)
{
	uint64_t h = key_hash(key ? key : "");
	rete_ratelimit_slot *free_slot = NULL;
	bool ok = true;
	*held = 0;
	pthread_mutex_lock(&rl->rl_lock);
	for (int i = 0; i < RETE_RATELIMIT_SLOTS; i++) {
		rete_ratelimit_slot *s = &rl->rl_slot[i];
		if (s->rs_hash == h) {
			if (now_ms - s->rs_since < rl->rl_window_ms) {
				s->rs_held++;
				ok = false;
			} else {
				/* the window ended, not swept yet: a new one opens */
				*held = s->rs_held;
				s->rs_held = 0;
				s->rs_since = now_ms;
				s->rs_tag = tag;
			}
			goto out;
		}
		if (s->rs_hash == 0 && free_slot == NULL)
			free_slot = s;
		/* an ended window without held lines is free for the taking */
		if (free_slot == NULL && s->rs_held == 0 &&
		    now_ms - s->rs_since >= rl->rl_window_ms)
			free_slot = s;
	}
	if (free_slot != NULL) {
		free_slot->rs_hash = h;
		free_slot->rs_since = now_ms;
		free_slot->rs_held = 0;
		free_slot->rs_tag = tag;
		size_t n = strlen(key ? key : "");
		if (n > RETE_RATELIMIT_KEY_MAX)
			n = RETE_RATELIMIT_KEY_MAX;
		memcpy(free_slot->rs_key, key ? key : "", n);
		free_slot->rs_key[n] = '\0';
	} else {
		/* every slot is in a live window: count it with the others */
		if (rl->rl_over_held == 0) {
			rl->rl_over_since = now_ms;
			rl->rl_over_tag = tag;
		}
		if (tag < rl->rl_over_tag)
			rl->rl_over_tag = tag; /* the most severe level held */
		rl->rl_over_held++;
		ok = false;
	}
out:
	pthread_mutex_unlock(&rl->rl_lock);
	return ok;
}

void rete_ratelimit_sweep(rete_ratelimit *rl, int64_t now_ms, rete_ratelimit_report report,
			  void *arg)
{
	pthread_mutex_lock(&rl->rl_lock);
	for (int i = 0; i < RETE_RATELIMIT_SLOTS; i++) {
		rete_ratelimit_slot *s = &rl->rl_slot[i];
		if (s->rs_hash == 0 || now_ms - s->rs_since < rl->rl_window_ms)
			continue;
		if (s->rs_held > 0 && report)
			report(s->rs_key, s->rs_tag, s->rs_held, arg);
		memset(s, 0, sizeof(*s));
	}
	if (rl->rl_over_held > 0 && now_ms - rl->rl_over_since >= rl->rl_window_ms) {
		if (report)
			report(NULL, rl->rl_over_tag, rl->rl_over_held, arg);
		rl->rl_over_held = 0;
	}
	pthread_mutex_unlock(&rl->rl_lock);
}
