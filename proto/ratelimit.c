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

bool rete_ratewin_admit(rete_ratewin *w, int64_t window_ms, int64_t now_ms, uint64_t *held)
{
	if (w->rw_open && now_ms - w->rw_since < window_ms) {
		w->rw_held++;
		w->rw_last = now_ms;
		*held = 0;
		return false;
	}
	*held = w->rw_open ? w->rw_held : 0;
	w->rw_held = 0;
	w->rw_since = w->rw_last = now_ms;
	w->rw_open = true;
	return true;
}

bool rete_ratewin_ended(rete_ratewin *w, int64_t window_ms, int64_t now_ms, bool go_on,
			uint64_t *held)
{
	*held = 0;
	if (!w->rw_open || now_ms - w->rw_since < window_ms)
		return false;
	*held = w->rw_held;
	w->rw_held = 0;
	if (go_on && *held > 0)
		w->rw_since = w->rw_last;
	else
		w->rw_open = false;
	return true;
}

uint64_t rete_ratewin_flush(rete_ratewin *w)
{
	uint64_t held = w->rw_held;
	w->rw_held = 0;
	w->rw_open = false;
	return held;
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
			/* a window that ended, not swept yet: a new one opens */
			ok = rete_ratewin_admit(&s->rs_w, rl->rl_window_ms, now_ms, held);
			if (ok)
				s->rs_tag = tag;
			goto out;
		}
		if (s->rs_hash == 0 && free_slot == NULL)
			free_slot = s;
		/* an ended window without held lines is free for the taking */
		if (free_slot == NULL && s->rs_w.rw_held == 0 &&
		    now_ms - s->rs_w.rw_since >= rl->rl_window_ms)
			free_slot = s;
	}
	if (free_slot != NULL) {
		free_slot->rs_hash = h;
		free_slot->rs_w = (rete_ratewin){0};
		rete_ratewin_admit(&free_slot->rs_w, rl->rl_window_ms, now_ms, held);
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
		uint64_t held;
		if (s->rs_hash == 0 ||
		    !rete_ratewin_ended(&s->rs_w, rl->rl_window_ms, now_ms, false, &held))
			continue;
		if (held > 0 && report)
			report(s->rs_key, s->rs_tag, held, arg);
		memset(s, 0, sizeof(*s));
	}
	if (rl->rl_over_held > 0 && now_ms - rl->rl_over_since >= rl->rl_window_ms) {
		if (report)
			report(NULL, rl->rl_over_tag, rl->rl_over_held, arg);
		rl->rl_over_held = 0;
	}
	pthread_mutex_unlock(&rl->rl_lock);
}

void rete_ratelimit_flush(rete_ratelimit *rl, rete_ratelimit_report report, void *arg)
{
	pthread_mutex_lock(&rl->rl_lock);
	for (int i = 0; i < RETE_RATELIMIT_SLOTS; i++) {
		rete_ratelimit_slot *s = &rl->rl_slot[i];
		if (s->rs_hash == 0)
			continue;
		uint64_t held = rete_ratewin_flush(&s->rs_w);
		if (held > 0 && report)
			report(s->rs_key, s->rs_tag, held, arg);
		memset(s, 0, sizeof(*s));
	}
	if (rl->rl_over_held > 0 && report)
		report(NULL, rl->rl_over_tag, rl->rl_over_held, arg);
	rl->rl_over_held = 0;
	pthread_mutex_unlock(&rl->rl_lock);
}
