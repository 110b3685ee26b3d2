/* timestamp.h — the broker's trusted time (issue 14): a thread of its own
 * asks the RFC 3161 time-stamping authority of broker.ini (tsa_url) for a
 * token over each stored checkpoint and keeps it in the store beside the
 * checkpoint (store.h "timestamps"). The main loop only hands it the size of
 * a checkpoint just stored and asks how late the tokens are: it never waits
 * for the TSA.
 *
 * When checkpoints come faster than the TSA answers, or while it is down,
 * the thread stamps the newest one waiting (its token dates every entry
 * below it) and skips those in between. A failed exchange is tried again
 * after 1 s, then 2, 4, ... up to 60 s; a new checkpoint starts the pause
 * afresh. Failures are logged at most once a minute (with the count held
 * back), and the first token after failures is logged.
 *
 * timestamp_grace: when a checkpoint has waited that long for its token
 * (counted from when it was stored, or from the broker's start for one
 * found waiting then), the broker refuses new submissions
 * (ERROR_CODE_NO_TIMESTAMP) until a token comes; it needs no restart.
 */
#ifndef RETE_BROKER_TIMESTAMP_H
#define RETE_BROKER_TIMESTAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "store.h"

typedef struct broker_tsa broker_tsa;

/* broker_tsa_start starts the thread for c's TSA settings (copied: a
 * reload does not change them) over store s, which must outlive it. It
 * reads the latest token and checkpoint of the store: a checkpoint with no
 * token is stamped at once. *out is NULL (and RETE_OK) when c names no TSA.
 * Call rete_tsa_global_init before. Errors: RETE_ENOMEM, RETE_ESTORE (the
 * store cannot be read). */
rete_err broker_tsa_start(broker_tsa **out, rete_store *s, const broker_config *c, rete_msg *m);

/* broker_tsa_stop stops the thread, frees *t and sets it to NULL; NULL is
 * fine. An exchange in progress is abandoned within about a second (not
 * tsa_timeout: a TSA that does not answer must not hold the broker's stop
 * past systemd's TimeoutStopSec); its checkpoint keeps no token, and the
 * next start asks for it again. */
void broker_tsa_stop(broker_tsa **t);

/* broker_tsa_halt ends the thread as broker_tsa_stop does (an exchange in
 * progress abandoned within about a second) but keeps t: its state can
 * still be read (the metrics thread may, until it stops) and
 * broker_tsa_stop frees it later. A second call does nothing; NULL is
 * fine. */
void broker_tsa_halt(broker_tsa *t);

/* broker_tsa_checkpoint tells the thread that the checkpoint of tree size
 * `size` is stored (never blocks for long: one mutex). NULL t is fine. */
void broker_tsa_checkpoint(broker_tsa *t, uint64_t size);

/* broker_tsa_refusal: with timestamp_grace set and a checkpoint waiting
 * longer than that (measured on the monotonic clock), true and the sentence for the refused
 * submission in text; else false. NULL t: false. */
bool broker_tsa_refusal(broker_tsa *t, char *text, size_t n);

/* broker_tsa_problem: a sentence for `rete health` when the tokens are
 * late (the last exchange with the TSA failed, or a checkpoint waits past
 * timestamp_grace); false when all is well. *last_ms (may be NULL) gets the
 * genTime of the latest token (0: none). NULL t: false, 0. */
bool broker_tsa_problem(broker_tsa *t, char *text, size_t n, int64_t *last_ms);

/* broker_tsa_clock_problem: a sentence for `rete health` while the
 * newest token's genTime differs from the broker's clock by more than a
 * minute (naming the TSA: either clock may be the wrong one); false when
 * they agree, or no TSA (NULL t). */
bool broker_tsa_clock_problem(broker_tsa *t, char *text, size_t n);

/* The time-stamping state for the metrics endpoint (read under the
 * thread's lock, from any thread). */
typedef struct broker_tsa_state {
	uint64_t stamped;      /* the newest checkpoint size with a token (0: none) */
	int64_t last_gen_ms;   /* its token's genTime (0: none) */
	int64_t waiting_since; /* oldest checkpoint still without a token (wall ms), 0: none */
	int64_t waited_ms;     /* how long it has waited (monotonic clock), 0: none waits */
	uint64_t failures;     /* failed exchanges since the last token */
	bool refusing;	       /* timestamp_grace is refusing submissions now */
} broker_tsa_state;

/* broker_tsa_state_get fills *st now; false (and *st zeroed) for a
 * NULL t (no TSA configured). */
bool broker_tsa_state_get(broker_tsa *t, broker_tsa_state *st);

/* broker_tsa_gen_time reads the genTime of DER token tok[0:len] into *ms
 * (Unix milliseconds) without checking the token (it was checked when
 * stored). Errors: RETE_EDECODE. */
rete_err broker_tsa_gen_time(const uint8_t *tok, size_t len, int64_t *ms, rete_msg *m);

#endif
