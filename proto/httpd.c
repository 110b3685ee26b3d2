/* httpd.c — see httpd.h.
 *
 * The listening socket is made and bound here (not by libmicrohttpd) so that
 * a failure to bind can be told in a sentence with its reason; the socket
 * is then handed to libmicrohttpd (MHD_OPTION_LISTEN_SOCKET), which closes
 * it when it stops.
 *
 * The header deadline (httpd.h): each connection libmicrohttpd starts gets a
 * struct conn (its socket, when its current request started, whether that
 * request has arrived whole), in a list under the server's lock; the
 * connection notifications add and remove it (libmicrohttpd tells a
 * connection's close before it closes the socket, so a socket in the list
 * is never one reused by someone else), on_request marks the request whole
 * and on_done starts the next one's clock. A sweeper thread sleeps until the
 * earliest deadline of a request not yet whole and shuts the late
 * connections' sockets down (shutdown, under the lock): libmicrohttpd then
 * reads the end of the connection and closes it as any other.
 */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct route {
	char *path;
	rete_http_fn fn;
	void *ctx;
	rete_http_req_fn fnr;		/* a route that reads its request */
	const rete_http_stream *stream; /* a stream */
	bool prefix;
	bool post; /* takes POST with a small body too */
};

/* A connection, for the header deadline. */
struct conn {
	struct conn *prev, *next;
	int fd;
	char client[RETE_HTTP_ADDR_MAX]; /* rete_http_client_of its address */
	int64_t since; /* when its current request's clock started (monotonic ms) */
	bool whole;    /* the current request arrived whole (it is being answered) */
	bool cut;      /* shut down by the sweeper */
};

struct rete_httpd {
	char who[32];
	struct route routes[RETE_HTTP_ROUTES_MAX];
	size_t nroutes;
	char *shname[RETE_HTTP_SERVER_HEADERS_MAX], *shvalue[RETE_HTTP_SERVER_HEADERS_MAX];
	size_t nsh;
	char *tls_cert, *tls_key; /* PEM, for HTTPS (rete_httpd_tls) */
	struct MHD_Daemon *d;
	uint16_t port;
	rete_http_limits lim;
	bool lim_set;
	/* the header deadline: the connections, and the sweeper */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn *conns;
	pthread_t sweeper;
	bool sweeping, stop;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the bind address ------------------------------------------------------ */

static const rete_http_addr_use http_metrics_use = {
    "9464", "and the answers are not authenticated; give the address of the one interface "
	    "the scraper reaches, e.g. 127.0.0.1:9464 or 10.0.0.5:9464"};

rete_err rete_http_addr_parse(const char *text, rete_http_addr *out, rete_msg *m)
{
	return rete_http_addr_parse_as(text, &http_metrics_use, out, m);
}

rete_err rete_http_addr_parse_as(const char *text, const rete_http_addr_use *use,
				 rete_http_addr *out, rete_msg *m)
{
	const char *ex = use->port;
	memset(out, 0, sizeof(*out));
	size_t n = strlen(text);
	if (n == 0 || n >= RETE_HTTP_ADDR_MAX)
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "'%.80s' is not an address to listen on; give HOST:PORT with an "
		    "IP address, e.g. 127.0.0.1:%s or [::1]:%s",
		    text, ex, ex);
	char host[RETE_HTTP_ADDR_MAX];
	const char *port;
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end || end[1] != ':')
			return rete_msg_set(m, RETE_EINVAL,
					    "'%s' is not an address to listen on; write an IPv6 "
					    "address in brackets followed by :PORT, e.g. [::1]:%s",
					    text, ex);
		snprintf(host, sizeof(host), "%.*s", (int)(end - text - 1), text + 1);
		port = end + 2;
		out->v6 = true;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || strchr(text, ':') != colon)
			return rete_msg_set(m, RETE_EINVAL,
					    "'%s' is not an address to listen on; give HOST:PORT, "
					    "e.g. 127.0.0.1:%s (an IPv6 address goes in brackets: "
					    "[::1]:%s)",
					    text, ex, ex);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - text), text);
		port = colon + 1;
	}
	char *end = NULL;
	errno = 0;
	unsigned long p = (*port >= '0' && *port <= '9') ? strtoul(port, &end, 10) : 0;
	if (!end || *end != '\0' || errno || p > 65535 || strlen(port) > 5)
		return rete_msg_set(m, RETE_EINVAL,
				    "'%s': the port '%s' is not a number from 0 to 65535 (0 takes "
				    "any free port)",
				    text, port);
	if (out->v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
		const char *pct = strchr(host, '%');
		if (pct != NULL)
			return rete_msg_set(m, RETE_EINVAL,
					    "'%s': a zone id ('%.20s') is not accepted: link-local "
					    "addresses, which need one, are not supported; give a "
					    "global or unique-local IPv6 address, or [::1]:%lu",
					    text, pct, p);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return rete_msg_set(m, RETE_EINVAL,
					    "'%s': '%s' is not an IPv6 address; give one such as "
					    "[::1]:%lu (host names are not looked up)",
					    text, host, p);
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			goto wildcard;
		/* as ZeroMQ's endpoints (endpoint.c): bound apart (IPV6_V6ONLY),
		 * without a zone id */
		const char *no = IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr)
				     ? "a link-local address (fe80::/10) is not accepted: it "
				       "needs a zone id, which is not taken"
				 : IN6_IS_ADDR_MULTICAST(&s6->sin6_addr)
				     ? "a multicast address (ff00::/8) is not accepted"
				     : NULL;
		char a4[INET_ADDRSTRLEN] = "";
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], a4, sizeof(a4)))
			return rete_msg_set(m, RETE_EINVAL,
					    "'%s': an IPv4 address goes without brackets: %s:%s",
					    text, a4, port);
		if (no != NULL)
			return rete_msg_set(m, RETE_EINVAL,
					    "'%s': %s; give a global or unique-local IPv6 address, "
					    "or [::1]",
					    text, no);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		out->salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return rete_msg_set(m, RETE_EINVAL,
					    "'%s': '%s' is not an IPv4 address; give one such as "
					    "127.0.0.1:%lu (host names, 'localhost' too, are not "
					    "looked up)",
					    text, host, p);
		if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
			goto wildcard;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		out->salen = sizeof(*s4);
	}
	snprintf(out->text, sizeof(out->text), "%s", text);
	snprintf(out->host, sizeof(out->host), "%s", host);
	return RETE_OK;
wildcard:
	return rete_msg_set(m, RETE_EINVAL, "'%s' listens on every interface, %s", text,
			    use->wildcard);
}

/* --- answers ---------------------------------------------------------------- */

void rete_http_append(rete_http_answer *a, const char *data, size_t len)
{
	if (a->oom)
		return;
	if (a->len + len + 1 > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		while (cap < a->len + len + 1)
			cap *= 2;
		char *n = realloc(a->body, cap);
		if (!n) {
			a->oom = true;
			return;
		}
		a->body = n;
		a->cap = cap;
	}
	memcpy(a->body + a->len, data, len);
	a->len += len;
	a->body[a->len] = '\0';
}

void rete_http_printf(rete_http_answer *a, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		a->oom = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		rete_http_append(a, small, (size_t)n);
		return;
	}
	char *big = NULL;
	va_start(ap, fmt);
	n = vasprintf(&big, fmt, ap);
	va_end(ap);
	if (n < 0) {
		a->oom = true;
		return;
	}
	rete_http_append(a, big, (size_t)n);
	free(big);
}

void rete_http_label(rete_http_answer *a, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			rete_http_printf(a, "\\%c", *s);
		else if (*s == '\n')
			rete_http_append(a, "\\n", 2);
		else
			rete_http_append(a, s, 1);
	}
}

/* --- the server ------------------------------------------------------------- */

/* A request's state between libmicrohttpd's calls: whether a body came. */
struct req {
	bool had_body;
	bool too_big;			   /* a POST body beyond RETE_HTTP_POST_MAX */
	char body[RETE_HTTP_POST_MAX + 1]; /* a POST route's body, NUL-ended */
	size_t body_len;
};

static void add_headers(const rete_httpd *h, struct MHD_Response *r, const rete_http_answer *a)
{
	for (size_t i = 0; h != NULL && i < h->nsh; i++)
		MHD_add_response_header(r, h->shname[i], h->shvalue[i]);
	for (unsigned i = 0; a != NULL && i < a->nhdr; i++)
		MHD_add_response_header(r, a->hname[i], a->hvalue[i]);
}

static enum MHD_Result send_answer_h(const rete_httpd *h, struct MHD_Connection *c,
				     rete_http_answer *a, bool head, const char *allow);

static enum MHD_Result send_answer_h(const rete_httpd *h, struct MHD_Connection *c,
				     rete_http_answer *a, bool head, const char *allow)
{
	if (a->oom) {
		free(a->body);
		*a = (rete_http_answer){.status = 500};
		rete_http_printf(a, "out of memory while answering; try again\n");
		if (a->oom)
			return MHD_NO;
	}
	struct MHD_Response *r;
	if (head) {
		/* HEAD: the headers of the GET, no body */
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		free(a->body);
	} else {
		r = MHD_create_response_from_buffer(a->len, a->body ? (void *)a->body : (void *)"",
						    a->body ? MHD_RESPMEM_MUST_FREE
							    : MHD_RESPMEM_PERSISTENT);
	}
	a->body = NULL;
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				a->content_type ? a->content_type : "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	add_headers(h, r, a);
	enum MHD_Result ret = MHD_queue_response(c, a->status, r);
	MHD_destroy_response(r);
	return ret;
}

void rete_http_client_of(const struct sockaddr *sa, char *out, size_t n)
{
	if (n == 0)
		return;
	out[0] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
		return;
	}
	if (sa->sa_family != AF_INET6)
		return;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)n);
		return;
	}
	if (IN6_IS_ADDR_LOOPBACK(a)) {
		inet_ntop(AF_INET6, a, out, (socklen_t)n);
		return;
	}
	struct in6_addr net = *a;
	char text[INET6_ADDRSTRLEN];
	memset(&net.s6_addr[8], 0, 8);
	if (inet_ntop(AF_INET6, &net, text, sizeof(text)) != NULL)
		snprintf(out, n, "%s/64", text);
}

/* req_peer: c's client address as written (peer) and as limits count it
 * (client) */
static void req_peer(struct MHD_Connection *c, rete_http_req *rq)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	rq->peer[0] = rq->client[0] = '\0';
	if (ci == NULL || ci->client_addr == NULL)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, rq->peer,
			  sizeof(rq->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, rq->peer,
			  sizeof(rq->peer));
	rete_http_client_of(sa, rq->client, sizeof(rq->client));
}

/* on_accept: libmicrohttpd's accept policy. A client (rete_http_client_of:
 * an IPv4 address, an IPv6 /64) holds at most lim.per_addr connections; the
 * ones beyond are closed as they come. libmicrohttpd's own limit per
 * address counts an IPv6 client by its whole address, which one IPv6
 * network has as many of as it likes. Connections are counted from the
 * list on_connection keeps (the accepting thread adds each before it
 * accepts the next). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	rete_httpd *h = cls;
	char who[RETE_HTTP_ADDR_MAX];
	unsigned held = 0;
	(void)addrlen;
	if (h->lim.per_addr == 0)
		return MHD_YES;
	rete_http_client_of(addr, who, sizeof(who));
	pthread_mutex_lock(&h->mu);
	for (struct conn *k = h->conns; k != NULL; k = k->next)
		if (strcmp(k->client, who) == 0)
			held++;
	pthread_mutex_unlock(&h->mu);
	return held < h->lim.per_addr ? MHD_YES : MHD_NO;
}

/* --- the header deadline ------------------------------------------------------ */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	rete_httpd *h = cls;
	struct conn *k = *socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		k = calloc(1, sizeof(*k));
		if (k == NULL || ci == NULL) {
			/* not tracked, so not served: no connection escapes the
			 * deadline (libmicrohttpd closes it on the end of input) */
			free(k);
			if (ci != NULL)
				shutdown(ci->connect_fd, SHUT_RDWR);
			return;
		}
		k->fd = ci->connect_fd;
		k->since = mono_ms();
		const union MHD_ConnectionInfo *ca =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		rete_http_client_of(ca != NULL ? ca->client_addr : NULL, k->client,
				    sizeof(k->client));
		pthread_mutex_lock(&h->mu);
		k->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = k;
		h->conns = k;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		*socket_context = k;
		return;
	}
	if (k == NULL) /* MHD_CONNECTION_NOTIFY_CLOSED of one not tracked */
		return;
	pthread_mutex_lock(&h->mu);
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		h->conns = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&h->mu);
	free(k);
	*socket_context = NULL;
}

/* conn_mark: c's current request arrived whole (whole), or its answer is
 * done and the next request's clock starts now (!whole). */
static void conn_mark(rete_httpd *h, struct MHD_Connection *c, bool whole)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci != NULL ? ci->socket_context : NULL;
	if (k == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	k->whole = whole;
	if (!whole) {
		k->since = mono_ms();
		pthread_cond_signal(&h->cv); /* a deadline to wait for again */
	}
	pthread_mutex_unlock(&h->mu);
}

/* sweeper: shuts down the connections whose request has not arrived whole
 * within the deadline; sleeps until the next deadline, or until a
 * connection starts when none is waiting. */
static void *sweeper(void *arg)
{
	rete_httpd *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		int64_t now = mono_ms(), next = INT64_MAX;
		for (struct conn *k = h->conns; k != NULL; k = k->next) {
			if (k->whole || k->cut)
				continue;
			int64_t due = k->since + h->lim.header_ms;
			if (due <= now) {
				shutdown(k->fd, SHUT_RDWR);
				k->cut = true;
			} else if (due < next) {
				next = due;
			}
		}
		if (next == INT64_MAX) {
			pthread_cond_wait(&h->cv, &h->mu);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t wait = next - now;
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

void rete_http_limits_default(const rete_http_addr *addr, rete_http_limits *out)
{
	out->per_addr = rete_http_addr_loopback(addr) ? 0 : RETE_HTTP_PER_ADDR_MAX;
	out->header_ms = RETE_HTTP_HEADER_S * 1000;
	out->stall_ms = RETE_HTTP_STALL_S * 1000;
}

rete_err rete_httpd_set_limits(rete_httpd *h, const rete_http_limits *l, rete_msg *m)
{
	if (h->d)
		return rete_msg_set(m, RETE_EINVAL, "%s: limits are set before the start", h->who);
	if (l->per_addr > RETE_HTTP_CONNS_MAX || l->header_ms == 0 || l->stall_ms == 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: limits refused: at most %d connections per address (0: no "
				    "limit), and times of at least 1 ms",
				    h->who, RETE_HTTP_CONNS_MAX);
	h->lim = *l;
	h->lim_set = true;
	return RETE_OK;
}

/* --- streams ------------------------------------------------------------------ */

struct stream_run {
	const rete_http_stream *s;
	void *st;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_run *sr = cls;
	(void)pos;
	long n = sr->s->next(sr->st, buf, max);
	return n < 0 ? (ssize_t)MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream_run *sr = cls;
	sr->s->close(sr->st);
	free(sr);
}

static enum MHD_Result send_stream(const rete_httpd *h, struct MHD_Connection *c,
				   const struct route *rt, const rete_http_req *req)
{
	struct stream_run *sr = calloc(1, sizeof(*sr));
	rete_http_answer no = {.status = 0};
	if (sr != NULL) {
		sr->s = rt->stream;
		sr->st = rt->stream->open(rt->ctx, req, &no);
	}
	if (sr == NULL || sr->st == NULL) {
		free(sr);
		if (no.status == 0) {
			free(no.body);
			no = (rete_http_answer){.status = 503};
			rete_http_printf(&no,
					 "%s: the stream cannot be opened now (too many open, or "
					 "not signed in); try again later\n",
					 h->who);
		}
		return send_answer_h(h, c, &no, false, NULL);
	}
	free(no.body); /* opened: nothing of a refusal is sent */
	struct MHD_Response *r =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sr, stream_free);
	if (r == NULL) {
		stream_free(sr);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				rt->stream->content_type ? rt->stream->content_type
							 : "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	add_headers(h, r, NULL);
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	/* a reader that stops acknowledging (vanished without a FIN or a
	 * reset) is dropped by the kernel after stall_ms of data unacknowledged
	 * (a window it keeps closed counts too): the next write fails, the
	 * stream ends and its slot is freed */
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	unsigned ms = h->lim.stall_ms;
	if (ret == MHD_YES && ci != NULL)
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	rete_httpd *h = cls;
	(void)version;
	(void)upload;
	struct req *rq = *con_cls;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES; /* called again with the body, if any, then at its end */
	}
	const struct route *rt = NULL;
	for (size_t i = 0; i < h->nroutes; i++)
		if (strcmp(h->routes[i].path, url) == 0 ||
		    (h->routes[i].prefix &&
		     strncmp(h->routes[i].path, url, strlen(h->routes[i].path)) == 0))
			rt = &h->routes[i];
	bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0 && rt != NULL && rt->post;
	if (*upload_size) {
		if (post && !rq->too_big && rq->body_len + *upload_size <= RETE_HTTP_POST_MAX) {
			memcpy(rq->body + rq->body_len, upload, *upload_size);
			rq->body_len += *upload_size;
			rq->body[rq->body_len] = '\0';
		} else if (post) {
			rq->too_big = true;
		} else {
			rq->had_body = true;
		}
		*upload_size = 0; /* taken, or dropped: no other route takes a body */
		return MHD_YES;
	}
	conn_mark(h, c, true); /* the request arrived whole: it is answered now */
	rete_http_answer a = {.status = 200};
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!rt) {
		a.status = 404;
		rete_http_printf(&a, "%s: there is nothing at %.200s; this server answers", h->who,
				 url);
		for (size_t i = 0; i < h->nroutes; i++)
			rete_http_printf(&a, "%s GET %s", i ? "," : "", h->routes[i].path);
		rete_http_printf(&a, "\n");
		return send_answer_h(h, c, &a, head, NULL);
	}
	if (post && rq->too_big) {
		a.status = 413;
		rete_http_printf(&a, "%s: a POST to %.200s takes at most %u bytes\n", h->who, url,
				 (unsigned)RETE_HTTP_POST_MAX);
		return send_answer_h(h, c, &a, false, NULL);
	}
	if (post) {
		rete_http_req req = {.path = url, .method = method, .conn = c};
		req_peer(c, &req);
		req.body = rq->body;
		req.body_len = rq->body_len;
		rt->fnr(rt->ctx, &req, &a);
		return send_answer_h(h, c, &a, false, NULL);
	}
	if (!get && !head) {
		a.status = 405;
		rete_http_printf(&a, "%s: %.200s is read with GET (or HEAD), not %.32s\n", h->who,
				 url, method);
		return send_answer_h(h, c, &a, false, rt->post ? "GET, HEAD, POST" : "GET, HEAD");
	}
	if (rq->had_body) {
		a.status = 413;
		rete_http_printf(&a, "%s: a GET of %.200s takes no body; send none\n", h->who, url);
		return send_answer_h(h, c, &a, head, NULL);
	}
	if (rt->fn != NULL) {
		rt->fn(rt->ctx, url, &a);
		return send_answer_h(h, c, &a, head, NULL);
	}
	rete_http_req req = {.path = url, .method = method, .conn = c};
	req_peer(c, &req);
	if (rt->stream != NULL && !head)
		return send_stream(h, c, rt, &req);
	if (rt->fnr != NULL)
		rt->fnr(rt->ctx, &req, &a);
	return send_answer_h(h, c, &a, head, NULL);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	conn_mark(cls, c, false); /* the next request's clock starts */
	free(*con_cls);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	/* libmicrohttpd's own complaints (a client that went away, a request
	 * too large) are the client's business, not the operator's: dropped */
	(void)cls;
	(void)fmt;
	(void)ap;
}

rete_err rete_httpd_new(rete_httpd **out, const char *who, rete_msg *m)
{
	rete_httpd *h = calloc(1, sizeof(*h));
	if (!h)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	snprintf(h->who, sizeof(h->who), "%s", who);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = h;
	return RETE_OK;
}

rete_err rete_httpd_route(rete_httpd *h, const char *path, rete_http_fn fn, void *ctx, rete_msg *m)
{
	if (h->d)
		return rete_msg_set(m, RETE_EINVAL, "%s: routes are added before the start",
				    h->who);
	if (path[0] != '/' || h->nroutes == RETE_HTTP_ROUTES_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: route '%s' refused: a path starts with '/', at most %d "
				    "routes",
				    h->who, path, RETE_HTTP_ROUTES_MAX);
	char *p = strdup(path);
	if (!p)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	h->routes[h->nroutes++] = (struct route){p, fn, ctx};
	return RETE_OK;
}

static rete_err start_with(rete_httpd *h, const rete_http_addr *addr, unsigned more, rete_msg *m);

rete_err rete_httpd_start(rete_httpd *h, const rete_http_addr *addr, rete_msg *m)
{
	return start_with(h, addr, 0, m);
}

rete_err rete_httpd_start_threads(rete_httpd *h, const rete_http_addr *addr, rete_msg *m)
{
	return start_with(h, addr, MHD_USE_THREAD_PER_CONNECTION, m);
}

static rete_err start_with(rete_httpd *h, const rete_http_addr *addr, unsigned more, rete_msg *m)
{
	int fd = socket(addr->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "%s: cannot make a socket: %s", h->who,
				    strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->v6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&addr->sa, addr->salen) < 0) {
		int e = errno;
		close(fd);
		return rete_msg_set(
		    m, RETE_EIO, "%s: cannot listen on %s: %s%s", h->who, addr->text, strerror(e),
		    e == EADDRINUSE	 ? " (another program has that port; choose another)"
		    : e == EADDRNOTAVAIL ? " (no interface of this host has that address)"
		    : e == EACCES	 ? " (ports below 1024 need privileges; choose another)"
					 : "");
	}
	if (listen(fd, 32) < 0) {
		int e = errno;
		close(fd);
		return rete_msg_set(m, RETE_EIO, "%s: cannot listen on %s: %s", h->who, addr->text,
				    strerror(e));
	}
	struct sockaddr_storage got;
	socklen_t gl = sizeof(got);
	if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
		h->port = ntohs(addr->v6 ? ((struct sockaddr_in6 *)&got)->sin6_port
					 : ((struct sockaddr_in *)&got)->sin_port);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG | more;
	if (addr->v6)
		flags |= MHD_USE_IPv6;
	/* The server's thread takes no signal meant for the program (SIGTERM,
	 * SIGCHLD...): it inherits a mask blocking all of them, so they reach
	 * the thread that waits for them (the agent's poll wakes with EINTR). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (h->tls_cert != NULL)
		flags |= MHD_USE_TLS;
	if (!h->lim_set)
		rete_http_limits_default(addr, &h->lim);
	/* the logger first (libmicrohttpd reports a bad option as it reads
	 * it), and the certificate options only with TLS (without, it writes
	 * a complaint on stderr for each) */
	struct MHD_OptionItem ops[] = {
	    {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL},
	    {MHD_OPTION_LISTEN_SOCKET, (intptr_t)fd, NULL},
	    {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)RETE_HTTP_CONNS_MAX, NULL},
	    {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)RETE_HTTP_IDLE_S, NULL},
	    {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)RETE_HTTP_REQUEST_MAX, NULL},
	    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_done, h},
	    {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
	    {h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert},
	    {h->tls_cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->tls_key},
	    {MHD_OPTION_END, 0, NULL},
	};
	/* the limit per client (lim.per_addr, 0: none) is on_accept's */
	h->d = MHD_start_daemon(flags, 0, on_accept, h, on_request, h, MHD_OPTION_ARRAY, ops,
				MHD_OPTION_END);
	/* the sweeper blocks every signal too */
	h->stop = false;
	h->sweeping = h->d != NULL && pthread_create(&h->sweeper, NULL, sweeper, h) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (h->d != NULL && !h->sweeping) {
		MHD_stop_daemon(h->d); /* closes the listening socket */
		h->d = NULL;
		h->port = 0;
		return rete_msg_set(m, RETE_EIO,
				    "%s: cannot serve on %s (no thread for the "
				    "header deadline)",
				    h->who, addr->text);
	}
	if (!h->d) {
		close(fd);
		h->port = 0;
		return rete_msg_set(m, RETE_EIO,
				    "%s: cannot serve on %s (libmicrohttpd refused "
				    "to start)",
				    h->who, addr->text);
	}
	return RETE_OK;
}

uint16_t rete_httpd_port(const rete_httpd *h)
{
	return h && h->d ? h->port : 0;
}

void rete_httpd_free(rete_httpd **hp)
{
	rete_httpd *h = hp ? *hp : NULL;
	if (!h)
		return;
	if (h->sweeping) {
		pthread_mutex_lock(&h->mu);
		h->stop = true;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->sweeper, NULL);
	}
	if (h->d)
		MHD_stop_daemon(h->d); /* closes the listening socket too */
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	for (size_t i = 0; i < h->nroutes; i++)
		free(h->routes[i].path);
	for (size_t i = 0; i < h->nsh; i++) {
		free(h->shname[i]);
		free(h->shvalue[i]);
	}
	free(h->tls_cert);
	if (h->tls_key != NULL) {
		explicit_bzero(h->tls_key, strlen(h->tls_key));
		free(h->tls_key);
	}
	free(h);
	*hp = NULL;
}

/* --- for the web console ------------------------------------------------------ */

const char *rete_http_arg(const rete_http_req *rq, const char *key)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *rete_http_req_header(const rete_http_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

void rete_http_header(rete_http_answer *a, const char *name, const char *value)
{
	if (a->nhdr >= RETE_HTTP_ANSWER_HEADERS_MAX)
		return;
	a->hname[a->nhdr] = name;
	snprintf(a->hvalue[a->nhdr], sizeof(a->hvalue[0]), "%s", value);
	a->nhdr++;
}

static rete_err route_add(rete_httpd *h, struct route r, rete_msg *m)
{
	if (h->d)
		return rete_msg_set(m, RETE_EINVAL, "%s: routes are added before the start",
				    h->who);
	if (r.path[0] != '/' || h->nroutes == RETE_HTTP_ROUTES_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: route '%s' refused: a path starts with '/', at most %d "
				    "routes",
				    h->who, r.path, RETE_HTTP_ROUTES_MAX);
	if ((r.path = strdup(r.path)) == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	h->routes[h->nroutes++] = r;
	return RETE_OK;
}

rete_err rete_httpd_route_req(rete_httpd *h, const char *path, bool prefix, rete_http_req_fn fn,
			      void *ctx, rete_msg *m)
{
	return route_add(
	    h, (struct route){.path = (char *)path, .fnr = fn, .ctx = ctx, .prefix = prefix}, m);
}

rete_err rete_httpd_route_stream(rete_httpd *h, const char *path, const rete_http_stream *s,
				 void *ctx, rete_msg *m)
{
	return route_add(h, (struct route){.path = (char *)path, .stream = s, .ctx = ctx}, m);
}

rete_err rete_httpd_server_header(rete_httpd *h, const char *name, const char *value, rete_msg *m)
{
	if (h->d || h->nsh == RETE_HTTP_SERVER_HEADERS_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "%s: header '%s' refused: at most %d, added before the start",
				    h->who, name, RETE_HTTP_SERVER_HEADERS_MAX);
	char *n = strdup(name), *v = strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	h->shname[h->nsh] = n;
	h->shvalue[h->nsh++] = v;
	return RETE_OK;
}

bool rete_http_addr_loopback(const rete_http_addr *addr)
{
	if (addr->v6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&addr->sa;
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&addr->sa;
	return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
}

rete_err rete_httpd_route_post(rete_httpd *h, const char *path, rete_http_req_fn fn, void *ctx,
			       rete_msg *m)
{
	return route_add(
	    h, (struct route){.path = (char *)path, .fnr = fn, .ctx = ctx, .post = true}, m);
}

rete_err rete_httpd_tls(rete_httpd *h, const char *cert_pem, const char *key_pem, rete_msg *m)
{
	if (h->d)
		return rete_msg_set(m, RETE_EINVAL, "%s: TLS is set before the start", h->who);
	char *c = strdup(cert_pem), *k = strdup(key_pem);
	if (c == NULL || k == NULL) {
		free(c);
		free(k);
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	}
	free(h->tls_cert);
	free(h->tls_key);
	h->tls_cert = c;
	h->tls_key = k;
	return RETE_OK;
}
