/* decode_bench.c — the broker main thread's decoding of one submission,
 * repeated: what it costs in CPU time, and (under callgrind) in
 * instructions.
 *
 * One ~1 KiB referral is built and signed as bench/rete_bench.c builds its
 * referrals (same fields, the padding in consent.legalBasis, a sealed part
 * of ~150 bytes beside it) and packed into the ClientFrame a sending
 * agency puts on the wire. Each repetition then does what the broker does
 * with such a frame between reading it and answering its batch: the strict
 * decoding of the ClientFrame (frame_admit), of its SignedMessage and of
 * the Message inside (broker_submit_precheck), and the frees (frame_clear),
 * in the mode chosen:
 *
 *   malloc  rete_pb_strict_unpack + rete_signed_decode + three
 *           free_unpacked, as the broker did before the arena
 *   arena   rete_pb_strict_unpack_in + rete_signed_decode_in into a
 *           rete_arena reset after every 64 frames (a batch)
 *   fast    rete_client_frame_decode + rete_signed_decode_in into the
 *           arena: the wrappers' bytes not copied (they point into the
 *           frame's bytes), as the broker does now (the default)
 *   fastcopy the same after copying the frame's bytes into the arena
 *
 * Thread CPU time (CLOCK_THREAD_CPUTIME_ID), best of --runs runs of --iters
 * repetitions, in ns per submission. For instruction counts:
 *
 *   valgrind --tool=callgrind --toggle-collect=one_submission \
 *       build/bin/decode_bench --iters 2000 --runs 1 --mode fast
 *
 * then divide the Ir of one_submission by the repetitions. A benchmark,
 * never a test: it asserts nothing about the numbers.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_referral.h"
#include "codec.h"
#include "keys.h"
#include "rete.pb-c.h"

#define MSG_BYTES 1024
#define ORIGIN	  "bench.rete/mantova"
#define BATCH	  64 /* frames per arena reset (the broker resets per batch) */

static char pad[MSG_BYTES];
static rete_seckey *sender, *recipient;
static uint8_t sealed_hash[RETE_HASH_LEN];
static rete_buf sealed;

static void die(const char *what)
{
	fprintf(stderr, "decode_bench: %s\n", what);
	exit(2);
}

static void referral(rete_buf *out)
{
	struct bench_referral b;
	rete_msg m;
	Rete__Message *msg =
	    bench_referral_init(&b, "msg-0000000000000042", "ag0000.bench", "ag0001.bench", ORIGIN,
				1795430400123, pad, sealed_hash);

	if (rete_message_sign(msg, sender, out, &m) != RETE_OK)
		die(m.text);
}

/* frame_make builds the SUBMIT ClientFrame of a 1 KiB signed referral. */
static void frame_make(rete_buf *frame, size_t *sm_len)
{
	Rete__Private priv = RETE__PRIVATE__INIT;
	Rete__Person person = RETE__PERSON__INIT;
	rete_msg m;
	rete_buf sm = {0};
	const char *cite = "L. 328/2000 art. 22 c. 2; ";
	size_t len = 400;

	if (rete_seckey_generate(&sender, &m) != RETE_OK ||
	    rete_seckey_generate(&recipient, &m) != RETE_OK)
		die(m.text);
	person.name = (char *)"Mario Rossi";
	priv.person = &person;
	priv.reason = (char *)"needs help finding work after the family moved here; "
			      "the school reports absences";
	if (rete_seal(&priv, &recipient->pub, &sealed, sealed_hash, &m) != RETE_OK)
		die(m.text);
	for (int round = 0; round < 3; round++) { /* the SignedMessage 1,024 bytes */
		for (size_t i = 0; i < len; i++)
			pad[i] = cite[i % strlen(cite)];
		pad[len] = '\0';
		referral(&sm);
		long diff = (long)MSG_BYTES - (long)sm.len;
		if (diff == 0)
			break;
		rete_buf_free(&sm);
		len = (size_t)((long)len + diff);
	}
	*sm_len = sm.len;

	Rete__ClientFrame f = RETE__CLIENT_FRAME__INIT;
	Rete__Submit sub = RETE__SUBMIT__INIT;
	sub.signed_message.data = sm.data;
	sub.signed_message.len = sm.len;
	sub.sealed.data = sealed.data;
	sub.sealed.len = sealed.len;
	f.version = RETE_PROTOCOL_VERSION;
	f.command_case = RETE__CLIENT_FRAME__COMMAND_SUBMIT;
	f.submit = &sub;
	frame->len = rete__client_frame__get_packed_size(&f);
	frame->data = malloc(frame->len);
	if (!frame->data)
		die("out of memory");
	rete__client_frame__pack(&f, frame->data);
	rete_buf_free(&sm);
}

enum mode { MODE_MALLOC, MODE_ARENA, MODE_FAST, MODE_FASTCOPY };
static const char *const mode_name[] = {"malloc", "arena", "fast", "fastcopy"};

static rete_arena arena;
static size_t in_batch;

/* one_submission decodes, checks and frees one frame as the broker does
 * (not inlined: callgrind's --toggle-collect names it). */
__attribute__((noinline)) void one_submission(enum mode mode, const uint8_t *data, size_t len);
__attribute__((noinline)) void one_submission(enum mode mode, const uint8_t *data, size_t len)
{
	rete_msg m;
	if (mode == MODE_MALLOC) {
		ProtobufCMessage *pm = NULL;
		Rete__SignedMessage *sm = NULL;
		Rete__Message *msg = NULL;
		if (rete_pb_strict_unpack(&rete__client_frame__descriptor, data, len, &pm, &m) !=
		    RETE_OK)
			die(m.text);
		Rete__ClientFrame *cf = (Rete__ClientFrame *)pm;
		if (rete_signed_decode(cf->submit->signed_message.data,
				       cf->submit->signed_message.len, &sm, &msg, &m) != RETE_OK)
			die(m.text);
		rete__client_frame__free_unpacked(cf, NULL);
		rete__signed_message__free_unpacked(sm, NULL);
		rete__message__free_unpacked(msg, NULL);
		return;
	}
	if (mode == MODE_FAST || mode == MODE_FASTCOPY) {
		Rete__ClientFrame *cf = NULL;
		Rete__SignedMessage *sm = NULL;
		Rete__Message *msg = NULL;
		if (mode == MODE_FASTCOPY) { /* the frame's bytes kept in the arena */
			uint8_t *copy = rete_arena_alloc(&arena, len);
			if (!copy)
				die("out of memory");
			memcpy(copy, data, len);
			data = copy;
		}
		if (rete_client_frame_decode(data, len, &arena, &cf, &m) != RETE_OK)
			die(m.text);
		if (rete_signed_decode_in(cf->submit->signed_message.data,
					  cf->submit->signed_message.len, &arena, &sm, &msg,
					  &m) != RETE_OK)
			die(m.text);
		if (++in_batch == BATCH) {
			rete_arena_reset(&arena);
			in_batch = 0;
		}
		return;
	}
	ProtobufCMessage *pm = NULL;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	if (rete_pb_strict_unpack_in(&rete__client_frame__descriptor, data, len, &arena, &pm, &m) !=
	    RETE_OK)
		die(m.text);
	Rete__ClientFrame *cf = (Rete__ClientFrame *)pm;
	if (rete_signed_decode_in(cf->submit->signed_message.data, cf->submit->signed_message.len,
				  &arena, &sm, &msg, &m) != RETE_OK)
		die(m.text);
	if (++in_batch == BATCH) { /* the batch answered */
		rete_arena_reset(&arena);
		in_batch = 0;
	}
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long iters = 100000, runs = 5;
	enum mode mode = MODE_FAST;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atol(argv[++i]);
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			const char *v = argv[++i];
			size_t k = 0;
			while (k < 4 && strcmp(v, mode_name[k]) != 0)
				k++;
			if (k == 4)
				die("--mode malloc|arena|fast|fastcopy");
			mode = (enum mode)k;
		} else {
			fprintf(stderr, "usage: decode_bench [--iters N] [--runs R] [--mode "
					"malloc|arena|fast|fastcopy]\n");
			return 2;
		}
	}
	if (iters < 1 || runs < 1)
		die("--iters and --runs must be positive");
	if (rete_crypto_init(NULL) != RETE_OK)
		die("libsodium");
	rete_buf frame = {0};
	size_t sm_len = 0;
	frame_make(&frame, &sm_len);
	double best = 0;
	for (long r = 0; r < runs; r++) {
		double t0 = now_ns();
		for (long i = 0; i < iters; i++)
			one_submission(mode, frame.data, frame.len);
		double per = (now_ns() - t0) / (double)iters;
		if (r == 0 || per < best)
			best = per;
	}
	printf("decode_bench: mode %s, ClientFrame %zu bytes (SignedMessage %zu, sealed %zu): "
	       "%.0f ns per submission (thread CPU, best of %ld x %ld)\n",
	       mode_name[mode], frame.len, sm_len, sealed.len, best, runs, iters);
	rete_arena_free(&arena);
	rete_buf_free(&frame);
	rete_buf_free(&sealed);
	rete_seckey_free(&sender);
	rete_seckey_free(&recipient);
	return 0;
}
