/* wire.c — see wire.h. */
#include "wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "duration.h"
#include "endpoint.h"
#include "merkle.h"

/* --- the process-wide context ------------------------------------------------ */

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static void *ctx_shared;
static unsigned ctx_users;
static unsigned ctx_serial; /* names the monitor endpoints */

static void *ctx_take(unsigned *serial)
{
	pthread_mutex_lock(&ctx_lock);
	if (!ctx_shared) {
		ctx_shared = zmq_ctx_new();
		/* Every connection takes three sockets (the socket, its monitor's
		 * two ends): ZeroMQ's default of 1,023 sockets per context would
		 * stop one process at 341 connections (a load generator, a
		 * monitoring tool watching many brokers). */
		if (ctx_shared)
			zmq_ctx_set(ctx_shared, ZMQ_MAX_SOCKETS, 16384);
	}
	void *c = ctx_shared;
	if (c) {
		ctx_users++;
		*serial = ++ctx_serial;
	}
	pthread_mutex_unlock(&ctx_lock);
	return c;
}

static void ctx_release(void)
{
	pthread_mutex_lock(&ctx_lock);
	if (ctx_users && --ctx_users == 0) {
		zmq_ctx_term(ctx_shared);
		ctx_shared = NULL;
	}
	pthread_mutex_unlock(&ctx_lock);
}

/* --- the connection ---------------------------------------------------------- */

struct rete_wire {
	void *w_sock;
	void *w_mon; /* PAIR reading the socket monitor's events */
	bool w_sub;  /* a SUB connection (events), else DEALER */
	bool w_auth_failed;
	bool w_connected;
	unsigned w_handshakes; /* handshakes that succeeded */
	unsigned w_hello_conn; /* the handshake whose connection carried the
				  last HELLO (the next one, if it was sent
				  while disconnected) */
	bool w_hello_set;
	bool w_standby; /* HELLOs ask not to take the deliveries (rete_wire_standby) */
	char *w_party;
	char *w_software;
	uint64_t w_next_request;
	char w_endpoint[256];
};

static rete_err zerr(rete_msg *m, const char *what)
{
	int e = zmq_errno();
	return rete_msg_set(m, e == EINVAL ? RETE_EINVAL : RETE_ENET, "%s: %s", what,
			    zmq_strerror(e));
}

static rete_err wire_open(rete_wire **out, int type, const char *endpoint,
			  const rete_pubkey *broker_key, const rete_seckey *my_key, rete_msg *m)
{
	*out = NULL;
	if (!endpoint || !broker_key || !my_key)
		return rete_msg_set(m, RETE_EINVAL, "connect: endpoint and keys are required");
	/* before ZeroMQ, which would take tcp://h:99999 as port 34463 */
	rete_err err = rete_endpoint_check(endpoint, RETE_ENDPOINT_CONNECT, m);
	if (err != RETE_OK)
		return err;
	rete_wire *w = calloc(1, sizeof(*w));
	if (!w)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	unsigned serial = 0;
	void *ctx = ctx_take(&serial);
	if (!ctx) {
		free(w);
		return rete_msg_set(m, RETE_ENET, "cannot create a ZeroMQ context");
	}
	snprintf(w->w_endpoint, sizeof(w->w_endpoint), "%s", endpoint);
	w->w_sub = type == ZMQ_SUB;
	w->w_next_request = 1;
	err = RETE_OK;
	int linger = 0, hb_ivl = 5000, hb_timeout = 15000, hb_ttl = 15000;
	/* an IPv6 broker address in brackets: ZeroMQ leaves IPv6 alone
	 * without it (a name stays IPv4; no lookup here) */
	int ipv6 = rete_endpoint_ipv6(endpoint, RETE_ENDPOINT_CONNECT);
	int reconnect = 100, reconnect_max = 2000;
	char mon_ep[64];
	snprintf(mon_ep, sizeof(mon_ep), "inproc://rete-wire-monitor-%u", serial);

	w->w_sock = zmq_socket(ctx, type);
	if (!w->w_sock) {
		err = zerr(m, "cannot create a socket");
		goto fail;
	}
	if (zmq_setsockopt(w->w_sock, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_IPV6, &ipv6, sizeof(ipv6)) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_CURVE_SERVERKEY, broker_key->x, RETE_PK_LEN) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_CURVE_PUBLICKEY, my_key->pub.x, RETE_PK_LEN) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_CURVE_SECRETKEY, my_key->x_sk, RETE_PK_LEN) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof(hb_ivl)) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof(hb_timeout)) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_HEARTBEAT_TTL, &hb_ttl, sizeof(hb_ttl)) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_RECONNECT_IVL, &reconnect, sizeof(reconnect)) < 0 ||
	    zmq_setsockopt(w->w_sock, ZMQ_RECONNECT_IVL_MAX, &reconnect_max,
			   sizeof(reconnect_max)) < 0) {
		err = zerr(m, "cannot set the socket's options");
		goto fail;
	}
	if (w->w_sub && zmq_setsockopt(w->w_sock, ZMQ_SUBSCRIBE, "", 0) < 0) {
		err = zerr(m, "cannot subscribe");
		goto fail;
	}
	/* The monitor must be in place before connecting, or the first
	 * handshake's events could be missed. */
	if (zmq_socket_monitor(w->w_sock, mon_ep,
			       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
				   ZMQ_EVENT_DISCONNECTED) < 0) {
		err = zerr(m, "cannot monitor the socket");
		goto fail;
	}
	w->w_mon = zmq_socket(ctx, ZMQ_PAIR);
	if (!w->w_mon || zmq_setsockopt(w->w_mon, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_connect(w->w_mon, mon_ep) < 0) {
		err = zerr(m, "cannot read the socket monitor");
		goto fail;
	}
	if (zmq_connect(w->w_sock, endpoint) < 0) {
		int e = zmq_errno();
		err = rete_msg_set(m, e == EINVAL || e == EPROTONOSUPPORT ? RETE_EINVAL : RETE_ENET,
				   "cannot connect to '%s': %s; expected tcp://HOST:PORT (an "
				   "IPv6 HOST in brackets) or ipc://PATH",
				   endpoint, zmq_strerror(e));
		goto fail;
	}
	*out = w;
	return RETE_OK;
fail:
	rete_wire_close(&w);
	return err;
}

rete_err rete_wire_connect(rete_wire **out, const char *endpoint, const rete_pubkey *broker_key,
			   const rete_seckey *my_key, rete_msg *m)
{
	return wire_open(out, ZMQ_DEALER, endpoint, broker_key, my_key, m);
}

rete_err rete_wire_subscribe(rete_wire **out, const char *endpoint, const rete_pubkey *broker_key,
			     const rete_seckey *my_key, rete_msg *m)
{
	return wire_open(out, ZMQ_SUB, endpoint, broker_key, my_key, m);
}

void rete_wire_close(rete_wire **pw)
{
	if (!pw || !*pw)
		return;
	rete_wire *w = *pw;
	if (w->w_sock) {
		zmq_socket_monitor(w->w_sock, NULL, 0);
		zmq_close(w->w_sock);
	}
	if (w->w_mon)
		zmq_close(w->w_mon);
	free(w->w_party);
	free(w->w_software);
	free(w);
	*pw = NULL;
	ctx_release();
}

void *rete_wire_socket(rete_wire *w)
{
	return w ? w->w_sock : NULL;
}

static rete_err send_hello(rete_wire *w, rete_msg *m);

/* monitor_drain handles the socket monitor's pending events. */
static void monitor_drain(rete_wire *w)
{
	for (;;) {
		zmq_msg_t ev;
		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, w->w_mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		uint16_t event = 0;
		if (zmq_msg_size(&ev) >= 2)
			memcpy(&event, zmq_msg_data(&ev), sizeof(event));
		bool more = zmq_msg_more(&ev);
		zmq_msg_close(&ev);
		while (more) { /* the endpoint address part */
			zmq_msg_t addr;
			zmq_msg_init(&addr);
			if (zmq_msg_recv(&addr, w->w_mon, 0) < 0)
				more = false;
			else
				more = zmq_msg_more(&addr);
			zmq_msg_close(&addr);
		}
		switch (event) {
		case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
			w->w_auth_failed = false;
			w->w_connected = true;
			w->w_handshakes++;
			/* A HELLO queued before this handshake travelled on it;
			 * after any later one (a reconnect: the broker sees a new
			 * connection) say it again so deliveries resume here. */
			if (w->w_hello_set && w->w_handshakes > w->w_hello_conn)
				send_hello(w, NULL);
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
			w->w_auth_failed = true;
			w->w_connected = false;
			break;
		case ZMQ_EVENT_DISCONNECTED:
			w->w_connected = false;
			break;
		default:
			break;
		}
	}
}

bool rete_wire_auth_failed(rete_wire *w)
{
	if (!w)
		return false;
	monitor_drain(w);
	return w->w_auth_failed;
}

bool rete_wire_connected(rete_wire *w)
{
	if (!w)
		return false;
	monitor_drain(w);
	return w->w_connected;
}

rete_err rete_wire_send(rete_wire *w, const Rete__ClientFrame *f, rete_msg *m)
{
	if (!w || !f || w->w_sub)
		return rete_msg_set(m, RETE_EINVAL, "send: not a request connection");
	Rete__ClientFrame copy = *f;
	if (copy.version == 0)
		copy.version = RETE_PROTOCOL_VERSION;
	size_t len = rete__client_frame__get_packed_size(&copy);
	zmq_msg_t msg;
	if (zmq_msg_init_size(&msg, len) < 0)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory for a %zu-byte frame", len);
	rete__client_frame__pack(&copy, zmq_msg_data(&msg));
	if (zmq_msg_send(&msg, w->w_sock, ZMQ_DONTWAIT) < 0) {
		int e = zmq_errno();
		zmq_msg_close(&msg);
		if (e == EAGAIN)
			return rete_msg_set(m, RETE_ENET,
					    "the broker at %s has not taken our "
					    "frames for a while (send queue full); try again later",
					    w->w_endpoint);
		return rete_msg_set(m, RETE_ENET, "cannot send to %s: %s", w->w_endpoint,
				    zmq_strerror(e));
	}
	return RETE_OK;
}

static rete_err send_hello(rete_wire *w, rete_msg *m)
{
	Rete__Hello h;
	rete__hello__init(&h);
	h.party = w->w_party;
	h.software = w->w_software;
	h.standby = w->w_standby;
	Rete__ClientFrame f;
	rete__client_frame__init(&f);
	f.command_case = RETE__CLIENT_FRAME__COMMAND_HELLO;
	f.hello = &h;
	w->w_hello_conn = w->w_connected ? w->w_handshakes : w->w_handshakes + 1;
	return rete_wire_send(w, &f, m);
}

rete_err rete_wire_hello(rete_wire *w, const char *party, const char *software, rete_msg *m)
{
	if (!w || !party)
		return rete_msg_set(m, RETE_EINVAL, "hello: the party id is required");
	char *p = strdup(party), *s = strdup(software ? software : "");
	if (!p || !s) {
		free(p);
		free(s);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	free(w->w_party);
	free(w->w_software);
	w->w_party = p;
	w->w_software = s;
	w->w_hello_set = true;
	monitor_drain(w);
	return send_hello(w, m);
}

void rete_wire_standby(rete_wire *w)
{
	if (w)
		w->w_standby = true;
}

rete_err rete_wire_submit(rete_wire *w, const uint8_t *signed_message, size_t len,
			  const uint8_t *sealed, size_t sealed_len, rete_msg *m)
{
	Rete__Submit s;
	rete__submit__init(&s);
	s.signed_message.data = (uint8_t *)signed_message;
	s.signed_message.len = signed_message ? len : 0;
	s.sealed.data = (uint8_t *)sealed;
	s.sealed.len = sealed ? sealed_len : 0;
	Rete__ClientFrame f;
	rete__client_frame__init(&f);
	f.command_case = RETE__CLIENT_FRAME__COMMAND_SUBMIT;
	f.submit = &s;
	return rete_wire_send(w, &f, m);
}

rete_err rete_wire_ack(rete_wire *w, uint64_t index, Rete__ErrorCode error, const char *text,
		       rete_msg *m)
{
	Rete__Ack a;
	rete__ack__init(&a);
	a.index = index;
	a.error = error;
	if (text)
		a.error_text = (char *)text;
	Rete__ClientFrame f;
	rete__client_frame__init(&f);
	f.command_case = RETE__CLIENT_FRAME__COMMAND_ACK;
	f.ack = &a;
	return rete_wire_send(w, &f, m);
}

rete_err rete_wire_ack_build(Rete__Ack *ack, Rete__SignedAck *sa, const rete_seckey *key,
			     const char *origin, const char *recipient, const uint8_t *entry,
			     size_t len, uint64_t index, Rete__ErrorCode error, const char *text,
			     rete_msg *m)
{
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_merkle_leaf_hash(leaf, entry, len);
	return rete_wire_ack_build_leaf(ack, sa, key, origin, recipient, leaf, index, error, text,
					m);
}

rete_err rete_wire_ack_build_leaf(Rete__Ack *ack, Rete__SignedAck *sa, const rete_seckey *key,
				  const char *origin, const char *recipient, const uint8_t *leaf,
				  uint64_t index, Rete__ErrorCode error, const char *text,
				  rete_msg *m)
{
	Rete__AckBody body;
	rete__ack_body__init(&body);
	body.origin = (char *)(origin ? origin : "");
	body.recipient = (char *)(recipient ? recipient : "");
	body.index = index;
	body.leaf_hash.data = (uint8_t *)leaf;
	body.leaf_hash.len = RETE_MERKLE_HASH;
	body.acked_at = rete_now_ms();
	body.error = error;
	body.error_text = (char *)(text ? text : "");
	rete__ack__init(ack);
	ack->index = index;
	ack->error = error;
	ack->error_text = body.error_text;
	rete_err err = rete_ack_sign(&body, key, sa, m);
	if (err == RETE_OK)
		ack->signed_ = sa;
	return err;
}

rete_err rete_wire_ack_signed(rete_wire *w, const rete_seckey *key, const char *origin,
			      const char *recipient, const uint8_t *entry, size_t len,
			      uint64_t index, Rete__ErrorCode error, const char *text, rete_msg *m)
{
	Rete__Ack a;
	Rete__SignedAck sa;
	rete_err err =
	    rete_wire_ack_build(&a, &sa, key, origin, recipient, entry, len, index, error, text, m);
	if (err != RETE_OK)
		return err;
	Rete__ClientFrame f;
	rete__client_frame__init(&f);
	f.command_case = RETE__CLIENT_FRAME__COMMAND_ACK;
	f.ack = &a;
	err = rete_wire_send(w, &f, m);
	rete_signed_ack_clear(&sa);
	return err;
}

static rete_err send_pingpong(rete_wire *w, bool pong, uint64_t nonce, rete_msg *m)
{
	Rete__Ping p;
	Rete__Pong q;
	rete__ping__init(&p);
	rete__pong__init(&q);
	p.nonce = q.nonce = nonce;
	Rete__ClientFrame f;
	rete__client_frame__init(&f);
	if (pong) {
		f.command_case = RETE__CLIENT_FRAME__COMMAND_PONG;
		f.pong = &q;
	} else {
		f.command_case = RETE__CLIENT_FRAME__COMMAND_PING;
		f.ping = &p;
	}
	return rete_wire_send(w, &f, m);
}

rete_err rete_wire_ping(rete_wire *w, uint64_t nonce, rete_msg *m)
{
	return send_pingpong(w, false, nonce, m);
}

rete_err rete_wire_query(rete_wire *w, Rete__Query *q, uint64_t *request_id, rete_msg *m)
{
	if (!w || !q)
		return rete_msg_set(m, RETE_EINVAL, "query: nothing to ask");
	if (q->request_id == 0)
		q->request_id = w->w_next_request++;
	if (request_id)
		*request_id = q->request_id;
	Rete__ClientFrame f;
	rete__client_frame__init(&f);
	f.command_case = RETE__CLIENT_FRAME__COMMAND_QUERY;
	f.query = q;
	return rete_wire_send(w, &f, m);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* recv_raw waits for one ZeroMQ message until the deadline, watching the
 * monitor meanwhile. */
static rete_err recv_raw(rete_wire *w, int timeout_ms, zmq_msg_t *msg, rete_msg *m)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	for (;;) {
		monitor_drain(w);
		if (w->w_auth_failed)
			return rete_msg_set(m, RETE_EREFUSED,
					    "the broker refused our key (%s): "
					    "this party's key is not in its directory, or the "
					    "broker key we pinned is not the broker's",
					    w->w_endpoint);
		if (zmq_msg_recv(msg, w->w_sock, ZMQ_DONTWAIT) >= 0)
			return RETE_OK;
		if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
			return rete_msg_set(m, RETE_ENET, "cannot receive from %s: %s",
					    w->w_endpoint, zmq_strerror(zmq_errno()));
		int64_t now = mono_ms();
		if (deadline >= 0 && now >= deadline)
			return rete_msg_set(m, RETE_ETIMEDOUT,
					    "nothing from the broker at %s "
					    "within %d ms",
					    w->w_endpoint, timeout_ms);
		long wait = deadline < 0 ? 1000 : (long)(deadline - now);
		if (wait > 1000)
			wait = 1000; /* look at the monitor at least every second */
		zmq_pollitem_t items[2] = {{w->w_sock, 0, ZMQ_POLLIN, 0},
					   {w->w_mon, 0, ZMQ_POLLIN, 0}};
		if (zmq_poll(items, 2, wait) < 0 && zmq_errno() != EINTR)
			return rete_msg_set(m, RETE_ENET, "cannot wait for %s: %s", w->w_endpoint,
					    zmq_strerror(zmq_errno()));
	}
}

rete_err rete_wire_recv(rete_wire *w, int timeout_ms, Rete__BrokerFrame **out, rete_msg *m)
{
	*out = NULL;
	if (!w || w->w_sub)
		return rete_msg_set(m, RETE_EINVAL, "recv: not a request connection");
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	for (;;) {
		int left = deadline < 0 ? -1 : (int)(deadline - mono_ms());
		if (deadline >= 0 && left < 0)
			left = 0;
		zmq_msg_t msg;
		zmq_msg_init(&msg);
		rete_err err = recv_raw(w, left, &msg, m);
		if (err != RETE_OK) {
			zmq_msg_close(&msg);
			return err;
		}
		ProtobufCMessage *pm = NULL;
		rete_msg dm;
		err = rete_pb_strict_unpack(&rete__broker_frame__descriptor, zmq_msg_data(&msg),
					    zmq_msg_size(&msg), &pm, &dm);
		size_t size = zmq_msg_size(&msg);
		zmq_msg_close(&msg);
		if (err != RETE_OK)
			return rete_msg_set(m, err,
					    "a %zu-byte frame from the broker does not "
					    "decode: %s",
					    size, dm.text);
		Rete__BrokerFrame *f = (Rete__BrokerFrame *)pm;
		if (f->version != RETE_PROTOCOL_VERSION) {
			unsigned v = f->version;
			rete__broker_frame__free_unpacked(f, NULL);
			return rete_msg_set(m, RETE_EVERSION,
					    "the broker speaks protocol version "
					    "%u; we speak %d: nothing passes until the broker and "
					    "its agents run the same version; upgrade them "
					    "together (docs/operations.md, \"Upgrading\")",
					    v, RETE_PROTOCOL_VERSION);
		}
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_PING) {
			send_pingpong(w, true, f->ping->nonce, NULL);
			rete__broker_frame__free_unpacked(f, NULL);
			continue;
		}
		*out = f;
		return RETE_OK;
	}
}

rete_err rete_wire_call(rete_wire *w, Rete__Query *q, int timeout_ms, Rete__BrokerFrame **out,
			rete_msg *m)
{
	*out = NULL;
	uint64_t id = 0;
	rete_err err = rete_wire_query(w, q, &id, m);
	if (err != RETE_OK)
		return err;
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	for (;;) {
		int left = deadline < 0 ? -1 : (int)(deadline - mono_ms());
		if (deadline >= 0 && left < 0)
			left = 0;
		Rete__BrokerFrame *f = NULL;
		err = rete_wire_recv(w, left, &f, m);
		if (err != RETE_OK)
			return err;
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT &&
		    f->result->request_id == id) {
			*out = f;
			return RETE_OK;
		}
		/* A refusal of the query frame itself (e.g. not authorised
		 * before decoding) also ends the call. */
		if (f->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL) {
			*out = f;
			return RETE_OK;
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
}

rete_err rete_wire_event_recv(rete_wire *w, int timeout_ms, Rete__Event **out, rete_msg *m)
{
	*out = NULL;
	if (!w || !w->w_sub)
		return rete_msg_set(m, RETE_EINVAL, "event_recv: not an events subscription");
	zmq_msg_t msg;
	zmq_msg_init(&msg);
	rete_err err = recv_raw(w, timeout_ms, &msg, m);
	if (err != RETE_OK) {
		zmq_msg_close(&msg);
		return err;
	}
	ProtobufCMessage *pm = NULL;
	rete_msg dm;
	err = rete_pb_strict_unpack(&rete__event__descriptor, zmq_msg_data(&msg),
				    zmq_msg_size(&msg), &pm, &dm);
	zmq_msg_close(&msg);
	if (err != RETE_OK)
		return rete_msg_set(m, err, "an event from the broker does not decode: %s",
				    dm.text);
	*out = (Rete__Event *)pm;
	return RETE_OK;
}
