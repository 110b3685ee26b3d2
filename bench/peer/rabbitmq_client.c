/* rabbitmq_client.c — the peer measure for rete's broker benchmark: the same
 * 1 KiB messages published durably to RabbitMQ (persistent, delivery_mode
 * 2, publisher confirms, a durable queue) while a consumer receives and acks
 * each one, as rete's recipients do. Built and run by bench/peer-rabbitmq.sh
 * (cc + pkg-config librabbitmq), never by the project's build: it needs
 * librabbitmq, which rete does not.
 *
 *   rabbitmq_client --port P [--host H] [--queue-type classic|quorum]
 *                   [--messages N] [--publishers P] [--window W]
 *                   [--rates 100,1000,5000] [--seconds S]
 *
 * Prints key=value lines: the throughput (messages confirmed per second, N
 * messages over P publisher connections with W unconfirmed each, the
 * counterpart of rete's durable ingest) and the confirm latency p50/p99/
 * p999 at each offered rate (one publisher, open loop: message i leaves at
 * t0 + i/rate whatever came back; the counterpart of rete's receipt
 * latency).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#define BODY_BYTES 1024
#define QUEUE	   "rete-bench"

static const char *host = "127.0.0.1";
static int port = 5672;
static const char *qtype = "classic";
static uint8_t body[BODY_BYTES];
static atomic_long consumed;
static atomic_bool consumer_stop;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "rabbitmq_client: %s\n", what);
	exit(2);
}

static void check_rpc(amqp_connection_state_t c, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		fprintf(stderr, "rabbitmq_client: %s failed (reply type %d)\n", what,
			(int)r.reply_type);
		exit(2);
	}
}

static amqp_connection_state_t conn_open(void)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
	if (!s || amqp_socket_open(s, host, port) != AMQP_STATUS_OK)
		die("cannot connect to RabbitMQ");
	amqp_rpc_reply_t r =
	    amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die("cannot log in as guest");
	amqp_channel_open(c, 1);
	check_rpc(c, "channel.open");
	return c;
}

static void conn_close(amqp_connection_state_t c)
{
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

static void declare(amqp_connection_state_t c)
{
	amqp_table_entry_t e;
	amqp_table_t args = {0, NULL};
	if (strcmp(qtype, "quorum") == 0) {
		e.key = amqp_cstring_bytes("x-queue-type");
		e.value.kind = AMQP_FIELD_KIND_UTF8;
		e.value.value.bytes = amqp_cstring_bytes("quorum");
		args.num_entries = 1;
		args.entries = &e;
	}
	amqp_queue_declare(c, 1, amqp_cstring_bytes(QUEUE), 0, 1, 0, 0, args);
	check_rpc(c, "queue.declare (durable)");
}

static void *consumer(void *arg)
{
	(void)arg;
	amqp_connection_state_t c = conn_open();
	amqp_basic_qos(c, 1, 0, 256, 0);
	check_rpc(c, "basic.qos");
	amqp_basic_consume(c, 1, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	check_rpc(c, "basic.consume");
	while (!atomic_load(&consumer_stop)) {
		amqp_envelope_t env;
		struct timeval tv = {0, 100000};
		amqp_maybe_release_buffers(c);
		amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			continue; /* timeout */
		amqp_basic_ack(c, 1, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
		atomic_fetch_add(&consumed, 1);
	}
	conn_close(c);
	return NULL;
}

/* A publisher in confirm mode: tags 1, 2, ... in publish order. */
struct pub {
	amqp_connection_state_t c;
	double *sent;  /* by tag */
	double *lat;   /* confirm latencies, ms */
	uint8_t *done; /* by tag: confirmed or nacked */
	size_t nlat, confirmed, nacked;
	uint64_t last_tag, low; /* low: the lowest tag not done */
};

static void pub_open(struct pub *p, size_t cap)
{
	memset(p, 0, sizeof(*p));
	p->c = conn_open();
	amqp_confirm_select(p->c, 1);
	check_rpc(p->c, "confirm.select");
	p->sent = calloc(cap + 1, sizeof(double));
	p->lat = calloc(cap + 1, sizeof(double));
	p->done = calloc(cap + 2, 1);
	p->low = 1;
	if (!p->sent || !p->lat || !p->done)
		die("out of memory");
}

static void pub_send(struct pub *p)
{
	amqp_basic_properties_t props;
	props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
	props.delivery_mode = 2; /* persistent */
	props.content_type = amqp_cstring_bytes("application/x-protobuf");
	amqp_bytes_t b = {BODY_BYTES, body};
	p->last_tag++;
	p->sent[p->last_tag] = now_s();
	if (amqp_basic_publish(p->c, 1, amqp_empty_bytes, amqp_cstring_bytes(QUEUE), 0, 0, &props,
			       b) != AMQP_STATUS_OK)
		die("basic.publish");
}

/* pub_confirms reads frames for up to timeout seconds (0: what is there)
 * and books the confirms; returns after the first batch of frames. */
static void pub_confirms(struct pub *p, double timeout)
{
	struct timeval tv = {(time_t)timeout,
			     (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
	for (;;) {
		amqp_frame_t f;
		amqp_maybe_release_buffers(p->c);
		int rc = amqp_simple_wait_frame_noblock(p->c, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			return;
		if (rc != AMQP_STATUS_OK)
			die("lost the connection");
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		uint64_t tag = 0;
		bool multiple = false, nack = false;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			tag = a->delivery_tag;
			multiple = a->multiple;
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			amqp_basic_nack_t *a = f.payload.method.decoded;
			tag = a->delivery_tag;
			multiple = a->multiple;
			nack = true;
		} else {
			continue;
		}
		double t = now_s();
		if (tag > p->last_tag)
			continue; /* not ours */
		uint64_t from = multiple ? p->low : tag;
		for (uint64_t k = from; k <= tag; k++) {
			if (p->done[k])
				continue;
			p->done[k] = 1;
			if (nack) {
				p->nacked++;
			} else {
				p->lat[p->nlat++] = (t - p->sent[k]) * 1e3;
				p->confirmed++;
			}
		}
		while (p->low <= p->last_tag && p->done[p->low])
			p->low++;
		/* only return once nothing more is buffered */
		tv.tv_sec = 0;
		tv.tv_usec = 0;
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double q)
{
	if (!n)
		return 0;
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ---- throughput: P publishers, W unconfirmed each ---------------------------------- */

struct tput {
	size_t n, window;
	struct pub p;
	pthread_barrier_t *go;
	double t_end;
};

static void *tput_worker(void *arg)
{
	struct tput *t = arg;
	pub_open(&t->p, t->n);
	pthread_barrier_wait(t->go);
	while (t->p.confirmed + t->p.nacked < t->n) {
		while (t->p.last_tag < t->n &&
		       t->p.last_tag - t->p.confirmed - t->p.nacked < t->window)
			pub_send(&t->p);
		pub_confirms(&t->p, 0.1);
	}
	t->t_end = now_s();
	return NULL;
}

int main(int argc, char **argv)
{
	size_t messages = 40000, publishers = 50, window = 64;
	double seconds = 5;
	char rates_arg[128] = "100,1000,5000";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--host"))
			host = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--queue-type"))
			qtype = argv[i + 1];
		else if (!strcmp(argv[i], "--messages"))
			messages = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--publishers"))
			publishers = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--window"))
			window = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--rates"))
			snprintf(rates_arg, sizeof(rates_arg), "%s", argv[i + 1]);
		else
			die("unknown argument");
	}
	if (!publishers || !messages || !window || seconds <= 0)
		die("give positive numbers");
	for (size_t i = 0; i < BODY_BYTES; i++)
		body[i] = (uint8_t)('a' + i % 26);

	/* the queue, empty, and its consumer */
	amqp_connection_state_t admin = conn_open();
	declare(admin);
	amqp_queue_purge(admin, 1, amqp_cstring_bytes(QUEUE));
	check_rpc(admin, "queue.purge");
	pthread_t ctid;
	if (pthread_create(&ctid, NULL, consumer, NULL) != 0)
		die("pthread_create");

	/* throughput */
	struct tput *t = calloc(publishers, sizeof(*t));
	pthread_t *tid = calloc(publishers, sizeof(*tid));
	pthread_barrier_t go;
	if (!t || !tid)
		die("out of memory");
	pthread_barrier_init(&go, NULL, (unsigned)publishers + 1);
	for (size_t i = 0; i < publishers; i++) {
		t[i].n = messages / publishers + (i < messages % publishers);
		t[i].window = window;
		t[i].go = &go;
		if (pthread_create(&tid[i], NULL, tput_worker, &t[i]) != 0)
			die("pthread_create");
	}
	pthread_barrier_wait(&go);
	double t0 = now_s(), t1 = t0;
	size_t total = 0, nacked = 0, nl = 0;
	for (size_t i = 0; i < publishers; i++) {
		pthread_join(tid[i], NULL);
		if (t[i].t_end > t1)
			t1 = t[i].t_end;
		total += t[i].p.confirmed;
		nacked += t[i].p.nacked;
		nl += t[i].p.nlat;
	}
	double *all = calloc(nl + 1, sizeof(double));
	if (!all)
		die("out of memory");
	nl = 0;
	for (size_t i = 0; i < publishers; i++) {
		memcpy(all + nl, t[i].p.lat, t[i].p.nlat * sizeof(double));
		nl += t[i].p.nlat;
		conn_close(t[i].p.c);
		free(t[i].p.sent);
		free(t[i].p.lat);
		free(t[i].p.done);
	}
	qsort(all, nl, sizeof(double), cmp_d);
	printf("queue_type=%s\n", qtype);
	printf("throughput=%.0f\n", (double)total / (t1 - t0));
	printf("throughput_messages=%zu\nthroughput_publishers=%zu\nthroughput_window=%zu\n", total,
	       publishers, window);
	printf("throughput_nacked=%zu\n", nacked);
	printf("throughput_confirm_p50_ms=%.2f\nthroughput_confirm_p99_ms=%.2f\n",
	       pct(all, nl, 0.5), pct(all, nl, 0.99));
	free(all);
	free(t);
	free(tid);

	/* confirm latency at offered loads, open loop */
	for (char *save = NULL, *tok = strtok_r(rates_arg, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		double rate = atof(tok);
		size_t n = (size_t)(rate * (rate < 1000 ? 2 * seconds : seconds));
		if (rate <= 0 || n < 10)
			continue;
		struct pub p;
		pub_open(&p, n);
		double start = now_s() + 0.01, late = 0, end = 0;
		size_t next = 0;
		while (p.confirmed + p.nacked < n) {
			double now = now_s();
			while (next < n && start + (double)next / rate <= now + 0.0005) {
				double l = now - (start + (double)next / rate);
				if (l > late)
					late = l;
				pub_send(&p);
				next++;
			}
			double wait = 0.1;
			if (next < n) {
				wait = start + (double)next / rate - now_s();
				if (wait < 0)
					wait = 0;
			} else if (end == 0) {
				end = now_s() + 30;
			}
			pub_confirms(&p, wait);
			if (end > 0 && now_s() > end)
				break;
		}
		qsort(p.lat, p.nlat, sizeof(double), cmp_d);
		printf("latency_%s_p50_ms=%.2f\nlatency_%s_p99_ms=%.2f\nlatency_%s_p999_ms=%.2f\n",
		       tok, pct(p.lat, p.nlat, 0.5), tok, pct(p.lat, p.nlat, 0.99), tok,
		       pct(p.lat, p.nlat, 0.999));
		printf("latency_%s_confirmed=%zu\nlatency_%s_send_lateness_ms=%.1f\n", tok,
		       p.confirmed, tok, late * 1e3);
		conn_close(p.c);
		free(p.sent);
		free(p.lat);
		free(p.done);
	}
	fflush(stdout);

	/* let the consumer catch up a little, then stop it */
	double wait_end = now_s() + 10;
	while (now_s() < wait_end && atomic_load(&consumed) < (long)total) {
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	atomic_store(&consumer_stop, true);
	pthread_join(ctid, NULL);
	printf("consumed=%ld\n", atomic_load(&consumed));
	conn_close(admin);
	return 0;
}
