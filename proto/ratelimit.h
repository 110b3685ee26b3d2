/* ratelimit.h — at most one log line per key and window, the rest counted.
 *
 * A peer retrying a refused handshake every few seconds, or a flood of
 * them, must not bury the log in identical warnings (3,000 lines for 3,000
 * attempts). Each kind of repeated line has a key (a short sentence that
 * names the kind and the party or address: "refused connections from
 * 10.0.0.7 (keys not in the directory)"). The first line of a key is
 * written and opens the key's window; the lines of that key within the
 * window are held back and counted; when the window ends the count is said
 * once ("…: 2999 more in the last minute", by rete_ratelimit_sweep or by
 * the next admitted line) and the key starts afresh. So a steady repeat
 * gives at most two lines per window, and a single line is never delayed.
 *
 * The table has RETE_RATELIMIT_SLOTS keys; when all are in use, lines of
 * other keys are counted together (reported with key NULL) rather than
 * written, so many distinct keys cannot defeat the limit either.
 * The caller owns the struct (static is fine: RETE_RATELIMIT_INITIALIZER);
 * every function is safe from any thread (one mutex per limiter).
 */
#ifndef RETE_RATELIMIT_H
#define RETE_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* rete_ratewin is the window of one key, for a caller that keeps its keys
 * itself (the broker keeps one per agency for its HELLO lines, beside the
 * agency's state); rete_ratelimit below keeps its keys in a table of them.
 * Not locked: the caller's thread only. Zero is a key with no window. */
typedef struct rete_ratewin {
	int64_t rw_since; /* when the window opened (ms) */
	int64_t rw_last;  /* the latest line of the key, written or held (ms) */
	uint64_t rw_held; /* lines held back in this window */
	bool rw_open;
} rete_ratewin;

/* rete_ratewin_admit: may a line be written at now_ms? true: write it; it
 * opens a window, and *held is the number of lines the window before held
 * back if nobody took them (rete_ratewin_ended), else 0. false: the line
 * is counted and must not be written. */
bool rete_ratewin_admit(rete_ratewin *w, int64_t window_ms, int64_t now_ms, uint64_t *held);

/* rete_ratewin_ended: did w's window end by now_ms (window_ms after it
 * opened)? true: *held is the number of lines it held back (say them; 0:
 * nothing to say), taken from w. Then, when go_on and lines were held, a
 * window goes on from the latest line held (a repeat that goes on is said
 * once a window, and a line after a window without any is written at
 * once); else w has no window (the next line is written). false: no
 * window, or it runs on (*held 0). */
bool rete_ratewin_ended(rete_ratewin *w, int64_t window_ms, int64_t now_ms, bool go_on,
			uint64_t *held);

/* rete_ratewin_flush takes the number of lines held back in w's window,
 * ended or not (say it: the program is stopping), and closes the window. */
uint64_t rete_ratewin_flush(rete_ratewin *w);

#define RETE_RATELIMIT_SLOTS   64
#define RETE_RATELIMIT_KEY_MAX 200 /* longer keys are cut (their hash tells them apart) */

typedef struct rete_ratelimit_slot {
	uint64_t rs_hash;  /* of the whole key; 0 = free slot */
	rete_ratewin rs_w; /* its window */
	int rs_tag;	   /* the caller's (e.g. the level), given back by sweep */
	char rs_key[RETE_RATELIMIT_KEY_MAX + 1];
} rete_ratelimit_slot;

typedef struct rete_ratelimit {
	pthread_mutex_t rl_lock;
	int64_t rl_window_ms;
	rete_ratelimit_slot rl_slot[RETE_RATELIMIT_SLOTS];
	uint64_t rl_over_held; /* lines of keys that found no free slot */
	int64_t rl_over_since;
	int rl_over_tag;
} rete_ratelimit;

#define RETE_RATELIMIT_INITIALIZER(window_ms)                                                      \
	{                                                                                          \
		.rl_lock = PTHREAD_MUTEX_INITIALIZER, .rl_window_ms = (window_ms)                  \
	}

/* rete_ratelimit_admit: may a line of key (with tag) be written at now_ms?
 * true: write it; if the key's previous window ended with lines held back,
 * *held is their number (say it first), else 0. false: the line is counted
 * and must not be written. */
bool rete_ratelimit_admit(rete_ratelimit *rl, const char *key, int tag, int64_t now_ms,
			  uint64_t *held);

/* rete_ratelimit_report is called by sweep once per ended window with lines
 * held: key NULL for the lines of keys that found no free slot. It runs with
 * the limiter's lock held, so it must not call back into the limiter. */
typedef void (*rete_ratelimit_report)(const char *key, int tag, uint64_t held, void *arg);

/* rete_ratelimit_sweep reports every window that ended by now_ms with lines
 * held and frees the slots of ended windows. Call it now and then (the
 * broker after every batch, the agent in its loop): that is when "N more"
 * is said for a flood that stopped. */
void rete_ratelimit_sweep(rete_ratelimit *rl, int64_t now_ms, rete_ratelimit_report report,
			  void *arg);

/* rete_ratelimit_flush reports every count of lines held back, in windows
 * ended or not (the program is stopping: a count not said now is lost),
 * and frees the slots. */
void rete_ratelimit_flush(rete_ratelimit *rl, rete_ratelimit_report report, void *arg);

#endif
