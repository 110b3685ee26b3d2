/* timestamp.c — the broker's time-stamping thread (timestamp.h). */
#define _GNU_SOURCE
#include "timestamp.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pkcs7.h>
#include <openssl/ts.h>

#include "duration.h"
#include "log.h"
#include "tsa.h"

#define TSA_RETRY_FIRST_MS 1000
#define TSA_RETRY_MAX_MS   60000

struct broker_tsa {
	rete_store *store;
	char *url, *ca, *user, *password;
	int64_t timeout_ms, grace_ms;
	char grace_text[32];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	/* set by broker_tsa_stop; read without the lock by the exchange's
	 * progress callback, which must not wait on the thread's lock */
	atomic_bool abandon;
	bool joined; /* broker_tsa_halt joined the thread (the caller's thread only) */
	/* under lock: */
	bool stop;
	uint64_t want;	       /* the newest stored checkpoint (0: none) */
	int64_t want_at;       /* when it was handed over (wall ms) */
	uint64_t stamped;      /* the newest checkpoint with a token (0: none) */
	int64_t waiting_since; /* oldest checkpoint still without a token (wall ms), 0: none */
	int64_t want_mono;     /* want_at on the monotonic clock */
	int64_t waiting_mono;  /* waiting_since on the monotonic clock: the grace is
				  measured on it, so a jump of the wall clock (NTP, an
				  operator) neither refuses early nor extends it */
	int64_t last_gen_ms;   /* genTime of the newest token (0: none) */
	int64_t next_try;      /* monotonic ms of the next attempt (0: at once) */
	int64_t pause_ms;      /* the pause after the next failure */
	uint64_t failures;     /* failed exchanges since the last token */
	char last_error[768];
	/* the last token's genTime against the broker's clock during the
	 * exchange: the sentence for health while they differ by more than
	 * TSA_CLOCK_DIFF_MS ('\0': they agree) */
	char clock_diff[512];
};

/* TSA_CLOCK_DIFF_MS: a token's genTime further than this from the broker's
 * clock (during the exchange) means one of the two clocks is wrong */
#define TSA_CLOCK_DIFF_MS (60 * 1000)

static int64_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fmt_utc writes ms as "2026-12-06 08:19:34 UTC". */
static const char *fmt_utc(int64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

rete_err broker_tsa_gen_time(const uint8_t *tok, size_t len, int64_t *ms, rete_msg *m)
{
	const unsigned char *p = tok;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	TS_TST_INFO *tst = p7 ? PKCS7_to_TS_TST_INFO(p7) : NULL;
	const ASN1_GENERALIZEDTIME *gt = tst ? TS_TST_INFO_get_time(tst) : NULL;
	struct tm tm;
	rete_err err = RETE_OK;

	if (gt == NULL || !ASN1_TIME_to_tm(gt, &tm)) {
		err = rete_msg_set(m, RETE_EDECODE,
				   "a stored time-stamp token (%zu bytes) has no readable genTime",
				   len);
	} else {
		int64_t frac = 0;
		const char *s = (const char *)ASN1_STRING_get0_data(gt);
		const char *dot = memchr(s, '.', (size_t)ASN1_STRING_length(gt));
		if (dot != NULL) {
			int digits = 0;
			for (const char *d = dot + 1; *d >= '0' && *d <= '9' && digits < 3;
			     d++, digits++)
				frac = frac * 10 + (*d - '0');
			for (; digits < 3; digits++)
				frac *= 10;
		}
		*ms = (int64_t)timegm(&tm) * 1000 + frac;
	}
	TS_TST_INFO_free(tst);
	PKCS7_free(p7);
	return err;
}

/* abandon_now: rete_tsa_http's abandon, true once the broker stops. */
static bool abandon_now(void *arg)
{
	broker_tsa *t = arg;
	return atomic_load(&t->abandon);
}

/* stamp asks the TSA for a token over the checkpoint of `size` and stores
 * it. Runs without the lock. */
static rete_err stamp(broker_tsa *t, uint64_t size, int64_t *gen_ms, rete_msg *m)
{
	char *note = NULL;
	uint8_t *tok = NULL;
	size_t tok_len = 0;
	rete_tsa_info info;
	rete_tsa_http http = {.url = t->url,
			      .timeout_ms = (long)t->timeout_ms,
			      .connect_timeout_ms =
				  t->timeout_ms < 5000 ? (long)t->timeout_ms : 5000,
			      .user = t->user,
			      .password = t->password,
			      .abandon = abandon_now,
			      .abandon_arg = t};
	rete_err err = rete_store_checkpoint_get(t->store, NULL, size, &note, m);

	if (err == RETE_OK)
		err = rete_tsa_stamp(&http, note, strlen(note), t->ca, &tok, &tok_len, &info, m);
	if (err == RETE_OK) {
		err = rete_store_timestamp_put(t->store, size, tok, tok_len, m);
		if (err != RETE_OK)
			rete_msg_prefix(m, "the token for checkpoint %" PRIu64 " cannot be stored",
					size);
	}
	if (err == RETE_OK)
		*gen_ms = info.gen_time_ms;
	free(tok);
	free(note);
	return err;
}

/* clock_compare: the token of checkpoint `size` has genTime gen, and the
 * exchange ran from asked to answered on the broker's clock. Further than
 * TSA_CLOCK_DIFF_MS out of that: an error (once, until they agree again)
 * and a problem in health naming the TSA. The broker cannot tell which
 * clock is wrong: its own is checked at its start against its log, the
 * TSA's is someone else's. Under lock. */
static void clock_compare(broker_tsa *t, uint64_t size, int64_t gen, int64_t asked,
			  int64_t answered)
{
	char span[32], at[40];
	int64_t diff = gen > answered ? gen - answered : gen < asked ? asked - gen : 0;
	if (diff <= TSA_CLOCK_DIFF_MS) {
		if (t->clock_diff[0] != '\0')
			broker_log_info("time stamps: the TSA at %s and the broker's clock agree "
					"again (checkpoint %" PRIu64 " stamped at %s)",
					t->url, size, fmt_utc(gen, at, sizeof(at)));
		t->clock_diff[0] = '\0';
		return;
	}
	bool said = t->clock_diff[0] != '\0';
	/* whole minutes: the exchange blurs the seconds */
	broker_duration_text(diff / 60000 * 60000, span, sizeof(span));
	snprintf(t->clock_diff, sizeof(t->clock_diff),
		 "the TSA at %s dated checkpoint %" PRIu64 " %s, about %s %s the broker's clock: "
		 "the TSA's clock or the broker's is wrong; check the broker's (timedatectl) "
		 "and, if it is right, tell the TSA's operator; the tokens stay valid, but "
		 "they do not date the log as they should",
		 t->url, size, fmt_utc(gen, at, sizeof(at)), span,
		 gen > answered ? "ahead of" : "behind");
	if (!said)
		broker_log_error("time stamps: %s", t->clock_diff);
}

static void *tsa_main(void *arg)
{
	broker_tsa *t = arg;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		int64_t now = mono_now();
		if (t->want <= t->stamped || now < t->next_try) {
			if (t->want <= t->stamped) {
				pthread_cond_wait(&t->wake, &t->lock);
			} else {
				int64_t at = t->next_try;
				struct timespec ts = {.tv_sec = at / 1000,
						      .tv_nsec = (at % 1000) * 1000000};
				pthread_cond_timedwait(&t->wake, &t->lock, &ts);
			}
			continue;
		}
		uint64_t size = t->want;
		pthread_mutex_unlock(&t->lock);

		rete_msg m = {{0}};
		int64_t gen = 0, asked = rete_now_ms();
		rete_err err = stamp(t, size, &gen, &m);
		int64_t answered = rete_now_ms();
		char when[40];

		pthread_mutex_lock(&t->lock);
		if (err != RETE_OK && t->stop) {
			/* abandoned by the stop (or failed as it came): not a
			 * failure of the TSA; the checkpoint stays without a token
			 * and the next start asks for it (broker_tsa_start) */
			broker_log_info("time stamps: the exchange for checkpoint %" PRIu64
					" was ended by the stop; the next start asks again",
					size);
			break;
		}
		if (err == RETE_OK) {
			if (t->failures > 0)
				broker_log_info(
				    "time stamps: the TSA at %s answers again after %" PRIu64
				    " failed exchange%s; checkpoint %" PRIu64 " stamped at %s",
				    t->url, t->failures, t->failures == 1 ? "" : "s", size,
				    fmt_utc(gen, when, sizeof(when)));
			else
				broker_log_debug("time stamps: checkpoint %" PRIu64
						 " stamped at %s",
						 size, fmt_utc(gen, when, sizeof(when)));
			clock_compare(t, size, gen, asked, answered);
			if (size > t->stamped)
				t->stamped = size;
			if (gen > t->last_gen_ms)
				t->last_gen_ms = gen;
			t->failures = 0;
			t->last_error[0] = '\0';
			t->pause_ms = TSA_RETRY_FIRST_MS;
			t->next_try = 0;
			/* a newer checkpoint came meanwhile: it waits since then */
			t->waiting_since = t->want > t->stamped ? t->want_at : 0;
			t->waiting_mono = t->want > t->stamped ? t->want_mono : 0;
		} else {
			t->failures++;
			snprintf(t->last_error, sizeof(t->last_error), "%s", m.text);
			t->next_try = mono_now() + t->pause_ms;
			t->pause_ms =
			    t->pause_ms * 2 > TSA_RETRY_MAX_MS ? TSA_RETRY_MAX_MS : t->pause_ms * 2;
			char key[160];
			snprintf(key, sizeof(key), "time-stamp failures (TSA %.100s)", t->url);
			broker_log_limited(
			    RETE_LOG_WARNING, key,
			    "time stamps: no token for checkpoint %" PRIu64 " (attempt %" PRIu64
			    "): %s; asking again in %" PRId64 " s",
			    size, t->failures, m.text, (t->next_try - mono_now() + 999) / 1000);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void tsa_free(broker_tsa *t)
{
	if (!t)
		return;
	free(t->url);
	free(t->ca);
	free(t->user);
	if (t->password) {
		explicit_bzero(t->password, strlen(t->password));
		free(t->password);
	}
	free(t);
}

rete_err broker_tsa_start(broker_tsa **out, rete_store *s, const broker_config *c, rete_msg *m)
{
	*out = NULL;
	if (c->tsa_url == NULL)
		return RETE_OK;
	broker_tsa *t = calloc(1, sizeof(*t));
	if (!t)
		return rete_msg_set(m, RETE_ENOMEM, "time stamps: out of memory");
	atomic_init(&t->abandon, false);
	t->store = s;
	t->timeout_ms = c->tsa_timeout_ms > 0 ? c->tsa_timeout_ms : 30000;
	t->grace_ms = c->timestamp_grace_ms;
	snprintf(t->grace_text, sizeof(t->grace_text), "%s", c->timestamp_grace);
	t->pause_ms = TSA_RETRY_FIRST_MS;
	t->url = strdup(c->tsa_url);
	t->ca = c->tsa_ca ? strdup(c->tsa_ca) : NULL;
	t->user = c->tsa_user ? strdup(c->tsa_user) : NULL;
	t->password = c->tsa_password ? strdup(c->tsa_password) : NULL;
	if (!t->url || (c->tsa_ca && !t->ca) || (c->tsa_user && !t->user) ||
	    (c->tsa_password && !t->password)) {
		tsa_free(t);
		return rete_msg_set(m, RETE_ENOMEM, "time stamps: out of memory");
	}

	/* what the store holds: the newest token, the newest checkpoint */
	rete_buf tok = {0};
	uint64_t size = 0;
	char *note = NULL;
	rete_err err = rete_store_timestamp_latest(s, NULL, &t->stamped, &tok, m);
	if (err == RETE_OK) {
		rete_msg gm = {{0}};
		/* only for display and the grace's sentence: not a reason to
		 * stay down */
		if (broker_tsa_gen_time(tok.data, tok.len, &t->last_gen_ms, &gm) != RETE_OK)
			broker_log_warn("time stamps: the token of checkpoint %" PRIu64 ": %s",
					t->stamped, gm.text);
	} else if (err == RETE_ENOENT) {
		err = RETE_OK;
	}
	rete_buf_free(&tok);
	if (err == RETE_OK) {
		err = rete_store_checkpoint_latest(s, NULL, &size, &note, m);
		free(note);
		if (err == RETE_ENOENT)
			err = RETE_OK;
	}
	if (err != RETE_OK) {
		tsa_free(t);
		return err;
	}
	int64_t now = rete_now_ms();
	if (size > t->stamped) {
		t->want = size;
		t->want_at = now;
		t->waiting_since = now;
		t->want_mono = t->waiting_mono = mono_now();
	}

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&t->lock, NULL);
	if (pthread_create(&t->thread, NULL, tsa_main, t) != 0) {
		pthread_cond_destroy(&t->wake);
		pthread_mutex_destroy(&t->lock);
		tsa_free(t);
		return rete_msg_set(m, RETE_ENOMEM, "time stamps: cannot start the thread");
	}
	*out = t;
	return RETE_OK;
}

void broker_tsa_halt(broker_tsa *t)
{
	if (!t || t->joined)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	atomic_store(&t->abandon, true); /* an exchange in flight ends too */
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->joined = true;
}

void broker_tsa_stop(broker_tsa **pt)
{
	if (!pt || !*pt)
		return;
	broker_tsa *t = *pt;
	broker_tsa_halt(t);
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
	tsa_free(t);
	*pt = NULL;
}

void broker_tsa_checkpoint(broker_tsa *t, uint64_t size)
{
	if (!t)
		return;
	int64_t now = rete_now_ms();
	pthread_mutex_lock(&t->lock);
	if (size > t->want) {
		t->want = size;
		t->want_at = now;
		t->want_mono = mono_now();
		if (size > t->stamped && t->waiting_since == 0) {
			t->waiting_since = now;
			t->waiting_mono = t->want_mono;
		}
		/* a new checkpoint: ask at once, with the pauses afresh */
		t->next_try = 0;
		t->pause_ms = TSA_RETRY_FIRST_MS;
		pthread_cond_signal(&t->wake);
	}
	pthread_mutex_unlock(&t->lock);
}

/* waited: how long the oldest checkpoint without a token has waited, in
 * ms of the monotonic clock (0: none waits). Under lock. */
static int64_t waited(const broker_tsa *t)
{
	return t->waiting_mono > 0 ? mono_now() - t->waiting_mono : 0;
}

/* describe_last says when the last token was obtained. Under lock. */
static const char *describe_last(const broker_tsa *t, char *buf, size_t n)
{
	char when[40];
	if (t->last_gen_ms > 0)
		snprintf(buf, n, "the last token is of %s (checkpoint %" PRIu64 ")",
			 fmt_utc(t->last_gen_ms, when, sizeof(when)), t->stamped);
	else
		snprintf(buf, n, "no token has been obtained yet");
	return buf;
}

bool broker_tsa_refusal(broker_tsa *t, char *text, size_t n)
{
	if (!t || t->grace_ms == 0)
		return false;
	bool late = false;
	pthread_mutex_lock(&t->lock);
	if (t->waiting_since > 0 && waited(t) >= t->grace_ms) {
		char last[160], since[40];
		late = true;
		snprintf(text, n,
			 "the broker has no time-stamp token for the log since %s (checkpoint "
			 "%" PRIu64 " waits longer than timestamp_grace %s; %s; the TSA at %s: "
			 "%s); new submissions are refused until a token comes, send this "
			 "message again later",
			 fmt_utc(t->waiting_since, since, sizeof(since)), t->want, t->grace_text,
			 describe_last(t, last, sizeof(last)), t->url,
			 t->last_error[0] ? t->last_error : "no answer yet");
	}
	pthread_mutex_unlock(&t->lock);
	return late;
}

bool broker_tsa_problem(broker_tsa *t, char *text, size_t n, int64_t *last_ms)
{
	if (last_ms)
		*last_ms = 0;
	if (!t)
		return false;
	bool problem = false;
	pthread_mutex_lock(&t->lock);
	if (last_ms)
		*last_ms = t->last_gen_ms;
	if (t->waiting_since > 0 &&
	    (t->failures > 0 || (t->grace_ms > 0 && waited(t) >= t->grace_ms))) {
		char last[160], since[40];
		bool refusing = t->grace_ms > 0 && waited(t) >= t->grace_ms;
		problem = true;
		snprintf(text, n,
			 "time stamps are late: checkpoint %" PRIu64 " waits for a token since %s "
			 "(%" PRId64 " s), %s; %" PRIu64 " failed exchange%s with the TSA at %s, "
			 "the last: %s; %s",
			 t->want, fmt_utc(t->waiting_since, since, sizeof(since)), waited(t) / 1000,
			 describe_last(t, last, sizeof(last)), t->failures,
			 t->failures == 1 ? "" : "s", t->url,
			 t->last_error[0] ? t->last_error : "none yet",
			 refusing	   ? "new submissions are refused (timestamp_grace)"
			 : t->grace_ms > 0 ? "new submissions will be refused after timestamp_grace"
					   : "timestamp_grace is off: submissions are accepted");
		if (t->grace_ms > 0 && !refusing) {
			size_t l = strlen(text);
			snprintf(text + l, n - l, " %s", t->grace_text);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return problem;
}

bool broker_tsa_clock_problem(broker_tsa *t, char *text, size_t n)
{
	if (!t)
		return false;
	pthread_mutex_lock(&t->lock);
	bool problem = t->clock_diff[0] != '\0';
	if (problem)
		snprintf(text, n, "%s", t->clock_diff);
	pthread_mutex_unlock(&t->lock);
	return problem;
}

bool broker_tsa_state_get(broker_tsa *t, broker_tsa_state *st)
{
	memset(st, 0, sizeof(*st));
	if (!t)
		return false;
	pthread_mutex_lock(&t->lock);
	st->stamped = t->stamped;
	st->last_gen_ms = t->last_gen_ms;
	st->waiting_since = t->waiting_since;
	st->waited_ms = waited(t);
	st->failures = t->failures;
	st->refusing = t->grace_ms > 0 && t->waiting_since > 0 && waited(t) >= t->grace_ms;
	pthread_mutex_unlock(&t->lock);
	return true;
}
