/* zap.c — see zap.h. */
#include "zap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "endpoint.h"
#include "httpd.h"
#include "log.h"

struct zap_entry {
	uint8_t x[RETE_PK_LEN];
	char id[RETE_ID_MAX + 1];
	Rete__PartyKind kind;
};

struct zap_table {
	struct zap_entry *e;
	size_t n;
};

struct broker_zap {
	void *zs_sock;
	pthread_t zs_thread;
	bool zs_started;
	pthread_mutex_t zs_lock; /* guards zs_table (swapped on reload) */
	struct zap_table *zs_table;
};

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(((const struct zap_entry *)a)->x, ((const struct zap_entry *)b)->x,
		      RETE_PK_LEN);
}

static struct zap_table *table_build(const broker_config *c)
{
	struct zap_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->e = calloc(c->nparties ? c->nparties : 1, sizeof(*t->e));
	if (!t->e) {
		free(t);
		return NULL;
	}
	for (size_t i = 0; i < c->nparties; i++) {
		memcpy(t->e[i].x, c->parties[i].key.x, RETE_PK_LEN);
		snprintf(t->e[i].id, sizeof(t->e[i].id), "%s", c->parties[i].id);
		t->e[i].kind = c->parties[i].kind;
	}
	t->n = c->nparties;
	qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
	return t;
}

static void table_free(struct zap_table *t)
{
	if (t) {
		free(t->e);
		free(t);
	}
}

/* lookup copies the entry for key x into *out; false when unknown. */
static bool lookup(broker_zap *z, const uint8_t *x, struct zap_entry *out)
{
	struct zap_entry key;
	memcpy(key.x, x, RETE_PK_LEN);
	pthread_mutex_lock(&z->zs_lock);
	const struct zap_entry *e =
	    bsearch(&key, z->zs_table->e, z->zs_table->n, sizeof(key), entry_cmp);
	if (e)
		*out = *e;
	pthread_mutex_unlock(&z->zs_lock);
	return e != NULL;
}

static int send_part(void *s, const void *data, size_t len, bool more)
{
	return zmq_send(s, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* metadata encodes one ZMTP property: name length (1 byte), name, value
 * length (4 bytes big-endian), value. */
static size_t metadata(uint8_t *buf, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value), o = 0;
	buf[o++] = (uint8_t)nl;
	memcpy(buf + o, name, nl);
	o += nl;
	buf[o++] = (uint8_t)(vl >> 24);
	buf[o++] = (uint8_t)(vl >> 16);
	buf[o++] = (uint8_t)(vl >> 8);
	buf[o++] = (uint8_t)vl;
	memcpy(buf + o, value, vl);
	return o + vl;
}

#define ZAP_MAX_PARTS 8

/* handle_one reads one request (all its parts) and answers it. Returns -1
 * when the context is shutting down. */
static int handle_one(broker_zap *z)
{
	zmq_msg_t parts[ZAP_MAX_PARTS];
	size_t n = 0;
	int more = 1;
	int rc = 0;
	while (more) {
		zmq_msg_t msg;
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, z->zs_sock, 0) < 0) {
			zmq_msg_close(&msg);
			rc = zmq_errno() == ETERM ? -1 : 0;
			if (rc == 0 && n == 0)
				return 0;
			goto out;
		}
		more = zmq_msg_more(&msg);
		if (n < ZAP_MAX_PARTS)
			parts[n++] = msg;
		else
			zmq_msg_close(&msg);
	}
	/* version, request id, domain, address, routing id, mechanism, creds */
	const char *status = "400", *text = "unknown key";
	char user[RETE_ID_MAX + 1] = "";
	char keyhex[2 * RETE_PK_LEN + 1] = "";
	char domain[64] = "", said[RETE_PEER_ADDR_MAX] = "", address[RETE_PEER_ADDR_MAX];
	if (n >= 2 && zmq_msg_size(&parts[0]) == 3 &&
	    memcmp(zmq_msg_data(&parts[0]), "1.0", 3) == 0) {
		if (n >= 7 && zmq_msg_size(&parts[5]) == 5 &&
		    memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0 &&
		    zmq_msg_size(&parts[6]) == RETE_PK_LEN) {
			size_t dl = zmq_msg_size(&parts[2]), al = zmq_msg_size(&parts[3]);
			if (dl >= sizeof(domain))
				dl = sizeof(domain) - 1;
			if (al >= sizeof(said))
				al = sizeof(said) - 1;
			memcpy(domain, zmq_msg_data(&parts[2]), dl);
			memcpy(said, zmq_msg_data(&parts[3]), al);
			/* an IPv4 peer of a [::] socket comes IPv4-mapped */
			rete_endpoint_peer_text(said, address, sizeof(address));
			const uint8_t *x = zmq_msg_data(&parts[6]);
			sodium_bin2hex(keyhex, sizeof(keyhex), x, RETE_PK_LEN);
			struct zap_entry e;
			if (!lookup(z, x, &e)) {
				/* A peer retries at will (an agent on an old key every
				 * few seconds): one line per client and key a minute,
				 * a client an IPv6 /64 as the console's and metrics'
				 * limits count them (a host of it has as many
				 * addresses of it as it likes) */
				char client[RETE_HTTP_ADDR_MAX] = "";
				struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
				if (inet_pton(AF_INET6, said, &s6.sin6_addr) == 1)
					rete_http_client_of((const struct sockaddr *)&s6, client,
							    sizeof(client));
				char key[sizeof(address) + 96];
				snprintf(key, sizeof(key),
					 "refused connections from %s with key %.16s... (not in "
					 "the directory)",
					 client[0]    ? client
					 : address[0] ? address
						      : "a local socket",
					 keyhex);
				broker_log_limited(
				    RETE_LOG_WARNING, key,
				    "refused a connection from %s: its key %.16s... is "
				    "not in the directory",
				    address, keyhex);
			} else if (strcmp(domain, BROKER_ZAP_DOMAIN_EVENTS) == 0 &&
				   e.kind != RETE__PARTY_KIND__PARTY_KIND_COORDINATOR &&
				   e.kind != RETE__PARTY_KIND__PARTY_KIND_AUDITOR) {
				text = "events are for coordinators and auditors";
				char key[RETE_ID_MAX + 64];
				snprintf(key, sizeof(key), "refused subscriptions of %s", e.id);
				broker_log_limited(RETE_LOG_WARNING, key,
						   "refused %s (%s) on the events socket: only "
						   "coordinators and auditors may subscribe",
						   e.id, address);
			} else if (strcmp(domain, BROKER_ZAP_DOMAIN) != 0 &&
				   strcmp(domain, BROKER_ZAP_DOMAIN_EVENTS) != 0) {
				text = "unknown domain";
			} else {
				status = "200";
				text = "OK";
				snprintf(user, sizeof(user), "%s", e.id);
				broker_log_debug("authenticated %s from %s (%s)", e.id, address,
						 domain);
			}
		} else {
			text = "only CURVE is accepted";
		}
		uint8_t meta[128];
		size_t ml = status[0] == '2' ? metadata(meta, BROKER_ZAP_KEY_PROPERTY, keyhex) : 0;
		if (send_part(z->zs_sock, "1.0", 3, true) < 0 ||
		    send_part(z->zs_sock, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), true) <
			0 ||
		    send_part(z->zs_sock, status, 3, true) < 0 ||
		    send_part(z->zs_sock, text, strlen(text), true) < 0 ||
		    send_part(z->zs_sock, user, strlen(user), true) < 0 ||
		    send_part(z->zs_sock, meta, ml, false) < 0)
			rc = zmq_errno() == ETERM ? -1 : 0;
	} else {
		/* Not a ZAP 1.0 request: REP must still answer something. */
		broker_log_limited(RETE_LOG_WARNING, "ZAP requests not understood",
				   "the ZAP handler received a request it does not understand");
		if (send_part(z->zs_sock, "", 0, false) < 0)
			rc = zmq_errno() == ETERM ? -1 : 0;
	}
out:
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	return rc;
}

static void *zap_thread(void *arg)
{
	broker_zap *z = arg;
	while (handle_one(z) == 0)
		;
	zmq_close(z->zs_sock);
	z->zs_sock = NULL;
	return NULL;
}

rete_err broker_zap_start(broker_zap **out, void *zctx, const broker_config *c, rete_msg *m)
{
	*out = NULL;
	broker_zap *z = calloc(1, sizeof(*z));
	if (!z)
		return RETE_ENOMEM;
	pthread_mutex_init(&z->zs_lock, NULL);
	z->zs_table = table_build(c);
	if (!z->zs_table) {
		broker_zap_stop(&z);
		return RETE_ENOMEM;
	}
	z->zs_sock = zmq_socket(zctx, ZMQ_REP);
	int linger = 0;
	if (!z->zs_sock || zmq_setsockopt(z->zs_sock, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    zmq_bind(z->zs_sock, "inproc://zeromq.zap.01") < 0) {
		rete_msg_set(m, RETE_ENET, "cannot bind the ZAP handler: %s",
			     zmq_strerror(zmq_errno()));
		broker_zap_stop(&z);
		return RETE_ENET;
	}
	if (pthread_create(&z->zs_thread, NULL, zap_thread, z) != 0) {
		broker_zap_stop(&z);
		return rete_msg_set(m, RETE_ENOMEM, "cannot start the ZAP thread");
	}
	z->zs_started = true;
	*out = z;
	return RETE_OK;
}

rete_err broker_zap_update(broker_zap *z, const broker_config *c)
{
	struct zap_table *t = table_build(c);
	if (!t)
		return RETE_ENOMEM;
	pthread_mutex_lock(&z->zs_lock);
	struct zap_table *old = z->zs_table;
	z->zs_table = t;
	pthread_mutex_unlock(&z->zs_lock);
	table_free(old);
	return RETE_OK;
}

void broker_zap_stop(broker_zap **pz)
{
	if (!pz || !*pz)
		return;
	broker_zap *z = *pz;
	if (z->zs_started)
		pthread_join(z->zs_thread, NULL);
	else if (z->zs_sock)
		zmq_close(z->zs_sock);
	table_free(z->zs_table);
	pthread_mutex_destroy(&z->zs_lock);
	free(z);
	*pz = NULL;
}
